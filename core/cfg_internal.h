/*
 * Private to the configuration loader (config.c) and the nodus_cfg_* accessors (cfg_api.c).
 *
 * A load runs the script in a sandboxed Lua state, then builds struct nd_config from the tables
 * it declared. Every table handed to the builder or to a plugin's configure() is wrapped in a
 * struct nodus_cfg, which remembers where the table was declared (file:line and a context such
 * as `listener "in": plugins[2] (router)`), its path below that ("routes[1].match") and which
 * keys were read, so that the keys nobody read can be reported as unknown.
 */
#ifndef NODUS_CFG_INTERNAL_H
#define NODUS_CFG_INTERNAL_H

#include <lua.h>
#include <luaconf.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nodus/plugin.h>

struct nd_config;

#define ND_CFG_MAX_ERRORS 50

/* Budgets of one load. Zero fields take the defaults. */
struct nd_config_limits {
    uint64_t max_instructions; /* default 10 million */
    size_t max_memory;         /* bytes, default 64 MiB */
    uint32_t max_time_ms;      /* wall-clock backstop, default 10 s */
    bool no_so;                /* refuse node { plugins = { "x.so" } } (fuzzing) */
};

/* Replaces the budgets of later loads (main thread; tests and fuzzers). NULL restores defaults. */
void nd_config_set_limits(const struct nd_config_limits *lim);

/* Names a plugin may not take: Lua keywords, directives, the sandbox's globals. */
bool nd_config_reserved_name(const char *name);

struct nd_cfg_error {
    int line;  /* 0: about the whole file */
    char *msg; /* complete "file:line: ..." text */
};

/* The state of one load. */
struct nd_loader {
    lua_State *L;
    const char *file;      /* name used in messages */
    char *dir;             /* directory of the file, for relative .so paths; NULL = cwd */
    struct nd_config *cfg; /* being built */
    struct nd_config_limits lim;

    struct nd_cfg_error errs[ND_CFG_MAX_ERRORS];
    unsigned nerrs;           /* kept */
    unsigned nerrs_total;     /* reported, kept or not */
    char chunkid[LUA_IDSIZE]; /* how Lua names the file in its messages */
    int decls_ref;            /* registry: the declarations of the script, in order */
    int env_ref;              /* registry: the sandbox's global table */
    int clusters_ref;         /* registry: cluster name -> index, while building */

    struct nd_listener_conf *chain; /* the listener whose plugins are being configured */
    struct nodus_cfg *configuring;  /* the table of the plugin whose configure() runs */

    struct nodus_cfg *cfgs;       /* every wrapper made, in order, freed with the loader */
    struct nodus_cfg **cfgs_tail; /* where the next one goes (NULL: &cfgs) */

    /* budgets */
    size_t mem;       /* bytes held by the Lua state */
    bool mem_capped;  /* the memory budget is enforced (while the script runs) */
    bool mem_refused; /* an allocation was refused for the budget */
    int mem_line;     /* where */
    uint64_t charged; /* instructions, plus charges for work done inside library functions */
    bool budget_hit;  /* the instruction budget is exhausted */
    bool time_hit;    /* the time budget is exhausted */
    int budget_line;
    uint64_t deadline_ns; /* CLOCK_MONOTONIC */
    bool running;         /* the user's script is running: budgets apply */
};

struct nodus_cfg {
    struct nd_loader *ld;
    struct nodus_cfg *next;   /* in ld->cfgs */
    struct nodus_cfg *parent; /* NULL for a directive's or a plugin's own table */
    int tref;                 /* registry reference of the table */
    int sref;                 /* registry reference of the table of keys read */
    bool array_read;          /* the array part was consulted */
    bool checked;             /* unknown keys were reported */
    int line;
    char *ctx;              /* `cluster "a"`, `listener "x": plugins[2] (router)` */
    char *path;             /* "" at the top, "limits", "routes[1].match" */
    const char *listener;   /* a plugin's table: the listener whose chain it is in */
    const char **iter_keys; /* nodus_cfg_next_str snapshot */
    size_t niter_keys;
};

/* Records an error "file:line: text" (line 0: "file: text"). Keeps the first ND_CFG_MAX_ERRORS. */
void nd_loader_error(struct nd_loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void nd_loader_verror(struct nd_loader *ld, int line, const char *fmt, va_list ap);

/* Wraps the table at stack index idx. ctx is copied. Lua errors only on memory exhaustion. */
struct nodus_cfg *nd_cfg_new(struct nd_loader *ld, int idx, int line, const char *ctx);
/* Pushes the value of key (raw), marking the key as read. Returns its Lua type. */
int nd_cfg_push(struct nodus_cfg *c, const char *key);
/* Pushes element i (0-based, raw), marking the array part as read. Returns its Lua type. */
int nd_cfg_push_at(struct nodus_cfg *c, size_t i);
/* An error about element i (0-based) of c's array part: "ctx: path[i+1]: message". */
void nd_cfg_error_at(struct nodus_cfg *c, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reports every key of c that was not read, once. */
void nd_cfg_check_unknown(struct nodus_cfg *c);
/* Frees every wrapper of the loader (before the Lua state is closed). */
void nd_cfg_free_all(struct nd_loader *ld);
/* The cluster of that name in the configuration being built (in O(1)), or NULL. */
struct nd_cluster_conf *nd_loader_cluster(struct nd_loader *ld, const char *name);
/* Writes s into buf as a quoted, printable, bounded string: "abc", "a\x01b", "aaaa...". */
const char *nd_cfg_quote(char *buf, size_t size, const char *s, size_t len);

#endif
