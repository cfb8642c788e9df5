/*
 * Unit tests for gossip/wire.c, mp.c and lzw.c: round trips of every message type, what the
 * decoders tolerate (as Go's decoder does) and what they refuse, compound / hasCrc / compress
 * framing, the packet walk, the stream parser, LZW edge cases and bombs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "../../gossip/keyring.h"
#include "../../gossip/lzw.h"
#include "../../gossip/serf.h"
#include "../../gossip/wire.h"

#define B(lit) ((struct nd_gbytes){(const uint8_t *)(lit), sizeof(lit) - 1})
#define BA(arr) ((struct nd_gbytes){(arr), sizeof(arr)})
/* a byte-array literal and its length */
#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

static uint8_t buf[1 << 17], buf2[1 << 17];
static const uint8_t ip4[4] = {10, 1, 2, 3}, ip6[16] = {0xfe, 0x80, [15] = 9};
static const uint8_t vsn[6] = {1, 5, 2, 2, 5, 5};

static void roundtrip(const struct nd_gossip_msg *m, struct nd_gossip_msg *d)
{
    size_t n, n2;
    assert_int_equal(nd_gossip_encode(m, buf, sizeof buf, &n), 0);
    assert_int_equal(buf[0], m->type);
    assert_int_equal(nd_gossip_decode(buf, n, d), 0);
    assert_int_equal(nd_gossip_encode(d, buf2, sizeof buf2, &n2), 0);
    assert_int_equal(n, n2);
    assert_memory_equal(buf, buf2, n);
    /* every proper prefix fails cleanly (USER has no structure to cut) */
    if (m->type != ND_GOSSIP_USER)
        for (size_t k = 0; k < n; k++) {
            struct nd_gossip_msg t;
            int e = nd_gossip_decode(buf, k, &t);
            assert_true(e < 0);
        }
    /* every output buffer too small by even one byte is refused, never overrun */
    for (size_t cap = 0; cap < n; cap++)
        assert_int_equal(nd_gossip_encode(m, buf2, cap, &n2), ND_GOSSIP_E_SPACE);
}

static void test_roundtrip_all(void **state)
{
    (void)state;
    struct nd_gossip_msg m, d;

    m = (struct nd_gossip_msg){.type = ND_GOSSIP_PING,
                               .u.ping = {.seq_no = 0xdeadbeef, .node = B("x")}};
    roundtrip(&m, &d);
    assert_int_equal(d.u.ping.seq_no, 0xdeadbeef);

    m = (struct nd_gossip_msg){
        .type = ND_GOSSIP_INDIRECT_PING,
        .u.indirect_ping = {.seq_no = 1, .target = BA(ip6), .port = 1, .node = B("t")}};
    roundtrip(&m, &d);
    assert_false(d.u.indirect_ping.nack);
    assert_int_equal(d.u.indirect_ping.target.len, 16);

    m = (struct nd_gossip_msg){.type = ND_GOSSIP_ACK, .u.ack = {.seq_no = 128, .payload = B("")}};
    roundtrip(&m, &d);
    m = (struct nd_gossip_msg){.type = ND_GOSSIP_NACK, .u.nack = {.seq_no = 65536}};
    roundtrip(&m, &d);
    assert_int_equal(d.u.nack.seq_no, 65536);
    m = (struct nd_gossip_msg){.type = ND_GOSSIP_SUSPECT,
                               .u.suspect = {.incarnation = 255, .node = B("a"), .from = B("b")}};
    roundtrip(&m, &d);
    m = (struct nd_gossip_msg){.type = ND_GOSSIP_DEAD,
                               .u.dead = {.incarnation = 256, .node = B("a"), .from = B("a")}};
    roundtrip(&m, &d);
    assert_int_equal(d.u.dead.incarnation, 256);

    static uint8_t meta[ND_GOSSIP_META_MAX];
    memset(meta, 'm', sizeof meta);
    m = (struct nd_gossip_msg){
        .type = ND_GOSSIP_ALIVE,
        .u.alive = {
            .incarnation = 1, .node = B("n"), .addr = BA(ip4), .port = 7946, .meta = BA(meta)}};
    memcpy(m.u.alive.vsn, vsn, 6);
    roundtrip(&m, &d);
    assert_int_equal(d.u.alive.meta.len, ND_GOSSIP_META_MAX);

    m = (struct nd_gossip_msg){.type = ND_GOSSIP_ERR, .u.err = {.error = B("no")}};
    roundtrip(&m, &d);
    m = (struct nd_gossip_msg){.type = ND_GOSSIP_USER, .u.user = B("\x03\x80")};
    roundtrip(&m, &d);
    assert_int_equal(d.u.user.len, 2);
}

static void test_encode_refuses(void **state)
{
    (void)state;
    size_t n;
    static uint8_t big[ND_GOSSIP_META_MAX + 1];
    struct nd_gossip_msg m = {.type = ND_GOSSIP_ALIVE,
                              .u.alive = {.node = B("n"), .addr = BA(ip4), .meta = BA(big)}};
    assert_int_equal(nd_gossip_encode(&m, buf, sizeof buf, &n), ND_GOSSIP_E_LIMIT);
    m.u.alive.meta = B("");
    m.u.alive.addr = B("12345");
    assert_int_equal(nd_gossip_encode(&m, buf, sizeof buf, &n), ND_GOSSIP_E_VALUE);
    m.u.alive.addr = (struct nd_gbytes){0};
    assert_int_equal(nd_gossip_encode(&m, buf, sizeof buf, &n), ND_GOSSIP_E_VALUE);
    m.u.alive.addr = BA(ip4);
    m.u.alive.node = (struct nd_gbytes){big, ND_GOSSIP_NAME_MAX + 1};
    assert_int_equal(nd_gossip_encode(&m, buf, sizeof buf, &n), ND_GOSSIP_E_VALUE);
    m = (struct nd_gossip_msg){.type = ND_GOSSIP_PING, .u.ping = {.source_addr = B("123")}};
    assert_int_equal(nd_gossip_encode(&m, buf, sizeof buf, &n), ND_GOSSIP_E_VALUE);
    m = (struct nd_gossip_msg){.type = ND_GOSSIP_INDIRECT_PING};
    assert_int_equal(nd_gossip_encode(&m, buf, sizeof buf, &n), ND_GOSSIP_E_VALUE);
    for (int t = 0; t < 256; t++) {
        bool plain = t <= 5 || t == 8 || t == 11 || t == 13;
        m = (struct nd_gossip_msg){.type = (uint8_t)t};
        int e = nd_gossip_encode(&m, buf, sizeof buf, &n);
        if (!plain)
            assert_int_equal(e, ND_GOSSIP_E_MSGTYPE);
        assert_non_null(nd_gossip_type_name((uint8_t)t));
    }
    for (int e = 0; e >= -20; e--)
        assert_non_null(nd_gossip_strerror(e));
    assert_string_equal(nd_gossip_strerror(-999), "unknown error");
}

/* Go's decoder accepts these variants of {SeqNo: 7, Payload: "ab"}: we must too. */
static void test_decode_tolerates(void **state)
{
    (void)state;
    struct nd_gossip_msg m;
    const struct {
        const uint8_t *p;
        size_t n;
    } ok[] = {
        /* canonical */
        {BYTES(2, 0x82, 0xa5, 'S', 'e', 'q', 'N', 'o', 7, 0xa7, 'P', 'a', 'y', 'l', 'o', 'a', 'd',
               0xa2, 'a', 'b')},
        /* keys in another order, uint64 and int16 widths, bin8 for the byte field, str8 key */
        {BYTES(2, 0x82, 0xa7, 'P', 'a', 'y', 'l', 'o', 'a', 'd', 0xc4, 2, 'a', 'b', 0xd9, 5, 'S',
               'e', 'q', 'N', 'o', 0xcf, 0, 0, 0, 0, 0, 0, 0, 7)},
        {BYTES(2, 0x82, 0xa5, 'S', 'e', 'q', 'N', 'o', 0xd1, 0, 7, 0xa7, 'P', 'a', 'y', 'l', 'o',
               'a', 'd', 0xdb, 0, 0, 0, 2, 'a', 'b')},
        /* map16 header, an unknown key with a nested value, a duplicate key (last wins) */
        {BYTES(2, 0xde, 0, 4, 0xa5, 'S', 'e', 'q', 'N', 'o', 1, 0xa1, 'X', 0x92, 0x81, 0xa1, 'k',
               0xc0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xa5, 'S', 'e', 'q', 'N', 'o', 7, 0xa7, 'P', 'a',
               'y', 'l', 'o', 'a', 'd', 0xc5, 0, 2, 'a', 'b')},
        /* extension types and floats are skipped when unknown; trailing bytes ignored */
        {BYTES(2, 0x84, 0xa1, 'E', 0xd4, 1, 2, 0xa1, 'F', 0xc7, 1, 5, 0, 0xa5, 'S', 'e', 'q', 'N',
               'o', 7, 0xa7, 'P', 'a', 'y', 'l', 'o', 'a', 'd', 0xa2, 'a', 'b', 0xff, 0xff)},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(nd_gossip_decode(ok[i].p, ok[i].n, &m), 0);
        assert_int_equal(m.u.ack.seq_no, 7);
        assert_int_equal(m.u.ack.payload.len, 2);
        assert_memory_equal(m.u.ack.payload.p, "ab", 2);
    }
    /* nil for every field, a nil body and an empty map: zero values */
    assert_int_equal(nd_gossip_decode(BYTES(2, 0x82, 0xa5, 'S', 'e', 'q', 'N', 'o', 0xc0, 0xa7, 'P',
                                            'a', 'y', 'l', 'o', 'a', 'd', 0xc0),
                                      &m),
                     0);
    assert_int_equal(m.u.ack.seq_no, 0);
    assert_null(m.u.ack.payload.p);
    assert_int_equal(nd_gossip_decode(BYTES(2, 0xc0), &m), 0);
    assert_int_equal(nd_gossip_decode(BYTES(11, 0x80), &m), 0);
    /* bool as fixint 1 */
    struct nd_gossip_msg ip = {.type = ND_GOSSIP_INDIRECT_PING,
                               .u.indirect_ping = {.target = BA(ip4)}};
    size_t n;
    assert_int_equal(nd_gossip_encode(&ip, buf, sizeof buf, &n), 0);
    uint8_t *c3 = memchr(buf, 0xc2, n); /* Nack: false */
    assert_non_null(c3);
    *c3 = 0x01;
    assert_int_equal(nd_gossip_decode(buf, n, &m), 0);
    assert_true(m.u.indirect_ping.nack);
}

static void test_decode_refuses(void **state)
{
    (void)state;
    struct nd_gossip_msg m;
    /* a string field given bin (Go refuses it too) */
    assert_int_equal(
        nd_gossip_decode(BYTES(13, 0x81, 0xa5, 'E', 'r', 'r', 'o', 'r', 0xc4, 1, 'x'), &m),
        ND_GOSSIP_E_TYPE);
    /* a map key that is not a string */
    assert_int_equal(nd_gossip_decode(BYTES(11, 0x81, 1, 1), &m), ND_GOSSIP_E_TYPE);
    /* negative and oversized integers */
    assert_int_equal(nd_gossip_decode(BYTES(11, 0x81, 0xa5, 'S', 'e', 'q', 'N', 'o', 0xff), &m),
                     ND_GOSSIP_E_RANGE);
    assert_int_equal(
        nd_gossip_decode(
            BYTES(11, 0x81, 0xa5, 'S', 'e', 'q', 'N', 'o', 0xcf, 0, 0, 0, 1, 0, 0, 0, 0), &m),
        ND_GOSSIP_E_RANGE);
    assert_int_equal(
        nd_gossip_decode(BYTES(11, 0x81, 0xa5, 'S', 'e', 'q', 'N', 'o', 0xca, 0, 0, 0, 0), &m),
        ND_GOSSIP_E_TYPE);
    /* a body that is not a map; a never-used byte */
    assert_int_equal(nd_gossip_decode(BYTES(11, 0x91, 0), &m), ND_GOSSIP_E_TYPE);
    assert_int_equal(nd_gossip_decode(BYTES(11, 0xc1), &m), ND_GOSSIP_E_TYPE);
    /* huge declared counts and lengths against a few bytes of input */
    assert_int_equal(nd_gossip_decode(BYTES(11, 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1), &m),
                     ND_GOSSIP_E_TRUNC);
    assert_int_equal(nd_gossip_decode(BYTES(11, 0x81, 0xa1, 'X', 0xdd, 0xff, 0xff, 0xff, 0xff), &m),
                     ND_GOSSIP_E_TRUNC);
    assert_int_equal(nd_gossip_decode(BYTES(11, 0x81, 0xa1, 'X', 0xc6, 0xff, 0xff, 0xff, 0xff), &m),
                     ND_GOSSIP_E_TRUNC);
    assert_int_equal(nd_gossip_decode(BYTES(11, 0x81, 0xdb, 0xff, 0xff, 0xff, 0xff), &m),
                     ND_GOSSIP_E_TRUNC);
    /* Meta over 512, a 5-byte address, Vsn of 3 bytes, a name over the limit */
    uint8_t a[700] = {4, 0x82, 0xa4, 'A', 'd', 'd', 'r', 0xa4, 1,    2,
                      3, 4,    0xa4, 'M', 'e', 't', 'a', 0xda, 0x02, 0x01};
    assert_int_equal(nd_gossip_decode(a, 20 + 513, &m), ND_GOSSIP_E_LIMIT);
    assert_int_equal(
        nd_gossip_decode(BYTES(4, 0x81, 0xa4, 'A', 'd', 'd', 'r', 0xa5, 1, 2, 3, 4, 5), &m),
        ND_GOSSIP_E_VALUE);
    assert_int_equal(nd_gossip_decode(BYTES(4, 0x82, 0xa4, 'A', 'd', 'd', 'r', 0xa4, 1, 2, 3, 4,
                                            0xa3, 'V', 's', 'n', 0xa3, 1, 2, 3),
                                      &m),
                     ND_GOSSIP_E_VALUE);
    /* alive without Addr; indirect ping without Target */
    assert_int_equal(nd_gossip_decode(BYTES(4, 0x80), &m), ND_GOSSIP_E_VALUE);
    assert_int_equal(nd_gossip_decode(BYTES(1, 0x80), &m), ND_GOSSIP_E_VALUE);
    uint8_t nm[600] = {0, 0x81, 0xa4, 'N', 'o', 'd', 'e', 0xda, 0x02, 0x01};
    assert_int_equal(nd_gossip_decode(nm, 10 + 513, &m), ND_GOSSIP_E_LIMIT);
    /* framing and unknown types are not messages */
    assert_int_equal(nd_gossip_decode(BYTES(7, 0), &m), ND_GOSSIP_E_MSGTYPE);
    assert_int_equal(nd_gossip_decode(BYTES(200, 0x80), &m), ND_GOSSIP_E_MSGTYPE);
    assert_int_equal(nd_gossip_decode(buf, 0, &m), ND_GOSSIP_E_EMPTY);
}

/* Unknown values nested a million deep are skipped without recursion. */
static void test_deep_nesting(void **state)
{
    (void)state;
    size_t depth = 1000000;
    uint8_t *p = malloc(depth + 16);
    assert_non_null(p);
    memcpy(p, "\x0b\x81\xa1X", 4);
    memset(p + 4, 0x91, depth);
    p[4 + depth] = 0x01;
    struct nd_gossip_msg m;
    assert_int_equal(nd_gossip_decode(p, depth + 5, &m), 0);
    assert_int_equal(nd_gossip_decode(p, depth + 4, &m), ND_GOSSIP_E_TRUNC);
    free(p);
}

static void test_compound(void **state)
{
    (void)state;
    struct nd_gbytes parts[255];
    size_t n;
    static uint8_t msgs[200][3];
    for (int i = 0; i < 200; i++) {
        msgs[i][0] = 11, msgs[i][1] = 0x80, msgs[i][2] = (uint8_t)i;
        parts[i] = BA(msgs[i]);
    }
    assert_int_equal(nd_gossip_compound_encode(parts, 127, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 2 + 127 * 5);
    assert_int_equal(nd_gossip_compound_encode(parts, 128, buf, sizeof buf, &n), ND_GOSSIP_E_LIMIT);
    assert_int_equal(nd_gossip_compound_encode(parts, 0, buf, sizeof buf, &n), ND_GOSSIP_E_EMPTY);
    struct nd_gbytes with_empty[2] = {parts[0], B("")};
    assert_int_equal(nd_gossip_compound_encode(with_empty, 2, buf, sizeof buf, &n),
                     ND_GOSSIP_E_EMPTY);
    assert_int_equal(nd_gossip_compound_encode(parts, 3, buf, 10, &n), ND_GOSSIP_E_SPACE);

    /* a receiver parses up to 255 parts correctly (Go would not: never send them) */
    uint8_t c[2 + 255 * 2 + 255];
    c[0] = 7, c[1] = 255;
    for (int i = 0; i < 255; i++)
        c[2 + 2 * i] = 0, c[3 + 2 * i] = 1, c[2 + 510 + i] = (uint8_t)i;
    assert_int_equal(nd_gossip_compound_split(c, sizeof c, parts, 255, &n), 0);
    assert_int_equal(n, 255);
    assert_int_equal(parts[254].p[0], 254);
    assert_int_equal(nd_gossip_compound_split(c, sizeof c, parts, 254, &n), ND_GOSSIP_E_LIMIT);
    /* truncated: complete parts before the cut are returned, as Go does */
    assert_int_equal(nd_gossip_compound_split(c, sizeof c - 10, parts, 255, &n), ND_GOSSIP_E_TRUNC);
    assert_int_equal(n, 245);
    assert_int_equal(nd_gossip_compound_split(c, 100, parts, 255, &n), ND_GOSSIP_E_TRUNC);
    assert_int_equal(n, 0);
    /* an empty part or a count of zero */
    assert_int_equal(nd_gossip_compound_split(BYTES(7, 2, 0, 1, 0, 0, 11), parts, 255, &n),
                     ND_GOSSIP_E_EMPTY);
    assert_int_equal(nd_gossip_compound_split(BYTES(7, 0), parts, 255, &n), ND_GOSSIP_E_EMPTY);
    assert_int_equal(nd_gossip_compound_split(BYTES(7), parts, 255, &n), ND_GOSSIP_E_TRUNC);
    assert_int_equal(nd_gossip_compound_split(BYTES(8, 1), parts, 255, &n), ND_GOSSIP_E_MSGTYPE);
}

static void test_crc(void **state)
{
    (void)state;
    /* the standard check value */
    assert_int_equal(nd_gossip_crc32((const uint8_t *)"123456789", 9), 0xcbf43926);
    assert_int_equal(nd_gossip_crc32(NULL, 0), 0);
    size_t n;
    struct nd_gbytes in;
    assert_int_equal(nd_gossip_crc_wrap(BYTES(11, 0x80), buf, sizeof buf, &n), 0);
    assert_int_equal(n, 7);
    assert_int_equal(nd_gossip_crc_check(buf, n, &in), 0);
    assert_int_equal(in.len, 2);
    buf[6] ^= 1;
    assert_int_equal(nd_gossip_crc_check(buf, n, &in), ND_GOSSIP_E_CRC);
    assert_int_equal(nd_gossip_crc_wrap(buf, 0, buf2, sizeof buf2, &n), ND_GOSSIP_E_EMPTY);
    assert_int_equal(nd_gossip_crc_wrap(BYTES(11, 0x80), buf2, 6, &n), ND_GOSSIP_E_SPACE);
    /* shorter than 6 bytes: never valid */
    assert_int_equal(nd_gossip_crc_check(BYTES(12, 0, 0, 0, 0), &in), ND_GOSSIP_E_EMPTY);
    assert_int_equal(nd_gossip_crc_check(BYTES(12, 0, 0), &in), ND_GOSSIP_E_TRUNC);
}

static void test_lzw(void **state)
{
    (void)state;
    size_t n, m;
    /* empty input: a clear and an end code, as Go writes them */
    assert_int_equal(nd_lzw_compress(NULL, 0, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(nd_lzw_decompress(buf, n, buf2, sizeof buf2, &m), 0);
    assert_int_equal(m, 0);
    assert_int_equal(nd_lzw_compress((const uint8_t *)"hello", 5, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 8);
    assert_memory_equal(buf, "\x00\xd1\x94\x61\xc3\xe6\x4d\x40", 8);
    /* no end code, a code past the table, a truncated stream */
    assert_int_equal(nd_lzw_decompress(buf, 5, buf2, sizeof buf2, &m), ND_GOSSIP_E_LZW);
    assert_int_equal(nd_lzw_decompress(BYTES(0x00, 0xff, 0xff), buf2, sizeof buf2, &m),
                     ND_GOSSIP_E_LZW);
    assert_int_equal(nd_lzw_decompress(NULL, 0, buf2, sizeof buf2, &m), ND_GOSSIP_E_LZW);
    /* too small an output buffer for compression */
    assert_int_equal(nd_lzw_compress((const uint8_t *)"hello", 5, buf, 7, &n), ND_GOSSIP_E_SPACE);

    /* round trips over the table-full clear codes, with every byte value, and the bound */
    static uint8_t in[60000], out[60000];
    uint32_t x = 1;
    for (size_t i = 0; i < sizeof in; i++) {
        x = x * 1103515245u + 12345u;
        in[i] = i < 30000 ? (uint8_t)(x >> 16) : (uint8_t)(i % 7);
    }
    static uint8_t comp[100000];
    for (size_t len = 1; len <= sizeof in; len = len * 3 + 1) {
        assert_int_equal(nd_lzw_compress(in, len, comp, nd_lzw_bound(len), &n), 0);
        assert_int_equal(nd_lzw_decompress(comp, n, out, len, &m), 0);
        assert_int_equal(m, len);
        assert_memory_equal(out, in, len);
        if (len > 1)
            assert_int_equal(nd_lzw_decompress(comp, n, out, len - 1, &m), ND_GOSSIP_E_LIMIT);
    }

    /* a bomb: 1 MiB of zeros compresses to a few KiB; the output bound stops it */
    uint8_t *zeros = calloc(1, 1 << 20);
    assert_non_null(zeros);
    assert_int_equal(nd_lzw_compress(zeros, 1 << 20, comp, sizeof comp, &n), 0);
    assert_true(n < 20000);
    assert_int_equal(nd_lzw_decompress(comp, n, out, sizeof out, &m), ND_GOSSIP_E_LIMIT);
    free(zeros);
}

static void test_compress_msg(void **state)
{
    (void)state;
    size_t n, m, used;
    static uint8_t in[70000];
    memset(in, 'a', sizeof in);
    /* sizes giving each raw header (fixstr, str16, str32) */
    size_t lens[] = {5, 200, 69000};
    for (int k = 0; k < 3; k++) {
        uint8_t *p = in;
        if (k == 2)
            for (size_t i = 0; i < lens[k]; i++)
                in[i] = (uint8_t)(i * 2654435761u >> 13);
        assert_int_equal(nd_gossip_compress_encode(p, lens[k], buf2, sizeof buf2, &n), 0);
        assert_int_equal(nd_gossip_compress_decode(buf2, n, buf, sizeof buf, &m, &used), 0);
        assert_int_equal(used, n);
        assert_int_equal(m, lens[k]);
        assert_memory_equal(buf, p, m);
    }
    assert_int_equal(nd_gossip_compress_encode(in, 0, buf2, sizeof buf2, &n), ND_GOSSIP_E_EMPTY);
    assert_int_equal(nd_gossip_compress_encode(in, 5, buf2, 16, &n), ND_GOSSIP_E_SPACE);
    /* unknown algorithm, empty payload, a bin Buf (accepted), trailing bytes after the map */
    assert_int_equal(nd_gossip_compress_decode(
                         BYTES(9, 0x82, 0xa4, 'A', 'l', 'g', 'o', 1, 0xa3, 'B', 'u', 'f', 0xa0),
                         buf, sizeof buf, &m, &used),
                     ND_GOSSIP_E_LZW);
    assert_int_equal(
        nd_gossip_compress_decode(BYTES(9, 0x81, 0xa3, 'B', 'u', 'f', 0xa3, 0x00, 0x03, 0x02), buf,
                                  sizeof buf, &m, &used),
        ND_GOSSIP_E_EMPTY);
    assert_int_equal(
        nd_gossip_compress_decode(BYTES(9, 0x81, 0xa3, 'B', 'u', 'f', 0xc4, 8, 0x00, 0xd1, 0x94,
                                        0x61, 0xc3, 0xe6, 0x4d, 0x40, 0xee),
                                  buf, sizeof buf, &m, &used),
        0);
    assert_int_equal(used, 16);
    assert_memory_equal(buf, "hello", 5);
}

struct seen {
    int n;
    uint8_t types[64];
};

static void on_msg(void *arg, const uint8_t *msg, size_t len)
{
    struct seen *s = arg;
    assert_true(len >= 1);
    if (s->n < 64)
        s->types[s->n] = msg[0];
    s->n++;
}

static void test_packet_walk(void **state)
{
    (void)state;
    size_t n, cn, zn;
    struct seen s = {0};
    uint8_t scratch[4096];
    /* crc( compress( compound(ping, ack, compound(nack)) ) ) */
    struct nd_gossip_msg ping = {.type = ND_GOSSIP_PING, .u.ping.node = B("n")};
    struct nd_gossip_msg ack = {.type = ND_GOSSIP_ACK};
    uint8_t p1[64], p2[64], inner[64], comp[256], z[512], pkt[600];
    size_t l1, l2, li;
    assert_int_equal(nd_gossip_encode(&ping, p1, sizeof p1, &l1), 0);
    assert_int_equal(nd_gossip_encode(&ack, p2, sizeof p2, &l2), 0);
    struct nd_gbytes one[1] = {{BYTES(11, 0x80)}};
    assert_int_equal(nd_gossip_compound_encode(one, 1, inner, sizeof inner, &li), 0);
    struct nd_gbytes parts[3] = {{p1, (uint32_t)l1}, {p2, (uint32_t)l2}, {inner, (uint32_t)li}};
    assert_int_equal(nd_gossip_compound_encode(parts, 3, comp, sizeof comp, &cn), 0);
    assert_int_equal(nd_gossip_compress_encode(comp, cn, z, sizeof z, &zn), 0);
    assert_int_equal(nd_gossip_crc_wrap(z, zn, pkt, sizeof pkt, &n), 0);
    assert_int_equal(nd_gossip_packet_walk(pkt, n, scratch, sizeof scratch, on_msg, &s), 0);
    assert_int_equal(s.n, 3);
    assert_memory_equal(s.types, "\x00\x02\x0b", 3);
    /* bad checksum: nothing delivered */
    pkt[n - 1] ^= 0x40;
    s.n = 0;
    assert_int_equal(nd_gossip_packet_walk(pkt, n, scratch, sizeof scratch, on_msg, &s),
                     ND_GOSSIP_E_CRC);
    assert_int_equal(s.n, 0);
    /* no scratch: the compressed layer cannot be opened */
    assert_int_equal(nd_gossip_packet_walk(z, zn, NULL, 0, on_msg, &s), ND_GOSSIP_E_LIMIT);
    /* a bad part does not hide the good ones */
    uint8_t mixed[] = {7, 3, 0, 2, 0, 3, 0, 2, 11, 0x80, 9, 0x80, 0xc0, 2, 0x80};
    s.n = 0;
    assert_int_equal(
        nd_gossip_packet_walk(mixed, sizeof mixed, scratch, sizeof scratch, on_msg, &s),
        ND_GOSSIP_E_LZW);
    assert_int_equal(s.n, 2);
    /* nesting deeper than the limit */
    uint8_t deep[64];
    size_t dl = 0;
    for (unsigned i = 0; i < ND_GOSSIP_NEST_MAX + 1; i++)
        deep[dl++] = 7, deep[dl++] = 1, deep[dl++] = 0, deep[dl++] = 0;
    deep[dl++] = 11;
    for (unsigned i = 0; i < ND_GOSSIP_NEST_MAX + 1; i++) /* each part: what follows it */
        deep[4 * i + 3] = (uint8_t)(dl - 4 * (i + 1));
    s.n = 0;
    assert_int_equal(nd_gossip_packet_walk(deep, dl, scratch, sizeof scratch, on_msg, &s),
                     ND_GOSSIP_E_LIMIT);
    assert_int_equal(s.n, 0);
    assert_int_equal(nd_gossip_packet_walk(deep + 4, dl - 4, scratch, sizeof scratch, on_msg, &s),
                     0);
    assert_int_equal(s.n, 1);
    /* empty packet; a lone hasCrc header */
    assert_int_equal(nd_gossip_packet_walk(pkt, 0, scratch, sizeof scratch, on_msg, &s),
                     ND_GOSSIP_E_EMPTY);
    assert_int_equal(
        nd_gossip_packet_walk(BYTES(12, 0, 0, 0, 0), scratch, sizeof scratch, on_msg, &s),
        ND_GOSSIP_E_EMPTY);
}

static void test_stream(void **state)
{
    (void)state;
    uint8_t scratch[8192];
    struct nd_gossip_stream_msg m;
    size_t n, zn;
    /* a ping followed by other bytes: consumed says where it ends */
    struct nd_gossip_msg ping = {.type = ND_GOSSIP_PING, .u.ping = {.seq_no = 3, .node = B("b")}};
    assert_int_equal(nd_gossip_encode(&ping, buf, sizeof buf, &n), 0);
    buf[n] = 0xee;
    assert_int_equal(nd_gossip_stream_parse(buf, n + 1, NULL, scratch, sizeof scratch, &m), 0);
    assert_int_equal(m.type, ND_GOSSIP_PING);
    assert_int_equal(m.consumed, n);
    struct nd_gossip_msg d;
    assert_int_equal(nd_gossip_decode_body(m.type, m.body.p, m.body.len, &d), 0);
    assert_int_equal(d.u.ping.seq_no, 3);
    /* compressed on the stream */
    assert_int_equal(nd_gossip_compress_encode(buf, n, buf2, sizeof buf2, &zn), 0);
    assert_int_equal(nd_gossip_stream_parse(buf2, zn, NULL, scratch, sizeof scratch, &m), 0);
    assert_true(m.compressed);
    assert_int_equal(m.consumed, zn);
    assert_int_equal(nd_gossip_stream_parse(buf2, zn - 1, NULL, scratch, sizeof scratch, &m),
                     ND_GOSSIP_E_TRUNC);
    assert_int_equal(nd_gossip_stream_parse(buf2, 5, NULL, scratch, sizeof scratch, &m),
                     ND_GOSSIP_E_TRUNC);
    /* types that do not travel on streams */
    assert_int_equal(nd_gossip_stream_parse(BYTES(4, 0x80), NULL, scratch, sizeof scratch, &m),
                     ND_GOSSIP_E_MSGTYPE);
    /* a push/pull announcing more nodes than the limit, or a negative count */
    assert_int_equal(
        nd_gossip_stream_parse(BYTES(6, 0x81, 0xa5, 'N', 'o', 'd', 'e', 's', 0xce, 0, 2, 0, 0),
                               NULL, scratch, sizeof scratch, &m),
        ND_GOSSIP_E_LIMIT);
    assert_int_equal(nd_gossip_stream_parse(BYTES(6, 0x81, 0xa5, 'N', 'o', 'd', 'e', 's', 0xff),
                                            NULL, scratch, sizeof scratch, &m),
                     ND_GOSSIP_E_RANGE);
    /* a push/pull whose user state has not all arrived */
    assert_int_equal(nd_gossip_stream_parse(BYTES(6, 0x81, 0xac, 'U', 's', 'e', 'r', 'S', 't', 'a',
                                                  't', 'e', 'L', 'e', 'n', 3, 1, 2),
                                            NULL, scratch, sizeof scratch, &m),
                     ND_GOSSIP_E_TRUNC);
    /* encryption: required with a keyring, refused without one */
    struct nd_keyring kr;
    nd_keyring_init(&kr);
    assert_int_equal(nd_keyring_add(&kr, (const uint8_t *)"0123456789abcdef", 16), 0);
    assert_int_equal(nd_gossip_stream_parse(buf, n, &kr, scratch, sizeof scratch, &m),
                     ND_GOSSIP_E_PLAIN);
    static const uint8_t nonce[12] = {9};
    size_t sn;
    assert_int_equal(nd_gossip_stream_seal(&kr, nonce, buf2, zn, buf, sizeof buf, &sn), 0);
    assert_int_equal(nd_gossip_stream_parse(buf, sn, NULL, scratch, sizeof scratch, &m),
                     ND_GOSSIP_E_KEY);
    assert_int_equal(nd_gossip_stream_parse(buf, sn, &kr, scratch, sizeof scratch, &m), 0);
    assert_true(m.encrypted && m.compressed);
    assert_int_equal(m.type, ND_GOSSIP_PING);
    assert_int_equal(m.consumed, sn);
    /* the length header is authenticated: change it and it no longer decrypts */
    buf[sn] = 0;
    buf[4]++;
    assert_int_equal(nd_gossip_stream_parse(buf, sn + 1, &kr, scratch, sizeof scratch, &m),
                     ND_GOSSIP_E_DECRYPT);
    buf[4]--;
    /* scratch too small */
    assert_int_equal(nd_gossip_stream_parse(buf, sn, &kr, scratch, 8, &m), ND_GOSSIP_E_SPACE);
    /* a length over the stream limit */
    assert_int_equal(
        nd_gossip_stream_parse(BYTES(10, 0x7f, 0, 0, 0), &kr, scratch, sizeof scratch, &m),
        ND_GOSSIP_E_LIMIT);
    nd_keyring_wipe(&kr);
}

static void test_pushpull_encode(void **state)
{
    (void)state;
    size_t n;
    struct nd_gossip_node_state s = {.name = B("n"), .addr = BA(ip6), .state = 4};
    assert_int_equal(nd_gossip_pushpull_encode(false, &s, 1, B(""), buf, sizeof buf, &n),
                     ND_GOSSIP_E_VALUE);
    s.state = ND_GOSSIP_STATE_DEAD;
    assert_int_equal(nd_gossip_pushpull_encode(false, &s, 1, B(""), buf, sizeof buf, &n), 0);
    uint8_t scratch[64];
    struct nd_gossip_stream_msg m;
    assert_int_equal(nd_gossip_stream_parse(buf, n, NULL, scratch, sizeof scratch, &m), 0);
    assert_false(m.pp.join);
    assert_int_equal(m.pp.nodes, 1);
    struct nd_gbytes rest = {m.body.p + m.states_off, m.states_len};
    struct nd_gossip_node_state d;
    assert_int_equal(nd_gossip_node_state_decode(&rest, &d), 0);
    assert_int_equal(d.state, ND_GOSSIP_STATE_DEAD);
    assert_true(d.has_vsn); /* all six bytes are always sent */
    assert_int_equal(d.addr.len, 16);
    /* a node state with State 9 is refused on receive too */
    uint8_t *st = memchr(buf, 0xa5, n);
    while (st && memcmp(st, "\xa5State", 6) != 0)
        st = memchr(st + 1, 0xa5, n - (size_t)(st + 1 - buf));
    assert_non_null(st);
    st[6] = 9;
    assert_int_equal(nd_gossip_stream_parse(buf, n, NULL, scratch, sizeof scratch, &m),
                     ND_GOSSIP_E_VALUE);
}

static void write_seed(const char *name, const uint8_t *p, size_t n)
{
    const char *dir = getenv("GOSSIP_CORPUS_DIR");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* What a nodus node gossips: an alive with serf tags and a serf join intent in a user message,
 * compound, with a checksum, plain and encrypted. With GOSSIP_CORPUS_DIR set, the packets are
 * also written there (the c_* seeds of tests/fuzz/corpus/gossip/). */
static void test_realistic_packet(void **state)
{
    (void)state;
    struct nd_serf_tag tags[2] = {{B("role"), B("nodus")}, {B("svc.reviews"), B("9080,v1")}};
    uint8_t meta[ND_GOSSIP_META_MAX], a[256], u[256], comp[512], pkt[600], enc[700], plain[700];
    size_t ml, al, ul, cl, pl, el, n;
    assert_int_equal(nd_serf_tags_encode(tags, 2, meta, sizeof meta, &ml), 0);
    struct nd_gossip_msg alive = {.type = ND_GOSSIP_ALIVE,
                                  .u.alive = {.incarnation = 2,
                                              .node = B("edge-1"),
                                              .addr = BA(ip4),
                                              .port = 7946,
                                              .meta = {meta, (uint32_t)ml}}};
    memcpy(alive.u.alive.vsn, vsn, 6);
    assert_int_equal(nd_gossip_encode(&alive, a, sizeof a, &al), 0);
    struct nd_serf_msg join = {.type = ND_SERF_JOIN, .u.join = {.ltime = 4, .node = B("edge-1")}};
    u[0] = ND_GOSSIP_USER;
    assert_int_equal(nd_serf_encode(&join, u + 1, sizeof u - 1, &ul), 0);
    struct nd_gbytes parts[2] = {{a, (uint32_t)al}, {u, (uint32_t)ul + 1}};
    assert_int_equal(nd_gossip_compound_encode(parts, 2, comp, sizeof comp, &cl), 0);
    assert_int_equal(nd_gossip_crc_wrap(comp, cl, pkt, sizeof pkt, &pl), 0);
    struct seen s = {0};
    uint8_t scratch[256];
    assert_int_equal(nd_gossip_packet_walk(pkt, pl, scratch, sizeof scratch, on_msg, &s), 0);
    assert_int_equal(s.n, 2);
    write_seed("c_alive_join_crc", pkt, pl);

    struct nd_keyring kr;
    nd_keyring_init(&kr);
    assert_int_equal(nd_keyring_add(&kr, (const uint8_t *)"0123456789abcdef", 16), 0);
    static const uint8_t nonce[12] = {42};
    assert_int_equal(nd_gossip_encrypt(&kr, nonce, pkt, pl, NULL, 0, enc, sizeof enc, &el), 0);
    assert_int_equal(nd_gossip_decrypt(&kr, enc, el, NULL, 0, plain, sizeof plain, &n), 0);
    assert_int_equal(n, pl);
    write_seed("c_alive_join_crc_encrypted", enc, el);

    /* the same as a TCP push/pull with a serf state, compressed and sealed */
    struct nd_gossip_node_state st = {.name = B("edge-1"),
                                      .addr = BA(ip4),
                                      .port = 7946,
                                      .meta = {meta, (uint32_t)ml},
                                      .incarnation = 2};
    memcpy(st.vsn, vsn, 6);
    struct nd_serf_status status[1] = {{B("edge-1"), 4}};
    struct nd_serf_msg spp = {.type = ND_SERF_PUSH_PULL,
                              .u.pp = {.ltime = 5, .nstatus = 1, .status = status}};
    assert_int_equal(nd_serf_encode(&spp, u, sizeof u, &ul), 0);
    assert_int_equal(nd_gossip_pushpull_encode(true, &st, 1, (struct nd_gbytes){u, (uint32_t)ul},
                                               pkt, sizeof pkt, &pl),
                     0);
    write_seed("c_push_pull_join", pkt, pl);
    assert_int_equal(nd_gossip_compress_encode(pkt, pl, comp, sizeof comp, &cl), 0);
    assert_int_equal(nd_gossip_stream_seal(&kr, nonce, comp, cl, enc, sizeof enc, &el), 0);
    struct nd_gossip_stream_msg m;
    uint8_t big[2048];
    assert_int_equal(nd_gossip_stream_parse(enc, el, &kr, big, sizeof big, &m), 0);
    assert_int_equal(m.type, ND_GOSSIP_PUSH_PULL);
    assert_int_equal(m.pp.nodes, 1);
    assert_int_equal(m.user.len, ul);
    write_seed("c_push_pull_join_sealed", enc, el);
    nd_keyring_wipe(&kr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_decode_tolerates),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_compound),
        cmocka_unit_test(test_crc),
        cmocka_unit_test(test_lzw),
        cmocka_unit_test(test_compress_msg),
        cmocka_unit_test(test_packet_walk),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_pushpull_encode),
        cmocka_unit_test(test_realistic_packet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
