/*
 * `nodus sockets`: the node's TCP connections and listeners, as `ss -tni` shows them, from both
 * stacks a node may run: the kernel's (every TCP socket the process holds: the posix backend's
 * listeners and connections, the admin listener) and, with io = "dpdk", the user-space TCP of
 * each worker (dpdk/sockets.c). The main thread collects them into a bounded list; the admin
 * listener serves it as JSON (GET /sockets); the command prints it as a table.
 *
 * Nothing here runs on a worker: the kernel is asked through getsockopt(TCP_INFO) on the
 * process's descriptors, and DPDK workers answer a request at the end of a poll iteration.
 */
#ifndef NODUS_SOCKETS_H
#define NODUS_SOCKETS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct nd_sbuf;

/* At most this many sockets in one answer; the rest are counted ("total", "truncated"). */
#define ND_SOCKETS_MAX 8192

struct nd_sock {
    int worker;        /* -1: none (the admin listener and its connections: the main thread's) */
    bool dpdk;         /* the user-space TCP, else the kernel's */
    bool listener;     /* then recv_q = connections waiting for accept, send_q = backlog */
    bool info;         /* the fields below rtt_us are set (connections) */
    const char *state; /* "ESTABLISHED", "LISTEN", "TIME_WAIT"... (static) */
    char local[56], remote[56]; /* "198.18.0.2:8080", "[::1]:15000"; listeners' remote "*:*" */
    uint64_t recv_q, send_q;    /* bytes not read by the node, bytes not acknowledged by the peer */
    uint32_t half_open;         /* listeners of the user-space TCP: SYN_RCVD */
    uint32_t rtt_us, rttvar_us, rto_ms;
    uint32_t mss, cwnd, ssthresh; /* cwnd and ssthresh in segments, as ss; ssthresh 0: not set */
    int snd_wscale, rcv_wscale;   /* -1: not negotiated */
    uint64_t retrans;             /* segments retransmitted over the connection's life */
    uint64_t bytes_acked, bytes_received;
};

struct nd_socklist {
    struct nd_sock *s; /* [cap] */
    unsigned cap, n;
    uint64_t total;          /* sockets found, listed or not */
    uint64_t workers_silent; /* bit w: DPDK worker w did not answer in time */
};

/* 0, or -1 (out of memory). */
int nd_socklist_init(struct nd_socklist *l, unsigned cap);
void nd_socklist_free(struct nd_socklist *l);
/* The next entry (zeroed, worker -1, window scales -1), or NULL past the cap; counts it either
 * way. */
struct nd_sock *nd_socklist_add(struct nd_socklist *l);

/* Main thread: every TCP socket of this process (IPv4 and IPv6), from TCP_INFO and the socket
 * queues. With the posix backend a socket's worker is the one whose epoll instance watches it. */
void nd_sockets_kernel(struct nd_socklist *l);

/* The JSON of GET /sockets (docs/metrics.md): io names the backend. */
void nd_sockets_json(const struct nd_socklist *l, const char *io, struct nd_sbuf *out);
/* The table of `nodus sockets` from that JSON. 0, or 1 with a message on stderr. */
int nd_sockets_print(const char *json, FILE *f);

#endif
