/*
 * Two TCP engines back to back through a virtual link with seeded loss, duplication and
 * reordering, on a virtual clock. A client sends a pseudo-random stream; the server hashes what
 * it reads; the hashes, the byte counts and the virtual time are checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../dpdk/tcp.h"
#include "../../dpdk/tcp_wire.h"

#define A_ADDR 0xc6120001u /* 198.18.0.1 */
#define B_ADDR 0xc6120002u

struct pkt {
    struct pkt *next;
    int refs;
    uint64_t due;
    uint32_t src, dst, len;
    int to; /* 0: stack A, 1: stack B */
    uint8_t data[];
};

static long pkts_live;

static void pkt_ref(void *p)
{
    ((struct pkt *)p)->refs++;
}

static void pkt_unref(void *p)
{
    struct pkt *k = p;

    assert_true(k->refs > 0);
    if (--k->refs == 0) {
        pkts_live--;
        free(k);
    }
}

static const struct nd_tcp_pkt_ops pkt_ops = {pkt_ref, pkt_unref};

struct link {
    struct nd_tcp_stack *st[2];
    struct pkt *q; /* by due time */
    uint64_t now;
    uint64_t rng;
    double p_drop, p_dup, p_reorder;
    uint32_t delay_ms;
    uint64_t sent, dropped, duped, reordered;
};

static uint64_t rnd(struct link *l)
{
    l->rng ^= l->rng << 13;
    l->rng ^= l->rng >> 7;
    l->rng ^= l->rng << 17;
    return l->rng;
}

static double rnd01(struct link *l)
{
    return (double)(rnd(l) >> 11) / 9007199254740992.0;
}

static void enqueue(struct link *l, struct pkt *k)
{
    struct pkt **pp = &l->q;

    while (*pp && (*pp)->due <= k->due)
        pp = &(*pp)->next;
    k->next = *pp;
    *pp = k;
}

static struct pkt *pkt_copy(const struct pkt *o)
{
    struct pkt *k = malloc(sizeof(*k) + o->len);

    assert_non_null(k);
    memcpy(k, o, sizeof(*k) + o->len);
    k->refs = 1;
    pkts_live++;
    return k;
}

static int link_tx(struct nd_tcp_stack *s, const struct nd_tcp_tx *seg, void *udata)
{
    struct link *l = udata;
    struct pkt *k = malloc(sizeof(*k) + seg->hdr_len + seg->payload_len);
    uint32_t off;
    unsigned i;

    assert_non_null(k);
    pkts_live++;
    memset(k, 0, sizeof(*k));
    k->refs = 1;
    k->src = seg->flow.laddr;
    k->dst = seg->flow.raddr;
    k->to = s == l->st[0] ? 1 : 0;
    memcpy(k->data, seg->hdr, seg->hdr_len);
    off = seg->hdr_len;
    for (i = 0; i < seg->npiece; i++) {
        memcpy(k->data + off, seg->piece[i].data, seg->piece[i].len);
        off += seg->piece[i].len;
    }
    k->len = off;
    assert_int_equal(off, seg->hdr_len + seg->payload_len);
    assert_true(nd_tcp_csum_ok(k->src, k->dst, k->data, k->len));
    l->sent++;
    if (rnd01(l) < l->p_drop) {
        l->dropped++;
        pkt_unref(k);
        return 0;
    }
    k->due = l->now + l->delay_ms;
    if (rnd01(l) < l->p_reorder) {
        l->reordered++;
        k->due += 1 + rnd(l) % (2 * l->delay_ms);
    }
    if (rnd01(l) < l->p_dup) {
        struct pkt *d = pkt_copy(k);

        l->duped++;
        d->due += rnd(l) % 3;
        enqueue(l, d);
    }
    enqueue(l, k);
    return 0;
}

/* ---- the applications ---- */

struct app {
    struct nd_tcp_conn *c;
    uint64_t total, done, rng, hash;
    bool connected, closed, eof, shut;
    int err;
    uint64_t finish_time;
    struct link *l;
};

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void client_push(struct app *a)
{
    uint8_t buf[16384];

    while (a->done < a->total) {
        size_t n = a->total - a->done < sizeof(buf) ? (size_t)(a->total - a->done) : sizeof(buf);
        uint64_t r = a->rng;
        ssize_t w;
        size_t i;

        for (i = 0; i < n; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            buf[i] = (uint8_t)(r >> 56);
        }
        w = nd_tcp_send(a->c, buf, n);
        if (w == -11 /* EAGAIN */)
            return;
        if (w <= 0)
            print_error("send: %zd\n", w);
        assert_true(w > 0);
        /* advance the generator by what was taken */
        for (i = 0; i < (size_t)w; i++)
            a->rng = a->rng * 6364136223846793005ull + 1442695040888963407ull;
        a->hash = fnv(a->hash, buf, (size_t)w);
        a->done += (uint64_t)w;
    }
    if (!a->shut) {
        a->shut = true;
        nd_tcp_shutdown(a->c);
    }
}

static void client_cb(struct nd_tcp_conn *c, unsigned ev, void *udata)
{
    struct app *a = udata;

    (void)c;
    if (ev & ND_TCP_EV_CONNECTED)
        a->connected = true;
    if (ev & ND_TCP_EV_CLOSED) {
        a->closed = true;
        a->err = nd_tcp_error(c);
        a->finish_time = a->l->now;
        return;
    }
    if (ev & ND_TCP_EV_WRITE)
        client_push(a);
}

static void server_cb(struct nd_tcp_conn *c, unsigned ev, void *udata)
{
    struct app *a = udata;
    struct nd_tcp_piece pc[16];
    int n, i;

    if (ev & ND_TCP_EV_READ) {
        while ((n = nd_tcp_recv_pieces(c, pc, 16)) > 0) {
            size_t sum = 0;

            for (i = 0; i < n; i++) {
                a->hash = fnv(a->hash, pc[i].data, pc[i].len);
                sum += pc[i].len;
            }
            a->done += sum;
            nd_tcp_recv_consume(c, sum);
        }
        if (nd_tcp_eof(c) && !a->eof) {
            a->eof = true;
            a->finish_time = a->l->now;
            nd_tcp_close(c); /* our FIN; the handle is given back */
            a->c = NULL;
        }
    }
    if ((ev & ND_TCP_EV_CLOSED) && a->c) {
        a->closed = true;
        a->err = nd_tcp_error(c);
    }
}

static struct app server_app;

static void on_accept(struct nd_tcp_listener *l, void *udata)
{
    struct nd_tcp_conn *c;

    (void)udata;
    while ((c = nd_tcp_accept(l))) {
        assert_null(server_app.c);
        server_app.c = c;
        nd_tcp_set_cb(c, server_cb, &server_app);
    }
}

static uint32_t mk_zc_segs; /* cfg.max_zc_segs of the stacks mk() makes */

static struct nd_tcp_stack *mk(struct link *l, uint8_t seed, uint32_t rcvbuf)
{
    struct nd_tcp_config cfg;
    struct nd_tcp_stack *s;
    int err = 0;

    nd_tcp_config_defaults(&cfg);
    cfg.have_secret = true;
    memset(cfg.secret, seed, sizeof(cfg.secret));
    cfg.tx = link_tx;
    cfg.udata = l;
    cfg.pkt_ops = &pkt_ops;
    cfg.now_ms = l->now;
    cfg.max_conns = 8;
    cfg.rcvbuf = rcvbuf;
    cfg.msl = 500;
    cfg.rto_min = 200;
    cfg.max_zc_segs = mk_zc_segs;
    s = nd_tcp_stack_new(&cfg, &err);
    assert_non_null(s);
    return s;
}

struct result {
    uint64_t vtime, retrans, rto, fast;
};

static struct result run(double drop, double dup, double reorder, uint64_t bytes, uint64_t seed,
                         uint64_t limit_ms)
{
    struct link l;
    struct app client;
    struct nd_tcp_flow f = {A_ADDR, B_ADDR, 40001, 8080};
    struct nd_tcp_listener *lis;
    struct result r;
    uint64_t start;
    int err = 0;

    memset(&l, 0, sizeof(l));
    memset(&client, 0, sizeof(client));
    memset(&server_app, 0, sizeof(server_app));
    l.now = 5000000;
    start = l.now;
    l.rng = seed;
    l.p_drop = drop;
    l.p_dup = dup;
    l.p_reorder = reorder;
    l.delay_ms = 5;
    l.st[0] = mk(&l, 1, 256 * 1024);
    l.st[1] = mk(&l, 2, 256 * 1024);
    client.total = bytes;
    client.rng = seed * 7 + 1;
    client.hash = server_app.hash = 0xcbf29ce484222325ull;
    client.l = server_app.l = &l;
    lis = nd_tcp_listen(l.st[1], B_ADDR, 8080, 16, on_accept, NULL, &err);
    assert_non_null(lis);
    client.c = nd_tcp_connect(l.st[0], &f, client_cb, &client, &err);
    assert_non_null(client.c);
    while (!(client.closed && server_app.eof && !l.q) && l.now - start < limit_ms) {
        uint64_t next = l.now + 1000;
        int t0 = nd_tcp_next_timer(l.st[0]), t1 = nd_tcp_next_timer(l.st[1]);

        if (l.q && l.q->due < next)
            next = l.q->due;
        if (t0 >= 0 && l.now + (uint64_t)(t0 ? t0 : 1) < next)
            next = l.now + (uint64_t)(t0 ? t0 : 1);
        if (t1 >= 0 && l.now + (uint64_t)(t1 ? t1 : 1) < next)
            next = l.now + (uint64_t)(t1 ? t1 : 1);
        if (next <= l.now)
            next = l.now + 1;
        l.now = next;
        nd_tcp_advance(l.st[0], l.now);
        nd_tcp_advance(l.st[1], l.now);
        while (l.q && l.q->due <= l.now) {
            struct pkt *k = l.q;
            struct nd_tcp_ipinfo ip = {k->src, k->dst, false};

            l.q = k->next;
            nd_tcp_input(l.st[k->to], &ip, k->data, k->len, k);
            pkt_unref(k);
        }
    }
    {
        struct nd_tcp_info ci;
        const struct nd_tcp_stats *sa = nd_tcp_stats(l.st[0]);

        nd_tcp_conn_info(client.c, &ci);
        print_message("    %.1f%% drop %.1f%% dup %.1f%% reorder: %llu bytes in %llu ms virtual; "
                      "link: %llu segments, %llu dropped, %llu duplicated, %llu reordered; "
                      "sender: %llu retransmits (%llu RTO, %llu fast), srtt %u us, cwnd %u\n",
                      drop * 100, dup * 100, reorder * 100, (unsigned long long)server_app.done,
                      (unsigned long long)(server_app.finish_time - start),
                      (unsigned long long)l.sent, (unsigned long long)l.dropped,
                      (unsigned long long)l.duped, (unsigned long long)l.reordered,
                      (unsigned long long)sa->retransmits, (unsigned long long)sa->rto_expiries,
                      (unsigned long long)sa->fast_retransmits, ci.srtt_us, ci.cwnd);
        r.retrans = sa->retransmits;
        r.rto = sa->rto_expiries;
        r.fast = sa->fast_retransmits;
    }
    r.vtime = server_app.finish_time - start;
    assert_true(client.connected);
    assert_true(server_app.eof);
    assert_int_equal(server_app.done, bytes);
    assert_int_equal(client.done, bytes);
    assert_true(server_app.hash == client.hash);
    assert_true(client.closed);
    assert_int_equal(client.err, 0);
    nd_tcp_close(client.c);
    nd_tcp_unlisten(lis);
    while (l.q) {
        struct pkt *k = l.q;

        l.q = k->next;
        pkt_unref(k);
    }
    nd_tcp_stack_free(l.st[0]);
    nd_tcp_stack_free(l.st[1]);
    assert_int_equal(pkts_live, 0);
    return r;
}

static void test_clean_10mb(void **state)
{
    struct result r;

    (void)state;
    r = run(0, 0, 0, 10u << 20, 42, 60000);
    assert_int_equal(r.retrans, 0);
    assert_true(r.vtime < 5000);
}

static void test_lossy_10mb(void **state)
{
    struct result r;

    (void)state;
    r = run(0.01, 0.005, 0.01, 10u << 20, 7, 600000);
    assert_true(r.retrans > 0);
    assert_true(r.vtime < 120000);
}

static void test_lossy_seeds(void **state)
{
    uint64_t seed;

    (void)state;
    for (seed = 100; seed < 106; seed++)
        run(0.03, 0.01, 0.03, 1u << 20, seed, 600000);
}

/* ---- echo through zero-copy forwarding, with a slow reader ---- */

struct echo {
    struct nd_tcp_conn *c;
    uint64_t fwd;
    bool eof, shut;
    bool splice; /* forward with nd_tcp_splice(), else nd_tcp_send_zc() of each piece */
};
static struct echo echo_srv;

static void echo_pump(struct nd_tcp_conn *c)
{
    struct nd_tcp_piece pc[8];
    int n, i;

    /* forward what was received, as a proxy would: the queue's descriptors (splice) */
    while (echo_srv.splice && nd_tcp_readable(c)) {
        ssize_t w = nd_tcp_splice(c, c, nd_tcp_readable(c));

        if (w == -11 /* EAGAIN */)
            return; /* back-pressure: wait for WRITE */
        assert_true(w > 0);
        echo_srv.fwd += (uint64_t)w;
    }
    /* or the received pieces as they are (the packets, not copies) */
    while ((n = nd_tcp_recv_pieces(c, pc, 8)) > 0) {
        size_t done = 0;

        for (i = 0; i < n; i++) {
            ssize_t w = pc[i].pkt ? nd_tcp_send_zc(c, pc[i].data, pc[i].len, pc[i].pkt)
                                  : nd_tcp_send(c, pc[i].data, pc[i].len);

            if (w != (ssize_t)pc[i].len) {
                assert_true(w == -11 /* EAGAIN */ || (w >= 0 && !pc[i].pkt));
                if (w > 0)
                    done += (size_t)w;
                break;
            }
            done += pc[i].len;
        }
        nd_tcp_recv_consume(c, done);
        echo_srv.fwd += done;
        if (i < n)
            return; /* back-pressure: wait for WRITE */
    }
    if (nd_tcp_eof(c) && !echo_srv.shut) {
        echo_srv.shut = true;
        nd_tcp_close(c);
        echo_srv.c = NULL;
    }
}

static void echo_cb(struct nd_tcp_conn *c, unsigned ev, void *udata)
{
    (void)udata;
    if (ev & (ND_TCP_EV_READ | ND_TCP_EV_WRITE))
        echo_pump(c);
}

static void echo_accept(struct nd_tcp_listener *l, void *udata)
{
    struct nd_tcp_conn *c;

    (void)udata;
    while ((c = nd_tcp_accept(l))) {
        echo_srv.c = c;
        nd_tcp_set_cb(c, echo_cb, NULL);
    }
}

struct echo_client {
    struct nd_tcp_conn *c;
    uint64_t total, sent, got, rng, hash_out, hash_in;
    bool connected, shut, eof;
    int err;
};

static void echo_client_push(struct echo_client *a)
{
    uint8_t buf[8192];

    while (a->sent < a->total) {
        size_t n = a->total - a->sent < sizeof(buf) ? (size_t)(a->total - a->sent) : sizeof(buf);
        ssize_t w;
        size_t i;

        for (i = 0; i < n; i++)
            buf[i] = (uint8_t)((a->sent + i) * 131 + ((a->sent + i) >> 9));
        w = nd_tcp_send(a->c, buf, n);
        if (w == -11)
            return;
        assert_true(w > 0);
        a->hash_out = fnv(a->hash_out, buf, (size_t)w);
        a->sent += (uint64_t)w;
    }
    if (!a->shut) {
        a->shut = true;
        nd_tcp_shutdown(a->c);
    }
}

static void echo_client_cb(struct nd_tcp_conn *c, unsigned ev, void *udata)
{
    struct echo_client *a = udata;

    (void)c;
    if (ev & ND_TCP_EV_CONNECTED)
        a->connected = true;
    if (ev & ND_TCP_EV_CLOSED)
        a->err = nd_tcp_error(c);
    if (ev & ND_TCP_EV_WRITE)
        echo_client_push(a);
    /* reading is paced by the main loop: a slow reader */
}

static void echo_client_drain(struct echo_client *a, size_t budget)
{
    struct nd_tcp_piece pc[8];
    int n, i;

    while (budget && (n = nd_tcp_recv_pieces(a->c, pc, 8)) > 0) {
        size_t take = 0;

        for (i = 0; i < n && take < budget; i++) {
            size_t k = pc[i].len < budget - take ? pc[i].len : budget - take;

            a->hash_in = fnv(a->hash_in, pc[i].data, k);
            take += k;
        }
        nd_tcp_recv_consume(a->c, take);
        a->got += take;
        budget -= take;
    }
    if (nd_tcp_eof(a->c))
        a->eof = true;
}

/* 2 MB echoed to a client with a 16 KiB receive buffer reading at 2 MB/s, over a lossy link.
 * zc_segs: the server's max_zc_segs. */
static const struct nd_tcp_stats *echo_run(bool splice, uint32_t zc_segs)
{
    static struct nd_tcp_stats server_stats;
    struct link l;
    struct echo_client cl;
    struct nd_tcp_flow f = {A_ADDR, B_ADDR, 40002, 7};
    struct nd_tcp_listener *lis;
    const struct nd_tcp_stats *sa, *sb;
    uint64_t start, last;
    int err = 0;

    memset(&l, 0, sizeof(l));
    memset(&cl, 0, sizeof(cl));
    memset(&echo_srv, 0, sizeof(echo_srv));
    echo_srv.splice = splice;
    l.now = last = start = 9000000;
    l.rng = 99;
    l.p_drop = 0.01;
    l.p_dup = 0.005;
    l.p_reorder = 0.01;
    l.delay_ms = 2;
    mk_zc_segs = 0;
    l.st[0] = mk(&l, 3, 16 * 1024); /* the client: a small receive buffer */
    mk_zc_segs = zc_segs;
    l.st[1] = mk(&l, 4, 64 * 1024);
    mk_zc_segs = 0;
    cl.total = 2u << 20;
    cl.hash_out = cl.hash_in = 0xcbf29ce484222325ull;
    lis = nd_tcp_listen(l.st[1], 0, 7, 4, echo_accept, NULL, &err);
    assert_non_null(lis);
    cl.c = nd_tcp_connect(l.st[0], &f, echo_client_cb, &cl, &err);
    assert_non_null(cl.c);
    while (!(cl.eof && !l.q) && l.now - start < 300000) {
        uint64_t next = l.now + 1;

        if (l.q && l.q->due > next && !nd_tcp_readable(cl.c)) {
            int t0 = nd_tcp_next_timer(l.st[0]), t1 = nd_tcp_next_timer(l.st[1]);

            next = l.q->due;
            if (t0 >= 0 && l.now + (uint64_t)(t0 ? t0 : 1) < next)
                next = l.now + (uint64_t)(t0 ? t0 : 1);
            if (t1 >= 0 && l.now + (uint64_t)(t1 ? t1 : 1) < next)
                next = l.now + (uint64_t)(t1 ? t1 : 1);
        }
        l.now = next;
        nd_tcp_advance(l.st[0], l.now);
        nd_tcp_advance(l.st[1], l.now);
        while (l.q && l.q->due <= l.now) {
            struct pkt *k = l.q;
            struct nd_tcp_ipinfo ip = {k->src, k->dst, k->len & 1}; /* some "NIC-verified" */

            l.q = k->next;
            nd_tcp_input(l.st[k->to], &ip, k->data, k->len, k);
            pkt_unref(k);
        }
        echo_client_drain(&cl, (size_t)(l.now - last) * 2000); /* 2 MB/s */
        last = l.now;
    }
    sa = nd_tcp_stats(l.st[0]);
    sb = nd_tcp_stats(l.st[1]);
    print_message("    echo %llu bytes in %llu ms virtual; retransmits client %llu server %llu; "
                  "server persist probes %llu; spliced %llu moved, %llu copied\n",
                  (unsigned long long)cl.got, (unsigned long long)(l.now - start),
                  (unsigned long long)sa->retransmits, (unsigned long long)sb->retransmits,
                  (unsigned long long)sb->persist_probes, (unsigned long long)sb->splice_moved,
                  (unsigned long long)sb->splice_copied);
    server_stats = *sb;
    assert_true(cl.eof);
    assert_int_equal(cl.got, cl.total);
    assert_int_equal(echo_srv.fwd, cl.total);
    assert_true(cl.hash_in == cl.hash_out);
    assert_int_equal(cl.err, 0);
    nd_tcp_close(cl.c);
    nd_tcp_unlisten(lis);
    while (l.q) {
        struct pkt *k = l.q;

        l.q = k->next;
        pkt_unref(k);
    }
    nd_tcp_stack_free(l.st[0]);
    nd_tcp_stack_free(l.st[1]);
    assert_int_equal(pkts_live, 0);
    return &server_stats;
}

static void test_echo_zero_copy_slow_reader(void **state)
{
    (void)state;
    echo_run(false, 0);
}

/* The same through nd_tcp_splice(), with a bound on the packets send queues may hold small
 * enough that the server both moves packets and copies past the bound. */
static void test_echo_splice_slow_reader(void **state)
{
    const struct nd_tcp_stats *st;

    (void)state;
    st = echo_run(true, 128);
    assert_true(st->splice_moved > (1u << 20));
    assert_true(st->splice_copied > 0);
    assert_true(st->splice_zc_limited > 0);
    assert_int_equal(st->splice_moved + st->splice_copied, 2u << 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_10mb),
        cmocka_unit_test(test_lossy_10mb),
        cmocka_unit_test(test_lossy_seeds),
        cmocka_unit_test(test_echo_zero_copy_slow_reader),
        cmocka_unit_test(test_echo_splice_slow_reader),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
