#include "cluster.h"

#include <stdlib.h>
#include <string.h>

#include "proxy.h"

struct nd_cluster_rt *nd_cluster_rt_create(const struct nd_config *cfg)
{
    struct nd_cluster_rt *crt = calloc(cfg->nclusters + 1, sizeof(*crt));
    unsigned i;

    if (!crt)
        return NULL;
    for (i = 0; i < cfg->nclusters; i++) {
        crt[i].cc = &cfg->clusters[i];
        crt[i].eps = calloc(cfg->clusters[i].neps + 1, sizeof(*crt[i].eps));
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
        for (j = 0; j < cfg->clusters[i].neps; j++)
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
           nd_ep_matches(&crt->cc->eps[i], f->key, f->val);
}

/* nginx's smooth weighted round robin: each eligible endpoint's current weight grows by its
 * weight, the largest wins and gives back the sum of the weights. Over any sum-of-weights picks
 * each endpoint is picked exactly weight times, interleaved (5:1:1 gives a a b a c a a).
 * by_load: the weight is Envoy's least-request weight, weight / (active + 1), recomputed at
 * every pick. Ties go to the lower index. Endpoints not eligible keep their current weight. */
static int pick_smooth(struct nd_cluster_rt *crt, const struct lb_filter *f, bool by_load)
{
    unsigned n = crt->cc->neps, i;
    int64_t total = 0;
    int best = -1;
    bool reset = false;

    for (i = 0; i < n; i++) {
        int64_t w = crt->cc->eps[i].weight;

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
    unsigned n = crt->cc->neps, i;
    uint64_t total = 0, r;

    for (i = 0; i < n; i++)
        if (eligible(crt, i, f))
            total += crt->cc->eps[i].weight;
    if (!total)
        return -1;
    r = nd_rand(w) % total; /* total < 2^37: the modulo bias is below 2^-27 */
    for (i = 0; i < n; i++) {
        if (!eligible(crt, i, f))
            continue;
        if (r < crt->cc->eps[i].weight)
            return (int)i;
        r -= crt->cc->eps[i].weight;
    }
    return -1; /* not reached */
}

/* Power of two choices: two distinct eligible endpoints drawn uniformly (m of them eligible), the
 * one with fewer requests in flight wins; a tie goes to the first drawn. */
static int pick_p2c(struct nd_worker *w, const struct nd_cluster_rt *crt, const struct lb_filter *f,
                    unsigned m)
{
    unsigned n = crt->cc->neps, ra = (unsigned)(nd_rand(w) % m), rb, i, k;
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
    unsigned n = crt->cc->neps, m = 0, i;
    uint32_t w0 = 0;
    bool equal = true;

    for (i = 0; i < n; i++) {
        if (!eligible(crt, i, f))
            continue;
        if (m++ == 0)
            w0 = crt->cc->eps[i].weight;
        else if (crt->cc->eps[i].weight != w0)
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
    for (i = 0; i < crt->cc->neps; i++)
        total += crt->cc->eps[i].weight;
    skip = w->id % total;
    for (k = 0; k < skip; k++)
        pick_smooth(crt, &all, by_load);
}

int nd_lb_pick(struct nd_worker *w, struct nd_cluster_rt *crt, const char *key, const char *val,
               int avoid)
{
    struct lb_filter f = {key, val, avoid, true};
    unsigned n = crt->cc->neps;
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
        nd_ep_matches(&crt->cc->eps[avoid], key, val))
        return avoid;
    /* 3. every matching endpoint is failing: the policy among them anyway (avoid still excluded)
     *    rather than answer at once */
    f.healthy = false;
    return pick(w, crt, &f);
}
