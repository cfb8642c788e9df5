/*
 * Buffers.
 *  - struct nd_sbuf: a growable string for the control path (admin answers, config dump, errors).
 *    It allocates; never use it on the request path.
 *  - struct nd_buf: a fixed-capacity byte buffer from a per-worker pool, used for connection I/O.
 *    Data lives in [off, off+len); free space follows. No allocation after warm-up.
 */
#ifndef NODUS_BUF_H
#define NODUS_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct nd_sbuf {
    char *p; /* NUL-terminated when len > 0 */
    size_t len, cap;
    bool oom; /* an allocation failed: contents are truncated */
};

void nd_sbuf_add(struct nd_sbuf *b, const void *data, size_t n);
void nd_sbuf_adds(struct nd_sbuf *b, const char *s);
void nd_sbuf_printf(struct nd_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nd_sbuf_vprintf(struct nd_sbuf *b, const char *fmt, va_list ap);
void nd_sbuf_free(struct nd_sbuf *b);

struct nd_buf {
    struct nd_buf *next; /* free list link */
    uint32_t off, len, cap;
    char data[];
};

/* A per-worker pool of buffers of one size; grows in slabs, never shrinks below its high mark
 * (returned buffers go back to the free list). */
struct nd_buf_pool {
    struct nd_buf *free;
    uint32_t size; /* data bytes per buffer */
    uint32_t nfree;
    uint64_t allocated; /* buffers ever carved */
    uint64_t in_use;
    uint64_t limit; /* max buffers, 0 = no limit */
};

void nd_buf_pool_init(struct nd_buf_pool *pool, uint32_t size, uint64_t limit);
void nd_buf_pool_fini(struct nd_buf_pool *pool);
/* A buffer with len 0, or NULL when the pool is at its limit or memory is exhausted. */
struct nd_buf *nd_buf_get(struct nd_buf_pool *pool);
void nd_buf_put(struct nd_buf_pool *pool, struct nd_buf *b);

static inline char *nd_buf_head(struct nd_buf *b)
{
    return b->data + b->off;
}
static inline char *nd_buf_tail(struct nd_buf *b)
{
    return b->data + b->off + b->len;
}
static inline uint32_t nd_buf_room(const struct nd_buf *b)
{
    return b->cap - b->off - b->len;
}
/* memcpy() of the short strings of HTTP heads (names, values, whole header lines), without the
 * call: two overlapping moves of 16, 8, 4 bytes or three of one, reading and writing no byte
 * outside either range; from 65 bytes on, memcpy(). */
static inline void nd_copy_short(char *d, const char *s, size_t n)
{
    if (n >= 16) {
        if (n > 64) {
            memcpy(d, s, n);
            return;
        }
        if (n > 32) {
            memcpy(d + 16, s + 16, 16);
            memcpy(d + n - 32, s + n - 32, 16);
        }
        memcpy(d, s, 16);
        memcpy(d + n - 16, s + n - 16, 16);
    } else if (n >= 8) {
        memcpy(d, s, 8);
        memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else if (n) {
        d[0] = s[0];
        d[n / 2] = s[n / 2];
        d[n - 1] = s[n - 1];
    }
}

/* Drops n bytes from the head. */
static inline void nd_buf_consume(struct nd_buf *b, uint32_t n)
{
    b->off += n;
    b->len -= n;
    if (b->len == 0)
        b->off = 0;
}
/* Moves the data to the start of the buffer, keeping the first `keep` bytes at offset 0 in place
 * when keep > 0: [keep bytes][gap][data] -> [keep bytes][data]. */
void nd_buf_compact(struct nd_buf *b, uint32_t keep);

#endif
