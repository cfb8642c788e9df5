/*
 * Token buckets and key tables of the local rate limiter. See bucket.h.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <nodus/siphash.h>

#include "bucket.h"

#define EPOCH_MASK ((UINT64_C(1) << RL_EPOCH_BITS) - 1)
#define TOKEN_MASK ((UINT64_C(1) << 24) - 1)

static inline uint64_t mkword(uint64_t epoch, uint32_t tokens)
{
    return ((epoch & EPOCH_MASK) << 24) | tokens;
}

/* Tokens of w at epoch, and the epoch the word should carry (never moved backwards: a worker
 * whose clock read is a little older than another's sees a "future" word and applies nothing). */
static inline uint32_t refill(uint64_t w, const struct rl_limit *l, uint64_t epoch, uint64_t *ne)
{
    uint64_t we = w >> 24, d = ((epoch & EPOCH_MASK) - we) & EPOCH_MASK;
    uint64_t tokens = w & TOKEN_MASK;

    *ne = we;
    if (d == 0 || d >= (UINT64_C(1) << (RL_EPOCH_BITS - 1)))
        return (uint32_t)tokens;
    *ne = epoch & EPOCH_MASK;
    if (d >= l->max) /* full whatever fill is (fill >= 1) */
        return l->max;
    tokens += d * atomic_load_explicit(&((struct rl_limit *)l)->fill, memory_order_relaxed);
    return tokens > l->max ? l->max : (uint32_t)tokens;
}

uint64_t rl_until_fill(const struct rl_limit *l, uint64_t now_ns, uint64_t start_ns)
{
    uint64_t e = rl_epoch(l, now_ns, start_ns);

    return start_ns + (e + 1) * l->interval_ns - now_ns;
}

uint64_t rl_full(const struct rl_limit *l, uint64_t epoch)
{
    return mkword(epoch, l->max);
}

void rl_bucket_init(struct rl_bucket *b, const struct rl_limit *l, uint64_t epoch)
{
    atomic_init(&b->word, rl_full(l, epoch));
}

uint32_t rl_peek(uint64_t w, const struct rl_limit *l, uint64_t epoch)
{
    uint64_t ne;

    return refill(w, l, epoch, &ne);
}

struct rl_take rl_take(_Atomic uint64_t *w, const struct rl_limit *l, uint64_t epoch)
{
    uint64_t cur = atomic_load_explicit(w, memory_order_relaxed), ne;

    for (;;) {
        uint32_t tokens = refill(cur, l, epoch, &ne);

        if (tokens == 0)
            return (struct rl_take){.ok = false, .remaining = 0};
        if (atomic_compare_exchange_weak_explicit(w, &cur, mkword(ne, tokens - 1),
                                                  memory_order_relaxed, memory_order_relaxed))
            return (struct rl_take){.ok = true, .remaining = tokens - 1};
    }
}

/* ---- SipHash-1-3 (include/nodus/siphash.h) ---- */

uint64_t rl_siphash(const uint64_t k[2], const void *data, size_t len)
{
    return nodus_siphash(k[0], k[1], data, len, 1, 3);
}

/* ---- key tables ---- */

int rl_table_init(struct rl_table *t, size_t max_keys)
{
    size_t n = (max_keys + RL_WAYS - 1) / RL_WAYS;

    memset(t, 0, sizeof(*t));
    if (n == 0)
        n = 1;
    t->sets = aligned_alloc(64, n * sizeof(*t->sets));
    if (!t->sets)
        return -1;
    memset(t->sets, 0, n * sizeof(*t->sets));
    t->nsets = n;
    if (getrandom(t->sipkey, sizeof(t->sipkey), 0) != sizeof(t->sipkey)) {
        /* no entropy source: still correct, only predictable */
        t->sipkey[0] = (uint64_t)(uintptr_t)t->sets ^ UINT64_C(0x9e3779b97f4a7c15);
        t->sipkey[1] = (uint64_t)(uintptr_t)t;
    }
    return 0;
}

void rl_table_free(struct rl_table *t)
{
    free(t->sets);
    t->sets = NULL;
    t->nsets = 0;
}

size_t rl_table_capacity(const struct rl_table *t)
{
    return t->nsets * RL_WAYS;
}

/* The way of the set holding h, lowest first, or -1. */
static int find(struct rl_set *s, uint64_t h)
{
    for (int i = 0; i < RL_WAYS; i++)
        if (atomic_load_explicit(&s->key[i], memory_order_acquire) == h)
            return i;
    return -1;
}

/* A free way, else the least recently used one. */
static int victim(struct rl_set *s, uint32_t stamp)
{
    uint32_t oldest = 0;
    int v = 0;

    for (int i = 0; i < RL_WAYS; i++) {
        uint32_t age;

        if (atomic_load_explicit(&s->key[i], memory_order_relaxed) == 0)
            return i;
        age = stamp - atomic_load_explicit(&s->used[i], memory_order_relaxed);
        if (age > oldest) {
            oldest = age;
            v = i;
        }
    }
    return v;
}

_Atomic uint64_t *rl_table_get(struct rl_table *t, const struct rl_limit *l, const void *key,
                               size_t len, uint64_t epoch, uint32_t stamp, bool *evicted)
{
    uint64_t h = rl_siphash(t->sipkey, key, len);
    struct rl_set *s;
    int i;

    h += h == 0; /* 0 marks a free way */
    s = &t->sets[(size_t)(((unsigned __int128)h * t->nsets) >> 64)];
    *evicted = false;
    for (int attempt = 0; attempt < 4; attempt++) {
        uint64_t old;

        i = find(s, h);
        if (i >= 0) {
            if (atomic_load_explicit(&s->used[i], memory_order_relaxed) != stamp)
                atomic_store_explicit(&s->used[i], stamp, memory_order_relaxed);
            return &s->bucket[i];
        }
        i = victim(s, stamp);
        old = atomic_load_explicit(&s->key[i], memory_order_relaxed);
        if (!atomic_compare_exchange_strong_explicit(&s->key[i], &old, h, memory_order_seq_cst,
                                                     memory_order_relaxed))
            continue; /* another worker took that way: look again */
        /* reset after the claim: a request racing with it spends at most one token it should
         * not have (resetting first could refill a way another worker just claimed) */
        atomic_store_explicit(&s->bucket[i], rl_full(l, epoch), memory_order_relaxed);
        atomic_store_explicit(&s->used[i], stamp, memory_order_relaxed);
        *evicted = old != 0;
        /* another worker may have claimed a way for h meanwhile: the lowest way is the key's */
        for (int j = 0; j < RL_WAYS; j++) {
            uint64_t hh = h;

            if (j == i || atomic_load_explicit(&s->key[j], memory_order_seq_cst) != h)
                continue;
            if (j < i) {
                atomic_compare_exchange_strong(&s->key[i], &hh, 0);
                return &s->bucket[j];
            }
            atomic_compare_exchange_strong(&s->key[j], &hh, 0);
        }
        return &s->bucket[i];
    }
    /* the set is being fought over: share way 0's bucket rather than loop */
    return &s->bucket[0];
}
