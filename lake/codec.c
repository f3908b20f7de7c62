/*
 * codec.c: UNCOMPRESSED, SNAPPY and ZSTD for Parquet pages.
 *
 * Parquet's SNAPPY is the raw snappy block format (no framing), and ZSTD is
 * a standard zstd frame. Both libraries come from Debian (libsnappy,
 * libzstd). The output buffer is grown to the library's worst-case bound
 * before compressing, so a page never needs a second attempt.
 *
 * Callers: parquet.c, once per data or dictionary page.
 */
#include "codec.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "errors.h"

struct lake__compressor {
    lake_codec codec;
    int level;
    ZSTD_CCtx *zstd; /* owned; NULL unless codec is ZSTD */
};

int
lake__compressor_new(lake_codec codec, int level, lake__compressor **out)
{
    if (codec != LAKE_CODEC_UNCOMPRESSED && codec != LAKE_CODEC_SNAPPY && codec != LAKE_CODEC_ZSTD)
        return LB_EUNSUPPORTED;
    lake__compressor *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->codec = codec;
    c->level = level ? level : ZSTD_CLEVEL_DEFAULT;
    if (codec == LAKE_CODEC_ZSTD) {
        c->zstd = ZSTD_createCCtx();
        if (!c->zstd) {
            free(c);
            return -ENOMEM;
        }
    }
    *out = c;
    return 0;
}

void
lake__compressor_free(lake__compressor *c)
{
    if (!c)
        return;
    ZSTD_freeCCtx(c->zstd);
    free(c);
}

int
lake__compressor_level(const lake__compressor *c)
{
    return c->codec == LAKE_CODEC_ZSTD ? c->level : 0;
}

int
lake__compress(lake__compressor *c, const void *src, size_t n, lb_buf *out)
{
    return lake__compress_at(c, 0, src, n, out);
}

int
lake__compress_at(lake__compressor *c, int level, const void *src, size_t n, lb_buf *out)
{
    assert(c);
    switch (c->codec) {
    case LAKE_CODEC_UNCOMPRESSED:
        return lb_buf_append(out, src, n);
    case LAKE_CODEC_SNAPPY: {
        size_t cap = snappy_max_compressed_length(n);
        int rc = lb_buf_reserve(out, cap);
        if (rc)
            return rc;
        size_t got = cap;
        if (snappy_compress(src, n, out->data + out->len, &got) != SNAPPY_OK)
            return LB_EUNSUPPORTED;
        assert(got <= cap);
        out->len += got;
        out->data[out->len] = '\0';
        return 0;
    }
    case LAKE_CODEC_ZSTD: {
        size_t cap = ZSTD_compressBound(n);
        int rc = lb_buf_reserve(out, cap);
        if (rc)
            return rc;
        size_t got =
            ZSTD_compressCCtx(c->zstd, out->data + out->len, cap, src, n, level ? level : c->level);
        if (ZSTD_isError(got))
            return ZSTD_getErrorCode(got) == ZSTD_error_memory_allocation ? -ENOMEM
                                                                          : LB_EUNSUPPORTED;
        out->len += got;
        out->data[out->len] = '\0';
        return 0;
    }
    }
    return LB_EUNSUPPORTED;
}
