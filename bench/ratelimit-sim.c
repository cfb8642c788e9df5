/*
 * The mesh-wide rate limit in the gossip simulation: N nodes of the real SWIM engine over the
 * simulated network (gossip/sim.c: loss, latency, virtual clock), each with the real gate and
 * ledger of plugins/ratelimit/share.c, reporting its demand as serf user events every period as
 * global.c does, under an offered load that changes over time. Prints what each node admitted,
 * per phase, against the budget. docs/ratelimit.md and bench/RESULTS.md have the figures.
 *
 *   bench/ratelimit-sim [--scenario uneven|crash|many] [--loss P] [--latency MS] [--period MS]
 *                       [--seed N]
 *
 * tests/unit/test_ratelimit_global.c includes this file (RLSIM_NO_MAIN) to run short scenarios.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gossip/sim.h"
#include "../gossip/swim.h"
#include "../plugins/ratelimit/share.h"

#define RLS_MAX_NODES 64
#define RLS_MAX_SECONDS 600
#define RLS_STEP_MS 10  /* requests are offered in steps of this */
#define RLS_TICK_MS 100 /* the control tick (the plugin's) */
#define RLS_EVENT "nodus:rl:api"

struct rls_config {
    uint32_t nodes, tokens, interval_ms, seconds;
    uint32_t period_ms; /* how often nodes report; 0: global.c's default */
    double loss;
    uint32_t latency_ms;
    uint64_t seed;
    /* requests per second node i is offered during second t */
    uint32_t (*rate)(uint32_t i, uint32_t t);
    /* second at which node i crashes (0: never) */
    uint32_t crash_at[RLS_MAX_NODES];
};

struct rls_result {
    uint64_t admitted[RLS_MAX_SECONDS][RLS_MAX_NODES];
    uint64_t offered[RLS_MAX_SECONDS][RLS_MAX_NODES];
    uint64_t reports_sent, reports_seen;
    double bytes_per_node_s; /* all gossip (membership and reports), while the limit ran */
};

static struct rls_state {
    const struct rls_config *c;
    struct nd_sim *sim;
    struct rl_gate gate[RLS_MAX_NODES];
    struct rl_ledger ledger[RLS_MAX_NODES];
    uint64_t demand[RLS_MAX_NODES], next_report[RLS_MAX_NODES];
    double carry[RLS_MAX_NODES];
    struct rls_result *r;
} rls;

static uint32_t rls_period(const struct rls_config *c)
{
    if (c->period_ms)
        return c->period_ms;
    return c->interval_ms < 1000 ? 1000 : c->interval_ms > 10000 ? 10000 : c->interval_ms;
}

static void rls_on_event(void *arg, uint32_t obs, const struct nd_swim_user_event *ev, uint64_t now)
{
    struct rl_report rep;

    (void)arg;
    if (ev->refused || ev->self || ev->name_len != strlen(RLS_EVENT) ||
        memcmp(ev->name, RLS_EVENT, ev->name_len) != 0)
        return;
    if (rl_report_decode(ev->payload, ev->payload_len, &rep) == 0 &&
        rl_ledger_report(&rls.ledger[obs], rep.node, rep.node_len, rep.demand, ev->ltime, now) > 0)
        rls.r->reports_seen++;
}

/* gossip's view: node `name` alive (or suspect) in observer's table */
struct rls_alive_arg {
    uint32_t observer;
};

static bool rls_alive(void *arg, const char *name)
{
    const struct rls_alive_arg *a = arg;
    int j = nd_sim_index(name), st;

    if (j < 0)
        return false;
    st = nd_sim_state_of(rls.sim, a->observer, (uint32_t)j);
    return st == ND_GOSSIP_STATE_ALIVE || st == ND_GOSSIP_STATE_SUSPECT;
}

static void rls_tick(uint32_t i, uint64_t now)
{
    const struct rls_config *c = rls.c;
    struct rls_alive_arg a = {i};
    char self[16], buf[128];
    uint64_t share;

    snprintf(self, sizeof self, "n%u", i);
    if (now >= rls.next_report[i]) { /* report: measure, then gossip */
        uint32_t windows;
        uint64_t n = rl_gate_collect(&rls.gate[i], now * 1000000, &windows);
        struct rl_report rep = {.tokens = c->tokens,
                                .interval_ms = c->interval_ms,
                                .node = self,
                                .node_len = strlen(self)};
        size_t len;

        if (windows)
            rls.demand[i] = n / windows;
        rep.demand = rls.demand[i];
        rls.next_report[i] = now + rls_period(c);
        if ((len = rl_report_encode(&rep, buf, sizeof buf)) &&
            nd_sim_user_event(rls.sim, i, RLS_EVENT, strlen(RLS_EVENT), buf, len, false) == 0)
            rls.r->reports_sent++;
    }
    share = rl_ledger_share(&rls.ledger[i], self, rls.demand[i],
                            nd_sim_count(rls.sim, i, ND_GOSSIP_STATE_ALIVE) +
                                nd_sim_count(rls.sim, i, ND_GOSSIP_STATE_SUSPECT),
                            rls_alive, &a, now);
    atomic_store(&rls.gate[i].share, (uint32_t)share);
}

/* Runs a scenario; 0, or -1 (bad config, out of memory). */
static int rls_run(const struct rls_config *c, struct rls_result *r)
{
    struct nd_sim_config sc = {.nodes = c->nodes,
                               .seed = c->seed,
                               .loss = c->loss,
                               .latency_ms = c->latency_ms,
                               .jitter_ms = c->latency_ms,
                               .on_user_event = rls_on_event};
    uint64_t t0, bytes0 = 0, bytes1 = 0;

    if (c->nodes > RLS_MAX_NODES || c->seconds > RLS_MAX_SECONDS || !c->nodes)
        return -1;
    memset(&rls, 0, sizeof rls);
    memset(r, 0, sizeof *r);
    rls.c = c;
    rls.r = r;
    nd_swim_config_lan(&sc.swim);
    sc.swim.stream_max = 1u << 20;
    if (!(rls.sim = nd_sim_new(&sc)))
        return -1;
    for (uint32_t i = 0; i < c->nodes; i++) { /* the cluster forms first */
        nd_sim_start(rls.sim, i, NULL);
        if (i)
            nd_sim_join(rls.sim, i, 0);
        nd_sim_run(rls.sim, nd_sim_now(rls.sim) + 10);
    }
    nd_sim_run(rls.sim, nd_sim_now(rls.sim) + 5000);
    t0 = nd_sim_now(rls.sim);
    for (uint32_t i = 0; i < c->nodes; i++)
        bytes0 += nd_sim_bytes_sent(rls.sim, i);
    for (uint32_t i = 0; i < c->nodes; i++) { /* then the limit starts on every node */
        uint32_t live = nd_sim_count(rls.sim, i, ND_GOSSIP_STATE_ALIVE);

        rl_gate_init(&rls.gate[i], (uint64_t)c->interval_ms * 1000000, c->tokens / live,
                     t0 * 1000000);
        rl_ledger_init(&rls.ledger[i], c->tokens, rls_period(c), 4096, t0);
        rls.next_report[i] = t0 + rls_period(c) + i * 37 % rls_period(c); /* not in step */
    }
    for (uint64_t t = t0; t < t0 + (uint64_t)c->seconds * 1000; t += RLS_STEP_MS) {
        uint32_t sec = (uint32_t)((t - t0) / 1000);

        nd_sim_run(rls.sim, t);
        for (uint32_t i = 0; i < c->nodes; i++) {
            double want;
            uint32_t n;

            if (c->crash_at[i] && sec >= c->crash_at[i]) {
                if (nd_sim_running(rls.sim, i))
                    nd_sim_crash(rls.sim, i);
                continue;
            }
            if ((t - t0) % RLS_TICK_MS == 0)
                rls_tick(i, t);
            want = rls.carry[i] + c->rate(i, sec) * (RLS_STEP_MS / 1000.0);
            n = (uint32_t)want;
            rls.carry[i] = want - n;
            for (uint32_t k = 0; k < n; k++) { /* spread over the step */
                uint64_t at = t * 1000000 + (uint64_t)k * RLS_STEP_MS * 1000000 / n;

                r->offered[sec][i]++;
                r->admitted[sec][i] += rl_gate_take(&rls.gate[i], at).ok;
            }
        }
    }
    for (uint32_t i = 0; i < c->nodes; i++) {
        bytes1 += nd_sim_bytes_sent(rls.sim, i);
        rl_ledger_free(&rls.ledger[i]);
    }
    r->bytes_per_node_s = (double)(bytes1 - bytes0) / c->nodes / c->seconds;
    nd_sim_free(rls.sim);
    return 0;
}

/* Sums over seconds [from, to): admitted by node i (i = nodes: all), per second. */
static double rls_rate(const struct rls_config *c, const struct rls_result *r, uint32_t i,
                       uint32_t from, uint32_t to, bool offered)
{
    uint64_t sum = 0;

    for (uint32_t t = from; t < to; t++)
        for (uint32_t k = 0; k < c->nodes; k++)
            if (i == c->nodes || k == i)
                sum += offered ? r->offered[t][k] : r->admitted[t][k];
    return (double)sum / (to - from);
}

/* ---- scenarios ---- */

/* The integration test's: n0 offered 2,000 req/s, n1 and n2 500, n3 and n4 idle for 30 s, then
 * 500 each. */
static uint32_t rate_uneven(uint32_t i, uint32_t t)
{
    static const uint32_t base[] = {2000, 500, 500, 0, 0};

    if (i >= 5)
        return 0;
    if (i >= 3)
        return t >= 30 ? 500 : 0;
    return base[i];
}

#ifndef RLSIM_NO_MAIN
/* 20 nodes: 5 heavy (1,000 req/s), 15 light (20 req/s) */
static uint32_t rate_many(uint32_t i, uint32_t t)
{
    (void)t;
    return i < 5 ? 1000 : 20;
}

static void print_phase(const struct rls_config *c, const struct rls_result *r, const char *what,
                        uint32_t from, uint32_t to)
{
    double total = rls_rate(c, r, c->nodes, from, to, false);

    printf("%s (seconds %u-%u): admitted %.1f req/s in all, %+.1f%% of the budget of %u\n", what,
           from, to, total, 100.0 * (total - c->tokens) / c->tokens, c->tokens);
    for (uint32_t i = 0; i < c->nodes; i++)
        printf("  n%-3u offered %7.1f  admitted %7.1f req/s\n", i,
               rls_rate(c, r, i, from, to, true), rls_rate(c, r, i, from, to, false));
}

int main(int argc, char **argv)
{
    static struct rls_result r;
    struct rls_config c = {.nodes = 5,
                           .tokens = 1000,
                           .interval_ms = 1000,
                           .seconds = 60,
                           .latency_ms = 2,
                           .seed = 1,
                           .rate = rate_uneven};
    const char *scenario = "uneven";

    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--loss"))
            c.loss = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed"))
            c.seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--latency"))
            c.latency_ms = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--period"))
            c.period_ms = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--scenario"))
            scenario = argv[i + 1];
        else {
            fprintf(stderr,
                    "usage: %s [--loss P] [--seed N] [--latency MS] "
                    "[--period MS] [--scenario uneven|crash|many]\n",
                    argv[0]);
            return 2;
        }
    }
    if (!strcmp(scenario, "crash")) {
        c.crash_at[0] = 40; /* the heavy node dies at 40 s */
        c.seconds = 80;
    } else if (!strcmp(scenario, "many")) {
        c.nodes = 20;
        c.tokens = 2000;
        c.rate = rate_many;
        c.seconds = 40;
    } else if (strcmp(scenario, "uneven")) {
        fprintf(stderr, "unknown scenario %s\n", scenario);
        return 2;
    }
    if (rls_run(&c, &r) < 0) {
        fprintf(stderr, "cannot run the simulation\n");
        return 1;
    }
    printf("scenario %s: %u nodes, %u tokens per %u ms, reports every %u ms, loss %.1f%%, latency "
           "%u ms (+ jitter), seed %" PRIu64 "\n",
           scenario, c.nodes, c.tokens, c.interval_ms, rls_period(&c), c.loss * 100, c.latency_ms,
           c.seed);
    printf("reports sent %" PRIu64 ", taken by other nodes %" PRIu64
           "; gossip traffic %.0f B/s per node (membership and reports)\n",
           r.reports_sent, r.reports_seen, r.bytes_per_node_s);
    if (!strcmp(scenario, "many")) {
        print_phase(&c, &r, "steady", 10, 40);
    } else {
        print_phase(&c, &r, "three nodes busy", 10, 30);
        print_phase(&c, &r, "five nodes busy", 35, 40);
        if (c.crash_at[0]) {
            print_phase(&c, &r, "n0 crashed (while detected)", 40, 50);
            print_phase(&c, &r, "n0 gone", 55, 80);
        } else {
            print_phase(&c, &r, "five nodes busy", 40, 60);
        }
    }
    {
        /* the worst whole seconds once the warm-up is over, and how long nodes that start (or
         * survive a crash) take to reach 90% of their fair part */
        double lo = 1e18, hi = 0;
        uint32_t from = c.crash_at[0] ? c.crash_at[0] : 30, fair_at = 0;
        double fair = c.crash_at[0] ? c.tokens / 4.0 : c.tokens / 5.0;

        for (uint32_t t = 2 * rls_period(&c) / 1000 + 1; t < c.seconds; t++) {
            double x = rls_rate(&c, &r, c.nodes, t, t + 1, false);

            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
        }
        printf("whole seconds after the warm-up: %.0f to %.0f req/s admitted in all (%+.1f%% / "
               "%+.1f%%)\n",
               lo, hi, 100.0 * (lo - c.tokens) / c.tokens, 100.0 * (hi - c.tokens) / c.tokens);
        if (strcmp(scenario, "many")) {
            for (uint32_t t = from; t < c.seconds && !fair_at; t++) {
                bool all = true;

                for (uint32_t i = 1; i < c.nodes; i++)
                    all &= r.admitted[t][i] >= 0.9 * fair;
                if (all)
                    fair_at = t;
            }
            printf("every busy node at 90%% of its fair part (%.0f) from second %u (%u s after "
                   "the change at %u s)\n",
                   fair, fair_at, fair_at - from, from);
        }
    }
    printf("per second, all nodes:");
    for (uint32_t t = 0; t < c.seconds; t++)
        printf(" %.0f", rls_rate(&c, &r, c.nodes, t, t + 1, false));
    printf("\n");
    return 0;
}
#endif
