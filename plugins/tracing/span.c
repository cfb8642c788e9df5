/*
 * Span encodings: OTLP/HTTP JSON and Zipkin v2 JSON. See span.h.
 */
#include <string.h>

#include "span.h"
#include "tracectx.h"

static void put(struct tr_json *j, const char *p, size_t n)
{
    if (j->ovf || j->len + n + TR_JSON_TAIL > j->cap) {
        j->ovf = true;
        return;
    }
    memcpy(j->buf + j->len, p, n);
    j->len += n;
}

#define PUTS(j, lit) put(j, lit, sizeof(lit) - 1)

/* Decimal digits of v, right-aligned in b[0..20), returning where they start. */
static char *utoa(uint64_t v, char b[20])
{
    char *p = b + 20;

    do
        *--p = (char)('0' + v % 10);
    while ((v /= 10));
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

/* Bytes that go into a JSON string as they are: printable ASCII but '"' and '\\'. */
static bool plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* A JSON string: quotes, escapes; bytes that are not UTF-8 become U+FFFD. */
static void putstr(struct tr_json *j, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run;

    PUTS(j, "\"");
    for (;;) {
        for (run = i; plain(p[run]); run++)
            ;
        put(j, s + i, run - i);
        i = run;
        if (!p[i])
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
            size_t k = utf8_len(p + i, strlen(s + i));

            if (k) {
                put(j, s + i, k);
                i += k;
            } else {
                PUTS(j, "\\ufffd");
                i++;
            }
        }
    }
    PUTS(j, "\"");
}

static void puthex(struct tr_json *j, const uint8_t *id, size_t n)
{
    char b[32];

    tc_hex(b, id, n);
    PUTS(j, "\"");
    put(j, b, 2 * n);
    PUTS(j, "\"");
}

static bool is_error(const struct tr_span *s)
{
    return s->status == 0 || s->status >= 500;
}

/* The tags both formats carry, as Envoy's HTTP connection manager writes them. each(j, key,
 * value, first) writes one. */
typedef void (*tag_fn)(struct tr_json *j, const char *key, const char *val, bool *first);

static void tags(struct tr_json *j, const struct tr_span *s, const struct tr_resource *r,
                 tag_fn each)
{
    char b[24], *d;
    bool first = true;

    each(j, "component", "proxy", &first);
    if (r->node)
        each(j, "node_id", r->node, &first);
    if (s->request_id[0])
        each(j, "guid:x-request-id", s->request_id, &first);
    each(j, "http.method", s->method, &first);
    each(j, "http.url", s->url, &first);
    if (s->user_agent[0])
        each(j, "user_agent", s->user_agent, &first);
    each(j, "peer.address", s->peer, &first);
    if (s->principal[0])
        each(j, "peer.principal", s->principal, &first);
    b[20] = '\0';
    if (s->req_size >= 0) {
        d = utoa((uint64_t)s->req_size, b);
        each(j, "request_size", d, &first);
    }
    if (s->resp_size >= 0) {
        d = utoa((uint64_t)s->resp_size, b);
        each(j, "response_size", d, &first);
    }
    d = utoa(s->status, b);
    each(j, "http.status_code", d, &first);
    if (is_error(s))
        each(j, "error", "true", &first);
}

/* ---- OTLP ---- */

static void otlp_attr(struct tr_json *j, const char *key, const char *val, bool *first)
{
    if (!*first)
        PUTS(j, ",");
    *first = false;
    PUTS(j, "{\"key\":\"");
    put(j, key, strlen(key)); /* keys are literals: nothing to escape */
    PUTS(j, "\",\"value\":{\"stringValue\":");
    putstr(j, val);
    PUTS(j, "}}");
}

void tr_otlp_begin(struct tr_json *j, const struct tr_resource *r)
{
    bool first = true;

    j->len = 0;
    j->n = 0;
    j->ovf = false;
    PUTS(j, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    otlp_attr(j, "service.name", r->service, &first);
    if (r->node)
        otlp_attr(j, "node_id", r->node, &first);
    PUTS(j, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"nodus.tracing\",\"version\":\"" NODUS_VERSION
            "\"},\"spans\":[");
}

bool tr_otlp_span(struct tr_json *j, const struct tr_span *s)
{
    static const struct tr_resource none = {0};
    size_t len0 = j->len;

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
    putstr(j, s->name);
    PUTS(j, ",\"kind\":");
    putu(j, s->kind);
    /* 64-bit integers as strings, as the OTLP JSON mapping allows (proto3 JSON) */
    PUTS(j, ",\"startTimeUnixNano\":\"");
    putu(j, s->start_ns);
    PUTS(j, "\",\"endTimeUnixNano\":\"");
    putu(j, s->start_ns + s->dur_ns);
    PUTS(j, "\",\"attributes\":[");
    tags(j, s, &none, otlp_attr);
    PUTS(j, "],\"status\":{\"code\":");
    putu(j, is_error(s) ? 2 : 0); /* STATUS_CODE_ERROR, STATUS_CODE_UNSET */
    PUTS(j, "}}");
    if (j->ovf) {
        j->len = len0;
        j->ovf = false;
        return false;
    }
    j->n++;
    return true;
}

void tr_otlp_end(struct tr_json *j)
{
    j->ovf = false;
    memcpy(j->buf + j->len, "]}]}]}", 6);
    j->len += 6;
}

/* ---- Zipkin v2 ---- */

static void zipkin_tag(struct tr_json *j, const char *key, const char *val, bool *first)
{
    if (!*first)
        PUTS(j, ",");
    *first = false;
    PUTS(j, "\"");
    put(j, key, strlen(key)); /* keys are literals: nothing to escape */
    PUTS(j, "\":");
    putstr(j, val);
}

void tr_zipkin_begin(struct tr_json *j)
{
    j->len = 0;
    j->n = 0;
    j->ovf = false;
    PUTS(j, "[");
}

bool tr_zipkin_span(struct tr_json *j, const struct tr_span *s, const struct tr_resource *r)
{
    size_t len0 = j->len;
    uint64_t us = s->dur_ns / 1000;

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
    putstr(j, s->name);
    PUTS(j, ",\"timestamp\":");
    putu(j, s->start_ns / 1000);
    PUTS(j, ",\"duration\":");
    putu(j, us ? us : 1); /* microseconds, at least 1 */
    PUTS(j, ",\"localEndpoint\":{\"serviceName\":");
    putstr(j, r->service);
    PUTS(j, "}");
    if (s->peer[0]) {
        if (strchr(s->peer, ':'))
            PUTS(j, ",\"remoteEndpoint\":{\"ipv6\":");
        else
            PUTS(j, ",\"remoteEndpoint\":{\"ipv4\":");
        putstr(j, s->peer);
        PUTS(j, "}");
    }
    if (s->debug)
        PUTS(j, ",\"debug\":true");
    PUTS(j, ",\"tags\":{");
    tags(j, s, r, zipkin_tag);
    PUTS(j, "}}");
    if (j->ovf) {
        j->len = len0;
        j->ovf = false;
        return false;
    }
    j->n++;
    return true;
}

void tr_zipkin_end(struct tr_json *j)
{
    j->ovf = false;
    j->buf[j->len++] = ']';
}
