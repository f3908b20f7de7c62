/*
 * table.h: what the Iceberg and Delta writers share.
 *
 * A table lives under one key prefix of a lake_store:
 *
 *   lake/<database>/<schema>/<table>/data/...         Parquet data files
 *   lake/<database>/<schema>/<table>/metadata/...     Iceberg metadata
 *   lake/<database>/<schema>/<table>/_delta_log/...   Delta log
 *
 * Both table formats describe the same data files, given to them as
 * lake_data_file: a path relative to the table's prefix and the statistics
 * the Parquet writer reported when the file was closed. The writers check
 * those statistics against the table schema before writing any metadata.
 */
#ifndef LAKE_TABLE_H
#define LAKE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parquet.h"
#include "schema.h"

/* One Parquet data file of a table. Borrowed for the call that takes it. */
typedef struct lake_data_file {
    /* Relative to the table prefix, e.g. "data/00001-<uuid>.parquet": no
     * leading '/', no "." or ".." component, characters valid in a key. */
    const char *path;
    /* From lake_parquet_writer_close() for this file: rows, size, and one
     * entry per leaf column of the table schema, in schema order. */
    const lake_parquet_file_stats *stats;
    int64_t modification_ms; /* 0: now (Delta's add.modificationTime) */
} lake_data_file;

/* The key prefix of a table, "lake/<database>/<schema>/<table>", each name
 * percent-encoded where it holds a byte other than [A-Za-z0-9_-] or starts
 * with '.', so any PostgreSQL identifier gives a valid key. 0, -EINVAL for
 * an empty name, or -ENOMEM; the caller frees *out. */
int lake_table_prefix(const char *database, const char *schema, const char *table, char **out);

/* ---- internal: iceberg.c and delta.c ---------------------------------- */

/* The leaf columns of a schema in Parquet order: node ids, and whether the
 * leaf sits inside a list (no bounds for those: one file-level min/max of
 * list elements says little, and Iceberg writers leave them out). */
typedef struct lake__leaves {
    int *node;
    bool *in_list;
    size_t n;
} lake__leaves;

int lake__leaves_of(const lake_schema *s, lake__leaves *out);
void lake__leaves_free(lake__leaves *l);

/* Check f against the schema: path, row and byte counts, and each column's
 * field id, type, counts and bound widths. 0, or LB_EVALUE with a message
 * naming the file and the column in err. */
int lake__check_data_file(const lake_schema *s, const lake__leaves *leaves, const lake_data_file *f,
                          char *err, size_t errcap);

/* Width of the PLAIN bound of a fixed-size type as the Parquet writer
 * encodes it, or 0 for byte strings (string, json, binary). */
size_t lake__bound_width(const lake__node *n);

/* A decimal bound (as the Parquet writer encodes it for n) as an integer. */
__int128 lake__decimal_bound(const lake__node *n, const uint8_t *p, size_t len);

/* A random (version 4) UUID, lowercase, 36 characters + NUL. */
void lake__uuid4(char out[37]);
/* 63 random bits, never 0. */
int64_t lake__random_id(void);
int64_t lake__now_ms(void);

/* Days since 1970-01-01 to a civil date. */
void lake__civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

#endif
