/*
 * SWIM membership engine (memberlist 0.2.2 semantics, serf 0.9.4 on top): types only.
 * Functions are in swim.h. The engine is pure: it owns no socket and no clock; time comes in as
 * now_ms arguments and I/O goes out through struct nd_swim_io, so the same code runs over kernel
 * sockets (driver.c), in the simulator (sim.c) and in unit tests.
 */
#ifndef NODUS_GOSSIP_SWIM_T_H
#define NODUS_GOSSIP_SWIM_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gossip-t.h"

/* An advertised address: IPv4 (len 4) or IPv6 (len 16), and a port. */
struct nd_swim_addr {
    uint8_t ip[16];
    uint8_t len;
    uint16_t port;
};

struct nd_swim_tag {
    const char *key, *value;
};

/* serf's view of a member (what `serf members` prints). */
enum nd_swim_status {
    ND_SWIM_ALIVE = 0,   /* memberlist alive or suspect */
    ND_SWIM_LEAVING = 1, /* a leave intent was seen, the member is still alive */
    ND_SWIM_LEFT = 2,    /* left gracefully (leave intent, then dead from itself) */
    ND_SWIM_FAILED = 3,  /* declared dead by the others */
};

/* Member events (nd_swim_io.event). */
enum nd_swim_event {
    ND_SWIM_EV_JOIN,    /* new, or back from dead/left */
    ND_SWIM_EV_UPDATE,  /* Meta (tags) or address changed */
    ND_SWIM_EV_SUSPECT, /* alive -> suspect */
    ND_SWIM_EV_ALIVE,   /* suspect -> alive (refuted) */
    ND_SWIM_EV_FAILED,  /* -> dead */
    ND_SWIM_EV_LEFT,    /* -> left */
    ND_SWIM_EV_REAP,    /* removed from the table (dead or left for reap_ms) */
};

/* A serf user event, as the engine hands it over (nd_swim_io.user_event). Pointers are valid
 * during the call only. */
struct nd_swim_user_event {
    uint64_t ltime;
    const uint8_t *name, *payload;
    uint32_t name_len, payload_len;
    bool coalesce;       /* the sender allows coalescing (serf's CC) */
    bool self;           /* published by this node (serf delivers its own events too) */
    bool pushpull;       /* learnt from a push/pull's recent events, not gossiped */
    const char *refused; /* NULL: new, deliver it; else why it was dropped ("too_old",
                          * "before_join", "too_large", "buffer_full", "out_of_memory") */
};

/* serf queries (docs/gossip.md, "Queries") */
#define ND_SWIM_QUERY_MAX 1024u          /* serf QuerySizeLimit: an encoded query */
#define ND_SWIM_QUERY_RESPONSE_MAX 1024u /* serf QueryResponseSizeLimit: an encoded response */
#define ND_SWIM_QUERY_TIMEOUT_MULT 16u   /* serf QueryTimeoutMult */
#define ND_SWIM_QUERIES_OUT 16u          /* queries of ours running at once */
#define ND_SWIM_QUERY_TAGS_MAX 8u        /* tag filters in a query of ours */

/* A user query addressed to this node (its filters matched), as nd_swim_io.query gets it.
 * Pointers are valid during the call only. */
struct nd_swim_query {
    uint64_t ltime;
    uint32_t id;
    const uint8_t *name, *payload, *from; /* from: the querier's node name */
    uint32_t name_len, payload_len, from_len;
};

/* What to send (nd_swim_query). */
struct nd_swim_query_param {
    const void *name, *payload;
    size_t name_len, payload_len;
    const struct nd_gbytes *nodes; /* only these nodes answer (serf's FilterNodes); none: all */
    size_t nnodes;
    /* only members whose tag tag_keys[i] matches tag_exprs[i] (an unanchored regular expression,
     * serf's FilterTags; refused unless it means the same to RE2 and POSIX), every one of them */
    const struct nd_gbytes *tag_keys, *tag_exprs;
    size_t ntags;
    bool ack;             /* ask for acks (serf's RequestAck) */
    uint8_t relay_factor; /* answers come back through this many more members too */
    uint32_t timeout_ms;  /* 0: serf's default (nd_swim_query_timeout_ms) */
    uint32_t handle;      /* the caller's name for the query, passed back in its replies */
};

/* An ack or response to one of our queries (nd_swim_io.query_reply), during the call only.
 * Duplicates (relayed copies) are the receiver's to drop. */
struct nd_swim_query_reply {
    uint32_t handle; /* the query's nd_swim_query_param.handle */
    bool ack;
    const uint8_t *from, *payload;
    uint32_t from_len, payload_len;
};

/* A member as the engine shows it. Pointers are valid until the next call into the engine. */
struct nd_swim_member {
    const char *name; /* NUL-terminated */
    size_t name_len;
    struct nd_swim_addr addr;
    const uint8_t *meta; /* serf tags: decode with nd_serf_tags_decode */
    uint32_t meta_len;
    uint32_t incarnation;
    uint8_t state;  /* enum nd_gossip_state */
    uint8_t status; /* enum nd_swim_status */
    uint8_t vsn[ND_GOSSIP_VSN_LEN];
    bool self;
    uint64_t state_change_ms; /* engine time of the last state change */
};

/* Settings. nd_swim_config_lan() fills memberlist's DefaultLANConfig values. */
struct nd_swim_config {
    const char *name;         /* node name, required, unique in the cluster */
    struct nd_swim_addr addr; /* advertised address (what peers send to) */
    const struct nd_swim_tag *tags;
    size_t ntags;
    const struct nd_keyring *keyring; /* NULL or empty: plaintext; else encrypted only (copied) */

    uint32_t probe_interval_ms;     /* 1000 */
    uint32_t probe_timeout_ms;      /* 500 */
    uint32_t indirect_checks;       /* 3 */
    uint32_t retransmit_mult;       /* 4: broadcasts go out mult * ceil(log10(n + 1)) times */
    uint32_t suspicion_mult;        /* 4: suspicion min = mult * max(1, log10(n)) * interval */
    uint32_t suspicion_max_mult;    /* 6: max = this * min, shortened by confirmations */
    uint32_t awareness_max;         /* 8: Lifeguard health score 0 .. max - 1 */
    uint32_t gossip_interval_ms;    /* 200 */
    uint32_t gossip_nodes;          /* 3 */
    uint32_t gossip_to_dead_ms;     /* 30000: keep gossiping to a dead node this long */
    uint32_t pushpull_interval_ms;  /* 30000, scaled up beyond 32 nodes; 0: never */
    uint32_t tcp_timeout_ms;        /* 10000: a push/pull stream's deadline */
    uint32_t reconnect_interval_ms; /* 30000: serf's reconnect to failed members; 0: never */
    uint32_t udp_size;              /* 1400: bytes of broadcasts per packet (memberlist
                                     * UDPBufferSize) */
    bool tcp_ping;                  /* true: TCP fallback ping to peers of protocol >= 3 */

    /* bounds (nodus's own) */
    uint32_t reap_ms;       /* 86400000: dead and left members are forgotten after this */
    uint32_t max_members;   /* 65536: the table; beyond, new members are dropped and counted */
    uint32_t max_queue;     /* 4096 broadcasts queued (serf MaxQueueDepth); oldest dropped */
    uint32_t max_streams;   /* 32 TCP streams at once (incoming and outgoing) */
    uint32_t max_relays;    /* 64 indirect probes relayed for others at once */
    uint32_t stream_max;    /* 4 MiB: one stream message (and the workspace's stream part) */
    uint32_t alive_burst;   /* 16: incarnation changes accepted from one member in a burst */
    uint32_t alive_rate_ms; /* 1000: one more accepted every this many ms */
    size_t max_event_bytes; /* 0: 2 MiB of recent user events kept for de-duplication */

    /* Workspace for decrypting, decompressing and building messages: at least
     * nd_swim_workspace_size(stream_max) bytes. NULL: the engine allocates its own. Engines that
     * are never called concurrently (a simulation) may share one. */
    uint8_t *workspace;
    size_t workspace_len;
};

/* What the engine asks of its environment. Callbacks must not call back into an engine that
 * shares the workspace (queue the work instead). sid names a stream: the engine chooses it. */
struct nd_swim_io {
    void *arg;
    /* Sends one UDP datagram. Failures are the driver's to count. */
    void (*send)(void *arg, const struct nd_swim_addr *to, const uint8_t *p, size_t n);
    /* Opens a TCP connection for stream sid. 0: started (data sent before it connects is
     * buffered by the driver); else failed at once (the engine forgets sid). */
    int (*stream_open)(void *arg, uint32_t sid, const struct nd_swim_addr *to);
    /* Queues bytes on stream sid (copied). 0, or < 0: the engine closes the stream. */
    int (*stream_send)(void *arg, uint32_t sid, const uint8_t *p, size_t n);
    /* The engine is done with sid: flush what was queued, then close. The driver must not
     * report anything more about sid. */
    void (*stream_close)(void *arg, uint32_t sid);
    /* Fills p with random bytes (nonces: must be a CSPRNG when encrypting). */
    void (*random)(void *arg, void *p, size_t n);
    /* Optional: a member changed (m is valid during the call only). */
    void (*event)(void *arg, const struct nd_swim_member *m, enum nd_swim_event ev);
    /* Optional: a serf user event arrived (or was published here), new or refused (ev->refused);
     * duplicates are only counted. Must not call into the engine. */
    void (*user_event)(void *arg, const struct nd_swim_user_event *ev);
    /* Optional: a user query for this node (the engine has acked it when asked to). Write a
     * response of at most cap bytes to resp, set *len and return 1 to send it; 0: no response.
     * Queries named _serf_* are the engine's. May read the engine (nd_swim_find), must not
     * change it. */
    int (*query)(void *arg, const struct nd_swim_query *q, uint8_t *resp, size_t cap, size_t *len);
    /* Optional: an ack or response to a query of ours, before its deadline. */
    void (*query_reply)(void *arg, const struct nd_swim_query_reply *r);
    /* Optional: a key query from node `from` changed our keyring (op "install", "use",
     * "remove"). */
    void (*keyring)(void *arg, const char *op, const uint8_t *from, size_t from_len);
};

/* Counters (monotonic) and gauges, read by the core (nd_swim_metrics). */
struct nd_swim_metrics {
    /* gauges */
    uint32_t members_alive, members_suspect, members_dead, members_left;
    uint32_t health; /* Lifeguard score */
    uint32_t queued; /* broadcasts waiting */
    uint32_t streams;
    /* failure detection */
    uint64_t probes, probe_acks, probes_indirect, probes_tcp, probes_failed;
    uint64_t suspicions; /* members this node marked suspect (own probes or gossip) */
    uint64_t deaths;     /* members this node marked dead */
    uint64_t refutes;    /* times this node refuted a suspicion or death of itself */
    /* traffic */
    uint64_t pkts_in, pkts_out, bytes_in, bytes_out, msgs_in, msgs_out;
    uint64_t streams_in, streams_out, stream_bytes_in, stream_bytes_out, pushpulls;
    /* trouble */
    uint64_t decode_errors;   /* malformed packets or messages */
    uint64_t decrypt_errors;  /* no key fits, or plaintext while a keyring is set */
    uint64_t alive_limited;   /* incarnation changes dropped by the per-member rate limit */
    uint64_t members_dropped; /* new members refused: table full */
    uint64_t queue_dropped;   /* broadcasts dropped: queue full */
    uint64_t streams_refused; /* max_streams reached */
    uint64_t relays_dropped;  /* indirect probes refused: max_relays reached */
    uint64_t conflicts;       /* alive for a known name from another address */
    uint64_t stream_errors;   /* bad or timed out streams */
    /* serf user events */
    uint32_t events_buffered;      /* gauge: recent events kept for de-duplication */
    uint64_t events_sent;          /* published by this node */
    uint64_t events_received;      /* new events from other members, delivered */
    uint64_t events_duplicate;     /* copies of events seen already (gossip's normal redundancy) */
    uint64_t events_too_old;       /* older than the event buffer's window */
    uint64_t events_before_join;   /* older than our join (serf's eventMinTime) */
    uint64_t events_too_large;     /* name + payload over 9 KiB */
    uint64_t events_buffer_full;   /* the recent-event buffer's bounds, or out of memory */
    uint64_t events_queue_dropped; /* re-broadcasts dropped: the event queue was full */
    /* serf queries */
    uint64_t queries_received;  /* new queries from the cluster (ours included) */
    uint64_t queries_duplicate; /* copies of queries seen already */
    uint64_t queries_filtered;  /* new, but their filters did not select this node */
    uint64_t queries_late;      /* answered with the ack alone: the timeout was <= 0 */
    uint64_t queries_dropped;   /* too old, too large, bad address, too many at one time,
                                 * unknown internal query, response too large, bad relay */
    uint64_t query_bad_filters; /* malformed filters, bad regular expressions */
    uint64_t query_acks_sent, query_responses_sent;
    uint64_t queries_relayed; /* responses relayed (ours through others, others' by us) */
    uint64_t queries_sent;    /* queries of ours */
    uint64_t query_acks_received, query_responses_received;
    uint64_t query_replies_dropped; /* replies to no running query of ours (or too late) */
    uint64_t keyring_changes;       /* keys installed, used or removed by key queries */
};

#endif
