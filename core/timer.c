#include "timer.h"

#include <string.h>

#define MASK (ND_WHEEL_SLOTS - 1)
#define SPAN(l) ((uint64_t)1 << (ND_WHEEL_BITS * (l))) /* ms per slot of level l */
/* The farthest a timer can be filed; later ones are filed there and filed again when reached. */
#define HORIZON (SPAN(ND_WHEEL_LEVELS) - 1)

void nd_wheel_init(struct nd_wheel *w, uint64_t now_ms)
{
    memset(w, 0, sizeof(*w));
    w->now = now_ms;
    w->tick = now_ms + 1;
}

static void unlink_timer(struct nd_wheel *w, struct nd_timer *t)
{
    *t->pprev = t->next;
    if (t->next)
        t->next->pprev = t->pprev;
    else if (t->pprev == &w->slot[t->level][t->slot])
        w->used[t->level] &= ~((uint64_t)1 << t->slot);
    t->next = NULL;
    t->pprev = NULL;
}

void nd_timer_cancel(struct nd_wheel *w, struct nd_timer *t)
{
    if (!t->pprev)
        return;
    unlink_timer(w, t);
    w->count--;
}

/* Files t by its expiry relative to the next tick. Timers are pushed at the head of their slot;
 * a slot's emptiness is known from its head, which unlink_timer() checks through pprev. */
static void file_timer(struct nd_wheel *w, struct nd_timer *t)
{
    uint64_t at = t->expire < w->tick ? w->tick : t->expire;
    uint64_t delta = at - w->tick;
    unsigned l = 0;
    struct nd_timer **head;

    if (delta > HORIZON) {
        delta = HORIZON;
        at = w->tick + HORIZON;
    }
    while (l < ND_WHEEL_LEVELS - 1 && delta >= SPAN(l + 1))
        l++;
    t->level = (uint8_t)l;
    t->slot = (uint8_t)((at >> (ND_WHEEL_BITS * l)) & MASK);
    head = &w->slot[l][t->slot];
    t->next = *head;
    if (t->next)
        t->next->pprev = &t->next;
    t->pprev = head;
    *head = t;
    w->used[l] |= (uint64_t)1 << t->slot;
}

void nd_timer_arm(struct nd_wheel *w, struct nd_timer *t, uint64_t ms)
{
    nd_timer_cancel(w, t);
    t->expire = w->now + (ms ? ms : 1);
    file_timer(w, t);
    w->count++;
}

/* Moves the timers of one slot of level l down to where they now belong. */
static void cascade(struct nd_wheel *w, unsigned l, unsigned s)
{
    struct nd_timer *t, *list = w->slot[l][s];

    if (!list)
        return;
    w->slot[l][s] = NULL;
    w->used[l] &= ~((uint64_t)1 << s);
    while ((t = list)) {
        list = t->next;
        t->next = NULL;
        t->pprev = NULL;
        file_timer(w, t);
    }
}

/* The first tick >= w->tick that has something to do at level 0 or a cascade boundary. */
static uint64_t next_stop(const struct nd_wheel *w, uint64_t limit)
{
    unsigned s = w->tick & MASK;
    uint64_t bits = w->used[0] >> s;         /* slots s..63 of this lap */
    uint64_t lap_end = (w->tick | MASK) + 1; /* next multiple of 64: cascade boundary */
    uint64_t at = !s ? w->tick : bits ? w->tick + (uint64_t)__builtin_ctzll(bits) : lap_end;

    return at < limit ? at : limit;
}

void nd_wheel_set_now(struct nd_wheel *w, uint64_t now_ms)
{
    if (now_ms > w->now)
        w->now = now_ms;
}

unsigned nd_wheel_advance(struct nd_wheel *w, uint64_t now_ms)
{
    unsigned fired = 0;

    if (now_ms > w->now)
        w->now = now_ms;
    while (w->tick <= w->now) {
        uint64_t tk;
        struct nd_timer *t;
        unsigned l;

        if (!w->count) {
            w->tick = w->now + 1;
            break;
        }
        w->tick = next_stop(w, w->now + 1);
        if (w->tick > w->now)
            break;
        tk = w->tick;
        /* at a boundary of level l, the slot of level l that starts here comes down */
        for (l = ND_WHEEL_LEVELS - 1; l > 0; l--)
            if (!(tk & (SPAN(l) - 1)))
                cascade(w, l, (unsigned)((tk >> (ND_WHEEL_BITS * l)) & MASK));
        while ((t = w->slot[0][tk & MASK])) {
            nd_timer_cancel(w, t);
            t->cb(t);
            fired++;
        }
        w->tick = tk + 1;
    }
    return fired;
}

static inline uint64_t ror64(uint64_t x, unsigned r)
{
    r &= 63;
    return r ? (x >> r) | (x << (64 - r)) : x;
}

int nd_wheel_next(const struct nd_wheel *w)
{
    uint64_t best = UINT64_MAX, at;
    unsigned l;

    if (!w->count)
        return -1;
    for (l = 0; l < ND_WHEEL_LEVELS; l++) {
        uint64_t unit = (w->tick - 1) >> (ND_WHEEL_BITS * l); /* of the last tick processed */
        uint64_t rot;

        if (!w->used[l])
            continue;
        if (l == 0) {
            /* bit i: the slot of tick + i (level 0 holds ticks tick .. tick + 63) */
            rot = ror64(w->used[0], (unsigned)(w->tick & MASK));
            at = w->tick + (uint64_t)__builtin_ctzll(rot);
        } else {
            /* bit i: the slot of unit + 1 + i (the last unit's slot came down already; it
             * holds unit + 64 only), which comes down at the start of that unit */
            rot = ror64(w->used[l], (unsigned)((unit + 1) & MASK));
            at = (unit + 1 + (uint64_t)__builtin_ctzll(rot)) << (ND_WHEEL_BITS * l);
        }
        if (at < best)
            best = at;
    }
    at = best > w->now ? best - w->now : 0;
    return at > INT32_MAX ? INT32_MAX : (int)at;
}
