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

    /* not encodable here: query; unknown types */
    m = (struct nd_serf_msg){.type = ND_SERF_QUERY};
    assert_int_equal(nd_serf_encode(&m, buf, sizeof buf, &n), ND_GOSSIP_E_MSGTYPE);
    m = (struct nd_serf_msg){.type = ND_SERF_JOIN};
    assert_int_equal(nd_serf_encode(&m, buf, 3, &n), ND_GOSSIP_E_SPACE);

    /* types 6-9 are recognised, not decoded; 10+ are unknown; nothing is empty */
    assert_int_equal(nd_serf_decode(BYTES(9, 0xc1), &d), 0);
    assert_int_equal(d.type, ND_SERF_RELAY);
    assert_int_equal(d.body.len, 1);
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
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_coord),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
