/*
 * HTTP/1.x head parser and chunked decoder: see http1.h for the contracts.
 *
 * A head is parsed in two passes only when it arrives in pieces:
 *  - each call first looks for the end of the head (an empty line) in the bytes it has not
 *    seen yet, with memchr over line feeds;
 *  - if the head is complete, one pass over it validates every line and fills the message;
 *  - if not, the lines completed by the new bytes are validated (so errors are reported early)
 *    and the partial last line gets the checks that do not need its end. What has been examined
 *    is remembered in the caller's scan hint, so no byte is examined twice by this step.
 * The complete-head pass and the early checks use the same line functions in the same order,
 * so feeding a head in pieces gives the same result as feeding it at once.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memrchr */
#endif
#include "http1.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

_Static_assert(sizeof(size_t) >= 8, "the scan hint packs parser state into a 64-bit size_t");

/* ---- character classes ------------------------------------------------------------------ */

enum {
    C_TCHAR = 0x01, /* token character (RFC 9110 5.6.2) */
    C_FVAL = 0x02,  /* field value / reason phrase: HTAB, SP, VCHAR, obs-text */
    C_URI = 0x04,   /* allowed in a request-target (RFC 3986, no '#': no fragment) */
    C_HOST = 0x08,  /* reg-name: unreserved / sub-delims ('%' is checked apart) */
    C_HEX = 0x10,   /* hex digit */
    C_BADCTL = 0x20 /* control character never allowed in a head (all but HTAB, CR, LF) */
};

#define IS_ALNUM(c)                                                                                \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || ((c) >= '0' && (c) <= '9'))
#define IS_TCHAR(c)                                                                                \
    (IS_ALNUM(c) || (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' ||          \
     (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' || (c) == '^' ||          \
     (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define IS_FVAL(c) ((c) == '\t' || ((c) >= 0x20 && (c) != 0x7f))
#define IS_URI(c)                                                                                  \
    ((c) > 0x20 && (c) < 0x7f && (c) != '"' && (c) != '<' && (c) != '>' && (c) != '\\' &&          \
     (c) != '^' && (c) != '`' && (c) != '{' && (c) != '|' && (c) != '}' && (c) != '#')
#define IS_HOST(c)                                                                                 \
    (IS_ALNUM(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~' || (c) == '!' ||          \
     (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' || (c) == '*' ||          \
     (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=')
#define IS_HEX(c)                                                                                  \
    (((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define IS_BADCTL(c) (((c) < 0x20 && (c) != '\t' && (c) != '\r' && (c) != '\n') || (c) == 0x7f)

#define CLS(c)                                                                                     \
    ((IS_TCHAR(c) ? C_TCHAR : 0) | (IS_FVAL(c) ? C_FVAL : 0) | (IS_URI(c) ? C_URI : 0) |           \
     (IS_HOST(c) ? C_HOST : 0) | (IS_HEX(c) ? C_HEX : 0) | (IS_BADCTL(c) ? C_BADCTL : 0))
#define R4(b) CLS(b), CLS((b) + 1), CLS((b) + 2), CLS((b) + 3)
#define R16(b) R4(b), R4((b) + 4), R4((b) + 8), R4((b) + 12)
#define R64(b) R16(b), R16((b) + 16), R16((b) + 32), R16((b) + 48)

static const uint8_t cls[256] = {R64(0), R64(64), R64(128), R64(192)};

#define CL(c) (cls[(unsigned char)(c)])

static inline unsigned char lower(unsigned char c)
{
    return (unsigned char)((unsigned)c - 'A' < 26u ? c | 0x20 : c);
}

/* a[0..n) equals b[0..n) ignoring ASCII case. */
static bool ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* Eight bytes with the ASCII capitals lowercased, at once (SWAR): for the low seven bits h of a
 * byte, h + 0x3f sets bit 7 from 'A' up and h + 0x25 from past 'Z', without carrying into the
 * next byte; a byte with bit 7 set is not ASCII and stays as it is. */
static inline uint64_t lower8(uint64_t x)
{
    uint64_t h = x & UINT64_C(0x7f7f7f7f7f7f7f7f);
    uint64_t upper = (h + UINT64_C(0x3f3f3f3f3f3f3f3f)) & ~(h + UINT64_C(0x2525252525252525)) & ~x &
                     UINT64_C(0x8080808080808080);

    return x | upper >> 2;
}

static inline struct nd_str mkstr(const char *p, size_t n)
{
    return (struct nd_str){p, (uint32_t)n};
}

static inline bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* ---- limits and scan hint ---------------------------------------------------------------- */

#define HEAD_HARD_MAX (1u << 30) /* max_head is clamped to this: head_len fits an int */
#define MAX_EMPTY_LINES 4        /* CRLFs skipped before a request line */

struct lims {
    uint32_t max_head, max_uri, max_hdrs;
};

static struct lims get_lims(const struct nd_http_limits *lim, const struct nd_http_msg *m)
{
    struct lims l = {ND_HTTP_DEFAULT_MAX_HEAD, ND_HTTP_DEFAULT_MAX_URI,
                     ND_HTTP_DEFAULT_MAX_HEADERS};
    if (lim) {
        l.max_head = lim->max_head;
        l.max_uri = lim->max_uri;
        l.max_hdrs = lim->max_headers;
    }
    if (l.max_head > HEAD_HARD_MAX)
        l.max_head = HEAD_HARD_MAX;
    uint32_t cap = m->hdrs ? m->cap : 0;
    if (l.max_hdrs > cap)
        l.max_hdrs = cap;
    return l;
}

/*
 * The scan hint: bits 0-31 the number of bytes examined, bit 32 set once the start line is
 * complete, bits 33-63 "aux": the number of complete header lines once the start line is
 * complete; before that, for a request line, 0 while in the method, offset of the target + 1
 * while in the target, AUX_TARGET_DONE after it.
 */
#define SCAN_POS_MASK UINT64_C(0xffffffff)
#define SCAN_LINE_DONE (UINT64_C(1) << 32)
#define SCAN_AUX_SHIFT 33
#define AUX_TARGET_DONE 0x7fffffffu

static int fail(size_t *scan, int err)
{
    if (scan)
        *scan = 0;
    return err;
}

/* ---- line parsers ------------------------------------------------------------------------ */

static enum nd_http_method method_id(const char *s, size_t n)
{
    switch (n) {
    case 3:
        if (!memcmp(s, "GET", 3))
            return ND_HTTP_GET;
        if (!memcmp(s, "PUT", 3))
            return ND_HTTP_PUT;
        break;
    case 4:
        if (!memcmp(s, "POST", 4))
            return ND_HTTP_POST;
        if (!memcmp(s, "HEAD", 4))
            return ND_HTTP_HEAD;
        break;
    case 5:
        if (!memcmp(s, "PATCH", 5))
            return ND_HTTP_PATCH;
        if (!memcmp(s, "TRACE", 5))
            return ND_HTTP_TRACE;
        break;
    case 6:
        if (!memcmp(s, "DELETE", 6))
            return ND_HTTP_DELETE;
        break;
    case 7:
        if (!memcmp(s, "OPTIONS", 7))
            return ND_HTTP_OPTIONS;
        if (!memcmp(s, "CONNECT", 7))
            return ND_HTTP_CONNECT;
        break;
    }
    return ND_HTTP_OTHER;
}

/* "HTTP/1.0" or "HTTP/1.1"; another well-formed version is E_VERSION, anything else E_BAD. */
static int parse_version(const char *s, size_t n, uint8_t *minor)
{
    if (n == 8 && !memcmp(s, "HTTP/1.", 7) && (s[7] == '0' || s[7] == '1')) {
        *minor = (uint8_t)(s[7] - '0');
        return 0;
    }
    if (n < 6 || memcmp(s, "HTTP/", 5))
        return ND_HTTP_E_BAD;
    size_t i = 5, d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == d)
        return ND_HTTP_E_BAD;
    if (i < n && s[i] == '.') {
        d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return ND_HTTP_E_BAD;
    }
    return i == n ? ND_HTTP_E_VERSION : ND_HTTP_E_BAD;
}

/* uri-host [":" port] (RFC 3986): reg-name (IPv4 included) or [IPv6]; port 0-65535. */
static bool valid_authority(const char *s, size_t n, bool port_required)
{
    size_t i = 0;
    if (n == 0)
        return false;
    if (s[0] == '[') {
        for (i = 1; i < n && ((CL(s[i]) & C_HEX) || s[i] == ':' || s[i] == '.'); i++)
            ;
        if (i == 1 || i == n || s[i] != ']')
            return false;
        i++;
    } else {
        while (i < n && s[i] != ':') {
            if (s[i] == '%') {
                if (i + 2 >= n || !(CL(s[i + 1]) & C_HEX) || !(CL(s[i + 2]) & C_HEX))
                    return false;
                i += 3;
            } else if (CL(s[i]) & C_HOST) {
                i++;
            } else {
                return false;
            }
        }
        if (i == 0)
            return false;
    }
    if (i == n)
        return !port_required;
    if (s[i] != ':' || n - i - 1 == 0 || n - i - 1 > 5)
        return false;
    uint32_t port = 0;
    for (i++; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        port = port * 10 + (uint32_t)(s[i] - '0');
    }
    return port <= 65535;
}

/* path [ "?" query ] at s[0..n): query.p stays NULL when there is no '?'. */
static void split_path_query(struct nd_http_msg *m, const char *s, size_t n)
{
    const char *q = n ? memchr(s, '?', n) : NULL;
    if (q) {
        m->path = mkstr(s, (size_t)(q - s));
        m->query = mkstr(q + 1, (size_t)(s + n - q - 1));
    } else {
        m->path = mkstr(s, n);
    }
}

/* Classify m->target (characters already checked) and fill path, query, authority. */
static int parse_target(struct nd_http_msg *m)
{
    const char *t = m->target.p;
    size_t n = m->target.len, a;

    if (m->meth == ND_HTTP_CONNECT) { /* authority-form, and only it */
        if (!valid_authority(t, n, true))
            return ND_HTTP_E_BAD;
        m->authority = m->target;
        return 0;
    }
    if (t[0] == '/') { /* origin-form */
        split_path_query(m, t, n);
        return 0;
    }
    if (t[0] == '*') { /* asterisk-form */
        if (n != 1 || m->meth != ND_HTTP_OPTIONS)
            return ND_HTTP_E_BAD;
        m->path = m->target;
        return 0;
    }
    /* absolute-form, http and https only, no userinfo */
    if (n >= 7 && ieq(t, "http://", 7))
        a = 7;
    else if (n >= 8 && ieq(t, "https://", 8))
        a = 8;
    else
        return ND_HTTP_E_BAD;
    size_t e = a;
    while (e < n && t[e] != '/' && t[e] != '?')
        e++;
    if (!valid_authority(t + a, e - a, false))
        return ND_HTTP_E_BAD;
    m->authority = mkstr(t + a, e - a);
    split_path_query(m, t + e, n - e);
    return 0;
}

/*
 * Request line s[0..n), CRLF excluded. The method and target checks are the ones
 * partial_request_line() applies to a line still arriving, in the same order.
 */
static int parse_request_line(const char *s, size_t n, struct nd_http_msg *m, uint32_t max_uri)
{
    size_t p = 0;
    while (p < n && (CL(s[p]) & C_TCHAR))
        p++;
    if (p == 0 || p == n || s[p] != ' ')
        return ND_HTTP_E_BAD;
    m->method = mkstr(s, p);
    m->meth = method_id(s, p);

    size_t t = ++p;
    for (; p < n; p++) {
        if (s[p] == ' ')
            break;
        if (!(CL(s[p]) & C_URI))
            return ND_HTTP_E_BAD;
        if (p - t >= max_uri)
            return ND_HTTP_E_URI_TOO_LONG;
    }
    if (p == t || p == n)
        return ND_HTTP_E_BAD;
    m->target = mkstr(s + t, p - t);

    int rc = parse_version(s + p + 1, n - p - 1, &m->version_minor);
    if (rc)
        return rc;
    return parse_target(m);
}

/* Status line s[0..n): HTTP-version SP 3DIGIT [SP reason]. */
static int parse_status_line(const char *s, size_t n, struct nd_http_msg *m)
{
    const char *sp = memchr(s, ' ', n);
    int rc = parse_version(s, sp ? (size_t)(sp - s) : n, &m->version_minor);
    if (rc || !sp)
        return rc ? rc : ND_HTTP_E_BAD;
    size_t p = (size_t)(sp - s) + 1;
    if (n - p < 3)
        return ND_HTTP_E_BAD;
    unsigned st = 0;
    for (size_t i = p; i < p + 3; i++) {
        if (s[i] < '0' || s[i] > '9')
            return ND_HTTP_E_BAD;
        st = st * 10 + (unsigned)(s[i] - '0');
    }
    if (st < 100 || st > 599) /* RFC 9110 15: other values are invalid */
        return ND_HTTP_E_BAD;
    m->status = (uint16_t)st;
    p += 3;
    if (p == n) { /* "HTTP/1.1 200" without SP: common enough to accept */
        m->reason = mkstr(s + n, 0);
        return 0;
    }
    if (s[p] != ' ')
        return ND_HTTP_E_BAD;
    for (size_t i = ++p; i < n; i++)
        if (!(CL(s[i]) & C_FVAL))
            return ND_HTTP_E_BAD;
    m->reason = mkstr(s + p, n - p);
    return 0;
}

/* Header field line s[0..n), n > 0, CRLF excluded. */
/* Index of the first byte of s[0..n) that may not appear in a field value (CTLs but HTAB, and
 * DEL), or n. Sixteen bytes at a time where SSE2 is at hand: values are most of a head's bytes. */
static size_t fval_span(const char *s, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    const __m128i sp = _mm_set1_epi8(0x20), tab = _mm_set1_epi8(0x09);
    const __m128i del = _mm_set1_epi8(0x7f), neg = _mm_set1_epi8(-1);
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        /* signed bytes: 0x00..0x1f are >= 0 and < 0x20; obs-text (0x80..) is negative */
        __m128i ctl = _mm_and_si128(_mm_cmpgt_epi8(sp, x), _mm_cmpgt_epi8(x, neg));
        __m128i bad =
            _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(x, tab), ctl), _mm_cmpeq_epi8(x, del));
        int mask = _mm_movemask_epi8(bad);
        if (mask)
            return i + (size_t)__builtin_ctz((unsigned)mask);
    }
#endif
    for (; i < n; i++)
        if (!(CL(s[i]) & C_FVAL))
            return i;
    return n;
}

static int parse_header_line(const char *s, size_t n, struct nd_http_hdr *h)
{
    size_t i = 0;
    while (i < n && (CL(s[i]) & C_TCHAR)) /* also rejects obs-fold: SP/HTAB first */
        i++;
    if (i == 0 || i == n || s[i] != ':')
        return ND_HTTP_E_BAD;
    h->name = mkstr(s, i);
    size_t v = i + 1, e = n;
    while (v < e && is_ows(s[v]))
        v++;
    while (e > v && is_ows(s[e - 1]))
        e--;
    if (fval_span(s + v, e - v) != e - v)
        return ND_HTTP_E_BAD;
    h->value = mkstr(s + v, e - v);
    return 0;
}

/* ---- header semantics -------------------------------------------------------------------- */

struct facts {
    uint64_t cl;
    struct nd_str host;
    uint32_t nhost;
    uint8_t te_chunked; /* times "chunked" appears (saturating) */
    bool cl_seen, cl_bad;
    bool te_seen, te_bad, te_last_chunked, te_other;
    bool conn_close, conn_keepalive, conn_upgrade, conn_other, upgrade, expect_100;
};

/* Iterator over the elements of a comma-separated list, each trimmed of OWS. */
struct list_it {
    const char *p, *end;
    bool done;
};

static struct list_it list_begin(struct nd_str v)
{
    return (struct list_it){v.p, v.p + v.len, false};
}

static bool list_next(struct list_it *it, const char **es, size_t *en)
{
    if (it->done)
        return false;
    const char *s = it->p, *comma = NULL;
    if (s < it->end)
        comma = memchr(s, ',', (size_t)(it->end - s));
    const char *e = comma ? comma : it->end;
    while (s < e && is_ows(*s))
        s++;
    while (e > s && is_ows(e[-1]))
        e--;
    *es = s;
    *en = (size_t)(e - s);
    if (comma)
        it->p = comma + 1;
    else
        it->done = true;
    return true;
}

static void note_content_length(struct facts *f, struct nd_str v)
{
    const char *s;
    size_t n;
    for (struct list_it it = list_begin(v); list_next(&it, &s, &n);) {
        uint64_t x = 0;
        if (n == 0)
            f->cl_bad = true;
        for (size_t i = 0; i < n && !f->cl_bad; i++) {
            unsigned d = (unsigned)(s[i] - '0');
            if (d > 9 || x > (ND_HTTP_MAX_LENGTH - 1 - d) / 10)
                f->cl_bad = true;
            else
                x = x * 10 + d;
        }
        if (f->cl_seen && x != f->cl)
            f->cl_bad = true;
        f->cl = x;
        f->cl_seen = true;
    }
}

static void note_transfer_encoding(struct facts *f, struct nd_str v)
{
    const char *s;
    size_t n;
    f->te_seen = true;
    for (struct list_it it = list_begin(v); list_next(&it, &s, &n);) {
        size_t k = 0;
        while (k < n && (CL(s[k]) & C_TCHAR))
            k++;
        bool params = false;
        if (k < n) { /* only parameters may follow the coding name: OWS ";" ... */
            size_t j = k;
            while (j < n && is_ows(s[j]))
                j++;
            if (j < n && s[j] == ';')
                params = true;
            else
                f->te_bad = true;
        }
        if (k == 0) {
            f->te_bad = true;
        } else if (k == 7 && ieq(s, "chunked", 7)) {
            if (params)
                f->te_bad = true;
            if (f->te_chunked < 255)
                f->te_chunked++;
            f->te_last_chunked = true;
        } else {
            f->te_other = true;
            f->te_last_chunked = false;
        }
    }
}

static void note_connection(struct facts *f, struct nd_str v)
{
    const char *s;
    size_t n;
    for (struct list_it it = list_begin(v); list_next(&it, &s, &n);) {
        if (n == 5 && ieq(s, "close", 5))
            f->conn_close = true;
        else if (n == 10 && ieq(s, "keep-alive", 10))
            f->conn_keepalive = true;
        else if (n == 7 && ieq(s, "upgrade", 7))
            f->conn_upgrade = true;
        else if (n)
            f->conn_other = true;
    }
}

static void note_header(struct facts *f, const struct nd_http_hdr *h)
{
    const char *s = h->name.p;
    switch (h->name.len) {
    case 4:
        if (ieq(s, "host", 4)) {
            f->nhost++;
            f->host = h->value;
        }
        break;
    case 6:
        if (ieq(s, "expect", 6) && nd_http1_token_list_has(h->value, "100-continue", 12))
            f->expect_100 = true;
        break;
    case 7:
        if (ieq(s, "upgrade", 7) && h->value.len)
            f->upgrade = true;
        break;
    case 10:
        if (ieq(s, "connection", 10))
            note_connection(f, h->value);
        break;
    case 14:
        if (ieq(s, "content-length", 14))
            note_content_length(f, h->value);
        break;
    case 17:
        if (ieq(s, "transfer-encoding", 17))
            note_transfer_encoding(f, h->value);
        break;
    }
}

static void set_conn_flags(struct nd_http_msg *m, const struct facts *f)
{
    if (f->conn_close)
        m->flags |= ND_HTTP_F_CLOSE;
    if (f->conn_other)
        m->flags |= ND_HTTP_F_CONN_TOKENS;
    if (!f->conn_close && (m->version_minor == 1 || f->conn_keepalive))
        m->flags |= ND_HTTP_F_KEEPALIVE;
    /* RFC 9110 7.8: Upgrade in an HTTP/1.0 message is ignored */
    if (m->version_minor == 1 && f->conn_upgrade && f->upgrade)
        m->flags |= ND_HTTP_F_UPGRADE;
}

static int finish_request(struct nd_http_msg *m, const struct facts *f)
{
    if (f->te_seen) {
        if (m->version_minor == 0) /* RFC 9112 6.1: faulty framing */
            return ND_HTTP_E_BAD;
        if (f->cl_seen)
            return ND_HTTP_E_SMUGGLING;
        if (f->te_bad || !f->te_last_chunked || f->te_chunked > 1) /* RFC 9112 6.3 */
            return ND_HTTP_E_BAD;
        if (f->te_other)
            return ND_HTTP_E_TE_UNSUPPORTED;
        m->body = ND_HTTP_BODY_CHUNKED;
    } else if (f->cl_seen) {
        if (f->cl_bad)
            return ND_HTTP_E_BAD_LENGTH;
        m->body = ND_HTTP_BODY_LENGTH;
        m->content_length = f->cl;
    }
    /* RFC 9112 3.2: exactly one valid Host in HTTP/1.1, at most one in HTTP/1.0 */
    if (f->nhost > 1 || (f->nhost == 0 && m->version_minor == 1))
        return ND_HTTP_E_BAD_HOST;
    if (f->nhost == 1) {
        if (!valid_authority(f->host.p, f->host.len, false))
            return ND_HTTP_E_BAD_HOST;
        if (!m->authority.len) /* an absolute-form or CONNECT target wins */
            m->authority = f->host;
    }
    set_conn_flags(m, f);
    /* RFC 9110 10.1.1: 100-continue in an HTTP/1.0 request is ignored */
    if (f->expect_100 && m->version_minor == 1)
        m->flags |= ND_HTTP_F_EXPECT_100;
    return 0;
}

static int finish_response(struct nd_http_msg *m, const struct facts *f,
                           enum nd_http_method req_method)
{
    if (f->te_seen && m->version_minor == 0)
        return ND_HTTP_E_BAD;
    if (f->te_seen && f->cl_seen)
        return ND_HTTP_E_SMUGGLING;
    if (f->cl_seen && f->cl_bad)
        return ND_HTTP_E_BAD_LENGTH;
    if (f->te_seen && (f->te_bad || f->te_chunked > 1))
        return ND_HTTP_E_BAD;

    unsigned st = m->status;
    if (req_method == ND_HTTP_HEAD || st < 200 || st == 204 || st == 304 ||
        (req_method == ND_HTTP_CONNECT && st < 300)) {
        m->body = ND_HTTP_BODY_NONE;
    } else if (f->te_seen) {
        m->body = f->te_last_chunked ? ND_HTTP_BODY_CHUNKED : ND_HTTP_BODY_CLOSE;
    } else if (f->cl_seen) {
        m->body = ND_HTTP_BODY_LENGTH;
        m->content_length = f->cl;
    } else {
        m->body = ND_HTTP_BODY_CLOSE;
    }
    set_conn_flags(m, f);
    if (m->body == ND_HTTP_BODY_CLOSE)
        m->flags &= (uint8_t)~ND_HTTP_F_KEEPALIVE;
    return 0;
}

/* ---- whole head -------------------------------------------------------------------------- */

static void msg_reset(struct nd_http_msg *m)
{
    struct nd_http_hdr *hdrs = m->hdrs;
    uint16_t cap = m->cap;
    memset(m, 0, sizeof(*m));
    m->hdrs = hdrs;
    m->cap = cap;
}

/*
 * End of the content of the line [ls, i], i the position of its LF: before the CR, or i itself for
 * a bare LF. Callers check the content first and the bare LF after, so that they report errors in
 * the order the checks on a partial line would (an error early in a line wins over its end).
 */
static inline size_t line_content_end(const char *buf, size_t ls, size_t i)
{
    return i > ls && buf[i - 1] == '\r' ? i - 1 : i;
}

/* Parse the complete head buf[start..end), end just past the LF of its empty line. */
static int parse_head(const char *buf, size_t start, size_t end, struct nd_http_msg *m,
                      const struct lims *l, bool req, enum nd_http_method req_method)
{
    msg_reset(m);
    const char *lf = memchr(buf + start, '\n', end - start);
    if (!lf)
        return ND_HTTP_AGAIN; /* only on the optimistic first pass of parse_common() */
    size_t i = (size_t)(lf - buf), ce = line_content_end(buf, start, i);
    int rc = req ? parse_request_line(buf + start, ce - start, m, l->max_uri)
                 : parse_status_line(buf + start, ce - start, m);
    if (rc || ce == i)
        return rc ? rc : ND_HTTP_E_BAD;

    struct facts f = {0};
    size_t p = i + 1;
    for (;;) {
        lf = p < end ? memchr(buf + p, '\n', end - p) : NULL;
        if (!lf)
            return ND_HTTP_AGAIN;
        i = (size_t)(lf - buf);
        ce = line_content_end(buf, p, i);
        if (ce == p)
            break; /* the empty line: i + 1 == end */
        struct nd_http_hdr h;
        rc = parse_header_line(buf + p, ce - p, &h);
        if (rc || ce == i)
            return rc ? rc : ND_HTTP_E_BAD;
        if (m->nhdrs >= l->max_hdrs)
            return ND_HTTP_E_TOO_MANY_HEADERS;
        m->hdrs[m->nhdrs++] = h;
        note_header(&f, &h);
        p = i + 1;
    }
    if (ce == i)
        return ND_HTTP_E_BAD; /* the empty line is a bare LF */
    rc = req ? finish_request(m, &f) : finish_response(m, &f, req_method);
    if (rc)
        return rc;
    m->head_len = (uint32_t)(i + 1);
    return (int)m->head_len;
}

/*
 * Checks on a request line still arriving: buf[*pp..end) are new bytes of it, the line started at
 * `start`. Same checks, same order as parse_request_line() on the method and the target.
 */
static int partial_request_line(const char *buf, size_t start, size_t *pp, size_t end,
                                uint32_t *aux, uint32_t max_uri)
{
    size_t p = *pp;
    uint32_t a = *aux;
    if (a == 0) {
        for (; p < end; p++) {
            if (buf[p] == ' ') {
                if (p == start)
                    return ND_HTTP_E_BAD;
                a = (uint32_t)(p + 2);
                p++;
                break;
            }
            if (!(CL(buf[p]) & C_TCHAR))
                return ND_HTTP_E_BAD;
        }
    }
    if (a != 0 && a != AUX_TARGET_DONE) {
        size_t t = a - 1;
        for (; p < end; p++) {
            if (buf[p] == ' ') {
                if (p == t)
                    return ND_HTTP_E_BAD;
                a = AUX_TARGET_DONE;
                p++;
                break;
            }
            if (!(CL(buf[p]) & C_URI))
                return ND_HTTP_E_BAD;
            if (p - t >= max_uri)
                return ND_HTTP_E_URI_TOO_LONG;
        }
    }
    *pp = p;
    *aux = a;
    return 0;
}

static int parse_common(const char *buf, size_t len, struct nd_http_msg *m,
                        const struct nd_http_limits *lim, size_t *scan, bool req,
                        enum nd_http_method req_method)
{
    const struct lims l = get_lims(lim, m);
    uint64_t st = scan ? *scan : 0;
    size_t pos = (size_t)(st & SCAN_POS_MASK);
    bool line_done = (st & SCAN_LINE_DONE) != 0;
    uint32_t aux = (uint32_t)(st >> SCAN_AUX_SHIFT);
    if (pos > len) { /* not a hint for this buffer: start over */
        pos = 0;
        line_done = false;
        aux = 0;
    }

    /* RFC 9112 2.2: empty lines before a request line are skipped (a few of them) */
    size_t start = 0;
    if (req) {
        while (len - start >= 2 && buf[start] == '\r' && buf[start + 1] == '\n') {
            if (start == 2 * MAX_EMPTY_LINES)
                return fail(scan, ND_HTTP_E_BAD);
            start += 2;
        }
        if (len - start == 0 || (len - start == 1 && buf[start] == '\r')) {
            if (len >= l.max_head)
                return fail(scan, ND_HTTP_E_HEAD_TOO_LARGE);
            if (scan)
                *scan = start;
            return ND_HTTP_AGAIN;
        }
    }
    if (pos < start)
        pos = start;
    size_t end = len < l.max_head ? len : l.max_head;

    /* 0. a new message that came whole (the common case): one pass, no end-of-head search */
    if (pos == start && !line_done) {
        int rc = parse_head(buf, start, end, m, &l, req, req_method);
        if (rc != ND_HTTP_AGAIN) {
            if (scan)
                *scan = 0;
            return rc;
        }
    }

    /* 1. look for the empty line ending the head in the new bytes */
    for (size_t p = pos; p < end;) {
        const char *lf = memchr(buf + p, '\n', end - p);
        if (!lf)
            break;
        size_t i = (size_t)(lf - buf);
        if (i == start || buf[i - 1] == '\n' ||
            (buf[i - 1] == '\r' && (i - 1 == start || buf[i - 2] == '\n'))) {
            if (scan)
                *scan = 0;
            return parse_head(buf, start, i + 1, m, &l, req, req_method);
        }
        p = i + 1;
    }

    /*
     * 2. incomplete: validate the lines the new bytes complete. A status line still arriving gets
     * no early check: its version comes first, so a later bad byte must not hide a 505.
     */
    size_t p = pos;
    bool partial_checks = line_done || req;
    if (partial_checks && p > start && p < end && buf[p - 1] == '\r' && buf[p] != '\n')
        return fail(scan, ND_HTTP_E_BAD); /* bare CR at the end of the previous bytes */
    size_t ls = SIZE_MAX;
    const char *lf;
    while (p < end && (lf = memchr(buf + p, '\n', end - p)) != NULL) {
        size_t i = (size_t)(lf - buf);
        if (ls == SIZE_MAX) { /* start of the line, once per call */
            const char *r = line_done ? memrchr(buf + start, '\n', p - start) : NULL;
            ls = r ? (size_t)(r - buf) + 1 : start;
        }
        size_t ce = line_content_end(buf, ls, i);
        int rc;
        if (!line_done) {
            rc = req ? parse_request_line(buf + ls, ce - ls, m, l.max_uri)
                     : parse_status_line(buf + ls, ce - ls, m);
            if (!rc && ce == i)
                rc = ND_HTTP_E_BAD;
            line_done = true;
            aux = 0;
        } else {
            struct nd_http_hdr h;
            rc = parse_header_line(buf + ls, ce - ls, &h);
            if (!rc && ce == i)
                rc = ND_HTTP_E_BAD;
            if (!rc && ++aux > l.max_hdrs)
                rc = ND_HTTP_E_TOO_MANY_HEADERS;
        }
        if (rc)
            return fail(scan, rc);
        ls = p = i + 1;
    }

    /* 3. the partial last line: checks that do not need its end */
    if (p < end && (line_done || req)) {
        if (line_done) {
            if (buf[p - 1] == '\n' && is_ows(buf[p]))
                return fail(scan, ND_HTTP_E_BAD); /* obs-fold */
        } else if (req) {
            int rc = partial_request_line(buf, start, &p, end, &aux, l.max_uri);
            if (rc)
                return fail(scan, rc);
        }
        for (; p < end; p++) {
            unsigned char c = (unsigned char)buf[p];
            if ((CL(c) & C_BADCTL) || (c == '\r' && p + 1 < end))
                return fail(scan, ND_HTTP_E_BAD); /* no LF here: a CR not last is bare */
        }
    }
    if (len >= l.max_head)
        return fail(scan, ND_HTTP_E_HEAD_TOO_LARGE);
    if (scan)
        *scan = (size_t)((uint64_t)end | (line_done ? SCAN_LINE_DONE : 0) |
                         ((uint64_t)aux << SCAN_AUX_SHIFT));
    return ND_HTTP_AGAIN;
}

int nd_http1_parse_request(const char *buf, size_t len, struct nd_http_msg *msg,
                           const struct nd_http_limits *lim, size_t *scan)
{
    return parse_common(buf, len, msg, lim, scan, true, ND_HTTP_GET);
}

int nd_http1_parse_response(const char *buf, size_t len, struct nd_http_msg *msg,
                            const struct nd_http_limits *lim, size_t *scan,
                            enum nd_http_method req_method)
{
    return parse_common(buf, len, msg, lim, scan, false, req_method);
}

/* ---- errors ------------------------------------------------------------------------------ */

int nd_http1_error_status(int err)
{
    switch (err) {
    case ND_HTTP_E_URI_TOO_LONG:
        return 414;
    case ND_HTTP_E_HEAD_TOO_LARGE:
    case ND_HTTP_E_TOO_MANY_HEADERS:
        return 431;
    case ND_HTTP_E_VERSION:
        return 505;
    case ND_HTTP_E_TE_UNSUPPORTED:
        return 501;
    default:
        return 400;
    }
}

const char *nd_http1_strerror(int err)
{
    switch (err) {
    case ND_HTTP_AGAIN:
        return "incomplete";
    case ND_HTTP_E_BAD:
        return "malformed message";
    case ND_HTTP_E_URI_TOO_LONG:
        return "request-target too long";
    case ND_HTTP_E_HEAD_TOO_LARGE:
        return "header section too large";
    case ND_HTTP_E_TOO_MANY_HEADERS:
        return "too many header fields";
    case ND_HTTP_E_VERSION:
        return "unsupported HTTP version";
    case ND_HTTP_E_TE_UNSUPPORTED:
        return "unsupported transfer coding";
    case ND_HTTP_E_SMUGGLING:
        return "conflicting Content-Length and Transfer-Encoding";
    case ND_HTTP_E_BAD_LENGTH:
        return "invalid Content-Length";
    case ND_HTTP_E_BAD_HOST:
        return "missing, repeated or invalid Host";
    default:
        return err > 0 ? "complete" : "unknown error";
    }
}

/* ---- chunked ----------------------------------------------------------------------------- */

enum {
    CH_SIZE0,    /* first hex digit of a chunk size */
    CH_SIZE,     /* more hex digits */
    CH_SIZE_WS,  /* BWS after the size: only ';' may follow */
    CH_EXT,      /* chunk extensions, up to CR */
    CH_SIZE_LF,  /* LF ending the chunk-size line */
    CH_DATA,     /* c->left bytes of data */
    CH_DATA_CR,  /* CR after data */
    CH_DATA_LF,  /* LF after data */
    CH_TR_START, /* start of a trailer line, or CR of the final empty line */
    CH_TR_NAME,  /* trailer field name */
    CH_TR_VALUE, /* trailer field value, up to CR */
    CH_TR_LF,    /* LF ending a trailer line */
    CH_END_LF,   /* LF of the final empty line */
    CH_DONE
};

static const uint8_t hexval[256] = {
    ['0'] = 0,  ['1'] = 1,  ['2'] = 2,  ['3'] = 3,  ['4'] = 4,  ['5'] = 5,  ['6'] = 6,  ['7'] = 7,
    ['8'] = 8,  ['9'] = 9,  ['a'] = 10, ['b'] = 11, ['c'] = 12, ['d'] = 13, ['e'] = 14, ['f'] = 15,
    ['A'] = 10, ['B'] = 11, ['C'] = 12, ['D'] = 13, ['E'] = 14, ['F'] = 15,
};

void nd_http1_chunked_init(struct nd_http_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = CH_SIZE0;
}

ssize_t nd_http1_chunked(struct nd_http_chunked *c, const char *buf, size_t len, size_t *data_off,
                         size_t *data_len)
{
    size_t i = 0;
    *data_off = 0;
    *data_len = 0;
    while (i < len && c->state != CH_DONE) {
        if (c->state == CH_DATA) {
            size_t n = len - i;
            if (n > c->left)
                n = (size_t)c->left;
            *data_off = i;
            *data_len = n;
            c->left -= n;
            if (c->left == 0)
                c->state = CH_DATA_CR;
            return (ssize_t)(i + n);
        }
        unsigned char ch = (unsigned char)buf[i++];
        switch (c->state) {
        case CH_SIZE0:
        case CH_SIZE:
            if (CL(ch) & C_HEX) {
                if (c->left >= ND_HTTP_MAX_LENGTH >> 4) /* size would reach 2^62 */
                    goto bad;
                c->left = (c->left << 4) | hexval[ch];
                c->state = CH_SIZE;
                break;
            }
            if (c->state == CH_SIZE0)
                goto bad;
            c->ext_bytes = 1;
            if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (ch == ';')
                c->state = CH_EXT;
            else if (is_ows((char)ch))
                c->state = CH_SIZE_WS;
            else
                goto bad;
            break;
        case CH_SIZE_WS: /* BWS ";" (RFC 9112 7.1.1) */
            if (++c->ext_bytes > ND_HTTP_CHUNK_EXT_MAX)
                goto bad;
            if (ch == ';')
                c->state = CH_EXT;
            else if (!is_ows((char)ch))
                goto bad;
            break;
        case CH_EXT:
            if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (++c->ext_bytes > ND_HTTP_CHUNK_EXT_MAX || !(CL(ch) & C_FVAL))
                goto bad;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                goto bad;
            c->state = c->left ? CH_DATA : CH_TR_START;
            break;
        case CH_DATA_CR:
            if (ch != '\r')
                goto bad;
            c->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                goto bad;
            c->state = CH_SIZE0;
            break;
        default: /* trailer section */
            if (++c->trailer_bytes > ND_HTTP_TRAILER_MAX)
                goto bad;
            switch (c->state) {
            case CH_TR_START:
                if (ch == '\r')
                    c->state = CH_END_LF;
                else if (CL(ch) & C_TCHAR)
                    c->state = CH_TR_NAME;
                else
                    goto bad; /* empty name, obs-fold, bare LF */
                break;
            case CH_TR_NAME:
                if (ch == ':')
                    c->state = CH_TR_VALUE;
                else if (!(CL(ch) & C_TCHAR))
                    goto bad;
                break;
            case CH_TR_VALUE:
                if (ch == '\r')
                    c->state = CH_TR_LF;
                else if (!(CL(ch) & C_FVAL))
                    goto bad;
                break;
            case CH_TR_LF:
                if (ch != '\n')
                    goto bad;
                c->state = CH_TR_START;
                break;
            case CH_END_LF:
                if (ch != '\n')
                    goto bad;
                c->state = CH_DONE;
                c->done = 1;
                break;
            default:
                goto bad;
            }
        }
    }
    return (ssize_t)i;
bad:
    *data_off = 0;
    *data_len = 0;
    return ND_HTTP_E_BAD;
}

/* ---- helpers ----------------------------------------------------------------------------- */

bool nd_http1_name_eq(struct nd_str s, const char *lit, size_t litlen)
{
    uint64_t x, y;

    if (s.len != litlen)
        return false;
    if (litlen < 8)
        return ieq(s.p, lit, litlen);
    /* eight bytes per step (lookups by plugins compare names of 10 to 20 bytes), the last step
     * over the last eight bytes, overlapping the one before */
    for (size_t i = 0;; i += 8) {
        if (i + 8 > litlen)
            i = litlen - 8;
        memcpy(&x, s.p + i, 8);
        memcpy(&y, lit + i, 8);
        if (x != y && lower8(x) != lower8(y))
            return false;
        if (i + 8 == litlen)
            return true;
    }
}

bool nd_http1_token_list_has(struct nd_str v, const char *tok, size_t toklen)
{
    const char *s;
    size_t n;
    if (!v.p)
        return false;
    for (struct list_it it = list_begin(v); list_next(&it, &s, &n);)
        if (n == toklen && ieq(s, tok, n))
            return true;
    return false;
}

const struct nd_http_hdr *nd_http1_find(const struct nd_http_msg *m, const char *name,
                                        size_t namelen)
{
    for (uint16_t i = 0; i < m->nhdrs; i++)
        if (nd_http1_name_eq(m->hdrs[i].name, name, namelen))
            return &m->hdrs[i];
    return NULL;
}

const char *nd_http1_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 421:
        return "Misdirected Request";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}
