/*
 * The ratelimit plugin's mesh-wide limit: configuration, the node's limits by name, reports over
 * gossip and the node's share. See global.h and docs/ratelimit.md ("Mesh-wide limit").
 * Everything here but rl_global_take() runs on the main thread.
 */
#include "global.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "share.h"

#define RL_MIN_INTERVAL_MS 50
#define RL_MAX_INTERVAL_MS (24 * 3600000)
#define RL_MAX_GLOBAL_TOKENS ((1u << 24) - 1)
#define PERIOD_MIN_MS 1000 /* the default period: the interval, within these bounds */
#define PERIOD_MAX_MS 10000
#define PERIOD_LIMIT_MS 60000 /* period = "...": at most this */
#define WARN_EVERY_MS 10000

struct rl_global {
    struct rl_global *next; /* the node's limits */
    unsigned refs;
    char name[RL_GLOBAL_NAME_MAX + 1];
    char event[sizeof RL_GLOBAL_PREFIX + RL_GLOBAL_NAME_MAX];
    uint32_t tokens;
    uint64_t interval_ms, period_ms;
    struct rl_gate gate; /* read by the workers */

    /* main thread */
    struct rl_ledger ledger; /* the nodes sharing it, their latest reports */
    uint64_t next_report_ms;
    uint64_t demand; /* ours, as last reported */
    uint64_t warned_ms;
    uint64_t sent, received, bad, mismatched;
};

static struct rl_global *limits; /* main thread */
static nodus_counter_t c_sent = -1, c_received, c_bad;

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > RL_GLOBAL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

/* ---- the node's limits ---- */

static struct rl_global *limit_get(const char *name, uint32_t tokens, uint64_t interval_ms,
                                   uint64_t period_ms)
{
    struct rl_global *g;
    uint64_t now = mono_ms();
    unsigned live = nodus_gossip_live_members();

    uint32_t even = tokens / (live ? live : 1);

    for (g = limits; g; g = g->next)
        if (!strcmp(g->name, name) && g->tokens == tokens && g->interval_ms == interval_ms) {
            g->refs++;
            g->period_ms = period_ms; /* the main thread's only: the latest configuration's */
            g->ledger.period_ms = period_ms;
            return g;
        }
    if (!(g = calloc(1, sizeof *g)))
        return NULL;
    snprintf(g->name, sizeof g->name, "%s", name);
    snprintf(g->event, sizeof g->event, "%s%s", RL_GLOBAL_PREFIX, name);
    g->refs = 1;
    g->tokens = tokens;
    g->interval_ms = interval_ms;
    g->period_ms = period_ms;
    rl_ledger_init(&g->ledger, tokens, g->period_ms, RL_GLOBAL_MAX_NODES, now);
    g->next_report_ms = now + g->period_ms;
    /* until the others' reports come: an even split of the members gossip knows */
    rl_gate_init(&g->gate, interval_ms * 1000000, even ? even : 1, now * 1000000);
    g->next = limits;
    limits = g;
    if (c_sent < 0) {
        c_sent = nodus_counter("ratelimit", "global_reports_sent",
                               "Demand reports this node gossiped for its mesh-wide limits");
        c_received = nodus_counter("ratelimit", "global_reports_received",
                                   "Demand reports received from other nodes");
        c_bad = nodus_counter("ratelimit", "global_reports_bad",
                              "Malformed demand reports received, dropped");
    }
    return g;
}

void rl_global_put(struct rl_global *g)
{
    struct rl_global **pp;

    if (!g || --g->refs)
        return;
    for (pp = &limits; *pp; pp = &(*pp)->next)
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    rl_ledger_free(&g->ledger);
    free(g);
}

int rl_global_read(struct nodus_cfg *cfg, struct rl_global **out)
{
    struct nodus_cfg *t;
    const char *name = NULL;
    long long tokens = 0;
    uint64_t ms = 0, period = 0;
    int gt, gn, gk, gi, gp;

    *out = NULL;
    gt = nodus_cfg_table(cfg, "global", &t);
    if (gt <= 0)
        return gt;
    gn = nodus_cfg_str(t, "name", &name);
    gk = nodus_cfg_int(t, "tokens", 1, RL_MAX_GLOBAL_TOKENS, &tokens);
    gi = nodus_cfg_duration(t, "interval", &ms);
    gp = nodus_cfg_duration(t, "period", &period);
    if (gn < 0 || gk < 0 || gi < 0 || gp < 0)
        return -1;
    if (gn == 0 && !(name = nodus_cfg_listener_name(cfg))) {
        nodus_cfg_error(t, "a global limit needs name = \"...\" (the nodes that share it use it)");
        return -1;
    }
    if (!valid_name(name)) {
        nodus_cfg_error(t, "global limit name \"%.80s\": 1 to %d letters, digits, '.', '_' or '-'",
                        name, RL_GLOBAL_NAME_MAX);
        return -1;
    }
    if (gk == 0 || gi == 0) {
        nodus_cfg_error(t,
                        "a global limit needs tokens (the mesh's budget per interval, 1..%u) "
                        "and interval",
                        RL_MAX_GLOBAL_TOKENS);
        return -1;
    }
    if (ms < RL_MIN_INTERVAL_MS || ms > RL_MAX_INTERVAL_MS) {
        nodus_cfg_error(t, "'interval' must be between %dms and 24h", RL_MIN_INTERVAL_MS);
        return -1;
    }
    if (gp == 0)
        period = ms < PERIOD_MIN_MS ? PERIOD_MIN_MS : ms > PERIOD_MAX_MS ? PERIOD_MAX_MS : ms;
    else if (period < PERIOD_MIN_MS || period > PERIOD_LIMIT_MS) {
        nodus_cfg_error(t, "'period' (how often nodes report their demand) must be between 1s "
                           "and 60s");
        return -1;
    }
    if (!(*out = limit_get(name, (uint32_t)tokens, ms, period))) {
        nodus_cfg_error(t, "out of memory");
        return -1;
    }
    return 1;
}

/* ---- request path ---- */

bool rl_global_take(struct rl_global *g, uint64_t now_ns, uint32_t *limit, uint32_t *remaining,
                    uint32_t *reset_s)
{
    struct rl_gate_take t = rl_gate_take(&g->gate, now_ns);

    *limit = atomic_load_explicit(&g->gate.share, memory_order_relaxed);
    *remaining = t.remaining;
    *reset_s = (uint32_t)((t.reset_ns + 999999999u) / 1000000000u);
    return t.ok;
}

/* ---- reports and the share (main thread) ---- */

static bool member_alive(void *arg, const char *node)
{
    int st = nodus_gossip_member_status(node, strlen(node));

    (void)arg;
    return st == NODUS_MEMBER_ALIVE || st == NODUS_MEMBER_LEAVING;
}

/* The share, from what the ledger knows now. */
static void recompute(struct rl_global *g, uint64_t now)
{
    const char *self = nodus_gossip_self();
    uint64_t share = rl_ledger_share(&g->ledger, self ? self : "", g->demand,
                                     nodus_gossip_live_members(), member_alive, NULL, now);

    atomic_store_explicit(&g->gate.share, (uint32_t)share, memory_order_relaxed);
}

static void report(struct rl_global *g, uint64_t now)
{
    const char *self = nodus_gossip_self();
    uint32_t windows;
    uint64_t n = rl_gate_collect(&g->gate, now * 1000000, &windows);
    struct rl_report r = {.tokens = g->tokens, .interval_ms = g->interval_ms};
    char buf[RL_REPORT_NODE_MAX + 96];
    size_t len;

    if (windows)
        g->demand = n / windows;
    g->next_report_ms = now + g->period_ms;
    if (!self)
        return; /* gossip is off: alone, nobody to tell */
    r.demand = g->demand;
    r.node = self;
    r.node_len = strlen(self);
    if (!(len = rl_report_encode(&r, buf, sizeof buf)) ||
        nodus_gossip_publish(g->event, strlen(g->event), buf, len, false) < 0) {
        if (now - g->warned_ms > WARN_EVERY_MS || !g->warned_ms) {
            g->warned_ms = now;
            nodus_log(NODUS_LOG_WARN,
                      "ratelimit: global limit \"%s\": cannot gossip this node's demand (node "
                      "name %zu bytes: a user event holds 512)",
                      g->name, r.node_len);
        }
        return;
    }
    g->sent++;
    nodus_counter_add(NODUS_WORKER_MAIN, c_sent, 1);
}

void rl_global_tick(struct rl_global *g, uint64_t now_ms)
{
    if (now_ms >= g->next_report_ms)
        report(g, now_ms);
    recompute(g, now_ms);
}

void rl_global_event(struct rl_global *g, const struct nodus_gossip_event *ev)
{
    size_t el = strlen(g->event);
    struct rl_report r;
    uint64_t now = mono_ms();

    if (ev->self || ev->name_len != el || memcmp(ev->name, g->event, el) != 0)
        return;
    if (rl_report_decode(ev->payload, ev->payload_len, &r) < 0) {
        g->bad++;
        nodus_counter_add(NODUS_WORKER_MAIN, c_bad, 1);
        if (now - g->warned_ms > WARN_EVERY_MS || !g->warned_ms) {
            g->warned_ms = now;
            nodus_log(NODUS_LOG_WARN,
                      "ratelimit: global limit \"%s\": malformed demand report (%zu bytes), "
                      "dropped",
                      g->name, ev->payload_len);
        }
        return;
    }
    if (r.tokens != g->tokens || r.interval_ms != g->interval_ms)
        g->mismatched++;
    if ((r.tokens != g->tokens || r.interval_ms != g->interval_ms) &&
        (now - g->warned_ms > WARN_EVERY_MS || !g->warned_ms)) {
        g->warned_ms = now;
        nodus_log(NODUS_LOG_WARN,
                  "ratelimit: global limit \"%s\": node %.*s has tokens %llu per %llu ms, this "
                  "node %u per %llu ms: each node splits its own budget",
                  g->name, (int)r.node_len, r.node, (unsigned long long)r.tokens,
                  (unsigned long long)r.interval_ms, g->tokens, (unsigned long long)g->interval_ms);
    }
    if (rl_ledger_report(&g->ledger, r.node, r.node_len, r.demand, ev->ltime, now) <= 0)
        return;
    g->received++;
    nodus_counter_add(NODUS_WORKER_MAIN, c_received, 1);
    recompute(g, now);
}

size_t rl_global_describe(const struct rl_global *g, char *buf, size_t len)
{
    int n = snprintf(
        buf, len,
        ",\"global\":{\"name\":\"%s\",\"tokens\":%u,\"interval_ms\":%llu,\"period_ms\":%llu,"
        "\"share\":%u,\"nodes\":%zu,\"demand\":%llu,\"reports_sent\":%llu,"
        "\"reports_received\":%llu,\"reports_bad\":%llu,\"reports_mismatched\":%llu}",
        g->name, g->tokens, (unsigned long long)g->interval_ms, (unsigned long long)g->period_ms,
        (unsigned)atomic_load(&g->gate.share), g->ledger.n, (unsigned long long)g->demand,
        (unsigned long long)g->sent, (unsigned long long)g->received, (unsigned long long)g->bad,
        (unsigned long long)g->mismatched);

    return n > 0 ? (size_t)n : 0;
}
