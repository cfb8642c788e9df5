/*
 * JWT verification (RFC 7519, JWS compact serialization of RFC 7515) for the jwt plugin: RS256
 * (RSASSA-PKCS1-v1_5 with SHA-256) and ES256 (ECDSA P-256 with SHA-256), with wolfSSL. A pure
 * module: no host calls, so it is unit-tested and fuzzed without a node.
 *
 * Building (main thread): jw_new(), then jw_add_issuer() per issuer with its JWKS (parsed here
 * with jansson, once). Verifying (worker): each worker has a jw_worker made by jw_worker_new(),
 * which holds its own wolfSSL key objects (wolfSSL keys keep state during an operation, so they
 * are never shared between threads) and every buffer a verification needs. jw_verify() allocates
 * nothing of its own; what wolfSSL does inside an RSA or ECC operation is wolfSSL's (with the
 * Debian build, SP math: big numbers on the stack).
 */
#ifndef NODUS_JWT_VERIFY_H
#define NODUS_JWT_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nodus/plugin.h>

#define JW_MAX_TOKEN 8192 /* bytes of a token, larger ones are refused */
#define JW_MAX_ISSUERS 64 /* per plugin instance */
#define JW_MAX_KEYS 32    /* per issuer */
#define JW_MAX_AUDIENCES 32

struct jw_set;    /* opaque: issuers and their keys */
struct jw_worker; /* opaque: one worker's keys and buffers */

enum jw_status {
    JW_OK = 0,
    JW_E_TOO_LARGE,     /* longer than JW_MAX_TOKEN */
    JW_E_FORMAT,        /* not header.payload.signature */
    JW_E_BASE64,        /* a part is not base64url (unpadded, canonical) */
    JW_E_JSON,          /* header or payload not a JSON object we can hold, duplicate names */
    JW_E_ALG,           /* alg missing, "none", HS*, anything but RS256/ES256; crit present */
    JW_E_ISSUER,        /* iss missing, or not one of the issuers */
    JW_E_KID,           /* no key of the issuer fits the token's alg and kid */
    JW_E_SIGNATURE,     /* signature does not verify */
    JW_E_EXPIRED,       /* exp + skew <= now */
    JW_E_NOT_YET_VALID, /* nbf - skew > now */
    JW_E_AUDIENCE,      /* none of the token's audiences is allowed */
    JW_E_CLAIMS,        /* exp/nbf/iss/sub/aud of the wrong type, control characters in iss/sub */
    JW_STATUS_COUNT,
};

/* A short name ("expired") and Envoy's message ("Jwt is expired") for each status. */
const char *jw_status_name(enum jw_status s);
const char *jw_status_message(enum jw_status s);

/* ---- building (main thread) ---- */

struct jw_set *jw_new(void);
void jw_free(struct jw_set *set);

/* Adds an issuer: its exact "iss", the audiences allowed (none: aud is not checked) and its keys
 * as a JWKS ({"keys":[...]}). RSA keys (n, e; 2048 to 4096 bits) and EC P-256 keys (x, y) are
 * used; other key types, and keys whose "use" is not "sig", are skipped; a JWKS without a usable
 * key is an error. Returns the issuer's index, or -1 with a message in err. */
long jw_add_issuer(struct jw_set *set, const char *iss, const char *const *aud, size_t n_aud,
                   const char *jwks, size_t jwks_len, char *err, size_t errlen);

size_t jw_issuer_count(const struct jw_set *set);
/* Keys the issuer's JWKS gave (usable ones). */
size_t jw_key_count(const struct jw_set *set, size_t issuer);

/* ---- verification (worker) ---- */

/* NULL when out of memory (or a key that imported at configuration fails to import again). */
struct jw_worker *jw_worker_new(const struct jw_set *set);
void jw_worker_free(struct jw_worker *w);

/* What a verified token says. iss and sub point into the worker (valid until its next
 * jw_verify); sub may be empty. */
struct jw_result {
    size_t issuer;
    struct nodus_slice iss, sub;
};

/* Verifies tok[0..len) at time now (Unix seconds) with skew seconds of tolerance on exp and nbf:
 * JW_OK with *res, or the first reason it is refused. Signature is checked before any claim but
 * iss (which picks the keys). */
enum jw_status jw_verify(const struct jw_set *set, struct jw_worker *w, const char *tok, size_t len,
                         int64_t now, int64_t skew, struct jw_result *res);

/* After JW_OK: the claim named name ("a.b" walks into objects) of the payload, as header text,
 * into out: a string as it is, a number as written, true/false, an array of those joined by ",".
 * Returns the length, 0 when there is no such claim, or -1 (an object, null, does not fit, or
 * characters that cannot go into a header: controls, DEL). */
long jw_claim(const struct jw_worker *w, const char *name, char *out, size_t cap);

/* Strict base64url without padding; canonical (unused bits zero). Length, or -1. Exposed for tests.
 */
long jw_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap);

#endif /* NODUS_JWT_VERIFY_H */
