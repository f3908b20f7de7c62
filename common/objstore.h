/*
 * objstore.h: object storage, one interface over two backends.
 *
 *   file:///abs/dir/prefix      a local directory (development, tests, NFS)
 *   s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&addressing=path|virtual
 *
 * Keys are relative to the store's prefix and look like
 * "<tenant>/<timeline>/layers/<name>". A key has no leading '/', no empty,
 * "." or ".." component, no control character, no component starting with
 * ".lbtmp-" (reserved for the file backend's temp files), and is at most
 * 1024 bytes. Bad keys get -EINVAL and lb_objstore_error() says why.
 *
 * Semantics are S3's on both backends: a put replaces the whole object
 * atomically (a reader sees the old or the new object, never a mix); a list
 * is sorted bytewise and complete (every page is fetched); deleting a
 * missing key succeeds. Errors: LB_ENOTFOUND for a missing key, -EINVAL for
 * bad arguments, LB_EBADCONFIG for a bad URL or option, -ENOMEM, and
 * LB_ESTORAGE for everything else, with the detail logged and kept in
 * lb_objstore_error().
 *
 * A store is NOT thread-safe (the s3 backend owns one HTTP connection):
 * use one per thread.
 *
 * Callers: the safekeeper (WAL offload), the pageserver (layers, indexes,
 * lake files), compute-ctl (restore).
 */
#ifndef LB_OBJSTORE_H
#define LB_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "http_client.h"

typedef struct lb_objstore lb_objstore;

#define LB_OBJSTORE_KEY_MAX 1024

/* Zero/NULL fields are unset. For s3:// a setting comes from, in order:
 * this struct, the URL's query, the environment, the default. */
typedef struct lb_objstore_options {
    /* s3 credentials; environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
     * AWS_SESSION_TOKEN. Never put them in the URL. With no key at all,
     * requests go unsigned. */
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;
    const char *region;     /* AWS_REGION, AWS_DEFAULT_REGION [us-east-1] */
    const char *endpoint;   /* AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL [AWS] */
    const char *addressing; /* "path" | "virtual" [virtual on AWS, path elsewhere] */
    /* Objects larger than this go up in parts [16 MiB]. A streamed put
     * holds up to max(threshold, part_size) bytes in memory. */
    size_t multipart_threshold;
    size_t part_size;   /* 5 MiB to 5 GiB [16 MiB] */
    int list_page_size; /* max-keys per list request, 1..1000 [1000] */
    /* Timeouts and retries. Unlike the HTTP client's defaults, a transfer
     * has no total timeout unless one is set, and an attempt is abandoned
     * after 30 s without progress. */
    lb_http_options http;
} lb_objstore_options;

/* Supplies a streamed object: copy up to cap bytes into dst, return the
 * count (0 at the end) or a negative error, which aborts the put. */
typedef ssize_t (*lb_objstore_read_fn)(void *arg, char *dst, size_t cap);
/* Receives a streamed object; non-zero aborts the get with that code. */
typedef int (*lb_objstore_write_fn)(void *arg, const char *bytes, size_t n);

typedef struct lb_objstore_stat {
    uint64_t size;
    char etag[128]; /* changes whenever the object is replaced; no quotes */
} lb_objstore_stat;

typedef struct lb_objstore_entry {
    char *key; /* relative to the store's prefix */
    uint64_t size;
} lb_objstore_entry;

/* A complete listing; owned by the caller, release with
 * lb_objstore_list_free(). */
typedef struct lb_objstore_listing {
    lb_objstore_entry *objects;
    size_t nobjects;
    char **prefixes; /* common prefixes when a delimiter was given, each ending in it */
    size_t nprefixes;
} lb_objstore_listing;

/* --- Everyone --- */

/* Open the store named by url; opts may be NULL. The file backend creates
 * its directory. *out is owned by the caller (lb_objstore_close). */
int lb_objstore_open(const char *url, const lb_objstore_options *opts, lb_objstore **out);
void lb_objstore_close(lb_objstore *s);

/* Put bytes (borrowed for the call) under key, replacing any object. */
int lb_objstore_put(lb_objstore *s, const char *key, const void *bytes, size_t n);
/* Put a streamed object of any size; memory use is bounded by the part
 * size (s3) or a small buffer (file). */
int lb_objstore_put_stream(lb_objstore *s, const char *key, lb_objstore_read_fn source, void *arg);
/* Put what fd holds from its current offset to its end. fd stays open. */
int lb_objstore_put_fd(lb_objstore *s, const char *key, int fd);

/* Append the whole object to out. */
int lb_objstore_get(lb_objstore *s, const char *key, lb_buf *out);
/* Append bytes [offset, offset + length) to out, clamped at the object's
 * end (so fewer bytes, or none, when the range passes the end). */
int lb_objstore_get_range(lb_objstore *s, const char *key, uint64_t offset, uint64_t length,
                          lb_buf *out);
/* Stream the whole object to write. On failure write may have received a
 * prefix of the object. */
int lb_objstore_get_stream(lb_objstore *s, const char *key, lb_objstore_write_fn sink, void *arg);

int lb_objstore_head(lb_objstore *s, const char *key, lb_objstore_stat *st);

/* List the keys that start with prefix (NULL or "" for all; it need not
 * end at a '/'). With a delimiter (NULL for none), keys that hold it after
 * the prefix are rolled up into out->prefixes, as S3 does. */
int lb_objstore_list(lb_objstore *s, const char *prefix, const char *delimiter,
                     lb_objstore_listing *out);
void lb_objstore_list_free(lb_objstore_listing *l);

/* Delete key; a missing key is not an error. */
int lb_objstore_delete(lb_objstore *s, const char *key);

/* Why the last call on s failed ("" after a success). Owned by s. */
const char *lb_objstore_error(const lb_objstore *s);
/* The URL the store was opened with. Owned by s. */
const char *lb_objstore_url(const lb_objstore *s);

/* 0 if key is valid, else -EINVAL and *why (static text) says why. */
int lb_objstore_check_key(const char *key, const char **why);

#endif
