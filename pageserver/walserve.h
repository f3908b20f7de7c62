/*
 * walserve.h: WAL for a server restoring a timeline, across its
 * ancestors, and the pageserver's calls to a timeline's safekeepers.
 *
 * Callers: http_api.c (GET .../wal/{name}), timelines.c (branch points),
 * ingest.c and indexer.c (consumer reports, new WAL).
 */
#ifndef PS_WALSERVE_H
#define PS_WALSERVE_H

#include "daemon.h"
#include "wal.h"

/* Write WAL segment or history file `name` of the timeline, as a server
 * restoring it must see it, into fd (an empty file; left at offset 0).
 * A segment is whole, and *valid says how much of it is WAL (wal.h): the
 * most that any source had, which the caller passes on so that a client
 * needing more asks elsewhere or again. LB_ENOTFOUND when the timeline's
 * history has no such file; LB_EPARSE for a name that is neither; LB_EHTTP
 * when a safekeeper that may hold it did not answer. err says which. */
int ps_wal_fetch(ps_daemon *d, const char *tenant, const char *timeline, const char *name, int fd,
                 lb_wal_valid *valid, char *err, size_t errcap);
/* The PostgreSQL timeline of the timeline's WAL just before lsn, from the
 * term history of the safekeeper with the newest log, and the quorum's
 * commit LSN: the highest any safekeeper reports (m->pg_tli and
 * m->last_record_lsn for a timeline without safekeepers). LB_EHTTP when no
 * safekeeper answered, or fewer than a majority did and their commit LSN
 * is below lsn (a majority could say more); LB_EPROTO for a malformed
 * answer when none was good. */
int ps_tli_at(ps_daemon *d, const ps_tlmeta *m, lb_lsn lsn, uint32_t *tli, lb_lsn *commit_lsn,
              char *err, size_t errcap);
/* Tell the timeline's safekeepers that consumer `name` needs no WAL before
 * applied (their WAL removal waits for every consumer). Best effort. */
void ps_report_consumer(ps_daemon *d, const ps_tlmeta *m, const char *name, lb_lsn applied);

#endif
