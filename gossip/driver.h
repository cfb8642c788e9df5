/*
 * The SWIM engine on control-plane sockets (core/ctlsock.h): one UDP socket and one TCP listener
 * on the gossip address, outgoing TCP streams for push/pull and fallback pings, on kernel sockets
 * or on the DPDK workers' stacks, whichever socket set it is given. Main thread only.
 *
 *     g = nd_gossip_driver_new(ctl, &cfg->gossip, cfg->node.name, &err);
 *     the loop watches nd_ctl_fd(ctl) and calls nd_ctl_run(ctl) (socket events reach the engine
 *     from there), then nd_gossip_driver_run(g) (timers); it waits at most
 *     nd_gossip_driver_next_ms(g);
 *     on SIGTERM: nd_gossip_driver_leave(g, 10000) (blocks until the leave is out), then free.
 */
#ifndef NODUS_GOSSIP_DRIVER_H
#define NODUS_GOSSIP_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "swim-t.h"

struct nd_ctl;
struct nd_gossip_conf;
struct nd_gossip_driver;
struct nd_sbuf;
struct nd_swim;

/* Opens the sockets on ctl (which must outlive g), creates the engine and starts joining the
 * seeds. NULL with a malloc'd message in *err ("gossip: cannot bind 127.0.0.1:7946 (udp):
 * Address in use"). */
struct nd_gossip_driver *nd_gossip_driver_new(struct nd_ctl *ctl, const struct nd_gossip_conf *gc,
                                              const char *node_name, char **err);
void nd_gossip_driver_free(struct nd_gossip_driver *g);

/* Handles due timers (socket events come through nd_ctl_run). Never blocks. */
void nd_gossip_driver_run(struct nd_gossip_driver *g);
/* Milliseconds until nd_gossip_driver_run has timer work (-1: none). */
int nd_gossip_driver_next_ms(const struct nd_gossip_driver *g);
/* Graceful leave: runs its own loop (nd_ctl_run included) until the leave has been sent or
 * max_ms passed, then lets queued bytes leave the main thread (nd_ctl_settle). */
void nd_gossip_driver_leave(struct nd_gossip_driver *g, uint32_t max_ms);

/* GET /members: {"members": [{name, address, status, state, incarnation, tags}], "metrics":
 * {...}} as JSON. 0, or -1 when out of memory. */
int nd_gossip_driver_members_json(struct nd_gossip_driver *g, struct nd_sbuf *out);
struct nd_swim *nd_gossip_driver_engine(struct nd_gossip_driver *g);
/* A reload: gc's tags (serf tags and the services' svc: tags) become ours, sent in an alive
 * message with our next incarnation when they changed, and its service list beyond Meta
 * (gc->svc_list, catalog.h) is gossiped at once, then every 30 s and 1 s after a member joins.
 * 0, or a negative ND_GOSSIP_E_* (the old tags stay). The rest of gc (addresses, timing, keys)
 * takes effect at restart only. */
int nd_gossip_driver_set_tags(struct nd_gossip_driver *g, const struct nd_gossip_conf *gc);
/* A reload: gc's keyring replaces ours (rotation: install a key everywhere, make it the primary
 * everywhere, then remove the old one) when the configured keys changed since the last load;
 * when they did not, the keyring stays as serf key queries (`serf keys`) left it. Negative
 * ND_GOSSIP_E_* when the keyring cannot change so (turning encryption on or off needs a
 * restart); the old keyring stays. */
int nd_gossip_driver_set_keyring(struct nd_gossip_driver *g, const struct nd_gossip_conf *gc);

/* ---- serf queries (docs/gossip.md, "Queries") ---------------------------------------------- */

#define ND_GOSSIP_QUERY_SERVICES "nodus:services" /* answered with this node's services */
#define ND_GOSSIP_QUERIES_KEPT 32                 /* our queries kept for GET /queries */
#define ND_GOSSIP_QUERY_REPLIES_MAX 4096          /* acks + responses kept per query */

/* Sends a serf query (nd_swim_query): 0, *id (for nd_gossip_driver_queries_json) and the
 * timeout in use; or a negative ND_GOSSIP_E_* (ND_GOSSIP_E_LIMIT: too large, or too many
 * running). */
int nd_gossip_driver_query(struct nd_gossip_driver *g, const struct nd_swim_query_param *p,
                           uint32_t *id, uint32_t *timeout_ms);
/* GET /queries[?id=N]: one query of ours {id, name, ack, done, remaining_ms, acks, responses,
 * dropped}, or all of them and the query counters, as JSON. 0, 1 for an unknown id, -1. */
int nd_gossip_driver_queries_json(struct nd_gossip_driver *g, uint32_t id, struct nd_sbuf *out);

/* Member events for the core (the service catalog): fn(arg, m, ev) for every change the engine
 * reports, ourselves included (m valid during the call only; fn must not call into the engine).
 * Members already known are not replayed: walk nd_swim_each() for them. */
void nd_gossip_driver_on_member(struct nd_gossip_driver *g,
                                void (*fn)(void *arg, const struct nd_swim_member *m,
                                           enum nd_swim_event ev),
                                void *arg);

/* ---- serf user events (docs/gossip.md, "User events") ------------------------------------ */

/* Names starting with this are nodus's own (the mesh-wide rate limit's reports): operators may
 * not publish them, GET /events does not list them (the metrics count them). */
#define ND_GOSSIP_EVENT_RESERVED "nodus:"
#define ND_GOSSIP_RECENT_EVENTS 64    /* kept for GET /events */
#define ND_GOSSIP_PENDING_EVENTS 4096 /* delivered events waiting for subscribers */

/* A new user event, as subscribers get it (pointers valid during the call only). */
struct nd_gossip_event {
    uint64_t ltime;
    const char *name;
    size_t name_len;
    const uint8_t *payload;
    size_t payload_len;
    bool coalesce;
    bool self; /* published by this node */
};

typedef void (*nd_gossip_event_fn)(void *arg, const struct nd_gossip_event *ev);

/* Calls fn(arg, ev) for every new user event whose name starts with prefix ("": all), the
 * node's own included, on the main thread, once the engine call that received it returned (so
 * fn may publish). A handle > 0, or -1 when out of memory. */
int nd_gossip_driver_subscribe(struct nd_gossip_driver *g, const char *prefix,
                               nd_gossip_event_fn fn, void *arg);
void nd_gossip_driver_unsubscribe(struct nd_gossip_driver *g, int handle);
/* Sends a serf user event to the cluster (nd_swim_user_event): 0, or a negative ND_GOSSIP_E_*
 * code (ND_GOSSIP_E_LIMIT: name and payload over 512 bytes). */
int nd_gossip_driver_publish(struct nd_gossip_driver *g, const void *name, size_t name_len,
                             const void *payload, size_t payload_len, bool coalesce);
/* GET /events: {"events": [{time, ltime, name, payload | payload_base64, coalesce, origin}],
 * "clock", "metrics": {...}} as JSON, oldest first. 0, or -1 when out of memory. */
int nd_gossip_driver_events_json(struct nd_gossip_driver *g, struct nd_sbuf *out);
/* New events not handed to the subscribers: their queue (ND_GOSSIP_PENDING_EVENTS) was full. */
uint64_t nd_gossip_driver_pending_dropped(const struct nd_gossip_driver *g);

#endif
