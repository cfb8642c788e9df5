/* serf messages, tags and coordinates: see serf.h. */
#include <string.h>

#include "mp.h"
#include "serf.h"

#define BYTES_MAX ND_GOSSIP_STREAM_MAX

/* A container kept raw: its count and the bytes of its elements. */
static int get_raw(struct nd_mp *r, bool map, uint32_t *n, struct nd_gbytes *raw)
{
    int e = map ? nd_mp_map(r, n) : nd_mp_array(r, n);
    if (e)
        return e;
    const uint8_t *start = r->p;
    for (uint64_t i = 0; i < (uint64_t)*n * (map ? 2 : 1); i++)
        if ((e = nd_mp_skip(r)))
            return e;
    raw->p = start;
    raw->len = (uint32_t)(r->p - start);
    return 0;
}

static int dec_join(struct nd_mp *r, struct nd_serf_join *j)
{
    FIELDS_BEGIN(r)
    FIELD("LTime", nd_mp_u64(r, &j->ltime))
    FIELD("Node", nd_mp_name(r, &j->node))
    FIELDS_END(r)
    return 0;
}

static int dec_leave(struct nd_mp *r, struct nd_serf_leave *l)
{
    FIELDS_BEGIN(r)
    FIELD("LTime", nd_mp_u64(r, &l->ltime))
    FIELD("Node", nd_mp_name(r, &l->node))
    FIELD("Prune", nd_mp_bool(r, &l->prune))
    FIELDS_END(r)
    return 0;
}

static int dec_event(struct nd_mp *r, struct nd_serf_user_event *ev)
{
    FIELDS_BEGIN(r)
    FIELD("LTime", nd_mp_u64(r, &ev->ltime))
    FIELD("Name", nd_mp_str(r, &ev->name, BYTES_MAX))
    FIELD("Payload", nd_mp_bytes(r, &ev->payload, BYTES_MAX))
    FIELD("CC", nd_mp_bool(r, &ev->cc))
    FIELDS_END(r)
    return 0;
}

static int dec_query(struct nd_mp *r, struct nd_serf_query *q)
{
    FIELDS_BEGIN(r)
    FIELD("LTime", nd_mp_u64(r, &q->ltime))
    FIELD("ID", nd_mp_u32(r, &q->id))
    FIELD("Addr", nd_mp_bytes(r, &q->addr, 16))
    FIELD("Port", nd_mp_u16(r, &q->port))
    FIELD("SourceNode", nd_mp_name(r, &q->source_node))
    FIELD("Filters", get_raw(r, false, &q->nfilters, &q->filters))
    FIELD("Flags", nd_mp_u32(r, &q->flags))
    FIELD("RelayFactor", nd_mp_u8(r, &q->relay_factor))
    FIELD("Timeout", nd_mp_int(r, INT64_MIN, INT64_MAX, &q->timeout_ns))
    FIELD("Name", nd_mp_str(r, &q->name, BYTES_MAX))
    FIELD("Payload", nd_mp_bytes(r, &q->payload, BYTES_MAX))
    FIELDS_END(r)
    return 0;
}

static int dec_response(struct nd_mp *r, struct nd_serf_query_response *q)
{
    FIELDS_BEGIN(r)
    FIELD("LTime", nd_mp_u64(r, &q->ltime))
    FIELD("ID", nd_mp_u32(r, &q->id))
    FIELD("From", nd_mp_name(r, &q->from))
    FIELD("Flags", nd_mp_u32(r, &q->flags))
    FIELD("Payload", nd_mp_bytes(r, &q->payload, BYTES_MAX))
    FIELDS_END(r)
    return 0;
}

static int dec_key_req(struct nd_mp *r, struct nd_serf_key_request *k)
{
    FIELDS_BEGIN(r)
    FIELD("Key", nd_mp_bytes(r, &k->key, ND_SERF_KEY_BYTES_MAX))
    FIELDS_END(r)
    return 0;
}

static int dec_key_resp(struct nd_mp *r, struct nd_serf_key_response *k)
{
    FIELDS_BEGIN(r)
    FIELD("Result", nd_mp_bool(r, &k->result))
    FIELD("Message", nd_mp_str(r, &k->message, BYTES_MAX))
    FIELD("Keys", get_raw(r, false, &k->nkeys, &k->keys))
    FIELD("PrimaryKey", nd_mp_str(r, &k->primary_key, BYTES_MAX))
    FIELDS_END(r)
    return 0;
}

static int get_port_int(struct nd_mp *r, uint16_t *port)
{
    int64_t v;
    int e = nd_mp_int(r, 0, UINT16_MAX, &v);
    if (!e)
        *port = (uint16_t)v;
    return e;
}

/* net.UDPAddr {IP, Port, Zone} */
static int dec_udpaddr(struct nd_mp *r, struct nd_serf_relay *rl)
{
    struct nd_gbytes zone;
    FIELDS_BEGIN(r)
    FIELD("IP", nd_mp_bytes(r, &rl->dest_ip, 16))
    FIELD("Port", get_port_int(r, &rl->dest_port))
    FIELD("Zone", nd_mp_str(r, &zone, ND_GOSSIP_NAME_MAX))
    FIELDS_END(r)
    return 0;
}

static int dec_relay(struct nd_mp *r, struct nd_serf_relay *rl)
{
    FIELDS_BEGIN(r)
    FIELD("DestAddr", dec_udpaddr(r, rl))
    FIELD("DestName", nd_mp_name(r, &rl->dest_name))
    FIELDS_END(r)
    rl->inner.p = r->p;
    rl->inner.len = (uint32_t)nd_mp_left(r);
    return 0;
}

static int get_status(struct nd_mp *r, uint8_t *st)
{
    int64_t v;
    int e = nd_mp_int(r, 0, UINT8_MAX, &v);
    if (!e)
        *st = (uint8_t)v;
    return e;
}

static int dec_member(struct nd_mp *r, struct nd_serf_member *m)
{
    uint32_t nt;
    if (nd_mp_left(r) > 0 && *r->p == 0xc0) {
        m->nil = true;
        r->p++;
        return 0;
    }
    FIELDS_BEGIN(r)
    FIELD("Name", nd_mp_name(r, &m->name))
    FIELD("Addr", nd_mp_bytes(r, &m->addr, 16))
    FIELD("Port", nd_mp_u16(r, &m->port))
    FIELD("Tags", get_raw(r, true, &nt, &m->tags_raw))
    FIELD("Status", get_status(r, &m->status))
    FIELD("ProtocolMin", nd_mp_u8(r, &m->vsn[0]))
    FIELD("ProtocolMax", nd_mp_u8(r, &m->vsn[1]))
    FIELD("ProtocolCur", nd_mp_u8(r, &m->vsn[2]))
    FIELD("DelegateMin", nd_mp_u8(r, &m->vsn[3]))
    FIELD("DelegateMax", nd_mp_u8(r, &m->vsn[4]))
    FIELD("DelegateCur", nd_mp_u8(r, &m->vsn[5]))
    FIELDS_END(r)
    m->ntags = nt;
    return 0;
}

static int dec_pushpull(struct nd_mp *r, struct nd_serf_pushpull *pp)
{
    FIELDS_BEGIN(r)
    FIELD("LTime", nd_mp_u64(r, &pp->ltime))
    FIELD("StatusLTimes", get_raw(r, true, &pp->nstatus, &pp->status_ltimes))
    FIELD("LeftMembers", get_raw(r, false, &pp->nleft, &pp->left_members))
    FIELD("EventLTime", nd_mp_u64(r, &pp->event_ltime))
    FIELD("Events", get_raw(r, false, &pp->nevents, &pp->events))
    FIELD("QueryLTime", nd_mp_u64(r, &pp->query_ltime))
    FIELDS_END(r)
    return 0;
}

int nd_serf_decode(const uint8_t *buf, size_t len, struct nd_serf_msg *m)
{
    memset(m, 0, sizeof *m);
    if (len == 0)
        return ND_GOSSIP_E_EMPTY;
    if (len - 1 > BYTES_MAX)
        return ND_GOSSIP_E_LIMIT;
    m->type = buf[0];
    m->body.p = buf + 1;
    m->body.len = (uint32_t)(len - 1);
    struct nd_mp r;
    nd_mp_init(&r, buf + 1, len - 1);
    switch (buf[0]) {
    case ND_SERF_LEAVE:
        return dec_leave(&r, &m->u.leave);
    case ND_SERF_JOIN:
        return dec_join(&r, &m->u.join);
    case ND_SERF_PUSH_PULL:
        return dec_pushpull(&r, &m->u.pp);
    case ND_SERF_USER_EVENT:
        return dec_event(&r, &m->u.event);
    case ND_SERF_QUERY:
        return dec_query(&r, &m->u.query);
    case ND_SERF_QUERY_RESPONSE:
        return dec_response(&r, &m->u.response);
    case ND_SERF_CONFLICT_RESPONSE:
        return dec_member(&r, &m->u.conflict);
    case ND_SERF_KEY_REQUEST:
        return dec_key_req(&r, &m->u.key_req);
    case ND_SERF_KEY_RESPONSE:
        return dec_key_resp(&r, &m->u.key_resp);
    case ND_SERF_RELAY:
        return dec_relay(&r, &m->u.relay);
    default:
        return ND_GOSSIP_E_MSGTYPE;
    }
}

int nd_serf_filter_next(struct nd_gbytes *rest, struct nd_serf_filter *f)
{
    struct nd_mp r, fr;
    struct nd_gbytes raw;
    int e;

    memset(f, 0, sizeof *f);
    nd_mp_init(&r, rest->p, rest->len);
    if ((e = nd_mp_bytes(&r, &raw, ND_SERF_FILTER_BYTES_MAX)))
        return e;
    rest->len -= (uint32_t)(r.p - rest->p);
    rest->p = r.p;
    if (raw.len == 0)
        return ND_GOSSIP_E_EMPTY;
    f->type = raw.p[0];
    nd_mp_init(&fr, raw.p + 1, raw.len - 1);
    if (f->type == ND_SERF_FILTER_NODE)
        return get_raw(&fr, false, &f->nnodes, &f->nodes);
    if (f->type == ND_SERF_FILTER_TAG) {
        FIELDS_BEGIN(&fr)
        FIELD("Tag", nd_mp_str(&fr, &f->tag, ND_SERF_FILTER_BYTES_MAX))
        FIELD("Expr", nd_mp_str(&fr, &f->expr, ND_SERF_FILTER_BYTES_MAX))
        FIELDS_END(&fr)
    }
    return 0;
}

int nd_serf_filter_encode(const struct nd_serf_filter *f, uint8_t *out, size_t cap, size_t *len)
{
    struct nd_mp_w w;
    nd_mp_w_init(&w, out, cap);
    nd_mp_w_raw(&w, &f->type, 1);
    if (f->type == ND_SERF_FILTER_NODE) {
        nd_mp_w_array(&w, f->nnodes);
        for (uint32_t i = 0; i < f->nnodes; i++)
            nd_mp_w_str(&w, f->nodes_list[i]);
    } else if (f->type == ND_SERF_FILTER_TAG) {
        nd_mp_w_map(&w, 2);
        nd_mp_w_key(&w, "Expr");
        nd_mp_w_str(&w, f->expr);
        nd_mp_w_key(&w, "Tag");
        nd_mp_w_str(&w, f->tag);
    } else {
        return ND_GOSSIP_E_VALUE;
    }
    return nd_mp_w_done(&w, len);
}

int nd_serf_status_next(struct nd_gbytes *rest, struct nd_serf_status *st)
{
    struct nd_mp r;
    nd_mp_init(&r, rest->p, rest->len);
    int e = nd_mp_str(&r, &st->name, ND_GOSSIP_NAME_MAX);
    if (!e)
        e = nd_mp_u64(&r, &st->ltime);
    if (e)
        return e;
    rest->len -= (uint32_t)(r.p - rest->p);
    rest->p = r.p;
    return 0;
}

int nd_serf_left_next(struct nd_gbytes *rest, struct nd_gbytes *name)
{
    struct nd_mp r;
    nd_mp_init(&r, rest->p, rest->len);
    int e = nd_mp_str(&r, name, ND_GOSSIP_NAME_MAX);
    if (e)
        return e;
    rest->len -= (uint32_t)(r.p - rest->p);
    rest->p = r.p;
    return 0;
}

static int dec_group(struct nd_mp *r, struct nd_serf_event_group *g)
{
    FIELDS_BEGIN(r)
    FIELD("LTime", nd_mp_u64(r, &g->ltime))
    FIELD("Events", get_raw(r, false, &g->n, &g->raw))
    FIELDS_END(r)
    return 0;
}

static int dec_item(struct nd_mp *r, struct nd_serf_event_item *it)
{
    FIELDS_BEGIN(r)
    FIELD("Name", nd_mp_str(r, &it->name, BYTES_MAX))
    FIELD("Payload", nd_mp_bytes(r, &it->payload, BYTES_MAX))
    FIELDS_END(r)
    return 0;
}

/* Runs dec on one element of *rest and moves *rest past it. */
#define NEXT_ELEMENT(rest, dec, out)                                                               \
    do {                                                                                           \
        struct nd_mp r_;                                                                           \
        int e2_;                                                                                   \
        memset((out), 0, sizeof *(out));                                                           \
        nd_mp_init(&r_, (rest)->p, (rest)->len);                                                   \
        if ((e2_ = dec(&r_, (out))))                                                               \
            return e2_;                                                                            \
        (rest)->len -= (uint32_t)(r_.p - (rest)->p);                                               \
        (rest)->p = r_.p;                                                                          \
        return 0;                                                                                  \
    } while (0)

int nd_serf_event_group_next(struct nd_gbytes *rest, struct nd_serf_event_group *g)
{
    NEXT_ELEMENT(rest, dec_group, g);
}

int nd_serf_event_item_next(struct nd_gbytes *rest, struct nd_serf_event_item *it)
{
    NEXT_ELEMENT(rest, dec_item, it);
}

/* serf userEvents {Events LTime}, each userEvent {Name Payload} */
static int enc_groups(struct nd_mp_w *w, const struct nd_serf_pushpull *pp)
{
    nd_mp_w_array(w, pp->ngroups);
    for (uint32_t i = 0; i < pp->ngroups; i++) {
        const struct nd_serf_event_group *g = &pp->groups[i];

        nd_mp_w_map(w, 2);
        nd_mp_w_key(w, "Events");
        nd_mp_w_array(w, g->n);
        for (uint32_t k = 0; k < g->n; k++) {
            if (g->ev[k].name.len > BYTES_MAX || g->ev[k].payload.len > BYTES_MAX)
                return ND_GOSSIP_E_LIMIT;
            nd_mp_w_map(w, 2);
            nd_mp_w_key(w, "Name");
            nd_mp_w_str(w, g->ev[k].name);
            nd_mp_w_key(w, "Payload");
            nd_mp_w_bytes(w, g->ev[k].payload);
        }
        nd_mp_w_key(w, "LTime");
        nd_mp_w_uint(w, g->ltime);
    }
    return 0;
}

int nd_serf_encode(const struct nd_serf_msg *m, uint8_t *out, size_t cap, size_t *len)
{
    struct nd_mp_w w;
    nd_mp_w_init(&w, out, cap);
    nd_mp_w_raw(&w, &m->type, 1);
    switch (m->type) {
    case ND_SERF_LEAVE: {
        const struct nd_serf_leave *l = &m->u.leave;
        if (!nd_mp_name_ok(l->node))
            return ND_GOSSIP_E_VALUE;
        nd_mp_w_map(&w, 3);
        nd_mp_w_key(&w, "LTime");
        nd_mp_w_uint(&w, l->ltime);
        nd_mp_w_key(&w, "Node");
        nd_mp_w_str(&w, l->node);
        nd_mp_w_key(&w, "Prune");
        nd_mp_w_bool(&w, l->prune);
        break;
    }
    case ND_SERF_JOIN: {
        const struct nd_serf_join *j = &m->u.join;
        if (!nd_mp_name_ok(j->node))
            return ND_GOSSIP_E_VALUE;
        nd_mp_w_map(&w, 2);
        nd_mp_w_key(&w, "LTime");
        nd_mp_w_uint(&w, j->ltime);
        nd_mp_w_key(&w, "Node");
        nd_mp_w_str(&w, j->node);
        break;
    }
    case ND_SERF_USER_EVENT: {
        const struct nd_serf_user_event *ev = &m->u.event;
        if (ev->name.len > BYTES_MAX || ev->payload.len > BYTES_MAX)
            return ND_GOSSIP_E_LIMIT;
        /* {CC LTime Name Payload} */
        nd_mp_w_map(&w, 4);
        nd_mp_w_key(&w, "CC");
        nd_mp_w_bool(&w, ev->cc);
        nd_mp_w_key(&w, "LTime");
        nd_mp_w_uint(&w, ev->ltime);
        nd_mp_w_key(&w, "Name");
        nd_mp_w_str(&w, ev->name);
        nd_mp_w_key(&w, "Payload");
        nd_mp_w_bytes(&w, ev->payload);
        break;
    }
    case ND_SERF_QUERY_RESPONSE: {
        const struct nd_serf_query_response *q = &m->u.response;
        if (!nd_mp_name_ok(q->from))
            return ND_GOSSIP_E_VALUE;
        if (q->payload.len > BYTES_MAX)
            return ND_GOSSIP_E_LIMIT;
        /* {Flags From ID LTime Payload} */
        nd_mp_w_map(&w, 5);
        nd_mp_w_key(&w, "Flags");
        nd_mp_w_uint(&w, q->flags);
        nd_mp_w_key(&w, "From");
        nd_mp_w_str(&w, q->from);
        nd_mp_w_key(&w, "ID");
        nd_mp_w_uint(&w, q->id);
        nd_mp_w_key(&w, "LTime");
        nd_mp_w_uint(&w, q->ltime);
        nd_mp_w_key(&w, "Payload");
        nd_mp_w_bytes(&w, q->payload);
        break;
    }
    case ND_SERF_QUERY: {
        const struct nd_serf_query *q = &m->u.query;
        if (!nd_mp_name_ok(q->source_node) || (q->addr.len != 4 && q->addr.len != 16) ||
            (q->nfilters && !q->filter_list))
            return ND_GOSSIP_E_VALUE;
        if (q->name.len > BYTES_MAX || q->payload.len > BYTES_MAX)
            return ND_GOSSIP_E_LIMIT;
        /* {Addr Filters Flags ID LTime Name Payload Port RelayFactor SourceNode Timeout} */
        nd_mp_w_map(&w, 11);
        nd_mp_w_key(&w, "Addr");
        nd_mp_w_bytes(&w, q->addr);
        nd_mp_w_key(&w, "Filters");
        if (q->nfilters == 0) {
            nd_mp_w_nil(&w);
        } else {
            nd_mp_w_array(&w, q->nfilters);
            for (uint32_t i = 0; i < q->nfilters; i++)
                nd_mp_w_bytes(&w, q->filter_list[i]);
        }
        nd_mp_w_key(&w, "Flags");
        nd_mp_w_uint(&w, q->flags);
        nd_mp_w_key(&w, "ID");
        nd_mp_w_uint(&w, q->id);
        nd_mp_w_key(&w, "LTime");
        nd_mp_w_uint(&w, q->ltime);
        nd_mp_w_key(&w, "Name");
        nd_mp_w_str(&w, q->name);
        nd_mp_w_key(&w, "Payload");
        nd_mp_w_bytes(&w, q->payload);
        nd_mp_w_key(&w, "Port");
        nd_mp_w_uint(&w, q->port);
        nd_mp_w_key(&w, "RelayFactor");
        nd_mp_w_uint(&w, q->relay_factor);
        nd_mp_w_key(&w, "SourceNode");
        nd_mp_w_str(&w, q->source_node);
        nd_mp_w_key(&w, "Timeout");
        nd_mp_w_int(&w, q->timeout_ns);
        break;
    }
    case ND_SERF_CONFLICT_RESPONSE: {
        const struct nd_serf_member *mb = &m->u.conflict;
        if (mb->nil) {
            nd_mp_w_nil(&w);
            break;
        }
        if (!nd_mp_name_ok(mb->name) || mb->addr.len > 16 || mb->ntags > ND_GOSSIP_META_MAX)
            return ND_GOSSIP_E_VALUE;
        /* {Addr DelegateCur DelegateMax DelegateMin Name Port ProtocolCur ProtocolMax
         *  ProtocolMin Status Tags} */
        nd_mp_w_map(&w, 11);
        nd_mp_w_key(&w, "Addr");
        nd_mp_w_bytes(&w, mb->addr);
        nd_mp_w_key(&w, "DelegateCur");
        nd_mp_w_uint(&w, mb->vsn[5]);
        nd_mp_w_key(&w, "DelegateMax");
        nd_mp_w_uint(&w, mb->vsn[4]);
        nd_mp_w_key(&w, "DelegateMin");
        nd_mp_w_uint(&w, mb->vsn[3]);
        nd_mp_w_key(&w, "Name");
        nd_mp_w_str(&w, mb->name);
        nd_mp_w_key(&w, "Port");
        nd_mp_w_uint(&w, mb->port);
        nd_mp_w_key(&w, "ProtocolCur");
        nd_mp_w_uint(&w, mb->vsn[2]);
        nd_mp_w_key(&w, "ProtocolMax");
        nd_mp_w_uint(&w, mb->vsn[1]);
        nd_mp_w_key(&w, "ProtocolMin");
        nd_mp_w_uint(&w, mb->vsn[0]);
        nd_mp_w_key(&w, "Status");
        nd_mp_w_uint(&w, mb->status);
        nd_mp_w_key(&w, "Tags");
        if (!mb->tags) {
            nd_mp_w_nil(&w);
        } else {
            nd_mp_w_map(&w, mb->ntags);
            for (uint32_t i = 0; i < mb->ntags; i++) {
                nd_mp_w_str(&w, mb->tags[i].key);
                nd_mp_w_str(&w, mb->tags[i].value);
            }
        }
        break;
    }
    case ND_SERF_KEY_REQUEST:
        if (m->u.key_req.key.len > ND_SERF_KEY_BYTES_MAX)
            return ND_GOSSIP_E_LIMIT;
        nd_mp_w_map(&w, 1);
        nd_mp_w_key(&w, "Key");
        nd_mp_w_bytes(&w, m->u.key_req.key);
        break;
    case ND_SERF_KEY_RESPONSE: {
        const struct nd_serf_key_response *k = &m->u.key_resp;
        if (k->message.len > BYTES_MAX || k->primary_key.len > BYTES_MAX)
            return ND_GOSSIP_E_LIMIT;
        /* {Keys Message PrimaryKey Result} */
        nd_mp_w_map(&w, 4);
        nd_mp_w_key(&w, "Keys");
        if (!k->keys_list) {
            nd_mp_w_nil(&w);
        } else {
            nd_mp_w_array(&w, k->nkeys);
            for (uint32_t i = 0; i < k->nkeys; i++)
                nd_mp_w_str(&w, k->keys_list[i]);
        }
        nd_mp_w_key(&w, "Message");
        nd_mp_w_str(&w, k->message);
        nd_mp_w_key(&w, "PrimaryKey");
        nd_mp_w_str(&w, k->primary_key);
        nd_mp_w_key(&w, "Result");
        nd_mp_w_bool(&w, k->result);
        break;
    }
    case ND_SERF_RELAY: {
        const struct nd_serf_relay *rl = &m->u.relay;
        if (!nd_mp_name_ok(rl->dest_name) || (rl->dest_ip.len != 4 && rl->dest_ip.len != 16))
            return ND_GOSSIP_E_VALUE;
        /* {DestAddr {IP Port Zone} DestName} */
        nd_mp_w_map(&w, 2);
        nd_mp_w_key(&w, "DestAddr");
        nd_mp_w_map(&w, 3);
        nd_mp_w_key(&w, "IP");
        nd_mp_w_bytes(&w, rl->dest_ip);
        nd_mp_w_key(&w, "Port");
        nd_mp_w_uint(&w, rl->dest_port);
        nd_mp_w_key(&w, "Zone");
        nd_mp_w_str(&w, (struct nd_gbytes){NULL, 0});
        nd_mp_w_key(&w, "DestName");
        nd_mp_w_str(&w, rl->dest_name);
        nd_mp_w_raw(&w, rl->inner.p, rl->inner.len);
        break;
    }
    case ND_SERF_PUSH_PULL: {
        const struct nd_serf_pushpull *pp = &m->u.pp;
        if (pp->nstatus > ND_GOSSIP_PUSHPULL_NODES_MAX || pp->nleft > ND_GOSSIP_PUSHPULL_NODES_MAX)
            return ND_GOSSIP_E_LIMIT;
        /* {EventLTime Events LTime LeftMembers QueryLTime StatusLTimes} */
        nd_mp_w_map(&w, 6);
        nd_mp_w_key(&w, "EventLTime");
        nd_mp_w_uint(&w, pp->event_ltime);
        nd_mp_w_key(&w, "Events");
        if (enc_groups(&w, pp))
            return ND_GOSSIP_E_LIMIT;
        nd_mp_w_key(&w, "LTime");
        nd_mp_w_uint(&w, pp->ltime);
        nd_mp_w_key(&w, "LeftMembers");
        nd_mp_w_array(&w, pp->nleft);
        for (uint32_t i = 0; i < pp->nleft; i++) {
            if (!nd_mp_name_ok(pp->left[i]))
                return ND_GOSSIP_E_VALUE;
            nd_mp_w_str(&w, pp->left[i]);
        }
        nd_mp_w_key(&w, "QueryLTime");
        nd_mp_w_uint(&w, pp->query_ltime);
        nd_mp_w_key(&w, "StatusLTimes");
        nd_mp_w_map(&w, pp->nstatus);
        for (uint32_t i = 0; i < pp->nstatus; i++) {
            if (!nd_mp_name_ok(pp->status[i].name))
                return ND_GOSSIP_E_VALUE;
            nd_mp_w_str(&w, pp->status[i].name);
            nd_mp_w_uint(&w, pp->status[i].ltime);
        }
        break;
    }
    default:
        return ND_GOSSIP_E_MSGTYPE;
    }
    return nd_mp_w_done(&w, len);
}

int nd_serf_tags_encode(const struct nd_serf_tag *tags, size_t n, uint8_t *out, size_t cap,
                        size_t *len)
{
    if (n > ND_GOSSIP_META_MAX / 2)
        return ND_GOSSIP_E_LIMIT;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (tags[i].key.len == tags[j].key.len &&
                (tags[i].key.len == 0 || !memcmp(tags[i].key.p, tags[j].key.p, tags[i].key.len)))
                return ND_GOSSIP_E_VALUE;
    uint8_t buf[ND_GOSSIP_META_MAX];
    struct nd_mp_w w;
    nd_mp_w_init(&w, buf, sizeof buf);
    nd_mp_w_raw(&w, (uint8_t[]){ND_SERF_TAG_MAGIC}, 1);
    nd_mp_w_map(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        nd_mp_w_str(&w, tags[i].key);
        nd_mp_w_str(&w, tags[i].value);
    }
    size_t l;
    if (nd_mp_w_done(&w, &l))
        return ND_GOSSIP_E_LIMIT;
    if (l > cap)
        return ND_GOSSIP_E_SPACE;
    memcpy(out, buf, l);
    *len = l;
    return 0;
}

int nd_serf_tags_decode(const uint8_t *meta, size_t len, struct nd_serf_tag *tags, size_t cap,
                        size_t *n)
{
    *n = 0;
    if (len > ND_GOSSIP_META_MAX)
        return ND_GOSSIP_E_LIMIT;
    if (len == 0)
        return 0;
    if (meta[0] != ND_SERF_TAG_MAGIC) {
        if (cap < 1)
            return ND_GOSSIP_E_LIMIT;
        tags[0].key = (struct nd_gbytes){(const uint8_t *)"role", 4};
        tags[0].value = (struct nd_gbytes){meta, (uint32_t)len};
        *n = 1;
        return 0;
    }
    struct nd_mp r;
    nd_mp_init(&r, meta + 1, len - 1);
    uint32_t count;
    int e = nd_mp_map(&r, &count);
    if (e)
        return e;
    if (count > cap)
        return ND_GOSSIP_E_LIMIT;
    for (uint32_t i = 0; i < count; i++) {
        if ((e = nd_mp_str(&r, &tags[i].key, ND_GOSSIP_META_MAX)) ||
            (e = nd_mp_str(&r, &tags[i].value, ND_GOSSIP_META_MAX)))
            return e;
        if (!tags[i].key.p)
            tags[i].key.p = meta; /* nil key: an empty string */
        if (!tags[i].value.p)
            tags[i].value.p = meta;
    }
    *n = count;
    return 0;
}

int nd_serf_coord_encode(const struct nd_serf_coord *c, uint8_t *out, size_t cap, size_t *len)
{
    if (c->dim > ND_SERF_COORD_DIM_MAX)
        return ND_GOSSIP_E_LIMIT;
    struct nd_mp_w w;
    nd_mp_w_init(&w, out, cap);
    nd_mp_w_raw(&w, (uint8_t[]){ND_SERF_PING_VERSION}, 1);
    nd_mp_w_map(&w, 4);
    nd_mp_w_key(&w, "Adjustment");
    nd_mp_w_double(&w, c->adjustment);
    nd_mp_w_key(&w, "Error");
    nd_mp_w_double(&w, c->error);
    nd_mp_w_key(&w, "Height");
    nd_mp_w_double(&w, c->height);
    nd_mp_w_key(&w, "Vec");
    nd_mp_w_array(&w, c->dim);
    for (uint32_t i = 0; i < c->dim; i++)
        nd_mp_w_double(&w, c->vec[i]);
    return nd_mp_w_done(&w, len);
}

static int get_vec(struct nd_mp *r, struct nd_serf_coord *c)
{
    uint32_t n;
    int e = nd_mp_array(r, &n);
    if (e)
        return e;
    if (n > ND_SERF_COORD_DIM_MAX)
        return ND_GOSSIP_E_LIMIT;
    for (uint32_t i = 0; i < n; i++)
        if ((e = nd_mp_float(r, &c->vec[i])))
            return e;
    c->dim = n;
    return 0;
}

int nd_serf_coord_decode(const uint8_t *payload, size_t len, struct nd_serf_coord *c)
{
    memset(c, 0, sizeof *c);
    if (len == 0)
        return ND_GOSSIP_E_EMPTY;
    if (payload[0] != ND_SERF_PING_VERSION)
        return ND_GOSSIP_E_VALUE;
    struct nd_mp r;
    nd_mp_init(&r, payload + 1, len - 1);
    FIELDS_BEGIN(&r)
    FIELD("Adjustment", nd_mp_float(&r, &c->adjustment))
    FIELD("Error", nd_mp_float(&r, &c->error))
    FIELD("Height", nd_mp_float(&r, &c->height))
    FIELD("Vec", get_vec(&r, c))
    FIELDS_END(&r)
    return 0;
}
