/* Bounded JSON tokenizer (see json.h). */
#include "json.h"

#include <stdbool.h>
#include <string.h>

struct parser {
    const char *s;
    size_t len, pos;
    struct jt_tok *t;
    size_t cap, n;
};

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static long new_tok(struct parser *p, enum jt_type type)
{
    if (p->n >= p->cap)
        return -1;
    p->t[p->n] = (struct jt_tok){.type = (uint8_t)type, .start = (uint32_t)p->pos};
    return (long)p->n++;
}

static int hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        unsigned d;

        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return -1;
        *v = *v * 16 + d;
    }
    return 0;
}

/* At the opening quote. */
static int parse_string(struct parser *p)
{
    long i;

    p->pos++;
    i = new_tok(p, JT_STRING);
    if (i < 0)
        return -1;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        unsigned v;

        if (c == '"') {
            p->t[i].end = (uint32_t)p->pos++;
            p->t[i].next = (uint32_t)p->n;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (p->pos + 1 >= p->len)
                return -1;
            c = (unsigned char)p->s[++p->pos];
            if (c == 'u') {
                if (p->pos + 4 >= p->len || hex4(p->s + p->pos + 1, &v) < 0)
                    return -1;
                p->pos += 4;
            } else if (!strchr("\"\\/bfnrt", c) || c == 0) {
                return -1;
            }
        }
        p->pos++;
    }
    return -1;
}

static int parse_number(struct parser *p)
{
    long i = new_tok(p, JT_NUMBER);
    const char *s = p->s;
    size_t n = p->len;

    if (i < 0)
        return -1;
    if (p->pos < n && s[p->pos] == '-')
        p->pos++;
    if (p->pos >= n)
        return -1;
    if (s[p->pos] == '0') {
        p->pos++;
    } else if (s[p->pos] >= '1' && s[p->pos] <= '9') {
        while (p->pos < n && s[p->pos] >= '0' && s[p->pos] <= '9')
            p->pos++;
    } else {
        return -1;
    }
    if (p->pos < n && s[p->pos] == '.') {
        size_t d = ++p->pos;

        while (p->pos < n && s[p->pos] >= '0' && s[p->pos] <= '9')
            p->pos++;
        if (p->pos == d)
            return -1;
    }
    if (p->pos < n && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
        size_t d;

        p->pos++;
        if (p->pos < n && (s[p->pos] == '+' || s[p->pos] == '-'))
            p->pos++;
        d = p->pos;
        while (p->pos < n && s[p->pos] >= '0' && s[p->pos] <= '9')
            p->pos++;
        if (p->pos == d)
            return -1;
    }
    p->t[i].end = (uint32_t)p->pos;
    p->t[i].next = (uint32_t)p->n;
    return 0;
}

static int parse_literal(struct parser *p, const char *lit, enum jt_type type)
{
    size_t n = strlen(lit);
    long i;

    if (p->len - p->pos < n || memcmp(p->s + p->pos, lit, n) != 0)
        return -1;
    i = new_tok(p, type);
    if (i < 0)
        return -1;
    p->pos += n;
    p->t[i].end = (uint32_t)p->pos;
    p->t[i].next = (uint32_t)p->n;
    return 0;
}

static int parse_value(struct parser *p, unsigned depth);

static int parse_container(struct parser *p, unsigned depth, bool object)
{
    long i;
    char close = object ? '}' : ']';

    if (depth >= JT_MAX_DEPTH)
        return -1;
    i = new_tok(p, object ? JT_OBJECT : JT_ARRAY);
    if (i < 0)
        return -1;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            skip_ws(p);
            if (object) {
                if (p->pos >= p->len || p->s[p->pos] != '"' || parse_string(p) < 0)
                    return -1;
                skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != ':')
                    return -1;
                p->pos++;
            }
            if (parse_value(p, depth + 1) < 0)
                return -1;
            p->t[i].size++;
            skip_ws(p);
            if (p->pos >= p->len)
                return -1;
            if (p->s[p->pos] == ',') {
                p->pos++;
                continue;
            }
            if (p->s[p->pos] != close)
                return -1;
            p->pos++;
            break;
        }
    }
    p->t[i].end = (uint32_t)p->pos;
    p->t[i].next = (uint32_t)p->n;
    return 0;
}

static int parse_value(struct parser *p, unsigned depth)
{
    skip_ws(p);
    if (p->pos >= p->len)
        return -1;
    switch (p->s[p->pos]) {
    case '{':
        return parse_container(p, depth, true);
    case '[':
        return parse_container(p, depth, false);
    case '"':
        return parse_string(p);
    case 't':
        return parse_literal(p, "true", JT_TRUE);
    case 'f':
        return parse_literal(p, "false", JT_FALSE);
    case 'n':
        return parse_literal(p, "null", JT_NULL);
    default:
        return parse_number(p);
    }
}

long jt_parse(const char *s, size_t len, struct jt_tok *t, size_t cap)
{
    struct parser p = {.s = s, .len = len, .t = t, .cap = cap};

    if (len > UINT32_MAX || parse_value(&p, 0) < 0)
        return -1;
    skip_ws(&p);
    return p.pos == len ? (long)p.n : -1;
}

long jt_string(const char *s, const struct jt_tok *t, char *out, size_t cap)
{
    size_t n = 0;

    if (t->type != JT_STRING)
        return -1;
    for (uint32_t i = t->start; i < t->end; i++) {
        char c = s[i];
        unsigned v, lo;

        if (c != '\\') {
            if (n >= cap)
                return -1;
            out[n++] = c;
            continue;
        }
        c = s[++i];
        if (c != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";

            if (n >= cap)
                return -1;
            out[n++] = to[strchr(from, c) - from]; /* validated by the parser */
            continue;
        }
        hex4(s + i + 1, &v);
        i += 4;
        if (v >= 0xd800 && v <= 0xdbff) { /* a high surrogate needs its low one */
            if (i + 6 >= t->end || s[i + 1] != '\\' || s[i + 2] != 'u' ||
                hex4(s + i + 3, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                return -1;
            v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
            i += 6;
        } else if (v >= 0xdc00 && v <= 0xdfff) {
            return -1;
        }
        if (v == 0)
            return -1;
        if (v < 0x80) {
            if (n + 1 > cap)
                return -1;
            out[n++] = (char)v;
        } else if (v < 0x800) {
            if (n + 2 > cap)
                return -1;
            out[n++] = (char)(0xc0 | (v >> 6));
            out[n++] = (char)(0x80 | (v & 0x3f));
        } else if (v < 0x10000) {
            if (n + 3 > cap)
                return -1;
            out[n++] = (char)(0xe0 | (v >> 12));
            out[n++] = (char)(0x80 | ((v >> 6) & 0x3f));
            out[n++] = (char)(0x80 | (v & 0x3f));
        } else {
            if (n + 4 > cap)
                return -1;
            out[n++] = (char)(0xf0 | (v >> 18));
            out[n++] = (char)(0x80 | ((v >> 12) & 0x3f));
            out[n++] = (char)(0x80 | ((v >> 6) & 0x3f));
            out[n++] = (char)(0x80 | (v & 0x3f));
        }
    }
    return (long)n;
}

int jt_string_eq(const char *s, const struct jt_tok *t, const char *v, size_t n)
{
    char buf[256];
    long got;

    if (t->type != JT_STRING)
        return 0;
    /* without escapes, the bytes are the value */
    if (!memchr(s + t->start, '\\', t->end - t->start))
        return t->end - t->start == n && memcmp(s + t->start, v, n) == 0;
    if (n > sizeof(buf))
        return 0;
    got = jt_string(s, t, buf, sizeof(buf));
    return got >= 0 && (size_t)got == n && memcmp(buf, v, n) == 0;
}

int jt_member(const char *s, const struct jt_tok *t, uint32_t obj, const char *name, uint32_t *idx)
{
    uint32_t k = obj + 1;
    size_t n = strlen(name);
    int found = 0;

    if (t[obj].type != JT_OBJECT)
        return 0;
    for (uint32_t m = 0; m < t[obj].size; m++) {
        uint32_t v = k + 1;

        if (jt_string_eq(s, &t[k], name, n)) {
            if (found)
                return -1;
            found = 1;
            *idx = v;
        }
        k = t[v].next;
    }
    return found;
}

int jt_seconds(const char *s, const struct jt_tok *t, int64_t *out)
{
    int64_t v = 0;
    uint32_t i = t->start, digits = 0;

    if (t->type != JT_NUMBER)
        return -1;
    for (; i < t->end && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        if (digits >= 15)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (digits == 0) /* a sign */
        return -1;
    if (i < t->end && s[i] == '.')
        for (i++; i < t->end && s[i] >= '0' && s[i] <= '9'; i++)
            ;
    if (i != t->end) /* an exponent */
        return -1;
    *out = v;
    return 0;
}
