/*
 * test_delta.c: Delta tables written in several commits read back, through
 * their log, as exactly the live files. The reader is delta_read.mjs: our
 * own replay per the Delta protocol (DuckDB's delta extension cannot be
 * downloaded here), which also checks every action for its required fields,
 * reads the live files' rows with DuckDB, and recomputes each column's
 * min/max/null count to compare with add.stats.
 *
 * Also: the protocol is 1/2, or 3/7 with timestampNtz when a column is a
 * timestamp without time zone; log entries are never overwritten (a second
 * writer of a version gets LB_ECONFLICT, racing processes have exactly one
 * winner, a failed fsync leaves no entry); refused input (a remove of a
 * file that is not live, statistics of another schema, bad paths, another
 * schema at reopen) writes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <sys/wait.h>

#include "delta.h"
#include "errors.h"
#include "store.h"
#include "testutil.h"

#include "lake_test.h"

#include "table_files.h"

/* The message of the last failed call. */
static lb_err g_err;

static lake_delta_table *
open_table(lake_store *st, const char *prefix, lake_schema *s)
{
    lake_delta_table *t = NULL;
    lb_err err = {0};
    int rc = lake_delta_open(st, prefix, s, NULL, &t, &err);
    if (rc)
        fail_msg("open: %s (%s)", err.message, lb_strerror(rc));
    return t;
}

static void
commit(lake_delta_table *t, tf_file *const *adds, size_t nadds, const char *const *removes,
       size_t nremoves, int64_t want_version)
{
    lake_data_file df[8];
    for (size_t i = 0; i < nadds; i++)
        df[i] = tf_data_file(adds[i]);
    int64_t v = -1;
    int rc = lake_delta_commit(t, df, nadds, removes, nremoves, &v, &g_err);
    if (rc)
        fail_msg("commit: %s (%s)", g_err.message, lb_strerror(rc));
    assert_int_equal(v, want_version);
}

static json_t *
read_table(const char *root, const char *prefix)
{
    return tf_read(g_dir, "delta_read.mjs", root, prefix);
}

/* The live files the reader found are exactly these, with these rows and
 * sizes. */
static void
check_table(json_t *got, tf_file *const *files, size_t n, int64_t version)
{
    assert_int_equal(json_integer_value(json_object_get(got, "version")), version);
    tf_check_live(got, files, n);
    for (size_t i = 0; i < n; i++) {
        json_t *f = tf_live_entry(got, files[i]->path);
        assert_int_equal(json_integer_value(json_object_get(f, "size")),
                         files[i]->stats->file_bytes);
        json_t *stats = json_object_get(f, "stats");
        assert_int_equal(json_integer_value(json_object_get(stats, "numRecords")),
                         files[i]->last - files[i]->first + 1);
    }
}

static void
check_stats(json_t *got, bool local_ts)
{
    json_t *checked = json_object_get(got, "checked");
    const char *cols[] = {"id", "name", "amount", "day", "ts", "score", "ts_local"};
    for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]) - (local_ts ? 0 : 1); c++) {
        bool seen = false;
        size_t i;
        json_t *e;
        json_array_foreach(checked, i, e)
        {
            if (strcmp(json_string_value(json_object_get(e, "column")), cols[c]) == 0)
                seen = true;
        }
        if (!seen)
            fail_msg("no min/max for column %s in any add.stats", cols[c]);
    }
    size_t i;
    json_t *e;
    json_array_foreach(checked, i, e)
    {
        const char *col = json_string_value(json_object_get(e, "column"));
        const char *mn = json_string_value(json_object_get(e, "min"));
        const char *mx = json_string_value(json_object_get(e, "max"));
        json_t *smin = json_object_get(e, "stats_min"), *smax = json_object_get(e, "stats_max");
        assert_int_equal(json_integer_value(json_object_get(e, "stats_nulls")),
                         json_integer_value(json_object_get(e, "nulls")));
        if (json_is_integer(smin) && json_is_integer(smax)) {
            assert_int_equal(json_integer_value(smin), strtoll(mn, NULL, 10));
            assert_int_equal(json_integer_value(smax), strtoll(mx, NULL, 10));
        } else if (json_is_number(smin)) {
            assert_true(fabs(json_number_value(smin) - strtod(mn, NULL)) < 1e-9);
            assert_true(fabs(json_number_value(smax) - strtod(mx, NULL)) < 1e-9);
        } else if (strcmp(col, "ts") == 0 || strcmp(col, "ts_local") == 0) {
            /* stats: 2023-11-14T22:13:20.123Z (floored to ms); DuckDB:
             * 2023-11-14 22:13:20.123456(+00) */
            char want[32];
            snprintf(want, sizeof(want), "%.10sT%.12s", mn, mn + 11);
            if (strncmp(json_string_value(smin), want, 23) != 0)
                fail_msg("%s min: stats %s, data %s", col, json_string_value(smin), mn);
            snprintf(want, sizeof(want), "%.10sT%.12s", mx, mx + 11);
            if (strncmp(json_string_value(smax), want, 23) != 0)
                fail_msg("%s max: stats %s, data %s", col, json_string_value(smax), mx);
            const char *z = json_string_value(smin) + strlen(json_string_value(smin)) - 1;
            assert_int_equal(*z == 'Z', strcmp(col, "ts") == 0);
        } else {
            assert_string_equal(json_string_value(smin), mn);
            assert_string_equal(json_string_value(smax), mx);
        }
    }
}

static int
count_log_entries(const char *root, const char *prefix)
{
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof(cmd), "ls '%s/%s/_delta_log' | grep -c '^[0-9]\\{20\\}\\.json$'", root,
             prefix);
    lb_buf out = LB_BUF_INIT;
    tu_run(cmd, &out);
    int n = out.data ? atoi(out.data) : 0;
    lb_buf_free(&out);
    return n;
}

static void
test_commits_adds_and_removes(void **state)
{
    (void)state;
    for (int local = 0; local < 2; local++) {
        char root[PATH_MAX];
        snprintf(root, sizeof(root), "%s/store%d", g_dir, local);
        lake_store *st = lt_open_store(root);
        char *prefix = NULL;
        assert_int_equal(
            lake_table_prefix("db", "public", local ? "events" : "Orders/2024", &prefix), 0);
        lake_schema *s = tf_schema(local);
        lake_delta_table *t = open_table(st, prefix, s);
        assert_int_equal(lake_delta_version(t), 0);

        tf_file f[6];
        tf_write(root, prefix, s, local, "f1", 0, 99, &f[0]);
        tf_write(root, prefix, s, local, "f2", 100, 149, &f[1]);
        tf_write(root, prefix, s, local, "f3", 150, 150, &f[2]);
        tf_write(root, prefix, s, local, "sub dir/f4 é", 1000, 1299, &f[3]);
        tf_write(root, prefix, s, local, "f5", 2000, 2009, &f[4]);
        tf_write(root, prefix, s, local, "f6", 3000, 3000, &f[5]);

        tf_file *v1[] = {&f[0], &f[1]};
        commit(t, v1, 2, NULL, 0, 1);
        json_t *got = read_table(root, prefix);
        check_table(got, v1, 2, 1);
        json_t *proto = json_object_get(got, "protocol");
        /* every field has an id: column mapping by id, reader 2 / writer 5, or
         * the columnMapping feature next to timestampNtz */
        assert_int_equal(json_integer_value(json_object_get(proto, "minReaderVersion")),
                         local ? 3 : 2);
        assert_int_equal(json_integer_value(json_object_get(proto, "minWriterVersion")),
                         local ? 7 : 5);
        if (local) {
            for (int k = 0; k < 2; k++) {
                json_t *fl = json_object_get(proto, k ? "writerFeatures" : "readerFeatures");
                assert_int_equal(json_array_size(fl), 2);
                assert_string_equal(json_string_value(json_array_get(fl, 0)), "columnMapping");
                assert_string_equal(json_string_value(json_array_get(fl, 1)), "timestampNtz");
            }
        } else {
            assert_null(json_object_get(proto, "readerFeatures"));
        }
        json_t *schema = json_object_get(json_object_get(got, "metaData"), "schema");
        json_t *fields = json_object_get(schema, "fields");
        assert_string_equal(json_string_value(json_object_get(json_array_get(fields, 4), "type")),
                            "timestamp");
        if (local)
            assert_string_equal(
                json_string_value(json_object_get(json_array_get(fields, 5), "type")),
                "timestamp_ntz");
        assert_string_equal(json_string_value(json_object_get(json_array_get(fields, 2), "type")),
                            "decimal(12,2)");
        assert_false(json_is_true(json_object_get(json_array_get(fields, 0), "nullable")));
        json_decref(got);

        tf_file *v2[] = {&f[2]};
        commit(t, v2, 1, NULL, 0, 2);
        const char *rm3[] = {f[0].path};
        tf_file *v3[] = {&f[3]};
        commit(t, v3, 1, rm3, 1, 3); /* remove one, add one */
        const char *rm4[] = {f[1].path, f[2].path};
        tf_file *v4[] = {&f[4], &f[5]};
        commit(t, v4, 2, rm4, 2, 4);
        const char *rm5[] = {f[5].path};
        commit(t, NULL, 0, rm5, 1, 5); /* remove only */

        got = read_table(root, prefix);
        tf_file *live[] = {&f[3], &f[4]};
        check_table(got, live, 2, 5);
        check_stats(got, local);
        json_decref(got);
        assert_int_equal(lake_delta_live_count(t), 2);

        /* a fresh handle replays to the same state */
        lake_delta_table *t2 = open_table(st, prefix, s);
        assert_int_equal(lake_delta_version(t2), 5);
        assert_int_equal(lake_delta_live_count(t2), 2);
        assert_string_equal(lake_delta_live_path(t2, 0), f[4].path);
        assert_string_equal(lake_delta_live_path(t2, 1), f[3].path);
        lake_delta_close(t2);

        lake_delta_close(t);
        for (int i = 0; i < 6; i++)
            tf_free(&f[i]);
        lake_schema_free(s);
        free(prefix);
        lake_store_close(st);
    }
}

static void
test_refused_input_writes_nothing(void **state)
{
    (void)state;
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/refused", g_dir);
    lake_store *st = lt_open_store(root);
    const char *prefix = "lake/db/s/t";
    lake_schema *s = tf_schema(false);
    lake_delta_table *t = open_table(st, prefix, s);
    tf_file a, other;
    tf_write(root, prefix, s, false, "a", 0, 9, &a);
    tf_file *adds[] = {&a};
    commit(t, adds, 1, NULL, 0, 1);

    /* remove of a file that is not live */
    const char *rm[] = {"data/nope.parquet"};
    assert_int_equal(lake_delta_commit(t, NULL, 0, rm, 1, NULL, &g_err), LB_ENOTFOUND);
    assert_non_null(strstr(g_err.message, "not a live file"));
    /* removing twice */
    const char *rm2[] = {a.path, a.path};
    assert_int_equal(lake_delta_commit(t, NULL, 0, rm2, 2, NULL, &g_err), LB_EVALUE);
    /* adding a file already live */
    lake_data_file df = tf_data_file(&a);
    assert_int_equal(lake_delta_commit(t, &df, 1, NULL, 0, NULL, &g_err), LB_EVALUE);
    assert_non_null(strstr(g_err.message, "already in the table"));

    /* statistics of a file with another schema */
    lake_schema *s2 = tf_schema(true);
    tf_write(root, prefix, s2, true, "other", 0, 3, &other);
    df = tf_data_file(&other);
    assert_int_equal(lake_delta_commit(t, &df, 1, NULL, 0, NULL, &g_err), LB_EVALUE);
    assert_non_null(strstr(g_err.message, "columns"));
    /* same column count, but a field id moved */
    lake_parquet_file_stats *st2 = a.stats;
    int32_t saved = st2->columns[3].field_id;
    st2->columns[3].field_id = 99;
    df = tf_data_file(&a);
    df.path = "data/renamed.parquet";
    assert_int_equal(lake_delta_commit(t, &df, 1, NULL, 0, NULL, &g_err), LB_EVALUE);
    assert_non_null(strstr(g_err.message, "field id 99"));
    st2->columns[3].field_id = saved;
    /* a bound of the wrong width */
    size_t saved_len = st2->columns[0].min_len;
    st2->columns[0].min_len = 3;
    assert_int_equal(lake_delta_commit(t, &df, 1, NULL, 0, NULL, &g_err), LB_EVALUE);
    st2->columns[0].min_len = saved_len;
    /* bad paths */
    const char *bad[] = {"../escape.parquet", "//abs.parquet", "data//x.parquet", ""};
    for (size_t i = 0; i < 4; i++) {
        df.path = bad[i];
        assert_int_equal(lake_delta_commit(t, &df, 1, NULL, 0, NULL, &g_err), LB_EVALUE);
    }
    /* empty commit */
    assert_int_equal(lake_delta_commit(t, NULL, 0, NULL, 0, NULL, &g_err), -EINVAL);

    assert_int_equal(count_log_entries(root, prefix), 2); /* versions 0 and 1 only */
    assert_int_equal(lake_delta_version(t), 1);

    /* another schema at reopen: a schema change for the next commit; a
     * type change (decimal(12,2) to long) takes every live file replaced */
    lake_delta_table *t2 = NULL;
    lb_err err = {0};
    assert_int_equal(lake_delta_open(st, prefix, s2, NULL, &t2, &err), 0);
    assert_true(lake_delta_schema_pending(t2));
    lake_delta_close(t2);
    lake_schema *s3 = tf_schema(false);
    ((lake__node *)lake__schema_node(s3, 3))->type = LAKE_TYPE_INT64;
    assert_int_equal(lake_delta_open(st, prefix, s3, NULL, &t2, &err), 0);
    df = tf_data_file(&other);
    df.path = "data/other2.parquet";
    assert_int_equal(lake_delta_commit(t2, NULL, 0, NULL, 0, NULL, &err), LB_EVALUE);
    assert_non_null(strstr(err.message, "replace every live file"));
    lake_delta_close(t2);
    lake_schema_free(s3);

    json_t *got = read_table(root, prefix);
    tf_file *live[] = {&a};
    check_table(got, live, 1, 1);
    json_decref(got);

    lake_delta_close(t);
    tf_free(&a);
    tf_free(&other);
    lake_schema_free(s);
    lake_schema_free(s2);
    lake_store_close(st);
}

static void
test_version_conflict(void **state)
{
    (void)state;
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/conflict", g_dir);
    lake_store *st = lt_open_store(root);
    const char *prefix = "lake/db/s/c";
    lake_schema *s = tf_schema(false);
    lake_delta_table *t1 = open_table(st, prefix, s);
    lake_delta_table *t2 = open_table(st, prefix, s); /* both at version 0 */
    tf_file a, b;
    tf_write(root, prefix, s, false, "a", 0, 4, &a);
    tf_write(root, prefix, s, false, "b", 5, 9, &b);
    tf_file *adds_a[] = {&a};
    commit(t1, adds_a, 1, NULL, 0, 1);

    char key[PATH_MAX + 128], before[8192];
    snprintf(key, sizeof(key), "%s/%s/_delta_log/00000000000000000001.json", root, prefix);
    FILE *fp = fopen(key, "r");
    size_t n1 = fread(before, 1, sizeof(before), fp);
    fclose(fp);

    lake_data_file df = tf_data_file(&b);
    assert_int_equal(lake_delta_commit(t2, &df, 1, NULL, 0, NULL, &g_err), LB_ECONFLICT);
    assert_non_null(strstr(g_err.message, "another writer"));
    assert_int_equal(lake_delta_version(t2), 0);
    char after[8192];
    fp = fopen(key, "r");
    size_t n2 = fread(after, 1, sizeof(after), fp);
    fclose(fp);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1); /* version 1 untouched */
    lake_delta_close(t2);

    /* reopened, the second writer sees the first's commit and goes on */
    t2 = open_table(st, prefix, s);
    assert_int_equal(lake_delta_version(t2), 1);
    int64_t v;
    assert_int_equal(lake_delta_commit(t2, &df, 1, NULL, 0, &v, &g_err), 0);
    assert_int_equal(v, 2);
    json_t *got = read_table(root, prefix);
    tf_file *live[] = {&a, &b};
    check_table(got, live, 2, 2);
    json_decref(got);

    /* creating a table races too: the loser of version 0 gets a conflict */
    char key0[PATH_MAX];
    snprintf(key0, sizeof(key0), "lake/db/s/raced/_delta_log/00000000000000000000.json");
    assert_int_equal(lake_store_put_new(st, key0, "x\n", 2), 0);
    assert_int_equal(lake_store_put_new(st, key0, "y\n", 2), LB_ECONFLICT);

    lake_delta_close(t1);
    lake_delta_close(t2);
    tf_free(&a);
    tf_free(&b);
    lake_schema_free(s);
    lake_store_close(st);
}

/* Processes racing for one key: exactly one wins, and its bytes stay. */
static void
test_put_new_races(void **state)
{
    (void)state;
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/race", g_dir);
    for (int round = 0; round < 5; round++) {
        char key[64];
        snprintf(key, sizeof(key), "t/_delta_log/%020d.json", round);
        pid_t pids[8];
        for (int i = 0; i < 8; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                lake_store *st = NULL;
                char url[PATH_MAX + 16];
                snprintf(url, sizeof(url), "file://%s", root);
                if (lake_store_open(url, NULL, &st, NULL))
                    _exit(3);
                char body[32];
                int n = snprintf(body, sizeof(body), "writer %d\n", i);
                int rc = lake_store_put_new(st, key, body, (size_t)n);
                lake_store_close(st);
                _exit(rc == 0 ? 0 : rc == LB_ECONFLICT ? 1 : 2);
            }
        }
        int winners = 0, winner = -1;
        for (int i = 0; i < 8; i++) {
            int status;
            assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
            assert_true(WIFEXITED(status));
            assert_true(WEXITSTATUS(status) <= 1);
            if (WEXITSTATUS(status) == 0)
                winners++, winner = i;
        }
        assert_int_equal(winners, 1);
        char path[PATH_MAX + 64], body[64] = {0}, want[32];
        snprintf(path, sizeof(path), "%s/%s", root, key);
        FILE *fp = fopen(path, "r");
        assert_non_null(fp);
        assert_true(fread(body, 1, sizeof(body) - 1, fp) > 0);
        fclose(fp);
        snprintf(want, sizeof(want), "writer %d\n", winner);
        assert_string_equal(body, want);
    }
}

static int
failing_fsync(int fd)
{
    (void)fd;
    errno = EIO;
    return -1;
}

static void
test_failed_fsync_leaves_no_entry(void **state)
{
    (void)state;
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/fsync", g_dir);
    lake_store *st = lt_open_store(root);
    const char *prefix = "lake/db/s/f";
    lake_schema *s = tf_schema(false);
    lake_delta_table *t = open_table(st, prefix, s);
    tf_file a;
    tf_write(root, prefix, s, false, "a", 0, 4, &a);
    lake_data_file df = tf_data_file(&a);

    lb_io_ops broken = lb_io_default;
    broken.fsync = failing_fsync;
    lb_io = &broken;
    int rc = lake_delta_commit(t, &df, 1, NULL, 0, NULL, &g_err);
    lb_io = &lb_io_default;
    assert_int_equal(rc, -EIO);
    assert_int_equal(lake_delta_version(t), 0);
    assert_int_equal(lake_delta_live_count(t), 0);
    assert_int_equal(count_log_entries(root, prefix), 1);

    int64_t v;
    assert_int_equal(lake_delta_commit(t, &df, 1, NULL, 0, &v, &g_err), 0);
    assert_int_equal(v, 1);
    json_t *got = read_table(root, prefix);
    tf_file *live[] = {&a};
    check_table(got, live, 1, 1);
    json_decref(got);
    lake_delta_close(t);
    tf_free(&a);
    lake_schema_free(s);
    lake_store_close(st);
}

static void
test_table_prefix(void **state)
{
    (void)state;
    char *p = NULL;
    assert_int_equal(lake_table_prefix("db", "public", "t_1", &p), 0);
    assert_string_equal(p, "lake/db/public/t_1");
    free(p);
    assert_int_equal(lake_table_prefix("my db", ".hidden", "a/b..c", &p), 0);
    assert_string_equal(p, "lake/my%20db/%2Ehidden/a%2Fb..c");
    const char *why;
    assert_int_equal(lb_objstore_check_key(p, &why), 0);
    free(p);
    assert_int_equal(lake_table_prefix("db", "", "t", &p), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commits_adds_and_removes),
        cmocka_unit_test(test_refused_input_writes_nothing),
        cmocka_unit_test(test_version_conflict),
        cmocka_unit_test(test_put_new_races),
        cmocka_unit_test(test_failed_fsync_leaves_no_entry),
        cmocka_unit_test(test_table_prefix),
    };
    return lake_test_run("lake-delta", tests);
}
