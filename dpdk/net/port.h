/*
 * EAL and ports: starts DPDK from a struct nd_dpdk_conf, sets up every port with the RX/TX queues
 * its PMD has for the workers (one pair per worker when it can steer flows by RSS as we do; else
 * as many as it has, and the hand-over of handoff.h), a mempool per worker, and the checksum
 * offloads the NIC has; then each worker polls with nd_dpdk_rx() and nd_dpdk_flush().
 *
 * Threads: nd_dpdk_start()/nd_dpdk_stop() on the main thread; a worker's calls only on that
 * worker (register non-EAL worker threads with rte_thread_register() first, so mempool caches
 * work). Statistics may be read from any thread (plain 64-bit loads: a little stale, never torn
 * on x86-64).
 */
#ifndef NODUS_DPDK_NET_PORT_H
#define NODUS_DPDK_NET_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_common.h>
#include <rte_ethdev.h>

#include "conf.h"
#include "handoff.h"
#include "net.h"

#define ND_DPDK_MAX_WORKERS ND_HO_MAX_WORKERS
#define ND_DPDK_RX_DESC 1024
#define ND_DPDK_TX_DESC 1024
#define ND_DPDK_MBUFS 8191 /* per worker pool (2^n - 1 is what the ring likes) */
#define ND_DPDK_MBUF_CACHE 256
/* net_af_xdp: the size of an XSK socket's RX and TX rings (the PMD sizes both from the RX
 * descriptors), and what one RX/TX queue pair keeps out of its pool: the PMD of DPDK 22.11 puts
 * 2048 mbufs in the fill ring and keeps it full, and TX sends the mbufs themselves, held until
 * the kernel completes them. Added to the pool of the worker whose RX queue it is. */
#define ND_DPDK_XSK_DESC 2048
#define ND_DPDK_XSK_FILL 2048
#define ND_DPDK_XSK_MBUFS (ND_DPDK_XSK_FILL + ND_DPDK_XSK_DESC)

/* How the frames of a port reach the worker their flow belongs to (handoff.h). */
enum nd_dpdk_steer {
    ND_DPDK_STEER_NONE,     /* one worker */
    ND_DPDK_STEER_RSS,      /* the NIC: one RX queue per worker, RSS with our key */
    ND_DPDK_STEER_SOFTWARE, /* the workers polling its queues hand frames over */
};

/* The drops the kernel counts on the sockets behind software ports, which the PMDs of DPDK
 * 22.11 report partly (af_xdp: its socket's rx_dropped in imissed) or not at all (af_packet). */
enum nd_dpdk_ksock {
    ND_DPDK_KSOCK_NONE,
    ND_DPDK_KSOCK_PACKET, /* net_af_packet: PACKET_STATISTICS */
    ND_DPDK_KSOCK_XDP,    /* net_af_xdp: XDP_STATISTICS */
};

/* One of a port's counters from its PMD or the kernel (nd_dpdk_port_hw). */
struct nd_dpdk_hw {
    const char *name;
    uint64_t value;
};
#define ND_DPDK_HW_MAX 16

struct nd_dpdk_port_info {
    char name[RTE_ETH_NAME_MAX_LEN];
    char driver[32];
    uint16_t port_id;
    uint16_t nrxq, ntxq;       /* RX and TX queues configured: worker q polls RX queue q */
    uint16_t max_rxq, max_txq; /* what the PMD offers */
    enum nd_dpdk_steer steer;
    uint64_t rx_offloads;         /* RTE_ETH_RX_OFFLOAD_* enabled */
    uint64_t tx_offloads;         /* RTE_ETH_TX_OFFLOAD_* enabled */
    enum nd_dpdk_ksock ksock;     /* the kind of kernel socket behind its queues */
    int kfd[ND_DPDK_MAX_WORKERS]; /* those sockets (the PMD's), by queue; -1: not found */
    uint64_t packet_drops;        /* af_packet: tp_drops summed (the kernel clears them) */
};

struct nd_dpdk {
    struct nd_dpdk_conf conf;
    struct nd_net_shared sh;
    unsigned nworkers;
    struct rte_mempool *pool[ND_DPDK_MAX_WORKERS];
    unsigned xsk_queues[ND_DPDK_MAX_WORKERS]; /* af_xdp RX queues on its pool (the UMEM) */
    struct nd_dpdk_port_info info[ND_NET_MAX_PORTS];
    struct nd_handoff ho; /* rings between workers (nworkers > 1) */
    uint8_t rss_key[40];
    bool eal_up, ports_up;
    uint32_t eal_ms, pools_ms, ports_ms; /* how long nd_dpdk_start() took for each */
};

struct nd_dpdk_worker {
    struct nd_net net;
    struct nd_net_ops ops; /* the worker's own copy: the core sets tcp_input, icmp_error */
    struct nd_dpdk *d;
    struct rte_mempool *pool;
    unsigned id;
    int16_t rxq[ND_NET_MAX_PORTS]; /* its RX queue on each port, -1: none */
    int16_t txq[ND_NET_MAX_PORTS]; /* its TX queue, -1: frames go to the owner's (handoff.h) */
} __rte_cache_aligned;

/* Initialises the EAL (argv from c: its args, --vdev / -a per port) and every port, for
 * nworkers workers. 0, or -1 with a message in err (and nothing left running). */
int nd_dpdk_start(struct nd_dpdk *d, const struct nd_dpdk_conf *c, unsigned nworkers, char *err,
                  size_t errlen);
/* Stops and closes the ports, frees the pools, cleans up the EAL (workers finished first). */
void nd_dpdk_stop(struct nd_dpdk *d);
/* Worker id's stack, its queues and hand-over. 0, or -1 (id >= d->nworkers). */
int nd_dpdk_worker_init(struct nd_dpdk *d, struct nd_dpdk_worker *w, unsigned id, uint64_t now_ms);
void nd_dpdk_worker_fini(struct nd_dpdk_worker *w);
/* A worker's RX step: ARP entries other workers learned; an RX burst from each of its queues
 * into the stack (on software-steered ports, other workers' frames handed to them first); the
 * frames other workers handed to it. Returns how many frames it handled. */
unsigned nd_dpdk_rx(struct nd_dpdk_worker *w);
/* The TX step: nd_net_flush(), then the frames other workers handed to its TX queues. Returns
 * the frames it sent, its own and those. */
unsigned nd_dpdk_flush(struct nd_dpdk_worker *w);
/* Frames or ARP entries wait for this worker on its hand-over rings. */
bool nd_dpdk_pending(const struct nd_dpdk_worker *w);
/* Other workers' frames come in or go out through this worker's queues (the hand-over). */
bool nd_dpdk_serves_others(const struct nd_dpdk_worker *w);
/* One loop iteration: timers, nd_dpdk_rx(), nd_dpdk_flush(). Returns frames handled. */
unsigned nd_dpdk_poll(struct nd_dpdk_worker *w, uint64_t now_ms);
/* "rss", "software" or "none". */
const char *nd_dpdk_steer_name(enum nd_dpdk_steer s);
/* Link state of port (index): true when up; speed in Mbps, 0 when the PMD does not know it. */
bool nd_dpdk_link(const struct nd_dpdk *d, unsigned port, uint32_t *speed);
/* Port p's counters from its PMD, into out (ND_DPDK_HW_MAX entries): rte_eth_stats' ipackets
 * opackets ibytes obytes imissed ierrors oerrors rx_nombuf; then what the kernel counts on the
 * sockets of an af_packet port (ring_drops: frames its RX ring had no room for) or an af_xdp
 * port (xsk_rx_dropped: no buffer in the fill ring or too long; xsk_rx_ring_full;
 * xsk_fill_ring_empty: times the kernel found the fill ring empty; xsk_rx_invalid_descs,
 * xsk_tx_invalid_descs: descriptors the kernel refused), summed over its queues, when its
 * sockets were found. Returns how many it wrote (0 if the PMD gave nothing). Main thread only:
 * reading af_packet's counters clears them, so they are summed in d. */
unsigned nd_dpdk_port_hw(struct nd_dpdk *d, unsigned p, struct nd_dpdk_hw *out);
/* Worker w's mbuf pool: its size, and how many of its mbufs are out (in the PMDs' rings, the
 * af_xdp fill rings included, in TCP buffers, in flight). Any thread; a worker's cache moving
 * meanwhile makes the count a little off. */
void nd_dpdk_pool_usage(const struct nd_dpdk *d, unsigned w, unsigned *size, unsigned *in_use);
/* Writes "name value" lines for every port: the stack's counters summed over the workers, and
 * the PMD's (hw_*, nd_dpdk_port_hw). */
void nd_dpdk_stats_write(struct nd_dpdk *d, struct nd_dpdk_worker *const *w, unsigned nw, FILE *f);

#endif
