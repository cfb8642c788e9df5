/*
 * TCP wire format: header and option parsing and building, checksums. No state; usable by the
 * glue (checksums) and by tests (decoding what the engine emits).
 */
#ifndef NODUS_TCP_WIRE_H
#define NODUS_TCP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tcp_types.h"

#define ND_TCP_FIN 0x01
#define ND_TCP_SYN 0x02
#define ND_TCP_RST 0x04
#define ND_TCP_PSH 0x08
#define ND_TCP_ACK 0x10
#define ND_TCP_URG 0x20

#define ND_TCP_OPT_EOL 0
#define ND_TCP_OPT_NOP 1
#define ND_TCP_OPT_MSS 2
#define ND_TCP_OPT_WS 3
#define ND_TCP_OPT_SACK_PERM 4
#define ND_TCP_OPT_SACK 5
#define ND_TCP_OPT_TS 8

#define ND_TCP_MAX_SACK 4 /* blocks in one option */

struct nd_tcp_sack_block {
    uint32_t start, end;
};

/* A decoded header. Option fields are valid when their has_ flag is set. */
struct nd_tcp_hdr {
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    uint16_t win;  /* as on the wire, unscaled */
    uint16_t hlen; /* header length with options */
    uint16_t urp;
    bool has_mss, has_ws, sack_perm, has_ts;
    uint16_t mss;
    uint8_t ws;
    uint32_t tsval, tsecr;
    uint8_t nsack;
    struct nd_tcp_sack_block sack[ND_TCP_MAX_SACK];
};

/* Decodes the header at p (len bytes of segment). 0, or -1 when malformed (short, bad data
 * offset). Malformed options end option parsing without failing the segment. */
int nd_tcp_parse(const uint8_t *p, size_t len, struct nd_tcp_hdr *h);

/* Options to emit. */
struct nd_tcp_opts {
    bool mss_on, ws_on, sack_perm, ts_on;
    uint16_t mss;
    uint8_t ws;
    uint32_t tsval, tsecr;
    uint8_t nsack;
    struct nd_tcp_sack_block sack[ND_TCP_MAX_SACK];
};

/* Length the options take (padded to 4), at most 40. nsack is lowered to what fits. */
unsigned nd_tcp_opts_len(struct nd_tcp_opts *o);
/* Writes a header with options into out (ND_TCP_MAX_HDR bytes); checksum field 0. Returns the
 * header length. */
unsigned nd_tcp_build(uint8_t *out, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                      uint8_t flags, uint16_t win, struct nd_tcp_opts *o);

/* One's complement sum helpers. nd_csum_add() sums len bytes that start at byte offset `off` of
 * the checksummed stream (the parity of off matters). */
uint32_t nd_csum_add(uint32_t sum, const void *data, size_t len, size_t off);
uint16_t nd_csum_fold(uint32_t sum);
/* Pseudo-header sum for IPv4 (host-order addresses) and TCP length. */
uint32_t nd_tcp_pseudo(uint32_t src, uint32_t dst, uint32_t tcp_len);
/* Full TCP checksum (complemented, ready for the field, network order in memory when stored
 * with memcpy of its big-endian form) over hdr + pieces. */
uint16_t nd_tcp_csum(uint32_t src, uint32_t dst, const uint8_t *hdr, size_t hlen,
                     const struct nd_tcp_piece *pc, unsigned n);
/* True when a received segment's checksum verifies. */
bool nd_tcp_csum_ok(uint32_t src, uint32_t dst, const uint8_t *seg, size_t len);

static inline uint16_t nd_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t nd_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void nd_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void nd_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
