/*
 * snapshot.h: a PostgreSQL data directory, exact at a replay LSN, into a
 * layer; and layers back into a data directory.
 *
 * Taking a snapshot (the caller has paused replay and checkpointed, so no
 * data file changes while we read): relation main-fork pages whose page
 * LSN is newer than the previous snapshot's P, or that are all zeros (a
 * zero page carries no LSN, and may replace an older page of a relfilenode
 * that was dropped and reused); visibility-map, free-space-map and init
 * forks in full (their pages change without a newer page LSN); every
 * relation fork's size; and every other file in full, but the ones
 * pg_basebackup leaves out (postmaster.pid, pg_wal contents, temporary and
 * statistics files...), and the WAL needed to start a server from the
 * snapshot: the pg_wal segments from R to P.
 *
 * Reconstructing: each relation block comes from the newest layer that
 * has it; blocks past the newest manifest's size do not exist; other files
 * come from the newest layer.
 *
 * Callers: the pageserver's timeline code (bootstrap, snapshots,
 * basebackup) and tests.
 */
#ifndef PS_SNAPSHOT_H
#define PS_SNAPSHOT_H

#include <stdint.h>

#include "layer.h"
#include "lsn.h"
#include "tar.h"

typedef struct ps_snapshot_stats {
    uint64_t main_pages_seen;    /* main-fork pages read */
    uint64_t main_pages_written; /* main-fork pages newer than prev P (or zero) */
    uint64_t other_pages;        /* FSM / VM / init fork pages */
    uint64_t files;              /* non-relation files */
    uint64_t bytes;              /* size of the layer file */
    /* Why the data directory cannot be snapshotted, on LB_EUNSUPPORTED
     * (a tablespace's link, say). */
    char unsupported[400];
} ps_snapshot_stats;

/* Write layer_path from datadir. info->prev_lsn selects the pages; the
 * pg_wal segments from info->redo_lsn's through info->lsn's (segments of
 * seg_size bytes) and every timeline history file go in as files, so that
 * a server started from the layer finds the WAL it replays first. */
int ps_snapshot_take(const char *datadir, const ps_layer_info *info, uint32_t seg_size,
                     const char *layer_path, ps_snapshot_stats *stats);

/* Rebuild a data directory at layers[0]'s LSN. layers[0] is the newest;
 * the rest are older, in order. Writes into target (created, must not
 * exist). Files get mode 0600, directories 0700. WAL segments (of
 * seg_size) in pg_wal end at wal_cut: a segment starting at or past it is
 * left out, the one holding it is zeroed from it on (a branch started from
 * an ancestor's snapshot); UINT64_MAX keeps them whole. */
int ps_reconstruct_dir(ps_layer *const *layers, size_t n, const char *target, lb_lsn wal_cut,
                       uint32_t seg_size);
/* The same as a tar stream (a basebackup). */
int ps_reconstruct_tar(ps_layer *const *layers, size_t n, lb_tar_writer *tar, lb_lsn wal_cut,
                       uint32_t seg_size);

/* End of the record at lsn (a checkpoint record, say) in datadir's pg_wal,
 * on PostgreSQL timeline tli: what a snapshot's P is when it is taken of
 * a stopped cluster. */
int ps_wal_record_end(const char *datadir, uint32_t tli, uint32_t seg_size, lb_lsn lsn,
                      lb_lsn *end);

/* Parse a relation file path relative to the data directory:
 * "base/5/16384_vm.2" -> key {1663, 5, 16384, VM}, segment 2. 0 or LB_ENOTFOUND. */
int ps_parse_relpath(const char *relpath, ps_relkey *key, uint32_t *segno);
/* The inverse, for segment segno of key. */
int ps_relpath(const ps_relkey *key, uint32_t segno, char *out, size_t cap);

#endif
