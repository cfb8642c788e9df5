/*
 * Mesh PKI: a certificate authority for SPIFFE workload identities (ECDSA P-256, wolfCrypt).
 *
 *  - nd_ca_init() creates a self-signed root in a directory: DIR/ca.pem, DIR/ca.key (0600).
 *  - nd_ca_load() opens a CA directory for signing; nd_ca_issue() issues a workload certificate
 *    (X.509-SVID: one URI SAN spiffe://TD/..., optional DNS SANs, digitalSignature, serverAuth +
 *    clientAuth); nd_ca_issue_intermediate() issues a CA certificate signed by this one, so a
 *    cluster can run its own signing CA under an existing root.
 *  - nd_ca_spiffe_check() validates a SPIFFE ID; nd_ca_cert_parse() reads the identity and the
 *    validity out of a DER certificate with a bounded walker (no allocation, fuzzed).
 *
 * A CA directory holds ca.pem (the signing certificate first, then its issuers up to the root)
 * and ca.key (the signing key, PEM "EC PRIVATE KEY"). Files are written atomically (temporary
 * file, fsync, rename); key files are created 0600 and never overwritten by nd_ca_init().
 *
 * Errors: functions return 0 (or a pointer) on success; on failure -1 (or NULL) and a message in
 * err (errlen bytes, always NUL-terminated when errlen > 0). Messages never contain key material.
 * Main thread / control path only: these functions allocate and do file I/O.
 */
#ifndef NODUS_MTLS_CA_H
#define NODUS_MTLS_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Limits from the SPIFFE ID and X.509-SVID specifications. */
#define ND_CA_SPIFFE_MAX 2048 /* bytes of a SPIFFE ID, scheme included */
#define ND_CA_TD_MAX 255      /* bytes of a trust domain name */
#define ND_CA_MAX_DNS 16      /* DNS SANs per certificate (ours; SAN extension size bound) */
#define ND_CA_DNS_MAX 253     /* bytes of one DNS name */
#define ND_CA_DEFAULT_CA_TTL (10ull * 365 * 24 * 3600)
#define ND_CA_DEFAULT_TTL (24ull * 3600)
#define ND_CA_BACKDATE 300 /* seconds notBefore is set in the past, for clock skew */

/* ---- SPIFFE IDs -------------------------------------------------------------------------------*/

/* What nd_ca_spiffe_check() accepts. */
#define ND_CA_SPIFFE_WORKLOAD 0x1 /* a path is required (spiffe://td/x); else spiffe://td is ok */

/* Checks id[0..len) against the SPIFFE ID syntax: "spiffe://" (lowercase), a trust domain of
 * [a-z0-9.-_] (1..255 bytes), then zero or more "/segment" of [a-zA-Z0-9.-_], no empty, "." or
 * ".." segment, no trailing '/', no percent-encoding, query, fragment, userinfo or port, at most
 * 2048 bytes. Returns 0, or -1 with the reason in *why (a static string) when why is not NULL.
 * On success *td_len (if not NULL) is the trust domain's length; it starts at id + 9. */
int nd_ca_spiffe_check(const char *id, size_t len, unsigned flags, size_t *td_len,
                       const char **why);

/* Writes "spiffe://TD/ns/NS/sa/SA" to buf (NUL-terminated) and validates it. 0 or -1. */
int nd_ca_spiffe_make(char *buf, size_t buflen, const char *td, const char *ns, const char *sa);

/* Parses a TTL: a duration such as "24h", "90m", "3600s", "3600" (seconds) or "30d". Result in
 * whole seconds, rounded up, at least 1 and at most 100 years. 0 or -1. */
int nd_ca_parse_ttl(const char *s, uint64_t *seconds);

/* ---- certificates (parsing) -------------------------------------------------------------------*/

/* What nd_ca_cert_parse() finds in a DER certificate. uri points into the DER. */
struct nd_ca_cert_info {
    int64_t not_before, not_after; /* seconds since the epoch (UTC) */
    const char *uri;               /* the first URI SAN, or NULL */
    size_t uri_len;
    unsigned n_uri;      /* how many URI SANs there are */
    unsigned n_dns;      /* how many DNS SANs */
    bool is_ca;          /* basicConstraints cA = TRUE */
    const uint8_t *spki; /* SubjectPublicKeyInfo, tag and length included */
    size_t spki_len;
};

/* Walks a DER X.509 certificate, bounded by len, without allocating. Returns 0, or -1 when the
 * encoding is not a well-formed certificate (as far as the fields read go). It checks no
 * signature: call it on certificates that were verified, or for inspection. */
int nd_ca_cert_parse(const uint8_t *der, size_t len, struct nd_ca_cert_info *out);

/* 0 when the PEM private key is the P-256 key of the DER certificate, else -1. */
int nd_ca_key_matches_cert(const char *key_pem, size_t key_len, const uint8_t *der, size_t der_len);

/* Internal to the CA (exposed for tests and fuzzing): re-encodes the DER TBSCertificate in
 * buf[0..len) so that its basicConstraints extension is marked critical, as RFC 5280 requires for
 * CA certificates and as wolfSSL 5.5's certificate generator cannot do. scratch must hold cap
 * bytes. Returns the new length (at most cap), len when there is nothing to change, or -1. */
long nd_ca_tbs_bc_critical(uint8_t *buf, size_t len, size_t cap, uint8_t *scratch);

/* ---- the CA -----------------------------------------------------------------------------------*/

struct nd_ca; /* a loaded signing CA: its certificate chain and key */

struct nd_ca_init_opts {
    const char *trust_domain; /* required, e.g. "mesh.local" */
    uint64_t ttl;             /* seconds; 0: ND_CA_DEFAULT_CA_TTL */
    const char *common_name;  /* subject CN; NULL: "nodus mesh CA" */
    bool force;               /* replace an existing CA in the directory */
};

/* Creates DIR (0700) if needed and a self-signed root CA in it (ca.pem, ca.key). Refuses when
 * DIR/ca.key exists unless o->force. The root carries basicConstraints cA, keyUsage keyCertSign
 * and cRLSign, a subject key id and the trust domain's SPIFFE ID (spiffe://TD) as URI SAN. */
int nd_ca_init(const char *dir, const struct nd_ca_init_opts *o, char *err, size_t errlen);

/* Loads DIR/ca.pem and DIR/ca.key; checks that the key belongs to the first certificate, that it
 * is a CA, and reads the trust domain from its URI SAN. */
struct nd_ca *nd_ca_load(const char *dir, char *err, size_t errlen);
void nd_ca_free(struct nd_ca *ca);

/* The CA's trust domain ("mesh.local"). */
const char *nd_ca_trust_domain(const struct nd_ca *ca);
/* The CA's certificate chain as PEM (signing certificate first) and the root alone (the trust
 * anchor workloads should load). Valid until nd_ca_free(). */
const char *nd_ca_chain_pem(const struct nd_ca *ca, size_t *len);
const char *nd_ca_root_pem(const struct nd_ca *ca, size_t *len);
int64_t nd_ca_not_after(const struct nd_ca *ca);

/* A certificate and its key, both PEM. cert holds the new certificate followed by the issuing
 * chain without the root. key is wiped by nd_ca_cred_free(). */
struct nd_ca_cred {
    char *cert;
    size_t cert_len;
    char *key;
    size_t key_len;
    int64_t not_before, not_after;
};
void nd_ca_cred_free(struct nd_ca_cred *c);

struct nd_ca_issue_opts {
    const char *spiffe_id;  /* required; its trust domain must be the CA's */
    const char *const *dns; /* optional DNS SANs */
    size_t n_dns;
    uint64_t ttl;       /* seconds; 0: ND_CA_DEFAULT_TTL */
    int64_t not_before; /* 0: now - ND_CA_BACKDATE; else the exact time (tests, pre-issue) */
};

/* Issues a workload certificate with a fresh P-256 key. The validity must end before the CA's
 * own (no silent capping: an error says to rotate the CA). */
int nd_ca_issue(const struct nd_ca *ca, const struct nd_ca_issue_opts *o, struct nd_ca_cred *out,
                char *err, size_t errlen);

struct nd_ca_intermediate_opts {
    const char *common_name; /* NULL: "nodus intermediate CA" */
    uint64_t ttl;            /* seconds; 0: one year */
    int64_t not_before;      /* as for nd_ca_issue_opts */
};

/* Issues an intermediate CA (basicConstraints cA, pathLen 0, keyCertSign) in this CA's trust
 * domain, and writes it as a CA directory: DIR/ca.pem (intermediate, then this CA's chain) and
 * DIR/ca.key. Refuses to replace an existing DIR/ca.key. */
int nd_ca_issue_intermediate(const struct nd_ca *ca, const char *dir,
                             const struct nd_ca_intermediate_opts *o, char *err, size_t errlen);

/* Writes PREFIX.pem (0644) and PREFIX.key (0600), each atomically. */
int nd_ca_cred_write(const struct nd_ca_cred *c, const char *prefix, char *err, size_t errlen);

/* Writes len bytes to path atomically (path.tmpXXXXXX in the same directory, fsync, rename,
 * fsync of the directory) with the given mode. 0 or -errno. */
int nd_ca_write_file(const char *path, const void *data, size_t len, unsigned mode);

/* Reads a whole file of at most max bytes into a NUL-terminated allocation. NULL on error
 * (errno set; EFBIG when larger than max). */
char *nd_ca_read_file(const char *path, size_t max, size_t *len);

#endif
