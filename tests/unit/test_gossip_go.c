/*
 * Byte-exact interoperability with Go: tests/gossip-vectors/vectors.inc holds messages encoded
 * by Debian's memberlist 0.2.2 and serf 0.9.4 themselves (tests/gossip-vectors/gen.sh). Each
 * vector is encoded here from the same values and compared byte for byte, decoded and checked
 * field by field; Go's encrypted blobs are decrypted, and re-encrypted with Go's nonce to the
 * same bytes; Go's LZW output for large inputs is matched by length and CRC.
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

#include "../../gossip/keyring.h"
#include "../../gossip/lzw.h"
#include "../../gossip/serf.h"
#include "../../gossip/wire.h"

struct vec {
    const char *name, *hex;
};

static const struct vec vecs[] = {
#define VEC(n, h) {#n, h},
#define LZW(...)
#include "../gossip-vectors/vectors.inc"
#undef VEC
#undef LZW
};

struct lzw_vec {
    size_t n;
    uint32_t seed;
    bool text;
    size_t len;
    uint32_t crc;
};

static const struct lzw_vec lzw_vecs[] = {
#define VEC(n, h)
#define LZW(n, seed, text, len, crc) {n, seed, text, len, crc},
#include "../gossip-vectors/vectors.inc"
#undef VEC
#undef LZW
};

static const uint8_t key16[] = "0123456789abcdef";
static const uint8_t key32[] = "0123456789abcdef0123456789abcdef";
static const uint8_t vsn[6] = {1, 5, 2, 2, 5, 5};
static const uint8_t meta_role_web[] = {0xff, 0x81, 0xa4, 'r', 'o', 'l', 'e', 0xa3, 'w', 'e', 'b'};

#define B(lit) ((struct nd_gbytes){(const uint8_t *)(lit), sizeof(lit) - 1})
#define BA(arr) ((struct nd_gbytes){(arr), sizeof(arr)})

/* The vector's bytes (static storage, valid until the next call with the same slot). */
static struct nd_gbytes go(const char *name)
{
    static uint8_t store[8][200000];
    static unsigned slot;
    for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
        if (strcmp(vecs[i].name, name) != 0)
            continue;
        uint8_t *b = store[slot++ % 8];
        size_t n = strlen(vecs[i].hex) / 2;
        assert_true(n <= sizeof store[0]);
        for (size_t j = 0; j < n; j++) {
            unsigned x;
            sscanf(vecs[i].hex + 2 * j, "%2x", &x);
            b[j] = (uint8_t)x;
        }
        return (struct nd_gbytes){b, (uint32_t)n};
    }
    return (struct nd_gbytes){NULL, 0};
}

static void assert_bytes(const uint8_t *got, size_t n, struct nd_gbytes want, const char *what)
{
    if (n != want.len || memcmp(got, want.p, n) != 0) {
        print_error("%s: %zu bytes, want %u\n got  ", what, n, want.len);
        for (size_t i = 0; i < n; i++)
            print_error("%02x", got[i]);
        print_error("\n want ");
        for (size_t i = 0; i < want.len; i++)
            print_error("%02x", want.p[i]);
        print_error("\n");
        fail();
    }
}

static void assert_gb(struct nd_gbytes got, const void *want, size_t n)
{
    assert_int_equal(got.len, n);
    if (n)
        assert_memory_equal(got.p, want, n);
}
#define assert_gbs(got, lit) assert_gb(got, lit, strlen(lit))

static uint8_t out[200000];

/* Encodes m, compares with Go's vector, decodes Go's vector into *dec. */
static void check_msg(const char *name, const struct nd_gossip_msg *m, struct nd_gossip_msg *dec)
{
    size_t n;
    struct nd_gbytes want = go(name);
    assert_non_null(want.p);
    assert_int_equal(nd_gossip_encode(m, out, sizeof out, &n), 0);
    assert_bytes(out, n, want, name);
    assert_int_equal(nd_gossip_decode(want.p, want.len, dec), 0);
    assert_int_equal(dec->type, m->type);
    /* what we decoded encodes back to the same bytes */
    assert_int_equal(nd_gossip_encode(dec, out, sizeof out, &n), 0);
    assert_bytes(out, n, want, name);
}

static void test_ping(void **state)
{
    (void)state;
    struct nd_gossip_msg m = {.type = ND_GOSSIP_PING}, d;
    m.u.ping.seq_no = 1;
    m.u.ping.node = B("node-b");
    check_msg("ping_min", &m, &d);
    assert_int_equal(d.u.ping.seq_no, 1);
    assert_gbs(d.u.ping.node, "node-b");
    assert_int_equal(d.u.ping.source_addr.len, 0);

    static const uint8_t lo[4] = {127, 0, 0, 1};
    m.u.ping = (struct nd_gossip_ping){.seq_no = 300,
                                       .node = B("b"),
                                       .source_addr = BA(lo),
                                       .source_port = 7946,
                                       .source_node = B("a")};
    check_msg("ping_full", &m, &d);
    assert_int_equal(d.u.ping.seq_no, 300);
    assert_gb(d.u.ping.source_addr, lo, 4);
    assert_int_equal(d.u.ping.source_port, 7946);
    assert_gbs(d.u.ping.source_node, "a");
}

static void test_indirect_ping(void **state)
{
    (void)state;
    static const uint8_t t[4] = {10, 0, 0, 2}, v6[16] = {[15] = 1};
    struct nd_gossip_msg m = {.type = ND_GOSSIP_INDIRECT_PING}, d;
    m.u.indirect_ping = (struct nd_gossip_indirect_ping){.seq_no = 70000,
                                                         .target = BA(t),
                                                         .port = 7946,
                                                         .node = B("c"),
                                                         .nack = true,
                                                         .source_addr = BA(v6),
                                                         .source_port = 7947,
                                                         .source_node = B("a")};
    check_msg("indirect_ping", &m, &d);
    assert_int_equal(d.u.indirect_ping.seq_no, 70000);
    assert_true(d.u.indirect_ping.nack);
    assert_gb(d.u.indirect_ping.target, t, 4);
    assert_gb(d.u.indirect_ping.source_addr, v6, 16);
    assert_int_equal(d.u.indirect_ping.source_port, 7947);
}

static void test_ack_nack_err(void **state)
{
    (void)state;
    struct nd_gossip_msg m = {.type = ND_GOSSIP_ACK}, d;
    m.u.ack.seq_no = 5; /* payload NULL: Go's nil slice */
    check_msg("ack_nil", &m, &d);
    assert_int_equal(d.u.ack.seq_no, 5);
    assert_int_equal(d.u.ack.payload.len, 0);
    m.u.ack = (struct nd_gossip_ack){.seq_no = 4294967295u, .payload = B("\1\2\3")};
    check_msg("ack_payload", &m, &d);
    assert_int_equal(d.u.ack.seq_no, 4294967295u);
    assert_gb(d.u.ack.payload, "\1\2\3", 3);

    m = (struct nd_gossip_msg){.type = ND_GOSSIP_NACK, .u.nack.seq_no = 9};
    check_msg("nack", &m, &d);
    assert_int_equal(d.u.nack.seq_no, 9);

    m = (struct nd_gossip_msg){.type = ND_GOSSIP_ERR, .u.err.error = B("boom")};
    check_msg("err", &m, &d);
    assert_gbs(d.u.err.error, "boom");
}

static void test_suspect_dead(void **state)
{
    (void)state;
    struct nd_gossip_msg m = {.type = ND_GOSSIP_SUSPECT}, d;
    m.u.suspect = (struct nd_gossip_suspect){.incarnation = 3, .node = B("n"), .from = B("m")};
    check_msg("suspect", &m, &d);
    assert_int_equal(d.u.suspect.incarnation, 3);
    assert_gbs(d.u.suspect.from, "m");
    m = (struct nd_gossip_msg){.type = ND_GOSSIP_DEAD};
    m.u.dead = (struct nd_gossip_suspect){.incarnation = 8, .node = B("n"), .from = B("n")};
    check_msg("dead", &m, &d);
    assert_int_equal(d.u.dead.incarnation, 8);
    assert_gbs(d.u.dead.node, "n");
}

/* The deterministic bytes Go's lcg() makes. */
static void lcg(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t)(x >> 16);
    }
}

static void test_alive(void **state)
{
    (void)state;
    static const uint8_t a4[4] = {192, 168, 1, 10};
    static const uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
    struct nd_gossip_msg m = {.type = ND_GOSSIP_ALIVE}, d;
    m.u.alive = (struct nd_gossip_alive){.incarnation = 7,
                                         .node = B("nodus-1"),
                                         .addr = BA(a4),
                                         .port = 7946,
                                         .meta = BA(meta_role_web)};
    memcpy(m.u.alive.vsn, vsn, 6);
    check_msg("alive_v4", &m, &d);
    assert_true(d.u.alive.has_vsn);
    assert_memory_equal(d.u.alive.vsn, vsn, 6);
    assert_gb(d.u.alive.meta, meta_role_web, sizeof meta_role_web);
    assert_gb(d.u.alive.addr, a4, 4);

    /* a 39-byte name and 300-byte Meta: Go writes str16 (0xda), not str8 */
    static uint8_t meta[300];
    lcg(meta, sizeof meta, 7);
    m.u.alive = (struct nd_gossip_alive){.incarnation = 200,
                                         .node = B("a-node-name-of-forty-characters-1234567"),
                                         .addr = BA(a6),
                                         .port = 65535,
                                         .meta = BA(meta)};
    memcpy(m.u.alive.vsn, vsn, 6);
    check_msg("alive_v6_long", &m, &d);
    assert_int_equal(d.u.alive.port, 65535);
    assert_gb(d.u.alive.meta, meta, sizeof meta);
}

static struct nd_gossip_node_state states[2];

static void setup_states(void)
{
    static const uint8_t a[4] = {10, 0, 0, 1}, b[4] = {10, 0, 0, 2};
    states[0] = (struct nd_gossip_node_state){.name = B("a"),
                                              .addr = BA(a),
                                              .port = 7946,
                                              .meta = BA(meta_role_web),
                                              .incarnation = 1,
                                              .state = ND_GOSSIP_STATE_ALIVE};
    states[1] = (struct nd_gossip_node_state){.name = B("b"),
                                              .addr = BA(b),
                                              .port = 7946,
                                              .incarnation = 9,
                                              .state = ND_GOSSIP_STATE_LEFT};
    memcpy(states[0].vsn, vsn, 6);
    memcpy(states[1].vsn, vsn, 6);
}

static void check_pushpull(const struct nd_gossip_stream_msg *m)
{
    assert_int_equal(m->type, ND_GOSSIP_PUSH_PULL);
    assert_true(m->pp.join);
    assert_int_equal(m->pp.nodes, 2);
    assert_gb(m->user, "\x02\x80", 2);
    struct nd_gbytes rest = {m->body.p + m->states_off, m->states_len};
    for (int i = 0; i < 2; i++) {
        struct nd_gossip_node_state s;
        assert_int_equal(nd_gossip_node_state_decode(&rest, &s), 0);
        assert_gb(s.name, states[i].name.p, states[i].name.len);
        assert_gb(s.addr, states[i].addr.p, 4);
        assert_gb(s.meta, states[i].meta.p, states[i].meta.len);
        assert_int_equal(s.incarnation, states[i].incarnation);
        assert_int_equal(s.state, states[i].state);
        assert_true(s.has_vsn);
    }
    assert_int_equal(rest.len, 0);
}

static void test_push_pull(void **state)
{
    (void)state;
    setup_states();
    size_t n;
    struct nd_gbytes want = go("push_pull");
    assert_int_equal(nd_gossip_pushpull_encode(true, states, 2, B("\x02\x80"), out, sizeof out, &n),
                     0);
    assert_bytes(out, n, want, "push_pull");

    struct nd_gossip_stream_msg m;
    uint8_t scratch[4096];
    assert_int_equal(nd_gossip_stream_parse(want.p, want.len, NULL, scratch, sizeof scratch, &m),
                     0);
    assert_int_equal(m.consumed, want.len);
    assert_false(m.encrypted || m.compressed);
    check_pushpull(&m);
    /* every proper prefix asks for more */
    for (size_t k = 0; k < want.len; k++)
        assert_int_equal(nd_gossip_stream_parse(want.p, k, NULL, scratch, sizeof scratch, &m),
                         ND_GOSSIP_E_TRUNC);

    want = go("user_stream");
    assert_int_equal(nd_gossip_user_stream_encode(B("\1\2\3"), out, sizeof out, &n), 0);
    assert_bytes(out, n, want, "user_stream");
    assert_int_equal(nd_gossip_stream_parse(want.p, want.len, NULL, scratch, sizeof scratch, &m),
                     0);
    assert_int_equal(m.type, ND_GOSSIP_USER);
    assert_gb(m.user, "\1\2\3", 3);
}

static void test_framing(void **state)
{
    (void)state;
    size_t n;
    struct nd_gbytes ping = go("ping_min"), ack = go("ack_nil");
    struct nd_gbytes parts[2] = {ping, ack}, split[255];
    assert_int_equal(nd_gossip_compound_encode(parts, 2, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("compound"), "compound");
    assert_int_equal(nd_gossip_compound_split(out, n, split, 255, &n), 0);
    assert_int_equal(n, 2);
    assert_gb(split[1], ack.p, ack.len);

    assert_int_equal(nd_gossip_crc_wrap(ping.p, ping.len, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("has_crc"), "has_crc");

    assert_int_equal(nd_gossip_compress_encode((const uint8_t *)"hello", 5, out, sizeof out, &n),
                     0);
    assert_bytes(out, n, go("compress_hello"), "compress_hello");
    /* the vector of docs/gossip-wire.md */
    assert_memory_equal(out + n - 8, "\x00\xd1\x94\x61\xc3\xe6\x4d\x40", 8);

    struct nd_gbytes pp = go("push_pull");
    assert_int_equal(nd_gossip_compress_encode(pp.p, pp.len, out, sizeof out, &n), 0);
    struct nd_gbytes want = go("compress_push_pull");
    assert_bytes(out, n, want, "compress_push_pull");
    uint8_t dec[4096];
    size_t dn, used;
    assert_int_equal(nd_gossip_compress_decode(want.p, want.len, dec, sizeof dec, &dn, &used), 0);
    assert_int_equal(used, want.len);
    assert_bytes(dec, dn, pp, "decompressed push_pull");
    /* a bound one byte short of the output refuses it */
    assert_int_equal(nd_gossip_compress_decode(want.p, want.len, dec, dn - 1, &dn, &used),
                     ND_GOSSIP_E_LIMIT);
}

static void test_lzw_large(void **state)
{
    (void)state;
    static uint8_t in[100000], back[100000];
    for (size_t i = 0; i < sizeof lzw_vecs / sizeof lzw_vecs[0]; i++) {
        const struct lzw_vec *v = &lzw_vecs[i];
        assert_true(v->n <= sizeof in);
        lcg(in, v->n, v->seed);
        if (v->text)
            for (size_t j = 0; j < v->n; j++)
                in[j] = (uint8_t) "abcdefgh"[in[j] % 8];
        size_t n, bn, used;
        assert_int_equal(nd_gossip_compress_encode(in, v->n, out, sizeof out, &n), 0);
        assert_int_equal(n, v->len);
        assert_int_equal(nd_gossip_crc32(out, n), v->crc);
        assert_int_equal(nd_gossip_compress_decode(out, n, back, sizeof back, &bn, &used), 0);
        assert_int_equal(bn, v->n);
        assert_memory_equal(back, in, v->n);
    }
}

static void test_encryption(void **state)
{
    (void)state;
    struct nd_keyring kr;
    nd_keyring_init(&kr);
    assert_int_equal(nd_keyring_add(&kr, key16, 16), 0);
    struct nd_gbytes ping = go("ping_min");
    uint8_t plain[4096];
    size_t n;

    /* UDP, version 1: decrypts; our encryption with Go's nonce gives Go's bytes */
    struct nd_gbytes blob = go("encrypt_udp_k16");
    assert_int_equal(nd_gossip_decrypt(&kr, blob.p, blob.len, NULL, 0, plain, sizeof plain, &n), 0);
    assert_bytes(plain, n, ping, "decrypted udp");
    assert_int_equal(
        nd_gossip_encrypt(&kr, blob.p + 1, ping.p, ping.len, NULL, 0, out, sizeof out, &n), 0);
    assert_bytes(out, n, blob, "encrypt_udp_k16");

    /* version 0 (padded) */
    blob = go("encrypt_v0_k16");
    assert_int_equal(nd_gossip_decrypt(&kr, blob.p, blob.len, NULL, 0, plain, sizeof plain, &n), 0);
    assert_bytes(plain, n, ping, "decrypted v0");

    /* TCP with a 32-byte key, header as additional data, compressed push/pull inside: found
     * with the second key of the ring */
    assert_int_equal(nd_keyring_add(&kr, key32, 32), 0);
    blob = go("encrypt_tcp_k32");
    uint8_t scratch[8192];
    struct nd_gossip_stream_msg m;
    assert_int_equal(nd_gossip_stream_parse(blob.p, blob.len, &kr, scratch, sizeof scratch, &m), 0);
    assert_true(m.encrypted && m.compressed);
    assert_int_equal(m.consumed, blob.len);
    setup_states();
    check_pushpull(&m);
    for (size_t k = 0; k < blob.len; k++)
        assert_int_equal(nd_gossip_stream_parse(blob.p, k, &kr, scratch, sizeof scratch, &m),
                         ND_GOSSIP_E_TRUNC);
    /* sealing the same plaintext with Go's nonce under the primary 32-byte key gives Go's bytes */
    assert_int_equal(nd_keyring_use(&kr, key32, 32), 0);
    struct nd_gbytes comp = go("compress_push_pull");
    assert_int_equal(nd_gossip_stream_seal(&kr, blob.p + 6, comp.p, comp.len, out, sizeof out, &n),
                     0);
    assert_bytes(out, n, blob, "encrypt_tcp_k32");

    /* what we seal with key16 and a fixed nonce, memberlist's decryptPayload opened (gen.sh
     * got these bytes from GOSSIP_PRINT_SEALED=1 of this test) */
    assert_int_equal(nd_keyring_use(&kr, key16, 16), 0);
    static const uint8_t nonce[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    assert_int_equal(nd_gossip_stream_seal(&kr, nonce, comp.p, comp.len, out, sizeof out, &n), 0);
    if (getenv("GOSSIP_PRINT_SEALED")) {
        for (size_t i = 0; i < n; i++)
            printf("%02x", out[i]);
        printf("\n");
    }
    struct nd_gbytes opened = go("c_sealed_plain");
    assert_non_null(opened.p);
    assert_bytes(comp.p, comp.len, opened, "C-sealed stream as opened by Go");
    nd_keyring_wipe(&kr);
}

static void test_serf_messages(void **state)
{
    (void)state;
    size_t n;
    struct nd_serf_msg m = {.type = ND_SERF_JOIN}, d;
    m.u.join = (struct nd_serf_join){.ltime = 10, .node = B("a")};
    assert_int_equal(nd_serf_encode(&m, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("serf_join"), "serf_join");

    m = (struct nd_serf_msg){.type = ND_SERF_LEAVE};
    m.u.leave = (struct nd_serf_leave){.ltime = 11, .node = B("a"), .prune = true};
    assert_int_equal(nd_serf_encode(&m, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("serf_leave"), "serf_leave");

    m = (struct nd_serf_msg){.type = ND_SERF_USER_EVENT};
    m.u.event = (struct nd_serf_user_event){
        .ltime = 12, .name = B("deploy"), .payload = B("v1"), .cc = true};
    assert_int_equal(nd_serf_encode(&m, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("serf_event"), "serf_event");
    struct nd_gbytes v = go("serf_event");
    assert_int_equal(nd_serf_decode(v.p, v.len, &d), 0);
    assert_int_equal(d.u.event.ltime, 12);
    assert_gbs(d.u.event.name, "deploy");
    assert_gbs(d.u.event.payload, "v1");
    assert_true(d.u.event.cc);

    m = (struct nd_serf_msg){.type = ND_SERF_QUERY_RESPONSE};
    m.u.response = (struct nd_serf_query_response){
        .ltime = 13, .id = 99, .from = B("b"), .flags = 1, .payload = B("pong")};
    assert_int_equal(nd_serf_encode(&m, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("serf_query_response"), "serf_query_response");

    v = go("serf_query");
    assert_int_equal(nd_serf_decode(v.p, v.len, &d), 0);
    assert_int_equal(d.type, ND_SERF_QUERY);
    assert_int_equal(d.u.query.ltime, 13);
    assert_int_equal(d.u.query.id, 99);
    assert_int_equal(d.u.query.port, 7946);
    assert_int_equal(d.u.query.nfilters, 1);
    assert_int_equal(d.u.query.flags, ND_SERF_QUERY_FLAG_ACK);
    assert_int_equal(d.u.query.relay_factor, 2);
    assert_int_equal(d.u.query.timeout_ns, 5000000000LL);
    assert_gbs(d.u.query.name, "ping");
    assert_int_equal(d.u.query.payload.len, 0);

    v = go("serf_push_pull");
    assert_int_equal(nd_serf_decode(v.p, v.len, &d), 0);
    assert_int_equal(d.u.pp.ltime, 20);
    assert_int_equal(d.u.pp.event_ltime, 3);
    assert_int_equal(d.u.pp.query_ltime, 4);
    assert_int_equal(d.u.pp.nevents, 2);
    assert_int_equal(d.u.pp.nstatus, 1);
    struct nd_serf_status st;
    struct nd_gbytes rest = d.u.pp.status_ltimes;
    assert_int_equal(nd_serf_status_next(&rest, &st), 0);
    assert_gbs(st.name, "a");
    assert_int_equal(st.ltime, 5);
    assert_int_equal(rest.len, 0);
    assert_int_equal(d.u.pp.nleft, 1);
    struct nd_gbytes name;
    rest = d.u.pp.left_members;
    assert_int_equal(nd_serf_left_next(&rest, &name), 0);
    assert_gbs(name, "x");

    /* our push/pull state (no events) decodes back */
    struct nd_serf_status sts[1] = {{B("a"), 5}};
    struct nd_gbytes left[1] = {B("x")};
    m = (struct nd_serf_msg){.type = ND_SERF_PUSH_PULL};
    m.u.pp = (struct nd_serf_pushpull){.ltime = 20,
                                       .event_ltime = 3,
                                       .query_ltime = 4,
                                       .nstatus = 1,
                                       .status = sts,
                                       .nleft = 1,
                                       .left = left};
    assert_int_equal(nd_serf_encode(&m, out, sizeof out, &n), 0);
    assert_int_equal(nd_serf_decode(out, n, &d), 0);
    assert_int_equal(d.u.pp.nstatus, 1);
    assert_int_equal(d.u.pp.nevents, 0);

    /* Go's events, a nil slot first: the group iterator gives the nil as an empty group */
    v = go("serf_push_pull");
    assert_int_equal(nd_serf_decode(v.p, v.len, &d), 0);
    struct nd_serf_event_group g;
    struct nd_serf_event_item it;
    rest = d.u.pp.events;
    assert_int_equal(nd_serf_event_group_next(&rest, &g), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(nd_serf_event_group_next(&rest, &g), 0);
    assert_int_equal(g.ltime, 2);
    assert_int_equal(g.n, 1);
    assert_int_equal(rest.len, 0);
    rest = g.raw;
    assert_int_equal(nd_serf_event_item_next(&rest, &it), 0);
    assert_gbs(it.name, "deploy");
    assert_gbs(it.payload, "v1");
    assert_int_equal(rest.len, 0);

    /* our push/pull with events: byte for byte what serf's encodeMessage writes */
    struct nd_serf_event_item e2[2] = {{B("deploy"), B("v1")}, {B("x"), {NULL, 0}}};
    struct nd_serf_event_item e8[1] = {{B("nodus:rl:api"), B("1 2 3")}};
    struct nd_serf_event_group groups[2] = {{.ltime = 2, .n = 2, .ev = e2},
                                            {.ltime = 8, .n = 1, .ev = e8}};
    m = (struct nd_serf_msg){.type = ND_SERF_PUSH_PULL};
    m.u.pp = (struct nd_serf_pushpull){.ltime = 20,
                                       .event_ltime = 9,
                                       .query_ltime = 4,
                                       .nstatus = 1,
                                       .status = sts,
                                       .groups = groups,
                                       .ngroups = 2};
    assert_int_equal(nd_serf_encode(&m, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("serf_push_pull_events"), "serf_push_pull_events");
    assert_int_equal(nd_serf_decode(out, n, &d), 0);
    assert_int_equal(d.u.pp.nevents, 2);
    assert_int_equal(d.u.pp.event_ltime, 9);
}

/* serf queries and what answers them: encoded byte for byte as Go, Go's bytes decoded */
static void test_serf_queries(void **state)
{
    uint8_t fb[2][128];
    struct nd_serf_msg m, d;
    struct nd_serf_filter f;
    struct nd_gbytes names[2] = {B("a"), B("b")}, filt[2], v, rest;
    size_t n, fl[2];

    (void)state;
    m = (struct nd_serf_msg){.type = ND_SERF_QUERY};
    m.u.query = (struct nd_serf_query){.ltime = 7,
                                       .id = 123456789,
                                       .addr = B("\x7f\0\0\1"),
                                       .port = 7946,
                                       .source_node = B("nodus-1"),
                                       .flags = ND_SERF_QUERY_FLAG_ACK,
                                       .timeout_ns = 2000000000,
                                       .name = B("uptime"),
                                       .payload = B("now")};
    assert_int_equal(nd_serf_encode(&m, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("serf_query_plain"), "serf_query_plain");

    f = (struct nd_serf_filter){.type = ND_SERF_FILTER_NODE, .nnodes = 2, .nodes_list = names};
    assert_int_equal(nd_serf_filter_encode(&f, fb[0], sizeof fb[0], &fl[0]), 0);
    assert_bytes(fb[0], fl[0], go("serf_filter_nodes"), "serf_filter_nodes");
    f = (struct nd_serf_filter){.type = ND_SERF_FILTER_TAG, .tag = B("role"), .expr = B("^web$")};
    assert_int_equal(nd_serf_filter_encode(&f, fb[1], sizeof fb[1], &fl[1]), 0);
    assert_bytes(fb[1], fl[1], go("serf_filter_tag"), "serf_filter_tag");
    filt[0] = (struct nd_gbytes){fb[0], (uint32_t)fl[0]};
    filt[1] = (struct nd_gbytes){fb[1], (uint32_t)fl[1]};
    m.u.query = (struct nd_serf_query){.ltime = 8,
                                       .id = 5,
                                       .addr = B("\xfd\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x07"),
                                       .port = 7947,
                                       .source_node = B("n"),
                                       .nfilters = 2,
                                       .filter_list = filt,
                                       .flags = ND_SERF_QUERY_FLAG_NO_BROADCAST,
                                       .relay_factor = 3,
                                       .timeout_ns = 1500000000,
                                       .name = B("q")};
    assert_int_equal(nd_serf_encode(&m, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("serf_query_filtered"), "serf_query_filtered");
    v = go("serf_query_filtered");
    assert_int_equal(nd_serf_decode(v.p, v.len, &d), 0);
    assert_int_equal(d.u.query.addr.len, 16);
    assert_int_equal(d.u.query.relay_factor, 3);
    rest = d.u.query.filters;
    assert_int_equal(nd_serf_filter_next(&rest, &f), 0);
    assert_int_equal(f.type, ND_SERF_FILTER_NODE);
    assert_int_equal(f.nnodes, 2);
    assert_int_equal(nd_serf_filter_next(&rest, &f), 0);
    assert_int_equal(f.type, ND_SERF_FILTER_TAG);
    assert_gbs(f.tag, "role");
    assert_gbs(f.expr, "^web$");

    m = (struct nd_serf_msg){.type = ND_SERF_KEY_REQUEST, .u.key_req.key = B("0123456789abcdef")};
    assert_int_equal(nd_serf_encode(&m, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("serf_key_request"), "serf_key_request");
    v = go("serf_key_request_empty"); /* what `serf keys -list` sends */
    assert_int_equal(nd_serf_decode(v.p, v.len, &d), 0);
    assert_int_equal(d.type, ND_SERF_KEY_REQUEST);
    assert_int_equal(d.u.key_req.key.len, 0);

    struct nd_gbytes keys[2] = {B("MDEyMzQ1Njc4OWFiY2RlZg=="), B("ZmVkY2JhOTg3NjU0MzIxMA==")};
    m = (struct nd_serf_msg){.type = ND_SERF_KEY_RESPONSE};
    m.u.key_resp = (struct nd_serf_key_response){
        .result = true, .keys_list = keys, .nkeys = 2, .primary_key = keys[0]};
    assert_int_equal(nd_serf_encode(&m, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("serf_key_response_list"), "serf_key_response_list");
    m.u.key_resp =
        (struct nd_serf_key_response){.message = B("Removing the primary key is not allowed")};
    assert_int_equal(nd_serf_encode(&m, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("serf_key_response_err"), "serf_key_response_err");
    v = go("serf_key_response_list");
    assert_int_equal(nd_serf_decode(v.p, v.len, &d), 0);
    assert_true(d.u.key_resp.result);
    assert_int_equal(d.u.key_resp.nkeys, 2);
    assert_gbs(d.u.key_resp.primary_key, "MDEyMzQ1Njc4OWFiY2RlZg==");

    uint8_t inner[64];
    size_t il;
    m = (struct nd_serf_msg){.type = ND_SERF_QUERY_RESPONSE};
    m.u.response = (struct nd_serf_query_response){
        .ltime = 13, .id = 99, .from = B("b"), .flags = ND_SERF_QUERY_FLAG_ACK};
    assert_int_equal(nd_serf_encode(&m, inner, sizeof inner, &il), 0);
    m = (struct nd_serf_msg){.type = ND_SERF_RELAY};
    m.u.relay = (struct nd_serf_relay){.dest_ip = B("\x0a\0\0\1"),
                                       .dest_port = 7946,
                                       .dest_name = B("a"),
                                       .inner = {inner, (uint32_t)il}};
    assert_int_equal(nd_serf_encode(&m, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("serf_relay"), "serf_relay");
    v = go("serf_relay");
    assert_int_equal(nd_serf_decode(v.p, v.len, &d), 0);
    assert_int_equal(d.u.relay.dest_port, 7946);
    assert_gbs(d.u.relay.dest_name, "a");
    assert_int_equal(d.u.relay.inner.len, il);
    assert_memory_equal(d.u.relay.inner.p, inner, il);

    struct nd_serf_tag tag = {B("role"), B("web")};
    m = (struct nd_serf_msg){.type = ND_SERF_CONFLICT_RESPONSE};
    m.u.conflict = (struct nd_serf_member){.name = B("web-1"),
                                           .addr = B("\x0a\0\0\2"),
                                           .port = 7946,
                                           .tags = &tag,
                                           .ntags = 1,
                                           .status = 1,
                                           .vsn = {1, 5, 2, 2, 5, 4}};
    assert_int_equal(nd_serf_encode(&m, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("serf_conflict"), "serf_conflict");
    m.u.conflict = (struct nd_serf_member){.nil = true};
    assert_int_equal(nd_serf_encode(&m, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("serf_conflict_nil"), "serf_conflict_nil");
    v = go("serf_conflict");
    assert_int_equal(nd_serf_decode(v.p, v.len, &d), 0);
    assert_gbs(d.u.conflict.name, "web-1");
    assert_int_equal(d.u.conflict.ntags, 1);
    assert_int_equal(d.u.conflict.vsn[5], 4);
}

static void test_serf_tags_coord(void **state)
{
    (void)state;
    size_t n;
    struct nd_serf_tag t[8];
    t[0] = (struct nd_serf_tag){B("role"), B("web")};
    assert_int_equal(nd_serf_tags_encode(t, 1, out, sizeof out, &n), 0);
    assert_bytes(out, n, go("serf_tags_one"), "serf_tags_one");

    struct nd_gbytes v = go("serf_tags_three");
    assert_int_equal(nd_serf_tags_decode(v.p, v.len, t, 8, &n), 0);
    assert_int_equal(n, 3);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].key.len == 4 && !memcmp(t[i].key.p, "role", 4))
            assert_gbs(t[i].value, "web"), seen |= 1;
        else if (t[i].key.len == 2 && !memcmp(t[i].key.p, "dc", 2))
            assert_gbs(t[i].value, "eu-1"), seen |= 2;
        else if (t[i].key.len == 11 && !memcmp(t[i].key.p, "svc.reviews", 11))
            assert_gbs(t[i].value, "9080,v1"), seen |= 4;
    }
    assert_int_equal(seen, 7);

    v = go("serf_coord");
    struct nd_serf_coord c;
    assert_int_equal(nd_serf_coord_decode(v.p, v.len, &c), 0);
    assert_int_equal(c.dim, 8);
    assert_true(c.vec[0] == 0.001 && c.vec[7] == -0.5 && c.vec[1] == 0.0);
    assert_true(c.error == 1.5 && c.adjustment == -0.0001 && c.height == 1e-05);
    assert_int_equal(nd_serf_coord_encode(&c, out, sizeof out, &n), 0);
    assert_bytes(out, n, v, "serf_coord");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping),         cmocka_unit_test(test_indirect_ping),
        cmocka_unit_test(test_ack_nack_err), cmocka_unit_test(test_suspect_dead),
        cmocka_unit_test(test_alive),        cmocka_unit_test(test_push_pull),
        cmocka_unit_test(test_framing),      cmocka_unit_test(test_lzw_large),
        cmocka_unit_test(test_encryption),   cmocka_unit_test(test_serf_messages),
        cmocka_unit_test(test_serf_queries), cmocka_unit_test(test_serf_tags_coord),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
