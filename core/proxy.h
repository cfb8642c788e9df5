/*
 * Sessions (downstream connections), transactions (one request/response exchange) and upstream
 * connections: the objects of the request path. All come from per-worker free lists; after warm-up
 * the request path allocates nothing.
 */
#ifndef NODUS_PROXY_H
#define NODUS_PROXY_H

#include "http1.h"
#include "metrics.h"
#include "worker.h"

#define ND_HDRS 160               /* header slots per message: parsed ones plus edits */
#define ND_EDIT 4096              /* bytes for header edits, rewritten paths and local bodies */
#define ND_SCRATCH ND_TXN_SCRATCH /* plugin scratch (ctx->txn) per request */

/* Body framing of one direction: validates framing ahead of forwarding. */
struct nd_body {
    uint8_t mode; /* enum nd_http_body */
    bool done;
    uint64_t left; /* LENGTH: bytes still to come */
    struct nd_http_chunked ck;
    uint32_t fwd;   /* bytes validated and not yet written: at the head of the rx buffer while it
                     * has bytes, else (zero-copy) at the front of the connection's received
                     * bytes */
    uint64_t bytes; /* payload bytes seen */
};

/* UP_FREE: closed, waiting in the worker's dead list until the current event batch ends */
enum { UP_CONNECTING, UP_BUSY, UP_IDLE, UP_FREE };

struct nd_upstream {
    struct nd_conn conn;
    struct nd_upstream *next, *prev; /* idle list of its endpoint, or free list */
    struct nd_cluster_rt *crt;
    struct nd_ep_rt *ep;
    unsigned ep_idx;
    struct nd_txn *txn; /* while busy */
    struct nd_buf *rx, *tx;
    struct nd_timer timer;
    uint8_t state;
    bool tcp; /* owned by a TCP session */
    uint32_t uses;
    uint16_t principal_len;
    uint16_t principal_mid; /* nd_metrics_principal() of it + 1, once looked up (0: not yet) */
    char principal[256];    /* the endpoint's verified identity (cluster tls = "mutual") */
};

struct nd_session;

struct nd_txn {
    struct nd_txn *next; /* free list */
    struct nd_session *s;
    struct nd_http_msg req, resp;
    struct nd_http_hdr req_hdrs[ND_HDRS], resp_hdrs[ND_HDRS];
    uint16_t req_parsed, resp_parsed; /* headers that came from the wire */
    size_t resp_scan;
    uint32_t edit_len; /* bytes used in edit[] */
    struct nd_str new_path;
    struct nd_str req_principal; /* nodus_http_set_request_principal(), in edit[] */
    /* routing */
    const struct nd_cluster_conf *cluster;
    const char *subset_k, *subset_v;
    struct nd_cluster_rt *crt;
    int ep;
    struct nd_upstream *up;
    /* zero-copy (io.h pin): the buffers holding the request and response heads when they were
     * parsed where they arrived, held until the exchange ends; NULL when in the rx buffers */
    void *req_pin, *resp_pin;
    uint32_t timeout_ms;
    uint8_t attempts;
    /* chain */
    unsigned chain_pos;
    bool route_matched; /* the terminal's match hook ran on the request as it is */
    const struct nodus_route_config *route_conf; /* what it returned */
    bool paused, local, resp_started, req_sent_head, up_reusable, expect_100;
    bool edit_failed; /* a plugin's edit did not fit in edit[] (or the header table) */
    uint16_t status;
    uint16_t up_principal; /* metrics id of the last upstream's verified identity, or NONE */
    uint16_t up_peer_len;  /* bytes of up_peer (0: none, or no access log) */
    uint32_t rflags;
    struct nd_body rqb, rsb;
    uint64_t t_start_us;
    uint64_t t_end_us; /* the clock read when the exchange ended, before the log hooks */
    uint64_t req_bytes, resp_bytes;
    /* not zeroed for a new request: an arena (edit_len says what is used), plugin scratch
     * (txn_size bytes of it are zeroed) */
    char edit[ND_EDIT];
    char scratch[ND_SCRATCH] __attribute__((aligned(16)));
    char up_peer[256]; /* the last upstream's verified identity, for the access log */
};

/* S_FREE: released, in the worker's dead list until the current event batch ends (an event for
 * it may still be queued in that batch: it is ignored, never run on memory reused meanwhile) */
enum { S_IDLE, S_HEAD, S_CHAIN, S_UPSTREAM, S_TCP, S_CLOSING, S_LINGER, S_DEAD, S_FREE };

/* Lingering close: how long and how much a closing session keeps reading (and discarding). */
#define ND_LINGER_MS 2000
#define ND_LINGER_BYTES (64u << 20)

struct nd_session {
    struct nd_conn conn;
    struct nd_session *next, *prev; /* worker's session list, or free list */
    struct nd_worker *w;
    struct nd_snap *snap;
    const struct nd_listener_conf *lc;
    void **pstate; /* the chain's per-worker plugin states (worker_init) in snap, for lc */
    struct nd_buf *rx, *tx;
    uint32_t rx_pin; /* bytes at rx->data[0] holding the current request head */
    size_t scan;
    struct nd_txn *txn;
    struct nd_upstream *up; /* TCP sessions */
    struct nd_timer timer;
    uint8_t state;
    bool rd_eof, close_after, in_drive;
    char peer[48];
    uint8_t peer_len;
    char principal[256];
    uint16_t principal_len;
    uint16_t principal_mid; /* nd_metrics_principal() of it + 1, once looked up (0: not yet) */
    uint32_t nreq;
    uint32_t lingered; /* bytes discarded while lingering */
    uint64_t tcp_sent, tcp_recv;
    /* TCP metrics: the key, fixed once the connection is counted as opened (its first relayed
     * byte, when both TLS handshakes are done, or its close), and what was last reported */
    struct nd_tcp_key tcp_key;
    bool tcp_opened;
    uint64_t tcp_rep_sent, tcp_rep_recv, tcp_rep_us;
};

void nd_upstream_close(struct nd_worker *w, struct nd_upstream *u);
/* On a connection to a cluster with tls = "mutual", once TCP is up: puts the TLS layer on it and
 * sends the ClientHello. 0 (also for plain clusters), or -1. */
int nd_upstream_start_tls(struct nd_worker *w, struct nd_upstream *u);
struct nd_req_record;
void nd_access_log(struct nd_worker *w, struct nd_session *s, struct nd_txn *t,
                   const struct nd_req_record *rec);
void nd_worker_free_lists(struct nd_worker *w);
/* After an event batch: sessions and upstreams released during it become reusable. */
void nd_worker_reap(struct nd_worker *w);
/* Back to the worker's free list (or to the allocator past a bound). */
void nd_session_recycle(struct nd_worker *w, struct nd_session *s);
void nd_upstream_recycle(struct nd_worker *w, struct nd_upstream *u);
/* tcp_proxy.c */
void nd_tcp_session_start(struct nd_session *s);
void nd_tcp_drive(struct nd_session *s);
void nd_tcp_up_cb(struct nd_upstream *u, unsigned events);
/* At the session's release, before its upstream is closed: the last TCP metrics. */
void nd_tcp_session_end(struct nd_session *s);
/* proxy.c helpers shared with tcp_proxy.c */
struct nd_upstream *nd_upstream_get(struct nd_worker *w);
void nd_session_free(struct nd_session *s);
int nd_flush(struct nd_conn *c, struct nd_buf *b, const char *more, uint32_t *morelen);
/* The metrics id of a connection's verified principal (ND_METRICS_NONE without one), looked up
 * in the metrics' principal table once per connection (*mid caches it). */
uint16_t nd_principal_id(const char *p, uint16_t len, uint16_t *mid);
/* A hop's two principals as Istio reports them: our own identity at the verified end's other
 * side when only one end is verified. */
void nd_principal_pair(uint16_t *src, uint16_t *dst);

#endif
