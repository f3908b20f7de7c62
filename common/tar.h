/*
 * tar.h: streaming tar (POSIX ustar) writer and reader.
 *
 * The pageserver streams a basebackup as a tar of the snapshot's files;
 * compute-ctl unpacks it into an empty data directory. Neither side holds a
 * whole archive in memory: the writer pushes bytes to a sink as it goes, the
 * reader is fed chunks as they arrive from the network.
 *
 * Names up to 255 bytes use the ustar prefix field; longer names use a pax
 * extended header. Sizes of 8 GiB and more use the base-256 size encoding.
 * The reader accepts what GNU tar writes by default (ustar, GNU long names,
 * pax path/linkpath/size), and refuses absolute names and ".." components so
 * an archive can never write outside the target directory.
 */
#ifndef LB_TAR_H
#define LB_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LB_TAR_BLOCK 512

/* ---- writer (pageserver) ------------------------------------------------ */

/* Receives archive bytes in order; returns 0 or an error that aborts. */
typedef int (*lb_tar_sink)(void *arg, const void *bytes, size_t n);

typedef struct lb_tar_writer {
    lb_tar_sink sink;
    void *arg;
    uint64_t offset;    /* bytes emitted so far */
    uint64_t remaining; /* data bytes still owed to the current file */
    uint64_t pad;       /* padding owed after them */
} lb_tar_writer;

void lb_tar_writer_init(lb_tar_writer *w, lb_tar_sink sink, void *arg);
/* Start a regular file of exactly size bytes; then lb_tar_write() them. */
int lb_tar_begin_file(lb_tar_writer *w, const char *name, uint64_t size, mode_t mode,
                      int64_t mtime);
/* Data of the current file; more than announced is LB_EPROTO. */
int lb_tar_write(lb_tar_writer *w, const void *bytes, size_t n);
/* Convenience: a whole file from memory. */
int lb_tar_add_file(lb_tar_writer *w, const char *name, const void *bytes, size_t n, mode_t mode,
                    int64_t mtime);
int lb_tar_add_dir(lb_tar_writer *w, const char *name, mode_t mode, int64_t mtime);
int lb_tar_add_symlink(lb_tar_writer *w, const char *name, const char *target, int64_t mtime);
/* End of archive (two zero blocks). LB_EPROTO if a file is unfinished. */
int lb_tar_finish(lb_tar_writer *w);

/* ---- reader (compute-ctl) ----------------------------------------------- */

typedef enum lb_tar_type {
    LB_TAR_FILE,
    LB_TAR_DIR,
    LB_TAR_SYMLINK,
} lb_tar_type;

typedef struct lb_tar_entry {
    const char *name; /* valid during the callbacks for this entry */
    const char *linkname;
    lb_tar_type type;
    uint64_t size;
    mode_t mode;
    int64_t mtime;
} lb_tar_entry;

typedef struct lb_tar_reader_ops {
    /* A new entry; for files, its data follows through on_data. */
    int (*on_entry)(void *arg, const lb_tar_entry *e);
    int (*on_data)(void *arg, const lb_tar_entry *e, const void *bytes, size_t n);
    /* All data of a file has been delivered. May be NULL. */
    int (*on_end)(void *arg, const lb_tar_entry *e);
} lb_tar_reader_ops;

typedef struct lb_tar_reader lb_tar_reader;

/* The reader is heap-allocated; lb_tar_reader_free releases it. */
int lb_tar_reader_new(const lb_tar_reader_ops *ops, void *arg, lb_tar_reader **r);
void lb_tar_reader_free(lb_tar_reader *r);
/* Feed the next bytes. Errors: LB_EPARSE (bad header or checksum, unsafe
 * name), or what a callback returned. After an error the reader is dead. */
int lb_tar_reader_feed(lb_tar_reader *r, const void *bytes, size_t n);
/* true once the end-of-archive marker was read. */
bool lb_tar_reader_done(const lb_tar_reader *r);

/* true if name is relative, non-empty and has no "." or ".." component. */
bool lb_tar_name_is_safe(const char *name);

#endif
