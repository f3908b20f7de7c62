/*
 * fileio.h: disk I/O through a replaceable function table.
 *
 * Every write, fsync and rename that matters for durability goes through
 * lb_io, so tests can inject ENOSPC, EIO from fsync, short writes and
 * crashes between steps (the SQLite VFS idea). Production code never
 * replaces the table.
 *
 * Callers: the file:// object store, the safekeeper's WAL and state files,
 * the pageserver's layer cache.
 */
#ifndef LB_FILEIO_H
#define LB_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

typedef struct lb_io_ops {
    int (*open)(const char *path, int flags, mode_t mode);
    ssize_t (*write)(int fd, const void *bytes, size_t n);
    ssize_t (*pwrite)(int fd, const void *bytes, size_t n, off_t off);
    int (*fsync)(int fd);
    int (*rename)(const char *from, const char *to);
    int (*close)(int fd);
    /* Reserve [off, off+len) on disk; -1 with errno (ENOSPC) on failure. */
    int (*fallocate)(int fd, off_t off, off_t len);
} lb_io_ops;

/* The table in use. Tests may point it at their own and restore lb_io_default. */
extern const lb_io_ops *lb_io;
extern const lb_io_ops lb_io_default;

/* write/pwrite everything, retrying short writes and EINTR. 0 or -errno. */
int lb_write_all(int fd, const void *bytes, size_t n);
int lb_pwrite_all(int fd, const void *bytes, size_t n, off_t off);
/* fsync; 0 or -errno. An fsync failure must be treated as fatal for the data. */
int lb_fsync(int fd);
/* fsync a directory so that a rename or create inside it is durable. */
int lb_fsync_dir(const char *dir);
/* Replace path with bytes atomically and durably: temp file in the same
 * directory, write, fsync, rename, fsync the directory. On failure the old
 * file (if any) is untouched and the temp file is removed. */
int lb_write_file_atomic(const char *path, const void *bytes, size_t n);
/* Appends the rest of fd (from its offset to EOF) to out; 0 or -errno. */
int lb_read_fd(int fd, lb_buf *out);
/* Read a whole file into out (appended). 0, -errno. */
int lb_read_file(const char *path, lb_buf *out);
/* mkdir -p; existing directories are fine. */
int lb_mkdir_p(const char *path, mode_t mode);
/* mkdir -p, durably: each directory made is fsynced, and so is its parent,
 * so that the new entries survive a crash before anything inside them is
 * acknowledged. 0 or -errno. */
int lb_mkdir_p_durable(const char *path, mode_t mode);
/* rm -rf; a missing path is fine. */
int lb_rm_rf(const char *path);
/* The directory part of path, written to out (size cap). 0 or -ENAMETOOLONG. */
int lb_dirname(const char *path, char *out, size_t cap);

#endif
