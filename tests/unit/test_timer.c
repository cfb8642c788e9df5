/* Timer wheel: ordering, cancel, re-arm from a callback, long sleeps, next-expiry hint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "timer.h"

static int fired[8];

static void cb0(struct nd_timer *t)
{
    (void)t;
    fired[0]++;
}
static void cb1(struct nd_timer *t)
{
    (void)t;
    fired[1]++;
}

static struct nd_wheel *rearm_wheel;
static void cb_rearm(struct nd_timer *t)
{
    fired[2]++;
    if (fired[2] < 3)
        nd_timer_arm(rearm_wheel, t, 10);
}

static void test_fire_in_order(void **state)
{
    struct nd_wheel w;
    struct nd_timer a = {.cb = cb0}, b = {.cb = cb1};

    (void)state;
    memset(fired, 0, sizeof(fired));
    nd_wheel_init(&w, 1000);
    nd_timer_arm(&w, &a, 5);
    nd_timer_arm(&w, &b, 2000); /* beyond one lap of the wheel */
    assert_int_equal(nd_wheel_advance(&w, 1004), 0);
    assert_int_equal(nd_wheel_advance(&w, 1005), 1);
    assert_int_equal(fired[0], 1);
    assert_false(nd_timer_armed(&a));
    assert_int_equal(nd_wheel_advance(&w, 2999), 0);
    assert_int_equal(fired[1], 0);
    assert_int_equal(nd_wheel_advance(&w, 3000), 1);
    assert_int_equal(fired[1], 1);
    assert_int_equal(w.count, 0);
}

static void test_cancel_and_rearm(void **state)
{
    struct nd_wheel w;
    struct nd_timer a = {.cb = cb0}, r = {.cb = cb_rearm};

    (void)state;
    memset(fired, 0, sizeof(fired));
    nd_wheel_init(&w, 0);
    rearm_wheel = &w;
    nd_timer_arm(&w, &a, 10);
    nd_timer_cancel(&w, &a);
    nd_timer_cancel(&w, &a); /* twice is harmless */
    nd_timer_arm(&w, &r, 10);
    for (uint64_t now = 1; now <= 100; now++) /* a loop advancing each millisecond */
        nd_wheel_advance(&w, now);
    assert_int_equal(fired[0], 0);
    /* fires at 10, re-arms itself for 20 and 30, then stops */
    assert_int_equal(fired[2], 3);
    assert_int_equal(w.count, 0);
}

static void test_long_sleep_and_next(void **state)
{
    struct nd_wheel w;
    struct nd_timer t[100];
    int i;

    (void)state;
    memset(fired, 0, sizeof(fired));
    nd_wheel_init(&w, 50);
    assert_int_equal(nd_wheel_next(&w), -1);
    for (i = 0; i < 100; i++) {
        t[i].cb = cb0;
        t[i].pprev = NULL;
        nd_timer_arm(&w, &t[i], (uint64_t)(i * 37 + 1));
    }
    assert_true(nd_wheel_next(&w) <= 1);
    nd_wheel_advance(&w, 50 + 100000); /* a sleep of many laps */
    assert_int_equal(fired[0], 100);
    assert_int_equal(w.count, 0);
}

/* Many timers from 1 ms to beyond the wheel's horizon, some cancelled and re-armed: following
 * nd_wheel_next() exactly, every timer fires on its own tick, never early, never late, and the
 * number of wake-ups stays far below the number of milliseconds that pass. */
/* nd_wheel_set_now(), as the DPDK poll loop uses it: the clock moves past a timer's expiry (an
 * iteration kept the core busy), the input read then rearms the timer (an ACK restarts a loss
 * probe), and the advance that follows runs nothing; timers armed meanwhile count from the new
 * clock; one that nobody touched fires at the advance, on its tick. Many ticks apart too. */
static void test_set_now_then_advance(void **state)
{
    struct nd_wheel w;
    struct nd_timer probe = {.cb = cb0}, other = {.cb = cb1};

    (void)state;
    memset(fired, 0, sizeof(fired));
    nd_wheel_init(&w, 1000);
    nd_timer_arm(&w, &probe, 10);
    nd_timer_arm(&w, &other, 20);
    nd_wheel_set_now(&w, 1030); /* busy for 30 ms: both expired, neither ran */
    assert_int_equal(fired[0] + fired[1], 0);
    assert_int_equal(w.now, 1030);
    nd_timer_arm(&w, &probe, 10); /* the ACK that waited: from 1030, not 1000 */
    assert_int_equal(probe.expire, 1040);
    assert_int_equal(nd_wheel_advance(&w, 1030), 1); /* the other one only */
    assert_int_equal(fired[0], 0);
    assert_int_equal(fired[1], 1);
    assert_int_equal(nd_wheel_next(&w), 10);
    nd_wheel_set_now(&w, 1020); /* never backwards */
    assert_int_equal(w.now, 1030);
    assert_int_equal(nd_wheel_advance(&w, 1039), 0);
    assert_int_equal(nd_wheel_advance(&w, 1040), 1);
    assert_int_equal(fired[0], 1);
    /* across level boundaries: armed far, the clock set past it, rearmed, then advanced */
    nd_timer_arm(&w, &probe, 5000);
    nd_timer_arm(&w, &other, 300);
    nd_wheel_set_now(&w, 1040 + 6000);
    nd_timer_arm(&w, &probe, 100);
    assert_int_equal(nd_wheel_advance(&w, 1040 + 6000), 1);
    assert_int_equal(fired[1], 2);
    assert_int_equal(nd_wheel_advance(&w, 1040 + 6099), 0);
    assert_int_equal(nd_wheel_advance(&w, 1040 + 6100), 1);
    assert_int_equal(fired[0], 2);
    assert_int_equal(w.count, 0);
}

static struct nd_wheel *rw;
static unsigned rfired, rlate;

static void cb_exact(struct nd_timer *t)
{
    rfired++;
    if (rw->now != t->expire)
        rlate++;
}

static void test_random_exact(void **state)
{
    enum { N = 5000 };
    static struct nd_timer t[N];
    static struct nd_wheel w;
    uint64_t seed = 42, start = 1000, now = start, wakeups = 0;
    unsigned i, cancelled = 0;

    (void)state;
    rw = &w;
    rfired = rlate = 0;
    nd_wheel_init(&w, start);
    for (i = 0; i < N; i++) {
        uint64_t ms;

        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        switch ((seed >> 33) % 4) {
        case 0:
            ms = 1 + (seed >> 40) % 64;
            break; /* level 0 */
        case 1:
            ms = 1 + (seed >> 40) % 5000;
            break; /* level 1 */
        case 2:
            ms = 1 + (seed >> 40) % 300000;
            break; /* level 2 */
        default:
            ms = 1 + (seed >> 20) % 20000000;
            break; /* level 3 and past the horizon */
        }
        memset(&t[i], 0, sizeof(t[i]));
        t[i].cb = cb_exact;
        nd_timer_arm(&w, &t[i], ms);
    }
    for (i = 0; i < N; i += 7) { /* cancel some, re-arm half of those */
        nd_timer_cancel(&w, &t[i]);
        cancelled++;
        if (i % 2) {
            nd_timer_arm(&w, &t[i], 1 + i * 13);
            cancelled--;
        }
    }
    assert_int_equal(w.count, N - cancelled);
    while (w.count) {
        int next = nd_wheel_next(&w);

        assert_true(next >= 0);
        now += next ? (uint64_t)next : 1;
        nd_wheel_advance(&w, now);
        wakeups++;
    }
    assert_int_equal(rfired, N - cancelled);
    assert_int_equal(rlate, 0);
    assert_true(wakeups < 3 * N);
    assert_int_equal(nd_wheel_next(&w), -1);
    for (i = 0; i < 4; i++)
        assert_int_equal(w.used[i], 0);
}

/* With a sleep longer than asked (a busy loop), timers fire late but all fire, in order of
 * expiry within one advance. */
static uint64_t last_expire;
static unsigned disorder;

static void cb_order(struct nd_timer *t)
{
    if (t->expire < last_expire)
        disorder++;
    last_expire = t->expire;
    rfired++;
}

static void test_coarse_advance(void **state)
{
    static struct nd_timer t[1000];
    struct nd_wheel w;
    unsigned i;

    (void)state;
    rfired = disorder = 0;
    last_expire = 0;
    nd_wheel_init(&w, 0);
    for (i = 0; i < 1000; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        t[i].cb = cb_order;
        nd_timer_arm(&w, &t[i], 1 + (i * 7919) % 100000);
    }
    for (uint64_t now = 0; now <= 100000; now += 333)
        nd_wheel_advance(&w, now);
    nd_wheel_advance(&w, 100001);
    assert_int_equal(rfired, 1000);
    assert_int_equal(disorder, 0);
    assert_int_equal(w.count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fire_in_order),       cmocka_unit_test(test_random_exact),
        cmocka_unit_test(test_coarse_advance),      cmocka_unit_test(test_cancel_and_rearm),
        cmocka_unit_test(test_long_sleep_and_next), cmocka_unit_test(test_set_now_then_advance),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
