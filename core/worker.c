/* Worker threads: the run-to-completion loop (poll, timers, snapshot sync) and drain. */
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "stream.h"

struct nd_runtime nd_rt;

uint64_t nd_clock_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void worker_begin_drain(struct nd_worker *w)
{
    struct nd_snap *s = w->snap;
    unsigned i;

    w->draining = true;
    if (s && s->wrt[w->id].adopted)
        for (i = 0; i < s->cfg->nlisteners; i++)
            w->io->listen_del(w, &s->wrt[w->id].listen[i].conn);
    nd_worker_close_idle(w);
}

unsigned nd_worker_clock(struct nd_worker *w)
{
    w->now_us = nd_clock_us();
    return nd_wheel_advance(&w->wheel, nd_now_ms(w));
}

void nd_worker_clock_read(struct nd_worker *w)
{
    w->now_us = nd_clock_us();
    nd_wheel_set_now(&w->wheel, nd_now_ms(w));
}

unsigned nd_worker_timers(struct nd_worker *w)
{
    return nd_wheel_advance(&w->wheel, nd_now_ms(w));
}

int nd_worker_timeout(const struct nd_worker *w)
{
    int t = nd_wheel_next(&w->wheel);

    return t < 0 || t > 1000 ? 1000 : t;
}

static void *worker_main(void *arg)
{
    struct nd_worker *w = arg;

    nd_log_set_thread((int)w->id);
    w->now_us = nd_clock_us();
    nd_wheel_init(&w->wheel, nd_now_ms(w));
    nd_worker_sync_snap(w);
    atomic_store(&w->ready, true);

    while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
        int n = w->io->poll(w); /* calls nd_worker_clock() when its wait ends */
        nd_worker_reap(w);
        nd_metrics_count(w->id, ND_C_LOOP_ITERATIONS, 1);
        if (n > 0) {
            /* busy time, not iterations: a poll loop never waits, so CPU time says nothing */
            nd_metrics_count(w->id, ND_C_LOOP_BUSY, 1);
            nd_metrics_count(w->id, ND_C_LOOP_BUSY_US, nd_clock_us() - w->now_us);
        }
        if (atomic_load_explicit(&nd_rt.current, memory_order_relaxed) != w->snap || w->nheld)
            nd_worker_sync_snap(w);
        nd_discover_sync(w); /* discovered endpoint sets (cluster.h): one atomic load */
        if (!w->draining && atomic_load_explicit(&nd_rt.draining, memory_order_relaxed))
            worker_begin_drain(w);
        if (w->draining) {
            nd_worker_close_idle(w);
            if (w->sessions == 0 && (!w->io->may_stop || w->io->may_stop(w)))
                break;
        }
    }
    atomic_store(&w->ready, false);
    return NULL;
}

int nd_workers_start(unsigned n, const struct nd_io_ops *io)
{
    unsigned i;
    int err;

    nd_rt.nworkers = n;
    nd_rt.io = io;
    nd_rt.workers = aligned_alloc(64, sizeof(struct nd_worker) * n);
    if (!nd_rt.workers)
        return -ENOMEM;
    memset(nd_rt.workers, 0, sizeof(struct nd_worker) * n);
    for (i = 0; i < n; i++) {
        struct nd_worker *w = &nd_rt.workers[i];

        w->id = i;
        w->io = io;
        w->epfd = -1;
        w->wake.fd = -1;
        w->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)(i + 1) << 32) ^ nd_clock_us();
        nd_buf_pool_init(&w->bufs, 16384, 0);
        nd_buf_pool_init(&w->sbufs, ND_STREAM_BUF, 0);
        err = io->worker_init(w);
        if (err)
            return err;
    }
    for (i = 0; i < n; i++) {
        struct nd_worker *w = &nd_rt.workers[i];

        char name[16];

        err = pthread_create(&w->thread, NULL, worker_main, w);
        if (err)
            return -err;
        w->started = true;
        /* for top -H, ps -L, taskset (i < ND_MAX_WORKERS: the modulo only tells the compiler) */
        snprintf(name, sizeof(name), "nodus-w%u", i % 1000);
        pthread_setname_np(w->thread, name);
    }
    return 0;
}

void nd_workers_wake_all(void)
{
    unsigned i;

    for (i = 0; nd_rt.workers && i < nd_rt.nworkers; i++)
        nd_rt.workers[i].io->wake(&nd_rt.workers[i]);
}

void nd_workers_drain(uint64_t timeout_ms)
{
    uint64_t deadline = nd_clock_us() + timeout_ms * 1000;
    unsigned i, running;

    atomic_store(&nd_rt.draining, true);
    nd_workers_wake_all();
    do {
        struct timespec ts = {0, 20 * 1000 * 1000};

        running = 0;
        for (i = 0; i < nd_rt.nworkers; i++)
            running += atomic_load(&nd_rt.workers[i].ready);
        if (!running)
            break;
        nanosleep(&ts, NULL);
    } while (nd_clock_us() < deadline);
    if (running)
        nd_warn("drain timeout: closing %u worker(s) with requests in flight", running);
    for (i = 0; i < nd_rt.nworkers; i++) {
        atomic_store(&nd_rt.workers[i].stop, true);
        nd_rt.workers[i].io->wake(&nd_rt.workers[i]);
    }
    for (i = 0; i < nd_rt.nworkers; i++) {
        struct nd_worker *w = &nd_rt.workers[i];

        if (w->started)
            pthread_join(w->thread, NULL);
        nd_worker_free_pools(w);
        nd_worker_free_lists(w);
        w->io->worker_fini(w);
        nd_buf_pool_fini(&w->bufs);
        nd_worker_stream_fini(w);
    }
}
