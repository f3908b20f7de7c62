/*
 * daemon.h: the pageserver process: configuration, the registry of
 * timelines, object storage, and the operations the HTTP API exposes.
 *
 * Threads: HTTP handlers run on the HTTP server's threads. The registry
 * is guarded by one mutex, held only to find or insert entries and to
 * change a timeline's metadata; slow work (initdb, reading layers,
 * uploads) happens outside it. Layers are immutable, so readers need no
 * lock once they hold a timeline's snapshot list (copied under the lock).
 *
 * Shared by the files of this component only.
 */
#ifndef PS_DAEMON_H
#define PS_DAEMON_H

#include <pthread.h>
#include <stdbool.h>

#include <jansson.h>

#include "config.h"
#include "http_server.h"
#include "metrics.h"
#include "objstore.h"
#include "tar.h"
#include "tlmeta.h"

#define PS_MAX_TIMELINES 4096

typedef struct ps_config {
    char *data_dir;
    lb_config_addr listen_http;
    char *remote_storage; /* object store URL; default file://<data_dir>/remote */
    char *pg_bin_dir;     /* PostgreSQL 15 binaries; default from pg_config */
    char *pg_user;        /* run PostgreSQL as this user when started as root */
    char *log_level;
    int64_t http_threads;
    int64_t snapshot_interval_ms;
    int64_t gc_retention_ms; /* snapshots this young are kept (PITR window) */
    int64_t gc_interval_ms;
    int64_t ingest_idle_timeout_ms; /* stop a redo standby that replayed nothing this long */
    int64_t deleted_retention_ms;   /* a deleted timeline's objects are purged this much later */
} ps_config;

typedef struct ps_ingest ps_ingest;

/* A timeline in the registry. meta and generation change under d->lock
 * only; generation goes up at every change that must reach the index.
 * save_lock orders the saves of the index (local and remote): a save
 * takes the registry's current state under it, so a later save never
 * writes an older state (saved_generation, under save_lock). refs counts
 * users outside d->lock (under d->lock); an entry removed from the
 * registry is freed by whoever drops its last reference. */
typedef struct ps_timeline {
    ps_tlmeta meta;
    uint64_t generation;
    pthread_mutex_t save_lock;
    uint64_t saved_generation;
    int refs;
    bool deleting; /* a DELETE runs: no branch of it, no new ingest */
} ps_timeline;

/* Object store handles: one per user at a time (lb_objstore is not
 * thread-safe), from a pool that grows to the peak concurrency. */
typedef struct ps_store_pool {
    pthread_mutex_t lock;
    lb_objstore *free[64];
    int nfree;
} ps_store_pool;
typedef struct ps_indexer ps_indexer;
typedef struct ps_gc ps_gc;

typedef struct ps_daemon {
    ps_config conf;
    lb_http_server *http;
    lb_metrics *metrics;
    ps_store_pool stores;
    pthread_mutex_t lock;
    ps_timeline *timelines[PS_MAX_TIMELINES]; /* owned */
    int ntimelines;
    lb_counter *storage_bytes, *storage_errors;
    lb_histogram *snapshot_seconds;
    lb_gauge *ingest_lag_bytes, *last_record_lsn;
    lb_histogram *snapshot_bytes;
    lb_counter *snapshot_pages; /* main-fork pages written into layers */
    lb_counter *download_bytes;
    pthread_mutex_t ingest_lock;
    ps_ingest *ingests[PS_MAX_TIMELINES];
    int ningests;
    int64_t snapshot_interval_ms;
    ps_gc *gc;
    lb_counter *gc_deleted;
} ps_daemon;

int ps_daemon_init(ps_daemon *d);
void ps_daemon_shutdown(ps_daemon *d);

/* Borrow an object store handle for the calling thread; give it back with
 * ps_store_release (read lb_objstore_error() before). 0 or an error from
 * lb_objstore_open. */
int ps_store_acquire(ps_daemon *d, lb_objstore **out);
void ps_store_release(ps_daemon *d, lb_objstore *s);

/* ---- timelines (timelines.c) ---------------------------------------------- */

/* Bootstrap a root timeline: initdb -k, and its data directory as the
 * first snapshot. *out: a copy of the metadata (caller frees). */
int ps_create_root(ps_daemon *d, const char *tenant, const char *timeline, ps_tlmeta *out,
                   char *err, size_t errcap);
/* A branch: metadata only, whatever the database size. */
int ps_create_branch(ps_daemon *d, const char *tenant, const char *timeline, const char *ancestor,
                     lb_lsn lsn, ps_tlmeta *out, char *err, size_t errcap);
/* A copy of a timeline's metadata; LB_ENOTFOUND. */
int ps_get_timeline(ps_daemon *d, const char *tenant, const char *timeline, ps_tlmeta *out);
/* Stop its ingest (redo standby, WAL index), then delete softly: a marker
 * <tenant>/<timeline>/index/deleted.json in object storage, the timeline
 * gone from the registry and the local disk; its objects stay until
 * ps_purge_deleted. LB_ECONFLICT for a timeline with branches. */
int ps_delete_timeline(ps_daemon *d, const char *tenant, const char *timeline, char *err,
                       size_t errcap);
/* Purge timelines deleted more than conf.deleted_retention ago: the
 * objects the pageserver wrote (layers/, walindex/, index/), never wal/
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

/* ---- ingest.c: the redo standby and snapshots -------------------------------- */
/* Start (or restart) ingesting a timeline that has safekeepers. */
int ps_ingest_start(ps_daemon *d, const char *tenant, const char *timeline);
void ps_ingest_stop_all(ps_daemon *d);
/* Stop one timeline's ingest (thread, WAL index, redo standby) and wait
 * for it; nothing if it is not ingesting. */
void ps_ingest_stop(ps_daemon *d, const char *tenant, const char *timeline);
/* Take a snapshot now if the standby has replayed a checkpoint since the
 * last one. 0 with *taken, or an error. Blocks until done. */
int ps_ingest_snapshot_now(ps_daemon *d, const char *tenant, const char *timeline, bool *taken,
                           char *err, size_t errcap);

/* ---- walserve.c: WAL for restore, across ancestors ------------------------ */
/* Write WAL segment or history file `name` of the timeline, as a server
 * restoring it must see it, into fd (an empty file; left at offset 0).
 * LB_ENOTFOUND when the timeline's history has no such file; LB_EPARSE for
 * a name that is neither; LB_EHTTP when a safekeeper that may hold it did
 * not answer. err says which. */
int ps_wal_fetch(ps_daemon *d, const char *tenant, const char *timeline, const char *name, int fd,
                 char *err, size_t errcap);
/* The PostgreSQL timeline of the timeline's WAL just before lsn, from its
 * safekeepers' term history, and their commit LSN (m->pg_tli and
 * m->last_record_lsn for a timeline without safekeepers). */
int ps_tli_at(ps_daemon *d, const ps_tlmeta *m, lb_lsn lsn, uint32_t *tli, lb_lsn *commit_lsn,
              char *err, size_t errcap);
/* Tell the timeline's safekeepers that consumer `name` needs no WAL before
 * applied (their WAL removal waits for every consumer). Best effort. */
void ps_report_consumer(const ps_tlmeta *m, const char *name, lb_lsn applied);
/* A segment ("TTTTTTTTXXXXXXXXYYYYYYYY") or history ("TTTTTTTT.history") name. */
int ps_wal_name_parse(const char *name, uint32_t seg_size, bool *history, uint32_t *tli,
                      uint64_t *segno);

/* gc of one timeline: drop the snapshots ps_gc_plan does not keep, from
 * the index (planned and applied under the registry lock, so that no
 * branch is created in between), then their layers. */
int ps_gc_timeline(ps_daemon *d, const char *tenant, const char *timeline, int64_t horizon_ms,
                   size_t *deleted);
/* Internal: the registry entry (caller holds d->lock). */
ps_timeline *ps__find_locked(ps_daemon *d, const char *tenant, const char *timeline);

/* ---- gc.c ------------------------------------------------------------------ */
int ps_gc_start(ps_daemon *d, ps_gc **out);
void ps_gc_stop(ps_gc *g);
/* One pass over every timeline now; *deleted: snapshots deleted. */
int ps_gc_once(ps_daemon *d, size_t *deleted);
/* Which of m's snapshots to keep (keep[i] for snapshots[i]), given its
 * children's branch points and the window's start (wall-clock ms). */
void ps_gc_plan(const ps_tlmeta *m, const lb_lsn *branch_points, size_t nbranch, int64_t horizon_ms,
                bool *keep);

/* "starting", "running", "idle" (the redo standby is stopped until new WAL
 * comes) or NULL when the timeline is not ingesting. */
const char *ps_ingest_state(ps_daemon *d, const char *tenant, const char *timeline);
/* Why the timeline's last snapshot could not be taken ("" if it was, or
 * none was tried), into out. LB_ENOTFOUND when it is not ingesting. */
int ps_ingest_snapshot_error(ps_daemon *d, const char *tenant, const char *timeline, char *out,
                             size_t cap);
/* PITR: the end LSN of the last commit at or before t (µs since the Unix
 * epoch) in the timeline's WAL index; LB_ENOTFOUND if none (or no index). */
int ps_ingest_commit_before(ps_daemon *d, const char *tenant, const char *timeline,
                            int64_t t_unix_us, lb_lsn *end_lsn, int64_t *ts, uint32_t *xid,
                            char *err, size_t errcap);

/* ---- indexer.c: the WAL block index of a timeline, from its safekeepers ----- */
int ps_indexer_start(ps_daemon *d, const char *tenant, const char *timeline, ps_indexer **out);
void ps_indexer_stop(ps_indexer *x);
int ps_indexer_commit_before(ps_indexer *x, int64_t t_unix_us, lb_lsn *end_lsn, int64_t *ts,
                             uint32_t *xid, char *err, size_t errcap);
lb_lsn ps_indexer_position(ps_indexer *x);

/* ---- http_api.c ------------------------------------------------------------ */
int ps_http_routes(ps_daemon *d);

#endif
