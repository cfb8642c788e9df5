/* Sequence-number arithmetic modulo 2^32 (RFC 9293 3.4, RFC 1982). Also used for timestamps. */
#ifndef NODUS_TCP_SEQ_H
#define NODUS_TCP_SEQ_H

#include <stdbool.h>
#include <stdint.h>

static inline int32_t nd_seq_diff(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b);
}
static inline bool nd_seq_lt(uint32_t a, uint32_t b)
{
    return nd_seq_diff(a, b) < 0;
}
static inline bool nd_seq_leq(uint32_t a, uint32_t b)
{
    return nd_seq_diff(a, b) <= 0;
}
static inline bool nd_seq_gt(uint32_t a, uint32_t b)
{
    return nd_seq_diff(a, b) > 0;
}
static inline bool nd_seq_geq(uint32_t a, uint32_t b)
{
    return nd_seq_diff(a, b) >= 0;
}
static inline uint32_t nd_seq_max(uint32_t a, uint32_t b)
{
    return nd_seq_gt(a, b) ? a : b;
}
static inline uint32_t nd_seq_min(uint32_t a, uint32_t b)
{
    return nd_seq_lt(a, b) ? a : b;
}
/* lo <= x < hi */
static inline bool nd_seq_in(uint32_t x, uint32_t lo, uint32_t hi)
{
    return (uint32_t)(x - lo) < (uint32_t)(hi - lo);
}

#endif
