/*
 * objstore_file.c: the file:// object store, a directory tree.
 *
 * Key "a/b/c" of store file:///root is the file /root/a/b/c. A put writes
 * a temp file ".lbtmp-<pid>-<n>" in the object's directory, fsyncs it,
 * renames it over the object and fsyncs the directory (and, when it had to
 * create directories, every directory up to the root), all through lb_io so
 * that tests can inject ENOSPC, EIO and failed renames. So:
 *   - a reader sees the old object or the new one, never a mix, and never
 *     a temp file (listings skip ".lbtmp-" names, and keys cannot use them);
 *   - on any failure before the rename the old object is intact and the
 *     temp file is removed;
 *   - a put that returned 0 survives a crash.
 * A delete unlinks the file and prunes the directories it leaves empty, so
 * the tree looks like S3's flat key space; a put that races with the
 * pruning recreates its directory.
 *
 * What S3 allows and a directory cannot: an object "a" next to objects
 * "a/...". Such a put fails with LB_ESTORAGE; our layout never does it.
 *
 * Callers: objstore.c, which has validated every key.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "fileio.h"
#include "log.h"
#include "objstore_backend.h"

#define COPY_CHUNK (256 * 1024)

typedef struct file_store {
    char *root; /* absolute, no trailing '/' (unless it is "/") */
} file_store;

static atomic_ulong temp_seq;

static file_store *
fs_of(lb_objstore *s)
{
    assert(s->backend);
    return s->backend;
}

static int
object_path(lb_objstore *s, const char *key, char *out, size_t cap)
{
    file_store *fs = fs_of(s);
    const char *sep = strcmp(fs->root, "/") == 0 ? "" : "/";
    if ((size_t)snprintf(out, cap, "%s%s%s", fs->root, sep, key) >= cap)
        return lb__objstore_fail(s, LB_ESTORAGE, "path of object \"%s\" is too long", key);
    return 0;
}

/* mkdir every missing directory of dir below the root; *created tells
 * whether any was made (their parents then need an fsync). */
static int
make_dirs(const char *root, const char *dir, bool *created)
{
    size_t rlen = strlen(root);
    char p[PATH_MAX];
    size_t n = strlen(dir);
    if (n >= sizeof(p))
        return -ENAMETOOLONG;
    memcpy(p, dir, n + 1);
    for (char *c = p + rlen + 1; c <= p + n; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char saved = *c;
        *c = '\0';
        if (mkdir(p, 0755) == 0)
            *created = true;
        else if (errno != EEXIST)
            return -errno;
        *c = saved;
    }
    return 0;
}

/* fsync dir and each of its parents up to and including root. */
static int
fsync_up_to_root(const char *root, const char *dir)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s", dir);
    size_t rlen = strlen(root);
    for (;;) {
        int rc = lb_fsync_dir(p);
        if (rc)
            return rc;
        if (strlen(p) <= rlen)
            return 0;
        char *slash = strrchr(p, '/');
        if (!slash || slash == p)
            return 0;
        *slash = '\0';
    }
}

static int
file_put(lb_objstore *s, const char *key, const void *bytes, size_t n, lb_objstore_read_fn source,
         void *arg)
{
    file_store *fs = fs_of(s);
    char path[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX];
    int rc = object_path(s, key, path, sizeof(path));
    if (rc)
        return rc;
    rc = lb_dirname(path, dir, sizeof(dir));
    if (rc == 0 && (size_t)snprintf(tmp, sizeof(tmp), "%s/.lbtmp-%ld-%lu", dir, (long)getpid(),
                                    (unsigned long)atomic_fetch_add(&temp_seq, 1)) >= sizeof(tmp))
        rc = -ENAMETOOLONG;
    if (rc)
        return lb__objstore_fail(s, LB_ESTORAGE, "path of object \"%s\" is too long", key);

    bool created = false;
    int fd = -1;
    /* A delete may prune the directory between mkdir and open: go again. */
    for (int tries = 0; tries < 3 && fd < 0; tries++) {
        rc = make_dirs(fs->root, dir, &created);
        if (rc)
            return lb__objstore_fail(s, LB_ESTORAGE, "could not create directory \"%s\": %s", dir,
                                     lb_strerror(rc));
        fd = lb_io->open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != ENOENT)
            break;
    }
    if (fd < 0)
        return lb__objstore_fail(s, LB_ESTORAGE, "could not create \"%s\": %s", tmp,
                                 lb_strerror(-errno));

    int source_err = 0;
    if (bytes) {
        rc = lb_write_all(fd, bytes, n);
    } else {
        char *chunk = malloc(COPY_CHUNK);
        rc = chunk ? 0 : -ENOMEM;
        while (rc == 0) {
            ssize_t got = source(arg, chunk, COPY_CHUNK);
            if (got < 0) {
                rc = source_err = (int)got;
                break;
            }
            assert((size_t)got <= COPY_CHUNK);
            if (got == 0)
                break;
            rc = lb_write_all(fd, chunk, (size_t)got);
        }
        free(chunk);
    }
    const char *step = "write";
    if (rc == 0) {
        step = "fsync";
        rc = lb_fsync(fd);
    }
    if (lb_io->close(fd) != 0 && rc == 0) {
        step = "close";
        rc = -errno;
    }
    if (rc == 0) {
        step = "rename";
        if (lb_io->rename(tmp, path) != 0)
            rc = -errno;
    }
    if (rc) {
        unlink(tmp);
        if (source_err)
            return lb__objstore_fail(s, source_err, "put \"%s\": the source failed: %s", key,
                                     lb_strerror(source_err));
        if (rc == -ENOMEM)
            return lb__objstore_fail(s, rc, "put \"%s\": out of memory", key);
        return lb__objstore_fail(s, LB_ESTORAGE, "could not %s \"%s\": %s", step,
                                 strcmp(step, "rename") == 0 ? path : tmp, lb_strerror(rc));
    }
    /* Renamed: the object is visible; it is durable once its directory
     * entry is (and, for new directories, theirs). */
    rc = created ? fsync_up_to_root(fs->root, dir) : lb_fsync_dir(dir);
    if (rc)
        return lb__objstore_fail(s, LB_ESTORAGE, "could not fsync directory of \"%s\": %s", path,
                                 lb_strerror(rc));
    return 0;
}

/* Open key for reading; LB_ENOTFOUND unless it is a regular file. */
static int
open_object(lb_objstore *s, const char *key, int *fd_out, struct stat *st)
{
    char path[PATH_MAX];
    int rc = object_path(s, key, path, sizeof(path));
    if (rc)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return lb__objstore_fail(s, LB_ENOTFOUND, "object \"%s\" not found", key);
        return lb__objstore_fail(s, LB_ESTORAGE, "could not open \"%s\": %s", path,
                                 lb_strerror(-errno));
    }
    if (fstat(fd, st) != 0) {
        rc = -errno;
        close(fd);
        return lb__objstore_fail(s, LB_ESTORAGE, "could not stat \"%s\": %s", path,
                                 lb_strerror(rc));
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return lb__objstore_fail(s, LB_ENOTFOUND, "object \"%s\" not found", key);
    }
    *fd_out = fd;
    return 0;
}

static int
file_get(lb_objstore *s, const char *key, uint64_t offset, uint64_t length,
         lb_objstore_write_fn sink, lb__objstore_reset_fn reset, void *arg)
{
    (void)reset; /* a local read is never retried */
    assert(length > 0);
    int fd;
    struct stat st;
    int rc = open_object(s, key, &fd, &st);
    if (rc)
        return rc;
    uint64_t size = (uint64_t)st.st_size;
    uint64_t end = offset >= size ? offset : (length > size - offset ? size : offset + length);
    char *chunk = offset < end ? malloc(COPY_CHUNK) : NULL;
    if (offset < end && !chunk) {
        close(fd);
        return lb__objstore_fail(s, -ENOMEM, "get \"%s\": out of memory", key);
    }
    /* The fd pins the inode: a concurrent put replaces the name, not what
     * we read. */
    for (uint64_t off = offset; off < end && rc == 0;) {
        size_t want = end - off < COPY_CHUNK ? (size_t)(end - off) : COPY_CHUNK;
        ssize_t got = pread(fd, chunk, want, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = lb__objstore_fail(s, LB_ESTORAGE, "could not read object \"%s\": %s", key,
                                   lb_strerror(-errno));
            break;
        }
        if (got == 0)
            break; /* truncated underneath us: cannot happen with atomic puts */
        int wrc = sink(arg, chunk, (size_t)got);
        if (wrc)
            rc =
                lb__objstore_fail(s, wrc, "get \"%s\": the sink failed: %s", key, lb_strerror(wrc));
        off += (uint64_t)got;
    }
    free(chunk);
    close(fd);
    return rc;
}

static int
file_head(lb_objstore *s, const char *key, lb_objstore_stat *st)
{
    int fd;
    struct stat sb;
    int rc = open_object(s, key, &fd, &sb);
    if (rc)
        return rc;
    close(fd);
    st->size = (uint64_t)sb.st_size;
    /* A put always makes a new inode, so inode + mtime + size change with
     * every replacement. */
    snprintf(st->etag, sizeof(st->etag), "%llx-%llx-%llx", (unsigned long long)sb.st_ino,
             (unsigned long long)sb.st_mtim.tv_sec * 1000000000ULL +
                 (unsigned long long)sb.st_mtim.tv_nsec,
             (unsigned long long)sb.st_size);
    return 0;
}

static int
file_del(lb_objstore *s, const char *key)
{
    file_store *fs = fs_of(s);
    char path[PATH_MAX], dir[PATH_MAX];
    int rc = object_path(s, key, path, sizeof(path));
    if (rc)
        return rc;
    if (unlink(path) != 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR)
            return 0; /* like S3: deleting nothing succeeds */
        return lb__objstore_fail(s, LB_ESTORAGE, "could not remove \"%s\": %s", path,
                                 lb_strerror(-errno));
    }
    rc = lb_dirname(path, dir, sizeof(dir));
    assert(rc == 0);
    rc = lb_fsync_dir(dir);
    if (rc)
        return lb__objstore_fail(s, LB_ESTORAGE, "could not fsync directory \"%s\": %s", dir,
                                 lb_strerror(rc));
    /* Prune directories left empty, up to the root (never the root). */
    size_t rlen = strlen(fs->root);
    while (strlen(dir) > rlen && rmdir(dir) == 0) {
        char *slash = strrchr(dir, '/');
        if (!slash)
            break;
        *slash = '\0';
    }
    return 0;
}

/* --- listing --- */

typedef struct walk {
    lb_objstore *s;
    lb_objstore_listing *out;
    const char *prefix;
    size_t plen;
    const char *delim;
    lb_buf rel; /* key path of the directory being read: "" or "a/b/" */
} walk;

static bool
is_temp(const char *name)
{
    return strncmp(name, ".lbtmp-", 7) == 0;
}

/* Kind of dirfd/name without following symlinks: 'd', 'f' or 0 (skip). */
static char
entry_kind(int dfd, const struct dirent *e, struct stat *st, bool *have_st)
{
    *have_st = false;
    if (e->d_type == DT_DIR)
        return 'd';
    if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN)
        return 0;
    if (fstatat(dfd, e->d_name, st, AT_SYMLINK_NOFOLLOW) != 0)
        return 0; /* vanished */
    *have_st = true;
    return S_ISDIR(st->st_mode) ? 'd' : S_ISREG(st->st_mode) ? 'f' : 0;
}

static DIR *
open_subdir(int dfd, const char *name)
{
    int fd = dfd < 0 ? open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                     : openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    DIR *d = fdopendir(fd);
    if (!d)
        close(fd);
    return d;
}

/* true if the tree under d holds an object. */
static bool
has_object(DIR *d)
{
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || is_temp(e->d_name))
            continue;
        struct stat st;
        bool have_st;
        char kind = entry_kind(dirfd(d), e, &st, &have_st);
        if (kind == 'f') {
            found = true;
        } else if (kind == 'd') {
            DIR *sub = open_subdir(dirfd(d), e->d_name);
            if (sub) {
                found = has_object(sub);
                closedir(sub);
            }
        }
    }
    return found;
}

static int
add_object(walk *w, const char *key, size_t klen, uint64_t size)
{
    if (w->delim) {
        const char *hit = strstr(key + w->plen, w->delim);
        if (hit)
            return lb__objstore_list_add_prefix(w->out, key,
                                                (size_t)(hit - key) + strlen(w->delim));
    }
    return lb__objstore_list_add(w->out, key, klen, size);
}

static int
walk_dir(walk *w, DIR *d)
{
    int rc = 0;
    size_t base = w->rel.len;
    while (rc == 0) {
        errno = 0; /* readdir reports errors only through errno */
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno != 0)
                rc = -errno;
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || is_temp(e->d_name))
            continue;
        struct stat st;
        bool have_st;
        char kind = entry_kind(dirfd(d), e, &st, &have_st);
        if (!kind)
            continue;
        w->rel.len = base;
        rc = lb_buf_append_str(&w->rel, e->d_name);
        if (rc)
            break;
        if (kind == 'f') {
            if (w->rel.len < w->plen || strncmp(w->rel.data, w->prefix, w->plen) != 0)
                continue;
            if (!have_st && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
                continue;
            rc = add_object(w, w->rel.data, w->rel.len, (uint64_t)st.st_size);
            continue;
        }
        rc = lb_buf_append(&w->rel, "/", 1);
        if (rc)
            break;
        bool under = w->rel.len > w->plen && strncmp(w->rel.data, w->prefix, w->plen) == 0;
        bool above = w->rel.len <= w->plen && strncmp(w->prefix, w->rel.data, w->rel.len) == 0;
        if (!under && !above)
            continue; /* nothing in there can match the prefix */
        DIR *sub = open_subdir(dirfd(d), e->d_name);
        if (!sub)
            continue; /* vanished */
        if (under && w->delim && strcmp(w->delim, "/") == 0) {
            /* Everything below rolls up into this directory's prefix: only
             * check that there is something (S3 lists no empty prefixes). */
            if (has_object(sub)) {
                char *p = strndup(w->rel.data, w->rel.len);
                rc = p ? lb__objstore_list_add_prefix(w->out, p, w->rel.len) : -ENOMEM;
                free(p);
            }
        } else {
            rc = walk_dir(w, sub);
        }
        closedir(sub);
    }
    w->rel.len = base;
    if (w->rel.data)
        w->rel.data[base] = '\0';
    return rc;
}

static int
file_list(lb_objstore *s, const char *prefix, const char *delimiter, lb_objstore_listing *out)
{
    file_store *fs = fs_of(s);
    walk w = {s, out, prefix, strlen(prefix), delimiter, LB_BUF_INIT};
    DIR *d = open_subdir(-1, fs->root);
    if (!d)
        return lb__objstore_fail(s, LB_ESTORAGE, "could not open directory \"%s\": %s", fs->root,
                                 lb_strerror(-errno));
    int rc = lb_buf_reserve(&w.rel, 256);
    if (rc == 0)
        rc = walk_dir(&w, d);
    closedir(d);
    lb_buf_free(&w.rel);
    if (rc == -ENOMEM)
        return lb__objstore_fail(s, rc, "list \"%s\": out of memory", prefix);
    if (rc)
        return lb__objstore_fail(s, LB_ESTORAGE, "could not list \"%s\" under \"%s\": %s", prefix,
                                 fs->root, lb_strerror(rc));
    return 0;
}

static void
file_close(lb_objstore *s)
{
    file_store *fs = fs_of(s);
    free(fs->root);
    free(fs);
    s->backend = NULL;
}

static const lb__objstore_ops file_ops = {
    .scheme = "file",
    .put = file_put,
    .get = file_get,
    .head = file_head,
    .list = file_list,
    .del = file_del,
    .close = file_close,
};

int
lb__objstore_file_open(lb_objstore *s, const char *rest, const lb_objstore_options *opts)
{
    (void)opts; /* nothing to tune for a directory */
    if (rest[0] != '/' || strpbrk(rest, "?#")) {
        lb_error("invalid object store URL \"file://%s\"", rest);
        lb_error("detail: A file:// URL names an absolute directory, as in file:///var/lib/x, "
                 "with no query.");
        return LB_EBADCONFIG;
    }
    size_t n = strlen(rest);
    while (n > 1 && rest[n - 1] == '/')
        n--;
    if (n + 1 + LB_OBJSTORE_KEY_MAX + 32 >= PATH_MAX) {
        lb_error("object store directory \"%.*s\" has too long a path", (int)n, rest);
        return LB_EBADCONFIG;
    }
    file_store *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return -ENOMEM;
    fs->root = strndup(rest, n);
    if (!fs->root) {
        free(fs);
        return -ENOMEM;
    }
    int rc = lb_mkdir_p(fs->root, 0755);
    if (rc) {
        lb_error("could not create object store directory \"%s\": %s", fs->root, lb_strerror(rc));
        free(fs->root);
        free(fs);
        return LB_ESTORAGE;
    }
    s->ops = &file_ops;
    s->backend = fs;
    return 0;
}
