/*
 * libFuzzer target for the configuration loader (core/config.c, core/cfg_api.c): each input is
 * a configuration script, loaded with small budgets and .so loading disabled, then freed.
 * Three tiny plugins (a terminal one that looks clusters up, a map reader, a stream plugin)
 * give the listener chains something to configure. Besides the sanitizers, it checks the
 * loader's contract: a configuration xor 1..50 errors, every error prefixed with the file
 * name, and the invariants of a built configuration.
 *
 *   clang -fsanitize=fuzzer,address,undefined ... tests/fuzz/fuzz_config.c ...
 *   ./fuzz_config tests/fuzz/corpus/config -max_total_time=120
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfg_internal.h"
#include "config.h"
#include "log.h"
#include "plugin_host.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static int live; /* plugin configurations not yet destroyed */

static int nop_request(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    (void)h;
    (void)ctx;
    return NODUS_CONTINUE;
}

static long nop_data(struct nodus_stream *s, const struct nodus_ctx *ctx, const char *d, size_t n)
{
    (void)s;
    (void)ctx;
    (void)d;
    return (long)n;
}

static const struct nodus_http_ops http_ops = {.request_headers = nop_request};
static const struct nodus_stream_ops stream_ops = {.data_in = nop_data, .data_out = nop_data};

static void *conf_new(void)
{
    void *p = malloc(16);

    if (p)
        live++;
    return p;
}

static void conf_free(void *p)
{
    live--;
    free(p);
}

/* fz_route { cluster = "a", timeout = "1s", routes = { { prefix = "/", cluster = "b" } } } */
static void *route_configure(struct nodus_cfg *c)
{
    struct nodus_cfg *routes, *r;
    const char *s;
    uint64_t ms;
    bool ok = true;

    if (nodus_cfg_str(c, "cluster", &s) == 1) {
        struct nodus_cluster *cl = nodus_cluster_find(c, s);

        if (!cl) {
            nodus_cfg_error(c, "unknown cluster '%s'", s);
            ok = false;
        } else {
            CHECK(strcmp(nodus_cluster_name(cl), s) == 0);
        }
    }
    if (nodus_cfg_duration(c, "timeout", &ms) < 0)
        ok = false;
    if (nodus_cfg_table(c, "routes", &routes) == 1) {
        size_t n = nodus_cfg_len(routes);

        for (size_t i = 0; i < n && i < 32; i++) {
            long long w;

            if (nodus_cfg_at(routes, i, &r) != 1) {
                const char *str;

                if (nodus_cfg_str_at(routes, i, &str) < 0)
                    ok = false;
                continue;
            }
            if (nodus_cfg_str(r, "prefix", &s) < 0 || nodus_cfg_int(r, "weight", 0, 100, &w) < 0)
                ok = false;
            if (nodus_cfg_str(r, "cluster", &s) == 1 && !nodus_cluster_find(r, s)) {
                nodus_cfg_error(r, "unknown cluster '%s'", s);
                ok = false;
            }
        }
    }
    return ok ? conf_new() : NULL;
}

/* fz_hdr { set = { name = "value", ... }, on = true } */
static void *hdr_configure(struct nodus_cfg *c)
{
    struct nodus_cfg *set;
    const char *k, *v;
    size_t it = 0;
    bool b, ok = true;
    int r;

    if (nodus_cfg_table(c, "set", &set) == 1) {
        while ((r = nodus_cfg_next_str(set, &it, &k, &v)) != 0) {
            if (r < 0)
                ok = false;
            else
                CHECK(k && v);
        }
    }
    if (nodus_cfg_bool(c, "on", &b) < 0)
        ok = false;
    return ok ? conf_new() : NULL;
}

static void *stream_configure(struct nodus_cfg *c)
{
    long long n;

    (void)nodus_cfg_int(c, "n", -5, 5, &n);
    return conf_new();
}

static const struct nodus_plugin fz_route = {
    .abi = NODUS_PLUGIN_ABI,
    .name = "fz_route",
    .flags = NODUS_PLUGIN_HTTP | NODUS_PLUGIN_TERMINAL,
    .txn_size = 40,
    .configure = route_configure,
    .destroy = conf_free,
    .http = &http_ops,
};
static const struct nodus_plugin fz_hdr = {
    .abi = NODUS_PLUGIN_ABI,
    .name = "fz_hdr",
    .flags = NODUS_PLUGIN_HTTP,
    .txn_size = 8,
    .configure = hdr_configure,
    .destroy = conf_free,
    .http = &http_ops,
};
static const struct nodus_plugin fz_stream = {
    .abi = NODUS_PLUGIN_ABI,
    .name = "fz_stream",
    .flags = NODUS_PLUGIN_STREAM,
    .configure = stream_configure,
    .destroy = conf_free,
    .stream = &stream_ops,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const struct nd_config_limits lim = {
        .max_instructions = 200000,
        .max_memory = 8u << 20,
        .max_time_ms = 2000,
        .no_so = true,
    };

    (void)argc;
    (void)argv;
    nd_log_level = NODUS_LOG_ERR;
    nd_config_set_limits(&lim);
    nodus_plugin_register(&fz_route);
    nodus_plugin_register(&fz_hdr);
    nodus_plugin_register(&fz_stream);
    return 0;
}

static void check_config(const struct nd_config *cfg)
{
    CHECK(cfg->node.workers >= 1 && cfg->node.workers <= ND_MAX_WORKERS);
    CHECK(cfg->node.name && cfg->node.name[0]);
    for (unsigned i = 0; i < cfg->nclusters; i++) {
        const struct nd_cluster_conf *cc = &cfg->clusters[i];

        CHECK(cc->id == i && cc->neps > 0);
        CHECK(nd_config_cluster(cfg, cc->name) == cc);
        for (unsigned j = 0; j < cc->neps; j++)
            CHECK(cc->eps[j].weight >= 1 && cc->eps[j].addr.len > 0);
    }
    for (unsigned i = 0; i < cfg->nlisteners; i++) {
        const struct nd_listener_conf *lc = &cfg->listeners[i];
        size_t off = 0;

        CHECK(lc->id == i && lc->addr.len > 0);
        if (lc->proto == ND_PROTO_TCP) {
            CHECK(lc->tcp_cluster != NULL);
        } else {
            CHECK(lc->nplugins > 0);
            CHECK(lc->plugins[lc->nplugins - 1].p->flags & NODUS_PLUGIN_TERMINAL);
            CHECK(lc->limits.max_uri <= lc->limits.max_head);
        }
        for (unsigned j = 0; j < lc->nplugins; j++) {
            CHECK(lc->plugins[j].txn_off % 16 == 0 && lc->plugins[j].txn_off >= off);
            off = lc->plugins[j].txn_off;
        }
        CHECK(lc->txn_size % 16 == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nd_errors errs = {0};
    struct nd_config *cfg;
    int before = live;

    cfg = nd_config_load_string("fuzz.lua", (const char *)data, size, &errs);
    if (cfg) {
        CHECK(errs.n == 0);
        check_config(cfg);
        nd_config_free(cfg);
    } else {
        CHECK(errs.n >= 1 && errs.n <= ND_CFG_MAX_ERRORS);
        for (unsigned i = 0; i < errs.n; i++)
            CHECK(strncmp(errs.msg[i], "fuzz.lua", 8) == 0);
    }
    CHECK(live == before); /* every configured instance was destroyed */
    nd_errors_clear(&errs);
    return 0;
}
