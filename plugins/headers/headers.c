/*
 * headers: sets, adds and removes request and response headers, and counts what goes through.
 *
 * It is also the reference plugin (like HAProxy's flt_trace): it implements every hook of the
 * ABI, HTTP and stream, so tests use it to see that the host calls each hook, with the right
 * per-request / per-connection scratch and worker state. With trace = true it logs every call
 * at debug level. As a stream layer it shows the deadline calls of ABI 2: with
 * first_byte_timeout, a connection that sends nothing in time is closed (connect arms the
 * deadline, the first bytes clear it, the timeout hook counts and logs).
 *
 *   headers { request_set = { ["x-a"] = "1" }, request_add = { ... }, request_remove = { "x-b" },
 *             response_set = { ... }, response_add = { ... }, response_remove = { "server" },
 *             first_byte_timeout = "5s", trace = false }
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nodus/plugin.h>

struct hdr {
    char *name; /* lowercase */
    char *value;
    size_t vlen;
};

struct hdr_list {
    struct hdr *v;
    size_t n;
};

/* The edits of one direction, applied in this order: remove, set, add. */
struct hdr_edits {
    struct hdr_list remove, set, add;
};

struct headers_conf {
    struct hdr_edits req, resp;
    bool trace;
    uint32_t first_byte_ms; /* first_byte_timeout; 0: none */
    nodus_counter_t requests, req_bytes, resp_bytes;
    nodus_counter_t connections, closes, bytes_in, bytes_out, shutdowns, timeouts;
    nodus_counter_t worker_mismatch;
};

/* ctx->worker: what worker_init() made, checked by every hook. */
struct headers_worker {
    unsigned id;
    uint64_t timeouts; /* first_byte_timeout closes on this worker, for the log's rate */
};

/* ctx->txn: request and response body bytes of an exchange, or bytes in and out of a
 * connection. */
struct headers_txn {
    uint64_t in, out;
};

/* ---- configuration ---- */

/* RFC 9110 tchar */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c)))
            return false;
    }
    return true;
}

/* No control characters but HTAB, no leading or trailing whitespace. */
static bool is_value(const char *s)
{
    size_t n = strlen(s);

    if (n && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static char *lowercase_dup(const char *s)
{
    char *d = strdup(s);

    for (char *p = d; p && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + ('a' - 'A'));
    return d;
}

static void list_free(struct hdr_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        free(l->v[i].value);
    }
    free(l->v);
}

/* Appends name (checked, lowercased) and value (checked, may be NULL) to l; errors go to c, the
 * table holding them. */
static bool list_add(struct nodus_cfg *c, struct hdr_list *l, const char *name, const char *value)
{
    struct hdr *v, *h;

    if (!is_token(name)) {
        nodus_cfg_error(c, "\"%s\" is not a valid header name", name);
        return false;
    }
    if (value && !is_value(value)) {
        nodus_cfg_error(c, "the value of \"%s\" has control characters or surrounding blanks",
                        name);
        return false;
    }
    for (size_t i = 0; i < l->n; i++)
        if (strcasecmp(l->v[i].name, name) == 0) {
            nodus_cfg_error(c, "\"%s\" appears twice", name);
            return false;
        }
    v = realloc(l->v, (l->n + 1) * sizeof(*v));
    if (!v) {
        nodus_cfg_error(c, "out of memory");
        return false;
    }
    l->v = v;
    h = &l->v[l->n];
    *h = (struct hdr){.name = lowercase_dup(name), .value = value ? strdup(value) : NULL};
    h->vlen = value ? strlen(value) : 0;
    l->n++; /* counted even when a copy failed, so that list_free() frees it */
    if (!h->name || (value && !h->value)) {
        nodus_cfg_error(c, "out of memory");
        return false;
    }
    return true;
}

/* key = { ["name"] = "value", ... } */
static bool read_map(struct nodus_cfg *c, const char *key, struct hdr_list *l)
{
    struct nodus_cfg *t;
    size_t iter = 0;
    const char *name, *value;
    bool ok = true;
    int got = nodus_cfg_table(c, key, &t);

    if (got <= 0)
        return got == 0;
    if (nodus_cfg_len(t) > 0) {
        nodus_cfg_error(c, "%s is a map: { [\"x-name\"] = \"value\" }", key);
        ok = false;
    }
    while ((got = nodus_cfg_next_str(t, &iter, &name, &value)) == 1)
        ok &= list_add(t, l, name, value);
    return ok && got == 0;
}

/* key = { "name", ... } */
static bool read_names(struct nodus_cfg *c, const char *key, struct hdr_list *l)
{
    struct nodus_cfg *t;
    const char *name;
    bool ok = true;
    int got = nodus_cfg_table(c, key, &t);

    if (got <= 0)
        return got == 0;
    for (size_t i = 0, n = nodus_cfg_len(t); i < n; i++) {
        got = nodus_cfg_str_at(t, i, &name);
        if (got == 0)
            nodus_cfg_error(t, "[%zu]: expected a header name", i + 1);
        if (got == 1)
            ok &= list_add(t, l, name, NULL);
        else
            ok = false;
    }
    return ok;
}

/* Keys are literals: the host may keep the key strings it is given. */
static bool read_edits(struct nodus_cfg *c, const char *remove, const char *set, const char *add,
                       struct hdr_edits *e)
{
    bool ok = true;

    ok &= read_names(c, remove, &e->remove);
    ok &= read_map(c, set, &e->set);
    ok &= read_map(c, add, &e->add);
    return ok;
}

static void headers_destroy(void *conf)
{
    struct headers_conf *hc = conf;

    if (!hc)
        return;
    list_free(&hc->req.remove);
    list_free(&hc->req.set);
    list_free(&hc->req.add);
    list_free(&hc->resp.remove);
    list_free(&hc->resp.set);
    list_free(&hc->resp.add);
    free(hc);
}

static void *headers_configure(struct nodus_cfg *cfg)
{
    struct headers_conf *hc = calloc(1, sizeof(*hc));
    uint64_t ms;
    bool ok = true;

    if (!hc) {
        nodus_cfg_error(cfg, "out of memory");
        return NULL;
    }
    ok &= read_edits(cfg, "request_remove", "request_set", "request_add", &hc->req);
    ok &= read_edits(cfg, "response_remove", "response_set", "response_add", &hc->resp);
    ok &= nodus_cfg_bool(cfg, "trace", &hc->trace) >= 0;
    switch (nodus_cfg_duration(cfg, "first_byte_timeout", &ms)) {
    case 1:
        if (ms == 0 || ms > 3600 * 1000) {
            nodus_cfg_error(cfg, "'first_byte_timeout' must be between 1ms and 1h");
            ok = false;
        }
        hc->first_byte_ms = (uint32_t)ms;
        break;
    case -1:
        ok = false;
        break;
    }
    if (!ok) {
        headers_destroy(hc);
        return NULL;
    }
    hc->requests = nodus_counter("headers", "requests", "HTTP exchanges seen (log hook)");
    hc->req_bytes = nodus_counter("headers", "request_body_bytes", "Request body bytes seen");
    hc->resp_bytes = nodus_counter("headers", "response_body_bytes", "Response body bytes seen");
    hc->connections = nodus_counter("headers", "connections", "Connections accepted");
    hc->closes = nodus_counter("headers", "closes", "Connections closed");
    hc->bytes_in = nodus_counter("headers", "stream_bytes_in", "Bytes from the network side");
    hc->bytes_out = nodus_counter("headers", "stream_bytes_out", "Bytes to the network side");
    hc->shutdowns = nodus_counter("headers", "shutdowns", "Connections the node ended (shutdown)");
    hc->timeouts = nodus_counter("headers", "first_byte_timeouts",
                                 "Connections closed: nothing came within first_byte_timeout");
    hc->worker_mismatch = nodus_counter("headers", "worker_mismatch",
                                        "Hooks given another worker's state (a host bug)");
    return hc;
}

static void *headers_worker_init(void *conf, unsigned worker_id)
{
    struct headers_worker *w = calloc(1, sizeof(*w));

    (void)conf;
    if (w)
        w->id = worker_id;
    return w;
}

static void headers_worker_fini(void *conf, void *worker)
{
    (void)conf;
    free(worker);
}

/* ---- hooks ---- */

/* Checks that the host gave this worker's state, and traces the call. */
static void enter(const struct nodus_ctx *ctx, const char *hook)
{
    const struct headers_conf *hc = ctx->conf;
    const struct headers_worker *w = ctx->worker;

    if (w && w->id != ctx->worker_id)
        nodus_counter_add(ctx->worker_id, hc->worker_mismatch, 1);
    if (hc->trace)
        nodus_log(NODUS_LOG_DEBUG, "headers: %s (worker %u)", hook, ctx->worker_id);
}

typedef int (*edit_fn)(struct nodus_http *h, const char *name, const char *value, size_t vlen);
typedef int (*remove_fn)(struct nodus_http *h, const char *name);

/* A failed edit (the edit space is full) is answered 500 by the host: nothing to do here. */
static void apply(struct nodus_http *h, const struct hdr_edits *e, remove_fn rm, edit_fn set,
                  edit_fn add)
{
    for (size_t i = 0; i < e->remove.n; i++)
        rm(h, e->remove.v[i].name);
    for (size_t i = 0; i < e->set.n; i++)
        set(h, e->set.v[i].name, e->set.v[i].value, e->set.v[i].vlen);
    for (size_t i = 0; i < e->add.n; i++)
        add(h, e->add.v[i].name, e->add.v[i].value, e->add.v[i].vlen);
}

static int headers_request_headers(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    const struct headers_conf *hc = ctx->conf;

    enter(ctx, "request_headers");
    apply(h, &hc->req, nodus_http_req_header_remove, nodus_http_req_header_set,
          nodus_http_req_header_add);
    return NODUS_CONTINUE;
}

static int headers_request_body(struct nodus_http *h, const struct nodus_ctx *ctx, const char *data,
                                size_t len, bool end)
{
    struct headers_txn *tx = ctx->txn;

    (void)h;
    (void)data;
    (void)end;
    enter(ctx, "request_body");
    tx->in += len;
    return NODUS_CONTINUE;
}

static int headers_response_headers(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    const struct headers_conf *hc = ctx->conf;

    enter(ctx, "response_headers");
    apply(h, &hc->resp, nodus_http_resp_header_remove, nodus_http_resp_header_set,
          nodus_http_resp_header_add);
    return NODUS_CONTINUE;
}

static int headers_response_body(struct nodus_http *h, const struct nodus_ctx *ctx,
                                 const char *data, size_t len, bool end)
{
    struct headers_txn *tx = ctx->txn;

    (void)h;
    (void)data;
    (void)end;
    enter(ctx, "response_body");
    tx->out += len;
    return NODUS_CONTINUE;
}

static void headers_log(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    const struct headers_conf *hc = ctx->conf;
    const struct headers_txn *tx = ctx->txn;

    (void)h;
    enter(ctx, "log");
    nodus_counter_add(ctx->worker_id, hc->requests, 1);
    nodus_counter_add(ctx->worker_id, hc->req_bytes, tx->in);
    nodus_counter_add(ctx->worker_id, hc->resp_bytes, tx->out);
}

/* first_byte_timeout: armed here, cleared by the first bytes (data_in), or the timeout hook runs
 * and the core closes the connection. */
static int headers_connect(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    const struct headers_conf *hc = ctx->conf;

    enter(ctx, "connect");
    nodus_counter_add(ctx->worker_id, hc->connections, 1);
    if (hc->first_byte_ms)
        nodus_stream_set_deadline(s, hc->first_byte_ms); /* <= 1h: checked in configure() */
    return NODUS_CONTINUE;
}

static long headers_data_in(struct nodus_stream *s, const struct nodus_ctx *ctx, const char *data,
                            size_t len)
{
    const struct headers_conf *hc = ctx->conf;
    struct headers_txn *tx = ctx->txn;

    enter(ctx, "data_in");
    if (nodus_stream_push_in(s, data, len) < 0)
        return -1;
    if (hc->first_byte_ms && !tx->in && len)
        nodus_stream_set_deadline(s, 0);
    tx->in += len;
    return (long)len;
}

/* The deadline passed: count and log (the first time on a worker, then one line per 1000); the
 * core closes the connection after this returns. */
static void headers_timeout(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    const struct headers_conf *hc = ctx->conf;
    struct headers_worker *w = ctx->worker;
    struct nodus_slice peer = nodus_stream_peer_addr(s);

    enter(ctx, "timeout");
    nodus_counter_add(ctx->worker_id, hc->timeouts, 1);
    if (w && w->timeouts++ % 1000)
        return;
    nodus_log(NODUS_LOG_WARN,
              "headers: closed %.*s: nothing within first_byte_timeout (%u ms; %llu such "
              "connections on this worker)",
              (int)peer.len, peer.p, (unsigned)hc->first_byte_ms,
              (unsigned long long)(w ? w->timeouts : 1));
}

/* The node ends the connection: nothing to add to the stream, only counted. */
static void headers_shutdown(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    const struct headers_conf *hc = ctx->conf;

    (void)s;
    enter(ctx, "shutdown");
    nodus_counter_add(ctx->worker_id, hc->shutdowns, 1);
}

static long headers_data_out(struct nodus_stream *s, const struct nodus_ctx *ctx, const char *data,
                             size_t len)
{
    struct headers_txn *tx = ctx->txn;

    enter(ctx, "data_out");
    if (nodus_stream_push_out(s, data, len) < 0)
        return -1;
    tx->out += len;
    return (long)len;
}

static void headers_close(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    const struct headers_conf *hc = ctx->conf;
    const struct headers_txn *tx = ctx->txn;

    (void)s;
    enter(ctx, "close");
    nodus_counter_add(ctx->worker_id, hc->closes, 1);
    nodus_counter_add(ctx->worker_id, hc->bytes_in, tx->in);
    nodus_counter_add(ctx->worker_id, hc->bytes_out, tx->out);
}

static const struct nodus_http_ops headers_http = {
    .request_headers = headers_request_headers,
    .request_body = headers_request_body,
    .response_headers = headers_response_headers,
    .response_body = headers_response_body,
    .log = headers_log,
};

static const struct nodus_stream_ops headers_stream = {
    .connect = headers_connect,
    .data_in = headers_data_in,
    .data_out = headers_data_out,
    .close = headers_close,
    .timeout = headers_timeout,
    .shutdown = headers_shutdown,
};

static const struct nodus_plugin headers_plugin = {
    .abi = NODUS_PLUGIN_ABI,
    .name = "headers",
    .description = "set, add and remove request and response headers (implements every hook)",
    .flags = NODUS_PLUGIN_HTTP | NODUS_PLUGIN_STREAM | NODUS_WANT_REQUEST_BODY |
             NODUS_WANT_RESPONSE_BODY,
    .txn_size = sizeof(struct headers_txn),
    .configure = headers_configure,
    .destroy = headers_destroy,
    .worker_init = headers_worker_init,
    .worker_fini = headers_worker_fini,
    .http = &headers_http,
    .stream = &headers_stream,
};

NODUS_PLUGIN(headers_plugin)
