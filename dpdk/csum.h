/*
 * The Internet checksum (RFC 1071), one implementation for the packet path (dpdk/net/) and the
 * TCP engine (tcp_wire.c). Header only, no DPDK.
 *
 * It adds 8 bytes at a time (an add from memory and an add of the carry into a counter: 0.4
 * instructions per byte on x86-64; the carries are added back once, at the end), in the
 * machine's byte order: by RFC 1071's byte-order independence the folded result is the sum of the
 * data read as native 16-bit words, which on a little-endian machine is the byte swap of the sum
 * in network order.
 */
#ifndef NODUS_DPDK_CSUM_H
#define NODUS_DPDK_CSUM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t nd_csum_ld64(const uint8_t *b)
{
    uint64_t v;

    memcpy(&v, b, 8);
    return v;
}

/* sum plus the native 16-bit words of p[0..len) (an odd last byte padded with a zero byte),
 * folded to 16 bits, not complemented. */
static inline uint16_t nd_csum16(const void *p, size_t len, uint64_t sum)
{
    const uint8_t *b = p;
    uint64_t s = sum, carries = 0;

    for (; len >= 32; b += 32, len -= 32) {
        carries += __builtin_add_overflow(s, nd_csum_ld64(b), &s);
        carries += __builtin_add_overflow(s, nd_csum_ld64(b + 8), &s);
        carries += __builtin_add_overflow(s, nd_csum_ld64(b + 16), &s);
        carries += __builtin_add_overflow(s, nd_csum_ld64(b + 24), &s);
    }
    for (; len >= 8; b += 8, len -= 8)
        carries += __builtin_add_overflow(s, nd_csum_ld64(b), &s);
    if (len) {
        uint64_t v = 0;

        memcpy(&v, b, len);
        carries += __builtin_add_overflow(s, v, &s);
    }
    s += carries; /* 2^64 = 1 in one's complement arithmetic */
    s += s < carries;
    s = (s & 0xffffffff) + (s >> 32);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

#endif
