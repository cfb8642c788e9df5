/* TCP wire format: parsing, building, checksums. */
#include "tcp_wire.h"

#include <string.h>

#include "csum.h"

int nd_tcp_parse(const uint8_t *p, size_t len, struct nd_tcp_hdr *h)
{
    unsigned hlen, i;

    memset(h, 0, sizeof(*h));
    if (len < 20)
        return -1;
    hlen = (unsigned)(p[12] >> 4) * 4;
    if (hlen < 20 || hlen > len)
        return -1;
    h->sport = nd_get16(p);
    h->dport = nd_get16(p + 2);
    h->seq = nd_get32(p + 4);
    h->ack = nd_get32(p + 8);
    h->flags = p[13] & 0x3f;
    h->win = nd_get16(p + 14);
    h->urp = nd_get16(p + 18);
    h->hlen = (uint16_t)hlen;
    for (i = 20; i < hlen;) {
        uint8_t kind = p[i], olen;

        if (kind == ND_TCP_OPT_EOL)
            break;
        if (kind == ND_TCP_OPT_NOP) {
            i++;
            continue;
        }
        if (i + 1 >= hlen)
            break;
        olen = p[i + 1];
        if (olen < 2 || i + olen > hlen)
            break; /* malformed: stop, keep what was parsed */
        switch (kind) {
        case ND_TCP_OPT_MSS:
            if (olen == 4) {
                h->has_mss = true;
                h->mss = nd_get16(p + i + 2);
            }
            break;
        case ND_TCP_OPT_WS:
            if (olen == 3) {
                h->has_ws = true;
                h->ws = p[i + 2];
            }
            break;
        case ND_TCP_OPT_SACK_PERM:
            if (olen == 2)
                h->sack_perm = true;
            break;
        case ND_TCP_OPT_TS:
            if (olen == 10) {
                h->has_ts = true;
                h->tsval = nd_get32(p + i + 2);
                h->tsecr = nd_get32(p + i + 6);
            }
            break;
        case ND_TCP_OPT_SACK:
            if (olen >= 10 && (olen - 2) % 8 == 0) {
                unsigned n = (olen - 2u) / 8, k;

                for (k = 0; k < n && h->nsack < ND_TCP_MAX_SACK; k++) {
                    h->sack[h->nsack].start = nd_get32(p + i + 2 + 8 * k);
                    h->sack[h->nsack].end = nd_get32(p + i + 6 + 8 * k);
                    h->nsack++;
                }
            }
            break;
        default:
            break;
        }
        i += olen;
    }
    return 0;
}

unsigned nd_tcp_opts_len(struct nd_tcp_opts *o)
{
    unsigned n = 0, room;

    if (o->mss_on)
        n += 4;
    if (o->ts_on)
        n += 12;
    else if (o->sack_perm)
        n += 4;
    if (o->ws_on)
        n += 4;
    if (o->nsack) {
        room = 40 - n;
        if (room < 12)
            o->nsack = 0;
        else if (o->nsack > (room - 4) / 8)
            o->nsack = (uint8_t)((room - 4) / 8);
        if (o->nsack > ND_TCP_MAX_SACK)
            o->nsack = ND_TCP_MAX_SACK;
        if (o->nsack)
            n += 4 + 8u * o->nsack;
    }
    return n;
}

unsigned nd_tcp_build(uint8_t *out, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                      uint8_t flags, uint16_t win, struct nd_tcp_opts *o)
{
    unsigned olen = o ? nd_tcp_opts_len(o) : 0, hlen = 20 + olen, i = 20, k;

    nd_put16(out, sport);
    nd_put16(out + 2, dport);
    nd_put32(out + 4, seq);
    nd_put32(out + 8, ack);
    out[12] = (uint8_t)((hlen / 4) << 4);
    out[13] = flags;
    nd_put16(out + 14, win);
    nd_put16(out + 16, 0);
    nd_put16(out + 18, 0);
    if (!o)
        return hlen;
    if (o->mss_on) {
        out[i++] = ND_TCP_OPT_MSS;
        out[i++] = 4;
        nd_put16(out + i, o->mss);
        i += 2;
    }
    if (o->ts_on) {
        if (o->sack_perm) {
            out[i++] = ND_TCP_OPT_SACK_PERM;
            out[i++] = 2;
        } else {
            out[i++] = ND_TCP_OPT_NOP;
            out[i++] = ND_TCP_OPT_NOP;
        }
        out[i++] = ND_TCP_OPT_TS;
        out[i++] = 10;
        nd_put32(out + i, o->tsval);
        nd_put32(out + i + 4, o->tsecr);
        i += 8;
    } else if (o->sack_perm) {
        out[i++] = ND_TCP_OPT_NOP;
        out[i++] = ND_TCP_OPT_NOP;
        out[i++] = ND_TCP_OPT_SACK_PERM;
        out[i++] = 2;
    }
    if (o->ws_on) {
        out[i++] = ND_TCP_OPT_NOP;
        out[i++] = ND_TCP_OPT_WS;
        out[i++] = 3;
        out[i++] = o->ws;
    }
    if (o->nsack) {
        out[i++] = ND_TCP_OPT_NOP;
        out[i++] = ND_TCP_OPT_NOP;
        out[i++] = ND_TCP_OPT_SACK;
        out[i++] = (uint8_t)(2 + 8 * o->nsack);
        for (k = 0; k < o->nsack; k++) {
            nd_put32(out + i, o->sack[k].start);
            nd_put32(out + i + 4, o->sack[k].end);
            i += 8;
        }
    }
    return hlen;
}

static uint32_t fold32(uint32_t s)
{
    s = (s & 0xffff) + (s >> 16);
    return (s & 0xffff) + (s >> 16);
}

uint32_t nd_csum_add(uint32_t sum, const void *data, size_t len, size_t off)
{
    uint32_t f = nd_csum16(data, len, 0);

    if (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
        f = __builtin_bswap16((uint16_t)f); /* the sum of the words in network order */
    if (off & 1)
        f = ((f & 0xff) << 8) | (f >> 8);
    return fold32(sum + f);
}

uint16_t nd_csum_fold(uint32_t sum)
{
    return (uint16_t)fold32(sum);
}

uint32_t nd_tcp_pseudo(uint32_t src, uint32_t dst, uint32_t tcp_len)
{
    uint32_t s = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 6 + tcp_len;

    return fold32(s);
}

uint16_t nd_tcp_csum(uint32_t src, uint32_t dst, const uint8_t *hdr, size_t hlen,
                     const struct nd_tcp_piece *pc, unsigned n)
{
    size_t total = hlen, off;
    uint32_t s;
    unsigned i;

    for (i = 0; i < n; i++)
        total += pc[i].len;
    s = nd_tcp_pseudo(src, dst, (uint32_t)total);
    s = nd_csum_add(s, hdr, hlen, 0);
    off = hlen;
    for (i = 0; i < n; i++) {
        s = nd_csum_add(s, pc[i].data, pc[i].len, off);
        off += pc[i].len;
    }
    return (uint16_t)~nd_csum_fold(s);
}

bool nd_tcp_csum_ok(uint32_t src, uint32_t dst, const uint8_t *seg, size_t len)
{
    uint32_t s = nd_tcp_pseudo(src, dst, (uint32_t)len);

    s = nd_csum_add(s, seg, len, 0);
    return nd_csum_fold(s) == 0xffff;
}
