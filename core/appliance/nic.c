/*
 * PCI network devices through sysfs: list them, hand them to a DPDK-capable driver
 * (uio_pci_generic or vfio-pci) and give them back, as dpdk-devbind.py does. Used by init at
 * boot for the ports mesh.lua names, and by `nodus nic` on a host.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance.h"

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

static const char *root(const char *env, const char *def)
{
    const char *r = getenv(env);

    return r && *r ? r : def;
}

/* PATH under the sysfs root: "bus/pci/devices/..." -> "/sys/bus/pci/devices/..." */
static void sys_path(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sys_path(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(out, len, "%s/", root("NODUS_SYSFS_ROOT", "/sys"));

    va_start(ap, fmt);
    if (n > 0 && (size_t)n < len)
        vsnprintf(out + n, len - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Copies s into out[len], cut to fit. */
static void copy(char *out, size_t len, const char *s)
{
    size_t n = strnlen(s, len - 1);

    memcpy(out, s, n);
    out[n] = '\0';
}

/* The first line of a small file, without its newline; -1 if it cannot be read. */
static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    int r = -1;

    if (!f)
        return -1;
    if (fgets(buf, (int)len, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        r = 0;
    }
    fclose(f);
    return r;
}

static int write_str(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC), e;
    ssize_t w;

    if (fd < 0)
        return -errno;
    w = write(fd, s, strlen(s));
    e = w < 0 ? -errno : 0;
    close(fd);
    return e;
}

/* The name a symlink points to, last component only ("" when it is not there). */
static void link_base(const char *path, char *out, size_t len)
{
    char t[512];
    ssize_t n = readlink(path, t, sizeof(t) - 1);
    const char *b;

    out[0] = '\0';
    if (n <= 0)
        return;
    t[n] = '\0';
    b = strrchr(t, '/');
    copy(out, len, b ? b + 1 : t);
}

/* "00:04.0" -> "0000:00:04.0"; checks the form DDDD:BB:SS.F (hex). */
static int norm_addr(const char *in, char out[16])
{
    unsigned dom = 0, bus, slot, fn;
    char tail;

    if (sscanf(in, "%x:%x:%x.%x%c", &dom, &bus, &slot, &fn, &tail) != 4) {
        dom = 0;
        if (sscanf(in, "%x:%x.%x%c", &bus, &slot, &fn, &tail) != 3)
            return -1;
    }
    if (dom > 0xffff || bus > 0xff || slot > 0x1f || fn > 7)
        return -1;
    snprintf(out, 16, "%04x:%02x:%02x.%x", dom, bus, slot, fn);
    return 0;
}

/* The kernel interface of a PCI NIC: DEV/net/NAME, or DEV/virtioN/net/NAME for virtio. */
static void find_ifname(const char *addr, char *out, size_t len)
{
    char path[512];
    struct dirent *e;
    DIR *d;

    out[0] = '\0';
    sys_path(path, sizeof(path), "bus/pci/devices/%s", addr);
    if (!(d = opendir(path)))
        return;
    while (!out[0] && (e = readdir(d))) {
        char sub[800];
        struct dirent *n;
        DIR *nd;

        if (strcmp(e->d_name, "net") && strncmp(e->d_name, "virtio", 6))
            continue;
        snprintf(sub, sizeof(sub), "%s/%s%s", path, e->d_name,
                 strcmp(e->d_name, "net") ? "/net" : "");
        if (!(nd = opendir(sub)))
            continue;
        while ((n = readdir(nd)))
            if (n->d_name[0] != '.') {
                copy(out, len, n->d_name);
                break;
            }
        closedir(nd);
    }
    closedir(d);
}

/* Whether ifname carries a default route: /proc/net/route (destination and mask 0) or
 * /proc/net/ipv6_route (::/0). */
static bool has_default_route(const char *ifname)
{
    char path[512], line[512];
    bool found = false;
    FILE *f;

    if (!ifname[0])
        return false;
    snprintf(path, sizeof(path), "%s/net/route", root("NODUS_PROC_ROOT", "/proc"));
    if ((f = fopen(path, "re"))) {
        while (!found && fgets(line, sizeof(line), f)) {
            char ifc[64], dst[16], gw[16], mask[16];
            unsigned flags;

            if (sscanf(line, "%63s %15s %15s %x %*s %*s %*s %15s", ifc, dst, gw, &flags, mask) ==
                    5 &&
                !strcmp(ifc, ifname) && !strcmp(dst, "00000000") && !strcmp(mask, "00000000") &&
                (flags & 1) /* RTF_UP */)
                found = true;
        }
        fclose(f);
    }
    snprintf(path, sizeof(path), "%s/net/ipv6_route", root("NODUS_PROC_ROOT", "/proc"));
    if (!found && (f = fopen(path, "re"))) {
        while (!found && fgets(line, sizeof(line), f)) {
            char dst[40], plen[4], ifc[64];

            if (sscanf(line, "%39s %3s %*s %*s %*s %*s %*s %*s %*s %63s", dst, plen, ifc) == 3 &&
                !strcmp(ifc, ifname) && !strcmp(plen, "00") &&
                !strcmp(dst, "00000000000000000000000000000000"))
                found = true;
        }
        fclose(f);
    }
    return found;
}

/* Fills nic from sysfs; 1 if addr is a PCI device but not a network one, -1 if absent. */
static int load(const char *addr, struct nd_nic *nic)
{
    char path[512], v[64];

    memset(nic, 0, sizeof(*nic));
    snprintf(nic->addr, sizeof(nic->addr), "%s", addr);
    sys_path(path, sizeof(path), "bus/pci/devices/%s/class", addr);
    if (read_line(path, v, sizeof(v)) < 0)
        return -1;
    if (strtoul(v, NULL, 16) >> 16 != 0x02)
        return 1;
    sys_path(path, sizeof(path), "bus/pci/devices/%s/vendor", addr);
    if (read_line(path, v, sizeof(v)) == 0)
        nic->vendor = (unsigned)strtoul(v, NULL, 16);
    sys_path(path, sizeof(path), "bus/pci/devices/%s/device", addr);
    if (read_line(path, v, sizeof(v)) == 0)
        nic->device = (unsigned)strtoul(v, NULL, 16);
    sys_path(path, sizeof(path), "bus/pci/devices/%s/driver", addr);
    link_base(path, nic->driver, sizeof(nic->driver));
    sys_path(path, sizeof(path), "bus/pci/devices/%s/iommu_group", addr);
    nic->iommu = access(path, F_OK) == 0;
    sys_path(path, sizeof(path), "bus/pci/devices/%s/driver_override", addr);
    if (read_line(path, v, sizeof(v)) == 0 && strcmp(v, "(null)"))
        copy(nic->override, sizeof(nic->override), v);
    find_ifname(addr, nic->ifname, sizeof(nic->ifname));
    nic->default_route = has_default_route(nic->ifname);
    return 0;
}

static int cmp_nic(const void *a, const void *b)
{
    return strcmp(((const struct nd_nic *)a)->addr, ((const struct nd_nic *)b)->addr);
}

int nd_nic_list(struct nd_nic *out, unsigned cap, char *err, size_t errlen)
{
    char path[512];
    struct dirent *e;
    unsigned n = 0;
    DIR *d;

    sys_path(path, sizeof(path), "bus/pci/devices");
    if (!(d = opendir(path)))
        return fail(err, errlen, "%s: %s (is sysfs mounted?)", path, strerror(errno));
    while (n < cap && (e = readdir(d)))
        if (e->d_name[0] != '.' && load(e->d_name, &out[n]) == 0)
            n++;
    closedir(d);
    qsort(out, n, sizeof(*out), cmp_nic);
    return (int)n;
}

int nd_nic_get(const char *addr, struct nd_nic *nic, char *err, size_t errlen)
{
    char a[16];
    int r;

    if (norm_addr(addr, a) < 0)
        return fail(err, errlen, "'%s' is not a PCI address (DDDD:BB:SS.F, e.g. 0000:00:04.0)",
                    addr);
    r = load(a, nic);
    if (r < 0)
        return fail(err, errlen, "no PCI device %s (nodus nic list shows the NICs)", a);
    if (r > 0)
        return fail(err, errlen, "PCI device %s is not a network device", a);
    return 0;
}

const char *nd_nic_dpdk_driver(const struct nd_nic *nic)
{
    char path[512];

    sys_path(path, sizeof(path), "bus/pci/drivers/vfio-pci");
    return nic->iommu && access(path, F_OK) == 0 ? "vfio-pci" : "uio_pci_generic";
}

int nd_nic_bind(const char *addr, const char *driver, bool force, char *err, size_t errlen)
{
    struct nd_nic nic;
    char path[512];
    int r;

    if (nd_nic_get(addr, &nic, err, errlen) < 0)
        return -1;
    if (!driver)
        driver = nd_nic_dpdk_driver(&nic);
    if (strcmp(driver, "vfio-pci") && strcmp(driver, "uio_pci_generic"))
        return fail(err, errlen, "driver '%s': use vfio-pci or uio_pci_generic", driver);
    if (!strcmp(nic.driver, driver))
        return 1;
    if (!strcmp(driver, "vfio-pci") && !nic.iommu)
        return fail(err, errlen,
                    "%s has no IOMMU group: enable the IOMMU (intel_iommu=on or amd_iommu=on on "
                    "the kernel command line) or use --driver uio_pci_generic",
                    nic.addr);
    if (nic.default_route && !force)
        return fail(err, errlen,
                    "%s is %s, which carries this host's default route: taking it would cut the "
                    "host off (--force to take it anyway)",
                    nic.addr, nic.ifname);
    sys_path(path, sizeof(path), "bus/pci/drivers/%s", driver);
    if (access(path, F_OK) < 0)
        return fail(err, errlen, "driver %s is not loaded (modprobe %s)", driver, driver);
    sys_path(path, sizeof(path), "bus/pci/devices/%s/driver_override", nic.addr);
    if ((r = write_str(path, driver)) < 0)
        return fail(err, errlen, "%s: %s", path, strerror(-r));
    if (nic.driver[0]) {
        sys_path(path, sizeof(path), "bus/pci/devices/%s/driver/unbind", nic.addr);
        if ((r = write_str(path, nic.addr)) < 0)
            return fail(err, errlen, "unbinding %s from %s: %s", nic.addr, nic.driver,
                        strerror(-r));
    }
    sys_path(path, sizeof(path), "bus/pci/drivers/%s/bind", driver);
    r = write_str(path, nic.addr);
    /* EBUSY/EEXIST: the kernel probed it through driver_override already */
    if (r < 0 && r != -EBUSY && r != -EEXIST)
        return fail(err, errlen, "binding %s to %s: %s%s", nic.addr, driver, strerror(-r),
                    r == -ENODEV || r == -EINVAL ? " (see the kernel log: dmesg)" : "");
    sys_path(path, sizeof(path), "bus/pci/devices/%s/driver", nic.addr);
    link_base(path, nic.driver, sizeof(nic.driver));
    if (strcmp(nic.driver, driver))
        return fail(err, errlen, "%s: bound to %s, not %s, after the bind (see dmesg)", nic.addr,
                    nic.driver[0] ? nic.driver : "no driver", driver);
    return 0;
}

int nd_nic_reserve(char *err, size_t errlen)
{
    struct nd_nic nics[ND_NIC_MAX];
    char path[512];
    int n = nd_nic_list(nics, ND_NIC_MAX, err, errlen), done = 0, r;

    for (int i = 0; i < n; i++) {
        const char *driver = nics[i].iommu ? "vfio-pci" : "uio_pci_generic";

        if (nics[i].driver[0] || nics[i].override[0])
            continue;
        sys_path(path, sizeof(path), "bus/pci/devices/%s/driver_override", nics[i].addr);
        if ((r = write_str(path, driver)) < 0)
            return fail(err, errlen, "%s: %s", path, strerror(-r));
        done++;
    }
    return n < 0 ? -1 : done;
}

int nd_nic_unbind(const char *addr, char *err, size_t errlen)
{
    struct nd_nic nic;
    char path[512];
    int r, had = 0;

    if (nd_nic_get(addr, &nic, err, errlen) < 0)
        return -1;
    if (nic.driver[0]) {
        had = 1;
        sys_path(path, sizeof(path), "bus/pci/devices/%s/driver/unbind", nic.addr);
        if ((r = write_str(path, nic.addr)) < 0)
            return fail(err, errlen, "unbinding %s from %s: %s", nic.addr, nic.driver,
                        strerror(-r));
    }
    if (nic.override[0]) {
        sys_path(path, sizeof(path), "bus/pci/devices/%s/driver_override", nic.addr);
        if ((r = write_str(path, "\n")) < 0)
            return fail(err, errlen, "%s: %s", path, strerror(-r));
    }
    sys_path(path, sizeof(path), "bus/pci/drivers_probe");
    if ((r = write_str(path, nic.addr)) < 0 && r != -ENODEV)
        return fail(err, errlen, "%s: %s", path, strerror(-r));
    return had ? 0 : 1;
}

/* ---- nodus nic ------------------------------------------------------------------------------ */

static int nic_usage(FILE *f, int code)
{
    fprintf(f, "usage: nodus nic list                       PCI network devices and their drivers\n"
               "       nodus nic bind PCI [--driver vfio-pci|uio_pci_generic] [--force]\n"
               "                                            hand a NIC to DPDK\n"
               "       nodus nic unbind PCI                 give it back to its kernel driver\n");
    return code;
}

static int nic_print(void)
{
    struct nd_nic nics[ND_NIC_MAX];
    char err[512];
    int n = nd_nic_list(nics, ND_NIC_MAX, err, sizeof(err)), i;

    if (n < 0) {
        fprintf(stderr, "nodus nic: %s\n", err);
        return 1;
    }
    printf("%-13s %-10s %-16s %-12s %s\n", "PCI", "ID", "DRIVER", "INTERFACE", "NOTES");
    for (i = 0; i < n; i++) {
        char id[16], notes[128] = "";

        snprintf(id, sizeof(id), "%04x:%04x", nics[i].vendor, nics[i].device);
        if (nics[i].default_route)
            strcat(notes, "default route; ");
        if (nics[i].iommu)
            strcat(notes, "iommu; ");
        if (nics[i].override[0])
            snprintf(notes + strlen(notes), sizeof(notes) - strlen(notes), "override %s; ",
                     nics[i].override);
        if (!strcmp(nics[i].driver, "uio_pci_generic") || !strcmp(nics[i].driver, "vfio-pci"))
            strcat(notes, "DPDK-ready; ");
        if (notes[0])
            notes[strlen(notes) - 2] = '\0';
        printf("%-13s %-10s %-16s %-12s %s\n", nics[i].addr, id,
               nics[i].driver[0] ? nics[i].driver : "-", nics[i].ifname[0] ? nics[i].ifname : "-",
               notes);
    }
    if (!n)
        printf("(no PCI network devices)\n");
    return 0;
}

int nd_nic_command(int argc, char **argv)
{
    const char *driver = NULL, *addr = NULL;
    bool force = false;
    char err[512];
    int i, r;

    if (argc < 1)
        return nic_usage(stderr, 2);
    if (!strcmp(argv[0], "list"))
        return argc == 1 ? nic_print() : nic_usage(stderr, 2);
    if (!strcmp(argv[0], "help") || !strcmp(argv[0], "--help"))
        return nic_usage(stdout, 0);
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--force"))
            force = true;
        else if (!strcmp(argv[i], "--driver") && i + 1 < argc)
            driver = argv[++i];
        else if (argv[i][0] != '-' && !addr)
            addr = argv[i];
        else
            return nic_usage(stderr, 2);
    }
    if (!addr)
        return nic_usage(stderr, 2);
    if (!strcmp(argv[0], "bind")) {
        if ((r = nd_nic_bind(addr, driver, force, err, sizeof(err))) < 0) {
            fprintf(stderr, "nodus nic bind: %s\n", err);
            return 1;
        }
        {
            struct nd_nic nic;

            if (nd_nic_get(addr, &nic, err, sizeof(err)) == 0)
                printf("%s: %s %s\n", nic.addr, r ? "already bound to" : "bound to", nic.driver);
        }
        return 0;
    }
    if (!strcmp(argv[0], "unbind") && !driver && !force) {
        if ((r = nd_nic_unbind(addr, err, sizeof(err))) < 0) {
            fprintf(stderr, "nodus nic unbind: %s\n", err);
            return 1;
        }
        printf("%s: %s\n", addr,
               r ? "had no driver; the kernel may probe it now"
                 : "unbound; its kernel driver may take it back");
        return 0;
    }
    return nic_usage(stderr, 2);
}
