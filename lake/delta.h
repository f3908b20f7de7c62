/*
 * delta.h: the Delta Lake log of a lake table.
 *
 * A table's log is <prefix>/_delta_log/NNNNNNNNNNNNNNNNNNNN.json (20-digit
 * versions), one JSON action per line. Version 0 holds protocol, metaData
 * and commitInfo; each later version holds commitInfo and the remove and
 * add actions of one lake snapshot. Log entries are created with
 * put-if-absent (store.h), never overwritten: a second writer of the same
 * version gets LB_ECONFLICT.
 *
 * Schema mapping (Delta's JSON schema): boolean, byte (int8), short
 * (int16), integer, long, float, double, decimal(p,s), date, timestamp
 * (with time zone), timestamp_ntz (without; the table then needs reader
 * version 3, writer version 7 and the timestampNtz feature, otherwise it is
 * reader 1 / writer 2), string (string, json), binary (binary, uuid,
 * fixed), array, struct. Delta has no time-of-day type: time columns are
 * declared long (microseconds since midnight), which is what their Parquet
 * column holds.
 *
 * Statistics in add.stats: numRecords, and per column outside lists
 * nullCount, minValues and maxValues (numbers, decimals as exact JSON
 * numbers, dates "YYYY-MM-DD", timestamps truncated to milliseconds as the
 * protocol says, strings when valid UTF-8). No min/max for boolean and
 * binary columns, for float columns holding NaN, or for bounds Delta
 * cannot express.
 *
 * Column mapping by id (when every field has a field id, which the
 * transcoder's schemas do): metaData.configuration has
 * delta.columnMapping.mode = id and delta.columnMapping.maxColumnId; every
 * field (nested ones too) has delta.columnMapping.id (its field id) and
 * delta.columnMapping.physicalName in its metadata, and a list field the
 * ids of its elements (delta.columnMapping.nested.ids, "<physical
 * name>.element", as icebergCompatV2 asks); the protocol is reader
 * 2 / writer 5, or 3 / 7 with the columnMapping feature next to
 * timestampNtz. A field's physical name is fixed when it first appears
 * (its name then, "<name>_<id>" if a sibling holds that one) and kept
 * across renames: the Parquet writer names columns by it (see
 * lake__node_physical()), and add.stats keys use it. Readers resolve
 * columns by field id, so files written under an older schema stay valid:
 * a field a file lacks reads as NULL, a dropped one is not read.
 *
 * Schema changes. The schema given at open may differ from the table's:
 * the next commit then writes a metaData action with the new schemaString
 * (and a protocol action if the protocol goes up; it never goes down). A
 * field whose type changes needs every live file replaced in that commit
 * (the type widening feature is not used). A commit without files records
 * a schema change alone.
 *
 * Not done: checkpoints (readers replay from version 0), partitioned
 * tables, deletion vectors.
 */
#ifndef LAKE_DELTA_H
#define LAKE_DELTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema.h"
#include "store.h"
#include "table.h"

typedef struct lake_delta_table lake_delta_table;

typedef struct lake_delta_options {
    const char *name;        /* metaData.name; may be NULL */
    const char *description; /* metaData.description; may be NULL */
    /* metaData.configuration as key, value, key, value, ..., NULL */
    const char *const *configuration;
} lake_delta_options;

/*
 * Open the table under prefix (see lake_table_prefix()), creating it
 * (version 0) if it has no log yet. An existing log is replayed to find the
 * live files; its schema must be the one the given schema maps to.
 *
 * store and schema are borrowed and must outlive the table; opts (may be
 * NULL) is used at creation only. Returns 0, LB_ECONFLICT (another writer
 * created version 0 first; open again), LB_ESCHEMA (the schema cannot be
 * mapped, or differs from the table's), LB_EPARSE (a log entry is not valid
 * JSON or lacks required fields), LB_EUNSUPPORTED (checkpoints only, reader
 * or writer features we do not know), or a store error, with a message in
 * err (may be NULL). The caller closes *out. The table model (table.h)
 * uses this format through lake_delta_format.
 */
int lake_delta_open(lake_store *store, const char *prefix, lake_schema *schema,
                    const lake_delta_options *opts, lake_delta_table **out, lb_err *err);

/*
 * Commit one version: remove the live files named in removes, add the
 * files in adds. Nothing is written unless every input is valid:
 * LB_EVALUE for a data file whose statistics do not match the schema, a
 * bad or repeated path, a path both removed and added; LB_ENOTFOUND for a
 * remove of a file that is not live; -EINVAL for an empty commit.
 * LB_ECONFLICT if the version exists (another writer committed first): the
 * handle is unchanged but stale, so reopen and retry. *version_out (may be
 * NULL) gets the new version. Messages go to err (may be NULL).
 */
int lake_delta_commit(lake_delta_table *t, const lake_data_file *adds, size_t nadds,
                      const char *const *removes, size_t nremoves, int64_t *version_out,
                      lb_err *err);

/* Whether the next commit writes a metaData action (the given schema, or
 * the protocol it needs, differs from the table's); a commit without files
 * is then allowed and writes just that. */
bool lake_delta_schema_pending(const lake_delta_table *t);
/* Whether that change alters a field's Delta type (then the commit must
 * replace every live file). */
bool lake_delta_schema_retyped(const lake_delta_table *t);

/* The last version read or written. */
int64_t lake_delta_version(const lake_delta_table *t);

/* The live files (paths relative to the table prefix), in no particular
 * order. Owned by the table, valid until the next commit or close. */
size_t lake_delta_live_count(const lake_delta_table *t);
const char *lake_delta_live_path(const lake_delta_table *t, size_t i);

/* metaData.schemaString for a schema; the caller frees it. NULL and a
 * message in err (may be NULL) for a schema Delta cannot take. */
char *lake_delta_schema_string(const lake_schema *schema, lb_err *err);

void lake_delta_close(lake_delta_table *t);

#endif
