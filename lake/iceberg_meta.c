/*
 * iceberg_meta.c: an Iceberg table's metadata outside the writer's handle
 * (iceberg_meta.h).
 *
 * The newest version. Versions are created put-if-absent and
 * version-hint.text is written after each (iceberg.h), so the hint is
 * never ahead of the last commit but may be behind it (a crash between the
 * two puts). The hint's version is read and the next ones are probed
 * until one is missing; with no usable hint the metadata folder is
 * listed. Either way the answer is the largest N that exists.
 *
 * Expiry. The metadata is the commit point: the new version without the
 * expired snapshots is written first, and only then are their manifest
 * lists and manifests deleted, so a reader of any version that is still
 * the newest finds every file it names. Manifests are kept while a kept
 * snapshot's manifest list names them (a manifest is shared by every
 * snapshot from the one that wrote it until one rewrites it).
 */
#include "iceberg_meta.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro.h"
#include "buf.h"
#include "log.h"
#include "table.h"

/* ---- the newest version --------------------------------------------------------- */

/* Read version v into body: 1, 0 (missing), or an error. */
static int
get_version(lake_store *st, const char *prefix, int64_t v, lb_buf *body)
{
    char key[1200];
    snprintf(key, sizeof(key), "%s/metadata/v%" PRId64 ".metadata.json", prefix, v);
    lb_buf_reset(body);
    int rc = lake_store_get(st, key, body);
    return rc == 0 ? 1 : rc == LB_ENOTFOUND ? 0 : rc;
}

/* The largest N by listing the metadata folder; 0 if none. */
static int
newest_by_listing(lake_store *st, const char *prefix, int64_t *newest)
{
    char dir[1200];
    snprintf(dir, sizeof(dir), "%s/metadata/", prefix);
    lb_objstore_listing l;
    memset(&l, 0, sizeof(l));
    int rc = lake_store_list(st, dir, &l);
    *newest = 0;
    for (size_t i = 0; rc == 0 && i < l.nobjects; i++) {
        const char *name = l.objects[i].key + strlen(dir);
        char *end;
        if (name[0] != 'v' || name[1] < '1' || name[1] > '9')
            continue;
        long long v = strtoll(name + 1, &end, 10);
        if (strcmp(end, ".metadata.json") == 0 && v > *newest)
            *newest = v;
    }
    lb_objstore_list_free(&l);
    return rc;
}

int
lake_iceberg_newest_metadata(lake_store *st, const char *prefix, int64_t *version, char **key,
                             json_t **meta, lb_err *err)
{
    *key = NULL;
    *meta = NULL;
    char hint_key[1200];
    snprintf(hint_key, sizeof(hint_key), "%s/metadata/version-hint.text", prefix);
    lb_buf b = LB_BUF_INIT;
    int64_t v = 0;
    int rc = lake_store_get(st, hint_key, &b);
    if (rc == 0 && lb_buf_append(&b, "", 1) == 0) {
        char *end;
        long long h = strtoll((const char *)b.data, &end, 10);
        if (end != (const char *)b.data && h > 0)
            v = h;
    } else if (rc && rc != LB_ENOTFOUND) {
        lb_buf_free(&b);
        return lb_err_set(err, rc, "could not read \"%s\": %s", hint_key, lake_store_error(st));
    }
    /* probe forward from the hint; a hint whose version is missing is ignored */
    int have = v > 0 ? get_version(st, prefix, v, &b) : 0;
    while (have == 1) {
        int next = get_version(st, prefix, v + 1, &b);
        if (next == 1) {
            v++;
            continue;
        }
        have = next < 0 ? next : get_version(st, prefix, v, &b); /* b held v + 1's attempt */
        break;
    }
    if (have == 0) {
        if ((rc = newest_by_listing(st, prefix, &v)) != 0) {
            lb_buf_free(&b);
            return lb_err_set(err, rc, "could not list the metadata of \"%s\": %s", prefix,
                              lake_store_error(st));
        }
        have = v > 0 ? get_version(st, prefix, v, &b) : 0;
    }
    if (have <= 0) {
        lb_buf_free(&b);
        if (have < 0)
            return lb_err_set(err, have, "could not read the metadata of \"%s\": %s", prefix,
                              lake_store_error(st));
        return lb_err_set(err, LB_ENOTFOUND, "table \"%s\" has no Iceberg metadata", prefix);
    }
    json_error_t je;
    json_t *j = json_loadb(b.data ? (const char *)b.data : "", b.len, 0, &je);
    lb_buf_free(&b);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return lb_err_set(err, LB_EPARSE, "v%" PRId64 ".metadata.json of \"%s\" is not JSON: %s", v,
                          prefix, j ? "not an object" : je.text);
    }
    if (asprintf(key, "%s/metadata/v%" PRId64 ".metadata.json", prefix, v) < 0) {
        *key = NULL;
        json_decref(j);
        return lb_err_set(err, -ENOMEM, "out of memory");
    }
    if (version)
        *version = v;
    *meta = j;
    return 0;
}

/* ---- expiry --------------------------------------------------------------------------- */

/* A sorted set of strings (keys). */
typedef struct keyset {
    char **v;
    size_t n, cap;
} keyset;

static int
keyset_add(keyset *s, const char *k)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        char **grown = realloc(s->v, cap * sizeof(char *));
        if (!grown)
            return -ENOMEM;
        s->v = grown;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(k)))
        return -ENOMEM;
    s->n++;
    return 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
keyset_has(const keyset *s, const char *k)
{
    return bsearch(&k, s->v, s->n, sizeof(char *), cmp_str) != NULL;
}

static void
keyset_free(keyset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* The key of an absolute location inside the table, or NULL (not ours). */
static char *
key_of(const char *prefix, const char *location, const char *uri)
{
    size_t n = strlen(location);
    if (!uri || strncmp(uri, location, n) != 0 || uri[n] != '/' || !uri[n + 1])
        return NULL;
    char *k = NULL;
    if (asprintf(&k, "%s/%s", prefix, uri + n + 1) < 0)
        return NULL;
    return k;
}

/* Add the manifests a manifest list names to set. */
static int
list_manifests(lake_store *st, const char *prefix, const char *location, const char *list_uri,
               keyset *set, lb_err *err)
{
    char *key = key_of(prefix, location, list_uri);
    if (!key)
        return lb_err_set(err, LB_EPARSE, "manifest list \"%s\" is outside the table \"%s\"",
                          list_uri ? list_uri : "(none)", location);
    lb_buf b = LB_BUF_INIT;
    lake_avro_reader *r = NULL;
    int rc = lake_store_get(st, key, &b);
    if (rc)
        lb_err_set(err, rc, "could not read \"%s\": %s", key, lake_store_error(st));
    else
        rc = lake_avro_reader_open(b.data, b.len, &r, err);
    const lake_avro_value *v;
    while (rc == 0 && (rc = lake_avro_reader_next(r, &v)) == 1) {
        rc = 0;
        const lake_avro_value *path = v->kind == LAKE_AVRO_RECORD && v->u.list.count > 0
                                          ? lake_avro_unwrap(&v->u.list.items[0])
                                          : NULL;
        if (!path || path->kind != LAKE_AVRO_STRING) {
            rc = lb_err_set(err, LB_EPARSE, "manifest list \"%s\": no manifest_path", key);
            break;
        }
        char *uri = strndup(path->u.bytes.ptr, path->u.bytes.len);
        char *mkey = uri ? key_of(prefix, location, uri) : NULL;
        if (!mkey)
            rc = uri ? lb_err_set(err, LB_EPARSE, "manifest \"%s\" is outside the table", uri)
                     : -ENOMEM;
        else
            rc = keyset_add(set, mkey);
        free(uri);
        free(mkey);
    }
    if (rc < 0 && r && !err->message[0])
        lb_err_set(err, rc, "manifest list \"%s\": %s", key, lake_avro_reader_error(r));
    lake_avro_reader_free(r);
    lb_buf_free(&b);
    free(key);
    return rc;
}

static void
delete_quietly(lake_store *st, const char *key)
{
    int rc = lake_store_delete(st, key);
    if (rc && rc != LB_ENOTFOUND && rc != -ENOENT)
        lb_warn("iceberg expiry: could not delete key=%s error=\"%s\"", key, lake_store_error(st));
}

int
lake_iceberg_expire_snapshots(lake_store *st, const char *prefix, int64_t cutoff_ms,
                              size_t *expired, lb_err *err)
{
    lb_err local = {0};
    if (!err)
        err = &local;
    if (expired)
        *expired = 0;
    int64_t version;
    char *meta_key = NULL;
    json_t *meta = NULL;
    int rc = lake_iceberg_newest_metadata(st, prefix, &version, &meta_key, &meta, err);
    if (rc)
        return rc;
    free(meta_key);
    const char *location = json_string_value(json_object_get(meta, "location"));
    json_t *snaps = json_object_get(meta, "snapshots");
    json_t *cur = json_object_get(meta, "current-snapshot-id");
    if (!location || !json_is_array(snaps)) {
        json_decref(meta);
        return lb_err_set(err, LB_EPARSE, "metadata of \"%s\" has no location or snapshots",
                          prefix);
    }
    /* the newest snapshot committed at or before the cutoff */
    int64_t keep_from = INT64_MIN;
    size_t i;
    json_t *s;
    json_array_foreach(snaps, i, s)
    {
        int64_t seq = json_integer_value(json_object_get(s, "sequence-number"));
        if (json_integer_value(json_object_get(s, "timestamp-ms")) <= cutoff_ms && seq > keep_from)
            keep_from = seq;
    }
    json_t *kept = json_array(), *gone = json_array();
    json_array_foreach(snaps, i, s)
    {
        int64_t seq = json_integer_value(json_object_get(s, "sequence-number"));
        bool current =
            json_is_integer(cur) &&
            json_integer_value(json_object_get(s, "snapshot-id")) == json_integer_value(cur);
        json_array_append(seq < keep_from && !current ? gone : kept, s);
    }
    size_t ngone = json_array_size(gone);
    if (ngone == 0) {
        json_decref(kept);
        json_decref(gone);
        json_decref(meta);
        return 0;
    }
    /* manifests the kept snapshots need, and those of the expired ones */
    keyset keep = {0}, drop = {0}, lists = {0}, old_meta = {0};
    json_array_foreach(kept, i, s)
    {
        if (rc == 0)
            rc = list_manifests(st, prefix, location,
                                json_string_value(json_object_get(s, "manifest-list")), &keep, err);
    }
    json_array_foreach(gone, i, s)
    {
        const char *list = json_string_value(json_object_get(s, "manifest-list"));
        char *k = key_of(prefix, location, list);
        if (rc == 0 && k)
            rc = keyset_add(&lists, k);
        free(k);
        if (rc == 0)
            rc = list_manifests(st, prefix, location, list, &drop, err);
    }
    if (rc == 0 && keep.n)
        qsort(keep.v, keep.n, sizeof(char *), cmp_str);
    /* the new metadata */
    json_t *next = rc == 0 ? json_deep_copy(meta) : NULL;
    if (rc == 0 && !next)
        rc = -ENOMEM;
    if (rc == 0) {
        json_t *ids = json_object();
        json_array_foreach(kept, i, s)
        {
            char id[32];
            snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(json_object_get(s, "snapshot-id")));
            json_object_set_new(ids, id, json_true());
        }
        json_t *slog = json_array(), *mlog = json_array();
        json_t *e;
        json_array_foreach(json_object_get(meta, "snapshot-log"), i, e)
        {
            char id[32];
            snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(json_object_get(e, "snapshot-id")));
            if (json_object_get(ids, id))
                json_array_append(slog, e);
        }
        json_array_foreach(json_object_get(meta, "metadata-log"), i, e)
        {
            if (json_integer_value(json_object_get(e, "timestamp-ms")) > cutoff_ms) {
                json_array_append(mlog, e);
                continue;
            }
            char *k =
                key_of(prefix, location, json_string_value(json_object_get(e, "metadata-file")));
            if (k && rc == 0)
                rc = keyset_add(&old_meta, k);
            free(k);
        }
        json_decref(ids);
        json_object_set(next, "snapshots", kept);
        json_object_set_new(next, "snapshot-log", slog);
        json_object_set_new(next, "metadata-log", mlog);
        /* this version's own predecessor joins the log, as at a commit */
        char *prev = NULL;
        if (asprintf(&prev, "%s/metadata/v%" PRId64 ".metadata.json", location, version) >= 0) {
            json_array_append_new(mlog, json_pack("{s:O, s:s}", "timestamp-ms",
                                                  json_object_get(meta, "last-updated-ms"),
                                                  "metadata-file", prev));
            free(prev);
        }
        json_object_set_new(next, "last-updated-ms", json_integer(lake__now_ms()));
    }
    char *text = rc == 0 ? json_dumps(next, JSON_INDENT(2)) : NULL;
    if (rc == 0 && !text)
        rc = -ENOMEM;
    if (rc == 0) {
        char key[1200];
        snprintf(key, sizeof(key), "%s/metadata/v%" PRId64 ".metadata.json", prefix, version + 1);
        rc = lake_store_put_new(st, key, text, strlen(text));
        if (rc == LB_ECONFLICT)
            lb_err_set(err, rc, "metadata version %" PRId64 " of \"%s\" was written meanwhile",
                       version + 1, prefix);
        else if (rc)
            lb_err_set(err, rc, "could not write \"%s\": %s", key, lake_store_error(st));
    }
    if (rc == 0) {
        /* committed: the hint, then what nothing names any more */
        char key[1200], num[32];
        snprintf(key, sizeof(key), "%s/metadata/version-hint.text", prefix);
        int n = snprintf(num, sizeof(num), "%" PRId64, version + 1);
        if (lake_store_put(st, key, num, (size_t)n) != 0)
            lb_warn("iceberg expiry: could not write key=%s error=\"%s\"", key,
                    lake_store_error(st));
        for (i = 0; i < lists.n; i++)
            delete_quietly(st, lists.v[i]);
        for (i = 0; i < drop.n; i++)
            if (!keyset_has(&keep, drop.v[i]))
                delete_quietly(st, drop.v[i]);
        for (i = 0; i < old_meta.n; i++)
            delete_quietly(st, old_meta.v[i]);
        if (expired)
            *expired = ngone;
    }
    free(text);
    json_decref(next);
    json_decref(kept);
    json_decref(gone);
    json_decref(meta);
    keyset_free(&keep);
    keyset_free(&drop);
    keyset_free(&lists);
    keyset_free(&old_meta);
    return rc;
}
