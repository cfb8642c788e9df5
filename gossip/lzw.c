/* LZW compatible with Go's compress/lzw (LSB, literal width 8): see lzw.h. */
#include <string.h>

#include "gossip-t.h"
#include "lzw.h"

enum {
    LZW_CLEAR = 256,
    LZW_EOF = 257,
    LZW_MAX_WIDTH = 12,
    LZW_MAX_CODE = (1 << LZW_MAX_WIDTH) - 1, /* 4095 */
    LZW_NCODES = 1 << LZW_MAX_WIDTH,
};

struct bitw {
    uint8_t *out;
    size_t cap, len;
    uint32_t bits, nbits, width;
    int err;
};

static void put_code(struct bitw *w, uint32_t code)
{
    w->bits |= code << w->nbits;
    w->nbits += w->width;
    while (w->nbits >= 8) {
        if (w->len == w->cap) {
            w->err = ND_GOSSIP_E_SPACE;
            return;
        }
        w->out[w->len++] = (uint8_t)w->bits;
        w->bits >>= 8;
        w->nbits -= 8;
    }
}

int nd_lzw_compress(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    /* the dictionary as a trie: children of a code chained through next[], keyed by suffix */
    uint16_t first[LZW_NCODES], next[LZW_NCODES];
    uint8_t suffix[LZW_NCODES];
    struct bitw w = {.out = out, .cap = cap, .width = 9};
    uint32_t hi = LZW_EOF, overflow = 1u << 9;

    memset(first, 0, sizeof first);
    put_code(&w, LZW_CLEAR);
    if (len > 0) {
        uint32_t code = in[0];
        for (size_t i = 1; i < len && !w.err; i++) {
            uint8_t x = in[i];
            uint32_t c;
            for (c = first[code]; c != 0; c = next[c])
                if (suffix[c] == x)
                    break;
            if (c != 0) {
                code = c;
                continue;
            }
            put_code(&w, code);
            uint32_t prev = code;
            code = x;
            /* Go's incHi: a new code, wider codes at a power of two, a clear when full */
            if (++hi == overflow) {
                w.width++;
                overflow <<= 1;
            }
            if (hi == LZW_MAX_CODE) {
                put_code(&w, LZW_CLEAR);
                w.width = 9;
                hi = LZW_EOF;
                overflow = 1u << 9;
                memset(first, 0, sizeof first);
                continue;
            }
            suffix[hi] = x;
            next[hi] = first[prev];
            first[prev] = (uint16_t)hi;
        }
        put_code(&w, code);
        if (++hi == overflow) {
            w.width++;
            overflow <<= 1;
        }
        if (hi == LZW_MAX_CODE) {
            put_code(&w, LZW_CLEAR);
            w.width = 9;
        }
    }
    put_code(&w, LZW_EOF);
    if (!w.err && w.nbits > 0) {
        if (w.len == w.cap)
            w.err = ND_GOSSIP_E_SPACE;
        else
            w.out[w.len++] = (uint8_t)w.bits;
    }
    if (w.err)
        return w.err;
    *outlen = w.len;
    return 0;
}

int nd_lzw_decompress(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    uint16_t prefix[LZW_NCODES];
    uint8_t suffix[LZW_NCODES], tmp[LZW_NCODES];
    const uint32_t invalid = 0xffff;
    uint32_t width = 9, hi = LZW_EOF, overflow = 1u << 9, last = invalid;
    uint32_t bits = 0, nbits = 0;
    size_t ip = 0, o = 0;

    memset(prefix, 0, sizeof prefix);
    memset(suffix, 0, sizeof suffix);
    for (;;) {
        while (nbits < width) {
            if (ip == len)
                return ND_GOSSIP_E_LZW; /* no end code */
            bits |= (uint32_t)in[ip++] << nbits;
            nbits += 8;
        }
        uint32_t code = bits & ((1u << width) - 1);
        bits >>= width;
        nbits -= width;

        if (code == LZW_CLEAR) {
            width = 9;
            hi = LZW_EOF;
            overflow = 1u << 9;
            last = invalid;
            continue;
        }
        if (code == LZW_EOF)
            break;
        if (code > hi)
            return ND_GOSSIP_E_LZW;
        /* the string of code, built backwards at the end of tmp */
        size_t i = sizeof tmp;
        uint32_t c = code;
        if (code < LZW_CLEAR) {
            tmp[--i] = (uint8_t)code;
        } else {
            if (code == hi && last != invalid) {
                /* KwKwK: the string of last plus its own first byte */
                c = last;
                while (c >= LZW_CLEAR)
                    c = prefix[c];
                tmp[--i] = (uint8_t)c;
                c = last;
            }
            while (c >= LZW_CLEAR) {
                tmp[--i] = suffix[c];
                c = prefix[c];
            }
            tmp[--i] = (uint8_t)c;
        }
        size_t n = sizeof tmp - i;
        if (n > cap - o)
            return ND_GOSSIP_E_LIMIT;
        memcpy(out + o, tmp + i, n);
        o += n;
        if (last != invalid) {
            suffix[hi] = tmp[i];
            prefix[hi] = (uint16_t)last;
        }
        last = code;
        hi++;
        if (hi >= overflow) {
            if (width == LZW_MAX_WIDTH) {
                last = invalid;
                hi--;
            } else {
                width++;
                overflow = 1u << width;
            }
        }
    }
    *outlen = o;
    return 0;
}
