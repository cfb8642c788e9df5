/*
 * Admin request handlers: what the admin listener answers. The core owns the socket: it parses a
 * request, calls nd_admin_handle(), and writes the status, content type and body it gets back.
 *
 * Routes (docs/metrics.md):
 *   GET  /                  text index of the endpoints
 *   GET  /stats/prometheus  metrics, Prometheus text format 0.0.4
 *   GET  /stats             same as /stats/prometheus for now
 *   GET  /config_dump       the running configuration as JSON
 *   GET  /ready             200 "LIVE\n" when every worker serves, else 503 "NOT READY\n"
 *   GET  /members           gossip members and counters as JSON (503 when gossip is off)
 *   GET  /sockets           the node's TCP connections and listeners as JSON (core/sockets.h,
 *                           docs/metrics.md "Sockets")
 *   GET  /events            recent gossip user events and their counters as JSON (503 when gossip
 *                           is off)
 *   POST /event?name=NAME[&coalesce=false]  sends a gossip user event whose payload is the body:
 *                           200 "sent\n", 400 with the reason, 503 when gossip is off
 *   POST /reload            200 "reloaded\n", or 500 with the errors, one per line
 * HEAD is accepted wherever GET is (the caller sends the head only, with the body's length).
 * Another method on a known path: 405 (nd_admin_allow() gives the Allow header). Unknown path: 404.
 *   POST /query?name=NAME[&timeout_ms=MS][&ack=false][&node=NODE][&tag=K%3DRE]...[&relay=N]
 *        sends a gossip (serf) query whose payload is the body: 200 {"id", "timeout_ms"}
 *   GET  /queries[?id=N]    our queries, their acks and responses, as JSON
 * The query string is ignored, but by /event, /query and /queries.
 */
#ifndef NODUS_ADMIN_H
#define NODUS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nd_config;
struct nd_http_msg;
struct nd_sbuf;

/* What the admin handlers need from the core. Called on the thread that calls nd_admin_handle();
 * any member may be NULL (the route then answers 501 for reload, 503 for ready and config_dump). */
/* tag= filters in one POST /query (gossip's ND_SWIM_QUERY_TAGS_MAX) */
#define ND_ADMIN_QUERY_TAGS 8u

struct nd_admin_ops {
    /* Reloads the configuration file. Returns 0, or -1 with the errors appended to msg (one
     * "file:line: message" per line). */
    int (*reload)(void *arg, struct nd_sbuf *msg);
    /* 1 when all workers serve, else 0. */
    int (*ready)(void *arg);
    /* The configuration in use, or NULL. It must stay valid until nd_admin_handle() returns. */
    const struct nd_config *(*config)(void *arg);
    void *arg;
    /* Appends the gossip members as JSON to out: 0, 1 when gossip is off, -1 on error. */
    int (*members)(void *arg, struct nd_sbuf *out);
    /* Optional: appends metrics the main thread owns (gossip) to a scrape. */
    void (*metrics)(void *arg, struct nd_sbuf *out);
    /* Appends the node's TCP sockets as JSON to out (nd_sockets_json): 0, or -1 on error. May
     * wait a bounded time for workers to answer. */
    int (*sockets)(void *arg, struct nd_sbuf *out);
    /* Appends the recent gossip user events as JSON to out: 0, 1 when gossip is off, -1. */
    int (*events)(void *arg, struct nd_sbuf *out);
    /* Sends a gossip user event: 0, 1 when gossip is off, or -1 with the reason (one line)
     * appended to msg. */
    int (*event)(void *arg, const char *name, size_t name_len, const void *payload,
                 size_t payload_len, bool coalesce, struct nd_sbuf *msg);
    /* Sends a gossip (serf) query: 0 with {"id", "timeout_ms"} as JSON appended to out, 1 when
     * gossip is off, or -1 with the reason (one line) appended to out. node: NULL, or the one
     * node that should answer; tags[0..ntags): "KEY=REGEX", only members whose tag KEY matches
     * (all of them); timeout_ms 0: serf's default. */
    int (*query)(void *arg, const char *name, size_t name_len, const void *payload,
                 size_t payload_len, bool ack, uint32_t timeout_ms, const char *node,
                 const char *const *tags, size_t ntags, uint8_t relay_factor, struct nd_sbuf *out);
    /* Appends our queries (id 0) or one of them, with their acks and responses, as JSON: 0, 1
     * when gossip is off, 2 for an unknown id, -1. */
    int (*queries)(void *arg, uint32_t id, struct nd_sbuf *out);
};

/* Handles one admin request (body: the request body, body_len bytes, NULL when none). Returns
 * the HTTP status; *ctype is set to the content type (a static string); the answer is appended to
 * out (control path: allocates). On memory exhaustion out holds "out of memory\n" and the status
 * is 500. */
int nd_admin_handle(const struct nd_admin_ops *ops, const struct nd_http_msg *req, const char *body,
                    size_t body_len, struct nd_sbuf *out, const char **ctype);

/* The value of the Allow header for req's path ("GET, HEAD" or "POST"), to send with a 405; NULL
 * for an unknown path. */
const char *nd_admin_allow(const struct nd_http_msg *req);

#endif
