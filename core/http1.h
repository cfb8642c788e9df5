/*
 * HTTP/1.x message head parser and chunked body decoder (RFC 9110, RFC 9112).
 *
 * Never allocates, never copies: every string in a parsed message points into the caller's
 * buffer and stays valid as long as that buffer does. Strict in the way HAProxy and Envoy are:
 * anything that could let two HTTP implementations disagree on where a message ends (bare CR or
 * LF, obs-fold, conflicting Content-Length / Transfer-Encoding, ...) is an error, never guessed.
 *
 * Typical use on a connection's input buffer:
 *
 *     struct nd_http_hdr hdrs[100];
 *     struct nd_http_msg msg = {.hdrs = hdrs, .cap = 100};
 *     size_t scan = 0;
 *     for (;;) {                        // each time more bytes arrived in buf[0..len)
 *         int r = nd_http1_parse_request(buf, len, &msg, &limits, &scan);
 *         if (r > 0) break;            // head is buf[0..r), body follows
 *         if (r < 0) reply(nd_http1_error_status(r));
 *         ... read more, keep scan ...
 *     }
 */
#ifndef NODUS_HTTP1_H
#define NODUS_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A string inside the caller's buffer: not NUL-terminated. len 0 may come with p NULL. */
struct nd_str {
    const char *p;
    uint32_t len;
};

/* One header field line. value has its leading and trailing OWS (SP, HTAB) removed. */
struct nd_http_hdr {
    struct nd_str name, value;
};

enum nd_http_method {
    ND_HTTP_GET,
    ND_HTTP_HEAD,
    ND_HTTP_POST,
    ND_HTTP_PUT,
    ND_HTTP_DELETE,
    ND_HTTP_CONNECT,
    ND_HTTP_OPTIONS,
    ND_HTTP_TRACE,
    ND_HTTP_PATCH,
    ND_HTTP_OTHER /* any other token: see msg.method for its text */
};

/* How the message body is delimited. */
enum nd_http_body {
    ND_HTTP_BODY_NONE,    /* no body */
    ND_HTTP_BODY_LENGTH,  /* exactly msg.content_length bytes (may be 0) */
    ND_HTTP_BODY_CHUNKED, /* chunked transfer coding: see nd_http1_chunked() */
    ND_HTTP_BODY_CLOSE    /* responses only: the body runs until the connection closes */
};

/* Limits applied while parsing a head. */
struct nd_http_limits {
    uint32_t max_head; /* bytes of (empty lines +) start line + headers + final CRLF -> else 431 */
    uint32_t max_uri;  /* request-target length in bytes -> else 414 */
    uint16_t max_headers; /* header field lines -> else 431; the msg.cap also bounds them */
};

/* Limits used when a parse function is given lim == NULL. */
#define ND_HTTP_DEFAULT_MAX_HEAD 8192u
#define ND_HTTP_DEFAULT_MAX_URI 4096u
#define ND_HTTP_DEFAULT_MAX_HEADERS 100u

/* msg.flags */
#define ND_HTTP_F_KEEPALIVE 0x01   /* the connection persists after this message */
#define ND_HTTP_F_EXPECT_100 0x02  /* request: Expect: 100-continue (HTTP/1.1 only) */
#define ND_HTTP_F_UPGRADE 0x04     /* Connection lists "upgrade" and an Upgrade header is present */
#define ND_HTTP_F_CLOSE 0x08       /* Connection lists "close" */
#define ND_HTTP_F_CONN_TOKENS 0x10 /* Connection lists other (hop-by-hop) headers */

/* A parsed request or response head. All nd_str point into the parsed buffer. */
struct nd_http_msg {
    /* request line (requests only) */
    struct nd_str method;
    enum nd_http_method meth;
    struct nd_str target;    /* the request-target exactly as sent */
    struct nd_str path;      /* origin-form: the path without the query; absolute-form
                              * "http://h/p?q": "/p" (may be empty: "http://h?q"), "*" for
                              * OPTIONS *, empty for CONNECT */
    struct nd_str query;     /* after '?', without it; p is NULL if there is no '?' */
    struct nd_str authority; /* the authority of an absolute-form or CONNECT target, else the
                              * Host header value; len 0 if neither (HTTP/1.0 without Host) */
    /* status line (responses only) */
    uint16_t status;
    struct nd_str reason;
    /* both */
    uint8_t version_minor;    /* 0 or 1: only HTTP/1.0 and HTTP/1.1 are accepted */
    uint8_t flags;            /* ND_HTTP_F_* */
    uint8_t body;             /* enum nd_http_body */
    uint64_t content_length;  /* when body == ND_HTTP_BODY_LENGTH */
    struct nd_http_hdr *hdrs; /* set by the caller before parsing: room for cap headers */
    uint16_t nhdrs, cap;
    /* bytes of the head, including skipped leading empty lines and the final CRLF CRLF: the body
     * (or the next message) starts at buf + head_len */
    uint32_t head_len;
};

/* Result codes: ND_HTTP_AGAIN means "need more bytes", negative values are errors. */
enum {
    ND_HTTP_AGAIN = 0,
    ND_HTTP_E_BAD = -1,              /* 400: malformed */
    ND_HTTP_E_URI_TOO_LONG = -2,     /* 414 */
    ND_HTTP_E_HEAD_TOO_LARGE = -3,   /* 431: more than max_head bytes */
    ND_HTTP_E_TOO_MANY_HEADERS = -4, /* 431: more than max_headers (or cap) header lines */
    ND_HTTP_E_VERSION = -5,          /* 505: an HTTP version other than 1.0 and 1.1 */
    ND_HTTP_E_TE_UNSUPPORTED = -6,   /* 501: a transfer coding other than chunked */
    ND_HTTP_E_SMUGGLING = -7,        /* 400: both Content-Length and Transfer-Encoding */
    ND_HTTP_E_BAD_LENGTH = -8,       /* 400: invalid or conflicting Content-Length */
    ND_HTTP_E_BAD_HOST = -9,         /* 400: missing, repeated or invalid Host */
};

/* Content-Length values and chunk sizes must stay below this (2^62). */
#define ND_HTTP_MAX_LENGTH (UINT64_C(1) << 62)

/*
 * Parse a request head at buf[0..len).
 *
 * msg: output; the caller sets msg->hdrs and msg->cap beforehand, everything else is
 *   overwritten (its content is unspecified unless the return value is > 0).
 * lim: limits, or NULL for the ND_HTTP_DEFAULT_* values. Headers are also bounded by msg->cap.
 * scan: an opaque hint the caller keeps: set it to 0 before the first call on a buffer, and pass
 *   it back unchanged on each later call for the same message while the buffer grows (bytes
 *   already passed may not change). The bytes already examined are then not examined again, so
 *   feeding a head in n pieces costs O(head) in total. The parser resets it to 0 whenever it
 *   returns something other than ND_HTTP_AGAIN. NULL: no hint, each call starts over.
 *
 * Up to 4 empty lines (CRLF) before the request line are skipped (RFC 9112 2.2) and counted in
 * head_len. Only CRLF ends a line: a bare LF or CR anywhere is an error. Beyond the RFC grammar,
 * as HAProxy does by default: the request-target may only hold RFC 3986 characters, without '#'
 * (no fragment) and without non-ASCII bytes; an absolute-form target must be http or https without
 * userinfo; Host and target authorities are reg-name, IPv4 or [IPv6] with an optional port of at
 * most 65535; Transfer-Encoding may not hold empty list elements nor parameters on chunked.
 *
 * Returns:
 *   > 0  the head is complete; the value is msg->head_len and msg is filled.
 *   ND_HTTP_AGAIN (0)  need more bytes: the bytes so far are within the limits and show no error
 *        yet (each line is checked as soon as it is complete; a partial line gets the checks
 *        that do not need its end: control characters, bare CR, obs-fold, request-target).
 *   < 0  an ND_HTTP_E_* error; answer with nd_http1_error_status() and close. Limits are
 *        enforced as soon as they are exceeded (414 on a partial request line, 431 as soon as
 *        len reaches max_head without a complete head), not when the head completes.
 */
int nd_http1_parse_request(const char *buf, size_t len, struct nd_http_msg *msg,
                           const struct nd_http_limits *lim, size_t *scan);

/*
 * Parse a response head at buf[0..len). Same contract for msg, lim (max_uri unused) and scan as
 * nd_http1_parse_request(). req_method is the method of the request this response answers; it and
 * the status decide msg->body:
 *   HEAD request, 1xx, 204, 304, 2xx to CONNECT -> ND_HTTP_BODY_NONE;
 *   Transfer-Encoding ending in chunked -> CHUNKED; other Transfer-Encoding -> CLOSE;
 *   Content-Length -> LENGTH; otherwise -> CLOSE (and ND_HTTP_F_KEEPALIVE is cleared).
 * A 1xx response (100 Continue, 103 Early Hints, 101) is returned as a complete head with its
 * status; the caller skips it (or for 101, switches protocols). Content-Length together with
 * Transfer-Encoding is ND_HTTP_E_SMUGGLING (even though RFC 9112 lets chunked win);
 * Transfer-Encoding in an HTTP/1.0 response is ND_HTTP_E_BAD (faulty framing, RFC 9112 6.1).
 */
int nd_http1_parse_response(const char *buf, size_t len, struct nd_http_msg *msg,
                            const struct nd_http_limits *lim, size_t *scan,
                            enum nd_http_method req_method);

/* The HTTP status to answer for a negative parse result: 400, 414, 431, 501 or 505 (400 for any
 * value that is not an ND_HTTP_E_* code). */
int nd_http1_error_status(int err);

/* A short constant text describing a parse result, for logs. Never NULL. */
const char *nd_http1_strerror(int err);

/* Incremental chunked body decoder state. Initialize with nd_http1_chunked_init(). */
struct nd_http_chunked {
    uint64_t left;          /* bytes of data left in the current chunk, or the size being read */
    uint32_t trailer_bytes; /* bytes of trailer section seen */
    uint16_t ext_bytes;     /* bytes of chunk extension seen on the current chunk line */
    uint8_t state;          /* private */
    uint8_t done;           /* 1 once the last chunk and the trailer section are consumed */
};

/* Bounds applied by the chunked decoder. */
#define ND_HTTP_CHUNK_EXT_MAX 1024u /* bytes of chunk extensions on one chunk line */
#define ND_HTTP_TRAILER_MAX 4096u   /* bytes of trailer section, final CRLF included */

/* Prepare c for a new chunked body. */
void nd_http1_chunked_init(struct nd_http_chunked *c);

/*
 * Walk chunked framing over buf[0..len), the next bytes of the body.
 *
 * Returns the number of bytes consumed (0 <= n <= len), or ND_HTTP_E_BAD. Consumed framing bytes
 * are remembered in c; the caller never passes them again. On return, buf[*data_off ..
 * *data_off + *data_len) is one run of body data inside the consumed bytes (*data_len is 0 when the
 * consumed bytes were framing only). The decoder stops after one data run, so the caller loops
 * while it has unconsumed bytes and c->done is 0. A return of 0 with len > 0 happens only once
 * c->done is set.
 *
 * c->done becomes 1 once the last-chunk and the trailer section (checked for syntax, at most
 * ND_HTTP_TRAILER_MAX bytes, otherwise skipped) have been consumed; bytes after that belong to the
 * next message and are never consumed.
 *
 * Errors (ND_HTTP_E_BAD; c must not be used again): bad hex, a chunk size of 2^62 or more, anything
 * but CRLF after chunk data, bare CR or LF, chunk extensions longer than ND_HTTP_CHUNK_EXT_MAX,
 * malformed or oversized trailers.
 */
ssize_t nd_http1_chunked(struct nd_http_chunked *c, const char *buf, size_t len, size_t *data_off,
                         size_t *data_len);

/* True if s equals lit[0..litlen) ignoring ASCII case. */
bool nd_http1_name_eq(struct nd_str s, const char *lit, size_t litlen);

/* True if the comma-separated list v (a header value such as Connection's) has an element equal
 * to tok[0..toklen) ignoring ASCII case, each element's surrounding OWS ignored. */
bool nd_http1_token_list_has(struct nd_str v, const char *tok, size_t toklen);

/* The first header of m named name[0..namelen) (case-insensitive), or NULL. */
const struct nd_http_hdr *nd_http1_find(const struct nd_http_msg *m, const char *name,
                                        size_t namelen);

/* The standard reason phrase for the statuses a proxy emits (100, 200, 201, 204, 301, 302, 303,
 * 307, 308, 400, 401, 403, 404, 405, 408, 413, 414, 421, 429, 431, 500, 501, 502, 503, 504, 505),
 * "Unknown" for any other. Never NULL. */
const char *nd_http1_reason(int status);

#endif /* NODUS_HTTP1_H */
