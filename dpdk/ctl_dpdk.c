/*
 * Control-plane sockets on DPDK (core/ctlsock.h): the transport of the relay (core/ctlmsg.h) and
 * the workers' half.
 *
 * Transport: per worker, a command ring (main -> worker) and an event ring (worker -> main),
 * single producer and single consumer, carrying pointers to malloc'd messages; one eventfd wakes
 * the main thread's epoll when a worker posted events during a poll.
 *
 * Worker: each poll drains its command ring (one check when it is empty: the fast path is
 * untouched), then posts what its sockets produced. A UDP socket and a TCP listener are bound on
 * every worker (RSS spreads flows over them); a stream lives on one worker, the one its flow
 * lands on (accepted there, or opened there with a source port RSS steers back). Stream bytes
 * move under the relay's credits (ctlmsg.h); datagrams that find a ring full are dropped and
 * counted; other events wait in a per-worker list, bounded by the streams' credits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <rte_errno.h>
#include <rte_ring.h>

#include "ctl_dpdk.h"
#include "ctlmsg.h"
#include "io_dpdk.h"
#include "net/net.h"
#include "tcp.h"
#include "worker.h"

#define RING_SIZE 1024
#define W_SOCKS 16     /* UDP sockets and listeners per worker */
#define LINGER_MS 5000 /* a closed stream's unsent bytes: this long at most */
#define ACCEPTED_BIT 0x80000000u

struct cw;

/* A UDP socket or a listener on one worker. */
struct wsock {
    struct cw *cw;
    uint32_t id;
    bool udp, used;
    struct nd_udp_sock us;
    struct nd_tcp_listener *tl;
    bool ready; /* connections may wait */
};

/* A stream on one worker. */
struct wstream {
    struct cw *cw;
    uint32_t id;
    struct nd_tcp_conn *tc;
    uint32_t credit;          /* bytes the relay will still take */
    struct nd_ctl_mq pending; /* SEND messages not yet taken by the engine */
    size_t poff;              /* bytes of pending.head taken */
    uint64_t deadline;        /* closing: abort then */
    struct wstream *qnext;    /* the worker's event queue */
    unsigned ev;              /* ND_TCP_EV_* recorded, not yet handled */
    bool queued, dead;
    bool connecting, eof_sent, shut_wanted, shut_done, closing;
};

/* A worker's half: touched by its thread only (main: before it starts and after it ended). */
struct cw {
    unsigned wid;
    struct rte_ring *cmd, *evt;
    struct nd_ctl_mq later; /* events the event ring had no room for */
    struct wsock socks[W_SOCKS];
    struct wstream *streams[ND_CTL_MAX_STREAMS];
    unsigned nstreams, nclosing;
    struct wstream *evq_head, *evq_tail; /* streams with events to handle */
    bool accept_ready;
    uint32_t next_sid;
    uint64_t now, next_linger;
    bool posted, retry;
    /* read by the main thread */
    uint64_t udp_dropped, conns_refused;
} __attribute__((aligned(64)));

struct transport {
    unsigned n;
    int efd;
    struct cw *w[ND_MAX_WORKERS];
};

static struct transport *tp; /* the one running (io = "dpdk" has one relay) */

static void count(uint64_t *c)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

/* ---- worker: posting events ------------------------------------------------------------------ */

static void post(struct cw *cw, struct nd_ctl_msg *m)
{
    m->worker = (uint16_t)cw->wid;
    cw->posted = true;
    if (!cw->later.n && rte_ring_sp_enqueue(cw->evt, m) == 0)
        return;
    if (m->type == ND_CTLM_DGRAM) { /* lossy: never held */
        count(&cw->udp_dropped);
        free(m);
        return;
    }
    nd_ctl_mq_push(&cw->later, m);
}

static void post_small(struct cw *cw, unsigned type, uint32_t id, int err, uint32_t n)
{
    struct nd_ctl_msg *m = nd_ctl_msg_new(type, id, NULL, 0);

    if (!m)
        return; /* out of memory: the relay's linger and timeouts end what waited for it */
    m->err = err;
    m->n = n;
    post(cw, m);
}

static void post_later(struct cw *cw)
{
    while (cw->later.head) {
        struct nd_ctl_msg *m = cw->later.head, *next = m->next;

        if (rte_ring_sp_enqueue(cw->evt, m) != 0) /* taken, m is the main thread's at once */
            break;
        cw->later.head = next;
        if (!next)
            cw->later.tail = NULL;
        cw->later.n--;
    }
}

/* ---- worker: streams ---------------------------------------------------------------------------
 */

static struct wstream *stream_find(struct cw *cw, uint32_t id)
{
    for (unsigned i = 0; i < cw->nstreams; i++)
        if (cw->streams[i]->id == id)
            return cw->streams[i];
    return NULL;
}

static struct wstream *stream_new(struct cw *cw, uint32_t id, uint32_t credit)
{
    struct wstream *ws;

    if (cw->nstreams >= ND_CTL_MAX_STREAMS || !(ws = calloc(1, sizeof(*ws))))
        return NULL;
    ws->cw = cw;
    ws->id = id;
    ws->credit = credit;
    cw->streams[cw->nstreams++] = ws;
    return ws;
}

/* Gives the engine's handle back (orderly, or reset) and forgets the stream. */
static void stream_free(struct wstream *ws, bool reset)
{
    struct cw *cw = ws->cw;

    for (unsigned i = 0; i < cw->nstreams; i++)
        if (cw->streams[i] == ws) {
            cw->streams[i] = cw->streams[--cw->nstreams];
            break;
        }
    if (ws->tc) {
        nd_tcp_set_cb(ws->tc, NULL, NULL);
        if (reset)
            nd_tcp_abort(ws->tc);
        else
            nd_tcp_close(ws->tc);
    }
    if (ws->closing)
        cw->nclosing--;
    ws->tc = NULL;
    nd_ctl_mq_clear(&ws->pending);
    ws->dead = true;
    if (!ws->queued) /* else when the queue reaches it */
        free(ws);
}

/* Moves bytes from the engine to the relay, as far as the credit goes. */
static void pump_read(struct wstream *ws)
{
    while (!ws->eof_sent && !ws->closing && !ws->connecting && ws->credit) {
        size_t avail = nd_tcp_readable(ws->tc), n = avail;
        struct nd_ctl_msg *m;
        ssize_t r;

        if (!avail) {
            if (nd_tcp_eof(ws->tc)) {
                post_small(ws->cw, ND_CTLM_EOF, ws->id, 0, 0);
                ws->eof_sent = true;
            }
            return;
        }
        if (n > ws->credit)
            n = ws->credit;
        if (n > ND_CTL_CHUNK)
            n = ND_CTL_CHUNK;
        if (!(m = nd_ctl_msg_new(ND_CTLM_DATA, ws->id, NULL, n)))
            return;
        r = nd_tcp_read(ws->tc, m->data, n);
        if (r <= 0) {
            free(m);
            return;
        }
        m->len = (uint32_t)r;
        ws->credit -= (uint32_t)r;
        post(ws->cw, m);
    }
}

/* Moves queued bytes into the engine; half-closes or closes once they are all in. Returns false
 * when the stream is gone. */
static bool pump_write(struct wstream *ws)
{
    uint32_t taken = 0;

    while (ws->pending.head && !ws->connecting) {
        struct nd_ctl_msg *m = ws->pending.head;
        ssize_t r = nd_tcp_send(ws->tc, m->data + ws->poff, m->len - ws->poff);

        if (r == -EAGAIN) {
            if (nd_tcp_send_space(ws->tc) > 0)
                ws->cw->retry = true; /* the chunk pool, not the buffer, is full: no ACK wakes us */
            break;
        }
        if (r < 0) { /* the connection is over (the peer reset it, or closed both ways) */
            if (!ws->closing)
                post_small(ws->cw, ND_CTLM_CLOSED, ws->id, (int)r, 0);
            stream_free(ws, true);
            return false;
        }
        taken += (uint32_t)r;
        ws->poff += (size_t)r;
        if (ws->poff == m->len) {
            free(nd_ctl_mq_pop(&ws->pending));
            ws->poff = 0;
        }
    }
    if (taken && !ws->closing)
        post_small(ws->cw, ND_CTLM_SENT, ws->id, 0, taken);
    if (ws->pending.head || ws->connecting)
        return true;
    if (ws->closing) {
        stream_free(ws, false);
        return false;
    }
    if (ws->shut_wanted && !ws->shut_done) {
        nd_tcp_shutdown(ws->tc);
        ws->shut_done = true;
    }
    return true;
}

/* The engine's callback: recorded only, handled by the poll (so that nothing here runs inside an
 * engine call). */
static void stream_event(struct nd_tcp_conn *tc, unsigned ev, void *udata)
{
    struct wstream *ws = udata;
    struct cw *cw;

    (void)tc;
    if (!ws || ws->dead)
        return;
    cw = ws->cw;
    ws->ev |= ev;
    if (ws->queued)
        return;
    ws->queued = true;
    ws->qnext = NULL;
    if (cw->evq_tail)
        cw->evq_tail->qnext = ws;
    else
        cw->evq_head = ws;
    cw->evq_tail = ws;
}

static void stream_handle(struct wstream *ws, unsigned ev)
{
    if (ev & ND_TCP_EV_CLOSED) {
        int err = -nd_tcp_error(ws->tc);

        if (ws->closing) {
            stream_free(ws, false);
            return;
        }
        if (ws->connecting) {
            post_small(ws->cw, ND_CTLM_CONNECTED, ws->id, err ? err : -ECONNREFUSED, 0);
            stream_free(ws, false);
            return;
        }
        if (err) {
            pump_read(ws);
            post_small(ws->cw, ND_CTLM_CLOSED, ws->id, err, 0);
            stream_free(ws, false);
            return;
        }
        /* orderly end both ways: what is left to read, then EOF */
    }
    if (ws->connecting && (ev & ND_TCP_EV_CONNECTED)) {
        ws->connecting = false;
        post_small(ws->cw, ND_CTLM_CONNECTED, ws->id, 0, 0);
    }
    if ((ev & (ND_TCP_EV_WRITE | ND_TCP_EV_CONNECTED)) && !pump_write(ws))
        return;
    if (ev & (ND_TCP_EV_READ | ND_TCP_EV_CLOSED))
        pump_read(ws);
}

/* Handles the recorded events; returns how many streams it handled. */
static int stream_dispatch(struct cw *cw)
{
    int n = 0;

    for (int round = 0; round < 4 && cw->evq_head; round++) {
        struct wstream *ws = cw->evq_head;

        cw->evq_head = cw->evq_tail = NULL; /* events recorded from here on: the next round */
        while (ws) {
            struct wstream *next = ws->qnext;
            unsigned ev = ws->ev;

            ws->queued = false;
            ws->ev = 0;
            if (ws->dead)
                free(ws);
            else
                stream_handle(ws, ev);
            ws = next;
            n++;
        }
    }
    return n;
}

/* ---- worker: UDP sockets and listeners --------------------------------------------------------
 */

static struct wsock *sock_find(struct cw *cw, uint32_t id)
{
    for (unsigned i = 0; i < W_SOCKS; i++)
        if (cw->socks[i].used && cw->socks[i].id == id)
            return &cw->socks[i];
    return NULL;
}

static void udp_recv(struct nd_udp_sock *s, uint32_t src, uint16_t sport, uint32_t dst,
                     const uint8_t *data, uint32_t len)
{
    struct wsock *k = s->udata;
    struct nd_ctl_msg *m = nd_ctl_msg_new(ND_CTLM_DGRAM, k->id, data, len);
    uint32_t be = htonl(src);

    (void)dst;
    if (!m) {
        count(&k->cw->udp_dropped);
        return;
    }
    m->addr.len = 4;
    memcpy(m->addr.ip, &be, 4);
    m->addr.port = sport;
    post(k->cw, m);
}

static void listen_event(struct nd_tcp_listener *tl, void *udata)
{
    struct wsock *k = udata;

    (void)tl;
    k->ready = true;
    k->cw->accept_ready = true;
}

static void accept_all(struct wsock *k)
{
    struct cw *cw = k->cw;
    struct nd_tcp_conn *tc;

    k->ready = false;
    while ((tc = nd_tcp_accept(k->tl))) {
        struct nd_tcp_info info;
        struct nd_ctl_msg *m = nd_ctl_msg_new(ND_CTLM_ACCEPTED, k->id, NULL, 0);
        struct wstream *ws;
        uint32_t sid, be;

        do
            sid = ACCEPTED_BIT | cw->wid << 24 | (cw->next_sid++ & 0xffffffu);
        while (stream_find(cw, sid));
        if (!m || !(ws = stream_new(cw, sid, ND_CTL_WINDOW))) {
            count(&cw->conns_refused);
            free(m);
            nd_tcp_abort(tc);
            continue;
        }
        ws->tc = tc;
        nd_tcp_conn_info(tc, &info);
        be = htonl(info.flow.raddr);
        m->sid = sid;
        m->addr.len = 4;
        memcpy(m->addr.ip, &be, 4);
        m->addr.port = info.flow.rport;
        post(cw, m);
        nd_tcp_set_cb(tc, stream_event, ws); /* what came with the handshake follows ACCEPTED */
    }
}

static uint32_t addr_of(const struct nd_ctl_addr *a)
{
    uint32_t be;

    memcpy(&be, a->ip, 4);
    return ntohl(be);
}

static void bind_sock(struct cw *cw, const struct nd_ctl_msg *m)
{
    struct wsock *k = NULL;
    int err = -ENOSPC;

    for (unsigned i = 0; i < W_SOCKS && !k; i++)
        if (!cw->socks[i].used)
            k = &cw->socks[i];
    if (k) {
        memset(k, 0, sizeof(*k));
        k->cw = cw;
        k->id = m->id;
        if (m->type == ND_CTLM_UDP_BIND) {
            k->udp = true;
            k->us.recv = udp_recv;
            k->us.udata = k;
            err = nd_udp_bind(nd_io_dpdk_net(cw->wid), &k->us, addr_of(&m->addr), m->addr.port);
        } else {
            k->tl = nd_tcp_listen(nd_io_dpdk_tcp(cw->wid), addr_of(&m->addr), m->addr.port, m->n,
                                  listen_event, k, &err);
            err = k->tl ? 0 : err ? err : -ENOMEM;
        }
        k->used = err == 0;
    }
    if (err) {
        struct nd_ctl_msg *e = nd_ctl_msg_new(ND_CTLM_BOUND, m->id, NULL, 0);

        if (e) {
            e->err = err;
            e->n = m->type == ND_CTLM_LISTEN;
            e->addr = m->addr;
            post(cw, e);
        }
    }
}

static void unbind_sock(struct wsock *k)
{
    if (k->udp)
        nd_udp_unbind(&k->us);
    else
        nd_tcp_unlisten(k->tl);
    k->used = false;
}

/* ---- worker: commands --------------------------------------------------------------------------
 */

/* Handles m; returns true when it was kept. */
static bool command(struct cw *cw, struct nd_ctl_msg *m)
{
    struct wstream *ws;
    struct wsock *k;
    int err;

    switch (m->type) {
    case ND_CTLM_UDP_BIND:
    case ND_CTLM_LISTEN:
        bind_sock(cw, m);
        return false;
    case ND_CTLM_UDP_SEND:
        if (!(k = sock_find(cw, m->id)) || !k->udp ||
            nd_udp_sendto(&k->us, addr_of(&m->addr), m->addr.port, m->data, m->len) < 0)
            count(&cw->udp_dropped);
        return false;
    case ND_CTLM_CONNECT:
        if (!(ws = stream_new(cw, m->id, m->n))) {
            count(&cw->conns_refused);
            post_small(cw, ND_CTLM_CONNECTED, m->id, -ENOBUFS, 0);
            return false;
        }
        ws->connecting = true;
        ws->tc = nd_io_dpdk_open(cw->wid, addr_of(&m->addr), m->addr.port, stream_event, ws, &err);
        if (!ws->tc) {
            post_small(cw, ND_CTLM_CONNECTED, m->id, err, 0);
            stream_free(ws, false);
        }
        return false;
    case ND_CTLM_CLOSE:
        if ((k = sock_find(cw, m->id))) {
            unbind_sock(k);
            return false;
        }
        if (!(ws = stream_find(cw, m->id)))
            return false; /* it ended here first */
        if (m->flag) {
            stream_free(ws, true);
            return false;
        }
        ws->closing = true;
        ws->deadline = cw->now + LINGER_MS;
        cw->nclosing++;
        pump_write(ws); /* closes now if nothing is left to send */
        return false;
    default:
        break;
    }
    if (!(ws = stream_find(cw, m->id)))
        return false; /* the stream ended here: the relay has its CLOSED */
    switch (m->type) {
    case ND_CTLM_SEND:
        nd_ctl_mq_push(&ws->pending, m);
        pump_write(ws);
        return true;
    case ND_CTLM_CREDIT:
        ws->credit += m->n;
        pump_read(ws);
        break;
    case ND_CTLM_SHUTDOWN:
        ws->shut_wanted = true;
        pump_write(ws);
        break;
    default:
        break;
    }
    return false;
}

int nd_ctl_dpdk_poll(unsigned wid, uint64_t now_ms)
{
    struct transport *t = tp;
    struct nd_ctl_msg *ms[32];
    struct cw *cw;
    unsigned n;
    int work = 0;

    if (!t || wid >= t->n || !(cw = t->w[wid]))
        return 0;
    cw->now = now_ms;
    while ((n = rte_ring_sc_dequeue_burst(cw->cmd, (void **)ms, 32, NULL)) > 0) {
        for (unsigned i = 0; i < n; i++)
            if (!command(cw, ms[i]))
                free(ms[i]);
        work += (int)n;
        if (n < 32)
            break;
    }
    if (cw->accept_ready) {
        cw->accept_ready = false;
        for (unsigned i = 0; i < W_SOCKS; i++)
            if (cw->socks[i].used && cw->socks[i].ready)
                accept_all(&cw->socks[i]);
    }
    work += stream_dispatch(cw);
    if (cw->retry) { /* writers the chunk pool refused: again now */
        cw->retry = false;
        for (unsigned i = cw->nstreams; i-- > 0;)
            if (i < cw->nstreams && cw->streams[i]->pending.head)
                pump_write(cw->streams[i]);
    }
    if (cw->nclosing && now_ms >= cw->next_linger) { /* closed streams whose peer does not read */
        cw->next_linger = now_ms + 100;
        for (unsigned i = cw->nstreams; i-- > 0;)
            if (i < cw->nstreams && cw->streams[i]->closing && now_ms >= cw->streams[i]->deadline)
                stream_free(cw->streams[i], true);
    }
    if (cw->later.head)
        post_later(cw);
    if (cw->posted) {
        uint64_t one = 1;

        cw->posted = false;
        if (write(t->efd, &one, sizeof(one)) < 0) { /* the counter is full: main is awake */
        }
        work++;
    }
    return work;
}

/* ---- the transport (main thread) ----------------------------------------------------------------
 */

static int t_post(void *arg, unsigned w, struct nd_ctl_msg *m)
{
    struct transport *t = arg;

    if (rte_ring_sp_enqueue(t->w[w]->cmd, m) != 0)
        return -ENOBUFS;
    nd_io_dpdk_wake(w);
    return 0;
}

static unsigned t_take(void *arg, struct nd_ctl_msg **m, unsigned max)
{
    struct transport *t = arg;
    unsigned got = 0;

    for (unsigned w = 0; w < t->n && got < max; w++)
        got += rte_ring_sc_dequeue_burst(t->w[w]->evt, (void **)(m + got), max - got, NULL);
    return got;
}

static bool t_idle(void *arg)
{
    struct transport *t = arg;

    for (unsigned w = 0; w < t->n; w++)
        if (!rte_ring_empty(t->w[w]->cmd))
            return false;
    return true;
}

static void t_stats(void *arg, struct nd_ctl_stats *st)
{
    struct transport *t = arg;

    for (unsigned w = 0; w < t->n; w++) {
        st->udp_dropped += __atomic_load_n(&t->w[w]->udp_dropped, __ATOMIC_RELAXED);
        st->conns_refused += __atomic_load_n(&t->w[w]->conns_refused, __ATOMIC_RELAXED);
    }
}

static void ring_clear(struct rte_ring *r)
{
    void *m;

    while (r && rte_ring_sc_dequeue(r, &m) == 0)
        free(m);
    rte_ring_free(r);
}

static void t_free(void *arg)
{
    struct transport *t = arg;

    if (tp == t)
        tp = NULL;
    for (unsigned w = 0; w < t->n; w++) {
        struct cw *cw = t->w[w];

        if (!cw)
            continue;
        /* the worker's TCP stack and packet path are gone (worker_fini): handles with them */
        for (unsigned i = 0; i < cw->nstreams; i++) {
            nd_ctl_mq_clear(&cw->streams[i]->pending);
            free(cw->streams[i]);
        }
        nd_ctl_mq_clear(&cw->later);
        ring_clear(cw->cmd);
        ring_clear(cw->evt);
        free(cw);
    }
    if (t->efd >= 0)
        close(t->efd);
    free(t);
}

struct nd_ctl *nd_io_dpdk_ctl_new(unsigned nworkers, char *err, size_t errlen)
{
    struct transport *t = calloc(1, sizeof(*t));
    struct nd_ctl_transport tr = {
        .post = t_post, .take = t_take, .idle = t_idle, .stats = t_stats, .free = t_free};
    struct nd_ctl *c;

    if (!t || tp || !nworkers || nworkers > ND_MAX_WORKERS) {
        snprintf(err, errlen, "%s", t ? "bad worker count, or already running" : "out of memory");
        free(t);
        return NULL;
    }
    t->n = nworkers;
    if ((t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        free(t);
        return NULL;
    }
    for (unsigned w = 0; w < nworkers; w++) {
        char name[32];
        struct cw *cw = aligned_alloc(64, sizeof(*cw));

        if (!cw) {
            snprintf(err, errlen, "out of memory");
            t_free(t);
            return NULL;
        }
        memset(cw, 0, sizeof(*cw));
        t->w[w] = cw;
        cw->wid = w;
        snprintf(name, sizeof(name), "nd_ctl_cmd%u", w);
        cw->cmd = rte_ring_create(name, RING_SIZE, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        snprintf(name, sizeof(name), "nd_ctl_evt%u", w);
        cw->evt = rte_ring_create(name, RING_SIZE, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (!cw->cmd || !cw->evt) {
            snprintf(err, errlen, "rte_ring_create: %s", rte_strerror(rte_errno));
            t_free(t);
            return NULL;
        }
    }
    tr.nworkers = nworkers;
    tr.fd = t->efd;
    tr.arg = t;
    if (!(c = nd_ctl_relay_new(&tr))) {
        snprintf(err, errlen, "out of memory");
        t_free(t);
        return NULL;
    }
    tp = t;
    return c;
}
