/*
 * lakeview.h: a timeline's lake read back from object storage, as a
 * reader finds it: the list of materialized tables
 * (<prefix>/lake/_ltap_tables.json, written by ltap_materialize() after
 * each complete run), each table's newest Iceberg metadata (the commit
 * point of lake/table.h), and from that metadata each table's status
 * (lake LSN, files, bytes, rows) as a run would report it.
 *
 * Nothing here writes. Callers: the pageserver's Iceberg REST catalog
 * (pageserver/catalog.c) and the lake status after a restart
 * (ltap_timeline_status_load(), timeline.h).
 */
#ifndef LTAP_LAKEVIEW_H
#define LTAP_LAKEVIEW_H

#include <stddef.h>

#include <jansson.h>

#include "errors.h"
#include "lsn.h"
#include "metrics.h"
#include "ltap.h"
#include "lake/store.h"

/* One lake table of the list. */
typedef struct ltap_lake_entry {
    char *database, *schema, *table;
    char *prefix; /* its key prefix in the store, "<tenant>/<timeline>/lake/..." */
} ltap_lake_entry;

typedef struct ltap_lake_list {
    lb_lsn lsn; /* P of the run that wrote the list */
    ltap_lake_entry *tables;
    size_t n;
} ltap_lake_list;

/* Load the table list of the timeline under tl_prefix ("<tenant>/<timeline>").
 * 0; LB_ENOTFOUND when no run wrote one yet (*out empty); LB_EPARSE for a
 * list that is not what ltap_materialize() writes; or the store's error;
 * with a message in err. The caller frees *out with ltap_lake_list_free(). */
int ltap_lake_list_load(lake_store *st, const char *tl_prefix, ltap_lake_list *out, lb_err *err);
void ltap_lake_list_free(ltap_lake_list *l);

/* The table of the list named (database, schema, table), or NULL. */
const ltap_lake_entry *ltap_lake_list_find(const ltap_lake_list *l, const char *database,
                                           const char *schema, const char *table);

/* The newest Iceberg metadata of the table under tprefix: its key
 * (metadata/v<N>.metadata.json with the largest N: each version is created
 * put-if-absent, so the largest is the last commit) and its JSON. 0;
 * LB_ENOTFOUND (no metadata: the table was dropped); LB_EPARSE (not JSON);
 * or the store's error; with a message in err. The caller frees *key and
 * releases *meta. */
int ltap_lake_metadata(lake_store *st, const char *tprefix, char **key, json_t **meta, lb_err *err);

/* Each listed table's status from its newest metadata's current snapshot
 * (lakebase.lsn, total-data-files, total-files-size, total-records); a
 * table without a snapshot or without metadata is left out. *run_lsn is
 * the list's P. 0, LB_ENOTFOUND (no list), or an error with a message in
 * err. The caller frees *tables. */
int ltap_lake_status_read(lake_store *st, const char *tl_prefix, lb_lsn *run_lsn,
                          ltap_table_status **tables, size_t *ntables, lb_err *err);

/* Expire, in the Iceberg metadata of every listed table, the snapshots
 * that stopped being current at or before cutoff_ms
 * (lake_iceberg_expire_snapshots()): after the caller deletes the data
 * files removed at or before cutoff_ms, no snapshot a reader can choose
 * names a missing file. *expired counts the snapshots. A table that fails
 * is logged and left for the next call; 0, LB_ENOTFOUND (no list), or the
 * list's error with a message in err. */
int ltap_lake_expire_snapshots(lake_store *st, const char *tl_prefix, int64_t cutoff_ms,
                               size_t *expired, lb_err *err);

/* The lake status of a timeline after a restart: unless a run since the
 * start (or an earlier call) recorded one, read it from the store at
 * store_url and record it (ltap_timeline_status(), /metrics in metrics,
 * which may be NULL), so a restarted pageserver, also one that lost its
 * disk, reports the same per-table lake LSN, files, bytes and rows. 0
 * (also when one was recorded already); LB_ENOTFOUND (no lake run ever
 * wrote a table list: nothing recorded); or the store's error, with a
 * message in err. */
int ltap_timeline_status_load(const char *tenant, const char *timeline, const char *store_url,
                              lb_metrics *metrics, lb_err *err);

#endif
