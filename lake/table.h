/*
 * table.h: the lake table model, the table-format interface, and what the
 * Iceberg and Delta writers share.
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

#include <jansson.h>
#include <sys/types.h>

#include "errors.h"
#include "parquet.h"
#include "schema.h"
#include "store.h"

/* One Parquet data file of a table. Borrowed for the call that takes it. */
typedef struct lake_data_file {
    /* Relative to the table prefix, e.g. "data/00001-<uuid>.parquet": no
     * "." or ".." component, characters valid in a key. Or, for a file
     * another table owns and this one shares by reference, '/' and its
     * key from the store's root ("/t1/lake/db/s/leaf/data/c....parquet"):
     * Iceberg lists it at the store's URL + that key, Delta adds that
     * absolute URI (the Delta protocol allows absolute add.path URIs). */
    const char *path;
    /* From lake_parquet_writer_close() for this file: rows, size, and one
     * entry per leaf column of the table schema, in schema order. */
    const lake_parquet_file_stats *stats;
    int64_t modification_ms; /* 0: now (Delta's add.modificationTime) */
    /* Size and rows when stats is NULL, which is allowed for a file shared
     * by reference (the formats then record no column statistics for it),
     * and for Delta when lake_table_open() brings it level with Iceberg. */
    int64_t file_bytes;
    int64_t records;
} lake_data_file;

/* The key prefix of a table, "lake/<database>/<schema>/<table>", each name
 * percent-encoded where it holds a byte other than [A-Za-z0-9_-] or starts
 * with '.', so any PostgreSQL identifier gives a valid key. 0, -EINVAL for
 * an empty name, or -ENOMEM; the caller frees *out. */
int lake_table_prefix(const char *database, const char *schema, const char *table, char **out);

/* ---- the table model: one table, every format (the transcoder) ---------- */

/*
 * A lake table is one set of live data files described by every table
 * format at once: one commit is one Iceberg snapshot and one Delta version
 * of the same files. A format is an ops table (below); iceberg.c and
 * delta.c each provide one, and a new format is one more.
 *
 * Order and recovery. A commit goes to the formats in the order of
 * lake_table_formats[] (Iceberg first: its metadata version is the commit
 * point that the REST catalog serves). A crash between two formats leaves
 * the later ones one commit behind; lake_table_open() finds that (their
 * live sets differ from the first format's) and brings them level with one
 * commit of the difference. Files it re-adds carry no statistics (a size
 * from the store only). A half-written commit is never visible in any
 * format: each format's own commit is atomic (put-if-absent).
 */
typedef struct lake_table lake_table;

typedef struct lake_table_options {
    const char *name;        /* Delta metaData.name; may be NULL */
    const char *description; /* Delta metaData.description; may be NULL */
    /* At creation: Iceberg table properties and Delta configuration, as
     * key, value, key, value, ..., NULL. May be NULL. */
    const char *const *properties;
} lake_table_options;

/* One commit: files removed (live paths relative to the prefix) and added. */
typedef struct lake_commit {
    const lake_data_file *adds;
    size_t nadds;
    const char *const *removes;
    size_t nremoves;
    /* Kept with the commit (Iceberg snapshot summary, Delta commitInfo
     * under "lakebase"): key, value, ..., NULL. Keys are plain ASCII not
     * starting with "added-", "deleted-", "total-". May be NULL. */
    const char *const *summary;
} lake_commit;

/* A table format. Each call takes the caller's lb_err (may be NULL). */
typedef struct lake_table_format {
    const char *name; /* "iceberg", "delta" */
    int (*open)(lake_store *store, const char *prefix, lake_schema *schema,
                const lake_table_options *opts, void **state, lb_err *err);
    int (*commit)(void *state, const lake_commit *c, lb_err *err);
    /* The live files, relative paths; owned by the state until its next commit. */
    size_t (*live_count)(const void *state);
    const char *(*live_path)(const void *state, size_t i);
    /* The summary pair key of the newest commit, or NULL (not owned). */
    const char *(*summary_value)(const void *state, const char *key);
    /* Rows and bytes of a live file: 0, LB_ENOTFOUND. NULL when the format
     * does not keep them. */
    int (*live_size)(const void *state, const char *path, int64_t *records, int64_t *bytes);
    /* Whether the next commit records a schema change (the schema given at
     * open differs from the table's newest): then a commit without files
     * is valid. */
    bool (*schema_pending)(const void *state);
    void (*close)(void *state);
} lake_table_format;

extern const lake_table_format lake_iceberg_format; /* iceberg.c */
extern const lake_table_format lake_delta_format;   /* delta.c */

/* Open (creating where absent) the table under prefix in every format and
 * bring lagging formats level (see above). store and schema are borrowed
 * and must outlive the table; opts may be NULL. 0 or the first format's
 * error (message in err, naming the format and the table). The caller
 * closes *out. */
int lake_table_open(lake_store *store, const char *prefix, lake_schema *schema,
                    const lake_table_options *opts, lake_table **out, lb_err *err);

/* Schema evolution. The schema given at open may differ from the table's
 * newest by a valid evolution (iceberg.h: fields added, dropped, renamed,
 * primitive types promoted, all by field id); the next commit records it
 * in every format, and a commit with no files then records just that.
 * Data files keep being read by field id, so files written under an older
 * schema stay valid: a field they lack reads as NULL (a caller whose new
 * field has a value for old rows must rewrite their files).
 *
 * lake_table_schema_changed: the next commit records a schema change.
 * lake_table_schema_retyped: a field kept its id with another type in some
 * format (an Iceberg promotion, or int16 -> int32, which Iceberg calls
 * "int" both times and Delta does not).
 * lake_table_field_existed: field_id was in the table's schema at open
 * (false for every field of a new table). */
bool lake_table_schema_changed(const lake_table *t);
bool lake_table_schema_retyped(const lake_table *t);
bool lake_table_field_existed(const lake_table *t, int32_t field_id);

/* Commit to every format. The input is checked once, against the schema
 * and the live set, before any format writes: LB_EVALUE, LB_ENOTFOUND and
 * -EINVAL as lake_delta_commit(). LB_ECONFLICT: another writer got there
 * first; close and open again. */
int lake_table_commit(lake_table *t, const lake_commit *c, lb_err *err);

/* The live files (relative paths, or '/' and a key for shared files),
 * sorted. Owned by t, valid until the next commit or close. */
size_t lake_table_live_count(const lake_table *t);
const char *lake_table_live_path(const lake_table *t, size_t i);
/* Rows and bytes of live file i as the first format (Iceberg) recorded
 * them; 0 or -ENOTSUP when the format does not keep them. */
int lake_table_live_size(const lake_table *t, size_t i, int64_t *records, int64_t *bytes);
/* A value from the newest commit's summary (first format), or NULL. */
const char *lake_table_summary_value(const lake_table *t, const char *key);
/* The state of one format (for its own accessors), NULL if absent. */
void *lake_table_format_state(const lake_table *t, const lake_table_format *f);
void lake_table_close(lake_table *t);

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

/* What every format keeps the same way: where the table is, its schema, the
 * schema's leaves, and the sorted set of live paths. */
typedef struct lake__table_core {
    const char *format; /* "iceberg", "delta": prefixes messages */
    lake_store *store;  /* borrowed */
    char *prefix;       /* owned, without a trailing '/' */
    lake_schema *schema;
    lake__leaves leaves;
    char **live; /* sorted, owned */
    size_t nlive, caplive;
} lake__table_core;

/* Check the arguments every format's open takes and fill core. 0, -EINVAL,
 * LB_ESCHEMA (invalid schema) or -ENOMEM, with a message in err. */
int lake__core_init(lake__table_core *core, const char *format, lake_store *store,
                    const char *prefix, lake_schema *schema, lb_err *err);
void lake__core_free(lake__table_core *core);
/* Index of path in the live set, or -1. */
ssize_t lake__live_find(const lake__table_core *core, const char *path);
int lake__live_add(lake__table_core *core, const char *path);
void lake__live_remove(lake__table_core *core, size_t i);
/* Loading: append unsorted, then sort once; LB_EPARSE (message in err) if
 * a path is live twice. */
int lake__live_append(lake__table_core *core, const char *path);
int lake__live_sort(lake__table_core *core, lb_err *err);
/* Apply a committed commit to the live set (removes, then adds). */
int lake__live_apply(lake__table_core *core, const lake_commit *c);

/* Check a commit against the schema and the live set: every add's
 * statistics (or none, with allow_no_stats), no path added twice or
 * already live, every remove live, nothing both removed and added, not
 * empty. 0, or LB_EVALUE, LB_ENOTFOUND
 * or -EINVAL with a message in err. `at` names the state in messages
 * ("version 3"). */
int lake__check_commit(const lake__table_core *core, const lake_commit *c, const char *at,
                       bool allow_no_stats, lb_err *err);

/* A schema as JSON, walked once for every format: the dialect says how a
 * primitive type, a list and a struct field look. ids_required refuses a
 * field (or list element) without a field id. The largest field id goes to
 * *max_id. NULL and LB_ESCHEMA in err if a type has no form. */
typedef struct lake__schema_dialect {
    bool ids_required;
    json_t *(*primitive)(const lake__node *n, void *arg);
    json_t *(*list)(const lake__node *list, const lake__node *element, json_t *element_type,
                    void *arg);
    json_t *(*field)(const lake__node *field, json_t *type, void *arg);
} lake__schema_dialect;

json_t *lake__schema_json(const lake_schema *s, const lake__schema_dialect *d, void *arg,
                          int32_t *max_id, lb_err *err);

/* Whether the summary pairs of a commit are well formed; LB_EVALUE in err. */
int lake__check_summary(const char *const *summary, lb_err *err);

/* Check f against the schema: path, row and byte counts, and each column's
 * field id, type, counts and bound widths. 0, or LB_EVALUE with a message
 * naming the file and the column in err. A file without statistics (a
 * format brought level at open) passes only with allow_no_stats, by path
 * and file_bytes. */
int lake__check_data_file(const lake_schema *s, const lake__leaves *leaves, const lake_data_file *f,
                          bool allow_no_stats, lb_err *err);

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
