/* The configuration loader: structures, defaults, values, errors, sandbox, plugin registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg_internal.h"
#include "config.h"
#include "log.h"
#include "plugin_host.h"

/* ---- two small plugins ------------------------------------------------------------------------
 * troute (terminal): troute { cluster = "a", timeout = "2s", routes = { { prefix = "/x",
 *                    cluster = "b" }, ... } }
 * thdr:              thdr { set = { ["x-a"] = "1", ... } }
 * tstream (stream):  tstream { }
 */
static int destroyed;

struct troute_conf {
    struct nodus_cluster *cl;
    uint64_t timeout_ms;
    struct nodus_cluster *route_cl[8];
    char route_prefix[8][32];
    size_t nroutes;
};

static int nop_request(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    (void)h;
    (void)ctx;
    return NODUS_CONTINUE;
}

static const struct nodus_http_ops http_ops = {.request_headers = nop_request};

static long nop_data(struct nodus_stream *s, const struct nodus_ctx *ctx, const char *d, size_t n)
{
    (void)s;
    (void)ctx;
    (void)d;
    return (long)n;
}

static const struct nodus_stream_ops stream_ops = {.data_in = nop_data, .data_out = nop_data};

static struct nodus_cluster *want_cluster(struct nodus_cfg *c, const char *name)
{
    struct nodus_cluster *cl = nodus_cluster_find(c, name);

    if (!cl)
        nodus_cfg_error(c, "unknown cluster '%s'", name);
    return cl;
}

static void *troute_configure(struct nodus_cfg *c)
{
    struct troute_conf *tc = calloc(1, sizeof(*tc));
    struct nodus_cfg *routes, *r;
    const char *s;
    bool ok = true;

    assert_non_null(tc);
    switch (nodus_cfg_str(c, "cluster", &s)) {
    case 1:
        ok = (tc->cl = want_cluster(c, s)) != NULL;
        break;
    case 0:
        nodus_cfg_error(c, "'cluster' is required");
        /* fall through */
    default:
        ok = false;
    }
    if (nodus_cfg_duration(c, "timeout", &tc->timeout_ms) < 0)
        ok = false;
    if (nodus_cfg_table(c, "routes", &routes) == 1) {
        size_t n = nodus_cfg_len(routes);

        for (size_t i = 0; i < n && i < 8; i++) {
            if (nodus_cfg_at(routes, i, &r) != 1) {
                ok = false;
                continue;
            }
            if (nodus_cfg_str(r, "prefix", &s) == 1)
                snprintf(tc->route_prefix[i], sizeof(tc->route_prefix[i]), "%s", s);
            if (nodus_cfg_str(r, "cluster", &s) == 1 && !(tc->route_cl[i] = want_cluster(r, s)))
                ok = false;
            tc->nroutes++;
        }
    }
    if (!ok) {
        free(tc);
        return NULL;
    }
    return tc;
}

struct thdr_conf {
    char names[8][32], vals[8][32];
    size_t n;
};

static void *thdr_configure(struct nodus_cfg *c)
{
    struct thdr_conf *hc = calloc(1, sizeof(*hc));
    struct nodus_cfg *set;
    const char *k, *v;
    size_t it = 0;
    bool ok = true;
    int r;

    assert_non_null(hc);
    if (nodus_cfg_table(c, "set", &set) == 1) {
        while ((r = nodus_cfg_next_str(set, &it, &k, &v)) != 0) {
            if (r < 0) {
                ok = false;
                continue;
            }
            if (hc->n < 8) {
                snprintf(hc->names[hc->n], sizeof(hc->names[0]), "%s", k);
                snprintf(hc->vals[hc->n], sizeof(hc->vals[0]), "%s", v);
                hc->n++;
            }
        }
    }
    if (!ok) {
        free(hc);
        return NULL;
    }
    return hc;
}

static void *tstream_configure(struct nodus_cfg *c)
{
    bool b = false;

    nodus_cfg_bool(c, "on", &b);
    return strdup(b ? "on" : "off");
}

static void counting_free(void *conf)
{
    destroyed++;
    free(conf);
}

static const struct nodus_plugin troute = {
    .abi = NODUS_PLUGIN_ABI,
    .name = "troute",
    .description = "test router",
    .flags = NODUS_PLUGIN_HTTP | NODUS_PLUGIN_TERMINAL,
    .txn_size = 40,
    .configure = troute_configure,
    .destroy = counting_free,
    .http = &http_ops,
};

static const struct nodus_plugin thdr = {
    .abi = NODUS_PLUGIN_ABI,
    .name = "thdr",
    .description = "test headers",
    .flags = NODUS_PLUGIN_HTTP,
    .txn_size = 24,
    .configure = thdr_configure,
    .destroy = counting_free,
    .http = &http_ops,
};

static const struct nodus_plugin tstream = {
    .abi = NODUS_PLUGIN_ABI,
    .name = "tstream",
    .description = "test stream plugin",
    .flags = NODUS_PLUGIN_STREAM,
    .txn_size = 0,
    .configure = tstream_configure,
    .destroy = counting_free,
    .stream = &stream_ops,
};

/* tpr: takes per-route configuration { v = "..." } (configure_route), counts what it frees. */
static int route_confs_freed;

static void *tpr_configure(struct nodus_cfg *c)
{
    (void)c;
    return strdup("listener");
}

static void *tpr_configure_route(void *conf, struct nodus_cfg *c)
{
    const char *v = NULL;

    assert_string_equal(conf, "listener"); /* the instance of the same listener */
    if (nodus_cfg_str(c, "v", &v) != 1) {
        nodus_cfg_error(c, "v = \"...\" is required");
        return NULL;
    }
    return strdup(v);
}

static void tpr_destroy_route(void *conf, void *route_conf)
{
    assert_string_equal(conf, "listener");
    route_confs_freed++;
    free(route_conf);
}

static const struct nodus_plugin tpr = {
    .abi = NODUS_PLUGIN_ABI,
    .name = "tpr",
    .description = "test plugin with per-route configuration",
    .flags = NODUS_PLUGIN_HTTP,
    .configure = tpr_configure,
    .destroy = free,
    .http = &http_ops,
    .configure_route = tpr_configure_route,
    .destroy_route = tpr_destroy_route,
};

static int group_setup(void **state)
{
    (void)state;
    nd_log_level = NODUS_LOG_WARN; /* print() from scripts logs at info */
    if (nodus_plugin_register(&troute) < 0 || nodus_plugin_register(&thdr) < 0 ||
        nodus_plugin_register(&tstream) < 0 || nodus_plugin_register(&tpr) < 0)
        return -1;
    return 0;
}

/* ---- helpers --------------------------------------------------------------------------------- */

static struct nd_config *load(const char *text, struct nd_errors *errs)
{
    return nd_config_load_string("t.lua", text, strlen(text), errs);
}

static void print_errs(const struct nd_errors *e)
{
    for (unsigned i = 0; i < e->n; i++)
        fprintf(stderr, "    got: %s\n", e->msg[i]);
}

/* The load fails with exactly these messages (NULL-terminated), in this order. */
static void expect_errors_v(const char *text, const char *const *want)
{
    struct nd_errors errs = {0};
    struct nd_config *cfg = load(text, &errs);
    unsigned n = 0;

    while (want[n])
        n++;
    if (cfg || errs.n != n) {
        print_errs(&errs);
        nd_config_free(cfg);
        fail_msg("expected %u errors, got %u (config %s)", n, errs.n, cfg ? "built" : "NULL");
    }
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(errs.msg[i], want[i]) != 0) {
            print_errs(&errs);
            fail_msg("error %u: expected \"%s\"", i, want[i]);
        }
    }
    nd_errors_clear(&errs);
}

#define expect_errors(text, ...)                                                                   \
    do {                                                                                           \
        const char *const want_[] = {__VA_ARGS__, NULL};                                           \
        expect_errors_v(text, want_);                                                              \
    } while (0)

/* The load fails with one error that starts with prefix (and contains part, if given). */
static void expect_error_prefix(const char *text, const char *prefix, const char *part)
{
    struct nd_errors errs = {0};
    struct nd_config *cfg = load(text, &errs);

    if (cfg || errs.n != 1 || strncmp(errs.msg[0], prefix, strlen(prefix)) != 0 ||
        (part && !strstr(errs.msg[0], part))) {
        print_errs(&errs);
        nd_config_free(cfg);
        fail_msg("expected one error starting with \"%s\"", prefix);
    }
    nd_errors_clear(&errs);
}

static struct nd_config *load_ok(const char *text)
{
    struct nd_errors errs = {0};
    struct nd_config *cfg = load(text, &errs);

    if (!cfg) {
        print_errs(&errs);
        fail_msg("the configuration was refused");
    }
    assert_int_equal(errs.n, 0);
    return cfg;
}

/* ---- a full configuration -------------------------------------------------------------------- */

static const char full_config[] =
    "-- a complete configuration\n" /* 1 */
    "node { name = \"edge-1\", workers = 2, io = \"posix\", drain_timeout = \"2s\",\n"
    "       access_log = \"stderr\", log_level = \"debug\" }\n"   /* 3 */
    "admin { listen = \"127.0.0.1:15000\" }\n"                    /* 4 */
    "local function ep(port) return \"127.0.0.1:\" .. port end\n" /* 5 */
    "cluster \"a\" { endpoints = { ep(9001), { address = \"[::1]:9002\", weight = 2,\n"
    "                labels = { version = \"v2\", zone = \"z1\" } } },\n" /* 7 */
    "  lb = \"least_request\", connect_timeout = \"250ms\", idle_timeout = 30,\n"
    "  limits = { max_connections = 10, max_pending = 20, max_requests = 30 } }\n"
    "cluster \"b\" { endpoints = { \"10.0.0.1:80\" } }\n" /* 10 */
    "listener \"in\" {\n"                                 /* 11 */
    "  listen = \"0.0.0.0:8080\", protocol = \"http\",\n"
    "  max_request_headers_kb = 16, max_uri = 2048, max_headers = 50,\n"
    "  request_header_timeout = \"5s\", idle_timeout = \"1m\", timeout = \"1.5s\",\n"
    "  max_request_body = 1048576, xff = false,\n"
    "  plugins = {\n"
    "    tstream { on = true },\n"                                   /* 17 */
    "    thdr { set = { [\"x-b\"] = \"2\", [\"x-a\"] = \"1\" } },\n" /* 18 */
    "    troute { cluster = \"a\", timeout = \"2s\",\n"              /* 19 */
    "             routes = { { prefix = \"/b\", cluster = \"b\" } } },\n"
    "  },\n"
    "}\n"
    "listener \"raw\" { listen = \"[::]:9000\", protocol = \"tcp\", cluster = \"b\",\n"
    "                 idle_timeout = \"10s\", plugins = { tstream {} } }\n"; /* 24 */

static void test_full_config(void **state)
{
    struct nd_config *cfg;
    struct nd_cluster_conf *a, *b;
    struct nd_listener_conf *in, *raw;
    struct troute_conf *tc;
    struct thdr_conf *hc;

    (void)state;
    destroyed = 0;
    cfg = load_ok(full_config);
    assert_string_equal(cfg->file, "t.lua");
    assert_string_equal(cfg->node.name, "edge-1");
    assert_int_equal(cfg->node.workers, 2);
    assert_int_equal(cfg->node.io, ND_IO_POSIX);
    assert_int_equal(cfg->node.drain_timeout_ms, 2000);
    assert_string_equal(cfg->node.access_log, "stderr");
    assert_int_equal(cfg->node.log_level, NODUS_LOG_DEBUG);
    assert_int_equal(cfg->node.nplugin_paths, 0);
    assert_true(cfg->admin.enabled);
    assert_string_equal(cfg->admin.addr.text, "127.0.0.1:15000");

    assert_int_equal(cfg->nclusters, 2);
    a = &cfg->clusters[0];
    b = &cfg->clusters[1];
    assert_ptr_equal(nd_config_cluster(cfg, "b"), b);
    assert_null(nd_config_cluster(cfg, "c"));
    assert_string_equal(a->name, "a");
    assert_int_equal(a->id, 0);
    assert_int_equal(a->line, 6);
    assert_int_equal(a->neps, 2);
    assert_string_equal(a->eps[0].addr.text, "127.0.0.1:9001");
    assert_int_equal(a->eps[0].weight, 1);
    assert_int_equal(a->eps[0].nlabels, 0);
    assert_string_equal(a->eps[1].addr.text, "[::1]:9002");
    assert_int_equal(a->eps[1].addr.ss.ss_family, AF_INET6);
    assert_int_equal(a->eps[1].weight, 2);
    assert_int_equal(a->eps[1].nlabels, 2);
    assert_string_equal(a->eps[1].labels[0].key, "version"); /* sorted by key */
    assert_string_equal(a->eps[1].labels[0].val, "v2");
    assert_string_equal(a->eps[1].labels[1].key, "zone");
    assert_int_equal(a->lb, ND_LB_LEAST_REQUEST);
    assert_int_equal(a->connect_timeout_ms, 250);
    assert_int_equal(a->idle_timeout_ms, 30000);
    assert_int_equal(a->max_connections, 10);
    assert_int_equal(a->max_pending, 20);
    assert_int_equal(a->max_requests, 30);
    /* defaults */
    assert_int_equal(b->id, 1);
    assert_int_equal(b->lb, ND_LB_ROUND_ROBIN);
    assert_int_equal(b->connect_timeout_ms, 1000);
    assert_int_equal(b->idle_timeout_ms, 60000);
    assert_int_equal(b->max_connections, 1024);
    assert_int_equal(b->max_pending, 1024);
    assert_int_equal(b->max_requests, 1024);

    assert_int_equal(cfg->nlisteners, 2);
    in = &cfg->listeners[0];
    raw = &cfg->listeners[1];
    assert_string_equal(in->name, "in");
    assert_int_equal(in->id, 0);
    assert_int_equal(in->line, 11);
    assert_string_equal(in->addr.text, "0.0.0.0:8080");
    assert_int_equal(in->proto, ND_PROTO_HTTP);
    assert_int_equal(in->limits.max_head, 16 * 1024);
    assert_int_equal(in->limits.max_uri, 2048);
    assert_int_equal(in->limits.max_headers, 50);
    assert_int_equal(in->header_timeout_ms, 5000);
    assert_int_equal(in->idle_timeout_ms, 60000);
    assert_int_equal(in->request_timeout_ms, 1500);
    assert_int_equal(in->max_body, 1048576);
    assert_false(in->xff);
    assert_null(in->tcp_cluster);
    assert_int_equal(in->nplugins, 3);
    assert_ptr_equal(in->plugins[0].p, &tstream);
    assert_ptr_equal(in->plugins[1].p, &thdr);
    assert_ptr_equal(in->plugins[2].p, &troute);
    assert_int_equal(in->plugins[0].line, 17);
    assert_int_equal(in->plugins[1].line, 18);
    assert_int_equal(in->plugins[2].line, 19);
    assert_string_equal(in->plugins[0].conf, "on");
    /* scratch: tstream 0 bytes at 0, thdr 24 at 0 (-> 32), troute 40 at 32 (-> 48): 80 */
    assert_int_equal(in->plugins[0].txn_off, 0);
    assert_int_equal(in->plugins[1].txn_off, 0);
    assert_int_equal(in->plugins[2].txn_off, 32);
    assert_int_equal(in->txn_size, 80);
    hc = in->plugins[1].conf;
    assert_int_equal(hc->n, 2);
    assert_string_equal(hc->names[0], "x-a");
    assert_string_equal(hc->vals[0], "1");
    assert_string_equal(hc->names[1], "x-b");
    tc = in->plugins[2].conf;
    /* the plugin holds pointers into its own snapshot */
    assert_ptr_equal(tc->cl, (struct nodus_cluster *)a);
    assert_string_equal(nodus_cluster_name(tc->cl), "a");
    assert_int_equal(tc->timeout_ms, 2000);
    assert_int_equal(tc->nroutes, 1);
    assert_string_equal(tc->route_prefix[0], "/b");
    assert_ptr_equal(tc->route_cl[0], (struct nodus_cluster *)b);

    assert_string_equal(raw->name, "raw");
    assert_int_equal(raw->id, 1);
    assert_string_equal(raw->addr.text, "[::]:9000");
    assert_int_equal(raw->proto, ND_PROTO_TCP);
    assert_ptr_equal(raw->tcp_cluster, b);
    assert_int_equal(raw->idle_timeout_ms, 10000);
    assert_int_equal(raw->nplugins, 1);
    assert_string_equal(raw->plugins[0].conf, "off");
    assert_int_equal(raw->txn_size, 0);

    nd_config_free(cfg);
    assert_int_equal(destroyed, 4);
}

static void test_defaults(void **state)
{
    struct nd_config *cfg;
    char host[256] = "";
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    (void)state;
    cfg = load_ok(
        "cluster \"c\" { endpoints = { \"127.0.0.1:1\" } }\n"
        "listener \"l\" { listen = \":8080\", plugins = { troute { cluster = \"c\" } } }\n");
    gethostname(host, sizeof(host) - 1);
    assert_string_equal(cfg->node.name, host);
    assert_int_equal(cfg->node.workers, ncpu > ND_MAX_WORKERS ? ND_MAX_WORKERS : ncpu);
    assert_int_equal(cfg->node.io, ND_IO_POSIX);
    assert_int_equal(cfg->node.drain_timeout_ms, 5000);
    assert_null(cfg->node.access_log);
    assert_int_equal(cfg->node.log_level, NODUS_LOG_INFO);
    assert_false(cfg->admin.enabled);
    assert_string_equal(cfg->listeners[0].addr.text, "0.0.0.0:8080");
    assert_int_equal(cfg->listeners[0].proto, ND_PROTO_HTTP);
    assert_int_equal(cfg->listeners[0].limits.max_head, 8192);
    assert_int_equal(cfg->listeners[0].limits.max_uri, 4096);
    assert_int_equal(cfg->listeners[0].limits.max_headers, 100);
    assert_int_equal(cfg->listeners[0].header_timeout_ms, 10000);
    assert_int_equal(cfg->listeners[0].idle_timeout_ms, 60000);
    assert_int_equal(cfg->listeners[0].request_timeout_ms, 15000);
    assert_int_equal(cfg->listeners[0].max_body, 0);
    assert_true(cfg->listeners[0].xff);
    assert_int_equal(cfg->listeners[0].txn_size, 48);
    assert_int_equal(cfg->metrics.principals, 256);
    nd_config_free(cfg);

    cfg = load_ok("metrics { principals = 0 }\n");
    assert_int_equal(cfg->metrics.principals, 0);
    nd_config_free(cfg);
    cfg = load_ok("metrics { principals = 4096 }\n");
    assert_int_equal(cfg->metrics.principals, 4096);
    nd_config_free(cfg);

    /* an empty script is a valid (if useless) configuration */
    cfg = load_ok("");
    assert_int_equal(cfg->nclusters + cfg->nlisteners, 0);
    nd_config_free(cfg);
}

/* Helpers, locals, loops, string functions, a #! line, cluster("x", {...}) all work. */
static void test_scripting(void **state)
{
    struct nd_config *cfg;

    (void)state;
    cfg =
        load_ok("#!/usr/bin/env nodus\n"
                "local names = { \"a\", \"b\", \"c\" }\n"
                "function mk(n, port) return { endpoints = { string.format(\"127.0.0.1:%d\", "
                "port) } } end\n"
                "for i, n in ipairs(names) do cluster(n)(mk(n, 9000 + i)) end\n"
                "cluster(\"d\", { endpoints = { (\"10.0.0.%d:80\"):format(math.max(1, 4)) },\n"
                "  connect_timeout = 0.0015, idle_timeout = 2.5 })\n"
                "local r = troute { cluster = names[#names] }\n"
                "assert(tostring(r):find(\"troute\"))\n"
                "assert(type(r) == \"userdata\" and getmetatable(r) == \"nodus.plugin\")\n"
                "local ok = pcall(function() error(\"caught\") end)\n"
                "assert(not ok and utf8.len(\"h\\u{e9}\") == 2 and #table.concat({ 1, 2 }) == 2)\n"
                "print(\"hello from\", \"the sandbox\", 1, nil, r)\n"
                "listener \"l\" { listen = \"127.0.0.1:8080\", plugins = { r } }\n"
                "listener \"m\" { listen = \"127.0.0.1:8081\", plugins = { r } }\n"
                "local st = { 3, 1, 2 }\ntable.sort(st, function(a, b) return a > b end)\n"
                "assert(st[1] == 3 and table.unpack(st, 3) == 1 and select(\"#\", "
                "table.unpack(st)) == 3)\n"
                "assert((\"a,b,,c\"):gsub(\",\", \";\") == \"a;b;;c\")\n"
                "for k, v in (\"x=1, y=2\"):gmatch(\"(%w+)=(%w+)\") do assert(tonumber(v)) end\n"
                "assert(table.remove(st) == 1 and #st == 2 and table.move(st, 1, 2, 2)[3] == 2)\n"
                "assert(utf8.codepoint(\"\\u{e9}\") == 233 and utf8.offset(\"ab\", 2) == 2)\n"
                "assert((\"abc\"):byte(-1) == 99 and (\"ab\"):rep(2, \"-\") == \"ab-ab\")\n");
    assert_int_equal(cfg->nclusters, 4);
    assert_string_equal(cfg->clusters[2].eps[0].addr.text, "127.0.0.1:9003");
    assert_string_equal(cfg->clusters[3].eps[0].addr.text, "10.0.0.4:80");
    assert_int_equal(cfg->clusters[3].connect_timeout_ms, 2); /* seconds, rounded up to 1 ms */
    assert_int_equal(cfg->clusters[3].idle_timeout_ms, 2500);
    assert_int_equal(cfg->clusters[0].line, 4);
    /* one marker used twice: two instances */
    assert_ptr_not_equal(cfg->listeners[0].plugins[0].conf, cfg->listeners[1].plugins[0].conf);
    assert_int_equal(cfg->listeners[0].plugins[0].line, 7);
    nd_config_free(cfg);
}

/* ---- values ---------------------------------------------------------------------------------- */

static void test_durations(void **state)
{
    static const struct {
        const char *s;
        int ok;
        uint64_t ms;
    } t[] = {
        {"250ms", 0, 250},
        {"10s", 0, 10000},
        {"1.5s", 0, 1500},
        {"1m", 0, 60000},
        {"2h", 0, 7200000},
        {"100us", 0, 1},
        {"1500us", 0, 2},
        {"1000us", 0, 1},
        {"0", 0, 0},
        {"0s", 0, 0},
        {"0us", 0, 0},
        {"10", 0, 10000},
        {"0.25", 0, 250},
        {"0.0001s", 0, 1},
        {"1.0000000000000000000000001s", 0, 1001},
        {"18446744073709551s", 0, 18446744073709551000ull},
        {"", -1, 0},
        {"-1s", -1, 0},
        {"1x", -1, 0},
        {"1 s", -1, 0},
        {" 1s", -1, 0},
        {"1.s", -1, 0},
        {".5s", -1, 0},
        {"s", -1, 0},
        {"1e3", -1, 0},
        {"1sec", -1, 0},
        {"18446744073709552s", -1, 0},
        {"99999999999999999999", -1, 0},
        {"5124095576030432h", -1, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint64_t ms = 12345;
        int r = nd_parse_duration(t[i].s, &ms);

        if (r != t[i].ok || (r == 0 && ms != t[i].ms))
            fail_msg("\"%s\": got %d / %llu", t[i].s, r, (unsigned long long)ms);
    }
    assert_int_equal(nd_parse_duration(NULL, &(uint64_t){0}), -1);
}

static void test_addresses(void **state)
{
    static const struct {
        const char *s;
        const char *text; /* NULL: refused */
        int family;
    } t[] = {
        {"1.2.3.4:80", "1.2.3.4:80", AF_INET},
        {"127.0.0.1:65535", "127.0.0.1:65535", AF_INET},
        {"[::1]:80", "[::1]:80", AF_INET6},
        {"[::]:80", "[::]:80", AF_INET6},
        {"[2001:DB8:0:0::1]:443", "[2001:db8::1]:443", AF_INET6},
        {"[::ffff:1.2.3.4]:80", "[::ffff:1.2.3.4]:80", AF_INET6},
        {"*:80", "0.0.0.0:80", AF_INET},
        {":80", "0.0.0.0:80", AF_INET},
        {"0.0.0.0:080", "0.0.0.0:80", AF_INET},
        {"1.2.3.4", NULL, 0},
        {"1.2.3.4:", NULL, 0},
        {"1.2.3.4:0", NULL, 0},
        {"1.2.3.4:65536", NULL, 0},
        {"1.2.3.4:99999", NULL, 0},
        {"1.2.3.4:123456", NULL, 0},
        {"1.2.3.4:-1", NULL, 0},
        {"1.2.3.4:8a", NULL, 0},
        {"1.2.3:80", NULL, 0},
        {"256.1.1.1:80", NULL, 0},
        {"localhost:80", NULL, 0},
        {"::1:80", NULL, 0},
        {"[::1]80", NULL, 0},
        {"[::1]", NULL, 0},
        {"[]:80", NULL, 0},
        {"[1.2.3.4]:80", NULL, 0},
        {"[::1:80", NULL, 0},
        {"[fe80::1%eth0]:80", NULL, 0},
        {"", NULL, 0},
        {":", NULL, 0},
        {"**:80", NULL, 0},
        {"1.2.3.4:80 ", NULL, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct nd_addr a;
        int r = nd_parse_addr(t[i].s, &a);

        if (!t[i].text) {
            if (r != -1)
                fail_msg("\"%s\" accepted as %s", t[i].s, a.text);
            continue;
        }
        if (r != 0)
            fail_msg("\"%s\" refused", t[i].s);
        assert_string_equal(a.text, t[i].text);
        assert_int_equal(a.ss.ss_family, t[i].family);
        assert_int_equal(a.len, t[i].family == AF_INET ? sizeof(struct sockaddr_in)
                                                       : sizeof(struct sockaddr_in6));
    }
    assert_int_equal(nd_parse_addr(NULL, &(struct nd_addr){0}), -1);
    {
        struct nd_addr a;

        assert_int_equal(nd_parse_addr("10.1.2.3:8080", &a), 0);
        assert_int_equal(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), 8080);
        assert_int_equal(ntohl(((struct sockaddr_in *)&a.ss)->sin_addr.s_addr), 0x0a010203);
    }
}

/* ---- errors ---------------------------------------------------------------------------------- */

#define CLUSTER_A "cluster \"a\" { endpoints = { \"127.0.0.1:9001\" } }\n"

static void test_error_unknown_directive(void **state)
{
    (void)state;
    expect_errors("node { }\nupstream { port = 9080 }\n",
                  "t.lua:2: unknown directive or variable 'upstream'");
    /* inside a helper function too, and a misspelt local */
    expect_errors("local function f()\n  return undefined_thing\nend\nf()\n",
                  "t.lua:2: unknown directive or variable 'undefined_thing'");
    expect_errors("local ok = pcall(function() return nope end)\nassert(ok)\n",
                  "t.lua:2: assertion failed!");
}

static void test_error_unknown_key(void **state)
{
    (void)state;
    expect_errors("node { workres = 2 }\n", "t.lua:1: node: unknown key 'workres'");
    expect_errors(CLUSTER_A "cluster \"b\" { endpoints = { \"127.0.0.1:1\" },\n"
                            "  limits = { max_conections = 1 } }\n",
                  "t.lua:2: cluster \"b\": limits: unknown key 'max_conections'");
    expect_errors(CLUSTER_A "listener \"in\" {\n"
                            "  listen = \"127.0.0.1:8080\",\n"
                            "  plugins = {\n"
                            "    thdr { set = { a = \"1\" } },\n"
                            "    troute { cluster = \"a\",\n"
                            "             routes = { { prefix = \"/\" }, { prefx = \"/x\" } } },\n"
                            "  },\n"
                            "}\n",
                  "t.lua:6: listener \"in\": plugins[2] (troute): routes[2]: unknown key 'prefx'");
    /* a list where only names are expected, other key types, odd characters */
    expect_errors("node { \"x\", [true] = 1, [\"a'b\\n\"] = 2 }\n",
                  "t.lua:1: node: unknown key 'a\\'b\\x0a'",
                  "t.lua:1: node: unexpected element [1] (this table takes no list)",
                  "t.lua:1: node: unexpected key of type a boolean");
}

/* io = "dpdk": admin and gossip on a port's address, 0.0.0.0, or loopback (a kernel socket) */
static void test_dpdk_control_addresses(void **state)
{
    static const char dpdk[] =
        "node { io = \"dpdk\" }\n"
        "dpdk { ports = { { dev = \"net_null0\", ip = \"198.18.0.2/24\" },\n"
        "                 { dev = \"net_null1\", ip = \"198.18.1.2/24\" } } }\n";
    struct nd_config *cfg;
    char text[1024];

    (void)state;
    snprintf(text, sizeof(text),
             "%sadmin { listen = \"198.18.0.2:15000\" }\n"
             "gossip { bind = \"0.0.0.0:7946\", advertise = \"198.18.1.2:7946\" }\n",
             dpdk);
    cfg = load_ok(text);
    assert_int_equal(nd_config_ctl_on_kernel(cfg, &cfg->admin.addr), 0);
    assert_int_equal(nd_config_ctl_on_kernel(cfg, &cfg->gossip.bind), 0);
    nd_config_free(cfg);
    snprintf(text, sizeof(text),
             "%sadmin { listen = \"127.0.0.1:15000\" }\n"
             "gossip { bind = \"127.0.0.2:7946\" }\n",
             dpdk);
    cfg = load_ok(text);
    assert_int_equal(nd_config_ctl_on_kernel(cfg, &cfg->admin.addr), 1); /* the escape hatch */
    assert_int_equal(nd_config_ctl_on_kernel(cfg, &cfg->gossip.bind), 1);
    nd_config_free(cfg);
    snprintf(text, sizeof(text),
             "%sadmin { listen = \"198.18.0.3:15000\" }\n"
             "gossip { bind = \"[::]:7946\", advertise = \"198.18.1.2:7946\" }\n",
             dpdk);
    expect_errors(text,
                  "t.lua:4: admin: with io = \"dpdk\", 'listen' must be on a DPDK port "
                  "(198.18.0.2, 198.18.1.2), 0.0.0.0, or a loopback address (a kernel socket), "
                  "not 198.18.0.3:15000",
                  "t.lua:5: gossip: with io = \"dpdk\", 'bind' must be on a DPDK port "
                  "(198.18.0.2, 198.18.1.2), 0.0.0.0, or a loopback address (a kernel socket), "
                  "not [::]:7946");
    snprintf(text, sizeof(text),
             "%sgossip { bind = \"198.18.1.2:7946\", join = { \"[fd00::1]:7946\" } }\n", dpdk);
    expect_errors(text, "t.lua:4: gossip: with io = \"dpdk\", 'join' takes IPv4 addresses only, "
                        "not [fd00::1]:7946");
    /* io = "posix" checks none of it */
    cfg = load_ok("admin { listen = \"198.18.0.3:15000\" }\n");
    nd_config_free(cfg);
}

static void test_error_wrong_type(void **state)
{
    (void)state;
    expect_errors("node { workers = 0 }\n",
                  "t.lua:1: node: 'workers' must be an integer between 1 and 64");
    expect_errors("node { workers = \"2\" }\n",
                  "t.lua:1: node: 'workers' must be an integer between 1 and 64");
    expect_errors("node { workers = 1.5 }\n",
                  "t.lua:1: node: 'workers' must be an integer between 1 and 64");
    expect_errors("node { name = 5, io = \"xdp\", drain_timeout = \"5 s\" }\n",
                  "t.lua:1: node: 'name' must be a string, not a number",
                  "t.lua:1: node: 'io' must be \"posix\" or \"dpdk\"",
                  "t.lua:1: node: 'drain_timeout' must be a duration such as \"250ms\", \"10s\", "
                  "\"1m\" or a number of seconds");
    expect_errors("metrics { principals = 4097 }\n",
                  "t.lua:1: metrics: 'principals' must be an integer between 0 and 4096");
    expect_errors("metrics { principals = \"all\", labels = 1 }\nmetrics { }\n",
                  "t.lua:1: metrics: 'principals' must be an integer between 0 and 4096",
                  "t.lua:1: metrics: unknown key 'labels'",
                  "t.lua:2: metrics: declared twice (first at line 1)");
    expect_errors("admin { listen = \"localhost:1\" }\n",
                  "t.lua:1: admin: 'listen' must be an address such as \"127.0.0.1:15000\" or "
                  "\"[::1]:15000\"");
    expect_errors("cluster \"a\" { endpoints = { \"0.0.0.0:80\", { address = \"x\" }, 5 },\n"
                  "  lb = \"maglev\", connect_timeout = 0, limits = 3 }\n",
                  "t.lua:1: cluster \"a\": endpoints[1]: \"0.0.0.0:80\" is not a host address "
                  "(0.0.0.0 and :: are for listening)",
                  "t.lua:1: cluster \"a\": endpoints[2]: 'address' \"x\" is not an address such "
                  "as \"127.0.0.1:9001\" or \"[::1]:9001\"",
                  "t.lua:1: cluster \"a\": endpoints[3]: must be an address (\"127.0.0.1:9001\") "
                  "or a table { address = ..., weight = ..., labels = { ... } }",
                  "t.lua:1: cluster \"a\": 'lb' must be \"round_robin\", \"least_request\" or "
                  "\"random\"",
                  "t.lua:1: cluster \"a\": 'connect_timeout' must be longer than 0",
                  "t.lua:1: cluster \"a\": 'limits' must be a table, not a number");
    /* from a plugin: nodus_cfg_next_str on a non-string value */
    expect_errors(CLUSTER_A
                  "listener \"in\" { listen = \":1\",\n"
                  "  plugins = { thdr { set = { a = {} } }, troute { cluster = \"a\" } } }\n",
                  "t.lua:3: listener \"in\": plugins[1] (thdr): set: 'a' must be a string, not a "
                  "table");
}

static void test_error_duplicates(void **state)
{
    (void)state;
    expect_errors(CLUSTER_A "node { }\n" CLUSTER_A,
                  "t.lua:3: cluster \"a\": duplicate name (first declared at line 1)");
    expect_errors("node { }\nnode { }\nadmin { listen = \":1\" }\nadmin { listen = \":2\" }\n",
                  "t.lua:2: node: declared twice (first at line 1)",
                  "t.lua:4: admin: declared twice (first at line 3)");
    expect_errors(CLUSTER_A
                  "listener \"l\" { listen = \":1\", plugins = { troute { cluster = \"a\" "
                  "} } }\n"
                  "listener \"l\" { listen = \":2\", plugins = { troute { cluster = \"a\" "
                  "} } }\n"
                  "listener \"m\" { listen = \"0.0.0.0:1\", plugins = { troute { cluster "
                  "= \"a\" } } }\n",
                  "t.lua:3: listener \"l\": duplicate name (first declared at line 2)",
                  "t.lua:4: listener \"m\": 0.0.0.0:1 is already the address of listener \"l\"");
}

static void test_error_unknown_cluster(void **state)
{
    (void)state;
    expect_errors(CLUSTER_A "listener \"in\" { listen = \":8080\",\n"
                            "  plugins = {\n"
                            "    troute { cluster = \"nope\" },\n"
                            "  } }\n",
                  "t.lua:4: listener \"in\": plugins[1] (troute): unknown cluster 'nope'");
    /* clusters declared after the listener are found: clusters are built first */
    nd_config_free(
        load_ok("listener \"in\" { listen = \":8080\", plugins = { troute { cluster = "
                "\"late\" } } }\ncluster \"late\" { endpoints = { \"127.0.0.1:1\" } }\n"));
    expect_errors(CLUSTER_A
                  "listener \"t\" { listen = \":1\", protocol = \"tcp\", cluster = \"b\" }\n",
                  "t.lua:2: listener \"t\": unknown cluster 'b'");
}

static void test_error_chain(void **state)
{
    (void)state;
    expect_error_prefix(CLUSTER_A "listener \"in\" { listen = \":8080\",\n"
                                  "  plugins = { thdr { } } }\n",
                        "t.lua:2: listener \"in\": the plugin chain must end with ", "troute");
    expect_error_prefix(CLUSTER_A "listener \"in\" { listen = \":8080\" }\n",
                        "t.lua:2: listener \"in\": the plugin chain must end with ", "troute");
    expect_errors(CLUSTER_A "listener \"in\" { listen = \":8080\",\n"
                            "  plugins = { troute { cluster = \"a\" },\n"
                            "              troute { cluster = \"a\" } } }\n",
                  "t.lua:3: listener \"in\": plugins[1] (troute): troute ends the chain: it must "
                  "be last");
    expect_errors(CLUSTER_A "listener \"in\" { listen = \":8080\",\n"
                            "  plugins = { thdr {}, tstream {}, troute { cluster = \"a\" } } }\n",
                  "t.lua:3: listener \"in\": plugins[2] (tstream): stream plugins must come "
                  "before HTTP plugins");
    expect_errors(CLUSTER_A
                  "listener \"t\" { listen = \":1\", protocol = \"tcp\", cluster = \"a\",\n"
                  "  xff = true, plugins = { tstream {}, thdr {} } }\n",
                  "t.lua:2: listener \"t\": 'xff' applies only to protocol = \"http\"",
                  "t.lua:3: listener \"t\": plugins[2] (thdr): a tcp listener takes only stream "
                  "plugins");
    expect_errors(CLUSTER_A "listener \"in\" { listen = \":8080\",\n"
                            "  plugins = { \"troute\", troute { cluster = \"a\" } } }\n",
                  "t.lua:2: listener \"in\": plugins[1]: expected a plugin such as router { ... }, "
                  "not string");
    expect_errors(CLUSTER_A "listener \"in\" { listen = \":8080\", cluster = \"a\",\n"
                            "  plugins = { troute \"a\" } }\n",
                  "t.lua:2: listener \"in\": 'cluster' applies only to protocol = \"tcp\" (HTTP "
                  "listeners route with their terminal plugin)",
                  "t.lua:3: troute: expected a table: troute { ... }");
}

/* The configuration of an entry of a route's handle, for instance inst, or NULL. */
static const char *route_conf_of(const struct nodus_route_config *rc, unsigned inst, bool *own)
{
    for (unsigned i = 0; rc && i < rc->n; i++)
        if (rc->e[i].inst == inst) {
            *own = rc->e[i].own;
            return rc->e[i].conf;
        }
    return NULL;
}

/* Per-route configuration: keys of router routes and virtual hosts named after a plugin of the
 * chain go to that plugin's configure_route(); a virtual host's apply to its routes that do not
 * override them; everything is freed with the configuration. */
static void test_route_config(void **state)
{
    struct nd_config *cfg;
    const struct nd_listener_conf *lc;
    const struct nodus_route_config *rc, *handles[8];
    unsigned n = 0;
    bool own = false;

    (void)state;
    route_confs_freed = 0;
    cfg = load_ok(CLUSTER_A
                  "listener \"in\" { listen = \":8080\", plugins = {\n"
                  "  tpr {}, ratelimit { tokens = 10, interval = \"1s\" },\n"
                  "  router { virtual_hosts = { { domains = { \"*\" },\n"
                  "    tpr = { v = \"vhost\" }, ratelimit = { tokens = 5, interval = \"1s\" },\n"
                  "    routes = {\n"
                  "      { match = { prefix = \"/a\" }, cluster = \"a\", tpr = { v = \"a\" } },\n"
                  "      { match = { prefix = \"/b\" }, cluster = \"a\",\n"
                  "        ratelimit = { tokens = 1, interval = \"1s\" } },\n"
                  "      { match = { prefix = \"/\" }, cluster = \"a\" } } } } } } }\n"
                  "listener \"only\" { listen = \":8081\", plugins = { ratelimit {},\n"
                  "  router { { match = { prefix = \"/x\" }, cluster = \"a\",\n"
                  "             ratelimit = { tokens = 1, interval = \"1s\" } },\n"
                  "           { match = { prefix = \"/\" }, cluster = \"a\" } } } }\n");
    lc = &cfg->listeners[0];
    for (rc = lc->route_confs; rc; rc = rc->next)
        handles[n++] = rc;
    /* newest first: route /b (its ratelimit, the virtual host's tpr), route /a (its tpr, the
     * virtual host's ratelimit), the virtual host (both); route / has none of its own and
     * uses the virtual host's handle */
    assert_int_equal(n, 3);
    assert_int_equal(handles[2]->n, 2);
    assert_string_equal(route_conf_of(handles[2], 0, &own), "vhost");
    assert_true(own);
    assert_non_null(route_conf_of(handles[2], 1, &own));
    assert_string_equal(route_conf_of(handles[1], 0, &own), "a");
    assert_true(own);
    assert_ptr_equal(route_conf_of(handles[1], 1, &own), route_conf_of(handles[2], 1, &own));
    assert_false(own);
    assert_string_equal(route_conf_of(handles[0], 0, &own), "vhost");
    assert_false(own);
    assert_ptr_not_equal(route_conf_of(handles[0], 1, &own), route_conf_of(handles[2], 1, &own));
    assert_true(own);
    assert_int_equal(lc->plugins[0].route_confs, 2);
    assert_int_equal(lc->plugins[1].route_confs, 2);
    /* a ratelimit with no limit of its own, and one route with some */
    assert_int_equal(cfg->listeners[1].plugins[0].route_confs, 1);
    nd_config_free(cfg);
    assert_int_equal(route_confs_freed, 2);

    /* errors: file:line of the router and the route's path; the plugin must be in the chain,
     * take per-route configuration, and be there once; a ratelimit with no limit anywhere */
    expect_errors(
        CLUSTER_A
        "listener \"in\" { listen = \":8080\", plugins = {\n"
        "  ratelimit { tokens = 10, interval = \"1s\" }, thdr {},\n"
        "  router {\n"
        "    { match = { prefix = \"/a\" }, cluster = \"a\",\n"
        "      ratelimit = { tokens = 2, fill = 3, interval = \"1s\" } },\n"
        "    { match = { prefix = \"/b\" }, cluster = \"a\", ratelimit = {} },\n"
        "    { match = { prefix = \"/c\" }, cluster = \"a\", thdr = {}, tpr = {} },\n"
        "    { match = { prefix = \"/\" }, cluster = \"a\", ratelimit = 5 } } } }\n"
        "listener \"two\" { listen = \":8081\", plugins = { ratelimit {},\n"
        "  ratelimit { tokens = 1, interval = \"1s\" },\n"
        "  router { { match = { prefix = \"/\" }, cluster = \"a\",\n"
        "             ratelimit = { tokens = 1, interval = \"1s\" } } } } }\n"
        "listener \"none\" { listen = \":8082\", plugins = { ratelimit { shadow = true },\n"
        "  router { { match = { prefix = \"/\" }, cluster = \"a\" } } } }\n",
        "t.lua:4: listener \"in\": plugins[3] (router): [1].ratelimit: fill (3) is larger than "
        "tokens (2): the bucket holds tokens at most",
        "t.lua:4: listener \"in\": plugins[3] (router): [2].ratelimit: no limit: give "
        "tokens/fill/interval, or descriptors, or both",
        "t.lua:4: listener \"in\": plugins[3] (router): [3]: 'thdr': the thdr plugin takes no "
        "per-route configuration",
        "t.lua:4: listener \"in\": plugins[3] (router): [3]: 'tpr': this listener has no tpr "
        "plugin before router",
        "t.lua:4: listener \"in\": plugins[3] (router): [4]: 'ratelimit' must be a table, not a "
        "number",
        "t.lua:12: listener \"two\": plugins[3] (router): [1]: 'ratelimit': this listener has 2 "
        "ratelimit plugins: which one is meant?",
        "t.lua:14: listener \"none\": plugins[1] (ratelimit): no limit: give tokens/fill/interval, "
        "descriptors or global, here or on routes of the router (ratelimit = { ... } in a "
        "route)");
}

static void test_error_lua(void **state)
{
    (void)state;
    /* syntax: Lua's message, at its line */
    expect_errors("node {\n  name = \"x\"\n  workers = 2\n}\n",
                  "t.lua:3: '}' expected (to close '{' at line 1) near 'workers'");
    /* runtime */
    expect_errors("node { }\nlocal x\nx.y = 1\n",
                  "t.lua:3: attempt to index a nil value (local 'x')");
    expect_errors("error(\"custom failure\")\n", "t.lua:1: custom failure");
    expect_errors("\n\nerror({})\n", "t.lua:3: (error object is a table value)");
    expect_errors("error(\"no position\", 0)\n", "t.lua:1: no position");
    /* a compiled chunk is refused */
    expect_error_prefix("\x1bLua", "t.lua: attempt to load a binary chunk", NULL);
}

static void test_error_budgets(void **state)
{
    (void)state;
    expect_errors("node { }\nwhile true do end\n",
                  "t.lua:2: configuration script exceeds its instruction budget");
    /* pcall cannot swallow it */
    expect_errors("while true do\n  pcall(function() while true do end end)\nend\n",
                  "t.lua:2: configuration script exceeds its instruction budget");
    expect_errors("local function f() return f() end\nf()\n",
                  "t.lua:1: configuration script exceeds its instruction budget");
    /* memory */
    expect_errors("node { }\nlocal s = string.rep(\"x\", 1 << 27)\n",
                  "t.lua:2: configuration script exceeds its memory budget");
    expect_errors("local t = {}\nlocal s = \"0123456789abcdef\"\n"
                  "for i = 1, 100 do\n  s = s .. s\n  t[i] = s\nend\n",
                  "t.lua:4: configuration script exceeds its memory budget");
    /* work inside library functions is charged */
    expect_error_prefix("local s = string.rep(\"a\", 3000)\nlocal x = s:find(\".-.-.-.-b\")\n",
                        "t.lua:2: string pattern too costly for the configuration sandbox", NULL);
    expect_errors("local t = {}\nfor i = 1, 4000 do t[i] = i end\n"
                  "for i = 1, 100000 do table.insert(t, 1, 0); table.remove(t, 1) end\n",
                  "t.lua:3: configuration script exceeds its instruction budget");
    expect_errors("local x = string.rep(\"\", 1 << 40)\nassert(x == \"\")\n"
                  "table.move({}, 1, 1 << 40, 2)\n",
                  "t.lua:3: configuration script exceeds its instruction budget");
    expect_errors("local t = setmetatable({}, { __len = function() return 1 << 40 end })\n"
                  "table.insert(t, 1, 1)\n",
                  "t.lua:2: table.insert: tables with a __len metamethod are not supported here");
    expect_errors("setmetatable({}, { __gc = function() while true do end end })\n",
                  "t.lua:1: __gc metamethods are not available in configuration scripts");
}

static void test_budget_limits(void **state)
{
    struct nd_config_limits lim = {.max_instructions = 20000};

    (void)state;
    nd_config_set_limits(&lim);
    expect_errors("for i = 1, 100000 do end\n",
                  "t.lua:1: configuration script exceeds its instruction budget");
    nd_config_free(load_ok("for i = 1, 1000 do end\n"));
    lim.max_instructions = 0;
    lim.max_memory = 1 << 20;
    nd_config_set_limits(&lim);
    expect_errors("local t = {}\nfor i = 1, 1000 do t[i] = string.rep(\"y\", 1000) .. i end\n",
                  "t.lua:2: configuration script exceeds its memory budget");
    nd_config_set_limits(NULL);
    nd_config_free(load_ok("for i = 1, 100000 do end\n"));
}

static void test_error_sandbox(void **state)
{
    (void)state;
    expect_errors("local f = io.open(\"/etc/passwd\")\n",
                  "t.lua:1: unknown directive or variable 'io'");
    expect_errors("node { }\nos.execute(\"true\")\n",
                  "t.lua:2: unknown directive or variable 'os'");
    expect_errors("require(\"socket\")\n", "t.lua:1: unknown directive or variable 'require'");
    expect_errors("load(\"return 1\")\n", "t.lua:1: unknown directive or variable 'load'");
    expect_errors("dofile(\"/etc/passwd\")\n", "t.lua:1: unknown directive or variable 'dofile'");
    expect_errors("local d = debug\n", "t.lua:1: unknown directive or variable 'debug'");
    expect_errors("collectgarbage()\n", "t.lua:1: unknown directive or variable 'collectgarbage'");
    expect_errors("local c = coroutine\n", "t.lua:1: unknown directive or variable 'coroutine'");
    expect_errors("local g = _G\n", "t.lua:1: unknown directive or variable '_G'");
    expect_errors("local f = string.dump\nf(print)\n",
                  "t.lua:2: attempt to call a nil value (local 'f')");
    expect_errors("setmetatable(_ENV, nil)\n", "t.lua:1: cannot change a protected metatable");
}

static void test_error_directive_misuse(void **state)
{
    (void)state;
    expect_errors("node \"x\"\n", "t.lua:1: node: expected a table: node { name = \"...\" }");
    expect_errors("cluster { endpoints = {} }\n",
                  "t.lua:1: cluster: expected a name: cluster \"name\" { ... }");
    expect_errors("local c = cluster \"a\"\n",
                  "t.lua:1: cluster \"a\": expected a table: cluster \"a\" { endpoints = ... }");
    expect_errors("cluster \"a b\" { endpoints = { \"127.0.0.1:1\" } }\n",
                  "t.lua:1: cluster \"a b\": a name is 1 to 128 letters, digits, '.', '_' or '-'");
    expect_errors("cluster \"a\" { }\ncluster \"b\" { endpoints = {} }\n",
                  "t.lua:1: cluster \"a\": 'endpoints' is required, e.g. endpoints = { "
                  "\"127.0.0.1:9001\" }",
                  "t.lua:2: cluster \"b\": 'endpoints' must not be empty");
    expect_errors(CLUSTER_A "listener \"l\" { protocol = \"udp\",\n"
                            "  plugins = { troute { cluster = \"a\" } } }\n",
                  "t.lua:2: listener \"l\": 'listen' is required, e.g. listen = \"0.0.0.0:8080\"",
                  "t.lua:2: listener \"l\": 'protocol' must be \"http\" or \"tcp\"");
}

/* Errors of every stage come together, sorted by line; at most 50. */
static void test_several_errors(void **state)
{
    struct nd_errors errs = {0};
    struct nd_config *cfg;

    (void)state;
    expect_errors("node { workers = 100, colour = \"red\" }\n"
                  "cluster \"a\" { endpoints = { \"127.0.0.1:1\" }, lb = 1 }\n"
                  "cluster \"a\" { endpoints = { \"127.0.0.1:2\" } }\n"
                  "listener \"in\" { listen = \":80\", plugins = {\n"
                  "  thdr { alow = 1 },\n"
                  "  troute { cluster = \"zz\" } } }\n",
                  "t.lua:1: node: 'workers' must be an integer between 1 and 64",
                  "t.lua:1: node: unknown key 'colour'",
                  "t.lua:2: cluster \"a\": 'lb' must be a string, not a number",
                  "t.lua:3: cluster \"a\": duplicate name (first declared at line 2)",
                  "t.lua:5: listener \"in\": plugins[1] (thdr): unknown key 'alow'",
                  "t.lua:6: listener \"in\": plugins[2] (troute): unknown cluster 'zz'");

    cfg = load("for i = 1, 100 do cluster(\"c\" .. i) { endpoints = { \"bad\" } } end\n", &errs);
    assert_null(cfg);
    assert_int_equal(errs.n, 50);
    assert_string_equal(errs.msg[0], "t.lua:1: cluster \"c1\": endpoints[1]: \"bad\" is not an "
                                     "address such as \"127.0.0.1:9001\" or \"[::1]:9001\"");
    nd_errors_clear(&errs);
    assert_int_equal(errs.n, 0);
}

/* ---- files and plugins ----------------------------------------------------------------------- */

static void test_load_file(void **state)
{
    char dir[] = "/tmp/nodus-cfg-XXXXXX", path[256], so_err[512];
    struct nd_errors errs = {0};
    struct nd_config *cfg;
    FILE *f;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/mesh.lua", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("node { name = \"n1\" }\n" CLUSTER_A, f);
    fclose(f);
    cfg = nd_config_load(path, &errs);
    assert_non_null(cfg);
    assert_string_equal(cfg->file, path);
    assert_string_equal(cfg->node.name, "n1");
    nd_config_free(cfg);

    /* .so paths are relative to the file's directory; the failure names the file and the line */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("\nnode { plugins = { \"missing.so\" } }\n", f);
    fclose(f);
    cfg = nd_config_load(path, &errs);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    snprintf(so_err, sizeof(so_err),
             "%s:2: node: plugins[1]: %s/missing.so: cannot open plugin: No such file or "
             "directory",
             path, dir);
    assert_string_equal(errs.msg[0], so_err);
    nd_errors_clear(&errs);
    unlink(path);

    cfg = nd_config_load(path, &errs);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    snprintf(so_err, sizeof(so_err), "%s: cannot open: No such file or directory", path);
    assert_string_equal(errs.msg[0], so_err);
    nd_errors_clear(&errs);
    rmdir(dir);
}

static void test_plugin_registry(void **state)
{
    static const struct nodus_plugin bad_abi = {
        .abi = 999, .name = "future", .flags = NODUS_PLUGIN_HTTP, .http = &http_ops};
    static const struct nodus_plugin dup = {
        .abi = NODUS_PLUGIN_ABI, .name = "thdr", .flags = NODUS_PLUGIN_HTTP, .http = &http_ops};
    static const struct nodus_plugin reserved = {
        .abi = NODUS_PLUGIN_ABI, .name = "cluster", .flags = NODUS_PLUGIN_HTTP, .http = &http_ops};
    static const struct nodus_plugin badname = {
        .abi = NODUS_PLUGIN_ABI, .name = "Bad-Name", .flags = NODUS_PLUGIN_HTTP, .http = &http_ops};
    static const struct nodus_plugin noops = {
        .abi = NODUS_PLUGIN_ABI, .name = "noops", .flags = NODUS_PLUGIN_HTTP};
    static const struct nodus_plugin term_stream = {.abi = NODUS_PLUGIN_ABI,
                                                    .name = "tstr",
                                                    .flags =
                                                        NODUS_PLUGIN_STREAM | NODUS_PLUGIN_TERMINAL,
                                                    .stream = &stream_ops};
    static const struct nodus_plugin route_leak = {.abi = NODUS_PLUGIN_ABI,
                                                   .name = "rleak",
                                                   .flags = NODUS_PLUGIN_HTTP,
                                                   .http = &http_ops,
                                                   .configure_route = tpr_configure_route};

    (void)state;
    assert_int_equal(nodus_plugin_register(&route_leak), -1); /* no destroy_route */
    assert_int_equal(nodus_plugin_register(&bad_abi), -1);
    assert_null(nd_plugin_find("future"));
    assert_int_equal(nodus_plugin_register(&dup), -1);
    assert_ptr_equal(nd_plugin_find("thdr"), &thdr);
    assert_int_equal(nodus_plugin_register(&reserved), -1);
    assert_int_equal(nodus_plugin_register(&badname), -1);
    assert_int_equal(nodus_plugin_register(&noops), -1);
    assert_int_equal(nodus_plugin_register(&term_stream), -1);
    assert_int_equal(nodus_plugin_register(NULL), -1);
    assert_ptr_equal(nd_plugin_find("troute"), &troute);
    assert_null(nd_plugin_find("nope"));
    assert_null(nd_plugin_find(NULL));
    assert_true(nd_config_reserved_name("listener"));
    assert_true(nd_config_reserved_name("end"));
    assert_false(nd_config_reserved_name("router"));
}

static void count_plugin(const struct nodus_plugin *p, void *arg)
{
    if (p == &troute || p == &thdr || p == &tstream)
        (*(int *)arg)++;
}

static void test_plugin_each(void **state)
{
    int n = 0;

    (void)state;
    nd_plugin_each(count_plugin, &n);
    assert_int_equal(n, 3);
}

static void test_plugin_load_so(void **state)
{
    char *err = NULL;

    (void)state;
    assert_int_equal(nd_plugin_load_so("/nonexistent/x.so", &err), -1);
    assert_non_null(err);
    assert_string_equal(err, "/nonexistent/x.so: cannot open plugin: No such file or directory");
    free(err);
    err = NULL;

    assert_int_equal(nd_plugin_load_so("/lib/x86_64-linux-gnu/libm.so.6", &err), -1);
    assert_non_null(err);
    assert_string_equal(err, "/lib/x86_64-linux-gnu/libm.so.6: not a nodus plugin (it "
                             "registered no plugin)");
    free(err);
    err = NULL;

    /* a file that is not a shared object at all */
    {
        char path[] = "/tmp/nodus-notso-XXXXXX";
        int fd = mkstemp(path);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, "not ELF\n", 8), 8);
        close(fd);
        assert_int_equal(nd_plugin_load_so(path, &err), -1);
        assert_non_null(err);
        assert_non_null(strstr(err, path));
        free(err);
        unlink(path);
    }

    /* err may be NULL */
    assert_int_equal(nd_plugin_load_so("/nonexistent/y.so", NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_scripting),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_error_unknown_directive),
        cmocka_unit_test(test_error_unknown_key),
        cmocka_unit_test(test_error_wrong_type),
        cmocka_unit_test(test_dpdk_control_addresses),
        cmocka_unit_test(test_error_duplicates),
        cmocka_unit_test(test_error_unknown_cluster),
        cmocka_unit_test(test_error_chain),
        cmocka_unit_test(test_error_lua),
        cmocka_unit_test(test_error_budgets),
        cmocka_unit_test(test_budget_limits),
        cmocka_unit_test(test_error_sandbox),
        cmocka_unit_test(test_error_directive_misuse),
        cmocka_unit_test(test_several_errors),
        cmocka_unit_test(test_route_config),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_plugin_registry),
        cmocka_unit_test(test_plugin_each),
        cmocka_unit_test(test_plugin_load_so),
    };

    return cmocka_run_group_tests(tests, group_setup, NULL);
}
