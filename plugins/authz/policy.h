/*
 * authz policy: Istio AuthorizationPolicy rules compiled into flat tables, and their evaluation.
 * A pure module: no host calls, so it is unit-tested without a node (tests/unit/test_authz.c).
 *
 * Building (main thread): az_new(), then az_add_rule() for each rule in order; the policy copies
 * what it is given. Evaluation (worker): az_eval() over a request view. Nothing on the evaluation
 * side allocates; the path is normalized into a caller-owned buffer (az_normalize_path()).
 *
 * Semantics, as Istio's: any matching deny rule denies; otherwise, when there are allow rules, one
 * of them must match; when there are none, the request is allowed. A rule matches when every field
 * it has holds; a field holds when the request's value matches one of its values (if it has values)
 * and none of its not_values.
 */
#ifndef NODUS_AUTHZ_POLICY_H
#define NODUS_AUTHZ_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nodus/plugin.h>

struct az_policy; /* opaque */

enum az_action { AZ_ALLOW, AZ_DENY };

/* The fields a rule matches on, each with values and not_values. */
enum az_field {
    AZ_F_PRINCIPALS,         /* peer SPIFFE id, without "spiffe://" */
    AZ_F_NAMESPACES,         /* the NS of spiffe://td/ns/NS/sa/SA */
    AZ_F_IP_BLOCKS,          /* CIDRs against the peer address */
    AZ_F_REQUEST_PRINCIPALS, /* "iss/sub" of a verified JWT */
    AZ_F_METHODS,
    AZ_F_PATHS, /* the normalized path */
    AZ_F_HOSTS, /* case-insensitive */
    AZ_F_PORTS, /* the listener's port, decimal ("8080"): exact values only */
    AZ_F_COUNT,
};

/* A string list for one field: values must be matched by one (if any), not_values by none. */
struct az_strings {
    const char *const *v;
    size_t n;
};

struct az_header_spec {
    const char *name;
    struct az_strings values, not_values;
};

/* One rule as configured; az_add_rule() copies it. */
struct az_rule_spec {
    const char *name; /* NULL: "<action>_<index>" (1-based among all rules) */
    enum az_action action;
    struct az_strings values[AZ_F_COUNT], not_values[AZ_F_COUNT];
    const struct az_header_spec *headers; /* all must hold */
    size_t n_headers;
};

/* What the policy needs of a request. Empty slices are "absent". header() returns the first
 * request header of that lowercase name: 1 and *value, or 0. */
struct az_request {
    struct nodus_slice principal;         /* spiffe://td/ns/NS/sa/SA, or empty */
    struct nodus_slice peer_addr;         /* "198.18.0.1", "::1" */
    struct nodus_slice request_principal; /* "iss/sub", or empty */
    struct nodus_slice method;
    struct nodus_slice path; /* normalized (az_normalize_path) */
    struct nodus_slice host;
    struct nodus_slice port; /* decimal */
    int (*header)(void *arg, const char *name, struct nodus_slice *value);
    void *arg;
};

/* ---- building (main thread) ---- */

struct az_policy *az_new(void);
void az_free(struct az_policy *p);

/* Appends a rule. Values are: "exact", "prefix*", "*suffix", or "*" (any non-empty value; for
 * headers: present); hosts compare without case; principals may be written with or without
 * "spiffe://"; ip_blocks are "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128).
 * Returns 0, or -1 with a message in err naming the field. */
int az_add_rule(struct az_policy *p, const struct az_rule_spec *spec, char *err, size_t errlen);

/* The configuration key of a field ("principals", ...; not_values are "not_" + it). */
const char *az_field_key(enum az_field f);

size_t az_rule_count(const struct az_policy *p);
/* The rule's name (given, or made up) and action. */
const char *az_rule_name(const struct az_policy *p, size_t i);
enum az_action az_rule_action(const struct az_policy *p, size_t i);

/* ---- evaluation (worker, no allocation) ---- */

enum az_decision {
    AZ_ALLOWED,         /* an allow rule matched (rule set), or there are no allow rules (-1) */
    AZ_DENIED_BY_RULE,  /* a deny rule matched (rule set) */
    AZ_DENIED_NO_MATCH, /* there are allow rules and none matched (rule -1) */
};

struct az_result {
    enum az_decision decision;
    long rule;    /* index of the deciding rule, or -1 */
    bool enforce; /* a denial to answer 403: false when allowed, and in a shadow policy */
};

/* A shadow policy (Envoy's shadow rules) decides as usual but never enforces a denial. */
void az_set_shadow(struct az_policy *p, bool shadow);
bool az_shadow(const struct az_policy *p);

struct az_result az_eval(const struct az_policy *p, const struct az_request *r);

/* ---- helpers, exposed for tests ---- */

/* The namespace of spiffe://td/ns/NS/sa/SA (1, *ns set), or 0 when the id has another shape. */
int az_spiffe_namespace(struct nodus_slice id, struct nodus_slice *ns);

/* An IP block: family (4 or 6), the network's 16 bytes (IPv4 in the first 4) and prefix length. */
struct az_cidr {
    uint8_t family, bits;
    uint8_t addr[16];
};
/* Parses "10.0.0.0/8", "::1", "2001:db8::/32" (host bits are cleared). 0, or -1. */
int az_cidr_parse(const char *s, struct az_cidr *c);
/* Whether the address text (as nodus_http_peer_addr gives it; an IPv4-mapped IPv6 address counts
 * as IPv4) is inside c. */
bool az_cidr_match(const struct az_cidr *c, struct nodus_slice addr);

/* Path normalization for matching. */
enum az_norm {
    AZ_NORM_NONE,          /* the path as sent */
    AZ_NORM_BASE,          /* RFC 3986: unreserved %XX decoded, other %xx upper-cased, dot
                              segments removed (Istio's BASE) */
    AZ_NORM_MERGE_SLASHES, /* BASE, and runs of '/' become one (Istio's MERGE_SLASHES) */
    AZ_NORM_DECODE_AND_MERGE_SLASHES, /* also %2F and %5C decoded to '/' and '\' first */
};
/* Writes the normalized path to out (cap bytes). Returns its length, or -1 when it does not fit.
 * A path that does not start with '/' (e.g. "*") is copied as it is. */
long az_normalize_path(const char *in, size_t len, enum az_norm how, char *out, size_t cap);

#endif /* NODUS_AUTHZ_POLICY_H */
