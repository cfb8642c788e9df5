/*
 * memberlist wire format (protocol 2-5, as spoken by memberlist 0.2.2 / serf 0.9.4): messages,
 * compound, hasCrc and compress framing, the UDP packet walk and the TCP stream parser.
 * Pure functions over caller buffers: no I/O, no allocation, no global state.
 *
 * Encoders write exactly the bytes Go's memberlist writes for the same values (fields in Go's
 * sorted order, the smallest integer encoding, strings and byte slices as str, nil for an empty
 * nil slice). Decoders accept what Go's decoder accepts for the same fields (any integer width,
 * str or bin for byte fields, nil, unknown keys in any order) and refuse anything else with a
 * negative ND_GOSSIP_E_* code. Every decoded byte string points into the decoded buffer.
 *
 * Receive path of a UDP packet:
 *
 *     plain = pkt or nd_gossip_decrypt(kr, pkt, ...)          // keyring.h; no additional data
 *     nd_gossip_packet_walk(plain, len, scratch, cap, on_msg, arg);
 *     on_msg(arg, msg, len):  nd_gossip_decode(msg, len, &m) -> switch (m.type) ...
 *
 * Send path: nd_gossip_encode each message, nd_gossip_compound_encode several of them,
 * optionally nd_gossip_compress_encode, nd_gossip_crc_wrap (for peers with protocol >= 5), then
 * nd_gossip_encrypt (keyring.h) with the primary key.
 *
 * TCP: call nd_gossip_stream_parse on the bytes received so far until it stops saying
 * ND_GOSSIP_E_TRUNC; encrypted streams use nd_gossip_stream_seal (keyring.h).
 */
#ifndef NODUS_GOSSIP_WIRE_H
#define NODUS_GOSSIP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "gossip-t.h"

/* A static string naming a result code ("truncated input", ...); never NULL. */
const char *nd_gossip_strerror(int err);
/* A static name for a message type ("ping", "indirect-ping", ...), or "unknown". */
const char *nd_gossip_type_name(uint8_t type);

/* Encodes m as [type][msgpack] into out[0..cap): 0 and *len, ND_GOSSIP_E_SPACE, or
 * ND_GOSSIP_E_VALUE / E_LIMIT / E_MSGTYPE for values Go's receiver would reject or mis-handle
 * (an address of other than 4 or 16 bytes, Meta over 512 bytes, a name over
 * ND_GOSSIP_NAME_MAX, a type that is not a plain message). USER writes [8] + m->u.user. */
int nd_gossip_encode(const struct nd_gossip_msg *m, uint8_t *out, size_t cap, size_t *len);

/* Decodes a message that starts with its type byte. Bytes after the msgpack value are ignored
 * (as Go does). ND_GOSSIP_E_MSGTYPE for framing or unknown types. */
int nd_gossip_decode(const uint8_t *msg, size_t len, struct nd_gossip_msg *m);
/* Same, for a type and the body after the type byte. */
int nd_gossip_decode_body(uint8_t type, const uint8_t *body, size_t len, struct nd_gossip_msg *m);

/* Compound: [7][n][n x u16 BE length][parts]. n must be 1..ND_GOSSIP_COMPOUND_MAX (Go's
 * receiver mis-parses more than 127) and no part may be empty or over ND_GOSSIP_PART_MAX. */
int nd_gossip_compound_encode(const struct nd_gbytes *parts, size_t n, uint8_t *out, size_t cap,
                              size_t *len);
/* Splits a compound message (starting with [7]) into parts[0..cap) (255 always suffice).
 * Like Go, complete parts before a truncated one are returned: *n of them, with
 * ND_GOSSIP_E_TRUNC. An empty part fails the whole message (ND_GOSSIP_E_EMPTY, *n = 0). */
int nd_gossip_compound_split(const uint8_t *msg, size_t len, struct nd_gbytes *parts, size_t cap,
                             size_t *n);

/* CRC-32 (IEEE 802.3, as Go's crc32.ChecksumIEEE). */
uint32_t nd_gossip_crc32(const uint8_t *p, size_t len);
/* hasCrc: writes [12][crc32 BE of msg][msg]. msg must not be empty. */
int nd_gossip_crc_wrap(const uint8_t *msg, size_t len, uint8_t *out, size_t cap, size_t *outlen);
/* Checks a [12][crc][inner] packet and points *inner at the inner message (not empty). */
int nd_gossip_crc_check(const uint8_t *pkt, size_t len, struct nd_gbytes *inner);

/* compress: writes [9]{Algo: 0, Buf: LZW(msg)} into out. msg must not be empty. */
int nd_gossip_compress_encode(const uint8_t *msg, size_t len, uint8_t *out, size_t cap,
                              size_t *outlen);
/* Decodes a compress message (starting with [9]) and decompresses it into out[0..cap): the
 * cap bounds the output (ND_GOSSIP_E_LIMIT beyond). *consumed is the size of the compress
 * message itself (what follows it on a stream is not part of it). The result is not empty. */
int nd_gossip_compress_decode(const uint8_t *msg, size_t len, uint8_t *out, size_t cap,
                              size_t *outlen, size_t *consumed);

/* Called for each message found in a packet; msg starts with its type byte, len >= 1. */
typedef void (*nd_gossip_msg_fn)(void *arg, const uint8_t *msg, size_t len);

/* Walks a (decrypted) UDP packet like memberlist's ingestPacket: a leading hasCrc is checked,
 * compound and compress layers are opened (at most ND_GOSSIP_NEST_MAX deep; decompressed data
 * goes to scratch[0..cap), which bounds it), and fn gets every other message, unknown types
 * included. A bad part does not stop the walk: the first error is returned at the end. */
int nd_gossip_packet_walk(const uint8_t *pkt, size_t len, uint8_t *scratch, size_t cap,
                          nd_gossip_msg_fn fn, void *arg);

/* push/pull: writes [6][header][n node states][user state] (header.Nodes = n, UserStateLen =
 * user.len, Join = join). States are checked like alive messages. */
int nd_gossip_pushpull_encode(bool join, const struct nd_gossip_node_state *states, size_t n,
                              struct nd_gbytes user, uint8_t *out, size_t cap, size_t *len);
/* Decodes the node state at the start of *rest and advances *rest past it. */
int nd_gossip_node_state_decode(struct nd_gbytes *rest, struct nd_gossip_node_state *s);

/* A user message for a TCP stream: [8]{UserMsgLen: len}[msg]. */
int nd_gossip_user_stream_encode(struct nd_gbytes msg, uint8_t *out, size_t cap, size_t *len);

/* Parses one TCP message from in[0..len): decrypts it if it is an encrypt frame ([10][u32 BE
 * length][blob], the 5-byte header as additional data), decompresses a compress frame, then
 * frames the message (ping, ack, err, push/pull, user) and checks every node state.
 *  - kr: NULL or empty for no encryption (an encrypt frame is then ND_GOSSIP_E_KEY); with keys,
 *    a plaintext stream is ND_GOSSIP_E_PLAIN (memberlist's GossipVerifyIncoming).
 *  - scratch[0..cap) receives decrypted and decompressed data and bounds it.
 *  - ND_GOSSIP_E_TRUNC: the message is not complete yet; call again with more bytes.
 * On success m describes the message; m->consumed bytes of in belong to it. */
int nd_gossip_stream_parse(const uint8_t *in, size_t len, const struct nd_keyring *kr,
                           uint8_t *scratch, size_t cap, struct nd_gossip_stream_msg *m);

#endif
