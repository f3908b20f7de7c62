/*
 * gc.h: deleting snapshots nothing needs any more, and purging
 * deleted timelines (gc.c): a timer on the pageserver's loop that queues
 * a pass on the worker pool every gc_interval, and one pass on demand.
 *
 * Callers: daemon.c (start, stop), http_api.c (POST /v1/gc),
 * timelines.c (ps_gc_plan).
 */
#ifndef PS_GC_H
#define PS_GC_H

#include "daemon.h"

/* On the loop's thread: start at start-up; stop once the loop has
 * stopped (waits for a pass that runs). */
int ps_gc_start(ps_daemon *d, ps_gc **out);
void ps_gc_stop(ps_gc *g);
/* One pass over every timeline now; *deleted: snapshots deleted. */
int ps_gc_once(ps_daemon *d, size_t *deleted);
/* Which of m's snapshots to keep (keep[i] for snapshots[i]), given its
 * children's branch points and the window's start (wall-clock ms). */
void ps_gc_plan(const ps_tlmeta *m, const lb_lsn *branch_points, size_t nbranch, int64_t horizon_ms,
                bool *keep);

#endif
