/*
 * msgpack helpers for the gossip layer (internal to gossip/: not part of the API).
 *
 * Reading: a cursor over a buffer that never allocates and never recurses. msgpack-c's
 * unpacker is not used for decoding because it allocates every object from a zone and reserves
 * an array's declared count before checking it against the input; the cursor instead checks
 * every length against the bytes left.
 *
 * Accepted like Go's codec (hashicorp/go-msgpack 0.5.5, MsgpackHandle{}): integers of any
 * width or signedness (range-checked), nil for any field (zero value), str or bin for byte
 * fields, str only for string fields and map keys, bool as true/false or fixint 0/1.
 *
 * Writing: msgpack-c's packer writing into a fixed buffer, with strings and byte slices in the
 * old "raw" family (fixstr, str16, str32: never str8 nor bin), which is what Go's codec emits.
 */
#ifndef NODUS_GOSSIP_MP_H
#define NODUS_GOSSIP_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "gossip-t.h"

struct nd_mp {
    const uint8_t *p, *end;
};

static inline void nd_mp_init(struct nd_mp *r, const uint8_t *p, size_t len)
{
    r->p = p;
    r->end = p + len;
}
static inline size_t nd_mp_left(const struct nd_mp *r)
{
    return (size_t)(r->end - r->p);
}

/* A map header; nil counts as an empty map. The count is checked against the bytes left. */
int nd_mp_map(struct nd_mp *r, uint32_t *n);
/* An array header; nil counts as empty. */
int nd_mp_array(struct nd_mp *r, uint32_t *n);
/* A map key: str family only. */
int nd_mp_key(struct nd_mp *r, struct nd_gbytes *k);
/* A Go string field: str family or nil; at most max bytes (else E_LIMIT). */
int nd_mp_str(struct nd_mp *r, struct nd_gbytes *s, uint32_t max);
/* A Go []byte field: str or bin family or nil (p NULL); at most max bytes. */
int nd_mp_bytes(struct nd_mp *r, struct nd_gbytes *s, uint32_t max);
/* An unsigned field: any integer encoding in [0, max], or nil (0). */
int nd_mp_uint(struct nd_mp *r, uint64_t max, uint64_t *v);
/* A signed field: any integer encoding in [min, max], or nil (0). */
int nd_mp_int(struct nd_mp *r, int64_t min, int64_t max, int64_t *v);
/* A bool field: true/false, fixint 0/1, or nil (false). */
int nd_mp_bool(struct nd_mp *r, bool *v);
/* A float field: float32/64 or any integer, or nil (0). */
int nd_mp_float(struct nd_mp *r, double *v);
/* Skips one value of any type, containers included, iteratively (no recursion). */
int nd_mp_skip(struct nd_mp *r);

/* Field helpers shared by the memberlist and serf decoders: Go's integer widths, names. */
static inline int nd_mp_u64(struct nd_mp *r, uint64_t *v)
{
    return nd_mp_uint(r, UINT64_MAX, v);
}

#define ND_MP_UINT_FN(name, type, max)                                                             \
    static inline int name(struct nd_mp *r, type *v)                                               \
    {                                                                                              \
        uint64_t x;                                                                                \
        int e = nd_mp_uint(r, max, &x);                                                            \
        if (!e)                                                                                    \
            *v = (type)x;                                                                          \
        return e;                                                                                  \
    }
ND_MP_UINT_FN(nd_mp_u32, uint32_t, UINT32_MAX)
ND_MP_UINT_FN(nd_mp_u16, uint16_t, UINT16_MAX)
ND_MP_UINT_FN(nd_mp_u8, uint8_t, UINT8_MAX)
#undef ND_MP_UINT_FN

/* A member or node name (Go string, at most ND_GOSSIP_NAME_MAX bytes). */
static inline int nd_mp_name(struct nd_mp *r, struct nd_gbytes *s)
{
    return nd_mp_str(r, s, ND_GOSSIP_NAME_MAX);
}

static inline bool nd_mp_name_ok(struct nd_gbytes s)
{
    return s.len <= ND_GOSSIP_NAME_MAX;
}

/* Does key k equal the NUL-terminated name? */
bool nd_mp_key_is(struct nd_gbytes k, const char *name);

/* Decoding a Go struct from a msgpack map, keys in any order, unknown keys skipped:
 *     FIELDS_BEGIN(r) FIELD("SeqNo", get_u32(r, &x)) FIELD(...) FIELDS_END(r)
 * returns from the enclosing function on the first error. */
#define FIELDS_BEGIN(r)                                                                            \
    {                                                                                              \
        uint32_t nf_;                                                                              \
        int e_ = nd_mp_map((r), &nf_);                                                             \
        if (e_)                                                                                    \
            return e_;                                                                             \
        for (uint32_t i_ = 0; i_ < nf_; i_++) {                                                    \
            struct nd_gbytes k_;                                                                   \
            if ((e_ = nd_mp_key((r), &k_)))                                                        \
                return e_;                                                                         \
            if (0) {                                                                               \
            }
#define FIELD(name, call) else if (nd_mp_key_is(k_, name)) e_ = (call);
#define FIELDS_END(r)                                                                              \
    else e_ = nd_mp_skip(r);                                                                       \
    if (e_)                                                                                        \
        return e_;                                                                                 \
    }                                                                                              \
    }

/* Writer into out[0..cap). After any overflow every further write is ignored and
 * nd_mp_w_done() says ND_GOSSIP_E_SPACE. */
struct nd_mp_w {
    msgpack_packer pk;
    uint8_t *out;
    size_t cap, len;
    bool overflow;
};

void nd_mp_w_init(struct nd_mp_w *w, uint8_t *out, size_t cap);
int nd_mp_w_done(const struct nd_mp_w *w, size_t *len);
void nd_mp_w_raw(struct nd_mp_w *w, const void *p, size_t n); /* bytes as they are */
void nd_mp_w_map(struct nd_mp_w *w, uint32_t n);
void nd_mp_w_array(struct nd_mp_w *w, uint32_t n);
void nd_mp_w_key(struct nd_mp_w *w, const char *name);     /* a field name */
void nd_mp_w_str(struct nd_mp_w *w, struct nd_gbytes s);   /* Go string: never nil */
void nd_mp_w_bytes(struct nd_mp_w *w, struct nd_gbytes s); /* Go []byte: nil if p NULL */
void nd_mp_w_uint(struct nd_mp_w *w, uint64_t v);
void nd_mp_w_int(struct nd_mp_w *w, int64_t v);
void nd_mp_w_bool(struct nd_mp_w *w, bool v);
void nd_mp_w_nil(struct nd_mp_w *w);
void nd_mp_w_double(struct nd_mp_w *w, double v);

#endif
