/*
 * table_files.h: data files for the table tests (test_delta.c,
 * test_iceberg.c), written by the Parquet writer into a file:// store.
 *
 * Row k of every file has id = k (so a reader's set of ids tells which
 * files it read), name = "row <k>", and the other columns derived from k.
 */
#ifndef LAKE_TEST_TABLE_FILES_H
#define LAKE_TEST_TABLE_FILES_H

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "parquet.h"
#include "schema.h"
#include "table.h"
#include "value.h"

static int
tf_add(lake_schema *s, int parent, const char *name, int32_t id, lake_type type, bool required)
{
    lake_field f = {.name = name, .field_id = id, .type = type, .required = required};
    if (type == LAKE_TYPE_DECIMAL)
        f.precision = 12, f.scale = 2;
    int node = -1;
    if (lake_schema_add(s, parent, &f, &node))
        fail_msg("adding \"%s\": %s", name ? name : "(element)", lake_schema_error(s));
    return node;
}

/* id long (required), name string, amount decimal(12,2), day date, ts
 * timestamptz, [local timestamp], score double, tags list<string>, info
 * struct<a int, b string>, flag boolean, raw binary. */
static lake_schema *
tf_schema(bool with_local_timestamp)
{
    lake_schema *s = NULL;
    assert_int_equal(lake_schema_new(&s), 0);
    tf_add(s, 0, "id", 1, LAKE_TYPE_INT64, true);
    tf_add(s, 0, "name", 2, LAKE_TYPE_STRING, false);
    tf_add(s, 0, "amount", 3, LAKE_TYPE_DECIMAL, false);
    tf_add(s, 0, "day", 4, LAKE_TYPE_DATE, false);
    tf_add(s, 0, "ts", 5, LAKE_TYPE_TIMESTAMPTZ, false);
    if (with_local_timestamp)
        tf_add(s, 0, "ts_local", 6, LAKE_TYPE_TIMESTAMP, false);
    tf_add(s, 0, "score", 7, LAKE_TYPE_DOUBLE, false);
    int tags = tf_add(s, 0, "tags", 8, LAKE_TYPE_LIST, false);
    tf_add(s, tags, "element", 9, LAKE_TYPE_STRING, false);
    int info = tf_add(s, 0, "info", 10, LAKE_TYPE_STRUCT, false);
    tf_add(s, info, "a", 11, LAKE_TYPE_INT32, false);
    tf_add(s, info, "b", 12, LAKE_TYPE_STRING, false);
    tf_add(s, 0, "flag", 13, LAKE_TYPE_BOOLEAN, false);
    tf_add(s, 0, "raw", 14, LAKE_TYPE_BINARY, false);
    return s;
}

/* A data file: the path relative to the table and its stats (owned). */
typedef struct tf_file {
    char path[256];
    lake_parquet_file_stats *stats;
    int64_t first, last; /* ids k in [first, last] */
} tf_file;

/* Write rows first..last to <root>/<prefix>/data/<name>.parquet. */
static void
tf_write(const char *root, const char *prefix, lake_schema *s, bool local_ts, const char *name,
         int64_t first, int64_t last, tf_file *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->path, sizeof(out->path), "data/%s.parquet", name);
    out->first = first, out->last = last;
    char full[PATH_MAX], dir[PATH_MAX];
    snprintf(full, sizeof(full), "%s/%s/%s", root, prefix, out->path);
    assert_int_equal(lb_dirname(full, dir, sizeof(dir)), 0);
    assert_int_equal(lb_mkdir_p(dir, 0755), 0);
    int fd = open(full, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    lake_parquet_writer *w = NULL;
    lb_err err = {0};
    if (lake_parquet_writer_new_fd(s, NULL, fd, &w, &err))
        fail_msg("parquet writer: %s", err.message);
    for (int64_t k = first; k <= last; k++) {
        char nm[32], b[16], tag0[16];
        snprintf(nm, sizeof(nm), "row %lld", (long long)k);
        snprintf(b, sizeof(b), "b%lld", (long long)(k % 7));
        snprintf(tag0, sizeof(tag0), "t%lld", (long long)(k % 3));
        uint8_t raw[4] = {(uint8_t)k, (uint8_t)(k >> 8), 0xff, 0};
        lake_value tags[2] = {lake_str(tag0), lake_null()};
        lake_value info[2] = {lake_int(k % 5 == 0 ? 0 : -(int64_t)k),
                              k % 4 ? lake_str(b) : lake_null()};
        lake_value row[14];
        size_t n = 0;
        row[n++] = lake_int(k);
        row[n++] = k % 10 == 9 ? lake_null() : lake_str(nm);
        row[n++] = lake_decimal((lake_int128)k * 137 - 5000);
        row[n++] = lake_int(18000 + k);                          /* 2019-04-14 + k days */
        row[n++] = lake_int(1700000000123456LL + k * 1000003LL); /* µs */
        if (local_ts)
            row[n++] = lake_int(1600000000000001LL - k * 999LL);
        row[n++] = k % 6 == 5 ? lake_null() : lake_double((double)k / 8.0 - 3.0);
        row[n++] = k % 3 == 0 ? lake_null() : lake_list(tags, (size_t)(k % 2 + 1));
        row[n++] = k % 8 == 7 ? lake_null() : lake_struct(info, 2);
        row[n++] = lake_bool(k % 2 == 0);
        row[n++] = lake_bytes(raw, 3);
        if (lake_parquet_write_row(w, row, n))
            fail_msg("row %lld: %s", (long long)k, lake_parquet_writer_error(w));
    }
    if (lake_parquet_writer_close(w, &out->stats))
        fail_msg("closing %s: %s", full, lake_parquet_writer_error(w));
    lake_parquet_writer_free(w);
    assert_int_equal(close(fd), 0);
}

static lake_data_file
tf_data_file(const tf_file *f)
{
    lake_data_file d = {.path = f->path, .stats = f->stats, .modification_ms = 0};
    return d;
}

static void
tf_free(tf_file *f)
{
    lake_parquet_file_stats_free(f->stats);
    f->stats = NULL;
}

/* Run a lake/tests script with one argument; parse its JSON output. */
static json_t *
tf_script(const char *scratch, const char *script, const char *arg)
{
    char cmd[5 * PATH_MAX], errfile[PATH_MAX];
    snprintf(errfile, sizeof(errfile), "%s/node-stderr.txt", scratch);
    snprintf(cmd, sizeof(cmd), "node '%s/lake/tests/%s' '%s' 2>'%s'", tu_project_root(), script,
             arg, errfile);
    lb_buf out = LB_BUF_INIT;
    int rc = tu_run(cmd, &out);
    if (rc != 0) {
        lb_buf err = LB_BUF_INIT;
        lb_read_file(errfile, &err);
        fail_msg("%s %s exited %d:\n%.3000s", script, arg, rc, err.data ? err.data : "");
    }
    json_error_t jerr;
    json_t *j = json_loadb(out.data, out.len, 0, &jerr);
    if (!j)
        fail_msg("%s: bad JSON: %s", script, jerr.text);
    lb_buf_free(&out);
    return j;
}

static void tf_check_ids(json_t *rows, tf_file *const *files, size_t nfiles);

/* A reader script's view of the table under <root>/<prefix>; scratch
 * holds its stderr. */
static json_t *
tf_read(const char *scratch, const char *script, const char *root, const char *prefix)
{
    char dir[2 * PATH_MAX + 2];
    snprintf(dir, sizeof(dir), "%s/%s", root, prefix);
    return tf_script(scratch, script, dir);
}

/* The entry of a reader's "live" list for path (a string, or an object
 * with "path"), or NULL. */
static json_t *
tf_live_entry(json_t *got, const char *path)
{
    size_t k;
    json_t *e;
    json_array_foreach(json_object_get(got, "live"), k, e)
    {
        const char *p = json_is_string(e) ? json_string_value(e)
                                          : json_string_value(json_object_get(e, "path"));
        if (p && strcmp(p, path) == 0)
            return e;
    }
    return NULL;
}

/* The reader found exactly these live files, and their rows. */
static void
tf_check_live(json_t *got, tf_file *const *files, size_t n)
{
    json_t *live = json_object_get(got, "live");
    if (json_array_size(live) != n)
        fail_msg("reader found %zu live files, want %zu", json_array_size(live), n);
    for (size_t i = 0; i < n; i++)
        if (!tf_live_entry(got, files[i]->path))
            fail_msg("live file %s missing", files[i]->path);
    tf_check_ids(json_object_get(got, "rows"), files, n);
}

/* The ids in a reader's rows (JSON arrays, id first) must be exactly the
 * ids of the given files. */
static void
tf_check_ids(json_t *rows, tf_file *const *files, size_t nfiles)
{
    size_t want = 0;
    for (size_t i = 0; i < nfiles; i++)
        want += (size_t)(files[i]->last - files[i]->first + 1);
    if (json_array_size(rows) != want)
        fail_msg("reader saw %zu rows, the live files hold %zu", json_array_size(rows), want);
    char *seen = calloc(want, 1);
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        json_t *row =
            json_is_string(r) ? json_loads(json_string_value(r), 0, NULL) : json_incref(r);
        json_t *id = json_array_get(row, 0);
        long long v = json_is_string(id) ? strtoll(json_string_value(id), NULL, 10)
                                         : (long long)json_integer_value(id);
        size_t base = 0;
        bool found = false;
        for (size_t f = 0; f < nfiles && !found; f++) {
            if (v >= files[f]->first && v <= files[f]->last) {
                size_t slot = base + (size_t)(v - files[f]->first);
                if (seen[slot])
                    fail_msg("row id %lld read twice", v);
                seen[slot] = 1;
                found = true;
                char want_name[32];
                snprintf(want_name, sizeof(want_name), "row %lld", v);
                json_t *name = json_array_get(row, 1);
                if (v % 10 != 9)
                    assert_string_equal(json_string_value(name), want_name);
                else
                    assert_true(json_is_null(name));
            }
            base += (size_t)(files[f]->last - files[f]->first + 1);
        }
        if (!found)
            fail_msg("row id %lld is not in a live file", v);
        json_decref(row);
    }
    free(seen);
}

#endif
