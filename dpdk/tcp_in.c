/* TCP engine: segment arrival (RFC 9293 3.10.7), with RFC 7323, 5961, 2018, 6582 on top. */
#include "tcp_int.h"
#include "tcp_hash.h"

#include <errno.h>
#include <string.h>

#define PAWS_IDLE_MS (24ull * 24 * 3600 * 1000) /* TS.Recent is stale after 24 days */

struct seginfo {
    struct nd_tcp_hdr h;
    const uint8_t *data;
    uint32_t plen;
    void *pkt;
};

static uint32_t seg_len(const struct seginfo *si)
{
    return si->plen + !!(si->h.flags & ND_TCP_SYN) + !!(si->h.flags & ND_TCP_FIN);
}

/* The echoed timestamp gives an RTT sample if it is one we sent, in the last 10 minutes. */
static bool ts_rtt_ok(const struct nd_tcp_conn *c, const struct nd_tcp_hdr *h)
{
    return c->ts_ok && h->has_ts && h->tsecr && (uint32_t)(tcp_tsval(c) - h->tsecr) < 600000;
}

static void negotiate(struct nd_tcp_conn *c, const struct nd_tcp_hdr *h)
{
    const struct nd_tcp_config *cfg = &c->s->cfg;
    uint32_t mss;

    c->peer_mss = h->has_mss ? h->mss : 536;
    mss = c->peer_mss < cfg->mss ? c->peer_mss : cfg->mss;
    c->snd_mss = mss < 64 ? 64 : mss;
    c->rcv_mss = 536 < cfg->mss ? 536 : cfg->mss;
    c->ws_ok = cfg->wscale && h->has_ws;
    c->snd_wscale = c->ws_ok ? (h->ws > 14 ? 14 : h->ws) : 0;
    c->rcv_wscale = c->ws_ok ? c->s->rcv_wscale : 0;
    c->sack_ok = cfg->sack && h->sack_perm;
    c->ts_ok = cfg->timestamps && h->has_ts;
    if (c->ts_ok) {
        c->ts_recent = h->tsval;
        c->ts_recent_age = tcp_now(c->s);
    }
    tcp_cc_init(c);
}

static void challenge_ack(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;
    uint64_t sec = tcp_now(s) / 1000;

    if (sec != s->chack_second) {
        s->chack_second = sec;
        s->chack_count = 0;
    }
    if (s->chack_count >= s->cfg.challenge_ack_limit) {
        s->st.challenge_acks_limited++;
        return;
    }
    s->chack_count++;
    s->st.challenge_acks++;
    tcp_send_ack(c);
}

/*
 * The ACK answering an invalid segment (out of window, PAWS): data segments always get it (the
 * sender needs it when our ACK was lost), pure ACKs at most every 500 ms per connection, so two
 * stacks that disagree cannot ACK each other forever (as Linux's tcp_invalid_ratelimit).
 */
#define OOW_ACK_MS 500

static void oow_ack(struct nd_tcp_conn *c, const struct seginfo *si)
{
    uint64_t now = tcp_now(c->s);

    if (!si->plen && !(si->h.flags & (ND_TCP_SYN | ND_TCP_FIN))) {
        if (c->oow_ack_at && now - c->oow_ack_at < OOW_ACK_MS) {
            c->s->st.oow_acks_limited++;
            return;
        }
        c->oow_ack_at = now;
    }
    tcp_send_ack(c);
}

/* ---- passive open ---- */

static void send_cookie_synack(struct nd_tcp_stack *s, const struct nd_tcp_flow *f,
                               const struct nd_tcp_hdr *h)
{
    struct nd_tcp_opts o;
    uint16_t mss;
    uint32_t isn;

    isn = nd_tcp_cookie_make(s->cfg.secret, f, h->seq, h->has_mss ? h->mss : 536, tcp_now(s), &mss);
    memset(&o, 0, sizeof(o));
    o.mss_on = true;
    o.mss = (uint16_t)s->cfg.mss;
    /* without timestamps there is nowhere to keep window scale and SACK: not offered */
    if (s->cfg.timestamps && h->has_ts) {
        bool ws = s->cfg.wscale && h->has_ws, sack = s->cfg.sack && h->sack_perm;
        uint32_t tsval = (uint32_t)tcp_now(s) + nd_tcp_flow_hash(s->cfg.secret, f, 0x7157a);

        o.ts_on = true;
        o.tsval = nd_tcp_cookie_ts(tsval, ws ? (h->ws > 14 ? 14 : h->ws) : 0xf, sack);
        o.tsecr = h->tsval;
        o.sack_perm = sack;
        if (ws) {
            o.ws_on = true;
            o.ws = s->rcv_wscale;
        }
    }
    s->st.syncookies_sent++;
    tcp_emit(s, f, isn, h->seq + 1, ND_TCP_SYN | ND_TCP_ACK,
             (uint16_t)(s->cfg.rcvbuf > 65535 ? 65535 : s->cfg.rcvbuf), &o, NULL, 0, 0, NULL);
}

static void conn_input(struct nd_tcp_conn *c, struct seginfo *si);

/* The ACK completing a cookie handshake: a connection straight into ESTABLISHED. */
static bool cookie_accept(struct nd_tcp_stack *s, struct nd_tcp_listener *l,
                          const struct nd_tcp_flow *f, struct seginfo *si)
{
    const struct nd_tcp_hdr *h = &si->h;
    struct nd_tcp_conn *c;
    uint16_t mss;

    mss = nd_tcp_cookie_check(s->cfg.secret, f, h->seq - 1, h->ack - 1, tcp_now(s));
    if (!mss) {
        s->st.syncookies_bad++;
        return false;
    }
    if (l->qlen >= l->backlog || !tcp_conn_available(s)) {
        s->st.drop_backlog++;
        return true; /* dropped: the peer retransmits its ACK or data */
    }
    c = tcp_conn_alloc(s, f);
    tcp_conn_init_params(c);
    c->l = l;
    l->half_open++;
    c->irs = h->seq - 1;
    c->rcv_nxt = c->last_ack_sent = h->seq;
    c->rcv_adv = h->seq + (s->cfg.rcvbuf > 65535 ? 65535 : s->cfg.rcvbuf); /* as in the SYN-ACK */
    c->iss = h->ack - 1;
    c->snd_una = c->snd_nxt = c->snd_max = c->snd_base = h->ack;
    c->recover = c->iss;
    c->peer_mss = mss;
    c->snd_mss = mss < s->cfg.mss ? mss : s->cfg.mss;
    c->rcv_mss = 536 < s->cfg.mss ? 536 : s->cfg.mss;
    if (s->cfg.timestamps && h->has_ts) {
        int ws, sack;

        nd_tcp_cookie_ts_decode(h->tsecr, &ws, &sack);
        c->ts_ok = true;
        c->ts_recent = h->tsval;
        c->ts_recent_age = tcp_now(s);
        c->ws_ok = s->cfg.wscale && ws != 0xf;
        c->snd_wscale = c->ws_ok ? (uint8_t)(ws > 14 ? 14 : ws) : 0;
        c->rcv_wscale = c->ws_ok ? s->rcv_wscale : 0;
        c->sack_ok = s->cfg.sack && sack;
    }
    c->snd_wnd = c->max_snd_wnd = (uint32_t)h->win << c->snd_wscale;
    c->snd_wl1 = h->seq;
    c->snd_wl2 = h->ack;
    tcp_cc_init(c);
    s->st.syncookies_ok++;
    tcp_established(c);
    conn_input(c, si); /* data or FIN riding on the ACK */
    return true;
}

static void listen_input(struct nd_tcp_stack *s, struct nd_tcp_listener *l,
                         const struct nd_tcp_flow *f, struct seginfo *si)
{
    const struct nd_tcp_hdr *h = &si->h;
    struct nd_tcp_conn *c;
    bool full;

    if (h->flags & ND_TCP_RST)
        return;
    if (h->flags & ND_TCP_ACK) {
        if (!(h->flags & ND_TCP_SYN) && s->cfg.syncookies && cookie_accept(s, l, f, si))
            return;
        s->st.drop_no_conn++;
        tcp_rst_for(s, f, h, seg_len(si));
        return;
    }
    if (!(h->flags & ND_TCP_SYN) || (h->flags & ND_TCP_FIN))
        return;
    full = l->half_open + l->qlen >= l->backlog || !tcp_conn_available(s);
    if (s->cfg.syncookies == 2 || (full && s->cfg.syncookies == 1)) {
        send_cookie_synack(s, f, h);
        return;
    }
    if (full) {
        if (!tcp_conn_available(s))
            s->st.drop_no_mem++;
        else
            s->st.drop_backlog++;
        return;
    }
    c = tcp_conn_alloc(s, f);
    tcp_conn_init_params(c);
    c->l = l;
    l->half_open++;
    c->state = ND_TCP_SYN_RCVD;
    c->irs = h->seq;
    c->rcv_nxt = c->rcv_adv = h->seq + 1;
    negotiate(c, h);
    c->snd_wnd = c->max_snd_wnd = h->win;
    c->snd_wl1 = h->seq;
    c->iss = nd_tcp_isn(s->cfg.secret, f, tcp_now(s));
    c->snd_una = c->snd_nxt = c->snd_max = c->iss;
    c->snd_wl2 = c->iss;
    c->snd_base = c->iss + 1;
    c->recover = c->iss;
    /* payload on a SYN is not queued: it comes again after the handshake */
    tcp_send_syn(c);
    tcp_rxt_arm(c);
}

/* RFC 6191: a SYN may reopen a TIME_WAIT connection if it is provably new. */
static bool tw_reusable(const struct nd_tcp_conn *c, const struct nd_tcp_hdr *h)
{
    if (c->ts_ok && h->has_ts)
        return nd_seq_gt(h->tsval, c->ts_recent);
    return nd_seq_gt(h->seq, c->rcv_nxt);
}

/* ---- active open ---- */

static void syn_sent_input(struct nd_tcp_conn *c, struct seginfo *si)
{
    struct nd_tcp_stack *s = c->s;
    const struct nd_tcp_hdr *h = &si->h;

    if (h->flags & ND_TCP_ACK) {
        if (nd_seq_leq(h->ack, c->iss) || nd_seq_gt(h->ack, c->snd_max)) {
            tcp_rst_for(s, &c->flow, h, seg_len(si));
            return;
        }
    }
    if (h->flags & ND_TCP_RST) {
        if (h->flags & ND_TCP_ACK) {
            s->st.rst_rcvd++;
            tcp_set_closed(c, ECONNREFUSED);
        }
        return;
    }
    if (!(h->flags & ND_TCP_SYN))
        return;
    c->irs = h->seq;
    c->rcv_nxt = c->rcv_adv = h->seq + 1;
    negotiate(c, h);
    c->snd_wnd = c->max_snd_wnd = h->win; /* never scaled on a SYN */
    c->snd_wl1 = h->seq;
    c->recover = c->iss;
    if (!(h->flags & ND_TCP_ACK)) {
        /* simultaneous open: answer with SYN-ACK, same ISN */
        c->state = ND_TCP_SYN_RCVD;
        c->snd_nxt = c->iss;
        tcp_send_syn(c);
        tcp_rxt_arm(c);
        return;
    }
    c->snd_una = h->ack;
    c->snd_wl2 = h->ack;
    if (ts_rtt_ok(c, h) && c->retries == 0)
        tcp_rtt_sample(c, tcp_tsval(c) - h->tsecr);
    else if (c->rtt_timing && c->retries == 0)
        tcp_rtt_sample(c, (uint32_t)(tcp_now(s) - c->rtt_start));
    c->rtt_timing = false;
    nd_timer_cancel(s->wheel, &c->t_rxt);
    tcp_established(c);
    c->ack_now = true;
    if (c->fin_queued)
        c->state = ND_TCP_FIN_WAIT_1;
    tcp_output(c);
}

/* ---- sender side: ACK processing ---- */

static void sb_trim(struct nd_tcp_conn *c)
{
    unsigned i, j = 0;

    c->sacked = 0;
    for (i = 0; i < c->nsb; i++) {
        struct nd_tcp_sack_block b = c->sb[i];

        if (nd_seq_leq(b.end, c->snd_una))
            continue;
        if (nd_seq_lt(b.start, c->snd_una))
            b.start = c->snd_una;
        c->sb[j++] = b;
        c->sacked += b.end - b.start;
    }
    c->nsb = (uint8_t)j;
    c->high_sack = j ? c->sb[j - 1].end : c->snd_una;
    /* RFC 6675 IsLost: a hole is lost once more than (DupThresh - 1) * SMSS bytes above it are
     * SACKed; everything below lost_edge is. Reordering shorter than that costs nothing. */
    c->lost_edge = c->snd_una;
    {
        uint32_t acc = 0;

        while (j-- > 0) {
            acc += c->sb[j].end - c->sb[j].start;
            if (acc > 2 * tcp_seg_payload(c)) {
                c->lost_edge = c->sb[j].start;
                break;
            }
        }
    }
}

static void sb_add(struct nd_tcp_conn *c, uint32_t a, uint32_t b)
{
    struct nd_tcp_sack_block nb[ND_TCP_SB_MAX + 1];
    unsigned i, n = 0;
    bool placed = false;

    for (i = 0; i < c->nsb; i++) {
        struct nd_tcp_sack_block r = c->sb[i];

        if (nd_seq_lt(r.end, a)) {
            nb[n++] = r;
        } else if (nd_seq_gt(r.start, b)) {
            if (!placed) {
                nb[n].start = a;
                nb[n++].end = b;
                placed = true;
            }
            nb[n++] = r;
        } else {
            a = nd_seq_min(a, r.start);
            b = nd_seq_max(b, r.end);
        }
    }
    if (!placed) {
        nb[n].start = a;
        nb[n++].end = b;
    }
    if (n > ND_TCP_SB_MAX)
        n = ND_TCP_SB_MAX; /* forget the highest range: it is reported again */
    memcpy(c->sb, nb, n * sizeof(nb[0]));
    c->nsb = (uint8_t)n;
}

static void sack_update(struct nd_tcp_conn *c, const struct nd_tcp_hdr *h)
{
    unsigned i;

    for (i = 0; i < h->nsack; i++) {
        uint32_t a = h->sack[i].start, b = h->sack[i].end;

        if (!nd_seq_lt(a, b) || !nd_seq_gt(b, c->snd_una) || nd_seq_gt(b, c->snd_max))
            continue; /* D-SACK or bogus */
        if (nd_seq_lt(a, c->snd_una))
            a = c->snd_una;
        sb_add(c, a, b);
    }
    sb_trim(c);
}

static void enter_recovery(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;

    c->in_recovery = true;
    c->recover = c->snd_max;
    tcp_cc_loss(c, false);
    c->dup_in_rec = c->dupacks;
    c->rxt_next = c->snd_una;
    c->rxt_limit = nd_seq_max(c->lost_edge, c->snd_una + tcp_seg_payload(c));
    c->fast_retransmits++;
    s->st.fast_retransmits++;
    tcp_send_hole(c); /* the first loss goes now, whatever the pipe says */
    tcp_rxt_arm(c);
}

/* A probe timeout (the simplified RACK-TLP of docs/tcp.md, "Loss probes"): no cumulative ACK
 * for about two round trips while data is in flight. With data SACKed above snd_una (or in
 * recovery), the first hole, or its retransmission, is lost: resend it, entering recovery if
 * need be, even below `recover` (after a timeout, RFC 6675 would wait for the RTO), cutting the
 * window only if this loss is in a new window. Without SACK information the tail, or its ACKs,
 * were lost: resend the last segment; the ACK it draws carries the SACK blocks that tell. */
void tcp_loss_probe(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;

    c->probes++;
    s->st.loss_probes++;
    c->tlp_open = true;
    c->tlp_tsval = tcp_tsval(c);
    if (!c->nsb && !c->in_recovery) {
        c->tlp_seq = c->snd_max - 1; /* the tail ends there (its last byte, or the FIN) */
        tcp_send_tail(c);
        return;
    }
    c->tlp_seq = c->snd_una; /* the first hole starts there */
    if (!c->in_recovery) {
        if (nd_seq_gt(c->snd_una, c->recover)) {
            enter_recovery(c);
            return;
        }
        c->in_recovery = true;
        c->recover = c->snd_max;
        c->dup_in_rec = 0;
    }
    c->rxt_next = c->snd_una;
    c->rxt_limit =
        nd_seq_max(nd_seq_max(c->rxt_limit, c->lost_edge), c->snd_una + tcp_seg_payload(c));
    tcp_send_hole(c);
}

static void snd_drop_acked(struct nd_tcp_conn *c, uint32_t ack)
{
    struct nd_tcp_stack *s = c->s;
    uint32_t data_end = c->snd_base + c->sndq.bytes, upto = nd_seq_min(ack, data_end), n;

    if (!nd_seq_gt(upto, c->snd_base))
        return;
    n = upto - c->snd_base;
    c->bytes_acked += n;
    c->snd_base = upto;
    while (n && c->sndq.head) {
        struct nd_tcp_seg *g = c->sndq.head;

        if (n < g->len) {
            g->data += n;
            g->len -= n;
            c->sndq.bytes -= n;
            if (c->txc.seg == g)
                c->txc.seq = upto;
            break;
        }
        n -= g->len;
        c->sndq.bytes -= g->len;
        c->sndq.n--;
        c->sndq.head = g->next;
        if (!c->sndq.head)
            c->sndq.tail = NULL;
        if (c->txc.seg == g)
            c->txc.seg = NULL;
        tcp_seg_put(s, g);
    }
}

/* Was the last loss probe needed? Spurious when the peer reports it as a duplicate (a D-SACK,
 * RFC 2883: a first SACK block below the cumulative ACK that covers it), or when the first ACK
 * past it echoes a timestamp older than the probe's: that ACK was drawn by the original (as
 * Eifel detection reads it, RFC 3522). Counted once per probe; nothing is undone. Without
 * timestamps only a D-SACK tells, until the next probe or RTO. */
static void tlp_check(struct nd_tcp_conn *c, const struct nd_tcp_hdr *h)
{
    bool spurious = false, decided = false;

    if (h->nsack && nd_seq_lt(h->sack[0].start, h->sack[0].end) &&
        nd_seq_leq(h->sack[0].end, h->ack) &&
        nd_seq_in(c->tlp_seq, h->sack[0].start, h->sack[0].end))
        spurious = decided = true;
    else if (c->ts_ok && h->has_ts && h->tsecr && nd_seq_gt(h->ack, c->tlp_seq)) {
        spurious = nd_seq_lt(h->tsecr, c->tlp_tsval);
        decided = true;
    }
    if (!decided)
        return;
    c->tlp_open = false;
    if (spurious)
        c->s->st.loss_probes_spurious++;
}

/* Returns false when the connection is gone. */
static bool ack_input(struct nd_tcp_conn *c, const struct seginfo *si)
{
    struct nd_tcp_stack *s = c->s;
    const struct nd_tcp_hdr *h = &si->h;
    uint32_t old_wnd = c->snd_wnd, data_end = c->snd_base + c->sndq.bytes;
    bool persist_was = c->persist, advanced = nd_seq_gt(h->ack, c->snd_una), new_sack = false;

    if (c->tlp_open)
        tlp_check(c, h);
    if (c->sack_ok && h->nsack) {
        uint32_t before = c->sacked;

        sack_update(c, h);
        new_sack = c->sacked > before;
    }
    if (advanced) {
        uint32_t acked = h->ack - c->snd_una;

        snd_drop_acked(c, h->ack);
        if (c->fin_sent && h->ack == data_end + 1)
            c->fin_acked = true;
        c->snd_una = h->ack;
        if (nd_seq_lt(c->snd_nxt, c->snd_una))
            c->snd_nxt = c->snd_una;
        if (ts_rtt_ok(c, h))
            tcp_rtt_sample(c, tcp_tsval(c) - h->tsecr);
        else if (c->rtt_timing && nd_seq_gt(h->ack, c->rtt_seq))
            tcp_rtt_sample(c, (uint32_t)(tcp_now(s) - c->rtt_start));
        if (c->rtt_timing && nd_seq_gt(h->ack, c->rtt_seq))
            c->rtt_timing = false;
        c->retries = 0;
        c->probes = 0;
        sb_trim(c);
        if (c->in_recovery) {
            if (nd_seq_geq(h->ack, c->recover)) {
                c->in_recovery = false;
                c->cwnd = c->ssthresh;
                c->dupacks = 0;
            } else {
                uint32_t segs = acked / tcp_seg_payload(c);

                c->dup_in_rec = c->dup_in_rec > segs ? c->dup_in_rec - segs : 0;
                if (nd_seq_leq(c->rxt_next, c->snd_una))
                    c->rxt_next = c->snd_una;
                /* NewReno (RFC 6582): a partial ACK means the next segment is lost too. With
                 * SACK the scoreboard knows better (RFC 6675): only IsLost holes are resent. */
                if (!c->sack_ok && c->rxt_next == c->snd_una)
                    c->rxt_limit = nd_seq_max(c->rxt_limit, c->snd_una + tcp_seg_payload(c));
                c->rxt_limit = nd_seq_max(c->rxt_limit, c->lost_edge);
            }
        } else {
            c->dupacks = 0;
            tcp_cc_ack(c, acked);
        }
        if (c->snd_una == c->snd_max)
            nd_timer_cancel(s->wheel, &c->t_rxt);
        else
            tcp_rxt_arm(c);
        if (c->want_write && (nd_tcp_send_space(c) >= s->cfg.sndbuf / 4 || !c->sndq.bytes) &&
            !c->fin_queued) {
            c->want_write = false;
            tcp_notify(c, ND_TCP_EV_WRITE);
        }
    }
    /* window update (RFC 9293 3.10.7.4) */
    if (nd_seq_lt(c->snd_wl1, h->seq) || (c->snd_wl1 == h->seq && nd_seq_leq(c->snd_wl2, h->ack))) {
        c->snd_wnd = (uint32_t)h->win << c->snd_wscale;
        c->snd_wl1 = h->seq;
        c->snd_wl2 = h->ack;
        if (c->snd_wnd > c->max_snd_wnd)
            c->max_snd_wnd = c->snd_wnd;
    }
    if (persist_was && c->snd_wnd > 0) {
        /* the window opened: leave persist, send at once */
        c->persist = false;
        nd_timer_cancel(s->wheel, &c->t_rxt);
        tcp_rto_reset(c);
    }
    /* duplicate ACK. Without SACK, RFC 5681 2: no data, same window. With SACK, RFC 6675 2: one
     * that SACKs new data, whatever else it carries; a receiver that autotunes its buffer (Linux)
     * opens its window on nearly every ACK, and duplicated segments SACK nothing new. */
    if (!advanced && h->ack == c->snd_una && c->snd_max != c->snd_una &&
        (c->sack_ok
             ? new_sack
             : !si->plen && !(h->flags & (ND_TCP_SYN | ND_TCP_FIN)) && c->snd_wnd == old_wnd)) {
        if (c->in_recovery) {
            c->dup_in_rec++;
            c->rxt_limit = nd_seq_max(c->rxt_limit, c->lost_edge);
        } else {
            c->dupacks++;
            if ((c->dupacks >= 3 || (c->sack_ok && c->lost_edge != c->snd_una)) &&
                nd_seq_gt(h->ack, c->recover))
                enter_recovery(c);
        }
    }
    /* state changes on our FIN being acknowledged */
    if (c->fin_acked) {
        switch (c->state) {
        case ND_TCP_FIN_WAIT_1:
            c->state = ND_TCP_FIN_WAIT_2;
            if (!c->app_ref)
                nd_timer_arm(s->wheel, &c->t_keep, s->cfg.fin_wait2);
            break;
        case ND_TCP_CLOSING:
            tcp_enter_time_wait(c);
            break;
        case ND_TCP_LAST_ACK:
            tcp_set_closed(c, 0);
            return false;
        default:
            break;
        }
    }
    return true;
}

/* ---- receiver side ---- */

static struct nd_tcp_seg *rx_desc(struct nd_tcp_conn *c, uint32_t seq, const uint8_t *data,
                                  uint32_t len, void *pkt)
{
    struct nd_tcp_stack *s = c->s;
    struct nd_tcp_seg *g;

    if (!s->free_segs || (!(pkt && s->cfg.pkt_ops) && !s->free_chunks)) {
        s->st.drop_no_mem++;
        return NULL;
    }
    g = tcp_seg_get(s);
    g->seq = seq;
    g->len = len;
    if (pkt && s->cfg.pkt_ops) {
        s->cfg.pkt_ops->ref(pkt);
        g->pkt = pkt;
        g->data = data;
    } else {
        g->chunk = tcp_chunk_get(s);
        memcpy(g->chunk->data, data, len);
        g->data = g->chunk->data;
    }
    return g;
}

/* Most out-of-order segments kept per connection (bounds descriptors, mbufs). */
static uint32_t ooo_max(const struct nd_tcp_conn *c)
{
    uint32_t n = 2 * c->s->cfg.rcvbuf / c->rcv_mss;

    return n < 16 ? 16 : n;
}

static void ooo_insert(struct nd_tcp_conn *c, uint32_t a, const uint8_t *data, uint32_t len,
                       void *pkt)
{
    struct nd_tcp_stack *s = c->s;
    struct nd_tcp_seg **pp, *g;
    uint32_t b = a + len;

    for (pp = &c->ooq.head; (g = *pp);) {
        uint32_t gs = g->seq, ge = g->seq + g->len;

        if (nd_seq_leq(ge, a)) {
            pp = &g->next;
            continue;
        }
        if (nd_seq_geq(gs, b))
            break;
        if (nd_seq_leq(gs, a) && nd_seq_geq(ge, b))
            return; /* all of it is here already */
        if (nd_seq_leq(gs, a)) {
            data += ge - a;
            a = ge;
            pp = &g->next;
            continue;
        }
        if (nd_seq_leq(ge, b)) { /* the new one covers g */
            *pp = g->next;
            c->ooq.bytes -= g->len;
            c->ooq.n--;
            tcp_seg_put(s, g);
            continue;
        }
        b = gs;
        break;
    }
    if (c->ooq.n >= ooo_max(c)) {
        s->st.drop_ooo_full++;
        return;
    }
    g = rx_desc(c, a, data, b - a, pkt);
    if (!g)
        return;
    g->next = *pp;
    *pp = g;
    c->ooq.bytes += g->len;
    c->ooq.n++;
    c->ooq.tail = NULL; /* unused for this queue */
}

static void rcvq_add(struct nd_tcp_conn *c, struct nd_tcp_seg *g)
{
    g->next = NULL;
    if (c->rcvq.tail)
        c->rcvq.tail->next = g;
    else
        c->rcvq.head = g;
    c->rcvq.tail = g;
    c->rcvq.bytes += g->len;
    c->rcvq.n++;
    c->rcv_nxt += g->len;
    c->bytes_received += g->len;
}

static void fin_input(struct nd_tcp_conn *c);

static void data_input(struct nd_tcp_conn *c, const struct seginfo *si)
{
    struct nd_tcp_stack *s = c->s;
    uint32_t seq = si->h.seq, len = si->plen;
    const uint8_t *data = si->data;
    bool had_ooo = c->ooq.head != NULL;

    if (nd_seq_lt(seq, c->rcv_nxt)) {
        uint32_t d = c->rcv_nxt - seq;

        if (d >= len) {
            c->ack_now = true; /* a duplicate: tell the sender where we are */
            return;
        }
        data += d;
        len -= d;
        seq = c->rcv_nxt;
    }
    if (nd_seq_geq(seq, c->rcv_adv)) {
        c->ack_now = true;
        s->st.drop_out_of_window++;
        return;
    }
    if (nd_seq_gt(seq + len, c->rcv_adv))
        len = c->rcv_adv - seq;
    if (si->plen > c->rcv_mss)
        c->rcv_mss = si->plen < s->cfg.mss ? si->plen : s->cfg.mss;
    if (seq != c->rcv_nxt) {
        /* out of order: keep it, say so at once with SACK (RFC 5681 4.2) */
        while (len) {
            uint32_t n = len;

            if (!(si->pkt && s->cfg.pkt_ops) && n > ND_TCP_CHUNK)
                n = ND_TCP_CHUNK;
            ooo_insert(c, seq, data, n, si->pkt);
            seq += n;
            data += n;
            len -= n;
        }
        c->last_ooo_start = si->h.seq;
        c->ack_now = true;
        return;
    }
    while (len) {
        uint32_t n = len;
        struct nd_tcp_seg *g;

        if (!(si->pkt && s->cfg.pkt_ops) && n > ND_TCP_CHUNK)
            n = ND_TCP_CHUNK;
        g = rx_desc(c, seq, data, n, si->pkt);
        if (!g)
            break;
        rcvq_add(c, g);
        c->unacked_bytes += n;
        seq += n;
        data += n;
        len -= n;
    }
    /* pull what the out-of-order queue now continues */
    while (c->ooq.head && nd_seq_leq(c->ooq.head->seq, c->rcv_nxt)) {
        struct nd_tcp_seg *g = c->ooq.head;
        uint32_t d = c->rcv_nxt - g->seq;

        c->ooq.head = g->next;
        c->ooq.bytes -= g->len;
        c->ooq.n--;
        if (d >= g->len) {
            tcp_seg_put(s, g);
            continue;
        }
        g->data += d;
        g->len -= d;
        g->seq += d;
        rcvq_add(c, g);
    }
    tcp_notify(c, ND_TCP_EV_READ);
    if (had_ooo)
        c->ack_now = true; /* a hole filled: ACK at once */
    else
        tcp_delack(c);
    if (c->ooo_fin && c->rcv_nxt == c->ooo_fin_seq)
        fin_input(c); /* the FIN that waited beyond the hole */
}

static void fin_input(struct nd_tcp_conn *c)
{
    c->rcv_nxt++;
    c->fin_rcvd = true;
    c->ooo_fin = false;
    c->ack_now = true;
    tcp_notify(c, ND_TCP_EV_READ);
    switch (c->state) {
    case ND_TCP_SYN_RCVD:
    case ND_TCP_ESTABLISHED:
        c->state = ND_TCP_CLOSE_WAIT;
        nd_timer_cancel(c->s->wheel, &c->t_keep);
        break;
    case ND_TCP_FIN_WAIT_1:
        if (c->fin_acked) {
            tcp_send_ack(c);
            tcp_enter_time_wait(c);
        } else {
            c->state = ND_TCP_CLOSING;
        }
        break;
    case ND_TCP_FIN_WAIT_2:
        tcp_send_ack(c);
        tcp_enter_time_wait(c);
        break;
    default:
        break;
    }
}

/* ---- synchronized states ---- */

static bool seq_acceptable(const struct nd_tcp_conn *c, uint32_t seq, uint32_t len)
{
    uint32_t wnd = nd_seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
    uint32_t end = c->rcv_nxt + wnd;

    if (!len)
        return wnd ? nd_seq_in(seq, c->rcv_nxt, end) : seq == c->rcv_nxt;
    if (!wnd)
        return seq == c->rcv_nxt; /* ACK/RST processing only: data is trimmed off */
    return nd_seq_in(seq, c->rcv_nxt, end) || nd_seq_in(seq + len - 1, c->rcv_nxt, end);
}

static void conn_input(struct nd_tcp_conn *c, struct seginfo *si)
{
    struct nd_tcp_stack *s = c->s;
    const struct nd_tcp_hdr *h = &si->h;
    uint32_t slen = seg_len(si);

    if (c->state == ND_TCP_SYN_SENT) {
        syn_sent_input(c, si);
        return;
    }
    if (c->state == ND_TCP_CLOSED)
        return;
    /* RFC 7323: PAWS, and segments that lack the negotiated timestamps */
    if (c->ts_ok && !(h->flags & ND_TCP_RST)) {
        if (!h->has_ts ||
            (nd_seq_lt(h->tsval, c->ts_recent) && tcp_now(s) - c->ts_recent_age <= PAWS_IDLE_MS)) {
            s->st.drop_paws++;
            if (h->has_ts)
                oow_ack(c, si);
            return;
        }
    }
    if (c->state == ND_TCP_SYN_RCVD && !c->l && (h->flags & ND_TCP_SYN) &&
        (h->flags & ND_TCP_ACK) && !si->plen && h->seq + 1 == c->rcv_nxt && h->ack == c->snd_nxt) {
        /* simultaneous open: the peer's SYN-ACK acknowledges ours (as Linux accepts it) */
        si->h.flags &= (uint8_t)~ND_TCP_SYN;
        si->h.seq = c->rcv_nxt;
        slen = 0;
    }
    if (c->state == ND_TCP_SYN_RCVD &&
        (h->flags & (ND_TCP_SYN | ND_TCP_ACK | ND_TCP_RST)) == ND_TCP_SYN && h->seq == c->irs) {
        c->snd_nxt = c->iss; /* its SYN again: our SYN-ACK was lost */
        tcp_send_syn(c);
        return;
    }
    if (!seq_acceptable(c, h->seq, slen)) {
        if (h->flags & ND_TCP_RST)
            return;
        s->st.drop_out_of_window++;
        if (c->state == ND_TCP_TIME_WAIT && (h->flags & ND_TCP_FIN))
            nd_timer_arm(s->wheel, &c->t_keep, 2ull * s->cfg.msl); /* its FIN again */
        if (h->flags & ND_TCP_SYN)
            challenge_ack(c);
        else
            oow_ack(c, si);
        return;
    }
    c->last_rcv = tcp_now(s);
    c->keep_probes = 0;
    if (h->flags & ND_TCP_RST) {
        if (h->seq != c->rcv_nxt) {
            challenge_ack(c); /* RFC 5961 3.2 */
            return;
        }
        s->st.rst_rcvd++;
        switch (c->state) {
        case ND_TCP_SYN_RCVD:
            tcp_set_closed(c, ECONNREFUSED);
            break;
        case ND_TCP_ESTABLISHED:
        case ND_TCP_FIN_WAIT_1:
        case ND_TCP_FIN_WAIT_2:
        case ND_TCP_CLOSE_WAIT:
            s->st.conn_resets++;
            tcp_set_closed(c, ECONNRESET);
            break;
        case ND_TCP_TIME_WAIT:
            break; /* RFC 1337: no assassination */
        default:
            tcp_set_closed(c, 0);
            break;
        }
        return;
    }
    if (h->flags & ND_TCP_SYN) {
        challenge_ack(c); /* RFC 5961 4.2 */
        return;
    }
    if (!(h->flags & ND_TCP_ACK))
        return;
    if (c->ts_ok && nd_seq_leq(h->seq, c->last_ack_sent)) {
        c->ts_recent = h->tsval;
        c->ts_recent_age = tcp_now(s);
    }
    if (c->state == ND_TCP_SYN_RCVD) {
        if (!nd_seq_gt(h->ack, c->snd_una) || nd_seq_gt(h->ack, c->snd_max)) {
            tcp_rst_for(s, &c->flow, h, slen);
            return;
        }
        c->snd_wnd = c->max_snd_wnd = (uint32_t)h->win << c->snd_wscale;
        c->snd_wl1 = h->seq;
        c->snd_wl2 = h->ack;
        if (ts_rtt_ok(c, h) && c->retries == 0)
            tcp_rtt_sample(c, tcp_tsval(c) - h->tsecr);
        else if (c->rtt_timing && c->retries == 0)
            tcp_rtt_sample(c, (uint32_t)(tcp_now(s) - c->rtt_start));
        c->rtt_timing = false;
        c->snd_una = h->ack;
        nd_timer_cancel(s->wheel, &c->t_rxt);
        tcp_established(c);
        if (c->fin_queued)
            c->state = ND_TCP_FIN_WAIT_1;
    } else {
        /* RFC 5961 5.2: an ACK for data never sent, or far too old */
        if (nd_seq_gt(h->ack, c->snd_max) || nd_seq_lt(h->ack, c->snd_una - c->max_snd_wnd - 1)) {
            s->st.drop_bad_ack++;
            challenge_ack(c);
            return;
        }
        if (!ack_input(c, si))
            return;
        if (c->state == ND_TCP_CLOSED)
            return;
    }
    if (si->plen) {
        switch (c->state) {
        case ND_TCP_ESTABLISHED:
        case ND_TCP_FIN_WAIT_1:
        case ND_TCP_FIN_WAIT_2:
            if (!c->app_ref && !c->l && nd_seq_gt(h->seq + si->plen, c->rcv_nxt)) {
                /* new data for a connection the application closed: nobody will read it */
                s->st.conn_resets++;
                tcp_send_rst(c);
                tcp_set_closed(c, ECONNABORTED);
                return;
            }
            data_input(c, si);
            break;
        default:
            break; /* data after the peer's FIN: ignored */
        }
    }
    if (h->flags & ND_TCP_FIN) {
        uint32_t fin_seq = h->seq + si->plen;

        if (fin_seq == c->rcv_nxt && !c->fin_rcvd)
            fin_input(c);
        else if (nd_seq_gt(fin_seq, c->rcv_nxt) && !c->fin_rcvd) {
            c->ooo_fin = true;
            c->ooo_fin_seq = fin_seq;
            c->ack_now = true;
        } else {
            c->ack_now = true;
            if (c->state == ND_TCP_TIME_WAIT)
                nd_timer_arm(s->wheel, &c->t_keep, 2ull * s->cfg.msl);
        }
    }
    if (c->state != ND_TCP_CLOSED)
        tcp_output(c);
}

void nd_tcp_input(struct nd_tcp_stack *s, const struct nd_tcp_ipinfo *ip, const uint8_t *tcp,
                  size_t len, void *pkt)
{
    struct nd_tcp_flow f;
    struct seginfo si;
    struct nd_tcp_conn *c;
    struct nd_tcp_listener *l;

    tcp_enter(s);
    s->st.segs_in++;
    if (len > 65535 || nd_tcp_parse(tcp, len, &si.h) < 0 || !si.h.sport || !si.h.dport) {
        s->st.bad_hdr++;
        goto out;
    }
    if (!ip->csum_ok && !nd_tcp_csum_ok(ip->src, ip->dst, tcp, len)) {
        s->st.bad_csum++;
        goto out;
    }
    si.data = tcp + si.h.hlen;
    si.plen = (uint32_t)(len - si.h.hlen);
    si.pkt = pkt;
    f.laddr = ip->dst;
    f.raddr = ip->src;
    f.lport = si.h.dport;
    f.rport = si.h.sport;
    c = tcp_lookup(s, &f);
    l = NULL; /* the listeners are looked at only for a segment of no connection, or a new SYN */
    if (c && c->state == ND_TCP_TIME_WAIT &&
        (si.h.flags & (ND_TCP_SYN | ND_TCP_ACK | ND_TCP_RST)) == ND_TCP_SYN &&
        (l = tcp_listener_find(s, f.laddr, f.lport)) && tw_reusable(c, &si.h)) {
        s->st.tw_reused++;
        tcp_set_closed(c, 0);
        c = NULL;
    }
    if (c) {
        conn_input(c, &si);
    } else if (l || (l = tcp_listener_find(s, f.laddr, f.lport))) {
        listen_input(s, l, &f, &si);
    } else {
        s->st.drop_no_conn++;
        tcp_rst_for(s, &f, &si.h, seg_len(&si));
    }
out:
    tcp_leave(s);
}
