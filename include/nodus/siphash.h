/*
 * SipHash (Aumasson, Bernstein), header only: a keyed hash for tables that hostile input fills
 * (flow tables, rate-limit keys) and for secrets derived from a key (ISNs, SYN cookies). Part of
 * the plugin ABI's headers so that built-in and external plugins can use it without linking
 * anything; nodus's core uses the same code.
 *
 *     uint64_t h = nodus_siphash(k0, k1, data, len, 2, 4);   SipHash-2-4 (ISNs, cookies)
 *     uint64_t h = nodus_siphash(k0, k1, data, len, 1, 3);   SipHash-1-3 (hash tables)
 *
 * k0, k1: the 128-bit key as two little-endian words (nodus_siphash_key() reads 16 bytes).
 * Same result on any host byte order.
 */
#ifndef NODUS_SIPHASH_H
#define NODUS_SIPHASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Little-endian loads: one load each (and a byte swap on a big-endian host). */
static inline uint64_t nodus_siphash_le64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    if (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
        v = __builtin_bswap64(v);
    return v;
}

/* The last len & 7 bytes of a message (0 to 7 at p), little-endian: four, two and one at a time. */
static inline uint64_t nodus_siphash_tail(const uint8_t *p, size_t left)
{
    uint64_t b = 0;
    size_t o = 0;

    if (left & 4) {
        uint32_t x;

        memcpy(&x, p, 4);
        if (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
            x = __builtin_bswap32(x);
        b = x;
        o = 4;
    }
    if (left & 2) {
        uint16_t x;

        memcpy(&x, p + o, 2);
        if (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
            x = __builtin_bswap16(x);
        b |= (uint64_t)x << (8 * o);
        o += 2;
    }
    if (left & 1)
        b |= (uint64_t)p[o] << (8 * o);
    return b;
}

#define NODUS_SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static inline void nodus_siphash_rounds(uint64_t v[4], int n)
{
    for (int i = 0; i < n; i++) {
        v[0] += v[1];
        v[1] = NODUS_SIP_ROTL(v[1], 13);
        v[1] ^= v[0];
        v[0] = NODUS_SIP_ROTL(v[0], 32);
        v[2] += v[3];
        v[3] = NODUS_SIP_ROTL(v[3], 16);
        v[3] ^= v[2];
        v[0] += v[3];
        v[3] = NODUS_SIP_ROTL(v[3], 21);
        v[3] ^= v[0];
        v[2] += v[1];
        v[1] = NODUS_SIP_ROTL(v[1], 17);
        v[1] ^= v[2];
        v[2] = NODUS_SIP_ROTL(v[2], 32);
    }
}

/* SipHash-c-d of data[0..len) under the key (k0, k1). */
static inline uint64_t nodus_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len, int c,
                                     int d)
{
    const uint8_t *in = data;
    uint64_t v[4] = {UINT64_C(0x736f6d6570736575) ^ k0, UINT64_C(0x646f72616e646f6d) ^ k1,
                     UINT64_C(0x6c7967656e657261) ^ k0, UINT64_C(0x7465646279746573) ^ k1};
    uint64_t b = (uint64_t)len << 56, m;
    size_t i, left = len & 7, end = len - left;

    for (i = 0; i < end; i += 8) {
        m = nodus_siphash_le64(in + i);
        v[3] ^= m;
        nodus_siphash_rounds(v, c);
        v[0] ^= m;
    }
    b |= nodus_siphash_tail(in + end, left);
    v[3] ^= b;
    nodus_siphash_rounds(v, c);
    v[0] ^= b;
    v[2] ^= 0xff;
    nodus_siphash_rounds(v, d);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

#undef NODUS_SIP_ROTL

#endif
