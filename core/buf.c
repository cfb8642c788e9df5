#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool sbuf_reserve(struct nd_sbuf *b, size_t n)
{
    size_t cap;
    char *p;

    if (b->oom)
        return false;
    if (b->len + n + 1 <= b->cap)
        return true;
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void nd_sbuf_add(struct nd_sbuf *b, const void *data, size_t n)
{
    if (!sbuf_reserve(b, n))
        return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void nd_sbuf_adds(struct nd_sbuf *b, const char *s)
{
    nd_sbuf_add(b, s, strlen(s));
}

void nd_sbuf_vprintf(struct nd_sbuf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0 || !sbuf_reserve(b, (size_t)n))
        return;
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void nd_sbuf_printf(struct nd_sbuf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    nd_sbuf_vprintf(b, fmt, ap);
    va_end(ap);
}

void nd_sbuf_free(struct nd_sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

#define BUF_SLAB 16

void nd_buf_pool_init(struct nd_buf_pool *pool, uint32_t size, uint64_t limit)
{
    memset(pool, 0, sizeof(*pool));
    pool->size = size;
    pool->limit = limit;
}

void nd_buf_pool_fini(struct nd_buf_pool *pool)
{
    struct nd_buf *b;

    while ((b = pool->free)) {
        pool->free = b->next;
        free(b);
    }
    pool->nfree = 0;
}

struct nd_buf *nd_buf_get(struct nd_buf_pool *pool)
{
    struct nd_buf *b = pool->free;

    if (b) {
        pool->free = b->next;
        pool->nfree--;
    } else {
        if (pool->limit && pool->in_use >= pool->limit)
            return NULL;
        b = malloc(sizeof(*b) + pool->size);
        if (!b)
            return NULL;
        b->cap = pool->size;
        pool->allocated++;
    }
    b->next = NULL;
    b->off = b->len = 0;
    pool->in_use++;
    return b;
}

void nd_buf_put(struct nd_buf_pool *pool, struct nd_buf *b)
{
    if (!b)
        return;
    pool->in_use--;
    /* keep a bounded reserve so memory returns to its level after a burst */
    if (pool->nfree >= BUF_SLAB * 64) {
        free(b);
        pool->allocated--;
        return;
    }
    b->next = pool->free;
    pool->free = b;
    pool->nfree++;
}

void nd_buf_compact(struct nd_buf *b, uint32_t keep)
{
    if (b->off <= keep)
        return;
    if (b->len)
        memmove(b->data + keep, b->data + b->off, b->len);
    b->off = keep;
}
