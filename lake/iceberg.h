/*
 * iceberg.h: Apache Iceberg (format version 2) metadata of a lake table.
 *
 * Layout under the table prefix (see lake_table_prefix()):
 *
 *   metadata/v<N>.metadata.json          table metadata, N = 1, 2, ...;
 *                                        created put-if-absent, never
 *                                        overwritten
 *   metadata/version-hint.text           N of the latest (a hint only)
 *   metadata/snap-<id>-1-<uuid>.avro     the manifest list of a snapshot
 *   metadata/<uuid>-m<k>.avro            manifests
 *
 * The table location written into metadata is the store's URL plus the
 * prefix; data file paths in manifests are absolute (location + "/" +
 * the data file's relative path).
 *
 * Each commit is one snapshot with the next sequence number. Manifests of
 * the parent snapshot that lost no file are kept as they are; each one
 * that lost a file is rewritten with its remaining files as EXISTING and
 * the removed ones as DELETED (both with explicit snapshot id and sequence
 * numbers, as the spec requires); added files go to a new manifest as
 * ADDED with sequence numbers left to inheritance. The table is
 * unpartitioned and unsorted (spec 0, sort order 0).
 *
 * Schema mapping: boolean; int (int8, int16, int32); long; float; double;
 * decimal(P, S); date; time; timestamp; timestamptz; string (string,
 * json); uuid; binary; fixed[L]; list; struct. Every field, list elements
 * included, needs a field id.
 *
 * Column metrics come from the Parquet writer's statistics: column sizes,
 * value, null and NaN counts for every leaf; lower and upper bounds
 * (Appendix D single-value serialization) for leaves outside lists.
 */
#ifndef LAKE_ICEBERG_H
#define LAKE_ICEBERG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema.h"
#include "store.h"
#include "table.h"

typedef struct lake_iceberg_table lake_iceberg_table;

typedef struct lake_iceberg_options {
    /* Table properties at creation: key, value, key, value, ..., NULL. */
    const char *const *properties;
} lake_iceberg_options;

/*
 * Open the table under prefix, creating it (v1.metadata.json, no snapshot)
 * if it has no metadata yet. An existing table is loaded from its newest
 * metadata file, its current snapshot's manifest list and manifests. The
 * given schema may differ from the table's current one when it is a valid
 * evolution of it by field id (spec "Schema Evolution": fields added,
 * dropped, renamed or reordered, primitive types promoted): the next
 * commit then records it as a new schema (schema-id, last-column-id) and
 * makes it current; data files written under older schemas stay listed
 * and are read by field id.
 *
 * store and schema are borrowed and must outlive the table. Returns 0,
 * LB_ECONFLICT (another writer created the table first), LB_ESCHEMA (the
 * schema cannot be mapped: a field without an id; or it is no valid
 * evolution of the table's: a type change that is no promotion, a field
 * moved to another parent, optional to required), LB_EPARSE (metadata or manifests are not what
 * this writer writes), LB_EUNSUPPORTED (partitioned tables, delete files, other format versions),
 * or a store error, with a message in err (may be NULL). The caller closes *out. The table model
 * (table.h) uses this format through lake_iceberg_format.
 */
int lake_iceberg_open(lake_store *store, const char *prefix, lake_schema *schema,
                      const lake_iceberg_options *opts, lake_iceberg_table **out, lb_err *err);

/*
 * Commit one snapshot that removes the live files named in removes (paths
 * relative to the prefix) and adds adds. Nothing is written unless every
 * input is valid (LB_EVALUE: statistics that do not match the schema, bad
 * or repeated paths; LB_ENOTFOUND: a remove of a file that is not live;
 * -EINVAL: an empty commit). LB_ECONFLICT if the next metadata version
 * exists (another writer committed first): the handle is unchanged but
 * stale; reopen and retry. The manifests and manifest list written before
 * the conflict stay behind as unreferenced files. *snapshot_id (may be
 * NULL) gets the new snapshot's id. Messages go to err (may be NULL).
 */
int lake_iceberg_commit(lake_iceberg_table *t, const lake_data_file *adds, size_t nadds,
                        const char *const *removes, size_t nremoves, int64_t *snapshot_id,
                        lb_err *err);

/* The metadata version (N of vN.metadata.json) of the handle's state, the
 * current snapshot id (-1 if none) and the last sequence number. */
int64_t lake_iceberg_version(const lake_iceberg_table *t);
int64_t lake_iceberg_snapshot_id(const lake_iceberg_table *t);
int64_t lake_iceberg_sequence_number(const lake_iceberg_table *t);

/* Schema evolution. The id of the given schema in the table (a new one
 * when it differs from the table's current schema); whether the next
 * commit makes it current (then a commit without files is allowed: a
 * metadata version without a snapshot); whether a field kept its id with a
 * promoted type (int to long, float to double, decimal precision); whether
 * a field id was in the table's current schema when the handle opened. */
int32_t lake_iceberg_schema_id(const lake_iceberg_table *t);
bool lake_iceberg_schema_pending(const lake_iceberg_table *t);
bool lake_iceberg_schema_retyped(const lake_iceberg_table *t);
bool lake_iceberg_field_existed(const lake_iceberg_table *t, int32_t field_id);

/* The live data files (relative paths), sorted. Owned by the table, valid
 * until the next commit or close. */
size_t lake_iceberg_live_count(const lake_iceberg_table *t);
const char *lake_iceberg_live_path(const lake_iceberg_table *t, size_t i);

/* The Iceberg JSON of a schema (schema-id 0), e.g. for the Parquet footer's
 * "iceberg.schema" key. The caller frees it. NULL and a message in err
 * (may be NULL) for a schema Iceberg cannot take. */
char *lake_iceberg_schema_json(const lake_schema *schema, lb_err *err);
void lake_iceberg_close(lake_iceberg_table *t);

#endif
