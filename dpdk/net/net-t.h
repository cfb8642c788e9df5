/*
 * Types of the packet path below TCP (see net.h for the functions). One struct nd_net per
 * worker holds everything a worker touches per packet: its ARP cache, UDP sockets, TX queues,
 * fault injector and counters. What all workers share (ports, addresses, routes) is a
 * struct nd_net_shared that is read-only once the workers run.
 */
#ifndef NODUS_DPDK_NET_T_H
#define NODUS_DPDK_NET_T_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ether.h>

struct rte_mbuf;
struct nd_net;

#define ND_NET_MAX_PORTS 8
#define ND_NET_MAX_ROUTES (64 + ND_NET_MAX_PORTS) /* static + connected */
#define ND_NET_BURST 32                           /* RX burst size (and hand-over) */
#define ND_NET_TXQ 128                            /* frames queued per port: struct nd_net_txq */
#define ND_ARP_SIZE 256                           /* cache entries per worker (power of two) */
#define ND_ARP_PROBES 8                           /* slots looked at per address */
#define ND_ARP_HOLD 4                             /* packets queued per unresolved address */
#define ND_ARP_HOLD_TOTAL 64                      /* packets queued per worker, all addresses */
#define ND_ARP_RETRIES 3                          /* requests sent before giving up */
#define ND_ARP_RETRY_MS 1000
#define ND_ARP_REACHABLE_MS 30000 /* a confirmed entry is used without question this long */
#define ND_ARP_STALE_MS                                                                            \
    300000 /* after that it is still used, re-confirmed on use, and                                \
              forgotten when unconfirmed this much longer */
#define ND_UDP_MAX_SOCKS 32
#define ND_ICMP_ERR_BURST 50 /* ICMP errors sent: token bucket, per worker */
#define ND_ICMP_ERR_PER_S 100
#define ND_FAULT_HOLD_MS 2 /* a reordered packet waits at most this long */
#define ND_NET_TICK_MS 100 /* ARP timers and the ICMP bucket run at this period */

/* Why a frame was dropped: every drop is counted under exactly one reason. */
#define ND_NET_DROPS(X)                                                                            \
    X(ETH_SHORT, "eth_short")       /* shorter than an Ethernet header */                          \
    X(ETH_DST, "eth_not_ours")      /* destination MAC neither ours nor broadcast */               \
    X(ETH_TYPE, "eth_type")         /* not IPv4 or ARP (IPv6, VLAN tagged, ...) */                 \
    X(MULTISEG, "multi_segment")    /* chained mbufs (scatter is not enabled) */                   \
    X(ARP_BAD, "arp_malformed")     /* not Ethernet/IPv4 ARP, bad op or sender */                  \
    X(ARP_NOT_OURS, "arp_not_ours") /* for another host (after learning from it) */                \
    X(IP_SHORT, "ip_short")         /* shorter than an IPv4 header */                              \
    X(IP_VERSION, "ip_version")     /* version is not 4 */                                         \
    X(IP_IHL, "ip_ihl")             /* header length < 20 or beyond the frame */                   \
    X(IP_LEN, "ip_total_length")    /* total length < header or > frame */                         \
    X(IP_CSUM, "ip_checksum")                                                                      \
    X(IP_TTL, "ip_ttl")           /* TTL 0 */                                                      \
    X(IP_SRC, "ip_bad_source")    /* source multicast, broadcast, zero, loopback or ours */        \
    X(IP_NOT_OURS, "ip_not_ours") /* no forwarding: not one of our addresses */                    \
    X(IP_FRAG, "ip_fragment")     /* fragments are not reassembled (docs/dpdk.md) */               \
    X(IP_PROTO, "ip_protocol")    /* no such protocol (protocol unreachable sent) */               \
    X(ICMP_SHORT, "icmp_short")                                                                    \
    X(ICMP_CSUM, "icmp_checksum")                                                                  \
    X(ICMP_TYPE, "icmp_type")       /* a type we do not handle */                                  \
    X(ICMP_BCAST, "icmp_broadcast") /* echo to a broadcast address (not answered) */               \
    X(UDP_SHORT, "udp_short")       /* header or length field inconsistent */                      \
    X(UDP_CSUM, "udp_checksum")                                                                    \
    X(UDP_PORT, "udp_no_socket") /* no socket (port unreachable sent) */                           \
    X(TCP_SHORT, "tcp_short")    /* header or data offset inconsistent */                          \
    X(TCP_CSUM, "tcp_checksum")                                                                    \
    X(TCP_NO_STACK, "tcp_no_stack")    /* no TCP engine attached */                                \
    X(ARP_HOLD_FULL, "arp_queue_full") /* address being resolved, its queue full */                \
    X(ARP_FAILED, "arp_unresolved")    /* queued, and the address never answered */                \
    X(NO_ROUTE, "no_route")                                                                        \
    X(NO_MBUF, "no_mbuf")                /* pool empty, or no headroom for a reply */              \
    X(TX_FULL, "tx_queue_full")          /* the NIC's TX ring did not take it */                   \
    X(HANDOFF_FULL, "handoff_ring_full") /* its worker's ring was full (handoff.h) */              \
    X(TOO_BIG, "too_big")                /* beyond the MTU (no fragmentation on send) */           \
    X(FAULT_RX, "fault_rx_drop")         /* fault injection, receiving */                          \
    X(FAULT_TX, "fault_tx_drop")         /* fault injection, sending */

/* Things that happened, counted (not drops). */
#define ND_NET_EVENTS(X)                                                                           \
    X(ARP_REQ_IN, "arp_requests_in")                                                               \
    X(ARP_REPLY_IN, "arp_replies_in")                                                              \
    X(ARP_REPLY_OUT, "arp_replies_out")                                                            \
    X(ARP_REQ_OUT, "arp_requests_out")                                                             \
    X(ARP_LEARNED, "arp_learned")                                                                  \
    X(ARP_GARP_OUT, "arp_gratuitous_out")                                                          \
    X(ICMP_ECHO, "icmp_echo_replies")                                                              \
    X(ICMP_UNREACH_OUT, "icmp_unreachable_out")                                                    \
    X(ICMP_ERR_LIMITED, "icmp_errors_rate_limited")                                                \
    X(ICMP_ERR_IN, "icmp_errors_in")                                                               \
    X(ICMP_OTHER_IN, "icmp_echo_replies_in")                                                       \
    X(UDP_IN, "udp_in")                                                                            \
    X(UDP_OUT, "udp_out")                                                                          \
    X(TCP_IN, "tcp_in")                                                                            \
    X(TCP_OUT, "tcp_out")                                                                          \
    X(CSUM_HW, "rx_checksums_by_nic")                                                              \
    X(FAULT_DUP, "fault_duplicated")                                                               \
    X(FAULT_REORDER, "fault_reordered")

#define ND_NET_ENUM(e, s) ND_NET_##e,
enum nd_net_drop { ND_NET_DROPS(ND_NET_ENUM) ND_NET_DROP_MAX };
enum nd_net_event { ND_NET_EVENTS(ND_NET_ENUM) ND_NET_EVENT_MAX };
#undef ND_NET_ENUM

/* One port's counters on one worker. Slot ND_NET_MAX_PORTS of a worker's array counts drops
 * that belong to no port (no route). */
struct nd_net_stats {
    uint64_t rx_pkts, rx_bytes; /* frames given to the stack (after RX fault injection) */
    uint64_t tx_pkts, tx_bytes; /* frames the NIC took */
    uint64_t tx_bursts;         /* the PMD's tx_burst calls (af_packet: a sendto() each) */
    uint64_t drop[ND_NET_DROP_MAX];
    uint64_t ev[ND_NET_EVENT_MAX];
};

/* TX offloads a port does (from its capabilities): the stack then leaves the sums to the NIC. */
#define ND_NET_OL_IPV4_CKSUM 0x1
#define ND_NET_OL_UDP_CKSUM 0x2
#define ND_NET_OL_TCP_CKSUM 0x4

struct nd_net_port {
    uint16_t port_id; /* DPDK's */
    struct rte_ether_addr mac;
    uint32_t ip, mask; /* host order */
    uint32_t bcast;    /* subnet broadcast, host order (none for /31 and /32: 0) */
    uint8_t prefix;
    uint16_t mtu;
    unsigned tx_ol; /* ND_NET_OL_* */
};

struct nd_net_route {
    uint32_t dst, mask; /* host order */
    uint32_t via;       /* 0: connected (the destination itself is the next hop) */
    uint8_t prefix;
    uint8_t port; /* index into nd_net_shared.port */
};

struct nd_net_shared {
    struct nd_net_port port[ND_NET_MAX_PORTS];
    unsigned nports;
    struct nd_net_route route[ND_NET_MAX_ROUTES]; /* longest prefix first */
    unsigned nroutes;
};

/*
 * How the stack reaches its backend (DPDK: port.c; tests: memory). Called only from the worker
 * that owns the nd_net.
 */
struct nd_net_ops {
    /* An empty single-segment mbuf with the default headroom, or NULL. */
    struct rte_mbuf *(*alloc)(struct nd_net *n);
    /* A full copy of m (fault duplication), or NULL. */
    struct rte_mbuf *(*copy)(struct nd_net *n, struct rte_mbuf *m);
    void (*free)(struct nd_net *n, struct rte_mbuf *m);
    /* Puts up to cnt frames on port's TX ring; returns how many it took (the rest stay ours). */
    uint16_t (*tx_burst)(struct nd_net *n, unsigned port, struct rte_mbuf **pkts, uint16_t cnt);
    /* A TCP segment for us, checksum verified: tcp points at the header, len covers header and
     * payload, src/dst are host order. Takes m (must free it once done). NULL: dropped. */
    void (*tcp_input)(struct nd_net *n, struct rte_mbuf *m, uint32_t src, uint32_t dst,
                      const uint8_t *tcp, uint32_t len);
    /* An ICMP destination unreachable / time exceeded / parameter problem arrived: type, code,
     * and the quoted IP header and what follows it (len bytes). May be NULL. */
    void (*icmp_error)(struct nd_net *n, uint8_t type, uint8_t code, const uint8_t *quoted,
                       uint32_t len);
    /* An ARP exchange confirmed ip is at mac on port (to share with other workers). May be NULL. */
    void (*arp_learned)(struct nd_net *n, unsigned port, uint32_t ip,
                        const struct rte_ether_addr *mac);
};

enum nd_arp_state { ND_ARP_FREE = 0, ND_ARP_INCOMPLETE, ND_ARP_REACHABLE, ND_ARP_STALE };

struct nd_arp_entry {
    uint32_t ip; /* host order */
    uint8_t state, port, tries, nhold;
    struct rte_ether_addr mac;
    uint64_t confirmed_ms; /* last confirmation (REACHABLE/STALE) */
    uint64_t next_ms;      /* INCOMPLETE: next retry; STALE: earliest next probe */
    struct rte_mbuf *hold[ND_ARP_HOLD];
};

/* A UDP socket: caller-owned memory, bound on one worker's stack. */
struct nd_udp_sock;
/* A datagram for s: data is valid during the call only. Addresses and ports host order. */
typedef void (*nd_udp_recv_fn)(struct nd_udp_sock *s, uint32_t src, uint16_t sport, uint32_t dst,
                               const uint8_t *data, uint32_t len);
struct nd_udp_sock {
    struct nd_net *net;
    uint32_t addr; /* local, host order; 0: any */
    uint16_t port; /* host order */
    nd_udp_recv_fn recv;
    void *udata;
};

/* Fault injection on one direction of one port. Thresholds are probabilities scaled to 2^32. */
struct nd_fault {
    uint64_t drop, dup, reorder;
    uint64_t rng;
    struct rte_mbuf *held; /* the packet being reordered */
    uint64_t held_ms;
};

/* A worker's frames for one port: what an iteration sends leaves in one tx_burst at the flush (one
 * sendto() on af_packet), earlier only when ND_NET_TXQ are queued (below any TX ring's size). */
struct nd_net_txq {
    struct rte_mbuf *m[ND_NET_TXQ];
    uint16_t n;
};

struct nd_net {
    const struct nd_net_shared *sh;
    const struct nd_net_ops *ops;
    void *udata; /* the backend's */
    unsigned worker;
    uint64_t now_ms, next_tick_ms;
    bool faults; /* fault injection configured */
    uint16_t ip_id;
    unsigned arp_held; /* packets held for resolution, all entries */
    unsigned icmp_tokens;
    uint64_t icmp_refill_ms;
    struct nd_udp_sock *udp[ND_UDP_MAX_SOCKS];
    unsigned nudp;
    struct nd_net_txq txq[ND_NET_MAX_PORTS];
    struct nd_fault fault_rx[ND_NET_MAX_PORTS], fault_tx[ND_NET_MAX_PORTS];
    struct nd_arp_entry arp[ND_ARP_SIZE];
    struct nd_net_stats stats[ND_NET_MAX_PORTS + 1];
};

#endif
