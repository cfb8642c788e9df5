/* The packet path: stack setup, Ethernet input, TX queues and bursts, timers, counters. */
#include <errno.h>
#include <string.h>

#include "../csum.h"
#include "net_int.h"

static const char *const drop_names[] = {
#define ND_NET_NAME(e, s) s,
    ND_NET_DROPS(ND_NET_NAME)};
static const char *const event_names[] = {ND_NET_EVENTS(ND_NET_NAME)
#undef ND_NET_NAME
};

const char *nd_net_drop_name(enum nd_net_drop d)
{
    return (unsigned)d < ND_NET_DROP_MAX ? drop_names[d] : "?";
}

const char *nd_net_event_name(enum nd_net_event e)
{
    return (unsigned)e < ND_NET_EVENT_MAX ? event_names[e] : "?";
}

uint16_t nd_net_cksum(const void *p, size_t len, uint32_t sum)
{
    return nd_csum16(p, len, sum);
}

static void add_route(struct nd_net_shared *sh, uint32_t dst, uint8_t prefix, uint32_t via,
                      unsigned port)
{
    struct nd_net_route *r = &sh->route[sh->nroutes++];

    r->mask = nd_ipv4_mask(prefix);
    r->dst = dst & r->mask;
    r->prefix = prefix;
    r->via = via;
    r->port = (uint8_t)port;
}

void nd_net_shared_init(struct nd_net_shared *sh, const struct nd_dpdk_conf *c)
{
    memset(sh, 0, sizeof(*sh));
    for (unsigned i = 0; i < c->nports && i < ND_NET_MAX_PORTS; i++) {
        struct nd_net_port *p = &sh->port[sh->nports++];

        p->ip = c->ports[i].ip;
        p->prefix = c->ports[i].prefix;
        p->mask = nd_ipv4_mask(p->prefix);
        p->bcast = p->prefix <= 30 ? p->ip | ~p->mask : 0;
        p->mtu = RTE_ETHER_MTU;
        add_route(sh, p->ip, p->prefix, 0, i);
    }
    for (unsigned i = 0; i < c->nroutes && sh->nroutes < ND_NET_MAX_ROUTES; i++) {
        unsigned port = 0;

        /* the gateway's port: the connected subnet holding it (validated to exist) */
        for (unsigned k = 0; k < sh->nports; k++)
            if (((c->routes[i].via ^ sh->port[k].ip) & sh->port[k].mask) == 0)
                port = k;
        add_route(sh, c->routes[i].dst, c->routes[i].prefix, c->routes[i].via, port);
    }
    /* longest prefix first; at equal length connected routes (added first) stay first */
    for (unsigned i = 1; i < sh->nroutes; i++) {
        struct nd_net_route r = sh->route[i];
        unsigned k = i;

        for (; k > 0 && sh->route[k - 1].prefix < r.prefix; k--)
            sh->route[k] = sh->route[k - 1];
        sh->route[k] = r;
    }
}

int nd_net_route(const struct nd_net_shared *sh, uint32_t dst, unsigned *port, uint32_t *nexthop)
{
    /* A linear walk: a proxy has a handful of routes (connected subnets and a default). A
     * table of hundreds would want rte_lpm (or a DIR-24-8 of our own, to stay EAL-free). */
    for (unsigned i = 0; i < sh->nroutes; i++) {
        const struct nd_net_route *r = &sh->route[i];

        if ((dst & r->mask) == r->dst) {
            *port = r->port;
            *nexthop = r->via ? r->via : dst;
            return 0;
        }
    }
    return -1;
}

int nd_net_local_port(const struct nd_net_shared *sh, uint32_t ip)
{
    for (unsigned i = 0; i < sh->nports; i++)
        if (sh->port[i].ip == ip)
            return (int)i;
    return -1;
}

bool nd_net_csum_offload(const struct nd_net_shared *sh, unsigned ol)
{
    for (unsigned i = 0; i < sh->nports; i++)
        if ((sh->port[i].tx_ol & ol) != ol)
            return false;
    return sh->nports > 0;
}

void nd_net_init(struct nd_net *n, const struct nd_net_shared *sh, const struct nd_net_ops *ops,
                 void *udata, unsigned worker, const struct nd_dpdk_fault_conf *fault,
                 uint64_t now_ms)
{
    memset(n, 0, sizeof(*n));
    n->sh = sh;
    n->ops = ops;
    n->udata = udata;
    n->worker = worker;
    n->now_ms = now_ms;
    n->next_tick_ms = now_ms + ND_NET_TICK_MS;
    n->icmp_tokens = ND_ICMP_ERR_BURST;
    n->icmp_refill_ms = now_ms;
    n->ip_id = (uint16_t)(worker * 7919u);
    if (fault && (fault->drop > 0 || fault->duplicate > 0 || fault->reorder > 0)) {
        n->faults = true;
        for (unsigned p = 0; p < ND_NET_MAX_PORTS; p++) {
            uint64_t s = fault->seed * 0x9e3779b97f4a7c15ULL + worker * 131 + p * 2;

            nd_fault_init(&n->fault_rx[p], fault, s);
            nd_fault_init(&n->fault_tx[p], fault, s + 1);
        }
    }
}

void nd_net_fini(struct nd_net *n)
{
    for (unsigned p = 0; p < ND_NET_MAX_PORTS; p++) {
        for (uint16_t i = 0; i < n->txq[p].n; i++)
            n->ops->free(n, n->txq[p].m[i]);
        n->txq[p].n = 0;
        if (n->fault_rx[p].held)
            n->ops->free(n, n->fault_rx[p].held);
        if (n->fault_tx[p].held)
            n->ops->free(n, n->fault_tx[p].held);
        n->fault_rx[p].held = n->fault_tx[p].held = NULL;
    }
    nd_arp_fini(n);
}

struct rte_mbuf *nd_net_alloc(struct nd_net *n, unsigned port, uint32_t len)
{
    struct rte_mbuf *m = n->ops->alloc(n);

    if (!m) {
        n->stats[port].drop[ND_NET_NO_MBUF]++;
        return NULL;
    }
    if (!rte_pktmbuf_append(m, (uint16_t)len)) {
        nd_net_drop(n, port, m, ND_NET_NO_MBUF);
        return NULL;
    }
    return m;
}

static void tx_burst(struct nd_net *n, unsigned port, struct rte_mbuf **pkts, uint16_t cnt)
{
    uint16_t sent;

    if (!cnt)
        return;
    sent = n->ops->tx_burst(n, port, pkts, cnt);
    for (uint16_t i = 0; i < sent; i++) {
        n->stats[port].tx_pkts++;
        n->stats[port].tx_bytes += pkts[i]->pkt_len;
    }
    for (uint16_t i = sent; i < cnt; i++)
        nd_net_drop(n, port, pkts[i], ND_NET_TX_FULL);
}

static uint16_t flush_port(struct nd_net *n, unsigned port)
{
    struct nd_net_txq *q = &n->txq[port];
    uint16_t cnt = q->n, done = 0;

    q->n = 0;
    if (!n->faults || (!cnt && !n->fault_tx[port].held)) {
        tx_burst(n, port, q->m, cnt);
        return cnt;
    }
    do { /* through the injector in slices its output array holds */
        struct rte_mbuf *out[2 * ND_NET_BURST + 1];
        uint16_t k = (uint16_t)RTE_MIN(cnt - done, ND_NET_BURST), nout;

        nout =
            nd_fault_apply(n, &n->fault_tx[port], port, false, q->m + done, k, out, RTE_DIM(out));
        tx_burst(n, port, out, nout);
        done += k;
    } while (done < cnt);
    return cnt;
}

void nd_net_tx(struct nd_net *n, unsigned port, struct rte_mbuf *m)
{
    struct nd_net_txq *q = &n->txq[port];

    q->m[q->n++] = m;
    if (q->n == ND_NET_TXQ)
        flush_port(n, port);
}

unsigned nd_net_flush(struct nd_net *n)
{
    unsigned sent = 0;

    for (unsigned p = 0; p < n->sh->nports; p++)
        if (n->txq[p].n || (n->faults && n->fault_tx[p].held))
            sent += flush_port(n, p);
    return sent;
}

void nd_net_input(struct nd_net *n, unsigned port, struct rte_mbuf *m)
{
    const struct nd_net_port *pt = &n->sh->port[port];
    const struct rte_ether_hdr *eh;

    n->stats[port].rx_pkts++;
    n->stats[port].rx_bytes += m->pkt_len;
    if (m->nb_segs != 1 || m->data_len != m->pkt_len)
        return nd_net_drop(n, port, m, ND_NET_MULTISEG);
    if (m->data_len < ND_ETH_LEN)
        return nd_net_drop(n, port, m, ND_NET_ETH_SHORT);
    eh = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
    if (!rte_is_same_ether_addr(&eh->dst_addr, &pt->mac) &&
        !rte_is_broadcast_ether_addr(&eh->dst_addr))
        return nd_net_drop(n, port, m, ND_NET_ETH_DST);
    switch (eh->ether_type) {
    case RTE_BE16(RTE_ETHER_TYPE_IPV4):
        return nd_ipv4_input(n, port, m);
    case RTE_BE16(RTE_ETHER_TYPE_ARP):
        return nd_arp_input(n, port, m);
    default:
        return nd_net_drop(n, port, m, ND_NET_ETH_TYPE);
    }
}

void nd_net_rx_burst(struct nd_net *n, unsigned port, struct rte_mbuf **pkts, uint16_t cnt)
{
    struct rte_mbuf *out[2 * ND_NET_BURST + 1];

    if (n->faults && nd_fault_active(&n->fault_rx[port])) {
        while (cnt > ND_NET_BURST) { /* bursts of any size, in slices the out array holds */
            nd_net_rx_burst(n, port, pkts, ND_NET_BURST);
            pkts += ND_NET_BURST;
            cnt -= ND_NET_BURST;
        }
        cnt = nd_fault_apply(n, &n->fault_rx[port], port, true, pkts, cnt, out, RTE_DIM(out));
        pkts = out;
    }
    for (uint16_t i = 0; i < cnt; i++) {
        if (i + 1 < cnt)
            rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
        nd_net_input(n, port, pkts[i]);
    }
}

void nd_net_tick(struct nd_net *n, uint64_t now_ms)
{
    if (now_ms < n->now_ms)
        return; /* the clock is monotonic; a caller going back is ignored */
    n->now_ms = now_ms;
    if (n->faults) /* a reordered packet waits at most ND_FAULT_HOLD_MS for company */
        for (unsigned p = 0; p < n->sh->nports; p++)
            if (n->fault_rx[p].held && now_ms - n->fault_rx[p].held_ms >= ND_FAULT_HOLD_MS) {
                struct rte_mbuf *m = n->fault_rx[p].held;

                n->fault_rx[p].held = NULL;
                nd_net_input(n, p, m);
            }
    if (now_ms < n->next_tick_ms)
        return;
    n->next_tick_ms = now_ms + ND_NET_TICK_MS;
    if (now_ms > n->icmp_refill_ms) {
        uint64_t add = (now_ms - n->icmp_refill_ms) * ND_ICMP_ERR_PER_S / 1000;

        if (add) {
            n->icmp_tokens = (unsigned)RTE_MIN((uint64_t)ND_ICMP_ERR_BURST, n->icmp_tokens + add);
            n->icmp_refill_ms = now_ms;
        }
    }
    nd_arp_tick(n);
}

void nd_net_stats_add(struct nd_net_stats *sum, const struct nd_net *n, unsigned port)
{
    const struct nd_net_stats *s = &n->stats[port];

    sum->rx_pkts += s->rx_pkts;
    sum->rx_bytes += s->rx_bytes;
    sum->tx_pkts += s->tx_pkts;
    sum->tx_bytes += s->tx_bytes;
    sum->tx_bursts += s->tx_bursts;
    for (unsigned i = 0; i < ND_NET_DROP_MAX; i++)
        sum->drop[i] += s->drop[i];
    for (unsigned i = 0; i < ND_NET_EVENT_MAX; i++)
        sum->ev[i] += s->ev[i];
}
