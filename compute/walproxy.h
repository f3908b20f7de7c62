/*
 * walproxy.h: the WAL a compute's restore_command fetches, from wherever it
 * lives.
 *
 * PostgreSQL asks compute-ctl's GET /wal/{name} for segment and history
 * files (restore_command). Sources, in order:
 *   - history files: the pageserver (it completes a branch's history with
 *     its ancestor's), then the safekeepers;
 *   - segments of PostgreSQL timelines at or below the timeline's pg_tli
 *     (a branch's ancestors' WAL, cut at the branch point; a root's
 *     bootstrap WAL): the pageserver, the safekeepers only if it cannot be
 *     reached;
 *   - segments of the timeline's own later TLIs: the safekeepers (a
 *     primary: only those that accepted its term, the donor first, as they
 *     hold WAL up to the term's start), then the pageserver (segments the
 *     safekeepers offloaded and removed).
 * A segment's answer is taken only once it covers need_lsn (wal.h: a
 * safekeeper says how much of a segment is WAL, and one that lags cuts it
 * early): otherwise the next source is asked, the best answer is kept, and
 * the round is asked again for up to short_wait_ms; a segment no source
 * covers is "unsure" (below), never served with zeros in place of WAL.
 * The answer is 404 only when every source was asked and said so; when a
 * source could not be reached and none had the file it is "unsure", which
 * a primary's restore_command turns into a fatal error rather than a
 * promotion short of the committed WAL.
 *
 * Callers: compute.c (sets the sources), http handlers (fetch).
 */
#ifndef CC_WALPROXY_H
#define CC_WALPROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "lsn.h"
#include "safekeeper/election.h"

typedef struct cc_wal_sources {
    char tenant_id[33];
    char timeline_id[33];
    char pageserver[256];
    char safekeepers[SK_ELECT_MAX][256]; /* in the order to ask */
    int nsafekeepers;
    uint32_t pg_tli;             /* the timeline's first PostgreSQL TLI */
    bool has_ancestor;           /* a branch: WAL at or below pg_tli is the ancestor's */
    struct lb_auth_token *token; /* sent to every source; not owned; NULL: none */
    uint32_t seg_size;           /* names are checked with lb_wal_file_parse() (wal.h) */
    lb_lsn need_lsn;             /* WAL before it must be served (a primary: the term's
                                  * start; a static compute: past its LSN); 0: none */
    int short_wait_ms;           /* how long to ask again while no answer covers need_lsn */
} cc_wal_sources;

/* Fetch name into out (appended). 0; LB_ENOTFOUND when every source said
 * so; LB_EHTTP when some source could not be reached and none had it, or
 * when no source's answer covered need_lsn within short_wait_ms;
 * LB_EPARSE for a name that is neither a segment nor a history file. from (size fromcap) names the
 * source used or the last failure. Thread-safe (a client per call). */
int cc_wal_fetch(const cc_wal_sources *src, const char *name, lb_buf *out, char *from,
                 size_t fromcap);

#endif
