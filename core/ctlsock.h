/*
 * Control-plane sockets: the few sockets of the main thread (the admin listener, gossip's UDP
 * socket, TCP listener and push/pull streams), behind one interface so that the same code runs on
 * kernel sockets and on the user-space TCP/UDP of the DPDK packet core.
 *
 * Two backends:
 *   - kernel (ctlsock_kernel.c): non-blocking sockets behind one private epoll fd;
 *   - relay (ctlsock_relay.c): the sockets live on the workers' stacks; the main thread exchanges
 *     messages with them (ctlmsg.h) through a transport (dpdk/ctl_dpdk.c: rte_rings and an
 *     eventfd). See docs/architecture.md, "Control plane".
 *
 * Model: a struct nd_ctl is a set of sockets on one backend, used by the main thread only. Its fd
 * becomes readable when something may be ready; nd_ctl_run() then calls the callback of every
 * socket that is ready, once per run, with ND_CTL_* events:
 *   - IN is level-triggered: it comes at every run while datagrams, connections to accept, bytes
 *     or the end of the stream wait (an owner that stops reading early gets it again);
 *   - OUT is edge-triggered: once when a connect finished (ok or not: nd_ctl_connect_result), and
 *     once after a write returned -EAGAIN, when room came back;
 *   - ERR: the stream failed (reset, timeout); a read or write returns the error.
 * No callback runs inside another nd_ctl call. A socket's cb and arg are its owner's to change at
 * any time (e.g. right after accept). Addresses are IPv4 or IPv6 (the relay: IPv4 only).
 */
#ifndef NODUS_CTLSOCK_H
#define NODUS_CTLSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct nd_addr;
struct nd_ctl;
struct nd_ctl_sock;

#define ND_CTL_IN 0x1
#define ND_CTL_OUT 0x2
#define ND_CTL_ERR 0x4

/* An address: len 4 (IPv4) or 16 (IPv6), network byte order, port in host order. */
struct nd_ctl_addr {
    uint8_t len;
    uint8_t ip[16];
    uint16_t port;
};

typedef void (*nd_ctl_cb)(struct nd_ctl_sock *s, unsigned events, void *arg);

/* Counters of a set (docs/metrics.md, nodus_ctl_*). */
struct nd_ctl_stats {
    uint64_t udp_dropped;   /* datagrams dropped: queue or ring full, no socket bound */
    uint64_t conns_refused; /* connections refused: too many streams, accept queue full */
    uint64_t bind_errors;   /* a worker could not bind or listen */
    uint64_t msgs_out;      /* relay: messages to workers */
    uint64_t msgs_in;       /* relay: messages from workers */
    uint64_t msgs_deferred; /* relay: messages held because a ring was full */
};

/* Limits of one set. */
#define ND_CTL_MAX_STREAMS 128 /* open TCP streams, accepted and connected */
#define ND_CTL_UDP_QUEUE 512   /* datagrams waiting to be read, per UDP socket */

/* A socket: the common head of every backend's. */
struct nd_ctl_sock {
    struct nd_ctl *ctl;
    nd_ctl_cb cb;
    void *arg;
};

/*
 * The backend's operations. Every call returns -errno on failure; those making a socket return it
 * or NULL with -errno in *err.
 */
struct nd_ctl_ops {
    const char *name;
    /* A UDP socket bound to a (relay: on every worker). */
    struct nd_ctl_sock *(*udp)(struct nd_ctl *c, const struct nd_addr *a, nd_ctl_cb cb, void *arg,
                               int *err);
    /* Sends one datagram (never blocks: a full queue drops it, counted). 0 or -errno. */
    int (*sendto)(struct nd_ctl_sock *s, const struct nd_ctl_addr *to, const void *p, size_t n);
    /* The next datagram: its length (truncated to len), or -EAGAIN. */
    ssize_t (*recvfrom)(struct nd_ctl_sock *s, void *buf, size_t len, struct nd_ctl_addr *from);
    /* A TCP listener on a (relay: on every worker; RSS spreads connections over them). backlog
     * bounds connections waiting for nd_ctl_accept. */
    struct nd_ctl_sock *(*listen)(struct nd_ctl *c, const struct nd_addr *a, unsigned backlog,
                                  nd_ctl_cb cb, void *arg, int *err);
    /* The next connection, or NULL with *err = -EAGAIN (none waiting) or -errno. */
    struct nd_ctl_sock *(*accept)(struct nd_ctl_sock *l, nd_ctl_cb cb, void *arg,
                                  struct nd_ctl_addr *peer, int *err);
    /* Opens a stream to a; OUT tells it finished, then connect_result() says how. */
    struct nd_ctl_sock *(*connect)(struct nd_ctl *c, const struct nd_ctl_addr *to, nd_ctl_cb cb,
                                   void *arg, int *err);
    /* 0 connected, -EINPROGRESS, or the error that ended the attempt. */
    int (*connect_result)(struct nd_ctl_sock *s);
    /* > 0 bytes, 0 end of stream, -EAGAIN, or -errno. */
    ssize_t (*read)(struct nd_ctl_sock *s, void *buf, size_t len);
    /* Bytes taken (maybe fewer than n), -EAGAIN (OUT follows when room comes back), -errno. */
    ssize_t (*write)(struct nd_ctl_sock *s, const void *p, size_t n);
    /* Half-close: FIN after the bytes written. */
    void (*shutdown)(struct nd_ctl_sock *s);
    /* Closes any socket; the handle is invalid after. A stream closed without reset still sends
     * what was written (relay: lingering at most 5 s on the worker), then FIN. */
    void (*close)(struct nd_ctl_sock *s, bool reset);
    /* The fd to watch for EPOLLIN; run() handles what is ready (never blocks). */
    int (*fd)(const struct nd_ctl *c);
    void (*run)(struct nd_ctl *c);
    /* Waits up to max_ms until what was written left the main thread (relay: every message was
     * taken by its worker); for a clean exit. */
    void (*settle)(struct nd_ctl *c, unsigned max_ms);
    const struct nd_ctl_stats *(*stats)(const struct nd_ctl *c);
    /* Frees the set; the owners closed their sockets first (relay: after the workers stopped). */
    void (*free)(struct nd_ctl *c);
};

struct nd_ctl {
    const struct nd_ctl_ops *ops;
};

/* Kernel sockets. NULL when out of memory or file descriptors. */
struct nd_ctl *nd_ctl_kernel_new(void);

/* The address of a sockaddr_in or sockaddr_in6 (a v4-mapped IPv6 address becomes IPv4). */
struct sockaddr_storage;
void nd_ctl_addr_from(const struct sockaddr_storage *ss, struct nd_ctl_addr *a);
/* "127.0.0.1:15000" for a struct nd_ctl_addr (buf: at least 56 bytes). */
const char *nd_ctl_addr_str(const struct nd_ctl_addr *a, char *buf, size_t len);

static inline struct nd_ctl_sock *nd_ctl_udp(struct nd_ctl *c, const struct nd_addr *a,
                                             nd_ctl_cb cb, void *arg, int *err)
{
    return c->ops->udp(c, a, cb, arg, err);
}
static inline int nd_ctl_sendto(struct nd_ctl_sock *s, const struct nd_ctl_addr *to, const void *p,
                                size_t n)
{
    return s->ctl->ops->sendto(s, to, p, n);
}
static inline ssize_t nd_ctl_recvfrom(struct nd_ctl_sock *s, void *buf, size_t len,
                                      struct nd_ctl_addr *from)
{
    return s->ctl->ops->recvfrom(s, buf, len, from);
}
static inline struct nd_ctl_sock *nd_ctl_listen(struct nd_ctl *c, const struct nd_addr *a,
                                                unsigned backlog, nd_ctl_cb cb, void *arg, int *err)
{
    return c->ops->listen(c, a, backlog, cb, arg, err);
}
static inline struct nd_ctl_sock *nd_ctl_accept(struct nd_ctl_sock *l, nd_ctl_cb cb, void *arg,
                                                struct nd_ctl_addr *peer, int *err)
{
    return l->ctl->ops->accept(l, cb, arg, peer, err);
}
static inline struct nd_ctl_sock *nd_ctl_connect(struct nd_ctl *c, const struct nd_ctl_addr *to,
                                                 nd_ctl_cb cb, void *arg, int *err)
{
    return c->ops->connect(c, to, cb, arg, err);
}
static inline int nd_ctl_connect_result(struct nd_ctl_sock *s)
{
    return s->ctl->ops->connect_result(s);
}
static inline ssize_t nd_ctl_read(struct nd_ctl_sock *s, void *buf, size_t len)
{
    return s->ctl->ops->read(s, buf, len);
}
static inline ssize_t nd_ctl_write(struct nd_ctl_sock *s, const void *p, size_t n)
{
    return s->ctl->ops->write(s, p, n);
}
static inline void nd_ctl_shutdown(struct nd_ctl_sock *s)
{
    s->ctl->ops->shutdown(s);
}
static inline void nd_ctl_close(struct nd_ctl_sock *s, bool reset)
{
    s->ctl->ops->close(s, reset);
}
static inline int nd_ctl_fd(const struct nd_ctl *c)
{
    return c->ops->fd(c);
}
static inline void nd_ctl_run(struct nd_ctl *c)
{
    c->ops->run(c);
}
static inline void nd_ctl_settle(struct nd_ctl *c, unsigned max_ms)
{
    c->ops->settle(c, max_ms);
}
static inline const struct nd_ctl_stats *nd_ctl_stats(const struct nd_ctl *c)
{
    return c->ops->stats(c);
}
static inline void nd_ctl_free(struct nd_ctl *c)
{
    if (c)
        c->ops->free(c);
}

#endif
