/*
 * codec.h: page compression for the Parquet writer.
 *
 * Internal to lake/. One compressor per writer; it keeps the zstd context
 * between pages so that compressing a page allocates nothing new.
 */
#ifndef LAKE_CODEC_H
#define LAKE_CODEC_H

#include <stddef.h>

#include "buf.h"
#include "parquet.h"

typedef struct lake__compressor lake__compressor;

/* level applies to zstd only (0 = its default). LB_EUNSUPPORTED for an
 * unknown codec, -ENOMEM. The caller frees *out. */
int lake__compressor_new(lake_codec codec, int level, lake__compressor **out);
void lake__compressor_free(lake__compressor *c);

/* Append the compressed form of src[0..n) to out (the bytes as stored in
 * the page: raw snappy block, zstd frame, or a copy). 0, -ENOMEM, or
 * LB_EUNSUPPORTED if the library refuses. */
int lake__compress(lake__compressor *c, const void *src, size_t n, lb_buf *out);

/* The same at another zstd level (0: the compressor's own; ignored by the
 * other codecs). */
int lake__compress_at(lake__compressor *c, int level, const void *src, size_t n, lb_buf *out);

/* The compressor's zstd level (0 for the other codecs). */
int lake__compressor_level(const lake__compressor *c);

#endif
