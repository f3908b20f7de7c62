/*
 * timelines.h: the registry of timelines and what the HTTP API does
 * with them: create (bootstrap, branch), delete (soft, purged later),
 * basebackups, the index of snapshots and its saves, loading at start-up.
 *
 * Callers: http_api.c (the API), ingest.c (snapshots, the standby's data
 * directory), gc.c (ps_gc_timeline), walserve.c (metadata), daemon.c.
 */
#ifndef PS_TIMELINES_H
#define PS_TIMELINES_H

#include "daemon.h"
#include "tar.h"

/* Bootstrap a root timeline: initdb -k, and its data directory as the
 * first snapshot. *out: a copy of the metadata (caller frees). */
int ps_create_root(ps_daemon *d, const char *tenant, const char *timeline, ps_tlmeta *out,
                   char *err, size_t errcap);
/* A branch: metadata only, whatever the database size. */
int ps_create_branch(ps_daemon *d, const char *tenant, const char *timeline, const char *ancestor,
                     lb_lsn lsn, ps_tlmeta *out, char *err, size_t errcap);
/* Whether ancestor is an ancestor of timeline (its parent, or the
 * parent's, ...), as the registry says now. */
bool ps_is_ancestor(ps_daemon *d, const char *tenant, const char *ancestor, const char *timeline);
/* A copy of a timeline's metadata; LB_ENOTFOUND. */
int ps_get_timeline(ps_daemon *d, const char *tenant, const char *timeline, ps_tlmeta *out);
/* Stop its ingest (redo standby, WAL index), then delete softly: a marker
 * deleted/<tenant>/<timeline> in object storage, the timeline
 * gone from the registry and the local disk; its objects stay until
 * ps_purge_deleted. LB_ECONFLICT for a timeline with branches. */
int ps_delete_timeline(ps_daemon *d, const char *tenant, const char *timeline, char *err,
                       size_t errcap);
/* Purge timelines deleted more than conf.deleted_retention ago: the
 * objects the pageserver wrote (layers/, walindex/, index/, its catalog
 * entry), never wal/
 * (the safekeepers' offloaded WAL). *purged: timelines purged. */
int ps_purge_deleted(ps_daemon *d, size_t *purged);
/* A basebackup in two steps, so that a missing or corrupt layer is
 * reported before any byte is streamed: prepare picks the newest snapshot
 * at or before lsn (walking ancestors) and opens (downloading if needed)
 * every layer it needs; write streams the tar; free releases the plan. */
typedef struct ps_basebackup_plan ps_basebackup_plan;
int ps_basebackup_prepare(ps_daemon *d, const char *tenant, const char *timeline, lb_lsn lsn,
                          ps_basebackup_plan **plan, lb_lsn *snap_lsn, lb_lsn *redo_lsn, char *err,
                          size_t errcap);
int ps_basebackup_write(ps_basebackup_plan *plan, lb_tar_writer *tar);
/* Whether the next snapshot of the timeline should be a full one. */
bool ps_image_due(ps_daemon *d, const char *tenant, const char *timeline);
/* P of the snapshot a basebackup at lsn starts from (walking ancestors). */
int ps_snapshot_lsn_at(ps_daemon *d, const char *tenant, const char *timeline, lb_lsn lsn,
                       lb_lsn *snap_lsn);
/* The same into a new directory (the redo standby's data directory). */
int ps_basebackup_write_dir(ps_basebackup_plan *plan, const char *target);
void ps_basebackup_free(ps_basebackup_plan *plan);
/* Load every timeline from the local disk, or from object storage for
 * those not on it. */
int ps_load_timelines(ps_daemon *d);
/* Set where a timeline's WAL comes from, durably. */
int ps_set_safekeepers(ps_daemon *d, const char *tenant, const char *timeline,
                       const json_t *safekeepers, char *err, size_t errcap);
/* Record a new snapshot whose layer is at layer_path: upload, then index. */
int ps_add_snapshot(ps_daemon *d, const char *tenant, const char *timeline,
                    const ps_snapshot_meta *snap, const char *layer_path);
/* Ingest progress between snapshots (not persisted). */
void ps_set_last_record_lsn(ps_daemon *d, const char *tenant, const char *timeline, lb_lsn lsn);
/* Local paths. */
void ps_timeline_dir(const ps_daemon *d, const char *tenant, const char *timeline, char *out,
                     size_t cap);
/* Run a PostgreSQL tool as the configured user (common/pgproc.h); exit status,
 * 128 + signal, or -errno. chown_to_pg: the whole tree, never through a link. */
int ps_run_pg(ps_daemon *d, lb_buf *out, const char *tool, const char *const args[]);
int ps_chown_to_pg(ps_daemon *d, const char *path);

/* gc of one timeline: drop the snapshots ps_gc_plan does not keep, from
 * the index (planned and applied under the registry lock, so that no
 * branch is created in between), then their layers. */
int ps_gc_timeline(ps_daemon *d, const char *tenant, const char *timeline, int64_t horizon_ms,
                   size_t *deleted);
/* Internal: the registry entry (caller holds d->lock). */
ps_timeline *ps__find_locked(ps_daemon *d, const char *tenant, const char *timeline);

#endif
