/*
 * ingest.h: per timeline, the redo standby and its snapshots (ingest.c).
 *
 * Callers: http_api.c (PUT safekeepers, snapshots, status, PITR),
 * timelines.c (DELETE stops a timeline's ingest first), daemon.c.
 */
#ifndef PS_INGEST_H
#define PS_INGEST_H

#include "daemon.h"
#include "errors.h"
#include "lsn.h"

/* Start (or restart) ingesting a timeline that has safekeepers. */
int ps_ingest_start(ps_daemon *d, const char *tenant, const char *timeline);
void ps_ingest_stop_all(ps_daemon *d);
/* The pageserver's token was reloaded: every redo standby gets it (its
 * restore script's header file, its primary_conninfo) at its next tick. */
void ps_ingest_token_changed(ps_daemon *d);
/* Stop one timeline's ingest (thread, WAL index, redo standby) and wait
 * for it; nothing if it is not ingesting. */
void ps_ingest_stop(ps_daemon *d, const char *tenant, const char *timeline);
/* Take a snapshot now if the standby has replayed a checkpoint since the
 * last one. 0 with *taken, or an error. Blocks until done. */
int ps_ingest_snapshot_now(ps_daemon *d, const char *tenant, const char *timeline, bool *taken,
                           char *err, size_t errcap);

/* LTAP now, not at the next snapshot: pause the running redo standby at
 * what it has replayed (P), run the timeline's lake at P if P > since,
 * resume (ltap/timeline.h). Blocks until done; *p gets P. 0;
 * LB_ENOTFOUND when the timeline is not ingesting or its standby is idle
 * (its lake is as of when it stopped); -EBUSY (no worker); or the lake
 * run's error; with a message in err. */
int ps_ingest_lake_now(ps_daemon *d, const char *tenant, const char *timeline, lb_lsn since,
                       lb_lsn *p, lb_err *err);

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

#endif
