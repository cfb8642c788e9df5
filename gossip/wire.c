/* memberlist messages and framing: see wire.h. */
#include <string.h>

#include "keyring.h"
#include "lzw.h"
#include "mp.h"
#include "wire.h"

#define BYTES_MAX ND_GOSSIP_STREAM_MAX /* any other byte field: bounded by what a stream holds */

const char *nd_gossip_strerror(int err)
{
    switch (err) {
    case ND_GOSSIP_OK:
        return "ok";
    case ND_GOSSIP_E_TRUNC:
        return "truncated input";
    case ND_GOSSIP_E_TYPE:
        return "wrong msgpack type for a field";
    case ND_GOSSIP_E_RANGE:
        return "integer out of range";
    case ND_GOSSIP_E_LIMIT:
        return "size or count over a limit";
    case ND_GOSSIP_E_VALUE:
        return "invalid value";
    case ND_GOSSIP_E_MSGTYPE:
        return "unknown or unexpected message type";
    case ND_GOSSIP_E_SPACE:
        return "output buffer too small";
    case ND_GOSSIP_E_EMPTY:
        return "empty message";
    case ND_GOSSIP_E_CRC:
        return "checksum mismatch";
    case ND_GOSSIP_E_LZW:
        return "corrupt compressed data";
    case ND_GOSSIP_E_DECRYPT:
        return "no key decrypts the message";
    case ND_GOSSIP_E_KEY:
        return "bad or unknown key";
    case ND_GOSSIP_E_CRYPTO:
        return "crypto library failure";
    case ND_GOSSIP_E_PLAIN:
        return "unencrypted message with encryption required";
    case ND_GOSSIP_E_TRAILING:
        return "trailing bytes after a message";
    default:
        return "unknown error";
    }
}

const char *nd_gossip_type_name(uint8_t type)
{
    static const char *const names[] = {
        "ping",     "indirect-ping", "ack",      "suspect", "alive", "dead",    "push-pull",
        "compound", "user",          "compress", "encrypt", "nack",  "has-crc", "err",
    };
    return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

/* ---- field helpers ---- */

/* An IP address: 4 or 16 bytes, or (if optional) none. */
static int get_addr(struct nd_mp *r, struct nd_gbytes *s, bool optional)
{
    int e = nd_mp_bytes(r, s, 16);
    if (e == ND_GOSSIP_E_LIMIT)
        return ND_GOSSIP_E_VALUE;
    if (e)
        return e;
    if (s->len == 4 || s->len == 16 || (optional && s->len == 0))
        return 0;
    return ND_GOSSIP_E_VALUE;
}

/* Vsn: exactly 6 bytes, or absent / nil / empty. */
static int get_vsn(struct nd_mp *r, uint8_t vsn[ND_GOSSIP_VSN_LEN], bool *has)
{
    struct nd_gbytes s;
    int e = nd_mp_bytes(r, &s, ND_GOSSIP_VSN_LEN);
    if (e == ND_GOSSIP_E_LIMIT)
        return ND_GOSSIP_E_VALUE;
    if (e)
        return e;
    if (s.len == 0) {
        memset(vsn, 0, ND_GOSSIP_VSN_LEN);
        *has = false;
        return 0;
    }
    if (s.len != ND_GOSSIP_VSN_LEN)
        return ND_GOSSIP_E_VALUE;
    memcpy(vsn, s.p, ND_GOSSIP_VSN_LEN);
    *has = true;
    return 0;
}

/* A count in a Go int field: negative counts made Go's receiver panic, so they are refused. */
static int get_count(struct nd_mp *r, uint32_t max, uint32_t *v)
{
    int64_t x;
    int e = nd_mp_int(r, INT64_MIN, INT64_MAX, &x);
    if (e)
        return e;
    if (x < 0)
        return ND_GOSSIP_E_RANGE;
    if (x > (int64_t)max)
        return ND_GOSSIP_E_LIMIT;
    *v = (uint32_t)x;
    return 0;
}

/* ---- decoders ---- */

static int dec_ping(struct nd_mp *r, struct nd_gossip_ping *p)
{
    memset(p, 0, sizeof *p);
    FIELDS_BEGIN(r)
    FIELD("SeqNo", nd_mp_u32(r, &p->seq_no))
    FIELD("Node", nd_mp_name(r, &p->node))
    FIELD("SourceAddr", get_addr(r, &p->source_addr, true))
    FIELD("SourcePort", nd_mp_u16(r, &p->source_port))
    FIELD("SourceNode", nd_mp_name(r, &p->source_node))
    FIELDS_END(r)
    return 0;
}

static int dec_indirect(struct nd_mp *r, struct nd_gossip_indirect_ping *p)
{
    memset(p, 0, sizeof *p);
    bool target = false;
    FIELDS_BEGIN(r)
    FIELD("SeqNo", nd_mp_u32(r, &p->seq_no))
    FIELD("Target", (target = true, get_addr(r, &p->target, false)))
    FIELD("Port", nd_mp_u16(r, &p->port))
    FIELD("Node", nd_mp_name(r, &p->node))
    FIELD("Nack", nd_mp_bool(r, &p->nack))
    FIELD("SourceAddr", get_addr(r, &p->source_addr, true))
    FIELD("SourcePort", nd_mp_u16(r, &p->source_port))
    FIELD("SourceNode", nd_mp_name(r, &p->source_node))
    FIELDS_END(r)
    return target ? 0 : ND_GOSSIP_E_VALUE;
}

static int dec_ack(struct nd_mp *r, struct nd_gossip_ack *a)
{
    memset(a, 0, sizeof *a);
    FIELDS_BEGIN(r)
    FIELD("SeqNo", nd_mp_u32(r, &a->seq_no))
    FIELD("Payload", nd_mp_bytes(r, &a->payload, BYTES_MAX))
    FIELDS_END(r)
    return 0;
}

static int dec_nack(struct nd_mp *r, struct nd_gossip_nack *n)
{
    memset(n, 0, sizeof *n);
    FIELDS_BEGIN(r)
    FIELD("SeqNo", nd_mp_u32(r, &n->seq_no))
    FIELDS_END(r)
    return 0;
}

static int dec_suspect(struct nd_mp *r, struct nd_gossip_suspect *s)
{
    memset(s, 0, sizeof *s);
    FIELDS_BEGIN(r)
    FIELD("Incarnation", nd_mp_u32(r, &s->incarnation))
    FIELD("Node", nd_mp_name(r, &s->node))
    FIELD("From", nd_mp_name(r, &s->from))
    FIELDS_END(r)
    return 0;
}

static int dec_alive(struct nd_mp *r, struct nd_gossip_alive *a)
{
    memset(a, 0, sizeof *a);
    bool addr = false;
    FIELDS_BEGIN(r)
    FIELD("Incarnation", nd_mp_u32(r, &a->incarnation))
    FIELD("Node", nd_mp_name(r, &a->node))
    FIELD("Addr", (addr = true, get_addr(r, &a->addr, false)))
    FIELD("Port", nd_mp_u16(r, &a->port))
    FIELD("Meta", nd_mp_bytes(r, &a->meta, ND_GOSSIP_META_MAX))
    FIELD("Vsn", get_vsn(r, a->vsn, &a->has_vsn))
    FIELDS_END(r)
    return addr ? 0 : ND_GOSSIP_E_VALUE;
}

static int dec_err(struct nd_mp *r, struct nd_gossip_errmsg *m)
{
    memset(m, 0, sizeof *m);
    FIELDS_BEGIN(r)
    FIELD("Error", nd_mp_str(r, &m->error, BYTES_MAX))
    FIELDS_END(r)
    return 0;
}

static int dec_node_state(struct nd_mp *r, struct nd_gossip_node_state *s)
{
    memset(s, 0, sizeof *s);
    bool addr = false;
    FIELDS_BEGIN(r)
    FIELD("Name", nd_mp_name(r, &s->name))
    FIELD("Addr", (addr = true, get_addr(r, &s->addr, false)))
    FIELD("Port", nd_mp_u16(r, &s->port))
    FIELD("Meta", nd_mp_bytes(r, &s->meta, ND_GOSSIP_META_MAX))
    FIELD("Incarnation", nd_mp_u32(r, &s->incarnation))
    FIELD("State", nd_mp_u8(r, &s->state))
    FIELD("Vsn", get_vsn(r, s->vsn, &s->has_vsn))
    FIELDS_END(r)
    if (!addr)
        return ND_GOSSIP_E_VALUE;
    return s->state <= ND_GOSSIP_STATE_LEFT ? 0 : ND_GOSSIP_E_VALUE;
}

static int dec_pushpull(struct nd_mp *r, struct nd_gossip_pushpull *h)
{
    memset(h, 0, sizeof *h);
    FIELDS_BEGIN(r)
    FIELD("Nodes", get_count(r, ND_GOSSIP_PUSHPULL_NODES_MAX, &h->nodes))
    FIELD("UserStateLen", get_count(r, ND_GOSSIP_STREAM_MAX, &h->user_state_len))
    FIELD("Join", nd_mp_bool(r, &h->join))
    FIELDS_END(r)
    return 0;
}

static int dec_user_hdr(struct nd_mp *r, uint32_t *len)
{
    *len = 0;
    FIELDS_BEGIN(r)
    FIELD("UserMsgLen", get_count(r, ND_GOSSIP_STREAM_MAX, len))
    FIELDS_END(r)
    return 0;
}

int nd_gossip_decode_body(uint8_t type, const uint8_t *body, size_t len, struct nd_gossip_msg *m)
{
    struct nd_mp r;
    nd_mp_init(&r, body, len);
    memset(m, 0, sizeof *m);
    m->type = type;
    switch (type) {
    case ND_GOSSIP_PING:
        return dec_ping(&r, &m->u.ping);
    case ND_GOSSIP_INDIRECT_PING:
        return dec_indirect(&r, &m->u.indirect_ping);
    case ND_GOSSIP_ACK:
        return dec_ack(&r, &m->u.ack);
    case ND_GOSSIP_NACK:
        return dec_nack(&r, &m->u.nack);
    case ND_GOSSIP_SUSPECT:
        return dec_suspect(&r, &m->u.suspect);
    case ND_GOSSIP_DEAD:
        return dec_suspect(&r, &m->u.dead);
    case ND_GOSSIP_ALIVE:
        return dec_alive(&r, &m->u.alive);
    case ND_GOSSIP_ERR:
        return dec_err(&r, &m->u.err);
    case ND_GOSSIP_USER:
        if (len > BYTES_MAX)
            return ND_GOSSIP_E_LIMIT;
        m->u.user.p = body;
        m->u.user.len = (uint32_t)len;
        return 0;
    default:
        return ND_GOSSIP_E_MSGTYPE;
    }
}

int nd_gossip_decode(const uint8_t *msg, size_t len, struct nd_gossip_msg *m)
{
    if (len == 0) {
        memset(m, 0, sizeof *m);
        return ND_GOSSIP_E_EMPTY;
    }
    return nd_gossip_decode_body(msg[0], msg + 1, len - 1, m);
}

int nd_gossip_node_state_decode(struct nd_gbytes *rest, struct nd_gossip_node_state *s)
{
    struct nd_mp r;
    nd_mp_init(&r, rest->p, rest->len);
    int e = dec_node_state(&r, s);
    if (e)
        return e;
    rest->len -= (uint32_t)(r.p - rest->p);
    rest->p = r.p;
    return 0;
}

/* ---- encoders ---- */

static bool addr_ok(struct nd_gbytes s, bool optional)
{
    return s.len == 4 || s.len == 16 || (optional && s.len == 0);
}

static void w_alive_like(struct nd_mp_w *w, const char *name_key, struct nd_gbytes name,
                         struct nd_gbytes addr, uint16_t port, struct nd_gbytes meta,
                         uint32_t incarnation, int state, const uint8_t *vsn)
{
    /* Go's field order is sorted by name: alive {Addr Incarnation Meta Node Port Vsn},
     * pushNodeState {Addr Incarnation Meta Name Port State Vsn} */
    nd_mp_w_map(w, state < 0 ? 6 : 7);
    nd_mp_w_key(w, "Addr");
    nd_mp_w_bytes(w, addr);
    nd_mp_w_key(w, "Incarnation");
    nd_mp_w_uint(w, incarnation);
    nd_mp_w_key(w, "Meta");
    nd_mp_w_bytes(w, meta);
    nd_mp_w_key(w, name_key);
    nd_mp_w_str(w, name);
    nd_mp_w_key(w, "Port");
    nd_mp_w_uint(w, port);
    if (state >= 0) {
        nd_mp_w_key(w, "State");
        nd_mp_w_uint(w, (uint64_t)state);
    }
    nd_mp_w_key(w, "Vsn");
    nd_mp_w_str(w, (struct nd_gbytes){vsn, ND_GOSSIP_VSN_LEN});
}

static int enc_body(struct nd_mp_w *w, const struct nd_gossip_msg *m)
{
    switch (m->type) {
    case ND_GOSSIP_PING: {
        const struct nd_gossip_ping *p = &m->u.ping;
        if (!nd_mp_name_ok(p->node) || !nd_mp_name_ok(p->source_node) ||
            !addr_ok(p->source_addr, true))
            return ND_GOSSIP_E_VALUE;
        /* {Node SeqNo SourceAddr SourceNode SourcePort}, the last three omitempty */
        nd_mp_w_map(w,
                    2 + (p->source_addr.len > 0) + (p->source_node.len > 0) + (p->source_port > 0));
        nd_mp_w_key(w, "Node");
        nd_mp_w_str(w, p->node);
        nd_mp_w_key(w, "SeqNo");
        nd_mp_w_uint(w, p->seq_no);
        if (p->source_addr.len) {
            nd_mp_w_key(w, "SourceAddr");
            nd_mp_w_bytes(w, p->source_addr);
        }
        if (p->source_node.len) {
            nd_mp_w_key(w, "SourceNode");
            nd_mp_w_str(w, p->source_node);
        }
        if (p->source_port) {
            nd_mp_w_key(w, "SourcePort");
            nd_mp_w_uint(w, p->source_port);
        }
        return 0;
    }
    case ND_GOSSIP_INDIRECT_PING: {
        const struct nd_gossip_indirect_ping *p = &m->u.indirect_ping;
        if (!nd_mp_name_ok(p->node) || !nd_mp_name_ok(p->source_node) ||
            !addr_ok(p->source_addr, true) || !addr_ok(p->target, false))
            return ND_GOSSIP_E_VALUE;
        /* {Nack Node Port SeqNo SourceAddr SourceNode SourcePort Target} */
        nd_mp_w_map(w,
                    5 + (p->source_addr.len > 0) + (p->source_node.len > 0) + (p->source_port > 0));
        nd_mp_w_key(w, "Nack");
        nd_mp_w_bool(w, p->nack);
        nd_mp_w_key(w, "Node");
        nd_mp_w_str(w, p->node);
        nd_mp_w_key(w, "Port");
        nd_mp_w_uint(w, p->port);
        nd_mp_w_key(w, "SeqNo");
        nd_mp_w_uint(w, p->seq_no);
        if (p->source_addr.len) {
            nd_mp_w_key(w, "SourceAddr");
            nd_mp_w_bytes(w, p->source_addr);
        }
        if (p->source_node.len) {
            nd_mp_w_key(w, "SourceNode");
            nd_mp_w_str(w, p->source_node);
        }
        if (p->source_port) {
            nd_mp_w_key(w, "SourcePort");
            nd_mp_w_uint(w, p->source_port);
        }
        nd_mp_w_key(w, "Target");
        nd_mp_w_bytes(w, p->target);
        return 0;
    }
    case ND_GOSSIP_ACK:
        if (m->u.ack.payload.len > BYTES_MAX)
            return ND_GOSSIP_E_LIMIT;
        nd_mp_w_map(w, 2);
        nd_mp_w_key(w, "Payload");
        nd_mp_w_bytes(w, m->u.ack.payload);
        nd_mp_w_key(w, "SeqNo");
        nd_mp_w_uint(w, m->u.ack.seq_no);
        return 0;
    case ND_GOSSIP_NACK:
        nd_mp_w_map(w, 1);
        nd_mp_w_key(w, "SeqNo");
        nd_mp_w_uint(w, m->u.nack.seq_no);
        return 0;
    case ND_GOSSIP_SUSPECT:
    case ND_GOSSIP_DEAD: {
        const struct nd_gossip_suspect *s =
            m->type == ND_GOSSIP_SUSPECT ? &m->u.suspect : &m->u.dead;
        if (!nd_mp_name_ok(s->node) || !nd_mp_name_ok(s->from))
            return ND_GOSSIP_E_VALUE;
        nd_mp_w_map(w, 3);
        nd_mp_w_key(w, "From");
        nd_mp_w_str(w, s->from);
        nd_mp_w_key(w, "Incarnation");
        nd_mp_w_uint(w, s->incarnation);
        nd_mp_w_key(w, "Node");
        nd_mp_w_str(w, s->node);
        return 0;
    }
    case ND_GOSSIP_ALIVE: {
        const struct nd_gossip_alive *a = &m->u.alive;
        if (a->meta.len > ND_GOSSIP_META_MAX)
            return ND_GOSSIP_E_LIMIT;
        if (!nd_mp_name_ok(a->node) || !addr_ok(a->addr, false))
            return ND_GOSSIP_E_VALUE;
        w_alive_like(w, "Node", a->node, a->addr, a->port, a->meta, a->incarnation, -1, a->vsn);
        return 0;
    }
    case ND_GOSSIP_ERR:
        if (m->u.err.error.len > BYTES_MAX)
            return ND_GOSSIP_E_LIMIT;
        nd_mp_w_map(w, 1);
        nd_mp_w_key(w, "Error");
        nd_mp_w_str(w, m->u.err.error);
        return 0;
    case ND_GOSSIP_USER:
        if (m->u.user.len > BYTES_MAX)
            return ND_GOSSIP_E_LIMIT;
        nd_mp_w_raw(w, m->u.user.p, m->u.user.len);
        return 0;
    default:
        return ND_GOSSIP_E_MSGTYPE;
    }
}

int nd_gossip_encode(const struct nd_gossip_msg *m, uint8_t *out, size_t cap, size_t *len)
{
    struct nd_mp_w w;
    nd_mp_w_init(&w, out, cap);
    nd_mp_w_raw(&w, &m->type, 1);
    int e = enc_body(&w, m);
    return e ? e : nd_mp_w_done(&w, len);
}

static int check_state(const struct nd_gossip_node_state *s)
{
    if (s->meta.len > ND_GOSSIP_META_MAX)
        return ND_GOSSIP_E_LIMIT;
    if (!nd_mp_name_ok(s->name) || !addr_ok(s->addr, false) || s->state > ND_GOSSIP_STATE_LEFT)
        return ND_GOSSIP_E_VALUE;
    return 0;
}

int nd_gossip_pushpull_encode(bool join, const struct nd_gossip_node_state *states, size_t n,
                              struct nd_gbytes user, uint8_t *out, size_t cap, size_t *len)
{
    if (n > ND_GOSSIP_PUSHPULL_NODES_MAX || user.len > ND_GOSSIP_STREAM_MAX)
        return ND_GOSSIP_E_LIMIT;
    struct nd_mp_w w;
    nd_mp_w_init(&w, out, cap);
    nd_mp_w_raw(&w, (uint8_t[]){ND_GOSSIP_PUSH_PULL}, 1);
    /* {Join Nodes UserStateLen} */
    nd_mp_w_map(&w, 3);
    nd_mp_w_key(&w, "Join");
    nd_mp_w_bool(&w, join);
    nd_mp_w_key(&w, "Nodes");
    nd_mp_w_uint(&w, n);
    nd_mp_w_key(&w, "UserStateLen");
    nd_mp_w_uint(&w, user.len);
    for (size_t i = 0; i < n; i++) {
        const struct nd_gossip_node_state *s = &states[i];
        int e = check_state(s);
        if (e)
            return e;
        w_alive_like(&w, "Name", s->name, s->addr, s->port, s->meta, s->incarnation, s->state,
                     s->vsn);
    }
    nd_mp_w_raw(&w, user.p, user.len);
    return nd_mp_w_done(&w, len);
}

int nd_gossip_user_stream_encode(struct nd_gbytes msg, uint8_t *out, size_t cap, size_t *len)
{
    if (msg.len > ND_GOSSIP_STREAM_MAX)
        return ND_GOSSIP_E_LIMIT;
    struct nd_mp_w w;
    nd_mp_w_init(&w, out, cap);
    nd_mp_w_raw(&w, (uint8_t[]){ND_GOSSIP_USER}, 1);
    nd_mp_w_map(&w, 1);
    nd_mp_w_key(&w, "UserMsgLen");
    nd_mp_w_uint(&w, msg.len);
    nd_mp_w_raw(&w, msg.p, msg.len);
    return nd_mp_w_done(&w, len);
}

/* ---- compound ---- */

int nd_gossip_compound_encode(const struct nd_gbytes *parts, size_t n, uint8_t *out, size_t cap,
                              size_t *len)
{
    if (n == 0)
        return ND_GOSSIP_E_EMPTY;
    if (n > ND_GOSSIP_COMPOUND_MAX)
        return ND_GOSSIP_E_LIMIT;
    size_t total = 2 + 2 * n;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].len == 0)
            return ND_GOSSIP_E_EMPTY;
        if (parts[i].len > ND_GOSSIP_PART_MAX)
            return ND_GOSSIP_E_LIMIT;
        total += parts[i].len;
    }
    if (total > cap)
        return ND_GOSSIP_E_SPACE;
    out[0] = ND_GOSSIP_COMPOUND;
    out[1] = (uint8_t)n;
    uint8_t *p = out + 2 + 2 * n;
    for (size_t i = 0; i < n; i++) {
        out[2 + 2 * i] = (uint8_t)(parts[i].len >> 8);
        out[3 + 2 * i] = (uint8_t)parts[i].len;
        memcpy(p, parts[i].p, parts[i].len);
        p += parts[i].len;
    }
    *len = total;
    return 0;
}

int nd_gossip_compound_split(const uint8_t *msg, size_t len, struct nd_gbytes *parts, size_t cap,
                             size_t *n)
{
    *n = 0;
    if (len < 1 || msg[0] != ND_GOSSIP_COMPOUND)
        return len < 1 ? ND_GOSSIP_E_TRUNC : ND_GOSSIP_E_MSGTYPE;
    if (len < 2)
        return ND_GOSSIP_E_TRUNC;
    size_t count = msg[1];
    if (count == 0)
        return ND_GOSSIP_E_EMPTY;
    if (count > cap)
        return ND_GOSSIP_E_LIMIT;
    if (len < 2 + 2 * count)
        return ND_GOSSIP_E_TRUNC;
    size_t off = 2 + 2 * count;
    for (size_t i = 0; i < count; i++)
        if (msg[2 + 2 * i] == 0 && msg[3 + 2 * i] == 0)
            return ND_GOSSIP_E_EMPTY;
    for (size_t i = 0; i < count; i++) {
        size_t pl = (size_t)msg[2 + 2 * i] << 8 | msg[3 + 2 * i];
        if (pl > len - off)
            return ND_GOSSIP_E_TRUNC;
        parts[i].p = msg + off;
        parts[i].len = (uint32_t)pl;
        off += pl;
        *n = i + 1;
    }
    return 0;
}

/* ---- CRC ---- */

static const uint32_t crc_table[256] = {
#include "crc32_table.inc"
};

uint32_t nd_gossip_crc32(const uint8_t *p, size_t len)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < len; i++)
        c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

int nd_gossip_crc_wrap(const uint8_t *msg, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    if (len == 0)
        return ND_GOSSIP_E_EMPTY;
    if (cap < 5 || len > cap - 5)
        return ND_GOSSIP_E_SPACE;
    uint32_t c = nd_gossip_crc32(msg, len);
    out[0] = ND_GOSSIP_HAS_CRC;
    out[1] = (uint8_t)(c >> 24);
    out[2] = (uint8_t)(c >> 16);
    out[3] = (uint8_t)(c >> 8);
    out[4] = (uint8_t)c;
    memmove(out + 5, msg, len);
    *outlen = len + 5;
    return 0;
}

int nd_gossip_crc_check(const uint8_t *pkt, size_t len, struct nd_gbytes *inner)
{
    if (len < 1 || pkt[0] != ND_GOSSIP_HAS_CRC)
        return len < 1 ? ND_GOSSIP_E_TRUNC : ND_GOSSIP_E_MSGTYPE;
    if (len < 5)
        return ND_GOSSIP_E_TRUNC;
    if (len == 5)
        return ND_GOSSIP_E_EMPTY;
    uint32_t want =
        (uint32_t)pkt[1] << 24 | (uint32_t)pkt[2] << 16 | (uint32_t)pkt[3] << 8 | pkt[4];
    if (nd_gossip_crc32(pkt + 5, len - 5) != want)
        return ND_GOSSIP_E_CRC;
    if (len - 5 > BYTES_MAX)
        return ND_GOSSIP_E_LIMIT;
    inner->p = pkt + 5;
    inner->len = (uint32_t)(len - 5);
    return 0;
}

/* ---- compress ---- */

int nd_gossip_compress_encode(const uint8_t *msg, size_t len, uint8_t *out, size_t cap,
                              size_t *outlen)
{
    /* [9] {Algo: 0, Buf: raw(n)}: 1 + 1 + 5 + 1 + 4 = 12 bytes, then a 1-, 3- or 5-byte raw
     * header. Compress after the largest header, then move the data to the real one. */
    enum { FIXED = 12, MAXHDR = 5 };
    if (len == 0)
        return ND_GOSSIP_E_EMPTY;
    if (len > ND_GOSSIP_STREAM_MAX)
        return ND_GOSSIP_E_LIMIT;
    if (cap < FIXED + MAXHDR)
        return ND_GOSSIP_E_SPACE;
    size_t clen;
    int e = nd_lzw_compress(msg, len, out + FIXED + MAXHDR, cap - FIXED - MAXHDR, &clen);
    if (e)
        return e;
    static const uint8_t fixed[FIXED] = {
        ND_GOSSIP_COMPRESS, 0x82, 0xa4, 'A', 'l', 'g', 'o', 0x00, 0xa3, 'B', 'u', 'f'};
    memcpy(out, fixed, FIXED);
    size_t h;
    uint8_t hdr[MAXHDR];
    if (clen < 32) {
        hdr[0] = (uint8_t)(0xa0 | clen), h = 1;
    } else if (clen < 65536) {
        hdr[0] = 0xda, hdr[1] = (uint8_t)(clen >> 8), hdr[2] = (uint8_t)clen, h = 3;
    } else {
        hdr[0] = 0xdb, hdr[1] = (uint8_t)(clen >> 24), hdr[2] = (uint8_t)(clen >> 16);
        hdr[3] = (uint8_t)(clen >> 8), hdr[4] = (uint8_t)clen, h = 5;
    }
    memcpy(out + FIXED, hdr, h);
    memmove(out + FIXED + h, out + FIXED + MAXHDR, clen);
    *outlen = FIXED + h + clen;
    return 0;
}

int nd_gossip_compress_decode(const uint8_t *msg, size_t len, uint8_t *out, size_t cap,
                              size_t *outlen, size_t *consumed)
{
    if (len < 1)
        return ND_GOSSIP_E_TRUNC;
    if (msg[0] != ND_GOSSIP_COMPRESS)
        return ND_GOSSIP_E_MSGTYPE;
    struct nd_mp r;
    nd_mp_init(&r, msg + 1, len - 1);
    uint8_t algo = 0;
    struct nd_gbytes buf = {0};
    FIELDS_BEGIN(&r)
    FIELD("Algo", nd_mp_u8(&r, &algo))
    FIELD("Buf", nd_mp_bytes(&r, &buf, BYTES_MAX))
    FIELDS_END(&r)
    *consumed = (size_t)(r.p - msg);
    if (algo != 0)
        return ND_GOSSIP_E_LZW;
    int e = nd_lzw_decompress(buf.p, buf.len, out, cap, outlen);
    if (e)
        return e;
    return *outlen ? 0 : ND_GOSSIP_E_EMPTY;
}

/* ---- packet walk ---- */

struct walk {
    uint8_t *scratch;
    size_t cap, used;
    nd_gossip_msg_fn fn;
    void *arg;
    int first_err;
};

static void walk_err(struct walk *w, int e)
{
    if (e && !w->first_err)
        w->first_err = e;
}

static void walk(struct walk *w, const uint8_t *p, size_t len, unsigned depth)
{
    if (len == 0) {
        walk_err(w, ND_GOSSIP_E_EMPTY);
        return;
    }
    if (p[0] != ND_GOSSIP_COMPOUND && p[0] != ND_GOSSIP_COMPRESS) {
        w->fn(w->arg, p, len);
        return;
    }
    if (depth >= ND_GOSSIP_NEST_MAX) {
        walk_err(w, ND_GOSSIP_E_LIMIT);
        return;
    }
    if (p[0] == ND_GOSSIP_COMPOUND) {
        struct nd_gbytes parts[255];
        size_t n;
        int e = nd_gossip_compound_split(p, len, parts, 255, &n);
        for (size_t i = 0; i < n; i++)
            walk(w, parts[i].p, parts[i].len, depth + 1);
        walk_err(w, e);
        return;
    }
    size_t out, consumed;
    uint8_t *dst = w->scratch ? w->scratch + w->used : NULL;
    int e = nd_gossip_compress_decode(p, len, dst, w->cap - w->used, &out, &consumed);
    if (e) {
        walk_err(w, e);
        return;
    }
    w->used += out;
    walk(w, dst, out, depth + 1);
}

int nd_gossip_packet_walk(const uint8_t *pkt, size_t len, uint8_t *scratch, size_t cap,
                          nd_gossip_msg_fn fn, void *arg)
{
    struct walk w = {.scratch = scratch, .cap = scratch ? cap : 0, .fn = fn, .arg = arg};
    /* like ingestPacket: a checksum is looked for at the top only */
    if (len >= 1 && pkt[0] == ND_GOSSIP_HAS_CRC) {
        struct nd_gbytes inner;
        int e = nd_gossip_crc_check(pkt, len, &inner);
        if (e)
            return e;
        pkt = inner.p;
        len = inner.len;
    }
    walk(&w, pkt, len, 0);
    return w.first_err;
}

/* ---- stream ---- */

/* Frames a plain (decrypted, decompressed) stream message at p[0..len). */
static int frame(const uint8_t *p, size_t len, struct nd_gossip_stream_msg *m)
{
    if (len == 0)
        return ND_GOSSIP_E_TRUNC;
    struct nd_mp r;
    nd_mp_init(&r, p + 1, len - 1);
    int e;
    m->type = p[0];
    switch (p[0]) {
    case ND_GOSSIP_PING:
    case ND_GOSSIP_ACK:
    case ND_GOSSIP_ERR: {
        struct nd_gossip_msg msg;
        if ((e = nd_mp_skip(&r)))
            return e;
        if ((e = nd_gossip_decode_body(p[0], p + 1, (size_t)(r.p - p - 1), &msg)))
            return e;
        break;
    }
    case ND_GOSSIP_PUSH_PULL: {
        if ((e = dec_pushpull(&r, &m->pp)))
            return e;
        m->states_off = (uint32_t)(r.p - p - 1);
        for (uint32_t i = 0; i < m->pp.nodes; i++) {
            struct nd_gossip_node_state s;
            if ((e = dec_node_state(&r, &s)))
                return e;
        }
        m->states_len = (uint32_t)(r.p - p - 1) - m->states_off;
        if (m->pp.user_state_len > nd_mp_left(&r))
            return ND_GOSSIP_E_TRUNC;
        m->user.p = r.p;
        m->user.len = m->pp.user_state_len;
        r.p += m->pp.user_state_len;
        break;
    }
    case ND_GOSSIP_USER: {
        uint32_t ul;
        if ((e = dec_user_hdr(&r, &ul)))
            return e;
        if (ul > nd_mp_left(&r))
            return ND_GOSSIP_E_TRUNC;
        m->user.p = r.p;
        m->user.len = ul;
        r.p += ul;
        break;
    }
    default:
        return ND_GOSSIP_E_MSGTYPE;
    }
    m->body.p = p + 1;
    m->body.len = (uint32_t)(r.p - p - 1);
    if ((size_t)(r.p - p) > ND_GOSSIP_STREAM_MAX)
        return ND_GOSSIP_E_LIMIT;
    m->consumed = (size_t)(r.p - p);
    return 0;
}

int nd_gossip_stream_parse(const uint8_t *in, size_t len, const struct nd_keyring *kr,
                           uint8_t *scratch, size_t cap, struct nd_gossip_stream_msg *m)
{
    memset(m, 0, sizeof *m);
    if (len == 0)
        return ND_GOSSIP_E_TRUNC;
    bool keyed = kr && kr->n > 0;
    const uint8_t *p = in;
    size_t plen = len, consumed = 0, used = 0;
    int e;

    if (in[0] == ND_GOSSIP_ENCRYPT) {
        if (!keyed)
            return ND_GOSSIP_E_KEY;
        if (len < 5)
            return ND_GOSSIP_E_TRUNC;
        uint32_t n = (uint32_t)in[1] << 24 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 8 | in[4];
        if (n > ND_GOSSIP_STREAM_MAX)
            return ND_GOSSIP_E_LIMIT;
        if (len - 5 < n)
            return ND_GOSSIP_E_TRUNC;
        if ((e = nd_gossip_decrypt(kr, in + 5, n, in, 5, scratch, cap, &plen)))
            return e;
        p = scratch;
        used = plen;
        consumed = 5 + (size_t)n;
        m->encrypted = true;
        if (plen == 0)
            return ND_GOSSIP_E_EMPTY;
    } else if (keyed) {
        return ND_GOSSIP_E_PLAIN;
    }

    if (p[0] == ND_GOSSIP_COMPRESS) {
        size_t dlen, clen;
        if (!scratch || used > cap)
            return ND_GOSSIP_E_SPACE;
        e = nd_gossip_compress_decode(p, plen, scratch + used, cap - used, &dlen, &clen);
        if (e)
            return e == ND_GOSSIP_E_TRUNC && m->encrypted ? ND_GOSSIP_E_VALUE : e;
        if (!m->encrypted)
            consumed = clen;
        p = scratch + used;
        plen = dlen;
        m->compressed = true;
    }

    e = frame(p, plen, m);
    if (e == ND_GOSSIP_E_TRUNC && (m->encrypted || m->compressed))
        return ND_GOSSIP_E_VALUE; /* a complete frame whose content is cut short */
    if (e)
        return e;
    if (m->encrypted || m->compressed)
        m->consumed = consumed;
    return 0;
}
