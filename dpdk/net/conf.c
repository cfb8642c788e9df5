/* The dpdk { } block: parsing and validation of already-extracted values (see conf.h). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void nd_dpdk_conf_init(struct nd_dpdk_conf *c)
{
    memset(c, 0, sizeof(*c));
}

int nd_ipv4_parse(const char *s, uint32_t *ip)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned o = 0, digits = 0;

        while (*s >= '0' && *s <= '9') {
            if (digits && o == 0)
                return -1; /* no leading zeros: "010" is octal to inet_aton */
            o = o * 10 + (unsigned)(*s++ - '0');
            if (++digits > 3 || o > 255)
                return -1;
        }
        if (!digits)
            return -1;
        v = v << 8 | o;
        if (i < 3 && *s++ != '.')
            return -1;
    }
    if (*s)
        return -1;
    *ip = v;
    return 0;
}

int nd_ipv4_parse_cidr(const char *s, uint32_t *ip, uint8_t *prefix)
{
    char a[16];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    unsigned p = 0;

    if (n >= sizeof(a))
        return -1;
    memcpy(a, s, n);
    a[n] = '\0';
    if (nd_ipv4_parse(a, ip) < 0)
        return -1;
    if (!slash) {
        *prefix = 32;
        return 0;
    }
    s = slash + 1;
    if (!*s || strlen(s) > 2 || (s[0] == '0' && s[1]))
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        p = p * 10 + (unsigned)(*s - '0');
    }
    if (p > 32)
        return -1;
    *prefix = (uint8_t)p;
    return 0;
}

char *nd_ipv4_str(uint32_t ip, char *buf)
{
    snprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
    return buf;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if (!isgraph((unsigned char)*s))
            return false;
    return true;
}

int nd_dpdk_conf_add_arg(struct nd_dpdk_conf *c, const char *arg, char *err, size_t errlen)
{
    size_t n = strlen(arg);

    if (c->nargs >= ND_DPDK_MAX_ARGS)
        return fail(err, errlen, "args: more than %d EAL arguments", ND_DPDK_MAX_ARGS);
    if (n == 0 || n >= ND_DPDK_ARG_LEN)
        return fail(err, errlen, "args[%u]: must be 1 to %d characters", c->nargs + 1,
                    ND_DPDK_ARG_LEN - 1);
    memcpy(c->args[c->nargs++], arg, n + 1);
    return 0;
}

/* A PCI address as EAL takes it: [DOMAIN:]BUS:DEV.FN, hex digits. */
static bool pci_addr(const char *s)
{
    unsigned colons = 0, dots = 0;

    for (const char *p = s; *p; p++) {
        if (*p == ':')
            colons++;
        else if (*p == '.')
            dots++;
        else if (!isxdigit((unsigned char)*p))
            return false;
    }
    return (colons == 1 || colons == 2) && dots == 1;
}

int nd_dpdk_conf_add_port(struct nd_dpdk_conf *c, const char *dev, const char *ip, char *err,
                          size_t errlen)
{
    struct nd_dpdk_port_conf *p;
    unsigned i = c->nports + 1;
    size_t n = strlen(dev);
    char name[ND_DPDK_DEV_LEN];
    const char *comma = strchr(dev, ',');

    if (c->nports >= ND_DPDK_MAX_PORTS)
        return fail(err, errlen, "ports: more than %d ports", ND_DPDK_MAX_PORTS);
    p = &c->ports[c->nports];
    memset(p, 0, sizeof(*p));
    if (n == 0 || n >= ND_DPDK_DEV_LEN || !printable(dev))
        return fail(err, errlen,
                    "ports[%u]: 'dev' must be a device name of 1 to %d characters "
                    "without spaces",
                    i, ND_DPDK_DEV_LEN - 1);
    n = comma ? (size_t)(comma - dev) : n;
    memcpy(name, dev, n);
    name[n] = '\0';
    if (strncmp(name, "net_", 4) == 0 && name[4]) {
        p->vdev = true;
    } else if (!comma && pci_addr(name)) {
        p->vdev = false;
    } else {
        return fail(err, errlen,
                    "ports[%u]: 'dev' must be a virtual device (\"net_af_packet0,"
                    "iface=eth1\") or a PCI address (\"0000:00:04.0\"), not \"%s\"",
                    i, dev);
    }
    for (unsigned k = 0; k < c->nports; k++)
        if (strcmp(c->ports[k].dev, dev) == 0 ||
            (p->vdev && c->ports[k].vdev && strncmp(c->ports[k].dev, name, n) == 0 &&
             (c->ports[k].dev[n] == ',' || c->ports[k].dev[n] == '\0')))
            return fail(err, errlen, "ports[%u]: device %s is already ports[%u]", i, name, k + 1);
    if (nd_ipv4_parse_cidr(ip, &p->ip, &p->prefix) < 0 || !strchr(ip, '/'))
        return fail(err, errlen,
                    "ports[%u]: 'ip' must be an address with a prefix length "
                    "(\"198.18.0.2/24\"), not \"%s\"",
                    i, ip);
    if (p->prefix == 0)
        return fail(err, errlen, "ports[%u]: 'ip' prefix length must be 1 to 32", i);
    {
        uint32_t a = p->ip, m = nd_ipv4_mask(p->prefix);

        if (a == 0 || a >> 24 == 127 || a >> 28 == 14 || a >> 28 == 15 || a >> 24 == 0)
            return fail(err, errlen, "ports[%u]: %s is not a unicast host address", i, ip);
        if (p->prefix <= 30 && ((a & ~m) == 0 || (a & ~m) == ~m))
            return fail(err, errlen, "ports[%u]: %s is the %s address of its subnet", i, ip,
                        (a & ~m) == 0 ? "network" : "broadcast");
    }
    memcpy(p->dev, dev, strlen(dev) + 1);
    c->nports++;
    return 0;
}

int nd_dpdk_conf_add_route(struct nd_dpdk_conf *c, const char *dst, const char *via, char *err,
                           size_t errlen)
{
    struct nd_dpdk_route_conf *r;
    unsigned i = c->nroutes + 1;

    if (c->nroutes >= ND_DPDK_MAX_ROUTES)
        return fail(err, errlen, "routes: more than %d routes", ND_DPDK_MAX_ROUTES);
    r = &c->routes[c->nroutes];
    if (nd_ipv4_parse_cidr(dst, &r->dst, &r->prefix) < 0 || !strchr(dst, '/'))
        return fail(err, errlen,
                    "routes[%u]: 'dst' must be a subnet (\"10.0.0.0/8\", "
                    "\"0.0.0.0/0\"), not \"%s\"",
                    i, dst);
    if (r->dst & ~nd_ipv4_mask(r->prefix))
        return fail(err, errlen, "routes[%u]: 'dst' %s has host bits set", i, dst);
    if (nd_ipv4_parse(via, &r->via) < 0)
        return fail(err, errlen, "routes[%u]: 'via' must be an IPv4 address, not \"%s\"", i, via);
    for (unsigned k = 0; k < c->nroutes; k++)
        if (c->routes[k].dst == r->dst && c->routes[k].prefix == r->prefix)
            return fail(err, errlen, "routes[%u]: %s is already routes[%u]", i, dst, k + 1);
    c->nroutes++;
    return 0;
}

int nd_dpdk_conf_set_fault(struct nd_dpdk_conf *c, const char *key, double v, char *err,
                           size_t errlen)
{
    double *p = NULL;

    if (strcmp(key, "seed") == 0) {
        if (!(v >= 0 && v <= 9007199254740992.0) || v != (double)(uint64_t)v)
            return fail(err, errlen, "fault: 'seed' must be an integer >= 0");
        c->fault.seed = (uint64_t)v;
        return 0;
    }
    if (strcmp(key, "drop") == 0)
        p = &c->fault.drop;
    else if (strcmp(key, "duplicate") == 0)
        p = &c->fault.duplicate;
    else if (strcmp(key, "reorder") == 0)
        p = &c->fault.reorder;
    if (!p)
        return fail(err, errlen, "fault: unknown key '%s' (drop, duplicate, reorder, seed)", key);
    if (!(v >= 0 && v <= 1))
        return fail(err, errlen, "fault: '%s' must be a probability from 0 to 1", key);
    *p = v;
    return 0;
}

int nd_dpdk_conf_validate(const struct nd_dpdk_conf *c, char *err, size_t errlen)
{
    bool no_pci = false;

    if (c->nports == 0)
        return fail(err, errlen, "ports: at least one port is needed with node.io = \"dpdk\"");
    for (unsigned i = 0; i < c->nargs; i++)
        if (strcmp(c->args[i], "--no-pci") == 0)
            no_pci = true;
    for (unsigned i = 0; i < c->nports; i++) {
        const struct nd_dpdk_port_conf *p = &c->ports[i];

        if (!p->vdev && no_pci)
            return fail(err, errlen, "ports[%u]: PCI device %s, but args hold --no-pci", i + 1,
                        p->dev);
        for (unsigned k = 0; k < i; k++) {
            const struct nd_dpdk_port_conf *q = &c->ports[k];
            uint8_t pl = p->prefix < q->prefix ? p->prefix : q->prefix;

            if (((p->ip ^ q->ip) & nd_ipv4_mask(pl)) == 0)
                return fail(err, errlen, "ports[%u]: subnet %s/%u overlaps ports[%u]'s", i + 1,
                            nd_ipv4_str(p->ip, (char[16]){0}), p->prefix, k + 1);
        }
    }
    for (unsigned i = 0; i < c->nroutes; i++) {
        const struct nd_dpdk_route_conf *r = &c->routes[i];
        bool onlink = false;

        for (unsigned k = 0; k < c->nports; k++) {
            const struct nd_dpdk_port_conf *p = &c->ports[k];

            if (r->via == p->ip)
                return fail(err, errlen, "routes[%u]: 'via' %s is ports[%u]'s own address", i + 1,
                            nd_ipv4_str(r->via, (char[16]){0}), k + 1);
            if (((r->via ^ p->ip) & nd_ipv4_mask(p->prefix)) == 0)
                onlink = true;
        }
        if (!onlink)
            return fail(err, errlen, "routes[%u]: 'via' %s is on no port's subnet", i + 1,
                        nd_ipv4_str(r->via, (char[16]){0}));
    }
    return 0;
}

/* net_af_xdp's PMD busy-polls unless told otherwise (busy_budget=64: a recvfrom() whenever an RX
 * ring is empty, which request-sized traffic makes frequent): without it nodus served 14% more
 * requests for 11% less CPU each on veths, and moved bulk as fast (docs/dpdk.md, "net_af_xdp").
 * So it is off unless the device string sets it. */
static bool xdp_default_budget(const char *dev)
{
    return !strncmp(dev, "net_af_xdp", strlen("net_af_xdp")) && !strstr(dev, ",busy_budget=");
}

int nd_dpdk_conf_argv(const struct nd_dpdk_conf *c, const char *prog,
                      struct nd_dpdk_argv_store *store, char **argv, int argv_max)
{
    int n = 0;

    if (argv_max < (int)(1 + c->nargs + 2 * c->nports + 1))
        return -1;
    argv[n++] = (char *)prog;
    for (unsigned i = 0; i < c->nargs; i++)
        argv[n++] = (char *)c->args[i];
    for (unsigned i = 0; i < c->nports; i++) {
        if (c->ports[i].vdev) {
            snprintf(store->opt[i], sizeof(store->opt[i]), "--vdev=%s%s", c->ports[i].dev,
                     xdp_default_budget(c->ports[i].dev) ? ",busy_budget=0" : "");
            argv[n++] = store->opt[i];
        } else {
            argv[n++] = (char *)"-a";
            argv[n++] = (char *)c->ports[i].dev;
        }
    }
    argv[n] = NULL;
    return n;
}
