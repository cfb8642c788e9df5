/*
 * Workers: one thread per core, shared nothing. A worker owns its connections, upstream pools,
 * timers, buffers and stats; it reads the current configuration snapshot through an atomic pointer
 * and never takes a lock on the request path.
 */
#ifndef NODUS_WORKER_H
#define NODUS_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "io.h"
#include "timer.h"

struct nd_session;
struct nd_txn;
struct nd_upstream;
struct nd_epset;

/* A listening address, opened once by the main thread (one socket per worker with SO_REUSEPORT)
 * and shared by every snapshot that has a listener on it. */
struct nd_lsock {
    struct nd_lsock *next;
    char key[80];
    int fd[ND_MAX_WORKERS];
    unsigned refs; /* snapshots using it */
};

/* A listener as one worker serves it under one snapshot. */
struct nd_listen_handle {
    struct nd_conn conn;
    const struct nd_listener_conf *lc;
    struct nd_snap *snap;
};

/* Per worker, per endpoint: the pool of idle upstream connections and load counters. */
struct nd_ep_rt {
    struct nd_upstream *idle; /* idle keep-alive connections, most recent first */
    unsigned nidle;
    unsigned active; /* requests in flight */
    unsigned conns;  /* open connections (idle + busy + connecting) */
    unsigned fails;  /* consecutive connect failures */
    int64_t lb_cw;   /* smooth weighted round robin: the endpoint's current weight */
};

struct nd_cluster_rt {
    const struct nd_cluster_conf *cc;
    struct nd_ep_rt *eps;
    bool lb_started; /* the worker's starting offset has been applied (first pick) */
    unsigned conns, pending, requests;
    /* the endpoints eps[] is for: cc->eps, or a discovered set's (cc->discover: swapped by
     * nd_discover_sync when the main thread publishes another set) */
    const struct nd_endpoint_conf *ceps;
    unsigned nceps;
    const struct nd_epset *set;
};

/* Everything one worker keeps for one snapshot. */
struct nd_snap_worker {
    struct nd_cluster_rt *clusters;  /* [cfg->nclusters] */
    struct nd_listen_handle *listen; /* [cfg->nlisteners] */
    void **pstate;                   /* [listener * ND_MAX_CHAIN + plugin]: worker_init results */
    unsigned sessions;               /* sessions that hold this snapshot */
    bool adopted;
};

#define ND_MAX_CHAIN 32

struct nd_snap {
    struct nd_config *cfg;
    uint64_t gen;
    struct nd_lsock **lsocks; /* [cfg->nlisteners] */
    struct nd_snap_worker wrt[ND_MAX_WORKERS];
    atomic_uint released; /* workers that dropped it */
    struct nd_snap *next; /* main thread's list of retired snapshots */
};

struct nd_worker {
    unsigned id;
    pthread_t thread;
    const struct nd_io_ops *io;
    int epfd; /* posix backend */
    struct nd_conn wake;
    struct nd_wheel wheel;
    uint64_t now_us; /* monotonic, refreshed every loop iteration */
    struct nd_buf_pool bufs;
    struct nd_snap *snap;     /* the snapshot new connections use */
    struct nd_snap *held[16]; /* older snapshots still used by sessions */
    unsigned nheld;
    struct nd_session *free_sessions;
    struct nd_txn *free_txns;
    struct nd_upstream *free_upstreams;
    unsigned nfree_sessions, nfree_upstreams;
    struct nd_session *dead_sessions; /* released in this event batch (see nd_worker_reap) */
    struct nd_upstream *dead_upstreams;
    struct nd_stream *free_streams;
    unsigned overload_logged;         /* connection-limit refusals (1 log line per 1000) */
    struct nd_buf_pool sbufs;         /* stream layer buffers (stream.h) */
    struct nd_session *sessions_head; /* every open downstream connection */
    unsigned sessions;                /* open downstream connections */
    uint64_t rng;
    bool draining;
    bool started;
    atomic_bool stop;
    atomic_bool ready;
    /* discovered endpoint sets (cluster.h): the generation this worker last synced to, and the
     * same for the main thread, which frees a replaced set once every worker is past it */
    uint64_t disc_seen;
    _Atomic uint64_t disc_ack;
} __attribute__((aligned(64)));

struct nd_runtime {
    unsigned nworkers;
    const struct nd_io_ops *io; /* set before the first snapshot is published (NULL: posix) */
    struct nd_worker *workers;
    _Atomic(struct nd_snap *) current;
    atomic_bool draining;
    /* client connections open on all workers: one atomic add per accept and per close, so that
     * node.max_connections holds whatever way the kernel spreads connections over workers */
    atomic_uint conns;
};

extern struct nd_runtime nd_rt;

/* Refreshes the worker's clock and runs the timers that expired. The I/O backend calls it each
 * time its wait for events ends, before it dispatches them: callbacks then arm timers against the
 * current time, not the time before the wait. Returns the timers that fired. */
unsigned nd_worker_clock(struct nd_worker *w);
/* The clock only (nd_wheel_set_now()): a backend that reads its input queues first, and runs the
 * timers after with nd_worker_timers(), lets an ACK or an answer that waited in a queue while the
 * loop was busy stop the timer it would otherwise lose the race to (a TCP loss probe). */
void nd_worker_clock_read(struct nd_worker *w);
unsigned nd_worker_timers(struct nd_worker *w);

/* How long a poll may wait: until the next timer of the worker's wheel, at most 1 s (ms). */
int nd_worker_timeout(const struct nd_worker *w);

static inline uint64_t nd_now_ms(const struct nd_worker *w)
{
    return w->now_us / 1000;
}
uint64_t nd_clock_us(void);
/* xorshift64*: a worker's fast pseudo-random numbers. */
static inline uint64_t nd_rand(struct nd_worker *w)
{
    uint64_t x = w->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Starts n workers on the I/O backend; they adopt nd_rt.current. 0 or -errno. */
int nd_workers_start(unsigned n, const struct nd_io_ops *io);
/* Asks workers to drain (stop accepting, finish in flight) and waits up to timeout_ms for them. */
void nd_workers_drain(uint64_t timeout_ms);
void nd_workers_wake_all(void);

/* Snapshots (main thread). Opens the listening sockets a configuration needs (reusing those of
 * the current snapshot), and publishes it. 0, or -1 with *err (malloc'd). */
int nd_snap_publish(struct nd_config *cfg, char **err);
/* Frees retired snapshots that every worker has dropped. */
void nd_snap_collect(void);
/* Frees everything at exit (workers stopped). */
void nd_snap_shutdown(void);

/* Worker side: adopt the current snapshot if it changed; release held ones without sessions. */
void nd_worker_sync_snap(struct nd_worker *w);
void nd_snap_session_put(struct nd_worker *w, struct nd_snap *s);

/* proxy.c: the listener accept callback for HTTP and TCP listeners, and session teardown. */
void nd_listener_cb(struct nd_conn *c, unsigned events);
void nd_worker_close_idle(struct nd_worker *w);
void nd_worker_free_pools(struct nd_worker *w);

#endif
