/*
 * walindex.c: the WAL block index of one timeline.
 *
 * The ingest path feeds the timeline's committed WAL; every record is
 * decoded with the generic decoder (no rmgr redo) and becomes, if it names a
 * block, an xid or ends a transaction, one compact entry: its LSN and end,
 * rmgr and info, xid and top-level xid, its block references, and for a
 * commit or abort the timestamp, the transaction's xid and its
 * subtransactions. Records with none of these (checkpoints, running-xacts,
 * logical messages without an xid) only move the covered range forward.
 *
 * Files. One per WAL segment, "<segno as 16 hex digits>.walidx", holding the
 * records that start in that segment (a record may end in a later one; a
 * segment in which no record starts, inside one huge record, has no file).
 *
 *   header   64 bytes: magic, version, seg_size, segno, base_lsn (the end of
 *            the record before the file's first), base_prev (that record's
 *            start), flags (sealed), CRC-32C of the rest
 *   frames   each: u32 stored length, u32 raw length | flags (zstd, summary),
 *            u32 CRC-32C of those 8 bytes and the stored bytes, then the
 *            payload. A payload decodes on its own:
 *              varint base, varint entries, entry*,
 *              varint (end - cursor), varint (end - last record start)
 *            where base is the end of the record before the frame's first,
 *            the cursor the end of the previous entry, and end the end of the
 *            last record the frame covers (with or without an entry).
 *   entry    u8 tag (xact kind:3, has xid, has top-level xid, has blocks),
 *            varint (lsn - cursor), varint (end - lsn), u8 rmid, u8 info,
 *            [varint xid], [varint top-level xid],
 *            [xact: zigzag varint time (PostgreSQL epoch), varint xid,
 *                   varint nsubxacts, varint subxact*],
 *            [varint nblocks, block*]
 *   block    u8 fork:2 | flags:4 << 2 | 0x80 same relation as the previous
 *            block, [varint spc, db, rel], varint blkno
 *
 * The file of the segment being written is the active one: plain frames
 * appended at the end of each feed (and every 64 KiB), so a crash leaves at
 * worst a cut last frame, which open truncates. Once the covered range
 * reaches the next segment the file is complete and is sealed: rewritten
 * (temp file, fsync, rename) as zstd frames of up to 64 KiB, a summary frame
 * and a 24-byte trailer pointing at it. A sealed file is never cut by a
 * crash, so any damage to it is corruption.
 *
 * Invariants:
 *   - files[] is sorted by segment; files[i].base_lsn == files[i-1].end_lsn,
 *     and every file but the last is sealed and complete (its end_lsn is at
 *     or past the start of the next segment).
 *   - Only the last file may be unsealed; then active_fd is open on it.
 *   - resume_lsn is the end of the last file (start_lsn with no file); the
 *     decoder, when there is one, was started there or fed from there.
 *   - Between calls nothing is pending: every indexed record is in a file
 *     (written, perhaps not yet fsynced).
 *   - Memory: one summary per file, the pending frame (64 KiB), the
 *     decoder's record, scratch buffers of the largest frame read.
 *
 * Caller: the pageserver's ingest (one index per timeline, single-threaded
 * with its event loop), and through it the HTTP API (PITR) and LTAP.
 */
#include "walindex.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "buf.h"
#include "crc32c.h"
#include "errors.h"
#include "fileio.h"
#include "wal.h"

#define WIX_MAGIC UINT64_C(0x3158494C4157424C)         /* "LBWALIX1" little-endian */
#define WIX_TRAILER_MAGIC UINT64_C(0x444E455849574C42) /* "BLWIXEND" */
#define WIX_VERSION 1u
#define WIX_HEADER_SIZE 64u
#define WIX_TRAILER_SIZE 24u
#define WIX_FRAME_HDR 12u
#define WIX_FLAG_SEALED 1u
#define WIX_FRAME_ZSTD 0x80000000u
#define WIX_FRAME_SUMMARY 0x40000000u
#define WIX_FRAME_LEN_MASK 0x3FFFFFFFu
#define WIX_FRAME_TARGET (64u * 1024)      /* raw payload bytes per frame */
#define WIX_FRAME_MAX (256u * 1024 * 1024) /* sanity bound on a stored frame */
#define WIX_ZSTD_LEVEL 3
#define WIX_SUFFIX ".walidx"
#define WIX_NAME_LEN (16 + sizeof(WIX_SUFFIX) - 1)

/* entry tag bits */
#define TAG_XACT_MASK 0x07u
#define TAG_XID 0x08u
#define TAG_TOPLEVEL 0x10u
#define TAG_BLOCKS 0x20u
#define BLK_SAME_REL 0x80u

/* xact records (access/xact.h) */
#define XLOG_XACT_HAS_INFO 0x80u
#define XINFO_HAS_DBINFO (1u << 0)
#define XINFO_HAS_SUBXACTS (1u << 1)
#define XINFO_HAS_RELFILENODES (1u << 2)
#define XINFO_HAS_INVALS (1u << 3)
#define XINFO_HAS_TWOPHASE (1u << 4)
#define XINFO_HAS_DROPPED_STATS (1u << 8)

/* What one file holds, kept in memory for each file. */
typedef struct wix_summary {
    uint64_t segno;
    bool sealed;
    lb_lsn base_lsn;  /* end of the record before the first one covered */
    lb_lsn base_prev; /* start of that record, 0 when unknown */
    lb_lsn last_lsn;  /* start of the last record covered (base_prev when none) */
    lb_lsn end_lsn;   /* end of the last record covered (base_lsn when none) */
    uint64_t nentries;
    lb_lsn first_entry_lsn, last_entry_lsn; /* when nentries > 0 */
    uint64_t ncommits;                      /* COMMIT and COMMIT PREPARED */
    uint64_t nxacts;                        /* every commit and abort */
    int64_t min_xact_time, max_xact_time;   /* PostgreSQL epoch; when nxacts > 0 */
    lb_lsn last_commit_end;                 /* when ncommits > 0 */
    int64_t last_commit_time;
    uint32_t last_commit_xid;
    uint64_t size;     /* bytes on disk */
    uint64_t data_end; /* where data frames stop: the summary frame, or size */
} wix_summary;

/* One record's entry, decoded. */
typedef struct wix_entry {
    lb_lsn lsn, end;
    uint8_t rmid, info;
    uint32_t xid, toplevel;
    uint8_t xact; /* ps_walindex_xact_kind, 0 for none */
    int64_t xact_time;
    uint32_t xact_xid;
    uint32_t nsub;
    const uint32_t *sub;
    int nblocks;
    struct {
        ps_blockref ref;
        uint8_t flags;
    } blocks[LB_XLR_MAX_BLOCK_ID + 1];
} wix_entry;

struct ps_walindex {
    char *dir;
    uint32_t seg_size;
    lb_lsn start_lsn;

    wix_summary *files;
    size_t nfiles, cap;
    int active_fd;     /* on files[nfiles-1] when unsealed, else -1 */
    bool unsynced;     /* appended since the last fsync */
    bool dir_unsynced; /* a file created since the last directory fsync */
    int broken;        /* a failed write or fsync: sticky until reopened */

    lb_lsn resume_lsn, resume_prev;
    lb_wal_decoder *dec;

    /* The frame being built for the active file. */
    lb_buf pending;
    uint64_t pending_entries;
    uint64_t pending_records; /* records covered, with or without an entry */
    lb_lsn pending_base, pending_cursor;

    /* Scratch, reused: subxacts of the record being indexed or read, frame
     * payloads, and an entry (too big for the stack of a callback chain). */
    uint32_t *subx;
    size_t subx_cap;
    lb_buf frame_raw, frame_out;
    wix_entry entry;

    char errmsg[512];
};

/* ---- errors ---------------------------------------------------------------- */

static int seterr(ps_walindex *ix, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
seterr(ps_walindex *ix, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ix->errmsg, sizeof(ix->errmsg), fmt, ap);
    va_end(ap);
    return rc;
}

/* An I/O failure that leaves the files behind the in-memory state: every
 * later call fails until the index is reopened from disk. */
static int
set_broken(ps_walindex *ix, int rc)
{
    ix->broken = rc;
    return rc;
}

/* ---- encoding ------------------------------------------------------------- */

static int
put_varint(lb_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7F;
        v >>= 7;
        tmp[n++] = (uint8_t)(byte | (v ? 0x80 : 0));
    } while (v);
    return lb_buf_append(b, tmp, n);
}

static int
put_u8(lb_buf *b, uint8_t v)
{
    return lb_buf_append(b, &v, 1);
}

static uint64_t
zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t
unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static void
le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t
get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

/* A bounds-checked reader; bad is set (and stays) on running out or on a
 * varint longer than 64 bits. */
typedef struct rd {
    const uint8_t *p, *end;
    bool bad;
} rd;

static uint64_t
rd_varint(rd *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            r->bad = true;
            return 0;
        }
        uint8_t byte = *r->p++;
        if (shift == 63 && byte > 1) {
            r->bad = true;
            return 0;
        }
        v |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80))
            return v;
    }
    r->bad = true;
    return 0;
}

static uint8_t
rd_u8(rd *r)
{
    if (r->p >= r->end) {
        r->bad = true;
        return 0;
    }
    return *r->p++;
}

static uint32_t
rd_u32v(rd *r)
{
    uint64_t v = rd_varint(r);
    if (v > UINT32_MAX)
        r->bad = true;
    return (uint32_t)v;
}

static int
encode_entry(lb_buf *b, const wix_entry *e, lb_lsn cursor)
{
    assert(e->lsn >= cursor && e->end > e->lsn);
    uint8_t tag = (uint8_t)(e->xact | (e->xid ? TAG_XID : 0) | (e->toplevel ? TAG_TOPLEVEL : 0) |
                            (e->nblocks ? TAG_BLOCKS : 0));
    int rc = put_u8(b, tag);
    rc = rc ? rc : put_varint(b, e->lsn - cursor);
    rc = rc ? rc : put_varint(b, e->end - e->lsn);
    rc = rc ? rc : put_u8(b, e->rmid);
    rc = rc ? rc : put_u8(b, e->info);
    if (e->xid)
        rc = rc ? rc : put_varint(b, e->xid);
    if (e->toplevel)
        rc = rc ? rc : put_varint(b, e->toplevel);
    if (e->xact) {
        rc = rc ? rc : put_varint(b, zigzag(e->xact_time));
        rc = rc ? rc : put_varint(b, e->xact_xid);
        rc = rc ? rc : put_varint(b, e->nsub);
        for (uint32_t i = 0; i < e->nsub && !rc; i++)
            rc = put_varint(b, e->sub[i]);
    }
    if (e->nblocks) {
        rc = rc ? rc : put_varint(b, (uint64_t)e->nblocks);
        for (int i = 0; i < e->nblocks && !rc; i++) {
            const ps_blockref *r = &e->blocks[i].ref;
            assert(r->fork <= LB_FORK_INIT && e->blocks[i].flags <= 0x0F);
            bool same = i > 0 && r->spc == e->blocks[i - 1].ref.spc &&
                        r->db == e->blocks[i - 1].ref.db && r->rel == e->blocks[i - 1].ref.rel;
            rc = put_u8(b,
                        (uint8_t)(r->fork | (e->blocks[i].flags << 2) | (same ? BLK_SAME_REL : 0)));
            if (!same) {
                rc = rc ? rc : put_varint(b, r->spc);
                rc = rc ? rc : put_varint(b, r->db);
                rc = rc ? rc : put_varint(b, r->rel);
            }
            rc = rc ? rc : put_varint(b, r->blkno);
        }
    }
    return rc;
}

/* Room for n subxact ids in the scratch array. */
static int
subx_reserve(ps_walindex *ix, size_t n)
{
    if (n <= ix->subx_cap)
        return 0;
    size_t cap = ix->subx_cap ? ix->subx_cap : 64;
    while (cap < n)
        cap *= 2;
    uint32_t *p = realloc(ix->subx, cap * sizeof(*p));
    if (!p)
        return -ENOMEM;
    ix->subx = p;
    ix->subx_cap = cap;
    return 0;
}

/* Decode one entry; its subxacts go to ix->subx. false when malformed. */
static bool
decode_entry(ps_walindex *ix, rd *r, lb_lsn cursor, wix_entry *e)
{
    uint8_t tag = rd_u8(r);
    if (tag & ~(TAG_XACT_MASK | TAG_XID | TAG_TOPLEVEL | TAG_BLOCKS) ||
        (tag & TAG_XACT_MASK) > PS_WALINDEX_ABORT_PREPARED)
        return false;
    uint64_t gap = rd_varint(r), len = rd_varint(r);
    if (r->bad || gap > UINT64_MAX - cursor || len == 0 || len > UINT64_MAX - cursor - gap)
        return false;
    e->lsn = cursor + gap;
    e->end = e->lsn + len;
    e->rmid = rd_u8(r);
    e->info = rd_u8(r);
    e->xid = (tag & TAG_XID) ? rd_u32v(r) : 0;
    e->toplevel = (tag & TAG_TOPLEVEL) ? rd_u32v(r) : 0;
    e->xact = tag & TAG_XACT_MASK;
    e->xact_time = 0;
    e->xact_xid = 0;
    e->nsub = 0;
    e->sub = NULL;
    if (e->xact) {
        e->xact_time = unzigzag(rd_varint(r));
        e->xact_xid = rd_u32v(r);
        uint64_t nsub = rd_varint(r);
        if (r->bad || nsub > (uint64_t)(r->end - r->p)) /* at least a byte each */
            return false;
        if (subx_reserve(ix, nsub) != 0)
            return false;
        for (uint64_t i = 0; i < nsub; i++)
            ix->subx[i] = rd_u32v(r);
        e->nsub = (uint32_t)nsub;
        e->sub = ix->subx;
    }
    e->nblocks = 0;
    if (tag & TAG_BLOCKS) {
        uint64_t nb = rd_varint(r);
        if (nb == 0 || nb > LB_XLR_MAX_BLOCK_ID + 1)
            return false;
        for (uint64_t i = 0; i < nb; i++) {
            uint8_t fb = rd_u8(r);
            ps_blockref *ref = &e->blocks[i].ref;
            if ((fb & 0x40) || (i == 0 && (fb & BLK_SAME_REL)))
                return false;
            ref->fork = fb & 0x03;
            e->blocks[i].flags = (fb >> 2) & 0x0F;
            if (fb & BLK_SAME_REL) {
                ref->spc = e->blocks[i - 1].ref.spc;
                ref->db = e->blocks[i - 1].ref.db;
                ref->rel = e->blocks[i - 1].ref.rel;
            } else {
                ref->spc = rd_u32v(r);
                ref->db = rd_u32v(r);
                ref->rel = rd_u32v(r);
            }
            ref->blkno = rd_u32v(r);
        }
        e->nblocks = (int)nb;
    }
    return !r->bad;
}

/* ---- names and paths -------------------------------------------------------- */

static void
file_name(char *out, uint64_t segno)
{
    snprintf(out, WIX_NAME_LEN + 1, "%016" PRIX64 WIX_SUFFIX, segno);
}

static bool
parse_file_name(const char *name, uint64_t *segno)
{
    if (strlen(name) != WIX_NAME_LEN || strcmp(name + 16, WIX_SUFFIX) != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        if (c >= '0' && c <= '9')
            v = (v << 4) | (uint64_t)(c - '0');
        else if (c >= 'A' && c <= 'F')
            v = (v << 4) | (uint64_t)(c - 'A' + 10);
        else
            return false;
    }
    *segno = v;
    return true;
}

static int
file_path(const ps_walindex *ix, uint64_t segno, lb_buf *out)
{
    char name[WIX_NAME_LEN + 1];
    file_name(name, segno);
    lb_buf_reset(out);
    return lb_buf_printf(out, "%s/%s", ix->dir, name);
}

/* ---- summaries -------------------------------------------------------------- */

static void
summary_add_entry(wix_summary *s, const wix_entry *e)
{
    if (s->nentries++ == 0)
        s->first_entry_lsn = e->lsn;
    s->last_entry_lsn = e->lsn;
    if (!e->xact)
        return;
    if (s->nxacts++ == 0) {
        s->min_xact_time = s->max_xact_time = e->xact_time;
    } else {
        if (e->xact_time < s->min_xact_time)
            s->min_xact_time = e->xact_time;
        if (e->xact_time > s->max_xact_time)
            s->max_xact_time = e->xact_time;
    }
    if (e->xact == PS_WALINDEX_COMMIT || e->xact == PS_WALINDEX_COMMIT_PREPARED) {
        s->ncommits++;
        s->last_commit_end = e->end;
        s->last_commit_time = e->xact_time;
        s->last_commit_xid = e->xact_xid;
    }
}

static int
encode_summary(lb_buf *b, const wix_summary *s)
{
    uint64_t v[] = {s->segno,
                    s->base_lsn,
                    s->base_prev,
                    s->last_lsn,
                    s->end_lsn,
                    s->nentries,
                    s->first_entry_lsn,
                    s->last_entry_lsn,
                    s->ncommits,
                    s->nxacts,
                    zigzag(s->min_xact_time),
                    zigzag(s->max_xact_time),
                    s->last_commit_end,
                    zigzag(s->last_commit_time),
                    s->last_commit_xid};
    int rc = 0;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]) && !rc; i++)
        rc = put_varint(b, v[i]);
    return rc;
}

static bool
decode_summary(const uint8_t *p, size_t n, wix_summary *s)
{
    rd r = {p, p + n, false};
    s->segno = rd_varint(&r);
    s->base_lsn = rd_varint(&r);
    s->base_prev = rd_varint(&r);
    s->last_lsn = rd_varint(&r);
    s->end_lsn = rd_varint(&r);
    s->nentries = rd_varint(&r);
    s->first_entry_lsn = rd_varint(&r);
    s->last_entry_lsn = rd_varint(&r);
    s->ncommits = rd_varint(&r);
    s->nxacts = rd_varint(&r);
    s->min_xact_time = unzigzag(rd_varint(&r));
    s->max_xact_time = unzigzag(rd_varint(&r));
    s->last_commit_end = rd_varint(&r);
    s->last_commit_time = unzigzag(rd_varint(&r));
    s->last_commit_xid = rd_u32v(&r);
    return !r.bad && r.p == r.end;
}

/* The fields that describe content, for comparing a stored summary with
 * one recomputed from the frames. */
static bool
summary_same_content(const wix_summary *a, const wix_summary *b)
{
    return a->segno == b->segno && a->base_lsn == b->base_lsn && a->base_prev == b->base_prev &&
           a->last_lsn == b->last_lsn && a->end_lsn == b->end_lsn && a->nentries == b->nentries &&
           (a->nentries == 0 ||
            (a->first_entry_lsn == b->first_entry_lsn && a->last_entry_lsn == b->last_entry_lsn)) &&
           a->ncommits == b->ncommits && a->nxacts == b->nxacts &&
           (a->nxacts == 0 ||
            (a->min_xact_time == b->min_xact_time && a->max_xact_time == b->max_xact_time)) &&
           (a->ncommits == 0 || (a->last_commit_end == b->last_commit_end &&
                                 a->last_commit_time == b->last_commit_time &&
                                 a->last_commit_xid == b->last_commit_xid));
}

/* ---- headers and frames ---------------------------------------------------- */

static void
build_header(uint8_t *h, const ps_walindex *ix, const wix_summary *s, uint32_t flags)
{
    memset(h, 0, WIX_HEADER_SIZE);
    le64(h, WIX_MAGIC);
    le32(h + 8, WIX_VERSION);
    le32(h + 12, ix->seg_size);
    le64(h + 16, s->segno);
    le64(h + 24, s->base_lsn);
    le64(h + 32, s->base_prev);
    le32(h + 40, flags);
    le32(h + 60, lb_crc32c(h, 60));
}

/* Check a header against what the index expects of segment segno. */
static int
parse_header(ps_walindex *ix, const char *path, const uint8_t *h, size_t len, uint64_t segno,
             wix_summary *s)
{
    memset(s, 0, sizeof(*s));
    if (len < WIX_HEADER_SIZE)
        return seterr(ix, LB_ETRUNCATED, "WAL index file \"%s\" is too short for its header", path);
    if (get32(h + 60) != lb_crc32c(h, 60))
        return seterr(ix, LB_ECRC, "corrupt WAL index file \"%s\": header checksum mismatch", path);
    if (get64(h) != WIX_MAGIC || get32(h + 8) != WIX_VERSION)
        return seterr(ix, LB_EPARSE, "\"%s\" is not a WAL index file of version %u", path,
                      WIX_VERSION);
    if (get32(h + 12) != ix->seg_size || get64(h + 16) != segno)
        return seterr(ix, LB_EPARSE,
                      "WAL index file \"%s\" is for segment %" PRIu64 " of %u bytes, not %" PRIu64
                      " of %u",
                      path, get64(h + 16), get32(h + 12), segno, ix->seg_size);
    s->segno = segno;
    s->base_lsn = get64(h + 24);
    s->base_prev = get64(h + 32);
    s->sealed = (get32(h + 40) & WIX_FLAG_SEALED) != 0;
    s->last_lsn = s->base_prev;
    s->end_lsn = s->base_lsn;
    if ((get32(h + 40) & ~WIX_FLAG_SEALED) || s->base_prev > s->base_lsn)
        return seterr(ix, LB_EPARSE, "WAL index file \"%s\" has an invalid header", path);
    return 0;
}

/* Append a frame of raw payload to out, zstd-compressed if compress and
 * smaller. */
static int
append_frame(lb_buf *out, const void *raw, size_t raw_len, uint32_t kind, bool compress)
{
    assert(raw_len <= WIX_FRAME_LEN_MASK);
    size_t at = out->len;
    int rc = lb_buf_reserve(out, WIX_FRAME_HDR + ZSTD_compressBound(raw_len));
    if (rc)
        return rc;
    uint8_t *h = (uint8_t *)out->data + at;
    const void *stored = raw;
    size_t stored_len = raw_len;
    if (compress) {
        size_t z = ZSTD_compress(h + WIX_FRAME_HDR, ZSTD_compressBound(raw_len), raw, raw_len,
                                 WIX_ZSTD_LEVEL);
        if (!ZSTD_isError(z) && z < raw_len) {
            stored = h + WIX_FRAME_HDR;
            stored_len = z;
            kind |= WIX_FRAME_ZSTD;
        }
    }
    if (stored != h + WIX_FRAME_HDR)
        memcpy(h + WIX_FRAME_HDR, raw, raw_len);
    le32(h, (uint32_t)stored_len);
    le32(h + 4, (uint32_t)raw_len | kind);
    uint32_t crc = lb_crc32c_update(LB_CRC32C_INIT, h, 8);
    crc = lb_crc32c_update(crc, h + WIX_FRAME_HDR, stored_len);
    le32(h + 8, LB_CRC32C_FINAL(crc));
    out->len = at + WIX_FRAME_HDR + stored_len;
    out->data[out->len] = '\0';
    return 0;
}

/* Read the frame at buf[*off..len): 1 with its payload (decompressed into
 * ix->frame_raw when needed) and *off past it; 0 when the bytes end inside
 * it (a cut tail); or an error. kind gets the frame's flag bits. */
static int
read_frame(ps_walindex *ix, const char *path, const uint8_t *buf, size_t len, size_t *off,
           const uint8_t **payload, size_t *payload_len, uint32_t *kind)
{
    size_t at = *off;
    if (len - at < WIX_FRAME_HDR)
        return 0;
    const uint8_t *h = buf + at;
    uint32_t stored = get32(h), raw_flags = get32(h + 4);
    uint32_t raw = raw_flags & WIX_FRAME_LEN_MASK;
    if (stored > WIX_FRAME_MAX || raw > WIX_FRAME_MAX)
        return seterr(ix, LB_ECRC,
                      "corrupt WAL index file \"%s\": frame at offset %zu has length %u", path, at,
                      stored);
    if (len - at - WIX_FRAME_HDR < stored)
        return 0;
    uint32_t crc = lb_crc32c_update(LB_CRC32C_INIT, h, 8);
    crc = lb_crc32c_update(crc, h + WIX_FRAME_HDR, stored);
    if (LB_CRC32C_FINAL(crc) != get32(h + 8))
        return seterr(ix, LB_ECRC,
                      "corrupt WAL index file \"%s\": checksum mismatch in frame at "
                      "offset %zu",
                      path, at);
    *kind = raw_flags & ~WIX_FRAME_LEN_MASK;
    if (*kind & WIX_FRAME_ZSTD) {
        lb_buf_reset(&ix->frame_raw);
        if (lb_buf_reserve(&ix->frame_raw, raw) != 0)
            return seterr(ix, -ENOMEM, "out of memory reading \"%s\"", path);
        size_t n = ZSTD_decompress(ix->frame_raw.data, raw, h + WIX_FRAME_HDR, stored);
        if (ZSTD_isError(n) || n != raw)
            return seterr(ix, LB_EPARSE,
                          "corrupt WAL index file \"%s\": frame at offset %zu does not decompress",
                          path, at);
        *payload = (const uint8_t *)ix->frame_raw.data;
    } else {
        if (raw != stored)
            return seterr(ix, LB_EPARSE,
                          "corrupt WAL index file \"%s\": frame at offset %zu has bad lengths",
                          path, at);
        *payload = h + WIX_FRAME_HDR;
    }
    *payload_len = raw;
    *off = at + WIX_FRAME_HDR + stored;
    return 1;
}

/* Called for each entry while walking a file; nonzero stops the walk. */
typedef int (*entry_fn)(ps_walindex *ix, void *arg, const wix_entry *e);

#define WALK_STOP 1 /* an entry_fn's "done, no error" */

/* Walk the data frames of a file's bytes from the header to data_end,
 * checking each frame, each entry and that they join up from the header's
 * base, and accumulating the summary s (whose header fields are set). fn,
 * if not NULL, sees every entry. With allow_cut, bytes ending inside a frame
 * (or all zero after the last complete one) are a cut tail: *good_len is
 * where it starts. Returns 0, what fn returned, or an error. */
static int
walk_frames(ps_walindex *ix, const char *path, const uint8_t *buf, size_t data_end, bool allow_cut,
            size_t *good_len, wix_summary *s, entry_fn fn, void *arg)
{
    size_t off = WIX_HEADER_SIZE;
    wix_entry *e = &ix->entry;
    while (off < data_end) {
        const uint8_t *p;
        size_t plen;
        uint32_t kind;
        size_t frame_at = off;
        if (allow_cut) {
            /* Space the file system extended but a crash left unwritten. */
            bool zeros = true;
            for (size_t i = frame_at; i < data_end && zeros; i++)
                zeros = buf[i] == 0;
            if (zeros) {
                *good_len = frame_at;
                return 0;
            }
        }
        int rc = read_frame(ix, path, buf, data_end, &off, &p, &plen, &kind);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            if (!allow_cut)
                return seterr(ix, LB_ECRC, "corrupt WAL index file \"%s\": cut at offset %zu", path,
                              frame_at);
            *good_len = frame_at;
            return 0;
        }
        if (kind & WIX_FRAME_SUMMARY)
            return seterr(ix, LB_EPARSE,
                          "corrupt WAL index file \"%s\": summary frame at "
                          "offset %zu among data frames",
                          path, frame_at);
        rd r = {p, p + plen, false};
        lb_lsn base = rd_varint(&r);
        uint64_t n = rd_varint(&r);
        if (r.bad || base != s->end_lsn)
            goto bad;
        lb_lsn cursor = base;
        for (uint64_t i = 0; i < n; i++) {
            if (!decode_entry(ix, &r, cursor, e))
                goto bad;
            if (lb_wal_segno(e->lsn, ix->seg_size) != s->segno)
                goto bad;
            summary_add_entry(s, e);
            cursor = e->end;
            if (fn) {
                rc = fn(ix, arg, e);
                if (rc)
                    return rc;
            }
        }
        uint64_t tail = rd_varint(&r), last_len = rd_varint(&r);
        if (r.bad || r.p != r.end || tail > UINT64_MAX - cursor || last_len > cursor + tail ||
            cursor + tail - last_len < base || cursor + tail == base)
            goto bad;
        s->end_lsn = cursor + tail;
        s->last_lsn = s->end_lsn - last_len;
        continue;
    bad:
        return seterr(ix, LB_EPARSE,
                      "corrupt WAL index file \"%s\": bad entries in frame at "
                      "offset %zu",
                      path, frame_at);
    }
    if (good_len)
        *good_len = data_end;
    return 0;
}

/* Check a sealed file's trailer and summary frame; fill s (header already
 * parsed into it) and s->data_end. */
static int
read_sealed_footer(ps_walindex *ix, const char *path, const uint8_t *trailer,
                   const uint8_t *summary_frame, size_t frame_len, wix_summary *s)
{
    const uint8_t *p;
    size_t plen, off = 0;
    uint32_t kind;
    int rc = read_frame(ix, path, summary_frame, frame_len, &off, &p, &plen, &kind);
    if (rc < 0)
        return rc;
    wix_summary stored;
    if (rc == 0 || off != frame_len || !(kind & WIX_FRAME_SUMMARY) ||
        !decode_summary(p, plen, &stored) || stored.segno != s->segno ||
        stored.base_lsn != s->base_lsn || stored.base_prev != s->base_prev ||
        stored.end_lsn < stored.base_lsn)
        return seterr(ix, LB_EPARSE, "corrupt WAL index file \"%s\": bad summary", path);
    stored.sealed = true;
    stored.size = s->size;
    stored.data_end = get64(trailer);
    *s = stored;
    return 0;
}

/* ---- opening ---------------------------------------------------------------- */

static int
add_file(ps_walindex *ix, size_t at, const wix_summary *s)
{
    if (ix->nfiles == ix->cap) {
        size_t cap = ix->cap ? 2 * ix->cap : 16;
        wix_summary *f = realloc(ix->files, cap * sizeof(*f));
        if (!f)
            return -ENOMEM;
        ix->files = f;
        ix->cap = cap;
    }
    memmove(&ix->files[at + 1], &ix->files[at], (ix->nfiles - at) * sizeof(*ix->files));
    ix->files[at] = *s;
    ix->nfiles++;
    return 0;
}

/* Read a sealed file's header, trailer and summary (not its data frames). */
static int
load_sealed(ps_walindex *ix, const char *path, int fd, uint64_t size, wix_summary *s)
{
    uint8_t tr[WIX_TRAILER_SIZE];
    if (size < WIX_HEADER_SIZE + WIX_FRAME_HDR + WIX_TRAILER_SIZE ||
        pread(fd, tr, sizeof(tr), (off_t)(size - WIX_TRAILER_SIZE)) != (ssize_t)sizeof(tr))
        return seterr(ix, LB_ECRC,
                      "corrupt WAL index file \"%s\": sealed file cut to %" PRIu64 " bytes", path,
                      size);
    uint64_t sum_off = get64(tr);
    if (get64(tr + 8) != WIX_TRAILER_MAGIC || get32(tr + 16) != lb_crc32c(tr, 16) ||
        sum_off < WIX_HEADER_SIZE || sum_off > size - WIX_TRAILER_SIZE - WIX_FRAME_HDR)
        return seterr(ix, LB_ECRC, "corrupt WAL index file \"%s\": bad trailer", path);
    size_t flen = (size_t)(size - WIX_TRAILER_SIZE - sum_off);
    uint8_t *frame = malloc(flen);
    if (!frame)
        return -ENOMEM;
    int rc = 0;
    if (pread(fd, frame, flen, (off_t)sum_off) != (ssize_t)flen)
        rc = seterr(ix, -EIO, "could not read WAL index file \"%s\": %s", path, strerror(errno));
    s->size = size;
    if (rc == 0)
        rc = read_sealed_footer(ix, path, tr, frame, flen, s);
    free(frame);
    return rc;
}

static int seal_active(ps_walindex *ix);

/* Load file segno into files[] (appended; they come in order). An unsealed
 * file is scanned whole; if last, a cut tail is truncated and it becomes the
 * active file. */
static int
load_file(ps_walindex *ix, uint64_t segno, bool last)
{
    lb_buf path = LB_BUF_INIT;
    int rc = file_path(ix, segno, &path);
    if (rc)
        return rc;
    int fd = open(path.data, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = seterr(ix, -errno, "could not open WAL index file \"%s\": %s", path.data,
                    strerror(errno));
        goto out;
    }
    uint8_t h[WIX_HEADER_SIZE];
    ssize_t got = pread(fd, h, sizeof(h), 0);
    if (got < 0) {
        rc = seterr(ix, -errno, "could not read WAL index file \"%s\": %s", path.data,
                    strerror(errno));
        goto out;
    }
    if (got < (ssize_t)WIX_HEADER_SIZE && last) {
        /* Created, then cut by a crash before its header was complete: it
         * held nothing. */
        close(fd);
        fd = -1;
        if (unlink(path.data) != 0)
            rc = seterr(ix, -errno, "could not remove \"%s\": %s", path.data, strerror(errno));
        goto out;
    }
    wix_summary s;
    rc = parse_header(ix, path.data, h, (size_t)got, segno, &s);
    if (rc)
        goto out;
    if (s.sealed) {
        rc = load_sealed(ix, path.data, fd, (uint64_t)st.st_size, &s);
        if (rc == 0)
            rc = add_file(ix, ix->nfiles, &s);
        goto out;
    }
    lb_buf bytes = LB_BUF_INIT;
    rc = lb_read_file(path.data, &bytes);
    if (rc) {
        rc = seterr(ix, rc, "could not read WAL index file \"%s\": %s", path.data, lb_strerror(rc));
        goto out;
    }
    size_t good = 0;
    rc = walk_frames(ix, path.data, (const uint8_t *)bytes.data, bytes.len, last, &good, &s, NULL,
                     NULL);
    size_t len = bytes.len;
    lb_buf_free(&bytes);
    if (rc)
        goto out;
    if (good < len) {
        /* Cut by a crash: drop the incomplete frame, durably, before
         * anything is appended after it. */
        if (ftruncate(fd, (off_t)good) != 0 || lb_fsync(fd) != 0) {
            rc = seterr(ix, -errno, "could not truncate WAL index file \"%s\": %s", path.data,
                        strerror(errno));
            goto out;
        }
    }
    s.size = good;
    s.data_end = good;
    rc = add_file(ix, ix->nfiles, &s);
    if (rc)
        goto out;
    if (lseek(fd, 0, SEEK_END) < 0) {
        rc = -errno;
        goto out;
    }
    ix->active_fd = fd;
    fd = -1;
    /* Complete but not sealed: a crash came between its last append and
     * its sealing. */
    if (s.end_lsn >= lb_wal_segment_start(segno + 1, ix->seg_size))
        rc = seal_active(ix);
    else if (!last)
        rc = seterr(ix, LB_EPARSE, "WAL index file \"%s\" is incomplete but not the last",
                    path.data);
out:
    if (fd >= 0)
        close(fd);
    lb_buf_free(&path);
    return rc;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int
load_dir(ps_walindex *ix)
{
    DIR *d = opendir(ix->dir);
    if (!d)
        return seterr(ix, -errno, "could not open directory \"%s\": %s", ix->dir, strerror(errno));
    uint64_t *segs = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t segno;
        if (strstr(de->d_name, WIX_SUFFIX ".tmp.")) {
            /* A sealing or install that a crash interrupted. */
            char p[4096];
            snprintf(p, sizeof(p), "%s/%s", ix->dir, de->d_name);
            unlink(p);
            continue;
        }
        if (!parse_file_name(de->d_name, &segno))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            uint64_t *p = realloc(segs, cap * sizeof(*p));
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            segs = p;
        }
        segs[n++] = segno;
    }
    closedir(d);
    if (rc == 0 && n > 0)
        qsort(segs, n, sizeof(*segs), cmp_u64);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (ix->active_fd >= 0)
            rc = seterr(ix, LB_EPARSE,
                        "WAL index file of segment %" PRIu64 " follows an incomplete one in \"%s\"",
                        segs[i], ix->dir);
        else
            rc = load_file(ix, segs[i], i + 1 == n);
        if (rc == 0 && ix->nfiles > 1) {
            const wix_summary *a = &ix->files[ix->nfiles - 2], *b = &ix->files[ix->nfiles - 1];
            if (b->base_lsn != a->end_lsn)
                rc = seterr(ix, LB_EPARSE,
                            "WAL index files of segments %" PRIu64 " and %" PRIu64
                            " in \"%s\" do not join: " LB_LSN_FMT " and " LB_LSN_FMT,
                            a->segno, b->segno, ix->dir, LB_LSN_ARGS(a->end_lsn),
                            LB_LSN_ARGS(b->base_lsn));
        }
    }
    free(segs);
    return rc;
}

int
ps_walindex_open(const char *dir, lb_lsn start_lsn, uint32_t seg_size, ps_walindex **out, char *msg,
                 size_t msglen)
{
    assert(dir && out);
    *out = NULL;
    if (msg && msglen)
        msg[0] = '\0';
    if (!lb_wal_seg_size_valid(seg_size)) {
        if (msg)
            snprintf(msg, msglen, "invalid WAL segment size %u", seg_size);
        return -EINVAL;
    }
    ps_walindex *ix = calloc(1, sizeof(*ix));
    if (!ix || !(ix->dir = strdup(dir))) {
        free(ix);
        return -ENOMEM;
    }
    ix->seg_size = seg_size;
    ix->start_lsn = start_lsn;
    ix->active_fd = -1;
    int rc = lb_mkdir_p(dir, 0755);
    if (rc)
        rc = seterr(ix, rc, "could not create directory \"%s\": %s", dir, lb_strerror(rc));
    if (rc == 0)
        rc = load_dir(ix);
    if (rc) {
        if (msg)
            snprintf(msg, msglen, "%s", ix->errmsg);
        ps_walindex_close(ix);
        return rc;
    }
    if (ix->nfiles) {
        ix->resume_lsn = ix->files[ix->nfiles - 1].end_lsn;
        ix->resume_prev = ix->files[ix->nfiles - 1].last_lsn;
    } else {
        ix->resume_lsn = start_lsn;
    }
    *out = ix;
    return 0;
}

void
ps_walindex_close(ps_walindex *ix)
{
    if (!ix)
        return;
    if (ix->active_fd >= 0)
        lb_io->close(ix->active_fd);
    lb_wal_decoder_free(ix->dec);
    free(ix->files);
    free(ix->dir);
    free(ix->subx);
    lb_buf_free(&ix->pending);
    lb_buf_free(&ix->frame_raw);
    lb_buf_free(&ix->frame_out);
    free(ix);
}

lb_lsn
ps_walindex_resume_lsn(const ps_walindex *ix)
{
    return ix->resume_lsn;
}

const char *
ps_walindex_errmsg(const ps_walindex *ix)
{
    return ix->errmsg;
}

size_t
ps_walindex_memory(const ps_walindex *ix)
{
    return sizeof(*ix) + ix->cap * sizeof(*ix->files) + ix->pending.cap +
           ix->subx_cap * sizeof(*ix->subx) + ix->frame_raw.cap + ix->frame_out.cap +
           strlen(ix->dir) + 1;
}

/* ---- writing ----------------------------------------------------------------- */

static wix_summary *
active_file(ps_walindex *ix)
{
    return ix->active_fd >= 0 ? &ix->files[ix->nfiles - 1] : NULL;
}

/* Write the pending frame to the active file. */
static int
flush_pending(ps_walindex *ix)
{
    wix_summary *f = active_file(ix);
    if (ix->pending_records == 0)
        return 0;
    assert(f);
    lb_buf payload = LB_BUF_INIT;
    int rc = put_varint(&payload, ix->pending_base);
    rc = rc ? rc : put_varint(&payload, ix->pending_entries);
    rc = rc ? rc : lb_buf_append(&payload, ix->pending.data, ix->pending.len);
    rc = rc ? rc : put_varint(&payload, ix->resume_lsn - ix->pending_cursor);
    rc = rc ? rc : put_varint(&payload, ix->resume_lsn - ix->resume_prev);
    lb_buf_reset(&ix->frame_out);
    if (rc == 0)
        rc = append_frame(&ix->frame_out, payload.data, payload.len, 0, false);
    lb_buf_free(&payload);
    if (rc)
        return set_broken(ix, seterr(ix, rc, "out of memory building a WAL index frame"));
    rc = lb_write_all(ix->active_fd, ix->frame_out.data, ix->frame_out.len);
    if (rc) {
        lb_buf path = LB_BUF_INIT;
        file_path(ix, f->segno, &path);
        seterr(ix, rc, "could not write WAL index file \"%s\": %s", path.data, lb_strerror(rc));
        lb_buf_free(&path);
        return set_broken(ix, rc);
    }
    f->size += ix->frame_out.len;
    f->data_end = f->size;
    ix->unsynced = true;
    lb_buf_reset(&ix->pending);
    if (ix->pending.cap > 4 * WIX_FRAME_TARGET) {
        lb_buf_free(&ix->pending);
    }
    ix->pending_entries = 0;
    ix->pending_records = 0;
    return 0;
}

typedef struct seal_ctx {
    lb_buf out;     /* the sealed file */
    lb_buf payload; /* entries of the frame being built */
    uint64_t entries;
    lb_lsn base, cursor, last_lsn;
} seal_ctx;

static int
seal_flush(seal_ctx *c, lb_lsn end, lb_lsn last_lsn)
{
    lb_buf frame = LB_BUF_INIT;
    int rc = put_varint(&frame, c->base);
    rc = rc ? rc : put_varint(&frame, c->entries);
    rc = rc ? rc : lb_buf_append(&frame, c->payload.data, c->payload.len);
    rc = rc ? rc : put_varint(&frame, end - c->cursor);
    rc = rc ? rc : put_varint(&frame, end - last_lsn);
    rc = rc ? rc : append_frame(&c->out, frame.data, frame.len, 0, true);
    lb_buf_free(&frame);
    lb_buf_reset(&c->payload);
    c->entries = 0;
    c->base = c->cursor = end;
    return rc;
}

static int
seal_entry(ps_walindex *ix, void *arg, const wix_entry *e)
{
    (void)ix;
    seal_ctx *c = arg;
    int rc = encode_entry(&c->payload, e, c->cursor);
    if (rc)
        return rc;
    c->entries++;
    c->cursor = e->end;
    c->last_lsn = e->lsn;
    if (c->payload.len >= WIX_FRAME_TARGET)
        return seal_flush(c, e->end, e->lsn);
    return 0;
}

/* Rewrite the active (complete) file as a sealed one, atomically. */
static int
seal_active(ps_walindex *ix)
{
    wix_summary *f = active_file(ix);
    assert(f && f->end_lsn >= lb_wal_segment_start(f->segno + 1, ix->seg_size));
    int rc = flush_pending(ix);
    if (rc)
        return rc;
    lb_buf path = LB_BUF_INIT, bytes = LB_BUF_INIT;
    seal_ctx c = {.out = LB_BUF_INIT, .payload = LB_BUF_INIT};
    rc = file_path(ix, f->segno, &path);
    if (rc == 0) {
        rc = lb_read_file(path.data, &bytes);
        if (rc)
            seterr(ix, rc, "could not read WAL index file \"%s\": %s", path.data, lb_strerror(rc));
    }
    wix_summary s;
    if (rc == 0)
        rc = parse_header(ix, path.data, (const uint8_t *)bytes.data, bytes.len, f->segno, &s);
    if (rc == 0) {
        rc = lb_buf_reserve(&c.out, WIX_HEADER_SIZE);
        if (rc == 0) {
            build_header((uint8_t *)c.out.data, ix, &s, WIX_FLAG_SEALED);
            c.out.len = WIX_HEADER_SIZE;
        }
        c.base = c.cursor = s.base_lsn;
    }
    if (rc == 0)
        rc = walk_frames(ix, path.data, (const uint8_t *)bytes.data, bytes.len, false, NULL, &s,
                         seal_entry, &c);
    if (rc == 0 && !summary_same_content(&s, f))
        rc = seterr(ix, LB_EPARSE, "WAL index file \"%s\" does not hold what was written",
                    path.data);
    if (rc == 0 && (c.entries > 0 || c.cursor != s.end_lsn))
        rc = seal_flush(&c, s.end_lsn, s.last_lsn);
    uint64_t sum_off = c.out.len;
    if (rc == 0) {
        lb_buf sum = LB_BUF_INIT;
        rc = encode_summary(&sum, &s);
        rc = rc ? rc : append_frame(&c.out, sum.data, sum.len, WIX_FRAME_SUMMARY, false);
        lb_buf_free(&sum);
    }
    if (rc == 0) {
        uint8_t tr[WIX_TRAILER_SIZE] = {0};
        le64(tr, sum_off);
        le64(tr + 8, WIX_TRAILER_MAGIC);
        le32(tr + 16, lb_crc32c(tr, 16));
        rc = lb_buf_append(&c.out, tr, sizeof(tr));
    }
    if (rc == 0) {
        rc = lb_write_file_atomic(path.data, c.out.data, c.out.len);
        if (rc)
            seterr(ix, rc, "could not write WAL index file \"%s\": %s", path.data, lb_strerror(rc));
    }
    if (rc == 0) {
        lb_io->close(ix->active_fd);
        ix->active_fd = -1;
        ix->unsynced = false;
        ix->dir_unsynced = false; /* lb_write_file_atomic synced the directory */
        s.sealed = true;
        s.size = c.out.len;
        s.data_end = sum_off;
        *f = s;
    }
    lb_buf_free(&path);
    lb_buf_free(&bytes);
    lb_buf_free(&c.out);
    lb_buf_free(&c.payload);
    return rc ? set_broken(ix, rc) : 0;
}

/* Create the file of segment segno, starting at resume_lsn. */
static int
create_active(ps_walindex *ix, uint64_t segno)
{
    wix_summary s = {.segno = segno,
                     .base_lsn = ix->resume_lsn,
                     .base_prev = ix->resume_prev,
                     .last_lsn = ix->resume_prev,
                     .end_lsn = ix->resume_lsn,
                     .size = WIX_HEADER_SIZE,
                     .data_end = WIX_HEADER_SIZE};
    lb_buf path = LB_BUF_INIT;
    int rc = file_path(ix, segno, &path);
    if (rc)
        return set_broken(ix, rc);
    uint8_t h[WIX_HEADER_SIZE];
    build_header(h, ix, &s, 0);
    int fd = lb_io->open(path.data, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        rc = -errno;
    else
        rc = lb_write_all(fd, h, sizeof(h));
    if (rc == 0)
        rc = add_file(ix, ix->nfiles, &s);
    if (rc) {
        seterr(ix, rc, "could not create WAL index file \"%s\": %s", path.data, lb_strerror(rc));
        if (fd >= 0) {
            lb_io->close(fd);
            unlink(path.data);
        }
        lb_buf_free(&path);
        return set_broken(ix, rc);
    }
    lb_buf_free(&path);
    ix->active_fd = fd;
    ix->unsynced = true;
    ix->dir_unsynced = true;
    return 0;
}

/* The xid and subtransactions of a commit or abort record: the record's
 * own xid, or for the prepared kinds the one in the record's twophase part. */
static int
parse_xact(ps_walindex *ix, const lb_wal_record *rec, lb_wal_xact_kind kind, uint32_t *xid,
           uint32_t *nsub)
{
    rd r = {rec->main_data, rec->main_data + rec->main_data_len, false};
    uint32_t xinfo = 0;
    r.p += 8; /* xact_time, checked by lb_wal_xact_parse */
    if (rec->info & XLOG_XACT_HAS_INFO) {
        if (r.end - r.p < 4)
            goto short_data;
        xinfo = get32(r.p);
        r.p += 4;
    }
#define SKIP(n)                                                                                    \
    do {                                                                                           \
        if ((uint64_t)(r.end - r.p) < (uint64_t)(n))                                               \
            goto short_data;                                                                       \
        r.p += (n);                                                                                \
    } while (0)
#define ARRAY(elem)                                                                                \
    do {                                                                                           \
        if (r.end - r.p < 4)                                                                       \
            goto short_data;                                                                       \
        uint32_t cnt = get32(r.p);                                                                 \
        r.p += 4;                                                                                  \
        SKIP((uint64_t)cnt *(elem));                                                               \
    } while (0)
    if (xinfo & XINFO_HAS_DBINFO)
        SKIP(8);
    *nsub = 0;
    if (xinfo & XINFO_HAS_SUBXACTS) {
        if (r.end - r.p < 4)
            goto short_data;
        uint32_t cnt = get32(r.p);
        r.p += 4;
        if ((uint64_t)(r.end - r.p) < (uint64_t)cnt * 4)
            goto short_data;
        if (subx_reserve(ix, cnt) != 0)
            return seterr(ix, -ENOMEM, "out of memory");
        for (uint32_t i = 0; i < cnt; i++)
            ix->subx[i] = get32(r.p + 4 * i);
        r.p += (size_t)cnt * 4;
        *nsub = cnt;
    }
    if (xinfo & XINFO_HAS_RELFILENODES)
        ARRAY(12);
    if (xinfo & XINFO_HAS_DROPPED_STATS)
        ARRAY(12);
    if ((xinfo & XINFO_HAS_INVALS) &&
        (kind == LB_WAL_XACT_COMMIT || kind == LB_WAL_XACT_COMMIT_PREPARED))
        ARRAY(16);
#undef ARRAY
#undef SKIP
    if (kind == LB_WAL_XACT_COMMIT || kind == LB_WAL_XACT_ABORT) {
        *xid = rec->xid;
        return 0;
    }
    if (!(xinfo & XINFO_HAS_TWOPHASE) || r.end - r.p < 4)
        goto short_data;
    *xid = get32(r.p);
    return 0;
short_data:
    return seterr(ix, LB_EPARSE, "transaction record at " LB_LSN_FMT " is too short for its flags",
                  LB_LSN_ARGS(rec->lsn));
}

/* Index one decoded record. */
static int
index_record(ps_walindex *ix, const lb_wal_record *rec)
{
    assert(rec->lsn >= ix->resume_lsn && rec->end_lsn > rec->lsn);
    uint64_t segno = lb_wal_segno(rec->lsn, ix->seg_size);
    wix_summary *f = ix->nfiles ? &ix->files[ix->nfiles - 1] : NULL;
    int rc;
    if (f && f->segno > segno)
        return seterr(ix, LB_EPARSE, "record at " LB_LSN_FMT " is before indexed segment %" PRIu64,
                      LB_LSN_ARGS(rec->lsn), f->segno);
    if (f && f->segno < segno && !f->sealed) {
        /* Records that join up never skip the end of a segment without
         * covering it (the decoder checks xl_prev). */
        if (f->end_lsn < lb_wal_segment_start(f->segno + 1, ix->seg_size))
            return seterr(ix, LB_EPARSE,
                          "record at " LB_LSN_FMT
                          " does not follow the indexed WAL ending at " LB_LSN_FMT,
                          LB_LSN_ARGS(rec->lsn), LB_LSN_ARGS(f->end_lsn));
        if ((rc = seal_active(ix)) != 0)
            return rc;
    }
    if (!f || f->segno < segno) {
        if ((rc = create_active(ix, segno)) != 0)
            return rc;
    }
    f = &ix->files[ix->nfiles - 1];
    assert(!f->sealed && ix->active_fd >= 0);

    wix_entry *e = &ix->entry;
    lb_wal_xact_kind kind;
    int64_t when = 0;
    if ((rc = lb_wal_xact_parse(rec, &kind, &when)) != 0)
        return seterr(ix, rc, "transaction record at " LB_LSN_FMT " has no timestamp",
                      LB_LSN_ARGS(rec->lsn));
    e->lsn = rec->lsn;
    e->end = rec->end_lsn;
    e->rmid = rec->rmid;
    e->info = rec->info;
    e->xid = rec->xid;
    e->toplevel = rec->toplevel_xid;
    e->xact = 0;
    e->xact_time = when;
    e->xact_xid = 0;
    e->nsub = 0;
    e->sub = NULL;
    if (kind != LB_WAL_XACT_NONE) {
        static const uint8_t kinds[] = {
            [LB_WAL_XACT_COMMIT] = PS_WALINDEX_COMMIT,
            [LB_WAL_XACT_ABORT] = PS_WALINDEX_ABORT,
            [LB_WAL_XACT_COMMIT_PREPARED] = PS_WALINDEX_COMMIT_PREPARED,
            [LB_WAL_XACT_ABORT_PREPARED] = PS_WALINDEX_ABORT_PREPARED,
        };
        e->xact = kinds[kind];
        if ((rc = parse_xact(ix, rec, kind, &e->xact_xid, &e->nsub)) != 0)
            return rc;
        e->sub = ix->subx;
    }
    e->nblocks = rec->nblocks;
    for (int i = 0; i < rec->nblocks; i++) {
        const lb_wal_block_ref *b = &rec->blocks[i];
        e->blocks[i].ref = (ps_blockref){.spc = b->spc_node,
                                         .db = b->db_node,
                                         .rel = b->rel_node,
                                         .fork = b->fork,
                                         .blkno = b->blkno};
        e->blocks[i].flags = (uint8_t)((b->has_image ? PS_WALINDEX_HAS_IMAGE : 0) |
                                       (b->apply_image ? PS_WALINDEX_APPLY_IMAGE : 0) |
                                       (b->will_init ? PS_WALINDEX_WILL_INIT : 0) |
                                       (b->has_data ? PS_WALINDEX_HAS_DATA : 0));
    }

    if (ix->pending_records == 0) {
        ix->pending_base = ix->resume_lsn;
        ix->pending_cursor = ix->resume_lsn;
    }
    if (e->xid || e->toplevel || e->xact || e->nblocks) {
        if ((rc = encode_entry(&ix->pending, e, ix->pending_cursor)) != 0)
            return set_broken(ix, seterr(ix, rc, "out of memory"));
        ix->pending_entries++;
        ix->pending_cursor = e->end;
        summary_add_entry(f, e);
    }
    ix->pending_records++;
    ix->resume_lsn = rec->end_lsn;
    ix->resume_prev = rec->lsn;
    f->end_lsn = rec->end_lsn;
    f->last_lsn = rec->lsn;

    if (rec->end_lsn >= lb_wal_segment_start(segno + 1, ix->seg_size))
        return seal_active(ix);
    if (ix->pending.len >= WIX_FRAME_TARGET)
        return flush_pending(ix);
    return 0;
}

int
ps_walindex_feed(ps_walindex *ix, const void *bytes, size_t n)
{
    assert(ix && (bytes || n == 0));
    ix->errmsg[0] = '\0';
    if (ix->broken)
        return seterr(ix, ix->broken, "WAL index in \"%s\" failed earlier: reopen it", ix->dir);
    if (n == 0)
        return 0;
    if (!ix->dec) {
        int rc = lb_wal_decoder_new(ix->resume_lsn, ix->seg_size, &ix->dec);
        if (rc)
            return seterr(ix, rc, "cannot decode WAL from " LB_LSN_FMT ": %s",
                          LB_LSN_ARGS(ix->resume_lsn), lb_strerror(rc));
        if (ix->resume_prev)
            lb_wal_decoder_expect_prev(ix->dec, ix->resume_prev);
    }
    int rc = lb_wal_decoder_feed(ix->dec, bytes, n);
    assert(rc == 0); /* every earlier feed was consumed */
    for (;;) {
        lb_wal_record rec;
        rc = lb_wal_decoder_next(ix->dec, &rec);
        if (rc == 0) {
            rc = index_record(ix, &rec);
            if (rc == 0)
                continue;
            /* Not indexed, but decoded: start over at resume_lsn. */
            lb_wal_decoder_free(ix->dec);
            ix->dec = NULL;
            break;
        }
        if (rc == LB_ETRUNCATED) {
            rc = 0;
            break;
        }
        /* End of WAL or a bad record: what came before stays indexed; the
         * next feed starts over at resume_lsn. */
        seterr(ix, rc, "%s", lb_wal_decoder_errmsg(ix->dec));
        lb_wal_decoder_free(ix->dec);
        ix->dec = NULL;
        break;
    }
    if (rc && ix->broken)
        return rc;
    /* A failed write outranks the decoder's news: it fails the handle. */
    int frc = flush_pending(ix);
    return frc ? frc : rc;
}

int
ps_walindex_sync(ps_walindex *ix)
{
    ix->errmsg[0] = '\0';
    if (ix->broken)
        return seterr(ix, ix->broken, "WAL index in \"%s\" failed earlier: reopen it", ix->dir);
    if (ix->unsynced && ix->active_fd >= 0) {
        int rc = lb_fsync(ix->active_fd);
        if (rc) {
            seterr(ix, rc, "could not fsync WAL index file of segment %" PRIu64 ": %s",
                   ix->files[ix->nfiles - 1].segno, lb_strerror(rc));
            return set_broken(ix, rc);
        }
    }
    ix->unsynced = false;
    if (ix->dir_unsynced) {
        int rc = lb_fsync_dir(ix->dir);
        if (rc) {
            seterr(ix, rc, "could not fsync directory \"%s\": %s", ix->dir, lb_strerror(rc));
            return set_broken(ix, rc);
        }
        ix->dir_unsynced = false;
    }
    return 0;
}

/* ---- reading ------------------------------------------------------------------ */

/* Walk the entries of file f, calling fn for each. */
static int
walk_file(ps_walindex *ix, const wix_summary *f, entry_fn fn, void *arg)
{
    lb_buf path = LB_BUF_INIT, bytes = LB_BUF_INIT;
    int rc = file_path(ix, f->segno, &path);
    if (rc == 0) {
        rc = lb_read_file(path.data, &bytes);
        if (rc)
            seterr(ix, rc, "could not read WAL index file \"%s\": %s", path.data, lb_strerror(rc));
    }
    wix_summary s;
    if (rc == 0)
        rc = parse_header(ix, path.data, (const uint8_t *)bytes.data, bytes.len, f->segno, &s);
    if (rc == 0 && (s.sealed != f->sealed || bytes.len < f->data_end))
        rc = seterr(ix, LB_ECRC, "corrupt WAL index file \"%s\": changed under the index",
                    path.data);
    if (rc == 0)
        rc = walk_frames(ix, path.data, (const uint8_t *)bytes.data, f->data_end, false, NULL, &s,
                         fn, arg);
    if (rc == 0 && !summary_same_content(&s, f))
        rc = seterr(ix, LB_ECRC, "corrupt WAL index file \"%s\": frames and summary disagree",
                    path.data);
    lb_buf_free(&path);
    lb_buf_free(&bytes);
    return rc;
}

typedef struct query {
    lb_lsn from, to;
    const ps_blockref *block; /* block_changes */
    uint32_t xid;             /* xid_blocks */
    bool by_xid;
    ps_walindex_change_cb change_cb;
    ps_walindex_xact_cb xact_cb;
    void *arg;
    int user_rc;
} query;

static int
query_entry(ps_walindex *ix, void *arg, const wix_entry *e)
{
    (void)ix;
    query *q = arg;
    if (e->lsn >= q->to)
        return WALK_STOP;
    if (e->lsn < q->from)
        return 0;
    if (q->xact_cb) {
        if (!e->xact)
            return 0;
        ps_walindex_xact x = {.kind = (ps_walindex_xact_kind)e->xact,
                              .lsn = e->lsn,
                              .end_lsn = e->end,
                              .xid = e->xact_xid,
                              .time_unix_us = e->xact_time + LB_PG_EPOCH_UNIX_USEC,
                              .nsubxacts = e->nsub,
                              .subxacts = e->sub};
        q->user_rc = q->xact_cb(q->arg, &x);
        return q->user_rc ? WALK_STOP : 0;
    }
    if (q->by_xid && e->xid != q->xid && e->toplevel != q->xid)
        return 0;
    for (int i = 0; i < e->nblocks; i++) {
        const ps_blockref *b = &e->blocks[i].ref;
        if (q->block &&
            (b->blkno != q->block->blkno || b->rel != q->block->rel || b->fork != q->block->fork ||
             b->db != q->block->db || b->spc != q->block->spc))
            continue;
        ps_walindex_change c = {.lsn = e->lsn,
                                .end_lsn = e->end,
                                .xid = e->xid,
                                .toplevel_xid = e->toplevel,
                                .rmid = e->rmid,
                                .info = e->info,
                                .flags = e->blocks[i].flags,
                                .block = *b};
        q->user_rc = q->change_cb(q->arg, &c);
        if (q->user_rc)
            return WALK_STOP;
    }
    return 0;
}

static int
run_query(ps_walindex *ix, query *q)
{
    ix->errmsg[0] = '\0';
    if (ix->broken)
        return seterr(ix, ix->broken, "WAL index in \"%s\" failed earlier: reopen it", ix->dir);
    for (size_t i = 0; i < ix->nfiles; i++) {
        const wix_summary *f = &ix->files[i];
        if (f->nentries == 0 || f->last_entry_lsn < q->from)
            continue;
        if (f->first_entry_lsn >= q->to)
            break;
        int rc = walk_file(ix, f, query_entry, q);
        if (rc == WALK_STOP) {
            if (q->user_rc)
                return q->user_rc;
            break;
        }
        if (rc)
            return rc;
    }
    return 0;
}

int
ps_walindex_changes(ps_walindex *ix, lb_lsn from, lb_lsn to, ps_walindex_change_cb cb, void *arg)
{
    query q = {.from = from, .to = to, .change_cb = cb, .arg = arg};
    return run_query(ix, &q);
}

int
ps_walindex_block_changes(ps_walindex *ix, const ps_blockref *b, lb_lsn from, lb_lsn to,
                          ps_walindex_change_cb cb, void *arg)
{
    query q = {.from = from, .to = to, .block = b, .change_cb = cb, .arg = arg};
    return run_query(ix, &q);
}

int
ps_walindex_xid_blocks(ps_walindex *ix, uint32_t xid, lb_lsn from, lb_lsn to,
                       ps_walindex_change_cb cb, void *arg)
{
    query q = {.from = from, .to = to, .xid = xid, .by_xid = true, .change_cb = cb, .arg = arg};
    return run_query(ix, &q);
}

int
ps_walindex_xacts(ps_walindex *ix, lb_lsn from, lb_lsn to, ps_walindex_xact_cb cb, void *arg)
{
    query q = {.from = from, .to = to, .xact_cb = cb, .arg = arg};
    return run_query(ix, &q);
}

/* ---- PITR ------------------------------------------------------------------------ */

typedef struct pitr {
    int64_t t; /* PostgreSQL epoch */
    bool found, stopped;
    lb_lsn end;
    int64_t time;
    uint32_t xid;
} pitr;

static int
pitr_entry(ps_walindex *ix, void *arg, const wix_entry *e)
{
    (void)ix;
    pitr *p = arg;
    if (!e->xact)
        return 0;
    if (e->xact_time > p->t) {
        p->stopped = true;
        return WALK_STOP;
    }
    if (e->xact == PS_WALINDEX_COMMIT || e->xact == PS_WALINDEX_COMMIT_PREPARED) {
        p->found = true;
        p->end = e->end;
        p->time = e->xact_time;
        p->xid = e->xact_xid;
    }
    return 0;
}

int
ps_walindex_last_commit_before(ps_walindex *ix, int64_t t_unix_us, lb_lsn *end_lsn,
                               int64_t *time_unix_us, uint32_t *xid)
{
    ix->errmsg[0] = '\0';
    if (ix->broken)
        return seterr(ix, ix->broken, "WAL index in \"%s\" failed earlier: reopen it", ix->dir);
    pitr p = {.t = t_unix_us < INT64_MIN + LB_PG_EPOCH_UNIX_USEC
                       ? INT64_MIN
                       : t_unix_us - LB_PG_EPOCH_UNIX_USEC};
    /* The first commit or abort after t is in the first file whose latest
     * one is after t; every file before it contributes its last commit. */
    for (size_t i = 0; i < ix->nfiles && !p.stopped; i++) {
        const wix_summary *f = &ix->files[i];
        if (f->nxacts && f->max_xact_time > p.t) {
            int rc = walk_file(ix, f, pitr_entry, &p);
            if (rc != 0 && rc != WALK_STOP)
                return rc;
            if (!p.stopped)
                return seterr(ix, LB_ECRC,
                              "WAL index file of segment %" PRIu64
                              " does not hold the transaction its summary promises",
                              f->segno);
            break;
        }
        if (f->ncommits) {
            p.found = true;
            p.end = f->last_commit_end;
            p.time = f->last_commit_time;
            p.xid = f->last_commit_xid;
        }
    }
    if (!p.found) {
        char ts[32];
        snprintf(ts, sizeof(ts), "%" PRId64, t_unix_us);
        return seterr(ix, LB_ENOTFOUND, "no commit at or before %s us since the Unix epoch", ts);
    }
    if (end_lsn)
        *end_lsn = p.end;
    if (time_unix_us)
        *time_unix_us = p.time + LB_PG_EPOCH_UNIX_USEC;
    if (xid)
        *xid = p.xid;
    return 0;
}

/* ---- storage sync ------------------------------------------------------------- */

int
ps_walindex_sealed_files(ps_walindex *ix, int (*cb)(void *arg, const ps_walindex_file *f),
                         void *arg)
{
    ix->errmsg[0] = '\0';
    lb_buf path = LB_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < ix->nfiles && rc == 0; i++) {
        const wix_summary *s = &ix->files[i];
        if (!s->sealed)
            continue;
        char name[WIX_NAME_LEN + 1];
        file_name(name, s->segno);
        rc = file_path(ix, s->segno, &path);
        if (rc)
            break;
        ps_walindex_file f = {.name = name,
                              .path = path.data,
                              .segno = s->segno,
                              .base_lsn = s->base_lsn,
                              .end_lsn = s->end_lsn,
                              .size = s->size};
        rc = cb(arg, &f);
    }
    lb_buf_free(&path);
    return rc;
}

/* Verify every byte of a sealed file and give its summary. */
static int
verify_sealed(ps_walindex *ix, const char *name, const uint8_t *b, size_t n, uint64_t segno,
              wix_summary *s)
{
    int rc = parse_header(ix, name, b, n, segno, s);
    if (rc)
        return rc == LB_ETRUNCATED ? LB_EPARSE : rc;
    if (!s->sealed)
        return seterr(ix, LB_EPARSE, "WAL index file \"%s\" is not sealed", name);
    if (n < WIX_HEADER_SIZE + WIX_FRAME_HDR + WIX_TRAILER_SIZE)
        return seterr(ix, LB_EPARSE, "WAL index file \"%s\" is cut", name);
    const uint8_t *tr = b + n - WIX_TRAILER_SIZE;
    uint64_t sum_off = get64(tr);
    if (get64(tr + 8) != WIX_TRAILER_MAGIC || get32(tr + 16) != lb_crc32c(tr, 16) ||
        sum_off < WIX_HEADER_SIZE || sum_off > n - WIX_TRAILER_SIZE - WIX_FRAME_HDR)
        return seterr(ix, LB_ECRC, "corrupt WAL index file \"%s\": bad trailer", name);
    wix_summary stored = *s;
    stored.size = n;
    rc = read_sealed_footer(ix, name, tr, b + sum_off, n - WIX_TRAILER_SIZE - sum_off, &stored);
    if (rc)
        return rc;
    rc = walk_frames(ix, name, b, sum_off, false, NULL, s, NULL, NULL);
    if (rc)
        return rc;
    if (!summary_same_content(s, &stored))
        return seterr(ix, LB_ECRC, "corrupt WAL index file \"%s\": frames and summary disagree",
                      name);
    if (s->end_lsn < lb_wal_segment_start(segno + 1, ix->seg_size))
        return seterr(ix, LB_EPARSE, "WAL index file \"%s\" is sealed but incomplete", name);
    *s = stored;
    return 0;
}

int
ps_walindex_install(ps_walindex *ix, const char *name, const void *bytes, size_t n)
{
    ix->errmsg[0] = '\0';
    if (ix->broken)
        return seterr(ix, ix->broken, "WAL index in \"%s\" failed earlier: reopen it", ix->dir);
    uint64_t segno;
    if (!name || !parse_file_name(name, &segno))
        return seterr(ix, LB_EPARSE, "\"%s\" is not a WAL index file name", name ? name : "");
    wix_summary s;
    int rc = verify_sealed(ix, name, bytes, n, segno, &s);
    if (rc)
        return rc;
    lb_buf path = LB_BUF_INIT;
    if ((rc = file_path(ix, segno, &path)) != 0)
        return rc;
    for (size_t i = 0; i < ix->nfiles; i++) {
        if (ix->files[i].segno != segno)
            continue;
        lb_buf have = LB_BUF_INIT;
        rc = lb_read_file(path.data, &have);
        bool same = rc == 0 && have.len == n && memcmp(have.data, bytes, n) == 0;
        lb_buf_free(&have);
        lb_buf_free(&path);
        return same ? 0
                    : seterr(ix, LB_EEXIST, "a different WAL index file \"%s\" is installed", name);
    }
    size_t at;
    bool moves_resume = false;
    if (ix->nfiles == 0) {
        at = 0;
        moves_resume = true;
    } else if (segno < ix->files[0].segno && s.end_lsn == ix->files[0].base_lsn) {
        at = 0;
    } else if (ix->active_fd < 0 && segno > ix->files[ix->nfiles - 1].segno &&
               s.base_lsn == ix->resume_lsn) {
        at = ix->nfiles;
        moves_resume = true;
    } else {
        lb_buf_free(&path);
        return seterr(ix, LB_ECONFLICT,
                      "WAL index file \"%s\" (" LB_LSN_FMT " to " LB_LSN_FMT
                      ") does not join the indexed range " LB_LSN_FMT " to " LB_LSN_FMT,
                      name, LB_LSN_ARGS(s.base_lsn), LB_LSN_ARGS(s.end_lsn),
                      LB_LSN_ARGS(ix->files[0].base_lsn), LB_LSN_ARGS(ix->resume_lsn));
    }
    rc = lb_write_file_atomic(path.data, bytes, n);
    if (rc)
        seterr(ix, rc, "could not write WAL index file \"%s\": %s", path.data, lb_strerror(rc));
    lb_buf_free(&path);
    if (rc == 0)
        rc = add_file(ix, at, &s);
    if (rc)
        return rc;
    if (moves_resume) {
        ix->resume_lsn = s.end_lsn;
        ix->resume_prev = s.last_lsn;
        lb_wal_decoder_free(ix->dec);
        ix->dec = NULL;
    }
    return 0;
}
