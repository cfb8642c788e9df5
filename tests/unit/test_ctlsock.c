/*
 * Control-plane sockets (core/ctlsock.h). The kernel backend on loopback: UDP both ways, a TCP
 * listener, connect, OUT once connected, bytes both ways, end of stream, reset, refusal. The
 * relay (core/ctlsock_relay.c, what runs over DPDK) with the test as its workers: the messages
 * each call makes, the send window and receive credit, the bounds (datagram queue, accept
 * backlog, streams) with their counters, commands held in order while a ring is full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "ctlsock.h"

struct seen {
    unsigned ev, calls;
};

static void note(struct nd_ctl_sock *s, unsigned ev, void *arg)
{
    struct seen *w = arg;

    (void)s;
    w->ev |= ev;
    w->calls++;
}

/* Runs c until cond(arg) holds, at most 2 s. */
static int run_until(struct nd_ctl *c, int (*cond)(void *), void *arg)
{
    for (int i = 0; i < 200; i++) {
        struct pollfd p = {.fd = nd_ctl_fd(c), .events = POLLIN};

        if (cond(arg))
            return 1;
        poll(&p, 1, 10);
        nd_ctl_run(c);
    }
    return cond(arg);
}

static int has_in(void *arg)
{
    return (((struct seen *)arg)->ev & ND_CTL_IN) != 0;
}

static int has_out(void *arg)
{
    return (((struct seen *)arg)->ev & ND_CTL_OUT) != 0;
}

static void loopback(struct nd_addr *a, uint16_t port)
{
    char text[32];

    snprintf(text, sizeof text, "127.0.0.1:%u", port);
    assert_int_equal(nd_parse_addr(text, a), 0);
}

static bool port_free(uint16_t port, int type)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, type, 0), one = 1, rc;

    if (fd < 0)
        return false;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    rc = bind(fd, (struct sockaddr *)&sin, sizeof(sin));
    close(fd);
    return rc == 0;
}

/* Port number `base` (0-3) of this test: free for TCP and UDP on 127.0.0.1 when first asked
 * (other tests run beside this one), below the kernel's ephemeral range, the same afterwards. */
static uint16_t port_of(int base)
{
    static uint16_t ports[4];

    assert_true(base >= 0 && base < 4);
    for (unsigned k = 0; !ports[base] && k < 1000; k++) {
        uint16_t p = (uint16_t)(20000 + (getpid() * 4 + base + k * 4) % 12000);

        if (port_free(p, SOCK_STREAM) && port_free(p, SOCK_DGRAM))
            ports[base] = p;
    }
    assert_true(ports[base] != 0);
    return ports[base];
}

static void test_kernel_udp(void **state)
{
    struct nd_ctl *c = nd_ctl_kernel_new();
    struct nd_addr a, b;
    struct seen wa = {0}, wb = {0};
    struct nd_ctl_sock *sa, *sb;
    struct nd_ctl_addr to = {.len = 4, .ip = {127, 0, 0, 1}}, from;
    char buf[64];
    int err = 0;

    (void)state;
    assert_non_null(c);
    loopback(&a, port_of(0));
    loopback(&b, port_of(1));
    sa = nd_ctl_udp(c, &a, note, &wa, &err);
    sb = nd_ctl_udp(c, &b, note, &wb, &err);
    assert_non_null(sa);
    assert_non_null(sb);
    assert_int_equal(nd_ctl_recvfrom(sb, buf, sizeof buf, &from), -EAGAIN);
    to.port = port_of(1);
    assert_int_equal(nd_ctl_sendto(sa, &to, "ping", 4), 0);
    assert_true(run_until(c, has_in, &wb));
    assert_int_equal(nd_ctl_recvfrom(sb, buf, sizeof buf, &from), 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(from.len, 4);
    assert_int_equal(from.port, port_of(0));
    {
        char want[32], got[64];

        snprintf(want, sizeof want, "127.0.0.1:%u", port_of(0));
        assert_string_equal(nd_ctl_addr_str(&from, got, sizeof got), want);
    }
    assert_int_equal(nd_ctl_recvfrom(sb, buf, sizeof buf, &from), -EAGAIN);
    nd_ctl_close(sa, false);
    nd_ctl_close(sb, false);
    nd_ctl_free(c);
}

struct server {
    struct nd_ctl_sock *l, *s;
    struct seen w;
};

static void on_listen(struct nd_ctl_sock *l, unsigned ev, void *arg)
{
    struct server *sv = arg;
    struct nd_ctl_addr peer;
    int err;

    (void)ev;
    if (!sv->s)
        sv->s = nd_ctl_accept(l, note, &sv->w, &peer, &err);
}

static int accepted(void *arg)
{
    return ((struct server *)arg)->s != NULL;
}

static void test_kernel_tcp(void **state)
{
    struct nd_ctl *c = nd_ctl_kernel_new();
    struct server sv = {0};
    struct seen wc = {0};
    struct nd_addr a;
    struct nd_ctl_addr to = {.len = 4, .ip = {127, 0, 0, 1}, .port = port_of(2)};
    struct nd_ctl_sock *cs;
    char buf[64];
    int err = 0;

    (void)state;
    loopback(&a, port_of(2));
    sv.l = nd_ctl_listen(c, &a, 8, on_listen, &sv, &err);
    assert_non_null(sv.l);
    cs = nd_ctl_connect(c, &to, note, &wc, &err);
    assert_non_null(cs);
    assert_true(run_until(c, has_out, &wc));
    assert_int_equal(nd_ctl_connect_result(cs), 0);
    assert_true(run_until(c, accepted, &sv));
    assert_int_equal(nd_ctl_write(cs, "hello", 5), 5);
    assert_true(run_until(c, has_in, &sv.w));
    assert_int_equal(nd_ctl_read(sv.s, buf, sizeof buf), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(nd_ctl_read(sv.s, buf, sizeof buf), -EAGAIN);
    /* end of stream: reported once, then no more IN */
    nd_ctl_shutdown(cs);
    sv.w.ev = 0;
    assert_true(run_until(c, has_in, &sv.w));
    assert_int_equal(nd_ctl_read(sv.s, buf, sizeof buf), 0);
    sv.w.ev = 0;
    nd_ctl_run(c);
    nd_ctl_run(c);
    assert_int_equal(sv.w.ev & ND_CTL_IN, 0);
    /* the other way still works after the half-close */
    assert_int_equal(nd_ctl_write(sv.s, "bye", 3), 3);
    wc.ev = 0;
    assert_true(run_until(c, has_in, &wc));
    assert_int_equal(nd_ctl_read(cs, buf, sizeof buf), 3);
    /* a reset */
    nd_ctl_close(sv.s, true);
    wc.ev = 0;
    assert_true(run_until(c, has_in, &wc));
    assert_int_equal(nd_ctl_read(cs, buf, sizeof buf), -ECONNRESET);
    nd_ctl_close(cs, false);
    nd_ctl_close(sv.l, false);
    nd_ctl_free(c);
}

static void test_kernel_refused(void **state)
{
    struct nd_ctl *c = nd_ctl_kernel_new();
    struct seen wc = {0};
    struct nd_ctl_addr to = {.len = 4, .ip = {127, 0, 0, 1}, .port = port_of(3)};
    struct nd_ctl_sock *cs;
    int err = 0;

    (void)state;
    cs = nd_ctl_connect(c, &to, note, &wc, &err);
    assert_non_null(cs);
    assert_int_equal(nd_ctl_connect_result(cs), -EINPROGRESS);
    assert_true(run_until(c, has_out, &wc));
    assert_int_equal(nd_ctl_connect_result(cs), -ECONNREFUSED);
    nd_ctl_close(cs, false);
    nd_ctl_free(c);
}

/* ---- the relay (ctlsock_relay.c) over a fake transport: the workers are the test ----------- */

#include <sys/eventfd.h>

#include "ctlmsg.h"

#define FW 2 /* workers */

struct fake {
    struct nd_ctl_mq cmd[FW]; /* what the relay posted to each worker */
    unsigned cap;             /* ring size: posts beyond it are refused */
    struct nd_ctl_mq evt;     /* what the workers post */
    struct nd_ctl_stats wst;
    int fd;
};

static int f_post(void *arg, unsigned w, struct nd_ctl_msg *m)
{
    struct fake *f = arg;

    if (f->cmd[w].n >= f->cap)
        return -ENOBUFS;
    nd_ctl_mq_push(&f->cmd[w], m);
    return 0;
}

static unsigned f_take(void *arg, struct nd_ctl_msg **m, unsigned max)
{
    struct fake *f = arg;
    unsigned n = 0;

    while (n < max && f->evt.head)
        m[n++] = nd_ctl_mq_pop(&f->evt);
    return n;
}

static bool f_idle(void *arg)
{
    struct fake *f = arg;

    return !f->cmd[0].n && !f->cmd[1].n;
}

static void f_stats(void *arg, struct nd_ctl_stats *st)
{
    st->udp_dropped += ((struct fake *)arg)->wst.udp_dropped;
}

static void f_free(void *arg)
{
    struct fake *f = arg;

    for (unsigned w = 0; w < FW; w++)
        nd_ctl_mq_clear(&f->cmd[w]);
    nd_ctl_mq_clear(&f->evt);
    close(f->fd);
}

static struct nd_ctl *relay(struct fake *f, unsigned cap)
{
    struct nd_ctl_transport t = {.nworkers = FW,
                                 .post = f_post,
                                 .take = f_take,
                                 .idle = f_idle,
                                 .stats = f_stats,
                                 .free = f_free,
                                 .arg = f};

    memset(f, 0, sizeof(*f));
    f->cap = cap;
    f->fd = t.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return nd_ctl_relay_new(&t);
}

/* A worker's event. */
static void ev(struct fake *f, unsigned w, unsigned type, uint32_t id, int err, uint32_t n,
               const void *data, size_t len)
{
    struct nd_ctl_msg *m = nd_ctl_msg_new(type, id, data, len);

    m->worker = (uint16_t)w;
    m->err = err;
    m->n = n;
    m->addr = (struct nd_ctl_addr){.len = 4, .ip = {198, 18, 0, 1}, .port = 4000 + (uint16_t)w};
    nd_ctl_mq_push(&f->evt, m);
}

/* The next command to worker w (the test frees it). */
static struct nd_ctl_msg *cmd(struct fake *f, unsigned w)
{
    return nd_ctl_mq_pop(&f->cmd[w]);
}

static void test_relay_udp(void **state)
{
    struct fake f;
    struct nd_ctl *c = relay(&f, 64);
    struct nd_addr a;
    struct seen wu = {0};
    struct nd_ctl_sock *s;
    struct nd_ctl_addr from, to = {.len = 4, .ip = {198, 18, 0, 9}, .port = 7946};
    struct nd_ctl_msg *m;
    char buf[16];
    uint32_t id;
    int err = 0;

    (void)state;
    assert_int_equal(nd_parse_addr("0.0.0.0:7946", &a), 0);
    s = nd_ctl_udp(c, &a, note, &wu, &err);
    assert_non_null(s);
    for (unsigned w = 0; w < FW; w++) { /* bound on every worker */
        m = cmd(&f, w);
        assert_int_equal(m->type, ND_CTLM_UDP_BIND);
        assert_int_equal(m->addr.port, 7946);
        id = m->id;
        free(m);
    }
    /* datagrams from both workers; beyond the queue's bound they are dropped and counted */
    for (unsigned i = 0; i < ND_CTL_UDP_QUEUE + 10; i++)
        ev(&f, i % FW, ND_CTLM_DGRAM, id, 0, 0, "abc", 3);
    nd_ctl_run(c);
    assert_true(wu.ev & ND_CTL_IN);
    assert_int_equal(nd_ctl_stats(c)->udp_dropped, 10);
    assert_int_equal(nd_ctl_recvfrom(s, buf, 2, &from), 2); /* truncated to the buffer */
    assert_memory_equal(buf, "ab", 2);
    assert_int_equal(from.port, 4000);
    for (unsigned i = 1; i < ND_CTL_UDP_QUEUE; i++)
        assert_int_equal(nd_ctl_recvfrom(s, buf, sizeof buf, &from), 3);
    assert_int_equal(nd_ctl_recvfrom(s, buf, sizeof buf, &from), -EAGAIN);
    /* a send goes to one worker; a full ring drops it (counted) */
    assert_int_equal(nd_ctl_sendto(s, &to, "x", 1), 0);
    m = f.cmd[0].head ? cmd(&f, 0) : cmd(&f, 1);
    assert_int_equal(m->type, ND_CTLM_UDP_SEND);
    assert_int_equal(m->addr.port, 7946);
    assert_int_equal(m->len, 1);
    free(m);
    f.cap = 0;
    assert_int_equal(nd_ctl_sendto(s, &to, "x", 1), -ENOBUFS);
    assert_int_equal(nd_ctl_stats(c)->udp_dropped, 11);
    f.cap = 64;
    to.len = 16;
    assert_int_equal(nd_ctl_sendto(s, &to, "x", 1), -EAFNOSUPPORT);
    nd_ctl_close(s, false);
    for (unsigned w = 0; w < FW; w++) {
        m = cmd(&f, w);
        assert_int_equal(m->type, ND_CTLM_CLOSE);
        free(m);
    }
    nd_ctl_free(c);
}

static void test_relay_stream_windows(void **state)
{
    struct fake f;
    struct nd_ctl *c = relay(&f, 64);
    struct nd_ctl_addr to = {.len = 4, .ip = {198, 18, 1, 1}, .port = 7946};
    static uint8_t big[100000], got[100000];
    struct seen ws = {0};
    struct nd_ctl_sock *s;
    struct nd_ctl_msg *m;
    unsigned w, sends = 0;
    uint32_t credit = 0;
    int err;

    (void)state;
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    s = nd_ctl_connect(c, &to, note, &ws, &err);
    assert_non_null(s);
    w = f.cmd[0].head ? 0 : 1;
    m = cmd(&f, w);
    assert_int_equal(m->type, ND_CTLM_CONNECT);
    assert_int_equal(m->n, ND_CTL_WINDOW); /* the worker may read this much before a credit */
    assert_int_equal(nd_ctl_connect_result(s), -EINPROGRESS);
    assert_int_equal(nd_ctl_write(s, big, 10), -EAGAIN);
    assert_int_equal(m->id, 1); /* the relay's ids start at 1 */
    ev(&f, w, ND_CTLM_CONNECTED, m->id, 0, 0, NULL, 0);
    free(m);
    nd_ctl_run(c);
    assert_true(ws.ev & ND_CTL_OUT);
    assert_int_equal(nd_ctl_connect_result(s), 0);
    /* send window: at most ND_CTL_WINDOW bytes not yet taken by the worker's engine */
    assert_int_equal(nd_ctl_write(s, big, sizeof big), ND_CTL_WINDOW);
    assert_int_equal(nd_ctl_write(s, big, 1), -EAGAIN);
    while ((m = cmd(&f, w))) {
        assert_int_equal(m->type, ND_CTLM_SEND);
        assert_true(m->len <= ND_CTL_CHUNK);
        assert_memory_equal(m->data, big + sends * ND_CTL_CHUNK, m->len);
        sends++;
        free(m);
    }
    assert_int_equal(sends, ND_CTL_WINDOW / ND_CTL_CHUNK);
    ws.ev = 0;
    ev(&f, w, ND_CTLM_SENT, 1, 0, 20000, NULL, 0);
    nd_ctl_run(c);
    assert_true(ws.ev & ND_CTL_OUT); /* room again */
    assert_int_equal(nd_ctl_write(s, big, sizeof big), 20000);
    while ((m = cmd(&f, w)))
        free(m);
    /* receive credit: what the owner reads is granted back */
    ws.ev = 0;
    for (unsigned i = 0; i < 4; i++)
        ev(&f, w, ND_CTLM_DATA, 1, 0, 0, big + i * 16384, 16384);
    ev(&f, w, ND_CTLM_EOF, 1, 0, 0, NULL, 0);
    nd_ctl_run(c);
    assert_true(ws.ev & ND_CTL_IN);
    assert_int_equal(nd_ctl_read(s, got, 1000), 1000);
    assert_int_equal(nd_ctl_read(s, got + 1000, sizeof got - 1000), 65536 - 1000);
    assert_memory_equal(got, big, 65536);
    while ((m = cmd(&f, w))) {
        assert_int_equal(m->type, ND_CTLM_CREDIT);
        credit += m->n;
        free(m);
    }
    assert_int_equal(credit, 65536);
    assert_int_equal(nd_ctl_read(s, got, sizeof got), 0); /* the end, once */
    ws.ev = 0;
    nd_ctl_run(c);
    assert_int_equal(ws.ev, 0);
    /* an error after: reported by write */
    ev(&f, w, ND_CTLM_CLOSED, 1, -ECONNRESET, 0, NULL, 0);
    nd_ctl_run(c);
    assert_int_equal(nd_ctl_write(s, big, 1), -ECONNRESET);
    nd_ctl_close(s, false);
    assert_null(cmd(&f, w)); /* the worker forgot it already: no CLOSE */
    nd_ctl_free(c);
}

struct acc {
    struct nd_ctl_sock *got[4];
    struct nd_ctl_addr peer[4];
    unsigned n;
};

static void on_acc(struct nd_ctl_sock *l, unsigned e, void *arg)
{
    struct acc *a = arg;
    struct nd_ctl_sock *s;
    int err;

    (void)e;
    while (a->n < 1 && (s = nd_ctl_accept(l, note, NULL, &a->peer[a->n], &err)))
        a->got[a->n++] = s;
}

static void test_relay_listen_bounds(void **state)
{
    struct fake f;
    struct nd_ctl *c = relay(&f, 1024);
    struct nd_addr a;
    struct acc acc = {0};
    struct nd_ctl_sock *l;
    struct nd_ctl_msg *m;
    uint32_t lid = 0;
    int err;

    (void)state;
    assert_int_equal(nd_parse_addr("198.18.0.2:15000", &a), 0);
    l = nd_ctl_listen(c, &a, 2, on_acc, &acc, &err);
    assert_non_null(l);
    for (unsigned w = 0; w < FW; w++) {
        m = cmd(&f, w);
        assert_int_equal(m->type, ND_CTLM_LISTEN);
        assert_int_equal(m->n, 2);
        lid = m->id;
        free(m);
    }
    /* three connections on two workers, all before the owner runs: the backlog holds two, the
     * third is refused with a reset on its worker */
    for (uint32_t i = 0; i < 3; i++) {
        ev(&f, i % FW, ND_CTLM_ACCEPTED, lid, 0, 0, NULL, 0);
        f.evt.tail->sid = 0x80000000u | i;
    }
    nd_ctl_run(c);
    assert_int_equal(acc.n, 1);
    assert_int_equal(acc.peer[0].port, 4000);
    assert_int_equal(nd_ctl_stats(c)->conns_refused, 1);
    m = cmd(&f, 0);
    assert_int_equal(m->type, ND_CTLM_CLOSE);
    assert_int_equal(m->id, 0x80000002u);
    assert_int_equal(m->flag, 1);
    free(m);
    /* the accepted stream talks to its own worker */
    assert_int_equal(nd_ctl_write(acc.got[0], "hi", 2), 2);
    m = cmd(&f, 0);
    assert_int_equal(m->type, ND_CTLM_SEND);
    assert_int_equal(m->id, 0x80000000u);
    free(m);
    /* closing the listener resets the connections nobody accepted */
    nd_ctl_close(l, false);
    for (unsigned w = 0; w < FW; w++)
        while ((m = cmd(&f, w))) {
            assert_int_equal(m->type, ND_CTLM_CLOSE);
            assert_true(m->id == lid || m->flag == 1);
            free(m);
        }
    nd_ctl_close(acc.got[0], true);
    m = cmd(&f, 0);
    assert_int_equal(m->flag, 1);
    free(m);
    nd_ctl_free(c);
}

static void test_relay_bounds_and_order(void **state)
{
    struct fake f;
    struct nd_ctl *c = relay(&f, 3);
    struct nd_ctl_addr to = {.len = 4, .ip = {198, 18, 1, 1}, .port = 80};
    struct nd_ctl_sock *s[ND_CTL_MAX_STREAMS];
    struct nd_ctl_msg *m;
    uint32_t last[FW] = {0};
    unsigned seen = 0;
    int err;

    (void)state;
    /* a full ring holds commands back, in order, until the worker takes some */
    for (unsigned i = 0; i < ND_CTL_MAX_STREAMS; i++)
        assert_non_null(s[i] = nd_ctl_connect(c, &to, note, NULL, &err));
    assert_null(nd_ctl_connect(c, &to, note, NULL, &err));
    assert_int_equal(err, -ENOBUFS);
    assert_int_equal(nd_ctl_stats(c)->conns_refused, 1);
    assert_true(nd_ctl_stats(c)->msgs_deferred > 0);
    for (unsigned round = 0; round < 100 && seen < ND_CTL_MAX_STREAMS; round++) {
        for (unsigned w = 0; w < FW; w++)
            while ((m = cmd(&f, w))) {
                assert_int_equal(m->type, ND_CTLM_CONNECT);
                assert_true(m->id > last[w]); /* in order */
                last[w] = m->id;
                seen++;
                free(m);
            }
        nd_ctl_run(c);
    }
    assert_int_equal(seen, ND_CTL_MAX_STREAMS); /* nothing lost */
    f.cap = 1024;
    for (unsigned i = 0; i < ND_CTL_MAX_STREAMS; i++)
        nd_ctl_close(s[i], false);
    nd_ctl_settle(c, 10);
    nd_ctl_free(c);
}

static void test_relay_refused_connect(void **state)
{
    struct fake f;
    struct nd_ctl *c = relay(&f, 64);
    struct nd_ctl_addr to = {.len = 4, .ip = {198, 18, 1, 1}, .port = 81};
    struct seen ws = {0};
    struct nd_ctl_sock *s;
    struct nd_ctl_msg *m;
    unsigned w;
    char b[4];
    int err;

    (void)state;
    s = nd_ctl_connect(c, &to, note, &ws, &err);
    w = f.cmd[0].head ? 0 : 1;
    m = cmd(&f, w);
    ev(&f, w, ND_CTLM_CONNECTED, m->id, -ECONNREFUSED, 0, NULL, 0);
    free(m);
    nd_ctl_run(c);
    assert_true(ws.ev & ND_CTL_OUT);
    assert_int_equal(nd_ctl_connect_result(s), -ECONNREFUSED);
    assert_int_equal(nd_ctl_read(s, b, sizeof b), -ECONNREFUSED);
    nd_ctl_close(s, false);
    assert_null(cmd(&f, w));
    assert_string_equal(nd_ctl_msg_name(ND_CTLM_ACCEPTED), "accepted");
    assert_string_equal(nd_ctl_msg_name(0), "?");
    nd_ctl_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_udp),
        cmocka_unit_test(test_kernel_tcp),
        cmocka_unit_test(test_kernel_refused),
        cmocka_unit_test(test_relay_udp),
        cmocka_unit_test(test_relay_stream_windows),
        cmocka_unit_test(test_relay_listen_bounds),
        cmocka_unit_test(test_relay_bounds_and_order),
        cmocka_unit_test(test_relay_refused_connect),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
