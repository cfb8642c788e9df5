/*
 * libFuzzer target for plugins/tracing/tracectx.c: each input goes, in an allocation of its exact
 * size (so an over-read is caught by ASan), to the traceparent, tracestate, b3 and X-B3-* parsers.
 * Invariants: results in range; a context accepted is one the formatter writes back and the parser
 * accepts again, with the same ids; ids never all zero; the traceparent parser accepts only what
 * the W3C grammar allows (checked by a second, naive implementation).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/tracing/tracectx.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static bool lhex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
}

static bool zeros(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != '0')
            return false;
    return true;
}

/* The W3C rules, written as plainly as possible. */
static bool naive_traceparent(const uint8_t *p, size_t n)
{
    if (n < 55 || !lhex(p, 2) || (p[0] == 'f' && p[1] == 'f'))
        return false;
    if (p[0] == '0' && p[1] == '0' && n != 55)
        return false;
    if (n > 55 && p[55] != '-')
        return false;
    return p[2] == '-' && p[35] == '-' && p[52] == '-' && lhex(p + 3, 32) && lhex(p + 36, 16) &&
           lhex(p + 53, 2) && !zeros(p + 3, 32) && !zeros(p + 36, 16);
}

static bool nonzero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return true;
    return false;
}

static void roundtrip(const struct tc_ctx *c)
{
    char out[TC_TRACEPARENT_LEN];
    struct tc_ctx again;

    if (!c->has_ids)
        return;
    CHECK(nonzero(c->trace_id, 16) && nonzero(c->span_id, 8));
    tc_format_traceparent(out, c->trace_id, c->span_id, c->sampled == 1);
    CHECK(tc_parse_traceparent(out, sizeof(out), &again) == 1);
    CHECK(memcmp(again.trace_id, c->trace_id, 16) == 0);
    CHECK(memcmp(again.span_id, c->span_id, 8) == 0);
    CHECK(again.sampled == (c->sampled == 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    struct tc_ctx c;
    int r;

    if (!p)
        return 0;
    memcpy(p, data, size);

    r = tc_parse_traceparent(p, size, &c);
    CHECK(r == 1 || r == -1);
    CHECK((r == 1) == naive_traceparent(data, size));
    if (r == 1) {
        CHECK(c.sampled == 0 || c.sampled == 1);
        roundtrip(&c);
    }

    r = tc_tracestate_valid(p, size);
    CHECK(r == 1 || r == -1);
    CHECK(r == -1 || size <= TC_TRACESTATE_MAX);

    r = tc_parse_b3(p, size, &c);
    CHECK(r == 1 || r == -1);
    if (r == 1) {
        CHECK(c.sampled >= -1 && c.sampled <= 1);
        roundtrip(&c);
    }

    /* the input split in four as X-B3-* values (an empty part: absent) */
    if (size >= 4) {
        size_t q = size / 4;
        struct tc_b3_headers h = {.trace = p,
                                  .trace_len = q,
                                  .span = p + q,
                                  .span_len = q,
                                  .sampled = p + 2 * q,
                                  .sampled_len = q,
                                  .flags = p + 3 * q,
                                  .flags_len = size - 3 * q};

        if (data[0] & 1)
            h.sampled = NULL, h.sampled_len = 0;
        if (data[0] & 2)
            h.flags = NULL, h.flags_len = 0;
        r = tc_parse_b3_multi(&h, &c);
        CHECK(r == 1 || r == -1);
        if (r == 1)
            roundtrip(&c);
    }
    free(p);
    return 0;
}
