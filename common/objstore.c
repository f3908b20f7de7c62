/*
 * objstore.c: the object store interface, independent of the backend.
 *
 * This layer owns what both backends must agree on: the URL scheme picks
 * the backend; every key, prefix and delimiter is validated here, before a
 * backend sees it, so a bad key can never escape the store's directory or
 * prefix; listings are sorted bytewise and deduplicated here, so both
 * backends list exactly alike; and the error text of the last failure is
 * kept on the handle.
 *
 * Callers: everything that reads or writes object storage (see objstore.h).
 */
#include "objstore.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"
#include "objstore_backend.h"

int
lb_objstore_check_key(const char *key, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (!key || !*key) {
        *why = "key is empty";
        return -EINVAL;
    }
    if (strlen(key) > LB_OBJSTORE_KEY_MAX) {
        *why = "key is longer than 1024 bytes";
        return -EINVAL;
    }
    if (key[0] == '/') {
        *why = "key starts with '/'";
        return -EINVAL;
    }
    const char *c = key;
    for (;;) {
        size_t n = strcspn(c, "/");
        if (n == 0) {
            *why = "key has an empty component";
            return -EINVAL;
        }
        if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) {
            *why = "key has a \".\" or \"..\" component";
            return -EINVAL;
        }
        if (n >= 7 && memcmp(c, ".lbtmp-", 7) == 0) {
            *why = "key component starts with the reserved \".lbtmp-\"";
            return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char b = (unsigned char)c[i];
            if (b < 0x20 || b == 0x7f) {
                *why = "key has a control character";
                return -EINVAL;
            }
        }
        if (c[n] == '\0')
            return 0;
        c += n + 1;
    }
}

/* A list prefix: "" or every whole component valid; the last, partial
 * component may be anything printable (it only filters names). */
static int
check_prefix(const char *prefix, const char **why)
{
    *why = NULL;
    if (!prefix || !*prefix)
        return 0;
    if (strlen(prefix) > LB_OBJSTORE_KEY_MAX) {
        *why = "prefix is longer than 1024 bytes";
        return -EINVAL;
    }
    for (const char *p = prefix; *p; p++) {
        unsigned char b = (unsigned char)*p;
        if (b < 0x20 || b == 0x7f) {
            *why = "prefix has a control character";
            return -EINVAL;
        }
    }
    const char *slash = strrchr(prefix, '/');
    if (!slash)
        return 0;
    size_t n = (size_t)(slash - prefix);
    char *whole = strndup(prefix, n);
    if (!whole)
        return -ENOMEM;
    int rc = lb_objstore_check_key(whole, why);
    free(whole);
    if (rc == -EINVAL)
        *why = "prefix has a bad component (empty, \".\", \"..\" or reserved, or a leading '/')";
    return rc;
}

static int
check_delimiter(const char *d, const char **why)
{
    *why = NULL;
    if (!d)
        return 0;
    for (const char *p = d; *p; p++) {
        unsigned char b = (unsigned char)*p;
        if (b < 0x20 || b == 0x7f) {
            *why = "delimiter has a control character";
            return -EINVAL;
        }
    }
    return 0;
}

int
lb__objstore_fail(lb_objstore *s, int rc, const char *fmt, ...)
{
    assert(rc != 0);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof(s->error), fmt, ap);
    va_end(ap);
    if (rc == LB_ENOTFOUND)
        lb_debug("object store: %s", s->error);
    else
        lb_error("object store: %s", s->error);
    return rc;
}

/* Validate key; on failure record why. */
static int
key_ok(lb_objstore *s, const char *key)
{
    const char *why;
    int rc = lb_objstore_check_key(key, &why);
    if (rc == -EINVAL) {
        snprintf(s->error, sizeof(s->error), "invalid object key \"%.200s\": %s",
                 key ? key : "(null)", why);
        lb_warn("object store: %s", s->error);
    }
    return rc;
}

int
lb_objstore_open(const char *url, const lb_objstore_options *opts, lb_objstore **out)
{
    assert(out);
    *out = NULL;
    if (!url) {
        lb_error("object store URL is missing");
        return LB_EBADCONFIG;
    }
    lb_objstore *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->url = strdup(url);
    if (!s->url) {
        free(s);
        return -ENOMEM;
    }
    lb_objstore_options none = {0};
    if (!opts)
        opts = &none;
    int rc;
    if (strncmp(url, "file://", 7) == 0) {
        rc = lb__objstore_file_open(s, url + 7, opts);
    } else if (strncmp(url, "s3://", 5) == 0) {
        rc = lb__objstore_s3_open(s, url + 5, opts);
    } else {
        lb_error("unsupported object store URL \"%s\"", url);
        lb_error("detail: An object store URL starts with file:// or s3://.");
        rc = LB_EBADCONFIG;
    }
    if (rc != 0) {
        free(s->url);
        free(s);
        return rc;
    }
    assert(s->ops && s->ops->put && s->ops->get && s->ops->head && s->ops->list && s->ops->del &&
           s->ops->close);
    *out = s;
    return 0;
}

void
lb_objstore_close(lb_objstore *s)
{
    if (!s)
        return;
    s->ops->close(s);
    free(s->url);
    free(s);
}

const char *
lb_objstore_error(const lb_objstore *s)
{
    return s ? s->error : "";
}

const char *
lb_objstore_url(const lb_objstore *s)
{
    return s->url;
}

int
lb_objstore_put(lb_objstore *s, const char *key, const void *bytes, size_t n)
{
    assert(s);
    s->error[0] = '\0';
    int rc = key_ok(s, key);
    if (rc)
        return rc;
    if (!bytes && n > 0)
        return lb__objstore_fail(s, -EINVAL, "put \"%s\": no bytes", key);
    return s->ops->put(s, key, bytes ? bytes : "", n, NULL, NULL);
}

int
lb_objstore_put_stream(lb_objstore *s, const char *key, lb_objstore_read_fn source, void *arg)
{
    assert(s);
    s->error[0] = '\0';
    int rc = key_ok(s, key);
    if (rc)
        return rc;
    if (!source)
        return lb__objstore_fail(s, -EINVAL, "put \"%s\": no read callback", key);
    return s->ops->put(s, key, NULL, 0, source, arg);
}

static ssize_t
read_fd(void *arg, char *dst, size_t cap)
{
    int fd = *(int *)arg;
    for (;;) {
        ssize_t r = read(fd, dst, cap);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -errno;
    }
}

int
lb_objstore_put_fd(lb_objstore *s, const char *key, int fd)
{
    if (fd < 0) {
        s->error[0] = '\0';
        return lb__objstore_fail(s, -EBADF, "put \"%s\": bad file descriptor", key ? key : "");
    }
    return lb_objstore_put_stream(s, key, read_fd, &fd);
}

/* Collect a get into an lb_buf; a retry rolls it back. */
typedef struct buf_sink {
    lb_buf *out;
    size_t base;
} buf_sink;

static int
buf_sink_write(void *arg, const char *bytes, size_t n)
{
    buf_sink *k = arg;
    return lb_buf_append(k->out, bytes, n);
}

static int
buf_sink_reset(void *arg)
{
    buf_sink *k = arg;
    k->out->len = k->base;
    if (k->out->data)
        k->out->data[k->base] = '\0';
    return 0;
}

static int
get_common(lb_objstore *s, const char *key, uint64_t offset, uint64_t length, lb_buf *out)
{
    assert(s);
    s->error[0] = '\0';
    int rc = key_ok(s, key);
    if (rc)
        return rc;
    if (!out)
        return lb__objstore_fail(s, -EINVAL, "get \"%s\": no output buffer", key);
    if (length == 0) {
        /* Nothing to read, but a missing key is still missing. */
        lb_objstore_stat st;
        return s->ops->head(s, key, &st);
    }
    buf_sink k = {out, out->len};
    rc = s->ops->get(s, key, offset, length, buf_sink_write, buf_sink_reset, &k);
    if (rc)
        buf_sink_reset(&k);
    return rc;
}

int
lb_objstore_get(lb_objstore *s, const char *key, lb_buf *out)
{
    return get_common(s, key, 0, LB__OBJSTORE_TO_END, out);
}

int
lb_objstore_get_range(lb_objstore *s, const char *key, uint64_t offset, uint64_t length,
                      lb_buf *out)
{
    if (length == LB__OBJSTORE_TO_END)
        length--; /* the marker is not a length a caller can mean */
    return get_common(s, key, offset, length, out);
}

int
lb_objstore_get_stream(lb_objstore *s, const char *key, lb_objstore_write_fn sink, void *arg)
{
    assert(s);
    s->error[0] = '\0';
    int rc = key_ok(s, key);
    if (rc)
        return rc;
    if (!sink)
        return lb__objstore_fail(s, -EINVAL, "get \"%s\": no write callback", key);
    return s->ops->get(s, key, 0, LB__OBJSTORE_TO_END, sink, NULL, arg);
}

int
lb_objstore_head(lb_objstore *s, const char *key, lb_objstore_stat *st)
{
    assert(s);
    s->error[0] = '\0';
    int rc = key_ok(s, key);
    if (rc)
        return rc;
    lb_objstore_stat ignored;
    if (!st)
        st = &ignored;
    memset(st, 0, sizeof(*st));
    return s->ops->head(s, key, st);
}

int
lb_objstore_delete(lb_objstore *s, const char *key)
{
    assert(s);
    s->error[0] = '\0';
    int rc = key_ok(s, key);
    if (rc)
        return rc;
    return s->ops->del(s, key);
}

int
lb__objstore_list_add(lb_objstore_listing *l, const char *key, size_t keylen, uint64_t size)
{
    if ((l->nobjects & (l->nobjects + 1)) == 0) { /* 0, 1, 3, 7, ...: grow */
        size_t cap = (l->nobjects + 1) * 2;
        lb_objstore_entry *e = realloc(l->objects, cap * sizeof(*e));
        if (!e)
            return -ENOMEM;
        l->objects = e;
    }
    char *k = strndup(key, keylen);
    if (!k)
        return -ENOMEM;
    l->objects[l->nobjects++] = (lb_objstore_entry){k, size};
    return 0;
}

int
lb__objstore_list_add_prefix(lb_objstore_listing *l, const char *prefix, size_t len)
{
    if ((l->nprefixes & (l->nprefixes + 1)) == 0) {
        size_t cap = (l->nprefixes + 1) * 2;
        char **p = realloc(l->prefixes, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        l->prefixes = p;
    }
    char *k = strndup(prefix, len);
    if (!k)
        return -ENOMEM;
    l->prefixes[l->nprefixes++] = k;
    return 0;
}

void
lb_objstore_list_free(lb_objstore_listing *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nobjects; i++)
        free(l->objects[i].key);
    for (size_t i = 0; i < l->nprefixes; i++)
        free(l->prefixes[i]);
    free(l->objects);
    free(l->prefixes);
    memset(l, 0, sizeof(*l));
}

static int
cmp_entry(const void *a, const void *b)
{
    return strcmp(((const lb_objstore_entry *)a)->key, ((const lb_objstore_entry *)b)->key);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort bytewise (strcmp compares as unsigned char, as S3 orders UTF-8) and
 * drop duplicates (a paginated S3 listing may repeat a common prefix). */
static void
list_finish(lb_objstore_listing *l)
{
    if (l->nobjects > 1) {
        qsort(l->objects, l->nobjects, sizeof(*l->objects), cmp_entry);
        size_t w = 1;
        for (size_t r = 1; r < l->nobjects; r++) {
            if (strcmp(l->objects[r].key, l->objects[w - 1].key) == 0)
                free(l->objects[r].key);
            else
                l->objects[w++] = l->objects[r];
        }
        l->nobjects = w;
    }
    if (l->nprefixes > 1) {
        qsort(l->prefixes, l->nprefixes, sizeof(*l->prefixes), cmp_str);
        size_t w = 1;
        for (size_t r = 1; r < l->nprefixes; r++) {
            if (strcmp(l->prefixes[r], l->prefixes[w - 1]) == 0)
                free(l->prefixes[r]);
            else
                l->prefixes[w++] = l->prefixes[r];
        }
        l->nprefixes = w;
    }
}

int
lb_objstore_list(lb_objstore *s, const char *prefix, const char *delimiter,
                 lb_objstore_listing *out)
{
    assert(s && out);
    s->error[0] = '\0';
    memset(out, 0, sizeof(*out));
    const char *why;
    int rc = check_prefix(prefix, &why);
    if (rc == 0)
        rc = check_delimiter(delimiter, &why);
    if (rc == -EINVAL)
        return lb__objstore_fail(s, rc, "invalid list prefix \"%.200s\" or delimiter: %s",
                                 prefix ? prefix : "", why);
    if (rc)
        return rc;
    if (delimiter && !*delimiter)
        delimiter = NULL;
    rc = s->ops->list(s, prefix ? prefix : "", delimiter, out);
    if (rc) {
        lb_objstore_list_free(out);
        return rc;
    }
    list_finish(out);
    return 0;
}
