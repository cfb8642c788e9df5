/*
 * User-space TCP engine (RFC 9293 and friends): a pure, in-memory library. It does no I/O and
 * reads no clock: segments come in through nd_tcp_input(), go out through the tx callback of the
 * config, and time comes from a timer wheel the caller advances. One stack per worker; nothing
 * here is thread-safe and nothing allocates after nd_tcp_stack_new().
 *
 * Callbacks (connection events, listener events) are delivered when the engine is in a
 * consistent state, at the end of the outermost engine call; from a callback the application may
 * call any function here, including close. The tx callback is the exception: it runs in the
 * middle of processing and must not call the engine.
 *
 * Connection handles: nd_tcp_connect() and nd_tcp_accept() hand out a handle the application
 * owns until it calls nd_tcp_close() or nd_tcp_abort(); after that the handle is invalid. A
 * connection that ends on its own (reset, timeout, orderly close seen to the end) stays valid,
 * in state CLOSED, until then.
 */
#ifndef NODUS_TCP_H
#define NODUS_TCP_H

#include <sys/types.h>

#include "tcp_types.h"

/* Fills cfg with defaults (everything but tx/udata/pkt_ops). */
void nd_tcp_config_defaults(struct nd_tcp_config *cfg);

/* A stack, or NULL with *err = -EINVAL (bad config), -ENOMEM, or -EIO (no random secret). */
struct nd_tcp_stack *nd_tcp_stack_new(const struct nd_tcp_config *cfg, int *err);
/* Frees everything; connections vanish without a segment. Handles become invalid. */
void nd_tcp_stack_free(struct nd_tcp_stack *s);

/* The engine's clock (ms). */
uint64_t nd_tcp_now(const struct nd_tcp_stack *s);
/* Own wheel: advances it to now_ms, running expired timers. Shared wheel: the worker advances
 * the wheel itself; this only runs the deferred callbacks. Returns timers fired. */
unsigned nd_tcp_advance(struct nd_tcp_stack *s, uint64_t now_ms);
/* Milliseconds until the next timer (-1: none), for the poll loop. */
int nd_tcp_next_timer(const struct nd_tcp_stack *s);

/*
 * A batch of input, such as one RX burst: between nd_tcp_batch_begin() and nd_tcp_batch_end(),
 * callbacks wait for the end (as within any engine call), and so do the ACKs that the every-second-
 * full-segment rule makes due: a connection that received several segments in the batch sends one
 * cumulative ACK at its end (unless a segment of its own carried it meanwhile), not one per two
 * segments, as Linux does for what GRO merged. Other ACKs (out of order, duplicate, FIN, window
 * updates) go at once. Batches nest; outside one nothing changes.
 */
void nd_tcp_batch_begin(struct nd_tcp_stack *s);
void nd_tcp_batch_end(struct nd_tcp_stack *s);

/*
 * One received segment: tcp points at the TCP header, len covers header and payload (the IP
 * layer has already removed padding). pkt is the handle of the buffer holding it: the engine
 * keeps payload by reference, taking its own references through pkt_ops (the caller keeps and
 * releases its own). With pkt NULL or no pkt_ops, payload that must be kept is copied into
 * send-buffer chunks instead.
 */
void nd_tcp_input(struct nd_tcp_stack *s, const struct nd_tcp_ipinfo *ip, const uint8_t *tcp,
                  size_t len, void *pkt);

/* Listening. addr 0 = any local address. NULL with *err = -EADDRINUSE, -ENOMEM, -EINVAL.
 * backlog bounds half-open plus not-yet-accepted connections. */
struct nd_tcp_listener *nd_tcp_listen(struct nd_tcp_stack *s, uint32_t addr, uint16_t port,
                                      unsigned backlog, nd_tcp_listen_cb cb, void *udata, int *err);
/* Stops listening; queued connections are reset. */
void nd_tcp_unlisten(struct nd_tcp_listener *l);
/* The next established connection, or NULL (then wait for the listener callback). Its events
 * (WRITE at once, READ if data came with the handshake) wait for nd_tcp_set_cb(). */
struct nd_tcp_conn *nd_tcp_accept(struct nd_tcp_listener *l);

/* Active open from f->laddr:f->lport (the caller picks the port) to f->raddr:f->rport.
 * ND_TCP_EV_CONNECTED (with WRITE) or ND_TCP_EV_CLOSED follows. NULL with *err = -EADDRINUSE,
 * -ENOMEM, -EINVAL. */
struct nd_tcp_conn *nd_tcp_connect(struct nd_tcp_stack *s, const struct nd_tcp_flow *f,
                                   nd_tcp_conn_cb cb, void *udata, int *err);
void nd_tcp_set_cb(struct nd_tcp_conn *c, nd_tcp_conn_cb cb, void *udata);
void *nd_tcp_udata(const struct nd_tcp_conn *c);

/*
 * Sending. Copy: bytes queued (maybe fewer than len), -EAGAIN when the send buffer is full (a
 * ND_TCP_EV_WRITE follows when it drains), -EPIPE after shutdown, or the connection's error
 * (-ECONNRESET...). Data queued in SYN_SENT goes out once the handshake completes. Zero-copy:
 * queues all of [data, data+len) held by pkt (a reference is taken) or nothing
 * (-EAGAIN/-ENOMEM/errors as above); returns len.
 */
ssize_t nd_tcp_send(struct nd_tcp_conn *c, const void *data, size_t len);
/* nd_tcp_send() of n buffers at once, in order (a writev; the pieces' pkt is not used): segments
 * are cut from all of them together, so that what is written together leaves together. */
ssize_t nd_tcp_sendv(struct nd_tcp_conn *c, const struct nd_tcp_piece *v, int n);
ssize_t nd_tcp_send_zc(struct nd_tcp_conn *c, const uint8_t *data, size_t len, void *pkt);
/* Bytes the send buffer can take now. */
size_t nd_tcp_send_space(const struct nd_tcp_conn *c);
/*
 * Forwarding without a copy: moves up to len bytes from the front of from's received data to the
 * back of to's send queue (both connections of this stack), as nd_tcp_recv_consume() on from
 * and a send on to. Whole receive descriptors change queues (the packet reference goes with
 * them, no reference is taken or dropped); a descriptor cut by len is shared (a reference taken).
 * Pieces shorter than ND_TCP_SPLICE_COPY bytes, descriptors without a packet in part, and
 * everything past cfg.max_zc_segs are copied into send chunks instead, so that a few bytes never
 * hold a whole packet and the packets send queues hold stay bounded. Retransmission keeps the
 * reference until the bytes are acknowledged. Returns the bytes moved (at most len, what from
 * holds and what to's send buffer takes), 0 when len or from's data is 0, -EAGAIN when to can take
 * nothing now (a WRITE event follows once it drained; when chunks or descriptors, not the send
 * buffer, ran out, none may come), -EPIPE after to's shutdown, to's error, or -EINVAL when the
 * two are not of one stack.
 */
ssize_t nd_tcp_splice(struct nd_tcp_conn *to, struct nd_tcp_conn *from, size_t len);
#define ND_TCP_SPLICE_COPY 512

/*
 * Receiving, zero-copy: up to max pieces of in-order data, in order; returns how many. The
 * pieces stay valid until consumed. nd_tcp_recv_consume() drops n bytes from the front (n at
 * most what is queued). Copying: nd_tcp_read() returns bytes read, 0 at end of stream,
 * -EAGAIN, or -errno (the connection's error).
 */
int nd_tcp_recv_pieces(const struct nd_tcp_conn *c, struct nd_tcp_piece *out, int max);
void nd_tcp_recv_consume(struct nd_tcp_conn *c, size_t n);
ssize_t nd_tcp_read(struct nd_tcp_conn *c, void *buf, size_t len);
size_t nd_tcp_readable(const struct nd_tcp_conn *c);
/* The peer sent FIN and everything before it has been consumed. */
bool nd_tcp_eof(const struct nd_tcp_conn *c);

/* Sends FIN after the queued data. */
void nd_tcp_shutdown(struct nd_tcp_conn *c);
/* Orderly close: shutdown, and give the handle back (the engine finishes the close, with
 * TIME_WAIT as needed). Unread data pending: the connection is reset instead (RFC 9293 3.10.4,
 * as Linux does). */
void nd_tcp_close(struct nd_tcp_conn *c);
/* Abortive close: RST now, queues dropped, the handle given back. */
void nd_tcp_abort(struct nd_tcp_conn *c);

/* 0, or the errno that ended the connection: ECONNRESET, ECONNREFUSED, ETIMEDOUT, ECONNABORTED. */
int nd_tcp_error(const struct nd_tcp_conn *c);
enum nd_tcp_state nd_tcp_state(const struct nd_tcp_conn *c);
const char *nd_tcp_state_name(enum nd_tcp_state st);
void nd_tcp_set_nodelay(struct nd_tcp_conn *c, bool on);
void nd_tcp_set_keepalive(struct nd_tcp_conn *c, bool on);

void nd_tcp_conn_info(const struct nd_tcp_conn *c, struct nd_tcp_info *out);
const struct nd_tcp_stats *nd_tcp_stats(const struct nd_tcp_stack *s);
/* Calls fn for every connection (not listeners); for `nodus sockets`. */
void nd_tcp_foreach(struct nd_tcp_stack *s, void (*fn)(const struct nd_tcp_conn *c, void *arg),
                    void *arg);
/* Calls fn for every listening endpoint, with its description. */
/* Connections the application has closed whose data or FIN (only data: data_only) the peer has not
 * acknowledged yet (the engine still sends them: a drain waits for them before the stack goes);
 * *bytes, unless NULL, gets the bytes they still hold. A scan of max_conns: control path. */
unsigned nd_tcp_unacked_orphans(const struct nd_tcp_stack *s, bool data_only, uint64_t *bytes);
void nd_tcp_foreach_listener(struct nd_tcp_stack *s,
                             void (*fn)(const struct nd_tcp_listen_info *l, void *arg), void *arg);

#endif
