/* SipHash-2-4 (include/nodus/siphash.h), ISNs and SYN cookies. */
#include "tcp_hash.h"

#include <string.h>

#include <nodus/siphash.h>

uint64_t nd_siphash24(const uint8_t key[16], const void *data, size_t len)
{
    return nodus_siphash(nodus_siphash_le64(key), nodus_siphash_le64(key + 8), data, len, 2, 4);
}

uint32_t nd_tcp_flow_hash(const uint8_t key[16], const struct nd_tcp_flow *f, uint32_t salt)
{
    uint8_t b[16];
    uint64_t h;

    memcpy(b, &f->laddr, 4);
    memcpy(b + 4, &f->raddr, 4);
    memcpy(b + 8, &f->lport, 2);
    memcpy(b + 10, &f->rport, 2);
    memcpy(b + 12, &salt, 4);
    h = nd_siphash24(key, b, sizeof(b));
    return (uint32_t)(h ^ (h >> 32));
}

uint32_t nd_tcp_isn(const uint8_t key[16], const struct nd_tcp_flow *f, uint64_t now_ms)
{
    return nd_tcp_flow_hash(key, f, 0x15e15e) + (uint32_t)(now_ms * 250);
}

const uint16_t nd_tcp_cookie_mss[4] = {536, 1300, 1440, 1460};

#define COOKIEBITS 24
#define COOKIEMASK ((1u << COOKIEBITS) - 1)

uint32_t nd_tcp_cookie_make(const uint8_t key[16], const struct nd_tcp_flow *f, uint32_t peer_isn,
                            uint16_t peer_mss, uint64_t now_ms, uint16_t *mss_out)
{
    uint32_t count = (uint32_t)(now_ms / ND_TCP_COOKIE_PERIOD_MS), idx = 0, i;

    for (i = 0; i < 4; i++)
        if (nd_tcp_cookie_mss[i] <= peer_mss)
            idx = i;
    *mss_out = nd_tcp_cookie_mss[idx];
    return nd_tcp_flow_hash(key, f, 0xc00c1e) + peer_isn + (count << COOKIEBITS) +
           ((nd_tcp_flow_hash(key, f, count) + idx) & COOKIEMASK);
}

uint16_t nd_tcp_cookie_check(const uint8_t key[16], const struct nd_tcp_flow *f, uint32_t peer_isn,
                             uint32_t cookie, uint64_t now_ms)
{
    uint32_t count = (uint32_t)(now_ms / ND_TCP_COOKIE_PERIOD_MS), diff, c, idx;

    diff = cookie - nd_tcp_flow_hash(key, f, 0xc00c1e) - peer_isn;
    /* the counter of the cookie, extended from its 8 bits by the current one */
    c = count - ((count - (diff >> COOKIEBITS)) & ((uint32_t)-1 >> COOKIEBITS));
    if (count - c > 1)
        return 0;
    idx = (diff - nd_tcp_flow_hash(key, f, c)) & COOKIEMASK;
    return idx < 4 ? nd_tcp_cookie_mss[idx] : 0;
}

uint32_t nd_tcp_cookie_ts(uint32_t tsval, int wscale, int sack)
{
    uint32_t ts = (tsval & ~0x3fu) | (uint32_t)(wscale & 0xf) | (sack ? 0x10u : 0);

    /* never ahead of the clock: our later timestamps must not go backwards (peer's PAWS) */
    return (int32_t)(ts - tsval) > 0 ? ts - 64 : ts;
}

void nd_tcp_cookie_ts_decode(uint32_t tsecr, int *wscale, int *sack)
{
    *wscale = (int)(tsecr & 0xf);
    *sack = !!(tsecr & 0x10);
}
