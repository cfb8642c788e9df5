/*
 * TCP engine: the stack (pools, connection table, listeners), the application API, timers and
 * deferred event delivery. Segment processing is in tcp_in.c, segment building in tcp_out.c,
 * congestion control in tcp_cc.c.
 */
#include "tcp_int.h"
#include "tcp_hash.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

void nd_tcp_config_defaults(struct nd_tcp_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_conns = 1024;
    cfg->max_listeners = 16;
    cfg->max_segs = 16384;
    cfg->max_chunks = 4096;
    cfg->mss = 1460;
    cfg->rcvbuf = 256 * 1024;
    cfg->sndbuf = 256 * 1024;
    cfg->timestamps = cfg->sack = cfg->wscale = true;
    cfg->cc = ND_TCP_CC_CUBIC;
    cfg->rto_init = 1000;
    cfg->rto_min = 200;
    cfg->rto_max = 60000;
    cfg->loss_probe = true;
    cfg->delack = 40;
    cfg->msl = 30000;
    cfg->fin_wait2 = 60000;
    cfg->keep_idle = 7200 * 1000;
    cfg->keep_intvl = 75 * 1000;
    cfg->keep_cnt = 9;
    cfg->syn_retries = 6;
    cfg->retries = 15;
    cfg->challenge_ack_limit = 1000;
    cfg->syncookies = 1;
}

/* ---- deferred delivery ---- */

void tcp_enter(struct nd_tcp_stack *s)
{
    s->depth++;
}

static void conn_put_free(struct nd_tcp_stack *s, struct nd_tcp_conn *c)
{
    for (struct nd_tcp_conn **pp = &s->acks; c->ack_listed && *pp; pp = &(*pp)->ack_next)
        if (*pp == c) { /* a block recycled within a batch (TIME_WAIT under pool pressure) */
            *pp = c->ack_next;
            break;
        }
    tcp_segq_drop(s, &c->rcvq);
    tcp_segq_drop(s, &c->ooq);
    tcp_segq_drop(s, &c->sndq);
    c->txc.seg = NULL;
    memset(c, 0, sizeof(*c));
    c->lnext = s->free_conns;
    s->free_conns = c;
    s->nconns_used--;
}

void tcp_leave(struct nd_tcp_stack *s)
{
    if (--s->depth || s->flushing)
        return;
    s->flushing = true;
    s->depth++;
    for (;;) {
        struct nd_tcp_listener *l = s->lnotify;
        struct nd_tcp_conn *c = s->notify_head;
        unsigned ev;

        if (l) {
            s->lnotify = l->nnext;
            l->in_notify = false;
            if (l->used && l->cb && l->qlen)
                l->cb(l, l->udata);
            continue;
        }
        if (!c)
            break;
        s->notify_head = c->nnext;
        if (!s->notify_head)
            s->notify_tail = NULL;
        c->in_notify = false;
        if (c->zombie || !c->app_ref || !c->cb)
            continue; /* kept in c->ev until a callback is set (accept) */
        ev = c->ev;
        c->ev = 0;
        if (ev)
            c->cb(c, ev, c->udata);
    }
    while (s->reap) {
        struct nd_tcp_conn *c = s->reap;

        s->reap = c->lnext;
        conn_put_free(s, c);
    }
    s->depth--;
    s->flushing = false;
}

void tcp_notify(struct nd_tcp_conn *c, unsigned ev)
{
    struct nd_tcp_stack *s = c->s;

    c->ev |= ev;
    if (c->in_notify)
        return;
    c->in_notify = true;
    c->nnext = NULL;
    if (s->notify_tail)
        s->notify_tail->nnext = c;
    else
        s->notify_head = c;
    s->notify_tail = c;
}

void tcp_listener_notify(struct nd_tcp_listener *l)
{
    if (l->in_notify)
        return;
    l->in_notify = true;
    l->nnext = l->s->lnotify;
    l->s->lnotify = l;
}

/* ---- pools ---- */

struct nd_tcp_seg *tcp_seg_get(struct nd_tcp_stack *s)
{
    struct nd_tcp_seg *g = s->free_segs;

    if (!g)
        return NULL;
    s->free_segs = g->next;
    s->nsegs_free--;
    memset(g, 0, sizeof(*g));
    return g;
}

void tcp_seg_put(struct nd_tcp_stack *s, struct nd_tcp_seg *g)
{
    if (g->zc)
        s->zc_segs--;
    if (g->chunk) {
        g->chunk->next = s->free_chunks;
        s->free_chunks = g->chunk;
        s->nchunks_free++;
    } else if (g->pkt && s->cfg.pkt_ops) {
        s->cfg.pkt_ops->unref(g->pkt);
    }
    g->next = s->free_segs;
    s->free_segs = g;
    s->nsegs_free++;
}

struct nd_tcp_chunk *tcp_chunk_get(struct nd_tcp_stack *s)
{
    struct nd_tcp_chunk *k = s->free_chunks;

    if (!k)
        return NULL;
    s->free_chunks = k->next;
    s->nchunks_free--;
    return k;
}

void tcp_segq_drop(struct nd_tcp_stack *s, struct nd_tcp_segq *q)
{
    struct nd_tcp_seg *g = q->head, *n;

    for (; g; g = n) {
        n = g->next;
        tcp_seg_put(s, g);
    }
    memset(q, 0, sizeof(*q));
}

/* ---- connection table ---- */

static uint32_t flow_bucket(const struct nd_tcp_stack *s, const struct nd_tcp_flow *f)
{
    /* cheap keyed mix (murmur3 finalizer); the key stops remote hash flooding of one chain */
    uint32_t h = f->laddr * 0x9e3779b1u ^ f->raddr * 0x85ebca77u ^
                 ((uint32_t)f->lport << 16 | f->rport) * 0xc2b2ae3du;

    h ^= (uint32_t)s->cfg.secret[0] | (uint32_t)s->cfg.secret[1] << 8 |
         (uint32_t)s->cfg.secret[2] << 16 | (uint32_t)s->cfg.secret[3] << 24;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h & s->hmask;
}

static bool flow_eq(const struct nd_tcp_flow *a, const struct nd_tcp_flow *b)
{
    return a->laddr == b->laddr && a->raddr == b->raddr && a->lport == b->lport &&
           a->rport == b->rport;
}

struct nd_tcp_conn *tcp_lookup(struct nd_tcp_stack *s, const struct nd_tcp_flow *f)
{
    struct nd_tcp_conn *c = s->htab[flow_bucket(s, f)];

    for (; c; c = c->hnext)
        if (flow_eq(&c->flow, f))
            return c;
    return NULL;
}

static void unhash(struct nd_tcp_conn *c)
{
    struct nd_tcp_conn **pp;

    if (!c->hashed)
        return;
    for (pp = &c->s->htab[c->hash]; *pp; pp = &(*pp)->hnext)
        if (*pp == c) {
            *pp = c->hnext;
            break;
        }
    c->hashed = false;
}

static void rxt_fire(struct nd_timer *t);
static void dack_fire(struct nd_timer *t);
static void keep_fire(struct nd_timer *t);

static void tw_unlink(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;

    if (!c->in_tw)
        return;
    if (c->tw_prev)
        c->tw_prev->tw_next = c->tw_next;
    else
        s->tw_head = c->tw_next;
    if (c->tw_next)
        c->tw_next->tw_prev = c->tw_prev;
    else
        s->tw_tail = c->tw_prev;
    c->tw_next = c->tw_prev = NULL;
    c->in_tw = false;
}

static struct nd_tcp_conn *tw_victim(struct nd_tcp_stack *s)
{
    struct nd_tcp_conn *c;

    for (c = s->tw_head; c; c = c->tw_next)
        if (!c->app_ref && !c->in_notify && !c->zombie)
            return c;
    return NULL;
}

bool tcp_conn_available(struct nd_tcp_stack *s)
{
    return s->free_conns || tw_victim(s);
}

struct nd_tcp_conn *tcp_conn_alloc(struct nd_tcp_stack *s, const struct nd_tcp_flow *f)
{
    struct nd_tcp_conn *c = s->free_conns;

    if (!c) {
        struct nd_tcp_conn *v = tw_victim(s);

        if (!v)
            return NULL;
        s->st.tw_recycled++;
        tw_unlink(v);
        nd_timer_cancel(s->wheel, &v->t_rxt);
        nd_timer_cancel(s->wheel, &v->t_dack);
        nd_timer_cancel(s->wheel, &v->t_keep);
        unhash(v);
        conn_put_free(s, v);
        c = s->free_conns;
    }
    s->free_conns = c->lnext;
    s->nconns_used++;
    memset(c, 0, sizeof(*c));
    c->s = s;
    c->flow = *f;
    c->hash = flow_bucket(s, f);
    c->hnext = s->htab[c->hash];
    s->htab[c->hash] = c;
    c->hashed = true;
    c->t_rxt.cb = rxt_fire;
    c->t_dack.cb = dack_fire;
    c->t_keep.cb = keep_fire;
    c->nodelay = !s->cfg.nagle;
    return c;
}

void tcp_conn_init_params(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;

    c->rto = s->cfg.rto_init;
    c->peer_mss = 536;
    c->snd_mss = 536;
    c->rcv_mss = 536 < s->cfg.mss ? 536 : s->cfg.mss;
    c->rcv_wscale = 0;
    c->ts_off = nd_tcp_flow_hash(s->cfg.secret, &c->flow, 0x7157a);
    c->last_rcv = tcp_now(s);
    tcp_cc_init(c);
}

struct nd_tcp_listener *tcp_listener_find(struct nd_tcp_stack *s, uint32_t addr, uint16_t port)
{
    struct nd_tcp_listener *any = NULL;
    uint32_t i;

    for (i = 0; i < s->cfg.max_listeners; i++) {
        struct nd_tcp_listener *l = &s->lis[i];

        if (!l->used || l->port != port)
            continue;
        if (l->addr == addr)
            return l;
        if (l->addr == 0)
            any = l;
    }
    return any;
}

static void acceptq_remove(struct nd_tcp_conn *c)
{
    struct nd_tcp_listener *l = c->l;
    struct nd_tcp_conn **pp, *prev = NULL;

    if (!l)
        return;
    if (c->in_acceptq) {
        for (pp = &l->qhead; *pp; prev = *pp, pp = &(*pp)->lnext)
            if (*pp == c) {
                *pp = c->lnext;
                if (l->qtail == c)
                    l->qtail = prev;
                break;
            }
        l->qlen--;
        c->in_acceptq = false;
    } else {
        l->half_open--;
    }
    c->l = NULL;
}

static void conn_free(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;

    if (c->zombie)
        return;
    nd_timer_cancel(s->wheel, &c->t_rxt);
    nd_timer_cancel(s->wheel, &c->t_dack);
    nd_timer_cancel(s->wheel, &c->t_keep);
    unhash(c);
    acceptq_remove(c);
    c->zombie = true;
    c->lnext = s->reap;
    s->reap = c;
}

void tcp_set_state(struct nd_tcp_conn *c, enum nd_tcp_state st)
{
    c->state = st;
}

void tcp_set_closed(struct nd_tcp_conn *c, int err)
{
    struct nd_tcp_stack *s = c->s;
    bool was_open = c->state != ND_TCP_CLOSED;

    nd_timer_cancel(s->wheel, &c->t_rxt);
    nd_timer_cancel(s->wheel, &c->t_dack);
    nd_timer_cancel(s->wheel, &c->t_keep);
    tcp_segq_drop(s, &c->sndq);
    c->txc.seg = NULL;
    tcp_segq_drop(s, &c->ooq);
    if (err)
        tcp_segq_drop(s, &c->rcvq);
    unhash(c);
    tw_unlink(c);
    c->state = ND_TCP_CLOSED;
    if (err && !c->error)
        c->error = err;
    if (c->l)
        acceptq_remove(c); /* never handed out: nobody else holds it */
    if (!c->app_ref) {
        conn_free(c);
        return;
    }
    if (was_open && !c->closed_told) {
        c->closed_told = true;
        tcp_notify(c, ND_TCP_EV_CLOSED | ND_TCP_EV_READ | ND_TCP_EV_WRITE);
    }
}

void tcp_enter_time_wait(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;

    c->state = ND_TCP_TIME_WAIT;
    nd_timer_cancel(s->wheel, &c->t_rxt);
    nd_timer_cancel(s->wheel, &c->t_dack);
    tcp_segq_drop(s, &c->sndq);
    c->txc.seg = NULL;
    tcp_segq_drop(s, &c->ooq);
    nd_timer_arm(s->wheel, &c->t_keep, 2ull * s->cfg.msl);
    if (!c->in_tw) {
        c->in_tw = true;
        c->tw_next = NULL;
        c->tw_prev = s->tw_tail;
        if (s->tw_tail)
            s->tw_tail->tw_next = c;
        else
            s->tw_head = c;
        s->tw_tail = c;
    }
    if (c->app_ref && !c->closed_told) {
        c->closed_told = true;
        tcp_notify(c, ND_TCP_EV_CLOSED | ND_TCP_EV_READ);
    }
}

/* SYN_RCVD or SYN_SENT -> ESTABLISHED. */
void tcp_established(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;

    c->state = ND_TCP_ESTABLISHED;
    if (c->retries && !c->srtt_us) {
        /* the SYN timed out and nothing was measured: start data at 3 s (RFC 6298 5.7) */
        c->rto = s->cfg.rto_max < 3000 ? s->cfg.rto_max : 3000;
        c->backoff = 0;
    }
    c->retries = 0;
    c->last_rcv = tcp_now(s);
    tcp_keep_arm(c);
    if (c->l) {
        struct nd_tcp_listener *l = c->l;

        l->half_open--;
        c->in_acceptq = true;
        c->lnext = NULL;
        if (l->qtail)
            l->qtail->lnext = c;
        else
            l->qhead = c;
        l->qtail = c;
        l->qlen++;
        tcp_listener_notify(l);
        s->st.passive_opens++;
    } else {
        tcp_notify(c, ND_TCP_EV_CONNECTED | ND_TCP_EV_WRITE);
    }
}

uint32_t tcp_rcv_space(const struct nd_tcp_conn *c)
{
    uint32_t used = c->rcvq.bytes + c->ooq.bytes, buf = c->s->cfg.rcvbuf;

    return used >= buf ? 0 : buf - used;
}

/* ---- timers ---- */

/* The probe timeout (RFC 8985 7.2): two smoothed RTTs, plus the worst-case delayed ACK when a
 * single segment is in flight (one segment draws no immediate ACK: Linux delays it 40 to 200 ms);
 * the caller takes the RTO instead when it comes first. Two bounds below it, so that an ACK that
 * is late but not lost draws no probe: SRTT + 4 RTTVAR, the RFC 6298 RTO before its 200 ms
 * floor (where ACK times jitter, as with a busy core at either end, that is when one is late),
 * and ND_TCP_PTO_MIN ms, the TLP draft's max(2 SRTT, 10 ms) (a round trip of 0.1 ms on a veth
 * would otherwise probe after the first 1 ms hiccup of a poll loop). */
static uint32_t pto(const struct nd_tcp_conn *c)
{
    uint64_t two = 2ull * c->srtt_us, var = c->srtt_us + 4ull * c->rttvar_us;
    uint64_t t = ((two > var ? two : var) + 999) / 1000;

    if (t < ND_TCP_PTO_MIN)
        t = ND_TCP_PTO_MIN;
    if (c->snd_max - c->snd_una <= tcp_seg_payload(c))
        t += ND_TCP_PTO_DELACK;
    return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

static bool probe_ok(const struct nd_tcp_conn *c)
{
    return tcp_state_sends(c->state) && c->s->cfg.loss_probe && c->sack_ok && !c->persist &&
           c->srtt_us && c->probes < ND_TCP_PTO_MAX && c->snd_una != c->snd_max;
}

/* What t_rxt should be set to: the probe timeout when one applies and is the shorter (*probe
 * set), else the RTO. */
static uint64_t rxt_delay(const struct nd_tcp_conn *c, bool *probe)
{
    uint64_t t = c->rto < c->s->cfg.rto_max ? c->rto : c->s->cfg.rto_max;
    uint32_t p;

    *probe = probe_ok(c) && (p = pto(c)) < t;
    return *probe ? p : t;
}

void tcp_rxt_arm(struct nd_tcp_conn *c)
{
    bool probe;
    uint64_t t = rxt_delay(c, &probe);

    c->pto = probe;
    nd_timer_arm(c->s->wheel, &c->t_rxt, t);
}

void tcp_pto_restart(struct nd_tcp_conn *c)
{
    bool probe;
    uint64_t t = rxt_delay(c, &probe);

    if (!c->pto && !probe)
        return; /* never restarts a plain RTO (RFC 6298 5.1) */
    c->pto = probe;
    nd_timer_arm(c->s->wheel, &c->t_rxt, t);
}

void tcp_keep_arm(struct nd_tcp_conn *c)
{
    if (c->keepalive && (c->state == ND_TCP_ESTABLISHED || c->state == ND_TCP_CLOSE_WAIT))
        nd_timer_arm(c->s->wheel, &c->t_keep, c->s->cfg.keep_idle);
}

static void backoff(struct nd_tcp_conn *c)
{
    uint32_t max = c->s->cfg.rto_max;

    if (c->backoff < 30)
        c->backoff++;
    c->rto = c->rto >= max / 2 ? max : c->rto * 2;
}

static void rxt_timeout(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;

    switch (c->state) {
    case ND_TCP_SYN_SENT:
    case ND_TCP_SYN_RCVD:
        if (++c->retries > s->cfg.syn_retries) {
            s->st.conn_timeouts++;
            tcp_set_closed(c, ETIMEDOUT);
            return;
        }
        backoff(c);
        c->snd_nxt = c->iss;
        c->rtt_timing = false;
        c->retransmits++;
        s->st.retransmits++;
        tcp_send_syn(c);
        tcp_rxt_arm(c);
        return;
    default:
        if (!tcp_state_sends(c->state))
            return;
        break;
    }
    if (c->persist && c->snd_wnd) {
        /* a window too small for the sender's SWS rule: send what fits */
        c->persist = false;
        c->force = true;
        tcp_output(c);
        c->force = false;
        if (c->snd_una != c->snd_max && !nd_timer_armed(&c->t_rxt))
            tcp_rxt_arm(c);
        return;
    }
    if (c->persist) {
        /* zero window: probe and back off; never give up while the peer answers, unless the
         * application is gone (an orphan cannot wait forever) */
        if (!c->app_ref && ++c->retries > s->cfg.retries) {
            s->st.conn_timeouts++;
            tcp_send_rst(c);
            tcp_set_closed(c, ETIMEDOUT);
            return;
        }
        s->st.persist_probes++;
        tcp_send_probe(c, true);
        backoff(c);
        tcp_rxt_arm(c);
        return;
    }
    if (c->snd_una == c->snd_max)
        return;
    if (c->pto) {
        tcp_loss_probe(c);
        tcp_rxt_arm(c); /* another probe, or the RTO */
        return;
    }
    if (++c->retries > s->cfg.retries) {
        s->st.conn_timeouts++;
        tcp_set_closed(c, ETIMEDOUT);
        return;
    }
    s->st.rto_expiries++;
    c->rto_expiries++;
    tcp_cc_loss(c, true);
    c->in_recovery = false;
    if (c->backoff) {
        /* a second timeout in a row: maybe the receiver reneged; forget its SACKs (RFC 2018 8) */
        c->nsb = 0;
        c->sacked = 0;
        c->high_sack = c->lost_edge = c->snd_una;
    }
    c->dupacks = 0;
    c->tlp_open = false;     /* a D-SACK now could be for the go-back's duplicates */
    c->snd_nxt = c->snd_una; /* go back: resend from the first unacknowledged byte */
    c->rtt_timing = false;   /* Karn */
    c->recover = c->snd_max; /* no fast retransmit on the dupacks this go-back causes (RFC 6582) */
    backoff(c);
    tcp_output(c);
    tcp_rxt_arm(c);
}

static void rxt_fire(struct nd_timer *t)
{
    struct nd_tcp_conn *c = container_of(t, struct nd_tcp_conn, t_rxt);
    struct nd_tcp_stack *s = c->s;

    tcp_enter(s);
    rxt_timeout(c);
    tcp_leave(s);
}

static void dack_fire(struct nd_timer *t)
{
    struct nd_tcp_conn *c = container_of(t, struct nd_tcp_conn, t_dack);
    struct nd_tcp_stack *s = c->s;

    tcp_enter(s);
    if (c->state >= ND_TCP_SYN_RCVD && c->state != ND_TCP_TIME_WAIT)
        tcp_send_ack(c);
    tcp_leave(s);
}

static void keep_timeout(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;
    uint64_t idle;

    switch (c->state) {
    case ND_TCP_TIME_WAIT:
    case ND_TCP_FIN_WAIT_2:
        tcp_set_closed(c, 0);
        return;
    case ND_TCP_ESTABLISHED:
    case ND_TCP_CLOSE_WAIT:
        break;
    default:
        return;
    }
    if (!c->keepalive)
        return;
    idle = tcp_now(s) - c->last_rcv;
    if (c->snd_una != c->snd_max || (c->keep_probes == 0 && idle < s->cfg.keep_idle)) {
        uint64_t left = idle < s->cfg.keep_idle ? s->cfg.keep_idle - idle : s->cfg.keep_idle;

        c->keep_probes = 0;
        nd_timer_arm(s->wheel, &c->t_keep, left);
        return;
    }
    if (c->keep_probes >= s->cfg.keep_cnt) {
        s->st.conn_timeouts++;
        tcp_send_rst(c);
        tcp_set_closed(c, ETIMEDOUT);
        return;
    }
    c->keep_probes++;
    s->st.keepalive_probes++;
    tcp_send_probe(c, false);
    nd_timer_arm(s->wheel, &c->t_keep, s->cfg.keep_intvl);
}

static void keep_fire(struct nd_timer *t)
{
    struct nd_tcp_conn *c = container_of(t, struct nd_tcp_conn, t_keep);
    struct nd_tcp_stack *s = c->s;

    tcp_enter(s);
    keep_timeout(c);
    tcp_leave(s);
}

/* ---- stack ---- */

struct nd_tcp_stack *nd_tcp_stack_new(const struct nd_tcp_config *cfg, int *err)
{
    struct nd_tcp_stack *s;
    uint32_t i, hn;

    if (!cfg->tx || !cfg->max_conns || !cfg->max_segs || cfg->mss < 64 || cfg->mss > 65495 ||
        cfg->rcvbuf < 2 * cfg->mss || cfg->rcvbuf > (1u << 30) || cfg->sndbuf < cfg->mss ||
        !cfg->rto_min || cfg->rto_min > cfg->rto_max || !cfg->rto_init || !cfg->msl ||
        (cfg->conn_hash & (cfg->conn_hash - 1))) {
        *err = -EINVAL;
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    s->cfg = *cfg;
    if (!cfg->have_secret &&
        getrandom(s->cfg.secret, sizeof(s->cfg.secret), 0) != (ssize_t)sizeof(s->cfg.secret)) {
        free(s);
        *err = -EIO;
        return NULL;
    }
    hn = cfg->conn_hash;
    if (!hn)
        for (hn = 1; hn < 2 * cfg->max_conns; hn <<= 1)
            ;
    s->hmask = hn - 1;
    s->htab = calloc(hn, sizeof(*s->htab));
    s->conns = calloc(cfg->max_conns, sizeof(*s->conns));
    s->lis = calloc(cfg->max_listeners ? cfg->max_listeners : 1, sizeof(*s->lis));
    s->segs = calloc(cfg->max_segs, sizeof(*s->segs));
    s->chunks = cfg->max_chunks ? calloc(cfg->max_chunks, sizeof(*s->chunks)) : NULL;
    if (!s->htab || !s->conns || !s->lis || !s->segs || (cfg->max_chunks && !s->chunks)) {
        nd_tcp_stack_free(s);
        *err = -ENOMEM;
        return NULL;
    }
    for (i = cfg->max_conns; i-- > 0;) {
        s->conns[i].lnext = s->free_conns;
        s->free_conns = &s->conns[i];
    }
    for (i = cfg->max_segs; i-- > 0;) {
        s->segs[i].next = s->free_segs;
        s->free_segs = &s->segs[i];
    }
    s->nsegs_free = cfg->max_segs;
    for (i = cfg->max_chunks; i-- > 0;) {
        s->chunks[i].next = s->free_chunks;
        s->free_chunks = &s->chunks[i];
    }
    s->nchunks_free = cfg->max_chunks;
    for (i = 0; i < cfg->max_listeners; i++)
        s->lis[i].s = s;
    if (cfg->wheel) {
        s->wheel = cfg->wheel;
    } else {
        nd_wheel_init(&s->own_wheel, cfg->now_ms);
        s->wheel = &s->own_wheel;
    }
    /* the smallest window scale that lets the window cover rcvbuf (RFC 7323 2.3) */
    while (s->rcv_wscale < 14 && (cfg->rcvbuf >> s->rcv_wscale) > 65535)
        s->rcv_wscale++;
    return s;
}

void nd_tcp_stack_free(struct nd_tcp_stack *s)
{
    uint32_t i;

    if (!s)
        return;
    if (s->conns && s->wheel) {
        for (i = 0; i < s->cfg.max_conns; i++) {
            struct nd_tcp_conn *c = &s->conns[i];

            if (!c->s)
                continue;
            nd_timer_cancel(s->wheel, &c->t_rxt);
            nd_timer_cancel(s->wheel, &c->t_dack);
            nd_timer_cancel(s->wheel, &c->t_keep);
            tcp_segq_drop(s, &c->rcvq);
            tcp_segq_drop(s, &c->ooq);
            tcp_segq_drop(s, &c->sndq);
            c->txc.seg = NULL;
        }
    }
    free(s->htab);
    free(s->conns);
    free(s->lis);
    free(s->segs);
    free(s->chunks);
    free(s);
}

uint64_t nd_tcp_now(const struct nd_tcp_stack *s)
{
    return tcp_now(s);
}

unsigned nd_tcp_advance(struct nd_tcp_stack *s, uint64_t now_ms)
{
    unsigned n = 0;

    if (s->wheel != &s->own_wheel && !s->notify_head && !s->lnotify && !s->reap)
        return 0; /* nothing deferred (the common case of every poll) */
    tcp_enter(s);
    if (s->wheel == &s->own_wheel)
        n = nd_wheel_advance(s->wheel, now_ms);
    tcp_leave(s);
    return n;
}

void nd_tcp_batch_begin(struct nd_tcp_stack *s)
{
    tcp_enter(s);
    s->batch++;
}

void nd_tcp_batch_end(struct nd_tcp_stack *s)
{
    if (s->depth == 1 && s->batch == 1 && !s->acks && !s->notify_head && !s->lnotify && !s->reap) {
        s->depth = s->batch = 0; /* an empty burst: nothing deferred (every idle poll) */
        return;
    }
    if (!--s->batch)
        while (s->acks) {
            struct nd_tcp_conn *c = s->acks;

            s->acks = c->ack_next;
            c->ack_listed = false;
            /* not if a segment of ours carried it since, or the connection stopped receiving */
            if (c->ack_batch && (c->state == ND_TCP_ESTABLISHED || c->state == ND_TCP_FIN_WAIT_1 ||
                                 c->state == ND_TCP_FIN_WAIT_2))
                tcp_send_ack(c);
            c->ack_batch = false;
        }
    tcp_leave(s);
}

int nd_tcp_next_timer(const struct nd_tcp_stack *s)
{
    return nd_wheel_next(s->wheel);
}

const struct nd_tcp_stats *nd_tcp_stats(const struct nd_tcp_stack *s)
{
    return &s->st;
}

void nd_tcp_foreach(struct nd_tcp_stack *s, void (*fn)(const struct nd_tcp_conn *c, void *arg),
                    void *arg)
{
    uint32_t i;

    for (i = 0; i < s->cfg.max_conns; i++)
        if (s->conns[i].s && !s->conns[i].zombie)
            fn(&s->conns[i], arg);
}

unsigned nd_tcp_unacked_orphans(const struct nd_tcp_stack *s, bool data_only, uint64_t *bytes)
{
    unsigned n = 0;
    uint64_t b = 0;
    uint32_t i;

    for (i = 0; i < s->cfg.max_conns; i++) {
        const struct nd_tcp_conn *c = &s->conns[i];

        if (!c->s || c->zombie || c->app_ref || c->l || !c->fin_queued || c->fin_acked)
            continue;
        if ((!tcp_state_sends(c->state) && c->state != ND_TCP_SYN_RCVD) ||
            (data_only && !c->sndq.bytes))
            continue;
        n++;
        b += c->sndq.bytes;
    }
    if (bytes)
        *bytes = b;
    return n;
}

void nd_tcp_foreach_listener(struct nd_tcp_stack *s,
                             void (*fn)(const struct nd_tcp_listen_info *l, void *arg), void *arg)
{
    for (uint32_t i = 0; i < s->cfg.max_listeners; i++) {
        const struct nd_tcp_listener *l = &s->lis[i];
        struct nd_tcp_listen_info li = {.addr = l->addr,
                                        .port = l->port,
                                        .backlog = l->backlog,
                                        .queued = l->qlen,
                                        .half_open = l->half_open};

        if (l->used)
            fn(&li, arg);
    }
}

/* ---- listeners ---- */

struct nd_tcp_listener *nd_tcp_listen(struct nd_tcp_stack *s, uint32_t addr, uint16_t port,
                                      unsigned backlog, nd_tcp_listen_cb cb, void *udata, int *err)
{
    uint32_t i;

    if (!port || !backlog) {
        *err = -EINVAL;
        return NULL;
    }
    for (i = 0; i < s->cfg.max_listeners; i++)
        if (s->lis[i].used && s->lis[i].port == port && s->lis[i].addr == addr) {
            *err = -EADDRINUSE;
            return NULL;
        }
    for (i = 0; i < s->cfg.max_listeners; i++) {
        struct nd_tcp_listener *l = &s->lis[i];

        if (l->used)
            continue;
        memset(l, 0, sizeof(*l));
        l->s = s;
        l->used = true;
        l->addr = addr;
        l->port = port;
        l->backlog = backlog;
        l->cb = cb;
        l->udata = udata;
        return l;
    }
    *err = -ENOMEM;
    return NULL;
}

void nd_tcp_unlisten(struct nd_tcp_listener *l)
{
    struct nd_tcp_stack *s = l->s;
    uint32_t i;

    tcp_enter(s);
    for (i = 0; i < s->cfg.max_conns; i++) {
        struct nd_tcp_conn *c = &s->conns[i];

        if (c->s && !c->zombie && c->l == l) {
            tcp_send_rst(c);
            tcp_set_closed(c, ECONNABORTED);
        }
    }
    l->used = false;
    l->cb = NULL;
    tcp_leave(s);
}

struct nd_tcp_conn *nd_tcp_accept(struct nd_tcp_listener *l)
{
    struct nd_tcp_conn *c = l->qhead;

    if (!c)
        return NULL;
    acceptq_remove(c);
    c->app_ref = true;
    /* what happened while queued is reported once a callback is set */
    c->ev |= ND_TCP_EV_WRITE;
    if (c->rcvq.bytes || c->fin_rcvd)
        c->ev |= ND_TCP_EV_READ;
    return c;
}

/* ---- connections ---- */

struct nd_tcp_conn *nd_tcp_connect(struct nd_tcp_stack *s, const struct nd_tcp_flow *f,
                                   nd_tcp_conn_cb cb, void *udata, int *err)
{
    struct nd_tcp_conn *c;

    if (!f->lport || !f->rport || !f->raddr || !f->laddr) {
        *err = -EINVAL;
        return NULL;
    }
    tcp_enter(s);
    c = tcp_lookup(s, f);
    if (c) {
        /* a TIME_WAIT with timestamps can be reused: PAWS tells old duplicates apart */
        if (c->state != ND_TCP_TIME_WAIT || !c->ts_ok || c->app_ref) {
            tcp_leave(s);
            *err = -EADDRINUSE;
            return NULL;
        }
        s->st.tw_reused++;
        tcp_set_closed(c, 0);
    }
    c = tcp_conn_alloc(s, f);
    if (!c) {
        tcp_leave(s);
        *err = -ENOMEM;
        return NULL;
    }
    tcp_conn_init_params(c);
    c->app_ref = true;
    c->cb = cb;
    c->udata = udata;
    c->iss = nd_tcp_isn(s->cfg.secret, f, tcp_now(s));
    c->snd_una = c->snd_nxt = c->snd_max = c->iss;
    c->snd_base = c->iss + 1;
    c->state = ND_TCP_SYN_SENT;
    s->st.active_opens++;
    tcp_send_syn(c);
    tcp_rxt_arm(c);
    tcp_leave(s);
    return c;
}

void nd_tcp_set_cb(struct nd_tcp_conn *c, nd_tcp_conn_cb cb, void *udata)
{
    c->cb = cb;
    c->udata = udata;
    if (c->ev && cb) {
        tcp_enter(c->s);
        tcp_notify(c, 0);
        tcp_leave(c->s);
    }
}

void *nd_tcp_udata(const struct nd_tcp_conn *c)
{
    return c->udata;
}

static int send_check(struct nd_tcp_conn *c)
{
    if (c->error)
        return -c->error;
    if (c->fin_queued)
        return -EPIPE;
    switch (c->state) {
    case ND_TCP_SYN_SENT:
    case ND_TCP_SYN_RCVD:
    case ND_TCP_ESTABLISHED:
    case ND_TCP_CLOSE_WAIT:
        return 0;
    default:
        return -EPIPE;
    }
}

size_t nd_tcp_send_space(const struct nd_tcp_conn *c)
{
    uint32_t q = c->sndq.bytes, b = c->s->cfg.sndbuf;

    return q >= b ? 0 : b - q;
}

static void segq_append(struct nd_tcp_segq *q, struct nd_tcp_seg *g)
{
    g->next = NULL;
    if (q->tail)
        q->tail->next = g;
    else
        q->head = g;
    q->tail = g;
    q->bytes += g->len;
    q->n++;
}

static void send_queued(struct nd_tcp_conn *c)
{
    if (c->state == ND_TCP_ESTABLISHED || c->state == ND_TCP_CLOSE_WAIT)
        tcp_output(c);
}

/* Copies up to len bytes to the end of c's send queue: into the tail chunk while it has room,
 * then into new chunks. Returns the bytes copied (fewer when chunks or descriptors ran out). The
 * caller checks the send space and sends. */
static size_t sndq_copy(struct nd_tcp_conn *c, const uint8_t *p, size_t len)
{
    struct nd_tcp_stack *s = c->s;
    size_t done = 0;

    while (done < len) {
        struct nd_tcp_seg *t = c->sndq.tail;
        size_t n;

        if (t && t->chunk && t->data + t->len < t->chunk->data + ND_TCP_CHUNK) {
            uint8_t *end = (uint8_t *)(uintptr_t)(t->data + t->len);

            n = (size_t)(t->chunk->data + ND_TCP_CHUNK - end);
            if (n > len - done)
                n = len - done;
            memcpy(end, p + done, n);
            t->len += (uint32_t)n;
            c->sndq.bytes += (uint32_t)n;
        } else {
            struct nd_tcp_chunk *k;
            struct nd_tcp_seg *g;

            if (!s->free_chunks || !s->free_segs)
                break;
            k = tcp_chunk_get(s);
            g = tcp_seg_get(s);
            g->chunk = k;
            g->data = k->data;
            n = len - done < ND_TCP_CHUNK ? len - done : ND_TCP_CHUNK;
            memcpy(k->data, p + done, n);
            g->len = (uint32_t)n;
            segq_append(&c->sndq, g);
        }
        done += n;
    }
    return done;
}

ssize_t nd_tcp_sendv(struct nd_tcp_conn *c, const struct nd_tcp_piece *v, int n)
{
    struct nd_tcp_stack *s = c->s;
    size_t total = 0, space, want, done = 0;
    int rc = send_check(c);

    if (rc)
        return rc;
    for (int i = 0; i < n; i++)
        total += v[i].len;
    if (!total)
        return 0;
    space = nd_tcp_send_space(c);
    want = total < space ? total : space;
    for (int i = 0; i < n && done < want; i++) {
        size_t len = v[i].len < want - done ? v[i].len : want - done, k;

        k = sndq_copy(c, v[i].data, len);
        done += k;
        if (k < len)
            break; /* no chunk left */
    }
    if (done < want || done == 0 || nd_tcp_send_space(c) == 0)
        c->want_write = true;
    if (!done)
        return -EAGAIN;
    tcp_enter(s);
    send_queued(c);
    tcp_leave(s);
    return (ssize_t)done;
}

ssize_t nd_tcp_send(struct nd_tcp_conn *c, const void *data, size_t len)
{
    struct nd_tcp_piece p = {data, len < UINT32_MAX ? (uint32_t)len : UINT32_MAX, NULL};

    return nd_tcp_sendv(c, &p, 1);
}

ssize_t nd_tcp_send_zc(struct nd_tcp_conn *c, const uint8_t *data, size_t len, void *pkt)
{
    struct nd_tcp_stack *s = c->s;
    struct nd_tcp_seg *g;
    int rc = send_check(c);

    if (rc)
        return rc;
    if (!len)
        return 0;
    if (len > nd_tcp_send_space(c) || !pkt || !s->cfg.pkt_ops) {
        c->want_write = true;
        return pkt && s->cfg.pkt_ops ? -EAGAIN : -EINVAL;
    }
    g = tcp_seg_get(s);
    if (!g) {
        c->want_write = true;
        return -ENOMEM;
    }
    s->cfg.pkt_ops->ref(pkt);
    g->pkt = pkt;
    g->data = data;
    g->len = (uint32_t)len;
    g->zc = true;
    s->zc_segs++;
    segq_append(&c->sndq, g);
    tcp_enter(s);
    send_queued(c);
    tcp_leave(s);
    return (ssize_t)len;
}

/* Drops n bytes (at most what is queued) from the front of c's receive queue. */
static void rcvq_drop(struct nd_tcp_conn *c, size_t n)
{
    struct nd_tcp_stack *s = c->s;

    while (n && c->rcvq.head) {
        struct nd_tcp_seg *g = c->rcvq.head;

        if (n < g->len) {
            g->data += n;
            g->len -= (uint32_t)n;
            g->seq += (uint32_t)n;
            c->rcvq.bytes -= (uint32_t)n;
            break;
        }
        n -= g->len;
        c->rcvq.bytes -= g->len;
        c->rcvq.n--;
        c->rcvq.head = g->next;
        if (!c->rcvq.head)
            c->rcvq.tail = NULL;
        tcp_seg_put(s, g);
    }
}

/* After the application took received bytes: a window update when the advertised window has
 * fallen to half the buffer or less and can now at least double (as Linux does; receiver SWS
 * avoidance, RFC 9293 3.8.6.2.2). before: tcp_rcv_space() before it took them. */
static void rcv_taken(struct nd_tcp_conn *c, uint32_t before)
{
    struct nd_tcp_stack *s = c->s;
    uint32_t after = tcp_rcv_space(c), adv;

    if (after <= before || c->state < ND_TCP_ESTABLISHED || c->state == ND_TCP_TIME_WAIT)
        return;
    adv = nd_seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
    if (2 * adv <= s->cfg.rcvbuf && after >= 2 * adv && after >= c->snd_mss) {
        tcp_enter(s);
        tcp_send_ack(c);
        tcp_leave(s);
    }
}

ssize_t nd_tcp_splice(struct nd_tcp_conn *to, struct nd_tcp_conn *from, size_t len)
{
    struct nd_tcp_stack *s = to->s;
    size_t space, done = 0;
    uint32_t before;
    bool limited = false;
    int rc = send_check(to);

    if (rc)
        return rc;
    if (from->s != s)
        return -EINVAL;
    if (len > from->rcvq.bytes)
        len = from->rcvq.bytes;
    if (!len)
        return 0;
    space = nd_tcp_send_space(to);
    if (len > space)
        len = space;
    before = tcp_rcv_space(from);
    while (done < len) {
        struct nd_tcp_seg *g = from->rcvq.head;
        uint32_t n = g->len < len - done ? g->len : (uint32_t)(len - done);
        bool whole = n == g->len;

        if (n >= ND_TCP_SPLICE_COPY && (g->pkt || (g->chunk && whole)) &&
            !(g->pkt && s->cfg.max_zc_segs && s->zc_segs >= s->cfg.max_zc_segs)) {
            struct nd_tcp_seg *h = g;

            if (whole) { /* the descriptor changes queues, its reference with it */
                from->rcvq.head = g->next;
                if (!from->rcvq.head)
                    from->rcvq.tail = NULL;
                from->rcvq.bytes -= n;
                from->rcvq.n--;
            } else { /* the front of it is shared */
                if (!(h = tcp_seg_get(s)))
                    break;
                s->cfg.pkt_ops->ref(g->pkt);
                h->pkt = g->pkt;
                h->data = g->data;
                h->len = n;
                rcvq_drop(from, n);
            }
            if (h->pkt) {
                h->zc = true;
                s->zc_segs++;
            }
            segq_append(&to->sndq, h);
            s->st.splice_moved += n;
        } else {
            size_t k;

            limited |= g->pkt && n >= ND_TCP_SPLICE_COPY;
            k = sndq_copy(to, g->data, n);
            rcvq_drop(from, k);
            s->st.splice_copied += k;
            if (k < n) {
                done += k;
                break;
            }
        }
        done += n;
    }
    if (limited)
        s->st.splice_zc_limited++;
    if (done < len || nd_tcp_send_space(to) == 0)
        to->want_write = true;
    if (!done)
        return -EAGAIN;
    rcv_taken(from, before);
    tcp_enter(s);
    send_queued(to);
    tcp_leave(s);
    return (ssize_t)done;
}

int nd_tcp_recv_pieces(const struct nd_tcp_conn *c, struct nd_tcp_piece *out, int max)
{
    const struct nd_tcp_seg *g = c->rcvq.head;
    int n = 0;

    for (; g && n < max; g = g->next, n++) {
        out[n].data = g->data;
        out[n].len = g->len;
        out[n].pkt = g->pkt;
    }
    return n;
}

size_t nd_tcp_readable(const struct nd_tcp_conn *c)
{
    return c->rcvq.bytes;
}

bool nd_tcp_eof(const struct nd_tcp_conn *c)
{
    return c->fin_rcvd && c->rcvq.bytes == 0;
}

void nd_tcp_recv_consume(struct nd_tcp_conn *c, size_t n)
{
    uint32_t before = tcp_rcv_space(c);

    rcvq_drop(c, n);
    rcv_taken(c, before);
}

ssize_t nd_tcp_read(struct nd_tcp_conn *c, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t done = 0;
    struct nd_tcp_seg *g;

    for (g = c->rcvq.head; g && done < len; g = g->next) {
        size_t n = g->len < len - done ? g->len : len - done;

        memcpy(p + done, g->data, n);
        done += n;
    }
    if (done) {
        nd_tcp_recv_consume(c, done);
        return (ssize_t)done;
    }
    if (!len)
        return 0;
    if (c->error)
        return -c->error;
    if (c->fin_rcvd)
        return 0;
    return -EAGAIN;
}

void nd_tcp_shutdown(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;

    if (c->fin_queued)
        return;
    tcp_enter(s);
    switch (c->state) {
    case ND_TCP_SYN_SENT:
    case ND_TCP_SYN_RCVD:
        c->fin_queued = true; /* FIN_WAIT_1 once established */
        break;
    case ND_TCP_ESTABLISHED:
        c->fin_queued = true;
        c->state = ND_TCP_FIN_WAIT_1;
        tcp_output(c);
        break;
    case ND_TCP_CLOSE_WAIT:
        c->fin_queued = true;
        c->state = ND_TCP_LAST_ACK;
        tcp_output(c);
        break;
    default:
        break;
    }
    tcp_leave(s);
}

static void conn_abort(struct nd_tcp_conn *c)
{
    switch (c->state) {
    case ND_TCP_SYN_RCVD:
    case ND_TCP_ESTABLISHED:
    case ND_TCP_FIN_WAIT_1:
    case ND_TCP_FIN_WAIT_2:
    case ND_TCP_CLOSE_WAIT:
    case ND_TCP_CLOSING:
    case ND_TCP_LAST_ACK:
        tcp_send_rst(c);
        break;
    default:
        break;
    }
    c->app_ref = false;
    tcp_set_closed(c, ECONNABORTED);
}

void nd_tcp_abort(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;

    tcp_enter(s);
    conn_abort(c);
    tcp_leave(s);
}

void nd_tcp_close(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;

    tcp_enter(s);
    if (c->rcvq.bytes && c->state != ND_TCP_CLOSED) {
        conn_abort(c); /* unread data: tell the peer it was lost */
        tcp_leave(s);
        return;
    }
    if (c->state == ND_TCP_SYN_SENT || c->state == ND_TCP_CLOSED) {
        c->app_ref = false;
        tcp_set_closed(c, 0);
        tcp_leave(s);
        return;
    }
    c->app_ref = false;
    c->cb = NULL;
    if (!c->fin_queued) {
        c->fin_queued = true;
        if (c->state == ND_TCP_CLOSE_WAIT)
            c->state = ND_TCP_LAST_ACK;
        else if (c->state == ND_TCP_ESTABLISHED)
            c->state = ND_TCP_FIN_WAIT_1;
        tcp_output(c);
    }
    if (c->state == ND_TCP_FIN_WAIT_2)
        nd_timer_arm(s->wheel, &c->t_keep, s->cfg.fin_wait2);
    tcp_leave(s);
}

int nd_tcp_error(const struct nd_tcp_conn *c)
{
    return c->error;
}

enum nd_tcp_state nd_tcp_state(const struct nd_tcp_conn *c)
{
    return c->state;
}

const char *nd_tcp_state_name(enum nd_tcp_state st)
{
    static const char *const names[] = {
        "CLOSED",     "LISTEN",     "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1",
        "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING",  "LAST_ACK", "TIME_WAIT",
    };

    return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

void nd_tcp_set_nodelay(struct nd_tcp_conn *c, bool on)
{
    c->nodelay = on;
}

void nd_tcp_set_keepalive(struct nd_tcp_conn *c, bool on)
{
    c->keepalive = on;
    if (on)
        tcp_keep_arm(c);
    else if (c->state == ND_TCP_ESTABLISHED || c->state == ND_TCP_CLOSE_WAIT)
        nd_timer_cancel(c->s->wheel, &c->t_keep);
}

void nd_tcp_conn_info(const struct nd_tcp_conn *c, struct nd_tcp_info *o)
{
    memset(o, 0, sizeof(*o));
    o->state = c->state;
    o->flow = c->flow;
    o->snd_queued = c->sndq.bytes;
    o->snd_unacked = c->state == ND_TCP_CLOSED ? 0 : c->snd_max - c->snd_una;
    o->rcv_queued = c->rcvq.bytes;
    o->rcv_ooo = c->ooq.bytes;
    o->snd_wnd = c->snd_wnd;
    o->rcv_wnd = nd_seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
    o->srtt_us = c->srtt_us;
    o->rttvar_us = c->rttvar_us;
    o->rto_ms = c->rto;
    o->cwnd = c->cwnd;
    o->ssthresh = c->ssthresh;
    o->mss = c->snd_mss;
    o->retransmits = c->retransmits;
    o->rto_expiries = c->rto_expiries;
    o->fast_retransmits = c->fast_retransmits;
    o->bytes_sent = c->bytes_sent;
    o->bytes_acked = c->bytes_acked;
    o->bytes_received = c->bytes_received;
    o->snd_wscale = c->snd_wscale;
    o->rcv_wscale = c->rcv_wscale;
    o->timestamps = c->ts_ok;
    o->sack = c->sack_ok;
    o->in_recovery = c->in_recovery;
    o->error = c->error;
}
