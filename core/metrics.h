/*
 * Metrics: per-worker counters, gauges, Istio-style request and TCP records, plugin counters, and
 * their Prometheus text exposition (format 0.0.4). docs/metrics.md lists every metric.
 *
 * Threads and memory:
 *  - Each worker (0 .. nworkers-1) writes only its own cache-line-aligned stats block: no lock, no
 *    atomic read-modify-write, no malloc on the request path. Everything a worker records goes into
 *    fixed tables allocated by nd_metrics_init().
 *  - A scrape (nd_metrics_render(), any thread, usually the admin thread) reads every block with
 *    relaxed atomic loads and sums. A scrape sees each value at some recent point; one histogram's
 *    buckets, _sum and _count are always consistent with each other (_count is the sum of its
 *    buckets), but two different families may be one record apart.
 *  - Threads that are not workers (main, admin) pass ND_METRICS_MAIN as the worker: they share one
 *    extra block updated with atomic adds. They may update counters, gauges and plugin counters,
 *    not request or TCP records.
 *  - Names (nd_metrics_intern(), nd_metrics_set_node()) and plugin counters (nodus_counter()) are
 *    registered on the main thread, and may be registered before nd_metrics_init().
 *
 * A worker argument out of range (or any record before nd_metrics_init()) is ignored.
 */
#ifndef NODUS_METRICS_H
#define NODUS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nd_sbuf;

#define ND_METRICS_MAX_NAMES 4096   /* interned listener/cluster/node names */
#define ND_METRICS_NONE 0xffffu     /* no cluster: local answer, no route; renders "unknown" */
#define ND_METRICS_OTHER 0xfffeu    /* the name table was full; renders "other" */
#define ND_METRICS_MAIN 0xffffffffu /* "worker" argument of a non-worker thread */
#define ND_METRICS_REQ_SLOTS 1024   /* distinct request keys per worker */
#define ND_METRICS_TCP_SLOTS 256    /* distinct TCP keys per worker (more with principals) */
#define ND_METRICS_PRINCIPALS_DEFAULT 256 /* metrics { principals }: distinct principals */
#define ND_METRICS_PRINCIPALS_MAX 4096
#define ND_METRICS_PRINCIPAL_LEN 255 /* longest principal (a SPIFFE id) that is labelled */
#define ND_METRICS_MAX_PLUGIN_COUNTERS 256

/*
 * Response flags, as Envoy's %RESPONSE_FLAGS% short codes. Bits are in the order Envoy prints
 * them, so nd_rf_format() output matches Envoy's for the same set.
 */
enum {
    ND_RF_UH = 1u << 0,    /* no healthy upstream */
    ND_RF_UT = 1u << 1,    /* upstream request timeout */
    ND_RF_LR = 1u << 2,    /* connection local reset */
    ND_RF_UR = 1u << 3,    /* upstream remote reset */
    ND_RF_UF = 1u << 4,    /* upstream connection failure */
    ND_RF_UC = 1u << 5,    /* upstream connection termination */
    ND_RF_UO = 1u << 6,    /* upstream overflow (circuit breaker, limits) */
    ND_RF_NR = 1u << 7,    /* no route */
    ND_RF_DI = 1u << 8,    /* delay injected (unused) */
    ND_RF_RL = 1u << 9,    /* rate limited locally */
    ND_RF_UAEX = 1u << 10, /* unauthorized (authz, jwt) */
    ND_RF_RLSE = 1u << 11, /* rate limit service error */
    ND_RF_DC = 1u << 12,   /* downstream connection termination */
    ND_RF_URX = 1u << 13,  /* upstream retry limit exceeded */
    ND_RF_SI = 1u << 14,   /* stream idle timeout */
    ND_RF_IH = 1u << 15,   /* invalid request header value */
    ND_RF_DPE = 1u << 16,  /* downstream protocol error */
    ND_RF_DT = 1u << 17,   /* duration timeout (request header timeout) */
    ND_RF_UPE = 1u << 18,  /* upstream protocol error */
    ND_RF_OM = 1u << 19,   /* refused by overload protection */
};

/* Bytes that always hold nd_rf_format() of any flags, NUL included. */
#define ND_RF_BUFSZ 80
/* Not a response flag: in nd_req_record.flags, the request came over mutual TLS (the label
 * connection_security_policy="mutual_tls"); nd_rf_format() ignores it. */
#define ND_REC_MTLS (1u << 31)

/* Formats flags as Envoy does: "UF,URX", or "-" when no known flag is set. Writes at most len
 * bytes, NUL-terminated when len > 0 (truncated if short); returns the length of the whole string
 * (as snprintf does). Unknown bits are ignored. */
size_t nd_rf_format(uint32_t flags, char *buf, size_t len);

/* Counters of the core: summed over workers, exported as nodus_<name>_total. */
enum nd_counter {
    ND_C_DOWNSTREAM_CX_TOTAL, /* client connections accepted */
    ND_C_DOWNSTREAM_RESETS, /* client connections that ended abnormally (reset, EOF mid-request) */
    ND_C_ACCEPT_ERRORS,     /* accept() failures (EMFILE, ENOBUFS...) */
    ND_C_OVERLOAD_REJECTS,  /* connections or requests refused by limits/overload (503) */
    ND_C_HTTP_PARSE_ERRORS, /* malformed request heads or bodies (answered 4xx/5xx) */
    ND_C_HEADER_TIMEOUTS,   /* request heads that did not arrive in time (408) */
    ND_C_IDLE_TIMEOUTS,     /* client connections closed for idleness */
    ND_C_UPSTREAM_CX_TOTAL, /* upstream connections opened */
    ND_C_UPSTREAM_CX_CONNECT_FAIL, /* upstream connection attempts that failed */
    ND_C_UPSTREAM_RESETS,          /* upstream connections that ended during an exchange */
    ND_C_UPSTREAM_TIMEOUTS,        /* upstream responses that did not come in time (504) */
    ND_C_UPSTREAM_RETRIES,         /* retried upstream attempts */
    ND_C_POOL_REUSE,               /* requests sent on a pooled (kept-alive) upstream connection */
    ND_C_BUFFER_EXHAUSTED,         /* buffer requests refused because the pool was at its limit */
    ND_C_STREAM_ERRORS,   /* connections closed because a stream plugin failed (bad TLS...) */
    ND_C_STREAM_TIMEOUTS, /* connections closed at a stream plugin's deadline */
    ND_C_EDIT_FAILURES,   /* plugin header/path edits that did not fit (request: 500) */
    ND_C_REQUEST_HEAD_TOO_LARGE, /* requests whose head for the upstream did not fit (431) */
    ND_C_RELOADS,                /* configuration reloads that took effect */
    ND_C_RELOAD_FAILURES,        /* configuration reloads refused (bad config) */
    /* per worker: exported with a worker="N" label, not summed */
    ND_C_LOOP_ITERATIONS, /* event loop iterations */
    ND_C_LOOP_BUSY,       /* event loop iterations that handled at least one event */
    ND_C_LOOP_BUSY_US,    /* time spent in those, from the end of the wait (µs) */
    ND_C__COUNT
};

/* Gauges of the core: summed over workers, exported as nodus_<name>. */
enum nd_gauge {
    ND_G_DOWNSTREAM_CX_ACTIVE, /* open client connections */
    ND_G_DOWNSTREAM_RQ_ACTIVE, /* requests in progress */
    ND_G_UPSTREAM_CX_ACTIVE,   /* open upstream connections (busy, idle or connecting) */
    ND_G_UPSTREAM_CX_IDLE,     /* idle upstream connections in the pools */
    ND_G_UPSTREAM_RQ_PENDING,  /* requests waiting for an upstream connection */
    ND_G_BUFFERS_IN_USE,       /* I/O buffers taken from the worker pools */
    ND_G__COUNT
};

/* One finished HTTP exchange, handed to nd_metrics_request() by the worker. */
struct nd_req_record {
    uint16_t listener;    /* nd_metrics_intern() of the listener name */
    uint16_t cluster;     /* interned cluster name, or ND_METRICS_NONE (local answer / no route) */
    uint16_t status;      /* response code, 0 if none was sent */
    uint32_t flags;       /* ND_RF_* */
    uint64_t duration_us; /* first request byte to last response byte */
    uint64_t req_bytes, resp_bytes; /* head + body, as Istio counts them */
    /* nd_metrics_principal() ids, or ND_METRICS_NONE: the labels of nodus_requests_total and
     * nodus_request_duration_milliseconds (not of the istio_* families) */
    uint16_t src_principal, dst_principal;
};

/* Allocates the stats blocks of nworkers workers (1 .. 64), once, at start (main thread), with
 * room for `principals` distinct principals (0 .. ND_METRICS_PRINCIPALS_MAX; 0: no principal
 * metrics). Returns 0, -EINVAL (an argument out of range), -EALREADY (already initialized) or
 * -ENOMEM. */
int nd_metrics_init(unsigned nworkers, unsigned principals);
/* Frees everything, names and plugin counters included: at exit, or between tests. No other
 * thread may use the metrics during or after the call (until the next init). */
void nd_metrics_fini(void);

/* A stable small id for a listener or cluster name (main thread, at config load, before workers see
 * it): the same name always gets the same id, across reloads. Returns ND_METRICS_OTHER once
 * ND_METRICS_MAX_NAMES names are interned (counted by nodus_metrics_names_overflow_total), and
 * ND_METRICS_NONE for NULL. */
uint16_t nd_metrics_intern(const char *name);
/* The name of an id: "unknown" for ND_METRICS_NONE, "other" for ND_METRICS_OTHER or an id never
 * returned. Valid until nd_metrics_fini(). */
const char *nd_metrics_name(uint16_t id);
/* The node name, the source_workload label of the Istio metrics (main thread). */
void nd_metrics_set_node(const char *name);

/*
 * Principals: verified peer identities (SPIFFE ids), the source_principal and
 * destination_principal labels. One table for the node, filled as peers are first seen, by any
 * thread, without a lock: a lookup reads (acquire loads only); a new name takes a slot with one
 * atomic add and one compare-and-swap, once per distinct name. The table holds the `principals`
 * given to nd_metrics_init(); a name that finds it full is ND_METRICS_OTHER ("other", counted
 * per request by nodus_metrics_principals_overflow_total, logged once). Ids are stable until
 * nd_metrics_fini(). Callers look a connection's principal up once and keep the id.
 */
/* The id of a principal (len 1 .. ND_METRICS_PRINCIPAL_LEN bytes, else ND_METRICS_OTHER);
 * ND_METRICS_NONE for len 0 or when principal metrics are off. Any thread. */
uint16_t nd_metrics_principal(const char *p, size_t len);
/* The node's own identity (NULL: none), the other end of a verified connection: destination
 * principal of requests that came in over mutual TLS, source principal of those that went out
 * over it (main thread, when the identity is loaded or rotated). */
void nd_metrics_set_self_principal(const char *id);
/* Its id, for the workers' records (a relaxed load). */
uint16_t nd_metrics_self_principal(void);

/* Worker fast path. */
void nd_metrics_request(unsigned worker, const struct nd_req_record *r);
/* TCP proxying. A connection's key: the listener, the cluster, whether its client was verified
 * by mtls (connection_security_policy) and the two principals (ND_METRICS_NONE: none; rendered
 * in nodus_tcp_* only, when principal metrics are on). Byte arguments are deltas: the bytes not
 * reported yet on that connection, so a connection reports its bytes with any number of
 * nd_metrics_tcp_bytes() calls (e.g. every few seconds) and the rest at close. sent: bytes
 * written to the downstream client; received: bytes read from it (Istio's
 * istio_tcp_sent_bytes_total / istio_tcp_received_bytes_total). */
struct nd_tcp_key {
    uint16_t listener, cluster, src, dst;
    bool mtls;
};
void nd_metrics_tcp_open(unsigned worker, const struct nd_tcp_key *k);
void nd_metrics_tcp_bytes(unsigned worker, const struct nd_tcp_key *k, uint64_t sent,
                          uint64_t received);
void nd_metrics_tcp_close(unsigned worker, const struct nd_tcp_key *k, uint64_t sent,
                          uint64_t received);
void nd_metrics_gauge_add(unsigned worker, enum nd_gauge g, int64_t delta);
/* The notAfter (seconds since the epoch) of the node's identity certificate, exported as
 * nodus_cert_expiry_seconds (seconds left, computed when scraped); 0: no identity, no metric.
 * Any thread. */
void nd_metrics_set_cert_not_after(int64_t not_after);
void nd_metrics_count(unsigned worker, enum nd_counter c, uint64_t n);

/* Metrics of an I/O backend, appended to every scrape (dpdk: nodus_dpdk_*). Main thread, while
 * no scrape runs (before the admin listener serves, after it stops); NULL removes it. render
 * runs on the scraping thread and reads its counters with relaxed loads. */
void nd_metrics_set_extra(void (*render)(struct nd_sbuf *out));

/* Appends every metric in Prometheus text format 0.0.4 (any thread, control path: allocates).
 * Returns 0, or -1 when memory ran out (out->oom is then set too). */
int nd_metrics_render(struct nd_sbuf *out);

#endif
