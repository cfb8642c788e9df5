/*
 * Keyed hashing for the TCP engine: SipHash-2-4, RFC 6528 initial sequence numbers, timestamp
 * offsets, SYN cookies. Own SipHash (a page of code) so the engine needs no library.
 */
#ifndef NODUS_TCP_HASH_H
#define NODUS_TCP_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "tcp_types.h"

uint64_t nd_siphash24(const uint8_t key[16], const void *data, size_t len);
/* SipHash of a flow and a 32-bit salt. */
uint32_t nd_tcp_flow_hash(const uint8_t key[16], const struct nd_tcp_flow *f, uint32_t salt);

/* RFC 6528: ISN = M + F(4-tuple, secret), M a 4 us clock (here now_ms * 250). */
uint32_t nd_tcp_isn(const uint8_t key[16], const struct nd_tcp_flow *f, uint64_t now_ms);

/*
 * SYN cookies (Linux-style): the ISN of a stateless SYN-ACK encodes a 64 s time counter and an
 * MSS table index, and is checked when the handshake's ACK comes back (valid for 2 periods).
 * Window scale and SACK-permitted travel in the low 6 bits of our timestamp (TSecr in the ACK).
 */
#define ND_TCP_COOKIE_PERIOD_MS 64000u
extern const uint16_t nd_tcp_cookie_mss[4];
uint32_t nd_tcp_cookie_make(const uint8_t key[16], const struct nd_tcp_flow *f, uint32_t peer_isn,
                            uint16_t peer_mss, uint64_t now_ms, uint16_t *mss_out);
/* The MSS the cookie encodes, or 0 when the cookie is invalid or too old. */
uint16_t nd_tcp_cookie_check(const uint8_t key[16], const struct nd_tcp_flow *f, uint32_t peer_isn,
                             uint32_t cookie, uint64_t now_ms);
/* Timestamp options in a cookie TSval: wscale 0..14 or 0xf (none), and SACK. */
uint32_t nd_tcp_cookie_ts(uint32_t tsval, int wscale, int sack);
void nd_tcp_cookie_ts_decode(uint32_t tsecr, int *wscale, int *sack);

#endif
