/* Clusters at run time: per-worker endpoint state, load balancing, upstream connection pools. */
#ifndef NODUS_CLUSTER_H
#define NODUS_CLUSTER_H

#include "worker.h"

struct nd_cluster_rt *nd_cluster_rt_create(const struct nd_config *cfg);
void nd_cluster_rt_free(const struct nd_config *cfg, struct nd_cluster_rt *crt);
/* Closes the idle pooled connections of every cluster (when the worker drops a snapshot). */
void nd_cluster_rt_close(struct nd_worker *w, const struct nd_config *cfg,
                         struct nd_cluster_rt *crt);

/* Picks an endpoint of the cluster for one request, by the cluster's policy and the endpoints'
 * weights (docs/config.md, "Load balancing"):
 * - round_robin: smooth weighted round robin (nginx's), interleaved in proportion to weight;
 * - least_request: equal weights, power of two choices on requests in flight; unequal weights,
 *   smooth weighted round robin on weight / (active + 1) (Envoy's, active_request_bias 1.0);
 * - random: weighted random.
 * Eligible are the endpoints whose labels match (key, val) when key is set, other than `avoid`
 * (an index, or -1: the endpoint a retry moves away from), and that have not failed their last
 * connects. When none is, `avoid` if it is healthy and matches; then the failing matching
 * endpoints other than `avoid`, by the same policy. Returns the endpoint index, or -1 when none
 * is left (no endpoint matches, or the only one is `avoid` and failing). w: the calling worker (its
 * random numbers, its id for the starting offset). No allocation, no lock; the state is the
 * worker's copy of the cluster. */
int nd_lb_pick(struct nd_worker *w, struct nd_cluster_rt *crt, const char *key, const char *val,
               int avoid);
/* Whether endpoint i of the cluster carries label key=val (key NULL: always). */
bool nd_ep_matches(const struct nd_endpoint_conf *ep, const char *key, const char *val);

/* The address of endpoint i as a worker's copy of the cluster sees it; "-" for i < 0 (the
 * endpoint left the discovered set while a request was on it). */
static inline const char *nd_ep_text(const struct nd_cluster_rt *crt, int i)
{
    return i >= 0 && (unsigned)i < crt->nceps ? crt->ceps[i].addr.text : "-";
}

/* ---- discovered endpoints (cluster "x" { discover = "service" }) -------------------------------
 *
 * The main thread turns the service catalog (gossip/catalog.h) into endpoint sets and publishes
 * one per service with an atomic pointer store in the service's slot, then bumps a generation
 * and wakes the workers. Each worker, at its next loop iteration (nd_worker_sync_snap), swaps
 * the runtime of every discover cluster whose set changed: endpoints that remain (same address)
 * keep their pooled idle connections and counters, idle connections to endpoints that left are
 * closed, requests in flight finish on their endpoint (they are re-pointed at the new indexes;
 * one whose endpoint left is not pooled afterwards). Then it acknowledges the generation; the
 * main thread frees a replaced set once every worker acknowledged a later generation. The
 * request path reads crt->ceps / crt->eps as before: no lock, no allocation.
 */

/* A set of discovered endpoints: immutable once published. */
struct nd_epset {
    struct nd_endpoint_conf *eps; /* sorted by address; weight 1 */
    char **members;               /* eps[i] is advertised by members[i] */
    unsigned neps;
    uint64_t retired_gen;  /* main thread: the generation that replaced it */
    struct nd_epset *next; /* main thread: retired sets */
};

/* One discovered service: where its current set is published. Created by the main thread when
 * a configuration first discovers the service, kept until exit. */
struct nd_epslot {
    char *service;
    _Atomic(struct nd_epset *) cur; /* NULL: no endpoint yet */
    struct nd_epslot *next;
};

/* Main thread: points every discover cluster of cfg at its service's slot (creating it).
 * 0, or -1 when out of memory. Called by nd_snap_publish. */
int nd_discover_bind(struct nd_config *cfg);
/* Main thread: publishes a service's endpoints (copied) when some cluster discovers it and they
 * differ from the published ones (address, labels, member). 1 published, 0 unchanged or not
 * discovered, -1 out of memory (nothing changed). */
int nd_discover_publish(const char *service, const struct nd_endpoint_conf *eps,
                        const char *const *members, unsigned n);
/* Main thread: the slots (to republish every service after a reload). */
struct nd_epslot *nd_discover_slots(void);
/* Main thread: the set a cluster's slot holds now (NULL: none or not a discover cluster). */
const struct nd_epset *nd_discover_current(const struct nd_cluster_conf *cc);
/* Main thread: frees replaced sets that every worker is past. */
void nd_discover_collect(void);
/* At exit, workers stopped: frees every set and slot. */
void nd_discover_shutdown(void);
/* Worker: swaps the runtime of discover clusters whose set changed (its snapshots, current and
 * held). Cheap when nothing changed: one atomic load. */
void nd_discover_sync(struct nd_worker *w);

#endif
