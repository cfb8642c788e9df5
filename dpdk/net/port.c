/* EAL and ports (see port.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include <linux/if_packet.h>
#include <linux/if_xdp.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>

#include "port.h"

/* A symmetric Toeplitz key (the 0x6d5a pattern): both directions of a flow hash alike, so the
 * software hash (rte_softrss) of either direction names the same queue. */
static const uint8_t rss_key[40] = {0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int find_port(const struct nd_dpdk_port_conf *pc, uint16_t *pid)
{
    char name[ND_DPDK_DEV_LEN + 8];
    size_t n = strcspn(pc->dev, ",");

    snprintf(name, sizeof(name), "%.*s", (int)n, pc->dev);
    if (rte_eth_dev_get_port_by_name(name, pid) == 0)
        return 0;
    if (!pc->vdev) { /* "00:04.0" is "0000:00:04.0" to EAL */
        snprintf(name, sizeof(name), "0000:%s", pc->dev);
        if (rte_eth_dev_get_port_by_name(name, pid) == 0)
            return 0;
    }
    return -1;
}

/* What a port is and how many queues it gets (before the pools: af_xdp ports shape them). */
static int port_plan(struct nd_dpdk *d, unsigned i, char *err, size_t errlen)
{
    const struct nd_dpdk_port_conf *pc = &d->conf.ports[i];
    struct nd_dpdk_port_info *info = &d->info[i];
    struct rte_eth_dev_info di;
    uint16_t pid;
    const uint64_t rss_need = RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_NONFRAG_IPV4_UDP;
    unsigned nw = d->nworkers;
    int rc;

    for (unsigned q = 0; q < ND_DPDK_MAX_WORKERS; q++)
        info->kfd[q] = -1;
    if (find_port(pc, &pid) < 0)
        return fail(err, errlen, "ports[%u]: DPDK has no port for \"%s\" (see the EAL's log)",
                    i + 1, pc->dev);
    if ((rc = rte_eth_dev_info_get(pid, &di)) != 0)
        return fail(err, errlen, "ports[%u]: device info: %s", i + 1, rte_strerror(-rc));
    info->port_id = pid;
    rte_eth_dev_get_name_by_port(pid, info->name);
    snprintf(info->driver, sizeof(info->driver), "%s", di.driver_name);
    info->max_rxq = di.max_rx_queues;
    info->max_txq = di.max_tx_queues;
    if (!info->max_rxq || !info->max_txq)
        return fail(err, errlen, "ports[%u]: the PMD has no queues", i + 1);
    if (!strcmp(di.driver_name, "net_af_packet") && info->max_rxq > nw)
        /* its sockets exist from the start and the kernel spreads frames over all of them:
         * a queue no worker polls would swallow every flow hashed to it */
        return fail(err, errlen,
                    "ports[%u]: %s has qpairs=%u, more than node.workers = %u: the kernel spreads "
                    "frames over every queue pair; use qpairs=%u or fewer",
                    i + 1, pc->dev, info->max_rxq, nw, nw);
    info->ksock = !strcmp(di.driver_name, "net_af_packet") ? ND_DPDK_KSOCK_PACKET
                  : !strcmp(di.driver_name, "net_af_xdp")  ? ND_DPDK_KSOCK_XDP
                                                           : ND_DPDK_KSOCK_NONE;
    info->nrxq = (uint16_t)RTE_MIN((unsigned)info->max_rxq, nw);
    info->ntxq = (uint16_t)RTE_MIN((unsigned)info->max_txq, nw);
    /* the NIC steers each flow to its worker's queue when it does RSS with our key over as many
     * queues as workers, and its redirection table (entry i -> queue i % n) covers them evenly:
     * then its choice is rte_softrss() % workers, as the connect path predicts */
    if (nw == 1)
        info->steer = ND_DPDK_STEER_NONE;
    else if (info->nrxq == nw && (di.flow_type_rss_offloads & rss_need) == rss_need &&
             di.hash_key_size == sizeof(rss_key) && di.reta_size && di.reta_size % nw == 0)
        info->steer = ND_DPDK_STEER_RSS;
    else
        info->steer = ND_DPDK_STEER_SOFTWARE; /* the workers hand frames over (handoff.h) */
    if (info->ksock == ND_DPDK_KSOCK_XDP)
        for (unsigned q = 0; q < info->nrxq; q++)
            d->xsk_queues[q]++;
    return 0;
}

/* The process's sockets of one family (AF_XDP, AF_PACKET): up to max descriptors into fds;
 * returns how many. The PMDs open theirs at start and never say which they are. */
static unsigned list_sockets(int family, int *fds, unsigned max)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    unsigned n = 0;

    while (dir && n < max && (e = readdir(dir))) {
        int fd = atoi(e->d_name), dom = 0;
        socklen_t len = sizeof(dom);

        if (fd > 0 && fd != dirfd(dir) && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) == 0 &&
            dom == family)
            fds[n++] = fd;
    }
    if (dir)
        closedir(dir);
    return n;
}

/* The socket of an af_xdp RX queue: the one AF_XDP socket its setup opened (before: those
 * there were), or -1. */
static int new_xdp_socket(const int *before, unsigned nbefore)
{
    int now[64], fd = -1;
    unsigned n = list_sockets(AF_XDP, now, 64);

    for (unsigned i = 0; i < n; i++) {
        unsigned k = 0;

        while (k < nbefore && before[k] != now[i])
            k++;
        if (k == nbefore)
            fd = fd == -1 ? now[i] : -2;
    }
    return fd >= 0 ? fd : -1; /* none, or not one alone: unknown */
}

/* An af_packet port's sockets: the AF_PACKET sockets bound to its interface. */
static void packet_sockets(int ifindex, int *kfd, unsigned max)
{
    int all[64];
    unsigned n = list_sockets(AF_PACKET, all, 64), k = 0;

    for (unsigned i = 0; i < n && k < max; i++) {
        struct sockaddr_ll ll;
        socklen_t len = sizeof(ll);

        if (getsockname(all[i], (struct sockaddr *)&ll, &len) == 0 && ll.sll_ifindex == ifindex)
            kfd[k++] = all[i];
    }
}

static int port_setup(struct nd_dpdk *d, unsigned i, char *err, size_t errlen)
{
    struct nd_dpdk_port_info *info = &d->info[i];
    struct nd_net_port *np = &d->sh.port[i];
    struct rte_eth_conf ec;
    struct rte_eth_dev_info di;
    uint16_t pid = info->port_id, mtu;
    uint16_t nrx = ND_DPDK_RX_DESC, ntx = ND_DPDK_TX_DESC;
    uint64_t want_rx =
        RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
    uint64_t want_tx =
        RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
    int socket, rc;

    if ((rc = rte_eth_dev_info_get(pid, &di)) != 0)
        return fail(err, errlen, "ports[%u]: device info: %s", i + 1, rte_strerror(-rc));
    socket = rte_eth_dev_socket_id(pid);
    if (info->ksock == ND_DPDK_KSOCK_XDP) /* its XSK rings: as many as the fill ring's buffers */
        nrx = ntx = ND_DPDK_XSK_DESC;
    memset(&ec, 0, sizeof(ec));
    ec.rxmode.offloads = want_rx & di.rx_offload_capa;
    ec.txmode.offloads = want_tx & di.tx_offload_capa;
    if (info->nrxq > 1 && di.flow_type_rss_offloads) {
        /* spreads the load over the queues even when it does not steer for us */
        ec.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        ec.rx_adv_conf.rss_conf.rss_hf =
            (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & di.flow_type_rss_offloads;
        if (di.hash_key_size == sizeof(rss_key)) {
            ec.rx_adv_conf.rss_conf.rss_key = d->rss_key;
            ec.rx_adv_conf.rss_conf.rss_key_len = sizeof(rss_key);
        }
    }
    info->rx_offloads = ec.rxmode.offloads;
    info->tx_offloads = ec.txmode.offloads;
    if ((rc = rte_eth_dev_configure(pid, info->nrxq, info->ntxq, &ec)) != 0)
        return fail(err, errlen, "ports[%u]: configure: %s", i + 1, rte_strerror(-rc));
    if ((rc = rte_eth_dev_adjust_nb_rx_tx_desc(pid, &nrx, &ntx)) != 0)
        return fail(err, errlen, "ports[%u]: descriptors: %s", i + 1, rte_strerror(-rc));
    for (uint16_t q = 0; q < info->nrxq; q++) { /* RX queue q is worker q's: its pool */
        int before[64];
        unsigned nbefore = 0;

        if (info->ksock == ND_DPDK_KSOCK_XDP) /* the queue's socket is the one setup opens */
            nbefore = list_sockets(AF_XDP, before, 64);
        if ((rc = rte_eth_rx_queue_setup(pid, q, nrx, (unsigned)socket, NULL, d->pool[q])) != 0)
            return fail(err, errlen, "ports[%u]: RX queue %u: %s%s", i + 1, q, rte_strerror(-rc),
                        info->ksock == ND_DPDK_KSOCK_XDP
                            ? " (af_xdp: no XDP socket on the interface; the libbpf and libxdp "
                              "lines above say why: a veth whose peer's MTU is above 3506, "
                              "another XDP program, no CAP_NET_ADMIN and CAP_BPF...)"
                            : "");
        if (info->ksock == ND_DPDK_KSOCK_XDP)
            info->kfd[q] = new_xdp_socket(before, nbefore);
    }
    if (info->ksock == ND_DPDK_KSOCK_PACKET && di.if_index)
        packet_sockets((int)di.if_index, info->kfd, info->nrxq);
    for (uint16_t q = 0; q < info->ntxq; q++) {
        struct rte_eth_txconf txc = di.default_txconf;

        txc.offloads = ec.txmode.offloads;
        if ((rc = rte_eth_tx_queue_setup(pid, q, ntx, (unsigned)socket, &txc)) != 0)
            return fail(err, errlen, "ports[%u]: TX queue %u: %s", i + 1, q, rte_strerror(-rc));
    }
    rte_eth_dev_set_mtu(pid, RTE_ETHER_MTU); /* a PMD that cannot keeps its own: read below */
    if (rte_eth_dev_get_mtu(pid, &mtu) != 0 || mtu < 576)
        mtu = RTE_ETHER_MTU;
    np->mtu = RTE_MIN(mtu, (uint16_t)RTE_ETHER_MTU);
    if ((rc = rte_eth_macaddr_get(pid, &np->mac)) != 0)
        return fail(err, errlen, "ports[%u]: MAC address: %s", i + 1, rte_strerror(-rc));
    np->port_id = pid;
    np->tx_ol = (ec.txmode.offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM ? ND_NET_OL_IPV4_CKSUM : 0) |
                (ec.txmode.offloads & RTE_ETH_TX_OFFLOAD_UDP_CKSUM ? ND_NET_OL_UDP_CKSUM : 0) |
                (ec.txmode.offloads & RTE_ETH_TX_OFFLOAD_TCP_CKSUM ? ND_NET_OL_TCP_CKSUM : 0);
    if ((rc = rte_eth_dev_start(pid)) != 0)
        return fail(err, errlen, "ports[%u]: start: %s", i + 1, rte_strerror(-rc));
    return 0;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Worker w's mbuf pool. When it backs af_xdp RX queues it is their UMEM: the PMD of DPDK 22.11
 * registers, from the page of the pool's first memory chunk, populated_size objects back to back.
 * An ordinary pool keeps every object within a page (with --no-huge, one 2.3 KB mbuf per 4 KiB
 * page; with hugepages, gaps at each 2 MB), so its last mbufs would lie beyond the UMEM: the
 * kernel refuses them as TX descriptors and drops them from the fill ring, never to come back.
 * Such a pool is made of objects packed in one chunk (no IOVA contiguity needed: the kernel
 * copies into the UMEM, no device DMAs), with room for what the PMD holds. */
static struct rte_mempool *pool_create(struct nd_dpdk *d, unsigned w, char *err, size_t errlen)
{
    struct rte_pktmbuf_pool_private priv = {.mbuf_data_room_size = RTE_MBUF_DEFAULT_BUF_SIZE};
    unsigned n = ND_DPDK_MBUFS + d->xsk_queues[w] * ND_DPDK_XSK_MBUFS;
    const struct rte_mempool_memhdr *h;
    struct rte_mempool *mp;
    char name[RTE_MEMPOOL_NAMESIZE];
    int rc;

    snprintf(name, sizeof(name), "nd_mbuf_%u", w);
    if (!d->xsk_queues[w]) {
        mp = rte_pktmbuf_pool_create(name, n, ND_DPDK_MBUF_CACHE, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                     (int)rte_socket_id());
        if (!mp)
            fail(err, errlen, "mbuf pool %u: %s", w, rte_strerror(rte_errno));
        return mp;
    }
    for (unsigned i = 0; i < d->conf.nports; i++)
        if (!d->conf.ports[i].vdev && rte_eal_iova_mode() == RTE_IOVA_PA) {
            fail(err, errlen,
                 "ports[%u]: a PCI device next to af_xdp ports needs IOVA as VA (vfio-pci): the "
                 "af_xdp UMEM's mbufs are not physically contiguous",
                 i + 1);
            return NULL;
        }
    n = rte_align32pow2(n + 1) - 1;
    mp = rte_mempool_create_empty(name, n, sizeof(struct rte_mbuf) + RTE_MBUF_DEFAULT_BUF_SIZE,
                                  ND_DPDK_MBUF_CACHE, sizeof(priv), (int)rte_socket_id(),
                                  RTE_MEMPOOL_F_NO_IOVA_CONTIG);
    if (!mp) {
        fail(err, errlen, "mbuf pool %u: %s", w, rte_strerror(rte_errno));
        return NULL;
    }
    if ((rc = rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), NULL)) != 0) {
        fail(err, errlen, "mbuf pool %u: %s", w, rte_strerror(-rc));
        goto fail;
    }
    rte_pktmbuf_pool_init(mp, &priv);
    if ((rc = rte_mempool_populate_default(mp)) < 0) {
        fail(err, errlen, "mbuf pool %u: %u mbufs (%zu MB, with its af_xdp queues' rings): %s", w,
             n, (size_t)n * (mp->header_size + mp->elt_size + mp->trailer_size) >> 20,
             rte_strerror(-rc));
        goto fail;
    }
    rte_mempool_obj_iter(mp, rte_pktmbuf_init, NULL);
    h = STAILQ_FIRST(&mp->mem_list);
    if (mp->populated_size != n || mp->nb_mem_chunks != 1 ||
        h->len < (size_t)n * (mp->header_size + mp->elt_size + mp->trailer_size)) {
        fail(err, errlen,
             "mbuf pool %u: the af_xdp UMEM needs its %u mbufs in one area of %zu MB, which "
             "the EAL could not give (more memory: -m, or hugepages)",
             w, n, (size_t)n * (mp->header_size + mp->elt_size + mp->trailer_size) >> 20);
        goto fail;
    }
    return mp;
fail:
    rte_mempool_free(mp);
    return NULL;
}

int nd_dpdk_start(struct nd_dpdk *d, const struct nd_dpdk_conf *c, unsigned nworkers, char *err,
                  size_t errlen)
{
    struct nd_dpdk_argv_store store;
    char *argv[ND_DPDK_MAX_ARGS + 2 * ND_DPDK_MAX_PORTS + 2];
    uint64_t t;
    int argc, rc;

    memset(d, 0, sizeof(*d));
    d->conf = *c;
    if (nworkers == 0 || nworkers > ND_DPDK_MAX_WORKERS)
        return fail(err, errlen, "workers: 1 to %d with DPDK", ND_DPDK_MAX_WORKERS);
    if (nd_dpdk_conf_validate(c, err, errlen) < 0)
        return -1;
    d->nworkers = nworkers;
    memcpy(d->rss_key, rss_key, sizeof(rss_key)); /* the software hash uses it on every port */
    nd_net_shared_init(&d->sh, c);
    argc = nd_dpdk_conf_argv(&d->conf, "nodus", &store, argv, (int)RTE_DIM(argv));
    if (argc < 0)
        return fail(err, errlen, "args: too many EAL arguments");
    t = mono_ms();
    rc = rte_eal_init(argc, argv);
    if (rc < 0)
        return fail(err, errlen, "EAL: %s", rte_strerror(rte_errno));
    d->eal_up = true;
    d->eal_ms = (uint32_t)(mono_ms() - t);
    t = mono_ms();
    for (unsigned i = 0; i < c->nports; i++)
        if (port_plan(d, i, err, errlen) < 0) {
            d->ports_up = true; /* closes the ports the EAL probed */
            nd_dpdk_stop(d);
            return -1;
        }
    for (unsigned w = 0; w < nworkers; w++)
        if (!(d->pool[w] = pool_create(d, w, err, errlen))) {
            nd_dpdk_stop(d);
            return -1;
        }
    d->pools_ms = (uint32_t)(mono_ms() - t);
    t = mono_ms();
    for (unsigned i = 0; i < c->nports; i++)
        if (port_setup(d, i, err, errlen) < 0) {
            d->ports_up = true; /* closes what was set up */
            nd_dpdk_stop(d);
            return -1;
        }
    d->ports_up = true;
    d->ports_ms = (uint32_t)(mono_ms() - t);
    /* the hand-over: RX and ARP rings per worker, and a TX ring for each worker without a TX
     * queue of its own on a port, to the queue of worker (w % queues) */
    rc = nd_handoff_init(&d->ho, nworkers, d->rss_key);
    for (unsigned i = 0; rc == 0 && i < c->nports; i++)
        for (unsigned w = d->info[i].ntxq; rc == 0 && w < nworkers; w++)
            rc = nd_handoff_tx_route(&d->ho, w, i, w % d->info[i].ntxq);
    if (rc < 0) {
        fail(err, errlen, "hand-over rings: out of memory");
        nd_dpdk_stop(d);
        return -1;
    }
    return 0;
}

void nd_dpdk_stop(struct nd_dpdk *d)
{
    if (d->ports_up)
        for (unsigned i = 0; i < d->conf.nports; i++) {
            uint16_t pid;

            if (find_port(&d->conf.ports[i], &pid) == 0) {
                rte_eth_dev_stop(pid);
                rte_eth_dev_close(pid);
            }
        }
    d->ports_up = false;
    nd_handoff_fini(&d->ho); /* frames still in the rings go back to their pools first */
    for (unsigned w = 0; w < ND_DPDK_MAX_WORKERS; w++) {
        rte_mempool_free(d->pool[w]);
        d->pool[w] = NULL;
    }
    if (d->eal_up)
        rte_eal_cleanup();
    d->eal_up = false;
}

static struct rte_mbuf *w_alloc(struct nd_net *n)
{
    return rte_pktmbuf_alloc(((struct nd_dpdk_worker *)n->udata)->pool);
}

static struct rte_mbuf *w_copy(struct nd_net *n, struct rte_mbuf *m)
{
    return rte_pktmbuf_copy(m, ((struct nd_dpdk_worker *)n->udata)->pool, 0, UINT32_MAX);
}

static void w_free(struct nd_net *n, struct rte_mbuf *m)
{
    (void)n;
    rte_pktmbuf_free(m);
}

static uint16_t w_tx_burst(struct nd_net *n, unsigned port, struct rte_mbuf **pkts, uint16_t cnt)
{
    struct nd_dpdk_worker *w = n->udata;

    if (w->txq[port] < 0) /* no TX queue of its own on this port: the owner's (handoff.h) */
        return nd_handoff_tx(&w->d->ho, w->id, port, pkts, cnt);
    n->stats[port].tx_bursts++;
    return rte_eth_tx_burst(n->sh->port[port].port_id, (uint16_t)w->txq[port], pkts, cnt);
}

static void w_arp_learned(struct nd_net *n, unsigned port, uint32_t ip,
                          const struct rte_ether_addr *mac)
{
    struct nd_dpdk_worker *w = n->udata;

    nd_handoff_arp_share(&w->d->ho, w->id, port, ip, mac);
}

static const struct nd_net_ops dpdk_ops = {
    .alloc = w_alloc,
    .copy = w_copy,
    .free = w_free,
    .tx_burst = w_tx_burst,
};

int nd_dpdk_worker_init(struct nd_dpdk *d, struct nd_dpdk_worker *w, unsigned id, uint64_t now_ms)
{
    if (id >= d->nworkers)
        return -1;
    memset(w, 0, sizeof(*w));
    w->d = d;
    w->id = id;
    w->pool = d->pool[id];
    for (unsigned p = 0; p < ND_NET_MAX_PORTS; p++) {
        w->rxq[p] = (int16_t)(p < d->sh.nports && id < d->info[p].nrxq ? (int)id : -1);
        w->txq[p] = (int16_t)(p < d->sh.nports && id < d->info[p].ntxq ? (int)id : -1);
    }
    w->ops = dpdk_ops;
    if (d->nworkers > 1) /* answers to one worker's ARP requests may reach another */
        w->ops.arp_learned = w_arp_learned;
    nd_net_init(&w->net, &d->sh, &w->ops, w, id, &d->conf.fault, now_ms);
    return 0;
}

void nd_dpdk_worker_fini(struct nd_dpdk_worker *w)
{
    nd_net_fini(&w->net);
}

unsigned nd_dpdk_rx(struct nd_dpdk_worker *w)
{
    struct rte_mbuf *pkts[ND_NET_BURST];
    const struct nd_net_shared *sh = w->net.sh;
    struct nd_dpdk *d = w->d;
    unsigned total = d->nworkers > 1 ? nd_handoff_arp_drain(&d->ho, w->id, &w->net) : 0;

    for (unsigned p = 0; p < sh->nports; p++) {
        uint16_t n = 0, keep;

        if (w->rxq[p] >= 0)
            n = rte_eth_rx_burst(sh->port[p].port_id, (uint16_t)w->rxq[p], pkts, ND_NET_BURST);
        keep = n && d->info[p].steer == ND_DPDK_STEER_SOFTWARE
                   ? nd_handoff_rx_steer(&d->ho, w->id, &w->net, p, pkts, n)
                   : n;
        if (keep || w->net.faults)
            nd_net_rx_burst(&w->net, p, pkts, keep);
        total += n;
    }
    return d->nworkers > 1 ? total + nd_handoff_rx_drain(&d->ho, w->id, &w->net) : total;
}

unsigned nd_dpdk_flush(struct nd_dpdk_worker *w)
{
    unsigned n = nd_net_flush(&w->net);

    return w->d->nworkers > 1 ? n + nd_handoff_tx_drain(&w->d->ho, w->id, &w->net) : n;
}

bool nd_dpdk_pending(const struct nd_dpdk_worker *w)
{
    return nd_handoff_pending(&w->d->ho, w->id);
}

bool nd_dpdk_serves_others(const struct nd_dpdk_worker *w)
{
    if (w->d->ho.tx_from[w->id])
        return true;
    for (unsigned p = 0; p < w->d->sh.nports; p++)
        if (w->rxq[p] >= 0 && w->d->info[p].steer == ND_DPDK_STEER_SOFTWARE)
            return true;
    return false;
}

unsigned nd_dpdk_poll(struct nd_dpdk_worker *w, uint64_t now_ms)
{
    unsigned n;

    nd_net_tick(&w->net, now_ms);
    n = nd_dpdk_rx(w);
    return n + nd_dpdk_flush(w);
}

const char *nd_dpdk_steer_name(enum nd_dpdk_steer s)
{
    return s == ND_DPDK_STEER_RSS ? "rss" : s == ND_DPDK_STEER_SOFTWARE ? "software" : "none";
}

bool nd_dpdk_link(const struct nd_dpdk *d, unsigned port, uint32_t *speed)
{
    struct rte_eth_link l;

    memset(&l, 0, sizeof(l));
    if (rte_eth_link_get_nowait(d->sh.port[port].port_id, &l) != 0)
        return false;
    if (speed) /* virtio and others say RTE_ETH_SPEED_NUM_UNKNOWN (UINT32_MAX): 0, unknown */
        *speed = l.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : l.link_speed;
    return l.link_status == RTE_ETH_LINK_UP;
}

unsigned nd_dpdk_port_hw(struct nd_dpdk *d, unsigned p, struct nd_dpdk_hw *out)
{
    struct nd_dpdk_port_info *info = &d->info[p];
    struct rte_eth_stats hw;
    struct xdp_statistics sum;
    unsigned n = 0, found = 0;

    if (rte_eth_stats_get(d->sh.port[p].port_id, &hw) != 0)
        return 0;
    out[n++] = (struct nd_dpdk_hw){"ipackets", hw.ipackets};
    out[n++] = (struct nd_dpdk_hw){"opackets", hw.opackets};
    out[n++] = (struct nd_dpdk_hw){"ibytes", hw.ibytes};
    out[n++] = (struct nd_dpdk_hw){"obytes", hw.obytes};
    out[n++] = (struct nd_dpdk_hw){"imissed", hw.imissed};
    out[n++] = (struct nd_dpdk_hw){"ierrors", hw.ierrors};
    out[n++] = (struct nd_dpdk_hw){"oerrors", hw.oerrors};
    out[n++] = (struct nd_dpdk_hw){"rx_nombuf", hw.rx_nombuf};
    switch (info->ksock) {
    case ND_DPDK_KSOCK_PACKET:
        for (unsigned q = 0; q < info->nrxq; q++) {
            struct tpacket_stats ts; /* TPACKET_V2's, cleared by each read */
            socklen_t len = sizeof(ts);

            if (info->kfd[q] >= 0 &&
                getsockopt(info->kfd[q], SOL_PACKET, PACKET_STATISTICS, &ts, &len) == 0)
                info->packet_drops += ts.tp_drops, found++;
        }
        if (found) /* none found: nothing to say, rather than a 0 that would mean no drop */
            out[n++] = (struct nd_dpdk_hw){"ring_drops", info->packet_drops};
        break;
    case ND_DPDK_KSOCK_XDP:
        memset(&sum, 0, sizeof(sum));
        for (unsigned q = 0; q < info->nrxq; q++) {
            struct xdp_statistics xs;
            socklen_t len = sizeof(xs);

            memset(&xs, 0, sizeof(xs)); /* a kernel before 5.9 fills the first three */
            if (info->kfd[q] < 0 || getsockopt(info->kfd[q], SOL_XDP, XDP_STATISTICS, &xs, &len))
                continue;
            found++;
            sum.rx_dropped += xs.rx_dropped;
            sum.rx_ring_full += xs.rx_ring_full;
            sum.rx_fill_ring_empty_descs += xs.rx_fill_ring_empty_descs;
            sum.rx_invalid_descs += xs.rx_invalid_descs;
            sum.tx_invalid_descs += xs.tx_invalid_descs;
        }
        if (!found)
            break;
        out[n++] = (struct nd_dpdk_hw){"xsk_rx_dropped", sum.rx_dropped};
        out[n++] = (struct nd_dpdk_hw){"xsk_rx_ring_full", sum.rx_ring_full};
        out[n++] = (struct nd_dpdk_hw){"xsk_fill_ring_empty", sum.rx_fill_ring_empty_descs};
        out[n++] = (struct nd_dpdk_hw){"xsk_rx_invalid_descs", sum.rx_invalid_descs};
        out[n++] = (struct nd_dpdk_hw){"xsk_tx_invalid_descs", sum.tx_invalid_descs};
        break;
    case ND_DPDK_KSOCK_NONE:
        break;
    }
    return n;
}

void nd_dpdk_pool_usage(const struct nd_dpdk *d, unsigned w, unsigned *size, unsigned *in_use)
{
    const struct rte_mempool *mp = w < d->nworkers ? d->pool[w] : NULL;

    *size = mp ? mp->size : 0;
    *in_use = mp ? rte_mempool_in_use_count(mp) : 0;
}

void nd_dpdk_stats_write(struct nd_dpdk *d, struct nd_dpdk_worker *const *w, unsigned nw, FILE *f)
{
    for (unsigned p = 0; p <= d->sh.nports; p++) {
        struct nd_net_stats s;
        struct nd_dpdk_hw hw[ND_DPDK_HW_MAX];
        unsigned slot = p < d->sh.nports ? p : ND_NET_MAX_PORTS, nhw;
        char pfx[16];

        memset(&s, 0, sizeof(s));
        for (unsigned i = 0; i < nw; i++)
            nd_net_stats_add(&s, &w[i]->net, slot);
        if (p < d->sh.nports)
            snprintf(pfx, sizeof(pfx), "port%u", p);
        else
            snprintf(pfx, sizeof(pfx), "noport");
        if (p < d->sh.nports) {
            fprintf(f,
                    "%s.rx_pkts %lu\n%s.rx_bytes %lu\n%s.tx_pkts %lu\n%s.tx_bytes %lu\n"
                    "%s.tx_bursts %lu\n",
                    pfx, s.rx_pkts, pfx, s.rx_bytes, pfx, s.tx_pkts, pfx, s.tx_bytes, pfx,
                    s.tx_bursts);
            nhw = nd_dpdk_port_hw(d, p, hw);
            for (unsigned k = 0; k < nhw; k++)
                fprintf(f, "%s.hw_%s %lu\n", pfx, hw[k].name, hw[k].value);
        }
        for (unsigned i = 0; i < ND_NET_DROP_MAX; i++)
            if (p < d->sh.nports || s.drop[i])
                fprintf(f, "%s.drop.%s %lu\n", pfx, nd_net_drop_name(i), s.drop[i]);
        for (unsigned i = 0; i < ND_NET_EVENT_MAX && p < d->sh.nports; i++)
            fprintf(f, "%s.%s %lu\n", pfx, nd_net_event_name(i), s.ev[i]);
    }
}
