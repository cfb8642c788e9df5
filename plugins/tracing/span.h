/*
 * A finished span as the tracing plugin records it (a fixed-size record: it lives in the per-worker
 * queues, nothing is allocated), and its JSON encodings: OTLP/HTTP JSON (ExportTraceServiceRequest,
 * opentelemetry-proto 1.x) and Zipkin v2 JSON (a list of spans). A pure module, unit-tested for the
 * shape of what it writes (tests/unit/test_tracing.c).
 */
#ifndef NODUS_TRACING_SPAN_H
#define NODUS_TRACING_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum tr_kind { TR_KIND_SERVER = 2, TR_KIND_CLIENT = 3 }; /* OTLP's numbers */

/* A string field of a span: its bytes, truncated to the array, and their count (no NUL). */
#define TR_TEXT(name, cap)                                                                         \
    struct {                                                                                       \
        uint16_t len;                                                                              \
        char p[cap];                                                                               \
    } name

/* Copies n bytes of p into a span's text field, truncated to its array. */
#define TR_TEXT_SET(f, src, n)                                                                     \
    do {                                                                                           \
        size_t n_ = (n) < sizeof((f).p) ? (n) : sizeof((f).p);                                     \
        if (n_) /* an empty slice may have a NULL pointer */                                       \
            memcpy((f).p, (src), n_);                                                              \
        (f).len = (uint16_t)n_;                                                                    \
    } while (0)

/* A size of -1 is unknown. The worker only copies what the request had, raw (no formatting): the
 * span's name, its URL and the text of a generated x-request-id are composed by the encoders, on
 * the exporter thread. */
struct tr_span {
    uint8_t trace_id[16], span_id[8], parent_id[8];
    uint8_t request_uuid[16]; /* the x-request-id nodus generated (request_id_gen), as bytes */
    bool has_parent, debug, request_id_gen;
    uint8_t kind;
    uint16_t status;   /* 0: no response was sent (aborted) */
    uint64_t start_ns; /* Unix time */
    uint64_t dur_ns;
    int64_t req_size, resp_size; /* body bytes of request and response */
    TR_TEXT(method, 16);
    TR_TEXT(host, 128);      /* the Host header, else the authority (the span is named after it) */
    TR_TEXT(target, 255);    /* the path, and "?query" when there is one */
    TR_TEXT(peer, 48);       /* the client's address */
    TR_TEXT(principal, 128); /* the peer's SPIFFE id */
    TR_TEXT(user_agent, 96);
    TR_TEXT(request_id, 48); /* x-request-id as received (request_id_gen false) */
};

/* The UUID text (36 characters, no NUL) of 16 bytes: 8-4-4-4-12 lowercase hex. */
void tr_uuid(char out[36], const uint8_t b[16]);

/* What every span of an exporter shares. */
struct tr_resource {
    const char *service; /* service.name, localEndpoint.serviceName */
    const char *node;    /* node_id tag: may be NULL */
};

/* A JSON writer over a caller's buffer. ovf: the buffer cannot even hold a body's head (begin),
 * and nothing is written. */
struct tr_json {
    char *buf;
    size_t cap, len;
    unsigned n; /* spans written */
    bool ovf;
};

/* OTLP: tr_otlp_begin(), then tr_otlp_span() for each span, then tr_otlp_end(). A span is written
 * only when the most it can take (tr_span_bound(): every byte of its text escaped) fits; else the
 * writer is left as it was and false returned (send what is there, then start over). Nothing is
 * checked byte by byte. tr_*_end() needs TR_JSON_TAIL bytes, which span writes keep free. */
#define TR_JSON_TAIL 16
size_t tr_span_bound(const struct tr_span *s, const struct tr_resource *r);
void tr_otlp_begin(struct tr_json *j, const struct tr_resource *r);
bool tr_otlp_span(struct tr_json *j, const struct tr_span *s);
void tr_otlp_end(struct tr_json *j);

void tr_zipkin_begin(struct tr_json *j);
bool tr_zipkin_span(struct tr_json *j, const struct tr_span *s, const struct tr_resource *r);
void tr_zipkin_end(struct tr_json *j);

#endif /* NODUS_TRACING_SPAN_H */
