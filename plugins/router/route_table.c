/* The router's route table: building, matching, split, rewrite. See route_table.h. */
#include "route_table.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rt_str {
    char *p;
    size_t len;
};

struct rt_ccond {
    struct rt_str name; /* lowercased for headers */
    enum rt_cond_kind kind;
    struct rt_str value;
    int re; /* index of the regex in the table, or -1 */
};

struct rt_route {
    size_t vhost, index;
    enum rt_path_kind path_kind;
    struct rt_str path;
    int path_re;
    struct rt_str *methods;
    size_t n_methods;
    struct rt_ccond *headers;
    size_t n_headers;
    struct rt_ccond *query;
    size_t n_query;

    enum rt_action action;
    struct rt_target *targets; /* strings owned */
    size_t n_targets;
    uint64_t weight_sum;
    struct rt_str rewrite; /* p == NULL: no rewrite */
    uint32_t timeout_ms;
    struct rt_str location; /* redirect: whole Location, or a path when location_is_path */
    bool location_is_path;
    int status;
    struct rt_str body;
    char *content_type;
    const void *config; /* the host's per-route configurations, opaque here */
};

struct rt_vhost {
    struct rt_route *routes;
    size_t n_routes;
};

/* Domain kinds, in the order of precedence (the higher wins). */
enum { DOM_ANY, DOM_PREFIX, DOM_SUFFIX, DOM_EXACT };

struct rt_domain {
    char *text;       /* as configured, lowercased */
    const char *name; /* text without its '*' */
    size_t len;       /* of name */
    int kind;
    size_t vhost;
    size_t order; /* insertion order, to keep the sort stable */
};

struct rt_table {
    struct rt_vhost *vhosts;
    size_t n_vhosts;
    struct rt_domain *domains; /* by precedence: the first that matches is the best */
    size_t n_domains;
    char **re_src; /* anchored sources of every regex, compiled per worker */
    size_t n_re;
    size_t n_routes;
};

struct rt_worker {
    uint64_t rng;
    size_t n_re;
    regex_t re[];
};

/* ---- helpers ---- */

static void fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* a and b (already lowercase) are equal ignoring ASCII case, over n bytes */
static bool eq_nocase(const char *a, const char *lb, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(a[i]) != lb[i])
            return false;
    return true;
}

static bool slice_eq(struct nodus_slice s, const struct rt_str *v)
{
    return s.len == v->len && (v->len == 0 || memcmp(s.p, v->p, v->len) == 0);
}

static bool slice_prefix(struct nodus_slice s, const struct rt_str *v)
{
    return s.len >= v->len && (v->len == 0 || memcmp(s.p, v->p, v->len) == 0);
}

static int str_dup(struct rt_str *out, const char *s, bool lowercase)
{
    size_t n = strlen(s);

    out->p = malloc(n + 1);
    if (!out->p)
        return -1;
    for (size_t i = 0; i < n; i++)
        out->p[i] = lowercase ? lower(s[i]) : s[i];
    out->p[n] = '\0';
    out->len = n;
    return 0;
}

/* RFC 9110 tchar */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c)))
            return false;
    }
    return true;
}

/* No control characters (HTAB allowed): safe in a header value. */
static bool is_field_value(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static bool regex_holds(const regex_t *re, struct nodus_slice s)
{
    regmatch_t m = {.rm_so = 0, .rm_eo = (regoff_t)s.len};

    return regexec(re, s.p ? s.p : "", 1, &m, REG_STARTEND) == 0;
}

/* ---- building ---- */

struct rt_table *rt_new(void)
{
    return calloc(1, sizeof(struct rt_table));
}

static void route_free(struct rt_route *r)
{
    free(r->path.p);
    for (size_t i = 0; i < r->n_methods; i++)
        free(r->methods[i].p);
    free(r->methods);
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name.p);
        free(r->headers[i].value.p);
    }
    free(r->headers);
    for (size_t i = 0; i < r->n_query; i++) {
        free(r->query[i].name.p);
        free(r->query[i].value.p);
    }
    free(r->query);
    for (size_t i = 0; i < r->n_targets; i++) {
        free((char *)r->targets[i].cluster_name);
        free((char *)r->targets[i].subset_key);
        free((char *)r->targets[i].subset_val);
    }
    free(r->targets);
    free(r->rewrite.p);
    free(r->location.p);
    free(r->body.p);
    free(r->content_type);
}

void rt_free(struct rt_table *t)
{
    if (!t)
        return;
    for (size_t v = 0; v < t->n_vhosts; v++) {
        for (size_t i = 0; i < t->vhosts[v].n_routes; i++)
            route_free(&t->vhosts[v].routes[i]);
        free(t->vhosts[v].routes);
    }
    free(t->vhosts);
    for (size_t i = 0; i < t->n_domains; i++)
        free(t->domains[i].text);
    free(t->domains);
    for (size_t i = 0; i < t->n_re; i++)
        free(t->re_src[i]);
    free(t->re_src);
    free(t);
}

static int domain_cmp(const void *a, const void *b)
{
    const struct rt_domain *x = a, *y = b;

    if (x->kind != y->kind)
        return y->kind - x->kind;
    if (x->len != y->len)
        return x->len < y->len ? 1 : -1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Checks a configured domain; returns its kind, or -1 with err. */
static int domain_kind(const char *d, char *err, size_t errlen)
{
    size_t n = strlen(d);
    const char *star = strchr(d, '*');

    if (n == 0) {
        fail(err, errlen, "empty domain");
        return -1;
    }
    if (strcmp(d, "*") == 0)
        return DOM_ANY;
    if (star && strchr(star + 1, '*')) {
        fail(err, errlen, "domain \"%s\": only one '*' is allowed", d);
        return -1;
    }
    if (star && star != d && star != d + n - 1) {
        fail(err, errlen, "domain \"%s\": '*' must be first or last", d);
        return -1;
    }
    if (d[0] == '[') {
        /* an IPv6 literal: "[::1]" */
        if (star || d[n - 1] != ']' || n < 3 ||
            strspn(d + 1, "0123456789abcdefABCDEF:.") != n - 2) {
            fail(err, errlen, "domain \"%s\": malformed IPv6 literal", d);
            return -1;
        }
        return DOM_EXACT;
    }
    for (const char *p = d; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == ':') {
            fail(err, errlen, "domain \"%s\": no port here (the port of Host is ignored)", d);
            return -1;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '*')) {
            fail(err, errlen, "domain \"%s\": invalid character '%c'", d, c);
            return -1;
        }
    }
    if (!star)
        return DOM_EXACT;
    return star == d ? DOM_SUFFIX : DOM_PREFIX;
}

int rt_add_vhost(struct rt_table *t, const char *const *domains, size_t n, char *err, size_t errlen)
{
    struct rt_vhost *vh;
    struct rt_domain *doms;
    size_t base = t->n_domains;

    if (n == 0) {
        fail(err, errlen, "a virtual host needs at least one domain");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (domain_kind(domains[i], err, errlen) < 0)
            return -1;
        for (size_t j = 0; j < t->n_domains; j++)
            if (strcasecmp(t->domains[j].text, domains[i]) == 0) {
                fail(err, errlen, "domain \"%s\" is already served by virtual host %zu", domains[i],
                     t->domains[j].vhost + 1);
                return -1;
            }
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(domains[j], domains[i]) == 0) {
                fail(err, errlen, "domain \"%s\" appears twice", domains[i]);
                return -1;
            }
    }
    vh = realloc(t->vhosts, (t->n_vhosts + 1) * sizeof(*vh));
    if (!vh)
        goto oom;
    t->vhosts = vh;
    doms = realloc(t->domains, (t->n_domains + n) * sizeof(*doms));
    if (!doms)
        goto oom;
    t->domains = doms;
    for (size_t i = 0; i < n; i++) {
        struct rt_domain *d = &t->domains[base + i];
        struct rt_str s;

        if (str_dup(&s, domains[i], true) < 0) {
            for (size_t j = base; j < base + i; j++)
                free(t->domains[j].text);
            goto oom;
        }
        d->text = s.p;
        d->kind = domain_kind(s.p, NULL, 0);
        d->name = d->kind == DOM_SUFFIX ? s.p + 1 : s.p;
        d->len = d->kind == DOM_ANY ? 0 : s.len - (d->kind != DOM_EXACT);
        d->vhost = t->n_vhosts;
        d->order = base + i;
    }
    t->n_domains += n;
    qsort(t->domains, t->n_domains, sizeof(*t->domains), domain_cmp);
    t->vhosts[t->n_vhosts++] = (struct rt_vhost){0};
    return 0;
oom:
    fail(err, errlen, "out of memory");
    return -1;
}

/* Records a regex (validated) in the table; returns its index, or -1 with err. */
static int add_regex(struct rt_table *t, const char *what, const char *src, char *err,
                     size_t errlen)
{
    regex_t re;
    int rc;
    char msg[128];
    size_t n = strlen(src);
    char *anchored = NULL, **v;

    if (n == 0) {
        fail(err, errlen, "%s: empty regex", what);
        return -1;
    }
    /* The source alone first: "a)|(b" must not pass as a group once wrapped. */
    rc = regcomp(&re, src, REG_EXTENDED | REG_NOSUB);
    if (rc == 0) {
        regfree(&re);
        anchored = malloc(n + 5);
        if (!anchored) {
            fail(err, errlen, "out of memory");
            return -1;
        }
        snprintf(anchored, n + 5, "^(%s)$", src);
        rc = regcomp(&re, anchored, REG_EXTENDED | REG_NOSUB);
        if (rc != 0)
            free(anchored);
    }
    if (rc != 0) {
        regerror(rc, &re, msg, sizeof(msg));
        fail(err, errlen, "%s: bad regex \"%s\": %s", what, src, msg);
        return -1;
    }
    regfree(&re);
    v = realloc(t->re_src, (t->n_re + 1) * sizeof(*v));
    if (!v) {
        free(anchored);
        fail(err, errlen, "out of memory");
        return -1;
    }
    t->re_src = v;
    t->re_src[t->n_re] = anchored;
    return (int)t->n_re++;
}

static int copy_conds(struct rt_table *t, const char *what, bool header, const struct rt_cond *in,
                      size_t n, struct rt_ccond **out, size_t *nout, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    *out = calloc(n, sizeof(**out));
    if (!*out) {
        fail(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct rt_ccond *c = &(*out)[i];
        bool valued = in[i].kind == RT_COND_EXACT || in[i].kind == RT_COND_PREFIX ||
                      in[i].kind == RT_COND_REGEX;

        c->re = -1;
        if (!in[i].name || !*in[i].name) {
            fail(err, errlen, "%s condition %zu: no name", what, i + 1);
            return -1;
        }
        if (header && !is_token(in[i].name)) {
            fail(err, errlen, "%s condition %zu: \"%s\" is not a valid header name", what, i + 1,
                 in[i].name);
            return -1;
        }
        if (valued && !in[i].value) {
            fail(err, errlen, "%s condition %zu (%s): no value", what, i + 1, in[i].name);
            return -1;
        }
        if (str_dup(&c->name, in[i].name, header) < 0 ||
            (valued && str_dup(&c->value, in[i].value, false) < 0)) {
            *nout = i + 1;
            fail(err, errlen, "out of memory");
            return -1;
        }
        c->kind = in[i].kind;
        *nout = i + 1;
        if (c->kind == RT_COND_REGEX) {
            char label[64];

            snprintf(label, sizeof(label), "%s condition %zu", what, i + 1);
            c->re = add_regex(t, label, in[i].value, err, errlen);
            if (c->re < 0)
                return -1;
        }
    }
    return 0;
}

static int check_action(const struct rt_route_spec *s, char *err, size_t errlen)
{
    uint64_t sum = 0;

    if (s->action != RT_UPSTREAM) {
        if (s->n_targets) {
            fail(err, errlen, "a redirect or direct response has no cluster");
            return -1;
        }
        if (s->rewrite_prefix || s->timeout_ms) {
            fail(err, errlen, "rewrite_prefix and timeout need cluster or split");
            return -1;
        }
    }
    switch (s->action) {
    case RT_UPSTREAM:
        if (s->n_targets == 0) {
            fail(err, errlen, "no cluster");
            return -1;
        }
        for (size_t i = 0; i < s->n_targets; i++) {
            const struct rt_target *tg = &s->targets[i];

            if (!tg->cluster_name || !*tg->cluster_name) {
                fail(err, errlen, "split entry %zu: no cluster", i + 1);
                return -1;
            }
            if (!tg->subset_key != !tg->subset_val || (tg->subset_key && !*tg->subset_key)) {
                fail(err, errlen, "cluster \"%s\": a subset is one label, key and value",
                     tg->cluster_name);
                return -1;
            }
            sum += tg->weight;
        }
        if (s->n_targets > 1 && sum == 0) {
            fail(err, errlen, "split weights sum to 0");
            return -1;
        }
        if (s->rewrite_prefix && s->path_kind != RT_PATH_PREFIX) {
            fail(err, errlen, "rewrite_prefix needs a prefix match");
            return -1;
        }
        if (s->rewrite_prefix && s->rewrite_prefix[0] != '/') {
            fail(err, errlen, "rewrite_prefix \"%s\" must start with '/'", s->rewrite_prefix);
            return -1;
        }
        return 0;
    case RT_REDIRECT:
        if (!s->location == !s->redirect_path) {
            fail(err, errlen, "a redirect has one of location and path");
            return -1;
        }
        if (s->location && (!*s->location || !is_field_value(s->location))) {
            fail(err, errlen, "redirect location must be a non-empty header value");
            return -1;
        }
        if (s->redirect_path && (s->redirect_path[0] != '/' || !is_field_value(s->redirect_path))) {
            fail(err, errlen, "redirect path \"%s\" must start with '/'", s->redirect_path);
            return -1;
        }
        if (s->status != 301 && s->status != 302 && s->status != 303 && s->status != 307 &&
            s->status != 308) {
            fail(err, errlen, "redirect status %d: one of 301, 302, 303, 307, 308", s->status);
            return -1;
        }
        return 0;
    case RT_DIRECT:
        if (s->status < 200 || s->status > 599) {
            fail(err, errlen, "direct response status %d: 200..599", s->status);
            return -1;
        }
        if (s->content_type && (!*s->content_type || !is_field_value(s->content_type))) {
            fail(err, errlen, "content_type must be a non-empty header value");
            return -1;
        }
        return 0;
    }
    fail(err, errlen, "unknown action");
    return -1;
}

static int check_path(const struct rt_route_spec *s, char *err, size_t errlen)
{
    if (!s->path) {
        fail(err, errlen, "no path match (prefix, exact or regex)");
        return -1;
    }
    switch (s->path_kind) {
    case RT_PATH_PREFIX:
    case RT_PATH_EXACT:
        if (s->path[0] != '/') {
            fail(err, errlen, "%s \"%s\" must start with '/'",
                 s->path_kind == RT_PATH_PREFIX ? "prefix" : "exact", s->path);
            return -1;
        }
        return 0;
    case RT_PATH_REGEX:
        return 0;
    }
    fail(err, errlen, "unknown path match kind");
    return -1;
}

static int copy_route(struct rt_table *t, const struct rt_route_spec *s, struct rt_route *r,
                      char *err, size_t errlen)
{
    r->path_re = -1;
    r->path_kind = s->path_kind;
    r->config = s->config;
    if (str_dup(&r->path, s->path, false) < 0)
        goto oom;
    if (s->path_kind == RT_PATH_REGEX) {
        r->path_re = add_regex(t, "regex", s->path, err, errlen);
        if (r->path_re < 0)
            return -1;
    }
    if (s->n_methods) {
        r->methods = calloc(s->n_methods, sizeof(*r->methods));
        if (!r->methods)
            goto oom;
        for (size_t i = 0; i < s->n_methods; i++) {
            if (!s->methods[i] || !is_token(s->methods[i])) {
                fail(err, errlen, "method %zu is not a valid method name", i + 1);
                return -1;
            }
            if (strpbrk(s->methods[i], "abcdefghijklmnopqrstuvwxyz")) {
                /* methods are case-sensitive: "get" would never match a GET */
                fail(err, errlen, "method \"%s\": methods are case-sensitive, write it in capitals",
                     s->methods[i]);
                return -1;
            }
            if (str_dup(&r->methods[r->n_methods], s->methods[i], false) < 0)
                goto oom;
            r->n_methods++;
        }
    }
    if (copy_conds(t, "header", true, s->headers, s->n_headers, &r->headers, &r->n_headers, err,
                   errlen) < 0 ||
        copy_conds(t, "query", false, s->query, s->n_query, &r->query, &r->n_query, err, errlen) <
            0)
        return -1;

    r->action = s->action;
    r->status = s->status;
    r->timeout_ms = s->timeout_ms;
    if (s->n_targets) {
        r->targets = calloc(s->n_targets, sizeof(*r->targets));
        if (!r->targets)
            goto oom;
        for (size_t i = 0; i < s->n_targets; i++) {
            const struct rt_target *in = &s->targets[i];
            struct rt_target *o = &r->targets[i];

            r->n_targets = i + 1;
            o->cluster = in->cluster;
            o->weight = s->n_targets == 1 ? 1 : in->weight;
            r->weight_sum += o->weight;
            if (!(o->cluster_name = strdup(in->cluster_name)))
                goto oom;
            if (in->subset_key && (!(o->subset_key = strdup(in->subset_key)) ||
                                   !(o->subset_val = strdup(in->subset_val))))
                goto oom;
        }
    }
    if (s->rewrite_prefix && str_dup(&r->rewrite, s->rewrite_prefix, false) < 0)
        goto oom;
    if (s->location && str_dup(&r->location, s->location, false) < 0)
        goto oom;
    if (s->redirect_path) {
        if (str_dup(&r->location, s->redirect_path, false) < 0)
            goto oom;
        r->location_is_path = true;
    }
    if (s->body && str_dup(&r->body, s->body, false) < 0)
        goto oom;
    if (s->content_type && !(r->content_type = strdup(s->content_type)))
        goto oom;
    return 0;
oom:
    fail(err, errlen, "out of memory");
    return -1;
}

int rt_add_route(struct rt_table *t, const struct rt_route_spec *s, char *err, size_t errlen)
{
    struct rt_vhost *vh;
    struct rt_route r = {0}, *routes;
    size_t n_re = t->n_re;

    if (t->n_vhosts == 0) {
        fail(err, errlen, "a route needs a virtual host");
        return -1;
    }
    vh = &t->vhosts[t->n_vhosts - 1];
    if (check_path(s, err, errlen) < 0 || check_action(s, err, errlen) < 0)
        return -1;
    if (copy_route(t, s, &r, err, errlen) < 0)
        goto fail;
    routes = realloc(vh->routes, (vh->n_routes + 1) * sizeof(*routes));
    if (!routes) {
        fail(err, errlen, "out of memory");
        goto fail;
    }
    vh->routes = routes;
    r.vhost = t->n_vhosts - 1;
    r.index = vh->n_routes;
    vh->routes[vh->n_routes++] = r;
    t->n_routes++;
    return 0;
fail:
    route_free(&r);
    while (t->n_re > n_re)
        free(t->re_src[--t->n_re]);
    return -1;
}

size_t rt_vhost_count(const struct rt_table *t)
{
    return t->n_vhosts;
}

size_t rt_route_count(const struct rt_table *t)
{
    return t->n_routes;
}

/* ---- per worker ---- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

struct rt_worker *rt_worker_new(const struct rt_table *t, uint64_t seed)
{
    struct rt_worker *w = calloc(1, sizeof(*w) + t->n_re * sizeof(regex_t));

    if (!w)
        return NULL;
    w->rng = splitmix64(seed);
    if (w->rng == 0)
        w->rng = 1;
    for (; w->n_re < t->n_re; w->n_re++)
        if (regcomp(&w->re[w->n_re], t->re_src[w->n_re], REG_EXTENDED | REG_NOSUB) != 0) {
            rt_worker_free(w);
            return NULL;
        }
    return w;
}

void rt_worker_free(struct rt_worker *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_re; i++)
        regfree(&w->re[i]);
    free(w);
}

uint64_t rt_rand(struct rt_worker *w)
{
    uint64_t x = w->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* ---- matching ---- */

static const struct rt_vhost *find_vhost(const struct rt_table *t, struct nodus_slice host)
{
    const char *h = host.p;
    size_t n = host.len;
    const char *colon;

    /* the port, if the caller left it: "a.example:8080", "[::1]:8080" */
    if (n && h[0] == '[') {
        const char *close = memchr(h, ']', n);
        if (close)
            n = (size_t)(close - h) + 1;
    } else if (n && (colon = memchr(h, ':', n))) {
        n = (size_t)(colon - h);
    }
    for (size_t i = 0; i < t->n_domains; i++) {
        const struct rt_domain *d = &t->domains[i];
        bool ok = false;

        switch (d->kind) {
        case DOM_EXACT:
            ok = n == d->len && eq_nocase(h, d->name, n);
            break;
        case DOM_SUFFIX:
            ok = n > d->len && eq_nocase(h + n - d->len, d->name, d->len);
            break;
        case DOM_PREFIX:
            ok = n > d->len && eq_nocase(h, d->name, d->len);
            break;
        case DOM_ANY:
            ok = true;
            break;
        }
        if (ok)
            return &t->vhosts[d->vhost];
    }
    return NULL;
}

/* The first value of the query parameter name: 1 and *val ("" for a name without '='), or 0. */
static int query_find(struct nodus_slice q, const struct rt_str *name, struct nodus_slice *val)
{
    const char *p = q.p, *end = q.p + q.len;

    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ne = eq ? eq : pe;

        if ((size_t)(ne - p) == name->len && memcmp(p, name->p, name->len) == 0) {
            val->p = eq ? eq + 1 : pe;
            val->len = eq ? (size_t)(pe - eq - 1) : 0;
            return 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

static bool cond_holds(const struct rt_ccond *c, const struct rt_worker *w, int found,
                       struct nodus_slice v)
{
    switch (c->kind) {
    case RT_COND_PRESENT:
        return found == 1;
    case RT_COND_ABSENT:
        return found != 1;
    case RT_COND_EXACT:
        return found == 1 && slice_eq(v, &c->value);
    case RT_COND_PREFIX:
        return found == 1 && slice_prefix(v, &c->value);
    case RT_COND_REGEX:
        return found == 1 && regex_holds(&w->re[c->re], v);
    }
    return false;
}

static bool route_matches(const struct rt_route *r, const struct rt_worker *w,
                          const struct rt_request *req)
{
    switch (r->path_kind) {
    case RT_PATH_PREFIX:
        if (!slice_prefix(req->path, &r->path))
            return false;
        break;
    case RT_PATH_EXACT:
        if (!slice_eq(req->path, &r->path))
            return false;
        break;
    case RT_PATH_REGEX:
        if (!regex_holds(&w->re[r->path_re], req->path))
            return false;
        break;
    }
    if (r->n_methods) {
        size_t i;

        for (i = 0; i < r->n_methods; i++)
            if (slice_eq(req->method, &r->methods[i]))
                break;
        if (i == r->n_methods)
            return false;
    }
    for (size_t i = 0; i < r->n_headers; i++) {
        struct nodus_slice v = {"", 0};
        int found = req->header ? req->header(req->arg, r->headers[i].name.p, &v) : 0;

        if (!cond_holds(&r->headers[i], w, found, v))
            return false;
    }
    for (size_t i = 0; i < r->n_query; i++) {
        struct nodus_slice v = {"", 0};
        int found = query_find(req->query, &r->query[i].name, &v);

        if (!cond_holds(&r->query[i], w, found, v))
            return false;
    }
    return true;
}

const struct rt_route *rt_match(const struct rt_table *t, struct rt_worker *w,
                                const struct rt_request *req)
{
    const struct rt_vhost *vh = find_vhost(t, req->host);

    if (!vh)
        return NULL;
    for (size_t i = 0; i < vh->n_routes; i++)
        if (route_matches(&vh->routes[i], w, req))
            return &vh->routes[i];
    return NULL;
}

enum rt_action rt_route_action(const struct rt_route *r)
{
    return r->action;
}

const struct rt_target *rt_pick(const struct rt_route *r, struct rt_worker *w)
{
    uint64_t x;

    if (r->n_targets == 1)
        return &r->targets[0];
    x = rt_rand(w) % r->weight_sum;
    for (size_t i = 0; i < r->n_targets; i++) {
        if (x < r->targets[i].weight)
            return &r->targets[i];
        x -= r->targets[i].weight;
    }
    return &r->targets[r->n_targets - 1]; /* not reached: x < weight_sum */
}

uint32_t rt_route_timeout(const struct rt_route *r)
{
    return r->timeout_ms;
}

long rt_rewrite(const struct rt_route *r, const struct rt_request *req, char *buf, size_t cap)
{
    const char *rest;
    size_t restlen, n;

    if (!r->rewrite.p)
        return 0;
    rest = req->path.p + r->path.len;
    restlen = req->path.len >= r->path.len ? req->path.len - r->path.len : 0;
    /* "/v1" -> "/" on "/v1/users" gives "/users", not "//users" */
    if (r->rewrite.len && r->rewrite.p[r->rewrite.len - 1] == '/' && restlen && rest[0] == '/') {
        rest++;
        restlen--;
    }
    n = r->rewrite.len + restlen + (req->query.len ? 1 + req->query.len : 0);
    if (n > cap)
        return -1;
    memcpy(buf, r->rewrite.p, r->rewrite.len);
    if (restlen)
        memcpy(buf + r->rewrite.len, rest, restlen);
    if (req->query.len) {
        buf[r->rewrite.len + restlen] = '?';
        memcpy(buf + r->rewrite.len + restlen + 1, req->query.p, req->query.len);
    }
    return (long)n;
}

int rt_route_status(const struct rt_route *r)
{
    return r->status;
}

long rt_location(const struct rt_route *r, const struct rt_request *req, char *buf, size_t cap,
                 const char **out)
{
    size_t n;

    if (!r->location_is_path || req->query.len == 0 ||
        memchr(r->location.p, '?', r->location.len)) {
        *out = r->location.p;
        return (long)r->location.len;
    }
    n = r->location.len + 1 + req->query.len;
    if (n > cap)
        return -1;
    memcpy(buf, r->location.p, r->location.len);
    buf[r->location.len] = '?';
    memcpy(buf + r->location.len + 1, req->query.p, req->query.len);
    *out = buf;
    return (long)n;
}

struct nodus_slice rt_route_body(const struct rt_route *r)
{
    return (struct nodus_slice){r->body.p ? r->body.p : "", r->body.len};
}

const char *rt_route_content_type(const struct rt_route *r)
{
    if (r->content_type)
        return r->content_type;
    return r->body.len ? "text/plain" : NULL;
}

const void *rt_route_config(const struct rt_route *r)
{
    return r->config;
}

void rt_route_pos(const struct rt_route *r, size_t *vhost, size_t *index)
{
    *vhost = r->vhost;
    *index = r->index;
}

/* ---- description (main thread): the table as JSON ---- */

struct jw {
    char *buf;
    size_t len, need;
};

static void jw_raw(struct jw *j, const char *s, size_t n)
{
    if (j->need + n < j->len)
        memcpy(j->buf + j->need, s, n);
    else if (j->need < j->len)
        memcpy(j->buf + j->need, s, j->len - j->need - 1);
    j->need += n;
}

static void jw_lit(struct jw *j, const char *s)
{
    jw_raw(j, s, strlen(s));
}

static void jw_str(struct jw *j, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    jw_raw(j, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jw_raw(j, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            jw_raw(j, e, 6);
        } else {
            jw_raw(j, (const char *)&c, 1);
        }
    }
    jw_raw(j, "\"", 1);
}

static void jw_cstr(struct jw *j, const char *s)
{
    jw_str(j, s, strlen(s));
}

static void jw_uint(struct jw *j, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);

    jw_raw(j, tmp, (size_t)n);
}

static void jw_conds(struct jw *j, const char *key, const struct rt_ccond *c, size_t n)
{
    static const char *const kinds[] = {"present", "absent", "exact", "prefix", "regex"};

    if (!n)
        return;
    jw_lit(j, ",");
    jw_cstr(j, key);
    jw_lit(j, ":[");
    for (size_t i = 0; i < n; i++) {
        jw_lit(j, i ? ",{\"name\":" : "{\"name\":");
        jw_str(j, c[i].name.p, c[i].name.len);
        jw_lit(j, ",");
        jw_cstr(j, kinds[c[i].kind]);
        jw_lit(j, ":");
        if (c[i].value.p)
            jw_str(j, c[i].value.p, c[i].value.len);
        else
            jw_lit(j, "true");
        jw_lit(j, "}");
    }
    jw_lit(j, "]");
}

static void jw_target(struct jw *j, const struct rt_target *t, bool weight)
{
    jw_lit(j, "{\"cluster\":");
    jw_cstr(j, t->cluster_name);
    if (t->subset_key) {
        jw_lit(j, ",\"subset\":{");
        jw_cstr(j, t->subset_key);
        jw_lit(j, ":");
        jw_cstr(j, t->subset_val);
        jw_lit(j, "}");
    }
    if (weight) {
        jw_lit(j, ",\"weight\":");
        jw_uint(j, t->weight);
    }
    jw_lit(j, "}");
}

static void jw_route(struct jw *j, const struct rt_route *r)
{
    static const char *const paths[] = {"prefix", "exact", "regex"};

    jw_lit(j, "{\"match\":{");
    jw_cstr(j, paths[r->path_kind]);
    jw_lit(j, ":");
    jw_str(j, r->path.p, r->path.len);
    if (r->n_methods) {
        jw_lit(j, ",\"methods\":[");
        for (size_t i = 0; i < r->n_methods; i++) {
            if (i)
                jw_lit(j, ",");
            jw_str(j, r->methods[i].p, r->methods[i].len);
        }
        jw_lit(j, "]");
    }
    jw_conds(j, "headers", r->headers, r->n_headers);
    jw_conds(j, "query", r->query, r->n_query);
    jw_lit(j, "}");
    switch (r->action) {
    case RT_UPSTREAM:
        if (r->n_targets == 1) {
            jw_lit(j, ",\"route\":");
            jw_target(j, &r->targets[0], false);
        } else {
            jw_lit(j, ",\"split\":[");
            for (size_t i = 0; i < r->n_targets; i++) {
                if (i)
                    jw_lit(j, ",");
                jw_target(j, &r->targets[i], true);
            }
            jw_lit(j, "]");
        }
        if (r->rewrite.p) {
            jw_lit(j, ",\"prefix_rewrite\":");
            jw_str(j, r->rewrite.p, r->rewrite.len);
        }
        if (r->timeout_ms) {
            jw_lit(j, ",\"timeout_ms\":");
            jw_uint(j, r->timeout_ms);
        }
        break;
    case RT_REDIRECT:
        jw_lit(j, ",\"redirect\":{\"status\":");
        jw_uint(j, (uint64_t)r->status);
        jw_lit(j, r->location_is_path ? ",\"path\":" : ",\"location\":");
        jw_str(j, r->location.p, r->location.len);
        jw_lit(j, "}");
        break;
    case RT_DIRECT:
        jw_lit(j, ",\"direct_response\":{\"status\":");
        jw_uint(j, (uint64_t)r->status);
        jw_lit(j, ",\"body_bytes\":");
        jw_uint(j, r->body.len);
        jw_lit(j, "}");
        break;
    }
    jw_lit(j, "}");
}

size_t rt_describe(const struct rt_table *t, char *buf, size_t len)
{
    struct jw j = {buf, len, 0};

    jw_lit(&j, "{\"virtual_hosts\":[");
    for (size_t v = 0; v < t->n_vhosts; v++) {
        bool first = true;

        jw_lit(&j, v ? ",{\"domains\":[" : "{\"domains\":[");
        for (size_t d = 0; d < t->n_domains; d++) {
            if (t->domains[d].vhost != v)
                continue;
            if (!first)
                jw_lit(&j, ",");
            first = false;
            jw_cstr(&j, t->domains[d].text);
        }
        jw_lit(&j, "],\"routes\":[");
        for (size_t r = 0; r < t->vhosts[v].n_routes; r++) {
            if (r)
                jw_lit(&j, ",");
            jw_route(&j, &t->vhosts[v].routes[r]);
        }
        jw_lit(&j, "]}");
    }
    jw_lit(&j, "]}");
    if (len)
        buf[j.need < len ? j.need : len - 1] = '\0';
    return j.need;
}
