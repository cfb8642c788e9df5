/*
 * Unit tests for the SWIM engine (gossip/swim.c) over the simulated network (gossip/sim.c):
 * join, probe failure -> suspect -> dead, refutation, graceful leave, partition and heal,
 * encryption mismatch, a 50-node cluster, and hostile input (alive floods, table limit).
 * Virtual time: each test runs a few simulated minutes in well under a second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../core/config.h"
#include "../../gossip/keyring.h"
#include "../../gossip/serf.h"
#include "../../gossip/sim.h"
#include "../../gossip/swim.h"
#include "../../gossip/wire.h"

/* events seen, for the assertions */
static struct {
    uint32_t suspect[64], failed[64], left[64], alive_again[64];
    uint64_t first_failed_at[64];
} seen;

static void on_event(void *arg, uint32_t observer, const struct nd_swim_member *m,
                     enum nd_swim_event ev, uint64_t now)
{
    int j = nd_sim_index(m->name);

    (void)arg;
    (void)observer;
    if (j < 0 || j >= 64)
        return;
    switch (ev) {
    case ND_SWIM_EV_SUSPECT:
        seen.suspect[j]++;
        break;
    case ND_SWIM_EV_FAILED:
        if (!seen.failed[j]++)
            seen.first_failed_at[j] = now;
        break;
    case ND_SWIM_EV_LEFT:
        seen.left[j]++;
        break;
    case ND_SWIM_EV_ALIVE:
        seen.alive_again[j]++;
        break;
    default:
        break;
    }
}

static struct nd_sim *cluster(uint32_t n, double loss, uint64_t seed)
{
    struct nd_sim_config c = {.nodes = n,
                              .seed = seed,
                              .loss = loss,
                              .latency_ms = 1,
                              .jitter_ms = 2,
                              .on_event = on_event};

    memset(&seen, 0, sizeof seen);
    nd_swim_config_lan(&c.swim);
    c.swim.stream_max = 1u << 20;
    return nd_sim_new(&c);
}

/* Starts nodes [0, n) and has each join node 0, 10 ms apart. */
static void start_all(struct nd_sim *s, uint32_t n, const struct nd_keyring *kr)
{
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(nd_sim_start(s, i, kr), 0);
        if (i)
            nd_sim_join(s, i, 0);
        nd_sim_run(s, nd_sim_now(s) + 10);
    }
}

/* True when every running node sees `alive` members alive. */
static bool all_see(struct nd_sim *s, uint32_t n, uint32_t alive)
{
    for (uint32_t i = 0; i < n; i++)
        if (nd_sim_running(s, i) && nd_sim_count(s, i, ND_GOSSIP_STATE_ALIVE) != alive)
            return false;
    return true;
}

/* True when every running node other than j knows j dead. */
static bool all_know_dead(struct nd_sim *s, uint32_t n, uint32_t j)
{
    for (uint32_t i = 0; i < n; i++)
        if (i != j && nd_sim_running(s, i) && nd_sim_state_of(s, i, j) != ND_GOSSIP_STATE_DEAD)
            return false;
    return true;
}

/* Runs until cond or the deadline; returns the virtual time it took. */
#define RUN_UNTIL(s, cond, max_ms)                                                                 \
    ({                                                                                             \
        uint64_t t0_ = nd_sim_now(s);                                                              \
        while (!(cond) && nd_sim_now(s) - t0_ < (max_ms))                                          \
            nd_sim_run(s, nd_sim_now(s) + 50);                                                     \
        nd_sim_now(s) - t0_;                                                                       \
    })

static void test_join(void **state)
{
    (void)state;
    struct nd_sim *s = cluster(5, 0, 1);
    struct nd_swim_member m;

    assert_non_null(s);
    start_all(s, 5, NULL);
    uint64_t t = RUN_UNTIL(s, all_see(s, 5, 5), 10000);
    assert_true(all_see(s, 5, 5));
    assert_true(t < 3000);
    nd_sim_run(s, nd_sim_now(s) + 3000);
    /* serf statuses and versions are known */
    assert_int_equal(nd_swim_find(nd_sim_engine(s, 3), "n1", &m), 0);
    assert_int_equal(m.status, ND_SWIM_ALIVE);
    assert_int_equal(m.vsn[1], 5);
    assert_int_equal(m.incarnation, 1);
    /* no one was suspected on a lossless network */
    for (int i = 0; i < 5; i++)
        assert_int_equal(seen.suspect[i], 0);
    const struct nd_swim_metrics *mx = nd_swim_metrics(nd_sim_engine(s, 0));
    assert_true(mx->probes > 0 && mx->probe_acks > 0 && mx->pushpulls >= 4);
    assert_int_equal(mx->decode_errors, 0);
    nd_sim_free(s);
}

static void test_failure(void **state)
{
    (void)state;
    struct nd_sim *s = cluster(10, 0, 2);

    start_all(s, 10, NULL);
    RUN_UNTIL(s, all_see(s, 10, 10), 10000);
    assert_true(all_see(s, 10, 10));
    nd_sim_run(s, nd_sim_now(s) + 5000);
    uint64_t crash = nd_sim_now(s);
    nd_sim_crash(s, 3);
    /* suspicion min for 10 nodes: 4 * log10(10) * 1 s = 4 s, max 24 s; with k = 2
     * confirmations it falls towards 4 s. Every node must know it dead well within 30 s. */
    uint64_t t = RUN_UNTIL(s, all_know_dead(s, 10, 3), 60000);
    assert_true(all_see(s, 10, 9));
    for (uint32_t i = 0; i < 10; i++)
        if (i != 3)
            assert_int_equal(nd_sim_state_of(s, i, 3), ND_GOSSIP_STATE_DEAD);
    assert_true(seen.suspect[3] > 0);
    assert_true(seen.failed[3] == 9);
    assert_true(seen.first_failed_at[3] - crash >= 4000);
    assert_true(t < 30000);
    /* nobody else was hurt */
    for (int i = 0; i < 10; i++)
        if (i != 3)
            assert_int_equal(seen.failed[i], 0);
    struct nd_swim_member m;
    assert_int_equal(nd_swim_find(nd_sim_engine(s, 0), "n3", &m), 0);
    assert_int_equal(m.status, ND_SWIM_FAILED);
    nd_sim_free(s);
}

static void test_refute(void **state)
{
    (void)state;
    struct nd_sim *s = cluster(8, 0, 3);

    start_all(s, 8, NULL);
    RUN_UNTIL(s, all_see(s, 8, 8), 10000);
    /* cut node 5 off for 2.5 s: long enough to be suspected, shorter than the suspicion */
    nd_sim_partition(s, 5, 1);
    RUN_UNTIL(s, seen.suspect[5] > 0, 10000);
    assert_true(seen.suspect[5] > 0);
    nd_sim_run(s, nd_sim_now(s) + 500);
    nd_sim_partition(s, 5, 0);
    RUN_UNTIL(s, all_see(s, 8, 8) && seen.alive_again[5] >= 7, 20000);
    assert_true(all_see(s, 8, 8));
    assert_int_equal(seen.failed[5], 0);
    assert_true(nd_swim_metrics(nd_sim_engine(s, 5))->refutes >= 1);
    struct nd_swim_member m;
    assert_int_equal(nd_swim_find(nd_sim_engine(s, 0), "n5", &m), 0);
    assert_true(m.incarnation > 1);
    nd_sim_free(s);
}

/* True when every running node other than j has j's Meta equal to meta[0..len). */
static bool all_see_meta(struct nd_sim *s, uint32_t n, uint32_t j, const uint8_t *meta,
                         uint32_t len)
{
    char name[16];
    struct nd_swim_member m;

    snprintf(name, sizeof name, "n%u", j);
    for (uint32_t i = 0; i < n; i++)
        if (i != j && nd_sim_running(s, i) &&
            (nd_swim_find(nd_sim_engine(s, i), name, &m) != 0 || m.meta_len != len ||
             (len && memcmp(m.meta, meta, len) != 0)))
            return false;
    return true;
}

/* nd_swim_set_tags: a tag change (a new service) reaches every member as an alive with the next
 * incarnation; same tags change nothing; tags over 512 bytes and changes while leaving are
 * refused and the old tags stay. */
static void test_set_tags(void **state)
{
    (void)state;
    struct nd_sim *s = cluster(20, 0.01, 9);
    struct nd_swim_tag t[2] = {{"role", "edge"}, {"svc:web", "8080"}};
    struct nd_swim_member me, other;
    uint8_t meta[ND_GOSSIP_META_MAX];
    char big[600];

    start_all(s, 20, NULL);
    RUN_UNTIL(s, all_see(s, 20, 20), 20000);
    assert_true(all_see(s, 20, 20));
    assert_int_equal(nd_sim_set_tags(s, 7, t, 2), 0);
    assert_int_equal(nd_swim_find(nd_sim_engine(s, 7), "n7", &me), 0);
    assert_int_equal(me.incarnation, 2);
    assert_true(me.meta_len > 0);
    memcpy(meta, me.meta, me.meta_len);
    uint32_t len = me.meta_len;
    uint64_t took = RUN_UNTIL(s, all_see_meta(s, 20, 7, meta, len), 10000);
    assert_true(all_see_meta(s, 20, 7, meta, len));
    assert_true(took < 2000); /* gossip every 200 ms to 3 members: well under a second */
    assert_int_equal(nd_swim_find(nd_sim_engine(s, 12), "n7", &other), 0);
    assert_int_equal(other.incarnation, 2);
    /* the same tags again: no new incarnation */
    assert_int_equal(nd_sim_set_tags(s, 7, t, 2), 0);
    assert_int_equal(nd_swim_find(nd_sim_engine(s, 7), "n7", &me), 0);
    assert_int_equal(me.incarnation, 2);
    /* too big: refused, the old tags stay */
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    struct nd_swim_tag huge = {"svc:big", big};
    assert_int_equal(nd_sim_set_tags(s, 7, &huge, 1), ND_GOSSIP_E_LIMIT);
    assert_int_equal(nd_swim_find(nd_sim_engine(s, 7), "n7", &me), 0);
    assert_int_equal(me.meta_len, len);
    assert_memory_equal(me.meta, meta, len);
    /* no tags at all is a change too */
    assert_int_equal(nd_sim_set_tags(s, 7, NULL, 0), 0);
    RUN_UNTIL(s, all_see_meta(s, 20, 7, meta, 0), 10000);
    assert_true(all_see_meta(s, 20, 7, meta, 0));
    /* while leaving: refused */
    nd_sim_leave(s, 7);
    assert_int_equal(nd_sim_set_tags(s, 7, t, 2), ND_GOSSIP_E_VALUE);
    assert_int_equal(seen.failed[7], 0);
    nd_sim_free(s);
}

static void test_leave(void **state)
{
    (void)state;
    struct nd_sim *s = cluster(6, 0, 4);
    struct nd_swim_member m;

    start_all(s, 6, NULL);
    RUN_UNTIL(s, all_see(s, 6, 6), 10000);
    nd_sim_leave(s, 2);
    RUN_UNTIL(s, !nd_sim_running(s, 2), 12000);
    assert_false(nd_sim_running(s, 2)); /* it finished its leave before the 10 s limit */
    RUN_UNTIL(s, all_see(s, 6, 5), 10000);
    for (uint32_t i = 0; i < 6; i++) {
        if (i == 2)
            continue;
        assert_int_equal(nd_swim_find(nd_sim_engine(s, i), "n2", &m), 0);
        assert_int_equal(m.state, ND_GOSSIP_STATE_LEFT);
        assert_int_equal(m.status, ND_SWIM_LEFT);
    }
    assert_int_equal(seen.failed[2], 0);
    assert_int_equal(seen.left[2], 6); /* the five others, and itself */
    /* and it stays left: nobody suspects or fails it afterwards */
    nd_sim_run(s, nd_sim_now(s) + 30000);
    assert_int_equal(seen.failed[2], 0);
    nd_sim_free(s);
}

static void test_partition_heal(void **state)
{
    (void)state;
    struct nd_sim *s = cluster(10, 0, 5);
    const uint32_t n = 10;

    start_all(s, n, NULL);
    RUN_UNTIL(s, all_see(s, n, n), 10000);
    for (uint32_t i = 5; i < n; i++)
        nd_sim_partition(s, i, 1);
    /* each side declares the other dead */
    RUN_UNTIL(s, all_see(s, n, 5) && all_know_dead(s, 5, 7), 120000);
    assert_true(all_see(s, n, 5));
    for (uint32_t i = 0; i < 5; i++)
        assert_int_equal(nd_sim_state_of(s, i, 7), ND_GOSSIP_STATE_DEAD);
    /* heal: gossip to the dead, push/pull and serf-style reconnects bring them back */
    for (uint32_t i = 5; i < n; i++)
        nd_sim_partition(s, i, 0);
    uint64_t t = RUN_UNTIL(s, all_see(s, n, n), 180000);
    assert_true(all_see(s, n, n));
    printf("partition healed in %llu ms\n", (unsigned long long)t);
    nd_sim_free(s);
}

static void test_encryption_mismatch(void **state)
{
    (void)state;
    struct nd_keyring k1, k2;
    struct nd_sim *s = cluster(5, 0, 6);
    uint8_t key[16];

    nd_keyring_init(&k1);
    nd_keyring_init(&k2);
    memset(key, 1, sizeof key);
    assert_int_equal(nd_keyring_add(&k1, key, 16), 0);
    memset(key, 2, sizeof key);
    assert_int_equal(nd_keyring_add(&k2, key, 16), 0);
    start_all(s, 3, &k1); /* n0..n2 share k1 */
    RUN_UNTIL(s, all_see(s, 3, 3), 10000);
    assert_true(all_see(s, 3, 3));
    /* n3 has another key, n4 none: neither gets in, nor does anything leak out */
    assert_int_equal(nd_sim_start(s, 3, &k2), 0);
    assert_int_equal(nd_sim_start(s, 4, NULL), 0);
    nd_sim_join(s, 3, 0);
    nd_sim_join(s, 4, 1);
    nd_sim_run(s, nd_sim_now(s) + 20000);
    assert_int_equal(nd_sim_count(s, 3, ND_GOSSIP_STATE_ALIVE), 1);
    assert_int_equal(nd_sim_count(s, 4, ND_GOSSIP_STATE_ALIVE), 1);
    assert_true(all_see(s, 3, 3));
    assert_int_equal(nd_sim_state_of(s, 0, 3), -1);
    assert_int_equal(nd_sim_state_of(s, 1, 4), -1);
    assert_true(nd_swim_metrics(nd_sim_engine(s, 0))->decrypt_errors +
                    nd_swim_metrics(nd_sim_engine(s, 1))->decrypt_errors >=
                2);
    nd_sim_free(s);
}

/* 50 nodes at 1% loss: full membership, a crash known everywhere, no false positives. */
static void test_cluster50(void **state)
{
    (void)state;
    const uint32_t n = 50;
    struct nd_sim *s = cluster(n, 0.01, 7);

    start_all(s, n, NULL);
    uint64_t t = RUN_UNTIL(s, all_see(s, n, n), 30000);
    assert_true(all_see(s, n, n));
    nd_sim_run(s, nd_sim_now(s) + 60000);
    nd_sim_crash(s, 17);
    uint64_t d = RUN_UNTIL(s, all_know_dead(s, n, 17), 60000);
    assert_true(all_see(s, n, n - 1));
    for (uint32_t i = 0; i < n; i++)
        if (i != 17)
            assert_int_equal(seen.failed[i], 0);
    printf("50 nodes, 1%% loss: full membership %llu ms, crash known everywhere %llu ms\n",
           (unsigned long long)t, (unsigned long long)d);
    nd_sim_free(s);
}

/* ---- hostile input, straight into one engine ---------------------------------------------- */

static struct {
    uint64_t sent;
} hio;
static void h_send(void *a, const struct nd_swim_addr *to, const uint8_t *p, size_t n)
{
    (void)a, (void)to, (void)p;
    hio.sent += n;
}
static int h_open(void *a, uint32_t sid, const struct nd_swim_addr *to)
{
    (void)a, (void)sid, (void)to;
    return 0;
}
static int h_ssend(void *a, uint32_t sid, const uint8_t *p, size_t n)
{
    (void)a, (void)sid, (void)p, (void)n;
    return 0;
}
static void h_close(void *a, uint32_t sid)
{
    (void)a, (void)sid;
}
static void h_rand(void *a, void *p, size_t n)
{
    (void)a;
    memset(p, 7, n);
}

static struct nd_swim *lone_engine(uint32_t max_members)
{
    static const struct nd_swim_io io = {.send = h_send,
                                         .stream_open = h_open,
                                         .stream_send = h_ssend,
                                         .stream_close = h_close,
                                         .random = h_rand};
    struct nd_swim_config c;
    int err = 0;

    nd_swim_config_lan(&c);
    c.name = "victim";
    c.addr = (struct nd_swim_addr){.ip = {127, 0, 0, 1}, .len = 4, .port = 7946};
    c.max_members = max_members;
    c.stream_max = 1u << 16;
    struct nd_swim *sw = nd_swim_new(&c, &io, 1000, &err);
    assert_non_null(sw);
    return sw;
}

static size_t alive_pkt(uint8_t *buf, const char *name, uint32_t inc)
{
    struct nd_gossip_msg m = {.type = ND_GOSSIP_ALIVE};
    size_t len = 0;

    m.u.alive.incarnation = inc;
    m.u.alive.node = (struct nd_gbytes){(const uint8_t *)name, (uint32_t)strlen(name)};
    m.u.alive.addr = (struct nd_gbytes){(const uint8_t *)"\x7f\0\0\x02", 4};
    m.u.alive.port = 7946;
    memcpy(m.u.alive.vsn, (uint8_t[]){1, 5, 2, 2, 5, 5}, 6);
    assert_int_equal(nd_gossip_encode(&m, buf, 1024, &len), 0);
    return len;
}

static void test_alive_flood(void **state)
{
    (void)state;
    struct nd_swim *sw = lone_engine(1000);
    struct nd_swim_addr from = {.ip = {127, 0, 0, 2}, .len = 4, .port = 7946};
    uint8_t buf[1024];
    uint64_t t = 1000;

    /* 100,000 alives with rising incarnations from one member over 10 s */
    for (uint32_t i = 1; i <= 100000; i++) {
        size_t n = alive_pkt(buf, "mallory", i);
        nd_swim_packet(sw, t, &from, buf, n);
        if (i % 10000 == 0) {
            t += 1000;
            nd_swim_tick(sw, t);
        }
    }
    const struct nd_swim_metrics *m = nd_swim_metrics(sw);
    /* accepted: the burst, then one a second */
    assert_true(100000 - m->alive_limited <= 16 + 11);
    assert_true(m->queued <= 4); /* one alive about mallory at most (plus our own) */
    struct nd_swim_member mm;
    assert_int_equal(nd_swim_find(sw, "mallory", &mm), 0);
    /* garbage is counted, not fatal */
    nd_swim_packet(sw, t, &from, (const uint8_t *)"\x04\xff\xff", 3);
    nd_swim_packet(sw, t, &from, (const uint8_t *)"\x07\x05", 2);
    assert_true(nd_swim_metrics(sw)->decode_errors >= 2);
    nd_swim_free(sw);
}

static void test_table_limit(void **state)
{
    (void)state;
    struct nd_swim *sw = lone_engine(100);
    struct nd_swim_addr from = {.ip = {127, 0, 0, 2}, .len = 4, .port = 7946};
    uint8_t buf[1024];
    char name[32];

    for (uint32_t i = 0; i < 10000; i++) {
        snprintf(name, sizeof name, "sybil-%u", i);
        size_t n = alive_pkt(buf, name, 1);
        nd_swim_packet(sw, 2000, &from, buf, n);
    }
    const struct nd_swim_metrics *m = nd_swim_metrics(sw);
    assert_int_equal(m->members_alive, 100);
    assert_int_equal(m->members_dropped, 10000 - 99);
    assert_true(m->queued <= 4096);
    nd_swim_free(sw);
}

static void test_config(void **state)
{
    (void)state;
    struct nd_swim_config c;
    struct nd_swim_tag tags[] = {{"role", "edge"}, {"dc", "x"}};
    char big[600];
    int err = 0;

    nd_swim_config_lan(&c);
    assert_null(nd_swim_new(&c, NULL, 0, &err)); /* no name, no io */
    assert_int_equal(err, ND_GOSSIP_E_VALUE);
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    tags[1].value = big;
    c.name = "x";
    c.addr = (struct nd_swim_addr){.ip = {127, 0, 0, 1}, .len = 4, .port = 1};
    c.tags = tags;
    c.ntags = 2;
    static const struct nd_swim_io io = {.send = h_send,
                                         .stream_open = h_open,
                                         .stream_send = h_ssend,
                                         .stream_close = h_close,
                                         .random = h_rand};
    assert_null(nd_swim_new(&c, &io, 0, &err));
    assert_int_equal(err, ND_GOSSIP_E_LIMIT);
    tags[1].value = "x";
    struct nd_swim *sw = nd_swim_new(&c, &io, 0, &err);
    assert_non_null(sw);
    struct nd_swim_member m;
    struct nd_serf_tag t[4];
    size_t nt;
    assert_int_equal(nd_swim_find(sw, "x", &m), 0);
    assert_true(m.self);
    assert_int_equal(nd_serf_tags_decode(m.meta, m.meta_len, t, 4, &nt), 0);
    assert_int_equal(nt, 2);
    char a[64];
    assert_string_equal(nd_swim_addr_str(&m.addr, a, sizeof a), "127.0.0.1:1");
    /* alone, a leave completes at once */
    nd_swim_leave(sw, 10);
    assert_true(nd_swim_leave_done(sw));
    nd_swim_free(sw);
}

/* ---- the gossip { } directive ------------------------------------------------------------- */

static void expect_gossip_error(const char *text, const char *want)
{
    struct nd_errors errs = {0};
    struct nd_config *cfg = nd_config_load_string("g.lua", text, strlen(text), &errs);

    assert_null(cfg);
    assert_true(errs.n >= 1);
    if (strcmp(errs.msg[0], want) != 0) {
        for (unsigned i = 0; i < errs.n; i++)
            printf("got: %s\n", errs.msg[i]);
        fail_msg("expected \"%s\"", want);
    }
    nd_errors_clear(&errs);
}

static void test_config_directive(void **state)
{
    (void)state;
    const char *ok = "node { name = \"a\", workers = 1 }\n"
                     "gossip { bind = \"127.0.0.1:7946\", join = { \"127.0.0.1:7947\" },\n"
                     "  keyring = { \"5K9OtfZ5Cn6Rr8H2Z4Ygdw==\" }, tags = { role = \"edge\" },\n"
                     "  profile = \"fast\" }\n";
    struct nd_errors errs = {0};
    struct nd_config *cfg = nd_config_load_string("g.lua", ok, strlen(ok), &errs);

    if (!cfg)
        for (unsigned i = 0; i < errs.n; i++)
            printf("%s\n", errs.msg[i]);
    assert_non_null(cfg);
    assert_true(cfg->gossip.enabled);
    assert_string_equal(cfg->gossip.bind.text, "127.0.0.1:7946");
    assert_string_equal(cfg->gossip.advertise.text, "127.0.0.1:7946");
    assert_int_equal(cfg->gossip.njoin, 1);
    assert_int_equal(cfg->gossip.nkeyring, 1);
    assert_int_equal(cfg->gossip.ntags, 1);
    assert_string_equal(cfg->gossip.tags[0].key, "role");
    assert_true(cfg->gossip.fast);
    nd_config_free(cfg);

    expect_gossip_error("gossip { bind = \"127.0.0.1:7946\",\n bogus = 1 }\n",
                        "g.lua:1: gossip: unknown key 'bogus'");
    expect_gossip_error("gossip { join = { } }\n",
                        "g.lua:1: gossip: 'bind' is required, e.g. bind = \"127.0.0.1:7946\"");
    expect_gossip_error("\ngossip { bind = \"0.0.0.0:7946\" }\n",
                        "g.lua:2: gossip: 'advertise' is required when 'bind' is 0.0.0.0:7946");
    expect_gossip_error("gossip { bind = \"127.0.0.1:1\", keyring = { \"short\" } }\n",
                        "g.lua:1: gossip: keyring[1]: must be a base64 AES key of 16, 24 or 32 "
                        "bytes (serf keygen)");
    expect_gossip_error("gossip { bind = \"127.0.0.1:1\", join = { \"nowhere\" } }\n",
                        "g.lua:1: gossip: join[1]: is not an address such as \"127.0.0.1:9001\" "
                        "or \"[::1]:9001\"");
    expect_gossip_error(
        "gossip { bind = \"127.0.0.1:1\", tags = { big = string.rep(\"x\", 600) } }\n",
        "g.lua:1: gossip: 'tags' take more than 512 bytes once encoded (serf's "
        "limit)");
    expect_gossip_error("gossip { bind = \"127.0.0.1:1\" }\ngossip { bind = \"127.0.0.1:2\" }\n",
                        "g.lua:2: gossip: declared twice (first at line 1)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),         cmocka_unit_test(test_join),
        cmocka_unit_test(test_failure),        cmocka_unit_test(test_refute),
        cmocka_unit_test(test_set_tags),       cmocka_unit_test(test_leave),
        cmocka_unit_test(test_partition_heal), cmocka_unit_test(test_encryption_mismatch),
        cmocka_unit_test(test_cluster50),      cmocka_unit_test(test_alive_flood),
        cmocka_unit_test(test_table_limit),    cmocka_unit_test(test_config_directive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
