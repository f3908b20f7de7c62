/*
 * daemon.h: the pageserver process: configuration, the registry of
 * timelines (its entries; the operations are timelines.h's), and the pool
 * of object store handles. Each module has its own header: timelines.h,
 * ingest.h, indexer.h, walserve.h, gc.h, http_api.h.
 *
 * Threads: one loop, one pool, the HTTP server's threads.
 *   - main runs the pageserver's lb_loop (common/event_loop.h): signals
 *     as events (SIGTERM/SIGINT stop, SIGHUP re-reads the keys and the
 *     token file), every timer, and every libpq stream to the safekeepers
 *     (indexer.c, driven without blocking as safekeeper/recv.c does). Its
 *     callbacks never block for long: they feed the WAL index, take leaf
 *     locks, and queue jobs.
 *   - the worker pool (workers.h: worker_threads, a queue of at most
 *     worker_queue jobs) runs everything that blocks: per ingested
 *     timeline, its ticks (libpq to its local redo standby, pg_ctl,
 *     snapshots and their uploads; ingest.c), its WAL index's housekeeping
 *     (fsync, uploads, reports to the safekeepers; indexer.c); gc passes
 *     (gc.c); and for HTTP, timeline creation (initdb, uploads), POST
 *     snapshot, POST gc and the tar of a basebackup. A full queue refuses
 *     a job: a request gets 503, a timer tries again at its next run.
 *   - HTTP: the HTTP server's pool (http_threads) runs the handlers; those
 *     with blocking work hand it to the worker pool and wait for it
 *     (holding no lock), DELETE stops the timeline's ingest itself.
 *   Other threads reach the loop through ps_loop_call (a queue and
 *   lb_loop_wakeup; they wait for the call, holding no lock). The loop
 *   never waits for a worker or an HTTP thread, and a job never waits for
 *   another queued job (ps_workers_run from a worker runs inline), so
 *   neither can deadlock on the other. Stop flags are atomics, or under
 *   the lock of what they guard; a timeline's ingest is stopped by its
 *   flag, detached from the loop (ps_loop_call), then its jobs are waited
 *   for through its reference count.
 *
 * Locks. d->lock (the registry), d->ingest_lock (the table of ingests),
 * d->call_lock (the loop's call queue), the pool's lock, and a gc's
 * small lock are leaf locks: held only to find, copy or change
 * entries in memory, never across I/O and never while waiting for another
 * lock. Entries used outside them are reference-counted (ps_timeline.refs,
 * an ingest's refs, which its queued jobs hold too), so removal never
 * frees what another thread still uses: DELETE takes a timeline out,
 * stops its ingest (waiting for its references on a condition variable,
 * holding nothing) and frees it last. The long locks take leaf locks
 * only: a timeline's save_lock (an index save, with its upload), an
 * ingest's lock (a tick or a snapshot, on a worker; it takes save_lock
 * through ps_add_snapshot; a tick that finds it taken skips its turn
 * instead of waiting), an indexer's lock (its index, during a feed, a
 * query or an fsync; uploads happen outside it, and the loop only
 * trylocks it, so the loop never waits for it). So /status, which takes
 * leaf locks and reads the ingest state atomically, never waits for a
 * snapshot. Order where two are held: ingest_lock before d->lock; an
 * ingest's lock before save_lock before d->lock.
 *
 * Layers are immutable, so readers need no lock once they hold a
 * timeline's snapshot list (copied under d->lock). Object store handles
 * are not thread-safe: each job borrows one from the pool of handles
 * (ps_store_acquire) and gives it back.
 *
 * Shared by the files of this component only.
 */
#ifndef PS_DAEMON_H
#define PS_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
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
    char *remote_storage;   /* object store URL (required: the disk is only a cache) */
    char *auth_public_keys; /* PEM file or directory of *.pem: every token verifies with one */
    char *pg_bin_dir;       /* PostgreSQL 15 binaries; default from pg_config */
    char *pg_user;          /* run PostgreSQL as this user when started as root */
    int log_level;          /* lb_log_level */
    int64_t http_threads;
    int64_t snapshot_interval_ms;
    int64_t gc_retention_ms; /* snapshots this young are kept (PITR window) */
    int64_t gc_interval_ms;
    int64_t ingest_idle_timeout_ms; /* stop a redo standby that replayed nothing this long */
    int64_t deleted_retention_ms;   /* a deleted timeline's objects are purged this much later */
    int64_t worker_threads;         /* the pool for blocking work (workers.h) */
    int64_t worker_queue;           /* jobs that may wait for a worker; more get 503 */
    int64_t max_basebackups;        /* basebackups at once (each holds a worker while its
                                     * client reads); more get 503; 0: worker_threads - 1 */
    char *auth_token_file;          /* this pageserver's token towards the safekeepers; "": none */
    int64_t lake_chunk_blocks;      /* heap blocks per lake data file (ltap chunk_blocks) */
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
typedef struct ps_call ps_call;
struct ps_workers;
struct lb_loop;

typedef struct ps_daemon {
    ps_config conf;
    struct lb_loop *loop;  /* main's: signals, timers, libpq streams */
    pthread_t loop_thread; /* the thread that runs it (main) */
    struct ps_workers *workers;
    pthread_mutex_t call_lock;         /* calls, loop_closed (a leaf lock) */
    pthread_cond_t call_cond;          /* a call ran */
    ps_call *calls;                    /* queued by other threads for the loop */
    bool loop_closed;                  /* the loop runs no more calls: refuse new ones */
    struct lb_auth_token *token;       /* from auth_token_file; NULL: none; re-read on SIGHUP */
    _Atomic uint64_t token_generation; /* goes up at every reload of token */
    lb_http_server *http;
    struct lb_auth_keys *keys; /* from auth_public_keys; re-read on SIGHUP */
    int http_port;             /* the bound port, set before any other thread starts */
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
    pthread_mutex_t ingest_lock; /* the table of ingests; held only to find or change it */
    pthread_cond_t ingest_cond;  /* an ingest's last outside reference went */
    ps_ingest *ingests[PS_MAX_TIMELINES];
    int ningests;
    int64_t snapshot_interval_ms;
    ps_gc *gc;
    lb_counter *gc_deleted;
    _Atomic int basebackups; /* running now (http_api.c), at most max_basebackups */
} ps_daemon;

/* d->loop and d->loop_thread are set (main.c) before init. */
int ps_daemon_init(ps_daemon *d);
void ps_daemon_shutdown(ps_daemon *d);

/* Run fn(d, arg) on the loop's thread and wait for it (directly when
 * called on that thread). The caller holds no lock. 0, or -ECANCELED
 * when the loop has stopped for good (fn has not run). */
typedef void (*ps_loop_fn)(ps_daemon *d, void *arg);
int ps_loop_call(ps_daemon *d, ps_loop_fn fn, void *arg);
/* Whether the calling thread is the loop's. */
bool ps_on_loop(ps_daemon *d);

/* Borrow an object store handle for the calling thread; give it back with
 * ps_store_release (read lb_objstore_error() before). 0 or an error from
 * lb_objstore_open. */
int ps_store_acquire(ps_daemon *d, lb_objstore **out);
void ps_store_release(ps_daemon *d, lb_objstore *s);

#endif
