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

static void list_free(struct nd_cat_list *l)
{
    for (unsigned i = 0; i < ND_CAT_PARTS_MAX; i++)
        free(l->part[i]);
    free(l->member);
    memset(l, 0, sizeof(*l));
}

void nd_catalog_free(struct nd_catalog *c)
{
    unsigned i, j;

    if (!c)
        return;
    for (i = 0; i < c->nlists; i++)
        list_free(&c->lists[i]);
    free(c->lists);
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

static struct nd_cat_list *list_of(struct nd_catalog *c, const char *member, size_t len)
{
    for (unsigned i = 0; i < c->nlists; i++)
        if (strlen(c->lists[i].member) == len && !memcmp(c->lists[i].member, member, len))
            return &c->lists[i];
    return NULL;
}

static void list_drop(struct nd_catalog *c, struct nd_cat_list *l)
{
    list_free(l);
    *l = c->lists[--c->nlists];
}

/* The "svc+" tag's hash, if the member has the tag. */
static bool more_tag(const struct nd_serf_tag *tags, size_t n, uint32_t *hash)
{
    for (size_t i = 0; i < n; i++) {
        const char *colon;
        char v[32];

        if (tags[i].key.len != sizeof(ND_CAT_MORE_TAG) - 1 ||
            memcmp(tags[i].key.p, ND_CAT_MORE_TAG, tags[i].key.len) || tags[i].value.len >= 32)
            continue;
        memcpy(v, tags[i].value.p, tags[i].value.len);
        v[tags[i].value.len] = 0;
        colon = strchr(v, ':');
        return colon && sscanf(colon + 1, "%8x", hash) == 1;
    }
    return false;
}

/* A complete list's entries as tags ("svc:NAME" = VALUE); keys are built in keybuf. */
static size_t list_entries(const struct nd_cat_list *l, struct nd_serf_tag *tags, size_t cap,
                           char (*keybuf)[ND_CAT_NAME_MAX + PREFIX_LEN + 1])
{
    size_t n = 0;

    for (unsigned k = 0; k < l->nparts; k++) {
        const char *p = memchr(l->part[k], '\n', l->len[k]), *end = l->part[k] + l->len[k];

        while (p && p < end && n < cap) {
            const char *line = p + 1, *eol = memchr(line, '\n', (size_t)(end - line)), *sp;

            if (!eol)
                eol = end;
            sp = memchr(line, ' ', (size_t)(eol - line));
            if (sp && sp - line <= ND_CAT_NAME_MAX) {
                size_t d = 0;

                snprintf(keybuf[n], sizeof(keybuf[n]), ND_CAT_TAG_PREFIX "%.*s", (int)(sp - line),
                         line);
                while (d < n && strcmp(keybuf[d], keybuf[n]))
                    d++;
                if (d < n) { /* a name twice: the first one holds */
                    p = eol;
                    continue;
                }
                tags[n].key =
                    (struct nd_gbytes){(const uint8_t *)keybuf[n], (uint32_t)strlen(keybuf[n])};
                tags[n].value =
                    (struct nd_gbytes){(const uint8_t *)sp + 1, (uint32_t)(eol - sp - 1)};
                n++;
            }
            p = eol;
        }
    }
    return n;
}

int nd_catalog_member(struct nd_catalog *c, const struct nd_swim_member *m)
{
    static char keybuf[ND_CAT_SERVICES_MAX][ND_CAT_NAME_MAX + PREFIX_LEN + 1];
    struct nd_serf_tag tags[64];
    size_t ntags = 0, i;
    bool present = (m->state == ND_GOSSIP_STATE_ALIVE || m->state == ND_GOSSIP_STATE_SUSPECT) &&
                   (m->status == ND_SWIM_ALIVE || m->status == ND_SWIM_LEAVING);
    uint8_t *keep[64] = {0};
    unsigned svc[64]; /* indices in c->svcs, which get() may move */
    struct nd_cat_list *l = list_of(c, m->name, strlen(m->name));
    unsigned nsvc = 0, k;
    uint32_t hash;
    int rc = 0;

    if (present && m->meta_len &&
        nd_serf_tags_decode(m->meta, m->meta_len, tags, sizeof(tags) / sizeof(tags[0]), &ntags))
        ntags = 0;
    if (!present)
        ntags = 0;
    if (l && (!present || !more_tag(tags, ntags, &hash))) {
        list_drop(c, l); /* gone, or no longer advertising more than its tags */
        l = NULL;
    } else if (l && l->hash == hash && l->have == (1u << l->nparts) - 1) {
        /* the full list, in place of the tags (which hold a part of it) */
        ntags = list_entries(l, tags, sizeof(tags) / sizeof(tags[0]), keybuf);
    }
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
        for (k = 0; k < nsvc && svc[k] != (unsigned)(s - c->svcs); k++)
            ;
        if (k == nsvc) {
            svc[nsvc] = (unsigned)(s - c->svcs);
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
        sweep(&c->svcs[svc[k]], m->name, keep[k]);
        free(keep[k]);
    }
    for (i = 0; i < c->nsvcs; i++) {
        for (k = 0; k < nsvc && svc[k] != i; k++)
            ;
        if (k == nsvc)
            sweep(&c->svcs[i], m->name, NULL);
    }
    return rc;
}

uint32_t nd_cat_list_hash(const char *const *names, const char *const *values, unsigned n)
{
    uint32_t h = 2166136261u;

    for (unsigned i = 0; i < n; i++) {
        const char *parts[2] = {names[i], values[i]};

        for (int k = 0; k < 2; k++) {
            for (const char *p = parts[k]; *p; p++)
                h = (h ^ (uint8_t)*p) * 16777619u;
            h = (h ^ (uint8_t)(k ? '\n' : ' ')) * 16777619u;
        }
    }
    return h;
}

/* "1 HASH PART NPARTS NODE\n": fixed widths, so that the room left for entries is known. */
#define LIST_HDR_FIXED (sizeof("1 01234567 00 00 \n") - 1)

int nd_cat_list_encode(const char *node, const char *const *names, const char *const *values,
                       unsigned n, char (*parts)[ND_CAT_PART_MAX + 1], unsigned *nparts,
                       uint32_t *hash)
{
    size_t base = LIST_HDR_FIXED - 1 + strlen(node), used[ND_CAT_PARTS_MAX];
    unsigned np = 0;

    *hash = nd_cat_list_hash(names, values, n);
    if (!node[0] || strchr(node, '\n') || base >= ND_CAT_PART_MAX)
        return -1;
    /* each part: the header, then "\nNAME VALUE" per entry */
    for (unsigned i = 0; i <= n; i++) {
        size_t e = i < n ? 1 + strlen(names[i]) + 1 + strlen(values[i]) : 0;

        if (base + e > ND_CAT_PART_MAX)
            return -1;
        if (!np || (i < n && used[np - 1] + e > ND_CAT_PART_MAX)) {
            if (np == ND_CAT_PARTS_MAX)
                return -1;
            used[np++] = base;
        }
        if (i == n)
            break;
        snprintf(parts[np - 1] + used[np - 1], ND_CAT_PART_MAX + 1 - used[np - 1], "\n%s %s",
                 names[i], values[i]);
        used[np - 1] += e;
    }
    for (unsigned k = 0; k < np; k++) {
        char h[ND_CAT_PART_MAX + 1];

        snprintf(h, sizeof(h), "1 %08x %02u %02u %s", *hash, k, np, node);
        memcpy(parts[k], h, base);
        parts[k][used[k]] = 0;
    }
    *nparts = np;
    return 0;
}

int nd_catalog_list_part(struct nd_catalog *c, const uint8_t *payload, size_t len, char *member,
                         size_t cap)
{
    const char *p = (const char *)payload, *nl = memchr(p, '\n', len), *node;
    unsigned part, nparts, i;
    uint32_t hash;
    char hdr[40];
    struct nd_cat_list *l;
    size_t nlen;
    int off = 0;

    if (len > ND_CAT_PART_MAX || len < LIST_HDR_FIXED)
        goto bad;
    memcpy(hdr, p, LIST_HDR_FIXED - 1);
    hdr[LIST_HDR_FIXED - 1] = 0;
    if (sscanf(hdr, "1 %8x %2u %2u %n", &hash, &part, &nparts, &off) != 3 ||
        off != (int)LIST_HDR_FIXED - 1 || nparts == 0 || nparts > ND_CAT_PARTS_MAX ||
        part >= nparts)
        goto bad;
    node = p + LIST_HDR_FIXED - 1;
    nlen = (size_t)((nl ? nl : p + len) - node);
    if (!nlen || nlen >= cap || memchr(node, 0, nlen))
        goto bad;
    for (const char *q = nl; q && q < p + len;) { /* entries: "NAME VALUE", a valid name */
        const char *line = q + 1, *eol = memchr(line, '\n', (size_t)(p + len - line)), *sp;

        if (!eol)
            eol = p + len;
        sp = memchr(line, ' ', (size_t)(eol - line));
        if (!sp || !nd_cat_name_ok(line, (size_t)(sp - line), false) ||
            memchr(sp + 1, 0, (size_t)(eol - sp - 1)))
            goto bad;
        q = eol < p + len ? eol : NULL;
    }
    if (!(l = list_of(c, node, nlen))) {
        if (c->nlists == ND_CAT_LISTS_MAX)
            goto bad;
        if (!(l = realloc(c->lists, (c->nlists + 1) * sizeof(*l))))
            return -1;
        c->lists = l;
        l = &c->lists[c->nlists];
        memset(l, 0, sizeof(*l));
        if (!(l->member = strndup(node, nlen)))
            return -1;
        c->nlists++;
    }
    if (l->hash != hash || l->nparts != nparts) { /* another version of the list */
        for (i = 0; i < ND_CAT_PARTS_MAX; i++) {
            free(l->part[i]);
            l->part[i] = NULL;
        }
        l->hash = hash;
        l->nparts = nparts;
        l->have = 0;
    }
    if (l->have & (1u << part))
        return 0; /* the same part again (the list is sent again now and then) */
    if (!(l->part[part] = malloc(len)))
        return -1;
    memcpy(l->part[part], p, len);
    l->len[part] = len;
    l->have |= 1u << part;
    if (l->have != (1u << nparts) - 1)
        return 0;
    memcpy(member, node, nlen);
    member[nlen] = 0;
    return 1;
bad:
    c->bad_lists++;
    return -1;
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
