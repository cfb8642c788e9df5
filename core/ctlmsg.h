/*
 * The messages between the main thread's relay socket set (ctlsock_relay.c) and the workers that
 * own the sockets (dpdk/ctl_dpdk.c), and the transport that carries them. Control path only:
 * each message is one malloc'd block, handed over by pointer and freed by its receiver.
 *
 * Flow control, so that nothing grows without bound:
 *   - main -> worker bytes (SEND): the relay keeps at most ND_CTL_WINDOW bytes per stream that
 *     the worker has not yet handed to its TCP engine; the worker reports what the engine took
 *     with SENT, and the owner's write returns -EAGAIN while the window is full;
 *   - worker -> main bytes (DATA): the worker reads from its engine only as much as the relay
 *     granted (ND_CTL_WINDOW at the start, then CREDIT as the owner reads): a main thread that
 *     does not read closes the TCP window towards the peer;
 *   - datagrams: dropped and counted when a ring or the per-socket queue is full.
 * Every other message is small and bounded by the number of sockets and streams.
 */
#ifndef NODUS_CTLMSG_H
#define NODUS_CTLMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctlsock.h"

#define ND_CTL_WINDOW (64u << 10) /* bytes in flight per stream and direction */
#define ND_CTL_CHUNK (16u << 10)  /* bytes per SEND or DATA message */

enum nd_ctlm_type {
    /* main -> worker */
    ND_CTLM_UDP_BIND = 1, /* id, addr: bind a UDP socket (every worker) */
    ND_CTLM_UDP_SEND,     /* id, addr (to), data */
    ND_CTLM_LISTEN,       /* id, addr, n (backlog): a TCP listener (every worker) */
    ND_CTLM_CONNECT,      /* id, addr, n (initial receive credit) */
    ND_CTLM_SEND,         /* id, data */
    ND_CTLM_CREDIT,       /* id, n: the owner read n more bytes */
    ND_CTLM_SHUTDOWN,     /* id: FIN after what was sent */
    ND_CTLM_CLOSE,        /* id, flag 1: reset; a UDP socket, listener or stream */
    /* worker -> main */
    ND_CTLM_BOUND,     /* id, err: a bind or listen failed on this worker */
    ND_CTLM_DGRAM,     /* id, addr (from), data */
    ND_CTLM_ACCEPTED,  /* id (listener), sid (the new stream), addr (peer) */
    ND_CTLM_CONNECTED, /* id, err (0: established) */
    ND_CTLM_DATA,      /* id, data */
    ND_CTLM_SENT,      /* id, n: bytes the engine took */
    ND_CTLM_EOF,       /* id: the peer's FIN, after all its data */
    ND_CTLM_CLOSED,    /* id, err: the stream ended on the worker (reset, timeout); it forgot id */
    ND_CTLM_MAX
};

struct nd_ctl_msg {
    struct nd_ctl_msg *next; /* queues on either side */
    uint8_t type;
    uint8_t flag;
    uint16_t worker; /* worker -> main: the sender */
    int32_t err;
    uint32_t id, sid, n;
    struct nd_ctl_addr addr;
    uint32_t len;
    uint8_t data[];
};

/* A message with len bytes of data (copied from data unless NULL). NULL when out of memory. */
struct nd_ctl_msg *nd_ctl_msg_new(unsigned type, uint32_t id, const void *data, size_t len);
const char *nd_ctl_msg_name(unsigned type);

/* A FIFO of messages. */
struct nd_ctl_mq {
    struct nd_ctl_msg *head, *tail;
    unsigned n;
};

void nd_ctl_mq_push(struct nd_ctl_mq *q, struct nd_ctl_msg *m);
struct nd_ctl_msg *nd_ctl_mq_pop(struct nd_ctl_mq *q);
void nd_ctl_mq_clear(struct nd_ctl_mq *q);

/*
 * What carries messages between the relay and the workers. post and take never block; the relay
 * calls every one of them on the main thread.
 */
struct nd_ctl_transport {
    unsigned nworkers;
    /* An eventfd: readable when events may wait. The relay reads it to clear it, and writes it to
     * wake itself when sockets stay ready. */
    int fd;
    /* m to worker w: 0, or -ENOBUFS when its ring is full (m stays the caller's). */
    int (*post)(void *arg, unsigned w, struct nd_ctl_msg *m);
    /* Up to max messages from the workers, oldest first; returns how many. */
    unsigned (*take)(void *arg, struct nd_ctl_msg **m, unsigned max);
    /* Every message posted has been taken by its worker. */
    bool (*idle)(void *arg);
    /* Adds the workers' counters (drops on their side) to st. */
    void (*stats)(void *arg, struct nd_ctl_stats *st);
    /* Frees the transport and what is still in it (the workers have stopped). */
    void (*free)(void *arg);
    void *arg;
};

/* The relay socket set over t (copied). NULL when out of memory. */
struct nd_ctl *nd_ctl_relay_new(const struct nd_ctl_transport *t);

#endif
