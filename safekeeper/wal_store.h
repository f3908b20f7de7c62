/*
 * wal_store.h: a timeline's WAL on a safekeeper's disk, as PostgreSQL
 * segment files.
 *
 * Files are named as PostgreSQL names them (TLI + segment number, 24 hex
 * characters) and are always full-size: a new segment is preallocated with
 * zeros (so a full disk shows up when the segment is created, not in the
 * middle of a write) and renamed into place. A segment can therefore be
 * served to PostgreSQL as-is; bytes never written read as zeros.
 *
 * Writes are not durable until sk_wal_store_sync(), which fsyncs every
 * segment written since the last sync (group commit: the caller batches
 * many writes per sync). A failed fsync poisons the store: the kernel may
 * have dropped the dirty pages, so nothing written since the last good sync
 * can be trusted, and every later call fails with LB_EFSYNC. The timeline
 * must be reopened from disk (which re-derives the end of WAL).
 *
 * Callers: timeline.c (receiving, serving, truncating, removing offloaded
 * segments). Not thread-safe: one owner thread.
 */
#ifndef SK_WAL_STORE_H
#define SK_WAL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

typedef struct sk_wal_store sk_wal_store;

/* Open the store in dir (created if missing). seg_size must be valid for
 * PostgreSQL (a power of two, 1 MiB to 1 GiB). */
int sk_wal_store_open(const char *dir, uint32_t seg_size, sk_wal_store **out);
void sk_wal_store_close(sk_wal_store *st);
uint32_t sk_wal_store_seg_size(const sk_wal_store *st);

/* Write n bytes at lsn into timeline tli's segments, creating them as
 * needed. Not durable until sk_wal_store_sync(). Errors: -ENOSPC and other
 * -errno from creating or writing a segment; LB_EFSYNC if poisoned. */
int sk_wal_store_write(sk_wal_store *st, uint32_t tli, lb_lsn lsn, const void *bytes, size_t n);
/* Make every write so far durable. 0, or LB_EFSYNC (and the store is
 * poisoned from now on). */
int sk_wal_store_sync(sk_wal_store *st);
bool sk_wal_store_poisoned(const sk_wal_store *st);

/* Start timeline new_tli at start_lsn: its first segment gets the bytes
 * [segment start, start_lsn) of old_tli's segment, as PostgreSQL does when
 * it switches timelines, so the segment can be served whole. If old_tli
 * has no such segment the prefix stays zero. Durable on return. */
int sk_wal_store_begin_tli(sk_wal_store *st, uint32_t new_tli, uint32_t old_tli, lb_lsn start_lsn);

/* Read n bytes at lsn from timeline tli. -ENOENT if the segment does not
 * exist. A read may not cross a segment boundary unless both exist. */
int sk_wal_store_read(sk_wal_store *st, uint32_t tli, lb_lsn lsn, void *buf, size_t n);
bool sk_wal_store_has_segment(const sk_wal_store *st, uint32_t tli, uint64_t segno);
/* Path of a segment file (which may not exist). */
int sk_wal_store_segment_path(const sk_wal_store *st, uint32_t tli, uint64_t segno, char *path,
                              size_t cap);

/* Discard WAL at and after end on timeline tli: zero the rest of end's
 * segment, remove its later segments, and remove every segment of a later
 * timeline (a later timeline always starts after the point being kept).
 * Durable on return. */
int sk_wal_store_truncate(sk_wal_store *st, uint32_t tli, lb_lsn end);
/* Remove every segment (of any timeline) numbered below segno, except
 * those numbered keep (pass UINT64_MAX to keep none). Durable on return. */
int sk_wal_store_remove_before(sk_wal_store *st, uint64_t segno, uint64_t keep);

/* Segments present, as (tli, segno) pairs sorted by segno then tli. The
 * caller frees *list. */
typedef struct sk_segment_id {
    uint32_t tli;
    uint64_t segno;
} sk_segment_id;
int sk_wal_store_list(const sk_wal_store *st, sk_segment_id **list, size_t *n);

#endif
