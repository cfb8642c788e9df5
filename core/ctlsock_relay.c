/*
 * Control-plane sockets relayed to the workers (ctlsock.h, ctlmsg.h): the main thread's half.
 * Every call turns into messages to the worker that owns the socket (a UDP socket or a listener:
 * every worker; a stream: the one its flow lands on), and the workers' messages become the state
 * the owner reads: queued datagrams, connections waiting to be accepted, bytes, end of stream,
 * errors. Needs no DPDK: the transport is given (dpdk/ctl_dpdk.c; a fake one in the unit test).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ctlmsg.h"
#include "log.h"

enum { R_UDP, R_LISTEN, R_STREAM };

struct rsock {
    struct nd_ctl_sock base; /* first */
    uint32_t id;
    int kind;
    unsigned worker; /* a stream's */
    bool dead;
    struct rsock *next_dead;
    /* UDP: datagrams waiting */
    struct nd_ctl_mq dgrams;
    /* listener: streams waiting for accept */
    struct rsock *acq_head, *acq_tail, *acq_next;
    unsigned nacq, backlog;
    /* stream */
    bool waiting_accept;
    bool connecting;
    bool eof;      /* EOF came: read returns 0 once the bytes are read */
    bool eof_read; /* and read returned it */
    bool err_read; /* read or write returned err */
    bool shut;
    bool blocked;     /* a write returned -EAGAIN */
    bool out_pending; /* OUT to deliver */
    bool gone;        /* the worker forgot the stream (CLOSED, or a failed connect) */
    int err;          /* 0 or -errno */
    struct nd_ctl_mq rx;
    size_t rx_off;     /* bytes of rx.head already read */
    uint32_t consumed; /* bytes read and not yet credited */
    uint32_t inflight; /* bytes sent to the worker and not yet taken by its engine */
};

struct relay {
    struct nd_ctl base; /* first */
    struct nd_ctl_transport t;
    struct rsock **socks; /* every open socket (streams waiting for accept included) */
    unsigned nsocks, cap, nstreams;
    uint32_t next_id;
    unsigned next_worker;
    struct nd_ctl_mq *held; /* per worker: commands waiting for room in its ring */
    bool in_run;
    struct rsock *dead;
    struct nd_ctl_stats st, view;
};

static struct relay *relay_of(const struct nd_ctl *c)
{
    return (struct relay *)c;
}

static struct rsock *rs_of(struct nd_ctl_sock *s)
{
    return (struct rsock *)s;
}

/* ---- messages ------------------------------------------------------------------------------ */

struct nd_ctl_msg *nd_ctl_msg_new(unsigned type, uint32_t id, const void *data, size_t len)
{
    struct nd_ctl_msg *m = malloc(sizeof(*m) + len);

    if (!m)
        return NULL;
    memset(m, 0, sizeof(*m));
    m->type = (uint8_t)type;
    m->id = id;
    m->len = (uint32_t)len;
    if (data && len)
        memcpy(m->data, data, len);
    return m;
}

const char *nd_ctl_msg_name(unsigned type)
{
    static const char *const names[ND_CTLM_MAX] = {
        [ND_CTLM_UDP_BIND] = "udp_bind", [ND_CTLM_UDP_SEND] = "udp_send",
        [ND_CTLM_LISTEN] = "listen",     [ND_CTLM_CONNECT] = "connect",
        [ND_CTLM_SEND] = "send",         [ND_CTLM_CREDIT] = "credit",
        [ND_CTLM_SHUTDOWN] = "shutdown", [ND_CTLM_CLOSE] = "close",
        [ND_CTLM_BOUND] = "bound",       [ND_CTLM_DGRAM] = "dgram",
        [ND_CTLM_ACCEPTED] = "accepted", [ND_CTLM_CONNECTED] = "connected",
        [ND_CTLM_DATA] = "data",         [ND_CTLM_SENT] = "sent",
        [ND_CTLM_EOF] = "eof",           [ND_CTLM_CLOSED] = "closed",
    };

    return type < ND_CTLM_MAX && names[type] ? names[type] : "?";
}

void nd_ctl_mq_push(struct nd_ctl_mq *q, struct nd_ctl_msg *m)
{
    m->next = NULL;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->n++;
}

struct nd_ctl_msg *nd_ctl_mq_pop(struct nd_ctl_mq *q)
{
    struct nd_ctl_msg *m = q->head;

    if (m) {
        q->head = m->next;
        if (!q->head)
            q->tail = NULL;
        q->n--;
        m->next = NULL;
    }
    return m;
}

void nd_ctl_mq_clear(struct nd_ctl_mq *q)
{
    struct nd_ctl_msg *m;

    while ((m = nd_ctl_mq_pop(q)))
        free(m);
}

/* Hands m to worker w, behind anything already held for it (order is kept). */
static void post(struct relay *r, unsigned w, struct nd_ctl_msg *m)
{
    r->st.msgs_out++;
    if (!r->held[w].n && r->t.post(r->t.arg, w, m) == 0)
        return;
    r->st.msgs_deferred++;
    nd_ctl_mq_push(&r->held[w], m);
}

static void post_held(struct relay *r)
{
    for (unsigned w = 0; w < r->t.nworkers; w++)
        while (r->held[w].head) {
            struct nd_ctl_msg *m = r->held[w].head, *next = m->next;

            if (r->t.post(r->t.arg, w, m) < 0) /* the receiver owns m (and m->next) once taken */
                break;
            r->held[w].head = next;
            if (!next)
                r->held[w].tail = NULL;
            r->held[w].n--;
        }
}

/* A small command (no data) to worker w. -ENOMEM when it cannot be made. */
static int command(struct relay *r, unsigned w, unsigned type, uint32_t id, uint32_t n,
                   uint8_t flag, const struct nd_ctl_addr *a)
{
    struct nd_ctl_msg *m = nd_ctl_msg_new(type, id, NULL, 0);

    if (!m)
        return -ENOMEM;
    m->n = n;
    m->flag = flag;
    if (a)
        m->addr = *a;
    post(r, w, m);
    return 0;
}

/* ---- sockets ------------------------------------------------------------------------------- */

static struct rsock *find(struct relay *r, uint32_t id)
{
    for (unsigned i = 0; i < r->nsocks; i++)
        if (r->socks[i]->id == id)
            return r->socks[i];
    return NULL;
}

static struct rsock *rs_new(struct relay *r, uint32_t id, int kind, nd_ctl_cb cb, void *arg)
{
    struct rsock *s;

    if (r->nsocks == r->cap) {
        unsigned cap = r->cap ? r->cap * 2 : 32;
        struct rsock **a = realloc(r->socks, cap * sizeof(*a));

        if (!a)
            return NULL;
        r->socks = a;
        r->cap = cap;
    }
    if (!(s = calloc(1, sizeof(*s))))
        return NULL;
    s->base.ctl = &r->base;
    s->base.cb = cb;
    s->base.arg = arg;
    s->id = id;
    s->kind = kind;
    r->socks[r->nsocks++] = s;
    if (kind == R_STREAM)
        r->nstreams++;
    return s;
}

/* Forgets s (the caller told the workers); freed now, or at the end of run. */
static void rs_drop(struct relay *r, struct rsock *s)
{
    for (unsigned i = 0; i < r->nsocks; i++)
        if (r->socks[i] == s) {
            r->socks[i] = r->socks[--r->nsocks];
            break;
        }
    if (s->kind == R_STREAM)
        r->nstreams--;
    nd_ctl_mq_clear(&s->dgrams);
    nd_ctl_mq_clear(&s->rx);
    s->dead = true;
    if (r->in_run) {
        s->next_dead = r->dead;
        r->dead = s;
    } else {
        free(s);
    }
}

static uint32_t new_id(struct relay *r)
{
    uint32_t id;

    do { /* the workers number accepted streams with the top bit set */
        id = r->next_id++ & 0x7fffffffu;
    } while (!id || find(r, id));
    return id;
}

static int v4(const struct nd_addr *a, struct nd_ctl_addr *out)
{
    if (a->ss.ss_family != AF_INET)
        return -EAFNOSUPPORT;
    nd_ctl_addr_from(&a->ss, out);
    return 0;
}

/* A UDP socket or a listener: the same on every worker. */
static struct nd_ctl_sock *r_bound(struct nd_ctl *c, const struct nd_addr *a, int kind,
                                   unsigned backlog, nd_ctl_cb cb, void *arg, int *err)
{
    struct relay *r = relay_of(c);
    struct nd_ctl_addr ca;
    struct rsock *s;

    if ((*err = v4(a, &ca)) < 0)
        return NULL;
    if (!(s = rs_new(r, new_id(r), kind, cb, arg))) {
        *err = -ENOMEM;
        return NULL;
    }
    s->backlog = backlog ? backlog : 1;
    for (unsigned w = 0; w < r->t.nworkers; w++)
        if (command(r, w, kind == R_UDP ? ND_CTLM_UDP_BIND : ND_CTLM_LISTEN, s->id, s->backlog, 0,
                    &ca) < 0) {
            for (unsigned k = 0; k < w; k++)
                command(r, k, ND_CTLM_CLOSE, s->id, 0, 0, NULL);
            rs_drop(r, s);
            *err = -ENOMEM;
            return NULL;
        }
    return &s->base;
}

static struct nd_ctl_sock *r_udp(struct nd_ctl *c, const struct nd_addr *a, nd_ctl_cb cb, void *arg,
                                 int *err)
{
    return r_bound(c, a, R_UDP, 0, cb, arg, err);
}

static struct nd_ctl_sock *r_listen(struct nd_ctl *c, const struct nd_addr *a, unsigned backlog,
                                    nd_ctl_cb cb, void *arg, int *err)
{
    return r_bound(c, a, R_LISTEN, backlog, cb, arg, err);
}

static int r_sendto(struct nd_ctl_sock *cs, const struct nd_ctl_addr *to, const void *p, size_t n)
{
    struct relay *r = relay_of(cs->ctl);
    struct nd_ctl_msg *m;
    unsigned w;
    uint32_t ip;

    if (to->len != 4)
        return -EAFNOSUPPORT;
    if (!(m = nd_ctl_msg_new(ND_CTLM_UDP_SEND, rs_of(cs)->id, p, n))) {
        r->st.udp_dropped++;
        return -ENOMEM;
    }
    m->addr = *to;
    /* any worker can send it; one per destination keeps a peer's datagrams in order */
    memcpy(&ip, to->ip, 4);
    w = (ntohl(ip) ^ to->port) % r->t.nworkers;
    r->st.msgs_out++;
    if (r->held[w].n || r->t.post(r->t.arg, w, m) < 0) {
        free(m); /* a full ring drops the datagram, as a full socket buffer would */
        r->st.udp_dropped++;
        return -ENOBUFS;
    }
    return 0;
}

static ssize_t r_recvfrom(struct nd_ctl_sock *cs, void *buf, size_t len, struct nd_ctl_addr *from)
{
    struct nd_ctl_msg *m = nd_ctl_mq_pop(&rs_of(cs)->dgrams);
    size_t n;

    if (!m)
        return -EAGAIN;
    n = m->len < len ? m->len : len;
    memcpy(buf, m->data, n);
    *from = m->addr;
    free(m);
    return (ssize_t)n;
}

static struct nd_ctl_sock *r_accept(struct nd_ctl_sock *cl, nd_ctl_cb cb, void *arg,
                                    struct nd_ctl_addr *peer, int *err)
{
    struct rsock *l = rs_of(cl), *s = l->acq_head;

    if (!s) {
        *err = -EAGAIN;
        return NULL;
    }
    l->acq_head = s->acq_next;
    if (!l->acq_head)
        l->acq_tail = NULL;
    l->nacq--;
    s->acq_next = NULL;
    s->waiting_accept = false;
    s->base.cb = cb;
    s->base.arg = arg;
    {
        struct nd_ctl_msg *pm = nd_ctl_mq_pop(&s->dgrams); /* ACCEPTED, kept for the address */

        if (pm)
            *peer = pm->addr;
        free(pm);
    }
    return &s->base;
}

static struct nd_ctl_sock *r_connect(struct nd_ctl *c, const struct nd_ctl_addr *to, nd_ctl_cb cb,
                                     void *arg, int *err)
{
    struct relay *r = relay_of(c);
    struct rsock *s;

    if (to->len != 4) {
        *err = -EAFNOSUPPORT;
        return NULL;
    }
    if (r->nstreams >= ND_CTL_MAX_STREAMS) {
        r->st.conns_refused++;
        *err = -ENOBUFS;
        return NULL;
    }
    if (!(s = rs_new(r, new_id(r), R_STREAM, cb, arg))) {
        *err = -ENOMEM;
        return NULL;
    }
    /* the worker picks a source port whose flow RSS steers back to it */
    s->worker = r->next_worker++ % r->t.nworkers;
    s->connecting = true;
    s->err = -EINPROGRESS;
    if (command(r, s->worker, ND_CTLM_CONNECT, s->id, ND_CTL_WINDOW, 0, to) < 0) {
        rs_drop(r, s);
        *err = -ENOMEM;
        return NULL;
    }
    return &s->base;
}

static int r_connect_result(struct nd_ctl_sock *cs)
{
    struct rsock *s = rs_of(cs);

    return s->connecting ? -EINPROGRESS : s->err == -EINPROGRESS ? 0 : s->err;
}

static ssize_t r_read(struct nd_ctl_sock *cs, void *buf, size_t len)
{
    struct rsock *s = rs_of(cs);
    struct relay *r = relay_of(cs->ctl);
    size_t got = 0;

    while (got < len && s->rx.head) {
        struct nd_ctl_msg *m = s->rx.head;
        size_t n = m->len - s->rx_off;

        if (n > len - got)
            n = len - got;
        memcpy((uint8_t *)buf + got, m->data + s->rx_off, n);
        got += n;
        s->rx_off += n;
        if (s->rx_off == m->len) {
            free(nd_ctl_mq_pop(&s->rx));
            s->rx_off = 0;
        }
    }
    s->consumed += (uint32_t)got;
    /* credit back what was read: in quarters of the window, or all once the queue is empty */
    if (s->consumed && !s->gone && (s->consumed >= ND_CTL_WINDOW / 4 || !s->rx.head) &&
        command(r, s->worker, ND_CTLM_CREDIT, s->id, s->consumed, 0, NULL) == 0)
        s->consumed = 0;
    if (got)
        return (ssize_t)got;
    if (s->connecting)
        return -EAGAIN;
    if (s->eof) {
        s->eof_read = true;
        return 0;
    }
    if (s->err && s->err != -EINPROGRESS) {
        s->err_read = true;
        return s->err;
    }
    return -EAGAIN;
}

static ssize_t r_write(struct nd_ctl_sock *cs, const void *p, size_t n)
{
    struct rsock *s = rs_of(cs);
    struct relay *r = relay_of(cs->ctl);
    size_t room, done = 0;

    if (!s->connecting && s->err && s->err != -EINPROGRESS) {
        s->err_read = true;
        return s->err;
    }
    if (s->shut || s->gone)
        return -EPIPE;
    room = s->connecting ? 0 : ND_CTL_WINDOW - s->inflight;
    if (!room) {
        s->blocked = true;
        return -EAGAIN;
    }
    if (n > room)
        n = room;
    while (done < n) {
        size_t k = n - done < ND_CTL_CHUNK ? n - done : ND_CTL_CHUNK;
        struct nd_ctl_msg *m = nd_ctl_msg_new(ND_CTLM_SEND, s->id, (const uint8_t *)p + done, k);

        if (!m)
            break;
        post(r, s->worker, m);
        done += k;
    }
    s->inflight += (uint32_t)done;
    return done ? (ssize_t)done : -ENOMEM;
}

static void r_shutdown(struct nd_ctl_sock *cs)
{
    struct rsock *s = rs_of(cs);

    if (s->shut || s->gone)
        return;
    s->shut = true;
    command(relay_of(cs->ctl), s->worker, ND_CTLM_SHUTDOWN, s->id, 0, 0, NULL);
}

static void r_close(struct nd_ctl_sock *cs, bool reset)
{
    struct relay *r = relay_of(cs->ctl);
    struct rsock *s = rs_of(cs);

    if (s->kind == R_STREAM) {
        if (!s->gone)
            command(r, s->worker, ND_CTLM_CLOSE, s->id, 0, reset, NULL);
    } else {
        for (unsigned w = 0; w < r->t.nworkers; w++)
            command(r, w, ND_CTLM_CLOSE, s->id, 0, 0, NULL);
        while (s->acq_head) { /* connections nobody accepted */
            struct rsock *a = s->acq_head;

            s->acq_head = a->acq_next;
            command(r, a->worker, ND_CTLM_CLOSE, a->id, 0, 1, NULL);
            rs_drop(r, a);
        }
    }
    rs_drop(r, s);
}

/* ---- events from the workers --------------------------------------------------------------- */

static void refuse(struct relay *r, const struct nd_ctl_msg *m)
{
    r->st.conns_refused++;
    command(r, m->worker, ND_CTLM_CLOSE, m->sid, 0, 1, NULL);
}

/* Handles m; returns true when it was kept (queued on a socket). */
static bool handle(struct relay *r, struct nd_ctl_msg *m)
{
    struct rsock *s = find(r, m->id), *a;
    char addr[64];

    r->st.msgs_in++;
    switch (m->type) {
    case ND_CTLM_BOUND:
        r->st.bind_errors++;
        nd_err("control socket %s: worker %u cannot %s it: %s",
               nd_ctl_addr_str(&m->addr, addr, sizeof(addr)), m->worker,
               m->n ? "listen on" : "bind", strerror(-m->err));
        return false;
    case ND_CTLM_DGRAM:
        if (!s || s->kind != R_UDP || s->dgrams.n >= ND_CTL_UDP_QUEUE) {
            r->st.udp_dropped++;
            return false;
        }
        nd_ctl_mq_push(&s->dgrams, m);
        return true;
    case ND_CTLM_ACCEPTED:
        if (!s || s->kind != R_LISTEN || s->nacq >= s->backlog ||
            r->nstreams >= ND_CTL_MAX_STREAMS || find(r, m->sid) ||
            !(a = rs_new(r, m->sid, R_STREAM, NULL, NULL))) {
            refuse(r, m);
            return false;
        }
        a->worker = m->worker;
        a->waiting_accept = true;
        /* the peer's address waits in a message of its own until accept */
        nd_ctl_mq_push(&a->dgrams, m);
        if (s->acq_tail)
            s->acq_tail->acq_next = a;
        else
            s->acq_head = a;
        s->acq_tail = a;
        s->nacq++;
        return true;
    default:
        break;
    }
    if (!s || s->kind != R_STREAM)
        return false; /* closed here already: the worker learns it from our CLOSE */
    switch (m->type) {
    case ND_CTLM_CONNECTED:
        s->connecting = false;
        s->err = m->err;
        s->gone = m->err != 0;
        s->out_pending = true;
        break;
    case ND_CTLM_DATA:
        nd_ctl_mq_push(&s->rx, m);
        return true;
    case ND_CTLM_SENT:
        s->inflight = m->n < s->inflight ? s->inflight - m->n : 0;
        if (s->blocked) {
            s->blocked = false;
            s->out_pending = true;
        }
        break;
    case ND_CTLM_EOF:
        s->eof = true;
        break;
    case ND_CTLM_CLOSED:
        s->gone = true;
        s->err = m->err ? m->err : -ECONNRESET;
        if (s->connecting) {
            s->connecting = false;
            s->out_pending = true;
        }
        if (s->blocked) {
            s->blocked = false;
            s->out_pending = true;
        }
        break;
    default:
        break;
    }
    return false;
}

/* The events s has now. */
static unsigned ready(const struct rsock *s)
{
    unsigned ev = 0;

    switch (s->kind) {
    case R_UDP:
        return s->dgrams.head ? ND_CTL_IN : 0;
    case R_LISTEN:
        return s->acq_head ? ND_CTL_IN : 0;
    default:
        if (s->waiting_accept)
            return 0;
        if (s->rx.head || (s->eof && !s->eof_read))
            ev |= ND_CTL_IN;
        if (s->out_pending)
            ev |= ND_CTL_OUT;
        if (s->gone && s->err < 0 && s->err != -EINPROGRESS && !s->err_read && !s->eof_read &&
            !s->connecting)
            ev |= ND_CTL_ERR | ND_CTL_IN; /* until a read or write returned it */
        return ev;
    }
}

static void r_run(struct nd_ctl *c)
{
    struct relay *r = relay_of(c);
    struct nd_ctl_msg *ms[64];
    struct rsock **todo;
    unsigned n, nt = 0, budget = 16;
    uint64_t v;
    bool again = false;

    if (read(r->t.fd, &v, sizeof(v)) < 0) { /* cleared: a worker posting later sets it again */
    }
    post_held(r);
    while (budget-- && (n = r->t.take(r->t.arg, ms, 64)) > 0)
        for (unsigned i = 0; i < n; i++)
            if (!handle(r, ms[i]))
                free(ms[i]);
    if (!budget)
        again = true; /* more may wait: come back at once */
    if (!r->nsocks)
        goto out;
    if (!(todo = malloc(r->nsocks * sizeof(*todo))))
        goto out;
    for (unsigned i = 0; i < r->nsocks; i++)
        if (ready(r->socks[i]))
            todo[nt++] = r->socks[i];
    r->in_run = true;
    for (unsigned i = 0; i < nt; i++) {
        struct rsock *s = todo[i];
        unsigned ev;

        if (s->dead || !(ev = ready(s)))
            continue;
        s->out_pending = false;
        s->base.cb(&s->base, ev, s->base.arg);
    }
    r->in_run = false;
    free(todo);
    while (r->dead) {
        struct rsock *s = r->dead;

        r->dead = s->next_dead;
        free(s);
    }
    for (unsigned i = 0; i < r->nsocks && !again; i++)
        again = (ready(r->socks[i]) & ND_CTL_IN) != 0; /* level-triggered: still readable */
out:
    post_held(r);
    for (unsigned w = 0; w < r->t.nworkers && !again; w++)
        again = r->held[w].n != 0;
    if (again) {
        v = 1;
        if (write(r->t.fd, &v, sizeof(v)) < 0) { /* the counter is full: it is readable anyway */
        }
    }
}

static int r_fd(const struct nd_ctl *c)
{
    return relay_of(c)->t.fd;
}

static void r_settle(struct nd_ctl *c, unsigned max_ms)
{
    struct relay *r = relay_of(c);

    for (unsigned t = 0; t <= max_ms; t++) {
        bool held = false;

        post_held(r);
        for (unsigned w = 0; w < r->t.nworkers; w++)
            held |= r->held[w].n != 0;
        if (!held && r->t.idle(r->t.arg))
            return;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

static const struct nd_ctl_stats *r_stats(const struct nd_ctl *c)
{
    struct relay *r = relay_of(c);

    r->view = r->st;
    r->t.stats(r->t.arg, &r->view);
    return &r->view;
}

static void r_free(struct nd_ctl *c)
{
    struct relay *r = relay_of(c);

    while (r->nsocks) /* nothing is posted any more: the workers have stopped */
        rs_drop(r, r->socks[r->nsocks - 1]);
    for (unsigned w = 0; w < r->t.nworkers; w++)
        nd_ctl_mq_clear(&r->held[w]);
    r->t.free(r->t.arg);
    free(r->held);
    free(r->socks);
    free(r);
}

static const struct nd_ctl_ops relay_ops = {
    .name = "relay",
    .udp = r_udp,
    .sendto = r_sendto,
    .recvfrom = r_recvfrom,
    .listen = r_listen,
    .accept = r_accept,
    .connect = r_connect,
    .connect_result = r_connect_result,
    .read = r_read,
    .write = r_write,
    .shutdown = r_shutdown,
    .close = r_close,
    .fd = r_fd,
    .run = r_run,
    .settle = r_settle,
    .stats = r_stats,
    .free = r_free,
};

struct nd_ctl *nd_ctl_relay_new(const struct nd_ctl_transport *t)
{
    struct relay *r = calloc(1, sizeof(*r));

    if (!r || !t->nworkers || !(r->held = calloc(t->nworkers, sizeof(*r->held)))) {
        free(r);
        return NULL;
    }
    r->base.ops = &relay_ops;
    r->t = *t;
    r->next_id = 1;
    return &r->base;
}
