/*
 * objstore_backend.h: what objstore.c and its backends (objstore_file.c,
 * objstore_s3.c) share. Not for other callers: use objstore.h.
 *
 * objstore.c validates every key, prefix and argument before a backend
 * sees it, so backends may assert that keys are valid.
 */
#ifndef LB_OBJSTORE_BACKEND_H
#define LB_OBJSTORE_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "objstore.h"

/* Start a streamed get over (before a retry). 0 or an error code. */
typedef int (*lb__objstore_reset_fn)(void *arg);

#define LB__OBJSTORE_TO_END UINT64_MAX

typedef struct lb__objstore_ops {
    const char *scheme;
    /* Exactly one of bytes (n bytes, may be empty) and read is given. */
    int (*put)(lb_objstore *s, const char *key, const void *bytes, size_t n,
               lb_objstore_read_fn source, void *arg);
    /* Bytes [offset, offset + length) clamped at the end, or to the end
     * when length is LB__OBJSTORE_TO_END; length > 0. reset may be NULL. */
    int (*get)(lb_objstore *s, const char *key, uint64_t offset, uint64_t length,
               lb_objstore_write_fn sink, lb__objstore_reset_fn reset, void *arg);
    int (*head)(lb_objstore *s, const char *key, lb_objstore_stat *st);
    /* Fill out (empty on entry); objstore.c sorts and dedupes it after. */
    int (*list)(lb_objstore *s, const char *prefix, const char *delimiter,
                lb_objstore_listing *out);
    int (*del)(lb_objstore *s, const char *key);
    void (*close)(lb_objstore *s);
} lb__objstore_ops;

struct lb_objstore {
    const lb__objstore_ops *ops;
    void *backend; /* owned by the backend, freed by ops->close */
    char *url;
    char error[1024];
};

/* Each backend's open: fill s->ops and s->backend, or fail (nothing to
 * free). rest is the URL after "scheme://". */
int lb__objstore_file_open(lb_objstore *s, const char *rest, const lb_objstore_options *opts);
int lb__objstore_s3_open(lb_objstore *s, const char *rest, const lb_objstore_options *opts);

/* Record why an operation failed (kept in s->error, and logged unless it is
 * LB_ENOTFOUND) and return rc. */
int lb__objstore_fail(lb_objstore *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Append to a listing (key is copied, keylen bytes). 0 or -ENOMEM. */
int lb__objstore_list_add(lb_objstore_listing *l, const char *key, size_t keylen, uint64_t size);
int lb__objstore_list_add_prefix(lb_objstore_listing *l, const char *prefix, size_t len);

#endif
