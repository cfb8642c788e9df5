/* The hand-over between workers (see handoff.h). */
#include "handoff.h"

#include <stdlib.h>
#include <string.h>

#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <rte_thash.h>

#include "net_int.h"

/* An ARP entry on its way to another worker (rte_ring elements: a multiple of 4 bytes). */
struct ho_arp {
    uint32_t ip;
    uint8_t port, pad;
    struct rte_ether_addr mac;
};

static struct rte_ring *ring_new(const char *name, unsigned esize, unsigned count, unsigned flags)
{
    ssize_t sz = rte_ring_get_memsize_elem(esize, count);
    struct rte_ring *r;

    if (sz < 0 ||
        !(r = aligned_alloc(RTE_CACHE_LINE_SIZE, RTE_ALIGN_CEIL((size_t)sz, RTE_CACHE_LINE_SIZE))))
        return NULL;
    if (rte_ring_init(r, name, count, flags) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

static void ring_free_frames(struct rte_ring *r)
{
    struct rte_mbuf *m;

    while (r && rte_ring_sc_dequeue(r, (void **)&m) == 0)
        rte_pktmbuf_free(m);
    free(r);
}

int nd_handoff_init(struct nd_handoff *h, unsigned nworkers, const uint8_t key[40])
{
    memset(h, 0, sizeof(*h));
    h->nworkers = nworkers;
    memcpy(h->key, key, sizeof(h->key));
    if (nworkers > ND_HO_MAX_WORKERS)
        return -1;
    for (unsigned w = 0; nworkers > 1 && w < nworkers; w++) {
        char name[RTE_RING_NAMESIZE];

        snprintf(name, sizeof(name), "nd_ho_rx%u", w);
        h->rx[w] = ring_new(name, sizeof(void *), ND_HO_RX_RING, RING_F_SC_DEQ);
        snprintf(name, sizeof(name), "nd_ho_arp%u", w);
        h->arp[w] = ring_new(name, sizeof(struct ho_arp), ND_HO_ARP_RING, RING_F_SC_DEQ);
        if (!h->rx[w] || !h->arp[w]) {
            nd_handoff_fini(h);
            return -1;
        }
    }
    return 0;
}

int nd_handoff_tx_route(struct nd_handoff *h, unsigned w, unsigned port, unsigned owner)
{
    char name[RTE_RING_NAMESIZE];

    if (w >= h->nworkers || owner >= h->nworkers || port >= ND_NET_MAX_PORTS || w == owner)
        return -1;
    snprintf(name, sizeof(name), "nd_ho_tx%u_%u", w, port);
    h->tx[w][port] = ring_new(name, sizeof(void *), ND_HO_TX_RING, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!h->tx[w][port])
        return -1;
    h->tx_owner[w][port] = (uint8_t)owner;
    h->tx_from[owner] |= 1ull << w;
    return 0;
}

void nd_handoff_fini(struct nd_handoff *h)
{
    struct ho_arp e;

    for (unsigned w = 0; w < ND_HO_MAX_WORKERS; w++) {
        ring_free_frames(h->rx[w]);
        while (h->arp[w] && rte_ring_dequeue_elem(h->arp[w], &e, sizeof(e)) == 0)
            ;
        free(h->arp[w]);
        h->rx[w] = h->arp[w] = NULL;
        for (unsigned p = 0; p < ND_NET_MAX_PORTS; p++) {
            ring_free_frames(h->tx[w][p]);
            h->tx[w][p] = NULL;
        }
        h->tx_from[w] = 0;
    }
}

unsigned nd_handoff_flow_worker(const struct nd_handoff *h, uint32_t src, uint32_t dst,
                                uint16_t sport, uint16_t dport)
{
    /* rte_softrss's IPv4 tuple: the addresses, then the ports as one word (sport high) */
    uint32_t t[3] = {src, dst, (uint32_t)sport << 16 | dport};

    if (h->nworkers <= 1)
        return 0;
    return rte_softrss(t, 3, h->key) % h->nworkers;
}

int nd_handoff_frame_worker(const struct nd_handoff *h, const struct rte_mbuf *m)
{
    const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
    const struct rte_ipv4_hdr *ip;
    uint32_t ihl;
    uint16_t ports[2];

    if (m->data_len < ND_ETH_LEN + ND_IP_LEN ||
        ((const struct rte_ether_hdr *)p)->ether_type != RTE_BE16(RTE_ETHER_TYPE_IPV4))
        return -1;
    ip = (const struct rte_ipv4_hdr *)(p + ND_ETH_LEN);
    ihl = (uint32_t)(ip->version_ihl & 0xf) * 4;
    if ((ip->version_ihl >> 4) != 4 || ihl < ND_IP_LEN || m->data_len < ND_ETH_LEN + ihl + 4 ||
        (ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) ||
        (ip->next_proto_id != IPPROTO_TCP && ip->next_proto_id != IPPROTO_UDP))
        return -1;
    memcpy(ports, p + ND_ETH_LEN + ihl, sizeof(ports));
    return (int)nd_handoff_flow_worker(h, rte_be_to_cpu_32(ip->src_addr),
                                       rte_be_to_cpu_32(ip->dst_addr), rte_be_to_cpu_16(ports[0]),
                                       rte_be_to_cpu_16(ports[1]));
}

uint16_t nd_handoff_rx_steer(struct nd_handoff *h, unsigned self, struct nd_net *n, unsigned port,
                             struct rte_mbuf **pkts, uint16_t cnt)
{
    struct rte_mbuf *hand[ND_NET_BURST], *batch[ND_NET_BURST];
    uint8_t to[ND_NET_BURST];
    struct nd_ho_stats *st = &h->st[self];
    uint16_t keep = 0, nhand = 0;

    if (h->nworkers <= 1)
        return cnt;
    for (uint16_t i = 0; i < cnt; i++) {
        int t = nd_handoff_frame_worker(h, pkts[i]);

        if (t < 0 || (unsigned)t == self || nhand == ND_NET_BURST) {
            pkts[keep++] = pkts[i]; /* keep <= i: nothing unread is overwritten */
            continue;
        }
        to[nhand] = (uint8_t)t;
        hand[nhand++] = pkts[i];
    }
    while (nhand) { /* one enqueue per worker the burst holds frames for */
        uint8_t t = to[0];
        uint16_t k = 0, rest = 0, sent;

        for (uint16_t i = 0; i < nhand; i++) {
            if (to[i] == t) {
                batch[k++] = hand[i];
            } else {
                to[rest] = to[i];
                hand[rest++] = hand[i];
            }
        }
        nhand = rest;
        sent = (uint16_t)rte_ring_enqueue_burst(h->rx[t], (void **)batch, k, NULL);
        st->rx_out += sent;
        st->rx_full += k - sent;
        for (uint16_t i = sent; i < k; i++)
            nd_net_drop(n, port, batch[i], ND_NET_HANDOFF_FULL);
    }
    return keep;
}

static int port_index(const struct nd_net_shared *sh, uint16_t port_id)
{
    for (unsigned i = 0; i < sh->nports; i++)
        if (sh->port[i].port_id == port_id)
            return (int)i;
    return -1;
}

#define HO_DRAIN_BURSTS 4 /* bursts taken from a ring per poll: others get their turn */

unsigned nd_handoff_rx_drain(struct nd_handoff *h, unsigned self, struct nd_net *n)
{
    struct rte_mbuf *pkts[ND_NET_BURST];
    unsigned total = 0;

    for (unsigned b = 0; h->rx[self] && b < HO_DRAIN_BURSTS; b++) {
        unsigned k = rte_ring_sc_dequeue_burst(h->rx[self], (void **)pkts, ND_NET_BURST, NULL);

        for (unsigned i = 0; i < k;) { /* runs of frames of one port */
            unsigned j = i + 1;
            int p = port_index(n->sh, pkts[i]->port);

            while (j < k && pkts[j]->port == pkts[i]->port)
                j++;
            if (p >= 0)
                nd_net_rx_burst(n, (unsigned)p, pkts + i, (uint16_t)(j - i));
            else /* cannot happen: frames come from our ports */
                for (unsigned x = i; x < j; x++)
                    n->ops->free(n, pkts[x]);
            i = j;
        }
        h->st[self].rx_in += k;
        total += k;
        if (k < ND_NET_BURST)
            break;
    }
    return total;
}

uint16_t nd_handoff_tx(struct nd_handoff *h, unsigned self, unsigned port, struct rte_mbuf **pkts,
                       uint16_t cnt)
{
    struct rte_ring *r = h->tx[self][port];
    uint16_t k = r ? (uint16_t)rte_ring_sp_enqueue_burst(r, (void **)pkts, cnt, NULL) : 0;

    h->st[self].tx_out += k;
    h->st[self].tx_full += cnt - k;
    return k;
}

unsigned nd_handoff_tx_drain(struct nd_handoff *h, unsigned self, struct nd_net *n)
{
    struct rte_mbuf *pkts[ND_NET_BURST];
    uint64_t from = h->tx_from[self];
    unsigned total = 0;

    while (from) {
        unsigned w = (unsigned)__builtin_ctzll(from);

        from &= from - 1;
        for (unsigned p = 0; p < n->sh->nports; p++) {
            struct rte_ring *r = h->tx[w][p];

            if (!r || h->tx_owner[w][p] != self)
                continue;
            for (unsigned b = 0; b < HO_DRAIN_BURSTS; b++) {
                unsigned k = rte_ring_sc_dequeue_burst(r, (void **)pkts, ND_NET_BURST, NULL);
                uint16_t sent = k ? n->ops->tx_burst(n, p, pkts, (uint16_t)k) : 0;

                n->stats[p].tx_bursts += k > 0;
                h->st[self].tx_in += sent;
                h->st[self].tx_refused += k - sent;
                for (unsigned i = sent; i < k; i++)
                    nd_net_drop(n, p, pkts[i], ND_NET_TX_FULL);
                total += k;
                if (k < ND_NET_BURST)
                    break;
            }
        }
    }
    return total;
}

void nd_handoff_arp_share(struct nd_handoff *h, unsigned self, unsigned port, uint32_t ip,
                          const struct rte_ether_addr *mac)
{
    struct ho_arp e = {.ip = ip, .port = (uint8_t)port, .mac = *mac};

    for (unsigned w = 0; w < h->nworkers; w++) {
        if (w == self || !h->arp[w])
            continue;
        if (rte_ring_mp_enqueue_elem(h->arp[w], &e, sizeof(e)) == 0)
            h->st[self].arp_out++;
        else
            h->st[self].arp_full++;
    }
}

unsigned nd_handoff_arp_drain(struct nd_handoff *h, unsigned self, struct nd_net *n)
{
    struct ho_arp e;
    unsigned k = 0;

    while (h->arp[self] && rte_ring_sc_dequeue_elem(h->arp[self], &e, sizeof(e)) == 0) {
        if (e.port < n->sh->nports)
            nd_net_arp_learn(n, e.port, e.ip, &e.mac);
        k++;
    }
    return k;
}

bool nd_handoff_pending(const struct nd_handoff *h, unsigned self)
{
    uint64_t from = h->tx_from[self];

    if ((h->rx[self] && !rte_ring_empty(h->rx[self])) ||
        (h->arp[self] && !rte_ring_empty(h->arp[self])))
        return true;
    while (from) {
        unsigned w = (unsigned)__builtin_ctzll(from);

        from &= from - 1;
        for (unsigned p = 0; p < ND_NET_MAX_PORTS; p++)
            if (h->tx[w][p] && h->tx_owner[w][p] == self && !rte_ring_empty(h->tx[w][p]))
                return true;
    }
    return false;
}
