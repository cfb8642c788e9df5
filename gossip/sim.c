/*
 * Simulated network and clock for SWIM engines (sim.h). One event heap ordered by (time,
 * sequence); engines are woken when their timer wheel says so; callbacks from engines only
 * queue events, so no engine is ever re-entered.
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swim.h"

enum { E_WAKE, E_UDP, E_ACCEPT, E_DATA, E_CLOSE, E_FAIL, E_LEAVE_CHECK, E_JOIN_RETRY };

struct ev {
    uint64_t at, seq;
    uint8_t type;
    uint32_t a, b; /* E_WAKE/E_LEAVE_CHECK: node, gen; E_UDP: from, to; streams: conn, side */
    uint32_t gen;  /* E_UDP: the destination's generation when sent (unused) */
    uint32_t len;
    uint8_t *data;
};

struct conn {
    bool used;
    uint32_t node[2], gen[2], sid[2];
    bool open[2];     /* side still owned by its engine */
    uint64_t last[2]; /* latest delivery scheduled towards side k: TCP keeps order */
};

struct snode {
    struct nd_sim *s;
    uint32_t idx, gen, group;
    struct nd_swim *sw;
    uint64_t wake;
    uint64_t rng;
    uint64_t bytes;
    bool leaving;
    int64_t seed; /* node joined through, -1: none */
    char name[16];
};

struct nd_sim {
    struct nd_sim_config c;
    uint64_t now, seq, rng;
    struct ev *heap;
    size_t nheap, capheap;
    struct snode *nodes;
    struct conn *conns;
    uint32_t nconns, capconns;
    uint8_t *ws;
    size_t ws_len;
};

static uint64_t xrand(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 2685821657736338717ull;
}

static double urand(uint64_t *x)
{
    return (double)(xrand(x) >> 11) / 9007199254740992.0;
}

/* ---- event heap --------------------------------------------------------------------------- */

static bool ev_less(const struct ev *a, const struct ev *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void push(struct nd_sim *s, struct ev e)
{
    if (s->nheap == s->capheap) {
        size_t cap = s->capheap ? s->capheap * 2 : 1024;
        struct ev *h = realloc(s->heap, cap * sizeof *h);

        if (!h) {
            free(e.data);
            return;
        }
        s->heap = h;
        s->capheap = cap;
    }
    e.seq = s->seq++;
    size_t i = s->nheap++;

    while (i > 0) {
        size_t p = (i - 1) / 2;

        if (!ev_less(&e, &s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
}

static struct ev pop(struct nd_sim *s)
{
    struct ev top = s->heap[0], last = s->heap[--s->nheap];
    size_t i = 0;

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct ev *best = &last;

        if (l < s->nheap && ev_less(&s->heap[l], best)) {
            m = l;
            best = &s->heap[l];
        }
        if (r < s->nheap && ev_less(&s->heap[r], best))
            m = r;
        if (m == i)
            break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (s->nheap)
        s->heap[i] = last;
    return top;
}

/* ---- nodes -------------------------------------------------------------------------------- */

static void addr_of(uint32_t i, struct nd_swim_addr *a)
{
    uint32_t v = i + 1;

    memset(a, 0, sizeof *a);
    a->len = 4;
    a->ip[0] = 10;
    a->ip[1] = (uint8_t)(v >> 16);
    a->ip[2] = (uint8_t)(v >> 8);
    a->ip[3] = (uint8_t)v;
    a->port = 7946;
}

static int node_of(const struct nd_sim *s, const struct nd_swim_addr *a)
{
    uint32_t v;

    if (a->len != 4 || a->ip[0] != 10 || a->port != 7946)
        return -1;
    v = (uint32_t)a->ip[1] << 16 | (uint32_t)a->ip[2] << 8 | a->ip[3];
    if (v == 0 || v > s->c.nodes)
        return -1;
    return (int)(v - 1);
}

static uint64_t delay(struct nd_sim *s)
{
    return s->c.latency_ms + (s->c.jitter_ms ? xrand(&s->rng) % (s->c.jitter_ms + 1) : 0);
}

static void reschedule(struct snode *n)
{
    struct nd_sim *s = n->s;
    int ms;
    uint64_t at;

    if (!n->sw)
        return;
    ms = nd_swim_next_ms(n->sw);
    if (ms < 0)
        return;
    at = s->now + (uint64_t)(ms > 0 ? ms : 1);
    if (at < n->wake) {
        n->wake = at;
        push(s, (struct ev){.at = at, .type = E_WAKE, .a = n->idx, .b = n->gen});
    }
}

static bool reachable(const struct nd_sim *s, uint32_t a, uint32_t b)
{
    return s->nodes[a].group == s->nodes[b].group;
}

static void io_send(void *arg, const struct nd_swim_addr *to, const uint8_t *p, size_t len)
{
    struct snode *n = arg;
    struct nd_sim *s = n->s;
    int d = node_of(s, to);
    uint8_t *copy;

    n->bytes += len;
    if (d < 0 || urand(&s->rng) < s->c.loss || !reachable(s, n->idx, (uint32_t)d))
        return;
    if (!(copy = malloc(len)))
        return;
    memcpy(copy, p, len);
    push(s, (struct ev){.at = s->now + delay(s),
                        .type = E_UDP,
                        .a = n->idx,
                        .b = (uint32_t)d,
                        .len = (uint32_t)len,
                        .data = copy});
}

static struct conn *conn_new(struct nd_sim *s, uint32_t *id)
{
    for (uint32_t i = 0; i < s->nconns; i++)
        if (!s->conns[i].used) {
            *id = i;
            memset(&s->conns[i], 0, sizeof s->conns[i]);
            s->conns[i].used = true;
            return &s->conns[i];
        }
    if (s->nconns == s->capconns) {
        uint32_t cap = s->capconns ? s->capconns * 2 : 256;
        struct conn *c = realloc(s->conns, cap * sizeof *c);

        if (!c)
            return NULL;
        s->conns = c;
        s->capconns = cap;
    }
    *id = s->nconns;
    memset(&s->conns[s->nconns], 0, sizeof s->conns[0]);
    s->conns[s->nconns].used = true;
    return &s->conns[s->nconns++];
}

/* The side of a connection that node n's stream sid is, or -1. */
static int conn_find(struct nd_sim *s, const struct snode *n, uint32_t sid, uint32_t *id)
{
    for (uint32_t i = 0; i < s->nconns; i++) {
        struct conn *c = &s->conns[i];

        if (!c->used)
            continue;
        for (int k = 0; k < 2; k++)
            if (c->open[k] && c->node[k] == n->idx && c->gen[k] == n->gen && c->sid[k] == sid) {
                *id = i;
                return k;
            }
    }
    return -1;
}

static void conn_maybe_free(struct conn *c)
{
    if (!c->open[0] && !c->open[1])
        c->used = false;
}

static int io_stream_open(void *arg, uint32_t sid, const struct nd_swim_addr *to)
{
    struct snode *n = arg;
    struct nd_sim *s = n->s;
    int d = node_of(s, to);
    uint32_t id;
    struct conn *c;

    if (d < 0 || !(c = conn_new(s, &id)))
        return -1;
    c->node[0] = n->idx;
    c->gen[0] = n->gen;
    c->sid[0] = sid;
    c->open[0] = true;
    c->node[1] = (uint32_t)d;
    if (!reachable(s, n->idx, (uint32_t)d))
        return 0;          /* unanswered: the engine's stream timer ends it */
    if (!s->nodes[d].sw) { /* refused */
        push(s, (struct ev){.at = s->now + 2 * delay(s), .type = E_FAIL, .a = id, .b = 0});
        return 0;
    }
    /* TCP under loss: a lost SYN or SYN-ACK costs the 1 s initial retransmission timeout */
    uint64_t at = s->now + s->c.latency_ms;

    if (urand(&s->rng) < 1.0 - (1.0 - s->c.loss) * (1.0 - s->c.loss))
        at += 1000;
    c->last[1] = at;
    push(s, (struct ev){.at = at, .type = E_ACCEPT, .a = id, .b = 1});
    return 0;
}

static int io_stream_send(void *arg, uint32_t sid, const uint8_t *p, size_t len)
{
    struct snode *n = arg;
    struct nd_sim *s = n->s;
    uint32_t id;
    int k = conn_find(s, n, sid, &id);
    uint8_t *copy;

    if (k < 0)
        return -1;
    n->bytes += len;
    if (!(copy = malloc(len)))
        return -1;
    memcpy(copy, p, len);
    /* a lost segment costs Linux's minimum retransmission timeout, 200 ms; order is kept */
    uint64_t at = s->now + s->c.latency_ms;

    for (size_t seg = 0; seg < len; seg += 1448)
        if (urand(&s->rng) < s->c.loss)
            at += 200;
    if (at < s->conns[id].last[1 - k])
        at = s->conns[id].last[1 - k];
    s->conns[id].last[1 - k] = at;
    push(s, (struct ev){.at = at,
                        .type = E_DATA,
                        .a = id,
                        .b = (uint32_t)(1 - k),
                        .len = (uint32_t)len,
                        .data = copy});
    return 0;
}

static void io_stream_close(void *arg, uint32_t sid)
{
    struct snode *n = arg;
    struct nd_sim *s = n->s;
    uint32_t id;
    int k = conn_find(s, n, sid, &id);

    if (k < 0)
        return;
    uint64_t at = s->now + s->c.latency_ms;

    if (at < s->conns[id].last[1 - k])
        at = s->conns[id].last[1 - k];
    s->conns[id].open[k] = false;
    push(s, (struct ev){.at = at, .type = E_CLOSE, .a = id, .b = (uint32_t)(1 - k)});
    conn_maybe_free(&s->conns[id]);
}

static void io_random(void *arg, void *p, size_t len)
{
    struct snode *n = arg;
    uint8_t *b = p;

    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(xrand(&n->rng) >> 56);
}

static void io_event(void *arg, const struct nd_swim_member *m, enum nd_swim_event ev)
{
    struct snode *n = arg;
    struct nd_sim *s = n->s;

    if (s->c.on_event)
        s->c.on_event(s->c.arg, n->idx, m, ev, s->now);
}

static void io_user_event(void *arg, const struct nd_swim_user_event *ev)
{
    struct snode *n = arg;
    struct nd_sim *s = n->s;

    if (s->c.on_user_event)
        s->c.on_user_event(s->c.arg, n->idx, ev, s->now);
}

static int io_query(void *arg, const struct nd_swim_query *q, uint8_t *resp, size_t cap,
                    size_t *len)
{
    struct snode *n = arg;
    struct nd_sim *s = n->s;

    return s->c.on_query ? s->c.on_query(s->c.arg, n->idx, q, resp, cap, len) : 0;
}

static void io_query_reply(void *arg, const struct nd_swim_query_reply *r)
{
    struct snode *n = arg;
    struct nd_sim *s = n->s;

    if (s->c.on_query_reply)
        s->c.on_query_reply(s->c.arg, n->idx, r, s->now);
}

/* ---- API ---------------------------------------------------------------------------------- */

struct nd_sim *nd_sim_new(const struct nd_sim_config *c)
{
    struct nd_sim *s;

    if (!c->nodes || c->nodes > 0xffffff)
        return NULL;
    if (!(s = calloc(1, sizeof *s)))
        return NULL;
    s->c = *c;
    s->rng = c->seed * 0x9e3779b97f4a7c15ull + 1;
    s->nodes = calloc(c->nodes, sizeof *s->nodes);
    s->ws_len = nd_swim_workspace_size(c->swim.stream_max);
    s->ws = malloc(s->ws_len);
    if (!s->nodes || !s->ws) {
        nd_sim_free(s);
        return NULL;
    }
    for (uint32_t i = 0; i < c->nodes; i++) {
        s->nodes[i].s = s;
        s->nodes[i].idx = i;
        s->nodes[i].wake = UINT64_MAX;
        s->nodes[i].seed = -1;
        s->nodes[i].rng = (c->seed + 1) * 0x9e3779b97f4a7c15ull ^ (i + 1) * 0xbf58476d1ce4e5b9ull;
        snprintf(s->nodes[i].name, sizeof s->nodes[i].name, "n%u", i);
    }
    return s;
}

void nd_sim_free(struct nd_sim *s)
{
    if (!s)
        return;
    if (s->nodes)
        for (uint32_t i = 0; i < s->c.nodes; i++)
            if (s->nodes[i].sw) {
                nd_swim_free(s->nodes[i].sw);
                s->nodes[i].sw = NULL;
            }
    for (size_t i = 0; i < s->nheap; i++)
        free(s->heap[i].data);
    free(s->heap);
    free(s->conns);
    free(s->nodes);
    free(s->ws);
    free(s);
}

static const struct nd_swim_io sim_io = {
    .send = io_send,
    .stream_open = io_stream_open,
    .stream_send = io_stream_send,
    .stream_close = io_stream_close,
    .random = io_random,
    .event = io_event,
    .user_event = io_user_event,
    .query = io_query,
    .query_reply = io_query_reply,
};

int nd_sim_start(struct nd_sim *s, uint32_t i, const struct nd_keyring *kr)
{
    struct snode *n = &s->nodes[i];
    struct nd_swim_config c = s->c.swim;
    struct nd_swim_io io = sim_io;
    int err = 0;

    if (n->sw)
        return 0;
    c.name = n->name;
    addr_of(i, &c.addr);
    c.keyring = kr;
    c.workspace = s->ws;
    c.workspace_len = s->ws_len;
    io.arg = n;
    n->gen++;
    n->leaving = false;
    n->wake = UINT64_MAX;
    n->sw = nd_swim_new(&c, &io, s->now, &err);
    if (!n->sw)
        return err ? err : -1;
    reschedule(n);
    return 0;
}

void nd_sim_join(struct nd_sim *s, uint32_t i, uint32_t j)
{
    struct snode *n = &s->nodes[i];
    struct nd_swim_addr a;

    if (!n->sw)
        return;
    addr_of(j, &a);
    nd_swim_join(n->sw, s->now, &a, 1);
    /* as the posix driver: the seed is tried again every 5 s until someone is known */
    n->seed = j;
    push(s, (struct ev){.at = s->now + 5000, .type = E_JOIN_RETRY, .a = i, .b = n->gen});
    reschedule(n);
}

void nd_sim_crash(struct nd_sim *s, uint32_t i)
{
    struct snode *n = &s->nodes[i];

    if (!n->sw)
        return;
    nd_swim_free(n->sw); /* its streams close: the peers see them end */
    n->sw = NULL;
    n->wake = UINT64_MAX;
}

void nd_sim_leave(struct nd_sim *s, uint32_t i)
{
    struct snode *n = &s->nodes[i];

    if (!n->sw)
        return;
    nd_swim_leave(n->sw, s->now);
    n->leaving = true;
    push(s, (struct ev){.at = s->now + 10000, .type = E_LEAVE_CHECK, .a = i, .b = n->gen});
    reschedule(n);
}

int nd_sim_user_event(struct nd_sim *s, uint32_t i, const void *name, size_t name_len,
                      const void *payload, size_t payload_len, bool coalesce)
{
    struct snode *nd = &s->nodes[i];
    int r;

    if (!nd->sw)
        return ND_GOSSIP_E_VALUE;
    r = nd_swim_user_event(nd->sw, s->now, name, name_len, payload, payload_len, coalesce);
    reschedule(nd);
    return r;
}

int nd_sim_query(struct nd_sim *s, uint32_t i, const struct nd_swim_query_param *p,
                 uint32_t *timeout_ms)
{
    struct snode *nd = &s->nodes[i];
    int r;

    if (!nd->sw)
        return ND_GOSSIP_E_VALUE;
    r = nd_swim_query(nd->sw, s->now, p, timeout_ms);
    reschedule(nd);
    return r;
}

int nd_sim_set_tags(struct nd_sim *s, uint32_t i, const struct nd_swim_tag *tags, size_t n)
{
    struct snode *nd = &s->nodes[i];
    int r;

    if (!nd->sw)
        return ND_GOSSIP_E_VALUE;
    r = nd_swim_set_tags(nd->sw, s->now, tags, n);
    reschedule(nd);
    return r;
}

void nd_sim_partition(struct nd_sim *s, uint32_t i, uint32_t g)
{
    s->nodes[i].group = g;
}

void nd_sim_set_loss(struct nd_sim *s, double loss)
{
    s->c.loss = loss;
}

static void deliver(struct nd_sim *s, struct ev *e)
{
    struct snode *n = NULL;
    struct conn *c;
    struct nd_swim_addr from;
    uint32_t sid;

    switch (e->type) {
    case E_WAKE:
    case E_LEAVE_CHECK:
    case E_JOIN_RETRY:
        n = &s->nodes[e->a];
        if (!n->sw || n->gen != e->b)
            return;
        if (e->type == E_JOIN_RETRY) {
            const struct nd_swim_metrics *m = nd_swim_metrics(n->sw);

            if (m->members_alive + m->members_suspect <= 1 && n->seed >= 0)
                nd_sim_join(s, e->a, (uint32_t)n->seed);
            return;
        }
        if (e->type == E_LEAVE_CHECK) {
            nd_sim_crash(s, e->a);
            return;
        }
        if (e->at != n->wake)
            return;
        n->wake = UINT64_MAX;
        nd_swim_tick(n->sw, s->now);
        break;
    case E_UDP:
        n = &s->nodes[e->b];
        if (!n->sw || !reachable(s, e->a, e->b))
            return;
        addr_of(e->a, &from);
        nd_swim_packet(n->sw, s->now, &from, e->data, e->len);
        break;
    case E_ACCEPT:
        c = &s->conns[e->a];
        n = &s->nodes[c->node[1]];
        if (!c->used || !c->open[0])
            return;
        if (!n->sw) {
            push(s, (struct ev){.at = s->now + delay(s), .type = E_FAIL, .a = e->a});
            return;
        }
        addr_of(c->node[0], &from);
        if (nd_swim_stream_accept(n->sw, s->now, &from, &sid)) {
            push(s, (struct ev){.at = s->now + delay(s), .type = E_FAIL, .a = e->a});
            break;
        }
        c = &s->conns[e->a]; /* the engine may have opened streams (realloc) */
        c->sid[1] = sid;
        c->gen[1] = n->gen;
        c->open[1] = true;
        break;
    case E_DATA:
        c = &s->conns[e->a];
        if (!c->used || !c->open[e->b])
            return;
        n = &s->nodes[c->node[e->b]];
        if (!n->sw || n->gen != c->gen[e->b] || !reachable(s, c->node[0], c->node[1]))
            return;
        nd_swim_stream_input(n->sw, s->now, c->sid[e->b], e->data, e->len);
        break;
    case E_CLOSE:
    case E_FAIL:
        c = &s->conns[e->a];
        if (!c->used || !c->open[e->b])
            return;
        n = &s->nodes[c->node[e->b]];
        c->open[e->b] = false;
        conn_maybe_free(c);
        if (n->sw && n->gen == c->gen[e->b])
            nd_swim_stream_end(n->sw, s->now, c->sid[e->b]);
        break;
    }
    if (n && n->sw) {
        if (n->leaving && nd_swim_leave_done(n->sw)) {
            nd_sim_crash(s, n->idx);
            return;
        }
        reschedule(n);
    }
}

void nd_sim_run(struct nd_sim *s, uint64_t until_ms)
{
    while (s->nheap && s->heap[0].at <= until_ms) {
        struct ev e = pop(s);

        if (e.at > s->now)
            s->now = e.at;
        deliver(s, &e);
        free(e.data);
    }
    if (until_ms > s->now)
        s->now = until_ms;
}

uint64_t nd_sim_now(const struct nd_sim *s)
{
    return s->now;
}

struct nd_swim *nd_sim_engine(struct nd_sim *s, uint32_t i)
{
    return i < s->c.nodes ? s->nodes[i].sw : NULL;
}

bool nd_sim_running(const struct nd_sim *s, uint32_t i)
{
    return i < s->c.nodes && s->nodes[i].sw;
}

uint32_t nd_sim_count(struct nd_sim *s, uint32_t i, uint8_t state)
{
    const struct nd_swim_metrics *m;

    if (!s->nodes[i].sw)
        return 0;
    m = nd_swim_metrics(s->nodes[i].sw);
    switch (state) {
    case ND_GOSSIP_STATE_ALIVE:
        return m->members_alive;
    case ND_GOSSIP_STATE_SUSPECT:
        return m->members_suspect;
    case ND_GOSSIP_STATE_DEAD:
        return m->members_dead;
    default:
        return m->members_left;
    }
}

int nd_sim_state_of(struct nd_sim *s, uint32_t i, uint32_t j)
{
    struct nd_swim_member m;

    if (!s->nodes[i].sw || nd_swim_find(s->nodes[i].sw, s->nodes[j].name, &m))
        return -1;
    return m.state;
}

uint64_t nd_sim_bytes_sent(const struct nd_sim *s, uint32_t i)
{
    return s->nodes[i].bytes;
}

int nd_sim_index(const char *name)
{
    char *end;
    unsigned long v;

    if (name[0] != 'n' || name[1] < '0' || name[1] > '9')
        return -1;
    v = strtoul(name + 1, &end, 10);
    if (*end || v > 0xffffff)
        return -1;
    return (int)v;
}
