/*
 * The SWIM engine on control-plane sockets (driver.h, core/ctlsock.h): a UDP socket and a TCP
 * listener on the gossip address, outgoing streams for push/pull, all driven by the callbacks of
 * the socket set, which runs on kernel sockets or on the DPDK workers' stacks alike.
 */
#include "driver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/random.h>
#include <time.h>

#include "buf.h"
#include "catalog.h"
#include "config.h"
#include "ctlsock.h"
#include "keyring.h"
#include "log.h"
#include "serf.h"
#include "swim.h"
#include "wire.h"

#define LINGER_MS 2000      /* a closed stream: flush, half-close, read to EOF, this long at most */
#define JOIN_RETRY_MS 5000  /* seeds that did not answer are tried again, until one does */
#define UDP_BATCH 256       /* datagrams read per run */
#define OUT_MAX (16u << 20) /* bytes queued on one stream */
#define SVC_EVERY_MS 30000  /* our service list (beyond Meta) is gossiped again this often */
#define SVC_JOIN_MS 1000    /* and this soon after a member joins (it ignores older events) */

struct conn {
    struct nd_gossip_driver *g;
    struct nd_ctl_sock *s;
    uint32_t sid;
    bool attached;   /* the engine still owns sid */
    bool connecting; /* outgoing, connect not finished */
    bool closing;    /* the engine is done: flush, half-close, wait for EOF */
    bool shut;       /* half-closed */
    uint64_t deadline;
    uint8_t *out;
    size_t olen, ocap;
};

/* A subscription (nd_gossip_driver_subscribe). */
struct sub {
    int id;
    char *prefix;
    size_t plen;
    nd_gossip_event_fn fn;
    void *arg;
};

/* A new event waiting for the subscribers, or one kept for GET /events. */
struct evcopy {
    struct evcopy *next;
    uint64_t ltime;
    int64_t time_ms; /* wall clock, when it arrived */
    bool cc, self;
    uint32_t name_len, payload_len;
    uint8_t data[]; /* name, payload */
};

/* A query of ours (nd_gossip_driver_query): its acks and responses, for GET /queries. */
struct qrec {
    uint32_t id;       /* also the engine's handle for it */
    uint64_t deadline; /* monotonic ms */
    bool ack;
    char *name;
    json_t *acks;      /* array of node names */
    json_t *responses; /* array of {from, payload | payload_hex} */
    uint64_t dropped;  /* replies beyond ND_GOSSIP_QUERY_REPLIES_MAX */
};

struct nd_gossip_driver {
    struct nd_swim *sw;
    struct nd_ctl *ctl;
    struct nd_ctl_sock *udp, *lsock;
    struct conn **conns;
    unsigned nconns, capconns;
    struct nd_swim_addr *seeds;
    size_t nseeds;
    uint64_t next_join;
    bool joined;
    char *name;
    uint8_t buf[65536];
    void (*on_member)(void *arg, const struct nd_swim_member *m, enum nd_swim_event ev);
    void *on_member_arg;

    struct sub *subs;
    unsigned nsubs;
    int last_sub;
    struct evcopy *pend_head, *pend_tail; /* FIFO of new events for the subscribers */
    unsigned npend;
    bool dispatching;
    struct evcopy *recent[ND_GOSSIP_RECENT_EVENTS]; /* ring, for GET /events */
    unsigned recent_next;
    uint64_t pending_dropped, reserved_events;
    uint64_t warn_at;   /* refused events: one log line per second at most */
    unsigned warn_held; /* and how many were not logged */

    /* our services beyond Meta (catalog.h): the full list, gossiped in user events */
    char **svc_names, **svc_values;
    unsigned nsvc;
    uint64_t svc_next; /* when to send it (again) */

    struct qrec queries[ND_GOSSIP_QUERIES_KEPT]; /* ours, running or recently finished */
    uint32_t query_ids;
    uint64_t conf_keys_hash; /* the configured keyring at the last (re)load */
    uint64_t queries_answered_nodus;
};

static uint64_t now_ms(void);
static void events_dispatch(struct nd_gossip_driver *g);
static int sbuf_cb(const char *p, size_t n, void *arg);

static void svc_clear(struct nd_gossip_driver *g)
{
    for (unsigned i = 0; i < g->nsvc; i++) {
        free(g->svc_names[i]);
        free(g->svc_values[i]);
    }
    free(g->svc_names);
    free(g->svc_values);
    g->svc_names = g->svc_values = NULL;
    g->nsvc = 0;
}

/* gc's service list (beyond Meta) becomes ours: sent at once, then every SVC_EVERY_MS. */
static int svc_set(struct nd_gossip_driver *g, const struct nd_gossip_conf *gc)
{
    svc_clear(g);
    if (!gc->nsvc_list)
        return 0;
    g->svc_names = calloc(gc->nsvc_list, sizeof(char *));
    g->svc_values = calloc(gc->nsvc_list, sizeof(char *));
    if (!g->svc_names || !g->svc_values)
        goto oom;
    for (unsigned i = 0; i < gc->nsvc_list; i++, g->nsvc++)
        if (!(g->svc_names[i] = strdup(gc->svc_list[i].key)) ||
            !(g->svc_values[i] = strdup(gc->svc_list[i].val))) {
            free(g->svc_names[i]);
            goto oom;
        }
    g->svc_next = now_ms();
    return 0;
oom:
    svc_clear(g);
    return ND_GOSSIP_E_SPACE;
}

/* Gossips our full service list, in parts (catalog.h, "Services beyond Meta"). */
static void svc_publish(struct nd_gossip_driver *g, uint64_t now)
{
    static char parts[ND_CAT_PARTS_MAX][ND_CAT_PART_MAX + 1];
    unsigned nparts;
    uint32_t hash;

    g->svc_next = now + SVC_EVERY_MS;
    if (nd_cat_list_encode(g->name, (const char *const *)g->svc_names,
                           (const char *const *)g->svc_values, g->nsvc, parts, &nparts,
                           &hash) < 0) {
        nd_warn("gossip: the service list does not fit in user events: not sent");
        return;
    }
    for (unsigned k = 0; k < nparts; k++) {
        int e = nd_swim_user_event(g->sw, now, ND_CAT_EVENT, sizeof ND_CAT_EVENT - 1, parts[k],
                                   strlen(parts[k]), false);

        if (e)
            nd_warn("gossip: service list part %u of %u not sent: %s", k + 1, nparts,
                    nd_gossip_strerror(e));
    }
    nd_debug("gossip: service list %08x sent (%u services, %u part(s))", hash, g->nsvc, nparts);
}

int nd_gossip_driver_set_tags(struct nd_gossip_driver *g, const struct nd_gossip_conf *gc)
{
    struct nd_swim_tag tags[64];
    unsigned n = 0;
    int e;

    for (; n < gc->ntags && n < 64; n++) {
        tags[n].key = gc->tags[n].key;
        tags[n].value = gc->tags[n].val;
    }
    if ((e = nd_swim_set_tags(g->sw, now_ms(), tags, n)))
        return e;
    return svc_set(g, gc);
}

static uint64_t conf_keys_hash(const struct nd_gossip_conf *gc)
{
    uint64_t h = 1469598103934665603ull;

    for (unsigned i = 0; i < gc->nkeyring; i++)
        for (const char *c = gc->keyring[i];; c++) {
            h = (h ^ (uint8_t)*c) * 1099511628211ull;
            if (!*c)
                break;
        }
    return h;
}

int nd_gossip_driver_set_keyring(struct nd_gossip_driver *g, const struct nd_gossip_conf *gc)
{
    struct nd_keyring kr;
    uint64_t h = conf_keys_hash(gc);
    int e = 0;

    if (h == g->conf_keys_hash) /* keys changed by serf key queries stay */
        return 0;
    nd_keyring_init(&kr);
    for (unsigned i = 0; i < gc->nkeyring && !e; i++)
        e = nd_keyring_add_base64(&kr, gc->keyring[i], strlen(gc->keyring[i]));
    if (!e)
        e = nd_swim_set_keyring(g->sw, &kr);
    if (!e)
        g->conf_keys_hash = h;
    nd_keyring_wipe(&kr);
    return e;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void to_swim(const struct nd_ctl_addr *c, struct nd_swim_addr *a)
{
    memset(a, 0, sizeof *a);
    a->len = c->len;
    memcpy(a->ip, c->ip, sizeof a->ip);
    a->port = c->port;
}

static void to_ctl(const struct nd_swim_addr *a, struct nd_ctl_addr *c)
{
    memset(c, 0, sizeof *c);
    c->len = a->len;
    memcpy(c->ip, a->ip, sizeof c->ip);
    c->port = a->port;
}

static void addr_to_swim(const struct nd_addr *na, struct nd_swim_addr *a)
{
    struct nd_ctl_addr c;

    nd_ctl_addr_from(&na->ss, &c);
    to_swim(&c, a);
}

/* ---- streams ------------------------------------------------------------------------------ */

static struct conn *conn_by_sid(struct nd_gossip_driver *g, uint32_t sid)
{
    for (unsigned i = 0; i < g->nconns; i++)
        if (g->conns[i]->attached && g->conns[i]->sid == sid)
            return g->conns[i];
    return NULL;
}

static struct conn *conn_add(struct nd_gossip_driver *g, uint32_t sid)
{
    struct conn *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    if (g->nconns == g->capconns) {
        unsigned cap = g->capconns ? g->capconns * 2 : 16;
        struct conn **a = realloc(g->conns, cap * sizeof *a);

        if (!a) {
            free(c);
            return NULL;
        }
        g->conns = a;
        g->capconns = cap;
    }
    c->g = g;
    c->sid = sid;
    c->attached = true;
    g->conns[g->nconns++] = c;
    return c;
}

static void conn_free(struct nd_gossip_driver *g, struct conn *c)
{
    for (unsigned i = 0; i < g->nconns; i++)
        if (g->conns[i] == c) {
            g->conns[i] = g->conns[--g->nconns];
            break;
        }
    if (c->s)
        nd_ctl_close(c->s, false);
    free(c->out);
    free(c);
}

/* The connection failed or the peer closed it: tell the engine (if it still cares), drop it. */
static void conn_end(struct nd_gossip_driver *g, struct conn *c)
{
    if (c->attached) {
        c->attached = false;
        nd_swim_stream_end(g->sw, now_ms(), c->sid);
    }
    conn_free(g, c);
}

/* Writes what is queued. -1 on a write error. */
static int conn_flush(struct conn *c)
{
    while (c->olen && !c->connecting) {
        ssize_t w = nd_ctl_write(c->s, c->out, c->olen);

        if (w == -EAGAIN)
            break; /* OUT comes when there is room */
        if (w <= 0)
            return -1;
        memmove(c->out, c->out + w, c->olen - (size_t)w);
        c->olen -= (size_t)w;
    }
    if (c->closing && !c->olen && !c->connecting && !c->shut) {
        nd_ctl_shutdown(c->s);
        c->shut = true;
    }
    return 0;
}

static void conn_event(struct nd_ctl_sock *s, unsigned ev, void *arg)
{
    struct conn *c = arg;
    struct nd_gossip_driver *g = c->g;

    (void)s;
    if (c->connecting && (ev & (ND_CTL_OUT | ND_CTL_ERR))) {
        if (nd_ctl_connect_result(c->s) != 0) {
            conn_end(g, c);
            return;
        }
        c->connecting = false;
    }
    if ((ev & ND_CTL_OUT) && conn_flush(c) < 0) {
        conn_end(g, c);
        return;
    }
    if (ev & (ND_CTL_IN | ND_CTL_ERR)) {
        for (int rounds = 0; rounds < 64; rounds++) {
            ssize_t r = nd_ctl_read(c->s, g->buf, sizeof g->buf);

            if (r == -EAGAIN)
                break;
            if (r <= 0) {
                conn_end(g, c);
                return;
            }
            if (c->attached)
                nd_swim_stream_input(g->sw, now_ms(), c->sid, g->buf, (size_t)r);
        }
        events_dispatch(g);
    }
}

static int io_stream_open(void *arg, uint32_t sid, const struct nd_swim_addr *to)
{
    struct nd_gossip_driver *g = arg;
    struct nd_ctl_addr a;
    struct conn *c;
    int err = 0;

    to_ctl(to, &a);
    if (!(c = conn_add(g, sid)))
        return -1;
    c->connecting = true;
    if (!(c->s = nd_ctl_connect(g->ctl, &a, conn_event, c, &err))) {
        c->attached = false;
        conn_free(g, c);
        return -1;
    }
    return 0;
}

static int io_stream_send(void *arg, uint32_t sid, const uint8_t *p, size_t n)
{
    struct nd_gossip_driver *g = arg;
    struct conn *c = conn_by_sid(g, sid);

    if (!c || c->olen + n > OUT_MAX)
        return -1;
    if (c->olen + n > c->ocap) {
        size_t cap = c->ocap ? c->ocap : 4096;
        uint8_t *b;

        while (cap < c->olen + n)
            cap *= 2;
        if (!(b = realloc(c->out, cap)))
            return -1;
        c->out = b;
        c->ocap = cap;
    }
    memcpy(c->out + c->olen, p, n);
    c->olen += n;
    return conn_flush(c);
}

static void io_stream_close(void *arg, uint32_t sid)
{
    struct nd_gossip_driver *g = arg;
    struct conn *c = conn_by_sid(g, sid);

    if (!c)
        return;
    c->attached = false;
    c->closing = true;
    c->deadline = now_ms() + LINGER_MS;
    conn_flush(c); /* errors: the linger deadline ends it */
}

static void io_send(void *arg, const struct nd_swim_addr *to, const uint8_t *p, size_t n)
{
    struct nd_gossip_driver *g = arg;
    struct nd_ctl_addr a;

    to_ctl(to, &a);
    nd_ctl_sendto(g->udp, &a, p, n); /* UDP: a lost datagram is the engine's business */
}

static void io_random(void *arg, void *p, size_t n)
{
    uint8_t *b = p;

    (void)arg;
    while (n) {
        ssize_t r = getrandom(b, n, 0);

        if (r <= 0)
            continue;
        b += r;
        n -= (size_t)r;
    }
}

static void io_event(void *arg, const struct nd_swim_member *m, enum nd_swim_event ev)
{
    struct nd_gossip_driver *g = arg;
    char a[64];

    if (g->on_member)
        g->on_member(g->on_member_arg, m, ev);
    if (m->self)
        return;
    if (ev == ND_SWIM_EV_JOIN && g->nsvc && g->svc_next > now_ms() + SVC_JOIN_MS)
        g->svc_next = now_ms() + SVC_JOIN_MS; /* the newcomer ignores what was sent before */
    nd_swim_addr_str(&m->addr, a, sizeof a);
    switch (ev) {
    case ND_SWIM_EV_JOIN:
        nd_info("gossip: member %s joined (%s)", m->name, a);
        break;
    case ND_SWIM_EV_FAILED:
        nd_info("gossip: member %s failed (%s)", m->name, a);
        break;
    case ND_SWIM_EV_LEFT:
        nd_info("gossip: member %s left (%s)", m->name, a);
        break;
    case ND_SWIM_EV_SUSPECT:
        nd_debug("gossip: member %s suspect", m->name);
        break;
    case ND_SWIM_EV_UPDATE:
        nd_info("gossip: member %s updated", m->name);
        break;
    case ND_SWIM_EV_REAP:
        nd_debug("gossip: member %s forgotten", m->name);
        break;
    default:
        break;
    }
}

/* ---- user events -------------------------------------------------------------------------- */

static struct evcopy *evcopy_new(const struct nd_swim_user_event *ev)
{
    struct evcopy *c = malloc(sizeof *c + ev->name_len + ev->payload_len);
    struct timespec ts;

    if (!c)
        return NULL;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->next = NULL;
    c->ltime = ev->ltime;
    c->time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    c->cc = ev->coalesce;
    c->self = ev->self;
    c->name_len = ev->name_len;
    c->payload_len = ev->payload_len;
    if (ev->name_len)
        memcpy(c->data, ev->name, ev->name_len);
    if (ev->payload_len)
        memcpy(c->data + ev->name_len, ev->payload, ev->payload_len);
    return c;
}

static bool reserved(const void *name, size_t len)
{
    size_t n = sizeof ND_GOSSIP_EVENT_RESERVED - 1;

    return len >= n && memcmp(name, ND_GOSSIP_EVENT_RESERVED, n) == 0;
}

/* A printable copy of an event name for a log line. */
static const char *printable(const uint8_t *p, size_t n, char *buf, size_t cap)
{
    size_t k = 0;

    for (size_t i = 0; i < n && k + 4 < cap; i++)
        buf[k++] = p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' ? (char)p[i] : '?';
    if (n && k + 4 >= cap)
        memcpy(buf + k, "...", 3), k += 3;
    buf[k] = 0;
    return buf;
}

static void io_user_event(void *arg, const struct nd_swim_user_event *ev)
{
    struct nd_gossip_driver *g = arg;
    bool ours = reserved(ev->name, ev->name_len);
    struct evcopy *c;
    char name[96];

    if (ev->refused && !strcmp(ev->refused, "before_join")) { /* expected after a join */
        nd_debug("gossip: user event \"%s\" (event time %llu) is older than our join: ignored",
                 printable(ev->name, ev->name_len, name, sizeof name),
                 (unsigned long long)ev->ltime);
        return;
    }
    if (ev->refused) {
        uint64_t t = now_ms();

        if (t < g->warn_at) {
            g->warn_held++;
            return;
        }
        g->warn_at = t + 1000;
        nd_warn("gossip: user event \"%s\" (event time %llu, clock %llu) dropped: %s%s",
                printable(ev->name, ev->name_len, name, sizeof name), (unsigned long long)ev->ltime,
                (unsigned long long)nd_swim_event_clock(g->sw), ev->refused,
                g->warn_held ? " (and more not logged in the last second)" : "");
        g->warn_held = 0;
        return;
    }
    if (ours) {
        g->reserved_events++;
        nd_debug("gossip: event \"%s\" (%u bytes)",
                 printable(ev->name, ev->name_len, name, sizeof name), ev->payload_len);
    } else {
        nd_info("gossip: %s event \"%s\" (%u bytes, event time %llu)",
                ev->self ? "sent" : "received",
                printable(ev->name, ev->name_len, name, sizeof name), ev->payload_len,
                (unsigned long long)ev->ltime);
        if ((c = evcopy_new(ev))) { /* GET /events */
            free(g->recent[g->recent_next]);
            g->recent[g->recent_next] = c;
            g->recent_next = (g->recent_next + 1) % ND_GOSSIP_RECENT_EVENTS;
        }
    }
    if (!g->nsubs)
        return;
    if (g->npend >= ND_GOSSIP_PENDING_EVENTS || !(c = evcopy_new(ev))) {
        g->pending_dropped++;
        return;
    }
    if (g->pend_tail)
        g->pend_tail->next = c;
    else
        g->pend_head = c;
    g->pend_tail = c;
    g->npend++;
}

/* o.payload = p[0..n) when it is UTF-8, else o.payload_hex (GET /events, GET /queries) */
static void set_payload(json_t *o, const uint8_t *p, size_t n)
{
    json_t *s = json_stringn((const char *)p, n);
    char *hex;

    if (s) {
        json_object_set_new(o, "payload", s);
    } else if ((hex = malloc(2 * n + 1))) {
        for (size_t i = 0; i < n; i++)
            sprintf(hex + 2 * i, "%02x", p[i]);
        hex[2 * n] = 0;
        json_object_set_new(o, "payload_hex", json_string(hex));
        free(hex);
    }
}

/* ---- serf queries -------------------------------------------------------------------------- */

/* A user query for this node: the engine acked it; nodus:services gets our service list. */
static int io_query(void *arg, const struct nd_swim_query *q, uint8_t *resp, size_t cap,
                    size_t *len)
{
    struct nd_gossip_driver *g = arg;
    static const char svc_query[] = ND_GOSSIP_QUERY_SERVICES;
    char name[96];
    size_t n = 0;

    nd_debug("gossip: query \"%s\" from %.*s", printable(q->name, q->name_len, name, sizeof name),
             (int)q->from_len, (const char *)q->from);
    if (q->name_len != sizeof svc_query - 1 || memcmp(q->name, svc_query, q->name_len))
        return 0;
    /* "NAME VALUE" lines, VALUE as in a svc: tag; the full list when it is beyond Meta */
    unsigned total = 0, shown = 0;
    char line[ND_GOSSIP_META_MAX + 80];

    if (g->nsvc) {
        total = g->nsvc;
        for (unsigned i = 0; i < g->nsvc; i++) {
            int l = snprintf(line, sizeof line, "%s %s\n", g->svc_names[i], g->svc_values[i]);

            if (l < 0 || (size_t)l + n + 32 > cap)
                break;
            memcpy(resp + n, line, (size_t)l);
            n += (size_t)l;
            shown++;
        }
    } else {
        struct nd_swim_member self;
        struct nd_serf_tag t[64];
        size_t nt = 0;

        if (nd_swim_find(g->sw, g->name, &self) == 0)
            nd_serf_tags_decode(self.meta, self.meta_len, t, 64, &nt);
        for (size_t i = 0; i < nt; i++) {
            if (t[i].key.len <= 4 || memcmp(t[i].key.p, "svc:", 4))
                continue;
            total++;
            int l = snprintf(line, sizeof line, "%.*s %.*s\n", (int)t[i].key.len - 4,
                             (const char *)t[i].key.p + 4, (int)t[i].value.len,
                             (const char *)t[i].value.p);

            if (l < 0 || (size_t)l + n + 32 > cap)
                continue;
            memcpy(resp + n, line, (size_t)l);
            n += (size_t)l;
            shown++;
        }
    }
    if (shown < total)
        n += (size_t)snprintf((char *)resp + n, cap - n, "+%u more\n", total - shown);
    *len = n;
    g->queries_answered_nodus++;
    return 1;
}

static struct qrec *qrec_by_handle(struct nd_gossip_driver *g, uint32_t handle)
{
    for (unsigned i = 0; i < ND_GOSSIP_QUERIES_KEPT; i++)
        if (g->queries[i].name && g->queries[i].id == handle)
            return &g->queries[i];
    return NULL;
}

static void qrec_clear(struct qrec *r)
{
    free(r->name);
    json_decref(r->acks);
    json_decref(r->responses);
    memset(r, 0, sizeof *r);
}

static bool json_has_from(json_t *arr, const char *from, bool objects)
{
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(objects ? json_object_get(v, "from") : v);

        if (s && !strcmp(s, from))
            return true;
    }
    return false;
}

static void io_query_reply(void *arg, const struct nd_swim_query_reply *r)
{
    struct nd_gossip_driver *g = arg;
    struct qrec *q = qrec_by_handle(g, r->handle);
    char from[ND_GOSSIP_NAME_MAX + 1];

    if (!q || memchr(r->from, 0, r->from_len))
        return;
    memcpy(from, r->from, r->from_len);
    from[r->from_len] = 0;
    if (json_has_from(r->ack ? q->acks : q->responses, from, !r->ack))
        return; /* a relayed copy */
    if (json_array_size(q->acks) + json_array_size(q->responses) >= ND_GOSSIP_QUERY_REPLIES_MAX) {
        q->dropped++;
        return;
    }
    if (r->ack) {
        json_array_append_new(q->acks, json_string(from));
        return;
    }
    json_t *o = json_pack("{s:s}", "from", from);

    if (!o)
        return;
    set_payload(o, r->payload, r->payload_len);
    json_array_append_new(q->responses, o);
}

static void io_keyring(void *arg, const char *op, const uint8_t *from, size_t from_len)
{
    struct nd_gossip_driver *g = arg;

    nd_info("gossip: keyring: key %s by a serf key query from %.*s (%u key(s) now)",
            !strcmp(op, "install") ? "installed"
            : !strcmp(op, "use")   ? "made primary"
                                   : "removed",
            (int)from_len, (const char *)from, nd_swim_keyring(g->sw)->n);
}

int nd_gossip_driver_query(struct nd_gossip_driver *g, const struct nd_swim_query_param *p,
                           uint32_t *id, uint32_t *timeout_ms)
{
    struct nd_swim_query_param q = *p;
    uint64_t t = now_ms();
    struct qrec *slot = NULL;
    int e;

    for (unsigned i = 0; i < ND_GOSSIP_QUERIES_KEPT; i++) { /* the oldest finished goes */
        struct qrec *r = &g->queries[i];

        if (!r->name) {
            slot = r;
            break;
        }
        if (r->deadline < t && (!slot || r->deadline < slot->deadline))
            slot = r;
    }
    if (!slot)
        return ND_GOSSIP_E_LIMIT;
    /* ready before the engine runs: our own ack and response come during nd_swim_query */
    qrec_clear(slot);
    slot->id = q.handle = ++g->query_ids;
    slot->deadline = UINT64_MAX;
    slot->ack = p->ack;
    slot->name = strndup(p->name, p->name_len);
    slot->acks = json_array();
    slot->responses = json_array();
    if (!slot->name || !slot->acks || !slot->responses) {
        qrec_clear(slot);
        return ND_GOSSIP_E_SPACE;
    }
    if ((e = nd_swim_query(g->sw, t, &q, timeout_ms))) {
        qrec_clear(slot);
        return e;
    }
    slot->deadline = t + *timeout_ms;
    *id = slot->id;
    return 0;
}

static json_t *query_json(const struct qrec *r, uint64_t t)
{
    return json_pack("{s:I,s:s,s:b,s:b,s:I,s:O,s:O,s:I}", "id", (json_int_t)r->id, "name", r->name,
                     "ack", r->ack, "done", t > r->deadline, "remaining_ms",
                     (json_int_t)(t > r->deadline ? 0 : r->deadline - t), "acks", r->acks,
                     "responses", r->responses, "dropped", (json_int_t)r->dropped);
}

int nd_gossip_driver_queries_json(struct nd_gossip_driver *g, uint32_t id, struct nd_sbuf *out)
{
    const struct nd_swim_metrics *m = nd_swim_metrics(g->sw);
    json_t *root = NULL, *arr;
    uint64_t t = now_ms();
    int rc;

    if (id) {
        for (unsigned i = 0; i < ND_GOSSIP_QUERIES_KEPT && !root; i++)
            if (g->queries[i].name && g->queries[i].id == id)
                root = query_json(&g->queries[i], t);
        if (!root)
            return 1;
    } else {
        if (!(root = json_object()) || !(arr = json_array()))
            return -1;
        for (unsigned i = 0; i < ND_GOSSIP_QUERIES_KEPT; i++)
            if (g->queries[i].name)
                json_array_append_new(arr, query_json(&g->queries[i], t));
        json_object_set_new(root, "queries", arr);
        json_object_set_new(
            root, "metrics",
            json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "received",
                      (json_int_t)m->queries_received, "duplicate",
                      (json_int_t)m->queries_duplicate, "filtered", (json_int_t)m->queries_filtered,
                      "late", (json_int_t)m->queries_late, "dropped",
                      (json_int_t)m->queries_dropped, "bad_filters",
                      (json_int_t)m->query_bad_filters, "acks_sent", (json_int_t)m->query_acks_sent,
                      "responses_sent", (json_int_t)m->query_responses_sent, "relayed",
                      (json_int_t)m->queries_relayed, "sent", (json_int_t)m->queries_sent,
                      "acks_received", (json_int_t)m->query_acks_received, "responses_received",
                      (json_int_t)m->query_responses_received, "replies_dropped",
                      (json_int_t)m->query_replies_dropped, "keyring_changes",
                      (json_int_t)m->keyring_changes, "timeout_default_ms",
                      (json_int_t)nd_swim_query_timeout_ms(g->sw)));
    }
    if (!root)
        return -1;
    rc = json_dump_callback(root, sbuf_cb, out, JSON_INDENT(2));
    json_decref(root);
    nd_sbuf_adds(out, "\n");
    return rc == 0 && !out->oom ? 0 : -1;
}

/* Hands the new events to the subscribers, once the engine is out of the call that got them. */
static void events_dispatch(struct nd_gossip_driver *g)
{
    if (g->dispatching) /* a subscriber published: the loop below takes its event too */
        return;
    g->dispatching = true;
    while (g->pend_head) {
        struct evcopy *c = g->pend_head;
        struct nd_gossip_event ev = {.ltime = c->ltime,
                                     .name = (const char *)c->data,
                                     .name_len = c->name_len,
                                     .payload = c->data + c->name_len,
                                     .payload_len = c->payload_len,
                                     .coalesce = c->cc,
                                     .self = c->self};

        if (!(g->pend_head = c->next))
            g->pend_tail = NULL;
        g->npend--;
        for (unsigned i = 0; i < g->nsubs; i++) {
            const struct sub *sb = &g->subs[i];

            if (c->name_len >= sb->plen && memcmp(c->data, sb->prefix, sb->plen) == 0)
                sb->fn(sb->arg, &ev); /* may subscribe or unsubscribe: g->subs is re-read */
        }
        free(c);
    }
    g->dispatching = false;
}

int nd_gossip_driver_subscribe(struct nd_gossip_driver *g, const char *prefix,
                               nd_gossip_event_fn fn, void *arg)
{
    struct sub *s = realloc(g->subs, (g->nsubs + 1) * sizeof *s);
    char *p = strdup(prefix);

    if (!s || !p) {
        if (s)
            g->subs = s;
        free(p);
        return -1;
    }
    g->subs = s;
    s[g->nsubs] =
        (struct sub){.id = ++g->last_sub, .prefix = p, .plen = strlen(p), .fn = fn, .arg = arg};
    g->nsubs++;
    return g->last_sub;
}

void nd_gossip_driver_unsubscribe(struct nd_gossip_driver *g, int handle)
{
    for (unsigned i = 0; i < g->nsubs; i++)
        if (g->subs[i].id == handle) {
            free(g->subs[i].prefix);
            memmove(&g->subs[i], &g->subs[i + 1], (g->nsubs - i - 1) * sizeof *g->subs);
            g->nsubs--;
            return;
        }
}

int nd_gossip_driver_publish(struct nd_gossip_driver *g, const void *name, size_t name_len,
                             const void *payload, size_t payload_len, bool coalesce)
{
    int e = nd_swim_user_event(g->sw, now_ms(), name, name_len, payload, payload_len, coalesce);

    events_dispatch(g);
    return e;
}

/* ---- sockets ------------------------------------------------------------------------------ */

static void listen_event(struct nd_ctl_sock *l, unsigned ev, void *arg)
{
    struct nd_gossip_driver *g = arg;

    (void)ev;
    for (;;) {
        struct nd_ctl_addr peer;
        struct nd_swim_addr from;
        struct nd_ctl_sock *s;
        struct conn *c;
        uint32_t sid;
        int err;

        if (!(s = nd_ctl_accept(l, conn_event, NULL, &peer, &err)))
            return;
        to_swim(&peer, &from);
        if (nd_swim_stream_accept(g->sw, now_ms(), &from, &sid) || !(c = conn_add(g, sid))) {
            nd_ctl_close(s, false);
            continue;
        }
        c->s = s;
        s->arg = c;
    }
}

static void udp_event(struct nd_ctl_sock *s, unsigned ev, void *arg)
{
    struct nd_gossip_driver *g = arg;

    (void)ev;
    for (int i = 0; i < UDP_BATCH; i++) {
        struct nd_ctl_addr from;
        struct nd_swim_addr a;
        ssize_t r = nd_ctl_recvfrom(s, g->buf, sizeof g->buf, &from);

        if (r < 0)
            break;
        to_swim(&from, &a);
        nd_swim_packet(g->sw, now_ms(), &a, g->buf, (size_t)r);
    }
    events_dispatch(g);
}

void nd_gossip_driver_run(struct nd_gossip_driver *g)
{
    uint64_t t = now_ms();

    nd_swim_tick(g->sw, t);
    if (g->nsvc && t >= g->svc_next)
        svc_publish(g, t);
    events_dispatch(g);
    for (unsigned i = 0; i < g->nconns;) {
        struct conn *c = g->conns[i];

        if (c->closing && t >= c->deadline) {
            conn_free(g, c);
            continue;
        }
        i++;
    }
    if (!g->joined && g->nseeds) {
        const struct nd_swim_metrics *m = nd_swim_metrics(g->sw);

        if (m->members_alive + m->members_suspect > 1) {
            g->joined = true;
        } else if (t >= g->next_join) {
            g->next_join = t + JOIN_RETRY_MS;
            nd_swim_join(g->sw, t, g->seeds, g->nseeds);
        }
    }
}

int nd_gossip_driver_next_ms(const struct nd_gossip_driver *g)
{
    int ms = nd_swim_next_ms(g->sw);

    if (g->nconns && (ms < 0 || ms > 100))
        ms = 100;
    if (!g->joined && g->nseeds && (ms < 0 || ms > 1000))
        ms = 1000;
    if (g->nsvc) {
        uint64_t t = now_ms();
        int left = g->svc_next <= t ? 0 : (int)(g->svc_next - t);

        if (ms < 0 || left < ms)
            ms = left;
    }
    return ms;
}

struct nd_swim *nd_gossip_driver_engine(struct nd_gossip_driver *g)
{
    return g->sw;
}

void nd_gossip_driver_leave(struct nd_gossip_driver *g, uint32_t max_ms)
{
    uint64_t end = now_ms() + max_ms;

    nd_swim_leave(g->sw, now_ms());
    while (!nd_swim_leave_done(g->sw) && now_ms() < end) {
        struct pollfd pfd = {.fd = nd_ctl_fd(g->ctl), .events = POLLIN};
        int ms = nd_gossip_driver_next_ms(g);
        uint64_t left = end - now_ms();

        if (ms < 0 || (uint64_t)ms > left)
            ms = (int)left;
        poll(&pfd, 1, ms); /* only a wake-up: run() handles what is ready */
        nd_ctl_run(g->ctl);
        nd_gossip_driver_run(g);
    }
    for (unsigned i = 0; i < g->nconns; i++) /* let queued stream bytes go */
        conn_flush(g->conns[i]);
    nd_ctl_settle(g->ctl, 1000);
}

/* ---- setup -------------------------------------------------------------------------------- */

struct nd_gossip_driver *nd_gossip_driver_new(struct nd_ctl *ctl, const struct nd_gossip_conf *gc,
                                              const char *node_name, char **err)
{
    struct nd_gossip_driver *g = calloc(1, sizeof *g);
    struct nd_swim_tag tags[64];
    struct nd_keyring kr;
    struct nd_swim_config c;
    struct nd_swim_io io = {.send = io_send,
                            .stream_open = io_stream_open,
                            .stream_send = io_stream_send,
                            .stream_close = io_stream_close,
                            .random = io_random,
                            .event = io_event,
                            .user_event = io_user_event,
                            .query = io_query,
                            .query_reply = io_query_reply,
                            .keyring = io_keyring};
    int e = 0;

    *err = NULL;
    if (!g)
        goto oom;
    g->ctl = ctl;
    g->name = strdup(gc->name ? gc->name : node_name);
    g->seeds = calloc(gc->njoin ? gc->njoin : 1, sizeof *g->seeds);
    if (!g->name || !g->seeds)
        goto oom;
    if (!(g->udp = nd_ctl_udp(ctl, &gc->bind, udp_event, g, &e)) ||
        !(g->lsock = nd_ctl_listen(ctl, &gc->bind, 128, listen_event, g, &e))) {
        if (asprintf(err, "gossip: cannot %s %s (%s): %s", g->udp ? "listen on" : "bind",
                     gc->bind.text, g->udp ? "tcp" : "udp", strerror(-e)) < 0)
            *err = NULL;
        goto fail;
    }
    for (unsigned i = 0; i < gc->njoin; i++)
        addr_to_swim(&gc->join[i], &g->seeds[g->nseeds++]);
    nd_keyring_init(&kr);
    for (unsigned i = 0; i < gc->nkeyring; i++)
        nd_keyring_add_base64(&kr, gc->keyring[i], strlen(gc->keyring[i]));
    g->conf_keys_hash = conf_keys_hash(gc);
    for (unsigned i = 0; i < gc->ntags && i < 64; i++) {
        tags[i].key = gc->tags[i].key;
        tags[i].value = gc->tags[i].val;
    }
    nd_swim_config_lan(&c);
    if (gc->fast) { /* docs/gossip.md: the "fast" profile */
        c.probe_interval_ms = 200;
        c.probe_timeout_ms = 100;
        c.gossip_interval_ms = 100;
        c.gossip_nodes = 4;
        c.retransmit_mult = 4; /* 3 left stragglers at 1,000 nodes (docs/gossip.md) */
        c.indirect_checks = 5;
    }
    if (gc->max_members)
        c.max_members = gc->max_members;
    c.name = g->name;
    addr_to_swim(&gc->advertise, &c.addr);
    c.tags = tags;
    c.ntags = gc->ntags < 64 ? gc->ntags : 64;
    c.keyring = &kr;
    io.arg = g;
    g->sw = nd_swim_new(&c, &io, now_ms(), &e);
    nd_keyring_wipe(&kr);
    if (!g->sw) {
        if (asprintf(err, "gossip: cannot start: %s", nd_gossip_strerror(e)) < 0)
            *err = NULL;
        goto fail;
    }
    if (g->nseeds) {
        nd_swim_join(g->sw, now_ms(), g->seeds, g->nseeds);
        g->next_join = now_ms() + JOIN_RETRY_MS;
    }
    if (svc_set(g, gc))
        goto oom;
    return g;
oom:
    if (!*err && asprintf(err, "gossip: %s", strerror(errno ? errno : ENOMEM)) < 0)
        *err = NULL;
fail:
    nd_gossip_driver_free(g);
    return NULL;
}

void nd_gossip_driver_free(struct nd_gossip_driver *g)
{
    if (!g)
        return;
    if (g->sw)
        nd_swim_free(g->sw); /* closes its streams through io_stream_close */
    while (g->nconns)
        conn_free(g, g->conns[g->nconns - 1]);
    free(g->conns);
    if (g->udp)
        nd_ctl_close(g->udp, false);
    if (g->lsock)
        nd_ctl_close(g->lsock, false);
    while (g->pend_head) {
        struct evcopy *c = g->pend_head;

        g->pend_head = c->next;
        free(c);
    }
    for (unsigned i = 0; i < ND_GOSSIP_RECENT_EVENTS; i++)
        free(g->recent[i]);
    for (unsigned i = 0; i < g->nsubs; i++)
        free(g->subs[i].prefix);
    free(g->subs);
    svc_clear(g);
    for (unsigned i = 0; i < ND_GOSSIP_QUERIES_KEPT; i++)
        qrec_clear(&g->queries[i]);
    free(g->seeds);
    free(g->name);
    free(g);
}

/* ---- /members ----------------------------------------------------------------------------- */

static void member_json(void *arg, const struct nd_swim_member *m)
{
    json_t *arr = arg, *o = json_object(), *tags = json_object();
    struct nd_serf_tag t[64];
    size_t nt = 0;
    char a[64];

    nd_swim_addr_str(&m->addr, a, sizeof a);
    json_object_set_new(o, "name", json_stringn(m->name, m->name_len));
    json_object_set_new(o, "address", json_string(a));
    json_object_set_new(o, "status", json_string(nd_swim_status_name(m->status)));
    json_object_set_new(o, "state", json_string(nd_swim_state_name(m->state)));
    json_object_set_new(o, "incarnation", json_integer(m->incarnation));
    if (m->meta_len && nd_serf_tags_decode(m->meta, m->meta_len, t, 64, &nt) == 0)
        for (size_t i = 0; i < nt; i++) {
            char k[ND_GOSSIP_META_MAX + 1];

            memcpy(k, t[i].key.p, t[i].key.len);
            k[t[i].key.len] = 0;
            json_object_set_new(tags, k, json_stringn((const char *)t[i].value.p, t[i].value.len));
        }
    json_object_set_new(o, "tags", tags);
    json_object_set_new(o, "protocol", json_pack("[iii]", m->vsn[0], m->vsn[1], m->vsn[2]));
    if (m->self)
        json_object_set_new(o, "self", json_true());
    json_array_append_new(arr, o);
}

static int sbuf_cb(const char *p, size_t n, void *arg)
{
    nd_sbuf_add(arg, p, n);
    return 0;
}

int nd_gossip_driver_members_json(struct nd_gossip_driver *g, struct nd_sbuf *out)
{
    const struct nd_swim_metrics *m = nd_swim_metrics(g->sw);
    json_t *root = json_object(), *arr = json_array(), *mx;
    int rc;

    if (!root || !arr)
        return -1;
    nd_swim_each(g->sw, member_json, arr);
    json_object_set_new(root, "members", arr);
    mx =
        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
                  "s:I,s:I,s:I}",
                  "alive", (json_int_t)m->members_alive, "suspect", (json_int_t)m->members_suspect,
                  "dead", (json_int_t)m->members_dead, "left", (json_int_t)m->members_left,
                  "health", (json_int_t)m->health, "probes", (json_int_t)m->probes, "probes_failed",
                  (json_int_t)m->probes_failed, "suspicions", (json_int_t)m->suspicions, "refutes",
                  (json_int_t)m->refutes, "pkts_in", (json_int_t)m->pkts_in, "pkts_out",
                  (json_int_t)m->pkts_out, "bytes_in", (json_int_t)m->bytes_in, "bytes_out",
                  (json_int_t)m->bytes_out, "msgs_in", (json_int_t)m->msgs_in, "msgs_out",
                  (json_int_t)m->msgs_out, "pushpulls", (json_int_t)m->pushpulls, "decode_errors",
                  (json_int_t)m->decode_errors, "decrypt_errors", (json_int_t)m->decrypt_errors,
                  "stream_errors", (json_int_t)m->stream_errors, "alive_limited",
                  (json_int_t)m->alive_limited, "members_dropped", (json_int_t)m->members_dropped);
    json_object_set_new(root, "metrics", mx);
    rc = json_dump_callback(root, sbuf_cb, out, JSON_INDENT(2));
    json_decref(root);
    nd_sbuf_adds(out, "\n");
    return rc == 0 && !out->oom ? 0 : -1;
}

void nd_gossip_driver_on_member(struct nd_gossip_driver *g,
                                void (*fn)(void *arg, const struct nd_swim_member *m,
                                           enum nd_swim_event ev),
                                void *arg)
{
    g->on_member = fn;
    g->on_member_arg = arg;
}

/* ---- /events ------------------------------------------------------------------------------ */

static json_t *event_json(const struct evcopy *c)
{
    json_t *o = json_object(), *p;

    json_object_set_new(o, "time_ms", json_integer(c->time_ms));
    json_object_set_new(o, "ltime", json_integer((json_int_t)c->ltime));
    if (!(p = json_stringn((const char *)c->data, c->name_len))) { /* not UTF-8 */
        char buf[256];

        p = json_string(printable(c->data, c->name_len, buf, sizeof buf));
    }
    json_object_set_new(o, "name", p);
    set_payload(o, c->data + c->name_len, c->payload_len);
    json_object_set_new(o, "coalesce", json_boolean(c->cc));
    json_object_set_new(o, "origin", json_string(c->self ? "self" : "gossip"));
    return o;
}

int nd_gossip_driver_events_json(struct nd_gossip_driver *g, struct nd_sbuf *out)
{
    const struct nd_swim_metrics *m = nd_swim_metrics(g->sw);
    json_t *root = json_object(), *arr = json_array();
    int rc;

    if (!root || !arr)
        return -1;
    for (unsigned i = 0; i < ND_GOSSIP_RECENT_EVENTS; i++) {
        const struct evcopy *c = g->recent[(g->recent_next + i) % ND_GOSSIP_RECENT_EVENTS];

        if (c)
            json_array_append_new(arr, event_json(c));
    }
    json_object_set_new(root, "events", arr);
    json_object_set_new(root, "clock", json_integer((json_int_t)nd_swim_event_clock(g->sw)));
    json_object_set_new(
        root, "metrics",
        json_pack(
            "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "sent", (json_int_t)m->events_sent,
            "received", (json_int_t)m->events_received, "duplicate",
            (json_int_t)m->events_duplicate, "too_old", (json_int_t)m->events_too_old,
            "before_join", (json_int_t)m->events_before_join, "too_large",
            (json_int_t)m->events_too_large, "buffer_full", (json_int_t)m->events_buffer_full,
            "queue_full", (json_int_t)m->events_queue_dropped, "subscriber_queue_full",
            (json_int_t)g->pending_dropped, "buffered", (json_int_t)m->events_buffered, "reserved",
            (json_int_t)g->reserved_events, "subscriptions", (json_int_t)g->nsubs));
    rc = json_dump_callback(root, sbuf_cb, out, JSON_INDENT(2));
    json_decref(root);
    nd_sbuf_adds(out, "\n");
    return rc == 0 && !out->oom ? 0 : -1;
}

uint64_t nd_gossip_driver_pending_dropped(const struct nd_gossip_driver *g)
{
    return g->pending_dropped;
}
