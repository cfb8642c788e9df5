/*
 * Unit tests of the router's route table (plugins/router/route_table.c): virtual host
 * precedence, path/method/header/query matching, rewrites, redirects, direct responses and the
 * weighted split. No host, no network: the pure functions only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../plugins/router/route_table.h"

/* ---- a request without a host ---- */

struct fake_req {
    const char *headers[16][2]; /* name, value; name NULL ends */
    char target[512];
};

static int fake_header(void *arg, const char *name, struct nodus_slice *v)
{
    const struct fake_req *f = arg;

    for (size_t i = 0; i < 16 && f->headers[i][0]; i++)
        if (strcasecmp(f->headers[i][0], name) == 0) {
            v->p = f->headers[i][1];
            v->len = strlen(f->headers[i][1]);
            return 1;
        }
    return 0;
}

static struct nodus_slice sl(const char *s)
{
    return (struct nodus_slice){s, strlen(s)};
}

/* A request: "METHOD /path?query" to host; headers from f (may be NULL). */
static struct rt_request mkreq(struct fake_req *f, const char *method, const char *target,
                               const char *host)
{
    static struct fake_req none;
    struct rt_request r = {.method = sl(method), .host = sl(host), .header = fake_header};
    const char *q;

    if (!f)
        f = &none;
    snprintf(f->target, sizeof(f->target), "%s", target);
    q = strchr(f->target, '?');
    r.path = (struct nodus_slice){f->target, q ? (size_t)(q - f->target) : strlen(f->target)};
    r.query = q ? sl(q + 1) : (struct nodus_slice){"", 0};
    r.arg = f;
    return r;
}

/* ---- building helpers ---- */

static char err[256];

static void add_vhost(struct rt_table *t, const char *const *domains, size_t n)
{
    int rc = rt_add_vhost(t, domains, n, err, sizeof(err));

    if (rc != 0)
        fail_msg("rt_add_vhost: %s", err);
}

#define VHOST(t, ...)                                                                              \
    add_vhost(t, (const char *const[]){__VA_ARGS__},                                               \
              sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* A route to the cluster named cluster (the handle is the name itself). */
static struct rt_route_spec to(enum rt_path_kind kind, const char *path, const char *cluster)
{
    static struct rt_target tg[64];
    static size_t next;
    struct rt_target *t = &tg[next++ % 64];

    *t = (struct rt_target){.cluster_name = cluster, .cluster = (void *)cluster};
    return (struct rt_route_spec){
        .path_kind = kind, .path = path, .action = RT_UPSTREAM, .targets = t, .n_targets = 1};
}

static void add_route(struct rt_table *t, const struct rt_route_spec *s)
{
    int rc = rt_add_route(t, s, err, sizeof(err));

    if (rc != 0)
        fail_msg("rt_add_route: %s", err);
}

static void add(struct rt_table *t, struct rt_route_spec s)
{
    add_route(t, &s);
}

/* The cluster the request goes to, or "" when it matches no route. */
static const char *route_of(const struct rt_table *t, struct rt_worker *w,
                            const struct rt_request *req)
{
    const struct rt_route *r = rt_match(t, w, req);

    if (!r)
        return "";
    assert_int_equal(rt_route_action(r), RT_UPSTREAM);
    return rt_pick(r, w)->cluster_name;
}

static const char *go(const struct rt_table *t, struct rt_worker *w, struct fake_req *f,
                      const char *method, const char *target, const char *host)
{
    struct rt_request r = mkreq(f, method, target, host);

    return route_of(t, w, &r);
}

/* ---- virtual hosts ---- */

static void test_domain_precedence(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *w;

    (void)state;
    VHOST(t, "*");
    add(t, to(RT_PATH_PREFIX, "/", "any"));
    VHOST(t, "*.example.com");
    add(t, to(RT_PATH_PREFIX, "/", "suffix"));
    VHOST(t, "*.api.example.com", "other.test");
    add(t, to(RT_PATH_PREFIX, "/", "longer-suffix"));
    VHOST(t, "api.example.com");
    add(t, to(RT_PATH_PREFIX, "/", "exact"));
    VHOST(t, "www.*");
    add(t, to(RT_PATH_PREFIX, "/", "prefix"));
    VHOST(t, "www.example.*");
    add(t, to(RT_PATH_PREFIX, "/", "longer-prefix"));
    VHOST(t, "*-dev.example.net");
    add(t, to(RT_PATH_PREFIX, "/", "dash"));
    VHOST(t, "[::1]");
    add(t, to(RT_PATH_PREFIX, "/", "v6"));
    assert_int_equal(rt_vhost_count(t), 8);
    assert_int_equal(rt_route_count(t), 8);
    w = rt_worker_new(t, 1);
    assert_non_null(w);

    assert_string_equal(go(t, w, NULL, "GET", "/", "api.example.com"), "exact");
    assert_string_equal(go(t, w, NULL, "GET", "/", "API.Example.COM"), "exact");
    assert_string_equal(go(t, w, NULL, "GET", "/", "api.example.com:8080"), "exact");
    assert_string_equal(go(t, w, NULL, "GET", "/", "x.api.example.com"), "longer-suffix");
    assert_string_equal(go(t, w, NULL, "GET", "/", "other.test"), "longer-suffix");
    assert_string_equal(go(t, w, NULL, "GET", "/", "foo.example.com"), "suffix");
    assert_string_equal(go(t, w, NULL, "GET", "/", "a.b.example.com"), "suffix");
    /* the * of a wildcard stands for at least one character */
    assert_string_equal(go(t, w, NULL, "GET", "/", "example.com"), "any");
    assert_string_equal(go(t, w, NULL, "GET", "/", ".example.com"), "any");
    /* suffix beats prefix, whatever their lengths */
    assert_string_equal(go(t, w, NULL, "GET", "/", "www.example.com"), "suffix");
    assert_string_equal(go(t, w, NULL, "GET", "/", "www.example.org"), "longer-prefix");
    assert_string_equal(go(t, w, NULL, "GET", "/", "WWW.foo"), "prefix");
    assert_string_equal(go(t, w, NULL, "GET", "/", "www."), "any");
    assert_string_equal(go(t, w, NULL, "GET", "/", "app-dev.example.net"), "dash");
    assert_string_equal(go(t, w, NULL, "GET", "/", "-dev.example.net"), "any");
    assert_string_equal(go(t, w, NULL, "GET", "/", "[::1]:8080"), "v6");
    assert_string_equal(go(t, w, NULL, "GET", "/", "[::1]"), "v6");
    assert_string_equal(go(t, w, NULL, "GET", "/", "elsewhere"), "any");
    assert_string_equal(go(t, w, NULL, "GET", "/", ""), "any");
    rt_worker_free(w);
    rt_free(t);
}

static void test_domain_no_default(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *w;

    (void)state;
    VHOST(t, "a.test", "b.test");
    add(t, to(RT_PATH_PREFIX, "/", "ab"));
    w = rt_worker_new(t, 1);
    assert_string_equal(go(t, w, NULL, "GET", "/", "b.test"), "ab");
    assert_string_equal(go(t, w, NULL, "GET", "/", "c.test"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/", ""), "");
    assert_string_equal(go(t, w, NULL, "GET", "/", "a.test.evil"), "");
    rt_worker_free(w);
    rt_free(t);
}

static void test_domain_errors(void **state)
{
    struct rt_table *t = rt_new();
    static const char *const bad[][1] = {{""},    {"a.*.com"}, {"*.a.*"}, {"a.com:80"},
                                         {"a b"}, {"a/b"},     {"[::1"},  {"[*]"}};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rt_add_vhost(t, bad[i], 1, err, sizeof(err)), -1);
    assert_int_equal(rt_add_vhost(t, NULL, 0, err, sizeof(err)), -1);
    VHOST(t, "a.com", "*.b.com");
    assert_int_equal(rt_add_vhost(t, (const char *const[]){"x.com", "A.COM"}, 2, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "already served"));
    assert_int_equal(rt_add_vhost(t, (const char *const[]){"x.com", "X.com"}, 2, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "twice"));
    assert_int_equal(rt_vhost_count(t), 1);
    /* a route needs a virtual host */
    rt_free(t);
    t = rt_new();
    {
        struct rt_route_spec s = to(RT_PATH_PREFIX, "/", "c");
        assert_int_equal(rt_add_route(t, &s, err, sizeof(err)), -1);
    }
    rt_free(t);
}

/* ---- paths ---- */

static void test_paths(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *w;

    (void)state;
    VHOST(t, "*");
    add(t, to(RT_PATH_EXACT, "/health", "health"));
    add(t, to(RT_PATH_PREFIX, "/api", "api"));
    add(t, to(RT_PATH_EXACT, "/api/special", "never")); /* shadowed: first match wins */
    add(t, to(RT_PATH_REGEX, "^/users/[0-9]+$", "users"));
    add(t, to(RT_PATH_REGEX, "/items/[a-z]+", "items")); /* anchored by the table */
    add(t, to(RT_PATH_REGEX, "/a|/b", "ab"));            /* alternation is anchored as a whole */
    w = rt_worker_new(t, 1);

    assert_string_equal(go(t, w, NULL, "GET", "/health", "h"), "health");
    assert_string_equal(go(t, w, NULL, "GET", "/health/", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/healt", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/health?x=1", "h"), "health");
    assert_string_equal(go(t, w, NULL, "GET", "/api", "h"), "api");
    assert_string_equal(go(t, w, NULL, "GET", "/api/special", "h"), "api");
    assert_string_equal(go(t, w, NULL, "GET", "/apix", "h"), "api"); /* a plain string prefix */
    assert_string_equal(go(t, w, NULL, "GET", "/API", "h"), "");     /* case-sensitive */
    assert_string_equal(go(t, w, NULL, "GET", "/ap", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/users/42", "h"), "users");
    assert_string_equal(go(t, w, NULL, "GET", "/users/42?x=/users/4x", "h"), "users");
    assert_string_equal(go(t, w, NULL, "GET", "/users/42/x", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/users/", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/items/abc", "h"), "items");
    assert_string_equal(go(t, w, NULL, "GET", "/items/abc/d", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/x/items/abc", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/a", "h"), "ab");
    assert_string_equal(go(t, w, NULL, "GET", "/b", "h"), "ab");
    assert_string_equal(go(t, w, NULL, "GET", "/ab", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/b/c", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/", "h"), "");
    rt_worker_free(w);
    rt_free(t);
}

/* The regex sees the path slice only, even when bytes that would match follow it. */
static void test_regex_on_slice(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *w;
    char buf[] = "/users/12345";
    struct rt_request r = {.method = sl("GET"), .host = sl("h"), .query = {"", 0}};

    (void)state;
    VHOST(t, "*");
    add(t, to(RT_PATH_REGEX, "/users/[0-9]{2}", "two"));
    w = rt_worker_new(t, 1);
    r.path = (struct nodus_slice){buf, 9}; /* "/users/12" */
    assert_string_equal(route_of(t, w, &r), "two");
    r.path.len = 10;
    assert_string_equal(route_of(t, w, &r), "");
    rt_worker_free(w);
    rt_free(t);
}

/* ---- methods, headers, query ---- */

static void test_methods(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *w;
    struct rt_route_spec s = to(RT_PATH_PREFIX, "/", "read");

    (void)state;
    s.methods = (const char *const[]){"GET", "HEAD"};
    s.n_methods = 2;
    VHOST(t, "*");
    add_route(t, &s);
    add(t, to(RT_PATH_PREFIX, "/", "other"));
    w = rt_worker_new(t, 1);
    assert_string_equal(go(t, w, NULL, "GET", "/x", "h"), "read");
    assert_string_equal(go(t, w, NULL, "HEAD", "/x", "h"), "read");
    assert_string_equal(go(t, w, NULL, "POST", "/x", "h"), "other");
    assert_string_equal(go(t, w, NULL, "get", "/x", "h"), "other");
    assert_string_equal(go(t, w, NULL, "GETX", "/x", "h"), "other");
    assert_string_equal(go(t, w, NULL, "GE", "/x", "h"), "other");
    rt_worker_free(w);
    rt_free(t);
}

static void test_headers(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *w;
    struct rt_route_spec s = to(RT_PATH_PREFIX, "/", "match");
    struct fake_req f = {0};

    (void)state;
    s.headers = (const struct rt_cond[]){
        {"X-Canary", RT_COND_EXACT, "1"}, /* names are case-insensitive */
        {"x-user", RT_COND_PRESENT, NULL}, {"x-env", RT_COND_PREFIX, "pr"},
        {"x-id", RT_COND_REGEX, "[0-9]+"}, {"x-no", RT_COND_ABSENT, NULL},
    };
    s.n_headers = 5;
    VHOST(t, "*");
    add_route(t, &s);
    add(t, to(RT_PATH_PREFIX, "/", "fallback"));
    w = rt_worker_new(t, 1);

#define HDRS(...)                                                                                  \
    do {                                                                                           \
        memset(&f, 0, sizeof(f));                                                                  \
        const char *kv[][2] = {__VA_ARGS__};                                                       \
        memcpy(f.headers, kv, sizeof(kv));                                                         \
    } while (0)
    HDRS({"x-canary", "1"}, {"x-user", ""}, {"x-env", "prod"}, {"x-id", "123"});
    assert_string_equal(go(t, w, &f, "GET", "/", "h"), "match");
    HDRS({"X-CANARY", "1"}, {"X-User", "bob"}, {"X-Env", "pr"}, {"X-Id", "0"});
    assert_string_equal(go(t, w, &f, "GET", "/", "h"), "match");
    /* each condition failing alone */
    HDRS({"x-canary", "10"}, {"x-user", "bob"}, {"x-env", "prod"}, {"x-id", "123"});
    assert_string_equal(go(t, w, &f, "GET", "/", "h"), "fallback");
    HDRS({"x-canary", ""}, {"x-user", "bob"}, {"x-env", "prod"}, {"x-id", "123"});
    assert_string_equal(go(t, w, &f, "GET", "/", "h"), "fallback");
    HDRS({"x-user", "bob"}, {"x-env", "prod"}, {"x-id", "123"});
    assert_string_equal(go(t, w, &f, "GET", "/", "h"), "fallback");
    HDRS({"x-canary", "1"}, {"x-env", "prod"}, {"x-id", "123"});
    assert_string_equal(go(t, w, &f, "GET", "/", "h"), "fallback");
    HDRS({"x-canary", "1"}, {"x-user", "bob"}, {"x-env", "dev"}, {"x-id", "123"});
    assert_string_equal(go(t, w, &f, "GET", "/", "h"), "fallback");
    HDRS({"x-canary", "1"}, {"x-user", "bob"}, {"x-env", "p"}, {"x-id", "123"});
    assert_string_equal(go(t, w, &f, "GET", "/", "h"), "fallback");
    HDRS({"x-canary", "1"}, {"x-user", "bob"}, {"x-env", "prod"}, {"x-id", "12a"});
    assert_string_equal(go(t, w, &f, "GET", "/", "h"), "fallback");
    HDRS({"x-canary", "1"}, {"x-user", "bob"}, {"x-env", "prod"}, {"x-id", ""});
    assert_string_equal(go(t, w, &f, "GET", "/", "h"), "fallback");
    HDRS({"x-canary", "1"}, {"x-user", "bob"}, {"x-env", "prod"});
    assert_string_equal(go(t, w, &f, "GET", "/", "h"), "fallback");
    HDRS({"x-canary", "1"}, {"x-user", "bob"}, {"x-env", "prod"}, {"x-id", "1"}, {"x-no", ""});
    assert_string_equal(go(t, w, &f, "GET", "/", "h"), "fallback");
#undef HDRS
    /* no header callback at all: nothing is present */
    {
        struct rt_request r = mkreq(NULL, "GET", "/", "h");
        r.header = NULL;
        assert_string_equal(route_of(t, w, &r), "fallback");
    }
    rt_worker_free(w);
    rt_free(t);
}

static void test_query(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *w;
    struct rt_route_spec a = to(RT_PATH_PREFIX, "/", "debug");
    struct rt_route_spec b = to(RT_PATH_PREFIX, "/", "kinds");
    struct rt_route_spec c = to(RT_PATH_PREFIX, "/", "empty");

    (void)state;
    a.query = (const struct rt_cond[]){
        {"debug", RT_COND_EXACT, "1"},
        {"q", RT_COND_PRESENT, NULL},
    };
    a.n_query = 2;
    b.query = (const struct rt_cond[]){
        {"v", RT_COND_PREFIX, "ab"},
        {"n", RT_COND_REGEX, "[0-9]+"},
        {"off", RT_COND_ABSENT, NULL},
    };
    b.n_query = 3;
    c.query = (const struct rt_cond[]){{"e", RT_COND_EXACT, ""}};
    c.n_query = 1;
    VHOST(t, "*");
    add_route(t, &a);
    add_route(t, &b);
    add_route(t, &c);
    w = rt_worker_new(t, 1);

    assert_string_equal(go(t, w, NULL, "GET", "/?debug=1&q=x", "h"), "debug");
    assert_string_equal(go(t, w, NULL, "GET", "/?q=x&debug=1", "h"), "debug");
    assert_string_equal(go(t, w, NULL, "GET", "/?debug=1&q", "h"), "debug"); /* value-less */
    assert_string_equal(go(t, w, NULL, "GET", "/?debug=1&q=", "h"), "debug");
    assert_string_equal(go(t, w, NULL, "GET", "/?&&debug=1&&q&", "h"), "debug");
    assert_string_equal(go(t, w, NULL, "GET", "/?debug=1", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/?debug=10&q", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/?xdebug=1&q", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/?debugx=1&q", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/?debug&q", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/?qq&debug=1", "h"), "");
    /* the first occurrence counts; no decoding */
    assert_string_equal(go(t, w, NULL, "GET", "/?debug=1&debug=2&q", "h"), "debug");
    assert_string_equal(go(t, w, NULL, "GET", "/?debug=2&debug=1&q", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/?debug=%31&q", "h"), "");

    assert_string_equal(go(t, w, NULL, "GET", "/?v=abc&n=12", "h"), "kinds");
    assert_string_equal(go(t, w, NULL, "GET", "/?v=ab&n=0&x=off", "h"), "kinds");
    assert_string_equal(go(t, w, NULL, "GET", "/?v=a&n=12", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/?v=abc&n=1x", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/?v=abc&n=12&off", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/?v=abc&n=12&off=0", "h"), "");

    assert_string_equal(go(t, w, NULL, "GET", "/?e", "h"), "empty");
    assert_string_equal(go(t, w, NULL, "GET", "/?e=", "h"), "empty");
    assert_string_equal(go(t, w, NULL, "GET", "/?e=1", "h"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/", "h"), "");
    rt_worker_free(w);
    rt_free(t);
}

static void test_all_conditions(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *w;
    struct rt_route_spec s = to(RT_PATH_PREFIX, "/v1", "v1");
    struct fake_req f = {.headers = {{"x-canary", "1"}}};

    (void)state;
    s.methods = (const char *const[]){"GET"};
    s.n_methods = 1;
    s.headers = (const struct rt_cond[]){{"x-canary", RT_COND_EXACT, "1"}};
    s.n_headers = 1;
    s.query = (const struct rt_cond[]){{"debug", RT_COND_PRESENT, NULL}};
    s.n_query = 1;
    VHOST(t, "api.example.com");
    add_route(t, &s);
    w = rt_worker_new(t, 1);
    assert_string_equal(go(t, w, &f, "GET", "/v1/x?debug", "api.example.com"), "v1");
    assert_string_equal(go(t, w, &f, "POST", "/v1/x?debug", "api.example.com"), "");
    assert_string_equal(go(t, w, &f, "GET", "/v2/x?debug", "api.example.com"), "");
    assert_string_equal(go(t, w, &f, "GET", "/v1/x", "api.example.com"), "");
    assert_string_equal(go(t, w, NULL, "GET", "/v1/x?debug", "api.example.com"), "");
    assert_string_equal(go(t, w, &f, "GET", "/v1/x?debug", "web.example.com"), "");
    rt_worker_free(w);
    rt_free(t);
}

/* ---- actions ---- */

static const struct rt_route *match1(const struct rt_table *t, struct rt_worker *w,
                                     struct rt_request *r, const char *target)
{
    *r = mkreq(NULL, "GET", target, "h");
    return rt_match(t, w, r);
}

static void expect_rewrite(const struct rt_table *t, struct rt_worker *w, const char *target,
                           const char *want)
{
    struct rt_request r;
    const struct rt_route *rt = match1(t, w, &r, target);
    char buf[64];
    long n;

    assert_non_null(rt);
    n = rt_rewrite(rt, &r, buf, sizeof(buf));
    if (!want) {
        assert_int_equal(n, 0);
        return;
    }
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

static void test_rewrite(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *w;
    struct rt_route_spec a = to(RT_PATH_PREFIX, "/v1", "a");
    struct rt_route_spec b = to(RT_PATH_PREFIX, "/api/", "b");
    struct rt_route_spec c = to(RT_PATH_PREFIX, "/old", "c");
    struct rt_route_spec d = to(RT_PATH_PREFIX, "/long", "d");

    (void)state;
    a.rewrite_prefix = "/";
    b.rewrite_prefix = "/v2/";
    c.rewrite_prefix = "/new";
    d.rewrite_prefix = "/0123456789012345678901234567890123456789012345678901234567890123456789";
    VHOST(t, "*");
    add_route(t, &a);
    add_route(t, &b);
    add_route(t, &c);
    add_route(t, &d);
    add(t, to(RT_PATH_PREFIX, "/", "plain"));
    w = rt_worker_new(t, 1);

    expect_rewrite(t, w, "/v1/users", "/users");
    expect_rewrite(t, w, "/v1", "/");
    expect_rewrite(t, w, "/v1/", "/");
    expect_rewrite(t, w, "/v1x", "/x");
    expect_rewrite(t, w, "/v1/users?id=7&x", "/users?id=7&x");
    expect_rewrite(t, w, "/v1?id=7", "/?id=7");
    expect_rewrite(t, w, "/api/x/y", "/v2/x/y");
    expect_rewrite(t, w, "/old/path", "/new/path");
    expect_rewrite(t, w, "/old", "/new");
    expect_rewrite(t, w, "/oldish", "/newish");
    expect_rewrite(t, w, "/other", NULL);
    {
        struct rt_request r;
        const struct rt_route *rt = match1(t, w, &r, "/long/x");
        char buf[64];

        assert_int_equal(rt_rewrite(rt, &r, buf, sizeof(buf)), -1);
        rt = match1(t, w, &r, "/v1/abc?d");
        assert_int_equal(rt_rewrite(rt, &r, buf, 6), 6); /* "/abc?d" fits exactly */
        assert_memory_equal(buf, "/abc?d", 6);
        assert_int_equal(rt_rewrite(rt, &r, buf, 5), -1);
    }
    rt_worker_free(w);
    rt_free(t);
}

static void test_redirect(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *w;
    struct rt_route_spec a = {.path_kind = RT_PATH_PREFIX,
                              .path = "/old",
                              .action = RT_REDIRECT,
                              .location = "https://new.example.com/",
                              .status = 301};
    struct rt_route_spec b = {.path_kind = RT_PATH_PREFIX,
                              .path = "/moved",
                              .action = RT_REDIRECT,
                              .redirect_path = "/new",
                              .status = 302};
    struct rt_route_spec c = {.path_kind = RT_PATH_EXACT,
                              .path = "/q",
                              .action = RT_REDIRECT,
                              .redirect_path = "/new?fixed=1",
                              .status = 308};
    struct rt_request r;
    const struct rt_route *rt;
    const char *loc;
    char buf[64];
    long n;

    (void)state;
    VHOST(t, "*");
    add_route(t, &a);
    add_route(t, &b);
    add_route(t, &c);
    w = rt_worker_new(t, 1);

    rt = match1(t, w, &r, "/old/x?y=1");
    assert_int_equal(rt_route_action(rt), RT_REDIRECT);
    assert_int_equal(rt_route_status(rt), 301);
    n = rt_location(rt, &r, buf, sizeof(buf), &loc);
    assert_int_equal(n, strlen("https://new.example.com/"));
    assert_memory_equal(loc, "https://new.example.com/", (size_t)n);

    rt = match1(t, w, &r, "/moved/x");
    assert_int_equal(rt_route_status(rt), 302);
    n = rt_location(rt, &r, buf, sizeof(buf), &loc);
    assert_int_equal(n, 4);
    assert_memory_equal(loc, "/new", 4);
    rt = match1(t, w, &r, "/moved?a=1&b");
    n = rt_location(rt, &r, buf, sizeof(buf), &loc);
    assert_int_equal(n, strlen("/new?a=1&b"));
    assert_memory_equal(loc, "/new?a=1&b", (size_t)n);
    assert_int_equal(rt_location(rt, &r, buf, 9, &loc), -1);

    rt = match1(t, w, &r, "/q?a=1");
    assert_int_equal(rt_route_status(rt), 308);
    n = rt_location(rt, &r, buf, sizeof(buf), &loc);
    assert_int_equal(n, strlen("/new?fixed=1"));
    assert_memory_equal(loc, "/new?fixed=1", (size_t)n);
    rt_worker_free(w);
    rt_free(t);
}

static void test_direct(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *w;
    struct rt_route_spec a = {.path_kind = RT_PATH_EXACT,
                              .path = "/health",
                              .action = RT_DIRECT,
                              .status = 200,
                              .body = "ok\n"};
    struct rt_route_spec b = {.path_kind = RT_PATH_EXACT,
                              .path = "/json",
                              .action = RT_DIRECT,
                              .status = 503,
                              .body = "{}",
                              .content_type = "application/json"};
    struct rt_route_spec c = {
        .path_kind = RT_PATH_EXACT, .path = "/empty", .action = RT_DIRECT, .status = 204};
    struct rt_request r;
    const struct rt_route *rt;
    struct nodus_slice body;

    (void)state;
    VHOST(t, "*");
    add_route(t, &a);
    add_route(t, &b);
    add_route(t, &c);
    w = rt_worker_new(t, 1);

    rt = match1(t, w, &r, "/health");
    assert_int_equal(rt_route_action(rt), RT_DIRECT);
    assert_int_equal(rt_route_status(rt), 200);
    body = rt_route_body(rt);
    assert_int_equal(body.len, 3);
    assert_memory_equal(body.p, "ok\n", 3);
    assert_string_equal(rt_route_content_type(rt), "text/plain");

    rt = match1(t, w, &r, "/json");
    assert_int_equal(rt_route_status(rt), 503);
    assert_string_equal(rt_route_content_type(rt), "application/json");

    rt = match1(t, w, &r, "/empty");
    assert_int_equal(rt_route_status(rt), 204);
    assert_int_equal(rt_route_body(rt).len, 0);
    assert_non_null(rt_route_body(rt).p);
    assert_null(rt_route_content_type(rt));
    rt_worker_free(w);
    rt_free(t);
}

static void test_cluster_subset_timeout(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *w;
    struct rt_target tg = {.cluster_name = "users",
                           .cluster = &tg,
                           .subset_key = "version",
                           .subset_val = "v2",
                           .weight = 0};
    struct rt_route_spec s = {.path_kind = RT_PATH_PREFIX,
                              .path = "/",
                              .action = RT_UPSTREAM,
                              .targets = &tg,
                              .n_targets = 1,
                              .timeout_ms = 2000,
                              .config = &state};
    struct rt_request r;
    const struct rt_route *rt;
    const struct rt_target *p;
    size_t vh, idx;

    (void)state;
    VHOST(t, "*");
    add(t, to(RT_PATH_EXACT, "/first", "first"));
    add_route(t, &s);
    w = rt_worker_new(t, 1);
    rt = match1(t, w, &r, "/x");
    rt_route_pos(rt, &vh, &idx);
    assert_int_equal(vh, 0);
    assert_int_equal(idx, 1);
    assert_int_equal(rt_route_timeout(rt), 2000);
    for (int i = 0; i < 10; i++) {
        p = rt_pick(rt, w); /* a single target is used whatever its weight */
        assert_string_equal(p->cluster_name, "users");
        assert_ptr_equal(p->cluster, &tg);
        assert_string_equal(p->subset_key, "version");
        assert_string_equal(p->subset_val, "v2");
    }
    assert_int_equal(rt_route_timeout(match1(t, w, &r, "/first")), 0);
    /* what the caller attached (the router: per-route plugin configurations) comes back */
    assert_ptr_equal(rt_route_config(rt), &state);
    assert_null(rt_route_config(match1(t, w, &r, "/first")));
    rt_worker_free(w);
    rt_free(t);
}

/* ---- split ---- */

static const struct rt_route *split_route(struct rt_table *t, const struct rt_target *tg, size_t n)
{
    struct rt_route_spec s = {.path_kind = RT_PATH_PREFIX,
                              .path = "/",
                              .action = RT_UPSTREAM,
                              .targets = tg,
                              .n_targets = n};
    struct rt_request r = mkreq(NULL, "GET", "/", "h");
    struct rt_worker *w;
    const struct rt_route *rt;

    VHOST(t, "*");
    add_route(t, &s);
    w = rt_worker_new(t, 0);
    rt = rt_match(t, w, &r);
    rt_worker_free(w);
    return rt;
}

static void test_split_distribution(void **state)
{
    struct rt_table *t = rt_new();
    const struct rt_target tg[] = {
        {.cluster_name = "v1", .weight = 90},
        {.cluster_name = "v2", .weight = 10, .subset_key = "version", .subset_val = "v2"}};
    const struct rt_route *rt = split_route(t, tg, 2);
    struct rt_worker *w = rt_worker_new(t, 42);
    size_t v1 = 0, v2 = 0;

    (void)state;
    for (int i = 0; i < 100000; i++) {
        const struct rt_target *p = rt_pick(rt, w);

        if (strcmp(p->cluster_name, "v1") == 0) {
            v1++;
            assert_null(p->subset_key);
        } else {
            v2++;
            assert_string_equal(p->subset_val, "v2");
        }
    }
    assert_int_equal(v1 + v2, 100000);
    assert_in_range(v1, 89000, 91000);
    assert_in_range(v2, 9000, 11000);
    rt_worker_free(w);
    rt_free(t);
}

static void test_split_zero_weight(void **state)
{
    struct rt_table *t = rt_new();
    const struct rt_target tg[] = {{.cluster_name = "z1", .weight = 0},
                                   {.cluster_name = "a", .weight = 1},
                                   {.cluster_name = "z2", .weight = 0},
                                   {.cluster_name = "b", .weight = 3},
                                   {.cluster_name = "z3", .weight = 0}};
    const struct rt_route *rt = split_route(t, tg, 5);
    size_t a = 0, b = 0;

    (void)state;
    /* several workers, several seeds */
    for (uint64_t seed = 0; seed < 4; seed++) {
        struct rt_worker *w = rt_worker_new(t, seed);

        for (int i = 0; i < 25000; i++) {
            const char *c = rt_pick(rt, w)->cluster_name;

            assert_true(c[0] != 'z');
            if (c[0] == 'a')
                a++;
            else
                b++;
        }
        rt_worker_free(w);
    }
    assert_in_range(a, 24000, 26000);
    assert_in_range(b, 74000, 76000);
    rt_free(t);
}

static void test_split_one_nonzero(void **state)
{
    struct rt_table *t = rt_new();
    const struct rt_target tg[] = {{.cluster_name = "off", .weight = 0},
                                   {.cluster_name = "on", .weight = 7}};
    const struct rt_route *rt = split_route(t, tg, 2);
    struct rt_worker *w = rt_worker_new(t, 7);

    (void)state;
    for (int i = 0; i < 10000; i++)
        assert_string_equal(rt_pick(rt, w)->cluster_name, "on");
    rt_worker_free(w);
    rt_free(t);
}

static void test_rand(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *a = rt_worker_new(t, 0), *b = rt_worker_new(t, 1), *c = rt_worker_new(t, 0);
    int same = 0;

    (void)state;
    for (int i = 0; i < 100; i++) {
        uint64_t x = rt_rand(a), y = rt_rand(b), z = rt_rand(c);

        assert_true(x == z); /* deterministic per seed */
        same += x == y;
        assert_true(x != 0 || y != 0);
    }
    assert_true(same < 2);
    rt_worker_free(a);
    rt_worker_free(b);
    rt_worker_free(c);
    rt_free(t);
}

/* ---- configuration errors ---- */

static void expect_error(struct rt_route_spec s, const char *fragment)
{
    struct rt_table *t = rt_new();

    VHOST(t, "*");
    err[0] = '\0';
    assert_int_equal(rt_add_route(t, &s, err, sizeof(err)), -1);
    if (!strstr(err, fragment))
        fail_msg("error \"%s\" does not mention \"%s\"", err, fragment);
    assert_int_equal(rt_route_count(t), 0);
    rt_free(t);
}

static void test_route_errors(void **state)
{
    struct rt_route_spec s;
    const struct rt_target zero[] = {{.cluster_name = "a"}, {.cluster_name = "b"}};

    (void)state;
    s = to(RT_PATH_PREFIX, "/", "c");
    s.path = NULL;
    expect_error(s, "path match");
    expect_error(to(RT_PATH_PREFIX, "", "c"), "must start with '/'");
    expect_error(to(RT_PATH_EXACT, "health", "c"), "must start with '/'");
    expect_error(to(RT_PATH_REGEX, "/users/[0-9", "c"), "bad regex");
    expect_error(to(RT_PATH_REGEX, "/a)|(/b", "c"), "bad regex");
    expect_error(to(RT_PATH_REGEX, "", "c"), "empty regex");

    s = to(RT_PATH_REGEX, "/x", "c");
    s.rewrite_prefix = "/";
    expect_error(s, "prefix match");
    s = to(RT_PATH_PREFIX, "/x", "c");
    s.rewrite_prefix = "y";
    expect_error(s, "must start with '/'");

    s = to(RT_PATH_PREFIX, "/", "c");
    s.methods = (const char *const[]){"GET", "get"};
    s.n_methods = 2;
    expect_error(s, "case-sensitive");
    s.methods = (const char *const[]){"G T"};
    s.n_methods = 1;
    expect_error(s, "method");

    s = to(RT_PATH_PREFIX, "/", "c");
    s.headers = (const struct rt_cond[]){{"x ok", RT_COND_PRESENT, NULL}};
    s.n_headers = 1;
    expect_error(s, "header name");
    s.headers = (const struct rt_cond[]){{"x-a", RT_COND_EXACT, NULL}};
    expect_error(s, "no value");
    s.headers = (const struct rt_cond[]){{"", RT_COND_PRESENT, NULL}};
    expect_error(s, "no name");
    /* the good regexes before a bad one are released (ASan watches) */
    s.headers = (const struct rt_cond[]){{"x-a", RT_COND_REGEX, "a+"}, {"x-b", RT_COND_REGEX, "("}};
    s.n_headers = 2;
    expect_error(s, "header condition 2: bad regex");
    s = to(RT_PATH_PREFIX, "/", "c");
    s.query = (const struct rt_cond[]){{"q", RT_COND_REGEX, "[z-a]"}};
    s.n_query = 1;
    expect_error(s, "query condition 1");

    s = (struct rt_route_spec){.path_kind = RT_PATH_PREFIX,
                               .path = "/",
                               .action = RT_UPSTREAM,
                               .targets = zero,
                               .n_targets = 2};
    expect_error(s, "sum to 0");
    s.n_targets = 0;
    expect_error(s, "no cluster");
    s = to(RT_PATH_PREFIX, "/", "c");
    ((struct rt_target *)s.targets)->subset_key = "version";
    expect_error(s, "one label");

    s = (struct rt_route_spec){.path_kind = RT_PATH_PREFIX,
                               .path = "/",
                               .action = RT_REDIRECT,
                               .location = "https://x/",
                               .status = 301};
    s.redirect_path = "/y";
    expect_error(s, "one of location and path");
    s.redirect_path = NULL;
    s.status = 200;
    expect_error(s, "redirect status");
    s.status = 301;
    s.location = "https://x/\r\nset-cookie: a=b";
    expect_error(s, "header value");
    s.location = "https://x/";
    s.timeout_ms = 5;
    expect_error(s, "need cluster or split");
    s.timeout_ms = 0;
    s.redirect_path = NULL;
    s.location = NULL;
    s.redirect_path = "relative";
    expect_error(s, "must start with '/'");

    s = (struct rt_route_spec){
        .path_kind = RT_PATH_PREFIX, .path = "/", .action = RT_DIRECT, .status = 99};
    expect_error(s, "200..599");
    s.status = 200;
    s.content_type = "text/plain\n";
    expect_error(s, "content_type");
    s.content_type = NULL;
    s.rewrite_prefix = "/";
    expect_error(s, "need cluster or split");
}

/* A failed route leaves the table as it was: the next route still works, regexes line up. */
static void test_failed_route_leaves_table(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *w;
    struct rt_route_spec bad = to(RT_PATH_REGEX, "/a[0-9]+", "bad");

    (void)state;
    bad.headers = (const struct rt_cond[]){{"x", RT_COND_REGEX, "(("}};
    bad.n_headers = 1;
    VHOST(t, "*");
    assert_int_equal(rt_add_route(t, &bad, err, sizeof(err)), -1);
    add(t, to(RT_PATH_REGEX, "/b[0-9]+", "good"));
    assert_int_equal(rt_route_count(t), 1);
    w = rt_worker_new(t, 1);
    assert_string_equal(go(t, w, NULL, "GET", "/b12", "h"), "good");
    assert_string_equal(go(t, w, NULL, "GET", "/a12", "h"), "");
    rt_worker_free(w);
    rt_free(t);
}

/* Routes of one virtual host are not visible from another. */
static void test_routes_per_vhost(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_worker *w;

    (void)state;
    VHOST(t, "a.test");
    add(t, to(RT_PATH_PREFIX, "/x", "a-x"));
    VHOST(t, "*");
    add(t, to(RT_PATH_PREFIX, "/", "any"));
    w = rt_worker_new(t, 1);
    assert_string_equal(go(t, w, NULL, "GET", "/x", "a.test"), "a-x");
    assert_string_equal(go(t, w, NULL, "GET", "/y", "a.test"), ""); /* no fallthrough */
    assert_string_equal(go(t, w, NULL, "GET", "/x", "b.test"), "any");
    rt_worker_free(w);
    rt_free(t);
}

/* ---- description ---- */

/* rt_describe(): valid JSON naming every route's match and action, escaped; the snprintf
 * contract holds for every buffer size (no overflow, always NUL-terminated). */
static void test_describe(void **state)
{
    struct rt_table *t = rt_new();
    struct rt_target split[2] = {{.cluster_name = "v1", .cluster = (void *)"v1", .weight = 90},
                                 {.cluster_name = "v\"2", .cluster = (void *)"v2", .weight = 10}};
    struct rt_cond h = {.name = "x-user", .kind = RT_COND_EXACT, .value = "a\tb"};
    char buf[2048], small[16];
    size_t need, n;
    json_error_t jerr;
    json_t *root, *routes;

    (void)state;
    VHOST(t, "api.test", "*.api.test");
    add(t, (struct rt_route_spec){.path_kind = RT_PATH_PREFIX,
                                  .path = "/api",
                                  .action = RT_UPSTREAM,
                                  .targets = split,
                                  .n_targets = 2,
                                  .headers = &h,
                                  .n_headers = 1});
    add(t, (struct rt_route_spec){.path_kind = RT_PATH_EXACT,
                                  .path = "/old",
                                  .action = RT_REDIRECT,
                                  .status = 301,
                                  .location = "https://x.test/new"});
    VHOST(t, "*");
    add(t, (struct rt_route_spec){.path_kind = RT_PATH_PREFIX,
                                  .path = "/",
                                  .action = RT_DIRECT,
                                  .status = 404,
                                  .body = "none"});
    need = rt_describe(t, buf, sizeof(buf));
    assert_true(need < sizeof(buf));
    assert_int_equal(strlen(buf), need);
    root = json_loads(buf, 0, &jerr);
    if (!root)
        fail_msg("invalid JSON (%s): %s", jerr.text, buf);
    assert_int_equal(json_array_size(json_object_get(root, "virtual_hosts")), 2);
    routes = json_object_get(json_array_get(json_object_get(root, "virtual_hosts"), 0), "routes");
    assert_int_equal(json_array_size(routes), 2);
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(json_array_get(routes, 0), "split"), 1), "cluster")),
        "v\"2");
    assert_non_null(json_object_get(json_array_get(routes, 1), "redirect"));
    assert_non_null(strstr(buf, "\"exact\":\"a\\u0009b\""));
    json_decref(root);
    for (n = 1; n < sizeof(small); n++) { /* truncated: same length needed, NUL-terminated */
        memset(small, 'z', sizeof(small));
        assert_int_equal(rt_describe(t, small, n), need);
        assert_int_equal(strlen(small), n - 1);
    }
    rt_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_domain_precedence),
        cmocka_unit_test(test_domain_no_default),
        cmocka_unit_test(test_domain_errors),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_regex_on_slice),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_all_conditions),
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_redirect),
        cmocka_unit_test(test_direct),
        cmocka_unit_test(test_cluster_subset_timeout),
        cmocka_unit_test(test_split_distribution),
        cmocka_unit_test(test_split_zero_weight),
        cmocka_unit_test(test_split_one_nonzero),
        cmocka_unit_test(test_rand),
        cmocka_unit_test(test_route_errors),
        cmocka_unit_test(test_failed_route_leaves_table),
        cmocka_unit_test(test_routes_per_vhost),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
