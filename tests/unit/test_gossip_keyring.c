/*
 * Unit tests for gossip/keyring.c: memberlist's keyring semantics (primary, rotation), base64
 * keys, AES-GCM with 16/24/32-byte keys, authentication of ciphertext, nonce and additional data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../gossip/keyring.h"

static const uint8_t k16[16] = "0123456789abcdef", k24[24] = "0123456789abcdefghijklmn",
                     k32[32] = "0123456789abcdef0123456789ABCDEF";
static const uint8_t nonce[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

static void test_keyring_semantics(void **state)
{
    (void)state;
    struct nd_keyring kr;
    nd_keyring_init(&kr);
    assert_int_equal(nd_keyring_add(&kr, k16, 15), ND_GOSSIP_E_KEY);
    assert_int_equal(nd_keyring_add(&kr, k16, 16), 0);
    assert_int_equal(nd_keyring_add(&kr, k24, 24), 0);
    assert_int_equal(nd_keyring_add(&kr, k16, 16), 0); /* present: no-op */
    assert_int_equal(kr.n, 2);
    assert_memory_equal(kr.keys[0], k16, 16); /* the first key is the primary */
    assert_int_equal(nd_keyring_use(&kr, k32, 32), ND_GOSSIP_E_KEY);
    /* rotation as `serf keys -install`, `-use`, `-remove` */
    assert_int_equal(nd_keyring_add(&kr, k32, 32), 0);
    assert_int_equal(nd_keyring_use(&kr, k32, 32), 0);
    assert_int_equal(kr.lens[0], 32);
    assert_memory_equal(kr.keys[0], k32, 32);
    assert_memory_equal(kr.keys[1], k16, 16); /* the others keep their order */
    assert_memory_equal(kr.keys[2], k24, 24);
    assert_int_equal(nd_keyring_remove(&kr, k32, 32), ND_GOSSIP_E_KEY); /* primary */
    assert_int_equal(nd_keyring_remove(&kr, k16, 16), 0);
    assert_int_equal(nd_keyring_remove(&kr, k16, 16), 0); /* absent: no-op */
    assert_int_equal(kr.n, 2);
    assert_memory_equal(kr.keys[1], k24, 24);
    for (unsigned i = 2; i < ND_GOSSIP_KEYRING_MAX; i++) {
        uint8_t k[16] = {(uint8_t)i};
        assert_int_equal(nd_keyring_add(&kr, k, 16), 0);
    }
    uint8_t extra[16] = {0xee};
    assert_int_equal(nd_keyring_add(&kr, extra, 16), ND_GOSSIP_E_LIMIT);
    nd_keyring_wipe(&kr);
    assert_int_equal(kr.n, 0);
}

static void test_base64(void **state)
{
    (void)state;
    uint8_t key[32];
    size_t n;
    /* base64 of "0123456789abcdef" */
    assert_int_equal(nd_gossip_key_from_base64("MDEyMzQ1Njc4OWFiY2RlZg==", 24, key, &n), 0);
    {
        /* and back, as `serf keys -list` shows keys; 24- and 32-byte keys too */
        char b64[48];
        uint8_t k2[32];
        size_t n2;

        assert_int_equal(nd_gossip_key_to_base64(key, n, b64), 24);
        assert_memory_equal(b64, "MDEyMzQ1Njc4OWFiY2RlZg==", 24);
        for (size_t len = 16; len <= 32; len += 8) {
            for (size_t i = 0; i < len; i++)
                k2[i] = (uint8_t)(i * 37 + len);
            size_t bl = nd_gossip_key_to_base64(k2, len, b64);
            assert_int_equal(bl, (len + 2) / 3 * 4);
            assert_int_equal(nd_gossip_key_from_base64(b64, bl, key, &n2), 0);
            assert_int_equal(n2, len);
            assert_memory_equal(key, k2, len);
        }
        assert_int_equal(nd_gossip_key_from_base64("MDEyMzQ1Njc4OWFiY2RlZg==", 24, key, &n), 0);
    }
    assert_int_equal(n, 16);
    assert_memory_equal(key, k16, 16);
    /* 24 and 32 bytes */
    assert_int_equal(nd_gossip_key_from_base64("MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u", 32, key, &n), 0);
    assert_int_equal(n, 24);
    assert_memory_equal(key, k24, 24);
    assert_int_equal(
        nd_gossip_key_from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlBQkNERUY=", 44, key, &n), 0);
    assert_int_equal(n, 32);
    assert_memory_equal(key, k32, 32);
    /* bits under the padding are ignored, as Go's decoder does */
    assert_int_equal(nd_gossip_key_from_base64("MDEyMzQ1Njc4OWFiY2RlZh==", 24, key, &n), 0);
    assert_memory_equal(key, k16, 16);
    /* wrong sizes, bad characters, missing or misplaced padding */
    const char *bad[] = {"",
                         "MDEy",
                         "MDEyMzQ1Njc4OWFiY2RlZg=",
                         "MDEyMzQ1Njc4OWFiY2RlZg",
                         "MDEyMzQ1Njc4OWFiY2RlZ===",
                         "MDEyMzQ1Njc4OWFiY2Rl*g==",
                         "MDEyMzQ1Njc4OW=iY2RlZg==",
                         "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1uMDEyMzQ1Njc4OWFiY2RlZmdo"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(nd_gossip_key_from_base64(bad[i], strlen(bad[i]), key, &n),
                         ND_GOSSIP_E_KEY);
    struct nd_keyring kr;
    nd_keyring_init(&kr);
    assert_int_equal(nd_keyring_add_base64(&kr, "MDEyMzQ1Njc4OWFiY2RlZg==", 24), 0);
    assert_int_equal(kr.n, 1);
    assert_int_equal(nd_keyring_add_base64(&kr, "nope", 4), ND_GOSSIP_E_KEY);
    nd_keyring_wipe(&kr);
}

static void test_encrypt_roundtrip(void **state)
{
    (void)state;
    const uint8_t *keys[3] = {k16, k24, k32};
    const size_t lens[3] = {16, 24, 32};
    static const uint8_t msg[] = "\x00\x82\xa4Node\xa1n\xa5SeqNo\x01";
    uint8_t blob[128], plain[128];
    size_t n, pn;
    for (int k = 0; k < 3; k++) {
        struct nd_keyring kr;
        nd_keyring_init(&kr);
        assert_int_equal(nd_keyring_add(&kr, keys[k], lens[k]), 0);
        assert_int_equal(
            nd_gossip_encrypt(&kr, nonce, msg, sizeof msg, NULL, 0, blob, sizeof blob, &n), 0);
        assert_int_equal(n, sizeof msg + ND_GOSSIP_CRYPT_OVERHEAD);
        assert_int_equal(blob[0], 1);
        assert_memory_equal(blob + 1, nonce, 12);
        assert_int_equal(nd_gossip_decrypt(&kr, blob, n, NULL, 0, plain, sizeof plain, &pn), 0);
        assert_int_equal(pn, sizeof msg);
        assert_memory_equal(plain, msg, pn);
        /* any flipped bit, in version, nonce, ciphertext or tag, is refused */
        for (size_t i = 1; i < n; i++) {
            blob[i] ^= 0x10;
            assert_int_equal(nd_gossip_decrypt(&kr, blob, n, NULL, 0, plain, sizeof plain, &pn),
                             ND_GOSSIP_E_DECRYPT);
            blob[i] ^= 0x10;
        }
        blob[0] = 2;
        assert_int_equal(nd_gossip_decrypt(&kr, blob, n, NULL, 0, plain, sizeof plain, &pn),
                         ND_GOSSIP_E_VALUE);
        blob[0] = 1;
        /* additional data must match */
        assert_int_equal(
            nd_gossip_decrypt(&kr, blob, n, (const uint8_t *)"x", 1, plain, sizeof plain, &pn),
            ND_GOSSIP_E_DECRYPT);
        /* too short, too little room */
        assert_int_equal(nd_gossip_decrypt(&kr, blob, 28, NULL, 0, plain, sizeof plain, &pn),
                         ND_GOSSIP_E_TRUNC);
        assert_int_equal(nd_gossip_decrypt(&kr, blob, n, NULL, 0, plain, 3, &pn),
                         ND_GOSSIP_E_SPACE);
        assert_int_equal(nd_gossip_encrypt(&kr, nonce, msg, sizeof msg, NULL, 0, blob, n - 1, &n),
                         ND_GOSSIP_E_SPACE);
        nd_keyring_wipe(&kr);
    }
    /* an empty message is fine: 29 bytes */
    struct nd_keyring kr;
    nd_keyring_init(&kr);
    assert_int_equal(nd_gossip_encrypt(&kr, nonce, msg, 1, NULL, 0, blob, sizeof blob, &n),
                     ND_GOSSIP_E_KEY);
    assert_int_equal(nd_keyring_add(&kr, k16, 16), 0);
    assert_int_equal(nd_gossip_encrypt(&kr, nonce, msg, 0, NULL, 0, blob, sizeof blob, &n), 0);
    assert_int_equal(n, 29);
    assert_int_equal(nd_gossip_decrypt(&kr, blob, n, NULL, 0, plain, sizeof plain, &pn), 0);
    assert_int_equal(pn, 0);
    nd_keyring_wipe(&kr);
}

/* Rotation between two nodes: a receiver with old and new keys reads both; after `use`, the
 * sender's packets carry the new key; after `remove`, old packets no longer open. */
static void test_rotation(void **state)
{
    (void)state;
    struct nd_keyring a, b;
    nd_keyring_init(&a);
    nd_keyring_init(&b);
    assert_int_equal(nd_keyring_add(&a, k16, 16), 0);
    assert_int_equal(nd_keyring_add(&b, k16, 16), 0);
    uint8_t old_blob[64], new_blob[64], plain[64];
    size_t on, nn, pn;
    assert_int_equal(nd_gossip_encrypt(&a, nonce, (const uint8_t *)"hi", 2, NULL, 0, old_blob,
                                       sizeof old_blob, &on),
                     0);
    assert_int_equal(nd_keyring_add(&a, k32, 32), 0);
    assert_int_equal(nd_keyring_add(&b, k32, 32), 0);
    assert_int_equal(nd_keyring_use(&a, k32, 32), 0);
    assert_int_equal(nd_gossip_encrypt(&a, nonce, (const uint8_t *)"hi", 2, NULL, 0, new_blob,
                                       sizeof new_blob, &nn),
                     0);
    assert_int_equal(nd_gossip_decrypt(&b, new_blob, nn, NULL, 0, plain, sizeof plain, &pn), 0);
    assert_int_equal(nd_gossip_decrypt(&b, old_blob, on, NULL, 0, plain, sizeof plain, &pn), 0);
    assert_int_equal(nd_keyring_use(&b, k32, 32), 0);
    assert_int_equal(nd_keyring_remove(&b, k16, 16), 0);
    assert_int_equal(nd_gossip_decrypt(&b, old_blob, on, NULL, 0, plain, sizeof plain, &pn),
                     ND_GOSSIP_E_DECRYPT);
    assert_int_equal(nd_gossip_decrypt(&b, new_blob, nn, NULL, 0, plain, sizeof plain, &pn), 0);
    nd_keyring_wipe(&a);
    nd_keyring_wipe(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyring_semantics),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_encrypt_roundtrip),
        cmocka_unit_test(test_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
