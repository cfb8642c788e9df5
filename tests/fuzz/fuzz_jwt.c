/*
 * libFuzzer target for the jwt plugin's decoder and verifier (plugins/jwt/verify.c, json.c).
 * Each input is used two ways:
 *  - as a token, verified against a fixed JWKS (an RSA 2048 and an EC P-256 key) at a fixed time;
 *    when it verifies, claims are read back as header text;
 *  - as a JSON document for the tokenizer, whose every token is then decoded and looked up.
 * Besides the sanitizers, it checks invariants: tokens inside the input, strings decoded within
 * their bounds, a verified token's principal and claims free of control characters.
 *
 * The keys and the seed corpus (tests/fuzz/corpus/jwt/) were made with the openssl CLI, outside
 * our code: `openssl genrsa 2048`, `openssl ecparam -name prime256v1 -genkey`; n from
 * `openssl rsa -noout -modulus`, x and y from the last 64 bytes of `openssl ec -pubout -outform
 * DER`; tokens signed with `openssl dgst -sha256 -sign` (ES256: the DER signature turned into
 * r||s), with iss "https://idp.test", exp 1700003600 and nbf 1699990000. The private keys were
 * not kept. Seeds: valid RS256 and ES256 (with and without kid), expired, not yet valid, wrong
 * aud, alg none, HS256, crit, escapes, a nested JSON document, garbage.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/jwt/json.h"
#include "../../plugins/jwt/verify.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

#define NOW 1700000000

static const char jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"alg\":\"RS256\",\"n\":\"m6ULSuldvgWlVZQx-na1w69U_"
    "CB5uiW1gykt"
    "o9C-WaX68sZqHOJuJ0jXpAUTCRK6EUn5C37XIkNO-zLdUhB2Z5bUWCQkn9EA33RsCocZ2Sm5R2DH7Z5EDc4Q4cfF"
    "JUNLpTQtafzlxWec40Xsn-x9gH6gr2GuoOANrdvnnKQmvFgbY7jBTqrHgHhlf-IdjyrIVMpiEz-DDmAC-6Dd-_Ue"
    "BzoQMyYYlURxB5h_lBUjstJJm3MtXXJPS86PLmQRzDMZWok2qy6NVtGTskgiM5_1c2QNZnKfvRI_n29tTwPxx2Ni"
    "dL3I9ds4K_HKQDrHMczdvgm1OTLZT8YL1Jeu0lluHQ\",\"e\":\"AQAB\"},{\"kty\":\"EC\",\"kid\":\"e1\","
    "\"crv\":\"P-"
    "256\",\"x\":\"vNKlPbeL1UOyXv73x6bLyNn5Nr-Jjw8ddQdRdSyE-Q4\",\"y\":\"f0_"
    "yu79bDu6fT21BbIrvuiRcbM3j"
    "__-IH9yWtvE6QmQ\"}]}";

static struct jw_set *set;
static struct jw_worker *worker;

static void setup(void)
{
    static const char *const aud[] = {"api"};
    char err[256];

    set = jw_new();
    CHECK(set && jw_add_issuer(set, "https://idp.test", aud, 1, jwks, sizeof(jwks) - 1, err,
                               sizeof(err)) == 0);
    CHECK(jw_key_count(set, 0) == 2);
    worker = jw_worker_new(set);
    CHECK(worker);
}

static bool clean(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return false;
    return true;
}

static void fuzz_token(const char *data, size_t size)
{
    static const char *const names[] = {"sub",   "iss",   "aud", "groups", "ctx.team",
                                        "ctx.n", "admin", "x",   "ctx",    "nbf"};
    struct jw_result r;
    char out[256];

    if (jw_verify(set, worker, data, size, NOW, 60, &r) != JW_OK)
        return;
    CHECK(r.issuer == 0 && r.iss.len == 16 && memcmp(r.iss.p, "https://idp.test", 16) == 0);
    CHECK(clean(r.sub.p, r.sub.len));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        long n = jw_claim(worker, names[i], out, sizeof(out));

        CHECK(n >= -1 && n <= (long)sizeof(out));
        if (n > 0)
            CHECK(clean(out, (size_t)n));
    }
}

static void fuzz_json(const char *data, size_t size)
{
    struct jt_tok t[128];
    char out[512];
    long n = jt_parse(data, size, t, 128);
    uint32_t idx;
    int64_t sec;

    if (n < 0)
        return;
    for (long i = 0; i < n; i++) {
        CHECK(t[i].start <= t[i].end && t[i].end <= size);
        CHECK(t[i].next > (uint32_t)i && t[i].next <= (uint32_t)n);
        if (t[i].type == JT_STRING) {
            long got = jt_string(data, &t[i], out, sizeof(out));

            CHECK(got >= -1 && got <= (long)sizeof(out));
        } else if (t[i].type == JT_NUMBER) {
            (void)jt_seconds(data, &t[i], &sec);
        } else if (t[i].type == JT_OBJECT) {
            (void)jt_member(data, t, (uint32_t)i, "iss", &idx);
            (void)jt_member(data, t, (uint32_t)i, "a", &idx);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy;

    if (!set)
        setup();
    /* an exact-size copy, so that a read past the end is caught */
    copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fuzz_token(copy, size);
    fuzz_json(copy, size);
    free(copy);
    return 0;
}
