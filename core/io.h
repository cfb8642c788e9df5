/*
 * The I/O interface between workers and the network. Everything above it (sessions, HTTP, plugins,
 * pools) is the same whether the bytes come from kernel sockets (posix: epoll) or from the
 * user-space TCP of the DPDK packet core.
 *
 * Model: a connection handle (struct nd_conn) is embedded in its owner (caller-owned memory; the
 * backend allocates nothing per connection). Readiness is edge-triggered: the backend calls
 * conn->cb with ND_EV_* when a connection becomes readable or writable; the owner then reads or
 * writes until the call returns -EAGAIN, and gets a new callback when readiness returns. An owner
 * that stops reading early (back-pressure) may call read again later without waiting for an event.
 * All calls are made by the worker that owns the connection.
 *
 * Zero-copy (optional ops, below read): a backend that holds received bytes in buffers of its own
 * (dpdk: mbufs) lends them in place (peek, consume), keeps one alive for a parsed head (pin), and
 * forwards received bytes to another connection's send queue by reference (splice). The owner
 * uses them only through stream.h's nd_conn_zc(), which says no when stream plugins (TLS) sit
 * between the connection and its owner; otherwise read and writev, which copy, are always there.
 */
#ifndef NODUS_IO_H
#define NODUS_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct nd_addr;
struct nd_worker;
struct nd_conn;

#define ND_EV_READ 0x1
#define ND_EV_WRITE 0x2
#define ND_EV_ERROR 0x4 /* error or hang-up: a read or write will tell which */

#define ND_IO_PEEK_MAX 16 /* pieces one peek returns at most */

typedef void (*nd_conn_cb)(struct nd_conn *c, unsigned events);

struct nd_stream;

struct nd_conn {
    int fd; /* posix: the socket; other backends: >= 0 while open. -1 when closed
             * (the core tests fd >= 0 for "open") */
    nd_conn_cb cb;
    struct nd_worker *w;
    struct nd_stream *st; /* stream plugins between the owner and the network, or NULL
                           * (owners read and write through nd_conn_read/_writev, stream.h) */
    void *priv;           /* the backend's, while open (dpdk: its connection or listener
                           * record); posix leaves it NULL. Owners zero it with the rest. */
};

struct nd_io_ops {
    const char *name;
    /* Per worker: set up the backend's loop state. 0 or -errno. */
    int (*worker_init)(struct nd_worker *w);
    void (*worker_fini)(struct nd_worker *w);
    /* Waits for events, at most until the worker's next timer (nd_worker_timeout(), computed
     * only when it does wait), calls nd_worker_clock(w) (the clock and the timers), then runs the
     * callbacks of connections that became ready. Returns how much work it did (events, frames,
     * timers: > 0 counts the iteration busy), or -errno. */
    int (*poll)(struct nd_worker *w);
    /* Wakes a worker sleeping in poll (from another thread). */
    void (*wake)(struct nd_worker *w);
    /* Main thread: opens the listening socket of one worker for a (fd, or -errno); the snapshot
     * keeps it in l->fd. NULL: the backend has no kernel sockets and listens in listen_add, per
     * worker, on the address of the listener whose handle l is (struct nd_listen_handle). */
    int (*listen_open)(const struct nd_addr *a, int backlog);
    /* Starts watching a listening handle on this worker. Listeners are level-triggered: the
     * callback comes again while connections wait to be accepted. */
    int (*listen_add)(struct nd_worker *w, struct nd_conn *l);
    void (*listen_del)(struct nd_worker *w, struct nd_conn *l);
    /* Accepts one connection into c (its cb and w set by the caller). 0, -EAGAIN, or -errno.
     * The peer address is written as text ("198.18.0.1") into peer (at least 48 bytes). */
    int (*accept)(struct nd_conn *l, struct nd_conn *c, char *peer, size_t peerlen);
    /* Opens a connection to a; completion is a ND_EV_WRITE callback, then connect_result().
     * 0 (in progress or done) or -errno. */
    int (*connect)(struct nd_worker *w, struct nd_conn *c, const struct nd_addr *a);
    int (*connect_result)(struct nd_conn *c);
    /* > 0 bytes, 0 end of stream, -EAGAIN, or -errno. */
    ssize_t (*read)(struct nd_conn *c, void *buf, size_t len);
    ssize_t (*writev)(struct nd_conn *c, const struct iovec *iov, int iovcnt);
    /* Zero-copy: NULL all five in a backend without it (posix: the kernel copies anyway). */
    /* The bytes received on c, where they are, in order, without taking them: up to max pieces
     * (ND_IO_PEEK_MAX at most). > 0 pieces, 0 at end of stream (nothing left), -EAGAIN, or
     * -errno, as read. The pieces stay valid until taken (consume, splice, read) or c closes. */
    int (*peek)(struct nd_conn *c, struct iovec *iov, int max);
    /* Takes n bytes (at most what peek showed) from the front of c's received bytes. */
    void (*consume)(struct nd_conn *c, size_t n);
    /* Keeps the buffer holding received byte p (inside a piece peek showed) alive after its bytes
     * are taken, for a head parsed in place: a handle for unpin, or NULL when the worker's budget
     * of held buffers is spent or p is not in a buffer of the backend's (then copy the bytes). */
    void *(*pin)(struct nd_conn *c, const void *p);
    void (*unpin)(struct nd_worker *w, void *pin);
    /* Moves up to len bytes (at most what peek showed) from the front of from's received bytes to
     * the send queue of `to`, without copying them (the buffers are shared by reference; the
     * backend may copy short pieces, and does past its budget of shared buffers). Bytes moved
     * (taken from `from`), -EAGAIN when `to` can take nothing now (a WRITE event follows), or
     * -errno: to's error. Both connections are the same worker's. */
    ssize_t (*splice)(struct nd_conn *to, struct nd_conn *from, size_t len);
    /* Half-close the sending side. */
    void (*shutdown_write)(struct nd_conn *c);
    /* Closes; reset = abortive (RST) close. */
    void (*close)(struct nd_conn *c, bool reset);
    /* Optional (NULL: yes). A draining worker with no session left asks whether it may end its
     * loop; while the answer is no it keeps polling (until node.drain_timeout). The dpdk backend
     * says no to a worker whose queues other workers' connections use, while any is open. */
    bool (*may_stop)(struct nd_worker *w);
};

extern const struct nd_io_ops nd_io_posix;

/* Main thread, posix: opens a listening socket with SO_REUSEPORT (one per worker). fd or -errno. */
int nd_posix_listen_socket(const struct nd_addr *a, int backlog);

#endif
