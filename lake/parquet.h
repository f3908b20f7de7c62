/*
 * parquet.h: a streaming Parquet file writer.
 *
 * The writer takes rows of typed values (value.h) for a schema (schema.h)
 * and pushes the bytes of one Parquet file to a sink as row groups fill.
 * It holds at most one row group in memory: pages are encoded and
 * compressed as they fill, and a row group is written out once its
 * buffered size reaches the target. The footer goes out at close.
 *
 * What it writes: field ids; LogicalType and the legacy ConvertedType;
 * three-level LISTs and STRUCT groups with definition and repetition
 * levels; dictionary encoding (RLE_DICTIONARY pages + a PLAIN dictionary
 * page) that falls back to PLAIN when the dictionary outgrows its limit;
 * data page v1 or v2; UNCOMPRESSED, SNAPPY or ZSTD; column statistics in
 * the column's type order with TypeDefinedOrder column orders; key-value
 * metadata and created_by.
 *
 * Errors. A row that does not fit the schema (wrong kind of value, NULL in
 * a required field, decimal beyond its precision, invalid UTF-8, ...) is
 * refused with LB_EVALUE before anything of it is buffered: the writer
 * stays usable and the file is unaffected. A failure of the sink or of
 * memory makes the writer dead: every later call returns that first error,
 * and the bytes already given to the sink do not form a valid file.
 * lake_parquet_writer_error() gives the message in both cases.
 */
#ifndef LAKE_PARQUET_H
#define LAKE_PARQUET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "schema.h"
#include "value.h"

/* Values are Parquet's CompressionCodec ids. */
typedef enum lake_codec {
    LAKE_CODEC_UNCOMPRESSED = 0,
    LAKE_CODEC_SNAPPY = 1,
    LAKE_CODEC_ZSTD = 6,
} lake_codec;

typedef struct lake_parquet_options {
    lake_codec codec;        /* default ZSTD */
    int zstd_level;          /* 0: zstd's default (3). The most effort spent: see
                                zstd_trial */
    bool zstd_trial;         /* default on: a column chunk's first page is also
                                compressed at level -1, and if that is no larger, the
                                chunk's data pages use -1. Off: every page at zstd_level
                                (cheaper when pages are few, as in small files) */
    int page_version;        /* 1 (DataPageHeader) or 2 (DataPageHeaderV2); default 1 */
    size_t page_bytes;       /* target encoded size of a data page; default 1 MiB */
    size_t row_group_bytes;  /* target buffered size of a row group; default 128 MiB */
    bool trusted_utf8;       /* the caller has checked that every STRING and JSON value is
                                valid UTF-8, and the writer does not check again; default
                                off. A value that is not makes an invalid file */
    bool dictionary;         /* try dictionary encoding (not for BOOLEAN); default on */
    size_t dictionary_bytes; /* per column chunk; past it, PLAIN; default 1 MiB */
    size_t stats_bytes;      /* longest STRING/JSON/BINARY min/max kept; longer ones are
                                truncated to a valid bound; default 64 */
    const char *created_by;  /* default "lakebase version <v>"; copied */
} lake_parquet_options;

/* Receives the file's bytes in order; returns 0 or an error (which kills
 * the writer). */
typedef int (*lake_sink_fn)(void *arg, const void *bytes, size_t n);

typedef struct lake_parquet_writer lake_parquet_writer;

/* Statistics of one leaf column over the whole file, for Iceberg and Delta
 * metadata. min and max are encoded as in the Parquet footer: PLAIN without
 * a length prefix (little-endian ints and floats, big-endian decimals in
 * FIXED_LEN_BYTE_ARRAY, raw bytes for strings). */
typedef struct lake_column_stats {
    char *path;       /* dotted Parquet path, e.g. "tags.list.element" */
    int32_t field_id; /* of the leaf field (0 if none) */
    lake_type type;
    int64_t num_values;       /* entries including nulls (Parquet num_values) */
    int64_t null_count;       /* entries without a value (null, or an empty or null list) */
    int64_t nan_count;        /* FLOAT and DOUBLE only */
    int64_t compressed_bytes; /* of the column chunks, page headers included */
    int64_t uncompressed_bytes;
    bool has_bounds;           /* min/max known (not for all-null or all-NaN columns) */
    bool min_exact, max_exact; /* false when a long byte string was truncated */
    uint8_t *min, *max;        /* owned by the stats; NULL unless has_bounds */
    size_t min_len, max_len;
} lake_column_stats;

typedef struct lake_parquet_file_stats {
    int64_t num_rows;
    int64_t num_row_groups;
    uint64_t file_bytes; /* size of the whole file */
    size_t ncolumns;     /* leaf columns, in schema order */
    lake_column_stats *columns;
} lake_parquet_file_stats;

/* ---- the transcoder ------------------------------------------------------ */

/* The defaults described above. Callers start from these. */
void lake_parquet_options_init(lake_parquet_options *o);

/* Start a file: validates the schema and options, writes the leading magic.
 * The schema must outlive the writer and cannot change while it is used;
 * opts may be NULL for the defaults and is copied. 0, LB_ESCHEMA,
 * LB_EBADCONFIG, -ENOMEM or the sink's error, with a message in err (may
 * be NULL). On success the caller frees *out with lake_parquet_writer_free(). */
int lake_parquet_writer_new(lake_schema *schema, const lake_parquet_options *opts,
                            lake_sink_fn sink, void *sink_arg, lake_parquet_writer **out,
                            lb_err *err);

/* The same, writing to fd (which stays open and is not fsynced). */
int lake_parquet_writer_new_fd(lake_schema *schema, const lake_parquet_options *opts, int fd,
                               lake_parquet_writer **out, lb_err *err);

/* Start a new file to the same sink (or fd), with the same schema and
 * options, keeping the writer's memory: page and chunk buffers,
 * dictionary tables, the compression context. For a caller that writes
 * many files of one schema, which then allocates and faults in nothing new
 * per file. Allowed after close and after any failure (the new file starts
 * clean; the old one's bytes stay as they were). Key-value pairs are
 * dropped. 0, or the sink's error writing the leading magic, which kills
 * the writer. */
int lake_parquet_writer_restart(lake_parquet_writer *w);

/* Append one row: nfields values, one per top-level field in schema order.
 * 0; LB_EVALUE if the row does not fit (nothing written, the writer stays
 * usable); or the writer is dead (see above). */
int lake_parquet_write_row(lake_parquet_writer *w, const lake_value *fields, size_t nfields);

/* Append nrows rows given column by column: columns[k][r] is field k of
 * row r, for ncolumns == the schema's top-level fields. The file holds the
 * same values as after lake_parquet_write_row() on each row in turn (pages
 * and row groups may end at other rows), but a top-level primitive field
 * is encoded a run of values at a time, which is much cheaper per value.
 * 0; LB_EVALUE at the first row that does not fit: the rows before it are
 * written (lake_parquet_rows() tells how many), that row and the rest are
 * not, and the writer stays usable; or the writer is dead (see above). */
int lake_parquet_write_columns(lake_parquet_writer *w, const lake_value *const *columns,
                               size_t ncolumns, size_t nrows);

/* Write out the current row group now (no-op if it is empty), e.g. to cut
 * files at a row boundary the caller chooses. */
int lake_parquet_flush_row_group(lake_parquet_writer *w);

/* Add a key-value pair to the footer (copied). A later pair with the same
 * key replaces the earlier one. */
int lake_parquet_set_kv(lake_parquet_writer *w, const char *key, const char *value);

/* Rows accepted so far. */
int64_t lake_parquet_rows(const lake_parquet_writer *w);

/* Finish the file: flush the last row group, write the footer. On success
 * *stats (if not NULL) receives the file's statistics, which the caller
 * frees with lake_parquet_file_stats_free(). Call at most once. */
int lake_parquet_writer_close(lake_parquet_writer *w, lake_parquet_file_stats **stats);

/* Release the writer, closed or not (an unclosed file stays incomplete). */
void lake_parquet_writer_free(lake_parquet_writer *w);

/* The message of the last failure, "" if none. Owned by the writer. */
const char *lake_parquet_writer_error(const lake_parquet_writer *w);

void lake_parquet_file_stats_free(lake_parquet_file_stats *s);

#endif
