/*
 * Unit tests for serf queries in the engine (gossip/swim.c) over the simulated network: a query
 * reaches every member once and each acks and answers once, to the querier; node and tag filters
 * on what we send (refused when a receiver would refuse them); relay
 * factor; replies after the deadline dropped; serf's internal queries (_serf_ping, _serf_conflict,
 * the key manager's four, which rotate the keyring of a running encrypted cluster without losing
 * a member); and hostile queries injected into one node: tag filters with good, bad and
 * exponential regular expressions, unknown filter types, bogus reply addresses, oversized
 * queries, a timeout already past, duplicates, and relays of what is not a query response.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../gossip/keyring.h"
#include "../../gossip/serf.h"
#include "../../gossip/sim.h"
#include "../../gossip/swim.h"
#include "../../gossip/wire.h"

#define N 10
#define REPLIES_MAX 256

static struct {
    unsigned acks[N], responses[N]; /* replies from each node, to our query */
    unsigned replies;               /* all replies (relayed copies included) */
    unsigned queried[N];            /* user queries each node was asked */
    struct {
        bool ack;
        char from[16];
        uint8_t payload[1024];
        uint32_t len;
    } r[REPLIES_MAX];
} seen;

static int on_query(void *arg, uint32_t obs, const struct nd_swim_query *q, uint8_t *resp,
                    size_t cap, size_t *len)
{
    (void)arg;
    seen.queried[obs]++;
    if (q->name_len == 5 && !memcmp(q->name, "quiet", 5))
        return 0;
    *len = (size_t)snprintf((char *)resp, cap, "r-%u", obs);
    return 1;
}

static void on_query_reply(void *arg, uint32_t obs, const struct nd_swim_query_reply *r,
                           uint64_t now)
{
    char from[16];
    int i;

    (void)arg;
    (void)obs;
    (void)now;
    snprintf(from, sizeof from, "%.*s", (int)r->from_len, (const char *)r->from);
    i = nd_sim_index(from);
    assert_true(i >= 0 && i < N);
    if (seen.replies < REPLIES_MAX) {
        seen.r[seen.replies].ack = r->ack;
        memcpy(seen.r[seen.replies].from, from, sizeof from);
        assert_true(r->payload_len <= sizeof seen.r[0].payload);
        if (r->payload_len)
            memcpy(seen.r[seen.replies].payload, r->payload, r->payload_len);
        seen.r[seen.replies].len = r->payload_len;
    }
    seen.replies++;
    if (r->ack)
        seen.acks[i]++;
    else
        seen.responses[i]++;
}

static struct nd_sim *cluster(const struct nd_keyring *kr)
{
    struct nd_sim_config c = {.nodes = N,
                              .seed = 11,
                              .latency_ms = 1,
                              .jitter_ms = 2,
                              .on_query = on_query,
                              .on_query_reply = on_query_reply};
    struct nd_sim *s;

    memset(&seen, 0, sizeof seen);
    nd_swim_config_lan(&c.swim);
    c.swim.stream_max = 1u << 20;
    assert_non_null(s = nd_sim_new(&c));
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(nd_sim_start(s, i, kr), 0);
        if (i)
            nd_sim_join(s, i, 0);
        nd_sim_run(s, nd_sim_now(s) + 10);
    }
    nd_sim_run(s, nd_sim_now(s) + 20000);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(nd_sim_count(s, i, ND_GOSSIP_STATE_ALIVE), N);
    return s;
}

static void reset(void)
{
    memset(&seen, 0, sizeof seen);
}

static uint32_t query(struct nd_sim *s, uint32_t from, struct nd_swim_query_param p)
{
    uint32_t t;

    assert_int_equal(nd_sim_query(s, from, &p, &t), 0);
    nd_sim_run(s, nd_sim_now(s) + t + 100);
    return t;
}

static struct nd_swim_query_param named(const char *name, const char *payload)
{
    return (struct nd_swim_query_param){.name = name,
                                        .name_len = strlen(name),
                                        .payload = payload,
                                        .payload_len = payload ? strlen(payload) : 0,
                                        .ack = true};
}

static void test_query(void **state)
{
    struct nd_sim *s = cluster(NULL);
    struct nd_swim_query_param p = named("uptime", "x");
    uint32_t t;

    (void)state;
    reset();
    t = query(s, 3, p);
    /* serf's default: gossip interval (200 ms) * 16 * ceil(log10(10 + 1)) */
    assert_int_equal(t, 200 * 16 * 2);
    assert_int_equal(nd_swim_query_timeout_ms(nd_sim_engine(s, 3)), t);
    for (uint32_t i = 0; i < N; i++) {
        const struct nd_swim_metrics *m = nd_swim_metrics(nd_sim_engine(s, i));

        assert_int_equal(seen.acks[i], 1); /* the querier acks and answers itself, as serf */
        assert_int_equal(seen.responses[i], 1);
        assert_int_equal(seen.queried[i], 1); /* each node was asked once */
        assert_int_equal(m->queries_received, 1);
        assert_int_equal(m->query_acks_sent, 1);
        assert_int_equal(m->query_responses_sent, 1);
    }
    for (uint32_t k = 0; k < seen.replies; k++)
        if (!seen.r[k].ack) {
            char want[16];

            snprintf(want, sizeof want, "r-%d", nd_sim_index(seen.r[k].from));
            assert_int_equal(seen.r[k].len, strlen(want));
            assert_memory_equal(seen.r[k].payload, want, strlen(want));
        }
    /* re-broadcast by every node: the others' copies are duplicates */
    uint64_t dups = 0;
    for (uint32_t i = 0; i < N; i++)
        dups += nd_swim_metrics(nd_sim_engine(s, i))->queries_duplicate;
    assert_true(dups >= N);
    assert_int_equal(nd_swim_metrics(nd_sim_engine(s, 3))->queries_sent, 1);
    assert_int_equal(nd_swim_metrics(nd_sim_engine(s, 3))->query_acks_received, N);

    /* without acks, a name that gets no response: nothing comes back but the query */
    reset();
    p = named("quiet", NULL);
    p.ack = false;
    query(s, 0, p);
    assert_int_equal(seen.replies, 0);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(seen.queried[i], 1);

    /* node filter: only n2 and n5 */
    struct nd_gbytes only[2] = {{(const uint8_t *)"n2", 2}, {(const uint8_t *)"n5", 2}};
    reset();
    p = named("uptime", NULL);
    p.nodes = only;
    p.nnodes = 2;
    query(s, 1, p);
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(seen.acks[i], i == 2 || i == 5);
        assert_int_equal(seen.responses[i], i == 2 || i == 5);
    }
    assert_true(nd_swim_metrics(nd_sim_engine(s, 7))->queries_filtered >= 1);

    /* tag filters (serf's -tag KEY=REGEX), every one must match, with the node filter too */
    struct nd_swim_tag eu[] = {{"role", "web-eu"}}, us[] = {{"role", "web-us"}};
    struct nd_gbytes key[2] = {{(const uint8_t *)"role", 4}, {(const uint8_t *)"zone", 4}},
                     expr[2] = {{(const uint8_t *)"^web-", 5}, {(const uint8_t *)"^$", 2}};
    assert_int_equal(nd_sim_set_tags(s, 2, eu, 1), 0);
    assert_int_equal(nd_sim_set_tags(s, 8, us, 1), 0);
    nd_sim_run(s, nd_sim_now(s) + 100);
    reset();
    p = named("uptime", NULL);
    p.tag_keys = key;
    p.tag_exprs = expr;
    p.ntags = 2; /* role starts with web-, and no zone tag */
    query(s, 0, p);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(seen.responses[i], i == 2 || i == 8);
    reset();
    p.nodes = only;
    p.nnodes = 2; /* and n2 or n5 */
    query(s, 0, p);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(seen.responses[i], i == 2);
    /* what a receiver would refuse is not sent: bad syntax, an expression RE2 reads otherwise */
    const char *refused[] = {"([", "\\d+", "^(a*)*\\1$", "a**"};
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        uint32_t t0;

        expr[0] = (struct nd_gbytes){(const uint8_t *)refused[k], (uint32_t)strlen(refused[k])};
        assert_int_equal(nd_sim_query(s, 0, &p, &t0), ND_GOSSIP_E_VALUE);
    }
    p.ntags = ND_SWIM_QUERY_TAGS_MAX + 1;
    assert_int_equal(nd_sim_query(s, 0, &p, &t), ND_GOSSIP_E_LIMIT);

    /* relay factor 2: each reply comes three times (direct and through two members) */
    reset();
    p = named("uptime", NULL);
    p.relay_factor = 2;
    query(s, 4, p);
    uint64_t relayed = 0;
    for (uint32_t i = 0; i < N; i++)
        relayed += nd_swim_metrics(nd_sim_engine(s, i))->queries_relayed;
    /* each ack and response sent through 2 members, forwarded by them; the querier's own are
     * delivered inside it */
    assert_int_equal(relayed, 2 * 2 * (2 * (N - 1)));
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(seen.acks[i], i == 4 ? 1 : 3);
        assert_int_equal(seen.responses[i], i == 4 ? 1 : 3);
    }

    /* replies after the deadline are dropped */
    reset();
    p = named("uptime", NULL);
    p.timeout_ms = 1;
    uint32_t t1;
    assert_int_equal(nd_sim_query(s, 6, &p, &t1), 0);
    nd_sim_run(s, nd_sim_now(s) + 1000); /* a gossip round or more: the query goes out */
    assert_true(seen.replies < 2 * N);
    assert_true(nd_swim_metrics(nd_sim_engine(s, 6))->query_replies_dropped > 0);

    /* too large to send (serf's QuerySizeLimit), and too many at once */
    static char big[1100];
    memset(big, 'x', sizeof big - 1);
    p = named("uptime", big);
    uint32_t t2;
    assert_int_equal(nd_sim_query(s, 0, &p, &t2), ND_GOSSIP_E_LIMIT);
    p = named("uptime", NULL);
    for (uint32_t k = 0; k < ND_SWIM_QUERIES_OUT; k++)
        assert_int_equal(nd_sim_query(s, 0, &p, &t2), 0);
    assert_int_equal(nd_sim_query(s, 0, &p, &t2), ND_GOSSIP_E_LIMIT);
    nd_sim_run(s, nd_sim_now(s) + t2 + 10);
    assert_int_equal(nd_sim_query(s, 0, &p, &t2), 0); /* the finished ones make room */
    nd_sim_free(s);
}

/* the responses of the last query, decoded as key responses: how many say Result true */
static unsigned key_results(bool want, const char *msg)
{
    unsigned n = 0;

    for (uint32_t k = 0; k < seen.replies && k < REPLIES_MAX; k++) {
        struct nd_serf_msg m;

        if (seen.r[k].ack)
            continue;
        assert_int_equal(nd_serf_decode(seen.r[k].payload, seen.r[k].len, &m), 0);
        assert_int_equal(m.type, ND_SERF_KEY_RESPONSE);
        if (m.u.key_resp.result == want) {
            n++;
            if (msg)
                assert_true(m.u.key_resp.message.len == strlen(msg) &&
                            !memcmp(m.u.key_resp.message.p, msg, strlen(msg)));
        }
    }
    return n;
}

static void key_query(struct nd_sim *s, const char *op, const uint8_t *key, size_t klen)
{
    struct nd_serf_msg m = {.type = ND_SERF_KEY_REQUEST};
    uint8_t payload[64];
    size_t len;
    char name[32];

    m.u.key_req.key = (struct nd_gbytes){key, (uint32_t)klen};
    assert_int_equal(nd_serf_encode(&m, payload, sizeof payload, &len), 0);
    snprintf(name, sizeof name, "_serf_%s", op);
    reset();
    struct nd_swim_query_param p = {
        .name = name, .name_len = strlen(name), .payload = payload, .payload_len = len};
    query(s, 2, p);
}

static void all_alive(struct nd_sim *s)
{
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(nd_sim_count(s, i, ND_GOSSIP_STATE_ALIVE), N);
        assert_int_equal(nd_swim_metrics(nd_sim_engine(s, i))->decrypt_errors, 0);
    }
}

static void test_keys(void **state)
{
    const uint8_t k1[16] = "0123456789abcdef", k2[32] = "fedcba9876543210fedcba9876543210";
    struct nd_keyring kr;
    struct nd_sim *s;

    (void)state;
    nd_keyring_init(&kr);
    assert_int_equal(nd_keyring_add(&kr, k1, sizeof k1), 0);
    s = cluster(&kr);

    key_query(s, "install-key", k2, sizeof k2);
    assert_int_equal(key_results(true, ""), N);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(nd_swim_keyring(nd_sim_engine(s, i))->n, 2);
    nd_sim_run(s, nd_sim_now(s) + 5000);
    all_alive(s);

    key_query(s, "use-key", k2, sizeof k2);
    assert_int_equal(key_results(true, ""), N);
    for (uint32_t i = 0; i < N; i++)
        assert_memory_equal(nd_swim_keyring(nd_sim_engine(s, i))->keys[0], k2, sizeof k2);
    nd_sim_run(s, nd_sim_now(s) + 5000);
    all_alive(s);

    /* the primary cannot go; an unknown key cannot become primary; a bad key size */
    key_query(s, "remove-key", k2, sizeof k2);
    assert_int_equal(key_results(false, "Removing the primary key is not allowed"), N);
    key_query(s, "use-key", (const uint8_t *)"0000000000000000", 16);
    assert_int_equal(key_results(false, "Requested key is not in the keyring"), N);
    key_query(s, "install-key", k1, 5);
    assert_int_equal(key_results(false, "key size must be 16, 24 or 32 bytes"), N);

    key_query(s, "remove-key", k1, sizeof k1);
    assert_int_equal(key_results(true, ""), N);
    nd_sim_run(s, nd_sim_now(s) + 5000);
    all_alive(s);

    /* list-keys: every node holds k2 only, as serf's base64 */
    key_query(s, "list-keys", NULL, 0);
    assert_int_equal(key_results(true, ""), N);
    for (uint32_t k = 0; k < seen.replies && k < REPLIES_MAX; k++) {
        struct nd_serf_msg m;
        struct nd_gbytes rest, key;

        if (seen.r[k].ack)
            continue;
        assert_int_equal(nd_serf_decode(seen.r[k].payload, seen.r[k].len, &m), 0);
        assert_int_equal(m.u.key_resp.nkeys, 1);
        rest = m.u.key_resp.keys;
        assert_int_equal(nd_serf_left_next(&rest, &key), 0);
        assert_int_equal(key.len, 44);
        assert_memory_equal(key.p, "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=", 44);
        assert_int_equal(m.u.key_resp.primary_key.len, 44);
    }
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(nd_swim_metrics(nd_sim_engine(s, i))->keyring_changes, 3);
    nd_sim_free(s);

    /* without encryption: refused with serf's messages */
    s = cluster(NULL);
    key_query(s, "install-key", k2, sizeof k2);
    assert_int_equal(key_results(false, "No keyring to modify (encryption not enabled)"), N);
    key_query(s, "list-keys", NULL, 0);
    assert_int_equal(key_results(false, "Keyring is empty (encryption not enabled)"), N);
    nd_sim_free(s);
    nd_keyring_wipe(&kr);
}

static void test_internal(void **state)
{
    struct nd_sim *s = cluster(NULL);
    struct nd_swim_query_param p = named("_serf_ping", NULL);

    (void)state;
    reset();
    query(s, 0, p); /* serf answers a ping with its ack only */
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(seen.acks[i], 1);
        assert_int_equal(seen.responses[i], 0);
        assert_int_equal(seen.queried[i], 0); /* internal: not handed to io->query */
    }

    reset();
    p = named("_serf_conflict", "n4");
    query(s, 0, p);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(seen.responses[i], i != 4); /* n4 does not answer about itself */
    for (uint32_t k = 0; k < seen.replies; k++) {
        struct nd_serf_msg m;

        if (seen.r[k].ack)
            continue;
        assert_int_equal(nd_serf_decode(seen.r[k].payload, seen.r[k].len, &m), 0);
        assert_int_equal(m.type, ND_SERF_CONFLICT_RESPONSE);
        assert_false(m.u.conflict.nil);
        assert_int_equal(m.u.conflict.name.len, 2);
        assert_memory_equal(m.u.conflict.name.p, "n4", 2);
        assert_int_equal(m.u.conflict.status, 1); /* serf StatusAlive */
        assert_int_equal(m.u.conflict.port, 7946);
        assert_int_equal(m.u.conflict.vsn[1], 5);
    }
    reset();
    p = named("_serf_conflict", "nobody");
    query(s, 0, p);
    for (uint32_t k = 0; k < seen.replies; k++)
        if (!seen.r[k].ack)
            assert_memory_equal(seen.r[k].payload, "\x06\xc0", 2); /* Go's nil *Member */
    nd_sim_free(s);
}

/* ---- hostile queries, injected into n1 as UDP datagrams from a stranger ------------------ */

static uint32_t next_id = 100;
static uint64_t next_ltime = 600;

static void inject(struct nd_sim *s, const uint8_t *msg, size_t len)
{
    struct nd_swim_addr from = {{192, 0, 2, 1}, 4, 7946};

    nd_swim_packet(nd_sim_engine(s, 1), nd_sim_now(s), &from, msg, len);
    nd_sim_run(s, nd_sim_now(s) + 50);
}

static void send_query(struct nd_sim *s, struct nd_serf_query q)
{
    struct nd_serf_msg m = {.type = ND_SERF_QUERY};
    uint8_t buf[4096];
    size_t len;

    if (!q.ltime)
        q.ltime = next_ltime++;
    if (!q.id)
        q.id = next_id++;
    if (!q.addr.len)
        q.addr = (struct nd_gbytes){(const uint8_t *)"\x0a\0\0\x01", 4}; /* n0 */
    if (!q.port)
        q.port = 7946;
    if (!q.source_node.len)
        q.source_node = (struct nd_gbytes){(const uint8_t *)"n0", 2};
    if (!q.timeout_ns)
        q.timeout_ns = 1000000000;
    q.flags |= ND_SERF_QUERY_FLAG_ACK;
    m.u.query = q;
    buf[0] = ND_GOSSIP_USER;
    assert_int_equal(nd_serf_encode(&m, buf + 1, sizeof buf - 1, &len), 0);
    inject(s, buf, len + 1);
}

static struct nd_serf_query tag_filter(const char *tag, const char *expr, uint8_t *fb)
{
    struct nd_serf_filter f = {.type = ND_SERF_FILTER_TAG,
                               .tag = {(const uint8_t *)tag, (uint32_t)strlen(tag)},
                               .expr = {(const uint8_t *)expr, (uint32_t)strlen(expr)}};
    static struct nd_gbytes one;
    size_t len;

    assert_int_equal(nd_serf_filter_encode(&f, fb, 2048, &len), 0);
    one = (struct nd_gbytes){fb, (uint32_t)len};
    return (struct nd_serf_query){
        .name = {(const uint8_t *)"q", 1}, .nfilters = 1, .filter_list = &one};
}

static void test_hostile(void **state)
{
    struct nd_sim *s = cluster(NULL);
    const struct nd_swim_metrics *m = nd_swim_metrics(nd_sim_engine(s, 1));
    struct nd_swim_tag tags[] = {{"role", "web-eu"}};
    static uint8_t fb[2048];
    uint64_t acks, filtered, bad, dropped;

    (void)state;
    assert_int_equal(nd_sim_set_tags(s, 1, tags, 1), 0);
    nd_sim_run(s, nd_sim_now(s) + 100);

    /* tag filters: a POSIX ERE searched in the value, as Go's regexp.MatchString */
    acks = m->query_acks_sent;
    send_query(s, tag_filter("role", "^web-(eu|us)$", fb));
    send_query(s, tag_filter("role", "eu", fb));
    send_query(s, tag_filter("zone", "^$", fb)); /* an absent tag is "" */
    /* what glibc and RE2 read alike */
    send_query(s, tag_filter("role", "^\\w+-[[:alpha:]]{2}$", fb));
    send_query(s, tag_filter("role", "\\bweb\\S*?$", fb));
    send_query(s, tag_filter("role", "[]a-z-]+\\.?", fb));
    assert_int_equal(m->query_acks_sent, acks + 6);
    filtered = m->queries_filtered;
    send_query(s, tag_filter("role", "^db", fb));
    send_query(s, tag_filter("zone", ".", fb));
    assert_int_equal(m->queries_filtered, filtered + 2);
    /* refused: bad syntax, a back-reference (exponential in glibc), too long */
    bad = m->query_bad_filters;
    send_query(s, tag_filter("role", "([", fb));
    send_query(s, tag_filter("role", "^(a*)*\\1$", fb));
    /* what RE2 and glibc read differently: \d (a literal d to glibc), \pL, \<, a backslash in
     * brackets, a repeated repetition, an unterminated bracket */
    send_query(s, tag_filter("role", "\\d", fb));
    send_query(s, tag_filter("role", "\\pL", fb));
    send_query(s, tag_filter("role", "\\<web", fb));
    send_query(s, tag_filter("role", "[\\d]", fb));
    send_query(s, tag_filter("role", "[[:alpha:]\\w]", fb));
    send_query(s, tag_filter("role", "w**", fb));
    send_query(s, tag_filter("role", "w+{2}", fb));
    send_query(s, tag_filter("role", "[[:alpha:", fb));
    static char longexpr[600];
    memset(longexpr, 'a', sizeof longexpr - 1);
    send_query(s, tag_filter("role", longexpr, fb));
    assert_int_equal(m->query_bad_filters, bad + 11);
    assert_int_equal(m->query_acks_sent, acks + 6);
    /* a filter of an unknown type, and one that is not even a filter */
    struct nd_gbytes weird[2] = {{(const uint8_t *)"\x07\x90", 2}, {(const uint8_t *)"", 0}};
    send_query(s, (struct nd_serf_query){
                      .name = {(const uint8_t *)"q", 1}, .nfilters = 1, .filter_list = &weird[0]});
    send_query(s, (struct nd_serf_query){
                      .name = {(const uint8_t *)"q", 1}, .nfilters = 1, .filter_list = &weird[1]});
    assert_int_equal(m->query_bad_filters, bad + 13);

    /* duplicates: the same (LTime, ID) again */
    uint64_t dup = m->queries_duplicate, rec = m->queries_received;
    struct nd_serf_query q = {.ltime = 900, .id = 77, .name = {(const uint8_t *)"q", 1}};
    send_query(s, q);
    send_query(s, q);
    assert_int_equal(m->queries_received, rec + 1);
    assert_true(m->queries_duplicate >= dup + 1); /* ours, and the cluster's re-broadcasts */
    /* the same time, another ID: a new query */
    q.id = 78;
    send_query(s, q);
    assert_int_equal(m->queries_received, rec + 2);
    /* too old for the buffer (more than 512 behind the clock) */
    dropped = m->queries_dropped;
    q = (struct nd_serf_query){.ltime = 3, .name = {(const uint8_t *)"q", 1}};
    send_query(s, q);
    assert_int_equal(m->queries_dropped, dropped + 1);

    /* bogus reply addresses, too large: dropped, not answered */
    acks = m->query_acks_sent;
    dropped = m->queries_dropped;
    {
        /* our encoder refuses a 5-byte Addr: splice one into an encoded query */
        struct nd_serf_msg qm = {.type = ND_SERF_QUERY};
        uint8_t ok[256], spliced[260];
        size_t ol;

        qm.u.query = (struct nd_serf_query){.ltime = 950,
                                            .id = 5,
                                            .addr = {(const uint8_t *)"\x0a\0\0\x01", 4},
                                            .port = 7946,
                                            .source_node = {(const uint8_t *)"n0", 2},
                                            .flags = ND_SERF_QUERY_FLAG_ACK,
                                            .timeout_ns = 1000000000,
                                            .name = {(const uint8_t *)"q", 1}};
        assert_int_equal(nd_serf_encode(&qm, ok, sizeof ok, &ol), 0);
        /* [4][0x8b][0xa4 "Addr"][0xa4 a b c d]... */
        assert_memory_equal(ok + 2,
                            "\xa4"
                            "Addr\xa4",
                            6);
        spliced[0] = ND_GOSSIP_USER;
        memcpy(spliced + 1, ok, 7);
        memcpy(spliced + 8, "\xa5\1\2\3\4\5", 6);
        memcpy(spliced + 14, ok + 12, ol - 12);
        inject(s, spliced, ol + 2);
    }
    send_query(s, (struct nd_serf_query){.name = {(const uint8_t *)"q", 1},
                                         .port = 0,
                                         .addr = {(const uint8_t *)"\x0a\0\0\x01", 4},
                                         .source_node = {(const uint8_t *)"n0", 2}});
    static char pl[1500];
    memset(pl, 'p', sizeof pl);
    send_query(s, (struct nd_serf_query){.name = {(const uint8_t *)"q", 1},
                                         .payload = {(const uint8_t *)pl, sizeof pl}});
    assert_int_equal(m->query_acks_sent, acks + 1); /* port 0 became 7946 in send_query */
    assert_int_equal(m->queries_dropped, dropped + 2);

    /* a timeout already past: the ack, no response */
    uint64_t resp = m->query_responses_sent, late = m->queries_late;
    send_query(s, (struct nd_serf_query){.name = {(const uint8_t *)"q", 1}, .timeout_ns = -1});
    assert_int_equal(m->query_responses_sent, resp);
    assert_int_equal(m->queries_late, late + 1);

    /* relays: only query responses are forwarded, to a real address */
    uint64_t relayed = m->queries_relayed;
    uint8_t buf[256], inner[64];
    size_t il, len;
    struct nd_serf_msg r = {.type = ND_SERF_QUERY_RESPONSE};
    r.u.response =
        (struct nd_serf_query_response){.ltime = 1, .id = 1, .from = {(const uint8_t *)"x", 1}};
    assert_int_equal(nd_serf_encode(&r, inner, sizeof inner, &il), 0);
    struct nd_serf_msg rl = {.type = ND_SERF_RELAY};
    rl.u.relay = (struct nd_serf_relay){.dest_ip = {(const uint8_t *)"\x0a\0\0\x01", 4},
                                        .dest_port = 7946,
                                        .dest_name = {(const uint8_t *)"n0", 2},
                                        .inner = {inner, (uint32_t)il}};
    buf[0] = ND_GOSSIP_USER;
    assert_int_equal(nd_serf_encode(&rl, buf + 1, sizeof buf - 1, &len), 0);
    inject(s, buf, len + 1);
    assert_int_equal(m->queries_relayed, relayed + 1);
    inner[0] = ND_SERF_USER_EVENT; /* not a response: not forwarded */
    assert_int_equal(nd_serf_encode(&rl, buf + 1, sizeof buf - 1, &len), 0);
    dropped = m->queries_dropped;
    inject(s, buf, len + 1);
    assert_int_equal(m->queries_relayed, relayed + 1);
    assert_int_equal(m->queries_dropped, dropped + 1);
    /* a malformed relay header is a decode error */
    uint64_t derr = m->decode_errors;
    inject(s, (const uint8_t[]){ND_GOSSIP_USER, ND_SERF_RELAY, 0x81, 0xa8}, 4);
    assert_int_equal(m->decode_errors, derr + 1);
    /* a response to no query of ours */
    uint64_t stray = m->query_replies_dropped;
    buf[0] = ND_GOSSIP_USER;
    memcpy(buf + 1, inner, il);
    buf[1] = ND_SERF_QUERY_RESPONSE;
    inject(s, buf, il + 1);
    assert_int_equal(m->query_replies_dropped, stray + 1);

    /* nothing broke: everyone is still alive */
    nd_sim_run(s, nd_sim_now(s) + 3000);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(nd_sim_count(s, i, ND_GOSSIP_STATE_ALIVE), N);
    nd_sim_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_internal),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
