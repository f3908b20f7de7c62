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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_commit_both_formats),
        cmocka_unit_test(test_refused_writes_nothing),
        cmocka_unit_test(test_lagging_format_brought_level),
        cmocka_unit_test(test_level_missing_file),
        cmocka_unit_test(test_shared_file_by_reference),
    };
    return lake_test_run("lake-table", tests);
}
