/*
 * The mesh-wide rate limit's arithmetic (docs/ratelimit.md, "Mesh-wide limit"), a pure module
 * (no host calls, no clock of its own), unit-tested by tests/unit/test_ratelimit_global.c:
 *
 *  - the gate: this node's admission against its share, one 64-bit atomic word per global limit,
 *    (window << 32) | requests, where the window is the number of whole intervals since the
 *    gate started. A request that reaches the gate counts in its window, admitted or not (that
 *    count is the node's demand); it is admitted when fewer than `share` requests came before it
 *    in the window. The share is an atomic the control side stores; workers read it relaxed.
 *    One load and one compare-and-swap per request, no lock.
 *  - the split: max-min fair water-filling of the budget over the nodes' demands.
 */
#ifndef NODUS_RL_SHARE_H
#define NODUS_RL_SHARE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rl_gate {
    _Atomic uint64_t word;   /* (window << 32) | requests in it */
    _Atomic uint32_t share;  /* requests admitted per window (interval) */
    _Atomic uint64_t closed; /* requests of the windows closed since the last collect */
    uint64_t interval_ns, start_ns;
    uint32_t collected; /* the window the last collect reached (control side) */
};

/* What the gate said. */
struct rl_gate_take {
    bool ok;
    uint32_t remaining; /* admissions left in the window after this request */
    uint64_t reset_ns;  /* until the window ends */
};

void rl_gate_init(struct rl_gate *g, uint64_t interval_ns, uint32_t share, uint64_t now_ns);
/* A request reached the gate at now_ns (a worker's clock). */
struct rl_gate_take rl_gate_take(struct rl_gate *g, uint64_t now_ns);
/* Control side: closes the windows that ended before now_ns and returns how many requests they
 * counted since the last call, and in *windows how many windows that was (0: none ended). */
uint64_t rl_gate_collect(struct rl_gate *g, uint64_t now_ns, uint32_t *windows);

/* The split. want[i] is node i's demand with its headroom; every node gets at least floor (when
 * n * floor exceeds the budget, every node gets floor: the budget is over-committed, see
 * docs/ratelimit.md). Nodes wanting less than the fair level get what they want; the level is
 * raised with what they leave until the budget is spent (max-min fairness); a budget that
 * covers every want is divided: wants first, the rest evenly. out[i] gets node i's share;
 * sum(out) <= max(budget, n * floor). order: scratch of n entries. */
void rl_split(const uint64_t *want, size_t n, uint64_t budget, uint64_t floor, uint64_t *out,
              size_t *order);

/* A node's report, gossiped as the payload of a "nodus:rl:NAME" user event, in text so that
 * serf's tools show it readably: "1 DEMAND TOKENS INTERVAL_MS NODE" (version 1; demand in
 * requests per interval; the sender's tokens and interval, to notice nodes configured
 * differently; the sender's gossip name, the rest of the payload). */
struct rl_report {
    uint64_t demand, tokens, interval_ms;
    const char *node; /* not NUL-terminated; points into the decoded payload */
    size_t node_len;
};

#define RL_REPORT_NODE_MAX 512

/* Decodes a payload strictly (decimal numbers without sign or leading zeros, at most 19
 * digits; single spaces; a node name of 1..RL_REPORT_NODE_MAX bytes without control
 * characters): 0, or -1. */
int rl_report_decode(const void *payload, size_t len, struct rl_report *r);
/* Encodes a report into buf: its length, or 0 when it does not fit. */
size_t rl_report_encode(const struct rl_report *r, char *buf, size_t cap);

/*
 * The ledger: what one node knows of the nodes sharing a limit (their latest reports, its own
 * included) and the share it takes. Pure: membership comes in through a callback, time as
 * arguments. global.c runs one per limit on the main thread; bench/ratelimit-sim.c runs one per
 * simulated node.
 */
#define RL_STALE_PERIODS 3 /* a node silent this many periods is forgotten */
#define RL_WARMUP_PERIODS 2

struct rl_node {
    char *node;      /* NUL-terminated */
    uint64_t demand; /* requests per interval */
    uint64_t ltime;  /* of the event that brought it */
    uint64_t at_ms;  /* when it arrived */
};

struct rl_ledger {
    uint64_t tokens, period_ms, started_ms;
    struct rl_node *nodes;
    size_t n, cap, max;
    uint64_t floor;       /* the last split's */
    uint64_t *want, *out; /* split scratch, cap entries */
    size_t *order;
};

/* Is a node alive as gossip sees it (alive, suspect or leaving)? */
typedef bool (*rl_alive_fn)(void *arg, const char *node);

void rl_ledger_init(struct rl_ledger *l, uint64_t tokens, uint64_t period_ms, size_t max_nodes,
                    uint64_t now_ms);
void rl_ledger_free(struct rl_ledger *l);
/* A node's report (event time ltime) arrived: 1 taken, 0 ignored (older than the one held,
 * unless that one is two periods old: the node restarted), -1 out of memory or table full. */
int rl_ledger_report(struct rl_ledger *l, const char *node, size_t len, uint64_t demand,
                     uint64_t ltime, uint64_t now_ms);
/* This node's share now: its own demand (as it last reported it) joins the others' live
 * reports (stale ones and those of nodes gossip no longer has alive are dropped), split by
 * water-filling with a floor of tokens / (20 n) (at least 1). During the first
 * RL_WARMUP_PERIODS, while the others' reports may still be on their way, no more than an even
 * split of the `live` members. self: our name ("" when alone). */
uint64_t rl_ledger_share(struct rl_ledger *l, const char *self, uint64_t self_demand, unsigned live,
                         rl_alive_fn alive, void *arg, uint64_t now_ms);

/* The want of a node whose demand (requests per interval) is d: d plus headroom (d / 8, at least
 * one request), so that a node whose demand grows is not refused before its next report. */
static inline uint64_t rl_want(uint64_t d)
{
    return d + (d / 8 > 1 ? d / 8 : 1);
}

#endif /* NODUS_RL_SHARE_H */
