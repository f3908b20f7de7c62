/*
 * indexer.h: per ingested timeline, the stream of its WAL into its WAL
 * block index (indexer.c, walindex.h), driven by the pageserver's loop.
 *
 * Life cycle: ps_indexer_open (blocking: opens the index, installs files
 * from object storage; a worker job), ps_indexer_attach (on the loop: the
 * stream and the housekeeping timer start), ps_indexer_detach (on the
 * loop), ps_indexer_close (any thread, after detach: waits for its
 * housekeeping job, syncs, frees).
 *
 * Callers: ingest.c (one indexer per ingest).
 */
#ifndef PS_INDEXER_H
#define PS_INDEXER_H

#include "daemon.h"
#include "walindex.h"

int ps_indexer_open(ps_daemon *d, const char *tenant, const char *timeline, ps_indexer **out);
int ps_indexer_attach(ps_indexer *x);
void ps_indexer_detach(ps_indexer *x);
void ps_indexer_close(ps_indexer *x);
int ps_indexer_commit_before(ps_indexer *x, int64_t t_unix_us, lb_lsn *end_lsn, int64_t *ts,
                             uint32_t *xid, char *err, size_t errcap);
lb_lsn ps_indexer_position(ps_indexer *x);
/* Call fn(arg, ix) with the index under the indexer's lock (the loop,
 * which feeds it, waits meanwhile: keep fn short); returns what fn returned. owner is the
 * ps_indexer. For LTAP's queries (ltap/timeline.h). */
int ps_indexer_with_index(void *owner, int (*fn)(void *arg, ps_walindex *ix), void *arg);

#endif
