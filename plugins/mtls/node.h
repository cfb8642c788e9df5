/*
 * What the core calls in plugins/mtls: the `nodus ca` command and the node identity.
 *
 * The node identity (identity { ... } in the configuration, struct nd_identity_conf) is the
 * certificate, key and trust anchors every mtls listener serves with. It lives here, on the main
 * thread: loaded (or issued) when a configuration is applied, watched and reloaded when its files
 * change, renewed at half its lifetime when the node issues it itself. Each change builds new TLS
 * contexts and swaps them into the listeners' slots (nd_tls_slot): new handshakes use the new
 * certificate, established connections keep theirs.
 *
 * Main thread only. Errors: -1 with a message in err (never key material).
 */
#ifndef NODUS_MTLS_NODE_H
#define NODUS_MTLS_NODE_H

#include <stddef.h>
#include <stdint.h>

struct nd_config;

/* `nodus ca ARGS...` (argv[0] is "init", "issue"...). Returns the exit code: 0, 1 or 2 (usage). */
int nd_ca_command(int argc, char **argv);

/* Checks cfg's identity: every mtls listener that needs one has one, the files can be read and
 * used together (or the CA directory can issue). Installs nothing (`nodus check`). */
int nd_identity_check(const struct nd_config *cfg, char *err, size_t errlen);

/* Makes cfg's identity the node's: at start, and before a reloaded configuration is published.
 * When it is the identity already in use, nothing is reloaded. On error nothing changes. */
int nd_identity_apply(const struct nd_config *cfg, char *err, size_t errlen);

/* Called from the main loop (at least once a second; it rate-limits itself): notices changed
 * files (applied once they stayed the same for a second), renews a self-issued certificate at half
 * its lifetime, logs a warning when less than a quarter of the lifetime is left. */
void nd_identity_tick(void);

/* notAfter of the certificate in use (seconds since the epoch), 0 when there is none. */
int64_t nd_identity_not_after(void);

/* Forgets the identity (at exit). */
void nd_identity_shutdown(void);

#endif
