#include "timer.h"

#include <string.h>

#define MASK (ND_WHEEL_SLOTS - 1)

void nd_wheel_init(struct nd_wheel *w, uint64_t now_ms)
{
    memset(w, 0, sizeof(*w));
    w->now = now_ms;
    w->tick = now_ms;
}

void nd_timer_cancel(struct nd_wheel *w, struct nd_timer *t)
{
    if (!t->pprev)
        return;
    *t->pprev = t->next;
    if (t->next)
        t->next->pprev = t->pprev;
    t->next = NULL;
    t->pprev = NULL;
    w->count--;
}

void nd_timer_arm(struct nd_wheel *w, struct nd_timer *t, uint64_t ms)
{
    struct nd_timer **head;

    nd_timer_cancel(w, t);
    t->expire = w->now + (ms ? ms : 1);
    /* never file a timer in a slot already passed this round */
    head = &w->slot[(t->expire < w->tick ? w->tick : t->expire) & MASK];
    t->next = *head;
    if (t->next)
        t->next->pprev = &t->next;
    t->pprev = head;
    *head = t;
    w->count++;
}

unsigned nd_wheel_advance(struct nd_wheel *w, uint64_t now_ms)
{
    unsigned fired = 0;

    if (now_ms > w->now)
        w->now = now_ms;
    if (!w->count) {
        w->tick = w->now + 1;
        return 0;
    }
    /* a long sleep walks at most one full round: every slot is then visited once */
    if (w->now - w->tick >= ND_WHEEL_SLOTS)
        w->tick = w->now - ND_WHEEL_SLOTS + 1;
    while (w->tick <= w->now) {
        struct nd_timer **pp = &w->slot[w->tick & MASK];
        struct nd_timer *t;

        while ((t = *pp)) {
            if (t->expire <= w->now) {
                nd_timer_cancel(w, t);
                t->cb(t);
                fired++;
                pp = &w->slot[w->tick & MASK]; /* the callback may have changed the slot */
            } else {
                pp = &t->next;
            }
        }
        w->tick++;
    }
    return fired;
}

int nd_wheel_next(const struct nd_wheel *w)
{
    uint64_t i;

    if (!w->count)
        return -1;
    for (i = 0; i < ND_WHEEL_SLOTS; i++) {
        const struct nd_timer *t = w->slot[(w->tick + i) & MASK];

        for (; t; t = t->next)
            if (t->expire <= w->tick + i)
                return (int)(w->tick + i > w->now ? w->tick + i - w->now : 0);
        /* a slot holding only later rounds: look on, but it may fire on a later lap */
    }
    return ND_WHEEL_SLOTS;
}
