/*
 * fileio.c: durable file operations over the lb_io table.
 *
 * The atomic replace follows the only sequence that survives a crash at any
 * point on Linux filesystems: write a temp file, fsync it, rename it over
 * the target, fsync the directory. A reader sees the old or the new content,
 * never a mix.
 */
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
io_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags, mode);
}

static int
io_fallocate(int fd, off_t off, off_t len)
{
    int rc = posix_fallocate(fd, off, len);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

const lb_io_ops lb_io_default = {
    .open = io_open,
    .write = write,
    .pwrite = pwrite,
    .fsync = fsync,
    .rename = rename,
    .close = close,
    .fallocate = io_fallocate,
};

const lb_io_ops *lb_io = &lb_io_default;

int
lb_write_all(int fd, const void *bytes, size_t n)
{
    const char *p = bytes;
    while (n > 0) {
        ssize_t w = lb_io->write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int
lb_pwrite_all(int fd, const void *bytes, size_t n, off_t off)
{
    const char *p = bytes;
    while (n > 0) {
        ssize_t w = lb_io->pwrite(fd, p, n, off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

int
lb_fsync(int fd)
{
    if (lb_io->fsync(fd) != 0)
        return -errno;
    return 0;
}

int
lb_dirname(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        if (cap < 2)
            return -ENAMETOOLONG;
        strcpy(out, ".");
        return 0;
    }
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n + 1 > cap)
        return -ENAMETOOLONG;
    memcpy(out, path, n);
    out[n] = '\0';
    return 0;
}

int
lb_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = lb_fsync(fd);
    close(fd);
    return rc;
}

int
lb_write_file_atomic(const char *path, const void *bytes, size_t n)
{
    char dir[PATH_MAX];
    char tmp[PATH_MAX];
    int rc = lb_dirname(path, dir, sizeof(dir));
    if (rc)
        return rc;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;

    int fd = lb_io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    rc = lb_write_all(fd, bytes, n);
    if (rc == 0)
        rc = lb_fsync(fd);
    if (lb_io->close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && lb_io->rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    return lb_fsync_dir(dir);
}

int
lb_read_fd(int fd, lb_buf *out)
{
    for (;;) {
        int rc = lb_buf_reserve(out, 65536);
        if (rc)
            return rc;
        ssize_t r = read(fd, out->data + out->len, 65536);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return 0;
        out->len += (size_t)r;
        out->data[out->len] = '\0';
    }
}

int
lb_read_file(const char *path, lb_buf *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = lb_read_fd(fd, out);
    close(fd);
    return rc;
}

int
lb_mkdir_p(const char *path, mode_t mode)
{
    char p[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(p))
        return -ENAMETOOLONG;
    memcpy(p, path, n + 1);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, mode) != 0 && errno != EEXIST)
        return -errno;
    struct stat st;
    if (stat(p, &st) != 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int
lb_mkdir_p_durable(const char *path, mode_t mode)
{
    char p[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(p))
        return -ENAMETOOLONG;
    memcpy(p, path, n + 1);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    /* each component from the top: made now? then it and its parent sync */
    for (char *s = p + 1;; s++) {
        bool last = *s == '\0';
        if (!last && *s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) == 0) {
            char parent[PATH_MAX];
            int rc = lb_dirname(p, parent, sizeof(parent));
            if (rc == 0)
                rc = lb_fsync_dir(p);
            if (rc == 0)
                rc = lb_fsync_dir(parent);
            if (rc != 0)
                return rc;
        } else if (errno != EEXIST) {
            return -errno;
        }
        if (last)
            break;
        *s = '/';
    }
    struct stat st;
    if (stat(p, &st) != 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
    return rc != 0 && errno != ENOENT ? -errno : 0;
}

int
lb_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) == 0 ? 0 : -errno;
    return nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}
