/* The mesh TLS engine over memory buffers (see tls.h). */
#include "tls.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/error-ssl.h>

#include "ca.h"

#define REC_MAX 16384           /* TLS plaintext record */
#define REC_OVERHEAD 256        /* header, AEAD tag, padding: generous */
#define IN_CAP (REC_MAX + 2048) /* ciphertext waiting for wolfSSL */
#define OUT_CAP (2 * (REC_MAX + REC_OVERHEAD) + 4096)
#define ALPN_MAX 256

static const char suites13[] =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256";
static const char suites12[] = ":ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                               "ECDHE-ECDSA-CHACHA20-POLY1305";

struct nd_tls_ctx {
    _Atomic long refs;
    uint64_t gen;
    enum nd_tls_role role;
    unsigned flags;
    WOLFSSL_CTX *wctx;
    char **peer_ids;
    size_t n_peer_ids;
    char *alpn;
    char *sni;
    char *id; /* our own SPIFFE ID */
    int64_t not_after;
};

struct nd_tls {
    struct nd_tls_ctx *ctx;
    WOLFSSL *ssl;
    enum nd_tls_state state;
    int err;        /* ND_TLS_E_* */
    int wolf_err;   /* the library's code behind it, for the text */
    int verify_err; /* the chain check's error (X509_V_ERR_* or ASN_*_E) when it refused */
    bool eof, sniffed, id_rejected, no_cert;
    size_t wpend; /* bytes of a write that returned WANT_WRITE */
    char *peer_id;
    size_t peer_id_len;
    int64_t peer_not_after;
    char alpn[ALPN_MAX];
    uint32_t in_off, in_len, out_off, out_len;
    uint8_t in[IN_CAP];
    uint8_t out[OUT_CAP];
};

static _Atomic uint64_t generations;

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
}

static pthread_once_t wolf_once = PTHREAD_ONCE_INIT;
static void wolf_init(void)
{
    wolfSSL_Init();
}

/* ---- identities
 * --------------------------------------------------------------------------------*/

bool nd_tls_id_allowed(const char *id, size_t len, const char *const *allowed, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t al = strlen(allowed[i]);
        if (al >= 2 && allowed[i][al - 1] == '*' && allowed[i][al - 2] == '/') {
            if (len > al - 1 && memcmp(id, allowed[i], al - 1) == 0)
                return true;
        } else if (al == len && memcmp(id, allowed[i], len) == 0) {
            return true;
        }
    }
    return false;
}

/* The identity in a peer's leaf certificate: exactly one URI SAN, a valid workload SPIFFE ID. */
static int leaf_identity(const uint8_t *der, size_t len, struct nd_ca_cert_info *info)
{
    if (nd_ca_cert_parse(der, len, info) < 0 || info->is_ca || info->n_uri != 1 ||
        nd_ca_spiffe_check(info->uri, info->uri_len, ND_CA_SPIFFE_WORKLOAD, NULL, NULL) < 0)
        return -1;
    return 0;
}

static bool id_ok(const struct nd_tls_ctx *c, const char *id, size_t len)
{
    if (c->n_peer_ids == 0)
        return c->role == ND_TLS_SERVER || (c->flags & ND_TLS_ANY_PEER_ID);
    return nd_tls_id_allowed(id, len, (const char *const *)c->peer_ids, c->n_peer_ids);
}

/* Called by wolfSSL for each certificate of the peer's chain, after its own checks (preverify).
 * We never turn a failure into a success; on the leaf we add the SPIFFE ID check, so that a
 * wrong identity fails the handshake with an alert before any data flows. */
static int verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    WOLFSSL *ssl =
        wolfSSL_X509_STORE_CTX_get_ex_data(store, wolfSSL_get_ex_data_X509_STORE_CTX_idx());
    struct nd_tls *t = ssl ? wolfSSL_GetIOReadCtx(ssl) : NULL;
    struct nd_ca_cert_info info;
    WOLFSSL_X509 *x;
    const unsigned char *der;
    int len = 0;

    if (!t)
        return 0;
    if (!preverify) {
        if (!t->verify_err)
            t->verify_err = wolfSSL_X509_STORE_CTX_get_error(store);
        return 0;
    }
    if (wolfSSL_X509_STORE_CTX_get_error_depth(store) != 0)
        return 1;
    x = wolfSSL_X509_STORE_CTX_get_current_cert(store);
    der = x ? wolfSSL_X509_get_der(x, &len) : NULL;
    /* wolfSSL 5.5 (ALWAYS_VERIFY_CB) calls us with preverify = 1 and an empty certificate when
     * a TLS 1.2 client sent none: refuse here too (it refuses again later, NO_PEER_CERT). */
    if (!der || len <= 0) {
        t->no_cert = true;
        return 0;
    }
    if (leaf_identity(der, (size_t)len, &info) < 0 || !id_ok(t->ctx, info.uri, info.uri_len)) {
        t->id_rejected = true;
        return 0;
    }
    return 1;
}

/* ---- context
 * -----------------------------------------------------------------------------------*/

static void ctx_free(struct nd_tls_ctx *c)
{
    if (!c)
        return;
    if (c->wctx)
        wolfSSL_CTX_free(c->wctx);
    for (size_t i = 0; i < c->n_peer_ids; i++)
        free(c->peer_ids[i]);
    free(c->peer_ids);
    free(c->alpn);
    free(c->sni);
    free(c->id);
    free(c);
}

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg);
static int io_send(WOLFSSL *ssl, char *buf, int sz, void *arg);

/* Our own leaf: its SPIFFE ID and notAfter. */
static int own_identity(struct nd_tls_ctx *c, const struct nd_tls_config *cfg, char *err,
                        size_t errlen)
{
    struct nd_ca_cert_info info;
    uint8_t *der = malloc(8192);
    int n;

    n = der ? wc_CertPemToDer((const unsigned char *)cfg->cert_pem, (int)cfg->cert_len, der, 8192,
                              CERT_TYPE)
            : -1;
    if (n <= 0 || leaf_identity(der, (size_t)n, &info) < 0) {
        free(der);
        set_err(err, errlen, "our certificate has no valid SPIFFE ID (one URI SAN)");
        return -1;
    }
    /* wolfSSL_CTX_check_private_key() of wolfSSL 5.5 accepted a P-256 key that was not the
     * certificate's: compare the public keys ourselves. */
    if (nd_ca_key_matches_cert(cfg->key_pem, cfg->key_len, der, (size_t)n) < 0) {
        free(der);
        set_err(err, errlen, "the private key does not belong to our certificate");
        return -1;
    }
    c->id = strndup(info.uri, info.uri_len);
    c->not_after = info.not_after;
    free(der);
    if (!c->id) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

struct nd_tls_ctx *nd_tls_ctx_new(const struct nd_tls_config *cfg, char *err, size_t errlen)
{
    char suites[sizeof(suites13) + sizeof(suites12)];
    int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1};
    struct nd_tls_ctx *c;
    const char *why = "";
    WOLFSSL_METHOD *m;

    pthread_once(&wolf_once, wolf_init);
    if (!cfg || !cfg->ca_pem || !cfg->cert_pem || !cfg->key_pem) {
        set_err(err, errlen, "trust anchors, a certificate and a key are required");
        return NULL;
    }
    if (cfg->role == ND_TLS_CLIENT && cfg->n_peer_ids == 0 && !(cfg->flags & ND_TLS_ANY_PEER_ID)) {
        set_err(err, errlen, "a client needs the SPIFFE IDs it expects of the server");
        return NULL;
    }
    if (cfg->n_peer_ids > ND_TLS_MAX_PEER_IDS) {
        set_err(err, errlen, "more than %d allowed peer IDs", ND_TLS_MAX_PEER_IDS);
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_peer_ids; i++) {
        const char *p = cfg->peer_ids[i];
        size_t l = p ? strlen(p) : 0;
        if (l >= 2 && p[l - 1] == '*' && p[l - 2] == '/')
            l -= 2; /* prefix form: what precedes the final slash-star must be a valid ID */
        if (!p || nd_ca_spiffe_check(p, l, 0, NULL, &why) < 0) {
            set_err(err, errlen, "allowed peer ID #%zu: %s", i + 1, p ? why : "missing");
            return NULL;
        }
    }
    if (cfg->alpn && (strlen(cfg->alpn) == 0 || strlen(cfg->alpn) >= ALPN_MAX)) {
        set_err(err, errlen, "ALPN list empty or too long");
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    c->refs = 1;
    c->role = cfg->role;
    c->flags = cfg->flags;
    if (own_identity(c, cfg, err, errlen) < 0)
        goto bad;
    if (cfg->n_peer_ids) {
        c->peer_ids = calloc(cfg->n_peer_ids, sizeof(char *));
        if (!c->peer_ids)
            goto oom;
        for (; c->n_peer_ids < cfg->n_peer_ids; c->n_peer_ids++)
            if (!(c->peer_ids[c->n_peer_ids] = strdup(cfg->peer_ids[c->n_peer_ids])))
                goto oom;
    }
    if ((cfg->alpn && !(c->alpn = strdup(cfg->alpn))) || (cfg->sni && !(c->sni = strdup(cfg->sni))))
        goto oom;

    m = cfg->role == ND_TLS_SERVER ? wolfSSLv23_server_method() : wolfSSLv23_client_method();
    c->wctx = m ? wolfSSL_CTX_new(m) : NULL;
    if (!c->wctx)
        goto oom;
    if (wolfSSL_CTX_SetMinVersion(c->wctx, (cfg->flags & ND_TLS_ALLOW_TLS12)
                                               ? WOLFSSL_TLSV1_2
                                               : WOLFSSL_TLSV1_3) != WOLFSSL_SUCCESS) {
        set_err(err, errlen, "cannot set the minimum TLS version");
        goto bad;
    }
    snprintf(suites, sizeof(suites), "%s%s", suites13,
             (cfg->flags & ND_TLS_ALLOW_TLS12) ? suites12 : "");
    if (wolfSSL_CTX_set_cipher_list(c->wctx, suites) != WOLFSSL_SUCCESS ||
        /* set1_groups_list() does not know X25519 in this build: the numeric API does. */
        wolfSSL_CTX_set_groups(c->wctx, groups, 2) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_UseSupportedCurve(c->wctx, WOLFSSL_ECC_X25519) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_UseSupportedCurve(c->wctx, WOLFSSL_ECC_SECP256R1) != WOLFSSL_SUCCESS) {
        set_err(err, errlen, "cannot set the cipher suites or groups");
        goto bad;
    }
    if (wolfSSL_CTX_load_verify_buffer(c->wctx, (const unsigned char *)cfg->ca_pem,
                                       (long)cfg->ca_len,
                                       WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        set_err(err, errlen, "cannot load the trust anchors");
        goto bad;
    }
    if (wolfSSL_CTX_use_certificate_chain_buffer(c->wctx, (const unsigned char *)cfg->cert_pem,
                                                 (long)cfg->cert_len) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_buffer(c->wctx, (const unsigned char *)cfg->key_pem,
                                          (long)cfg->key_len,
                                          WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_check_private_key(c->wctx) != WOLFSSL_SUCCESS) {
        set_err(err, errlen, "cannot load our certificate and key, or they do not match");
        goto bad;
    }
    wolfSSL_CTX_set_verify(c->wctx,
                           cfg->role == ND_TLS_SERVER
                               ? WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT
                               : WOLFSSL_VERIFY_PEER,
                           verify_cb);
    wolfSSL_CTX_set_verify_depth(c->wctx, 4);
    wolfSSL_CTX_SetIORecv(c->wctx, io_recv);
    wolfSSL_CTX_SetIOSend(c->wctx, io_send);
    /* The process-wide session cache would put a lock on every handshake: resumption is by
     * ticket only (stateless on the server, key per context). */
    wolfSSL_CTX_set_session_cache_mode(c->wctx, WOLFSSL_SESS_CACHE_OFF);
    wolfSSL_CTX_set_timeout(c->wctx, cfg->session_timeout ? cfg->session_timeout : 3600);
    if (cfg->flags & ND_TLS_NO_TICKETS) {
        wolfSSL_CTX_NoTicketTLSv12(c->wctx);
        wolfSSL_CTX_no_ticket_TLSv13(c->wctx);
    } else if (cfg->role == ND_TLS_CLIENT) {
        wolfSSL_CTX_UseSessionTicket(c->wctx);
    }
    c->gen = atomic_fetch_add(&generations, 1) + 1;
    return c;
oom:
    set_err(err, errlen, "out of memory");
bad:
    ctx_free(c);
    return NULL;
}

struct nd_tls_ctx *nd_tls_ctx_ref(struct nd_tls_ctx *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void nd_tls_ctx_unref(struct nd_tls_ctx *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        ctx_free(c);
}

uint64_t nd_tls_ctx_generation(const struct nd_tls_ctx *c)
{
    return c->gen;
}

int64_t nd_tls_ctx_not_after(const struct nd_tls_ctx *c)
{
    return c->not_after;
}

const char *nd_tls_ctx_id(const struct nd_tls_ctx *c)
{
    return c->id;
}

/* ---- rotation slot
 * -----------------------------------------------------------------------------*/

void nd_tls_slot_init(struct nd_tls_slot *s, struct nd_tls_ctx *c)
{
    pthread_mutex_init(&s->lock, NULL);
    s->cur = c;
    atomic_store(&s->gen, c ? c->gen : 0);
}

void nd_tls_slot_swap(struct nd_tls_slot *s, struct nd_tls_ctx *c)
{
    struct nd_tls_ctx *old;

    pthread_mutex_lock(&s->lock);
    old = s->cur;
    s->cur = c;
    atomic_store(&s->gen, c ? c->gen : 0);
    pthread_mutex_unlock(&s->lock);
    nd_tls_ctx_unref(old); /* connections on it hold their own references */
}

struct nd_tls_ctx *nd_tls_slot_get(struct nd_tls_slot *s)
{
    struct nd_tls_ctx *c;

    pthread_mutex_lock(&s->lock);
    c = nd_tls_ctx_ref(s->cur);
    pthread_mutex_unlock(&s->lock);
    return c;
}

uint64_t nd_tls_slot_generation(struct nd_tls_slot *s)
{
    return atomic_load(&s->gen);
}

void nd_tls_slot_fini(struct nd_tls_slot *s)
{
    nd_tls_ctx_unref(s->cur);
    s->cur = NULL;
    pthread_mutex_destroy(&s->lock);
}

/* ---- I/O callbacks
 * -----------------------------------------------------------------------------*/

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    struct nd_tls *t = arg;
    uint32_t n;

    (void)ssl;
    if (t->in_len == 0)
        return t->eof ? WOLFSSL_CBIO_ERR_CONN_CLOSE : WOLFSSL_CBIO_ERR_WANT_READ;
    n = sz < 0 ? 0 : (uint32_t)sz;
    if (n > t->in_len)
        n = t->in_len;
    memcpy(buf, t->in + t->in_off, n);
    t->in_off += n;
    t->in_len -= n;
    if (t->in_len == 0)
        t->in_off = 0;
    return (int)n;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    struct nd_tls *t = arg;
    uint32_t room, n;

    (void)ssl;
    if (t->out_off && t->out_off + t->out_len + (uint32_t)sz > OUT_CAP) {
        memmove(t->out, t->out + t->out_off, t->out_len);
        t->out_off = 0;
    }
    room = OUT_CAP - t->out_off - t->out_len;
    if (room == 0)
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    n = sz < 0 ? 0 : (uint32_t)sz;
    if (n > room)
        n = room;
    memcpy(t->out + t->out_off + t->out_len, buf, n);
    t->out_len += n;
    return (int)n;
}

/* ---- connection
 * --------------------------------------------------------------------------------*/

struct nd_tls *nd_tls_new(struct nd_tls_ctx *c)
{
    struct nd_tls *t;

    if (!c)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ssl = wolfSSL_new(c->wctx);
    if (!t->ssl) {
        free(t);
        return NULL;
    }
    t->ctx = nd_tls_ctx_ref(c);
    wolfSSL_SetIOReadCtx(t->ssl, t);
    wolfSSL_SetIOWriteCtx(t->ssl, t);
    if (c->alpn && wolfSSL_UseALPN(t->ssl, c->alpn, (unsigned)strlen(c->alpn),
                                   c->role == ND_TLS_SERVER
                                       ? WOLFSSL_ALPN_FAILED_ON_MISMATCH
                                       : WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) != WOLFSSL_SUCCESS)
        goto bad;
    if (c->role == ND_TLS_CLIENT && c->sni &&
        wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, c->sni, (unsigned short)strlen(c->sni)) !=
            WOLFSSL_SUCCESS)
        goto bad;
    t->state = ND_TLS_HANDSHAKE;
    return t;
bad:
    nd_tls_free(t);
    return NULL;
}

void nd_tls_free(struct nd_tls *t)
{
    if (!t)
        return;
    if (t->ssl)
        wolfSSL_free(t->ssl);
    nd_tls_ctx_unref(t->ctx);
    free(t->peer_id);
    explicit_bzero(t, sizeof(*t)); /* plaintext may have passed through */
    free(t);
}

size_t nd_tls_feed(struct nd_tls *t, const void *data, size_t len)
{
    size_t room;

    if (t->eof || t->state == ND_TLS_FAILED)
        return 0;
    if (t->in_off && t->in_off + t->in_len + len > IN_CAP) {
        memmove(t->in, t->in + t->in_off, t->in_len);
        t->in_off = 0;
    }
    room = IN_CAP - t->in_off - t->in_len;
    if (len > room)
        len = room;
    memcpy(t->in + t->in_off + t->in_len, data, len);
    t->in_len += (uint32_t)len;
    return len;
}

void nd_tls_feed_eof(struct nd_tls *t)
{
    t->eof = true;
}

static int fail(struct nd_tls *t, int err, int wolf_err)
{
    t->state = ND_TLS_FAILED;
    t->err = err;
    t->wolf_err = wolf_err;
    return err;
}

/* Maps a wolfSSL error to ours. */
static int classify(struct nd_tls *t, int e)
{
    switch (e) {
    case ASN_NO_SIGNER_E:
    case ASN_AFTER_DATE_E:
    case ASN_BEFORE_DATE_E:
    case ASN_SIG_CONFIRM_E:
    case ASN_SIG_OID_E:
    case ASN_PATHLEN_INV_E:
    case ASN_PATHLEN_SIZE_E:
    case NO_PEER_CERT:
    case VERIFY_CERT_ERROR:
    case ASN_PARSE_E:
        return t->id_rejected ? ND_TLS_E_PEER_ID : ND_TLS_E_PEER_CERT;
    case FATAL_ERROR:
        return ND_TLS_E_ALERT;
    case SOCKET_ERROR_E:
    case SOCKET_PEER_CLOSED_E:
        return ND_TLS_E_TRUNCATED;
    case MEMORY_E:
    case MEMORY_ERROR:
        return ND_TLS_E_INTERNAL;
    default:
        return t->id_rejected ? ND_TLS_E_PEER_ID : ND_TLS_E_PROTO;
    }
}

/* After wolfSSL says the handshake is done: the peer's identity, for full and resumed sessions
 * alike (a resumed session skips the verify callback). */
static int handshake_done(struct nd_tls *t)
{
    struct nd_ca_cert_info info;
    WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(t->ssl);
    const unsigned char *der;
    char *name = NULL;
    unsigned short nlen = 0;
    int len = 0;

    der = x ? wolfSSL_X509_get_der(x, &len) : NULL;
    if (!der || len <= 0 || leaf_identity(der, (size_t)len, &info) < 0 ||
        !id_ok(t->ctx, info.uri, info.uri_len)) {
        wolfSSL_X509_free(x);
        return fail(t, ND_TLS_E_PEER_ID, 0);
    }
    /* A resumed session skipped chain validation: at least the leaf must still be valid. */
    if (info.not_after < (int64_t)time(NULL)) {
        wolfSSL_X509_free(x);
        return fail(t, ND_TLS_E_PEER_CERT, ASN_AFTER_DATE_E);
    }
    t->peer_id = strndup(info.uri, info.uri_len);
    t->peer_id_len = info.uri_len;
    t->peer_not_after = info.not_after;
    wolfSSL_X509_free(x);
    if (!t->peer_id)
        return fail(t, ND_TLS_E_INTERNAL, MEMORY_E);
    if (t->ctx->alpn && wolfSSL_ALPN_GetProtocol(t->ssl, &name, &nlen) == WOLFSSL_SUCCESS && name &&
        nlen < sizeof(t->alpn)) {
        memcpy(t->alpn, name, nlen);
        t->alpn[nlen] = '\0';
    }
    t->state = ND_TLS_OPEN;
    return ND_TLS_OK;
}

int nd_tls_sniff(const void *data, size_t len)
{
    const uint8_t *p = data;

    if (len >= 1 && p[0] != 0x16)
        return ND_TLS_SNIFF_PLAIN;
    if (len >= 2 && p[1] != 0x03)
        return ND_TLS_SNIFF_PLAIN;
    if (len >= 3 && p[2] > 0x04)
        return ND_TLS_SNIFF_PLAIN;
    return len >= 3 ? ND_TLS_SNIFF_TLS : ND_TLS_SNIFF_MORE;
}

int nd_tls_handshake(struct nd_tls *t)
{
    int r, e;

    if (t->state == ND_TLS_OPEN || t->state == ND_TLS_SHUTDOWN)
        return ND_TLS_OK;
    if (t->state == ND_TLS_FAILED)
        return t->err;
    if (t->ctx->role == ND_TLS_SERVER && !t->sniffed) {
        /* A strict server answers plaintext with nothing: no TLS alert to an HTTP client. */
        int s = nd_tls_sniff(t->in + t->in_off, t->in_len);
        if (s == ND_TLS_SNIFF_PLAIN)
            return fail(t, ND_TLS_E_NOT_TLS, 0);
        if (s == ND_TLS_SNIFF_MORE)
            return t->eof ? fail(t, ND_TLS_E_TRUNCATED, 0) : ND_TLS_AGAIN;
        t->sniffed = true;
    }
    r = t->ctx->role == ND_TLS_SERVER ? wolfSSL_accept(t->ssl) : wolfSSL_connect(t->ssl);
    if (r == WOLFSSL_SUCCESS)
        return handshake_done(t);
    e = wolfSSL_get_error(t->ssl, r);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) {
        if (e == WOLFSSL_ERROR_WANT_READ && t->eof && t->in_len == 0)
            return fail(t, ND_TLS_E_TRUNCATED, e);
        return ND_TLS_AGAIN;
    }
    return fail(t, classify(t, e), e);
}

long nd_tls_read(struct nd_tls *t, void *buf, size_t len)
{
    int r, e;

    if (t->state == ND_TLS_HANDSHAKE) {
        r = nd_tls_handshake(t);
        if (r != ND_TLS_OK)
            return r;
    }
    if (t->state == ND_TLS_FAILED)
        return t->err;
    if (len == 0)
        return ND_TLS_AGAIN;
    if (len > INT32_MAX)
        len = INT32_MAX;
    r = wolfSSL_read(t->ssl, buf, (int)len);
    if (r > 0)
        return r;
    e = wolfSSL_get_error(t->ssl, r);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) {
        if (e == WOLFSSL_ERROR_WANT_READ && t->eof && t->in_len == 0)
            return fail(t, ND_TLS_E_TRUNCATED, e);
        return ND_TLS_AGAIN;
    }
    if (e == WOLFSSL_ERROR_ZERO_RETURN) {
        t->state = ND_TLS_SHUTDOWN;
        return ND_TLS_CLOSED;
    }
    if (t->state == ND_TLS_SHUTDOWN)
        return ND_TLS_CLOSED;
    return fail(t, classify(t, e), e);
}

long nd_tls_write(struct nd_tls *t, const void *buf, size_t len)
{
    size_t n, room;
    int r, e;

    if (t->state == ND_TLS_HANDSHAKE)
        return ND_TLS_AGAIN;
    if (t->state == ND_TLS_FAILED)
        return t->err;
    if (t->state == ND_TLS_SHUTDOWN)
        return ND_TLS_CLOSED;
    if (t->wpend) {
        if (len < t->wpend)
            return fail(t, ND_TLS_E_INTERNAL, BAD_FUNC_ARG);
        n = t->wpend;
    } else {
        room = OUT_CAP - t->out_len;
        if (len == 0 || room < REC_OVERHEAD * 2)
            return ND_TLS_AGAIN;
        n = len < REC_MAX ? len : REC_MAX;
        if (n > room - REC_OVERHEAD * 2)
            n = room - REC_OVERHEAD * 2;
    }
    r = wolfSSL_write(t->ssl, buf, (int)n);
    if (r > 0) {
        t->wpend = 0;
        return r;
    }
    e = wolfSSL_get_error(t->ssl, r);
    if (e == WOLFSSL_ERROR_WANT_WRITE || e == WOLFSSL_ERROR_WANT_READ) {
        t->wpend = n;
        return ND_TLS_AGAIN;
    }
    return fail(t, classify(t, e), e);
}

int nd_tls_shutdown(struct nd_tls *t)
{
    if (t->state == ND_TLS_FAILED)
        return t->err;
    if (t->state != ND_TLS_OPEN && t->state != ND_TLS_SHUTDOWN)
        return fail(t, ND_TLS_E_INTERNAL, 0);
    wolfSSL_shutdown(t->ssl); /* queues close_notify; we do not wait for the peer's */
    t->state = ND_TLS_SHUTDOWN;
    return ND_TLS_OK;
}

const void *nd_tls_out_peek(const struct nd_tls *t, size_t *len)
{
    *len = t->out_len;
    return t->out + t->out_off;
}

void nd_tls_out_consume(struct nd_tls *t, size_t n)
{
    if (n > t->out_len)
        n = t->out_len;
    t->out_off += (uint32_t)n;
    t->out_len -= (uint32_t)n;
    if (t->out_len == 0)
        t->out_off = 0;
}

enum nd_tls_state nd_tls_state(const struct nd_tls *t)
{
    return t->state;
}

int nd_tls_error(const struct nd_tls *t)
{
    return t->state == ND_TLS_FAILED ? t->err : 0;
}

const char *nd_tls_error_text(const struct nd_tls *t)
{
    switch (t->state == ND_TLS_FAILED ? t->err : 0) {
    case 0:
        return "no error";
    case ND_TLS_E_NOT_TLS:
        return "not TLS (plaintext on a TLS-only listener?)";
    case ND_TLS_E_PEER_ID:
        return "peer SPIFFE ID missing, malformed or not allowed";
    case ND_TLS_E_TRUNCATED:
        return "connection ended during TLS (no close_notify)";
    default:
        return t->wolf_err ? wolfSSL_ERR_reason_error_string((unsigned long)t->wolf_err)
                           : "TLS error";
    }
}

/* The chain check's verdict, from the verify callback's store error or the library's error:
 * both numbering schemes appear depending on where wolfSSL 5.5 noticed the problem. */
static const char *cert_reason(const struct nd_tls *t)
{
    int codes[2] = {t->verify_err, t->wolf_err};

    if (t->no_cert)
        return "no_client_cert";
    for (int i = 0; i < 2; i++) {
        switch (codes[i]) {
        case NO_PEER_CERT:
            return "no_client_cert";
        case ASN_AFTER_DATE_E:
        case X509_V_ERR_CERT_HAS_EXPIRED:
            return "expired_cert";
        case ASN_BEFORE_DATE_E:
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return "cert_not_yet_valid";
        case ASN_NO_SIGNER_E:
        case ASN_SIG_CONFIRM_E:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        case X509_V_ERR_CERT_SIGNATURE_FAILURE:
            return "untrusted_cert";
        default:
            break;
        }
    }
    return "bad_cert";
}

const char *nd_tls_error_reason(const struct nd_tls *t)
{
    switch (t->state == ND_TLS_FAILED ? t->err : 0) {
    case 0:
        return "none";
    case ND_TLS_E_PROTO:
        return "protocol";
    case ND_TLS_E_NOT_TLS:
        return "not_tls";
    case ND_TLS_E_PEER_CERT:
        return cert_reason(t);
    case ND_TLS_E_PEER_ID:
        return t->no_cert ? "no_client_cert" : "peer_id";
    case ND_TLS_E_ALERT:
        return "alert";
    case ND_TLS_E_TRUNCATED:
        return "truncated";
    default:
        return "internal";
    }
}

const char *nd_tls_peer_id(const struct nd_tls *t, size_t *len)
{
    if (len)
        *len = t->peer_id ? t->peer_id_len : 0;
    return t->peer_id;
}

int64_t nd_tls_peer_not_after(const struct nd_tls *t)
{
    return t->peer_not_after;
}

const char *nd_tls_alpn(const struct nd_tls *t)
{
    return t->alpn[0] ? t->alpn : NULL;
}

const char *nd_tls_sni(const struct nd_tls *t)
{
    void *name = NULL;
    unsigned short n;

    if (t->ctx->role != ND_TLS_SERVER)
        return t->ctx->sni;
    n = wolfSSL_SNI_GetRequest(t->ssl, WOLFSSL_SNI_HOST_NAME, &name);
    return n ? name : NULL;
}

const char *nd_tls_version(const struct nd_tls *t)
{
    return wolfSSL_get_version(t->ssl);
}

bool nd_tls_resumed(const struct nd_tls *t)
{
    return wolfSSL_session_reused(t->ssl) == 1;
}

uint64_t nd_tls_generation(const struct nd_tls *t)
{
    return t->ctx->gen;
}

struct nd_tls_session *nd_tls_session_get(struct nd_tls *t)
{
    if (t->state != ND_TLS_OPEN || t->ctx->role != ND_TLS_CLIENT)
        return NULL;
    return (struct nd_tls_session *)wolfSSL_get1_session(t->ssl);
}

int nd_tls_session_set(struct nd_tls *t, struct nd_tls_session *s)
{
    if (t->state != ND_TLS_HANDSHAKE || t->ctx->role != ND_TLS_CLIENT || !s)
        return ND_TLS_E_INTERNAL;
    return wolfSSL_set_session(t->ssl, (WOLFSSL_SESSION *)s) == WOLFSSL_SUCCESS ? ND_TLS_OK
                                                                                : ND_TLS_E_INTERNAL;
}

void nd_tls_session_free(struct nd_tls_session *s)
{
    if (s)
        wolfSSL_SESSION_free((WOLFSSL_SESSION *)s);
}
