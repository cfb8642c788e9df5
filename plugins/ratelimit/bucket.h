/*
 * The local rate limiter's arithmetic: token buckets shared by all workers, and bounded tables of
 * per-key buckets. A pure module (no host calls, no clock of its own: the caller passes the time),
 * unit-tested with a fake clock by tests/unit/test_ratelimit.c.
 *
 * A bucket is one 64-bit atomic word, (fill epoch << 24) | tokens, where the epoch is the number of
 * whole intervals since the limiter started (40 bits: 17 years at 1 ms) and tokens at most 2^24-1.
 * Taking a token is a load and, when a token is there, one compare-and-swap that applies the fills
 * due since the word's epoch and takes the token in the same step: exact across workers, no lock.
 * A refused request writes nothing.
 *
 * Envoy's semantics: a bucket starts full (max tokens); at every interval boundary it gains `fill`
 * tokens, up to max. Fills are discrete, as in Envoy, not continuous.
 *
 * Key tables: set-associative, 8 ways, like a CPU cache. A key is a 64-bit keyed hash (SipHash-1-3
 * with a random key per table, so clients cannot aim collisions); its set is chosen by the hash,
 * and a new key takes a free way of its set, else the least recently used one (LRU within the set).
 * Lookups and claims are lock-free; see rl_table_get() for what a race can cost.
 */
#ifndef NODUS_RL_BUCKET_H
#define NODUS_RL_BUCKET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_MAX_TOKENS ((1u << 24) - 1)
#define RL_EPOCH_BITS 40
#define RL_WAYS 8
#define RL_MAX_KEYS 1000000

/* A limit: at most max tokens; fill tokens added every interval. fill is atomic so that an agent
 * off the request path can change it at any time (the mesh-wide limit has a gate of its own,
 * share.h, whose share bounds a window rather than refilling a bucket). */
struct rl_limit {
    uint32_t max;
    _Atomic uint32_t fill;
    uint64_t interval_ns;
};

struct rl_bucket {
    _Atomic uint64_t word;
};

/* The result of taking a token. */
struct rl_take {
    bool ok;
    uint32_t remaining; /* tokens left after this request */
};

/* One set of a key table: the keys (one cache line), their buckets and last-use stamps. */
struct rl_set {
    _Atomic uint64_t key[RL_WAYS]; /* 0: free */
    _Atomic uint64_t bucket[RL_WAYS];
    _Atomic uint32_t used[RL_WAYS];
} __attribute__((aligned(64)));

struct rl_table {
    struct rl_set *sets;
    size_t nsets;
    uint64_t sipkey[2];
};

/* The epoch (whole intervals since start) at now_ns. */
static inline uint64_t rl_epoch(const struct rl_limit *l, uint64_t now_ns, uint64_t start_ns)
{
    return (now_ns - start_ns) / l->interval_ns;
}

/* Nanoseconds from now_ns to the next fill. */
uint64_t rl_until_fill(const struct rl_limit *l, uint64_t now_ns, uint64_t start_ns);

/* A full bucket word at epoch. */
uint64_t rl_full(const struct rl_limit *l, uint64_t epoch);
void rl_bucket_init(struct rl_bucket *b, const struct rl_limit *l, uint64_t epoch);
/* Takes one token from the bucket word w at epoch (fills applied first). */
struct rl_take rl_take(_Atomic uint64_t *w, const struct rl_limit *l, uint64_t epoch);
/* Tokens the word would hold at epoch (read only, for tests and headers). */
uint32_t rl_peek(uint64_t w, const struct rl_limit *l, uint64_t epoch);

/* SipHash-1-3 of data under key k. */
uint64_t rl_siphash(const uint64_t k[2], const void *data, size_t len);

/* A table for at least max_keys keys (1..RL_MAX_KEYS; rounded up to a multiple of 8). 0, or -1
 * when out of memory. The random key comes from getrandom(). */
int rl_table_init(struct rl_table *t, size_t max_keys);
void rl_table_free(struct rl_table *t);
size_t rl_table_capacity(const struct rl_table *t);

/*
 * The bucket word of key (len bytes), claiming a way for it when it is new: a free one, else the
 * least recently used of its set (*evicted set to true), reset to a full bucket at epoch. stamp is
 * the caller's coarse clock (any unit; only differences count, modulo 2^32).
 *
 * Two workers meeting the same new key at the same moment may both claim a way; each then looks
 * for the other's, and the lowest way wins (lookups scan from way 0), so the duplicate lives for
 * those few requests only. A request racing with the eviction of its key may spend a token of the
 * key that replaces it. Both are bounded to the requests in flight during the race.
 */
_Atomic uint64_t *rl_table_get(struct rl_table *t, const struct rl_limit *l, const void *key,
                               size_t len, uint64_t epoch, uint32_t stamp, bool *evicted);

#endif /* NODUS_RL_BUCKET_H */
