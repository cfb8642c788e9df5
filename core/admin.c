/* Admin request handlers: metrics, configuration dump, readiness and reload. */
#include "admin.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include <nodus/plugin.h>

#include "buf.h"
#include "cluster.h"
#include "config.h"
#include "http1.h"
#include "metrics.h"

#define CT_TEXT "text/plain; charset=utf-8"
#define CT_PROM "text/plain; version=0.0.4"
#define CT_JSON "application/json"

static bool str_is(struct nd_str s, const char *lit)
{
    size_t n = strlen(lit);

    return s.len == n && (n == 0 || memcmp(s.p, lit, n) == 0);
}

/* ---- /config_dump
 * ------------------------------------------------------------------------------*/
/* A JSON string of s (null for NULL). Bytes that are not valid UTF-8 become '?'. */
static json_t *jstr(const char *s)
{
    json_t *j;
    char *copy;
    size_t i;

    if (!s)
        return json_null();
    if ((j = json_string(s)))
        return j;
    if (!(copy = strdup(s)))
        return NULL;
    for (i = 0; copy[i]; i++)
        if ((unsigned char)copy[i] >= 0x80)
            copy[i] = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

static json_t *jint(unsigned long long v)
{
    return json_integer((json_int_t)v);
}

static const char *lb_name(enum nd_lb lb)
{
    switch (lb) {
    case ND_LB_ROUND_ROBIN:
        return "round_robin";
    case ND_LB_LEAST_REQUEST:
        return "least_request";
    case ND_LB_RANDOM:
        return "random";
    }
    return "unknown";
}

static const char *log_level_name(int l)
{
    static const char *const n[] = {"error", "warn", "info", "debug"};

    return l >= 0 && l <= 3 ? n[l] : "unknown";
}

static json_t *dump_cluster(const struct nd_cluster_conf *c)
{
    json_t *o = json_object(), *eps = json_array(), *limits = json_object(),
           *timeouts = json_object();
    const struct nd_epset *set = nd_discover_current(c);
    const struct nd_endpoint_conf *ceps = set ? set->eps : c->eps;
    unsigned i, k, n = set ? set->neps : c->neps;

    for (i = 0; i < n; i++) {
        const struct nd_endpoint_conf *e = &ceps[i];
        json_t *ep = json_object(), *labels = json_object();

        if (set) /* discovered: which member advertises it */
            json_object_set_new(ep, "member", jstr(set->members[i]));

        for (k = 0; k < e->nlabels; k++)
            json_object_set_new(labels, e->labels[k].key ? e->labels[k].key : "",
                                jstr(e->labels[k].val));
        json_object_set_new(ep, "address", jstr(e->addr.text));
        json_object_set_new(ep, "weight", jint(e->weight));
        json_object_set_new(ep, "labels", labels);
        json_array_append_new(eps, ep);
    }
    json_object_set_new(limits, "max_connections", jint(c->max_connections));
    json_object_set_new(limits, "max_pending", jint(c->max_pending));
    json_object_set_new(limits, "max_requests", jint(c->max_requests));
    json_object_set_new(timeouts, "connect_timeout_ms", jint(c->connect_timeout_ms));
    json_object_set_new(timeouts, "idle_timeout_ms", jint(c->idle_timeout_ms));

    json_object_set_new(o, "name", jstr(c->name));
    json_object_set_new(o, "line", json_integer(c->line));
    json_object_set_new(o, "lb", jstr(lb_name(c->lb)));
    if (c->discover)
        json_object_set_new(o, "discover", jstr(c->discover));
    json_object_set_new(o, "endpoints", eps);
    json_object_set_new(o, "limits", limits);
    json_object_set_new(o, "timeouts", timeouts);
    return o;
}

/* A plugin's own description of a configuration of its (nodus_plugin.describe), as JSON: the
 * instance's, or one that configure_route() made. */
static json_t *describe_plugin(const struct nd_plugin_inst *pi, const void *conf)
{
    char small[4096], *buf = small;
    size_t need = pi->p->describe(conf, small, sizeof(small));
    json_error_t jerr;
    json_t *v;

    if (need >= sizeof(small)) {
        if (need > (64u << 20) || !(buf = malloc(need + 1)))
            return json_string("(description too large)");
        pi->p->describe(conf, buf, need + 1);
    }
    v = json_loads(buf, JSON_DECODE_ANY, &jerr);
    if (buf != small)
        free(buf);
    if (!v)
        return json_sprintf("(invalid description: %s)", jerr.text);
    return v;
}

/* The per-route configurations of the listener's plugin i (configure_route), in the order of the
 * configuration file: [config, ...]. A route that inherits its virtual host's configuration is
 * not listed again. */
static json_t *dump_route_confs(const struct nd_listener_conf *l, unsigned i)
{
    json_t *a = json_array();

    /* the listener's list is newest first: each goes in front of the ones made after it */
    for (const struct nodus_route_config *rc = l->route_confs; rc; rc = rc->next)
        for (unsigned k = rc->n; k-- > 0;)
            if (rc->e[k].inst == i && rc->e[k].own)
                json_array_insert_new(a, 0, describe_plugin(&l->plugins[i], rc->e[k].conf));
    return a;
}

static json_t *dump_listener(const struct nd_listener_conf *l)
{
    json_t *o = json_object(), *plugins = json_array(), *limits = json_object(),
           *timeouts = json_object();
    unsigned i;

    for (i = 0; i < l->nplugins; i++) {
        json_t *p = json_object();

        json_object_set_new(p, "name", jstr(l->plugins[i].p ? l->plugins[i].p->name : NULL));
        json_object_set_new(p, "line", json_integer(l->plugins[i].line));
        if (l->plugins[i].p && l->plugins[i].p->describe) {
            json_object_set_new(p, "config", describe_plugin(&l->plugins[i], l->plugins[i].conf));
            if (l->plugins[i].route_confs)
                json_object_set_new(p, "routes", dump_route_confs(l, i));
        }
        json_array_append_new(plugins, p);
    }
    json_object_set_new(limits, "max_request_headers_bytes", jint(l->limits.max_head));
    json_object_set_new(limits, "max_uri", jint(l->limits.max_uri));
    json_object_set_new(limits, "max_headers", jint(l->limits.max_headers));
    json_object_set_new(limits, "max_request_body", jint(l->max_body));
    json_object_set_new(timeouts, "request_header_timeout_ms", jint(l->header_timeout_ms));
    json_object_set_new(timeouts, "idle_timeout_ms", jint(l->idle_timeout_ms));
    json_object_set_new(timeouts, "request_timeout_ms", jint(l->request_timeout_ms));

    json_object_set_new(o, "name", jstr(l->name));
    json_object_set_new(o, "line", json_integer(l->line));
    json_object_set_new(o, "address", jstr(l->addr.text));
    json_object_set_new(o, "protocol", jstr(l->proto == ND_PROTO_TCP ? "tcp" : "http"));
    if (l->proto == ND_PROTO_TCP)
        json_object_set_new(o, "cluster", jstr(l->tcp_cluster ? l->tcp_cluster->name : NULL));
    json_object_set_new(o, "xff", json_boolean(l->xff));
    json_object_set_new(o, "limits", limits);
    json_object_set_new(o, "timeouts", timeouts);
    json_object_set_new(o, "plugins", plugins);
    return o;
}

static json_t *dump_config(const struct nd_config *cfg)
{
    json_t *root = json_object(), *node = json_object(), *admin = json_object(),
           *paths = json_array(), *clusters = json_array(), *listeners = json_array();
    unsigned i;

    for (i = 0; i < cfg->node.nplugin_paths; i++)
        json_array_append_new(paths, jstr(cfg->node.plugin_paths[i]));
    json_object_set_new(node, "name", jstr(cfg->node.name));
    json_object_set_new(node, "workers", jint(cfg->node.workers));
    json_object_set_new(node, "io", jstr(cfg->node.io == ND_IO_DPDK ? "dpdk" : "posix"));
    json_object_set_new(node, "drain_timeout_ms", jint(cfg->node.drain_timeout_ms));
    json_object_set_new(node, "access_log", jstr(cfg->node.access_log));
    json_object_set_new(node, "log_level", jstr(log_level_name(cfg->node.log_level)));
    json_object_set_new(node, "plugins", paths);

    json_object_set_new(admin, "enabled", json_boolean(cfg->admin.enabled));
    if (cfg->admin.enabled)
        json_object_set_new(admin, "listen", jstr(cfg->admin.addr.text));

    for (i = 0; i < cfg->nclusters; i++)
        json_array_append_new(clusters, dump_cluster(&cfg->clusters[i]));
    for (i = 0; i < cfg->nlisteners; i++)
        json_array_append_new(listeners, dump_listener(&cfg->listeners[i]));

    json_object_set_new(root, "file", jstr(cfg->file));
    json_object_set_new(root, "node", node);
    json_object_set_new(root, "admin", admin);
    json_object_set_new(root, "metrics",
                        json_pack("{s:I}", "principals", (json_int_t)cfg->metrics.principals));
    json_object_set_new(root, "clusters", clusters);
    json_object_set_new(root, "listeners", listeners);
    return root;
}

static int sbuf_dump_cb(const char *buf, size_t size, void *data)
{
    struct nd_sbuf *out = data;

    nd_sbuf_add(out, buf, size);
    return out->oom ? -1 : 0;
}

/* ---- routes
 * ------------------------------------------------------------------------------------*/
enum { M_GET = 1, M_POST = 2 };

/* What a route handler may read of the request. */
struct admin_req {
    const struct nd_http_msg *msg;
    const char *body;
    size_t body_len;
};

static int h_index(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                   const char **ctype);
static int h_stats(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                   const char **ctype);
static int h_config(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                    const char **ctype);
static int h_ready(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                   const char **ctype);
static int h_reload(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                    const char **ctype);
static int h_members(const struct nd_admin_ops *ops, const struct admin_req *rq,
                     struct nd_sbuf *out, const char **ctype);
static int h_sockets(const struct nd_admin_ops *ops, const struct admin_req *rq,
                     struct nd_sbuf *out, const char **ctype);
static int h_events(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                    const char **ctype);
static int h_query(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                   const char **ctype);
static int h_queries(const struct nd_admin_ops *ops, const struct admin_req *rq,
                     struct nd_sbuf *out, const char **ctype);
static int h_event(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                   const char **ctype);

static const struct route {
    const char *path;
    unsigned methods;
    int (*fn)(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
              const char **ctype);
    const char *help;
} routes[] = {
    {"/", M_GET, h_index, "this list"},
    {"/stats/prometheus", M_GET, h_stats, "metrics, Prometheus text format 0.0.4"},
    {"/stats", M_GET, h_stats, "same as /stats/prometheus"},
    {"/config_dump", M_GET, h_config, "the running configuration, as JSON"},
    {"/ready", M_GET, h_ready, "200 LIVE when every worker serves, 503 otherwise"},
    {"/members", M_GET, h_members, "gossip members (name, address, status, tags), as JSON"},
    {"/sockets", M_GET, h_sockets, "TCP connections and listeners (like ss -tni), as JSON"},
    {"/events", M_GET, h_events, "recent gossip user events and their counters, as JSON"},
    {"/event", M_POST, h_event, "?name=NAME[&coalesce=false]: send a user event, body = payload"},
    {"/query", M_POST, h_query,
     "?name=NAME[&timeout_ms=MS][&ack=false][&node=NODE][&tag=KEY%3DREGEX]...[&relay=N]: send a "
     "query, body = payload"},
    {"/queries", M_GET, h_queries, "[?id=N] our gossip queries with their acks and responses"},
    {"/reload", M_POST, h_reload, "reload the configuration file"},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static int h_index(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                   const char **ctype)
{
    size_t i;

    (void)ops;
    (void)rq;
    *ctype = CT_TEXT;
    nd_sbuf_adds(out, "nodus admin\n");
    for (i = 0; i < NROUTES; i++)
        nd_sbuf_printf(out, "  %-4s %-18s %s\n", routes[i].methods & M_POST ? "POST" : "GET",
                       routes[i].path, routes[i].help);
    return 200;
}

static int h_stats(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                   const char **ctype)
{
    (void)rq;
    *ctype = CT_PROM;
    if (nd_metrics_render(out) != 0)
        return 500;
    if (ops->metrics)
        ops->metrics(ops->arg, out);
    return out->oom ? 500 : 200;
}

static int h_config(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                    const char **ctype)
{
    const struct nd_config *cfg = ops && ops->config ? ops->config(ops->arg) : NULL;
    json_t *root;
    int rc;

    (void)rq;
    if (!cfg) {
        *ctype = CT_TEXT;
        nd_sbuf_adds(out, "no configuration\n");
        return 503;
    }
    *ctype = CT_JSON;
    if (!(root = dump_config(cfg)))
        return 500;
    rc = json_dump_callback(root, sbuf_dump_cb, out, JSON_INDENT(2));
    json_decref(root);
    nd_sbuf_adds(out, "\n");
    return rc == 0 ? 200 : 500;
}

static int h_ready(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                   const char **ctype)
{
    bool ready = ops && ops->ready && ops->ready(ops->arg) == 1;

    (void)rq;
    *ctype = CT_TEXT;
    nd_sbuf_adds(out, ready ? "LIVE\n" : "NOT READY\n");
    return ready ? 200 : 503;
}

static int h_members(const struct nd_admin_ops *ops, const struct admin_req *rq,
                     struct nd_sbuf *out, const char **ctype)
{
    int rc = ops && ops->members ? ops->members(ops->arg, out) : 1;

    (void)rq;
    if (rc == 0) {
        *ctype = CT_JSON;
        return 200;
    }
    *ctype = CT_TEXT;
    nd_sbuf_adds(out, rc > 0 ? "gossip is not configured\n" : "cannot list the members\n");
    return rc > 0 ? 503 : 500;
}

static int h_sockets(const struct nd_admin_ops *ops, const struct admin_req *rq,
                     struct nd_sbuf *out, const char **ctype)
{
    (void)rq;
    if (!ops || !ops->sockets) {
        *ctype = CT_TEXT;
        nd_sbuf_adds(out, "sockets not available\n");
        return 501;
    }
    if (ops->sockets(ops->arg, out) < 0) {
        *ctype = CT_TEXT;
        nd_sbuf_adds(out, "cannot list the sockets\n");
        return 500;
    }
    *ctype = CT_JSON;
    return 200;
}

static int h_events(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                    const char **ctype)
{
    int rc = ops && ops->events ? ops->events(ops->arg, out) : 1;

    (void)rq;
    if (rc == 0) {
        *ctype = CT_JSON;
        return 200;
    }
    *ctype = CT_TEXT;
    nd_sbuf_adds(out, rc > 0 ? "gossip is not configured\n" : "cannot list the events\n");
    return rc > 0 ? 503 : 500;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The next value of key in a query string (application/x-www-form-urlencoded: %XX and '+'),
 * from *pos on, decoded into buf: its length (*pos is then past it), or -1 when absent or
 * malformed or longer than cap. */
static long query_param_next(struct nd_str q, const char *key, size_t *pos, char *buf, size_t cap)
{
    size_t klen = strlen(key), i = *pos;

    while (i < q.len) {
        size_t end = i, n = 0;

        while (end < q.len && q.p[end] != '&')
            end++;
        if (end - i > klen && memcmp(q.p + i, key, klen) == 0 && q.p[i + klen] == '=') {
            for (size_t k = i + klen + 1; k < end; k++) {
                int c = (unsigned char)q.p[k];

                if (c == '%') {
                    int hi = k + 2 < end ? hexval(q.p[k + 1]) : -1,
                        lo = k + 2 < end ? hexval(q.p[k + 2]) : -1;

                    if (hi < 0 || lo < 0)
                        return -1;
                    c = hi * 16 + lo;
                    k += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                if (n == cap)
                    return -1;
                buf[n++] = (char)c;
            }
            *pos = end + 1;
            return (long)n;
        }
        i = end + 1;
    }
    *pos = q.len;
    return -1;
}

/* The first value of key in a query string (query_param_next). */
static long query_param(struct nd_str q, const char *key, char *buf, size_t cap)
{
    size_t pos = 0;

    return query_param_next(q, key, &pos, buf, cap);
}

static int h_event(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                   const char **ctype)
{
    char name[600], cc[8];
    long nlen = query_param(rq->msg->query, "name", name, sizeof name);
    long clen = query_param(rq->msg->query, "coalesce", cc, sizeof cc);
    bool coalesce = true;
    int rc;

    *ctype = CT_TEXT;
    if (!ops || !ops->event) {
        nd_sbuf_adds(out, "events not available\n");
        return 501;
    }
    if (nlen <= 0) {
        nd_sbuf_adds(out, "POST /event?name=NAME[&coalesce=false], the payload as the body\n");
        return 400;
    }
    for (long i = 0; i < nlen; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) {
            nd_sbuf_adds(out, "an event name may not hold control characters\n");
            return 400;
        }
    if (clen >= 0) {
        if ((clen == 4 && !memcmp(cc, "true", 4)) || (clen == 1 && cc[0] == '1')) {
            coalesce = true;
        } else if ((clen == 5 && !memcmp(cc, "false", 5)) || (clen == 1 && cc[0] == '0')) {
            coalesce = false;
        } else {
            nd_sbuf_adds(out, "coalesce is true or false\n");
            return 400;
        }
    }
    rc = ops->event(ops->arg, name, (size_t)nlen, rq->body, rq->body_len, coalesce, out);
    if (rc == 0) {
        nd_sbuf_adds(out, "sent\n");
        return 200;
    }
    if (rc > 0) {
        nd_sbuf_adds(out, "gossip is not configured\n");
        return 503;
    }
    return 400; /* the reason is in out */
}

/* A decimal parameter in [0, max]: 0 and *v, 1 when absent, -1 when malformed. */
static int num_param(struct nd_str q, const char *key, unsigned long max, unsigned long *v)
{
    char b[16];
    long n = query_param(q, key, b, sizeof b - 1);
    char *end;

    if (n < 0)
        return 1;
    b[n] = 0;
    if (n == 0 || b[0] < '0' || b[0] > '9')
        return -1;
    errno = 0;
    *v = strtoul(b, &end, 10);
    return *end || errno || *v > max ? -1 : 0;
}

static int h_query(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                   const char **ctype)
{
    char name[600], node[600], ack[8], tagbuf[ND_ADMIN_QUERY_TAGS][320], one[320];
    const char *tags[ND_ADMIN_QUERY_TAGS];
    size_t ntags = 0, pos = 0;
    long nlen = query_param(rq->msg->query, "name", name, sizeof name);
    long alen = query_param(rq->msg->query, "ack", ack, sizeof ack);
    long dlen = query_param(rq->msg->query, "node", node, sizeof node - 1);
    unsigned long timeout = 0, relay = 0;
    int rc;

    *ctype = CT_TEXT;
    if (!ops || !ops->query) {
        nd_sbuf_adds(out, "queries not available\n");
        return 501;
    }
    if (nlen <= 0 || num_param(rq->msg->query, "timeout_ms", 3600000, &timeout) < 0 ||
        num_param(rq->msg->query, "relay", 5, &relay) < 0 ||
        (alen >= 0 && !(alen == 4 && !memcmp(ack, "true", 4)) &&
         !(alen == 5 && !memcmp(ack, "false", 5)))) {
        nd_sbuf_adds(out, "POST /query?name=NAME[&timeout_ms=MS (at most 3600000)][&ack=false]"
                          "[&node=NODE][&tag=KEY%3DREGEX]...[&relay=N (0-5)], the payload as "
                          "the body\n");
        return 400;
    }
    for (;;) {
        long tlen = query_param_next(rq->msg->query, "tag", &pos, one, sizeof one - 1);

        if (tlen < 0 && pos >= rq->msg->query.len)
            break; /* no more (a malformed one leaves pos before it) */
        if (tlen < 0 || ntags == ND_ADMIN_QUERY_TAGS || memchr(one, 0, (size_t)tlen)) {
            nd_sbuf_printf(out, "tag= takes KEY=REGEX, at most %u of them, each under %zu bytes\n",
                           ND_ADMIN_QUERY_TAGS, sizeof one);
            return 400;
        }
        memcpy(tagbuf[ntags], one, (size_t)tlen);
        tagbuf[ntags][tlen] = 0;
        tags[ntags] = tagbuf[ntags];
        ntags++;
    }
    for (long i = 0; i < nlen; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) {
            nd_sbuf_adds(out, "a query name may not hold control characters\n");
            return 400;
        }
    if (dlen == 0) {
        nd_sbuf_adds(out, "node= needs a node name\n");
        return 400;
    }
    if (dlen > 0)
        node[dlen] = 0;
    rc = ops->query(ops->arg, name, (size_t)nlen, rq->body, rq->body_len, alen != 5,
                    (uint32_t)timeout, dlen > 0 ? node : NULL, tags, ntags, (uint8_t)relay, out);
    if (rc == 0) {
        *ctype = CT_JSON;
        return 200;
    }
    if (rc > 0) {
        nd_sbuf_adds(out, "gossip is not configured\n");
        return 503;
    }
    return 400; /* the reason is in out */
}

static int h_queries(const struct nd_admin_ops *ops, const struct admin_req *rq,
                     struct nd_sbuf *out, const char **ctype)
{
    unsigned long id = 0;
    int rc;

    *ctype = CT_TEXT;
    if (!ops || !ops->queries) {
        nd_sbuf_adds(out, "queries not available\n");
        return 501;
    }
    if (num_param(rq->msg->query, "id", UINT32_MAX, &id) < 0) {
        nd_sbuf_adds(out, "GET /queries[?id=N]\n");
        return 400;
    }
    rc = ops->queries(ops->arg, (uint32_t)id, out);
    if (rc == 0) {
        *ctype = CT_JSON;
        return 200;
    }
    nd_sbuf_adds(out, rc == 1   ? "gossip is not configured\n"
                      : rc == 2 ? "no such query\n"
                                : "cannot list the queries\n");
    return rc == 1 ? 503 : rc == 2 ? 404 : 500;
}

static int h_reload(const struct nd_admin_ops *ops, const struct admin_req *rq, struct nd_sbuf *out,
                    const char **ctype)
{
    struct nd_sbuf msg = {0};
    int rc;

    (void)rq;
    *ctype = CT_TEXT;
    if (!ops || !ops->reload) {
        nd_sbuf_adds(out, "reload not available\n");
        return 501;
    }
    rc = ops->reload(ops->arg, &msg);
    if (rc == 0) {
        nd_sbuf_adds(out, "reloaded\n");
    } else {
        if (msg.len == 0)
            nd_sbuf_adds(&msg, "reload failed");
        nd_sbuf_add(out, msg.p, msg.len);
        if (msg.p[msg.len - 1] != '\n')
            nd_sbuf_adds(out, "\n");
        if (msg.oom)
            out->oom = true;
    }
    nd_sbuf_free(&msg);
    return rc == 0 ? 200 : 500;
}

static const struct route *find_route(const struct nd_http_msg *req)
{
    size_t i;

    for (i = 0; i < NROUTES; i++)
        if (str_is(req->path, routes[i].path))
            return &routes[i];
    return NULL;
}

const char *nd_admin_allow(const struct nd_http_msg *req)
{
    const struct route *r = find_route(req);

    if (!r)
        return NULL;
    return r->methods & M_POST ? "POST" : "GET, HEAD";
}

int nd_admin_handle(const struct nd_admin_ops *ops, const struct nd_http_msg *req, const char *body,
                    size_t body_len, struct nd_sbuf *out, const char **ctype)
{
    const struct admin_req rq = {.msg = req, .body = body, .body_len = body_len};
    const struct route *r = find_route(req);
    unsigned m = str_is(req->method, "GET") || str_is(req->method, "HEAD") ? M_GET
                 : str_is(req->method, "POST")                             ? M_POST
                                                                           : 0;
    int status;

    *ctype = CT_TEXT;
    if (!r) {
        nd_sbuf_adds(out, "not found; GET / lists the endpoints\n");
        status = 404;
    } else if (!(r->methods & m)) {
        nd_sbuf_printf(out, "method not allowed; use %s\n", nd_admin_allow(req));
        status = 405;
    } else {
        status = r->fn(ops, &rq, out, ctype);
    }
    if (out->oom) {
        nd_sbuf_free(out);
        nd_sbuf_adds(out, "out of memory\n");
        *ctype = CT_TEXT;
        status = 500;
    }
    return status;
}
