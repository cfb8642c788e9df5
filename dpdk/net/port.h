/*
 * EAL and ports: starts DPDK from a struct nd_dpdk_conf, sets up every port with one RX/TX
 * queue pair per worker (as many as the PMD has), a mempool per worker, and the checksum
 * offloads the NIC has; then each worker polls its queues with nd_dpdk_poll().
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
#include "net.h"

#define ND_DPDK_MAX_WORKERS 64
#define ND_DPDK_RX_DESC 1024
#define ND_DPDK_TX_DESC 1024
#define ND_DPDK_MBUFS 8191 /* per worker pool (2^n - 1 is what the ring likes) */
#define ND_DPDK_MBUF_CACHE 256

struct nd_dpdk_port_info {
    char name[RTE_ETH_NAME_MAX_LEN];
    char driver[32];
    uint16_t port_id;
    uint16_t nqueues;     /* RX/TX queue pairs configured */
    uint16_t max_queues;  /* what the PMD offers */
    bool rss;             /* RSS configured (more than one queue) */
    uint64_t rx_offloads; /* RTE_ETH_RX_OFFLOAD_* enabled */
    uint64_t tx_offloads; /* RTE_ETH_TX_OFFLOAD_* enabled */
};

struct nd_dpdk {
    struct nd_dpdk_conf conf;
    struct nd_net_shared sh;
    unsigned nworkers; /* asked for */
    unsigned nqueues;  /* queue pairs on every port: workers beyond it get no queue */
    struct rte_mempool *pool[ND_DPDK_MAX_WORKERS];
    struct nd_dpdk_port_info info[ND_NET_MAX_PORTS];
    uint8_t rss_key[40];
    bool eal_up, ports_up;
};

struct nd_dpdk_worker {
    struct nd_net net;
    struct nd_net_ops ops; /* the worker's own copy: the core sets tcp_input, icmp_error */
    struct nd_dpdk *d;
    struct rte_mempool *pool;
    unsigned id;
    uint16_t queue;
} __rte_cache_aligned;

/* Initialises the EAL (argv from c: its args, --vdev / -a per port) and every port, for
 * nworkers workers. 0, or -1 with a message in err (and nothing left running). */
int nd_dpdk_start(struct nd_dpdk *d, const struct nd_dpdk_conf *c, unsigned nworkers, char *err,
                  size_t errlen);
/* Stops and closes the ports, frees the pools, cleans up the EAL (workers finished first). */
void nd_dpdk_stop(struct nd_dpdk *d);
/* Worker id's stack on queue id. 0, or -1 when id >= d->nqueues. */
int nd_dpdk_worker_init(struct nd_dpdk *d, struct nd_dpdk_worker *w, unsigned id, uint64_t now_ms);
void nd_dpdk_worker_fini(struct nd_dpdk_worker *w);
/* One loop iteration: timers, an RX burst from each port (stack input), TX flush. Returns how
 * many frames were received. */
unsigned nd_dpdk_poll(struct nd_dpdk_worker *w, uint64_t now_ms);
/* Link state of port (index): true when up; speed in Mbps. */
bool nd_dpdk_link(const struct nd_dpdk *d, unsigned port, uint32_t *speed);
/* Writes "name value" lines for every port: the stack's counters summed over the workers, and
 * the PMD's (hw_*). */
void nd_dpdk_stats_write(const struct nd_dpdk *d, struct nd_dpdk_worker *const *w, unsigned nw,
                         FILE *f);

#endif
