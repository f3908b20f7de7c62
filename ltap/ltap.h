/*
 * ltap.h: the transcoder. Every ordinary table of every database on a
 * timeline, materialized at an LSN P into lake tables (Parquet data files
 * with Iceberg and Delta metadata, lake/table.h), exact to the value.
 *
 * The pageserver calls ltap_materialize() once per lake snapshot with:
 *   - the conninfo of its redo standby, replay paused at P (the caller
 *     keeps it paused until the call returns: that is how P is held; the
 *     cost is that ingest waits for the materialization);
 *   - a dirty-chunk test for (S, P], from its WAL block index: a chunk is
 *     dirty if one of its blocks changed in (S, P], or was touched by a
 *     transaction that committed or aborted in (S, P]; NULL means "all".
 *     Records that only set hint bits (XLOG_FPI_FOR_HINT: with checksums,
 *     the first hint on a page after a checkpoint logs the page) or
 *     visibility-map bits (XLOG_HEAP2_VISIBLE) change no row and should not
 *     count: a scan after a checkpoint would otherwise make every block of
 *     the table dirty;
 *   - the lake store and a key prefix (the timeline's).
 *
 * All PostgreSQL knowledge of the transcoding lives here (ltap/); lake/
 * knows nothing of PostgreSQL. What is materialized, how rows are read and
 * how values map to Parquet types: see ltap.c's essay and ltap/README.md.
 */
#ifndef LTAP_H
#define LTAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "lsn.h"
#include "lake/store.h"

/* Default chunk size: 1024 blocks (8 MB of heap at the default block size). */
#define LTAP_CHUNK_BLOCKS 1024

/* Whether blocks [first, first + n) of relation file (spc, db, rel), main
 * fork, hold a dirty block for (S, P], where S is `since` (the table's lake
 * LSN). 1 yes, 0 no. */
typedef int (*ltap_dirty_fn)(void *arg, uint32_t spc, uint32_t db, uint32_t rel, uint32_t first,
                             uint32_t n, lb_lsn since);

typedef struct ltap_request {
    const char *conninfo; /* the standby at P; dbname is replaced per database */
    lb_lsn lsn;           /* P */
    ltap_dirty_fn dirty;  /* NULL: every chunk is dirty */
    void *dirty_arg;
    lake_store *store;
    const char *prefix;    /* key prefix, e.g. "tenants/T/timelines/L"; tables go under
                              <prefix>/lake/<database>/<schema>/<table> */
    uint32_t chunk_blocks; /* 0: LTAP_CHUNK_BLOCKS */
    /* When set and true, the run stops before its next chunk with
     * -ECANCELED (what it committed stays); may be NULL. */
    const atomic_bool *cancel;
    /* A lake to start new tables from (a branch's first run: its parent's
     * lake, whose run at seed_lsn is at or before the branch point). A
     * table this prefix does not have yet, found there with the same
     * columns and relfilenode and last committed at or before seed_lsn,
     * lists that commit's files by key ('/' + key, lake/table.h) and
     * writes again only the chunks the dirty test finds dirty since that
     * commit's LSN (the `since` it is given). Files of the seed are never
     * noted as removed here (the seed lake owns them). NULL: none. */
    const char *seed_prefix;
    lb_lsn seed_lsn;
    /* Whether another lake lists a data file (its key) of this one (a
     * branch started from it): such a file is kept when its table is
     * deleted, and noted as removed instead. NULL: none is. */
    int (*referenced)(void *arg, const char *key);
    void *referenced_arg;
} ltap_request;

/* What one table's lake state is after a run. */
typedef struct ltap_table_status {
    char database[64], schema[64], table[64];
    lb_lsn lake_lsn;         /* P of the newest lake snapshot of the table */
    uint64_t files, bytes;   /* live data files and their bytes */
    uint64_t rows;           /* rows in the live files */
    uint64_t chunks_written; /* this run */
    uint64_t heap_bytes_read;
    bool full; /* this run rewrote the table in full (new, or a new relfilenode) */
    /* a partitioned table: its leaves' files (chunks_written: copies of
     * leaves whose columns differ from its own) */
    bool partitioned;
    /* new here and started from the seed lake (ltap_request.seed_prefix) */
    bool seeded;
} ltap_table_status;

typedef struct ltap_result {
    ltap_table_status *tables; /* owned; free with ltap_result_free() */
    size_t ntables;
    size_t dropped; /* lake tables removed (their relation is gone) */
    /* data files of an unfinished earlier run (never committed) deleted */
    uint64_t orphans_deleted;
    uint64_t heap_bytes_read; /* all tables */
    uint64_t lake_bytes_written;
    uint64_t rows_written;
    /* Keys (from the store's root) of the data files this run's commits
     * removed from their tables: no longer live, still in older snapshots
     * until they expire. Owned. */
    char **removed;
    size_t nremoved;
    /* Keys of data files of other prefixes (a seed lake's) that the live
     * sets of this run's tables list, for the owner's expiry. Owned. */
    char **shared;
    size_t nshared;
} ltap_result;

/*
 * Materialize every table at r->lsn. Tables whose lake LSN is already
 * r->lsn are skipped, so a run that a crash interrupted is finished by the
 * next one with the same P. 0, or the first error with a message in err
 * (naming the database and table); tables committed before the error stay
 * committed. out may be NULL; otherwise the caller frees it with
 * ltap_result_free().
 */
int ltap_materialize(const ltap_request *r, ltap_result *out, lb_err *err);

void ltap_result_free(ltap_result *res);

#endif
