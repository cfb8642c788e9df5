/* The posix I/O backend: kernel sockets, one edge-triggered epoll instance per worker. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "io.h"
#include "worker.h"

#define MAX_EVENTS 256

static void wake_cb(struct nd_conn *c, unsigned events)
{
    uint64_t v;

    (void)events;
    while (read(c->fd, &v, sizeof(v)) > 0)
        ;
}

static int px_worker_init(struct nd_worker *w)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET};

    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        return -errno;
    w->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake.fd < 0)
        return -errno;
    w->wake.cb = wake_cb;
    w->wake.w = w;
    ev.data.ptr = &w->wake;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake.fd, &ev) < 0)
        return -errno;
    return 0;
}

static void px_worker_fini(struct nd_worker *w)
{
    if (w->wake.fd >= 0)
        close(w->wake.fd);
    if (w->epfd >= 0)
        close(w->epfd);
    w->wake.fd = w->epfd = -1;
}

static int px_poll(struct nd_worker *w)
{
    struct epoll_event evs[MAX_EVENTS];
    int n, i;

    n = epoll_wait(w->epfd, evs, MAX_EVENTS, nd_worker_timeout(w));
    nd_worker_clock(w);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (i = 0; i < n; i++) {
        struct nd_conn *c = evs[i].data.ptr;
        unsigned e = 0;

        if (evs[i].events & (EPOLLIN | EPOLLRDHUP))
            e |= ND_EV_READ;
        if (evs[i].events & EPOLLOUT)
            e |= ND_EV_WRITE;
        if (evs[i].events & (EPOLLERR | EPOLLHUP))
            e |= ND_EV_ERROR | ND_EV_READ | ND_EV_WRITE;
        c->cb(c, e);
    }
    return n;
}

static void px_wake(struct nd_worker *w)
{
    uint64_t one = 1;

    if (write(w->wake.fd, &one, sizeof(one)) < 0)
        return; /* already signalled: the counter is full */
}

int nd_posix_listen_socket(const struct nd_addr *a, int backlog)
{
    int one = 1, fd;

    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (a->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, backlog) < 0)
        goto fail;
    return fd;
fail:
    one = -errno;
    close(fd);
    return one;
}

static int px_listen_add(struct nd_worker *w, struct nd_conn *l)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};

    l->w = w;
    return epoll_ctl(w->epfd, EPOLL_CTL_ADD, l->fd, &ev) < 0 ? -errno : 0;
}

static void px_listen_del(struct nd_worker *w, struct nd_conn *l)
{
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, l->fd, NULL);
}

static int watch(struct nd_worker *w, struct nd_conn *c)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};

    c->w = w;
    return epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0 ? -errno : 0;
}

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)ss;

        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, len);
        else
            inet_ntop(AF_INET6, &s6->sin6_addr, out, len);
    } else {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, len);
    }
}

static int px_accept(struct nd_conn *l, struct nd_conn *c, char *peer, size_t peerlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd, one = 1, err;

    fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    addr_text(&ss, peer, peerlen);
    err = watch(l->w, c);
    if (err) {
        close(fd);
        c->fd = -1;
    }
    return err;
}

static int px_connect(struct nd_worker *w, struct nd_conn *c, const struct nd_addr *a)
{
    int fd, one = 1, err;

    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
        err = -errno;
        close(fd);
        return err;
    }
    c->fd = fd;
    err = watch(w, c);
    if (err) {
        close(fd);
        c->fd = -1;
    }
    return err;
}

static int px_connect_result(struct nd_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

static ssize_t px_read(struct nd_conn *c, void *buf, size_t len)
{
    ssize_t n = recv(c->fd, buf, len, 0);

    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

static ssize_t px_writev(struct nd_conn *c, const struct iovec *iov, int iovcnt)
{
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt};
    ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

static void px_shutdown_write(struct nd_conn *c)
{
    shutdown(c->fd, SHUT_WR);
}

static void px_close(struct nd_conn *c, bool reset)
{
    if (c->fd < 0)
        return;
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};

        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
}

const struct nd_io_ops nd_io_posix = {
    .name = "posix",
    .worker_init = px_worker_init,
    .worker_fini = px_worker_fini,
    .poll = px_poll,
    .wake = px_wake,
    .listen_open = nd_posix_listen_socket,
    .listen_add = px_listen_add,
    .listen_del = px_listen_del,
    .accept = px_accept,
    .connect = px_connect,
    .connect_result = px_connect_result,
    .read = px_read,
    .writev = px_writev,
    .shutdown_write = px_shutdown_write,
    .close = px_close,
};
