/*
 * Unit tests of the load balancers (core/cluster.c, nd_lb_pick): weighted round robin (exact
 * counts, smoothness, per-worker offsets), least_request (power of two choices, weighted by load),
 * weighted random (statistical bounds, fixed seed), subsets, the retry's avoided endpoint, failing
 * endpoints, a single endpoint, nothing eligible. In memory: a cluster is loaded from a Lua string
 * by the configuration loader and run by a worker structure that is never started.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"
#include "config.h"
#include "worker.h"

#define SEED 0x9E3779B97F4A7C15ULL

static const char *const policies[] = {"round_robin", "least_request", "random"};
#define NPOLICIES (sizeof(policies) / sizeof(policies[0]))

/* ---- a cluster and a worker ------------------------------------------------------------------ */

static struct nd_config *cfg;
static struct nd_cluster_rt *crt;
static struct nd_worker wk;

static void unload(void)
{
    if (cfg) {
        nd_cluster_rt_free(cfg, crt);
        nd_config_free(cfg);
    }
    cfg = NULL;
    crt = NULL;
}

static int teardown(void **state)
{
    (void)state;
    unload();
    return 0;
}

/* Loads `cluster "c" { lb = "<lb>", endpoints = { <eps> } }` and gives worker `id` (random seed
 * SEED) a fresh run-time copy of it. */
static void load(const char *lb, const char *eps, unsigned id)
{
    char text[8192];
    struct nd_errors errs = {0};

    unload();
    snprintf(text, sizeof(text), "cluster \"c\" { lb = \"%s\", endpoints = { %s } }", lb, eps);
    cfg = nd_config_load_string("t.lua", text, strlen(text), &errs);
    if (!cfg)
        fail_msg("%s: %s", text, errs.n ? errs.msg[0] : "?");
    assert_int_equal(cfg->nclusters, 1);
    crt = nd_cluster_rt_create(cfg);
    assert_non_null(crt);
    memset(&wk, 0, sizeof(wk));
    wk.id = id;
    wk.rng = SEED;
}

/* Loads a cluster of n endpoints 127.0.0.1:9001... with the given weights, for worker 0. */
static void load_weights(const char *lb, const uint32_t *w, unsigned n)
{
    char eps[4096];
    size_t off = 0;

    for (unsigned i = 0; i < n; i++)
        off += (size_t)snprintf(eps + off, sizeof(eps) - off,
                                "{ address = \"127.0.0.1:%u\", weight = %u }, ", 9001 + i, w[i]);
    load(lb, eps, 0);
}

#define LOADW(lb, ...)                                                                             \
    load_weights(lb, (const uint32_t[]){__VA_ARGS__},                                              \
                 sizeof((const uint32_t[]){__VA_ARGS__}) / sizeof(uint32_t))

static int pick(void)
{
    return nd_lb_pick(&wk, crt, NULL, NULL, -1);
}

/* n picks (subset key/val, avoid), counted per endpoint into cnt[neps]. Every pick must succeed. */
static void count(unsigned n, const char *key, const char *val, int avoid, unsigned *cnt)
{
    memset(cnt, 0, crt->cc->neps * sizeof(*cnt));
    for (unsigned k = 0; k < n; k++) {
        int i = nd_lb_pick(&wk, crt, key, val, avoid);

        assert_true(i >= 0 && (unsigned)i < crt->cc->neps);
        cnt[i]++;
    }
}

/* |got - want| <= tol */
#define assert_near(got, want, tol)                                                                \
    do {                                                                                           \
        long g_ = (long)(got), w_ = (long)(want), t_ = (long)(tol);                                \
        if (g_ < w_ - t_ || g_ > w_ + t_)                                                          \
            fail_msg("%s = %ld, want %ld +- %ld", #got, g_, w_, t_);                               \
    } while (0)

/* ---- round robin ----------------------------------------------------------------------------- */

/* Equal weights: a plain rotation, exactly even. */
static void test_rr_equal(void **state)
{
    unsigned cnt[3];

    (void)state;
    LOADW("round_robin", 1, 1, 1);
    for (int k = 0; k < 30; k++)
        assert_int_equal(pick(), k % 3);
    count(3000, NULL, NULL, -1, cnt);
    assert_int_equal(cnt[0], 1000);
    assert_int_equal(cnt[1], 1000);
    assert_int_equal(cnt[2], 1000);
}

/* 5:1:1: exactly 5, 1 and 1 in every 7 picks (sliding window), interleaved as nginx's smooth
 * weighted round robin does: a a b a c a a. */
static void test_rr_weighted(void **state)
{
    static const int want[7] = {0, 0, 1, 0, 2, 0, 0};
    int seq[7000];
    unsigned cnt[4];

    (void)state;
    LOADW("round_robin", 5, 1, 1);
    for (int k = 0; k < 7000; k++) {
        seq[k] = pick();
        assert_int_equal(seq[k], want[k % 7]);
    }
    for (int k = 0; k + 7 <= 7000; k++) {
        unsigned w[3] = {0};

        for (int j = k; j < k + 7; j++)
            w[seq[j]]++;
        assert_int_equal(w[0], 5);
        assert_int_equal(w[1], 1);
        assert_int_equal(w[2], 1);
    }
    LOADW("round_robin", 3, 2, 1000, 7);
    count(1012 * 50, NULL, NULL, -1, cnt);
    assert_int_equal(cnt[0], 3 * 50);
    assert_int_equal(cnt[1], 2 * 50);
    assert_int_equal(cnt[2], 1000 * 50);
    assert_int_equal(cnt[3], 7 * 50);
}

/* The longest run of endpoint e in n picks. */
static unsigned max_run(unsigned n, int e)
{
    unsigned run = 0, best = 0;

    for (unsigned k = 0; k < n; k++) {
        run = pick() == e ? run + 1 : 0;
        if (run > best)
            best = run;
    }
    return best;
}

/* Smooth: the heavy endpoint's runs stay short where a plain weighted rotation would send all its
 * weight in one burst (5, 10, 5 in a row), and a light endpoint is never starved for long. */
static void test_rr_smooth(void **state)
{
    (void)state;
    LOADW("round_robin", 5, 1, 1);
    assert_true(max_run(7000, 0) <= 4); /* bursty: 5; the best possible: 3 */
    LOADW("round_robin", 5, 2, 1);
    assert_true(max_run(8000, 0) <= 2); /* a b a a c a b a */
    LOADW("round_robin", 10, 1, 1);
    assert_true(max_run(12000, 0) <= 7);
}

/* 1 against 1000000: the light endpoint gets exactly one pick per 1000001, mid-cycle (not at the
 * start of every cycle, which would be a burst for it relative to its weight). */
static void test_rr_extreme(void **state)
{
    unsigned light = 0, first = 0;

    (void)state;
    LOADW("round_robin", 1000000, 1);
    for (unsigned k = 1; k <= 2 * 1000001; k++)
        if (pick() == 1 && light++ == 0)
            first = k;
    assert_int_equal(light, 2);
    assert_true(first > 400000 && first < 600000);
}

/* Worker k starts k picks into the schedule: with equal weights, at endpoint k mod n; with 5:1:1,
 * the first picks of 7 workers are the schedule itself (so not all endpoint 0). */
static void test_rr_worker_offset(void **state)
{
    static const int want[7] = {0, 0, 1, 0, 2, 0, 0};
    const char *eps3 = "\"127.0.0.1:9001\", \"127.0.0.1:9002\", \"127.0.0.1:9003\"";
    const char *eps511 = "{ address = \"127.0.0.1:9001\", weight = 5 }, \"127.0.0.1:9002\", "
                         "\"127.0.0.1:9003\"";

    (void)state;
    for (unsigned id = 0; id < ND_MAX_WORKERS; id++) {
        load("round_robin", eps3, id);
        assert_int_equal(pick(), (int)(id % 3));
        assert_int_equal(pick(), (int)((id + 1) % 3));
        load("round_robin", eps511, id);
        assert_int_equal(pick(), want[id % 7]);
        assert_int_equal(pick(), want[(id + 1) % 7]);
    }
}

/* ---- least request --------------------------------------------------------------------------- */

/* Equal weights, power of two choices: the most loaded endpoint never gets a request; the least
 * loaded one wins every draw it is in (half of them, with 4 endpoints and 2 distinct draws). */
static void test_least_p2c(void **state)
{
    unsigned cnt[4];

    (void)state;
    LOADW("least_request", 1, 1, 1, 1);
    crt->eps[0].active = 9;
    crt->eps[1].active = 1;
    crt->eps[2].active = 1;
    crt->eps[3].active = 1;
    count(30000, NULL, NULL, -1, cnt);
    assert_int_equal(cnt[0], 0);
    assert_near(cnt[1], 10000, 500);
    assert_near(cnt[2], 10000, 500);
    assert_near(cnt[3], 10000, 500);

    crt->eps[0].active = 5;
    crt->eps[1].active = 0;
    crt->eps[2].active = 5;
    crt->eps[3].active = 5;
    count(20000, NULL, NULL, -1, cnt);
    assert_near(cnt[1], 10000, 500); /* P(in the pair) = 1 - C(3,2)/C(4,2) = 1/2 */

    /* two endpoints: always the less loaded one (the two draws are distinct) */
    LOADW("least_request", 7, 7);
    crt->eps[0].active = 3;
    crt->eps[1].active = 2;
    count(1000, NULL, NULL, -1, cnt);
    assert_int_equal(cnt[1], 1000);
}

/* n requests in flight at all times: each step one of them, drawn at random, completes and a new
 * one is picked. Returns the picks per endpoint in cnt, and the mean over the steps of the spread
 * of requests in flight (most loaded endpoint minus least loaded). */
static double closed_loop(unsigned inflight, unsigned steps, unsigned *cnt)
{
    int slot[64];
    unsigned n = crt->cc->neps;
    uint64_t spread = 0;

    assert_true(inflight <= 64);
    memset(cnt, 0, n * sizeof(*cnt));
    for (unsigned k = 0; k < inflight; k++) {
        slot[k] = pick();
        crt->eps[slot[k]].active++;
    }
    for (unsigned k = 0; k < steps; k++) {
        unsigned j = (unsigned)(nd_rand(&wk) % inflight), lo = ~0u, hi = 0;

        crt->eps[slot[j]].active--;
        slot[j] = pick();
        crt->eps[slot[j]].active++;
        cnt[slot[j]]++;
        for (unsigned i = 0; i < n; i++) {
            lo = crt->eps[i].active < lo ? crt->eps[i].active : lo;
            hi = crt->eps[i].active > hi ? crt->eps[i].active : hi;
        }
        spread += hi - lo;
    }
    return (double)spread / steps;
}

/* Under load, equal weights: requests in flight stay balanced, far more evenly than a random
 * pick keeps them. */
static void test_least_balances(void **state)
{
    unsigned cnt[4];
    double p2c, rnd;

    (void)state;
    LOADW("least_request", 1, 1, 1, 1);
    p2c = closed_loop(40, 20000, cnt);
    for (int i = 0; i < 4; i++)
        assert_near(cnt[i], 5000, 500);
    LOADW("random", 1, 1, 1, 1);
    rnd = closed_loop(40, 20000, cnt);
    assert_true(p2c < 3.0);       /* 2.2 */
    assert_true(p2c < 0.5 * rnd); /* 6.6 */
}

/* Unequal weights: the schedule follows weight / (active + 1). Idle: exactly the weights; 2:1
 * with 3 requests on the first: effective 0.5 against 1, so 1:2. */
static void test_least_weighted(void **state)
{
    unsigned cnt[3];

    (void)state;
    LOADW("least_request", 3, 1);
    count(4000, NULL, NULL, -1, cnt);
    assert_int_equal(cnt[0], 3000);
    assert_int_equal(cnt[1], 1000);

    LOADW("least_request", 2, 1);
    crt->eps[0].active = 3;
    count(3000, NULL, NULL, -1, cnt);
    assert_int_equal(cnt[0], 1000);
    assert_int_equal(cnt[1], 2000);

    /* fewer requests in flight wins among equal shares: 4:2:2 with 7 on the first */
    LOADW("least_request", 4, 2, 2);
    crt->eps[0].active = 7;
    crt->eps[1].active = 0;
    crt->eps[2].active = 1;
    count(7000, NULL, NULL, -1, cnt); /* 0.5 : 2 : 1 */
    assert_int_equal(cnt[0], 1000);
    assert_int_equal(cnt[1], 4000);
    assert_int_equal(cnt[2], 2000);
}

/* Unequal weights under load, Envoy's formula taken to its consequences. One request at a time
 * (nothing in flight at each pick): exactly the weights. 50 in flight, equally fast endpoints:
 * picks follow requests in flight a, and the schedule settles where a0 (a0 + 1) : a1 (a1 + 1)
 * = 4 : 1, that is a0 ~ 33.5, a1 ~ 16.5: the heavy endpoint gets about twice the traffic, not
 * four times (docs/config.md says so). */
static void test_least_weighted_load(void **state)
{
    unsigned cnt[2];

    (void)state;
    LOADW("least_request", 4, 1);
    closed_loop(1, 5000, cnt);
    assert_int_equal(cnt[0], 4000);
    assert_int_equal(cnt[1], 1000);

    LOADW("least_request", 4, 1);
    closed_loop(50, 50000, cnt);
    assert_true(cnt[0] > 1.8 * cnt[1] && cnt[0] < 2.3 * cnt[1]); /* 2.01 */
}

/* ---- random ---------------------------------------------------------------------------------- */

/* Weighted random with a fixed seed, within about 5 standard deviations of the expectation. */
static void test_random_weighted(void **state)
{
    unsigned cnt[4];

    (void)state;
    LOADW("random", 1, 1, 1);
    count(30000, NULL, NULL, -1, cnt); /* sd 82 */
    for (int i = 0; i < 3; i++)
        assert_near(cnt[i], 10000, 410);

    LOADW("random", 5, 1, 1);
    count(70000, NULL, NULL, -1, cnt); /* sd 120, 93 */
    assert_near(cnt[0], 50000, 600);
    assert_near(cnt[1], 10000, 470);
    assert_near(cnt[2], 10000, 470);

    LOADW("random", 1000000, 1);
    count(1000000, NULL, NULL, -1, cnt); /* the light one: Poisson, mean 1 */
    assert_true(cnt[1] <= 8);

    LOADW("random", 1, 1000000, 1, 1000000);
    count(100000, NULL, NULL, -1, cnt);
    assert_true(cnt[0] + cnt[2] <= 8);
    assert_near(cnt[1], 50000, 800);
}

/* Not a fixed rotation: consecutive picks are independent (5:1:1 has no fixed pattern), and two
 * workers with different seeds make different sequences. */
static void test_random_independent(void **state)
{
    unsigned same = 0, pairs[3][3] = {{0}};
    int a[1000], prev;

    (void)state;
    LOADW("random", 1, 1, 1);
    prev = pick();
    for (int k = 0; k < 27000; k++) {
        int i = pick();

        pairs[prev][i]++;
        prev = i;
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            assert_near(pairs[i][j], 3000, 300); /* sd 52 */
    for (int k = 0; k < 1000; k++)
        a[k] = pick();
    wk.rng = SEED ^ 0x1234567;
    for (int k = 0; k < 1000; k++)
        same += pick() == a[k];
    assert_near(same, 333, 80);
}

/* ---- every policy ---------------------------------------------------------------------------- */

static const char *const labelled =
    "{ address = \"127.0.0.1:9001\", weight = 3, labels = { version = \"v1\", zone = \"a\" } }, "
    "{ address = \"127.0.0.1:9002\", weight = 1, labels = { version = \"v1\" } }, "
    "{ address = \"127.0.0.1:9003\", weight = 2, labels = { version = \"v2\", zone = \"a\" } }, "
    "{ address = \"127.0.0.1:9004\", weight = 1 }";

/* Subsets: only endpoints carrying key=val, by their weights; no match -> -1. */
static void test_subsets(void **state)
{
    unsigned cnt[4];

    (void)state;
    for (size_t p = 0; p < NPOLICIES; p++) {
        load(policies[p], labelled, 0);
        count(4000, "version", "v1", -1, cnt);
        assert_int_equal(cnt[2] + cnt[3], 0);
        if (strcmp(policies[p], "round_robin") == 0) {
            assert_int_equal(cnt[0], 3000);
            assert_int_equal(cnt[1], 1000);
        } else if (strcmp(policies[p], "random") == 0) {
            assert_near(cnt[0], 3000, 140); /* sd 27 */
        }
        count(1000, "version", "v2", -1, cnt);
        assert_int_equal(cnt[2], 1000);
        count(3000, "zone", "a", -1, cnt);
        assert_int_equal(cnt[1] + cnt[3], 0);
        if (strcmp(policies[p], "round_robin") == 0) {
            assert_near(cnt[0], 1800, 1);
            assert_near(cnt[2], 1200, 1);
        }
        count(7000, NULL, NULL, -1, cnt);
        assert_true(cnt[0] && cnt[1] && cnt[2] && cnt[3]);
        assert_int_equal(nd_lb_pick(&wk, crt, "version", "v3", -1), -1);
        assert_int_equal(nd_lb_pick(&wk, crt, "region", "a", -1), -1);
        assert_int_equal(nd_lb_pick(&wk, crt, "zone", "a1", 0), -1);
    }
}

/* The retry's endpoint is never picked again while another is eligible, even the heaviest; it is
 * when it is the only one left. */
static void test_avoid(void **state)
{
    unsigned cnt[4];

    (void)state;
    for (size_t p = 0; p < NPOLICIES; p++) {
        load(policies[p], labelled, 0);
        count(3000, NULL, NULL, 0, cnt);
        assert_int_equal(cnt[0], 0);
        if (strcmp(policies[p], "round_robin") == 0) {
            assert_int_equal(cnt[1], 750);
            assert_int_equal(cnt[2], 1500);
            assert_int_equal(cnt[3], 750);
        }
        count(1000, "version", "v1", 1, cnt);
        assert_int_equal(cnt[0], 1000);
        /* the only endpoint of its subset */
        assert_int_equal(nd_lb_pick(&wk, crt, "version", "v2", 2), 2);
        /* alternating avoid, as retries do: never the same twice in a row */
        int prev = -1;

        for (int k = 0; k < 2000; k++) {
            int i = nd_lb_pick(&wk, crt, NULL, NULL, prev);

            assert_true(i >= 0 && i != prev);
            prev = i;
        }
    }
}

/* Failing endpoints (EP_FAIL_LIMIT = 3 consecutive connect failures) sit out while another is
 * eligible; 2 failures do not count yet; when all matching endpoints fail, they are picked anyway
 * by the policy and weights (avoid still excluded), and the healthy avoided one comes first. */
static void test_failing(void **state)
{
    unsigned cnt[4];

    (void)state;
    for (size_t p = 0; p < NPOLICIES; p++) {
        load(policies[p], labelled, 0);
        crt->eps[0].fails = 3;
        crt->eps[1].fails = 2;
        count(3000, NULL, NULL, -1, cnt);
        assert_int_equal(cnt[0], 0);
        assert_true(cnt[1] && cnt[2] && cnt[3]);

        /* every v1 endpoint failing: picked anyway, by weight */
        crt->eps[1].fails = 5;
        count(4000, "version", "v1", -1, cnt);
        assert_true(cnt[0] > 2 * cnt[1]);
        assert_int_equal(cnt[0] + cnt[1], 4000);
        /* ... but not the avoided one */
        count(100, "version", "v1", 0, cnt);
        assert_int_equal(cnt[1], 100);
        /* a healthy avoided endpoint comes before the failing ones */
        crt->eps[0].fails = 0;
        assert_int_equal(nd_lb_pick(&wk, crt, "version", "v1", 0), 0);
        /* the only endpoint, failing and avoided: nothing */
        crt->eps[2].fails = 3;
        assert_int_equal(nd_lb_pick(&wk, crt, "version", "v2", 2), -1);
        assert_int_equal(nd_lb_pick(&wk, crt, "version", "v2", -1), 2);
        /* success resets the count (proxy.c): eligible again */
        crt->eps[1].fails = 0;
        count(4000, "version", "v1", -1, cnt);
        assert_true(cnt[0] && cnt[1]);
    }
}

/* One endpoint: always it, whatever its weight, the avoid (a retry to the same endpoint) or its
 * failures. */
static void test_single(void **state)
{
    (void)state;
    for (size_t p = 0; p < NPOLICIES; p++) {
        load(policies[p], "{ address = \"127.0.0.1:9001\", weight = 1000000 }", 0);
        for (int k = 0; k < 100; k++)
            assert_int_equal(pick(), 0);
        assert_int_equal(nd_lb_pick(&wk, crt, NULL, NULL, 0), 0);
        crt->eps[0].fails = 10;
        assert_int_equal(pick(), 0);
        crt->eps[0].active = 100;
        assert_int_equal(pick(), 0);
    }
}

/* Nothing eligible: -1 from every policy (no match; the only match avoided and failing). */
static void test_none(void **state)
{
    (void)state;
    for (size_t p = 0; p < NPOLICIES; p++) {
        load(policies[p], labelled, 0);
        assert_int_equal(nd_lb_pick(&wk, crt, "version", "v9", -1), -1);
        assert_int_equal(nd_lb_pick(&wk, crt, "nokey", "v1", -1), -1);
        load(policies[p], "\"127.0.0.1:9001\"", 0);
        crt->eps[0].fails = 3;
        assert_int_equal(nd_lb_pick(&wk, crt, NULL, NULL, 0), -1);
        assert_int_equal(nd_lb_pick(&wk, crt, "version", "v1", -1), -1);
    }
}

/* Many endpoints, the largest weights: the smooth schedule's exact counts, no overflow (UBSan),
 * and least_request's load weighting at the extremes. */
static void test_large(void **state)
{
    char eps[64 * 64];
    size_t off = 0;
    unsigned cnt[64];

    (void)state;
    for (unsigned i = 0; i < 64; i++)
        off += (size_t)snprintf(eps + off, sizeof(eps) - off,
                                "{ address = \"127.0.0.1:%u\", weight = %u }, ", 9001 + i,
                                i % 2 ? 1000000 : 999999);
    load("round_robin", eps, 5);
    count(64 * 1000, NULL, NULL, -1, cnt);
    for (unsigned i = 0; i < 64; i++)
        assert_near(cnt[i], 1000, 1);

    load("least_request", eps, 5);
    for (unsigned i = 0; i < 64; i++)
        crt->eps[i].active = i * 1000000u;
    count(10000, NULL, NULL, -1, cnt);
    assert_true(cnt[0] > 9000); /* effective weight 2^40 against 2^20 / i at most */
    for (unsigned i = 1; i < 64; i++)
        crt->eps[i].active = 0;
    crt->eps[0].active = ~0u - 1;
    count(10000, NULL, NULL, -1, cnt);
    assert_true(cnt[0] <= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_rr_equal, teardown),
        cmocka_unit_test_teardown(test_rr_weighted, teardown),
        cmocka_unit_test_teardown(test_rr_smooth, teardown),
        cmocka_unit_test_teardown(test_rr_extreme, teardown),
        cmocka_unit_test_teardown(test_rr_worker_offset, teardown),
        cmocka_unit_test_teardown(test_least_p2c, teardown),
        cmocka_unit_test_teardown(test_least_balances, teardown),
        cmocka_unit_test_teardown(test_least_weighted, teardown),
        cmocka_unit_test_teardown(test_least_weighted_load, teardown),
        cmocka_unit_test_teardown(test_random_weighted, teardown),
        cmocka_unit_test_teardown(test_random_independent, teardown),
        cmocka_unit_test_teardown(test_subsets, teardown),
        cmocka_unit_test_teardown(test_avoid, teardown),
        cmocka_unit_test_teardown(test_failing, teardown),
        cmocka_unit_test_teardown(test_single, teardown),
        cmocka_unit_test_teardown(test_none, teardown),
        cmocka_unit_test_teardown(test_large, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
