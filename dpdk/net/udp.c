/* UDP sockets over the packet path: bind, receive callback, sendto. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "net_int.h"

int nd_udp_bind(struct nd_net *n, struct nd_udp_sock *s, uint32_t addr, uint16_t port)
{
    if (!port || (addr && nd_net_local_port(n->sh, addr) < 0))
        return -EINVAL;
    for (unsigned i = 0; i < n->nudp; i++)
        if (n->udp[i]->port == port && (!addr || !n->udp[i]->addr || n->udp[i]->addr == addr))
            return -EADDRINUSE;
    if (n->nudp >= ND_UDP_MAX_SOCKS)
        return -ENOSPC;
    s->net = n;
    s->addr = addr;
    s->port = port;
    n->udp[n->nudp++] = s;
    return 0;
}

void nd_udp_unbind(struct nd_udp_sock *s)
{
    struct nd_net *n = s->net;

    if (!n)
        return;
    for (unsigned i = 0; i < n->nudp; i++)
        if (n->udp[i] == s) {
            n->udp[i] = n->udp[--n->nudp];
            break;
        }
    s->net = NULL;
}

static struct nd_udp_sock *udp_lookup(struct nd_net *n, uint32_t dst, uint16_t port)
{
    struct nd_udp_sock *any = NULL;

    for (unsigned i = 0; i < n->nudp; i++) {
        struct nd_udp_sock *s = n->udp[i];

        if (s->port != port)
            continue;
        if (s->addr == dst)
            return s;
        if (!s->addr)
            any = s;
    }
    return any;
}

void nd_udp_input(struct nd_net *n, unsigned port, struct rte_mbuf *m, bool bcast)
{
    struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, ND_ETH_LEN);
    uint32_t hl = rte_ipv4_hdr_len(ip), len = rte_be_to_cpu_16(ip->total_length) - hl, ulen;
    struct rte_udp_hdr *u = (struct rte_udp_hdr *)((uint8_t *)ip + hl);
    struct nd_udp_sock *s;
    uint32_t dst;

    if (len < sizeof(*u) || (ulen = rte_be_to_cpu_16(u->dgram_len)) < sizeof(*u) || ulen > len)
        return nd_net_drop(n, port, m, ND_NET_UDP_SHORT);
    if (u->dgram_cksum && !nd_l4_csum_ok(n, port, m, ip, u, ulen))
        return nd_net_drop(n, port, m, ND_NET_UDP_CSUM);
    dst = rte_be_to_cpu_32(ip->dst_addr);
    if (!(s = udp_lookup(n, bcast ? 0 : dst, rte_be_to_cpu_16(u->dst_port)))) {
        n->stats[port].drop[ND_NET_UDP_PORT]++;
        if (bcast)
            n->ops->free(n, m);
        else
            nd_icmp_unreach(n, port, m, 3 /* port unreachable */);
        return;
    }
    nd_net_count(n, port, ND_NET_UDP_IN);
    s->recv(s, rte_be_to_cpu_32(ip->src_addr), rte_be_to_cpu_16(u->src_port), dst,
            (const uint8_t *)(u + 1), ulen - (uint32_t)sizeof(*u));
    n->ops->free(n, m);
}

int nd_udp_sendto(struct nd_udp_sock *s, uint32_t dst, uint16_t dport, const void *data, size_t len)
{
    struct rte_udp_hdr u;
    struct nd_net_iov iov[2] = {{&u, sizeof(u)}, {data, (uint32_t)len}};

    if (!s->net)
        return -EINVAL;
    if (len > 65535 - ND_IP_LEN - sizeof(u))
        return -EMSGSIZE;
    u.src_port = rte_cpu_to_be_16(s->port);
    u.dst_port = rte_cpu_to_be_16(dport);
    u.dgram_len = rte_cpu_to_be_16((uint16_t)(len + sizeof(u)));
    u.dgram_cksum = 0;
    return nd_net_ip_send(s->net, s->addr, dst, IPPROTO_UDP, iov, 2, ND_NET_CSUM_FILL);
}
