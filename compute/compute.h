/*
 * compute.h: running one PostgreSQL compute from its spec.
 *
 * cc_compute_run() takes a compute from nothing to ready and keeps it
 * there:
 *
 *   primary  elect (safekeeper/election.h), basebackup, recovery.signal,
 *            start, replay to the end of committed WAL, promote, check the
 *            new PostgreSQL timeline is the elected one, announce to the
 *            safekeepers;
 *   replica  basebackup, standby.signal streaming from a safekeeper;
 *   static   basebackup at or before the LSN, replay to it and pause.
 *
 * States (GET /status): init, electing, restoring, starting, replaying,
 * promoting, ready, failed, stopping.
 *
 * While a primary runs, compute-ctl stops PostgreSQL at once (immediate
 * shutdown) and starts the compute again from the quorum (a new election,
 * a new basebackup) when a setting durability rests on departs from what
 * it wrote, or when PostgreSQL logs a cancelled synchronous-replication
 * wait; it stops PostgreSQL and exits when a safekeeper reports a newer
 * term than its own.
 *
 * It returns the process exit code: 0 after a stop request (*stop set, by
 * SIGTERM) and a clean PostgreSQL shutdown; 1 when the compute could not
 * be started; 3 when PostgreSQL died on its own; 4 when its term was
 * superseded (a supervisor must not simply restart it: that would take
 * the timeline back from the newer primary).
 *
 * What compute-ctl does not do, because its compute token may not:
 * create the timeline on the safekeepers, or tell the pageserver which
 * safekeepers to ingest from. Management (the controller; make run's
 * launcher and the e2e harness) does both before and after starting a
 * primary (docs/auth.md).
 *
 * Callers: main.c.
 */
#ifndef CC_COMPUTE_H
#define CC_COMPUTE_H

#include <signal.h>
#include <stdbool.h>

#include "spec.h"

#define CC_EXIT_OK 0
#define CC_EXIT_FAILED 1
#define CC_EXIT_BADSPEC 2
#define CC_EXIT_PG_DIED 3
#define CC_EXIT_SUPERSEDED 4 /* a newer term exists: another compute is primary */

typedef enum cc_state {
    CC_STATE_INIT,
    CC_STATE_ELECTING,
    CC_STATE_RESTORING,
    CC_STATE_STARTING,
    CC_STATE_REPLAYING,
    CC_STATE_PROMOTING,
    CC_STATE_READY,
    CC_STATE_FAILED,
    CC_STATE_STOPPING,
} cc_state;

const char *cc_state_name(cc_state state);

/* A line of PostgreSQL's log that says a backend stopped waiting for the
 * quorum after committing locally (syncrep.c's two WARNINGs). */
bool cc_log_line_is_sync_cancel(const char *line);

/* spec->stream_from is set here (replica). *reload (SIGHUP) makes it
 * read auth_public_keys and auth_token_file again, and is cleared. */
int cc_compute_run(cc_spec *spec, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload);

#endif
