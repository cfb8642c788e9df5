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
    unsigned id; /* index in nd_config.clusters */
    uint16_t metrics_id; /* interned name (metrics.h), set when the snapshot is published */
    struct nd_endpoint_conf *eps;
    unsigned neps;
    enum nd_lb lb;               /* lb = "round_robin" (default) | "least_request" | "random" */
    uint32_t connect_timeout_ms; /* connect_timeout, default 1s */
    uint32_t idle_timeout_ms;    /* idle_timeout of pooled upstream connections, default 60s */
    uint32_t max_connections;    /* limits = { max_connections, max_pending, max_requests } */
    uint32_t max_pending;        /* default 1024 each */
    uint32_t max_requests;
};

#define ND_TXN_SCRATCH 4096   /* bytes of plugin state (ctx->txn) per request or connection */
#define ND_TXN_MAX_LAYERS 8   /* stream plugins per listener */

/* One configured plugin in a listener chain. */
struct nd_plugin_inst {
    const struct nodus_plugin *p;
    void *conf;
    int line;
    size_t txn_off; /* offset of this instance's scratch in the per-request scratch area */
};

enum nd_proto { ND_PROTO_HTTP, ND_PROTO_TCP };

struct nd_listener_conf {
    char *name;
    int line;
    unsigned id;
    uint16_t metrics_id;          /* interned name (metrics.h) */
    struct nd_addr addr;          /* listen = "127.0.0.1:8080" | "[::]:8080" */
    enum nd_proto proto;          /* protocol = "http" (default) | "tcp" */
    struct nd_plugin_inst *plugins; /* in config order: stream plugins, then http plugins */
    unsigned nplugins;
    size_t txn_size;              /* sum of the plugins' txn_size, each aligned to 16 */
    struct nd_cluster_conf *tcp_cluster; /* cluster = "name", for protocol = "tcp" */
    struct nd_http_limits limits; /* max_request_headers_kb (8) -> max_head, max_uri (4096), max_headers (100) */
    uint32_t header_timeout_ms;   /* request_header_timeout: whole head must arrive, default 10s -> 408 */
    uint32_t idle_timeout_ms;     /* idle_timeout of a client connection between requests, default 60s */
    uint32_t request_timeout_ms;  /* route timeout default (upstream response), default 15s -> 504 */
    uint64_t max_body;            /* max_request_body, 0 = unlimited -> 413 */
    bool xff;                     /* add X-Forwarded-For/-Proto, default true */
};

enum nd_io_kind { ND_IO_POSIX, ND_IO_DPDK };

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
};

/* node.max_connections when the config does not say: from the open-file limit. */
uint32_t nd_default_max_connections(void);

struct nd_config {
    char *file;
    struct {
        char *name;              /* default: hostname */
        unsigned workers;        /* default: number of online CPUs, capped at ND_MAX_WORKERS */
        enum nd_io_kind io;      /* io = "posix" (default) | "dpdk" */
        uint32_t drain_timeout_ms; /* default 5s */
        uint32_t max_connections;  /* client connections held at once, all workers together;
                                    * default: half the open-file limit (each may need an
                                    * upstream socket), less a reserve */
        char *access_log;        /* NULL = off; "stderr" or a file path: JSON lines */
        char **plugin_paths;     /* .so files to load: plugins = { "x.so" } */
        unsigned nplugin_paths;
        int log_level;           /* log_level = "error"|"warn"|"info"(default)|"debug" */
    } node;
    struct {
        bool enabled;
        struct nd_addr addr;
    } admin;
    struct nd_gossip_conf gossip;
    struct nd_cluster_conf *clusters;
    unsigned nclusters;
    struct nd_listener_conf *listeners;
    unsigned nlisteners;
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

/* "250ms" "10s" "1m" "2h" "1500us"? -> ms. Returns 0, or -1 on a malformed value. */
int nd_parse_duration(const char *s, uint64_t *ms);
/* "1.2.3.4:80", "[::1]:80", "*:80"/":80" (any IPv4), "[::]:80". Returns 0 or -1. */
int nd_parse_addr(const char *s, struct nd_addr *out);

#endif
