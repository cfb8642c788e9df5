/* Metrics: per-worker stats blocks written without locks, summed and rendered at scrape time. */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nodus/plugin.h>

#include "buf.h"
#include "config.h"
#include "log.h"

/* ---- histograms ---------------------------------------------------------------------------------
 * Istio's histograms are Envoy histograms with Envoy's default bounds (HistogramOptionsImpl::
 * defaultBuckets): the same 19 bounds for durations in ms and for sizes in bytes. A worker counts
 * each observation in one bucket (not cumulative); the scrape accumulates. */
#define NB 19        /* finite bounds */
#define NBK (NB + 1) /* buckets, +Inf last */

static const char *const le_text[NBK] = {
    "0.5",  "1",    "5",     "10",    "25",    "50",     "100",    "250",     "500",     "1000",
    "2500", "5000", "10000", "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf",
};
/* Upper bounds (inclusive) in microseconds for durations. */
static const uint64_t dur_us_le[NB] = {
    500,      1000,      5000,      10000,      25000,      50000,    100000,
    250000,   500000,    1000000,   2500000,    5000000,    10000000, 30000000,
    60000000, 300000000, 600000000, 1800000000, 3600000000,
};
/* Upper bounds in bytes: an integer is <= 0.5 only when it is 0. */
static const uint64_t bytes_le[NB] = {
    0,    1,    5,     10,    25,    50,     100,    250,     500,     1000,
    2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
};

static inline unsigned bucket_of(const uint64_t *le, uint64_t v)
{
    unsigned i = 0;

    while (i < NB && v > le[i])
        i++;
    return i;
}

/* ---- per-worker state
 * --------------------------------------------------------------------------*/
struct req_slot {
    uint32_t used; /* set (release) once the key below is written; the key never changes after */
    uint16_t listener, cluster, status;
    uint32_t flags;
    uint64_t dur_sum_us, reqb_sum, respb_sum;
    uint64_t dur[NBK], reqb[NBK], respb[NBK];
};

struct tcp_slot {
    uint32_t used;
    uint16_t listener, cluster, src, dst;
    bool mtls;
    uint64_t opened, closed, sent, received;
};

/* nodus_requests_total and nodus_request_duration_milliseconds: the request key with the two
 * principals, and the duration histogram (its buckets sum to the request count). */
struct pr_slot {
    uint32_t used;
    uint16_t listener, cluster, status, src, dst;
    uint32_t flags;
    uint64_t dur_sum_us;
    uint64_t dur[NBK];
};

struct stats_block {
    uint64_t counters[ND_C__COUNT];
    uint64_t gauges[ND_G__COUNT]; /* int64 deltas, two's complement */
    uint64_t req_overflows, tcp_overflows, pr_overflows;
    uint64_t principal_overflows; /* requests with a principal that found the name table full */
    uint64_t plugin[ND_METRICS_MAX_PLUGIN_COUNTERS];
    struct req_slot req_other; /* records that found no slot */
    struct tcp_slot tcp_other;
    struct pr_slot pr_other;
    struct req_slot *req; /* [ND_METRICS_REQ_SLOTS], cache-line aligned */
    struct tcp_slot *tcp; /* [tcp_slots] */
    struct pr_slot *pr;   /* [pr_slots], NULL when principal metrics are off */
    void *mem;            /* what was allocated for req, tcp and pr */
} __attribute__((aligned(64)));

/* At most this many slots are probed: past it, a record goes to the overflow slot. */
#define PROBES 64

static unsigned nworkers;
static unsigned pr_slots;   /* per worker: a power of two, 4 per principal, at least 1024 */
static unsigned tcp_slots;  /* per worker: ND_METRICS_TCP_SLOTS, or pr_slots / 4 with principals */
static uint64_t started_us; /* nd_metrics_init(): the busy ratio's denominator starts here */

static uint64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
static struct stats_block *blocks; /* [nworkers + 1]: the last one is ND_METRICS_MAIN's */

/* A worker is the only writer of its block: load + store, no locked instruction. */
static inline void add_own(uint64_t *p, uint64_t n)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline uint64_t ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* The block a thread writes, or NULL; *shared is true for the non-worker block. */
static inline struct stats_block *block_of(unsigned worker, bool *shared)
{
    if (worker < nworkers) {
        *shared = false;
        return &blocks[worker];
    }
    if (worker == ND_METRICS_MAIN && blocks) {
        *shared = true;
        return &blocks[nworkers];
    }
    return NULL;
}

static inline void add(uint64_t *p, uint64_t n, bool shared)
{
    if (shared)
        __atomic_fetch_add(p, n, __ATOMIC_RELAXED);
    else
        add_own(p, n);
}

/* ---- names
 * -------------------------------------------------------------------------------------*/
#define NAME_HASH (ND_METRICS_MAX_NAMES * 2)

static char *names[ND_METRICS_MAX_NAMES];
static unsigned nnames;                /* published with release after names[nnames] is set */
static uint16_t name_index[NAME_HASH]; /* id + 1, 0 = empty; main thread only */
static uint64_t names_overflow;
static uint16_t node_id = ND_METRICS_NONE;

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

uint16_t nd_metrics_intern(const char *name)
{
    uint32_t i;
    char *copy;
    unsigned n;

    if (!name)
        return ND_METRICS_NONE;
    for (i = hash_str(name) & (NAME_HASH - 1);; i = (i + 1) & (NAME_HASH - 1)) {
        uint16_t v = name_index[i];

        if (!v)
            break;
        if (strcmp(names[v - 1], name) == 0)
            return v - 1;
    }
    n = nnames;
    if (n >= ND_METRICS_MAX_NAMES || !(copy = strdup(name))) {
        __atomic_fetch_add(&names_overflow, 1, __ATOMIC_RELAXED);
        return ND_METRICS_OTHER;
    }
    names[n] = copy;
    name_index[i] = (uint16_t)(n + 1);
    __atomic_store_n(&nnames, n + 1, __ATOMIC_RELEASE);
    return (uint16_t)n;
}

const char *nd_metrics_name(uint16_t id)
{
    if (id == ND_METRICS_NONE)
        return "unknown";
    if (id < __atomic_load_n(&nnames, __ATOMIC_ACQUIRE))
        return names[id];
    return "other";
}

void nd_metrics_set_node(const char *name)
{
    __atomic_store_n(&node_id, nd_metrics_intern(name), __ATOMIC_RELEASE);
}

/* ---- principals --------------------------------------------------------------------------------
 * Entries are filled in the order names are first seen: a thread reserves the next one (atomic
 * add), writes the name, then publishes it in the open-addressing index with a compare-and-swap
 * (release). Readers find names through the index (acquire). Two threads that add the same name
 * at once probe the same slots in the same order: the second fails its swap on the first's slot,
 * sees the same name there and takes that id (its own entry stays unused and unindexed). The
 * index has twice as many slots as entries, so a probe always ends at an empty slot. */
struct principal {
    uint32_t hash;
    uint16_t len;
    char name[ND_METRICS_PRINCIPAL_LEN + 1];
};

static struct principal *ptab; /* [pcap] */
static uint32_t *pindex;       /* [pmask + 1]: entry + 1, 0 = empty */
static unsigned pcap, pmask;
static unsigned preserved; /* entries taken (atomic); may pass pcap when full */
static uint16_t self_principal = ND_METRICS_NONE;
static bool principals_full_logged;

static uint32_t hash_mem(const char *p, size_t len)
{
    uint32_t h = 2166136261u;

    while (len--)
        h = (h ^ (unsigned char)*p++) * 16777619u;
    return h;
}

static bool principal_is(const struct principal *e, uint32_t h, const char *p, size_t len)
{
    return e->hash == h && e->len == len && memcmp(e->name, p, len) == 0;
}

uint16_t nd_metrics_principal(const char *p, size_t len)
{
    uint32_t h, i, v;
    unsigned n;

    if (!len || !pcap)
        return ND_METRICS_NONE;
    if (len > ND_METRICS_PRINCIPAL_LEN)
        return ND_METRICS_OTHER;
    h = hash_mem(p, len);
    for (i = h & pmask; (v = __atomic_load_n(&pindex[i], __ATOMIC_ACQUIRE)); i = (i + 1) & pmask)
        if (principal_is(&ptab[v - 1], h, p, len))
            return (uint16_t)(v - 1);
    if (__atomic_load_n(&preserved, __ATOMIC_RELAXED) >= pcap ||
        (n = __atomic_fetch_add(&preserved, 1, __ATOMIC_RELAXED)) >= pcap) {
        if (!__atomic_exchange_n(&principals_full_logged, true, __ATOMIC_RELAXED))
            nd_warn("metrics: the principal table is full (%u, metrics { principals }): "
                    "further principals are labelled \"other\"",
                    pcap);
        return ND_METRICS_OTHER;
    }
    ptab[n].hash = h;
    ptab[n].len = (uint16_t)len;
    memcpy(ptab[n].name, p, len);
    ptab[n].name[len] = 0;
    for (i = h & pmask;; i = (i + 1) & pmask) {
        uint32_t expect = 0;

        if (__atomic_compare_exchange_n(&pindex[i], &expect, n + 1, false, __ATOMIC_RELEASE,
                                        __ATOMIC_ACQUIRE))
            return (uint16_t)n;
        if (principal_is(&ptab[expect - 1], h, p, len))
            return (uint16_t)(expect - 1);
    }
}

/* The label value of a principal id. */
static const char *principal_name(uint16_t id)
{
    if (id == ND_METRICS_NONE)
        return "unknown";
    if (id < pcap)
        return ptab[id].name;
    return "other";
}

void nd_metrics_set_self_principal(const char *id)
{
    uint16_t v = id ? nd_metrics_principal(id, strlen(id)) : ND_METRICS_NONE;

    __atomic_store_n(&self_principal, v, __ATOMIC_RELAXED);
}

uint16_t nd_metrics_self_principal(void)
{
    return __atomic_load_n(&self_principal, __ATOMIC_RELAXED);
}

/* ---- plugin counters
 * ---------------------------------------------------------------------------*/
struct plugin_counter {
    char *metric; /* nodus_plugin_<plugin>_<name>_total, sanitized */
    char *help;
};

static struct plugin_counter pcs[ND_METRICS_MAX_PLUGIN_COUNTERS];
static unsigned npcs; /* published with release */

/* Appends s with every character outside [a-zA-Z0-9_] replaced by '_'. */
static void add_sanitized(struct nd_sbuf *b, const char *s)
{
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

        nd_sbuf_add(b, ok ? &c : "_", 1);
    }
}

nodus_counter_t nodus_counter(const char *plugin, const char *name, const char *help)
{
    struct nd_sbuf m = {0};
    size_t n;
    unsigned i;

    if (!plugin || !name || !*plugin || !*name)
        return -1;
    nd_sbuf_adds(&m, "nodus_plugin_");
    add_sanitized(&m, plugin);
    nd_sbuf_adds(&m, "_");
    add_sanitized(&m, name);
    n = m.len;
    if (n < 6 || strcmp(m.p + n - 6, "_total") != 0)
        nd_sbuf_adds(&m, "_total");
    if (m.oom) {
        nd_sbuf_free(&m);
        return -1;
    }
    /* Identity is the exported name: two spellings that export the same name are one counter. */
    for (i = 0; i < npcs; i++)
        if (strcmp(pcs[i].metric, m.p) == 0) {
            nd_sbuf_free(&m);
            return (nodus_counter_t)i;
        }
    if (npcs >= ND_METRICS_MAX_PLUGIN_COUNTERS) {
        nd_sbuf_free(&m);
        return -1;
    }
    pcs[npcs].help = strdup(help && *help ? help : "Plugin counter.");
    if (!pcs[npcs].help) {
        nd_sbuf_free(&m);
        return -1;
    }
    pcs[npcs].metric = m.p; /* keeps the sbuf's string */
    __atomic_store_n(&npcs, npcs + 1, __ATOMIC_RELEASE);
    return (nodus_counter_t)(npcs - 1);
}

void nodus_counter_add(unsigned worker_id, nodus_counter_t id, uint64_t n)
{
    bool shared;
    struct stats_block *b = block_of(worker_id, &shared);

    if (!b || id < 0 || id >= ND_METRICS_MAX_PLUGIN_COUNTERS)
        return;
    add(&b->plugin[id], n, shared);
}

/* ---- init
 * --------------------------------------------------------------------------------------*/
int nd_metrics_init(unsigned n, unsigned principals)
{
    size_t reqsz = sizeof(struct req_slot) * ND_METRICS_REQ_SLOTS;
    size_t tcpsz, prsz;
    struct stats_block *b;
    unsigned i, slots = 0;

    if (n == 0 || n > ND_MAX_WORKERS || principals > ND_METRICS_PRINCIPALS_MAX)
        return -EINVAL;
    if (blocks)
        return -EALREADY;
    if (principals) {
        for (slots = 1024; slots < principals * 4; slots *= 2)
            ;
        for (pmask = 1; pmask < principals * 2; pmask *= 2)
            ;
        ptab = calloc(principals, sizeof(*ptab));
        pindex = calloc(pmask, sizeof(*pindex));
        if (!ptab || !pindex) {
            free(ptab);
            free(pindex);
            ptab = NULL;
            pindex = NULL;
            return -ENOMEM;
        }
        pmask--;
    }
    prsz = sizeof(struct pr_slot) * slots;
    tcp_slots = slots / 4 > ND_METRICS_TCP_SLOTS ? slots / 4 : ND_METRICS_TCP_SLOTS;
    tcpsz = sizeof(struct tcp_slot) * tcp_slots;
    started_us = mono_us();
    b = aligned_alloc(64, sizeof(*b) * (n + 1));
    if (!b)
        goto nomem;
    memset(b, 0, sizeof(*b) * (n + 1));
    for (i = 0; i < n; i++) {
        /* calloc: large tables come as untouched zero pages, resident only once used */
        char *mem = calloc(1, reqsz + tcpsz + prsz + 64);

        if (!mem) {
            while (i--)
                free(b[i].mem);
            free(b);
            goto nomem;
        }
        b[i].mem = mem;
        b[i].req = (struct req_slot *)(((uintptr_t)mem + 63) & ~(uintptr_t)63);
        b[i].tcp = (struct tcp_slot *)((char *)b[i].req + reqsz);
        b[i].pr = slots ? (struct pr_slot *)((char *)b[i].tcp + tcpsz) : NULL;
    }
    pcap = principals;
    pr_slots = slots;
    nworkers = n;
    __atomic_store_n(&blocks, b, __ATOMIC_RELEASE);
    return 0;
nomem:
    free(ptab);
    free(pindex);
    ptab = NULL;
    pindex = NULL;
    pmask = 0;
    return -ENOMEM;
}

void nd_metrics_fini(void)
{
    unsigned i;

    if (blocks) {
        for (i = 0; i < nworkers; i++)
            free(blocks[i].mem);
        free(blocks);
    }
    blocks = NULL;
    nworkers = 0;
    free(ptab);
    free(pindex);
    ptab = NULL;
    pindex = NULL;
    pcap = pmask = preserved = pr_slots = tcp_slots = 0;
    self_principal = ND_METRICS_NONE;
    principals_full_logged = false;
    for (i = 0; i < nnames; i++)
        free(names[i]);
    memset(names, 0, sizeof(names));
    memset(name_index, 0, sizeof(name_index));
    nnames = 0;
    names_overflow = 0;
    node_id = ND_METRICS_NONE;
    for (i = 0; i < npcs; i++) {
        free(pcs[i].metric);
        free(pcs[i].help);
    }
    memset(pcs, 0, sizeof(pcs));
    npcs = 0;
}

/* ---- recording
 * ---------------------------------------------------------------------------------*/
static inline uint32_t mix(uint64_t a, uint64_t b)
{
    uint64_t h = a * 0x9E3779B97F4A7C15ull ^ b * 0xC2B2AE3D27D4EB4Full;

    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    return (uint32_t)h;
}

static struct req_slot *req_slot(struct stats_block *b, const struct nd_req_record *r)
{
    uint32_t i = mix((uint64_t)r->listener | (uint64_t)r->cluster << 16 | (uint64_t)r->status << 32,
                     r->flags);
    unsigned probe;

    for (probe = 0; probe < PROBES; probe++, i++) {
        struct req_slot *s = &b->req[i & (ND_METRICS_REQ_SLOTS - 1)];

        if (!__atomic_load_n(&s->used, __ATOMIC_RELAXED)) {
            s->listener = r->listener;
            s->cluster = r->cluster;
            s->status = r->status;
            s->flags = r->flags;
            __atomic_store_n(&s->used, 1, __ATOMIC_RELEASE);
            return s;
        }
        if (s->listener == r->listener && s->cluster == r->cluster && s->status == r->status &&
            s->flags == r->flags)
            return s;
    }
    add_own(&b->req_overflows, 1);
    return &b->req_other;
}

static struct pr_slot *pr_slot(struct stats_block *b, const struct nd_req_record *r)
{
    uint32_t i = mix((uint64_t)r->listener | (uint64_t)r->cluster << 16 |
                         (uint64_t)r->status << 32 | (uint64_t)r->src_principal << 48,
                     (uint64_t)r->flags | (uint64_t)r->dst_principal << 32);
    unsigned probe;

    for (probe = 0; probe < PROBES; probe++, i++) {
        struct pr_slot *s = &b->pr[i & (pr_slots - 1)];

        if (!__atomic_load_n(&s->used, __ATOMIC_RELAXED)) {
            s->listener = r->listener;
            s->cluster = r->cluster;
            s->status = r->status;
            s->flags = r->flags;
            s->src = r->src_principal;
            s->dst = r->dst_principal;
            __atomic_store_n(&s->used, 1, __ATOMIC_RELEASE);
            return s;
        }
        if (s->listener == r->listener && s->cluster == r->cluster && s->status == r->status &&
            s->flags == r->flags && s->src == r->src_principal && s->dst == r->dst_principal)
            return s;
    }
    add_own(&b->pr_overflows, 1);
    return &b->pr_other;
}

void nd_metrics_request(unsigned worker, const struct nd_req_record *r)
{
    struct stats_block *b;
    struct req_slot *s;
    struct pr_slot *p;
    unsigned dk = bucket_of(dur_us_le, r->duration_us);

    if (worker >= nworkers)
        return;
    b = &blocks[worker];
    s = req_slot(b, r);
    add_own(&s->dur[dk], 1);
    add_own(&s->reqb[bucket_of(bytes_le, r->req_bytes)], 1);
    add_own(&s->respb[bucket_of(bytes_le, r->resp_bytes)], 1);
    add_own(&s->dur_sum_us, r->duration_us);
    add_own(&s->reqb_sum, r->req_bytes);
    add_own(&s->respb_sum, r->resp_bytes);
    if (!b->pr)
        return;
    if (r->src_principal == ND_METRICS_OTHER || r->dst_principal == ND_METRICS_OTHER)
        add_own(&b->principal_overflows, 1);
    p = pr_slot(b, r);
    add_own(&p->dur[dk], 1);
    add_own(&p->dur_sum_us, r->duration_us);
}

static struct tcp_slot *tcp_slot(unsigned worker, const struct nd_tcp_key *k)
{
    struct stats_block *b;
    uint16_t src = pr_slots ? k->src : ND_METRICS_NONE, dst = pr_slots ? k->dst : ND_METRICS_NONE;
    uint32_t i;
    unsigned probe;

    if (worker >= nworkers)
        return NULL;
    b = &blocks[worker];
    i = mix((uint64_t)k->listener << 16 | k->cluster | (uint64_t)src << 32 | (uint64_t)dst << 48,
            0x7c9u + k->mtls);
    for (probe = 0; probe < PROBES; probe++, i++) {
        struct tcp_slot *s = &b->tcp[i & (tcp_slots - 1)];

        if (!__atomic_load_n(&s->used, __ATOMIC_RELAXED)) {
            s->listener = k->listener;
            s->cluster = k->cluster;
            s->src = src;
            s->dst = dst;
            s->mtls = k->mtls;
            __atomic_store_n(&s->used, 1, __ATOMIC_RELEASE);
            return s;
        }
        if (s->listener == k->listener && s->cluster == k->cluster && s->src == src &&
            s->dst == dst && s->mtls == k->mtls)
            return s;
    }
    add_own(&b->tcp_overflows, 1);
    return &b->tcp_other;
}

void nd_metrics_tcp_open(unsigned worker, const struct nd_tcp_key *k)
{
    struct tcp_slot *s = tcp_slot(worker, k);

    if (s)
        add_own(&s->opened, 1);
}

void nd_metrics_tcp_bytes(unsigned worker, const struct nd_tcp_key *k, uint64_t sent,
                          uint64_t received)
{
    struct tcp_slot *s = tcp_slot(worker, k);

    if (!s)
        return;
    add_own(&s->sent, sent);
    add_own(&s->received, received);
}

void nd_metrics_tcp_close(unsigned worker, const struct nd_tcp_key *k, uint64_t sent,
                          uint64_t received)
{
    struct tcp_slot *s = tcp_slot(worker, k);

    if (!s)
        return;
    add_own(&s->closed, 1);
    add_own(&s->sent, sent);
    add_own(&s->received, received);
}

void nd_metrics_gauge_add(unsigned worker, enum nd_gauge g, int64_t delta)
{
    bool shared;
    struct stats_block *b = block_of(worker, &shared);

    if (b && (unsigned)g < ND_G__COUNT)
        add(&b->gauges[g], (uint64_t)delta, shared);
}

void nd_metrics_count(unsigned worker, enum nd_counter c, uint64_t n)
{
    bool shared;
    struct stats_block *b = block_of(worker, &shared);

    if (b && (unsigned)c < ND_C__COUNT)
        add(&b->counters[c], n, shared);
}

/* ---- response flags
 * ----------------------------------------------------------------------------*/
static const char *const rf_codes[] = {
    "UH",   "UT",   "LR", "UR",  "UF", "UC", "UO",  "NR", "DI",  "RL",
    "UAEX", "RLSE", "DC", "URX", "SI", "IH", "DPE", "DT", "UPE", "OM",
};

size_t nd_rf_format(uint32_t flags, char *buf, size_t len)
{
    size_t n = 0, i;

#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (n + 1 < len)                                                                           \
            buf[n] = (ch);                                                                         \
        n++;                                                                                       \
    } while (0)
    for (i = 0; i < sizeof(rf_codes) / sizeof(rf_codes[0]); i++) {
        const char *c;

        if (!(flags & (1u << i)))
            continue;
        if (n)
            PUT(',');
        for (c = rf_codes[i]; *c; c++)
            PUT(*c);
    }
    if (!n)
        PUT('-');
#undef PUT
    if (len)
        buf[n < len ? n : len - 1] = '\0';
    return n;
}

/* ---- rendering
 * ---------------------------------------------------------------------------------*/
/* Label value escaping of the text format: backslash, double quote and line feed. */
static void add_label_value(struct nd_sbuf *b, const char *s)
{
    const char *run = s;

    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;

        if (!esc)
            continue;
        nd_sbuf_add(b, run, (size_t)(s - run));
        nd_sbuf_adds(b, esc);
        run = s + 1;
    }
    nd_sbuf_add(b, run, (size_t)(s - run));
}

/* HELP text escaping: backslash and line feed. */
static void add_help(struct nd_sbuf *b, const char *metric, const char *type, const char *help)
{
    nd_sbuf_printf(b, "# HELP %s ", metric);
    for (; *help; help++) {
        if (*help == '\\')
            nd_sbuf_adds(b, "\\\\");
        else if (*help == '\n')
            nd_sbuf_adds(b, "\\n");
        else
            nd_sbuf_add(b, help, 1);
    }
    nd_sbuf_printf(b, "\n# TYPE %s %s\n", metric, type);
}

struct req_agg {
    uint16_t listener, cluster, status;
    uint16_t src, dst; /* principals (nodus_requests_total only) */
    uint32_t flags;
    bool other; /* the overflow series */
    uint64_t dur_sum_us, reqb_sum, respb_sum;
    uint64_t dur[NBK], reqb[NBK], respb[NBK];
    char *labels; /* rendered label pairs, without braces */
};

struct tcp_agg {
    uint16_t listener, cluster, src, dst;
    bool mtls, other;
    uint64_t opened, closed, sent, received;
    char *labels;
};

/* A published slot of some worker, with its key as rendered: ids that name nothing are mapped to
 * ND_METRICS_OTHER, so that two keys never render as the same series. */
struct req_ent {
    uint16_t listener, cluster, status, src, dst;
    uint32_t flags;
    bool other;
    const struct req_slot *s; /* istio_* */
    const struct pr_slot *ps; /* nodus_requests_total */
};

struct tcp_ent {
    uint16_t listener, cluster, src, dst;
    bool mtls, other;
    const struct tcp_slot *s;
};

static uint16_t norm_id(uint16_t id, unsigned n)
{
    return id == ND_METRICS_NONE || id < n ? id : ND_METRICS_OTHER;
}

static int cmp_req(const void *a, const void *b)
{
    const struct req_ent *x = a, *y = b;

    if (x->other != y->other)
        return x->other ? 1 : -1;
    if (x->listener != y->listener)
        return x->listener < y->listener ? -1 : 1;
    if (x->cluster != y->cluster)
        return x->cluster < y->cluster ? -1 : 1;
    if (x->status != y->status)
        return x->status < y->status ? -1 : 1;
    if (x->flags != y->flags)
        return x->flags < y->flags ? -1 : 1;
    if (x->src != y->src)
        return x->src < y->src ? -1 : 1;
    if (x->dst != y->dst)
        return x->dst < y->dst ? -1 : 1;
    return 0;
}

static int cmp_tcp(const void *a, const void *b)
{
    const struct tcp_ent *x = a, *y = b;

    if (x->other != y->other)
        return x->other ? 1 : -1;
    if (x->listener != y->listener)
        return x->listener < y->listener ? -1 : 1;
    if (x->cluster != y->cluster)
        return x->cluster < y->cluster ? -1 : 1;
    if (x->mtls != y->mtls)
        return x->mtls ? 1 : -1;
    if (x->src != y->src)
        return x->src < y->src ? -1 : 1;
    if (x->dst != y->dst)
        return x->dst < y->dst ? -1 : 1;
    return 0;
}

static void req_acc(struct req_agg *a, const struct req_slot *s)
{
    unsigned i;

    for (i = 0; i < NBK; i++) {
        a->dur[i] += ld(&s->dur[i]);
        a->reqb[i] += ld(&s->reqb[i]);
        a->respb[i] += ld(&s->respb[i]);
    }
    a->dur_sum_us += ld(&s->dur_sum_us);
    a->reqb_sum += ld(&s->reqb_sum);
    a->respb_sum += ld(&s->respb_sum);
}

static void pr_acc(struct req_agg *a, const struct pr_slot *s)
{
    unsigned i;

    for (i = 0; i < NBK; i++)
        a->dur[i] += ld(&s->dur[i]);
    a->dur_sum_us += ld(&s->dur_sum_us);
}

static void tcp_acc(struct tcp_agg *a, const struct tcp_slot *s)
{
    a->opened += ld(&s->opened);
    a->closed += ld(&s->closed);
    a->sent += ld(&s->sent);
    a->received += ld(&s->received);
}

/* The labels common to Istio's metrics, with the principals when src is not NULL. Returns a
 * malloc'd string or NULL. */
static char *istio_labels(uint16_t listener, uint16_t cluster, const char *proto, const char *code,
                          const char *flags, bool mtls, const char *src, const char *dst)
{
    struct nd_sbuf b = {0};
    const char *cl = nd_metrics_name(cluster);

    nd_sbuf_adds(&b, "reporter=\"source\",source_workload=\"");
    add_label_value(&b, nd_metrics_name(__atomic_load_n(&node_id, __ATOMIC_ACQUIRE)));
    if (src) {
        nd_sbuf_adds(&b, "\",source_principal=\"");
        add_label_value(&b, src);
        nd_sbuf_adds(&b, "\",destination_principal=\"");
        add_label_value(&b, dst);
    }
    nd_sbuf_adds(&b, "\",destination_service=\"");
    add_label_value(&b, cl);
    nd_sbuf_adds(&b, "\",destination_cluster=\"");
    add_label_value(&b, cl);
    nd_sbuf_printf(&b, "\",request_protocol=\"%s\"", proto);
    if (code)
        nd_sbuf_printf(&b, ",response_code=\"%s\",response_flags=\"%s\"", code, flags);
    nd_sbuf_adds(&b, mtls ? ",connection_security_policy=\"mutual_tls\",listener=\""
                          : ",connection_security_policy=\"none\",listener=\"");
    add_label_value(&b, nd_metrics_name(listener));
    nd_sbuf_adds(&b, "\"");
    if (b.oom) {
        nd_sbuf_free(&b);
        return NULL;
    }
    return b.p;
}

static void render_hist(struct nd_sbuf *out, const char *metric, const struct req_agg *a, size_t na,
                        size_t off_buckets, size_t off_sum, bool ms)
{
    size_t i;
    unsigned k;

    for (i = 0; i < na; i++) {
        const uint64_t *bk = (const uint64_t *)((const char *)&a[i] + off_buckets);
        uint64_t sum = *(const uint64_t *)((const char *)&a[i] + off_sum), cum = 0;

        for (k = 0; k < NBK; k++) {
            cum += bk[k];
            nd_sbuf_printf(out, "%s_bucket{%s,le=\"%s\"} %" PRIu64 "\n", metric, a[i].labels,
                           le_text[k], cum);
        }
        if (ms)
            nd_sbuf_printf(out, "%s_sum{%s} %" PRIu64 ".%03u\n", metric, a[i].labels, sum / 1000,
                           (unsigned)(sum % 1000));
        else
            nd_sbuf_printf(out, "%s_sum{%s} %" PRIu64 "\n", metric, a[i].labels, sum);
        nd_sbuf_printf(out, "%s_count{%s} %" PRIu64 "\n", metric, a[i].labels, cum);
    }
}

static uint16_t norm_principal(uint16_t id)
{
    return id == ND_METRICS_NONE || id < pcap ? id : ND_METRICS_OTHER;
}

/* Merges the request tables of every worker (the istio_* one, or with the principals): one
 * aggregate per rendered key, the overflow series last when it has records. Returns the count, or
 * -1 on allocation failure. */
static long collect_req(struct req_agg **out, bool principals)
{
    size_t slots = principals ? pr_slots : ND_METRICS_REQ_SLOTS;
    size_t cap = (size_t)nworkers * (slots + 1), n = 0, na = 0, i;
    unsigned nn = __atomic_load_n(&nnames, __ATOMIC_ACQUIRE), w;
    struct req_ent *v = malloc(sizeof(*v) * cap);
    struct req_agg *a;

    *out = NULL;
    if (!v)
        return -1;
    for (w = 0; w < nworkers; w++) {
        const struct stats_block *b = &blocks[w];

        for (i = 0; i < slots; i++) {
            const struct req_slot *s = principals ? NULL : &b->req[i];
            const struct pr_slot *ps = principals ? &b->pr[i] : NULL;

            if (!__atomic_load_n(s ? &s->used : &ps->used, __ATOMIC_ACQUIRE))
                continue;
            if (s)
                v[n++] = (struct req_ent){.listener = norm_id(s->listener, nn),
                                          .cluster = norm_id(s->cluster, nn),
                                          .status = s->status,
                                          .flags = s->flags,
                                          .src = ND_METRICS_NONE,
                                          .dst = ND_METRICS_NONE,
                                          .s = s};
            else
                v[n++] = (struct req_ent){.listener = norm_id(ps->listener, nn),
                                          .cluster = norm_id(ps->cluster, nn),
                                          .status = ps->status,
                                          .flags = ps->flags,
                                          .src = norm_principal(ps->src),
                                          .dst = norm_principal(ps->dst),
                                          .ps = ps};
        }
        if (ld(principals ? &b->pr_overflows : &b->req_overflows))
            v[n++] = (struct req_ent){.listener = ND_METRICS_OTHER,
                                      .cluster = ND_METRICS_OTHER,
                                      .src = ND_METRICS_OTHER,
                                      .dst = ND_METRICS_OTHER,
                                      .other = true,
                                      .s = principals ? NULL : &b->req_other,
                                      .ps = principals ? &b->pr_other : NULL};
    }
    qsort(v, n, sizeof(*v), cmp_req);
    if (!(a = calloc(n + 1, sizeof(*a)))) {
        free(v);
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (!na || cmp_req(&v[i], &v[i - 1]) != 0) {
            a[na].listener = v[i].listener;
            a[na].cluster = v[i].cluster;
            a[na].status = v[i].status;
            a[na].flags = v[i].flags;
            a[na].src = v[i].src;
            a[na].dst = v[i].dst;
            a[na].other = v[i].other;
            na++;
        }
        if (v[i].s)
            req_acc(&a[na - 1], v[i].s);
        else
            pr_acc(&a[na - 1], v[i].ps);
    }
    free(v);
    *out = a;
    return (long)na;
}

/* Same for TCP, by (listener, cluster, mtls), with the principals or not; the overflow slot
 * counts as the "other" key. */
static long collect_tcp(struct tcp_agg **out, bool principals)
{
    size_t cap = (size_t)nworkers * (tcp_slots + 1), n = 0, na = 0, i;
    unsigned nn = __atomic_load_n(&nnames, __ATOMIC_ACQUIRE), w;
    struct tcp_ent *v = malloc(sizeof(*v) * cap);
    struct tcp_agg *a;

    *out = NULL;
    if (!v)
        return -1;
    for (w = 0; w < nworkers; w++) {
        const struct stats_block *b = &blocks[w];

        for (i = 0; i < tcp_slots; i++) {
            const struct tcp_slot *s = &b->tcp[i];

            if (!__atomic_load_n(&s->used, __ATOMIC_ACQUIRE))
                continue;
            v[n++] = (struct tcp_ent){
                .listener = norm_id(s->listener, nn),
                .cluster = norm_id(s->cluster, nn),
                .mtls = s->mtls,
                .src = principals ? norm_principal(s->src) : ND_METRICS_NONE,
                .dst = principals ? norm_principal(s->dst) : ND_METRICS_NONE,
                .s = s,
            };
        }
        if (ld(&b->tcp_overflows))
            v[n++] = (struct tcp_ent){.listener = ND_METRICS_OTHER,
                                      .cluster = ND_METRICS_OTHER,
                                      .src = ND_METRICS_OTHER,
                                      .dst = ND_METRICS_OTHER,
                                      .other = true,
                                      .s = &b->tcp_other};
    }
    qsort(v, n, sizeof(*v), cmp_tcp);
    if (!(a = calloc(n + 1, sizeof(*a)))) {
        free(v);
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (!na || cmp_tcp(&v[i], &v[i - 1]) != 0) {
            a[na].listener = v[i].listener;
            a[na].cluster = v[i].cluster;
            a[na].mtls = v[i].mtls;
            a[na].src = v[i].src;
            a[na].dst = v[i].dst;
            a[na].other = v[i].other;
            na++;
        }
        tcp_acc(&a[na - 1], v[i].s);
    }
    free(v);
    *out = a;
    return (long)na;
}

/* Renders the labels of n HTTP aggregates (with the principals or not). 0, or -1 when memory ran
 * out. */
static int http_labels(struct req_agg *a, size_t n, bool principals)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < n; i++) {
        char code[8], flags[ND_RF_BUFSZ];

        if (a[i].other) {
            strcpy(code, "other");
            strcpy(flags, "other");
        } else {
            snprintf(code, sizeof(code), "%u", (unsigned)a[i].status);
            nd_rf_format(a[i].flags, flags, sizeof(flags));
        }
        a[i].labels = istio_labels(a[i].listener, a[i].cluster, "http", code, flags,
                                   !a[i].other && (a[i].flags & ND_REC_MTLS),
                                   principals ? principal_name(a[i].src) : NULL,
                                   principals ? principal_name(a[i].dst) : NULL);
        if (!a[i].labels)
            rc = -1;
    }
    return rc;
}

static int render_requests(struct nd_sbuf *out)
{
    struct req_agg *a;
    long n = collect_req(&a, false);
    size_t i;
    int rc = 0;

    if (n < 0)
        return -1;
    rc = http_labels(a, (size_t)n, false);
    if (rc == 0) {
        add_help(out, "istio_requests_total", "counter",
                 "Requests handled, by listener, destination cluster, response code and flags.");
        for (i = 0; i < (size_t)n; i++) {
            uint64_t c = 0;
            unsigned k;

            for (k = 0; k < NBK; k++)
                c += a[i].dur[k];
            nd_sbuf_printf(out, "istio_requests_total{%s} %" PRIu64 "\n", a[i].labels, c);
        }
        add_help(out, "istio_request_duration_milliseconds", "histogram",
                 "Request duration, first request byte to last response byte, in milliseconds.");
        render_hist(out, "istio_request_duration_milliseconds", a, (size_t)n,
                    offsetof(struct req_agg, dur), offsetof(struct req_agg, dur_sum_us), true);
        add_help(out, "istio_request_bytes", "histogram",
                 "Request size (head and body), in bytes.");
        render_hist(out, "istio_request_bytes", a, (size_t)n, offsetof(struct req_agg, reqb),
                    offsetof(struct req_agg, reqb_sum), false);
        add_help(out, "istio_response_bytes", "histogram",
                 "Response size (head and body), in bytes.");
        render_hist(out, "istio_response_bytes", a, (size_t)n, offsetof(struct req_agg, respb),
                    offsetof(struct req_agg, respb_sum), false);
    }
    for (i = 0; i < (size_t)n; i++)
        free(a[i].labels);
    free(a);
    return rc;
}

/* nodus_requests_total and nodus_request_duration_milliseconds: Istio's request labels and the
 * principals (metrics { principals }; absent when it is 0). */
static int render_principals(struct nd_sbuf *out)
{
    struct req_agg *a;
    long n;
    size_t i;
    int rc = 0;

    if (!pr_slots)
        return 0;
    if ((n = collect_req(&a, true)) < 0)
        return -1;
    rc = http_labels(a, (size_t)n, true);
    if (rc == 0) {
        add_help(out, "nodus_requests_total", "counter",
                 "Requests handled, by source and destination principal, listener, destination "
                 "cluster, response code and flags.");
        for (i = 0; i < (size_t)n; i++) {
            uint64_t c = 0;
            unsigned k;

            for (k = 0; k < NBK; k++)
                c += a[i].dur[k];
            nd_sbuf_printf(out, "nodus_requests_total{%s} %" PRIu64 "\n", a[i].labels, c);
        }
        add_help(out, "nodus_request_duration_milliseconds", "histogram",
                 "Request duration by source and destination principal, first request byte to "
                 "last response byte, in milliseconds.");
        render_hist(out, "nodus_request_duration_milliseconds", a, (size_t)n,
                    offsetof(struct req_agg, dur), offsetof(struct req_agg, dur_sum_us), true);
    }
    for (i = 0; i < (size_t)n; i++)
        free(a[i].labels);
    free(a);
    return rc;
}

/* istio_tcp_*, and nodus_tcp_* with the principals (metrics { principals }; absent when 0). */
static int render_tcp(struct nd_sbuf *out, bool principals)
{
    static const struct {
        const char *metric, *help;
        size_t off;
    } fam[] = {
        {"tcp_connections_opened_total", "TCP connections opened.",
         offsetof(struct tcp_agg, opened)},
        {"tcp_connections_closed_total", "TCP connections closed.",
         offsetof(struct tcp_agg, closed)},
        {"tcp_sent_bytes_total", "Bytes sent to the downstream client on TCP connections.",
         offsetof(struct tcp_agg, sent)},
        {"tcp_received_bytes_total",
         "Bytes received from the downstream client on TCP connections.",
         offsetof(struct tcp_agg, received)},
    };
    const char *prefix = principals ? "nodus_" : "istio_";
    struct tcp_agg *a;
    long n;
    size_t i, f;
    int rc = 0;

    if (principals && !pr_slots)
        return 0;
    if ((n = collect_tcp(&a, principals)) < 0)
        return -1;
    for (i = 0; i < (size_t)n; i++)
        if (!(a[i].labels = istio_labels(a[i].listener, a[i].cluster, "tcp", NULL, NULL, a[i].mtls,
                                         principals ? principal_name(a[i].src) : NULL,
                                         principals ? principal_name(a[i].dst) : NULL)))
            rc = -1;
    for (f = 0; rc == 0 && f < sizeof(fam) / sizeof(fam[0]); f++) {
        char metric[64];

        snprintf(metric, sizeof(metric), "%s%s", prefix, fam[f].metric);
        add_help(out, metric, "counter", fam[f].help);
        for (i = 0; i < (size_t)n; i++)
            nd_sbuf_printf(out, "%s{%s} %" PRIu64 "\n", metric, a[i].labels,
                           *(const uint64_t *)((const char *)&a[i] + fam[f].off));
    }
    for (i = 0; i < (size_t)n; i++)
        free(a[i].labels);
    free(a);
    return rc;
}

static const struct {
    const char *metric, *help;
} counter_info[ND_C__COUNT] = {
    [ND_C_DOWNSTREAM_CX_TOTAL] = {"nodus_downstream_cx_total", "Client connections accepted."},
    [ND_C_DOWNSTREAM_RESETS] = {"nodus_downstream_resets_total",
                                "Client connections that ended in the middle of an exchange."},
    [ND_C_ACCEPT_ERRORS] = {"nodus_accept_errors_total", "Failed accept calls."},
    [ND_C_OVERLOAD_REJECTS] = {"nodus_overload_rejects_total",
                               "Connections or requests refused by limits or overload."},
    [ND_C_HTTP_PARSE_ERRORS] = {"nodus_http_parse_errors_total",
                                "Malformed HTTP requests (answered with an error)."},
    [ND_C_HEADER_TIMEOUTS] = {"nodus_header_timeouts_total",
                              "Request heads that did not arrive in time (408)."},
    [ND_C_IDLE_TIMEOUTS] = {"nodus_idle_timeouts_total",
                            "Client connections closed after being idle too long."},
    [ND_C_UPSTREAM_CX_TOTAL] = {"nodus_upstream_cx_total", "Upstream connections opened."},
    [ND_C_UPSTREAM_CX_CONNECT_FAIL] = {"nodus_upstream_cx_connect_fail_total",
                                       "Upstream connection attempts that failed."},
    [ND_C_UPSTREAM_RESETS] = {"nodus_upstream_resets_total",
                              "Upstream connections that ended in the middle of an exchange."},
    [ND_C_UPSTREAM_TIMEOUTS] = {"nodus_upstream_timeouts_total",
                                "Upstream responses that did not arrive in time (504)."},
    [ND_C_UPSTREAM_RETRIES] = {"nodus_upstream_retries_total", "Retried upstream attempts."},
    [ND_C_POOL_REUSE] = {"nodus_pool_reuse_total",
                         "Requests sent on a kept-alive upstream connection from the pool."},
    [ND_C_BUFFER_EXHAUSTED] = {"nodus_buffer_exhausted_total",
                               "Buffer requests refused because the pool was at its limit."},
    [ND_C_EDIT_FAILURES] =
        {"nodus_edit_failures_total",
         "Plugin edits that did not fit in the per-request space (request: 500)."},
    [ND_C_REQUEST_HEAD_TOO_LARGE] =
        {"nodus_request_head_too_large_total",
         "Requests refused (431) because their head for the upstream, with the fields the node "
         "and the plugins add, did not fit in a 16 KiB buffer."},
    [ND_C_STREAM_ERRORS] = {"nodus_stream_errors_total",
                            "Connections closed because a stream plugin failed (bad TLS...)."},
    [ND_C_STREAM_TIMEOUTS] = {"nodus_stream_timeouts_total",
                              "Connections closed at a stream plugin's deadline (a TLS handshake "
                              "that did not finish in time)."},
    [ND_C_RELOADS] = {"nodus_reloads_total", "Configuration reloads that took effect."},
    [ND_C_RELOAD_FAILURES] = {"nodus_reload_failures_total",
                              "Configuration reloads refused because of errors."},
    [ND_C_LOOP_ITERATIONS] = {"nodus_worker_loop_iterations_total",
                              "Event loop iterations, per worker."},
    [ND_C_LOOP_BUSY] = {"nodus_worker_loop_busy_total",
                        "Event loop iterations that handled at least one event, per worker."},
    [ND_C_LOOP_BUSY_US] = {"nodus_worker_busy_seconds_total",
                           "Time spent handling events or packets (from the end of each wait to "
                           "the end of its iteration), per worker."},
};

static const struct {
    const char *metric, *help;
} gauge_info[ND_G__COUNT] = {
    [ND_G_DOWNSTREAM_CX_ACTIVE] = {"nodus_downstream_cx_active", "Open client connections."},
    [ND_G_DOWNSTREAM_RQ_ACTIVE] = {"nodus_downstream_rq_active", "Requests in progress."},
    [ND_G_UPSTREAM_CX_ACTIVE] = {"nodus_upstream_cx_active",
                                 "Open upstream connections (busy, idle or connecting)."},
    [ND_G_UPSTREAM_CX_IDLE] = {"nodus_upstream_cx_idle", "Idle upstream connections in the pools."},
    [ND_G_UPSTREAM_RQ_PENDING] = {"nodus_upstream_rq_pending",
                                  "Requests waiting for an upstream connection."},
    [ND_G_BUFFERS_IN_USE] = {"nodus_buffers_in_use", "I/O buffers taken from the worker pools."},
};

static int64_t cert_not_after; /* atomic: nd_metrics_set_cert_not_after() */

void nd_metrics_set_cert_not_after(int64_t not_after)
{
    __atomic_store_n(&cert_not_after, not_after, __ATOMIC_RELAXED);
}

static bool per_worker_counter(unsigned c)
{
    return c == ND_C_LOOP_ITERATIONS || c == ND_C_LOOP_BUSY || c == ND_C_LOOP_BUSY_US;
}

static void render_core(struct nd_sbuf *out)
{
    unsigned c, w, np, i;
    uint64_t sum;
    int64_t na;

    for (c = 0; c < ND_C__COUNT; c++) {
        add_help(out, counter_info[c].metric, "counter", counter_info[c].help);
        if (per_worker_counter(c)) {
            for (w = 0; w < nworkers; w++)
                if (c == ND_C_LOOP_BUSY_US) /* counted in µs */
                    nd_sbuf_printf(out, "%s{worker=\"%u\"} %.6f\n", counter_info[c].metric, w,
                                   (double)ld(&blocks[w].counters[c]) / 1e6);
                else
                    nd_sbuf_printf(out, "%s{worker=\"%u\"} %" PRIu64 "\n", counter_info[c].metric,
                                   w, ld(&blocks[w].counters[c]));
            continue;
        }
        for (sum = 0, w = 0; w <= nworkers; w++)
            sum += ld(&blocks[w].counters[c]);
        nd_sbuf_printf(out, "%s %" PRIu64 "\n", counter_info[c].metric, sum);
    }
    for (c = 0; c < ND_G__COUNT; c++) {
        for (sum = 0, w = 0; w <= nworkers; w++)
            sum += ld(&blocks[w].gauges[c]);
        add_help(out, gauge_info[c].metric, "gauge", gauge_info[c].help);
        nd_sbuf_printf(out, "%s %" PRId64 "\n", gauge_info[c].metric, (int64_t)sum);
    }
    na = __atomic_load_n(&cert_not_after, __ATOMIC_RELAXED);
    if (na) {
        add_help(out, "nodus_cert_expiry_seconds", "gauge",
                 "Seconds until the node identity certificate expires (negative: expired).");
        nd_sbuf_printf(out, "nodus_cert_expiry_seconds %" PRId64 "\n", na - (int64_t)time(NULL));
    }
    add_help(out, "nodus_worker_busy_ratio", "gauge",
             "Share of the time since start spent handling events or packets (a DPDK worker polls "
             "all the time: this, not its CPU time, is what it uses).");
    {
        uint64_t up = mono_us() - started_us;

        for (w = 0; w < nworkers; w++) {
            double r = up ? (double)ld(&blocks[w].counters[ND_C_LOOP_BUSY_US]) / (double)up : 0;

            nd_sbuf_printf(out, "nodus_worker_busy_ratio{worker=\"%u\"} %.4f\n", w,
                           r > 1 ? 1.0 : r);
        }
    }
    add_help(out, "nodus_workers", "gauge", "Worker threads.");
    nd_sbuf_printf(out, "nodus_workers %u\n", nworkers);

    add_help(out, "nodus_metrics_overflow_total", "counter",
             "Records counted in an overflow series (a per-worker table was full).");
    for (sum = 0, w = 0; w < nworkers; w++)
        sum += ld(&blocks[w].req_overflows);
    nd_sbuf_printf(out, "nodus_metrics_overflow_total{table=\"http\"} %" PRIu64 "\n", sum);
    for (sum = 0, w = 0; w < nworkers; w++)
        sum += ld(&blocks[w].tcp_overflows);
    nd_sbuf_printf(out, "nodus_metrics_overflow_total{table=\"tcp\"} %" PRIu64 "\n", sum);
    if (pr_slots) {
        unsigned nprin = __atomic_load_n(&preserved, __ATOMIC_RELAXED);

        for (sum = 0, w = 0; w < nworkers; w++)
            sum += ld(&blocks[w].pr_overflows);
        nd_sbuf_printf(out, "nodus_metrics_overflow_total{table=\"principal\"} %" PRIu64 "\n", sum);
        add_help(out, "nodus_metrics_principals", "gauge",
                 "Principals with a label value of their own (at most metrics.principals).");
        nd_sbuf_printf(out, "nodus_metrics_principals %u\n", nprin < pcap ? nprin : pcap);
        add_help(out, "nodus_metrics_principals_overflow_total", "counter",
                 "Requests whose principal found the principal table full (labelled \"other\").");
        for (sum = 0, w = 0; w < nworkers; w++)
            sum += ld(&blocks[w].principal_overflows);
        nd_sbuf_printf(out, "nodus_metrics_principals_overflow_total %" PRIu64 "\n", sum);
    }
    add_help(out, "nodus_metrics_names", "gauge", "Interned listener, cluster and node names.");
    nd_sbuf_printf(out, "nodus_metrics_names %u\n", __atomic_load_n(&nnames, __ATOMIC_ACQUIRE));
    add_help(out, "nodus_metrics_names_overflow_total", "counter",
             "Names that did not fit in the name table (rendered as \"other\").");
    nd_sbuf_printf(out, "nodus_metrics_names_overflow_total %" PRIu64 "\n", ld(&names_overflow));

    np = __atomic_load_n(&npcs, __ATOMIC_ACQUIRE);
    for (i = 0; i < np; i++) {
        for (sum = 0, w = 0; w <= nworkers; w++)
            sum += ld(&blocks[w].plugin[i]);
        add_help(out, pcs[i].metric, "counter", pcs[i].help);
        nd_sbuf_printf(out, "%s %" PRIu64 "\n", pcs[i].metric, sum);
    }
}

static void (*render_extra)(struct nd_sbuf *out);

void nd_metrics_set_extra(void (*render)(struct nd_sbuf *out))
{
    render_extra = render;
}

int nd_metrics_render(struct nd_sbuf *out)
{
    if (!__atomic_load_n(&blocks, __ATOMIC_ACQUIRE))
        return out->oom ? -1 : 0;
    if (render_requests(out) < 0 || render_principals(out) < 0 || render_tcp(out, false) < 0 ||
        render_tcp(out, true) < 0) {
        out->oom = true;
        return -1;
    }
    render_core(out);
    if (render_extra)
        render_extra(out);
    return out->oom ? -1 : 0;
}
