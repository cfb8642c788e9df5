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

#endif
