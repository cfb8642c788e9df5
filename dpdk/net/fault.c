/*
 * Fault injection: drop, duplicate and reorder frames with a seeded PRNG (xorshift64*), per
 * port and direction, so a run with the same seed and the same traffic makes the same faults.
 * A reordered frame is held back and goes out right after the next frame that passes (or after
 * ND_FAULT_HOLD_MS when none comes): one swap per reorder.
 */
#include <string.h>

#include "net_int.h"

static uint64_t threshold(double p)
{
    return p >= 1 ? (uint64_t)1 << 32 : p <= 0 ? 0 : (uint64_t)(p * 4294967296.0);
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void nd_fault_init(struct nd_fault *f, const struct nd_dpdk_fault_conf *c, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    f->drop = threshold(c->drop);
    f->dup = threshold(c->duplicate);
    f->reorder = threshold(c->reorder);
    f->rng = splitmix64(seed) | 1;
}

static bool hit(struct nd_fault *f, uint64_t thr)
{
    uint64_t x = f->rng;

    if (!thr)
        return false;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    f->rng = x;
    return (x * 0x2545F4914F6CDD1DULL) >> 32 < thr;
}

uint16_t nd_fault_apply(struct nd_net *n, struct nd_fault *f, unsigned port, bool rx,
                        struct rte_mbuf **in, uint16_t cnt, struct rte_mbuf **out, uint16_t cap)
{
    uint16_t k = 0;

    for (uint16_t i = 0; i < cnt; i++) {
        struct rte_mbuf *m = in[i], *c;

        if (hit(f, f->drop)) {
            nd_net_drop(n, port, m, rx ? ND_NET_FAULT_RX : ND_NET_FAULT_TX);
            continue;
        }
        if (!f->held && hit(f, f->reorder)) {
            f->held = m;
            f->held_ms = n->now_ms;
            nd_net_count(n, port, ND_NET_FAULT_REORDER);
            continue;
        }
        if (k < cap)
            out[k++] = m;
        else
            nd_net_drop(n, port, m, rx ? ND_NET_FAULT_RX : ND_NET_FAULT_TX);
        if (hit(f, f->dup) && k < cap && (c = n->ops->copy(n, m))) {
            out[k++] = c;
            nd_net_count(n, port, ND_NET_FAULT_DUP);
        }
        if (f->held && k < cap) {
            out[k++] = f->held;
            f->held = NULL;
        }
    }
    if (f->held && n->now_ms - f->held_ms >= ND_FAULT_HOLD_MS && k < cap) {
        out[k++] = f->held;
        f->held = NULL;
    }
    return k;
}
