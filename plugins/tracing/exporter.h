/*
 * The span exporter: per-worker bounded single-producer queues of finished spans, and a thread of
 * the exporter's own that drains them, encodes batches (OTLP/HTTP JSON, Zipkin v2 JSON) and posts
 * them to the collectors, with retries and exponential backoff. Workers only ever copy a span into
 * their queue (no lock, no syscall, no allocation); a full queue drops the span and counts it. A
 * collector that is down or slow only delays the thread.
 *
 * Life: tr_exporter_init() (main thread, configure), tr_exporter_attach() on each worker
 * (worker_init: creates that worker's queue, and the first one starts the thread),
 * tr_exporter_fini() (main thread, destroy: the thread sends what is queued, once, and stops).
 */
#ifndef NODUS_TRACING_EXPORTER_H
#define NODUS_TRACING_EXPORTER_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "span.h"

#define TR_MAX_WORKERS 64 /* node.workers' bound */

/* One worker's queue: a ring of cap (a power of two) spans. */
struct tr_queue {
    _Atomic uint64_t head __attribute__((aligned(64))); /* written by the worker */
    uint64_t cached_tail;                               /* the worker's copy of tail */
    _Atomic uint64_t tail __attribute__((aligned(64))); /* written by the exporter thread */
    uint64_t mask;
    struct tr_span slots[];
};

/* A collector: where, which format, and the kept-alive connection. */
enum tr_format { TR_OTLP, TR_ZIPKIN };

struct tr_dest {
    enum tr_format format;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[64]; /* Host header: the address as configured */
    const char *path;
    int fd;
    struct tr_json json;
};

/* Exporter statistics, written by the thread, moved into counters by workers (tr_stats_take). */
struct tr_stats {
    _Atomic uint64_t exported, failed, retries;
    _Atomic bool dirty;
};

struct tr_exporter {
    struct tr_dest dest[2];
    size_t ndest;
    struct tr_resource res;
    size_t queue_len; /* per worker */
    size_t batch;     /* spans per post at most */
    uint32_t flush_ms, timeout_ms, max_retries;

    _Atomic(struct tr_queue *) queues[TR_MAX_WORKERS];
    _Atomic bool started;
    _Atomic bool running;
    pthread_t thread;
    int stop_fd; /* eventfd: wakes the thread to stop */
    _Atomic bool stopping;
    struct tr_stats stats;
};

/* Parses "ip:port" ("[v6]:port") for a destination. 0 or -1. */
int tr_dest_init(struct tr_dest *d, enum tr_format f, const char *addr);

/* Main thread: after the fields above are set. 0, or -1 (out of memory, no eventfd). */
int tr_exporter_init(struct tr_exporter *e);
/* Worker: this worker's queue (created on first call), the thread started once. NULL when out of
 * memory (the worker then drops its spans). */
struct tr_queue *tr_exporter_attach(struct tr_exporter *e, unsigned worker_id);
/* Main thread: sends what is queued (one attempt), stops the thread, frees everything. */
void tr_exporter_fini(struct tr_exporter *e);

/* Worker: a slot to fill, or NULL when the queue is full; then tr_queue_commit(). */
static inline struct tr_span *tr_queue_reserve(struct tr_queue *q)
{
    uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed);

    if (h - q->cached_tail > q->mask) {
        q->cached_tail = atomic_load_explicit(&q->tail, memory_order_acquire);
        if (h - q->cached_tail > q->mask)
            return NULL;
    }
    return &q->slots[h & q->mask];
}

static inline void tr_queue_commit(struct tr_queue *q)
{
    atomic_store_explicit(&q->head, atomic_load_explicit(&q->head, memory_order_relaxed) + 1,
                          memory_order_release);
}

/* Posts one encoded body to d: the HTTP status, or -1 (connect, I/O, timeout). For tests. */
int tr_post(struct tr_dest *d, const char *body, size_t len, uint32_t timeout_ms);

#endif /* NODUS_TRACING_EXPORTER_H */
