/*
 * The stream layer (stream.h): stream plugins between a connection and its owner.
 */
#include "stream.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "nodus/plugin.h"
#include "proxy.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))

static inline struct nd_worker *st_w(const struct nd_stream *st)
{
    return st->conn->w;
}

unsigned nd_stream_layers(const struct nd_listener_conf *lc)
{
    unsigned i, n = 0;

    for (i = 0; i < lc->nplugins; i++)
        if (lc->plugins[i].p->stream)
            n++;
    return n;
}

static void layer_ctx(const struct nd_stream *st, unsigned k, struct nodus_ctx *ctx)
{
    const struct nd_stream_def *d = &st->layer[k].def;

    ctx->conf = d->conf;
    ctx->worker = d->worker;
    ctx->txn = (char *)st->scratch + d->txn_off;
    ctx->worker_id = st_w(st)->id;
}

static const struct nodus_stream_ops *layer_ops(const struct nd_stream *st, unsigned k)
{
    return st->layer[k].def.ops;
}

/* ---- boundary buffers ---------------------------------------------------------------------- */

static uint32_t used(const struct nd_buf *b)
{
    return b ? b->len : 0;
}

/* Free bytes once compacted. */
static uint32_t space(const struct nd_buf *b)
{
    return b ? b->cap - b->len : ND_STREAM_BUF;
}

static void release(struct nd_worker *w, struct nd_buf **b)
{
    if (*b && !(*b)->len) {
        nd_buf_put(&w->sbufs, *b);
        *b = NULL;
    }
}

static int append(struct nd_worker *w, struct nd_buf **bp, const void *p, size_t n)
{
    struct nd_buf *b = *bp;

    if (!n)
        return 0;
    if (!b && !(b = *bp = nd_buf_get(&w->sbufs))) {
        nd_metrics_count(w->id, ND_C_BUFFER_EXHAUSTED, 1);
        return -1;
    }
    if (nd_buf_room(b) < n)
        nd_buf_compact(b, 0);
    if (nd_buf_room(b) < n)
        return -1;
    memcpy(nd_buf_tail(b), p, n);
    b->len += (uint32_t)n;
    return 0;
}

/* ---- moving bytes through the layers ------------------------------------------------------- */

/* Runs every layer that has input and room for its output until nothing moves.
 * 0, or -1 when a layer failed. */
static int process(struct nd_stream *st)
{
    struct nd_worker *w = st_w(st);
    struct nodus_ctx ctx;
    bool moved;
    int k;

    if (st->failed)
        return -1;
    do {
        moved = false;
        for (k = 0; k < st->n; k++) {
            const struct nodus_stream_ops *ops = layer_ops(st, (unsigned)k);
            struct nd_buf *b = st->in[k];
            uint32_t room = space(st->in[k + 1]), len;
            long r;

            if (!used(b) || room <= ND_STREAM_SLACK)
                continue;
            len = MIN(b->len, room - ND_STREAM_SLACK);
            if (ops->data_in) {
                layer_ctx(st, (unsigned)k, &ctx);
                r = ops->data_in((struct nodus_stream *)&st->layer[k], &ctx, nd_buf_head(b), len);
            } else {
                r = append(w, &st->in[k + 1], nd_buf_head(b), len) ? -1 : (long)len;
            }
            if (r < 0 || (uint32_t)r > len || st->failed)
                goto fail;
            if (r) {
                nd_buf_consume(b, (uint32_t)r);
                moved = true;
            }
            release(w, &st->in[k]);
        }
        for (k = st->n - 1; k >= 0; k--) {
            const struct nodus_stream_ops *ops = layer_ops(st, (unsigned)k);
            struct nd_buf *b = st->out[k + 1];
            uint32_t room = space(st->out[k]), len;
            long r;

            if (!used(b) || room <= ND_STREAM_SLACK)
                continue;
            len = MIN(b->len, room - ND_STREAM_SLACK);
            if (ops->data_out) {
                layer_ctx(st, (unsigned)k, &ctx);
                r = ops->data_out((struct nodus_stream *)&st->layer[k], &ctx, nd_buf_head(b), len);
            } else {
                r = append(w, &st->out[k], nd_buf_head(b), len) ? -1 : (long)len;
            }
            if (r < 0 || (uint32_t)r > len || st->failed)
                goto fail;
            if (r) {
                nd_buf_consume(b, (uint32_t)r);
                moved = true;
            }
            release(w, &st->out[k + 1]);
        }
    } while (moved);
    return 0;
fail:
    if (!st->failed)
        nd_debug("stream %.*s: %s failed", (int)st->peer.addr_len, st->peer.addr,
                 st->layer[k].def.name);
    st->failed = true;
    nd_metrics_count(w->id, ND_C_STREAM_ERRORS, 1);
    return -1;
}

/* Writes out[0] to the network: 0 when empty, -EAGAIN when some is left, or -errno. */
static int flush(struct nd_stream *st)
{
    struct nd_worker *w = st_w(st);
    struct nd_buf *b = st->out[0];

    while (used(b)) {
        struct iovec iov = {nd_buf_head(b), b->len};
        ssize_t n = w->io->writev(st->conn, &iov, 1);

        if (n < 0) {
            if (n != -EAGAIN)
                st->failed = true; /* the connection is gone: nothing more will leave */
            return (int)n;
        }
        nd_buf_consume(b, (uint32_t)n);
    }
    release(w, &st->out[0]);
    return 0;
}

ssize_t nd_stream_read(struct nd_stream *st, void *buf, size_t len)
{
    struct nd_worker *w = st_w(st);

    for (;;) {
        struct nd_buf *top = st->in[st->n], *b;
        ssize_t n;
        int f;

        if (used(top)) {
            uint32_t take = (uint32_t)MIN(len, top->len);

            memcpy(buf, nd_buf_head(top), take);
            nd_buf_consume(top, take);
            release(w, &st->in[st->n]);
            return take;
        }
        if (st->failed)
            return -ECONNRESET;
        if (st->net_eof)
            return 0; /* what is left below the top can no longer complete */
        if (!st->in[0] && !(st->in[0] = nd_buf_get(&w->sbufs))) {
            nd_metrics_count(w->id, ND_C_BUFFER_EXHAUSTED, 1);
            return -ENOBUFS;
        }
        b = st->in[0];
        nd_buf_compact(b, 0);
        if (!nd_buf_room(b)) {
            /* the first layer sits on a full buffer without consuming: it can't progress */
            st->failed = true;
            nd_metrics_count(w->id, ND_C_STREAM_ERRORS, 1);
            return -EPROTO;
        }
        n = w->io->read(st->conn, nd_buf_tail(b), nd_buf_room(b));
        if (n > 0)
            b->len += (uint32_t)n;
        else if (n == 0)
            st->net_eof = true;
        else if (n != -EAGAIN)
            return n;
        release(w, &st->in[0]);
        if (process(st) < 0)
            return -ECONNRESET;
        f = flush(st); /* what the layers answered on their own (handshakes) */
        if (f < 0 && f != -EAGAIN)
            return f;
        if (n == -EAGAIN && !used(st->in[st->n]))
            return -EAGAIN;
    }
}

ssize_t nd_stream_writev(struct nd_stream *st, const struct iovec *iov, int iovcnt)
{
    struct nd_worker *w = st_w(st);
    size_t total = 0, want = 0;
    int i, f;

    if (st->failed)
        return -EPIPE;
    for (i = 0; i < iovcnt; i++)
        want += iov[i].iov_len;
    for (i = 0; i < iovcnt; i++) {
        uint32_t room = space(st->out[st->n]);
        size_t take = MIN(iov[i].iov_len, room);

        if (append(w, &st->out[st->n], iov[i].iov_base, take) < 0)
            break;
        total += take;
        if (take < iov[i].iov_len)
            break;
    }
    if (process(st) < 0)
        return -EPIPE;
    f = flush(st);
    if (f < 0 && f != -EAGAIN)
        return f;
    if (!total && want)
        return -EAGAIN;
    return (ssize_t)total;
}

void nd_stream_event(struct nd_stream *st)
{
    if (flush(st) == 0 && process(st) == 0)
        flush(st);
}

uint32_t nd_stream_pending_net(const struct nd_stream *st)
{
    return used(st->out[0]);
}

uint32_t nd_stream_pending_out(const struct nd_stream *st)
{
    uint32_t n = 0;
    unsigned k;

    for (k = 0; k <= st->n; k++)
        n += used(st->out[k]);
    return n;
}

bool nd_stream_finish(struct nd_stream *st)
{
    struct nodus_ctx ctx;

    if (st->failed || st->closed)
        return true;
    while (st->shut < st->n) {
        unsigned k = st->n - 1u - st->shut;
        const struct nodus_stream_ops *ops = layer_ops(st, k);

        if (process(st) < 0)
            return true;
        if (used(st->out[k + 1]))
            break; /* the layer still has bytes written before: its last words come after */
        st->shut++;
        if (ops->shutdown) {
            layer_ctx(st, k, &ctx);
            ops->shutdown((struct nodus_stream *)&st->layer[k], &ctx);
        }
    }
    if (process(st) < 0 || flush(st) < 0)
        return st->failed;
    return st->shut == st->n && !used(st->out[0]);
}

/* ---- deadlines ------------------------------------------------------------------------------- */

static void deadline_arm(struct nd_stream *st)
{
    struct nd_wheel *wh = &st_w(st)->wheel;
    uint64_t first = 0;
    unsigned k;

    for (k = 0; k < st->n; k++)
        if (st->layer[k].deadline && (!first || st->layer[k].deadline < first))
            first = st->layer[k].deadline;
    if (!first)
        nd_timer_cancel(wh, &st->deadline);
    else
        nd_timer_arm(wh, &st->deadline, first > wh->now ? first - wh->now : 1);
}

/* A layer's deadline passed: its timeout hook, then the owner finds the stream failed (its read
 * says -ECONNRESET) and closes the connection. */
static void deadline_cb(struct nd_timer *tm)
{
    struct nd_stream *st = container_of(tm, struct nd_stream, deadline);
    struct nd_worker *w = st_w(st);
    struct nodus_ctx ctx;
    bool expired = false;
    unsigned k;

    for (k = 0; k < st->n; k++) {
        const struct nodus_stream_ops *ops = layer_ops(st, k);

        if (!st->layer[k].deadline || st->layer[k].deadline > w->wheel.now)
            continue;
        st->layer[k].deadline = 0;
        expired = true;
        if (ops->timeout) {
            layer_ctx(st, k, &ctx);
            ops->timeout((struct nodus_stream *)&st->layer[k], &ctx);
        }
    }
    if (!expired || st->failed) {
        deadline_arm(st);
        return;
    }
    st->failed = true;
    nd_metrics_count(w->id, ND_C_STREAM_TIMEOUTS, 1);
    st->conn->cb(st->conn, ND_EV_READ | ND_EV_ERROR); /* may free st */
}

/* ---- life cycle ------------------------------------------------------------------------------ */

int nd_stream_open_defs(struct nd_worker *w, struct nd_conn *c, const struct nd_stream_def *defs,
                        unsigned n, size_t scratch_len, const struct nd_stream_peer *peer)
{
    struct nd_stream *st;
    struct nodus_ctx ctx;
    unsigned i;

    if (!n || n > ND_STREAM_MAX_LAYERS || scratch_len > ND_SCRATCH)
        return -1;
    if ((st = w->free_streams))
        w->free_streams = st->next;
    else if (!(st = malloc(sizeof(*st) + ND_SCRATCH)))
        return -1;
    memset(st, 0, sizeof(*st));
    memset(st->scratch, 0, scratch_len);
    st->conn = c;
    st->peer = *peer;
    st->deadline.cb = deadline_cb;
    for (i = 0; i < n; i++)
        st->layer[i] = (struct nd_stream_layer){st, (uint8_t)i, defs[i]};
    st->n = (uint8_t)n;
    c->st = st;
    for (i = 0; i < st->n; i++) {
        const struct nodus_stream_ops *ops = layer_ops(st, i);

        if (!ops->connect)
            continue;
        layer_ctx(st, i, &ctx);
        if (ops->connect((struct nodus_stream *)&st->layer[i], &ctx) != NODUS_CONTINUE)
            return -1;
    }
    return 0;
}

int nd_stream_open(struct nd_worker *w, struct nd_session *s, struct nd_conn *c)
{
    const struct nd_listener_conf *lc = s->lc;
    struct nd_stream_def defs[ND_STREAM_MAX_LAYERS];
    struct nd_stream_peer peer = {s->peer, s->peer_len, s->principal, &s->principal_len,
                                  sizeof(s->principal)};
    unsigned i, n = 0;

    for (i = 0; i < lc->nplugins && n < ND_STREAM_MAX_LAYERS; i++) {
        const struct nd_plugin_inst *pi = &lc->plugins[i];

        if (!pi->p->stream)
            continue;
        defs[n++] = (struct nd_stream_def){pi->p->stream, pi->p->name, pi->conf,
                                           s->snap->wrt[w->id].pstate[lc->id * ND_MAX_CHAIN + i],
                                           pi->txn_off};
    }
    if (!n)
        return 0;
    return nd_stream_open_defs(w, c, defs, n, lc->txn_size, &peer);
}

void nd_stream_close(struct nd_worker *w, struct nd_conn *c)
{
    struct nd_stream *st = c->st;
    struct nodus_ctx ctx;
    unsigned k;

    if (!st)
        return;
    nd_timer_cancel(&w->wheel, &st->deadline);
    if (!st->closed) {
        if (c->fd >= 0)
            nd_stream_finish(st); /* the layers' last words (close_notify), if the network
                                     takes them now */
        st->closed = true;
        for (k = 0; k < st->n; k++) {
            const struct nodus_stream_ops *ops = layer_ops(st, k);

            if (ops->close) {
                layer_ctx(st, k, &ctx);
                ops->close((struct nodus_stream *)&st->layer[k], &ctx);
            }
        }
    }
    for (k = 0; k <= st->n; k++) {
        nd_buf_put(&w->sbufs, st->in[k]);
        nd_buf_put(&w->sbufs, st->out[k]);
    }
    c->st = NULL;
    st->next = w->free_streams;
    w->free_streams = st;
}

void nd_worker_stream_fini(struct nd_worker *w)
{
    struct nd_stream *st;

    while ((st = w->free_streams)) {
        w->free_streams = st->next;
        free(st);
    }
    nd_buf_pool_fini(&w->sbufs);
}

/* ---- the plugin ABI ----------------------------------------------------------------------------
 */

#define LAYER(h) ((struct nd_stream_layer *)(h))

int nodus_stream_push_in(struct nodus_stream *h, const char *data, size_t len)
{
    struct nd_stream *st = LAYER(h)->st;

    if (append(st_w(st), &st->in[LAYER(h)->k + 1], data, len) < 0) {
        nd_warn("stream plugin %s pushed more than the layer can hold", LAYER(h)->def.name);
        return -1;
    }
    return 0;
}

int nodus_stream_push_out(struct nodus_stream *h, const char *data, size_t len)
{
    struct nd_stream *st = LAYER(h)->st;

    if (append(st_w(st), &st->out[LAYER(h)->k], data, len) < 0) {
        nd_warn("stream plugin %s pushed more than the layer can hold", LAYER(h)->def.name);
        return -1;
    }
    return 0;
}

struct nodus_slice nodus_stream_peer_addr(struct nodus_stream *h)
{
    const struct nd_stream *st = LAYER(h)->st;

    return (struct nodus_slice){st->peer.addr, st->peer.addr_len};
}

int nodus_stream_set_peer_principal(struct nodus_stream *h, const char *id, size_t len)
{
    const struct nd_stream_peer *p = &LAYER(h)->st->peer;

    if (!p->principal || len >= p->principal_cap)
        return -1;
    memcpy(p->principal, id, len);
    p->principal[len] = 0;
    *p->principal_len = (uint16_t)len;
    return 0;
}

int nodus_stream_set_deadline(struct nodus_stream *h, uint32_t ms)
{
    struct nd_stream *st = LAYER(h)->st;

    if (ms > 3600u * 1000)
        return -1;
    LAYER(h)->deadline = ms ? st_w(st)->wheel.now + ms : 0;
    if (!st->closed)
        deadline_arm(st);
    return 0;
}
