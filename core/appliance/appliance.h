/*
 * The appliance: nodus as PID 1 of its own VM image (init.c), the kernel command line it reads
 * (bootcfg.c), and PCI NIC binding for DPDK, at boot and as `nodus nic` on a host (nic.c).
 * See docs/appliance.md.
 */
#ifndef NODUS_APPLIANCE_H
#define NODUS_APPLIANCE_H

#include <stdbool.h>
#include <stddef.h>

/* ---- init (init.c) ------------------------------------------------------------------------ */

/* Whether this process is the appliance's init: `nodus init`, or PID 1 started as ".../init"
 * (as the kernel starts /init; PID 1 of a container running `nodus run` stays a node). */
bool nd_init_wanted(int argc, char **argv);
/* PID 1: mounts, modules, hugepages, configuration, NICs, then runs `nodus run` as its child
 * and powers the machine off (or reboots) when that ends. Never returns when PID is 1; refuses
 * with status 2 otherwise. */
int nd_init_main(int argc, char **argv);

/* For `nodus run` under init: tells init that the node serves (writes to the descriptor in
 * $NODUS_READY_FD, once). Does nothing outside the appliance. */
void nd_init_notify_ready(void);

/* ---- the kernel command line (bootcfg.c) ---------------------------------------------------- */

enum nd_boot_on_error { ND_BOOT_POWEROFF, ND_BOOT_REBOOT };

struct nd_boot_opts {
    char *config; /* nodus.config= decoded (malloc'd, NUL-terminated), or NULL */
    size_t config_len;
    bool config_bad;                /* nodus.config= was given but could not be decoded */
    enum nd_boot_on_error on_error; /* nodus.on_error=poweroff|reboot (default poweroff) */
    long hugepages;                 /* nodus.hugepages=N (2 MiB pages), -1: not given */
    bool debug;                     /* nodus.debug: debug logging in init and the node */
};

/* Parses a kernel command line (as /proc/cmdline shows it: words split on blanks, double quotes
 * group blanks into a word and are removed). nodus.config= is Lua text, or "base64:" and the
 * standard base64 of it. Returns the number of problems found (0: none), the first one's message
 * in err; what could be parsed is still filled in. Free with nd_boot_opts_free. */
int nd_boot_parse(const char *cmdline, struct nd_boot_opts *o, char *err, size_t errlen);
void nd_boot_opts_free(struct nd_boot_opts *o);

/* ---- PCI NICs (nic.c) ------------------------------------------------------------------------ */

/* sysfs and procfs are read under $NODUS_SYSFS_ROOT and $NODUS_PROC_ROOT when set (tests). */

struct nd_nic {
    char addr[16];     /* "0000:00:04.0" */
    char driver[32];   /* bound driver, "" when none */
    char ifname[32];   /* the kernel's interface on it, "" when none */
    char override[32]; /* driver_override, "" when none */
    unsigned vendor, device;
    bool default_route; /* ifname carries the host's default route (IPv4 or IPv6) */
    bool iommu;         /* the device has an IOMMU group (vfio-pci can take it) */
};

#define ND_NIC_MAX 64

/* The PCI network devices (class 0x02), sorted by address. Returns how many (at most cap), or
 * -1 with err. */
int nd_nic_list(struct nd_nic *out, unsigned cap, char *err, size_t errlen);
/* One device by address ("0000:00:04.0" or "00:04.0"). 0, or -1 with err (absent, not a NIC). */
int nd_nic_get(const char *addr, struct nd_nic *nic, char *err, size_t errlen);
/* The driver DPDK should use for nic: "vfio-pci" when it has an IOMMU group and vfio-pci is
 * loaded, else "uio_pci_generic". */
const char *nd_nic_dpdk_driver(const struct nd_nic *nic);
/* Binds addr to driver (NULL: nd_nic_dpdk_driver) as dpdk-devbind.py does: driver_override,
 * unbind from the current driver, bind. Refuses a NIC whose interface carries the default route
 * unless force. Returns 1 if it was already bound to that driver, 0 when bound now, -1 with err. */
int nd_nic_bind(const char *addr, const char *driver, bool force, char *err, size_t errlen);
/* Before the PCI drivers load (the appliance's init): sets driver_override on every NIC that
 * has neither a driver nor an override yet, to vfio-pci when it has an IOMMU group, else
 * uio_pci_generic. The kernel then leaves it to that driver, which takes it when it loads,
 * instead of virtio-pci probing it first only to be unbound again. Returns how many, or -1 with
 * err. */
int nd_nic_reserve(char *err, size_t errlen);
/* Unbinds addr, clears driver_override and lets the kernel probe it again (its own driver takes
 * it back). Returns 1 if it had no driver, 0 when done, -1 with err. */
int nd_nic_unbind(const char *addr, char *err, size_t errlen);

/* `nodus nic list | bind PCI [--driver D] [--force] | unbind PCI` (argv after "nic"). */
int nd_nic_command(int argc, char **argv);

#endif
