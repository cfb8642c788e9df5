/*
 * User-space TCP engine: the types. Functions are in tcp.h; this header includes almost nothing.
 *
 * Conventions: IPv4 addresses and ports are in host byte order everywhere in the API; sequence
 * numbers likewise. Wire bytes (the TCP header handed to nd_tcp_input and to the tx callback) are
 * in network byte order.
 */
#ifndef NODUS_TCP_TYPES_H
#define NODUS_TCP_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nd_wheel;
struct nd_tcp_stack;    /* one per worker */
struct nd_tcp_conn;     /* a connection block from the stack's pool */
struct nd_tcp_listener; /* a listening endpoint from the stack's pool */

/* A connection's addresses, seen from this stack (l = local, r = remote). */
struct nd_tcp_flow {
    uint32_t laddr, raddr;
    uint16_t lport, rport;
};

/* What the IP layer tells the engine about a received segment. */
struct nd_tcp_ipinfo {
    uint32_t src, dst; /* remote, local */
    bool csum_ok;      /* the NIC verified the TCP checksum: the engine skips it */
};

/* A piece of payload. pkt is the packet handle that owns the bytes (NULL: engine memory that
 * stays valid until the call returns, or until the piece is consumed for receive pieces). */
struct nd_tcp_piece {
    const uint8_t *data;
    uint32_t len;
    void *pkt;
};

#define ND_TCP_TX_PIECES 8 /* at most this many payload pieces per emitted segment */
#define ND_TCP_MAX_HDR 60

/* A segment to transmit. The glue puts IPv4 (and Ethernet) around hdr + pieces. */
struct nd_tcp_tx {
    struct nd_tcp_flow flow;
    const uint8_t *hdr; /* TCP header with options, network order */
    uint32_t hdr_len;
    const struct nd_tcp_piece *piece;
    unsigned npiece;
    uint32_t payload_len;
    /* true: the checksum field holds the folded pseudo-header sum, not complemented, as DPDK's
     * TX L4 checksum offload expects; false: the full checksum is filled in. */
    bool csum_partial;
};

/* Reference counting of caller packet handles (DPDK: mbufs; tests: malloc'd buffers). The
 * engine takes a reference for every piece of payload it keeps and drops it when done. */
struct nd_tcp_pkt_ops {
    void (*ref)(void *pkt);
    void (*unref)(void *pkt);
};

/*
 * Emits one segment. Called from inside engine calls; it must not call back into the engine.
 * The header bytes are valid only during the call; a piece with a pkt may be kept by taking a
 * reference. Returns 0, or < 0 when the segment could not be sent (it then counts as lost;
 * retransmission recovers it).
 */
typedef int (*nd_tcp_tx_fn)(struct nd_tcp_stack *s, const struct nd_tcp_tx *seg, void *udata);

enum nd_tcp_cc {
    ND_TCP_CC_CUBIC = 0,
    ND_TCP_CC_NEWRENO,
};

struct nd_tcp_config {
    /* Pools, fixed at creation. */
    uint32_t max_conns;     /* connection blocks (incl. half-open and TIME_WAIT) */
    uint32_t max_listeners; /* listening endpoints */
    uint32_t max_segs;      /* segment descriptors, shared by all queues */
    uint32_t max_chunks;    /* send-buffer blocks of ND_TCP_CHUNK bytes for copied data */
    uint32_t max_zc_segs;   /* send-queue descriptors that may hold caller packets (zero-copy
                             * sends, spliced data): what bounds the packets (mbufs) the send
                             * queues keep from the receive path; past it nd_tcp_splice() copies.
                             * 0: no bound */
    uint32_t conn_hash;     /* hash buckets (power of two; 0: 2 * max_conns rounded up) */
    /* Per connection. */
    uint32_t mss;                  /* MSS we advertise and the most we send (IPv4 MTU 1500: 1460) */
    uint32_t rcvbuf;               /* receive buffer limit (bytes in order + out of order) */
    uint32_t sndbuf;               /* send buffer limit (unacknowledged + unsent bytes) */
    bool timestamps, sack, wscale; /* options offered and accepted (default all true) */
    bool nagle;                    /* default false: a proxy wants no delay */
    enum nd_tcp_cc cc;
    /* Timers, milliseconds. */
    uint32_t rto_init, rto_min, rto_max;
    bool loss_probe; /* probe timeouts before the RTO (docs/tcp.md "Loss probes"; default true) */
    uint32_t delack; /* delayed ACK timeout */
    uint32_t msl;    /* TIME_WAIT lasts 2 * msl */
    uint32_t fin_wait2;                       /* orphaned FIN_WAIT_2 timeout */
    uint32_t keep_idle, keep_intvl, keep_cnt; /* keepalive (when enabled per connection) */
    uint32_t syn_retries, retries; /* SYN retransmissions; data retransmissions before abort */
    uint32_t challenge_ack_limit;  /* per second per stack (RFC 5961 section 7) */
    /* 0: never, 1: when a listen backlog or the connection pool is full, 2: always. */
    int syncookies;
    bool csum_offload;  /* tx: leave the pseudo-header sum for the NIC (csum_partial) */
    bool have_secret;   /* false: the secret is read from getrandom() */
    uint8_t secret[16]; /* keys ISNs (RFC 6528), cookies, timestamp offsets, the hash table */
    /* Glue. */
    nd_tcp_tx_fn tx;
    void *udata;
    const struct nd_tcp_pkt_ops *pkt_ops; /* may be NULL when input never carries handles */
    /* Time: a worker wheel to share (the worker advances it), or NULL for one the stack owns,
     * started at now_ms and advanced by nd_tcp_advance(). */
    struct nd_wheel *wheel;
    uint64_t now_ms;
};

#define ND_TCP_CHUNK 2048

enum nd_tcp_state {
    ND_TCP_CLOSED = 0,
    ND_TCP_LISTEN,
    ND_TCP_SYN_SENT,
    ND_TCP_SYN_RCVD,
    ND_TCP_ESTABLISHED,
    ND_TCP_FIN_WAIT_1,
    ND_TCP_FIN_WAIT_2,
    ND_TCP_CLOSE_WAIT,
    ND_TCP_CLOSING,
    ND_TCP_LAST_ACK,
    ND_TCP_TIME_WAIT,
};

/* Connection events, edge-triggered (see tcp.h). */
#define ND_TCP_EV_READ 0x1      /* new data, or end of stream, to read */
#define ND_TCP_EV_WRITE 0x2     /* send space became available */
#define ND_TCP_EV_CONNECTED 0x4 /* an active open completed */
#define ND_TCP_EV_CLOSED 0x8    /* the connection is over; nd_tcp_error() says why (0: orderly) */

typedef void (*nd_tcp_conn_cb)(struct nd_tcp_conn *c, unsigned events, void *udata);
/* New connections wait in the accept queue. */
typedef void (*nd_tcp_listen_cb)(struct nd_tcp_listener *l, void *udata);

/* For `nodus sockets`. */
struct nd_tcp_info {
    enum nd_tcp_state state;
    struct nd_tcp_flow flow;
    uint32_t snd_queued, snd_unacked, rcv_queued, rcv_ooo; /* bytes */
    uint32_t snd_wnd, rcv_wnd;
    uint32_t srtt_us, rttvar_us, rto_ms;
    uint32_t cwnd, ssthresh, mss;
    uint64_t retransmits, rto_expiries, fast_retransmits;
    uint64_t bytes_sent, bytes_acked, bytes_received;
    uint8_t snd_wscale, rcv_wscale;
    bool timestamps, sack, in_recovery;
    int error;
};

/* A listening endpoint, for `nodus sockets`. */
struct nd_tcp_listen_info {
    uint32_t addr; /* 0: any */
    uint16_t port;
    uint32_t backlog;
    uint32_t queued;    /* established, waiting for nd_tcp_accept() */
    uint32_t half_open; /* SYN_RCVD (SYN cookies hold none) */
};

/* Per-stack counters. */
struct nd_tcp_stats {
    uint64_t segs_in, segs_out;
    uint64_t bad_csum, bad_hdr;
    uint64_t rst_sent, rst_rcvd;
    uint64_t challenge_acks, challenge_acks_limited;
    uint64_t oow_acks_limited; /* ACKs not sent for invalid pure ACKs (500 ms per connection) */
    uint64_t syncookies_sent, syncookies_ok, syncookies_bad;
    uint64_t retransmits, rto_expiries, fast_retransmits, persist_probes, keepalive_probes;
    uint64_t loss_probes;          /* probe timeouts that resent a segment (docs/tcp.md) */
    uint64_t loss_probes_spurious; /* of those, probes whose original had arrived (D-SACK, or
                                    * the ACK past it echoes an older timestamp) */
    uint64_t active_opens, passive_opens, conn_timeouts, conn_resets;
    uint64_t tw_reused;
    uint64_t tw_recycled; /* TIME_WAIT cut short because the connection pool was empty */
    /* nd_tcp_splice(): bytes that changed queues by reference, bytes copied (short pieces, or
     * max_zc_segs reached), and splices that copied because of max_zc_segs */
    uint64_t splice_moved, splice_copied, splice_zc_limited;
    /* drops by reason */
    uint64_t drop_no_conn; /* segments to a closed port (answered by RST unless RST) */
    uint64_t drop_paws;
    uint64_t drop_out_of_window;
    uint64_t drop_bad_ack;
    uint64_t drop_no_mem;   /* no connection block or segment descriptor */
    uint64_t drop_backlog;  /* listen queue full and no SYN cookies */
    uint64_t drop_ooo_full; /* out-of-order data beyond the receive buffer */
    uint64_t drop_tx;       /* the tx callback refused a segment */
};

#endif
