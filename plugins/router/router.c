/*
 * router: the terminal HTTP plugin. Picks a virtual host by the request's host, the first route
 * of it that matches, and then sends the request to a cluster (or one of a weighted split),
 * redirects it, or answers it directly. Configuration is read here; matching lives in
 * route_table.c, which knows nothing of the host. See docs/plugins.md for the configuration.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nodus/plugin.h>

#include "route_table.h"

/* Per-request scratch: the rewritten path, or a redirect's Location, is built here. */
#define ROUTER_SCRATCH 2048

/* Per worker: the compiled table state, and room for a rewritten path or a redirect location.
 * The host copies both (nodus_http_set_path, header edits), so the room is reused by the next
 * request: nothing per request for the host to zero. */
struct router_worker {
    struct rt_worker *rt;
    char buf[ROUTER_SCRATCH];
};

struct router_conf {
    struct rt_table *table;
    nodus_counter_t routed, no_route, direct, redirect;
};

/* Per request: the route the match hook found, for request_headers (the host zeroes this again
 * if the request is edited after the match). */
struct router_txn {
    const struct rt_route *route;
    struct rt_request req; /* what route was matched against, kept for the request hook */
    bool matched;
};

/* ---- configuration ---- */

/* What one route's reading allocates, freed once the table has copied it. */
struct route_tmp {
    const char **methods;
    struct rt_cond *headers, *query;
    struct rt_target *targets;
};

static void route_tmp_free(struct route_tmp *t)
{
    free(t->methods);
    free(t->headers);
    free(t->query);
    free(t->targets);
}

/* The array of strings under key: true with *out (calloc'd, may be NULL when absent) and *n. */
static bool read_strings(struct nodus_cfg *c, const char *key, const char ***out, size_t *n)
{
    struct nodus_cfg *t;
    int got = nodus_cfg_table(c, key, &t);
    bool ok = true;

    *out = NULL;
    *n = 0;
    if (got <= 0)
        return got == 0;
    *n = nodus_cfg_len(t);
    if (*n == 0) {
        nodus_cfg_error(c, "%s: empty list", key);
        return false;
    }
    *out = calloc(*n, sizeof(**out));
    if (!*out) {
        nodus_cfg_error(c, "out of memory");
        return false;
    }
    for (size_t i = 0; i < *n; i++) {
        got = nodus_cfg_str_at(t, i, &(*out)[i]);
        if (got == 0)
            nodus_cfg_error(t, "[%zu]: expected a string", i + 1);
        if (got != 1)
            ok = false;
    }
    return ok;
}

/* subset = { key = "value" }: exactly one label. */
static bool read_subset(struct nodus_cfg *c, const char **key, const char **val)
{
    struct nodus_cfg *t;
    size_t iter = 0, n = 0;
    const char *k, *v;
    int got = nodus_cfg_table(c, "subset", &t);

    if (got <= 0)
        return got == 0;
    while ((got = nodus_cfg_next_str(t, &iter, &k, &v)) == 1) {
        if (n++ == 0) {
            *key = k;
            *val = v;
        }
    }
    if (got < 0)
        return false;
    if (n != 1) {
        nodus_cfg_error(t, "a subset is one label: subset = { version = \"v2\" }");
        return false;
    }
    return true;
}

/* A header or query condition: { name = ..., exact | prefix | regex = ..., present = bool }. */
static bool read_cond(struct nodus_cfg *c, struct rt_cond *out)
{
    static const struct {
        const char *key;
        enum rt_cond_kind kind;
    } valued[] = {{"exact", RT_COND_EXACT}, {"prefix", RT_COND_PREFIX}, {"regex", RT_COND_REGEX}};
    const char *s;
    bool present, ok = true;
    int kinds = 0, got;

    got = nodus_cfg_str(c, "name", &out->name);
    if (got == 0)
        nodus_cfg_error(c, "a condition needs a name");
    ok &= got == 1;
    for (size_t i = 0; i < sizeof(valued) / sizeof(valued[0]); i++) {
        got = nodus_cfg_str(c, valued[i].key, &s);
        if (got == 1) {
            kinds++;
            out->kind = valued[i].kind;
            out->value = s;
        }
        ok &= got >= 0;
    }
    got = nodus_cfg_bool(c, "present", &present);
    if (got == 1) {
        kinds++;
        out->kind = present ? RT_COND_PRESENT : RT_COND_ABSENT;
        out->value = NULL;
    }
    ok &= got >= 0;
    if (ok && kinds != 1) {
        nodus_cfg_error(c, "a condition has exactly one of exact, prefix, regex, present");
        ok = false;
    }
    return ok;
}

static bool read_conds(struct nodus_cfg *c, const char *key, struct rt_cond **out, size_t *n)
{
    struct nodus_cfg *t, *e;
    int got = nodus_cfg_table(c, key, &t);
    bool ok = true;

    if (got <= 0)
        return got == 0;
    *n = nodus_cfg_len(t);
    if (*n == 0) {
        nodus_cfg_error(c, "%s: empty list", key);
        return false;
    }
    *out = calloc(*n, sizeof(**out));
    if (!*out) {
        nodus_cfg_error(c, "out of memory");
        return false;
    }
    for (size_t i = 0; i < *n; i++) {
        got = nodus_cfg_at(t, i, &e);
        if (got == 0)
            nodus_cfg_error(t, "[%zu]: expected a table", i + 1);
        if (got != 1)
            ok = false;
        else
            ok &= read_cond(e, &(*out)[i]);
    }
    return ok;
}

static bool read_match(struct nodus_cfg *r, struct rt_route_spec *s, struct route_tmp *tmp)
{
    static const struct {
        const char *key;
        enum rt_path_kind kind;
    } kinds[] = {{"prefix", RT_PATH_PREFIX}, {"exact", RT_PATH_EXACT}, {"regex", RT_PATH_REGEX}};
    struct nodus_cfg *m;
    const char *p;
    int got = nodus_cfg_table(r, "match", &m), n = 0;
    bool ok = true;

    if (got <= 0) {
        if (got == 0)
            nodus_cfg_error(r, "a route needs match = { prefix | exact | regex = ... }");
        return false;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        got = nodus_cfg_str(m, kinds[i].key, &p);
        if (got == 1) {
            n++;
            s->path_kind = kinds[i].kind;
            s->path = p;
        }
        ok &= got >= 0;
    }
    if (ok && n != 1) {
        nodus_cfg_error(m, "match has exactly one of prefix, exact, regex");
        ok = false;
    }
    ok &= read_strings(m, "methods", &tmp->methods, &s->n_methods);
    s->methods = tmp->methods;
    ok &= read_conds(m, "headers", &tmp->headers, &s->n_headers);
    s->headers = tmp->headers;
    ok &= read_conds(m, "query", &tmp->query, &s->n_query);
    s->query = tmp->query;
    return ok;
}

/* A cluster by name, or NULL after an error on c. */
static struct nodus_cluster *cluster(struct nodus_cfg *c, const char *name)
{
    struct nodus_cluster *cl = nodus_cluster_find(c, name);

    if (!cl)
        nodus_cfg_error(c, "unknown cluster \"%s\"", name);
    return cl;
}

/* split = { { cluster = "v1", weight = 90, subset = { ... } }, ... } */
static bool read_split(struct nodus_cfg *sp, struct rt_route_spec *s, struct route_tmp *tmp)
{
    struct nodus_cfg *e;
    size_t n = nodus_cfg_len(sp);
    bool ok = true;
    int got;

    if (n == 0) {
        nodus_cfg_error(sp, "empty list");
        return false;
    }
    tmp->targets = calloc(n, sizeof(*tmp->targets));
    if (!tmp->targets) {
        nodus_cfg_error(sp, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        struct rt_target *tg = &tmp->targets[i];
        long long w;

        got = nodus_cfg_at(sp, i, &e);
        if (got != 1) {
            if (got == 0)
                nodus_cfg_error(sp, "[%zu]: expected a table", i + 1);
            ok = false;
            continue;
        }
        got = nodus_cfg_str(e, "cluster", &tg->cluster_name);
        if (got == 0)
            nodus_cfg_error(e, "a split entry needs a cluster");
        else if (got == 1 && !(tg->cluster = cluster(e, tg->cluster_name)))
            got = -1;
        ok &= got == 1;
        got = nodus_cfg_int(e, "weight", 0, 1000000000, &w);
        if (got == 0)
            nodus_cfg_error(e, "a split entry needs a weight");
        tg->weight = (uint32_t)w;
        ok &= got == 1;
        ok &= read_subset(e, &tg->subset_key, &tg->subset_val);
    }
    s->targets = tmp->targets;
    s->n_targets = n;
    return ok;
}

/* redirect = { location = "https://..." | path = "/new", status = 301 } */
static bool read_redirect(struct nodus_cfg *rd, struct rt_route_spec *s)
{
    long long status = 301;
    bool ok = true;

    ok &= nodus_cfg_str(rd, "location", &s->location) >= 0;
    ok &= nodus_cfg_str(rd, "path", &s->redirect_path) >= 0;
    ok &= nodus_cfg_int(rd, "status", 300, 399, &status) >= 0;
    s->status = (int)status;
    return ok;
}

/* direct_response = { status = 200, body = "ok\n", content_type = "text/plain" } */
static bool read_direct(struct nodus_cfg *dr, struct rt_route_spec *s)
{
    long long status = 200;
    bool ok = true;

    ok &= nodus_cfg_int(dr, "status", 200, 599, &status) >= 0;
    ok &= nodus_cfg_str(dr, "body", &s->body) >= 0;
    ok &= nodus_cfg_str(dr, "content_type", &s->content_type) >= 0;
    s->status = (int)status;
    return ok;
}

/* vhc: the per-route configurations of the route's virtual host (NULL: none) */
static bool read_route(struct rt_table *table, struct nodus_cfg *r,
                       const struct nodus_route_config *vhc)
{
    struct rt_route_spec s = {0};
    const struct nodus_route_config *plugin_config;
    struct route_tmp tmp = {0};
    struct rt_target one = {0};
    struct nodus_cfg *sp, *rd, *dr;
    const char *subset_key = NULL, *subset_val = NULL;
    char err[256];
    uint64_t timeout = 0;
    bool ok = true, has_subset;
    int got, actions = 0;

    ok &= read_match(r, &s, &tmp);

    got = nodus_cfg_str(r, "cluster", &one.cluster_name);
    if (got == 1) {
        actions++;
        s.action = RT_UPSTREAM;
        s.targets = &one;
        s.n_targets = 1;
        if (!(one.cluster = cluster(r, one.cluster_name)))
            ok = false;
    }
    ok &= got >= 0;
    ok &= read_subset(r, &subset_key, &subset_val);
    has_subset = subset_key != NULL;
    one.subset_key = subset_key;
    one.subset_val = subset_val;

    got = nodus_cfg_table(r, "split", &sp);
    if (got == 1) {
        actions++;
        s.action = RT_UPSTREAM;
        ok &= read_split(sp, &s, &tmp);
    }
    ok &= got >= 0;
    got = nodus_cfg_table(r, "redirect", &rd);
    if (got == 1) {
        actions++;
        s.action = RT_REDIRECT;
        ok &= read_redirect(rd, &s);
    }
    ok &= got >= 0;
    got = nodus_cfg_table(r, "direct_response", &dr);
    if (got == 1) {
        actions++;
        s.action = RT_DIRECT;
        ok &= read_direct(dr, &s);
    }
    ok &= got >= 0;

    ok &= nodus_cfg_str(r, "rewrite_prefix", &s.rewrite_prefix) >= 0;
    got = nodus_cfg_duration(r, "timeout", &timeout);
    if (got == 1 && (timeout == 0 || timeout > UINT32_MAX)) {
        nodus_cfg_error(r, "timeout: between 1ms and 49 days");
        got = -1;
    }
    ok &= got >= 0;
    s.timeout_ms = (uint32_t)timeout;

    /* after the route's own keys: the others that name plugins (ratelimit = { ... }) */
    ok &= nodus_cfg_route_config(r, vhc, &plugin_config) >= 0;
    s.config = plugin_config;

    if (actions != 1) {
        nodus_cfg_error(r, "a route has exactly one of cluster, split, redirect, direct_response");
        ok = false;
    } else if (has_subset && s.targets != &one) {
        nodus_cfg_error(r, "subset goes with cluster (in a split, inside each entry)");
        ok = false;
    }
    if (ok && rt_add_route(table, &s, err, sizeof(err)) < 0) {
        nodus_cfg_error(r, "%s", err);
        ok = false;
    }
    route_tmp_free(&tmp);
    return ok;
}

/* The routes in the array part of c: the router's own table (short form) or a routes list. */
static bool read_routes(struct rt_table *table, struct nodus_cfg *c,
                        const struct nodus_route_config *vhc)
{
    struct nodus_cfg *r;
    size_t n = nodus_cfg_len(c);
    bool ok = true;
    int got;

    if (n == 0) {
        nodus_cfg_error(c, "no routes");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        got = nodus_cfg_at(c, i, &r);
        if (got == 0)
            nodus_cfg_error(c, "[%zu]: expected a route table", i + 1);
        if (got != 1)
            ok = false;
        else
            ok &= read_route(table, r, vhc);
    }
    return ok;
}

/* { domains = { ... }, routes = { ... } } */
static bool read_vhost(struct rt_table *table, struct nodus_cfg *vh)
{
    const struct nodus_route_config *vhc;
    struct nodus_cfg *routes;
    struct rt_table *scratch = NULL;
    const char **domains;
    static const char *const any[] = {"*"};
    size_t n;
    char err[256];
    bool ok = read_strings(vh, "domains", &domains, &n);
    int got;

    if (ok && n == 0) {
        nodus_cfg_error(vh, "a virtual host needs domains = { \"host\", ... }");
        ok = false;
    }
    if (ok && rt_add_vhost(table, domains, n, err, sizeof(err)) < 0) {
        nodus_cfg_error(vh, "%s", err);
        ok = false;
    }
    free(domains);
    if (!ok) {
        /* still check the routes, into a table thrown away, to report their errors too */
        scratch = rt_new();
        if (!scratch || rt_add_vhost(scratch, any, 1, err, sizeof(err)) < 0) {
            rt_free(scratch);
            return false;
        }
        table = scratch;
    }
    got = nodus_cfg_table(vh, "routes", &routes);
    if (got == 0)
        nodus_cfg_error(vh, "a virtual host needs routes = { ... }");
    /* the virtual host's own per-route configurations, for its routes that have none */
    ok &= nodus_cfg_route_config(vh, NULL, &vhc) >= 0;
    if (got != 1)
        ok = false;
    else
        ok &= read_routes(table, routes, vhc);
    rt_free(scratch);
    return ok;
}

static void router_destroy(void *conf)
{
    struct router_conf *rc = conf;

    if (!rc)
        return;
    rt_free(rc->table);
    free(rc);
}

static void *router_configure(struct nodus_cfg *cfg)
{
    struct router_conf *rc = calloc(1, sizeof(*rc));
    struct nodus_cfg *vhs, *vh;
    static const char *const any[] = {"*"};
    char err[256];
    bool ok = true;
    size_t n;
    int got;

    if (!rc || !(rc->table = rt_new())) {
        nodus_cfg_error(cfg, "out of memory");
        router_destroy(rc);
        return NULL;
    }
    rc->routed = nodus_counter("router", "routed", "Requests sent to a cluster");
    rc->no_route = nodus_counter("router", "no_route", "Requests answered 404: no route matched");
    rc->direct = nodus_counter("router", "direct", "Requests answered by a direct response");
    rc->redirect = nodus_counter("router", "redirect", "Requests answered by a redirect");

    got = nodus_cfg_table(cfg, "virtual_hosts", &vhs);
    if (got < 0) {
        ok = false;
    } else if (got == 1) {
        n = nodus_cfg_len(vhs);
        if (nodus_cfg_len(cfg) > 0) {
            nodus_cfg_error(cfg, "give routes (the short form) or virtual_hosts, not both");
            ok = false;
        }
        if (n == 0) {
            nodus_cfg_error(vhs, "empty list");
            ok = false;
        }
        for (size_t i = 0; i < n; i++) {
            got = nodus_cfg_at(vhs, i, &vh);
            if (got == 0)
                nodus_cfg_error(vhs, "[%zu]: expected a table", i + 1);
            if (got != 1)
                ok = false;
            else
                ok &= read_vhost(rc->table, vh);
        }
    } else {
        /* short form: the routes of one virtual host serving every domain */
        if (rt_add_vhost(rc->table, any, 1, err, sizeof(err)) < 0) {
            nodus_cfg_error(cfg, "%s", err);
            ok = false;
        } else if (nodus_cfg_len(cfg) == 0) {
            nodus_cfg_error(cfg, "router needs routes: router { { match = ..., cluster = ... } } "
                                 "or router { virtual_hosts = { ... } }");
            ok = false;
        } else {
            ok &= read_routes(rc->table, cfg, NULL);
        }
    }
    if (!ok) {
        router_destroy(rc);
        return NULL;
    }
    return rc;
}

static void *router_worker_init(void *conf, unsigned worker_id)
{
    struct router_conf *rc = conf;
    struct timespec ts;
    struct rt_worker *w;
    struct router_worker *rw = malloc(sizeof(*rw));
    uint64_t seed;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed = ((uint64_t)worker_id << 48) ^ ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
    w = rw ? rt_worker_new(rc->table, seed) : NULL;
    if (!w) {
        free(rw);
        nodus_log(NODUS_LOG_ERR, "router: out of memory on worker %u: it answers 503", worker_id);
        return NULL;
    }
    rw->rt = w;
    return rw;
}

static void router_worker_fini(void *conf, void *worker)
{
    struct router_worker *rw = worker;

    (void)conf;
    if (rw)
        rt_worker_free(rw->rt);
    free(rw);
}

/* ---- requests ---- */

static int req_header(void *arg, const char *name, struct nodus_slice *value)
{
    return nodus_http_req_header(arg, name, value);
}

/* A local answer: status, body and, when not NULL, a content type. */
static int answer(struct nodus_http *h, int status, const char *body, size_t len, const char *ctype)
{
    /* -1 means a response already started: the chain ends either way */
    if (nodus_http_respond(h, status, body, len) == 0 && ctype)
        nodus_http_resp_header_set(h, "content-type", ctype, strlen(ctype));
    return NODUS_RESPOND;
}

#define ANSWER(h, status, text) answer(h, status, text, sizeof(text) - 1, "text/plain")

static int upstream(struct nodus_http *h, const struct nodus_ctx *ctx, const struct rt_route *r,
                    const struct rt_request *req)
{
    const struct router_conf *rc = ctx->conf;
    struct router_worker *rw = ctx->worker;
    const struct rt_target *tg = rt_pick(r, rw->rt);
    long n = rt_rewrite(r, req, rw->buf, sizeof(rw->buf));

    if (n < 0)
        return ANSWER(h, 414, "rewritten path too long\n");
    if (n > 0 && nodus_http_set_path(h, rw->buf, (size_t)n) < 0)
        return ANSWER(h, 500, "path rewrite failed\n");
    if (rt_route_timeout(r))
        nodus_http_set_timeout(h, rt_route_timeout(r));
    if (nodus_http_route(h, tg->cluster, tg->subset_key, tg->subset_val) < 0)
        return ANSWER(h, 503, "no upstream\n");
    nodus_counter_add(ctx->worker_id, rc->routed, 1);
    return NODUS_CONTINUE;
}

static struct rt_request request(struct nodus_http *h)
{
    return (struct rt_request){
        .method = nodus_http_method(h),
        .path = nodus_http_path(h),
        .query = nodus_http_query(h),
        .host = nodus_http_authority(h),
        .header = req_header,
        .arg = h,
    };
}

/* The route of the request, for a plugin before the router that asks for its per-route
 * configuration: matched once, kept for request_headers. */
static const struct nodus_route_config *router_match(struct nodus_http *h,
                                                     const struct nodus_ctx *ctx)
{
    const struct router_conf *rc = ctx->conf;
    struct router_worker *rw = ctx->worker;
    struct router_txn *tx = ctx->txn;

    if (!rw)
        return NULL; /* request_headers answers 503 */
    tx->req = request(h);
    tx->route = rt_match(rc->table, rw->rt, &tx->req);
    tx->matched = true;
    return tx->route ? rt_route_config(tx->route) : NULL;
}

static int router_request_headers(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    const struct router_conf *rc = ctx->conf;
    struct router_worker *rw = ctx->worker;
    const struct router_txn *tx = ctx->txn;
    /* the request as matched early (an edit since then unmatched it: tx is cleared) */
    struct rt_request req = tx->matched ? tx->req : request(h);
    const struct rt_route *r;
    struct nodus_slice body;
    const char *loc;
    long n;

    if (!rw)
        return ANSWER(h, 503, "router unavailable\n");
    r = tx->matched ? tx->route : rt_match(rc->table, rw->rt, &req);
    if (!r) {
        /* routed nowhere: the host answers 404 "no route" and records response flag NR */
        nodus_counter_add(ctx->worker_id, rc->no_route, 1);
        return NODUS_CONTINUE;
    }
    switch (rt_route_action(r)) {
    case RT_UPSTREAM:
        return upstream(h, ctx, r, &req);
    case RT_REDIRECT:
        n = rt_location(r, &req, rw->buf, sizeof(rw->buf), &loc);
        if (n < 0)
            return ANSWER(h, 414, "redirect location too long\n");
        nodus_counter_add(ctx->worker_id, rc->redirect, 1);
        if (nodus_http_respond(h, rt_route_status(r), "", 0) == 0)
            nodus_http_resp_header_set(h, "location", loc, (size_t)n);
        return NODUS_RESPOND;
    case RT_DIRECT:
        nodus_counter_add(ctx->worker_id, rc->direct, 1);
        body = rt_route_body(r);
        return answer(h, rt_route_status(r), body.p, body.len, rt_route_content_type(r));
    }
    return ANSWER(h, 500, "router: bad route\n");
}

static const struct nodus_http_ops router_http = {
    .request_headers = router_request_headers,
    .match = router_match,
};

static size_t router_describe(const void *conf, char *buf, size_t len)
{
    const struct router_conf *rc = conf;

    return rt_describe(rc->table, buf, len);
}

static const struct nodus_plugin router_plugin = {
    .abi = NODUS_PLUGIN_ABI,
    .name = "router",
    .description = "virtual hosts, routes, weighted split, rewrite, redirect, direct response",
    .flags = NODUS_PLUGIN_HTTP | NODUS_PLUGIN_TERMINAL,
    .txn_size = sizeof(struct router_txn),
    .configure = router_configure,
    .destroy = router_destroy,
    .worker_init = router_worker_init,
    .worker_fini = router_worker_fini,
    .http = &router_http,
    .describe = router_describe,
};

NODUS_PLUGIN(router_plugin)
