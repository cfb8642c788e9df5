/*
 * libFuzzer target for core/http1.c. Each input is used three ways:
 *  - as a stream of pipelined requests (heads, then bodies by their framing);
 *  - as a response head (then its body) to a request method chosen from the input;
 *  - as a chunked body.
 * Besides the sanitizers, it checks invariants: results in range, strings inside the head, and
 * that feeding the bytes in random pieces (each prefix in its own exact-size allocation, so an
 * over-read is caught) gives the same result as feeding them at once.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

#define MAX_HDRS 64

static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static bool inside(struct nd_str s, const char *buf, size_t len)
{
    if (s.len == 0)
        return true;
    return s.p >= buf && s.p + s.len <= buf + len;
}

static void check_msg(const char *buf, size_t len, const struct nd_http_msg *m, int r, bool req)
{
    CHECK(r > 0 && (size_t)r <= len && m->head_len == (uint32_t)r);
    CHECK(m->version_minor <= 1);
    CHECK(m->body <= ND_HTTP_BODY_CLOSE);
    CHECK((m->flags & ~0x1f) == 0);
    CHECK(m->nhdrs <= m->cap);
    CHECK(r >= 4 && !memcmp(buf + r - 4, "\r\n\r\n", 4));
    for (unsigned i = 0; i < m->nhdrs; i++) {
        CHECK(m->hdrs[i].name.len > 0 && inside(m->hdrs[i].name, buf, (size_t)r));
        CHECK(inside(m->hdrs[i].value, buf, (size_t)r));
        if (m->hdrs[i].value.len) {
            char a = m->hdrs[i].value.p[0], z = m->hdrs[i].value.p[m->hdrs[i].value.len - 1];
            CHECK(a != ' ' && a != '\t' && z != ' ' && z != '\t');
        }
    }
    if (m->body == ND_HTTP_BODY_LENGTH)
        CHECK(m->content_length < ND_HTTP_MAX_LENGTH);
    if (req) {
        CHECK(m->method.len > 0 && inside(m->method, buf, (size_t)r));
        CHECK(m->target.len > 0 && inside(m->target, buf, (size_t)r));
        CHECK(inside(m->path, m->target.p, m->target.len));
        CHECK(inside(m->query, m->target.p, m->target.len));
        CHECK(inside(m->authority, buf, (size_t)r));
        CHECK(m->body != ND_HTTP_BODY_CLOSE);
        if (m->version_minor == 1)
            CHECK(m->authority.len > 0);
        for (uint32_t i = 0; i < m->target.len; i++)
            CHECK(m->target.p[i] > ' ' && m->target.p[i] < 0x7f && m->target.p[i] != '#');
    } else {
        CHECK(m->status >= 100 && m->status <= 599);
        CHECK(inside(m->reason, buf, (size_t)r));
    }
}

static int parse(bool req, const char *buf, size_t len, struct nd_http_msg *m,
                 const struct nd_http_limits *lim, size_t *scan, enum nd_http_method meth)
{
    return req ? nd_http1_parse_request(buf, len, m, lim, scan)
               : nd_http1_parse_response(buf, len, m, lim, scan, meth);
}

/* Feed buf[0..len) in random pieces, each prefix copied into its own exact-size allocation. */
static int parse_pieces(bool req, const char *buf, size_t len, struct nd_http_msg *m,
                        const struct nd_http_limits *lim, enum nd_http_method meth)
{
    size_t scan = 0, have = 0;
    int r;
    for (;;) {
        size_t step = (rng() & 3) == 0 ? (size_t)(rng() % 64) : (size_t)(rng() % 4);
        have = have + step < len ? have + step : len;
        char *copy = malloc(have ? have : 1);
        CHECK(copy != NULL);
        memcpy(copy, buf, have);
        r = parse(req, copy, have, m, lim, &scan, meth);
        free(copy);
        if (r != ND_HTTP_AGAIN || have == len)
            return r;
    }
}

/* Decode a chunked body at buf[0..len) in random pieces; returns consumed or the error. The data
 * runs are appended to out (room for len bytes). */
static ssize_t dechunk(const char *buf, size_t len, bool pieces, char *out, size_t *outlen,
                       bool *done)
{
    struct nd_http_chunked c;
    nd_http1_chunked_init(&c);
    size_t off = 0, o = 0;
    while (off < len && !c.done) {
        size_t n = len - off;
        if (pieces)
            n = 1 + (size_t)(rng() % (n < 16 ? n : 16));
        char *copy = malloc(n);
        CHECK(copy != NULL);
        memcpy(copy, buf + off, n);
        size_t doff = 7, dlen = 7;
        ssize_t r = nd_http1_chunked(&c, copy, n, &doff, &dlen);
        if (r >= 0) {
            CHECK((size_t)r <= n);
            CHECK(doff + dlen <= (size_t)r);
            CHECK(r > 0 || c.done);
            memcpy(out + o, copy + doff, dlen);
            o += dlen;
        }
        free(copy);
        if (r < 0)
            return r;
        off += (size_t)r;
    }
    *outlen = o;
    *done = c.done;
    return (ssize_t)off;
}

static void fuzz_chunked(const char *buf, size_t len)
{
    char *a = malloc(len + 1), *b = malloc(len + 1);
    CHECK(a && b);
    size_t alen = 0, blen = 0;
    bool adone = false, bdone = false;
    ssize_t ra = dechunk(buf, len, false, a, &alen, &adone);
    ssize_t rb = dechunk(buf, len, true, b, &blen, &bdone);
    /* an error shows at the same byte whatever the pieces; without one, the same data */
    CHECK((ra < 0) == (rb < 0));
    if (ra >= 0) {
        CHECK(ra == rb && adone == bdone && alen == blen && !memcmp(a, b, alen));
        if (!adone)
            CHECK((size_t)ra == len);
    }
    free(a);
    free(b);
}

/* Skip the body of a parsed message at buf[0..len); returns its size or 0 if it does not fit. */
static size_t body_size(const struct nd_http_msg *m, const char *buf, size_t len)
{
    if (m->body == ND_HTTP_BODY_LENGTH)
        return m->content_length <= len ? (size_t)m->content_length : 0;
    if (m->body == ND_HTTP_BODY_CHUNKED) {
        char *out = malloc(len + 1);
        CHECK(out);
        size_t olen = 0;
        bool done = false;
        ssize_t r = dechunk(buf, len, (rng() & 1) != 0, out, &olen, &done);
        free(out);
        return r > 0 && done ? (size_t)r : 0;
    }
    return 0;
}

static void fuzz_stream(bool req, const char *buf, size_t len, const struct nd_http_limits *lim,
                        uint16_t cap, enum nd_http_method meth)
{
    static struct nd_http_hdr h1[MAX_HDRS], h2[MAX_HDRS];
    size_t off = 0;
    for (int k = 0; k < 8 && off < len; k++) {
        struct nd_http_msg m = {.hdrs = h1, .cap = cap};
        struct nd_http_msg p = {.hdrs = h2, .cap = cap};
        size_t scan = 0;
        int r = parse(req, buf + off, len - off, &m, lim, &scan, meth);
        int rp = parse_pieces(req, buf + off, len - off, &p, lim, meth);
        CHECK(r == rp);
        CHECK(r >= ND_HTTP_E_BAD_HOST);
        CHECK(nd_http1_strerror(r) != NULL);
        if (r < 0) {
            int st = nd_http1_error_status(r);
            CHECK(st == 400 || st == 414 || st == 431 || st == 501 || st == 505);
        }
        if (r <= 0)
            return;
        check_msg(buf + off, len - off, &m, r, req);
        CHECK(m.nhdrs == p.nhdrs && m.flags == p.flags && m.body == p.body &&
              m.content_length == p.content_length && m.status == p.status && m.meth == p.meth &&
              m.version_minor == p.version_minor);
        CHECK(m.target.len == p.target.len && m.path.len == p.path.len &&
              m.query.len == p.query.len && m.authority.len == p.authority.len);
        /* the head alone is enough, one byte less is not */
        struct nd_http_msg q = {.hdrs = h2, .cap = cap};
        scan = 0;
        CHECK(parse(req, buf + off, (size_t)r, &q, lim, &scan, meth) == r);
        scan = 0;
        CHECK(parse(req, buf + off, (size_t)r - 1, &q, lim, &scan, meth) == ND_HTTP_AGAIN);
        /* helpers on what was parsed */
        for (unsigned i = 0; i < m.nhdrs; i++) {
            const struct nd_http_hdr *f = nd_http1_find(&m, m.hdrs[i].name.p, m.hdrs[i].name.len);
            CHECK(f != NULL && f <= &m.hdrs[i]);
            (void)nd_http1_token_list_has(m.hdrs[i].value, "close", 5);
        }
        off += (size_t)r;
        if (m.body == ND_HTTP_BODY_CLOSE)
            return;
        size_t b = body_size(&m, buf + off, len - off);
        if ((m.body == ND_HTTP_BODY_CHUNKED && b == 0) ||
            (m.body == ND_HTTP_BODY_LENGTH && m.content_length > len - off))
            return;
        off += b;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ULL;
    rng_state = h | 1;

    static const struct nd_http_limits dflt = {8192, 4096, 100};
    struct nd_http_limits tight = {
        .max_head = 16 + (uint32_t)(h % 256),
        .max_uri = 1 + (uint32_t)((h >> 8) % 64),
        .max_headers = (uint16_t)((h >> 16) % 8),
    };
    uint16_t cap = (uint16_t)((h >> 24) % (MAX_HDRS + 1));
    enum nd_http_method meth = (enum nd_http_method)((h >> 32) % (ND_HTTP_OTHER + 1));

    fuzz_stream(true, buf, size, &dflt, MAX_HDRS, ND_HTTP_GET);
    fuzz_stream(true, buf, size, &tight, cap, ND_HTTP_GET);
    fuzz_stream(false, buf, size, &dflt, MAX_HDRS, meth);
    fuzz_stream(false, buf, size, &tight, cap, meth);
    fuzz_chunked(buf, size);
    (void)nd_http1_reason((int)(h % 1000));
    return 0;
}
