/*
 * libFuzzer target for the mesh's own DER and SPIFFE parsing (plugins/mtls/x509.c): the input is
 * a certificate for nd_ca_cert_parse(), a SPIFFE ID for nd_ca_spiffe_check(), and a TBS body for
 * nd_ca_tbs_bc_critical(). Each gets an exact-size copy, so an over-read is caught.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/mtls/ca.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nd_ca_cert_info info;
    uint8_t *copy = malloc(size ? size : 1), *buf, *scratch;
    size_t td;
    long n;

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (nd_ca_cert_parse(copy, size, &info) == 0) {
        CHECK(!info.uri || (info.uri >= (const char *)copy &&
                            info.uri + info.uri_len <= (const char *)copy + size));
        CHECK(info.spki >= copy && info.spki + info.spki_len <= copy + size);
        CHECK((info.n_uri == 0) == (info.uri == NULL));
    }
    if (nd_ca_spiffe_check((const char *)copy, size, 0, &td, NULL) == 0) {
        CHECK(size >= 10 && size <= ND_CA_SPIFFE_MAX && td >= 1 && td <= ND_CA_TD_MAX);
        CHECK(memchr(copy, 0, size) == NULL);
    }
    buf = malloc(size + 64);
    scratch = malloc(size + 64);
    if (buf && scratch) {
        memcpy(buf, data, size);
        n = nd_ca_tbs_bc_critical(buf, size, size + 64, scratch);
        CHECK(n == -1 || ((size_t)n >= size && (size_t)n <= size + 64));
        if (n > (long)size) /* changed: the result is a TBS whose BC now carries the flag */
            CHECK(nd_ca_tbs_bc_critical(buf, (size_t)n, size + 64, scratch) == n);
    }
    free(buf);
    free(scratch);
    free(copy);
    return 0;
}
