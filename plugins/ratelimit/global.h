/*
 * The ratelimit plugin's mesh-wide limit (docs/ratelimit.md, "Mesh-wide limit"):
 *
 *   ratelimit { global = { name = "api", tokens = 1000, interval = "1s" } }
 *
 * Every node with a global limit of that name shares `tokens` per `interval` with the others:
 * each measures its demand (requests that reached the limit, admitted or not), gossips it every
 * period as a serf user event "nodus:rl:NAME", and takes the share of the budget that max-min
 * fair water-filling over the latest demands of the live nodes gives it (share.h). Workers admit
 * against that share lock-free (the gate, share.h); the control side (the main thread's tick and
 * gossip events, plugin.h ABI 3) measures, reports and recomputes.
 *
 * A global limit of one name is one per node: every listener and every configuration (across
 * reloads) that names it with the same tokens and interval shares its gate and what it knows of
 * the other nodes; other tokens or interval make a new one.
 */
#ifndef NODUS_RL_GLOBAL_H
#define NODUS_RL_GLOBAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nodus/plugin.h>

#define RL_GLOBAL_PREFIX "nodus:rl:"
#define RL_GLOBAL_NAME_MAX 64
#define RL_GLOBAL_MAX_NODES 4096 /* nodes tracked per limit */

struct rl_global;

/* Reads the `global` table of a ratelimit (when present): 1 and *out (a reference to the
 * node's limit of that name), 0 when absent, -1 after an error (recorded on cfg). */
int rl_global_read(struct nodus_cfg *cfg, struct rl_global **out);
/* Drops a reference (main thread: destroy()). */
void rl_global_put(struct rl_global *g);

/* Request path (any worker): admits or refuses one request at now_ns. limit, remaining and
 * reset_s describe the share for the x-ratelimit-* headers. */
bool rl_global_take(struct rl_global *g, uint64_t now_ns, uint32_t *limit, uint32_t *remaining,
                    uint32_t *reset_s);

/* Control side (main thread): the plugin's tick and gossip events. */
void rl_global_tick(struct rl_global *g, uint64_t now_ms);
void rl_global_event(struct rl_global *g, const struct nodus_gossip_event *ev);

/* ,"global":{...} for describe(): name, tokens, interval_ms, share, nodes, demand. */
size_t rl_global_describe(const struct rl_global *g, char *buf, size_t len);

#endif /* NODUS_RL_GLOBAL_H */
