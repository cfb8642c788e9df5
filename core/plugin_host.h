/* The plugin registry: built-in plugins register from constructors, .so plugins when loaded. */
#ifndef NODUS_PLUGIN_HOST_H
#define NODUS_PLUGIN_HOST_H

#include <nodus/plugin.h>

/* The registered plugin of that name, or NULL. */
const struct nodus_plugin *nd_plugin_find(const char *name);
/* Calls fn for each registered plugin, in registration order. */
void nd_plugin_each(void (*fn)(const struct nodus_plugin *p, void *arg), void *arg);
/* Loads a .so plugin (once per path). Returns 0, or -1 with *err set (malloc'd): file missing,
 * not a plugin, ABI mismatch ("x.so: plugin ABI 2, this nodus has ABI 1"), duplicate name. */
int nd_plugin_load_so(const char *path, char **err);

/* How many built-in plugins refused to register (logged at start); nodus does not run with any. */
unsigned nd_plugin_builtin_refused(void);

#endif
