/*
 * The plugin registry. Built-in plugins register from constructors before main(); a .so plugin
 * registers from its own constructor while nd_plugin_load_so() has it open, so a refusal there
 * is handed back to the loader instead of being logged, and the .so is closed again.
 */
#include "plugin_host.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cfg_internal.h"
#include "log.h"

#define MAX_PLUGIN_NAME 32

struct entry {
    const struct nodus_plugin *p;
    const char *origin; /* the .so's path, or NULL (built in) */
};

static struct entry *plugins;
static unsigned nplugins, cap_plugins;

/* .so files opened, by real path */
struct so {
    char *path;
    void *handle;
};
static struct so *sos;
static unsigned nsos;

/* While nd_plugin_load_so() runs dlopen(). */
static struct {
    bool active;
    const char *path;
    char *refusal; /* the first refusal, malloc'd */
} loading;

/* Where a descriptor lives: the .so being loaded, or the object file that holds it. */
static const char *origin_of(const struct nodus_plugin *p)
{
    Dl_info info;

    if (loading.active)
        return loading.path;
    if (p && dladdr(p, &info) && info.dli_fname && info.dli_fname[0])
        return info.dli_fname;
    return "nodus";
}

static unsigned builtin_refused; /* built-in plugins refused at start: a build defect */

unsigned nd_plugin_builtin_refused(void)
{
    return builtin_refused;
}

static int __attribute__((format(printf, 1, 2))) refuse(const char *fmt, ...)
{
    struct nd_sbuf b = {0};
    va_list ap;

    va_start(ap, fmt);
    nd_sbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (loading.active) {
        if (!loading.refusal)
            loading.refusal = b.p ? b.p : strdup("plugin refused (out of memory)");
        else
            nd_sbuf_free(&b);
    } else {
        builtin_refused++;
        nd_err("plugin refused: %s", b.p ? b.p : "(out of memory)");
        nd_sbuf_free(&b);
    }
    return -1;
}

static bool valid_plugin_name(const char *s)
{
    size_t n = 0;

    if (!s || !islower((unsigned char)s[0]))
        return false;
    for (; s[n]; n++)
        if (!islower((unsigned char)s[n]) && !isdigit((unsigned char)s[n]) && s[n] != '_')
            return false;
    return n <= MAX_PLUGIN_NAME;
}

const struct nodus_plugin *nd_plugin_find(const char *name)
{
    if (!name)
        return NULL;
    for (unsigned i = 0; i < nplugins; i++)
        if (strcmp(plugins[i].p->name, name) == 0)
            return plugins[i].p;
    return NULL;
}

int nodus_plugin_register(const struct nodus_plugin *p)
{
    const char *origin = origin_of(p);

    if (!p)
        return refuse("%s: registered a NULL plugin descriptor", origin);
    /* only abi is read before the version is known to match */
    if (p->abi != NODUS_PLUGIN_ABI)
        return refuse("%s: plugin ABI %u, this nodus has ABI %d", origin, (unsigned)p->abi,
                      NODUS_PLUGIN_ABI);
    if (!valid_plugin_name(p->name))
        return refuse("%s: plugin name \"%.40s\" is not 1 to %d characters a-z 0-9 _ starting "
                      "with a letter",
                      origin, p->name ? p->name : "(null)", MAX_PLUGIN_NAME);
    if (nd_config_reserved_name(p->name))
        return refuse("%s: plugin name \"%s\" is reserved (a directive or a Lua name)", origin,
                      p->name);
    if (!(p->flags & (NODUS_PLUGIN_HTTP | NODUS_PLUGIN_STREAM)))
        return refuse("%s: plugin \"%s\" has neither NODUS_PLUGIN_HTTP nor NODUS_PLUGIN_STREAM",
                      origin, p->name);
    if ((p->flags & NODUS_PLUGIN_HTTP) && !p->http)
        return refuse("%s: plugin \"%s\" has NODUS_PLUGIN_HTTP but no http ops", origin, p->name);
    if ((p->flags & NODUS_PLUGIN_STREAM) && !p->stream)
        return refuse("%s: plugin \"%s\" has NODUS_PLUGIN_STREAM but no stream ops", origin,
                      p->name);
    if (p->configure_route && (!p->destroy_route || !(p->flags & NODUS_PLUGIN_HTTP)))
        return refuse("%s: plugin \"%s\" has configure_route but %s", origin, p->name,
                      p->destroy_route ? "is not an HTTP plugin" : "no destroy_route");
    if ((p->flags & NODUS_PLUGIN_TERMINAL) && !(p->flags & NODUS_PLUGIN_HTTP))
        return refuse("%s: plugin \"%s\" is NODUS_PLUGIN_TERMINAL but not NODUS_PLUGIN_HTTP",
                      origin, p->name);
    if (p->control && ((p->control->tick_ms && !p->control->tick) ||
                       (p->control->event_prefix && !p->control->event)))
        return refuse("%s: plugin \"%s\": its control ops have tick_ms without tick, or "
                      "event_prefix without event",
                      origin, p->name);
    for (unsigned i = 0; i < nplugins; i++)
        if (strcmp(plugins[i].p->name, p->name) == 0)
            return refuse("%s: a plugin named \"%s\" is already registered (from %s)", origin,
                          p->name, plugins[i].origin ? plugins[i].origin : "nodus");
    if (nplugins == cap_plugins) {
        unsigned cap = cap_plugins ? cap_plugins * 2 : 16;
        struct entry *e = realloc(plugins, cap * sizeof(*e));

        if (!e)
            return refuse("%s: plugin \"%s\": out of memory", origin, p->name);
        plugins = e;
        cap_plugins = cap;
    }
    plugins[nplugins].p = p;
    plugins[nplugins].origin = loading.active ? loading.path : NULL;
    nplugins++;
    return 0;
}

void nd_plugin_each(void (*fn)(const struct nodus_plugin *p, void *arg), void *arg)
{
    for (unsigned i = 0; i < nplugins; i++)
        fn(plugins[i].p, arg);
}

static char *__attribute__((format(printf, 1, 2))) msg(const char *fmt, ...)
{
    struct nd_sbuf b = {0};
    va_list ap;

    va_start(ap, fmt);
    nd_sbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    return b.p ? b.p : strdup("out of memory");
}

int nd_plugin_load_so(const char *path, char **err)
{
    char real[PATH_MAX];
    unsigned first = nplugins;
    struct so *s;
    void *h;
    char *e = NULL;

    if (!realpath(path, real)) {
        e = msg("%s: cannot open plugin: %s", path, strerror(errno));
        goto fail;
    }
    for (unsigned i = 0; i < nsos; i++)
        if (strcmp(sos[i].path, real) == 0)
            return 0;
    s = realloc(sos, (nsos + 1) * sizeof(*sos));
    if (!s) {
        e = msg("%s: out of memory", path);
        goto fail;
    }
    sos = s;

    loading.active = true;
    loading.path = real;
    loading.refusal = NULL;
    h = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    loading.active = false;
    if (!h) {
        const char *why = dlerror();

        free(loading.refusal);
        e = msg("%s", why ? why : "cannot load the plugin");
        goto fail;
    }
    if (loading.refusal || nplugins == first) {
        /* the registry must not keep descriptors of a library about to be closed */
        e = loading.refusal ? loading.refusal
                            : msg("%s: not a nodus plugin (it registered no plugin)", path);
        nplugins = first;
        dlclose(h);
        goto fail;
    }
    /* origins so far point at the stack: keep the path */
    sos[nsos].path = strdup(real);
    sos[nsos].handle = h;
    if (!sos[nsos].path) {
        nplugins = first;
        dlclose(h);
        e = msg("%s: out of memory", path);
        goto fail;
    }
    for (unsigned i = first; i < nplugins; i++)
        plugins[i].origin = sos[nsos].path;
    nsos++;
    return 0;
fail:
    if (err)
        *err = e;
    else
        free(e);
    return -1;
}
