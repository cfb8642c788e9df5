/*
 * The span exporter's thread and its HTTP/1.1 client. See exporter.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <nodus/plugin.h>

#include "exporter.h"

#define TR_JSON_CAP (1u << 20) /* one batch's body, per collector */
#define TR_NICE 10             /* the exporter thread's nice value: below the workers' 0 */
#define TR_BACKOFF_MS 100      /* first retry after this, doubling */
#define TR_BACKOFF_MAX_MS 5000

int tr_dest_init(struct tr_dest *d, enum tr_format f, const char *addr)
{
    char host[64];
    const char *colon;
    char *end;
    long port;
    size_t hl;

    memset(d, 0, sizeof(*d));
    d->fd = -1;
    d->format = f;
    d->path = f == TR_OTLP ? "/v1/traces" : "/api/v2/spans";
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');

        if (!rb || rb[1] != ':')
            return -1;
        hl = (size_t)(rb - addr - 1);
        if (hl >= sizeof(host))
            return -1;
        memcpy(host, addr + 1, hl);
        colon = rb + 1;
    } else {
        colon = strchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof(host) || strchr(colon + 1, ':'))
            return -1; /* an IPv6 address is bracketed */
        hl = (size_t)(colon - addr);
        memcpy(host, addr, hl);
    }
    host[hl] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port < 1 || port > 65535)
        return -1;
    if (strlen(addr) >= sizeof(d->host))
        return -1;
    snprintf(d->host, sizeof(d->host), "%s", addr);
    if (strchr(host, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&d->addr;

        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return -1;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        d->addrlen = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&d->addr;

        if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
            return -1;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        d->addrlen = sizeof(*s4);
    }
    return 0;
}

/* ---- HTTP client ---- */

static void dest_close(struct tr_dest *d)
{
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
}

static int dest_connect(struct tr_dest *d, uint32_t timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    struct pollfd pfd;
    int fd, err = 0, one = 1;
    socklen_t elen = sizeof(err);

    fd = socket(d->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&d->addr, d->addrlen) < 0) {
        if (errno != EINPROGRESS)
            goto fail;
        pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, (int)timeout_ms) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err)
            goto fail;
    }
    /* blocking from here, every read and write bounded by the timeout */
    if (fcntl(fd, F_SETFL, 0) < 0 || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        goto fail;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    d->fd = fd;
    return 0;
fail:
    close(fd);
    return -1;
}

static int send_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Reads a response: its status, the body discarded. *keep: the connection may be reused. */
static int read_response(int fd, bool *keep)
{
    char buf[4096], *eoh = NULL, *p;
    size_t len = 0, body_have;
    long long clen = -1;
    int status;

    *keep = false;
    while (!eoh) {
        ssize_t r;

        if (len == sizeof(buf) - 1)
            return -1;
        r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        eoh = strstr(buf, "\r\n\r\n");
    }
    if (strncmp(buf, "HTTP/1.", 7) != 0 || len < 12 || buf[8] != ' ')
        return -1;
    status = atoi(buf + 9);
    if (status < 100 || status > 599)
        return -1;
    *keep = buf[7] == '1';
    for (p = strstr(buf, "\r\n"); p && p < eoh; p = strstr(p + 2, "\r\n")) {
        const char *h = p + 2;

        if (strncasecmp(h, "content-length:", 15) == 0)
            clen = atoll(h + 15);
        else if (strncasecmp(h, "connection:", 11) == 0 && strstr(h, "close") &&
                 strstr(h, "close") < strstr(h, "\r\n"))
            *keep = false;
        else if (strncasecmp(h, "transfer-encoding:", 18) == 0)
            *keep = false; /* chunked: not worth parsing, the connection is closed instead */
    }
    if (clen < 0 || clen > (1 << 20))
        *keep = false;
    if (!*keep)
        return status;
    body_have = len - (size_t)(eoh + 4 - buf);
    while ((long long)body_have < clen) {
        ssize_t r = read(fd, buf, sizeof(buf));

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            *keep = false;
            break;
        }
        body_have += (size_t)r;
    }
    return status;
}

/* Appends the NUL-terminated s at p; the next byte. */
static char *cat(char *p, const char *s)
{
    size_t n = strlen(s);

    memcpy(p, s, n);
    return p + n;
}

int tr_post(struct tr_dest *d, const char *body, size_t len, uint32_t timeout_ms)
{
    /* the path (13 bytes at most), the host (63), the version and a 20-digit length fit */
    char head[256 + sizeof(NODUS_VERSION)], digits[20], *p = head, *q = digits + sizeof(digits);
    size_t v = len;
    int status;
    bool keep;

    p = cat(p, "POST ");
    p = cat(p, d->path);
    p = cat(p, " HTTP/1.1\r\nHost: ");
    p = cat(p, d->host);
    p = cat(p, "\r\nUser-Agent: nodus/" NODUS_VERSION
               "\r\nContent-Type: application/json\r\nContent-Length: ");
    do
        *--q = (char)('0' + v % 10);
    while ((v /= 10));
    memcpy(p, q, (size_t)(digits + sizeof(digits) - q));
    p += digits + sizeof(digits) - q;
    p = cat(p, "\r\n\r\n");
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = d->fd < 0;
        struct iovec iov[2] = {{head, (size_t)(p - head)}, {(void *)body, len}};

        if (fresh && dest_connect(d, timeout_ms) < 0)
            return -1;
        if (send_all(d->fd, iov, 2) == 0 && (status = read_response(d->fd, &keep)) > 0) {
            if (!keep)
                dest_close(d);
            return status;
        }
        dest_close(d);
        if (fresh)
            return -1;
        /* a kept-alive connection the collector had closed: once more on a new one */
    }
    return -1;
}

/* ---- the thread ---- */

/* Waits up to ms, or until stop is signalled; true when stopping. */
static bool wait_stop(struct tr_exporter *e, uint32_t ms)
{
    struct pollfd pfd = {.fd = e->stop_fd, .events = POLLIN};

    if (atomic_load(&e->stopping))
        return true;
    poll(&pfd, 1, (int)ms);
    return atomic_load(&e->stopping);
}

static bool retryable(int status)
{
    return status < 0 || status == 429 || status == 502 || status == 503 || status == 504;
}

/* Posts d's batch, retrying with backoff (no retry once stopping). */
static bool post_batch(struct tr_exporter *e, struct tr_dest *d, bool *warned)
{
    for (uint32_t attempt = 0;; attempt++) {
        int st = tr_post(d, d->json.buf, d->json.len, e->timeout_ms);
        uint32_t backoff;

        if (st >= 200 && st < 300) {
            if (*warned)
                nodus_log(NODUS_LOG_INFO, "tracing: collector %s%s answers again", d->host,
                          d->path);
            *warned = false;
            return true;
        }
        if (!*warned && st < 0)
            nodus_log(NODUS_LOG_WARN,
                      "tracing: collector %s%s unreachable or too slow (spans "
                      "are retried, then dropped and counted)",
                      d->host, d->path);
        else if (!*warned)
            nodus_log(NODUS_LOG_WARN,
                      "tracing: collector %s%s answers %d (spans are retried "
                      "on 429, 502, 503, 504, then dropped and counted)",
                      d->host, d->path, st);
        *warned = true;
        if (!retryable(st) || attempt >= e->max_retries || atomic_load(&e->stopping))
            return false;
        atomic_fetch_add(&e->stats.retries, 1);
        backoff = TR_BACKOFF_MS << (attempt < 6 ? attempt : 6);
        if (backoff > TR_BACKOFF_MAX_MS)
            backoff = TR_BACKOFF_MAX_MS;
        if (wait_stop(e, backoff))
            return false;
    }
}

static bool encode(struct tr_exporter *e, const struct tr_span *s)
{
    size_t len0[2];
    unsigned n0[2];
    size_t i;

    for (i = 0; i < e->ndest; i++) {
        struct tr_dest *d = &e->dest[i];
        bool ok;

        len0[i] = d->json.len;
        n0[i] = d->json.n;
        ok =
            d->format == TR_OTLP ? tr_otlp_span(&d->json, s) : tr_zipkin_span(&d->json, s, &e->res);
        if (!ok)
            break;
    }
    if (i == e->ndest)
        return true;
    for (size_t k = 0; k < i; k++) { /* all or none */
        e->dest[k].json.len = len0[k];
        e->dest[k].json.n = n0[k];
    }
    return false;
}

/* Takes up to e->batch spans from the queues into each destination's body. Returns how many. */
static size_t take_batch(struct tr_exporter *e, unsigned *start)
{
    size_t taken = 0;

    for (size_t i = 0; i < e->ndest; i++) {
        if (e->dest[i].format == TR_OTLP)
            tr_otlp_begin(&e->dest[i].json, &e->res);
        else
            tr_zipkin_begin(&e->dest[i].json);
    }
    for (unsigned k = 0; k < TR_MAX_WORKERS && taken < e->batch; k++) {
        unsigned w = (*start + k) % TR_MAX_WORKERS;
        struct tr_queue *q = atomic_load_explicit(&e->queues[w], memory_order_acquire);
        uint64_t t, h;

        if (!q)
            continue;
        t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        h = atomic_load_explicit(&q->head, memory_order_acquire);
        while (t != h && taken < e->batch) {
            if (e->ndest && !encode(e, &q->slots[t & q->mask]))
                break; /* the bodies are full: this span goes in the next batch */
            t++;
            taken++;
        }
        atomic_store_explicit(&q->tail, t, memory_order_release);
        if (t != h)
            break;
    }
    *start = (*start + 1) % TR_MAX_WORKERS;
    for (size_t i = 0; i < e->ndest; i++) {
        if (e->dest[i].format == TR_OTLP)
            tr_otlp_end(&e->dest[i].json);
        else
            tr_zipkin_end(&e->dest[i].json);
    }
    return taken;
}

static void *exporter_main(void *arg)
{
    struct tr_exporter *e = arg;
    unsigned start = 0;
    bool warned[2] = {false, false}, failed_at_stop = false;

    /* Below the workers: when it shares a CPU with one, the scheduler lets the worker run first
     * and the batches are encoded in the gaps (the queues absorb the delay) instead of holding up
     * requests for a batch's encoding (a few hundred µs). Lowering a thread's own priority needs
     * no privilege; a failure leaves it at the workers' level. */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), TR_NICE) < 0)
        nodus_log(NODUS_LOG_DEBUG, "tracing: exporter priority: %s", strerror(errno));

    for (;;) {
        bool stopping = atomic_load(&e->stopping);
        size_t total = 0, n;

        while ((n = take_batch(e, &start)) > 0) {
            total += n;
            for (size_t i = 0; i < e->ndest; i++) {
                bool ok = !failed_at_stop && post_batch(e, &e->dest[i], &warned[i]);

                atomic_fetch_add(ok ? &e->stats.exported : &e->stats.failed, n);
                /* stopping: one attempt, and once a collector fails the rest is dropped, so
                 * that destroy() is not held up by a dead collector */
                if (!ok && stopping)
                    failed_at_stop = true;
            }
            atomic_store(&e->stats.dirty, true);
            if (!stopping && total >= 4 * e->batch)
                break; /* look at the stop flag now and then */
        }
        if (stopping)
            break;
        /* busy: come back soon, so that the queues do not fill up between flushes */
        wait_stop(e, total >= e->batch / 2 ? 5 : e->flush_ms);
    }
    for (size_t i = 0; i < e->ndest; i++)
        dest_close(&e->dest[i]);
    return NULL;
}

int tr_exporter_init(struct tr_exporter *e)
{
    for (size_t i = 0; i < e->ndest; i++) {
        e->dest[i].json.cap = TR_JSON_CAP;
        e->dest[i].json.buf = malloc(TR_JSON_CAP);
        if (!e->dest[i].json.buf)
            return -1;
    }
    e->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return e->stop_fd < 0 ? -1 : 0;
}

struct tr_queue *tr_exporter_attach(struct tr_exporter *e, unsigned worker_id)
{
    struct tr_queue *q;
    size_t cap = 1;
    int err;

    if (worker_id >= TR_MAX_WORKERS)
        return NULL;
    q = atomic_load(&e->queues[worker_id]);
    if (q)
        return q;
    while (cap < e->queue_len)
        cap <<= 1;
    q = aligned_alloc(64, (sizeof(*q) + cap * sizeof(struct tr_span) + 63) & ~(size_t)63);
    if (!q)
        return NULL;
    memset(q, 0, sizeof(*q));
    q->mask = cap - 1;
    atomic_store_explicit(&e->queues[worker_id], q, memory_order_release);
    if (!atomic_exchange(&e->started, true)) {
        err = pthread_create(&e->thread, NULL, exporter_main, e);
        if (err)
            nodus_log(NODUS_LOG_ERR, "tracing: cannot start the exporter thread: %s",
                      strerror(err));
        else
            e->running = true;
        if (!err)
            pthread_setname_np(e->thread, "nodus-tracing");
    }
    return q;
}

void tr_exporter_fini(struct tr_exporter *e)
{
    uint64_t one = 1;

    atomic_store(&e->stopping, true);
    if (e->stop_fd >= 0 && write(e->stop_fd, &one, sizeof(one)) < 0)
        nodus_log(NODUS_LOG_WARN, "tracing: cannot wake the exporter thread");
    if (e->running)
        pthread_join(e->thread, NULL);
    e->running = false;
    if (e->stop_fd >= 0)
        close(e->stop_fd);
    e->stop_fd = -1;
    for (size_t i = 0; i < TR_MAX_WORKERS; i++)
        free(atomic_load(&e->queues[i]));
    for (size_t i = 0; i < e->ndest; i++) {
        dest_close(&e->dest[i]);
        free(e->dest[i].json.buf);
        e->dest[i].json.buf = NULL;
    }
}
