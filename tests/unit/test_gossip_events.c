/*
 * Unit tests for serf user events: the event clock and recent-event buffer (gossip/evbuf.c),
 * then the engine (gossip/swim.c) over the simulated network: an event reaches every member
 * exactly once, re-broadcast with the retransmit limit; a member that missed the gossip learns
 * it from a push/pull; a joining member ignores what happened before its join; the 512-byte
 * limit on what we send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../gossip/evbuf.h"
#include "../../gossip/serf.h"
#include "../../gossip/sim.h"
#include "../../gossip/swim.h"

static struct nd_gbytes B(const char *s) {
    return (struct nd_gbytes){(const uint8_t *)s, (uint32_t)strlen(s)};
}

static void
test_clock(void **state)
{
    struct nd_evbuf b;

    (void)state;
    nd_evbuf_init(&b, 0);
    assert_int_equal(b.clock, 1);           /* serf starts at 1 */
    assert_int_equal(nd_evbuf_tick(&b), 1); /* an event goes out with the current time */
    assert_int_equal(b.clock, 2);           /* then the clock moves on */
    nd_evbuf_witness(&b, 10);
    assert_int_equal(b.clock, 11);
    nd_evbuf_witness(&b, 5); /* never backwards */
    assert_int_equal(b.clock, 11);
    /* receiving an event witnesses its time, even when it is refused */
    assert_int_equal(nd_evbuf_accept(&b, 40, B("a"), B("")), ND_EVBUF_NEW);
    assert_int_equal(b.clock, 41);
    nd_evbuf_free(&b);
}

static void test_dedup(void **state)
{
    struct nd_evbuf b;
    struct nd_gbytes nil = {NULL, 0};

    (void)state;
    nd_evbuf_init(&b, 0);
    assert_int_equal(nd_evbuf_accept(&b, 3, B("deploy"), B("v1")), ND_EVBUF_NEW);
    assert_int_equal(nd_evbuf_accept(&b, 3, B("deploy"), B("v1")), ND_EVBUF_DUPLICATE);
    /* same time, other payload or name: another event */
    assert_int_equal(nd_evbuf_accept(&b, 3, B("deploy"), B("v2")), ND_EVBUF_NEW);
    assert_int_equal(nd_evbuf_accept(&b, 3, B("undeploy"), B("v1")), ND_EVBUF_NEW);
    /* same event at another time: another event */
    assert_int_equal(nd_evbuf_accept(&b, 4, B("deploy"), B("v1")), ND_EVBUF_NEW);
    /* nil and empty payloads are equal (Go's bytes.Compare) */
    assert_int_equal(nd_evbuf_accept(&b, 5, B("x"), nil), ND_EVBUF_NEW);
    assert_int_equal(nd_evbuf_accept(&b, 5, B("x"), B("")), ND_EVBUF_DUPLICATE);
    assert_int_equal(b.events, 5);
    assert_int_equal(b.used_slots, 3);

    /* the push/pull view: one group per time, events in arrival order, nil kept as nil */
    struct nd_serf_event_group g[3];
    struct nd_serf_event_item it[5];
    assert_int_equal(nd_evbuf_groups(&b, g, it), 3);
    assert_int_equal(g[0].ltime, 3);
    assert_int_equal(g[0].n, 3);
    assert_memory_equal(g[0].ev[1].payload.p, "v2", 2);
    assert_int_equal(g[2].ltime, 5);
    assert_null(g[2].ev[0].payload.p);
    nd_evbuf_free(&b);
}

static void test_window(void **state)
{
    struct nd_evbuf b;

    (void)state;
    nd_evbuf_init(&b, 0);
    assert_int_equal(nd_evbuf_accept(&b, 5, B("old"), B("")), ND_EVBUF_NEW);
    nd_evbuf_witness(&b, 999); /* clock 1000: the window is [488, ...) */
    assert_int_equal(nd_evbuf_accept(&b, 487, B("a"), B("")), ND_EVBUF_TOO_OLD);
    assert_int_equal(nd_evbuf_accept(&b, 488, B("a"), B("")), ND_EVBUF_NEW);
    /* a slot taken by a newer time forgets the older one: 5 and 517 share a slot */
    assert_int_equal(nd_evbuf_accept(&b, 517, B("new"), B("")), ND_EVBUF_NEW);
    assert_int_equal(b.events, 2);
    /* serf's eventMinTime after a join */
    nd_evbuf_ignore_before(&b, 900);
    assert_int_equal(nd_evbuf_accept(&b, 899, B("b"), B("")), ND_EVBUF_BEFORE_JOIN);
    assert_int_equal(nd_evbuf_accept(&b, 900, B("b"), B("")), ND_EVBUF_NEW);
    nd_evbuf_ignore_before(&b, 10); /* never moves back */
    assert_int_equal(nd_evbuf_accept(&b, 899, B("c"), B("")), ND_EVBUF_BEFORE_JOIN);
    /* the end of the clock's range does not wrap */
    nd_evbuf_witness(&b, UINT64_MAX - 1);
    assert_int_equal(b.clock, UINT64_MAX);
    nd_evbuf_witness(&b, UINT64_MAX);
    assert_int_equal(b.clock, UINT64_MAX);
    nd_evbuf_free(&b);
}

static void test_bounds(void **state)
{
    static char big[ND_EVBUF_EVENT_MAX + 1];
    struct nd_evbuf b;
    char name[32];

    (void)state;
    memset(big, 'x', sizeof big);
    nd_evbuf_init(&b, 0);
    /* serf's sane limit on name + payload, 9 KiB */
    assert_int_equal(
        nd_evbuf_accept(&b, 1, B("n"), (struct nd_gbytes){(uint8_t *)big, ND_EVBUF_EVENT_MAX - 1}),
        ND_EVBUF_NEW);
    assert_int_equal(
        nd_evbuf_accept(&b, 2, B("n"), (struct nd_gbytes){(uint8_t *)big, ND_EVBUF_EVENT_MAX}),
        ND_EVBUF_TOO_LARGE);
    /* events of one time */
    for (unsigned i = 0; i < ND_EVBUF_SLOT_MAX; i++) {
        snprintf(name, sizeof name, "e%u", i);
        assert_int_equal(nd_evbuf_accept(&b, 7, B(name), B("")), ND_EVBUF_NEW);
    }
    assert_int_equal(nd_evbuf_accept(&b, 7, B("one more"), B("")), ND_EVBUF_FULL);
    nd_evbuf_free(&b);

    /* the byte bound: 4 KiB holds four 1 KiB events (with their overhead), then refuses; an older
     * time's slot given back makes room again */
    nd_evbuf_init(&b, 4096);
    unsigned ok = 0;
    for (unsigned i = 0; i < 8; i++)
        ok += nd_evbuf_accept(&b, 10 + i, B("n"), (struct nd_gbytes){(uint8_t *)big, 1000}) ==
              ND_EVBUF_NEW;
    assert_int_equal(ok, 4);
    assert_true(b.bytes <= 4096);
    assert_int_equal(
        nd_evbuf_accept(&b, 10 + ND_EVBUF_SLOTS, B("n"), (struct nd_gbytes){(uint8_t *)big, 1000}),
        ND_EVBUF_NEW);
    nd_evbuf_free(&b);
}

/* ---- the engine over the simulated network ---------------------------------------------- */

#define N 12

static struct {
    unsigned got[N];     /* deliveries of "deploy" per node */
    unsigned refused[N]; /* refused events per node */
    uint64_t ltime[N];   /* the time each saw */
    bool self[N], via_pp[N];
    char payload[N][16];
} seen;

static void on_user_event(void *arg, uint32_t obs, const struct nd_swim_user_event *ev,
                          uint64_t now)
{
    (void)arg;
    (void)now;
    if (obs >= N)
        return;
    if (ev->refused) {
        seen.refused[obs]++;
        return;
    }
    if (ev->name_len != 6 || memcmp(ev->name, "deploy", 6) != 0)
        return;
    seen.got[obs]++;
    seen.ltime[obs] = ev->ltime;
    seen.self[obs] = ev->self;
    seen.via_pp[obs] = ev->pushpull;
    snprintf(seen.payload[obs], sizeof seen.payload[obs], "%.*s", (int)ev->payload_len,
             ev->payload_len ? (const char *)ev->payload : "");
}

static struct nd_sim *cluster(uint32_t n)
{
    struct nd_sim_config c = {
        .nodes = n, .seed = 7, .latency_ms = 1, .jitter_ms = 2, .on_user_event = on_user_event};

    memset(&seen, 0, sizeof seen);
    nd_swim_config_lan(&c.swim);
    c.swim.stream_max = 1u << 20;
    return nd_sim_new(&c);
}

static void start(struct nd_sim *s, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to; i++) {
        assert_int_equal(nd_sim_start(s, i, NULL), 0);
        if (i)
            nd_sim_join(s, i, 0);
        nd_sim_run(s, nd_sim_now(s) + 10);
    }
    nd_sim_run(s, nd_sim_now(s) + 20000);
    for (uint32_t i = from; i < to; i++)
        assert_int_equal(nd_sim_count(s, i, ND_GOSSIP_STATE_ALIVE), to);
}

static void test_gossiped_once(void **state)
{
    struct nd_sim *s = cluster(N);

    (void)state;
    start(s, 0, N);
    uint64_t t0 = nd_swim_event_clock(nd_sim_engine(s, 3));
    assert_int_equal(nd_sim_user_event(s, 3, "deploy", 6, "v7", 2, true), 0);
    /* delivered at once to the sender (serf does so too) */
    assert_int_equal(seen.got[3], 1);
    assert_true(seen.self[3]);
    nd_sim_run(s, nd_sim_now(s) + 3000);
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(seen.got[i], 1); /* every member, exactly once */
        assert_int_equal(seen.ltime[i], t0);
        assert_string_equal(seen.payload[i], "v7");
        assert_false(seen.via_pp[i]);
        /* everyone's clock witnessed the event's time */
        assert_true(nd_swim_event_clock(nd_sim_engine(s, i)) > t0);
        assert_int_equal(seen.refused[i], 0);
    }
    const struct nd_swim_metrics *m = nd_swim_metrics(nd_sim_engine(s, 5));
    assert_int_equal(m->events_received, 1);
    assert_true(m->events_duplicate > 0); /* gossip's redundancy: copies arrive and are dropped */
    assert_int_equal(m->events_buffered, 1);
    assert_int_equal(nd_swim_metrics(nd_sim_engine(s, 3))->events_sent, 1);
    /* re-broadcasts stop: after the retransmit limit nothing of it is queued anywhere */
    nd_sim_run(s, nd_sim_now(s) + 5000);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(nd_swim_metrics(nd_sim_engine(s, i))->queued, 0);
    nd_sim_free(s);
}

static void test_pushpull_catch_up(void **state)
{
    struct nd_sim *s = cluster(3);

    (void)state;
    start(s, 0, 3);
    /* node 2 cut off while the event is gossiped; back before anyone declares it dead */
    nd_sim_partition(s, 2, 1);
    assert_int_equal(nd_sim_user_event(s, 0, "deploy", 6, "v2", 2, false), 0);
    nd_sim_run(s, nd_sim_now(s) + 1500);
    assert_int_equal(seen.got[1], 1);
    assert_int_equal(seen.got[2], 0);
    nd_sim_partition(s, 2, 0);
    /* the gossip is over (3 x 1 transmissions); the periodic push/pull (30 s) carries the
     * recent events */
    nd_sim_run(s, nd_sim_now(s) + 65000);
    assert_int_equal(seen.got[2], 1);
    assert_true(seen.via_pp[2]);
    assert_string_equal(seen.payload[2], "v2");
    assert_int_equal(seen.got[0], 1); /* and nobody twice */
    assert_int_equal(seen.got[1], 1);
    nd_sim_free(s);
}

static void test_join_ignores_old(void **state)
{
    struct nd_sim *s = cluster(3);

    (void)state;
    start(s, 0, 2);
    assert_int_equal(nd_sim_user_event(s, 0, "deploy", 6, "before", 6, false), 0);
    nd_sim_run(s, nd_sim_now(s) + 2000);
    assert_int_equal(seen.got[1], 1);
    /* node 2 joins after the event: its join answer carries the event, which it ignores */
    assert_int_equal(nd_sim_start(s, 2, NULL), 0);
    nd_sim_join(s, 2, 0);
    nd_sim_run(s, nd_sim_now(s) + 5000);
    assert_int_equal(nd_sim_count(s, 2, ND_GOSSIP_STATE_ALIVE), 3);
    assert_int_equal(seen.got[2], 0);
    assert_true(nd_swim_metrics(nd_sim_engine(s, 2))->events_before_join >= 1);
    /* its clock moved past the cluster's, so what comes next is delivered */
    assert_true(nd_swim_event_clock(nd_sim_engine(s, 2)) >=
                nd_swim_event_clock(nd_sim_engine(s, 0)) - 1);
    assert_int_equal(nd_sim_user_event(s, 1, "deploy", 6, "after", 5, false), 0);
    nd_sim_run(s, nd_sim_now(s) + 2000);
    assert_int_equal(seen.got[2], 1);
    assert_string_equal(seen.payload[2], "after");
    nd_sim_free(s);
}

static void test_send_limit(void **state)
{
    struct nd_sim *s = cluster(1);
    static char payload[600];

    (void)state;
    memset(payload, 'p', sizeof payload);
    start(s, 0, 1);
    struct nd_swim *sw = nd_sim_engine(s, 0);
    uint64_t c = nd_swim_event_clock(sw);
    /* name + payload over 512 */
    assert_int_equal(nd_sim_user_event(s, 0, "n", 1, payload, 512, false), ND_GOSSIP_E_LIMIT);
    /* within 512 before encoding, over it once encoded (serf checks both) */
    assert_int_equal(nd_sim_user_event(s, 0, "n", 1, payload, 500, false), ND_GOSSIP_E_LIMIT);
    assert_int_equal(nd_swim_event_clock(sw), c); /* a refused event takes no time */
    assert_int_equal(nd_sim_user_event(s, 0, "n", 1, payload, 400, false), 0);
    assert_int_equal(nd_swim_event_clock(sw), c + 1);
    assert_int_equal(nd_swim_metrics(sw)->events_sent, 1);
    nd_sim_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock),
        cmocka_unit_test(test_dedup),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_gossiped_once),
        cmocka_unit_test(test_pushpull_catch_up),
        cmocka_unit_test(test_join_ignores_old),
        cmocka_unit_test(test_send_limit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
