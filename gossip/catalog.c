/* Service catalog: see catalog.h. */
#include "catalog.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serf.h"
#include "swim.h"

#define PREFIX_LEN (sizeof(ND_CAT_TAG_PREFIX) - 1)

/* ---- tags ---------------------------------------------------------------------------------- */

bool nd_cat_name_ok(const char *s, size_t len, bool label)
{
    size_t i;

    if (!len || len > ND_CAT_NAME_MAX)
        return false;
    for (i = 0; i < len; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-' || (label && (ch == '/' || ch == ':'))))
            return false;
    }
    return true;
}

int nd_cat_tag_encode(const char *host, uint16_t port, const char *const *keys,
                      const char *const *vals, unsigned nlabels, char *out, size_t cap)
{
    size_t n = 0, hl;
    unsigned i;
    int r;

    if (host && *host) {
        hl = strlen(host);
        if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
            host++;
            hl -= 2;
        }
        r = snprintf(out, cap, memchr(host, ':', hl) ? "[%.*s]:%u" : "%.*s:%u", (int)hl, host,
                     port);
    } else {
        r = snprintf(out, cap, "%u", port);
    }
    if (r < 0 || (size_t)r >= cap)
        return -1;
    n = (size_t)r;
    for (i = 0; i < nlabels; i++) {
        if (!nd_cat_name_ok(keys[i], strlen(keys[i]), true) ||
            !nd_cat_name_ok(vals[i], strlen(vals[i]), true))
            return -1;
        r = snprintf(out + n, cap - n, ";%s=%s", keys[i], vals[i]);
        if (r < 0 || (size_t)r >= cap - n)
            return -1;
        n += (size_t)r;
    }
    return (int)n;
}

static int parse_port(const char *p, size_t len, uint16_t *port)
{
    unsigned v = 0;
    size_t i;

    if (!len || len > 5)
        return -1;
    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (!v || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* host must be an IP literal: what the catalog turns into an endpoint address is checked here,
 * not by the core later. */
static bool ip_literal(const char *p, size_t len)
{
    char buf[48];
    unsigned char tmp[16];

    if (len >= sizeof(buf))
        return false;
    memcpy(buf, p, len);
    buf[len] = '\0';
    return inet_pton(AF_INET, buf, tmp) == 1 || inet_pton(AF_INET6, buf, tmp) == 1;
}

int nd_cat_tag_decode(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      struct nd_cat_tag *t)
{
    const char *v = (const char *)val, *end = v + vlen, *semi, *hp;
    size_t hl;

    if (klen < PREFIX_LEN || memcmp(key, ND_CAT_TAG_PREFIX, PREFIX_LEN) != 0)
        return 1;
    memset(t, 0, sizeof(*t));
    t->name = (struct nd_cat_span){(const char *)key + PREFIX_LEN, klen - PREFIX_LEN};
    if (!nd_cat_name_ok(t->name.p, t->name.len, false))
        return -1;
    semi = memchr(v, ';', vlen);
    hp = v;
    hl = (size_t)((semi ? semi : end) - v);
    /* [host:]port */
    if (hl && hp[0] == '[') {
        const char *rb = memchr(hp, ']', hl);

        if (!rb || rb + 1 >= hp + hl || rb[1] != ':')
            return -1;
        t->host = (struct nd_cat_span){hp + 1, (size_t)(rb - hp - 1)};
        if (!memchr(t->host.p, ':', t->host.len) ||
            parse_port(rb + 2, (size_t)(hp + hl - rb - 2), &t->port) < 0)
            return -1;
    } else {
        const char *colon = memchr(hp, ':', hl);

        if (colon) {
            t->host = (struct nd_cat_span){hp, (size_t)(colon - hp)};
            if (memchr(colon + 1, ':', (size_t)(hp + hl - colon - 1)))
                return -1; /* IPv6 needs brackets */
            if (parse_port(colon + 1, (size_t)(hp + hl - colon - 1), &t->port) < 0)
                return -1;
        } else if (parse_port(hp, hl, &t->port) < 0) {
            return -1;
        }
    }
    if (t->host.len && !ip_literal(t->host.p, t->host.len))
        return -1;
    /* ;key=val... */
    while (semi) {
        const char *s = semi + 1, *e, *eq;

        semi = memchr(s, ';', (size_t)(end - s));
        e = semi ? semi : end;
        eq = memchr(s, '=', (size_t)(e - s));
        if (!eq || t->nlabels == ND_CAT_LABELS_MAX)
            return -1;
        t->key[t->nlabels] = (struct nd_cat_span){s, (size_t)(eq - s)};
        t->val[t->nlabels] = (struct nd_cat_span){eq + 1, (size_t)(e - eq - 1)};
        if (!nd_cat_name_ok(t->key[t->nlabels].p, t->key[t->nlabels].len, true) ||
            !nd_cat_name_ok(t->val[t->nlabels].p, t->val[t->nlabels].len, true))
            return -1;
        t->nlabels++;
    }
    return 0;
}

/* ---- catalog ------------------------------------------------------------------------------- */

struct nd_catalog *nd_catalog_new(void)
{
    return calloc(1, sizeof(struct nd_catalog));
}

static void ep_clear(struct nd_cat_ep *e)
{
    unsigned i;

    for (i = 0; i < e->nlabels; i++) {
        free(e->keys[i]);
        free(e->vals[i]);
    }
    free(e->keys);
    free(e->vals);
    free(e->member);
    memset(e, 0, sizeof(*e));
}

void nd_catalog_free(struct nd_catalog *c)
{
    unsigned i, j;

    if (!c)
        return;
    for (i = 0; i < c->nsvcs; i++) {
        for (j = 0; j < c->svcs[i].neps; j++)
            ep_clear(&c->svcs[i].eps[j]);
        free(c->svcs[i].eps);
        free(c->svcs[i].name);
    }
    free(c->svcs);
    free(c);
}

static struct nd_cat_service *find(const struct nd_catalog *c, const char *name, size_t len)
{
    unsigned i;

    for (i = 0; i < c->nsvcs; i++)
        if (strlen(c->svcs[i].name) == len && !memcmp(c->svcs[i].name, name, len))
            return &c->svcs[i];
    return NULL;
}

const struct nd_cat_service *nd_catalog_find(const struct nd_catalog *c, const char *name)
{
    return find(c, name, strlen(name));
}

static struct nd_cat_service *get(struct nd_catalog *c, const char *name, size_t len)
{
    struct nd_cat_service *s = find(c, name, len);

    if (s)
        return s;
    if (c->nsvcs == c->cap) {
        unsigned cap = c->cap ? c->cap * 2 : 8;
        struct nd_cat_service *n = realloc(c->svcs, cap * sizeof(*n));

        if (!n)
            return NULL;
        c->svcs = n;
        c->cap = cap;
    }
    s = &c->svcs[c->nsvcs];
    memset(s, 0, sizeof(*s));
    if (!(s->name = strndup(name, len)))
        return NULL;
    c->nsvcs++;
    return s;
}

static int ep_cmp(const struct nd_cat_ep *a, const char *addr, const char *member)
{
    int r = strcmp(a->addr, addr);

    return r ? r : strcmp(a->member, member);
}

static bool ep_same_labels(const struct nd_cat_ep *e, const struct nd_cat_tag *t)
{
    unsigned i;

    if (e->nlabels != t->nlabels)
        return false;
    for (i = 0; i < t->nlabels; i++)
        if (strlen(e->keys[i]) != t->key[i].len || memcmp(e->keys[i], t->key[i].p, t->key[i].len) ||
            strlen(e->vals[i]) != t->val[i].len || memcmp(e->vals[i], t->val[i].p, t->val[i].len))
            return false;
    return true;
}

/* Adds or updates one endpoint of service s from tag t; 0 or -1 (out of memory). */
static int upsert(struct nd_cat_service *s, const char *member, const char *addr,
                  const struct nd_cat_tag *t, uint8_t state, uint8_t *keep)
{
    unsigned lo = 0, hi = s->neps, i;
    struct nd_cat_ep *x;

    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;

        if (ep_cmp(&s->eps[mid], addr, member) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->neps && !ep_cmp(&s->eps[lo], addr, member)) {
        x = &s->eps[lo];
        keep[lo] = 1;
        x->state = state;
        if (ep_same_labels(x, t))
            return 0;
        /* relabelled: new labels in place */
        for (i = 0; i < x->nlabels; i++) {
            free(x->keys[i]);
            free(x->vals[i]);
        }
        free(x->keys);
        free(x->vals);
        x->keys = x->vals = NULL;
        x->nlabels = 0;
    } else {
        if (s->neps == s->cap) {
            unsigned cap = s->cap ? s->cap * 2 : 4;
            struct nd_cat_ep *n = realloc(s->eps, cap * sizeof(*n));

            if (!n)
                return -1;
            s->eps = n;
            s->cap = cap;
        }
        memmove(&s->eps[lo + 1], &s->eps[lo], (s->neps - lo) * sizeof(*s->eps));
        memmove(&keep[lo + 1], &keep[lo], s->neps - lo);
        s->neps++;
        x = &s->eps[lo];
        memset(x, 0, sizeof(*x));
        keep[lo] = 1;
        x->state = state;
        snprintf(x->addr, sizeof(x->addr), "%s", addr);
        if (!(x->member = strdup(member)))
            goto oom;
    }
    s->changed = true;
    if (t->nlabels) {
        x->keys = calloc(t->nlabels, sizeof(char *));
        x->vals = calloc(t->nlabels, sizeof(char *));
        if (!x->keys || !x->vals)
            goto oom;
        for (i = 0; i < t->nlabels; i++) {
            x->keys[i] = strndup(t->key[i].p, t->key[i].len);
            x->vals[i] = strndup(t->val[i].p, t->val[i].len);
            x->nlabels++;
            if (!x->keys[i] || !x->vals[i])
                goto oom;
        }
    }
    return 0;
oom:
    keep[lo] = 0; /* removed by the sweep */
    return -1;
}

/* Removes the endpoints of s that belong to member, but those whose keep flag is set (keep NULL:
 * all of them). */
static void sweep(struct nd_cat_service *s, const char *member, const uint8_t *keep)
{
    unsigned i, o = 0;

    for (i = 0; i < s->neps; i++) {
        if ((!keep || !keep[i]) && !strcmp(s->eps[i].member, member)) {
            ep_clear(&s->eps[i]);
            s->changed = true;
            continue;
        }
        if (o != i)
            s->eps[o] = s->eps[i];
        o++;
    }
    s->neps = o;
}

static void host_of(const struct nd_swim_addr *a, char *buf, size_t cap)
{
    char tmp[ND_CAT_ADDR_MAX];
    char *colon;

    nd_swim_addr_str(a, tmp, sizeof(tmp));
    /* "1.2.3.4:7946" or "[::1]:7946": drop the port */
    colon = strrchr(tmp, ':');
    if (colon)
        *colon = '\0';
    snprintf(buf, cap, "%s", tmp);
}

int nd_catalog_member(struct nd_catalog *c, const struct nd_swim_member *m)
{
    struct nd_serf_tag tags[64];
    size_t ntags = 0, i;
    bool present = (m->state == ND_GOSSIP_STATE_ALIVE || m->state == ND_GOSSIP_STATE_SUSPECT) &&
                   (m->status == ND_SWIM_ALIVE || m->status == ND_SWIM_LEAVING);
    uint8_t *keep[64] = {0};
    struct nd_cat_service *svc[64];
    unsigned nsvc = 0, k;
    int rc = 0;

    if (present && m->meta_len &&
        nd_serf_tags_decode(m->meta, m->meta_len, tags, sizeof(tags) / sizeof(tags[0]), &ntags))
        ntags = 0;
    if (!present)
        ntags = 0;
    /* keep flags per service touched: the member's endpoints not re-advertised are swept */
    for (i = 0; i < ntags; i++) {
        struct nd_cat_tag t;
        struct nd_cat_service *s;
        char host[ND_CAT_ADDR_MAX], addr[ND_CAT_ADDR_MAX];
        int r = nd_cat_tag_decode(tags[i].key.p, tags[i].key.len, tags[i].value.p,
                                  tags[i].value.len, &t);

        if (r == 1)
            continue;
        if (r < 0) {
            c->bad_tags++;
            continue;
        }
        if (!(s = get(c, t.name.p, t.name.len))) {
            rc = -1;
            continue;
        }
        for (k = 0; k < nsvc && svc[k] != s; k++)
            ;
        if (k == nsvc) {
            svc[nsvc] = s;
            /* one more slot than the endpoints: upsert may insert one */
            keep[nsvc] = calloc(s->neps + ntags + 1, 1);
            if (!keep[nsvc]) {
                rc = -1;
                continue; /* the member's endpoints of s are swept below */
            }
            nsvc++;
        }
        if (t.host.len)
            snprintf(host, sizeof(host), "%.*s", (int)t.host.len, t.host.p);
        else
            host_of(&m->addr, host, sizeof(host));
        snprintf(addr, sizeof(addr), strchr(host, ':') && host[0] != '[' ? "[%s]:%u" : "%s:%u",
                 host, t.port);
        if (upsert(s, m->name, addr, &t, m->state, keep[k]) < 0)
            rc = -1;
    }
    /* services touched: sweep what was not re-advertised; the others: remove the member */
    for (k = 0; k < nsvc; k++) {
        sweep(svc[k], m->name, keep[k]);
        free(keep[k]);
    }
    for (i = 0; i < c->nsvcs; i++) {
        for (k = 0; k < nsvc && svc[k] != &c->svcs[i]; k++)
            ;
        if (k == nsvc)
            sweep(&c->svcs[i], m->name, NULL);
    }
    return rc;
}

void nd_catalog_remove(struct nd_catalog *c, const char *member)
{
    struct nd_swim_member m = {
        .name = member, .state = ND_GOSSIP_STATE_DEAD, .status = ND_SWIM_FAILED};

    nd_catalog_member(c, &m);
}

struct nd_cat_service *nd_catalog_take_changed(struct nd_catalog *c, unsigned *it)
{
    for (; *it < c->nsvcs; (*it)++)
        if (c->svcs[*it].changed) {
            c->svcs[*it].changed = false;
            c->changes++;
            return &c->svcs[(*it)++];
        }
    return NULL;
}

unsigned nd_cat_diff(const char *const *prev, unsigned nprev, const char *const *next,
                     unsigned nnext, int *map)
{
    unsigned i, j, kept = 0;

    for (i = 0; i < nprev; i++) {
        map[i] = -1;
        for (j = 0; j < nnext; j++)
            if (!strcmp(prev[i], next[j])) {
                map[i] = (int)j;
                kept++;
                break;
            }
    }
    return kept;
}
