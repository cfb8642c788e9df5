/*
 * gossip-sim: a SWIM cluster of many nodes in one process over the simulated network
 * (gossip/sim.c), with a virtual clock. Measures time to full membership, crash detection
 * (each observer, and "known dead everywhere"), false positives, how fast a tag change (a new
 * service: an alive with the next incarnation and new Meta) reaches every node, and bytes per
 * node.
 *
 *   gossip-sim [--nodes 1000] [--loss 0.01] [--latency 1] [--jitter 1] [--minutes 10]
 *              [--crashes 20] [--warmup 60] [--seed 1] [--profile lan|fast]
 *              [--probe-interval MS] [--probe-timeout MS] [--suspicion-mult N]
 *              [--suspicion-max-mult N] [--gossip-interval MS] [--gossip-nodes N]
 *              [--retransmit-mult N] [--pushpull-interval MS] [--indirect N]
 *              [--awareness-max N] [--tag-changes K]
 *
 * Run it through bench/gossip-sim, which builds it optimised.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"
#include "swim.h"

/* A tag change (a new service) and the observers it has reached. */
struct change {
    uint32_t node, need, got;
    uint64_t at, last;
    bool void_;
    uint8_t meta[ND_GOSSIP_META_MAX];
    uint32_t len;
    bool *seen; /* observers that have the new Meta */
};

static struct {
    uint32_t nodes;
    bool *crashed;
    uint64_t *crash_at;
    uint32_t *live_at_crash, *detected;
    uint64_t *last_detect;
    double *lat; /* every observer's detection latency, ms */
    size_t nlat, caplat;
    uint64_t fp_dead, fp_suspect, suspects_of_crashed;
    bool measuring;
    /* tag changes */
    struct change *ch;
    uint32_t nch;
    double *tlat; /* every observer's latency for a tag change, ms */
    size_t ntlat;
} st;

/* A member event carrying node j's Meta: counts the observers that have a pending change. */
static void tag_seen(uint32_t observer, uint32_t j, const struct nd_swim_member *m, uint64_t now)
{
    for (uint32_t k = 0; k < st.nch; k++) {
        struct change *c = &st.ch[k];

        if (c->node != j || c->void_ || observer == j || c->seen[observer] ||
            m->meta_len != c->len || memcmp(m->meta, c->meta, c->len) != 0)
            continue;
        c->seen[observer] = true;
        c->got++;
        c->last = now;
        st.tlat[st.ntlat++] = (double)(now - c->at);
    }
}

/* Node v crashed: the changes it had not seen yet need one observer less. */
static void tag_crash(uint32_t v)
{
    for (uint32_t k = 0; k < st.nch; k++) {
        struct change *c = &st.ch[k];

        if (c->node == v && c->got < c->need)
            c->void_ = true;
        else if (c->node != v && !c->seen[v])
            c->need--;
    }
}

static void on_event(void *arg, uint32_t observer, const struct nd_swim_member *m,
                     enum nd_swim_event ev, uint64_t now)
{
    int j = nd_sim_index(m->name);

    (void)arg;
    if (j < 0 || (uint32_t)j >= st.nodes || !st.measuring)
        return;
    if (ev == ND_SWIM_EV_UPDATE || ev == ND_SWIM_EV_JOIN || ev == ND_SWIM_EV_ALIVE)
        tag_seen(observer, (uint32_t)j, m, now);
    if (ev == ND_SWIM_EV_SUSPECT) {
        if (st.crashed[j])
            st.suspects_of_crashed++;
        else
            st.fp_suspect++;
    } else if (ev == ND_SWIM_EV_FAILED) {
        if (!st.crashed[j]) {
            st.fp_dead++;
            return;
        }
        st.detected[j]++;
        st.last_detect[j] = now;
        if (st.nlat == st.caplat) {
            st.caplat = st.caplat ? 2 * st.caplat : 4096;
            st.lat = realloc(st.lat, st.caplat * sizeof *st.lat);
        }
        st.lat[st.nlat++] = (double)(now - st.crash_at[j]);
    }
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (!n)
        return NAN;
    qsort(v, n, sizeof *v, cmp_d);
    size_t i = (size_t)ceil(p / 100.0 * (double)n);

    return v[i ? i - 1 : 0];
}

static uint32_t min_alive(struct nd_sim *s, uint32_t n)
{
    uint32_t mn = UINT32_MAX;

    for (uint32_t i = 0; i < n; i++)
        if (nd_sim_running(s, i)) {
            uint32_t a = nd_sim_count(s, i, ND_GOSSIP_STATE_ALIVE);

            if (a < mn)
                mn = a;
        }
    return mn;
}

static void usage(void)
{
    fprintf(stderr, "usage: gossip-sim [--nodes N] [--loss P] [--latency MS] [--jitter MS] "
                    "[--minutes M] [--crashes K] [--warmup S] [--seed S] [--profile lan|fast] "
                    "[--probe-interval MS] [--probe-timeout MS] [--suspicion-mult N] "
                    "[--suspicion-max-mult N] [--gossip-interval MS] [--gossip-nodes N] "
                    "[--retransmit-mult N] [--pushpull-interval MS] [--indirect N] "
                    "[--awareness-max N] [--tag-changes K]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct nd_sim_config c = {.nodes = 1000,
                              .seed = 1,
                              .loss = 0.01,
                              .latency_ms = 1,
                              .jitter_ms = 1,
                              .on_event = on_event};
    double minutes = 10, warmup = 60;
    uint32_t crashes = 20, tag_changes = 20;
    const char *profile = "lan";
    struct timespec t0, t1;

    setvbuf(stdout, NULL, _IOLBF, 0);
    nd_swim_config_lan(&c.swim);
    c.swim.stream_max = 4u << 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (!v)
            usage();
        i++;
        if (!strcmp(a, "--nodes"))
            c.nodes = (uint32_t)atoi(v);
        else if (!strcmp(a, "--loss"))
            c.loss = atof(v);
        else if (!strcmp(a, "--latency"))
            c.latency_ms = (uint32_t)atoi(v);
        else if (!strcmp(a, "--jitter"))
            c.jitter_ms = (uint32_t)atoi(v);
        else if (!strcmp(a, "--minutes"))
            minutes = atof(v);
        else if (!strcmp(a, "--warmup"))
            warmup = atof(v);
        else if (!strcmp(a, "--crashes"))
            crashes = (uint32_t)atoi(v);
        else if (!strcmp(a, "--seed"))
            c.seed = (uint64_t)atoll(v);
        else if (!strcmp(a, "--profile")) {
            profile = v;
            if (!strcmp(v, "fast")) {
                /* the settings docs/gossip.md recommends for < 5 s detection */
                c.swim.probe_interval_ms = 200;
                c.swim.probe_timeout_ms = 100;
                c.swim.gossip_interval_ms = 100;
                c.swim.gossip_nodes = 4;
                c.swim.retransmit_mult = 4;
                c.swim.indirect_checks = 5;
            } else if (strcmp(v, "lan")) {
                usage();
            }
        } else if (!strcmp(a, "--probe-interval"))
            c.swim.probe_interval_ms = (uint32_t)atoi(v);
        else if (!strcmp(a, "--probe-timeout"))
            c.swim.probe_timeout_ms = (uint32_t)atoi(v);
        else if (!strcmp(a, "--suspicion-mult"))
            c.swim.suspicion_mult = (uint32_t)atoi(v);
        else if (!strcmp(a, "--suspicion-max-mult"))
            c.swim.suspicion_max_mult = (uint32_t)atoi(v);
        else if (!strcmp(a, "--gossip-interval"))
            c.swim.gossip_interval_ms = (uint32_t)atoi(v);
        else if (!strcmp(a, "--gossip-nodes"))
            c.swim.gossip_nodes = (uint32_t)atoi(v);
        else if (!strcmp(a, "--retransmit-mult"))
            c.swim.retransmit_mult = (uint32_t)atoi(v);
        else if (!strcmp(a, "--pushpull-interval"))
            c.swim.pushpull_interval_ms = (uint32_t)atoi(v);
        else if (!strcmp(a, "--indirect"))
            c.swim.indirect_checks = (uint32_t)atoi(v);
        else if (!strcmp(a, "--awareness-max"))
            c.swim.awareness_max = (uint32_t)atoi(v);
        else if (!strcmp(a, "--tag-changes"))
            tag_changes = (uint32_t)atoi(v);
        else
            usage();
    }
    uint32_t n = c.nodes;
    if (n < 2 || crashes >= n || tag_changes > 1000)
        usage();
    st.nodes = n;
    st.crashed = calloc(n, sizeof *st.crashed);
    st.crash_at = calloc(n, sizeof *st.crash_at);
    st.live_at_crash = calloc(n, sizeof *st.live_at_crash);
    st.detected = calloc(n, sizeof *st.detected);
    st.last_detect = calloc(n, sizeof *st.last_detect);
    st.ch = calloc(tag_changes ? tag_changes : 1, sizeof *st.ch);
    st.tlat = calloc((size_t)(tag_changes ? tag_changes : 1) * n, sizeof *st.tlat);
    for (uint32_t k = 0; st.ch && k < tag_changes; k++)
        if (!(st.ch[k].seen = calloc(n, sizeof *st.ch[k].seen)))
            st.ch = NULL;
    struct nd_sim *s = nd_sim_new(&c);
    if (!s || !st.crashed || !st.ch || !st.tlat) {
        fprintf(stderr, "gossip-sim: out of memory\n");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    printf("gossip-sim: %u nodes, loss %.1f%%, latency %u+%u ms, %.1f simulated minutes, "
           "profile %s\n",
           n, c.loss * 100, c.latency_ms, c.jitter_ms, minutes, profile);
    printf("  probe %u ms / timeout %u ms, indirect %u, suspicion mult %u max %u, awareness max "
           "%u, gossip %u ms x %u, retransmit mult %u, push/pull %u ms\n",
           c.swim.probe_interval_ms, c.swim.probe_timeout_ms, c.swim.indirect_checks,
           c.swim.suspicion_mult, c.swim.suspicion_max_mult, c.swim.awareness_max,
           c.swim.gossip_interval_ms, c.swim.gossip_nodes, c.swim.retransmit_mult,
           c.swim.pushpull_interval_ms);

    /* 1. everyone starts within 1 s and joins node 0 */
    for (uint32_t i = 0; i < n; i++) {
        nd_sim_run(s, (uint64_t)i * 1000 / n);
        nd_sim_start(s, i, NULL);
        if (i)
            nd_sim_join(s, i, 0);
    }
    uint64_t started = nd_sim_now(s), full = 0;
    while (nd_sim_now(s) < started + 300000) {
        nd_sim_run(s, nd_sim_now(s) + 100);
        if (min_alive(s, n) == n) {
            full = nd_sim_now(s) - started;
            break;
        }
    }
    if (full)
        printf("full membership: %.1f s after the last node started\n", (double)full / 1000);
    else
        printf("full membership: not reached in 300 s (min alive %u)\n", min_alive(s, n));

    /* the join wave's broadcasts drain before the measured phase */
    nd_sim_run(s, nd_sim_now(s) + (uint64_t)(warmup * 1000));

    /* 2. steady state with crashes, spread over the run, none in the last 2 minutes */
    uint64_t t_begin = nd_sim_now(s), dur = (uint64_t)(minutes * 60000);
    uint64_t *bytes0 = calloc(n, sizeof *bytes0);
    for (uint32_t i = 0; i < n; i++)
        bytes0[i] = nd_sim_bytes_sent(s, i);
    st.measuring = true;
    uint64_t span = dur > 120000 ? dur - 120000 : dur / 2, next_crash = t_begin + 5000;
    uint64_t next_tag = t_begin + 2500;
    uint32_t done = 0, live = n;
    while (nd_sim_now(s) < t_begin + dur) {
        uint64_t until = t_begin + dur;

        if (done < crashes && next_crash < until)
            until = next_crash;
        if (st.nch < tag_changes && next_tag < until)
            until = next_tag;
        nd_sim_run(s, until);
        if (st.nch < tag_changes && nd_sim_now(s) >= next_tag) {
            /* a live node starts advertising a new service: "svc:new<k>" */
            struct change *ch = &st.ch[st.nch];
            uint32_t node = 1 + (uint32_t)((st.nch * 4243u + 101) % (n - 1));
            char key[32], name[16];
            struct nd_swim_tag tag = {key, "8080"};
            struct nd_swim_member me;

            while (st.crashed[node])
                node = 1 + node % (n - 1);
            snprintf(key, sizeof key, "svc:new%u", st.nch);
            snprintf(name, sizeof name, "n%u", node);
            if (nd_sim_set_tags(s, node, &tag, 1) == 0 &&
                nd_swim_find(nd_sim_engine(s, node), name, &me) == 0) {
                ch->node = node;
                ch->at = nd_sim_now(s);
                ch->need = live - 1;
                ch->len = me.meta_len;
                memcpy(ch->meta, me.meta, me.meta_len);
                st.nch++;
            }
            next_tag += tag_changes ? span / tag_changes : span;
        }
        if (done < crashes && nd_sim_now(s) >= next_crash) {
            uint32_t victim = 1 + (uint32_t)((done * 7919u + 13) % (n - 1));

            while (st.crashed[victim])
                victim = 1 + victim % (n - 1);
            st.crashed[victim] = true;
            st.crash_at[victim] = nd_sim_now(s);
            st.live_at_crash[victim] = --live; /* the observers that must learn it */
            tag_crash(victim);
            nd_sim_crash(s, victim);
            done++;
            next_crash += crashes ? span / crashes : span;
        }
    }
    /* traffic of the nodes that ran the whole phase */
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!st.crashed[i])
            bytes += nd_sim_bytes_sent(s, i) - bytes0[i];
    free(bytes0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)dur / 1000.0;
    double everywhere[4096];
    size_t ne = 0, incomplete = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!st.crashed[i])
            continue;
        /* observers that crashed later may not have reported: require every survivor */
        if (st.detected[i] >= live && ne < 4096)
            everywhere[ne++] = (double)(st.last_detect[i] - st.crash_at[i]);
        else
            incomplete++;
    }
    printf("crashes: %u; each observer's detection: median %.2f s, p99 %.2f s (%zu "
           "observations)\n",
           done, pct(st.lat, st.nlat, 50) / 1000, pct(st.lat, st.nlat, 99) / 1000, st.nlat);
    printf("known dead everywhere: median %.2f s, p99 %.2f s, max %.2f s (%zu crashes; %zu not "
           "everywhere by the end)\n",
           pct(everywhere, ne, 50) / 1000, pct(everywhere, ne, 99) / 1000,
           pct(everywhere, ne, 100) / 1000, ne, incomplete);
    printf("false positives: %llu live nodes declared dead, %llu suspicions of live nodes "
           "(all refuted unless counted dead)\n",
           (unsigned long long)st.fp_dead, (unsigned long long)st.fp_suspect);
    double tev[1000];
    size_t nte = 0, tincomplete = 0;
    for (uint32_t k = 0; k < st.nch; k++) {
        if (st.ch[k].void_)
            continue;
        if (st.ch[k].got >= st.ch[k].need)
            tev[nte++] = (double)(st.ch[k].last - st.ch[k].at);
        else
            tincomplete++;
    }
    printf("tag change (new service) known everywhere: median %.2f s, p99 %.2f s, max %.2f s "
           "(%zu changes; %zu not everywhere by the end); each observer: median %.2f s, p99 "
           "%.2f s\n",
           pct(tev, nte, 50) / 1000, pct(tev, nte, 99) / 1000, pct(tev, nte, 100) / 1000, nte,
           tincomplete, pct(st.tlat, st.ntlat, 50) / 1000, pct(st.tlat, st.ntlat, 99) / 1000);
    printf("traffic: %.0f bytes/s per node (UDP payload + TCP push/pull, sent)\n",
           (double)bytes / (double)live / secs);
    printf("wall time: %.1f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    nd_sim_free(s);
    free(st.crashed);
    free(st.crash_at);
    free(st.live_at_crash);
    free(st.detected);
    free(st.last_detect);
    free(st.lat);
    for (uint32_t k = 0; k < tag_changes; k++)
        free(st.ch[k].seen);
    free(st.ch);
    free(st.tlat);
    return st.fp_dead ? 3 : 0;
}
