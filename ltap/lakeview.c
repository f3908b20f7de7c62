/*
 * lakeview.c: a timeline's lake read back from object storage (lakeview.h).
 *
 * The newest metadata version. Iceberg versions are created put-if-absent
 * and version-hint.text is written after each (lake/iceberg.h), so the
 * hint is never ahead of the last commit but may be behind it (a crash
 * between the two puts). The hint's version is read and the next ones are
 * probed until one is missing; with no usable hint the metadata folder is
 * listed. Either way the answer is the largest N that exists.
 */
#include "lakeview.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "lake/table.h"
#include "timeline.h"

#define TABLES_KEY "lake/_ltap_tables.json"

void
ltap_lake_list_free(ltap_lake_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->tables[i].database);
        free(l->tables[i].schema);
        free(l->tables[i].table);
        free(l->tables[i].prefix);
    }
    free(l->tables);
    memset(l, 0, sizeof(*l));
}

int
ltap_lake_list_load(lake_store *st, const char *tl_prefix, ltap_lake_list *out, lb_err *err)
{
    memset(out, 0, sizeof(*out));
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", tl_prefix, TABLES_KEY);
    lb_buf b = LB_BUF_INIT;
    int rc = lake_store_get(st, key, &b);
    if (rc) {
        lb_buf_free(&b);
        if (rc == LB_ENOTFOUND)
            return lb_err_set(err, rc, "no lake run has written \"%s\" yet", key);
        return lb_err_set(err, rc, "could not read \"%s\": %s", key, lake_store_error(st));
    }
    json_error_t je;
    json_t *j = json_loadb(b.data ? (const char *)b.data : "", b.len, 0, &je);
    lb_buf_free(&b);
    const char *lsn = json_string_value(json_object_get(j, "lsn"));
    json_t *tables = json_object_get(j, "tables");
    if (!j || !lsn || lb_lsn_parse(lsn, &out->lsn) != 0 || !json_is_array(tables)) {
        json_decref(j);
        return lb_err_set(err, LB_EPARSE, "\"%s\" is not a lake table list", key);
    }
    size_t n = json_array_size(tables);
    out->tables = calloc(n ? n : 1, sizeof(ltap_lake_entry));
    if (!out->tables) {
        json_decref(j);
        return lb_err_set(err, -ENOMEM, "out of memory");
    }
    size_t i;
    json_t *e;
    json_array_foreach(tables, i, e)
    {
        const char *f[4] = {json_string_value(json_object_get(e, "database")),
                            json_string_value(json_object_get(e, "schema")),
                            json_string_value(json_object_get(e, "table")),
                            json_string_value(json_object_get(e, "prefix"))};
        if (!f[0] || !f[1] || !f[2] || !f[3]) {
            rc = lb_err_set(err, LB_EPARSE, "\"%s\": table %zu lacks a name or prefix", key, i);
            break;
        }
        ltap_lake_entry *t = &out->tables[out->n++];
        t->database = strdup(f[0]);
        t->schema = strdup(f[1]);
        t->table = strdup(f[2]);
        t->prefix = strdup(f[3]);
        if (!t->database || !t->schema || !t->table || !t->prefix) {
            rc = lb_err_set(err, -ENOMEM, "out of memory");
            break;
        }
    }
    json_decref(j);
    if (rc)
        ltap_lake_list_free(out);
    return rc;
}

const ltap_lake_entry *
ltap_lake_list_find(const ltap_lake_list *l, const char *database, const char *schema,
                    const char *table)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->tables[i].database, database) == 0 &&
            strcmp(l->tables[i].schema, schema) == 0 && strcmp(l->tables[i].table, table) == 0)
            return &l->tables[i];
    return NULL;
}

/* Does metadata version v of the table exist? 1, 0, or an error. */
static int
version_exists(lake_store *st, const char *tprefix, int64_t v, lb_buf *body)
{
    char key[1200];
    snprintf(key, sizeof(key), "%s/metadata/v%" PRId64 ".metadata.json", tprefix, v);
    body->len = 0;
    int rc = lake_store_get(st, key, body);
    return rc == 0 ? 1 : rc == LB_ENOTFOUND ? 0 : rc;
}

/* The largest N by listing the metadata folder; 0 if none. */
static int
newest_by_listing(lake_store *st, const char *tprefix, int64_t *newest)
{
    char dir[1200];
    snprintf(dir, sizeof(dir), "%s/metadata/", tprefix);
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
ltap_lake_metadata(lake_store *st, const char *tprefix, char **key, json_t **meta, lb_err *err)
{
    *key = NULL;
    *meta = NULL;
    char hint_key[1200];
    snprintf(hint_key, sizeof(hint_key), "%s/metadata/version-hint.text", tprefix);
    lb_buf b = LB_BUF_INIT;
    int64_t v = 0;
    int rc = lake_store_get(st, hint_key, &b);
    if (rc == 0 && lb_buf_append(&b, "", 1) == 0) {
        char *end;
        long long h = strtoll((const char *)b.data, &end, 10);
        if (end != (const char *)b.data && h > 0)
            v = h;
    } else if (rc != LB_ENOTFOUND && rc != 0) {
        lb_buf_free(&b);
        return lb_err_set(err, rc, "could not read \"%s\": %s", hint_key, lake_store_error(st));
    }
    /* probe forward from the hint; a hint whose version is missing is ignored */
    int have = v > 0 ? version_exists(st, tprefix, v, &b) : 0;
    while (have == 1) {
        int next = version_exists(st, tprefix, v + 1, &b);
        if (next != 1) {
            have = next < 0 ? next : 1;
            break;
        }
        v++;
    }
    if (have < 0) {
        lb_buf_free(&b);
        return lb_err_set(err, have, "could not read the metadata of \"%s\": %s", tprefix,
                          lake_store_error(st));
    }
    if (have == 0) {
        if ((rc = newest_by_listing(st, tprefix, &v)) != 0) {
            lb_buf_free(&b);
            return lb_err_set(err, rc, "could not list the metadata of \"%s\": %s", tprefix,
                              lake_store_error(st));
        }
        have = v > 0 ? version_exists(st, tprefix, v, &b) : 0;
    }
    if (have <= 0) {
        lb_buf_free(&b);
        if (have < 0)
            return lb_err_set(err, have, "could not read the metadata of \"%s\": %s", tprefix,
                              lake_store_error(st));
        return lb_err_set(err, LB_ENOTFOUND, "lake table \"%s\" has no Iceberg metadata", tprefix);
    }
    /* b holds version v (the last probe that succeeded was v, or v + 1
     * failed after it: read v again in that case) */
    if (version_exists(st, tprefix, v, &b) != 1) {
        lb_buf_free(&b);
        return lb_err_set(err, LB_ENOTFOUND, "metadata v%" PRId64 " of \"%s\" went away", v,
                          tprefix);
    }
    json_error_t je;
    json_t *j = json_loadb(b.data ? (const char *)b.data : "", b.len, 0, &je);
    lb_buf_free(&b);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return lb_err_set(err, LB_EPARSE, "v%" PRId64 ".metadata.json of \"%s\" is not JSON: %s", v,
                          tprefix, je.text);
    }
    if (asprintf(key, "%s/metadata/v%" PRId64 ".metadata.json", tprefix, v) < 0) {
        *key = NULL;
        json_decref(j);
        return lb_err_set(err, -ENOMEM, "out of memory");
    }
    *meta = j;
    return 0;
}

/* The current snapshot's summary, or NULL. */
static json_t *
current_summary(json_t *meta)
{
    json_t *id = json_object_get(meta, "current-snapshot-id");
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(meta, "snapshots"), i, s)
    {
        if (json_is_integer(id) &&
            json_integer_value(json_object_get(s, "snapshot-id")) == json_integer_value(id))
            return json_object_get(s, "summary");
    }
    return NULL;
}

static uint64_t
summary_u64(json_t *sum, const char *key)
{
    const char *v = json_string_value(json_object_get(sum, key));
    return v ? strtoull(v, NULL, 10) : 0;
}

int
ltap_lake_status_read(lake_store *st, const char *tl_prefix, lb_lsn *run_lsn,
                      ltap_table_status **tables, size_t *ntables, lb_err *err)
{
    *tables = NULL;
    *ntables = 0;
    ltap_lake_list l;
    int rc = ltap_lake_list_load(st, tl_prefix, &l, err);
    if (rc)
        return rc;
    *run_lsn = l.lsn;
    ltap_table_status *out = calloc(l.n ? l.n : 1, sizeof(*out));
    if (!out) {
        ltap_lake_list_free(&l);
        return lb_err_set(err, -ENOMEM, "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        char *key;
        json_t *meta;
        lb_err e = {0};
        int mrc = ltap_lake_metadata(st, l.tables[i].prefix, &key, &meta, &e);
        if (mrc == LB_ENOTFOUND)
            continue;
        if (mrc) {
            rc = lb_err_set(err, mrc, "%s", e.message);
            break;
        }
        json_t *sum = current_summary(meta);
        const char *lsn = json_string_value(json_object_get(sum, "lakebase.lsn"));
        ltap_table_status *t = &out[n];
        if (sum && lsn && lb_lsn_parse(lsn, &t->lake_lsn) == 0) {
            snprintf(t->database, sizeof(t->database), "%s", l.tables[i].database);
            snprintf(t->schema, sizeof(t->schema), "%s", l.tables[i].schema);
            snprintf(t->table, sizeof(t->table), "%s", l.tables[i].table);
            t->files = summary_u64(sum, "total-data-files");
            t->bytes = summary_u64(sum, "total-files-size");
            t->rows = summary_u64(sum, "total-records");
            /* A table the run found unchanged keeps its older commit but
             * was current at the run's P (as the run reports it). */
            if (t->lake_lsn < l.lsn)
                t->lake_lsn = l.lsn;
            n++;
        }
        json_decref(meta);
        free(key);
    }
    ltap_lake_list_free(&l);
    if (rc) {
        free(out);
        return rc;
    }
    *tables = out;
    *ntables = n;
    return 0;
}

int
ltap_timeline_status_load(const char *tenant, const char *timeline, const char *store_url,
                          lb_metrics *metrics, lb_err *err)
{
    if (ltap__status_known(tenant, timeline))
        return 0;
    char prefix[200];
    snprintf(prefix, sizeof(prefix), "%s/%s", tenant, timeline);
    lake_store *st = NULL;
    int rc = lake_store_open(store_url, NULL, &st, err);
    lb_lsn run_lsn = 0;
    ltap_table_status *tables = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = ltap_lake_status_read(st, prefix, &run_lsn, &tables, &n, err);
    lake_store_close(st);
    if (rc)
        return rc;
    if (!ltap__status_seed(tenant, timeline, run_lsn, tables, n, metrics))
        free(tables);
    return 0;
}
