/*
 * memberlist encryption (security.go, keyring.go): AES-GCM with 16-, 24- or 32-byte keys
 * (AES-128/192/256), through wolfSSL.
 *
 *   blob = [version 1][12-byte nonce][ciphertext][16-byte tag]
 *
 * UDP packets are a bare blob with no additional data; TCP messages are framed as
 * [10][u32 BE blob length][blob] with those 5 header bytes as the additional data
 * (nd_gossip_stream_seal, and nd_gossip_stream_parse in wire.h to open them). Version 0 blobs
 * (PKCS#7-padded plaintext, memberlist protocol 1) are decrypted too, never produced.
 *
 * The keyring works as memberlist's: keys[0] is the primary, which encrypts; decryption tries
 * every key in order; adding a present key is a no-op; the primary cannot be removed.
 * The library does no I/O: callers pass the nonce, which must come from a CSPRNG (getrandom)
 * and must never repeat under one key.
 */
#ifndef NODUS_GOSSIP_KEYRING_H
#define NODUS_GOSSIP_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include "gossip-t.h"

void nd_keyring_init(struct nd_keyring *kr);
/* Zeroes every key (call before freeing the memory that holds the keyring). */
void nd_keyring_wipe(struct nd_keyring *kr);
/* Adds a key (the first key added becomes the primary). ND_GOSSIP_E_KEY for a size other than
 * 16, 24, 32; ND_GOSSIP_E_LIMIT when the ring is full. A key already present is a no-op. */
int nd_keyring_add(struct nd_keyring *kr, const uint8_t *key, size_t len);
/* Makes a present key the primary; ND_GOSSIP_E_KEY if it is not in the ring. */
int nd_keyring_use(struct nd_keyring *kr, const uint8_t *key, size_t len);
/* Removes a key; ND_GOSSIP_E_KEY for the primary. Removing an absent key is a no-op. */
int nd_keyring_remove(struct nd_keyring *kr, const uint8_t *key, size_t len);

/* Decodes a standard base64 key (as `serf keygen` prints, '=' padded) into key[32]; *len is
 * 16, 24 or 32. ND_GOSSIP_E_KEY for anything else. */
int nd_gossip_key_from_base64(const char *s, size_t n, uint8_t key[32], size_t *len);
/* Writes key[0..len) as standard padded base64 into out (at least 4 * ceil(len / 3) bytes, not
 * NUL-terminated: 44 for a 32-byte key); returns the length written. */
size_t nd_gossip_key_to_base64(const uint8_t *key, size_t len, char *out);
/* nd_gossip_key_from_base64 then nd_keyring_add. */
int nd_keyring_add_base64(struct nd_keyring *kr, const char *s, size_t n);

/* Encrypts msg[0..len) with the primary key and nonce into out as a version-1 blob
 * (len + ND_GOSSIP_CRYPT_OVERHEAD bytes). ad may be NULL. out must not overlap msg. */
int nd_gossip_encrypt(const struct nd_keyring *kr, const uint8_t nonce[ND_GOSSIP_NONCE_LEN],
                      const uint8_t *msg, size_t len, const uint8_t *ad, size_t adlen, uint8_t *out,
                      size_t cap, size_t *outlen);
/* Decrypts a blob with the first key that authenticates it: 0 and the plaintext in out,
 * ND_GOSSIP_E_DECRYPT if none does, E_TRUNC if too short for a blob, E_VALUE for an unknown
 * version. out must not overlap blob. */
int nd_gossip_decrypt(const struct nd_keyring *kr, const uint8_t *blob, size_t len,
                      const uint8_t *ad, size_t adlen, uint8_t *out, size_t cap, size_t *outlen);
/* A TCP message: [10][u32 BE length][blob], the 5 header bytes authenticated. */
int nd_gossip_stream_seal(const struct nd_keyring *kr, const uint8_t nonce[ND_GOSSIP_NONCE_LEN],
                          const uint8_t *msg, size_t len, uint8_t *out, size_t cap, size_t *outlen);

#endif
