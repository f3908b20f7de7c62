/*
 * indexer.h: per ingested timeline, the thread that streams its WAL
 * into its WAL block index (indexer.c, walindex.h).
 *
 * Callers: ingest.c (one indexer per ingest).
 */
#ifndef PS_INDEXER_H
#define PS_INDEXER_H

#include "daemon.h"
#include "walindex.h"

int ps_indexer_start(ps_daemon *d, const char *tenant, const char *timeline, ps_indexer **out);
void ps_indexer_stop(ps_indexer *x);
int ps_indexer_commit_before(ps_indexer *x, int64_t t_unix_us, lb_lsn *end_lsn, int64_t *ts,
                             uint32_t *xid, char *err, size_t errcap);
lb_lsn ps_indexer_position(ps_indexer *x);
/* Call fn(arg, ix) with the index under the indexer's lock (the thread
 * that feeds it waits meanwhile); returns what fn returned. owner is the
 * ps_indexer. For LTAP's queries (ltap/timeline.h). */
int ps_indexer_with_index(void *owner, int (*fn)(void *arg, ps_walindex *ix), void *arg);

#endif
