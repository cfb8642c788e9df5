/*
 * The packet path below TCP, per worker: Ethernet, ARP, IPv4, ICMP, UDP, TX batching and fault
 * injection, over DPDK mbufs. It needs no EAL: the backend (port.c, or a test) supplies mbuf
 * allocation and the TX ring through struct nd_net_ops, so the same code runs on a NIC, in the
 * unit tests and under the fuzzer.
 *
 * A worker's loop, run to completion:
 *     n = rte_eth_rx_burst(...);  nd_net_rx_burst(net, port, pkts, n);   for each port
 *     nd_net_tick(net, now_ms);   nd_net_flush(net);
 * Everything sent in an iteration (replies, ARP, UDP, TCP segments, timers' frames) is queued per
 * port and leaves in one burst at nd_net_flush() (earlier only when ND_NET_TXQ are queued).
 *
 * Addresses and ports are host byte order in every call. Functions that take an mbuf take it:
 * it is sent, handed on or freed (and counted) before they return.
 */
#ifndef NODUS_DPDK_NET_H
#define NODUS_DPDK_NET_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "net-t.h"

/* Ports (address, prefix; MTU 1500) and routes (connected subnets plus c's, longest prefix
 * first) from a validated configuration. The backend fills in port_id, mac, mtu and tx_ol. */
void nd_net_shared_init(struct nd_net_shared *sh, const struct nd_dpdk_conf *c);

/* A worker's stack; sh must outlive it. fault may be NULL (no fault injection); the PRNG of
 * each port and direction is seeded from fault->seed and the worker number. */
void nd_net_init(struct nd_net *n, const struct nd_net_shared *sh, const struct nd_net_ops *ops,
                 void *udata, unsigned worker, const struct nd_dpdk_fault_conf *fault,
                 uint64_t now_ms);
/* Frees every mbuf the stack still holds (TX queues, ARP queues, reordered packets). */
void nd_net_fini(struct nd_net *n);

/* Received frames of port (an index into sh->port): fault injection, then nd_net_input each. */
void nd_net_rx_burst(struct nd_net *n, unsigned port, struct rte_mbuf **pkts, uint16_t cnt);
/* One received frame, without fault injection. */
void nd_net_input(struct nd_net *n, unsigned port, struct rte_mbuf *m);
/* Timers: ARP retries and ageing, the ICMP error bucket, reordered packets held too long.
 * Cheap when nothing is due; call it every loop iteration. */
void nd_net_tick(struct nd_net *n, uint64_t now_ms);
/* Sends what is queued on every port (TX fault injection first). Returns the frames handed to
 * the ports. */
unsigned nd_net_flush(struct nd_net *n);
/* Gratuitous ARP (a request for our own address) on every port: at start, after a change. */
void nd_net_announce(struct nd_net *n);

/* Longest-prefix match: the port index and next hop for dst; 0, or -1 (no route). */
int nd_net_route(const struct nd_net_shared *sh, uint32_t dst, unsigned *port, uint32_t *nexthop);
/* The port whose address is ip, or -1. */
int nd_net_local_port(const struct nd_net_shared *sh, uint32_t ip);

/* Sending an IPv4 datagram built from pieces (the L4 header is the first). */
struct nd_net_iov {
    const void *base;
    uint32_t len;
};
#define ND_NET_CSUM_DONE 0 /* the L4 checksum is filled in */
#define ND_NET_CSUM_FILL 1 /* fill it in here (UDP, TCP): in software or by the NIC */
#define ND_NET_CSUM_PARTIAL                                                                        \
    2 /* it holds the pseudo-header sum: the NIC completes it (the port                            \
         must have the offload: nd_net_csum_offload()) */
/* src 0: the address of the port the route leaves by. 0 (sent or queued for ARP), or -errno:
 * -EHOSTUNREACH (no route), -EADDRNOTAVAIL (src not ours), -EMSGSIZE (beyond the MTU),
 * -ENOBUFS (no mbuf, or the ARP queue is full). */
int nd_net_ip_send(struct nd_net *n, uint32_t src, uint32_t dst, uint8_t proto,
                   const struct nd_net_iov *iov, unsigned iovcnt, unsigned csum);
/* True when every port completes the given L4 checksum (ND_NET_OL_TCP_CKSUM...): the TCP engine
 * may then emit partial sums. */
bool nd_net_csum_offload(const struct nd_net_shared *sh, unsigned ol);

/* ARP: what an exchange (or another worker) taught us. Also releases packets waiting for ip. */
void nd_net_arp_learn(struct nd_net *n, unsigned port, uint32_t ip,
                      const struct rte_ether_addr *mac);
/* The cache entry for ip, or NULL (for tests and the admin dump). */
const struct nd_arp_entry *nd_net_arp_lookup(const struct nd_net *n, uint32_t ip);

/* UDP sockets. Bind: 0, -EADDRINUSE, -ENOSPC (ND_UDP_MAX_SOCKS), -EINVAL (port 0, or addr not
 * ours). s->recv and s->udata are set by the caller; s must stay put until unbound. */
int nd_udp_bind(struct nd_net *n, struct nd_udp_sock *s, uint32_t addr, uint16_t port);
void nd_udp_unbind(struct nd_udp_sock *s);
/* One datagram (no fragmentation: at most MTU - 28 bytes). As nd_net_ip_send. */
int nd_udp_sendto(struct nd_udp_sock *s, uint32_t dst, uint16_t dport, const void *data,
                  size_t len);

/* Counter names, for metrics and dumps. */
const char *nd_net_drop_name(enum nd_net_drop d);
const char *nd_net_event_name(enum nd_net_event e);
/* Adds a worker's counters for port (ND_NET_MAX_PORTS: the portless slot) into sum. */
void nd_net_stats_add(struct nd_net_stats *sum, const struct nd_net *n, unsigned port);

/* The Internet checksum over len bytes starting with sum (not complemented, not folded). */
uint16_t nd_net_cksum(const void *p, size_t len, uint32_t sum);

#endif
