/*
 * Unit tests for gossip/serf.c: serf messages round trips and refusals, tags in Meta (the
 * 512-byte limit, serf's role-only form), coordinates in ack payloads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../gossip/serf.h"

#define B(lit) ((struct nd_gbytes){(const uint8_t *)(lit), sizeof(lit) - 1})
#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

static uint8_t buf[4096];

static void test_messages(void **state)
{
    (void)state;
    size_t n;
    struct nd_serf_msg m = {.type = ND_SERF_LEAVE}, d;
    m.u.leave = (struct nd_serf_leave){.ltime = UINT64_MAX, .node = B("edge-1")};
    assert_int_equal(nd_serf_encode(&m, buf, sizeof buf, &n), 0);
    assert_int_equal(nd_serf_decode(buf, n, &d), 0);
    assert_int_equal(d.type, ND_SERF_LEAVE);
    assert_true(d.u.leave.ltime == UINT64_MAX);
    assert_false(d.u.leave.prune);
    for (size_t k = 0; k < n; k++)
        assert_true(nd_serf_decode(buf, k, &d) < 0);

    m = (struct nd_serf_msg){.type = ND_SERF_JOIN, .u.join = {.ltime = 1, .node = B("j")}};
    assert_int_equal(nd_serf_encode(&m, buf, sizeof buf, &n), 0);
    assert_int_equal(nd_serf_decode(buf, n, &d), 0);
    assert_int_equal(d.u.join.node.len, 1);

    /* a query needs an address; unknown types are not encodable */
    m = (struct nd_serf_msg){.type = ND_SERF_QUERY};
    assert_int_equal(nd_serf_encode(&m, buf, sizeof buf, &n), ND_GOSSIP_E_VALUE);
    m = (struct nd_serf_msg){.type = 10};
    assert_int_equal(nd_serf_encode(&m, buf, sizeof buf, &n), ND_GOSSIP_E_MSGTYPE);
    m = (struct nd_serf_msg){.type = ND_SERF_JOIN};
    assert_int_equal(nd_serf_encode(&m, buf, 3, &n), ND_GOSSIP_E_SPACE);

    /* types 6-9 are decoded (a relay header that is not a map is refused); 10+ are unknown;
     * nothing is empty */
    assert_true(nd_serf_decode(BYTES(9, 0xc1), &d) < 0);
    assert_int_equal(nd_serf_decode(BYTES(6, 0xc0), &d), 0);
    assert_true(d.u.conflict.nil);
    assert_int_equal(nd_serf_decode(BYTES(10, 0x80), &d), ND_GOSSIP_E_MSGTYPE);
    assert_int_equal(nd_serf_decode(buf, 0, &d), ND_GOSSIP_E_EMPTY);
    /* wrong types: a string LTime, a bin Node, a negative ID */
    assert_int_equal(nd_serf_decode(BYTES(1, 0x81, 0xa5, 'L', 'T', 'i', 'm', 'e', 0xa1, '1'), &d),
                     ND_GOSSIP_E_TYPE);
    assert_int_equal(nd_serf_decode(BYTES(1, 0x81, 0xa4, 'N', 'o', 'd', 'e', 0xc4, 1, 'a'), &d),
                     ND_GOSSIP_E_TYPE);
    assert_int_equal(nd_serf_decode(BYTES(5, 0x81, 0xa2, 'I', 'D', 0xd0, 0x80), &d),
                     ND_GOSSIP_E_RANGE);
    /* a query whose Filters claim more elements than there are bytes */
    assert_int_equal(
        nd_serf_decode(BYTES(4, 0x81, 0xa7, 'F', 'i', 'l', 't', 'e', 'r', 's', 0xdd, 0x10, 0, 0, 0),
                       &d),
        ND_GOSSIP_E_TRUNC);
}

/* queries, filters, key request/response, relay and conflict response: round trips, every
 * truncation refused */
static void test_query_messages(void **state)
{
    uint8_t fb[2][128], inner[128];
    struct nd_serf_msg m, d;
    struct nd_serf_filter f;
    struct nd_gbytes names[2] = {B("a"), B("nodus-2")}, filt[2], rest, nm;
    size_t n, fl[2], il;

    (void)state;
    f = (struct nd_serf_filter){.type = ND_SERF_FILTER_NODE, .nnodes = 2, .nodes_list = names};
    assert_int_equal(nd_serf_filter_encode(&f, fb[0], sizeof fb[0], &fl[0]), 0);
    f = (struct nd_serf_filter){.type = ND_SERF_FILTER_TAG, .tag = B("role"), .expr = B("^web")};
    assert_int_equal(nd_serf_filter_encode(&f, fb[1], sizeof fb[1], &fl[1]), 0);
    filt[0] = (struct nd_gbytes){fb[0], (uint32_t)fl[0]};
    filt[1] = (struct nd_gbytes){fb[1], (uint32_t)fl[1]};
    m = (struct nd_serf_msg){.type = ND_SERF_QUERY};
    m.u.query = (struct nd_serf_query){.ltime = 7,
                                       .id = 0x7fffffff,
                                       .addr = B("\x7f\0\0\1"),
                                       .port = 7946,
                                       .source_node = B("n1"),
                                       .nfilters = 2,
                                       .filter_list = filt,
                                       .flags = ND_SERF_QUERY_FLAG_ACK,
                                       .relay_factor = 2,
                                       .timeout_ns = 1500000000,
                                       .name = B("uptime"),
                                       .payload = B("x")};
    assert_int_equal(nd_serf_encode(&m, buf, sizeof buf, &n), 0);
    assert_int_equal(nd_serf_decode(buf, n, &d), 0);
    assert_int_equal(d.u.query.id, 0x7fffffff);
    assert_int_equal(d.u.query.timeout_ns, 1500000000);
    assert_int_equal(d.u.query.relay_factor, 2);
    assert_int_equal(d.u.query.nfilters, 2);
    rest = d.u.query.filters;
    assert_int_equal(nd_serf_filter_next(&rest, &f), 0);
    assert_int_equal(f.type, ND_SERF_FILTER_NODE);
    assert_int_equal(f.nnodes, 2);
    assert_int_equal(nd_serf_left_next(&f.nodes, &nm), 0);
    assert_int_equal(nd_serf_left_next(&f.nodes, &nm), 0);
    assert_int_equal(nm.len, 7);
    assert_int_equal(nd_serf_filter_next(&rest, &f), 0);
    assert_int_equal(f.type, ND_SERF_FILTER_TAG);
    assert_int_equal(f.expr.len, 4);
    assert_int_equal(rest.len, 0);
    for (size_t k = 0; k < n; k++)
        assert_true(nd_serf_decode(buf, k, &d) < 0);
    /* an empty filter, and a filter of an unknown type (decoded: the engine refuses it) */
    rest = (struct nd_gbytes){BYTES(0xa0)};
    assert_int_equal(nd_serf_filter_next(&rest, &f), ND_GOSSIP_E_EMPTY);
    rest = (struct nd_gbytes){BYTES(0xa2, 7, 0x90)};
    assert_int_equal(nd_serf_filter_next(&rest, &f), 0);
    assert_int_equal(f.type, 7);

    m = (struct nd_serf_msg){.type = ND_SERF_KEY_REQUEST, .u.key_req.key = B("0123456789abcdef")};
    assert_int_equal(nd_serf_encode(&m, buf, sizeof buf, &n), 0);
    assert_int_equal(nd_serf_decode(buf, n, &d), 0);
    assert_int_equal(d.u.key_req.key.len, 16);
    m.u.key_req.key = (struct nd_gbytes){buf, 65}; /* longer than any key */
    assert_int_equal(nd_serf_encode(&m, inner, sizeof inner, &n), ND_GOSSIP_E_LIMIT);

    m = (struct nd_serf_msg){.type = ND_SERF_KEY_RESPONSE};
    m.u.key_resp = (struct nd_serf_key_response){
        .result = true, .keys_list = names, .nkeys = 2, .primary_key = B("a"), .message = B("")};
    assert_int_equal(nd_serf_encode(&m, buf, sizeof buf, &n), 0);
    assert_int_equal(nd_serf_decode(buf, n, &d), 0);
    assert_true(d.u.key_resp.result);
    assert_int_equal(d.u.key_resp.nkeys, 2);
    assert_int_equal(d.u.key_resp.primary_key.len, 1);

    m = (struct nd_serf_msg){.type = ND_SERF_QUERY_RESPONSE};
    m.u.response = (struct nd_serf_query_response){.ltime = 3, .id = 4, .from = B("b")};
    assert_int_equal(nd_serf_encode(&m, inner, sizeof inner, &il), 0);
    m = (struct nd_serf_msg){.type = ND_SERF_RELAY};
    m.u.relay = (struct nd_serf_relay){.dest_ip = B("\x0a\0\0\1"),
                                       .dest_port = 7946,
                                       .dest_name = B("a"),
                                       .inner = {inner, (uint32_t)il}};
    assert_int_equal(nd_serf_encode(&m, buf, sizeof buf, &n), 0);
    assert_int_equal(nd_serf_decode(buf, n, &d), 0);
    assert_int_equal(d.u.relay.dest_port, 7946);
    assert_int_equal(d.u.relay.dest_ip.len, 4);
    assert_int_equal(d.u.relay.inner.len, il);
    assert_memory_equal(d.u.relay.inner.p, inner, il);
    m.u.relay.dest_ip = B("\1\2\3"); /* not an address */
    assert_int_equal(nd_serf_encode(&m, buf, sizeof buf, &n), ND_GOSSIP_E_VALUE);

    struct nd_serf_tag tag = {B("role"), B("web")};
    m = (struct nd_serf_msg){.type = ND_SERF_CONFLICT_RESPONSE};
    m.u.conflict = (struct nd_serf_member){.name = B("w"),
                                           .addr = B("\x0a\0\0\2"),
                                           .port = 7946,
                                           .tags = &tag,
                                           .ntags = 1,
                                           .status = 1,
                                           .vsn = {1, 5, 2, 2, 5, 4}};
    assert_int_equal(nd_serf_encode(&m, buf, sizeof buf, &n), 0);
    assert_int_equal(nd_serf_decode(buf, n, &d), 0);
    assert_false(d.u.conflict.nil);
    assert_int_equal(d.u.conflict.ntags, 1);
    assert_int_equal(d.u.conflict.status, 1);
    assert_int_equal(d.u.conflict.vsn[5], 4);
}

static void test_tags(void **state)
{
    (void)state;
    size_t n;
    struct nd_serf_tag t[300], d[300];
    t[0] = (struct nd_serf_tag){B("role"), B("web")};
    t[1] = (struct nd_serf_tag){B("svc"), B("")};
    assert_int_equal(nd_serf_tags_encode(t, 2, buf, sizeof buf, &n), 0);
    assert_int_equal(buf[0], ND_SERF_TAG_MAGIC);
    size_t dn;
    assert_int_equal(nd_serf_tags_decode(buf, n, d, 300, &dn), 0);
    assert_int_equal(dn, 2);
    assert_int_equal(d[1].key.len, 3);
    assert_int_equal(d[1].value.len, 0);
    assert_int_equal(nd_serf_tags_decode(buf, n, d, 1, &dn), ND_GOSSIP_E_LIMIT);
    /* duplicates refused */
    t[1].key = B("role");
    assert_int_equal(nd_serf_tags_encode(t, 2, buf, sizeof buf, &n), ND_GOSSIP_E_VALUE);
    /* exactly 512 bytes fits, 513 does not: [ff][81][a4 role][da 01 f6][502 bytes] */
    static uint8_t v[600];
    memset(v, 'v', sizeof v);
    t[0] = (struct nd_serf_tag){B("role"), {v, 502}};
    assert_int_equal(nd_serf_tags_encode(t, 1, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 512);
    assert_int_equal(nd_serf_tags_decode(buf, n, d, 300, &dn), 0);
    t[0].value.len = 503;
    assert_int_equal(nd_serf_tags_encode(t, 1, buf, sizeof buf, &n), ND_GOSSIP_E_LIMIT);
    t[0].value.len = 10;
    assert_int_equal(nd_serf_tags_encode(t, 1, buf, 5, &n), ND_GOSSIP_E_SPACE);
    /* many small tags */
    static char keys[300][4];
    for (int i = 0; i < 300; i++) {
        keys[i][0] = (char)('a' + i % 26), keys[i][1] = (char)('a' + i / 26);
        t[i] = (struct nd_serf_tag){{(const uint8_t *)keys[i], 2}, B("")};
    }
    assert_int_equal(nd_serf_tags_encode(t, 127, buf, sizeof buf, &n), 0);
    assert_int_equal(nd_serf_tags_encode(t, 300, buf, sizeof buf, &n), ND_GOSSIP_E_LIMIT);
    /* serf's role-only Meta, and empty Meta */
    assert_int_equal(nd_serf_tags_decode((const uint8_t *)"lb", 2, d, 300, &dn), 0);
    assert_int_equal(dn, 1);
    assert_int_equal(d[0].key.len, 4);
    assert_memory_equal(d[0].value.p, "lb", 2);
    assert_int_equal(nd_serf_tags_decode(buf, 0, d, 300, &dn), 0);
    assert_int_equal(dn, 0);
    /* hostile: non-string values, truncation, a huge count, over 512 bytes */
    assert_int_equal(nd_serf_tags_decode(BYTES(0xff, 0x81, 0xa1, 'k', 0x01), d, 300, &dn),
                     ND_GOSSIP_E_TYPE);
    assert_int_equal(nd_serf_tags_decode(BYTES(0xff, 0x81, 0xa1, 'k'), d, 300, &dn),
                     ND_GOSSIP_E_TRUNC);
    assert_int_equal(nd_serf_tags_decode(BYTES(0xff, 0xdf, 0x7f, 0xff, 0xff, 0xff), d, 300, &dn),
                     ND_GOSSIP_E_TRUNC);
    assert_int_equal(nd_serf_tags_decode(BYTES(0xff, 0x91, 0xa0), d, 300, &dn), ND_GOSSIP_E_TYPE);
    assert_int_equal(nd_serf_tags_decode(v, 513, d, 300, &dn), ND_GOSSIP_E_LIMIT);
}

static void test_coord(void **state)
{
    (void)state;
    struct nd_serf_coord c = {.dim = 8, .error = 1.5, .height = 1e-5}, d;
    c.vec[3] = -2.25;
    size_t n;
    assert_int_equal(nd_serf_coord_encode(&c, buf, sizeof buf, &n), 0);
    assert_int_equal(nd_serf_coord_decode(buf, n, &d), 0);
    assert_true(d.dim == 8 && d.vec[3] == -2.25 && d.error == 1.5 && d.height == 1e-5);
    c.dim = 9;
    assert_int_equal(nd_serf_coord_encode(&c, buf, sizeof buf, &n), ND_GOSSIP_E_LIMIT);
    assert_int_equal(nd_serf_coord_decode(buf, 0, &d), ND_GOSSIP_E_EMPTY);
    assert_int_equal(nd_serf_coord_decode(BYTES(2, 0x80), &d), ND_GOSSIP_E_VALUE);
    /* integers and float32 are floats too; more than 8 dimensions is refused */
    assert_int_equal(
        nd_serf_coord_decode(BYTES(1, 0x82, 0xa5, 'E', 'r', 'r', 'o', 'r', 0x03, 0xa6, 'H', 'e',
                                   'i', 'g', 'h', 't', 0xca, 0x3f, 0xc0, 0, 0),
                             &d),
        0);
    assert_true(d.error == 3.0 && d.height == 1.5);
    assert_int_equal(nd_serf_coord_decode(
                         BYTES(1, 0x81, 0xa3, 'V', 'e', 'c', 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0), &d),
                     ND_GOSSIP_E_LIMIT);
    assert_int_equal(nd_serf_coord_decode(BYTES(1, 0x81, 0xa3, 'V', 'e', 'c', 0x91, 0xa0), &d),
                     ND_GOSSIP_E_TYPE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_query_messages),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_coord),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
