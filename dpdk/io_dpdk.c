/*
 * The dpdk I/O backend: struct nd_io_ops over the user-space TCP engine (dpdk/tcp.h) and the
 * packet path (dpdk/net/). One struct dp_worker per worker holds its queues on every port
 * (struct nd_dpdk_worker, with its struct nd_net and its side of the hand-over between workers),
 * its TCP stack on the worker's timer wheel, a pool of connection records and its listeners.
 *
 * One poll, run to completion:
 *   1. (idle back-off: a bounded sleep after ND_IO_DPDK_SPIN empty iterations, unless woken)
 *   2. nd_worker_clock_read(): the clock, not the timers yet
 *   3. nd_net_tick(), then nd_dpdk_rx(): an RX burst from each of its queues and the frames
 *      other workers handed over: Ethernet, ARP, IPv4, ICMP, and TCP segments into
 *      nd_tcp_input() (the engine keeps payload by mbuf reference); then nd_worker_timers(): the
 *      wheel (core timers and TCP timers alike). Input first: after an iteration that kept the
 *      core busy for milliseconds, the ACKs that came meanwhile are taken before the timers
 *      they beat fire (a loss probe or RTO would otherwise resend what had arrived)
 *   4. the engine's connection events are only recorded on the connection record (so that no
 *      core callback runs inside an engine or backend call); they are dispatched here, to the
 *      core's callbacks, together with listeners that have connections waiting
 *   5. nd_dpdk_flush(): one TX burst per port of everything queued by steps 3 and 4, then the
 *      frames other workers handed to its TX queues
 *   6. nodus sockets: a copy of the engine's connections when the main thread asked
 *
 * Nothing here allocates after worker_init: records come from a per-worker pool.
 */
#include "io_dpdk.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_version.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "ctl_dpdk.h"
#include "net/port.h"
#include "socksnap.h"
#include "tcp.h"
#include "worker.h"

#define DP_MAX_LISTEN 16     /* listening addresses per worker (the engine's max_listeners) */
#define DP_MIN_CONNS 4096    /* engine connection blocks per worker (incl. TIME_WAIT), at least */
#define DP_MAX_CONNS 65536   /* and at most (about 50 MB of blocks and records) */
#define DP_DISPATCH_ROUNDS 4 /* passes over new events per poll before yielding to RX */
#define DP_PORT_LO 32768     /* ephemeral ports, as Linux's ip_local_port_range */
#define DP_PORT_HI 60999
/* Zero-copy budgets per worker, out of its pool of ND_DPDK_MBUFS mbufs: the send-queue
 * descriptors that may hold received mbufs (spliced data; past it the engine copies into its send
 * chunks, as before zero-copy), and the mbufs held for heads parsed in place (past it heads are
 * copied into the session's buffer). What the receive queues hold is bounded by rcvbuf per
 * connection, as before. */
#define DP_ZC_SEGS 1024
#define DP_MAX_PINS 512

/* The backend's half of a connection the core holds (nd_conn.priv). */
struct dp_conn {
    struct nd_tcp_conn *tc; /* NULL once the core closed it */
    struct nd_conn *c;      /* NULL once the core closed it */
    struct dp_conn *next;   /* free list, or the event queue */
    struct dp_conn *rnext;  /* the write-retry list */
    unsigned ev;            /* ND_EV_* waiting for dispatch */
    bool queued, retry;
};

struct dp_worker;

/* A listening address on one worker (nd_conn.priv of the listen handles using it). */
struct dp_listen {
    struct nd_tcp_listener *tl;
    struct dp_worker *dp;
    uint32_t addr; /* host order; 0: any */
    uint16_t port;
    unsigned refs;     /* listen handles (snapshots) using it */
    struct nd_conn *c; /* the handle its events go to: the newest */
};

struct dp_worker {
    struct nd_dpdk_worker dw; /* first: nd_net's udata points here */
    struct nd_worker *w;
    struct nd_tcp_stack *tcp;
    struct dp_conn *recs, *free_recs;
    uint32_t nrecs;
    struct dp_conn *evq_head, *evq_tail;
    struct dp_conn *retry;
    struct dp_listen lis[DP_MAX_LISTEN];
    uint32_t lis_ready;            /* bit i: connections may wait on lis[i] */
    bool lis_unused;               /* a listener lost its last handle (listen_del) */
    unsigned idle;                 /* consecutive empty iterations */
    uint32_t pins;                 /* mbufs held for heads parsed in place (DP_MAX_PINS) */
    uint64_t pinned, pins_refused; /* counters: heads kept in place, and refused for the budget */
    uint32_t next_port;
    atomic_bool woken;
    atomic_bool settled; /* draining, no session, nothing left unacknowledged (dp_may_stop) */
    uint64_t settle_ms;  /* when dp_may_stop last scanned the engine */
    bool registered;
    struct nd_dpdk_socksnap sock; /* `nodus sockets`: asked by the main thread */
} __rte_cache_aligned;

static struct nd_dpdk dpdk;
static bool dpdk_up;
static unsigned idle_sleep_us = ND_IO_DPDK_IDLE_SLEEP_US;
static struct dp_worker *dpw[ND_MAX_WORKERS];

static inline struct dp_worker *dp_of(const struct nd_worker *w)
{
    return dpw[w->id];
}

/* ---- the engine's glue: mbuf references, segments out, segments in ---- */

static void mbuf_ref(void *pkt)
{
    rte_mbuf_refcnt_update(pkt, 1);
}

static void mbuf_unref(void *pkt)
{
    rte_pktmbuf_free(pkt);
}

static const struct nd_tcp_pkt_ops mbuf_ops = {.ref = mbuf_ref, .unref = mbuf_unref};

static int tcp_tx(struct nd_tcp_stack *s, const struct nd_tcp_tx *seg, void *udata)
{
    struct dp_worker *dp = udata;
    struct nd_net_iov iov[1 + ND_TCP_TX_PIECES];
    unsigned n = 1;

    (void)s;
    iov[0].base = seg->hdr;
    iov[0].len = seg->hdr_len;
    for (unsigned i = 0; i < seg->npiece && i < ND_TCP_TX_PIECES; i++, n++) {
        iov[n].base = seg->piece[i].data;
        iov[n].len = seg->piece[i].len;
    }
    /* the payload is copied into the frame (zero-copy would chain indirect mbufs: docs) */
    return nd_net_ip_send(&dp->dw.net, seg->flow.laddr, seg->flow.raddr, IPPROTO_TCP, iov, n,
                          seg->csum_partial ? ND_NET_CSUM_PARTIAL : ND_NET_CSUM_DONE);
}

static void tcp_in(struct nd_net *n, struct rte_mbuf *m, uint32_t src, uint32_t dst,
                   const uint8_t *tcp, uint32_t len)
{
    struct dp_worker *dp = n->udata;
    struct nd_tcp_ipinfo ip = {.src = src, .dst = dst, .csum_ok = true}; /* checked below us */

    nd_tcp_input(dp->tcp, &ip, tcp, len, m);
    rte_pktmbuf_free(m); /* the engine took references to what it keeps */
}

/* ---- connection records and events ---- */

static struct dp_conn *rec_get(struct dp_worker *dp)
{
    struct dp_conn *r = dp->free_recs;

    if (r) {
        dp->free_recs = r->next;
        memset(r, 0, sizeof(*r));
    }
    return r;
}

static void rec_put_if_idle(struct dp_worker *dp, struct dp_conn *r)
{
    if (r->c || r->queued || r->retry)
        return;
    r->next = dp->free_recs;
    dp->free_recs = r;
}

static void rec_queue(struct dp_worker *dp, struct dp_conn *r, unsigned ev)
{
    r->ev |= ev;
    if (r->queued)
        return;
    r->queued = true;
    r->next = NULL;
    if (dp->evq_tail)
        dp->evq_tail->next = r;
    else
        dp->evq_head = r;
    dp->evq_tail = r;
}

/* The engine's connection callback: recorded, dispatched by poll. */
static void conn_event(struct nd_tcp_conn *tc, unsigned ev, void *udata)
{
    struct dp_conn *r = udata;
    unsigned e = 0;

    (void)tc;
    if (!r->c)
        return;
    if (ev & ND_TCP_EV_READ)
        e |= ND_EV_READ;
    if (ev & (ND_TCP_EV_WRITE | ND_TCP_EV_CONNECTED))
        e |= ND_EV_WRITE;
    if (ev & ND_TCP_EV_CLOSED)
        e |= ND_EV_ERROR | ND_EV_READ | ND_EV_WRITE; /* as posix reports EPOLLHUP/EPOLLERR */
    if (e)
        rec_queue(dp_of(r->c->w), r, e);
}

/* Connections may wait on l (or not): dispatch() calls its handle while they may. */
static void lis_ready(struct dp_listen *l, bool ready)
{
    uint32_t bit = 1u << (l - l->dp->lis);

    if (ready)
        l->dp->lis_ready |= bit;
    else
        l->dp->lis_ready &= ~bit;
}

static void listen_event(struct nd_tcp_listener *tl, void *udata)
{
    (void)tl;
    lis_ready(udata, true);
}

/* Runs the core's callbacks for what happened; returns how many it ran. */
static int dispatch(struct dp_worker *dp)
{
    int n = 0;

    /* writers refused for want of engine send chunks (the pool, not their buffer, was full):
     * no ACK of theirs will wake them, so they get a WRITE at the next iteration */
    while (dp->retry) {
        struct dp_conn *r = dp->retry;

        dp->retry = r->rnext;
        r->retry = false;
        if (r->c)
            rec_queue(dp, r, ND_EV_WRITE);
        else
            rec_put_if_idle(dp, r);
    }
    for (unsigned round = 0; round < DP_DISPATCH_ROUNDS; round++) {
        int before = n;

        while (dp->evq_head) {
            struct dp_conn *r = dp->evq_head;
            unsigned ev = r->ev;

            dp->evq_head = r->next;
            if (!dp->evq_head)
                dp->evq_tail = NULL;
            r->queued = false;
            r->ev = 0;
            if (!r->c) {
                rec_put_if_idle(dp, r);
                continue;
            }
            r->c->cb(r->c, ev);
            n++;
        }
        for (uint32_t m = dp->lis_ready; m; m &= m - 1) {
            struct dp_listen *l = &dp->lis[__builtin_ctz(m)];

            if (l->tl && l->c && !dp->w->draining) {
                lis_ready(l, false); /* accept sets it again while it takes connections */
                l->c->cb(l->c, ND_EV_READ);
                n++;
            }
        }
        if (n == before)
            break;
    }
    return n;
}

/* ---- worker ---- */

static void thread_register(struct dp_worker *dp)
{
    if (dp->registered)
        return;
    dp->registered = true;
    /* an lcore id for this thread, so that it uses its mempool cache */
    if (rte_lcore_id() == LCORE_ID_ANY && rte_thread_register() < 0)
        nd_warn("dpdk: worker %u: rte_thread_register failed: mbufs without a cache", dp->w->id);
}

/* Connection blocks per worker: each client connection may have an upstream one, and closed
 * connections wait in TIME_WAIT (the oldest orphaned one is recycled when the pool runs out), so
 * twice this worker's share of node.max_connections, and some room. */
static uint32_t conn_blocks(void)
{
    struct nd_snap *s = atomic_load(&nd_rt.current);
    uint64_t n = DP_MIN_CONNS, nw = nd_rt.nworkers ? nd_rt.nworkers : 1;

    if (s)
        n = 2 * (((uint64_t)s->cfg->node.max_connections + nw - 1) / nw) + 1024;
    return n < DP_MIN_CONNS ? DP_MIN_CONNS : n > DP_MAX_CONNS ? DP_MAX_CONNS : (uint32_t)n;
}

static int dp_worker_init(struct nd_worker *w)
{
    struct nd_tcp_config tc;
    struct dp_worker *dp;
    uint32_t mss = 1460;
    int err = 0;

    if (!dpdk_up || w->id >= ND_MAX_WORKERS)
        return -ENODEV;
    dp = aligned_alloc(RTE_CACHE_LINE_SIZE, sizeof(*dp));
    if (!dp)
        return -ENOMEM;
    memset(dp, 0, sizeof(*dp));
    dp->w = w;
    if (nd_dpdk_worker_init(&dpdk, &dp->dw, w->id, nd_clock_us() / 1000) < 0) {
        free(dp);
        return -EINVAL;
    }
    dp->dw.ops.tcp_input = tcp_in;
    dp->dw.net.udata = dp; /* == &dp->dw, which is first */
    for (unsigned p = 0; p < dpdk.sh.nports; p++)
        if (dpdk.sh.port[p].mtu - 40u < mss)
            mss = dpdk.sh.port[p].mtu - 40u;
    nd_tcp_config_defaults(&tc);
    dp->nrecs = conn_blocks();
    tc.max_conns = dp->nrecs;
    tc.max_listeners = DP_MAX_LISTEN;
    tc.max_segs = 32768;
    tc.max_chunks = 8192; /* 16 MiB of copied send data per worker */
    tc.max_zc_segs = DP_ZC_SEGS;
    tc.rcvbuf = tc.sndbuf = 1024 * 1024; /* 256 KiB held a 1 GiB transfer to ~70 MB/s on veth */
    tc.mss = mss;
    tc.csum_offload = nd_net_csum_offload(&dpdk.sh, ND_NET_OL_TCP_CKSUM);
    tc.tx = tcp_tx;
    tc.udata = dp;
    tc.pkt_ops = &mbuf_ops;
    tc.wheel = &w->wheel; /* the worker advances it; the engine's timers fire from it */
    dp->tcp = nd_tcp_stack_new(&tc, &err);
    dp->recs = calloc(dp->nrecs, sizeof(*dp->recs));
    if (!dp->tcp || !dp->recs) {
        nd_tcp_stack_free(dp->tcp);
        free(dp->recs);
        nd_dpdk_worker_fini(&dp->dw);
        free(dp);
        return err ? err : -ENOMEM;
    }
    for (unsigned i = dp->nrecs; i-- > 0;) {
        dp->recs[i].next = dp->free_recs;
        dp->free_recs = &dp->recs[i];
    }
    dp->next_port = DP_PORT_LO + (uint32_t)(nd_rand(w) % (DP_PORT_HI - DP_PORT_LO + 1));
    atomic_init(&dp->woken, false);
    atomic_init(&dp->settled, false);
    dp->sock.cap = DP_MAX_CONNS;
    dpw[w->id] = dp;
    return 0;
}

static void dp_worker_fini(struct nd_worker *w)
{
    struct dp_worker *dp = w->id < ND_MAX_WORKERS ? dpw[w->id] : NULL;

    if (!dp)
        return;
    /* the worker thread has ended; this runs on the main thread (an EAL lcore) */
    {
        uint64_t bytes;
        unsigned n = nd_tcp_unacked_orphans(dp->tcp, true, &bytes);

        /* only a drain timeout leaves data (idle upstream connections closed after the loop
         * leave a FIN at most) */
        if (n)
            nd_warn("dpdk worker %u: stopped with %u closed connection(s) whose peers had not "
                    "acknowledged all data (%llu bytes unsent or unacknowledged)",
                    w->id, n, (unsigned long long)bytes);
    }
    nd_tcp_stack_free(dp->tcp); /* releases the mbufs it held */
    nd_dpdk_worker_fini(&dp->dw);
    nd_dpdk_socksnap_fini(&dp->sock);
    free(dp->recs);
    dpw[w->id] = NULL;
    free(dp);
}

static void idle_backoff(struct dp_worker *dp)
{
    struct timespec ts;
    uint64_t us = idle_sleep_us;
    int timeout_ms;

    if (!us || dp->idle < ND_IO_DPDK_SPIN || !(timeout_ms = nd_worker_timeout(dp->w)))
        return;
    if (atomic_exchange_explicit(&dp->woken, false, memory_order_acq_rel) ||
        nd_dpdk_pending(&dp->dw))
        return;
    if ((uint64_t)timeout_ms * 1000 < us)
        us = (uint64_t)timeout_ms * 1000;
    ts.tv_sec = 0;
    ts.tv_nsec = (long)us * 1000;
    nanosleep(&ts, NULL);
}

static int dp_poll(struct nd_worker *w)
{
    struct dp_worker *dp = dp_of(w);
    unsigned rx, fired;
    uint64_t now;
    int n;

    thread_register(dp);
    idle_backoff(dp);
    nd_worker_clock_read(w); /* the clock; the timers after the input (step 3) */
    now = nd_now_ms(w);
    nd_net_tick(&dp->dw.net, now);
    nd_tcp_batch_begin(dp->tcp); /* one ACK per connection for what the burst brought */
    rx = nd_dpdk_rx(&dp->dw);    /* its queues, and what other workers handed over */
    nd_tcp_batch_end(dp->tcp);
    fired = nd_worker_timers(w); /* the engine's timers fire here: their events are recorded */
    nd_tcp_advance(dp->tcp, now);
    /* listeners no snapshot uses any more (listen_del): reload re-adds before this point */
    for (unsigned i = 0; dp->lis_unused && i < DP_MAX_LISTEN; i++)
        if (dp->lis[i].tl && !dp->lis[i].refs) {
            nd_tcp_unlisten(dp->lis[i].tl);
            lis_ready(&dp->lis[i], false);
            memset(&dp->lis[i], 0, sizeof(dp->lis[i]));
        }
    dp->lis_unused = false;
    n = dispatch(dp);
    n += nd_ctl_dpdk_poll(w->id, now); /* control-plane sockets: one ring check when idle */
    rx += nd_dpdk_flush(&dp->dw);      /* with other workers' frames for its TX queues */
    nd_dpdk_socksnap_serve(&dp->sock, dp->tcp);
    /* busy: frames in or out, callbacks, or timers (a delayed ACK is work too) */
    rx += fired;
    if (rx || n)
        dp->idle = 0;
    else if (dp->idle < UINT32_MAX)
        dp->idle++;
    return (int)rx + n;
}

/* A draining worker stops when its sessions are gone (the worker loop checks that) and its peers
 * have acknowledged all its engine still sends for connections the proxy has closed: the tail of a
 * response, its FIN (an in-flight response is finished, as Envoy and HAProxy drain; a stopped
 * stack would never retransmit a lost segment). A worker whose queues carry other workers' frames
 * keeps polling until every client connection is closed and every worker has settled so. The
 * drain timeout bounds it all (dp_worker_fini reports what was left). */
static bool dp_may_stop(struct nd_worker *w)
{
    struct dp_worker *dp = dp_of(w);
    uint64_t now = nd_now_ms(w);

    if (dp->settle_ms != now) { /* a scan of the connection blocks, at most once a millisecond */
        dp->settle_ms = now;
        atomic_store_explicit(&dp->settled, nd_tcp_unacked_orphans(dp->tcp, false, NULL) == 0,
                              memory_order_release);
    }
    if (!atomic_load_explicit(&dp->settled, memory_order_acquire))
        return false;
    if (!nd_dpdk_serves_others(&dp->dw))
        return true;
    if (atomic_load_explicit(&nd_rt.conns, memory_order_relaxed) != 0)
        return false;
    for (unsigned i = 0; i < nd_rt.nworkers && i < ND_MAX_WORKERS; i++)
        if (dpw[i] && !atomic_load_explicit(&dpw[i]->settled, memory_order_acquire))
            return false;
    return true;
}

static void dp_wake(struct nd_worker *w)
{
    struct dp_worker *dp = w->id < ND_MAX_WORKERS ? dpw[w->id] : NULL;

    if (dp)
        atomic_store_explicit(&dp->woken, true, memory_order_release);
}

/* ---- listening ---- */

static int v4(const struct nd_addr *a, uint32_t *ip, uint16_t *port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;

    if (a->ss.ss_family != AF_INET)
        return -EAFNOSUPPORT;
    *ip = ntohl(sin->sin_addr.s_addr);
    *port = ntohs(sin->sin_port);
    return 0;
}

static int dp_listen_add(struct nd_worker *w, struct nd_conn *lc)
{
    struct dp_worker *dp = dp_of(w);
    const struct nd_listen_handle *lh = container_of(lc, struct nd_listen_handle, conn);
    struct dp_listen *l = NULL;
    uint32_t addr;
    uint16_t port;
    int err;

    thread_register(dp);
    if ((err = v4(&lh->lc->addr, &addr, &port)) < 0)
        return err;
    if (addr && nd_net_local_port(&dpdk.sh, addr) < 0)
        return -EADDRNOTAVAIL;
    for (unsigned i = 0; i < DP_MAX_LISTEN && !l; i++)
        if (dp->lis[i].tl && dp->lis[i].addr == addr && dp->lis[i].port == port)
            l = &dp->lis[i]; /* kept across a reload: nothing waiting is reset */
    for (unsigned i = 0; i < DP_MAX_LISTEN && !l; i++)
        if (!dp->lis[i].tl) {
            l = &dp->lis[i];
            l->dp = dp;
            l->tl = nd_tcp_listen(dp->tcp, addr, port, 1024, listen_event, l, &err);
            if (!l->tl)
                return err;
            l->addr = addr;
            l->port = port;
            l->refs = 0;
        }
    if (!l)
        return -ENOSPC;
    l->refs++;
    l->c = lc;
    lis_ready(l, true); /* anything queued meanwhile goes to the new handle */
    lc->w = w;
    lc->priv = l;
    lc->fd = 0;
    return 0;
}

static void dp_listen_del(struct nd_worker *w, struct nd_conn *lc)
{
    struct dp_listen *l = lc->priv;

    (void)w;
    if (!l)
        return;
    if (l->c == lc)
        l->c = NULL;
    if (l->refs && !--l->refs)
        l->dp->lis_unused = true; /* the next poll stops listening, unless a listen_add comes */
    lc->priv = NULL;
    lc->fd = -1;
}

static int attach(struct dp_worker *dp, struct nd_conn *c, struct nd_tcp_conn *tc,
                  struct dp_conn *r)
{
    r->tc = tc;
    r->c = c;
    c->priv = r;
    c->fd = 0;
    c->w = dp->w;
    return 0;
}

static int dp_accept(struct nd_conn *lc, struct nd_conn *c, char *peer, size_t peerlen)
{
    struct dp_listen *l = lc->priv;
    struct dp_worker *dp = dp_of(lc->w);
    struct nd_tcp_conn *tc;
    struct nd_tcp_info info;
    struct dp_conn *r;
    struct in_addr ia;

    if (!l || !l->tl)
        return -EINVAL;
    if (!dp->free_recs) {
        lis_ready(l, true); /* try again next iteration */
        return -ENOBUFS;
    }
    tc = nd_tcp_accept(l->tl);
    if (!tc) {
        lis_ready(l, false);
        return -EAGAIN;
    }
    lis_ready(l, true); /* maybe more: level-triggered */
    r = rec_get(dp);
    attach(dp, c, tc, r);
    nd_tcp_conn_info(tc, &info);
    ia.s_addr = htonl(info.flow.raddr);
    inet_ntop(AF_INET, &ia, peer, (socklen_t)peerlen);
    nd_tcp_set_cb(tc, conn_event, r); /* what happened in the queue is recorded now */
    return 0;
}

/* A local port for raddr:rport from laddr whose flow belongs to this worker: the NIC's RSS or
 * the hand-over steers it here (nd_handoff_flow_worker: the symmetric key hashes both directions
 * alike; the flow as its segments will arrive, from the peer to us). */
static uint16_t pick_port(struct dp_worker *dp, uint32_t laddr, uint32_t raddr, uint16_t rport)
{
    uint32_t range = DP_PORT_HI - DP_PORT_LO + 1;

    for (unsigned tries = 0; tries < range; tries++) {
        uint16_t lport = (uint16_t)dp->next_port;

        dp->next_port = dp->next_port >= DP_PORT_HI ? DP_PORT_LO : dp->next_port + 1;
        if (nd_handoff_flow_worker(&dpdk.ho, raddr, laddr, rport, lport) == dp->dw.id)
            return lport;
    }
    return 0;
}

/* An active open from the port the route to raddr leaves by, on a source port whose flow lands
 * on this worker. The connection or NULL with *err. */
static struct nd_tcp_conn *open_flow(struct dp_worker *dp, uint32_t raddr, uint16_t rport,
                                     nd_tcp_conn_cb cb, void *udata, int *err)
{
    struct nd_tcp_flow f = {.raddr = raddr, .rport = rport};
    struct nd_tcp_conn *tc = NULL;
    unsigned port;
    uint32_t nh;

    if (nd_net_route(&dpdk.sh, f.raddr, &port, &nh) < 0) {
        *err = -ENETUNREACH;
        return NULL;
    }
    f.laddr = dpdk.sh.port[port].ip;
    *err = 0;
    for (unsigned tries = 0; tries < 16; tries++) {
        if (!(f.lport = pick_port(dp, f.laddr, f.raddr, f.rport))) {
            *err = -EADDRNOTAVAIL;
            break;
        }
        tc = nd_tcp_connect(dp->tcp, &f, cb, udata, err);
        if (tc || *err != -EADDRINUSE)
            break;
    }
    if (!tc && !*err)
        *err = -EADDRNOTAVAIL;
    return tc;
}

static int dp_connect(struct nd_worker *w, struct nd_conn *c, const struct nd_addr *a)
{
    struct dp_worker *dp = dp_of(w);
    struct nd_tcp_conn *tc;
    struct dp_conn *r;
    uint32_t raddr;
    uint16_t rport;
    int err;

    thread_register(dp);
    if ((err = v4(a, &raddr, &rport)) < 0)
        return err;
    if (!(r = rec_get(dp)))
        return -ENOBUFS;
    r->c = c; /* events the engine records during the call find their owner */
    if (!(tc = open_flow(dp, raddr, rport, conn_event, r, &err))) {
        r->c = NULL;
        rec_put_if_idle(dp, r);
        return err;
    }
    return attach(dp, c, tc, r);
}

static int dp_connect_result(struct nd_conn *c)
{
    struct dp_conn *r = c->priv;

    if (!r || !r->tc)
        return -ENOTCONN;
    return -nd_tcp_error(r->tc);
}

static ssize_t dp_read(struct nd_conn *c, void *buf, size_t len)
{
    struct dp_conn *r = c->priv;

    if (!r || !r->tc)
        return -EBADF;
    /* a copy out of the engine's mbuf pieces (zero-copy reads: docs/dpdk.md) */
    return nd_tcp_read(r->tc, buf, len);
}

/* A send refused with room in the connection's buffer: the engine's pools (chunks, descriptors)
 * ran out, and no ACK of this connection will wake the writer: a WRITE event at the next
 * iteration instead. */
static void retry_if_pool(struct dp_worker *dp, struct dp_conn *r)
{
    if (r->retry || !nd_tcp_send_space(r->tc))
        return;
    r->retry = true;
    r->rnext = dp->retry;
    dp->retry = r;
}

static ssize_t dp_writev(struct nd_conn *c, const struct iovec *iov, int iovcnt)
{
    struct dp_conn *r = c->priv;
    struct nd_tcp_piece v[8];
    ssize_t n;

    if (!r || !r->tc)
        return -EBADF;
    if (iovcnt > 8)
        iovcnt = 8; /* a short write: the caller writes the rest */
    for (int i = 0; i < iovcnt; i++)
        v[i] = (struct nd_tcp_piece){iov[i].iov_base, (uint32_t)iov[i].iov_len, NULL};
    /* all of it before segments are cut: a head and a body written together leave together */
    n = nd_tcp_sendv(r->tc, v, iovcnt);
    if (n == -EAGAIN)
        retry_if_pool(dp_of(c->w), r);
    return n;
}

static int dp_peek(struct nd_conn *c, struct iovec *iov, int max)
{
    struct dp_conn *r = c->priv;
    struct nd_tcp_piece pc[ND_IO_PEEK_MAX];
    int n, err;

    if (!r || !r->tc)
        return -EBADF;
    n = nd_tcp_recv_pieces(r->tc, pc, max < ND_IO_PEEK_MAX ? max : ND_IO_PEEK_MAX);
    for (int i = 0; i < n; i++)
        iov[i] = (struct iovec){(void *)(uintptr_t)pc[i].data, pc[i].len};
    if (n)
        return n;
    if ((err = nd_tcp_error(r->tc)))
        return -err;
    return nd_tcp_eof(r->tc) ? 0 : -EAGAIN;
}

static void dp_consume(struct nd_conn *c, size_t n)
{
    struct dp_conn *r = c->priv;

    if (r && r->tc)
        nd_tcp_recv_consume(r->tc, n);
}

/* The mbuf holding received byte p, with a reference of ours, within the worker's budget. */
static void *dp_pin(struct nd_conn *c, const void *p)
{
    struct dp_conn *r = c->priv;
    struct dp_worker *dp = dp_of(c->w);
    struct nd_tcp_piece pc[4];
    const uint8_t *b = p;
    int n;

    if (!r || !r->tc)
        return NULL;
    n = nd_tcp_recv_pieces(r->tc, pc, 4);
    for (int i = 0; i < n; i++) {
        if (b < pc[i].data || b >= pc[i].data + pc[i].len || !pc[i].pkt)
            continue;
        if (dp->pins >= DP_MAX_PINS) {
            if (!(dp->pins_refused++ % 100000))
                nd_info("dpdk: worker %u holds %u mbufs for heads parsed in place: the budget is "
                        "spent, further heads are copied (nodus_dpdk_zc_heads_total{how=refused})",
                        dp->w->id, dp->pins);
            return NULL;
        }
        rte_mbuf_refcnt_update(pc[i].pkt, 1);
        dp->pins++;
        dp->pinned++;
        return pc[i].pkt;
    }
    return NULL;
}

static void dp_unpin(struct nd_worker *w, void *pin)
{
    rte_pktmbuf_free(pin);
    dp_of(w)->pins--;
}

static ssize_t dp_splice(struct nd_conn *to, struct nd_conn *from, size_t len)
{
    struct dp_conn *rt = to->priv, *rf = from->priv;
    ssize_t n;

    if (!rt || !rt->tc || !rf || !rf->tc)
        return -EBADF;
    n = nd_tcp_splice(rt->tc, rf->tc, len);
    if (n == -EAGAIN)
        retry_if_pool(dp_of(to->w), rt);
    return n;
}

static void dp_shutdown_write(struct nd_conn *c)
{
    struct dp_conn *r = c->priv;

    if (r && r->tc)
        nd_tcp_shutdown(r->tc);
}

static void dp_close(struct nd_conn *c, bool reset)
{
    struct dp_conn *r = c->priv;

    if (c->fd < 0)
        return;
    c->fd = -1;
    c->priv = NULL;
    if (!r)
        return;
    r->c = NULL;
    if (r->tc) {
        struct nd_tcp_conn *tc = r->tc;

        r->tc = NULL;
        if (reset)
            nd_tcp_abort(tc);
        else
            nd_tcp_close(tc);
    }
    rec_put_if_idle(dp_of(c->w), r);
}

const struct nd_io_ops nd_io_dpdk = {
    .name = "dpdk",
    .worker_init = dp_worker_init,
    .worker_fini = dp_worker_fini,
    .poll = dp_poll,
    .wake = dp_wake,
    .listen_open = NULL, /* listeners are the engine's, per worker (dp_listen_add) */
    .listen_add = dp_listen_add,
    .listen_del = dp_listen_del,
    .accept = dp_accept,
    .connect = dp_connect,
    .connect_result = dp_connect_result,
    .read = dp_read,
    .writev = dp_writev,
    .peek = dp_peek,
    .consume = dp_consume,
    .pin = dp_pin,
    .unpin = dp_unpin,
    .splice = dp_splice,
    .shutdown_write = dp_shutdown_write,
    .close = dp_close,
    .may_stop = dp_may_stop,
};

/* ---- for the control-plane sockets of ctl_dpdk.c (the worker's own thread) ---- */

struct nd_net *nd_io_dpdk_net(unsigned wid)
{
    return &dpw[wid]->dw.net;
}

struct nd_tcp_stack *nd_io_dpdk_tcp(unsigned wid)
{
    return dpw[wid]->tcp;
}

struct nd_tcp_conn *nd_io_dpdk_open(unsigned wid, uint32_t raddr, uint16_t rport, nd_tcp_conn_cb cb,
                                    void *udata, int *err)
{
    return open_flow(dpw[wid], raddr, rport, cb, udata, err);
}

bool nd_io_dpdk_is_local(uint32_t addr)
{
    return dpdk_up && nd_net_local_port(&dpdk.sh, addr) >= 0;
}

void nd_io_dpdk_wake(unsigned wid)
{
    if (wid < ND_MAX_WORKERS && dpw[wid])
        atomic_store_explicit(&dpw[wid]->woken, true, memory_order_release);
}

/* ---- main thread ---- */

int nd_io_dpdk_start(const struct nd_dpdk_conf *c, unsigned nworkers, unsigned idle_us, char *err,
                     size_t errlen)
{
    if (dpdk_up) {
        snprintf(err, errlen, "already started");
        return -1;
    }
    if (nd_dpdk_start(&dpdk, c, nworkers, err, errlen) < 0)
        return -1;
    idle_sleep_us = idle_us;
    dpdk_up = true;
    return 0;
}

struct nd_dpdk_socksnap *nd_io_dpdk_socksnap(unsigned worker)
{
    return worker < ND_MAX_WORKERS && dpw[worker] ? &dpw[worker]->sock : NULL;
}

const char *nd_io_dpdk_version(void)
{
    return rte_version();
}

void nd_io_dpdk_stop(void)
{
    if (!dpdk_up)
        return;
    nd_dpdk_stop(&dpdk);
    dpdk_up = false;
}

void nd_io_dpdk_describe(struct nd_sbuf *out)
{
    if (dpdk_up)
        nd_sbuf_printf(out, "started in %u ms: EAL %u ms, mbuf pools %u ms, ports %u ms\n",
                       dpdk.eal_ms + dpdk.pools_ms + dpdk.ports_ms, dpdk.eal_ms, dpdk.pools_ms,
                       dpdk.ports_ms);
    for (unsigned i = 0; dpdk_up && i < dpdk.sh.nports; i++) {
        const struct nd_dpdk_port_info *in = &dpdk.info[i];
        const struct nd_net_port *p = &dpdk.sh.port[i];
        char mac[RTE_ETHER_ADDR_FMT_SIZE], ip[16], mbps[24] = "";
        uint32_t speed = 0;
        bool up = nd_dpdk_link(&dpdk, i, &speed);

        if (up && speed)
            snprintf(mbps, sizeof(mbps), " %u Mbps", speed);
        rte_ether_format_addr(mac, sizeof(mac), &p->mac);
        nd_sbuf_printf(out,
                       "port %u: %s (%s) mac %s ip %s/%u mtu %u queues rx %u/%u tx %u/%u "
                       "steering %s link %s%s tcp-csum %s\n",
                       i, in->name, in->driver, mac, nd_ipv4_str(p->ip, ip), p->prefix, p->mtu,
                       in->nrxq, in->max_rxq, in->ntxq, in->max_txq, nd_dpdk_steer_name(in->steer),
                       up ? "up" : "down", mbps, p->tx_ol & ND_NET_OL_TCP_CKSUM ? "hw" : "sw");
    }
}

/* The engine's counters, by name. */
#define TCP_STAT(f)                                                                                \
    {                                                                                              \
#f, offsetof(struct nd_tcp_stats, f)                                                       \
    }
static const struct {
    const char *name;
    size_t off;
} tcp_stats[] = {
    TCP_STAT(segs_in),
    TCP_STAT(segs_out),
    TCP_STAT(bad_csum),
    TCP_STAT(bad_hdr),
    TCP_STAT(rst_sent),
    TCP_STAT(rst_rcvd),
    TCP_STAT(challenge_acks),
    TCP_STAT(challenge_acks_limited),
    TCP_STAT(oow_acks_limited),
    TCP_STAT(syncookies_sent),
    TCP_STAT(syncookies_ok),
    TCP_STAT(syncookies_bad),
    TCP_STAT(retransmits),
    TCP_STAT(rto_expiries),
    TCP_STAT(fast_retransmits),
    TCP_STAT(persist_probes),
    TCP_STAT(keepalive_probes),
    TCP_STAT(active_opens),
    TCP_STAT(passive_opens),
    TCP_STAT(conn_timeouts),
    TCP_STAT(conn_resets),
    TCP_STAT(tw_reused),
    TCP_STAT(tw_recycled),
    TCP_STAT(drop_no_conn),
    TCP_STAT(drop_paws),
    TCP_STAT(drop_out_of_window),
    TCP_STAT(drop_bad_ack),
    TCP_STAT(drop_no_mem),
    TCP_STAT(drop_backlog),
    TCP_STAT(drop_ooo_full),
    TCP_STAT(drop_tx),
    TCP_STAT(loss_probes),
    TCP_STAT(loss_probes_spurious),
    TCP_STAT(splice_moved),
    TCP_STAT(splice_copied),
    TCP_STAT(splice_zc_limited),
};
#undef TCP_STAT

static uint64_t ld64(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void family(struct nd_sbuf *out, const char *name, const char *type, const char *help)
{
    nd_sbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The hand-over between workers (dpdk/net/handoff.h), per worker. */
static void handoff_metrics(struct nd_sbuf *out)
{
    static const struct {
        const char *label;
        size_t off;
    } frames[] = {{"rx_out", offsetof(struct nd_ho_stats, rx_out)},
                  {"rx_in", offsetof(struct nd_ho_stats, rx_in)},
                  {"tx_out", offsetof(struct nd_ho_stats, tx_out)},
                  {"tx_in", offsetof(struct nd_ho_stats, tx_in)}},
      drops[] = {{"rx_ring_full", offsetof(struct nd_ho_stats, rx_full)},
                 {"tx_ring_full", offsetof(struct nd_ho_stats, tx_full)},
                 {"tx_queue_full", offsetof(struct nd_ho_stats, tx_refused)},
                 {"arp_ring_full", offsetof(struct nd_ho_stats, arp_full)}};

    family(out, "nodus_dpdk_handoff_frames_total", "counter",
           "Frames handed between workers: rx_out received here for another worker's flow, rx_in "
           "received by another worker for this one's, tx_out sent through another worker's TX "
           "queue, tx_in sent for other workers.");
    for (unsigned w = 0; w < dpdk.nworkers; w++)
        for (size_t k = 0; k < sizeof(frames) / sizeof(frames[0]); k++)
            nd_sbuf_printf(
                out, "nodus_dpdk_handoff_frames_total{worker=\"%u\",dir=\"%s\"} %" PRIu64 "\n", w,
                frames[k].label,
                ld64((const uint64_t *)((const char *)&dpdk.ho.st[w] + frames[k].off)));
    family(out, "nodus_dpdk_handoff_drops_total", "counter",
           "Frames or ARP entries the hand-over dropped, by reason (a ring or the TX queue full).");
    for (unsigned w = 0; w < dpdk.nworkers; w++)
        for (size_t k = 0; k < sizeof(drops) / sizeof(drops[0]); k++)
            nd_sbuf_printf(
                out, "nodus_dpdk_handoff_drops_total{worker=\"%u\",reason=\"%s\"} %" PRIu64 "\n", w,
                drops[k].label,
                ld64((const uint64_t *)((const char *)&dpdk.ho.st[w] + drops[k].off)));
    family(out, "nodus_dpdk_handoff_arp_total", "counter",
           "ARP entries a worker learned and passed to the other workers.");
    for (unsigned w = 0; w < dpdk.nworkers; w++)
        nd_sbuf_printf(out, "nodus_dpdk_handoff_arp_total{worker=\"%u\"} %" PRIu64 "\n", w,
                       ld64(&dpdk.ho.st[w].arp_out));
}

/* The heads parsed in place (the pins of io.h), summed over the workers. */
static void mbuf_metrics(struct nd_sbuf *out)
{
    uint64_t pinned = 0, refused = 0, held = 0;

    /* the pools themselves: nodus_dpdk_mbufs{worker,state}, with the port counters */
    for (unsigned i = 0; i < ND_MAX_WORKERS; i++)
        if (dpw[i]) {
            pinned += ld64(&dpw[i]->pinned);
            refused += ld64(&dpw[i]->pins_refused);
            held += __atomic_load_n(&dpw[i]->pins, __ATOMIC_RELAXED);
        }
    family(out, "nodus_dpdk_zc_heads_total", "counter",
           "HTTP heads parsed where they arrived, their mbuf held until the exchange ends "
           "(in_place), or copied because the budget of held mbufs was spent (refused).");
    nd_sbuf_printf(out,
                   "nodus_dpdk_zc_heads_total{how=\"in_place\"} %" PRIu64
                   "\nnodus_dpdk_zc_heads_total{how=\"refused\"} %" PRIu64 "\n",
                   pinned, refused);
    family(out, "nodus_dpdk_zc_held_mbufs", "gauge",
           "mbufs held for HTTP heads parsed in place, all workers.");
    nd_sbuf_printf(out, "nodus_dpdk_zc_held_mbufs %" PRIu64 "\n", held);
}

void nd_io_dpdk_metrics(struct nd_sbuf *out)
{
    struct nd_net_stats s[ND_NET_MAX_PORTS + 1];
    unsigned np = dpdk.sh.nports, nw = 0;
    uint32_t speed[ND_NET_MAX_PORTS] = {0};
    bool up[ND_NET_MAX_PORTS];

    if (!dpdk_up)
        return;
    memset(s, 0, sizeof(s));
    for (unsigned i = 0; i < ND_MAX_WORKERS; i++) {
        if (!dpw[i])
            continue;
        nw++;
        for (unsigned p = 0; p < np; p++)
            nd_net_stats_add(&s[p], &dpw[i]->dw.net, p);
        nd_net_stats_add(&s[np], &dpw[i]->dw.net, ND_NET_MAX_PORTS);
    }
    family(out, "nodus_dpdk_port_info", "gauge", "DPDK ports (always 1; the labels describe).");
    for (unsigned p = 0; p < np; p++) {
        char mac[RTE_ETHER_ADDR_FMT_SIZE], ip[16];

        rte_ether_format_addr(mac, sizeof(mac), &dpdk.sh.port[p].mac);
        nd_sbuf_printf(out,
                       "nodus_dpdk_port_info{port=\"%u\",dev=\"%s\",driver=\"%s\",mac=\"%s\","
                       "ip=\"%s/%u\",rx_queues=\"%u\",tx_queues=\"%u\",steering=\"%s\"} 1\n",
                       p, dpdk.info[p].name, dpdk.info[p].driver, mac,
                       nd_ipv4_str(dpdk.sh.port[p].ip, ip), dpdk.sh.port[p].prefix,
                       dpdk.info[p].nrxq, dpdk.info[p].ntxq,
                       nd_dpdk_steer_name(dpdk.info[p].steer));
    }
    family(out, "nodus_dpdk_port_link_up", "gauge", "Link state of a DPDK port (1: up).");
    for (unsigned p = 0; p < np; p++) {
        up[p] = nd_dpdk_link(&dpdk, p, &speed[p]);
        nd_sbuf_printf(out, "nodus_dpdk_port_link_up{port=\"%u\"} %d\n", p, up[p]);
    }
    family(out, "nodus_dpdk_port_link_speed_mbps", "gauge",
           "Link speed of a DPDK port in Mb/s, as the PMD reports it (0 when down or unknown).");
    for (unsigned p = 0; p < np; p++)
        nd_sbuf_printf(out, "nodus_dpdk_port_link_speed_mbps{port=\"%u\"} %u\n", p,
                       up[p] ? speed[p] : 0);
#define PORT_COUNTER(metric, field, help)                                                          \
    family(out, metric, "counter", help);                                                          \
    for (unsigned p = 0; p < np; p++)                                                              \
        nd_sbuf_printf(out, metric "{port=\"%u\"} %" PRIu64 "\n", p, s[p].field);
    PORT_COUNTER("nodus_dpdk_port_rx_packets_total", rx_pkts, "Frames received into the stack.")
    PORT_COUNTER("nodus_dpdk_port_rx_bytes_total", rx_bytes, "Bytes received into the stack.")
    PORT_COUNTER("nodus_dpdk_port_tx_packets_total", tx_pkts, "Frames the NIC took.")
    PORT_COUNTER("nodus_dpdk_port_tx_bytes_total", tx_bytes, "Bytes the NIC took.")
    PORT_COUNTER("nodus_dpdk_port_tx_bursts_total", tx_bursts,
                 "TX bursts handed to the PMD (on af_packet and af_xdp a sendto() each).")
#undef PORT_COUNTER
    family(out, "nodus_dpdk_port_hw_total", "counter",
           "The PMD's own counters (rte_eth_stats), and the drops the kernel counts on the sockets "
           "of af_packet and af_xdp ports.");
    for (unsigned p = 0; p < np; p++) {
        struct nd_dpdk_hw hw[ND_DPDK_HW_MAX];
        unsigned nhw = nd_dpdk_port_hw(&dpdk, p, hw);

        for (unsigned k = 0; k < nhw; k++)
            nd_sbuf_printf(out,
                           "nodus_dpdk_port_hw_total{port=\"%u\",counter=\"%s\"} %" PRIu64 "\n", p,
                           hw[k].name, hw[k].value);
    }
    family(out, "nodus_dpdk_mbufs", "gauge",
           "A worker's mbuf pool: its size, and the mbufs out of it (PMD rings, the af_xdp fill "
           "ring, TCP buffers); approximate.");
    for (unsigned w = 0; w < dpdk.nworkers; w++) {
        unsigned size, in_use;

        nd_dpdk_pool_usage(&dpdk, w, &size, &in_use);
        nd_sbuf_printf(out, "nodus_dpdk_mbufs{worker=\"%u\",state=\"size\"} %u\n", w, size);
        nd_sbuf_printf(out, "nodus_dpdk_mbufs{worker=\"%u\",state=\"in_use\"} %u\n", w, in_use);
    }
    family(out, "nodus_dpdk_port_dropped_total", "counter", "Frames dropped, all reasons.");
    for (unsigned p = 0; p < np; p++) {
        uint64_t sum = 0;

        for (unsigned d = 0; d < ND_NET_DROP_MAX; d++)
            sum += s[p].drop[d];
        nd_sbuf_printf(out, "nodus_dpdk_port_dropped_total{port=\"%u\"} %" PRIu64 "\n", p, sum);
    }
    family(out, "nodus_dpdk_port_drops_total", "counter",
           "Frames dropped by reason (port \"none\": sends without a route).");
    for (unsigned p = 0; p <= np; p++)
        for (unsigned d = 0; d < ND_NET_DROP_MAX; d++) {
            char port[8];

            if (p == np && !s[p].drop[d])
                continue;
            snprintf(port, sizeof(port), p < np ? "%u" : "none", p);
            nd_sbuf_printf(out,
                           "nodus_dpdk_port_drops_total{port=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
                           port, nd_net_drop_name(d), s[p].drop[d]);
        }
    family(out, "nodus_dpdk_port_events_total", "counter", "ARP, ICMP, UDP and TCP events.");
    for (unsigned p = 0; p < np; p++)
        for (unsigned e = 0; e < ND_NET_EVENT_MAX; e++)
            nd_sbuf_printf(out,
                           "nodus_dpdk_port_events_total{port=\"%u\",event=\"%s\"} %" PRIu64 "\n",
                           p, nd_net_event_name(e), s[p].ev[e]);
    for (size_t k = 0; k < sizeof(tcp_stats) / sizeof(tcp_stats[0]); k++) {
        char name[64];
        uint64_t sum = 0;

        for (unsigned i = 0; i < ND_MAX_WORKERS; i++)
            if (dpw[i] && dpw[i]->tcp)
                sum += ld64(
                    (const uint64_t *)((const char *)nd_tcp_stats(dpw[i]->tcp) + tcp_stats[k].off));
        snprintf(name, sizeof(name), "nodus_dpdk_tcp_%s_total", tcp_stats[k].name);
        family(out, name, "counter", "User-space TCP counter (docs/tcp.md), all workers.");
        nd_sbuf_printf(out, "%s %" PRIu64 "\n", name, sum);
    }
    family(out, "nodus_dpdk_tcp_opens_total", "counter",
           "Connections opened by each worker's user-space TCP (passive: accepted).");
    for (unsigned i = 0; i < ND_MAX_WORKERS; i++)
        if (dpw[i] && dpw[i]->tcp) {
            const struct nd_tcp_stats *t = nd_tcp_stats(dpw[i]->tcp);

            nd_sbuf_printf(out,
                           "nodus_dpdk_tcp_opens_total{worker=\"%u\",side=\"passive\"} %" PRIu64
                           "\nnodus_dpdk_tcp_opens_total{worker=\"%u\",side=\"active\"} %" PRIu64
                           "\n",
                           i, ld64(&t->passive_opens), i, ld64(&t->active_opens));
        }
    mbuf_metrics(out);
    if (dpdk.nworkers > 1)
        handoff_metrics(out);
    family(out, "nodus_dpdk_workers", "gauge", "Workers running on DPDK ports.");
    nd_sbuf_printf(out, "nodus_dpdk_workers %u\n", nw);
}
