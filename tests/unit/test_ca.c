/* Mesh CA: SPIFFE ID syntax, TTLs, the CA directory, issuing workload and intermediate
 * certificates, checked with our DER walker and independently with the openssl CLI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/asn_public.h>

#include "../../plugins/mtls/ca.h"

static char tmpdir[64];
static char err[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/nodus-test-ca-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static bool have_openssl(void)
{
    return system("openssl version >/dev/null 2>&1") == 0;
}

/* Runs a shell command, returns its exit status and the first out_len-1 bytes of its stdout. */
static int run(const char *cmd, char *out, size_t out_len)
{
    FILE *f = popen(cmd, "r");
    size_t n = 0;
    int st;

    if (!f)
        return -1;
    if (out && out_len) {
        n = fread(out, 1, out_len - 1, f);
        out[n] = '\0';
    }
    while (fgetc(f) != EOF)
        ;
    st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* DER of the first certificate of a PEM buffer. */
static int first_der(const char *pem, size_t len, uint8_t *der, size_t cap)
{
    return wc_CertPemToDer((const unsigned char *)pem, (int)len, der, (int)cap, CERT_TYPE);
}

static void test_spiffe_syntax(void **state)
{
    static const char *good[] = {
        "spiffe://mesh.local/ns/default/sa/web",
        "spiffe://example.org/a",
        "spiffe://a-b_c.9/Upper/Case.ok/x-y_z",
        "spiffe://td/...a/a..",
    };
    static const char *bad[] = {
        "",
        "spiffe://",
        "spiffe:///path",
        "SPIFFE://td/x",
        "https://td/x",
        "spiffe://TD/x",      /* trust domain must be lowercase */
        "spiffe://td:8080/x", /* port */
        "spiffe://user@td/x", /* userinfo */
        "spiffe://td/",       /* trailing slash */
        "spiffe://td/a//b",   /* empty segment */
        "spiffe://td/a/./b",  /* dot segment */
        "spiffe://td/a/../b", /* dot-dot segment */
        "spiffe://td/a?x=1",  /* query */
        "spiffe://td/a#frag", /* fragment */
        "spiffe://td/a%20b",  /* percent-encoding */
        "spiffe://td/a b",
        "spiffe://td/é",
        "spiffe://td", /* no path: not a workload ID */
    };
    char big[ND_CA_SPIFFE_MAX + 8], td[300];
    const char *why;
    size_t tdl;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(
            nd_ca_spiffe_check(good[i], strlen(good[i]), ND_CA_SPIFFE_WORKLOAD, &tdl, &why), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(
            nd_ca_spiffe_check(bad[i], strlen(bad[i]), ND_CA_SPIFFE_WORKLOAD, NULL, &why), -1);
        assert_non_null(why);
    }
    /* a trust-domain ID is fine without the workload flag */
    assert_int_equal(nd_ca_spiffe_check("spiffe://td", 11, 0, &tdl, NULL), 0);
    assert_int_equal(tdl, 2);
    /* an embedded NUL is not hidden by the length */
    assert_int_equal(nd_ca_spiffe_check("spiffe://td/a\0b", 15, 0, NULL, NULL), -1);
    /* length limits: 2048 bytes overall, 255 for the trust domain */
    memcpy(big, "spiffe://td/", 12);
    memset(big + 12, 'a', sizeof(big) - 12);
    assert_int_equal(nd_ca_spiffe_check(big, ND_CA_SPIFFE_MAX, 0, NULL, NULL), 0);
    assert_int_equal(nd_ca_spiffe_check(big, ND_CA_SPIFFE_MAX + 1, 0, NULL, NULL), -1);
    memcpy(td, "spiffe://", 9);
    memset(td + 9, 'a', 256);
    assert_int_equal(nd_ca_spiffe_check(td, 9 + 255, 0, NULL, NULL), 0);
    assert_int_equal(nd_ca_spiffe_check(td, 9 + 256, 0, NULL, NULL), -1);

    assert_int_equal(nd_ca_spiffe_make(big, sizeof(big), "mesh.local", "default", "web"), 0);
    assert_string_equal(big, "spiffe://mesh.local/ns/default/sa/web");
    assert_int_equal(nd_ca_spiffe_make(big, sizeof(big), "mesh.local", "a/b", "web"), -1);
    assert_int_equal(nd_ca_spiffe_make(big, 20, "mesh.local", "default", "web"), -1);
}

static void test_ttl(void **state)
{
    uint64_t s;

    (void)state;
    assert_int_equal(nd_ca_parse_ttl("24h", &s), 0);
    assert_int_equal(s, 86400);
    assert_int_equal(nd_ca_parse_ttl("90m", &s), 0);
    assert_int_equal(s, 5400);
    assert_int_equal(nd_ca_parse_ttl("3600", &s), 0);
    assert_int_equal(s, 3600);
    assert_int_equal(nd_ca_parse_ttl("1500ms", &s), 0);
    assert_int_equal(s, 2);
    assert_int_equal(nd_ca_parse_ttl("30d", &s), 0);
    assert_int_equal(s, 30 * 86400);
    assert_int_equal(nd_ca_parse_ttl("0", &s), -1);
    assert_int_equal(nd_ca_parse_ttl("d", &s), -1);
    assert_int_equal(nd_ca_parse_ttl("-1h", &s), -1);
    assert_int_equal(nd_ca_parse_ttl("1y", &s), -1);
    assert_int_equal(nd_ca_parse_ttl("99999999d", &s), -1);
    assert_int_equal(nd_ca_parse_ttl("", &s), -1);
}

static struct nd_ca *make_ca(const char *name, const char *td)
{
    struct nd_ca_init_opts o = {.trust_domain = td};
    char dir[128];
    struct nd_ca *ca;

    path(dir, sizeof(dir), name);
    assert_int_equal(nd_ca_init(dir, &o, err, sizeof(err)), 0);
    ca = nd_ca_load(dir, err, sizeof(err));
    if (!ca)
        fail_msg("load: %s", err);
    return ca;
}

static void test_init_and_issue(void **state)
{
    const char *dns[] = {"web.default.svc", "web"};
    struct nd_ca_issue_opts io = {
        .spiffe_id = "spiffe://mesh.local/ns/default/sa/web", .dns = dns, .n_dns = 2, .ttl = 3600};
    struct nd_ca_init_opts o = {.trust_domain = "mesh.local"};
    struct nd_ca_cert_info info;
    struct nd_ca_cred cred;
    char dir[128], p[160], cmd[512], out[8192];
    uint8_t der[8192];
    struct stat st;
    struct nd_ca *ca;
    int n;

    (void)state;
    ca = make_ca("ca", "mesh.local");
    assert_string_equal(nd_ca_trust_domain(ca), "mesh.local");
    path(p, sizeof(p), "ca/ca.key");
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    path(dir, sizeof(dir), "ca");
    /* the key is never replaced without force */
    assert_int_equal(nd_ca_init(dir, &o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "refusing"));
    /* the root: a CA, 10 years, trust domain SAN */
    n = first_der(nd_ca_root_pem(ca, NULL), strlen(nd_ca_root_pem(ca, NULL)), der, sizeof(der));
    assert_true(n > 0);
    assert_int_equal(nd_ca_cert_parse(der, (size_t)n, &info), 0);
    assert_true(info.is_ca);
    assert_int_equal(info.n_uri, 1);
    assert_true(info.not_after - info.not_before >= (int64_t)ND_CA_DEFAULT_CA_TTL);

    assert_int_equal(nd_ca_issue(ca, &io, &cred, err, sizeof(err)), 0);
    n = first_der(cred.cert, cred.cert_len, der, sizeof(der));
    assert_true(n > 0);
    assert_int_equal(nd_ca_cert_parse(der, (size_t)n, &info), 0);
    assert_false(info.is_ca);
    assert_int_equal(info.n_uri, 1);
    assert_int_equal(info.n_dns, 2);
    assert_int_equal(info.uri_len, strlen(io.spiffe_id));
    assert_memory_equal(info.uri, io.spiffe_id, info.uri_len);
    assert_int_equal(info.not_after, cred.not_after);
    assert_true(info.not_after - time(NULL) <= 3600 && info.not_after - time(NULL) > 3500);
    assert_true(info.not_before <= time(NULL) - ND_CA_BACKDATE + 5);
    assert_non_null(strstr(cred.key, "BEGIN EC PRIVATE KEY"));

    path(p, sizeof(p), "web");
    assert_int_equal(nd_ca_cred_write(&cred, p, err, sizeof(err)), 0);
    path(p, sizeof(p), "web.key");
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    nd_ca_cred_free(&cred);

    if (!have_openssl()) {
        nd_ca_free(ca);
        skip();
    }
    snprintf(cmd, sizeof(cmd),
             "openssl verify -x509_strict -purpose sslclient -CAfile %s/ca/ca.pem "
             "%s/web.pem 2>&1 && openssl verify -purpose sslserver -CAfile "
             "%s/ca/ca.pem %s/web.pem 2>&1",
             tmpdir, tmpdir, tmpdir, tmpdir);
    if (run(cmd, out, sizeof(out)) != 0)
        fail_msg("%s: %s", cmd, out);
    snprintf(cmd, sizeof(cmd), "openssl x509 -in %s/web.pem -noout -text", tmpdir);
    if (run(cmd, out, sizeof(out)) != 0)
        fail_msg("%s: %s", cmd, out);
    assert_non_null(strstr(out, "URI:spiffe://mesh.local/ns/default/sa/web"));
    assert_non_null(strstr(out, "DNS:web.default.svc"));
    assert_non_null(strstr(out, "TLS Web Server Authentication, TLS Web Client Authentication"));
    assert_non_null(strstr(out, "Digital Signature"));
    assert_non_null(strstr(out, "CA:FALSE"));
    assert_non_null(strstr(out, "prime256v1"));
    assert_non_null(strstr(out, "ecdsa-with-SHA256"));
    /* the key file matches the certificate */
    snprintf(cmd, sizeof(cmd),
             "a=$(openssl x509 -in %s/web.pem -noout -pubkey) && "
             "b=$(openssl pkey -in %s/web.key -pubout) && [ \"$a\" = \"$b\" ]",
             tmpdir, tmpdir);
    assert_int_equal(run(cmd, NULL, 0), 0);
    snprintf(cmd, sizeof(cmd), "openssl x509 -in %s/ca/ca.pem -noout -text", tmpdir);
    if (run(cmd, out, sizeof(out)) != 0)
        fail_msg("%s: %s", cmd, out);
    assert_non_null(strstr(out, "X509v3 Basic Constraints: critical"));
    assert_non_null(strstr(out, "CA:TRUE"));
    assert_non_null(strstr(out, "Certificate Sign, CRL Sign"));
    assert_non_null(strstr(out, "URI:spiffe://mesh.local"));
    nd_ca_free(ca);
}

static void test_issue_refusals(void **state)
{
    struct nd_ca_issue_opts io = {.spiffe_id = "spiffe://other.td/ns/a/sa/b"};
    const char *bad_dns[] = {"bad name"};
    struct nd_ca_cred cred;
    struct nd_ca *ca;
    char dir[128], p[160];

    (void)state;
    ca = make_ca("ca", "mesh.local");
    assert_int_equal(nd_ca_issue(ca, &io, &cred, err, sizeof(err)), -1); /* other trust domain */
    assert_non_null(strstr(err, "trust domain"));
    io.spiffe_id = "spiffe://mesh.local/ns/a/sa/b?x";
    assert_int_equal(nd_ca_issue(ca, &io, &cred, err, sizeof(err)), -1);
    io.spiffe_id = "spiffe://mesh.local";
    assert_int_equal(nd_ca_issue(ca, &io, &cred, err, sizeof(err)), -1);
    io.spiffe_id = "spiffe://mesh.local/ns/a/sa/b";
    io.dns = bad_dns;
    io.n_dns = 1;
    assert_int_equal(nd_ca_issue(ca, &io, &cred, err, sizeof(err)), -1);
    io.n_dns = 0;
    io.ttl = 20ull * 365 * 86400; /* beyond the CA */
    assert_int_equal(nd_ca_issue(ca, &io, &cred, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "rotate"));
    nd_ca_free(ca);

    /* a key readable by others is refused */
    path(p, sizeof(p), "ca/ca.key");
    assert_int_equal(chmod(p, 0644), 0);
    path(dir, sizeof(dir), "ca");
    assert_null(nd_ca_load(dir, err, sizeof(err)));
    assert_non_null(strstr(err, "chmod 600"));
    /* a key that does not belong to the certificate is refused */
    assert_int_equal(chmod(p, 0600), 0);
    ca = make_ca("other", "mesh.local");
    nd_ca_free(ca);
    {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "cp %s/other/ca.key %s/ca/ca.key", tmpdir, tmpdir);
        assert_int_equal(system(cmd), 0);
    }
    assert_null(nd_ca_load(dir, err, sizeof(err)));
    assert_non_null(strstr(err, "does not belong"));
    /* missing directory */
    path(dir, sizeof(dir), "nope");
    assert_null(nd_ca_load(dir, err, sizeof(err)));
}

static void test_intermediate(void **state)
{
    struct nd_ca_issue_opts io = {.spiffe_id = "spiffe://mesh.local/ns/prod/sa/api"};
    struct nd_ca_cert_info info;
    struct nd_ca *root, *inter;
    struct nd_ca_cred cred;
    char dir[128], p[160], cmd[1024], out[4096];
    uint8_t der[8192];
    int n;

    (void)state;
    root = make_ca("root", "mesh.local");
    path(dir, sizeof(dir), "cluster1");
    assert_int_equal(nd_ca_issue_intermediate(root, dir, NULL, err, sizeof(err)), 0);
    assert_int_equal(nd_ca_issue_intermediate(root, dir, NULL, err, sizeof(err)), -1); /* exists */
    inter = nd_ca_load(dir, err, sizeof(err));
    if (!inter)
        fail_msg("load intermediate: %s", err);
    assert_string_equal(nd_ca_trust_domain(inter), "mesh.local");
    /* the intermediate's root is the root's certificate */
    assert_string_equal(nd_ca_root_pem(inter, NULL), nd_ca_root_pem(root, NULL));
    assert_true(nd_ca_not_after(inter) <= nd_ca_not_after(root));

    assert_int_equal(nd_ca_issue(inter, &io, &cred, err, sizeof(err)), 0);
    /* the leaf PEM carries leaf + intermediate, not the root */
    assert_non_null(strstr(cred.cert, "-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----"));
    assert_null(strstr(cred.cert, nd_ca_root_pem(root, NULL)));
    n = first_der(cred.cert, cred.cert_len, der, sizeof(der));
    assert_int_equal(nd_ca_cert_parse(der, (size_t)n, &info), 0);
    assert_false(info.is_ca);
    path(p, sizeof(p), "api");
    assert_int_equal(nd_ca_cred_write(&cred, p, err, sizeof(err)), 0);
    nd_ca_cred_free(&cred);

    if (have_openssl()) {
        /* the leaf verifies against the root alone, with the chain from its own file */
        snprintf(cmd, sizeof(cmd),
                 "openssl verify -x509_strict -CAfile %s/root/ca.pem -untrusted %s/api.pem "
                 "%s/api.pem 2>&1",
                 tmpdir, tmpdir, tmpdir);
        if (run(cmd, out, sizeof(out)) != 0)
            fail_msg("%s: %s", cmd, out);
        /* and not without the intermediate */
        snprintf(cmd, sizeof(cmd), "openssl verify -CAfile %s/root/ca.pem %s/api.pem 2>&1", tmpdir,
                 tmpdir);
        assert_int_not_equal(run(cmd, out, sizeof(out)), 0);
        snprintf(cmd, sizeof(cmd), "openssl x509 -in %s/cluster1/ca.pem -noout -text", tmpdir);
        if (run(cmd, out, sizeof(out)) != 0)
            fail_msg("%s: %s", cmd, out);
        assert_non_null(strstr(out, "CA:TRUE, pathlen:0"));
    }
    nd_ca_free(inter);
    nd_ca_free(root);
}

static void test_cert_parse_rejects(void **state)
{
    struct nd_ca_cert_info info;
    struct nd_ca_issue_opts io = {.spiffe_id = "spiffe://mesh.local/ns/a/sa/b"};
    struct nd_ca_cred cred;
    struct nd_ca *ca;
    uint8_t der[8192];
    int n;

    (void)state;
    assert_int_equal(nd_ca_cert_parse(NULL, 0, &info), -1);
    assert_int_equal(nd_ca_cert_parse((const uint8_t *)"\x30\x80", 2, &info), -1);
    assert_int_equal(nd_ca_cert_parse((const uint8_t *)"\x30\x84\xff\xff\xff\xff", 6, &info), -1);
    ca = make_ca("ca", "mesh.local");
    assert_int_equal(nd_ca_issue(ca, &io, &cred, err, sizeof(err)), 0);
    n = first_der(cred.cert, cred.cert_len, der, sizeof(der));
    assert_true(n > 0);
    /* every truncation fails cleanly (ASan checks the bounds) */
    for (int i = 0; i < n; i++)
        assert_int_equal(nd_ca_cert_parse(der, (size_t)i, &info), -1);
    assert_int_equal(nd_ca_cert_parse(der, (size_t)n, &info), 0);
    nd_ca_cred_free(&cred);
    nd_ca_free(ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spiffe_syntax),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test_setup_teardown(test_init_and_issue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issue_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intermediate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_parse_rejects, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
