/*
 * The configuration a Lua script produces: plain native structures, immutable once built.
 * A loaded configuration is one snapshot: workers hold a pointer to it, reload builds a new one.
 */
#ifndef NODUS_CONFIG_H
#define NODUS_CONFIG_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http1.h"

struct nodus_plugin;
struct nd_dpdk_conf;
struct nd_epslot;

#define ND_MAX_WORKERS 64

struct nd_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[64]; /* as written: "127.0.0.1:8080", "[::1]:8080" */
};

struct nd_label {
    char *key, *val;
};

struct nd_endpoint_conf {
    struct nd_addr addr;
    uint32_t weight; /* default 1 */
    struct nd_label *labels;
    unsigned nlabels;
};

enum nd_lb { ND_LB_ROUND_ROBIN, ND_LB_LEAST_REQUEST, ND_LB_RANDOM };

struct nd_cluster_conf {
    char *name;
    int line;
    unsigned id;         /* index in nd_config.clusters */
    uint16_t metrics_id; /* interned name (metrics.h), set when the snapshot is published */
    struct nd_endpoint_conf *eps;
    unsigned neps;
    enum nd_lb lb;               /* lb = "round_robin" (default) | "least_request" | "random" */
    uint32_t connect_timeout_ms; /* connect_timeout, default 1s */
    uint32_t idle_timeout_ms;    /* idle_timeout of pooled upstream connections, default 60s */
    uint32_t max_connections;    /* limits = { max_connections, max_pending, max_requests } */
    uint32_t max_pending;        /* default 1024 each */
    uint32_t max_requests;
    /* tls = "mutual": TLS to the endpoints with the node identity, through the upstream TLS
     * provider (plugins/mtls); sni = "...", expect = { SPIFFE ids or "prefix/" + "*" },
     * handshake_timeout = "10s" */
    bool tls;
    char *tls_sni;
    char **tls_expect;
    unsigned tls_nexpect;
    uint32_t tls_handshake_timeout_ms; /* handshake_timeout, default 10s */
    void *tls_conf; /* the provider's, built at load, destroyed with the configuration */
    /* discover = "name": the endpoints come from the gossip service catalog, live (eps is NULL,
     * neps 0); dslot: where the main thread publishes them (cluster.h), set at publish */
    char *discover;
    struct nd_epslot *dslot;
};

/*
 * Upstream TLS: what the core puts on connections to a cluster with tls = "mutual". One provider
 * (the mtls plugin registers it from a constructor): configure() runs on the main thread when a
 * configuration is loaded (also by `nodus check`) and returns the layer's conf, or NULL with a
 * message; ops is the stream layer put on each upstream connection (connect starts the
 * handshake; the verified server identity goes to nodus_stream_set_peer_principal()).
 */
struct nodus_stream_ops;
struct nd_upstream_tls_provider {
    const struct nodus_stream_ops *ops;
    size_t txn_size; /* per-connection state, at most ND_TXN_SCRATCH */
    void *(*configure)(const struct nd_cluster_conf *cc, char *err, size_t errlen);
    void (*destroy)(void *conf);
};
void nd_upstream_tls_register(const struct nd_upstream_tls_provider *p);
extern const struct nd_upstream_tls_provider *nd_upstream_tls;

#define ND_TXN_SCRATCH 4096 /* bytes of plugin state (ctx->txn) per request or connection */
#define ND_TXN_MAX_LAYERS 8 /* stream plugins per listener */

/* One configured plugin in a listener chain. */
struct nd_plugin_inst {
    const struct nodus_plugin *p;
    void *conf;
    int line;
    size_t txn_off;       /* offset of this instance's scratch in the per-request scratch area */
    char *require_routes; /* nodus_cfg_require_route_config()'s message, or NULL */
    unsigned route_confs; /* per-route configurations made for it (configure_route) */
};

/* The per-route configurations of one route (or virtual host) of a listener's terminal plugin:
 * the handle nodus_cfg_route_config() gives, owned by the listener. */
struct nodus_route_config {
    struct nodus_route_config *next; /* the listener's list, for freeing */
    unsigned n;
    struct nd_route_conf {
        void *owner;   /* the instance's configuration (ctx->conf): what requests look up */
        unsigned inst; /* the instance's index in the chain */
        void *conf;    /* what its configure_route() returned */
        bool own;      /* made for this handle, not inherited: destroyed with it */
    } e[];
};

enum nd_proto { ND_PROTO_HTTP, ND_PROTO_TCP };

struct nd_listener_conf {
    char *name;
    int line;
    unsigned id;
    uint16_t metrics_id;            /* interned name (metrics.h) */
    struct nd_addr addr;            /* listen = "127.0.0.1:8080" | "[::]:8080" */
    enum nd_proto proto;            /* protocol = "http" (default) | "tcp" */
    struct nd_plugin_inst *plugins; /* in config order: stream plugins, then http plugins */
    unsigned nplugins;
    struct nodus_route_config *route_confs; /* per-route configurations of its routes */
    size_t txn_size;                        /* sum of the plugins' txn_size, each aligned to 16 */
    struct nd_cluster_conf *tcp_cluster;    /* cluster = "name", for protocol = "tcp" */
    struct nd_http_limits
        limits; /* max_request_headers_kb (8) -> max_head, max_uri (4096), max_headers (100) */
    uint32_t
        header_timeout_ms; /* request_header_timeout: whole head must arrive, default 10s -> 408 */
    uint32_t
        idle_timeout_ms; /* idle_timeout of a client connection between requests, default 60s */
    uint32_t request_timeout_ms; /* route timeout default (upstream response), default 15s -> 504 */
    uint64_t max_body;           /* max_request_body, 0 = unlimited -> 413 */
    bool xff;                    /* add X-Forwarded-For/-Proto, default true */
};

enum nd_io_kind { ND_IO_POSIX, ND_IO_DPDK };

/* identity { ca = "ca.pem", cert = "node.pem", key = "node.key" }: the node's certificate from
 * files, watched and reloaded when they change; or identity { ca_dir = "DIR", id = "spiffe://...",
 * ttl = "24h" }: issued by the node itself from a CA directory and renewed at half its lifetime.
 * Relative paths are resolved against the configuration file's directory. Used by the mtls
 * plugin (plugins/mtls/identity.c). */
struct nd_identity_conf {
    bool enabled;
    int line;
    char *ca, *cert, *key; /* files */
    char *ca_dir, *id;     /* or a CA directory and the node's SPIFFE ID */
    uint64_t ttl_s;        /* with ca_dir: certificate lifetime, default 24h */
};

/* gossip { bind = "127.0.0.1:7946", advertise = ..., join = { ... }, keyring = { ... },
 * tags = { ... } }: membership through memberlist/serf's protocol (docs/gossip.md). */
struct nd_gossip_conf {
    bool enabled;
    int line;
    char *name;               /* name = "...": default node.name */
    struct nd_addr bind;      /* UDP and TCP, same port */
    struct nd_addr advertise; /* default: bind (required when bind is 0.0.0.0 / ::) */
    struct nd_addr *join;     /* seeds, joined at start and retried until one answers */
    unsigned njoin;
    char **keyring; /* base64 AES keys (16, 24 or 32 bytes); the first encrypts */
    unsigned nkeyring;
    struct nd_label *tags; /* serf tags: at most 512 bytes once encoded */
    unsigned ntags;
    bool fast;            /* profile = "fast" (docs/gossip.md), default "lan" */
    uint32_t max_members; /* 0: the engine's default (65536) */
    /* services beyond Meta (gossip/catalog.h): when the services' tags do not all fit, every
     * service's name and tag value, gossiped in user events; the tags then hold those that fit
     * and "svc+" */
    struct nd_label *svc_list;
    unsigned nsvc_list;
};

/* service "name" { port = 9080, address = "10.0.0.5", labels = { version = "v1" } }: a service
 * this node fronts, advertised to the gossip cluster as the serf tag "svc:name" (docs/gossip.md,
 * "Service catalog"); the tags are added to gossip.tags at load. */
struct nd_service_conf {
    char *name;
    int line;
    uint16_t port;
    char *address; /* an IP literal; NULL: the node's gossip address */
    struct nd_label *labels;
    unsigned nlabels;
};

/* node.max_connections when the config does not say: from the open-file limit. */
uint32_t nd_default_max_connections(void);

struct nd_config {
    char *file;
    struct {
        char *name;                /* default: hostname */
        unsigned workers;          /* default: number of online CPUs, capped at ND_MAX_WORKERS */
        enum nd_io_kind io;        /* io = "posix" (default) | "dpdk" */
        uint32_t drain_timeout_ms; /* default 5s */
        uint32_t max_connections;  /* client connections held at once, all workers together;
                                    * default: half the open-file limit (each may need an
                                    * upstream socket), less a reserve */
        char *access_log;          /* NULL = off; "stderr" or a file path: JSON lines */
        char **plugin_paths;       /* .so files to load: plugins = { "x.so" } */
        unsigned nplugin_paths;
        int log_level; /* log_level = "error"|"warn"|"info"(default)|"debug" */
    } node;
    struct {
        bool enabled;
        int line;
        struct nd_addr addr;
    } admin;
    struct nd_identity_conf identity;
    struct nd_gossip_conf gossip;
    /* metrics { principals = 256 }: distinct principals labelled in nodus_requests_total (0 ..
     * 4096, 0: those metrics are off); read at start, a reload keeps the running value */
    struct {
        int line;
        unsigned principals;
    } metrics;
    /* dpdk { args, ports, routes, fault, idle_sleep_us }: used with node.io = "dpdk" only */
    struct {
        bool enabled;
        int line;
        struct nd_dpdk_conf *net; /* validated (dpdk/net/conf.h); malloc'd */
        uint32_t idle_sleep_us;   /* idle back-off of a worker's poll, default 100; 0: spin */
    } dpdk;
    struct nd_cluster_conf *clusters;
    unsigned nclusters;
    struct nd_listener_conf *listeners;
    unsigned nlisteners;
    struct nd_service_conf *services;
    unsigned nservices;
};

/* Errors of a load: each "file:line: message". */
struct nd_errors {
    char **msg;
    unsigned n;
};

/* Loads and validates a configuration file. Returns the configuration, or NULL with errs filled
 * (at least one). Plugins' configure() run here; .so plugins named in node { plugins } are loaded
 * first. Main thread only. */
struct nd_config *nd_config_load(const char *file, struct nd_errors *errs);
/* Same, from a string (tests, fuzzing); name is used in messages as the file name. */
struct nd_config *nd_config_load_string(const char *name, const char *text, size_t len,
                                        struct nd_errors *errs);
/* Frees a configuration, calling the plugins' destroy(). */
void nd_config_free(struct nd_config *cfg);
void nd_errors_clear(struct nd_errors *errs);

struct nd_cluster_conf *nd_config_cluster(const struct nd_config *cfg, const char *name);

/* With io = "dpdk", where the admin listener or gossip on a runs (docs/dpdk.md, "Control plane"):
 * 0 on the DPDK ports (a port's address, or 0.0.0.0), 1 on a kernel socket (a loopback address),
 * -1 nowhere (checked at load: an error). */
int nd_config_ctl_on_kernel(const struct nd_config *cfg, const struct nd_addr *a);

/* "250ms" "10s" "1m" "2h" "1500us"? -> ms. Returns 0, or -1 on a malformed value. */
int nd_parse_duration(const char *s, uint64_t *ms);
/* "1.2.3.4:80", "[::1]:80", "*:80"/":80" (any IPv4), "[::]:80". Returns 0 or -1. */
int nd_parse_addr(const char *s, struct nd_addr *out);

#endif
