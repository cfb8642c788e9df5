/* The TLS engine, in memory: two engines (or an engine and a bare wolfSSL peer) wired through
 * buffers. Handshakes, SPIFFE identities both ways, refusals, garbage, rotation, resumption. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "../../plugins/mtls/ca.h"
#include "../../plugins/mtls/tls.h"

#define TD "mesh.local"
#define WEB "spiffe://mesh.local/ns/default/sa/web"
#define API "spiffe://mesh.local/ns/default/sa/api"
#define EVIL "spiffe://mesh.local/ns/other/sa/evil"

static char tmpdir[64];
static char err[256];
static struct nd_ca *ca, *other_ca;
static struct nd_ca_cred web, api, evil, foreign;

static struct nd_ca *make_ca(const char *name)
{
    struct nd_ca_init_opts o = {.trust_domain = TD};
    char dir[128];
    struct nd_ca *c;

    snprintf(dir, sizeof(dir), "%s/%s", tmpdir, name);
    if (nd_ca_init(dir, &o, err, sizeof(err)) < 0)
        return NULL;
    c = nd_ca_load(dir, err, sizeof(err));
    return c;
}

static int issue(struct nd_ca *c, const char *id, int64_t nb, uint64_t ttl, struct nd_ca_cred *out)
{
    struct nd_ca_issue_opts o = {.spiffe_id = id, .not_before = nb, .ttl = ttl};
    return nd_ca_issue(c, &o, out, err, sizeof(err));
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/nodus-test-tls-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    ca = make_ca("ca");
    other_ca = make_ca("other");
    if (!ca || !other_ca)
        return -1;
    if (issue(ca, WEB, 0, 0, &web) < 0 || issue(ca, API, 0, 0, &api) < 0 ||
        issue(ca, EVIL, 0, 0, &evil) < 0 || issue(other_ca, API, 0, 0, &foreign) < 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[128];

    (void)state;
    nd_ca_cred_free(&web);
    nd_ca_cred_free(&api);
    nd_ca_cred_free(&evil);
    nd_ca_cred_free(&foreign);
    nd_ca_free(ca);
    nd_ca_free(other_ca);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct nd_tls_ctx *ctx_for(enum nd_tls_role role, const struct nd_ca_cred *cred,
                                  const char *const *ids, size_t n, unsigned flags)
{
    size_t rl;
    const char *root = nd_ca_root_pem(ca, &rl);
    struct nd_tls_config cfg = {
        .role = role,
        .flags = flags,
        .ca_pem = root,
        .ca_len = rl,
        .cert_pem = cred->cert,
        .cert_len = cred->cert_len,
        .key_pem = cred->key,
        .key_len = cred->key_len,
        .peer_ids = ids,
        .n_peer_ids = n,
        .alpn = role == ND_TLS_SERVER ? "h2,http/1.1" : "h2",
        .sni = role == ND_TLS_CLIENT ? "web.default.svc" : NULL,
    };
    struct nd_tls_ctx *c = nd_tls_ctx_new(&cfg, err, sizeof(err));
    if (!c)
        fail_msg("nd_tls_ctx_new: %s", err);
    return c;
}

/* Moves what a produced into b; returns the bytes moved. */
static size_t pump(struct nd_tls *a, struct nd_tls *b)
{
    size_t n, took;
    const void *p = nd_tls_out_peek(a, &n);

    took = nd_tls_feed(b, p, n);
    nd_tls_out_consume(a, took);
    return took;
}

/* Runs both handshakes until neither makes progress. */
static void handshake(struct nd_tls *c, struct nd_tls *s, int *rc, int *rs)
{
    for (int i = 0; i < 50; i++) {
        size_t moved;
        *rc = nd_tls_handshake(c);
        moved = pump(c, s);
        *rs = nd_tls_handshake(s);
        moved += pump(s, c);
        if (moved == 0 && *rc != ND_TLS_AGAIN && *rs != ND_TLS_AGAIN)
            return;
        if (moved == 0 && i > 2)
            return;
    }
}

/* Sends len bytes from a to b through the engines; returns what b read. */
static size_t transfer(struct nd_tls *a, struct nd_tls *b, const uint8_t *data, size_t len,
                       uint8_t *got, size_t cap)
{
    size_t sent = 0, recvd = 0;

    for (int guard = 0; guard < 100000 && recvd < len; guard++) {
        if (sent < len) {
            long w = nd_tls_write(a, data + sent, len - sent);
            if (w > 0)
                sent += (size_t)w;
            else
                assert_int_equal(w, ND_TLS_AGAIN);
        }
        /* deliver in small pieces, to exercise partial records */
        {
            size_t n;
            const void *p = nd_tls_out_peek(a, &n);
            if (n > 1000)
                n = 1000;
            nd_tls_out_consume(a, nd_tls_feed(b, p, n));
        }
        for (;;) {
            long r = nd_tls_read(b, got + recvd, cap - recvd);
            if (r > 0) {
                recvd += (size_t)r;
                continue;
            }
            assert_int_equal(r, ND_TLS_AGAIN);
            break;
        }
        pump(b, a); /* e.g. nothing, or key updates */
    }
    return recvd;
}

static void test_handshake_and_data(void **state)
{
    const char *want_web[] = {WEB};
    struct nd_tls_ctx *sc = ctx_for(ND_TLS_SERVER, &web, NULL, 0, 0);
    struct nd_tls_ctx *cc = ctx_for(ND_TLS_CLIENT, &api, want_web, 1, 0);
    struct nd_tls *s = nd_tls_new(sc), *c = nd_tls_new(cc);
    static uint8_t big[200000], got[200000];
    size_t len;
    int rc, rs;

    (void)state;
    assert_int_equal(nd_tls_state(s), ND_TLS_HANDSHAKE);
    handshake(c, s, &rc, &rs);
    assert_int_equal(rc, ND_TLS_OK);
    assert_int_equal(rs, ND_TLS_OK);
    assert_int_equal(nd_tls_state(s), ND_TLS_OPEN);
    /* identities, both ways */
    assert_string_equal(nd_tls_peer_id(s, &len), API);
    assert_int_equal(len, strlen(API));
    assert_string_equal(nd_tls_peer_id(c, NULL), WEB);
    assert_int_equal(nd_tls_peer_not_after(s), api.not_after);
    assert_int_equal(nd_tls_peer_not_after(c), web.not_after);
    assert_string_equal(nd_tls_ctx_id(sc), WEB);
    assert_int_equal(nd_tls_ctx_not_after(sc), web.not_after);
    assert_string_equal(nd_tls_version(s), "TLSv1.3");
    assert_string_equal(nd_tls_alpn(s), "h2");
    assert_string_equal(nd_tls_alpn(c), "h2");
    assert_false(nd_tls_resumed(c));
    assert_non_null(nd_tls_sni(s));
    assert_string_equal(nd_tls_sni(s), "web.default.svc");

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + (i >> 9));
    assert_int_equal(transfer(c, s, big, sizeof(big), got, sizeof(got)), sizeof(big));
    assert_memory_equal(big, got, sizeof(big));
    assert_int_equal(transfer(s, c, big, 1000, got, sizeof(got)), 1000);
    assert_memory_equal(big, got, 1000);

    /* close_notify */
    assert_int_equal(nd_tls_shutdown(c), ND_TLS_OK);
    pump(c, s);
    assert_int_equal(nd_tls_read(s, got, sizeof(got)), ND_TLS_CLOSED);
    assert_int_equal(nd_tls_write(c, "x", 1), ND_TLS_CLOSED);
    nd_tls_free(c);
    nd_tls_free(s);
    nd_tls_ctx_unref(cc);
    nd_tls_ctx_unref(sc);
}

/* A client and a server that fail: checks each side's result. */
static void expect_failure(struct nd_tls_ctx *cc, struct nd_tls_ctx *sc, int want_c, int want_s)
{
    struct nd_tls *s = nd_tls_new(sc), *c = nd_tls_new(cc);
    uint8_t buf[64];
    int rc, rs;

    handshake(c, s, &rc, &rs);
    /* TLS 1.3: the client may have finished before the server refused it; it learns it from
     * the alert on its first read. Nothing is ever delivered as data. */
    if (rc == ND_TLS_OK) {
        pump(s, c);
        rc = (int)nd_tls_read(c, buf, sizeof(buf));
    }
    if (rs == ND_TLS_OK) {
        pump(c, s);
        rs = (int)nd_tls_read(s, buf, sizeof(buf));
    }
    if (want_c)
        assert_int_equal(rc, want_c);
    if (want_s)
        assert_int_equal(rs, want_s);
    assert_true(rc < 0 && rs < 0);
    if (want_s && want_s != ND_TLS_AGAIN)
        assert_int_equal(nd_tls_state(s), ND_TLS_FAILED);
    assert_null(want_s == ND_TLS_E_PEER_CERT || want_s == ND_TLS_E_PEER_ID ? nd_tls_peer_id(s, NULL)
                                                                           : NULL);
    nd_tls_free(c);
    nd_tls_free(s);
}

static void test_client_from_other_ca(void **state)
{
    const char *want_web[] = {WEB};
    struct nd_tls_ctx *sc = ctx_for(ND_TLS_SERVER, &web, NULL, 0, 0);
    struct nd_tls_ctx *cc;
    size_t rl;
    const char *root = nd_ca_root_pem(ca, &rl);
    struct nd_tls_config cfg = {.role = ND_TLS_CLIENT,
                                .ca_pem = root,
                                .ca_len = rl,
                                .cert_pem = foreign.cert,
                                .cert_len = foreign.cert_len,
                                .key_pem = foreign.key,
                                .key_len = foreign.key_len,
                                .peer_ids = want_web,
                                .n_peer_ids = 1};

    (void)state;
    cc = nd_tls_ctx_new(&cfg, err, sizeof(err));
    assert_non_null(cc);
    expect_failure(cc, sc, ND_TLS_E_ALERT, ND_TLS_E_PEER_CERT);
    nd_tls_ctx_unref(cc);
    nd_tls_ctx_unref(sc);
}

static void test_expired_and_not_yet_valid(void **state)
{
    const char *want_web[] = {WEB};
    struct nd_ca_cred old, future;
    struct nd_tls_ctx *sc, *cc;
    int64_t now = time(NULL);

    (void)state;
    assert_int_equal(issue(ca, API, now - 7200, 3600, &old), 0);
    assert_int_equal(issue(ca, API, now + 7200, 3600, &future), 0);
    sc = ctx_for(ND_TLS_SERVER, &web, NULL, 0, 0);
    /* expired client certificate */
    cc = ctx_for(ND_TLS_CLIENT, &old, want_web, 1, 0);
    expect_failure(cc, sc, 0, ND_TLS_E_PEER_CERT);
    nd_tls_ctx_unref(cc);
    /* not yet valid client certificate */
    cc = ctx_for(ND_TLS_CLIENT, &future, want_web, 1, 0);
    expect_failure(cc, sc, 0, ND_TLS_E_PEER_CERT);
    nd_tls_ctx_unref(cc);
    nd_tls_ctx_unref(sc);
    /* expired server certificate: the client refuses */
    sc = ctx_for(ND_TLS_SERVER, &old, NULL, 0, 0);
    cc = ctx_for(ND_TLS_CLIENT, &web, (const char *[]){API}, 1, 0);
    expect_failure(cc, sc, ND_TLS_E_PEER_CERT, 0);
    nd_tls_ctx_unref(cc);
    nd_tls_ctx_unref(sc);
    nd_ca_cred_free(&old);
    nd_ca_cred_free(&future);
}

static void test_spiffe_id_checks(void **state)
{
    const char *want_db[] = {"spiffe://mesh.local/ns/default/sa/db"};
    const char *want_ns[] = {"spiffe://mesh.local/ns/default/*"};
    const char *want_bad_prefix[] = {"spiffe://mesh.local/ns/def/*"};
    const char *allow_api[] = {API, "spiffe://mesh.local/ns/prod/*"};
    struct nd_tls_ctx *sc = ctx_for(ND_TLS_SERVER, &web, NULL, 0, 0), *sc2, *cc;
    struct nd_tls *s, *c;
    int rc, rs;

    (void)state;
    /* the server is not who the client expects */
    cc = ctx_for(ND_TLS_CLIENT, &api, want_db, 1, 0);
    expect_failure(cc, sc, ND_TLS_E_PEER_ID, ND_TLS_E_ALERT);
    nd_tls_ctx_unref(cc);
    /* a prefix stops at a segment boundary */
    cc = ctx_for(ND_TLS_CLIENT, &api, want_bad_prefix, 1, 0);
    expect_failure(cc, sc, ND_TLS_E_PEER_ID, ND_TLS_E_ALERT);
    nd_tls_ctx_unref(cc);
    /* a namespace prefix matches */
    cc = ctx_for(ND_TLS_CLIENT, &api, want_ns, 1, 0);
    s = nd_tls_new(sc);
    c = nd_tls_new(cc);
    handshake(c, s, &rc, &rs);
    assert_int_equal(rc, ND_TLS_OK);
    assert_int_equal(rs, ND_TLS_OK);
    nd_tls_free(c);
    nd_tls_free(s);
    nd_tls_ctx_unref(cc);
    /* a server with an allow list refuses another workload */
    sc2 = ctx_for(ND_TLS_SERVER, &web, allow_api, 2, 0);
    cc = ctx_for(ND_TLS_CLIENT, &evil, (const char *[]){WEB}, 1, 0);
    expect_failure(cc, sc2, ND_TLS_E_ALERT, ND_TLS_E_PEER_ID);
    nd_tls_ctx_unref(cc);
    nd_tls_ctx_unref(sc2);
    nd_tls_ctx_unref(sc);

    /* configuration refusals */
    assert_null(nd_tls_ctx_new(&(struct nd_tls_config){.role = ND_TLS_CLIENT,
                                                       .ca_pem = web.cert,
                                                       .ca_len = web.cert_len,
                                                       .cert_pem = api.cert,
                                                       .cert_len = api.cert_len,
                                                       .key_pem = api.key,
                                                       .key_len = api.key_len},
                               err, sizeof(err)));
    assert_non_null(strstr(err, "expects"));
    assert_null(nd_tls_ctx_new(&(struct nd_tls_config){.role = ND_TLS_SERVER,
                                                       .ca_pem = web.cert,
                                                       .ca_len = web.cert_len,
                                                       .cert_pem = api.cert,
                                                       .cert_len = api.cert_len,
                                                       .key_pem = web.key, /* not api's */
                                                       .key_len = web.key_len},
                               err, sizeof(err)));
    assert_non_null(strstr(err, "does not belong"));
    assert_null(
        nd_tls_ctx_new(&(struct nd_tls_config){.role = ND_TLS_CLIENT,
                                               .ca_pem = web.cert,
                                               .ca_len = web.cert_len,
                                               .cert_pem = api.cert,
                                               .cert_len = api.cert_len,
                                               .key_pem = api.key,
                                               .key_len = api.key_len,
                                               .peer_ids = (const char *[]){"spiffe://x/a?"},
                                               .n_peer_ids = 1},
                       err, sizeof(err)));

    assert_true(nd_tls_id_allowed(WEB, strlen(WEB), want_ns, 1));
    assert_false(nd_tls_id_allowed("spiffe://mesh.local/ns/default", 30, want_ns, 1));
    assert_false(nd_tls_id_allowed(WEB, strlen(WEB), want_bad_prefix, 1));
    assert_false(nd_tls_id_allowed(WEB, strlen(WEB), NULL, 0));
}

/* ---- a bare wolfSSL client, for what our engine refuses to be (no certificate, TLS 1.2) ----*/

struct raw {
    WOLFSSL_CTX *ctx;
    WOLFSSL *ssl;
    uint8_t in[65536], out[65536];
    size_t in_len, out_len;
};

static int raw_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    struct raw *r = arg;
    size_t n = r->in_len < (size_t)sz ? r->in_len : (size_t)sz;

    (void)ssl;
    if (!n)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    memcpy(buf, r->in, n);
    memmove(r->in, r->in + n, r->in_len - n);
    r->in_len -= n;
    return (int)n;
}

static int raw_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    struct raw *r = arg;

    (void)ssl;
    if (r->out_len + (size_t)sz > sizeof(r->out))
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    memcpy(r->out + r->out_len, buf, (size_t)sz);
    r->out_len += (size_t)sz;
    return sz;
}

static void raw_init(struct raw *r, WOLFSSL_METHOD *m, const struct nd_ca_cred *cred)
{
    size_t rl;
    const char *root = nd_ca_root_pem(ca, &rl);

    memset(r, 0, sizeof(*r));
    r->ctx = wolfSSL_CTX_new(m);
    assert_non_null(r->ctx);
    assert_int_equal(wolfSSL_CTX_load_verify_buffer(r->ctx, (const unsigned char *)root, (long)rl,
                                                    WOLFSSL_FILETYPE_PEM),
                     WOLFSSL_SUCCESS);
    if (cred) {
        assert_int_equal(wolfSSL_CTX_use_certificate_chain_buffer(
                             r->ctx, (const unsigned char *)cred->cert, (long)cred->cert_len),
                         WOLFSSL_SUCCESS);
        assert_int_equal(wolfSSL_CTX_use_PrivateKey_buffer(r->ctx, (const unsigned char *)cred->key,
                                                           (long)cred->key_len,
                                                           WOLFSSL_FILETYPE_PEM),
                         WOLFSSL_SUCCESS);
    }
    wolfSSL_CTX_SetIORecv(r->ctx, raw_recv);
    wolfSSL_CTX_SetIOSend(r->ctx, raw_send);
    r->ssl = wolfSSL_new(r->ctx);
    assert_non_null(r->ssl);
    wolfSSL_SetIOReadCtx(r->ssl, r);
    wolfSSL_SetIOWriteCtx(r->ssl, r);
}

static void raw_free(struct raw *r)
{
    wolfSSL_free(r->ssl);
    wolfSSL_CTX_free(r->ctx);
}

/* Runs a bare client against a server engine; returns the server's handshake result. */
static int raw_handshake(struct raw *r, struct nd_tls *s, int *client_ok)
{
    int rs = ND_TLS_AGAIN;

    *client_ok = 0;
    for (int i = 0; i < 20; i++) {
        size_t n, took;
        const void *p;
        if (wolfSSL_connect(r->ssl) == WOLFSSL_SUCCESS)
            *client_ok = 1;
        took = nd_tls_feed(s, r->out, r->out_len);
        memmove(r->out, r->out + took, r->out_len - took);
        r->out_len -= took;
        rs = nd_tls_handshake(s);
        if (rs == ND_TLS_OK && *client_ok) {
            uint8_t b[16];
            rs = (int)nd_tls_read(s, b, sizeof(b)); /* TLS 1.3: the client's flight may be late */
            if (rs == ND_TLS_AGAIN)
                rs = ND_TLS_OK;
        }
        p = nd_tls_out_peek(s, &n);
        if (n > sizeof(r->in) - r->in_len)
            n = sizeof(r->in) - r->in_len;
        memcpy(r->in + r->in_len, p, n);
        r->in_len += n;
        nd_tls_out_consume(s, n);
        if (rs != ND_TLS_AGAIN && (rs != ND_TLS_OK || *client_ok))
            break;
    }
    return rs;
}

static void test_no_client_cert_and_versions(void **state)
{
    struct nd_tls_ctx *sc = ctx_for(ND_TLS_SERVER, &web, NULL, 0, 0);
    struct nd_tls_ctx *sc12 = ctx_for(ND_TLS_SERVER, &web, NULL, 0, ND_TLS_ALLOW_TLS12);
    struct nd_tls *s;
    struct raw r;
    int ok;

    (void)state;
    /* strict: a client without a certificate is refused */
    raw_init(&r, wolfTLSv1_3_client_method(), NULL);
    s = nd_tls_new(sc);
    assert_int_equal(raw_handshake(&r, s, &ok), ND_TLS_E_PEER_CERT);
    nd_tls_free(s);
    raw_free(&r);
    /* TLS 1.2 is refused by default ... */
    raw_init(&r, wolfTLSv1_2_client_method(), &api);
    s = nd_tls_new(sc);
    assert_true(raw_handshake(&r, s, &ok) < ND_TLS_AGAIN);
    assert_int_equal(nd_tls_state(s), ND_TLS_FAILED);
    nd_tls_free(s);
    raw_free(&r);
    /* ... and accepted with the flag, still with a verified client certificate */
    raw_init(&r, wolfTLSv1_2_client_method(), &api);
    s = nd_tls_new(sc12);
    assert_int_equal(raw_handshake(&r, s, &ok), ND_TLS_OK);
    assert_true(ok);
    assert_string_equal(nd_tls_version(s), "TLSv1.2");
    assert_string_equal(nd_tls_peer_id(s, NULL), API);
    nd_tls_free(s);
    raw_free(&r);
    /* TLS 1.2 without a client certificate: still refused */
    raw_init(&r, wolfTLSv1_2_client_method(), NULL);
    s = nd_tls_new(sc12);
    assert_int_equal(raw_handshake(&r, s, &ok), ND_TLS_E_PEER_CERT);
    nd_tls_free(s);
    raw_free(&r);
    nd_tls_ctx_unref(sc12);
    nd_tls_ctx_unref(sc);
}

static void test_garbage_and_plaintext(void **state)
{
    struct nd_tls_ctx *sc = ctx_for(ND_TLS_SERVER, &web, NULL, 0, 0);
    struct nd_tls_ctx *cc = ctx_for(ND_TLS_CLIENT, &api, (const char *[]){WEB}, 1, 0);
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    uint8_t hello[4096], junk[600];
    struct nd_tls *s, *c;
    size_t hlen;
    const void *p;

    (void)state;
    /* first-bytes detection */
    assert_int_equal(nd_tls_sniff(http, strlen(http)), ND_TLS_SNIFF_PLAIN);
    assert_int_equal(nd_tls_sniff("\x16\x03\x01\x02\x00", 5), ND_TLS_SNIFF_TLS);
    assert_int_equal(nd_tls_sniff("\x16\x03\x04", 3), ND_TLS_SNIFF_TLS);
    assert_int_equal(nd_tls_sniff("\x16\x03\x05", 3), ND_TLS_SNIFF_PLAIN);
    assert_int_equal(nd_tls_sniff("\x16\x03", 2), ND_TLS_SNIFF_MORE);
    assert_int_equal(nd_tls_sniff("\x16", 1), ND_TLS_SNIFF_MORE);
    assert_int_equal(nd_tls_sniff("", 0), ND_TLS_SNIFF_MORE);
    assert_int_equal(nd_tls_sniff("\x16\x04", 2), ND_TLS_SNIFF_PLAIN);
    assert_int_equal(nd_tls_sniff("\x17\x03\x03", 3), ND_TLS_SNIFF_PLAIN); /* not a handshake */

    /* plaintext on a strict engine: refused at once, nothing sent back */
    s = nd_tls_new(sc);
    nd_tls_feed(s, http, strlen(http));
    assert_int_equal(nd_tls_handshake(s), ND_TLS_E_NOT_TLS);
    assert_int_equal(nd_tls_state(s), ND_TLS_FAILED);
    nd_tls_out_peek(s, &hlen);
    assert_int_equal(hlen, 0);
    assert_int_equal(nd_tls_feed(s, "x", 1), 0);
    nd_tls_free(s);

    /* a real ClientHello, captured */
    c = nd_tls_new(cc);
    assert_int_equal(nd_tls_handshake(c), ND_TLS_AGAIN);
    p = nd_tls_out_peek(c, &hlen);
    assert_true(hlen > 50 && hlen < sizeof(hello));
    memcpy(hello, p, hlen);
    nd_tls_free(c);

    /* truncated: waits for more, then fails when the transport ends */
    s = nd_tls_new(sc);
    nd_tls_feed(s, hello, hlen / 2);
    assert_int_equal(nd_tls_handshake(s), ND_TLS_AGAIN);
    assert_int_equal(nd_tls_state(s), ND_TLS_HANDSHAKE);
    nd_tls_feed_eof(s);
    assert_int_equal(nd_tls_handshake(s), ND_TLS_E_TRUNCATED);
    nd_tls_free(s);

    /* a valid record header followed by garbage */
    srand(1);
    for (int round = 0; round < 50; round++) {
        size_t n = 5 + (size_t)(rand() % (int)(sizeof(junk) - 5));
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)rand();
        junk[0] = 0x16;
        junk[1] = 0x03;
        junk[2] = 0x01;
        junk[3] = (uint8_t)((n - 5) >> 8);
        junk[4] = (uint8_t)(n - 5);
        s = nd_tls_new(sc);
        nd_tls_feed(s, junk, n);
        assert_int_equal(nd_tls_handshake(s), ND_TLS_E_PROTO);
        nd_tls_free(s);
    }
    /* the real hello with bytes flipped in its body: never a success */
    for (size_t i = 5; i < hlen; i += 7) {
        int r;
        hello[i] ^= 0x5a;
        s = nd_tls_new(sc);
        nd_tls_feed(s, hello, hlen);
        r = nd_tls_handshake(s);
        assert_true(r == ND_TLS_AGAIN || r == ND_TLS_E_PROTO || r == ND_TLS_E_PEER_CERT);
        nd_tls_free(s);
        hello[i] ^= 0x5a;
    }
    nd_tls_ctx_unref(cc);
    nd_tls_ctx_unref(sc);
}

static void test_rotation(void **state)
{
    struct nd_tls_ctx *cc = ctx_for(ND_TLS_CLIENT, &api, (const char *[]){WEB, API}, 2, 0);
    struct nd_tls_ctx *sc1 = ctx_for(ND_TLS_SERVER, &web, NULL, 0, 0), *sc2, *cur;
    struct nd_ca_cred web2;
    struct nd_tls_slot slot;
    struct nd_tls *s1, *c1, *s2, *c2;
    uint8_t got[64];
    uint64_t g1;
    int rc, rs;

    (void)state;
    nd_tls_slot_init(&slot, sc1);
    g1 = nd_tls_slot_generation(&slot);
    cur = nd_tls_slot_get(&slot);
    s1 = nd_tls_new(cur);
    nd_tls_ctx_unref(cur);
    c1 = nd_tls_new(cc);
    handshake(c1, s1, &rc, &rs);
    assert_int_equal(rs, ND_TLS_OK);
    assert_int_equal(nd_tls_peer_not_after(c1), web.not_after);

    /* a renewed certificate (later expiry), swapped in */
    assert_int_equal(issue(ca, WEB, 0, 48 * 3600, &web2), 0);
    sc2 = ctx_for(ND_TLS_SERVER, &web2, NULL, 0, 0);
    nd_tls_slot_swap(&slot, sc2);
    assert_true(nd_tls_slot_generation(&slot) > g1);

    /* new handshakes get the new certificate */
    cur = nd_tls_slot_get(&slot);
    s2 = nd_tls_new(cur);
    assert_int_equal(nd_tls_generation(s2), nd_tls_slot_generation(&slot));
    nd_tls_ctx_unref(cur);
    c2 = nd_tls_new(cc);
    handshake(c2, s2, &rc, &rs);
    assert_int_equal(rs, ND_TLS_OK);
    assert_int_equal(nd_tls_peer_not_after(c2), web2.not_after);
    assert_int_not_equal(web2.not_after, web.not_after);

    /* the established session keeps working on the old context (its last reference) */
    assert_int_equal(nd_tls_generation(s1), g1);
    assert_int_equal(transfer(c1, s1, (const uint8_t *)"still here", 10, got, sizeof(got)), 10);
    assert_memory_equal(got, "still here", 10);
    assert_int_equal(transfer(s1, c1, (const uint8_t *)"yes", 3, got, sizeof(got)), 3);
    nd_tls_free(s1); /* frees the old context */
    nd_tls_free(c1);
    assert_int_equal(transfer(c2, s2, (const uint8_t *)"new", 3, got, sizeof(got)), 3);
    nd_tls_free(s2);
    nd_tls_free(c2);
    nd_tls_slot_fini(&slot);
    nd_tls_ctx_unref(cc);
    nd_ca_cred_free(&web2);
}

static void test_resumption(void **state)
{
    struct nd_tls_ctx *sc = ctx_for(ND_TLS_SERVER, &web, NULL, 0, 0);
    struct nd_tls_ctx *cc = ctx_for(ND_TLS_CLIENT, &api, (const char *[]){WEB}, 1, 0), *sc2;
    struct nd_tls_session *sess;
    struct nd_tls *s, *c;
    uint8_t got[16];
    int rc, rs;

    (void)state;
    s = nd_tls_new(sc);
    c = nd_tls_new(cc);
    handshake(c, s, &rc, &rs);
    assert_int_equal(rs, ND_TLS_OK);
    /* the ticket comes after the handshake: the client reads it with data */
    assert_int_equal(transfer(s, c, (const uint8_t *)"hello", 5, got, sizeof(got)), 5);
    sess = nd_tls_session_get(c);
    assert_non_null(sess);
    nd_tls_free(c);
    nd_tls_free(s);

    /* a server with another context (rotated certificate) cannot open the ticket: a full,
     * verified handshake happens instead */
    sc2 = ctx_for(ND_TLS_SERVER, &web, NULL, 0, 0);
    s = nd_tls_new(sc2);
    c = nd_tls_new(cc);
    assert_int_equal(nd_tls_session_set(c, sess), ND_TLS_OK);
    handshake(c, s, &rc, &rs);
    assert_int_equal(rs, ND_TLS_OK);
    assert_false(nd_tls_resumed(s));
    assert_string_equal(nd_tls_peer_id(s, NULL), API);
    nd_tls_free(c);
    nd_tls_free(s);
    nd_tls_ctx_unref(sc2);

    s = nd_tls_new(sc);
    c = nd_tls_new(cc);
    assert_int_equal(nd_tls_session_set(c, sess), ND_TLS_OK);
    nd_tls_session_free(sess);
    handshake(c, s, &rc, &rs);
    assert_int_equal(rc, ND_TLS_OK);
    assert_int_equal(rs, ND_TLS_OK);
    assert_true(nd_tls_resumed(c));
    assert_true(nd_tls_resumed(s));
    /* the identity is still known on both sides */
    assert_string_equal(nd_tls_peer_id(s, NULL), API);
    assert_string_equal(nd_tls_peer_id(c, NULL), WEB);
    nd_tls_free(c);
    nd_tls_free(s);
    nd_tls_ctx_unref(cc);
    nd_tls_ctx_unref(sc);
}

/* wolfSSL 5.5.4's default ticket key failed every handshake about two seconds after the first
 * ticket (a key encrypted only while it outlived the ticket hint, 3600 s, and it lived 3600 s).
 * Full handshakes on one server context, spread over more than three seconds. */
static void test_tickets_over_time(void **state)
{
    struct nd_tls_ctx *sc = ctx_for(ND_TLS_SERVER, &web, NULL, 0, 0);
    struct nd_tls_ctx *cc = ctx_for(ND_TLS_CLIENT, &api, (const char *[]){WEB}, 1, 0);
    uint8_t got[16];
    int rc, rs;

    (void)state;
    for (int i = 0; i < 6; i++) {
        struct nd_tls *s = nd_tls_new(sc), *c = nd_tls_new(cc);
        if (i)
            nanosleep(&(struct timespec){.tv_nsec = 600 * 1000 * 1000}, NULL);
        handshake(c, s, &rc, &rs);
        if (rs != ND_TLS_OK || rc != ND_TLS_OK)
            fail_msg("handshake %d: server %d (%s, wolf %s), client %d", i, rs,
                     nd_tls_error_reason(s), nd_tls_error_text(s), rc);
        assert_int_equal(transfer(s, c, (const uint8_t *)"hello", 5, got, sizeof(got)), 5);
        nd_tls_free(c);
        nd_tls_free(s);
    }
    nd_tls_ctx_unref(cc);
    nd_tls_ctx_unref(sc);
}

/* One connection: handshake, data both ways (the ticket comes with the server's data). Returns
 * whether the server resumed; *sess is replaced by the client's new session. */
static bool connect_once(struct nd_tls_ctx *sc, struct nd_tls_ctx *cc, struct nd_tls_session **sess)
{
    struct nd_tls *s = nd_tls_new(sc), *c = nd_tls_new(cc);
    uint8_t got[16];
    bool resumed;
    int rc, rs;

    if (*sess)
        assert_int_equal(nd_tls_session_set(c, *sess), ND_TLS_OK);
    handshake(c, s, &rc, &rs);
    if (rs != ND_TLS_OK || rc != ND_TLS_OK)
        fail_msg("handshake: server %d (%s, %s), client %d", rs, nd_tls_error_reason(s),
                 nd_tls_error_text(s), rc);
    resumed = nd_tls_resumed(s);
    assert_true(resumed == nd_tls_resumed(c));
    /* the identities are known both ways, resumed or not */
    assert_string_equal(nd_tls_peer_id(s, NULL), API);
    assert_int_equal(nd_tls_peer_not_after(s), api.not_after);
    assert_string_equal(nd_tls_peer_id(c, NULL), WEB);
    assert_int_equal(transfer(c, s, (const uint8_t *)"ping", 4, got, sizeof(got)), 4);
    assert_int_equal(transfer(s, c, (const uint8_t *)"pong", 4, got, sizeof(got)), 4);
    nd_tls_session_free(*sess);
    *sess = nd_tls_session_get(c);
    assert_non_null(*sess);
    nd_tls_free(c);
    nd_tls_free(s);
    return resumed;
}

/* Hundreds of resumptions on our ticket keys, with key rotations: a ticket of the previous key
 * still resumes, one two rotations old falls back to a full, verified handshake. */
static void test_ticket_resumption_and_rotation(void **state)
{
    struct nd_tls_ctx *sc = ctx_for(ND_TLS_SERVER, &web, NULL, 0, 0);
    struct nd_tls_ctx *cc = ctx_for(ND_TLS_CLIENT, &api, (const char *[]){WEB}, 1, 0);
    struct nd_tls_ctx *strict;
    struct nd_tls_session *sess = NULL, *old = NULL;
    int resumed = 0;

    (void)state;
    assert_false(connect_once(sc, cc, &sess)); /* full: no ticket yet */
    for (int i = 0; i < 300; i++) {
        if (i == 150) {
            /* rotation: the ticket in hand (previous key) still resumes, and the new ticket
             * is of the new key */
            assert_int_equal(nd_tls_ctx_rotate_ticket_key(sc), 0);
        }
        resumed += connect_once(sc, cc, &sess);
    }
    assert_int_equal(resumed, 300);

    /* keep a ticket of the current key, rotate twice: it is too old, a full handshake */
    assert_true(connect_once(sc, cc, &sess));
    old = sess;
    sess = NULL;
    assert_int_equal(nd_tls_ctx_rotate_ticket_key(sc), 0);
    {
        struct nd_tls_session *copy = old;
        /* after one rotation it still resumes (and yields a ticket of the new key) */
        old = NULL;
        assert_true(connect_once(sc, cc, &copy));
        sess = copy;
    }
    assert_int_equal(nd_tls_ctx_rotate_ticket_key(sc), 0);
    assert_true(connect_once(sc, cc, &sess)); /* a ticket of the previous key: resumes */
    {
        struct nd_tls_session *first = NULL;
        assert_false(connect_once(sc, cc, &first));
        assert_int_equal(nd_tls_ctx_rotate_ticket_key(sc), 0);
        assert_int_equal(nd_tls_ctx_rotate_ticket_key(sc), 0);
        assert_false(connect_once(sc, cc, &first)); /* two rotations later: full handshake */
        assert_true(connect_once(sc, cc, &first));  /* and its new ticket resumes */
        nd_tls_session_free(first);
    }

    /* the identity in a ticket is checked against the context it resumes on: a server that
     * does not allow API any more refuses the resumption like a full handshake */
    strict = ctx_for(ND_TLS_SERVER, &web, (const char *[]){WEB}, 1, 0);
    {
        struct nd_tls *s = nd_tls_new(strict), *c = nd_tls_new(cc);
        int rc, rs;
        assert_int_equal(nd_tls_session_set(c, sess), ND_TLS_OK);
        handshake(c, s, &rc, &rs);
        assert_int_equal(rs, ND_TLS_E_PEER_ID);
        nd_tls_free(c);
        nd_tls_free(s);
    }
    nd_tls_ctx_unref(strict);
    /* tickets off: nothing to rotate */
    {
        struct nd_tls_ctx *nt = ctx_for(ND_TLS_SERVER, &web, NULL, 0, ND_TLS_NO_TICKETS);
        assert_int_equal(nd_tls_ctx_rotate_ticket_key(nt), -1);
        nd_tls_ctx_unref(nt);
    }
    nd_tls_session_free(sess);
    nd_tls_ctx_unref(cc);
    nd_tls_ctx_unref(sc);
}

/* Time-based rotation, with a 1-second key period: a ticket resumes within the period, and after
 * more than two periods it does not (full handshake), without any call to rotate. */
static void test_ticket_rotation_by_time(void **state)
{
    size_t rl;
    const char *root = nd_ca_root_pem(ca, &rl);
    struct nd_tls_config cfg = {.role = ND_TLS_SERVER,
                                .ca_pem = root,
                                .ca_len = rl,
                                .cert_pem = web.cert,
                                .cert_len = web.cert_len,
                                .key_pem = web.key,
                                .key_len = web.key_len,
                                .session_timeout = 60, /* clamped to the key period */
                                .ticket_rotate = 1};
    struct nd_tls_ctx *sc = nd_tls_ctx_new(&cfg, err, sizeof(err));
    struct nd_tls_ctx *cc = ctx_for(ND_TLS_CLIENT, &api, (const char *[]){WEB}, 1, 0);
    struct nd_tls_session *sess = NULL;

    (void)state;
    assert_non_null(sc);
    assert_false(connect_once(sc, cc, &sess));
    assert_true(connect_once(sc, cc, &sess));
    nanosleep(&(struct timespec){.tv_sec = 3, .tv_nsec = 100 * 1000 * 1000}, NULL);
    assert_false(connect_once(sc, cc, &sess));
    nd_tls_session_free(sess);
    nd_tls_ctx_unref(cc);
    nd_tls_ctx_unref(sc);
}

/* An independent peer: openssl s_client over loopback TCP against a server engine. It verifies
 * our chain to the root with -verify_return_error; we verify its client certificate. */
static void test_openssl_client(void **state)
{
    struct nd_tls_ctx *sc = ctx_for(ND_TLS_SERVER, &web, NULL, 0, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    char cmd[1024], out[8192], pfx[128], rp[128], buf[4096];
    struct nd_tls *t;
    size_t rl, n = 0;
    const char *root = nd_ca_root_pem(ca, &rl);
    int l, fd, got_hello = 0, sent = 0;
    FILE *f;

    (void)state;
    if (system("openssl version >/dev/null 2>&1") != 0) {
        nd_tls_ctx_unref(sc);
        skip();
    }
    snprintf(pfx, sizeof(pfx), "%s/api", tmpdir);
    snprintf(rp, sizeof(rp), "%s/root.pem", tmpdir);
    assert_int_equal(nd_ca_cred_write(&api, pfx, err, sizeof(err)), 0);
    assert_int_equal(nd_ca_write_file(rp, root, rl, 0644), 0);
    l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(l >= 0);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    snprintf(cmd, sizeof(cmd),
             "echo hello | timeout 10 openssl s_client -connect 127.0.0.1:%d -tls1_3 "
             "-cert %s.pem -key %s.key -CAfile %s -verify_return_error -alpn h2 "
             "-servername web.default.svc -quiet 2>&1",
             ntohs(a.sin_port), pfx, pfx, rp);
    f = popen(cmd, "r");
    assert_non_null(f);
    {
        struct pollfd p = {.fd = l, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 10000), 1);
    }
    fd = accept(l, NULL, NULL);
    assert_true(fd >= 0);
    t = nd_tls_new(sc);
    for (int i = 0; i < 200 && !sent; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        const void *o;
        size_t on;
        long r;
        if (poll(&p, 1, 100) == 1) {
            ssize_t k = read(fd, buf, sizeof(buf));
            if (k <= 0)
                break;
            assert_int_equal(nd_tls_feed(t, buf, (size_t)k), (size_t)k);
        }
        r = nd_tls_read(t, buf, sizeof(buf));
        if (r > 0 && memmem(buf, (size_t)r, "hello", 5))
            got_hello = 1;
        else if (r != ND_TLS_AGAIN)
            assert_true(r > 0);
        if (got_hello) {
            assert_int_equal(nd_tls_write(t, "world\n", 6), 6);
            assert_int_equal(nd_tls_shutdown(t), ND_TLS_OK);
            sent = 1;
        }
        o = nd_tls_out_peek(t, &on);
        if (on) {
            assert_int_equal(write(fd, o, on), (ssize_t)on);
            nd_tls_out_consume(t, on);
        }
    }
    assert_true(got_hello);
    assert_string_equal(nd_tls_peer_id(t, NULL), API);
    assert_string_equal(nd_tls_alpn(t), "h2");
    assert_string_equal(nd_tls_sni(t), "web.default.svc");
    close(fd);
    close(l);
    n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    pclose(f);
    if (!strstr(out, "world"))
        fail_msg("openssl s_client: %s", out);
    nd_tls_free(t);
    nd_tls_ctx_unref(sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_data),
        cmocka_unit_test(test_client_from_other_ca),
        cmocka_unit_test(test_expired_and_not_yet_valid),
        cmocka_unit_test(test_spiffe_id_checks),
        cmocka_unit_test(test_no_client_cert_and_versions),
        cmocka_unit_test(test_garbage_and_plaintext),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_resumption),
        cmocka_unit_test(test_tickets_over_time),
        cmocka_unit_test(test_ticket_resumption_and_rotation),
        cmocka_unit_test(test_ticket_rotation_by_time),
        cmocka_unit_test(test_openssl_client),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
