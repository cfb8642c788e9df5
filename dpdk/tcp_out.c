/* TCP engine: building and sending segments. */
#include "tcp_int.h"

#include <string.h>

int tcp_emit(struct nd_tcp_stack *s, const struct nd_tcp_flow *f, uint32_t seq, uint32_t ack,
             uint8_t flags, uint16_t win, struct nd_tcp_opts *o, const struct nd_tcp_segq *q,
             uint32_t qbase, uint32_t len, struct tcp_cursor *cur)
{
    uint8_t hdr[ND_TCP_MAX_HDR];
    struct nd_tcp_piece pc[ND_TCP_TX_PIECES];
    struct nd_tcp_tx tx;
    unsigned n = 0, hlen;
    uint32_t got = 0;
    uint16_t sum;

    if (len && q) {
        struct nd_tcp_seg *g = q->head;
        uint32_t off = seq - qbase, gseq = qbase;

        /* start from the cursor (where the last segment ended) when it is not past seq */
        if (cur && cur->seg && nd_seq_geq(seq, cur->seq)) {
            g = cur->seg;
            gseq = cur->seq;
            off = seq - cur->seq;
        }
        for (; g && off >= g->len; g = g->next) {
            off -= g->len;
            gseq += g->len;
        }
        for (; g && got < len && n < ND_TCP_TX_PIECES; g = g->next, off = 0) {
            uint32_t take = g->len - off;

            if (take > len - got)
                take = len - got;
            pc[n].data = g->data + off;
            pc[n].len = take;
            pc[n].pkt = g->pkt;
            n++;
            got += take;
            if (cur) {
                cur->seg = g;
                cur->seq = gseq;
            }
            gseq += g->len;
        }
    }
    if (got < len && (flags & ND_TCP_FIN))
        flags &= (uint8_t)~ND_TCP_FIN; /* the FIN goes after the last byte only */
    hlen = nd_tcp_build(hdr, f->lport, f->rport, seq, ack, flags, win, o);
    if (s->cfg.csum_offload) {
        sum = nd_csum_fold(nd_tcp_pseudo(f->laddr, f->raddr, hlen + got));
    } else {
        sum = nd_tcp_csum(f->laddr, f->raddr, hdr, hlen, pc, n);
    }
    nd_put16(hdr + 16, sum);
    memset(&tx, 0, sizeof(tx));
    tx.flow = *f;
    tx.hdr = hdr;
    tx.hdr_len = hlen;
    tx.piece = pc;
    tx.npiece = n;
    tx.payload_len = got;
    tx.csum_partial = s->cfg.csum_offload;
    s->st.segs_out++;
    if (s->cfg.tx(s, &tx, s->cfg.udata) < 0)
        s->st.drop_tx++;
    return (int)got;
}

/* The window to advertise; moves rcv_adv (never backwards: RFC 9293 3.8.6.2.2, no shrinking). */
static uint16_t adv_window(struct nd_tcp_conn *c, bool syn)
{
    uint32_t space = tcp_rcv_space(c), cur, win, field, ws = syn ? 0 : c->rcv_wscale;

    /* receiver SWS avoidance: no window smaller than a segment unless it is half the buffer */
    if (space < c->snd_mss && space < c->s->cfg.rcvbuf / 2)
        space = 0;
    cur = nd_seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
    win = space > cur ? space : cur;
    field = win >> ws;
    if ((field << ws) < cur)
        field++;
    if (field > 65535)
        field = 65535;
    if (nd_seq_gt(c->rcv_nxt + (field << ws), c->rcv_adv))
        c->rcv_adv = c->rcv_nxt + (field << ws);
    c->last_ack_sent = c->rcv_nxt;
    return (uint16_t)field;
}

/* SACK blocks for the out-of-order queue: the most recently changed block first (RFC 2018). */
static void sack_blocks(const struct nd_tcp_conn *c, struct nd_tcp_opts *o)
{
    struct nd_tcp_sack_block b[16];
    const struct nd_tcp_seg *g;
    unsigned nb = 0, i, first = 0;

    for (g = c->ooq.head; g && nb < 16; g = g->next) {
        if (nb && b[nb - 1].end == g->seq)
            b[nb - 1].end = g->seq + g->len;
        else {
            b[nb].start = g->seq;
            b[nb].end = g->seq + g->len;
            nb++;
        }
    }
    if (c->ooo_fin && nb && b[nb - 1].end == c->ooo_fin_seq)
        b[nb - 1].end++;
    for (i = 0; i < nb; i++)
        if (nd_seq_in(c->last_ooo_start, b[i].start, b[i].end + 1))
            first = i;
    o->nsack = 0;
    if (!nb)
        return;
    o->sack[o->nsack++] = b[first];
    for (i = 0; i < nb && o->nsack < ND_TCP_MAX_SACK; i++)
        if (i != first)
            o->sack[o->nsack++] = b[i];
}

static void conn_opts(const struct nd_tcp_conn *c, struct nd_tcp_opts *o)
{
    memset(o, 0, sizeof(*o));
    if (c->ts_ok) {
        o->ts_on = true;
        o->tsval = tcp_tsval(c);
        o->tsecr = c->ts_recent;
    }
    if (c->sack_ok && c->ooq.head)
        sack_blocks(c, o);
}

static void acked_now(struct nd_tcp_conn *c)
{
    c->ack_now = c->ack_batch = false;
    c->unacked_bytes = 0;
    nd_timer_cancel(c->s->wheel, &c->t_dack);
}

void tcp_send_ack(struct nd_tcp_conn *c)
{
    struct nd_tcp_opts o;
    uint16_t win;

    conn_opts(c, &o);
    win = adv_window(c, false);
    tcp_emit(c->s, &c->flow, c->snd_nxt, c->rcv_nxt, ND_TCP_ACK, win, &o, NULL, 0, 0, NULL);
    acked_now(c);
}

void tcp_send_probe(struct nd_tcp_conn *c, bool zero_window)
{
    struct nd_tcp_opts o;
    uint16_t win;

    (void)zero_window;
    /* an old sequence number: the peer answers with an ACK carrying its window (as Linux) */
    conn_opts(c, &o);
    win = adv_window(c, false);
    tcp_emit(c->s, &c->flow, c->snd_una - 1, c->rcv_nxt, ND_TCP_ACK, win, &o, NULL, 0, 0, NULL);
}

void tcp_send_syn(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;
    struct nd_tcp_opts o;
    bool synack = c->state == ND_TCP_SYN_RCVD;
    uint8_t flags = ND_TCP_SYN | (synack ? ND_TCP_ACK : 0);
    uint16_t win;

    memset(&o, 0, sizeof(o));
    o.mss_on = true;
    o.mss = (uint16_t)s->cfg.mss;
    if (synack ? c->ws_ok : s->cfg.wscale) {
        o.ws_on = true;
        o.ws = s->rcv_wscale;
    }
    o.sack_perm = synack ? c->sack_ok : s->cfg.sack;
    if (synack ? c->ts_ok : s->cfg.timestamps) {
        o.ts_on = true;
        o.tsval = tcp_tsval(c);
        o.tsecr = synack ? c->ts_recent : 0;
    }
    win = adv_window(c, true);
    if (!c->retries && !c->rtt_timing) {
        c->rtt_timing = true;
        c->rtt_seq = c->iss;
        c->rtt_start = tcp_now(s);
    }
    tcp_emit(s, &c->flow, c->iss, synack ? c->rcv_nxt : 0, flags, win, &o, NULL, 0, 0, NULL);
    c->snd_nxt = c->iss + 1;
    if (nd_seq_gt(c->snd_nxt, c->snd_max))
        c->snd_max = c->snd_nxt;
    if (synack)
        acked_now(c);
}

void tcp_send_rst(struct nd_tcp_conn *c)
{
    c->s->st.rst_sent++;
    tcp_emit(c->s, &c->flow, c->snd_nxt, c->rcv_nxt, ND_TCP_RST | ND_TCP_ACK, 0, NULL, NULL, 0, 0,
             NULL);
}

void tcp_rst_for(struct nd_tcp_stack *s, const struct nd_tcp_flow *f, const struct nd_tcp_hdr *h,
                 uint32_t seglen)
{
    if (h->flags & ND_TCP_RST)
        return;
    s->st.rst_sent++;
    if (h->flags & ND_TCP_ACK)
        tcp_emit(s, f, h->ack, 0, ND_TCP_RST, 0, NULL, NULL, 0, 0, NULL);
    else
        tcp_emit(s, f, 0, h->seq + seglen, ND_TCP_RST | ND_TCP_ACK, 0, NULL, NULL, 0, 0, NULL);
}

void tcp_delack(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;

    if (c->unacked_bytes >= 2 * c->rcv_mss) {
        if (!s->batch) {
            c->ack_now = true;
            return;
        }
        c->ack_batch = true; /* one ACK at the end of the batch covers all its segments */
        if (!c->ack_listed) {
            c->ack_listed = true;
            c->ack_next = s->acks;
            s->acks = c;
        }
        return;
    }
    if (!nd_timer_armed(&c->t_dack))
        nd_timer_arm(c->s->wheel, &c->t_dack, c->s->cfg.delack);
}

/* Bytes of [from, to) not covered by the scoreboard. */
static uint32_t unsacked(const struct nd_tcp_conn *c, uint32_t from, uint32_t to)
{
    uint32_t n, i;

    if (!nd_seq_lt(from, to))
        return 0;
    n = to - from;
    for (i = 0; i < c->nsb; i++) {
        uint32_t a = nd_seq_max(from, c->sb[i].start), b = nd_seq_min(to, c->sb[i].end);

        if (nd_seq_lt(a, b))
            n -= b - a;
    }
    return n;
}

/* RFC 6675-style estimate of the bytes in the network during recovery. */
static uint32_t recovery_pipe(const struct nd_tcp_conn *c)
{
    uint32_t out = c->snd_max - c->snd_una, sacked, lost;

    if (c->sack_ok) {
        sacked = c->sacked;
    } else {
        uint64_t d = (uint64_t)c->dup_in_rec * tcp_seg_payload(c);

        sacked = d > out ? out : (uint32_t)d;
    }
    lost = unsacked(c, nd_seq_max(c->rxt_next, c->snd_una), c->rxt_limit);
    if ((uint64_t)sacked + lost >= out)
        return 0;
    return out - sacked - lost;
}

/* The next hole to resend in recovery: sets *seq and returns its length (0: none). */
static uint32_t next_hole(struct nd_tcp_conn *c, uint32_t maxlen, uint32_t *seq)
{
    uint32_t h = nd_seq_max(c->rxt_next, c->snd_una), end = c->rxt_limit, i;
    uint32_t data_end = c->snd_base + c->sndq.bytes;

    for (i = 0; i < c->nsb; i++)
        if (nd_seq_in(h, c->sb[i].start, c->sb[i].end))
            h = c->sb[i].end;
    if (nd_seq_gt(end, data_end))
        end = data_end;
    if (!nd_seq_lt(h, end))
        return 0;
    for (i = 0; i < c->nsb; i++)
        if (nd_seq_gt(c->sb[i].start, h) && nd_seq_lt(c->sb[i].start, end))
            end = c->sb[i].start;
    *seq = h;
    return end - h < maxlen ? end - h : maxlen;
}

static uint16_t data_window(struct nd_tcp_conn *c)
{
    return adv_window(c, false);
}

bool tcp_send_hole(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;
    struct nd_tcp_opts o;
    uint32_t seq, len, olen;
    uint16_t win;
    int sent;

    conn_opts(c, &o);
    olen = nd_tcp_opts_len(&o);
    len = next_hole(c, c->snd_mss - olen, &seq);
    if (!len)
        return false;
    win = data_window(c);
    sent = tcp_emit(s, &c->flow, seq, c->rcv_nxt, ND_TCP_ACK, win, &o, &c->sndq, c->snd_base, len,
                    &c->txc);
    c->rxt_next = seq + (uint32_t)sent;
    c->retransmits++;
    s->st.retransmits++;
    c->rtt_timing = false;
    acked_now(c);
    if (!nd_timer_armed(&c->t_rxt))
        tcp_rxt_arm(c);
    return sent > 0;
}

void tcp_send_tail(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;
    struct nd_tcp_opts o;
    uint32_t data_end = c->snd_base + c->sndq.bytes, end, start, maxseg;
    uint8_t flags = ND_TCP_ACK;
    int sent;

    conn_opts(c, &o);
    maxseg = c->snd_mss - nd_tcp_opts_len(&o);
    end = nd_seq_min(c->snd_max, data_end);
    if (c->fin_sent && !c->fin_acked && c->snd_max == data_end + 1)
        flags |= ND_TCP_FIN;
    start = end - c->snd_una > maxseg ? end - maxseg : c->snd_una;
    if (start == end && !(flags & ND_TCP_FIN))
        return;
    sent = tcp_emit(s, &c->flow, start, c->rcv_nxt, flags, data_window(c), &o, &c->sndq,
                    c->snd_base, end - start, &c->txc);
    if (sent < 0)
        return;
    c->retransmits++;
    s->st.retransmits++;
    c->rtt_timing = false;
    acked_now(c);
}

void tcp_output(struct nd_tcp_conn *c)
{
    struct nd_tcp_stack *s = c->s;
    bool sent_any = false, sent_new = false;

    switch (c->state) {
    case ND_TCP_SYN_SENT:
    case ND_TCP_SYN_RCVD:
        if (c->snd_nxt == c->iss)
            tcp_send_syn(c);
        else if (c->ack_now && c->state == ND_TCP_SYN_RCVD)
            tcp_send_ack(c);
        return;
    case ND_TCP_ESTABLISHED:
    case ND_TCP_FIN_WAIT_1:
    case ND_TCP_CLOSE_WAIT:
    case ND_TCP_CLOSING:
    case ND_TCP_LAST_ACK:
        break;
    case ND_TCP_FIN_WAIT_2:
    case ND_TCP_TIME_WAIT:
        if (c->ack_now)
            tcp_send_ack(c);
        return;
    default:
        return;
    }
    for (;;) {
        uint32_t data_end, i;
        uint32_t avail, wnd_edge, usable, maxseg, len, wlen, olen;
        bool fin, rexmit;
        struct nd_tcp_opts o;
        uint8_t flags = ND_TCP_ACK;
        uint16_t win;
        int sent;

        /* going back after a timeout: what the receiver SACKed is not sent again */
        if (!c->in_recovery && c->nsb && nd_seq_lt(c->snd_nxt, c->snd_max))
            for (i = 0; i < c->nsb; i++)
                if (nd_seq_in(c->snd_nxt, c->sb[i].start, c->sb[i].end))
                    c->snd_nxt = nd_seq_min(c->sb[i].end, c->snd_max);
        data_end = c->snd_base + c->sndq.bytes;
        avail = nd_seq_lt(c->snd_nxt, data_end) ? data_end - c->snd_nxt : 0;
        wnd_edge = c->snd_una + c->snd_wnd;
        if (c->in_recovery) {
            if (recovery_pipe(c) < c->cwnd && tcp_send_hole(c)) {
                sent_any = true;
                continue;
            }
            usable = recovery_pipe(c) < c->cwnd ? c->cwnd - recovery_pipe(c) : 0;
        } else {
            uint32_t flight = c->snd_nxt - c->snd_una;

            usable = c->cwnd > flight ? c->cwnd - flight : 0;
        }
        if (nd_seq_lt(c->snd_nxt, wnd_edge)) {
            if (wnd_edge - c->snd_nxt < usable)
                usable = wnd_edge - c->snd_nxt;
        } else {
            usable = 0;
        }
        conn_opts(c, &o);
        olen = nd_tcp_opts_len(&o);
        maxseg = c->snd_mss - olen;
        len = avail < usable ? avail : usable;
        if (len > maxseg)
            len = maxseg;
        wlen = len;
        rexmit = nd_seq_lt(c->snd_nxt, c->snd_max);
        if (rexmit)
            for (i = 0; i < c->nsb; i++)
                if (nd_seq_gt(c->sb[i].start, c->snd_nxt) &&
                    nd_seq_lt(c->sb[i].start, c->snd_nxt + len))
                    len = c->sb[i].start - c->snd_nxt;
        /* FIN on the segment that carries the last byte (or alone), never before */
        fin = c->fin_queued && !c->fin_acked && c->snd_nxt + len == data_end;
        if (len < maxseg && len < avail && !c->force && !rexmit) {
            /* sender SWS avoidance: a short segment only if half the peer's largest window */
            if (len == 0 || len < c->max_snd_wnd / 2)
                break;
        }
        if (rexmit && len == wlen && len < maxseg && len < avail && !c->force)
            break; /* going back, a sliver of the window: wait for it to open by a segment */
        if (len && len == avail && len < maxseg && !c->nodelay && !c->force && !fin &&
            c->snd_nxt != c->snd_una && !rexmit)
            break; /* Nagle: one short segment in flight at a time */
        if (!len && !fin)
            break;
        if (fin)
            flags |= ND_TCP_FIN;
        if (len && len == avail)
            flags |= ND_TCP_PSH;
        win = data_window(c);
        sent = tcp_emit(s, &c->flow, c->snd_nxt, c->rcv_nxt, flags, win, &o, &c->sndq, c->snd_base,
                        len, &c->txc);
        if ((uint32_t)sent < len) {
            len = (uint32_t)sent;
            fin = false;
        }
        if (rexmit) {
            c->retransmits++;
            s->st.retransmits++;
            c->rtt_timing = false;
        } else {
            sent_new = true;
            if (!c->rtt_timing && !c->ts_ok) {
                c->rtt_timing = true;
                c->rtt_seq = c->snd_nxt;
                c->rtt_start = tcp_now(s);
            }
        }
        c->bytes_sent += len;
        c->snd_nxt += len + (fin ? 1 : 0);
        if (fin)
            c->fin_sent = true;
        if (nd_seq_gt(c->snd_nxt, c->snd_max))
            c->snd_max = c->snd_nxt;
        acked_now(c);
        sent_any = true;
        c->force = false;
        if (!nd_timer_armed(&c->t_rxt) || c->persist) {
            c->persist = false;
            tcp_rxt_arm(c);
        }
        if (fin)
            break;
    }
    if (sent_new)
        tcp_pto_restart(c);
    if (!sent_any && c->ack_now)
        tcp_send_ack(c);
    /* data waiting, nothing in flight, no window to send it: persist (RFC 9293 3.8.6.1) */
    if (c->snd_una == c->snd_max && nd_seq_lt(c->snd_nxt, c->snd_base + c->sndq.bytes) &&
        !nd_timer_armed(&c->t_rxt)) {
        c->persist = true;
        tcp_rxt_arm(c);
    }
}
