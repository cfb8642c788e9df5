/*
 * The mesh TLS engine: one wolfSSL session per connection, driven entirely through memory.
 *
 * No sockets: the owner feeds the ciphertext it read from the network (nd_tls_feed), takes the
 * plaintext out (nd_tls_read), hands plaintext in (nd_tls_write) and sends whatever ciphertext
 * the engine produced (nd_tls_out_peek / nd_tls_out_consume). The same engine runs over kernel
 * sockets, the user-space TCP, and two engines wired to each other in a unit test.
 *
 *   ciphertext from the network -> nd_tls_feed() -> [in]  -> wolfSSL -> nd_tls_read()  -> plaintext
 *   plaintext                   -> nd_tls_write()         -> wolfSSL -> [out] -> nd_tls_out_*() ->
 * net
 *
 * Rule for owners: after every call, send what nd_tls_out_peek() returns; when a call returns
 * ND_TLS_AGAIN, wait for more network input or for the output to drain, then call again.
 *
 * Security model (no fallback, ever):
 *  - TLS 1.3 only unless ND_TLS_ALLOW_TLS12; AEAD suites only; groups X25519 and P-256.
 *  - Both sides verify the peer's chain to the configured trust anchors (the mesh root), with
 *    validity dates. A server always requires a client certificate (strict mTLS). Permissive
 *    mode is not a weaker TLS: it is the owner choosing plaintext for a connection whose first
 *    bytes are not TLS (nd_tls_sniff()); a connection that starts as TLS is always strict.
 *  - The peer must present exactly one URI SAN, a valid SPIFFE ID; it must match the allowed
 *    list when there is one (a client must have one, unless ND_TLS_ANY_PEER_ID). Checked during
 *    the handshake (fatal alert) and again when it completes (resumed sessions).
 *  - No renegotiation (the wolfSSL build has none), no TLS 1.3 post-handshake authentication.
 *
 * Threading: a struct nd_tls_ctx is immutable and shared by all workers (reference counted);
 * a struct nd_tls belongs to the worker that owns the connection.
 */
#ifndef NODUS_MTLS_TLS_H
#define NODUS_MTLS_TLS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Return codes (negative). Functions returning a byte count return >= 0 or one of these. */
enum nd_tls_status {
    ND_TLS_OK = 0,
    ND_TLS_AGAIN = -1,       /* needs more input, or the output to be drained; call again */
    ND_TLS_CLOSED = -2,      /* the peer closed cleanly (close_notify) */
    ND_TLS_E_PROTO = -3,     /* malformed or unexpected TLS, or a version/suite mismatch */
    ND_TLS_E_NOT_TLS = -4,   /* the first bytes are not a TLS handshake record (plaintext?) */
    ND_TLS_E_PEER_CERT = -5, /* peer certificate missing, untrusted, expired or not yet valid */
    ND_TLS_E_PEER_ID = -6,   /* peer SPIFFE ID missing, malformed or not allowed */
    ND_TLS_E_ALERT = -7,     /* the peer sent a fatal alert (it refused us) */
    ND_TLS_E_TRUNCATED = -8, /* the transport ended without close_notify */
    ND_TLS_E_INTERNAL = -9,  /* out of memory, misuse, or an unexpected library error */
};

enum nd_tls_role { ND_TLS_SERVER, ND_TLS_CLIENT };

enum nd_tls_state {
    ND_TLS_HANDSHAKE, /* created, handshake in progress (arm the handshake timeout on this) */
    ND_TLS_OPEN,      /* handshake done, peer verified: data flows */
    ND_TLS_SHUTDOWN,  /* a close_notify was sent or received */
    ND_TLS_FAILED,    /* an error happened; nd_tls_error() says which. Close the connection. */
};

/* nd_tls_config.flags */
#define ND_TLS_ALLOW_TLS12 0x1 /* accept TLS 1.2 besides 1.3 (ECDHE-ECDSA AEAD suites) */
#define ND_TLS_NO_TICKETS 0x2  /* no session tickets, hence no resumption */
#define ND_TLS_ANY_PEER_ID 0x4 /* client: accept any SPIFFE ID the trust anchors vouch for */

#define ND_TLS_MAX_PEER_IDS 64

struct nd_tls_config {
    enum nd_tls_role role;
    unsigned flags;
    /* PEM buffers (copied; the caller may free them after nd_tls_ctx_new()). */
    const char *ca_pem; /* trust anchors: the mesh root certificate(s) */
    size_t ca_len;
    const char *cert_pem; /* our certificate, then its chain up to (not including) the root */
    size_t cert_len;
    const char *key_pem; /* our private key */
    size_t key_len;
    /* Allowed peer SPIFFE IDs: an entry matches exactly, or, when it ends in a '/' followed by
     * '*', any ID that starts with the entry without the '*' (a path prefix on a segment
     * boundary): "spiffe://mesh.local/ns/prod/" + "*" matches every ID in namespace prod. */
    const char *const *peer_ids;
    size_t n_peer_ids;
    const char *alpn;         /* comma-separated protocols, "h2,http/1.1"; NULL: no ALPN */
    const char *sni;          /* client: server name sent in the ClientHello; NULL: none */
    uint32_t session_timeout; /* seconds a ticket stays valid; 0: 3600 (at most ticket_rotate) */
    uint32_t ticket_rotate;   /* server: seconds a ticket key encrypts (then it decrypts as
                                 long again, then it is wiped); 0: 12 h */
};

struct nd_tls_ctx; /* an immutable, shared, reference-counted context */
struct nd_tls;     /* one connection */

/* Builds a context: loads and checks the credentials (the key must match the certificate, and
 * our own certificate must carry a valid SPIFFE ID). NULL with a message in err on failure.
 * The context starts with one reference; each generation number is unique and increasing. */
struct nd_tls_ctx *nd_tls_ctx_new(const struct nd_tls_config *cfg, char *err, size_t errlen);
struct nd_tls_ctx *nd_tls_ctx_ref(struct nd_tls_ctx *c);
void nd_tls_ctx_unref(struct nd_tls_ctx *c);
uint64_t nd_tls_ctx_generation(const struct nd_tls_ctx *c);
/* Server with tickets: rotates the ticket key now (the current key becomes the previous one and
 * still decrypts; the former previous key is wiped). Done on its own every ticket_rotate
 * seconds. 0, or -1 (no tickets on this context, no randomness). */
int nd_tls_ctx_rotate_ticket_key(struct nd_tls_ctx *c);
/* Our own certificate's notAfter (seconds since the epoch) and SPIFFE ID. */
int64_t nd_tls_ctx_not_after(const struct nd_tls_ctx *c);
const char *nd_tls_ctx_id(const struct nd_tls_ctx *c);

/*
 * Certificate rotation: a slot holds the current context. Swapping it affects new connections
 * only; a connection keeps the context it was created with (it holds a reference) until it is
 * freed. nd_tls_slot_generation() is a lock-free read, so a worker can keep its own reference
 * and take the slot's lock only when the generation changed.
 */
struct nd_tls_slot {
    pthread_mutex_t lock;
    struct nd_tls_ctx *cur;
    _Atomic uint64_t gen;
};
void nd_tls_slot_init(struct nd_tls_slot *s, struct nd_tls_ctx *c); /* takes the reference */
void nd_tls_slot_swap(struct nd_tls_slot *s, struct nd_tls_ctx *c); /* takes the reference */
struct nd_tls_ctx *nd_tls_slot_get(struct nd_tls_slot *s);          /* a new reference */
uint64_t nd_tls_slot_generation(struct nd_tls_slot *s);
void nd_tls_slot_fini(struct nd_tls_slot *s);

/* A connection on context c (it takes its own reference). NULL when out of memory. */
struct nd_tls *nd_tls_new(struct nd_tls_ctx *c);
void nd_tls_free(struct nd_tls *t);

/* Hands ciphertext to the engine; returns how many bytes it took (0 when its input buffer is
 * full: read or handshake first). */
size_t nd_tls_feed(struct nd_tls *t, const void *data, size_t len);
/* The transport ended (no more input will come). */
void nd_tls_feed_eof(struct nd_tls *t);

/* Advances the handshake: ND_TLS_OK once done and the peer verified, ND_TLS_AGAIN, or an
 * error (the state is then ND_TLS_FAILED). Calling it when the handshake is done returns OK. */
int nd_tls_handshake(struct nd_tls *t);

/* Plaintext out: > 0 bytes, ND_TLS_AGAIN, ND_TLS_CLOSED, or an error. Runs the handshake first
 * if it is not done. */
long nd_tls_read(struct nd_tls *t, void *buf, size_t len);

/* Plaintext in: returns how many bytes were accepted (> 0; at most one record's worth), or
 * ND_TLS_AGAIN when the output must drain first or the handshake is not done, or an error.
 * After ND_TLS_AGAIN, call again with the same bytes (at least as many) at the same start. */
long nd_tls_write(struct nd_tls *t, const void *buf, size_t len);

/* Sends close_notify (queued in the output). ND_TLS_OK or an error. */
int nd_tls_shutdown(struct nd_tls *t);

/* Ciphertext waiting to be sent: a pointer to it and its length (0: nothing). */
const void *nd_tls_out_peek(const struct nd_tls *t, size_t *len);
void nd_tls_out_consume(struct nd_tls *t, size_t n);

enum nd_tls_state nd_tls_state(const struct nd_tls *t);
/* The error that failed the connection (0 when none), and a description of it (static text:
 * never key material). */
int nd_tls_error(const struct nd_tls *t);
const char *nd_tls_error_text(const struct nd_tls *t);
/* A short, stable name for that error, for counters and logs (static text): "none", "protocol",
 * "not_tls", "no_client_cert", "untrusted_cert", "expired_cert", "cert_not_yet_valid",
 * "bad_cert", "peer_id", "alert", "truncated", "internal". */
const char *nd_tls_error_reason(const struct nd_tls *t);

/* After the handshake: the peer's SPIFFE ID (NUL-terminated; NULL before), the notAfter of its
 * certificate, the negotiated ALPN protocol (NULL if none), the server name the client asked
 * for (server side; NULL if none), the protocol version ("TLSv1.3"), whether the session was
 * resumed, and the generation of the context the connection uses. */
const char *nd_tls_peer_id(const struct nd_tls *t, size_t *len);
int64_t nd_tls_peer_not_after(const struct nd_tls *t);
const char *nd_tls_alpn(const struct nd_tls *t);
const char *nd_tls_sni(const struct nd_tls *t);
const char *nd_tls_version(const struct nd_tls *t);
bool nd_tls_resumed(const struct nd_tls *t);
uint64_t nd_tls_generation(const struct nd_tls *t);

/* Client-side resumption. nd_tls_session_get() returns the session of an open connection once
 * it holds a ticket (TLS 1.3 tickets arrive after the handshake, with the first data read), or
 * NULL; hand it to
 * nd_tls_session_set() on a new connection to the same server, before its handshake. */
struct nd_tls_session;
struct nd_tls_session *nd_tls_session_get(struct nd_tls *t);
int nd_tls_session_set(struct nd_tls *t, struct nd_tls_session *s);
void nd_tls_session_free(struct nd_tls_session *s);

/* Permissive listeners: is this the start of a TLS connection? Looks at the record header: a
 * handshake record (0x16) of version 0x03 0x00..0x04.
 * ND_TLS_SNIFF_TLS, ND_TLS_SNIFF_PLAIN, or ND_TLS_SNIFF_MORE (fewer than 3 bytes, all consistent
 * with TLS). */
enum { ND_TLS_SNIFF_MORE = 0, ND_TLS_SNIFF_TLS = 1, ND_TLS_SNIFF_PLAIN = 2 };
int nd_tls_sniff(const void *data, size_t len);

/* Checks a SPIFFE ID against an allow list (the matching rules of nd_tls_config.peer_ids). An
 * empty list allows nothing. */
bool nd_tls_id_allowed(const char *id, size_t len, const char *const *allowed, size_t n);

#endif
