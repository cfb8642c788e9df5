/* dpdk { } configuration helper: addresses, ports, routes, fault, whole-block validation, argv. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../dpdk/net/conf.h"

static char err[256];

static void test_ipv4_parse(void **state)
{
    uint32_t ip;
    uint8_t p;

    (void)state;
    assert_int_equal(nd_ipv4_parse("198.18.0.2", &ip), 0);
    assert_int_equal(ip, 0xc6120002);
    assert_int_equal(nd_ipv4_parse("0.0.0.0", &ip), 0);
    assert_int_equal(nd_ipv4_parse("255.255.255.255", &ip), 0);
    assert_int_equal(ip, 0xffffffff);
    const char *bad[] = {"",         "1.2.3",  "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ",
                         "01.2.3.4", "1..2.3", "a.b.c.d",   "1.2.3.-4",  "1234.1.1.1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(nd_ipv4_parse(bad[i], &ip), -1);
    assert_int_equal(nd_ipv4_parse_cidr("10.0.0.0/8", &ip, &p), 0);
    assert_int_equal(p, 8);
    assert_int_equal(nd_ipv4_parse_cidr("10.1.2.3", &ip, &p), 0);
    assert_int_equal(p, 32);
    assert_int_equal(nd_ipv4_parse_cidr("0.0.0.0/0", &ip, &p), 0);
    assert_int_equal(p, 0);
    assert_int_equal(nd_ipv4_parse_cidr("10.0.0.0/33", &ip, &p), -1);
    assert_int_equal(nd_ipv4_parse_cidr("10.0.0.0/", &ip, &p), -1);
    assert_int_equal(nd_ipv4_parse_cidr("10.0.0.0/08", &ip, &p), -1);
    assert_int_equal(nd_ipv4_parse_cidr("10.0.0.0/8x", &ip, &p), -1);
    assert_int_equal(nd_ipv4_mask(24), 0xffffff00);
    assert_int_equal(nd_ipv4_mask(0), 0);
    assert_int_equal(nd_ipv4_mask(32), 0xffffffff);
    char buf[16];
    assert_string_equal(nd_ipv4_str(0xc6120102, buf), "198.18.1.2");
}

static void test_ports(void **state)
{
    struct nd_dpdk_conf c;

    (void)state;
    nd_dpdk_conf_init(&c);
    assert_int_equal(
        nd_dpdk_conf_add_port(&c, "net_af_packet0,iface=m0", "198.18.0.2/24", err, sizeof(err)), 0);
    assert_true(c.ports[0].vdev);
    assert_int_equal(c.ports[0].ip, 0xc6120002);
    assert_int_equal(c.ports[0].prefix, 24);
    assert_int_equal(nd_dpdk_conf_add_port(&c, "0000:00:04.0", "198.18.1.2/24", err, sizeof(err)),
                     0);
    assert_false(c.ports[1].vdev);
    assert_int_equal(c.nports, 2);

    /* each failure names the port and leaves the count alone */
    assert_int_equal(
        nd_dpdk_conf_add_port(&c, "net_af_packet0,iface=m9", "10.0.0.1/8", err, sizeof(err)), -1);
    assert_string_equal(err, "ports[3]: device net_af_packet0 is already ports[1]");
    assert_int_equal(nd_dpdk_conf_add_port(&c, "eth0", "10.0.0.1/8", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "virtual device"));
    assert_int_equal(nd_dpdk_conf_add_port(&c, "net_tap0", "10.0.0.1", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "prefix length"));
    assert_int_equal(nd_dpdk_conf_add_port(&c, "net_tap0", "10.0.0.0/8", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "network address"));
    assert_int_equal(nd_dpdk_conf_add_port(&c, "net_tap0", "10.255.255.255/8", err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "broadcast address"));
    assert_int_equal(nd_dpdk_conf_add_port(&c, "net_tap0", "224.0.0.1/24", err, sizeof(err)), -1);
    assert_int_equal(nd_dpdk_conf_add_port(&c, "net_tap0", "127.0.0.1/8", err, sizeof(err)), -1);
    assert_int_equal(nd_dpdk_conf_add_port(&c, "net tap0", "10.0.0.1/8", err, sizeof(err)), -1);
    assert_int_equal(nd_dpdk_conf_add_port(&c, "net_tap0", "10.0.0.1/0", err, sizeof(err)), -1);
    assert_int_equal(c.nports, 2);
    /* a /31 and a /32 have no network or broadcast address */
    assert_int_equal(nd_dpdk_conf_add_port(&c, "net_tap0", "10.0.0.0/31", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_add_port(&c, "net_tap1", "10.1.0.0/32", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_validate(&c, err, sizeof(err)), 0);
}

static void test_routes_and_validate(void **state)
{
    struct nd_dpdk_conf c;

    (void)state;
    nd_dpdk_conf_init(&c);
    assert_int_equal(nd_dpdk_conf_validate(&c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "at least one port"));
    assert_int_equal(
        nd_dpdk_conf_add_port(&c, "net_af_packet0,iface=m0", "198.18.0.2/24", err, sizeof(err)), 0);
    assert_int_equal(
        nd_dpdk_conf_add_port(&c, "net_af_packet1,iface=m1", "198.18.1.2/24", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_add_route(&c, "0.0.0.0/0", "198.18.1.1", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_add_route(&c, "10.0.0.0/8", "198.18.0.1", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_validate(&c, err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_add_route(&c, "10.0.0.0/8", "198.18.0.3", err, sizeof(err)), -1);
    assert_string_equal(err, "routes[3]: 10.0.0.0/8 is already routes[2]");
    assert_int_equal(nd_dpdk_conf_add_route(&c, "10.0.0.1/8", "198.18.0.3", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "host bits"));
    assert_int_equal(nd_dpdk_conf_add_route(&c, "10.0.0.0", "198.18.0.3", err, sizeof(err)), -1);
    assert_int_equal(nd_dpdk_conf_add_route(&c, "11.0.0.0/8", "x", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "'via'"));

    /* gateways must be on a port's subnet and not our own address */
    assert_int_equal(nd_dpdk_conf_add_route(&c, "11.0.0.0/8", "192.0.2.1", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_validate(&c, err, sizeof(err)), -1);
    assert_string_equal(err, "routes[3]: 'via' 192.0.2.1 is on no port's subnet");
    c.routes[2].via = 0xc6120102;
    assert_int_equal(nd_dpdk_conf_validate(&c, err, sizeof(err)), -1);
    assert_string_equal(err, "routes[3]: 'via' 198.18.1.2 is ports[2]'s own address");
    c.nroutes = 2;

    /* overlapping subnets */
    assert_int_equal(nd_dpdk_conf_add_port(&c, "net_tap0", "198.18.0.200/25", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_validate(&c, err, sizeof(err)), -1);
    assert_string_equal(err, "ports[3]: subnet 198.18.0.200/25 overlaps ports[1]'s");
    c.nports = 2;

    /* PCI with --no-pci */
    assert_int_equal(nd_dpdk_conf_add_arg(&c, "--no-pci", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_add_port(&c, "0000:00:04.0", "10.9.0.1/16", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_validate(&c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--no-pci"));
}

static void test_fault_and_args(void **state)
{
    struct nd_dpdk_conf c;

    (void)state;
    nd_dpdk_conf_init(&c);
    assert_int_equal(nd_dpdk_conf_set_fault(&c, "drop", 0.01, err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_set_fault(&c, "duplicate", 0.005, err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_set_fault(&c, "reorder", 1, err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_set_fault(&c, "seed", 7, err, sizeof(err)), 0);
    assert_true(c.fault.drop == 0.01 && c.fault.duplicate == 0.005 && c.fault.reorder == 1);
    assert_int_equal(c.fault.seed, 7);
    assert_int_equal(nd_dpdk_conf_set_fault(&c, "drop", 1.5, err, sizeof(err)), -1);
    assert_int_equal(nd_dpdk_conf_set_fault(&c, "drop", -0.1, err, sizeof(err)), -1);
    assert_int_equal(nd_dpdk_conf_set_fault(&c, "drop", 0.0 / 0.0, err, sizeof(err)), -1);
    assert_int_equal(nd_dpdk_conf_set_fault(&c, "seed", 1.5, err, sizeof(err)), -1);
    assert_int_equal(nd_dpdk_conf_set_fault(&c, "seed", -1, err, sizeof(err)), -1);
    assert_int_equal(nd_dpdk_conf_set_fault(&c, "delay", 1, err, sizeof(err)), -1);
    assert_string_equal(err, "fault: unknown key 'delay' (drop, duplicate, reorder, seed)");
    assert_true(c.fault.drop == 0.01);

    const char *eal[] = {"--in-memory", "--no-pci", "--no-huge", "-m", "256"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(nd_dpdk_conf_add_arg(&c, eal[i], err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_add_arg(&c, "", err, sizeof(err)), -1);
    assert_int_equal(
        nd_dpdk_conf_add_port(&c, "net_af_packet0,iface=m0", "198.18.0.2/24", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_add_port(&c, "0000:00:04.0", "198.18.1.2/24", err, sizeof(err)),
                     0);
    struct nd_dpdk_argv_store st;
    char *argv[16];
    int argc = nd_dpdk_conf_argv(&c, "nodus", &st, argv, 16);
    assert_int_equal(argc, 9);
    assert_string_equal(argv[0], "nodus");
    assert_string_equal(argv[5], "256");
    assert_string_equal(argv[6], "--vdev=net_af_packet0,iface=m0");
    assert_string_equal(argv[7], "-a");
    assert_string_equal(argv[8], "0000:00:04.0");
    assert_null(argv[9]);
    assert_int_equal(nd_dpdk_conf_argv(&c, "nodus", &st, argv, 8), -1);
    for (int i = 0; i < ND_DPDK_MAX_ARGS - 5; i++)
        assert_int_equal(nd_dpdk_conf_add_arg(&c, "-v", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_add_arg(&c, "-v", err, sizeof(err)), -1);
}

/* net_af_xdp devices get busy_budget=0 unless they set it; other devices are passed as they are */
static void test_argv_af_xdp(void **state)
{
    struct nd_dpdk_conf c;
    struct nd_dpdk_argv_store st;
    char *argv[8];

    (void)state;
    nd_dpdk_conf_init(&c);
    assert_int_equal(
        nd_dpdk_conf_add_port(&c, "net_af_xdp0,iface=m0", "198.18.0.2/24", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_add_port(&c, "net_af_xdp1,iface=m1,busy_budget=32",
                                           "198.18.1.2/24", err, sizeof(err)),
                     0);
    assert_int_equal(
        nd_dpdk_conf_add_port(&c, "net_af_packet2,iface=m2", "198.18.2.2/24", err, sizeof(err)), 0);
    assert_int_equal(nd_dpdk_conf_argv(&c, "nodus", &st, argv, 8), 4);
    assert_string_equal(argv[1], "--vdev=net_af_xdp0,iface=m0,busy_budget=0");
    assert_string_equal(argv[2], "--vdev=net_af_xdp1,iface=m1,busy_budget=32");
    assert_string_equal(argv[3], "--vdev=net_af_packet2,iface=m2");
    assert_null(argv[4]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_parse),          cmocka_unit_test(test_ports),
        cmocka_unit_test(test_routes_and_validate), cmocka_unit_test(test_fault_and_args),
        cmocka_unit_test(test_argv_af_xdp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
