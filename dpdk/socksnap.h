/*
 * The user-space TCP's part of `nodus sockets` (core/sockets.h). A worker's TCP state is only
 * ever touched by that worker, so the main thread does not read it: it asks. Each worker holds a
 * struct nd_dpdk_socksnap; the main thread sets a request (a generation number), the worker sees
 * it at the end of a poll iteration (one load and a compare when nobody asks: no lock, nothing
 * else on the fast path) and copies its connections and listeners into a buffer the main thread
 * allocated, then publishes the generation it served. The main thread waits for the answers with
 * a bound and reports the workers that did not answer in time.
 */
#ifndef NODUS_DPDK_SOCKSNAP_H
#define NODUS_DPDK_SOCKSNAP_H

#include <stdatomic.h>
#include <stdint.h>

#include "tcp_types.h"

struct nd_tcp_stack;

#define ND_DPDK_SNAP_LISTENERS 16 /* at least the engine's max_listeners of a worker */

struct nd_dpdk_socksnap {
    _Atomic uint32_t req;  /* main thread: the generation asked for */
    _Atomic uint32_t done; /* worker: the generation its buffer holds */
    /* main thread, while req == done (the worker does not touch them then) */
    struct nd_tcp_info *conns; /* [cap], allocated at the first request, freed by fini */
    unsigned cap;              /* set at worker init: the engine's connection blocks */
    /* written by the worker before it publishes done */
    unsigned nconns, total, nlis;
    struct nd_tcp_listen_info lis[ND_DPDK_SNAP_LISTENERS];
};

void nd_dpdk_socksnap_fill(struct nd_dpdk_socksnap *s, struct nd_tcp_stack *tcp);

/* Worker, at the end of each poll iteration. */
static inline void nd_dpdk_socksnap_serve(struct nd_dpdk_socksnap *s, struct nd_tcp_stack *tcp)
{
    if (atomic_load_explicit(&s->req, memory_order_acquire) !=
        atomic_load_explicit(&s->done, memory_order_relaxed))
        nd_dpdk_socksnap_fill(s, tcp);
}

/* Main thread, after the worker has ended. */
void nd_dpdk_socksnap_fini(struct nd_dpdk_socksnap *s);

#endif
