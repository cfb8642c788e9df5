/*
 * TCP engine: RTT estimation (RFC 6298) and congestion control: slow start with appropriate
 * byte counting (RFC 3465, L = 2), CUBIC (RFC 9438) or NewReno (RFC 5681) congestion avoidance.
 * Loss recovery itself (fast retransmit, NewReno/SACK recovery) is in tcp_in.c and tcp_out.c.
 */
#include "tcp_int.h"

#include <math.h>

#define CUBIC_C 0.4
#define CUBIC_BETA 0.7

void tcp_rto_reset(struct nd_tcp_conn *c)
{
    const struct nd_tcp_config *cfg = &c->s->cfg;
    uint64_t var = 4ull * c->rttvar_us, rto;

    if (!c->srtt_us && !c->rttvar_us) {
        c->rto = cfg->rto_init;
        return;
    }
    if (var < 1000)
        var = 1000; /* G, the clock granularity */
    rto = (c->srtt_us + var + 999) / 1000;
    if (rto < cfg->rto_min)
        rto = cfg->rto_min;
    if (rto > cfg->rto_max)
        rto = cfg->rto_max;
    c->rto = (uint32_t)rto;
    c->backoff = 0;
}

void tcp_rtt_sample(struct nd_tcp_conn *c, uint32_t rtt_ms)
{
    uint32_t r = rtt_ms > 600000 ? 600000000u : rtt_ms * 1000u;

    if (!r)
        r = 100; /* below the clock's resolution */
    if (!c->srtt_us) {
        c->srtt_us = r;
        c->rttvar_us = r / 2;
    } else {
        uint32_t d = r > c->srtt_us ? r - c->srtt_us : c->srtt_us - r;

        c->rttvar_us = (3 * c->rttvar_us + d) / 4;
        c->srtt_us = (7 * c->srtt_us + r) / 8;
        if (!c->srtt_us)
            c->srtt_us = 1;
    }
    tcp_rto_reset(c);
}

void tcp_cc_init(struct nd_tcp_conn *c)
{
    uint32_t mss = c->snd_mss ? c->snd_mss : 536, hi = 2 * mss > 14600 ? 2 * mss : 14600;

    /* RFC 6928 initial window: min(10 MSS, max(2 MSS, 14600)) */
    c->cwnd = 10 * mss < hi ? 10 * mss : hi;
    c->ssthresh = 0x7fffffff;
    c->epoch_on = false;
    c->w_max = 0;
    c->cwnd_frac = 0;
}

static void cwnd_add(struct nd_tcp_conn *c, double bytes)
{
    uint32_t cap = c->s->cfg.sndbuf + 4 * c->snd_mss;

    c->cwnd_frac += bytes;
    if (c->cwnd_frac >= 1) {
        double add = floor(c->cwnd_frac);

        c->cwnd_frac -= add;
        c->cwnd = c->cwnd + add > cap ? cap : c->cwnd + (uint32_t)add;
    }
}

void tcp_cc_ack(struct nd_tcp_conn *c, uint32_t acked)
{
    uint32_t mss = c->snd_mss;
    double w, t, target, wc, d;

    if (c->in_recovery || !acked)
        return;
    if (c->cwnd < c->ssthresh) {
        cwnd_add(c, acked < 2 * mss ? acked : 2 * mss);
        return;
    }
    if (c->s->cfg.cc == ND_TCP_CC_NEWRENO) {
        cwnd_add(c, (double)mss * acked / c->cwnd);
        return;
    }
    w = (double)c->cwnd / mss;
    if (!c->epoch_on) {
        c->epoch_on = true;
        c->epoch_start = tcp_now(c->s);
        if (w < c->w_max) {
            c->k = cbrt((c->w_max - w) / CUBIC_C);
        } else {
            c->k = 0;
            c->w_max = w;
        }
        c->w_est = w;
    }
    t = (double)(tcp_now(c->s) - c->epoch_start) / 1000.0;
    /* Reno-friendly estimate (RFC 9438 4.3) */
    c->w_est += 3.0 * (1 - CUBIC_BETA) / (1 + CUBIC_BETA) * ((double)acked / mss) / w;
    d = t - c->k;
    wc = CUBIC_C * d * d * d + c->w_max;
    if (wc < c->w_est) {
        if (c->w_est > w)
            cwnd_add(c, (c->w_est - w) * mss);
        return;
    }
    d = t + c->srtt_us / 1e6 - c->k;
    target = CUBIC_C * d * d * d + c->w_max;
    if (target < w)
        target = w;
    if (target > 1.5 * w)
        target = 1.5 * w;
    cwnd_add(c, (target - w) / w * acked);
}

void tcp_cc_loss(struct nd_tcp_conn *c, bool rto)
{
    uint32_t mss = c->snd_mss, flight = c->snd_max - c->snd_una, ss;
    double w = (double)c->cwnd / mss;

    if (c->s->cfg.cc == ND_TCP_CC_NEWRENO) {
        ss = flight / 2;
    } else {
        c->epoch_on = false;
        /* fast convergence */
        c->w_max = w < c->w_max ? w * (1 + CUBIC_BETA) / 2 : w;
        ss = (uint32_t)(c->cwnd * CUBIC_BETA);
    }
    c->ssthresh = ss > 2 * mss ? ss : 2 * mss;
    c->cwnd = rto ? mss : c->ssthresh;
    c->cwnd_frac = 0;
}
