/*
 * layer.c: layer file format (see layer.h).
 *
 *   header  64 bytes: magic "LBLAYER1", version, P, R, previous P, time
 *   frames  one per page or file: zstd-compressed (or raw when that is
 *           not smaller), no framing of their own
 *   index   40-byte entries sorted by (relation, fork, block):
 *           spc db rel fork blk size|raw-bit crc offset
 *   manifest 20-byte entries: spc db rel fork nblocks
 *   files   per file: name length, name, size, offset, stored size|raw-bit, crc
 *   footer  64 bytes: offsets and counts of the three tables, CRC-32C over
 *           all three, magic
 * All integers little-endian. Each frame's CRC-32C is of the uncompressed
 * bytes, checked on every read.
 */
#include "layer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "crc32c.h"
#include "errors.h"
#include "fileio.h"
#include "log.h"

#define MAGIC "LBLAYER1"
#define VERSION 1
#define HEADER_SIZE 64
#define FOOTER_SIZE 64
#define INDEX_ENTRY 40
#define MANIFEST_ENTRY 20
#define RAW_BIT 0x80000000u
#define ZSTD_LEVEL 3
#define MAX_FILE_SIZE (1u << 30)

typedef struct page_entry {
    ps_relkey key;
    uint32_t blkno;
    uint32_t stored; /* bytes in the frame, | RAW_BIT when not compressed */
    uint32_t crc;
    uint64_t offset;
} page_entry;

typedef struct file_entry {
    char *name;
    uint64_t size, offset;
    uint32_t stored, crc;
} file_entry;

int
ps_relkey_cmp(const ps_relkey *a, const ps_relkey *b)
{
    if (a->spc != b->spc)
        return a->spc < b->spc ? -1 : 1;
    if (a->db != b->db)
        return a->db < b->db ? -1 : 1;
    if (a->rel != b->rel)
        return a->rel < b->rel ? -1 : 1;
    if (a->fork != b->fork)
        return a->fork < b->fork ? -1 : 1;
    return 0;
}

static int
page_cmp(const void *x, const void *y)
{
    const page_entry *a = x, *b = y;
    int c = ps_relkey_cmp(&a->key, &b->key);
    if (c)
        return c;
    return a->blkno < b->blkno ? -1 : a->blkno > b->blkno ? 1 : 0;
}

static int
size_cmp(const void *x, const void *y)
{
    return ps_relkey_cmp(&((const ps_rel_size *)x)->key, &((const ps_rel_size *)y)->key);
}

static void
put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- writer ------------------------------------------------------------------- */

struct ps_layer_writer {
    char path[PATH_MAX];
    char tmp[PATH_MAX + 8];
    int fd;
    uint64_t offset;
    ps_layer_info info;
    page_entry *pages;
    size_t npages, cap_pages;
    ps_rel_size *sizes;
    size_t nsizes, cap_sizes;
    file_entry *files;
    size_t nfiles, cap_files;
    ZSTD_CCtx *cctx;
    void *zbuf;
    size_t zcap;
};

int
ps_layer_writer_new(const char *path, const ps_layer_info *info, ps_layer_writer **out)
{
    ps_layer_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    snprintf(w->path, sizeof(w->path), "%s", path);
    snprintf(w->tmp, sizeof(w->tmp), "%s.tmp", path);
    w->info = *info;
    w->cctx = ZSTD_createCCtx();
    w->zcap = ZSTD_compressBound(PS_PAGE_SIZE);
    w->zbuf = malloc(w->zcap);
    w->fd = lb_io->open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (!w->cctx || !w->zbuf || w->fd < 0) {
        int rc = w->fd < 0 ? -errno : -ENOMEM;
        if (w->fd >= 0)
            lb_io->close(w->fd);
        ZSTD_freeCCtx(w->cctx);
        free(w->zbuf);
        free(w);
        return rc;
    }
    uint8_t h[HEADER_SIZE] = {0};
    memcpy(h, MAGIC, 8);
    put32(h + 8, VERSION);
    put64(h + 16, info->lsn);
    put64(h + 24, info->redo_lsn);
    put64(h + 32, info->prev_lsn);
    put64(h + 40, info->created_unix_ms);
    int rc = lb_write_all(w->fd, h, sizeof(h));
    if (rc) {
        ps_layer_writer_abort(w);
        return rc;
    }
    w->offset = HEADER_SIZE;
    *out = w;
    return 0;
}

/* Compress (or not) and append one frame. */
static int
write_frame(ps_layer_writer *w, const void *bytes, size_t n, uint32_t *stored, uint32_t *crc,
            uint64_t *offset)
{
    if (ZSTD_compressBound(n) > w->zcap) {
        size_t cap = ZSTD_compressBound(n);
        void *p = realloc(w->zbuf, cap);
        if (!p)
            return -ENOMEM;
        w->zbuf = p;
        w->zcap = cap;
    }
    size_t z = ZSTD_compressCCtx(w->cctx, w->zbuf, w->zcap, bytes, n, ZSTD_LEVEL);
    const void *frame = w->zbuf;
    size_t len = z;
    uint32_t raw = 0;
    if (ZSTD_isError(z) || z >= n) {
        frame = bytes;
        len = n;
        raw = RAW_BIT;
    }
    int rc = lb_write_all(w->fd, frame, len);
    if (rc)
        return rc;
    *stored = (uint32_t)len | raw;
    *crc = lb_crc32c(bytes, n);
    *offset = w->offset;
    w->offset += len;
    return 0;
}

#define GROW(arr, n, cap)                                                                          \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            size_t c_ = (cap) ? (cap)*2 : 64;                                                      \
            void *p_ = realloc((arr), c_ * sizeof(*(arr)));                                        \
            if (!p_)                                                                               \
                return -ENOMEM;                                                                    \
            (arr) = p_;                                                                            \
            (cap) = c_;                                                                            \
        }                                                                                          \
    } while (0)

int
ps_layer_add_page(ps_layer_writer *w, const ps_relkey *key, uint32_t blkno, const void *page)
{
    GROW(w->pages, w->npages, w->cap_pages);
    page_entry *e = &w->pages[w->npages];
    e->key = *key;
    e->blkno = blkno;
    int rc = write_frame(w, page, PS_PAGE_SIZE, &e->stored, &e->crc, &e->offset);
    if (rc == 0)
        w->npages++;
    return rc;
}

int
ps_layer_add_rel_size(ps_layer_writer *w, const ps_relkey *key, uint32_t nblocks)
{
    GROW(w->sizes, w->nsizes, w->cap_sizes);
    w->sizes[w->nsizes++] = (ps_rel_size){*key, nblocks};
    return 0;
}

int
ps_layer_add_file(ps_layer_writer *w, const char *name, const void *bytes, size_t n)
{
    if (!name[0] || strlen(name) > 1024 || n > MAX_FILE_SIZE)
        return -EINVAL;
    GROW(w->files, w->nfiles, w->cap_files);
    file_entry *e = &w->files[w->nfiles];
    e->name = strdup(name);
    if (!e->name)
        return -ENOMEM;
    e->size = n;
    int rc = write_frame(w, bytes, n, &e->stored, &e->crc, &e->offset);
    if (rc) {
        free(e->name);
        return rc;
    }
    w->nfiles++;
    return 0;
}

static void
writer_free(ps_layer_writer *w)
{
    for (size_t i = 0; i < w->nfiles; i++)
        free(w->files[i].name);
    free(w->files);
    free(w->pages);
    free(w->sizes);
    free(w->zbuf);
    ZSTD_freeCCtx(w->cctx);
    free(w);
}

void
ps_layer_writer_abort(ps_layer_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        lb_io->close(w->fd);
    unlink(w->tmp);
    writer_free(w);
}

int
ps_layer_writer_finish(ps_layer_writer *w)
{
    if (w->npages)
        qsort(w->pages, w->npages, sizeof(*w->pages), page_cmp);
    if (w->nsizes)
        qsort(w->sizes, w->nsizes, sizeof(*w->sizes), size_cmp);
    for (size_t i = 1; i < w->npages; i++)
        if (page_cmp(&w->pages[i - 1], &w->pages[i]) == 0) {
            lb_error("layer \"%s\": page %u/%u/%u fork %u block %u added twice", w->path,
                     w->pages[i].key.spc, w->pages[i].key.db, w->pages[i].key.rel,
                     w->pages[i].key.fork, w->pages[i].blkno);
            ps_layer_writer_abort(w);
            return -EINVAL;
        }
    for (size_t i = 1; i < w->nsizes; i++)
        if (size_cmp(&w->sizes[i - 1], &w->sizes[i]) == 0) {
            ps_layer_writer_abort(w);
            return -EINVAL;
        }

    lb_buf meta = LB_BUF_INIT;
    uint64_t index_off = w->offset;
    int rc = lb_buf_reserve(&meta, w->npages * INDEX_ENTRY + w->nsizes * MANIFEST_ENTRY);
    for (size_t i = 0; rc == 0 && i < w->npages; i++) {
        const page_entry *e = &w->pages[i];
        uint8_t r[INDEX_ENTRY] = {0};
        put32(r, e->key.spc);
        put32(r + 4, e->key.db);
        put32(r + 8, e->key.rel);
        r[12] = e->key.fork;
        put32(r + 16, e->blkno);
        put32(r + 20, e->stored);
        put32(r + 24, e->crc);
        put64(r + 28, e->offset);
        rc = lb_buf_append(&meta, r, sizeof(r));
    }
    uint64_t manifest_off = index_off + meta.len;
    for (size_t i = 0; rc == 0 && i < w->nsizes; i++) {
        uint8_t r[MANIFEST_ENTRY] = {0};
        put32(r, w->sizes[i].key.spc);
        put32(r + 4, w->sizes[i].key.db);
        put32(r + 8, w->sizes[i].key.rel);
        r[12] = w->sizes[i].key.fork;
        put32(r + 16, w->sizes[i].nblocks);
        rc = lb_buf_append(&meta, r, sizeof(r));
    }
    uint64_t files_off = index_off + meta.len;
    for (size_t i = 0; rc == 0 && i < w->nfiles; i++) {
        const file_entry *e = &w->files[i];
        uint8_t r[28];
        uint32_t nl = (uint32_t)strlen(e->name);
        put32(r, nl);
        rc = lb_buf_append(&meta, r, 4);
        if (rc == 0)
            rc = lb_buf_append(&meta, e->name, nl);
        put64(r, e->size);
        put64(r + 8, e->offset);
        put32(r + 16, e->stored);
        put32(r + 20, e->crc);
        put32(r + 24, 0);
        if (rc == 0)
            rc = lb_buf_append(&meta, r, sizeof(r));
    }
    if (rc == 0) {
        uint8_t f[FOOTER_SIZE] = {0};
        put64(f, index_off);
        put64(f + 8, w->npages);
        put64(f + 16, manifest_off);
        put64(f + 24, w->nsizes);
        put64(f + 32, files_off);
        put64(f + 40, w->nfiles);
        put32(f + 48, lb_crc32c(meta.data, meta.len));
        memcpy(f + 56, MAGIC, 8);
        rc = lb_write_all(w->fd, meta.data, meta.len);
        if (rc == 0)
            rc = lb_write_all(w->fd, f, sizeof(f));
    }
    lb_buf_free(&meta);
    if (rc == 0)
        rc = lb_fsync(w->fd);
    if (lb_io->close(w->fd) != 0 && rc == 0)
        rc = -errno;
    w->fd = -1;
    if (rc == 0 && lb_io->rename(w->tmp, w->path) != 0)
        rc = -errno;
    if (rc == 0) {
        char dir[PATH_MAX];
        if (lb_dirname(w->path, dir, sizeof(dir)) == 0)
            rc = lb_fsync_dir(dir);
    }
    if (rc) {
        lb_error("could not write layer \"%s\": %s", w->path, lb_strerror(rc));
        unlink(w->tmp);
    }
    writer_free(w);
    return rc;
}

/* ---- reader ------------------------------------------------------------------- */

struct ps_layer {
    char path[PATH_MAX];
    int fd;
    uint64_t size;
    ps_layer_info info;
    page_entry *pages;
    size_t npages;
    ps_rel_size *sizes;
    size_t nsizes;
    file_entry *files;
    size_t nfiles;
    ZSTD_DCtx *dctx;
};

static int
corrupt(ps_layer *l, const char *what)
{
    lb_error("layer \"%s\" is corrupt: %s", l->path, what);
    return LB_ECRC;
}

void
ps_layer_close(ps_layer *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd);
    for (size_t i = 0; i < l->nfiles; i++)
        free(l->files[i].name);
    free(l->files);
    free(l->pages);
    free(l->sizes);
    ZSTD_freeDCtx(l->dctx);
    free(l);
}

static int
pread_all(int fd, void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return LB_ETRUNCATED;
        done += (size_t)r;
    }
    return 0;
}

int
ps_layer_open(const char *path, ps_layer **out)
{
    ps_layer *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    snprintf(l->path, sizeof(l->path), "%s", path);
    l->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (l->fd < 0 || fstat(l->fd, &st) != 0) {
        int rc = -errno;
        ps_layer_close(l);
        return rc;
    }
    l->size = (uint64_t)st.st_size;
    l->dctx = ZSTD_createDCtx();
    uint8_t h[HEADER_SIZE], f[FOOTER_SIZE];
    int rc = 0;
    if (l->size < HEADER_SIZE + FOOTER_SIZE || pread_all(l->fd, h, sizeof(h), 0) ||
        pread_all(l->fd, f, sizeof(f), l->size - FOOTER_SIZE) || memcmp(h, MAGIC, 8) != 0 ||
        memcmp(f + 56, MAGIC, 8) != 0) {
        rc = corrupt(l, "bad header or footer");
        goto fail;
    }
    if (get32(h + 8) != VERSION) {
        lb_error("layer \"%s\" has unsupported version %u", path, get32(h + 8));
        rc = LB_EUNSUPPORTED;
        goto fail;
    }
    l->info.lsn = get64(h + 16);
    l->info.redo_lsn = get64(h + 24);
    l->info.prev_lsn = get64(h + 32);
    l->info.created_unix_ms = get64(h + 40);
    uint64_t index_off = get64(f), npages = get64(f + 8), manifest_off = get64(f + 16),
             nsizes = get64(f + 24), files_off = get64(f + 32), nfiles = get64(f + 40);
    uint64_t meta_end = l->size - FOOTER_SIZE;
    if (index_off < HEADER_SIZE || index_off > meta_end ||
        npages > (meta_end - index_off) / INDEX_ENTRY ||
        manifest_off != index_off + npages * INDEX_ENTRY ||
        nsizes > (meta_end - manifest_off) / MANIFEST_ENTRY ||
        files_off != manifest_off + nsizes * MANIFEST_ENTRY || files_off > meta_end ||
        nfiles > (meta_end - files_off) / 32) {
        rc = corrupt(l, "bad table offsets");
        goto fail;
    }
    size_t meta_len = (size_t)(meta_end - index_off);
    uint8_t *meta = malloc(meta_len ? meta_len : 1);
    if (!meta) {
        rc = -ENOMEM;
        goto fail;
    }
    if (pread_all(l->fd, meta, meta_len, index_off) != 0 ||
        lb_crc32c(meta, meta_len) != get32(f + 48)) {
        free(meta);
        rc = corrupt(l, "index checksum mismatch");
        goto fail;
    }
    l->pages = calloc(npages ? npages : 1, sizeof(*l->pages));
    l->sizes = calloc(nsizes ? nsizes : 1, sizeof(*l->sizes));
    l->files = calloc(nfiles ? nfiles : 1, sizeof(*l->files));
    if (!l->pages || !l->sizes || !l->files) {
        free(meta);
        rc = -ENOMEM;
        goto fail;
    }
    const uint8_t *p = meta;
    for (size_t i = 0; i < npages; i++, p += INDEX_ENTRY) {
        page_entry *e = &l->pages[i];
        e->key = (ps_relkey){get32(p), get32(p + 4), get32(p + 8), p[12]};
        e->blkno = get32(p + 16);
        e->stored = get32(p + 20);
        e->crc = get32(p + 24);
        e->offset = get64(p + 28);
        uint32_t len = e->stored & ~RAW_BIT;
        if (e->offset < HEADER_SIZE || e->offset + len > index_off || len > PS_PAGE_SIZE + 1024 ||
            (i > 0 && page_cmp(&l->pages[i - 1], e) >= 0)) {
            free(meta);
            rc = corrupt(l, "bad index entry");
            goto fail;
        }
    }
    l->npages = npages;
    for (size_t i = 0; i < nsizes; i++, p += MANIFEST_ENTRY) {
        l->sizes[i] = (ps_rel_size){{get32(p), get32(p + 4), get32(p + 8), p[12]}, get32(p + 16)};
    }
    l->nsizes = nsizes;
    const uint8_t *end = meta + meta_len;
    for (size_t i = 0; i < nfiles; i++) {
        if (end - p < 4 || get32(p) > 1024 || (size_t)(end - p) < 4 + get32(p) + 28) {
            free(meta);
            rc = corrupt(l, "bad file table");
            goto fail;
        }
        uint32_t nl = get32(p);
        file_entry *e = &l->files[i];
        e->name = strndup((const char *)p + 4, nl);
        p += 4 + nl;
        e->size = get64(p);
        e->offset = get64(p + 8);
        e->stored = get32(p + 16);
        e->crc = get32(p + 20);
        p += 28;
        l->nfiles = i + 1;
        if (!e->name || e->offset + (e->stored & ~RAW_BIT) > index_off || e->size > MAX_FILE_SIZE) {
            free(meta);
            rc = corrupt(l, "bad file entry");
            goto fail;
        }
    }
    free(meta);
    *out = l;
    return 0;
fail:
    ps_layer_close(l);
    return rc;
}

const ps_layer_info *
ps_layer_get_info(const ps_layer *l)
{
    return &l->info;
}

static const page_entry *
find(const ps_layer *l, const ps_relkey *key, uint32_t blkno)
{
    page_entry probe = {.key = *key, .blkno = blkno};
    if (l->npages == 0)
        return NULL;
    return bsearch(&probe, l->pages, l->npages, sizeof(*l->pages), page_cmp);
}

bool
ps_layer_has_page(const ps_layer *l, const ps_relkey *key, uint32_t blkno)
{
    return find(l, key, blkno) != NULL;
}

/* Read a frame of `size` uncompressed bytes into out, checking its CRC. */
static int
read_frame(ps_layer *l, uint64_t offset, uint32_t stored, uint32_t crc, void *out, size_t size)
{
    uint32_t len = stored & ~RAW_BIT;
    void *buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    int rc = pread_all(l->fd, buf, len, offset);
    if (rc == 0) {
        if (stored & RAW_BIT) {
            if (len != size)
                rc = corrupt(l, "bad raw frame size");
            else
                memcpy(out, buf, size);
        } else {
            size_t got = ZSTD_decompressDCtx(l->dctx, out, size, buf, len);
            if (ZSTD_isError(got) || got != size)
                rc = corrupt(l, "frame does not decompress");
        }
    }
    free(buf);
    if (rc == 0 && lb_crc32c(out, size) != crc)
        rc = corrupt(l, "page checksum mismatch");
    return rc;
}

int
ps_layer_get_page(ps_layer *l, const ps_relkey *key, uint32_t blkno, void *out)
{
    const page_entry *e = find(l, key, blkno);
    if (!e)
        return LB_ENOTFOUND;
    return read_frame(l, e->offset, e->stored, e->crc, out, PS_PAGE_SIZE);
}

const ps_rel_size *
ps_layer_rel_sizes(const ps_layer *l, size_t *n)
{
    *n = l->nsizes;
    return l->sizes;
}

size_t
ps_layer_npages(const ps_layer *l)
{
    return l->npages;
}

void
ps_layer_page_key(const ps_layer *l, size_t i, ps_relkey *key, uint32_t *blkno)
{
    *key = l->pages[i].key;
    *blkno = l->pages[i].blkno;
}

size_t
ps_layer_nfiles(const ps_layer *l)
{
    return l->nfiles;
}

const char *
ps_layer_file_name(const ps_layer *l, size_t i)
{
    return i < l->nfiles ? l->files[i].name : NULL;
}

int
ps_layer_get_file(ps_layer *l, size_t i, lb_buf *out)
{
    if (i >= l->nfiles)
        return -EINVAL;
    const file_entry *e = &l->files[i];
    int rc = lb_buf_reserve(out, (size_t)e->size);
    if (rc)
        return rc;
    rc = read_frame(l, e->offset, e->stored, e->crc, out->data + out->len, (size_t)e->size);
    if (rc == 0) {
        out->len += (size_t)e->size;
        out->data[out->len] = '\0';
    }
    return rc;
}
