/*
 * libFuzzer target for the frame input path of the DPDK packet core (dpdk/net/): Ethernet ->
 * ARP | IPv4 -> ICMP | UDP | TCP hand-off, on an in-memory backend (no EAL).
 *
 * Input: byte 0 picks the port (bit 0), the NIC's RX checksum verdicts (bits 1-4, so the
 * offload paths are reached too), TX offloads (bit 5) and fault injection (bit 6); the rest is
 * the frame. A UDP socket on 7946 echoes what it gets (the send path, ARP queueing), and ARP
 * entries exist for a few neighbours.
 *
 * Checks, besides the sanitizers: every mbuf comes back (no leak, no double free: the backend
 * aborts), the TCP hand-off points inside the frame with a sane length, UDP payloads lie
 * inside the frame (or its duplicate), every IPv4 frame sent carries a right header checksum (when
 * not left to the NIC), and every ICMP message sent a right ICMP checksum.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../dpdk/net/memio.h"
#include "../../dpdk/net/net.h"
#include "../../dpdk/net/net_int.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static struct mem_backend mb;
static struct nd_net_shared sh;
static struct nd_net net;
static const uint8_t *lo, *hi; /* the frame being processed */

static void fz_tcp_input(struct nd_net *n, struct rte_mbuf *m, uint32_t src, uint32_t dst,
                         const uint8_t *tcp, uint32_t len)
{
    const uint8_t *d = rte_pktmbuf_mtod(m, const uint8_t *);

    (void)src;
    (void)dst;
    CHECK(len >= 20 && tcp >= d && tcp + len <= d + m->data_len);
    CHECK((uint32_t)(tcp[12] >> 4) * 4 <= len);
    mem_free(n, m);
}

static void on_udp(struct nd_udp_sock *s, uint32_t src, uint16_t sport, uint32_t dst,
                   const uint8_t *data, uint32_t len)
{
    (void)dst;
    if (!(data >= lo && data + len <= hi)) { /* a duplicate made by fault injection */
        size_t i = (size_t)(data - &mb.data[0][0]) / MEM_BUFSZ;

        CHECK(data >= &mb.data[0][0] && i < MEM_NBUF && data + len <= mb.data[i] + MEM_BUFSZ);
    }
    nd_udp_sendto(s, src, sport, data, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct rte_ether_addr mac0 = {{0x02, 0, 0, 0, 0, 0x01}},
                                       mac1 = {{0x02, 0, 0, 0, 0, 0x02}},
                                       peer = {{0x02, 0, 0, 0, 0, 0xaa}};
    static bool init;
    struct nd_net_ops ops = mem_ops;
    struct nd_dpdk_fault_conf fc = {.drop = 0.2, .duplicate = 0.2, .reorder = 0.2, .seed = 1};
    struct nd_udp_sock s = {.recv = on_udp};
    struct rte_mbuf *m;
    unsigned port;
    uint8_t flags;

    if (!init) {
        struct nd_dpdk_conf c;
        char err[128];

        nd_dpdk_conf_init(&c);
        nd_dpdk_conf_add_port(&c, "net_null0", "198.18.0.2/24", err, sizeof(err));
        nd_dpdk_conf_add_port(&c, "net_null1", "198.18.1.2/24", err, sizeof(err));
        nd_dpdk_conf_add_route(&c, "0.0.0.0/0", "198.18.1.1", err, sizeof(err));
        nd_net_shared_init(&sh, &c);
        sh.port[0].mac = mac0;
        sh.port[1].mac = mac1;
        init = true;
    }
    if (size < 1 || size > 1 + 2048)
        return 0;
    flags = data[0];
    port = flags & 1;
    sh.port[0].tx_ol = sh.port[1].tx_ol =
        flags & 0x20 ? ND_NET_OL_IPV4_CKSUM | ND_NET_OL_UDP_CKSUM | ND_NET_OL_TCP_CKSUM : 0;
    /* the previous run gave every mbuf back (checked below) */
    mb.nsent = 0;
    mb.tx_accept = 0xffff;
    ops.tcp_input = fz_tcp_input;
    nd_net_init(&net, &sh, &ops, &mb, 0, flags & 0x40 ? &fc : NULL, 1000);
    CHECK(nd_udp_bind(&net, &s, 0, 7946) == 0);
    nd_net_arp_learn(&net, 0, 0xc6120001, &peer);
    nd_net_arp_learn(&net, 1, 0xc6120101, &peer);

    m = mem_frame(&mb, data + 1, size - 1);
    CHECK(m);
    lo = rte_pktmbuf_mtod(m, const uint8_t *);
    hi = lo + m->data_len;
    m->ol_flags = (flags & 0x02 ? RTE_MBUF_F_RX_IP_CKSUM_GOOD : 0) |
                  (flags & 0x04 ? RTE_MBUF_F_RX_IP_CKSUM_BAD : 0) |
                  (flags & 0x08 ? RTE_MBUF_F_RX_L4_CKSUM_GOOD : 0) |
                  (flags & 0x10 ? RTE_MBUF_F_RX_L4_CKSUM_BAD : 0);
    nd_net_rx_burst(&net, port, &m, 1);
    nd_net_tick(&net, 1000 + ND_FAULT_HOLD_MS);
    nd_net_flush(&net);

    for (unsigned i = 0; i < mb.nsent; i++) {
        struct rte_mbuf *o = mb.sent[i];
        const uint8_t *f = rte_pktmbuf_mtod(o, const uint8_t *);
        const struct rte_ether_hdr *eh = (const struct rte_ether_hdr *)f;

        CHECK(o->data_len >= 14 && o->data_len <= 1514);
        if (eh->ether_type == RTE_BE16(RTE_ETHER_TYPE_IPV4)) {
            const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(f + 14);
            uint32_t hl = rte_ipv4_hdr_len(ip), tl = rte_be_to_cpu_16(ip->total_length);

            CHECK(o->data_len >= 14 + hl && tl <= o->data_len - 14u && tl >= hl);
            if (!(o->ol_flags & RTE_MBUF_F_TX_IP_CKSUM))
                CHECK(nd_net_cksum(ip, hl, 0) == 0xffff);
            if (ip->next_proto_id == IPPROTO_ICMP)
                CHECK(nd_net_cksum((const uint8_t *)ip + hl, tl - hl, 0) == 0xffff);
        }
    }
    nd_udp_unbind(&s);
    nd_net_fini(&net);
    mem_clear_sent(&mb);
    CHECK(mb.inuse == 0);
    return 0;
}
