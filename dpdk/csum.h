/*
 * The Internet checksum (RFC 1071), one implementation for the packet path (dpdk/net/) and the
 * TCP engine (tcp_wire.c). Header only, no DPDK.
 *
 * It adds 8 bytes at a time into a 128-bit accumulator (an add and an add-with-carry per word;
 * the carries out of 64 bits are added back once, at the end), in the machine's byte order: by
 * RFC 1071's byte-order independence the folded result is the sum of the data read as native
 * 16-bit words, which on a little-endian machine is the byte swap of the sum in network order.
 */
#ifndef NODUS_DPDK_CSUM_H
#define NODUS_DPDK_CSUM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* sum plus the native 16-bit words of p[0..len) (an odd last byte padded with a zero byte),
 * folded to 16 bits, not complemented. */
static inline uint16_t nd_csum16(const void *p, size_t len, uint64_t sum)
{
    const uint8_t *b = p;
    unsigned __int128 acc = sum;
    uint64_t w[4], hi, s;

    for (; len >= 32; b += 32, len -= 32) {
        memcpy(w, b, 32);
        acc += w[0];
        acc += w[1];
        acc += w[2];
        acc += w[3];
    }
    for (; len >= 8; b += 8, len -= 8) {
        memcpy(w, b, 8);
        acc += w[0];
    }
    if (len) {
        w[0] = 0;
        memcpy(w, b, len);
        acc += w[0];
    }
    hi = (uint64_t)(acc >> 64);
    s = (uint64_t)acc + hi;
    s += s < hi; /* 2^64 = 1 in one's complement arithmetic */
    s = (s & 0xffffffff) + (s >> 32);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

#endif
