/*
 * ARP (RFC 826) for our ports: answers requests for the port's own address, learns from
 * exchanges that concern us (RFC 826's merge: an entry we have is refreshed by any ARP packet
 * from its owner; a new one is made only when the packet is for us), resolves next hops with a
 * bounded queue per address, retries, and ages entries.
 *
 * The cache is per worker, open addressing over ND_ARP_SIZE slots: an address lives in one of
 * ND_ARP_PROBES slots from its hash, and a lookup looks at all of them (so freeing a slot needs
 * no tombstone). When they are all taken, the least recently confirmed resolved entry goes; but
 * an address we only start resolving takes a STALE entry's slot, never a REACHABLE one's, so
 * that packets to many unknown addresses (the SYN-ACKs of a flood with forged sources) cannot
 * push out the peers we are talking to.
 *
 * States: INCOMPLETE (a request is out; packets wait, up to ND_ARP_HOLD), REACHABLE (confirmed
 * within ND_ARP_REACHABLE_MS: used as is), STALE (older: still used, but each use may send a
 * request, at most one per ND_ARP_RETRY_MS, and the entry is forgotten ND_ARP_STALE_MS after
 * its last confirmation).
 */
#include <errno.h>
#include <string.h>

#include "net_int.h"

static unsigned arp_hash(uint32_t ip)
{
    return (ip * 2654435761u) >> 24; /* Knuth's multiplicative hash: the top 8 bits */
}

static struct nd_arp_entry *arp_find(struct nd_net *n, uint32_t ip)
{
    unsigned h = arp_hash(ip);

    for (unsigned i = 0; i < ND_ARP_PROBES; i++) {
        struct nd_arp_entry *e = &n->arp[(h + i) & (ND_ARP_SIZE - 1)];

        if (e->state != ND_ARP_FREE && e->ip == ip)
            return e;
    }
    return NULL;
}

const struct nd_arp_entry *nd_net_arp_lookup(const struct nd_net *n, uint32_t ip)
{
    return arp_find((struct nd_net *)n, ip);
}

static void arp_free(struct nd_net *n, struct nd_arp_entry *e, enum nd_net_drop why)
{
    for (unsigned i = 0; i < e->nhold; i++)
        nd_net_drop(n, e->port, e->hold[i], why);
    n->arp_held -= e->nhold;
    memset(e, 0, sizeof(*e));
}

void nd_arp_fini(struct nd_net *n)
{
    for (unsigned i = 0; i < ND_ARP_SIZE; i++)
        if (n->arp[i].state != ND_ARP_FREE)
            arp_free(n, &n->arp[i], ND_NET_ARP_FAILED);
}

/* A slot for ip (not in the cache): a free one, else the oldest resolved one (only a STALE one
 * when ip is not resolved yet), else NULL. */
static struct nd_arp_entry *arp_new(struct nd_net *n, uint32_t ip, unsigned port, bool resolving)
{
    unsigned h = arp_hash(ip);
    struct nd_arp_entry *victim = NULL;

    for (unsigned i = 0; i < ND_ARP_PROBES; i++) {
        struct nd_arp_entry *e = &n->arp[(h + i) & (ND_ARP_SIZE - 1)];

        if (e->state == ND_ARP_FREE) {
            victim = e;
            break;
        }
        if ((e->state == ND_ARP_STALE || (e->state == ND_ARP_REACHABLE && !resolving)) &&
            (!victim || e->confirmed_ms < victim->confirmed_ms))
            victim = e;
    }
    if (!victim)
        return NULL;
    if (victim->state != ND_ARP_FREE)
        arp_free(n, victim, ND_NET_ARP_FAILED);
    victim->ip = ip;
    victim->port = (uint8_t)port;
    return victim;
}

static void arp_fill(struct rte_arp_hdr *a, uint16_t op, const struct rte_ether_addr *sha,
                     uint32_t sip, const struct rte_ether_addr *tha, uint32_t tip)
{
    a->arp_hardware = RTE_BE16(RTE_ARP_HRD_ETHER);
    a->arp_protocol = RTE_BE16(RTE_ETHER_TYPE_IPV4);
    a->arp_hlen = RTE_ETHER_ADDR_LEN;
    a->arp_plen = 4;
    a->arp_opcode = rte_cpu_to_be_16(op);
    a->arp_data.arp_sha = *sha;
    a->arp_data.arp_sip = rte_cpu_to_be_32(sip);
    a->arp_data.arp_tha = *tha;
    a->arp_data.arp_tip = rte_cpu_to_be_32(tip);
}

/* A broadcast request from port's address for tip (tip == ours: gratuitous). */
static void arp_request(struct nd_net *n, unsigned port, uint32_t tip, enum nd_net_event ev)
{
    const struct nd_net_port *p = &n->sh->port[port];
    static const struct rte_ether_addr zero, bcast = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
    struct rte_mbuf *m = nd_net_alloc(n, port, ND_ETH_LEN + sizeof(struct rte_arp_hdr));
    struct rte_ether_hdr *eh;

    if (!m)
        return;
    eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
    eh->dst_addr = bcast;
    eh->src_addr = p->mac;
    eh->ether_type = RTE_BE16(RTE_ETHER_TYPE_ARP);
    arp_fill((struct rte_arp_hdr *)(eh + 1), RTE_ARP_OP_REQUEST, &p->mac, p->ip, &zero, tip);
    nd_net_count(n, port, ev);
    nd_net_tx(n, port, m);
}

void nd_net_announce(struct nd_net *n)
{
    for (unsigned p = 0; p < n->sh->nports; p++)
        arp_request(n, p, n->sh->port[p].ip, ND_NET_ARP_GARP_OUT);
}

static void arp_release(struct nd_net *n, struct nd_arp_entry *e)
{
    for (unsigned i = 0; i < e->nhold; i++) {
        struct rte_ether_hdr *eh = rte_pktmbuf_mtod(e->hold[i], struct rte_ether_hdr *);

        eh->dst_addr = e->mac;
        nd_net_tx(n, e->port, e->hold[i]);
    }
    n->arp_held -= e->nhold;
    e->nhold = 0;
}

static void arp_confirm(struct nd_net *n, struct nd_arp_entry *e, unsigned port,
                        const struct rte_ether_addr *mac)
{
    if (e->state == ND_ARP_INCOMPLETE || !rte_is_same_ether_addr(&e->mac, mac) || e->port != port)
        nd_net_count(n, port, ND_NET_ARP_LEARNED);
    e->mac = *mac;
    e->port = (uint8_t)port;
    e->state = ND_ARP_REACHABLE;
    e->tries = 0;
    e->confirmed_ms = n->now_ms;
    e->next_ms = 0;
    arp_release(n, e);
}

void nd_net_arp_learn(struct nd_net *n, unsigned port, uint32_t ip,
                      const struct rte_ether_addr *mac)
{
    struct nd_arp_entry *e = arp_find(n, ip);

    if (!e && !(e = arp_new(n, ip, port, false)))
        return;
    arp_confirm(n, e, port, mac);
}

void nd_arp_input(struct nd_net *n, unsigned port, struct rte_mbuf *m)
{
    const struct nd_net_port *p = &n->sh->port[port];
    struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
    struct rte_arp_hdr *a = (struct rte_arp_hdr *)(eh + 1);
    struct nd_arp_entry *e;
    uint32_t sip, tip;
    uint16_t op;

    if (m->data_len < ND_ETH_LEN + sizeof(*a) || a->arp_hardware != RTE_BE16(RTE_ARP_HRD_ETHER) ||
        a->arp_protocol != RTE_BE16(RTE_ETHER_TYPE_IPV4) || a->arp_hlen != RTE_ETHER_ADDR_LEN ||
        a->arp_plen != 4)
        return nd_net_drop(n, port, m, ND_NET_ARP_BAD);
    op = rte_be_to_cpu_16(a->arp_opcode);
    sip = rte_be_to_cpu_32(a->arp_data.arp_sip);
    tip = rte_be_to_cpu_32(a->arp_data.arp_tip);
    if ((op != RTE_ARP_OP_REQUEST && op != RTE_ARP_OP_REPLY) ||
        !rte_is_unicast_ether_addr(&a->arp_data.arp_sha) ||
        rte_is_zero_ether_addr(&a->arp_data.arp_sha) || sip == p->ip ||
        (sip != 0 && ((sip ^ p->ip) & p->mask) != 0))
        /* another host claiming our address, or a sender off our subnet (0: a probe) */
        return nd_net_drop(n, port, m, ND_NET_ARP_BAD);
    nd_net_count(n, port, op == RTE_ARP_OP_REQUEST ? ND_NET_ARP_REQ_IN : ND_NET_ARP_REPLY_IN);

    e = sip ? arp_find(n, sip) : NULL;
    if (e)
        arp_confirm(n, e, port, &a->arp_data.arp_sha);
    if (tip == p->ip && !e && sip)
        nd_net_arp_learn(n, port, sip, &a->arp_data.arp_sha);
    if ((e || (tip == p->ip && sip)) && n->ops->arp_learned)
        n->ops->arp_learned(n, port, sip, &a->arp_data.arp_sha);
    if (tip != p->ip)
        return nd_net_drop(n, port, m, ND_NET_ARP_NOT_OURS);
    if (op != RTE_ARP_OP_REQUEST) {
        n->ops->free(n, m);
        return;
    }
    /* the reply, in place */
    eh->dst_addr = a->arp_data.arp_sha;
    eh->src_addr = p->mac;
    a->arp_opcode = RTE_BE16(RTE_ARP_OP_REPLY);
    a->arp_data.arp_tha = a->arp_data.arp_sha;
    a->arp_data.arp_tip = a->arp_data.arp_sip;
    a->arp_data.arp_sha = p->mac;
    a->arp_data.arp_sip = rte_cpu_to_be_32(p->ip);
    rte_pktmbuf_trim(m, (uint16_t)(m->data_len - ND_ETH_LEN - sizeof(*a)));
    m->ol_flags = 0;
    nd_net_count(n, port, ND_NET_ARP_REPLY_OUT);
    nd_net_tx(n, port, m);
}

int nd_net_eth_output(struct nd_net *n, unsigned port, uint32_t nexthop, struct rte_mbuf *m)
{
    const struct nd_net_port *p = &n->sh->port[port];
    struct rte_ether_hdr *eh = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, ND_ETH_LEN);
    struct nd_arp_entry *e;

    if (!eh) {
        nd_net_drop(n, port, m, ND_NET_NO_MBUF);
        return -ENOBUFS;
    }
    eh->src_addr = p->mac;
    eh->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
    if (nexthop == 0xffffffff || (p->bcast && nexthop == p->bcast)) {
        memset(&eh->dst_addr, 0xff, RTE_ETHER_ADDR_LEN);
        nd_net_tx(n, port, m);
        return 0;
    }
    e = arp_find(n, nexthop);
    if (e && e->state != ND_ARP_INCOMPLETE) {
        eh->dst_addr = e->mac;
        nd_net_tx(n, port, m);
        if (e->state == ND_ARP_STALE && n->now_ms >= e->next_ms) {
            e->next_ms = n->now_ms + ND_ARP_RETRY_MS;
            arp_request(n, e->port, nexthop, ND_NET_ARP_REQ_OUT);
        }
        return 0;
    }
    if (!e) {
        if (!(e = arp_new(n, nexthop, port, true))) {
            nd_net_drop(n, port, m, ND_NET_ARP_HOLD_FULL);
            return -ENOBUFS;
        }
        e->state = ND_ARP_INCOMPLETE;
        e->tries = 1;
        e->next_ms = n->now_ms + ND_ARP_RETRY_MS;
        arp_request(n, port, nexthop, ND_NET_ARP_REQ_OUT);
    }
    if (e->nhold >= ND_ARP_HOLD || n->arp_held >= ND_ARP_HOLD_TOTAL) {
        nd_net_drop(n, port, m, ND_NET_ARP_HOLD_FULL);
        return -ENOBUFS;
    }
    e->hold[e->nhold++] = m;
    n->arp_held++;
    return 0;
}

void nd_arp_tick(struct nd_net *n)
{
    uint64_t now = n->now_ms;

    for (unsigned i = 0; i < ND_ARP_SIZE; i++) {
        struct nd_arp_entry *e = &n->arp[i];

        switch (e->state) {
        case ND_ARP_INCOMPLETE:
            if (now < e->next_ms)
                break;
            if (e->tries >= ND_ARP_RETRIES) {
                arp_free(n, e, ND_NET_ARP_FAILED);
                break;
            }
            e->tries++;
            e->next_ms = now + ND_ARP_RETRY_MS;
            arp_request(n, e->port, e->ip, ND_NET_ARP_REQ_OUT);
            break;
        case ND_ARP_REACHABLE:
            if (now - e->confirmed_ms >= ND_ARP_REACHABLE_MS)
                e->state = ND_ARP_STALE;
            break;
        case ND_ARP_STALE:
            if (now - e->confirmed_ms >= ND_ARP_REACHABLE_MS + ND_ARP_STALE_MS)
                arp_free(n, e, ND_NET_ARP_FAILED);
            break;
        }
    }
}
