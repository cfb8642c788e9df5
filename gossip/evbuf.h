/*
 * serf's user-event clock and recent-event buffer (serf 0.9.4 serf.go handleUserEvent,
 * UserEvent; delegate.go LocalState / MergeRemoteState), as a pure module: no I/O, no clock of
 * its own. The SWIM engine (swim.c) owns one; tests/unit/test_gossip_events.c drives it alone.
 *
 * The event clock is a Lamport clock: witnessed on receipt (clock = max(clock, ltime + 1)),
 * incremented on send (an event goes out with the current time, then the clock moves on).
 * Received events are kept in ND_EVBUF_SLOTS slots indexed by ltime % ND_EVBUF_SLOTS; a slot
 * holds the events of one Lamport time, and an event is a duplicate when its slot already holds
 * the same name and payload at that time. Like serf:
 *   - an event older than the join (min_time, set from the join answer's EventLTime, serf's
 *     eventJoinIgnore) is ignored;
 *   - an event older than clock - ND_EVBUF_SLOTS is too old;
 *   - a slot taken by a newer time forgets the older one.
 * nodus adds bounds serf does not have (memory): an event whose name and payload exceed
 * ND_EVBUF_EVENT_MAX bytes (serf's own UserEventSizeLimit, 9 KiB: serf never sends more), more
 * than ND_EVBUF_SLOT_MAX events at one time, or more than max_bytes recorded in all, is refused.
 */
#ifndef NODUS_GOSSIP_EVBUF_H
#define NODUS_GOSSIP_EVBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gossip-t.h"

struct nd_serf_event_group;
struct nd_serf_event_item;

#define ND_EVBUF_SLOTS 512u                       /* serf's EventBuffer */
#define ND_EVBUF_SLOT_MAX 256u                    /* events of one Lamport time */
#define ND_EVBUF_EVENT_MAX 9216u                  /* name + payload, serf's UserEventSizeLimit */
#define ND_EVBUF_BYTES_DEFAULT (2u * 1024 * 1024) /* recorded events, overhead included */
#define ND_EVENT_SEND_MAX                                                                          \
    512u /* what we send: name + payload, and the encoded message (serf's                          \
          * default UserEventSizeLimit) */

/* What nd_evbuf_accept() made of an event. */
enum nd_evbuf_verdict {
    ND_EVBUF_NEW = 0,     /* recorded: deliver it (and re-broadcast a gossiped one) */
    ND_EVBUF_DUPLICATE,   /* seen already at that time */
    ND_EVBUF_BEFORE_JOIN, /* older than the join (min_time) */
    ND_EVBUF_TOO_OLD,     /* older than the buffer's window */
    ND_EVBUF_TOO_LARGE,   /* name + payload over ND_EVBUF_EVENT_MAX */
    ND_EVBUF_FULL,        /* the slot or the byte bound is full */
    ND_EVBUF_NOMEM,
};

struct nd_evbuf_event {
    uint32_t name_len, payload_len;
    bool payload_nil; /* Go's nil slice: sent back as nil */
    uint8_t data[];   /* name, then payload */
};

struct nd_evbuf_slot {
    uint64_t ltime;
    uint32_t n, cap;
    struct nd_evbuf_event **ev;
};

struct nd_evbuf {
    struct nd_evbuf_slot slot[ND_EVBUF_SLOTS];
    uint64_t clock;    /* serf's eventClock: the time the next event we send gets */
    uint64_t min_time; /* serf's eventMinTime */
    size_t bytes, max_bytes;
    uint32_t events, used_slots; /* recorded events, slots holding some */
};

/* Clock at 1 (serf starts its clocks there), nothing recorded. max_bytes 0: the default. */
void nd_evbuf_init(struct nd_evbuf *b, size_t max_bytes);
void nd_evbuf_free(struct nd_evbuf *b);

/* The Lamport clock: witness a time seen (push/pull: witness EventLTime - 1, as serf). */
void nd_evbuf_witness(struct nd_evbuf *b, uint64_t ltime);
/* serf's eventJoinIgnore: events before ltime are ignored from now on. */
void nd_evbuf_ignore_before(struct nd_evbuf *b, uint64_t ltime);

/* serf handleUserEvent: witnesses ltime, then records the event unless it is refused. */
enum nd_evbuf_verdict nd_evbuf_accept(struct nd_evbuf *b, uint64_t ltime, struct nd_gbytes name,
                                      struct nd_gbytes payload);
/* serf UserEvent: the time for an event we send now (the clock), moving the clock on. */
uint64_t nd_evbuf_tick(struct nd_evbuf *b);

/* The recorded events as serf's push/pull carries them: groups[0..used_slots), each pointing
 * at its events in items[0..events); both arrays are the caller's. Returns the groups filled.
 * The pointers are valid until the buffer changes. */
uint32_t nd_evbuf_groups(const struct nd_evbuf *b, struct nd_serf_event_group *groups,
                         struct nd_serf_event_item *items);

/* Short name of a verdict ("duplicate", "too_old", ...), for metrics and logs. */
const char *nd_evbuf_verdict_name(enum nd_evbuf_verdict v);

#endif
