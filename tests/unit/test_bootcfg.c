/* The appliance's kernel command line (core/appliance/bootcfg.c): quoting, nodus.config inline
 * and base64, the other parameters, bad values reported while the rest still applies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../core/appliance/appliance.h"

static char err[256];

static void test_defaults(void **state)
{
    struct nd_boot_opts o;

    (void)state;
    assert_int_equal(
        nd_boot_parse("BOOT_IMAGE=/nodus/vmlinuz console=ttyS0 quiet\n", &o, err, sizeof(err)), 0);
    assert_null(o.config);
    assert_false(o.config_bad);
    assert_int_equal(o.on_error, ND_BOOT_POWEROFF);
    assert_int_equal(o.hugepages, -1);
    assert_false(o.debug);
    nd_boot_opts_free(&o);
}

static void test_inline_and_quotes(void **state)
{
    struct nd_boot_opts o;

    (void)state;
    assert_int_equal(nd_boot_parse("console=ttyS0 nodus.config=\"node { name = 'a b' }\" "
                                   "nodus.on_error=reboot nodus.hugepages=64 nodus.debug",
                                   &o, err, sizeof(err)),
                     0);
    assert_string_equal(o.config, "node { name = 'a b' }");
    assert_int_equal(o.config_len, strlen("node { name = 'a b' }"));
    assert_int_equal(o.on_error, ND_BOOT_REBOOT);
    assert_int_equal(o.hugepages, 64);
    assert_true(o.debug);
    nd_boot_opts_free(&o);
    /* the whole word quoted, as some boot loaders write it; the last one wins */
    assert_int_equal(nd_boot_parse("\"nodus.config=x = 1\" nodus.config=y=2", &o, err, sizeof(err)),
                     0);
    assert_string_equal(o.config, "y=2");
    nd_boot_opts_free(&o);
}

static void test_base64(void **state)
{
    struct nd_boot_opts o;

    (void)state;
    /* "node { name = \"edge\" }\n" */
    assert_int_equal(
        nd_boot_parse("nodus.config=base64:bm9kZSB7IG5hbWUgPSAiZWRnZSIgfQo=", &o, err, sizeof(err)),
        0);
    assert_string_equal(o.config, "node { name = \"edge\" }\n");
    assert_int_equal(o.config_len, 23);
    nd_boot_opts_free(&o);
    assert_int_equal(nd_boot_parse("nodus.config=base64:###", &o, err, sizeof(err)), 1);
    assert_true(o.config_bad);
    assert_null(o.config);
    assert_string_equal(err, "nodus.config: not valid base64 after \"base64:\"");
    nd_boot_opts_free(&o);
    assert_int_equal(nd_boot_parse("nodus.config=", &o, err, sizeof(err)), 1);
    assert_true(o.config_bad);
    nd_boot_opts_free(&o);
}

static void test_bad_values(void **state)
{
    struct nd_boot_opts o;

    (void)state;
    assert_int_equal(nd_boot_parse("nodus.on_error=halt nodus.hugepages=-3 nodus.hugepage=4 "
                                   "nodus.hugepages=12x nodus.debug=1",
                                   &o, err, sizeof(err)),
                     4);
    assert_string_equal(err, "nodus.on_error=halt: use poweroff or reboot");
    assert_int_equal(o.on_error, ND_BOOT_POWEROFF);
    assert_int_equal(o.hugepages, -1);
    assert_true(o.debug); /* what was right still applies */
    nd_boot_opts_free(&o);
    assert_int_equal(nd_boot_parse("nodus.hugepage=4", &o, err, sizeof(err)), 1);
    assert_non_null(strstr(err, "unknown parameter nodus.hugepage"));
    nd_boot_opts_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_inline_and_quotes),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
