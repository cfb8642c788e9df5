/* PCI NIC binding (core/appliance/nic.c) against a fake sysfs and procfs: listing, interface
 * names, the default-route refusal, driver choice, what bind and unbind write, bad input. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../core/appliance/appliance.h"

static char root[64];
static char err[512];

static void put(const char *rel, const char *text)
{
    char p[512];

    snprintf(p, sizeof(p), "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void dir(const char *rel)
{
    char p[512], *s;

    snprintf(p, sizeof(p), "%s/%s", root, rel);
    for (s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(p, 0755);
        *s = '/';
    }
    mkdir(p, 0755);
}

static void link_to(const char *target, const char *rel)
{
    char p[512];

    snprintf(p, sizeof(p), "%s/%s", root, rel);
    unlink(p);
    assert_int_equal(symlink(target, p), 0);
}

/* The first line of a file under root ("" if empty, "(absent)" if missing). */
static const char *got(const char *rel)
{
    static char buf[256];
    char p[512];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", root, rel);
    if (!(f = fopen(p, "r")))
        return "(absent)";
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

static void nic(const char *addr, const char *cls, const char *vendor, const char *device,
                const char *driver)
{
    char rel[256], target[256];

    snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s", addr);
    dir(rel);
    snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/class", addr);
    put(rel, cls);
    snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/vendor", addr);
    put(rel, vendor);
    snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/device", addr);
    put(rel, device);
    snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/driver_override", addr);
    put(rel, "(null)\n");
    if (driver) {
        snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/driver", addr);
        snprintf(target, sizeof(target), "../../drivers/%s", driver);
        link_to(target, rel);
    }
}

/* 03.0: virtio, eth0 with the IPv4 default route; 04.0: e1000e, ens4 with the IPv6 default
 * route and an IOMMU group; 05.0: no driver; 01.0: an IDE controller, not a NIC. */
static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/nodus-test-nic.XXXXXX");
    assert_non_null(mkdtemp(root));
    dir("sys/bus/pci/drivers/virtio-pci");
    dir("sys/bus/pci/drivers/e1000e");
    dir("sys/bus/pci/drivers/uio_pci_generic");
    put("sys/bus/pci/drivers/virtio-pci/unbind", "");
    put("sys/bus/pci/drivers/e1000e/unbind", "");
    put("sys/bus/pci/drivers/uio_pci_generic/bind", "");
    put("sys/bus/pci/drivers/uio_pci_generic/unbind", "");
    put("sys/bus/pci/drivers_probe", "");
    nic("0000:00:03.0", "0x020000\n", "0x1af4\n", "0x1041\n", "virtio-pci");
    dir("sys/bus/pci/devices/0000:00:03.0/virtio0/net/eth0");
    nic("0000:00:04.0", "0x020000\n", "0x8086\n", "0x10d3\n", "e1000e");
    dir("sys/bus/pci/devices/0000:00:04.0/net/ens4");
    dir("sys/kernel/iommu_groups/7");
    link_to("../../../../kernel/iommu_groups/7", "sys/bus/pci/devices/0000:00:04.0/iommu_group");
    nic("0000:00:05.0", "0x020000\n", "0x1af4\n", "0x1000\n", NULL);
    nic("0000:00:01.0", "0x010180\n", "0x8086\n", "0x7010\n", NULL);
    dir("proc/net");
    put("proc/net/route",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
    put("proc/net/ipv6_route",
        "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
        "fe800000000000000000000000000001 00000400 00000001 00000000 00000003     ens4\n");
    char p[128];
    snprintf(p, sizeof(p), "%s/sys", root);
    setenv("NODUS_SYSFS_ROOT", p, 1);
    snprintf(p, sizeof(p), "%s/proc", root);
    setenv("NODUS_PROC_ROOT", p, 1);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    unsetenv("NODUS_SYSFS_ROOT");
    unsetenv("NODUS_PROC_ROOT");
    return 0;
}

static void test_list(void **state)
{
    struct nd_nic n[ND_NIC_MAX];

    (void)state;
    assert_int_equal(nd_nic_list(n, ND_NIC_MAX, err, sizeof(err)), 3);
    assert_string_equal(n[0].addr, "0000:00:03.0");
    assert_string_equal(n[0].driver, "virtio-pci");
    assert_string_equal(n[0].ifname, "eth0");
    assert_true(n[0].default_route);
    assert_false(n[0].iommu);
    assert_int_equal(n[0].vendor, 0x1af4);
    assert_int_equal(n[0].device, 0x1041);
    assert_string_equal(n[1].addr, "0000:00:04.0");
    assert_string_equal(n[1].ifname, "ens4");
    assert_true(n[1].default_route); /* IPv6 ::/0 */
    assert_true(n[1].iommu);
    assert_string_equal(n[2].addr, "0000:00:05.0");
    assert_string_equal(n[2].driver, "");
    assert_string_equal(n[2].ifname, "");
    assert_false(n[2].default_route);
    assert_int_equal(nd_nic_list(n, 1, err, sizeof(err)), 1); /* capped */

    setenv("NODUS_SYSFS_ROOT", "/nonexistent-sysfs", 1);
    assert_int_equal(nd_nic_list(n, ND_NIC_MAX, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is sysfs mounted?"));
}

static void test_get_bad_input(void **state)
{
    struct nd_nic n;

    (void)state;
    assert_int_equal(nd_nic_get("00:05.0", &n, err, sizeof(err)), 0); /* domain 0 implied */
    assert_string_equal(n.addr, "0000:00:05.0");
    assert_int_equal(nd_nic_get("eth0", &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a PCI address"));
    assert_int_equal(nd_nic_get("0000:00:20.0", &n, err, sizeof(err)), -1); /* slot > 0x1f */
    assert_int_equal(nd_nic_get("0000:00:09.0", &n, err, sizeof(err)), -1);
    assert_string_equal(err, "no PCI device 0000:00:09.0 (nodus nic list shows the NICs)");
    assert_int_equal(nd_nic_get("0000:00:01.0", &n, err, sizeof(err)), -1);
    assert_string_equal(err, "PCI device 0000:00:01.0 is not a network device");
    assert_int_equal(nd_nic_bind("0000:00:05.0", "igb_uio", false, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "use vfio-pci or uio_pci_generic"));
}

static void test_default_route_refused(void **state)
{
    (void)state;
    assert_int_equal(nd_nic_bind("0000:00:03.0", "uio_pci_generic", false, err, sizeof(err)), -1);
    assert_string_equal(err, "0000:00:03.0 is eth0, which carries this host's default route: "
                             "taking it would cut the host off (--force to take it anyway)");
    /* nothing was written */
    assert_string_equal(got("sys/bus/pci/devices/0000:00:03.0/driver_override"), "(null)");
    assert_string_equal(got("sys/bus/pci/drivers/virtio-pci/unbind"), "");
    /* forced: driver_override, unbind, bind written as the kernel wants them; the fake
     * kernel does not move the driver link, which bind reports */
    assert_int_equal(nd_nic_bind("0000:00:03.0", "uio_pci_generic", true, err, sizeof(err)), -1);
    assert_string_equal(got("sys/bus/pci/devices/0000:00:03.0/driver_override"), "uio_pci_generic");
    assert_string_equal(got("sys/bus/pci/drivers/virtio-pci/unbind"), "0000:00:03.0");
    assert_string_equal(got("sys/bus/pci/drivers/uio_pci_generic/bind"), "0000:00:03.0");
    assert_non_null(strstr(err, "bound to virtio-pci, not uio_pci_generic"));
}

static void test_driver_choice(void **state)
{
    struct nd_nic n;

    (void)state;
    assert_int_equal(nd_nic_get("0000:00:04.0", &n, err, sizeof(err)), 0);
    assert_string_equal(nd_nic_dpdk_driver(&n), "uio_pci_generic"); /* vfio-pci not loaded */
    assert_int_equal(nd_nic_bind("0000:00:04.0", "vfio-pci", true, err, sizeof(err)), -1);
    assert_string_equal(err, "driver vfio-pci is not loaded (modprobe vfio-pci)");
    dir("sys/bus/pci/drivers/vfio-pci");
    assert_string_equal(nd_nic_dpdk_driver(&n), "vfio-pci");
    /* no IOMMU group: vfio-pci refused with what to do */
    assert_int_equal(nd_nic_bind("0000:00:05.0", "vfio-pci", false, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "has no IOMMU group"));
    assert_int_equal(nd_nic_get("0000:00:05.0", &n, err, sizeof(err)), 0);
    assert_string_equal(nd_nic_dpdk_driver(&n), "uio_pci_generic");
}

static void test_already_bound_and_unbind(void **state)
{
    (void)state;
    link_to("../../drivers/uio_pci_generic", "sys/bus/pci/devices/0000:00:05.0/driver");
    put("sys/bus/pci/devices/0000:00:05.0/driver_override", "uio_pci_generic\n");
    assert_int_equal(nd_nic_bind("0000:00:05.0", NULL, false, err, sizeof(err)), 1);
    assert_int_equal(nd_nic_unbind("0000:00:05.0", err, sizeof(err)), 0);
    assert_string_equal(got("sys/bus/pci/drivers/uio_pci_generic/unbind"), "0000:00:05.0");
    assert_string_equal(got("sys/bus/pci/devices/0000:00:05.0/driver_override"), "");
    assert_string_equal(got("sys/bus/pci/drivers_probe"), "0000:00:05.0");
    assert_int_equal(nd_nic_unbind("0000:00:09.0", err, sizeof(err)), -1);
}

static void test_reserve(void **state)
{
    (void)state;
    /* only 05.0 has no driver: it gets the override, the bound ones are left alone */
    assert_int_equal(nd_nic_reserve(err, sizeof(err)), 1);
    assert_string_equal(got("sys/bus/pci/devices/0000:00:05.0/driver_override"), "uio_pci_generic");
    assert_string_equal(got("sys/bus/pci/devices/0000:00:03.0/driver_override"), "(null)");
    assert_string_equal(got("sys/bus/pci/devices/0000:00:04.0/driver_override"), "(null)");
    assert_string_equal(got("sys/bus/pci/devices/0000:00:01.0/driver_override"), "(null)");
    assert_int_equal(nd_nic_reserve(err, sizeof(err)), 0); /* already reserved */
    /* with an IOMMU group: vfio-pci */
    nic("0000:00:06.0", "0x020000\n", "0x1af4\n", "0x1000\n", NULL);
    dir("sys/kernel/iommu_groups/8");
    link_to("../../../../kernel/iommu_groups/8", "sys/bus/pci/devices/0000:00:06.0/iommu_group");
    assert_int_equal(nd_nic_reserve(err, sizeof(err)), 1);
    assert_string_equal(got("sys/bus/pci/devices/0000:00:06.0/driver_override"), "vfio-pci");
    setenv("NODUS_SYSFS_ROOT", "/nonexistent-sysfs", 1);
    assert_int_equal(nd_nic_reserve(err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is sysfs mounted?"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_route_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_driver_choice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_already_bound_and_unbind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reserve, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
