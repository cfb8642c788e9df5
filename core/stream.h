/*
 * The stream layer: stream plugins (TLS, byte counters...) between a connection and its owner.
 *
 * Bytes from the network go up through each stream plugin's data_in, in chain order, to the
 * owner (HTTP session or TCP proxy); bytes from the owner go down through data_out in reverse
 * order to the network. Each boundary between two layers is a buffer:
 *
 *     network -> in[0] -> layer 0 -> in[1] -> ... -> layer n-1 -> in[n] -> owner reads
 *     network <- out[0] <- layer 0 <- out[1] <- ... <- layer n-1 <- out[n] <- owner writes
 *
 * A layer's data_in consumes from in[k] and produces into in[k+1] with nodus_stream_push_in();
 * its data_out consumes from out[k+1] and produces into out[k] with nodus_stream_push_out() (a
 * TLS layer also pushes out from data_in: handshake records). Buffers come from a per-worker pool
 * and go back to it when empty, so an idle connection holds none.
 *
 * The owner sees the same contract as the I/O backend's read and writev (nd_conn_read,
 * nd_conn_writev below): > 0 bytes, 0 at end of stream, -EAGAIN, or -errno.
 */
#ifndef NODUS_STREAM_H
#define NODUS_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "io.h"
#include "timer.h"
#include "worker.h"

#define ND_STREAM_BUF (64u * 1024)   /* bytes per boundary buffer */
#define ND_STREAM_SLACK (17u * 1024) /* room kept free for what one call may produce */
#define ND_STREAM_MAX_LAYERS ND_TXN_MAX_LAYERS

struct nd_listener_conf;
struct nd_snap;
struct nd_stream;

/* One layer as the opener defines it: a listener's stream plugin, or a layer the core puts on an
 * upstream connection (TLS to a cluster). */
struct nd_stream_def {
    const struct nodus_stream_ops *ops;
    const char *name; /* for messages */
    void *conf;       /* ctx->conf */
    void *worker;     /* ctx->worker */
    size_t txn_off;   /* ctx->txn = scratch + txn_off */
};

/* What plugins see as `struct nodus_stream *`: one per layer. */
struct nd_stream_layer {
    struct nd_stream *st;
    uint8_t k; /* layer index, 0 nearest the network */
    struct nd_stream_def def;
    uint64_t deadline; /* nodus_stream_set_deadline(): ms on the worker's wheel, 0 = none */
};

/* Where a stream's owner keeps the peer's address and verified identity. */
struct nd_stream_peer {
    const char *addr; /* text */
    size_t addr_len;
    char *principal; /* nodus_stream_set_peer_principal() writes here (NUL-terminated) */
    uint16_t *principal_len;
    size_t principal_cap;
};

struct nd_stream {
    struct nd_stream *next; /* worker free list */
    struct nd_conn *conn;   /* the network side */
    struct nd_stream_peer peer;
    uint8_t n;    /* layers */
    uint8_t shut; /* layers whose shutdown hook ran, from the top */
    bool net_eof, failed, closed;
    struct nd_timer deadline; /* at the earliest of the layers' deadlines */
    struct nd_buf *in[ND_STREAM_MAX_LAYERS + 1], *out[ND_STREAM_MAX_LAYERS + 1];
    struct nd_stream_layer layer[ND_STREAM_MAX_LAYERS];
    char scratch[] __attribute__((aligned(16))); /* plugins' per-connection ctx->txn */
};

/* The stream plugins of a listener (0 when it has none). */
unsigned nd_stream_layers(const struct nd_listener_conf *lc);
/* Puts a stream with the listener's stream plugins on an accepted connection and runs the
 * connect hooks. 0 (also when there are none), or -1 when a plugin refused the connection or
 * resources ran out (the caller closes it). */
int nd_stream_open(struct nd_worker *w, struct nd_session *s, struct nd_conn *c);
/* The same with explicit layers (n >= 1), for connections the node opens. scratch_len bytes of
 * per-connection state are zeroed for them. */
int nd_stream_open_defs(struct nd_worker *w, struct nd_conn *c, const struct nd_stream_def *defs,
                        unsigned n, size_t scratch_len, const struct nd_stream_peer *peer);
/* Runs the close hooks and returns the stream's memory; c->st is cleared. */
void nd_stream_close(struct nd_worker *w, struct nd_conn *c);
ssize_t nd_stream_read(struct nd_stream *st, void *buf, size_t len);
ssize_t nd_stream_writev(struct nd_stream *st, const struct iovec *iov, int iovcnt);
/* Before the owner's FIN (or its close): runs the layers' shutdown hooks, each once everything
 * written before has gone through it, and flushes. true when it is all on the network (or the
 * stream failed: nothing more can go), false while bytes wait for the socket (a write event
 * comes back; call again). */
bool nd_stream_finish(struct nd_stream *st);
/* On a connection event: flushes what waits for the network and moves the layers along. */
void nd_stream_event(struct nd_stream *st);
/* Bytes still waiting to reach the network, in all layers / ready for the network itself. */
uint32_t nd_stream_pending_out(const struct nd_stream *st);
uint32_t nd_stream_pending_net(const struct nd_stream *st);
void nd_worker_stream_fini(struct nd_worker *w);

static inline ssize_t nd_conn_read(struct nd_conn *c, void *buf, size_t len)
{
    return c->st ? nd_stream_read(c->st, buf, len) : c->w->io->read(c, buf, len);
}

static inline ssize_t nd_conn_writev(struct nd_conn *c, const struct iovec *iov, int iovcnt)
{
    return c->st ? nd_stream_writev(c->st, iov, iovcnt) : c->w->io->writev(c, iov, iovcnt);
}

/* The owner may use the backend's zero-copy ops on c (io.h: peek, consume, pin, splice): the
 * backend has them and no stream plugin sits between c and its owner. */
static inline bool nd_conn_zc(const struct nd_conn *c)
{
    return !c->st && c->w->io->peek;
}

#endif
