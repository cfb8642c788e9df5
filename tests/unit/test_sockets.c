/*
 * `nodus sockets` (core/sockets.c): the kernel's TCP sockets of this process as the test makes
 * them on loopback (a listener with a connection waiting, an accepted connection with unread
 * bytes, one watched by a "worker" epoll instance), the bounded list, the JSON answer and the
 * table printed from it.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"
#include "sockets.h"
#include "worker.h"

static int listen_loopback(int backlog, char *addr, size_t len)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    snprintf(addr, len, "127.0.0.1:%u", ntohs(a.sin_port));
    return fd;
}

static int connect_to(int lfd, char *local, size_t len)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    al = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    snprintf(local, len, "127.0.0.1:%u", ntohs(a.sin_port));
    return fd;
}

static const struct nd_sock *find(const struct nd_socklist *l, const char *local,
                                  const char *remote)
{
    for (unsigned i = 0; i < l->n; i++)
        if (!strcmp(l->s[i].local, local) && !strcmp(l->s[i].remote, remote))
            return &l->s[i];
    return NULL;
}

static void test_kernel_sockets(void **state)
{
    char laddr[64], c1addr[64], c2addr[64];
    int lfd = listen_loopback(7, laddr, sizeof(laddr));
    int c1 = connect_to(lfd, c1addr, sizeof(c1addr)), c2, s1, ep;
    struct nd_worker w[1];
    struct epoll_event ev = {.events = EPOLLIN};
    const struct nd_sock *k;
    struct nd_socklist l;

    (void)state;
    /* the listener holds c1's connection in its accept queue */
    assert_int_equal(nd_socklist_init(&l, 64), 0);
    nd_sockets_kernel(&l);
    k = find(&l, laddr, "*:*");
    assert_non_null(k);
    assert_string_equal(k->state, "LISTEN");
    assert_true(k->listener);
    assert_false(k->dpdk);
    assert_int_equal(k->recv_q, 1); /* waiting for accept */
    assert_int_equal(k->send_q, 7); /* the backlog */
    assert_int_equal(k->worker, -1);
    nd_socklist_free(&l);

    /* accepted, with 100 unread bytes, and watched by worker 0's epoll instance */
    s1 = accept(lfd, NULL, NULL);
    assert_true(s1 >= 0);
    assert_int_equal(write(c1, "0123456789", 10), 10);
    for (int i = 0; i < 9; i++)
        assert_int_equal(write(c1, "0123456789", 10), 10);
    c2 = connect_to(lfd, c2addr, sizeof(c2addr));
    ep = epoll_create1(EPOLL_CLOEXEC);
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, s1, &ev), 0);
    memset(w, 0, sizeof(w));
    w[0].epfd = ep;
    nd_rt.workers = w;
    nd_rt.nworkers = 1;
    usleep(20000);
    assert_int_equal(nd_socklist_init(&l, 64), 0);
    nd_sockets_kernel(&l);
    k = find(&l, laddr, c1addr);
    assert_non_null(k);
    assert_string_equal(k->state, "ESTABLISHED");
    assert_int_equal(k->recv_q, 100);
    assert_int_equal(k->worker, 0);
    assert_true(k->info);
    assert_true(k->mss > 0);
    assert_true(k->cwnd > 0);
    assert_in_range(k->bytes_received, 100, 101); /* Linux counts the SYN in some versions */
    k = find(&l, c1addr, laddr);                  /* the client's side: its bytes acknowledged */
    assert_non_null(k);
    assert_int_equal(k->worker, -1);
    assert_int_equal(k->send_q, 0);
    assert_in_range(k->bytes_acked, 100, 101);
    assert_non_null(find(&l, c2addr, laddr));
    k = find(&l, laddr, "*:*");
    assert_int_equal(k->recv_q, 1); /* c2 waits */
    nd_socklist_free(&l);

    /* a list shorter than what there is: counted, not listed */
    assert_int_equal(nd_socklist_init(&l, 2), 0);
    nd_sockets_kernel(&l);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.total, 4); /* the listener, c1 and its accepted side, c2 */
    nd_socklist_free(&l);

    nd_rt.workers = NULL;
    nd_rt.nworkers = 0;
    close(ep);
    close(c2);
    close(s1);
    close(c1);
    close(lfd);
}

/* Two sockets of each stack, through the JSON and back out as a table. */
static void fill_example(struct nd_socklist *l)
{
    struct nd_sock *s;

    s = nd_socklist_add(l);
    s->worker = 1;
    s->dpdk = s->listener = true;
    s->state = "LISTEN";
    strcpy(s->local, "0.0.0.0:8080");
    strcpy(s->remote, "*:*");
    s->recv_q = 3;
    s->send_q = 1024;
    s->half_open = 2;
    s = nd_socklist_add(l);
    s->worker = 1;
    s->dpdk = s->info = true;
    s->state = "ESTABLISHED";
    strcpy(s->local, "198.18.0.2:8080");
    strcpy(s->remote, "198.18.0.1:40000");
    s->recv_q = 10;
    s->send_q = 2920;
    s->rtt_us = 1500;
    s->rttvar_us = 250;
    s->rto_ms = 200;
    s->mss = 1460;
    s->cwnd = 10;
    s->retrans = 4;
    s->snd_wscale = 7;
    s->rcv_wscale = 3;
    s->bytes_acked = 123456;
    s = nd_socklist_add(l);
    s->state = "ESTABLISHED";
    s->info = true;
    s->ssthresh = 20;
    strcpy(s->local, "[::1]:15000");
    strcpy(s->remote, "[::1]:41000");
}

static void test_json_and_table(void **state)
{
    struct nd_socklist l;
    struct nd_sbuf out = {0};
    json_error_t jerr;
    json_t *root, *s;
    char *table = NULL;
    size_t tlen = 0;
    FILE *f;

    (void)state;
    assert_int_equal(nd_socklist_init(&l, 3), 0);
    fill_example(&l);
    assert_null(nd_socklist_add(&l)); /* past the cap: counted only */
    l.workers_silent = 1u << 3;
    nd_sockets_json(&l, "dpdk", &out);
    nd_socklist_free(&l);
    root = json_loads(out.p, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "io")), "dpdk");
    assert_int_equal(json_integer_value(json_object_get(root, "total")), 4);
    assert_int_equal(json_integer_value(json_object_get(root, "limit")), 3);
    assert_true(json_is_true(json_object_get(root, "truncated")));
    assert_int_equal(
        json_integer_value(json_array_get(json_object_get(root, "workers_not_answering"), 0)), 3);
    s = json_array_get(json_object_get(root, "sockets"), 0);
    assert_int_equal(json_integer_value(json_object_get(s, "half_open")), 2);
    assert_null(json_object_get(s, "rtt_ms")); /* listeners have no TCP_INFO figures */
    s = json_array_get(json_object_get(root, "sockets"), 1);
    assert_string_equal(json_string_value(json_object_get(s, "stack")), "dpdk");
    assert_int_equal(json_integer_value(json_object_get(s, "worker")), 1);
    assert_true(json_number_value(json_object_get(s, "rtt_ms")) == 1.5);
    assert_true(json_is_null(json_object_get(s, "ssthresh")));
    assert_int_equal(json_integer_value(json_array_get(json_object_get(s, "wscale"), 0)), 7);
    assert_int_equal(json_integer_value(json_object_get(s, "bytes_acked")), 123456);
    s = json_array_get(json_object_get(root, "sockets"), 2);
    assert_true(json_is_null(json_object_get(s, "worker")));
    assert_true(json_is_null(json_object_get(s, "wscale")));
    assert_int_equal(json_integer_value(json_object_get(s, "ssthresh")), 20);
    json_decref(root);

    f = open_memstream(&table, &tlen);
    assert_int_equal(nd_sockets_print(out.p, f), 0);
    fclose(f);
    assert_non_null(strstr(table, "WORKER STACK"));
    assert_non_null(strstr(table, "1      dpdk   LISTEN"));
    assert_non_null(strstr(table, "198.18.0.1:40000"));
    assert_non_null(strstr(table, "1.50/0.25"));
    assert_non_null(strstr(table, "7,3"));
    assert_non_null(strstr(table, "1 listener(s), 2 connection(s), io dpdk; truncated: 3 of 4"));
    assert_non_null(strstr(table, "worker 3 did not answer in time"));
    free(table);
    nd_sbuf_free(&out);

    f = fopen("/dev/null", "w");
    assert_int_equal(nd_sockets_print("sockets not available\n", f), 1);
    assert_int_equal(nd_sockets_print("{\"io\":\"posix\"}", f), 1);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_sockets),
        cmocka_unit_test(test_json_and_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
