/* Internals shared by the files of the packet path (not for other modules). */
#ifndef NODUS_DPDK_NET_INT_H
#define NODUS_DPDK_NET_INT_H

#include <rte_arp.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "net.h"

#define ND_ETH_LEN ((uint32_t)sizeof(struct rte_ether_hdr))
#define ND_IP_LEN ((uint32_t)sizeof(struct rte_ipv4_hdr))

static inline void nd_net_count(struct nd_net *n, unsigned port, enum nd_net_event e)
{
    n->stats[port].ev[e]++;
}

static inline void nd_net_drop(struct nd_net *n, unsigned port, struct rte_mbuf *m,
                               enum nd_net_drop why)
{
    n->stats[port].drop[why]++;
    n->ops->free(n, m);
}

/* Queues a complete frame on port's TX queue (sent when ND_NET_TXQ are queued, or at flush). */
void nd_net_tx(struct nd_net *n, unsigned port, struct rte_mbuf *m);
/* m starts at a complete IPv4 header: adds Ethernet and resolves nexthop (ARP), then queues it.
 * 0, or -ENOBUFS (dropped and counted). */
int nd_net_eth_output(struct nd_net *n, unsigned port, uint32_t nexthop, struct rte_mbuf *m);
/* An mbuf holding len bytes of uninitialised data, or NULL (counted as no_mbuf on port). */
struct rte_mbuf *nd_net_alloc(struct nd_net *n, unsigned port, uint32_t len);

void nd_arp_input(struct nd_net *n, unsigned port, struct rte_mbuf *m);
void nd_arp_tick(struct nd_net *n);
void nd_arp_fini(struct nd_net *n);
void nd_ipv4_input(struct nd_net *n, unsigned port, struct rte_mbuf *m);
/* The datagram in m (data at the IP header) is for a closed UDP port or unknown protocol:
 * turns m into an ICMP destination unreachable (type 3, code) back to its sender, or frees it. */
void nd_icmp_unreach(struct nd_net *n, unsigned port, struct rte_mbuf *m, uint8_t code);
void nd_udp_input(struct nd_net *n, unsigned port, struct rte_mbuf *m, bool bcast);
/* IPv4 header checksum: in software, or left to the NIC of port. */
void nd_ipv4_csum_out(struct nd_net *n, unsigned port, struct rte_mbuf *m, struct rte_ipv4_hdr *ip);

void nd_fault_init(struct nd_fault *f, const struct nd_dpdk_fault_conf *c, uint64_t seed);
/* Applies f to in[0..cnt) and writes what goes on to out (at most cap, at least 2 * cnt + 1 are
 * needed for the worst case). Returns how many. */
uint16_t nd_fault_apply(struct nd_net *n, struct nd_fault *f, unsigned port, bool rx,
                        struct rte_mbuf **in, uint16_t cnt, struct rte_mbuf **out, uint16_t cap);
/* The pseudo-header sum (not complemented) of an IPv4 datagram whose L4 part is l4len bytes. */
static inline uint32_t nd_phdr_sum(const struct rte_ipv4_hdr *ip, uint32_t l4len)
{
    uint32_t s = (ip->src_addr & 0xffff) + (ip->src_addr >> 16) + (ip->dst_addr & 0xffff) +
                 (ip->dst_addr >> 16);

    return s + rte_cpu_to_be_16((uint16_t)ip->next_proto_id) + rte_cpu_to_be_16((uint16_t)l4len);
}
/* The L4 checksum of a received datagram is right (or the NIC said so). */
bool nd_l4_csum_ok(struct nd_net *n, unsigned port, const struct rte_mbuf *m,
                   const struct rte_ipv4_hdr *ip, const void *l4, uint32_t l4len);
static inline bool nd_fault_active(const struct nd_fault *f)
{
    return f->drop || f->dup || f->reorder || f->held;
}

#endif
