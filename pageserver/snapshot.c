/*
 * snapshot.c: data directory <-> layers (see snapshot.h).
 *
 * Relation files are "base/<db>/<relfilenode>[_fsm|_vm|_init][.<segment>]"
 * and "global/<relfilenode>[...]"; a segment holds RELSEG_SIZE blocks
 * (1 GiB). Everything else is copied as a file, and directories are kept as
 * entries named "<dir>/" so that empty ones (pg_wal, pg_replslot) come back.
 */
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "fileio.h"
#include "log.h"
#include "wal.h"

#define RELSEG_SIZE 131072u /* blocks per relation segment file: 1 GiB of 8 KiB pages */
#define DEFAULTTABLESPACE_OID 1663u
#define GLOBALTABLESPACE_OID 1664u

/* Directories whose contents a base backup leaves out (the directory
 * itself is kept), as pg_basebackup does. */
static const char *const skip_contents[] = {
    "pg_wal",       "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial",
    "pg_snapshots", "pg_stat_tmp", "pg_subtrans", NULL,
};
/* Files left out wherever they are. */
static const char *const skip_files[] = {
    "postmaster.pid",  "postmaster.opts",  "pg_internal.init",
    "standby.signal",  "recovery.signal",  "backup_label",
    "backup_manifest", "current_logfiles", NULL,
};

static bool
in_list(const char *name, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

int
ps_parse_relpath(const char *relpath, ps_relkey *key, uint32_t *segno)
{
    unsigned db = 0, spc;
    const char *name;
    if (strncmp(relpath, "base/", 5) == 0) {
        char *end;
        unsigned long v = strtoul(relpath + 5, &end, 10);
        if (end == relpath + 5 || *end != '/' || v > UINT32_MAX)
            return LB_ENOTFOUND;
        db = (unsigned)v;
        spc = DEFAULTTABLESPACE_OID;
        name = end + 1;
    } else if (strncmp(relpath, "global/", 7) == 0) {
        spc = GLOBALTABLESPACE_OID;
        name = relpath + 7;
    } else {
        return LB_ENOTFOUND;
    }
    char *end;
    if (name[0] < '0' || name[0] > '9')
        return LB_ENOTFOUND;
    unsigned long rel = strtoul(name, &end, 10);
    if (rel == 0 || rel > UINT32_MAX)
        return LB_ENOTFOUND;
    uint8_t fork = LB_FORK_MAIN;
    if (strncmp(end, "_fsm", 4) == 0)
        fork = LB_FORK_FSM, end += 4;
    else if (strncmp(end, "_vm", 3) == 0)
        fork = LB_FORK_VM, end += 3;
    else if (strncmp(end, "_init", 5) == 0)
        fork = LB_FORK_INIT, end += 5;
    unsigned long seg = 0;
    if (*end == '.') {
        char *e2;
        seg = strtoul(end + 1, &e2, 10);
        if (e2 == end + 1 || *e2 || seg == 0 || seg > 100000)
            return LB_ENOTFOUND;
    } else if (*end) {
        return LB_ENOTFOUND;
    }
    *key = (ps_relkey){spc, db, (uint32_t)rel, fork};
    *segno = (uint32_t)seg;
    return 0;
}

int
ps_relpath(const ps_relkey *key, uint32_t segno, char *out, size_t cap)
{
    static const char *const forks[] = {"", "_fsm", "_vm", "_init"};
    if (key->fork > 3)
        return -EINVAL;
    char seg[16] = "";
    if (segno)
        snprintf(seg, sizeof(seg), ".%u", segno);
    int n;
    if (key->spc == GLOBALTABLESPACE_OID)
        n = snprintf(out, cap, "global/%u%s%s", key->rel, forks[key->fork], seg);
    else if (key->spc == DEFAULTTABLESPACE_OID)
        n = snprintf(out, cap, "base/%u/%u%s%s", key->db, key->rel, forks[key->fork], seg);
    else
        return LB_EUNSUPPORTED;
    return n > 0 && (size_t)n < cap ? 0 : -ENAMETOOLONG;
}

/* End of the record at lsn (a checkpoint record) in datadir's pg_wal. */
int
ps_wal_record_end(const char *datadir, uint32_t tli, uint32_t seg_size, lb_lsn lsn, lb_lsn *end)
{
    char name[LB_WAL_SEG_NAME_LEN + 1], path[PATH_MAX + 256];
    lb_wal_segment_name(name, tli, lb_wal_segno(lsn, seg_size), seg_size);
    snprintf(path, sizeof(path), "%s/pg_wal/%s", datadir, name);
    lb_buf seg = LB_BUF_INIT;
    int rc = lb_read_file(path, &seg);
    lb_wal_decoder *dec = NULL;
    if (rc == 0)
        rc = lb_wal_decoder_new(lsn, seg_size, &dec);
    size_t off = (size_t)(lsn % seg_size);
    if (rc == 0 && seg.len > off)
        rc = lb_wal_decoder_feed(dec, seg.data + off, seg.len - off);
    lb_wal_record rec;
    if (rc == 0)
        rc = lb_wal_decoder_next(dec, &rec);
    if (rc == 0)
        *end = rec.end_lsn;
    lb_wal_decoder_free(dec);
    lb_buf_free(&seg);
    return rc;
}

/* ---- taking a snapshot ------------------------------------------------------- */

typedef struct take_ctx {
    const char *datadir;
    lb_lsn prev;
    uint64_t wal_from, wal_to; /* pg_wal segments to include */
    lb_lsn redo_lsn, lsn;      /* of those, the bytes from R's page to P are kept */
    uint32_t seg_size;
    ps_layer_writer *w;
    ps_snapshot_stats *stats;
    ps_rel_size *sizes;
    size_t nsizes, cap;
} take_ctx;

static int
note_size(take_ctx *c, const ps_relkey *key, uint32_t nblocks)
{
    for (size_t i = 0; i < c->nsizes; i++)
        if (ps_relkey_cmp(&c->sizes[i].key, key) == 0) {
            if (nblocks > c->sizes[i].nblocks)
                c->sizes[i].nblocks = nblocks;
            return 0;
        }
    if (c->nsizes == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        ps_rel_size *p = realloc(c->sizes, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        c->sizes = p;
        c->cap = cap;
    }
    c->sizes[c->nsizes++] = (ps_rel_size){*key, nblocks};
    return 0;
}

static bool
page_is_zero(const uint8_t *p)
{
    for (size_t i = 0; i < PS_PAGE_SIZE; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        if (v)
            return false;
    }
    return true;
}

static int
take_relation(take_ctx *c, const char *path, const char *rel, const ps_relkey *key, uint32_t segno)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint8_t page[PS_PAGE_SIZE];
    uint32_t blk = 0;
    int rc = 0;
    for (;; blk++) {
        ssize_t r = pread(fd, page, PS_PAGE_SIZE, (off_t)blk * PS_PAGE_SIZE);
        if (r == 0)
            break;
        if (r != PS_PAGE_SIZE) {
            if (r > 0)
                lb_warn("relation file \"%s\" ends with a partial block; ignored", rel);
            else
                rc = -errno;
            break;
        }
        uint32_t blkno = segno * RELSEG_SIZE + blk;
        bool take = true;
        if (key->fork == LB_FORK_MAIN) {
            uint32_t hi, lo;
            memcpy(&hi, page, 4);
            memcpy(&lo, page + 4, 4);
            lb_lsn page_lsn = ((lb_lsn)hi << 32) | lo;
            c->stats->main_pages_seen++;
            take = page_lsn > c->prev || page_is_zero(page);
            if (take)
                c->stats->main_pages_written++;
        } else {
            c->stats->other_pages++;
        }
        if (take && (rc = ps_layer_add_page(c->w, key, blkno, page)) != 0)
            break;
    }
    close(fd);
    if (rc == 0)
        rc = note_size(c, key, segno * RELSEG_SIZE + blk);
    return rc;
}

/* What a server started from the snapshot reads of a WAL segment: its
 * first page, and from the page holding the redo point to P. The rest (older WAL, and WAL the
 * standby received past P) is zeroed: it compresses to nothing, and a
 * server gets WAL past P from restore_command or streaming anyway. */
static void
trim_wal(const take_ctx *c, const char *rel, lb_buf *b)
{
    uint32_t tli;
    uint64_t segno;
    if (strncmp(rel, "pg_wal/", 7) != 0 ||
        lb_wal_segment_parse(rel + 7, c->seg_size, &tli, &segno) != 0 || b->len != c->seg_size)
        return;
    /* PostgreSQL checks the first page (the long header) of every segment
     * it opens, whatever page it reads: that one stays too. */
    lb_lsn start = lb_wal_segment_start(segno, c->seg_size);
    lb_lsn keep_from = c->redo_lsn - c->redo_lsn % LB_WAL_BLCKSZ;
    if (keep_from > start + LB_WAL_BLCKSZ) {
        size_t n = (size_t)(keep_from - start);
        memset(b->data + LB_WAL_BLCKSZ, 0, (n < b->len ? n : b->len) - LB_WAL_BLCKSZ);
    }
    if (c->lsn >= start && c->lsn - start < b->len)
        memset(b->data + (c->lsn - start), 0, b->len - (size_t)(c->lsn - start));
}

/* The redo standby's postgresql.auto.conf holds its own settings (fsync
 * off, its port, primary_conninfo to a safekeeper): a snapshot keeps what
 * initdb writes there instead, so a server started from it has none. */
static const char auto_conf[] = "# Do not edit this file manually!\n"
                                "# It will be overwritten by the ALTER SYSTEM command.\n";

static int
take_file(take_ctx *c, const char *path, const char *rel)
{
    lb_buf b = LB_BUF_INIT;
    int rc = 0;
    if (strcmp(rel, "postgresql.auto.conf") == 0)
        rc = lb_buf_append(&b, auto_conf, sizeof(auto_conf) - 1);
    else
        rc = lb_read_file(path, &b);
    if (rc == 0)
        trim_wal(c, rel, &b);
    if (rc == 0)
        rc = ps_layer_add_file(c->w, rel, b.data ? b.data : "", b.len);
    if (rc == 0)
        c->stats->files++;
    lb_buf_free(&b);
    return rc;
}

static int
walk(take_ctx *c, const char *rel_dir)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s%s%s", c->datadir, rel_dir[0] ? "/" : "", rel_dir);
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    bool skip_all = in_list(rel_dir, skip_contents);
    bool is_wal = strcmp(rel_dir, "pg_wal") == 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (is_wal) {
            /* Only the WAL a server started from this snapshot replays
             * first, and the timeline histories. */
            uint32_t tli;
            uint64_t segno;
            size_t nl = strlen(e->d_name);
            bool history = nl == 16 && strcmp(e->d_name + 8, ".history") == 0;
            bool wanted = lb_wal_segment_parse(e->d_name, c->seg_size, &tli, &segno) == 0 &&
                          segno >= c->wal_from && segno <= c->wal_to;
            if (!history && !wanted)
                continue;
        } else if (skip_all) {
            continue;
        }
        if (in_list(e->d_name, skip_files) || strncmp(e->d_name, "pgsql_tmp", 9) == 0)
            continue;
        char rel[PATH_MAX], path[PATH_MAX * 2];
        snprintf(rel, sizeof(rel), "%s%s%s", rel_dir, rel_dir[0] ? "/" : "", e->d_name);
        snprintf(path, sizeof(path), "%s/%s", c->datadir, rel);
        struct stat st;
        if (lstat(path, &st) != 0) {
            if (errno == ENOENT)
                continue; /* removed meanwhile (a temporary file) */
            rc = -errno;
            break;
        }
        if (S_ISLNK(st.st_mode)) {
            /* A tablespace outside the data directory: its files are not
             * the standby's to copy (the compute refuses CREATE
             * TABLESPACE; in-place ones are directories and are taken). */
            char target[256] = "";
            ssize_t tn = readlink(path, target, sizeof(target) - 1);
            target[tn > 0 ? tn : 0] = '\0';
            snprintf(c->stats->unsupported, sizeof(c->stats->unsupported),
                     "\"%.60s\" is a link to \"%.200s\": a tablespace outside the data "
                     "directory cannot be snapshotted",
                     rel, target);
            lb_error("%s", c->stats->unsupported);
            rc = LB_EUNSUPPORTED;
        } else if (S_ISDIR(st.st_mode)) {
            char name[PATH_MAX + 2];
            snprintf(name, sizeof(name), "%s/", rel);
            rc = ps_layer_add_file(c->w, name, "", 0);
            if (rc == 0)
                rc = walk(c, rel);
        } else if (S_ISREG(st.st_mode)) {
            ps_relkey key;
            uint32_t segno;
            if (ps_parse_relpath(rel, &key, &segno) == 0)
                rc = take_relation(c, path, rel, &key, segno);
            else
                rc = take_file(c, path, rel);
        }
    }
    closedir(d);
    return rc;
}

int
ps_snapshot_take(const char *datadir, const ps_layer_info *info, uint32_t seg_size,
                 const char *layer_path, ps_snapshot_stats *stats)
{
    if (!lb_wal_seg_size_valid(seg_size) || info->redo_lsn > info->lsn)
        return -EINVAL;
    take_ctx c = {.datadir = datadir,
                  .prev = info->prev_lsn,
                  .wal_from = lb_wal_segno(info->redo_lsn, seg_size),
                  .redo_lsn = info->redo_lsn,
                  .lsn = info->lsn,
                  .wal_to = lb_wal_segno(info->lsn, seg_size),
                  .seg_size = seg_size,
                  .stats = stats};
    memset(stats, 0, sizeof(*stats));
    int rc = ps_layer_writer_new(layer_path, info, &c.w);
    if (rc)
        return rc;
    rc = walk(&c, "");
    for (size_t i = 0; rc == 0 && i < c.nsizes; i++)
        rc = ps_layer_add_rel_size(c.w, &c.sizes[i].key, c.sizes[i].nblocks);
    free(c.sizes);
    if (rc) {
        ps_layer_writer_abort(c.w);
        lb_error("could not snapshot \"%s\": %s", datadir, lb_strerror(rc));
        return rc;
    }
    rc = ps_layer_writer_finish(c.w);
    struct stat st;
    if (rc == 0 && stat(layer_path, &st) == 0)
        stats->bytes = (uint64_t)st.st_size;
    return rc;
}

/* ---- reconstructing ---------------------------------------------------------- */

/* Where reconstructed bytes go: a directory or a tar stream. */
typedef struct sink {
    int (*dir)(struct sink *s, const char *name);
    int (*begin)(struct sink *s, const char *name, uint64_t size);
    int (*write)(struct sink *s, const void *bytes, size_t n);
    int (*end)(struct sink *s);
    const char *target;
    int fd;
    lb_tar_writer *tar;
} sink;

static int
block_from_layers(ps_layer *const *layers, size_t n, const ps_relkey *key, uint32_t blkno,
                  uint8_t *page)
{
    for (size_t i = 0; i < n; i++) {
        int rc = ps_layer_get_page(layers[i], key, blkno, page);
        if (rc != LB_ENOTFOUND)
            return rc;
    }
    memset(page, 0, PS_PAGE_SIZE); /* never written: a new, empty page */
    return 0;
}

/* A branch's basebackup from an ancestor's snapshot: the ancestor's WAL
 * in pg_wal must end at the branch point, or a server that replays it
 * would see the ancestor's later writes. Segments starting at or past cut
 * are left out; in the one holding cut, the bytes from cut on are zeroed. */
static bool
cut_wal_file(const char *name, lb_buf *content, lb_lsn cut, uint32_t seg_size)
{
    uint32_t tli;
    uint64_t segno;
    if (cut == UINT64_MAX || strncmp(name, "pg_wal/", 7) != 0 ||
        lb_wal_segment_parse(name + 7, seg_size, &tli, &segno) != 0)
        return true;
    lb_lsn start = lb_wal_segment_start(segno, seg_size);
    if (start >= cut)
        return false;
    if (cut - start < content->len)
        memset(content->data + (cut - start), 0, content->len - (size_t)(cut - start));
    return true;
}

static int
reconstruct(ps_layer *const *layers, size_t n, sink *s, lb_lsn wal_cut, uint32_t seg_size)
{
    if (n == 0)
        return -EINVAL;
    ps_layer *top = layers[0];
    int rc = 0;
    lb_buf content = LB_BUF_INIT;
    /* Directories first, then files: parents before children. */
    for (size_t i = 0; rc == 0 && i < ps_layer_nfiles(top); i++) {
        const char *name = ps_layer_file_name(top, i);
        size_t len = strlen(name);
        if (len && name[len - 1] == '/')
            rc = s->dir(s, name);
    }
    for (size_t i = 0; rc == 0 && i < ps_layer_nfiles(top); i++) {
        const char *name = ps_layer_file_name(top, i);
        size_t len = strlen(name);
        if (len && name[len - 1] == '/')
            continue;
        lb_buf_reset(&content);
        rc = ps_layer_get_file(top, i, &content);
        if (rc == 0 && !cut_wal_file(name, &content, wal_cut, seg_size))
            continue;
        if (rc == 0)
            rc = s->begin(s, name, content.len);
        if (rc == 0 && content.len)
            rc = s->write(s, content.data, content.len);
        if (rc == 0)
            rc = s->end(s);
    }
    lb_buf_free(&content);

    size_t nsizes;
    const ps_rel_size *sizes = ps_layer_rel_sizes(top, &nsizes);
    uint8_t page[PS_PAGE_SIZE];
    for (size_t r = 0; rc == 0 && r < nsizes; r++) {
        const ps_rel_size *rs = &sizes[r];
        uint32_t nsegs = rs->nblocks == 0 ? 1 : (rs->nblocks + RELSEG_SIZE - 1) / RELSEG_SIZE;
        for (uint32_t seg = 0; rc == 0 && seg < nsegs; seg++) {
            char path[PATH_MAX];
            rc = ps_relpath(&rs->key, seg, path, sizeof(path));
            if (rc)
                break;
            uint32_t first = seg * RELSEG_SIZE;
            uint32_t count = rs->nblocks - first < RELSEG_SIZE ? rs->nblocks - first : RELSEG_SIZE;
            if (rs->nblocks == 0)
                count = 0;
            rc = s->begin(s, path, (uint64_t)count * PS_PAGE_SIZE);
            for (uint32_t b = 0; rc == 0 && b < count; b++) {
                rc = block_from_layers(layers, n, &rs->key, first + b, page);
                if (rc == 0)
                    rc = s->write(s, page, PS_PAGE_SIZE);
            }
            if (rc == 0)
                rc = s->end(s);
        }
    }
    return rc;
}

static int
dir_mkdir(sink *s, const char *name)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", s->target, name);
    return lb_mkdir_p(path, 0700);
}

static int
dir_begin(sink *s, const char *name, uint64_t size)
{
    (void)size;
    char path[PATH_MAX * 2], parent[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", s->target, name);
    if (lb_dirname(path, parent, sizeof(parent)) == 0)
        lb_mkdir_p(parent, 0700);
    s->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    return s->fd < 0 ? -errno : 0;
}

static int
dir_write(sink *s, const void *bytes, size_t n)
{
    return lb_write_all(s->fd, bytes, n);
}

static int
dir_end(sink *s)
{
    int rc = lb_fsync(s->fd);
    close(s->fd);
    s->fd = -1;
    return rc;
}

int
ps_reconstruct_dir(ps_layer *const *layers, size_t n, const char *target, lb_lsn wal_cut,
                   uint32_t seg_size)
{
    if (mkdir(target, 0700) != 0)
        return -errno;
    sink s = {dir_mkdir, dir_begin, dir_write, dir_end, target, -1, NULL};
    int rc = reconstruct(layers, n, &s, wal_cut, seg_size);
    if (s.fd >= 0)
        close(s.fd);
    return rc;
}

static int
tar_dir(sink *s, const char *name)
{
    char d[PATH_MAX];
    snprintf(d, sizeof(d), "%s", name);
    size_t len = strlen(d);
    if (len && d[len - 1] == '/')
        d[len - 1] = '\0';
    return lb_tar_add_dir(s->tar, d, 0700, 0);
}

static int
tar_begin(sink *s, const char *name, uint64_t size)
{
    return lb_tar_begin_file(s->tar, name, size, 0600, 0);
}

static int
tar_write(sink *s, const void *bytes, size_t n)
{
    return lb_tar_write(s->tar, bytes, n);
}

static int
tar_end(sink *s)
{
    (void)s;
    return 0;
}

int
ps_reconstruct_tar(ps_layer *const *layers, size_t n, lb_tar_writer *tar, lb_lsn wal_cut,
                   uint32_t seg_size)
{
    sink s = {tar_dir, tar_begin, tar_write, tar_end, NULL, -1, tar};
    int rc = reconstruct(layers, n, &s, wal_cut, seg_size);
    return rc ? rc : lb_tar_finish(tar);
}
