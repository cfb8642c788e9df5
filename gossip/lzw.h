/*
 * LZW as Go's compress/lzw with order LSB and literal width 8, which memberlist uses for its
 * compress messages (algorithm 0): code 256 clears, 257 ends, codes grow from 9 to 12 bits, and
 * the encoder emits a clear code when its table fills. nd_lzw_compress produces the same bytes as
 * Go's Writer; nd_lzw_decompress accepts what Go's Reader accepts, requires the end code, ignores
 * bytes after it, and never writes more than cap bytes (a compression bomb gets
 * ND_GOSSIP_E_LIMIT). Both use about 20 KiB of stack and no heap.
 */
#ifndef NODUS_GOSSIP_LZW_H
#define NODUS_GOSSIP_LZW_H

#include <stddef.h>
#include <stdint.h>

/* An output size that always suffices for compressing len bytes. */
static inline size_t nd_lzw_bound(size_t len)
{
    return len + len / 2 + len / 1024 + 8;
}

/* Compresses in[0..len) into out[0..cap): 0 and *outlen, or ND_GOSSIP_E_SPACE. */
int nd_lzw_compress(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *outlen);

/* Decompresses in[0..len) into out[0..cap): 0 and *outlen, ND_GOSSIP_E_LZW for a corrupt or
 * unterminated stream, ND_GOSSIP_E_LIMIT if the output would exceed cap. */
int nd_lzw_decompress(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *outlen);

#endif
