/*
 * Between a TLS engine (tls.h) and a stream layer (the plugin ABI's nodus_stream): what the
 * listener layer (mtls.c) and the upstream layer (upstream.c) both do with their engine.
 */
#ifndef NODUS_MTLS_TLS_LAYER_H
#define NODUS_MTLS_TLS_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "nodus/plugin.h"
#include "tls.h"

/* Hands the ciphertext the engine wrote to the network side (nodus_stream_push_out), adding
 * its length to *count. 0, or -1 when the layer cannot take it. */
int nd_tls_layer_push_out(struct nodus_stream *s, struct nd_tls *t, uint64_t *count);

/* Encrypts plaintext for the network side: how many of the len bytes it took (>= 0), -1 when
 * the layer cannot take the output, ND_TLS_LAYER_E_TLS when the engine failed. */
#define ND_TLS_LAYER_E_TLS (-2)
long nd_tls_layer_write(struct nodus_stream *s, struct nd_tls *t, const char *data, size_t len,
                        uint64_t *count);

#endif
