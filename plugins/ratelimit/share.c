/* The mesh-wide rate limit's gate and split: see share.h. */
#include "share.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t window_of(const struct rl_gate *g, uint64_t now_ns)
{
    return now_ns <= g->start_ns ? 0 : (uint32_t)((now_ns - g->start_ns) / g->interval_ns);
}

void rl_gate_init(struct rl_gate *g, uint64_t interval_ns, uint32_t share, uint64_t now_ns)
{
    g->interval_ns = interval_ns;
    g->start_ns = now_ns;
    g->collected = 0;
    atomic_init(&g->word, 0);
    atomic_init(&g->share, share);
    atomic_init(&g->closed, 0);
}

struct rl_gate_take rl_gate_take(struct rl_gate *g, uint64_t now_ns)
{
    uint32_t win = window_of(g, now_ns);
    uint64_t cur = atomic_load_explicit(&g->word, memory_order_relaxed), next;
    uint32_t share = atomic_load_explicit(&g->share, memory_order_relaxed), before;
    struct rl_gate_take t;

    for (;;) {
        uint32_t w = (uint32_t)(cur >> 32), n = (uint32_t)cur;

        if ((int32_t)(win - w) > 0) { /* a new window: this request opens it */
            next = (uint64_t)win << 32 | 1;
            if (atomic_compare_exchange_weak_explicit(&g->word, &cur, next, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                atomic_fetch_add_explicit(&g->closed, n, memory_order_relaxed);
                before = 0;
                break;
            }
            continue;
        }
        /* the current window (or a newer one opened by a worker whose clock is a hair ahead) */
        if (n == UINT32_MAX) {
            before = UINT32_MAX;
            break;
        }
        if (atomic_compare_exchange_weak_explicit(&g->word, &cur, cur + 1, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            before = n;
            break;
        }
    }
    t.ok = before < share;
    t.remaining = t.ok ? share - before - 1 : 0;
    t.reset_ns = g->start_ns + ((uint64_t)win + 1) * g->interval_ns - now_ns;
    return t;
}

uint64_t rl_gate_collect(struct rl_gate *g, uint64_t now_ns, uint32_t *windows)
{
    uint32_t win = window_of(g, now_ns);
    uint64_t cur = atomic_load_explicit(&g->word, memory_order_relaxed);

    /* close the window in the word if it ended: its count joins the closed ones */
    while ((int32_t)(win - (uint32_t)(cur >> 32)) > 0) {
        if (atomic_compare_exchange_weak_explicit(&g->word, &cur, (uint64_t)win << 32,
                                                  memory_order_relaxed, memory_order_relaxed)) {
            atomic_fetch_add_explicit(&g->closed, (uint32_t)cur, memory_order_relaxed);
            break;
        }
    }
    *windows = win - g->collected;
    g->collected = win;
    return atomic_exchange_explicit(&g->closed, 0, memory_order_relaxed);
}

static const uint64_t *sort_want;

static int by_want(const void *a, const void *b)
{
    uint64_t x = sort_want[*(const size_t *)a], y = sort_want[*(const size_t *)b];

    if (x != y)
        return x < y ? -1 : 1;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1; /* stable: the same on every node */
}

void rl_split(const uint64_t *want, size_t n, uint64_t budget, uint64_t floor, uint64_t *out,
              size_t *order)
{
    uint64_t total = 0, left;
    size_t k;

    if (!n)
        return;
    if (n * floor >= budget) { /* not even the floor for each: everyone gets it */
        for (size_t i = 0; i < n; i++)
            out[i] = floor;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = want[i] > floor ? want[i] : floor;
        total += out[i];
    }
    if (total <= budget) { /* every want covered: the rest evenly, for growth */
        for (size_t i = 0; i < n; i++)
            out[i] += (budget - total) / n;
        return;
    }
    /* water-filling: ascending wants; each gets its want while it is under the level that the
     * budget left allows the nodes not yet served, the others the level */
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    sort_want = out;
    qsort(order, n, sizeof *order, by_want);
    left = budget;
    for (k = 0; k < n; k++) {
        uint64_t level = left / (n - k), w = out[order[k]];

        if (w > level)
            break;
        left -= w;
    }
    for (size_t j = k; j < n; j++) {
        uint64_t level = left / (n - j);

        out[order[j]] = level;
        left -= level;
    }
}

/* A decimal number ending at a space: 0 and *v, with *p moved past the space. */
static int number(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    uint64_t x = 0;
    size_t n = 0;

    while (s + n < end && s[n] >= '0' && s[n] <= '9') {
        x = x * 10 + (uint64_t)(s[n] - '0');
        if (++n > 19)
            return -1;
    }
    if (n == 0 || (n > 1 && s[0] == '0') || s + n >= end || s[n] != ' ')
        return -1;
    *v = x;
    *p = s + n + 1;
    return 0;
}

int rl_report_decode(const void *payload, size_t len, struct rl_report *r)
{
    const char *p = payload, *end = p + len;
    uint64_t version;

    if (!payload || number(&p, end, &version) || version != 1 || number(&p, end, &r->demand) ||
        number(&p, end, &r->tokens) || number(&p, end, &r->interval_ms))
        return -1;
    r->node = p;
    r->node_len = (size_t)(end - p);
    if (r->node_len == 0 || r->node_len > RL_REPORT_NODE_MAX)
        return -1;
    for (size_t i = 0; i < r->node_len; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return -1;
    return 0;
}

size_t rl_report_encode(const struct rl_report *r, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "1 %llu %llu %llu %.*s", (unsigned long long)r->demand,
                     (unsigned long long)r->tokens, (unsigned long long)r->interval_ms,
                     (int)r->node_len, r->node);

    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* ---- the ledger ---- */

void rl_ledger_init(struct rl_ledger *l, uint64_t tokens, uint64_t period_ms, size_t max_nodes,
                    uint64_t now_ms)
{
    memset(l, 0, sizeof *l);
    l->tokens = tokens;
    l->period_ms = period_ms;
    l->started_ms = now_ms;
    l->max = max_nodes;
}

void rl_ledger_free(struct rl_ledger *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->nodes[i].node);
    free(l->nodes);
    free(l->want);
    free(l->out);
    free(l->order);
    memset(l, 0, sizeof *l);
}

static struct rl_node *ledger_find(struct rl_ledger *l, const char *node, size_t len, bool add)
{
    struct rl_node *r;

    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->nodes[i].node) == len && memcmp(l->nodes[i].node, node, len) == 0)
            return &l->nodes[i];
    if (!add || l->n == l->max)
        return NULL;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct rl_node *nodes = realloc(l->nodes, cap * sizeof *nodes);
        uint64_t *want, *out;
        size_t *order;

        if (!nodes)
            return NULL;
        l->nodes = nodes;
        if (!(want = realloc(l->want, cap * sizeof *want)))
            return NULL;
        l->want = want;
        if (!(out = realloc(l->out, cap * sizeof *out)))
            return NULL;
        l->out = out;
        if (!(order = realloc(l->order, cap * sizeof *order)))
            return NULL;
        l->order = order;
        l->cap = cap;
    }
    r = &l->nodes[l->n];
    if (!(r->node = strndup(node, len)))
        return NULL;
    r->demand = r->ltime = r->at_ms = 0;
    l->n++;
    return r;
}

int rl_ledger_report(struct rl_ledger *l, const char *node, size_t len, uint64_t demand,
                     uint64_t ltime, uint64_t now_ms)
{
    struct rl_node *r = ledger_find(l, node, len, true);

    if (!r)
        return -1;
    /* the newest report of a node wins; an older one (a push/pull bringing the past) is
     * ignored, unless what we hold is old enough to be from before the node restarted */
    if (r->at_ms && ltime <= r->ltime && now_ms - r->at_ms < 2 * l->period_ms)
        return 0;
    r->demand = demand;
    r->ltime = ltime;
    r->at_ms = now_ms;
    return 1;
}

uint64_t rl_ledger_share(struct rl_ledger *l, const char *self, uint64_t self_demand, unsigned live,
                         rl_alive_fn alive, void *arg, uint64_t now_ms)
{
    struct rl_node *me;
    uint64_t share;
    size_t mi = 0;

    for (size_t i = 0; i < l->n;) { /* stale: silent, or gone from gossip */
        struct rl_node *r = &l->nodes[i];

        if (strcmp(r->node, self) != 0 &&
            (now_ms - r->at_ms > RL_STALE_PERIODS * l->period_ms || !alive(arg, r->node))) {
            free(r->node);
            *r = l->nodes[--l->n];
        } else {
            i++;
        }
    }
    if (!(me = ledger_find(l, self, strlen(self), true)))
        return l->tokens / (live ? live : 1) ? l->tokens / (live ? live : 1) : 1;
    me->demand = self_demand;
    me->at_ms = now_ms;
    for (size_t i = 0; i < l->n; i++) {
        l->want[i] = rl_want(l->nodes[i].demand);
        if (&l->nodes[i] == me)
            mi = i;
    }
    l->floor = l->tokens / (20 * l->n) ? l->tokens / (20 * l->n) : 1;
    rl_split(l->want, l->n, l->tokens, l->floor, l->out, l->order);
    share = l->out[mi];
    if (now_ms - l->started_ms < RL_WARMUP_PERIODS * l->period_ms && live > 1 &&
        share > l->tokens / live)
        share = l->tokens / live > l->floor ? l->tokens / live : l->floor;
    return share ? share : 1;
}
