/*
 * Service catalog: which members front which services, from their serf tags. Pure (no sockets,
 * no clock, no core): the main thread feeds it member events and reads the services that
 * changed; core/cluster.c turns those into endpoint sets for clusters with discover = "name"
 * (docs/gossip.md, "Service catalog").
 *
 * Advertising: one serf tag per service, key "svc:NAME", value "[ADDR:]PORT[;KEY=VAL]...":
 *     svc:reviews = 9080;version=v1          (the member's gossip address, port 9080)
 *     svc:db      = 10.0.0.7:5432            (an explicit address)
 *     svc:web     = [fd00::7]:80;zone=a
 * Names, label keys and values are 1 to 63 characters of [A-Za-z0-9._-] (labels may also use
 * '/' and ':'), so the encoding needs no escaping.
 *
 * Services beyond Meta: the tags that fit in memberlist's 512-byte Meta with the node's other
 * tags go there; when some do not, the node adds the tag "svc+" = "COUNT:HASH" and gossips its
 * full list (every service, those in tags too) as serf user events "nodus:svc", in parts of at
 * most ND_CAT_PART_MAX bytes: "1 HASH PART NPARTS NODE\nNAME VALUE\nNAME VALUE...", VALUE as in a
 * tag (nd_cat_list_encode). A receiver keeps each member's parts (nd_catalog_list_part); once the
 * list whose HASH the member's "svc+" tag names is complete, the member's services are the
 * list's; until then, its tags'. A member's list is dropped when it dies, leaves or stops
 * saying "svc+".
 *
 * Membership rule (like Consul): a member's endpoints are in the catalog while it is alive or
 * suspect; they leave it when the member is declared dead (failed), when it has left, and when
 * it is reaped.
 */
#ifndef NODUS_GOSSIP_CATALOG_H
#define NODUS_GOSSIP_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "swim-t.h"

#define ND_CAT_TAG_PREFIX "svc:"
#define ND_CAT_NAME_MAX 63     /* service names, label keys and values */
#define ND_CAT_LABELS_MAX 16   /* labels per advertised service */
#define ND_CAT_ADDR_MAX 64     /* "[ipv6]:port" text, NUL included */
#define ND_CAT_SERVICES_MAX 64 /* services of one member */
#define ND_CAT_MORE_TAG "svc+" /* "COUNT:HASH": the member's full list is in user events */
#define ND_CAT_EVENT "nodus:svc"
/* payload bytes of one part: a user event's name, payload and serf encoding (at most 47 bytes:
 * type, map, keys, a 64-bit time, string headers) hold in 512 */
#define ND_CAT_PART_MAX ((size_t)440)
#define ND_CAT_PARTS_MAX 16
#define ND_CAT_LISTS_MAX 1024 /* members whose lists are kept */

/* A label as decoded from a tag: points into the tag's bytes. */
struct nd_cat_span {
    const char *p;
    size_t len;
};

/* One service tag, decoded (pointers into the tag). host is empty when the tag gives no address
 * (the member's gossip address is meant); an IPv6 host is given without brackets. */
struct nd_cat_tag {
    struct nd_cat_span name, host;
    uint16_t port;
    struct nd_cat_span key[ND_CAT_LABELS_MAX], val[ND_CAT_LABELS_MAX];
    unsigned nlabels;
};

/* Whether s[0..len) is a valid service name (label: labels allow '/' and ':' too). */
bool nd_cat_name_ok(const char *s, size_t len, bool label);

/* Writes the value of a service tag ("[ADDR:]PORT[;K=V]...", NUL-terminated) into out.
 * host: NULL or an IPv4/IPv6 literal (IPv6 with or without brackets). Returns the length, or -1
 * if a label is not valid (nd_cat_name_ok) or it does not fit in cap. */
int nd_cat_tag_encode(const char *host, uint16_t port, const char *const *keys,
                      const char *const *vals, unsigned nlabels, char *out, size_t cap);
/* Decodes one tag. 1 if it is not a service tag (key without the "svc:" prefix), 0 with *t
 * filled, -1 if it is a malformed service tag (ignored by the catalog, counted). */
int nd_cat_tag_decode(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      struct nd_cat_tag *t);

/* An endpoint of a service, as the catalog holds it (owned strings). */
struct nd_cat_ep {
    char *member;               /* the member advertising it */
    char addr[ND_CAT_ADDR_MAX]; /* "127.0.0.1:9080", "[::1]:9080" */
    char **keys, **vals;        /* labels */
    unsigned nlabels;
    uint8_t state; /* enum nd_gossip_state of the member: alive or suspect */
};

struct nd_cat_service {
    char *name;
    struct nd_cat_ep *eps; /* sorted by addr, then member */
    unsigned neps, cap;
    bool changed; /* endpoints added, removed or relabelled since the last take */
};

/* A member's full service list, as its parts arrive. */
struct nd_cat_list {
    char *member;
    uint32_t hash;
    unsigned nparts;
    uint32_t have; /* parts received, one bit each */
    char *part[ND_CAT_PARTS_MAX];
    size_t len[ND_CAT_PARTS_MAX];
};

struct nd_catalog {
    struct nd_cat_service *svcs;
    unsigned nsvcs, cap;
    uint64_t bad_tags;  /* malformed service tags seen */
    uint64_t changes;   /* services taken by nd_catalog_take_changed (updates to publish) */
    uint64_t bad_lists; /* malformed list parts, or beyond ND_CAT_LISTS_MAX members */
    struct nd_cat_list *lists;
    unsigned nlists;
};

struct nd_catalog *nd_catalog_new(void);
void nd_catalog_free(struct nd_catalog *c);

/* A member's current state (from a member event or the member table): its endpoints are
 * replaced by those its tags advertise if it is alive or suspect (status alive or leaving),
 * removed otherwise. 0, or -1 when out of memory (the member's old endpoints are then gone). */
int nd_catalog_member(struct nd_catalog *c, const struct nd_swim_member *m);
/* Removes every endpoint of a member (reaped), and its list. */
void nd_catalog_remove(struct nd_catalog *c, const char *member);

/* The hash of a full service list (FNV-1a of its entries), as "svc+" and the parts carry it. */
uint32_t nd_cat_list_hash(const char *const *names, const char *const *values, unsigned n);
/* Splits node's full list (names[i] with its tag value values[i]) into event payloads:
 * parts[k] (NUL-terminated, at most ND_CAT_PART_MAX bytes), *nparts of them, *hash. -1 when an
 * entry or the node's name leaves no room in a part, or more than ND_CAT_PARTS_MAX parts. */
int nd_cat_list_encode(const char *node, const char *const *names, const char *const *values,
                       unsigned n, char (*parts)[ND_CAT_PART_MAX + 1], unsigned *nparts,
                       uint32_t *hash);
/* A part of a member's list arrived (an event's payload): 1 when that makes the member's list
 * complete and new (then re-run nd_catalog_member with the member's current state: its name is
 * in member[0..cap)), 0 when not, -1 when malformed or over the bounds (bad_lists counts it). */
int nd_catalog_list_part(struct nd_catalog *c, const uint8_t *payload, size_t len, char *member,
                         size_t cap);

const struct nd_cat_service *nd_catalog_find(const struct nd_catalog *c, const char *name);
/* The next service whose endpoints changed since it was last taken, from *it on (start at 0);
 * clears its flag. NULL when there is none left. */
struct nd_cat_service *nd_catalog_take_changed(struct nd_catalog *c, unsigned *it);

struct nd_sbuf;
/* Appends the catalog's metrics in Prometheus text format (docs/metrics.md, "Service catalog"):
 * nodus_catalog_services, nodus_catalog_endpoints{service}, nodus_catalog_changes_total,
 * nodus_catalog_bad_tags_total. Main thread (the catalog's). In gossip/catalog_metrics.c, which
 * needs the core's buffers (the rest of the catalog does not). */
void nd_catalog_metrics(const struct nd_catalog *c, struct nd_sbuf *out);

/* Endpoint diffing by address: map[i] = index in next[] of prev[i]'s address, or -1 if it is
 * gone. Returns how many of prev remain. O(nprev * nnext); sets are small. */
unsigned nd_cat_diff(const char *const *prev, unsigned nprev, const char *const *next,
                     unsigned nnext, int *map);

#endif
