/*
 * An in-memory backend for the packet path, for the unit tests and the fuzzer: mbufs from a
 * static array (no EAL, no mempool), a TX "ring" that records what was sent, a TCP hand-off
 * that records what arrived. Every test can check that each mbuf came back (mem_inuse() == 0).
 */
#ifndef NODUS_DPDK_NET_MEMIO_H
#define NODUS_DPDK_NET_MEMIO_H

#include <stdlib.h>
#include <string.h>

#include <rte_mbuf.h>

#include "net.h"

#define MEM_NBUF 512
#define MEM_BUFSZ (RTE_PKTMBUF_HEADROOM + 2048)
#define MEM_NSENT 256

struct mem_backend {
    struct rte_mbuf mb[MEM_NBUF];
    uint8_t data[MEM_NBUF][MEM_BUFSZ];
    bool used[MEM_NBUF];
    unsigned inuse;
    bool fail_alloc;
    uint16_t tx_accept;               /* frames a tx_burst takes (at most) */
    struct rte_mbuf *sent[MEM_NSENT]; /* transmitted frames, owned by the backend */
    unsigned sent_port[MEM_NSENT];
    unsigned nsent, bursts;
    unsigned tcp_segs, tcp_last_len; /* the TCP hand-off */
    uint32_t tcp_last_src, tcp_last_dst;
    unsigned icmp_errors;
    uint8_t icmp_last_type, icmp_last_code;
    unsigned learned;
};

static struct mem_backend *mem_of(struct nd_net *n)
{
    return (struct mem_backend *)n->udata;
}

static inline struct rte_mbuf *mem_get(struct mem_backend *b)
{
    for (unsigned i = 0; i < MEM_NBUF; i++)
        if (!b->used[i]) {
            struct rte_mbuf *m = &b->mb[i];

            memset(m, 0, sizeof(*m));
            m->buf_addr = b->data[i];
            m->buf_len = MEM_BUFSZ;
            rte_mbuf_refcnt_set(m, 1);
            rte_pktmbuf_reset(m);
            b->used[i] = true;
            b->inuse++;
            return m;
        }
    return NULL;
}

static inline void mem_put(struct mem_backend *b, struct rte_mbuf *m)
{
    size_t i = (size_t)(m - b->mb);

    if (i >= MEM_NBUF || !b->used[i])
        abort(); /* not ours, or freed twice */
    b->used[i] = false;
    b->inuse--;
}

static struct rte_mbuf *mem_alloc(struct nd_net *n)
{
    return mem_of(n)->fail_alloc ? NULL : mem_get(mem_of(n));
}

static struct rte_mbuf *mem_copy(struct nd_net *n, struct rte_mbuf *m)
{
    struct rte_mbuf *c = mem_alloc(n);

    if (c) {
        memcpy(rte_pktmbuf_append(c, (uint16_t)m->data_len), rte_pktmbuf_mtod(m, void *),
               m->data_len);
        c->ol_flags = m->ol_flags;
    }
    return c;
}

static void mem_free(struct nd_net *n, struct rte_mbuf *m)
{
    mem_put(mem_of(n), m);
}

static uint16_t mem_tx_burst(struct nd_net *n, unsigned port, struct rte_mbuf **pkts, uint16_t cnt)
{
    struct mem_backend *b = mem_of(n);
    uint16_t k = 0;

    b->bursts++;
    for (; k < cnt && k < b->tx_accept; k++) {
        if (b->nsent == MEM_NSENT) { /* the oldest goes */
            mem_put(b, b->sent[0]);
            memmove(b->sent, b->sent + 1, sizeof(b->sent[0]) * (MEM_NSENT - 1));
            memmove(b->sent_port, b->sent_port + 1, sizeof(b->sent_port[0]) * (MEM_NSENT - 1));
            b->nsent--;
        }
        b->sent_port[b->nsent] = port;
        b->sent[b->nsent++] = pkts[k];
    }
    return k;
}

static void mem_tcp_input(struct nd_net *n, struct rte_mbuf *m, uint32_t src, uint32_t dst,
                          const uint8_t *tcp, uint32_t len)
{
    struct mem_backend *b = mem_of(n);

    (void)tcp;
    b->tcp_segs++;
    b->tcp_last_len = len;
    b->tcp_last_src = src;
    b->tcp_last_dst = dst;
    mem_put(b, m);
}

static void mem_icmp_error(struct nd_net *n, uint8_t type, uint8_t code, const uint8_t *quoted,
                           uint32_t len)
{
    struct mem_backend *b = mem_of(n);

    (void)quoted;
    (void)len;
    b->icmp_errors++;
    b->icmp_last_type = type;
    b->icmp_last_code = code;
}

static void mem_arp_learned(struct nd_net *n, unsigned port, uint32_t ip,
                            const struct rte_ether_addr *mac)
{
    (void)port;
    (void)ip;
    (void)mac;
    mem_of(n)->learned++;
}

static const struct nd_net_ops mem_ops = {
    .alloc = mem_alloc,
    .copy = mem_copy,
    .free = mem_free,
    .tx_burst = mem_tx_burst,
    .tcp_input = mem_tcp_input,
    .icmp_error = mem_icmp_error,
    .arp_learned = mem_arp_learned,
};

/* Frees what was "transmitted". */
static inline void mem_clear_sent(struct mem_backend *b)
{
    for (unsigned i = 0; i < b->nsent; i++)
        mem_put(b, b->sent[i]);
    b->nsent = 0;
}

/* An mbuf holding a copy of frame, or NULL. */
static inline struct rte_mbuf *mem_frame(struct mem_backend *b, const void *frame, size_t len)
{
    struct rte_mbuf *m = mem_get(b);
    void *p;

    if (!m)
        return NULL;
    if (!(p = rte_pktmbuf_append(m, (uint16_t)len))) {
        mem_put(b, m);
        return NULL;
    }
    memcpy(p, frame, len);
    return m;
}

static inline unsigned mem_inuse(const struct mem_backend *b)
{
    return b->inuse;
}

#endif
