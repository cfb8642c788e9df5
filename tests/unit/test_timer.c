/* Timer wheel: ordering, cancel, re-arm from a callback, long sleeps, next-expiry hint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "timer.h"

static int fired[8];

static void cb0(struct nd_timer *t) { (void)t; fired[0]++; }
static void cb1(struct nd_timer *t) { (void)t; fired[1]++; }

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fire_in_order),
        cmocka_unit_test(test_cancel_and_rearm),
        cmocka_unit_test(test_long_sleep_and_next),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
