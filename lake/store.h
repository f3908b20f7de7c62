/*
 * store.h: where the lake writers put table files.
 *
 * A thin layer over object storage (common/objstore.h) that adds the one
 * operation table logs need and S3 lacks: put-if-absent. Delta log entries
 * and Iceberg metadata versions are created with lake_store_put_new(), which
 * fails with LB_ECONFLICT when the object exists, so two writers of the same
 * table version cannot both succeed and a log entry is never overwritten.
 *
 *   file:///abs/dir    the new object is written to a temp file, fsynced,
 *                      and link()ed to its name: link() fails with EEXIST
 *                      if the name exists, atomically, so exactly one of any
 *                      number of racing writers wins; the directory is
 *                      fsynced before the call returns.
 *   s3://bucket/...    S3 (as used here) has no conditional put. The store
 *                      checks with HEAD and then PUTs, which is only safe
 *                      with one writer per table: the pageserver that owns a
 *                      table's materialization (one per tenant timeline,
 *                      fenced by its lease) is that single writer. A racing
 *                      writer is detected only if its object exists before
 *                      our HEAD; the window is the HEAD-to-PUT gap. Multiple
 *                      writers on S3 need an external lock or a conditional
 *                      put (If-None-Match), which a later backend can use
 *                      behind this same call.
 *
 * Callers: delta.c, iceberg.c, the transcoder.
 */
#ifndef LAKE_STORE_H
#define LAKE_STORE_H

#include <stddef.h>

#include "buf.h"
#include "errors.h"
#include "objstore.h"

typedef struct lake_store lake_store;

/* Open the store named by url (see objstore.h); opts may be NULL. 0,
 * LB_EBADCONFIG, -ENOMEM or the object store's error, with a message in
 * err (may be NULL). The caller closes *out. */
int lake_store_open(const char *url, const lb_objstore_options *opts, lake_store **out,
                    lb_err *err);
void lake_store_close(lake_store *s);

/* The URL the store was opened with, without its query (an s3:// URL's
 * endpoint and region) and without a trailing '/'. Tables write it (plus
 * the key) into metadata as absolute locations. Owned by s. */
const char *lake_store_url(const lake_store *s);

/* Create key with the given bytes, or fail with LB_ECONFLICT if it exists
 * (the existing object is untouched). Other errors as objstore.h. */
int lake_store_put_new(lake_store *s, const char *key, const void *bytes, size_t n);

/* Create or replace key (for pointers such as Iceberg's version-hint.text). */
int lake_store_put(lake_store *s, const char *key, const void *bytes, size_t n);

/* Append the object to out; LB_ENOTFOUND if missing. */
int lake_store_get(lake_store *s, const char *key, lb_buf *out);

/* Keys under prefix, sorted bytewise; free with lb_objstore_list_free(). */
int lake_store_list(lake_store *s, const char *prefix, lb_objstore_listing *out);

int lake_store_delete(lake_store *s, const char *key);

/* Why the last call failed. Owned by s. */
const char *lake_store_error(const lake_store *s);

#endif
