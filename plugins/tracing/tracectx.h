/*
 * Trace context parsing and formatting: W3C Trace Context (traceparent, tracestate) and B3 (the
 * single b3 header and the X-B3-* headers). A pure module: parsers never allocate, point nowhere
 * into their input after returning, and are fuzzed (tests/fuzz/fuzz_traceparent.c) and unit-tested
 * with the W3C test cases (tests/unit/test_tracing.c).
 */
#ifndef NODUS_TRACECTX_H
#define NODUS_TRACECTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define TC_TRACESTATE_MAX 512 /* bytes; longer ones are dropped (W3C: at least 512 propagated) */
#define TC_TRACESTATE_MEMBERS 32

/* A parsed context. sampled: -1 no decision (defer), 0 not sampled, 1 sampled. */
struct tc_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8]; /* the sender's span: the parent of ours */
    bool has_ids;
    bool debug; /* B3 debug (flags 1, or "d") */
    int sampled;
};

/* Results: 1 parsed, 0 absent, -1 present but invalid. */

/* traceparent (W3C Trace Context level 1): version 00 exactly 55 bytes; a later version (not ff)
 * at least 55 bytes, the 56th being '-' when longer, parsed as 00. Lowercase hex only; all-zero
 * trace or parent id invalid. */
int tc_parse_traceparent(const char *p, size_t len, struct tc_ctx *out);

/* tracestate: at most TC_TRACESTATE_MEMBERS list members, TC_TRACESTATE_MAX bytes, keys and values
 * as the W3C grammar defines them, no duplicate key. 1 valid (empty members allowed), -1 not. */
int tc_tracestate_valid(const char *p, size_t len);

/* b3: "{trace}-{span}[-{sampling}[-{parent}]]" or "{sampling}" alone (0, 1, d). trace is 16 or 32
 * lowercase hex (16: the high half is zero). */
int tc_parse_b3(const char *p, size_t len, struct tc_ctx *out);

/* X-B3-TraceId, X-B3-SpanId, X-B3-Sampled, X-B3-Flags; a NULL p means the header is absent.
 * TraceId and SpanId go together; Sampled is 1/0 (true/false accepted); Flags 1 is debug. */
struct tc_b3_headers {
    const char *trace, *span, *sampled, *flags;
    size_t trace_len, span_len, sampled_len, flags_len;
};
int tc_parse_b3_multi(const struct tc_b3_headers *h, struct tc_ctx *out);

/* Lowercase hex of n bytes (a multiple of 4) into out (2n chars, no NUL). Inline, so that the
 * fixed lengths of ids unroll. With SSE2, eight bytes at once: each byte's nibbles interleaved
 * into two bytes (high first), and each nibble v becomes '0' + v, plus 39 more when v > 9.
 * Without, four bytes at once (SWAR): each spread into a 16-bit lane, its nibbles into the
 * lane's two bytes, the same arithmetic per byte. Words are little-endian in memory. */
static inline void tc_hex(char *out, const uint8_t *in, size_t n)
{
    size_t i = 0;

#ifdef __SSE2__
    for (; i + 8 <= n; i += 8) {
        const __m128i low = _mm_set1_epi8(0x0f), nine = _mm_set1_epi8(9);
        __m128i x = _mm_loadl_epi64((const __m128i *)(const void *)(in + i));
        __m128i v =
            _mm_unpacklo_epi8(_mm_and_si128(_mm_srli_epi16(x, 4), low), _mm_and_si128(x, low));

        v = _mm_add_epi8(_mm_add_epi8(v, _mm_set1_epi8('0')),
                         _mm_and_si128(_mm_cmpgt_epi8(v, nine), _mm_set1_epi8(39)));
        _mm_storeu_si128((__m128i *)(void *)(out + 2 * i), v);
    }
#endif
    for (; i < n; i += 4) {
        uint32_t x;
        uint64_t v;

        memcpy(&x, in + i, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        x = __builtin_bswap32(x);
#endif
        v = x;
        v = (v | v << 16) & UINT64_C(0x0000ffff0000ffff);
        v = (v | v << 8) & UINT64_C(0x00ff00ff00ff00ff);
        v = (v >> 4 & UINT64_C(0x000f000f000f000f)) | (v << 8 & UINT64_C(0x0f000f000f000f00));
        v += UINT64_C(0x3030303030303030) +
             (((v + UINT64_C(0x0606060606060606)) >> 4) & UINT64_C(0x0101010101010101)) * 39;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap64(v);
#endif
        memcpy(out + 2 * i, &v, 8);
    }
}

/* "00-{trace}-{span}-{flags}": 55 chars into out (no NUL). */
#define TC_TRACEPARENT_LEN 55
void tc_format_traceparent(char *out, const uint8_t trace[16], const uint8_t span[8], bool sampled);

#endif /* NODUS_TRACECTX_H */
