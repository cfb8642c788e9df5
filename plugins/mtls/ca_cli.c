/*
 * `nodus ca`: the mesh CA on the command line (see docs/mtls.md).
 *
 *   nodus ca init DIR [--trust-domain D] [--ttl 87600h] [--cn NAME] [--force]
 *   nodus ca issue DIR --id spiffe://D/ns/NS/sa/SA --out PREFIX [--ttl 24h] [--dns NAME]...
 *   nodus ca issue DIR --ca OUTDIR [--ttl 8760h] [--cn NAME]
 *
 * Exit codes: 0 done, 1 failed (the message says why), 2 usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca.h"
#include "node.h"

#define DEFAULT_TRUST_DOMAIN "mesh.local"

static int usage(FILE *f, int code)
{
    fprintf(f,
            "usage: nodus ca init DIR [--trust-domain DOMAIN] [--ttl DURATION] [--cn NAME] "
            "[--force]\n"
            "         create a mesh root CA: DIR/ca.pem, DIR/ca.key (0600)\n"
            "         defaults: --trust-domain " DEFAULT_TRUST_DOMAIN ", --ttl 87600h (10 years)\n"
            "       nodus ca issue DIR --id SPIFFE-ID --out PREFIX [--ttl DURATION] "
            "[--dns NAME]...\n"
            "         issue a workload certificate: PREFIX.pem (certificate and chain), "
            "PREFIX.key (0600)\n"
            "         SPIFFE-ID is spiffe://DOMAIN/ns/NAMESPACE/sa/ACCOUNT; default --ttl 24h\n"
            "       nodus ca issue DIR --ca OUTDIR [--ttl DURATION] [--cn NAME]\n"
            "         issue an intermediate CA into OUTDIR (ca.pem, ca.key); default --ttl 8760h\n"
            "DURATION: 90s, 30m, 24h, 30d, or a number of seconds.\n");
    return code;
}

/* The value of option argv[*i], advancing *i; NULL (and a message) when it is missing. */
static const char *optval(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "nodus ca: %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static int parse_ttl(const char *s, uint64_t *out)
{
    if (nd_ca_parse_ttl(s, out) < 0) {
        fprintf(stderr, "nodus ca: bad --ttl '%s' (e.g. 24h, 30d, 3600)\n", s);
        return -1;
    }
    return 0;
}

static int cmd_init(int argc, char **argv)
{
    struct nd_ca_init_opts o = {.trust_domain = DEFAULT_TRUST_DOMAIN};
    const char *dir = NULL, *v;
    char err[256];

    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--trust-domain")) {
            if (!(v = optval(argc, argv, &i)))
                return 2;
            o.trust_domain = v;
        } else if (!strcmp(argv[i], "--ttl")) {
            if (!(v = optval(argc, argv, &i)) || parse_ttl(v, &o.ttl) < 0)
                return 2;
        } else if (!strcmp(argv[i], "--cn")) {
            if (!(v = optval(argc, argv, &i)))
                return 2;
            o.common_name = v;
        } else if (!strcmp(argv[i], "--force")) {
            o.force = true;
        } else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "nodus ca init: unexpected argument '%s'\n", argv[i]);
            return usage(stderr, 2);
        } else {
            dir = argv[i];
        }
    }
    if (!dir) {
        fprintf(stderr, "nodus ca init: the CA directory is missing\n");
        return usage(stderr, 2);
    }
    if (nd_ca_init(dir, &o, err, sizeof(err)) < 0) {
        fprintf(stderr, "nodus ca init: %s\n", err);
        return 1;
    }
    printf("created CA for trust domain %s in %s (ca.pem, ca.key)\n", o.trust_domain, dir);
    return 0;
}

static int cmd_issue(int argc, char **argv)
{
    const char *dir = NULL, *id = NULL, *out = NULL, *cadir = NULL, *cn = NULL, *v;
    const char *dns[ND_CA_MAX_DNS];
    size_t ndns = 0;
    uint64_t ttl = 0;
    struct nd_ca *ca;
    char err[256];
    int rc = 1;

    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--id")) {
            if (!(id = optval(argc, argv, &i)))
                return 2;
        } else if (!strcmp(argv[i], "--out")) {
            if (!(out = optval(argc, argv, &i)))
                return 2;
        } else if (!strcmp(argv[i], "--ca")) {
            if (!(cadir = optval(argc, argv, &i)))
                return 2;
        } else if (!strcmp(argv[i], "--cn")) {
            if (!(cn = optval(argc, argv, &i)))
                return 2;
        } else if (!strcmp(argv[i], "--ttl")) {
            if (!(v = optval(argc, argv, &i)) || parse_ttl(v, &ttl) < 0)
                return 2;
        } else if (!strcmp(argv[i], "--dns")) {
            if (!(v = optval(argc, argv, &i)))
                return 2;
            if (ndns == ND_CA_MAX_DNS) {
                fprintf(stderr, "nodus ca issue: at most %d --dns names\n", ND_CA_MAX_DNS);
                return 2;
            }
            dns[ndns++] = v;
        } else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "nodus ca issue: unexpected argument '%s'\n", argv[i]);
            return usage(stderr, 2);
        } else {
            dir = argv[i];
        }
    }
    if (!dir) {
        fprintf(stderr, "nodus ca issue: the CA directory is missing\n");
        return usage(stderr, 2);
    }
    if (!!cadir == !!(id || out)) {
        fprintf(stderr, "nodus ca issue: give either --id and --out (a workload certificate) or "
                        "--ca (an intermediate CA)\n");
        return usage(stderr, 2);
    }
    if (!cadir && (!id || !out)) {
        fprintf(stderr, "nodus ca issue: %s is missing\n", id ? "--out" : "--id");
        return usage(stderr, 2);
    }
    if (cadir && ndns) {
        fprintf(stderr, "nodus ca issue: --dns applies to workload certificates only\n");
        return 2;
    }
    if (!cadir && cn) {
        fprintf(stderr, "nodus ca issue: --cn applies to intermediate CAs only\n");
        return 2;
    }
    if (!(ca = nd_ca_load(dir, err, sizeof(err)))) {
        fprintf(stderr, "nodus ca issue: %s\n", err);
        return 1;
    }
    if (cadir) {
        struct nd_ca_intermediate_opts o = {.common_name = cn, .ttl = ttl};

        if (nd_ca_issue_intermediate(ca, cadir, &o, err, sizeof(err)) < 0) {
            fprintf(stderr, "nodus ca issue: %s\n", err);
        } else {
            printf("issued intermediate CA of trust domain %s in %s (ca.pem, ca.key)\n",
                   nd_ca_trust_domain(ca), cadir);
            rc = 0;
        }
    } else {
        struct nd_ca_issue_opts o = {.spiffe_id = id, .dns = dns, .n_dns = ndns, .ttl = ttl};
        struct nd_ca_cred cred = {0};

        if (nd_ca_issue(ca, &o, &cred, err, sizeof(err)) < 0 ||
            nd_ca_cred_write(&cred, out, err, sizeof(err)) < 0) {
            fprintf(stderr, "nodus ca issue: %s\n", err);
        } else {
            time_t na = (time_t)cred.not_after;
            char until[32];
            struct tm tm;

            strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&na, &tm));
            printf("issued %s: %s.pem, %s.key (valid until %s)\n", id, out, out, until);
            rc = 0;
        }
        nd_ca_cred_free(&cred);
    }
    nd_ca_free(ca);
    return rc;
}

int nd_ca_command(int argc, char **argv)
{
    if (argc < 1)
        return usage(stderr, 2);
    if (!strcmp(argv[0], "init"))
        return cmd_init(argc - 1, argv + 1);
    if (!strcmp(argv[0], "issue"))
        return cmd_issue(argc - 1, argv + 1);
    if (!strcmp(argv[0], "help") || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))
        return usage(stdout, 0);
    fprintf(stderr, "nodus ca: unknown command '%s'\n", argv[0]);
    return usage(stderr, 2);
}
