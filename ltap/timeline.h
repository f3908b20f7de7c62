/*
 * timeline.h: a timeline's lake, as the pageserver keeps it. After each
 * snapshot, while its redo standby is still paused at the snapshot's P,
 * the pageserver makes one call, ltap_timeline_materialize(), which
 *
 *   - answers the transcoder's dirty test from the timeline's WAL block
 *     index (pageserver/walindex.h), read under the index's own lock;
 *   - runs ltap_materialize() at P into <tenant>/<timeline>/lake/... of
 *     the pageserver's object store;
 *   - keeps what the next run needs (below) and each table's status,
 *     which GET .../lake and /metrics show.
 *
 * Dirty blocks. Between the last complete run at L and P, a chunk is
 * dirty when one of its main-fork blocks changed in [L, P) (records that
 * only set hint bits or visibility-map bits do not count), or was touched
 * at any time by a transaction that committed or aborted in [L, P). The
 * second set would need the whole index to answer; instead each complete
 * run stores the blocks touched so far by transactions still open at its
 * P ("pending", keyed by xid or subxid), at <prefix>/lake/_ltap_pending.json.
 * A run reads the index over [L, P) once: changes, and commit and abort
 * records (with their subtransactions); a pending xid that ended makes its
 * blocks dirty, the others carry over. Every table was current at L (the
 * state is written only after a complete run), so this one set serves
 * every table whatever its own lake LSN; a table created since is written
 * in full. With no state (the first run, or a store that lost it) the
 * scan starts at the index's beginning. The index lock is held only for
 * these scans, never while rows are read.
 *
 * Expiry. Each data file a run removes from its table's live set is noted,
 * with the time, in <prefix>/lake/_ltap_removed.json; a run deletes the
 * noted files older than the retention (the timeline's GC window), so
 * snapshots older than it can no longer be read. Just before, the Iceberg
 * snapshots that stopped being current before the window are expired from
 * each table's metadata (lakeview.h), so no snapshot an Iceberg reader can
 * choose names a deleted file; the Delta log keeps its versions (as
 * Delta's VACUUM leaves them). An engine reading the current snapshot, or
 * one inside the window, finds every file. A dropped table is deleted at
 * once.
 *
 * Files of a run that was killed or failed before its commits: deleted
 * by the next run (ltap_materialize, ltap.c's sweep_orphans).
 *
 * Branches. A branch's lake is its own, under <tenant>/<branch timeline>,
 * but its first run starts from its parent's newest run at or before the
 * branch point (records kept per run in <prefix>/lake/_ltap_runs/): its
 * tables list the parent's files by key and write only chunks dirty since
 * (page LSNs of the standby's files, the parent's pending blocks there,
 * the branch's own index). What a branch lists of another lake it records
 * in that lake's lake/_ltap_refs/<branch>.json; a lake's expiry and table
 * deletes keep what is referenced. ltap/README.md has the details.
 *
 * The index must have reached P before the run: the call waits for it a
 * while (the index and the standby stream from the same safekeepers) and
 * otherwise skips this snapshot's lake run (the next snapshot catches up;
 * the lake LSN lags meanwhile).
 *
 * Callers: pageserver/ingest.c (after a snapshot), pageserver/http_api.c
 * (status).
 */
#ifndef LTAP_TIMELINE_H
#define LTAP_TIMELINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"
#include "lsn.h"
#include "metrics.h"
#include "lake/store.h"
#include "ltap.h"
#include "pageserver/walindex.h"

/* How to reach a timeline's WAL block index. The pageserver fills this
 * with LTAP_PS_INDEX_ACCESS() (below), so ltap/ links nothing of the
 * pageserver: it calls these pointers only. */
typedef struct ltap_index_access {
    void *owner; /* the index's owner (the pageserver's indexer) */
    /* Call fn(arg, ix) with the index, serialized with whoever feeds it;
     * returns what fn returned. */
    int (*with_index)(void *owner, int (*fn)(void *arg, ps_walindex *ix), void *arg);
    int (*changes)(ps_walindex *ix, lb_lsn from, lb_lsn to, ps_walindex_change_cb cb, void *arg);
    int (*xacts)(ps_walindex *ix, lb_lsn from, lb_lsn to, ps_walindex_xact_cb cb, void *arg);
    lb_lsn (*resume_lsn)(const ps_walindex *ix);
    const char *(*errmsg)(const ps_walindex *ix);
} ltap_index_access;

#define LTAP_PS_INDEX_ACCESS(owner_, with_index_)                                                  \
    ((ltap_index_access){.owner = (owner_),                                                        \
                         .with_index = (with_index_),                                              \
                         .changes = ps_walindex_changes,                                           \
                         .xacts = ps_walindex_xacts,                                               \
                         .resume_lsn = ps_walindex_resume_lsn,                                     \
                         .errmsg = ps_walindex_errmsg})

typedef struct ltap_timeline_run {
    const char *tenant, *timeline;
    const char *conninfo;  /* the redo standby, replay paused at lsn */
    lb_lsn lsn;            /* P */
    const char *store_url; /* the pageserver's object store */
    ltap_index_access index;
    lb_metrics *metrics;   /* per-table gauges; may be NULL */
    int64_t index_wait_ms; /* how long to wait for the index to reach P; 0: 20 s */
    uint32_t chunk_blocks; /* 0: LTAP_CHUNK_BLOCKS */
    /* Data files a commit removed are deleted from the store once they
     * have been out of the live set this long (the timeline's GC
     * retention); negative: never. */
    int64_t retention_ms;
    /* The owner's stop flag: when it turns true the run stops before its
     * next chunk (-ECANCELED); the next snapshot's run goes on from there.
     * May be NULL. */
    const atomic_bool *cancel;
    /* A branch: its parent timeline ("" or NULL for a root) and the branch
     * point B; the redo standby's data directory, whose files are exact at
     * P during the call (after the snapshot's restartpoint). */
    const char *ancestor;
    lb_lsn ancestor_lsn;
    const char *pgdata;
} ltap_timeline_run;

/* One lake run at r->lsn (see above). 0; LB_ETIMEOUT when the index did
 * not reach P in time (nothing written); or the first error, with its
 * message in err and in the timeline's status. Never called twice at
 * once for one timeline (the caller holds its snapshot lock). */
int ltap_timeline_materialize(const ltap_timeline_run *r, lb_err *err);

/* The timeline's lake status as JSON: the last run's LSN, time and error,
 * and per table its lake LSN, its lag behind commit_lsn (the timeline's
 * last replayed commit LSN, in bytes), files, bytes and rows. An object
 * with "tables": [] when no run happened since the pageserver started and
 * none was read back from the store (ltap_timeline_status_load(),
 * lakeview.h). NULL only when out of memory. */
json_t *ltap_timeline_status(const char *tenant, const char *timeline, lb_lsn commit_lsn);

/* Internal (lakeview.c): install a status read back from the store for a
 * timeline that has none from a run since the start (takes tables, else
 * leaves them to the caller: false); whether one is recorded. */
bool ltap__status_seed(const char *tenant, const char *timeline, lb_lsn run_lsn,
                       ltap_table_status *tables, size_t ntables, lb_metrics *metrics);
bool ltap__status_known(const char *tenant, const char *timeline);

/* ---- the dirty set of one run (ltap_timeline_materialize; tests) ------------ */

typedef struct ltap_dirty ltap_dirty;

/* Wait for the index to reach p (LB_ETIMEOUT after index_wait_ms, 0: 20 s),
 * load the pending state under prefix (none, or unreadable: from the
 * index's beginning), and scan the index over [L, p) under its lock. 0, or
 * an error with its message in err (the index's own for its errors). The
 * caller frees *out. */
int ltap_dirty_build(const ltap_index_access *ia, lake_store *st, const char *prefix, lb_lsn p,
                     int64_t index_wait_ms, ltap_dirty **out, lb_err *err);
/* The transcoder's dirty test (ltap_dirty_fn) over a built set. */
int ltap_dirty_test(void *d, uint32_t spc, uint32_t db, uint32_t rel, uint32_t first, uint32_t n,
                    lb_lsn since);
/* Store the pending state at p, for the next run: only after a complete run. */
int ltap_dirty_save(const ltap_dirty *d, lake_store *st, const char *prefix, lb_err *err);
lb_lsn ltap_dirty_from(const ltap_dirty *d); /* L: where the scan started */
size_t ltap_dirty_blocks(const ltap_dirty *d);
size_t ltap_dirty_pending(const ltap_dirty *d); /* (xid, block) pairs carried */
void ltap_dirty_free(ltap_dirty *d);

#endif
