/*
 * The dpdk { } configuration block as plain C: EAL arguments, ports with their IPv4 address,
 * static routes and fault injection. The Lua loader extracts the values and feeds them in
 * through the nd_dpdk_conf_* calls below; each call checks what it can alone, and
 * nd_dpdk_conf_validate() checks the whole (overlapping subnets, gateways that no port reaches,
 * PCI devices with --no-pci). Nothing here needs DPDK or allocates: the struct is fixed-size.
 *
 * Errors: each call returns 0, or -1 with a one-line message in err (errlen bytes, may be 0),
 * worded to follow "dpdk: ports[2]: " or similar, as the loader prints it at the right line.
 */
#ifndef NODUS_DPDK_NET_CONF_H
#define NODUS_DPDK_NET_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ND_DPDK_MAX_ARGS 32
#define ND_DPDK_ARG_LEN 128
#define ND_DPDK_MAX_PORTS 8
#define ND_DPDK_DEV_LEN 256
#define ND_DPDK_MAX_ROUTES 64

struct nd_dpdk_port_conf {
    char dev[ND_DPDK_DEV_LEN]; /* "net_af_packet0,iface=m0" (a vdev) or "0000:00:04.0" (PCI) */
    bool vdev;                 /* dev names a virtual device: passed as --vdev, else as -a */
    uint32_t ip;               /* host byte order */
    uint8_t prefix;            /* 1..32 */
};

struct nd_dpdk_route_conf {
    uint32_t dst; /* host byte order, host bits zero */
    uint8_t prefix;
    uint32_t via; /* gateway, on a port's connected subnet */
};

struct nd_dpdk_fault_conf {
    double drop, duplicate, reorder; /* probabilities per frame, each in [0, 1] */
    uint64_t seed;                   /* 0: seeded from the clock at start */
};

struct nd_dpdk_conf {
    char args[ND_DPDK_MAX_ARGS][ND_DPDK_ARG_LEN];
    unsigned nargs;
    struct nd_dpdk_port_conf ports[ND_DPDK_MAX_PORTS];
    unsigned nports;
    struct nd_dpdk_route_conf routes[ND_DPDK_MAX_ROUTES];
    unsigned nroutes;
    struct nd_dpdk_fault_conf fault;
};

void nd_dpdk_conf_init(struct nd_dpdk_conf *c);
/* One extra EAL argument ("--in-memory", "-m", "256"...). */
int nd_dpdk_conf_add_arg(struct nd_dpdk_conf *c, const char *arg, char *err, size_t errlen);
/* A port: dev as DPDK names it, ip as "A.B.C.D/LEN". */
int nd_dpdk_conf_add_port(struct nd_dpdk_conf *c, const char *dev, const char *ip, char *err,
                          size_t errlen);
/* A static route: dst "A.B.C.D/LEN" (host bits zero, 0.0.0.0/0 for the default), via "A.B.C.D". */
int nd_dpdk_conf_add_route(struct nd_dpdk_conf *c, const char *dst, const char *via, char *err,
                           size_t errlen);
/* fault.<key> = v: "drop", "duplicate", "reorder" (probabilities) or "seed" (an integer >= 0). */
int nd_dpdk_conf_set_fault(struct nd_dpdk_conf *c, const char *key, double v, char *err,
                           size_t errlen);
/* Checks the whole block (call once everything is added). */
int nd_dpdk_conf_validate(const struct nd_dpdk_conf *c, char *err, size_t errlen);

/* "A.B.C.D" to host order: 0 or -1. */
int nd_ipv4_parse(const char *s, uint32_t *ip);
/* "A.B.C.D/LEN" (LEN 0..32; "A.B.C.D" alone means /32): 0 or -1. */
int nd_ipv4_parse_cidr(const char *s, uint32_t *ip, uint8_t *prefix);
static inline uint32_t nd_ipv4_mask(uint8_t prefix)
{
    return prefix ? ~(uint32_t)0 << (32 - prefix) : 0;
}
/* Host-order address as text into buf (at least 16 bytes); returns buf. */
char *nd_ipv4_str(uint32_t ip, char *buf);

/* The EAL argument vector for c: argv[0] = prog, the args, then --vdev / -a for each port
 * (a net_af_xdp device gets ",busy_budget=0" unless it sets busy_budget). Pointers go into c
 * and into store (which must outlive argv). Returns argc, or -1 when argv_max is too small. */
struct nd_dpdk_argv_store {
    char opt[ND_DPDK_MAX_PORTS][ND_DPDK_DEV_LEN + 24];
};
int nd_dpdk_conf_argv(const struct nd_dpdk_conf *c, const char *prog,
                      struct nd_dpdk_argv_store *store, char **argv, int argv_max);

#endif
