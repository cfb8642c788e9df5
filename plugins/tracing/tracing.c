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
    int64_t real_off_us;   /* CLOCK_REALTIME - CLOCK_MONOTONIC, in microseconds */
    uint64_t real_next_us; /* when to read it again (monotonic) */
};

/* Per request. host, user_agent and request_id are the values of those headers as the request
 * hook saw them (len 0: absent): the request as the client sent it, the span's attributes even when
 * a later plugin (or the router) replaces a header. They point into the request's head, which the
 * core keeps until the log hook has run (a header edit adds a copy, it never overwrites). */
struct tr_txn {
    uint8_t trace_id[16], span_id[8], parent_id[8];
    uint8_t request_uuid[16]; /* the x-request-id generated, when request_id_gen */
    bool active, has_parent, sampled, debug, request_id_gen;
    struct nodus_slice host, user_agent, request_id;
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

/* A random id of n bytes (8 or 16). Never all zero: xorshift64* never returns 0 (its state is
 * never 0, and its multiplier is odd). */
static void rnd_id(struct tr_worker *w, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = rnd(w);

        memcpy(out + i, &r, 8);
    }
}

/* The request headers the plugin reads, found in one pass over the headers (first of each name). */
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
    H_HOST,
    H_USER_AGENT,
    H__N
};
#define H_ANY_B3                                                                                   \
    (1u << H_B3 | 1u << H_B3_TRACE | 1u << H_B3_SPAN | 1u << H_B3_PARENT | 1u << H_B3_SAMPLED |    \
     1u << H_B3_FLAGS)

/* Whether the name n is lit (lowercase letters, digits and '-'), ignoring case. Header names are
 * tokens, and every byte of lit has bit 5 set: setting it in the name only lowercases letters,
 * which lets eight bytes be compared at once (the last eight overlapping the ones before). */
static inline bool name_is(struct nodus_slice n, const char *lit, size_t len)
{
    const uint64_t lower = UINT64_C(0x2020202020202020);
    uint64_t x, y;

    if (n.len != len)
        return false;
    if (len < 8) {
        for (size_t i = 0; i < len; i++)
            if ((n.p[i] | 0x20) != lit[i])
                return false;
        return true;
    }
    for (size_t i = 0;; i += 8) {
        if (i + 8 > len)
            i = len - 8;
        memcpy(&x, n.p + i, 8);
        memcpy(&y, lit + i, 8);
        if ((x | lower) != y)
            return false;
        if (i + 8 == len)
            return true;
    }
}

#define IS(n, lit) name_is(n, lit, sizeof(lit) - 1)

/* Which of ours the header name n is, or -1: its length picks one to three candidates. */
static int header_slot(struct nodus_slice n)
{
    switch (n.len) {
    case 2:
        return IS(n, "b3") ? H_B3 : -1;
    case 4:
        return IS(n, "host") ? H_HOST : -1;
    case 10:
        return IS(n, "tracestate")   ? H_TRACESTATE
               : IS(n, "user-agent") ? H_USER_AGENT
               : IS(n, "x-b3-flags") ? H_B3_FLAGS
                                     : -1;
    case 11:
        return IS(n, "traceparent") ? H_TRACEPARENT : IS(n, "x-b3-spanid") ? H_B3_SPAN : -1;
    case 12:
        return IS(n, "x-request-id")   ? H_REQUEST_ID
               : IS(n, "x-b3-traceid") ? H_B3_TRACE
               : IS(n, "x-b3-sampled") ? H_B3_SAMPLED
                                       : -1;
    case 17:
        return IS(n, "x-client-trace-id")   ? H_CLIENT_TRACE
               : IS(n, "x-b3-parentspanid") ? H_B3_PARENT
                                            : -1;
    case 19:
        return IS(n, "x-envoy-force-trace") ? H_FORCE_TRACE : -1;
    }
    return -1;
}

struct hview {
    struct nodus_slice v[H__N];
    unsigned present; /* bit k: header k was there */
};

static void scan_headers(struct nodus_http *h, struct hview *hv)
{
    struct nodus_slice n, v;

    hv->present = 0;
    for (unsigned i = 0; nodus_http_req_header_index(h, i, &n, &v) == 1; i++) {
        int k = header_slot(n);

        if (k < 0 || (hv->present & (1u << k)))
            continue;
        hv->v[k] = v;
        hv->present |= 1u << k;
    }
}

static bool hv_get(const struct hview *hv, unsigned k, struct nodus_slice *v)
{
    if (!(hv->present & (1u << k)))
        return false;
    *v = hv->v[k];
    return true;
}

/* The incoming B3 context: the single header first, else the X-B3-* headers. */
static int read_b3(const struct hview *hv, struct tc_ctx *c)
{
    struct nodus_slice v, t, s, sm, f, p;
    struct tc_b3_headers m = {0};
    int r;

    if (hv_get(hv, H_B3, &v))
        return tc_parse_b3(v.p, v.len, c);
    if (hv_get(hv, H_B3_TRACE, &t))
        m.trace = t.p, m.trace_len = t.len;
    if (hv_get(hv, H_B3_SPAN, &s))
        m.span = s.p, m.span_len = s.len;
    if (hv_get(hv, H_B3_SAMPLED, &sm))
        m.sampled = sm.p, m.sampled_len = sm.len;
    if (hv_get(hv, H_B3_FLAGS, &f))
        m.flags = f.p, m.flags_len = f.len;
    r = tc_parse_b3_multi(&m, c);
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

#define HDR(n, v, len) ((struct nodus_header){n, sizeof(n) - 1, v, len})

/* Sends the context upstream in the configured formats, and the x-request-id generated (rid, 36
 * characters, or NULL), in one edit. The ids are written in hex once, in the traceparent, and the
 * B3 headers take their values from there. Headers that were not in the request are added without
 * a removal pass. */
static void propagate(struct nodus_http *h, const struct tr_conf *tc, const struct tr_txn *tx,
                      unsigned present, const char *rid)
{
    char tp[TC_TRACEPARENT_LEN], b[80], parent[16];
    const char *trace = tp + 3, *span = tp + 36;
    struct nodus_header add[6];
    size_t n = 0, bn;

    if (rid)
        add[n++] = HDR("x-request-id", rid, 36);
    tc_format_traceparent(tp, tx->trace_id, tx->span_id, tx->sampled);
    if (tc->propagate & PROP_W3C) {
        if (present & (1u << H_TRACEPARENT))
            nodus_http_req_header_remove(h, "traceparent");
        add[n++] = HDR("traceparent", tp, TC_TRACEPARENT_LEN);
    }
    if (present & H_ANY_B3)
        remove_b3(h);
    if (tc->propagate & PROP_B3) {
        add[n++] = HDR("x-b3-traceid", trace, 32);
        add[n++] = HDR("x-b3-spanid", span, 16);
        if (tx->has_parent) {
            tc_hex(parent, tx->parent_id, 8);
            add[n++] = HDR("x-b3-parentspanid", parent, 16);
        }
        if (tx->debug)
            add[n++] = HDR("x-b3-flags", "1", 1);
        else
            add[n++] = HDR("x-b3-sampled", tx->sampled ? "1" : "0", 1);
    } else if (tc->propagate & PROP_B3_SINGLE) {
        memcpy(b, trace, 32 + 1 + 16); /* {trace}-{span}, as in the traceparent */
        bn = 32 + 1 + 16;
        b[bn++] = '-';
        b[bn++] = tx->debug ? 'd' : tx->sampled ? '1' : '0';
        if (tx->has_parent) {
            b[bn++] = '-';
            tc_hex(b + bn, tx->parent_id, 8);
            bn += 16;
        }
        add[n++] = HDR("b3", b, bn);
    }
    if (n)
        nodus_http_req_headers_add(h, add, n);
}

static int tr_request_headers(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    const struct tr_conf *tc = ctx->conf;
    struct tr_worker *w = ctx->worker;
    struct tr_txn *tx = ctx->txn;
    struct nodus_slice v, ts;
    struct hview hv;
    struct tc_ctx wc, bc, in;
    int wr = 0, br = 0;
    bool have = false, ts_ok = false, ts_seen;
    char rid[36];

    if (!w)
        return NODUS_CONTINUE; /* no per-worker state (out of memory): tracing is off here */

    scan_headers(h, &hv);
    if (!hv_get(&hv, H_HOST, &tx->host))
        tx->host = nodus_http_authority(h);
    hv_get(&hv, H_USER_AGENT, &tx->user_agent);
    hv_get(&hv, H_REQUEST_ID, &tx->request_id);
    if (hv_get(&hv, H_TRACEPARENT, &v))
        wr = tc_parse_traceparent(v.p, v.len, &wc);
    if (hv.present & H_ANY_B3)
        br = read_b3(&hv, &bc);
    if (wr < 0 || br < 0) {
        /* a malformed header, alone or next to a valid one: restart (who sent what is unclear) */
        nodus_counter_add(ctx->worker_id, tc->invalid, 1);
    } else if (wr == 1 && br == 1 && bc.has_ids && memcmp(wc.trace_id, bc.trace_id, 16) != 0) {
        nodus_counter_add(ctx->worker_id, tc->restarted, 1); /* two traces: trust neither */
    } else if (wr == 1) {
        in = wc;
        have = true;
        if (br == 1)
            in.debug = bc.debug;
    } else if (br == 1) {
        in = bc;
        have = true;
    }

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
    if (tx->debug || (hv.present & (1u << H_CLIENT_TRACE | 1u << H_FORCE_TRACE)))
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

    if (tc->request_id && !(hv.present & (1u << H_REQUEST_ID))) {
        rnd_id(w, tx->request_uuid, 16);
        tx->request_uuid[6] = (uint8_t)((tx->request_uuid[6] & 0x0f) | 0x40); /* version 4 */
        tx->request_uuid[8] = (uint8_t)((tx->request_uuid[8] & 0x3f) | 0x80); /* variant 1 */
        tx->request_id_gen = true;
        tr_uuid(rid, tx->request_uuid);
        nodus_counter_add(ctx->worker_id, tc->request_ids, 1);
    }
    if (!(tc->propagate & PROP_W3C) && (hv.present & (1u << H_TRACEPARENT)))
        nodus_http_req_header_remove(h, "traceparent");
    propagate(h, tc, tx, hv.present, tx->request_id_gen ? rid : NULL);
    return NODUS_CONTINUE;
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

/* CLOCK_REALTIME - CLOCK_MONOTONIC in microseconds: the wall clock read between two reads of the
 * monotonic one, and of up to four tries the one with the shortest gap (a thread preempted
 * between two reads would otherwise put an error of its time off the CPU into every span's start,
 * and two nodes' spans of one trace out of order). */
static int64_t clock_offset_us(void)
{
    uint64_t best = UINT64_MAX;
    int64_t off = 0;

    for (int i = 0; i < 4 && best > 5; i++) {
        uint64_t m1 = clock_ns(CLOCK_MONOTONIC) / 1000, r = clock_ns(CLOCK_REALTIME) / 1000,
                 m2 = clock_ns(CLOCK_MONOTONIC) / 1000;

        if (m2 - m1 < best) {
            best = m2 - m1;
            off = (int64_t)(r - (m1 + (m2 - m1) / 2));
        }
    }
    return off;
}

/* Unix time in microseconds of the monotonic time mono_us: the offset between the two clocks is
 * read again once a second, so that a step of the wall clock shows within a second. */
static uint64_t real_us(struct tr_worker *w, uint64_t mono_us)
{
    if (mono_us >= w->real_next_us) {
        w->real_off_us = clock_offset_us();
        w->real_next_us = mono_us + 1000000;
    }
    return (uint64_t)((int64_t)mono_us + w->real_off_us);
}

static void tr_log(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    const struct tr_conf *tc = ctx->conf;
    struct tr_worker *w = ctx->worker;
    const struct tr_txn *tx = ctx->txn;
    struct nodus_slice v;
    uint64_t start, req_bytes, resp_bytes;
    struct tr_span *s;
    size_t n;

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
    start = nodus_http_start_us(h);
    s->start_ns = real_us(w, start) * 1000;
    s->dur_ns = (nodus_http_now_us(h) - start) * 1000;
    nodus_http_body_bytes(h, &req_bytes, &resp_bytes);
    s->req_size = (int64_t)req_bytes;
    s->resp_size = (int64_t)resp_bytes;
    /* the request as the client sent it: the method and the path are the core's (a rewrite by
     * the router is kept apart, nodus_http_set_path()), the headers as the request hook saw them */
    v = nodus_http_method(h);
    TR_TEXT_SET(s->method, v.p, v.len);
    TR_TEXT_SET(s->host, tx->host.p, tx->host.len);
    v = nodus_http_path(h);
    TR_TEXT_SET(s->target, v.p, v.len);
    v = nodus_http_query(h);
    if (v.len && s->target.len < sizeof(s->target.p)) {
        s->target.p[s->target.len++] = '?';
        n = sizeof(s->target.p) - s->target.len;
        n = v.len < n ? v.len : n;
        memcpy(s->target.p + s->target.len, v.p, n);
        s->target.len = (uint16_t)(s->target.len + n);
    }
    v = nodus_http_peer_addr(h);
    TR_TEXT_SET(s->peer, v.p, v.len);
    v = nodus_http_peer_principal(h);
    TR_TEXT_SET(s->principal, v.p, v.len);
    TR_TEXT_SET(s->user_agent, tx->user_agent.p, tx->user_agent.len);
    s->request_id_gen = tx->request_id_gen;
    if (tx->request_id_gen)
        memcpy(s->request_uuid, tx->request_uuid, 16);
    else
        TR_TEXT_SET(s->request_id, tx->request_id.p, tx->request_id.len);
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
