/*
 * nodus as PID 1 of the appliance (docs/appliance.md). In order: the kernel file systems and
 * the console; the kernel command line; the PCI NICs set aside for DPDK's drivers; the kernel
 * modules; the configuration (a config disk, else nodus.config= on the command line, else the
 * one baked into the image), validated here so that errors show as file:line on the console;
 * the PCI NICs its DPDK ports name, on uio_pci_generic or vfio-pci; the hugepages it needs.
 * Then `nodus run` runs as init's child, and init
 * stays a supervisor: it reaps orphans, turns the ACPI power button, SIGTERM, SIGPWR and
 * Ctrl-Alt-Del into a drain of the node, and when the node is gone powers the machine off (or
 * reboots it, nodus.on_error=reboot, after a failure). Init never exits: a kernel panic is not
 * an error report.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <linux/reboot.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../config.h"
#include "../log.h"
#include "../../dpdk/net/conf.h"
#include "../../plugins/mtls/node.h"
#include "appliance.h"

#define MODULES_DIR "/lib/modules"
#define CONFIG_MNT "/run/nodus/config"
#define CMDLINE_CONFIG "/run/nodus/mesh.lua"
#define BAKED_CONFIG "/etc/nodus/mesh.lua"
#define HUGEPAGES_NR "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
#define HUGEPAGES_FREE "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"
#define READY_ENV "NODUS_READY_FD"
#define MAX_INPUTS 8

struct init {
    struct nd_boot_opts opts;
    char config[256];    /* the configuration file chosen */
    const char *source;  /* where it came from, for the log */
    bool config_mounted; /* CONFIG_MNT holds a config disk */
    uint32_t drain_ms;   /* node.drain_timeout of the configuration */
    unsigned workers;    /* node.workers of the configuration */
    bool dpdk;           /* the configuration's io is "dpdk" */
    pid_t node;          /* `nodus run`, 0 when not running */
    bool stopping;       /* a shutdown was asked for: the node's exit is expected */
    uint64_t stop_deadline_ms;
    int ready_fd;           /* read end of the node's ready pipe, -1 after */
    int inputs[MAX_INPUTS]; /* evdev devices with a power key */
    unsigned ninputs;
};

/* Milliseconds since the kernel started (CLOCK_BOOTTIME). */
static uint64_t boot_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the end: power off or reboot, never return ---------------------------------------------- */

static void __attribute__((noreturn)) halt(struct init *in, bool failed)
{
    bool reboot_it = failed && in->opts.on_error == ND_BOOT_REBOOT;

    nd_info("init: %s (%.1f s after the kernel started)", reboot_it ? "rebooting" : "powering off",
            (double)boot_ms() / 1000);
    sync();
    if (in->config_mounted)
        umount2(CONFIG_MNT, MNT_DETACH);
    reboot(reboot_it ? RB_AUTOBOOT : RB_POWER_OFF);
    /* only without CAP_SYS_BOOT or on a kernel without power-off support */
    nd_err("init: reboot() failed: %s; halting here", strerror(errno));
    for (;;)
        pause();
}

/* ---- file systems and console ---------------------------------------------------------------- */

static void mount_one(const char *src, const char *dst, const char *type, unsigned long flags,
                      const char *data)
{
    mkdir(dst, 0755);
    if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY)
        nd_err("init: mount %s on %s: %s", type, dst, strerror(errno));
}

static void mount_kernel_fs(void)
{
    mount_one("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_one("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    mount_one("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m");
    mkdir("/run/nodus", 0755);
}

/* stdin, stdout and stderr on /dev/console (the kernel did it if the image has the node). */
static void console(void)
{
    int fd;

    if (fcntl(2, F_GETFD) >= 0 && fcntl(1, F_GETFD) >= 0)
        return;
    fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd < 0)
        return;
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2)
        close(fd);
}

/* ---- kernel modules ------------------------------------------------------------------------- */

static bool have_iommu(void)
{
    DIR *d = opendir("/sys/kernel/iommu_groups");
    struct dirent *e;
    bool any = false;

    while (d && !any && (e = readdir(d)))
        any = e->d_name[0] != '.';
    if (d)
        closedir(d);
    return any;
}

/* Every PCI NIC is DPDK's (the image has no kernel network driver): driver_override before the
 * modules load keeps virtio-pci from probing the NICs only for them to be unbound again later,
 * and uio_pci_generic (or vfio-pci) takes them as it loads. */
static void reserve_nics(void)
{
    char err[512];
    int n = nd_nic_reserve(err, sizeof(err));

    if (n < 0)
        nd_err("init: reserving the NICs for DPDK: %s (they are bound one by one later)", err);
    else
        nd_info("init: %d PCI NIC(s) reserved for DPDK (driver_override)", n);
}

/* MODULES_DIR/modules.load, one "NAME [iommu]" per line, each after its dependencies. A module
 * that fails is reported with what it is needed for; the rest still load. */
static void load_modules(void)
{
    FILE *f = fopen(MODULES_DIR "/modules.load", "re");
    bool iommu = have_iommu();
    char line[128];
    unsigned ok = 0, failed = 0;

    if (!f) {
        nd_warn("init: %s/modules.load: %s (an image without modules?)", MODULES_DIR,
                strerror(errno));
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        char name[64], tag[16] = "", path[128];
        int fd;

        if (sscanf(line, "%63s %15s", name, tag) < 1)
            continue;
        if (!strcmp(tag, "iommu") && !iommu)
            continue;
        snprintf(path, sizeof(path), "%s/%s.ko", MODULES_DIR, name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)) {
            nd_err("init: module %s: %s: disks, NICs for DPDK or the power button that need it "
                   "will be missing (is the image built for this kernel?)",
                   name, strerror(errno));
            failed++;
        } else {
            ok++;
        }
        if (fd >= 0)
            close(fd);
    }
    fclose(f);
    nd_info("init: %u kernel module(s) loaded%s%s", ok, failed ? ", failures above" : "",
            iommu ? " (IOMMU present: vfio-pci)" : "");
}

/* ---- hugepages ------------------------------------------------------------------------------ */

static long read_long(const char *path)
{
    char buf[32];
    FILE *f = fopen(path, "re");
    long v = -1;

    if (f && fgets(buf, sizeof(buf), f))
        v = strtol(buf, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* A /proc/meminfo field in kB, or -1. */
static long meminfo_kb(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "re");
    char line[128];
    size_t n = strlen(key);
    long v = -1;

    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, key, n) && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    if (f)
        fclose(f);
    return v;
}

/* What the node's DPDK needs, in 2 MiB pages: per worker its mbuf pool (ND_DPDK_MBUFS of 2 KiB
 * buffers, about 19 MiB) and its cache; once, EAL's heap, the control-plane rings and the PMDs'
 * queues. Measured: 11 pages in use with one worker and two virtio ports. */
#define HUGEPAGES_PER_WORKER 12
#define HUGEPAGES_BASE 8

/* 2 MiB pages for DPDK: nodus.hugepages=N, else what the kernel reserved at boot (hugepages=N),
 * else what the configuration needs (none without io = "dpdk"). Reserving is not free: the
 * kernel zeroes every page it hands out (init_on_alloc; 0.5-0.8 s for 116 MiB under TCG). */
static void hugepages(const struct init *in)
{
    long have = read_long(HUGEPAGES_NR), want = in->opts.hugepages, total = meminfo_kb("MemTotal");
    FILE *f;

    if (want < 0 && have <= 0 && !in->dpdk) {
        nd_debug("init: no hugepages reserved: the configuration does not use DPDK");
        return;
    }
    mount_one("hugetlbfs", "/dev/hugepages", "hugetlbfs", MS_NOSUID | MS_NODEV, "pagesize=2M");
    if (have < 0) {
        nd_err("init: %s: no 2 MiB hugepages in this kernel: DPDK ports need them", HUGEPAGES_NR);
        return;
    }
    if (want < 0)
        want = have > 0 ? have : HUGEPAGES_PER_WORKER * (long)in->workers + HUGEPAGES_BASE;
    if (want != have && (f = fopen(HUGEPAGES_NR, "we"))) {
        fprintf(f, "%ld\n", want);
        fclose(f);
        have = read_long(HUGEPAGES_NR);
    }
    if (have == 0)
        nd_err("init: no hugepages (nodus.hugepages=0, or no memory for them): DPDK cannot "
               "drive PCI NICs without them; give the VM memory or boot with nodus.hugepages=N");
    else if (have < want)
        nd_warn("init: hugepages: %ld of the %ld asked for (%ld MiB of memory): give the VM more "
                "memory or ask for fewer (nodus.hugepages=N)",
                have, want, total / 1024);
    else
        nd_info("init: hugepages: %ld x 2 MiB on /dev/hugepages", have);
}

/* ---- configuration -------------------------------------------------------------------------- */

/* What a whole disk holds, from its first sectors: "ext4" (ext2/3/4), "vfat", "iso9660" or
 * NULL. */
static const char *fs_type(const char *dev)
{
    unsigned char b[0x8006];
    int fd = open(dev, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return NULL;
    n = pread(fd, b, sizeof(b), 0);
    close(fd);
    if (n >= 0x43a && b[0x438] == 0x53 && b[0x439] == 0xef)
        return "ext4";
    if (n >= 0x5a && b[510] == 0x55 && b[511] == 0xaa &&
        (!memcmp(b + 0x36, "FAT", 3) || !memcmp(b + 0x52, "FAT32", 5)))
        return "vfat";
    if (n >= 0x8006 && !memcmp(b + 0x8001, "CD001", 5))
        return "iso9660";
    return NULL;
}

/* The first whole disk (not a partition) holding a file system with mesh.lua at its root,
 * mounted read-only on CONFIG_MNT. A disk with a file system but no mesh.lua, or one that
 * does not mount, is reported and skipped. 1 if found. */
static int config_disk(struct init *in)
{
    DIR *d = opendir("/sys/class/block");
    struct dirent *e;
    int found = 0;

    if (!d)
        return 0;
    mkdir(CONFIG_MNT, 0755);
    while (!found && (e = readdir(d))) {
        char path[300], dev[300];
        const char *type;

        if (e->d_name[0] == '.' || !strncmp(e->d_name, "loop", 4) || !strncmp(e->d_name, "ram", 3))
            continue;
        snprintf(path, sizeof(path), "/sys/class/block/%s/partition", e->d_name);
        if (access(path, F_OK) == 0)
            continue;
        snprintf(dev, sizeof(dev), "/dev/%s", e->d_name);
        if (!(type = fs_type(dev)))
            continue;
        if (strcmp(type, "ext4")) {
            nd_err("init: disk %s holds %s: this image reads config disks as ext4 only "
                   "(images/mkconfig.sh makes one)",
                   dev, type);
            continue;
        }
        if (mount(dev, CONFIG_MNT, type, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
            nd_err("init: config disk %s (%s): cannot mount it: %s; trying the next source "
                   "(rebuild it with images/mkconfig.sh)",
                   dev, type, strerror(errno));
            continue;
        }
        if (access(CONFIG_MNT "/mesh.lua", R_OK) < 0) {
            nd_err("init: disk %s (%s) has no readable mesh.lua at its root: %s; skipped", dev,
                   type, strerror(errno));
            umount2(CONFIG_MNT, MNT_DETACH);
            continue;
        }
        in->config_mounted = true;
        snprintf(in->config, sizeof(in->config), "%s", CONFIG_MNT "/mesh.lua");
        nd_info("init: configuration from the config disk %s", dev);
        in->source = "config disk";
        found = 1;
    }
    closedir(d);
    return found;
}

/* Chooses the configuration: the config disk, nodus.config=, the baked one. 0, or -1 (none). */
static int choose_config(struct init *in)
{
    if (config_disk(in))
        return 0;
    if (in->opts.config) {
        int fd = open(CMDLINE_CONFIG, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd < 0 ||
            write(fd, in->opts.config, in->opts.config_len) != (ssize_t)in->opts.config_len) {
            nd_err("init: %s: %s", CMDLINE_CONFIG, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        close(fd);
        snprintf(in->config, sizeof(in->config), "%s", CMDLINE_CONFIG);
        in->source = "kernel command line (nodus.config=)";
        nd_info("init: configuration from the kernel command line (%zu bytes)",
                in->opts.config_len);
        return 0;
    }
    if (access(BAKED_CONFIG, R_OK) == 0) {
        snprintf(in->config, sizeof(in->config), "%s", BAKED_CONFIG);
        in->source = "image";
        nd_info("init: configuration baked into the image (%s)", BAKED_CONFIG);
        return 0;
    }
    nd_err("init: no configuration: attach a config disk with mesh.lua (images/mkconfig.sh), "
           "or boot with nodus.config=\"...\" or nodus.config=base64:..., or build the image "
           "with --config");
    return -1;
}

/* Loads the configuration as `nodus check` does, errors on the console as file:line; binds the
 * PCI NICs its DPDK ports name. 0, or -1: the configuration is unusable. */
static int check_config(struct init *in)
{
    struct nd_errors errs = {0};
    struct nd_config *cfg;
    char err[512];
    char *slash = strrchr(in->config, '/');

    /* relative paths in it (certificates) are relative to its directory */
    if (slash) {
        *slash = '\0';
        if (chdir(in->config) < 0)
            nd_warn("init: chdir %s: %s", in->config, strerror(errno));
        *slash = '/';
    }
    cfg = nd_config_load(in->config, &errs);
    if (!cfg) {
        for (unsigned i = 0; i < errs.n; i++)
            nd_err("%s", errs.msg[i]);
        nd_errors_clear(&errs);
        nd_err("init: the configuration from the %s is invalid (errors above): fix it and boot "
               "again",
               in->source);
        return -1;
    }
    if (nd_identity_check(cfg, err, sizeof(err)) < 0) {
        nd_err("%s", err);
        nd_err("init: the identity { } of the configuration from the %s is unusable", in->source);
        nd_config_free(cfg);
        return -1;
    }
    in->drain_ms = cfg->node.drain_timeout_ms;
    in->workers = cfg->node.workers;
    in->dpdk = cfg->node.io == ND_IO_DPDK;
    if (cfg->node.io == ND_IO_DPDK)
        for (unsigned i = 0; i < cfg->dpdk.net->nports; i++) {
            const struct nd_dpdk_port_conf *p = &cfg->dpdk.net->ports[i];
            struct nd_nic nic;
            int r;

            if (p->vdev)
                continue;
            r = nd_nic_bind(p->dev, NULL, true, err, sizeof(err));
            if (r < 0) {
                nd_err("init: ports[%u] (%s): %s: attach the NIC to the VM or change ports[].dev "
                       "(the node will not start without it)",
                       i + 1, p->dev, err);
                continue;
            }
            if (nd_nic_get(p->dev, &nic, err, sizeof(err)) == 0)
                nd_info("init: ports[%u]: NIC %s (%04x:%04x) %s %s", i + 1, nic.addr, nic.vendor,
                        nic.device, r ? "on" : "bound to", nic.driver);
        }
    nd_config_free(cfg);
    return 0;
}

/* ---- the node and the power button ---------------------------------------------------------- */

static void open_power_buttons(struct init *in)
{
    DIR *d = opendir("/dev/input");
    struct dirent *e;

    while (d && in->ninputs < MAX_INPUTS && (e = readdir(d))) {
        unsigned long keys[KEY_MAX / (8 * sizeof(long)) + 1] = {0};
        char path[300], name[64] = "";
        int fd;

        if (strncmp(e->d_name, "event", 5))
            continue;
        snprintf(path, sizeof(path), "/dev/input/%s", e->d_name);
        if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
            continue;
        if (ioctl(fd, EVIOCGBIT(EV_KEY, sizeof(keys)), keys) < 0 ||
            !(keys[KEY_POWER / (8 * sizeof(long))] & (1UL << (KEY_POWER % (8 * sizeof(long)))))) {
            close(fd);
            continue;
        }
        ioctl(fd, EVIOCGNAME(sizeof(name) - 1), name);
        nd_info("init: power key on %s (%s)", path, name);
        in->inputs[in->ninputs++] = fd;
    }
    if (d)
        closedir(d);
    if (!in->ninputs)
        nd_warn("init: no power button (ACPI button driver missing?): SIGTERM or Ctrl-Alt-Del "
                "still stop the node");
}

/* Starts `nodus run CONFIG` with the ready pipe. 0, or -1. */
static int start_node(struct init *in)
{
    int p[2];
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0) {
        nd_err("init: pipe: %s", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        nd_err("init: fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        char fdnum[16];
        char *argv[] = {"nodus", "run", in->config, NULL};
        sigset_t none;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        setsid();
        fcntl(p[1], F_SETFD, 0);
        snprintf(fdnum, sizeof(fdnum), "%d", p[1]);
        setenv(READY_ENV, fdnum, 1);
        setenv("NODUS_LOG_CLOCK", "boot", 1);
        execv("/proc/self/exe", argv);
        fprintf(stderr, "init: exec nodus run: %s\n", strerror(errno));
        _exit(127);
    }
    close(p[1]);
    in->node = pid;
    in->ready_fd = p[0];
    nd_info("init: node started (pid %d) with the configuration from the %s", (int)pid, in->source);
    return 0;
}

static void ask_stop(struct init *in, const char *why)
{
    if (in->stopping)
        return;
    in->stopping = true;
    in->stop_deadline_ms = boot_ms() + in->drain_ms + 10000;
    nd_info("init: %s: draining the node (up to %u ms), then powering off", why, in->drain_ms);
    if (in->node)
        kill(in->node, SIGTERM);
}

static void on_ready(struct init *in)
{
    char c;
    long total = meminfo_kb("MemTotal"), avail = meminfo_kb("MemAvailable");
    long huge = read_long(HUGEPAGES_NR), huge_free = read_long(HUGEPAGES_FREE);

    if (read(in->ready_fd, &c, 1) == 1)
        nd_info("init: serving %.3f s after the kernel started; memory used %ld MiB of %ld MiB "
                "(MemTotal - MemAvailable, %ld MiB of it hugepages, %ld MiB of those in use)",
                (double)boot_ms() / 1000, (total - avail) / 1024, total / 1024, huge * 2,
                (huge - huge_free) * 2);
    close(in->ready_fd);
    in->ready_fd = -1;
}

/* Reaps every exited child (orphans re-parented to init, and the node). */
static void reap(struct init *in)
{
    int st;
    pid_t pid;

    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid != in->node)
            continue;
        in->node = 0;
        if (in->stopping && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            nd_info("init: node drained and stopped");
            halt(in, false);
        }
        if (WIFEXITED(st))
            nd_err("init: the node exited with status %d%s (see above)", WEXITSTATUS(st),
                   WEXITSTATUS(st) == 3 ? ": its DPDK ports could not start" : "");
        else
            nd_err("init: the node was killed by signal %d (%s)", WTERMSIG(st),
                   strsignal(WTERMSIG(st)));
        halt(in, !in->stopping);
    }
}

static void __attribute__((noreturn)) supervise(struct init *in, int sfd)
{
    int efd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};

    ev.data.fd = sfd;
    epoll_ctl(efd, EPOLL_CTL_ADD, sfd, &ev);
    if (in->ready_fd >= 0) {
        ev.data.fd = in->ready_fd;
        epoll_ctl(efd, EPOLL_CTL_ADD, in->ready_fd, &ev);
    }
    for (unsigned i = 0; i < in->ninputs; i++) {
        ev.data.fd = in->inputs[i];
        epoll_ctl(efd, EPOLL_CTL_ADD, in->inputs[i], &ev);
    }
    for (;;) {
        struct epoll_event evs[8];
        int n = epoll_wait(efd, evs, 8, 1000);

        for (int k = 0; k < n; k++) {
            int fd = evs[k].data.fd;

            if (fd == sfd) {
                struct signalfd_siginfo si;

                while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                    if (si.ssi_signo == SIGCHLD)
                        reap(in);
                    else if (si.ssi_signo == SIGHUP && in->node)
                        kill(in->node, SIGHUP); /* reload */
                    else if (si.ssi_signo == SIGINT)
                        ask_stop(in, "Ctrl-Alt-Del");
                    else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGPWR)
                        ask_stop(in, strsignal((int)si.ssi_signo));
                }
            } else if (fd == in->ready_fd) {
                epoll_ctl(efd, EPOLL_CTL_DEL, fd, NULL);
                on_ready(in);
            } else {
                struct input_event ie;

                while (read(fd, &ie, sizeof(ie)) == sizeof(ie))
                    if (ie.type == EV_KEY && ie.code == KEY_POWER && ie.value == 1)
                        ask_stop(in, "power button");
            }
        }
        reap(in); /* a SIGCHLD merged with another, or a node that died before signalfd */
        if (in->stopping && boot_ms() > in->stop_deadline_ms) {
            nd_err("init: the node did not stop within %u ms: killing it", in->drain_ms + 10000);
            if (in->node)
                kill(in->node, SIGKILL);
            in->stop_deadline_ms = boot_ms() + 5000;
        }
    }
}

/* ---- the entry points ------------------------------------------------------------------------ */

bool nd_init_wanted(int argc, char **argv)
{
    const char *base;

    if (argc >= 2 && !strcmp(argv[1], "init"))
        return true;
    if (getpid() != 1 || argc < 1)
        return false;
    base = strrchr(argv[0], '/');
    return !strcmp(base ? base + 1 : argv[0], "init");
}

int nd_init_main(int argc, char **argv)
{
    static struct init in = {.ready_fd = -1};
    char cmdline[4096] = "", err[512];
    sigset_t sigs;
    int sfd, problems;
    FILE *f;

    (void)argc;
    (void)argv;
    if (getpid() != 1) {
        fprintf(stderr, "nodus init: runs only as PID 1, the /init of the appliance image "
                        "(images/build.sh); on a host use nodus run\n");
        return 2;
    }
    /* Signals first: the kernel delivers to PID 1 only those it handles (here: reads). */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGCHLD);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGPWR);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    reboot(RB_DISABLE_CAD); /* Ctrl-Alt-Del: SIGINT to init, which drains */

    nd_log_use_boottime();
    mount_kernel_fs();
    console();
    setenv("PATH", "/usr/bin", 1);
    nd_info("init: nodus %s as PID 1, %.3f s after the kernel started", NODUS_VERSION,
            (double)boot_ms() / 1000);
    if ((f = fopen("/proc/cmdline", "re"))) {
        if (!fgets(cmdline, sizeof(cmdline), f))
            cmdline[0] = '\0';
        fclose(f);
    }
    problems = nd_boot_parse(cmdline, &in.opts, err, sizeof(err));
    if (problems)
        nd_err("init: kernel command line: %s%s (ignored; the defaults apply)", err,
               problems > 1 ? " and more" : "");
    if (in.opts.debug)
        nd_log_level = NODUS_LOG_DEBUG;
    if (sfd < 0) {
        nd_err("init: signalfd: %s", strerror(errno));
        halt(&in, true);
    }
    reserve_nics();
    load_modules();
    if (in.opts.config_bad) {
        nd_err("init: nodus.config= on the kernel command line cannot be used (above)");
        halt(&in, true);
    }
    if (choose_config(&in) < 0 || check_config(&in) < 0)
        halt(&in, true);
    hugepages(&in);
    open_power_buttons(&in);
    if (start_node(&in) < 0)
        halt(&in, true);
    supervise(&in, sfd);
}

void nd_init_notify_ready(void)
{
    const char *v = getenv(READY_ENV);
    int fd;

    if (!v)
        return;
    fd = atoi(v);
    unsetenv(READY_ENV);
    if (fd > 2) {
        if (write(fd, "1", 1) < 0)
            nd_warn("init: telling init the node serves: %s", strerror(errno));
        close(fd);
    }
}
