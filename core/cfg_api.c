/*
 * The nodus_cfg_* accessors of the plugin ABI, and the wrappers behind them.
 *
 * A struct nodus_cfg wraps one Lua table of the configuration being loaded. Reads are raw (no
 * metamethod runs after the script ended). Each wrapper keeps a Lua table of the keys read; for
 * a key whose value was opened as a table, that entry holds the child wrapper (a light userdata),
 * so opening the same key twice gives the same wrapper. Integer keys of that table hold the
 * children opened with nodus_cfg_at().
 *
 * All of this runs inside the loader's protected call, with no memory budget: a Lua error here
 * can only be a real out-of-memory.
 */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cfg_internal.h"
#include "config.h"
#include "plugin_host.h"
#include "worker.h"

const char *nd_cfg_quote(char *buf, size_t size, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (o + 8 >= size) { /* room for an escape, "..." and the NUL */
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (ch == '\\' || ch == '\'' || ch == '"') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[ch >> 4];
            buf[o++] = hex[ch & 15];
        } else {
            buf[o++] = (char)ch;
        }
    }
    buf[o] = '\0';
    return buf;
}

/* "ctx: path: message" (no path: "ctx: message"), at the wrapper's line. */
static void cfg_verror(struct nodus_cfg *c, const char *sub, const char *fmt, va_list ap)
{
    struct nd_sbuf b = {0};

    nd_sbuf_vprintf(&b, fmt, ap);
    nd_loader_error(c->ld, c->line, "%s: %s%s%s%s", c->ctx, c->path, sub ? sub : "",
                    c->path[0] || sub ? ": " : "", b.p ? b.p : "(out of memory)");
    nd_sbuf_free(&b);
}

void nodus_cfg_error(struct nodus_cfg *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cfg_verror(c, NULL, fmt, ap);
    va_end(ap);
}

void nd_cfg_error_at(struct nodus_cfg *c, size_t i, const char *fmt, ...)
{
    char sub[32];
    va_list ap;

    snprintf(sub, sizeof(sub), "[%zu]", i + 1);
    va_start(ap, fmt);
    cfg_verror(c, sub, fmt, ap);
    va_end(ap);
}

static void __attribute__((format(printf, 3, 4)))
cfg_error_key(struct nodus_cfg *c, const char *key, const char *fmt, ...)
{
    char q[96];
    struct nd_sbuf b = {0};
    va_list ap;

    va_start(ap, fmt);
    nd_sbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    nodus_cfg_error(c, "'%s' %s", nd_cfg_quote(q, sizeof(q), key, strlen(key)),
                    b.p ? b.p : "(out of memory)");
    nd_sbuf_free(&b);
}

struct nodus_cfg *nd_cfg_new(struct nd_loader *ld, int idx, int line, const char *ctx)
{
    lua_State *L = ld->L;
    struct nodus_cfg *c = calloc(1, sizeof(*c));
    struct nodus_cfg **tail;

    if (!c)
        luaL_error(L, "out of memory");
    c->ld = ld;
    c->line = line;
    c->ctx = strdup(ctx);
    c->path = strdup("");
    c->tref = c->sref = LUA_NOREF;
    /* append, so that unknown keys are reported in declaration order */
    tail = ld->cfgs_tail ? ld->cfgs_tail : &ld->cfgs;
    *tail = c;
    ld->cfgs_tail = &c->next;
    if (!c->ctx || !c->path)
        luaL_error(L, "out of memory");
    lua_pushvalue(L, idx);
    c->tref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    c->sref = luaL_ref(L, LUA_REGISTRYINDEX);
    return c;
}

void nd_cfg_free_all(struct nd_loader *ld)
{
    struct nodus_cfg *c, *next;

    for (c = ld->cfgs; c; c = next) {
        next = c->next;
        free(c->ctx);
        free(c->path);
        free(c->iter_keys);
        free(c);
    }
    ld->cfgs = NULL;
    ld->cfgs_tail = NULL;
}

/* Marks key (the string at the top of the stack) as read unless it already is. Pops it. */
static void mark_read(struct nodus_cfg *c)
{
    lua_State *L = c->ld->L;

    lua_rawgeti(L, LUA_REGISTRYINDEX, c->sref); /* key seen */
    lua_pushvalue(L, -2);                       /* key seen key */
    if (lua_rawget(L, -2) == LUA_TNIL) {        /* key seen v */
        lua_pop(L, 1);
        lua_pushvalue(L, -2);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
}

int nd_cfg_push(struct nodus_cfg *c, const char *key)
{
    lua_State *L = c->ld->L;
    int t;

    lua_pushstring(L, key);
    mark_read(c);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->tref);
    lua_pushstring(L, key);
    t = lua_rawget(L, -2);
    lua_remove(L, -2);
    return t;
}

int nd_cfg_push_at(struct nodus_cfg *c, size_t i)
{
    lua_State *L = c->ld->L;
    int t;

    c->array_read = true;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->tref);
    t = lua_rawgeti(L, -1, (lua_Integer)i + 1);
    lua_remove(L, -2);
    return t;
}

/* The wrapper of the table at the top of the stack, a value of c under the key at stack index
 * slot (absolute): the one made before for that key, or a new one with that path. Pops the
 * table. */
static struct nodus_cfg *child(struct nodus_cfg *c, int slot, const char *path)
{
    lua_State *L = c->ld->L;
    struct nodus_cfg *k;

    lua_rawgeti(L, LUA_REGISTRYINDEX, c->sref); /* tbl seen */
    lua_pushvalue(L, slot);
    if (lua_rawget(L, -2) == LUA_TLIGHTUSERDATA) { /* tbl seen kid */
        k = lua_touserdata(L, -1);
        lua_pop(L, 3);
        return k;
    }
    lua_pop(L, 1);
    k = nd_cfg_new(c->ld, -2, c->line, c->ctx);
    k->parent = c;
    k->listener = c->listener;
    free(k->path);
    k->path = strdup(path);
    if (!k->path)
        luaL_error(L, "out of memory");
    lua_pushvalue(L, slot);
    lua_pushlightuserdata(L, k);
    lua_rawset(L, -3);
    lua_pop(L, 2);
    return k;
}

static const char *type_article(lua_State *L, int t)
{
    switch (t) {
    case LUA_TNUMBER:
        return "a number";
    case LUA_TSTRING:
        return "a string";
    case LUA_TBOOLEAN:
        return "a boolean";
    case LUA_TTABLE:
        return "a table";
    case LUA_TFUNCTION:
        return "a function";
    case LUA_TNIL:
        return "nil";
    default:
        return lua_typename(L, t);
    }
}

/* Whether the string at the top of the stack holds no NUL byte. */
static bool clean_string(lua_State *L, const char **s)
{
    size_t len;

    *s = lua_tolstring(L, -1, &len);
    return strlen(*s) == len;
}

int nodus_cfg_str(struct nodus_cfg *c, const char *key, const char **out)
{
    lua_State *L = c->ld->L;
    const char *s;
    int t = nd_cfg_push(c, key);

    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t != LUA_TSTRING) {
        lua_pop(L, 1);
        cfg_error_key(c, key, "must be a string, not %s", type_article(L, t));
        return -1;
    }
    if (!clean_string(L, &s)) {
        lua_pop(L, 1);
        cfg_error_key(c, key, "must not contain NUL bytes");
        return -1;
    }
    lua_pop(L, 1); /* the table keeps the string alive */
    *out = s;
    return 1;
}

int nodus_cfg_int(struct nodus_cfg *c, const char *key, long long min, long long max,
                  long long *out)
{
    lua_State *L = c->ld->L;
    int t = nd_cfg_push(c, key), isint = 0;
    lua_Integer v = 0;

    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t == LUA_TNUMBER)
        v = lua_tointegerx(L, -1, &isint);
    lua_pop(L, 1);
    if (!isint || v < min || v > max) {
        cfg_error_key(c, key, "must be an integer between %lld and %lld", min, max);
        return -1;
    }
    *out = v;
    return 1;
}

int nodus_cfg_bool(struct nodus_cfg *c, const char *key, bool *out)
{
    lua_State *L = c->ld->L;
    int t = nd_cfg_push(c, key);
    bool v = lua_toboolean(L, -1);

    lua_pop(L, 1);
    if (t == LUA_TNIL)
        return 0;
    if (t != LUA_TBOOLEAN) {
        cfg_error_key(c, key, "must be true or false");
        return -1;
    }
    *out = v;
    return 1;
}

int nodus_cfg_duration(struct nodus_cfg *c, const char *key, uint64_t *ms)
{
    lua_State *L = c->ld->L;
    int t = nd_cfg_push(c, key), ok = 0;
    uint64_t v = 0;

    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t == LUA_TSTRING) {
        const char *s;

        ok = clean_string(L, &s) && nd_parse_duration(s, &v) == 0;
    } else if (t == LUA_TNUMBER) {
        int isint;
        lua_Integer i = lua_tointegerx(L, -1, &isint);
        lua_Number n = lua_tonumber(L, -1);

        if (isint && i >= 0 && (uint64_t)i <= UINT64_MAX / 1000) {
            v = (uint64_t)i * 1000;
            ok = 1;
        } else if (!isint && isfinite(n) && n >= 0 && n < 9.0e15) {
            double x = n * 1000.0;

            v = (uint64_t)x;
            v += (double)v < x; /* round up */
            ok = 1;
        }
    }
    lua_pop(L, 1);
    if (!ok) {
        cfg_error_key(c, key,
                      "must be a duration such as \"250ms\", \"10s\", \"1m\" or a "
                      "number of seconds");
        return -1;
    }
    *ms = v;
    return 1;
}

int nodus_cfg_table(struct nodus_cfg *c, const char *key, struct nodus_cfg **out)
{
    lua_State *L = c->ld->L;
    struct nd_sbuf path = {0};
    int t, top = lua_gettop(L);

    lua_pushstring(L, key); /* the slot */
    t = nd_cfg_push(c, key);
    if (t == LUA_TNIL) {
        lua_settop(L, top);
        return 0;
    }
    if (t != LUA_TTABLE) {
        lua_settop(L, top);
        cfg_error_key(c, key, "must be a table, not %s", type_article(L, t));
        return -1;
    }
    nd_sbuf_printf(&path, "%s%s%s", c->path, c->path[0] ? "." : "", key);
    if (path.oom) {
        nd_sbuf_free(&path);
        luaL_error(L, "out of memory");
    }
    *out = child(c, top + 1, path.p);
    nd_sbuf_free(&path);
    lua_settop(L, top);
    return 1;
}

size_t nodus_cfg_len(struct nodus_cfg *c)
{
    lua_State *L = c->ld->L;
    size_t n;

    c->array_read = true;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->tref);
    n = lua_rawlen(L, -1);
    lua_pop(L, 1);
    return n;
}

int nodus_cfg_at(struct nodus_cfg *c, size_t i, struct nodus_cfg **out)
{
    lua_State *L = c->ld->L;
    char path[512];
    int t, top = lua_gettop(L);

    if (i >= (size_t)LUA_MAXINTEGER)
        return 0;
    lua_pushinteger(L, (lua_Integer)i + 1); /* the slot */
    t = nd_cfg_push_at(c, i);
    if (t == LUA_TNIL) {
        lua_settop(L, top);
        return 0;
    }
    if (t != LUA_TTABLE) {
        lua_settop(L, top);
        nd_cfg_error_at(c, i, "must be a table, not %s", type_article(L, t));
        return -1;
    }
    snprintf(path, sizeof(path), "%s[%zu]", c->path, i + 1);
    *out = child(c, top + 1, path);
    lua_settop(L, top);
    return 1;
}

int nodus_cfg_str_at(struct nodus_cfg *c, size_t i, const char **out)
{
    lua_State *L = c->ld->L;
    const char *s;
    int t;

    if (i >= (size_t)LUA_MAXINTEGER)
        return 0;
    t = nd_cfg_push_at(c, i);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t != LUA_TSTRING) {
        lua_pop(L, 1);
        nd_cfg_error_at(c, i, "must be a string, not %s", type_article(L, t));
        return -1;
    }
    if (!clean_string(L, &s)) {
        lua_pop(L, 1);
        nd_cfg_error_at(c, i, "must not contain NUL bytes");
        return -1;
    }
    lua_pop(L, 1);
    *out = s;
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Snapshot of the string keys not read yet, sorted (so that iteration order is stable). */
static void snapshot_keys(struct nodus_cfg *c)
{
    lua_State *L = c->ld->L;
    size_t n = 0, cap = 0;
    const char **keys = NULL;

    free(c->iter_keys);
    c->iter_keys = NULL;
    c->niter_keys = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->tref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->sref); /* t seen */
    lua_pushnil(L);
    while (lua_next(L, -3)) { /* t seen k v */
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            continue;
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TNIL) {
            if (n == cap) {
                const char **nk = realloc(keys, (cap = cap ? cap * 2 : 16) * sizeof(*keys));

                if (!nk) {
                    free(keys);
                    luaL_error(L, "out of memory");
                }
                keys = nk;
            }
            keys[n++] = lua_tostring(L, -2); /* the key lives in the table */
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    if (n)
        qsort(keys, n, sizeof(*keys), cmp_str);
    c->iter_keys = keys;
    c->niter_keys = n;
}

int nodus_cfg_next_str(struct nodus_cfg *c, size_t *iter, const char **key, const char **val)
{
    lua_State *L = c->ld->L;
    const char *k, *s;
    int t;

    if (*iter == 0)
        snapshot_keys(c);
    if (*iter >= c->niter_keys)
        return 0;
    k = c->iter_keys[(*iter)++];
    t = nd_cfg_push(c, k);
    if (t != LUA_TSTRING) {
        lua_pop(L, 1);
        cfg_error_key(c, k, "must be a string, not %s", type_article(L, t));
        return -1;
    }
    if (!clean_string(L, &s)) {
        lua_pop(L, 1);
        cfg_error_key(c, k, "must not contain NUL bytes");
        return -1;
    }
    lua_pop(L, 1);
    *key = k;
    *val = s;
    return 1;
}

struct unknown {
    int kind; /* 0 string key, 1 number key, 2 other */
    char text[96];
};

static int cmp_unknown(const void *a, const void *b)
{
    const struct unknown *x = a, *y = b;

    if (x->kind != y->kind)
        return x->kind - y->kind;
    return strcmp(x->text, y->text);
}

void nd_cfg_check_unknown(struct nodus_cfg *c)
{
    lua_State *L = c->ld->L;
    struct unknown *u = NULL;
    size_t n = 0, cap = 0, len;

    if (c->checked)
        return;
    c->checked = true;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->tref);
    len = lua_rawlen(L, -1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->sref); /* t seen */
    lua_pushnil(L);
    while (lua_next(L, -3)) { /* t seen k v */
        struct unknown x = {0};
        int kt = lua_type(L, -2);

        lua_pop(L, 1);
        if (kt == LUA_TSTRING) {
            size_t kl;
            const char *ks = lua_tolstring(L, -1, &kl);

            lua_pushvalue(L, -1);
            if (lua_rawget(L, -3) != LUA_TNIL) {
                lua_pop(L, 1);
                continue;
            }
            lua_pop(L, 1);
            nd_cfg_quote(x.text, sizeof(x.text), ks, kl);
        } else if (kt == LUA_TNUMBER) {
            if (lua_isinteger(L, -1)) {
                lua_Integer i = lua_tointeger(L, -1);

                if (c->array_read && i >= 1 && (lua_Unsigned)i <= len)
                    continue;
                snprintf(x.text, sizeof(x.text), "%lld", (long long)i);
            } else {
                snprintf(x.text, sizeof(x.text), "%.14g", (double)lua_tonumber(L, -1));
            }
            x.kind = 1;
        } else {
            x.kind = 2;
            snprintf(x.text, sizeof(x.text), "%s", type_article(L, kt));
        }
        if (n == cap) {
            struct unknown *nu = realloc(u, (cap = cap ? cap * 2 : 8) * sizeof(*u));

            if (!nu) {
                free(u);
                luaL_error(L, "out of memory");
            }
            u = nu;
        }
        u[n++] = x;
    }
    lua_pop(L, 2);
    if (n)
        qsort(u, n, sizeof(*u), cmp_unknown);
    for (size_t i = 0; i < n; i++) {
        if (u[i].kind == 0)
            nodus_cfg_error(c, "unknown key '%s'", u[i].text);
        else if (u[i].kind == 1)
            nodus_cfg_error(c, "unexpected element [%s] (this table takes no list)", u[i].text);
        else
            nodus_cfg_error(c, "unexpected key of type %s", u[i].text);
    }
    free(u);
}

struct nodus_cluster *nodus_cluster_find(struct nodus_cfg *c, const char *name)
{
    if (!c || !name)
        return NULL;
    return (struct nodus_cluster *)nd_loader_cluster(c->ld, name);
}

const char *nodus_cluster_name(const struct nodus_cluster *cl)
{
    return cl ? ((const struct nd_cluster_conf *)cl)->name : NULL;
}

const char *nodus_cfg_listener_name(struct nodus_cfg *c)
{
    return c->listener;
}

/* ---- per-route configuration ---- */

void nodus_cfg_require_route_config(struct nodus_cfg *c, const char *why)
{
    struct nd_listener_conf *lc = c->ld->chain;
    struct nd_plugin_inst *pi;

    if (!lc || !lc->nplugins || c != c->ld->configuring) {
        nodus_cfg_error(c, "nodus_cfg_require_route_config() is for a plugin's own table, from "
                           "its configure()");
        return;
    }
    pi = &lc->plugins[lc->nplugins - 1];
    free(pi->require_routes);
    pi->require_routes = strdup(why ? why : "no route configures it");
    if (!pi->require_routes)
        luaL_error(c->ld->L, "out of memory");
}

int nodus_cfg_route_config(struct nodus_cfg *c, const struct nodus_route_config *parent,
                           const struct nodus_route_config **out)
{
    struct nd_listener_conf *lc = c->ld->chain;
    struct nodus_route_config *rc;
    unsigned nmade = 0;
    const char **keys;
    size_t nkeys;
    bool ok = true;

    *out = parent;
    if (!lc || !lc->nplugins) {
        nodus_cfg_error(c, "per-route configuration is read by the terminal plugin of a chain");
        return -1;
    }
    /* room for one configuration per instance, and the parent's */
    rc = malloc(sizeof(*rc) + (lc->nplugins + (parent ? parent->n : 0)) * sizeof(rc->e[0]));
    if (!rc)
        luaL_error(c->ld->L, "out of memory");
    /* the keys not read yet (they live in c's table), taken from the iteration snapshot */
    snapshot_keys(c);
    keys = c->iter_keys;
    nkeys = c->niter_keys;
    c->iter_keys = NULL;
    c->niter_keys = 0;
    for (size_t k = 0; k < nkeys; k++) {
        const char *key = keys[k];
        const struct nodus_plugin *p = nd_plugin_find(key);
        struct nodus_cfg *t;
        unsigned inst = 0, found = 0, before;
        void *conf;

        if (!p)
            continue; /* not a plugin: an unknown key, reported as such */
        /* the instances before the terminal (the one being configured, last) */
        for (unsigned i = 0; i + 1 < lc->nplugins; i++)
            if (lc->plugins[i].p == p && found++ == 0)
                inst = i;
        if (!found || found > 1 || !p->configure_route) {
            if (!found)
                nodus_cfg_error(c, "'%s': this listener has no %s plugin before %s", key, key,
                                lc->plugins[lc->nplugins - 1].p->name);
            else if (found > 1)
                nodus_cfg_error(c, "'%s': this listener has %u %s plugins: which one is meant?",
                                key, found, key);
            else
                nodus_cfg_error(c, "'%s': the %s plugin takes no per-route configuration", key,
                                key);
            nd_cfg_push(c, key); /* marked read: its keys are not reported as unknown */
            lua_pop(c->ld->L, 1);
            ok = false;
        } else if (nodus_cfg_table(c, key, &t) < 0) {
            ok = false;
        } else if (lc->plugins[inst].conf) { /* (a failed instance reported its errors) */
            before = c->ld->nerrs_total;
            conf = p->configure_route(lc->plugins[inst].conf, t);
            if (conf) {
                rc->e[nmade++] = (struct nd_route_conf){
                    .owner = lc->plugins[inst].conf, .inst = inst, .conf = conf, .own = true};
                lc->plugins[inst].route_confs++;
            } else {
                if (c->ld->nerrs_total == before)
                    nodus_cfg_error(t, "the plugin refused its configuration");
                ok = false;
            }
        }
    }
    free(keys);
    if (nmade == 0) {
        free(rc);
        return ok ? 0 : -1;
    }
    /* the parent's configurations that c does not override */
    rc->n = nmade;
    for (unsigned i = 0; parent && i < parent->n; i++) {
        bool mine = false;

        for (unsigned j = 0; j < nmade; j++)
            mine |= rc->e[j].inst == parent->e[i].inst;
        if (!mine) {
            rc->e[rc->n] = parent->e[i];
            rc->e[rc->n++].own = false;
        }
    }
    rc->next = lc->route_confs;
    lc->route_confs = rc;
    *out = rc;
    return ok ? 1 : -1;
}
