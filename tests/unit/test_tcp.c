/*
 * TCP engine, scripted at the packet level: each test injects hand-built segments into one stack
 * on a virtual clock and checks the exact segments it emits (flags, seq/ack, window, options).
 * The engine is at 10.0.0.1:80; the scripted peer at 10.0.0.2:40000.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../dpdk/tcp.h"
#include "../../dpdk/tcp_hash.h"
#include "../../dpdk/tcp_seq.h"
#include "../../dpdk/tcp_wire.h"

#define LADDR 0x0a000001u
#define RADDR 0x0a000002u
#define LPORT 80
#define RPORT 40000
#define T0 1000000

/* ---- capture of emitted segments ---- */

struct seg {
    struct nd_tcp_hdr h;
    struct nd_tcp_flow flow;
    uint32_t plen;
    uint8_t data[4096];
};

#define MAXOUT 128
static struct seg out[MAXOUT];
static int nout, rd;

static int cap_tx(struct nd_tcp_stack *s, const struct nd_tcp_tx *t, void *udata)
{
    uint8_t buf[ND_TCP_MAX_HDR + 4096];
    struct seg *g;
    uint32_t off = t->hdr_len;
    unsigned i;

    (void)s;
    (void)udata;
    assert_true(nout < MAXOUT);
    assert_true(t->payload_len <= 4096);
    g = &out[nout++];
    memcpy(buf, t->hdr, t->hdr_len);
    for (i = 0; i < t->npiece; i++) {
        memcpy(buf + off, t->piece[i].data, t->piece[i].len);
        off += t->piece[i].len;
    }
    assert_int_equal(off, t->hdr_len + t->payload_len);
    assert_true(nd_tcp_csum_ok(t->flow.laddr, t->flow.raddr, buf, off));
    assert_int_equal(nd_tcp_parse(buf, off, &g->h), 0);
    g->flow = t->flow;
    g->plen = t->payload_len;
    memcpy(g->data, buf + t->hdr_len, t->payload_len);
    return 0;
}

static struct seg *next_seg_at(int line)
{
    if (rd >= nout)
        fail_msg("line %d: expected a segment, none emitted", line);
    return &out[rd++];
}
#define next_seg() next_seg_at(__LINE__)

static void no_seg_at(int line)
{
    if (rd != nout)
        fail_msg("line %d: unexpected segment: flags %#x seq %u (prev%+d) ack %u len %u", line,
                 out[rd].h.flags, out[rd].h.seq, rd ? (int)(out[rd].h.seq - out[rd - 1].h.seq) : 0,
                 out[rd].h.ack, out[rd].plen);
}
#define no_seg() no_seg_at(__LINE__)

#define expect(f, s, a, l) expect_at(__LINE__, f, s, a, l)
static struct seg *expect_at(int line, uint8_t flags, uint32_t seq, uint32_t ack, uint32_t plen)
{
    struct seg *g = next_seg_at(line);

    if (g->h.flags != flags || g->h.seq != seq || g->plen != plen ||
        ((flags & ND_TCP_ACK) && g->h.ack != ack))
        print_error("line %d: got flags %#x seq %u ack %u len %u, want %#x %u %u %u\n", line,
                    g->h.flags, g->h.seq, g->h.ack, g->plen, flags, seq, ack, plen);

    assert_int_equal(g->h.flags, flags);
    assert_int_equal(g->h.seq, seq);
    if (flags & ND_TCP_ACK)
        assert_int_equal(g->h.ack, ack);
    assert_int_equal(g->plen, plen);
    return g;
}

/* ---- packets with reference counts ---- */

struct tpkt {
    int refs;
    uint8_t d[];
};
static long live_pkts;

static void tp_ref(void *p)
{
    ((struct tpkt *)p)->refs++;
}
static void tp_unref(void *p)
{
    struct tpkt *k = p;

    assert_true(k->refs > 0);
    if (!--k->refs) {
        live_pkts--;
        free(k);
    }
}
static const struct nd_tcp_pkt_ops tp_ops = {tp_ref, tp_unref};

/* ---- the stack and the scripted peer ---- */

static struct nd_tcp_stack *S;
static struct nd_tcp_listener *LIS;
static struct nd_tcp_config CFG;
static uint64_t NOW;

struct peer {
    uint16_t port, lport; /* its port, and the engine's */
    uint32_t iss, nxt;    /* peer's sequence numbers */
    uint32_t una;         /* what the engine sent up to (ack to give) */
    uint32_t eiss;        /* engine's ISS */
    bool ts;
    uint32_t tsval, tsecr;
    bool sack;
    uint8_t ws;
};
static struct peer P;

static void cfg_default(void)
{
    nd_tcp_config_defaults(&CFG);
    CFG.have_secret = true;
    memset(CFG.secret, 0x5a, sizeof(CFG.secret));
    CFG.tx = cap_tx;
    CFG.pkt_ops = &tp_ops;
    CFG.now_ms = T0;
    CFG.max_conns = 16;
    CFG.max_segs = 1024;
    CFG.max_chunks = 256;
    CFG.msl = 1000;
}

static void start(void)
{
    int err = 0;

    NOW = CFG.now_ms;
    nout = rd = 0;
    S = nd_tcp_stack_new(&CFG, &err);
    LIS = NULL;
    assert_non_null(S);
    memset(&P, 0, sizeof(P));
    P.port = RPORT;
    P.lport = LPORT;
    P.iss = 0xfffff000u; /* the peer's numbers wrap during the tests */
    P.nxt = P.iss;
    P.ts = true;
    P.tsval = 5000;
    P.sack = true;
    P.ws = 7;
}

static void finish(void)
{
    nd_tcp_stack_free(S);
    S = NULL;
    assert_int_equal(live_pkts, 0);
}

static void advance(uint64_t ms)
{
    NOW += ms;
    nd_tcp_advance(S, NOW);
}

static void inject_opts(uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq, uint32_t ack,
                        uint16_t win, struct nd_tcp_opts *o, const void *data, uint32_t len)
{
    struct tpkt *k = malloc(sizeof(*k) + ND_TCP_MAX_HDR + len);
    struct nd_tcp_ipinfo ip = {RADDR, LADDR, false};
    struct nd_tcp_piece pc = {data, len, NULL};
    unsigned hl;

    assert_non_null(k);
    k->refs = 1;
    live_pkts++;
    hl = nd_tcp_build(k->d, sport, dport, seq, ack, flags, win, o);
    if (len)
        memcpy(k->d + hl, data, len);
    nd_put16(k->d + 16, nd_tcp_csum(RADDR, LADDR, k->d, hl, &pc, len ? 1 : 0));
    nd_tcp_input(S, &ip, k->d, hl + len, k);
    tp_unref(k);
}

/* A segment from the peer with its usual options (timestamps when on, SACK blocks given). */
static void inject_sack(uint8_t flags, uint32_t seq, uint32_t ack, uint16_t win, const void *data,
                        uint32_t len, int nsack, const struct nd_tcp_sack_block *sb)
{
    struct nd_tcp_opts o;

    memset(&o, 0, sizeof(o));
    if (P.ts) {
        o.ts_on = true;
        o.tsval = ++P.tsval;
        o.tsecr = P.tsecr;
    }
    o.nsack = (uint8_t)nsack;
    if (nsack)
        memcpy(o.sack, sb, (size_t)nsack * sizeof(*sb));
    inject_opts(P.port, P.lport, flags, seq, ack, win, &o, data, len);
}

static void inject(uint8_t flags, uint32_t seq, uint32_t ack, uint16_t win, const void *data,
                   uint32_t len)
{
    inject_sack(flags, seq, ack, win, data, len, 0, NULL);
}

/* Remember the engine's timestamp from a segment, to echo it. */
static void saw(const struct seg *g)
{
    if (g->h.has_ts)
        P.tsecr = g->h.tsval;
}

static void send_syn(void)
{
    struct nd_tcp_opts o;

    memset(&o, 0, sizeof(o));
    o.mss_on = true;
    o.mss = 1460;
    o.ws_on = P.ws != 0xff;
    o.ws = P.ws;
    o.sack_perm = P.sack;
    o.ts_on = P.ts;
    o.tsval = ++P.tsval;
    inject_opts(P.port, LPORT, ND_TCP_SYN, P.iss, 0, 65535, &o, NULL, 0);
    P.nxt = P.iss + 1;
}

/* ---- application side ---- */

static unsigned events;
static int nevents;
static struct nd_tcp_conn *accepted;
static int listen_calls;

static void conn_cb(struct nd_tcp_conn *c, unsigned ev, void *udata)
{
    (void)c;
    (void)udata;
    events |= ev;
    nevents++;
}

static void listen_cb(struct nd_tcp_listener *l, void *udata)
{
    (void)udata;
    listen_calls++;
    if (!accepted) {
        accepted = nd_tcp_accept(l);
        if (accepted)
            nd_tcp_set_cb(accepted, conn_cb, NULL);
    }
}

static struct nd_tcp_listener *listen_on(unsigned backlog)
{
    int err = 0;

    LIS = nd_tcp_listen(S, LADDR, LPORT, backlog, listen_cb, NULL, &err);
    assert_non_null(LIS);
    accepted = NULL;
    listen_calls = 0;
    return LIS;
}

/* Passive open with the peer's options; returns the accepted connection. */
static struct nd_tcp_conn *establish(void)
{
    struct seg *g;

    if (!LIS)
        listen_on(8);
    accepted = NULL;
    send_syn();
    g = next_seg();
    assert_int_equal(g->h.flags, ND_TCP_SYN | ND_TCP_ACK);
    assert_int_equal(g->h.ack, P.iss + 1);
    saw(g);
    P.eiss = g->h.seq;
    P.una = g->h.seq + 1;
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, NULL, 0);
    no_seg();
    assert_non_null(accepted);
    assert_int_equal(nd_tcp_state(accepted), ND_TCP_ESTABLISHED);
    events = 0;
    nevents = 0;
    return accepted;
}

static void fill(uint8_t *b, size_t n, uint8_t base)
{
    size_t i;

    for (i = 0; i < n; i++)
        b[i] = (uint8_t)(base + i * 7);
}

/* ---- tests ---- */

/* The checksum of pieces at any offset of the stream: the sum of 16-bit words in network order,
 * byte by byte (RFC 1071), against nd_csum_add(). */
static void test_checksum_pieces(void **state)
{
    uint8_t b[200];

    (void)state;
    for (unsigned i = 0; i < sizeof(b); i++)
        b[i] = (uint8_t)(i * 151 + (i >> 3));
    for (size_t off = 0; off < 4; off++)
        for (size_t len = 0; len + off <= sizeof(b); len++) {
            uint64_t ref = 0x1234;

            for (size_t i = 0; i < len; i++) /* byte i sits at stream offset off + i */
                ref += (off + i) & 1 ? b[i] : (uint32_t)b[i] << 8;
            while (ref >> 16)
                ref = (ref & 0xffff) + (ref >> 16);
            assert_int_equal(nd_csum_fold(nd_csum_add(0x1234, b, len, off)), ref);
        }
}

static void test_seq_wrap(void **state)
{
    (void)state;
    assert_true(nd_seq_lt(0xfffffff0u, 0x10));
    assert_true(nd_seq_gt(0x10, 0xfffffff0u));
    assert_true(nd_seq_in(0x5, 0xfffffff0u, 0x10));
    assert_false(nd_seq_in(0x10, 0xfffffff0u, 0x10));
    assert_int_equal(nd_seq_max(0xfffffff0u, 3), 3);
}

static void test_handshake_passive(void **state)
{
    struct nd_tcp_conn *c;
    struct nd_tcp_info ci;
    struct seg *g;

    (void)state;
    cfg_default();
    start();
    listen_on(4);
    send_syn();
    g = next_seg();
    assert_int_equal(g->h.flags, ND_TCP_SYN | ND_TCP_ACK);
    assert_int_equal(g->h.ack, P.iss + 1);
    assert_int_equal(g->h.win, 65535); /* never scaled on a SYN */
    assert_true(g->h.has_mss);
    assert_int_equal(g->h.mss, 1460);
    assert_true(g->h.has_ws);
    assert_int_equal(g->h.ws, 3); /* 256 KiB >> 3 fits 16 bits */
    assert_true(g->h.sack_perm);
    assert_true(g->h.has_ts);
    assert_int_equal(g->h.tsecr, P.tsval);
    saw(g);
    no_seg();
    assert_int_equal(listen_calls, 0);
    inject(ND_TCP_ACK, P.iss + 1, g->h.seq + 1, 1000, NULL, 0);
    no_seg();
    assert_int_equal(listen_calls, 1);
    c = accepted;
    assert_non_null(c);
    nd_tcp_conn_info(c, &ci);
    assert_int_equal(ci.state, ND_TCP_ESTABLISHED);
    assert_int_equal(ci.snd_wscale, 7);
    assert_int_equal(ci.rcv_wscale, 3);
    assert_int_equal(ci.snd_wnd, 1000 << 7);
    assert_true(ci.sack);
    assert_true(ci.timestamps);
    assert_int_equal(ci.mss, 1460);
    assert_int_equal(ci.flow.rport, RPORT);
    assert_int_equal(nd_tcp_stats(S)->passive_opens, 1);
    finish();
}

/* Active open to 10.0.0.2:443 from port 50000, answered by a SYN-ACK with the peer's options. */
static struct nd_tcp_conn *establish_active(void)
{
    struct nd_tcp_flow f = {LADDR, RADDR, 50000, 443};
    struct nd_tcp_conn *c;
    struct seg *g;
    int err = 0;

    c = nd_tcp_connect(S, &f, conn_cb, NULL, &err);
    assert_non_null(c);
    g = next_seg();
    assert_int_equal(g->h.flags, ND_TCP_SYN);
    assert_int_equal(g->h.sport, 50000);
    assert_int_equal(g->h.dport, 443);
    assert_int_equal(nd_tcp_state(c), ND_TCP_SYN_SENT);
    saw(g);
    P.eiss = g->h.seq;
    P.una = g->h.seq + 1;
    P.port = 443;
    P.lport = 50000;
    return c;
}

static void synack_to(uint16_t lport, uint16_t rport)
{
    struct nd_tcp_opts o;

    memset(&o, 0, sizeof(o));
    o.mss_on = true;
    o.mss = 1400;
    o.ws_on = P.ws != 0xff;
    o.ws = P.ws;
    o.sack_perm = P.sack;
    o.ts_on = P.ts;
    o.tsval = ++P.tsval;
    o.tsecr = P.tsecr;
    inject_opts(rport, lport, ND_TCP_SYN | ND_TCP_ACK, P.iss, P.una, 5000, &o, NULL, 0);
    P.nxt = P.iss + 1;
}

static void test_handshake_active(void **state)
{
    struct nd_tcp_conn *c;
    struct nd_tcp_info ci;
    struct seg *g;

    (void)state;
    cfg_default();
    start();
    c = establish_active();
    g = &out[0];
    assert_true(g->h.has_mss && g->h.has_ws && g->h.sack_perm && g->h.has_ts);
    assert_int_equal(g->h.mss, 1460);
    assert_int_equal(g->h.tsecr, 0);
    assert_int_equal(g->h.win, 65535);
    advance(30);
    synack_to(50000, 443);
    g = expect(ND_TCP_ACK, P.una, P.iss + 1, 0);
    assert_int_equal(g->h.tsecr, P.tsval);
    no_seg();
    assert_true(events & ND_TCP_EV_CONNECTED);
    assert_true(events & ND_TCP_EV_WRITE);
    nd_tcp_conn_info(c, &ci);
    assert_int_equal(ci.state, ND_TCP_ESTABLISHED);
    assert_int_equal(ci.mss, 1400);
    assert_int_equal(ci.snd_wnd, 5000); /* the SYN-ACK's window is not scaled */
    assert_int_equal(ci.snd_wscale, 7);
    assert_int_equal(ci.srtt_us, 30000); /* measured on the SYN */
    /* the peer's wscale is then applied */
    inject(ND_TCP_ACK, P.nxt, P.una, 100, NULL, 0);
    nd_tcp_conn_info(c, &ci);
    assert_int_equal(ci.snd_wnd, 100 << 7);
    /* without options on the SYN-ACK: MSS 536, no scaling, no SACK, no timestamps */
    nd_tcp_abort(c);
    expect(ND_TCP_RST | ND_TCP_ACK, P.una, P.nxt, 0);
    P.ts = false;
    P.sack = false;
    P.ws = 0xff;
    c = establish_active();
    {
        struct nd_tcp_opts o;

        memset(&o, 0, sizeof(o));
        inject_opts(443, 50000, ND_TCP_SYN | ND_TCP_ACK, P.iss, P.una, 5000, &o, NULL, 0);
    }
    g = expect(ND_TCP_ACK, P.una, P.iss + 1, 0);
    assert_false(g->h.has_ts);
    nd_tcp_conn_info(c, &ci);
    assert_int_equal(ci.mss, 536);
    assert_false(ci.sack || ci.timestamps);
    assert_int_equal(ci.snd_wscale, 0);
    assert_int_equal(ci.rcv_wscale, 0);
    nd_tcp_close(c);
    expect(ND_TCP_FIN | ND_TCP_ACK, P.una, P.iss + 1, 0);
    finish();
}

static void test_connect_refused_and_syn_timeout(void **state)
{
    struct nd_tcp_flow f = {LADDR, RADDR, 50001, 443};
    struct nd_tcp_conn *c;
    struct seg *g;
    int err = 0, i;
    uint64_t gap = 1000;

    (void)state;
    cfg_default();
    CFG.syn_retries = 2;
    start();
    c = establish_active();
    inject_opts(443, 50000, ND_TCP_RST | ND_TCP_ACK, 0, P.una, 0, NULL, NULL, 0);
    assert_true(events & ND_TCP_EV_CLOSED);
    assert_int_equal(nd_tcp_error(c), ECONNREFUSED);
    assert_int_equal(nd_tcp_send(c, "x", 1), -ECONNREFUSED);
    nd_tcp_close(c);
    /* SYN retransmitted with backoff, then ETIMEDOUT */
    events = 0;
    c = nd_tcp_connect(S, &f, conn_cb, NULL, &err);
    g = next_seg();
    for (i = 0; i < 2; i++) {
        advance(gap - 1);
        no_seg();
        advance(1);
        expect(ND_TCP_SYN, g->h.seq, 0, 0);
        gap *= 2;
    }
    advance(gap);
    no_seg();
    assert_true(events & ND_TCP_EV_CLOSED);
    assert_int_equal(nd_tcp_error(c), ETIMEDOUT);
    nd_tcp_close(c);
    finish();
}

static void test_data_delayed_ack(void **state)
{
    struct nd_tcp_conn *c;
    uint8_t d[4000], r[4000];
    struct seg *g;

    (void)state;
    cfg_default();
    start();
    c = establish();
    fill(d, sizeof(d), 1);
    /* one small segment: ACK delayed 40 ms */
    inject(ND_TCP_ACK | ND_TCP_PSH, P.nxt, P.una, 1000, d, 100);
    P.nxt += 100;
    assert_true(events & ND_TCP_EV_READ);
    no_seg();
    advance(39);
    no_seg();
    advance(1);
    g = expect(ND_TCP_ACK, P.una, P.nxt, 0);
    assert_int_equal(g->h.tsecr, P.tsval);
    /* two full-sized segments: the second is ACKed at once */
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, d + 100, 1448);
    P.nxt += 1448;
    no_seg();
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, d + 1548, 1448);
    P.nxt += 1448;
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    no_seg();
    assert_int_equal(nd_tcp_readable(c), 2996);
    assert_int_equal(nd_tcp_read(c, r, sizeof(r)), 2996);
    assert_memory_equal(r, d, 2996);
    assert_int_equal(nd_tcp_read(c, r, sizeof(r)), -EAGAIN);
    /* sending: segments of MSS minus the timestamp option, PSH on the last */
    assert_int_equal(nd_tcp_send(c, d, 3000), 3000);
    g = expect(ND_TCP_ACK, P.una, P.nxt, 1448);
    assert_memory_equal(g->data, d, 1448);
    expect(ND_TCP_ACK, P.una + 1448, P.nxt, 1448);
    g = expect(ND_TCP_ACK | ND_TCP_PSH, P.una + 2896, P.nxt, 104);
    assert_memory_equal(g->data, d + 2896, 104);
    saw(g);
    no_seg();
    inject(ND_TCP_ACK, P.nxt, P.una + 3000, 1000, NULL, 0);
    P.una += 3000;
    no_seg();
    finish();
}

/* In a batch (an RX burst), the every-second-segment ACK waits for its end: one ACK for five
 * segments; out-of-order data is still answered at once. */
static void test_batch_ack(void **state)
{
    struct nd_tcp_conn *c;
    uint8_t d[1448];
    struct seg *g;

    (void)state;
    cfg_default();
    start();
    c = establish();
    fill(d, sizeof(d), 3);
    nd_tcp_batch_begin(S);
    for (int i = 0; i < 5; i++) {
        inject(ND_TCP_ACK, P.nxt, P.una, 1000, d, 1448);
        P.nxt += 1448;
    }
    no_seg();
    assert_int_equal(events, 0); /* callbacks wait for the end of the batch too */
    nd_tcp_batch_end(S);
    g = expect(ND_TCP_ACK, P.una, P.nxt, 0);
    saw(g);
    no_seg();
    assert_true(events & ND_TCP_EV_READ);
    /* a hole: the segment after it is answered at once, inside the batch */
    nd_tcp_batch_begin(S);
    inject(ND_TCP_ACK, P.nxt + 1448, P.una, 1000, d, 1448);
    g = expect(ND_TCP_ACK, P.una, P.nxt, 0);
    assert_int_equal(g->h.nsack, 1);
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, d, 1448); /* fills it: at once as well */
    P.nxt += 2896;
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    nd_tcp_batch_end(S);
    no_seg();
    /* an ACK due, then one sent at once (a hole), then due again: still one at the end */
    nd_tcp_batch_begin(S);
    for (int i = 0; i < 2; i++) {
        inject(ND_TCP_ACK, P.nxt, P.una, 1000, d, 1448);
        P.nxt += 1448;
    }
    no_seg();
    inject(ND_TCP_ACK, P.nxt + 1448, P.una, 1000, d, 1448);
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, d, 1448);
    P.nxt += 2896;
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    for (int i = 0; i < 2; i++) {
        inject(ND_TCP_ACK, P.nxt, P.una, 1000, d, 1448);
        P.nxt += 1448;
    }
    no_seg();
    nd_tcp_batch_end(S);
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    no_seg();
    /* outside a batch, every second full segment, as before */
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, d, 1448);
    P.nxt += 1448;
    no_seg();
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, d, 1448);
    P.nxt += 1448;
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    no_seg();
    assert_int_equal(nd_tcp_readable(c), 15 * 1448);
    finish();
}

static void test_sendv_one_segment(void **state)
{
    struct nd_tcp_conn *c;
    struct nd_tcp_piece v[3];
    uint8_t d[3000];
    struct seg *g;

    (void)state;
    cfg_default();
    CFG.sndbuf = 2000;
    start();
    c = establish();
    fill(d, sizeof(d), 5);
    /* a head and a body written together leave in one segment, not one each */
    v[0] = (struct nd_tcp_piece){d, 100, NULL};
    v[1] = (struct nd_tcp_piece){d + 100, 0, NULL};
    v[2] = (struct nd_tcp_piece){d + 100, 300, NULL};
    assert_int_equal(nd_tcp_sendv(c, v, 3), 400);
    g = expect(ND_TCP_ACK | ND_TCP_PSH, P.una, P.nxt, 400);
    assert_memory_equal(g->data, d, 400);
    no_seg();
    /* up to the send buffer, then -EAGAIN (a WRITE event once acknowledged) */
    v[0] = (struct nd_tcp_piece){d + 400, 1000, NULL};
    v[1] = (struct nd_tcp_piece){d + 1400, 1000, NULL};
    assert_int_equal(nd_tcp_sendv(c, v, 2), 1600);
    assert_int_equal(nd_tcp_sendv(c, v, 2), -EAGAIN);
    assert_int_equal(nd_tcp_sendv(c, v, 0), 0);
    g = expect(ND_TCP_ACK, P.una + 400, P.nxt, 1448);
    assert_memory_equal(g->data, d + 400, 1448);
    g = expect(ND_TCP_ACK | ND_TCP_PSH, P.una + 1848, P.nxt, 152);
    saw(g);
    no_seg();
    events = 0;
    inject(ND_TCP_ACK, P.nxt, P.una + 2000, 1000, NULL, 0);
    P.una += 2000;
    assert_true(events & ND_TCP_EV_WRITE);
    finish();
}

static void test_zero_copy_send_and_receive(void **state)
{
    struct nd_tcp_conn *c;
    struct tpkt *k = malloc(sizeof(*k) + 1000);
    struct nd_tcp_piece pc[4];
    uint8_t d[500];

    (void)state;
    cfg_default();
    start();
    c = establish();
    k->refs = 1;
    live_pkts++;
    fill(k->d, 1000, 3);
    assert_int_equal(nd_tcp_send_zc(c, k->d + 10, 900, k), 900);
    assert_int_equal(k->refs, 2);
    expect(ND_TCP_ACK | ND_TCP_PSH, P.una, P.nxt, 900);
    assert_memory_equal(out[rd - 1].data, k->d + 10, 900);
    inject(ND_TCP_ACK, P.nxt, P.una + 900, 1000, NULL, 0);
    P.una += 900;
    assert_int_equal(k->refs, 1); /* acknowledged: the engine let go */
    tp_unref(k);
    /* received payload is held by reference */
    fill(d, sizeof(d), 9);
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, d, 500);
    P.nxt += 500;
    assert_int_equal(live_pkts, 1);
    assert_int_equal(nd_tcp_recv_pieces(c, pc, 4), 1);
    assert_int_equal(pc[0].len, 500);
    assert_memory_equal(pc[0].data, d, 500);
    assert_non_null(pc[0].pkt);
    nd_tcp_recv_consume(c, 200);
    assert_int_equal(nd_tcp_recv_pieces(c, pc, 4), 1);
    assert_int_equal(pc[0].len, 300);
    nd_tcp_recv_consume(c, 300);
    assert_int_equal(live_pkts, 0);
    finish();
}

/* Payload the engine sent to the peer on port rport, appended to buf at *len; segments on other
 * flows are skipped. Returns the last one taken. */
static struct seg *sent_to(uint16_t rport, uint8_t *buf, uint32_t *len)
{
    struct seg *last = NULL;

    while (rd < nout) {
        struct seg *g = next_seg();

        if (g->flow.rport != rport)
            continue;
        memcpy(buf + *len, g->data, g->plen);
        *len += g->plen;
        last = g;
    }
    return last;
}

static void test_splice(void **state)
{
    struct nd_tcp_conn *a, *b;
    struct peer pa, pb;
    struct seg *g;
    uint8_t d[6000], got[8000];
    uint32_t n = 0;
    const struct nd_tcp_stats *st;

    (void)state;
    cfg_default();
    CFG.max_zc_segs = 2;
    CFG.sndbuf = 4096;
    start();
    st = nd_tcp_stats(S);
    a = establish();
    pa = P;
    P.port = RPORT + 1;
    P.iss = 0x2000;
    b = establish();
    pb = P;
    fill(d, sizeof(d), 11);
    /* into a: 1448, 100, 1448 bytes, three packets held by a's receive queue */
    P = pa;
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, d, 1448);
    P.nxt += 1448;
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, d + 1448, 100);
    P.nxt += 100;
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, d + 1548, 1448);
    P.nxt += 1448;
    pa = P;
    rd = nout; /* a's ACKs */
    assert_int_equal(live_pkts, 3);
    /* the front of the first packet is shared (a reference taken), and sent on b */
    assert_int_equal(nd_tcp_splice(b, a, 1000), 1000);
    assert_int_equal(nd_tcp_readable(a), 1996);
    assert_int_equal(st->splice_moved, 1000);
    assert_int_equal(live_pkts, 3);
    sent_to(RPORT + 1, got, &n);
    assert_int_equal(n, 1000);
    /* the rest: 448 and 100 bytes copied (short), the last packet changes queues whole, up to
     * b's send buffer: 4096 - 1000 bytes */
    assert_int_equal(nd_tcp_splice(b, a, 10000), 1996);
    assert_int_equal(nd_tcp_readable(a), 0);
    assert_int_equal(st->splice_copied, 548);
    assert_int_equal(st->splice_moved, 2448);
    assert_int_equal(live_pkts, 2); /* the 100-byte packet was copied, then let go */
    g = sent_to(RPORT + 1, got, &n);
    assert_int_equal(n, 2996);
    assert_memory_equal(got, d, 2996);
    saw(g);
    /* past max_zc_segs (2) the bytes are copied, even a whole packet */
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, d + 2996, 1000);
    P.nxt += 1000;
    pa = P;
    rd = nout;
    assert_int_equal(nd_tcp_splice(b, a, 1000), 1000);
    assert_int_equal(st->splice_zc_limited, 1);
    assert_int_equal(st->splice_copied, 1548);
    assert_int_equal(live_pkts, 2);
    sent_to(RPORT + 1, got, &n);
    /* b's send buffer is full (3996 unacknowledged of 4096): 100 bytes go, then -EAGAIN and a
     * WRITE event once b's peer acknowledges */
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, d + 3996, 1448);
    P.nxt += 1448;
    pa = P;
    rd = nout;
    assert_int_equal(nd_tcp_splice(b, a, 1448), 100);
    assert_int_equal(nd_tcp_splice(b, a, 1348), -EAGAIN);
    g = sent_to(RPORT + 1, got, &n);
    assert_int_equal(n, 4096);
    assert_memory_equal(got, d, 4096);
    P = pb;
    saw(g);
    events = 0;
    inject(ND_TCP_ACK, P.nxt, P.una + 4096, 1000, NULL, 0);
    P.una += 4096;
    pb = P;
    assert_true(events & ND_TCP_EV_WRITE);
    assert_int_equal(live_pkts, 1); /* acknowledged: b let go of a's packets */
    /* what is left moves whole now that b holds no packet; after b's shutdown, -EPIPE */
    assert_int_equal(nd_tcp_splice(b, a, 1348), 1348);
    assert_int_equal(st->splice_moved, 2448 + 1348);
    sent_to(RPORT + 1, got, &n);
    assert_int_equal(n, 5444);
    assert_memory_equal(got, d, 5444);
    nd_tcp_shutdown(b);
    P = pa;
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, d, 600);
    P.nxt += 600;
    assert_int_equal(nd_tcp_splice(b, a, 600), -EPIPE);
    assert_int_equal(nd_tcp_splice(b, a, 0), -EPIPE);
    nd_tcp_recv_consume(a, 600);
    assert_int_equal(nd_tcp_splice(a, b, 10), 0); /* nothing received on b */
    finish();
}

static void test_rto_backoff_karn(void **state)
{
    struct nd_tcp_conn *c;
    struct nd_tcp_info ci;
    uint32_t seq;

    (void)state;
    cfg_default();
    CFG.timestamps = false; /* RTT from timed segments: Karn's rule applies */
    CFG.loss_probe = false; /* the RTO alone (test_loss_probe has the probes) */
    start();
    c = establish_active();
    advance(100);
    synack_to(50000, 443);
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    nd_tcp_conn_info(c, &ci);
    assert_int_equal(ci.srtt_us, 100000);
    assert_int_equal(ci.rto_ms, 300); /* 100 + 4 * 50 */
    seq = P.una;
    nd_tcp_send(c, "hello", 5);
    expect(ND_TCP_ACK | ND_TCP_PSH, seq, P.nxt, 5);
    advance(299);
    no_seg();
    advance(1);
    expect(ND_TCP_ACK | ND_TCP_PSH, seq, P.nxt, 5);
    nd_tcp_conn_info(c, &ci);
    assert_int_equal(ci.rto_ms, 600);
    advance(599);
    no_seg();
    advance(1);
    expect(ND_TCP_ACK | ND_TCP_PSH, seq, P.nxt, 5);
    nd_tcp_conn_info(c, &ci);
    assert_int_equal(ci.rto_ms, 1200);
    assert_int_equal(ci.retransmits, 2);
    assert_int_equal(ci.cwnd, 1400); /* loss window: one segment */
    /* the ACK of a retransmitted segment gives no sample: the backed-off RTO stays */
    advance(50);
    inject(ND_TCP_ACK, P.nxt, seq + 5, 1000, NULL, 0);
    nd_tcp_conn_info(c, &ci);
    assert_int_equal(ci.rto_ms, 1200);
    assert_int_equal(ci.srtt_us, 100000);
    /* a fresh segment is timed; its ACK recomputes the RTO */
    nd_tcp_send(c, "again", 5);
    expect(ND_TCP_ACK | ND_TCP_PSH, seq + 5, P.nxt, 5);
    advance(100);
    inject(ND_TCP_ACK, P.nxt, seq + 10, 1000, NULL, 0);
    nd_tcp_conn_info(c, &ci);
    assert_int_equal(ci.srtt_us, 100000);
    assert_int_equal(ci.rttvar_us, 37500);
    assert_int_equal(ci.rto_ms, 250);
    no_seg();
    assert_int_equal(nd_tcp_stats(S)->rto_expiries, 2);
    finish();
}

/* The probe timeout with more than one segment in flight (docs/tcp.md "Loss probes"). */
static uint32_t pto_of(const struct nd_tcp_info *ci)
{
    uint32_t two = 2 * ci->srtt_us, var = ci->srtt_us + 4 * ci->rttvar_us;
    uint32_t t = ((two > var ? two : var) + 999) / 1000;

    return t < 10 ? 10 : t;
}

/* Loss probes (docs/tcp.md): no ACK for two RTTs resends the tail; with a hole known from SACK
 * the next probe resends the hole and enters recovery; after two probes the RTO takes over. */
static void test_loss_probe(void **state)
{
    struct nd_tcp_conn *c;
    struct nd_tcp_info ci;
    struct nd_tcp_sack_block sb[1];
    uint8_t d[3 * 1448];
    uint32_t base, m = 1448, pto;
    int i;

    (void)state;
    cfg_default();
    start();
    c = establish();
    base = P.una;
    nd_tcp_conn_info(c, &ci);
    assert_true(ci.srtt_us > 0);
    pto = pto_of(&ci);
    assert_int_equal(pto, 10); /* a round trip of 0.1 ms: the floor */
    fill(d, sizeof(d), 3);
    assert_int_equal(nd_tcp_send(c, d, sizeof(d)), (ssize_t)sizeof(d));
    for (i = 0; i < 3; i++)
        saw(expect((uint8_t)(ND_TCP_ACK | (i == 2 ? ND_TCP_PSH : 0)), base + m * i, P.nxt, m));
    /* the tail, or its ACKs, lost: after the probe timeout the last segment goes again */
    advance(pto - 1);
    no_seg();
    advance(1);
    saw(expect(ND_TCP_ACK, base + 2 * m, P.nxt, m));
    /* its ACK SACKs it: the first two are missing. One SACKed segment is no proof of loss
     * (RFC 6675 IsLost wants more), but the next probe resends the first hole */
    sb[0].start = base + 2 * m;
    sb[0].end = base + 3 * m;
    inject_sack(ND_TCP_ACK, P.nxt, base, 1000, NULL, 0, 1, sb);
    no_seg();
    advance(pto - 1);
    no_seg();
    advance(1);
    saw(expect(ND_TCP_ACK, base, P.nxt, m));
    nd_tcp_conn_info(c, &ci);
    assert_true(ci.in_recovery);
    assert_int_equal(nd_tcp_stats(S)->loss_probes, 2);
    /* two probes without progress: what comes next is the RTO, going back to the first hole */
    advance(ci.rto_ms - 1);
    no_seg();
    advance(1);
    saw(expect(ND_TCP_ACK, base, P.nxt, m));
    assert_int_equal(nd_tcp_stats(S)->rto_expiries, 1);
    /* progress: the go-back goes on in slow start with the second hole, in full segments */
    inject_sack(ND_TCP_ACK, P.nxt, base + m, 1000, NULL, 0, 1, sb);
    saw(expect(ND_TCP_ACK, base + m, P.nxt, m));
    no_seg();
    inject_sack(ND_TCP_ACK, P.nxt, base + 3 * m, 1000, NULL, 0, 0, NULL);
    no_seg();
    advance(1000);
    no_seg();
    assert_int_equal(nd_tcp_stats(S)->loss_probes, 2);
    finish();
}

/* Send n full segments (of m bytes: 1448 with timestamps, 1460 without); returns the sequence
 * number of the first. The peer has seen them all (P.tsecr echoes the last one's TSval, as an
 * ACK drawn by them would). */
static uint32_t send_flight_m(struct nd_tcp_conn *c, int n, uint32_t m)
{
    static uint8_t d[8 * 1460];
    uint32_t base = P.una;
    int i;

    fill(d, sizeof(d), 5);
    assert_int_equal(nd_tcp_send(c, d, (size_t)n * m), (ssize_t)n * m);
    for (i = 0; i < n; i++)
        saw(expect((uint8_t)(ND_TCP_ACK | (i == n - 1 ? ND_TCP_PSH : 0)), base + m * (uint32_t)i,
                   P.nxt, m));
    no_seg();
    return base;
}

static uint32_t send_flight(struct nd_tcp_conn *c, int n)
{
    return send_flight_m(c, n, 1448);
}

/* ACKs that are late but not lost draw no probe: with three segments in flight, ACKs that come
 * after 1 to 9 ms (a busy core at either end; the 0.1 ms round trip of the handshake would make
 * that 10 to 90 round trips) never reach the 10 ms floor (at 5 ms, before, they drew probes). A
 * first ACK much later than any before (25 ms) draws one probe, found
 * spurious by its echoed timestamp and counted; RTTVAR has learned then, and the same delay
 * again draws none; nor does one segment whose ACK the peer delays (Linux: 40 ms). */
static void test_loss_probe_late_acks(void **state)
{
    static const unsigned delay[] = {1, 1, 9, 2, 1, 9, 9, 3, 1, 1, 8, 9, 1, 2, 9, 1};
    struct nd_tcp_conn *c;
    struct nd_tcp_info ci;
    uint32_t base, m = 1448;
    unsigned i;

    (void)state;
    cfg_default();
    start();
    c = establish();
    for (i = 0; i < 4 * sizeof(delay) / sizeof(delay[0]); i++) {
        send_flight(c, 3);
        advance(delay[i % (sizeof(delay) / sizeof(delay[0]))]);
        no_seg();
        inject(ND_TCP_ACK, P.nxt, P.una + 3 * m, 1000, NULL, 0);
        P.una += 3 * m;
        no_seg();
        nout = rd = 0;
    }
    assert_int_equal(nd_tcp_stats(S)->loss_probes, 0);
    /* a first ACK after 25 ms: the probe goes at the floor; the ACK for the original arrives
     * after it (echoing the original's TSval): spurious */
    nd_tcp_conn_info(c, &ci);
    assert_true(pto_of(&ci) < 25);
    base = send_flight(c, 3);
    advance(pto_of(&ci));
    expect(ND_TCP_ACK, base + 2 * m, P.nxt, m); /* the tail again */
    advance(25 - pto_of(&ci));
    inject(ND_TCP_ACK, P.nxt, P.una + 3 * m, 1000, NULL, 0);
    P.una += 3 * m;
    assert_int_equal(nd_tcp_stats(S)->loss_probes, 1);
    assert_int_equal(nd_tcp_stats(S)->loss_probes_spurious, 1);
    /* the D-SACK the duplicate draws later is the same probe: not counted twice */
    {
        struct nd_tcp_sack_block sb[1] = {{base + 2 * m, base + 3 * m}};

        inject_sack(ND_TCP_ACK, P.nxt, P.una, 1000, NULL, 0, 1, sb);
    }
    assert_int_equal(nd_tcp_stats(S)->loss_probes_spurious, 1);
    nout = rd = 0;
    /* RTTVAR has learned: 25 ms late again, and no probe */
    nd_tcp_conn_info(c, &ci);
    assert_true(pto_of(&ci) > 25);
    send_flight(c, 3);
    advance(25);
    no_seg();
    inject(ND_TCP_ACK, P.nxt, P.una + 3 * m, 1000, NULL, 0);
    P.una += 3 * m;
    no_seg();
    /* one segment in flight, its ACK delayed 40 ms by the peer */
    send_flight(c, 1);
    advance(40);
    no_seg();
    inject(ND_TCP_ACK, P.nxt, P.una + m, 1000, NULL, 0);
    P.una += m;
    no_seg();
    assert_int_equal(nd_tcp_stats(S)->loss_probes, 1);
    finish();
}

/* Probes that were needed are not counted spurious; without timestamps a D-SACK tells. */
static void test_loss_probe_spurious_detection(void **state)
{
    struct nd_tcp_conn *c;
    struct nd_tcp_sack_block sb[1];
    uint32_t base, m = 1448;
    struct seg *g;

    (void)state;
    cfg_default();
    start();
    c = establish();
    /* the tail lost, and the ACK for the rest: the probe fills the hole, the ACK it draws echoes
     * its TSval */
    base = send_flight(c, 3);
    advance(10);
    g = expect(ND_TCP_ACK, base + 2 * m, P.nxt, m);
    saw(g);
    inject(ND_TCP_ACK, P.nxt, base + 3 * m, 1000, NULL, 0);
    P.una = base + 3 * m;
    assert_int_equal(nd_tcp_stats(S)->loss_probes, 1);
    assert_int_equal(nd_tcp_stats(S)->loss_probes_spurious, 0);
    finish();

    /* no timestamps: only the D-SACK for the probe's segment says it was a duplicate */
    cfg_default();
    start();
    P.ts = false;
    c = establish();
    m = 1460;
    base = send_flight_m(c, 2, m);
    advance(10);
    expect(ND_TCP_ACK, base + m, P.nxt, m);
    inject(ND_TCP_ACK, P.nxt, base + 2 * m, 1000, NULL, 0);
    assert_int_equal(nd_tcp_stats(S)->loss_probes_spurious, 0);
    sb[0].start = base + m;
    sb[0].end = base + 2 * m;
    inject_sack(ND_TCP_ACK, P.nxt, base + 2 * m, 1000, NULL, 0, 1, sb);
    assert_int_equal(nd_tcp_stats(S)->loss_probes, 1);
    assert_int_equal(nd_tcp_stats(S)->loss_probes_spurious, 1);
    finish();
}

/* A drain (docs/dpdk.md) waits for nd_tcp_unacked_orphans(): a connection closed with its tail
 * unacknowledged stays counted while the engine resends it (the tail dropped, as by the fault
 * injector), and leaves the count once data and FIN are acknowledged. */
static void test_unacked_orphans(void **state)
{
    struct nd_tcp_conn *c;
    uint64_t bytes;
    uint32_t base, m = 1448, fin;
    struct seg *g;

    (void)state;
    cfg_default();
    start();
    c = establish();
    assert_int_equal(nd_tcp_unacked_orphans(S, false, NULL), 0);
    base = send_flight(c, 3);
    assert_int_equal(nd_tcp_unacked_orphans(S, false, NULL), 0); /* the application has it */
    nd_tcp_close(c);
    fin = base + 3 * m;
    saw(expect(ND_TCP_FIN | ND_TCP_ACK, fin, P.nxt, 0));
    assert_int_equal(nd_tcp_unacked_orphans(S, false, &bytes), 1);
    assert_int_equal(bytes, 3 * m);
    /* the first two arrive, the tail and the FIN are lost */
    inject(ND_TCP_ACK, P.nxt, base + 2 * m, 1000, NULL, 0);
    assert_int_equal(nd_tcp_unacked_orphans(S, true, &bytes), 1);
    assert_int_equal(bytes, m);
    /* the engine resends the tail (a probe, then the RTO) for as long as it runs */
    for (g = NULL; !g;) {
        advance(10);
        while (rd < nout) {
            struct seg *x = next_seg();

            if (x->plen && x->h.seq == base + 2 * m)
                g = x;
        }
    }
    assert_memory_equal(g->data, ((const uint8_t *)g->data), m);
    inject(ND_TCP_ACK, P.nxt, fin, 1000, NULL, 0);
    /* data acknowledged, the FIN not yet: the drain still waits, nothing is lost if it stops */
    assert_int_equal(nd_tcp_unacked_orphans(S, true, &bytes), 0);
    assert_int_equal(bytes, 0);
    assert_int_equal(nd_tcp_unacked_orphans(S, false, NULL), 1);
    inject(ND_TCP_ACK, P.nxt, fin + 1, 1000, NULL, 0);
    assert_int_equal(nd_tcp_unacked_orphans(S, false, NULL), 0);
    finish();
}

static void test_fast_retransmit_newreno(void **state)
{
    struct nd_tcp_conn *c;
    struct nd_tcp_info ci;
    uint8_t d[14600];
    uint32_t base;
    int i;

    (void)state;
    cfg_default();
    start();
    P.ts = false;
    P.sack = false; /* plain NewReno */
    c = establish();
    base = P.una;
    fill(d, sizeof(d), 5);
    assert_int_equal(nd_tcp_send(c, d, sizeof(d)), (ssize_t)sizeof(d));
    for (i = 0; i < 10; i++)
        expect((uint8_t)(ND_TCP_ACK | (i == 9 ? ND_TCP_PSH : 0)), base + 1460u * i, P.nxt, 1460);
    no_seg();
    inject(ND_TCP_ACK, P.nxt, base + 1460, 1000, NULL, 0); /* segment 1 lost */
    no_seg();
    nd_tcp_conn_info(c, &ci);
    assert_int_equal(ci.cwnd, 14600 + 1460);
    inject(ND_TCP_ACK, P.nxt, base + 1460, 1000, NULL, 0);
    inject(ND_TCP_ACK, P.nxt, base + 1460, 1000, NULL, 0);
    no_seg();
    inject(ND_TCP_ACK, P.nxt, base + 1460, 1000, NULL, 0); /* third dupack */
    expect(ND_TCP_ACK, base + 1460, P.nxt, 1460);
    no_seg();
    nd_tcp_conn_info(c, &ci);
    assert_true(ci.in_recovery);
    assert_int_equal(ci.fast_retransmits, 1);
    assert_int_equal(ci.ssthresh, (uint32_t)(16060 * 0.7));
    assert_int_equal(ci.cwnd, ci.ssthresh);
    /* partial ACK: segment 4 was lost too, and goes at once (RFC 6582) */
    inject(ND_TCP_ACK, P.nxt, base + 4 * 1460, 1000, NULL, 0);
    expect(ND_TCP_ACK, base + 4 * 1460, P.nxt, 1460);
    no_seg();
    nd_tcp_conn_info(c, &ci);
    assert_true(ci.in_recovery);
    /* full ACK: recovery ends with cwnd = ssthresh */
    inject(ND_TCP_ACK, P.nxt, base + 10 * 1460, 1000, NULL, 0);
    no_seg();
    nd_tcp_conn_info(c, &ci);
    assert_false(ci.in_recovery);
    assert_int_equal(ci.cwnd, ci.ssthresh);
    assert_int_equal(ci.retransmits, 2);
    assert_int_equal(ci.rto_expiries, 0);
    finish();
}

static void test_sack_recovery(void **state)
{
    struct nd_tcp_conn *c;
    struct nd_tcp_sack_block sb[2];
    uint8_t d[14480];
    uint32_t base, m = 1448;
    int i;

    (void)state;
    cfg_default();
    start();
    c = establish();
    base = P.una;
    fill(d, sizeof(d), 5);
    assert_int_equal(nd_tcp_send(c, d, sizeof(d)), (ssize_t)sizeof(d));
    for (i = 0; i < 10; i++)
        saw(expect((uint8_t)(ND_TCP_ACK | (i == 9 ? ND_TCP_PSH : 0)), base + m * i, P.nxt, m));
    /* segments 0 and 3 lost: SACK blocks tell the sender */
    sb[0].start = base + m;
    sb[0].end = base + 3 * m;
    inject_sack(ND_TCP_ACK, P.nxt, base, 1000, NULL, 0, 1, sb);
    no_seg();
    sb[0].start = base + 4 * m;
    sb[0].end = base + 5 * m;
    sb[1].start = base + m;
    sb[1].end = base + 3 * m;
    inject_sack(ND_TCP_ACK, P.nxt, base, 1000, NULL, 0, 2, sb);
    /* second dupack, but three segments SACKed above the first hole: it is lost (RFC 6675
     * IsLost) and resent; the second hole has one segment above it: not yet */
    expect(ND_TCP_ACK, base, P.nxt, m);
    no_seg();
    inject_sack(ND_TCP_ACK, P.nxt, base, 1000, NULL, 0, 2, sb); /* no new SACK info: ignored */
    no_seg();
    sb[0].end = base + 6 * m;
    inject_sack(ND_TCP_ACK, P.nxt, base, 1000, NULL, 0, 2, sb);
    no_seg();
    sb[0].end = base + 7 * m;
    inject_sack(ND_TCP_ACK, P.nxt, base, 1000, NULL, 0, 2, sb);
    expect(ND_TCP_ACK, base + 3 * m, P.nxt, m); /* three above it now; SACKed data not resent */
    no_seg();
    inject(ND_TCP_ACK, P.nxt, base + 10 * m, 1000, NULL, 0);
    no_seg();
    assert_int_equal(nd_tcp_stats(S)->fast_retransmits, 1);
    assert_int_equal(nd_tcp_stats(S)->retransmits, 2);
    finish();
}

static void test_ooo_sack_reassembly(void **state)
{
    struct nd_tcp_conn *c;
    uint8_t d[4000], r[4000];
    uint32_t b;
    struct seg *g;

    (void)state;
    cfg_default();
    start();
    c = establish();
    b = P.nxt;
    fill(d, sizeof(d), 11);
    inject(ND_TCP_ACK, b + 1000, P.una, 1000, d + 1000, 1000);
    g = expect(ND_TCP_ACK, P.una, b, 0); /* at once, with SACK */
    assert_int_equal(g->h.nsack, 1);
    assert_int_equal(g->h.sack[0].start, b + 1000);
    assert_int_equal(g->h.sack[0].end, b + 2000);
    assert_int_equal(nd_tcp_readable(c), 0);
    inject(ND_TCP_ACK, b + 3000, P.una, 1000, d + 3000, 1000);
    g = expect(ND_TCP_ACK, P.una, b, 0);
    assert_int_equal(g->h.nsack, 2);
    assert_int_equal(g->h.sack[0].start, b + 3000); /* the newest block first */
    assert_int_equal(g->h.sack[1].start, b + 1000);
    /* a duplicate overlapping both: nothing changes */
    inject(ND_TCP_ACK, b + 1500, P.una, 1000, d + 1500, 1000);
    g = expect(ND_TCP_ACK, P.una, b, 0);
    assert_int_equal(g->h.nsack, 2);
    assert_int_equal(g->h.sack[0].start, b + 1500 - 500);
    assert_int_equal(g->h.sack[0].end, b + 2500);
    inject(ND_TCP_ACK, b, P.una, 1000, d, 1000);
    g = expect(ND_TCP_ACK, P.una, b + 2500, 0); /* a hole filled: ACK at once */
    assert_int_equal(g->h.nsack, 1);
    assert_int_equal(g->h.sack[0].start, b + 3000);
    inject(ND_TCP_ACK, b + 2500, P.una, 1000, d + 2500, 500);
    g = expect(ND_TCP_ACK, P.una, b + 4000, 0);
    assert_int_equal(g->h.nsack, 0);
    assert_int_equal(nd_tcp_read(c, r, sizeof(r)), 4000);
    assert_memory_equal(r, d, 4000);
    no_seg();
    finish();
}

static void test_zero_window_persist(void **state)
{
    struct nd_tcp_conn *c;
    uint8_t d[1000];
    struct seg *g;

    (void)state;
    cfg_default();
    start();
    c = establish();
    inject(ND_TCP_ACK, P.nxt, P.una, 0, NULL, 0); /* the peer's window closes */
    fill(d, sizeof(d), 1);
    assert_int_equal(nd_tcp_send(c, d, sizeof(d)), 1000);
    no_seg();
    advance(199);
    no_seg();
    advance(1);
    g = expect(ND_TCP_ACK, P.una - 1, P.nxt, 0); /* window probe */
    saw(g);
    inject(ND_TCP_ACK, P.nxt, P.una, 0, NULL, 0); /* still closed */
    no_seg();
    advance(399); /* backoff */
    no_seg();
    advance(1);
    expect(ND_TCP_ACK, P.una - 1, P.nxt, 0);
    advance(800);
    expect(ND_TCP_ACK, P.una - 1, P.nxt, 0);
    assert_int_equal(nd_tcp_stats(S)->persist_probes, 3);
    inject(ND_TCP_ACK, P.nxt, P.una, 100, NULL, 0); /* open */
    expect(ND_TCP_ACK | ND_TCP_PSH, P.una, P.nxt, 1000);
    no_seg();
    finish();
}

static void test_challenge_acks(void **state)
{
    struct nd_tcp_conn *c;

    (void)state;
    cfg_default();
    CFG.challenge_ack_limit = 3;
    start();
    c = establish();
    inject(ND_TCP_RST, P.nxt + 100, 0, 0, NULL, 0); /* in window, not exact */
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    assert_int_equal(nd_tcp_state(c), ND_TCP_ESTABLISHED);
    inject(ND_TCP_RST, P.nxt + 10000000, 0, 0, NULL, 0); /* outside: ignored */
    no_seg();
    inject(ND_TCP_SYN, P.nxt + 5, 0, 1000, NULL, 0); /* SYN in window */
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    inject(ND_TCP_SYN, P.iss - 77777, 0, 1000, NULL, 0); /* any SYN */
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    inject(ND_TCP_RST | ND_TCP_ACK, P.nxt + 1, P.una, 0, NULL, 0); /* over the limit */
    no_seg();
    assert_int_equal(nd_tcp_stats(S)->challenge_acks, 3);
    assert_int_equal(nd_tcp_stats(S)->challenge_acks_limited, 1);
    assert_int_equal(nd_tcp_state(c), ND_TCP_ESTABLISHED);
    assert_int_equal(events, 0);
    /* a new second: the budget is back */
    advance(1000);
    inject(ND_TCP_RST, P.nxt + 1, 0, 0, NULL, 0);
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    /* an ACK for data never sent: dropped, ACKed (RFC 5961 5) */
    inject(ND_TCP_ACK, P.nxt, P.una + 5000, 1000, "zz", 2);
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    assert_int_equal(nd_tcp_readable(c), 0);
    /* the exact RST resets */
    inject(ND_TCP_RST, P.nxt, 0, 0, NULL, 0);
    no_seg();
    assert_true(events & ND_TCP_EV_CLOSED);
    assert_int_equal(nd_tcp_error(c), ECONNRESET);
    assert_int_equal(nd_tcp_state(c), ND_TCP_CLOSED);
    assert_int_equal(nd_tcp_read(c, NULL, 0), 0);
    assert_int_equal(nd_tcp_send(c, "x", 1), -ECONNRESET);
    nd_tcp_close(c);
    finish();
}

static void test_rst_to_closed_port(void **state)
{
    struct nd_tcp_opts o;
    uint8_t bad[20];

    (void)state;
    cfg_default();
    start();
    memset(&o, 0, sizeof(o));
    inject_opts(RPORT, 81, ND_TCP_SYN, 1000, 0, 1000, &o, NULL, 0);
    expect(ND_TCP_RST | ND_TCP_ACK, 0, 1001, 0);
    inject_opts(RPORT, 81, ND_TCP_ACK, 1000, 123456, 1000, &o, "0123456789", 10);
    expect(ND_TCP_RST, 123456, 0, 0);
    inject_opts(RPORT, 81, ND_TCP_FIN, 1000, 0, 1000, &o, "abc", 3);
    expect(ND_TCP_RST | ND_TCP_ACK, 0, 1004, 0);
    inject_opts(RPORT, 81, ND_TCP_RST, 1000, 0, 1000, &o, NULL, 0);
    no_seg();
    assert_int_equal(nd_tcp_stats(S)->rst_sent, 3);
    assert_int_equal(nd_tcp_stats(S)->drop_no_conn, 4);
    /* bad checksum, bad header: dropped silently */
    {
        struct nd_tcp_ipinfo ip = {RADDR, LADDR, false};

        nd_tcp_build(bad, RPORT, 81, 1, 0, ND_TCP_SYN, 0, NULL);
        nd_put16(bad + 16, 0x1234);
        nd_tcp_input(S, &ip, bad, 20, NULL);
        bad[12] = 0x40; /* data offset 16 */
        nd_tcp_input(S, &ip, bad, 20, NULL);
        nd_tcp_input(S, &ip, bad, 7, NULL);
    }
    no_seg();
    assert_int_equal(nd_tcp_stats(S)->bad_csum, 1);
    assert_int_equal(nd_tcp_stats(S)->bad_hdr, 2);
    finish();
}

static void test_simultaneous_open(void **state)
{
    struct nd_tcp_conn *c;
    struct nd_tcp_opts o;
    struct seg *g;

    (void)state;
    cfg_default();
    start();
    c = establish_active();
    memset(&o, 0, sizeof(o));
    o.mss_on = true;
    o.mss = 1460;
    o.ts_on = true;
    o.tsval = ++P.tsval;
    inject_opts(443, 50000, ND_TCP_SYN, P.iss, 0, 8000, &o, NULL, 0); /* its SYN crosses ours */
    g = expect(ND_TCP_SYN | ND_TCP_ACK, P.eiss, P.iss + 1, 0);
    assert_true(g->h.has_ts && g->h.has_mss);
    saw(g);
    assert_int_equal(nd_tcp_state(c), ND_TCP_SYN_RCVD);
    o.mss_on = false;
    o.tsval = ++P.tsval;
    o.tsecr = P.tsecr;
    inject_opts(443, 50000, ND_TCP_SYN | ND_TCP_ACK, P.iss, P.una, 8000, &o, NULL, 0);
    assert_int_equal(nd_tcp_state(c), ND_TCP_ESTABLISHED);
    assert_true(events & ND_TCP_EV_CONNECTED);
    no_seg();
    nd_tcp_abort(c);
    finish();
}

static void test_simultaneous_close(void **state)
{
    struct nd_tcp_conn *c;
    uint32_t fin;

    (void)state;
    cfg_default();
    start();
    c = establish();
    nd_tcp_close(c);
    fin = P.una;
    expect(ND_TCP_FIN | ND_TCP_ACK, fin, P.nxt, 0);
    /* the peer's FIN crosses ours: it does not acknowledge ours */
    inject(ND_TCP_FIN | ND_TCP_ACK, P.nxt, fin, 1000, NULL, 0);
    P.nxt++;
    expect(ND_TCP_ACK, fin + 1, P.nxt, 0);
    inject(ND_TCP_ACK, P.nxt, fin + 1, 1000, NULL, 0);
    no_seg();
    assert_int_equal(nd_tcp_stats(S)->tw_reused, 0);
    /* TIME_WAIT: a retransmitted FIN is acknowledged again */
    inject(ND_TCP_FIN | ND_TCP_ACK, P.nxt - 1, fin + 1, 1000, NULL, 0);
    expect(ND_TCP_ACK, fin + 1, P.nxt, 0);
    advance(2 * CFG.msl); /* 2 MSL from the last FIN */
    no_seg();
    /* gone: a segment now meets a closed port (the listener answers a bare ACK with RST) */
    inject(ND_TCP_ACK, P.nxt, fin + 1, 1000, NULL, 0);
    expect(ND_TCP_RST, fin + 1, 0, 0);
    finish();
}

static void test_passive_close(void **state)
{
    struct nd_tcp_conn *c;
    uint8_t r[10];

    (void)state;
    cfg_default();
    start();
    c = establish();
    inject(ND_TCP_FIN | ND_TCP_ACK, P.nxt, P.una, 1000, "bye", 3);
    P.nxt += 4;
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    assert_int_equal(nd_tcp_state(c), ND_TCP_CLOSE_WAIT);
    assert_true(events & ND_TCP_EV_READ);
    assert_false(nd_tcp_eof(c));
    assert_int_equal(nd_tcp_read(c, r, sizeof(r)), 3);
    assert_true(nd_tcp_eof(c));
    assert_int_equal(nd_tcp_read(c, r, sizeof(r)), 0);
    nd_tcp_send(c, "ok", 2);
    expect(ND_TCP_ACK | ND_TCP_PSH, P.una, P.nxt, 2);
    nd_tcp_close(c);
    expect(ND_TCP_FIN | ND_TCP_ACK, P.una + 2, P.nxt, 0);
    inject(ND_TCP_ACK, P.nxt, P.una + 3, 1000, NULL, 0);
    no_seg();
    /* LAST_ACK done: the block is free again */
    inject(ND_TCP_ACK, P.nxt, P.una + 3, 1000, NULL, 0);
    expect(ND_TCP_RST, P.una + 3, 0, 0);
    finish();
}

static void test_time_wait_reuse(void **state)
{
    struct nd_tcp_conn *c;
    struct seg *g;
    uint32_t fin, old_iss;

    (void)state;
    cfg_default();
    start();
    c = establish();
    /* we close first: FIN_WAIT_1, FIN_WAIT_2, TIME_WAIT */
    nd_tcp_close(c);
    fin = P.una;
    saw(expect(ND_TCP_FIN | ND_TCP_ACK, fin, P.nxt, 0));
    inject(ND_TCP_ACK, P.nxt, fin + 1, 1000, NULL, 0);
    no_seg();
    inject(ND_TCP_FIN | ND_TCP_ACK, P.nxt, fin + 1, 1000, NULL, 0);
    P.nxt++;
    expect(ND_TCP_ACK, fin + 1, P.nxt, 0);
    /* an old SYN (timestamp not newer): not a new incarnation; answered by ACK */
    P.tsval -= 10;
    old_iss = P.iss;
    P.iss = P.nxt + 100000;
    send_syn();
    expect(ND_TCP_ACK, fin + 1, old_iss + 2, 0);
    assert_int_equal(nd_tcp_stats(S)->tw_reused, 0);
    /* a newer timestamp: RFC 6191 allows reopening */
    P.tsval += 20;
    send_syn();
    g = expect(ND_TCP_SYN | ND_TCP_ACK, out[rd].h.seq, P.iss + 1, 0);
    assert_int_equal(nd_tcp_stats(S)->tw_reused, 1);
    saw(g);
    accepted = NULL;
    inject(ND_TCP_ACK, P.iss + 1, g->h.seq + 1, 1000, NULL, 0);
    assert_non_null(accepted);
    nd_tcp_abort(accepted);
    expect(ND_TCP_RST | ND_TCP_ACK, g->h.seq + 1, P.iss + 1, 0);
    finish();
}

static void test_connect_reuses_time_wait(void **state)
{
    struct nd_tcp_flow f = {LADDR, RADDR, 50000, 443};
    struct nd_tcp_conn *c;
    int err = 0;

    (void)state;
    cfg_default();
    start();
    c = establish_active();
    synack_to(50000, 443);
    saw(expect(ND_TCP_ACK, P.una, P.nxt, 0));
    nd_tcp_close(c);
    expect(ND_TCP_FIN | ND_TCP_ACK, P.una, P.nxt, 0);
    inject(ND_TCP_FIN | ND_TCP_ACK, P.nxt, P.una + 1, 1000, NULL, 0);
    expect(ND_TCP_ACK, P.una + 1, P.nxt + 1, 0);
    /* the tuple is in TIME_WAIT with timestamps: a new connect may take it */
    c = nd_tcp_connect(S, &f, conn_cb, NULL, &err);
    assert_non_null(c);
    expect(ND_TCP_SYN, out[rd].h.seq, 0, 0);
    assert_int_equal(nd_tcp_stats(S)->tw_reused, 1);
    /* and a live tuple may not */
    assert_null(nd_tcp_connect(S, &f, conn_cb, NULL, &err));
    assert_int_equal(err, -EADDRINUSE);
    nd_tcp_abort(c);
    finish();
}

static void test_syn_cookies(void **state)
{
    struct nd_tcp_info ci;
    struct nd_tcp_opts o;
    struct seg *g;
    uint32_t cookie;

    (void)state;
    cfg_default();
    start();
    listen_on(1);
    send_syn(); /* takes the only backlog slot (half-open) */
    g = next_seg();
    assert_int_equal(g->h.flags, ND_TCP_SYN | ND_TCP_ACK);
    assert_int_equal(nd_tcp_stats(S)->syncookies_sent, 0);
    /* a second client while the backlog is full: a stateless cookie SYN-ACK */
    memset(&o, 0, sizeof(o));
    o.mss_on = true;
    o.mss = 1400;
    o.ws_on = true;
    o.ws = 9;
    o.sack_perm = true;
    o.ts_on = true;
    o.tsval = 777;
    inject_opts(40001, LPORT, ND_TCP_SYN, 5555, 0, 65535, &o, NULL, 0);
    g = next_seg();
    assert_int_equal(g->h.flags, ND_TCP_SYN | ND_TCP_ACK);
    assert_int_equal(g->h.ack, 5556);
    assert_true(g->h.has_ts && g->h.sack_perm && g->h.has_ws);
    assert_int_equal(g->h.tsval & 0x1f, 0x10 | 9);
    {
        struct nd_tcp_flow f2 = {LADDR, RADDR, LPORT, 40001};
        uint32_t clock = (uint32_t)NOW + nd_tcp_flow_hash(CFG.secret, &f2, 0x7157a);

        /* the options ride in the low bits, but the value is never ahead of the clock */
        assert_true(nd_seq_leq(g->h.tsval, clock) && nd_seq_gt(g->h.tsval, clock - 64));
    }
    assert_int_equal(nd_tcp_stats(S)->syncookies_sent, 1);
    cookie = g->h.seq;
    /* a forged ACK fails */
    memset(&o, 0, sizeof(o));
    o.ts_on = true;
    o.tsval = 778;
    o.tsecr = g->h.tsval;
    inject_opts(40002, LPORT, ND_TCP_ACK, 5556, cookie + 1, 100, &o, NULL, 0);
    expect(ND_TCP_RST, cookie + 1, 0, 0);
    assert_int_equal(nd_tcp_stats(S)->syncookies_bad, 1);
    /* the real one, 70 s later (within two cookie periods), carrying data */
    advance(70000);
    rd = nout; /* (the half-open connection's SYN-ACK retransmissions) */
    inject_opts(40001, LPORT, ND_TCP_ACK, 5556, cookie + 1, 100, &o, "hi", 2);
    assert_int_equal(nd_tcp_stats(S)->syncookies_ok, 1);
    assert_non_null(accepted);
    nd_tcp_conn_info(accepted, &ci);
    assert_int_equal(ci.flow.rport, 40001);
    assert_int_equal(ci.mss, 1300); /* from the cookie's table */
    assert_int_equal(ci.snd_wscale, 9);
    assert_int_equal(ci.snd_wnd, 100 << 9);
    assert_true(ci.sack && ci.timestamps);
    assert_int_equal(nd_tcp_readable(accepted), 2);
    nd_tcp_recv_consume(accepted, 2);
    advance(40);
    expect(ND_TCP_ACK, cookie + 1, 5558, 0);
    /* too old: rejected */
    inject_opts(40003, LPORT, ND_TCP_SYN, 9000, 0, 65535, &o, NULL, 0);
    g = next_seg();
    advance(200000);
    rd = nout;
    inject_opts(40003, LPORT, ND_TCP_ACK, 9001, g->h.seq + 1, 100, &o, NULL, 0);
    expect(ND_TCP_RST, g->h.seq + 1, 0, 0);
    nd_tcp_abort(accepted);
    finish();
}

static void test_keepalive(void **state)
{
    struct nd_tcp_conn *c;

    (void)state;
    cfg_default();
    CFG.keep_idle = 1000;
    CFG.keep_intvl = 100;
    CFG.keep_cnt = 2;
    start();
    c = establish();
    nd_tcp_set_keepalive(c, true);
    advance(999);
    no_seg();
    advance(1);
    saw(expect(ND_TCP_ACK, P.una - 1, P.nxt, 0));
    inject(ND_TCP_ACK, P.nxt, P.una, 1000, NULL, 0); /* answered */
    advance(999);
    no_seg();
    advance(1);
    expect(ND_TCP_ACK, P.una - 1, P.nxt, 0);
    advance(100);
    expect(ND_TCP_ACK, P.una - 1, P.nxt, 0);
    advance(100);
    expect(ND_TCP_RST | ND_TCP_ACK, P.una, P.nxt, 0);
    assert_true(events & ND_TCP_EV_CLOSED);
    assert_int_equal(nd_tcp_error(c), ETIMEDOUT);
    assert_int_equal(nd_tcp_stats(S)->keepalive_probes, 3);
    nd_tcp_close(c);
    finish();
}

static void test_paws(void **state)
{
    struct nd_tcp_conn *c;

    (void)state;
    cfg_default();
    start();
    c = establish();
    P.tsval -= 100; /* an old duplicate's timestamp */
    inject(ND_TCP_ACK | ND_TCP_PSH, P.nxt, P.una, 1000, "old", 3);
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    assert_int_equal(nd_tcp_readable(c), 0);
    assert_int_equal(nd_tcp_stats(S)->drop_paws, 1);
    P.tsval += 200;
    inject(ND_TCP_ACK | ND_TCP_PSH, P.nxt, P.una, 1000, "new", 3);
    assert_int_equal(nd_tcp_readable(c), 3);
    /* timestamps were negotiated: a segment without them is dropped */
    {
        struct nd_tcp_opts o;

        memset(&o, 0, sizeof(o));
        inject_opts(P.port, LPORT, ND_TCP_ACK, P.nxt + 3, P.una, 1000, &o, "zzz", 3);
    }
    assert_int_equal(nd_tcp_readable(c), 3);
    assert_int_equal(nd_tcp_stats(S)->drop_paws, 2);
    nd_tcp_recv_consume(c, 3);
    nd_tcp_abort(c);
    finish();
}

static void test_close_with_unread_data_resets(void **state)
{
    struct nd_tcp_conn *c;

    (void)state;
    cfg_default();
    start();
    c = establish();
    inject(ND_TCP_ACK | ND_TCP_PSH, P.nxt, P.una, 1000, "data", 4);
    P.nxt += 4;
    nd_tcp_close(c);
    expect(ND_TCP_RST | ND_TCP_ACK, P.una, P.nxt, 0);
    assert_int_equal(nd_tcp_stats(S)->rst_sent, 1);
    finish();
}

static void test_send_buffer_limit_and_write_event(void **state)
{
    struct nd_tcp_conn *c;
    static uint8_t d[64 * 1024];
    ssize_t n;
    uint32_t acked = 0;

    (void)state;
    cfg_default();
    CFG.sndbuf = 16 * 1024;
    start();
    c = establish();
    n = nd_tcp_send(c, d, sizeof(d));
    assert_int_equal(n, 16 * 1024);
    assert_int_equal(nd_tcp_send(c, d, 1), -EAGAIN);
    assert_int_equal(nd_tcp_send_space(c), 0);
    while (rd < nout) {
        struct seg *g = next_seg();

        acked = g->h.seq + g->plen - P.una;
    }
    inject(ND_TCP_ACK, P.nxt, P.una + acked, 1000, NULL, 0);
    assert_true(events & ND_TCP_EV_WRITE);
    assert_true(nd_tcp_send_space(c) > 0);
    nd_tcp_shutdown(c);
    assert_int_equal(nd_tcp_send(c, d, 1), -EPIPE);
    nd_tcp_abort(c);
    finish();
}

static void test_nagle(void **state)
{
    struct nd_tcp_conn *c;

    (void)state;
    cfg_default();
    CFG.nagle = true;
    start();
    c = establish();
    nd_tcp_send(c, "aaaa", 4);
    saw(expect(ND_TCP_ACK | ND_TCP_PSH, P.una, P.nxt, 4));
    nd_tcp_send(c, "bbbb", 4); /* a small segment is in flight: this one waits */
    nd_tcp_send(c, "cccc", 4);
    no_seg();
    inject(ND_TCP_ACK, P.nxt, P.una + 4, 1000, NULL, 0);
    expect(ND_TCP_ACK | ND_TCP_PSH, P.una + 4, P.nxt, 8); /* coalesced */
    /* TCP_NODELAY */
    nd_tcp_set_nodelay(c, true);
    nd_tcp_send(c, "dd", 2);
    expect(ND_TCP_ACK | ND_TCP_PSH, P.una + 12, P.nxt, 2);
    nd_tcp_abort(c);
    finish();
}

static void test_syn_rcvd_retransmits(void **state)
{
    struct seg *g;
    uint32_t iss;

    (void)state;
    cfg_default();
    start();
    listen_on(4);
    send_syn();
    g = next_seg();
    iss = g->h.seq;
    P.tsval--;
    send_syn(); /* its SYN again: our SYN-ACK was lost */
    expect(ND_TCP_SYN | ND_TCP_ACK, iss, P.iss + 1, 0);
    advance(1000); /* and our own timer */
    expect(ND_TCP_SYN | ND_TCP_ACK, iss, P.iss + 1, 0);
    advance(2000);
    expect(ND_TCP_SYN | ND_TCP_ACK, iss, P.iss + 1, 0);
    inject(ND_TCP_RST, P.iss + 1, 0, 0, NULL, 0); /* the peer gives up: back to listening */
    no_seg();
    advance(10000);
    no_seg();
    assert_null(accepted);
    finish();
}

static void test_fin_wait2_orphan_timeout(void **state)
{
    struct nd_tcp_conn *c;
    uint32_t fin;

    (void)state;
    cfg_default();
    CFG.fin_wait2 = 5000;
    start();
    c = establish();
    nd_tcp_close(c);
    fin = P.una;
    expect(ND_TCP_FIN | ND_TCP_ACK, fin, P.nxt, 0);
    inject(ND_TCP_ACK, P.nxt, fin + 1, 1000, NULL, 0);
    /* the peer never closes; we gave the handle back: FIN_WAIT_2 ends after fin_wait2 */
    advance(4999);
    inject(ND_TCP_ACK, P.nxt, fin + 1, 1000, NULL, 0);
    no_seg();
    advance(1);
    no_seg();
    inject(ND_TCP_ACK, P.nxt, fin + 1, 1000, NULL, 0);
    expect(ND_TCP_RST, fin + 1, 0, 0);
    /* data for an orphan: nobody will read it, the peer is told so */
    c = establish();
    nd_tcp_close(c);
    fin = P.una;
    expect(ND_TCP_FIN | ND_TCP_ACK, fin, P.nxt, 0);
    inject(ND_TCP_ACK | ND_TCP_PSH, P.nxt, fin + 1, 1000, "late", 4);
    expect(ND_TCP_RST | ND_TCP_ACK, fin + 1, P.nxt, 0);
    finish();
}

static int offl_partial;
static int offl_tx(struct nd_tcp_stack *s, const struct nd_tcp_tx *t, void *udata)
{
    (void)s;
    (void)udata;
    assert_true(t->csum_partial);
    /* the field holds the pseudo-header sum a NIC completes */
    assert_int_equal(
        nd_get16(t->hdr + 16),
        nd_csum_fold(nd_tcp_pseudo(t->flow.laddr, t->flow.raddr, t->hdr_len + t->payload_len)));
    offl_partial++;
    return 0;
}

static void test_checksum_offload(void **state)
{
    struct nd_tcp_flow f = {LADDR, RADDR, 50000, 443};
    struct nd_tcp_conn *c;
    int err = 0;

    (void)state;
    cfg_default();
    CFG.tx = offl_tx;
    CFG.csum_offload = true;
    start();
    c = nd_tcp_connect(S, &f, NULL, NULL, &err);
    assert_non_null(c);
    assert_int_equal(offl_partial, 1);
    nd_tcp_close(c);
    finish();
}

static void test_invalid_ack_ratelimit(void **state)
{
    struct nd_tcp_conn *c;

    (void)state;
    cfg_default();
    start();
    c = establish();
    inject(ND_TCP_ACK, P.nxt + 2000000, P.una, 1000, NULL, 0); /* out of window */
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    inject(ND_TCP_ACK, P.nxt + 2000000, P.una, 1000, NULL, 0);
    no_seg(); /* a pure ACK again within 500 ms: not answered */
    inject(ND_TCP_ACK, P.nxt - 10, P.una, 1000, "dup", 3);
    expect(ND_TCP_ACK, P.una, P.nxt, 0); /* old data: always answered */
    assert_int_equal(nd_tcp_stats(S)->oow_acks_limited, 1);
    advance(500);
    inject(ND_TCP_ACK, P.nxt + 2000000, P.una, 1000, NULL, 0);
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    assert_int_equal(nd_tcp_state(c), ND_TCP_ESTABLISHED);
    nd_tcp_abort(c);
    finish();
}

static void test_rto_3s_after_syn_timeout(void **state)
{
    struct nd_tcp_conn *c;
    struct nd_tcp_info ci;

    (void)state;
    cfg_default();
    CFG.timestamps = false;
    start();
    c = establish_active();
    advance(1000);
    expect(ND_TCP_SYN, P.eiss, 0, 0);
    synack_to(50000, 443);
    expect(ND_TCP_ACK, P.una, P.nxt, 0);
    nd_tcp_conn_info(c, &ci);
    assert_int_equal(ci.srtt_us, 0);   /* Karn: the SYN was retransmitted */
    assert_int_equal(ci.rto_ms, 3000); /* RFC 6298 5.7 */
    nd_tcp_abort(c);
    finish();
}

static void test_ooo_queue_bounded(void **state)
{
    struct nd_tcp_conn *c;
    struct nd_tcp_info ci;
    int i;

    (void)state;
    cfg_default();
    CFG.rcvbuf = 16384; /* at most 2 * 16384 / 536 = 61 out-of-order pieces */
    start();
    c = establish();
    for (i = 0; i < 100; i++) {
        inject(ND_TCP_ACK, P.nxt + 2 + 2 * (uint32_t)i, P.una, 1000, "x", 1);
        rd = nout = 0;
    }
    nd_tcp_conn_info(c, &ci);
    assert_int_equal(ci.rcv_ooo, 61);
    assert_int_equal(nd_tcp_stats(S)->drop_ooo_full, 39);
    assert_int_equal(live_pkts, 61); /* each holds its packet */
    nd_tcp_abort(c);
    assert_int_equal(live_pkts, 0);
    finish();
}

static void test_time_wait_recycled_when_pool_empty(void **state)
{
    struct nd_tcp_conn *c;
    struct seg *g;
    int i;

    (void)state;
    cfg_default();
    CFG.max_conns = 2;
    CFG.syncookies = 0;
    start();
    listen_on(8);
    for (i = 0; i < 2; i++) { /* two connections end in TIME_WAIT (we closed first) */
        P.port = (uint16_t)(RPORT + i);
        accepted = NULL;
        c = establish();
        nd_tcp_close(c);
        saw(expect(ND_TCP_FIN | ND_TCP_ACK, P.una, P.nxt, 0));
        inject(ND_TCP_FIN | ND_TCP_ACK, P.nxt, P.una + 1, 1000, NULL, 0);
        expect(ND_TCP_ACK, P.una + 1, P.nxt + 1, 0);
    }
    /* the pool is full of TIME_WAIT: a new SYN takes the oldest */
    P.port = RPORT + 5;
    send_syn();
    g = next_seg();
    assert_int_equal(g->h.flags, ND_TCP_SYN | ND_TCP_ACK);
    assert_int_equal(nd_tcp_stats(S)->tw_recycled, 1);
    /* the oldest is gone, the other still in TIME_WAIT */
    P.port = RPORT;
    inject(ND_TCP_ACK, 1, 1, 1000, NULL, 0);
    expect(ND_TCP_RST, 1, 0, 0);
    finish();
}

/* CUBIC: a sender kept busy by a peer that ACKs every second segment one RTT (100 ms) later. */
static uint32_t ack_pts[2][8192], hi_end;
static int nack_pts[2];

static void collect(int slot)
{
    for (; rd < nout; rd++)
        if (out[rd].plen && nack_pts[slot] < 8192) {
            ack_pts[slot][nack_pts[slot]++] = out[rd].h.seq + out[rd].plen;
            if (nd_seq_gt(out[rd].h.seq + out[rd].plen, hi_end))
                hi_end = out[rd].h.seq + out[rd].plen;
        }
    rd = nout = 0;
}

static void keep_busy(struct nd_tcp_conn *c)
{
    static uint8_t big[65536];
    size_t space;

    while ((space = nd_tcp_send_space(c)) > 0)
        if (nd_tcp_send(c, big, space < sizeof(big) ? space : sizeof(big)) <= 0)
            break;
}

/* One RTT: ACK (every second segment) what was sent during the previous one. */
static void rtt_round(struct nd_tcp_conn *c, int *cur)
{
    int prev = *cur, i;

    *cur = !*cur;
    nack_pts[*cur] = 0;
    advance(100);
    collect(*cur);
    for (i = 1; i < nack_pts[prev]; i += 2) {
        inject(ND_TCP_ACK, P.nxt, ack_pts[prev][i], 65535, NULL, 0);
        collect(*cur);
        keep_busy(c);
        collect(*cur);
    }
    if (nack_pts[prev] & 1) {
        inject(ND_TCP_ACK, P.nxt, ack_pts[prev][nack_pts[prev] - 1], 65535, NULL, 0);
        collect(*cur);
    }
    keep_busy(c);
    collect(*cur);
}

static void test_cubic_growth(void **state)
{
    struct nd_tcp_conn *c;
    struct nd_tcp_info ci;
    double w_max, k, w;
    int cur = 0, i;
    uint64_t t_loss;

    (void)state;
    cfg_default();
    CFG.sndbuf = 4 << 20;
    CFG.max_chunks = 4096;
    CFG.max_segs = 8192;
    start();
    P.ts = false;
    P.sack = false;
    c = establish();
    nack_pts[0] = nack_pts[1] = 0;
    hi_end = P.una;
    keep_busy(c);
    collect(cur);
    /* slow start to about 100 segments */
    for (i = 0; i < 40; i++) {
        nd_tcp_conn_info(c, &ci);
        if (ci.cwnd >= 100 * 1460)
            break;
        rtt_round(c, &cur);
    }
    nd_tcp_conn_info(c, &ci);
    assert_true(ci.cwnd >= 100 * 1460);
    /* a loss: three duplicate ACKs for the oldest outstanding byte */
    w_max = (double)ci.cwnd / 1460;
    advance(100);
    collect(!cur);
    for (i = 0; i < 3; i++)
        inject(ND_TCP_ACK, P.nxt, ack_pts[cur][0] - 1460, 65535, NULL, 0);
    nd_tcp_conn_info(c, &ci);
    assert_true(ci.in_recovery);
    assert_int_equal(ci.ssthresh, (uint32_t)(w_max * 1460 * 0.7));
    /* recovery ends with the ACK of everything */
    collect(!cur);
    inject(ND_TCP_ACK, P.nxt, hi_end, 65535, NULL, 0);
    nd_tcp_conn_info(c, &ci);
    assert_false(ci.in_recovery);
    t_loss = NOW;
    nack_pts[0] = nack_pts[1] = 0;
    collect(cur); /* what the full ACK let out */
    keep_busy(c);
    collect(cur);
    k = cbrt(w_max * (1 - 0.7) / 0.4); /* RFC 9438 eq. 2, seconds */
    while (NOW - t_loss < (uint64_t)(k * 1000))
        rtt_round(c, &cur);
    nd_tcp_conn_info(c, &ci);
    w = (double)ci.cwnd / 1460;
    print_message("    W_max %.1f, K %.2f s: cwnd %.1f at K\n", w_max, k, w);
    assert_true(fabs(w - w_max) < 0.05 * w_max); /* the plateau: W_cubic(K) = W_max */
    while (NOW - t_loss < (uint64_t)(2 * k * 1000))
        rtt_round(c, &cur);
    nd_tcp_conn_info(c, &ci);
    w = (double)ci.cwnd / 1460;
    print_message("    cwnd %.1f at 2K (W_max + C K^3 = %.1f)\n", w, w_max + 0.4 * k * k * k);
    /* then convex probing: W_cubic(2K) = W_max + C K^3 */
    assert_true(fabs(w - (w_max + 0.4 * k * k * k)) < 0.05 * w_max);
    assert_int_equal(ci.rto_expiries, 0);
    assert_int_equal(ci.fast_retransmits, 1);
    nd_tcp_abort(c);
    finish();
}

static void test_send_seq_wrap(void **state)
{
    struct nd_tcp_flow f = {LADDR, RADDR, LPORT, RPORT};
    struct nd_tcp_conn *c;
    struct nd_tcp_info ci;
    uint8_t d[4000];
    uint32_t h, iss;
    struct seg *g;

    (void)state;
    cfg_default();
    /* choose the clock so that the ISN (RFC 6528: hash + 250 * ms) lands just below 2^32 */
    h = nd_tcp_isn(CFG.secret, &f, 0);
    CFG.now_ms = (uint64_t)((0xfffffa00u - h) / 250u) + (1ull << 31); /* 2^31 * 250 = 0 mod 2^32 */
    iss = nd_tcp_isn(CFG.secret, &f, CFG.now_ms);
    assert_true(iss >= 0xfffff900u);
    start();
    c = establish();
    assert_int_equal(P.eiss, iss);
    fill(d, sizeof(d), 21);
    assert_int_equal(nd_tcp_send(c, d, sizeof(d)), (ssize_t)sizeof(d));
    expect(ND_TCP_ACK, iss + 1, P.nxt, 1448);
    g = expect(ND_TCP_ACK, iss + 1 + 1448, P.nxt, 1448); /* crosses 2^32 */
    assert_memory_equal(g->data, d + 1448, 1448);
    saw(expect(ND_TCP_ACK | ND_TCP_PSH, iss + 1 + 2896, P.nxt, 4000 - 2896));
    inject(ND_TCP_ACK, P.nxt, iss + 1 + 1448, 1000, NULL, 0);
    inject(ND_TCP_ACK, P.nxt, iss + 1 + 4000, 1000, NULL, 0);
    nd_tcp_conn_info(c, &ci);
    assert_int_equal(ci.bytes_acked, 4000);
    assert_int_equal(ci.snd_queued, 0);
    assert_int_equal(ci.snd_unacked, 0);
    no_seg();
    nd_tcp_close(c);
    expect(ND_TCP_FIN | ND_TCP_ACK, iss + 4001, P.nxt, 0);
    finish();
}

/* What `nodus sockets` reads: every connection (accepted, waiting in the accept queue, half
 * open) and every listener with its queues. */
static unsigned seen_state[ND_TCP_TIME_WAIT + 1], seen_conns;
static struct nd_tcp_listen_info seen_lis;
static unsigned seen_nlis;

static void see_conn(const struct nd_tcp_conn *c, void *arg)
{
    struct nd_tcp_info ci;

    (void)arg;
    nd_tcp_conn_info(c, &ci);
    assert_int_equal(ci.flow.laddr, LADDR);
    assert_int_equal(ci.flow.lport, LPORT);
    seen_state[ci.state]++;
    seen_conns++;
}

static void see_listener(const struct nd_tcp_listen_info *l, void *arg)
{
    (void)arg;
    seen_lis = *l;
    seen_nlis++;
}

static void test_foreach_for_sockets(void **state)
{
    struct seg *g;

    (void)state;
    cfg_default();
    start();
    establish(); /* accepted */
    P.port = RPORT + 1;
    P.iss = 0x1000;
    send_syn();
    g = next_seg();
    saw(g);
    inject(ND_TCP_ACK, P.iss + 1, g->h.seq + 1, 1000, NULL, 0); /* waits in the accept queue */
    P.port = RPORT + 2;
    send_syn(); /* half open */
    next_seg();
    memset(seen_state, 0, sizeof(seen_state));
    seen_conns = seen_nlis = 0;
    nd_tcp_foreach(S, see_conn, NULL);
    nd_tcp_foreach_listener(S, see_listener, NULL);
    assert_int_equal(seen_conns, 3);
    assert_int_equal(seen_state[ND_TCP_ESTABLISHED], 2);
    assert_int_equal(seen_state[ND_TCP_SYN_RCVD], 1);
    assert_int_equal(seen_nlis, 1);
    assert_int_equal(seen_lis.addr, LADDR);
    assert_int_equal(seen_lis.port, LPORT);
    assert_int_equal(seen_lis.backlog, 8);
    assert_int_equal(seen_lis.queued, 1);
    assert_int_equal(seen_lis.half_open, 1);
    nd_tcp_unlisten(LIS);
    seen_nlis = 0;
    nd_tcp_foreach_listener(S, see_listener, NULL);
    assert_int_equal(seen_nlis, 0);
    finish();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checksum_pieces),
        cmocka_unit_test(test_seq_wrap),
        cmocka_unit_test(test_splice),
        cmocka_unit_test(test_sendv_one_segment),
        cmocka_unit_test(test_batch_ack),
        cmocka_unit_test(test_handshake_passive),
        cmocka_unit_test(test_handshake_active),
        cmocka_unit_test(test_connect_refused_and_syn_timeout),
        cmocka_unit_test(test_data_delayed_ack),
        cmocka_unit_test(test_zero_copy_send_and_receive),
        cmocka_unit_test(test_rto_backoff_karn),
        cmocka_unit_test(test_loss_probe),
        cmocka_unit_test(test_loss_probe_late_acks),
        cmocka_unit_test(test_loss_probe_spurious_detection),
        cmocka_unit_test(test_unacked_orphans),
        cmocka_unit_test(test_fast_retransmit_newreno),
        cmocka_unit_test(test_sack_recovery),
        cmocka_unit_test(test_ooo_sack_reassembly),
        cmocka_unit_test(test_zero_window_persist),
        cmocka_unit_test(test_challenge_acks),
        cmocka_unit_test(test_rst_to_closed_port),
        cmocka_unit_test(test_simultaneous_open),
        cmocka_unit_test(test_simultaneous_close),
        cmocka_unit_test(test_passive_close),
        cmocka_unit_test(test_time_wait_reuse),
        cmocka_unit_test(test_connect_reuses_time_wait),
        cmocka_unit_test(test_syn_cookies),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_paws),
        cmocka_unit_test(test_close_with_unread_data_resets),
        cmocka_unit_test(test_send_buffer_limit_and_write_event),
        cmocka_unit_test(test_nagle),
        cmocka_unit_test(test_syn_rcvd_retransmits),
        cmocka_unit_test(test_fin_wait2_orphan_timeout),
        cmocka_unit_test(test_checksum_offload),
        cmocka_unit_test(test_invalid_ack_ratelimit),
        cmocka_unit_test(test_rto_3s_after_syn_timeout),
        cmocka_unit_test(test_ooo_queue_bounded),
        cmocka_unit_test(test_time_wait_recycled_when_pool_empty),
        cmocka_unit_test(test_cubic_growth),
        cmocka_unit_test(test_send_seq_wrap),
        cmocka_unit_test(test_foreach_for_sockets),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
