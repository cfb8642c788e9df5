/* protocol = "tcp": bytes both ways between a client and one endpoint of the listener's cluster,
 * with half-close carried across. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "cluster.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "stream.h"

#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))

static void tcp_conn_cb(struct nd_conn *c, unsigned events);

static void tcp_connect_timeout(struct nd_timer *tm)
{
    struct nd_upstream *u = container_of(tm, struct nd_upstream, timer);

    nd_tcp_up_cb(u, ND_EV_ERROR | ND_EV_WRITE);
}

void nd_tcp_session_start(struct nd_session *s)
{
    struct nd_worker *w = s->w;
    const struct nd_cluster_conf *cc = s->lc->tcp_cluster;
    struct nd_cluster_rt *crt = &s->snap->wrt[w->id].clusters[cc->id];
    struct nd_upstream *u;
    int ep, err, tries;

    s->state = S_TCP;
    for (tries = 0, ep = -1; tries < 3; tries++) {
        ep = nd_lb_pick(w, crt, NULL, NULL, ep);
        if (ep < 0 || crt->conns >= cc->max_connections || !(u = nd_upstream_get(w)))
            break;
        u->tcp = true;
        u->conn.cb = tcp_conn_cb;
        err = w->io->connect(w, &u->conn, &crt->ceps[ep].addr);
        if (err) {
            crt->eps[ep].fails++;
            nd_upstream_recycle(w, u);
            continue;
        }
        u->crt = crt;
        u->ep = &crt->eps[ep];
        u->ep_idx = (unsigned)ep;
        u->ep->conns++;
        crt->conns++;
        u->state = UP_CONNECTING;
        u->txn = (struct nd_txn *)s; /* a TCP upstream points back to its session */
        u->timer.cb = tcp_connect_timeout;
        nd_timer_arm(&w->wheel, &u->timer, cc->connect_timeout_ms);
        nd_metrics_count(w->id, ND_C_UPSTREAM_CX_TOTAL, 1);
        nd_metrics_gauge_add(w->id, ND_G_UPSTREAM_CX_ACTIVE, 1);
        s->up = u;
        return;
    }
    nd_warn("%s: no upstream connection for %s", s->lc->name, s->peer);
    s->state = S_CLOSING;
}

static void tcp_conn_cb(struct nd_conn *c, unsigned events)
{
    struct nd_upstream *u = container_of(c, struct nd_upstream, conn);

    if (u->state != UP_FREE)
        nd_tcp_up_cb(u, events);
}

void nd_tcp_up_cb(struct nd_upstream *u, unsigned events)
{
    struct nd_session *s = (struct nd_session *)u->txn;
    struct nd_worker *w = u->conn.w ? u->conn.w : s->w;

    if (u->state == UP_CONNECTING) {
        int err =
            (events == (ND_EV_ERROR | ND_EV_WRITE)) ? -ETIMEDOUT : w->io->connect_result(&u->conn);

        if (!(events & (ND_EV_WRITE | ND_EV_ERROR)))
            return;
        nd_timer_cancel(&w->wheel, &u->timer);
        if (err) {
            nd_warn("%s: connect to %s: %s", s->lc->name,
                    nd_ep_text(u->crt, u->ep ? (int)u->ep_idx : -1), strerror(-err));
            if (u->ep)
                u->ep->fails++;
            nd_metrics_count(w->id, ND_C_UPSTREAM_CX_CONNECT_FAIL, 1);
            s->state = S_CLOSING;
            nd_session_free(s);
            return;
        }
        if (nd_upstream_start_tls(w, u) < 0) {
            s->state = S_CLOSING;
            nd_session_free(s);
            return;
        }
        if (u->ep)
            u->ep->fails = 0;
        u->state = UP_BUSY;
    }
    if (u->conn.st)
        nd_stream_event(u->conn.st);
    nd_tcp_drive(s);
    if (s->state != S_TCP)
        nd_session_free(s);
}

/* Zero-copy (both sides without stream plugins): from's received bytes spliced to `to`. Returns
 * -1 on a write error. */
static int splice_all(struct nd_conn *from, bool *eof, struct nd_conn *to, uint64_t *count)
{
    const struct nd_io_ops *io = from->w->io;

    for (;;) {
        struct iovec iov[ND_IO_PEEK_MAX];
        int n = io->peek(from, iov, ND_IO_PEEK_MAX);
        size_t len = 0;
        ssize_t k;

        if (n == -EAGAIN)
            return 0;
        if (n <= 0) {
            *eof = true;
            return 0;
        }
        for (int i = 0; i < n; i++)
            len += iov[i].iov_len;
        k = io->splice(to, from, len);
        if (k == -EAGAIN)
            return 0; /* the other side is full */
        if (k <= 0)
            return -1;
        *count += (uint64_t)k;
    }
}

/* Moves bytes from one side's rx buffer to the other side. Returns -1 on a write error. */
static int move(struct nd_worker *w, struct nd_conn *from, struct nd_buf **rx, bool *eof,
                struct nd_conn *to, uint64_t *count)
{
    for (;;) {
        ssize_t n;
        uint32_t len;

        if (*rx && (*rx)->len) {
            len = (*rx)->len;
            if (nd_flush(to, NULL, nd_buf_head(*rx), &len) < 0)
                return -1;
            *count += (*rx)->len - len;
            nd_buf_consume(*rx, (*rx)->len - len);
            if ((*rx)->len)
                return 0; /* the other side is full */
        }
        if (*eof)
            return 0;
        if (nd_conn_zc(from) && nd_conn_zc(to))
            return splice_all(from, eof, to, count);
        if (!*rx && !(*rx = nd_buf_get(&w->bufs)))
            return 0;
        (*rx)->off = 0;
        n = nd_conn_read(from, nd_buf_tail(*rx), nd_buf_room(*rx));
        if (n == -EAGAIN)
            return 0;
        if (n <= 0) {
            *eof = true;
            return 0;
        }
        (*rx)->len += (uint32_t)n;
    }
}

/* How often a TCP connection that moves bytes reports them (Istio's proxies: every 5 s too). */
#define TCP_REPORT_US 5000000u

/* Counts the connection as opened, under its key, which does not change after: called once the
 * principals are known (see nd_tcp_drive), or at close. */
static void tcp_count_open(struct nd_session *s)
{
    struct nd_tcp_key *k = &s->tcp_key;
    struct nd_upstream *u = s->up;

    k->listener = s->lc->metrics_id;
    k->cluster = s->lc->tcp_cluster ? s->lc->tcp_cluster->metrics_id : ND_METRICS_NONE;
    k->mtls = s->principal_len != 0;
    k->src = nd_principal_id(s->principal, s->principal_len, &s->principal_mid);
    k->dst =
        u ? nd_principal_id(u->principal, u->principal_len, &u->principal_mid) : ND_METRICS_NONE;
    nd_principal_pair(&k->src, &k->dst);
    nd_metrics_tcp_open(s->w->id, k);
    s->tcp_opened = true;
    s->tcp_rep_us = s->w->now_us;
}

static void tcp_report(struct nd_session *s)
{
    nd_metrics_tcp_bytes(s->w->id, &s->tcp_key, s->tcp_sent - s->tcp_rep_sent,
                         s->tcp_recv - s->tcp_rep_recv);
    s->tcp_rep_sent = s->tcp_sent;
    s->tcp_rep_recv = s->tcp_recv;
    s->tcp_rep_us = s->w->now_us;
}

void nd_tcp_session_end(struct nd_session *s)
{
    if (!s->tcp_opened)
        tcp_count_open(s);
    nd_metrics_tcp_close(s->w->id, &s->tcp_key, s->tcp_sent - s->tcp_rep_sent,
                         s->tcp_recv - s->tcp_rep_recv);
}

void nd_tcp_drive(struct nd_session *s)
{
    struct nd_worker *w = s->w;
    struct nd_upstream *u = s->up;
    /* u->uses counts the upstream's end of stream (1) and our half-closes (2, 4) */
    bool up_eof = u && (u->uses & 1);

    if (!u || u->state != UP_BUSY)
        return;
    if (move(w, &s->conn, &s->rx, &s->rd_eof, &u->conn, &s->tcp_recv) < 0 ||
        move(w, &u->conn, &u->rx, &up_eof, &s->conn, &s->tcp_sent) < 0) {
        s->state = S_DEAD;
        return;
    }
    if (!s->tcp_opened) {
        /* The client's principal is known before its first byte is read (TLS is under the read);
         * the upstream's only once its handshake is done, which may be after the client's first
         * bytes have been written into the upstream's stream: wait for its principal, or for
         * its first byte when the upstream layer names none. */
        if (s->tcp_sent || (s->tcp_recv && (!u->conn.st || u->principal_len)))
            tcp_count_open(s);
    } else if (s->w->now_us - s->tcp_rep_us >= TCP_REPORT_US) {
        tcp_report(s);
    }
    if (up_eof)
        u->uses |= 1;
    if (s->rd_eof && !(s->rx && s->rx->len) && !(u->uses & 2)) {
        w->io->shutdown_write(&u->conn);
        u->uses |= 2;
    }
    if (up_eof && !(u->rx && u->rx->len) && !(u->uses & 4) &&
        (!s->conn.st || nd_stream_finish(s->conn.st))) { /* a close_notify before the FIN */
        w->io->shutdown_write(&s->conn);
        u->uses |= 4;
    }
    if ((u->uses & 6) == 6)
        s->state = S_DEAD;
}
