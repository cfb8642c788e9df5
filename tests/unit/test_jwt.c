/*
 * Unit tests of the jwt plugin's verifier (plugins/jwt/verify.c, json.c): RS256 and ES256 tokens
 * signed by the openssl CLI (independent of our code: keys are generated and tokens signed at
 * setup; the test only base64url-encodes and, for ES256, turns openssl's DER signature into JWS
 * r||s), time claims with and without skew, iss and aud, alg none, HS256 signed with the RSA public
 * key (algorithm confusion), unknown kid, bad signatures, truncated and garbage tokens, the JSON
 * tokenizer, base64url strictness, JWKS errors, and configuration errors through the loader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../plugins/jwt/json.h"
#include "../../plugins/jwt/verify.h"
#include "config.h"
#include "log.h"

static char dir[64];
static char jwks[4096];
static const char ISS[] = "https://idp.test";
static int64_t now;

/* ---- helpers independent of the code under test ---- */

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    int st;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static size_t read_file(const char *name, uint8_t *buf, size_t cap)
{
    char path[128];
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "rb");
    assert_non_null(f);
    n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void write_file(const char *name, const void *p, size_t n)
{
    char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static size_t b64url(const uint8_t *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        out[o++] = a[v & 63];
    }
    if (n - i == 1) {
        out[o++] = a[in[i] >> 2];
        out[o++] = a[(in[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        out[o++] = a[v >> 10];
        out[o++] = a[(v >> 4) & 63];
        out[o++] = a[(v & 15) << 2];
    }
    out[o] = '\0';
    return o;
}

static size_t b64url_str(const char *s, char *out)
{
    return b64url((const uint8_t *)s, strlen(s), out);
}

/* One INTEGER of a DER ECDSA-Sig-Value at *p into 32 bytes, big-endian, left-padded. */
static void der_int(const uint8_t **p, uint8_t out[32])
{
    size_t len;

    assert_int_equal((*p)[0], 0x02);
    len = (*p)[1];
    *p += 2;
    while (len > 32) {
        assert_int_equal(**p, 0);
        (*p)++, len--;
    }
    memset(out, 0, 32);
    memcpy(out + 32 - len, *p, len);
    *p += len;
}

enum signer { RSA1, RSA2, EC1, HMAC_RSA_PUB, NO_SIG, EC1_DER };

/* header.payload signed by openssl with the given key, into tok. */
static void make(char *tok, const char *header, const char *payload, enum signer how)
{
    uint8_t sig[1024], raw[64];
    size_t n, sl;
    char path[128];

    n = b64url_str(header, tok);
    tok[n++] = '.';
    n += b64url_str(payload, tok + n);
    write_file("input", tok, n);
    tok[n++] = '.';
    tok[n] = '\0';
    snprintf(path, sizeof(path), "%s/input", dir);
    switch (how) {
    case NO_SIG:
        return;
    case HMAC_RSA_PUB: /* the classic confusion: the RSA public key as an HMAC secret */
        assert_int_equal(run("cd %s && openssl dgst -sha256 -mac HMAC -macopt "
                             "hexkey:$(od -An -tx1 -v rsa1.pub | tr -d ' \\n') -binary -out sig "
                             "input",
                             dir),
                         0);
        break;
    default:
        assert_int_equal(run("cd %s && openssl dgst -sha256 -sign %s -out sig input", dir,
                             how == RSA1   ? "rsa1.pem"
                             : how == RSA2 ? "rsa2.pem"
                                           : "ec1.pem"),
                         0);
    }
    sl = read_file("sig", sig, sizeof(sig));
    if (how == EC1) {
        const uint8_t *p = sig + 2;

        assert_int_equal(sig[0], 0x30);
        der_int(&p, raw);
        der_int(&p, raw + 32);
        memcpy(sig, raw, 64);
        sl = 64;
    }
    b64url(sig, sl, tok + n);
}

static int setup(void **state)
{
    uint8_t der[512], n[600];
    char hex[1200], nb[800], xb[64], yb[64];
    size_t len, nl = 0;
    FILE *f;

    (void)state;
    nd_log_level = NODUS_LOG_WARN;
    now = (int64_t)time(NULL);
    if (run("openssl version >/dev/null 2>&1") != 0)
        return 0; /* tests skip */
    snprintf(dir, sizeof(dir), "/tmp/nodus-test-jwt-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    if (run("cd %s && openssl genrsa -out rsa1.pem 2048 2>/dev/null && "
            "openssl genrsa -out rsa2.pem 2048 2>/dev/null && "
            "openssl rsa -in rsa1.pem -pubout -out rsa1.pub 2>/dev/null && "
            "openssl ecparam -name prime256v1 -genkey -noout -out ec1.pem && "
            "openssl ec -in ec1.pem -pubout -outform DER -out ec1.der 2>/dev/null && "
            "openssl rsa -in rsa1.pem -noout -modulus | cut -d= -f2 > rsa1.mod",
            dir) != 0)
        return -1;
    /* n from the modulus in hex, x and y from the last 65 bytes (04 || x || y) of the SPKI */
    snprintf((char *)der, sizeof(der), "%s/rsa1.mod", dir);
    f = fopen((char *)der, "r");
    if (!f || !fgets(hex, sizeof(hex), f))
        return -1;
    fclose(f);
    for (size_t i = 0; hex[i] && hex[i + 1] && hex[i] != '\n'; i += 2) {
        unsigned v;

        sscanf(hex + i, "%2x", &v);
        n[nl++] = (uint8_t)v;
    }
    b64url(n, nl, nb);
    len = read_file("ec1.der", der, sizeof(der));
    b64url(der + len - 64, 32, xb);
    b64url(der + len - 32, 32, yb);
    snprintf(jwks, sizeof(jwks),
             "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"use\":\"sig\",\"alg\":\"RS256\","
             "\"n\":\"%s\",\"e\":\"AQAB\"},"
             "{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
             "{\"kty\":\"oct\",\"kid\":\"h1\",\"k\":\"c2VjcmV0\"}]}",
             nb, xb, yb);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (dir[0])
        run("rm -rf '%s'", dir);
    return 0;
}

#define NEED_OPENSSL()                                                                             \
    do {                                                                                           \
        if (!jwks[0])                                                                              \
            skip();                                                                                \
    } while (0)

static struct jw_set *set_with(const char *const *aud, size_t n_aud)
{
    struct jw_set *s = jw_new();
    char err[256];

    assert_non_null(s);
    if (jw_add_issuer(s, ISS, aud, n_aud, jwks, strlen(jwks), err, sizeof(err)) != 0)
        fail_msg("jw_add_issuer: %s", err);
    assert_int_equal(jw_key_count(s, 0), 2); /* the oct key is never used */
    return s;
}

static char tok[JW_MAX_TOKEN * 2];

static enum jw_status verify(struct jw_set *s, int64_t skew)
{
    struct jw_worker *w = jw_worker_new(s);
    struct jw_result r;
    enum jw_status st;

    assert_non_null(w);
    st = jw_verify(s, w, tok, strlen(tok), now, skew, &r);
    jw_worker_free(w);
    return st;
}

static char payload[1024];

static const char *claims(const char *extra)
{
    snprintf(payload, sizeof(payload), "{\"iss\":\"%s\",\"sub\":\"alice\",\"exp\":%lld%s}", ISS,
             (long long)now + 600, extra);
    return payload;
}

#define RS_KID "{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"JWT\"}"
#define ES_KID "{\"alg\":\"ES256\",\"kid\":\"e1\"}"

/* ---- tokens ---- */

static void test_valid_rs256_es256(void **state)
{
    struct jw_set *s;
    struct jw_worker *w;
    struct jw_result r;
    char out[256];
    long n;

    (void)state;
    NEED_OPENSSL();
    s = set_with((const char *const[]){"api"}, 1);
    w = jw_worker_new(s);
    make(tok, RS_KID,
         claims(",\"aud\":[\"other\",\"api\"],\"groups\":[\"a\",\"b\"],\"n\":42,"
                "\"ok\":true,\"ctx\":{\"team\":\"blue\"},\"bad\":\"x\\ny\""),
         RSA1);
    assert_int_equal(jw_verify(s, w, tok, strlen(tok), now, 60, &r), JW_OK);
    assert_int_equal(r.issuer, 0);
    assert_int_equal(r.iss.len, strlen(ISS));
    assert_memory_equal(r.iss.p, ISS, r.iss.len);
    assert_int_equal(r.sub.len, 5);
    assert_memory_equal(r.sub.p, "alice", 5);
    /* claims as header text */
    n = jw_claim(w, "sub", out, sizeof(out));
    assert_int_equal(n, 5);
    assert_memory_equal(out, "alice", 5);
    n = jw_claim(w, "groups", out, sizeof(out));
    assert_int_equal(n, 3);
    assert_memory_equal(out, "a,b", 3);
    assert_int_equal(jw_claim(w, "n", out, sizeof(out)), 2);
    assert_int_equal(jw_claim(w, "ok", out, sizeof(out)), 4);
    n = jw_claim(w, "ctx.team", out, sizeof(out));
    assert_int_equal(n, 4);
    assert_memory_equal(out, "blue", 4);
    assert_int_equal(jw_claim(w, "ctx", out, sizeof(out)), -1); /* an object */
    assert_int_equal(jw_claim(w, "bad", out, sizeof(out)), -1); /* a newline: never a header */
    assert_int_equal(jw_claim(w, "nothere", out, sizeof(out)), 0);
    assert_int_equal(jw_claim(w, "sub", out, 3), -1); /* does not fit */

    make(tok, ES_KID, claims(",\"aud\":\"api\""), EC1);
    assert_int_equal(jw_verify(s, w, tok, strlen(tok), now, 60, &r), JW_OK);
    /* no kid: every key of the token's type is tried */
    make(tok, "{\"alg\":\"ES256\"}", claims(",\"aud\":\"api\""), EC1);
    assert_int_equal(jw_verify(s, w, tok, strlen(tok), now, 60, &r), JW_OK);
    make(tok, "{\"alg\":\"RS256\"}", claims(",\"aud\":\"api\""), RSA1);
    assert_int_equal(jw_verify(s, w, tok, strlen(tok), now, 60, &r), JW_OK);
    jw_worker_free(w);
    jw_free(s);
}

static void test_times(void **state)
{
    struct jw_set *s;
    char p[256];

    (void)state;
    NEED_OPENSSL();
    s = set_with(NULL, 0);
    snprintf(p, sizeof(p), "{\"iss\":\"%s\",\"exp\":%lld}", ISS, (long long)now - 100);
    make(tok, RS_KID, p, RSA1);
    assert_int_equal(verify(s, 60), JW_E_EXPIRED);
    snprintf(p, sizeof(p), "{\"iss\":\"%s\",\"exp\":%lld}", ISS, (long long)now - 30);
    make(tok, RS_KID, p, RSA1);
    assert_int_equal(verify(s, 60), JW_OK); /* within the skew */
    assert_int_equal(verify(s, 0), JW_E_EXPIRED);
    snprintf(p, sizeof(p), "{\"iss\":\"%s\",\"exp\":%lld}", ISS, (long long)now);
    make(tok, RS_KID, p, RSA1);
    assert_int_equal(verify(s, 0), JW_E_EXPIRED); /* exp is the first instant it is not valid */
    snprintf(p, sizeof(p), "{\"iss\":\"%s\",\"nbf\":%lld}", ISS, (long long)now + 30);
    make(tok, RS_KID, p, RSA1);
    assert_int_equal(verify(s, 60), JW_OK);
    assert_int_equal(verify(s, 0), JW_E_NOT_YET_VALID);
    snprintf(p, sizeof(p), "{\"iss\":\"%s\",\"nbf\":%lld.5,\"exp\":%lld.25}", ISS,
             (long long)now - 10, (long long)now + 10);
    make(tok, RS_KID, p, RSA1);
    assert_int_equal(verify(s, 0), JW_OK); /* NumericDate may have a fraction */
    snprintf(p, sizeof(p), "{\"iss\":\"%s\",\"exp\":\"%lld\"}", ISS, (long long)now + 10);
    make(tok, RS_KID, p, RSA1);
    assert_int_equal(verify(s, 0), JW_E_CLAIMS);
    snprintf(p, sizeof(p), "{\"iss\":\"%s\",\"exp\":1e12}", ISS);
    make(tok, RS_KID, p, RSA1);
    assert_int_equal(verify(s, 0), JW_E_CLAIMS);
    /* no exp at all is accepted, as Istio does */
    snprintf(p, sizeof(p), "{\"iss\":\"%s\"}", ISS);
    make(tok, RS_KID, p, RSA1);
    assert_int_equal(verify(s, 0), JW_OK);
    jw_free(s);
}

static void test_iss_aud(void **state)
{
    struct jw_set *s;
    char p[256];

    (void)state;
    NEED_OPENSSL();
    s = set_with((const char *const[]){"api", "web"}, 2);
    make(tok, RS_KID, "{\"iss\":\"https://evil.test\",\"aud\":\"api\"}", RSA1);
    assert_int_equal(verify(s, 60), JW_E_ISSUER);
    make(tok, RS_KID, "{\"iss\":\"https://idp.test/\",\"aud\":\"api\"}", RSA1);
    assert_int_equal(verify(s, 60), JW_E_ISSUER);
    make(tok, RS_KID, "{\"aud\":\"api\"}", RSA1);
    assert_int_equal(verify(s, 60), JW_E_ISSUER);
    make(tok, RS_KID, "{\"iss\":7,\"aud\":\"api\"}", RSA1);
    assert_int_equal(verify(s, 60), JW_E_CLAIMS);
    make(tok, RS_KID, claims(",\"aud\":\"apix\""), RSA1);
    assert_int_equal(verify(s, 60), JW_E_AUDIENCE);
    make(tok, RS_KID, claims(",\"aud\":[\"x\",\"y\"]"), RSA1);
    assert_int_equal(verify(s, 60), JW_E_AUDIENCE);
    make(tok, RS_KID, claims(""), RSA1); /* no aud when audiences are required */
    assert_int_equal(verify(s, 60), JW_E_AUDIENCE);
    make(tok, RS_KID, claims(",\"aud\":[\"web\"]"), RSA1);
    assert_int_equal(verify(s, 60), JW_OK);
    make(tok, RS_KID, claims(",\"aud\":[1]"), RSA1);
    assert_int_equal(verify(s, 60), JW_E_CLAIMS);
    /* escapes decode before comparing */
    make(tok, RS_KID, claims(",\"aud\":\"\\u0061pi\""), RSA1);
    assert_int_equal(verify(s, 60), JW_OK);
    /* a duplicate claim is refused, whatever its spelling */
    snprintf(p, sizeof(p), "{\"iss\":\"%s\",\"aud\":\"api\",\"\\u0069ss\":\"https://x\"}", ISS);
    make(tok, RS_KID, p, RSA1);
    assert_int_equal(verify(s, 60), JW_E_JSON);
    /* control characters in sub never become a principal */
    make(tok, RS_KID, "{\"iss\":\"https://idp.test\",\"aud\":\"api\",\"sub\":\"a\\r\\nb\"}", RSA1);
    assert_int_equal(verify(s, 60), JW_E_CLAIMS);
    jw_free(s);
}

static void test_alg_attacks(void **state)
{
    struct jw_set *s;

    (void)state;
    NEED_OPENSSL();
    s = set_with(NULL, 0);
    /* alg none, with and without a signature */
    make(tok, "{\"alg\":\"none\"}", claims(""), NO_SIG);
    assert_int_equal(verify(s, 60), JW_E_ALG);
    make(tok, "{\"alg\":\"none\",\"kid\":\"r1\"}", claims(""), RSA1);
    assert_int_equal(verify(s, 60), JW_E_ALG);
    make(tok, "{\"alg\":\"None\"}", claims(""), NO_SIG);
    assert_int_equal(verify(s, 60), JW_E_ALG);
    /* HS256 with the RSA public key as the secret */
    make(tok, "{\"alg\":\"HS256\",\"kid\":\"r1\"}", claims(""), HMAC_RSA_PUB);
    assert_int_equal(verify(s, 60), JW_E_ALG);
    make(tok, "{\"alg\":\"HS256\",\"kid\":\"h1\"}", claims(""), HMAC_RSA_PUB);
    assert_int_equal(verify(s, 60), JW_E_ALG);
    /* no alg, alg not a string, unsupported algs, crit */
    make(tok, "{\"kid\":\"r1\"}", claims(""), RSA1);
    assert_int_equal(verify(s, 60), JW_E_ALG);
    make(tok, "{\"alg\":[\"RS256\"]}", claims(""), RSA1);
    assert_int_equal(verify(s, 60), JW_E_ALG);
    make(tok, "{\"alg\":\"RS384\"}", claims(""), RSA1);
    assert_int_equal(verify(s, 60), JW_E_ALG);
    make(tok, "{\"alg\":\"PS256\"}", claims(""), RSA1);
    assert_int_equal(verify(s, 60), JW_E_ALG);
    make(tok, "{\"alg\":\"RS256\",\"crit\":[\"exp\"]}", claims(""), RSA1);
    assert_int_equal(verify(s, 60), JW_E_ALG);
    make(tok, "{\"alg\":\"RS256\",\"alg\":\"none\"}", claims(""), RSA1);
    assert_int_equal(verify(s, 60), JW_E_JSON);
    /* an embedded key is never trusted: the token verifies only with the JWKS keys */
    make(tok, "{\"alg\":\"RS256\",\"jwk\":{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}}",
         claims(""), RSA2);
    assert_int_equal(verify(s, 60), JW_E_SIGNATURE);
    jw_free(s);
}

static void test_keys_and_signatures(void **state)
{
    struct jw_set *s;
    char *dot, sig[1024];

    (void)state;
    NEED_OPENSSL();
    s = set_with(NULL, 0);
    /* unknown kid, and kids of the other key type */
    make(tok, "{\"alg\":\"RS256\",\"kid\":\"r9\"}", claims(""), RSA1);
    assert_int_equal(verify(s, 60), JW_E_KID);
    make(tok, "{\"alg\":\"RS256\",\"kid\":\"e1\"}", claims(""), RSA1);
    assert_int_equal(verify(s, 60), JW_E_KID);
    make(tok, "{\"alg\":\"ES256\",\"kid\":\"r1\"}", claims(""), EC1);
    assert_int_equal(verify(s, 60), JW_E_KID);
    make(tok, "{\"alg\":\"RS256\",\"kid\":5}", claims(""), RSA1);
    assert_int_equal(verify(s, 60), JW_E_KID);
    /* signed by another key under a known kid */
    make(tok, RS_KID, claims(""), RSA2);
    assert_int_equal(verify(s, 60), JW_E_SIGNATURE);
    make(tok, "{\"alg\":\"RS256\"}", claims(""), RSA2);
    assert_int_equal(verify(s, 60), JW_E_SIGNATURE);
    /* a changed payload, a changed signature */
    make(tok, RS_KID, "{\"iss\":\"https://idp.test\",\"sub\":\"alice\"}", RSA1);
    strcpy(sig, strrchr(tok, '.'));
    make(tok, RS_KID, "{\"iss\":\"https://idp.test\",\"sub\":\"admin\"}", NO_SIG);
    strcpy(strrchr(tok, '.'), sig); /* alice's signature on admin's claims */
    assert_int_equal(verify(s, 60), JW_E_SIGNATURE);
    make(tok, RS_KID, claims(""), RSA1);
    dot = strrchr(tok, '.') + 10;
    *dot = *dot == 'A' ? 'B' : 'A';
    assert_int_equal(verify(s, 60), JW_E_SIGNATURE);
    make(tok, ES_KID, claims(""), EC1);
    dot = strrchr(tok, '.') + 40;
    *dot = *dot == 'A' ? 'B' : 'A';
    assert_int_equal(verify(s, 60), JW_E_SIGNATURE);
    /* ES256 with openssl's DER signature instead of r||s */
    make(tok, ES_KID, claims(""), EC1_DER);
    assert_int_equal(verify(s, 60), JW_E_SIGNATURE);
    /* an RS256 signature presented as ES256 and the reverse */
    make(tok, "{\"alg\":\"ES256\"}", claims(""), RSA1);
    assert_int_equal(verify(s, 60), JW_E_SIGNATURE);
    jw_free(s);
}

static void test_truncated_and_garbage(void **state)
{
    static const char *const garbage[] = {
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        "...",
        ".x.y",
        "x..y",
        "@@.@@.@@",
        "e30",
        "e30.e30.",
        "eyJhbGciOiJSUzI1NiJ9.e30.",
        "eyJhbGciOiJSUzI1NiJ9.W10.AAAA",
        "eyJhbGciOiJSUzI1NiJ9.e30=.AAAA",
        "eyJ.eyJ.AAAA",
        "e30.e30.AAAA",
    };
    static const enum jw_status want[] = {
        JW_E_FORMAT, JW_E_FORMAT, JW_E_FORMAT, JW_E_FORMAT, JW_E_FORMAT, JW_E_FORMAT,
        JW_E_FORMAT, JW_E_FORMAT, JW_E_BASE64, JW_E_FORMAT, JW_E_ALG,    JW_E_ISSUER,
        JW_E_JSON,   JW_E_BASE64, JW_E_BASE64, JW_E_ALG,
    };
    struct jw_set *s;
    struct jw_worker *w;
    struct jw_result r;
    char full[JW_MAX_TOKEN];
    size_t len;

    (void)state;
    NEED_OPENSSL();
    s = set_with(NULL, 0);
    w = jw_worker_new(s);
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        enum jw_status st = jw_verify(s, w, garbage[i], strlen(garbage[i]), now, 60, &r);

        if (st != want[i])
            fail_msg("\"%s\": expected %s, got %s", garbage[i], jw_status_name(want[i]),
                     jw_status_name(st));
    }
    /* every prefix of a valid token is refused */
    make(full, RS_KID, claims(""), RSA1);
    len = strlen(full);
    for (size_t cut = 0; cut < len; cut++)
        if (jw_verify(s, w, full, cut, now, 60, &r) == JW_OK)
            fail_msg("a token cut at %zu bytes verified", cut);
    assert_int_equal(jw_verify(s, w, full, len, now, 60, &r), JW_OK);
    /* oversized */
    memset(tok, 'A', JW_MAX_TOKEN + 1);
    tok[JW_MAX_TOKEN + 1] = '\0';
    assert_int_equal(jw_verify(s, w, tok, strlen(tok), now, 60, &r), JW_E_TOO_LARGE);
    /* random bytes */
    srand(7);
    for (int i = 0; i < 2000; i++) {
        size_t n = (size_t)(rand() % 200);

        for (size_t k = 0; k < n; k++)
            tok[k] = (char)(rand() % 4 == 0 ? '.' : rand() % 256);
        if (jw_verify(s, w, tok, n, now, 60, &r) == JW_OK)
            fail_msg("random bytes verified");
    }
    jw_worker_free(w);
    jw_free(s);
}

/* ---- building blocks ---- */

static void test_base64url(void **state)
{
    uint8_t out[16];

    (void)state;
    assert_int_equal(jw_b64url_decode("", 0, out, sizeof(out)), 0);
    assert_int_equal(jw_b64url_decode("YQ", 2, out, sizeof(out)), 1);
    assert_int_equal(out[0], 'a');
    assert_int_equal(jw_b64url_decode("YWI", 3, out, sizeof(out)), 2);
    assert_int_equal(jw_b64url_decode("-_8", 3, out, sizeof(out)), 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(jw_b64url_decode("YQ==", 4, out, sizeof(out)), -1); /* padding */
    assert_int_equal(jw_b64url_decode("YR", 2, out, sizeof(out)), -1);   /* not canonical */
    assert_int_equal(jw_b64url_decode("Y", 1, out, sizeof(out)), -1);
    assert_int_equal(jw_b64url_decode("+/", 2, out, sizeof(out)), -1); /* base64, not url */
    assert_int_equal(jw_b64url_decode("YWJj", 4, out, 2), -1);         /* does not fit */
}

static void test_json(void **state)
{
    static const char *const good[] = {
        "{}", " { \"a\" : [1, -2.5e+3, true, false, null, \"x\\u00e9\\\"\"] } ",
        "[]", "\"s\"",
        "0",  "{\"a\":{\"b\":{\"c\":[[]]}}}",
    };
    static const char *const bad[] = {
        "",
        "{",
        "{\"a\"}",
        "{\"a\":}",
        "[1,]",
        "{,}",
        "01",
        "1.",
        "-",
        "1e",
        "tru",
        "\"\\x\"",
        "\"a\tb\"",
        "{} x",
        "[1 2]",
        "{\"a\":1,}",
        "\"\\u12\"",
        "{'a':1}",
        "[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]",
    };
    struct jt_tok t[32];
    char out[64];
    uint32_t i;
    long n;
    int64_t sec;
    const char *s;

    (void)state;
    for (size_t k = 0; k < sizeof(good) / sizeof(good[0]); k++)
        if (jt_parse(good[k], strlen(good[k]), t, 32) < 1)
            fail_msg("refused: %s", good[k]);
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        if (jt_parse(bad[k], strlen(bad[k]), t, 32) >= 0)
            fail_msg("accepted: %s", bad[k]);
    assert_int_equal(jt_parse("[1,2,3]", 7, t, 3), -1); /* more tokens than room */

    s = "{\"a\":\"\\ud83d\\ude00\\n\",\"b\":\"\\ud83d\",\"c\":\"\\u0000\",\"n\":1700000000.9}";
    assert_true(jt_parse(s, strlen(s), t, 32) > 0);
    assert_int_equal(jt_member(s, t, 0, "a", &i), 1);
    n = jt_string(s, &t[i], out, sizeof(out));
    assert_int_equal(n, 5);
    assert_memory_equal(out, "\xf0\x9f\x98\x80\n", 5);
    assert_int_equal(jt_member(s, t, 0, "b", &i), 1);
    assert_int_equal(jt_string(s, &t[i], out, sizeof(out)), -1); /* lone surrogate */
    assert_int_equal(jt_member(s, t, 0, "c", &i), 1);
    assert_int_equal(jt_string(s, &t[i], out, sizeof(out)), -1); /* NUL */
    assert_int_equal(jt_member(s, t, 0, "n", &i), 1);
    assert_int_equal(jt_seconds(s, &t[i], &sec), 0);
    assert_int_equal(sec, 1700000000);
    assert_int_equal(jt_member(s, t, 0, "zz", &i), 0);
}

static void expect_jwks_error(const char *j, const char *want)
{
    struct jw_set *s = jw_new();
    char err[256];

    if (jw_add_issuer(s, ISS, NULL, 0, j, strlen(j), err, sizeof(err)) >= 0)
        fail_msg("accepted: %s", j);
    if (!strstr(err, want))
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    jw_free(s);
}

static void test_jwks_errors(void **state)
{
    char small[512];

    (void)state;
    expect_jwks_error("{", "jwks: line 1");
    expect_jwks_error("[]", "expected {\"keys\": [ ... ]}");
    expect_jwks_error("{\"keys\":[]}", "no usable key");
    expect_jwks_error("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}", "no usable key");
    expect_jwks_error("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
                      "the modulus has 24 bits");
    expect_jwks_error("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"A*\",\"e\":\"AQAB\"}]}",
                      "n is not base64url");
    expect_jwks_error("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AQAB\",\"y\":"
                      "\"AQAB\"}]}",
                      "x and y are 32 bytes each");
    expect_jwks_error("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\"}]}", "needs x and y");
    /* a point that is not on the curve */
    snprintf(small, sizeof(small),
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
             "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA",
             "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA");
    expect_jwks_error(small, "not a valid public key");
    expect_jwks_error("{\"keys\":[{\"kid\":1,\"kty\":\"RSA\"}]}", "are strings");
}

/* ---- configuration through the loader ---- */

static unsigned load(const char *middle, char *first, size_t len)
{
    char text[16384];
    struct nd_errors errs = {0};
    struct nd_config *cfg;
    unsigned n;

    snprintf(text, sizeof(text),
             "cluster \"c\" { endpoints = { \"127.0.0.1:9\" } }\n"
             "listener \"l\" { listen = \"127.0.0.1:1\", plugins = {\n%s"
             "router { { match = { prefix = \"/\" }, cluster = \"c\" } } } }\n",
             middle);
    cfg = nd_config_load_string("t.lua", text, strlen(text), &errs);
    n = errs.n;
    snprintf(first, len, "%s", n ? errs.msg[0] : "");
    nd_config_free(cfg);
    nd_errors_clear(&errs);
    return n;
}

static void expect_cfg(const char *middle, const char *want)
{
    char first[512];
    unsigned n = load(middle, first, sizeof(first));

    if (!want) {
        if (n)
            fail_msg("refused: %s", first);
        return;
    }
    if (n == 0 || !strstr(first, want))
        fail_msg("expected an error with \"%s\", got \"%s\"", want, first);
}

static void test_config(void **state)
{
    char cfg[12288], path[128];

    (void)state;
    NEED_OPENSSL();
    snprintf(cfg, sizeof(cfg),
             "jwt { require = true, clock_skew = \"30s\", issuers = { { issuer = \"%s\",\n"
             "  audiences = { \"api\" }, jwks = [[%s]], forward = true,\n"
             "  from_headers = { { name = \"x-jwt\" }, { name = \"authorization\", prefix = "
             "\"Bearer \" } },\n"
             "  claims_to_headers = { { claim = \"sub\", header = \"x-user\" } } } } },\n",
             ISS, jwks);
    expect_cfg(cfg, NULL);
    write_file("jwks.json", jwks, strlen(jwks));
    snprintf(path, sizeof(path), "%s/jwks.json", dir);
    snprintf(cfg, sizeof(cfg), "jwt { issuers = { { issuer = \"a\", jwks_file = \"%s\" } } },\n",
             path);
    expect_cfg(cfg, NULL);
    expect_cfg("jwt { issuers = { { issuer = \"a\", jwks_file = \"/nonexistent/j\" } } },\n",
               "t.lua:3: listener \"l\": plugins[1] (jwt): issuers[1]: jwks_file: "
               "/nonexistent/j: No such file or directory");
    expect_cfg("jwt { },\n", "jwt needs issuers");
    expect_cfg("jwt { issuers = { { jwks = \"{}\" } } },\n", "an issuer needs issuer");
    expect_cfg("jwt { issuers = { { issuer = \"a\" } } },\n", "an issuer needs jwks");
    expect_cfg("jwt { issuers = { { issuer = \"a\", jwks = \"{\" } } },\n", "jwks: line 1");
    snprintf(cfg, sizeof(cfg),
             "jwt { issuers = { { issuer = \"a\", jwks = [[%s]] },\n"
             "                  { issuer = \"a\", jwks = [[%s]] } } },\n",
             jwks, jwks);
    expect_cfg(cfg, "issuer \"a\" is configured twice");
    snprintf(cfg, sizeof(cfg),
             "jwt { issuers = { { issuer = \"a\", jwks = [[%s]],\n"
             " from_headers = { { name = \"x jwt\" } } } } },\n",
             jwks);
    expect_cfg(cfg, "name: \"x jwt\" is not a valid header name");
    snprintf(cfg, sizeof(cfg),
             "jwt { issuers = { { issuer = \"a\", jwks = [[%s]],\n"
             " claims_to_headers = { { claim = \"a..b\", header = \"x\" } } } } },\n",
             jwks);
    expect_cfg(cfg, "claim: \"a..b\"");
    snprintf(cfg, sizeof(cfg),
             "jwt { clock_skew = \"2h\", issuers = { { issuer = \"a\", jwks = [[%s]] } } },\n",
             jwks);
    expect_cfg(cfg, "clock_skew: at most 1h");
    snprintf(cfg, sizeof(cfg),
             "jwt { issuers = { { issuer = \"a\", jwks = [[%s]], audience = \"x\" } } },\n", jwks);
    expect_cfg(cfg, "audience");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64url),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_jwks_errors),
        cmocka_unit_test(test_valid_rs256_es256),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_iss_aud),
        cmocka_unit_test(test_alg_attacks),
        cmocka_unit_test(test_keys_and_signatures),
        cmocka_unit_test(test_truncated_and_garbage),
        cmocka_unit_test(test_config),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
