/*
 * A simulated network for SWIM engines: many nodes in one process, a virtual clock, UDP with
 * configurable loss, latency and jitter, TCP streams with latency, crashes, partitions and
 * per-node keyrings. Deterministic for a given seed. Used by tests/unit/test_swim.c and by the
 * bench/gossip-sim runner.
 *
 * Nodes are numbered 0 .. n-1, named "n<i>" and addressed 10.x.y.z:7946 (z.. from i + 1).
 * All engines share one workspace (they are only ever called one at a time).
 */
#ifndef NODUS_GOSSIP_SIM_H
#define NODUS_GOSSIP_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "swim-t.h"

struct nd_sim;

struct nd_sim_config {
    uint32_t nodes;
    uint64_t seed;
    double loss;                /* probability that a datagram is lost, 0 .. 1 */
    uint32_t latency_ms;        /* one-way delay of datagrams and stream data */
    uint32_t jitter_ms;         /* plus uniform 0 .. jitter */
    struct nd_swim_config swim; /* template: name, addr, keyring and workspace are set per node */
    /* Optional: every member event seen by any node. */
    void (*on_event)(void *arg, uint32_t observer, const struct nd_swim_member *m,
                     enum nd_swim_event ev, uint64_t now_ms);
    /* Optional: every serf user event seen by any node (new ones and refused ones). */
    void (*on_user_event)(void *arg, uint32_t observer, const struct nd_swim_user_event *ev,
                          uint64_t now_ms);
    /* Optional: a user query for node `observer` (nd_swim_io.query: 1 and a response in resp,
     * or 0). */
    int (*on_query)(void *arg, uint32_t observer, const struct nd_swim_query *q, uint8_t *resp,
                    size_t cap, size_t *len);
    /* Optional: an ack or response to a query of node `observer` (nd_swim_io.query_reply). */
    void (*on_query_reply)(void *arg, uint32_t observer, const struct nd_swim_query_reply *r,
                           uint64_t now_ms);
    void *arg;
};

/* NULL when out of memory or the config is bad. No node runs until nd_sim_start. */
struct nd_sim *nd_sim_new(const struct nd_sim_config *c);
void nd_sim_free(struct nd_sim *s);

/* Starts (or restarts after a crash) node i's engine at the current time, with a keyring
 * (NULL: plaintext). 0, or a negative ND_GOSSIP_E_* code. */
int nd_sim_start(struct nd_sim *s, uint32_t i, const struct nd_keyring *kr);
/* Node i joins through node j's address. */
void nd_sim_join(struct nd_sim *s, uint32_t i, uint32_t j);
/* Node i stops at once, saying nothing (its sockets close, as a killed process's do). */
void nd_sim_crash(struct nd_sim *s, uint32_t i);
/* Node i leaves gracefully; it stops when nd_swim_leave_done, or 10 s later. */
void nd_sim_leave(struct nd_sim *s, uint32_t i);
/* Node i changes its serf tags (nd_swim_set_tags). 0, or a negative ND_GOSSIP_E_* code. */
int nd_sim_set_tags(struct nd_sim *s, uint32_t i, const struct nd_swim_tag *tags, size_t n);
/* Node i sends a serf user event (nd_swim_user_event). 0, or a negative ND_GOSSIP_E_* code. */
int nd_sim_user_event(struct nd_sim *s, uint32_t i, const void *name, size_t name_len,
                      const void *payload, size_t payload_len, bool coalesce);
/* Node i sends a serf query (nd_swim_query). 0, or a negative ND_GOSSIP_E_* code. */
int nd_sim_query(struct nd_sim *s, uint32_t i, const struct nd_swim_query_param *p,
                 uint32_t *timeout_ms);
/* Puts node i in partition group g (0 by default): nodes of different groups cannot reach each
 * other (datagrams dropped, stream connections unanswered). */
void nd_sim_partition(struct nd_sim *s, uint32_t i, uint32_t g);
void nd_sim_set_loss(struct nd_sim *s, double loss);

/* Runs the simulation until now_ms (virtual). */
void nd_sim_run(struct nd_sim *s, uint64_t until_ms);
uint64_t nd_sim_now(const struct nd_sim *s);

/* Node i's engine (NULL when not running). */
struct nd_swim *nd_sim_engine(struct nd_sim *s, uint32_t i);
bool nd_sim_running(const struct nd_sim *s, uint32_t i);
/* Members of node i's table in a given state (enum nd_gossip_state). */
uint32_t nd_sim_count(struct nd_sim *s, uint32_t i, uint8_t state);
/* State of member j in node i's table: enum nd_gossip_state, or -1 if i does not know j. */
int nd_sim_state_of(struct nd_sim *s, uint32_t i, uint32_t j);
/* Bytes node i has sent (datagrams and stream data), since the start. */
uint64_t nd_sim_bytes_sent(const struct nd_sim *s, uint32_t i);
/* Node index of a name "n<i>", or -1. */
int nd_sim_index(const char *name);

#endif
