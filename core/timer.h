/*
 * Per-worker timers: a hashed timing wheel with 1 ms ticks. Arming and cancelling are O(1) and
 * allocate nothing (the timer is embedded in its owner); expiry costs one slot walk per tick.
 * A wheel belongs to one worker and is never touched by another thread.
 */
#ifndef NODUS_TIMER_H
#define NODUS_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#define ND_WHEEL_SLOTS 1024 /* power of two */

struct nd_timer {
    struct nd_timer *next, **pprev; /* pprev == NULL: not armed */
    uint64_t expire;                /* absolute, ms */
    void (*cb)(struct nd_timer *t);
};

struct nd_wheel {
    struct nd_timer *slot[ND_WHEEL_SLOTS];
    uint64_t now;  /* ms, monotonic: the time the wheel has been advanced to */
    uint64_t tick; /* next tick to process */
    unsigned count;
};

void nd_wheel_init(struct nd_wheel *w, uint64_t now_ms);
/* (Re)arms t to fire `ms` from the wheel's now. cb must be set. */
void nd_timer_arm(struct nd_wheel *w, struct nd_timer *t, uint64_t ms);
void nd_timer_cancel(struct nd_wheel *w, struct nd_timer *t);
static inline bool nd_timer_armed(const struct nd_timer *t) { return t->pprev != 0; }
/* Advances to now_ms, running the callbacks of expired timers (which may arm or cancel timers).
 * Returns how many fired. */
unsigned nd_wheel_advance(struct nd_wheel *w, uint64_t now_ms);
/* Milliseconds until the earliest slot that holds a timer (-1: none; may be early, never late). */
int nd_wheel_next(const struct nd_wheel *w);

#endif
