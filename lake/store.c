/*
 * store.c: object storage for table files, with put-if-absent.
 *
 * Everything but lake_store_put_new() goes straight to lb_objstore. For a
 * file:// store, put_new writes "<dir>/.lbtmp-<pid>-<n>" through lb_io
 * (so tests can inject ENOSPC and fsync failures), fsyncs it, link()s it to
 * the key's path and unlinks the temp name, then fsyncs the directory. The
 * link is the commit point: before it nothing is visible, after it the
 * whole object is. link() never replaces an existing name, which is the
 * exclusivity a log needs. The temp prefix is the one the file object store
 * reserves, so listings never show a half-written object.
 *
 * For other stores put_new is HEAD then PUT; see store.h for when that is
 * safe.
 *
 * Invariant: a put_new that returned 0 created the object and it is
 * durable; one that returned an error left no object under the key (except
 * LB_ECONFLICT, where the key holds someone else's object).
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "fileio.h"

struct lake_store {
    lb_objstore *os;
    char *url;
    char *root; /* file:// stores: the directory; NULL otherwise */
    char error[512];
};

static atomic_ulong temp_seq;

static int store_error(lake_store *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
store_error(lake_store *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof(s->error), fmt, ap);
    va_end(ap);
    return code;
}

int
lake_store_open(const char *url, const lb_objstore_options *opts, lake_store **out, lb_err *err)
{
    lake_store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    int rc = lb_objstore_open(url, opts, &s->os);
    if (rc) {
        lb_err_set(err, rc, "could not open store \"%s\": %s", url, lb_strerror(rc));
        free(s);
        return rc;
    }
    /* A location is the URL's scheme, bucket and path: an s3:// URL's
     * query (endpoint, region) configures the client, not where a file is. */
    s->url = strndup(url, strcspn(url, "?"));
    if (s->url) {
        size_t n = strlen(s->url);
        while (n > 0 && s->url[n - 1] == '/')
            s->url[--n] = 0;
    }
    if (s->url && strncmp(s->url, "file://", 7) == 0) {
        const char *path = s->url + 7;
        s->root = strdup(*path ? path : "/");
        if (!s->root) {
            lake_store_close(s);
            return -ENOMEM;
        }
    }
    if (!s->url) {
        lake_store_close(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

void
lake_store_close(lake_store *s)
{
    if (!s)
        return;
    if (s->os)
        lb_objstore_close(s->os);
    free(s->url);
    free(s->root);
    free(s);
}

const char *
lake_store_url(const lake_store *s)
{
    return s->url;
}

const char *
lake_store_error(const lake_store *s)
{
    return s->error;
}

static int
os_result(lake_store *s, int rc, const char *op, const char *key)
{
    if (rc == 0)
        s->error[0] = 0;
    else if (rc == LB_ENOTFOUND)
        store_error(s, rc, "\"%s\" does not exist", key);
    else
        store_error(s, rc, "could not %s \"%s\": %s", op, key, lb_objstore_error(s->os));
    return rc;
}

/* file:// put-if-absent: temp file, fsync, link, fsync dir. */
static int
put_new_local(lake_store *s, const char *key, const void *bytes, size_t n)
{
    char path[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX];
    const char *sep = strcmp(s->root, "/") == 0 ? "" : "/";
    if ((size_t)snprintf(path, sizeof(path), "%s%s%s", s->root, sep, key) >= sizeof(path))
        return store_error(s, -ENAMETOOLONG, "path of \"%s\" is too long", key);
    int rc = lb_dirname(path, dir, sizeof(dir));
    if (rc == 0)
        rc = lb_mkdir_p(dir, 0755);
    if (rc)
        return store_error(s, rc, "could not create the directory of \"%s\": %s", key,
                           lb_strerror(rc));
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.lbtmp-%ld-%lu", dir, (long)getpid(),
                         atomic_fetch_add(&temp_seq, 1)) >= sizeof(tmp))
        return store_error(s, -ENAMETOOLONG, "path of \"%s\" is too long", key);
    int fd = lb_io->open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return store_error(s, -errno, "could not create \"%s\": %s", tmp, strerror(errno));
    rc = lb_write_all(fd, bytes, n);
    if (rc == 0)
        rc = lb_fsync(fd);
    if (lb_io->close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc) {
        unlink(tmp);
        return store_error(s, rc, "could not write \"%s\": %s", key, lb_strerror(rc));
    }
    if (link(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        if (err == EEXIST)
            return store_error(s, LB_ECONFLICT, "\"%s\" already exists", key);
        return store_error(s, -err, "could not create \"%s\": %s", key, strerror(err));
    }
    unlink(tmp);
    rc = lb_fsync_dir(dir);
    if (rc)
        return store_error(s, rc, "could not fsync the directory of \"%s\": %s", key,
                           lb_strerror(rc));
    s->error[0] = 0;
    return 0;
}

int
lake_store_put_new(lake_store *s, const char *key, const void *bytes, size_t n)
{
    const char *why;
    if (lb_objstore_check_key(key, &why))
        return store_error(s, -EINVAL, "bad key \"%s\": %s", key, why);
    if (s->root)
        return put_new_local(s, key, bytes, n);
    lb_objstore_stat st;
    int rc = lb_objstore_head(s->os, key, &st);
    if (rc == 0)
        return store_error(s, LB_ECONFLICT, "\"%s\" already exists", key);
    if (rc != LB_ENOTFOUND)
        return os_result(s, rc, "check", key);
    return os_result(s, lb_objstore_put(s->os, key, bytes, n), "put", key);
}

int
lake_store_put(lake_store *s, const char *key, const void *bytes, size_t n)
{
    return os_result(s, lb_objstore_put(s->os, key, bytes, n), "put", key);
}

int
lake_store_get(lake_store *s, const char *key, lb_buf *out)
{
    return os_result(s, lb_objstore_get(s->os, key, out), "get", key);
}

int
lake_store_list(lake_store *s, const char *prefix, lb_objstore_listing *out)
{
    return os_result(s, lb_objstore_list(s->os, prefix, NULL, out), "list", prefix);
}

int
lake_store_delete(lake_store *s, const char *key)
{
    return os_result(s, lb_objstore_delete(s->os, key), "delete", key);
}
