/*
 * The packet path below TCP, without EAL: frames go in through nd_net_input/_rx_burst on mbufs
 * from an in-memory backend (dpdk/net/memio.h), and what the stack sends is checked byte by
 * byte. Ethernet, ARP (answers, learning, resolution queue, retries, ageing), IPv4 header
 * validation, routes, checksums (software and offload), ICMP, UDP sockets, the TCP hand-off,
 * TX bursts and fault injection. Every test ends with every mbuf given back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <rte_ring.h>

#include "../../dpdk/net/handoff.h"
#include "../../dpdk/net/memio.h"
#include "../../dpdk/net/net.h"
#include "../../dpdk/net/net_int.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))
#define OUR0 IP(198, 18, 0, 2)
#define OUR1 IP(198, 18, 1, 2)
#define PEER IP(198, 18, 0, 1)
#define GW IP(198, 18, 1, 1)

static const struct rte_ether_addr mac0 = {{0x02, 0, 0, 0, 0, 0x01}};
static const struct rte_ether_addr mac1 = {{0x02, 0, 0, 0, 0, 0x02}};
static const struct rte_ether_addr peer_mac = {{0x02, 0, 0, 0, 0, 0xaa}};
static const struct rte_ether_addr gw_mac = {{0x02, 0, 0, 0, 0, 0xbb}};
static const struct rte_ether_addr bcast_mac = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

static struct mem_backend mb;
static struct nd_net_shared sh;
static struct nd_net net;

static void setup_fault(const struct nd_dpdk_fault_conf *fault)
{
    struct nd_dpdk_conf c;
    char err[128];

    nd_dpdk_conf_init(&c);
    assert_int_equal(nd_dpdk_conf_add_port(&c, "net_null0", "198.18.0.2/24", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_add_port(&c, "net_null1", "198.18.1.2/24", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_add_route(&c, "0.0.0.0/0", "198.18.1.1", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_add_route(&c, "10.1.0.0/16", "198.18.0.1", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_validate(&c, err, sizeof(err)), 0);
    nd_net_shared_init(&sh, &c);
    sh.port[0].mac = mac0;
    sh.port[1].mac = mac1;
    memset(&mb, 0, sizeof(mb));
    mb.tx_accept = 0xffff;
    nd_net_init(&net, &sh, &mem_ops, &mb, 0, fault, 1000);
}

static int setup(void **state)
{
    (void)state;
    setup_fault(NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nd_net_fini(&net);
    mem_clear_sent(&mb);
    assert_int_equal(mem_inuse(&mb), 0); /* every mbuf came back */
    return 0;
}

/* ---- frame builders ---- */

static size_t eth(uint8_t *f, const struct rte_ether_addr *dst, const struct rte_ether_addr *src,
                  uint16_t type)
{
    struct rte_ether_hdr *e = (struct rte_ether_hdr *)f;

    e->dst_addr = *dst;
    e->src_addr = *src;
    e->ether_type = rte_cpu_to_be_16(type);
    return sizeof(*e);
}

/* Ethernet + IPv4 (20 bytes) + l4: returns the frame length. */
static size_t ipv4(uint8_t *f, uint32_t src, uint32_t dst, uint8_t proto, const void *l4,
                   size_t l4len)
{
    size_t o = eth(f, &mac0, &peer_mac, RTE_ETHER_TYPE_IPV4);
    struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(f + o);

    memset(ip, 0, sizeof(*ip));
    ip->version_ihl = 0x45;
    ip->total_length = rte_cpu_to_be_16((uint16_t)(20 + l4len));
    ip->packet_id = RTE_BE16(0x1234);
    ip->time_to_live = 64;
    ip->next_proto_id = proto;
    ip->src_addr = rte_cpu_to_be_32(src);
    ip->dst_addr = rte_cpu_to_be_32(dst);
    ip->hdr_checksum = (uint16_t)~nd_net_cksum(ip, 20, 0);
    memcpy(ip + 1, l4, l4len);
    return o + 20 + l4len;
}

static struct rte_ipv4_hdr *ip_of(uint8_t *f)
{
    return (struct rte_ipv4_hdr *)(f + 14);
}

static void ip_recsum(uint8_t *f)
{
    struct rte_ipv4_hdr *ip = ip_of(f);

    ip->hdr_checksum = 0;
    ip->hdr_checksum = (uint16_t)~nd_net_cksum(ip, rte_ipv4_hdr_len(ip), 0);
}

/* L4 checksum (UDP/TCP) of the datagram in frame f, at offset off of the L4 header. */
static void l4_recsum(uint8_t *f, unsigned off)
{
    struct rte_ipv4_hdr *ip = ip_of(f);
    uint32_t hl = rte_ipv4_hdr_len(ip), len = rte_be_to_cpu_16(ip->total_length) - hl;
    uint8_t *l4 = (uint8_t *)ip + hl;
    uint16_t c = 0;

    memcpy(l4 + off, &c, 2);
    c = (uint16_t)~nd_net_cksum(l4, len, nd_phdr_sum(ip, len));
    if (c == 0 && ip->next_proto_id == IPPROTO_UDP)
        c = 0xffff;
    memcpy(l4 + off, &c, 2);
}

static size_t udp(uint8_t *f, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                  const char *payload)
{
    uint8_t l4[1500];
    struct rte_udp_hdr *u = (struct rte_udp_hdr *)l4;
    size_t n = strlen(payload), len;

    u->src_port = rte_cpu_to_be_16(sport);
    u->dst_port = rte_cpu_to_be_16(dport);
    u->dgram_len = rte_cpu_to_be_16((uint16_t)(8 + n));
    u->dgram_cksum = 0;
    memcpy(u + 1, payload, n);
    len = ipv4(f, src, dst, IPPROTO_UDP, l4, 8 + n);
    l4_recsum(f, 6);
    return len;
}

static size_t echo_req(uint8_t *f, uint32_t src, uint32_t dst, size_t datalen)
{
    uint8_t l4[1500];
    struct rte_icmp_hdr *ic = (struct rte_icmp_hdr *)l4;

    memset(l4, 0, sizeof(l4));
    ic->icmp_type = RTE_IP_ICMP_ECHO_REQUEST;
    ic->icmp_ident = RTE_BE16(77);
    ic->icmp_seq_nb = RTE_BE16(5);
    for (size_t i = 0; i < datalen; i++)
        l4[8 + i] = (uint8_t)i;
    ic->icmp_cksum = (uint16_t)~nd_net_cksum(l4, 8 + datalen, 0);
    return ipv4(f, src, dst, IPPROTO_ICMP, l4, 8 + datalen);
}

static size_t tcp_syn(uint8_t *f, uint32_t src, uint32_t dst)
{
    uint8_t l4[24] = {0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 0,
                      0x60, 0x02, 0xff, 0xff, 0, 0, 0, 0, 2, 4, 5, 0xb4};
    size_t len = ipv4(f, src, dst, IPPROTO_TCP, l4, sizeof(l4));

    l4_recsum(f, 16);
    return len;
}

static size_t arp(uint8_t *f, uint16_t op, const struct rte_ether_addr *sha, uint32_t sip,
                  uint32_t tip, const struct rte_ether_addr *edst)
{
    size_t o = eth(f, edst, sha, RTE_ETHER_TYPE_ARP);
    struct rte_arp_hdr *a = (struct rte_arp_hdr *)(f + o);

    a->arp_hardware = RTE_BE16(1);
    a->arp_protocol = RTE_BE16(0x0800);
    a->arp_hlen = 6;
    a->arp_plen = 4;
    a->arp_opcode = rte_cpu_to_be_16(op);
    a->arp_data.arp_sha = *sha;
    a->arp_data.arp_sip = rte_cpu_to_be_32(sip);
    memset(&a->arp_data.arp_tha, 0, 6);
    a->arp_data.arp_tip = rte_cpu_to_be_32(tip);
    return o + sizeof(*a);
}

static void input(unsigned port, const uint8_t *f, size_t len)
{
    struct rte_mbuf *m = mem_frame(&mb, f, len);

    assert_non_null(m);
    nd_net_input(&net, port, m);
}

static uint8_t *sent(unsigned i)
{
    assert_true(i < mb.nsent);
    return rte_pktmbuf_mtod(mb.sent[i], uint8_t *);
}

static uint64_t dropped(unsigned port, enum nd_net_drop d)
{
    return net.stats[port].drop[d];
}

/* Teaches the stack where PEER and GW are, and clears what that sent. */
static void learn_neighbours(void)
{
    nd_net_arp_learn(&net, 0, PEER, &peer_mac);
    nd_net_arp_learn(&net, 1, GW, &gw_mac);
}

/* ---- tests ---- */

static void test_checksum(void **state)
{
    /* RFC 1071's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (network order) */
    static const uint8_t v[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    uint8_t buf[301];

    (void)state;
    assert_int_equal(rte_be_to_cpu_16(nd_net_cksum(v, sizeof(v), 0)), 0xddf2);
    for (unsigned i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(buf); len++) /* every length, both parities */
        for (size_t off = 0; off < 9 && off < len; off++)
            assert_int_equal(nd_net_cksum(buf + off, len - off, 0),
                             rte_raw_cksum(buf + off, len - off));
    /* carries: all ones, with a starting sum (what a pseudo-header gives) */
    memset(buf, 0xff, sizeof(buf));
    for (size_t len = 0; len <= sizeof(buf); len += 7)
        assert_int_equal(nd_net_cksum(buf, len, 0x3fffc),
                         __rte_raw_cksum_reduce(__rte_raw_cksum(buf, len, 0x3fffc)));
    /* a header with its checksum filled in sums to 0xffff */
    uint8_t f[128];
    ipv4(f, PEER, OUR0, 253, "", 0);
    assert_int_equal(nd_net_cksum(ip_of(f), 20, 0), 0xffff);
    assert_int_equal(rte_ipv4_cksum(ip_of(f)), 0); /* DPDK agrees */
    /* pseudo-header sum equals DPDK's */
    assert_int_equal(nd_net_cksum(NULL, 0, nd_phdr_sum(ip_of(f), 0)),
                     rte_ipv4_phdr_cksum(ip_of(f), 0));
}

static void test_routes(void **state)
{
    unsigned port;
    uint32_t nh;

    (void)state;
    assert_int_equal(nd_net_route(&sh, PEER, &port, &nh), 0); /* connected */
    assert_int_equal(port, 0);
    assert_int_equal(nh, PEER);
    assert_int_equal(nd_net_route(&sh, IP(198, 18, 1, 77), &port, &nh), 0);
    assert_int_equal(port, 1);
    assert_int_equal(nh, IP(198, 18, 1, 77));
    assert_int_equal(nd_net_route(&sh, IP(10, 1, 2, 3), &port, &nh), 0); /* /16 beats /0 */
    assert_int_equal(port, 0);
    assert_int_equal(nh, PEER);
    assert_int_equal(nd_net_route(&sh, IP(8, 8, 8, 8), &port, &nh), 0); /* default */
    assert_int_equal(port, 1);
    assert_int_equal(nh, GW);
    for (unsigned i = 1; i < sh.nroutes; i++) /* longest prefix first */
        assert_true(sh.route[i - 1].prefix >= sh.route[i].prefix);

    /* without a default route */
    struct nd_dpdk_conf c;
    struct nd_net_shared s2;
    char err[64];
    nd_dpdk_conf_init(&c);
    nd_dpdk_conf_add_port(&c, "net_null0", "198.18.0.2/24", err, sizeof(err));
    nd_net_shared_init(&s2, &c);
    assert_int_equal(nd_net_route(&s2, IP(8, 8, 8, 8), &port, &nh), -1);
    assert_int_equal(nd_net_local_port(&sh, OUR1), 1);
    assert_int_equal(nd_net_local_port(&sh, PEER), -1);
    assert_int_equal(sh.port[0].bcast, IP(198, 18, 0, 255));
}

static void test_eth(void **state)
{
    uint8_t f[128] = {0};
    size_t n;

    (void)state;
    input(0, f, 10);
    assert_int_equal(dropped(0, ND_NET_ETH_SHORT), 1);
    n = echo_req(f, PEER, OUR0, 8);
    eth(f, &gw_mac, &peer_mac, RTE_ETHER_TYPE_IPV4); /* for another MAC (promiscuous PMD) */
    input(0, f, n);
    assert_int_equal(dropped(0, ND_NET_ETH_DST), 1);
    eth(f, &mac0, &peer_mac, RTE_ETHER_TYPE_IPV6);
    input(0, f, n);
    eth(f, &mac0, &peer_mac, RTE_ETHER_TYPE_VLAN);
    input(0, f, n);
    assert_int_equal(dropped(0, ND_NET_ETH_TYPE), 2);
    /* a chained mbuf */
    struct rte_mbuf *a = mem_frame(&mb, f, 20), *b = mem_frame(&mb, f, 20);
    a->next = b;
    a->nb_segs = 2;
    a->pkt_len = 40;
    nd_net_input(&net, 0, a); /* the test backend frees only the head */
    mem_put(&mb, b);
    assert_int_equal(dropped(0, ND_NET_MULTISEG), 1);
    assert_int_equal(net.stats[0].rx_pkts, 5);
    assert_int_equal(mb.nsent, 0);
}

static void test_arp_answer_and_learn(void **state)
{
    uint8_t f[128];
    const struct nd_arp_entry *e;
    struct rte_arp_hdr *a;

    (void)state;
    input(0, f, arp(f, RTE_ARP_OP_REQUEST, &peer_mac, PEER, OUR0, &bcast_mac));
    nd_net_flush(&net);
    assert_int_equal(mb.nsent, 1);
    assert_int_equal(mb.sent[0]->data_len, 42); /* no trailing padding from the request */
    assert_memory_equal(sent(0), &peer_mac, 6);
    assert_memory_equal(sent(0) + 6, &mac0, 6);
    a = (struct rte_arp_hdr *)(sent(0) + 14);
    assert_int_equal(rte_be_to_cpu_16(a->arp_opcode), RTE_ARP_OP_REPLY);
    assert_memory_equal(&a->arp_data.arp_sha, &mac0, 6);
    assert_int_equal(rte_be_to_cpu_32(a->arp_data.arp_sip), OUR0);
    assert_memory_equal(&a->arp_data.arp_tha, &peer_mac, 6);
    assert_int_equal(rte_be_to_cpu_32(a->arp_data.arp_tip), PEER);
    e = nd_net_arp_lookup(&net, PEER);
    assert_non_null(e);
    assert_int_equal(e->state, ND_ARP_REACHABLE);
    assert_memory_equal(&e->mac, &peer_mac, 6);
    assert_int_equal(mb.learned, 1);

    /* a request on port 0 for port 1's address, or another host's, is not answered */
    input(0, f, arp(f, RTE_ARP_OP_REQUEST, &gw_mac, IP(198, 18, 0, 9), OUR1, &bcast_mac));
    input(0, f,
          arp(f, RTE_ARP_OP_REQUEST, &gw_mac, IP(198, 18, 0, 9), IP(198, 18, 0, 3), &bcast_mac));
    nd_net_flush(&net);
    assert_int_equal(mb.nsent, 1);
    assert_int_equal(dropped(0, ND_NET_ARP_NOT_OURS), 2);
    assert_null(nd_net_arp_lookup(&net, IP(198, 18, 0, 9))); /* not learned either */

    /* a known host's new MAC, from its gratuitous ARP, is taken (merge) */
    input(0, f, arp(f, RTE_ARP_OP_REQUEST, &gw_mac, PEER, PEER, &bcast_mac));
    assert_memory_equal(&nd_net_arp_lookup(&net, PEER)->mac, &gw_mac, 6);

    /* malformed: hardware length, opcode, sender MAC broadcast, sender claiming our address,
     * sender off our subnet, truncated */
    size_t n = arp(f, RTE_ARP_OP_REQUEST, &peer_mac, PEER, OUR0, &bcast_mac);
    f[14 + 4] = 8;
    input(0, f, n);
    arp(f, 9, &peer_mac, PEER, OUR0, &bcast_mac);
    input(0, f, n);
    arp(f, RTE_ARP_OP_REQUEST, &bcast_mac, PEER, OUR0, &bcast_mac);
    input(0, f, n);
    arp(f, RTE_ARP_OP_REPLY, &gw_mac, OUR0, OUR0, &bcast_mac);
    input(0, f, n);
    arp(f, RTE_ARP_OP_REQUEST, &peer_mac, IP(10, 0, 0, 1), OUR0, &bcast_mac);
    input(0, f, n);
    input(0, f, 30);
    assert_int_equal(dropped(0, ND_NET_ARP_BAD), 6);
    nd_net_flush(&net);
    assert_int_equal(mb.nsent, 1);
}

static void test_arp_resolve_queue_retry(void **state)
{
    struct nd_udp_sock s = {0};
    struct rte_arp_hdr *a;
    uint8_t f[128];

    (void)state;
    assert_int_equal(nd_udp_bind(&net, &s, 0, 5000), 0);
    /* four datagrams wait for the address, the fifth is refused */
    for (int i = 0; i < ND_ARP_HOLD; i++)
        assert_int_equal(nd_udp_sendto(&s, PEER, 53, "q", 1), 0);
    assert_int_equal(nd_udp_sendto(&s, PEER, 53, "q", 1), -ENOBUFS);
    assert_int_equal(dropped(0, ND_NET_ARP_HOLD_FULL), 1);
    nd_net_flush(&net);
    assert_int_equal(mb.nsent, 1); /* one request, broadcast */
    assert_memory_equal(sent(0), &bcast_mac, 6);
    a = (struct rte_arp_hdr *)(sent(0) + 14);
    assert_int_equal(rte_be_to_cpu_16(a->arp_opcode), RTE_ARP_OP_REQUEST);
    assert_int_equal(rte_be_to_cpu_32(a->arp_data.arp_tip), PEER);
    assert_int_equal(rte_be_to_cpu_32(a->arp_data.arp_sip), OUR0);
    assert_int_equal(nd_net_arp_lookup(&net, PEER)->state, ND_ARP_INCOMPLETE);
    mem_clear_sent(&mb);

    /* the reply releases them, addressed to the MAC it taught */
    input(0, f, arp(f, RTE_ARP_OP_REPLY, &peer_mac, PEER, OUR0, &mac0));
    nd_net_flush(&net);
    assert_int_equal(mb.nsent, ND_ARP_HOLD);
    for (unsigned i = 0; i < mb.nsent; i++) {
        assert_memory_equal(sent(i), &peer_mac, 6);
        assert_int_equal(rte_be_to_cpu_16(((struct rte_ether_hdr *)sent(i))->ether_type),
                         RTE_ETHER_TYPE_IPV4);
    }
    mem_clear_sent(&mb);

    /* an address that never answers: retried each second, then its packets are dropped */
    assert_int_equal(nd_udp_sendto(&s, IP(198, 18, 0, 50), 53, "q", 1), 0);
    assert_int_equal(nd_udp_sendto(&s, IP(198, 18, 0, 50), 53, "q", 1), 0);
    unsigned requests = 0;
    for (uint64_t t = 1000; t <= 6000; t += 100) {
        nd_net_tick(&net, t);
        nd_net_flush(&net);
        requests += mb.nsent;
        mem_clear_sent(&mb);
    }
    assert_int_equal(requests, ND_ARP_RETRIES);
    assert_int_equal(dropped(0, ND_NET_ARP_FAILED), 2);
    assert_null(nd_net_arp_lookup(&net, IP(198, 18, 0, 50)));
    assert_int_equal(net.arp_held, 0);

    /* ageing: reachable, stale (still used, re-asked at most once a second), forgotten */
    nd_net_tick(&net, 6000 + ND_ARP_REACHABLE_MS + 100);
    assert_int_equal(nd_net_arp_lookup(&net, PEER)->state, ND_ARP_STALE);
    assert_int_equal(nd_udp_sendto(&s, PEER, 53, "q", 1), 0);
    assert_int_equal(nd_udp_sendto(&s, PEER, 53, "q", 1), 0);
    nd_net_flush(&net);
    assert_int_equal(mb.nsent, 3); /* two datagrams and one request */
    assert_int_equal(net.stats[0].ev[ND_NET_ARP_REQ_OUT], 1 + ND_ARP_RETRIES + 1);
    mem_clear_sent(&mb);
    nd_net_tick(&net, 6000 + ND_ARP_REACHABLE_MS + ND_ARP_STALE_MS + 100);
    assert_null(nd_net_arp_lookup(&net, PEER));
    nd_udp_unbind(&s);
}

static void test_arp_cache_full(void **state)
{
    struct rte_ether_addr m = peer_mac;

    (void)state;
    /* far more neighbours than slots: the cache stays bounded and the newest are kept */
    for (uint32_t i = 0; i < 4 * ND_ARP_SIZE; i++) {
        net.now_ms++;
        m.addr_bytes[5] = (uint8_t)i;
        nd_net_arp_learn(&net, 0, IP(198, 18, 0, 0) + (i % 250) + 1 + (i / 250) * 0x10000, &m);
    }
    unsigned used = 0;
    for (unsigned i = 0; i < ND_ARP_SIZE; i++)
        used += net.arp[i].state != ND_ARP_FREE;
    assert_true(used <= ND_ARP_SIZE);
    assert_non_null(nd_net_arp_lookup(&net, IP(198, 18, 0, 0) + (1023 % 250) + 1 + 4 * 0x10000));
}

static void test_gratuitous(void **state)
{
    struct rte_arp_hdr *a;

    (void)state;
    nd_net_announce(&net);
    nd_net_flush(&net);
    assert_int_equal(mb.nsent, 2);
    for (unsigned p = 0; p < 2; p++) {
        a = (struct rte_arp_hdr *)(sent(p) + 14);
        assert_int_equal(mb.sent_port[p], p);
        assert_memory_equal(sent(p), &bcast_mac, 6);
        assert_int_equal(a->arp_data.arp_sip, a->arp_data.arp_tip);
        assert_int_equal(rte_be_to_cpu_32(a->arp_data.arp_sip), p ? OUR1 : OUR0);
    }
}

/* Each mutation of a valid echo request, and the reason it is dropped for. */
static void test_ipv4_validation(void **state)
{
    uint8_t f[256];
    size_t n;
    struct rte_ipv4_hdr *ip = ip_of(f);

    (void)state;
#define MUTATE(stmt, why, recsum)                                                                  \
    do {                                                                                           \
        n = echo_req(f, PEER, OUR0, 16);                                                           \
        stmt;                                                                                      \
        if (recsum)                                                                                \
            ip_recsum(f);                                                                          \
        uint64_t before = dropped(0, why);                                                         \
        input(0, f, n);                                                                            \
        assert_int_equal(dropped(0, why), before + 1);                                             \
    } while (0)
    MUTATE(n = 14 + 19, ND_NET_IP_SHORT, false);
    MUTATE(ip->version_ihl = 0x65, ND_NET_IP_VERSION, true);
    MUTATE(ip->version_ihl = 0x44, ND_NET_IP_IHL, true);
    MUTATE((ip->version_ihl = 0x4f, n = 14 + 40), ND_NET_IP_IHL, false);
    MUTATE(ip->total_length = RTE_BE16(200), ND_NET_IP_LEN, true);
    MUTATE(ip->total_length = RTE_BE16(19), ND_NET_IP_LEN, true);
    MUTATE(ip->hdr_checksum ^= 1, ND_NET_IP_CSUM, false);
    MUTATE(ip->time_to_live = 0, ND_NET_IP_TTL, true);
    MUTATE(ip->src_addr = RTE_BE32(0xffffffff), ND_NET_IP_SRC, true);
    MUTATE(ip->src_addr = rte_cpu_to_be_32(IP(224, 0, 0, 1)), ND_NET_IP_SRC, true);
    MUTATE(ip->src_addr = rte_cpu_to_be_32(OUR1), ND_NET_IP_SRC, true);
    MUTATE(ip->src_addr = rte_cpu_to_be_32(IP(127, 0, 0, 1)), ND_NET_IP_SRC, true);
    MUTATE(ip->src_addr = 0, ND_NET_IP_SRC, true);
    MUTATE(ip->src_addr = rte_cpu_to_be_32(IP(198, 18, 0, 255)), ND_NET_IP_SRC, true);
    MUTATE(ip->dst_addr = rte_cpu_to_be_32(IP(198, 18, 0, 3)), ND_NET_IP_NOT_OURS, true);
    MUTATE(ip->dst_addr = rte_cpu_to_be_32(IP(8, 8, 8, 8)), ND_NET_IP_NOT_OURS, true);
    MUTATE(ip->fragment_offset = RTE_BE16(RTE_IPV4_HDR_MF_FLAG), ND_NET_IP_FRAG, true);
    MUTATE(ip->fragment_offset = RTE_BE16(100), ND_NET_IP_FRAG, true);
    MUTATE(ip->hdr_checksum = 0, ND_NET_IP_CSUM, false);
    /* the NIC's verdict wins */
    n = echo_req(f, PEER, OUR0, 16);
    struct rte_mbuf *m = mem_frame(&mb, f, n);
    m->ol_flags = RTE_MBUF_F_RX_IP_CKSUM_BAD;
    nd_net_input(&net, 0, m);
    assert_int_equal(dropped(0, ND_NET_IP_CSUM), 3);
    ip->hdr_checksum ^= 0x5555; /* wrong, but the NIC says good */
    m = mem_frame(&mb, f, n);
    m->ol_flags = RTE_MBUF_F_RX_IP_CKSUM_GOOD;
    nd_net_input(&net, 0, m);
    assert_int_equal(net.stats[0].ev[ND_NET_CSUM_HW], 1);
    assert_int_equal(net.stats[0].ev[ND_NET_ICMP_ECHO], 1);

    /* DF alone is fine; options are accepted; Ethernet padding is cut off */
    uint64_t echoes = net.stats[0].ev[ND_NET_ICMP_ECHO];
    n = echo_req(f, PEER, OUR0, 0);
    ip->fragment_offset = RTE_BE16(RTE_IPV4_HDR_DF_FLAG);
    ip_recsum(f);
    memset(f + n, 0xee, 60 - n); /* a 42-byte frame padded to the Ethernet minimum */
    input(0, f, 60);
    uint8_t g[256], l4[16] = {8, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8};
    size_t k = eth(g, &mac0, &peer_mac, RTE_ETHER_TYPE_IPV4);
    struct rte_ipv4_hdr *gip = (struct rte_ipv4_hdr *)(g + k);
    uint16_t c = (uint16_t)~nd_net_cksum(l4, 16, 0);
    memcpy(l4 + 2, &c, 2);
    memset(gip, 0, 24);
    gip->version_ihl = 0x46;
    gip->total_length = RTE_BE16(24 + 16);
    gip->time_to_live = 1;
    gip->next_proto_id = IPPROTO_ICMP;
    gip->src_addr = rte_cpu_to_be_32(PEER);
    gip->dst_addr = rte_cpu_to_be_32(OUR0);
    ((uint8_t *)gip)[20] = 1; /* NOP options */
    ((uint8_t *)gip)[21] = 1;
    memcpy((uint8_t *)gip + 24, l4, 16);
    gip->hdr_checksum = (uint16_t)~nd_net_cksum(gip, 24, 0);
    input(0, g, k + 40);
    assert_int_equal(net.stats[0].ev[ND_NET_ICMP_ECHO], echoes + 2);
    nd_net_flush(&net);
    assert_int_equal(mb.sent[mb.nsent - 2]->data_len, 14 + 28); /* the padded one */
}

static void test_icmp_echo(void **state)
{
    uint8_t f[1600];
    size_t n = echo_req(f, PEER, OUR0, 1000);
    struct rte_ipv4_hdr *ip;
    struct rte_icmp_hdr *ic;

    (void)state;
    input(0, f, n);
    nd_net_flush(&net);
    assert_int_equal(mb.nsent, 1);
    assert_int_equal(mb.sent[0]->data_len, n);
    assert_memory_equal(sent(0), &peer_mac, 6);
    assert_memory_equal(sent(0) + 6, &mac0, 6);
    ip = ip_of(sent(0));
    assert_int_equal(rte_be_to_cpu_32(ip->src_addr), OUR0);
    assert_int_equal(rte_be_to_cpu_32(ip->dst_addr), PEER);
    assert_int_equal(nd_net_cksum(ip, 20, 0), 0xffff);
    ic = (struct rte_icmp_hdr *)(ip + 1);
    assert_int_equal(ic->icmp_type, RTE_IP_ICMP_ECHO_REPLY);
    assert_int_equal(ic->icmp_ident, RTE_BE16(77));
    assert_int_equal(nd_net_cksum(ic, 1008, 0), 0xffff);
    assert_memory_equal((uint8_t *)(ic + 1), f + 14 + 28, 1000);

    /* echo to the subnet broadcast is not answered; bad ICMP checksum; short ICMP */
    n = echo_req(f, PEER, IP(198, 18, 0, 255), 8);
    eth(f, &bcast_mac, &peer_mac, RTE_ETHER_TYPE_IPV4);
    input(0, f, n);
    assert_int_equal(dropped(0, ND_NET_ICMP_BCAST), 1);
    n = echo_req(f, PEER, OUR0, 8);
    f[n - 1] ^= 1;
    input(0, f, n);
    assert_int_equal(dropped(0, ND_NET_ICMP_CSUM), 1);
    n = ipv4(f, PEER, OUR0, IPPROTO_ICMP, "\x08\x00\xf7", 3);
    input(0, f, n);
    assert_int_equal(dropped(0, ND_NET_ICMP_SHORT), 1);

    /* an echo to our other port's address arrives here too (weak host model) */
    n = echo_req(f, PEER, OUR1, 8);
    input(0, f, n);
    /* incoming errors reach the hook; unknown types are dropped */
    uint8_t err[8 + 28] = {3, 4, 0, 0, 0, 0, 0x05, 0xdc};
    memcpy(err + 8, f + 14, 28);
    uint16_t c = (uint16_t)~nd_net_cksum(err, sizeof(err), 0);
    memcpy(err + 2, &c, 2);
    input(0, f, ipv4(f, IP(198, 18, 0, 1), OUR0, IPPROTO_ICMP, err, sizeof(err)));
    assert_int_equal(mb.icmp_errors, 1);
    assert_int_equal(mb.icmp_last_type, 3);
    assert_int_equal(mb.icmp_last_code, 4);
    uint8_t ts[20] = {13};
    c = (uint16_t)~nd_net_cksum(ts, sizeof(ts), 0);
    memcpy(ts + 2, &c, 2);
    input(0, f, ipv4(f, PEER, OUR0, IPPROTO_ICMP, ts, sizeof(ts)));
    assert_int_equal(dropped(0, ND_NET_ICMP_TYPE), 1);
    nd_net_flush(&net);
    assert_int_equal(mb.nsent, 2);
    assert_int_equal(net.stats[0].ev[ND_NET_ICMP_ECHO], 2);
}

static void check_unreach(uint8_t *fr, uint16_t frlen, uint8_t code, const uint8_t *orig,
                          size_t origlen)
{
    struct rte_ipv4_hdr *ip = ip_of(fr);
    struct rte_icmp_hdr *ic = (struct rte_icmp_hdr *)(ip + 1);
    size_t quoted = origlen - 14 > 548 ? 548 : origlen - 14;

    assert_memory_equal(fr, &peer_mac, 6);
    assert_int_equal(frlen, 14 + 28 + quoted);
    assert_int_equal(rte_be_to_cpu_16(ip->total_length), 28 + quoted);
    assert_int_equal(rte_be_to_cpu_32(ip->src_addr), OUR0);
    assert_int_equal(rte_be_to_cpu_32(ip->dst_addr), PEER);
    assert_int_equal(ip->next_proto_id, IPPROTO_ICMP);
    assert_int_equal(nd_net_cksum(ip, 20, 0), 0xffff);
    assert_int_equal(ic->icmp_type, 3);
    assert_int_equal(ic->icmp_code, code);
    assert_int_equal(nd_net_cksum(ic, 8 + quoted, 0), 0xffff);
    assert_memory_equal(ic + 1, orig + 14, quoted); /* the original datagram, from its header */
}

static void test_unreachables(void **state)
{
    uint8_t f[1600], orig[1600];
    size_t n;

    (void)state;
    n = udp(f, PEER, 4000, OUR0, 9, "nobody here");
    memcpy(orig, f, n);
    input(0, f, n);
    nd_net_flush(&net);
    assert_int_equal(dropped(0, ND_NET_UDP_PORT), 1);
    assert_int_equal(mb.nsent, 1);
    check_unreach(sent(0), mb.sent[0]->data_len, 3, orig, n);
    mem_clear_sent(&mb);

    /* a big datagram is quoted up to 576 bytes in all */
    char big[1201];
    memset(big, 'b', 1200);
    big[1200] = 0;
    n = udp(f, PEER, 4000, OUR0, 9, big);
    memcpy(orig, f, n);
    input(0, f, n);
    nd_net_flush(&net);
    check_unreach(sent(0), mb.sent[0]->data_len, 3, orig, n);
    mem_clear_sent(&mb);

    /* protocol unreachable */
    n = ipv4(f, PEER, OUR0, 132 /* SCTP */, "abcdefgh", 8);
    memcpy(orig, f, n);
    input(0, f, n);
    nd_net_flush(&net);
    assert_int_equal(dropped(0, ND_NET_IP_PROTO), 1);
    check_unreach(sent(0), mb.sent[0]->data_len, 2, orig, n);
    mem_clear_sent(&mb);

    /* to a broadcast address: dropped without an error */
    n = udp(f, PEER, 4000, 0xffffffff, 9, "x");
    input(0, f, n);
    nd_net_flush(&net);
    assert_int_equal(mb.nsent, 0);
    assert_int_equal(dropped(0, ND_NET_UDP_PORT), 3);

    /* rate limit: a burst of ND_ICMP_ERR_BURST, then refilled by time */
    for (int i = 0; i < 100; i++)
        input(0, f, udp(f, PEER, 4000, OUR0, 9, "x"));
    nd_net_flush(&net);
    assert_int_equal(net.stats[0].ev[ND_NET_ICMP_UNREACH_OUT], ND_ICMP_ERR_BURST);
    assert_int_equal(net.stats[0].ev[ND_NET_ICMP_ERR_LIMITED], 100 - (ND_ICMP_ERR_BURST - 3));
    mem_clear_sent(&mb);
    nd_net_tick(&net, 1000 + 200);
    input(0, f, udp(f, PEER, 4000, OUR0, 9, "x"));
    nd_net_flush(&net);
    assert_int_equal(mb.nsent, 1);
}

static struct {
    unsigned n;
    uint32_t src, dst, len;
    uint16_t sport;
    char data[64];
} got;

static void on_udp(struct nd_udp_sock *s, uint32_t src, uint16_t sport, uint32_t dst,
                   const uint8_t *data, uint32_t len)
{
    (void)s;
    got.n++;
    got.src = src;
    got.dst = dst;
    got.sport = sport;
    got.len = len;
    memcpy(got.data, data, len < 63 ? len : 63);
}

static void test_udp(void **state)
{
    struct nd_udp_sock a = {.recv = on_udp}, b = {.recv = on_udp}, c = {.recv = on_udp};
    uint8_t f[256];
    size_t n;

    (void)state;
    memset(&got, 0, sizeof(got));
    assert_int_equal(nd_udp_bind(&net, &a, 0, 7946), 0);
    assert_int_equal(nd_udp_bind(&net, &b, OUR0, 7946), -EADDRINUSE);
    assert_int_equal(nd_udp_bind(&net, &b, 0, 0), -EINVAL);
    assert_int_equal(nd_udp_bind(&net, &b, PEER, 53), -EINVAL); /* not our address */
    assert_int_equal(nd_udp_bind(&net, &b, OUR0, 53), 0);
    assert_int_equal(nd_udp_bind(&net, &c, OUR1, 53), 0);

    input(0, f, udp(f, PEER, 33333, OUR0, 7946, "ping"));
    assert_int_equal(got.n, 1);
    assert_int_equal(got.src, PEER);
    assert_int_equal(got.dst, OUR0);
    assert_int_equal(got.sport, 33333);
    assert_int_equal(got.len, 4);
    assert_memory_equal(got.data, "ping", 4);
    /* a zero checksum means none; a wrong one drops */
    n = udp(f, PEER, 33333, OUR0, 7946, "nock");
    memset(f + 14 + 20 + 6, 0, 2);
    input(0, f, n);
    assert_int_equal(got.n, 2);
    n = udp(f, PEER, 33333, OUR0, 7946, "bad!");
    f[n - 1] ^= 0x40;
    input(0, f, n);
    assert_int_equal(dropped(0, ND_NET_UDP_CSUM), 1);
    /* the UDP length: beyond the IP payload, or below 8; shorter is fine (the rest ignored) */
    n = udp(f, PEER, 33333, OUR0, 7946, "len!");
    f[14 + 20 + 5] = 13;
    l4_recsum(f, 6);
    input(0, f, n);
    f[14 + 20 + 5] = 7;
    input(0, f, n);
    assert_int_equal(dropped(0, ND_NET_UDP_SHORT), 2);
    n = udp(f, PEER, 33333, OUR0, 7946, "len!");
    f[14 + 20 + 5] = 10; /* 2 bytes of payload */
    memset(f + 14 + 20 + 6, 0, 2);
    input(0, f, n);
    assert_int_equal(got.len, 2);
    input(0, f, ipv4(f, PEER, OUR0, IPPROTO_UDP, "abc", 3));
    assert_int_equal(dropped(0, ND_NET_UDP_SHORT), 3);
    /* the socket bound to an address wins over none; each address its own */
    input(0, f, udp(f, PEER, 1, OUR1, 53, "to-c"));
    assert_memory_equal(got.data, "to-c", 4);
    assert_int_equal(got.dst, OUR1);
    /* broadcast reaches the wildcard socket */
    n = udp(f, PEER, 1, 0xffffffff, 7946, "bcast");
    eth(f, &bcast_mac, &peer_mac, RTE_ETHER_TYPE_IPV4);
    input(0, f, n);
    assert_memory_equal(got.data, "bcast", 5);
    assert_int_equal(net.stats[0].ev[ND_NET_UDP_IN], 5);

    /* sending: software checksums */
    learn_neighbours();
    assert_int_equal(nd_udp_sendto(&a, PEER, 4000, "reply", 5), 0);
    assert_int_equal(nd_udp_sendto(&a, IP(93, 184, 216, 34), 80, "far", 3), 0); /* via GW */
    nd_net_flush(&net);
    assert_int_equal(mb.nsent, 2);
    struct rte_ipv4_hdr *ip = ip_of(sent(0));
    struct rte_udp_hdr *u = (struct rte_udp_hdr *)(ip + 1);
    assert_memory_equal(sent(0), &peer_mac, 6);
    assert_int_equal(rte_be_to_cpu_32(ip->src_addr), OUR0);
    assert_int_equal(nd_net_cksum(ip, 20, 0), 0xffff);
    assert_int_equal(ip->fragment_offset, RTE_BE16(RTE_IPV4_HDR_DF_FLAG));
    assert_int_equal(rte_be_to_cpu_16(u->src_port), 7946);
    assert_int_equal(rte_be_to_cpu_16(u->dgram_len), 13);
    assert_int_equal(nd_net_cksum(u, 13, nd_phdr_sum(ip, 13)), 0xffff);
    assert_int_equal(mb.sent_port[1], 1);
    assert_memory_equal(sent(1), &gw_mac, 6);
    assert_int_equal(rte_be_to_cpu_32(ip_of(sent(1))->src_addr), OUR1);
    mem_clear_sent(&mb);
    /* bound to an address: sends from it; MTU; no mbufs */
    assert_int_equal(nd_udp_sendto(&c, GW, 53, "x", 1), 0);
    nd_net_flush(&net);
    assert_int_equal(rte_be_to_cpu_32(ip_of(sent(0))->src_addr), OUR1);
    static char huge[1600];
    assert_int_equal(nd_udp_sendto(&a, PEER, 1, huge, 1473), -EMSGSIZE);
    assert_int_equal(dropped(0, ND_NET_TOO_BIG), 1);
    assert_int_equal(nd_udp_sendto(&a, PEER, 1, huge, 1472), 0);
    mb.fail_alloc = true;
    assert_int_equal(nd_udp_sendto(&a, PEER, 1, "x", 1), -ENOBUFS);
    mb.fail_alloc = false;
    assert_int_equal(dropped(0, ND_NET_NO_MBUF), 1);
    nd_udp_unbind(&a);
    nd_udp_unbind(&a); /* twice is harmless */
    input(0, f, udp(f, PEER, 33333, OUR0, 7946, "gone"));
    assert_int_equal(dropped(0, ND_NET_UDP_PORT), 1);
    nd_udp_unbind(&b);
    nd_udp_unbind(&c);
    assert_int_equal(net.nudp, 0);
}

static void test_tx_offload(void **state)
{
    struct nd_udp_sock a = {.recv = on_udp};
    struct rte_mbuf *m;

    (void)state;
    sh.port[0].tx_ol = ND_NET_OL_IPV4_CKSUM | ND_NET_OL_UDP_CKSUM | ND_NET_OL_TCP_CKSUM;
    assert_false(nd_net_csum_offload(&sh, ND_NET_OL_TCP_CKSUM)); /* port 1 has none */
    learn_neighbours();
    assert_int_equal(nd_udp_bind(&net, &a, 0, 7946), 0);
    assert_int_equal(nd_udp_sendto(&a, PEER, 4000, "offload", 7), 0);
    nd_net_flush(&net);
    m = mb.sent[0];
    assert_true(m->ol_flags & RTE_MBUF_F_TX_IPV4);
    assert_true(m->ol_flags & RTE_MBUF_F_TX_IP_CKSUM);
    assert_int_equal(m->ol_flags & RTE_MBUF_F_TX_L4_MASK, RTE_MBUF_F_TX_UDP_CKSUM);
    assert_int_equal(m->l2_len, 14);
    assert_int_equal(m->l3_len, 20);
    struct rte_ipv4_hdr *ip = ip_of(sent(0));
    struct rte_udp_hdr *u = (struct rte_udp_hdr *)(ip + 1);
    assert_int_equal(ip->hdr_checksum, 0);
    assert_int_equal(u->dgram_cksum, rte_ipv4_phdr_cksum(ip, m->ol_flags));
    mem_clear_sent(&mb);

    /* a TCP segment with a partial sum: on an offloading port the NIC finishes it, on
     * another it is finished in software */
    uint8_t tcp[20] = {0x1f, 0x90, 0x9c, 0x40, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff};
    struct rte_ipv4_hdr ph = {.src_addr = rte_cpu_to_be_32(OUR1),
                              .dst_addr = rte_cpu_to_be_32(IP(8, 8, 8, 8)),
                              .next_proto_id = IPPROTO_TCP,
                              .total_length = RTE_BE16(40),
                              .version_ihl = 0x45};
    uint16_t partial = rte_ipv4_phdr_cksum(&ph, 0);
    memcpy(tcp + 16, &partial, 2);
    struct nd_net_iov iov = {tcp, 20};
    assert_int_equal(
        nd_net_ip_send(&net, 0, IP(8, 8, 8, 8), IPPROTO_TCP, &iov, 1, ND_NET_CSUM_PARTIAL), 0);
    nd_net_flush(&net);
    ip = ip_of(sent(0));
    assert_int_equal(mb.sent[0]->ol_flags, 0);
    assert_int_equal(nd_net_cksum(ip + 1, 20, nd_phdr_sum(ip, 20)), 0xffff);
    assert_int_equal(nd_net_ip_send(&net, IP(10, 0, 0, 1), PEER, IPPROTO_TCP, &iov, 1, 0),
                     -EADDRNOTAVAIL);
    nd_udp_unbind(&a);
}

static void test_tcp_handoff(void **state)
{
    uint8_t f[256];
    size_t n;
    struct rte_mbuf *m;

    (void)state;
    input(0, f, tcp_syn(f, PEER, OUR0));
    assert_int_equal(mb.tcp_segs, 1);
    assert_int_equal(mb.tcp_last_len, 24);
    assert_int_equal(mb.tcp_last_src, PEER);
    assert_int_equal(mb.tcp_last_dst, OUR0);
    n = tcp_syn(f, PEER, OUR0);
    f[n - 1] ^= 1;
    input(0, f, n);
    assert_int_equal(dropped(0, ND_NET_TCP_CSUM), 1);
    /* the NIC's verdict: good (the wrong sum passes), bad */
    m = mem_frame(&mb, f, n);
    m->ol_flags = RTE_MBUF_F_RX_L4_CKSUM_GOOD;
    nd_net_input(&net, 0, m);
    assert_int_equal(mb.tcp_segs, 2);
    n = tcp_syn(f, PEER, OUR0);
    m = mem_frame(&mb, f, n);
    m->ol_flags = RTE_MBUF_F_RX_L4_CKSUM_BAD;
    nd_net_input(&net, 0, m);
    assert_int_equal(dropped(0, ND_NET_TCP_CSUM), 2);
    n = tcp_syn(f, PEER, OUR0);
    f[14 + 20 + 12] = 0xf0; /* data offset 60 > 24 */
    l4_recsum(f, 16);
    input(0, f, n);
    f[14 + 20 + 12] = 0x40; /* 16 < 20 */
    l4_recsum(f, 16);
    input(0, f, n);
    input(0, f, ipv4(f, PEER, OUR0, IPPROTO_TCP, "0123456789", 10));
    assert_int_equal(dropped(0, ND_NET_TCP_SHORT), 3);
    /* to a broadcast address: never TCP */
    n = tcp_syn(f, PEER, IP(198, 18, 0, 255));
    input(0, f, n);
    assert_int_equal(dropped(0, ND_NET_IP_NOT_OURS), 1);
    /* no engine attached */
    struct nd_net_ops ops = mem_ops;
    ops.tcp_input = NULL;
    net.ops = &ops;
    input(0, f, tcp_syn(f, PEER, OUR0));
    assert_int_equal(dropped(0, ND_NET_TCP_NO_STACK), 1);
    net.ops = &mem_ops;
    assert_int_equal(mb.tcp_segs, 2);
}

static void test_tx_burst(void **state)
{
    struct nd_udp_sock a = {.recv = on_udp};

    (void)state;
    learn_neighbours();
    assert_int_equal(nd_udp_bind(&net, &a, 0, 7946), 0);
    /* what an iteration queues leaves in one burst at the flush */
    for (int i = 0; i < 40; i++)
        assert_int_equal(nd_udp_sendto(&a, PEER, 1, "x", 1), 0);
    assert_int_equal(mb.bursts, 0);
    nd_net_flush(&net);
    assert_int_equal(mb.bursts, 1);
    assert_int_equal(mb.nsent, 40);
    nd_net_flush(&net); /* nothing queued: no call */
    assert_int_equal(mb.bursts, 1);
    assert_int_equal(net.stats[0].tx_pkts, 40);
    mem_clear_sent(&mb);
    /* a full queue goes at once */
    for (int i = 0; i < ND_NET_TXQ + 2; i++)
        assert_int_equal(nd_udp_sendto(&a, PEER, 1, "x", 1), 0);
    assert_int_equal(mb.bursts, 2);
    assert_int_equal(mb.nsent, ND_NET_TXQ);
    nd_net_flush(&net);
    assert_int_equal(mb.bursts, 3);
    assert_int_equal(net.stats[0].tx_pkts, 40 + ND_NET_TXQ + 2);
    mem_clear_sent(&mb);
    /* a full TX ring: what it does not take is dropped and counted */
    mb.tx_accept = 3;
    for (int i = 0; i < 10; i++)
        nd_udp_sendto(&a, PEER, 1, "x", 1);
    nd_net_flush(&net);
    assert_int_equal(mb.nsent, 3);
    assert_int_equal(dropped(0, ND_NET_TX_FULL), 7);
    nd_udp_unbind(&a);
}

/* RX bursts of echo requests through the fault injector; returns the replies' sequence
 * numbers in order. */
static unsigned fault_run(unsigned count, uint16_t *seq)
{
    struct rte_mbuf *pkts[ND_NET_BURST];
    uint8_t f[128];
    unsigned k = 0;

    for (unsigned i = 0; i < count;) {
        uint16_t n = 0;

        for (; n < 8 && i < count; n++, i++) {
            size_t len = echo_req(f, PEER, OUR0, 4);
            struct rte_icmp_hdr *ic = (struct rte_icmp_hdr *)(f + 34);

            ic->icmp_seq_nb = rte_cpu_to_be_16((uint16_t)i);
            ic->icmp_cksum = 0;
            ic->icmp_cksum = (uint16_t)~nd_net_cksum(ic, 12, 0);
            pkts[n] = mem_frame(&mb, f, len);
        }
        nd_net_rx_burst(&net, 0, pkts, n);
        nd_net_flush(&net);
        for (unsigned s = 0; s < mb.nsent; s++)
            seq[k++] = rte_be_to_cpu_16(((struct rte_icmp_hdr *)(sent(s) + 34))->icmp_seq_nb);
        mem_clear_sent(&mb);
    }
    nd_net_tick(&net, net.now_ms + ND_FAULT_HOLD_MS); /* releases a held one */
    nd_net_flush(&net);
    for (unsigned s = 0; s < mb.nsent; s++)
        seq[k++] = rte_be_to_cpu_16(((struct rte_icmp_hdr *)(sent(s) + 34))->icmp_seq_nb);
    mem_clear_sent(&mb);
    return k;
}

static void test_fault(void **state)
{
    static uint16_t seq[30000], seq2[30000];
    struct nd_dpdk_fault_conf fc = {.drop = 1};
    unsigned k;

    (void)state;
    nd_net_fini(&net);
    setup_fault(&fc); /* drop everything: RX and TX */
    assert_int_equal(fault_run(100, seq), 0);
    assert_int_equal(dropped(0, ND_NET_FAULT_RX), 100);

    nd_net_fini(&net);
    fc = (struct nd_dpdk_fault_conf){.duplicate = 1};
    setup_fault(&fc); /* RX duplicates, then TX duplicates each reply: 4 per request */
    k = fault_run(10, seq);
    assert_int_equal(k, 40);
    for (unsigned i = 0; i < k; i++)
        assert_int_equal(seq[i], i / 4);

    nd_net_fini(&net);
    fc = (struct nd_dpdk_fault_conf){.reorder = 0.3, .seed = 7};
    setup_fault(&fc);
    k = fault_run(1000, seq);
    assert_int_equal(k, 1000); /* nothing lost */
    unsigned swaps = 0, sum = 0;
    for (unsigned i = 0; i < k; i++) {
        sum += seq[i];
        swaps += i && seq[i] < seq[i - 1];
    }
    assert_int_equal(sum, 999 * 1000 / 2);
    assert_true(swaps > 100);
    assert_int_equal(net.stats[0].ev[ND_NET_FAULT_REORDER] > 100, 1);

    /* the drop rate, and the same seed gives the same faults */
    nd_net_fini(&net);
    fc = (struct nd_dpdk_fault_conf){.drop = 0.1, .duplicate = 0.05, .reorder = 0.05, .seed = 42};
    setup_fault(&fc);
    k = fault_run(10000, seq);
    uint64_t rx_drop = dropped(0, ND_NET_FAULT_RX);
    assert_true(rx_drop > 850 && rx_drop < 1150);
    nd_net_fini(&net);
    mem_clear_sent(&mb);
    setup_fault(&fc);
    assert_int_equal(fault_run(10000, seq2), k);
    assert_memory_equal(seq, seq2, k * sizeof(seq[0]));
    assert_int_equal(dropped(0, ND_NET_FAULT_RX), rx_drop);
}

/* ---- the hand-over between two workers (handoff.h): net is worker 0, net1 worker 1 ---- */

static struct nd_handoff ho;
static struct nd_net net1;
static struct nd_net_ops ops0, ops1;
static const uint8_t sym_key[40] = {0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a};

static uint16_t ho_tx1(struct nd_net *n, unsigned port, struct rte_mbuf **pkts, uint16_t cnt)
{
    (void)n;
    return nd_handoff_tx(&ho, 1, port, pkts, cnt); /* worker 1 has no TX queue */
}

static void ho_learned(struct nd_net *n, unsigned port, uint32_t ip,
                       const struct rte_ether_addr *mac)
{
    nd_handoff_arp_share(&ho, n == &net ? 0 : 1, port, ip, mac);
}

static int ho_setup(void **state)
{
    setup(state);
    assert_int_equal(nd_handoff_init(&ho, 2, sym_key), 0);
    for (unsigned p = 0; p < sh.nports; p++) {
        sh.port[p].port_id = (uint16_t)(10 + p);
        assert_int_equal(nd_handoff_tx_route(&ho, 1, p, 0), 0);
    }
    ops0 = mem_ops;
    ops0.arp_learned = ho_learned;
    net.ops = &ops0;
    ops1 = ops0;
    ops1.tx_burst = ho_tx1;
    nd_net_init(&net1, &sh, &ops1, &mb, 1, NULL, 1000);
    return 0;
}

static int ho_teardown(void **state)
{
    assert_false(nd_handoff_pending(&ho, 0));
    assert_false(nd_handoff_pending(&ho, 1));
    nd_handoff_fini(&ho);
    nd_net_fini(&net1);
    return teardown(state);
}

static size_t tcp_from(uint8_t *f, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport)
{
    size_t n = tcp_syn(f, src, dst);
    uint8_t *l4 = f + 14 + 20;

    l4[0] = (uint8_t)(sport >> 8), l4[1] = (uint8_t)sport;
    l4[2] = (uint8_t)(dport >> 8), l4[3] = (uint8_t)dport;
    l4_recsum(f, 16);
    return n;
}

static struct rte_mbuf *frame_on(unsigned port, const uint8_t *f, size_t len)
{
    struct rte_mbuf *m = mem_frame(&mb, f, len);

    assert_non_null(m);
    m->port = sh.port[port].port_id;
    return m;
}

/* Which frames move, and where to: a flow's worker is the same both ways, spread over both. */
static void test_handoff_flow_worker(void **state)
{
    uint8_t f[256];
    unsigned per[2] = {0, 0};
    uint64_t x = 88172645463325252ull;
    struct rte_mbuf *m;
    size_t n;

    (void)state;
    for (int i = 0; i < 2000; i++) {
        uint32_t a, b;
        uint16_t sp, dp;

        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        a = (uint32_t)x, b = (uint32_t)(x >> 32), sp = (uint16_t)(x >> 7), dp = (uint16_t)(x >> 23);
        assert_int_equal(nd_handoff_flow_worker(&ho, a, b, sp, dp),
                         nd_handoff_flow_worker(&ho, b, a, dp, sp));
        per[nd_handoff_flow_worker(&ho, a, b, sp, dp)]++;
    }
    assert_in_range(per[0], 800, 1200);
    for (uint16_t sport = 40000; sport < 40032; sport++) {
        m = frame_on(0, f, tcp_from(f, PEER, sport, OUR0, 8080));
        assert_int_equal(nd_handoff_frame_worker(&ho, m),
                         (int)nd_handoff_flow_worker(&ho, PEER, OUR0, sport, 8080));
        mem_put(&mb, m);
    }
    m = frame_on(0, f, udp(f, PEER, 7946, OUR0, 7946, "x"));
    assert_int_equal(nd_handoff_frame_worker(&ho, m),
                     (int)nd_handoff_flow_worker(&ho, PEER, OUR0, 7946, 7946));
    mem_put(&mb, m);
    /* what stays where it came in: ARP, ICMP, fragments, frames too short to tell */
    m = frame_on(0, f, arp(f, RTE_ARP_OP_REQUEST, &peer_mac, PEER, OUR0, &bcast_mac));
    assert_int_equal(nd_handoff_frame_worker(&ho, m), -1);
    mem_put(&mb, m);
    m = frame_on(0, f, echo_req(f, PEER, OUR0, 10));
    assert_int_equal(nd_handoff_frame_worker(&ho, m), -1);
    mem_put(&mb, m);
    n = tcp_from(f, PEER, 40000, OUR0, 8080);
    ip_of(f)->fragment_offset = RTE_BE16(RTE_IPV4_HDR_MF_FLAG);
    m = frame_on(0, f, n);
    assert_int_equal(nd_handoff_frame_worker(&ho, m), -1);
    mem_put(&mb, m);
    m = frame_on(0, f, 14 + 21);
    assert_int_equal(nd_handoff_frame_worker(&ho, m), -1);
    mem_put(&mb, m);
}

/* Worker 0 receives a burst: its frames and the ARP stay, worker 1's go to its ring and into its
 * stack; with worker 1's ring full they are dropped and counted. */
static void test_handoff_rx(void **state)
{
    struct rte_mbuf *pkts[ND_NET_BURST], *junk[ND_HO_RX_RING];
    unsigned mine = 0, theirs = 0;
    uint8_t f[256];
    uint16_t keep;

    (void)state;
    for (uint16_t i = 0; i < 20; i++) {
        pkts[i] = frame_on(0, f, tcp_from(f, PEER, (uint16_t)(41000 + i), OUR0, 8080));
        if (nd_handoff_flow_worker(&ho, PEER, OUR0, (uint16_t)(41000 + i), 8080))
            theirs++;
        else
            mine++;
    }
    pkts[20] = frame_on(0, f, arp(f, RTE_ARP_OP_REQUEST, &peer_mac, PEER, OUR0, &bcast_mac));
    assert_true(mine > 0 && theirs > 0);
    keep = nd_handoff_rx_steer(&ho, 0, &net, 0, pkts, 21);
    assert_int_equal(keep, mine + 1);
    assert_int_equal(ho.st[0].rx_out, theirs);
    assert_true(nd_handoff_pending(&ho, 1));
    assert_false(nd_handoff_pending(&ho, 0));
    nd_net_rx_burst(&net, 0, pkts, keep);
    assert_int_equal(mb.tcp_segs, mine);
    assert_int_equal(nd_handoff_rx_drain(&ho, 1, &net1), theirs);
    assert_int_equal(mb.tcp_segs, mine + theirs);
    assert_int_equal(ho.st[1].rx_in, theirs);
    assert_int_equal(net1.stats[0].rx_pkts, theirs);          /* on the port they came in by */
    assert_int_equal(nd_handoff_arp_drain(&ho, 1, &net1), 1); /* the requester, learned */
    assert_non_null(nd_net_arp_lookup(&net1, PEER));
    /* worker 1's ring full: dropped, counted, freed */
    junk[0] = frame_on(0, f, tcp_from(f, PEER, 41000, OUR0, 8080)); /* fills every slot */
    for (unsigned i = 1; i < ND_HO_RX_RING - 1; i++)
        junk[i] = junk[0];
    assert_int_equal(rte_ring_enqueue_burst(ho.rx[1], (void **)junk, ND_HO_RX_RING - 1, NULL),
                     ND_HO_RX_RING - 1);
    for (uint16_t i = 0; i < 20; i++)
        pkts[i] = frame_on(0, f, tcp_from(f, PEER, (uint16_t)(41000 + i), OUR0, 8080));
    keep = nd_handoff_rx_steer(&ho, 0, &net, 0, pkts, 20);
    assert_int_equal(keep, mine);
    assert_int_equal(ho.st[0].rx_full, theirs);
    assert_int_equal(dropped(0, ND_NET_HANDOFF_FULL), theirs);
    for (uint16_t i = 0; i < keep; i++)
        mem_put(&mb, pkts[i]);
    assert_int_equal(rte_ring_dequeue_burst(ho.rx[1], (void **)junk, ND_HO_RX_RING, NULL),
                     ND_HO_RX_RING - 1);
    mem_put(&mb, junk[0]);
}

/* Worker 1 has no TX queue: its frames reach the NIC through worker 0's. */
static void test_handoff_tx(void **state)
{
    struct nd_udp_sock a = {.recv = on_udp};
    struct rte_mbuf *junk[ND_HO_TX_RING];

    (void)state;
    nd_net_arp_learn(&net1, 0, PEER, &peer_mac);
    assert_int_equal(nd_udp_bind(&net1, &a, 0, 7946), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(nd_udp_sendto(&a, PEER, 1, "x", 1), 0);
    nd_net_flush(&net1);
    assert_int_equal(mb.nsent, 0);
    assert_int_equal(ho.st[1].tx_out, 5);
    assert_int_equal(net1.stats[0].tx_pkts, 5);
    assert_true(nd_handoff_pending(&ho, 0));
    assert_int_equal(nd_handoff_tx_drain(&ho, 0, &net), 5);
    assert_int_equal(mb.nsent, 5);
    assert_int_equal(mb.sent_port[4], 0);
    assert_int_equal(ho.st[0].tx_in, 5);
    assert_memory_equal(sent(0), &peer_mac, 6);
    /* the owner's queue takes 2 of 5: the rest dropped and counted there */
    mem_clear_sent(&mb);
    mb.tx_accept = 2;
    for (int i = 0; i < 5; i++)
        nd_udp_sendto(&a, PEER, 1, "x", 1);
    nd_net_flush(&net1);
    nd_handoff_tx_drain(&ho, 0, &net);
    assert_int_equal(mb.nsent, 2);
    assert_int_equal(ho.st[0].tx_refused, 3);
    assert_int_equal(dropped(0, ND_NET_TX_FULL), 3);
    /* the ring to the owner full: the TX path drops what it does not take */
    junk[0] = mem_get(&mb); /* fills every slot */
    for (unsigned i = 1; i < ND_HO_TX_RING - 1; i++)
        junk[i] = junk[0];
    assert_int_equal(rte_ring_enqueue_burst(ho.tx[1][0], (void **)junk, ND_HO_TX_RING - 1, NULL),
                     ND_HO_TX_RING - 1);
    nd_udp_sendto(&a, PEER, 1, "x", 1);
    nd_net_flush(&net1);
    assert_int_equal(ho.st[1].tx_full, 1);
    assert_int_equal(net1.stats[0].drop[ND_NET_TX_FULL], 1);
    assert_int_equal(rte_ring_dequeue_burst(ho.tx[1][0], (void **)junk, ND_HO_TX_RING, NULL),
                     ND_HO_TX_RING - 1);
    mem_put(&mb, junk[0]);
    nd_udp_unbind(&a);
}

/* Worker 1 asks for the gateway; the answer comes in on worker 0, which learns it and passes it
 * on: worker 1 learns it too and sends what it held. */
static void test_handoff_arp(void **state)
{
    struct nd_udp_sock a = {.recv = on_udp};
    uint8_t f[256];

    (void)state;
    assert_int_equal(nd_udp_bind(&net1, &a, 0, 7946), 0);
    assert_int_equal(nd_udp_sendto(&a, IP(10, 1, 2, 3), 53, "held", 4), 0); /* via PEER */
    nd_net_flush(&net1);
    nd_handoff_tx_drain(&ho, 0, &net); /* its ARP request, through worker 0 */
    assert_int_equal(mb.nsent, 1);
    mem_clear_sent(&mb);
    input(0, f, arp(f, RTE_ARP_OP_REPLY, &peer_mac, PEER, OUR0, &mac0));
    assert_non_null(nd_net_arp_lookup(&net, PEER));
    assert_int_equal(ho.st[0].arp_out, 1);
    assert_true(nd_handoff_pending(&ho, 1));
    assert_int_equal(nd_handoff_arp_drain(&ho, 1, &net1), 1);
    assert_non_null(nd_net_arp_lookup(&net1, PEER));
    nd_net_flush(&net1);
    nd_handoff_tx_drain(&ho, 0, &net);
    assert_int_equal(mb.nsent, 1); /* the held datagram */
    assert_memory_equal(sent(0), &peer_mac, 6);
    nd_udp_unbind(&a);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_checksum),
        T(test_routes),
        T(test_eth),
        T(test_arp_answer_and_learn),
        T(test_arp_resolve_queue_retry),
        T(test_arp_cache_full),
        T(test_gratuitous),
        T(test_ipv4_validation),
        T(test_icmp_echo),
        T(test_unreachables),
        T(test_udp),
        T(test_tx_offload),
        T(test_tcp_handoff),
        T(test_tx_burst),
        T(test_fault),
        cmocka_unit_test_setup_teardown(test_handoff_flow_worker, ho_setup, ho_teardown),
        cmocka_unit_test_setup_teardown(test_handoff_rx, ho_setup, ho_teardown),
        cmocka_unit_test_setup_teardown(test_handoff_tx, ho_setup, ho_teardown),
        cmocka_unit_test_setup_teardown(test_handoff_arp, ho_setup, ho_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
