/*
 * Unit tests for the mesh-wide rate limit's arithmetic (plugins/ratelimit/share.c): the gate
 * (admission against a share, demand counting, two threads on one gate), the water-filling
 * split, the report payload, the ledger (stale and dead nodes, old reports, restarts, the
 * warm-up), and the whole in the gossip simulation (bench/ratelimit-sim.c, included here): five
 * nodes under uneven load and a crash.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define RLSIM_NO_MAIN
#include "../../bench/ratelimit-sim.c"

#define MS 1000000ull

static void test_gate(void **state)
{
    struct rl_gate g;
    struct rl_gate_take t;
    uint32_t windows;

    (void)state;
    rl_gate_init(&g, 1000 * MS, 3, 5000 * MS); /* started at 5 s, windows of 1 s, share 3 */
    for (int i = 0; i < 3; i++) {
        t = rl_gate_take(&g, 5100 * MS);
        assert_true(t.ok);
        assert_int_equal(t.remaining, 2 - i);
        assert_int_equal(t.reset_ns, 900 * MS);
    }
    assert_false(rl_gate_take(&g, 5200 * MS).ok); /* the fourth in the window */
    assert_false(rl_gate_take(&g, 5999 * MS).ok);
    /* a worker whose clock is a hair behind another's counts in the newer window */
    assert_true(rl_gate_take(&g, 6000 * MS).ok);
    assert_true(rl_gate_take(&g, 5999 * MS).ok);
    /* the control side: the first window is closed (5 requests), the second is not yet */
    assert_int_equal(rl_gate_collect(&g, 6500 * MS, &windows), 5);
    assert_int_equal(windows, 1);
    /* a new share applies at once */
    atomic_store(&g.share, 10);
    for (int i = 0; i < 8; i++)
        assert_true(rl_gate_take(&g, 6600 * MS).ok);
    assert_false(rl_gate_take(&g, 6600 * MS).ok);
    /* windows nobody touched: collect closes them, 11 requests in 3 windows */
    assert_int_equal(rl_gate_collect(&g, 9100 * MS, &windows), 11);
    assert_int_equal(windows, 3);
    assert_int_equal(rl_gate_collect(&g, 9200 * MS, &windows), 0);
    assert_int_equal(windows, 0);
}

struct racer {
    struct rl_gate *g;
    pthread_barrier_t *b;
    unsigned ok;
};

static void *race(void *arg)
{
    struct racer *r = arg;

    for (int i = 0; i < 200000; i++) {
        if (i % 20000 == 0) /* both threads in the same window */
            pthread_barrier_wait(r->b);
        r->ok += rl_gate_take(r->g, (uint64_t)(i / 20000) * 1000 * MS + 1).ok;
    }
    return NULL;
}

/* two threads on one gate: exactly the share per window is admitted, and every request counted */
static void test_gate_threads(void **state)
{
    struct rl_gate g;
    pthread_barrier_t bar;
    struct racer a = {&g, &bar, 0}, b = {&g, &bar, 0};
    pthread_t ta, tb;
    uint32_t windows;

    (void)state;
    pthread_barrier_init(&bar, NULL, 2);
    rl_gate_init(&g, 1000 * MS, 1500, 0);
    pthread_create(&ta, NULL, race, &a);
    pthread_create(&tb, NULL, race, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&bar);
    /* 10 windows, 40,000 requests each (20,000 per thread): 1,500 admitted in each */
    assert_int_equal(a.ok + b.ok, 10 * 1500);
    assert_int_equal(rl_gate_collect(&g, 20000 * MS, &windows), 400000);
}

static uint64_t sum(const uint64_t *v, size_t n)
{
    uint64_t s = 0;

    for (size_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

static void test_split(void **state)
{
    uint64_t out[8];
    size_t order[8];

    (void)state;
    /* contention: 2,000 and 500 and 500 wanting, two idle nodes at the floor (10) */
    uint64_t w1[] = {2250, 563, 563, 1, 1};
    rl_split(w1, 5, 1000, 10, out, order);
    assert_int_equal(out[3], 10);
    assert_int_equal(out[4], 10);
    assert_in_range(out[0], 326, 327);
    assert_in_range(out[1], 326, 327);
    assert_int_equal(sum(out, 5), 1000);
    /* a node wanting less than its fair part gets its want, the others the rest */
    uint64_t w2[] = {2250, 100, 3000};
    rl_split(w2, 3, 1000, 16, out, order);
    assert_int_equal(out[1], 100);
    assert_int_equal(out[0], 450);
    assert_int_equal(out[2], 450);
    /* every want covered: wants, then the rest evenly */
    uint64_t w3[] = {100, 200, 300};
    rl_split(w3, 3, 1000, 16, out, order);
    assert_int_equal(out[0], 233);
    assert_int_equal(out[1], 333);
    assert_int_equal(out[2], 433);
    /* fewer tokens than nodes can have a floor: each keeps the floor (over-committed) */
    uint64_t w4[] = {50, 50, 50};
    rl_split(w4, 3, 2, 1, out, order);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[2], 1);
    /* the same wants in any order give the same shares */
    uint64_t w5[] = {563, 1, 2250, 1, 563};
    rl_split(w5, 5, 1000, 10, out, order);
    assert_int_equal(sum(out, 5), 1000);
    assert_int_equal(out[1], 10);
    /* headroom */
    assert_int_equal(rl_want(0), 1);
    assert_int_equal(rl_want(500), 562);
}

static void test_report(void **state)
{
    struct rl_report r = {.demand = 2000,
                          .tokens = 1000,
                          .interval_ms = 1000,
                          .node = "edge-1",
                          .node_len = 6},
                     d;
    char buf[64];
    size_t n = rl_report_encode(&r, buf, sizeof buf);

    (void)state;
    assert_int_equal(n, strlen("1 2000 1000 1000 edge-1"));
    assert_memory_equal(buf, "1 2000 1000 1000 edge-1", n);
    assert_int_equal(rl_report_decode(buf, n, &d), 0);
    assert_int_equal(d.demand, 2000);
    assert_int_equal(d.node_len, 6);
    assert_memory_equal(d.node, "edge-1", 6);
    assert_int_equal(rl_report_encode(&r, buf, 10), 0); /* no room */
    static const char *const bad[] = {
        "",
        "1",
        "1 2 3 4",
        "2 1 1 1 n",
        "1 -1 1 1 n",
        "1 01 1 1 n",
        "1 1  1 1 n",
        "1 1 1 1 ",
        "1 1 1 1 a\nb",
        "1 x 1 1 n",
        "1 99999999999999999999 1 1 n",
        " 1 1 1 1 n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rl_report_decode(bad[i], strlen(bad[i]), &d), -1);
    assert_int_equal(rl_report_decode(NULL, 0, &d), -1);
}

static bool alive_but_dead(void *arg, const char *node)
{
    (void)arg;
    return strcmp(node, "dead") != 0;
}

static void test_ledger(void **state)
{
    struct rl_ledger l;

    (void)state;
    rl_ledger_init(&l, 1000, 1000, 16, 0);
    /* during the warm-up, no more than an even split of the live members */
    assert_int_equal(rl_ledger_share(&l, "me", 0, 4, alive_but_dead, NULL, 100), 250);
    assert_int_equal(rl_ledger_report(&l, "a", 1, 2000, 5, 2500), 1);
    assert_int_equal(rl_ledger_report(&l, "dead", 4, 2000, 5, 2500), 1);
    /* after it: a wants 2,000, we want 100, the dead node does not count */
    assert_int_equal(rl_ledger_share(&l, "me", 100, 3, alive_but_dead, NULL, 3000), 112);
    assert_int_equal(l.n, 2);
    /* an older report of a is ignored, a newer one taken */
    assert_int_equal(rl_ledger_report(&l, "a", 1, 1, 4, 3100), 0);
    assert_int_equal(rl_ledger_report(&l, "a", 1, 300, 6, 3200), 1);
    assert_int_equal(rl_ledger_share(&l, "me", 100, 3, alive_but_dead, NULL, 3300), 387);
    /* a restarted node (its clock lower) is believed once what we hold is two periods old */
    assert_int_equal(rl_ledger_report(&l, "a", 1, 700, 2, 4000), 0);
    assert_int_equal(rl_ledger_report(&l, "a", 1, 700, 2, 5300), 1);
    /* silent for three periods: forgotten, we take it all */
    assert_int_equal(rl_ledger_share(&l, "me", 100, 2, alive_but_dead, NULL, 8400), 1000);
    assert_int_equal(l.n, 1);
    rl_ledger_free(&l);
}

static struct rls_result res;

/* The integration test's load in the simulation: within 10% of the budget in every phase, and
 * every node with demand gets a fair part. */
static void test_sim_uneven(void **state)
{
    struct rls_config c = {.nodes = 5,
                           .tokens = 1000,
                           .interval_ms = 1000,
                           .seconds = 60,
                           .latency_ms = 2,
                           .loss = 0.01,
                           .seed = 3,
                           .rate = rate_uneven};

    (void)state;
    assert_int_equal(rls_run(&c, &res), 0);
    assert_in_range(rls_rate(&c, &res, 5, 5, 30, false), 900, 1100);
    assert_in_range(rls_rate(&c, &res, 5, 35, 60, false), 900, 1100);
    for (uint32_t i = 0; i < 3; i++) /* three busy nodes: about 1/3 each */
        assert_in_range(rls_rate(&c, &res, i, 5, 30, false), 300, 340);
    for (uint32_t i = 0; i < 5; i++) /* five: 1/5 each, the two late ones too */
        assert_in_range(rls_rate(&c, &res, i, 35, 60, false), 180, 220);
    for (uint32_t t = 0; t < 60; t++) /* never over the budget by more than 10% in a second */
        assert_true(rls_rate(&c, &res, 5, t, t + 1, false) <= 1100);
    assert_true(res.reports_seen > 4 * 50 * 4 / 2);
}

/* The heavy node crashes: its part goes to the others once gossip or silence drops it. */
static void test_sim_crash(void **state)
{
    struct rls_config c = {.nodes = 5,
                           .tokens = 1000,
                           .interval_ms = 1000,
                           .seconds = 70,
                           .latency_ms = 2,
                           .loss = 0.01,
                           .seed = 5,
                           .rate = rate_uneven,
                           .crash_at = {40}};

    (void)state;
    assert_int_equal(rls_run(&c, &res), 0);
    for (uint32_t i = 1; i < 5; i++)
        assert_in_range(rls_rate(&c, &res, i, 50, 70, false), 235, 265);
    assert_in_range(rls_rate(&c, &res, 5, 50, 70, false), 950, 1050);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate),      cmocka_unit_test(test_gate_threads),
        cmocka_unit_test(test_split),     cmocka_unit_test(test_report),
        cmocka_unit_test(test_ledger),    cmocka_unit_test(test_sim_uneven),
        cmocka_unit_test(test_sim_crash),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
