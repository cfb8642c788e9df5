/*
 * sample: an out-of-tree plugin, built as a .so against include/nodus only (tests/meson.build
 * makes sample_plugin.so). It adds "x-sample: <value>" to every response and counts requests,
 * and (ABI 3's control side) counts its ticks on the main thread.
 * docs/plugins.md walks through it.
 *
 *   node { plugins = { "build/tests/sample_plugin.so" } }
 *   listener "web" { ..., plugins = { sample { value = "hello" }, router { ... } } }
 */
#include <stdlib.h>
#include <string.h>

#include <nodus/plugin.h>

/* What configure() builds: one per plugin instance, read-only once built. */
struct sample_conf {
    char *value;
    size_t len;
    nodus_counter_t requests, ticks;
};

static void sample_destroy(void *conf)
{
    struct sample_conf *sc = conf;

    if (sc)
        free(sc->value);
    free(sc);
}

static void *sample_configure(struct nodus_cfg *cfg)
{
    struct sample_conf *sc;
    const char *value = "1";

    /* -1: present but not a string; the host recorded the error */
    if (nodus_cfg_str(cfg, "value", &value) < 0)
        return NULL;
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            nodus_cfg_error(cfg, "value: no control characters in a header value");
            return NULL;
        }
    sc = calloc(1, sizeof(*sc));
    if (!sc || !(sc->value = strdup(value))) {
        nodus_cfg_error(cfg, "out of memory");
        sample_destroy(sc);
        return NULL;
    }
    sc->len = strlen(sc->value);
    /* idempotent: the same id at every reload; exported as nodus_plugin_sample_requests_total */
    sc->requests = nodus_counter("sample", "requests", "Requests seen by the sample plugin");
    sc->ticks = nodus_counter("sample", "ticks", "Control ticks of the sample plugin");
    return sc;
}

static int sample_request_headers(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    const struct sample_conf *sc = ctx->conf;

    (void)h;
    nodus_counter_add(ctx->worker_id, sc->requests, 1);
    return NODUS_CONTINUE;
}

static int sample_response_headers(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    const struct sample_conf *sc = ctx->conf;

    nodus_http_resp_header_add(h, "x-sample", sc->value, sc->len);
    return NODUS_CONTINUE;
}

static const struct nodus_http_ops sample_http = {
    .request_headers = sample_request_headers,
    .response_headers = sample_response_headers,
};

/* Main thread, every 100 ms while the configuration runs: counters from there use
 * NODUS_WORKER_MAIN. */
static void sample_tick(void *conf, uint64_t now_ms)
{
    const struct sample_conf *sc = conf;

    (void)now_ms;
    nodus_counter_add(NODUS_WORKER_MAIN, sc->ticks, 1);
}

static const struct nodus_control_ops sample_control = {.tick_ms = 100, .tick = sample_tick};

static const struct nodus_plugin sample_plugin = {
#ifdef SAMPLE_ABI /* tests build a copy that claims another ABI, to see it refused */
    .abi = SAMPLE_ABI,
#else
    .abi = NODUS_PLUGIN_ABI,
#endif
    .name = "sample",
    .description = "adds x-sample to responses (example of an out-of-tree plugin)",
    .flags = NODUS_PLUGIN_HTTP,
    .configure = sample_configure,
    .destroy = sample_destroy,
    .http = &sample_http,
    .control = &sample_control,
};

NODUS_PLUGIN(sample_plugin)
