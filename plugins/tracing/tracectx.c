/*
 * W3C Trace Context and B3 parsers. See tracectx.h.
 */
#include <string.h>

#include "tracectx.h"

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* uppercase is invalid in both formats */
}

/* n bytes from 2n lowercase hex chars; false on a bad char. */
static bool unhex(const char *p, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval((unsigned char)p[2 * i]), lo = hexval((unsigned char)p[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

int tc_parse_traceparent(const char *p, size_t len, struct tc_ctx *out)
{
    uint8_t version, flags;
    struct tc_ctx c = {.sampled = -1};

    if (len < TC_TRACEPARENT_LEN || !unhex(p, &version, 1) || version == 0xff)
        return -1;
    if (version == 0 && len != TC_TRACEPARENT_LEN)
        return -1;
    if (len > TC_TRACEPARENT_LEN && p[TC_TRACEPARENT_LEN] != '-')
        return -1;
    if (p[2] != '-' || p[35] != '-' || p[52] != '-')
        return -1;
    if (!unhex(p + 3, c.trace_id, 16) || !unhex(p + 36, c.span_id, 8) || !unhex(p + 53, &flags, 1))
        return -1;
    if (all_zero(c.trace_id, 16) || all_zero(c.span_id, 8))
        return -1;
    c.has_ids = true;
    c.sampled = flags & 1;
    *out = c;
    return 1;
}

/* ---- tracestate ---- */

static bool lcalpha(unsigned char c)
{
    return c >= 'a' && c <= 'z';
}

static bool keychar(unsigned char c)
{
    return lcalpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' || c == '/';
}

/* key = simple-key / multi-tenant-key (W3C Trace Context §3.3.1.3.1) */
static bool valid_key(const char *k, size_t n)
{
    const char *at = memchr(k, '@', n);

    if (!at) {
        if (n < 1 || n > 256 || !lcalpha((unsigned char)k[0]))
            return false;
        for (size_t i = 1; i < n; i++)
            if (!keychar((unsigned char)k[i]))
                return false;
        return true;
    }
    size_t tn = (size_t)(at - k), sn = n - tn - 1;

    if (tn < 1 || tn > 241 || sn < 1 || sn > 14)
        return false;
    if (!lcalpha((unsigned char)k[0]) && !(k[0] >= '0' && k[0] <= '9'))
        return false;
    for (size_t i = 1; i < tn; i++)
        if (!keychar((unsigned char)k[i]))
            return false;
    if (!lcalpha((unsigned char)at[1]))
        return false;
    for (size_t i = 2; i <= sn; i++)
        if (!keychar((unsigned char)at[i]))
            return false;
    return true;
}

/* value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E */
static bool valid_value(const char *v, size_t n)
{
    if (n < 1 || n > 256)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];

        if (c < 0x20 || c > 0x7e || c == ',' || c == '=')
            return false;
    }
    return v[n - 1] != ' ';
}

int tc_tracestate_valid(const char *p, size_t len)
{
    struct {
        const char *k;
        size_t n;
    } keys[TC_TRACESTATE_MEMBERS];
    size_t nkeys = 0, i = 0;

    if (len > TC_TRACESTATE_MAX)
        return -1;
    while (i <= len) {
        size_t start = i, end, eq;

        while (i < len && p[i] != ',')
            i++;
        end = i++;
        /* OWS around a member */
        while (start < end && (p[start] == ' ' || p[start] == '\t'))
            start++;
        while (end > start && (p[end - 1] == ' ' || p[end - 1] == '\t'))
            end--;
        if (start == end)
            continue; /* empty members are allowed */
        for (eq = start; eq < end && p[eq] != '='; eq++)
            ;
        if (eq == end || !valid_key(p + start, eq - start) ||
            !valid_value(p + eq + 1, end - eq - 1))
            return -1;
        if (nkeys == TC_TRACESTATE_MEMBERS)
            return -1;
        for (size_t k = 0; k < nkeys; k++)
            if (keys[k].n == eq - start && memcmp(keys[k].k, p + start, eq - start) == 0)
                return -1; /* a duplicate key */
        keys[nkeys].k = p + start;
        keys[nkeys].n = eq - start;
        nkeys++;
    }
    return 1;
}

/* ---- B3 ---- */

/* A 16 or 32 hex trace id into 16 bytes (16 hex: the high half zero). */
static bool b3_trace(const char *p, size_t n, uint8_t out[16])
{
    memset(out, 0, 16);
    if (n == 32)
        return unhex(p, out, 16) && !all_zero(out, 16);
    if (n == 16)
        return unhex(p, out + 8, 8) && !all_zero(out, 16);
    return false;
}

static bool b3_span(const char *p, size_t n, uint8_t out[8])
{
    return n == 16 && unhex(p, out, 8) && !all_zero(out, 8);
}

/* One sampling-state character: 0, 1 or d. */
static bool b3_state(char s, struct tc_ctx *c)
{
    switch (s) {
    case '0':
        c->sampled = 0;
        return true;
    case '1':
        c->sampled = 1;
        return true;
    case 'd':
        c->sampled = 1;
        c->debug = true;
        return true;
    }
    return false;
}

int tc_parse_b3(const char *p, size_t len, struct tc_ctx *out)
{
    struct tc_ctx c = {.sampled = -1};
    const char *d1, *d2;
    size_t tn;

    if (len == 1) {
        if (!b3_state(p[0], &c))
            return -1;
        *out = c;
        return 1;
    }
    d1 = memchr(p, '-', len);
    if (!d1)
        return -1;
    tn = (size_t)(d1 - p);
    if (!b3_trace(p, tn, c.trace_id))
        return -1;
    p = d1 + 1;
    len -= tn + 1;
    if (len < 16 || !b3_span(p, 16, c.span_id))
        return -1;
    p += 16;
    len -= 16;
    if (len > 0) { /* -{sampling}[-{parent}] */
        if (len < 2 || p[0] != '-' || !b3_state(p[1], &c))
            return -1;
        p += 2;
        len -= 2;
        d2 = p;
        if (len > 0) {
            uint8_t parent[8];

            if (len != 17 || d2[0] != '-' || !b3_span(d2 + 1, 16, parent))
                return -1;
        }
    }
    c.has_ids = true;
    *out = c;
    return 1;
}

static bool eq(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

int tc_parse_b3_multi(const struct tc_b3_headers *h, struct tc_ctx *out)
{
    struct tc_ctx c = {.sampled = -1};

    if (!h->trace && !h->span && !h->sampled && !h->flags)
        return 0;
    if (!h->trace != !h->span)
        return -1;
    if (h->trace && (!b3_trace(h->trace, h->trace_len, c.trace_id) ||
                     !b3_span(h->span, h->span_len, c.span_id)))
        return -1;
    c.has_ids = h->trace != NULL;
    if (h->sampled) {
        if (eq(h->sampled, h->sampled_len, "1") || eq(h->sampled, h->sampled_len, "true"))
            c.sampled = 1;
        else if (eq(h->sampled, h->sampled_len, "0") || eq(h->sampled, h->sampled_len, "false"))
            c.sampled = 0;
        else
            return -1;
    }
    if (h->flags) {
        if (eq(h->flags, h->flags_len, "1")) {
            c.debug = true;
            c.sampled = 1;
        } else if (!eq(h->flags, h->flags_len, "0")) {
            return -1;
        }
    }
    *out = c;
    return 1;
}

void tc_format_traceparent(char *out, const uint8_t trace[16], const uint8_t span[8], bool sampled)
{
    memcpy(out, "00-", 3);
    tc_hex(out + 3, trace, 16);
    out[35] = '-';
    tc_hex(out + 36, span, 8);
    out[52] = '-';
    out[53] = '0';
    out[54] = sampled ? '1' : '0';
}
