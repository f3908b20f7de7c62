/*
 * timeline.h: one timeline (tenant id, timeline id) on a safekeeper: its
 * acceptor state, its WAL, the positions derived from them, and the
 * protocol operations (vote, accept, elected) that change them.
 *
 * Positions, always write_lsn >= flush_lsn >= record_end... see below:
 *   write_lsn   end of the WAL bytes written to segment files;
 *   flush_lsn   end of the bytes fsynced: the only position ever reported
 *               to the compute as flushed;
 *   end_lsn     end of the last complete, checksummed record within
 *               flush_lsn: the "end of WAL" an election uses (a record
 *               cut in half by a crash is not WAL);
 *   commit_lsn  highest LSN flushed on a majority in the current term;
 *               consumers are never served WAL past it.
 *
 * Every function here runs on the daemon's loop thread; HTTP handlers reach
 * them through the loop's job queue. Nothing is thread-safe.
 */
#ifndef SK_TIMELINE_H
#define SK_TIMELINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "acceptor.h"
#include "buf.h"
#include "lsn.h"
#include "wal_store.h"

typedef struct sk_timeline sk_timeline;

typedef struct sk_timeline_params {
    const char *tenant_id;
    const char *timeline_id;
    uint64_t system_id;
    uint32_t wal_seg_size;
    lb_lsn start_lsn; /* where this timeline's WAL on safekeepers begins */
    uint32_t pg_tli;  /* PostgreSQL timeline of the WAL at start_lsn */
} sk_timeline_params;

/* ---- lifecycle (daemon) ------------------------------------------------- */

/* Create a new timeline under root/<tenant>/<timeline>. LB_EEXIST if it
 * exists with different parameters (the same parameters: 0, idempotent). */
int sk_timeline_create(const char *root, const sk_timeline_params *p, sk_timeline **out);
/* Open an existing timeline directory: load the state, open the WAL, and
 * find the end of valid WAL by decoding forward from the last known
 * record boundary. */
int sk_timeline_open(const char *dir, sk_timeline **out);
void sk_timeline_close(sk_timeline *tl);
/* Remove the timeline's files (after close). */
int sk_timeline_remove_dir(const char *root, const char *tenant_id, const char *timeline_id);

const sk_acceptor_state *sk_timeline_state(const sk_timeline *tl);
const char *sk_timeline_dir(const sk_timeline *tl);
lb_lsn sk_timeline_write_lsn(const sk_timeline *tl);
lb_lsn sk_timeline_flush_lsn(const sk_timeline *tl);
lb_lsn sk_timeline_end_lsn(const sk_timeline *tl);
lb_lsn sk_timeline_commit_lsn(const sk_timeline *tl);
/* What may be served to consumers, offloaded or read: committed WAL that
 * this safekeeper has itself flushed, min(commit_lsn, flush_lsn). The
 * commit LSN, learned from peers, can be ahead of what a safekeeper that
 * was down or partitioned holds; those bytes are not here yet. */
lb_lsn sk_timeline_serve_lsn(const sk_timeline *tl);
lb_lsn sk_timeline_start_lsn(const sk_timeline *tl);
/* true once an fsync failed: the timeline acknowledges nothing more until
 * it is reopened. */
bool sk_timeline_broken(const sk_timeline *tl);
json_t *sk_timeline_status_json(const sk_timeline *tl);

/* ---- receiving WAL from the compute (recv.c) ----------------------------- */

/* The compute this timeline streams from in its current term, or NULL. */
const char *sk_timeline_compute(const sk_timeline *tl);
uint64_t sk_timeline_compute_term(const sk_timeline *tl);
/* Where and on which PostgreSQL timeline to start streaming. */
void sk_timeline_stream_start(const sk_timeline *tl, lb_lsn *start, uint32_t *tli);

/* Append WAL received from the compute of term `term` at lsn. Bytes
 * before write_lsn must equal what is stored (a resend) and are skipped;
 * a gap is refused with LB_EPROTO; a term that is no longer current with
 * LB_ESTALETERM. Not durable until sk_timeline_sync(). */
int sk_timeline_append(sk_timeline *tl, uint64_t term, lb_lsn lsn, const void *bytes, size_t n);
/* Group commit: fsync everything appended, then advance flush_lsn and
 * end_lsn. 0, or LB_EFSYNC (the timeline is broken from now on). */
int sk_timeline_sync(sk_timeline *tl);

/* ---- protocol (HTTP API via the loop) ----------------------------------- */

/* Vote for term: granted iff term > promised term. On grant the term is
 * durable before this returns, and any stream from an older term's compute
 * is cut at once (the caller stops its receiver). Unflushed WAL is synced
 * first, so the reported end_lsn is what a proposer may use. */
int sk_timeline_vote(sk_timeline *tl, uint64_t term, bool *granted);

/* Adopt the proposer's history for term (which ends in the new term's
 * entry starting at end): truncate WAL this safekeeper holds that the
 * history does not contain, and take the missing WAL up to `end` from
 * fetch(). LB_ESTALETERM if term is below the promised term. */
typedef int (*sk_fetch_fn)(void *arg, lb_lsn from, lb_lsn to, uint32_t tli, void *buf);
int sk_timeline_accept(sk_timeline *tl, uint64_t term, const sk_term_entry *history, size_t n,
                       lb_lsn end, sk_fetch_fn fetch, void *fetch_arg);
/* The same in three steps, so that the daemon fetches from the donor off
 * its loop: begin truncates and adopts the history and sets *from, where
 * the WAL to take starts (1: accepted already, nothing to do); write takes
 * the next bytes (in order, checked record by record); finish makes them
 * durable and adopts the term. write and finish fail with LB_ESTALETERM
 * when another vote or accept came in between; the proposer retries. */
#define SK_ACCEPT_CHUNK (256u * 1024)
int sk_timeline_accept_begin(sk_timeline *tl, uint64_t term, const sk_term_entry *history, size_t n,
                             lb_lsn end, lb_lsn *from);
int sk_timeline_accept_write(sk_timeline *tl, uint64_t term, lb_lsn pos, const void *buf, size_t n);
int sk_timeline_accept_finish(sk_timeline *tl, uint64_t term);

/* The proposer of term has a majority holding WAL to the term's start, so
 * commit_lsn advances to it; with a compute (a libpq conninfo, persisted)
 * the timeline also starts streaming from it. compute NULL: only the
 * first part (sent before the compute restores). LB_ESTALETERM if term is
 * not the accepted term. */
int sk_timeline_elected(sk_timeline *tl, uint64_t term, const char *compute_conninfo);

/* Peers report their flush positions; commit_lsn follows a majority. */
void sk_timeline_peer_flush(sk_timeline *tl, int peer, uint64_t term, uint64_t last_log_term,
                            lb_lsn flush_lsn);
/* Number of safekeepers in the set (this one included), for majorities. */
void sk_timeline_set_quorum(sk_timeline *tl, int members);

/* ---- offload and removal (offload.c, HTTP) ------------------------------ */

/* Whole segments [*from, *to) that are committed and not yet offloaded. */
void sk_timeline_offload_range(const sk_timeline *tl, uint64_t *from, uint64_t *to);
/* Segments below segno are in object storage: record it (durably), then
 * remove local segments that no consumer still needs. */
int sk_timeline_offloaded(sk_timeline *tl, uint64_t segno);
/* A consumer reports the LSN it has applied (it needs nothing older).
 * LB_ETOOBIG when SK_MAX_CONSUMERS are registered already. */
int sk_timeline_consumer(sk_timeline *tl, const char *name, lb_lsn applied);
/* Local WAL below this LSN may be removed. */
lb_lsn sk_timeline_removal_horizon(const sk_timeline *tl);
/* A consumer that has not reported for ttl_ms no longer holds WAL back,
 * and its slot is reused (a pageserver that went away must not pin the
 * WAL, nor the slots, for good). */
#define SK_CONSUMER_TTL_DEFAULT_MS (24 * 3600 * 1000LL)
void sk_timeline_set_consumer_ttl(sk_timeline *tl, int64_t ttl_ms);

/* ---- serving (walsender, HTTP) ------------------------------------------ */

/* Read committed WAL: n bytes at lsn along the term history; bytes past
 * limit (commit_lsn for consumers, end_lsn for peer recovery) read as
 * zeros. */
int sk_timeline_read(sk_timeline *tl, lb_lsn lsn, void *buf, size_t n, lb_lsn limit);
/* PostgreSQL timeline of the WAL at lsn (0 if none). */
uint32_t sk_timeline_tli_at(const sk_timeline *tl, lb_lsn lsn);
/* Path of a segment file of this timeline's WAL (which may not exist). */
int sk_timeline_segment_path(const sk_timeline *tl, uint32_t tli, uint64_t segno, char *path,
                             size_t cap);
/* PostgreSQL's history file for PostgreSQL timeline tli, built from the
 * term history: one line per ancestor timeline with its switch point.
 * LB_ENOTFOUND if tli is not a timeline of this history (or is the first,
 * which has no history file). Appends to out. */
int sk_timeline_history_file(const sk_timeline *tl, uint32_t tli, lb_buf *out);

#endif
