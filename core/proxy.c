/*
 * The HTTP/1.1 proxy: downstream sessions, the plugin chain, upstream exchange and pools.
 *
 * A session reads a request head into its rx buffer and parses it in place; the head stays pinned
 * at the start of the buffer until the exchange ends, so every parsed string and every plugin sees
 * it without a copy. The request head sent upstream is written into the upstream's tx buffer
 * (edits applied, hop-by-hop headers dropped); body bytes then go straight from the client's rx
 * buffer to the upstream socket in one writev with whatever head bytes remain, and the response
 * comes back the same way. Framing (Content-Length, chunked) is validated ahead of forwarding, so a
 * message boundary is always known: keep-alive and pipelining on both sides follow from it.
 *
 * On a backend with zero-copy ops (io.h; dpdk) and no stream plugin on the connection, a head that
 * arrived whole in one received piece is parsed where it lies, and that buffer is held (pinned)
 * until the exchange ends instead; a head across pieces, or one the backend cannot hold, goes
 * through the rx buffer as above. Bodies (and a TCP listener's bytes) go from one connection's
 * received bytes to the other's send queue by reference (splice), framing validated over the
 * pieces ahead, when neither side has stream plugins. Heads written upstream and to the client
 * (rewritten with edits) are always copies.
 *
 * Nothing here frees a session in the middle of a call chain: a session is marked S_DEAD and
 * released when the outermost callback returns.
 */
#include "proxy.h"
#include "stream.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "log.h"
#include "metrics.h"

#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

static void sess_drive(struct nd_session *s);
static void txn_finish(struct nd_session *s);

/* ---- allocation from per-worker free lists -------------------------------------------------- */

static struct nd_session *session_get(struct nd_worker *w)
{
    struct nd_session *s = w->free_sessions;

    if (s) {
        w->free_sessions = s->next;
        w->nfree_sessions--;
    } else if (!(s = malloc(sizeof(*s))))
        return NULL;
    memset(s, 0, sizeof(*s));
    s->conn.fd = -1;
    s->w = w;
    return s;
}

static struct nd_txn *txn_get(struct nd_session *s)
{
    struct nd_worker *w = s->w;
    struct nd_txn *t = w->free_txns;

    if (t)
        w->free_txns = t->next;
    else if (!(t = malloc(sizeof(*t))))
        return NULL;
    /* everything up to the header arrays is state; the arrays are filled by the parser */
    memset(t, 0, offsetof(struct nd_txn, req_hdrs));
    memset(&t->resp_scan, 0, offsetof(struct nd_txn, edit) - offsetof(struct nd_txn, resp_scan));
    memset(t->scratch, 0, s->lc->txn_size < ND_SCRATCH ? s->lc->txn_size : ND_SCRATCH);
    t->s = s;
    t->up_principal = ND_METRICS_NONE;
    t->ep = -1;
    t->req.hdrs = t->req_hdrs;
    t->resp.hdrs = t->resp_hdrs;
    return t;
}

static void txn_put(struct nd_worker *w, struct nd_txn *t)
{
    if (t->req_pin)
        w->io->unpin(w, t->req_pin);
    if (t->resp_pin)
        w->io->unpin(w, t->resp_pin);
    t->req_pin = t->resp_pin = NULL;
    t->next = w->free_txns;
    w->free_txns = t;
}

struct nd_upstream *nd_upstream_get(struct nd_worker *w)
{
    struct nd_upstream *u = w->free_upstreams;

    if (u) {
        w->free_upstreams = u->next;
        w->nfree_upstreams--;
    } else if (!(u = malloc(sizeof(*u))))
        return NULL;
    memset(u, 0, sizeof(*u));
    u->conn.fd = -1;
    return u;
}

/* Free lists keep what a burst allocated for the next one, up to a bound: past it, memory goes
 * back to the allocator so that a node's footprint returns to its level after a peak. */
#define FREE_KEEP 1024

void nd_session_recycle(struct nd_worker *w, struct nd_session *s)
{
    if (w->nfree_sessions >= FREE_KEEP) {
        free(s);
        return;
    }
    s->next = w->free_sessions;
    w->free_sessions = s;
    w->nfree_sessions++;
}

void nd_upstream_recycle(struct nd_worker *w, struct nd_upstream *u)
{
    if (w->nfree_upstreams >= FREE_KEEP) {
        free(u);
        return;
    }
    u->next = w->free_upstreams;
    w->free_upstreams = u;
    w->nfree_upstreams++;
}

void nd_worker_reap(struct nd_worker *w)
{
    struct nd_session *s;
    struct nd_upstream *u;

    while ((s = w->dead_sessions)) {
        w->dead_sessions = s->next;
        nd_session_recycle(w, s);
    }
    while ((u = w->dead_upstreams)) {
        w->dead_upstreams = u->next;
        nd_upstream_recycle(w, u);
    }
}

void nd_worker_free_lists(struct nd_worker *w)
{
    void *p;

    nd_worker_reap(w);

    while ((p = w->free_sessions)) {
        w->free_sessions = w->free_sessions->next;
        free(p);
    }
    while ((p = w->free_txns)) {
        w->free_txns = w->free_txns->next;
        free(p);
    }
    while ((p = w->free_upstreams)) {
        w->free_upstreams = w->free_upstreams->next;
        free(p);
    }
}

/* ---- small writers (no printf on the request path) ------------------------------------------ */

static inline bool put(struct nd_buf *b, const void *p, size_t n)
{
    if (!n)
        return true; /* p may be NULL (an empty body) */
    if (n > nd_buf_room(b))
        return false;
    memcpy(nd_buf_tail(b), p, n);
    b->len += (uint32_t)n;
    return true;
}

#define PUTS(b, lit) put((b), (lit), sizeof(lit) - 1)

static bool put_u64(struct nd_buf *b, uint64_t v)
{
    char tmp[24];
    int i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return put(b, tmp + i, sizeof(tmp) - i);
}

/* "name: value\r\n", whole or not at all: one check of the room, then the copies. A header whose
 * line already lies so in memory (most of those parsed, every one added by hdr_add()) is copied
 * at once. */
static bool put_hdr(struct nd_buf *b, const struct nd_http_hdr *h)
{
    size_t n = h->name.len + 2 + h->value.len + 2;
    const char *e = h->name.p + h->name.len;
    char *p;

    if (n > nd_buf_room(b))
        return false;
    p = nd_buf_tail(b);
    if (h->value.p == e + 2 && e[0] == ':' && e[1] == ' ' && e[2 + h->value.len] == '\r' &&
        e[3 + h->value.len] == '\n') {
        nd_copy_short(p, h->name.p, n);
        b->len += (uint32_t)n;
        return true;
    }
    nd_copy_short(p, h->name.p, h->name.len);
    p += h->name.len;
    memcpy(p, ": ", 2);
    nd_copy_short(p + 2, h->value.p, h->value.len); /* (the value may be empty, with NULL) */
    memcpy(p + 2 + h->value.len, "\r\n", 2);
    b->len += (uint32_t)n;
    return true;
}

static bool name_is(struct nd_str n, const char *lit)
{
    return nd_http1_name_eq(n, lit, strlen(lit));
}

/* Whether a Connection header of m names name (only when the message has Connection tokens). */
static bool named_by_connection(const struct nd_http_msg *m, struct nd_str name)
{
    for (unsigned i = 0; i < m->nhdrs; i++)
        if (m->hdrs[i].name.len == 10 && name_is(m->hdrs[i].name, "connection") &&
            nd_http1_token_list_has(m->hdrs[i].value, name.p, name.len))
            return true;
    return false;
}

/* Hop-by-hop headers (RFC 9110 7.6.1), plus those named by Connection. Inline, called for every
 * header written: most are decided by their length alone. */
static inline bool hop_by_hop(const struct nd_http_msg *m, struct nd_str name)
{
    switch (name.len) {
    case 2:
        if (name_is(name, "te"))
            return true;
        break;
    case 7:
        if (name_is(name, "upgrade") || name_is(name, "trailer"))
            return true;
        break;
    case 10:
        if (name_is(name, "connection") || name_is(name, "keep-alive"))
            return true;
        break;
    case 16:
        if (name_is(name, "proxy-connection"))
            return true;
        break;
    case 17:
        if (name_is(name, "transfer-encoding"))
            return true;
        break;
    }
    return (m->flags & ND_HTTP_F_CONN_TOKENS) && named_by_connection(m, name);
}

/* ---- edits: headers added by plugins live in the txn's edit arena --------------------------- */

static char *edit_alloc(struct nd_txn *t, size_t n)
{
    char *p;

    if (t->edit_len + n > ND_EDIT) {
        t->edit_failed = true;
        return NULL;
    }
    p = t->edit + t->edit_len;
    t->edit_len += (uint32_t)n;
    return p;
}

static int hdr_remove(struct nd_http_msg *m, const char *name)
{
    size_t len = strlen(name);
    unsigned i;

    for (i = 0; i < m->nhdrs; i++)
        if (m->hdrs[i].name.len == len && nd_http1_name_eq(m->hdrs[i].name, name, len))
            m->hdrs[i].name.len = 0; /* a removed header: skipped when written */
    return 0;
}

/* A header as the line it becomes, "name: value\r\n", at p (room made), which put_hdr() copies
 * at once; the next free byte. */
static char *hdr_line(struct nd_http_msg *m, char *p, const char *name, size_t nlen,
                      const char *val, size_t vlen)
{
    nd_copy_short(p, name, nlen);
    memcpy(p + nlen, ": ", 2);
    nd_copy_short(p + nlen + 2, val, vlen); /* (an empty value may come with a NULL pointer) */
    memcpy(p + nlen + 2 + vlen, "\r\n", 2);
    m->hdrs[m->nhdrs].name = (struct nd_str){p, (uint32_t)nlen};
    m->hdrs[m->nhdrs].value = (struct nd_str){p + nlen + 2, (uint32_t)vlen};
    m->nhdrs++;
    return p + nlen + 2 + vlen + 2;
}

static int hdr_add(struct nd_txn *t, struct nd_http_msg *m, const char *name, const char *val,
                   size_t vlen)
{
    size_t nlen = strlen(name);
    char *p;

    if (m->nhdrs >= ND_HDRS) {
        t->edit_failed = true;
        return -1;
    }
    if (!(p = edit_alloc(t, nlen + 2 + vlen + 2)))
        return -1;
    hdr_line(m, p, name, nlen, val, vlen);
    return 0;
}

static bool hdr_get(const struct nd_http_msg *m, const char *name, struct nodus_slice *v)
{
    size_t len = strlen(name);
    unsigned i;

    for (i = 0; i < m->nhdrs; i++)
        if (m->hdrs[i].name.len == len && nd_http1_name_eq(m->hdrs[i].name, name, len)) {
            v->p = m->hdrs[i].value.p;
            v->len = m->hdrs[i].value.len;
            return true;
        }
    return false;
}

/* ---- I/O helpers ----------------------------------------------------------------------------- */

/* Writes b's data, then up to *morelen bytes of `more`, in one writev. Consumes what was written
 * from b and decrements *morelen by what went from `more`. 0 when all was written, 1 when the
 * socket is full (wait for ND_EV_WRITE), -1 on error. */
int nd_flush(struct nd_conn *c, struct nd_buf *b, const char *more, uint32_t *morelen)
{
    struct iovec iov[2];
    int n = 0;
    ssize_t w;

    for (;;) {
        uint32_t blen = b ? b->len : 0, mlen = morelen ? *morelen : 0;

        n = 0;
        if (blen)
            iov[n++] = (struct iovec){nd_buf_head(b), blen};
        if (mlen)
            iov[n++] = (struct iovec){(void *)more, mlen};
        if (!n)
            return 0;
        w = nd_conn_writev(c, iov, n);
        if (w == -EAGAIN)
            return 1;
        if (w < 0)
            return -1;
        if (blen) {
            uint32_t k = (uint32_t)MIN((size_t)w, blen);

            nd_buf_consume(b, k);
            w -= k;
        }
        if (w) {
            more += w;
            *morelen -= (uint32_t)w;
        }
    }
}

/* Reads into b (taken from the pool when NULL), keeping `pin` bytes at its start. Returns bytes
 * read, 0 when nothing is available (or no room), -1 at end of stream or on error. */
static ssize_t read_into(struct nd_worker *w, struct nd_conn *c, struct nd_buf **bp, uint32_t pin)
{
    struct nd_buf *b = *bp;
    ssize_t n;

    if (!b) {
        if (!(b = *bp = nd_buf_get(&w->bufs)))
            return 0;
    }
    if (b->off + b->len == b->cap && b->off > pin)
        nd_buf_compact(b, pin);
    if (!nd_buf_room(b))
        return 0;
    n = nd_conn_read(c, nd_buf_tail(b), nd_buf_room(b));
    if (n > 0) {
        b->len += (uint32_t)n;
        return n;
    }
    return n == -EAGAIN ? 0 : -1;
}

/* ---- plugin context ------------------------------------------------------------------------- */

static void plugin_ctx(struct nd_session *s, unsigned i, struct nodus_ctx *ctx)
{
    const struct nd_plugin_inst *pi = &s->lc->plugins[i];

    ctx->conf = pi->conf;
    ctx->worker = s->pstate[i];
    ctx->txn = s->txn->scratch + pi->txn_off;
    ctx->worker_id = s->w->id;
}

/* ---- local answers ----------------------------------------------------------------------------
 */

static void run_response_hooks(struct nd_session *s)
{
    const struct nd_listener_conf *lc = s->lc;
    struct nodus_ctx ctx;
    unsigned i = lc->nplugins;

    while (i--) {
        const struct nodus_plugin *p = lc->plugins[i].p;

        if (p->http && p->http->response_headers) {
            plugin_ctx(s, i, &ctx);
            p->http->response_headers((struct nodus_http *)s->txn, &ctx);
        }
    }
    if (s->txn->edit_failed) {
        /* the response goes out without the edits that did not fit */
        nd_metrics_count(s->w->id, ND_C_EDIT_FAILURES, 1);
        nd_warn("%s: response edits exceed the per-request space: some were dropped", lc->name);
        s->txn->edit_failed = false;
    }
}

/* Builds a local response in the txn (status, body copied to the edit arena). */
static int txn_set_local(struct nd_txn *t, int status, const char *body, size_t len)
{
    char *p = NULL;

    if (t->resp_started)
        return -1;
    if (len > ND_EDIT / 2)
        len = ND_EDIT / 2;
    if (len && !(p = edit_alloc(t, len))) {
        t->edit_failed = false; /* no room left for the body: the answer goes without one */
        len = 0;
    }
    if (len)
        memcpy(p, body, len);
    t->local = true;
    t->status = (uint16_t)status;
    memset(&t->resp, 0, offsetof(struct nd_http_msg, hdrs));
    t->resp.hdrs = t->resp_hdrs;
    t->resp.nhdrs = 0;
    t->resp.status = (uint16_t)status;
    t->resp.version_minor = 1;
    t->resp.body = ND_HTTP_BODY_LENGTH;
    t->resp.content_length = len;
    t->resp.reason = (struct nd_str){p, (uint32_t)len}; /* the body, kept here until written */
    return 0;
}

/* Writes the local response of the current txn to the client's tx buffer. */
static void send_local(struct nd_session *s)
{
    struct nd_txn *t = s->txn;
    const char *reason = nd_http1_reason(t->status);
    struct nd_str body = t->resp.reason;
    struct nodus_slice ct;
    bool keep = !s->close_after;
    unsigned i;
    uint32_t len0;

    run_response_hooks(s);
    if (!s->tx && !(s->tx = nd_buf_get(&s->w->bufs))) {
        s->close_after = true;
        return;
    }
    len0 = s->tx->len;
    if (!hdr_get(&t->resp, "content-type", &ct) && body.len)
        hdr_add(t, &t->resp, "content-type", "text/plain", 10);
    PUTS(s->tx, "HTTP/1.1 ");
    put_u64(s->tx, t->status);
    PUTS(s->tx, " ");
    put(s->tx, reason, strlen(reason));
    PUTS(s->tx, "\r\ncontent-length: ");
    put_u64(s->tx, body.len);
    PUTS(s->tx, "\r\n");
    for (i = 0; i < t->resp.nhdrs; i++)
        if (t->resp.hdrs[i].name.len)
            put_hdr(s->tx, &t->resp.hdrs[i]);
    if (!keep)
        PUTS(s->tx, "connection: close\r\n");
    else if (t->req.version_minor == 0)
        PUTS(s->tx, "connection: keep-alive\r\n");
    PUTS(s->tx, "\r\n");
    if (t->req.meth != ND_HTTP_HEAD)
        put(s->tx, body.p, body.len);
    t->resp_bytes += s->tx->len - len0; /* head and body, as for an upstream's answer */
    t->resp_started = true;
    t->rsb.done = true;
}

/* Answers the current request locally and ends the exchange. */
static void respond_local(struct nd_session *s, int status, const char *body, uint32_t flags)
{
    struct nd_txn *t = s->txn;

    t->rflags |= flags;
    if (t->resp_started) {
        /* the client already has part of another answer: all we can do is cut the connection */
        s->close_after = true;
        t->rsb.done = true;
        return;
    }
    if (!t->rqb.done)
        s->close_after = true; /* the rest of the request body can't be told from a next request */
    txn_set_local(t, status, body, body ? strlen(body) : 0);
    send_local(s);
}

/* An answer to bytes that are not a request: no txn exists yet. */
static void respond_error(struct nd_session *s, int status, const char *why)
{
    struct nd_txn *t = s->txn;

    if (!t && !(t = s->txn = txn_get(s))) {
        s->state = S_CLOSING;
        return;
    }
    t->t_start_us = s->w->now_us;
    t->rqb.done = false;
    s->close_after = true;
    t->rflags |= ND_RF_DPE;
    txn_set_local(t, status, why, strlen(why));
    send_local(s);
    s->state = S_UPSTREAM; /* flush, then finish */
}

/* ---- upstream connections ------------------------------------------------------------------- */

static void up_cb(struct nd_conn *c, unsigned events);

static void pool_unlink(struct nd_upstream *u)
{
    if (u->prev)
        u->prev->next = u->next;
    else
        u->ep->idle = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->next = u->prev = NULL;
    u->ep->nidle--;
}

void nd_upstream_close(struct nd_worker *w, struct nd_upstream *u)
{
    if (u->state == UP_IDLE) {
        pool_unlink(u);
        nd_metrics_gauge_add(w->id, ND_G_UPSTREAM_CX_IDLE, -1);
    }
    nd_timer_cancel(&w->wheel, &u->timer);
    nd_stream_close(w, &u->conn);
    if (u->conn.fd >= 0) {
        w->io->close(&u->conn, false);
        nd_metrics_gauge_add(w->id, ND_G_UPSTREAM_CX_ACTIVE, -1);
    }
    if (u->ep)
        u->ep->conns--;
    if (u->crt)
        u->crt->conns--;
    nd_buf_put(&w->bufs, u->rx);
    nd_buf_put(&w->bufs, u->tx);
    u->rx = u->tx = NULL;
    u->state = UP_FREE;
    u->next = w->dead_upstreams;
    w->dead_upstreams = u;
}

int nd_upstream_start_tls(struct nd_worker *w, struct nd_upstream *u)
{
    const struct nd_cluster_conf *cc = u->crt->cc;
    struct nd_stream_def def;
    struct nd_stream_peer peer;
    const char *addr;

    if (!cc->tls)
        return 0;
    if (!u->ep) /* its endpoint left the discovered set while connecting */
        return -1;
    addr = u->crt->ceps[u->ep_idx].addr.text;
    def = (struct nd_stream_def){nd_upstream_tls->ops, "upstream tls", cc->tls_conf, NULL, 0};
    peer = (struct nd_stream_peer){addr, strlen(addr), u->principal, &u->principal_len,
                                   sizeof(u->principal)};
    u->principal_len = 0;
    if (nd_stream_open_defs(w, &u->conn, &def, 1, nd_upstream_tls->txn_size, &peer) < 0) {
        nd_warn("cluster %s: TLS to %s refused to start", cc->name, addr);
        return -1;
    }
    nd_stream_event(u->conn.st); /* the ClientHello */
    return 0;
}

static void up_idle_timeout(struct nd_timer *tm)
{
    struct nd_upstream *u = container_of(tm, struct nd_upstream, timer);

    nd_upstream_close(u->conn.w, u);
}

uint16_t nd_principal_id(const char *p, uint16_t len, uint16_t *mid)
{
    if (!len)
        return ND_METRICS_NONE;
    if (!*mid)
        *mid = (uint16_t)(nd_metrics_principal(p, len) + 1u);
    return (uint16_t)(*mid - 1u);
}

void nd_principal_pair(uint16_t *src, uint16_t *dst)
{
    /* Each verified hop has our identity at one end: came in over mTLS, we are its destination;
     * went out over mTLS, we are its source (Istio's inbound and outbound views). */
    if (*src == ND_METRICS_NONE && *dst != ND_METRICS_NONE)
        *src = nd_metrics_self_principal();
    else if (*dst == ND_METRICS_NONE && *src != ND_METRICS_NONE)
        *dst = nd_metrics_self_principal();
}

/* Bytes (or the end of the stream) wait on u after its response: it cannot carry another
 * request. */
static bool up_has_input(struct nd_upstream *u)
{
    struct iovec iov[1];

    if (u->rx && u->rx->len)
        return true;
    return nd_conn_zc(&u->conn) && u->conn.w->io->peek(&u->conn, iov, 1) != -EAGAIN;
}

static void up_release(struct nd_worker *w, struct nd_txn *t, bool reuse)
{
    struct nd_upstream *u = t->up;

    if (!u)
        return;
    t->up_principal = nd_principal_id(u->principal, u->principal_len, &u->principal_mid);
    t->up_peer_len = 0;
    if (u->principal_len && t->s->snap->cfg->node.access_log) {
        memcpy(t->up_peer, u->principal, u->principal_len); /* both 256 bytes */
        t->up_peer_len = u->principal_len;
    }
    t->up = NULL;
    u->txn = NULL;
    if (t->crt && t->ep >= 0)
        t->crt->eps[t->ep].active--;
    if (t->crt)
        t->crt->requests--;
    if (!reuse || w->draining || up_has_input(u) || !u->ep) {
        nd_upstream_close(w, u);
        return;
    }
    nd_buf_put(&w->bufs, u->rx);
    nd_buf_put(&w->bufs, u->tx);
    u->rx = u->tx = NULL;
    u->state = UP_IDLE;
    u->prev = NULL;
    u->next = u->ep->idle;
    if (u->next)
        u->next->prev = u;
    u->ep->idle = u;
    u->ep->nidle++;
    nd_metrics_gauge_add(w->id, ND_G_UPSTREAM_CX_IDLE, 1);
    u->timer.cb = up_idle_timeout;
    nd_timer_arm(&w->wheel, &u->timer, u->crt->cc->idle_timeout_ms);
}

static void up_connect_timeout(struct nd_timer *tm);

/* Gives the txn an upstream connection to endpoint t->ep: a pooled one, or a new one. */
static int up_acquire(struct nd_session *s)
{
    struct nd_worker *w = s->w;
    struct nd_txn *t = s->txn;
    struct nd_ep_rt *ep = &t->crt->eps[t->ep];
    struct nd_upstream *u;
    int err;

    while ((u = ep->idle)) {
        pool_unlink(u);
        nd_metrics_gauge_add(w->id, ND_G_UPSTREAM_CX_IDLE, -1);
        u->state = UP_BUSY;
        nd_timer_cancel(&w->wheel, &u->timer);
        nd_metrics_count(w->id, ND_C_POOL_REUSE, 1);
        goto have;
    }
    if (t->crt->conns >= t->crt->cc->max_connections) {
        t->rflags |= ND_RF_UO;
        return -EBUSY;
    }
    if (!(u = nd_upstream_get(w)))
        return -ENOMEM;
    u->conn.cb = up_cb;
    u->crt = t->crt;
    u->ep = ep;
    u->ep_idx = (unsigned)t->ep;
    err = w->io->connect(w, &u->conn, &t->crt->ceps[t->ep].addr);
    if (err) {
        u->ep = NULL;
        u->crt = NULL;
        nd_upstream_recycle(w, u);
        return err;
    }
    ep->conns++;
    t->crt->conns++;
    nd_metrics_count(w->id, ND_C_UPSTREAM_CX_TOTAL, 1);
    nd_metrics_gauge_add(w->id, ND_G_UPSTREAM_CX_ACTIVE, 1);
    u->state = UP_CONNECTING;
    u->timer.cb = up_connect_timeout;
    nd_timer_arm(&w->wheel, &u->timer, t->cluster->connect_timeout_ms);
have:
    u->txn = t;
    u->uses++;
    t->up = u;
    ep->active++;
    t->crt->requests++;
    return 0;
}

/* ---- request head upstream ------------------------------------------------------------------- */

/* The request head for the upstream, whole, into u->tx: 0, -ENOBUFS (no buffer), or -E2BIG when
 * it does not fit in the buffer (the client's head, the node's x-forwarded-* fields and the
 * plugins' edits together); then nothing of it is left in u->tx. Never a part of a head. */
static int write_request_head(struct nd_session *s, struct nd_upstream *u)
{
    struct nd_txn *t = s->txn;
    struct nd_http_msg *m = &t->req;
    struct nd_buf *b;
    struct nd_str path = t->new_path.len ? t->new_path : m->target;
    struct nodus_slice xff;
    bool have_xff = false, ok = true;
    uint32_t len0;
    unsigned i;

    if (!u->tx && !(u->tx = nd_buf_get(&s->w->bufs)))
        return -ENOBUFS;
    b = u->tx;
    len0 = b->len;
    if (!t->new_path.len && m->target.len && m->target.p[0] != '/' && m->path.len) {
        /* absolute-form from the client: origin-form upstream */
        path.p = m->path.p;
        path.len = (uint32_t)(m->target.p + m->target.len - m->path.p);
    }
    ok &= put(b, m->method.p, m->method.len);
    ok &= PUTS(b, " ");
    ok &= put(b, path.p, path.len);
    if (m->version_minor == 0)
        ok &= PUTS(b, " HTTP/1.0\r\nconnection: keep-alive\r\n");
    else
        ok &= PUTS(b, " HTTP/1.1\r\n");
    if (m->authority.len && !hdr_get(m, "host", &xff)) {
        ok &= PUTS(b, "host: ");
        ok &= put(b, m->authority.p, m->authority.len);
        ok &= PUTS(b, "\r\n");
    }
    for (i = 0; i < m->nhdrs; i++) {
        const struct nd_http_hdr *h = &m->hdrs[i];

        if (!h->name.len || hop_by_hop(m, h->name))
            continue;
        if (t->expect_100 && name_is(h->name, "expect"))
            continue;
        if (s->lc->xff && h->name.len == 15 && name_is(h->name, "x-forwarded-for")) {
            if (!have_xff) {
                /* all X-Forwarded-For fields joined, then our peer */
                unsigned j;
                bool first = true;

                ok &= PUTS(b, "x-forwarded-for: ");
                for (j = i; j < m->nhdrs; j++)
                    if (m->hdrs[j].name.len == 15 && name_is(m->hdrs[j].name, "x-forwarded-for")) {
                        if (!first)
                            ok &= PUTS(b, ", ");
                        ok &= put(b, m->hdrs[j].value.p, m->hdrs[j].value.len);
                        first = false;
                    }
                ok &= PUTS(b, ", ");
                ok &= put(b, s->peer, s->peer_len);
                ok &= PUTS(b, "\r\n");
                have_xff = true;
            }
            continue;
        }
        if (s->lc->xff && h->name.len == 17 && name_is(h->name, "x-forwarded-proto"))
            continue;
        ok &= put_hdr(b, h);
    }
    if (s->lc->xff) {
        if (!have_xff) {
            ok &= PUTS(b, "x-forwarded-for: ");
            ok &= put(b, s->peer, s->peer_len);
            ok &= PUTS(b, "\r\n");
        }
        ok &= PUTS(b, "x-forwarded-proto: http\r\n");
    }
    if (m->body == ND_HTTP_BODY_CHUNKED)
        ok &= PUTS(b, "transfer-encoding: chunked\r\n");
    ok &= PUTS(b, "\r\n");
    if (!ok)
        b->len = len0; /* nothing of a head that did not fit goes upstream */
    return ok ? 0 : -E2BIG;
}

/* ---- response head to the client ----------------------------------------------------------- */

static bool send_response_head(struct nd_session *s)
{
    struct nd_txn *t = s->txn;
    struct nd_http_msg *m = &t->resp;
    struct nd_buf *b;
    unsigned i;

    if (!s->tx && !(s->tx = nd_buf_get(&s->w->bufs)))
        return false;
    b = s->tx;
    if (s->w->draining)
        s->close_after = true;
    PUTS(b, "HTTP/1.1 ");
    put_u64(b, m->status);
    PUTS(b, " ");
    put(b, m->reason.p, m->reason.len);
    PUTS(b, "\r\n");
    for (i = 0; i < m->nhdrs; i++) {
        const struct nd_http_hdr *h = &m->hdrs[i];

        if (!h->name.len || hop_by_hop(m, h->name))
            continue;
        put_hdr(b, h);
    }
    if (m->body == ND_HTTP_BODY_CHUNKED)
        PUTS(b, "transfer-encoding: chunked\r\n");
    if (s->close_after)
        PUTS(b, "connection: close\r\n");
    else if (t->req.version_minor == 0)
        PUTS(b, "connection: keep-alive\r\n");
    if (!PUTS(b, "\r\n"))
        return false;
    t->resp_started = true;
    return true;
}

/* ---- access log: one JSON line per exchange (node { access_log = ... }) ---------------------- */

static void json_str(struct nd_buf *b, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    PUTS(b, "\"");
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};

            put(b, e, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

            put(b, e, 6);
        } else {
            put(b, &p[i], 1);
        }
    }
    PUTS(b, "\"");
}

void nd_access_log(struct nd_worker *w, struct nd_session *s, struct nd_txn *t,
                   const struct nd_req_record *rec)
{
    char flags[64];
    struct nd_buf *b = nd_buf_get(&w->bufs);
    struct nodus_slice ua = {"", 0};

    if (!b)
        return;
    hdr_get(&t->req, "user-agent", &ua);
    nd_rf_format(rec->flags, flags, sizeof(flags));
    PUTS(b, "{\"listener\":");
    json_str(b, s->lc->name, strlen(s->lc->name));
    PUTS(b, ",\"method\":");
    json_str(b, t->req.method.p, t->req.method.len);
    PUTS(b, ",\"path\":");
    json_str(b, t->req.target.p, t->req.target.len);
    PUTS(b, ",\"authority\":");
    json_str(b, t->req.authority.p, t->req.authority.len);
    PUTS(b, ",\"status\":");
    put_u64(b, rec->status);
    PUTS(b, ",\"response_flags\":");
    json_str(b, flags, strlen(flags));
    PUTS(b, ",\"cluster\":");
    if (t->cluster)
        json_str(b, t->cluster->name, strlen(t->cluster->name));
    else
        PUTS(b, "null");
    PUTS(b, ",\"upstream\":");
    if (t->cluster && t->ep >= 0)
        json_str(b, t->crt->ceps[t->ep].addr.text, strlen(t->crt->ceps[t->ep].addr.text));
    else
        PUTS(b, "null");
    PUTS(b, ",\"peer\":");
    json_str(b, s->peer, s->peer_len);
    PUTS(b, ",\"source_principal\":");
    if (s->principal_len)
        json_str(b, s->principal, s->principal_len);
    else
        PUTS(b, "null");
    PUTS(b, ",\"destination_principal\":");
    if (t->up_peer_len)
        json_str(b, t->up_peer, t->up_peer_len);
    else
        PUTS(b, "null");
    if (t->req_principal.len) {
        PUTS(b, ",\"request_principal\":");
        json_str(b, t->req_principal.p, t->req_principal.len);
    }
    PUTS(b, ",\"duration_us\":");
    put_u64(b, rec->duration_us);
    PUTS(b, ",\"bytes_received\":");
    put_u64(b, rec->req_bytes);
    PUTS(b, ",\"bytes_sent\":");
    put_u64(b, rec->resp_bytes);
    PUTS(b, ",\"user_agent\":");
    json_str(b, ua.p, ua.len);
    PUTS(b, "}\n");
    nd_access_log_write(nd_buf_head(b), b->len);
    nd_buf_put(&w->bufs, b);
}

/* ---- body framing --------------------------------------------------------------------------- */

static void body_init(struct nd_body *b, const struct nd_http_msg *m)
{
    memset(b, 0, sizeof(*b));
    b->mode = m->body;
    b->left = m->content_length;
    nd_http1_chunked_init(&b->ck);
    b->done =
        m->body == ND_HTTP_BODY_NONE || (m->body == ND_HTTP_BODY_LENGTH && m->content_length == 0);
}

typedef void (*body_hook_fn)(struct nd_session *s, const char *p, size_t n, bool end);

/* Validates framing over the n bytes at p, which follow the fwd bytes validated already, and
 * extends fwd over what belongs to the body; -1 on a framing error. */
static int body_scan(struct nd_session *s, struct nd_body *b, const char *p, uint32_t n,
                     body_hook_fn hook)
{
    if (b->done || !n)
        return 0;
    switch (b->mode) {
    case ND_HTTP_BODY_LENGTH: {
        uint32_t k = (uint32_t)MIN((uint64_t)n, b->left);

        b->left -= k;
        b->fwd += k;
        b->bytes += k;
        b->done = b->left == 0;
        if (hook)
            hook(s, p, k, b->done);
        break;
    }
    case ND_HTTP_BODY_CHUNKED: {
        uint32_t off = 0;

        while (off < n && !b->ck.done) {
            size_t doff = 0, dlen = 0;
            ssize_t r = nd_http1_chunked(&b->ck, p + off, n - off, &doff, &dlen);

            if (r < 0)
                return -1;
            if (r == 0)
                break;
            if (hook && dlen)
                hook(s, p + off + doff, dlen, false);
            b->bytes += dlen;
            off += (uint32_t)r;
        }
        b->fwd += off;
        if (b->ck.done) {
            b->done = true;
            if (hook)
                hook(s, NULL, 0, true);
        }
        break;
    }
    case ND_HTTP_BODY_CLOSE:
        b->fwd += n;
        b->bytes += n;
        if (hook)
            hook(s, p, n, false);
        break;
    default:
        b->done = true;
    }
    return 0;
}

static void req_body_hook(struct nd_session *s, const char *p, size_t n, bool end)
{
    const struct nd_listener_conf *lc = s->lc;
    struct nodus_ctx ctx;
    unsigned i;

    for (i = 0; i < lc->nplugins; i++) {
        const struct nodus_plugin *pl = lc->plugins[i].p;

        if ((pl->flags & NODUS_WANT_REQUEST_BODY) && pl->http && pl->http->request_body) {
            plugin_ctx(s, i, &ctx);
            pl->http->request_body((struct nodus_http *)s->txn, &ctx, p, n, end);
        }
    }
}

/* body_scan() over a buffer whose head holds the fwd bytes validated already. */
static int body_scan_buf(struct nd_session *s, struct nd_body *b, struct nd_buf *buf,
                         body_hook_fn hook)
{
    return body_scan(s, b, nd_buf_head(buf) + b->fwd, buf->len - b->fwd, hook);
}

enum { FWD_BAD = -1, FWD_TO_FAILED = -2, FWD_FROM_ENDED = -3 };

/* One direction's body forwarded without a copy, both connections zero-copy (stream.h
 * nd_conn_zc): framing is validated over from's received pieces ahead of forwarding, as
 * body_scan_buf() does over a buffer (b->fwd counts the validated bytes at the front of from's
 * received bytes), and the validated bytes are spliced to `to`; count grows by what moved.
 * While a head waits in tx (not written yet), the body bytes of the first piece are copied after
 * it instead and nothing is spliced: the caller writes them with the head, in one segment rather
 * than a segment for the head alone. 1 when bytes moved, 0 when none could (nothing received,
 * `to` full: its write event comes back), FWD_BAD on a framing error, FWD_TO_FAILED when `to`
 * failed, FWD_FROM_ENDED when from's stream ended (or failed) with nothing left. */
static int splice_body(struct nd_session *s, struct nd_body *b, struct nd_conn *from,
                       struct nd_conn *to, struct nd_buf *tx, body_hook_fn hook, uint64_t *count)
{
    const struct nd_io_ops *io = s->w->io;
    struct iovec iov[ND_IO_PEEK_MAX];
    uint32_t off = 0;
    int n = io->peek(from, iov, ND_IO_PEEK_MAX), moved = 0;

    if (n == -EAGAIN)
        return 0;
    if (n <= 0)
        return FWD_FROM_ENDED;
    for (int i = 0; i < n && !b->done; i++) {
        uint32_t len = (uint32_t)iov[i].iov_len;

        if (off + len > b->fwd) {
            uint32_t skip = b->fwd - off; /* validated in an earlier call */

            if (body_scan(s, b, (const char *)iov[i].iov_base + skip, len - skip, hook) < 0)
                return FWD_BAD;
            if (b->fwd < off + len)
                break; /* the body ends inside this piece */
        }
        off += len;
    }
    if (tx && tx->len) {
        uint32_t k = MIN(MIN(b->fwd, (uint32_t)iov[0].iov_len), nd_buf_room(tx));

        if (!k)
            return 0;
        put(tx, iov[0].iov_base, k);
        io->consume(from, k);
        b->fwd -= k;
        *count += k;
        return 1;
    }
    while (b->fwd) {
        ssize_t k = io->splice(to, from, b->fwd);

        if (k == -EAGAIN)
            break;
        if (k <= 0)
            return FWD_TO_FAILED;
        b->fwd -= (uint32_t)k;
        *count += (uint64_t)k;
        moved = 1;
    }
    return moved;
}

static void resp_body_hook(struct nd_session *s, const char *p, size_t n, bool end)
{
    const struct nd_listener_conf *lc = s->lc;
    struct nodus_ctx ctx;
    unsigned i = lc->nplugins;

    while (i--) {
        const struct nodus_plugin *pl = lc->plugins[i].p;

        if ((pl->flags & NODUS_WANT_RESPONSE_BODY) && pl->http && pl->http->response_body) {
            plugin_ctx(s, i, &ctx);
            pl->http->response_body((struct nodus_http *)s->txn, &ctx, p, n, end);
        }
    }
}

static bool listener_wants(const struct nd_listener_conf *lc, unsigned flag)
{
    unsigned i;

    for (i = 0; i < lc->nplugins; i++)
        if (lc->plugins[i].p->flags & flag)
            return true;
    return false;
}

/* ---- the exchange -----------------------------------------------------------------------------
 */

static void route_timeout(struct nd_timer *tm)
{
    struct nd_session *s = container_of(tm, struct nd_session, timer);
    struct nd_txn *t = s->txn;

    if (!t)
        return;
    nd_metrics_count(s->w->id, ND_C_UPSTREAM_TIMEOUTS, 1);
    nd_warn("%s %.*s: upstream request timeout after %u ms", s->lc->name, (int)t->req.path.len,
            t->req.path.p, t->timeout_ms);
    up_release(s->w, t, false);
    respond_local(s, 504, "upstream request timeout\n", ND_RF_UT);
    s->close_after = s->close_after || t->resp_started;
    sess_drive(s);
}

static void up_connect_timeout(struct nd_timer *tm)
{
    struct nd_upstream *u = container_of(tm, struct nd_upstream, timer);

    /* reported as a connect failure on the next drive */
    u->conn.cb(&u->conn, ND_EV_ERROR | ND_EV_WRITE);
}

/* Starts (or restarts, after a failed attempt) the upstream leg. */
static void start_upstream(struct nd_session *s)
{
    struct nd_txn *t = s->txn;
    int avoid = t->ep, err;

    for (;;) {
        if (t->crt->requests >= t->cluster->max_requests) {
            respond_local(s, 503, "upstream overflow\n", ND_RF_UO);
            return;
        }
        t->ep = nd_lb_pick(s->w, t->crt, t->subset_k, t->subset_v, avoid);
        if (t->ep < 0) {
            respond_local(s, 503, "no healthy upstream\n", ND_RF_UH);
            return;
        }
        t->attempts++;
        err = up_acquire(s);
        if (!err)
            break;
        if (err == -EBUSY) {
            respond_local(s, 503, "upstream overflow\n", ND_RF_UO);
            return;
        }
        t->crt->eps[t->ep].fails++;
        nd_metrics_count(s->w->id, ND_C_UPSTREAM_CX_CONNECT_FAIL, 1);
        if (t->attempts >= 3) {
            respond_local(s, 503, "upstream connect error\n", ND_RF_UF);
            return;
        }
        avoid = t->ep;
    }
    if ((err = write_request_head(s, t->up)) < 0) {
        uint32_t cap = t->up->tx ? t->up->tx->cap : 0;

        up_release(s->w, t, false);
        if (err == -ENOBUFS) {
            respond_local(s, 503, "overloaded\n", ND_RF_LR);
            return;
        }
        /* Envoy's answer to a head over its limit; the client's head alone may have been within
         * max_request_headers_kb: the fields the node and the plugins add count too */
        nd_metrics_count(s->w->id, ND_C_REQUEST_HEAD_TOO_LARGE, 1);
        nd_info("%s: request from %s refused: its head for the upstream (%u bytes received, "
                "%u fields) is over %u bytes with the fields added to it",
                s->lc->name, s->peer, t->req.head_len, (unsigned)t->req.nhdrs, cap);
        respond_local(s, 431, "request header fields too large for the upstream request\n",
                      ND_RF_DPE);
        return;
    }
    t->req_sent_head = true;
}

/* A TLS upstream whose handshake never completed (refused identity, bad certificate, reset):
 * a failure to connect, as Envoy counts it (UF), and another endpoint may be tried. */
static bool tls_never_up(const struct nd_upstream *u)
{
    return u->conn.st && !u->principal_len;
}

/* An upstream attempt failed before any response byte: another endpoint, or 503. */
static void upstream_failed(struct nd_session *s, bool connect_phase, int err)
{
    struct nd_txn *t = s->txn;
    bool retry = !t->resp_started && t->resp_scan == 0 && t->attempts < 3 &&
                 (connect_phase || (t->up && t->up->uses > 1)) && t->rqb.bytes == 0;

    if (connect_phase && t->ep >= 0) {
        t->crt->eps[t->ep].fails++;
        nd_metrics_count(s->w->id, ND_C_UPSTREAM_CX_CONNECT_FAIL, 1);
        nd_debug("connect to %s failed: %s", t->crt->ceps[t->ep].addr.text, strerror(-err));
    } else {
        nd_metrics_count(s->w->id, ND_C_UPSTREAM_RESETS, 1);
    }
    up_release(s->w, t, false);
    if (retry) {
        t->req_sent_head = false;
        start_upstream(s);
        return;
    }
    if (t->resp_started) {
        t->rflags |= ND_RF_UC;
        s->close_after = true;
        t->rsb.done = true;
        s->state = S_CLOSING;
        return;
    }
    if (connect_phase)
        respond_local(s, 503, "upstream connect error or disconnect/reset before headers\n",
                      ND_RF_UF);
    else
        respond_local(s, 503, "upstream connect error or disconnect/reset before headers\n",
                      ND_RF_UC);
}

static void run_chain(struct nd_session *s)
{
    const struct nd_listener_conf *lc = s->lc;
    struct nd_txn *t = s->txn;
    struct nodus_ctx ctx;

    while (t->chain_pos < lc->nplugins) {
        unsigned i = t->chain_pos++;
        const struct nodus_plugin *p = lc->plugins[i].p;
        int v;

        if (!p->http || !p->http->request_headers)
            continue;
        plugin_ctx(s, i, &ctx);
        v = p->http->request_headers((struct nodus_http *)t, &ctx);
        if (t->edit_failed && v != NODUS_RESPOND) {
            /* an edit the plugin counted on is missing: never forward such a request */
            nd_metrics_count(s->w->id, ND_C_EDIT_FAILURES, 1);
            nd_warn("%s: plugin %s: request edits exceed the per-request space: answered 500",
                    lc->name, p->name);
            t->edit_len = 0;
            t->req.nhdrs = t->req_parsed;
            t->new_path = (struct nd_str){0};
            t->req_principal = (struct nd_str){0};
            t->edit_failed = false;
            t->paused = false;
            respond_local(s, 500, "request edits exceed the per-request space\n", ND_RF_LR);
            s->state = S_UPSTREAM;
            return;
        }
        if (v == NODUS_PAUSE) {
            t->paused = true;
            return;
        }
        if (v == NODUS_RESPOND || t->local) {
            if (!t->local)
                respond_local(s, 500, "plugin answered without a response\n", ND_RF_LR);
            else
                send_local(s);
            s->state = S_UPSTREAM;
            return;
        }
    }
    s->state = S_UPSTREAM;
    if (!t->cluster) {
        respond_local(s, 404, "no route\n", ND_RF_NR);
        return;
    }
    if (t->expect_100 && !t->rqb.done) {
        if (!s->tx && !(s->tx = nd_buf_get(&s->w->bufs))) {
            respond_local(s, 503, "overloaded\n", ND_RF_LR);
            return;
        }
        PUTS(s->tx, "HTTP/1.1 100 Continue\r\n\r\n");
        if (nd_flush(&s->conn, s->tx, NULL, NULL) < 0) {
            s->rd_eof = true;
            s->close_after = true;
        }
    }
    s->timer.cb = route_timeout;
    nd_timer_arm(&s->w->wheel, &s->timer, t->timeout_ms ? t->timeout_ms : lc->request_timeout_ms);
    start_upstream(s);
}

static void header_timeout(struct nd_timer *tm)
{
    struct nd_session *s = container_of(tm, struct nd_session, timer);

    if (s->state == S_HEAD) {
        nd_metrics_count(s->w->id, ND_C_HEADER_TIMEOUTS, 1);
        nd_info("%s: request header timeout from %s", s->lc->name, s->peer);
        respond_error(s, 408, "request header timeout\n");
    } else {
        nd_metrics_count(s->w->id, ND_C_IDLE_TIMEOUTS, 1);
        s->state = S_CLOSING;
        s->close_after = true;
    }
    sess_drive(s);
}

/* Parses a request head at buf[0..len) into s's txn (taken when it has none). > 0: the head's
 * length, 0: not complete yet, < 0: a parse error, or -ENOMEM with no txn. */
static int parse_request(struct nd_session *s, const char *buf, uint32_t len, struct nd_http_msg *m,
                         size_t *scan)
{
    if (!s->txn && !(s->txn = txn_get(s)))
        return -ENOMEM;
    memset(m, 0, sizeof(*m));
    m->hdrs = s->txn->req_hdrs;
    m->cap = s->lc->limits.max_headers < ND_HDRS - 32 ? s->lc->limits.max_headers : ND_HDRS - 32;
    return nd_http1_parse_request(buf, len, m, &s->lc->limits, scan);
}

/* A complete request head in m: the exchange starts (413, or the plugin chain). */
static void request_started(struct nd_session *s, const struct nd_http_msg *m)
{
    struct nd_worker *w = s->w;
    struct nd_txn *t = s->txn;

    t->req = *m;
    t->req_parsed = m->nhdrs;
    t->req_bytes = m->head_len; /* received, whether it goes upstream or not */
    t->t_start_us = w->now_us;
    t->expect_100 = (m->flags & ND_HTTP_F_EXPECT_100) != 0;
    s->scan = 0;
    s->nreq++;
    if (!(m->flags & ND_HTTP_F_KEEPALIVE) || w->draining)
        s->close_after = true;
    body_init(&t->rqb, m);
    if (s->lc->max_body && m->body == ND_HTTP_BODY_LENGTH && m->content_length > s->lc->max_body) {
        s->state = S_UPSTREAM;
        respond_local(s, 413, "payload too large\n", ND_RF_DPE);
        return;
    }
    s->state = S_CHAIN;
    nd_timer_cancel(&w->wheel, &s->timer);
    run_chain(s);
}

/* Zero-copy: the request head parsed where it arrived, when all of it lies in the first received
 * piece and the backend holds that buffer for the exchange (io.h pin). true when the exchange
 * started; false leaves the bytes to the rx buffer (a head across pieces or not complete yet, a
 * parse error, which the buffer's parse reports, or no pin). */
static bool request_in_place(struct nd_session *s)
{
    const struct nd_io_ops *io = s->w->io;
    struct nd_http_msg m;
    struct iovec iov[1];
    void *pin;

    if (io->peek(&s->conn, iov, 1) <= 0 ||
        parse_request(s, iov[0].iov_base, (uint32_t)iov[0].iov_len, &m, NULL) <= 0 ||
        !(pin = io->pin(&s->conn, iov[0].iov_base)))
        return false;
    s->txn->req_pin = pin;
    io->consume(&s->conn, m.head_len);
    s->rx_pin = 0;
    request_started(s, &m);
    return true;
}

/* Reads and parses a request head. Returns true when a txn started. */
static bool read_request(struct nd_session *s)
{
    struct nd_worker *w = s->w;
    ssize_t n;
    int r;

    for (;;) {
        struct nd_http_msg m;

        if (!(s->rx && s->rx->len) && nd_conn_zc(&s->conn) && request_in_place(s))
            return true;
        if (s->rx && s->rx->len) {
            if (s->rx->off) /* a new request starts at the buffer's start: its head gets pinned */
                nd_buf_compact(s->rx, 0);
            r = parse_request(s, nd_buf_head(s->rx), s->rx->len, &m, &s->scan);
            if (r == -ENOMEM) {
                s->state = S_CLOSING;
                return false;
            }
            if (r < 0) {
                nd_metrics_count(w->id, ND_C_HTTP_PARSE_ERRORS, 1);
                nd_info("%s: bad request from %s: %s", s->lc->name, s->peer, nd_http1_strerror(r));
                s->rx->len = 0;
                respond_error(s, nd_http1_error_status(r), nd_http1_strerror(r));
                return true;
            }
            if (r > 0) {
                s->rx_pin = m.head_len;
                nd_buf_consume(s->rx, m.head_len);
                s->rx->off = m.head_len; /* consume() may reset off: the head stays pinned */
                request_started(s, &m);
                return true;
            }
            if (!nd_buf_room(s->rx)) {
                /* the buffer is full and the head not complete: it is over what the node holds,
                 * whatever max_request_headers_kb allows (above 16) */
                nd_metrics_count(w->id, ND_C_HTTP_PARSE_ERRORS, 1);
                nd_info("%s: bad request from %s: header section over the %u-byte buffer",
                        s->lc->name, s->peer, s->rx->cap);
                s->rx->len = 0;
                respond_error(s, 431, "header section too large");
                return true;
            }
            if (s->state == S_IDLE) {
                s->state = S_HEAD;
                s->timer.cb = header_timeout;
                nd_timer_arm(&w->wheel, &s->timer, s->lc->header_timeout_ms);
            }
        }
        n = read_into(w, &s->conn, &s->rx, 0);
        if (n < 0) {
            s->rd_eof = true;
            if (s->state == S_HEAD)
                nd_metrics_count(w->id, ND_C_DOWNSTREAM_RESETS, 1);
            s->state = S_CLOSING;
            return false;
        }
        if (n == 0) {
            if (s->rx && !s->rx->len && s->state == S_IDLE) {
                /* idle keep-alive connections hold no buffer */
                nd_buf_put(&w->bufs, s->rx);
                s->rx = NULL;
            }
            return false;
        }
    }
}

/* A complete response head in m (the upstream's final answer): response hooks, then the head for
 * the client in s->tx. false when it could not be written (answered 502, the upstream released). */
static bool response_started(struct nd_session *s, const struct nd_http_msg *m)
{
    struct nd_txn *t = s->txn;

    t->resp = *m;
    t->resp_parsed = m->nhdrs;
    t->status = m->status;
    body_init(&t->rsb, m);
    if (!(m->flags & ND_HTTP_F_KEEPALIVE))
        t->up_reusable = false;
    else
        t->up_reusable = m->body != ND_HTTP_BODY_CLOSE;
    if (m->body == ND_HTTP_BODY_CLOSE ||
        (t->req.version_minor == 0 && m->body == ND_HTTP_BODY_CHUNKED))
        s->close_after = true;
    run_response_hooks(s);
    if (!send_response_head(s)) {
        up_release(s->w, t, false);
        respond_local(s, 502, "response head too large\n", ND_RF_UPE);
        return false;
    }
    t->resp_bytes += m->head_len;
    return true;
}

/* An unparseable response: the upstream is released and the client answered 502. */
static void bad_response(struct nd_session *s, int err)
{
    struct nd_txn *t = s->txn;

    nd_warn("%s: bad response from %s: %s", s->lc->name, nd_ep_text(t->crt, t->ep),
            nd_http1_strerror(err));
    up_release(s->w, t, false);
    respond_local(s, 502, "bad response from upstream\n", ND_RF_UPE);
}

static int parse_response(struct nd_session *s, const char *buf, uint32_t len,
                          struct nd_http_msg *m, size_t *scan)
{
    memset(m, 0, sizeof(*m));
    m->hdrs = s->txn->resp_hdrs;
    m->cap = ND_HDRS - 32;
    return nd_http1_parse_response(buf, len, m, &s->lc->limits, scan, s->txn->req.meth);
}

/* Zero-copy: the response head parsed where it arrived (as request_in_place()). 1 when a head
 * was taken (an interim one skipped, or the final one sent on), 0 when the bytes go through the
 * rx buffer, -1 when the response could not be sent on (answered, the upstream released). */
static int response_in_place(struct nd_session *s, struct nd_upstream *u)
{
    const struct nd_io_ops *io = s->w->io;
    struct nd_http_msg m;
    struct iovec iov[1];
    void *pin;
    int r;

    if (io->peek(&u->conn, iov, 1) <= 0 ||
        (r = parse_response(s, iov[0].iov_base, (uint32_t)iov[0].iov_len, &m, NULL)) <= 0)
        return 0;
    if (m.status < 200) { /* interim answers: we sent our own 100 Continue */
        io->consume(&u->conn, (size_t)r);
        return 1;
    }
    if (!(pin = io->pin(&u->conn, iov[0].iov_base)))
        return 0;
    s->txn->resp_pin = pin;
    if (!response_started(s, &m))
        return -1;
    io->consume(&u->conn, m.head_len);
    return 1;
}

/* Request body upstream, response back: returns true if anything moved. */
static bool pump(struct nd_session *s)
{
    struct nd_worker *w = s->w;
    struct nd_txn *t = s->txn;
    struct nd_upstream *u = t->up;
    bool moved = false;
    ssize_t n;
    int r;

    /* client -> upstream */
    if (u && u->state == UP_BUSY && t->req_sent_head) {
        bool zc = nd_conn_zc(&s->conn) && nd_conn_zc(&u->conn);
        body_hook_fn hook = listener_wants(s->lc, NODUS_WANT_REQUEST_BODY) ? req_body_hook : NULL;

        for (;;) {
            bool in_rx = s->rx && s->rx->len; /* else a zero-copy body is in s->conn */
            uint32_t before;

            if (in_rx && body_scan_buf(s, &t->rqb, s->rx, hook) < 0) {
                r = FWD_BAD;
                goto req_failed;
            }
            if (zc && !in_rx && u->tx && u->tx->len && !t->rqb.done &&
                (r = splice_body(s, &t->rqb, &s->conn, &u->conn, u->tx, hook, &t->req_bytes)) ==
                    FWD_BAD)
                goto req_failed; /* else the body's first bytes ride with the head, or an early
                                  * end of the client's stream is seen once the head is out */
            before = t->rqb.fwd;
            r = nd_flush(&u->conn, u->tx, in_rx ? nd_buf_head(s->rx) : NULL,
                         in_rx ? &t->rqb.fwd : NULL);
            if (before != t->rqb.fwd) {
                uint32_t sent = before - t->rqb.fwd;

                nd_buf_consume(s->rx, sent);
                if (!s->rx->len)
                    s->rx->off = s->rx_pin;
                t->req_bytes += sent;
                moved = true;
            }
            if (r < 0) {
                r = FWD_TO_FAILED;
                goto req_failed;
            }
            if (r > 0 || (t->rqb.done && !t->rqb.fwd))
                break;
            if (zc && !(s->rx && s->rx->len)) {
                r = splice_body(s, &t->rqb, &s->conn, &u->conn, NULL, hook, &t->req_bytes);
                if (r == 0)
                    break;
                if (r < 0)
                    goto req_failed;
                moved = true;
                continue;
            }
            n = read_into(w, &s->conn, &s->rx, s->rx_pin);
            if (n == 0)
                break;
            if (n < 0) {
                r = FWD_FROM_ENDED;
                goto req_failed;
            }
        }
    }

    /* upstream -> client */
    if (u && u->state == UP_BUSY) {
        bool zc = nd_conn_zc(&u->conn) && nd_conn_zc(&s->conn);
        body_hook_fn hook = listener_wants(s->lc, NODUS_WANT_RESPONSE_BODY) ? resp_body_hook : NULL;

        for (;;) {
            if (!t->resp_started && !(u->rx && u->rx->len) && nd_conn_zc(&u->conn)) {
                r = response_in_place(s, u);
                if (r < 0)
                    return true;
                if (r > 0) {
                    moved = true;
                    continue;
                }
            }
            if (!t->resp_started && u->rx && u->rx->len) {
                struct nd_http_msg m;

                if (u->rx->off) /* after an interim answer: the head gets pinned at the start */
                    nd_buf_compact(u->rx, 0);
                r = parse_response(s, nd_buf_head(u->rx), u->rx->len, &m, &t->resp_scan);
                if (r < 0) {
                    bad_response(s, r);
                    return true;
                }
                if (r > 0 && m.status < 200) {
                    /* interim answers: we sent our own 100 Continue */
                    nd_buf_consume(u->rx, (uint32_t)r);
                    t->resp_scan = 0;
                    continue;
                }
                if (r > 0) {
                    if (!response_started(s, &m))
                        return true;
                    nd_buf_consume(u->rx, m.head_len);
                    u->rx->off = m.head_len;
                    moved = true;
                }
            }
            if (t->resp_started) {
                bool in_rx = u->rx && u->rx->len; /* else a zero-copy body is in u->conn */
                uint32_t before;

                if (in_rx && body_scan_buf(s, &t->rsb, u->rx, hook) < 0) {
                    r = FWD_BAD;
                    goto failed;
                }
                if (zc && !in_rx && s->tx && s->tx->len && !t->rsb.done &&
                    (r = splice_body(s, &t->rsb, &u->conn, &s->conn, s->tx, hook,
                                     &t->resp_bytes)) == FWD_BAD)
                    goto failed; /* else the body's first bytes ride with the head */
                before = t->rsb.fwd;
                r = nd_flush(&s->conn, s->tx, in_rx ? nd_buf_head(u->rx) : NULL,
                             in_rx ? &t->rsb.fwd : NULL);
                if (before != t->rsb.fwd) {
                    uint32_t sent = before - t->rsb.fwd;

                    nd_buf_consume(u->rx, sent);
                    if (!u->rx->len)
                        u->rx->off = t->resp_pin ? 0 : t->resp.head_len;
                    t->resp_bytes += sent;
                    moved = true;
                }
                if (r < 0) {
                    r = FWD_TO_FAILED;
                    goto failed;
                }
                if (r > 0)
                    break; /* client full: stop reading upstream */
                if (t->rsb.done && !t->rsb.fwd) {
                    up_release(w, t, t->up_reusable && t->rqb.done);
                    return true;
                }
                if (zc && !(u->rx && u->rx->len)) {
                    r = splice_body(s, &t->rsb, &u->conn, &s->conn, NULL, hook, &t->resp_bytes);
                    if (r == 0)
                        break;
                    if (r < 0)
                        goto failed;
                    moved = true;
                    continue;
                }
            }
            n = read_into(w, &u->conn, &u->rx,
                          t->resp_started && !t->resp_pin ? t->resp.head_len : 0);
            if (n < 0) {
                r = FWD_FROM_ENDED;
                goto failed;
            }
            if (n == 0)
                break;
            moved = true;
        }
    }
    return moved;

req_failed:
    if (r == FWD_BAD) {
        nd_metrics_count(w->id, ND_C_HTTP_PARSE_ERRORS, 1);
        up_release(w, t, false);
        respond_local(s, 400, "bad chunked encoding\n", ND_RF_DPE);
    } else if (r == FWD_TO_FAILED) {
        upstream_failed(s, tls_never_up(u), -EPIPE);
    } else { /* client gone mid-body */
        s->rd_eof = true;
        t->rflags |= ND_RF_DC;
        nd_metrics_count(w->id, ND_C_DOWNSTREAM_RESETS, 1);
        up_release(w, t, false);
        s->state = S_CLOSING;
    }
    return true;

failed: /* of the response */
    if (r == FWD_BAD) {
        nd_warn("%s: bad chunked response from upstream", s->lc->name);
        t->rflags |= ND_RF_UPE;
        up_release(w, t, false);
        s->close_after = true;
        t->rsb.done = true;
        s->state = S_CLOSING;
    } else if (r == FWD_TO_FAILED) {
        t->rflags |= ND_RF_DC;
        up_release(w, t, false);
        s->state = S_CLOSING;
        s->close_after = true;
        t->rsb.done = true;
    } else if (t->resp_started && t->rsb.mode == ND_HTTP_BODY_CLOSE) {
        t->rsb.done = true; /* the end of the stream ends the body */
        up_release(w, t, false);
    } else {
        upstream_failed(s, tls_never_up(u), -ECONNRESET);
    }
    return true;
}

static void sess_release(struct nd_session *s);

/* Ends the current exchange: logs, counts, and readies the session for the next request. */
static void txn_finish(struct nd_session *s)
{
    struct nd_worker *w = s->w;
    struct nd_txn *t = s->txn;
    const struct nd_listener_conf *lc = s->lc;
    struct nodus_ctx ctx;
    struct nd_req_record rec;
    unsigned i;

    if (t->up)
        up_release(w, t, false);
    nd_timer_cancel(&w->wheel, &s->timer);
    t->t_end_us = nd_clock_us(); /* once, for the log hooks, the metrics and the access log */
    for (i = 0; i < lc->nplugins; i++) {
        const struct nodus_plugin *p = lc->plugins[i].p;

        if (p->http && p->http->log) {
            plugin_ctx(s, i, &ctx);
            p->http->log((struct nodus_http *)t, &ctx);
        }
    }
    memset(&rec, 0, sizeof(rec));
    rec.listener = lc->metrics_id;
    rec.cluster = t->cluster ? t->cluster->metrics_id : ND_METRICS_NONE;
    rec.status = t->resp_started ? t->status : 0;
    rec.flags = t->rflags | (s->principal_len ? ND_REC_MTLS : 0);
    rec.duration_us = t->t_end_us - t->t_start_us;
    rec.req_bytes = t->req_bytes;
    rec.resp_bytes = t->resp_bytes;
    rec.src_principal = nd_principal_id(s->principal, s->principal_len, &s->principal_mid);
    rec.dst_principal = t->up_principal;
    nd_principal_pair(&rec.src_principal, &rec.dst_principal);
    nd_metrics_request(w->id, &rec);
    if (s->snap->cfg->node.access_log)
        nd_access_log(w, s, t, &rec);

    txn_put(w, t);
    s->txn = NULL;
    s->rx_pin = 0;
    if (s->rx && !s->rx->len)
        s->rx->off = 0;
    if (s->close_after || !t->rqb.done) {
        s->state = S_CLOSING;
        return;
    }
    s->state = S_IDLE;
    s->timer.cb = header_timeout;
    nd_timer_arm(&w->wheel, &s->timer, lc->idle_timeout_ms);
}

static void linger_timeout(struct nd_timer *tm)
{
    struct nd_session *s = container_of(tm, struct nd_session, timer);

    s->state = S_DEAD;
    sess_drive(s);
}

/* The one driver of a session: moves it as far as it can go, then waits for an event. */
static void sess_drive(struct nd_session *s)
{
    int guard = 64;

    if (s->in_drive)
        return;
    s->in_drive = true;
    while (guard-- > 0) {
        switch (s->state) {
        case S_IDLE:
        case S_HEAD:
            if (!read_request(s) && (s->state == S_IDLE || s->state == S_HEAD))
                goto out;
            continue;
        case S_CHAIN:
            goto out; /* a plugin paused: it resumes us */
        case S_UPSTREAM: {
            struct nd_txn *t = s->txn;
            bool moved = false;

            if (t->up)
                moved = pump(s);
            if (s->state != S_UPSTREAM)
                continue;
            if (!t->up && (t->rsb.done || t->local)) {
                /* local answer, or upstream finished: flush the rest to the client */
                int r = nd_flush(&s->conn, s->tx, NULL, NULL);

                if (r < 0) {
                    t->rflags |= ND_RF_DC;
                    s->close_after = true;
                }
                if (r > 0)
                    goto out;
                if (!t->rqb.done)
                    s->close_after = true;
                txn_finish(s);
                continue;
            }
            if (!moved)
                goto out;
            continue;
        }
        case S_TCP:
            nd_tcp_drive(s);
            if (s->state == S_TCP)
                goto out;
            continue;
        case S_CLOSING:
            if (s->txn) {
                if (s->tx && s->tx->len && nd_flush(&s->conn, s->tx, NULL, NULL) > 0)
                    goto out;
                txn_finish(s);
                s->state = S_CLOSING;
            }
            if (s->tx && s->tx->len && nd_flush(&s->conn, s->tx, NULL, NULL) > 0)
                goto out;
            if (s->conn.st && !s->conn.st->failed) {
                /* what the layers still have for the network (a TLS record), then their last
                 * words (a close_notify), before our FIN: wait for the socket, not for layers
                 * that cannot produce it any more, and not longer than the lingering bound */
                nd_stream_event(s->conn.st);
                if (!nd_stream_finish(s->conn.st) && nd_stream_pending_net(s->conn.st)) {
                    if (!nd_timer_armed(&s->timer)) {
                        s->timer.cb = linger_timeout;
                        nd_timer_arm(&s->w->wheel, &s->timer, ND_LINGER_MS);
                    }
                    goto out; /* a write event brings us back */
                }
            }
            if (s->rd_eof || s->lc->proto != ND_PROTO_HTTP) {
                s->state = S_DEAD;
                goto out;
            }
            /* Half-close and discard what the client still sends (the rest of a body the
             * answer did not wait for, a pipelined request): closing with unread bytes would
             * make the kernel reset the connection, and the client could lose our answer. */
            s->w->io->shutdown_write(&s->conn);
            s->state = S_LINGER;
            s->lingered = 0;
            s->timer.cb = linger_timeout;
            nd_timer_arm(&s->w->wheel, &s->timer, ND_LINGER_MS);
            continue;
        case S_LINGER: {
            char sink[4096];
            ssize_t n;

            while ((n = nd_conn_read(&s->conn, sink, sizeof(sink))) > 0) {
                s->lingered += (uint32_t)n;
                if (s->lingered > ND_LINGER_BYTES)
                    break;
            }
            if (n == -EAGAIN && s->lingered <= ND_LINGER_BYTES)
                goto out;
            s->state = S_DEAD;
            goto out;
        }
        case S_DEAD:
            goto out;
        }
    }
    /* the guard ran out: more work is pending; keep fairness by waking on the next event */
    nd_debug("session %s: drive budget used", s->peer);
out:
    s->in_drive = false;
    if (s->state == S_DEAD)
        sess_release(s);
}

static void sess_release(struct nd_session *s)
{
    struct nd_worker *w = s->w;

    if (s->txn) {
        if (s->txn->up)
            up_release(w, s->txn, false);
        txn_put(w, s->txn);
        s->txn = NULL;
    }
    if (s->lc->proto == ND_PROTO_TCP)
        nd_tcp_session_end(s);
    if (s->up)
        nd_upstream_close(w, s->up);
    nd_timer_cancel(&w->wheel, &s->timer);
    nd_stream_close(w, &s->conn);
    w->io->close(&s->conn, false);
    nd_buf_put(&w->bufs, s->rx);
    nd_buf_put(&w->bufs, s->tx);
    s->rx = s->tx = NULL;
    if (s->prev)
        s->prev->next = s->next;
    else
        w->sessions_head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    nd_snap_session_put(w, s->snap);
    w->sessions--;
    atomic_fetch_sub_explicit(&nd_rt.conns, 1, memory_order_relaxed);
    nd_metrics_gauge_add(w->id, ND_G_DOWNSTREAM_CX_ACTIVE, -1);
    s->state = S_FREE;
    s->next = w->dead_sessions;
    w->dead_sessions = s;
}

static void sess_cb(struct nd_conn *c, unsigned events)
{
    struct nd_session *s = container_of(c, struct nd_session, conn);

    (void)events;
    if (s->state == S_FREE)
        return;
    if (c->st)
        nd_stream_event(c->st);
    sess_drive(s);
}

static void up_cb(struct nd_conn *c, unsigned events)
{
    struct nd_upstream *u = container_of(c, struct nd_upstream, conn);
    struct nd_worker *w = c->w;
    struct nd_session *s;

    if (u->state == UP_FREE)
        return;
    if (u->tcp) {
        nd_tcp_up_cb(u, events);
        return;
    }
    if (c->st && u->state != UP_CONNECTING)
        nd_stream_event(c->st);
    if (u->state == UP_IDLE) {
        /* a pooled connection spoke or closed: either way it can't carry a request now (over
         * TLS, records without data, such as session tickets, leave it idle) */
        char b;

        if (!(events & (ND_EV_READ | ND_EV_ERROR)))
            return; /* writable again (the ACK of the last request): nothing to do */
        if (nd_conn_read(c, &b, 1) == -EAGAIN)
            return;
        nd_upstream_close(w, u);
        return;
    }
    if (!u->txn)
        return;
    s = u->txn->s;
    if (u->state == UP_CONNECTING) {
        int err;

        if (!(events & (ND_EV_WRITE | ND_EV_ERROR)))
            return;
        err = (events & ND_EV_ERROR) && !(events & ND_EV_READ) ? -ETIMEDOUT
                                                               : w->io->connect_result(c);
        if (events == (ND_EV_ERROR | ND_EV_WRITE))
            err = -ETIMEDOUT;
        nd_timer_cancel(&w->wheel, &u->timer);
        if (!err && nd_upstream_start_tls(w, u) < 0)
            err = -EPROTO;
        if (err) {
            upstream_failed(s, true, err);
            sess_drive(s);
            return;
        }
        u->state = UP_BUSY;
        if (u->ep)
            u->ep->fails = 0;
    }
    sess_drive(s);
}

/* ---- accepting ------------------------------------------------------------------------------ */

void nd_listener_cb(struct nd_conn *c, unsigned events)
{
    struct nd_listen_handle *lh = container_of(c, struct nd_listen_handle, conn);
    struct nd_worker *w = c->w;
    int budget = 64;

    (void)events;
    while (budget-- > 0 && !w->draining) {
        struct nd_session *s = session_get(w);
        int err;

        if (!s) {
            nd_metrics_count(w->id, ND_C_ACCEPT_ERRORS, 1);
            return;
        }
        s->conn.cb = sess_cb;
        err = w->io->accept(c, &s->conn, s->peer, sizeof(s->peer));
        if (err) {
            nd_session_recycle(w, s);
            if (err != -EAGAIN) {
                nd_metrics_count(w->id, ND_C_ACCEPT_ERRORS, 1);
                nd_warn("%s: accept: %s", lh->lc->name, strerror(-err));
            }
            return;
        }
        if (atomic_fetch_add_explicit(&nd_rt.conns, 1, memory_order_relaxed) >=
            lh->snap->cfg->node.max_connections) {
            atomic_fetch_sub_explicit(&nd_rt.conns, 1, memory_order_relaxed);
            /* over node.max_connections: closed at once, so the kernel's queue keeps moving */
            nd_metrics_count(w->id, ND_C_OVERLOAD_REJECTS, 1);
            w->io->close(&s->conn, true);
            nd_session_recycle(w, s);
            if (!(w->overload_logged++ % 1000))
                nd_warn("%s: connection limit reached (node.max_connections): refusing %s",
                        lh->lc->name, s->peer);
            continue;
        }
        s->peer_len = (uint8_t)strlen(s->peer);
        s->snap = lh->snap;
        s->lc = lh->lc;
        s->pstate = &s->snap->wrt[w->id].pstate[s->lc->id * ND_MAX_CHAIN];
        if (nd_stream_open(w, s, &s->conn) < 0) {
            nd_stream_close(w, &s->conn);
            w->io->close(&s->conn, true);
            atomic_fetch_sub_explicit(&nd_rt.conns, 1, memory_order_relaxed);
            nd_session_recycle(w, s);
            continue;
        }
        s->snap->wrt[w->id].sessions++;
        s->next = w->sessions_head;
        if (s->next)
            s->next->prev = s;
        w->sessions_head = s;
        w->sessions++;
        nd_metrics_count(w->id, ND_C_DOWNSTREAM_CX_TOTAL, 1);
        nd_metrics_gauge_add(w->id, ND_G_DOWNSTREAM_CX_ACTIVE, 1);
        if (s->lc->proto == ND_PROTO_TCP) {
            nd_tcp_session_start(s);
        } else {
            s->state = S_IDLE;
            s->timer.cb = header_timeout;
            nd_timer_arm(&w->wheel, &s->timer, s->lc->idle_timeout_ms);
        }
        sess_drive(s);
    }
}

void nd_worker_close_idle(struct nd_worker *w)
{
    struct nd_session *s = w->sessions_head, *next;

    for (; s; s = next) {
        next = s->next;
        if (s->state == S_IDLE && !(s->rx && s->rx->len)) {
            s->state = S_DEAD;
            sess_release(s);
        } else {
            s->close_after = true;
        }
    }
}

void nd_session_free(struct nd_session *s)
{
    s->state = S_DEAD;
    sess_drive(s);
}

/* ---- the plugin ABI: HTTP exchange ------------------------------------------------------------
 */

#define TXN(h) ((struct nd_txn *)(h))

static struct nodus_slice sl(struct nd_str s)
{
    return (struct nodus_slice){s.p, s.len};
}

struct nodus_slice nodus_http_method(struct nodus_http *h)
{
    return sl(TXN(h)->req.method);
}

struct nodus_slice nodus_http_path(struct nodus_http *h)
{
    return sl(TXN(h)->req.path);
}

struct nodus_slice nodus_http_query(struct nodus_http *h)
{
    return sl(TXN(h)->req.query);
}

struct nodus_slice nodus_http_authority(struct nodus_http *h)
{
    struct nd_str a = TXN(h)->req.authority;
    uint32_t i = a.len;

    /* without the port; an IPv6 literal keeps its brackets */
    while (i > 0 && a.p[i - 1] >= '0' && a.p[i - 1] <= '9')
        i--;
    if (i > 0 && i < a.len && a.p[i - 1] == ':')
        a.len = i - 1;
    return sl(a);
}

int nodus_http_req_header(struct nodus_http *h, const char *name, struct nodus_slice *value)
{
    return hdr_get(&TXN(h)->req, name, value);
}

int nodus_http_req_header_index(struct nodus_http *h, unsigned i, struct nodus_slice *name,
                                struct nodus_slice *value)
{
    const struct nd_http_msg *m = &TXN(h)->req;

    if (i >= m->nhdrs)
        return 0;
    *name = (struct nodus_slice){m->hdrs[i].name.p, m->hdrs[i].name.len};
    *value = (struct nodus_slice){m->hdrs[i].value.p, m->hdrs[i].value.len};
    return 1;
}

int nodus_http_req_header_at(struct nodus_http *h, const char *name, unsigned i,
                             struct nodus_slice *value)
{
    const struct nd_http_msg *m = &TXN(h)->req;
    size_t len = strlen(name);

    for (unsigned k = 0; k < m->nhdrs; k++)
        if (m->hdrs[k].name.len == len && nd_http1_name_eq(m->hdrs[k].name, name, len) &&
            i-- == 0) {
            *value = (struct nodus_slice){m->hdrs[k].value.p, m->hdrs[k].value.len};
            return 1;
        }
    return 0;
}

/* The request head changes: a route matched before (nodus_http_route_config()) may not hold any
 * more. Until the terminal runs, its match is dropped, with what it kept in its scratch. */
static void route_unmatch(struct nd_txn *t)
{
    const struct nd_listener_conf *lc = t->s->lc;
    const struct nd_plugin_inst *term = &lc->plugins[lc->nplugins - 1];

    if (t->chain_pos >= lc->nplugins)
        return; /* the terminal runs (its own edits) or ran */
    t->route_matched = false;
    memset(t->scratch + term->txn_off, 0, term->p->txn_size);
}

int nodus_http_req_header_set(struct nodus_http *h, const char *name, const char *value,
                              size_t vlen)
{
    if (TXN(h)->route_matched)
        route_unmatch(TXN(h));
    hdr_remove(&TXN(h)->req, name);
    return hdr_add(TXN(h), &TXN(h)->req, name, value, vlen);
}

int nodus_http_req_header_add(struct nodus_http *h, const char *name, const char *value,
                              size_t vlen)
{
    if (TXN(h)->route_matched)
        route_unmatch(TXN(h));
    return hdr_add(TXN(h), &TXN(h)->req, name, value, vlen);
}

int nodus_http_req_headers_add(struct nodus_http *h, const struct nodus_header *hdrs, size_t n)
{
    struct nd_txn *t = TXN(h);
    size_t total = 0;
    char *p;

    if (t->route_matched)
        route_unmatch(t);
    if (n > (size_t)(ND_HDRS - t->req.nhdrs)) {
        t->edit_failed = true;
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        total += hdrs[i].name_len + hdrs[i].value_len + 4;
    if (!(p = edit_alloc(t, total)))
        return -1;
    for (size_t i = 0; i < n; i++)
        p = hdr_line(&t->req, p, hdrs[i].name, hdrs[i].name_len, hdrs[i].value, hdrs[i].value_len);
    return 0;
}

int nodus_http_req_header_remove(struct nodus_http *h, const char *name)
{
    if (TXN(h)->route_matched)
        route_unmatch(TXN(h));
    return hdr_remove(&TXN(h)->req, name);
}

int nodus_http_set_path(struct nodus_http *h, const char *path, size_t len)
{
    struct nd_txn *t = TXN(h);
    char *p;

    if (t->route_matched)
        route_unmatch(t);

    if (!len || path[0] != '/' || len > t->s->lc->limits.max_uri || !(p = edit_alloc(t, len)))
        return -1;
    memcpy(p, path, len);
    t->new_path = (struct nd_str){p, (uint32_t)len};
    return 0;
}

int nodus_http_status(struct nodus_http *h)
{
    return TXN(h)->status;
}

int nodus_http_resp_header(struct nodus_http *h, const char *name, struct nodus_slice *value)
{
    return hdr_get(&TXN(h)->resp, name, value);
}

int nodus_http_resp_header_set(struct nodus_http *h, const char *name, const char *value,
                               size_t vlen)
{
    hdr_remove(&TXN(h)->resp, name);
    return hdr_add(TXN(h), &TXN(h)->resp, name, value, vlen);
}

int nodus_http_resp_header_add(struct nodus_http *h, const char *name, const char *value,
                               size_t vlen)
{
    return hdr_add(TXN(h), &TXN(h)->resp, name, value, vlen);
}

int nodus_http_resp_header_remove(struct nodus_http *h, const char *name)
{
    return hdr_remove(&TXN(h)->resp, name);
}

int nodus_http_respond(struct nodus_http *h, int status, const char *body, size_t len)
{
    if (status < 200 || status > 599)
        return -1;
    return txn_set_local(TXN(h), status, body, len);
}

int nodus_http_route(struct nodus_http *h, struct nodus_cluster *cl, const char *label_key,
                     const char *label_val)
{
    struct nd_txn *t = TXN(h);
    const struct nd_cluster_conf *cc = (const struct nd_cluster_conf *)cl;

    if (!cc || cc->id >= t->s->snap->cfg->nclusters || &t->s->snap->cfg->clusters[cc->id] != cc)
        return -1;
    t->cluster = cc;
    t->crt = &t->s->snap->wrt[t->s->w->id].clusters[cc->id];
    t->subset_k = label_key;
    t->subset_v = label_key ? label_val : NULL;
    return 0;
}

void nodus_http_set_timeout(struct nodus_http *h, uint32_t ms)
{
    TXN(h)->timeout_ms = ms;
}

void *nodus_http_route_config(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    struct nd_txn *t = TXN(h);
    const struct nodus_route_config *rc;

    if (!t->route_matched) {
        struct nd_session *s = t->s;
        unsigned last = s->lc->nplugins - 1;
        const struct nodus_plugin *p = s->lc->plugins[last].p;
        struct nodus_ctx tctx;

        t->route_conf = NULL;
        if (p->http && p->http->match) {
            plugin_ctx(s, last, &tctx);
            t->route_conf = p->http->match(h, &tctx);
        }
        t->route_matched = true;
    }
    if ((rc = t->route_conf))
        for (unsigned i = 0; i < rc->n; i++)
            if (rc->e[i].owner == ctx->conf)
                return rc->e[i].conf;
    return NULL;
}

void nodus_http_resume(struct nodus_http *h, int verdict)
{
    struct nd_txn *t = TXN(h);
    struct nd_session *s = t->s;

    if (!t->paused)
        return;
    t->paused = false;
    if (verdict == NODUS_RESPOND) {
        s->state = S_UPSTREAM;
        if (!t->local)
            respond_local(s, 500, "plugin answered without a response\n", ND_RF_LR);
        else
            send_local(s);
    } else {
        run_chain(s);
    }
    sess_drive(s);
}

struct nodus_slice nodus_http_peer_principal(struct nodus_http *h)
{
    return (struct nodus_slice){TXN(h)->s->principal, TXN(h)->s->principal_len};
}

struct nodus_slice nodus_http_request_principal(struct nodus_http *h)
{
    return (struct nodus_slice){TXN(h)->req_principal.p, TXN(h)->req_principal.len};
}

int nodus_http_set_request_principal(struct nodus_http *h, const char *p, size_t len)
{
    struct nd_txn *t = TXN(h);
    char *copy;

    if (len > 255 || !(copy = edit_alloc(t, len ? len : 1)))
        return -1;
    memcpy(copy, p, len);
    t->req_principal = (struct nd_str){copy, len};
    return 0;
}

struct nodus_slice nodus_http_peer_addr(struct nodus_http *h)
{
    return (struct nodus_slice){TXN(h)->s->peer, TXN(h)->s->peer_len};
}

uint64_t nodus_http_start_us(struct nodus_http *h)
{
    return TXN(h)->t_start_us;
}

uint64_t nodus_http_now_us(struct nodus_http *h)
{
    const struct nd_txn *t = TXN(h);

    return t->t_end_us ? t->t_end_us : t->s->w->now_us;
}

void nodus_http_body_bytes(struct nodus_http *h, uint64_t *request, uint64_t *response)
{
    const struct nd_txn *t = TXN(h);

    *request = t->rqb.bytes;
    if (!t->local)
        *response = t->rsb.bytes;
    else /* a local answer's body, once written (none to HEAD) */
        *response = t->resp_started && t->req.meth != ND_HTTP_HEAD ? t->resp.reason.len : 0;
}

int nodus_http_local_port(struct nodus_http *h)
{
    const struct sockaddr_storage *ss = &TXN(h)->s->lc->addr.ss;

    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}
