/*
 * tracing: distributed tracing as Envoy's HTTP connection manager does it. Reads the incoming
 * context (W3C traceparent/tracestate, B3 single or multi), makes a new span per hop whose parent
 * is the incoming span, sends the updated context upstream, generates x-request-id when absent,
 * samples (a percentage, the upstream's decision, or forced), and hands sampled spans to an
 * exporter thread (exporter.h) that posts OTLP/HTTP JSON and/or Zipkin v2 JSON. Bad context is
 * never forwarded: the trace restarts and the event is counted. See docs/tracing.md.
 *
 *   tracing { sampling = 1, otlp = "127.0.0.1:4318", zipkin = "127.0.0.1:9411",
 *             propagate = { "w3c", "b3" }, service_name = "nodus" }
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <nodus/plugin.h>

#include "exporter.h"
#include "span.h"
#include "tracectx.h"

#define PROP_W3C 1
#define PROP_B3 2
#define PROP_B3_SINGLE 4

struct tr_conf {
    uint32_t sampling; /* percent, 0..100 */
    unsigned propagate;
    uint8_t kind;
    bool request_id;
    char *service, *node;
    struct tr_exporter exp;
    nodus_counter_t spans, dropped, invalid, restarted, tracestate_dropped, request_ids;
    nodus_counter_t exported, export_failed, export_retries;
};

struct tr_worker {
    uint64_t rng;
    struct tr_queue *q;
};

struct tr_txn {
    uint8_t trace_id[16], span_id[8], parent_id[8];
    bool active, has_parent, sampled, debug;
    uint64_t start_real_ns, start_mono_ns;
};

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- configuration ---- */

static void tr_destroy(void *conf)
{
    struct tr_conf *tc = conf;

    if (!tc)
        return;
    tr_exporter_fini(&tc->exp);
    free(tc->service);
    free(tc->node);
    free(tc);
}

static bool read_dest(struct nodus_cfg *c, struct tr_conf *tc, const char *key, enum tr_format f)
{
    const char *addr;
    int got = nodus_cfg_str(c, key, &addr);

    if (got <= 0)
        return got == 0;
    if (tr_dest_init(&tc->exp.dest[tc->exp.ndest], f, addr) < 0) {
        nodus_cfg_error(c, "'%s' must be an address such as \"127.0.0.1:4318\" or \"[::1]:4318\"",
                        key);
        return false;
    }
    tc->exp.ndest++;
    return true;
}

static bool read_propagate(struct nodus_cfg *c, unsigned *out)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"w3c", PROP_W3C}, {"b3", PROP_B3}, {"b3single", PROP_B3_SINGLE}};
    struct nodus_cfg *t;
    const char *s;
    bool ok = true;
    int got = nodus_cfg_table(c, "propagate", &t);

    if (got <= 0)
        return got == 0;
    *out = 0;
    for (size_t i = 0, n = nodus_cfg_len(t); i < n; i++) {
        unsigned bit = 0;

        if (nodus_cfg_str_at(t, i, &s) != 1) {
            nodus_cfg_error(t, "[%zu]: expected \"w3c\", \"b3\" or \"b3single\"", i + 1);
            ok = false;
            continue;
        }
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
            if (strcmp(s, names[k].name) == 0)
                bit = names[k].bit;
        if (!bit) {
            nodus_cfg_error(t, "[%zu]: unknown format \"%s\" (w3c, b3, b3single)", i + 1, s);
            ok = false;
        }
        *out |= bit;
    }
    if (ok && (*out & PROP_B3) && (*out & PROP_B3_SINGLE)) {
        nodus_cfg_error(t, "b3 and b3single: choose one B3 form");
        ok = false;
    }
    return ok;
}

static void *tr_configure(struct nodus_cfg *cfg)
{
    struct tr_conf *tc = calloc(1, sizeof(*tc));
    const char *service = "nodus", *node = NULL, *kind = "server";
    long long sampling = 1, queue = 4096, batch = 512, retries = 3;
    uint64_t flush = 1000, timeout = 2000;
    bool ok = true;

    if (!tc) {
        nodus_cfg_error(cfg, "out of memory");
        return NULL;
    }
    tc->exp.stop_fd = -1;
    tc->propagate = PROP_W3C | PROP_B3;
    tc->request_id = true;
    ok &= nodus_cfg_int(cfg, "sampling", 0, 100, &sampling) >= 0;
    ok &= read_dest(cfg, tc, "otlp", TR_OTLP);
    ok &= read_dest(cfg, tc, "zipkin", TR_ZIPKIN);
    ok &= read_propagate(cfg, &tc->propagate);
    ok &= nodus_cfg_str(cfg, "service_name", &service) >= 0;
    ok &= nodus_cfg_str(cfg, "node_id", &node) >= 0;
    ok &= nodus_cfg_str(cfg, "kind", &kind) >= 0;
    ok &= nodus_cfg_bool(cfg, "request_id", &tc->request_id) >= 0;
    ok &= nodus_cfg_int(cfg, "queue", 16, 65536, &queue) >= 0;
    ok &= nodus_cfg_int(cfg, "batch", 1, 10000, &batch) >= 0;
    ok &= nodus_cfg_int(cfg, "retries", 0, 10, &retries) >= 0;
    ok &= nodus_cfg_duration(cfg, "flush", &flush) >= 0;
    ok &= nodus_cfg_duration(cfg, "timeout", &timeout) >= 0;
    if (ok && strcmp(kind, "server") != 0 && strcmp(kind, "client") != 0) {
        nodus_cfg_error(cfg, "'kind' must be \"server\" (inbound) or \"client\" (outbound)");
        ok = false;
    }
    if (ok && (flush < 10 || flush > 60000)) {
        nodus_cfg_error(cfg, "'flush' must be between 10ms and 60s");
        ok = false;
    }
    if (ok && (timeout < 10 || timeout > 60000)) {
        nodus_cfg_error(cfg, "'timeout' must be between 10ms and 60s");
        ok = false;
    }
    if (ok && (!*service || strlen(service) > 255)) {
        nodus_cfg_error(cfg, "'service_name' must be 1 to 255 characters");
        ok = false;
    }
    if (!ok) {
        tr_destroy(tc);
        return NULL;
    }
    tc->sampling = (uint32_t)sampling;
    tc->kind = kind[0] == 'c' ? TR_KIND_CLIENT : TR_KIND_SERVER;
    tc->service = strdup(service);
    tc->node = node ? strdup(node) : NULL;
    tc->exp.res = (struct tr_resource){.service = tc->service, .node = tc->node};
    tc->exp.queue_len = (size_t)queue;
    tc->exp.batch = (size_t)batch;
    tc->exp.flush_ms = (uint32_t)flush;
    tc->exp.timeout_ms = (uint32_t)timeout;
    tc->exp.max_retries = (uint32_t)retries;
    if (!tc->service || (node && !tc->node) || tr_exporter_init(&tc->exp) < 0) {
        nodus_cfg_error(cfg, "out of memory");
        tr_destroy(tc);
        return NULL;
    }
    tc->spans = nodus_counter("tracing", "spans", "Sampled spans handed to the exporter");
    tc->dropped = nodus_counter("tracing", "spans_dropped", "Spans dropped: exporter queue full");
    tc->invalid = nodus_counter("tracing", "invalid_context",
                                "Malformed traceparent/b3 headers (discarded, trace restarted)");
    tc->restarted = nodus_counter("tracing", "conflicting_context",
                                  "W3C and B3 contexts naming different traces (restarted)");
    tc->tracestate_dropped = nodus_counter("tracing", "tracestate_dropped",
                                           "Invalid or oversized tracestate headers dropped");
    tc->request_ids = nodus_counter("tracing", "request_ids", "x-request-id generated");
    tc->exported = nodus_counter("tracing", "spans_exported", "Spans accepted by a collector");
    tc->export_failed = nodus_counter("tracing", "spans_export_failed",
                                      "Spans a collector did not accept after the retries");
    tc->export_retries = nodus_counter("tracing", "export_retries", "Batches posted again");
    return tc;
}

static size_t tr_describe(const void *conf, char *buf, size_t len)
{
    const struct tr_conf *tc = conf;
    size_t n = 0;

#define OUT(...)                                                                                   \
    n += (size_t)snprintf(buf + (n < len ? n : len), n < len ? len - n : 0, __VA_ARGS__)
    OUT("{\"sampling\":%u,\"kind\":\"%s\",\"propagate\":[", tc->sampling,
        tc->kind == TR_KIND_CLIENT ? "client" : "server");
    OUT("%s%s%s", tc->propagate & PROP_W3C ? "\"w3c\"" : "",
        (tc->propagate & PROP_W3C) && (tc->propagate & (PROP_B3 | PROP_B3_SINGLE)) ? "," : "",
        tc->propagate & PROP_B3          ? "\"b3\""
        : tc->propagate & PROP_B3_SINGLE ? "\"b3single\""
                                         : "");
    OUT("],\"collectors\":[");
    for (size_t i = 0; i < tc->exp.ndest; i++)
        OUT("%s\"http://%s%s\"", i ? "," : "", tc->exp.dest[i].host, tc->exp.dest[i].path);
    OUT("],\"queue\":%zu,\"batch\":%zu}", tc->exp.queue_len, tc->exp.batch);
#undef OUT
    return n;
}

static void *tr_worker_init(void *conf, unsigned worker_id)
{
    struct tr_conf *tc = conf;
    struct tr_worker *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng))
        w->rng = clock_ns(CLOCK_MONOTONIC) ^ ((uint64_t)worker_id << 32);
    w->rng |= 1;
    w->q = tr_exporter_attach(&tc->exp, worker_id);
    if (!w->q)
        nodus_log(NODUS_LOG_ERR,
                  "tracing: worker %u has no span queue (out of memory): its "
                  "spans are dropped",
                  worker_id);
    return w;
}

static void tr_worker_fini(void *conf, void *worker)
{
    (void)conf;
    free(worker); /* the queue belongs to the exporter, freed by destroy() */
}

/* ---- hooks ---- */

static uint64_t rnd(struct tr_worker *w)
{
    /* xorshift64* */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * UINT64_C(0x2545f4914f6cdd1d);
}

static void rnd_id(struct tr_worker *w, uint8_t *out, size_t n)
{
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = rnd(w);

            memcpy(out + i, &r, n - i < 8 ? n - i : 8);
        }
    } while (out[0] == 0 && memcmp(out, out + 1, n - 1) == 0); /* never all zero */
}

static bool has(struct nodus_http *h, const char *name, struct nodus_slice *v)
{
    return nodus_http_req_header(h, name, v) == 1;
}

/* x-request-id: a UUID version 4 */
static void gen_request_id(struct tr_worker *w, char out[36])
{
    uint8_t b[16];
    char hex[32];

    rnd_id(w, b, 16);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    tc_hex(hex, b, 16);
    memcpy(out, hex, 8);
    out[8] = '-';
    memcpy(out + 9, hex + 8, 4);
    out[13] = '-';
    memcpy(out + 14, hex + 12, 4);
    out[18] = '-';
    memcpy(out + 19, hex + 16, 4);
    out[23] = '-';
    memcpy(out + 24, hex + 20, 12);
}

/* The request headers the hook reads, found in one pass over the headers (first of each name). */
enum {
    H_TRACEPARENT,
    H_TRACESTATE,
    H_B3,
    H_B3_TRACE,
    H_B3_SPAN,
    H_B3_PARENT,
    H_B3_SAMPLED,
    H_B3_FLAGS,
    H_CLIENT_TRACE,
    H_FORCE_TRACE,
    H_REQUEST_ID,
    H__N
};
static const char *const hnames[H__N] = {
    "traceparent",       "tracestate",          "b3",           "x-b3-traceid",
    "x-b3-spanid",       "x-b3-parentspanid",   "x-b3-sampled", "x-b3-flags",
    "x-client-trace-id", "x-envoy-force-trace", "x-request-id",
};

struct hview {
    struct nodus_slice v[H__N];
    unsigned present; /* bit k: hnames[k] was there */
};

static void scan_headers(struct nodus_http *h, struct hview *hv)
{
    struct nodus_slice n, v;

    hv->present = 0;
    for (unsigned i = 0; nodus_http_req_header_index(h, i, &n, &v) == 1; i++) {
        char c = n.len ? (char)(n.p[0] | 0x20) : 0;

        if (c != 't' && c != 'b' && c != 'x')
            continue; /* none of ours: most headers stop here */
        for (unsigned k = 0; k < H__N; k++)
            if (!(hv->present & (1u << k)) && n.len == strlen(hnames[k]) &&
                strncasecmp(n.p, hnames[k], n.len) == 0) {
                hv->v[k] = v;
                hv->present |= 1u << k;
                break;
            }
    }
}

static bool hv_get(const struct hview *hv, unsigned k, struct nodus_slice *v)
{
    if (!(hv->present & (1u << k)))
        return false;
    *v = hv->v[k];
    return true;
}

/* The incoming B3 context: the single header first, else the X-B3-* headers. *seen: any b3
 * header was there (to be removed when not forwarded). */
static int read_b3(const struct hview *hv, struct tc_ctx *c, bool *seen)
{
    struct nodus_slice v, t, s, sm, f, p;
    struct tc_b3_headers m = {0};
    int r;

    if (hv_get(hv, H_B3, &v)) {
        *seen = true;
        return tc_parse_b3(v.p, v.len, c);
    }
    if (hv_get(hv, H_B3_TRACE, &t))
        m.trace = t.p, m.trace_len = t.len;
    if (hv_get(hv, H_B3_SPAN, &s))
        m.span = s.p, m.span_len = s.len;
    if (hv_get(hv, H_B3_SAMPLED, &sm))
        m.sampled = sm.p, m.sampled_len = sm.len;
    if (hv_get(hv, H_B3_FLAGS, &f))
        m.flags = f.p, m.flags_len = f.len;
    r = tc_parse_b3_multi(&m, c);
    *seen = r != 0 || hv_get(hv, H_B3_PARENT, &p);
    if (r == 1 && hv_get(hv, H_B3_PARENT, &p) && !(p.len == 16 && m.trace))
        r = -1; /* a parent without ids, or not 16 hex */
    return r;
}

static void remove_b3(struct nodus_http *h)
{
    nodus_http_req_header_remove(h, "b3");
    nodus_http_req_header_remove(h, "x-b3-traceid");
    nodus_http_req_header_remove(h, "x-b3-spanid");
    nodus_http_req_header_remove(h, "x-b3-parentspanid");
    nodus_http_req_header_remove(h, "x-b3-sampled");
    nodus_http_req_header_remove(h, "x-b3-flags");
}

/* Sends the context upstream in the configured formats. */
static void propagate(struct nodus_http *h, const struct tr_conf *tc, const struct tr_txn *tx,
                      bool b3_seen)
{
    char b[TC_TRACEPARENT_LEN + 40];

    if (tc->propagate & PROP_W3C) {
        tc_format_traceparent(b, tx->trace_id, tx->span_id, tx->sampled);
        nodus_http_req_header_set(h, "traceparent", b, TC_TRACEPARENT_LEN);
    }
    if (b3_seen)
        remove_b3(h);
    if (tc->propagate & PROP_B3) {
        tc_hex(b, tx->trace_id, 16);
        nodus_http_req_header_add(h, "x-b3-traceid", b, 32);
        tc_hex(b, tx->span_id, 8);
        nodus_http_req_header_add(h, "x-b3-spanid", b, 16);
        if (tx->has_parent) {
            tc_hex(b, tx->parent_id, 8);
            nodus_http_req_header_add(h, "x-b3-parentspanid", b, 16);
        }
        if (tx->debug)
            nodus_http_req_header_add(h, "x-b3-flags", "1", 1);
        else
            nodus_http_req_header_add(h, "x-b3-sampled", tx->sampled ? "1" : "0", 1);
    } else if (tc->propagate & PROP_B3_SINGLE) {
        size_t n = 0;

        tc_hex(b, tx->trace_id, 16);
        n = 32;
        b[n++] = '-';
        tc_hex(b + n, tx->span_id, 8);
        n += 16;
        b[n++] = '-';
        b[n++] = tx->debug ? 'd' : tx->sampled ? '1' : '0';
        if (tx->has_parent) {
            b[n++] = '-';
            tc_hex(b + n, tx->parent_id, 8);
            n += 16;
        }
        nodus_http_req_header_add(h, "b3", b, n);
    }
}

static int tr_request_headers(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    const struct tr_conf *tc = ctx->conf;
    struct tr_worker *w = ctx->worker;
    struct tr_txn *tx = ctx->txn;
    struct nodus_slice v, ts;
    struct hview hv;
    struct tc_ctx wc, bc, in = {.sampled = -1};
    int wr = 0, br;
    bool b3_seen = false, have = false, ts_ok = false, ts_seen;

    if (!w)
        return NODUS_CONTINUE; /* no per-worker state (out of memory): tracing is off here */
    tx->start_real_ns = clock_ns(CLOCK_REALTIME);
    tx->start_mono_ns = clock_ns(CLOCK_MONOTONIC);

    scan_headers(h, &hv);
    if (hv_get(&hv, H_TRACEPARENT, &v))
        wr = tc_parse_traceparent(v.p, v.len, &wc);
    br = read_b3(&hv, &bc, &b3_seen);
    if (wr < 0 || br < 0)
        nodus_counter_add(ctx->worker_id, tc->invalid, 1);
    if (wr == 1 && br == 1 && bc.has_ids && memcmp(wc.trace_id, bc.trace_id, 16) != 0) {
        nodus_counter_add(ctx->worker_id, tc->restarted, 1); /* two traces: trust neither */
    } else if (wr == 1) {
        in = wc;
        have = true;
        if (br == 1)
            in.debug = bc.debug;
    } else if (br == 1 && wr == 0) {
        in = bc;
        have = true;
    }
    /* a malformed header next to a valid one restarts too: who sent what is unclear */
    if (wr < 0 || br < 0)
        have = false;

    /* tracestate travels with a valid traceparent only */
    ts_seen = hv_get(&hv, H_TRACESTATE, &ts);
    if (ts_seen && have && wr == 1 && (tc->propagate & PROP_W3C)) {
        ts_ok = tc_tracestate_valid(ts.p, ts.len) == 1;
        if (!ts_ok)
            nodus_counter_add(ctx->worker_id, tc->tracestate_dropped, 1);
    }
    if (ts_seen && !ts_ok)
        nodus_http_req_header_remove(h, "tracestate");

    tx->debug = have && in.debug;
    if (tx->debug || hv_get(&hv, H_CLIENT_TRACE, &v) || hv_get(&hv, H_FORCE_TRACE, &v))
        tx->sampled = true;
    else if (have && in.sampled >= 0)
        tx->sampled = in.sampled == 1;
    else
        tx->sampled = tc->sampling && (rnd(w) % 10000) < tc->sampling * 100u;

    if (have && in.has_ids) {
        memcpy(tx->trace_id, in.trace_id, 16);
        memcpy(tx->parent_id, in.span_id, 8);
        tx->has_parent = true;
    } else {
        rnd_id(w, tx->trace_id, 16);
    }
    rnd_id(w, tx->span_id, 8);
    tx->active = true;

    if (tc->request_id && !hv_get(&hv, H_REQUEST_ID, &v)) {
        char id[36];

        nodus_http_req_header_add(h, "x-request-id", id, (gen_request_id(w, id), 36));
        nodus_counter_add(ctx->worker_id, tc->request_ids, 1);
    }
    if (!(tc->propagate & PROP_W3C) && wr != 0)
        nodus_http_req_header_remove(h, "traceparent");
    propagate(h, tc, tx, b3_seen);
    return NODUS_CONTINUE;
}

/* Copies a slice into a fixed array, truncated, NUL-terminated. */
static void copy(char *dst, size_t cap, struct nodus_slice s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;

    memcpy(dst, s.p, n);
    dst[n] = '\0';
}

/* Appends p to dst (cap bytes with the NUL), truncating; *len is dst's length. */
static void append(char *dst, size_t cap, size_t *len, const char *p, size_t n)
{
    if (n > cap - 1 - *len)
        n = cap - 1 - *len;
    memcpy(dst + *len, p, n);
    *len += n;
    dst[*len] = '\0';
}

static int64_t content_length(int found, struct nodus_slice v)
{
    int64_t n = 0;

    if (found != 1 || v.len == 0 || v.len > 18)
        return -1;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        n = n * 10 + (v.p[i] - '0');
    }
    return n;
}

/* Moves what the exporter thread counted into this worker's counters. */
static void take_stats(const struct nodus_ctx *ctx)
{
    struct tr_conf *tc = ctx->conf;
    struct tr_stats *st = &tc->exp.stats;
    uint64_t n;

    if (!atomic_load_explicit(&st->dirty, memory_order_relaxed) ||
        !atomic_exchange_explicit(&st->dirty, false, memory_order_acquire))
        return;
    if ((n = atomic_exchange(&st->exported, 0)))
        nodus_counter_add(ctx->worker_id, tc->exported, n);
    if ((n = atomic_exchange(&st->failed, 0)))
        nodus_counter_add(ctx->worker_id, tc->export_failed, n);
    if ((n = atomic_exchange(&st->retries, 0)))
        nodus_counter_add(ctx->worker_id, tc->export_retries, n);
}

static void tr_log(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    const struct tr_conf *tc = ctx->conf;
    struct tr_worker *w = ctx->worker;
    const struct tr_txn *tx = ctx->txn;
    struct nodus_slice v, host, path, query;
    struct tr_span *s;
    size_t len;
    int n;

    take_stats(ctx);
    if (!tx->active || !tx->sampled)
        return;
    if (!w->q || !(s = tr_queue_reserve(w->q))) {
        nodus_counter_add(ctx->worker_id, tc->dropped, 1);
        return;
    }
    memcpy(s->trace_id, tx->trace_id, 16);
    memcpy(s->span_id, tx->span_id, 8);
    memcpy(s->parent_id, tx->parent_id, 8);
    s->has_parent = tx->has_parent;
    s->debug = tx->debug;
    s->kind = tc->kind;
    s->status = (uint16_t)nodus_http_status(h);
    s->start_ns = tx->start_real_ns;
    s->dur_ns = clock_ns(CLOCK_MONOTONIC) - tx->start_mono_ns;
    n = nodus_http_req_header(h, "content-length", &v);
    s->req_size = content_length(n, v);
    n = nodus_http_resp_header(h, "content-length", &v);
    s->resp_size = s->status ? content_length(n, v) : -1;
    copy(s->method, sizeof(s->method), nodus_http_method(h));
    if (!has(h, "host", &host))
        host = nodus_http_authority(h);
    path = nodus_http_path(h);
    query = nodus_http_query(h);
    /* name: host + "/" + "*" (Envoy's default operation name); url: http://host/path?query */
    len = 0;
    append(s->name, sizeof(s->name), &len, host.p, host.len);
    append(s->name, sizeof(s->name), &len, "/*", 2);
    len = 0;
    append(s->url, sizeof(s->url), &len, "http://", 7);
    append(s->url, sizeof(s->url), &len, host.p, host.len);
    append(s->url, sizeof(s->url), &len, path.p, path.len);
    if (query.len) {
        append(s->url, sizeof(s->url), &len, "?", 1);
        append(s->url, sizeof(s->url), &len, query.p, query.len);
    }
    copy(s->peer, sizeof(s->peer), nodus_http_peer_addr(h));
    copy(s->principal, sizeof(s->principal), nodus_http_peer_principal(h));
    if (has(h, "user-agent", &v))
        copy(s->user_agent, sizeof(s->user_agent), v);
    else
        s->user_agent[0] = '\0';
    if (has(h, "x-request-id", &v))
        copy(s->request_id, sizeof(s->request_id), v);
    else
        s->request_id[0] = '\0';
    tr_queue_commit(w->q);
    nodus_counter_add(ctx->worker_id, tc->spans, 1);
}

static const struct nodus_http_ops tr_http = {
    .request_headers = tr_request_headers,
    .log = tr_log,
};

static const struct nodus_plugin tracing_plugin = {
    .abi = NODUS_PLUGIN_ABI,
    .name = "tracing",
    .description = "distributed tracing: W3C and B3 propagation, sampling, spans exported as "
                   "OTLP/HTTP or Zipkin JSON",
    .flags = NODUS_PLUGIN_HTTP,
    .txn_size = sizeof(struct tr_txn),
    .configure = tr_configure,
    .destroy = tr_destroy,
    .worker_init = tr_worker_init,
    .worker_fini = tr_worker_fini,
    .http = &tr_http,
    .describe = tr_describe,
};

NODUS_PLUGIN(tracing_plugin)
