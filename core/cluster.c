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

/* An endpoint that failed its last connects sits out while others are eligible. */
#define EP_FAIL_LIMIT 3

static bool eligible(const struct nd_cluster_rt *crt, unsigned i, const char *key,
                     const char *val, int avoid)
{
    return (int)i != avoid && crt->eps[i].fails < EP_FAIL_LIMIT &&
           nd_ep_matches(&crt->cc->eps[i], key, val);
}

static int pick_rr(struct nd_cluster_rt *crt, const char *key, const char *val, int avoid)
{
    unsigned n = crt->cc->neps, k;

    for (k = 0; k < n; k++) {
        unsigned i = crt->rr++ % n;

        if (eligible(crt, i, key, val, avoid))
            return (int)i;
    }
    return -1;
}

static int pick_random(struct nd_worker *w, struct nd_cluster_rt *crt, const char *key,
                       const char *val, int avoid)
{
    unsigned n = crt->cc->neps, start = (unsigned)(nd_rand(w) % n), k;

    for (k = 0; k < n; k++) {
        unsigned i = (start + k) % n;

        if (eligible(crt, i, key, val, avoid))
            return (int)i;
    }
    return -1;
}

/* Power of two choices on in-flight requests divided by weight (Envoy's least_request). */
static int pick_least(struct nd_worker *w, struct nd_cluster_rt *crt, const char *key,
                      const char *val, int avoid)
{
    int a = pick_random(w, crt, key, val, avoid), b;

    if (a < 0)
        return -1;
    b = pick_random(w, crt, key, val, avoid);
    if (b >= 0 && b != a) {
        uint64_t la = (uint64_t)crt->eps[a].active * crt->cc->eps[b].weight;
        uint64_t lb = (uint64_t)crt->eps[b].active * crt->cc->eps[a].weight;

        if (lb < la)
            return b;
    }
    return a;
}

int nd_lb_pick(struct nd_worker *w, struct nd_cluster_rt *crt, const char *key, const char *val,
               int avoid)
{
    int i;

    if (!crt->cc->neps)
        return -1;
    switch (crt->cc->lb) {
    case ND_LB_LEAST_REQUEST:
        i = pick_least(w, crt, key, val, avoid);
        break;
    case ND_LB_RANDOM:
        i = pick_random(w, crt, key, val, avoid);
        break;
    default:
        i = pick_rr(crt, key, val, avoid);
        break;
    }
    if (i < 0 && avoid >= 0 && eligible(crt, (unsigned)avoid, key, val, -1))
        i = avoid;
    if (i < 0) {
        /* every matching endpoint is failing: try them anyway rather than answer at once */
        unsigned k;

        for (k = 0; k < crt->cc->neps; k++)
            if (nd_ep_matches(&crt->cc->eps[k], key, val) && (int)k != avoid)
                return (int)k;
    }
    return i;
}
