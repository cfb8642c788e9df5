/*
 * IPv4 input (header validation, our addresses, no forwarding, no reassembly), ICMP (echo,
 * errors in both directions), the TCP hand-off, and IPv4 output (routing, checksums by the NIC
 * when it can).
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "net_int.h"

#define ICMP_ERR_QUOTE (576 - ND_IP_LEN - 8) /* an error quotes at most this much (RFC 1812) */

void nd_ipv4_csum_out(struct nd_net *n, unsigned port, struct rte_mbuf *m, struct rte_ipv4_hdr *ip)
{
    uint32_t hl = rte_ipv4_hdr_len(ip);

    ip->hdr_checksum = 0;
    if (n->sh->port[port].tx_ol & ND_NET_OL_IPV4_CKSUM) {
        m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
        m->l2_len = ND_ETH_LEN;
        m->l3_len = hl;
    } else {
        ip->hdr_checksum = (uint16_t)~nd_net_cksum(ip, hl, 0);
    }
}

bool nd_l4_csum_ok(struct nd_net *n, unsigned port, const struct rte_mbuf *m,
                   const struct rte_ipv4_hdr *ip, const void *l4, uint32_t l4len)
{
    switch (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) {
    case RTE_MBUF_F_RX_L4_CKSUM_GOOD:
        nd_net_count(n, port, ND_NET_CSUM_HW);
        return true;
    case RTE_MBUF_F_RX_L4_CKSUM_BAD:
        return false;
    default:
        return nd_net_cksum(l4, l4len, nd_phdr_sum(ip, l4len)) == 0xffff;
    }
}

static bool martian_src(const struct nd_net_shared *sh, const struct nd_net_port *p, uint32_t a)
{
    return a == 0 || a == 0xffffffff || a >> 28 == 14 || a >> 24 == 127 || a >> 24 == 0 ||
           (p->bcast && a == p->bcast) || nd_net_local_port(sh, a) >= 0;
}

static void echo_reply(struct nd_net *n, unsigned port, struct rte_mbuf *m, struct rte_ipv4_hdr *ip,
                       struct rte_icmp_hdr *icmp, uint32_t len)
{
    struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
    uint32_t a = ip->src_addr;

    icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
    icmp->icmp_cksum = 0;
    icmp->icmp_cksum = (uint16_t)~nd_net_cksum(icmp, len, 0);
    ip->src_addr = ip->dst_addr;
    ip->dst_addr = a;
    ip->time_to_live = 64;
    ip->fragment_offset = 0;
    m->ol_flags = 0;
    nd_ipv4_csum_out(n, port, m, ip);
    eh->dst_addr = eh->src_addr;
    eh->src_addr = n->sh->port[port].mac;
    nd_net_count(n, port, ND_NET_ICMP_ECHO);
    nd_net_tx(n, port, m);
}

static void icmp_input(struct nd_net *n, unsigned port, struct rte_mbuf *m, struct rte_ipv4_hdr *ip,
                       uint32_t hl, bool bcast)
{
    uint32_t len = rte_be_to_cpu_16(ip->total_length) - hl;
    struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)((uint8_t *)ip + hl);

    if (len < sizeof(*icmp))
        return nd_net_drop(n, port, m, ND_NET_ICMP_SHORT);
    if (nd_net_cksum(icmp, len, 0) != 0xffff)
        return nd_net_drop(n, port, m, ND_NET_ICMP_CSUM);
    switch (icmp->icmp_type) {
    case RTE_IP_ICMP_ECHO_REQUEST:
        if (bcast) /* no smurf amplifier */
            return nd_net_drop(n, port, m, ND_NET_ICMP_BCAST);
        return echo_reply(n, port, m, ip, icmp, len);
    case RTE_IP_ICMP_ECHO_REPLY:
        nd_net_count(n, port, ND_NET_ICMP_OTHER_IN);
        break;
    case 3:  /* destination unreachable */
    case 11: /* time exceeded */
    case 12: /* parameter problem */
        nd_net_count(n, port, ND_NET_ICMP_ERR_IN);
        if (n->ops->icmp_error && len >= sizeof(*icmp) + ND_IP_LEN)
            n->ops->icmp_error(n, icmp->icmp_type, icmp->icmp_code, (const uint8_t *)(icmp + 1),
                               len - (uint32_t)sizeof(*icmp));
        break;
    default:
        return nd_net_drop(n, port, m, ND_NET_ICMP_TYPE);
    }
    n->ops->free(n, m);
}

void nd_icmp_unreach(struct nd_net *n, unsigned port, struct rte_mbuf *m, uint8_t code)
{
    const uint32_t add = ND_IP_LEN + sizeof(struct rte_icmp_hdr);
    struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
    struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eh + 1), *nip;
    struct rte_ether_addr peer = eh->src_addr;
    uint32_t src = ip->src_addr, dst = ip->dst_addr, keep = m->data_len - ND_ETH_LEN;
    struct rte_icmp_hdr *icmp;

    if (!n->icmp_tokens) {
        nd_net_count(n, port, ND_NET_ICMP_ERR_LIMITED);
        n->ops->free(n, m);
        return;
    }
    if (rte_pktmbuf_headroom(m) < add) {
        n->ops->free(n, m); /* the datagram's drop is counted; the error is not sent */
        return;
    }
    n->icmp_tokens--;
    if (keep > ICMP_ERR_QUOTE) {
        rte_pktmbuf_trim(m, (uint16_t)(keep - ICMP_ERR_QUOTE));
        keep = ICMP_ERR_QUOTE;
    }
    /* [eth][ip][icmp][the original datagram]: the new headers overlap the old Ethernet one */
    eh = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, (uint16_t)add);
    nip = (struct rte_ipv4_hdr *)(eh + 1);
    icmp = (struct rte_icmp_hdr *)(nip + 1);
    eh->dst_addr = peer;
    eh->src_addr = n->sh->port[port].mac;
    eh->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
    nip->version_ihl = RTE_IPV4_VHL_DEF;
    nip->type_of_service = 0xc0; /* internetwork control, as Linux sends its errors */
    nip->total_length = rte_cpu_to_be_16((uint16_t)(add + keep));
    nip->packet_id = rte_cpu_to_be_16(n->ip_id++);
    nip->fragment_offset = 0;
    nip->time_to_live = 64;
    nip->next_proto_id = IPPROTO_ICMP;
    nip->src_addr = dst;
    nip->dst_addr = src;
    memset(icmp, 0, sizeof(*icmp));
    icmp->icmp_type = 3;
    icmp->icmp_code = code;
    icmp->icmp_cksum = (uint16_t)~nd_net_cksum(icmp, sizeof(*icmp) + keep, 0);
    m->ol_flags = 0;
    nd_ipv4_csum_out(n, port, m, nip);
    nd_net_count(n, port, ND_NET_ICMP_UNREACH_OUT);
    nd_net_tx(n, port, m);
}

static void tcp_input(struct nd_net *n, unsigned port, struct rte_mbuf *m, struct rte_ipv4_hdr *ip,
                      uint32_t hl)
{
    uint32_t len = rte_be_to_cpu_16(ip->total_length) - hl, off;
    const uint8_t *tcp = (const uint8_t *)ip + hl;

    if (len < 20 || (off = (uint32_t)(tcp[12] >> 4) * 4) < 20 || off > len)
        return nd_net_drop(n, port, m, ND_NET_TCP_SHORT);
    if (!nd_l4_csum_ok(n, port, m, ip, tcp, len))
        return nd_net_drop(n, port, m, ND_NET_TCP_CSUM);
    if (!n->ops->tcp_input)
        return nd_net_drop(n, port, m, ND_NET_TCP_NO_STACK);
    nd_net_count(n, port, ND_NET_TCP_IN);
    n->ops->tcp_input(n, m, rte_be_to_cpu_32(ip->src_addr), rte_be_to_cpu_32(ip->dst_addr), tcp,
                      len);
}

void nd_ipv4_input(struct nd_net *n, unsigned port, struct rte_mbuf *m)
{
    const struct nd_net_shared *sh = n->sh;
    const struct nd_net_port *p = &sh->port[port];
    uint32_t len = m->data_len - ND_ETH_LEN, hl, tl, src, dst;
    struct rte_ipv4_hdr *ip;
    bool bcast = false;

    if (len < ND_IP_LEN)
        return nd_net_drop(n, port, m, ND_NET_IP_SHORT);
    ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, ND_ETH_LEN);
    if (ip->version_ihl >> 4 != 4)
        return nd_net_drop(n, port, m, ND_NET_IP_VERSION);
    hl = (uint32_t)(ip->version_ihl & 0xf) * 4;
    if (hl < ND_IP_LEN || hl > len)
        return nd_net_drop(n, port, m, ND_NET_IP_IHL);
    tl = rte_be_to_cpu_16(ip->total_length);
    if (tl < hl || tl > len)
        return nd_net_drop(n, port, m, ND_NET_IP_LEN);
    switch (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) {
    case RTE_MBUF_F_RX_IP_CKSUM_GOOD:
        nd_net_count(n, port, ND_NET_CSUM_HW);
        break;
    case RTE_MBUF_F_RX_IP_CKSUM_BAD:
        return nd_net_drop(n, port, m, ND_NET_IP_CSUM);
    default:
        if (nd_net_cksum(ip, hl, 0) != 0xffff)
            return nd_net_drop(n, port, m, ND_NET_IP_CSUM);
    }
    if (ip->time_to_live == 0)
        return nd_net_drop(n, port, m, ND_NET_IP_TTL);
    src = rte_be_to_cpu_32(ip->src_addr);
    dst = rte_be_to_cpu_32(ip->dst_addr);
    if (martian_src(sh, p, src))
        return nd_net_drop(n, port, m, ND_NET_IP_SRC);
    if (dst != p->ip && nd_net_local_port(sh, dst) < 0) {
        if (dst != 0xffffffff && !(p->bcast && dst == p->bcast))
            return nd_net_drop(n, port, m, ND_NET_IP_NOT_OURS);
        bcast = true;
    }
    if (ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))
        return nd_net_drop(n, port, m, ND_NET_IP_FRAG);
    if (tl < len) /* Ethernet padding */
        rte_pktmbuf_trim(m, (uint16_t)(len - tl));
    switch (ip->next_proto_id) {
    case IPPROTO_ICMP:
        return icmp_input(n, port, m, ip, hl, bcast);
    case IPPROTO_UDP:
        return nd_udp_input(n, port, m, bcast);
    case IPPROTO_TCP:
        if (bcast)
            return nd_net_drop(n, port, m, ND_NET_IP_NOT_OURS);
        return tcp_input(n, port, m, ip, hl);
    default:
        n->stats[port].drop[ND_NET_IP_PROTO]++;
        if (bcast)
            n->ops->free(n, m);
        else
            nd_icmp_unreach(n, port, m, 2 /* protocol unreachable */);
    }
}

int nd_net_ip_send(struct nd_net *n, uint32_t src, uint32_t dst, uint8_t proto,
                   const struct nd_net_iov *iov, unsigned iovcnt, unsigned csum)
{
    const struct nd_net_port *p;
    struct rte_ipv4_hdr *ip;
    struct rte_mbuf *m;
    uint32_t plen = 0, nh, off;
    unsigned port;
    uint8_t *l4;

    if (nd_net_route(n->sh, dst, &port, &nh) < 0) {
        n->stats[ND_NET_MAX_PORTS].drop[ND_NET_NO_ROUTE]++;
        return -EHOSTUNREACH;
    }
    p = &n->sh->port[port];
    if (src == 0)
        src = p->ip;
    else if (nd_net_local_port(n->sh, src) < 0)
        return -EADDRNOTAVAIL;
    for (unsigned i = 0; i < iovcnt; i++)
        plen += iov[i].len;
    if (ND_IP_LEN + plen > p->mtu) {
        n->stats[port].drop[ND_NET_TOO_BIG]++;
        return -EMSGSIZE;
    }
    if (!(m = nd_net_alloc(n, port, ND_IP_LEN + plen)))
        return -ENOBUFS;
    ip = rte_pktmbuf_mtod(m, struct rte_ipv4_hdr *);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->type_of_service = 0;
    ip->total_length = rte_cpu_to_be_16((uint16_t)(ND_IP_LEN + plen));
    ip->packet_id = rte_cpu_to_be_16(n->ip_id++);
    ip->fragment_offset = RTE_BE16(RTE_IPV4_HDR_DF_FLAG);
    ip->time_to_live = 64;
    ip->next_proto_id = proto;
    ip->src_addr = rte_cpu_to_be_32(src);
    ip->dst_addr = rte_cpu_to_be_32(dst);
    l4 = (uint8_t *)(ip + 1);
    for (unsigned i = 0, o = 0; i < iovcnt; o += iov[i].len, i++)
        memcpy(l4 + o, iov[i].base, iov[i].len);

    off = proto == IPPROTO_TCP ? 16 : proto == IPPROTO_UDP ? 6 : 0;
    if (off && csum != ND_NET_CSUM_DONE && plen >= off + 2) {
        unsigned ol = proto == IPPROTO_TCP ? ND_NET_OL_TCP_CKSUM : ND_NET_OL_UDP_CKSUM;
        uint16_t c;

        if (p->tx_ol & ol) {
            if (csum == ND_NET_CSUM_FILL) {
                c = nd_net_cksum(NULL, 0, nd_phdr_sum(ip, plen));
                memcpy(l4 + off, &c, 2);
            }
            m->ol_flags |= RTE_MBUF_F_TX_IPV4 | (proto == IPPROTO_TCP ? RTE_MBUF_F_TX_TCP_CKSUM
                                                                      : RTE_MBUF_F_TX_UDP_CKSUM);
            m->l2_len = ND_ETH_LEN;
            m->l3_len = ND_IP_LEN;
        } else {
            /* in software; a partial sum already holds the pseudo-header, so it completes
             * by summing the datagram alone */
            uint32_t start = csum == ND_NET_CSUM_FILL ? nd_phdr_sum(ip, plen) : 0;

            if (csum == ND_NET_CSUM_FILL)
                memset(l4 + off, 0, 2);
            c = (uint16_t)~nd_net_cksum(l4, plen, start);
            if (c == 0 && proto == IPPROTO_UDP)
                c = 0xffff;
            memcpy(l4 + off, &c, 2);
        }
    }
    nd_ipv4_csum_out(n, port, m, ip);
    nd_net_count(n, port, proto == IPPROTO_TCP ? ND_NET_TCP_OUT : ND_NET_UDP_OUT);
    return nd_net_eth_output(n, port, nh, m);
}
