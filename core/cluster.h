/* Clusters at run time: per-worker endpoint state, load balancing, upstream connection pools. */
#ifndef NODUS_CLUSTER_H
#define NODUS_CLUSTER_H

#include "worker.h"

struct nd_cluster_rt *nd_cluster_rt_create(const struct nd_config *cfg);
void nd_cluster_rt_free(const struct nd_config *cfg, struct nd_cluster_rt *crt);
/* Closes the idle pooled connections of every cluster (when the worker drops a snapshot). */
void nd_cluster_rt_close(struct nd_worker *w, const struct nd_config *cfg,
                         struct nd_cluster_rt *crt);

/* Picks an endpoint of the cluster by its load-balancing policy among those whose labels match
 * (key, val) when key is set, avoiding `avoid` (an index, or -1) when another is eligible.
 * Returns the endpoint index, or -1 when none is eligible. No allocation. */
int nd_lb_pick(struct nd_worker *w, struct nd_cluster_rt *crt, const char *key, const char *val,
               int avoid);
/* Whether endpoint i of the cluster carries label key=val (key NULL: always). */
bool nd_ep_matches(const struct nd_endpoint_conf *ep, const char *key, const char *val);

#endif
