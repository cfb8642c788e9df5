/*
 * mtls: the stream plugin that terminates mutual TLS on a listener (docs/mtls.md).
 *
 *   mtls { mode = "strict" | "permissive" | "disable",
 *          allow = { "spiffe://mesh.local/ns/web/sa/api", ... },  -- optional: allowed peer IDs
 *          alpn = "http/1.1", handshake_timeout = "10s", tls12 = false, tickets = true }
 *
 * It serves the node identity (identity { ... }): the identity builds one TLS server context per
 * mtls instance and swaps a new one in when the certificate changes (identity.c); each worker
 * keeps a reference to the current one and takes the slot's lock only when its generation moved.
 *
 * Per connection (ctx->txn): the state, the TLS engine (allocated at the first TLS byte, freed
 * at close: the engine's buffers plus wolfSSL's own), byte counts. Nothing is allocated per
 * request. strict: the first bytes must be a TLS handshake; the client's certificate must chain
 * to the mesh CA and carry a SPIFFE ID (in the allow list if there is one), which becomes the
 * connection's peer principal. permissive: a connection whose first bytes are not TLS is passed
 * through as plaintext. disable: everything is passed through.
 *
 * Every refusal is counted (refused_<reason>) and logged on one line with the peer's address
 * and the reason, at most LOG_PER_SEC lines per second and worker (the rest are counted in a
 * later line). handshake_timeout is a stream deadline (nodus_stream_set_deadline()), armed at
 * accept and cleared when the handshake is done or the connection is found to be plaintext: the
 * core closes a peer that sends nothing, or stops half way, when it passes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include <nodus/plugin.h>

#include "ca.h"
#include "identity.h"
#include "tls.h"
#include "tls_layer.h"

#define LOG_PER_SEC 100
#define READ_CHUNK 16384

enum mode { M_STRICT, M_PERMISSIVE, M_DISABLE };
static const char *const mode_names[] = {"strict", "permissive", "disable"};

/* Refusal reasons: the first ones are nd_tls_error_reason()'s, the rest the plugin's own. */
static const char *const reasons[] = {
    "protocol",           "not_tls",   "no_client_cert", "untrusted_cert", "expired_cert",
    "cert_not_yet_valid", "bad_cert",  "peer_id",        "alert",          "truncated",
    "internal",           "plaintext", "timeout",        "no_identity",
};
#define N_REASONS (sizeof(reasons) / sizeof(reasons[0]))

struct mtls_conf {
    enum mode mode;
    char **allow;
    size_t nallow;
    char *alpn;
    uint64_t hs_timeout_ms;
    bool tls12;
    bool log_peers; /* log_peers: one info line per verified peer */
    bool tickets;   /* tickets: issue session tickets (resumption); off by default, see below */
    struct nd_identity_user user;
    nodus_counter_t handshakes, resumed, refused, plain_accepted, bytes_in, bytes_out, errors;
    nodus_counter_t refused_by[N_REASONS];
};

/* ctx->worker */
struct mtls_worker {
    struct nd_tls_ctx *ctx; /* this worker's reference to the slot's context */
    uint64_t gen;
    uint64_t log_sec; /* refusal log rate limit */
    unsigned logged, suppressed;
    char buf[READ_CHUNK]; /* plaintext out of the engine, pushed at once */
};

enum conn_state { ST_NEW = 0, ST_TLS, ST_PLAIN, ST_FAILED };

/* ctx->txn (zeroed at accept) */
struct mtls_conn {
    struct nd_tls *t;
    uint8_t state;
    bool seen; /* some bytes arrived */
    uint64_t bytes_in, bytes_out;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* vDSO: no system call */
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- configuration ------------------------------------------------------------------------- */

static void mtls_destroy(void *p)
{
    struct mtls_conf *mc = p;

    if (!mc)
        return;
    nd_identity_detach(&mc->user);
    for (size_t i = 0; i < mc->nallow; i++)
        free(mc->allow[i]);
    free(mc->allow);
    free(mc->alpn);
    free(mc);
}

static bool read_allow(struct nodus_cfg *cfg, struct mtls_conf *mc)
{
    struct nodus_cfg *t;
    const char *s, *why = "";
    size_t n;
    int r = nodus_cfg_table(cfg, "allow", &t);

    if (r <= 0)
        return r == 0;
    n = nodus_cfg_len(t);
    if (n == 0 || n > ND_TLS_MAX_PEER_IDS) {
        nodus_cfg_error(cfg,
                        "'allow' lists 1 to %d SPIFFE IDs (leave it out to allow every ID "
                        "of the trust domain)",
                        ND_TLS_MAX_PEER_IDS);
        return false;
    }
    if (!(mc->allow = calloc(n, sizeof(char *)))) {
        nodus_cfg_error(cfg, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        size_t l;

        r = nodus_cfg_str_at(t, i, &s);
        if (r == 0)
            nodus_cfg_error(t, "[%zu]: expected a SPIFFE ID (a string)", i + 1);
        if (r != 1)
            return false;
        l = strlen(s);
        if (l >= 2 && s[l - 1] == '*' && s[l - 2] == '/')
            l -= 2; /* "spiffe://td/ns/prod/" + "*": a path prefix */
        if (nd_ca_spiffe_check(s, l, 0, NULL, &why) < 0) {
            nodus_cfg_error(t, "[%zu]: \"%s\" is not a SPIFFE ID or a prefix ending in /*: %s",
                            i + 1, s, why);
            return false;
        }
        if (!(mc->allow[i] = strdup(s))) {
            nodus_cfg_error(cfg, "out of memory");
            return false;
        }
        mc->nallow++;
    }
    return true;
}

/* "h2,http/1.1": 1..255 bytes, no empty protocol. */
static bool valid_alpn(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 255 || s[0] == ',' || s[n - 1] == ',' || strstr(s, ",,"))
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static void register_counters(struct mtls_conf *mc)
{
    char name[64], help[128];

    mc->handshakes =
        nodus_counter("mtls", "handshakes", "TLS handshakes completed (peer verified)");
    mc->resumed = nodus_counter("mtls", "resumed", "Handshakes that resumed a session (ticket)");
    mc->refused = nodus_counter("mtls", "refused", "Connections refused, all reasons");
    mc->plain_accepted = nodus_counter("mtls", "plaintext_accepted",
                                       "Plaintext connections passed by a permissive listener");
    mc->bytes_in = nodus_counter("mtls", "bytes_in", "TLS bytes received (ciphertext)");
    mc->bytes_out = nodus_counter("mtls", "bytes_out", "TLS bytes sent (ciphertext)");
    mc->errors = nodus_counter("mtls", "errors", "TLS errors after the handshake");
    for (size_t i = 0; i < N_REASONS; i++) {
        snprintf(name, sizeof(name), "refused_%s", reasons[i]);
        snprintf(help, sizeof(help), "Connections refused: %s", reasons[i]);
        mc->refused_by[i] = nodus_counter("mtls", name, help);
    }
}

static void *mtls_configure(struct nodus_cfg *cfg)
{
    struct mtls_conf *mc = calloc(1, sizeof(*mc));
    const char *s;
    bool ok = true;
    int r;

    if (!mc) {
        nodus_cfg_error(cfg, "out of memory");
        return NULL;
    }
    mc->mode = M_STRICT;
    mc->hs_timeout_ms = 10000;
    mc->tickets = true; /* resumption: docs/mtls.md, "Session tickets" */
    if (nodus_cfg_str(cfg, "mode", &s) == 1) {
        for (mc->mode = 0; mc->mode <= M_DISABLE && strcmp(mode_names[mc->mode], s); mc->mode++)
            ;
        if (mc->mode > M_DISABLE) {
            nodus_cfg_error(cfg, "'mode' must be \"strict\", \"permissive\" or \"disable\"");
            ok = false;
        }
    }
    ok &= read_allow(cfg, mc);
    if ((r = nodus_cfg_str(cfg, "alpn", &s)) == 1) {
        if (!valid_alpn(s)) {
            nodus_cfg_error(cfg, "'alpn' must be a comma-separated list of protocols, such as "
                                 "\"h2,http/1.1\"");
            ok = false;
        } else if (!(mc->alpn = strdup(s))) {
            ok = false;
        }
    }
    ok &= r >= 0;
    if ((r = nodus_cfg_duration(cfg, "handshake_timeout", &mc->hs_timeout_ms)) == 1 &&
        (mc->hs_timeout_ms == 0 || mc->hs_timeout_ms > 3600000)) {
        nodus_cfg_error(cfg, "'handshake_timeout' must be longer than 0 and at most 1h");
        ok = false;
    }
    ok &= r >= 0;
    ok &= nodus_cfg_bool(cfg, "tls12", &mc->tls12) >= 0;
    ok &= nodus_cfg_bool(cfg, "log_peers", &mc->log_peers) >= 0;
    ok &= nodus_cfg_bool(cfg, "tickets", &mc->tickets) >= 0;
    if (!ok) {
        mtls_destroy(mc);
        return NULL;
    }
    register_counters(mc);
    if (mc->mode != M_DISABLE) {
        mc->user.flags =
            (mc->tls12 ? ND_TLS_ALLOW_TLS12 : 0) | (mc->tickets ? 0 : ND_TLS_NO_TICKETS);
        mc->user.peer_ids = (const char *const *)mc->allow;
        mc->user.n_peer_ids = mc->nallow;
        mc->user.alpn = mc->alpn;
        nd_identity_attach(&mc->user);
    }
    return mc;
}

bool nd_mtls_needs_identity(const void *conf, const char **mode)
{
    const struct mtls_conf *mc = conf;

    if (!mc)
        return false;
    *mode = mode_names[mc->mode];
    return mc->mode != M_DISABLE;
}

/* wolfSSL's ECC fixed-point cache (FP_ECC) is thread-local and never freed on its own: each
 * worker thread that ran handshakes frees its cache when it exits. */
static pthread_key_t fp_key;
static pthread_once_t fp_once = PTHREAD_ONCE_INIT;

static void fp_free(void *unused)
{
    (void)unused;
    wc_ecc_fp_free();
}

static void fp_key_init(void)
{
    pthread_key_create(&fp_key, fp_free);
}

static void *mtls_worker_init(void *conf, unsigned worker_id)
{
    (void)conf;
    (void)worker_id;
    pthread_once(&fp_once, fp_key_init);
    pthread_setspecific(fp_key, &fp_key); /* any non-NULL value: the destructor runs at exit */
    return calloc(1, sizeof(struct mtls_worker));
}

static void mtls_worker_fini(void *conf, void *worker)
{
    struct mtls_worker *w = worker;

    (void)conf;
    if (w)
        nd_tls_ctx_unref(w->ctx);
    free(w);
}

/* The current context: the worker's reference, renewed when the slot's generation moved. */
static struct nd_tls_ctx *worker_ctx(struct mtls_conf *mc, struct mtls_worker *w)
{
    uint64_t gen = nd_tls_slot_generation(&mc->user.slot);

    if (gen != w->gen) {
        nd_tls_ctx_unref(w->ctx);
        w->ctx = nd_tls_slot_get(&mc->user.slot);
        w->gen = w->ctx ? nd_tls_ctx_generation(w->ctx) : 0;
    }
    return w->ctx;
}

/* ---- refusals ------------------------------------------------------------------------------ */

static size_t reason_index(const char *reason)
{
    for (size_t i = 0; i < N_REASONS; i++)
        if (strcmp(reasons[i], reason) == 0)
            return i;
    return 10; /* internal */
}

/* Counts and logs a refused connection (one line: the peer, the reason, a description). */
static void refuse(struct nodus_stream *s, const struct nodus_ctx *ctx, struct mtls_conn *c,
                   const char *reason, const char *detail)
{
    const struct mtls_conf *mc = ctx->conf;
    struct mtls_worker *w = ctx->worker;
    struct nodus_slice peer = nodus_stream_peer_addr(s);
    uint64_t sec = now_ms() / 1000;

    c->state = ST_FAILED;
    nodus_counter_add(ctx->worker_id, mc->refused, 1);
    nodus_counter_add(ctx->worker_id, mc->refused_by[reason_index(reason)], 1);
    if (w && sec != w->log_sec) {
        if (w->suppressed)
            nodus_log(NODUS_LOG_WARN, "mtls: %u more refusals not logged (rate limit)",
                      w->suppressed);
        w->log_sec = sec;
        w->logged = w->suppressed = 0;
    }
    if (w && w->logged >= LOG_PER_SEC) {
        w->suppressed++;
        return;
    }
    if (w)
        w->logged++;
    nodus_log(NODUS_LOG_WARN, "mtls: refused %.*s (%s): %s: %s", (int)peer.len, peer.p,
              mode_names[mc->mode], reason, detail);
}

/* ---- moving bytes -------------------------------------------------------------------------- */

/* Hands what the engine wrote to the network side. */
static int flush_out(struct nodus_stream *s, struct mtls_conn *c)
{
    return nd_tls_layer_push_out(s, c->t, &c->bytes_out);
}

static int handshake_done(struct nodus_stream *s, const struct nodus_ctx *ctx, struct mtls_conn *c)
{
    const struct mtls_conf *mc = ctx->conf;
    size_t len;
    const char *id = nd_tls_peer_id(c->t, &len);

    if (!id || nodus_stream_set_peer_principal(s, id, len) < 0) {
        refuse(s, ctx, c, "peer_id", "the peer's SPIFFE ID is too long to be its principal");
        return -1;
    }
    nodus_stream_set_deadline(s, 0);
    nodus_counter_add(ctx->worker_id, mc->handshakes, 1);
    if (nd_tls_resumed(c->t))
        nodus_counter_add(ctx->worker_id, mc->resumed, 1);
    if (mc->log_peers) {
        struct nodus_slice peer = nodus_stream_peer_addr(s);
        const char *alpn = nd_tls_alpn(c->t);

        nodus_log(NODUS_LOG_INFO, "mtls: %.*s is %s (%s%s%s%s)", (int)peer.len, peer.p, id,
                  nd_tls_version(c->t), alpn ? ", alpn " : "", alpn ? alpn : "",
                  nd_tls_resumed(c->t) ? ", resumed" : "");
    }
    return 0;
}

/* Runs the handshake and decrypts what can be: 0, or -1 after a refusal or a fatal error. */
static int pump_in(struct nodus_stream *s, const struct nodus_ctx *ctx, struct mtls_conn *c,
                   struct mtls_worker *w)
{
    const struct mtls_conf *mc = ctx->conf;
    long n;

    for (;;) {
        if (nd_tls_state(c->t) == ND_TLS_HANDSHAKE) {
            int r = nd_tls_handshake(c->t);

            if (flush_out(s, c) < 0)
                return -1;
            if (r == ND_TLS_AGAIN)
                return 0;
            if (r < 0) {
                refuse(s, ctx, c, nd_tls_error_reason(c->t), nd_tls_error_text(c->t));
                return -1;
            }
            if (handshake_done(s, ctx, c) < 0)
                return -1;
        }
        n = nd_tls_read(c->t, w->buf, sizeof(w->buf));
        if (n > 0) {
            if (nodus_stream_push_in(s, w->buf, (size_t)n) < 0)
                return -1;
            continue;
        }
        if (flush_out(s, c) < 0)
            return -1;
        if (n == ND_TLS_AGAIN || n == ND_TLS_CLOSED) /* after close_notify the TCP end follows */
            return 0;
        nodus_counter_add(ctx->worker_id, mc->errors, 1);
        nodus_log(NODUS_LOG_INFO, "mtls: TLS error from %s: %s",
                  nd_tls_peer_id(c->t, NULL) ? nd_tls_peer_id(c->t, NULL) : "?",
                  nd_tls_error_text(c->t));
        c->state = ST_FAILED;
        return -1;
    }
}

/* First bytes: TLS, plaintext (permissive), or a refusal. 1 when TLS started, 0 when more bytes
 * are needed or the connection is plaintext, -1 when refused. */
static int start(struct nodus_stream *s, const struct nodus_ctx *ctx, struct mtls_conn *c,
                 const char *data, size_t len)
{
    struct mtls_conf *mc = ctx->conf;
    struct mtls_worker *w = ctx->worker;
    struct nd_tls_ctx *tctx;
    unsigned char b0 = (unsigned char)data[0];

    switch (nd_tls_sniff(data, len)) {
    case ND_TLS_SNIFF_MORE:
        return 0;
    case ND_TLS_SNIFF_PLAIN:
        if (mc->mode == M_PERMISSIVE) {
            c->state = ST_PLAIN;
            nodus_stream_set_deadline(s, 0);
            nodus_counter_add(ctx->worker_id, mc->plain_accepted, 1);
            return 0;
        }
        if ((b0 >= 'A' && b0 <= 'Z') || (b0 >= 'a' && b0 <= 'z'))
            refuse(s, ctx, c, "plaintext", "plaintext on a TLS-only (strict) listener");
        else
            refuse(s, ctx, c, "not_tls", "the first bytes are not a TLS handshake");
        return -1;
    default:
        break;
    }
    if (!w || !(tctx = worker_ctx(mc, w))) {
        refuse(s, ctx, c, w ? "no_identity" : "internal",
               w ? "no node certificate is loaded" : "out of memory");
        return -1;
    }
    if (!(c->t = nd_tls_new(tctx))) {
        refuse(s, ctx, c, "internal", "out of memory");
        return -1;
    }
    c->state = ST_TLS;
    return 1;
}

static int mtls_connect(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    const struct mtls_conf *mc = ctx->conf;
    struct mtls_conn *c = ctx->txn;

    c->state = mc->mode == M_DISABLE ? ST_PLAIN : ST_NEW;
    if (c->state == ST_NEW)
        nodus_stream_set_deadline(s, (uint32_t)mc->hs_timeout_ms);
    return NODUS_CONTINUE;
}

static long mtls_data_in(struct nodus_stream *s, const struct nodus_ctx *ctx, const char *data,
                         size_t len)
{
    struct mtls_conn *c = ctx->txn;
    uint64_t out0;
    size_t fed;

    if (c->state == ST_FAILED)
        return -1;
    if (c->state == ST_NEW) {
        c->seen = true;
        if (start(s, ctx, c, data, len) < 0)
            return -1;
    }
    if (c->state == ST_PLAIN)
        return nodus_stream_push_in(s, data, len) < 0 ? -1 : (long)len;
    if (c->state != ST_TLS)
        return 0; /* need more bytes to tell */
    out0 = c->bytes_out;
    fed = nd_tls_feed(c->t, data, len);
    c->bytes_in += fed;
    if (pump_in(s, ctx, c, ctx->worker) < 0) {
        /* a refusal that produced an alert (bad certificate...): consume, so that the alert
         * reaches the peer; the connection closes at the peer's next bytes or its end */
        return c->state == ST_FAILED && c->bytes_out > out0 && fed ? (long)fed : -1;
    }
    return (long)fed;
}

static long mtls_data_out(struct nodus_stream *s, const struct nodus_ctx *ctx, const char *data,
                          size_t len)
{
    const struct mtls_conf *mc = ctx->conf;
    struct mtls_conn *c = ctx->txn;
    long r;

    if (c->state == ST_PLAIN)
        return nodus_stream_push_out(s, data, len) < 0 ? -1 : (long)len;
    if (c->state == ST_FAILED)
        return -1;
    if (c->state != ST_TLS || nd_tls_state(c->t) == ND_TLS_HANDSHAKE)
        return 0; /* written once the handshake is done */
    r = nd_tls_layer_write(s, c->t, data, len, &c->bytes_out);
    if (r == ND_TLS_LAYER_E_TLS) {
        nodus_counter_add(ctx->worker_id, mc->errors, 1);
        c->state = ST_FAILED;
        return -1;
    }
    return r;
}

/* handshake_timeout passed (the core closes the connection next). */
static void mtls_timeout(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    struct mtls_conn *c = ctx->txn;

    if (c->state == ST_NEW)
        refuse(s, ctx, c, "timeout",
               c->seen ? "no complete TLS record header within handshake_timeout"
                       : "no byte within handshake_timeout");
    else if (c->state == ST_TLS && nd_tls_state(c->t) == ND_TLS_HANDSHAKE)
        refuse(s, ctx, c, "timeout", "the TLS handshake did not finish within handshake_timeout");
}

/* The connection ends on our side: close_notify before the FIN. */
static void mtls_shutdown(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    struct mtls_conn *c = ctx->txn;

    if (c->state == ST_TLS && nd_tls_state(c->t) == ND_TLS_OPEN &&
        nd_tls_shutdown(c->t) == ND_TLS_OK)
        flush_out(s, c);
}

static void mtls_close(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    const struct mtls_conf *mc = ctx->conf;
    struct mtls_conn *c = ctx->txn;

    if (c->state == ST_NEW && c->seen)
        refuse(s, ctx, c, "truncated", "the connection ended before a TLS record header");
    if (!c->t)
        return;
    if (c->state == ST_TLS && nd_tls_state(c->t) == ND_TLS_HANDSHAKE)
        refuse(s, ctx, c, "truncated", "the connection ended during the TLS handshake");
    nodus_counter_add(ctx->worker_id, mc->bytes_in, c->bytes_in);
    nodus_counter_add(ctx->worker_id, mc->bytes_out, c->bytes_out);
    nd_tls_free(c->t);
    c->t = NULL;
}

static const struct nodus_stream_ops mtls_stream = {
    .connect = mtls_connect,
    .data_in = mtls_data_in,
    .data_out = mtls_data_out,
    .close = mtls_close,
    .timeout = mtls_timeout,
    .shutdown = mtls_shutdown,
};

static const struct nodus_plugin mtls_plugin = {
    .abi = NODUS_PLUGIN_ABI,
    .name = "mtls",
    .description = "mutual TLS with SPIFFE identities on a listener (strict, permissive)",
    .flags = NODUS_PLUGIN_STREAM,
    .txn_size = sizeof(struct mtls_conn),
    .configure = mtls_configure,
    .destroy = mtls_destroy,
    .worker_init = mtls_worker_init,
    .worker_fini = mtls_worker_fini,
    .stream = &mtls_stream,
};

NODUS_PLUGIN(mtls_plugin)
