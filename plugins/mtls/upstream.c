/*
 * Upstream mutual TLS: what the core puts on connections to a cluster with tls = "mutual"
 * (core/config.h, struct nd_upstream_tls_provider). A client context per cluster, built by the
 * node identity like the listeners' (identity.h) and swapped on rotation; each connection runs a
 * wolfSSL client session through the stream layer: connect sends the ClientHello, data_in runs
 * the handshake and decrypts, data_out encrypts once the server is verified (its chain to the
 * mesh CA, its SPIFFE id against `expect`, or any id of the mesh when there is none).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "identity.h"
#include "log.h"
#include "nodus/plugin.h"
#include "tls.h"
#include "tls_layer.h"

struct up_conf {
    struct nd_identity_user user;
    char *name; /* the cluster's, for messages */
};

/* per connection (ctx->txn, zeroed) */
struct up_conn {
    struct nd_tls *t;
    bool failed;
};

static __thread char up_tbuf[16384];

static void *up_configure(const struct nd_cluster_conf *cc, char *err, size_t errlen)
{
    struct up_conf *uc = calloc(1, sizeof(*uc));

    if (!uc || !(uc->name = strdup(cc->name))) {
        free(uc);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    uc->user.client = true;
    uc->user.sni = cc->tls_sni;
    uc->user.peer_ids = (const char *const *)cc->tls_expect;
    uc->user.n_peer_ids = cc->tls_nexpect;
    /* No tickets yet: nothing keeps a session per endpoint across connections (the provider
     * has no per-worker state), so a ticket would only cost the server an encryption. */
    uc->user.flags = ND_TLS_NO_TICKETS | (cc->tls_nexpect ? 0 : ND_TLS_ANY_PEER_ID);
    nd_identity_attach(&uc->user);
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
    int r;

    if (!tctx)
        return fail(s, ctx, c) < 0 ? NODUS_RESPOND : NODUS_CONTINUE;
    c->t = nd_tls_new(tctx);
    nd_tls_ctx_unref(tctx);
    if (!c->t)
        return NODUS_RESPOND;
    r = nd_tls_handshake(c->t); /* writes the ClientHello */
    if ((r < 0 && r != ND_TLS_AGAIN) || push_out(s, c) < 0)
        return fail(s, ctx, c) < 0 ? NODUS_RESPOND : NODUS_CONTINUE;
    return NODUS_CONTINUE;
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
            {
                size_t idlen;
                const char *id = nd_tls_peer_id(c->t, &idlen);

                if (id)
                    nodus_stream_set_peer_principal(s, id, idlen);
            }
        }
        n = nd_tls_read(c->t, up_tbuf, sizeof(up_tbuf));
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

static void up_close(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    struct up_conn *c = ctx->txn;

    if (!c->t)
        return;
    if (!c->failed && nd_tls_state(c->t) == ND_TLS_OPEN && nd_tls_shutdown(c->t) == ND_TLS_OK)
        push_out(s, c); /* close_notify */
    nd_tls_free(c->t);
    c->t = NULL;
}

static const struct nodus_stream_ops up_ops = {
    .connect = up_connect,
    .data_in = up_data_in,
    .data_out = up_data_out,
    .close = up_close,
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
