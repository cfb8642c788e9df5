/*
 * libFuzzer target for plugins/mtls/tls.c: each input is what a client sends to a strict server
 * engine (a ClientHello and whatever follows), fed in pieces whose sizes come from the input.
 * The credentials (a mesh CA and a server certificate) are made once, in a temporary directory.
 * Checks besides the sanitizers: a server never reaches ND_TLS_OPEN (the input cannot hold a
 * valid client certificate signed by a CA created at start), and results stay in range.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/mtls/ca.h"
#include "../../plugins/mtls/tls.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static struct nd_tls_ctx *server;

static void cleanup(char *dir)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_tls: could not remove %s\n", dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[] = "/tmp/nodus-fuzz-tls-XXXXXX", sub[64], err[256];
    struct nd_ca_init_opts io = {.trust_domain = "fuzz.local"};
    struct nd_ca_issue_opts o = {.spiffe_id = "spiffe://fuzz.local/ns/a/sa/server"};
    struct nd_ca_cred cred;
    struct nd_tls_config cfg = {.role = ND_TLS_SERVER, .alpn = "h2,http/1.1"};
    struct nd_ca *ca;
    size_t rl;

    (void)argc;
    (void)argv;
    if (!mkdtemp(dir))
        abort();
    snprintf(sub, sizeof(sub), "%s/ca", dir);
    if (nd_ca_init(sub, &io, err, sizeof(err)) < 0 || !(ca = nd_ca_load(sub, err, sizeof(err))) ||
        nd_ca_issue(ca, &o, &cred, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_tls: %s\n", err);
        abort();
    }
    cfg.ca_pem = nd_ca_root_pem(ca, &rl);
    cfg.ca_len = rl;
    cfg.cert_pem = cred.cert;
    cfg.cert_len = cred.cert_len;
    cfg.key_pem = cred.key;
    cfg.key_len = cred.key_len;
    server = nd_tls_ctx_new(&cfg, err, sizeof(err));
    if (!server) {
        fprintf(stderr, "fuzz_tls: %s\n", err);
        abort();
    }
    nd_ca_cred_free(&cred);
    nd_ca_free(ca);
    cleanup(dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nd_tls *t = nd_tls_new(server);
    uint8_t plain[4096];
    size_t off = 0, step;
    long r = ND_TLS_AGAIN;

    if (!t)
        return 0;
    /* The first byte chooses the piece size (1..256; 0 means all at once). */
    step = size ? data[0] : 0;
    if (size) {
        data++;
        size--;
    }
    while (off < size && r == ND_TLS_AGAIN) {
        size_t n = step ? step : size - off, took, out;
        if (n > size - off)
            n = size - off;
        took = nd_tls_feed(t, data + off, n);
        off += took;
        r = nd_tls_read(t, plain, sizeof(plain));
        CHECK(r == ND_TLS_AGAIN || (r < 0 && r >= ND_TLS_E_INTERNAL));
        nd_tls_out_peek(t, &out);
        nd_tls_out_consume(t, out);
        if (took == 0 && r == ND_TLS_AGAIN)
            break;
    }
    nd_tls_feed_eof(t);
    r = nd_tls_read(t, plain, sizeof(plain));
    CHECK(r < 0 && r >= ND_TLS_E_INTERNAL);
    CHECK(nd_tls_state(t) != ND_TLS_OPEN);
    CHECK(nd_tls_peer_id(t, NULL) == NULL);
    nd_tls_free(t);
    return 0;
}
