/*
 * The SWIM engine on kernel sockets: one UDP socket and one TCP listener on the gossip address,
 * outgoing TCP streams for push/pull and fallback pings, all non-blocking, behind one epoll fd
 * that the main thread's loop watches. Main thread only.
 *
 *     g = nd_gossip_posix_new(&cfg->gossip, cfg->node.name, &err);
 *     add nd_gossip_posix_fd(g) to the loop (EPOLLIN); wait at most nd_gossip_posix_next_ms(g);
 *     call nd_gossip_posix_run(g) after every wait (it never blocks);
 *     on SIGTERM: nd_gossip_posix_leave(g, 10000) (blocks until the leave is out), then free.
 */
#ifndef NODUS_GOSSIP_POSIX_H
#define NODUS_GOSSIP_POSIX_H

#include <stdint.h>

#include "swim-t.h"

struct nd_gossip_conf;
struct nd_gossip_posix;
struct nd_sbuf;
struct nd_swim;

/* Opens the sockets, creates the engine and starts joining the seeds. NULL with a malloc'd
 * message in *err ("gossip: cannot bind 127.0.0.1:7946: Address in use"). */
struct nd_gossip_posix *nd_gossip_posix_new(const struct nd_gossip_conf *gc, const char *node_name,
                                            char **err);
void nd_gossip_posix_free(struct nd_gossip_posix *g);

/* The epoll fd to watch for EPOLLIN. */
int nd_gossip_posix_fd(const struct nd_gossip_posix *g);
/* Handles ready sockets and due timers. Never blocks. */
void nd_gossip_posix_run(struct nd_gossip_posix *g);
/* Milliseconds until nd_gossip_posix_run has timer work (-1: none). */
int nd_gossip_posix_next_ms(const struct nd_gossip_posix *g);
/* Graceful leave: runs its own loop until the leave has been sent or max_ms passed. */
void nd_gossip_posix_leave(struct nd_gossip_posix *g, uint32_t max_ms);

/* GET /members: {"members": [{name, address, status, state, incarnation, tags}], "metrics":
 * {...}} as JSON. 0, or -1 when out of memory. */
int nd_gossip_posix_members_json(struct nd_gossip_posix *g, struct nd_sbuf *out);
struct nd_swim *nd_gossip_posix_engine(struct nd_gossip_posix *g);

/* Member events for the core (the service catalog): fn(arg, m, ev) for every change the engine
 * reports, ourselves included (m valid during the call only; fn must not call into the engine).
 * Members already known are not replayed: walk nd_swim_each() for them. */
void nd_gossip_posix_on_member(struct nd_gossip_posix *g,
                               void (*fn)(void *arg, const struct nd_swim_member *m,
                                          enum nd_swim_event ev),
                               void *arg);

#endif
