/* JWT verification with wolfSSL (see verify.h). */
#include "verify.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include "json.h"

#define HDR_TOKENS 32
#define PAY_TOKENS 256
#define PART_MAX (JW_MAX_TOKEN / 4 * 3 + 3)
#define SIG_MAX 512 /* RSA 4096 */
#define STR_MAX 255 /* iss, sub, kid */

enum alg { ALG_RS256 = 1, ALG_ES256 };

struct key {
    enum alg alg; /* the algorithm this key verifies (RSA keys: RS256, EC P-256: ES256) */
    char *kid;    /* NULL when the JWK has none */
    size_t kid_len;
    uint8_t *a, *b; /* RSA: n, e; EC: x, y (32 bytes each) */
    size_t alen, blen;
};

struct issuer {
    char *iss;
    size_t iss_len;
    char **aud;
    size_t *aud_len;
    size_t n_aud;
    struct key *keys;
    size_t n_keys;
};

struct jw_set {
    struct issuer *v;
    size_t n;
};

struct wkey {
    bool ready;
    enum alg alg;
    union {
        RsaKey rsa;
        ecc_key ec;
    } k;
};

struct jw_worker {
    const struct jw_set *set;
    struct wkey **keys; /* per issuer, n_keys each */
    /* the last token verified */
    uint8_t hdr[PART_MAX], pay[PART_MAX], sig[PART_MAX], tmp[SIG_MAX];
    struct jt_tok htok[HDR_TOKENS], ptok[PAY_TOKENS];
    size_t pay_len;
    long nptok;
    char iss[STR_MAX], sub[STR_MAX], kid[STR_MAX];
};

static const struct {
    const char *name, *message;
} statuses[JW_STATUS_COUNT] = {
    [JW_OK] = {"ok", "Jwt is valid"},
    [JW_E_TOO_LARGE] = {"too_large", "Jwt is too large"},
    [JW_E_FORMAT] = {"malformed",
                     "Jwt is not in the form of Header.Payload.Signature with two dots and 3 "
                     "sections"},
    [JW_E_BASE64] = {"bad_base64", "Jwt is not valid base64url"},
    [JW_E_JSON] = {"bad_json", "Jwt header or payload is not a valid JSON object"},
    [JW_E_ALG] = {"bad_alg", "Jwt algorithm is not supported"},
    [JW_E_ISSUER] = {"unknown_issuer", "Jwt issuer is not configured"},
    [JW_E_KID] = {"unknown_kid", "Jwks doesn't have key to match kid or alg from Jwt"},
    [JW_E_SIGNATURE] = {"bad_signature", "Jwt verification fails"},
    [JW_E_EXPIRED] = {"expired", "Jwt is expired"},
    [JW_E_NOT_YET_VALID] = {"not_yet_valid", "Jwt not yet valid"},
    [JW_E_AUDIENCE] = {"bad_audience", "Audiences in Jwt are not allowed"},
    [JW_E_CLAIMS] = {"bad_claims", "Jwt has invalid claims"},
};

const char *jw_status_name(enum jw_status s)
{
    return (unsigned)s < JW_STATUS_COUNT ? statuses[s].name : "unknown";
}

const char *jw_status_message(enum jw_status s)
{
    return (unsigned)s < JW_STATUS_COUNT ? statuses[s].message : "Jwt verification fails";
}

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

/* ---- base64url ---- */

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long jw_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    size_t n = 0, i;
    uint32_t acc = 0;
    int bits = 0;

    if (len % 4 == 1 || len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0) > cap)
        return -1;
    for (i = 0; i < len; i++) {
        int v = b64val((unsigned char)in[i]);

        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    /* the leftover bits must be zero: one encoding per value */
    if (bits && (acc & ((1u << bits) - 1)))
        return -1;
    return (long)n;
}

/* JWKS values: base64url, padding tolerated. */
static long b64url_lenient(const char *in, uint8_t *out, size_t cap)
{
    size_t len = strlen(in);

    while (len && in[len - 1] == '=')
        len--;
    return jw_b64url_decode(in, len, out, cap);
}

/* ---- building ---- */

static pthread_once_t wolf_once = PTHREAD_ONCE_INIT;
static void wolf_init(void)
{
    wolfCrypt_Init();
}

struct jw_set *jw_new(void)
{
    pthread_once(&wolf_once, wolf_init);
    return calloc(1, sizeof(struct jw_set));
}

static void issuer_free(struct issuer *is)
{
    free(is->iss);
    for (size_t i = 0; i < is->n_aud; i++)
        free(is->aud[i]);
    free(is->aud);
    free(is->aud_len);
    for (size_t i = 0; i < is->n_keys; i++) {
        free(is->keys[i].kid);
        free(is->keys[i].a);
        free(is->keys[i].b);
    }
    free(is->keys);
}

void jw_free(struct jw_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        issuer_free(&set->v[i]);
    free(set->v);
    free(set);
}

size_t jw_issuer_count(const struct jw_set *set)
{
    return set->n;
}

size_t jw_key_count(const struct jw_set *set, size_t issuer)
{
    return issuer < set->n ? set->v[issuer].n_keys : 0;
}

/* Imports k into w (a wolfSSL key object of this thread). 0, or -1. */
static int key_import(const struct key *k, struct wkey *w)
{
    w->alg = k->alg;
    if (k->alg == ALG_RS256) {
        if (wc_InitRsaKey(&w->k.rsa, NULL) != 0)
            return -1;
        w->ready = true;
        return wc_RsaPublicKeyDecodeRaw(k->a, (word32)k->alen, k->b, (word32)k->blen, &w->k.rsa) ==
                       0
                   ? 0
                   : -1;
    }
    if (wc_ecc_init(&w->k.ec) != 0)
        return -1;
    w->ready = true;
    if (wc_ecc_import_unsigned(&w->k.ec, k->a, k->b, NULL, ECC_SECP256R1) != 0)
        return -1;
    return 0;
}

static void key_release(struct wkey *w)
{
    if (!w->ready)
        return;
    if (w->alg == ALG_RS256)
        wc_FreeRsaKey(&w->k.rsa);
    else
        wc_ecc_free(&w->k.ec);
    w->ready = false;
}

static char *dup_bytes(const void *p, size_t n)
{
    char *d = malloc(n + 1);

    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* One JWK: 1 (added to is), 0 (skipped: not a signing key of a type we verify), -1 (error). */
static int read_jwk(json_t *jwk, size_t idx, struct issuer *is, char *err, size_t errlen)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    json_t *use = json_object_get(jwk, "use"), *alg = json_object_get(jwk, "alg");
    json_t *kid = json_object_get(jwk, "kid");
    const char *an, *bn, *a64, *b64;
    uint8_t a[SIG_MAX + 1], b[SIG_MAX + 1];
    long alen, blen;
    struct key k = {0};
    struct wkey probe = {0};
    size_t off = 0;

    if (!json_is_object(jwk) || !kty) {
        set_err(err, errlen, "jwks: keys[%zu]: not a JWK (no kty)", idx + 1);
        return -1;
    }
    if ((use && !json_is_string(use)) || (alg && !json_is_string(alg)) ||
        (kid && !json_is_string(kid))) {
        set_err(err, errlen, "jwks: keys[%zu]: use, alg and kid are strings", idx + 1);
        return -1;
    }
    if (use && strcmp(json_string_value(use), "sig") != 0)
        return 0;
    if (strcmp(kty, "RSA") == 0) {
        k.alg = ALG_RS256;
        an = "n", bn = "e";
    } else if (strcmp(kty, "EC") == 0) {
        const char *crv = json_string_value(json_object_get(jwk, "crv"));

        if (!crv || strcmp(crv, "P-256") != 0)
            return 0;
        k.alg = ALG_ES256;
        an = "x", bn = "y";
    } else {
        return 0; /* "oct" (HMAC secrets), OKP, ...: never used */
    }
    if (alg && strcmp(json_string_value(alg), k.alg == ALG_RS256 ? "RS256" : "ES256") != 0)
        return 0; /* a key for another algorithm (RS384, PS256, ...) */
    a64 = json_string_value(json_object_get(jwk, an));
    b64 = json_string_value(json_object_get(jwk, bn));
    if (!a64 || !b64) {
        set_err(err, errlen, "jwks: keys[%zu] (%s): needs %s and %s", idx + 1, kty, an, bn);
        return -1;
    }
    alen = b64url_lenient(a64, a, sizeof(a));
    blen = b64url_lenient(b64, b, sizeof(b));
    if (alen < 0 || blen < 0) {
        set_err(err, errlen, "jwks: keys[%zu] (%s): %s is not base64url (or too long)", idx + 1,
                kty, alen < 0 ? an : bn);
        return -1;
    }
    if (k.alg == ALG_RS256) {
        while (off < (size_t)alen && a[off] == 0)
            off++;
        if (alen - (long)off < 256 || alen - (long)off > 512) {
            set_err(err, errlen, "jwks: keys[%zu] (RSA): the modulus has %ld bits: 2048 to 4096",
                    idx + 1, (alen - (long)off) * 8);
            return -1;
        }
        if (blen == 0 || blen > 8 || !(b[blen - 1] & 1)) {
            set_err(err, errlen, "jwks: keys[%zu] (RSA): bad exponent e", idx + 1);
            return -1;
        }
    } else if (alen != 32 || blen != 32) {
        set_err(err, errlen, "jwks: keys[%zu] (EC P-256): x and y are 32 bytes each", idx + 1);
        return -1;
    }
    k.alen = (size_t)alen - off;
    k.blen = (size_t)blen;
    k.a = (uint8_t *)dup_bytes(a + off, k.alen);
    k.b = (uint8_t *)dup_bytes(b, k.blen);
    if (kid) {
        k.kid_len = strlen(json_string_value(kid));
        k.kid = dup_bytes(json_string_value(kid), k.kid_len);
    }
    if (!k.a || !k.b || (kid && !k.kid)) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    if (k.kid_len > STR_MAX) {
        set_err(err, errlen, "jwks: keys[%zu]: kid longer than %d bytes", idx + 1, STR_MAX);
        goto fail;
    }
    /* import once here, so that a worker never meets a key wolfSSL refuses */
    if (key_import(&k, &probe) < 0 || (k.alg == ALG_ES256 && wc_ecc_check_key(&probe.k.ec) != 0)) {
        key_release(&probe);
        set_err(err, errlen, "jwks: keys[%zu] (%s): not a valid public key", idx + 1, kty);
        goto fail;
    }
    key_release(&probe);
    if (is->n_keys >= JW_MAX_KEYS) {
        set_err(err, errlen, "jwks: more than %d usable keys", JW_MAX_KEYS);
        goto fail;
    }
    is->keys[is->n_keys++] = k;
    return 1;
fail:
    free(k.a);
    free(k.b);
    free(k.kid);
    return -1;
}

static int read_jwks(const char *jwks, size_t len, struct issuer *is, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(jwks, len, JSON_REJECT_DUPLICATES, &je), *keys;
    int rc = 0;

    if (!root) {
        set_err(err, errlen, "jwks: line %d: %s", je.line, je.text);
        return -1;
    }
    keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        set_err(err, errlen, "jwks: expected {\"keys\": [ ... ]}");
        json_decref(root);
        return -1;
    }
    is->keys = calloc(JW_MAX_KEYS, sizeof(*is->keys));
    if (!is->keys) {
        set_err(err, errlen, "out of memory");
        json_decref(root);
        return -1;
    }
    for (size_t i = 0; i < json_array_size(keys) && rc >= 0; i++)
        rc = read_jwk(json_array_get(keys, i), i, is, err, errlen);
    json_decref(root);
    if (rc >= 0 && is->n_keys == 0) {
        set_err(err, errlen,
                "jwks: no usable key (RSA of 2048 to 4096 bits for RS256, or EC "
                "P-256 for ES256, with use \"sig\" or no use)");
        rc = -1;
    }
    return rc < 0 ? -1 : 0;
}

long jw_add_issuer(struct jw_set *set, const char *iss, const char *const *aud, size_t n_aud,
                   const char *jwks, size_t jwks_len, char *err, size_t errlen)
{
    struct issuer is = {0}, *v;

    if (!iss || !*iss || strlen(iss) > STR_MAX) {
        set_err(err, errlen, "issuer: 1 to %d bytes", STR_MAX);
        return -1;
    }
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->v[i].iss, iss) == 0) {
            set_err(err, errlen, "issuer \"%s\" is configured twice", iss);
            return -1;
        }
    if (set->n >= JW_MAX_ISSUERS) {
        set_err(err, errlen, "more than %d issuers", JW_MAX_ISSUERS);
        return -1;
    }
    if (n_aud > JW_MAX_AUDIENCES) {
        set_err(err, errlen, "audiences: at most %d", JW_MAX_AUDIENCES);
        return -1;
    }
    is.iss_len = strlen(iss);
    is.iss = dup_bytes(iss, is.iss_len);
    if (n_aud) {
        is.aud = calloc(n_aud, sizeof(*is.aud));
        is.aud_len = calloc(n_aud, sizeof(*is.aud_len));
    }
    if (!is.iss || (n_aud && (!is.aud || !is.aud_len))) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n_aud; i++) {
        is.aud_len[i] = strlen(aud[i]);
        if (!(is.aud[i] = dup_bytes(aud[i], is.aud_len[i]))) {
            set_err(err, errlen, "out of memory");
            goto fail;
        }
        is.n_aud = i + 1;
        if (is.aud_len[i] == 0) {
            set_err(err, errlen, "audiences[%zu]: empty", i + 1);
            goto fail;
        }
    }
    if (read_jwks(jwks, jwks_len, &is, err, errlen) < 0)
        goto fail;
    v = realloc(set->v, (set->n + 1) * sizeof(*v));
    if (!v) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    set->v = v;
    set->v[set->n] = is;
    return (long)set->n++;
fail:
    issuer_free(&is);
    return -1;
}

/* ---- worker ---- */

void jw_worker_free(struct jw_worker *w)
{
    if (!w)
        return;
    for (size_t i = 0; w->keys && i < w->set->n; i++) {
        for (size_t k = 0; w->keys[i] && k < w->set->v[i].n_keys; k++)
            key_release(&w->keys[i][k]);
        free(w->keys[i]);
    }
    free(w->keys);
    free(w);
}

struct jw_worker *jw_worker_new(const struct jw_set *set)
{
    struct jw_worker *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->set = set;
    w->keys = calloc(set->n ? set->n : 1, sizeof(*w->keys));
    if (!w->keys)
        goto fail;
    for (size_t i = 0; i < set->n; i++) {
        w->keys[i] = calloc(set->v[i].n_keys, sizeof(**w->keys));
        if (!w->keys[i])
            goto fail;
        for (size_t k = 0; k < set->v[i].n_keys; k++)
            if (key_import(&set->v[i].keys[k], &w->keys[i][k]) < 0)
                goto fail;
    }
    return w;
fail:
    jw_worker_free(w);
    return NULL;
}

/* ---- verification ---- */

/* DER DigestInfo of SHA-256 (RFC 8017 9.2, note 1), followed by the 32-byte hash */
static const uint8_t sha256_prefix[19] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                          0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                          0x01, 0x05, 0x00, 0x04, 0x20};

static bool rs256_ok(struct jw_worker *w, RsaKey *k, const uint8_t *hash, const uint8_t *sig,
                     size_t siglen)
{
    byte *out = NULL;
    int n;

    if (siglen > sizeof(w->tmp) || (int)siglen != wc_RsaEncryptSize(k))
        return false;
    memcpy(w->tmp, sig, siglen);
    n = wc_RsaSSL_VerifyInline(w->tmp, (word32)siglen, &out, k);
    return n == (int)sizeof(sha256_prefix) + 32 && out &&
           memcmp(out, sha256_prefix, sizeof(sha256_prefix)) == 0 &&
           memcmp(out + sizeof(sha256_prefix), hash, 32) == 0;
}

/* JWS ES256 signatures are r||s, 32 bytes each; wolfSSL verifies DER ECDSA-Sig-Value. */
static bool es256_ok(ecc_key *k, const uint8_t *hash, const uint8_t *sig, size_t siglen)
{
    byte der[80];
    word32 dlen = sizeof(der);
    int res = 0;

    if (siglen != 64 || wc_ecc_rs_raw_to_sig(sig, 32, sig + 32, 32, der, &dlen) != 0)
        return false;
    return wc_ecc_verify_hash(der, dlen, hash, 32, &res, k) == 0 && res == 1;
}

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* A string member into buf: 1 with *len, 0 absent, -1 wrong type / too long / duplicate. */
static int str_member(const char *s, const struct jt_tok *t, const char *name, char *buf,
                      size_t cap, size_t *len)
{
    uint32_t i;
    int got = jt_member(s, t, 0, name, &i);
    long n;

    if (got <= 0)
        return got;
    if (t[i].type != JT_STRING || (n = jt_string(s, &t[i], buf, cap)) < 0)
        return -1;
    *len = (size_t)n;
    return 1;
}

static enum jw_status check_audience(const struct issuer *is, const char *s, const struct jt_tok *t)
{
    uint32_t i;
    int got;

    if (is->n_aud == 0)
        return JW_OK;
    got = jt_member(s, t, 0, "aud", &i);
    if (got < 0)
        return JW_E_JSON;
    if (got == 0)
        return JW_E_AUDIENCE;
    if (t[i].type == JT_STRING) {
        for (size_t a = 0; a < is->n_aud; a++)
            if (jt_string_eq(s, &t[i], is->aud[a], is->aud_len[a]))
                return JW_OK;
        return JW_E_AUDIENCE;
    }
    if (t[i].type != JT_ARRAY)
        return JW_E_CLAIMS;
    for (uint32_t e = i + 1, k = 0; k < t[i].size; k++, e = t[e].next) {
        if (t[e].type != JT_STRING)
            return JW_E_CLAIMS;
        for (size_t a = 0; a < is->n_aud; a++)
            if (jt_string_eq(s, &t[e], is->aud[a], is->aud_len[a]))
                return JW_OK;
    }
    return JW_E_AUDIENCE;
}

/* exp and nbf, when present: NumericDate. */
static enum jw_status check_times(const char *s, const struct jt_tok *t, int64_t now, int64_t skew)
{
    uint32_t i;
    int64_t v;
    int got;

    got = jt_member(s, t, 0, "exp", &i);
    if (got < 0)
        return JW_E_JSON;
    if (got == 1) {
        if (jt_seconds(s, &t[i], &v) < 0)
            return JW_E_CLAIMS;
        if (now >= v + skew)
            return JW_E_EXPIRED;
    }
    got = jt_member(s, t, 0, "nbf", &i);
    if (got < 0)
        return JW_E_JSON;
    if (got == 1) {
        if (jt_seconds(s, &t[i], &v) < 0)
            return JW_E_CLAIMS;
        if (now + skew < v)
            return JW_E_NOT_YET_VALID;
    }
    return JW_OK;
}

enum jw_status jw_verify(const struct jw_set *set, struct jw_worker *w, const char *tok, size_t len,
                         int64_t now, int64_t skew, struct jw_result *res)
{
    const char *d1, *d2, *hs = (const char *)w->hdr, *ps = (const char *)w->pay;
    long hlen, plen, slen, n;
    size_t isslen = 0, sublen = 0, kidlen = 0, issuer = 0, candidates = 0;
    bool has_kid;
    enum alg alg;
    enum jw_status st;
    uint8_t hash[32];
    wc_Sha256 sha;
    uint32_t i;
    int got;

    w->nptok = 0;
    if (len > JW_MAX_TOKEN)
        return JW_E_TOO_LARGE;
    d1 = memchr(tok, '.', len);
    d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d2 || d1 == tok || d2 == d1 + 1 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
        return JW_E_FORMAT;

    /* header: {"alg":"RS256"|"ES256", "kid":...}; no crit (no extension is understood) */
    hlen = jw_b64url_decode(tok, (size_t)(d1 - tok), w->hdr, sizeof(w->hdr));
    if (hlen < 0)
        return JW_E_BASE64;
    n = jt_parse(hs, (size_t)hlen, w->htok, HDR_TOKENS);
    if (n < 1 || w->htok[0].type != JT_OBJECT)
        return JW_E_JSON;
    got = jt_member(hs, w->htok, 0, "alg", &i);
    if (got < 0)
        return JW_E_JSON;
    if (got == 0 || w->htok[i].type != JT_STRING)
        return JW_E_ALG;
    if (jt_string_eq(hs, &w->htok[i], "RS256", 5))
        alg = ALG_RS256;
    else if (jt_string_eq(hs, &w->htok[i], "ES256", 5))
        alg = ALG_ES256;
    else
        return JW_E_ALG; /* none, HS256 (an RSA key is never an HMAC secret), RS384, ... */
    got = jt_member(hs, w->htok, 0, "crit", &i);
    if (got != 0)
        return got < 0 ? JW_E_JSON : JW_E_ALG;
    got = str_member(hs, w->htok, "kid", w->kid, sizeof(w->kid), &kidlen);
    if (got < 0) /* a duplicate, or a kid no key can have (not a string, too long) */
        return jt_member(hs, w->htok, 0, "kid", &i) < 0 ? JW_E_JSON : JW_E_KID;
    has_kid = got == 1;

    /* payload, and its issuer, which picks the keys */
    plen = jw_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), w->pay, sizeof(w->pay));
    if (plen < 0)
        return JW_E_BASE64;
    n = jt_parse(ps, (size_t)plen, w->ptok, PAY_TOKENS);
    if (n < 1 || w->ptok[0].type != JT_OBJECT)
        return JW_E_JSON;
    got = str_member(ps, w->ptok, "iss", w->iss, sizeof(w->iss), &isslen);
    if (got == 0)
        return JW_E_ISSUER;
    if (got < 0)
        return jt_member(ps, w->ptok, 0, "iss", &i) < 0 ? JW_E_JSON : JW_E_CLAIMS;
    for (issuer = 0; issuer < set->n; issuer++)
        if (set->v[issuer].iss_len == isslen && memcmp(set->v[issuer].iss, w->iss, isslen) == 0)
            break;
    if (issuer == set->n)
        return JW_E_ISSUER;

    /* signature over the ASCII of header.payload */
    slen = jw_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - tok), w->sig, sizeof(w->sig));
    if (slen < 0)
        return JW_E_BASE64;
    if (wc_InitSha256(&sha) != 0)
        return JW_E_SIGNATURE;
    wc_Sha256Update(&sha, (const byte *)tok, (word32)(d2 - tok));
    wc_Sha256Final(&sha, hash);
    wc_Sha256Free(&sha);
    st = JW_E_SIGNATURE;
    for (size_t k = 0; k < set->v[issuer].n_keys && st != JW_OK; k++) {
        const struct key *key = &set->v[issuer].keys[k];
        struct wkey *wk = &w->keys[issuer][k];

        if (key->alg != alg)
            continue;
        /* a token's kid names its key; without one, every key of its type is tried */
        if (has_kid && (!key->kid || key->kid_len != kidlen || memcmp(key->kid, w->kid, kidlen)))
            continue;
        candidates++;
        if (alg == ALG_RS256 ? rs256_ok(w, &wk->k.rsa, hash, w->sig, (size_t)slen)
                             : es256_ok(&wk->k.ec, hash, w->sig, (size_t)slen))
            st = JW_OK;
    }
    if (candidates == 0)
        return JW_E_KID;
    if (st != JW_OK)
        return st;

    /* claims, now that they are the issuer's */
    st = check_times(ps, w->ptok, now, skew);
    if (st != JW_OK)
        return st;
    st = check_audience(&set->v[issuer], ps, w->ptok);
    if (st != JW_OK)
        return st;
    got = str_member(ps, w->ptok, "sub", w->sub, sizeof(w->sub), &sublen);
    if (got < 0)
        return jt_member(ps, w->ptok, 0, "sub", &i) < 0 ? JW_E_JSON : JW_E_CLAIMS;
    if (!printable(w->iss, isslen) || !printable(w->sub, sublen))
        return JW_E_CLAIMS;
    w->pay_len = (size_t)plen;
    w->nptok = n;
    res->issuer = issuer;
    res->iss = (struct nodus_slice){w->iss, isslen};
    res->sub = (struct nodus_slice){w->sub, sublen};
    return JW_OK;
}

/* ---- claims ---- */

static bool header_safe(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* One scalar t as text at out[*n..cap): 0, or -1. */
static int put_scalar(const char *s, const struct jt_tok *t, char *out, size_t cap, size_t *n)
{
    long got;
    size_t len;

    switch (t->type) {
    case JT_STRING:
        got = jt_string(s, t, out + *n, cap - *n);
        if (got < 0 || !header_safe(out + *n, (size_t)got))
            return -1;
        *n += (size_t)got;
        return 0;
    case JT_NUMBER:
    case JT_TRUE:
    case JT_FALSE:
        len = t->end - t->start;
        if (len > cap - *n)
            return -1;
        memcpy(out + *n, s + t->start, len);
        *n += len;
        return 0;
    default:
        return -1;
    }
}

long jw_claim(const struct jw_worker *w, const char *name, char *out, size_t cap)
{
    const char *s = (const char *)w->pay;
    const struct jt_tok *t = w->ptok;
    uint32_t cur = 0, i;
    char seg[128];
    size_t n = 0;

    if (w->nptok < 1)
        return 0;
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t sl = dot ? (size_t)(dot - name) : strlen(name);
        int got;

        if (sl == 0 || sl >= sizeof(seg))
            return 0;
        memcpy(seg, name, sl);
        seg[sl] = '\0';
        got = jt_member(s, t, cur, seg, &i);
        if (got < 0)
            return -1;
        if (got == 0)
            return 0;
        cur = i;
        name += sl + (dot ? 1 : 0);
    }
    if (t[cur].type != JT_ARRAY)
        return put_scalar(s, &t[cur], out, cap, &n) < 0 ? -1 : (long)n;
    for (uint32_t e = cur + 1, k = 0; k < t[cur].size; k++, e = t[e].next) {
        if (k) {
            if (n >= cap)
                return -1;
            out[n++] = ',';
        }
        if (put_scalar(s, &t[e], out, cap, &n) < 0)
            return -1;
    }
    return (long)n;
}
