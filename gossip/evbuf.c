/* serf's user-event clock and recent-event buffer: see evbuf.h. */
#include "evbuf.h"

#include <stdlib.h>
#include <string.h>

#include "serf.h"

#define EVENT_OVERHEAD (sizeof(struct nd_evbuf_event) + sizeof(void *))

void nd_evbuf_init(struct nd_evbuf *b, size_t max_bytes)
{
    memset(b, 0, sizeof *b);
    b->clock = 1;
    b->max_bytes = max_bytes ? max_bytes : ND_EVBUF_BYTES_DEFAULT;
}

static void slot_clear(struct nd_evbuf *b, struct nd_evbuf_slot *s)
{
    for (uint32_t i = 0; i < s->n; i++) {
        b->bytes -= EVENT_OVERHEAD + s->ev[i]->name_len + s->ev[i]->payload_len;
        free(s->ev[i]);
    }
    if (s->n)
        b->used_slots--;
    b->events -= s->n;
    free(s->ev);
    s->ev = NULL;
    s->n = s->cap = 0;
}

void nd_evbuf_free(struct nd_evbuf *b)
{
    for (uint32_t i = 0; i < ND_EVBUF_SLOTS; i++)
        slot_clear(b, &b->slot[i]);
}

void nd_evbuf_witness(struct nd_evbuf *b, uint64_t ltime)
{
    if (ltime >= b->clock && ltime < UINT64_MAX)
        b->clock = ltime + 1;
}

void nd_evbuf_ignore_before(struct nd_evbuf *b, uint64_t ltime)
{
    if (ltime > b->min_time)
        b->min_time = ltime;
}

uint64_t nd_evbuf_tick(struct nd_evbuf *b)
{
    uint64_t t = b->clock;

    if (b->clock < UINT64_MAX)
        b->clock++;
    return t;
}

static bool same(const struct nd_evbuf_event *e, struct nd_gbytes name, struct nd_gbytes payload)
{
    /* serf compares Name, then Payload with bytes.Compare: nil and empty are equal */
    return e->name_len == name.len && e->payload_len == payload.len &&
           (name.len == 0 || memcmp(e->data, name.p, name.len) == 0) &&
           (payload.len == 0 || memcmp(e->data + name.len, payload.p, payload.len) == 0);
}

enum nd_evbuf_verdict nd_evbuf_accept(struct nd_evbuf *b, uint64_t ltime, struct nd_gbytes name,
                                      struct nd_gbytes payload)
{
    struct nd_evbuf_slot *s;
    struct nd_evbuf_event *e;
    size_t need;

    nd_evbuf_witness(b, ltime);
    if (ltime < b->min_time)
        return ND_EVBUF_BEFORE_JOIN;
    if (b->clock > ND_EVBUF_SLOTS && ltime < b->clock - ND_EVBUF_SLOTS)
        return ND_EVBUF_TOO_OLD;
    if ((size_t)name.len + payload.len > ND_EVBUF_EVENT_MAX)
        return ND_EVBUF_TOO_LARGE;
    s = &b->slot[ltime % ND_EVBUF_SLOTS];
    if (s->n && s->ltime == ltime) {
        for (uint32_t i = 0; i < s->n; i++)
            if (same(s->ev[i], name, payload))
                return ND_EVBUF_DUPLICATE;
    } else {
        slot_clear(b, s); /* an older time's events leave the window */
        s->ltime = ltime;
    }
    need = EVENT_OVERHEAD + name.len + payload.len;
    if (s->n >= ND_EVBUF_SLOT_MAX || b->bytes + need > b->max_bytes)
        return ND_EVBUF_FULL;
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 2;
        struct nd_evbuf_event **ev = realloc(s->ev, cap * sizeof *ev);

        if (!ev)
            return ND_EVBUF_NOMEM;
        s->ev = ev;
        s->cap = cap;
    }
    if (!(e = malloc(sizeof *e + name.len + payload.len)))
        return ND_EVBUF_NOMEM;
    e->name_len = name.len;
    e->payload_len = payload.len;
    e->payload_nil = payload.p == NULL;
    if (name.len)
        memcpy(e->data, name.p, name.len);
    if (payload.len)
        memcpy(e->data + name.len, payload.p, payload.len);
    if (!s->n)
        b->used_slots++;
    s->ev[s->n++] = e;
    b->events++;
    b->bytes += need;
    return ND_EVBUF_NEW;
}

uint32_t nd_evbuf_groups(const struct nd_evbuf *b, struct nd_serf_event_group *groups,
                         struct nd_serf_event_item *items)
{
    uint32_t ng = 0, ni = 0;

    for (uint32_t i = 0; i < ND_EVBUF_SLOTS; i++) {
        const struct nd_evbuf_slot *s = &b->slot[i];

        if (!s->n)
            continue;
        groups[ng].ltime = s->ltime;
        groups[ng].n = s->n;
        groups[ng].ev = items + ni;
        groups[ng].raw = (struct nd_gbytes){0};
        for (uint32_t k = 0; k < s->n; k++, ni++) {
            const struct nd_evbuf_event *e = s->ev[k];

            items[ni].name = (struct nd_gbytes){e->data, e->name_len};
            items[ni].payload = e->payload_nil
                                    ? (struct nd_gbytes){NULL, 0}
                                    : (struct nd_gbytes){e->data + e->name_len, e->payload_len};
        }
        ng++;
    }
    return ng;
}

const char *nd_evbuf_verdict_name(enum nd_evbuf_verdict v)
{
    static const char *const names[] = {"new",       "duplicate",   "before_join",  "too_old",
                                        "too_large", "buffer_full", "out_of_memory"};

    return (unsigned)v < sizeof names / sizeof names[0] ? names[v] : "unknown";
}
