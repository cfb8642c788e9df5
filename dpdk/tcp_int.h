/* TCP engine internals, shared by tcp*.c only. */
#ifndef NODUS_TCP_INT_H
#define NODUS_TCP_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "tcp.h"
#include "tcp_seq.h"
#include "tcp_wire.h"
#include "timer.h"

/* A run of bytes: in a send queue (data from a chunk or a caller packet), in the receive queue
 * or the out-of-order queue (seq says where; data from a received packet or a chunk). */
struct nd_tcp_seg {
    struct nd_tcp_seg *next;
    uint32_t seq;
    uint32_t len;
    const uint8_t *data;
    void *pkt;                  /* caller handle holding data, or NULL */
    struct nd_tcp_chunk *chunk; /* engine block holding data, or NULL */
    bool zc;                    /* in a send queue with a pkt: counted in the stack's zc_segs */
};

struct nd_tcp_chunk {
    struct nd_tcp_chunk *next; /* free list */
    uint8_t data[ND_TCP_CHUNK];
};

struct nd_tcp_segq {
    struct nd_tcp_seg *head, *tail;
    uint32_t bytes, n;
};

/* Where the last transmitted segment ended in a send queue: the next one starts there. */
struct tcp_cursor {
    struct nd_tcp_seg *seg; /* NULL: start from the head */
    uint32_t seq;           /* sequence number of seg's first byte */
};

#define ND_TCP_SB_MAX 8       /* sender scoreboard ranges */
#define ND_TCP_PTO_MIN 10     /* ms: the shortest probe timeout (the TLP draft's floor) */
#define ND_TCP_PTO_MAX 2      /* probe timeouts in a row before the RTO */
#define ND_TCP_PTO_DELACK 200 /* ms: RFC 8985's WCDelAckT, added when one segment is in flight */

struct nd_tcp_conn {
    struct nd_tcp_stack *s;
    struct nd_tcp_conn *hnext;             /* hash chain */
    struct nd_tcp_conn *lnext;             /* listener queue / free list / reap list */
    struct nd_tcp_conn *nnext;             /* notify list */
    struct nd_tcp_conn *tw_next, *tw_prev; /* TIME_WAIT list, oldest first */
    struct nd_tcp_listener *l;             /* half-open or in the accept queue */
    struct nd_tcp_flow flow;
    uint32_t hash;
    enum nd_tcp_state state;
    int error;
    nd_tcp_conn_cb cb;
    void *udata;
    unsigned ev; /* events pending delivery */

    bool hashed, app_ref, in_notify, zombie, in_acceptq, in_tw;
    bool want_write, fin_queued, fin_sent, fin_acked, fin_rcvd, ooo_fin, eof_told;
    bool ts_ok, sack_ok, ws_ok, nodelay, keepalive, in_recovery, persist;
    bool ack_now, rtt_timing, closed_told, force;
    bool ack_batch;               /* an ACK due at the end of the input batch */
    bool ack_listed;              /* in s->acks (until the batch ends, even once not due) */
    struct nd_tcp_conn *ack_next; /* s->acks */

    /* send side */
    uint32_t iss, snd_una, snd_nxt, snd_max, snd_wnd, max_snd_wnd, snd_wl1, snd_wl2;
    uint32_t snd_base; /* sequence number of the first byte of sndq */
    uint32_t snd_mss;  /* most payload bytes per segment, before options */
    uint32_t peer_mss;
    uint8_t snd_wscale, rcv_wscale;
    struct nd_tcp_segq sndq;
    struct tcp_cursor txc;
    /* receive side */
    uint32_t irs, rcv_nxt, rcv_adv, ooo_fin_seq, last_ack_sent;
    struct nd_tcp_segq rcvq, ooq;
    uint32_t last_ooo_start; /* the block most recently changed, reported first (RFC 2018) */
    uint32_t ts_recent, ts_off;
    uint64_t ts_recent_age;
    uint32_t rcv_mss;       /* largest payload received: a full-sized segment */
    uint32_t unacked_bytes; /* in-order bytes received since our last ACK */

    /* RTT (RFC 6298) */
    uint32_t srtt_us, rttvar_us, rto; /* rto in ms, with backoff */
    uint32_t rtt_seq;
    uint64_t rtt_start;
    uint8_t backoff;
    uint32_t retries;
    bool pto;       /* t_rxt is a probe timeout, not the RTO */
    uint8_t probes; /* probe timeouts since the cumulative ACK last advanced */
    /* the last probe, until an ACK tells whether it was needed: the sequence number it resent
     * (ACKs past it, or a D-SACK for it, decide) and our TSval when it went */
    bool tlp_open;
    uint32_t tlp_seq, tlp_tsval;

    /* congestion control */
    uint32_t cwnd, ssthresh, recover, dupacks, dup_in_rec;
    uint32_t rxt_next, rxt_limit;      /* recovery: next hole byte to resend, end of lost region */
    double w_max, k, w_est, cwnd_frac; /* CUBIC, in segments */
    uint64_t epoch_start;
    bool epoch_on;
    /* sender scoreboard: SACKed ranges above snd_una, sorted, disjoint */
    struct nd_tcp_sack_block sb[ND_TCP_SB_MAX];
    uint8_t nsb;
    uint32_t sacked, high_sack, lost_edge;

    /* timers */
    struct nd_timer t_rxt;  /* retransmission / persist / SYN */
    struct nd_timer t_dack; /* delayed ACK */
    struct nd_timer t_keep; /* keepalive, FIN_WAIT_2, TIME_WAIT */
    uint64_t last_rcv;
    uint64_t oow_ack_at; /* last ACK sent for an invalid pure ACK */
    uint32_t keep_probes;

    /* stats */
    uint64_t retransmits, rto_expiries, fast_retransmits;
    uint64_t bytes_sent, bytes_acked, bytes_received;
};

struct nd_tcp_listener {
    struct nd_tcp_stack *s;
    bool used;
    uint32_t addr;
    uint16_t port;
    unsigned backlog, half_open, qlen;
    struct nd_tcp_conn *qhead, *qtail; /* accept queue */
    nd_tcp_listen_cb cb;
    void *udata;
    bool notify_pending, in_notify;
    struct nd_tcp_listener *nnext;
};

struct nd_tcp_stack {
    struct nd_tcp_config cfg;
    struct nd_wheel *wheel;
    struct nd_wheel own_wheel;
    struct nd_tcp_stats st;

    struct nd_tcp_conn *conns;
    struct nd_tcp_conn *free_conns;
    uint32_t nconns_used;
    struct nd_tcp_conn **htab;
    uint32_t hmask;
    struct nd_tcp_listener *lis;
    struct nd_tcp_conn *tw_head, *tw_tail;

    struct nd_tcp_seg *segs, *free_segs;
    uint32_t nsegs_free;
    struct nd_tcp_chunk *chunks, *free_chunks;
    uint32_t nchunks_free;
    uint32_t zc_segs; /* send-queue descriptors holding caller packets (cfg.max_zc_segs) */

    uint8_t rcv_wscale; /* what we offer, from rcvbuf */
    /* challenge ACK rate limit */
    uint64_t chack_second;
    uint32_t chack_count;

    /* deferred work */
    unsigned depth;
    bool flushing;
    struct nd_tcp_conn *notify_head, *notify_tail;
    struct nd_tcp_listener *lnotify;
    struct nd_tcp_conn *reap;
    unsigned batch;           /* nd_tcp_batch_begin() nesting */
    struct nd_tcp_conn *acks; /* ACKs due at the end of the batch */
};

static inline uint64_t tcp_now(const struct nd_tcp_stack *s)
{
    return s->wheel->now;
}
/* Payload of a full-sized segment: the MSS less the timestamp option (RFC 6691). */
/* The states in which data (or our FIN) may be in flight: retransmissions and probes apply. */
static inline bool tcp_state_sends(enum nd_tcp_state st)
{
    return st == ND_TCP_ESTABLISHED || st == ND_TCP_FIN_WAIT_1 || st == ND_TCP_CLOSE_WAIT ||
           st == ND_TCP_CLOSING || st == ND_TCP_LAST_ACK;
}

static inline uint32_t tcp_seg_payload(const struct nd_tcp_conn *c)
{
    return c->snd_mss - (c->ts_ok ? 12 : 0);
}
static inline uint32_t tcp_tsval(const struct nd_tcp_conn *c)
{
    return (uint32_t)tcp_now(c->s) + c->ts_off;
}

/* tcp.c */
void tcp_enter(struct nd_tcp_stack *s);
void tcp_leave(struct nd_tcp_stack *s);
void tcp_notify(struct nd_tcp_conn *c, unsigned ev);
void tcp_listener_notify(struct nd_tcp_listener *l);
/* A connection block, hashed under f; when the pool is empty the oldest orphaned TIME_WAIT
 * connection is recycled (as Linux does past tcp_max_tw_buckets). NULL when none. */
struct nd_tcp_conn *tcp_conn_alloc(struct nd_tcp_stack *s, const struct nd_tcp_flow *f);
bool tcp_conn_available(struct nd_tcp_stack *s);
struct nd_tcp_conn *tcp_lookup(struct nd_tcp_stack *s, const struct nd_tcp_flow *f);
struct nd_tcp_listener *tcp_listener_find(struct nd_tcp_stack *s, uint32_t addr, uint16_t port);
void tcp_conn_init_params(struct nd_tcp_conn *c);
/* The connection reaches CLOSED: timers stop, queues drop, it leaves the tables; the block is
 * freed once the application has let go. err: the error to report (0: orderly/none). */
void tcp_set_closed(struct nd_tcp_conn *c, int err);
void tcp_set_state(struct nd_tcp_conn *c, enum nd_tcp_state st);
void tcp_enter_time_wait(struct nd_tcp_conn *c);
void tcp_established(struct nd_tcp_conn *c);
struct nd_tcp_seg *tcp_seg_get(struct nd_tcp_stack *s);
void tcp_seg_put(struct nd_tcp_stack *s, struct nd_tcp_seg *g);
struct nd_tcp_chunk *tcp_chunk_get(struct nd_tcp_stack *s);
void tcp_segq_drop(struct nd_tcp_stack *s, struct nd_tcp_segq *q);
void tcp_rxt_arm(struct nd_tcp_conn *c);
/* New data went out: the probe timeout, if one applies, restarts (RFC 8985 7.2). */
void tcp_pto_restart(struct nd_tcp_conn *c);
void tcp_keep_arm(struct nd_tcp_conn *c);
uint32_t tcp_rcv_space(const struct nd_tcp_conn *c);

/* tcp_in.c */
/* (nd_tcp_input is public) */

/* tcp_out.c */
void tcp_output(struct nd_tcp_conn *c);
void tcp_send_ack(struct nd_tcp_conn *c);
void tcp_send_syn(struct nd_tcp_conn *c);
void tcp_send_rst(struct nd_tcp_conn *c);
void tcp_send_probe(struct nd_tcp_conn *c, bool zero_window);
/* RST answering segment h on flow f (RFC 9293 3.10.7.1), seglen = payload + SYN + FIN. */
void tcp_rst_for(struct nd_tcp_stack *s, const struct nd_tcp_flow *f, const struct nd_tcp_hdr *h,
                 uint32_t seglen);
/* Raw emit: header fields and options; payload from sndq at seq for len bytes. */
int tcp_emit(struct nd_tcp_stack *s, const struct nd_tcp_flow *f, uint32_t seq, uint32_t ack,
             uint8_t flags, uint16_t win, struct nd_tcp_opts *o, const struct nd_tcp_segq *q,
             uint32_t qbase, uint32_t len, struct tcp_cursor *cur);
void tcp_delack(struct nd_tcp_conn *c);
/* Recovery: resends the next lost range (ignoring the pipe); true if it did. */
bool tcp_send_hole(struct nd_tcp_conn *c);
/* Resends the last segment in flight (with the FIN if it carried one). */
void tcp_send_tail(struct nd_tcp_conn *c);
/* A probe timeout fired: resend what is most likely lost (tcp_in.c). */
void tcp_loss_probe(struct nd_tcp_conn *c);

/* tcp_cc.c */
void tcp_cc_init(struct nd_tcp_conn *c);
void tcp_cc_ack(struct nd_tcp_conn *c, uint32_t acked);
void tcp_cc_loss(struct nd_tcp_conn *c, bool rto);
void tcp_rtt_sample(struct nd_tcp_conn *c, uint32_t rtt_ms);
/* RTO from srtt/rttvar (RFC 6298 2.3), no backoff. */
void tcp_rto_reset(struct nd_tcp_conn *c);

#endif
