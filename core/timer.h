/*
 * Per-worker timers: a hierarchical timing wheel with 1 ms ticks (as in Varghese & Lauck, and the
 * Linux and libtimeout wheels). Four levels of 64 slots, each slot of level L spanning 64^L ms:
 * 64 ms, 4.1 s, 4.4 min and 4.7 h of range. A timer goes to the lowest level whose range holds it
 * and moves down a level (cascades) when its slot comes up, so it fires exactly on its tick.
 * Each level keeps a bitmap of its non-empty slots: arming and cancelling are O(1), the next
 * expiry (the poll timeout) and the walk over idle time cost a few bit scans, whatever the number
 * of timers. Nothing is allocated (the timer is embedded in its owner). A wheel belongs to one
 * worker and is never touched by another thread.
 */
#ifndef NODUS_TIMER_H
#define NODUS_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#define ND_WHEEL_BITS 6
#define ND_WHEEL_SLOTS (1u << ND_WHEEL_BITS) /* per level */
#define ND_WHEEL_LEVELS 4

struct nd_timer {
    struct nd_timer *next, **pprev; /* pprev == NULL: not armed */
    uint64_t expire;                /* absolute, ms */
    void (*cb)(struct nd_timer *t);
    uint8_t level, slot;
};

struct nd_wheel {
    struct nd_timer *slot[ND_WHEEL_LEVELS][ND_WHEEL_SLOTS];
    uint64_t used[ND_WHEEL_LEVELS]; /* bit s: slot s is not empty */
    uint64_t now;                   /* ms, monotonic: the time the wheel has been advanced to */
    uint64_t tick;                  /* next tick to process (now + 1 once advanced) */
    unsigned count;                 /* armed timers */
};

void nd_wheel_init(struct nd_wheel *w, uint64_t now_ms);
/* (Re)arms t to fire `ms` (at least 1) from the wheel's now. cb must be set. */
void nd_timer_arm(struct nd_wheel *w, struct nd_timer *t, uint64_t ms);
void nd_timer_cancel(struct nd_wheel *w, struct nd_timer *t);
static inline bool nd_timer_armed(const struct nd_timer *t)
{
    return t->pprev != 0;
}
/* Advances to now_ms, running the callbacks of expired timers (which may arm or cancel timers).
 * Returns how many fired. */
unsigned nd_wheel_advance(struct nd_wheel *w, uint64_t now_ms);
/* Moves the wheel's clock to now_ms (if later) without running anything: timers armed from now on
 * count from now_ms, and those that expired run at the next nd_wheel_advance(), unless cancelled
 * or rearmed before (the state callbacks see during an advance). A poll loop reads its input
 * between the two, so that an answer waiting in a queue beats the timer it would have stopped. */
void nd_wheel_set_now(struct nd_wheel *w, uint64_t now_ms);
/* Milliseconds until the wheel next has work (-1: no timer). Never late; early only when a
 * cascade is due before the first expiry. */
int nd_wheel_next(const struct nd_wheel *w);

#endif
