/* msgpack cursor reader and bounded writer for the gossip layer: see mp.h. */
#include <string.h>

#include "mp.h"

enum mp_kind { K_NIL, K_BOOL, K_UINT, K_NEG, K_F32, K_F64, K_STR, K_BIN, K_ARRAY, K_MAP, K_EXT };

struct mp_val {
    enum mp_kind kind;
    uint64_t u; /* K_BOOL 0/1, K_UINT value, K_NEG value as int64 bits, K_F* bits;
                 * K_STR/K_BIN/K_EXT byte length (EXT: payload + type byte); K_ARRAY/K_MAP
                 * element count */
};

static uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads one value header (and for scalars the whole value). Lengths and counts are not yet
 * checked against the input. */
static int head(struct nd_mp *r, struct mp_val *v)
{
    static const uint8_t extra[32] = {
        /* 0xc0 .. 0xdf: bytes of length/value after the type byte */
        0, 0, 0, 0, 1, 2, 4, 1, 2, 4, 4, 8, 1, 2, 4, 8,
        1, 2, 4, 8, 1, 1, 1, 1, 1, 1, 2, 4, 2, 4, 2, 4,
    };
    if (r->p >= r->end)
        return ND_GOSSIP_E_TRUNC;
    uint8_t b = *r->p;
    if (b <= 0x7f) {
        v->kind = K_UINT, v->u = b;
        r->p++;
        return 0;
    }
    if (b >= 0xe0) {
        v->kind = K_NEG, v->u = (uint64_t)(int64_t)(int8_t)b;
        r->p++;
        return 0;
    }
    if (b <= 0x8f || (b >= 0x90 && b <= 0x9f) || (b >= 0xa0 && b <= 0xbf)) {
        v->kind = b <= 0x8f ? K_MAP : b <= 0x9f ? K_ARRAY : K_STR;
        v->u = b & (b <= 0x9f ? 0x0f : 0x1f);
        r->p++;
        return 0;
    }
    unsigned n = extra[b - 0xc0];
    if (nd_mp_left(r) < 1 + (size_t)n)
        return ND_GOSSIP_E_TRUNC;
    uint64_t x = be(r->p + 1, n);
    switch (b) {
    case 0xc0:
        v->kind = K_NIL, v->u = 0;
        break;
    case 0xc1:
        return ND_GOSSIP_E_TYPE; /* never used */
    case 0xc2:
    case 0xc3:
        v->kind = K_BOOL, v->u = b == 0xc3;
        break;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        v->kind = K_BIN, v->u = x;
        break;
    case 0xc7:
    case 0xc8:
    case 0xc9:
        v->kind = K_EXT, v->u = x + 1;
        break;
    case 0xca:
        v->kind = K_F32, v->u = x;
        break;
    case 0xcb:
        v->kind = K_F64, v->u = x;
        break;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        v->kind = K_UINT, v->u = x;
        break;
    case 0xd0:
        v->kind = K_NEG, v->u = (uint64_t)(int64_t)(int8_t)x;
        break;
    case 0xd1:
        v->kind = K_NEG, v->u = (uint64_t)(int64_t)(int16_t)x;
        break;
    case 0xd2:
        v->kind = K_NEG, v->u = (uint64_t)(int64_t)(int32_t)x;
        break;
    case 0xd3:
        v->kind = K_NEG, v->u = x;
        break;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        /* fixext: the type byte and 1, 2, 4, 8 or 16 data bytes are the payload */
        v->kind = K_EXT, v->u = 1 + ((uint64_t)1 << (b - 0xd4));
        n = 0;
        break;
    case 0xd9:
    case 0xda:
    case 0xdb:
        v->kind = K_STR, v->u = x;
        break;
    case 0xdc:
    case 0xdd:
        v->kind = K_ARRAY, v->u = x;
        break;
    default:
        v->kind = K_MAP, v->u = x;
        break; /* 0xde, 0xdf */
    }
    /* signed encodings of non-negative values are ordinary unsigned values */
    if (v->kind == K_NEG && (int64_t)v->u >= 0)
        v->kind = K_UINT;
    r->p += 1 + n;
    return 0;
}

/* Takes len payload bytes after a header. */
static int payload(struct nd_mp *r, uint64_t len, struct nd_gbytes *s)
{
    if (len > nd_mp_left(r))
        return ND_GOSSIP_E_TRUNC;
    s->p = r->p;
    s->len = (uint32_t)len;
    r->p += len;
    return 0;
}

static int container(struct nd_mp *r, enum mp_kind want, uint32_t *n)
{
    struct mp_val v;
    int e = head(r, &v);
    if (e)
        return e;
    if (v.kind == K_NIL) {
        *n = 0;
        return 0;
    }
    if (v.kind != want)
        return ND_GOSSIP_E_TYPE;
    /* every element takes at least one byte: a count beyond the input cannot be satisfied */
    uint64_t min = want == K_MAP ? 2 * v.u : v.u;
    if (min > nd_mp_left(r))
        return ND_GOSSIP_E_TRUNC;
    *n = (uint32_t)v.u;
    return 0;
}

int nd_mp_map(struct nd_mp *r, uint32_t *n)
{
    return container(r, K_MAP, n);
}

int nd_mp_array(struct nd_mp *r, uint32_t *n)
{
    return container(r, K_ARRAY, n);
}

int nd_mp_key(struct nd_mp *r, struct nd_gbytes *k)
{
    struct mp_val v;
    int e = head(r, &v);
    if (e)
        return e;
    if (v.kind != K_STR)
        return ND_GOSSIP_E_TYPE;
    return payload(r, v.u, k);
}

static int raw(struct nd_mp *r, struct nd_gbytes *s, uint32_t max, bool bin_ok)
{
    struct mp_val v;
    int e = head(r, &v);
    if (e)
        return e;
    if (v.kind == K_NIL) {
        s->p = NULL;
        s->len = 0;
        return 0;
    }
    if (v.kind != K_STR && !(bin_ok && v.kind == K_BIN))
        return ND_GOSSIP_E_TYPE;
    if (v.u > max)
        return ND_GOSSIP_E_LIMIT;
    return payload(r, v.u, s);
}

int nd_mp_str(struct nd_mp *r, struct nd_gbytes *s, uint32_t max)
{
    return raw(r, s, max, false);
}

int nd_mp_bytes(struct nd_mp *r, struct nd_gbytes *s, uint32_t max)
{
    return raw(r, s, max, true);
}

int nd_mp_uint(struct nd_mp *r, uint64_t max, uint64_t *out)
{
    struct mp_val v;
    int e = head(r, &v);
    if (e)
        return e;
    if (v.kind == K_NIL) {
        *out = 0;
        return 0;
    }
    if (v.kind == K_NEG)
        return ND_GOSSIP_E_RANGE;
    if (v.kind != K_UINT)
        return ND_GOSSIP_E_TYPE;
    if (v.u > max)
        return ND_GOSSIP_E_RANGE;
    *out = v.u;
    return 0;
}

int nd_mp_int(struct nd_mp *r, int64_t min, int64_t max, int64_t *out)
{
    struct mp_val v;
    int e = head(r, &v);
    if (e)
        return e;
    if (v.kind == K_NIL) {
        *out = 0;
        return 0;
    }
    if (v.kind != K_UINT && v.kind != K_NEG)
        return ND_GOSSIP_E_TYPE;
    if (v.kind == K_UINT && v.u > (uint64_t)INT64_MAX)
        return ND_GOSSIP_E_RANGE;
    int64_t x = (int64_t)v.u;
    if (x < min || x > max)
        return ND_GOSSIP_E_RANGE;
    *out = x;
    return 0;
}

int nd_mp_bool(struct nd_mp *r, bool *out)
{
    struct mp_val v;
    int e = head(r, &v);
    if (e)
        return e;
    if (v.kind == K_NIL) {
        *out = false;
        return 0;
    }
    if (v.kind != K_BOOL && !(v.kind == K_UINT && v.u <= 1))
        return ND_GOSSIP_E_TYPE;
    *out = v.u != 0;
    return 0;
}

int nd_mp_float(struct nd_mp *r, double *out)
{
    struct mp_val v;
    int e = head(r, &v);
    if (e)
        return e;
    switch (v.kind) {
    case K_NIL:
        *out = 0;
        return 0;
    case K_UINT:
        *out = (double)v.u;
        return 0;
    case K_NEG:
        *out = (double)(int64_t)v.u;
        return 0;
    case K_F32: {
        uint32_t bits = (uint32_t)v.u;
        float f;
        memcpy(&f, &bits, sizeof f);
        *out = f;
        return 0;
    }
    case K_F64:
        memcpy(out, &v.u, sizeof *out);
        return 0;
    default:
        return ND_GOSSIP_E_TYPE;
    }
}

int nd_mp_skip(struct nd_mp *r)
{
    /* values still to skip; containers add their elements. Bounded by the input: each value
     * consumes at least one byte, and no count beyond the bytes left is accepted. */
    uint64_t pending = 1;
    while (pending > 0) {
        struct mp_val v;
        int e = head(r, &v);
        if (e)
            return e;
        pending--;
        switch (v.kind) {
        case K_STR:
        case K_BIN:
        case K_EXT: {
            struct nd_gbytes s;
            if ((e = payload(r, v.u, &s)))
                return e;
            break;
        }
        case K_ARRAY:
        case K_MAP:
            pending += v.kind == K_MAP ? 2 * v.u : v.u;
            if (pending > nd_mp_left(r))
                return ND_GOSSIP_E_TRUNC;
            break;
        default:
            break;
        }
    }
    return 0;
}

bool nd_mp_key_is(struct nd_gbytes k, const char *name)
{
    size_t n = strlen(name);
    return k.len == n && memcmp(k.p, name, n) == 0;
}

static int w_cb(void *data, const char *buf, size_t len)
{
    struct nd_mp_w *w = data;
    if (w->overflow || len > w->cap - w->len) {
        w->overflow = true;
        return -1;
    }
    if (len)
        memcpy(w->out + w->len, buf, len);
    w->len += len;
    return 0;
}

void nd_mp_w_init(struct nd_mp_w *w, uint8_t *out, size_t cap)
{
    w->out = out;
    w->cap = out ? cap : 0;
    w->len = 0;
    w->overflow = false;
    msgpack_packer_init(&w->pk, w, w_cb);
}

int nd_mp_w_done(const struct nd_mp_w *w, size_t *len)
{
    if (w->overflow)
        return ND_GOSSIP_E_SPACE;
    *len = w->len;
    return 0;
}

void nd_mp_w_raw(struct nd_mp_w *w, const void *p, size_t n)
{
    w_cb(w, p, n);
}
void nd_mp_w_map(struct nd_mp_w *w, uint32_t n)
{
    msgpack_pack_map(&w->pk, n);
}
void nd_mp_w_array(struct nd_mp_w *w, uint32_t n)
{
    msgpack_pack_array(&w->pk, n);
}

void nd_mp_w_key(struct nd_mp_w *w, const char *name)
{
    size_t n = strlen(name);
    msgpack_pack_v4raw(&w->pk, n);
    msgpack_pack_v4raw_body(&w->pk, name, n);
}

void nd_mp_w_str(struct nd_mp_w *w, struct nd_gbytes s)
{
    msgpack_pack_v4raw(&w->pk, s.len);
    if (s.len)
        msgpack_pack_v4raw_body(&w->pk, s.p, s.len);
}

void nd_mp_w_bytes(struct nd_mp_w *w, struct nd_gbytes s)
{
    if (s.p == NULL && s.len == 0)
        msgpack_pack_nil(&w->pk);
    else
        nd_mp_w_str(w, s);
}

void nd_mp_w_uint(struct nd_mp_w *w, uint64_t v)
{
    msgpack_pack_uint64(&w->pk, v);
}
void nd_mp_w_int(struct nd_mp_w *w, int64_t v)
{
    msgpack_pack_int64(&w->pk, v);
}
void nd_mp_w_bool(struct nd_mp_w *w, bool v)
{
    if (v)
        msgpack_pack_true(&w->pk);
    else
        msgpack_pack_false(&w->pk);
}
void nd_mp_w_nil(struct nd_mp_w *w)
{
    msgpack_pack_nil(&w->pk);
}
void nd_mp_w_double(struct nd_mp_w *w, double v)
{
    msgpack_pack_double(&w->pk, v);
}
