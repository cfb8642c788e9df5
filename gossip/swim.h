/*
 * SWIM membership engine: memberlist 0.2.2's failure detector and dissemination (probe, indirect
 * probes with nack, TCP fallback ping, suspicion with confirmations, refutation, Lifeguard
 * awareness, piggybacked and gossiped broadcasts, push/pull anti-entropy, join, leave, reaping)
 * with serf 0.9.4's intents and Lamport clocks on top, over the wire layer (wire.h, serf.h,
 * keyring.h). Pure: no sockets, no clock, no threads; see swim-t.h for struct nd_swim_io.
 *
 * Use:
 *     struct nd_swim_config c; nd_swim_config_lan(&c); c.name = ...; c.addr = ...;
 *     sw = nd_swim_new(&c, &io, now, &err);
 *     nd_swim_join(sw, now, seeds, n);
 *     loop: nd_swim_packet() / nd_swim_stream_*() as I/O arrives, nd_swim_tick(sw, now) when
 *           nd_swim_next_ms() says; all with the current monotonic time in ms.
 *     nd_swim_leave(sw, now); keep looping until nd_swim_leave_done() (or a timeout);
 *     nd_swim_free(sw).
 * Every entry point first runs the timers that are due at now. Not thread-safe: one thread per
 * engine. Memory is bounded by the config's max_* limits.
 */
#ifndef NODUS_GOSSIP_SWIM_H
#define NODUS_GOSSIP_SWIM_H

#include "swim-t.h"

struct nd_swim;

/* memberlist DefaultLANConfig plus nodus's bounds; name and addr are left empty. */
void nd_swim_config_lan(struct nd_swim_config *c);
/* Bytes of workspace an engine needs for a given stream_max. */
size_t nd_swim_workspace_size(uint32_t stream_max);

/* Creates an engine and announces itself (alive, incarnation 1). NULL with *err set to a
 * negative ND_GOSSIP_E_* code: E_VALUE for a bad config, E_LIMIT for tags over 512 bytes,
 * E_SPACE when out of memory. */
struct nd_swim *nd_swim_new(const struct nd_swim_config *c, const struct nd_swim_io *io,
                            uint64_t now_ms, int *err);
/* Frees everything; open streams are closed through io->stream_close. */
void nd_swim_free(struct nd_swim *sw);

/* Starts a join (TCP push/pull with Join = true) to each seed. Returns how many were started.
 * Joins complete later; nd_swim_metrics()->pushpulls and the member table tell. */
int nd_swim_join(struct nd_swim *sw, uint64_t now_ms, const struct nd_swim_addr *seeds, size_t n);
/* Graceful leave: a serf leave intent, then (once it has been sent enough or after 5 s) a dead
 * message about ourselves. Keep calling nd_swim_tick until nd_swim_leave_done(). */
void nd_swim_leave(struct nd_swim *sw, uint64_t now_ms);
bool nd_swim_leave_done(const struct nd_swim *sw);
/* Changes our serf tags at run time (serf SetTags, memberlist UpdateNode): the new Meta goes
 * out in an alive message with our next incarnation, so that every member sees the change.
 * 0 (also when nothing changed), ND_GOSSIP_E_LIMIT for tags over 512 bytes encoded,
 * ND_GOSSIP_E_VALUE for more than 64 tags or while leaving, ND_GOSSIP_E_SPACE (out of
 * memory: the old tags stay). */
int nd_swim_set_tags(struct nd_swim *sw, uint64_t now_ms, const struct nd_swim_tag *tags,
                     size_t ntags);
/* Replaces the keyring at run time, for key rotation (serf keys install / use / remove): the
 * first key is the primary, every key is tried on receipt. Encryption cannot be turned on or off
 * at run time (peers would drop us): ND_GOSSIP_E_VALUE when kr is empty and ours is not, or the
 * other way round. */
int nd_swim_set_keyring(struct nd_swim *sw, const struct nd_keyring *kr);

/* Sends a serf user event (serf UserEvent): its time is the event clock's, which then moves
 * on; it is delivered here too (io->user_event, self) and gossiped to every member with the
 * usual retransmit limit. Name and payload together, and the encoded serf message, at most
 * 512 bytes (serf's default UserEventSizeLimit): else ND_GOSSIP_E_LIMIT. ND_GOSSIP_E_SPACE when
 * out of memory. */
int nd_swim_user_event(struct nd_swim *sw, uint64_t now_ms, const void *name, size_t name_len,
                       const void *payload, size_t payload_len, bool coalesce);
/* The event clock (serf's eventClock: the time the next event sent here gets). */
uint64_t nd_swim_event_clock(const struct nd_swim *sw);

/* Sends a serf query (serf's Query): processed here too (we ack and answer ourselves, as serf
 * does: those replies come during this call), then gossiped. Acks and responses come through
 * io->query_reply, named by p->handle, until *timeout_ms (p->timeout_ms, or the default) has
 * passed. 0; ND_GOSSIP_E_LIMIT when the query encodes to more than ND_SWIM_QUERY_MAX bytes or
 * ND_SWIM_QUERIES_OUT are running or over ND_SWIM_QUERY_TAGS_MAX tag filters; ND_GOSSIP_E_VALUE
 * while leaving or for a tag filter's expression we would refuse on receipt. */
int nd_swim_query(struct nd_swim *sw, uint64_t now_ms, const struct nd_swim_query_param *p,
                  uint32_t *timeout_ms);
/* serf's DefaultQueryTimeout: gossip interval * 16 * ceil(log10(members + 1)). */
uint32_t nd_swim_query_timeout_ms(const struct nd_swim *sw);
/* Our keyring as it is now (key queries change it at run time). */
const struct nd_keyring *nd_swim_keyring(const struct nd_swim *sw);

/* A UDP datagram arrived from `from`. */
void nd_swim_packet(struct nd_swim *sw, uint64_t now_ms, const struct nd_swim_addr *from,
                    const uint8_t *p, size_t n);

/* A TCP connection was accepted: 0 and *sid, or ND_GOSSIP_E_LIMIT (max_streams: close it). */
int nd_swim_stream_accept(struct nd_swim *sw, uint64_t now_ms, const struct nd_swim_addr *from,
                          uint32_t *sid);
/* Bytes arrived on a stream. */
void nd_swim_stream_input(struct nd_swim *sw, uint64_t now_ms, uint32_t sid, const uint8_t *p,
                          size_t n);
/* The peer closed the stream or it failed (connect refused, reset): the engine forgets sid and
 * will not call stream_close for it. */
void nd_swim_stream_end(struct nd_swim *sw, uint64_t now_ms, uint32_t sid);

/* Runs the timers due at now_ms. */
void nd_swim_tick(struct nd_swim *sw, uint64_t now_ms);
/* Milliseconds until the engine next needs nd_swim_tick (-1: never). */
int nd_swim_next_ms(const struct nd_swim *sw);

const struct nd_swim_metrics *nd_swim_metrics(struct nd_swim *sw);
/* Calls fn for every member, ourselves included, in table order. */
void nd_swim_each(struct nd_swim *sw, void (*fn)(void *arg, const struct nd_swim_member *m),
                  void *arg);
/* Looks a member up by name; 0 and *m, or -1. */
int nd_swim_find(struct nd_swim *sw, const char *name, struct nd_swim_member *m);
/* Our own name (NUL-terminated). */
const char *nd_swim_self_name(const struct nd_swim *sw);
/* Name of a serf status ("alive", "leaving", "left", "failed") or state. */
const char *nd_swim_status_name(unsigned status);
const char *nd_swim_state_name(unsigned state);
/* Formats an address as "1.2.3.4:7946" or "[::1]:7946" into buf (at least 64 bytes). */
const char *nd_swim_addr_str(const struct nd_swim_addr *a, char *buf, size_t cap);

#endif
