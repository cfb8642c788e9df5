/* memberlist AES-GCM encryption and keyring: see keyring.h. */
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "keyring.h"

static bool key_size_ok(size_t len)
{
    return len == 16 || len == 24 || len == 32;
}

static int find(const struct nd_keyring *kr, const uint8_t *key, size_t len)
{
    for (uint32_t i = 0; i < kr->n; i++)
        if (kr->lens[i] == len && memcmp(kr->keys[i], key, len) == 0)
            return (int)i;
    return -1;
}

void nd_keyring_init(struct nd_keyring *kr)
{
    memset(kr, 0, sizeof *kr);
}

void nd_keyring_wipe(struct nd_keyring *kr)
{
    explicit_bzero(kr, sizeof *kr);
}

int nd_keyring_add(struct nd_keyring *kr, const uint8_t *key, size_t len)
{
    if (!key_size_ok(len))
        return ND_GOSSIP_E_KEY;
    if (find(kr, key, len) >= 0)
        return 0;
    if (kr->n >= ND_GOSSIP_KEYRING_MAX)
        return ND_GOSSIP_E_LIMIT;
    memcpy(kr->keys[kr->n], key, len);
    kr->lens[kr->n] = (uint8_t)len;
    kr->n++;
    return 0;
}

static void swap_keys(struct nd_keyring *kr, uint32_t a, uint32_t b)
{
    uint8_t t[32];
    uint8_t tl = kr->lens[a];
    memcpy(t, kr->keys[a], 32);
    memcpy(kr->keys[a], kr->keys[b], 32);
    memcpy(kr->keys[b], t, 32);
    kr->lens[a] = kr->lens[b];
    kr->lens[b] = tl;
    explicit_bzero(t, sizeof t);
}

int nd_keyring_use(struct nd_keyring *kr, const uint8_t *key, size_t len)
{
    int i = find(kr, key, len);
    if (i < 0)
        return ND_GOSSIP_E_KEY;
    /* memberlist's installKeys: the new primary first, the others in their order */
    for (int j = i; j > 0; j--)
        swap_keys(kr, (uint32_t)j, (uint32_t)j - 1);
    return 0;
}

int nd_keyring_remove(struct nd_keyring *kr, const uint8_t *key, size_t len)
{
    int i = find(kr, key, len);
    if (i == 0)
        return ND_GOSSIP_E_KEY;
    if (i < 0)
        return 0;
    for (uint32_t j = (uint32_t)i; j + 1 < kr->n; j++)
        swap_keys(kr, j, j + 1);
    kr->n--;
    explicit_bzero(kr->keys[kr->n], 32);
    kr->lens[kr->n] = 0;
    return 0;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int nd_gossip_key_from_base64(const char *s, size_t n, uint8_t key[32], size_t *len)
{
    /* strict standard base64 with padding (Go's base64.StdEncoding): 16 -> 24 chars,
     * 24 -> 32, 32 -> 44 */
    if (n % 4 != 0 || n == 0 || n > 44)
        return ND_GOSSIP_E_KEY;
    uint8_t out[33];
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
            } else if (pad || (v[j] = b64val(s[i + j])) < 0) {
                return ND_GOSSIP_E_KEY;
            }
        }
        uint32_t x =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* like Go's (non-Strict) decoder, bits under the padding are ignored */
        out[o++] = (uint8_t)(x >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(x >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)x;
        if (o > 32)
            break;
    }
    if (!key_size_ok(o)) {
        explicit_bzero(out, sizeof out);
        return ND_GOSSIP_E_KEY;
    }
    memcpy(key, out, o);
    *len = o;
    explicit_bzero(out, sizeof out);
    return 0;
}

size_t nd_gossip_key_to_base64(const uint8_t *key, size_t len, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)key[i] << 16 | (i + 1 < len ? (uint32_t)key[i + 1] << 8 : 0) |
                     (i + 2 < len ? key[i + 2] : 0);

        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < len ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? t[v & 63] : '=';
    }
    return o;
}

int nd_keyring_add_base64(struct nd_keyring *kr, const char *s, size_t n)
{
    uint8_t key[32];
    size_t len;
    int e = nd_gossip_key_from_base64(s, n, key, &len);
    if (!e)
        e = nd_keyring_add(kr, key, len);
    explicit_bzero(key, sizeof key);
    return e;
}

int nd_gossip_encrypt(const struct nd_keyring *kr, const uint8_t nonce[ND_GOSSIP_NONCE_LEN],
                      const uint8_t *msg, size_t len, const uint8_t *ad, size_t adlen, uint8_t *out,
                      size_t cap, size_t *outlen)
{
    if (kr->n == 0)
        return ND_GOSSIP_E_KEY;
    if (len > ND_GOSSIP_STREAM_MAX || adlen > UINT32_MAX)
        return ND_GOSSIP_E_LIMIT;
    if (cap < ND_GOSSIP_CRYPT_OVERHEAD || len > cap - ND_GOSSIP_CRYPT_OVERHEAD)
        return ND_GOSSIP_E_SPACE;
    Aes aes;
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0)
        return ND_GOSSIP_E_CRYPTO;
    int rc = wc_AesGcmSetKey(&aes, kr->keys[0], kr->lens[0]);
    out[0] = 1;
    memcpy(out + 1, nonce, ND_GOSSIP_NONCE_LEN);
    uint8_t *ct = out + 1 + ND_GOSSIP_NONCE_LEN;
    if (rc == 0)
        rc = wc_AesGcmEncrypt(&aes, ct, msg, (word32)len, nonce, ND_GOSSIP_NONCE_LEN, ct + len,
                              ND_GOSSIP_TAG_LEN, ad, (word32)adlen);
    wc_AesFree(&aes);
    if (rc != 0)
        return ND_GOSSIP_E_CRYPTO;
    *outlen = len + ND_GOSSIP_CRYPT_OVERHEAD;
    return 0;
}

int nd_gossip_decrypt(const struct nd_keyring *kr, const uint8_t *blob, size_t len,
                      const uint8_t *ad, size_t adlen, uint8_t *out, size_t cap, size_t *outlen)
{
    if (kr == NULL || kr->n == 0)
        return ND_GOSSIP_E_KEY;
    if (len < 1)
        return ND_GOSSIP_E_TRUNC;
    uint8_t vsn = blob[0];
    if (vsn > 1)
        return ND_GOSSIP_E_VALUE;
    /* version 0 carries at least one block of padding */
    if (len < ND_GOSSIP_CRYPT_OVERHEAD + (vsn == 0 ? 16u : 0u))
        return ND_GOSSIP_E_TRUNC;
    if (len > ND_GOSSIP_STREAM_MAX + ND_GOSSIP_CRYPT_OVERHEAD + 16 || adlen > UINT32_MAX)
        return ND_GOSSIP_E_LIMIT;
    size_t clen = len - ND_GOSSIP_CRYPT_OVERHEAD;
    if (clen > cap)
        return ND_GOSSIP_E_SPACE;
    const uint8_t *nonce = blob + 1, *ct = blob + 1 + ND_GOSSIP_NONCE_LEN, *tag = ct + clen;
    int result = ND_GOSSIP_E_DECRYPT;
    for (uint32_t i = 0; i < kr->n && result == ND_GOSSIP_E_DECRYPT; i++) {
        Aes aes;
        if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0)
            return ND_GOSSIP_E_CRYPTO;
        int rc = wc_AesGcmSetKey(&aes, kr->keys[i], kr->lens[i]);
        if (rc == 0)
            rc = wc_AesGcmDecrypt(&aes, out, ct, (word32)clen, nonce, ND_GOSSIP_NONCE_LEN, tag,
                                  ND_GOSSIP_TAG_LEN, ad, (word32)adlen);
        wc_AesFree(&aes);
        if (rc == 0)
            result = 0;
        else if (rc != AES_GCM_AUTH_E)
            result = ND_GOSSIP_E_CRYPTO;
    }
    if (result) {
        if (clen)
            memset(out, 0, clen); /* never hand out unauthenticated plaintext */
        return result;
    }
    if (vsn == 0) {
        /* PKCS#7: memberlist does not check it; a malformed pad is refused here */
        uint8_t pad = out[clen - 1];
        if (pad == 0 || pad > 16 || pad > clen)
            return ND_GOSSIP_E_VALUE;
        clen -= pad;
    }
    *outlen = clen;
    return 0;
}

int nd_gossip_stream_seal(const struct nd_keyring *kr, const uint8_t nonce[ND_GOSSIP_NONCE_LEN],
                          const uint8_t *msg, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    if (len > ND_GOSSIP_STREAM_MAX)
        return ND_GOSSIP_E_LIMIT;
    if (cap < 5)
        return ND_GOSSIP_E_SPACE;
    uint32_t n = (uint32_t)(len + ND_GOSSIP_CRYPT_OVERHEAD);
    out[0] = ND_GOSSIP_ENCRYPT;
    out[1] = (uint8_t)(n >> 24);
    out[2] = (uint8_t)(n >> 16);
    out[3] = (uint8_t)(n >> 8);
    out[4] = (uint8_t)n;
    size_t blen;
    int e = nd_gossip_encrypt(kr, nonce, msg, len, out, 5, out + 5, cap - 5, &blen);
    if (e)
        return e;
    *outlen = 5 + blen;
    return 0;
}
