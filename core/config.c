/*
 * The configuration loader: runs a Lua script in a sandbox, then builds struct nd_config.
 *
 * 1. The script runs once in a fresh Lua state whose allocator enforces a memory budget and
 *    whose count hook enforces an instruction budget (plus a wall-clock backstop). Library
 *    functions that can loop inside C (pattern matching, table shifts) charge their work to the
 *    instruction budget before they run. The directives (node, admin, identity, cluster,
 *    listener) only record what they are given, with the line of the call; plugin constructors
 *    (one global per registered plugin, resolved lazily) return an opaque marker.
 * 2. The builder walks the declarations: node, admin, identity, then every cluster, then every
 *    listener, calling each plugin's configure() over a struct nodus_cfg (so plugins can look
 *    clusters up). Keys nobody read are reported. Errors are collected, not fatal, up to 50.
 * 3. The Lua state is closed: the result owns only malloc'd memory.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../gossip/keyring.h"
#include "../gossip/catalog.h"
#include "../gossip/serf.h"
#include "../dpdk/net/conf.h"
#include "buf.h"
#include "cfg_internal.h"
#include "log.h"
#include "lua_embed.h"
#include "metrics.h"
#include "plugin_host.h"

#define DEFAULT_INSTRUCTIONS 10000000ull
#define DEFAULT_MEMORY ((size_t)64 << 20)
#define DEFAULT_TIME_MS 10000u
#define HOOK_COUNT 100 /* instructions between two budget checks */
#define MAX_FILE_SIZE ((size_t)16 << 20)

/* Limits of what a configuration may declare (they also bound what the builder allocates). */
#define MAX_CLUSTERS 10000
#define MAX_LISTENERS 1024
#define MAX_ENDPOINTS 100000 /* in all clusters */
#define MAX_LABELS 64        /* per endpoint */
#define MAX_CHAIN 64         /* plugins per listener */
#define MAX_SO 64            /* node { plugins } */
#define MAX_NAME 128

#define MARKER_MT "nodus.plugin"

enum decl_kind {
    DECL_NODE = 1,
    DECL_ADMIN,
    DECL_IDENTITY,
    DECL_GOSSIP,
    DECL_CLUSTER,
    DECL_LISTENER,
    DECL_DPDK,
    DECL_SERVICE,
    DECL_METRICS
};

/* What a plugin constructor returns (a full userdata; its user value 1 is the argument table). */
struct marker {
    const struct nodus_plugin *p;
    int line;
    bool bad; /* the constructor was misused (already reported) */
};

static struct nd_config_limits cur_limits;

void nd_config_set_limits(const struct nd_config_limits *lim)
{
    if (lim)
        cur_limits = *lim;
    else
        memset(&cur_limits, 0, sizeof(cur_limits));
}

/* The sandbox's globals, from the base library. print and setmetatable are replaced. */
static const char *const safe_base[] = {
    "assert", "error",    "ipairs",   "next",         "pairs",  "pcall",
    "select", "tonumber", "tostring", "type",         "xpcall", "rawequal",
    "rawget", "rawlen",   "rawset",   "getmetatable", NULL,
};

/* Lua keywords; directives, present and planned; the sandbox's globals. */
static const char reserved_names[] =
    " and break do else elseif end false for function goto if in local nil not or repeat return"
    " then true until while"
    " node admin cluster listener dpdk identity gossip service"
    " assert error ipairs next pairs pcall select tonumber tostring type xpcall rawequal rawget"
    " rawlen rawset setmetatable getmetatable print string table math utf8 ";

bool nd_config_reserved_name(const char *name)
{
    size_t n = strlen(name);

    for (const char *p = strstr(reserved_names, name); n && p; p = strstr(p + 1, name))
        if (p > reserved_names && p[-1] == ' ' && p[n] == ' ')
            return true;
    return false;
}

/* ---- errors ------------------------------------------------------------------------------- */

void nd_loader_verror(struct nd_loader *ld, int line, const char *fmt, va_list ap)
{
    struct nd_sbuf b = {0};

    ld->nerrs_total++;
    if (ld->nerrs >= ND_CFG_MAX_ERRORS)
        return;
    if (line > 0)
        nd_sbuf_printf(&b, "%s:%d: ", ld->file, line);
    else
        nd_sbuf_printf(&b, "%s: ", ld->file);
    nd_sbuf_vprintf(&b, fmt, ap);
    if (b.oom || !b.p) {
        nd_sbuf_free(&b);
        b.p = strdup("out of memory");
        if (!b.p)
            return;
    }
    ld->errs[ld->nerrs].line = line;
    ld->errs[ld->nerrs].msg = b.p;
    ld->nerrs++;
}

void nd_loader_error(struct nd_loader *ld, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    nd_loader_verror(ld, line, fmt, ap);
    va_end(ap);
}

static void errs_push(struct nd_errors *errs, char *msg)
{
    char **m;

    if (!errs || !msg) {
        free(msg);
        return;
    }
    m = realloc(errs->msg, (errs->n + 1) * sizeof(*m));
    if (!m) {
        free(msg);
        return;
    }
    errs->msg = m;
    errs->msg[errs->n++] = msg;
}

void nd_errors_clear(struct nd_errors *errs)
{
    if (!errs)
        return;
    for (unsigned i = 0; i < errs->n; i++)
        free(errs->msg[i]);
    free(errs->msg);
    errs->msg = NULL;
    errs->n = 0;
}

/* Hands the loader's errors to errs, sorted by line, in the order found within a line. */
static void export_errors(struct nd_loader *ld, struct nd_errors *errs)
{
    struct nd_cfg_error *e = ld->errs;

    for (unsigned i = 1; i < ld->nerrs; i++) { /* insertion sort: stable, at most 50 */
        struct nd_cfg_error x = e[i];
        unsigned j = i;

        for (; j > 0 && e[j - 1].line > x.line; j--)
            e[j] = e[j - 1];
        e[j] = x;
    }
    for (unsigned i = 0; i < ld->nerrs; i++)
        errs_push(errs, e[i].msg);
    ld->nerrs = 0;
}

/* ---- values --------------------------------------------------------------------------------- */

int nd_parse_duration(const char *s, uint64_t *ms)
{
    unsigned __int128 ip = 0, frac = 0, fscale = 1, unit, ns, q;
    bool sticky = false;
    const char *p = s;

    if (!s || !isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        ip = ip * 10 + (unsigned)(*p - '0');
        if (ip > UINT64_MAX)
            return -1;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        for (; isdigit((unsigned char)*p); p++) {
            if (fscale < (unsigned __int128)1000000000000000000ull) {
                frac = frac * 10 + (unsigned)(*p - '0');
                fscale *= 10;
            } else if (*p != '0') {
                sticky = true;
            }
        }
    }
    if (!*p || strcmp(p, "s") == 0)
        unit = 1000000000ull;
    else if (strcmp(p, "ms") == 0)
        unit = 1000000ull;
    else if (strcmp(p, "us") == 0)
        unit = 1000ull;
    else if (strcmp(p, "m") == 0)
        unit = 60000000000ull;
    else if (strcmp(p, "h") == 0)
        unit = 3600000000000ull;
    else
        return -1;
    q = frac * unit;
    ns = ip * unit + q / fscale + (q % fscale != 0 || sticky);
    ns = ns / 1000000 + (ns % 1000000 != 0); /* to ms, rounding up */
    if (ns > UINT64_MAX)
        return -1;
    *ms = (uint64_t)ns;
    return 0;
}

int nd_parse_addr(const char *s, struct nd_addr *out)
{
    char host[INET6_ADDRSTRLEN], txt[INET6_ADDRSTRLEN];
    const char *port, *end;
    size_t hlen, len;
    unsigned long pv = 0;
    bool v6 = false;

    if (!s)
        return -1;
    len = strlen(s);
    if (len == 0 || len >= sizeof(out->text))
        return -1;
    if (s[0] == '[') {
        end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -1;
        hlen = (size_t)(end - s - 1);
        if (hlen == 0 || hlen >= sizeof(host))
            return -1;
        memcpy(host, s + 1, hlen);
        port = end + 2;
        v6 = true;
    } else {
        end = strrchr(s, ':');
        if (!end || memchr(s, ':', (size_t)(end - s)))
            return -1;
        hlen = (size_t)(end - s);
        if (hlen >= sizeof(host))
            return -1;
        memcpy(host, s, hlen);
        port = end + 1;
        if (hlen == 0 || (hlen == 1 && s[0] == '*')) {
            strcpy(host, "0.0.0.0");
            hlen = 7;
        }
    }
    host[hlen] = '\0';
    if (!*port || strlen(port) > 5)
        return -1;
    for (const char *c = port; *c; c++) {
        if (!isdigit((unsigned char)*c))
            return -1;
        pv = pv * 10 + (unsigned long)(*c - '0');
    }
    if (pv < 1 || pv > 65535)
        return -1;
    memset(out, 0, sizeof(*out));
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->ss;

        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return -1;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)pv);
        out->len = sizeof(*a);
        inet_ntop(AF_INET6, &a->sin6_addr, txt, sizeof(txt));
        snprintf(out->text, sizeof(out->text), "[%s]:%lu", txt, pv);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&out->ss;

        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return -1;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)pv);
        out->len = sizeof(*a);
        inet_ntop(AF_INET, &a->sin_addr, txt, sizeof(txt));
        snprintf(out->text, sizeof(out->text), "%s:%lu", txt, pv);
    }
    return 0;
}

static bool addr_unspecified(const struct nd_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

/* ---- budgets -------------------------------------------------------------------------------- */

static struct nd_loader *loader_of(lua_State *L)
{
    void *ud;

    lua_getallocf(L, &ud);
    return ud;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The line being run by the innermost Lua function at or above level, or 0. Allocation-free,
 * so the allocator may call it. */
static int current_line(lua_State *L, int level)
{
    lua_Debug ar;

    for (; lua_getstack(L, level, &ar); level++)
        if (lua_getinfo(L, "l", &ar) && ar.currentline > 0)
            return ar.currentline;
    return 0;
}

static void hook(lua_State *L, lua_Debug *ar);

/* From now on every Lua instruction raises the budget error: a pcall in the script cannot
 * swallow it and go on. */
static void budget_exhausted(struct nd_loader *ld, bool time, int line)
{
    if (ld->budget_hit || ld->time_hit)
        return;
    if (time)
        ld->time_hit = true;
    else
        ld->budget_hit = true;
    ld->budget_line = line;
    lua_sethook(ld->L, hook, LUA_MASKCOUNT, 1);
}

static int budget_error(lua_State *L, struct nd_loader *ld)
{
    if (ld->time_hit)
        return luaL_error(L, "configuration script exceeds its time budget");
    return luaL_error(L, "configuration script exceeds its instruction budget");
}

static void hook(lua_State *L, lua_Debug *ar)
{
    struct nd_loader *ld = loader_of(L);

    if (!ld->budget_hit && !ld->time_hit) {
        ld->charged += HOOK_COUNT;
        if (ld->charged > ld->lim.max_instructions || now_ns() > ld->deadline_ns)
            budget_exhausted(ld, ld->charged <= ld->lim.max_instructions,
                             lua_getinfo(L, "l", ar) ? ar->currentline : 0);
    }
    if (ld->budget_hit || ld->time_hit)
        budget_error(L, ld);
}

/* Charges work done inside a library function, before it is done. */
static void charge(lua_State *L, double units)
{
    struct nd_loader *ld = loader_of(L);
    double room = ld->charged < ld->lim.max_instructions
                      ? (double)(ld->lim.max_instructions - ld->charged)
                      : 0;

    if (!ld->running)
        return;
    if (units > room)
        ld->charged = ld->lim.max_instructions + 1;
    else
        ld->charged += (uint64_t)units;
    if (ld->charged > ld->lim.max_instructions)
        budget_exhausted(ld, false, current_line(L, 1));
    else if (now_ns() > ld->deadline_ns)
        budget_exhausted(ld, true, current_line(L, 1));
    if (ld->budget_hit || ld->time_hit)
        budget_error(L, ld);
}

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct nd_loader *ld = ud;
    size_t old = ptr ? osize : 0;
    void *p;

    if (nsize == 0) {
        free(ptr);
        ld->mem -= old;
        return NULL;
    }
    if (nsize > old) {
        size_t grow = nsize - old;

        if (ld->mem_capped && (grow > ld->lim.max_memory || ld->mem > ld->lim.max_memory - grow)) {
            ld->mem_refused = true;
            if (ld->running)
                ld->mem_line = current_line(ld->L, 0);
            return NULL;
        }
        if (ld->running) { /* copying is work too */
            ld->charged += grow / 64;
            if (ld->charged > ld->lim.max_instructions)
                budget_exhausted(ld, false, current_line(ld->L, 0));
        }
    }
    p = realloc(ptr, nsize);
    if (!p && nsize > old)
        return NULL;
    ld->mem = ld->mem - old + nsize;
    return p ? p : ptr; /* Lua assumes shrinking never fails; the old block is still good */
}

static int panic(lua_State *L)
{
    nd_err("configuration: unprotected Lua error: %s",
           lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
    abort();
}

/* ---- the sandbox's library ------------------------------------------------------------------ */

/* The library functions wrapped below, as the Lua library defines them. */
static lua_CFunction o_setmetatable, o_rep, o_find, o_match, o_gmatch, o_gsub, o_byte, o_insert,
    o_remove, o_sort, o_concat, o_unpack, o_move, o_ulen, o_codepoint, o_offset;

static int l_print(lua_State *L)
{
    struct nd_loader *ld = loader_of(L);
    int n = lua_gettop(L);
    luaL_Buffer b;

    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    nd_info("%s:%d: %s", ld->file, current_line(L, 1), lua_tostring(L, -1));
    return 0;
}

/* A finalizer would run user code after the script, out of its budgets. */
static int w_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        int t;

        lua_pushliteral(L, "__gc");
        t = lua_rawget(L, 2);
        lua_pop(L, 1);
        if (t != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not available in configuration scripts");
    }
    return o_setmetatable(L);
}

/* string.rep("", n) loops n times without allocating. */
static int w_rep(lua_State *L)
{
    size_t l, lsep;
    lua_Integer n;

    luaL_checklstring(L, 1, &l);
    n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n > 0 && l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    return o_rep(L);
}

/*
 * A bound on the steps of Lua's backtracking matcher: each start position, times, for each
 * quantifier (* + - and %b, back-references), the positions it may try, over k! for k such
 * quantifiers (they can only nest in order). Patterns whose bound exceeds PATTERN_MAX are
 * refused outright (a single call cannot be interrupted); the others are charged bound/1024.
 */
#define PATTERN_MAX 1e9

static double pattern_cost(const char *p, size_t pl, size_t n)
{
    double w = (double)n + 1, f = (double)n + 1;
    unsigned k = 0;
    size_t i = 0;

    while (i < pl) {
        bool single = true; /* a single-character class, which a quantifier may follow */

        switch (p[i]) {
        case '%':
            if (i + 1 < pl && p[i + 1] == 'b') {
                w *= f;
                i += 4;
                single = false;
            } else if (i + 1 < pl && p[i + 1] == 'f') {
                i += 2;
                single = false;
            } else if (i + 1 < pl && isdigit((unsigned char)p[i + 1])) {
                w *= f;
                i += 2;
                single = false;
            } else {
                i += 2;
            }
            break;
        case '[':
            i++;
            if (i < pl && p[i] == '^')
                i++;
            do { /* the first ']' of a set is a member */
                if (i < pl && p[i] == '%')
                    i++;
                i++;
            } while (i < pl && p[i] != ']');
            i++;
            break;
        case '(':
        case ')':
        case '^':
        case '$':
            i++;
            single = false;
            break;
        default:
            i++;
            break;
        }
        if (single && i < pl) {
            if (p[i] == '*' || p[i] == '+' || p[i] == '-') {
                k++;
                w = w * f / k;
                i++;
            } else if (p[i] == '?') {
                w *= 2;
                i++;
            }
        }
        if (w > 1e30)
            return 1e30;
    }
    return w + (double)pl;
}

static void charge_pattern(lua_State *L, bool may_be_plain)
{
    size_t n, pl;
    const char *p;
    double w;

    luaL_checklstring(L, 1, &n);
    p = luaL_checklstring(L, 2, &pl);
    if (may_be_plain && lua_toboolean(L, 4)) {
        w = (double)n * ((double)pl + 1);
    } else {
        w = pattern_cost(p, pl, n);
        if (w > PATTERN_MAX)
            luaL_error(L,
                       "string pattern too costly for the configuration sandbox (%I-byte "
                       "subject; use fewer repetitions or a shorter string)",
                       (lua_Integer)n);
    }
    charge(L, w / 1024 + (double)n / 64 + 1);
}

static int w_find(lua_State *L)
{
    charge_pattern(L, true);
    return o_find(L);
}

static int w_match(lua_State *L)
{
    charge_pattern(L, false);
    return o_match(L);
}

static int w_gmatch(lua_State *L)
{
    charge_pattern(L, false);
    return o_gmatch(L);
}

static int w_gsub(lua_State *L)
{
    charge_pattern(L, false);
    return o_gsub(L);
}

/* i..j of a sequence of n (1-based, negative from the end, as string.byte does): the count. */
static double span(lua_Integer i, lua_Integer j, lua_Integer n)
{
    if (i < 0)
        i = n + i + 1;
    if (j < 0)
        j = n + j + 1;
    if (i < 1)
        i = 1;
    if (j > n)
        j = n;
    return j >= i ? (double)j - (double)i + 1 : 0;
}

static int w_byte(lua_State *L)
{
    size_t n;
    lua_Integer i;

    luaL_checklstring(L, 1, &n);
    i = luaL_optinteger(L, 2, 1);
    charge(L, span(i, luaL_optinteger(L, 3, i), (lua_Integer)n) / 8 + 1);
    return o_byte(L);
}

static int w_ulen(lua_State *L)
{
    size_t n;

    luaL_checklstring(L, 1, &n);
    charge(L, (double)n / 16 + 1);
    return o_ulen(L);
}

static int w_codepoint(lua_State *L)
{
    size_t n;

    luaL_checklstring(L, 1, &n);
    charge(L, (double)n / 8 + 1);
    return o_codepoint(L);
}

static int w_offset(lua_State *L)
{
    size_t n;

    luaL_checklstring(L, 1, &n);
    charge(L, (double)n / 16 + 1);
    return o_offset(L);
}

/* The table functions take the length through __len; refuse that, so the length charged is the
 * length used. */
static lua_Integer plain_len(lua_State *L, const char *fn)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (luaL_getmetafield(L, 1, "__len") != LUA_TNIL)
        luaL_error(L, "table.%s: tables with a __len metamethod are not supported here", fn);
    return (lua_Integer)lua_rawlen(L, 1);
}

static int w_insert(lua_State *L)
{
    charge(L, (double)plain_len(L, "insert") / 4 + 1);
    return o_insert(L);
}

static int w_remove(lua_State *L)
{
    charge(L, (double)plain_len(L, "remove") / 4 + 1);
    return o_remove(L);
}

static int w_sort(lua_State *L)
{
    lua_Integer n = plain_len(L, "sort");
    unsigned lg = 1;

    while (lg < 63 && ((lua_Integer)1 << lg) <= n)
        lg++;
    charge(L, (double)n * lg + 1);
    return o_sort(L);
}

static int w_concat(lua_State *L)
{
    lua_Integer n = plain_len(L, "concat");
    lua_Integer i = luaL_optinteger(L, 3, 1), j = luaL_optinteger(L, 4, n);

    charge(L, (j >= i ? (double)j - (double)i + 1 : 0) + 1);
    return o_concat(L);
}

static int w_unpack(lua_State *L)
{
    lua_Integer i = luaL_optinteger(L, 2, 1), j;

    if (lua_isnoneornil(L, 3))
        j = plain_len(L, "unpack");
    else
        j = luaL_checkinteger(L, 3);
    charge(L, (j >= i ? (double)j - (double)i + 1 : 0) / 4 + 1);
    return o_unpack(L);
}

static int w_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);

    charge(L, (e >= f ? (double)e - (double)f + 1 : 0) + 1);
    return o_move(L);
}

struct wrap {
    const char *name;
    lua_CFunction fn;
    lua_CFunction *orig;
};

static const struct wrap string_wraps[] = {
    {"rep", w_rep, &o_rep},       {"find", w_find, &o_find},
    {"match", w_match, &o_match}, {"gmatch", w_gmatch, &o_gmatch},
    {"gsub", w_gsub, &o_gsub},    {"byte", w_byte, &o_byte},
    {NULL, NULL, NULL},
};
static const struct wrap table_wraps[] = {
    {"insert", w_insert, &o_insert},
    {"remove", w_remove, &o_remove},
    {"sort", w_sort, &o_sort},
    {"concat", w_concat, &o_concat},
    {"unpack", w_unpack, &o_unpack},
    {"move", w_move, &o_move},
    {NULL, NULL, NULL},
};
static const struct wrap utf8_wraps[] = {
    {"len", w_ulen, &o_ulen},
    {"codepoint", w_codepoint, &o_codepoint},
    {"offset", w_offset, &o_offset},
    {NULL, NULL, NULL},
};

/* Opens a library, replaces some of its functions, and sets it in the table at env. */
static void open_lib(lua_State *L, int env, const char *name, lua_CFunction open,
                     const struct wrap *w)
{
    luaL_requiref(L, name, open, 0);
    for (; w && w->name; w++) {
        lua_getfield(L, -1, w->name);
        *w->orig = lua_tocfunction(L, -1);
        lua_pop(L, 1);
        if (!*w->orig)
            luaL_error(L, "%s.%s is not a C function", name, w->name);
        lua_pushcfunction(L, w->fn);
        lua_setfield(L, -2, w->name);
    }
    lua_setfield(L, env, name);
}

/* ---- directives ----------------------------------------------------------------------------- */

/* Appends a declaration { kind, name, line, table } and leaves it on the stack. name_idx and
 * tbl_idx are absolute stack indexes, or 0. */
static void add_decl(lua_State *L, int kind, int name_idx, int line, int tbl_idx)
{
    struct nd_loader *ld = loader_of(L);

    lua_createtable(L, 4, 0);
    lua_pushinteger(L, kind);
    lua_rawseti(L, -2, 1);
    if (name_idx) {
        lua_pushvalue(L, name_idx);
        lua_rawseti(L, -2, 2);
    }
    lua_pushinteger(L, line);
    lua_rawseti(L, -2, 3);
    if (tbl_idx) {
        lua_pushvalue(L, tbl_idx);
        lua_rawseti(L, -2, 4);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, ld->decls_ref);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

/* A path of node { plugins }, relative to the configuration file's directory. malloc'd. */
static char *so_path(struct nd_loader *ld, const char *p)
{
    struct nd_sbuf b = {0};

    if (p[0] == '/')
        nd_sbuf_adds(&b, p);
    else
        nd_sbuf_printf(&b, "%s/%s", ld->dir ? ld->dir : ".", p);
    if (b.oom) {
        nd_sbuf_free(&b);
        return NULL;
    }
    return b.p;
}

/* node { plugins = { ... } }: loaded now, so that their constructors exist for the rest of the
 * script. Elements that are not strings are reported by the builder. */
static void load_so_plugins(lua_State *L, struct nd_loader *ld, int line)
{
    size_t n;

    lua_pushliteral(L, "plugins");
    if (lua_rawget(L, 1) != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    n = lua_rawlen(L, -1);
    for (size_t i = 0; i < n && i < MAX_SO; i++) {
        size_t len;
        const char *s;
        char *path, *err = NULL;

        if (lua_rawgeti(L, -1, (lua_Integer)i + 1) != LUA_TSTRING) {
            lua_pop(L, 1);
            continue;
        }
        s = lua_tolstring(L, -1, &len);
        if (strlen(s) == len && len > 0) {
            if (ld->lim.no_so) {
                nd_loader_error(ld, line, "node: plugins[%zu]: loading plugins is disabled here",
                                i + 1);
            } else if (!(path = so_path(ld, s))) {
                nd_loader_error(ld, line, "node: plugins[%zu]: out of memory", i + 1);
            } else {
                if (nd_plugin_load_so(path, &err) < 0)
                    nd_loader_error(ld, line, "node: plugins[%zu]: %s", i + 1,
                                    err ? err : "cannot load");
                free(err);
                free(path);
            }
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static int dir_node(lua_State *L)
{
    struct nd_loader *ld = loader_of(L);
    int line = current_line(L, 1);

    if (lua_type(L, 1) != LUA_TTABLE) {
        nd_loader_error(ld, line, "node: expected a table: node { name = \"...\" }");
        return 0;
    }
    add_decl(L, DECL_NODE, 0, line, 1);
    lua_pop(L, 1);
    load_so_plugins(L, ld, line);
    return 0;
}

static int dir_admin(lua_State *L)
{
    struct nd_loader *ld = loader_of(L);
    int line = current_line(L, 1);

    if (lua_type(L, 1) != LUA_TTABLE) {
        nd_loader_error(ld, line,
                        "admin: expected a table: admin { listen = \"127.0.0.1:15000\" }");
        return 0;
    }
    add_decl(L, DECL_ADMIN, 0, line, 1);
    return 0;
}

static int dir_identity(lua_State *L)
{
    struct nd_loader *ld = loader_of(L);
    int line = current_line(L, 1);

    if (lua_type(L, 1) != LUA_TTABLE) {
        nd_loader_error(ld, line,
                        "identity: expected a table: identity { ca = \"ca.pem\", "
                        "cert = \"node.pem\", key = \"node.key\" }");
        return 0;
    }
    add_decl(L, DECL_IDENTITY, 0, line, 1);
    return 0;
}

static int dir_gossip(lua_State *L)
{
    struct nd_loader *ld = loader_of(L);
    int line = current_line(L, 1);

    if (lua_type(L, 1) != LUA_TTABLE) {
        nd_loader_error(ld, line, "gossip: expected a table: gossip { bind = \"127.0.0.1:7946\" }");
        return 0;
    }
    add_decl(L, DECL_GOSSIP, 0, line, 1);
    return 0;
}

static int dir_metrics(lua_State *L)
{
    struct nd_loader *ld = loader_of(L);
    int line = current_line(L, 1);

    if (lua_type(L, 1) != LUA_TTABLE) {
        nd_loader_error(ld, line, "metrics: expected a table: metrics { principals = 256 }");
        return 0;
    }
    add_decl(L, DECL_METRICS, 0, line, 1);
    return 0;
}

static int dir_dpdk(lua_State *L)
{
    struct nd_loader *ld = loader_of(L);
    int line = current_line(L, 1);

    if (lua_type(L, 1) != LUA_TTABLE) {
        nd_loader_error(
            ld, line,
            "dpdk: expected a table: dpdk { ports = { { dev = \"...\", ip = \"...\" } } }");
        return 0;
    }
    add_decl(L, DECL_DPDK, 0, line, 1);
    return 0;
}

static const char *kind_name(int kind)
{
    return kind == DECL_CLUSTER    ? "cluster"
           : kind == DECL_LISTENER ? "listener"
           : kind == DECL_DPDK     ? "dpdk"
           : kind == DECL_NODE     ? "node"
           : kind == DECL_IDENTITY ? "identity"
           : kind == DECL_GOSSIP   ? "gossip"
           : kind == DECL_SERVICE  ? "service"
           : kind == DECL_METRICS  ? "metrics"
                                   : "admin";
}

static int swallow(lua_State *L)
{
    (void)L;
    return 0;
}

/* cluster "name" { ... } is cluster("name")({ ... }): the table half. */
static int dir_named_body(lua_State *L)
{
    struct nd_loader *ld = loader_of(L);
    int decl = lua_upvalueindex(1), kind, line = current_line(L, 1);
    char q[160];
    const char *name;
    size_t len;

    lua_rawgeti(L, decl, 1);
    kind = (int)lua_tointeger(L, -1);
    lua_rawgeti(L, decl, 2);
    name = lua_tolstring(L, -1, &len);
    nd_cfg_quote(q, sizeof(q), name, len);
    if (lua_rawgeti(L, decl, 4) != LUA_TNIL) {
        nd_loader_error(ld, line, "%s \"%s\": given a table twice", kind_name(kind), q);
        return 0;
    }
    if (lua_type(L, 1) != LUA_TTABLE) {
        nd_loader_error(ld, line, "%s \"%s\": expected a table: %s \"%s\" { ... }", kind_name(kind),
                        q, kind_name(kind), q);
        return 0;
    }
    lua_pushvalue(L, 1);
    lua_rawseti(L, decl, 4);
    return 0;
}

static int dir_named(lua_State *L)
{
    struct nd_loader *ld = loader_of(L);
    int kind = (int)lua_tointeger(L, lua_upvalueindex(1)), line = current_line(L, 1);

    if (lua_type(L, 1) != LUA_TSTRING) {
        nd_loader_error(ld, line, "%s: expected a name: %s \"name\" { ... }", kind_name(kind),
                        kind_name(kind));
        lua_pushcfunction(L, swallow);
        return 1;
    }
    if (lua_type(L, 2) == LUA_TTABLE) { /* cluster("name", { ... }) */
        add_decl(L, kind, 1, line, 2);
        return 0;
    }
    add_decl(L, kind, 1, line, 0);
    lua_pushcclosure(L, dir_named_body, 1);
    return 1;
}

static int plugin_ctor(lua_State *L)
{
    const struct nodus_plugin *p = lua_touserdata(L, lua_upvalueindex(1));
    int t = lua_type(L, 1);
    struct marker *m = lua_newuserdatauv(L, sizeof(*m), 1);

    m->p = p;
    m->line = current_line(L, 1);
    m->bad = false;
    if (t == LUA_TTABLE) {
        lua_pushvalue(L, 1);
    } else {
        if (t != LUA_TNIL) {
            nd_loader_error(loader_of(L), m->line, "%s: expected a table: %s { ... }", p->name,
                            p->name);
            m->bad = true;
        }
        lua_newtable(L);
    }
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, MARKER_MT);
    return 1;
}

static int marker_tostring(lua_State *L)
{
    struct marker *m = luaL_checkudata(L, 1, MARKER_MT);

    lua_pushfstring(L, "%s { ... } (line %d)", m->p->name, m->line);
    return 1;
}

/* Reading a global that does not exist: a plugin constructor (made on first use, so plugins
 * loaded by node { } are found), or an error at that line. */
static int env_index(lua_State *L)
{
    const struct nodus_plugin *p = NULL;
    const char *name;
    char q[96];
    size_t len;

    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_error(L, "unknown variable (a %s key)", luaL_typename(L, 2));
    name = lua_tolstring(L, 2, &len);
    if (strlen(name) == len)
        p = nd_plugin_find(name);
    if (!p)
        return luaL_error(L, "unknown directive or variable '%s'",
                          nd_cfg_quote(q, sizeof(q), name, len));
    lua_pushlightuserdata(L, (void *)p);
    lua_pushcclosure(L, plugin_ctor, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    return 1;
}

/* Message handler of the script: gives every error a position. */
static int msgh(lua_State *L)
{
    struct nd_loader *ld = loader_of(L);
    size_t idlen = strlen(ld->chunkid);
    const char *msg = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : NULL;
    int line;

    if (msg && strncmp(msg, ld->chunkid, idlen) == 0 && msg[idlen] == ':' &&
        isdigit((unsigned char)msg[idlen + 1]))
        return 1;
    line = current_line(L, 1);
    if (msg)
        lua_pushfstring(L, "%s:%d: %s", ld->chunkid, line, msg);
    else
        lua_pushfstring(L, "%s:%d: (error object is a %s value)", ld->chunkid, line,
                        luaL_typename(L, 1));
    return 1;
}

/* Builds the sandbox: its global table (registry ld->env_ref) and the declarations' list. */
static int setup(lua_State *L)
{
    struct nd_loader *ld = lua_touserdata(L, 1);
    int env;

    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    lua_pop(L, 1);
    lua_getglobal(L, "setmetatable");
    o_setmetatable = lua_tocfunction(L, -1);
    lua_pop(L, 1);

    lua_newtable(L);
    env = lua_gettop(L);
    for (const char *const *n = safe_base; *n; n++) {
        lua_getglobal(L, *n);
        lua_setfield(L, env, *n);
    }
    lua_pushcfunction(L, l_print);
    lua_setfield(L, env, "print");
    lua_pushcfunction(L, w_setmetatable);
    lua_setfield(L, env, "setmetatable");
    open_lib(L, env, LUA_STRLIBNAME, luaopen_string, string_wraps);
    lua_getfield(L, env, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    open_lib(L, env, LUA_TABLIBNAME, luaopen_table, table_wraps);
    open_lib(L, env, LUA_MATHLIBNAME, luaopen_math, NULL);
    open_lib(L, env, LUA_UTF8LIBNAME, luaopen_utf8, utf8_wraps);

    lua_pushcfunction(L, dir_node);
    lua_setfield(L, env, "node");
    lua_pushcfunction(L, dir_admin);
    lua_setfield(L, env, "admin");
    lua_pushcfunction(L, dir_identity);
    lua_setfield(L, env, "identity");
    lua_pushcfunction(L, dir_gossip);
    lua_setfield(L, env, "gossip");
    lua_pushcfunction(L, dir_dpdk);
    lua_setfield(L, env, "dpdk");
    lua_pushcfunction(L, dir_metrics);
    lua_setfield(L, env, "metrics");
    lua_pushinteger(L, DECL_CLUSTER);
    lua_pushcclosure(L, dir_named, 1);
    lua_setfield(L, env, "cluster");
    lua_pushinteger(L, DECL_LISTENER);
    lua_pushcclosure(L, dir_named, 1);
    lua_setfield(L, env, "listener");
    lua_pushinteger(L, DECL_SERVICE);
    lua_pushcclosure(L, dir_named, 1);
    lua_setfield(L, env, "service");

    lua_createtable(L, 0, 2); /* the environment's metatable */
    lua_pushcfunction(L, env_index);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, env);

    luaL_newmetatable(L, MARKER_MT);
    lua_pushcfunction(L, marker_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, MARKER_MT);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);

    lua_newtable(L);
    ld->decls_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    /* the prelude runs in the sandbox, before the script */
    if (luaL_loadbufferx(L, nd_embed_prelude_lua, strlen(nd_embed_prelude_lua), "=prelude", "t") !=
        LUA_OK)
        lua_error(L);
    lua_pushvalue(L, env);
    lua_setupvalue(L, -2, 1);
    lua_call(L, 0, 0);

    lua_pushvalue(L, env);
    ld->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Turns the error at the top of the stack (status st) into one loader error. */
static void script_error(struct nd_loader *ld, int st)
{
    lua_State *L = ld->L;
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    size_t idlen = strlen(ld->chunkid);

    if (ld->time_hit) {
        nd_loader_error(ld, ld->budget_line, "configuration script exceeds its time budget");
    } else if (ld->budget_hit) {
        nd_loader_error(ld, ld->budget_line, "configuration script exceeds its instruction budget");
    } else if (ld->mem_refused && (st == LUA_ERRMEM || (msg && strstr(msg, "not enough memory")))) {
        nd_loader_error(ld, ld->mem_line, "configuration script exceeds its memory budget");
    } else if (st == LUA_ERRMEM) {
        nd_loader_error(ld, 0, "out of memory");
    } else if (msg && strncmp(msg, ld->chunkid, idlen) == 0 && msg[idlen] == ':' &&
               isdigit((unsigned char)msg[idlen + 1])) {
        char *end;
        long line = strtol(msg + idlen + 1, &end, 10);

        if (*end == ':')
            end++;
        if (*end == ' ')
            end++;
        nd_loader_error(ld, line > 0 && line < INT32_MAX ? (int)line : 0, "%s", end);
    } else {
        nd_loader_error(ld, 0, "%s", msg ? msg : "error (not a string)");
    }
}

/* Loads and runs the script. Returns the Lua status. */
static int run_script(struct nd_loader *ld, const char *text, size_t len)
{
    lua_State *L = ld->L;
    struct nd_sbuf name = {0};
    int st;

    nd_sbuf_printf(&name, "=%s", ld->file);
    if (name.oom) {
        nd_sbuf_free(&name);
        nd_loader_error(ld, 0, "out of memory");
        return LUA_ERRMEM;
    }
    if (len > 0 && text[0] == '#') { /* a #! line: skip it, keep its newline */
        const char *nl = memchr(text, '\n', len);

        len = nl ? len - (size_t)(nl - text) : 0;
        text = nl ? nl : text;
    }
    ld->running = true;
    ld->deadline_ns = now_ns() + (uint64_t)ld->lim.max_time_ms * 1000000ull;
    st = luaL_loadbufferx(L, text, len, name.p, "t");
    nd_sbuf_free(&name);
    if (st == LUA_OK) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, ld->env_ref);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
        lua_pushcfunction(L, msgh);
        lua_insert(L, -2);
        lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_COUNT);
        st = lua_pcall(L, 0, 0, -2);
        lua_sethook(L, NULL, 0, 0);
    }
    ld->running = false;
    if (st != LUA_OK)
        script_error(ld, st);
    lua_settop(L, 0);
    return st;
}

/* ---- building ------------------------------------------------------------------------------- */

/* A duration key into a uint32_t of milliseconds. */
static void dur32(struct nodus_cfg *c, const char *key, uint32_t *out, bool zero_ok)
{
    uint64_t ms;

    if (nodus_cfg_duration(c, key, &ms) != 1)
        return;
    if (!zero_ok && ms == 0)
        nodus_cfg_error(c, "'%s' must be longer than 0", key);
    else if (ms > UINT32_MAX)
        nodus_cfg_error(c, "'%s' must be at most 1193h", key);
    else
        *out = (uint32_t)ms;
}

static bool valid_name(const char *s, size_t len)
{
    if (len == 0 || len > MAX_NAME || strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

static char *xstrdup(lua_State *L, const char *s)
{
    char *d = strdup(s);

    if (!d)
        luaL_error(L, "out of memory");
    return d;
}

static void *xcalloc(lua_State *L, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (!p)
        luaL_error(L, "out of memory");
    return p;
}

static void build_node(struct nd_loader *ld, int tbl, int line)
{
    static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
    struct nd_config *cfg = ld->cfg;
    struct nodus_cfg *c = nd_cfg_new(ld, tbl, line, "node"), *pc;
    const char *s;
    long long v;

    if (nodus_cfg_str(c, "name", &s) == 1) {
        if (!*s || strlen(s) > 255) {
            nodus_cfg_error(c, "'name' must be 1 to 255 characters long");
        } else {
            free(cfg->node.name);
            cfg->node.name = xstrdup(ld->L, s);
        }
    }
    if (nodus_cfg_int(c, "workers", 1, ND_MAX_WORKERS, &v) == 1)
        cfg->node.workers = (unsigned)v;
    if (nodus_cfg_str(c, "io", &s) == 1) {
        if (strcmp(s, "posix") == 0)
            cfg->node.io = ND_IO_POSIX;
        else if (strcmp(s, "dpdk") == 0)
            cfg->node.io = ND_IO_DPDK;
        else
            nodus_cfg_error(c, "'io' must be \"posix\" or \"dpdk\"");
    }
    dur32(c, "drain_timeout", &cfg->node.drain_timeout_ms, true);
    if (nodus_cfg_int(c, "max_connections", 1, 100000000, &v) == 1)
        cfg->node.max_connections = (uint32_t)v;
    if (nodus_cfg_str(c, "access_log", &s) == 1) {
        if (!*s)
            nodus_cfg_error(c, "'access_log' must be \"stderr\" or a file path");
        else
            cfg->node.access_log = xstrdup(ld->L, s);
    }
    if (nodus_cfg_table(c, "plugins", &pc) == 1) {
        size_t n = nodus_cfg_len(pc);

        if (n > MAX_SO) {
            nodus_cfg_error(c, "'plugins' lists more than %d files", MAX_SO);
            n = MAX_SO;
        }
        cfg->node.plugin_paths = xcalloc(ld->L, n, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            int r = nodus_cfg_str_at(pc, i, &s);
            char *path;

            if (r == 0) {
                nd_cfg_error_at(pc, i, "must be the path of a .so file");
            } else if (r == 1 && !*s) {
                nd_cfg_error_at(pc, i, "must not be empty");
            } else if (r == 1) {
                if (!(path = so_path(ld, s)))
                    luaL_error(ld->L, "out of memory");
                cfg->node.plugin_paths[cfg->node.nplugin_paths++] = path;
            }
        }
    }
    if (nodus_cfg_str(c, "log_level", &s) == 1) {
        int i;

        for (i = 0; levels[i] && strcmp(levels[i], s) != 0; i++)
            ;
        if (levels[i])
            cfg->node.log_level = NODUS_LOG_ERR + i;
        else
            nodus_cfg_error(c, "'log_level' must be \"error\", \"warn\", \"info\" or \"debug\"");
    }
}

static void build_admin(struct nd_loader *ld, int tbl, int line)
{
    struct nd_config *cfg = ld->cfg;
    struct nodus_cfg *c = nd_cfg_new(ld, tbl, line, "admin");
    const char *s;
    int r = nodus_cfg_str(c, "listen", &s);

    cfg->admin.enabled = true;
    cfg->admin.line = line;
    if (r == 0)
        nodus_cfg_error(c, "'listen' is required, e.g. listen = \"127.0.0.1:15000\"");
    else if (r == 1 && nd_parse_addr(s, &cfg->admin.addr) < 0)
        nodus_cfg_error(c, "'listen' must be an address such as \"127.0.0.1:15000\" or "
                           "\"[::1]:15000\"");
}

/* metrics { principals = 256 }: how many distinct principals get a label value of their own. */
static void build_metrics(struct nd_loader *ld, int tbl, int line)
{
    struct nodus_cfg *c = nd_cfg_new(ld, tbl, line, "metrics");
    long long v;

    ld->cfg->metrics.line = line;
    if (nodus_cfg_int(c, "principals", 0, ND_METRICS_PRINCIPALS_MAX, &v) == 1)
        ld->cfg->metrics.principals = (unsigned)v;
}

/* identity { ca, cert, key } or identity { ca_dir, id, ttl }: paths resolved against the file's
 * directory; the files themselves are read when the configuration is applied. */
/* dpdk { args = { ... }, ports = { { dev, ip } }, routes = { { dst, via } },
 *        fault = { drop, duplicate, reorder, seed }, idle_sleep_us = N }: checked by the
 * nd_dpdk_conf_* calls of dpdk/net/conf.h, whose messages follow "file:line: dpdk: ". */
static void build_dpdk(struct nd_loader *ld, int tbl, int line)
{
    static const char *const fault_keys[] = {"drop", "duplicate", "reorder", "seed", NULL};
    struct nd_config *cfg = ld->cfg;
    struct nodus_cfg *c = nd_cfg_new(ld, tbl, line, "dpdk"), *t, *e;
    struct nd_dpdk_conf *dc = xcalloc(ld->L, 1, sizeof(*dc));
    char err[256];
    const char *a, *b;
    long long v;
    bool ok = true;

    cfg->dpdk.enabled = true;
    cfg->dpdk.line = line;
    cfg->dpdk.net = dc;
    cfg->dpdk.idle_sleep_us = 100;
    nd_dpdk_conf_init(dc);
    if (nodus_cfg_table(c, "args", &t) == 1)
        for (size_t i = 0; i < nodus_cfg_len(t); i++) {
            if (nodus_cfg_str_at(t, i, &a) != 1)
                nd_cfg_error_at(t, i, "must be a string"), ok = false;
            else if (nd_dpdk_conf_add_arg(dc, a, err, sizeof(err)) < 0)
                nodus_cfg_error(c, "%s", err), ok = false;
        }
    if (nodus_cfg_table(c, "ports", &t) == 1)
        for (size_t i = 0; i < nodus_cfg_len(t); i++) {
            if (nodus_cfg_at(t, i, &e) != 1) {
                nd_cfg_error_at(t, i, "must be a table { dev = \"...\", ip = \"A.B.C.D/LEN\" }");
                ok = false;
            } else if (nodus_cfg_str(e, "dev", &a) != 1 || nodus_cfg_str(e, "ip", &b) != 1) {
                nd_cfg_error_at(t, i, "'dev' and 'ip' are required");
                ok = false;
            } else if (nd_dpdk_conf_add_port(dc, a, b, err, sizeof(err)) < 0) {
                nodus_cfg_error(c, "%s", err), ok = false;
            }
        }
    if (nodus_cfg_table(c, "routes", &t) == 1)
        for (size_t i = 0; i < nodus_cfg_len(t); i++) {
            if (nodus_cfg_at(t, i, &e) != 1) {
                nd_cfg_error_at(t, i,
                                "must be a table { dst = \"A.B.C.D/LEN\", via = \"A.B.C.D\" }");
                ok = false;
            } else if (nodus_cfg_str(e, "dst", &a) != 1 || nodus_cfg_str(e, "via", &b) != 1) {
                nd_cfg_error_at(t, i, "'dst' and 'via' are required");
                ok = false;
            } else if (nd_dpdk_conf_add_route(dc, a, b, err, sizeof(err)) < 0) {
                nodus_cfg_error(c, "%s", err), ok = false;
            }
        }
    if (nodus_cfg_table(c, "fault", &t) == 1)
        for (const char *const *k = fault_keys; *k; k++) {
            int ty = nd_cfg_push(t, *k);
            double d = lua_tonumber(ld->L, -1);

            lua_pop(ld->L, 1);
            if (ty == LUA_TNIL)
                continue;
            if (ty != LUA_TNUMBER)
                nodus_cfg_error(c, "fault: '%s' must be a number", *k), ok = false;
            else if (nd_dpdk_conf_set_fault(dc, *k, d, err, sizeof(err)) < 0)
                nodus_cfg_error(c, "%s", err), ok = false;
        }
    if (nodus_cfg_int(c, "idle_sleep_us", 0, 100000, &v) == 1)
        cfg->dpdk.idle_sleep_us = (uint32_t)v;
    if (ok && nd_dpdk_conf_validate(dc, err, sizeof(err)) < 0)
        nodus_cfg_error(c, "%s", err);
}

/* io = "dpdk": where a control-plane socket (admin, gossip) runs. 0: on the DPDK ports (a port's
 * address or 0.0.0.0), 1: on a kernel socket (a loopback address: the operator's escape hatch),
 * -1: neither (IPv6, or an address no port has). */
int nd_config_ctl_on_kernel(const struct nd_config *cfg, const struct nd_addr *a)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
    uint32_t ip;

    if (a->ss.ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr) ? 1 : -1;
    if (a->ss.ss_family != AF_INET)
        return -1;
    ip = ntohl(sin->sin_addr.s_addr);
    if (ip >> 24 == 127)
        return 1;
    if (ip == 0)
        return 0;
    for (unsigned i = 0; cfg->dpdk.net && i < cfg->dpdk.net->nports; i++)
        if (cfg->dpdk.net->ports[i].ip == ip)
            return 0;
    return -1;
}

/* The addresses of the ports, for error messages. */
static void port_addrs(const struct nd_config *cfg, char *out, size_t len)
{
    size_t off = 0;

    out[0] = '\0';
    for (unsigned i = 0; cfg->dpdk.net && i < cfg->dpdk.net->nports && off < len; i++) {
        char ip[16];
        int n = snprintf(out + off, len - off, "%s%s", i ? ", " : "",
                         nd_ipv4_str(cfg->dpdk.net->ports[i].ip, ip));

        off += n > 0 ? (size_t)n : 0;
    }
}

/* With node.io = "dpdk": a dpdk { } block, IPv4 listeners and endpoints (the user-space TCP is
 * IPv4 only), and admin and gossip on a port's address, 0.0.0.0, or loopback (kernel). */
static void check_dpdk(struct nd_loader *ld, int node_line)
{
    struct nd_config *cfg = ld->cfg;
    char ports[160];

    if (cfg->node.io != ND_IO_DPDK)
        return;
    if (!cfg->dpdk.enabled) {
        nd_loader_error(ld, node_line, "node: io = \"dpdk\" needs a dpdk { ports = ... } block");
        return;
    }
    for (unsigned i = 0; i < cfg->nlisteners; i++)
        if (cfg->listeners[i].addr.ss.ss_family != AF_INET)
            nd_loader_error(ld, cfg->listeners[i].line,
                            "listener \"%s\": io = \"dpdk\" listens on IPv4 addresses only",
                            cfg->listeners[i].name);
    for (unsigned i = 0; i < cfg->nclusters; i++)
        for (unsigned j = 0; j < cfg->clusters[i].neps; j++)
            if (cfg->clusters[i].eps[j].addr.ss.ss_family != AF_INET) {
                nd_loader_error(ld, cfg->clusters[i].line,
                                "cluster \"%s\": io = \"dpdk\" connects to IPv4 endpoints "
                                "only, not %s",
                                cfg->clusters[i].name, cfg->clusters[i].eps[j].addr.text);
                break;
            }
    port_addrs(cfg, ports, sizeof(ports));
    if (cfg->admin.enabled && nd_config_ctl_on_kernel(cfg, &cfg->admin.addr) < 0)
        nd_loader_error(ld, cfg->admin.line,
                        "admin: with io = \"dpdk\", 'listen' must be on a DPDK port (%s), "
                        "0.0.0.0, or a loopback address (a kernel socket), not %s",
                        ports, cfg->admin.addr.text);
    if (cfg->gossip.enabled && nd_config_ctl_on_kernel(cfg, &cfg->gossip.bind) < 0)
        nd_loader_error(ld, cfg->gossip.line,
                        "gossip: with io = \"dpdk\", 'bind' must be on a DPDK port (%s), "
                        "0.0.0.0, or a loopback address (a kernel socket), not %s",
                        ports, cfg->gossip.bind.text);
    else if (cfg->gossip.enabled && !nd_config_ctl_on_kernel(cfg, &cfg->gossip.bind))
        for (unsigned i = 0; i < cfg->gossip.njoin; i++)
            if (cfg->gossip.join[i].ss.ss_family != AF_INET) {
                nd_loader_error(ld, cfg->gossip.line,
                                "gossip: with io = \"dpdk\", 'join' takes IPv4 addresses only, "
                                "not %s",
                                cfg->gossip.join[i].text);
                break;
            }
}

static void build_identity(struct nd_loader *ld, int tbl, int line)
{
    static const char *const keys[] = {"ca", "cert", "key", "ca_dir", "id"};
    struct nd_identity_conf *ic = &ld->cfg->identity;
    struct nodus_cfg *c = nd_cfg_new(ld, tbl, line, "identity");
    char **dst[] = {&ic->ca, &ic->cert, &ic->key, &ic->ca_dir, &ic->id};
    const char *s;
    uint64_t ms;
    int r;

    ic->enabled = true;
    ic->line = line;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (nodus_cfg_str(c, keys[i], &s) != 1)
            continue;
        if (!*s) {
            nodus_cfg_error(c, "'%s' must not be empty", keys[i]);
            continue;
        }
        *dst[i] = i < 4 ? so_path(ld, s) : strdup(s);
        if (!*dst[i])
            luaL_error(ld->L, "out of memory");
    }
    r = nodus_cfg_duration(c, "ttl", &ms);
    if (r == 1 && ms < 10000)
        nodus_cfg_error(c, "'ttl' must be at least 10s");
    else if (r == 1)
        ic->ttl_s = (ms + 999) / 1000;
    if (ic->ca_dir || ic->id) {
        if (ic->ca || ic->cert || ic->key)
            nodus_cfg_error(c, "give either ca, cert and key (files) or ca_dir and id (issued by "
                               "the node), not both");
        else if (!ic->ca_dir || !ic->id)
            nodus_cfg_error(c, "'%s' is required with '%s'", ic->id ? "ca_dir" : "id",
                            ic->id ? "id" : "ca_dir");
        else if (strncmp(ic->id, "spiffe://", 9) != 0)
            nodus_cfg_error(c, "'id' must be a SPIFFE ID such as "
                               "\"spiffe://mesh.local/ns/NAMESPACE/sa/ACCOUNT\"");
        if (!ic->ttl_s)
            ic->ttl_s = 24 * 3600;
    } else {
        if (!ic->ca || !ic->cert || !ic->key)
            nodus_cfg_error(c, "'ca', 'cert' and 'key' are required (or 'ca_dir' and 'id')");
        if (r == 1)
            nodus_cfg_error(c, "'ttl' applies only with 'ca_dir'");
    }
}

static const char *endpoint_addr(const char *s, struct nd_addr *a);

#define MAX_GOSSIP_JOIN 64
#define MAX_GOSSIP_TAGS 64

/* gossip { bind, advertise, join, keyring, tags, name, profile, max_members } */
static void build_gossip(struct nd_loader *ld, int tbl, int line)
{
    struct nd_gossip_conf *g = &ld->cfg->gossip;
    struct nodus_cfg *c = nd_cfg_new(ld, tbl, line, "gossip"), *t;
    struct nd_serf_tag tags[MAX_GOSSIP_TAGS];
    const char *s;
    long long v;
    int r;

    g->enabled = true;
    g->line = line;
    if (nodus_cfg_str(c, "name", &s) == 1) {
        if (!*s || strlen(s) > 255)
            nodus_cfg_error(c, "'name' must be 1 to 255 characters long");
        else
            g->name = xstrdup(ld->L, s);
    }
    r = nodus_cfg_str(c, "bind", &s);
    if (r == 0)
        nodus_cfg_error(c, "'bind' is required, e.g. bind = \"127.0.0.1:7946\"");
    else if (r == 1 && nd_parse_addr(s, &g->bind) < 0)
        nodus_cfg_error(c, "'bind' must be an address such as \"127.0.0.1:7946\"");
    r = nodus_cfg_str(c, "advertise", &s);
    if (r == 1) {
        if (nd_parse_addr(s, &g->advertise) < 0 || addr_unspecified(&g->advertise))
            nodus_cfg_error(c, "'advertise' must be a host address such as \"10.0.0.1:7946\"");
    } else if (r == 0 && g->bind.text[0]) {
        if (addr_unspecified(&g->bind))
            nodus_cfg_error(c, "'advertise' is required when 'bind' is %s", g->bind.text);
        g->advertise = g->bind;
    }
    if (nodus_cfg_table(c, "join", &t) == 1) {
        size_t n = nodus_cfg_len(t);

        if (n > MAX_GOSSIP_JOIN) {
            nodus_cfg_error(c, "'join' lists more than %d addresses", MAX_GOSSIP_JOIN);
            n = MAX_GOSSIP_JOIN;
        }
        g->join = xcalloc(ld->L, n, sizeof(*g->join));
        for (size_t i = 0; i < n; i++) {
            const char *why;

            r = nodus_cfg_str_at(t, i, &s);
            if (r == 0)
                nd_cfg_error_at(t, i, "must be an address such as \"127.0.0.1:7946\"");
            else if (r == 1 && (why = endpoint_addr(s, &g->join[g->njoin])))
                nd_cfg_error_at(t, i, "%s", why);
            else if (r == 1)
                g->njoin++;
        }
    }
    if (nodus_cfg_table(c, "keyring", &t) == 1) {
        size_t n = nodus_cfg_len(t);

        if (n > ND_GOSSIP_KEYRING_MAX) {
            nodus_cfg_error(c, "'keyring' holds more than %u keys", ND_GOSSIP_KEYRING_MAX);
            n = ND_GOSSIP_KEYRING_MAX;
        }
        g->keyring = xcalloc(ld->L, n, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            uint8_t key[32];
            size_t klen;

            r = nodus_cfg_str_at(t, i, &s);
            if (r == 1 && nd_gossip_key_from_base64(s, strlen(s), key, &klen) == 0)
                g->keyring[g->nkeyring++] = xstrdup(ld->L, s);
            else if (r >= 0)
                nd_cfg_error_at(t, i,
                                "must be a base64 AES key of 16, 24 or 32 bytes "
                                "(serf keygen)");
            memset(key, 0, sizeof(key));
        }
        if (n == 0)
            nodus_cfg_error(c, "'keyring' is empty: leave it out for no encryption");
    }
    if (nodus_cfg_table(c, "tags", &t) == 1) {
        size_t it = 0, len;
        const char *k, *val;
        uint8_t meta[ND_GOSSIP_META_MAX];

        while ((r = nodus_cfg_next_str(t, &it, &k, &val)) != 0) {
            if (r < 0)
                continue;
            if (g->ntags == MAX_GOSSIP_TAGS) {
                nodus_cfg_error(t, "more than %d tags", MAX_GOSSIP_TAGS);
                break;
            }
            if (!g->tags)
                g->tags = xcalloc(ld->L, MAX_GOSSIP_TAGS, sizeof(*g->tags));
            g->tags[g->ntags].key = xstrdup(ld->L, k);
            g->tags[g->ntags].val = xstrdup(ld->L, val);
            tags[g->ntags].key = (struct nd_gbytes){(const uint8_t *)k, (uint32_t)strlen(k)};
            tags[g->ntags].value = (struct nd_gbytes){(const uint8_t *)val, (uint32_t)strlen(val)};
            g->ntags++;
        }
        if (g->ntags && nd_serf_tags_encode(tags, g->ntags, meta, sizeof(meta), &len))
            nodus_cfg_error(c, "'tags' take more than %u bytes once encoded (serf's limit)",
                            ND_GOSSIP_META_MAX);
    }
    if (nodus_cfg_str(c, "profile", &s) == 1) {
        if (strcmp(s, "fast") == 0)
            g->fast = true;
        else if (strcmp(s, "lan") != 0)
            nodus_cfg_error(c, "'profile' must be \"lan\" (memberlist's defaults) or \"fast\"");
    }
    if (nodus_cfg_int(c, "max_members", 2, 1000000, &v) == 1)
        g->max_members = (uint32_t)v;
}

#define MAX_SERVICES 64

/* service "name" { port = 9080, address = "10.0.0.5", labels = { version = "v1" } } */
static void build_service(struct nd_loader *ld, const char *name, size_t nlen, int line, int tbl)
{
    struct nd_config *cfg = ld->cfg;
    struct nd_service_conf *sc;
    struct nodus_cfg *c, *lc;
    char q[160], ctx[200];
    const char *s;
    long long v;
    int r;

    nd_cfg_quote(q, sizeof(q), name, nlen);
    snprintf(ctx, sizeof(ctx), "service \"%s\"", q);
    if (strlen(name) != nlen || !nd_cat_name_ok(name, nlen, false)) {
        nd_loader_error(ld, line, "%s: a service name is 1 to %d letters, digits, '.', '_' or '-'",
                        ctx, ND_CAT_NAME_MAX);
        return;
    }
    for (unsigned i = 0; i < cfg->nservices; i++)
        if (!strcmp(cfg->services[i].name, name)) {
            nd_loader_error(ld, line, "%s: duplicate name (first declared at line %d)", ctx,
                            cfg->services[i].line);
            return;
        }
    if (!tbl) {
        nd_loader_error(ld, line, "%s: expected a table: service \"%s\" { port = 9080 }", ctx, q);
        return;
    }
    if (cfg->nservices == MAX_SERVICES) {
        nd_loader_error(ld, line, "%s: more than %d services", ctx, MAX_SERVICES);
        return;
    }
    sc = &cfg->services[cfg->nservices++];
    sc->name = xstrdup(ld->L, name);
    sc->line = line;
    c = nd_cfg_new(ld, tbl, line, ctx);
    r = nodus_cfg_int(c, "port", 1, 65535, &v);
    if (r == 0)
        nodus_cfg_error(c, "'port' is required, e.g. port = 9080");
    else if (r == 1)
        sc->port = (uint16_t)v;
    if (nodus_cfg_str(c, "address", &s) == 1) {
        char buf[64];
        unsigned char tmp[16];
        size_t n = strlen(s);

        if (n > 2 && s[0] == '[' && s[n - 1] == ']')
            snprintf(buf, sizeof(buf), "%.*s", (int)(n - 2), s + 1);
        else
            snprintf(buf, sizeof(buf), "%s", s);
        if (n >= sizeof(buf) ||
            (inet_pton(AF_INET, buf, tmp) != 1 && inet_pton(AF_INET6, buf, tmp) != 1))
            nodus_cfg_error(c, "'address' must be an IP address such as \"10.0.0.5\" or "
                               "\"fd00::5\" (the port is 'port')");
        else if (!strcmp(buf, "0.0.0.0") || !strcmp(buf, "::"))
            nodus_cfg_error(c, "'address' must be a host address, not %s", buf);
        else
            sc->address = xstrdup(ld->L, buf);
    }
    if (nodus_cfg_table(c, "labels", &lc) == 1) {
        size_t it = 0;
        const char *k, *val;

        while ((r = nodus_cfg_next_str(lc, &it, &k, &val)) != 0) {
            if (r < 0)
                continue;
            if (sc->nlabels == ND_CAT_LABELS_MAX) {
                nodus_cfg_error(lc, "more than %d labels", ND_CAT_LABELS_MAX);
                break;
            }
            if (!nd_cat_name_ok(k, strlen(k), true) || !nd_cat_name_ok(val, strlen(val), true)) {
                nodus_cfg_error(lc,
                                "label %s: keys and values are 1 to %d letters, digits, "
                                "'.', '_', '-', '/' or ':'",
                                k, ND_CAT_NAME_MAX);
                continue;
            }
            if (!sc->labels)
                sc->labels = xcalloc(ld->L, ND_CAT_LABELS_MAX, sizeof(*sc->labels));
            sc->labels[sc->nlabels].key = xstrdup(ld->L, k);
            sc->labels[sc->nlabels].val = xstrdup(ld->L, val);
            sc->nlabels++;
        }
    }
}

/* The services become serf tags "svc:NAME" (gossip/catalog.h) appended to gossip.tags, as many
 * as fit in memberlist's 512 bytes of Meta with the node's own tags, in the order declared. When
 * some do not fit, the tags end with "svc+" = "COUNT:HASH" and gossip.svc_list holds every
 * service, gossiped in user events (docs/gossip.md, "Services beyond Meta"). */
static void service_tags(struct nd_loader *ld)
{
    struct nd_config *cfg = ld->cfg;
    struct nd_gossip_conf *g = &cfg->gossip;
    struct nd_serf_tag tags[MAX_GOSSIP_TAGS];
    static char keys[MAX_SERVICES][ND_CAT_NAME_MAX + 8], vals[MAX_SERVICES][ND_GOSSIP_META_MAX];
    const char *names[MAX_SERVICES], *values[MAX_SERVICES];
    static char parts[ND_CAT_PARTS_MAX][ND_CAT_PART_MAX + 1];
    uint8_t meta[ND_GOSSIP_META_MAX];
    unsigned n = 0, fit, own = g->ntags, nparts;
    char more[32];
    uint32_t hash;
    size_t len = 0;

    if (!cfg->nservices)
        return;
    if (!g->enabled) {
        nd_loader_error(ld, cfg->services[0].line,
                        "service \"%s\": services are advertised through gossip: add gossip { }",
                        cfg->services[0].name);
        return;
    }
    for (unsigned i = 0; i < g->ntags; i++) {
        if (!strncmp(g->tags[i].key, ND_CAT_TAG_PREFIX, strlen(ND_CAT_TAG_PREFIX)) ||
            !strcmp(g->tags[i].key, ND_CAT_MORE_TAG))
            nd_loader_error(ld, g->line,
                            "gossip: tag \"%s\": the \"" ND_CAT_TAG_PREFIX
                            "\" prefix and \"" ND_CAT_MORE_TAG "\" are for service declarations",
                            g->tags[i].key);
        tags[i].key =
            (struct nd_gbytes){(const uint8_t *)g->tags[i].key, (uint32_t)strlen(g->tags[i].key)};
        tags[i].value =
            (struct nd_gbytes){(const uint8_t *)g->tags[i].val, (uint32_t)strlen(g->tags[i].val)};
    }
    for (unsigned i = 0; i < cfg->nservices; i++) {
        const struct nd_service_conf *sc = &cfg->services[i];
        const char *lk[ND_CAT_LABELS_MAX], *lv[ND_CAT_LABELS_MAX];

        if (!sc->port)
            continue; /* reported */
        for (unsigned k = 0; k < sc->nlabels; k++) {
            lk[k] = sc->labels[k].key;
            lv[k] = sc->labels[k].val;
        }
        if (nd_cat_tag_encode(sc->address, sc->port, lk, lv, sc->nlabels, vals[n],
                              sizeof(vals[n])) < 0) {
            nd_loader_error(ld, sc->line, "service \"%s\": its tag takes more than %u bytes",
                            sc->name, ND_GOSSIP_META_MAX);
            return;
        }
        snprintf(keys[n], sizeof(keys[n]), ND_CAT_TAG_PREFIX "%s", sc->name);
        names[n] = sc->name;
        values[n] = vals[n];
        n++;
    }
    /* as many services as fit, in order */
    for (fit = 0; fit < n && own + fit < MAX_GOSSIP_TAGS; fit++) {
        tags[own + fit].key =
            (struct nd_gbytes){(const uint8_t *)keys[fit], (uint32_t)strlen(keys[fit])};
        tags[own + fit].value =
            (struct nd_gbytes){(const uint8_t *)vals[fit], (uint32_t)strlen(vals[fit])};
        if (nd_serf_tags_encode(tags, own + fit + 1, meta, sizeof(meta), &len))
            break;
    }
    if (fit < n) { /* the rest in user events: the full list, and "svc+" in the tags */
        const char *node = g->name ? g->name : cfg->node.name;

        if (!node || nd_cat_list_encode(node, names, values, n, parts, &nparts, &hash) < 0) {
            nd_loader_error(ld, cfg->services[0].line,
                            "services: %u of %u do not fit in the 512 bytes of gossip tags, and "
                            "the list does not fit in %u gossip events of %zu bytes either "
                            "(fewer services or labels, or a shorter node name)",
                            n - fit, n, ND_CAT_PARTS_MAX, ND_CAT_PART_MAX);
            return;
        }
        snprintf(more, sizeof(more), "%u:%08x", n, hash);
        if (own >= MAX_GOSSIP_TAGS) {
            nd_loader_error(ld, g->line, "gossip: %d tags leave no room for the services",
                            MAX_GOSSIP_TAGS);
            return;
        }
        if (own + fit >= MAX_GOSSIP_TAGS)
            fit = MAX_GOSSIP_TAGS - own - 1;
        for (;; fit--) {
            tags[own + fit].key = (struct nd_gbytes){(const uint8_t *)ND_CAT_MORE_TAG,
                                                     (uint32_t)strlen(ND_CAT_MORE_TAG)};
            tags[own + fit].value =
                (struct nd_gbytes){(const uint8_t *)more, (uint32_t)strlen(more)};
            if (!nd_serf_tags_encode(tags, own + fit + 1, meta, sizeof(meta), &len))
                break;
            if (fit == 0) {
                nd_loader_error(ld, g->line,
                                "gossip: the node's own tags leave no room in the 512 bytes of "
                                "Meta to advertise its services");
                return;
            }
        }
        g->svc_list = xcalloc(ld->L, n, sizeof(*g->svc_list));
        for (unsigned i = 0; i < n; i++) {
            g->svc_list[i].key = xstrdup(ld->L, names[i]);
            g->svc_list[i].val = xstrdup(ld->L, values[i]);
            g->nsvc_list++;
        }
    }
    if (!g->tags)
        g->tags = xcalloc(ld->L, MAX_GOSSIP_TAGS, sizeof(*g->tags));
    for (unsigned i = 0; i < fit; i++, g->ntags++) {
        g->tags[g->ntags].key = xstrdup(ld->L, keys[i]);
        g->tags[g->ntags].val = xstrdup(ld->L, vals[i]);
    }
    if (g->svc_list) {
        g->tags[g->ntags].key = xstrdup(ld->L, ND_CAT_MORE_TAG);
        g->tags[g->ntags].val = xstrdup(ld->L, more);
        g->ntags++;
    }
}

/* What is wrong with an endpoint's address, or NULL. */
static const char *endpoint_addr(const char *s, struct nd_addr *a)
{
    if (nd_parse_addr(s, a) < 0)
        return "is not an address such as \"127.0.0.1:9001\" or \"[::1]:9001\"";
    if (addr_unspecified(a))
        return "is not a host address (0.0.0.0 and :: are for listening)";
    return NULL;
}

static void build_endpoint(struct nd_loader *ld, struct nodus_cfg *ec, size_t i,
                           struct nd_endpoint_conf *ep)
{
    lua_State *L = ld->L;
    struct nodus_cfg *e, *lc;
    const char *s, *why;
    char q[96];
    long long v;
    int t = nd_cfg_push_at(ec, i);

    ep->weight = 1;
    if (t == LUA_TSTRING) {
        size_t len;

        s = lua_tolstring(L, -1, &len);
        lua_pop(L, 1);
        if (strlen(s) != len)
            nd_cfg_error_at(ec, i, "must not contain NUL bytes");
        else if ((why = endpoint_addr(s, &ep->addr)))
            nd_cfg_error_at(ec, i, "\"%s\" %s", nd_cfg_quote(q, sizeof(q), s, len), why);
        return;
    }
    lua_pop(L, 1);
    if (t != LUA_TTABLE) {
        nd_cfg_error_at(ec, i,
                        "must be an address (\"127.0.0.1:9001\") or a table "
                        "{ address = ..., weight = ..., labels = { ... } }");
        return;
    }
    if (nodus_cfg_at(ec, i, &e) != 1)
        return;
    switch (nodus_cfg_str(e, "address", &s)) {
    case 0:
        nodus_cfg_error(e, "'address' is required");
        break;
    case 1:
        if ((why = endpoint_addr(s, &ep->addr)))
            nodus_cfg_error(e, "'address' \"%s\" %s", nd_cfg_quote(q, sizeof(q), s, strlen(s)),
                            why);
        break;
    }
    if (nodus_cfg_int(e, "weight", 1, 1000000, &v) == 1)
        ep->weight = (uint32_t)v;
    if (nodus_cfg_table(e, "labels", &lc) == 1) {
        size_t it = 0;
        const char *k, *val;
        int r;

        while ((r = nodus_cfg_next_str(lc, &it, &k, &val)) != 0) {
            if (r < 0)
                continue;
            if (ep->nlabels == MAX_LABELS) {
                nodus_cfg_error(lc, "more than %d labels", MAX_LABELS);
                break;
            }
            if (!ep->labels)
                ep->labels = xcalloc(L, MAX_LABELS, sizeof(*ep->labels));
            ep->labels[ep->nlabels].key = xstrdup(L, k);
            ep->labels[ep->nlabels].val = xstrdup(L, val);
            ep->nlabels++;
        }
    }
}

static void read_cluster_tls(struct nd_loader *ld, struct nodus_cfg *c, struct nd_cluster_conf *cc);

static void build_cluster(struct nd_loader *ld, const char *name, size_t nlen, int line, int tbl,
                          unsigned *total_eps)
{
    static const char *const lbs[] = {"round_robin", "least_request", "random", NULL};
    struct nd_config *cfg = ld->cfg;
    struct nd_cluster_conf *cc, *dup;
    struct nodus_cfg *c, *ec, *lim;
    char q[160], ctx[200];
    const char *s;
    long long v;
    int r;

    nd_cfg_quote(q, sizeof(q), name, nlen);
    snprintf(ctx, sizeof(ctx), "cluster \"%s\"", q);
    if (!valid_name(name, nlen)) {
        nd_loader_error(ld, line, "%s: a name is 1 to %d letters, digits, '.', '_' or '-'", ctx,
                        MAX_NAME);
        return;
    }
    if ((dup = nd_loader_cluster(ld, name))) {
        nd_loader_error(ld, line, "%s: duplicate name (first declared at line %d)", ctx, dup->line);
        return;
    }
    if (!tbl) {
        nd_loader_error(ld, line, "%s: expected a table: cluster \"%s\" { endpoints = ... }", ctx,
                        q);
        return;
    }
    if (cfg->nclusters == MAX_CLUSTERS) {
        nd_loader_error(ld, line, "%s: more than %d clusters", ctx, MAX_CLUSTERS);
        return;
    }
    cc = &cfg->clusters[cfg->nclusters];
    lua_rawgeti(ld->L, LUA_REGISTRYINDEX, ld->clusters_ref);
    lua_pushlstring(ld->L, name, nlen);
    lua_pushinteger(ld->L, cfg->nclusters);
    lua_rawset(ld->L, -3);
    lua_pop(ld->L, 1);
    cc->name = xstrdup(ld->L, name);
    cc->line = line;
    cc->id = cfg->nclusters++;
    cc->lb = ND_LB_ROUND_ROBIN;
    cc->connect_timeout_ms = 1000;
    cc->idle_timeout_ms = 60000;
    cc->max_connections = cc->max_pending = cc->max_requests = 1024;

    c = nd_cfg_new(ld, tbl, line, ctx);
    if (nodus_cfg_str(c, "discover", &s) == 1) {
        if (!nd_cat_name_ok(s, strlen(s), false))
            nodus_cfg_error(c,
                            "'discover' must be a service name of 1 to %d letters, digits, "
                            "'.', '_' or '-'",
                            ND_CAT_NAME_MAX);
        else if (!cfg->gossip.enabled)
            nodus_cfg_error(c, "'discover' needs gossip { } (the service catalog comes from it)");
        else
            cc->discover = xstrdup(ld->L, s);
    }
    r = nodus_cfg_table(c, "endpoints", &ec);
    if (r == 0 && !cc->discover) {
        nodus_cfg_error(c, "'endpoints' is required, e.g. endpoints = { \"127.0.0.1:9001\" }");
    } else if (r == 1 && cc->discover) {
        nodus_cfg_error(c, "'endpoints' and 'discover' are mutually exclusive");
    } else if (r == 1) {
        size_t n = nodus_cfg_len(ec);

        if (n == 0)
            nodus_cfg_error(c, "'endpoints' must not be empty");
        if (n > MAX_ENDPOINTS - *total_eps) {
            nodus_cfg_error(c, "too many endpoints (at most %d in all clusters)", MAX_ENDPOINTS);
            n = MAX_ENDPOINTS - *total_eps;
        }
        *total_eps += (unsigned)n;
        cc->eps = xcalloc(ld->L, n, sizeof(*cc->eps));
        for (size_t i = 0; i < n; i++)
            build_endpoint(ld, ec, i, &cc->eps[cc->neps++]);
    }
    if (nodus_cfg_str(c, "lb", &s) == 1) {
        int i;

        for (i = 0; lbs[i] && strcmp(lbs[i], s) != 0; i++)
            ;
        if (lbs[i])
            cc->lb = (enum nd_lb)i;
        else
            nodus_cfg_error(c, "'lb' must be \"round_robin\", \"least_request\" or \"random\"");
    }
    dur32(c, "connect_timeout", &cc->connect_timeout_ms, false);
    dur32(c, "idle_timeout", &cc->idle_timeout_ms, false);
    read_cluster_tls(ld, c, cc);
    if (nodus_cfg_table(c, "limits", &lim) == 1) {
        if (nodus_cfg_int(lim, "max_connections", 1, 1000000000, &v) == 1)
            cc->max_connections = (uint32_t)v;
        if (nodus_cfg_int(lim, "max_pending", 1, 1000000000, &v) == 1)
            cc->max_pending = (uint32_t)v;
        if (nodus_cfg_int(lim, "max_requests", 1, 1000000000, &v) == 1)
            cc->max_requests = (uint32_t)v;
    }
}

/* ---- upstream TLS -------------------------------------------------------------------------- */

const struct nd_upstream_tls_provider *nd_upstream_tls;

void nd_upstream_tls_register(const struct nd_upstream_tls_provider *p)
{
    nd_upstream_tls = p;
}

#define MAX_EXPECT 64

/* tls = "mutual" | "disable", sni = "...", expect = { ... } */
static void read_cluster_tls(struct nd_loader *ld, struct nodus_cfg *c, struct nd_cluster_conf *cc)
{
    struct nodus_cfg *ex;
    const char *s;
    uint64_t ms;
    bool hs = false;
    int r;

    if (nodus_cfg_str(c, "tls", &s) == 1) {
        if (!strcmp(s, "mutual"))
            cc->tls = true;
        else if (strcmp(s, "disable") != 0)
            nodus_cfg_error(c, "'tls' must be \"mutual\" or \"disable\"");
    }
    if (nodus_cfg_str(c, "sni", &s) == 1) {
        if (!*s || strlen(s) > 253)
            nodus_cfg_error(c, "'sni' must be a host name of 1 to 253 characters");
        else
            cc->tls_sni = xstrdup(ld->L, s);
    }
    r = nodus_cfg_table(c, "expect", &ex);
    if (r == 1) {
        size_t n = nodus_cfg_len(ex);

        if (n == 0 || n > MAX_EXPECT) {
            nodus_cfg_error(c, "'expect' must list 1 to %d SPIFFE ids", MAX_EXPECT);
        } else {
            cc->tls_expect = xcalloc(ld->L, n, sizeof(char *));
            for (size_t i = 0; i < n; i++) {
                if (nodus_cfg_str_at(ex, i, &s) != 1 || strncmp(s, "spiffe://", 9) != 0) {
                    nodus_cfg_error(c, "expect[%zu] must be a SPIFFE id (\"spiffe://...\")", i + 1);
                    continue;
                }
                cc->tls_expect[cc->tls_nexpect++] = xstrdup(ld->L, s);
            }
        }
    }
    cc->tls_handshake_timeout_ms = 10000;
    if (nodus_cfg_duration(c, "handshake_timeout", &ms) == 1) {
        if (ms == 0 || ms > 3600000)
            nodus_cfg_error(c, "'handshake_timeout' must be longer than 0 and at most 1h");
        else
            cc->tls_handshake_timeout_ms = (uint32_t)ms;
        hs = true;
    }
    if (!cc->tls && (cc->tls_sni || r == 1 || hs))
        nodus_cfg_error(c, "'sni', 'expect' and 'handshake_timeout' need tls = \"mutual\"");
}

/* After the whole configuration is read: each TLS cluster gets its layer from the provider. */
static void build_cluster_tls(struct nd_loader *ld)
{
    struct nd_config *cfg = ld->cfg;
    char err[256];

    for (unsigned i = 0; i < cfg->nclusters; i++) {
        struct nd_cluster_conf *cc = &cfg->clusters[i];

        if (!cc->tls)
            continue;
        if (!nd_upstream_tls) {
            nd_loader_error(ld, cc->line,
                            "cluster \"%s\": tls = \"mutual\" needs the mtls plugin, "
                            "which this nodus was built without",
                            cc->name);
            continue;
        }
        err[0] = '\0';
        cc->tls_conf = nd_upstream_tls->configure(cc, err, sizeof(err));
        if (!cc->tls_conf)
            nd_loader_error(ld, cc->line, "cluster \"%s\": %s", cc->name,
                            err[0] ? err : "TLS cannot be set up");
    }
}

/* "router", "router or troute", "a, b or c": the terminal plugins registered. */
struct names {
    struct nd_sbuf b;
    unsigned n, total;
};

static void count_terminal(const struct nodus_plugin *p, void *arg)
{
    struct names *nm = arg;

    if (p->flags & NODUS_PLUGIN_TERMINAL)
        nm->total++;
}

static void list_terminal(const struct nodus_plugin *p, void *arg)
{
    struct names *nm = arg;

    if (!(p->flags & NODUS_PLUGIN_TERMINAL))
        return;
    nm->n++;
    if (nm->n > 1)
        nd_sbuf_adds(&nm->b, nm->n == nm->total ? " or " : ", ");
    nd_sbuf_adds(&nm->b, p->name);
}

static void chain_error_end(struct nd_loader *ld, int line, const char *ctx)
{
    struct names nm = {0};

    nd_plugin_each(count_terminal, &nm);
    nd_plugin_each(list_terminal, &nm);
    nd_loader_error(ld, line, "%s: the plugin chain must end with %s", ctx,
                    nm.b.p ? nm.b.p : "a terminal plugin (none is registered)");
    nd_sbuf_free(&nm.b);
}

/* The chain of a listener: each element a plugin marker, configured in order. */
static void build_chain(struct nd_loader *ld, struct nd_listener_conf *lc, struct nodus_cfg *c,
                        const char *ctx)
{
    lua_State *L = ld->L;
    struct nodus_cfg *pc;
    bool bad = false, seen_http = false;
    size_t n = 0, off = 0;
    int r = nodus_cfg_table(c, "plugins", &pc);

    if (r < 0)
        return;
    if (r == 1) {
        n = nodus_cfg_len(pc);
        if (n > MAX_CHAIN) {
            nodus_cfg_error(c, "'plugins' has more than %d plugins", MAX_CHAIN);
            n = MAX_CHAIN;
        }
    }
    lc->plugins = xcalloc(L, n, sizeof(*lc->plugins));
    ld->chain = lc; /* for nodus_cfg_route_config() and nodus_cfg_require_route_config() */
    for (size_t i = 0; i < n; i++) {
        int t = nd_cfg_push_at(pc, i);
        struct marker *m = luaL_testudata(L, -1, MARKER_MT);
        struct nd_plugin_inst *pi;
        struct nodus_cfg *ic;
        char ictx[300];
        unsigned before;

        if (!m || m->bad) {
            if (!m)
                nd_cfg_error_at(pc, i, "expected a plugin such as router { ... }, not %s",
                                t == LUA_TNIL ? "nil" : luaL_typename(L, -1));
            lua_pop(L, 1);
            bad = true;
            continue;
        }
        lua_getiuservalue(L, -1, 1);
        snprintf(ictx, sizeof(ictx), "%s: plugins[%zu] (%s)", ctx, i + 1, m->p->name);
        ic = nd_cfg_new(ld, -1, m->line, ictx);
        ic->listener = lc->name;
        lua_pop(L, 2);
        pi = &lc->plugins[lc->nplugins++];
        pi->p = m->p;
        pi->line = m->line;
        if (m->p->configure) {
            before = ld->nerrs_total;
            ld->configuring = ic;
            pi->conf = m->p->configure(ic);
            ld->configuring = NULL;
            if (!pi->conf && ld->nerrs_total == before)
                nodus_cfg_error(ic, "the plugin refused its configuration");
        }
    }
    ld->chain = NULL;
    if (bad)
        return;
    for (unsigned i = 0; i < lc->nplugins; i++) {
        const struct nodus_plugin *p = lc->plugins[i].p;
        int line = lc->plugins[i].line;

        if (lc->proto == ND_PROTO_TCP) {
            if (!(p->flags & NODUS_PLUGIN_STREAM))
                nd_loader_error(ld, line,
                                "%s: plugins[%u] (%s): a tcp listener takes only stream plugins",
                                ctx, i + 1, p->name);
            continue;
        }
        if (p->flags & NODUS_PLUGIN_HTTP)
            seen_http = true;
        else if (seen_http)
            nd_loader_error(ld, line,
                            "%s: plugins[%u] (%s): stream plugins must come before HTTP plugins",
                            ctx, i + 1, p->name);
        if ((p->flags & NODUS_PLUGIN_TERMINAL) && i + 1 < lc->nplugins)
            nd_loader_error(ld, line, "%s: plugins[%u] (%s): %s ends the chain: it must be last",
                            ctx, i + 1, p->name, p->name);
    }
    if (lc->proto == ND_PROTO_HTTP &&
        (!lc->nplugins || !(lc->plugins[lc->nplugins - 1].p->flags & NODUS_PLUGIN_TERMINAL)))
        chain_error_end(ld, lc->line, ctx);
    /* a plugin that acts through per-route configurations only, and got none (when the terminal
     * read its routes: otherwise its own errors say why) */
    if (lc->nplugins && lc->plugins[lc->nplugins - 1].conf)
        for (unsigned i = 0; i < lc->nplugins; i++)
            if (lc->plugins[i].require_routes && !lc->plugins[i].route_confs)
                nd_loader_error(ld, lc->plugins[i].line, "%s: plugins[%u] (%s): %s", ctx, i + 1,
                                lc->plugins[i].p->name, lc->plugins[i].require_routes);
    for (unsigned i = 0; i < lc->nplugins; i++) {
        lc->plugins[i].txn_off = off;
        off += (lc->plugins[i].p->txn_size + 15) & ~(size_t)15;
    }
    lc->txn_size = off;
    if (off > ND_TXN_SCRATCH)
        nd_loader_error(ld, lc->line,
                        "%s: its plugins need %zu bytes of state per request; at most %u", ctx, off,
                        ND_TXN_SCRATCH);
    for (unsigned i = 0, layers = 0; i < lc->nplugins; i++)
        if (lc->plugins[i].p->stream && ++layers > ND_TXN_MAX_LAYERS) {
            nd_loader_error(ld, lc->line, "%s: more than %u stream plugins", ctx,
                            ND_TXN_MAX_LAYERS);
            break;
        }
}

static void read_http_keys(struct nodus_cfg *c, struct nd_listener_conf *lc);

static void build_listener(struct nd_loader *ld, const char *name, size_t nlen, int line, int tbl)
{
    static const char *const http_only[] = {
        "max_request_headers_kb", "max_uri", "max_headers", "request_header_timeout", "timeout",
        "max_request_body",       "xff",     NULL};
    struct nd_config *cfg = ld->cfg;
    struct nd_listener_conf *lc;
    struct nodus_cfg *c;
    char q[160], ctx[200];
    const char *s;
    int r;

    nd_cfg_quote(q, sizeof(q), name, nlen);
    snprintf(ctx, sizeof(ctx), "listener \"%s\"", q);
    if (!valid_name(name, nlen)) {
        nd_loader_error(ld, line, "%s: a name is 1 to %d letters, digits, '.', '_' or '-'", ctx,
                        MAX_NAME);
        return;
    }
    for (unsigned i = 0; i < cfg->nlisteners; i++) {
        if (strcmp(cfg->listeners[i].name, name) == 0) {
            nd_loader_error(ld, line, "%s: duplicate name (first declared at line %d)", ctx,
                            cfg->listeners[i].line);
            return;
        }
    }
    if (!tbl) {
        nd_loader_error(ld, line, "%s: expected a table: listener \"%s\" { listen = ... }", ctx, q);
        return;
    }
    if (cfg->nlisteners == MAX_LISTENERS) {
        nd_loader_error(ld, line, "%s: more than %d listeners", ctx, MAX_LISTENERS);
        return;
    }
    lc = &cfg->listeners[cfg->nlisteners];
    lc->name = xstrdup(ld->L, name);
    lc->line = line;
    lc->id = cfg->nlisteners++;
    lc->proto = ND_PROTO_HTTP;
    lc->limits.max_head = 8 * 1024;
    lc->limits.max_uri = 4096;
    lc->limits.max_headers = 100;
    lc->header_timeout_ms = 10000;
    lc->idle_timeout_ms = 60000;
    lc->request_timeout_ms = 15000;
    lc->max_body = 0;
    lc->xff = true;

    c = nd_cfg_new(ld, tbl, line, ctx);
    r = nodus_cfg_str(c, "listen", &s);
    if (r == 0)
        nodus_cfg_error(c, "'listen' is required, e.g. listen = \"0.0.0.0:8080\"");
    else if (r == 1 && nd_parse_addr(s, &lc->addr) < 0)
        nodus_cfg_error(c, "'listen' must be an address such as \"0.0.0.0:8080\", \"[::]:8080\" "
                           "or \":8080\"");
    if (nodus_cfg_str(c, "protocol", &s) == 1) {
        if (strcmp(s, "tcp") == 0)
            lc->proto = ND_PROTO_TCP;
        else if (strcmp(s, "http") != 0)
            nodus_cfg_error(c, "'protocol' must be \"http\" or \"tcp\"");
    }
    r = nodus_cfg_str(c, "cluster", &s);
    if (lc->proto == ND_PROTO_TCP) {
        if (r == 0)
            nodus_cfg_error(c, "'cluster' is required with protocol = \"tcp\"");
        else if (r == 1 && !(lc->tcp_cluster = nd_loader_cluster(ld, s)))
            nodus_cfg_error(c, "unknown cluster '%s'", nd_cfg_quote(q, sizeof(q), s, strlen(s)));
    } else if (r == 1) {
        nodus_cfg_error(c, "'cluster' applies only to protocol = \"tcp\" (HTTP listeners route "
                           "with their terminal plugin)");
    }
    if (lc->proto == ND_PROTO_TCP) {
        for (const char *const *k = http_only; *k; k++) {
            if (nd_cfg_push(c, *k) != LUA_TNIL)
                nodus_cfg_error(c, "'%s' applies only to protocol = \"http\"", *k);
            lua_pop(ld->L, 1);
        }
    } else {
        read_http_keys(c, lc);
    }
    dur32(c, "idle_timeout", &lc->idle_timeout_ms, false);
    build_chain(ld, lc, c, ctx);
}

static void read_http_keys(struct nodus_cfg *c, struct nd_listener_conf *lc)
{
    long long v;
    bool b;

    if (nodus_cfg_int(c, "max_request_headers_kb", 1, 1024, &v) == 1)
        lc->limits.max_head = (uint32_t)v * 1024;
    if (nodus_cfg_int(c, "max_uri", 16, 1024 * 1024, &v) == 1) {
        if ((uint64_t)v > lc->limits.max_head)
            nodus_cfg_error(c, "'max_uri' (%lld) cannot exceed the request head size (%u bytes)", v,
                            (unsigned)lc->limits.max_head);
        else
            lc->limits.max_uri = (uint32_t)v;
    }
    if (nodus_cfg_int(c, "max_headers", 1, 10000, &v) == 1)
        lc->limits.max_headers = (uint32_t)v;
    dur32(c, "request_header_timeout", &lc->header_timeout_ms, false);
    dur32(c, "timeout", &lc->request_timeout_ms, false);
    if (nodus_cfg_int(c, "max_request_body", 0, 1ll << 53, &v) == 1)
        lc->max_body = (uint64_t)v;
    if (nodus_cfg_bool(c, "xff", &b) == 1)
        lc->xff = b;
}

struct nd_cluster_conf *nd_loader_cluster(struct nd_loader *ld, const char *name)
{
    lua_State *L = ld->L;
    lua_Integer i = -1;

    if (ld->clusters_ref == LUA_NOREF)
        return nd_config_cluster(ld->cfg, name);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ld->clusters_ref);
    lua_pushstring(L, name);
    if (lua_rawget(L, -2) == LUA_TNUMBER)
        i = lua_tointeger(L, -1);
    lua_pop(L, 2);
    return i >= 0 && i < (lua_Integer)ld->cfg->nclusters ? &ld->cfg->clusters[i] : NULL;
}

/* Two sockets cannot listen on one address. */
static void check_addresses(struct nd_loader *ld)
{
    struct nd_config *cfg = ld->cfg;

    for (unsigned i = 0; i < cfg->nlisteners; i++) {
        struct nd_listener_conf *a = &cfg->listeners[i];

        if (!a->addr.text[0])
            continue;
        for (unsigned j = 0; j < i; j++) {
            if (strcmp(cfg->listeners[j].addr.text, a->addr.text) == 0) {
                nd_loader_error(ld, a->line,
                                "listener \"%s\": %s is already the address of listener \"%s\"",
                                a->name, a->addr.text, cfg->listeners[j].name);
                break;
            }
        }
        if (cfg->admin.enabled && strcmp(cfg->admin.addr.text, a->addr.text) == 0)
            nd_loader_error(ld, a->line,
                            "listener \"%s\": %s is already the address of the admin listener",
                            a->name, a->addr.text);
    }
}

struct decl {
    int kind, line, tbl; /* tbl: stack index, or 0 */
    const char *name;
    size_t nlen;
};

/* Pushes declaration i's name and table; fills d. */
static void get_decl(lua_State *L, int decls, lua_Integer i, struct decl *d)
{
    lua_rawgeti(L, decls, i);
    lua_rawgeti(L, -1, 1);
    d->kind = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_rawgeti(L, -1, 3);
    d->line = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_rawgeti(L, -1, 2);
    d->name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &d->nlen) : NULL;
    d->tbl = lua_rawgeti(L, -2, 4) == LUA_TTABLE ? lua_gettop(L) : 0;
}

static int build(lua_State *L)
{
    struct nd_loader *ld = lua_touserdata(L, 1);
    struct nd_config *cfg = ld->cfg;
    int decls, top, node_line = 0, admin_line = 0, identity_line = 0, gossip_line = 0,
                    dpdk_line = 0, metrics_line = 0;
    unsigned ncl = 0, nli = 0, nsv = 0, total_eps = 0;
    lua_Integer n;
    struct decl d;

    lua_newtable(L);
    ld->clusters_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ld->decls_ref);
    decls = lua_gettop(L);
    n = (lua_Integer)lua_rawlen(L, decls);
    top = lua_gettop(L);
    for (lua_Integer i = 1; i <= n; i++) {
        get_decl(L, decls, i, &d);
        ncl += d.kind == DECL_CLUSTER;
        nli += d.kind == DECL_LISTENER;
        nsv += d.kind == DECL_SERVICE;
        lua_settop(L, top);
    }
    if (ncl > MAX_CLUSTERS)
        ncl = MAX_CLUSTERS;
    if (nli > MAX_LISTENERS)
        nli = MAX_LISTENERS;
    cfg->clusters = xcalloc(L, ncl, sizeof(*cfg->clusters));
    cfg->listeners = xcalloc(L, nli, sizeof(*cfg->listeners));
    if (nsv > MAX_SERVICES)
        nsv = MAX_SERVICES;
    cfg->services = xcalloc(L, nsv, sizeof(*cfg->services));

    for (int pass = DECL_NODE; pass <= DECL_METRICS; pass++) {
        for (lua_Integer i = 1; i <= n; i++) {
            get_decl(L, decls, i, &d);
            if (d.kind != pass) {
                lua_settop(L, top);
                continue;
            }
            switch (d.kind) {
            case DECL_NODE:
            case DECL_ADMIN:
            case DECL_IDENTITY:
            case DECL_GOSSIP:
            case DECL_DPDK:
            case DECL_METRICS: {
                int *seen = d.kind == DECL_NODE       ? &node_line
                            : d.kind == DECL_ADMIN    ? &admin_line
                            : d.kind == DECL_IDENTITY ? &identity_line
                            : d.kind == DECL_GOSSIP   ? &gossip_line
                            : d.kind == DECL_METRICS  ? &metrics_line
                                                      : &dpdk_line;

                if (*seen)
                    nd_loader_error(ld, d.line, "%s: declared twice (first at line %d)",
                                    kind_name(d.kind), *seen);
                else if (d.kind == DECL_NODE)
                    build_node(ld, d.tbl, d.line);
                else if (d.kind == DECL_ADMIN)
                    build_admin(ld, d.tbl, d.line);
                else if (d.kind == DECL_DPDK)
                    build_dpdk(ld, d.tbl, d.line);
                else if (d.kind == DECL_IDENTITY)
                    build_identity(ld, d.tbl, d.line);
                else if (d.kind == DECL_METRICS)
                    build_metrics(ld, d.tbl, d.line);
                else
                    build_gossip(ld, d.tbl, d.line);
                *seen = d.line;
                break;
            }
            case DECL_CLUSTER:
                build_cluster(ld, d.name, d.nlen, d.line, d.tbl, &total_eps);
                break;
            case DECL_LISTENER:
                build_listener(ld, d.name, d.nlen, d.line, d.tbl);
                break;
            case DECL_SERVICE:
                build_service(ld, d.name, d.nlen, d.line, d.tbl);
                break;
            }
            lua_settop(L, top);
        }
    }
    check_addresses(ld);
    check_dpdk(ld, node_line);
    service_tags(ld);
    for (struct nodus_cfg *c = ld->cfgs; c; c = c->next)
        nd_cfg_check_unknown(c);
    return 0;
}

/* ---- entry points --------------------------------------------------------------------------- */

static void set_defaults(struct nd_config *cfg)
{
    char host[256];
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    if (gethostname(host, sizeof(host)) < 0 || !host[0])
        strcpy(host, "nodus");
    host[sizeof(host) - 1] = '\0';
    cfg->node.name = strdup(host);
    cfg->node.workers = ncpu < 1 ? 1 : ncpu > ND_MAX_WORKERS ? ND_MAX_WORKERS : (unsigned)ncpu;
    cfg->node.io = ND_IO_POSIX;
    cfg->node.drain_timeout_ms = 5000;
    cfg->node.log_level = NODUS_LOG_INFO;
    cfg->node.max_connections = nd_default_max_connections();
    cfg->metrics.principals = ND_METRICS_PRINCIPALS_DEFAULT;
}

uint32_t nd_default_max_connections(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return 100000;
    return rl.rlim_cur > 512 ? (uint32_t)((rl.rlim_cur - 256) / 2) : 128;
}

static struct nd_config *load(const char *name, char *dir, const char *text, size_t len,
                              struct nd_errors *errs)
{
    struct nd_loader *ld = calloc(1, sizeof(*ld));
    struct nd_config *cfg = calloc(1, sizeof(*cfg));
    lua_State *L;
    size_t cl;

    if (!ld || !cfg || !(cfg->file = strdup(name))) {
        free(ld);
        free(cfg ? cfg->file : NULL);
        free(cfg);
        free(dir);
        errs_push(errs, strdup("out of memory"));
        return NULL;
    }
    ld->file = name;
    ld->dir = dir;
    ld->cfg = cfg;
    ld->lim = cur_limits;
    if (!ld->lim.max_instructions)
        ld->lim.max_instructions = DEFAULT_INSTRUCTIONS;
    if (!ld->lim.max_memory)
        ld->lim.max_memory = DEFAULT_MEMORY;
    if (!ld->lim.max_time_ms)
        ld->lim.max_time_ms = DEFAULT_TIME_MS;
    ld->decls_ref = ld->env_ref = ld->clusters_ref = LUA_NOREF;
    /* how Lua shows the chunk name "=file" (luaO_chunkid) */
    cl = strlen(name);
    if (cl + 1 <= LUA_IDSIZE) {
        memcpy(ld->chunkid, name, cl + 1);
    } else {
        memcpy(ld->chunkid, name, LUA_IDSIZE - 1);
        ld->chunkid[LUA_IDSIZE - 1] = '\0';
    }
    set_defaults(cfg);
    if (!cfg->node.name) {
        nd_loader_error(ld, 0, "out of memory");
        goto out;
    }

    L = lua_newstate(l_alloc, ld);
    if (!L) {
        nd_loader_error(ld, 0, "out of memory");
        goto out;
    }
    ld->L = L;
    lua_atpanic(L, panic);
    ld->mem_capped = true;
    lua_pushcfunction(L, setup);
    lua_pushlightuserdata(L, ld);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        nd_loader_error(ld, 0, "cannot set the Lua sandbox up: %s",
                        lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
    } else if (run_script(ld, text, len) == LUA_OK) {
        ld->mem_capped = false;
        lua_pushcfunction(L, build);
        lua_pushlightuserdata(L, ld);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK)
            nd_loader_error(ld, 0, "%s",
                            lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error");
    }
    ld->mem_capped = false;
    nd_cfg_free_all(ld);
    lua_close(L);
    if (!ld->nerrs_total)
        build_cluster_tls(ld);
out:
    if (ld->nerrs_total) {
        nd_config_free(cfg);
        cfg = NULL;
    }
    export_errors(ld, errs);
    free(ld->dir);
    free(ld);
    return cfg;
}

struct nd_config *nd_config_load_string(const char *name, const char *text, size_t len,
                                        struct nd_errors *errs)
{
    return load(name ? name : "config", NULL, text ? text : "", text ? len : 0, errs);
}

struct nd_config *nd_config_load(const char *file, struct nd_errors *errs)
{
    struct nd_sbuf msg = {0};
    struct nd_config *cfg = NULL;
    char *text = NULL, *dir = NULL, *slash;
    size_t len = 0;
    struct stat st;
    FILE *f = fopen(file, "rb");

    if (!f) {
        nd_sbuf_printf(&msg, "%s: cannot open: %s", file, strerror(errno));
        goto fail;
    }
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        nd_sbuf_printf(&msg, "%s: not a regular file", file);
        goto fail;
    }
    if ((size_t)st.st_size > MAX_FILE_SIZE) {
        nd_sbuf_printf(&msg, "%s: too large (more than %zu MiB)", file, MAX_FILE_SIZE >> 20);
        goto fail;
    }
    text = malloc((size_t)st.st_size + 1);
    if (!text) {
        nd_sbuf_printf(&msg, "%s: out of memory", file);
        goto fail;
    }
    len = fread(text, 1, (size_t)st.st_size, f);
    if (ferror(f)) {
        nd_sbuf_printf(&msg, "%s: cannot read: %s", file, strerror(errno));
        goto fail;
    }
    fclose(f);
    f = NULL;
    text[len] = '\0';
    dir = strdup(file);
    if (dir && (slash = strrchr(dir, '/'))) {
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    } else if (dir) {
        strcpy(dir, ".");
    }
    cfg = load(file, dir, text, len, errs);
    free(text);
    return cfg;
fail:
    if (f)
        fclose(f);
    free(text);
    errs_push(errs, msg.p ? msg.p : strdup("out of memory"));
    return NULL;
}

void nd_config_free(struct nd_config *cfg)
{
    if (!cfg)
        return;
    for (unsigned i = 0; i < cfg->nlisteners; i++) {
        struct nd_listener_conf *lc = &cfg->listeners[i];

        while (lc->route_confs) {
            struct nodus_route_config *rc = lc->route_confs;

            lc->route_confs = rc->next;
            for (unsigned j = 0; j < rc->n; j++) {
                const struct nodus_plugin *p = lc->plugins[rc->e[j].inst].p;

                if (rc->e[j].own && p->destroy_route)
                    p->destroy_route(rc->e[j].owner, rc->e[j].conf);
            }
            free(rc);
        }
        for (unsigned j = 0; j < lc->nplugins; j++) {
            if (lc->plugins[j].conf && lc->plugins[j].p->destroy)
                lc->plugins[j].p->destroy(lc->plugins[j].conf);
            free(lc->plugins[j].require_routes);
        }
        free(lc->plugins);
        free(lc->name);
    }
    free(cfg->listeners);
    for (unsigned i = 0; i < cfg->nclusters; i++) {
        struct nd_cluster_conf *cc = &cfg->clusters[i];

        for (unsigned j = 0; j < cc->neps; j++) {
            for (unsigned k = 0; k < cc->eps[j].nlabels; k++) {
                free(cc->eps[j].labels[k].key);
                free(cc->eps[j].labels[k].val);
            }
            free(cc->eps[j].labels);
        }
        free(cc->eps);
        free(cc->name);
        if (cc->tls_conf && nd_upstream_tls)
            nd_upstream_tls->destroy(cc->tls_conf);
        for (unsigned j = 0; j < cc->tls_nexpect; j++)
            free(cc->tls_expect[j]);
        free(cc->tls_expect);
        free(cc->tls_sni);
        free(cc->discover);
    }
    free(cfg->clusters);
    for (unsigned i = 0; i < cfg->nservices; i++) {
        struct nd_service_conf *sc = &cfg->services[i];

        for (unsigned k = 0; k < sc->nlabels; k++) {
            free(sc->labels[k].key);
            free(sc->labels[k].val);
        }
        free(sc->labels);
        free(sc->address);
        free(sc->name);
    }
    free(cfg->services);
    for (unsigned i = 0; i < cfg->node.nplugin_paths; i++)
        free(cfg->node.plugin_paths[i]);
    free(cfg->node.plugin_paths);
    for (unsigned i = 0; i < cfg->gossip.ntags; i++) {
        free(cfg->gossip.tags[i].key);
        free(cfg->gossip.tags[i].val);
    }
    free(cfg->gossip.tags);
    for (unsigned i = 0; i < cfg->gossip.nsvc_list; i++) {
        free(cfg->gossip.svc_list[i].key);
        free(cfg->gossip.svc_list[i].val);
    }
    free(cfg->gossip.svc_list);
    for (unsigned i = 0; i < cfg->gossip.nkeyring; i++) {
        memset(cfg->gossip.keyring[i], 0, strlen(cfg->gossip.keyring[i]));
        free(cfg->gossip.keyring[i]);
    }
    free(cfg->gossip.keyring);
    free(cfg->gossip.join);
    free(cfg->gossip.name);
    free(cfg->node.name);
    free(cfg->node.access_log);
    free(cfg->identity.ca);
    free(cfg->identity.cert);
    free(cfg->identity.key);
    free(cfg->identity.ca_dir);
    free(cfg->identity.id);
    free(cfg->dpdk.net);
    free(cfg->file);
    free(cfg);
}

struct nd_cluster_conf *nd_config_cluster(const struct nd_config *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (unsigned i = 0; i < cfg->nclusters; i++)
        if (strcmp(cfg->clusters[i].name, name) == 0)
            return &cfg->clusters[i];
    return NULL;
}
