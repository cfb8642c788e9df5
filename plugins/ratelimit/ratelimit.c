/*
 * ratelimit: Envoy's local rate limit. A default token bucket for every request of the listener,
 * and descriptors: one bucket per distinct value of a request attribute (a header, the peer's
 * principal or address, the path), in bounded tables with LRU eviction. Over a limit the request
 * is answered 429 with x-ratelimit-* and retry-after, and nothing goes upstream; in shadow mode it
 * is only counted. The buckets are shared by all workers (bucket.h: one compare-and-swap per
 * bucket taken, no lock). A router route or virtual host may have limits of its own
 * (ratelimit = { ... } there: configure_route), used instead of these for its requests. A
 * global = { ... } limit is one budget for every node that has it, shared over gossip (global.c).
 * See docs/ratelimit.md.
 *
 *   ratelimit { tokens = 100, fill = 100, interval = "1s", shadow = false,
 *               descriptors = { { key = "header", name = "x-api-key", tokens = 10, fill = 10,
 *                                 interval = "1s", max_keys = 10000 } } }
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nodus/plugin.h>

#include "bucket.h"
#include "global.h"

#define RL_MAX_DESCRIPTORS 8
#define RL_MIN_INTERVAL_MS 50             /* as Envoy's fill_interval */
#define RL_MAX_INTERVAL_MS (24 * 3600000) /* a day */

enum rl_key { RL_KEY_HEADER, RL_KEY_SOURCE_PRINCIPAL, RL_KEY_SOURCE_IP, RL_KEY_PATH };

static const char *const key_names[] = {"header", "source_principal", "source_ip", "path"};

struct rl_descriptor {
    enum rl_key key;
    char *header; /* RL_KEY_HEADER: the header name */
    struct rl_limit limit;
    struct rl_table table;
};

struct rl_conf {
    bool has_default, shadow, rate_headers;
    bool routed; /* routes have limits of their own (rl_configure_route) */
    struct rl_limit limit;
    struct rl_bucket bucket; /* the default bucket */
    struct rl_descriptor desc[RL_MAX_DESCRIPTORS];
    size_t ndesc;
    uint64_t start_ns; /* epochs count from here */
    nodus_counter_t allowed, limited, shadow_limited, evicted;
    struct rl_global *global; /* the mesh-wide limit (global.c), or NULL; not on routes */
};

/* Per request: the tightest limit seen (the one with the fewest tokens left), for x-ratelimit-*
 * on admitted responses; its reset is computed only when the headers are written. When the
 * mesh-wide limit is the tightest, its figures are kept instead (global). */
struct rl_txn {
    const struct rl_conf *rc;   /* the configuration that applied (the listener's or a route's) */
    const struct rl_limit *lim; /* NULL: none seen */
    uint32_t remaining;
    bool global; /* the node's share of the mesh-wide limit is the tightest */
    uint32_t g_limit, g_reset;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- configuration ---- */

/* tokens, fill, interval of table c into l. required: tokens and interval must be there. */
static bool read_limit(struct nodus_cfg *c, struct rl_limit *l, bool *present)
{
    long long tokens = 0, fill = 0;
    uint64_t ms = 0;
    int gt, gf, gi;

    gt = nodus_cfg_int(c, "tokens", 1, RL_MAX_TOKENS, &tokens);
    gf = nodus_cfg_int(c, "fill", 1, RL_MAX_TOKENS, &fill);
    gi = nodus_cfg_duration(c, "interval", &ms);
    *present = gt == 1 || gf == 1 || gi == 1;
    if (gt < 0 || gf < 0 || gi < 0)
        return false;
    if (!*present)
        return true;
    if (gt == 0) {
        nodus_cfg_error(c, "a limit needs tokens (the bucket's size, 1..%u)", RL_MAX_TOKENS);
        return false;
    }
    if (gi == 0) {
        nodus_cfg_error(c, "a limit needs interval (how often fill tokens are added)");
        return false;
    }
    if (gf == 0)
        fill = tokens;
    if (fill > tokens)
        nodus_cfg_error(c,
                        "fill (%lld) is larger than tokens (%lld): the bucket holds tokens at most",
                        fill, tokens);
    if (ms < RL_MIN_INTERVAL_MS || ms > RL_MAX_INTERVAL_MS)
        nodus_cfg_error(c, "'interval' must be between %dms and 24h", RL_MIN_INTERVAL_MS);
    if (fill > tokens || ms < RL_MIN_INTERVAL_MS || ms > RL_MAX_INTERVAL_MS)
        return false;
    l->max = (uint32_t)tokens;
    atomic_init(&l->fill, (uint32_t)fill);
    l->interval_ns = ms * 1000000u;
    return true;
}

/* RFC 9110 token, stored lowercased */
static char *header_name(const char *s)
{
    char *d;

    if (!*s || strlen(s) > 128)
        return NULL;
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("!#$%&'*+-.^_`|~", ch)))
            return NULL;
    }
    d = strdup(s);
    for (char *p = d; p && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + ('a' - 'A'));
    return d;
}

static bool read_descriptor(struct nodus_cfg *c, struct rl_descriptor *d)
{
    const char *key = NULL, *name = NULL;
    long long max_keys = 10000;
    bool ok = true, present;
    int gk, gn;

    gk = nodus_cfg_str(c, "key", &key);
    gn = nodus_cfg_str(c, "name", &name);
    ok &= nodus_cfg_int(c, "max_keys", 1, RL_MAX_KEYS, &max_keys) >= 0;
    ok &= read_limit(c, &d->limit, &present);
    if (gk < 0 || gn < 0)
        return false;
    if (ok && !present) {
        nodus_cfg_error(c, "a descriptor needs a limit: tokens, fill, interval");
        ok = false;
    }
    if (gk == 0) {
        nodus_cfg_error(c, "a descriptor needs key = \"header\" | \"source_principal\" | "
                           "\"source_ip\" | \"path\"");
        return false;
    }
    d->key = (enum rl_key) - 1;
    for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++)
        if (strcmp(key, key_names[i]) == 0)
            d->key = (enum rl_key)i;
    if ((int)d->key < 0) {
        nodus_cfg_error(
            c, "unknown descriptor key \"%s\" (header, source_principal, source_ip, path)", key);
        return false;
    }
    if (d->key == RL_KEY_HEADER) {
        if (gn == 0) {
            nodus_cfg_error(c, "key = \"header\" needs name = \"<header name>\"");
            return false;
        }
        if (!(d->header = header_name(name))) {
            nodus_cfg_error(c, "\"%s\" is not a valid header name", name);
            return false;
        }
    } else if (gn == 1) {
        nodus_cfg_error(c, "name is for key = \"header\" only");
        return false;
    }
    if (ok && rl_table_init(&d->table, (size_t)max_keys) < 0) {
        nodus_cfg_error(c, "out of memory for %lld keys", max_keys);
        return false;
    }
    return ok;
}

static void rl_destroy(void *conf)
{
    struct rl_conf *rc = conf;

    if (!rc)
        return;
    for (size_t i = 0; i < RL_MAX_DESCRIPTORS; i++) {
        free(rc->desc[i].header);
        rl_table_free(&rc->desc[i].table);
    }
    rl_global_put(rc->global);
    free(rc);
}

/* A configuration: the plugin's own table, or a route's (route: then it must limit something). */
static struct rl_conf *rl_read(struct nodus_cfg *cfg, bool route)
{
    struct rl_conf *rc = calloc(1, sizeof(*rc));
    struct nodus_cfg *list, *e;
    bool ok = true;
    int got;

    if (!rc) {
        nodus_cfg_error(cfg, "out of memory");
        return NULL;
    }
    ok &= read_limit(cfg, &rc->limit, &rc->has_default);
    if (!route) /* one per listener: the control side (ticks, reports) is the listener's */
        ok &= rl_global_read(cfg, &rc->global) >= 0;
    ok &= nodus_cfg_bool(cfg, "shadow", &rc->shadow) >= 0;
    ok &= nodus_cfg_bool(cfg, "rate_headers", &rc->rate_headers) >= 0;
    got = nodus_cfg_table(cfg, "descriptors", &list);
    ok &= got >= 0;
    if (got == 1) {
        rc->ndesc = nodus_cfg_len(list);
        if (rc->ndesc == 0 || rc->ndesc > RL_MAX_DESCRIPTORS) {
            nodus_cfg_error(list, "descriptors: 1 to %d entries", RL_MAX_DESCRIPTORS);
            rc->ndesc = 0;
            ok = false;
        }
        for (size_t i = 0; i < rc->ndesc; i++) {
            got = nodus_cfg_at(list, i, &e);
            if (got == 0)
                nodus_cfg_error(list, "[%zu]: expected a table", i + 1);
            ok &= got == 1 && read_descriptor(e, &rc->desc[i]);
        }
    }
    if (ok && !rc->has_default && rc->ndesc == 0 && !rc->global) {
        if (route) {
            nodus_cfg_error(cfg, "no limit: give tokens/fill/interval, or descriptors, or both");
            ok = false;
        } else { /* every limit on routes (Envoy's "disabled here, enabled per route") */
            nodus_cfg_require_route_config(cfg, "no limit: give tokens/fill/interval, "
                                                "descriptors or global, here or on routes of the "
                                                "router (ratelimit = { ... } in a route)");
        }
    }
    if (!ok) {
        rl_destroy(rc);
        return NULL;
    }
    rc->start_ns = now_ns();
    if (rc->has_default)
        rl_bucket_init(&rc->bucket, &rc->limit, 0);
    rc->allowed = nodus_counter("ratelimit", "allowed", "Requests admitted by the rate limit");
    rc->limited = nodus_counter("ratelimit", "limited", "Requests answered 429 (over a limit)");
    rc->shadow_limited = nodus_counter("ratelimit", "shadow_limited",
                                       "Requests over a limit let through (shadow mode)");
    rc->evicted = nodus_counter("ratelimit", "keys_evicted",
                                "Descriptor keys evicted (least recently used of their set)");
    return rc;
}

static void *rl_configure(struct nodus_cfg *cfg)
{
    return rl_read(cfg, false);
}

/* A route's limits (ratelimit = { ... } in a route or virtual host of the router): a whole
 * configuration, as Envoy's per-route local rate limit, with buckets of its own; the requests
 * that take the route use it instead of the listener's. */
static void *rl_configure_route(void *conf, struct nodus_cfg *cfg)
{
    struct rl_conf *lc = conf, *rc = rl_read(cfg, true);

    if (rc)
        lc->routed = true;
    return rc;
}

static void rl_destroy_route(void *conf, void *route_conf)
{
    (void)conf;
    rl_destroy(route_conf);
}

static size_t rl_describe(const void *conf, char *buf, size_t len)
{
    const struct rl_conf *rc = conf;
    size_t n = 0;

#define OUT(...)                                                                                   \
    n += (size_t)snprintf(buf + (n < len ? n : len), n < len ? len - n : 0, __VA_ARGS__)
    OUT("{\"shadow\":%s,\"rate_headers\":%s,\"route_limits\":%s", rc->shadow ? "true" : "false",
        rc->rate_headers ? "true" : "false", rc->routed ? "true" : "false");
    if (rc->has_default)
        OUT(",\"tokens\":%u,\"fill\":%u,\"interval_ms\":%llu", rc->limit.max,
            (unsigned)rc->limit.fill, (unsigned long long)(rc->limit.interval_ns / 1000000));
    OUT(",\"descriptors\":[");
    for (size_t i = 0; i < rc->ndesc; i++) {
        const struct rl_descriptor *d = &rc->desc[i];

        OUT("%s{\"key\":\"%s\"", i ? "," : "", key_names[d->key]);
        if (d->header)
            OUT(",\"name\":\"%s\"", d->header);
        OUT(",\"tokens\":%u,\"fill\":%u,\"interval_ms\":%llu,\"max_keys\":%zu}", d->limit.max,
            (unsigned)d->limit.fill, (unsigned long long)(d->limit.interval_ns / 1000000),
            rl_table_capacity(&d->table));
    }
    OUT("]");
    if (rc->global)
        n += rl_global_describe(rc->global, buf + (n < len ? n : len), n < len ? len - n : 0);
    OUT("}");
#undef OUT
    return n;
}

/* ---- hooks ---- */

/* The descriptor's value for this request; false when it does not apply (no such header, no
 * principal): then the descriptor does not limit the request, as in Envoy. */
static bool descriptor_value(struct nodus_http *h, const struct rl_descriptor *d,
                             struct nodus_slice *v)
{
    switch (d->key) {
    case RL_KEY_HEADER:
        return nodus_http_req_header(h, d->header, v) == 1;
    case RL_KEY_SOURCE_PRINCIPAL:
        *v = nodus_http_peer_principal(h);
        return v->len > 0;
    case RL_KEY_SOURCE_IP:
        *v = nodus_http_peer_addr(h);
        return v->len > 0;
    case RL_KEY_PATH:
        *v = nodus_http_path(h);
        return true;
    }
    return false;
}

/* The limiter's clock for a request, in nanoseconds: the worker's clock (no system call), never
 * before the configuration started (a worker's clock may be a little older than the configure()
 * that read start_ns). */
static uint64_t req_now(struct nodus_http *h, const struct rl_conf *rc)
{
    uint64_t now = nodus_http_now_us(h) * 1000;

    return now > rc->start_ns ? now : rc->start_ns;
}

/* Seconds until the limit's next fill, rounded up (at least 1: retry-after is whole seconds). */
static uint32_t reset_s(const struct rl_conf *rc, const struct rl_limit *l, uint64_t now)
{
    uint64_t ns = rl_until_fill(l, now, rc->start_ns);

    return (uint32_t)((ns + 999999999u) / 1000000000u);
}

static void note(struct rl_txn *tx, const struct rl_limit *l, struct rl_take t)
{
    if (tx->lim && t.remaining >= tx->remaining)
        return;
    tx->lim = l;
    tx->remaining = t.remaining;
}

static void put_u32(struct nodus_http *h, const char *name, uint32_t v)
{
    char b[16];
    int n = snprintf(b, sizeof(b), "%u", v);

    nodus_http_resp_header_set(h, name, b, (size_t)n);
}

/* x-ratelimit-* of limit l with remaining tokens left; returns the reset written. */
static uint32_t rate_headers(struct nodus_http *h, const struct rl_conf *rc,
                             const struct rl_limit *l, uint32_t remaining)
{
    uint32_t reset = reset_s(rc, l, req_now(h, rc));

    put_u32(h, "x-ratelimit-limit", l->max);
    put_u32(h, "x-ratelimit-remaining", remaining);
    put_u32(h, "x-ratelimit-reset", reset);
    return reset;
}

/* x-ratelimit-* of the node's share of the mesh-wide limit. */
static void global_headers(struct nodus_http *h, uint32_t limit, uint32_t remaining, uint32_t reset)
{
    put_u32(h, "x-ratelimit-limit", limit);
    put_u32(h, "x-ratelimit-remaining", remaining);
    put_u32(h, "x-ratelimit-reset", reset);
}

static int rl_request_headers(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    struct rl_conf *rc = ctx->conf, *route;
    struct rl_txn *tx = ctx->txn;
    const struct rl_limit *over = NULL;
    uint64_t now;
    struct rl_take t;

    /* the route's own limits, when it has some, instead of these */
    if (rc->routed && (route = nodus_http_route_config(h, ctx)))
        rc = route;
    if (!rc->has_default && !rc->ndesc && !rc->global)
        return NODUS_CONTINUE; /* limits on routes only, and this route has none */
    now = req_now(h, rc);
    tx->rc = rc;
    for (size_t i = 0; i < rc->ndesc && !over; i++) {
        struct rl_descriptor *d = &rc->desc[i];
        struct nodus_slice v;
        _Atomic uint64_t *w;
        uint64_t e;
        bool evicted;

        if (!descriptor_value(h, d, &v))
            continue;
        e = rl_epoch(&d->limit, now, rc->start_ns);
        w = rl_table_get(&d->table, &d->limit, v.p, v.len, e, (uint32_t)(now >> 20), &evicted);
        if (evicted)
            nodus_counter_add(ctx->worker_id, rc->evicted, 1);
        t = rl_take(w, &d->limit, e);
        note(tx, &d->limit, t);
        if (!t.ok)
            over = &d->limit;
    }
    /* like Envoy's always_consume_default_token_bucket: the default bucket counts every request
     * that no descriptor refused */
    if (!over && rc->has_default) {
        t = rl_take(&rc->bucket.word, &rc->limit, rl_epoch(&rc->limit, now, rc->start_ns));
        note(tx, &rc->limit, t);
        if (!t.ok)
            over = &rc->limit;
    }
    if (!over && rc->global) { /* the mesh-wide limit: this node's share of it */
        uint32_t glimit, gleft, greset;

        if (!rl_global_take(rc->global, now, &glimit, &gleft, &greset)) {
            if (rc->shadow) {
                nodus_counter_add(ctx->worker_id, rc->shadow_limited, 1);
                return NODUS_CONTINUE;
            }
            nodus_counter_add(ctx->worker_id, rc->limited, 1);
            tx->lim = NULL;
            tx->global = false; /* the headers are written here */
            if (nodus_http_respond(h, 429, "rate limited\n", 13) < 0)
                return NODUS_CONTINUE;
            global_headers(h, glimit, 0, greset);
            put_u32(h, "retry-after", greset);
            return NODUS_RESPOND;
        }
        if (!tx->lim || gleft < tx->remaining) {
            tx->global = true;
            tx->remaining = gleft;
            tx->g_limit = glimit;
            tx->g_reset = greset;
        }
    }
    if (!over) {
        nodus_counter_add(ctx->worker_id, rc->allowed, 1);
        return NODUS_CONTINUE;
    }
    if (rc->shadow) {
        nodus_counter_add(ctx->worker_id, rc->shadow_limited, 1);
        return NODUS_CONTINUE;
    }
    nodus_counter_add(ctx->worker_id, rc->limited, 1);
    tx->lim = NULL; /* the headers are written here */
    tx->global = false;
    if (nodus_http_respond(h, 429, "rate limited\n", 13) < 0)
        return NODUS_CONTINUE;
    /* of the limit that refused, whatever the others had left */
    put_u32(h, "retry-after", rate_headers(h, rc, over, 0));
    return NODUS_RESPOND;
}

static int rl_response_headers(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    const struct rl_txn *tx = ctx->txn;

    if (!tx->rc || !tx->rc->rate_headers)
        return NODUS_CONTINUE;
    if (tx->global)
        global_headers(h, tx->g_limit, tx->remaining, tx->g_reset);
    else if (tx->lim)
        rate_headers(h, tx->rc, tx->lim, tx->remaining);
    return NODUS_CONTINUE;
}

static const struct nodus_http_ops rl_http = {
    .request_headers = rl_request_headers,
    .response_headers = rl_response_headers,
};

/* The mesh-wide limit's control side (global.c): reports and shares, on the main thread. */
static void rl_tick(void *conf, uint64_t now_ms)
{
    struct rl_conf *rc = conf;

    if (rc->global)
        rl_global_tick(rc->global, now_ms);
}

static void rl_event(void *conf, const struct nodus_gossip_event *ev)
{
    struct rl_conf *rc = conf;

    if (rc->global)
        rl_global_event(rc->global, ev);
}

static const struct nodus_control_ops rl_control = {
    .tick_ms = 100,
    .tick = rl_tick,
    .event_prefix = RL_GLOBAL_PREFIX,
    .event = rl_event,
};

static const struct nodus_plugin ratelimit_plugin = {
    .abi = NODUS_PLUGIN_ABI,
    .name = "ratelimit",
    .description = "local rate limit (Envoy's): token buckets shared by the workers, per-key "
                   "descriptors, 429",
    .flags = NODUS_PLUGIN_HTTP,
    .txn_size = sizeof(struct rl_txn),
    .configure = rl_configure,
    .destroy = rl_destroy,
    .http = &rl_http,
    .describe = rl_describe,
    .control = &rl_control,
    .configure_route = rl_configure_route,
    .destroy_route = rl_destroy_route,
};

NODUS_PLUGIN(ratelimit_plugin)
