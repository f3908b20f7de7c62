/*
 * test_iceberg_meta.c: an Iceberg table's metadata outside the writer: the
 * newest version found whatever the hint says (behind, missing, garbage,
 * pointing nowhere), malformed metadata refused; and snapshot expiry:
 * exactly the snapshots that stopped being current at or before the
 * cutoff go, with their manifest lists, while every kept snapshot's
 * manifests stay; nothing is written when nothing expires or a kept
 * snapshot cannot be read; the writer goes on from the trimmed metadata.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "errors.h"
#include "iceberg.h"
#include "iceberg_meta.h"
#include "store.h"
#include "testutil.h"

#include "lake_test.h"
#include "table_files.h"

static int64_t
newest(lake_store *st, const char *prefix, int *rc_out)
{
    int64_t v = 0;
    char *key = NULL;
    json_t *meta = NULL;
    lb_err err = {0};
    int rc = lake_iceberg_newest_metadata(st, prefix, &v, &key, &meta, &err);
    if (rc_out)
        *rc_out = rc;
    else if (rc)
        fail_msg("newest: %s", err.message);
    if (rc == 0) {
        char want[256];
        snprintf(want, sizeof(want), "%s/metadata/v%lld.metadata.json", prefix, (long long)v);
        assert_string_equal(key, want);
        assert_true(json_is_object(meta));
    }
    free(key);
    json_decref(meta);
    return v;
}

static void
put(lake_store *st, const char *prefix, const char *rel, const char *text)
{
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", prefix, rel);
    assert_int_equal(lake_store_put(st, key, text, strlen(text)), 0);
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Commit a table of three snapshots (replacing one file each time); their
 * ids in ids[], and the time after the second in *after2. */
static lake_iceberg_table *
three_snapshots(lake_store *st, const char *prefix, lake_schema *s, int64_t ids[3], int64_t *after2,
                tf_file f[3])
{
    lake_iceberg_table *t = NULL;
    lb_err err = {0};
    if (lake_iceberg_open(st, prefix, s, NULL, &t, &err))
        fail_msg("open: %s", err.message);
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof(name), "f%d", i);
        tf_write(g_dir, prefix, s, false, name, i * 10, i * 10 + 9, &f[i]);
        lake_data_file add = tf_data_file(&f[i]);
        const char *rm[] = {i ? f[i - 1].path : NULL};
        if (lake_iceberg_commit(t, &add, 1, rm, i ? 1 : 0, &ids[i], &err))
            fail_msg("commit %d: %s", i, err.message);
        sleep_ms(5);
        if (i == 1)
            *after2 = lb_now_ms();
        sleep_ms(5);
    }
    return t;
}

static void
test_newest_whatever_the_hint(void **state)
{
    (void)state;
    const char *prefix = "lake/db/public/hint";
    lake_schema *s = tf_schema(false);
    lake_store *st = lt_open_store(g_dir);
    int rc;
    assert_int_equal(newest(st, prefix, &rc), 0);
    assert_int_equal(rc, LB_ENOTFOUND);
    int64_t ids[3], after2;
    tf_file f[3];
    lake_iceberg_table *t = three_snapshots(st, prefix, s, ids, &after2, f);
    assert_int_equal(lake_iceberg_version(t), 4);
    assert_int_equal(newest(st, prefix, NULL), 4);
    put(st, prefix, "metadata/version-hint.text", "2"); /* behind: probed forward */
    assert_int_equal(newest(st, prefix, NULL), 4);
    put(st, prefix, "metadata/version-hint.text", "99"); /* nowhere: listed */
    assert_int_equal(newest(st, prefix, NULL), 4);
    put(st, prefix, "metadata/version-hint.text", "v3\n"); /* garbage: listed */
    assert_int_equal(newest(st, prefix, NULL), 4);
    char key[256];
    snprintf(key, sizeof(key), "%s/metadata/version-hint.text", prefix);
    assert_int_equal(lake_store_delete(st, key), 0);
    assert_int_equal(newest(st, prefix, NULL), 4);
    /* a newest version that is not a JSON object */
    put(st, prefix, "metadata/v5.metadata.json", "[1, 2]");
    newest(st, prefix, &rc);
    assert_int_equal(rc, LB_EPARSE);
    put(st, prefix, "metadata/v5.metadata.json", "{\"format-version\": ");
    newest(st, prefix, &rc);
    assert_int_equal(rc, LB_EPARSE);
    for (int i = 0; i < 3; i++)
        tf_free(&f[i]);
    lake_iceberg_close(t);
    lake_store_close(st);
    lake_schema_free(s);
}

static json_t *
load_newest(lake_store *st, const char *prefix)
{
    char *key = NULL;
    json_t *meta = NULL;
    lb_err err = {0};
    if (lake_iceberg_newest_metadata(st, prefix, NULL, &key, &meta, &err))
        fail_msg("newest: %s", err.message);
    free(key);
    return meta;
}

static bool
has_snapshot(json_t *meta, int64_t id)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(meta, "snapshots"), i, s)
    {
        if (json_integer_value(json_object_get(s, "snapshot-id")) == id)
            return true;
    }
    return false;
}

static bool
exists(const char *uri)
{
    return access(uri + strlen("file://"), F_OK) == 0;
}

static void
test_expire_snapshots(void **state)
{
    (void)state;
    const char *prefix = "lake/db/public/expire";
    lake_schema *s = tf_schema(false);
    lake_store *st = lt_open_store(g_dir);
    int64_t ids[3], after2;
    tf_file f[4];
    lake_iceberg_table *t = three_snapshots(st, prefix, s, ids, &after2, f);
    lake_iceberg_close(t);
    json_t *before = load_newest(st, prefix);
    const char *list1 = NULL;
    size_t i;
    json_t *sn;
    json_array_foreach(json_object_get(before, "snapshots"), i, sn)
    {
        if (json_integer_value(json_object_get(sn, "snapshot-id")) == ids[0])
            list1 = json_string_value(json_object_get(sn, "manifest-list"));
    }
    assert_non_null(list1);
    assert_true(exists(list1));

    /* a cutoff before the second commit: only the first was replaced by then,
     * and the first is the one current at the cutoff: nothing goes */
    size_t n = 99;
    lb_err err = {0};
    json_t *s2 = NULL;
    json_array_foreach(json_object_get(before, "snapshots"), i, sn)
    {
        if (json_integer_value(json_object_get(sn, "snapshot-id")) == ids[1])
            s2 = sn;
    }
    int64_t t2 = json_integer_value(json_object_get(s2, "timestamp-ms"));
    assert_int_equal(lake_iceberg_expire_snapshots(st, prefix, t2 - 1, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(newest(st, prefix, NULL), 4); /* nothing written */

    /* a cutoff after the second commit: the first stopped being current */
    assert_int_equal(lake_iceberg_expire_snapshots(st, prefix, after2, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(newest(st, prefix, NULL), 5);
    json_t *after = load_newest(st, prefix);
    assert_false(has_snapshot(after, ids[0]));
    assert_true(has_snapshot(after, ids[1]) && has_snapshot(after, ids[2]));
    json_array_foreach(json_object_get(after, "snapshot-log"), i, sn)
    {
        assert_true(json_integer_value(json_object_get(sn, "snapshot-id")) != ids[0]);
    }
    assert_false(exists(list1)); /* its manifest list is gone */
    json_array_foreach(json_object_get(after, "snapshots"), i, sn)
    {
        assert_true(exists(json_string_value(json_object_get(sn, "manifest-list"))));
    }
    /* again: nothing more to do */
    assert_int_equal(lake_iceberg_expire_snapshots(st, prefix, after2, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(newest(st, prefix, NULL), 5);

    /* the writer goes on from the trimmed metadata; readers see its files */
    if (lake_iceberg_open(st, prefix, s, NULL, &t, &err))
        fail_msg("reopen: %s", err.message);
    assert_int_equal(lake_iceberg_live_count(t), 1);
    tf_write(g_dir, prefix, s, false, "f3", 30, 39, &f[3]);
    lake_data_file add = tf_data_file(&f[3]);
    int64_t id4;
    if (lake_iceberg_commit(t, &add, 1, NULL, 0, &id4, &err))
        fail_msg("commit after expiry: %s", err.message);
    lake_iceberg_close(t);
    json_t *got = tf_read(g_dir, "iceberg_read.mjs", g_dir, prefix);
    tf_file *live[] = {&f[2], &f[3]};
    tf_check_live(got, live, 2);
    json_decref(got);

    /* a kept snapshot whose manifest list is missing: refused, nothing written */
    json_t *m6 = load_newest(st, prefix);
    const char *list3 = NULL;
    json_array_foreach(json_object_get(m6, "snapshots"), i, sn)
    {
        if (json_integer_value(json_object_get(sn, "snapshot-id")) == ids[2])
            list3 = json_string_value(json_object_get(sn, "manifest-list"));
    }
    assert_non_null(list3);
    assert_int_equal(unlink(list3 + strlen("file://")), 0);
    err = (lb_err){0};
    assert_int_equal(lake_iceberg_expire_snapshots(st, prefix, lb_now_ms(), &n, &err),
                     LB_ENOTFOUND);
    assert_true(err.message[0]);
    assert_int_equal(newest(st, prefix, NULL), 6);
    /* no table at all */
    assert_int_equal(
        lake_iceberg_expire_snapshots(st, "lake/db/public/none", lb_now_ms(), &n, &err),
        LB_ENOTFOUND);

    json_decref(m6);
    json_decref(before);
    json_decref(after);
    for (int k = 0; k < 4; k++)
        tf_free(&f[k]);
    lake_store_close(st);
    lake_schema_free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newest_whatever_the_hint),
        cmocka_unit_test(test_expire_snapshots),
    };
    return lake_test_run("lake-iceberg-meta", tests);
}
