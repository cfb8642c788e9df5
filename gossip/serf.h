/*
 * serf 0.9 pieces carried by memberlist: the messages inside memberlist user messages
 * ([8][serf type][msgpack]), the push/pull user state, node tags in Meta, and the network
 * coordinate in ack payloads. Same conventions as wire.h: encoders write what Go's serf writes
 * (fields in Go's sorted order), decoders accept what Go's decoder accepts, strings point into
 * the decoded buffer, nothing allocates.
 */
#ifndef NODUS_GOSSIP_SERF_H
#define NODUS_GOSSIP_SERF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gossip-t.h"

/* serf message types: the first byte of a memberlist user message. */
enum nd_serf_type {
    ND_SERF_LEAVE = 0,
    ND_SERF_JOIN = 1,
    ND_SERF_PUSH_PULL = 2,
    ND_SERF_USER_EVENT = 3,
    ND_SERF_QUERY = 4,
    ND_SERF_QUERY_RESPONSE = 5,
    ND_SERF_CONFLICT_RESPONSE = 6,
    ND_SERF_KEY_REQUEST = 7,
    ND_SERF_KEY_RESPONSE = 8,
    ND_SERF_RELAY = 9,
};

#define ND_SERF_TAG_MAGIC 0xffu  /* first byte of Meta when it holds a tag map */
#define ND_SERF_PING_VERSION 1u  /* first byte of an ack payload carrying a coordinate */
#define ND_SERF_COORD_DIM_MAX 8u /* serf's default dimensionality */
#define ND_SERF_QUERY_FLAG_ACK 1u
#define ND_SERF_QUERY_FLAG_NO_BROADCAST 2u
#define ND_SERF_KEY_BYTES_MAX 64u      /* a key in a key request (AES keys are 16-32 bytes) */
#define ND_SERF_FILTER_BYTES_MAX 1024u /* one query filter (serf's QuerySizeLimit) */

/* join intent {LTime, Node} */
struct nd_serf_join {
    uint64_t ltime;
    struct nd_gbytes node;
};

/* leave intent {LTime, Node, Prune} */
struct nd_serf_leave {
    uint64_t ltime;
    struct nd_gbytes node;
    bool prune;
};

/* user event {LTime, Name, Payload, CC} */
struct nd_serf_user_event {
    uint64_t ltime;
    struct nd_gbytes name, payload;
    bool cc; /* may be coalesced */
};

/* query {LTime, ID, Addr, Port, SourceNode, Filters, Flags, RelayFactor, Timeout, Name,
 * Payload}. Filters: decode leaves the array's content raw (walk it with nd_serf_filter_next);
 * encode writes filter_list[0..nfilters) (each built by nd_serf_filter_encode), nil for none. */
struct nd_serf_query {
    uint64_t ltime;
    uint32_t id;
    struct nd_gbytes addr;
    uint16_t port;
    struct nd_gbytes source_node;
    uint32_t nfilters;
    struct nd_gbytes filters;            /* decode: the Filters array's content, as sent */
    const struct nd_gbytes *filter_list; /* encode */
    uint32_t flags;                      /* ND_SERF_QUERY_FLAG_* */
    uint8_t relay_factor;
    int64_t timeout_ns;
    struct nd_gbytes name, payload;
};

/* query response {LTime, ID, From, Flags, Payload} */
struct nd_serf_query_response {
    uint64_t ltime;
    uint32_t id;
    struct nd_gbytes from;
    uint32_t flags;
    struct nd_gbytes payload;
};

/* A query filter ([type][msgpack]): node names (filterNode, []string) or a tag's value
 * matched by a regular expression (filterTag {Tag, Expr}). */
enum { ND_SERF_FILTER_NODE = 0, ND_SERF_FILTER_TAG = 1 };
struct nd_serf_filter {
    uint8_t type;
    uint32_t nnodes;        /* node filter: how many names */
    struct nd_gbytes nodes; /* decode: the names array's content (walk with nd_serf_left_next);
                             * encode: nodes_list[0..nnodes) */
    const struct nd_gbytes *nodes_list;
    struct nd_gbytes tag, expr; /* tag filter */
};

/* key manager request {Key}: the payload of the _serf_*-key queries, [7][msgpack] */
struct nd_serf_key_request {
    struct nd_gbytes key;
};

/* nodeKeyResponse {Result, Message, Keys, PrimaryKey}: a key query's response payload,
 * [8][msgpack]. Keys: encode keys_list[0..nkeys) (nil when keys_list is NULL); decode leaves the
 * array's content raw (walk it with nd_serf_left_next). */
struct nd_serf_key_response {
    bool result;
    struct nd_gbytes message;
    uint32_t nkeys;
    struct nd_gbytes keys;
    const struct nd_gbytes *keys_list;
    struct nd_gbytes primary_key;
};

/* relay: [9][relayHeader {DestAddr net.UDPAddr {IP, Port, Zone}, DestName}][a serf message]
 * that the receiver forwards as a user message to DestAddr. */
struct nd_serf_relay {
    struct nd_gbytes dest_ip; /* 4 or 16 bytes */
    uint16_t dest_port;
    struct nd_gbytes dest_name;
    struct nd_gbytes inner; /* decode: the message to forward; encode: appended as is */
};

/* serf Member, the payload of a _serf_conflict response: [6][Member], or [6][nil] when the
 * answering node does not know the member (nil = true). */
struct nd_serf_member {
    bool nil;
    struct nd_gbytes name, addr;
    uint16_t port;
    const struct nd_serf_tag *tags; /* encode */
    uint32_t ntags;
    struct nd_gbytes tags_raw; /* decode: the Tags map's content */
    uint8_t status;            /* serf MemberStatus: 0 none, 1 alive, 2 leaving, 3 left, 4 failed */
    uint8_t vsn[ND_GOSSIP_VSN_LEN]; /* ProtocolMin, Max, Cur, DelegateMin, Max, Cur */
};

/* One member's status Lamport time in a serf push/pull. */
struct nd_serf_status {
    struct nd_gbytes name;
    uint64_t ltime;
};

/* One user event of a push/pull's recent events (serf userEvent {Name, Payload}). */
struct nd_serf_event_item {
    struct nd_gbytes name, payload;
};

/* The events of one Lamport time in a push/pull (serf userEvents {LTime, Events}). Go sends
 * its whole event buffer, nil for the empty slots: a nil decodes as ltime 0 and no events. */
struct nd_serf_event_group {
    uint64_t ltime;
    uint32_t n;
    const struct nd_serf_event_item *ev; /* encode: ev[0..n) */
    struct nd_gbytes raw;                /* decode: the Events array's content (iterate it with
                                          * nd_serf_event_item_next) */
};

/* serf push/pull state (the memberlist push/pull user state: [2][msgpack]).
 * Decoding fills the clocks, the counts, and the raw msgpack of the three collections
 * (iterate status_ltimes, left_members and events with nd_serf_status_next,
 * nd_serf_left_next and nd_serf_event_group_next). Encoding reads status[0..nstatus),
 * left[0..nleft) and groups[0..ngroups) (only the groups that hold events: Go's receiver takes
 * an array of any length). */
struct nd_serf_pushpull {
    uint64_t ltime, event_ltime, query_ltime;
    uint32_t nstatus, nleft, nevents;
    struct nd_gbytes status_ltimes, left_members, events; /* decode: raw map / arrays content */
    const struct nd_serf_status *status;                  /* encode */
    const struct nd_gbytes *left;                         /* encode */
    const struct nd_serf_event_group *groups;             /* encode */
    uint32_t ngroups;                                     /* encode */
};

struct nd_serf_msg {
    uint8_t type; /* enum nd_serf_type */
    union {
        struct nd_serf_leave leave;
        struct nd_serf_join join;
        struct nd_serf_user_event event;
        struct nd_serf_query query;
        struct nd_serf_query_response response;
        struct nd_serf_pushpull pp;
        struct nd_serf_member conflict;
        struct nd_serf_key_request key_req;
        struct nd_serf_key_response key_resp;
        struct nd_serf_relay relay;
    } u;
    struct nd_gbytes body; /* decode: the bytes after the type byte */
};

/* Decodes a serf message (a memberlist user message's bytes, or a push/pull user state).
 * ND_GOSSIP_E_MSGTYPE for an unknown type, ND_GOSSIP_E_EMPTY for no bytes. */
int nd_serf_decode(const uint8_t *buf, size_t len, struct nd_serf_msg *m);
/* Encodes any serf message as [type][msgpack] (a relay: [9][header][inner]). Wrap it in a
 * memberlist user message ([8] + these bytes) to send it. */
int nd_serf_encode(const struct nd_serf_msg *m, uint8_t *out, size_t cap, size_t *len);

/* Iterate a decoded push/pull's status_ltimes (map content) / left_members (array content):
 * each call takes one entry off *rest. */
int nd_serf_status_next(struct nd_gbytes *rest, struct nd_serf_status *st);
int nd_serf_left_next(struct nd_gbytes *rest, struct nd_gbytes *name);
/* Iterate a decoded push/pull's events (array content) one group at a time, then a group's
 * raw events one event at a time. */
int nd_serf_event_group_next(struct nd_gbytes *rest, struct nd_serf_event_group *g);
int nd_serf_event_item_next(struct nd_gbytes *rest, struct nd_serf_event_item *it);

/* Takes one filter off *rest (a decoded query's filters). A filter of an unknown type decodes
 * (f->type says which); a malformed one is an error. */
int nd_serf_filter_next(struct nd_gbytes *rest, struct nd_serf_filter *f);
/* Encodes one filter as serf's encodeFilter: [type][msgpack]. */
int nd_serf_filter_encode(const struct nd_serf_filter *f, uint8_t *out, size_t cap, size_t *len);

/* A tag: key and value strings. */
struct nd_serf_tag {
    struct nd_gbytes key, value;
};

/* Encodes tags as serf does into Meta: [0xff] + msgpack map of str -> str. The result must fit
 * in ND_GOSSIP_META_MAX bytes (else ND_GOSSIP_E_LIMIT); duplicate keys are ND_GOSSIP_E_VALUE.
 * Go writes map entries in random order; these are written in the order given. */
int nd_serf_tags_encode(const struct nd_serf_tag *tags, size_t n, uint8_t *out, size_t cap,
                        size_t *len);
/* Decodes Meta into tags[0..cap), *n of them. Meta without the magic byte is serf's old
 * role-only form: one tag "role" = the whole Meta (none if Meta is empty). Over
 * ND_GOSSIP_META_MAX bytes or more than cap tags is ND_GOSSIP_E_LIMIT. Entries are returned as
 * sent (Go keeps the last of duplicate keys). */
int nd_serf_tags_decode(const uint8_t *meta, size_t len, struct nd_serf_tag *tags, size_t cap,
                        size_t *n);

/* serf's Vivaldi coordinate, as carried in ack payloads: [1][msgpack {Adjustment, Error,
 * Height, Vec}]. */
struct nd_serf_coord {
    double vec[ND_SERF_COORD_DIM_MAX];
    uint32_t dim; /* entries of vec in use */
    double error, adjustment, height;
};

int nd_serf_coord_encode(const struct nd_serf_coord *c, uint8_t *out, size_t cap, size_t *len);
int nd_serf_coord_decode(const uint8_t *payload, size_t len, struct nd_serf_coord *c);

#endif
