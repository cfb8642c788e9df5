/* The mesh TLS engine over memory buffers (see tls.h). */
#include "tls.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/error-ssl.h>

#include "ca.h"

#define REC_MAX 16384           /* TLS plaintext record */
#define REC_OVERHEAD 256        /* header, AEAD tag, padding: generous */
#define IN_CAP (REC_MAX + 2048) /* ciphertext waiting for wolfSSL */
#define OUT_CAP (2 * (REC_MAX + REC_OVERHEAD) + 4096)
#define ALPN_MAX 256

/* ChaCha20-Poly1305 first: Debian's wolfSSL has no AES-NI (no WOLFSSL_AESNI), so its AES-GCM
 * is table-driven C (4-bit GHASH tables), about twice the instructions of ChaCha20-Poly1305 for
 * a small record (14.7k against 8.4k Ir for 160 bytes) and not constant-time; ChaCha20 is both.
 * bench/RESULTS.md, "mTLS hop, paced". AES-GCM stays for peers that offer nothing else. */
static const char suites13[] =
    "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384";
static const char suites12[] = ":ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:"
                               "ECDHE-ECDSA-AES256-GCM-SHA384";

/*
 * Session ticket keys (server contexts). wolfSSL 5.5.4's default ticket callback keeps keys that
 * live WOLFSSL_TICKET_KEY_LIFETIME (3600 s) and encrypts with a key only while it outlives the
 * ticket hint; wolfSSL_CTX_set_timeout() sets that hint to the session timeout (3600 s), so the
 * first key could encrypt for one second, the second for one more, and then every ticket, hence
 * every handshake, failed (WOLFSSL_TICKET_RET_REJECT = 1) until the first key expired an hour
 * later. We use our own keys instead:
 *
 *  - two keys per context: the current one encrypts; the previous one still decrypts. Each has a
 *    random 16-byte name, sent in the ticket, and a 32-byte ChaCha20-Poly1305 key, both from
 *    getrandom(). A key encrypts for `rotate` seconds, then decrypts for `rotate` more, then it
 *    is wiped. The ticket lifetime is at most `rotate`, so a ticket stays decryptable as long
 *    as it is valid.
 *  - rotation is lazy: the first handshake that sees the current key too old rotates, under a
 *    mutex taken with trylock (another thread rotating: go on with the keys as read). Readers
 *    never lock: the keys are words under a sequence lock, copied to the stack and wiped after.
 *  - the ticket also carries the peer's identity (SPIFFE ID, notAfter), in the 64 bytes
 *    wolfSSL leaves for the session id and padding: with wolfSSL's global session cache off,
 *    a resumed session has no peer certificate, and the identity must come from the ticket.
 */
#define TK_NAME 16
#define TK_KEY 32
#define TK_NW ((TK_NAME + TK_KEY) / 8 + 1) /* words of a key: name, key, birth (0: none) */
#define TK_EXTRA 64                        /* our bytes at the end of the internal ticket */

struct tk_store {
    pthread_mutex_t rot;          /* writers (rotation) only */
    _Atomic uint32_t seq;         /* odd while a writer changes w */
    _Atomic uint64_t w[2][TK_NW]; /* [0] current, [1] previous */
    uint64_t rotate_s;
    char td[256]; /* our trust domain, "spiffe://TD": IDs in it are stored without it */
    size_t td_len;
};

struct tk_key {
    uint8_t name[TK_NAME];
    uint8_t key[TK_KEY];
    uint64_t born; /* CLOCK_MONOTONIC seconds + 1; 0: no key */
};

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
    struct tk_store *tk; /* server with tickets: the ticket keys */
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
    bool ticket_id; /* peer_id came from a ticket we decrypted */
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
    /* kept for the session ticket, which is sent before the handshake returns */
    free(t->peer_id);
    t->peer_id = strndup(info.uri, info.uri_len);
    t->peer_id_len = t->peer_id ? info.uri_len : 0;
    t->peer_not_after = info.not_after;
    t->ticket_id = false;
    return 1;
}

/* ---- session tickets
 * ---------------------------------------------------------------------------*/

static uint64_t mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec + 1; /* never 0: 0 means "no key" */
}

static int fill_random(void *p, size_t n)
{
    uint8_t *b = p;

    while (n) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Readers: a consistent copy of both keys (the caller wipes it). */
static void tk_read(struct tk_store *st, struct tk_key k[2])
{
    uint64_t w[2][TK_NW];
    uint32_t s1, s2;

    do {
        s1 = atomic_load_explicit(&st->seq, memory_order_acquire);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < TK_NW; j++)
                w[i][j] = atomic_load_explicit(&st->w[i][j], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&st->seq, memory_order_relaxed);
    } while ((s1 & 1) || s1 != s2);
    for (int i = 0; i < 2; i++) {
        memcpy(k[i].name, &w[i][0], TK_NAME);
        memcpy(k[i].key, &w[i][TK_NAME / 8], TK_KEY);
        k[i].born = w[i][TK_NW - 1];
    }
    explicit_bzero(w, sizeof(w));
}

/* Writers, under st->rot. */
static void tk_write(struct tk_store *st, const struct tk_key k[2])
{
    uint64_t w[2][TK_NW];
    uint32_t s = atomic_load_explicit(&st->seq, memory_order_relaxed);

    for (int i = 0; i < 2; i++) {
        memcpy(&w[i][0], k[i].name, TK_NAME);
        memcpy(&w[i][TK_NAME / 8], k[i].key, TK_KEY);
        w[i][TK_NW - 1] = k[i].born;
    }
    atomic_store_explicit(&st->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < TK_NW; j++)
            atomic_store_explicit(&st->w[i][j], w[i][j], memory_order_relaxed);
    atomic_store_explicit(&st->seq, s + 2, memory_order_release);
    explicit_bzero(w, sizeof(w));
}

/* Rotates when the current key is older than rotate_s (always when force): the current key
 * becomes the previous one (if it may still decrypt), a new one encrypts, the former previous
 * key is overwritten. wait = false: give up if another thread is rotating. */
static int tk_rotate(struct tk_store *st, uint64_t now, bool force, bool wait)
{
    struct tk_key k[2], n;
    int r = 0;

    if (wait ? pthread_mutex_lock(&st->rot) != 0 : pthread_mutex_trylock(&st->rot) != 0)
        return 0;
    tk_read(st, k);
    if (force || !k[0].born || now - k[0].born >= st->rotate_s) {
        if (fill_random(n.name, sizeof(n.name)) < 0 || fill_random(n.key, sizeof(n.key)) < 0) {
            r = -1;
        } else {
            n.born = now;
            k[1] = k[0];
            if (!k[1].born || (!force && now - k[1].born >= 2 * st->rotate_s))
                memset(&k[1], 0, sizeof(k[1])); /* too old to decrypt anything */
            k[0] = n;
            tk_write(st, k);
        }
        explicit_bzero(&n, sizeof(n));
    }
    explicit_bzero(k, sizeof(k));
    pthread_mutex_unlock(&st->rot);
    return r;
}

static void tk_free(struct tk_store *st)
{
    if (!st)
        return;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < TK_NW; j++)
            atomic_store(&st->w[i][j], 0);
    pthread_mutex_destroy(&st->rot);
    explicit_bzero(st, sizeof(*st));
    free(st);
}

static struct tk_store *tk_new(uint64_t rotate_s, const char *own_id)
{
    struct tk_store *st = calloc(1, sizeof(*st));
    const char *p;

    if (!st)
        return NULL;
    pthread_mutex_init(&st->rot, NULL);
    st->rotate_s = rotate_s;
    /* "spiffe://TD" of our own ID: peers' IDs in the same trust domain are kept without it */
    p = strchr(own_id + 9, '/');
    st->td_len = p ? (size_t)(p - own_id) : strlen(own_id);
    if (st->td_len >= sizeof(st->td))
        st->td_len = 0;
    memcpy(st->td, own_id, st->td_len);
    if (tk_rotate(st, mono_s(), true, true) < 0) {
        tk_free(st);
        return NULL;
    }
    return st;
}

/* Our TK_EXTRA bytes: [0] form (0 none, 1 full ID, 2 ID relative to our trust domain),
 * [1..4] notAfter (u32, big endian), [5] length, [6..] the ID. */
static void tk_put_identity(const struct tk_store *st, const struct nd_tls *t, uint8_t *x)
{
    const char *id = t ? t->peer_id : NULL;
    size_t len = id ? t->peer_id_len : 0;
    uint8_t form = 1;
    uint64_t na = t ? (uint64_t)t->peer_not_after : 0;

    memset(x, 0, TK_EXTRA);
    if (!id || t->peer_not_after <= 0 || na > UINT32_MAX)
        return;
    if (st->td_len && len > st->td_len && memcmp(id, st->td, st->td_len) == 0 &&
        id[st->td_len] == '/') {
        id += st->td_len;
        len -= st->td_len;
        form = 2;
    }
    if (len > TK_EXTRA - 6)
        return; /* too long to carry: such a ticket never resumes (full handshake) */
    x[0] = form;
    x[1] = (uint8_t)(na >> 24);
    x[2] = (uint8_t)(na >> 16);
    x[3] = (uint8_t)(na >> 8);
    x[4] = (uint8_t)na;
    x[5] = (uint8_t)len;
    memcpy(x + 6, id, len);
}

static int tk_get_identity(const struct tk_store *st, struct nd_tls *t, const uint8_t *x)
{
    size_t len = x[5], pre = x[0] == 2 ? st->td_len : 0;
    char *id;

    if ((x[0] != 1 && x[0] != 2) || len == 0 || len > TK_EXTRA - 6 || (x[0] == 2 && !pre))
        return -1;
    if (!(id = malloc(pre + len + 1)))
        return -1;
    memcpy(id, st->td, pre);
    memcpy(id + pre, x + 6, len);
    id[pre + len] = '\0';
    free(t->peer_id);
    t->peer_id = id;
    t->peer_id_len = pre + len;
    t->peer_not_after =
        (int64_t)(((uint32_t)x[1] << 24) | ((uint32_t)x[2] << 16) | ((uint32_t)x[3] << 8) | x[4]);
    t->ticket_id = true;
    return 0;
}

/* wolfSSL's ticket callback (SessionTicketEncCb). Encrypt: name of the current key, a random
 * nonce, ChaCha20-Poly1305 over the internal ticket plus our identity bytes, the tag in the
 * first 16 bytes of mac (the rest zero). Decrypt: the key by name (current or previous, if
 * young enough), else REJECT (a full handshake, never an error). AAD: name, iv, length. */
static int ticket_cb(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                     unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                     unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc, unsigned char *ticket,
                     int in_len, int *out_len, void *arg)
{
    struct tk_store *st = arg;
    struct nd_tls *t = wolfSSL_GetIOReadCtx(ssl);
    uint8_t aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ + 2];
    struct tk_key k[2];
    uint64_t now = mono_s();
    int ret = WOLFSSL_TICKET_RET_REJECT, idx = -1, len;

    if (!st || in_len < TK_EXTRA || !out_len)
        return WOLFSSL_TICKET_RET_REJECT;
    tk_read(st, k);
    if (enc && now - k[0].born >= st->rotate_s) {
        explicit_bzero(k, sizeof(k));
        if (tk_rotate(st, now, false, false) < 0)
            return WOLFSSL_TICKET_RET_REJECT;
        tk_read(st, k);
    }
    if (enc) {
        /* The internal ticket ends with wolfSSL's 32-byte session id, and 32 bytes of the
         * buffer follow it: ours. */
        len = in_len - 32 + TK_EXTRA;
        if (*out_len < len || !k[0].born || fill_random(iv, WOLFSSL_TICKET_IV_SZ) < 0)
            goto out;
        tk_put_identity(st, t, ticket + in_len - 32);
        memcpy(name, k[0].name, TK_NAME);
        idx = 0;
    } else {
        len = in_len;
        for (int i = 0; i < 2 && idx < 0; i++)
            if (k[i].born && now - k[i].born < 2 * st->rotate_s &&
                memcmp(name, k[i].name, TK_NAME) == 0)
                idx = i;
        if (idx < 0)
            goto out;
        for (int i = 16; i < WOLFSSL_TICKET_MAC_SZ; i++)
            if (mac[i])
                goto out;
    }
    memcpy(aad, name, WOLFSSL_TICKET_NAME_SZ);
    memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
    aad[sizeof(aad) - 2] = (uint8_t)(len >> 8);
    aad[sizeof(aad) - 1] = (uint8_t)len;
    if (enc) {
        memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
        if (wc_ChaCha20Poly1305_Encrypt(k[idx].key, iv, aad, sizeof(aad), ticket, (word32)len,
                                        ticket, mac) != 0)
            goto out;
        *out_len = len;
        ret = WOLFSSL_TICKET_RET_OK;
    } else {
        if (wc_ChaCha20Poly1305_Decrypt(k[idx].key, iv, aad, sizeof(aad), ticket, (word32)len, mac,
                                        ticket) != 0 ||
            len < TK_EXTRA)
            goto out;
        /* our bytes: the peer's identity; then wolfSSL sees a zero session id */
        if (!t || tk_get_identity(st, t, ticket + len - TK_EXTRA) < 0) {
            explicit_bzero(ticket, (size_t)len);
            goto out;
        }
        explicit_bzero(ticket + len - TK_EXTRA, TK_EXTRA);
        *out_len = len - 32;
        ret = WOLFSSL_TICKET_RET_OK;
    }
out:
    explicit_bzero(k, sizeof(k));
    return ret;
}

/* ---- context
 * -----------------------------------------------------------------------------------*/

static void ctx_free(struct nd_tls_ctx *c)
{
    if (!c)
        return;
    if (c->wctx)
        wolfSSL_CTX_free(c->wctx);
    tk_free(c->tk);
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
    /* The process-wide session cache (33 entries in this build, a lock per handshake) stays
     * out of it: this build (WOLFSSL_FORCE_CACHE_ON_TICKET) would store every ticketed server
     * session there despite SESS_CACHE_OFF, and look the peer's certificate up there on
     * resumption, which an evicted entry loses. Resumption is by ticket only: stateless on the
     * server, the peer's identity inside the ticket. */
    wolfSSL_CTX_set_session_cache_mode(c->wctx, WOLFSSL_SESS_CACHE_OFF);
    wolfSSL_CTX_set_session_cache_mode(c->wctx, WOLFSSL_SESS_CACHE_NO_INTERNAL);
    {
        uint64_t rot = cfg->ticket_rotate ? cfg->ticket_rotate : 12 * 3600;
        uint32_t life = cfg->session_timeout ? cfg->session_timeout : 3600;

        if (life > rot)
            life = (uint32_t)rot; /* a ticket must not outlive its key */
        /* sets the ticket hint too (OPENSSL_EXTRA) */
        wolfSSL_CTX_set_timeout(c->wctx, life);
        if (cfg->flags & ND_TLS_NO_TICKETS) {
            wolfSSL_CTX_NoTicketTLSv12(c->wctx);
            wolfSSL_CTX_no_ticket_TLSv13(c->wctx);
        } else if (cfg->role == ND_TLS_CLIENT) {
            wolfSSL_CTX_UseSessionTicket(c->wctx);
        } else {
            if (!(c->tk = tk_new(rot, c->id)) ||
                wolfSSL_CTX_set_TicketEncCb(c->wctx, ticket_cb) != WOLFSSL_SUCCESS ||
                wolfSSL_CTX_set_TicketEncCtx(c->wctx, c->tk) != WOLFSSL_SUCCESS ||
                wolfSSL_CTX_set_TicketHint(c->wctx, (int)life) != WOLFSSL_SUCCESS) {
                set_err(err, errlen, "cannot set up session ticket keys");
                goto bad;
            }
        }
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

int nd_tls_ctx_rotate_ticket_key(struct nd_tls_ctx *c)
{
    if (!c->tk)
        return -1;
    return tk_rotate(c->tk, mono_s(), true, true);
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
    WOLFSSL_X509 *x;
    const unsigned char *der;
    char *name = NULL;
    unsigned short nlen = 0;
    int len = 0;

    if (t->ctx->tk && wolfSSL_session_reused(t->ssl) == 1) {
        /* a server resuming from one of our tickets: the identity it carried (checked again
         * against this context's allow list, and for expiry) */
        if (!t->ticket_id || !id_ok(t->ctx, t->peer_id, t->peer_id_len))
            return fail(t, ND_TLS_E_PEER_ID, 0);
        if (t->peer_not_after < (int64_t)time(NULL))
            return fail(t, ND_TLS_E_PEER_CERT, ASN_AFTER_DATE_E);
        goto alpn;
    }
    free(t->peer_id);
    t->peer_id = NULL;
    x = wolfSSL_get_peer_certificate(t->ssl);
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
alpn:
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
    bool open = t->state == ND_TLS_OPEN || t->state == ND_TLS_SHUTDOWN;

    if (len)
        *len = open && t->peer_id ? t->peer_id_len : 0;
    return open ? t->peer_id : NULL;
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
    if (t->state != ND_TLS_OPEN || t->ctx->role != ND_TLS_CLIENT ||
        wolfSSL_SESSION_has_ticket(wolfSSL_get_session(t->ssl)) != 1)
        return NULL; /* resumption is by ticket only (no server-side cache) */
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
