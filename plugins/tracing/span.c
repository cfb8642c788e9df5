/*
 * Span encodings: OTLP/HTTP JSON and Zipkin v2 JSON. See span.h.
 */
#include <string.h>

#include "span.h"
#include "tracectx.h"

/* Writes are not checked one by one: a span (or a body's head) first makes sure that room for
 * the most it can write is there (room()), then writes without looking. */
static inline void put(struct tr_json *j, const char *p, size_t n)
{
    memcpy(j->buf + j->len, p, n);
    j->len += n;
}

static inline bool room(const struct tr_json *j, size_t need)
{
    return !j->ovf && j->len + need + TR_JSON_TAIL <= j->cap;
}

/* The bytes of a span's JSON besides its text fields, at most: keys, ids, numbers, the literals
 * (the unit tests check a span with every field full against tr_span_bound()). */
#define TR_SPAN_FIXED 1024

size_t tr_span_bound(const struct tr_span *s, const struct tr_resource *r)
{
    /* an escaped byte takes 6 at most (\u00XX, \ufffd); host and peer are written twice */
    size_t text = s->method.len + 2u * s->host.len + s->target.len + 2u * s->peer.len +
                  s->principal.len + s->user_agent.len + s->request_id.len;

    if (r) {
        text += strlen(r->service);
        if (r->node)
            text += strlen(r->node);
    }
    return TR_SPAN_FIXED + 6 * text;
}

#define PUTS(j, lit) put(j, lit, sizeof(lit) - 1)

/* Decimal digits of v, right-aligned in b[0..20), returning where they start: two digits per
 * division (a nanosecond time has 19). */
static char *utoa(uint64_t v, char b[20])
{
    static const char pairs[201] = "00010203040506070809101112131415161718192021222324252627282930"
                                   "31323334353637383940414243444546474849505152535455565758596061"
                                   "62636465666768697071727374757677787980818283848586878889909192"
                                   "93949596979899";
    char *p = b + 20;

    while (v >= 100) {
        uint64_t q = v / 100;

        p -= 2;
        memcpy(p, pairs + 2 * (v - q * 100), 2);
        v = q;
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    return p;
}

static void putu(struct tr_json *j, uint64_t v)
{
    char b[20], *p = utoa(v, b);

    put(j, p, (size_t)(b + 20 - p));
}

/* The length of a valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t k;
    unsigned min;

    if (c < 0xc2 || c > 0xf4)
        return 0;
    k = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    min = k == 2 ? 0x80 : k == 3 ? 0x800 : 0x10000;
    if (n < k)
        return 0;
    unsigned cp = c & (0xff >> (k + 1));
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

/* Bytes that go into a JSON string as they are: 0x20 to 0x7f but '"' (0x22) and '\\' (0x5c). */
static const uint8_t plain_byte[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static bool plain(unsigned char c)
{
    return plain_byte[c];
}

/* Whether a word of eight bytes holds a byte that is not plain (SWAR): one below 0x20 or from
 * 0x80 up, a '"' or a '\\'. The byte tests may also flag a byte above a flagged one (borrows),
 * which is harmless for "any". */
static inline bool word_special(uint64_t x)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');

    return ((x - ones * 0x20) | x | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
}

/* The inside of a JSON string, the n bytes at s: escapes; bytes that are not UTF-8 become U+FFFD.
 * Runs of plain bytes are found eight at a time and copied at once. */
static void putesc(struct tr_json *j, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run;
    uint64_t w;

    /* the common case, nothing to escape, eight bytes or more: the words, the last one
     * overlapping the one before, then one copy */
    if (n >= 8) {
        for (run = 0; run + 8 <= n; run += 8) {
            memcpy(&w, p + run, 8);
            if (word_special(w))
                break;
        }
        if (run + 8 > n) {
            memcpy(&w, p + n - 8, 8);
            if (!word_special(w)) {
                put(j, s, n);
                return;
            }
        }
    }
    for (;;) {
        uint64_t x;

        for (run = i; run + 8 <= n; run += 8) {
            memcpy(&x, p + run, 8);
            if (word_special(x))
                break;
        }
        while (run < n && plain(p[run]))
            run++;
        put(j, s + i, run - i);
        i = run;
        if (i == n)
            break;
        if (p[i] == '"' || p[i] == '\\') {
            char e[2] = {'\\', (char)p[i]};

            put(j, e, 2);
            i++;
        } else if (p[i] < 0x20) {
            static const char hex[] = "0123456789abcdef";
            char e[6] = {'\\', 'u', '0', '0', hex[p[i] >> 4], hex[p[i] & 15]};

            put(j, e, 6);
            i++;
        } else {
            size_t k = utf8_len(p + i, n - i);

            if (k) {
                put(j, s + i, k);
                i += k;
            } else {
                PUTS(j, "\\ufffd");
                i++;
            }
        }
    }
}

/* A JSON string: quotes, escapes; bytes that are not UTF-8 become U+FFFD. */
static void putstr(struct tr_json *j, const char *s)
{
    PUTS(j, "\"");
    putesc(j, s, strlen(s));
    PUTS(j, "\"");
}

/* The span's name: Envoy's default operation name, the host followed by "/" and "*". */
static void putname(struct tr_json *j, const struct tr_span *s)
{
    PUTS(j, "\"");
    putesc(j, s->host.p, s->host.len);
    PUTS(j, "/*\"");
}

void tr_uuid(char out[36], const uint8_t b[16])
{
    char hex[32];

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

/* An id in quoted hex, in one copy. */
static void puthex(struct tr_json *j, const uint8_t *id, size_t n)
{
    char b[34];

    b[0] = '"';
    tc_hex(b + 1, id, n);
    b[2 * n + 1] = '"';
    put(j, b, 2 * n + 2);
}

static bool is_error(const struct tr_span *s)
{
    return s->status == 0 || s->status >= 500;
}

/* A tag's key as each format opens it, comma first (dropped for the first tag): one copy. Keys are
 * literals, with nothing to escape. */
struct tag_key {
    const char *otlp, *zipkin;
    uint8_t otlp_len, zipkin_len;
};

#define OTLP_OPEN(k) ",{\"key\":\"" k "\",\"value\":{\"stringValue\":\""
#define ZIPKIN_OPEN(k) ",\"" k "\":\""
#define TAG_KEY(name, k)                                                                           \
    static const struct tag_key name = {OTLP_OPEN(k), ZIPKIN_OPEN(k), sizeof(OTLP_OPEN(k)) - 1,    \
                                        sizeof(ZIPKIN_OPEN(k)) - 1}

TAG_KEY(K_SERVICE, "service.name");
TAG_KEY(K_COMPONENT, "component");
TAG_KEY(K_NODE_ID, "node_id");
TAG_KEY(K_REQUEST_ID, "guid:x-request-id");
TAG_KEY(K_METHOD, "http.method");
TAG_KEY(K_URL, "http.url");
TAG_KEY(K_USER_AGENT, "user_agent");
TAG_KEY(K_PEER, "peer.address");
TAG_KEY(K_PRINCIPAL, "peer.principal");
TAG_KEY(K_REQUEST_SIZE, "request_size");
TAG_KEY(K_RESPONSE_SIZE, "response_size");
TAG_KEY(K_STATUS, "http.status_code");
TAG_KEY(K_ERROR, "error");

/* A tag opened: its key (the comma dropped for the first tag) up to the value's opening quote. */
static inline void tag_open(struct tr_json *j, const struct tag_key *k, bool otlp, bool *first)
{
    if (otlp)
        put(j, k->otlp + *first, k->otlp_len - *first);
    else
        put(j, k->zipkin + *first, k->zipkin_len - *first);
    *first = false;
}

static inline void tag_close(struct tr_json *j, bool otlp)
{
    if (otlp)
        PUTS(j, "\"}}");
    else
        PUTS(j, "\"");
}

/* A tag whose value is escaped (text from the request), or copied as it is (esc false: digits,
 * hex, a literal). */
static inline void tag(struct tr_json *j, const struct tag_key *k, const char *v, size_t n,
                       bool esc, bool otlp, bool *first)
{
    tag_open(j, k, otlp, first);
    if (esc)
        putesc(j, v, n);
    else
        put(j, v, n);
    tag_close(j, otlp);
}

#define TAG_LIT(j, k, lit, otlp, first) tag(j, k, lit, sizeof(lit) - 1, false, otlp, first)

static inline void tag_u64(struct tr_json *j, const struct tag_key *k, uint64_t v, bool otlp,
                           bool *first)
{
    char b[20], *d = utoa(v, b);

    tag(j, k, d, (size_t)(b + 20 - d), false, otlp, first);
}

/* The tags both formats carry, as Envoy's HTTP connection manager writes them (OTLP attributes
 * when otlp, else Zipkin tags). */
static inline void tags(struct tr_json *j, const struct tr_span *s, const struct tr_resource *r,
                        bool otlp)
{
    bool first = true;
    size_t hn, tn;

    TAG_LIT(j, &K_COMPONENT, "proxy", otlp, &first);
    if (r->node)
        tag(j, &K_NODE_ID, r->node, strlen(r->node), true, otlp, &first);
    if (s->request_id_gen) {
        char rid[36];

        tr_uuid(rid, s->request_uuid);
        tag(j, &K_REQUEST_ID, rid, 36, false, otlp, &first);
    } else if (s->request_id.len) {
        tag(j, &K_REQUEST_ID, s->request_id.p, s->request_id.len, true, otlp, &first);
    }
    tag(j, &K_METHOD, s->method.p, s->method.len, true, otlp, &first);
    /* http://host/path?query as the client sent them, truncated at 255 bytes */
    hn = s->host.len < 248 ? s->host.len : 248;
    tn = s->target.len < 248 - hn ? s->target.len : 248 - hn;
    tag_open(j, &K_URL, otlp, &first);
    PUTS(j, "http://");
    putesc(j, s->host.p, hn);
    putesc(j, s->target.p, tn);
    tag_close(j, otlp);
    if (s->user_agent.len)
        tag(j, &K_USER_AGENT, s->user_agent.p, s->user_agent.len, true, otlp, &first);
    tag(j, &K_PEER, s->peer.p, s->peer.len, true, otlp, &first);
    if (s->principal.len)
        tag(j, &K_PRINCIPAL, s->principal.p, s->principal.len, true, otlp, &first);
    if (s->req_size >= 0)
        tag_u64(j, &K_REQUEST_SIZE, (uint64_t)s->req_size, otlp, &first);
    if (s->resp_size >= 0)
        tag_u64(j, &K_RESPONSE_SIZE, (uint64_t)s->resp_size, otlp, &first);
    tag_u64(j, &K_STATUS, s->status, otlp, &first);
    if (is_error(s))
        TAG_LIT(j, &K_ERROR, "true", otlp, &first);
}

/* ---- OTLP ---- */

void tr_otlp_begin(struct tr_json *j, const struct tr_resource *r)
{
    bool first = true;

    j->len = 0;
    j->n = 0;
    j->ovf = false;
    j->ovf = !room(j, 320 + 6 * (strlen(r->service) + (r->node ? strlen(r->node) : 0)));
    if (j->ovf)
        return; /* no span will fit either */
    PUTS(j, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    tag(j, &K_SERVICE, r->service, strlen(r->service), true, true, &first);
    if (r->node)
        tag(j, &K_NODE_ID, r->node, strlen(r->node), true, true, &first);
    PUTS(j, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"nodus.tracing\",\"version\":\"" NODUS_VERSION
            "\"},\"spans\":[");
}

bool tr_otlp_span(struct tr_json *j, const struct tr_span *s)
{
    static const struct tr_resource none = {0};

    if (!room(j, tr_span_bound(s, NULL)))
        return false;
    if (j->n)
        PUTS(j, ",");
    PUTS(j, "{\"traceId\":");
    puthex(j, s->trace_id, 16);
    PUTS(j, ",\"spanId\":");
    puthex(j, s->span_id, 8);
    if (s->has_parent) {
        PUTS(j, ",\"parentSpanId\":");
        puthex(j, s->parent_id, 8);
    }
    PUTS(j, ",\"name\":");
    putname(j, s);
    PUTS(j, ",\"kind\":");
    putu(j, s->kind);
    /* 64-bit integers as strings, as the OTLP JSON mapping allows (proto3 JSON) */
    PUTS(j, ",\"startTimeUnixNano\":\"");
    putu(j, s->start_ns);
    PUTS(j, "\",\"endTimeUnixNano\":\"");
    putu(j, s->start_ns + s->dur_ns);
    PUTS(j, "\",\"attributes\":[");
    tags(j, s, &none, true);
    PUTS(j, "],\"status\":{\"code\":");
    putu(j, is_error(s) ? 2 : 0); /* STATUS_CODE_ERROR, STATUS_CODE_UNSET */
    PUTS(j, "}}");
    j->n++;
    return true;
}

void tr_otlp_end(struct tr_json *j)
{
    if (j->ovf)
        return; /* nothing was written: the buffer is smaller than a body's head */
    memcpy(j->buf + j->len, "]}]}]}", 6);
    j->len += 6;
}

/* ---- Zipkin v2 ---- */

void tr_zipkin_begin(struct tr_json *j)
{
    j->len = 0;
    j->n = 0;
    j->ovf = false;
    j->ovf = !room(j, 1);
    if (!j->ovf)
        PUTS(j, "[");
}

bool tr_zipkin_span(struct tr_json *j, const struct tr_span *s, const struct tr_resource *r)
{
    uint64_t us = s->dur_ns / 1000;

    if (!room(j, tr_span_bound(s, r)))
        return false;
    if (j->n)
        PUTS(j, ",");
    PUTS(j, "{\"traceId\":");
    puthex(j, s->trace_id, 16);
    PUTS(j, ",\"id\":");
    puthex(j, s->span_id, 8);
    if (s->has_parent) {
        PUTS(j, ",\"parentId\":");
        puthex(j, s->parent_id, 8);
    }
    PUTS(j, ",\"kind\":");
    if (s->kind == TR_KIND_CLIENT)
        PUTS(j, "\"CLIENT\"");
    else
        PUTS(j, "\"SERVER\"");
    PUTS(j, ",\"name\":");
    putname(j, s);
    PUTS(j, ",\"timestamp\":");
    putu(j, s->start_ns / 1000);
    PUTS(j, ",\"duration\":");
    putu(j, us ? us : 1); /* microseconds, at least 1 */
    PUTS(j, ",\"localEndpoint\":{\"serviceName\":");
    putstr(j, r->service);
    PUTS(j, "}");
    if (s->peer.len) {
        if (memchr(s->peer.p, ':', s->peer.len))
            PUTS(j, ",\"remoteEndpoint\":{\"ipv6\":\"");
        else
            PUTS(j, ",\"remoteEndpoint\":{\"ipv4\":\"");
        putesc(j, s->peer.p, s->peer.len);
        PUTS(j, "\"}");
    }
    if (s->debug)
        PUTS(j, ",\"debug\":true");
    PUTS(j, ",\"tags\":{");
    tags(j, s, r, false);
    PUTS(j, "}}");
    j->n++;
    return true;
}

void tr_zipkin_end(struct tr_json *j)
{
    if (!j->ovf)
        j->buf[j->len++] = ']';
}
