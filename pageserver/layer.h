/*
 * layer.h: the pageserver's immutable layer files.
 *
 * A layer holds what one snapshot of a timeline changed, exactly as of the
 * snapshot's replay LSN P:
 *   - relation pages (relfilenode, fork, block -> 8 KiB page), each
 *     zstd-compressed on its own and checksummed (CRC-32C of the page);
 *   - the snapshot's relation manifest: every relation fork that exists
 *     at P and its size in blocks (a page not in this layer is found in
 *     older layers; a block at or past the size does not exist);
 *   - whole non-relation files (pg_control, SLRU segments, relation maps,
 *     configuration), each compressed and checksummed.
 * The index (sorted by key), the manifest and the file table sit at the
 * end, covered by one checksum, so a reader verifies the layer's structure
 * on open and each page when it reads it: a corrupt layer gives LB_ECRC,
 * never a wrong page.
 *
 * Callers: snapshot.c (writes one per snapshot, and reads them back for a
 * basebackup); timelines.c (opens them for a basebackup, uploading and
 * downloading them as opaque files); ingest.c.
 */
#ifndef PS_LAYER_H
#define PS_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "lsn.h"

#define PS_PAGE_SIZE 8192

typedef struct ps_relkey {
    uint32_t spc, db, rel;
    uint8_t fork;
} ps_relkey;

typedef struct ps_layer_info {
    lb_lsn lsn;      /* P: the layer is exact at this replay LSN */
    lb_lsn redo_lsn; /* R: replay of WAL for a server started from it begins here */
    lb_lsn prev_lsn; /* P of the previous snapshot (pages newer than it are here) */
    uint64_t created_unix_ms;
} ps_layer_info;

typedef struct ps_rel_size {
    ps_relkey key;
    uint32_t nblocks;
} ps_rel_size;

/* ---- writing (snapshot.c) ------------------------------------------------ */

typedef struct ps_layer_writer ps_layer_writer;

/* Write a new layer to path (a temp file renamed into place on finish). */
int ps_layer_writer_new(const char *path, const ps_layer_info *info, ps_layer_writer **out);
/* Pages may come in any order; a key may be added once. */
int ps_layer_add_page(ps_layer_writer *w, const ps_relkey *key, uint32_t blkno,
                      const void *page /* PS_PAGE_SIZE bytes */);
int ps_layer_add_rel_size(ps_layer_writer *w, const ps_relkey *key, uint32_t nblocks);
int ps_layer_add_file(ps_layer_writer *w, const char *name, const void *bytes, size_t n);
/* Write index, manifest, file table and footer; fsync; rename into place.
 * Frees the writer in every case. */
int ps_layer_writer_finish(ps_layer_writer *w);
/* Abandon: removes the temp file, frees the writer. */
void ps_layer_writer_abort(ps_layer_writer *w);

/* ---- reading ------------------------------------------------------------- */

typedef struct ps_layer ps_layer;

/* Open and verify the layer's structure. LB_ECRC / LB_EPARSE when corrupt. */
int ps_layer_open(const char *path, ps_layer **out);
void ps_layer_close(ps_layer *l);
const ps_layer_info *ps_layer_get_info(const ps_layer *l);

/* The page for (key, blkno) if this layer has it: 0 and the page in out
 * (PS_PAGE_SIZE bytes); LB_ENOTFOUND; LB_ECRC if its bytes are corrupt. */
int ps_layer_get_page(ps_layer *l, const ps_relkey *key, uint32_t blkno, void *out);
bool ps_layer_has_page(const ps_layer *l, const ps_relkey *key, uint32_t blkno);
/* The relation manifest (sorted by key). Valid while the layer is open. */
const ps_rel_size *ps_layer_rel_sizes(const ps_layer *l, size_t *n);
/* Number of pages stored, and the i-th page's key (sorted order). */
size_t ps_layer_npages(const ps_layer *l);
void ps_layer_page_key(const ps_layer *l, size_t i, ps_relkey *key, uint32_t *blkno);
/* Non-relation files: count, names, and content (appended to out). */
size_t ps_layer_nfiles(const ps_layer *l);
const char *ps_layer_file_name(const ps_layer *l, size_t i);
int ps_layer_get_file(ps_layer *l, size_t i, lb_buf *out);

int ps_relkey_cmp(const ps_relkey *a, const ps_relkey *b);

#endif
