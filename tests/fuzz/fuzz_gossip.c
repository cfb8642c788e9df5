/*
 * libFuzzer target for the gossip wire layer (gossip/). Each input goes through:
 *  - the UDP receive path: nd_gossip_packet_walk (hasCrc, compound, compress), every message
 *    decoded, serf messages in user messages, tags in alive Meta, coordinates in acks;
 *  - the same after AES-GCM: the input decrypted with a fixed keyring (seeds hold real
 *    encrypted packets), and the input encrypted then decrypted (must give it back);
 *  - the TCP path: nd_gossip_stream_parse with and without the keyring, node states and the
 *    serf push/pull state walked;
 *  - tags, serf messages (push/pull states with their recent user events; queries with their
 *    filters; key requests and responses; relays and the message they carry; conflict
 *    responses), coordinates and LZW decoded directly, and an LZW round trip;
 *  - the payload of a user event as the mesh-wide rate limit's report (plugins/ratelimit):
 *    what decodes re-encodes to the same bytes; and as a part of a member's service list
 *    (gossip/catalog.h, "Services beyond Meta"), applied to a member that names it.
 * Besides the sanitizers it checks invariants: results are known codes, every decoded string
 * lies inside the buffer it came from, and whatever decodes re-encodes to bytes that decode to
 * the same re-encoding (a canonical form).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../gossip/catalog.h"
#include "../../gossip/keyring.h"
#include "../../gossip/lzw.h"
#include "../../gossip/serf.h"
#include "../../gossip/wire.h"
#include "../../plugins/ratelimit/share.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

#define SCRATCH (256 * 1024)

static struct nd_keyring kr;
static uint8_t scratch[SCRATCH], enc1[SCRATCH], enc2[SCRATCH];

/* the buffer being decoded, for inside() */
static const uint8_t *cur_lo, *cur_hi;

static bool inside(struct nd_gbytes s)
{
    if (s.len == 0)
        return true;
    return s.p >= cur_lo && s.p + s.len <= cur_hi;
}

static void check_code(int e)
{
    CHECK(e <= 0 && e >= ND_GOSSIP_E_TRAILING);
    CHECK(nd_gossip_strerror(e) != NULL);
}

static void fuzz_tags(const uint8_t *p, size_t len)
{
    struct nd_serf_tag tags[256];
    size_t n;
    int e = nd_serf_tags_decode(p, len, tags, 256, &n);
    check_code(e);
    if (e)
        return;
    CHECK(n <= 256);
    const uint8_t *lo = cur_lo, *hi = cur_hi;
    cur_lo = p, cur_hi = len ? p + len : p;
    if (len && p[0] == ND_SERF_TAG_MAGIC) {
        for (size_t i = 0; i < n; i++)
            CHECK(inside(tags[i].key) && inside(tags[i].value));
    } else {
        CHECK(n == (len > 0) && (n == 0 || tags[0].value.len == len));
    }
    cur_lo = lo, cur_hi = hi;
    /* our encoding of them decodes again (duplicates and the size limit may refuse it) */
    size_t l;
    e = nd_serf_tags_encode(tags, n, enc2, sizeof enc2, &l);
    check_code(e);
    if (!e) {
        CHECK(l <= ND_GOSSIP_META_MAX && enc2[0] == ND_SERF_TAG_MAGIC);
        struct nd_serf_tag again[256];
        size_t m;
        CHECK(nd_serf_tags_decode(enc2, l, again, 256, &m) == 0 && m == n);
    }
}

static void fuzz_serf_in(const uint8_t *p, size_t len);

static void fuzz_serf(const uint8_t *p, size_t len)
{
    const uint8_t *lo = cur_lo, *hi = cur_hi;
    cur_lo = p, cur_hi = len ? p + len : p;
    fuzz_serf_in(p, len);
    cur_lo = lo, cur_hi = hi;
}

static void fuzz_serf_in(const uint8_t *p, size_t len)
{
    struct nd_serf_msg m;
    int e = nd_serf_decode(p, len, &m);
    check_code(e);
    if (e)
        return;
    if (m.type == ND_SERF_PUSH_PULL) {
        struct nd_gbytes rest = m.u.pp.status_ltimes;
        struct nd_serf_status st;
        for (uint32_t i = 0; i < m.u.pp.nstatus; i++)
            if (nd_serf_status_next(&rest, &st))
                break;
        rest = m.u.pp.left_members;
        struct nd_gbytes name;
        for (uint32_t i = 0; i < m.u.pp.nleft; i++)
            if (nd_serf_left_next(&rest, &name))
                break;
        /* the recent events: groups, then each group's events, all inside the input; what
         * decodes re-encodes (as one group each) to what decodes to the same events */
        struct nd_gbytes groups = m.u.pp.events;
        for (uint32_t i = 0; i < m.u.pp.nevents; i++) {
            struct nd_serf_event_group g;
            if (nd_serf_event_group_next(&groups, &g))
                break;
            CHECK(inside(g.raw));
            struct nd_gbytes items = g.raw;
            for (uint32_t k = 0; k < g.n && k < 64; k++) {
                struct nd_serf_event_item it, back;
                if (nd_serf_event_item_next(&items, &it))
                    break;
                CHECK(inside(it.name) && inside(it.payload));
                struct nd_serf_event_group one = {.ltime = g.ltime, .n = 1, .ev = &it};
                struct nd_serf_msg pp = {.type = ND_SERF_PUSH_PULL}, d;
                size_t l;
                pp.u.pp.groups = &one;
                pp.u.pp.ngroups = 1;
                if (nd_serf_encode(&pp, enc1, sizeof enc1, &l))
                    continue;
                CHECK(nd_serf_decode(enc1, l, &d) == 0 && d.u.pp.nevents == 1);
                struct nd_serf_event_group dg;
                CHECK(nd_serf_event_group_next(&d.u.pp.events, &dg) == 0);
                CHECK(dg.ltime == g.ltime && dg.n == 1);
                CHECK(nd_serf_event_item_next(&dg.raw, &back) == 0);
                CHECK(back.name.len == it.name.len && back.payload.len == it.payload.len);
                CHECK(it.name.len == 0 || memcmp(back.name.p, it.name.p, it.name.len) == 0);
                CHECK(it.payload.len == 0 ||
                      memcmp(back.payload.p, it.payload.p, it.payload.len) == 0);
            }
        }
    }
    if (m.type == ND_SERF_QUERY) { /* filters, and the names of node filters */
        struct nd_gbytes rest = m.u.query.filters, name;
        struct nd_serf_filter f;

        CHECK(inside(m.u.query.addr) && inside(m.u.query.name) && inside(m.u.query.payload));
        for (uint32_t i = 0; i < m.u.query.nfilters; i++) {
            if (nd_serf_filter_next(&rest, &f))
                break;
            CHECK(inside(f.tag) && inside(f.expr) && inside(f.nodes));
            for (uint32_t k = 0; f.type == ND_SERF_FILTER_NODE && k < f.nnodes; k++) {
                if (nd_serf_left_next(&f.nodes, &name))
                    break;
                CHECK(inside(name));
            }
        }
    }
    if (m.type == ND_SERF_KEY_RESPONSE) {
        struct nd_gbytes rest = m.u.key_resp.keys, key;

        for (uint32_t i = 0; i < m.u.key_resp.nkeys && !nd_serf_left_next(&rest, &key); i++)
            CHECK(inside(key));
    }
    if (m.type == ND_SERF_RELAY) { /* the message it carries (not a relay again: no recursion) */
        struct nd_serf_msg in;

        CHECK(inside(m.u.relay.dest_ip) && inside(m.u.relay.inner));
        CHECK(m.u.relay.inner.p + m.u.relay.inner.len == p + len);
        check_code(nd_serf_decode(m.u.relay.inner.p, m.u.relay.inner.len, &in));
    }
    if (m.type == ND_SERF_CONFLICT_RESPONSE)
        CHECK(inside(m.u.conflict.name) && inside(m.u.conflict.addr) &&
              inside(m.u.conflict.tags_raw));
    if (m.type == ND_SERF_PUSH_PULL)
        return;
    size_t l, l2;
    e = nd_serf_encode(&m, enc2, sizeof enc2, &l);
    check_code(e);
    if (e)
        return;
    struct nd_serf_msg d;
    CHECK(nd_serf_decode(enc2, l, &d) == 0 && d.type == m.type);
    CHECK(nd_serf_encode(&d, scratch, sizeof scratch, &l2) == 0 && l2 == l &&
          memcmp(scratch, enc2, l) == 0);
}

static void check_msg_inside(const struct nd_gossip_msg *m)
{
    switch (m->type) {
    case ND_GOSSIP_PING:
        CHECK(inside(m->u.ping.node) && inside(m->u.ping.source_addr) &&
              inside(m->u.ping.source_node));
        break;
    case ND_GOSSIP_ALIVE:
        CHECK(inside(m->u.alive.node) && inside(m->u.alive.addr) && inside(m->u.alive.meta));
        CHECK(m->u.alive.meta.len <= ND_GOSSIP_META_MAX);
        CHECK(m->u.alive.addr.len == 4 || m->u.alive.addr.len == 16);
        break;
    case ND_GOSSIP_ACK:
        CHECK(inside(m->u.ack.payload));
        break;
    case ND_GOSSIP_USER:
        CHECK(inside(m->u.user));
        break;
    default:
        break;
    }
}

/* One message of a packet. */
static void on_msg(void *arg, const uint8_t *msg, size_t len)
{
    (void)arg;
    CHECK(len >= 1);
    struct nd_gossip_msg m;
    const uint8_t *lo = cur_lo, *hi = cur_hi;
    cur_lo = msg, cur_hi = msg + len;
    int e = nd_gossip_decode(msg, len, &m);
    check_code(e);
    if (e == 0) {
        check_msg_inside(&m);
        if (m.type == ND_GOSSIP_USER)
            fuzz_serf(m.u.user.p, m.u.user.len);
        if (m.type == ND_GOSSIP_ALIVE)
            fuzz_tags(m.u.alive.meta.p, m.u.alive.meta.len);
        if (m.type == ND_GOSSIP_ACK && m.u.ack.payload.len) {
            struct nd_serf_coord c;
            check_code(nd_serf_coord_decode(m.u.ack.payload.p, m.u.ack.payload.len, &c));
        }
        /* canonical form: encode, decode, encode again gives the same bytes */
        size_t l1, l2;
        e = nd_gossip_encode(&m, enc1, sizeof enc1, &l1);
        check_code(e);
        if (e == 0) {
            struct nd_gossip_msg d;
            CHECK(nd_gossip_decode(enc1, l1, &d) == 0 && d.type == m.type);
            CHECK(nd_gossip_encode(&d, enc2, sizeof enc2, &l2) == 0);
            CHECK(l1 == l2 && memcmp(enc1, enc2, l1) == 0);
        }
    }
    cur_lo = lo, cur_hi = hi;
}

static void fuzz_packet(const uint8_t *p, size_t len)
{
    /* scratch is shared with nested decoders: give the walk its own copy area */
    static uint8_t walk_scratch[SCRATCH];
    cur_lo = p, cur_hi = len ? p + len : p;
    check_code(nd_gossip_packet_walk(p, len, walk_scratch, sizeof walk_scratch, on_msg, NULL));
}

static void fuzz_stream(const uint8_t *p, size_t len, const struct nd_keyring *k)
{
    static uint8_t st_scratch[SCRATCH];
    struct nd_gossip_stream_msg m;
    int e = nd_gossip_stream_parse(p, len, k, st_scratch, sizeof st_scratch, &m);
    check_code(e);
    if (e)
        return;
    CHECK(m.consumed >= 1 && m.consumed <= len);
    if (m.type != ND_GOSSIP_PUSH_PULL)
        return;
    struct nd_gbytes rest = {m.body.p + m.states_off, m.states_len};
    CHECK(m.states_off + m.states_len <= m.body.len);
    for (uint32_t i = 0; i < m.pp.nodes; i++) {
        struct nd_gossip_node_state s;
        CHECK(nd_gossip_node_state_decode(&rest, &s) == 0); /* parse checked them all */
        CHECK(s.meta.len <= ND_GOSSIP_META_MAX && s.state <= ND_GOSSIP_STATE_LEFT);
        fuzz_tags(s.meta.p, s.meta.len);
    }
    CHECK(rest.len == 0);
    if (m.user.len)
        fuzz_serf(m.user.p, m.user.len);
}

static void fuzz_lzw(const uint8_t *p, size_t len)
{
    static uint8_t out[SCRATCH], comp[SCRATCH * 2];
    size_t n, c, back;
    check_code(nd_lzw_decompress(p, len, out, 4096, &n));
    if (len > SCRATCH)
        return;
    CHECK(nd_lzw_compress(p, len, comp, nd_lzw_bound(len), &c) == 0);
    CHECK(nd_lzw_decompress(comp, c, out, sizeof out, &back) == 0);
    CHECK(back == len && memcmp(out, p, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (kr.n == 0) {
        nd_keyring_add(&kr, (const uint8_t *)"0123456789abcdef", 16);
        nd_keyring_add(&kr, (const uint8_t *)"0123456789abcdef0123456789abcdef", 32);
    }
    fuzz_packet(data, size);

    /* an encrypted UDP packet */
    static uint8_t plain[SCRATCH];
    size_t pn;
    int e = nd_gossip_decrypt(&kr, data, size, NULL, 0, plain, sizeof plain, &pn);
    check_code(e);
    if (e == 0)
        fuzz_packet(plain, pn);
    /* our encryption of the input opens to the input */
    if (size + ND_GOSSIP_CRYPT_OVERHEAD <= sizeof enc1) {
        static const uint8_t nonce[12] = {7};
        size_t bn;
        CHECK(nd_gossip_encrypt(&kr, nonce, data, size, NULL, 0, enc1, sizeof enc1, &bn) == 0);
        CHECK(nd_gossip_decrypt(&kr, enc1, bn, NULL, 0, plain, sizeof plain, &pn) == 0);
        CHECK(pn == size && (size == 0 || memcmp(plain, data, size) == 0));
    }

    fuzz_stream(data, size, NULL);
    fuzz_stream(data, size, &kr);
    fuzz_tags(data, size);
    fuzz_serf(data, size);
    if (size) {
        struct nd_serf_coord c;
        check_code(nd_serf_coord_decode(data, size, &c));
        struct nd_gbytes parts[255];
        size_t n;
        check_code(nd_gossip_compound_split(data, size, parts, 255, &n));
    }
    fuzz_lzw(data, size);

    /* a service list part: a one-part list completes at once and is applied */
    struct nd_catalog *cat = nd_catalog_new();
    char who[ND_CAT_PART_MAX + 1];
    if (cat) {
        int r = nd_catalog_list_part(cat, data, size, who, sizeof who);
        CHECK(r >= -1 && r <= 1);
        if (r == 1) {
            char more[32];
            CHECK(strlen(who) >= 1 && cat->nlists == 1);
            snprintf(more, sizeof more, "1:%08x", cat->lists[0].hash);
            struct nd_serf_tag t = {{(const uint8_t *)"svc+", 4},
                                    {(const uint8_t *)more, (uint32_t)strlen(more)}};
            static uint8_t meta[ND_GOSSIP_META_MAX];
            size_t ml;
            CHECK(nd_serf_tags_encode(&t, 1, meta, sizeof meta, &ml) == 0);
            struct nd_swim_member m = {.name = who,
                                       .name_len = strlen(who),
                                       .meta = meta,
                                       .meta_len = (uint32_t)ml,
                                       .state = ND_GOSSIP_STATE_ALIVE,
                                       .status = ND_SWIM_ALIVE,
                                       .addr = {.ip = {127, 0, 0, 1}, .len = 4, .port = 1}};
            nd_catalog_member(cat, &m);
            for (unsigned i = 0; i < cat->nsvcs; i++)
                CHECK(cat->svcs[i].neps <= 1);
        }
        nd_catalog_free(cat);
    }

    struct rl_report rep;
    if (rl_report_decode(data, size, &rep) == 0) {
        char back[RL_REPORT_NODE_MAX + 96];
        CHECK(rep.node_len >= 1 && rep.node_len <= RL_REPORT_NODE_MAX);
        CHECK(rep.node >= (const char *)data &&
              rep.node + rep.node_len == (const char *)data + size);
        size_t n = rl_report_encode(&rep, back, sizeof back);
        CHECK(n == size && memcmp(back, data, size) == 0);
    }
    return 0;
}
