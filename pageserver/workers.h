/*
 * workers.h: the pageserver's bounded pool of worker threads (workers.c),
 * for the work that blocks: a redo standby's ticks and snapshots (libpq
 * to the local standby, pg_ctl), index and layer uploads, basebackups,
 * initdb, gc passes.
 *
 * The queue is bounded: a job that finds it full is refused (-EBUSY,
 * which the HTTP API answers with 503) instead of waiting. A job never
 * waits for another job (ps_workers_run from a worker runs inline), so
 * the pool cannot deadlock on itself.
 *
 * Callers: daemon.c (create, free), ingest.c, indexer.c, gc.c, http_api.c.
 */
#ifndef PS_WORKERS_H
#define PS_WORKERS_H

#include <stdbool.h>

typedef struct ps_workers ps_workers;
typedef void (*ps_work_fn)(void *arg);

/* threads >= 1 workers; at most queue_max jobs waiting for one. */
int ps_workers_new(int threads, int queue_max, ps_workers **out);
/* Run the queued jobs, then join the threads and free. Jobs submitted
 * meanwhile are refused. */
void ps_workers_free(ps_workers *w);

/* Queue fn(arg) and return: 0, or -EBUSY when queue_max jobs wait (or the
 * pool is stopping), -ENOMEM. The pool never touches arg; the caller
 * knows from fn itself when it has run. */
int ps_workers_submit(ps_workers *w, ps_work_fn fn, void *arg);
/* Run fn(arg) on a worker and wait for it (holding no lock, the caller
 * should hold none either); inline when called from a worker. 0, or
 * -EBUSY as ps_workers_submit (then fn has not run). */
int ps_workers_run(ps_workers *w, ps_work_fn fn, void *arg);

/* Jobs running now, and waiting (for /metrics). */
void ps_workers_counts(ps_workers *w, int *running, int *queued);

/* Whether the calling thread is one of a pool's workers. */
bool ps_workers_on_worker(void);

#endif
