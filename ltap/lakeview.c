/*
 * lakeview.c: a timeline's lake read back from object storage (lakeview.h).
 * The newest metadata of a table is found as lake/iceberg_meta.h says.
 */
#include "lakeview.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "lake/iceberg_meta.h"
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

int
ltap_lake_metadata(lake_store *st, const char *tprefix, char **key, json_t **meta, lb_err *err)
{
    return lake_iceberg_newest_metadata(st, tprefix, NULL, key, meta, err);
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

int
ltap_lake_expire_snapshots(lake_store *st, const char *tl_prefix, int64_t cutoff_ms,
                           size_t *expired, lb_err *err)
{
    *expired = 0;
    ltap_lake_list l;
    int rc = ltap_lake_list_load(st, tl_prefix, &l, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < l.n; i++) {
        size_t n = 0;
        lb_err e = {0};
        int trc = lake_iceberg_expire_snapshots(st, l.tables[i].prefix, cutoff_ms, &n, &e);
        if (trc && trc != LB_ENOTFOUND)
            lb_warn("lake expiry: snapshots of a table not expired prefix=%s error=\"%s\"",
                    l.tables[i].prefix, e.message);
        *expired += n;
    }
    ltap_lake_list_free(&l);
    return 0;
}
