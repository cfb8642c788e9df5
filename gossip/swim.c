/*
 * SWIM membership engine: memberlist 0.2.2 state machine (state.go, suspicion.go, awareness.go,
 * queue.go, net.go) and serf 0.9.4 intents, written over the wire layer. See swim.h and
 * docs/gossip.md.
 */
#include "swim.h"

#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evbuf.h"
#include "keyring.h"
#include "serf.h"
#include "timer.h"
#include "wire.h"

#define container_of(p, T, f) ((T *)(void *)((char *)(p)-offsetof(T, f)))

/* Workspace layout: UDP regions of 64 KiB each, then the stream region (stream_max). */
#define W_UDP 65536u
#define W_PLAIN 0u                 /* decrypted datagram */
#define W_WALK (1u * W_UDP)        /* decompressed datagram */
#define W_OUT (2u * W_UDP)         /* compound being built */
#define W_CRC (3u * W_UDP)         /* + hasCrc */
#define W_ENC (4u * W_UDP)         /* + encryption (W_UDP + overhead) */
#define W_STREAM (5u * W_UDP + 64) /* stream parse scratch */

#define MSG_MAX 2048u      /* one encoded message (names and Meta are at most 512 bytes) */
#define BQ_BUCKETS 64u     /* transmit counts tracked by the broadcast queue */
#define COMPOUND_HDR 2u    /* memberlist compoundHeaderOverhead */
#define COMPOUND_PART 2u   /* memberlist compoundOverhead */
#define LEAVE_WAIT_MS 5000 /* serf BroadcastTimeout */
#define REAP_EVERY_MS 1000
#define SUSP_FROM_MAX 16u
#define PP_SCALE_THRESHOLD 32  /* memberlist pushPullScaleThreshold */
#define QUERY_BUFFER 512u      /* serf QueryBuffer: times of recent queries remembered */
#define QUERY_IDS_PER_TIME 16u /* query IDs remembered per time (ours: serf's list grows) */
#define QUERY_MSG_MAX 2048u    /* a query or response being built */
#define QUERY_REGEX_MAX 256u   /* a tag filter's expression */

static const uint8_t self_vsn[ND_GOSSIP_VSN_LEN] = {1, 5, 2, 2, 5, 5}; /* as serf 0.9.4 */

struct member;

/* A queued broadcast (memberlist limitedBroadcast). Each is about one member (owner); a newer
 * one about the same member and of the same kind replaces it. User events have no owner and
 * never replace each other (serf's broadcast). */
struct bcast {
    struct bcast *next, *prev;
    struct member *owner;
    uint8_t kind;  /* 0 memberlist message, 1 serf intent, 2 serf user event */
    uint8_t queue; /* Q_MEMBER, Q_EVENT */
    bool notify;   /* finishing it advances a graceful leave */
    uint32_t transmits;
    uint32_t len;
    uint8_t msg[];
};

struct blist {
    struct bcast *head, *tail; /* newest first */
};

/* A TransmitLimitedQueue: lists by transmit count. memberlist's messages and serf's intents go
 * in one, serf's user events in another (serf's eventBroadcasts), which a packet takes from
 * only with the room the first left, as memberlist asks its delegate after its own queue. */
enum { Q_MEMBER, Q_EVENT, NQUEUES };
struct bqueue {
    struct blist l[BQ_BUCKETS];
    uint32_t n;
};

struct susp {
    uint64_t start, min, max;
    uint32_t k, n, nfrom;
    uint64_t from[SUSP_FROM_MAX]; /* hashes of the names that suspected it */
};

struct member {
    struct nd_timer tsusp;
    struct nd_swim *sw;
    struct susp *susp;
    struct bcast *bc[2];
    uint64_t hash;
    uint64_t state_change;
    uint64_t serf_ltime;
    uint64_t tokens_at;
    uint64_t pp_ltime; /* push/pull merge scratch */
    uint32_t pp_epoch, pp_left;
    uint32_t tokens;
    uint32_t incarnation;
    uint32_t idx;
    struct nd_swim_addr addr;
    uint8_t vsn[ND_GOSSIP_VSN_LEN];
    uint8_t state;
    bool leaving;
    uint16_t meta_len;
    uint16_t name_len;
    uint8_t *meta;
    char name[];
};

enum { ST_FREE, ST_IN, ST_PP, ST_JOIN, ST_PING };

struct stream {
    struct nd_timer t;
    struct nd_swim *sw;
    uint32_t sid;
    uint8_t kind;
    uint32_t seq;
    uint8_t *in;
    size_t len, cap;
    struct nd_swim_addr peer;
};

struct relay {
    struct nd_timer t;
    struct nd_swim *sw;
    bool used, nack, crc;
    uint32_t local_seq, orig_seq;
    struct nd_swim_addr to;
};

/* The times and IDs of recent queries (serf's queryBuffer), for de-duplication. */
struct qslot {
    uint64_t ltime;
    uint32_t n;
    uint32_t ids[QUERY_IDS_PER_TIME];
};

/* A query this node sent, until its deadline. */
struct outq {
    bool used;
    uint32_t id, handle;
    uint64_t ltime, deadline;
};

struct nd_swim {
    struct nd_swim_config c;
    struct nd_swim_io io;
    struct nd_keyring kr;
    bool keyed;
    struct nd_wheel wheel;
    uint64_t rng;
    uint8_t *ws;
    size_t ws_len;
    bool ws_own;
    char *name;
    size_t name_len;
    uint8_t meta[ND_GOSSIP_META_MAX];
    uint32_t meta_len;

    struct member *self;
    struct member **m;
    uint32_t n, mcap;
    struct member **ht;
    uint32_t htcap;
    uint32_t est;
    uint32_t probe_idx;
    uint32_t seq;
    uint32_t pp_epoch;
    int health;

    struct {
        bool active, due, tcp;
        int phase;
        struct member *m;
        uint32_t seq, expected_nacks, nacks, tcp_sid;
        uint64_t start, interval;
    } probe;
    struct nd_timer t_probe, t_phase, t_gossip, t_pp, t_reap, t_leave, t_reconnect;

    struct bqueue q[NQUEUES];
    struct bcast *done; /* finished during one send, freed after it */

    struct relay *relays;
    struct stream *streams;
    uint16_t stream_gen;

    uint64_t ltime, query_ltime; /* serf Lamport clocks (the event clock is ev's) */
    struct nd_evbuf ev;          /* serf's event clock and recent events */
    struct qslot qbuf[QUERY_BUFFER];
    struct outq outq[ND_SWIM_QUERIES_OUT];
    int leave_phase; /* 0, 1 intent, 2 dead, 3 done */
    bool leave_notified;

    struct nd_swim_metrics mx;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static uint64_t hash_name(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h ? h : 1;
}

static uint64_t rnd(struct nd_swim *sw)
{
    /* xorshift64* */
    uint64_t x = sw->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    sw->rng = x;
    return x * 2685821657736338717ull;
}

static uint32_t rnd_below(struct nd_swim *sw, uint32_t n)
{
    return n ? (uint32_t)(rnd(sw) % n) : 0;
}

static bool gb_eq(struct nd_gbytes b, const char *s, size_t n)
{
    return b.len == n && (n == 0 || memcmp(b.p, s, n) == 0);
}

static struct nd_gbytes gb(const void *p, size_t n)
{
    return (struct nd_gbytes){.p = p, .len = (uint32_t)n};
}

static bool name_ok(struct nd_gbytes n)
{
    return n.len > 0 && n.len <= ND_GOSSIP_NAME_MAX && !memchr(n.p, 0, n.len);
}

static bool addr_eq(const struct nd_swim_addr *a, struct nd_gbytes ip, uint16_t port)
{
    return a->len == ip.len && a->port == port && memcmp(a->ip, ip.p, ip.len) == 0;
}

static void set_addr(struct nd_swim_addr *a, struct nd_gbytes ip, uint16_t port)
{
    memset(a, 0, sizeof *a);
    a->len = (uint8_t)(ip.len == 16 ? 16 : 4);
    if (ip.len == 4 || ip.len == 16)
        memcpy(a->ip, ip.p, ip.len);
    a->port = port;
}

static uint64_t now(const struct nd_swim *sw)
{
    return sw->wheel.now;
}

static uint32_t retransmit_limit(const struct nd_swim *sw)
{
    uint32_t scale = (uint32_t)ceil(log10((double)sw->est + 1.0));
    uint32_t l = sw->c.retransmit_mult * (scale ? scale : 1);

    return l < BQ_BUCKETS ? l : BQ_BUCKETS;
}

static uint64_t suspicion_min(const struct nd_swim *sw)
{
    double n = sw->est < 1 ? 1.0 : (double)sw->est;
    double scale = fmax(1.0, log10(n));

    return (uint64_t)sw->c.suspicion_mult * (uint64_t)(scale * 1000) * sw->c.probe_interval_ms /
           1000;
}

static uint64_t pushpull_scaled(const struct nd_swim *sw)
{
    uint64_t iv = sw->c.pushpull_interval_ms;

    if (sw->est <= PP_SCALE_THRESHOLD)
        return iv;
    return iv * (uint64_t)(ceil(log2((double)sw->est) - log2(PP_SCALE_THRESHOLD)) + 1.0);
}

static uint8_t status_of(const struct member *m)
{
    switch (m->state) {
    case ND_GOSSIP_STATE_LEFT:
        return ND_SWIM_LEFT;
    case ND_GOSSIP_STATE_DEAD:
        return m->leaving ? ND_SWIM_LEFT : ND_SWIM_FAILED;
    default:
        return m->leaving ? ND_SWIM_LEAVING : ND_SWIM_ALIVE;
    }
}

static void member_info(const struct nd_swim *sw, const struct member *m, struct nd_swim_member *o)
{
    o->name = m->name;
    o->name_len = m->name_len;
    o->addr = m->addr;
    o->meta = m->meta;
    o->meta_len = m->meta_len;
    o->incarnation = m->incarnation;
    o->state = m->state;
    o->status = status_of(m);
    memcpy(o->vsn, m->vsn, sizeof o->vsn);
    o->self = m == sw->self;
    o->state_change_ms = m->state_change;
}

static void event(struct nd_swim *sw, const struct member *m, enum nd_swim_event ev)
{
    struct nd_swim_member info;

    if (!sw->io.event || !sw->self)
        return;
    member_info(sw, m, &info);
    sw->io.event(sw->io.arg, &info, ev);
}

static uint32_t *state_gauge(struct nd_swim *sw, uint8_t st)
{
    switch (st) {
    case ND_GOSSIP_STATE_ALIVE:
        return &sw->mx.members_alive;
    case ND_GOSSIP_STATE_SUSPECT:
        return &sw->mx.members_suspect;
    case ND_GOSSIP_STATE_DEAD:
        return &sw->mx.members_dead;
    default:
        return &sw->mx.members_left;
    }
}

static void set_state(struct nd_swim *sw, struct member *m, uint8_t st)
{
    (*state_gauge(sw, m->state))--;
    (*state_gauge(sw, st))++;
    m->state = st;
    m->state_change = now(sw);
}

/* ---- member table ------------------------------------------------------------------------- */

static struct member *find(const struct nd_swim *sw, const void *name, size_t len)
{
    uint64_t h = hash_name(name, len);
    uint32_t mask = sw->htcap - 1, i = (uint32_t)h & mask;
    struct member *m;

    while ((m = sw->ht[i])) {
        if (m->hash == h && m->name_len == len && memcmp(m->name, name, len) == 0)
            return m;
        i = (i + 1) & mask;
    }
    return NULL;
}

static struct member *find_gb(const struct nd_swim *sw, struct nd_gbytes n)
{
    return n.len ? find(sw, n.p, n.len) : NULL;
}

static void ht_put(struct member **ht, uint32_t cap, struct member *m)
{
    uint32_t i = (uint32_t)m->hash & (cap - 1);

    while (ht[i])
        i = (i + 1) & (cap - 1);
    ht[i] = m;
}

/* Linear probing with backward-shift deletion. */
static void ht_del(struct nd_swim *sw, struct member *m)
{
    uint32_t mask = sw->htcap - 1, i = (uint32_t)m->hash & mask, j;

    while (sw->ht[i] != m)
        i = (i + 1) & mask;
    sw->ht[i] = NULL;
    for (j = (i + 1) & mask; sw->ht[j]; j = (j + 1) & mask) {
        uint32_t home = (uint32_t)sw->ht[j]->hash & mask;

        /* move ht[j] to i if its home is not in (i, j] cyclically */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            sw->ht[i] = sw->ht[j];
            sw->ht[j] = NULL;
            i = j;
        }
    }
}

static int ht_grow(struct nd_swim *sw)
{
    uint32_t cap = sw->htcap * 2;
    struct member **ht = calloc(cap, sizeof *ht);

    if (!ht)
        return -1;
    for (uint32_t i = 0; i < sw->n; i++)
        ht_put(ht, cap, sw->m[i]);
    free(sw->ht);
    sw->ht = ht;
    sw->htcap = cap;
    return 0;
}

static void bq_unlink(struct nd_swim *sw, struct bcast *b);
static void bq_finish(struct nd_swim *sw, struct bcast *b);
static void probe_end(struct nd_swim *sw);

static void member_remove(struct nd_swim *sw, struct member *m)
{
    uint32_t i = m->idx;

    for (int k = 0; k < 2; k++)
        if (m->bc[k]) {
            bq_unlink(sw, m->bc[k]);
            bq_finish(sw, m->bc[k]);
        }
    if (sw->probe.active && sw->probe.m == m)
        probe_end(sw);
    nd_timer_cancel(&sw->wheel, &m->tsusp);
    free(m->susp);
    ht_del(sw, m);
    sw->m[i] = sw->m[--sw->n];
    sw->m[i]->idx = i;
    if (sw->probe_idx > sw->n)
        sw->probe_idx = sw->n;
    (*state_gauge(sw, m->state))--;
    free(m->meta);
    free(m);
}

static void on_suspicion_timeout(struct nd_timer *t);

static int set_meta(struct member *m, struct nd_gbytes meta)
{
    uint8_t *p = NULL;

    if (meta.len == m->meta_len && (meta.len == 0 || memcmp(meta.p, m->meta, meta.len) == 0))
        return 0;
    if (meta.len && !(p = malloc(meta.len)))
        return -1;
    if (meta.len)
        memcpy(p, meta.p, meta.len);
    free(m->meta);
    m->meta = p;
    m->meta_len = (uint16_t)meta.len;
    return 1;
}

/* Makes room by forgetting the oldest dead or left member. */
static bool evict_one(struct nd_swim *sw)
{
    struct member *old = NULL;

    for (uint32_t i = 0; i < sw->n; i++) {
        struct member *m = sw->m[i];

        if ((m->state == ND_GOSSIP_STATE_DEAD || m->state == ND_GOSSIP_STATE_LEFT) &&
            m != sw->self && (!old || m->state_change < old->state_change))
            old = m;
    }
    if (!old)
        return false;
    event(sw, old, ND_SWIM_EV_REAP);
    member_remove(sw, old);
    return true;
}

/* A new member in state dead (memberlist does this so that the alive that follows is a join),
 * at a random place in the probe order. */
static struct member *member_add(struct nd_swim *sw, struct nd_gbytes name)
{
    struct member *m;
    uint32_t off;

    if (sw->n >= sw->c.max_members && !evict_one(sw)) {
        sw->mx.members_dropped++;
        return NULL;
    }
    if (sw->n == sw->mcap) {
        uint32_t cap = sw->mcap ? sw->mcap * 2 : 16;
        struct member **a = realloc(sw->m, cap * sizeof *a);

        if (!a)
            return NULL;
        sw->m = a;
        sw->mcap = cap;
    }
    if ((sw->n + 1) * 2 > sw->htcap && ht_grow(sw) < 0)
        return NULL;
    m = calloc(1, sizeof *m + name.len + 1);
    if (!m)
        return NULL;
    m->sw = sw;
    memcpy(m->name, name.p, name.len);
    m->name_len = (uint16_t)name.len;
    m->hash = hash_name(name.p, name.len);
    m->state = ND_GOSSIP_STATE_DEAD;
    m->state_change = now(sw);
    m->tokens = sw->c.alive_burst;
    m->tokens_at = now(sw);
    m->tsusp.cb = on_suspicion_timeout;
    sw->mx.members_dead++;
    ht_put(sw->ht, sw->htcap, m);
    off = rnd_below(sw, sw->n + 1);
    sw->m[sw->n] = m;
    m->idx = sw->n;
    if (off != sw->n) {
        sw->m[sw->n] = sw->m[off];
        sw->m[sw->n]->idx = sw->n;
        sw->m[off] = m;
        m->idx = off;
    }
    sw->n++;
    sw->est++;
    return m;
}

static void shuffle(struct nd_swim *sw)
{
    for (uint32_t i = sw->n; i > 1; i--) {
        uint32_t j = rnd_below(sw, i);
        struct member *t = sw->m[i - 1];

        sw->m[i - 1] = sw->m[j];
        sw->m[j] = t;
        sw->m[i - 1]->idx = i - 1;
        sw->m[j]->idx = j;
    }
}

/* The per-member rate limit on accepted incarnation changes (hostile floods). */
static bool take_token(struct nd_swim *sw, struct member *m)
{
    uint64_t t = now(sw), rate = sw->c.alive_rate_ms ? sw->c.alive_rate_ms : 1;

    if (t > m->tokens_at) {
        uint64_t add = (t - m->tokens_at) / rate;

        if (add) {
            m->tokens = (uint32_t)(m->tokens + add > sw->c.alive_burst ? sw->c.alive_burst
                                                                       : m->tokens + add);
            m->tokens_at += add * rate;
        }
    }
    if (m->tokens == 0) {
        sw->mx.alive_limited++;
        return false;
    }
    m->tokens--;
    return true;
}

/* ---- broadcast queue (memberlist TransmitLimitedQueue) ------------------------------------ */

static void bq_unlink(struct nd_swim *sw, struct bcast *b)
{
    struct blist *l = &sw->q[b->queue].l[b->transmits];

    if (b->prev)
        b->prev->next = b->next;
    else
        l->head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        l->tail = b->prev;
    b->next = b->prev = NULL;
    sw->q[b->queue].n--;
}

static void bq_push_head(struct nd_swim *sw, struct bcast *b)
{
    struct blist *l = &sw->q[b->queue].l[b->transmits];

    b->prev = NULL;
    b->next = l->head;
    if (l->head)
        l->head->prev = b;
    else
        l->tail = b;
    l->head = b;
    sw->q[b->queue].n++;
}

/* The broadcast is finished (sent enough, replaced, or dropped): release it. */
static void bq_finish(struct nd_swim *sw, struct bcast *b)
{
    if (b->owner && b->owner->bc[b->kind] == b)
        b->owner->bc[b->kind] = NULL;
    if (b->notify)
        sw->leave_notified = true;
    free(b);
}

static struct bcast *bq_new(struct member *owner, int kind, const uint8_t *msg, size_t len,
                            bool notify)
{
    struct bcast *b = malloc(sizeof *b + len);

    if (!b)
        return NULL;
    b->owner = owner;
    b->kind = (uint8_t)kind;
    b->queue = kind == 2 ? Q_EVENT : Q_MEMBER;
    b->notify = notify;
    b->transmits = 0;
    b->len = (uint32_t)len;
    memcpy(b->msg, msg, len);
    return b;
}

/* Queues b; past max_queue, drops the oldest of those sent most (of b's queue). */
static void bq_add(struct nd_swim *sw, struct bcast *b)
{
    struct bqueue *q = &sw->q[b->queue];

    bq_push_head(sw, b);
    while (q->n > sw->c.max_queue) {
        for (int t = BQ_BUCKETS - 1; t >= 0; t--)
            if (q->l[t].tail) {
                struct bcast *o = q->l[t].tail;

                bq_unlink(sw, o);
                bq_finish(sw, o);
                if (b->queue == Q_EVENT)
                    sw->mx.events_queue_dropped++;
                else
                    sw->mx.queue_dropped++;
                break;
            }
    }
}

static void queue(struct nd_swim *sw, struct member *owner, int kind, const uint8_t *msg,
                  size_t len, bool notify)
{
    struct bcast *b;

    if (owner->bc[kind]) {
        bq_unlink(sw, owner->bc[kind]);
        bq_finish(sw, owner->bc[kind]);
    }
    if (!(b = bq_new(owner, kind, msg, len, notify))) {
        sw->mx.queue_dropped++;
        return;
    }
    owner->bc[kind] = b;
    bq_add(sw, b);
}

/* A user event message ([8][3][msgpack]) to gossip: it has no owner and replaces nothing. */
static void queue_event(struct nd_swim *sw, const uint8_t *msg, size_t len)
{
    struct bcast *b = bq_new(NULL, 2, msg, len, false);

    if (!b) {
        sw->mx.events_queue_dropped++;
        return;
    }
    bq_add(sw, b);
}

/* Picks broadcasts of queue q for a packet: the least sent first, newest first among equals,
 * each that fits in what is left of `limit` after *used bytes (each costs `overhead` more).
 * Parts point into the queue entries; finished entries wait on sw->done until
 * bq_flush_done(). */
static size_t queue_broadcasts(struct nd_swim *sw, struct bqueue *q, size_t overhead, size_t limit,
                               size_t *usedp, struct nd_gbytes *parts, size_t maxparts)
{
    uint32_t tl = retransmit_limit(sw);
    size_t used = *usedp, n = 0;
    struct bcast *again = NULL;

    for (uint32_t t = 0; t < BQ_BUCKETS && n < maxparts; t++) {
        struct bcast *b = q->l[t].head, *next;

        for (; b && n < maxparts; b = next) {
            next = b->next;
            if (used + overhead >= limit)
                break;
            if (b->transmits >= tl) { /* the cluster shrank: drop what is sent enough */
                bq_unlink(sw, b);
                b->next = sw->done;
                sw->done = b;
                continue;
            }
            if (b->len > limit - used - overhead)
                continue;
            used += overhead + b->len;
            parts[n++] = gb(b->msg, b->len);
            bq_unlink(sw, b);
            b->transmits++;
            if (b->transmits >= tl) {
                b->next = sw->done;
                sw->done = b;
            } else {
                b->next = again;
                again = b;
            }
        }
    }
    while (again) {
        struct bcast *b = again;

        again = b->next;
        bq_push_head(sw, b);
    }
    *usedp = used;
    return n;
}

/* Broadcasts for a packet: memberlist's and serf's intents first, then user events in the room
 * left (memberlist's getBroadcasts, then serf's GetBroadcasts). */
static size_t get_broadcasts(struct nd_swim *sw, size_t overhead, size_t limit,
                             struct nd_gbytes *parts, size_t maxparts)
{
    size_t used = 0, n;

    n = queue_broadcasts(sw, &sw->q[Q_MEMBER], overhead, limit, &used, parts, maxparts);
    return n +
           queue_broadcasts(sw, &sw->q[Q_EVENT], overhead, limit, &used, parts + n, maxparts - n);
}

static void bq_flush_done(struct nd_swim *sw)
{
    while (sw->done) {
        struct bcast *b = sw->done;

        sw->done = b->next;
        bq_finish(sw, b);
    }
}

/* ---- sending ------------------------------------------------------------------------------ */

static bool want_crc(const struct member *m)
{
    return m && m->vsn[1] >= 5;
}

/* Sends one datagram: hasCrc when the peer speaks protocol 5, then encryption. */
static void send_raw(struct nd_swim *sw, const struct nd_swim_addr *to, bool crc,
                     const uint8_t *msg, size_t len)
{
    const uint8_t *p = msg;
    size_t n = len;

    if (crc) {
        if (nd_gossip_crc_wrap(p, n, sw->ws + W_CRC, W_UDP, &n))
            return;
        p = sw->ws + W_CRC;
    }
    if (sw->keyed) {
        uint8_t nonce[ND_GOSSIP_NONCE_LEN];

        sw->io.random(sw->io.arg, nonce, sizeof nonce);
        if (nd_gossip_encrypt(&sw->kr, nonce, p, n, NULL, 0, sw->ws + W_ENC, W_UDP + 64, &n))
            return;
        p = sw->ws + W_ENC;
    }
    sw->mx.pkts_out++;
    sw->mx.bytes_out += n;
    sw->io.send(sw->io.arg, to, p, n);
}

static size_t crypt_overhead(const struct nd_swim *sw)
{
    return sw->keyed ? ND_GOSSIP_CRYPT_OVERHEAD : 0;
}

/* Sends msg with as many broadcasts piggybacked as fit (memberlist sendMsg). */
static void send_msg(struct nd_swim *sw, const struct nd_swim_addr *to, bool crc,
                     const uint8_t *msg, size_t len)
{
    struct nd_gbytes parts[ND_GOSSIP_COMPOUND_MAX];
    size_t budget = sw->c.udp_size, n, out;

    parts[0] = gb(msg, len);
    n = 1;
    if (budget > len + COMPOUND_HDR + crypt_overhead(sw))
        n += get_broadcasts(sw, COMPOUND_PART, budget - len - COMPOUND_HDR - crypt_overhead(sw),
                            parts + 1, ND_GOSSIP_COMPOUND_MAX - 1);
    sw->mx.msgs_out += n;
    if (n == 1) {
        send_raw(sw, to, crc, msg, len);
    } else if (nd_gossip_compound_encode(parts, n, sw->ws + W_OUT, W_UDP, &out) == 0) {
        send_raw(sw, to, crc, sw->ws + W_OUT, out);
    }
    bq_flush_done(sw);
}

static size_t enc(const struct nd_gossip_msg *m, uint8_t *buf)
{
    size_t len = 0;

    if (nd_gossip_encode(m, buf, MSG_MAX, &len))
        return 0;
    return len;
}

static void encode_alive(struct nd_swim *sw, const struct member *m, uint8_t *buf, size_t *len)
{
    struct nd_gossip_msg a = {.type = ND_GOSSIP_ALIVE};

    (void)sw;
    a.u.alive.incarnation = m->incarnation;
    a.u.alive.node = gb(m->name, m->name_len);
    a.u.alive.addr = gb(m->addr.ip, m->addr.len);
    a.u.alive.port = m->addr.port;
    a.u.alive.meta = m->meta_len ? gb(m->meta, m->meta_len) : gb(NULL, 0);
    memcpy(a.u.alive.vsn, m->vsn, ND_GOSSIP_VSN_LEN);
    *len = enc(&a, buf);
}

static void queue_msg(struct nd_swim *sw, struct member *owner, const struct nd_gossip_msg *msg,
                      bool notify)
{
    uint8_t buf[MSG_MAX];
    size_t len = enc(msg, buf);

    if (len)
        queue(sw, owner, 0, buf, len, notify);
}

static void queue_alive(struct nd_swim *sw, struct member *m)
{
    uint8_t buf[MSG_MAX];
    size_t len;

    encode_alive(sw, m, buf, &len);
    if (len)
        queue(sw, m, 0, buf, len, false);
}

static void queue_susp_dead(struct nd_swim *sw, struct member *m, uint8_t type, uint32_t inc,
                            struct nd_gbytes from, bool notify)
{
    struct nd_gossip_msg d = {.type = type};

    d.u.suspect.incarnation = inc;
    d.u.suspect.node = gb(m->name, m->name_len);
    d.u.suspect.from = from;
    queue_msg(sw, m, &d, notify);
}

static void fill_source(struct nd_swim *sw, struct nd_gbytes *addr, uint16_t *port,
                        struct nd_gbytes *node)
{
    *addr = gb(sw->c.addr.ip, sw->c.addr.len);
    *port = sw->c.addr.port;
    *node = gb(sw->name, sw->name_len);
}

/* ---- serf clocks and intents -------------------------------------------------------------- */

static void witness(uint64_t *clock, uint64_t v)
{
    if (v >= *clock)
        *clock = v + 1;
}

static void queue_serf(struct nd_swim *sw, struct member *owner, const struct nd_serf_msg *sm,
                       bool notify)
{
    uint8_t buf[MSG_MAX];
    size_t len;

    buf[0] = ND_GOSSIP_USER;
    if (nd_serf_encode(sm, buf + 1, sizeof buf - 1, &len) == 0)
        queue(sw, owner, 1, buf, len + 1, notify);
}

/* serf broadcastJoin: our join intent at the current time. */
static void broadcast_join(struct nd_swim *sw)
{
    struct nd_serf_msg sm = {.type = ND_SERF_JOIN};

    sm.u.join.ltime = sw->ltime;
    sm.u.join.node = gb(sw->name, sw->name_len);
    if (sw->self->serf_ltime < sw->ltime)
        sw->self->serf_ltime = sw->ltime;
    sw->self->leaving = false;
    queue_serf(sw, sw->self, &sm, false);
}

/* serf handleNodeJoinIntent: true if it is news (to be re-broadcast). */
static bool join_intent(struct nd_swim *sw, struct member *m, uint64_t ltime)
{
    witness(&sw->ltime, ltime);
    if (!m || ltime <= m->serf_ltime)
        return false;
    m->serf_ltime = ltime;
    if (m->leaving && (m->state == ND_GOSSIP_STATE_ALIVE || m->state == ND_GOSSIP_STATE_SUSPECT))
        m->leaving = false;
    return true;
}

/* serf handleNodeLeaveIntent. */
static bool leave_intent(struct nd_swim *sw, struct member *m, uint64_t ltime)
{
    witness(&sw->ltime, ltime);
    if (!m || ltime <= m->serf_ltime)
        return false;
    if (m == sw->self) {
        if (!sw->leave_phase)
            broadcast_join(sw); /* refute an old leave intent */
        return false;
    }
    m->serf_ltime = ltime;
    if (m->state == ND_GOSSIP_STATE_LEFT)
        return true;
    m->leaving = true;
    return true;
}

/* serf handleUserEvent: records the event (evbuf.h), counts, and hands it to io->user_event.
 * True when it is new (a gossiped one is then re-broadcast). */
static bool accept_event(struct nd_swim *sw, uint64_t ltime, struct nd_gbytes name,
                         struct nd_gbytes payload, bool cc, bool self, bool pushpull)
{
    enum nd_evbuf_verdict v = nd_evbuf_accept(&sw->ev, ltime, name, payload);
    struct nd_swim_user_event ev = {.ltime = ltime,
                                    .name = name.p,
                                    .name_len = name.len,
                                    .payload = payload.p,
                                    .payload_len = payload.len,
                                    .coalesce = cc,
                                    .self = self,
                                    .pushpull = pushpull};

    switch (v) {
    case ND_EVBUF_NEW:
        if (!self)
            sw->mx.events_received++;
        break;
    case ND_EVBUF_DUPLICATE:
        sw->mx.events_duplicate++;
        return false;
    case ND_EVBUF_BEFORE_JOIN:
        sw->mx.events_before_join++;
        break;
    case ND_EVBUF_TOO_OLD:
        sw->mx.events_too_old++;
        break;
    case ND_EVBUF_TOO_LARGE:
        sw->mx.events_too_large++;
        break;
    default:
        sw->mx.events_buffer_full++;
        break;
    }
    if (v != ND_EVBUF_NEW)
        ev.refused = nd_evbuf_verdict_name(v);
    if (sw->io.user_event)
        sw->io.user_event(sw->io.arg, &ev);
    return v == ND_EVBUF_NEW;
}

/* ---- serf queries (serf.go handleQuery / handleQueryResponse, internal_query.go) ---------- */

static void advance(struct nd_swim *sw, uint64_t now_ms);
static void handle_query_response(struct nd_swim *sw, const struct nd_serf_query_response *r);

/* Sends one serf message ([type][msgpack]) as a memberlist user message to addr, as serf's
 * SendToAddress does: no hasCrc (memberlist finds no node by address), encrypted when keyed. */
static void send_serf_to(struct nd_swim *sw, const struct nd_swim_addr *to, const uint8_t *serf,
                         size_t len)
{
    uint8_t buf[QUERY_MSG_MAX + 2];

    if (len + 1 > sizeof buf)
        return;
    buf[0] = ND_GOSSIP_USER;
    memcpy(buf + 1, serf, len);
    sw->mx.msgs_out++;
    send_raw(sw, to, false, buf, len + 1);
}

/* serf relayResponse: the response again through relay_factor random alive members (protocol
 * max >= 5, not us), each forwarding it to the querier. Only when there are that many. */
static void relay_response(struct nd_swim *sw, const struct nd_serf_query *q, const uint8_t *resp,
                           size_t rlen)
{
    struct nd_serf_msg rm = {.type = ND_SERF_RELAY};
    struct member *picked[255];
    uint8_t buf[QUERY_MSG_MAX + 1];
    uint32_t k = 0, live = 0;
    size_t len;

    if (!q->relay_factor)
        return;
    for (uint32_t i = 0; i < sw->n; i++)
        live += status_of(sw->m[i]) == ND_SWIM_ALIVE;
    if (live < (uint32_t)q->relay_factor + 1)
        return;
    rm.u.relay.dest_ip = q->addr;
    rm.u.relay.dest_port = q->port;
    rm.u.relay.dest_name = q->source_node;
    rm.u.relay.inner = gb(resp, rlen);
    if (nd_serf_encode(&rm, buf, sizeof buf, &len) || len > ND_SWIM_QUERY_RESPONSE_MAX) {
        sw->mx.queries_dropped++;
        return;
    }
    for (uint32_t i = 0; i < 3 * sw->n && k < q->relay_factor; i++) { /* kRandomMembers */
        struct member *m = sw->m[rnd_below(sw, sw->n)];
        bool dup = false;

        if (m == sw->self || status_of(m) != ND_SWIM_ALIVE || m->vsn[1] < 5)
            continue;
        for (uint32_t j = 0; j < k; j++)
            dup |= picked[j] == m;
        if (!dup)
            picked[k++] = m;
    }
    for (uint32_t j = 0; j < k; j++) {
        send_serf_to(sw, &picked[j]->addr, buf, len);
        sw->mx.queries_relayed++;
    }
}

/* An ack or a response to q, sent to the querier (and relayed). payload NULL: an ack. */
static void query_respond(struct nd_swim *sw, const struct nd_serf_query *q, bool ack,
                          const uint8_t *payload, size_t plen)
{
    struct nd_serf_msg r = {.type = ND_SERF_QUERY_RESPONSE};
    struct nd_swim_addr to;
    uint8_t buf[QUERY_MSG_MAX];
    size_t len;

    r.u.response.ltime = q->ltime;
    r.u.response.id = q->id;
    r.u.response.from = gb(sw->name, sw->name_len);
    r.u.response.flags = ack ? ND_SERF_QUERY_FLAG_ACK : 0;
    r.u.response.payload = gb(payload, plen);
    if (nd_serf_encode(&r, buf, sizeof buf, &len) || len > ND_SWIM_QUERY_RESPONSE_MAX) {
        sw->mx.queries_dropped++; /* serf's checkResponseSize */
        return;
    }
    if (ack)
        sw->mx.query_acks_sent++;
    else
        sw->mx.query_responses_sent++;
    if (addr_eq(&sw->c.addr, q->addr, q->port) && gb_eq(q->source_node, sw->name, sw->name_len)) {
        /* our own query: delivered here (serf sends it to itself over UDP, which a user-space
         * stack would not loop back) */
        handle_query_response(sw, &r.u.response);
        return;
    }
    set_addr(&to, q->addr, q->port);
    send_serf_to(sw, &to, buf, len);
    relay_response(sw, q, buf, len);
}

/* A response to q carrying a serf message (key response, conflict response) as its payload. */
static void query_respond_msg(struct nd_swim *sw, const struct nd_serf_query *q,
                              const struct nd_serf_msg *m)
{
    uint8_t buf[QUERY_MSG_MAX];
    size_t len;

    if (nd_serf_encode(m, buf, sizeof buf, &len)) {
        sw->mx.queries_dropped++;
        return;
    }
    query_respond(sw, q, false, buf, len);
}

/* Does a tag filter's expression mean the same to glibc's regcomp (POSIX ERE with GNU
 * extensions) as to Go's RE2? Refused: escapes of letters and digits but \w \W \s \S \b \B
 * (RE2's \d, \pL, \A, \z..., and back-references, are literals or unknown to POSIX), glibc's
 * \< \> \` \' anchors, any backslash in a bracket expression (RE2 escapes there, POSIX does
 * not), and a repetition of a repetition (a**, a+{2}: RE2 refuses them) but lazy ones (a*?). */
static bool regex_portable(const char *e)
{
    for (size_t i = 0; e[i]; i++) {
        char c = e[i];

        if (c == '\\') {
            char x = e[i + 1];

            if (!x || (isalnum((unsigned char)x) ? !strchr("wWsSbB", x) : !!strchr("<>`'", x)))
                return false;
            i++;
        } else if (c == '[') {
            size_t j = i + 1;

            if (e[j] == '^')
                j++;
            if (e[j] == ']') /* a leading ] is a member */
                j++;
            for (; e[j] && e[j] != ']'; j++) {
                if (e[j] == '\\')
                    return false;
                if (e[j] == '[' && e[j + 1] && strchr(":.=", e[j + 1])) { /* [:alpha:] */
                    char d = e[j + 1];

                    for (j += 2; e[j] && !(e[j] == d && e[j + 1] == ']'); j++)
                        ;
                    if (!e[j])
                        return false;
                    j++;
                }
            }
            if (!e[j])
                return false;
            i = j;
        } else if (i > 0 && strchr("*+{", c) && strchr("*+?}", e[i - 1]) &&
                   (i < 2 || e[i - 2] != '\\')) {
            return false;
        }
    }
    return true;
}

/* A tag filter's expression compiled into *re (regfree it), or false: too long, a NUL, not
 * portable, or not compilable. */
static bool tag_regex(struct nd_gbytes e, regex_t *re)
{
    char expr[QUERY_REGEX_MAX + 1];

    if (e.len > QUERY_REGEX_MAX || memchr(e.p, 0, e.len))
        return false;
    memcpy(expr, e.p, e.len);
    expr[e.len] = 0;
    return regex_portable(expr) && regcomp(re, expr, REG_EXTENDED | REG_NOSUB) == 0;
}

/* serf shouldProcessQuery: every filter must match. A tag filter's expression is a POSIX
 * extended regular expression here (Go's is RE2): unanchored, searched in the tag's value (an
 * absent tag is ""). What would not mean the same to both is refused (regex_portable; this
 * includes back-references, with which glibc's matcher is exponential). */
static bool query_filters_match(struct nd_swim *sw, const struct nd_serf_query *q)
{
    struct nd_gbytes rest = q->filters;

    for (uint32_t i = 0; i < q->nfilters; i++) {
        struct nd_serf_filter f;

        if (nd_serf_filter_next(&rest, &f)) {
            sw->mx.query_bad_filters++;
            return false;
        }
        if (f.type == ND_SERF_FILTER_NODE) {
            struct nd_gbytes names = f.nodes, n;
            bool found = false;

            for (uint32_t k = 0; k < f.nnodes; k++) {
                if (nd_serf_left_next(&names, &n)) {
                    sw->mx.query_bad_filters++;
                    return false;
                }
                found |= gb_eq(n, sw->name, sw->name_len);
            }
            if (!found)
                return false;
        } else if (f.type == ND_SERF_FILTER_TAG) {
            struct nd_serf_tag tags[ND_GOSSIP_META_MAX / 2];
            char value[ND_GOSSIP_META_MAX + 1] = "";
            size_t nt = 0;
            regex_t re;
            int rc;

            if (!tag_regex(f.expr, &re)) {
                sw->mx.query_bad_filters++;
                return false;
            }
            nd_serf_tags_decode(sw->self->meta, sw->self->meta_len, tags, ND_GOSSIP_META_MAX / 2,
                                &nt);
            for (size_t t = 0; t < nt; t++)
                if (tags[t].key.len == f.tag.len &&
                    (f.tag.len == 0 || !memcmp(tags[t].key.p, f.tag.p, f.tag.len))) {
                    memcpy(value, tags[t].value.p, tags[t].value.len);
                    value[tags[t].value.len] = 0;
                }
            rc = regexec(&re, value, 0, NULL, 0);
            regfree(&re);
            if (rc)
                return false;
        } else {
            sw->mx.query_bad_filters++; /* serf: "unrecognized filter type" */
            return false;
        }
    }
    return true;
}

/* _serf_install-key, _serf_use-key, _serf_remove-key, _serf_list-keys on our keyring. */
static void query_keys(struct nd_swim *sw, const struct nd_serf_query *q, const char *op)
{
    struct nd_serf_msg r = {.type = ND_SERF_KEY_RESPONSE};
    struct nd_serf_key_response *kr = &r.u.key_resp;
    char b64[ND_GOSSIP_KEYRING_MAX][48], msg[96];
    struct nd_gbytes keys[ND_GOSSIP_KEYRING_MAX];
    bool list = !strcmp(op, "list");
    struct nd_serf_msg req;
    const char *err = NULL;
    int e = 0;

    if (!sw->keyed) {
        err = list ? "Keyring is empty (encryption not enabled)"
                   : "No keyring to modify (encryption not enabled)";
    } else if (!list) {
        if (q->payload.len < 1 || nd_serf_decode(q->payload.p, q->payload.len, &req) ||
            req.type != ND_SERF_KEY_REQUEST) {
            sw->mx.decode_errors++;
            err = "";
        } else if (!strcmp(op, "install")) {
            e = nd_keyring_add(&sw->kr, req.u.key_req.key.p, req.u.key_req.key.len);
            err = e == ND_GOSSIP_E_KEY ? "key size must be 16, 24 or 32 bytes"
                  : e                  ? "keyring is full"
                                       : NULL;
        } else if (!strcmp(op, "use")) {
            e = nd_keyring_use(&sw->kr, req.u.key_req.key.p, req.u.key_req.key.len);
            err = e ? "Requested key is not in the keyring" : NULL;
        } else {
            e = nd_keyring_remove(&sw->kr, req.u.key_req.key.p, req.u.key_req.key.len);
            err = e ? "Removing the primary key is not allowed" : NULL;
        }
        if (!err) {
            sw->mx.keyring_changes++;
            if (sw->io.keyring)
                sw->io.keyring(sw->io.arg, op, q->source_node.p, q->source_node.len);
        }
    }
    kr->result = err == NULL;
    kr->message = gb(err ? err : "", err ? strlen(err) : 0);
    if (list && !err) {
        for (uint32_t i = 0; i < sw->kr.n; i++)
            keys[i] = gb(b64[i], nd_gossip_key_to_base64(sw->kr.keys[i], sw->kr.lens[i], b64[i]));
        kr->keys_list = keys;
        kr->nkeys = sw->kr.n;
        kr->primary_key = keys[0];
        /* serf keyListResponseWithCorrectSize: fewer keys until the response fits */
        for (;;) {
            uint8_t buf[QUERY_MSG_MAX];
            size_t len;

            if (nd_serf_encode(&r, buf, sizeof buf, &len) == 0 &&
                len + sw->name_len + 64 <= ND_SWIM_QUERY_RESPONSE_MAX)
                break;
            if (kr->nkeys == 0)
                return;
            kr->nkeys--;
            snprintf(msg, sizeof msg, "truncated key list response, showing first %u of %u keys",
                     kr->nkeys, sw->kr.n);
            kr->message = gb(msg, strlen(msg));
        }
    }
    query_respond_msg(sw, q, &r);
}

/* _serf_conflict: our view of the member named by the payload (nil if unknown); none about
 * ourselves. */
static void query_conflict(struct nd_swim *sw, const struct nd_serf_query *q)
{
    struct nd_serf_msg r = {.type = ND_SERF_CONFLICT_RESPONSE};
    struct nd_serf_tag tags[ND_GOSSIP_META_MAX / 2];
    struct member *m;
    size_t nt = 0;

    if (gb_eq(q->payload, sw->name, sw->name_len))
        return;
    m = find_gb(sw, q->payload);
    if (!m) {
        r.u.conflict.nil = true;
    } else {
        r.u.conflict.name = gb(m->name, m->name_len);
        r.u.conflict.addr = gb(m->addr.ip, m->addr.len);
        r.u.conflict.port = m->addr.port;
        nd_serf_tags_decode(m->meta, m->meta_len, tags, ND_GOSSIP_META_MAX / 2, &nt);
        r.u.conflict.tags = tags;
        r.u.conflict.ntags = (uint32_t)nt;
        r.u.conflict.status = (uint8_t)(status_of(m) + 1); /* serf StatusAlive is 1 */
        memcpy(r.u.conflict.vsn, m->vsn, ND_GOSSIP_VSN_LEN);
    }
    query_respond_msg(sw, q, &r);
}

/* serf handleQuery, and the answer: true if the query is new (to be re-broadcast). */
static bool handle_query(struct nd_swim *sw, const struct nd_serf_query *q, size_t raw_len)
{
    struct qslot *s = &sw->qbuf[q->ltime % QUERY_BUFFER];
    uint64_t cur;

    witness(&sw->query_ltime, q->ltime);
    cur = sw->query_ltime;
    if (cur > QUERY_BUFFER && q->ltime < cur - QUERY_BUFFER) {
        sw->mx.queries_dropped++; /* serf: "received old query" */
        return false;
    }
    if (s->ltime == q->ltime && s->n) {
        for (uint32_t i = 0; i < s->n; i++)
            if (s->ids[i] == q->id) {
                sw->mx.queries_duplicate++;
                return false;
            }
        if (s->n == QUERY_IDS_PER_TIME) {
            sw->mx.queries_dropped++;
            return false;
        }
    } else {
        s->ltime = q->ltime;
        s->n = 0;
    }
    s->ids[s->n++] = q->id;
    if (raw_len > ND_SWIM_QUERY_MAX || (q->addr.len != 4 && q->addr.len != 16) || !q->port ||
        !name_ok(q->source_node)) {
        sw->mx.queries_dropped++; /* recorded (so copies are duplicates), not answered */
        return false;
    }
    sw->mx.queries_received++;
    if (!query_filters_match(sw, q)) {
        sw->mx.queries_filtered++;
        return !(q->flags & ND_SERF_QUERY_FLAG_NO_BROADCAST);
    }
    if (q->flags & ND_SERF_QUERY_FLAG_ACK)
        query_respond(sw, q, true, NULL, 0);
    /* the deadline: the answer below is synchronous, so only a timeout <= 0 is already past */
    if (q->timeout_ns > 0) {
        static const char pfx[] = "_serf_";
        const char *n = (const char *)q->name.p;
        size_t nl = q->name.len;

        if (nl >= 6 && !memcmp(n, pfx, 6)) {
            n += 6, nl -= 6;
            if (gb_eq(gb(n, nl), "ping", 4))
                ; /* serf answers a ping with its ack only */
            else if (gb_eq(gb(n, nl), "conflict", 8))
                query_conflict(sw, q);
            else if (gb_eq(gb(n, nl), "install-key", 11))
                query_keys(sw, q, "install");
            else if (gb_eq(gb(n, nl), "use-key", 7))
                query_keys(sw, q, "use");
            else if (gb_eq(gb(n, nl), "remove-key", 10))
                query_keys(sw, q, "remove");
            else if (gb_eq(gb(n, nl), "list-keys", 9))
                query_keys(sw, q, "list");
            else
                sw->mx.queries_dropped++; /* serf: "Unhandled internal query" */
        } else if (sw->io.query) {
            struct nd_swim_query uq = {.ltime = q->ltime,
                                       .id = q->id,
                                       .name = q->name.p,
                                       .name_len = q->name.len,
                                       .payload = q->payload.p,
                                       .payload_len = q->payload.len,
                                       .from = q->source_node.p,
                                       .from_len = q->source_node.len};
            uint8_t resp[ND_SWIM_QUERY_RESPONSE_MAX];
            size_t rl = 0;

            if (sw->io.query(sw->io.arg, &uq, resp, sizeof resp, &rl) > 0)
                query_respond(sw, q, false, resp, rl);
        }
    } else {
        sw->mx.queries_late++;
    }
    return !(q->flags & ND_SERF_QUERY_FLAG_NO_BROADCAST);
}

/* serf handleQueryResponse: an ack or a response to one of our queries, before its deadline. */
static void handle_query_response(struct nd_swim *sw, const struct nd_serf_query_response *r)
{
    for (uint32_t i = 0; i < ND_SWIM_QUERIES_OUT; i++) {
        struct outq *o = &sw->outq[i];

        if (!o->used || o->ltime != r->ltime || o->id != r->id)
            continue;
        if (now(sw) > o->deadline) {
            o->used = false;
            break;
        }
        bool ack = r->flags & ND_SERF_QUERY_FLAG_ACK;
        struct nd_swim_query_reply rep = {.handle = o->handle,
                                          .ack = ack,
                                          .from = r->from.p,
                                          .from_len = r->from.len,
                                          .payload = r->payload.p,
                                          .payload_len = r->payload.len};

        if (ack)
            sw->mx.query_acks_received++;
        else
            sw->mx.query_responses_received++;
        if (sw->io.query_reply)
            sw->io.query_reply(sw->io.arg, &rep);
        return;
    }
    sw->mx.query_replies_dropped++; /* serf: "reply for non-running query" */
}

/* A relay message: forward its query response to the querier (serf forwards any message; we
 * forward only query responses, to an address that can be one). */
static void handle_relay(struct nd_swim *sw, const struct nd_serf_relay *rl)
{
    struct nd_swim_addr to;

    if ((rl->dest_ip.len != 4 && rl->dest_ip.len != 16) || !rl->dest_port || rl->inner.len < 2 ||
        rl->inner.p[0] != ND_SERF_QUERY_RESPONSE || rl->inner.len > ND_SWIM_QUERY_RESPONSE_MAX) {
        sw->mx.queries_dropped++;
        return;
    }
    set_addr(&to, rl->dest_ip, rl->dest_port);
    send_serf_to(sw, &to, rl->inner.p, rl->inner.len);
    sw->mx.queries_relayed++;
}

uint32_t nd_swim_query_timeout_ms(const struct nd_swim *sw)
{
    double scale = ceil(log10((double)sw->est + 1.0));

    return (uint32_t)(sw->c.gossip_interval_ms * ND_SWIM_QUERY_TIMEOUT_MULT *
                      (scale < 1 ? 1 : scale));
}

int nd_swim_query(struct nd_swim *sw, uint64_t now_ms, const struct nd_swim_query_param *p,
                  uint32_t *timeout_ms)
{
    struct nd_serf_msg sm = {.type = ND_SERF_QUERY};
    struct nd_serf_query *q = &sm.u.query;
    uint8_t buf[QUERY_MSG_MAX + 1], fbuf[QUERY_MSG_MAX];
    struct nd_gbytes filt[1 + ND_SWIM_QUERY_TAGS_MAX];
    size_t off = 0; /* fbuf used by the filters */
    struct outq *o = NULL;
    size_t len;
    int e;

    advance(sw, now_ms);
    if (sw->leave_phase)
        return ND_GOSSIP_E_VALUE;
    for (uint32_t i = 0; i < ND_SWIM_QUERIES_OUT; i++) {
        if (sw->outq[i].used && now(sw) > sw->outq[i].deadline)
            sw->outq[i].used = false;
        if (!sw->outq[i].used && !o)
            o = &sw->outq[i];
    }
    if (!o)
        return ND_GOSSIP_E_LIMIT;
    if (p->ntags > ND_SWIM_QUERY_TAGS_MAX)
        return ND_GOSSIP_E_LIMIT;
    for (size_t i = 0; i < p->ntags; i++) { /* what we would refuse on receipt, we do not send */
        regex_t re;

        if (!tag_regex(p->tag_exprs[i], &re))
            return ND_GOSSIP_E_VALUE;
        regfree(&re);
    }
    *timeout_ms = p->timeout_ms ? p->timeout_ms : nd_swim_query_timeout_ms(sw);
    q->filter_list = filt; /* the node filter first, as serf's Query */
    if (p->nnodes) {
        struct nd_serf_filter f = {
            .type = ND_SERF_FILTER_NODE, .nnodes = (uint32_t)p->nnodes, .nodes_list = p->nodes};

        if (p->nnodes > ND_GOSSIP_META_MAX || nd_serf_filter_encode(&f, fbuf, sizeof fbuf, &len))
            return ND_GOSSIP_E_LIMIT;
        filt[q->nfilters++] = gb(fbuf, len);
        off = len;
    }
    for (size_t i = 0; i < p->ntags; i++) {
        struct nd_serf_filter f = {
            .type = ND_SERF_FILTER_TAG, .tag = p->tag_keys[i], .expr = p->tag_exprs[i]};

        if (nd_serf_filter_encode(&f, fbuf + off, sizeof fbuf - off, &len))
            return ND_GOSSIP_E_LIMIT;
        filt[q->nfilters++] = gb(fbuf + off, len);
        off += len;
    }
    q->ltime = sw->query_ltime;
    q->id = (uint32_t)(rnd(sw) >> 33); /* serf: rand.Int31() */
    q->addr = gb(sw->c.addr.ip, sw->c.addr.len);
    q->port = sw->c.addr.port;
    q->source_node = gb(sw->name, sw->name_len);
    q->flags = p->ack ? ND_SERF_QUERY_FLAG_ACK : 0;
    q->relay_factor = p->relay_factor;
    q->timeout_ns = (int64_t)*timeout_ms * 1000000;
    q->name = gb(p->name_len ? p->name : "", p->name_len);
    q->payload = p->payload_len ? gb(p->payload, p->payload_len) : gb(NULL, 0);
    buf[0] = ND_GOSSIP_USER;
    if ((e = nd_serf_encode(&sm, buf + 1, sizeof buf - 1, &len)))
        return e == ND_GOSSIP_E_SPACE ? ND_GOSSIP_E_LIMIT : e;
    if (len > ND_SWIM_QUERY_MAX) /* serf QuerySizeLimit */
        return ND_GOSSIP_E_LIMIT;
    o->used = true;
    o->ltime = q->ltime;
    o->id = q->id;
    o->deadline = now(sw) + *timeout_ms;
    o->handle = p->handle;
    sw->mx.queries_sent++;
    /* serf processes its own query (it acks and answers itself over UDP), then gossips it */
    if (nd_serf_decode(buf + 1, len, &sm) == 0)
        handle_query(sw, &sm.u.query, len);
    queue_event(sw, buf, len + 1);
    return 0;
}

static void handle_user(struct nd_swim *sw, const uint8_t *msg, size_t len)
{
    struct nd_serf_msg sm;
    bool again = false;
    struct member *m = NULL;

    if (len < 2 || nd_serf_decode(msg + 1, len - 1, &sm)) {
        sw->mx.decode_errors++;
        return;
    }
    switch (sm.type) {
    case ND_SERF_JOIN:
        m = find_gb(sw, sm.u.join.node);
        again = join_intent(sw, m, sm.u.join.ltime);
        break;
    case ND_SERF_LEAVE:
        m = find_gb(sw, sm.u.leave.node);
        again = leave_intent(sw, m, sm.u.leave.ltime);
        break;
    case ND_SERF_USER_EVENT:
        if (accept_event(sw, sm.u.event.ltime, sm.u.event.name, sm.u.event.payload, sm.u.event.cc,
                         false, false))
            queue_event(sw, msg, len);
        break;
    case ND_SERF_QUERY:
        if (handle_query(sw, &sm.u.query, len - 1))
            queue_event(sw, msg, len);
        break;
    case ND_SERF_QUERY_RESPONSE:
        handle_query_response(sw, &sm.u.response);
        break;
    case ND_SERF_RELAY:
        handle_relay(sw, &sm.u.relay);
        break;
    default:
        break;
    }
    if (again && m)
        queue(sw, m, 1, msg, len, false);
}

/* ---- memberlist state transitions (state.go) --------------------------------------------- */

static void refute(struct nd_swim *sw, uint32_t accused)
{
    struct member *me = sw->self;

    me->incarnation++;
    if (accused >= me->incarnation)
        me->incarnation = accused + 1;
    sw->mx.refutes++;
    if (sw->health < (int)sw->c.awareness_max - 1)
        sw->health++;
    queue_alive(sw, me);
}

struct alive_in {
    uint32_t incarnation;
    struct nd_gbytes node, addr, meta;
    uint16_t port;
    const uint8_t *vsn; /* NULL: none */
};

static void alive_node(struct nd_swim *sw, const struct alive_in *a, bool bootstrap)
{
    struct member *m = find_gb(sw, a->node);
    bool updates = false, is_new = false;

    if (!name_ok(a->node) || (a->addr.len != 4 && a->addr.len != 16) ||
        a->meta.len > ND_GOSSIP_META_MAX) {
        sw->mx.decode_errors++;
        return;
    }
    if (sw->leave_phase >= 2 && m == sw->self)
        return;
    if (a->vsn && (a->vsn[0] == 0 || a->vsn[1] == 0 || a->vsn[0] > a->vsn[1]))
        return;
    if (!m) {
        if (!(m = member_add(sw, a->node)))
            return;
        set_addr(&m->addr, a->addr, a->port);
        if (a->vsn)
            memcpy(m->vsn, a->vsn, ND_GOSSIP_VSN_LEN);
        is_new = true;
    } else if (!addr_eq(&m->addr, a->addr, a->port)) {
        if (m->state == ND_GOSSIP_STATE_LEFT) {
            updates = true;
        } else {
            sw->mx.conflicts++;
            return;
        }
    }
    bool local = m == sw->self;

    if (a->incarnation <= m->incarnation && !local && !updates && !is_new)
        return;
    if (a->incarnation < m->incarnation && local)
        return;
    if (!local && !is_new && !take_token(sw, m))
        return;
    nd_timer_cancel(&sw->wheel, &m->tsusp);
    free(m->susp);
    m->susp = NULL;

    uint8_t old_state = m->state;
    bool meta_changed = false;

    if (!bootstrap && local) {
        if (a->incarnation == m->incarnation &&
            gb_eq(a->meta, (const char *)m->meta, m->meta_len) && a->vsn &&
            memcmp(a->vsn, m->vsn, ND_GOSSIP_VSN_LEN) == 0)
            return;
        refute(sw, a->incarnation);
        return;
    }
    if (a->vsn)
        memcpy(m->vsn, a->vsn, ND_GOSSIP_VSN_LEN);
    m->incarnation = a->incarnation;
    int r = set_meta(m, a->meta);
    if (r < 0)
        return;
    meta_changed = r > 0;
    if (updates)
        set_addr(&m->addr, a->addr, a->port);
    queue_alive(sw, m);
    if (m->state != ND_GOSSIP_STATE_ALIVE)
        set_state(sw, m, ND_GOSSIP_STATE_ALIVE);
    if (old_state == ND_GOSSIP_STATE_DEAD || old_state == ND_GOSSIP_STATE_LEFT) {
        if (!is_new && old_state == ND_GOSSIP_STATE_LEFT)
            m->leaving = false;
        if (!is_new && old_state == ND_GOSSIP_STATE_DEAD)
            m->leaving = false;
        event(sw, m, ND_SWIM_EV_JOIN);
    } else if (old_state == ND_GOSSIP_STATE_SUSPECT) {
        event(sw, m, ND_SWIM_EV_ALIVE);
        if (meta_changed || updates)
            event(sw, m, ND_SWIM_EV_UPDATE);
    } else if (meta_changed || updates) {
        event(sw, m, ND_SWIM_EV_UPDATE);
    }
}

static void dead_node(struct nd_swim *sw, uint32_t inc, struct nd_gbytes node,
                      struct nd_gbytes from);

static void on_suspicion_timeout(struct nd_timer *t)
{
    struct member *m = container_of(t, struct member, tsusp);
    struct nd_swim *sw = m->sw;

    if (m->state != ND_GOSSIP_STATE_SUSPECT)
        return;
    dead_node(sw, m->incarnation, gb(m->name, m->name_len), gb(sw->name, sw->name_len));
}

/* suspicion.go remainingSuspicionTime: max shrinks towards min as confirmations come in. */
static uint64_t susp_timeout(const struct susp *s)
{
    double frac = log((double)s->n + 1.0) / log((double)s->k + 1.0);
    double raw = (double)s->max / 1000.0 - frac * ((double)s->max - (double)s->min) / 1000.0;
    uint64_t t = (uint64_t)floor(1000.0 * raw);

    return t < s->min ? s->min : t;
}

static void suspect_node(struct nd_swim *sw, uint32_t inc, struct nd_gbytes node,
                         struct nd_gbytes from)
{
    struct member *m = find_gb(sw, node);

    if (!m || inc < m->incarnation)
        return;
    if (m->susp) {
        struct susp *s = m->susp;
        uint64_t h = hash_name(from.p, from.len);

        if (s->n >= s->k)
            return;
        for (uint32_t i = 0; i < s->nfrom; i++)
            if (s->from[i] == h)
                return;
        if (s->nfrom < SUSP_FROM_MAX)
            s->from[s->nfrom++] = h;
        s->n++;
        uint64_t elapsed = now(sw) - s->start, to = susp_timeout(s);

        if (nd_timer_armed(&m->tsusp))
            nd_timer_arm(&sw->wheel, &m->tsusp, to > elapsed ? to - elapsed : 1);
        queue_susp_dead(sw, m, ND_GOSSIP_SUSPECT, inc, from, false);
        return;
    }
    if (m->state != ND_GOSSIP_STATE_ALIVE)
        return;
    if (m == sw->self) {
        refute(sw, inc);
        return;
    }
    struct susp *s = calloc(1, sizeof *s);

    if (!s)
        return;
    queue_susp_dead(sw, m, ND_GOSSIP_SUSPECT, inc, from, false);
    m->incarnation = inc;
    set_state(sw, m, ND_GOSSIP_STATE_SUSPECT);
    sw->mx.suspicions++;
    s->k = sw->c.suspicion_mult >= 2 ? sw->c.suspicion_mult - 2 : 0;
    if (sw->est < 2 || sw->est - 2 < s->k)
        s->k = 0;
    s->min = suspicion_min(sw);
    s->max = s->min * sw->c.suspicion_max_mult;
    s->start = now(sw);
    s->from[0] = hash_name(from.p, from.len);
    s->nfrom = 1;
    m->susp = s;
    nd_timer_arm(&sw->wheel, &m->tsusp, s->k < 1 ? s->min : s->max);
    event(sw, m, ND_SWIM_EV_SUSPECT);
}

static void dead_node(struct nd_swim *sw, uint32_t inc, struct nd_gbytes node,
                      struct nd_gbytes from)
{
    struct member *m = find_gb(sw, node);

    if (!m || inc < m->incarnation)
        return;
    nd_timer_cancel(&sw->wheel, &m->tsusp);
    free(m->susp);
    m->susp = NULL;
    if (m->state == ND_GOSSIP_STATE_DEAD || m->state == ND_GOSSIP_STATE_LEFT)
        return;
    if (m == sw->self) {
        if (sw->leave_phase < 2) {
            refute(sw, inc);
            return;
        }
        queue_susp_dead(sw, m, ND_GOSSIP_DEAD, inc, from, true);
    } else {
        queue_susp_dead(sw, m, ND_GOSSIP_DEAD, inc, from, false);
    }
    m->incarnation = inc;
    if (gb_eq(from, m->name, m->name_len)) {
        set_state(sw, m, ND_GOSSIP_STATE_LEFT);
        event(sw, m, ND_SWIM_EV_LEFT);
    } else {
        set_state(sw, m, ND_GOSSIP_STATE_DEAD);
        if (m != sw->self)
            sw->mx.deaths++;
        event(sw, m, ND_SWIM_EV_FAILED);
    }
}

/* ---- probing ------------------------------------------------------------------------------ */

static void apply_health(struct nd_swim *sw, int delta)
{
    sw->health += delta;
    if (sw->health < 0)
        sw->health = 0;
    if (sw->health > (int)sw->c.awareness_max - 1)
        sw->health = (int)sw->c.awareness_max - 1;
}

static struct stream *stream_get(struct nd_swim *sw, uint32_t sid);
static void stream_close(struct nd_swim *sw, struct stream *s);
static struct stream *stream_open(struct nd_swim *sw, int kind, const struct nd_swim_addr *to);
static int stream_send_msg(struct nd_swim *sw, struct stream *s, const uint8_t *msg, size_t len);
static void probe_start(struct nd_swim *sw);

static void probe_end(struct nd_swim *sw)
{
    struct stream *s;

    sw->probe.active = false;
    sw->probe.m = NULL;
    nd_timer_cancel(&sw->wheel, &sw->t_phase);
    if (sw->probe.tcp && (s = stream_get(sw, sw->probe.tcp_sid)))
        stream_close(sw, s);
    sw->probe.tcp = false;
}

static void probe_start(struct nd_swim *sw);

static void probe_acked(struct nd_swim *sw)
{
    sw->mx.probe_acks++;
    apply_health(sw, -1);
    probe_end(sw);
    if (sw->probe.due)
        probe_start(sw);
}

static size_t encode_ping(struct nd_swim *sw, uint32_t seq, const struct member *target,
                          uint8_t *buf)
{
    struct nd_gossip_msg p = {.type = ND_GOSSIP_PING};

    p.u.ping.seq_no = seq;
    p.u.ping.node = gb(target->name, target->name_len);
    fill_source(sw, &p.u.ping.source_addr, &p.u.ping.source_port, &p.u.ping.source_node);
    return enc(&p, buf);
}

static void probe_start(struct nd_swim *sw)
{
    struct member *m = NULL;
    uint8_t ping[MSG_MAX];
    size_t len;

    sw->probe.due = false;
    for (uint32_t checked = 0; checked <= sw->n;) {
        if (sw->probe_idx >= sw->n) {
            shuffle(sw);
            sw->probe_idx = 0;
            checked++;
            continue;
        }
        struct member *c = sw->m[sw->probe_idx++];

        if (c == sw->self || c->state == ND_GOSSIP_STATE_DEAD || c->state == ND_GOSSIP_STATE_LEFT) {
            checked++;
            continue;
        }
        m = c;
        break;
    }
    if (!m)
        return;
    sw->probe.active = true;
    sw->probe.m = m;
    sw->probe.seq = ++sw->seq;
    sw->probe.start = now(sw);
    sw->probe.interval = (uint64_t)sw->c.probe_interval_ms * (uint64_t)(sw->health + 1);
    sw->probe.nacks = sw->probe.expected_nacks = 0;
    sw->probe.phase = 1;
    sw->probe.tcp = false;
    sw->mx.probes++;
    len = encode_ping(sw, sw->probe.seq, m, ping);
    if (!len) {
        probe_end(sw);
        return;
    }
    if (m->state == ND_GOSSIP_STATE_ALIVE) {
        send_msg(sw, &m->addr, want_crc(m), ping, len);
    } else {
        struct nd_gossip_msg s = {.type = ND_GOSSIP_SUSPECT};
        uint8_t sb[MSG_MAX];
        size_t sl, out;
        struct nd_gbytes parts[2];

        s.u.suspect.incarnation = m->incarnation;
        s.u.suspect.node = gb(m->name, m->name_len);
        s.u.suspect.from = gb(sw->name, sw->name_len);
        sl = enc(&s, sb);
        parts[0] = gb(ping, len);
        parts[1] = gb(sb, sl);
        if (sl && nd_gossip_compound_encode(parts, 2, sw->ws + W_OUT, W_UDP, &out) == 0) {
            sw->mx.msgs_out += 2;
            send_raw(sw, &m->addr, want_crc(m), sw->ws + W_OUT, out);
        }
    }
    nd_timer_arm(&sw->wheel, &sw->t_phase, sw->c.probe_timeout_ms);
}

static bool pick_ok_probe_helper(struct nd_swim *sw, const struct member *c)
{
    return c != sw->self && c != sw->probe.m && c->state == ND_GOSSIP_STATE_ALIVE;
}

static void probe_indirect(struct nd_swim *sw)
{
    struct member *m = sw->probe.m, *picked[16];
    uint32_t k = sw->c.indirect_checks < 16 ? sw->c.indirect_checks : 16, np = 0;
    uint8_t buf[MSG_MAX];

    for (uint32_t tries = 0; tries < 3 * sw->n && np < k; tries++) {
        struct member *c = sw->m[rnd_below(sw, sw->n)];
        bool dup = false;

        if (!pick_ok_probe_helper(sw, c))
            continue;
        for (uint32_t j = 0; j < np; j++)
            dup |= picked[j] == c;
        if (!dup)
            picked[np++] = c;
    }
    for (uint32_t i = 0; i < np; i++) {
        struct nd_gossip_msg ind = {.type = ND_GOSSIP_INDIRECT_PING};
        size_t len;

        ind.u.indirect_ping.seq_no = sw->probe.seq;
        ind.u.indirect_ping.target = gb(m->addr.ip, m->addr.len);
        ind.u.indirect_ping.port = m->addr.port;
        ind.u.indirect_ping.node = gb(m->name, m->name_len);
        ind.u.indirect_ping.nack = picked[i]->vsn[1] >= 4;
        if (ind.u.indirect_ping.nack)
            sw->probe.expected_nacks++;
        fill_source(sw, &ind.u.indirect_ping.source_addr, &ind.u.indirect_ping.source_port,
                    &ind.u.indirect_ping.source_node);
        if ((len = enc(&ind, buf)))
            send_msg(sw, &picked[i]->addr, want_crc(picked[i]), buf, len);
        sw->mx.probes_indirect++;
    }
    if (sw->c.tcp_ping && m->vsn[1] >= 3) {
        struct stream *s = stream_open(sw, ST_PING, &m->addr);
        size_t len;

        if (s) {
            s->seq = sw->probe.seq;
            sw->probe.tcp = true;
            sw->probe.tcp_sid = s->sid;
            sw->mx.probes_tcp++;
            nd_timer_arm(&sw->wheel, &s->t, sw->probe.interval);
            if ((len = encode_ping(sw, sw->probe.seq, m, buf)))
                stream_send_msg(sw, s, buf, len);
        }
    }
}

static void on_phase(struct nd_timer *t)
{
    struct nd_swim *sw = container_of(t, struct nd_swim, t_phase);
    uint64_t deadline = sw->probe.start + sw->probe.interval;

    if (!sw->probe.active)
        return;
    if (sw->probe.phase == 1) {
        sw->probe.phase = 2;
        probe_indirect(sw);
        if (!sw->probe.active)
            return;
        nd_timer_arm(&sw->wheel, &sw->t_phase, deadline > now(sw) ? deadline - now(sw) : 1);
        return;
    }
    /* no ack by the deadline */
    struct member *m = sw->probe.m;
    int delta = 1;

    if (sw->probe.expected_nacks > 0)
        delta = sw->probe.nacks < sw->probe.expected_nacks
                    ? (int)(sw->probe.expected_nacks - sw->probe.nacks)
                    : 0;
    apply_health(sw, delta);
    sw->mx.probes_failed++;
    uint32_t inc = m->incarnation;
    char name[ND_GOSSIP_NAME_MAX];
    size_t nl = m->name_len;

    memcpy(name, m->name, nl);
    probe_end(sw);
    suspect_node(sw, inc, gb(name, nl), gb(sw->name, sw->name_len));
    if (sw->probe.due)
        probe_start(sw);
}

static void on_probe_tick(struct nd_timer *t)
{
    struct nd_swim *sw = container_of(t, struct nd_swim, t_probe);

    nd_timer_arm(&sw->wheel, &sw->t_probe, sw->c.probe_interval_ms);
    if (sw->probe.active)
        sw->probe.due = true;
    else
        probe_start(sw);
}

/* ---- relaying indirect probes ------------------------------------------------------------- */

static void send_ack(struct nd_swim *sw, const struct nd_swim_addr *to, bool crc, uint32_t seq)
{
    struct nd_gossip_msg a = {.type = ND_GOSSIP_ACK};
    uint8_t buf[64];
    size_t len;

    a.u.ack.seq_no = seq;
    if (nd_gossip_encode(&a, buf, sizeof buf, &len) == 0)
        send_msg(sw, to, crc, buf, len);
}

static void on_relay_timeout(struct nd_timer *t)
{
    struct relay *r = container_of(t, struct relay, t);
    struct nd_swim *sw = r->sw;

    if (r->nack) {
        struct nd_gossip_msg a = {.type = ND_GOSSIP_NACK};
        uint8_t buf[64];
        size_t len;

        a.u.nack.seq_no = r->orig_seq;
        if (nd_gossip_encode(&a, buf, sizeof buf, &len) == 0)
            send_msg(sw, &r->to, r->crc, buf, len);
    }
    r->used = false;
}

static void handle_indirect(struct nd_swim *sw, const struct nd_swim_addr *from,
                            const struct nd_gossip_indirect_ping *ind)
{
    struct relay *r = NULL;
    struct nd_gossip_msg p = {.type = ND_GOSSIP_PING};
    struct nd_swim_addr target;
    uint8_t buf[MSG_MAX];
    size_t len;

    if (ind->target.len != 4 && ind->target.len != 16)
        return;
    for (uint32_t i = 0; i < sw->c.max_relays; i++)
        if (!sw->relays[i].used) {
            r = &sw->relays[i];
            break;
        }
    if (!r) {
        sw->mx.relays_dropped++;
        return;
    }
    r->used = true;
    r->nack = ind->nack;
    r->orig_seq = ind->seq_no;
    r->local_seq = ++sw->seq;
    if (ind->source_addr.len && ind->source_port)
        set_addr(&r->to, ind->source_addr, ind->source_port);
    else
        r->to = *from;
    r->crc = want_crc(find_gb(sw, ind->source_node));
    nd_timer_arm(&sw->wheel, &r->t, sw->c.probe_timeout_ms);
    set_addr(&target, ind->target, ind->port);
    p.u.ping.seq_no = r->local_seq;
    p.u.ping.node = ind->node;
    fill_source(sw, &p.u.ping.source_addr, &p.u.ping.source_port, &p.u.ping.source_node);
    if ((len = enc(&p, buf)))
        send_msg(sw, &target, want_crc(find_gb(sw, ind->node)), buf, len);
}

static void handle_ack(struct nd_swim *sw, uint32_t seq)
{
    if (sw->probe.active && seq == sw->probe.seq) {
        probe_acked(sw);
        return;
    }
    for (uint32_t i = 0; i < sw->c.max_relays; i++) {
        struct relay *r = &sw->relays[i];

        if (r->used && r->local_seq == seq) {
            nd_timer_cancel(&sw->wheel, &r->t);
            r->used = false;
            send_ack(sw, &r->to, r->crc, r->orig_seq);
            return;
        }
    }
}

/* ---- receiving datagrams ------------------------------------------------------------------ */

struct rx {
    struct nd_swim *sw;
    const struct nd_swim_addr *from;
};

static void handle_msg(struct nd_swim *sw, const struct nd_swim_addr *from, const uint8_t *msg,
                       size_t len)
{
    struct nd_gossip_msg m;

    sw->mx.msgs_in++;
    if (msg[0] == ND_GOSSIP_USER) {
        handle_user(sw, msg, len);
        return;
    }
    if (nd_gossip_decode(msg, len, &m)) {
        sw->mx.decode_errors++;
        return;
    }
    switch (m.type) {
    case ND_GOSSIP_PING: {
        struct nd_swim_addr to = *from;

        if (m.u.ping.node.len && !gb_eq(m.u.ping.node, sw->name, sw->name_len))
            return;
        if (m.u.ping.source_addr.len && m.u.ping.source_port)
            set_addr(&to, m.u.ping.source_addr, m.u.ping.source_port);
        send_ack(sw, &to, want_crc(find_gb(sw, m.u.ping.source_node)), m.u.ping.seq_no);
        break;
    }
    case ND_GOSSIP_INDIRECT_PING:
        handle_indirect(sw, from, &m.u.indirect_ping);
        break;
    case ND_GOSSIP_ACK:
        handle_ack(sw, m.u.ack.seq_no);
        break;
    case ND_GOSSIP_NACK:
        if (sw->probe.active && m.u.nack.seq_no == sw->probe.seq)
            sw->probe.nacks++;
        break;
    case ND_GOSSIP_SUSPECT:
        if (name_ok(m.u.suspect.node))
            suspect_node(sw, m.u.suspect.incarnation, m.u.suspect.node, m.u.suspect.from);
        break;
    case ND_GOSSIP_DEAD:
        if (name_ok(m.u.dead.node))
            dead_node(sw, m.u.dead.incarnation, m.u.dead.node, m.u.dead.from);
        break;
    case ND_GOSSIP_ALIVE: {
        struct alive_in a = {.incarnation = m.u.alive.incarnation,
                             .node = m.u.alive.node,
                             .addr = m.u.alive.addr,
                             .meta = m.u.alive.meta,
                             .port = m.u.alive.port,
                             .vsn = m.u.alive.has_vsn ? m.u.alive.vsn : NULL};

        alive_node(sw, &a, false);
        break;
    }
    default:
        break;
    }
}

static void on_walk(void *arg, const uint8_t *msg, size_t len)
{
    struct rx *rx = arg;

    handle_msg(rx->sw, rx->from, msg, len);
}

/* ---- streams ------------------------------------------------------------------------------ */

static void on_stream_timeout(struct nd_timer *t);

static struct stream *stream_get(struct nd_swim *sw, uint32_t sid)
{
    uint32_t i = sid & 0xffff;

    if (i >= sw->c.max_streams || sw->streams[i].kind == ST_FREE || sw->streams[i].sid != sid)
        return NULL;
    return &sw->streams[i];
}

static struct stream *stream_alloc(struct nd_swim *sw, int kind, const struct nd_swim_addr *peer)
{
    for (uint32_t i = 0; i < sw->c.max_streams; i++) {
        struct stream *s = &sw->streams[i];

        if (s->kind != ST_FREE)
            continue;
        s->kind = (uint8_t)kind;
        s->sid = (uint32_t)++sw->stream_gen << 16 | i;
        s->len = 0;
        s->seq = 0;
        s->peer = *peer;
        sw->mx.streams++;
        nd_timer_arm(&sw->wheel, &s->t, sw->c.tcp_timeout_ms);
        return s;
    }
    sw->mx.streams_refused++;
    return NULL;
}

static void stream_release(struct nd_swim *sw, struct stream *s)
{
    nd_timer_cancel(&sw->wheel, &s->t);
    if (sw->probe.tcp && sw->probe.tcp_sid == s->sid)
        sw->probe.tcp = false;
    s->kind = ST_FREE;
    free(s->in);
    s->in = NULL;
    s->len = s->cap = 0;
    sw->mx.streams--;
}

static void stream_close(struct nd_swim *sw, struct stream *s)
{
    uint32_t sid = s->sid;

    stream_release(sw, s);
    sw->io.stream_close(sw->io.arg, sid);
}

static struct stream *stream_open(struct nd_swim *sw, int kind, const struct nd_swim_addr *to)
{
    struct stream *s = stream_alloc(sw, kind, to);

    if (!s)
        return NULL;
    sw->mx.streams_out++;
    if (sw->io.stream_open(sw->io.arg, s->sid, to)) {
        sw->mx.stream_errors++;
        stream_release(sw, s);
        return NULL;
    }
    return s;
}

/* Sends one message on a stream, sealed when encrypting. */
static int stream_send_msg(struct nd_swim *sw, struct stream *s, const uint8_t *msg, size_t len)
{
    const uint8_t *p = msg;
    uint8_t *sealed = NULL;
    size_t n = len;
    int r;

    if (sw->keyed) {
        uint8_t nonce[ND_GOSSIP_NONCE_LEN];

        sealed = malloc(len + 5 + ND_GOSSIP_CRYPT_OVERHEAD);
        if (!sealed)
            return -1;
        sw->io.random(sw->io.arg, nonce, sizeof nonce);
        if (nd_gossip_stream_seal(&sw->kr, nonce, msg, len, sealed,
                                  len + 5 + ND_GOSSIP_CRYPT_OVERHEAD, &n)) {
            free(sealed);
            return -1;
        }
        p = sealed;
    }
    sw->mx.stream_bytes_out += n;
    r = sw->io.stream_send(sw->io.arg, s->sid, p, n);
    free(sealed);
    if (r < 0) {
        sw->mx.stream_errors++;
        stream_close(sw, s);
    }
    return r;
}

/* Our push/pull: every member's state, and serf's state as the user state. */
static int send_state(struct nd_swim *sw, struct stream *s, bool join)
{
    struct nd_gossip_node_state *st = calloc(sw->n, sizeof *st);
    struct nd_serf_status *ss = calloc(sw->n, sizeof *ss);
    struct nd_gbytes *left = calloc(sw->n, sizeof *left);
    struct nd_serf_event_group *groups = calloc(sw->ev.used_slots + 1, sizeof *groups);
    struct nd_serf_event_item *items = calloc(sw->ev.events + 1, sizeof *items);
    struct nd_serf_msg sm = {.type = ND_SERF_PUSH_PULL};
    size_t cap = 256, ucap = 64, ulen = 0, len = 0;
    uint8_t *ubuf = NULL, *out = NULL;
    int r = -1;

    if (!st || !ss || !left || !groups || !items)
        goto out;
    for (uint32_t i = 0; i < sw->n; i++) {
        const struct member *m = sw->m[i];

        st[i].name = gb(m->name, m->name_len);
        st[i].addr = gb(m->addr.ip, m->addr.len);
        st[i].port = m->addr.port;
        st[i].meta = m->meta_len ? gb(m->meta, m->meta_len) : gb(NULL, 0);
        st[i].incarnation = m->incarnation;
        st[i].state = m->state;
        memcpy(st[i].vsn, m->vsn, ND_GOSSIP_VSN_LEN);
        ss[i].name = st[i].name;
        ss[i].ltime = m->serf_ltime;
        if (status_of(m) == ND_SWIM_LEFT)
            left[sm.u.pp.nleft++] = st[i].name;
        cap += 96 + m->name_len + m->meta_len;
        ucap += 2 * (16 + (size_t)m->name_len);
    }
    sm.u.pp.ltime = sw->ltime;
    sm.u.pp.event_ltime = sw->ev.clock;
    sm.u.pp.query_ltime = sw->query_ltime;
    sm.u.pp.nstatus = sw->n;
    sm.u.pp.status = ss;
    sm.u.pp.left = left;
    sm.u.pp.groups = groups;
    sm.u.pp.ngroups = nd_evbuf_groups(&sw->ev, groups, items);
    ucap += sw->ev.bytes + 32 * (size_t)sw->ev.used_slots + 16 * (size_t)sw->ev.events;
    if (!(ubuf = malloc(ucap)) || nd_serf_encode(&sm, ubuf, ucap, &ulen))
        goto out;
    cap += ulen;
    if (!(out = malloc(cap)) ||
        nd_gossip_pushpull_encode(join, st, sw->n, gb(ubuf, ulen), out, cap, &len))
        goto out;
    r = stream_send_msg(sw, s, out, len);
out:
    free(st);
    free(ss);
    free(left);
    free(groups);
    free(items);
    free(ubuf);
    free(out);
    return r;
}

/* serf MergeRemoteState's events: each recent event of the peer's buffer, delivered when new
 * (not re-broadcast: the peer's push/pull is how others get it too). */
static void merge_events(struct nd_swim *sw, const struct nd_serf_pushpull *pp)
{
    struct nd_gbytes rest = pp->events, items;
    struct nd_serf_event_group g;
    struct nd_serf_event_item it;

    for (uint32_t i = 0; i < pp->nevents; i++) {
        if (nd_serf_event_group_next(&rest, &g)) {
            sw->mx.decode_errors++;
            return;
        }
        items = g.raw;
        for (uint32_t k = 0; k < g.n; k++) {
            if (nd_serf_event_item_next(&items, &it)) {
                sw->mx.decode_errors++;
                return;
            }
            accept_event(sw, g.ltime, it.name, it.payload, false, false, true);
        }
    }
}

/* memberlist mergeRemoteState, then serf's MergeRemoteState. join_ignore: this is the answer
 * to our join, whose events before the peer's event clock we ignore (serf agent's default,
 * without -replay). */
static void merge_state(struct nd_swim *sw, const struct nd_gossip_stream_msg *pm, bool join_ignore)
{
    struct nd_gbytes rest = gb(pm->body.p + pm->states_off, pm->states_len);
    struct nd_gossip_node_state ns;
    struct nd_serf_msg sm;
    struct nd_serf_status st;
    struct nd_gbytes name;
    struct member *m;
    uint32_t epoch;

    sw->mx.pushpulls++;
    for (uint32_t i = 0; i < pm->pp.nodes; i++) {
        if (nd_gossip_node_state_decode(&rest, &ns)) {
            sw->mx.decode_errors++;
            return;
        }
        if (!name_ok(ns.name))
            continue;
        switch (ns.state) {
        case ND_GOSSIP_STATE_ALIVE: {
            struct alive_in a = {.incarnation = ns.incarnation,
                                 .node = ns.name,
                                 .addr = ns.addr,
                                 .meta = ns.meta,
                                 .port = ns.port,
                                 .vsn = ns.has_vsn ? ns.vsn : NULL};

            alive_node(sw, &a, false);
            break;
        }
        case ND_GOSSIP_STATE_LEFT:
            dead_node(sw, ns.incarnation, ns.name, ns.name);
            break;
        default:
            suspect_node(sw, ns.incarnation, ns.name, gb(sw->name, sw->name_len));
            break;
        }
    }
    if (!pm->user.len || nd_serf_decode(pm->user.p, pm->user.len, &sm) ||
        sm.type != ND_SERF_PUSH_PULL)
        return;
    if (sm.u.pp.ltime > 0)
        witness(&sw->ltime, sm.u.pp.ltime - 1);
    if (sm.u.pp.event_ltime > 0)
        nd_evbuf_witness(&sw->ev, sm.u.pp.event_ltime - 1);
    if (sm.u.pp.query_ltime > 0)
        witness(&sw->query_ltime, sm.u.pp.query_ltime - 1);
    epoch = ++sw->pp_epoch;
    rest = sm.u.pp.status_ltimes;
    for (uint32_t i = 0; i < sm.u.pp.nstatus; i++) {
        if (nd_serf_status_next(&rest, &st))
            return;
        if ((m = find_gb(sw, st.name))) {
            m->pp_epoch = epoch;
            m->pp_ltime = st.ltime;
        }
    }
    rest = sm.u.pp.left_members;
    for (uint32_t i = 0; i < sm.u.pp.nleft; i++) {
        if (nd_serf_left_next(&rest, &name))
            return;
        if ((m = find_gb(sw, name)) && m->pp_epoch == epoch && m->pp_left != epoch) {
            m->pp_left = epoch;
            leave_intent(sw, m, m->pp_ltime + 1);
        }
    }
    for (uint32_t i = 0; i < sw->n; i++) {
        m = sw->m[i];
        if (m->pp_epoch == epoch && m->pp_left != epoch)
            join_intent(sw, m, m->pp_ltime);
    }
    if (join_ignore)
        nd_evbuf_ignore_before(&sw->ev, sm.u.pp.event_ltime);
    merge_events(sw, &sm.u.pp);
}

static void stream_message(struct nd_swim *sw, struct stream *s,
                           const struct nd_gossip_stream_msg *pm)
{
    struct nd_gossip_msg m;

    switch (s->kind) {
    case ST_IN:
        if (pm->type == ND_GOSSIP_PUSH_PULL) {
            if (send_state(sw, s, pm->pp.join) < 0) {
                if (stream_get(sw, s->sid))
                    stream_close(sw, s);
                return;
            }
            merge_state(sw, pm, false);
        } else if (pm->type == ND_GOSSIP_PING) {
            uint8_t buf[64];
            size_t len;
            struct nd_gossip_msg a = {.type = ND_GOSSIP_ACK};

            if (nd_gossip_decode_body(ND_GOSSIP_PING, pm->body.p, pm->body.len, &m) ||
                (m.u.ping.node.len && !gb_eq(m.u.ping.node, sw->name, sw->name_len))) {
                sw->mx.stream_errors++;
                break;
            }
            a.u.ack.seq_no = m.u.ping.seq_no;
            if (nd_gossip_encode(&a, buf, sizeof buf, &len) == 0 &&
                stream_send_msg(sw, s, buf, len) < 0)
                return;
        } else if (pm->type == ND_GOSSIP_USER) {
            uint8_t *u = malloc((size_t)pm->user.len + 1);

            if (u && pm->user.len) {
                u[0] = ND_GOSSIP_USER;
                memcpy(u + 1, pm->user.p, pm->user.len);
                handle_user(sw, u, (size_t)pm->user.len + 1);
            }
            free(u);
        } else {
            sw->mx.stream_errors++;
        }
        break;
    case ST_PP:
    case ST_JOIN:
        if (pm->type != ND_GOSSIP_PUSH_PULL) {
            sw->mx.stream_errors++;
            break;
        }
        merge_state(sw, pm, s->kind == ST_JOIN);
        if (s->kind == ST_JOIN) {
            /* serf Join: announce ourselves once memberlist joined */
            broadcast_join(sw);
            sw->ltime++;
        }
        break;
    case ST_PING:
        if (pm->type == ND_GOSSIP_ACK &&
            nd_gossip_decode_body(ND_GOSSIP_ACK, pm->body.p, pm->body.len, &m) == 0 &&
            sw->probe.active && sw->probe.tcp && sw->probe.tcp_sid == s->sid &&
            m.u.ack.seq_no == sw->probe.seq) {
            sw->probe.tcp = false;
            stream_close(sw, s);
            probe_acked(sw);
            return;
        }
        break;
    }
    if (stream_get(sw, s->sid))
        stream_close(sw, s);
}

static void on_stream_timeout(struct nd_timer *t)
{
    struct stream *s = container_of(t, struct stream, t);
    struct nd_swim *sw = s->sw;

    if (s->kind != ST_PING)
        sw->mx.stream_errors++;
    stream_close(sw, s);
}

/* ---- periodic work ------------------------------------------------------------------------ */

static void on_gossip(struct nd_timer *t)
{
    struct nd_swim *sw = container_of(t, struct nd_swim, t_gossip);
    struct member *picked[16];
    uint32_t k = sw->c.gossip_nodes < 16 ? sw->c.gossip_nodes : 16, np = 0;

    nd_timer_arm(&sw->wheel, &sw->t_gossip, sw->c.gossip_interval_ms);
    if (!sw->q[Q_MEMBER].n && !sw->q[Q_EVENT].n)
        return;
    for (uint32_t tries = 0; tries < 3 * sw->n && np < k; tries++) {
        struct member *c = sw->m[rnd_below(sw, sw->n)];
        bool dup = false;

        if (c == sw->self || c->state == ND_GOSSIP_STATE_LEFT ||
            (c->state == ND_GOSSIP_STATE_DEAD &&
             now(sw) - c->state_change > sw->c.gossip_to_dead_ms))
            continue;
        for (uint32_t j = 0; j < np; j++)
            dup |= picked[j] == c;
        if (!dup)
            picked[np++] = c;
    }
    size_t avail = sw->c.udp_size - COMPOUND_HDR - crypt_overhead(sw);

    for (uint32_t i = 0; i < np; i++) {
        struct nd_gbytes parts[ND_GOSSIP_COMPOUND_MAX];
        size_t n = get_broadcasts(sw, COMPOUND_PART, avail, parts, ND_GOSSIP_COMPOUND_MAX), out;

        if (!n) {
            bq_flush_done(sw);
            return;
        }
        sw->mx.msgs_out += n;
        if (n == 1)
            send_raw(sw, &picked[i]->addr, want_crc(picked[i]), parts[0].p, parts[0].len);
        else if (nd_gossip_compound_encode(parts, n, sw->ws + W_OUT, W_UDP, &out) == 0)
            send_raw(sw, &picked[i]->addr, want_crc(picked[i]), sw->ws + W_OUT, out);
        bq_flush_done(sw);
    }
}

static void on_pushpull(struct nd_timer *t)
{
    struct nd_swim *sw = container_of(t, struct nd_swim, t_pp);
    struct member *c = NULL;
    struct stream *s;

    nd_timer_arm(&sw->wheel, &sw->t_pp, pushpull_scaled(sw));
    for (uint32_t tries = 0; tries < 3 * sw->n; tries++) {
        struct member *x = sw->m[rnd_below(sw, sw->n)];

        if (x != sw->self && x->state == ND_GOSSIP_STATE_ALIVE) {
            c = x;
            break;
        }
    }
    if (c && (s = stream_open(sw, ST_PP, &c->addr)))
        send_state(sw, s, false);
}

/* serf reconnect: now and then, a push/pull (join) with a random failed member, so that a
 * healed partition merges again. Expected once per interval per failed member cluster-wide. */
static void on_reconnect(struct nd_timer *t)
{
    struct nd_swim *sw = container_of(t, struct nd_swim, t_reconnect);
    struct member *pick = NULL;
    uint32_t failed = 0, alive;
    struct stream *s;

    nd_timer_arm(&sw->wheel, &sw->t_reconnect, sw->c.reconnect_interval_ms);
    for (uint32_t i = 0; i < sw->n; i++) {
        struct member *m = sw->m[i];

        if (m->state == ND_GOSSIP_STATE_DEAD && !m->leaving && rnd_below(sw, ++failed) == 0)
            pick = m;
    }
    if (!pick)
        return;
    alive = sw->mx.members_alive + sw->mx.members_suspect;
    if ((double)(rnd(sw) >> 11) / 9007199254740992.0 > (double)failed / (alive ? alive : 1))
        return;
    if ((s = stream_open(sw, ST_PP, &pick->addr)))
        send_state(sw, s, true);
}

/* Forgets dead and left members after reap_ms; re-estimates the cluster size. */
static void on_reap(struct nd_timer *t)
{
    struct nd_swim *sw = container_of(t, struct nd_swim, t_reap);
    uint32_t est = 0;

    nd_timer_arm(&sw->wheel, &sw->t_reap, REAP_EVERY_MS);
    for (uint32_t i = 0; i < sw->n;) {
        struct member *m = sw->m[i];
        bool gone = m->state == ND_GOSSIP_STATE_DEAD || m->state == ND_GOSSIP_STATE_LEFT;
        uint64_t age = now(sw) - m->state_change;

        if (gone && m != sw->self && age > sw->c.reap_ms) {
            event(sw, m, ND_SWIM_EV_REAP);
            member_remove(sw, m);
            continue;
        }
        if (!gone || age <= sw->c.gossip_to_dead_ms)
            est++;
        i++;
    }
    sw->est = est ? est : 1;
}

static void leave_dead(struct nd_swim *sw)
{
    struct member *me = sw->self;

    sw->leave_phase = 2;
    sw->leave_notified = false;
    dead_node(sw, me->incarnation, gb(me->name, me->name_len), gb(me->name, me->name_len));
    if (sw->mx.members_alive + sw->mx.members_suspect == 0)
        sw->leave_phase = 3;
    else
        nd_timer_arm(&sw->wheel, &sw->t_leave, LEAVE_WAIT_MS);
}

static void leave_step(struct nd_swim *sw)
{
    if (sw->leave_phase == 1 && sw->leave_notified) {
        nd_timer_cancel(&sw->wheel, &sw->t_leave);
        leave_dead(sw);
    }
    if (sw->leave_phase == 2 && sw->leave_notified) {
        nd_timer_cancel(&sw->wheel, &sw->t_leave);
        sw->leave_phase = 3;
    }
}

static void on_leave_timeout(struct nd_timer *t)
{
    struct nd_swim *sw = container_of(t, struct nd_swim, t_leave);

    if (sw->leave_phase == 1)
        leave_dead(sw);
    else if (sw->leave_phase == 2)
        sw->leave_phase = 3;
}

/* ---- API ---------------------------------------------------------------------------------- */

void nd_swim_config_lan(struct nd_swim_config *c)
{
    memset(c, 0, sizeof *c);
    c->probe_interval_ms = 1000;
    c->probe_timeout_ms = 500;
    c->indirect_checks = 3;
    c->retransmit_mult = 4;
    c->suspicion_mult = 4;
    c->suspicion_max_mult = 6;
    c->awareness_max = 8;
    c->gossip_interval_ms = 200;
    c->gossip_nodes = 3;
    c->gossip_to_dead_ms = 30000;
    c->pushpull_interval_ms = 30000;
    c->tcp_timeout_ms = 10000;
    c->reconnect_interval_ms = 30000;
    c->udp_size = 1400;
    c->tcp_ping = true;
    c->reap_ms = 86400000;
    c->max_members = 65536;
    c->max_queue = 4096;
    c->max_streams = 32;
    c->max_relays = 64;
    c->stream_max = 4u << 20;
    c->alive_burst = 16;
    c->alive_rate_ms = 1000;
}

size_t nd_swim_workspace_size(uint32_t stream_max)
{
    return W_STREAM + (size_t)stream_max;
}

static void advance(struct nd_swim *sw, uint64_t now_ms)
{
    nd_wheel_advance(&sw->wheel, now_ms);
    leave_step(sw);
}

struct nd_swim *nd_swim_new(const struct nd_swim_config *c, const struct nd_swim_io *io,
                            uint64_t now_ms, int *err)
{
    struct nd_swim *sw;
    struct nd_serf_tag tags[64];
    size_t nl = c->name ? strlen(c->name) : 0, ml = 0;
    int e = ND_GOSSIP_E_VALUE;

    if (!nl || nl > ND_GOSSIP_NAME_MAX || (c->addr.len != 4 && c->addr.len != 16) ||
        !c->addr.port || !io || !io->send || !io->stream_open || !io->stream_send ||
        !io->stream_close || !io->random || !c->probe_interval_ms || !c->gossip_interval_ms ||
        c->max_streams == 0 || c->max_streams > 0xffff || c->max_members < 2 || c->udp_size < 128 ||
        c->udp_size > W_UDP - 256 || c->stream_max < 65536 ||
        c->stream_max > ND_GOSSIP_STREAM_MAX || c->ntags > 64 || c->awareness_max < 1 ||
        (c->workspace && c->workspace_len < nd_swim_workspace_size(c->stream_max)))
        goto fail;
    for (size_t i = 0; i < c->ntags; i++) {
        tags[i].key = gb(c->tags[i].key, strlen(c->tags[i].key));
        tags[i].value = gb(c->tags[i].value, strlen(c->tags[i].value));
    }
    e = ND_GOSSIP_E_SPACE;
    if (!(sw = calloc(1, sizeof *sw)))
        goto fail;
    sw->meta_len = 0;
    if (c->ntags) {
        int r = nd_serf_tags_encode(tags, c->ntags, sw->meta, sizeof sw->meta, &ml);

        if (r) {
            free(sw);
            e = r == ND_GOSSIP_E_SPACE ? ND_GOSSIP_E_LIMIT : r;
            goto fail;
        }
        sw->meta_len = (uint32_t)ml;
    }
    sw->c = *c;
    sw->c.name = NULL;
    sw->io = *io;
    sw->c.tags = NULL;
    sw->c.ntags = 0;
    sw->c.keyring = NULL;
    nd_keyring_init(&sw->kr);
    if (c->keyring && c->keyring->n) {
        sw->kr = *c->keyring;
        sw->keyed = true;
    }
    nd_wheel_init(&sw->wheel, now_ms);
    io->random(io->arg, &sw->rng, sizeof sw->rng);
    sw->rng |= 1;
    if (c->workspace) {
        sw->ws = c->workspace;
        sw->ws_len = c->workspace_len;
    } else {
        sw->ws_len = nd_swim_workspace_size(c->stream_max);
        sw->ws = malloc(sw->ws_len);
        sw->ws_own = true;
    }
    sw->name = strdup(c->name);
    sw->name_len = nl;
    sw->htcap = 16;
    sw->ht = calloc(sw->htcap, sizeof *sw->ht);
    sw->relays = calloc(c->max_relays ? c->max_relays : 1, sizeof *sw->relays);
    sw->streams = calloc(c->max_streams, sizeof *sw->streams);
    if (!sw->ws || !sw->name || !sw->ht || !sw->relays || !sw->streams)
        goto fail_free;
    for (uint32_t i = 0; i < c->max_relays; i++) {
        sw->relays[i].sw = sw;
        sw->relays[i].t.cb = on_relay_timeout;
    }
    for (uint32_t i = 0; i < c->max_streams; i++) {
        sw->streams[i].sw = sw;
        sw->streams[i].t.cb = on_stream_timeout;
    }
    sw->ltime = sw->query_ltime = 1; /* serf starts its clocks at 1 */
    nd_evbuf_init(&sw->ev, c->max_event_bytes);
    sw->est = 1;

    /* memberlist setAlive: ourselves, incarnation 1, announced */
    struct alive_in a = {.incarnation = 1,
                         .node = gb(sw->name, nl),
                         .addr = gb(c->addr.ip, c->addr.len),
                         .meta = gb(sw->meta, sw->meta_len),
                         .port = c->addr.port,
                         .vsn = self_vsn};

    alive_node(sw, &a, true);
    sw->self = find(sw, sw->name, nl);
    if (!sw->self)
        goto fail_free;
    sw->est = 1;

    sw->t_probe.cb = on_probe_tick;
    sw->t_phase.cb = on_phase;
    sw->t_gossip.cb = on_gossip;
    sw->t_pp.cb = on_pushpull;
    sw->t_reap.cb = on_reap;
    sw->t_leave.cb = on_leave_timeout;
    sw->t_reconnect.cb = on_reconnect;
    /* random stagger, as memberlist's triggerFunc */
    nd_timer_arm(&sw->wheel, &sw->t_probe, 1 + rnd_below(sw, c->probe_interval_ms));
    nd_timer_arm(&sw->wheel, &sw->t_gossip, 1 + rnd_below(sw, c->gossip_interval_ms));
    if (c->pushpull_interval_ms)
        nd_timer_arm(&sw->wheel, &sw->t_pp, 1 + rnd_below(sw, c->pushpull_interval_ms));
    nd_timer_arm(&sw->wheel, &sw->t_reap, REAP_EVERY_MS);
    if (c->reconnect_interval_ms)
        nd_timer_arm(&sw->wheel, &sw->t_reconnect, 1 + rnd_below(sw, c->reconnect_interval_ms));
    return sw;

fail_free:
    nd_swim_free(sw);
    e = ND_GOSSIP_E_SPACE;
fail:
    if (err)
        *err = e;
    return NULL;
}

void nd_swim_free(struct nd_swim *sw)
{
    if (!sw)
        return;
    if (sw->streams)
        for (uint32_t i = 0; i < sw->c.max_streams; i++)
            if (sw->streams[i].kind != ST_FREE)
                stream_close(sw, &sw->streams[i]);
    while (sw->n)
        member_remove(sw, sw->m[sw->n - 1]);
    for (int qi = 0; qi < NQUEUES; qi++)
        for (uint32_t t = 0; t < BQ_BUCKETS; t++)
            while (sw->q[qi].l[t].head) {
                struct bcast *b = sw->q[qi].l[t].head;

                bq_unlink(sw, b);
                free(b);
            }
    nd_evbuf_free(&sw->ev);
    nd_keyring_wipe(&sw->kr);
    if (sw->ws_own)
        free(sw->ws);
    free(sw->m);
    free(sw->ht);
    free(sw->relays);
    free(sw->streams);
    free(sw->name);
    free(sw);
}

int nd_swim_join(struct nd_swim *sw, uint64_t now_ms, const struct nd_swim_addr *seeds, size_t n)
{
    int started = 0;

    advance(sw, now_ms);
    for (size_t i = 0; i < n; i++) {
        struct stream *s = stream_open(sw, ST_JOIN, &seeds[i]);

        if (s && send_state(sw, s, true) == 0)
            started++;
    }
    return started;
}

void nd_swim_leave(struct nd_swim *sw, uint64_t now_ms)
{
    struct nd_serf_msg sm = {.type = ND_SERF_LEAVE};

    advance(sw, now_ms);
    if (sw->leave_phase)
        return;
    sm.u.leave.ltime = sw->ltime++;
    sm.u.leave.node = gb(sw->name, sw->name_len);
    sw->self->serf_ltime = sm.u.leave.ltime;
    sw->self->leaving = true;
    sw->leave_phase = 1;
    sw->leave_notified = false;
    if (sw->mx.members_alive + sw->mx.members_suspect <= 1) { /* only ourselves */
        leave_dead(sw);
        return;
    }
    queue_serf(sw, sw->self, &sm, true);
    nd_timer_arm(&sw->wheel, &sw->t_leave, LEAVE_WAIT_MS);
}

int nd_swim_user_event(struct nd_swim *sw, uint64_t now_ms, const void *name, size_t name_len,
                       const void *payload, size_t payload_len, bool coalesce)
{
    struct nd_serf_msg sm = {.type = ND_SERF_USER_EVENT};
    uint8_t buf[ND_EVENT_SEND_MAX + 64];
    size_t len;
    int e;

    advance(sw, now_ms);
    if (name_len + payload_len > ND_EVENT_SEND_MAX)
        return ND_GOSSIP_E_LIMIT;
    sm.u.event.ltime = sw->ev.clock;
    sm.u.event.name = gb(name_len ? name : "", name_len);
    /* an empty payload goes out as Go's nil slice, as `serf event NAME` sends it */
    sm.u.event.payload = payload_len ? gb(payload, payload_len) : gb(NULL, 0);
    sm.u.event.cc = coalesce;
    buf[0] = ND_GOSSIP_USER;
    if ((e = nd_serf_encode(&sm, buf + 1, sizeof buf - 1, &len)))
        return e == ND_GOSSIP_E_SPACE ? ND_GOSSIP_E_LIMIT : e;
    if (len > ND_EVENT_SEND_MAX) /* serf checks the encoded message too */
        return ND_GOSSIP_E_LIMIT;
    nd_evbuf_tick(&sw->ev);
    sw->mx.events_sent++;
    accept_event(sw, sm.u.event.ltime, sm.u.event.name, sm.u.event.payload, coalesce, true, false);
    queue_event(sw, buf, len + 1);
    return 0;
}

const struct nd_keyring *nd_swim_keyring(const struct nd_swim *sw)
{
    return &sw->kr;
}

uint64_t nd_swim_event_clock(const struct nd_swim *sw)
{
    return sw->ev.clock;
}

bool nd_swim_leave_done(const struct nd_swim *sw)
{
    return sw->leave_phase == 3;
}

int nd_swim_set_keyring(struct nd_swim *sw, const struct nd_keyring *kr)
{
    if ((kr->n != 0) != sw->keyed)
        return ND_GOSSIP_E_VALUE;
    nd_keyring_wipe(&sw->kr);
    sw->kr = *kr;
    return 0;
}

int nd_swim_set_tags(struct nd_swim *sw, uint64_t now_ms, const struct nd_swim_tag *tags,
                     size_t ntags)
{
    struct nd_serf_tag t[64];
    uint8_t meta[ND_GOSSIP_META_MAX];
    size_t ml = 0;

    advance(sw, now_ms);
    if (ntags > 64 || sw->leave_phase)
        return ND_GOSSIP_E_VALUE;
    for (size_t i = 0; i < ntags; i++) {
        t[i].key = gb(tags[i].key, strlen(tags[i].key));
        t[i].value = gb(tags[i].value, strlen(tags[i].value));
    }
    if (ntags) {
        int r = nd_serf_tags_encode(t, ntags, meta, sizeof meta, &ml);

        if (r)
            return r == ND_GOSSIP_E_SPACE ? ND_GOSSIP_E_LIMIT : r;
    }
    if (ml == sw->meta_len && memcmp(meta, sw->meta, ml) == 0)
        return 0;
    /* memberlist UpdateNode: our alive with the next incarnation and the new Meta */
    struct member *me = sw->self;
    struct alive_in a = {.incarnation = me->incarnation + 1,
                         .node = gb(sw->name, sw->name_len),
                         .addr = gb(me->addr.ip, me->addr.len),
                         .meta = gb(meta, ml),
                         .port = me->addr.port,
                         .vsn = self_vsn};

    alive_node(sw, &a, true);
    if (me->meta_len != ml || (ml && memcmp(me->meta, meta, ml) != 0))
        return ND_GOSSIP_E_SPACE;
    memcpy(sw->meta, meta, ml);
    sw->meta_len = (uint32_t)ml;
    return 0;
}

void nd_swim_packet(struct nd_swim *sw, uint64_t now_ms, const struct nd_swim_addr *from,
                    const uint8_t *p, size_t n)
{
    struct rx rx = {.sw = sw, .from = from};
    int e;

    advance(sw, now_ms);
    sw->mx.pkts_in++;
    sw->mx.bytes_in += n;
    if (n == 0 || n > W_UDP) {
        sw->mx.decode_errors++;
        return;
    }
    if (sw->keyed) {
        size_t pl;

        if (nd_gossip_decrypt(&sw->kr, p, n, NULL, 0, sw->ws + W_PLAIN, W_UDP, &pl) || !pl) {
            sw->mx.decrypt_errors++;
            return;
        }
        p = sw->ws + W_PLAIN;
        n = pl;
    }
    e = nd_gossip_packet_walk(p, n, sw->ws + W_WALK, W_UDP, on_walk, &rx);
    if (e)
        sw->mx.decode_errors++;
    leave_step(sw);
}

int nd_swim_stream_accept(struct nd_swim *sw, uint64_t now_ms, const struct nd_swim_addr *from,
                          uint32_t *sid)
{
    struct stream *s;

    advance(sw, now_ms);
    if (!(s = stream_alloc(sw, ST_IN, from)))
        return ND_GOSSIP_E_LIMIT;
    sw->mx.streams_in++;
    *sid = s->sid;
    return 0;
}

void nd_swim_stream_input(struct nd_swim *sw, uint64_t now_ms, uint32_t sid, const uint8_t *p,
                          size_t n)
{
    struct stream *s;
    struct nd_gossip_stream_msg pm;
    int e;

    advance(sw, now_ms);
    if (!(s = stream_get(sw, sid)) || !n)
        return;
    sw->mx.stream_bytes_in += n;
    if (s->len + n > (size_t)sw->c.stream_max + 64) {
        sw->mx.stream_errors++;
        stream_close(sw, s);
        return;
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        uint8_t *b;

        while (cap < s->len + n)
            cap *= 2;
        if (!(b = realloc(s->in, cap))) {
            stream_close(sw, s);
            return;
        }
        s->in = b;
        s->cap = cap;
    }
    memcpy(s->in + s->len, p, n);
    s->len += n;
    e = nd_gossip_stream_parse(s->in, s->len, sw->keyed ? &sw->kr : NULL, sw->ws + W_STREAM,
                               sw->c.stream_max, &pm);
    if (e == ND_GOSSIP_E_TRUNC)
        return;
    if (e) {
        if (e == ND_GOSSIP_E_PLAIN || e == ND_GOSSIP_E_KEY || e == ND_GOSSIP_E_DECRYPT)
            sw->mx.decrypt_errors++;
        else
            sw->mx.stream_errors++;
        stream_close(sw, s);
        return;
    }
    stream_message(sw, s, &pm);
    leave_step(sw);
}

void nd_swim_stream_end(struct nd_swim *sw, uint64_t now_ms, uint32_t sid)
{
    struct stream *s;

    advance(sw, now_ms);
    if (!(s = stream_get(sw, sid)))
        return;
    if (s->kind != ST_IN || s->len)
        sw->mx.stream_errors++;
    stream_release(sw, s);
}

void nd_swim_tick(struct nd_swim *sw, uint64_t now_ms)
{
    advance(sw, now_ms);
}

int nd_swim_next_ms(const struct nd_swim *sw)
{
    return nd_wheel_next(&sw->wheel);
}

const struct nd_swim_metrics *nd_swim_metrics(struct nd_swim *sw)
{
    sw->mx.health = (uint32_t)sw->health;
    sw->mx.queued = sw->q[Q_MEMBER].n + sw->q[Q_EVENT].n;
    sw->mx.events_buffered = sw->ev.events;
    return &sw->mx;
}

void nd_swim_each(struct nd_swim *sw, void (*fn)(void *arg, const struct nd_swim_member *m),
                  void *arg)
{
    struct nd_swim_member info;

    for (uint32_t i = 0; i < sw->n; i++) {
        member_info(sw, sw->m[i], &info);
        fn(arg, &info);
    }
}

int nd_swim_find(struct nd_swim *sw, const char *name, struct nd_swim_member *m)
{
    struct member *x = find(sw, name, strlen(name));

    if (!x)
        return -1;
    member_info(sw, x, m);
    return 0;
}

const char *nd_swim_self_name(const struct nd_swim *sw)
{
    return sw->name;
}

const char *nd_swim_status_name(unsigned status)
{
    static const char *const names[] = {"alive", "leaving", "left", "failed"};

    return status < 4 ? names[status] : "unknown";
}

const char *nd_swim_state_name(unsigned state)
{
    static const char *const names[] = {"alive", "suspect", "dead", "left"};

    return state < 4 ? names[state] : "unknown";
}

const char *nd_swim_addr_str(const struct nd_swim_addr *a, char *buf, size_t cap)
{
    if (a->len == 4) {
        snprintf(buf, cap, "%u.%u.%u.%u:%u", a->ip[0], a->ip[1], a->ip[2], a->ip[3], a->port);
    } else {
        char *p = buf;
        size_t left = cap;
        int w = snprintf(p, left, "[");

        for (int i = 0; i < 16 && w > 0 && (size_t)w < left; i += 2) {
            p += w;
            left -= (size_t)w;
            w = snprintf(p, left, "%s%x", i ? ":" : "", a->ip[i] << 8 | a->ip[i + 1]);
        }
        if (w > 0 && (size_t)w < left) {
            p += w;
            left -= (size_t)w;
            snprintf(p, left, "]:%u", a->port);
        }
    }
    return buf;
}
