/*
 * wal_store.c: segment files of one timeline (see wal_store.h).
 *
 * A few segments stay open in a small cache; each remembers whether it was
 * written since the last sync. Creating a segment marks the directory dirty
 * too, because the rename that made it visible is only durable once the
 * directory is fsynced. Sync fsyncs dirty segments first and the directory
 * last, and only then may the caller report the WAL flushed.
 *
 * Creating a segment writes seg_size bytes of zeros and fsyncs them, too
 * slow for the daemon's loop: as soon as WAL is written into segment N, a
 * thread prepares N+1 under a temporary name (".prep.tmp"), and the write
 * that reaches N+1 only renames it into place. If the thread is not done
 * (or failed), that write waits for it, or creates the segment itself, as
 * before. The thread touches nothing but its own file and the prep slot,
 * under prep_lock; the store is otherwise the loop's alone.
 */
#include "wal_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "fileio.h"
#include "log.h"
#include "wal.h"

#define OPEN_SEGMENTS 8

typedef struct open_segment {
    uint32_t tli;
    uint64_t segno;
    int fd;
    bool dirty;
    uint64_t last_use;
} open_segment;

typedef enum prep_state { PREP_NONE, PREP_RUNNING, PREP_READY, PREP_FAILED } prep_state;

struct sk_wal_store {
    char dir[PATH_MAX];
    uint32_t seg_size;
    open_segment open[OPEN_SEGMENTS];
    uint64_t clock;
    bool dir_dirty;
    bool poisoned;
    /* the next segment, prepared off the loop */
    pthread_mutex_t prep_lock;
    prep_state prep;
    bool prep_joinable;
    pthread_t prep_thread;
    uint32_t prep_tli;
    uint64_t prep_segno;
    char prep_path[PATH_MAX + 16]; /* the temporary file */
};

int
sk_wal_store_segment_path(const sk_wal_store *st, uint32_t tli, uint64_t segno, char *path,
                          size_t cap)
{
    char name[LB_WAL_SEG_NAME_LEN + 1];
    int rc = lb_wal_segment_name(name, tli, segno, st->seg_size);
    if (rc)
        return rc;
    if ((size_t)snprintf(path, cap, "%s/%s", st->dir, name) >= cap)
        return -ENAMETOOLONG;
    return 0;
}

int
sk_wal_store_open(const char *dir, uint32_t seg_size, sk_wal_store **out)
{
    if (!lb_wal_seg_size_valid(seg_size))
        return -EINVAL;
    sk_wal_store *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    if ((size_t)snprintf(st->dir, sizeof(st->dir), "%s", dir) >= sizeof(st->dir)) {
        free(st);
        return -ENAMETOOLONG;
    }
    int rc = lb_mkdir_p(dir, 0700);
    if (rc) {
        free(st);
        return rc;
    }
    st->seg_size = seg_size;
    pthread_mutex_init(&st->prep_lock, NULL);
    for (int i = 0; i < OPEN_SEGMENTS; i++)
        st->open[i].fd = -1;
    /* Remove half-created segments left by a crash. */
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0) {
                char p[PATH_MAX + 256];
                snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
                unlink(p);
            }
        }
        closedir(d);
    }
    *out = st;
    return 0;
}

uint32_t
sk_wal_store_seg_size(const sk_wal_store *st)
{
    return st->seg_size;
}

bool
sk_wal_store_poisoned(const sk_wal_store *st)
{
    return st->poisoned;
}

static int
poison(sk_wal_store *st, const char *what, int err)
{
    lb_error("could not fsync %s in \"%s\": %s", what, st->dir, lb_strerror(err));
    lb_error("WAL store poisoned: nothing written since the last sync is trusted");
    st->poisoned = true;
    return LB_EFSYNC;
}

/* Close one cached segment; a dirty one is fsynced first. */
static int
close_slot(sk_wal_store *st, open_segment *s)
{
    int rc = 0;
    if (s->fd < 0)
        return 0;
    if (s->dirty) {
        rc = lb_fsync(s->fd);
        if (rc)
            rc = poison(st, "segment", rc);
    }
    lb_io->close(s->fd);
    s->fd = -1;
    s->dirty = false;
    return rc;
}

static void prep_settle(sk_wal_store *st);

void
sk_wal_store_close(sk_wal_store *st)
{
    if (!st)
        return;
    prep_settle(st);
    if (st->prep == PREP_READY)
        unlink(st->prep_path);
    pthread_mutex_destroy(&st->prep_lock);
    for (int i = 0; i < OPEN_SEGMENTS; i++)
        close_slot(st, &st->open[i]);
    free(st);
}

/* Create a zero-filled, preallocated segment under its final name.
 *
 * fallocate alone is not enough: it leaves unwritten extents, and every
 * write into one changes the file's extent map, so each group-commit fsync
 * would also write the inode, a second synchronous I/O per commit. Zeroes
 * written once here make later fsyncs data-only, as PostgreSQL does for its
 * own segments (wal_init_zero). fallocate still comes first, so that a full
 * disk fails here, cleanly, rather than at a later fsync. */
static int
create_segment(sk_wal_store *st, const char *path)
{
    static const char zeros[65536];
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = lb_io->open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (lb_io->fallocate(fd, 0, st->seg_size) != 0)
        rc = -errno;
    for (uint32_t off = 0; rc == 0 && off < st->seg_size; off += sizeof(zeros)) {
        size_t n = st->seg_size - off < sizeof(zeros) ? st->seg_size - off : sizeof(zeros);
        rc = lb_pwrite_all(fd, zeros, n, off);
    }
    if (rc == 0 && (rc = lb_fsync(fd)) != 0)
        rc = poison(st, "new segment", rc);
    lb_io->close(fd);
    if (rc == 0 && lb_io->rename(tmp, path) != 0)
        rc = -errno;
    if (rc) {
        unlink(tmp);
        if (rc == -ENOSPC)
            lb_error("could not create segment \"%s\": no space left on device", path);
        return rc;
    }
    st->dir_dirty = true;
    return 0;
}

/* Write a zeroed, preallocated, fsynced file of seg_size bytes at tmp.
 * 0 or -errno; the file is removed on failure. */
static int
write_zeroed(uint32_t seg_size, const char *tmp)
{
    static const char zeros[65536];
    int fd = lb_io->open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (lb_io->fallocate(fd, 0, seg_size) != 0)
        rc = -errno;
    for (uint32_t off = 0; rc == 0 && off < seg_size; off += sizeof(zeros)) {
        size_t n = seg_size - off < sizeof(zeros) ? seg_size - off : sizeof(zeros);
        rc = lb_pwrite_all(fd, zeros, n, off);
    }
    if (rc == 0)
        rc = lb_fsync(fd);
    lb_io->close(fd);
    if (rc)
        unlink(tmp);
    return rc;
}

static void *
prep_main(void *arg)
{
    sk_wal_store *st = arg;
    pthread_mutex_lock(&st->prep_lock);
    char path[sizeof(st->prep_path)];
    memcpy(path, st->prep_path, sizeof(path));
    uint32_t size = st->seg_size;
    pthread_mutex_unlock(&st->prep_lock);
    int rc = write_zeroed(size, path);
    pthread_mutex_lock(&st->prep_lock);
    st->prep = rc == 0 ? PREP_READY : PREP_FAILED;
    pthread_mutex_unlock(&st->prep_lock);
    return NULL;
}

/* Wait for a running preparation (loop thread). */
static void
prep_settle(sk_wal_store *st)
{
    if (st->prep_joinable) {
        pthread_join(st->prep_thread, NULL);
        st->prep_joinable = false;
    }
}

/* Start preparing (tli, segno) if nothing is being prepared and it does not exist. */
static void
prep_start(sk_wal_store *st, uint32_t tli, uint64_t segno)
{
    pthread_mutex_lock(&st->prep_lock);
    prep_state state = st->prep;
    pthread_mutex_unlock(&st->prep_lock);
    if (state == PREP_RUNNING ||
        (state == PREP_READY && st->prep_tli == tli && st->prep_segno == segno))
        return;
    prep_settle(st);
    if (state == PREP_READY)
        unlink(st->prep_path); /* prepared for a segment no longer wanted */
    st->prep = PREP_NONE;
    char path[PATH_MAX];
    struct stat sb;
    if (sk_wal_store_segment_path(st, tli, segno, path, sizeof(path)) != 0 || stat(path, &sb) == 0)
        return;
    snprintf(st->prep_path, sizeof(st->prep_path), "%s.prep.tmp", path);
    st->prep_tli = tli;
    st->prep_segno = segno;
    st->prep = PREP_RUNNING;
    if (pthread_create(&st->prep_thread, NULL, prep_main, st) != 0) {
        st->prep = PREP_NONE;
        return;
    }
    st->prep_joinable = true;
}

/* Take the prepared file for (tli, segno) at path, if there is one: true
 * once it is in place (the directory then needs a sync). */
static bool
prep_take(sk_wal_store *st, uint32_t tli, uint64_t segno, const char *path)
{
    if (st->prep == PREP_NONE || st->prep_tli != tli || st->prep_segno != segno)
        return false;
    prep_settle(st); /* at worst the wait the old synchronous create had */
    bool ready = st->prep == PREP_READY;
    st->prep = PREP_NONE;
    if (ready && lb_io->rename(st->prep_path, path) == 0) {
        st->dir_dirty = true;
        return true;
    }
    unlink(st->prep_path);
    return false;
}

/* The cached fd of a segment, opening (and if create, creating) it. */
static int
segment_fd(sk_wal_store *st, uint32_t tli, uint64_t segno, bool create, open_segment **out)
{
    open_segment *victim = NULL;
    for (int i = 0; i < OPEN_SEGMENTS; i++) {
        open_segment *s = &st->open[i];
        if (s->fd >= 0 && s->tli == tli && s->segno == segno) {
            s->last_use = ++st->clock;
            *out = s;
            return 0;
        }
        if (!victim || s->fd < 0 || (victim->fd >= 0 && s->last_use < victim->last_use))
            victim = s;
    }
    char path[PATH_MAX];
    int rc = sk_wal_store_segment_path(st, tli, segno, path, sizeof(path));
    if (rc)
        return rc;
    int fd = lb_io->open(path, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0 && errno == ENOENT && create) {
        if (!prep_take(st, tli, segno, path) && (rc = create_segment(st, path)) != 0)
            return rc;
        fd = lb_io->open(path, O_RDWR | O_CLOEXEC, 0);
    }
    if (fd < 0)
        return -errno;
    rc = close_slot(st, victim);
    if (rc) {
        lb_io->close(fd);
        return rc;
    }
    *victim = (open_segment){.tli = tli, .segno = segno, .fd = fd, .last_use = ++st->clock};
    *out = victim;
    return 0;
}

int
sk_wal_store_write(sk_wal_store *st, uint32_t tli, lb_lsn lsn, const void *bytes, size_t n)
{
    if (st->poisoned)
        return LB_EFSYNC;
    const char *p = bytes;
    while (n > 0) {
        uint64_t segno = lb_wal_segno(lsn, st->seg_size);
        uint32_t off = (uint32_t)(lsn % st->seg_size);
        size_t chunk = st->seg_size - off < n ? st->seg_size - off : n;
        open_segment *s;
        int rc = segment_fd(st, tli, segno, true, &s);
        if (rc)
            return rc;
        rc = lb_pwrite_all(s->fd, p, chunk, off);
        s->dirty = true; /* even a failed write may have reached the page cache */
        if (rc) {
            lb_error("could not write segment of timeline %u at %X/%X: %s", tli,
                     LB_LSN_ARGS(lsn), lb_strerror(rc));
            return rc;
        }
        p += chunk;
        n -= chunk;
        lsn += chunk;
        if (n == 0)
            prep_start(st, tli, segno + 1); /* the next one, off the loop */
    }
    return 0;
}

int
sk_wal_store_sync(sk_wal_store *st)
{
    if (st->poisoned)
        return LB_EFSYNC;
    for (int i = 0; i < OPEN_SEGMENTS; i++) {
        open_segment *s = &st->open[i];
        if (s->fd < 0 || !s->dirty)
            continue;
        int rc = lb_io->fsync(s->fd) == 0 ? 0 : -errno;
        if (rc)
            return poison(st, "segment", rc);
        s->dirty = false;
    }
    if (st->dir_dirty) {
        int rc = lb_fsync_dir(st->dir);
        if (rc)
            return poison(st, "directory", rc);
        st->dir_dirty = false;
    }
    return 0;
}

int
sk_wal_store_read(sk_wal_store *st, uint32_t tli, lb_lsn lsn, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        uint64_t segno = lb_wal_segno(lsn, st->seg_size);
        uint32_t off = (uint32_t)(lsn % st->seg_size);
        size_t chunk = st->seg_size - off < n ? st->seg_size - off : n;
        open_segment *s;
        int rc = segment_fd(st, tli, segno, false, &s);
        if (rc)
            return rc;
        size_t done = 0;
        while (done < chunk) {
            ssize_t r = pread(s->fd, p + done, chunk - done, off + (off_t)done);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return -errno;
            if (r == 0) { /* a short file (not ours): the rest reads as zeros */
                memset(p + done, 0, chunk - done);
                break;
            }
            done += (size_t)r;
        }
        p += chunk;
        n -= chunk;
        lsn += chunk;
    }
    return 0;
}

bool
sk_wal_store_has_segment(const sk_wal_store *st, uint32_t tli, uint64_t segno)
{
    char path[PATH_MAX];
    if (sk_wal_store_segment_path(st, tli, segno, path, sizeof(path)))
        return false;
    return access(path, F_OK) == 0;
}

int
sk_wal_store_begin_tli(sk_wal_store *st, uint32_t new_tli, uint32_t old_tli, lb_lsn start_lsn)
{
    if (st->poisoned)
        return LB_EFSYNC;
    uint64_t segno = lb_wal_segno(start_lsn, st->seg_size);
    uint32_t prefix = (uint32_t)(start_lsn % st->seg_size);
    open_segment *s;
    int rc = segment_fd(st, new_tli, segno, true, &s);
    if (rc)
        return rc;
    if (prefix > 0 && old_tli != new_tli && sk_wal_store_has_segment(st, old_tli, segno)) {
        char *buf = malloc(prefix);
        if (!buf)
            return -ENOMEM;
        rc = sk_wal_store_read(st, old_tli, segno * st->seg_size, buf, prefix);
        if (rc == 0)
            rc = sk_wal_store_write(st, new_tli, segno * st->seg_size, buf, prefix);
        free(buf);
        if (rc)
            return rc;
    }
    return sk_wal_store_sync(st);
}

/* Forget a cached fd for (tli, segno) before its file is removed. */
static void
forget(sk_wal_store *st, uint32_t tli, uint64_t segno)
{
    for (int i = 0; i < OPEN_SEGMENTS; i++) {
        open_segment *s = &st->open[i];
        if (s->fd >= 0 && s->tli == tli && s->segno == segno) {
            lb_io->close(s->fd);
            s->fd = -1;
            s->dirty = false;
        }
    }
}

int
sk_wal_store_list(const sk_wal_store *st, sk_segment_id **list, size_t *n)
{
    DIR *d = opendir(st->dir);
    if (!d)
        return -errno;
    size_t cap = 16, count = 0;
    sk_segment_id *ids = malloc(cap * sizeof(*ids));
    struct dirent *e;
    int rc = 0;
    while (ids && (e = readdir(d))) {
        uint32_t tli;
        uint64_t segno;
        if (lb_wal_segment_parse(e->d_name, st->seg_size, &tli, &segno) != 0)
            continue;
        if (count == cap) {
            sk_segment_id *p = realloc(ids, 2 * cap * sizeof(*ids));
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            ids = p;
            cap *= 2;
        }
        ids[count++] = (sk_segment_id){tli, segno};
    }
    closedir(d);
    if (!ids)
        return -ENOMEM;
    if (rc) {
        free(ids);
        return rc;
    }
    /* insertion sort: directories hold a few hundred segments at most */
    for (size_t i = 1; i < count; i++) {
        sk_segment_id v = ids[i];
        size_t j = i;
        while (j > 0 && (ids[j - 1].segno > v.segno ||
                         (ids[j - 1].segno == v.segno && ids[j - 1].tli > v.tli))) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = v;
    }
    *list = ids;
    *n = count;
    return 0;
}

static int
remove_segment(sk_wal_store *st, uint32_t tli, uint64_t segno)
{
    char path[PATH_MAX];
    forget(st, tli, segno);
    int rc = sk_wal_store_segment_path(st, tli, segno, path, sizeof(path));
    if (rc == 0 && unlink(path) != 0 && errno != ENOENT)
        rc = -errno;
    st->dir_dirty = true;
    return rc;
}

int
sk_wal_store_truncate(sk_wal_store *st, uint32_t tli, lb_lsn end)
{
    if (st->poisoned)
        return LB_EFSYNC;
    uint64_t end_seg = lb_wal_segno(end, st->seg_size);
    sk_segment_id *ids;
    size_t n;
    int rc = sk_wal_store_list(st, &ids, &n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if ((ids[i].tli == tli && ids[i].segno > end_seg) || ids[i].tli > tli)
            rc = remove_segment(st, ids[i].tli, ids[i].segno);
    }
    free(ids);
    if (rc)
        return rc;
    /* Zero the tail of the segment holding end. */
    uint32_t off = (uint32_t)(end % st->seg_size);
    if (off > 0 && sk_wal_store_has_segment(st, tli, end_seg)) {
        static const char zeros[65536];
        lb_lsn pos = end;
        lb_lsn seg_end = (end_seg + 1) * (lb_lsn)st->seg_size;
        while (pos < seg_end && rc == 0) {
            size_t chunk = seg_end - pos < sizeof(zeros) ? (size_t)(seg_end - pos) : sizeof(zeros);
            rc = sk_wal_store_write(st, tli, pos, zeros, chunk);
            pos += chunk;
        }
    } else if (off == 0) {
        rc = remove_segment(st, tli, end_seg);
    }
    return rc ? rc : sk_wal_store_sync(st);
}

int
sk_wal_store_remove_before(sk_wal_store *st, uint64_t segno, uint64_t keep)
{
    sk_segment_id *ids;
    size_t n;
    int rc = sk_wal_store_list(st, &ids, &n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && ids[i].segno < segno && rc == 0; i++)
        if (ids[i].segno != keep)
            rc = remove_segment(st, ids[i].tli, ids[i].segno);
    free(ids);
    return rc ? rc : sk_wal_store_sync(st);
}
