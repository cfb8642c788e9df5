/*
 * Configuration snapshots. The main thread builds a configuration, opens what it needs, and
 * publishes it with one atomic pointer store. Each worker notices at its next loop iteration,
 * builds its own runtime for it (pools, plugin worker state, listener handles), and keeps the old
 * snapshot until the last session using it ends; then it counts itself out (released). The main
 * thread frees a retired snapshot once every worker has released it. No lock anywhere.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"

static struct nd_lsock *lsocks;
static struct nd_snap *retired;
static uint64_t generation;

static void lsock_put(struct nd_lsock *ls)
{
    struct nd_lsock **pp;
    unsigned i;

    if (--ls->refs)
        return;
    for (pp = &lsocks; *pp; pp = &(*pp)->next)
        if (*pp == ls) {
            *pp = ls->next;
            break;
        }
    for (i = 0; i < nd_rt.nworkers; i++)
        if (ls->fd[i] >= 0)
            close(ls->fd[i]);
    free(ls);
}

static struct nd_lsock *lsock_get(const struct nd_addr *a, char **err)
{
    const struct nd_io_ops *io = nd_rt.io ? nd_rt.io : &nd_io_posix;
    struct nd_lsock *ls;
    unsigned i;
    int fd;

    for (ls = lsocks; ls; ls = ls->next)
        if (!strcmp(ls->key, a->text)) {
            ls->refs++;
            return ls;
        }
    ls = calloc(1, sizeof(*ls));
    if (!ls)
        return NULL;
    snprintf(ls->key, sizeof(ls->key), "%s", a->text);
    for (i = 0; i < ND_MAX_WORKERS; i++)
        ls->fd[i] = -1;
    /* a backend without kernel sockets (dpdk) listens per worker in listen_add */
    for (i = 0; io->listen_open && i < nd_rt.nworkers; i++) {
        fd = io->listen_open(a, 4096);
        if (fd < 0) {
            if (asprintf(err, "cannot listen on %s: %s", a->text, strerror(-fd)) < 0)
                *err = NULL;
            ls->refs = 1;
            ls->next = NULL;
            while (i--)
                close(ls->fd[i]);
            free(ls);
            return NULL;
        }
        ls->fd[i] = fd;
    }
    ls->refs = 1;
    ls->next = lsocks;
    lsocks = ls;
    return ls;
}

static void snap_free(struct nd_snap *s)
{
    unsigned i;

    for (i = 0; s->lsocks && i < s->cfg->nlisteners; i++)
        if (s->lsocks[i])
            lsock_put(s->lsocks[i]);
    free(s->lsocks);
    nd_config_free(s->cfg);
    free(s);
}

int nd_snap_publish(struct nd_config *cfg, char **err)
{
    struct nd_snap *s, *old;
    unsigned i;

    *err = NULL;
    s = nd_discover_bind(cfg) == 0 ? calloc(1, sizeof(*s)) : NULL;
    if (!s || !(s->lsocks = calloc(cfg->nlisteners + 1, sizeof(*s->lsocks)))) {
        free(s);
        *err = strdup("out of memory");
        return -1;
    }
    s->cfg = cfg;
    s->gen = ++generation;
    for (i = 0; i < cfg->nlisteners; i++) {
        s->lsocks[i] = lsock_get(&cfg->listeners[i].addr, err);
        if (!s->lsocks[i]) {
            char *e = *err;

            if (asprintf(err, "listener \"%s\": %s", cfg->listeners[i].name,
                         e ? e : "out of memory") < 0)
                *err = NULL;
            free(e);
            s->cfg = NULL;
            while (i--)
                lsock_put(s->lsocks[i]);
            free(s->lsocks);
            free(s);
            return -1;
        }
    }
    for (i = 0; i < cfg->nlisteners; i++)
        cfg->listeners[i].id = i;
    old = atomic_exchange(&nd_rt.current, s);
    if (old) {
        old->next = retired;
        retired = old;
    }
    nd_workers_wake_all();
    return 0;
}

void nd_snap_collect(void)
{
    struct nd_snap **pp = &retired, *s;

    while ((s = *pp)) {
        if (atomic_load(&s->released) >= nd_rt.nworkers) {
            *pp = s->next;
            snap_free(s);
        } else {
            pp = &s->next;
        }
    }
}

void nd_snap_shutdown(void)
{
    struct nd_snap *s;

    while ((s = retired)) {
        retired = s->next;
        snap_free(s);
    }
    s = atomic_exchange(&nd_rt.current, NULL);
    if (s)
        snap_free(s);
}

/* ---- worker side ---- */

static int adopt(struct nd_worker *w, struct nd_snap *s)
{
    struct nd_snap_worker *sw = &s->wrt[w->id];
    const struct nd_config *cfg = s->cfg;
    unsigned i, j;

    sw->clusters = nd_cluster_rt_create(cfg);
    sw->listen = calloc(cfg->nlisteners + 1, sizeof(*sw->listen));
    sw->pstate = calloc((size_t)cfg->nlisteners * ND_MAX_CHAIN + 1, sizeof(void *));
    if (!sw->clusters || !sw->listen || !sw->pstate) {
        nd_cluster_rt_free(cfg, sw->clusters);
        free(sw->listen);
        free(sw->pstate);
        memset(sw, 0, sizeof(*sw));
        return -ENOMEM;
    }
    for (i = 0; i < cfg->nlisteners; i++) {
        const struct nd_listener_conf *lc = &cfg->listeners[i];

        for (j = 0; j < lc->nplugins && j < ND_MAX_CHAIN; j++)
            if (lc->plugins[j].p->worker_init)
                sw->pstate[i * ND_MAX_CHAIN + j] =
                    lc->plugins[j].p->worker_init(lc->plugins[j].conf, w->id);
        sw->listen[i].lc = lc;
        sw->listen[i].snap = s;
        sw->listen[i].conn.fd = s->lsocks[i]->fd[w->id];
        sw->listen[i].conn.cb = nd_listener_cb;
    }
    sw->adopted = true;
    return 0;
}

static void drop(struct nd_worker *w, struct nd_snap *s)
{
    struct nd_snap_worker *sw = &s->wrt[w->id];
    const struct nd_config *cfg = s->cfg;
    unsigned i, j;

    if (sw->adopted) {
        for (i = 0; i < cfg->nlisteners; i++) {
            const struct nd_listener_conf *lc = &cfg->listeners[i];

            for (j = 0; j < lc->nplugins && j < ND_MAX_CHAIN; j++)
                if (lc->plugins[j].p->worker_fini)
                    lc->plugins[j].p->worker_fini(lc->plugins[j].conf,
                                                  sw->pstate[i * ND_MAX_CHAIN + j]);
        }
        nd_cluster_rt_close(w, cfg, sw->clusters);
        nd_cluster_rt_free(cfg, sw->clusters);
        free(sw->listen);
        free(sw->pstate);
    }
    memset(sw, 0, sizeof(*sw));
    atomic_fetch_add(&s->released, 1);
}

void nd_worker_sync_snap(struct nd_worker *w)
{
    struct nd_snap *cur = atomic_load(&nd_rt.current), *old = w->snap;
    unsigned i;

    if (cur != old && cur && w->nheld < sizeof(w->held) / sizeof(w->held[0])) {
        if (adopt(w, cur) == 0) {
            if (old) {
                for (i = 0; i < old->cfg->nlisteners; i++)
                    w->io->listen_del(w, &old->wrt[w->id].listen[i].conn);
                w->held[w->nheld++] = old;
            }
            w->snap = cur;
            if (!w->draining)
                for (i = 0; i < cur->cfg->nlisteners; i++)
                    if (w->io->listen_add(w, &cur->wrt[w->id].listen[i].conn) < 0)
                        nd_err("listener \"%s\": cannot watch its socket",
                               cur->cfg->listeners[i].name);
        } else {
            nd_err("cannot adopt configuration %llu: out of memory", (unsigned long long)cur->gen);
        }
    }
    for (i = 0; i < w->nheld;) {
        struct nd_snap *s = w->held[i];

        if (s->wrt[w->id].sessions == 0) {
            drop(w, s);
            w->held[i] = w->held[--w->nheld];
        } else {
            i++;
        }
    }
}

void nd_snap_session_put(struct nd_worker *w, struct nd_snap *s)
{
    s->wrt[w->id].sessions--;
}

/* At exit: every worker drops the snapshots it holds (workers are stopped). */
void nd_worker_free_pools(struct nd_worker *w)
{
    unsigned i;

    for (i = 0; i < w->nheld; i++)
        drop(w, w->held[i]);
    w->nheld = 0;
    if (w->snap) {
        drop(w, w->snap);
        w->snap = NULL;
    }
}
