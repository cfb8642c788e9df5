/*
 * Between the node identity (identity.c) and the mtls stream plugin (mtls.c).
 *
 * Each mtls listener instance is a user of the identity: it owns a rotation slot and the options
 * its TLS server context is built with (allowed peer IDs, ALPN, flags). The identity builds a
 * context for every attached user whenever its certificate changes, and swaps it into the user's
 * slot; workers read the slot's generation without a lock and take a new reference when it moved.
 *
 * attach/detach: main thread (the plugin's configure() and destroy()).
 */
#ifndef NODUS_MTLS_IDENTITY_H
#define NODUS_MTLS_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include "tls.h"

struct nd_identity_user {
    struct nd_identity_user *next; /* the identity's list */
    bool attached;
    struct nd_tls_slot slot; /* current context for new handshakes; NULL until an identity loads */
    /* what the context is built with (owned by the user, constant while attached) */
    unsigned flags; /* ND_TLS_ALLOW_TLS12, ... */
    const char *const *peer_ids;
    size_t n_peer_ids;
    const char *alpn;
    bool client;     /* a client context (upstream TLS), not a server one */
    const char *sni; /* client: the server name to send */
};

/* Inits u's slot and adds u to the list; builds its context now when an identity is loaded. */
void nd_identity_attach(struct nd_identity_user *u);
/* Removes u and releases the slot's reference (connections keep theirs). */
void nd_identity_detach(struct nd_identity_user *u);

/* Implemented by mtls.c: whether an mtls instance (its configure() result) needs the node
 * identity (mode is not "disable"), and its mode's name. */
bool nd_mtls_needs_identity(const void *conf, const char **mode);

#endif
