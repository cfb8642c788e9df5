/*
 * The dpdk I/O backend (core/io.h over the user-space TCP engine and the DPDK packet path).
 *
 * Main thread: nd_io_dpdk_start() brings up the EAL and the ports before the workers start
 * (nd_workers_start(n, &nd_io_dpdk)), nd_io_dpdk_stop() takes them down after the workers are
 * joined. Each worker polls its queues on every port (or gets its frames handed over by the
 * worker that has one: dpdk/net/handoff.h), has its own struct nd_net and its own TCP stack on
 * the worker's timer wheel; see docs/dpdk.md ("Running the proxy on DPDK").
 */
#ifndef NODUS_IO_DPDK_H
#define NODUS_IO_DPDK_H

#include <stddef.h>

#include "io.h"

struct nd_dpdk_conf;
struct nd_dpdk_socksnap;
struct nd_sbuf;
struct nd_socklist;

extern const struct nd_io_ops nd_io_dpdk;

/* Idle back-off: after ND_IO_DPDK_SPIN empty loop iterations a worker sleeps up to
 * idle_sleep_us (or until its next timer) between polls; 0 polls without ever sleeping. */
#define ND_IO_DPDK_SPIN 64
#define ND_IO_DPDK_IDLE_SLEEP_US 100

/* Starts the EAL and the ports of c for nworkers workers. 0, or -1 with a message in err. */
int nd_io_dpdk_start(const struct nd_dpdk_conf *c, unsigned nworkers, unsigned idle_sleep_us,
                     char *err, size_t errlen);
/* How long the start took ("started in 612 ms: EAL 380 ms, mbuf pools 120 ms, ports 112 ms"),
 * then one line per port: "port 0: net_af_packet0 (net_af_packet) mac ... ip .../24 link up". */
void nd_io_dpdk_describe(struct nd_sbuf *out);
/* Appends the nodus_dpdk_* metrics (ports, stack and TCP counters); any thread. */
void nd_io_dpdk_metrics(struct nd_sbuf *out);
/* Worker's request slot for `nodus sockets` (dpdk/socksnap.h), or NULL. Main thread. */
struct nd_dpdk_socksnap *nd_io_dpdk_socksnap(unsigned worker);
/* Main thread: asks every worker for its TCP connections and listeners (dpdk/socksnap.c) and
 * adds them to l, waiting up to timeout_ms for all of them; those that did not answer in time
 * are marked in l->workers_silent. */
void nd_io_dpdk_sockets(struct nd_socklist *l, unsigned timeout_ms);
/* "DPDK 22.11.x" (needs no EAL). */
const char *nd_io_dpdk_version(void);
/* The control-plane sockets on the workers' stacks (core/ctlsock.h, dpdk/ctl_dpdk.c), for the
 * admin listener and gossip: after nd_io_dpdk_start, before the workers start; freed (nd_ctl_free)
 * after they stopped, before nd_io_dpdk_stop. NULL with a message in err. */
struct nd_ctl *nd_io_dpdk_ctl_new(unsigned nworkers, char *err, size_t errlen);
/* Stops ports and EAL (workers finished). */
void nd_io_dpdk_stop(void);

#endif
