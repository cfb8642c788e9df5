/*
 * Control-plane sockets (core/ctlsock.h). The kernel backend on loopback: UDP both ways, a TCP
 * listener, connect, OUT once connected, bytes both ways, end of stream, reset, refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static uint16_t port_of(int base)
{
    return (uint16_t)(20000 + base + (getpid() % 2000) * 8);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_udp),
        cmocka_unit_test(test_kernel_tcp),
        cmocka_unit_test(test_kernel_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
