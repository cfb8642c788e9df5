#include "cluster.h"

#include <stdlib.h>
#include <string.h>

#include "../gossip/catalog.h"
#include "proxy.h"

struct nd_cluster_rt *nd_cluster_rt_create(const struct nd_config *cfg)
{
    struct nd_cluster_rt *crt = calloc(cfg->nclusters + 1, sizeof(*crt));
    unsigned i;

    if (!crt)
        return NULL;
    for (i = 0; i < cfg->nclusters; i++) {
        const struct nd_cluster_conf *cc = &cfg->clusters[i];

        crt[i].cc = cc;
        crt[i].ceps = cc->eps;
        crt[i].nceps = cc->neps;
        if (cc->dslot && (crt[i].set = atomic_load(&cc->dslot->cur))) {
            crt[i].ceps = crt[i].set->eps;
            crt[i].nceps = crt[i].set->neps;
        }
        crt[i].eps = calloc(crt[i].nceps + 1, sizeof(*crt[i].eps));
        if (!crt[i].eps) {
            nd_cluster_rt_free(cfg, crt);
            return NULL;
        }
    }
    return crt;
}

void nd_cluster_rt_free(const struct nd_config *cfg, struct nd_cluster_rt *crt)
{
    unsigned i;

    if (!crt)
        return;
    for (i = 0; i < cfg->nclusters; i++)
        free(crt[i].eps);
    free(crt);
}

void nd_cluster_rt_close(struct nd_worker *w, const struct nd_config *cfg,
                         struct nd_cluster_rt *crt)
{
    unsigned i, j;

    if (!crt)
        return;
    for (i = 0; i < cfg->nclusters; i++)
        for (j = 0; j < crt[i].nceps; j++)
            while (crt[i].eps[j].idle)
                nd_upstream_close(w, crt[i].eps[j].idle);
}

bool nd_ep_matches(const struct nd_endpoint_conf *ep, const char *key, const char *val)
{
    unsigned i;

    if (!key)
        return true;
    for (i = 0; i < ep->nlabels; i++)
        if (!strcmp(ep->labels[i].key, key))
            return !strcmp(ep->labels[i].val, val);
    return false;
}

/* ---- load balancing ---------------------------------------------------------------------------
 *
 * Every policy picks among the *eligible* endpoints of one pick: those whose labels match the
 * subset (key, val), other than `avoid`, and in the first tier only those that have not failed
 * their last EP_FAIL_LIMIT connects (see nd_lb_pick for the tiers). All state is the worker's own:
 * no lock, no allocation, one or a few passes over the endpoints per pick.
 */

/* An endpoint that failed its last connects sits out while others are eligible. */
#define EP_FAIL_LIMIT 3

/* least_request with unequal weights: weight / (active + 1) in fixed point, 20 bits of fraction
 * (weights are at most 1000000 < 2^20, so an effective weight fits in 40 bits). */
#define LB_LOAD_SHIFT 20
/* A current weight beyond this resets the smooth schedule (see pick_smooth): far above anything
 * a schedule reaches, far below where adding one more total could overflow. */
#define LB_CW_LIMIT (INT64_C(1) << 61)

/* Which endpoints one pick may return. */
struct lb_filter {
    const char *key, *val; /* subset: key NULL = all endpoints */
    int avoid;             /* never eligible (an index, or -1) */
    bool healthy;          /* only endpoints with fewer than EP_FAIL_LIMIT consecutive fails */
};

static bool eligible(const struct nd_cluster_rt *crt, unsigned i, const struct lb_filter *f)
{
    return (int)i != f->avoid && (!f->healthy || crt->eps[i].fails < EP_FAIL_LIMIT) &&
           nd_ep_matches(&crt->ceps[i], f->key, f->val);
}

/* nginx's smooth weighted round robin: each eligible endpoint's current weight grows by its
 * weight, the largest wins and gives back the sum of the weights. Over any sum-of-weights picks
 * each endpoint is picked exactly weight times, interleaved (5:1:1 gives a a b a c a a).
 * by_load: the weight is Envoy's least-request weight, weight / (active + 1), recomputed at
 * every pick. Ties go to the lower index. Endpoints not eligible keep their current weight. */
static int pick_smooth(struct nd_cluster_rt *crt, const struct lb_filter *f, bool by_load)
{
    unsigned n = crt->nceps, i;
    int64_t total = 0;
    int best = -1;
    bool reset = false;

    for (i = 0; i < n; i++) {
        int64_t w = crt->ceps[i].weight;

        if (!eligible(crt, i, f))
            continue;
        if (by_load)
            w = (w << LB_LOAD_SHIFT) / ((int64_t)crt->eps[i].active + 1);
        if (w < 1)
            w = 1;
        crt->eps[i].lb_cw += w;
        total += w;
        if (best < 0 || crt->eps[i].lb_cw > crt->eps[best].lb_cw)
            best = (int)i;
        if (crt->eps[i].lb_cw > LB_CW_LIMIT || crt->eps[i].lb_cw < -LB_CW_LIMIT)
            reset = true;
    }
    if (best < 0)
        return -1;
    crt->eps[best].lb_cw -= total;
    /* Static weights keep every current weight within (-total, total]. Weights that change from
     * pick to pick (by_load) or subsets that overlap could in theory let them drift: start the
     * schedule again long before they could overflow. */
    if (reset)
        for (i = 0; i < n; i++)
            crt->eps[i].lb_cw = 0;
    return best;
}

/* Weighted random: endpoint i with probability weight(i) / sum of the eligible weights. */
static int pick_random(struct nd_worker *w, const struct nd_cluster_rt *crt,
                       const struct lb_filter *f)
{
    unsigned n = crt->nceps, i;
    uint64_t total = 0, r;

    for (i = 0; i < n; i++)
        if (eligible(crt, i, f))
            total += crt->ceps[i].weight;
    if (!total)
        return -1;
    r = nd_rand(w) % total; /* total < 2^37: the modulo bias is below 2^-27 */
    for (i = 0; i < n; i++) {
        if (!eligible(crt, i, f))
            continue;
        if (r < crt->ceps[i].weight)
            return (int)i;
        r -= crt->ceps[i].weight;
    }
    return -1; /* not reached */
}

/* Power of two choices: two distinct eligible endpoints drawn uniformly (m of them eligible), the
 * one with fewer requests in flight wins; a tie goes to the first drawn. */
static int pick_p2c(struct nd_worker *w, const struct nd_cluster_rt *crt, const struct lb_filter *f,
                    unsigned m)
{
    unsigned n = crt->nceps, ra = (unsigned)(nd_rand(w) % m), rb, i, k;
    int a = -1, b = -1;

    if (m == 1)
        rb = ra;
    else if ((rb = (unsigned)(nd_rand(w) % (m - 1))) >= ra)
        rb++;
    for (i = 0, k = 0; i < n && (a < 0 || b < 0); i++) {
        if (!eligible(crt, i, f))
            continue;
        if (k == ra)
            a = (int)i;
        if (k == rb)
            b = (int)i;
        k++;
    }
    return crt->eps[b].active < crt->eps[a].active ? b : a;
}

/* Envoy's least_request: equal weights (among the eligible endpoints), power of two choices on
 * requests in flight; unequal weights, a weighted schedule on weight / (active + 1) (Envoy's
 * active_request_bias at its default, 1.0). */
static int pick_least(struct nd_worker *w, struct nd_cluster_rt *crt, const struct lb_filter *f)
{
    unsigned n = crt->nceps, m = 0, i;
    uint32_t w0 = 0;
    bool equal = true;

    for (i = 0; i < n; i++) {
        if (!eligible(crt, i, f))
            continue;
        if (m++ == 0)
            w0 = crt->ceps[i].weight;
        else if (crt->ceps[i].weight != w0)
            equal = false;
    }
    if (!m)
        return -1;
    return equal ? pick_p2c(w, crt, f, m) : pick_smooth(crt, f, true);
}

static int pick(struct nd_worker *w, struct nd_cluster_rt *crt, const struct lb_filter *f)
{
    switch (crt->cc->lb) {
    case ND_LB_LEAST_REQUEST:
        return pick_least(w, crt, f);
    case ND_LB_RANDOM:
        return pick_random(w, crt, f);
    default:
        return pick_smooth(crt, f, false);
    }
}

/* First pick of a worker on a cluster: its schedule starts (worker id mod sum of weights) picks
 * in, as if those had been made, so that workers do not all send their first requests to the
 * same endpoint (equal weights: worker k starts at endpoint k mod n). At most ND_MAX_WORKERS
 * passes, once. The random policies need nothing: each worker has its own random sequence. */
static void lb_start(struct nd_worker *w, struct nd_cluster_rt *crt)
{
    const struct lb_filter all = {.avoid = -1};
    bool by_load = crt->cc->lb == ND_LB_LEAST_REQUEST;
    uint64_t total = 0, k, skip;
    unsigned i;

    crt->lb_started = true;
    if (crt->cc->lb == ND_LB_RANDOM)
        return;
    for (i = 0; i < crt->nceps; i++)
        total += crt->ceps[i].weight;
    skip = w->id % total;
    for (k = 0; k < skip; k++)
        pick_smooth(crt, &all, by_load);
}

int nd_lb_pick(struct nd_worker *w, struct nd_cluster_rt *crt, const char *key, const char *val,
               int avoid)
{
    struct lb_filter f = {key, val, avoid, true};
    unsigned n = crt->nceps;
    int i;

    if (!n)
        return -1;
    if (!crt->lb_started)
        lb_start(w, crt);
    /* 1. the policy among the healthy matching endpoints other than avoid */
    if ((i = pick(w, crt, &f)) >= 0)
        return i;
    /* 2. avoid itself, when it is the only healthy matching endpoint */
    if (avoid >= 0 && (unsigned)avoid < n && crt->eps[avoid].fails < EP_FAIL_LIMIT &&
        nd_ep_matches(&crt->ceps[avoid], key, val))
        return avoid;
    /* 3. every matching endpoint is failing: the policy among them anyway (avoid still excluded)
     *    rather than answer at once */
    f.healthy = false;
    return pick(w, crt, &f);
}

/* ---- discovered endpoints (see cluster.h) ------------------------------------------------------
 *
 * Main thread: slots (one per discovered service), the retired sets, the generation.
 * Workers: nd_discover_sync. */

static struct nd_epslot *slots;
static struct nd_epset *retired_sets;
static _Atomic uint64_t disc_gen;

static struct nd_epslot *slot_find(const char *service)
{
    struct nd_epslot *sl;

    for (sl = slots; sl; sl = sl->next)
        if (!strcmp(sl->service, service))
            return sl;
    return NULL;
}

int nd_discover_bind(struct nd_config *cfg)
{
    unsigned i;

    for (i = 0; i < cfg->nclusters; i++) {
        struct nd_cluster_conf *cc = &cfg->clusters[i];
        struct nd_epslot *sl;

        if (!cc->discover)
            continue;
        if (!(sl = slot_find(cc->discover))) {
            if (!(sl = calloc(1, sizeof(*sl))) || !(sl->service = strdup(cc->discover))) {
                free(sl);
                return -1;
            }
            atomic_init(&sl->cur, NULL);
            sl->next = slots;
            slots = sl;
        }
        cc->dslot = sl;
    }
    return 0;
}

struct nd_epslot *nd_discover_slots(void)
{
    return slots;
}

const struct nd_epset *nd_discover_current(const struct nd_cluster_conf *cc)
{
    return cc->dslot ? atomic_load(&cc->dslot->cur) : NULL;
}

static void set_free(struct nd_epset *set)
{
    unsigned i, k;

    if (!set)
        return;
    for (i = 0; i < set->neps; i++) {
        for (k = 0; k < set->eps[i].nlabels; k++) {
            free(set->eps[i].labels[k].key);
            free(set->eps[i].labels[k].val);
        }
        free(set->eps[i].labels);
        free(set->members[i]);
    }
    free(set->eps);
    free(set->members);
    free(set);
}

static bool same_ep(const struct nd_endpoint_conf *a, const char *am,
                    const struct nd_endpoint_conf *b, const char *bm)
{
    unsigned k;

    if (strcmp(a->addr.text, b->addr.text) || strcmp(am, bm) || a->nlabels != b->nlabels ||
        a->weight != b->weight)
        return false;
    for (k = 0; k < a->nlabels; k++)
        if (strcmp(a->labels[k].key, b->labels[k].key) ||
            strcmp(a->labels[k].val, b->labels[k].val))
            return false;
    return true;
}

int nd_discover_publish(const char *service, const struct nd_endpoint_conf *eps,
                        const char *const *members, unsigned n)
{
    struct nd_epslot *sl = slot_find(service);
    struct nd_epset *cur, *set;
    unsigned i, k;

    if (!sl)
        return 0;
    cur = atomic_load(&sl->cur);
    if (cur ? cur->neps == n : n == 0) {
        for (i = 0; i < n && same_ep(&cur->eps[i], cur->members[i], &eps[i], members[i]); i++)
            ;
        if (i == n)
            return 0;
    }
    if (!(set = calloc(1, sizeof(*set))) || !(set->eps = calloc(n + 1, sizeof(*set->eps))) ||
        !(set->members = calloc(n + 1, sizeof(char *)))) {
        set_free(set);
        return -1;
    }
    for (i = 0; i < n; i++, set->neps++) {
        struct nd_endpoint_conf *e = &set->eps[i];

        e->addr = eps[i].addr;
        e->weight = eps[i].weight ? eps[i].weight : 1;
        if (!(set->members[i] = strdup(members[i])))
            goto oom;
        if (eps[i].nlabels && !(e->labels = calloc(eps[i].nlabels, sizeof(*e->labels))))
            goto oom;
        for (k = 0; k < eps[i].nlabels; k++, e->nlabels++)
            if (!(e->labels[k].key = strdup(eps[i].labels[k].key)) ||
                !(e->labels[k].val = strdup(eps[i].labels[k].val))) {
                free(e->labels[k].key);
                goto oom;
            }
    }
    if (!n) { /* an empty set is NULL: nothing to free later */
        set_free(set);
        set = NULL;
    }
    cur = atomic_exchange(&sl->cur, set);
    /* the generation moves after the store: a worker that sees it sees the new set */
    if (cur) {
        cur->retired_gen = atomic_fetch_add(&disc_gen, 1) + 1;
        cur->next = retired_sets;
        retired_sets = cur;
    } else {
        atomic_fetch_add(&disc_gen, 1);
    }
    nd_workers_wake_all();
    return 1;
oom:
    set->neps++; /* the partly built entry is freed too */
    set_free(set);
    return -1;
}

void nd_discover_collect(void)
{
    struct nd_epset **pp = &retired_sets, *set;
    uint64_t low = atomic_load(&disc_gen);
    unsigned i;

    if (!retired_sets)
        return;
    for (i = 0; i < nd_rt.nworkers && nd_rt.workers; i++) {
        uint64_t a = atomic_load(&nd_rt.workers[i].disc_ack);

        if (a < low)
            low = a;
    }
    while ((set = *pp)) {
        if (set->retired_gen <= low) {
            *pp = set->next;
            set_free(set);
        } else {
            pp = &set->next;
        }
    }
}

void nd_discover_shutdown(void)
{
    struct nd_epslot *sl;
    struct nd_epset *set;

    while ((set = retired_sets)) {
        retired_sets = set->next;
        set_free(set);
    }
    while ((sl = slots)) {
        slots = sl->next;
        set_free(atomic_load(&sl->cur));
        free(sl->service);
        free(sl);
    }
}

/* Re-points an upstream connection of crt from the old endpoint array at the new one (NULL ep:
 * its endpoint left; the connection finishes its request and is not pooled). Only connections
 * still on the old array move, so a connection seen twice moves once. */
static void remap_up(struct nd_upstream *u, const struct nd_cluster_rt *crt, struct nd_ep_rt *eps,
                     const int *map, unsigned nold)
{
    uintptr_t p, lo = (uintptr_t)crt->eps;
    int m;

    if (!u || u->crt != crt || !u->ep || u->state == UP_FREE)
        return;
    p = (uintptr_t)u->ep;
    if (p < lo || p >= lo + nold * sizeof(*crt->eps))
        return;
    m = map[(p - lo) / sizeof(*crt->eps)];
    if (m >= 0) {
        u->ep = &eps[m];
        u->ep_idx = (unsigned)m;
    } else {
        u->ep = NULL;
    }
}

/* Swaps one worker's runtime of a discover cluster to another set. 0, or -1 when out of memory
 * (nothing changed: tried again at the next iteration). */
static int swap(struct nd_worker *w, struct nd_cluster_rt *crt, const struct nd_epset *set)
{
    unsigned nold = crt->nceps, n = set ? set->neps : 0, i;
    struct nd_ep_rt *eps = calloc(n + 1, sizeof(*eps));
    int *map = calloc(nold + 1, sizeof(*map));
    const char **pa = calloc(nold + 1, sizeof(*pa)), **na = calloc(n + 1, sizeof(*na));
    struct nd_session *s;
    struct nd_upstream *u;
    int rc = -1;

    if (!eps || !map || !pa || !na)
        goto out;
    for (i = 0; i < nold; i++)
        pa[i] = crt->ceps[i].addr.text;
    for (i = 0; i < n; i++)
        na[i] = set->eps[i].addr.text;
    nd_cat_diff(pa, nold, na, n, map);
    for (i = 0; i < nold; i++) {
        if (map[i] < 0) { /* left: close its idle connections */
            while (crt->eps[i].idle)
                nd_upstream_close(w, crt->eps[i].idle);
            continue;
        }
        eps[map[i]] = crt->eps[i]; /* idle list, counters, schedule */
        for (u = eps[map[i]].idle; u; u = u->next) {
            u->ep = &eps[map[i]];
            u->ep_idx = (unsigned)map[i];
        }
    }
    /* in flight: requests and TCP sessions on this cluster */
    for (s = w->sessions_head; s; s = s->next) {
        struct nd_txn *t = s->txn;

        if (s->state == S_FREE)
            continue;
        if (t && t->crt == crt && t->ep >= 0)
            t->ep = (unsigned)t->ep < nold ? map[t->ep] : -1;
        if (t)
            remap_up(t->up, crt, eps, map, nold);
        remap_up(s->up, crt, eps, map, nold);
    }
    free(crt->eps);
    crt->eps = eps;
    eps = NULL;
    crt->ceps = set ? set->eps : NULL;
    crt->nceps = n;
    crt->set = set;
    rc = 0;
out:
    free(eps);
    free(map);
    free(pa);
    free(na);
    return rc;
}

static int sync_snap(struct nd_worker *w, struct nd_snap *sn)
{
    struct nd_snap_worker *sw = &sn->wrt[w->id];
    unsigned i;
    int rc = 0;

    if (!sw->adopted || !sw->clusters)
        return 0;
    for (i = 0; i < sn->cfg->nclusters; i++) {
        const struct nd_cluster_conf *cc = &sn->cfg->clusters[i];
        const struct nd_epset *set;

        if (!cc->dslot || (set = atomic_load(&cc->dslot->cur)) == sw->clusters[i].set)
            continue;
        if (swap(w, &sw->clusters[i], set) < 0)
            rc = -1;
    }
    return rc;
}

void nd_discover_sync(struct nd_worker *w)
{
    uint64_t g = atomic_load(&disc_gen);
    unsigned i;
    int rc = 0;

    if (g == w->disc_seen)
        return;
    if (w->snap)
        rc |= sync_snap(w, w->snap);
    for (i = 0; i < w->nheld; i++)
        rc |= sync_snap(w, w->held[i]);
    if (rc < 0)
        return; /* out of memory: again at the next iteration, the old sets stay */
    w->disc_seen = g;
    atomic_store(&w->disc_ack, g);
}
