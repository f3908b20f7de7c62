/*
 * encoding.h: Parquet's value encodings that are not Thrift.
 *
 * Internal to lake/. The RLE / bit-packing hybrid carries definition and
 * repetition levels and dictionary indices; the rest are small byte-order
 * and text helpers shared by the writers.
 */
#ifndef LAKE_ENCODING_H
#define LAKE_ENCODING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Bits needed to store values 0..max_value (0 for 0). */
int lake__bit_width(uint32_t max_value);

/* Append the RLE / bit-packed hybrid runs of n values of bit_width bits
 * (1..32) to out, without any length prefix. Every value must fit in
 * bit_width bits. 0 or -ENOMEM (out may then hold a partial encoding). */
int lake__rle_encode(const uint32_t *values, size_t n, int bit_width, lb_buf *out);

/* Little-endian stores. Inline and spelled out byte by byte: the Parquet
 * writer stores every fixed-size value through them, and the compiler
 * merges the bytes into one store. */
static inline void
lake__le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void
lake__le64(uint8_t *p, uint64_t v)
{
    lake__le32(p, (uint32_t)v);
    lake__le32(p + 4, (uint32_t)(v >> 32));
}

/* Whether bytes are well-formed UTF-8 (no overlongs, no surrogates, nothing
 * past U+10FFFF). On false, *bad_at is the offset of the first bad byte. */
bool lake__utf8_valid(const uint8_t *bytes, size_t n, size_t *bad_at);

/* Length of the longest prefix of a UTF-8 string that is at most limit
 * bytes and ends on a character boundary. */
size_t lake__utf8_prefix(const uint8_t *bytes, size_t n, size_t limit);

#endif
