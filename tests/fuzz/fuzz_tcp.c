/*
 * libFuzzer target for the TCP engine (dpdk/tcp*.c). Each input runs on a fresh stack that has
 * a listener on port 80 and one connection already established through it. The input is a
 * script of records:
 *   op 0: a segment to the established connection: ports forced, sequence and acknowledgment
 *         numbers optionally rebased near what the connection expects (so the fuzzer reaches
 *         in-window paths), checksum skipped or checked;
 *   op 1: a raw segment from one of a few peers to one of a few ports (listener, closed);
 *   op 2: time passes (up to ~16 s);
 *   op 3: an application call (send, zero-copy send, read, shutdown, close, abort, accept).
 * With the first byte & 0x20 (and not 0x80) it runs the link mode described further down.
 * Besides the sanitizers it checks that emitted segments parse, carry valid checksums and stay
 * within the header limits, and that every packet reference the engine took is given back.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../dpdk/tcp.h"
#include "../../dpdk/tcp_wire.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "fuzz_tcp.c:%d: check failed: %s\n", __LINE__, #x);                    \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

#define LADDR 0x0a000001u
#define RADDR 0x0a000002u

struct fpkt {
    int refs;
    uint8_t d[];
};

static long live;

static void fp_ref(void *p)
{
    ((struct fpkt *)p)->refs++;
}

static void fp_unref(void *p)
{
    struct fpkt *k = p;

    CHECK(k->refs > 0);
    if (!--k->refs) {
        live--;
        free(k);
    }
}

static const struct nd_tcp_pkt_ops ops = {fp_ref, fp_unref};

static uint32_t conn_snd_nxt, conn_rcv_nxt; /* learned from what the engine sends */

static int fz_tx(struct nd_tcp_stack *s, const struct nd_tcp_tx *t, void *udata)
{
    uint8_t buf[ND_TCP_MAX_HDR + 65536];
    struct nd_tcp_hdr h;
    uint32_t off = t->hdr_len, sum = 0;
    unsigned i;

    (void)s;
    (void)udata;
    CHECK(t->hdr_len >= 20 && t->hdr_len <= ND_TCP_MAX_HDR && t->hdr_len % 4 == 0);
    CHECK(t->npiece <= ND_TCP_TX_PIECES);
    memcpy(buf, t->hdr, t->hdr_len);
    for (i = 0; i < t->npiece; i++) {
        CHECK(t->piece[i].len > 0);
        sum += t->piece[i].len;
        CHECK(off + t->piece[i].len <= sizeof(buf));
        memcpy(buf + off, t->piece[i].data, t->piece[i].len);
        off += t->piece[i].len;
    }
    CHECK(sum == t->payload_len);
    CHECK(nd_tcp_csum_ok(t->flow.laddr, t->flow.raddr, buf, off));
    CHECK(nd_tcp_parse(buf, off, &h) == 0);
    CHECK(h.hlen == t->hdr_len);
    if (t->flow.rport == 40000 && t->flow.lport == 80) {
        conn_snd_nxt = h.seq + sum;
        if (h.flags & ND_TCP_ACK)
            conn_rcv_nxt = h.ack;
    }
    return 0;
}

#define MAXC 8
static struct nd_tcp_conn *conns[MAXC];
static int nconns;

static void fz_conn_cb(struct nd_tcp_conn *c, unsigned ev, void *udata)
{
    struct nd_tcp_piece pc[4];
    int n, i;
    size_t sum = 0;

    (void)udata;
    if (ev & ND_TCP_EV_READ) {
        n = nd_tcp_recv_pieces(c, pc, 4);
        CHECK(n >= 0 && n <= 4);
        for (i = 0; i < n; i++) {
            CHECK(pc[i].len > 0 && pc[i].data);
            sum += pc[i].len;
        }
        CHECK(sum <= nd_tcp_readable(c));
        if (sum)
            nd_tcp_recv_consume(c, sum / 2 + 1);
    }
}

static void fz_listen_cb(struct nd_tcp_listener *l, void *udata)
{
    struct nd_tcp_conn *c;

    (void)udata;
    while (nconns < MAXC && (c = nd_tcp_accept(l))) {
        nd_tcp_set_cb(c, fz_conn_cb, NULL);
        conns[nconns++] = c;
    }
}

static void deliver(struct nd_tcp_stack *s, uint32_t src, const uint8_t *seg, size_t len,
                    bool csum_ok)
{
    struct fpkt *k = malloc(sizeof(*k) + (len ? len : 1));
    struct nd_tcp_ipinfo ip = {src, LADDR, csum_ok};

    if (!k)
        return;
    k->refs = 1;
    live++;
    memcpy(k->d, seg, len);
    nd_tcp_input(s, &ip, k->d, len, k);
    fp_unref(k);
}

static void simple(struct nd_tcp_stack *s, uint8_t flags, uint32_t seq, uint32_t ack,
                   struct nd_tcp_opts *o)
{
    uint8_t h[ND_TCP_MAX_HDR];
    unsigned hl = nd_tcp_build(h, 40000, 80, seq, ack, flags, 1000, o);

    deliver(s, RADDR, h, hl, true);
}

static void forget(struct nd_tcp_conn *c)
{
    int i;

    for (i = 0; i < nconns; i++)
        if (conns[i] == c) {
            conns[i] = conns[--nconns];
            return;
        }
}

static void app_op(struct nd_tcp_stack *s, const uint8_t *p, size_t n)
{
    static uint8_t junk[70000];
    struct nd_tcp_conn *c;
    struct nd_tcp_info ci;
    uint8_t rbuf[3000];
    int err;

    if (n < 2 || !nconns)
        return;
    c = conns[p[1] % nconns];
    nd_tcp_conn_info(c, &ci);
    CHECK(ci.state <= ND_TCP_TIME_WAIT);
    switch (p[0] % 8) {
    case 0:
        nd_tcp_send(c, junk, (size_t)p[1] * 300);
        break;
    case 1: {
        struct fpkt *k = malloc(sizeof(*k) + 2000);

        if (!k)
            break;
        k->refs = 1;
        live++;
        memset(k->d, p[1], 2000);
        nd_tcp_send_zc(c, k->d, 1 + p[1] * 7, k);
        fp_unref(k);
        break;
    }
    case 2:
        nd_tcp_read(c, rbuf, sizeof(rbuf));
        break;
    case 3:
        nd_tcp_shutdown(c);
        break;
    case 4:
        forget(c);
        nd_tcp_close(c);
        break;
    case 5:
        forget(c);
        nd_tcp_abort(c);
        break;
    case 6:
        nd_tcp_set_keepalive(c, p[1] & 1);
        nd_tcp_set_nodelay(c, p[1] & 2);
        break;
    case 7: {
        struct nd_tcp_flow f = {LADDR, RADDR + (p[1] & 1), (uint16_t)(50000 + (p[1] & 3)), 443};

        if (nconns < MAXC && (c = nd_tcp_connect(s, &f, fz_conn_cb, NULL, &err)))
            conns[nconns++] = c;
        break;
    }
    }
}

/* Accounting invariants of every connection. */
static void check_conn(const struct nd_tcp_conn *c, void *arg)
{
    const struct nd_tcp_config *cfg = arg;
    struct nd_tcp_info ci;

    nd_tcp_conn_info(c, &ci);
    if (getenv("FUZZ_TCP_DEBUG"))
        fprintf(stderr, "%s sq %u su %u rq %u ro %u cwnd %u rto %u\n", nd_tcp_state_name(ci.state),
                ci.snd_queued, ci.snd_unacked, ci.rcv_queued, ci.rcv_ooo, ci.cwnd, ci.rto_ms);
    CHECK(ci.state <= ND_TCP_TIME_WAIT);
    CHECK(ci.snd_queued <= cfg->sndbuf);
    CHECK(ci.snd_unacked <= ci.snd_queued + 2); /* SYN and FIN take a number each */
    CHECK(ci.rcv_queued + ci.rcv_ooo <= cfg->rcvbuf);
    CHECK(ci.state == ND_TCP_CLOSED || ci.cwnd > 0);
    CHECK(ci.rto_ms <= cfg->rto_max);
}

/*
 * Second mode (first byte & 0x20): two stacks transfer a stream over a link whose fate for each
 * packet (drop, duplicate, delay) comes from the input. When the input runs out the link becomes
 * perfect. The client queues the stream, shuts down and closes (an orphan from then on); the
 * server reads with keepalive on and closes at end of stream or on error. Checked: the server
 * only ever sees a correct prefix of the stream, all of it when it sees the end, and every
 * connection on both stacks is gone within bounded virtual time -- never a hang. (Under heavy
 * loss a connection may legitimately time out.)
 */
struct lpkt {
    struct lpkt *next;
    int refs;
    uint64_t due;
    int to;
    uint32_t src, dst, len;
    uint8_t d[];
};

static struct {
    struct nd_tcp_stack *st[2];
    struct lpkt *q;
    uint64_t now;
    const uint8_t *fz;
    size_t fzn;
    /* client */
    struct nd_tcp_conn *cc;
    uint32_t total, sent;
    bool c_closed, c_shut;
    int c_err;
    /* server */
    struct nd_tcp_conn *sc;
    uint32_t got;
    bool s_eof, s_err;
} L;

static void lp_ref(void *p)
{
    ((struct lpkt *)p)->refs++;
}

static void lp_unref(void *p)
{
    struct lpkt *k = p;

    CHECK(k->refs > 0);
    if (!--k->refs) {
        live--;
        free(k);
    }
}

static const struct nd_tcp_pkt_ops lops = {lp_ref, lp_unref};

static void lq_add(struct lpkt *k)
{
    struct lpkt **pp = &L.q;

    while (*pp && (*pp)->due <= k->due)
        pp = &(*pp)->next;
    k->next = *pp;
    *pp = k;
}

static int link_tx(struct nd_tcp_stack *s, const struct nd_tcp_tx *t, void *udata)
{
    struct lpkt *k = malloc(sizeof(*k) + t->hdr_len + t->payload_len);
    uint32_t off = t->hdr_len;
    uint8_t fate = 0xff;
    unsigned i;

    (void)udata;
    if (!k)
        return -1;
    live++;
    k->refs = 1;
    k->to = s == L.st[0];
    k->src = t->flow.laddr;
    k->dst = t->flow.raddr;
    memcpy(k->d, t->hdr, t->hdr_len);
    for (i = 0; i < t->npiece; i++) {
        memcpy(k->d + off, t->piece[i].data, t->piece[i].len);
        off += t->piece[i].len;
    }
    k->len = off;
    CHECK(nd_tcp_csum_ok(k->src, k->dst, k->d, k->len));
    if (L.fzn) {
        fate = *L.fz++;
        L.fzn--;
    }
    if (getenv("FUZZ_TCP_DEBUG")) {
        struct nd_tcp_hdr h;

        nd_tcp_parse(k->d, k->len, &h);
        fprintf(stderr, "%llu %c %02x seq %u ack %u win %u len %u fate %02x\n",
                (unsigned long long)L.now, k->to ? '>' : '<', h.flags, h.seq, h.ack, h.win,
                k->len - h.hlen, fate);
    }
    k->due = L.now + 5;
    if (fate != 0xff) {
        if ((fate & 3) == 0) {
            lp_unref(k);
            return 0;
        }
        k->due = L.now + 1 + (fate >> 2);
        if ((fate & 3) == 1) {
            struct lpkt *d = malloc(sizeof(*d) + k->len);

            if (d) {
                memcpy(d, k, sizeof(*d) + k->len);
                d->refs = 1;
                live++;
                d->due += 3;
                lq_add(d);
            }
        }
    }
    lq_add(k);
    return 0;
}

static uint8_t pattern(uint32_t i)
{
    return (uint8_t)(i * 7 + (i >> 8));
}

static void l_client_push(void)
{
    uint8_t buf[4096];

    while (L.sent < L.total) {
        uint32_t n = L.total - L.sent < sizeof(buf) ? L.total - L.sent : sizeof(buf), i;
        ssize_t w;

        for (i = 0; i < n; i++)
            buf[i] = pattern(L.sent + i);
        w = nd_tcp_send(L.cc, buf, n);
        if (w <= 0)
            return;
        L.sent += (uint32_t)w;
    }
    if (!L.c_shut) {
        L.c_shut = true;
        nd_tcp_shutdown(L.cc);
        nd_tcp_close(L.cc);
        L.cc = NULL;
    }
}

static void l_client_cb(struct nd_tcp_conn *c, unsigned ev, void *udata)
{
    (void)udata;
    if (ev & ND_TCP_EV_CLOSED) {
        L.c_closed = true;
        L.c_err = nd_tcp_error(c);
        nd_tcp_close(c);
        L.cc = NULL;
        return;
    }
    if (ev & ND_TCP_EV_WRITE)
        l_client_push();
}

static void l_server_cb(struct nd_tcp_conn *c, unsigned ev, void *udata)
{
    struct nd_tcp_piece pc[8];
    int n, i;
    uint32_t k;

    (void)udata;
    while ((n = nd_tcp_recv_pieces(c, pc, 8)) > 0) {
        size_t sum = 0;

        for (i = 0; i < n; i++) {
            for (k = 0; k < pc[i].len; k++)
                CHECK(pc[i].data[k] == pattern(L.got + (uint32_t)sum + k));
            sum += pc[i].len;
        }
        L.got += (uint32_t)sum;
        nd_tcp_recv_consume(c, sum);
    }
    if (nd_tcp_eof(c) && !L.s_eof) {
        L.s_eof = true;
        CHECK(L.got == L.total);
        nd_tcp_close(c);
        L.sc = NULL;
    } else if (ev & ND_TCP_EV_CLOSED) {
        L.s_err = true; /* reset or timed out: the client gave up */
        CHECK(nd_tcp_error(c) != 0);
        nd_tcp_close(c);
        L.sc = NULL;
    }
}

static void count_conn(const struct nd_tcp_conn *c, void *arg)
{
    (void)c;
    (*(int *)arg)++;
}

static void l_accept(struct nd_tcp_listener *l, void *udata)
{
    struct nd_tcp_conn *c;

    (void)udata;
    while ((c = nd_tcp_accept(l))) {
        if (L.sc) { /* a second incarnation is not part of the game */
            nd_tcp_abort(c);
            continue;
        }
        L.sc = c;
        nd_tcp_set_keepalive(c, true);
        nd_tcp_set_cb(c, l_server_cb, NULL);
    }
}

static void fuzz_link(const uint8_t *data, size_t size)
{
    struct nd_tcp_config cfg;
    struct nd_tcp_flow f = {LADDR, RADDR, 40000, 80};
    struct nd_tcp_listener *l;
    uint64_t start;
    int err, i;

    memset(&L, 0, sizeof(L));
    L.now = start = 1000000;
    L.total = size > 2 ? (uint32_t)(data[1] | data[2] << 8) % 40000 + 1 : 1000;
    L.fz = data + 3;
    L.fzn = size > 3 ? size - 3 : 0;
    for (i = 0; i < 2; i++) {
        nd_tcp_config_defaults(&cfg);
        cfg.have_secret = true;
        memset(cfg.secret, i + 1, sizeof(cfg.secret));
        cfg.tx = link_tx;
        cfg.pkt_ops = &lops;
        cfg.now_ms = L.now;
        cfg.max_conns = 4;
        cfg.max_segs = 512;
        cfg.max_chunks = 64;
        cfg.rcvbuf = 8192 << (data[0] & 3);
        cfg.sndbuf = 16384;
        cfg.msl = 1000;
        cfg.keep_idle = 20000;
        cfg.keep_intvl = 2000;
        cfg.keep_cnt = 3;
        cfg.timestamps = !(data[0] & 0x04);
        cfg.sack = !(data[0] & 0x08);
        cfg.cc = data[0] & 0x10 ? ND_TCP_CC_NEWRENO : ND_TCP_CC_CUBIC;
        L.st[i] = nd_tcp_stack_new(&cfg, &err);
        CHECK(L.st[i]);
    }
    l = nd_tcp_listen(L.st[1], 0, 80, 4, l_accept, NULL, &err);
    CHECK(l);
    L.cc = nd_tcp_connect(L.st[0], &f, l_client_cb, NULL, &err);
    CHECK(L.cc);
    for (;;) {
        uint64_t next = L.now + 60000;
        int t, n = 0;

        nd_tcp_foreach(L.st[0], count_conn, &n);
        nd_tcp_foreach(L.st[1], count_conn, &n);
        if (!n && !L.q && !L.cc && !L.sc)
            break;
        CHECK(L.now - start < 4ull * 3600 * 1000); /* never a hang */
        for (i = 0; i < 2; i++) {
            t = nd_tcp_next_timer(L.st[i]);
            if (t >= 0 && L.now + (uint64_t)(t ? t : 1) < next)
                next = L.now + (uint64_t)(t ? t : 1);
        }
        if (L.q && L.q->due < next)
            next = L.q->due;
        L.now = next > L.now ? next : L.now + 1;
        nd_tcp_advance(L.st[0], L.now);
        nd_tcp_advance(L.st[1], L.now);
        /* what is due arrives as one burst, as the DPDK glue feeds it (one ACK per burst) */
        nd_tcp_batch_begin(L.st[0]);
        nd_tcp_batch_begin(L.st[1]);
        while (L.q && L.q->due <= L.now) {
            struct lpkt *k = L.q;
            struct nd_tcp_ipinfo ip = {k->src, k->dst, false};

            L.q = k->next;
            nd_tcp_input(L.st[k->to], &ip, k->d, k->len, k);
            lp_unref(k);
        }
        nd_tcp_batch_end(L.st[1]);
        nd_tcp_batch_end(L.st[0]);
    }
    CHECK(!L.s_eof || L.got == L.total);
    nd_tcp_unlisten(l);
    while (L.q) {
        struct lpkt *k = L.q;

        L.q = k->next;
        lp_unref(k);
    }
    nd_tcp_stack_free(L.st[0]);
    nd_tcp_stack_free(L.st[1]);
    CHECK(live == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nd_tcp_config cfg;
    struct nd_tcp_stack *s;
    struct nd_tcp_listener *l;
    struct nd_tcp_opts o;
    uint64_t now = 1000000;
    uint32_t peer = 0x1000, siss;
    size_t i = 0;
    int err;

    if (size && (data[0] & 0x20) && !(data[0] & 0x80)) {
        fuzz_link(data, size);
        return 0;
    }
    nd_tcp_config_defaults(&cfg);
    cfg.have_secret = true;
    memset(cfg.secret, 7, sizeof(cfg.secret));
    cfg.tx = fz_tx;
    cfg.pkt_ops = &ops;
    cfg.now_ms = now;
    cfg.max_conns = 8;
    cfg.max_segs = 256;
    cfg.max_chunks = 64;
    cfg.rcvbuf = 32768;
    cfg.sndbuf = 32768;
    cfg.msl = 500;
    cfg.keep_idle = 3000;
    cfg.keep_intvl = 500;
    cfg.challenge_ack_limit = 10;
    if (size && (data[0] & 0x80)) {
        cfg.timestamps = false;
        cfg.sack = data[0] & 0x40;
        cfg.syncookies = 2;
        cfg.cc = ND_TCP_CC_NEWRENO;
        cfg.nagle = true;
    }
    s = nd_tcp_stack_new(&cfg, &err);
    CHECK(s);
    nconns = 0;
    l = nd_tcp_listen(s, 0, 80, 2, fz_listen_cb, NULL, &err);
    CHECK(l);
    /* the established connection */
    memset(&o, 0, sizeof(o));
    o.mss_on = true;
    o.mss = 1000;
    o.ws_on = true;
    o.ws = 2;
    o.sack_perm = true;
    o.ts_on = true;
    o.tsval = 100;
    conn_rcv_nxt = conn_snd_nxt = 0;
    simple(s, ND_TCP_SYN, peer, 0, &o);
    siss = conn_snd_nxt;
    o.mss_on = o.ws_on = o.sack_perm = false;
    o.tsval = 101;
    simple(s, ND_TCP_ACK, peer + 1, siss, &o);
    if (size)
        i = 1;
    while (i + 1 < size) {
        uint8_t op = data[i], arg = data[i + 1];

        i += 2;
        switch (op & 3) {
        case 0:
        case 1: {
            size_t len = arg, k;
            uint8_t seg[300];

            if (len > size - i)
                len = size - i;
            if (len > sizeof(seg))
                len = sizeof(seg);
            memcpy(seg, data + i, len);
            i += len;
            if ((op & 3) == 0 && len >= 20) {
                nd_put16(seg, 40000);
                nd_put16(seg + 2, 80);
                if (op & 4) /* near what the connection expects */
                    nd_put32(seg + 4, conn_rcv_nxt + (uint32_t)(int8_t)seg[4] * 64);
                if (op & 8)
                    nd_put32(seg + 8, conn_snd_nxt + (uint32_t)(int8_t)seg[8] * 64);
            } else if (len >= 4) {
                uint16_t ports[4] = {80, 81, 443, 50000};

                nd_put16(seg + 2, ports[(op >> 2) & 3]);
            }
            if (op & 0x10) {
                for (k = 16; k + 1 < len && k < 18; k++)
                    seg[k] = 0;
                if (len >= 20) {
                    struct nd_tcp_piece pc = {seg + 20, (uint32_t)(len - 20), NULL};

                    nd_put16(seg + 16, nd_tcp_csum(RADDR, LADDR, seg, 20, &pc, 1));
                }
            }
            deliver(s, RADDR + ((op >> 5) & 1), seg, len, !(op & 0x10));
            break;
        }
        case 2:
            now += (uint64_t)arg * (op & 4 ? 64 : 1);
            nd_tcp_advance(s, now);
            break;
        case 3: {
            uint8_t a[2] = {(uint8_t)(op >> 2), arg};

            app_op(s, a, 2);
            break;
        }
        }
        nd_tcp_foreach(s, check_conn, &cfg);
    }
    /* let every timer run out: TIME_WAIT, retransmissions, keepalives */
    for (int k = 0; k < 40; k++) {
        now += 4000;
        nd_tcp_advance(s, now);
    }
    {
        const struct nd_tcp_stats *st = nd_tcp_stats(s);

        CHECK(st->segs_in >= 2);
    }
    while (nconns)
        nd_tcp_close(conns[--nconns]);
    nd_tcp_unlisten(l);
    nd_tcp_stack_free(s);
    CHECK(live == 0);
    return 0;
}
