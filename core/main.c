/*
 * nodus: the command line, and the main thread of `nodus run` — signals, the admin listener,
 * reloads and the collection of retired snapshots. Workers do all request work.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <lua.h>
#include <msgpack.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/version.h>

#include "../gossip/catalog.h"
#include "../gossip/driver.h"
#include "../gossip/evbuf.h"
#include "../gossip/swim.h"
#include "../gossip/wire.h"
#include "admin.h"
#include "cluster.h"
#include "config.h"
#include "control.h"
#include "ctlsock.h"
#include "http1.h"
#include "log.h"
#include "metrics.h"
#include "plugin_host.h"
#include "proxy.h"
#include "sockets.h"
#include "worker.h"
#include "appliance/appliance.h"
#include "../dpdk/io_dpdk.h"
#include "../dpdk/net/conf.h"
#include "../plugins/mtls/node.h"

static const char *config_file;
static struct nd_gossip_driver *gossip; /* gossip { }, on this thread's loop */
static struct nd_ctl *ctl_kernel;       /* control-plane sockets (ctlsock.h) on the kernel */
static struct nd_ctl *ctl_dpdk;         /* and on the DPDK workers' stacks (io = "dpdk") */
static atomic_int ready_flag;
static const struct nd_io_ops *run_io = &nd_io_posix; /* the backend of this run */
static struct nd_dpdk_conf run_dpdk;                  /* its dpdk { } (io = "dpdk") */
static unsigned run_principals;                       /* its metrics.principals */

static void print_errors(const struct nd_errors *e)
{
    unsigned i;

    for (i = 0; i < e->n; i++)
        fprintf(stderr, "%s\n", e->msg[i]);
}

/* Gives names to a configuration's listeners and clusters for the metrics. */
static void intern_names(struct nd_config *cfg)
{
    unsigned i;

    for (i = 0; i < cfg->nlisteners; i++)
        cfg->listeners[i].metrics_id = nd_metrics_intern(cfg->listeners[i].name);
    for (i = 0; i < cfg->nclusters; i++)
        cfg->clusters[i].metrics_id = nd_metrics_intern(cfg->clusters[i].name);
}

/* ---- service catalog: gossip member events in, endpoint sets for discover clusters out ---- */

static struct nd_catalog *catalog;

static void catalog_event(void *arg, const struct nd_swim_member *m, enum nd_swim_event ev)
{
    (void)arg;
    if (ev == ND_SWIM_EV_REAP)
        nd_catalog_remove(catalog, m->name);
    else if (nd_catalog_member(catalog, m) < 0)
        nd_err("discovery: out of memory updating member %s", m->name);
}

/* A part of a member's service list beyond its tags (gossip/catalog.h): once the list is
 * complete, the member's endpoints are taken from it. */
static void catalog_list_event(void *arg, const struct nd_gossip_event *ev)
{
    static uint64_t warned_us;
    char member[ND_GOSSIP_NAME_MAX + 1];
    struct nd_swim_member m;
    int r;

    (void)arg;
    if (ev->name_len != sizeof ND_CAT_EVENT - 1 || memcmp(ev->name, ND_CAT_EVENT, ev->name_len))
        return;
    r = nd_catalog_list_part(catalog, ev->payload, ev->payload_len, member, sizeof(member));
    if (r == 1 && nd_swim_find(nd_gossip_driver_engine(gossip), member, &m) == 0)
        catalog_event(NULL, &m, ND_SWIM_EV_UPDATE);
    else if (r < 0 && nd_clock_us() - warned_us > 10000000) {
        warned_us = nd_clock_us();
        nd_warn("discovery: a service list part (%zu bytes) was dropped: malformed, or lists of "
                "more than %u members (nodus_catalog_bad_lists_total)",
                ev->payload_len, ND_CAT_LISTS_MAX);
    }
}

static void catalog_seed(void *arg, const struct nd_swim_member *m)
{
    catalog_event(arg, m, ND_SWIM_EV_JOIN);
}

/* Publishes one service's endpoints (NULL: none) to the clusters that discover it. Addresses
 * advertised twice (two members fronting one address) count once. */
static void catalog_publish_one(const char *name, struct nd_cat_service *cs)
{
    unsigned n = cs ? cs->neps : 0, i, k = 0, j;
    struct nd_endpoint_conf *eps = calloc(n + 1, sizeof(*eps));
    struct nd_label *labels = NULL;
    const char **members = calloc(n + 1, sizeof(*members));
    size_t nl = 0;
    int r = -1;

    for (i = 0; i < n; i++)
        nl += cs->eps[i].nlabels;
    if (eps && members && (labels = calloc(nl + 1, sizeof(*labels)))) {
        for (i = 0, nl = 0; i < n; i++) {
            const struct nd_cat_ep *e = &cs->eps[i];

            if ((k && !strcmp(e->addr, eps[k - 1].addr.text)) ||
                nd_parse_addr(e->addr, &eps[k].addr) < 0)
                continue;
            eps[k].weight = 1;
            eps[k].labels = &labels[nl];
            for (j = 0; j < e->nlabels; j++, nl++)
                labels[nl] = (struct nd_label){e->keys[j], e->vals[j]};
            eps[k].nlabels = e->nlabels;
            members[k++] = e->member;
        }
        r = nd_discover_publish(name, eps, members, k);
    }
    if (r < 0 && cs)
        cs->changed = true; /* out of memory: again at the next turn of the loop */
    else if (r > 0)
        nd_info("discovery: service \"%s\" now has %u endpoint(s)", name, k);
    free(labels);
    free(members);
    free(eps);
}

/* The services that changed; all: every discovered one (after a configuration is published:
 * its new discover clusters start empty). Then frees the sets the workers are done with. */
static void catalog_publish(bool all)
{
    struct nd_cat_service *cs;
    unsigned it = 0;

    if (!catalog)
        return;
    if (all)
        for (struct nd_epslot *sl = nd_discover_slots(); sl; sl = sl->next)
            catalog_publish_one(sl->service,
                                (struct nd_cat_service *)nd_catalog_find(catalog, sl->service));
    while ((cs = nd_catalog_take_changed(catalog, &it)))
        catalog_publish_one(cs->name, cs);
    nd_discover_collect();
}

static int reload(void *arg, struct nd_sbuf *msg)
{
    struct nd_errors errs = {0};
    struct nd_config *cfg;
    char *err = NULL;
    unsigned i;

    (void)arg;
    cfg = nd_config_load(config_file, &errs);
    if (!cfg) {
        for (i = 0; i < errs.n; i++) {
            nd_err("reload rejected: %s", errs.msg[i]);
            if (msg)
                nd_sbuf_printf(msg, "%s\n", errs.msg[i]);
        }
        nd_errors_clear(&errs);
        nd_metrics_count(0, ND_C_RELOAD_FAILURES, 1);
        return -1;
    }
    {
        char ierr[512];

        if (nd_identity_apply(cfg, ierr, sizeof(ierr)) < 0) {
            nd_err("reload rejected: %s", ierr);
            if (msg)
                nd_sbuf_printf(msg, "%s\n", ierr);
            nd_config_free(cfg);
            nd_metrics_count(0, ND_C_RELOAD_FAILURES, 1);
            return -1;
        }
    }
    if (cfg->node.workers != nd_rt.nworkers ||
        (cfg->node.io == ND_IO_DPDK) != (run_io == &nd_io_dpdk))
        nd_warn("reload: node.workers and node.io take effect at restart only");
    else if (run_io == &nd_io_dpdk && memcmp(cfg->dpdk.net, &run_dpdk, sizeof(run_dpdk)) != 0)
        nd_warn("reload: the dpdk { } block takes effect at restart only");
    if (cfg->metrics.principals != run_principals)
        nd_warn("reload: metrics.principals takes effect at restart only (%u in use)",
                run_principals);
    intern_names(cfg);
    if (nd_snap_publish(cfg, &err) < 0) {
        nd_err("reload rejected: %s", err ? err : "out of memory");
        if (msg)
            nd_sbuf_printf(msg, "%s\n", err ? err : "out of memory");
        free(err);
        nd_config_free(cfg);
        nd_metrics_count(0, ND_C_RELOAD_FAILURES, 1);
        return -1;
    }
    nd_log_level = cfg->node.log_level;
    nd_control_activate(cfg, nd_clock_us() / 1000);
    if (gossip && cfg->gossip.enabled) { /* services added or removed: the cluster hears it */
        int e = nd_gossip_driver_set_tags(gossip, &cfg->gossip);

        if (e < 0)
            nd_warn("reload: gossip tags not changed (error %d): they stay as they were", e);
        if (nd_gossip_driver_set_keyring(gossip, &cfg->gossip) < 0)
            nd_warn("reload: the gossip keyring did not change: encryption is turned on or off "
                    "only at restart");
    }
    catalog_publish(true);
    nd_metrics_count(0, ND_C_RELOADS, 1);
    nd_info("configuration reloaded from %s", config_file);
    return 0;
}

static int is_ready(void *arg)
{
    unsigned i;

    (void)arg;
    if (!atomic_load(&ready_flag) || atomic_load(&nd_rt.draining))
        return 0;
    for (i = 0; i < nd_rt.nworkers; i++)
        if (!atomic_load(&nd_rt.workers[i].ready))
            return 0;
    return 1;
}

static const struct nd_config *current_config(void *arg)
{
    struct nd_snap *s = atomic_load(&nd_rt.current);

    (void)arg;
    return s ? s->cfg : NULL;
}

/* ---- the admin listener: a small non-blocking HTTP/1.1 server on the main thread ----------- */

#define ADMIN_MAX 16
#define ADMIN_BUF 65536
#define ADMIN_TIMEOUT_US 5000000 /* a connection's whole life: request and answer */

struct admin_conn {
    struct nd_ctl_sock *s;
    int slot;
    size_t len;
    uint64_t deadline_us;
    struct nd_sbuf out; /* the answer, once the request is complete */
    size_t off;         /* bytes of out written */
    bool answering;
    char buf[ADMIN_BUF];
};

static struct admin_conn *admin_conns[ADMIN_MAX];
static struct nd_ctl_sock *admin_lsock;

static void admin_close(struct admin_conn *a)
{
    admin_conns[a->slot] = NULL;
    nd_ctl_close(a->s, false); /* what was written still goes out, then FIN */
    nd_sbuf_free(&a->out);
    free(a);
}

/* Writes what is left of the answer; closes the connection when it is all out or on an error. */
static void admin_flush(struct admin_conn *a)
{
    while (a->off < a->out.len) {
        ssize_t w = nd_ctl_write(a->s, a->out.p + a->off, a->out.len - a->off);

        if (w == -EAGAIN)
            return; /* OUT comes when there is room */
        if (w <= 0)
            break;
        a->off += (size_t)w;
    }
    admin_close(a);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);

        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void admin_answer(struct admin_conn *a, int status, const char *ctype, const char *body,
                         size_t len, const char *allow, bool head_only)
{
    nd_sbuf_printf(&a->out,
                   "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n"
                   "%s%s%sconnection: close\r\n\r\n",
                   status, nd_http1_reason(status), ctype, len, allow ? "allow: " : "",
                   allow ? allow : "", allow ? "\r\n" : "");
    if (!head_only)
        nd_sbuf_add(&a->out, body, len);
    a->answering = true;
    if (a->out.oom)
        admin_close(a);
    else
        admin_flush(a);
}

/* The control-plane socket sets' counters, as nodus_ctl_* (docs/metrics.md). */
static void ctl_metrics(struct nd_sbuf *out)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } cs[] = {
        {"udp_dropped", "Control-plane datagrams dropped (queue or ring full, no socket).",
         offsetof(struct nd_ctl_stats, udp_dropped)},
        {"conns_refused", "Control-plane connections refused (too many, accept queue full).",
         offsetof(struct nd_ctl_stats, conns_refused)},
        {"bind_errors", "Control-plane sockets a worker could not bind or listen on.",
         offsetof(struct nd_ctl_stats, bind_errors)},
        {"messages_out", "Messages from the main thread to the workers (io = dpdk).",
         offsetof(struct nd_ctl_stats, msgs_out)},
        {"messages_in", "Messages from the workers to the main thread (io = dpdk).",
         offsetof(struct nd_ctl_stats, msgs_in)},
        {"messages_deferred", "Messages held on the main thread while a worker's ring was full.",
         offsetof(struct nd_ctl_stats, msgs_deferred)},
    };
    const struct nd_ctl_stats *st[2] = {ctl_kernel ? nd_ctl_stats(ctl_kernel) : NULL,
                                        ctl_dpdk ? nd_ctl_stats(ctl_dpdk) : NULL};

    for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
        nd_sbuf_printf(out, "# HELP nodus_ctl_%s_total %s\n# TYPE nodus_ctl_%s_total counter\n",
                       cs[i].name, cs[i].help, cs[i].name);
        for (int k = 0; k < 2; k++)
            if (st[k])
                nd_sbuf_printf(
                    out, "nodus_ctl_%s_total{sockets=\"%s\"} %llu\n", cs[i].name,
                    k ? "dpdk" : "kernel",
                    (unsigned long long)*(const uint64_t *)((const char *)st[k] + cs[i].off));
    }
}

/* The gossip engine's counters, as nodus_gossip_* (docs/metrics.md), and the sockets'. */
static void gossip_metrics(void *arg, struct nd_sbuf *out)
{
    const struct nd_swim_metrics *m;

    (void)arg;
    ctl_metrics(out);
    if (!gossip)
        return;
    m = nd_swim_metrics(nd_gossip_driver_engine(gossip));
    nd_sbuf_printf(out,
                   "# HELP nodus_gossip_members Gossip members known, by state.\n"
                   "# TYPE nodus_gossip_members gauge\n"
                   "nodus_gossip_members{state=\"alive\"} %u\n"
                   "nodus_gossip_members{state=\"suspect\"} %u\n"
                   "nodus_gossip_members{state=\"dead\"} %u\n"
                   "nodus_gossip_members{state=\"left\"} %u\n"
                   "# HELP nodus_gossip_health Lifeguard local health score (0 is healthy).\n"
                   "# TYPE nodus_gossip_health gauge\n"
                   "nodus_gossip_health %u\n",
                   m->members_alive, m->members_suspect, m->members_dead, m->members_left,
                   m->health);
#define C(name, field, help)                                                                       \
    nd_sbuf_printf(out,                                                                            \
                   "# HELP nodus_gossip_" name "_total " help "\n# TYPE nodus_gossip_" name        \
                   "_total counter\nnodus_gossip_" name "_total %llu\n",                           \
                   (unsigned long long)m->field)
    C("probes", probes, "Probes sent.");
    C("probes_failed", probes_failed, "Probes that got no ack, directly or indirectly.");
    C("suspicions", suspicions, "Members this node marked suspect.");
    C("deaths", deaths, "Members this node marked dead.");
    C("refutes", refutes, "Suspicions or deaths of this node it refuted.");
    C("packets_in", pkts_in, "UDP packets received.");
    C("packets_out", pkts_out, "UDP packets sent.");
    C("bytes_in", bytes_in, "Bytes received (UDP and TCP).");
    C("bytes_out", bytes_out, "Bytes sent (UDP and TCP).");
    C("pushpulls", pushpulls, "Push/pull state exchanges.");
    C("decode_errors", decode_errors, "Malformed packets or messages dropped.");
    C("decrypt_errors", decrypt_errors, "Packets no key opened, or plaintext while keyed.");
    C("alive_limited", alive_limited, "Incarnation changes dropped by the rate limit.");
    C("members_dropped", members_dropped, "New members refused: the table is full.");
    C("events_sent", events_sent, "User events this node sent.");
    C("events_received", events_received, "New user events from other members.");
    C("events_duplicate", events_duplicate, "Copies of user events seen already.");
    C("queries_received", queries_received, "New serf queries received (ours included).");
    C("queries_duplicate", queries_duplicate, "Copies of serf queries seen already.");
    C("queries_filtered", queries_filtered, "New queries whose filters did not select us.");
    C("query_acks_sent", query_acks_sent, "Acks sent to queriers.");
    C("query_responses_sent", query_responses_sent, "Query responses sent to queriers.");
    C("queries_relayed", queries_relayed, "Query responses relayed (ours and others').");
    C("query_bad_filters", query_bad_filters, "Queries with malformed filters or regexps.");
    C("queries_sent", queries_sent, "Queries this node sent.");
    C("query_acks_received", query_acks_received, "Acks to our queries.");
    C("query_responses_received", query_responses_received, "Responses to our queries.");
    C("keyring_changes", keyring_changes, "Keys installed, used or removed by key queries.");
#undef C
    nd_sbuf_printf(out,
                   "# HELP nodus_gossip_queries_dropped_total Serf queries and replies dropped, "
                   "by reason.\n"
                   "# TYPE nodus_gossip_queries_dropped_total counter\n"
                   "nodus_gossip_queries_dropped_total{reason=\"invalid\"} %llu\n"
                   "nodus_gossip_queries_dropped_total{reason=\"late\"} %llu\n"
                   "nodus_gossip_queries_dropped_total{reason=\"reply_not_running\"} %llu\n",
                   (unsigned long long)m->queries_dropped, (unsigned long long)m->queries_late,
                   (unsigned long long)m->query_replies_dropped);
    nd_sbuf_printf(
        out,
        "# HELP nodus_gossip_events_dropped_total User events dropped, by reason.\n"
        "# TYPE nodus_gossip_events_dropped_total counter\n"
        "nodus_gossip_events_dropped_total{reason=\"too_old\"} %llu\n"
        "nodus_gossip_events_dropped_total{reason=\"before_join\"} %llu\n"
        "nodus_gossip_events_dropped_total{reason=\"too_large\"} %llu\n"
        "nodus_gossip_events_dropped_total{reason=\"buffer_full\"} %llu\n"
        "nodus_gossip_events_dropped_total{reason=\"queue_full\"} %llu\n"
        "nodus_gossip_events_dropped_total{reason=\"subscriber_queue_full\"} %llu\n"
        "# HELP nodus_gossip_events_buffered Recent user events kept for "
        "de-duplication.\n"
        "# TYPE nodus_gossip_events_buffered gauge\n"
        "nodus_gossip_events_buffered %u\n",
        (unsigned long long)m->events_too_old, (unsigned long long)m->events_before_join,
        (unsigned long long)m->events_too_large, (unsigned long long)m->events_buffer_full,
        (unsigned long long)m->events_queue_dropped,
        (unsigned long long)nd_gossip_driver_pending_dropped(gossip), m->events_buffered);
    if (catalog)
        nd_catalog_metrics(catalog, out);
}

static int members_json(void *arg, struct nd_sbuf *out)
{
    (void)arg;
    return gossip ? nd_gossip_driver_members_json(gossip, out) : 1;
}

static int events_json(void *arg, struct nd_sbuf *out)
{
    (void)arg;
    return gossip ? nd_gossip_driver_events_json(gossip, out) : 1;
}

/* POST /event: an operator's user event (`nodus event`, like `serf event`). */
static int event_send(void *arg, const char *name, size_t name_len, const void *payload,
                      size_t payload_len, bool coalesce, struct nd_sbuf *msg)
{
    size_t rl = sizeof ND_GOSSIP_EVENT_RESERVED - 1;
    int e;

    (void)arg;
    if (!gossip)
        return 1;
    if (name_len >= rl && memcmp(name, ND_GOSSIP_EVENT_RESERVED, rl) == 0) {
        nd_sbuf_printf(msg, "event names starting with \"%s\" are reserved for nodus\n",
                       ND_GOSSIP_EVENT_RESERVED);
        return -1;
    }
    e = nd_gossip_driver_publish(gossip, name, name_len, payload, payload_len, coalesce);
    if (e == ND_GOSSIP_E_LIMIT) {
        nd_sbuf_printf(msg, "name and payload are %zu bytes: a user event holds at most %u\n",
                       name_len + payload_len, ND_EVENT_SEND_MAX);
        return -1;
    }
    if (e) {
        nd_sbuf_printf(msg, "cannot send the event: %s\n", nd_gossip_strerror(e));
        return -1;
    }
    return 0;
}

/* POST /query: an operator's query (`nodus query`, like `serf query`); admin.c passes at most
 * ND_ADMIN_QUERY_TAGS tag filters. */
_Static_assert(ND_ADMIN_QUERY_TAGS <= ND_SWIM_QUERY_TAGS_MAX,
               "POST /query takes more tags than a query");
static int query_send(void *arg, const char *name, size_t name_len, const void *payload,
                      size_t payload_len, bool ack, uint32_t timeout_ms, const char *node,
                      const char *const *tags, size_t ntags, uint8_t relay_factor,
                      struct nd_sbuf *out)
{
    struct nd_gbytes nodes[1], keys[ND_SWIM_QUERY_TAGS_MAX], exprs[ND_SWIM_QUERY_TAGS_MAX];
    struct nd_swim_query_param p = {.name = name,
                                    .name_len = name_len,
                                    .payload = payload,
                                    .payload_len = payload_len,
                                    .ack = ack,
                                    .relay_factor = relay_factor,
                                    .timeout_ms = timeout_ms};
    uint32_t id, timeout;
    int e;

    (void)arg;
    if (!gossip)
        return 1;
    if (name_len >= 6 && memcmp(name, "_serf_", 6) == 0) {
        nd_sbuf_adds(out, "query names starting with \"_serf_\" are serf's own\n");
        return -1;
    }
    if (node) {
        nodes[0] = (struct nd_gbytes){(const uint8_t *)node, (uint32_t)strlen(node)};
        p.nodes = nodes;
        p.nnodes = 1;
    }
    for (size_t i = 0; i < ntags; i++) {
        const char *eq = strchr(tags[i], '=');

        if (!eq || eq == tags[i]) {
            nd_sbuf_adds(out, "a tag filter is KEY=REGEX\n");
            return -1;
        }
        keys[i] = (struct nd_gbytes){(const uint8_t *)tags[i], (uint32_t)(eq - tags[i])};
        exprs[i] = (struct nd_gbytes){(const uint8_t *)eq + 1, (uint32_t)strlen(eq + 1)};
    }
    p.tag_keys = keys;
    p.tag_exprs = exprs;
    p.ntags = ntags;
    e = nd_gossip_driver_query(gossip, &p, &id, &timeout);
    if (e == ND_GOSSIP_E_LIMIT) {
        nd_sbuf_printf(out,
                       "the query is over %u bytes encoded, or %u queries are running already\n",
                       ND_SWIM_QUERY_MAX, ND_SWIM_QUERIES_OUT);
        return -1;
    }
    if (e == ND_GOSSIP_E_VALUE && ntags) {
        nd_sbuf_adds(out, "a tag filter's expression is not a regular expression that means the "
                          "same to serf (RE2) and to nodus (POSIX), or the node is leaving\n");
        return -1;
    }
    if (e) {
        nd_sbuf_printf(out, "cannot send the query: %s\n", nd_gossip_strerror(e));
        return -1;
    }
    nd_sbuf_printf(out, "{\"id\": %u, \"timeout_ms\": %u}\n", id, timeout);
    return 0;
}

static int queries_json(void *arg, uint32_t id, struct nd_sbuf *out)
{
    int rc;

    (void)arg;
    if (!gossip)
        return 1;
    rc = nd_gossip_driver_queries_json(gossip, id, out);
    return rc == 1 ? 2 : rc;
}

/* GET /sockets: the user-space TCP's sockets (workers asked, 500 ms at most), then the kernel's. */
static int sockets_json(void *arg, struct nd_sbuf *out)
{
    struct nd_socklist l;

    (void)arg;
    if (nd_socklist_init(&l, ND_SOCKETS_MAX) < 0)
        return -1;
    if (run_io == &nd_io_dpdk)
        nd_io_dpdk_sockets(&l, 500);
    nd_sockets_kernel(&l);
    nd_sockets_json(&l, run_io->name, out);
    nd_socklist_free(&l);
    return out->oom ? -1 : 0;
}

static const struct nd_admin_ops admin_ops = {.reload = reload,
                                              .ready = is_ready,
                                              .config = current_config,
                                              .members = members_json,
                                              .metrics = gossip_metrics,
                                              .sockets = sockets_json,
                                              .events = events_json,
                                              .event = event_send,
                                              .query = query_send,
                                              .queries = queries_json};

static void admin_read(struct admin_conn *a)
{
    struct nd_http_limits lim = {.max_head = ADMIN_BUF / 2, .max_uri = 4096, .max_headers = 64};
    struct nd_http_hdr hdrs[64];
    struct nd_http_msg m;
    size_t scan = 0;
    ssize_t n;
    int r;

    for (;;) {
        n = nd_ctl_read(a->s, a->buf + a->len, ADMIN_BUF - a->len);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            admin_close(a);
            return;
        }
        a->len += (size_t)n;
        if (a->len == ADMIN_BUF)
            break;
    }
    memset(&m, 0, sizeof(m));
    m.hdrs = hdrs;
    m.cap = 64;
    r = nd_http1_parse_request(a->buf, a->len, &m, &lim, &scan);
    if (r == 0 && a->len < ADMIN_BUF)
        return;
    if (r < 0) {
        const char *e = nd_http1_strerror(r);

        admin_answer(a, nd_http1_error_status(r), "text/plain", e, strlen(e), NULL, false);
    } else if (m.body == ND_HTTP_BODY_LENGTH && a->len - (size_t)r < m.content_length &&
               a->len < ADMIN_BUF) {
        return; /* wait for the body */
    } else {
        struct nd_sbuf out = {0};
        const char *ctype = "text/plain";
        size_t blen = m.body == ND_HTTP_BODY_LENGTH ? a->len - (size_t)r : 0;
        int status;

        if (blen > m.content_length)
            blen = m.content_length;
        status = nd_admin_handle(&admin_ops, &m, a->buf + r, blen, &out, &ctype);

        admin_answer(a, status, ctype, out.p ? out.p : "", out.len,
                     status == 405 ? nd_admin_allow(&m) : NULL, m.meth == ND_HTTP_HEAD);
        nd_sbuf_free(&out);
    }
}

static void admin_event(struct nd_ctl_sock *s, unsigned ev, void *arg)
{
    struct admin_conn *a = arg;

    (void)s;
    if (!a->answering) {
        if (ev & (ND_CTL_IN | ND_CTL_ERR))
            admin_read(a);
        return;
    }
    if (ev & ND_CTL_IN) { /* bytes after the request are not read: drop them */
        char sink[512];

        while (nd_ctl_read(a->s, sink, sizeof(sink)) > 0)
            ;
    }
    admin_flush(a); /* an error ends it there */
}

static void admin_accept(struct nd_ctl_sock *l, unsigned ev, void *arg)
{
    (void)ev;
    (void)arg;
    for (;;) {
        struct nd_ctl_addr peer;
        struct nd_ctl_sock *s = nd_ctl_accept(l, admin_event, NULL, &peer, &(int){0});
        struct admin_conn *a;
        int i;

        if (!s)
            return;
        for (i = 0; i < ADMIN_MAX && admin_conns[i]; i++)
            ;
        if (i == ADMIN_MAX || !(a = calloc(1, sizeof(*a)))) {
            nd_ctl_close(s, false);
            continue;
        }
        a->s = s;
        a->slot = i;
        a->deadline_us = nd_clock_us() + ADMIN_TIMEOUT_US;
        s->arg = a;
        admin_conns[i] = a;
        admin_read(a); /* the request may be there already */
    }
}

/* ---- nodus run ------------------------------------------------------------------------------ */

/* The socket set for the admin listener or gossip on a: the DPDK ports with io = "dpdk", unless a
 * is a loopback address (a kernel socket: the operator's way in when the ports are not). */
static struct nd_ctl *ctl_for(const struct nd_config *cfg, const struct nd_addr *a)
{
    return ctl_dpdk && nd_config_ctl_on_kernel(cfg, a) == 0 ? ctl_dpdk : ctl_kernel;
}

/* As many open files as the hard limit allows: one per client and upstream connection. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            nd_warn("cannot raise the open-file limit: %s", strerror(errno));
    }
}

static int cmd_run(const char *file)
{
    struct nd_errors errs = {0};
    struct nd_config *cfg;
    char *err = NULL;
    sigset_t sigs;
    int sfd, efd, i;
    bool stopping = false;

    config_file = file;
    raise_nofile();
    cfg = nd_config_load(file, &errs);
    if (!cfg) {
        print_errors(&errs);
        nd_errors_clear(&errs);
        return 1;
    }
    nd_log_level = cfg->node.log_level;
    if (cfg->node.access_log && nd_access_log_open(cfg->node.access_log) < 0)
        nd_warn("access log %s: %s", cfg->node.access_log, strerror(errno));
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* workers inherit the mask */

    if (nd_metrics_init(cfg->node.workers, cfg->metrics.principals) < 0) {
        fprintf(stderr, "nodus: out of memory\n");
        return 1;
    }
    run_principals = cfg->metrics.principals;
    nd_metrics_set_node(cfg->node.name);
    intern_names(cfg);
    {
        char ierr[512];

        if (nd_identity_apply(cfg, ierr, sizeof(ierr)) < 0) {
            fprintf(stderr, "%s\n", ierr);
            nd_config_free(cfg);
            return 1;
        }
    }
    nd_rt.nworkers = cfg->node.workers;
    if (cfg->node.io == ND_IO_DPDK) {
        /* EAL and ports before the workers (their threads inherit the blocked signals); the
         * admin listener stays on a kernel socket */
        char derr[512];

        if (nd_io_dpdk_start(cfg->dpdk.net, cfg->node.workers, cfg->dpdk.idle_sleep_us, derr,
                             sizeof(derr)) < 0) {
            fprintf(stderr, "%s:%d: dpdk: %s\n", file, cfg->dpdk.line, derr);
            nd_config_free(cfg);
            return 3;
        }
        if (!(ctl_dpdk = nd_io_dpdk_ctl_new(cfg->node.workers, derr, sizeof(derr)))) {
            fprintf(stderr, "nodus: control-plane sockets on DPDK: %s\n", derr);
            nd_io_dpdk_stop();
            nd_config_free(cfg);
            return 1;
        }
        run_io = &nd_io_dpdk;
        run_dpdk = *cfg->dpdk.net;
        nd_metrics_set_extra(nd_io_dpdk_metrics);
    }
    nd_rt.io = run_io;
    if (!(ctl_kernel = nd_ctl_kernel_new())) {
        fprintf(stderr, "nodus: control-plane sockets: %s\n", strerror(errno));
        nd_config_free(cfg);
        return 1;
    }
    if (cfg->admin.enabled &&
        !(admin_lsock = nd_ctl_listen(ctl_for(cfg, &cfg->admin.addr), &cfg->admin.addr, 64,
                                      admin_accept, NULL, &i))) {
        fprintf(stderr, "%s: admin: cannot listen on %s: %s\n", file, cfg->admin.addr.text,
                strerror(-i));
        nd_config_free(cfg);
        return 1;
    }
    if (cfg->gossip.enabled &&
        !(gossip = nd_gossip_driver_new(ctl_for(cfg, &cfg->gossip.bind), &cfg->gossip,
                                        cfg->node.name, &err))) {
        fprintf(stderr, "%s: %s\n", file, err ? err : "gossip: out of memory");
        free(err);
        nd_config_free(cfg);
        return 1;
    }
    if (nd_snap_publish(cfg, &err) < 0) {
        fprintf(stderr, "%s: %s\n", file, err ? err : "out of memory");
        free(err);
        nd_config_free(cfg);
        return 1;
    }
    if (nd_control_init(gossip) < 0 || nd_control_activate(cfg, nd_clock_us() / 1000) < 0) {
        fprintf(stderr, "nodus: out of memory\n");
        return 1;
    }
    if (gossip) { /* the service catalog: members known so far, then their events */
        if (!(catalog = nd_catalog_new())) {
            fprintf(stderr, "nodus: out of memory\n");
            return 1;
        }
        nd_gossip_driver_on_member(gossip, catalog_event, NULL);
        if (nd_gossip_driver_subscribe(gossip, ND_CAT_EVENT, catalog_list_event, NULL) < 0) {
            fprintf(stderr, "nodus: out of memory\n");
            return 1;
        }
        nd_swim_each(nd_gossip_driver_engine(gossip), catalog_seed, NULL);
        catalog_publish(true);
    }
    if ((i = nd_workers_start(cfg->node.workers, run_io)) < 0) {
        fprintf(stderr, "nodus: cannot start workers: %s\n", strerror(-i));
        return 1;
    }
    nd_info("nodus %s: node \"%s\", %u worker(s), io %s, %u listener(s), %u cluster(s), "
            "up to %u connections",
            NODUS_VERSION, cfg->node.name, cfg->node.workers, run_io->name, cfg->nlisteners,
            cfg->nclusters, cfg->node.max_connections);
    if (run_io == &nd_io_dpdk) {
        struct nd_sbuf ports = {0};

        nd_io_dpdk_describe(&ports);
        for (char *l = ports.p, *e; l && *l; l = e + 1) {
            e = strchr(l, '\n');
            *e = '\0';
            nd_info("dpdk %s", l);
        }
        nd_sbuf_free(&ports);
    }
    for (i = 0; i < (int)cfg->nlisteners; i++)
        nd_info("listener \"%s\" on %s (%s)", cfg->listeners[i].name, cfg->listeners[i].addr.text,
                cfg->listeners[i].proto == ND_PROTO_TCP ? "tcp" : "http");
    if (cfg->admin.enabled)
        nd_info("admin on %s (%s)", cfg->admin.addr.text,
                ctl_for(cfg, &cfg->admin.addr) == ctl_dpdk ? "dpdk" : "kernel socket");
    if (gossip)
        nd_info("gossip on %s (%s) as \"%s\", advertising %s, %u seed(s)%s", cfg->gossip.bind.text,
                ctl_for(cfg, &cfg->gossip.bind) == ctl_dpdk ? "dpdk" : "kernel sockets",
                cfg->gossip.name ? cfg->gossip.name : cfg->node.name, cfg->gossip.advertise.text,
                cfg->gossip.njoin, cfg->gossip.nkeyring ? ", encrypted" : "");

    sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    efd = epoll_create1(EPOLL_CLOEXEC);
    {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = sfd};

        epoll_ctl(efd, EPOLL_CTL_ADD, sfd, &ev);
        ev.data.fd = nd_ctl_fd(ctl_kernel); /* wake-ups: nd_ctl_run below handles them */
        epoll_ctl(efd, EPOLL_CTL_ADD, ev.data.fd, &ev);
        if (ctl_dpdk) {
            ev.data.fd = nd_ctl_fd(ctl_dpdk);
            epoll_ctl(efd, EPOLL_CTL_ADD, ev.data.fd, &ev);
        }
    }
    atomic_store(&ready_flag, 1);
    for (bool told = false; !stopping;) {
        if (!told && (told = is_ready(NULL)))
            nd_init_notify_ready(); /* under the appliance's init */
        struct epoll_event evs[8];
        /* until the workers are up, every 5 ms: "serving" is said as soon as it is true */
        int cap = told ? 200 : 5, wait = gossip ? nd_gossip_driver_next_ms(gossip) : -1;
        int tick = nd_control_next_ms(nd_clock_us() / 1000);
        int n, k;

        if (tick >= 0 && (wait < 0 || tick < wait))
            wait = tick;
        n = epoll_wait(efd, evs, 8, wait >= 0 && wait < cap ? wait : cap);

        for (k = 0; k < n; k++) {
            if (evs[k].data.fd == sfd) {
                struct signalfd_siginfo si;

                while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                    if (si.ssi_signo == SIGHUP)
                        reload(NULL, NULL);
                    else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                        stopping = true;
                }
            }
        }
        nd_ctl_run(ctl_kernel); /* admin and gossip callbacks */
        if (ctl_dpdk)
            nd_ctl_run(ctl_dpdk);
        for (i = 0; i < ADMIN_MAX; i++)
            if (admin_conns[i] && nd_clock_us() > admin_conns[i]->deadline_us)
                admin_close(admin_conns[i]);
        if (gossip)
            nd_gossip_driver_run(gossip);
        nd_control_run(nd_clock_us() / 1000);
        catalog_publish(false);
        nd_snap_collect();
        nd_identity_tick();
    }
    nd_control_shutdown(); /* no more ticks nor events for the plugins */
    if (gossip) {          /* serf's graceful leave: intent, then dead about ourselves */
        nd_info("gossip: leaving");
        nd_gossip_driver_leave(gossip, 10000);
        nd_gossip_driver_free(gossip);
        gossip = NULL;
    }
    for (i = 0; i < ADMIN_MAX; i++)
        if (admin_conns[i])
            admin_close(admin_conns[i]);
    if (admin_lsock)
        nd_ctl_close(admin_lsock, false);
    admin_lsock = NULL;
    if (ctl_dpdk)
        nd_ctl_settle(ctl_dpdk, 500); /* the last answers and the leave reach the workers */
    {
        struct nd_snap *s = atomic_load(&nd_rt.current);
        uint64_t drain = s ? s->cfg->node.drain_timeout_ms : 5000;

        nd_info("draining (up to %llu ms)", (unsigned long long)drain);
        nd_workers_drain(drain);
    }
    if (run_io == &nd_io_dpdk) {
        nd_metrics_set_extra(NULL);
        nd_ctl_free(ctl_dpdk); /* its workers' halves too: they have stopped */
        ctl_dpdk = NULL;
        nd_io_dpdk_stop(); /* workers are joined and their queues released */
    }
    nd_ctl_free(ctl_kernel);
    ctl_kernel = NULL;
    close(efd);
    close(sfd);
    nd_snap_collect();
    nd_snap_shutdown();
    nd_discover_shutdown();
    nd_catalog_free(catalog);
    catalog = NULL;
    nd_identity_shutdown();
    nd_metrics_fini();
    free(nd_rt.workers);
    nd_access_log_close();
    nd_info("stopped");
    return 0;
}

/* ---- nodus check ---------------------------------------------------------------------------- */

static int cmd_check(const char *file)
{
    struct nd_errors errs = {0};
    struct nd_config *cfg = nd_config_load(file, &errs);
    char ierr[512];

    if (!cfg) {
        print_errors(&errs);
        nd_errors_clear(&errs);
        return 1;
    }
    if (nd_identity_check(cfg, ierr, sizeof(ierr)) < 0) {
        fprintf(stderr, "%s\n", ierr);
        nd_config_free(cfg);
        return 1;
    }
    printf("%s: ok (%u listener(s), %u cluster(s))\n", file, cfg->nlisteners, cfg->nclusters);
    nd_config_free(cfg);
    return 0;
}

/* ---- nodus status / members: ask a running node's admin listener -------------------------- */

/* Sends one request to the admin listener; the answer's body (malloc'd) and *status, or NULL
 * (reported on stderr). */
static char *admin_call(const char *admin, const char *method, const char *path, const char *body,
                        size_t blen, int *status)
{
    struct nd_addr a;
    struct nd_sbuf out = {0};
    char req[2048], buf[4096], *ans;
    int fd, n;

    if (nd_parse_addr(admin, &a) < 0) {
        fprintf(stderr, "nodus: bad admin address %s\n", admin);
        return NULL;
    }
    fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a.ss, a.len) < 0) {
        fprintf(stderr, "nodus: cannot reach the admin listener at %s: %s\n", admin,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    n = snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nhost: nodus\r\ncontent-length: %zu\r\n"
                 "connection: close\r\n\r\n",
                 method, path, blen);
    write_all(fd, req, (size_t)n < sizeof(req) ? (size_t)n : sizeof(req) - 1);
    write_all(fd, body, blen);
    while ((n = (int)read(fd, buf, sizeof(buf))) > 0)
        nd_sbuf_add(&out, buf, (size_t)n);
    close(fd);
    ans = out.p ? strstr(out.p, "\r\n\r\n") : NULL;
    if (!ans || sscanf(out.p, "HTTP/1.%*d %d", status) != 1) {
        fprintf(stderr, "nodus: no answer from %s\n", admin);
        nd_sbuf_free(&out);
        return NULL;
    }
    ans = strdup(ans + 4);
    nd_sbuf_free(&out);
    return ans;
}

static char *admin_get(const char *admin, const char *path)
{
    int status;

    return admin_call(admin, "GET", path, NULL, 0, &status);
}

/* One line per route of the router's description: its match, then where it goes. */
static void print_routes(json_t *vhosts)
{
    size_t i, j, k;
    json_t *vh, *r, *x;

    json_array_foreach(vhosts, i, vh)
    {
        char *domains = json_dumps(json_object_get(vh, "domains"), JSON_COMPACT);

        printf("  host %s\n", domains ? domains : "?");
        free(domains);
        json_array_foreach(json_object_get(vh, "routes"), j, r)
        {
            json_t *m = json_object_get(r, "match");
            const char *kind = json_object_get(m, "exact")   ? "exact"
                               : json_object_get(m, "regex") ? "regex"
                                                             : "prefix";
            char *rest;

            printf("    %-6s %-24s", kind, json_string_value(json_object_get(m, kind)));
            json_object_del(m, kind);
            if (json_object_size(m)) {
                rest = json_dumps(m, JSON_COMPACT);
                printf(" %s", rest ? rest : "");
                free(rest);
            }
            if ((x = json_object_get(r, "route")))
                printf(" -> %s", json_string_value(json_object_get(x, "cluster")));
            json_array_foreach(json_object_get(r, "split"), k, x)
                printf("%s%s %lld", k ? ", " : " -> split ",
                       json_string_value(json_object_get(x, "cluster")),
                       (long long)json_integer_value(json_object_get(x, "weight")));
            if ((x = json_object_get(r, "redirect")))
                printf(" -> redirect %lld",
                       (long long)json_integer_value(json_object_get(x, "status")));
            if ((x = json_object_get(r, "direct_response")))
                printf(" -> direct response %lld",
                       (long long)json_integer_value(json_object_get(x, "status")));
            printf("\n");
        }
    }
}

/* The value of the series NAME{LABELS} in a scrape, or -1 (labels as printf'd after the name). */
static long long series(const char *text, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static long long series(const char *text, const char *name, const char *fmt, ...)
{
    char key[192];
    const char *m;
    va_list ap;
    int n = snprintf(key, sizeof(key), "\n%s{", name);

    va_start(ap, fmt);
    vsnprintf(key + n, sizeof(key) - (size_t)n, fmt, ap);
    va_end(ap);
    strncat(key, "} ", sizeof(key) - strlen(key) - 1);
    m = strstr(text, key);
    return m ? atoll(m + strlen(key)) : -1;
}

/* The drops the kernel counts on the socket of an af_packet or af_xdp port
 * (nodus_dpdk_port_hw_total beyond rte_eth_stats): a third line, when the port has them. */
static void print_kernel_drops(const char *text, unsigned port)
{
    static const char *const names[] = {"ring_drops",           "xsk_rx_dropped",
                                        "xsk_rx_ring_full",     "xsk_fill_ring_empty",
                                        "xsk_rx_invalid_descs", "xsk_tx_invalid_descs"};
    const char *sep = "      kernel:";

    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        long long v =
            series(text, "nodus_dpdk_port_hw_total", "port=\"%u\",counter=\"%s\"", port, names[k]);

        if (v < 0)
            continue;
        printf("%s %s %lld", sep, names[k], v);
        sep = ",";
    }
    if (sep[0] == ',')
        printf("\n");
}

/* io = "dpdk": two lines per port, from the nodus_dpdk_port_* series of a scrape: the port, its
 * link and traffic, then its drops (the NIC's and the stack's main reasons); a third for an
 * af_packet or af_xdp port: the drops the kernel counts on its sockets. */
static void print_dpdk_ports(const char *text)
{
    const char *m = text;
    unsigned port;

    for (bool first = true; (m = strstr(m, "\nnodus_dpdk_port_info{port=\"")); first = false) {
        char dev[64] = "?", ip[24] = "?", mac[24] = "?", link[32] = "down";
        const char *v;

        m += strlen("\nnodus_dpdk_port_info{port=\"");
        port = (unsigned)atoi(m);
        if ((v = strstr(m, "dev=\"")))
            sscanf(v + 5, "%63[^\"]", dev);
        if ((v = strstr(m, "ip=\"")))
            sscanf(v + 4, "%23[^\"]", ip);
        if ((v = strstr(m, "mac=\"")))
            sscanf(v + 5, "%23[^\"]", mac);
        if (series(text, "nodus_dpdk_port_link_up", "port=\"%u\"", port) == 1) {
            long long mbps = series(text, "nodus_dpdk_port_link_speed_mbps", "port=\"%u\"", port);

            if (mbps > 0)
                snprintf(link, sizeof(link), "up %lld Mb/s", mbps);
            else
                snprintf(link, sizeof(link), "up"); /* the PMD does not know its speed */
        }
        if (first)
            printf("\nPORT  DEVICE                ADDRESS             MAC                LINK"
                   "              RX FRAMES     RX BYTES  TX FRAMES     TX BYTES\n");
        printf("%-5u %-21s %-19s %-18s %-15s %11lld %12lld %10lld %12lld\n", port, dev, ip, mac,
               link, series(text, "nodus_dpdk_port_rx_packets_total", "port=\"%u\"", port),
               series(text, "nodus_dpdk_port_rx_bytes_total", "port=\"%u\"", port),
               series(text, "nodus_dpdk_port_tx_packets_total", "port=\"%u\"", port),
               series(text, "nodus_dpdk_port_tx_bytes_total", "port=\"%u\"", port));
        printf("      dropped %lld: imissed %lld, rx_nombuf %lld, ierrors %lld, oerrors %lld, "
               "tx_queue_full %lld, no_mbuf %lld\n",
               series(text, "nodus_dpdk_port_dropped_total", "port=\"%u\"", port),
               series(text, "nodus_dpdk_port_hw_total", "port=\"%u\",counter=\"imissed\"", port),
               series(text, "nodus_dpdk_port_hw_total", "port=\"%u\",counter=\"rx_nombuf\"", port),
               series(text, "nodus_dpdk_port_hw_total", "port=\"%u\",counter=\"ierrors\"", port),
               series(text, "nodus_dpdk_port_hw_total", "port=\"%u\",counter=\"oerrors\"", port),
               series(text, "nodus_dpdk_port_drops_total", "port=\"%u\",reason=\"tx_queue_full\"",
                      port),
               series(text, "nodus_dpdk_port_drops_total", "port=\"%u\",reason=\"no_mbuf\"", port));
        print_kernel_drops(text, port);
    }
}

static int cmd_status(const char *admin)
{
    char *text = admin_get(admin, "/config_dump");
    json_t *root, *v;
    json_error_t jerr;
    size_t i, j;

    if (!text)
        return 1;
    root = json_loads(text, 0, &jerr);
    free(text);
    if (!root) {
        fprintf(stderr, "nodus: bad config dump: %s\n", jerr.text);
        return 1;
    }
    v = json_object_get(root, "node");
    printf("node %s: %lld worker(s), io %s\n", json_string_value(json_object_get(v, "name")),
           (long long)json_integer_value(json_object_get(v, "workers")),
           json_string_value(json_object_get(v, "io")));
    printf("\nLISTENER              ADDRESS                  PROTOCOL  PLUGINS\n");
    json_array_foreach(json_object_get(root, "listeners"), i, v)
    {
        json_t *p;
        char plugins[256] = "";

        json_array_foreach(json_object_get(v, "plugins"), j, p)
        {
            const char *name = json_is_string(p) ? json_string_value(p)
                                                 : json_string_value(json_object_get(p, "name"));

            if (name && strlen(plugins) + strlen(name) + 2 < sizeof(plugins)) {
                if (j)
                    strcat(plugins, ",");
                strcat(plugins, name);
            }
        }
        printf("%-21s %-24s %-9s %s\n", json_string_value(json_object_get(v, "name")),
               json_string_value(json_object_get(v, "address")),
               json_string_value(json_object_get(v, "protocol")), plugins);
    }
    json_array_foreach(json_object_get(root, "listeners"), i, v)
    {
        json_t *p;

        json_array_foreach(json_object_get(v, "plugins"), j, p)
        {
            json_t *vhosts = json_object_get(json_object_get(p, "config"), "virtual_hosts");

            if (json_is_array(vhosts) && json_array_size(vhosts)) {
                printf("\nROUTES of %s\n", json_string_value(json_object_get(v, "name")));
                print_routes(vhosts);
            }
        }
    }
    printf("\nCLUSTER               LB              ENDPOINTS\n");
    json_array_foreach(json_object_get(root, "clusters"), i, v)
    {
        json_t *e;

        printf("%-21s %-15s", json_string_value(json_object_get(v, "name")),
               json_string_value(json_object_get(v, "lb")));
        if (json_is_string(json_object_get(v, "discover")))
            printf(" discover \"%s\": %zu endpoint(s)",
                   json_string_value(json_object_get(v, "discover")),
                   json_array_size(json_object_get(v, "endpoints")));
        json_array_foreach(json_object_get(v, "endpoints"), j, e)
        {
            const char *addr = json_is_string(e) ? json_string_value(e)
                                                 : json_string_value(json_object_get(e, "address"));

            printf(" %s", addr ? addr : "?");
        }
        printf("\n");
    }
    json_decref(root);
    if ((text = admin_get(admin, "/stats/prometheus"))) {
        const char *m = strstr(text, "\nnodus_cert_expiry_seconds ");

        print_dpdk_ports(text);

        if (m) {
            long long left = atoll(m + strlen("\nnodus_cert_expiry_seconds "));

            printf("\nIDENTITY certificate expires in %lld s (%.1f days)%s\n", left,
                   (double)left / 86400, left <= 0 ? ": EXPIRED" : "");
        }
        free(text);
    }
    return 0;
}

/* Like `serf members`: name, address, status, tags. */
static int cmd_members(const char *admin)
{
    char *text = admin_get(admin, "/members");
    json_t *root, *v;
    json_error_t jerr;
    size_t i;

    if (!text)
        return 1;
    root = json_loads(text, 0, &jerr);
    if (!root) {
        fprintf(stderr, "nodus: %s", text[0] ? text : "no answer\n");
        free(text);
        return 1;
    }
    free(text);
    json_array_foreach(json_object_get(root, "members"), i, v)
    {
        const char *k;
        json_t *t;
        bool first = true;

        printf("%-24s %-22s %-8s ", json_string_value(json_object_get(v, "name")),
               json_string_value(json_object_get(v, "address")),
               json_string_value(json_object_get(v, "status")));
        json_object_foreach(json_object_get(v, "tags"), k, t)
        {
            printf("%s%s=%s", first ? "" : ",", k, json_string_value(t));
            first = false;
        }
        printf("\n");
    }
    json_decref(root);
    return 0;
}

/* POSTs payload to path (built by the caller, freed here): the answer of a 200 (free it), or
 * NULL once stderr says why; what names the path's variable part, for "too long". */
static char *admin_post(const char *admin, struct nd_sbuf *path, const char *payload,
                        const char *what)
{
    char *ans = NULL;
    int status = 0;

    if (path->oom || path->len > 1900)
        fprintf(stderr, "nodus: %s too long\n", what);
    else if ((ans = admin_call(admin, "POST", path->p, payload, strlen(payload), &status)) &&
             status != 200) {
        fprintf(stderr, "nodus: %s", ans[0] ? ans : "refused\n");
        free(ans);
        ans = NULL;
    }
    nd_sbuf_free(path);
    return ans;
}

/* s as a query string value (RFC 3986 unreserved characters and ':' kept, the rest %XX). */
static void url_escape(struct nd_sbuf *b, const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        nd_sbuf_printf(b, isalnum(*c) || strchr("-._~:", *c) ? "%c" : "%%%02X", *c);
}

/* Like `serf event [-coalesce=false] NAME [PAYLOAD]`: POST /event. */
static int cmd_event(const char *admin, int argc, char **argv)
{
    const char *name = NULL, *payload = "";
    struct nd_sbuf path = {0};
    bool coalesce = true;
    int i;
    char *ans;

    for (i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--admin"))
            i++;
        else if (!strcmp(argv[i], "--no-coalesce"))
            coalesce = false;
        else if (!name)
            name = argv[i];
        else if (payload[0] == 0 && argv[i][0])
            payload = argv[i];
        else
            name = NULL, i = argc; /* too many: usage */
    }
    if (!name || !name[0]) {
        fprintf(stderr, "usage: nodus event [--admin ADDR] [--no-coalesce] NAME [PAYLOAD]\n");
        return 2;
    }
    nd_sbuf_adds(&path, "/event?name=");
    url_escape(&path, name);
    if (!coalesce)
        nd_sbuf_adds(&path, "&coalesce=false");
    if (!(ans = admin_post(admin, &path, payload, "event name")))
        return 1;
    printf("Event '%s' dispatched! Coalescing enabled: %s\n", name, coalesce ? "true" : "false");
    free(ans);
    return 0;
}

/* Like `serf query [-no-ack] [-timeout D] [-node NAME] [-tag KEY=REGEX]... [-relay-factor N] NAME
 * [PAYLOAD]`: POST
 * /query, then GET /queries?id=N until the timeout, printing acks and responses as they come. */
static int cmd_query(const char *admin, int argc, char **argv)
{
    const char *name = NULL, *payload = "", *node = NULL, *tags[ND_ADMIN_QUERY_TAGS];
    size_t ntags = 0;
    uint64_t timeout = 0;
    long relay = 0;
    struct nd_sbuf path = {0};
    bool ack = true;
    size_t nacks = 0, nresp = 0;
    int i;
    json_t *root;
    char *ans;

    for (i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--admin")) {
            i++;
        } else if (!strcmp(argv[i], "--no-ack")) {
            ack = false;
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            if (nd_parse_duration(argv[++i], &timeout) || !timeout || timeout > 3600000)
                name = NULL, i = argc; /* POST /query takes at most an hour */
        } else if (!strcmp(argv[i], "--node") && i + 1 < argc) {
            node = argv[++i];
        } else if (!strcmp(argv[i], "--tag") && i + 1 < argc) {
            if (ntags == ND_ADMIN_QUERY_TAGS || !strchr(argv[i + 1], '=') || argv[i + 1][0] == '=')
                name = NULL, i = argc;
            else
                tags[ntags++] = argv[++i];
        } else if (!strcmp(argv[i], "--relay-factor") && i + 1 < argc) {
            relay = strtol(argv[++i], NULL, 10);
            if (relay < 0 || relay > 5)
                name = NULL, i = argc;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            name = NULL, i = argc;
        } else if (!name) {
            name = argv[i];
        } else if (payload[0] == 0 && argv[i][0]) {
            payload = argv[i];
        } else {
            name = NULL, i = argc;
        }
    }
    if (!name || !name[0]) {
        fprintf(stderr, "usage: nodus query [--admin ADDR] [--no-ack] [--timeout DURATION] "
                        "[--node NAME] [--tag KEY=REGEX]... [--relay-factor N] NAME "
                        "[PAYLOAD]\n");
        return 2;
    }
    nd_sbuf_adds(&path, "/query?name=");
    url_escape(&path, name);
    if (!ack)
        nd_sbuf_adds(&path, "&ack=false");
    if (timeout)
        nd_sbuf_printf(&path, "&timeout_ms=%llu", (unsigned long long)timeout);
    if (relay)
        nd_sbuf_printf(&path, "&relay=%ld", relay);
    if (node) {
        nd_sbuf_adds(&path, "&node=");
        url_escape(&path, node);
    }
    for (size_t t = 0; t < ntags; t++) {
        nd_sbuf_adds(&path, "&tag=");
        url_escape(&path, tags[t]);
    }
    if (!(ans = admin_post(admin, &path, payload, "query name")))
        return 1;
    if (!(root = json_loads(ans, 0, NULL))) {
        fprintf(stderr, "nodus: %s", ans);
        free(ans);
        return 1;
    }
    free(ans);
    long long id = json_integer_value(json_object_get(root, "id"));
    long long tmo = json_integer_value(json_object_get(root, "timeout_ms"));
    json_decref(root);
    printf("Query '%s' dispatched\n", name);
    fflush(stdout);
    for (int rounds = 0; rounds < (int)(tmo / 100) + 50; rounds++) {
        char q[64];
        bool done;
        json_t *v;
        size_t k;

        snprintf(q, sizeof q, "/queries?id=%lld", id);
        if (!(ans = admin_get(admin, q)))
            return 1;
        root = json_loads(ans, 0, NULL);
        free(ans);
        if (!root) {
            fprintf(stderr, "nodus: the query is gone\n");
            return 1;
        }
        json_t *acks = json_object_get(root, "acks"), *resp = json_object_get(root, "responses");

        for (k = nacks; k < json_array_size(acks); k++)
            printf("Ack from '%s'\n", json_string_value(json_array_get(acks, k)));
        nacks = json_array_size(acks);
        json_array_foreach(resp, k, v)
        {
            if (k < nresp)
                continue;
            json_t *pl = json_object_get(v, "payload");

            printf("Response from '%s': %s%s\n", json_string_value(json_object_get(v, "from")),
                   pl ? "" : "(hex) ",
                   json_string_value(pl ? pl : json_object_get(v, "payload_hex")));
        }
        nresp = json_array_size(resp);
        fflush(stdout);
        done = json_is_true(json_object_get(root, "done"));
        json_decref(root);
        if (done)
            break;
        usleep(100000);
    }
    if (ack)
        printf("Total Acks: %zu\n", nacks);
    printf("Total Responses: %zu\n", nresp);
    return 0;
}

/* The node's recent user events, oldest first: time, event time, name, payload. */
static int cmd_events(const char *admin)
{
    char *text = admin_get(admin, "/events");
    json_t *root, *v;
    json_error_t jerr;
    size_t i;

    if (!text)
        return 1;
    root = json_loads(text, 0, &jerr);
    if (!root) {
        fprintf(stderr, "nodus: %s", text[0] ? text : "no answer\n");
        free(text);
        return 1;
    }
    free(text);
    json_array_foreach(json_object_get(root, "events"), i, v)
    {
        long long ms = json_integer_value(json_object_get(v, "time_ms"));
        time_t t = (time_t)(ms / 1000);
        const char *p = json_string_value(json_object_get(v, "payload"));
        char when[32];

        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", localtime(&t));
        printf("%s.%03lld  %6lld  %-6s %-24s %s%s\n", when, ms % 1000,
               (long long)json_integer_value(json_object_get(v, "ltime")),
               json_string_value(json_object_get(v, "origin")),
               json_string_value(json_object_get(v, "name")),
               p ? "" : "hex:", p ? p : json_string_value(json_object_get(v, "payload_hex")));
    }
    json_decref(root);
    return 0;
}

/* Like `ss -tni`, for the node's own TCP (both stacks). */
static int cmd_sockets(const char *admin)
{
    char *text = admin_get(admin, "/sockets");
    int rc;

    if (!text)
        return 1;
    rc = nd_sockets_print(text, stdout);
    free(text);
    return rc;
}

static void version_plugin(const struct nodus_plugin *p, void *arg)
{
    (void)arg;
    printf("  %-12s %s\n", p->name, p->description ? p->description : "");
}

static int cmd_version(void)
{
    printf("nodus %s (plugin ABI %d)\n", NODUS_VERSION, NODUS_PLUGIN_ABI);
    printf("  %s, wolfSSL %s, jansson %s, msgpack-c %s\n", LUA_RELEASE, LIBWOLFSSL_VERSION_STRING,
           JANSSON_VERSION, msgpack_version());
    printf("I/O backends: posix, dpdk (%s)\nbuilt-in plugins:\n", nd_io_dpdk_version());
    nd_plugin_each(version_plugin, NULL);
    return 0;
}

static int usage(FILE *f, int code)
{
    fprintf(f, "usage: nodus run CONFIG.lua      run a node in the foreground\n"
               "       nodus check CONFIG.lua    validate a configuration\n"
               "       nodus status [--admin ADDR]  listeners, clusters, endpoints of a running "
               "node\n"
               "       nodus ca init|issue ...   the mesh CA and workload certificates "
               "(nodus ca help)\n"
               "       nodus members [--admin ADDR] gossip members: name, address, status, tags\n"
               "       nodus event [--admin ADDR] [--no-coalesce] NAME [PAYLOAD]  send a gossip "
               "user event\n"
               "       nodus events [--admin ADDR]  recent gossip user events\n"
               "       nodus query [--admin ADDR] [--no-ack] [--timeout D] [--node NAME] [--tag "
               "K=RE]... NAME "
               "[PAYLOAD]  a gossip (serf) query\n"
               "       nodus nic list|bind|unbind ...  PCI NICs for DPDK (nodus nic help)\n"
               "       nodus sockets [--admin ADDR] TCP connections and listeners (like ss -tni)\n"
               "       nodus version\n");
    return code;
}

int main(int argc, char **argv)
{
    const char *admin = "127.0.0.1:15000";
    int i;

    if (nd_init_wanted(argc, argv))
        return nd_init_main(argc, argv); /* the appliance's /init */
    if (getenv("NODUS_LOG_CLOCK") && !strcmp(getenv("NODUS_LOG_CLOCK"), "boot"))
        nd_log_use_boottime(); /* the node under the appliance's init: its console's clock */
    if (argc < 2)
        return usage(stderr, 2);
    if (nd_plugin_builtin_refused()) {
        fprintf(stderr,
                "nodus: %u built-in plugin(s) refused to register (see above): this "
                "binary is broken\n",
                nd_plugin_builtin_refused());
        return 1;
    }
    if (!strcmp(argv[1], "ca"))
        return nd_ca_command(argc - 2, argv + 2);
    if (!strcmp(argv[1], "nic"))
        return nd_nic_command(argc - 2, argv + 2);
    for (i = 2; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--admin"))
            admin = argv[i + 1];
    if (!strcmp(argv[1], "run") && argc >= 3)
        return cmd_run(argv[2]);
    if (!strcmp(argv[1], "check") && argc >= 3)
        return cmd_check(argv[2]);
    if (!strcmp(argv[1], "status"))
        return cmd_status(admin);
    if (!strcmp(argv[1], "members"))
        return cmd_members(admin);
    if (!strcmp(argv[1], "event"))
        return cmd_event(admin, argc - 2, argv + 2);
    if (!strcmp(argv[1], "events"))
        return cmd_events(admin);
    if (!strcmp(argv[1], "query"))
        return cmd_query(admin, argc - 2, argv + 2);
    if (!strcmp(argv[1], "sockets"))
        return cmd_sockets(admin);
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version"))
        return cmd_version();
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return usage(stdout, 0);
    return usage(stderr, 2);
}
