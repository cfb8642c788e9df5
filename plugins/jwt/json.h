/*
 * A bounded JSON tokenizer for JWT headers and payloads (RFC 8259), in the manner of jsmn: it
 * never allocates; it fills a caller-owned array of tokens that point into the input, and fails on
 * anything it cannot hold (too many tokens, too deep) instead of growing. Strings are validated
 * (escapes, no control characters) but decoded only on demand, into caller buffers.
 */
#ifndef NODUS_JWT_JSON_H
#define NODUS_JWT_JSON_H

#include <stddef.h>
#include <stdint.h>

enum jt_type { JT_OBJECT = 1, JT_ARRAY, JT_STRING, JT_NUMBER, JT_TRUE, JT_FALSE, JT_NULL };

struct jt_tok {
    uint8_t type;
    uint32_t start, end; /* bytes of the value in the input; a string's without its quotes */
    uint32_t size;       /* objects: members; arrays: elements */
    uint32_t next;       /* index of the first token after this value (and its children) */
};

/* An object's members are a string token (the name) followed by the value's tokens. */

#define JT_MAX_DEPTH 16

/* Tokenizes s[0..len) as one JSON value (surrounding whitespace allowed). Returns the number of
 * tokens, or -1 (not JSON, nesting deeper than JT_MAX_DEPTH, or more than cap tokens). */
long jt_parse(const char *s, size_t len, struct jt_tok *t, size_t cap);

/* The member of the object at t[obj] named name: 1 with *idx (the value's token), 0 when absent,
 * -1 when the name appears more than once (after decoding escapes). */
int jt_member(const char *s, const struct jt_tok *t, uint32_t obj, const char *name, uint32_t *idx);

/* Decodes the string token t into out (cap bytes, no NUL added): its length, or -1 when it does
 * not fit or holds "\u0000". \u escapes become UTF-8 (surrogate pairs joined, lone ones refused).
 */
long jt_string(const char *s, const struct jt_tok *t, char *out, size_t cap);

/* Whether the string token t decodes to exactly v[0..n). */
int jt_string_eq(const char *s, const struct jt_tok *t, const char *v, size_t n);

/* A number token as whole seconds (a NumericDate): integer part of a non-negative number without
 * exponent, at most 15 digits. 0 with *out, or -1. */
int jt_seconds(const char *s, const struct jt_tok *t, int64_t *out);

#endif /* NODUS_JWT_JSON_H */
