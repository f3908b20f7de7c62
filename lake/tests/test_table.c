/*
 * test_table.c: the table model. One commit is one Iceberg snapshot and one
 * Delta version of the same files, read back by both spec-following
 * readers (iceberg_read.mjs, delta_read.mjs) as the same live files and
 * rows; the commit's summary is kept by both; refused input writes nothing
 * in either format; and a table whose Delta log a crash left one commit
 * behind Iceberg is brought level at the next open, so that both formats
 * again list the same files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delta.h"
#include "errors.h"
#include "fileio.h"
#include "iceberg.h"
#include "store.h"
#include "table.h"
#include "testutil.h"

#include "lake_test.h"
#include "table_files.h"

static lake_table *
open_model(lake_store *st, const char *prefix, lake_schema *s)
{
    lake_table *t = NULL;
    lb_err err = {0};
    int rc = lake_table_open(st, prefix, s, NULL, &t, &err);
    if (rc)
        fail_msg("open: %s (%s)", err.message, lb_strerror(rc));
    return t;
}

/* Both readers see exactly these live files, with these rows. */
static void
check_both(const char *prefix, tf_file *const *files, size_t n)
{
    json_t *ice = tf_read(g_dir, "iceberg_read.mjs", g_dir, prefix);
    json_t *delta = tf_read(g_dir, "delta_read.mjs", g_dir, prefix);
    tf_check_live(ice, files, n);
    tf_check_live(delta, files, n);
    json_decref(ice);
    json_decref(delta);
}

static void
test_one_commit_both_formats(void **state)
{
    (void)state;
    const char *prefix = "lake/db/public/model";
    lake_schema *s = tf_schema(false);
    lake_store *st = lt_open_store(g_dir);
    lake_table *t = open_model(st, prefix, s);
    assert_int_equal(lake_table_live_count(t), 0);

    tf_file a, b, c;
    tf_write(g_dir, prefix, s, false, "a", 0, 99, &a);
    tf_write(g_dir, prefix, s, false, "b", 100, 149, &b);
    lake_data_file adds[2] = {tf_data_file(&a), tf_data_file(&b)};
    const char *summary[] = {"lakebase.lsn", "0/16B3F10", NULL};
    lake_commit c1 = {.adds = adds, .nadds = 2, .summary = summary};
    lb_err err = {0};
    if (lake_table_commit(t, &c1, &err))
        fail_msg("commit: %s", err.message);
    assert_int_equal(lake_table_live_count(t), 2);
    assert_string_equal(lake_table_summary_value(t, "lakebase.lsn"), "0/16B3F10");
    tf_file *both[] = {&a, &b};
    check_both(prefix, both, 2);

    /* replace b with c */
    tf_write(g_dir, prefix, s, false, "c", 150, 180, &c);
    lake_data_file add_c = tf_data_file(&c);
    const char *rm[] = {b.path};
    const char *summary2[] = {"lakebase.lsn", "0/2000000", NULL};
    lake_commit c2 = {
        .adds = &add_c, .nadds = 1, .removes = rm, .nremoves = 1, .summary = summary2};
    assert_int_equal(lake_table_commit(t, &c2, &err), 0);
    tf_file *now[] = {&a, &c};
    check_both(prefix, now, 2);
    lake_table_close(t);

    /* reopened: the same live set and the newest summary, from either format */
    t = open_model(st, prefix, s);
    assert_int_equal(lake_table_live_count(t), 2);
    assert_string_equal(lake_table_live_path(t, 0), a.path);
    assert_string_equal(lake_table_live_path(t, 1), c.path);
    assert_string_equal(lake_table_summary_value(t, "lakebase.lsn"), "0/2000000");
    json_t *delta = tf_read(g_dir, "delta_read.mjs", g_dir, prefix);
    json_t *lb = json_object_get(json_object_get(delta, "lastCommit"), "lakebase");
    assert_string_equal(json_string_value(json_object_get(lb, "lakebase.lsn")), "0/2000000");
    json_decref(delta);

    lake_table_close(t);
    lake_store_close(st);
    tf_free(&a), tf_free(&b), tf_free(&c);
    lake_schema_free(s);
}

/* A file another table owns, shared by reference ('/' and its key):
 * committed without statistics (rows and size only), listed by Iceberg at
 * the store's URL + the key and added by Delta as that absolute URI, found
 * again at reopen in both formats, and removed like any other. A path
 * that leaves the store is refused. */
static void
test_shared_file_by_reference(void **state)
{
    (void)state;
    const char *owner = "lake/db/public/leaf", *prefix = "lake/db/public/parent";
    lake_schema *s = tf_schema(false);
    lake_store *st = lt_open_store(g_dir);
    tf_file a, b;
    tf_write(g_dir, owner, s, false, "a", 0, 99, &a);
    tf_write(g_dir, prefix, s, false, "b", 100, 149, &b);
    char shared[300];
    snprintf(shared, sizeof(shared), "/%s/%s", owner, a.path);
    lake_table *t = open_model(st, prefix, s);
    lake_data_file adds[2] = {
        tf_data_file(&b),
        {.path = shared, .file_bytes = (int64_t)a.stats->file_bytes, .records = a.stats->num_rows}};
    lake_commit c1 = {.adds = adds, .nadds = 2};
    lb_err err = {0};
    if (lake_table_commit(t, &c1, &err))
        fail_msg("commit: %s", err.message);
    assert_string_equal(lake_table_summary_value(t, "total-records"), "150");
    lake_table_close(t);

    t = open_model(st, prefix, s); /* both formats agree, or open would level them */
    assert_int_equal(lake_table_live_count(t), 2);
    assert_string_equal(lake_table_live_path(t, 0), shared);
    int64_t rows = 0, bytes = 0;
    assert_int_equal(lake_table_live_size(t, 0, &rows, &bytes), 0);
    assert_int_equal(rows, 100);
    assert_int_equal(bytes, (int64_t)a.stats->file_bytes);
    char want[600], path[600];
    snprintf(want, sizeof(want), "\"%s%s\"", lake_store_url(st), shared);
    snprintf(path, sizeof(path), "%s/%s/_delta_log/00000000000000000001.json", g_dir, prefix);
    lb_buf log = LB_BUF_INIT;
    assert_int_equal(lb_read_file(path, &log), 0);
    lb_buf_append(&log, "", 1);
    assert_non_null(strstr((const char *)log.data, want));
    lb_buf_free(&log);

    /* the path must stay inside the store */
    lake_data_file bad = {.path = "/../x.parquet", .file_bytes = 100, .records = 1};
    lake_commit c2 = {.adds = &bad, .nadds = 1};
    assert_int_equal(lake_table_commit(t, &c2, &err), LB_EVALUE);
    /* a file of the table itself still needs its statistics */
    lake_data_file nostats = {.path = "data/n.parquet", .file_bytes = 100, .records = 1};
    lake_commit c3 = {.adds = &nostats, .nadds = 1};
    assert_int_equal(lake_table_commit(t, &c3, &err), LB_EVALUE);

    const char *rm[] = {shared};
    lake_commit c4 = {.removes = rm, .nremoves = 1};
    assert_int_equal(lake_table_commit(t, &c4, &err), 0);
    lake_table_close(t);
    t = open_model(st, prefix, s);
    assert_int_equal(lake_table_live_count(t), 1);
    assert_string_equal(lake_table_live_path(t, 0), b.path);
    lake_table_close(t);
    lake_store_close(st);
    tf_free(&a), tf_free(&b);
    lake_schema_free(s);
}

/* Refused commits (checked once for all formats) write nothing anywhere. */
static void
test_refused_writes_nothing(void **state)
{
    (void)state;
    const char *prefix = "lake/db/public/refused";
    lake_schema *s = tf_schema(false);
    lake_store *st = lt_open_store(g_dir);
    lake_table *t = open_model(st, prefix, s);
    tf_file a;
    tf_write(g_dir, prefix, s, false, "a", 0, 9, &a);
    lake_data_file add = tf_data_file(&a);
    lake_commit c = {.adds = &add, .nadds = 1};
    lb_err err = {0};
    assert_int_equal(lake_table_commit(t, &c, &err), 0);

    const char *rm[] = {"data/nope.parquet"};
    lake_commit bad = {.removes = rm, .nremoves = 1};
    assert_int_equal(lake_table_commit(t, &bad, &err), LB_ENOTFOUND);
    assert_non_null(strstr(err.message, "not a live file"));
    lake_commit twice = {.adds = &add, .nadds = 1};
    assert_int_equal(lake_table_commit(t, &twice, &err), LB_EVALUE);
    assert_non_null(strstr(err.message, "already in the table"));
    const char *reserved[] = {"total-records", "7", NULL};
    tf_file b;
    tf_write(g_dir, prefix, s, false, "b", 10, 19, &b);
    lake_data_file add_b = tf_data_file(&b);
    lake_commit bad_summary = {.adds = &add_b, .nadds = 1, .summary = reserved};
    assert_int_equal(lake_table_commit(t, &bad_summary, &err), LB_EVALUE);
    assert_non_null(strstr(err.message, "reserved"));
    lake_commit empty = {0};
    assert_int_equal(lake_table_commit(t, &empty, &err), -EINVAL);

    /* still one Iceberg snapshot after creation and Delta version 1 */
    lake_iceberg_table *ice = lake_table_format_state(t, &lake_iceberg_format);
    lake_delta_table *delta = lake_table_format_state(t, &lake_delta_format);
    assert_int_equal(lake_iceberg_version(ice), 2);
    assert_int_equal(lake_delta_version(delta), 1);
    tf_file *one[] = {&a};
    check_both(prefix, one, 1);
    lake_table_close(t);
    lake_store_close(st);
    tf_free(&a), tf_free(&b);
    lake_schema_free(s);
}

/* A crash after the Iceberg commit and before the Delta one (made here by
 * committing to Iceberg alone): the next open brings Delta level, and both
 * formats list the same files again. */
static void
test_lagging_format_brought_level(void **state)
{
    (void)state;
    const char *prefix = "lake/db/public/lagging";
    lake_schema *s = tf_schema(false);
    lake_store *st = lt_open_store(g_dir);
    lake_table *t = open_model(st, prefix, s);
    tf_file a, b, c;
    tf_write(g_dir, prefix, s, false, "a", 0, 9, &a);
    tf_write(g_dir, prefix, s, false, "b", 10, 19, &b);
    lake_data_file adds[2] = {tf_data_file(&a), tf_data_file(&b)};
    lake_commit c1 = {.adds = adds, .nadds = 2};
    lb_err err = {0};
    assert_int_equal(lake_table_commit(t, &c1, &err), 0);
    lake_table_close(t);

    /* Iceberg alone: remove a, add c */
    lake_iceberg_table *ice = NULL;
    assert_int_equal(lake_iceberg_open(st, prefix, s, NULL, &ice, &err), 0);
    tf_write(g_dir, prefix, s, false, "c", 20, 29, &c);
    lake_data_file add_c = tf_data_file(&c);
    const char *rm[] = {a.path};
    assert_int_equal(lake_iceberg_commit(ice, &add_c, 1, rm, 1, NULL, &err), 0);
    lake_iceberg_close(ice);
    json_t *before = tf_read(g_dir, "delta_read.mjs", g_dir, prefix);
    assert_int_equal(json_array_size(json_object_get(before, "live")), 2); /* a and b */
    json_decref(before);

    t = open_model(st, prefix, s);
    tf_file *now[] = {&b, &c};
    check_both(prefix, now, 2);
    json_t *delta = tf_read(g_dir, "delta_read.mjs", g_dir, prefix);
    assert_int_equal(json_integer_value(json_object_get(delta, "version")), 2);
    json_t *lb = json_object_get(json_object_get(delta, "lastCommit"), "lakebase");
    assert_string_equal(json_string_value(json_object_get(lb, "lakebase.levelled-with")),
                        "iceberg");
    json_decref(delta);
    lake_table_close(t);

    /* a second open finds them level and commits nothing */
    t = open_model(st, prefix, s);
    delta = tf_read(g_dir, "delta_read.mjs", g_dir, prefix);
    assert_int_equal(json_integer_value(json_object_get(delta, "version")), 2);
    json_decref(delta);
    lake_table_close(t);
    lake_store_close(st);
    tf_free(&a), tf_free(&b), tf_free(&c);
    lake_schema_free(s);
}

/* A data file that Iceberg lists but the store lost cannot be re-added to
 * Delta: open fails and says which file. */
static void
test_level_missing_file(void **state)
{
    (void)state;
    const char *prefix = "lake/db/public/lost";
    lake_schema *s = tf_schema(false);
    lake_store *st = lt_open_store(g_dir);
    lake_table *t = open_model(st, prefix, s);
    lake_table_close(t);
    lake_iceberg_table *ice = NULL;
    lb_err err = {0};
    assert_int_equal(lake_iceberg_open(st, prefix, s, NULL, &ice, &err), 0);
    tf_file a;
    tf_write(g_dir, prefix, s, false, "a", 0, 9, &a);
    lake_data_file add = tf_data_file(&a);
    assert_int_equal(lake_iceberg_commit(ice, &add, 1, NULL, 0, NULL, &err), 0);
    lake_iceberg_close(ice);
    char full[PATH_MAX + 300];
    snprintf(full, sizeof(full), "%s/%s/%s", g_dir, prefix, a.path);
    assert_int_equal(unlink(full), 0);
    assert_int_equal(lake_table_open(st, prefix, s, NULL, &t, &err), LB_ENOTFOUND);
    assert_non_null(strstr(err.message, "is missing"));
    assert_non_null(strstr(err.message, "level with iceberg"));
    lake_store_close(st);
    tf_free(&a);
    lake_schema_free(s);
}

/* tf_schema(false) evolved: "name" (2) renamed "label", "flag" (13)
 * dropped, a new boolean (15) where it was, named name15 (first "name":
 * the physical name of 2 keeps "name", so 15's is "name_15"), and amount
 * (3) decimal(amount_p, 2). Rows of tf_write() fit it. */
static lake_schema *
evolved(const char *name15, int amount_p)
{
    lake_schema *s = NULL;
    assert_int_equal(lake_schema_new(&s), 0);
    tf_add(s, 0, "id", 1, LAKE_TYPE_INT64, true);
    tf_add(s, 0, "label", 2, LAKE_TYPE_STRING, false);
    lake_field am = {.name = "amount",
                     .field_id = 3,
                     .type = LAKE_TYPE_DECIMAL,
                     .precision = amount_p,
                     .scale = 2};
    assert_int_equal(lake_schema_add(s, 0, &am, NULL), 0);
    tf_add(s, 0, "day", 4, LAKE_TYPE_DATE, false);
    tf_add(s, 0, "ts", 5, LAKE_TYPE_TIMESTAMPTZ, false);
    tf_add(s, 0, "score", 7, LAKE_TYPE_DOUBLE, false);
    int tags = tf_add(s, 0, "tags", 8, LAKE_TYPE_LIST, false);
    tf_add(s, tags, "element", 9, LAKE_TYPE_STRING, false);
    int info = tf_add(s, 0, "info", 10, LAKE_TYPE_STRUCT, false);
    tf_add(s, info, "a", 11, LAKE_TYPE_INT32, false);
    tf_add(s, info, "b", 12, LAKE_TYPE_STRING, false);
    tf_add(s, 0, name15, 15, LAKE_TYPE_BOOLEAN, false);
    tf_add(s, 0, "raw", 14, LAKE_TYPE_BINARY, false);
    return s;
}

static json_t *
load_json(const char *prefix, const char *rel)
{
    char path[PATH_MAX + 300];
    snprintf(path, sizeof(path), "%s/%s/%s", g_dir, prefix, rel);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j)
        fail_msg("%s: %s", path, jerr.text);
    return j;
}

/* The actions of Delta version v, by kind (the last of each kind). */
static json_t *
delta_version(const char *prefix, int v)
{
    char path[PATH_MAX + 300];
    snprintf(path, sizeof(path), "%s/%s/_delta_log/%020d.json", g_dir, prefix, v);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("no Delta version %d", v);
    json_t *out = json_object();
    char line[65536];
    int nadd = 0, nremove = 0;
    while (fgets(line, sizeof(line), f)) {
        json_t *a = json_loads(line, 0, NULL);
        assert_non_null(a);
        const char *k = json_object_iter_key(json_object_iter(a));
        nadd += strcmp(k, "add") == 0;
        nremove += strcmp(k, "remove") == 0;
        json_object_set(out, k, json_object_get(a, k));
        json_decref(a);
    }
    fclose(f);
    json_object_set_new(out, "nadd", json_integer(nadd));
    json_object_set_new(out, "nremove", json_integer(nremove));
    return out;
}

/* The field of a Delta metaData's schema (top level) named name. */
static json_t *
delta_field(json_t *meta, const char *name)
{
    json_t *schema = json_loads(json_string_value(json_object_get(meta, "schemaString")), 0, NULL);
    assert_non_null(schema);
    size_t i;
    json_t *f, *hit = NULL;
    json_array_foreach(json_object_get(schema, "fields"), i, f)
    {
        if (strcmp(json_string_value(json_object_get(f, "name")), name) == 0)
            hit = json_incref(f);
    }
    json_decref(schema);
    if (!hit)
        fail_msg("no field \"%s\" in the Delta schema", name);
    return hit;
}

static void
expect_mapping(json_t *meta, const char *name, int id, const char *physical)
{
    json_t *f = delta_field(meta, name);
    json_t *md = json_object_get(f, "metadata");
    assert_int_equal(json_integer_value(json_object_get(md, "delta.columnMapping.id")), id);
    assert_string_equal(json_string_value(json_object_get(md, "delta.columnMapping.physicalName")),
                        physical);
    json_decref(f);
}

/* The Iceberg schema with schema-id sid, and its field with id (or NULL). */
static json_t *
ice_field(json_t *meta, int sid, int id)
{
    size_t i, k;
    json_t *s, *f;
    json_array_foreach(json_object_get(meta, "schemas"), i, s)
    {
        if (json_integer_value(json_object_get(s, "schema-id")) != sid)
            continue;
        json_array_foreach(json_object_get(s, "fields"), k, f)
        {
            if (json_integer_value(json_object_get(f, "id")) == id)
                return f;
        }
        return NULL;
    }
    fail_msg("no schema %d", sid);
    return NULL;
}

static int
count_files(const char *prefix, const char *dir)
{
    char path[PATH_MAX + 300];
    snprintf(path, sizeof(path), "%s/%s/%s", g_dir, prefix, dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/*
 * Schema evolution by field id, without rewriting files: rename, drop and
 * add go into a new Iceberg schema (schema-id, last-column-id, the
 * snapshot's schema-id) and a Delta metaData action with column mapping by
 * id, and the file written under the old schema stays live; a field keeps
 * its physical name across a rename, and a new field whose name another
 * field holds physically gets another; a schema change alone is a
 * metadata version without a snapshot; a decimal promotion keeps the id
 * but must replace every file; a type change that is no promotion is
 * refused at open and writes nothing.
 */
static void
test_schema_evolution(void **state)
{
    (void)state;
    const char *prefix = "lake/db/public/evolve";
    lake_schema *s1 = tf_schema(false);
    lake_store *st = lt_open_store(g_dir);
    lake_table *t = open_model(st, prefix, s1);
    assert_false(lake_table_schema_changed(t));
    assert_false(lake_table_field_existed(t, 1));
    tf_file a, b, c;
    tf_write(g_dir, prefix, s1, false, "a", 0, 99, &a);
    lake_data_file add_a = tf_data_file(&a);
    lake_commit c1 = {.adds = &add_a, .nadds = 1};
    lb_err err = {0};
    assert_int_equal(lake_table_commit(t, &c1, &err), 0);
    lake_table_close(t);

    /* rename, drop, add: one commit with a file written under the new schema */
    lake_schema *s2 = evolved("name", 12);
    t = open_model(st, prefix, s2);
    assert_true(lake_table_schema_changed(t));
    assert_false(lake_table_schema_retyped(t));
    assert_true(lake_table_field_existed(t, 2) && lake_table_field_existed(t, 13));
    assert_false(lake_table_field_existed(t, 15));
    tf_write(g_dir, prefix, s2, false, "b", 100, 149, &b);
    assert_string_equal(b.stats->columns[1].path, "name");    /* id 2, now "label" */
    assert_string_equal(b.stats->columns[9].path, "name_15"); /* the new "name" */
    lake_data_file add_b = tf_data_file(&b);
    const char *sum2[] = {"lakebase.lsn", "0/2000000", NULL};
    lake_commit c2 = {.adds = &add_b, .nadds = 1, .summary = sum2};
    if (lake_table_commit(t, &c2, &err))
        fail_msg("commit: %s", err.message);
    assert_false(lake_table_schema_changed(t));
    assert_int_equal(lake_table_live_count(t), 2); /* a stays */
    lake_table_close(t);

    json_t *m = load_json(prefix, "metadata/v3.metadata.json");
    assert_int_equal(json_array_size(json_object_get(m, "schemas")), 2);
    assert_int_equal(json_integer_value(json_object_get(m, "current-schema-id")), 1);
    assert_int_equal(json_integer_value(json_object_get(m, "last-column-id")), 15);
    json_t *snaps = json_object_get(m, "snapshots");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(snaps, 0), "schema-id")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(snaps, 1), "schema-id")), 1);
    assert_string_equal(json_string_value(json_object_get(ice_field(m, 1, 2), "name")), "label");
    assert_string_equal(json_string_value(json_object_get(ice_field(m, 0, 2), "name")), "name");
    assert_null(ice_field(m, 1, 13));
    assert_non_null(ice_field(m, 0, 13));
    json_decref(m);
    /* each manifest says its schema and schema-id, as Spark's do (the
     * reference manifest: a "schema" with its "schema-id", and "schema-id"):
     * the first snapshot's 0, the second's new manifest 1 */
    {
        char mdir[PATH_MAX + 300];
        snprintf(mdir, sizeof(mdir), "%s/%s/metadata", g_dir, prefix);
        DIR *dd = opendir(mdir);
        assert_non_null(dd);
        struct dirent *e;
        int seen[2] = {0, 0};
        while ((e = readdir(dd))) {
            if (!strstr(e->d_name, "-m") || !strstr(e->d_name, ".avro"))
                continue;
            char full[PATH_MAX + 600];
            snprintf(full, sizeof(full), "%s/%s", mdir, e->d_name);
            json_t *mf = tf_script(g_dir, "avro_read.mjs", full);
            json_t *hdr = json_object_get(mf, "meta");
            const char *sid = json_string_value(json_object_get(hdr, "schema-id"));
            json_t *hs = json_loads(json_string_value(json_object_get(hdr, "schema")), 0, NULL);
            assert_non_null(sid);
            assert_int_equal(json_integer_value(json_object_get(hs, "schema-id")), atoi(sid));
            assert_true(atoi(sid) == 0 || atoi(sid) == 1);
            seen[atoi(sid)]++;
            json_decref(hs);
            json_decref(mf);
        }
        closedir(dd);
        assert_true(seen[0] >= 1 && seen[1] >= 1);
    }
    json_t *d = delta_version(prefix, 2);
    json_t *meta = json_object_get(d, "metaData");
    assert_non_null(meta);
    json_t *conf = json_object_get(meta, "configuration");
    assert_string_equal(json_string_value(json_object_get(conf, "delta.columnMapping.mode")), "id");
    assert_string_equal(json_string_value(json_object_get(conf, "delta.columnMapping.maxColumnId")),
                        "15");
    expect_mapping(meta, "label", 2, "name");
    expect_mapping(meta, "name", 15, "name_15");
    json_t *tags = delta_field(meta, "tags"); /* the list element's id, by physical name */
    json_t *nested =
        json_object_get(json_object_get(tags, "metadata"), "delta.columnMapping.nested.ids");
    assert_int_equal(json_object_size(nested), 1);
    assert_int_equal(json_integer_value(json_object_get(nested, "tags.element")), 9);
    json_decref(tags);
    assert_int_equal(json_integer_value(json_object_get(d, "nadd")), 1);
    assert_int_equal(json_integer_value(json_object_get(d, "nremove")), 0);
    json_t *d0 = delta_version(prefix, 0);
    json_t *proto = json_object_get(d0, "protocol");
    assert_int_equal(json_integer_value(json_object_get(proto, "minReaderVersion")), 2);
    assert_int_equal(json_integer_value(json_object_get(proto, "minWriterVersion")), 5);
    expect_mapping(json_object_get(d0, "metaData"), "name", 2, "name");
    json_decref(d0);
    json_decref(d);

    /* a rename alone: a metadata version without a snapshot, a Delta
     * version with just commitInfo and metaData; the physical name stays */
    lake_schema *s3 = evolved("ok", 12);
    t = open_model(st, prefix, s3);
    assert_true(lake_table_schema_changed(t));
    lake_commit empty = {.summary = sum2};
    if (lake_table_commit(t, &empty, &err))
        fail_msg("schema-only commit: %s", err.message);
    lake_table_close(t);
    m = load_json(prefix, "metadata/v4.metadata.json");
    assert_int_equal(json_integer_value(json_object_get(m, "current-schema-id")), 2);
    assert_int_equal(json_array_size(json_object_get(m, "snapshots")), 2);
    assert_string_equal(json_string_value(json_object_get(ice_field(m, 2, 15), "name")), "ok");
    json_decref(m);
    d = delta_version(prefix, 3);
    assert_int_equal(json_integer_value(json_object_get(d, "nadd")), 0);
    assert_int_equal(json_integer_value(json_object_get(d, "nremove")), 0);
    expect_mapping(json_object_get(d, "metaData"), "ok", 15, "name_15");
    json_decref(d);
    /* reopened with the same schema: nothing pending, the Delta summary kept */
    t = open_model(st, prefix, s3);
    assert_false(lake_table_schema_changed(t));
    assert_string_equal(lake_table_summary_value(t, "lakebase.lsn"), "0/2000000");
    assert_int_equal(lake_table_commit(t, &empty, &err), -EINVAL);
    lake_table_close(t);

    /* decimal(12,2) -> decimal(14,2): the id stays, every file is replaced */
    lake_schema *s4 = evolved("ok", 14);
    t = open_model(st, prefix, s4);
    assert_true(lake_table_schema_changed(t) && lake_table_schema_retyped(t));
    tf_write(g_dir, prefix, s4, false, "c", 0, 149, &c);
    lake_data_file add_c = tf_data_file(&c);
    const char *rm_a[] = {a.path};
    lake_commit partial = {.adds = &add_c, .nadds = 1, .removes = rm_a, .nremoves = 1};
    int nmeta = count_files(prefix, "metadata"), nlog = count_files(prefix, "_delta_log");
    assert_int_equal(lake_table_commit(t, &partial, &err), LB_EVALUE);
    assert_non_null(strstr(err.message, "replace every live file"));
    assert_int_equal(count_files(prefix, "metadata"), nmeta);
    assert_int_equal(count_files(prefix, "_delta_log"), nlog);
    const char *rm_ab[] = {a.path, b.path};
    lake_commit whole = {.adds = &add_c, .nadds = 1, .removes = rm_ab, .nremoves = 2};
    if (lake_table_commit(t, &whole, &err))
        fail_msg("commit: %s", err.message);
    lake_table_close(t);
    m = load_json(prefix, "metadata/v5.metadata.json");
    assert_string_equal(json_string_value(json_object_get(ice_field(m, 3, 3), "type")),
                        "decimal(14, 2)");
    json_decref(m);
    tf_file *live[] = {&c};
    check_both(prefix, live, 1);

    /* a type change that is no promotion: refused, nothing written */
    lake_schema *s5 = evolved("ok", 14);
    lake__node *label = (lake__node *)lake__schema_node(s5, 2);
    assert_int_equal(label->field_id, 2);
    label->type = LAKE_TYPE_INT64;
    nmeta = count_files(prefix, "metadata");
    assert_int_equal(lake_table_open(st, prefix, s5, NULL, &t, &err), LB_ESCHEMA);
    assert_non_null(strstr(err.message, "not a promotion"));
    assert_int_equal(count_files(prefix, "metadata"), nmeta);

    lake_store_close(st);
    tf_free(&a), tf_free(&b), tf_free(&c);
    lake_schema_free(s1), lake_schema_free(s2), lake_schema_free(s3), lake_schema_free(s4);
    lake_schema_free(s5);
}

/* Replace the first `from` in file <g_dir>/<prefix>/<rel> with `to`. */
static void
edit_file(const char *prefix, const char *rel, const char *from, const char *to)
{
    char path[PATH_MAX + 300];
    snprintf(path, sizeof(path), "%s/%s/%s", g_dir, prefix, rel);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[1 << 16], out[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *at = strstr(buf, from);
    if (!at)
        fail_msg("\"%s\" not in %s", from, rel);
    snprintf(out, sizeof(out), "%.*s%s%s", (int)(at - buf), buf, to, at + strlen(from));
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(out, f);
    fclose(f);
}

/* Metadata this writer cannot evolve gets a clear error at open, and
 * nothing is written: a Delta table mapping columns by name, a Delta
 * schemaString that is not JSON, an Iceberg current-schema-id that names
 * no schema. */
static void
test_schema_bad_metadata(void **state)
{
    (void)state;
    const char *prefix = "lake/db/public/badmeta";
    lake_schema *s = tf_schema(false);
    lake_store *st = lt_open_store(g_dir);
    lake_table *t = open_model(st, prefix, s);
    lake_table_close(t);
    const char *v0 = "_delta_log/00000000000000000000.json";
    lb_err err = {0};
    lake_delta_table *d = NULL;

    edit_file(prefix, v0, "\"delta.columnMapping.mode\":\"id\"",
              "\"delta.columnMapping.mode\":\"name\"");
    assert_int_equal(lake_delta_open(st, prefix, s, NULL, &d, &err), LB_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "maps columns by name"));
    edit_file(prefix, v0, "\"delta.columnMapping.mode\":\"name\"",
              "\"delta.columnMapping.mode\":\"id\"");
    assert_int_equal(lake_delta_open(st, prefix, s, NULL, &d, &err), 0);
    assert_false(lake_delta_schema_pending(d));
    lake_delta_close(d);

    edit_file(prefix, v0, "\"schemaString\":\"{", "\"schemaString\":\"x{");
    assert_int_equal(lake_delta_open(st, prefix, s, NULL, &d, &err), LB_EPARSE);
    assert_non_null(strstr(err.message, "schemaString is not JSON"));

    lake_iceberg_table *ice = NULL;
    edit_file(prefix, "metadata/v1.metadata.json", "\"current-schema-id\": 0",
              "\"current-schema-id\": 7");
    assert_int_equal(lake_iceberg_open(st, prefix, s, NULL, &ice, &err), LB_EPARSE);
    assert_non_null(strstr(err.message, "current schema 7 is not in the metadata"));
    assert_int_equal(count_files(prefix, "metadata"), 2); /* v1 and its hint */
    assert_int_equal(count_files(prefix, "_delta_log"), 1);

    lake_store_close(st);
    lake_schema_free(s);
}

/* int16 -> int32 is no change to Iceberg ("int" both) but one to Delta
 * ("short" -> "integer"): the model still calls it a type change, and a
 * commit that keeps the old files is refused before either format writes. */
static void
test_schema_retyped_for_delta_only(void **state)
{
    (void)state;
    const char *prefix = "lake/db/public/short";
    lake_schema *s1 = tf_schema(false), *s2 = tf_schema(false);
    lake__node *a1 = (lake__node *)lake__schema_node(s1, 10);
    assert_int_equal(a1->field_id, 11);
    a1->type = LAKE_TYPE_INT16;
    lake_store *st = lt_open_store(g_dir);
    lake_table *t = open_model(st, prefix, s1);
    tf_file a, b;
    tf_write(g_dir, prefix, s1, false, "a", 0, 9, &a);
    lake_data_file add_a = tf_data_file(&a);
    lake_commit c1 = {.adds = &add_a, .nadds = 1};
    lb_err err = {0};
    assert_int_equal(lake_table_commit(t, &c1, &err), 0);
    lake_table_close(t);

    t = open_model(st, prefix, s2);
    assert_true(lake_table_schema_changed(t) && lake_table_schema_retyped(t));
    tf_write(g_dir, prefix, s2, false, "b", 10, 19, &b);
    lake_data_file add_b = tf_data_file(&b);
    lake_commit keep = {.adds = &add_b, .nadds = 1};
    int nmeta = count_files(prefix, "metadata"), nlog = count_files(prefix, "_delta_log");
    assert_int_equal(lake_table_commit(t, &keep, &err), LB_EVALUE);
    assert_non_null(strstr(err.message, "replace every live file"));
    assert_int_equal(count_files(prefix, "metadata"), nmeta);
    assert_int_equal(count_files(prefix, "_delta_log"), nlog);
    const char *rm[] = {a.path};
    lake_commit replace = {.adds = &add_b, .nadds = 1, .removes = rm, .nremoves = 1};
    if (lake_table_commit(t, &replace, &err))
        fail_msg("commit: %s", err.message);
    lake_table_close(t);
    tf_file *live[] = {&b};
    check_both(prefix, live, 1);
    lake_store_close(st);
    tf_free(&a), tf_free(&b);
    lake_schema_free(s1), lake_schema_free(s2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_commit_both_formats),
        cmocka_unit_test(test_refused_writes_nothing),
        cmocka_unit_test(test_lagging_format_brought_level),
        cmocka_unit_test(test_level_missing_file),
        cmocka_unit_test(test_shared_file_by_reference),
        cmocka_unit_test(test_schema_evolution),
        cmocka_unit_test(test_schema_bad_metadata),
        cmocka_unit_test(test_schema_retyped_for_delta_only),
    };
    return lake_test_run("lake-table", tests);
}
