/*
 * Between io_dpdk.c (the workers' poll) and ctl_dpdk.c (the workers' half of the control-plane
 * sockets, core/ctlsock.h and core/ctlmsg.h). Internal to dpdk/.
 */
#ifndef NODUS_CTL_DPDK_H
#define NODUS_CTL_DPDK_H

#include <stdbool.h>
#include <stdint.h>

#include "tcp_types.h"

struct nd_net;
struct nd_tcp_stack;

/* Worker wid's poll: its commands from the main thread, its events to it. Returns how much work
 * it did (0 when the ring was empty: one ring check). */
int nd_ctl_dpdk_poll(unsigned wid, uint64_t now_ms);

/* io_dpdk.c, for worker wid on its own thread: its stack and TCP engine, an active open whose
 * flow RSS steers back to it, and a wake-up from another thread. */
struct nd_net *nd_io_dpdk_net(unsigned wid);
struct nd_tcp_stack *nd_io_dpdk_tcp(unsigned wid);
struct nd_tcp_conn *nd_io_dpdk_open(unsigned wid, uint32_t raddr, uint16_t rport, nd_tcp_conn_cb cb,
                                    void *udata, int *err);
void nd_io_dpdk_wake(unsigned wid);

#endif
