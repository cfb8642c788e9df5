/*
 * nd-netd: the packet path alone on DPDK ports, for the namespace tests until the core runs
 * it (node.io = "dpdk"). One worker on the main lcore: answers ARP and ICMP echo, sends ICMP
 * unreachables, echoes UDP on the given ports, injects the configured faults, and writes its
 * counters to a file.
 *
 * usage: nd-netd [-p DEV@IP/LEN]... [-r DST/LEN@VIA]... [-f drop=P,duplicate=P,reorder=P,seed=N]
 *                [-u PORT]... [-s STATS_FILE] [-t SECONDS] -- EAL ARGS...
 * Prints "ready" once the ports are up; exits on SIGINT/SIGTERM or after -t seconds.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "port.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void echo(struct nd_udp_sock *s, uint32_t src, uint16_t sport, uint32_t dst,
                 const uint8_t *data, uint32_t len)
{
    (void)dst;
    nd_udp_sendto(s, src, sport, data, len);
}

static void write_stats(struct nd_dpdk *d, struct nd_dpdk_worker *w, const char *path)
{
    char tmp[4096];
    FILE *f;

    if (!path)
        return;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (!(f = fopen(tmp, "w")))
        return;
    nd_dpdk_stats_write(d, &w, 1, f);
    if (fclose(f) == 0)
        rename(tmp, path);
}

static void usage(void)
{
    fprintf(stderr, "usage: nd-netd [-p DEV@IP/LEN]... [-r DST/LEN@VIA]... "
                    "[-f drop=P,duplicate=P,reorder=P,seed=N] [-u PORT]... [-s STATS] "
                    "[-t SECONDS] -- EAL ARGS...\n");
    exit(2);
}

static char *split_at(char *s)
{
    char *at = strrchr(s, '@');

    if (!at)
        usage();
    *at = '\0';
    return at + 1;
}

int main(int argc, char **argv)
{
    static struct nd_dpdk_conf conf;
    static struct nd_dpdk d;
    static struct nd_dpdk_worker w;
    static struct nd_udp_sock socks[8];
    unsigned nudp = 0, idle = 0;
    uint16_t udp_ports[8];
    const char *stats = NULL;
    char err[256];
    uint64_t deadline = 0, next_stats;
    int opt;

    nd_dpdk_conf_init(&conf);
    while ((opt = getopt(argc, argv, "p:r:f:u:s:t:")) != -1) {
        char *v;

        switch (opt) {
        case 'p':
            v = split_at(optarg);
            if (nd_dpdk_conf_add_port(&conf, optarg, v, err, sizeof(err)) < 0)
                goto conf_err;
            break;
        case 'r':
            v = split_at(optarg);
            if (nd_dpdk_conf_add_route(&conf, optarg, v, err, sizeof(err)) < 0)
                goto conf_err;
            break;
        case 'f':
            for (char *kv = strtok(optarg, ","); kv; kv = strtok(NULL, ",")) {
                char *eq = strchr(kv, '=');

                if (!eq)
                    usage();
                *eq = '\0';
                if (nd_dpdk_conf_set_fault(&conf, kv, strtod(eq + 1, NULL), err, sizeof(err)) < 0)
                    goto conf_err;
            }
            break;
        case 'u':
            if (nudp >= 8 || atoi(optarg) <= 0 || atoi(optarg) > 65535)
                usage();
            udp_ports[nudp++] = (uint16_t)atoi(optarg);
            break;
        case 's':
            stats = optarg;
            break;
        case 't':
            deadline = now_ms() + (uint64_t)atoi(optarg) * 1000;
            break;
        default:
            usage();
        }
    }
    for (int i = optind; i < argc; i++)
        if (nd_dpdk_conf_add_arg(&conf, argv[i], err, sizeof(err)) < 0)
            goto conf_err;
    if (nd_dpdk_conf_validate(&conf, err, sizeof(err)) < 0)
        goto conf_err;

    if (nd_dpdk_start(&d, &conf, 1, err, sizeof(err)) < 0) {
        fprintf(stderr, "nd-netd: %s\n", err);
        return 3;
    }
    nd_dpdk_worker_init(&d, &w, 0, now_ms());
    for (unsigned i = 0; i < nudp; i++) {
        socks[i].recv = echo;
        if (nd_udp_bind(&w.net, &socks[i], 0, udp_ports[i]) < 0) {
            fprintf(stderr, "nd-netd: UDP port %u: cannot bind\n", udp_ports[i]);
            return 1;
        }
    }
    for (unsigned i = 0; i < d.sh.nports; i++) {
        const struct nd_dpdk_port_info *in = &d.info[i];
        const struct nd_net_port *p = &d.sh.port[i];
        char mac[RTE_ETHER_ADDR_FMT_SIZE], ip[16];
        uint32_t speed = 0;
        bool up = nd_dpdk_link(&d, i, &speed);

        rte_ether_format_addr(mac, sizeof(mac), &p->mac);
        printf("port %u: %s (%s) mac %s ip %s/%u mtu %u queues rx %u/%u tx %u/%u steering %s "
               "link %s %u Mbps tx-csum ipv4 %s udp %s tcp %s rx-csum %s\n",
               i, in->name, in->driver, mac, nd_ipv4_str(p->ip, ip), p->prefix, p->mtu, in->nrxq,
               in->max_rxq, in->ntxq, in->max_txq, nd_dpdk_steer_name(in->steer),
               up ? "up" : "down", speed, p->tx_ol & ND_NET_OL_IPV4_CKSUM ? "hw" : "sw",
               p->tx_ol & ND_NET_OL_UDP_CKSUM ? "hw" : "sw",
               p->tx_ol & ND_NET_OL_TCP_CKSUM ? "hw" : "sw", in->rx_offloads ? "hw" : "sw");
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    nd_net_announce(&w.net);
    printf("ready\n");
    fflush(stdout);

    next_stats = now_ms() + 1000;
    while (!stop) {
        uint64_t now = now_ms();

        if (nd_dpdk_poll(&w, now))
            idle = 0;
        else if (++idle > 256)
            usleep(50); /* a test program on shared cores: don't spin when nothing comes */
        if (now >= next_stats) {
            write_stats(&d, &w, stats);
            next_stats = now + 1000;
        }
        if (deadline && now >= deadline)
            break;
    }
    write_stats(&d, &w, stats);
    for (unsigned i = 0; i < nudp; i++)
        nd_udp_unbind(&socks[i]);
    nd_dpdk_worker_fini(&w);
    nd_dpdk_stop(&d);
    printf("stopped\n");
    return 0;

conf_err:
    fprintf(stderr, "nd-netd: %s\n", err);
    return 2;
}
