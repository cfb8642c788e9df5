/* authz policy: rule tables and their evaluation (see policy.h). */
#include "policy.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SPIFFE "spiffe://"
#define SPIFFE_LEN (sizeof(SPIFFE) - 1)

enum mkind { M_EXACT, M_PREFIX, M_SUFFIX, M_ANY };

struct matcher {
    enum mkind kind;
    bool icase;
    size_t len;
    char *s; /* without the '*' */
};

/* values and not_values of one field; ip_blocks use the cidr arrays instead */
struct field {
    struct matcher *v, *nv;
    size_t n, nn;
    struct az_cidr *cv, *cnv;
};

struct header {
    char *name; /* lowercase */
    struct field f;
};

struct rule {
    char *name;
    enum az_action action;
    bool has[AZ_F_COUNT];
    struct field f[AZ_F_COUNT];
    struct header *hdrs;
    size_t nh;
};

struct az_policy {
    struct rule *rules;
    size_t n, n_allow;
    bool shadow;
};

static const char *const field_keys[AZ_F_COUNT] = {
    [AZ_F_PRINCIPALS] = "principals", [AZ_F_NAMESPACES] = "namespaces",
    [AZ_F_IP_BLOCKS] = "ip_blocks",   [AZ_F_REQUEST_PRINCIPALS] = "request_principals",
    [AZ_F_METHODS] = "methods",       [AZ_F_PATHS] = "paths",
    [AZ_F_HOSTS] = "hosts",           [AZ_F_PORTS] = "ports",
};

const char *az_field_key(enum az_field f)
{
    return (unsigned)f < AZ_F_COUNT ? field_keys[f] : "?";
}

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
}

/* ---- building ---- */

struct az_policy *az_new(void)
{
    return calloc(1, sizeof(struct az_policy));
}

static void field_free(struct field *f)
{
    for (size_t i = 0; i < f->n && f->v; i++)
        free(f->v[i].s);
    for (size_t i = 0; i < f->nn && f->nv; i++)
        free(f->nv[i].s);
    free(f->v);
    free(f->nv);
    free(f->cv);
    free(f->cnv);
}

static void rule_free(struct rule *r)
{
    free(r->name);
    for (int i = 0; i < AZ_F_COUNT; i++)
        field_free(&r->f[i]);
    for (size_t i = 0; i < r->nh; i++) {
        free(r->hdrs[i].name);
        field_free(&r->hdrs[i].f);
    }
    free(r->hdrs);
}

void az_free(struct az_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        rule_free(&p->rules[i]);
    free(p->rules);
    free(p);
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* "exact", "prefix*", "*suffix", "*". what names the list in errors. */
static int matcher_make(struct matcher *m, const char *s, bool icase, bool spiffe, const char *what,
                        char *err, size_t errlen)
{
    size_t n = strlen(s);
    const char *body = s;
    const char *star;

    if (n == 0) {
        set_err(err, errlen, "%s: empty value", what);
        return -1;
    }
    if (has_ctl(s)) {
        set_err(err, errlen, "%s: \"%s\" has control characters", what, s);
        return -1;
    }
    *m = (struct matcher){.kind = M_EXACT, .icase = icase};
    if (n == 1 && s[0] == '*') {
        m->kind = M_ANY;
    } else if (s[0] == '*') {
        m->kind = M_SUFFIX;
        body = s + 1;
    } else if (s[n - 1] == '*') {
        m->kind = M_PREFIX;
    }
    n = strlen(body) - (m->kind == M_PREFIX);
    star = memchr(body, '*', n);
    if (star && m->kind != M_ANY) {
        set_err(err, errlen, "%s: \"%s\": '*' may only start or end a value", what, s);
        return -1;
    }
    /* principals are matched without the scheme, as Istio writes them */
    if (spiffe && m->kind != M_SUFFIX && m->kind != M_ANY && n >= SPIFFE_LEN &&
        strncasecmp(body, SPIFFE, SPIFFE_LEN) == 0) {
        body += SPIFFE_LEN;
        n -= SPIFFE_LEN;
        if (n == 0 && m->kind == M_EXACT) {
            set_err(err, errlen, "%s: \"%s\": no identity after spiffe://", what, s);
            return -1;
        }
    }
    if (m->kind != M_ANY) {
        m->s = strndup(body, n);
        if (!m->s) {
            set_err(err, errlen, "out of memory");
            return -1;
        }
        m->len = n;
        if (icase)
            for (size_t i = 0; i < n; i++)
                if (m->s[i] >= 'A' && m->s[i] <= 'Z')
                    m->s[i] = (char)(m->s[i] + ('a' - 'A'));
    }
    return 0;
}

static int matchers_make(struct matcher **out, size_t *nout, const struct az_strings *in,
                         bool icase, bool spiffe, const char *what, char *err, size_t errlen)
{
    if (in->n == 0)
        return 0;
    *out = calloc(in->n, sizeof(**out));
    if (!*out) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < in->n; i++) {
        if (matcher_make(&(*out)[i], in->v[i], icase, spiffe, what, err, errlen) < 0)
            return -1;
        *nout = i + 1;
    }
    return 0;
}

static int cidrs_make(struct az_cidr **out, const struct az_strings *in, const char *what,
                      char *err, size_t errlen)
{
    if (in->n == 0)
        return 0;
    *out = calloc(in->n, sizeof(**out));
    if (!*out) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < in->n; i++)
        if (az_cidr_parse(in->v[i], &(*out)[i]) < 0) {
            set_err(err, errlen, "%s: \"%s\" is not an address or CIDR block", what, in->v[i]);
            return -1;
        }
    return 0;
}

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_rule_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

/* Ports are exact decimal numbers 1-65535 (Istio writes them as strings). */
static bool ports_ok(const struct az_strings *v, const char *key, char *err, size_t errlen)
{
    for (size_t i = 0; i < v->n; i++) {
        const char *p = v->v[i];
        unsigned long n = 0;
        size_t k = 0;

        for (; p[k] >= '0' && p[k] <= '9' && k < 6; k++)
            n = n * 10 + (unsigned long)(p[k] - '0');
        if (!k || p[k] || p[0] == '0' || n > 65535) {
            set_err(err, errlen, "%s[%zu]: \"%s\" is not a port (1-65535)", key, i + 1, p);
            return false;
        }
    }
    return true;
}

int az_add_rule(struct az_policy *p, const struct az_rule_spec *s, char *err, size_t errlen)
{
    struct rule r = {.action = s->action}, *rules;
    char what[96], name[32];

    if (s->name) {
        if (!is_rule_name(s->name)) {
            set_err(err, errlen, "name: \"%s\": 1 to 64 of A-Z a-z 0-9 _ - .", s->name);
            return -1;
        }
        for (size_t i = 0; i < p->n; i++)
            if (strcmp(p->rules[i].name, s->name) == 0) {
                set_err(err, errlen, "name: \"%s\" is the name of rule %zu already", s->name,
                        i + 1);
                return -1;
            }
    }
    snprintf(name, sizeof(name), "%s_%zu", s->action == AZ_DENY ? "deny" : "allow", p->n + 1);
    r.name = strdup(s->name ? s->name : name);
    if (!r.name) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    for (int f = 0; f < AZ_F_COUNT; f++) {
        bool icase = f == AZ_F_HOSTS, spiffe = f == AZ_F_PRINCIPALS;
        struct field *fd = &r.f[f];

        r.has[f] = s->values[f].n || s->not_values[f].n;
        if (f == AZ_F_IP_BLOCKS) {
            snprintf(what, sizeof(what), "%s", field_keys[f]);
            if (cidrs_make(&fd->cv, &s->values[f], what, err, errlen) < 0)
                goto fail;
            fd->n = s->values[f].n;
            snprintf(what, sizeof(what), "not_%s", field_keys[f]);
            if (cidrs_make(&fd->cnv, &s->not_values[f], what, err, errlen) < 0)
                goto fail;
            fd->nn = s->not_values[f].n;
            continue;
        }
        if (f == AZ_F_PORTS && (!ports_ok(&s->values[f], "ports", err, errlen) ||
                                !ports_ok(&s->not_values[f], "not_ports", err, errlen)))
            goto fail;
        snprintf(what, sizeof(what), "%s", field_keys[f]);
        if (matchers_make(&fd->v, &fd->n, &s->values[f], icase, spiffe, what, err, errlen) < 0)
            goto fail;
        snprintf(what, sizeof(what), "not_%s", field_keys[f]);
        if (matchers_make(&fd->nv, &fd->nn, &s->not_values[f], icase, spiffe, what, err, errlen) <
            0)
            goto fail;
    }
    if (s->n_headers) {
        r.hdrs = calloc(s->n_headers, sizeof(*r.hdrs));
        if (!r.hdrs) {
            set_err(err, errlen, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < s->n_headers; i++) {
        const struct az_header_spec *h = &s->headers[i];
        struct header *hd = &r.hdrs[i];

        r.nh = i + 1;
        if (!h->name || !*h->name) {
            set_err(err, errlen, "headers[%zu]: a header condition needs a name", i + 1);
            goto fail;
        }
        for (const char *c = h->name; *c; c++)
            if (!is_tchar(*c)) {
                set_err(err, errlen, "headers[%zu]: \"%s\" is not a valid header name", i + 1,
                        h->name);
                goto fail;
            }
        if (!h->values.n && !h->not_values.n) {
            set_err(err, errlen, "headers[%zu] (%s): give values or not_values", i + 1, h->name);
            goto fail;
        }
        hd->name = strdup(h->name);
        if (!hd->name) {
            set_err(err, errlen, "out of memory");
            goto fail;
        }
        for (char *c = hd->name; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c + ('a' - 'A'));
        snprintf(what, sizeof(what), "headers[%zu] (%.32s) values", i + 1, h->name);
        if (matchers_make(&hd->f.v, &hd->f.n, &h->values, false, false, what, err, errlen) < 0)
            goto fail;
        snprintf(what, sizeof(what), "headers[%zu] (%.32s) not_values", i + 1, h->name);
        if (matchers_make(&hd->f.nv, &hd->f.nn, &h->not_values, false, false, what, err, errlen) <
            0)
            goto fail;
    }
    rules = realloc(p->rules, (p->n + 1) * sizeof(*rules));
    if (!rules) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    p->rules = rules;
    p->rules[p->n++] = r;
    if (r.action == AZ_ALLOW)
        p->n_allow++;
    return 0;
fail:
    rule_free(&r);
    return -1;
}

size_t az_rule_count(const struct az_policy *p)
{
    return p->n;
}

const char *az_rule_name(const struct az_policy *p, size_t i)
{
    return i < p->n ? p->rules[i].name : "";
}

enum az_action az_rule_action(const struct az_policy *p, size_t i)
{
    return i < p->n ? p->rules[i].action : AZ_DENY;
}

/* ---- helpers ---- */

int az_spiffe_namespace(struct nodus_slice id, struct nodus_slice *ns)
{
    const char *p = id.p, *end = id.p + id.len, *slash, *nsend;

    if (id.len <= SPIFFE_LEN || strncasecmp(p, SPIFFE, SPIFFE_LEN) != 0)
        return 0;
    p += SPIFFE_LEN;
    slash = memchr(p, '/', (size_t)(end - p));
    if (!slash || slash == p) /* no path, or no trust domain */
        return 0;
    p = slash;
    if (end - p < 4 || memcmp(p, "/ns/", 4) != 0)
        return 0;
    p += 4;
    nsend = memchr(p, '/', (size_t)(end - p));
    if (!nsend || nsend == p || end - nsend < 5 || memcmp(nsend, "/sa/", 4) != 0)
        return 0;
    *ns = (struct nodus_slice){p, (size_t)(nsend - p)};
    return 1;
}

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int az_cidr_parse(const char *s, struct az_cidr *c)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    long bits;

    memset(c, 0, sizeof(*c));
    if (alen == 0 || alen >= sizeof(buf))
        return -1;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (inet_pton(AF_INET, buf, c->addr) == 1)
        c->family = 4;
    else if (inet_pton(AF_INET6, buf, c->addr) == 1)
        c->family = 6;
    else
        return -1;
    bits = c->family == 4 ? 32 : 128;
    if (slash) {
        const char *d = slash + 1;

        if (!*d || strlen(d) > 3)
            return -1;
        bits = 0;
        for (; *d; d++) {
            if (*d < '0' || *d > '9')
                return -1;
            bits = bits * 10 + (*d - '0');
        }
        if (bits > (c->family == 4 ? 32 : 128) || (slash[1] == '0' && slash[2]))
            return -1;
    }
    /* ::ffff:a.b.c.d/96+ is an IPv4 block: peers are compared as IPv4 */
    if (c->family == 6 && bits >= 96 && memcmp(c->addr, v4mapped, 12) == 0) {
        memmove(c->addr, c->addr + 12, 4);
        memset(c->addr + 4, 0, 12);
        c->family = 4;
        bits -= 96;
    }
    c->bits = (uint8_t)bits;
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = c->bits > i * 8 ? c->bits - i * 8 : 0;

        if (keep < 8)
            c->addr[i] &= (uint8_t)(0xff00u >> keep);
    }
    return 0;
}

/* The peer address as family and bytes; an IPv4-mapped IPv6 address as IPv4. 0, or -1. */
static int addr_parse(struct nodus_slice a, uint8_t *family, uint8_t out[16])
{
    char buf[64];

    if (a.len == 0 || a.len >= sizeof(buf))
        return -1;
    memcpy(buf, a.p, a.len);
    buf[a.len] = '\0';
    memset(out, 0, 16);
    if (inet_pton(AF_INET, buf, out) == 1) {
        *family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, out) != 1)
        return -1;
    *family = 6;
    if (memcmp(out, v4mapped, 12) == 0) {
        memmove(out, out + 12, 4);
        memset(out + 4, 0, 12);
        *family = 4;
    }
    return 0;
}

static bool cidr_in(const struct az_cidr *c, uint8_t family, const uint8_t a[16])
{
    unsigned full = c->bits / 8, rest = c->bits % 8;

    if (c->family != family || memcmp(c->addr, a, full) != 0)
        return false;
    return rest == 0 || ((a[full] ^ c->addr[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

bool az_cidr_match(const struct az_cidr *c, struct nodus_slice addr)
{
    uint8_t family, a[16];

    return addr_parse(addr, &family, a) == 0 && cidr_in(c, family, a);
}

/* ---- path normalization ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

long az_normalize_path(const char *in, size_t len, enum az_norm how, char *out, size_t cap)
{
    size_t n = 0, r, w;

    if (how == AZ_NORM_NONE || len == 0 || in[0] != '/') {
        if (len > cap)
            return -1;
        memcpy(out, in, len);
        return (long)len;
    }
    /* 1. percent-decoding into out (never longer than the input) */
    for (size_t i = 0; i < len; i++) {
        char c = in[i];

        if (n >= cap)
            return -1;
        if (c == '%' && i + 2 < len && hexval(in[i + 1]) >= 0 && hexval(in[i + 2]) >= 0) {
            int v = hexval(in[i + 1]) * 16 + hexval(in[i + 2]);

            if (unreserved(v) ||
                (how == AZ_NORM_DECODE_AND_MERGE_SLASHES && (v == '/' || v == '\\'))) {
                out[n++] = (char)v;
            } else {
                if (n + 3 > cap)
                    return -1;
                out[n++] = '%';
                out[n++] = "0123456789ABCDEF"[v >> 4];
                out[n++] = "0123456789ABCDEF"[v & 15];
            }
            i += 2;
            continue;
        }
        out[n++] = c;
    }
    /* 2. dot segments (RFC 3986 5.2.4) and, if asked, empty segments, in place: the writer never
     * passes the reader. out[0] is '/': each step reads "/seg" at r. */
    r = 0;
    w = 0;
    while (r < n) {
        size_t s = r + 1, e = s, sl;
        bool last;

        while (e < n && out[e] != '/')
            e++;
        sl = e - s;
        last = e >= n;
        if ((sl == 1 && out[s] == '.') || (sl == 2 && out[s] == '.' && out[s + 1] == '.')) {
            if (sl == 2) /* drop the last segment written */
                while (w > 0 && out[--w] != '/')
                    ;
            if (last)
                out[w++] = '/';
        } else if (sl == 0 && how >= AZ_NORM_MERGE_SLASHES && !last) {
            /* "//": skipped; a trailing one still ends the path with '/' */
        } else if (sl == 0 && last && w > 0 && out[w - 1] == '/') {
            /* trailing '/' after a segment already ending in '/' (merged) */
        } else {
            out[w++] = '/';
            memmove(out + w, out + s, sl);
            w += sl;
        }
        r = e;
    }
    if (w == 0)
        out[w++] = '/';
    return (long)w;
}

/* ---- evaluation ---- */

static bool bytes_eq(const char *a, const char *b, size_t n, bool icase)
{
    return icase ? strncasecmp(a, b, n) == 0 : memcmp(a, b, n) == 0;
}

static bool m_match(const struct matcher *m, struct nodus_slice s)
{
    switch (m->kind) {
    case M_ANY:
        return true;
    case M_EXACT:
        return s.len == m->len && bytes_eq(s.p, m->s, m->len, m->icase);
    case M_PREFIX:
        return s.len >= m->len && bytes_eq(s.p, m->s, m->len, m->icase);
    case M_SUFFIX:
        return s.len >= m->len && bytes_eq(s.p + s.len - m->len, m->s, m->len, m->icase);
    }
    return false;
}

static bool any_match(const struct matcher *v, size_t n, struct nodus_slice s)
{
    for (size_t i = 0; i < n; i++)
        if (m_match(&v[i], s))
            return true;
    return false;
}

/* present: the request has the value (a non-empty string, or a header even if empty) */
static bool field_holds(const struct field *f, struct nodus_slice s, bool present)
{
    if (f->n && (!present || !any_match(f->v, f->n, s)))
        return false;
    return !present || !any_match(f->nv, f->nn, s);
}

static bool ip_holds(const struct field *f, struct nodus_slice addr)
{
    uint8_t family, a[16];
    bool ok = addr_parse(addr, &family, a) == 0, in = false;

    for (size_t i = 0; ok && i < f->n && !in; i++)
        in = cidr_in(&f->cv[i], family, a);
    if (f->n && !in)
        return false;
    for (size_t i = 0; ok && i < f->nn; i++)
        if (cidr_in(&f->cnv[i], family, a))
            return false;
    return true;
}

static bool rule_matches(const struct rule *r, const struct az_request *q)
{
    struct nodus_slice v;

    for (int f = 0; f < AZ_F_COUNT; f++) {
        if (!r->has[f])
            continue;
        switch (f) {
        case AZ_F_PRINCIPALS:
            v = q->principal;
            if (v.len >= SPIFFE_LEN && strncasecmp(v.p, SPIFFE, SPIFFE_LEN) == 0) {
                v.p += SPIFFE_LEN;
                v.len -= SPIFFE_LEN;
            }
            break;
        case AZ_F_NAMESPACES:
            if (!az_spiffe_namespace(q->principal, &v))
                v = (struct nodus_slice){"", 0};
            break;
        case AZ_F_IP_BLOCKS:
            if (!ip_holds(&r->f[f], q->peer_addr))
                return false;
            continue;
        case AZ_F_REQUEST_PRINCIPALS:
            v = q->request_principal;
            break;
        case AZ_F_METHODS:
            v = q->method;
            break;
        case AZ_F_PATHS:
            v = q->path;
            break;
        case AZ_F_PORTS:
            v = q->port;
            break;
        default:
            v = q->host;
            break;
        }
        if (!field_holds(&r->f[f], v, v.len > 0))
            return false;
    }
    for (size_t i = 0; i < r->nh; i++) {
        struct nodus_slice hv = {"", 0};
        bool present = q->header && q->header(q->arg, r->hdrs[i].name, &hv) == 1;

        if (!field_holds(&r->hdrs[i].f, hv, present))
            return false;
    }
    return true;
}

void az_set_shadow(struct az_policy *p, bool shadow)
{
    p->shadow = shadow;
}

bool az_shadow(const struct az_policy *p)
{
    return p->shadow;
}

struct az_result az_eval(const struct az_policy *p, const struct az_request *q)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->rules[i].action == AZ_DENY && rule_matches(&p->rules[i], q))
            return (struct az_result){AZ_DENIED_BY_RULE, (long)i, !p->shadow};
    if (p->n_allow == 0)
        return (struct az_result){AZ_ALLOWED, -1, false};
    for (size_t i = 0; i < p->n; i++)
        if (p->rules[i].action == AZ_ALLOW && rule_matches(&p->rules[i], q))
            return (struct az_result){AZ_ALLOWED, (long)i, false};
    return (struct az_result){AZ_DENIED_NO_MATCH, -1, !p->shadow};
}
