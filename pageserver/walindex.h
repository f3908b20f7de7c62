/*
 * walindex.h: the WAL block index of one timeline.
 *
 * Built from the timeline's committed WAL with the generic record decoder
 * (common/wal.h): which (relfilenode, fork, block) changed at which LSN, by
 * which xid (and top-level xid), and every commit and abort record (with the
 * prepared variants) with its timestamp and subtransactions. It answers
 * PITR by time now (the branch LSN for a timestamp) and LTAP later (blocks
 * changed, or touched by transactions that ended, in an LSN range).
 *
 * The index lives in one directory, one file per WAL segment, holding the
 * records that start in that segment. Only small per-file summaries are
 * kept in memory; queries read the files they need. A file whose segment is
 * complete is sealed (compressed, with a summary footer) and can be uploaded
 * to object storage and installed again by a pageserver that lost its disk.
 *
 * Exports, by caller:
 *   - ingest: open, feed, sync, resume_lsn, close;
 *   - timelines / HTTP API: last_commit_before (branch at a time);
 *   - LTAP: changes, block_changes, xid_blocks, xacts;
 *   - storage sync: sealed_files, install.
 *
 * Every call returns 0, -errno, or an LB_E* code (errors.h); a failed call
 * leaves a one-line message in ps_walindex_errmsg(). A checksum mismatch in
 * a stored file is LB_ECRC and its message names the file; no query ever
 * answers from bytes that do not check out.
 *
 * An index is used by one caller at a time (no locking inside).
 */
#ifndef PS_WALINDEX_H
#define PS_WALINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

typedef struct ps_walindex ps_walindex;

/* A relation block: RelFileNode, fork (LB_FORK_*) and block number. */
typedef struct ps_blockref {
    uint32_t spc, db, rel;
    uint8_t fork;
    uint32_t blkno;
} ps_blockref;

/* Flags of one block reference of a record. */
#define PS_WALINDEX_HAS_IMAGE 0x01u   /* carries a full-page image */
#define PS_WALINDEX_APPLY_IMAGE 0x02u /* ... that replay restores */
#define PS_WALINDEX_WILL_INIT 0x04u   /* replay initialises the page from scratch */
#define PS_WALINDEX_HAS_DATA 0x08u    /* carries rmgr data for the block */

/* One block reference of one record. */
typedef struct ps_walindex_change {
    lb_lsn lsn;            /* start of the record */
    lb_lsn end_lsn;        /* its end (EndRecPtr): the page LSN once replayed */
    uint32_t xid;          /* the record's xid (0 for none) */
    uint32_t toplevel_xid; /* top-level xid a subtransaction's record carries, or 0 */
    uint8_t rmid;          /* resource manager (lb_wal_rmgr_name) */
    uint8_t info;          /* xl_info */
    uint8_t flags;         /* PS_WALINDEX_* */
    ps_blockref block;
} ps_walindex_change;

typedef enum ps_walindex_xact_kind {
    PS_WALINDEX_COMMIT = 1,
    PS_WALINDEX_ABORT,
    PS_WALINDEX_COMMIT_PREPARED,
    PS_WALINDEX_ABORT_PREPARED,
} ps_walindex_xact_kind;

/* A commit or abort record. */
typedef struct ps_walindex_xact {
    ps_walindex_xact_kind kind;
    lb_lsn lsn;     /* start of the record */
    lb_lsn end_lsn; /* its end: where recovery_target_lsn / a branch point goes */
    uint32_t xid;   /* the transaction (for the prepared kinds, the prepared xid) */
    int64_t time_unix_us;
    uint32_t nsubxacts; /* its committed or aborted subtransactions */
    const uint32_t *subxacts;
} ps_walindex_xact;

/* A sealed index file, for upload. Strings valid during the callback only. */
typedef struct ps_walindex_file {
    const char *name; /* "<16 hex digits of the segment number>.walidx" */
    const char *path;
    uint64_t segno;
    lb_lsn base_lsn; /* end of the record before its first one */
    lb_lsn end_lsn;  /* end of its last record */
    uint64_t size;
} ps_walindex_file;

/* ---- ingest ------------------------------------------------------------- */

/* Open or create the index in dir (created if missing) for a timeline whose
 * WAL starts at start_lsn (a record boundary or page start) with segments of
 * seg_size bytes. start_lsn matters only while the directory holds no index
 * file. Reads the headers and footers of sealed files and scans the unsealed
 * one (at most two after a crash): a tail cut by a crash is truncated to the
 * last complete frame; a checksum mismatch is LB_ECRC, files that do not
 * join up LB_EPARSE. On failure *out is NULL and the message is in msg (if
 * not NULL, msglen bytes). The caller frees the index with ps_walindex_close. */
int ps_walindex_open(const char *dir, lb_lsn start_lsn, uint32_t seg_size, ps_walindex **out,
                     char *msg, size_t msglen);
/* Free the index. Nothing is pending between calls; what was appended but
 * not synced is left to the page cache (a crash may cut it: reopening
 * resumes before it). NULL is fine. */
void ps_walindex_close(ps_walindex *ix);

/* Where the next feed must start: the end of the last indexed record
 * (start_lsn when none). After an error, a reopen or an install, feeding
 * starts again here. */
lb_lsn ps_walindex_resume_lsn(const ps_walindex *ix);

/* Feed the next n bytes of committed WAL, continuing where the previous feed
 * stopped; the first feed, and the first after any nonzero return, starts
 * at resume_lsn.
 * Records are indexed as they complete; the bytes of an incomplete record
 * are kept until the rest comes. Index entries reach the file at the end of
 * each call (not fsynced: see sync). Returns 0; LB_WAL_END when the bytes
 * reach the end of WAL (zeroed or recycled space: records before it are
 * indexed); a decoder error (LB_ECRC, LB_EPARSE, LB_ETOOBIG) with its
 * message, the index holding every record before the bad one; -errno for
 * a failed write. */
int ps_walindex_feed(ps_walindex *ix, const void *bytes, size_t n);

/* fsync what was appended. Sealed files are durable when sealed. A failed
 * write or fsync is fatal for the handle: every later call fails until the
 * index is reopened, which resumes from what the files hold. */
int ps_walindex_sync(ps_walindex *ix);

/* The message of the last failed call ("" when none). Valid until the next
 * call on ix. */
const char *ps_walindex_errmsg(const ps_walindex *ix);

/* Memory held: summaries, buffers and the decoder's current record. */
size_t ps_walindex_memory(const ps_walindex *ix);

/* ---- PITR --------------------------------------------------------------- */

/* The branch point for a time t (microseconds since the Unix epoch): the
 * last commit (COMMIT or COMMIT PREPARED) before the first commit or abort
 * record whose timestamp is after t, which is where PostgreSQL's
 * recovery_target_time = t (inclusive) stops. With timestamps rising along
 * the WAL, as they do from one primary, that is the last commit at or
 * before t. Gives its end LSN, timestamp and xid (any may be NULL).
 * LB_ENOTFOUND when no indexed commit qualifies. Reads at most one file. */
int ps_walindex_last_commit_before(ps_walindex *ix, int64_t t_unix_us, lb_lsn *end_lsn,
                                   int64_t *time_unix_us, uint32_t *xid);

/* ---- queries (LTAP) ------------------------------------------------------ */

/* Callbacks return 0 to go on; anything else stops the query, which then
 * returns that value. On an error, callbacks may already have fired for
 * earlier entries: discard what they collected. Records are visited in LSN
 * order; a record is in [from, to) when its start LSN is. */
typedef int (*ps_walindex_change_cb)(void *arg, const ps_walindex_change *c);
typedef int (*ps_walindex_xact_cb)(void *arg, const ps_walindex_xact *x);

/* Every block reference of the records in [from, to). */
int ps_walindex_changes(ps_walindex *ix, lb_lsn from, lb_lsn to, ps_walindex_change_cb cb,
                        void *arg);
/* The references to block b in [from, to). */
int ps_walindex_block_changes(ps_walindex *ix, const ps_blockref *b, lb_lsn from, lb_lsn to,
                              ps_walindex_change_cb cb, void *arg);
/* The block references of records of xid in [from, to): records whose xid
 * is xid, and records of its subtransactions that carry xid as their
 * top-level xid (wal_level=logical). For the rest of a transaction's
 * subtransactions see the subxacts of its commit or abort. */
int ps_walindex_xid_blocks(ps_walindex *ix, uint32_t xid, lb_lsn from, lb_lsn to,
                           ps_walindex_change_cb cb, void *arg);
/* The commit and abort records in [from, to). */
int ps_walindex_xacts(ps_walindex *ix, lb_lsn from, lb_lsn to, ps_walindex_xact_cb cb, void *arg);

/* ---- storage sync -------------------------------------------------------- */

/* Each sealed file, oldest first. Returns 0 or what cb returned. */
int ps_walindex_sealed_files(ps_walindex *ix, int (*cb)(void *arg, const ps_walindex_file *f),
                             void *arg);

/* Verify a sealed file downloaded as name (bytes[0..n)) and install it in
 * the directory. It must extend the indexed range: before its first file,
 * or (when no file is unsealed) at resume_lsn. Returns 0 (also when the
 * same file is already there), LB_ECRC / LB_EPARSE for bytes that do not
 * check out, LB_EEXIST for a different file of the same segment,
 * LB_ECONFLICT when it does not join the indexed range. */
int ps_walindex_install(ps_walindex *ix, const char *name, const void *bytes, size_t n);

#endif
