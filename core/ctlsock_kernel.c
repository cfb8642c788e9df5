/*
 * Control-plane sockets on the kernel (ctlsock.h): non-blocking sockets behind one private epoll
 * fd, level-triggered for input; OUT is registered only while a connect or a refused write waits
 * for it, and delivered once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "ctlsock.h"

enum { K_UDP, K_LISTEN, K_STREAM };

struct ksock {
    struct nd_ctl_sock base; /* first */
    int fd, kind, family;
    uint32_t events; /* registered with epoll */
    bool registered;
    bool connecting; /* connect() not finished */
    bool want_out;   /* a write returned -EAGAIN */
    bool eof;        /* a read returned 0: no more IN */
    int conn_err;    /* connect's outcome (negative) */
    struct ksock *next_dead;
};

struct kctl {
    struct nd_ctl base; /* first */
    int ep;
    unsigned nstreams;
    bool in_run;
    struct ksock *dead; /* closed during run: freed at its end */
    struct nd_ctl_stats st;
};

static struct kctl *kctl_of(const struct nd_ctl *c)
{
    return (struct kctl *)c;
}

static struct ksock *ks_of(struct nd_ctl_sock *s)
{
    return (struct ksock *)s;
}

void nd_ctl_addr_from(const struct sockaddr_storage *ss, struct nd_ctl_addr *a)
{
    memset(a, 0, sizeof *a);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const void *)ss;

        a->len = 4;
        memcpy(a->ip, &s4->sin_addr, 4);
        a->port = ntohs(s4->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)ss;

        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            a->len = 4;
            memcpy(a->ip, (const uint8_t *)&s6->sin6_addr + 12, 4);
        } else {
            a->len = 16;
            memcpy(a->ip, &s6->sin6_addr, 16);
        }
        a->port = ntohs(s6->sin6_port);
    }
}

/* a as a sockaddr of family (IPv4 on an IPv6 socket: v4-mapped). 0 if it cannot be. */
static socklen_t from_ctl(int family, const struct nd_ctl_addr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (void *)ss;

        if (a->len != 4)
            return 0;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, a->ip, 4);
        s4->sin_port = htons(a->port);
        return sizeof *s4;
    }
    struct sockaddr_in6 *s6 = (void *)ss;

    s6->sin6_family = AF_INET6;
    if (a->len == 4) {
        uint8_t *b = (uint8_t *)&s6->sin6_addr;

        b[10] = b[11] = 0xff;
        memcpy(b + 12, a->ip, 4);
    } else if (a->len == 16) {
        memcpy(&s6->sin6_addr, a->ip, 16);
    } else {
        return 0;
    }
    s6->sin6_port = htons(a->port);
    return sizeof *s6;
}

const char *nd_ctl_addr_str(const struct nd_ctl_addr *a, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    inet_ntop(a->len == 4 ? AF_INET : AF_INET6, a->ip, ip, sizeof ip);
    snprintf(buf, len, a->len == 4 ? "%s:%u" : "[%s]:%u", ip, a->port);
    return buf;
}

static void ks_watch(struct kctl *k, struct ksock *s)
{
    uint32_t ev = s->eof ? 0 : EPOLLIN | (s->kind == K_STREAM ? EPOLLRDHUP : 0);
    struct epoll_event e;

    if (s->connecting || s->want_out)
        ev |= EPOLLOUT;
    if (s->registered && ev == s->events)
        return;
    e.events = ev;
    e.data.ptr = s;
    if (epoll_ctl(k->ep, s->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s->fd, &e) == 0) {
        s->events = ev;
        s->registered = true;
    }
}

static struct ksock *ks_new(struct kctl *k, int fd, int kind, int family, nd_ctl_cb cb, void *arg)
{
    struct ksock *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->base.ctl = &k->base;
    s->base.cb = cb;
    s->base.arg = arg;
    s->fd = fd;
    s->kind = kind;
    s->family = family;
    return s;
}

static int bound_socket(const struct nd_addr *a, int type, unsigned backlog)
{
    int fd = socket(a->ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1, e;

    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->ss.ss_family == AF_INET6) {
        int zero = 0;

        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 ||
        (type == SOCK_STREAM && listen(fd, (int)backlog) < 0)) {
        e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static struct nd_ctl_sock *k_bound(struct nd_ctl *c, const struct nd_addr *a, int kind,
                                   unsigned backlog, nd_ctl_cb cb, void *arg, int *err)
{
    struct kctl *k = kctl_of(c);
    int fd = bound_socket(a, kind == K_UDP ? SOCK_DGRAM : SOCK_STREAM, backlog);
    struct ksock *s;

    if (fd < 0) {
        *err = fd;
        return NULL;
    }
    if (!(s = ks_new(k, fd, kind, a->ss.ss_family, cb, arg))) {
        close(fd);
        *err = -ENOMEM;
        return NULL;
    }
    ks_watch(k, s);
    return &s->base;
}

static struct nd_ctl_sock *k_udp(struct nd_ctl *c, const struct nd_addr *a, nd_ctl_cb cb, void *arg,
                                 int *err)
{
    return k_bound(c, a, K_UDP, 0, cb, arg, err);
}

static struct nd_ctl_sock *k_listen(struct nd_ctl *c, const struct nd_addr *a, unsigned backlog,
                                    nd_ctl_cb cb, void *arg, int *err)
{
    return k_bound(c, a, K_LISTEN, backlog, cb, arg, err);
}

static int k_sendto(struct nd_ctl_sock *cs, const struct nd_ctl_addr *to, const void *p, size_t n)
{
    struct ksock *s = ks_of(cs);
    struct sockaddr_storage ss;
    socklen_t sl = from_ctl(s->family, to, &ss);

    if (!sl)
        return -EAFNOSUPPORT;
    if (sendto(s->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&ss, sl) < 0) {
        kctl_of(cs->ctl)->st.udp_dropped++;
        return -errno;
    }
    return 0;
}

static ssize_t k_recvfrom(struct nd_ctl_sock *cs, void *buf, size_t len, struct nd_ctl_addr *from)
{
    struct ksock *s = ks_of(cs);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    ssize_t r = recvfrom(s->fd, buf, len, MSG_DONTWAIT, (struct sockaddr *)&ss, &sl);

    if (r < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    nd_ctl_addr_from(&ss, from);
    return r;
}

static struct nd_ctl_sock *k_accept(struct nd_ctl_sock *cl, nd_ctl_cb cb, void *arg,
                                    struct nd_ctl_addr *peer, int *err)
{
    struct kctl *k = kctl_of(cl->ctl);

    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(ks_of(cl)->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct ksock *s;

        if (fd < 0) {
            *err = errno == EWOULDBLOCK ? -EAGAIN : -errno;
            return NULL;
        }
        if (k->nstreams >= ND_CTL_MAX_STREAMS ||
            !(s = ks_new(k, fd, K_STREAM, ss.ss_family, cb, arg))) {
            k->st.conns_refused++;
            close(fd);
            continue;
        }
        k->nstreams++;
        nd_ctl_addr_from(&ss, peer);
        ks_watch(k, s);
        return &s->base;
    }
}

static struct nd_ctl_sock *k_connect(struct nd_ctl *c, const struct nd_ctl_addr *to, nd_ctl_cb cb,
                                     void *arg, int *err)
{
    struct kctl *k = kctl_of(c);
    int family = to->len == 4 ? AF_INET : AF_INET6, fd;
    struct sockaddr_storage ss;
    socklen_t sl = from_ctl(family, to, &ss);
    struct ksock *s;

    if (!sl) {
        *err = -EAFNOSUPPORT;
        return NULL;
    }
    if (k->nstreams >= ND_CTL_MAX_STREAMS) {
        k->st.conns_refused++;
        *err = -ENOBUFS;
        return NULL;
    }
    if ((fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
        *err = -errno;
        return NULL;
    }
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
        *err = -errno;
        close(fd);
        return NULL;
    }
    if (!(s = ks_new(k, fd, K_STREAM, family, cb, arg))) {
        close(fd);
        *err = -ENOMEM;
        return NULL;
    }
    k->nstreams++;
    s->connecting = true;
    s->conn_err = -EINPROGRESS;
    ks_watch(k, s);
    return &s->base;
}

static int k_connect_result(struct nd_ctl_sock *cs)
{
    return ks_of(cs)->conn_err;
}

static ssize_t k_read(struct nd_ctl_sock *cs, void *buf, size_t len)
{
    struct ksock *s = ks_of(cs);
    ssize_t r = recv(s->fd, buf, len, MSG_DONTWAIT);

    if (r < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (r == 0 && len && !s->eof) { /* the end is reported once */
        s->eof = true;
        ks_watch(kctl_of(cs->ctl), s);
    }
    return r;
}

static ssize_t k_write(struct nd_ctl_sock *cs, const void *p, size_t n)
{
    struct ksock *s = ks_of(cs);
    ssize_t w;

    if (s->connecting) {
        w = -EAGAIN;
    } else {
        w = send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0)
            w = errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
    if (w == -EAGAIN && !s->want_out) {
        s->want_out = true;
        ks_watch(kctl_of(cs->ctl), s);
    }
    return w;
}

static void k_shutdown(struct nd_ctl_sock *cs)
{
    shutdown(ks_of(cs)->fd, SHUT_WR);
}

static void k_close(struct nd_ctl_sock *cs, bool reset)
{
    struct kctl *k = kctl_of(cs->ctl);
    struct ksock *s = ks_of(cs);

    if (reset) {
        struct linger l = {1, 0};

        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    if (s->kind == K_STREAM)
        k->nstreams--;
    epoll_ctl(k->ep, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->fd = -1;
    if (k->in_run) { /* run may still hold it in its event array */
        s->next_dead = k->dead;
        k->dead = s;
    } else {
        free(s);
    }
}

static int k_fd(const struct nd_ctl *c)
{
    return kctl_of(c)->ep;
}

static void k_event(struct ksock *s, uint32_t ev)
{
    unsigned out = 0;

    if (s->connecting && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int e = 0;
        socklen_t l = sizeof e;

        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
            e = errno;
        s->connecting = false;
        s->conn_err = -e;
        out |= ND_CTL_OUT;
    } else if (s->want_out && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        s->want_out = false;
        out |= ND_CTL_OUT;
    }
    if (!s->eof && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        out |= ND_CTL_IN;
    if (ev & EPOLLERR || (s->eof && (ev & EPOLLHUP)))
        out |= ND_CTL_ERR;
    if (out & ND_CTL_OUT)
        ks_watch(kctl_of(s->base.ctl), s);
    if (out)
        s->base.cb(&s->base, out, s->base.arg);
}

static void k_run(struct nd_ctl *c)
{
    struct kctl *k = kctl_of(c);
    struct epoll_event evs[64];
    int n = epoll_wait(k->ep, evs, 64, 0);

    k->in_run = true;
    for (int i = 0; i < n; i++) {
        struct ksock *s = evs[i].data.ptr;

        if (s->fd >= 0)
            k_event(s, evs[i].events);
    }
    k->in_run = false;
    while (k->dead) {
        struct ksock *s = k->dead;

        k->dead = s->next_dead;
        free(s);
    }
}

static void k_settle(struct nd_ctl *c, unsigned max_ms)
{
    (void)c; /* the kernel has the bytes */
    (void)max_ms;
}

static const struct nd_ctl_stats *k_stats(const struct nd_ctl *c)
{
    return &kctl_of(c)->st;
}

static void k_free(struct nd_ctl *c)
{
    struct kctl *k = kctl_of(c);

    close(k->ep); /* the owners closed their sockets */
    free(k);
}

static const struct nd_ctl_ops kernel_ops = {
    .name = "kernel",
    .udp = k_udp,
    .sendto = k_sendto,
    .recvfrom = k_recvfrom,
    .listen = k_listen,
    .accept = k_accept,
    .connect = k_connect,
    .connect_result = k_connect_result,
    .read = k_read,
    .write = k_write,
    .shutdown = k_shutdown,
    .close = k_close,
    .fd = k_fd,
    .run = k_run,
    .settle = k_settle,
    .stats = k_stats,
    .free = k_free,
};

struct nd_ctl *nd_ctl_kernel_new(void)
{
    struct kctl *k = calloc(1, sizeof *k);

    if (!k)
        return NULL;
    k->base.ops = &kernel_ops;
    if ((k->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        free(k);
        return NULL;
    }
    return &k->base;
}
