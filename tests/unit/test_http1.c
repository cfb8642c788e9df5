/* Unit tests for core/http1.c: request and response heads, limits, chunked decoder, helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "http1.h"

#define S(lit) lit, sizeof(lit) - 1

static struct nd_http_hdr hdrs[128];
static const struct nd_http_limits lim = {.max_head = 8192, .max_uri = 4096, .max_headers = 100};

static void msg_init(struct nd_http_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->hdrs = hdrs;
    m->cap = 128;
}

static int req_l(const char *s, size_t n, struct nd_http_msg *m, const struct nd_http_limits *l)
{
    size_t scan = 0;
    msg_init(m);
    return nd_http1_parse_request(s, n, m, l, &scan);
}

static int req(const char *s, struct nd_http_msg *m)
{
    return req_l(s, strlen(s), m, &lim);
}

static int resp(const char *s, struct nd_http_msg *m, enum nd_http_method meth)
{
    size_t scan = 0;
    msg_init(m);
    return nd_http1_parse_response(s, strlen(s), m, &lim, &scan, meth);
}

static void assert_str(struct nd_str s, const char *want)
{
    if (s.len != strlen(want) || (s.len && memcmp(s.p, want, s.len))) {
        print_error("got \"%.*s\", want \"%s\"\n", (int)s.len, s.p ? s.p : "", want);
        fail();
    }
}

/* Feed s[0..n) k bytes at a time (the buffer grows, the scan hint is kept): every call before
 * the last must say AGAIN; returns the last result. */
static int feed_req(const char *s, size_t n, size_t k, struct nd_http_msg *m,
                    const struct nd_http_limits *l, size_t *at)
{
    size_t scan = 0;
    int r = ND_HTTP_AGAIN;
    msg_init(m);
    for (size_t len = k < n ? k : n;; len = len + k < n ? len + k : n) {
        r = nd_http1_parse_request(s, len, m, l, &scan);
        if (r != ND_HTTP_AGAIN || len == n) {
            if (at)
                *at = len;
            return r;
        }
    }
}

/* ---- requests ---------------------------------------------------------------------------- */

static void test_simple_get(void **state)
{
    (void)state;
    struct nd_http_msg m;
    const char *s = "GET /index.html?a=1&b=2 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    int r = req(s, &m);
    assert_int_equal(r, (int)strlen(s));
    assert_int_equal(m.head_len, strlen(s));
    assert_str(m.method, "GET");
    assert_int_equal(m.meth, ND_HTTP_GET);
    assert_str(m.target, "/index.html?a=1&b=2");
    assert_str(m.path, "/index.html");
    assert_str(m.query, "a=1&b=2");
    assert_str(m.authority, "example.com");
    assert_int_equal(m.version_minor, 1);
    assert_int_equal(m.flags, ND_HTTP_F_KEEPALIVE);
    assert_int_equal(m.body, ND_HTTP_BODY_NONE);
    assert_int_equal(m.nhdrs, 1);
    /* pointers into the buffer, no copy */
    assert_ptr_equal(m.method.p, s);
    assert_ptr_equal(m.target.p, s + 4);
    assert_ptr_equal(m.hdrs[0].value.p, s + 40);

    assert_true(req("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
    assert_str(m.path, "/");
    assert_int_equal(m.query.len, 0);
    assert_null(m.query.p);
    assert_true(req("GET /p? HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
    assert_str(m.path, "/p");
    assert_int_equal(m.query.len, 0);
    assert_non_null(m.query.p);
}

static void test_methods(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum nd_http_method m;
    } t[] = {{"GET", ND_HTTP_GET},     {"HEAD", ND_HTTP_HEAD},     {"POST", ND_HTTP_POST},
             {"PUT", ND_HTTP_PUT},     {"DELETE", ND_HTTP_DELETE}, {"OPTIONS", ND_HTTP_OPTIONS},
             {"TRACE", ND_HTTP_TRACE}, {"PATCH", ND_HTTP_PATCH},   {"PROPFIND", ND_HTTP_OTHER},
             {"get", ND_HTTP_OTHER},   {"M-SEARCH", ND_HTTP_OTHER}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char buf[128];
        struct nd_http_msg m;
        snprintf(buf, sizeof(buf), "%s /x HTTP/1.1\r\nHost: h\r\n\r\n", t[i].name);
        assert_true(req(buf, &m) > 0);
        assert_int_equal(m.meth, t[i].m);
        assert_str(m.method, t[i].name);
    }
}

static void test_headers(void **state)
{
    (void)state;
    struct nd_http_msg m;
    const char *s = "POST /submit HTTP/1.1\r\n"
                    "Host: api.local:8080\r\n"
                    "X-Empty:\r\n"
                    "X-Spaces: \t value with  inner  spaces \t \r\n"
                    "content-length: 5\r\n"
                    "X-Obs: caf\xc3\xa9\r\n"
                    "X-Tab:\ta\tb\r\n"
                    "\r\n"
                    "hello";
    int r = req(s, &m);
    assert_int_equal(r, (int)(strlen(s) - 5));
    assert_int_equal(m.nhdrs, 6);
    assert_str(m.hdrs[0].name, "Host");
    assert_str(m.hdrs[0].value, "api.local:8080");
    assert_str(m.hdrs[1].name, "X-Empty");
    assert_str(m.hdrs[1].value, "");
    assert_str(m.hdrs[2].value, "value with  inner  spaces");
    assert_str(m.hdrs[4].value, "caf\xc3\xa9");
    assert_str(m.hdrs[5].value, "a\tb");
    assert_int_equal(m.body, ND_HTTP_BODY_LENGTH);
    assert_int_equal(m.content_length, 5);
    assert_str(m.authority, "api.local:8080");

    const struct nd_http_hdr *h = nd_http1_find(&m, S("CONTENT-LENGTH"));
    assert_non_null(h);
    assert_ptr_equal(h, &m.hdrs[3]);
    assert_null(nd_http1_find(&m, S("x-missing")));
}

static void test_pipelined(void **state)
{
    (void)state;
    struct nd_http_msg m;
    const char *a = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
    const char *b = "POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
    const char *c = "GET /three HTTP/1.1\r\nHost: h\r\n\r\n";
    char buf[512];
    snprintf(buf, sizeof(buf), "%s%sabc%s", a, b, c);
    size_t len = strlen(buf), off = 0;

    int r = req_l(buf, len, &m, &lim);
    assert_int_equal(r, (int)strlen(a));
    assert_str(m.path, "/one");
    off += (size_t)r;
    r = req_l(buf + off, len - off, &m, &lim);
    assert_int_equal(r, (int)strlen(b));
    assert_str(m.path, "/two");
    assert_int_equal(m.content_length, 3);
    off += (size_t)r + m.content_length;
    r = req_l(buf + off, len - off, &m, &lim);
    assert_int_equal(r, (int)strlen(c));
    assert_str(m.path, "/three");
    assert_int_equal(off + (size_t)r, len);
}

static const char *const good_reqs[] = {
    "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "\r\n\r\nGET /x?y HTTP/1.1\r\nHost: a.b\r\nConnection: close, Upgrade\r\nUpgrade: ws\r\n\r\n",
    "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    "GET http://example.com:81/a/b?c=d HTTP/1.1\r\nHost: other\r\n\r\n",
    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /old HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
    "PUT /x HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Length: 12, 12\r\nX: y\r\n\r\n",
};

static void test_incremental(void **state)
{
    (void)state;
    for (size_t t = 0; t < sizeof(good_reqs) / sizeof(good_reqs[0]); t++) {
        const char *s = good_reqs[t];
        size_t n = strlen(s);
        struct nd_http_msg all, inc;
        int r = req(s, &all);
        assert_int_equal(r, (int)n);
        struct nd_http_hdr all_hdrs[128];
        memcpy(all_hdrs, hdrs, sizeof(hdrs));
        for (size_t k = 1; k <= 7; k++) {
            size_t at;
            assert_int_equal(feed_req(s, n, k, &inc, &lim, &at), r);
            assert_int_equal(at, n);
            assert_ptr_equal(inc.method.p, all.method.p);
            assert_int_equal(inc.target.len, all.target.len);
            assert_ptr_equal(inc.path.p, all.path.p);
            assert_int_equal(inc.authority.len, all.authority.len);
            assert_int_equal(inc.flags, all.flags);
            assert_int_equal(inc.body, all.body);
            assert_int_equal(inc.nhdrs, all.nhdrs);
            assert_int_equal(inc.head_len, all.head_len);
            assert_memory_equal(hdrs, all_hdrs, inc.nhdrs * sizeof(hdrs[0]));
        }
    }
    /* the hint survives calls that bring no new byte */
    struct nd_http_msg m;
    const char *s = good_reqs[1];
    size_t scan = 0;
    msg_init(&m);
    for (size_t len = 0; len < strlen(s); len++) {
        assert_int_equal(nd_http1_parse_request(s, len, &m, &lim, &scan), ND_HTTP_AGAIN);
        assert_int_equal(nd_http1_parse_request(s, len, &m, &lim, &scan), ND_HTTP_AGAIN);
    }
    assert_int_equal(nd_http1_parse_request(s, strlen(s), &m, &lim, &scan), (int)strlen(s));
    assert_int_equal(scan, 0);
    /* a NULL hint works, just without the saving */
    msg_init(&m);
    assert_int_equal(nd_http1_parse_request(s, strlen(s), &m, NULL, NULL), (int)strlen(s));
}

struct bad_case {
    const char *s;
    int err;
};

static const struct bad_case bad_reqs[] = {
    /* request line */
    {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {" GET / HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET /{x} HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / \r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET /\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / http/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1x\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1\r\nHost: h\r\n\r\n", ND_HTTP_E_VERSION},
    {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", ND_HTTP_E_VERSION},
    {"GET / HTTP/1.2\r\nHost: h\r\n\r\n", ND_HTTP_E_VERSION},
    {"GET / HTTP/0.9\r\nHost: h\r\n\r\n", ND_HTTP_E_VERSION},
    {"GET / HTTP/1.\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    /* target forms */
    {"GET * HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET example.com:80 HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET http://user@h/x HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"CONNECT h:99999 HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    /* line endings */
    {"GET / HTTP/1.1\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1\r\nHost: h\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1\r\nHost: h\r\n\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1\r\nHost: h\n\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1\rHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    /* header fields */
    {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1\r\n: h\r\nHost: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1\r\nHost h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1\r\nHo\"st: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1\r\n Host: h\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", ND_HTTP_E_BAD},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: \x1b[0m\r\n\r\n", ND_HTTP_E_BAD},
    /* Content-Length */
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", ND_HTTP_E_BAD_LENGTH},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", ND_HTTP_E_BAD_LENGTH},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", ND_HTTP_E_BAD_LENGTH},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", ND_HTTP_E_BAD_LENGTH},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", ND_HTTP_E_BAD_LENGTH},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
     ND_HTTP_E_BAD_LENGTH},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n", ND_HTTP_E_BAD_LENGTH},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,\r\n\r\n", ND_HTTP_E_BAD_LENGTH},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
     ND_HTTP_E_BAD_LENGTH},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4611686018427387904\r\n\r\n",
     ND_HTTP_E_BAD_LENGTH},
    /* Transfer-Encoding */
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     ND_HTTP_E_SMUGGLING},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
     ND_HTTP_E_SMUGGLING},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", ND_HTTP_E_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", ND_HTTP_E_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     ND_HTTP_E_TE_UNSUPPORTED},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
     ND_HTTP_E_TE_UNSUPPORTED},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", ND_HTTP_E_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
     "chunked\r\n\r\n",
     ND_HTTP_E_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", ND_HTTP_E_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;a=b\r\n\r\n", ND_HTTP_E_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n", ND_HTTP_E_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", ND_HTTP_E_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", ND_HTTP_E_BAD},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", ND_HTTP_E_BAD},
    /* Host */
    {"GET / HTTP/1.1\r\n\r\n", ND_HTTP_E_BAD_HOST},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", ND_HTTP_E_BAD_HOST},
    {"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", ND_HTTP_E_BAD_HOST},
    {"GET / HTTP/1.1\r\nHost:\r\n\r\n", ND_HTTP_E_BAD_HOST},
    {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ND_HTTP_E_BAD_HOST},
    {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", ND_HTTP_E_BAD_HOST},
    {"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", ND_HTTP_E_BAD_HOST},
    {"GET / HTTP/1.1\r\nHost: a:\r\n\r\n", ND_HTTP_E_BAD_HOST},
    {"GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", ND_HTTP_E_BAD_HOST},
    {"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", ND_HTTP_E_BAD_HOST},
    {"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", ND_HTTP_E_BAD_HOST},
    {"GET / HTTP/1.1\r\nHost: []\r\n\r\n", ND_HTTP_E_BAD_HOST},
    {"GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", ND_HTTP_E_BAD_HOST},
    {"GET http://h/ HTTP/1.1\r\n\r\n", ND_HTTP_E_BAD_HOST},
};

static void test_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_reqs) / sizeof(bad_reqs[0]); i++) {
        const char *s = bad_reqs[i].s;
        size_t n = strlen(s);
        struct nd_http_msg m;
        int r = req_l(s, n, &m, &lim);
        if (r != bad_reqs[i].err) {
            print_error("case %zu: got %d want %d: %s\n", i, r, bad_reqs[i].err, s);
            fail();
        }
        /* same answer when fed byte by byte */
        assert_int_equal(feed_req(s, n, 1, &m, &lim, NULL), bad_reqs[i].err);
        assert_true(nd_http1_error_status(r) >= 400);
    }
    assert_true(sizeof(bad_reqs) / sizeof(bad_reqs[0]) >= 40);

    /* NUL anywhere */
    static const char nul[][40] = {
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", "GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n",
        "G\0T / HTTP/1.1\r\nHost: h\r\n\r\n", "GET / HTTP/1.1\r\nHo\0st: h\r\n\r\n"};
    for (size_t i = 0; i < sizeof(nul) / sizeof(nul[0]); i++) {
        const char *s = nul[i];
        size_t n = strlen(s);
        n += 1 + strlen(s + n + 1);
        struct nd_http_msg m;
        assert_int_equal(req_l(s, n, &m, &lim), ND_HTTP_E_BAD);
        assert_int_equal(feed_req(s, n, 1, &m, &lim, NULL), ND_HTTP_E_BAD);
    }
}

static void test_error_status(void **state)
{
    (void)state;
    assert_int_equal(nd_http1_error_status(ND_HTTP_E_BAD), 400);
    assert_int_equal(nd_http1_error_status(ND_HTTP_E_URI_TOO_LONG), 414);
    assert_int_equal(nd_http1_error_status(ND_HTTP_E_HEAD_TOO_LARGE), 431);
    assert_int_equal(nd_http1_error_status(ND_HTTP_E_TOO_MANY_HEADERS), 431);
    assert_int_equal(nd_http1_error_status(ND_HTTP_E_VERSION), 505);
    assert_int_equal(nd_http1_error_status(ND_HTTP_E_TE_UNSUPPORTED), 501);
    assert_int_equal(nd_http1_error_status(ND_HTTP_E_SMUGGLING), 400);
    assert_int_equal(nd_http1_error_status(ND_HTTP_E_BAD_LENGTH), 400);
    assert_int_equal(nd_http1_error_status(ND_HTTP_E_BAD_HOST), 400);
    assert_int_equal(nd_http1_error_status(-1000), 400);
    assert_string_equal(nd_http1_strerror(ND_HTTP_E_SMUGGLING),
                        "conflicting Content-Length and Transfer-Encoding");
    for (int e = -12; e <= 1; e++)
        assert_non_null(nd_http1_strerror(e));
}

/* ---- limits ------------------------------------------------------------------------------ */

static void test_limit_uri(void **state)
{
    (void)state;
    const struct nd_http_limits l = {.max_head = 8192, .max_uri = 16, .max_headers = 10};
    struct nd_http_msg m;
    char buf[256];
    /* exactly max_uri is fine */
    snprintf(buf, sizeof(buf), "GET /%s HTTP/1.1\r\nHost: h\r\n\r\n", "123456789012345");
    assert_true(req_l(buf, strlen(buf), &m, &l) > 0);
    assert_int_equal(m.target.len, 16);
    /* one more is 414, known as soon as the 17th byte of the target arrives */
    snprintf(buf, sizeof(buf), "GET /%s HTTP/1.1\r\nHost: h\r\n\r\n", "1234567890123456");
    assert_int_equal(req_l(buf, strlen(buf), &m, &l), ND_HTTP_E_URI_TOO_LONG);
    size_t at;
    assert_int_equal(feed_req(buf, strlen(buf), 1, &m, &l, &at), ND_HTTP_E_URI_TOO_LONG);
    assert_int_equal(at, 4 + 17);
    assert_int_equal(req_l(buf, 4 + 16, &m, &l), ND_HTTP_AGAIN);
    assert_int_equal(req_l(buf, 4 + 17, &m, &l), ND_HTTP_E_URI_TOO_LONG);
    /* an absolute-form target counts whole */
    snprintf(buf, sizeof(buf), "GET http://h/12345678 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(req_l(buf, strlen(buf), &m, &l), ND_HTTP_E_URI_TOO_LONG);
    assert_int_equal(nd_http1_error_status(ND_HTTP_E_URI_TOO_LONG), 414);
}

static void test_limit_head_size(void **state)
{
    (void)state;
    char buf[400];
    struct nd_http_msg m;
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: 0123456789\r\n\r\n";
    size_t n = strlen(s);
    struct nd_http_limits l = {.max_head = (uint32_t)n, .max_uri = 4096, .max_headers = 10};
    /* a head of exactly max_head bytes fits */
    assert_int_equal(req_l(s, n, &m, &l), (int)n);
    /* one byte less of room: 431 as soon as max_head bytes are there without the end */
    l.max_head = (uint32_t)n - 1;
    assert_int_equal(req_l(s, n, &m, &l), ND_HTTP_E_HEAD_TOO_LARGE);
    assert_int_equal(req_l(s, n - 2, &m, &l), ND_HTTP_AGAIN);
    assert_int_equal(req_l(s, n - 1, &m, &l), ND_HTTP_E_HEAD_TOO_LARGE);
    size_t at;
    assert_int_equal(feed_req(s, n, 1, &m, &l, &at), ND_HTTP_E_HEAD_TOO_LARGE);
    assert_int_equal(at, n - 1);
    /* an endless header line is stopped at max_head, long before any end */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
    l.max_head = 100;
    assert_int_equal(req_l(buf, 99, &m, &l), ND_HTTP_AGAIN);
    assert_int_equal(req_l(buf, 100, &m, &l), ND_HTTP_E_HEAD_TOO_LARGE);
    assert_int_equal(req_l(buf, sizeof(buf), &m, &l), ND_HTTP_E_HEAD_TOO_LARGE);
    assert_int_equal(feed_req(buf, sizeof(buf), 1, &m, &l, &at), ND_HTTP_E_HEAD_TOO_LARGE);
    assert_int_equal(at, 100);
    /* leading empty lines count */
    l.max_head = (uint32_t)n + 1;
    snprintf(buf, sizeof(buf), "\r\n%s", s);
    assert_int_equal(req_l(buf, n + 2, &m, &l), ND_HTTP_E_HEAD_TOO_LARGE);
    l.max_head = (uint32_t)n + 2;
    assert_int_equal(req_l(buf, n + 2, &m, &l), (int)n + 2);
    assert_int_equal(m.head_len, n + 2);
    /* default limits with lim == NULL */
    msg_init(&m);
    assert_int_equal(nd_http1_parse_request(s, n, &m, NULL, NULL), (int)n);
}

static void test_limit_header_count(void **state)
{
    (void)state;
    char buf[1024];
    struct nd_http_msg m;
    struct nd_http_limits l = {.max_head = 8192, .max_uri = 4096, .max_headers = 5};
    size_t off = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\n");
    size_t after5 = 0;
    for (int i = 0; i < 6; i++) {
        if (i == 4)
            after5 = off;
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "X-%d: v\r\n", i);
    }
    snprintf(buf + off, sizeof(buf) - off, "\r\n");
    /* Host + X-0..X-3 = 5 headers fit */
    memcpy(buf + after5, "\r\n", 2);
    assert_int_equal(req_l(buf, after5 + 2, &m, &l), (int)after5 + 2);
    assert_int_equal(m.nhdrs, 5);
    memcpy(buf + after5, "X-", 2);
    /* the 6th is 431, detected once its line is complete, before the head is */
    size_t end6 = after5 + strlen("X-4: v\r\n");
    assert_int_equal(req_l(buf, strlen(buf), &m, &l), ND_HTTP_E_TOO_MANY_HEADERS);
    assert_int_equal(req_l(buf, end6 - 1, &m, &l), ND_HTTP_AGAIN);
    assert_int_equal(req_l(buf, end6, &m, &l), ND_HTTP_E_TOO_MANY_HEADERS);
    size_t at;
    assert_int_equal(feed_req(buf, strlen(buf), 1, &m, &l, &at), ND_HTTP_E_TOO_MANY_HEADERS);
    assert_int_equal(at, end6);
    /* the hdrs capacity bounds too */
    l.max_headers = 100;
    msg_init(&m);
    m.cap = 3;
    size_t scan = 0;
    assert_int_equal(nd_http1_parse_request(buf, strlen(buf), &m, &l, &scan),
                     ND_HTTP_E_TOO_MANY_HEADERS);
    msg_init(&m);
    m.hdrs = NULL;
    m.cap = 0;
    scan = 0;
    assert_int_equal(nd_http1_parse_request(buf, strlen(buf), &m, &l, &scan),
                     ND_HTTP_E_TOO_MANY_HEADERS);
    /* HTTP/1.0 needs no header at all */
    assert_int_equal(nd_http1_parse_request(S("GET / HTTP/1.0\r\n\r\n"), &m, &l, &scan), 18);
    assert_int_equal(m.nhdrs, 0);
}

/* ---- target forms, connection semantics -------------------------------------------------- */

static void test_absolute_form(void **state)
{
    (void)state;
    struct nd_http_msg m;
    assert_true(req("GET http://Example.COM:8080/a/b?x=1 HTTP/1.1\r\nHost: ignored\r\n\r\n", &m) >
                0);
    assert_str(m.target, "http://Example.COM:8080/a/b?x=1");
    assert_str(m.authority, "Example.COM:8080");
    assert_str(m.path, "/a/b");
    assert_str(m.query, "x=1");
    assert_true(req("GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
    assert_str(m.authority, "h");
    assert_int_equal(m.path.len, 0);
    assert_true(req("GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
    assert_str(m.authority, "h");
    assert_int_equal(m.path.len, 0);
    assert_str(m.query, "q");
    assert_true(req("GET http://[2001:db8::1]:443/ HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
    assert_str(m.authority, "[2001:db8::1]:443");
    assert_str(m.path, "/");
    assert_true(req("GET http://10.0.0.1/x HTTP/1.0\r\n\r\n", &m) > 0);
    assert_str(m.authority, "10.0.0.1");
}

static void test_other_forms(void **state)
{
    (void)state;
    struct nd_http_msg m;
    assert_true(req("CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n", &m) > 0);
    assert_int_equal(m.meth, ND_HTTP_CONNECT);
    assert_str(m.authority, "db.internal:5432");
    assert_int_equal(m.path.len, 0);
    assert_true(req("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
    assert_str(m.path, "*");
    assert_str(m.authority, "h");
    /* Host forms */
    assert_true(req("GET / HTTP/1.1\r\nHost: 192.168.1.1:80\r\n\r\n", &m) > 0);
    assert_true(req("GET / HTTP/1.1\r\nHost: [fe80::1]\r\n\r\n", &m) > 0);
    assert_true(req("GET / HTTP/1.1\r\nHost: my_host.x-y~z%41\r\n\r\n", &m) > 0);
    assert_true(req("GET / HTTP/1.1\r\nHost:   h.example  \r\n\r\n", &m) > 0);
    assert_str(m.authority, "h.example");
    /* HTTP/1.0 may omit Host: authority empty */
    assert_true(req("GET / HTTP/1.0\r\n\r\n", &m) > 0);
    assert_int_equal(m.authority.len, 0);
    /* leading empty lines are skipped, and counted */
    const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(req(s, &m), (int)strlen(s));
    assert_ptr_equal(m.method.p, s + 4);
}

static void test_keepalive(void **state)
{
    (void)state;
    struct nd_http_msg m;
    assert_true(req("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
    assert_int_equal(m.flags, ND_HTTP_F_KEEPALIVE);
    assert_true(req("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", &m) > 0);
    assert_int_equal(m.flags, ND_HTTP_F_CLOSE);
    assert_true(req("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, CLOSE \r\n\r\n", &m) > 0);
    assert_int_equal(m.flags, ND_HTTP_F_CLOSE | ND_HTTP_F_CONN_TOKENS); /* foo is hop-by-hop */
    assert_true(req("GET / HTTP/1.0\r\n\r\n", &m) > 0);
    assert_int_equal(m.version_minor, 0);
    assert_int_equal(m.flags, 0);
    assert_true(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &m) > 0);
    assert_int_equal(m.flags, ND_HTTP_F_KEEPALIVE);
    assert_true(req("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", &m) >
                0);
    assert_int_equal(m.flags, ND_HTTP_F_CLOSE);
    assert_true(req("GET / HTTP/1.0\r\nConnection: keep-alive-ish\r\n\r\n", &m) > 0);
    assert_int_equal(m.flags, ND_HTTP_F_CONN_TOKENS);
    /* upgrade needs both headers, and HTTP/1.1 */
    assert_true(
        req("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", &m) >
        0);
    assert_int_equal(m.flags, ND_HTTP_F_KEEPALIVE | ND_HTTP_F_UPGRADE);
    assert_true(req("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: "
                    "upgrade\r\nUpgrade: h2c\r\n\r\n",
                    &m) > 0);
    assert_int_equal(m.flags, ND_HTTP_F_KEEPALIVE | ND_HTTP_F_UPGRADE);
    assert_true(req("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", &m) > 0);
    assert_int_equal(m.flags, ND_HTTP_F_KEEPALIVE);
    assert_true(req("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", &m) > 0);
    assert_int_equal(m.flags, 0);
}

static void test_expect(void **state)
{
    (void)state;
    struct nd_http_msg m;
    assert_true(req("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: "
                    "10\r\n\r\n",
                    &m) > 0);
    assert_int_equal(m.flags, ND_HTTP_F_KEEPALIVE | ND_HTTP_F_EXPECT_100);
    assert_true(req("PUT / HTTP/1.1\r\nHost: h\r\nexpect: 100-Continue\r\n\r\n", &m) > 0);
    assert_true(m.flags & ND_HTTP_F_EXPECT_100);
    assert_true(req("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 101-continue\r\n\r\n", &m) > 0);
    assert_false(m.flags & ND_HTTP_F_EXPECT_100);
    /* ignored in HTTP/1.0 (RFC 9110 10.1.1) */
    assert_true(req("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &m) > 0);
    assert_false(m.flags & ND_HTTP_F_EXPECT_100);
}

static void test_body_framing(void **state)
{
    (void)state;
    struct nd_http_msg m;
    assert_true(req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n", &m) > 0);
    assert_int_equal(m.body, ND_HTTP_BODY_LENGTH);
    assert_int_equal(m.content_length, 7);
    assert_true(
        req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\ncontent-length: 3,3\r\n\r\n", &m) >
        0);
    assert_int_equal(m.content_length, 3);
    assert_true(req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &m) > 0);
    assert_int_equal(m.body, ND_HTTP_BODY_LENGTH);
    assert_int_equal(m.content_length, 0);
    assert_true(
        req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4611686018427387903\r\n\r\n", &m) > 0);
    assert_int_equal(m.content_length, ND_HTTP_MAX_LENGTH - 1);
    assert_true(req("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED \r\n\r\n", &m) > 0);
    assert_int_equal(m.body, ND_HTTP_BODY_CHUNKED);
    assert_true(req("POST / HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
    assert_int_equal(m.body, ND_HTTP_BODY_NONE);
}

/* ---- responses --------------------------------------------------------------------------- */

static void test_responses(void **state)
{
    (void)state;
    struct nd_http_msg m;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x\r\n\r\nhello world!";
    assert_int_equal(resp(s, &m, ND_HTTP_GET), (int)strlen(s) - 12);
    assert_int_equal(m.status, 200);
    assert_str(m.reason, "OK");
    assert_int_equal(m.body, ND_HTTP_BODY_LENGTH);
    assert_int_equal(m.content_length, 12);
    assert_int_equal(m.flags, ND_HTTP_F_KEEPALIVE);
    assert_int_equal(m.nhdrs, 2);

    assert_true(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &m, ND_HTTP_GET) > 0);
    assert_int_equal(m.body, ND_HTTP_BODY_CHUNKED);
    assert_true(
        resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &m, ND_HTTP_GET) > 0);
    assert_int_equal(m.body, ND_HTTP_BODY_CHUNKED);
    assert_true(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", &m, ND_HTTP_GET) > 0);
    assert_int_equal(m.body, ND_HTTP_BODY_CLOSE);
    assert_int_equal(m.flags & ND_HTTP_F_KEEPALIVE, 0);

    assert_true(resp("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", &m, ND_HTTP_GET) > 0);
    assert_int_equal(m.body, ND_HTTP_BODY_NONE);
    assert_true(resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", &m, ND_HTTP_GET) >
                0);
    assert_int_equal(m.body, ND_HTTP_BODY_NONE);
    assert_int_equal(m.flags, ND_HTTP_F_KEEPALIVE);
    assert_true(resp("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", &m, ND_HTTP_HEAD) > 0);
    assert_int_equal(m.body, ND_HTTP_BODY_NONE);
    assert_true(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &m, ND_HTTP_HEAD) >
                0);
    assert_int_equal(m.body, ND_HTTP_BODY_NONE);
    assert_true(resp("HTTP/1.1 200 Connection established\r\n\r\n", &m, ND_HTTP_CONNECT) > 0);
    assert_int_equal(m.body, ND_HTTP_BODY_NONE);
    assert_true(resp("HTTP/1.1 407 Proxy Auth\r\nContent-Length: 0\r\n\r\n", &m, ND_HTTP_CONNECT) >
                0);
    assert_int_equal(m.body, ND_HTTP_BODY_LENGTH);

    /* close-delimited */
    assert_true(resp("HTTP/1.1 200 OK\r\nServer: old\r\n\r\n", &m, ND_HTTP_GET) > 0);
    assert_int_equal(m.body, ND_HTTP_BODY_CLOSE);
    assert_int_equal(m.flags, 0);
    assert_true(resp("HTTP/1.0 200 OK\r\n\r\n", &m, ND_HTTP_GET) > 0);
    assert_int_equal(m.version_minor, 0);
    assert_int_equal(m.body, ND_HTTP_BODY_CLOSE);
    assert_true(resp("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", &m,
                     ND_HTTP_GET) > 0);
    assert_int_equal(m.flags, ND_HTTP_F_KEEPALIVE);
    assert_true(resp("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", &m,
                     ND_HTTP_GET) > 0);
    assert_int_equal(m.flags, ND_HTTP_F_CLOSE);

    /* no reason phrase, with or without its SP */
    assert_true(resp("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", &m, ND_HTTP_GET) > 0);
    assert_int_equal(m.status, 200);
    assert_int_equal(m.reason.len, 0);
    assert_true(resp("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", &m, ND_HTTP_GET) > 0);
    assert_int_equal(m.status, 404);
    assert_int_equal(m.reason.len, 0);
    assert_true(resp("HTTP/1.1 503 Service  Unavailable\t(maintenance)\r\n\r\n", &m, ND_HTTP_GET) >
                0);
    assert_str(m.reason, "Service  Unavailable\t(maintenance)");

    /* 1xx are complete heads the caller skips; the real response follows */
    const char *two = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: "
                      "0\r\n\r\n";
    int r = resp(two, &m, ND_HTTP_PUT);
    assert_int_equal(r, 25);
    assert_int_equal(m.status, 100);
    assert_int_equal(m.body, ND_HTTP_BODY_NONE);
    assert_true(resp(two + r, &m, ND_HTTP_PUT) > 0);
    assert_int_equal(m.status, 201);
    assert_true(resp("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "
                     "websocket\r\n\r\n",
                     &m, ND_HTTP_GET) > 0);
    assert_int_equal(m.status, 101);
    assert_true(m.flags & ND_HTTP_F_UPGRADE);
    assert_int_equal(m.body, ND_HTTP_BODY_NONE);

    /* byte by byte, with the hint */
    s = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x\r\n\r\n";
    size_t scan = 0;
    msg_init(&m);
    for (size_t len = 0; len < strlen(s); len++)
        assert_int_equal(nd_http1_parse_response(s, len, &m, &lim, &scan, ND_HTTP_GET),
                         ND_HTTP_AGAIN);
    assert_int_equal(nd_http1_parse_response(s, strlen(s), &m, &lim, &scan, ND_HTTP_GET),
                     (int)strlen(s));
    assert_int_equal(m.content_length, 12);
}

static void test_bad_responses(void **state)
{
    (void)state;
    static const struct bad_case t[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
         ND_HTTP_E_SMUGGLING},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n", ND_HTTP_E_BAD_LENGTH},
        {"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n", ND_HTTP_E_BAD_LENGTH},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", ND_HTTP_E_BAD},
        {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", ND_HTTP_E_BAD},
        {"HTTP/2.0 200 OK\r\n\r\n", ND_HTTP_E_VERSION},
        {"HTTP/2 200 OK\r\n\r\n", ND_HTTP_E_VERSION},
        {"HTTP/1.1 99 OK\r\n\r\n", ND_HTTP_E_BAD},
        {"HTTP/1.1 600 OK\r\n\r\n", ND_HTTP_E_BAD},
        {"HTTP/1.1 2000 OK\r\n\r\n", ND_HTTP_E_BAD},
        {"HTTP/1.1 20 OK\r\n\r\n", ND_HTTP_E_BAD},
        {"HTTP/1.1  200 OK\r\n\r\n", ND_HTTP_E_BAD},
        {"HTTP/1.1 200 O\x01K\r\n\r\n", ND_HTTP_E_BAD},
        {"HTTP/1.1\r\n\r\n", ND_HTTP_E_BAD},
        {"ICY 200 OK\r\n\r\n", ND_HTTP_E_BAD},
        {"\r\nHTTP/1.1 200 OK\r\n\r\n", ND_HTTP_E_BAD},
        {"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", ND_HTTP_E_BAD},
        {"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", ND_HTTP_E_BAD},
        {"HTTP/1.1 200 OK\r\nX : a\r\n\r\n", ND_HTTP_E_BAD},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct nd_http_msg m;
        int r = resp(t[i].s, &m, ND_HTTP_GET);
        if (r != t[i].err) {
            print_error("case %zu: got %d want %d: %s\n", i, r, t[i].err, t[i].s);
            fail();
        }
        /* byte by byte gives the same */
        size_t scan = 0, n = strlen(t[i].s);
        msg_init(&m);
        for (size_t len = 1; len <= n; len++) {
            r = nd_http1_parse_response(t[i].s, len, &m, &lim, &scan, ND_HTTP_GET);
            if (r != ND_HTTP_AGAIN)
                break;
        }
        assert_int_equal(r, t[i].err);
    }
    /* limits apply to responses too */
    struct nd_http_limits l = {.max_head = 20, .max_uri = 1, .max_headers = 1};
    struct nd_http_msg m;
    size_t scan = 0;
    msg_init(&m);
    const char *s = "HTTP/1.1 200 OK\r\nA: b\r\nC: d\r\n\r\n";
    assert_int_equal(nd_http1_parse_response(s, strlen(s), &m, &l, &scan, ND_HTTP_GET),
                     ND_HTTP_E_HEAD_TOO_LARGE);
    l.max_head = 100;
    assert_int_equal(nd_http1_parse_response(s, strlen(s), &m, &l, &scan, ND_HTTP_GET),
                     ND_HTTP_E_TOO_MANY_HEADERS);
}

/* ---- chunked ----------------------------------------------------------------------------- */

/* Decode buf[0..len) fed in pieces cut at the given points; collect data into out. Returns the
 * total consumed, or the error. */
static ssize_t dechunk(const char *buf, size_t len, const size_t *cuts, size_t ncuts, char *out,
                       size_t *outlen, struct nd_http_chunked *c)
{
    nd_http1_chunked_init(c);
    size_t off = 0, o = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t lim_end = k < ncuts ? cuts[k] : len;
        while (off < lim_end && !c->done) {
            size_t doff, dlen;
            ssize_t n = nd_http1_chunked(c, buf + off, lim_end - off, &doff, &dlen);
            if (n < 0)
                return n;
            assert_true((size_t)n <= lim_end - off);
            assert_true(doff + dlen <= (size_t)n);
            if (n == 0) {
                assert_true(c->done);
                break;
            }
            memcpy(out + o, buf + off + doff, dlen);
            o += dlen;
            off += (size_t)n;
        }
    }
    *outlen = o;
    return (ssize_t)off;
}

static void test_chunked_basic(void **state)
{
    (void)state;
    const char *s = "5\r\nhello\r\n7;name=val;q=\"x y\"\r\n, world\r\nA\r\n0123456789\r\n0\r\n\r\n"
                    "GET /next";
    size_t body = strlen(s) - 9;
    char out[64];
    size_t olen;
    struct nd_http_chunked c;
    assert_int_equal(dechunk(s, strlen(s), NULL, 0, out, &olen, &c), (ssize_t)body);
    assert_true(c.done);
    assert_int_equal(olen, 22);
    assert_memory_equal(out, "hello, world0123456789", 22);

    /* runs are reported one at a time and point at the data */
    nd_http1_chunked_init(&c);
    size_t doff, dlen;
    ssize_t n = nd_http1_chunked(&c, s, strlen(s), &doff, &dlen);
    assert_int_equal(n, 8);
    assert_int_equal(doff, 3);
    assert_int_equal(dlen, 5);
    n = nd_http1_chunked(&c, s + 8, strlen(s) - 8, &doff, &dlen);
    size_t framing = strlen("\r\n7;name=val;q=\"x y\"\r\n");
    assert_int_equal(n, framing + 7);
    assert_int_equal(doff, framing);
    assert_int_equal(dlen, 7);
    assert_memory_equal(s + 8 + doff, ", world", 7);
    /* once done, nothing more is consumed */
    nd_http1_chunked_init(&c);
    assert_int_equal(dechunk(s, strlen(s), NULL, 0, out, &olen, &c), (ssize_t)body);
    assert_int_equal(nd_http1_chunked(&c, s + body, 9, &doff, &dlen), 0);
    assert_int_equal(dlen, 0);

    /* empty body, uppercase hex, leading zeros, BWS before an extension */
    const char *e = "0\r\n\r\n";
    assert_int_equal(dechunk(e, 5, NULL, 0, out, &olen, &c), 5);
    assert_int_equal(olen, 0);
    const char *u = "00000000000000000000001F \t;x\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n";
    assert_int_equal(dechunk(u, strlen(u), NULL, 0, out, &olen, &c), (ssize_t)strlen(u));
    assert_int_equal(olen, 31);
    /* a big chunk arrives in pieces: partial data runs */
    nd_http1_chunked_init(&c);
    n = nd_http1_chunked(&c, S("100\r\nabc"), &doff, &dlen);
    assert_int_equal(n, 8);
    assert_int_equal(dlen, 3);
    assert_int_equal(c.left, 0x100 - 3);
}

static void test_chunked_split(void **state)
{
    (void)state;
    const char *s = "4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n"
                    "Expires: never\r\nX-Trailer: a b\r\n\r\n";
    size_t n = strlen(s);
    char want[64], out[64];
    size_t wlen, olen;
    struct nd_http_chunked c;
    assert_int_equal(dechunk(s, n, NULL, 0, want, &wlen, &c), (ssize_t)n);
    assert_int_equal(wlen, 23);
    assert_memory_equal(want, "Wikipedia in\r\n\r\nchunks.", 23);
    /* split at every single position, then at every pair of positions */
    for (size_t i = 0; i <= n; i++) {
        size_t cuts[1] = {i};
        assert_int_equal(dechunk(s, n, cuts, 1, out, &olen, &c), (ssize_t)n);
        assert_int_equal(olen, wlen);
        assert_memory_equal(out, want, wlen);
        for (size_t j = i; j <= n; j++) {
            size_t cuts2[2] = {i, j};
            assert_int_equal(dechunk(s, n, cuts2, 2, out, &olen, &c), (ssize_t)n);
            assert_int_equal(olen, wlen);
            assert_memory_equal(out, want, wlen);
        }
    }
    /* byte by byte */
    size_t every[128];
    for (size_t i = 0; i < n; i++)
        every[i] = i + 1;
    assert_int_equal(dechunk(s, n, every, n, out, &olen, &c), (ssize_t)n);
    assert_memory_equal(out, want, wlen);
    assert_int_equal(c.trailer_bytes, strlen("Expires: never\r\nX-Trailer: a b\r\n\r\n"));
}

static void test_chunked_bad(void **state)
{
    (void)state;
    static const char *const t[] = {
        "x\r\n",                        /* bad hex */
        "\r\n",                         /* no size */
        "5 x\r\nhello\r\n",             /* junk after size */
        "5 \r\nhello\r\n",              /* BWS without extension */
        "-5\r\n",                       /* sign */
        "0x5\r\n",                      /* prefix */
        "5\nhello\r\n",                 /* bare LF after size */
        "5\rhello\r\n",                 /* bare CR */
        "5\r\nhelloX\r\n0\r\n\r\n",     /* missing CRLF after data */
        "5\r\nhello\n0\r\n\r\n",        /* LF only after data */
        "5\r\nhello\rX",                /* CR then junk */
        "5;a\nb\r\nhello\r\n",          /* LF inside extension */
        "5;a\x01\r\nhello\r\n",         /* CTL inside extension */
        "4000000000000000\r\n",         /* 2^62 */
        "10000000000000000\r\n",        /* 2^64 */
        "FFFFFFFFFFFFFFFFFFFFFFFF\r\n", /* way over */
        "0\r\nX: y\n\r\n",              /* bare LF in trailer */
        "0\r\n X: y\r\n\r\n",           /* obs-fold in trailer */
        "0\r\n: y\r\n\r\n",             /* empty trailer name */
        "0\r\nX y\r\n\r\n",             /* no colon */
        "0\r\nX: \x7f\r\n\r\n",         /* CTL in trailer value */
        "0\r\n\n",                      /* bare LF ending */
        "0\r\n\rX",                     /* CR then junk ending */
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char out[64];
        size_t olen;
        struct nd_http_chunked c;
        ssize_t r = dechunk(t[i], strlen(t[i]), NULL, 0, out, &olen, &c);
        if (r != ND_HTTP_E_BAD) {
            print_error("case %zu: got %zd: %s\n", i, r, t[i]);
            fail();
        }
    }
    /* largest size accepted: 2^62 - 1 */
    struct nd_http_chunked c;
    size_t doff, dlen;
    nd_http1_chunked_init(&c);
    assert_int_equal(nd_http1_chunked(&c, S("3FFFFFFFFFFFFFFF\r\n"), &doff, &dlen), 18);
    assert_int_equal(c.left, ND_HTTP_MAX_LENGTH - 1);

    /* extension length bound */
    static char big[8192];
    memset(big, 'a', sizeof(big));
    memcpy(big, "1;", 2);
    size_t ext = ND_HTTP_CHUNK_EXT_MAX; /* ';' + 1023 bytes: at the limit */
    memcpy(big + 1 + ext, "\r\nx\r\n0\r\n\r\n", 10);
    char out[16];
    size_t olen;
    assert_int_equal(dechunk(big, 1 + ext + 10, NULL, 0, out, &olen, &c), (ssize_t)(1 + ext + 10));
    memset(big, 'a', sizeof(big));
    memcpy(big, "1;", 2);
    memcpy(big + 2 + ext, "\r\nx\r\n0\r\n\r\n", 10);
    assert_int_equal(dechunk(big, 2 + ext + 10, NULL, 0, out, &olen, &c), ND_HTTP_E_BAD);

    /* trailer section bound */
    memset(big, 'a', sizeof(big));
    memcpy(big, "0\r\nX: ", 6);
    size_t tl = ND_HTTP_TRAILER_MAX; /* "X: aaa...\r\n\r\n" of exactly the limit */
    memcpy(big + 3 + tl - 4, "\r\n\r\n", 4);
    assert_int_equal(dechunk(big, 3 + tl, NULL, 0, out, &olen, &c), (ssize_t)(3 + tl));
    assert_true(c.done);
    memset(big, 'a', sizeof(big));
    memcpy(big, "0\r\nX: ", 6);
    memcpy(big + 3 + tl - 3, "\r\n\r\n", 4);
    assert_int_equal(dechunk(big, 4 + tl, NULL, 0, out, &olen, &c), ND_HTTP_E_BAD);
}

/* ---- helpers ----------------------------------------------------------------------------- */

static struct nd_str mk(const char *s)
{
    return (struct nd_str){s, (uint32_t)strlen(s)};
}

static void test_helpers(void **state)
{
    (void)state;
    assert_true(nd_http1_name_eq(mk("Content-Length"), S("content-length")));
    assert_true(nd_http1_name_eq(mk("HOST"), S("host")));
    assert_true(nd_http1_name_eq(mk("host"), S("HoSt")));
    assert_false(nd_http1_name_eq(mk("hosts"), S("host")));
    assert_false(nd_http1_name_eq(mk("hos"), S("host")));
    assert_false(nd_http1_name_eq(mk("h@st"), S("h`st")));
    assert_true(nd_http1_name_eq(mk(""), "", 0));
    /* the eight-bytes-at-once comparison against a byte-by-byte one, for every pair of byte
     * values, in the word part and in the tail */
    for (unsigned x = 0; x < 256; x++)
        for (unsigned y = 0; y < 256; y++) {
            char a[12] = "abCDefGHijKL", b[12] = "ABcdEFghIJkl";
            unsigned lx = x - 'A' < 26 ? x | 0x20 : x, ly = y - 'A' < 26 ? y | 0x20 : y;

            for (unsigned pos = 3; pos < 12; pos += 7) {
                a[pos] = (char)x;
                b[pos] = (char)y;
                if (nd_http1_name_eq((struct nd_str){a, 12}, b, 12) != (lx == ly))
                    fail_msg("bytes %#x and %#x at %u", x, y, pos);
                a[pos] = "abCDefGHijKL"[pos];
                b[pos] = "ABcdEFghIJkl"[pos];
            }
        }

    assert_true(nd_http1_token_list_has(mk("close"), S("close")));
    assert_true(nd_http1_token_list_has(mk("keep-alive, Close"), S("close")));
    assert_true(nd_http1_token_list_has(mk(" \tfoo ,\tUPGRADE\t, bar"), S("upgrade")));
    assert_true(nd_http1_token_list_has(mk(",,close,,"), S("close")));
    assert_false(nd_http1_token_list_has(mk("closed, xclose"), S("close")));
    assert_false(nd_http1_token_list_has(mk("clo se"), S("close")));
    assert_false(nd_http1_token_list_has(mk(""), S("close")));
    assert_false(nd_http1_token_list_has((struct nd_str){NULL, 0}, S("close")));

    assert_string_equal(nd_http1_reason(200), "OK");
    assert_string_equal(nd_http1_reason(404), "Not Found");
    assert_string_equal(nd_http1_reason(431), "Request Header Fields Too Large");
    assert_string_equal(nd_http1_reason(503), "Service Unavailable");
    assert_string_equal(nd_http1_reason(299), "Unknown");
    assert_string_equal(nd_http1_reason(-1), "Unknown");
    static const int codes[] = {100, 200, 201, 204, 301, 302, 303, 307, 308, 400, 401, 403, 404,
                                405, 408, 413, 414, 421, 429, 431, 500, 501, 502, 503, 504, 505};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        assert_string_not_equal(nd_http1_reason(codes[i]), "Unknown");
}

/* ---- guard page -------------------------------------------------------------------------- */

/* Every prefix of each message is parsed with its last byte just before a PROT_NONE page: any
 * read past len faults. Both from scratch and incrementally with the hint. */
/* nd_copy_short(), which copies header lines: every length up to 80, the source ending at a guard
 * page and starting at one (no byte read outside it), nothing written outside the destination. */
static void test_copy_short(void **state)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *map =
        mmap(NULL, (size_t)pg * 3, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char dst[100];

    (void)state;
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map, (size_t)pg, PROT_NONE), 0);
    assert_int_equal(mprotect(map + 2 * pg, (size_t)pg, PROT_NONE), 0);
    for (int i = 0; i < pg; i++)
        map[pg + i] = (char)('a' + i % 26);
    for (size_t n = 0; n <= 80; n++)
        for (int end = 0; end < 2; end++) {
            const char *src = end ? map + 2 * pg - n : map + pg;

            memset(dst, '#', sizeof(dst));
            nd_copy_short(dst + 8, src, n);
            assert_memory_equal(dst + 8, src, n);
            for (size_t i = 0; i < sizeof(dst); i++)
                if (i < 8 || i >= 8 + n)
                    assert_int_equal(dst[i], '#');
        }
    nd_copy_short(dst, NULL, 0); /* an empty value may have no pointer */
    munmap(map, (size_t)pg * 3);
}

static void test_guard_page(void **state)
{
    (void)state;
    static const char *const msgs[] = {
        "GET /a?b HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, upgrade\r\nUpgrade: x\r\n\r\n",
        "\r\n\r\nPOST http://h:1/p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        "PUT /x HTTP/1.0\r\nContent-Length: 10, 10\r\nExpect: 100-continue\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
        "GET /\r",
        "CONNECT h:1 HTTP/1.1\r\nHost: [::1]:2\r\n\r\n",
    };
    static const char *const resps[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200\r\nContent-Length: 5\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
    };
    static const char *const bodies[] = {
        "5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
        "1\r\nx\r\n0\r\n\r",
    };
    long pg = sysconf(_SC_PAGESIZE);
    char *map =
        mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);
    char *page_end = map + pg;
    struct nd_http_msg m;

    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        size_t n = strlen(msgs[i]);
        size_t scan_inc = 0;
        struct nd_http_msg mi;
        msg_init(&mi);
        int inc = ND_HTTP_AGAIN;
        for (size_t len = 0; len <= n; len++) {
            char *p = page_end - len;
            memcpy(p, msgs[i], len);
            size_t scan = 0;
            msg_init(&m);
            (void)nd_http1_parse_request(p, len, &m, &lim, &scan);
            /* the incremental run keeps one buffer ending at the guard: move the prefix */
            if (inc == ND_HTTP_AGAIN) /* twice: a call that brings no new byte */
                inc = nd_http1_parse_request(p, len, &mi, &lim, &scan_inc);
            if (inc == ND_HTTP_AGAIN)
                inc = nd_http1_parse_request(p, len, &mi, &lim, &scan_inc);
        }
    }
    for (size_t i = 0; i < sizeof(resps) / sizeof(resps[0]); i++) {
        size_t n = strlen(resps[i]);
        for (size_t len = 0; len <= n; len++) {
            char *p = page_end - len;
            memcpy(p, resps[i], len);
            size_t scan = 0;
            msg_init(&m);
            (void)nd_http1_parse_response(p, len, &m, &lim, &scan, ND_HTTP_GET);
        }
    }
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        size_t n = strlen(bodies[i]);
        for (size_t len = 0; len <= n; len++) {
            char *p = page_end - len;
            memcpy(p, bodies[i], len);
            struct nd_http_chunked c;
            size_t doff, dlen, off = 0;
            nd_http1_chunked_init(&c);
            while (off < len && !c.done) {
                ssize_t r = nd_http1_chunked(&c, p + off, len - off, &doff, &dlen);
                if (r <= 0)
                    break;
                off += (size_t)r;
            }
        }
    }
    munmap(map, (size_t)pg * 2);
}

/* The incremental guard test above moves the prefix each time; this one keeps the bytes in place
 * and grows len toward the guard, the way a receive buffer fills up. */
static void test_guard_page_growing(void **state)
{
    (void)state;
    const char *s = "GET /x HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n";
    size_t n = strlen(s);
    long pg = sysconf(_SC_PAGESIZE);
    char *map =
        mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);
    for (size_t k = 1; k <= 5; k++) {
        struct nd_http_msg m;
        size_t scan = 0;
        msg_init(&m);
        int r = ND_HTTP_AGAIN;
        for (size_t len = 0; r == ND_HTTP_AGAIN; len = len + k < n ? len + k : n) {
            /* the first len bytes right before the guard; the hint refers to offsets, so it stays
             * valid for the same bytes at another address */
            char *q = map + pg - len;
            memmove(q, s, len);
            r = nd_http1_parse_request(q, len, &m, &lim, &scan);
            if (len == n)
                break;
        }
        assert_int_equal(r, (int)n);
    }
    munmap(map, (size_t)pg * 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),      cmocka_unit_test(test_methods),
        cmocka_unit_test(test_headers),         cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_incremental),     cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_error_status),    cmocka_unit_test(test_limit_uri),
        cmocka_unit_test(test_limit_head_size), cmocka_unit_test(test_limit_header_count),
        cmocka_unit_test(test_absolute_form),   cmocka_unit_test(test_other_forms),
        cmocka_unit_test(test_keepalive),       cmocka_unit_test(test_expect),
        cmocka_unit_test(test_body_framing),    cmocka_unit_test(test_responses),
        cmocka_unit_test(test_bad_responses),   cmocka_unit_test(test_chunked_basic),
        cmocka_unit_test(test_chunked_split),   cmocka_unit_test(test_chunked_bad),
        cmocka_unit_test(test_helpers),         cmocka_unit_test(test_copy_short),
        cmocka_unit_test(test_guard_page),      cmocka_unit_test(test_guard_page_growing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
