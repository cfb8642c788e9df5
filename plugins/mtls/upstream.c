/*
 * Upstream mutual TLS: what the core puts on connections to a cluster with tls = "mutual"
 * (core/config.h, struct nd_upstream_tls_provider). A client context per cluster, built by the
 * node identity like the listeners' (identity.h) and swapped on rotation; each connection runs a
 * wolfSSL client session through the stream layer: connect sends the ClientHello, data_in runs
 * the handshake and decrypts, data_out encrypts once the server is verified (its chain to the
 * mesh CA, its SPIFFE id against `expect`, or any id of the mesh when there is none).
 *
 * The handshake must finish within the cluster's handshake_timeout (a stream deadline: a server
 * that accepts TCP and says nothing is a connect failure, UF). Sessions resume: each worker keeps
 * the last ticket of each endpoint (per context generation) in a small table of its own (no
 * lock), and offers it on the next connection to that endpoint.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "config.h"
#include "identity.h"
#include "log.h"
#include "nodus/plugin.h"
#include "tls.h"
#include "tls_layer.h"

struct up_conf {
    struct nd_identity_user user;
    char *name; /* the cluster's, for messages */
    uint32_t hs_timeout_ms;
};

/* per connection (ctx->txn, zeroed) */
struct up_conn {
    struct nd_tls *t;
    uint64_t gen; /* the context's generation: the session cache key, with the address */
    bool failed, saved;
};

static __thread char up_tbuf[16384];

static nodus_counter_t c_full, c_resumed, c_timeouts;

/* ---- the session cache: per worker thread, SESS_SLOTS entries, least recently used out ------- */

#define SESS_SLOTS 64
#define SESS_ADDR 64

struct sess_slot {
    uint64_t gen; /* 0: empty */
    uint64_t used;
    struct nd_tls_session *sess;
    char addr[SESS_ADDR];
};

static __thread struct sess_slot sess_cache[SESS_SLOTS];
static __thread uint64_t sess_clock;
static __thread bool thread_seen;
static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

/* At the exit of a worker thread that made upstream connections: its cached sessions, and
 * wolfSSL's per-thread ECC fixed-point cache (FP_ECC, never freed by the library). */
static void thread_exit(void *unused)
{
    (void)unused;
    for (unsigned i = 0; i < SESS_SLOTS; i++) {
        nd_tls_session_free(sess_cache[i].sess);
        sess_cache[i] = (struct sess_slot){0};
    }
    wc_ecc_fp_free();
}

static void thread_key_init(void)
{
    pthread_key_create(&thread_key, thread_exit);
}

static void thread_enter(void)
{
    if (thread_seen)
        return;
    thread_seen = true;
    pthread_once(&thread_once, thread_key_init);
    pthread_setspecific(thread_key, &thread_seen); /* non-NULL: thread_exit runs at exit */
}

static struct sess_slot *sess_find(uint64_t gen, struct nodus_slice addr)
{
    if (addr.len >= SESS_ADDR)
        return NULL;
    for (unsigned i = 0; i < SESS_SLOTS; i++) {
        struct sess_slot *e = &sess_cache[i];

        if (e->gen == gen && !strncmp(e->addr, addr.p, addr.len) && !e->addr[addr.len])
            return e;
    }
    return NULL;
}

/* Keeps sess (taking it over) as the endpoint's session, in place of the previous one, or of the
 * least recently used entry. */
static void sess_store(uint64_t gen, struct nodus_slice addr, struct nd_tls_session *sess)
{
    struct sess_slot *e = sess_find(gen, addr);

    if (addr.len >= SESS_ADDR) {
        nd_tls_session_free(sess);
        return;
    }
    if (!e) {
        e = &sess_cache[0];
        for (unsigned i = 1; i < SESS_SLOTS && e->gen; i++)
            if (!sess_cache[i].gen || sess_cache[i].used < e->used)
                e = &sess_cache[i];
    }
    nd_tls_session_free(e->sess);
    e->gen = gen;
    e->used = ++sess_clock;
    e->sess = sess;
    memcpy(e->addr, addr.p, addr.len);
    e->addr[addr.len] = '\0';
}

static void *up_configure(const struct nd_cluster_conf *cc, char *err, size_t errlen)
{
    struct up_conf *uc = calloc(1, sizeof(*uc));

    if (!uc || !(uc->name = strdup(cc->name))) {
        free(uc);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    uc->hs_timeout_ms = cc->tls_handshake_timeout_ms;
    uc->user.client = true;
    uc->user.sni = cc->tls_sni;
    uc->user.peer_ids = (const char *const *)cc->tls_expect;
    uc->user.n_peer_ids = cc->tls_nexpect;
    uc->user.flags = cc->tls_nexpect ? 0 : ND_TLS_ANY_PEER_ID;
    nd_identity_attach(&uc->user);
    c_full = nodus_counter("mtls", "upstream_handshakes",
                           "Upstream (tls = \"mutual\") handshakes completed, full ones");
    c_resumed = nodus_counter("mtls", "upstream_resumed",
                              "Upstream (tls = \"mutual\") handshakes that resumed a session");
    c_timeouts = nodus_counter("mtls", "upstream_handshake_timeouts",
                               "Upstream TLS handshakes that did not finish within "
                               "handshake_timeout");
    return uc;
}

static void up_destroy(void *p)
{
    struct up_conf *uc = p;

    nd_identity_detach(&uc->user);
    free(uc->name);
    free(uc);
}

static int push_out(struct nodus_stream *s, struct up_conn *c)
{
    uint64_t sent = 0;

    return nd_tls_layer_push_out(s, c->t, &sent);
}

static int fail(struct nodus_stream *s, const struct nodus_ctx *ctx, struct up_conn *c)
{
    const struct up_conf *uc = ctx->conf;
    struct nodus_slice peer = nodus_stream_peer_addr(s);

    if (!c->failed)
        nd_warn("cluster %s: TLS to %.*s failed: %s", uc->name, (int)peer.len, peer.p,
                c->t ? nd_tls_error_text(c->t) : "no node certificate is loaded");
    c->failed = true;
    return -1;
}

static int up_connect(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    struct up_conf *uc = ctx->conf;
    struct up_conn *c = ctx->txn;
    struct nd_tls_ctx *tctx = nd_tls_slot_get(&uc->user.slot);
    struct sess_slot *e;
    int r;

    thread_enter();
    if (!tctx)
        return fail(s, ctx, c) < 0 ? NODUS_RESPOND : NODUS_CONTINUE;
    c->t = nd_tls_new(tctx);
    c->gen = nd_tls_ctx_generation(tctx);
    nd_tls_ctx_unref(tctx);
    if (!c->t)
        return NODUS_RESPOND;
    if ((e = sess_find(c->gen, nodus_stream_peer_addr(s)))) {
        e->used = ++sess_clock;
        nd_tls_session_set(c->t, e->sess); /* a failure only means a full handshake */
    }
    nodus_stream_set_deadline(s, uc->hs_timeout_ms);
    r = nd_tls_handshake(c->t); /* writes the ClientHello */
    if ((r < 0 && r != ND_TLS_AGAIN) || push_out(s, c) < 0)
        return fail(s, ctx, c) < 0 ? NODUS_RESPOND : NODUS_CONTINUE;
    return NODUS_CONTINUE;
}

/* The server is verified: its identity is the connection's principal, the deadline is over. */
static void up_verified(struct nodus_stream *s, const struct nodus_ctx *ctx, struct up_conn *c)
{
    size_t idlen;
    const char *id = nd_tls_peer_id(c->t, &idlen);

    if (id)
        nodus_stream_set_peer_principal(s, id, idlen);
    nodus_stream_set_deadline(s, 0);
    nodus_counter_add(ctx->worker_id, nd_tls_resumed(c->t) ? c_resumed : c_full, 1);
    /* A resumed session is not kept: until the server's new ticket comes, it pairs the old
     * ticket with this connection's resumption secret (the server then refuses the binder). The
     * cached one stays usable for its lifetime; a full handshake refreshes it. */
    c->saved = nd_tls_resumed(c->t);
}

static long up_data_in(struct nodus_stream *s, const struct nodus_ctx *ctx, const char *data,
                       size_t len)
{
    struct up_conn *c = ctx->txn;
    size_t fed;
    long n;

    if (c->failed || !c->t)
        return -1;
    fed = nd_tls_feed(c->t, data, len);
    for (;;) {
        if (nd_tls_state(c->t) == ND_TLS_HANDSHAKE) {
            int r = nd_tls_handshake(c->t);

            if (push_out(s, c) < 0)
                return -1;
            if (r == ND_TLS_AGAIN)
                break;
            if (r < 0)
                return fail(s, ctx, c);
            up_verified(s, ctx, c);
        }
        n = nd_tls_read(c->t, up_tbuf, sizeof(up_tbuf));
        if (!c->saved && (n > 0 || n == ND_TLS_AGAIN)) {
            struct nd_tls_session *sess = nd_tls_session_get(c->t);

            if (sess) { /* the server's ticket came: the next connection resumes with it */
                sess_store(c->gen, nodus_stream_peer_addr(s), sess);
                c->saved = true;
            }
        }
        if (n > 0) {
            if (nodus_stream_push_in(s, up_tbuf, (size_t)n) < 0)
                return -1;
            continue;
        }
        if (push_out(s, c) < 0)
            return -1;
        if (n == ND_TLS_AGAIN || n == ND_TLS_CLOSED)
            break;
        return fail(s, ctx, c);
    }
    return (long)fed;
}

static long up_data_out(struct nodus_stream *s, const struct nodus_ctx *ctx, const char *data,
                        size_t len)
{
    struct up_conn *c = ctx->txn;
    uint64_t sent = 0;
    long r;

    if (c->failed || !c->t)
        return -1;
    if (nd_tls_state(c->t) == ND_TLS_HANDSHAKE)
        return 0; /* sent once the server is verified */
    r = nd_tls_layer_write(s, c->t, data, len, &sent);
    return r == ND_TLS_LAYER_E_TLS ? fail(s, ctx, c) : r;
}

/* handshake_timeout passed: the core fails the connection next (UF, another endpoint). */
static void up_timeout(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    const struct up_conf *uc = ctx->conf;
    struct up_conn *c = ctx->txn;
    struct nodus_slice peer = nodus_stream_peer_addr(s);

    nodus_counter_add(ctx->worker_id, c_timeouts, 1);
    if (!c->failed)
        nd_warn("cluster %s: TLS to %.*s failed: no handshake within %u ms (handshake_timeout)",
                uc->name, (int)peer.len, peer.p, uc->hs_timeout_ms);
    c->failed = true;
}

/* The connection ends on our side: close_notify before the FIN. */
static void up_shutdown(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    struct up_conn *c = ctx->txn;

    if (c->t && !c->failed && nd_tls_state(c->t) == ND_TLS_OPEN &&
        nd_tls_shutdown(c->t) == ND_TLS_OK)
        push_out(s, c);
}

static void up_close(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    struct up_conn *c = ctx->txn;

    (void)s;
    (void)ctx;
    nd_tls_free(c->t);
    c->t = NULL;
}

static const struct nodus_stream_ops up_ops = {
    .connect = up_connect,
    .data_in = up_data_in,
    .data_out = up_data_out,
    .close = up_close,
    .timeout = up_timeout,
    .shutdown = up_shutdown,
};

static const struct nd_upstream_tls_provider up_provider = {
    .ops = &up_ops,
    .txn_size = sizeof(struct up_conn),
    .configure = up_configure,
    .destroy = up_destroy,
};

__attribute__((constructor)) static void up_register(void)
{
    nd_upstream_tls_register(&up_provider);
}
