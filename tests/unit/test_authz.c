/*
 * Unit tests of the authz plugin: rule matching on every field (values and not_values), Istio's
 * evaluation order (deny before allow, no allow rules), shadow policies, CIDR matching (IPv4,
 * IPv6, mapped), SPIFFE namespaces, path normalization, and configuration errors with file:line
 * through the real configuration loader.
 *
 * mTLS principals cannot be tested end to end until the mtls plugin is in the chain: here the
 * peer principal is given directly to the policy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "../../plugins/authz/policy.h"
#include "config.h"
#include "log.h"

/* ---- a request without a host ---- */

struct fake {
    const char *principal, *addr, *reqp, *method, *path, *host, *port;
    const char *headers[8][2];
};

static int fake_header(void *arg, const char *name, struct nodus_slice *v)
{
    const struct fake *f = arg;

    for (size_t i = 0; i < 8 && f->headers[i][0]; i++)
        if (strcasecmp(f->headers[i][0], name) == 0) {
            *v = (struct nodus_slice){f->headers[i][1], strlen(f->headers[i][1])};
            return 1;
        }
    return 0;
}

static struct nodus_slice sl(const char *s)
{
    return (struct nodus_slice){s ? s : "", s ? strlen(s) : 0};
}

static struct az_result eval(const struct az_policy *p, const struct fake *f)
{
    struct az_request q = {
        .principal = sl(f->principal),
        .peer_addr = sl(f->addr ? f->addr : "127.0.0.1"),
        .request_principal = sl(f->reqp),
        .method = sl(f->method ? f->method : "GET"),
        .path = sl(f->path ? f->path : "/"),
        .host = sl(f->host),
        .port = sl(f->port ? f->port : "8080"),
        .header = fake_header,
        .arg = (void *)f,
    };

    return az_eval(p, &q);
}

static bool allowed(const struct az_policy *p, const struct fake *f)
{
    return eval(p, f).decision == AZ_ALLOWED;
}

#define STRS(...)                                                                                  \
    ((struct az_strings){(const char *const[]){__VA_ARGS__},                                       \
                         sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)})

static char err[256];

static void add(struct az_policy *p, const struct az_rule_spec *s)
{
    if (az_add_rule(p, s, err, sizeof(err)) != 0)
        fail_msg("az_add_rule: %s", err);
}

/* A policy of one allow rule with values (or not_values) for one field. */
static struct az_policy *one(enum az_field f, struct az_strings v, bool negative)
{
    struct az_policy *p = az_new();
    struct az_rule_spec s = {.action = AZ_ALLOW};

    assert_non_null(p);
    if (negative)
        s.not_values[f] = v;
    else
        s.values[f] = v;
    add(p, &s);
    return p;
}

/* ---- fields ---- */

static void test_principals(void **state)
{
    struct az_policy *p =
        one(AZ_F_PRINCIPALS,
            STRS("cluster.local/ns/default/sa/web", "spiffe://td/ns/a/*", "*/sa/batch"), false);

    (void)state;
    assert_true(
        allowed(p, &(struct fake){.principal = "spiffe://cluster.local/ns/default/sa/web"}));
    assert_true(allowed(p, &(struct fake){.principal = "spiffe://td/ns/a/sa/x"}));
    assert_true(allowed(p, &(struct fake){.principal = "spiffe://other/ns/z/sa/batch"}));
    assert_false(
        allowed(p, &(struct fake){.principal = "spiffe://cluster.local/ns/default/sa/we"}));
    assert_false(allowed(p, &(struct fake){.principal = "spiffe://td/ns/b/sa/x"}));
    assert_false(allowed(p, &(struct fake){.principal = NULL})); /* no mTLS: no principal */
    az_free(p);

    /* "*": any authenticated peer */
    p = one(AZ_F_PRINCIPALS, STRS("*"), false);
    assert_true(allowed(p, &(struct fake){.principal = "spiffe://td/x"}));
    assert_false(allowed(p, &(struct fake){0}));
    az_free(p);

    /* not_principals: an absent principal is not one of them */
    p = one(AZ_F_PRINCIPALS, STRS("td/ns/bad/*"), true);
    assert_true(allowed(p, &(struct fake){.principal = "spiffe://td/ns/good/sa/x"}));
    assert_false(allowed(p, &(struct fake){.principal = "spiffe://td/ns/bad/sa/x"}));
    assert_true(allowed(p, &(struct fake){0}));
    az_free(p);
}

static void test_namespaces(void **state)
{
    struct az_policy *p = one(AZ_F_NAMESPACES, STRS("prod", "team-*"), false);

    (void)state;
    assert_true(allowed(p, &(struct fake){.principal = "spiffe://td/ns/prod/sa/web"}));
    assert_true(allowed(p, &(struct fake){.principal = "spiffe://td/ns/team-a/sa/web"}));
    assert_false(allowed(p, &(struct fake){.principal = "spiffe://td/ns/production/sa/web"}));
    assert_false(allowed(p, &(struct fake){.principal = "spiffe://td/nsx/prod/sa/web"}));
    assert_false(allowed(p, &(struct fake){.principal = "spiffe://td/app/prod"}));
    assert_false(allowed(p, &(struct fake){0}));
    az_free(p);

    p = one(AZ_F_NAMESPACES, STRS("kube-system"), true);
    assert_true(allowed(p, &(struct fake){.principal = "spiffe://td/ns/prod/sa/web"}));
    assert_false(allowed(p, &(struct fake){.principal = "spiffe://td/ns/kube-system/sa/x"}));
    az_free(p);
}

static void test_spiffe_namespace(void **state)
{
    static const struct {
        const char *id, *ns; /* ns NULL: none */
    } cases[] = {
        {"spiffe://cluster.local/ns/default/sa/web", "default"},
        {"SPIFFE://td/ns/a/sa/b", "a"},
        {"spiffe://td/ns/a/sa/b/extra", "a"},
        {"spiffe://td/ns//sa/b", NULL},
        {"spiffe://td/ns/a/sa/", NULL},
        {"spiffe://td/ns/a", NULL},
        {"spiffe://td/ns/a/xx/b", NULL},
        {"spiffe:///ns/a/sa/b", NULL},
        {"spiffe://td", NULL},
        {"http://td/ns/a/sa/b", NULL},
        {"", NULL},
    };
    struct nodus_slice ns;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = az_spiffe_namespace(sl(cases[i].id), &ns);

        if (!cases[i].ns) {
            if (got != 0)
                fail_msg("%s: expected no namespace", cases[i].id);
            continue;
        }
        if (got != 1 || ns.len != strlen(cases[i].ns) || memcmp(ns.p, cases[i].ns, ns.len) != 0)
            fail_msg("%s: expected namespace %s", cases[i].id, cases[i].ns);
    }
}

static void test_cidr(void **state)
{
    static const struct {
        const char *block, *addr;
        bool in;
    } cases[] = {
        {"10.0.0.0/8", "10.1.2.3", true},
        {"10.0.0.0/8", "11.0.0.1", false},
        {"10.1.2.3", "10.1.2.3", true},
        {"10.1.2.3", "10.1.2.4", false},
        {"10.1.2.3/8", "10.200.0.1", true}, /* host bits cleared */
        {"192.168.1.128/25", "192.168.1.200", true},
        {"192.168.1.128/25", "192.168.1.127", false},
        {"0.0.0.0/0", "203.0.113.9", true},
        {"0.0.0.0/0", "::1", false},
        {"127.0.0.1/32", "::ffff:127.0.0.1", true}, /* mapped peer counts as IPv4 */
        {"::ffff:10.0.0.0/104", "10.9.9.9", true},  /* mapped block counts as IPv4 */
        {"::1", "::1", true},
        {"::1/128", "::2", false},
        {"2001:db8::/32", "2001:db8:ffff::1", true},
        {"2001:db8::/32", "2001:db9::1", false},
        {"2001:db8::/33", "2001:db8:7fff::1", true},
        {"2001:db8::/33", "2001:db8:8000::1", false},
        {"::/0", "fe80::1", true},
        {"::/0", "1.2.3.4", false},
        {"10.0.0.0/8", "", false},
        {"10.0.0.0/8", "not an address", false},
    };
    static const char *const bad[] = {"",           "10.0.0.0/33", "10.0.0.0/",
                                      "10.0.0/8",   "::1/129",     "10.0.0.0/08",
                                      "1.2.3.4/-1", "x/8",         "10.0.0.0/8/8"};
    struct az_cidr c;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (az_cidr_parse(cases[i].block, &c) != 0)
            fail_msg("%s: refused", cases[i].block);
        if (az_cidr_match(&c, sl(cases[i].addr)) != cases[i].in)
            fail_msg("%s vs %s: expected %s", cases[i].block, cases[i].addr,
                     cases[i].in ? "inside" : "outside");
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (az_cidr_parse(bad[i], &c) == 0)
            fail_msg("%s: accepted", bad[i]);
}

static void test_ip_blocks(void **state)
{
    struct az_policy *p = one(AZ_F_IP_BLOCKS, STRS("10.0.0.0/8", "2001:db8::/32"), false);

    (void)state;
    assert_true(allowed(p, &(struct fake){.addr = "10.3.3.3"}));
    assert_true(allowed(p, &(struct fake){.addr = "2001:db8::7"}));
    assert_false(allowed(p, &(struct fake){.addr = "127.0.0.1"}));
    az_free(p);

    p = one(AZ_F_IP_BLOCKS, STRS("127.0.0.0/8"), true);
    assert_false(allowed(p, &(struct fake){.addr = "127.0.0.1"}));
    assert_true(allowed(p, &(struct fake){.addr = "::1"}));
    az_free(p);
}

static void test_request_principals(void **state)
{
    struct az_policy *p =
        one(AZ_F_REQUEST_PRINCIPALS, STRS("https://idp.test/alice", "*@corp"), false);

    (void)state;
    assert_true(allowed(p, &(struct fake){.reqp = "https://idp.test/alice"}));
    assert_true(allowed(p, &(struct fake){.reqp = "https://other/bob@corp"}));
    assert_false(allowed(p, &(struct fake){.reqp = "https://idp.test/alicex"}));
    assert_false(allowed(p, &(struct fake){0}));
    az_free(p);

    /* "*": any verified JWT */
    p = one(AZ_F_REQUEST_PRINCIPALS, STRS("*"), false);
    assert_true(allowed(p, &(struct fake){.reqp = "i/s"}));
    assert_false(allowed(p, &(struct fake){0}));
    az_free(p);
}

static void test_methods_paths_hosts(void **state)
{
    struct az_policy *p = one(AZ_F_METHODS, STRS("GET", "HEAD"), false);

    (void)state;
    assert_true(allowed(p, &(struct fake){.method = "HEAD"}));
    assert_false(allowed(p, &(struct fake){.method = "get"})); /* case-sensitive */
    assert_false(allowed(p, &(struct fake){.method = "POST"}));
    az_free(p);

    p = one(AZ_F_PATHS, STRS("/exact", "/api/*", "*.css"), false);
    assert_true(allowed(p, &(struct fake){.path = "/exact"}));
    assert_false(allowed(p, &(struct fake){.path = "/exact/"}));
    assert_true(allowed(p, &(struct fake){.path = "/api/"}));
    assert_true(allowed(p, &(struct fake){.path = "/api/v1/x"}));
    assert_false(allowed(p, &(struct fake){.path = "/api"}));
    assert_true(allowed(p, &(struct fake){.path = "/static/a.css"}));
    assert_false(allowed(p, &(struct fake){.path = "/static/a.cssx"}));
    az_free(p);

    p = one(AZ_F_PATHS, STRS("/admin*"), true);
    assert_false(allowed(p, &(struct fake){.path = "/admin/x"}));
    assert_true(allowed(p, &(struct fake){.path = "/public"}));
    az_free(p);

    p = one(AZ_F_HOSTS, STRS("API.example.com", "*.internal"), false);
    assert_true(allowed(p, &(struct fake){.host = "api.EXAMPLE.com"}));
    assert_true(allowed(p, &(struct fake){.host = "db.Internal"}));
    assert_false(allowed(p, &(struct fake){.host = "example.com"}));
    assert_false(allowed(p, &(struct fake){0}));
    az_free(p);
}

static void test_ports(void **state)
{
    struct az_policy *p = one(AZ_F_PORTS, STRS("8080", "9443"), false);
    struct az_rule_spec s = {.action = AZ_ALLOW};

    (void)state;
    assert_true(allowed(p, &(struct fake){.port = "8080"}));
    assert_true(allowed(p, &(struct fake){.port = "9443"}));
    assert_false(allowed(p, &(struct fake){.port = "80"}));
    assert_false(allowed(p, &(struct fake){.port = "808"})); /* exact, not a prefix */
    az_free(p);

    p = one(AZ_F_PORTS, STRS("15000"), true);
    assert_false(allowed(p, &(struct fake){.port = "15000"}));
    assert_true(allowed(p, &(struct fake){.port = "8080"}));
    az_free(p);

    /* not a port: refused when the rule is added */
    p = az_new();
    s.values[AZ_F_PORTS] = STRS("80*");
    assert_int_equal(az_add_rule(p, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is not a port"));
    s.values[AZ_F_PORTS] = STRS("65536");
    assert_int_equal(az_add_rule(p, &s, err, sizeof(err)), -1);
    s.values[AZ_F_PORTS] = STRS("0");
    assert_int_equal(az_add_rule(p, &s, err, sizeof(err)), -1);
    az_free(p);
}

static void test_headers(void **state)
{
    struct az_header_spec h[] = {
        {.name = "X-Env", .values = STRS("prod", "stage-*"), .not_values = STRS("stage-old")},
        {.name = "x-trace", .values = STRS("*")},
    };
    struct az_rule_spec s = {.action = AZ_ALLOW, .headers = h, .n_headers = 2};
    struct az_policy *p = az_new();

    (void)state;
    add(p, &s);
    assert_true(allowed(p, &(struct fake){.headers = {{"x-env", "prod"}, {"x-trace", ""}}}));
    assert_true(allowed(p, &(struct fake){.headers = {{"x-env", "stage-2"}, {"x-trace", "1"}}}));
    assert_false(allowed(p, &(struct fake){.headers = {{"x-env", "stage-old"}, {"x-trace", "1"}}}));
    assert_false(allowed(p, &(struct fake){.headers = {{"x-env", "prod"}}})); /* x-trace absent */
    assert_false(allowed(p, &(struct fake){.headers = {{"x-trace", "1"}}}));  /* x-env absent */
    assert_false(allowed(p, &(struct fake){.headers = {{"x-env", "Prod"}, {"x-trace", "1"}}}));
    az_free(p);

    /* not_values only: an absent header is allowed, a listed value is not */
    p = az_new();
    h[0] = (struct az_header_spec){.name = "x-user", .not_values = STRS("root", "admin*")};
    s.n_headers = 1;
    add(p, &s);
    assert_true(allowed(p, &(struct fake){0}));
    assert_true(allowed(p, &(struct fake){.headers = {{"x-user", "bob"}}}));
    assert_false(allowed(p, &(struct fake){.headers = {{"x-user", "administrator"}}}));
    az_free(p);
}

/* Every field of a rule must hold; any value of a field will do. */
static void test_all_fields(void **state)
{
    struct az_header_spec h[] = {{.name = "x-k", .values = STRS("v")}};
    struct az_rule_spec s = {.action = AZ_ALLOW, .headers = h, .n_headers = 1};
    struct az_policy *p = az_new();
    struct fake ok = {.principal = "spiffe://td/ns/prod/sa/web",
                      .addr = "10.0.0.5",
                      .reqp = "iss/alice",
                      .method = "POST",
                      .path = "/api/x",
                      .host = "svc",
                      .headers = {{"x-k", "v"}}};
    struct fake f;

    (void)state;
    s.values[AZ_F_PRINCIPALS] = STRS("td/ns/prod/sa/web", "td/ns/prod/sa/other");
    s.values[AZ_F_NAMESPACES] = STRS("prod");
    s.values[AZ_F_IP_BLOCKS] = STRS("10.0.0.0/24");
    s.values[AZ_F_REQUEST_PRINCIPALS] = STRS("iss/*");
    s.values[AZ_F_METHODS] = STRS("GET", "POST");
    s.values[AZ_F_PATHS] = STRS("/api/*");
    s.values[AZ_F_HOSTS] = STRS("svc");
    add(p, &s);
    assert_true(allowed(p, &ok));
    f = ok, f.principal = "spiffe://td/ns/prod/sa/nope";
    assert_false(allowed(p, &f));
    f = ok, f.addr = "10.0.1.5";
    assert_false(allowed(p, &f));
    f = ok, f.reqp = NULL;
    assert_false(allowed(p, &f));
    f = ok, f.method = "PUT";
    assert_false(allowed(p, &f));
    f = ok, f.path = "/web";
    assert_false(allowed(p, &f));
    f = ok, f.host = "other";
    assert_false(allowed(p, &f));
    f = ok, f.headers[0][1] = "w";
    assert_false(allowed(p, &f));
    az_free(p);
}

/* ---- evaluation order ---- */

static void test_deny_before_allow(void **state)
{
    struct az_policy *p = az_new();
    struct az_rule_spec allow_all = {.name = "all", .action = AZ_ALLOW};
    struct az_rule_spec deny_admin = {.action = AZ_DENY};
    struct az_result r;

    (void)state;
    deny_admin.values[AZ_F_PATHS] = STRS("/admin*");
    add(p, &allow_all); /* listed first, still loses to the deny */
    add(p, &deny_admin);
    r = eval(p, &(struct fake){.path = "/admin/x"});
    assert_int_equal(r.decision, AZ_DENIED_BY_RULE);
    assert_int_equal(r.rule, 1);
    assert_true(r.enforce);
    assert_string_equal(az_rule_name(p, 1), "deny_2");
    r = eval(p, &(struct fake){.path = "/x"});
    assert_int_equal(r.decision, AZ_ALLOWED);
    assert_int_equal(r.rule, 0);
    assert_false(r.enforce);
    assert_string_equal(az_rule_name(p, 0), "all");
    az_free(p);
}

static void test_no_allow_rules(void **state)
{
    struct az_policy *p = az_new();
    struct az_rule_spec d = {.action = AZ_DENY};
    struct az_result r;

    (void)state;
    d.values[AZ_F_METHODS] = STRS("DELETE");
    add(p, &d);
    r = eval(p, &(struct fake){.method = "GET"}); /* only deny rules: the rest is allowed */
    assert_int_equal(r.decision, AZ_ALLOWED);
    assert_int_equal(r.rule, -1);
    assert_int_equal(eval(p, &(struct fake){.method = "DELETE"}).decision, AZ_DENIED_BY_RULE);
    az_free(p);

    /* allow rules exist and none matches */
    p = one(AZ_F_METHODS, STRS("GET"), false);
    r = eval(p, &(struct fake){.method = "POST"});
    assert_int_equal(r.decision, AZ_DENIED_NO_MATCH);
    assert_int_equal(r.rule, -1);
    assert_true(r.enforce);
    az_free(p);

    /* an empty deny rule denies everything (Istio's deny-all) */
    p = az_new();
    d = (struct az_rule_spec){.action = AZ_DENY};
    add(p, &d);
    assert_int_equal(eval(p, &(struct fake){0}).decision, AZ_DENIED_BY_RULE);
    az_free(p);
}

static void test_shadow(void **state)
{
    struct az_policy *p = az_new();
    struct az_rule_spec d = {.action = AZ_DENY}, a = {.action = AZ_ALLOW};
    struct az_result r;

    (void)state;
    d.values[AZ_F_PATHS] = STRS("/admin*");
    a.values[AZ_F_METHODS] = STRS("GET");
    add(p, &d);
    add(p, &a);
    az_set_shadow(p, true);
    assert_true(az_shadow(p));
    r = eval(p, &(struct fake){.path = "/admin"});
    assert_int_equal(r.decision, AZ_DENIED_BY_RULE); /* decided and counted... */
    assert_false(r.enforce);                         /* ...but not enforced */
    r = eval(p, &(struct fake){.method = "POST"});
    assert_int_equal(r.decision, AZ_DENIED_NO_MATCH);
    assert_false(r.enforce);
    r = eval(p, &(struct fake){.method = "GET"});
    assert_int_equal(r.decision, AZ_ALLOWED);
    az_set_shadow(p, false);
    assert_true(eval(p, &(struct fake){.path = "/admin"}).enforce);
    az_free(p);
}

/* ---- path normalization ---- */

static void test_normalize(void **state)
{
    static const struct {
        const char *in;
        enum az_norm how;
        const char *out;
    } cases[] = {
        {"/a/b", AZ_NORM_BASE, "/a/b"},
        {"/a/./b", AZ_NORM_BASE, "/a/b"},
        {"/a/../b", AZ_NORM_BASE, "/b"},
        {"/../../a", AZ_NORM_BASE, "/a"},
        {"/a/b/..", AZ_NORM_BASE, "/a/"},
        {"/a/.", AZ_NORM_BASE, "/a/"},
        {"/a/", AZ_NORM_BASE, "/a/"},
        {"/", AZ_NORM_BASE, "/"},
        {"/..", AZ_NORM_BASE, "/"},
        {"/%2e%2E/admin", AZ_NORM_BASE, "/admin"},    /* encoded dots are dots */
        {"/%61dmin", AZ_NORM_BASE, "/admin"},         /* unreserved decoded */
        {"/a%2fb", AZ_NORM_BASE, "/a%2Fb"},           /* reserved kept, hex upper-cased */
        {"/a%zz%4", AZ_NORM_BASE, "/a%zz%4"},         /* not escapes: kept */
        {"/a//b", AZ_NORM_BASE, "/a//b"},             /* BASE keeps empty segments */
        {"/a//../b", AZ_NORM_BASE, "/a/b"},           /* ".." drops the empty one */
        {"//admin", AZ_NORM_MERGE_SLASHES, "/admin"}, /* what nginx would serve */
        {"/a///b//", AZ_NORM_MERGE_SLASHES, "/a/b/"},
        {"//", AZ_NORM_MERGE_SLASHES, "/"},
        {"/x/..//admin", AZ_NORM_MERGE_SLASHES, "/admin"},
        {"/a%2F..%2Fadmin", AZ_NORM_MERGE_SLASHES, "/a%2F..%2Fadmin"},
        {"/a%2F..%2Fadmin", AZ_NORM_DECODE_AND_MERGE_SLASHES, "/admin"},
        {"/a%5cb", AZ_NORM_DECODE_AND_MERGE_SLASHES, "/a\\b"},
        {"/a/../b", AZ_NORM_NONE, "/a/../b"},
        {"*", AZ_NORM_MERGE_SLASHES, "*"},
    };
    char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long n =
            az_normalize_path(cases[i].in, strlen(cases[i].in), cases[i].how, out, sizeof(out));

        if (n < 0 || (size_t)n != strlen(cases[i].out) || memcmp(out, cases[i].out, (size_t)n))
            fail_msg("%s (mode %d): expected %s, got %.*s", cases[i].in, cases[i].how, cases[i].out,
                     n < 0 ? 2 : (int)n, n < 0 ? "-1" : out);
    }
    assert_int_equal(az_normalize_path("/abcdef", 7, AZ_NORM_BASE, out, 4), -1);
}

/* ---- errors ---- */

static void expect_rule_error(const struct az_rule_spec *s, const char *want)
{
    struct az_policy *p = az_new();

    if (az_add_rule(p, s, err, sizeof(err)) == 0)
        fail_msg("accepted; expected \"%s\"", want);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    assert_int_equal(az_rule_count(p), 0);
    az_free(p);
}

static void test_rule_errors(void **state)
{
    struct az_rule_spec s = {.action = AZ_ALLOW};
    struct az_header_spec h[1] = {{.name = "x y", .values = STRS("1")}};
    struct az_policy *p;

    (void)state;
    s.values[AZ_F_PATHS] = STRS("/a*b");
    expect_rule_error(&s, "paths: \"/a*b\": '*' may only start or end a value");
    s.values[AZ_F_PATHS] = STRS("");
    expect_rule_error(&s, "paths: empty value");
    s.values[AZ_F_PATHS] = (struct az_strings){0};
    s.not_values[AZ_F_IP_BLOCKS] = STRS("10.0.0.0/40");
    expect_rule_error(&s, "not_ip_blocks: \"10.0.0.0/40\" is not an address or CIDR block");
    s.not_values[AZ_F_IP_BLOCKS] = (struct az_strings){0};
    s.values[AZ_F_HOSTS] = STRS("a\nb");
    expect_rule_error(&s, "hosts: \"a\nb\" has control characters");
    s.values[AZ_F_HOSTS] = (struct az_strings){0};
    s.values[AZ_F_PRINCIPALS] = STRS("spiffe://");
    expect_rule_error(&s, "no identity after spiffe://");
    s.values[AZ_F_PRINCIPALS] = (struct az_strings){0};
    s.headers = h;
    s.n_headers = 1;
    expect_rule_error(&s, "headers[1]: \"x y\" is not a valid header name");
    h[0] = (struct az_header_spec){.name = "x"};
    expect_rule_error(&s, "headers[1] (x): give values or not_values");
    s.n_headers = 0;
    s.name = "bad name";
    expect_rule_error(&s, "name: \"bad name\"");

    /* a name used twice */
    p = az_new();
    s.name = "r";
    add(p, &s);
    assert_int_not_equal(az_add_rule(p, &s, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "\"r\" is the name of rule 1 already"));
    az_free(p);
}

/* ---- the plugin's configuration, through the loader ---- */

static const char cfg_head[] = "cluster \"c\" { endpoints = { \"127.0.0.1:9\" } }\n"
                               "listener \"l\" { listen = \"127.0.0.1:1\", plugins = {\n";
static const char cfg_tail[] = "router { { match = { prefix = \"/\" }, cluster = \"c\" } } } }\n";

/* Loads cfg_head + middle + cfg_tail; returns the number of errors, the first in first. */
static unsigned load(const char *middle, char *first, size_t len)
{
    char text[4096];
    struct nd_errors errs = {0};
    struct nd_config *cfg;
    unsigned n;

    snprintf(text, sizeof(text), "%s%s%s", cfg_head, middle, cfg_tail);
    cfg = nd_config_load_string("t.lua", text, strlen(text), &errs);
    n = errs.n;
    snprintf(first, len, "%s", n ? errs.msg[0] : "");
    if (cfg)
        assert_int_equal(n, 0);
    nd_config_free(cfg);
    nd_errors_clear(&errs);
    return n;
}

static void expect_cfg_error(const char *middle, const char *want)
{
    char first[512];
    unsigned n = load(middle, first, sizeof(first));

    if (n == 0 || !strstr(first, want))
        fail_msg("config:\n%s\nexpected an error with \"%s\", got %u: \"%s\"", middle, want, n,
                 first);
}

static void test_config(void **state)
{
    char first[512];

    (void)state;
    /* the long form and the short form */
    assert_int_equal(load("authz { shadow = true, path_normalization = \"base\", rules = {\n"
                          "  { name = \"a\", action = \"deny\", paths = { \"/admin*\" },\n"
                          "    not_ip_blocks = { \"10.0.0.0/8\" },\n"
                          "    headers = { { name = \"x-env\", values = { \"prod\" } } } },\n"
                          "  { action = \"allow\", request_principals = { \"*\" } } } },\n",
                          first, sizeof(first)),
                     0);
    assert_int_equal(
        load("authz { { action = \"deny\", methods = { \"DELETE\" } } },\n", first, sizeof(first)),
        0);
    /* errors name the file, the line and the key */
    expect_cfg_error("authz { rules = {\n { action = \"maybe\" } } },\n",
                     "t.lua:3: listener \"l\": plugins[1] (authz): rules[1]: action: \"maybe\"");
    expect_cfg_error("authz { { paths = { \"/x\" } } },\n", "a rule needs action");
    expect_cfg_error("authz { { action = \"deny\",\n paths = { \"/a*b*\" } } },\n",
                     "paths: \"/a*b*\": '*' may only start or end a value");
    expect_cfg_error("authz { { action = \"deny\", ip_blocks = { \"nope\" } } },\n",
                     "ip_blocks: \"nope\" is not an address or CIDR block");
    expect_cfg_error("authz { { action = \"deny\", ports = { 80 } } },\n",
                     "ports[1]: must be a string, not a number");
    expect_cfg_error("authz { { action = \"deny\", not_ports = { \"80x\" } } },\n",
                     "not_ports[1]: \"80x\" is not a port (1-65535)");
    expect_cfg_error("authz { { action = \"deny\", methods = { } } },\n", "methods: empty list");
    expect_cfg_error("authz { { action = \"deny\", methods = { 1 } } },\n", "methods");
    expect_cfg_error("authz { { action = \"deny\", headers = { { values = { \"1\" } } } } },\n",
                     "a header condition needs a name");
    expect_cfg_error("authz { { action = \"deny\", pathz = { \"/\" } } },\n", "pathz");
    expect_cfg_error("authz { path_normalization = \"weird\", { action = \"deny\" } },\n",
                     "path_normalization: \"weird\"");
    expect_cfg_error("authz { },\n", "authz needs rules");
    expect_cfg_error("authz { { action = \"deny\" }, rules = { { action = \"deny\" } } },\n",
                     "not both");
}

static int group_setup(void **state)
{
    (void)state;
    nd_log_level = NODUS_LOG_WARN;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_principals),
        cmocka_unit_test(test_namespaces),
        cmocka_unit_test(test_spiffe_namespace),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_ip_blocks),
        cmocka_unit_test(test_request_principals),
        cmocka_unit_test(test_methods_paths_hosts),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_all_fields),
        cmocka_unit_test(test_deny_before_allow),
        cmocka_unit_test(test_no_allow_rules),
        cmocka_unit_test(test_shadow),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_rule_errors),
        cmocka_unit_test(test_config),
    };

    return cmocka_run_group_tests(tests, group_setup, NULL);
}
