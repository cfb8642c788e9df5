/* The user-space TCP's part of `nodus sockets`: the workers' snapshots (see socksnap.h). */
#include "socksnap.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io_dpdk.h"
#include "tcp.h"
#include "worker.h"
#include "../core/sockets.h"

static void add_conn(const struct nd_tcp_conn *c, void *arg)
{
    struct nd_dpdk_socksnap *s = arg;

    s->total++;
    if (s->nconns < s->cap)
        nd_tcp_conn_info(c, &s->conns[s->nconns++]);
}

static void add_listener(const struct nd_tcp_listen_info *l, void *arg)
{
    struct nd_dpdk_socksnap *s = arg;

    if (s->nlis < ND_DPDK_SNAP_LISTENERS)
        s->lis[s->nlis++] = *l;
}

void nd_dpdk_socksnap_fill(struct nd_dpdk_socksnap *s, struct nd_tcp_stack *tcp)
{
    uint32_t req = atomic_load_explicit(&s->req, memory_order_acquire);

    s->nconns = s->total = s->nlis = 0;
    if (s->conns)
        nd_tcp_foreach(tcp, add_conn, s);
    nd_tcp_foreach_listener(tcp, add_listener, s);
    atomic_store_explicit(&s->done, req, memory_order_release);
}

void nd_dpdk_socksnap_fini(struct nd_dpdk_socksnap *s)
{
    free(s->conns);
    s->conns = NULL;
}

static void endpoint(char *out, size_t len, uint32_t addr, uint16_t port)
{
    struct in_addr a = {.s_addr = htonl(addr)};
    char ip[INET_ADDRSTRLEN];

    inet_ntop(AF_INET, &a, ip, sizeof(ip));
    snprintf(out, len, "%s:%u", ip, port);
}

/* Segments of mss bytes in b, rounded up (cwnd and ssthresh are counted in segments, as ss). */
static uint32_t segs(uint32_t b, uint32_t mss)
{
    return mss ? (b + mss - 1) / mss : 0;
}

/* One worker's answer into l. */
static void take(struct nd_socklist *l, unsigned w, const struct nd_dpdk_socksnap *s)
{
    for (unsigned i = 0; i < s->nlis; i++) {
        const struct nd_tcp_listen_info *li = &s->lis[i];
        struct nd_sock *k = nd_socklist_add(l);

        if (!k)
            break;
        k->worker = (int)w;
        k->dpdk = k->listener = true;
        k->state = nd_tcp_state_name(ND_TCP_LISTEN);
        endpoint(k->local, sizeof(k->local), li->addr, li->port);
        snprintf(k->remote, sizeof(k->remote), "*:*");
        k->recv_q = li->queued;
        k->send_q = li->backlog;
        k->half_open = li->half_open;
    }
    l->total += s->total - s->nconns; /* beyond the worker's buffer: counted only */
    for (unsigned i = 0; i < s->nconns; i++) {
        const struct nd_tcp_info *ci = &s->conns[i];
        struct nd_sock *k = nd_socklist_add(l);

        if (!k)
            continue; /* beyond the list: counted */
        k->worker = (int)w;
        k->dpdk = k->info = true;
        k->state = nd_tcp_state_name(ci->state);
        endpoint(k->local, sizeof(k->local), ci->flow.laddr, ci->flow.lport);
        endpoint(k->remote, sizeof(k->remote), ci->flow.raddr, ci->flow.rport);
        k->recv_q = ci->rcv_queued;
        k->send_q = ci->snd_queued;
        k->rtt_us = ci->srtt_us;
        k->rttvar_us = ci->rttvar_us;
        k->rto_ms = ci->rto_ms;
        k->mss = ci->mss;
        k->cwnd = segs(ci->cwnd, ci->mss);
        k->ssthresh = ci->ssthresh >= 0x7fffffff ? 0 : segs(ci->ssthresh, ci->mss);
        k->snd_wscale = ci->snd_wscale;
        k->rcv_wscale = ci->rcv_wscale;
        k->retrans = ci->retransmits;
        k->bytes_acked = ci->bytes_acked;
        k->bytes_received = ci->bytes_received;
    }
}

void nd_io_dpdk_sockets(struct nd_socklist *l, unsigned timeout_ms)
{
    enum { NONE, ASK, WAIT, ANSWERED } st[ND_MAX_WORKERS];
    uint64_t deadline = nd_clock_us() + (uint64_t)timeout_ms * 1000;
    unsigned nw = nd_rt.nworkers < ND_MAX_WORKERS ? nd_rt.nworkers : ND_MAX_WORKERS;

    for (unsigned w = 0; w < nw; w++)
        st[w] = nd_io_dpdk_socksnap(w) ? ASK : NONE;
    for (;;) {
        struct timespec ts = {0, 200 * 1000};
        unsigned pending = 0;

        for (unsigned w = 0; w < nw; w++) {
            struct nd_dpdk_socksnap *s = nd_io_dpdk_socksnap(w);
            uint32_t req, done;

            if (st[w] == NONE || st[w] == ANSWERED)
                continue;
            req = atomic_load_explicit(&s->req, memory_order_relaxed);
            done = atomic_load_explicit(&s->done, memory_order_acquire);
            if (st[w] == WAIT && done == req) {
                st[w] = ANSWERED;
                continue;
            }
            pending++;
            /* a request of an earlier call that timed out is still pending: wait for it, then
             * ask again (the buffer is the worker's until it answers) */
            if (st[w] != ASK || done != req)
                continue;
            if (!s->conns && !(s->conns = calloc(s->cap ? s->cap : 1, sizeof(*s->conns)))) {
                st[w] = NONE;
                l->workers_silent |= 1ull << w;
                pending--;
                continue;
            }
            atomic_store_explicit(&s->req, req + 1, memory_order_release);
            nd_rt.workers[w].io->wake(&nd_rt.workers[w]);
            st[w] = WAIT;
        }
        if (!pending || nd_clock_us() >= deadline)
            break;
        nanosleep(&ts, NULL);
    }
    for (unsigned w = 0; w < nw; w++) {
        if (st[w] == ANSWERED)
            take(l, w, nd_io_dpdk_socksnap(w));
        else if (st[w] != NONE)
            l->workers_silent |= 1ull << w;
    }
}
