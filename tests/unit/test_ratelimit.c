/*
 * Unit tests of the rate limiter's arithmetic (plugins/ratelimit/bucket.c), with a fake clock:
 * bucket fills, caps, clocks read out of order by workers, the epoch format's limits; key tables
 * (same key same bucket, LRU eviction within a set); exactness with two threads taking from one
 * bucket at once; and the cost of a take, alone and contended (printed, not asserted).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <nodus/siphash.h>

#include "../../plugins/ratelimit/bucket.h"

#define MS 1000000ull

static struct rl_limit mklimit(uint32_t max, uint32_t fill, uint64_t interval_ms)
{
    struct rl_limit l = {.max = max, .interval_ns = interval_ms * MS};

    atomic_init(&l.fill, fill);
    return l;
}

static void test_bucket_starts_full_and_empties(void **state)
{
    struct rl_limit l = mklimit(10, 5, 1000);
    struct rl_bucket b;

    (void)state;
    rl_bucket_init(&b, &l, 0);
    for (uint32_t i = 0; i < 10; i++) {
        struct rl_take t = rl_take(&b.word, &l, 0);

        assert_true(t.ok);
        assert_int_equal(t.remaining, 9 - i);
    }
    assert_false(rl_take(&b.word, &l, 0).ok);
    assert_int_equal(rl_peek(atomic_load(&b.word), &l, 0), 0);
}

static void test_bucket_fills_by_interval(void **state)
{
    struct rl_limit l = mklimit(10, 4, 100);
    struct rl_bucket b;
    const uint64_t start = 5000 * MS;

    (void)state;
    rl_bucket_init(&b, &l, 0);
    for (int i = 0; i < 10; i++)
        assert_true(rl_take(&b.word, &l, rl_epoch(&l, start + 99 * MS, start)).ok);
    /* 99 ms in: still epoch 0, nothing added */
    assert_false(rl_take(&b.word, &l, rl_epoch(&l, start + 99 * MS, start)).ok);
    /* 100 ms: one fill of 4 */
    assert_int_equal(rl_epoch(&l, start + 100 * MS, start), 1);
    for (int i = 0; i < 4; i++)
        assert_true(rl_take(&b.word, &l, 1).ok);
    assert_false(rl_take(&b.word, &l, 1).ok);
    /* two intervals later: 8 tokens */
    assert_int_equal(rl_peek(atomic_load(&b.word), &l, 3), 8);
    /* much later: capped at max */
    assert_int_equal(rl_peek(atomic_load(&b.word), &l, 1000), 10);
    /* time to the next fill */
    assert_int_equal(rl_until_fill(&l, start + 130 * MS, start), 70 * MS);
    assert_int_equal(rl_until_fill(&l, start + 200 * MS, start), 100 * MS);
}

static void test_bucket_clock_out_of_order(void **state)
{
    struct rl_limit l = mklimit(2, 2, 1000);
    struct rl_bucket b;

    (void)state;
    rl_bucket_init(&b, &l, 7);
    assert_true(rl_take(&b.word, &l, 7).ok);
    assert_true(rl_take(&b.word, &l, 8).ok); /* refill to 2, take: 1 left at epoch 8 */
    /* a worker whose clock read is older (epoch 7) sees epoch 8 in the word: no refill, and the
     * word's epoch is not moved backwards */
    assert_true(rl_take(&b.word, &l, 7).ok);
    assert_false(rl_take(&b.word, &l, 7).ok);
    assert_false(rl_take(&b.word, &l, 8).ok);
    assert_int_equal(atomic_load(&b.word) >> 24, 8);
    assert_true(rl_take(&b.word, &l, 9).ok);
}

static void test_bucket_long_idle(void **state)
{
    struct rl_limit l = mklimit(RL_MAX_TOKENS, 1, 50);
    struct rl_bucket b;

    (void)state;
    rl_bucket_init(&b, &l, 0);
    for (int i = 0; i < 3; i++)
        assert_true(rl_take(&b.word, &l, 0).ok);
    /* idle for years: d * fill must not overflow, and the bucket is full */
    assert_int_equal(rl_peek(atomic_load(&b.word), &l, UINT64_C(1) << 38), RL_MAX_TOKENS);
    /* the biggest bucket with a fill of 1 per interval */
    assert_int_equal(rl_peek(atomic_load(&b.word), &l, 2), RL_MAX_TOKENS - 1);
}

static void test_fill_changed_at_run_time(void **state)
{
    struct rl_limit l = mklimit(100, 10, 1000);
    struct rl_bucket b;

    (void)state;
    rl_bucket_init(&b, &l, 0);
    for (int i = 0; i < 100; i++)
        assert_true(rl_take(&b.word, &l, 0).ok);
    atomic_store(&l.fill, 3); /* what a mesh-wide budget agent would do */
    assert_int_equal(rl_peek(atomic_load(&b.word), &l, 2), 6);
}

/* SipHash-c-d as the reference describes it, a byte at a time: what the shared implementation's
 * word loads must agree with. */
static uint64_t siphash_bytes(uint64_t k0, uint64_t k1, const uint8_t *in, size_t len, int c, int d)
{
    uint64_t v[4] = {0x736f6d6570736575ull ^ k0, 0x646f72616e646f6dull ^ k1,
                     0x6c7967656e657261ull ^ k0, 0x7465646279746573ull ^ k1};
    uint64_t b = (uint64_t)len << 56, m;
    size_t i, left = len & 7, end = len - left;

    for (i = 0; i < end; i += 8) {
        m = 0;
        for (int k = 7; k >= 0; k--)
            m = m << 8 | in[i + (size_t)k];
        v[3] ^= m;
        nodus_siphash_rounds(v, c);
        v[0] ^= m;
    }
    for (i = 0; i < left; i++)
        b |= (uint64_t)in[end + i] << (8 * i);
    v[3] ^= b;
    nodus_siphash_rounds(v, c);
    v[0] ^= b;
    v[2] ^= 0xff;
    nodus_siphash_rounds(v, d);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static void test_siphash(void **state)
{
    const uint64_t k[2] = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
    const uint64_t k2[2] = {1, 2};
    unsigned char m[64];

    (void)state;
    for (int i = 0; i < 64; i++)
        m[i] = (unsigned char)i;
    /* the shared implementation (include/nodus/siphash.h): SipHash-2-4's reference vector (key
     * 00..0f, message 00..0e), and the 1-3 variant ratelimit uses, as computed before it moved */
    assert_true(nodus_siphash(k[0], k[1], m, 15, 2, 4) == 0xa129ca6149be45e5ull);
    assert_true(rl_siphash(k, m, 15) == 0xd320d86d2a519956ull);
    /* deterministic, length- and key-sensitive, every tail length handled */
    assert_int_equal(rl_siphash(k, m, 15), rl_siphash(k, m, 15));
    /* every length, at every alignment: the word loads agree with the bytes */
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= 64; n++) {
            assert_true(nodus_siphash(k[0], k[1], m + off, n, 1, 3) ==
                        siphash_bytes(k[0], k[1], m + off, n, 1, 3));
            assert_true(nodus_siphash(k2[0], k2[1], m + off, n, 2, 4) ==
                        siphash_bytes(k2[0], k2[1], m + off, n, 2, 4));
        }
    for (size_t n = 0; n < 24; n++) {
        assert_int_not_equal(rl_siphash(k, m, n), rl_siphash(k, m, n + 1));
        assert_int_not_equal(rl_siphash(k, m, n), rl_siphash(k2, m, n));
    }
}

static void test_table_same_key_same_bucket(void **state)
{
    struct rl_limit l = mklimit(3, 3, 1000);
    struct rl_table t;
    bool ev;

    (void)state;
    assert_int_equal(rl_table_init(&t, 10000), 0);
    assert_int_equal(rl_table_capacity(&t), 10000);
    _Atomic uint64_t *a = rl_table_get(&t, &l, "alice", 5, 0, 1, &ev);
    assert_false(ev);
    _Atomic uint64_t *b = rl_table_get(&t, &l, "bob", 3, 0, 1, &ev);
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(a, rl_table_get(&t, &l, "alice", 5, 0, 2, &ev));
    for (int i = 0; i < 3; i++)
        assert_true(rl_take(rl_table_get(&t, &l, "alice", 5, 0, 3, &ev), &l, 0).ok);
    assert_false(rl_take(rl_table_get(&t, &l, "alice", 5, 0, 3, &ev), &l, 0).ok);
    assert_true(rl_take(rl_table_get(&t, &l, "bob", 3, 0, 3, &ev), &l, 0).ok);
    rl_table_free(&t);
}

static void test_table_lru_eviction(void **state)
{
    struct rl_limit l = mklimit(1, 1, 1000);
    struct rl_table t;
    char key[16];
    bool ev;

    (void)state;
    assert_int_equal(rl_table_init(&t, 8), 0); /* one set of 8 ways */
    assert_int_equal(rl_table_capacity(&t), 8);
    for (uint32_t i = 0; i < 8; i++) {
        int n = snprintf(key, sizeof(key), "k%u", i);

        assert_true(rl_take(rl_table_get(&t, &l, key, (size_t)n, 0, 100 + i, &ev), &l, 0).ok);
        assert_false(ev);
    }
    /* k0 used again last: k1 is now the least recently used */
    assert_false(rl_take(rl_table_get(&t, &l, "k0", 2, 0, 200, &ev), &l, 0).ok);
    assert_false(ev);
    /* a ninth key evicts k1, and gets a full bucket */
    assert_true(rl_take(rl_table_get(&t, &l, "k8", 2, 0, 201, &ev), &l, 0).ok);
    assert_true(ev);
    /* k0 (recent) is still tracked: still empty */
    assert_false(rl_take(rl_table_get(&t, &l, "k0", 2, 0, 202, &ev), &l, 0).ok);
    assert_false(ev);
    /* k1 comes back as a new key (full again), evicting k2, the next oldest */
    assert_true(rl_take(rl_table_get(&t, &l, "k1", 2, 0, 203, &ev), &l, 0).ok);
    assert_true(ev);
    assert_false(rl_take(rl_table_get(&t, &l, "k3", 2, 0, 204, &ev), &l, 0).ok);
    assert_false(ev);
    rl_table_free(&t);
}

/* ---- two threads at once ---- */

struct hammer {
    struct rl_limit *l;
    _Atomic uint64_t *w;
    struct rl_table *t;
    uint64_t n, ok;
    pthread_barrier_t *bar;
};

static void *hammer_bucket(void *arg)
{
    struct hammer *h = arg;

    pthread_barrier_wait(h->bar);
    for (uint64_t i = 0; i < h->n; i++)
        h->ok += rl_take(h->w, h->l, 0).ok;
    return NULL;
}

static void test_two_threads_exact(void **state)
{
    struct rl_limit l = mklimit(50000, 1, 1000);
    struct rl_bucket b;
    pthread_barrier_t bar;
    pthread_t th[2];
    struct hammer h[2];

    (void)state;
    rl_bucket_init(&b, &l, 0);
    pthread_barrier_init(&bar, NULL, 2);
    for (int i = 0; i < 2; i++) {
        h[i] = (struct hammer){.l = &l, .w = &b.word, .n = 100000, .bar = &bar};
        pthread_create(&th[i], NULL, hammer_bucket, &h[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    /* 200,000 attempts on 50,000 tokens: exactly 50,000 admitted, whatever the interleaving */
    assert_int_equal(h[0].ok + h[1].ok, 50000);
}

static void *hammer_keys(void *arg)
{
    struct hammer *h = arg;
    char key[16];
    bool ev;

    pthread_barrier_wait(h->bar);
    for (uint64_t i = 0; i < h->n; i++) {
        int n = snprintf(key, sizeof(key), "key-%u", (unsigned)(i % 64));

        h->ok += rl_take(rl_table_get(h->t, h->l, key, (size_t)n, 0, (uint32_t)i, &ev), h->l, 0).ok;
    }
    return NULL;
}

static void test_two_threads_keys(void **state)
{
    struct rl_limit l = mklimit(10, 1, 1000);
    struct rl_table t;
    pthread_barrier_t bar;
    pthread_t th[2];
    struct hammer h[2];

    (void)state;
    assert_int_equal(rl_table_init(&t, 1024), 0);
    pthread_barrier_init(&bar, NULL, 2);
    for (int i = 0; i < 2; i++) {
        h[i] = (struct hammer){.l = &l, .t = &t, .n = 64 * 100, .bar = &bar};
        pthread_create(&th[i], NULL, hammer_keys, &h[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    /* 64 keys of 10 tokens: 640, plus at most a few from claim races on a new key */
    uint64_t ok = h[0].ok + h[1].ok;
    print_message("keys: %llu admitted of 640 tokens\n", (unsigned long long)ok);
    assert_true(ok >= 640 && ok <= 640 + 64);
    rl_table_free(&t);
}

/* ---- cost ---- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_cost(void **state)
{
    struct rl_limit l = mklimit(RL_MAX_TOKENS, RL_MAX_TOKENS, 1000);
    struct rl_bucket b, b2;
    pthread_barrier_t bar;
    pthread_t th[2];
    struct hammer h[2];
    const uint64_t n = 2000000;
    double t0;

    (void)state;
    rl_bucket_init(&b, &l, 0);
    rl_bucket_init(&b2, &l, 0);
    pthread_barrier_init(&bar, NULL, 1);
    h[0] = (struct hammer){.l = &l, .w = &b.word, .n = n, .bar = &bar};
    t0 = now_s();
    hammer_bucket(&h[0]);
    print_message("one thread: %.1f ns per take\n", (now_s() - t0) * 1e9 / (double)n);
    pthread_barrier_destroy(&bar);

    for (int shared = 1; shared >= 0; shared--) {
        rl_bucket_init(&b, &l, 0);
        rl_bucket_init(&b2, &l, 0);
        pthread_barrier_init(&bar, NULL, 2);
        t0 = now_s();
        for (int i = 0; i < 2; i++) {
            h[i] = (struct hammer){
                .l = &l, .w = i && !shared ? &b2.word : &b.word, .n = n, .bar = &bar};
            pthread_create(&th[i], NULL, hammer_bucket, &h[i]);
        }
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        print_message("two threads, %s bucket: %.1f ns per take (wall time / takes per thread)\n",
                      shared ? "one shared" : "a separate", (now_s() - t0) * 1e9 / (double)n);
        pthread_barrier_destroy(&bar);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_starts_full_and_empties),
        cmocka_unit_test(test_bucket_fills_by_interval),
        cmocka_unit_test(test_bucket_clock_out_of_order),
        cmocka_unit_test(test_bucket_long_idle),
        cmocka_unit_test(test_fill_changed_at_run_time),
        cmocka_unit_test(test_siphash),
        cmocka_unit_test(test_table_same_key_same_bucket),
        cmocka_unit_test(test_table_lru_eviction),
        cmocka_unit_test(test_two_threads_exact),
        cmocka_unit_test(test_two_threads_keys),
        cmocka_unit_test(test_cost),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
