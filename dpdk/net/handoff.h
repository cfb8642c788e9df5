/*
 * The hand-over between workers, for ports with fewer queues than workers or without RSS that
 * steers flows as we do (docs/dpdk.md, "Ports and queues").
 *
 * Every flow belongs to one worker: nd_handoff_flow_worker(), the Toeplitz hash (rte_softrss,
 * the symmetric key of port.c) of its 4-tuple as its segments arrive, modulo the workers. A NIC
 * doing RSS with that key and a redirection table of a multiple of the workers puts each flow on
 * its worker's queue by itself; on the other ports ("software-steered"), the worker that polls a
 * queue computes the hash of each IPv4 TCP/UDP frame and hands frames of other workers' flows
 * over on that worker's RX ring (multi-producer: every polling worker may feed it; single
 * consumer). Anything else (ARP, ICMP, fragments, what the stack will drop) stays where it came
 * in. The connect path picks source ports with the same function, so replies come back to the
 * worker that connected.
 *
 * A worker without a TX queue on a port hands its frames for that port to the queue's owner on a
 * ring of its own (single producer, single consumer), which the owner drains into its queue.
 *
 * ARP: what one worker learns (the nd_net arp_learned hook) is passed to every other worker on
 * its ARP ring, so a worker whose requests are answered on another worker's queue learns the
 * answer too (and sends what it held for it).
 *
 * A full ring drops (frames counted as handoff_ring_full on their port, ARP entries in the
 * counters below); nothing waits. Rings live in ordinary memory (rte_ring_init: no EAL), so this
 * runs in the unit tests on memio.h mbufs. Each worker calls the functions with its own id and
 * nd_net; the counters of worker w are written by w only.
 */
#ifndef NODUS_DPDK_NET_HANDOFF_H
#define NODUS_DPDK_NET_HANDOFF_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_common.h>

#include "net-t.h"

struct rte_ring;

#define ND_HO_MAX_WORKERS 64
#define ND_HO_RX_RING 1024 /* frames waiting for a worker (power of two) */
#define ND_HO_TX_RING 1024 /* a worker's frames waiting for a port's TX queue owner */
#define ND_HO_ARP_RING 64  /* ARP entries waiting for a worker */

/* One worker's hand-over counters. */
struct nd_ho_stats {
    uint64_t rx_out;     /* frames received here, handed to their worker */
    uint64_t rx_in;      /* frames other workers received for this one */
    uint64_t rx_full;    /* frames dropped: their worker's RX ring was full */
    uint64_t tx_out;     /* frames handed to a TX queue's owner */
    uint64_t tx_in;      /* frames of other workers this one put on its TX queue */
    uint64_t tx_full;    /* frames dropped: the ring to the owner was full */
    uint64_t tx_refused; /* frames of other workers the TX queue did not take */
    uint64_t arp_out;    /* ARP entries passed to other workers */
    uint64_t arp_full;   /* ARP entries lost: a worker's ARP ring was full */
} __rte_cache_aligned;

struct nd_handoff {
    unsigned nworkers;
    uint8_t key[40];                         /* the RSS key (port.c's) */
    struct rte_ring *rx[ND_HO_MAX_WORKERS];  /* frames for worker w (nworkers > 1) */
    struct rte_ring *arp[ND_HO_MAX_WORKERS]; /* ARP entries for worker w (nworkers > 1) */
    /* worker w's frames for port p, to tx_owner[w][p]; NULL: w has a TX queue of its own */
    struct rte_ring *tx[ND_HO_MAX_WORKERS][ND_NET_MAX_PORTS];
    uint8_t tx_owner[ND_HO_MAX_WORKERS][ND_NET_MAX_PORTS];
    uint64_t tx_from[ND_HO_MAX_WORKERS]; /* bit w of tx_from[o]: w hands frames to o */
    struct nd_ho_stats st[ND_HO_MAX_WORKERS];
};

/* Rings for nworkers workers (none for one worker). 0, or -1 (out of memory: nothing kept). */
int nd_handoff_init(struct nd_handoff *h, unsigned nworkers, const uint8_t key[40]);
/* Worker w has no TX queue on port p: its frames for p go to owner's. 0, or -1 (no memory). */
int nd_handoff_tx_route(struct nd_handoff *h, unsigned w, unsigned port, unsigned owner);
/* Frees the rings and the frames still in them (workers finished). */
void nd_handoff_fini(struct nd_handoff *h);

/* The worker a flow belongs to, from its 4-tuple as its segments arrive (host order). */
unsigned nd_handoff_flow_worker(const struct nd_handoff *h, uint32_t src, uint32_t dst,
                                uint16_t sport, uint16_t dport);
/* The worker of a received frame's flow, or -1 when it stays where it came in (not IPv4 TCP or
 * UDP, a fragment, too short to tell). */
int nd_handoff_frame_worker(const struct nd_handoff *h, const struct rte_mbuf *m);

/* A burst (at most ND_NET_BURST frames) received by worker self on port (software-steered):
 * frames of other workers' flows go to their rings; returns how many stay, moved to the front of
 * pkts. */
uint16_t nd_handoff_rx_steer(struct nd_handoff *h, unsigned self, struct nd_net *n, unsigned port,
                             struct rte_mbuf **pkts, uint16_t cnt);
/* Frames other workers handed to self, into its stack (nd_net_rx_burst). Returns how many. */
unsigned nd_handoff_rx_drain(struct nd_handoff *h, unsigned self, struct nd_net *n);

/* Worker self's frames for port, onto its ring to the owner: returns how many it took (the
 * rest stay the caller's, as a TX burst). */
uint16_t nd_handoff_tx(struct nd_handoff *h, unsigned self, unsigned port, struct rte_mbuf **pkts,
                       uint16_t cnt);
/* Owner self puts what other workers handed to it on its TX queues (n->ops->tx_burst); what
 * the queue refuses is freed and counted. Returns frames taken from the rings. */
unsigned nd_handoff_tx_drain(struct nd_handoff *h, unsigned self, struct nd_net *n);

/* Worker self learned ip at mac on port: tells every other worker. */
void nd_handoff_arp_share(struct nd_handoff *h, unsigned self, unsigned port, uint32_t ip,
                          const struct rte_ether_addr *mac);
/* What other workers learned, into self's ARP cache (nd_net_arp_learn). Returns entries. */
unsigned nd_handoff_arp_drain(struct nd_handoff *h, unsigned self, struct nd_net *n);

/* Something waits for self on its rings (so it does not sleep). */
bool nd_handoff_pending(const struct nd_handoff *h, unsigned self);

#endif
