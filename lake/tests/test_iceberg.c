/*
 * test_iceberg.c: Iceberg v2 tables written in several commits (appends,
 * an overwrite that removes some files and adds others, a delete) list
 * exactly the live data files when read the way the spec says:
 * iceberg_read.mjs follows metadata.json -> manifest list -> manifests
 * with avsc, resolves fields by id, applies sequence number and snapshot id
 * inheritance, checks the list's counts against the manifests, reads the
 * live files with DuckDB and compares each column's bounds and counts with
 * the data. (DuckDB's iceberg extension cannot be downloaded here.)
 *
 * Also: every field the spec requires of v2 manifest lists and manifests
 * is there, with its id and type; the Avro schemas match the Spark-written
 * reference table field by field; EXISTING and DELETED entries carry
 * explicit sequence numbers; metadata versions are never overwritten (a
 * second writer gets LB_ECONFLICT); refused input writes no metadata.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>

#include "errors.h"
#include "iceberg.h"
#include "store.h"
#include "testutil.h"

#include "lake_test.h"

#include "table_files.h"

/* The message of the last failed call. */
static lb_err g_err;

/* Paths here are short temp paths; a truncated message or name would only
 * make a test fail, never pass. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

static lake_iceberg_table *
open_table(lake_store *st, const char *prefix, lake_schema *s)
{
    lake_iceberg_table *t = NULL;
    lb_err err = {0};
    int rc = lake_iceberg_open(st, prefix, s, NULL, &t, &err);
    if (rc)
        fail_msg("open: %s (%s)", err.message, lb_strerror(rc));
    return t;
}

static int64_t
commit(lake_iceberg_table *t, tf_file *const *adds, size_t nadds, const char *const *removes,
       size_t nremoves)
{
    lake_data_file df[8];
    for (size_t i = 0; i < nadds; i++)
        df[i] = tf_data_file(adds[i]);
    int64_t id = -1;
    int rc = lake_iceberg_commit(t, df, nadds, removes, nremoves, &id, &g_err);
    if (rc)
        fail_msg("commit: %s (%s)", g_err.message, lb_strerror(rc));
    assert_true(id > 0);
    assert_int_equal(lake_iceberg_snapshot_id(t), id);
    return id;
}

static json_t *
read_table(const char *root, const char *prefix)
{
    return tf_read(g_dir, "iceberg_read.mjs", root, prefix);
}

static json_t *
load_metadata(const char *root, const char *prefix, int64_t version)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s/metadata/v%lld.metadata.json", root, prefix,
             (long long)version);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j)
        fail_msg("%s: %s", path, jerr.text);
    return j;
}

static json_t *
entry_of(json_t *got, const char *path)
{
    size_t i;
    json_t *e;
    json_t *found = NULL;
    json_array_foreach(json_object_get(got, "entries"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "path")), path) == 0 &&
            (!found || json_integer_value(json_object_get(e, "status")) != 2))
            found = e;
    }
    if (!found)
        fail_msg("no manifest entry for %s", path);
    return found;
}

static void
expect_entry(json_t *got, const char *path, int status, int64_t snapshot, long long seq)
{
    json_t *e = entry_of(got, path);
    assert_int_equal(json_integer_value(json_object_get(e, "status")), status);
    char want[32];
    snprintf(want, sizeof(want), "%lld", (long long)snapshot);
    assert_string_equal(json_string_value(json_object_get(e, "snapshot_id")), want);
    snprintf(want, sizeof(want), "%lld", seq);
    assert_string_equal(json_string_value(json_object_get(e, "sequence_number")), want);
    assert_string_equal(json_string_value(json_object_get(e, "file_format")), "PARQUET");
    assert_int_equal(json_integer_value(json_object_get(e, "content")), 0);
    assert_int_equal(json_integer_value(json_object_get(e, "sort_order_id")), 0);
}

/* Live files and rows as the reader found them; every bound and count
 * matches the data. */
static void
check_table(json_t *got, tf_file *const *files, size_t n)
{
    tf_check_live(got, files, n);
    size_t i;
    json_t *c;
    size_t bounded = 0;
    json_array_foreach(json_object_get(got, "checks"), i, c)
    {
        if (!json_is_true(json_object_get(c, "ok"))) {
            char *text = json_dumps(c, JSON_COMPACT);
            fail_msg("metrics disagree with the data: %s", text);
        }
        if (json_is_string(json_object_get(c, "lower")))
            bounded++;
    }
    /* id, name, amount, day, ts, score and flag have bounds in each file */
    assert_true(bounded >= 7 * n);
}

static const char *
summary(json_t *meta, int64_t snapshot, const char *key)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(meta, "snapshots"), i, s)
    {
        if (json_integer_value(json_object_get(s, "snapshot-id")) == snapshot)
            return json_string_value(json_object_get(json_object_get(s, "summary"), key));
    }
    fail_msg("no snapshot %lld", (long long)snapshot);
    return NULL;
}

static void
test_commits_adds_and_removes(void **state)
{
    (void)state;
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/store", g_dir);
    lake_store *st = lt_open_store(root);
    const char *prefix = "lake/db/public/events";
    lake_schema *s = tf_schema(true);
    lake_iceberg_table *t = open_table(st, prefix, s);
    assert_int_equal(lake_iceberg_version(t), 1);
    assert_int_equal(lake_iceberg_snapshot_id(t), -1);
    json_t *got = read_table(root, prefix);
    assert_int_equal(json_array_size(json_object_get(got, "live")), 0);
    json_decref(got);

    tf_file f[7];
    tf_write(root, prefix, s, true, "f1", 0, 99, &f[0]);
    tf_write(root, prefix, s, true, "f2", 100, 149, &f[1]);
    tf_write(root, prefix, s, true, "f3", 150, 150, &f[2]);
    tf_write(root, prefix, s, true, "f4", 1000, 1299, &f[3]);
    tf_write(root, prefix, s, true, "f5", 2000, 2009, &f[4]);
    tf_write(root, prefix, s, true, "f6", 3000, 3000, &f[5]);
    tf_write(root, prefix, s, true, "f7", 4000, 4049, &f[6]);

    tf_file *c1[] = {&f[0], &f[1]};
    int64_t s1 = commit(t, c1, 2, NULL, 0);
    got = read_table(root, prefix);
    check_table(got, c1, 2);
    expect_entry(got, f[0].path, 1, s1, 1);
    json_decref(got);

    tf_file *c2[] = {&f[2]};
    int64_t s2 = commit(t, c2, 1, NULL, 0);
    const char *r3[] = {f[0].path};
    tf_file *c3[] = {&f[3]};
    int64_t s3 = commit(t, c3, 1, r3, 1);
    got = read_table(root, prefix);
    tf_file *live3[] = {&f[1], &f[2], &f[3]};
    check_table(got, live3, 3);
    expect_entry(got, f[0].path, 2, s3, 1); /* DELETED by s3, data seq kept */
    expect_entry(got, f[1].path, 0, s1, 1); /* EXISTING, explicit seq 1 */
    expect_entry(got, f[2].path, 1, s2, 2); /* ADDED in s2's manifest, inherited */
    expect_entry(got, f[3].path, 1, s3, 3);
    json_decref(got);

    const char *r4[] = {f[1].path, f[2].path};
    tf_file *c4[] = {&f[4], &f[5]};
    int64_t s4 = commit(t, c4, 2, r4, 2);
    const char *r5[] = {f[5].path};
    int64_t s5 = commit(t, NULL, 0, r5, 1);
    assert_int_equal(lake_iceberg_version(t), 6);
    assert_int_equal(lake_iceberg_sequence_number(t), 5);

    got = read_table(root, prefix);
    tf_file *live5[] = {&f[3], &f[4]};
    check_table(got, live5, 2);
    expect_entry(got, f[3].path, 1, s3, 3);
    /* f5 shared s4's manifest with f6: rewritten, f5 is EXISTING now */
    expect_entry(got, f[4].path, 0, s4, 4);
    expect_entry(got, f[5].path, 2, s5, 4);
    json_decref(got);

    json_t *meta = load_metadata(root, prefix, 6);
    assert_string_equal(summary(meta, s1, "operation"), "append");
    assert_string_equal(summary(meta, s3, "operation"), "overwrite");
    assert_string_equal(summary(meta, s5, "operation"), "delete");
    assert_string_equal(summary(meta, s3, "deleted-data-files"), "1");
    assert_string_equal(summary(meta, s3, "deleted-records"), "100");
    assert_string_equal(summary(meta, s5, "total-records"), "310");
    assert_string_equal(summary(meta, s5, "total-data-files"), "2");
    assert_int_equal(json_integer_value(json_object_get(meta, "current-snapshot-id")), s5);
    assert_int_equal(json_integer_value(json_object_get(meta, "last-sequence-number")), 5);
    assert_int_equal(json_integer_value(json_object_get(meta, "last-column-id")), 14);
    json_t *snaps = json_object_get(meta, "snapshots");
    assert_int_equal(json_array_size(snaps), 5);
    assert_null(json_object_get(json_array_get(snaps, 0), "parent-snapshot-id"));
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(snaps, 4), "parent-snapshot-id")), s4);
    json_decref(meta);

    /* a fresh handle loads the same state and commits on top of it */
    lake_iceberg_table *t2 = open_table(st, prefix, s);
    assert_int_equal(lake_iceberg_version(t2), 6);
    assert_int_equal(lake_iceberg_snapshot_id(t2), s5);
    assert_int_equal(lake_iceberg_live_count(t2), 2);
    assert_string_equal(lake_iceberg_live_path(t2, 0), f[3].path);
    tf_file *c6[] = {&f[6]};
    const char *r6[] = {f[4].path};
    commit(t2, c6, 1, r6, 1);
    got = read_table(root, prefix);
    tf_file *live6[] = {&f[3], &f[6]};
    check_table(got, live6, 2);
    json_decref(got);

    /* the old handle is stale: its next version exists */
    const char *r7[] = {f[3].path};
    assert_int_equal(lake_iceberg_commit(t, NULL, 0, r7, 1, NULL, &g_err), LB_ECONFLICT);
    assert_non_null(strstr(g_err.message, "another writer"));
    got = read_table(root, prefix);
    check_table(got, live6, 2); /* unchanged */
    assert_int_equal(json_integer_value(json_object_get(got, "version")), 7);
    json_decref(got);

    lake_iceberg_close(t);
    lake_iceberg_close(t2);
    for (int i = 0; i < 7; i++)
        tf_free(&f[i]);
    lake_schema_free(s);
    lake_store_close(st);
}

/* id -> [path, type] of a reader's field table. */
static void
expect_field(json_t *fields, int id, const char *name, const char *type, bool optional)
{
    char key[16];
    snprintf(key, sizeof(key), "%d", id);
    json_t *f = json_object_get(fields, key);
    if (!f)
        fail_msg("no field with id %d (%s)", id, name);
    assert_string_equal(json_string_value(json_array_get(f, 0)), name);
    json_t *t = json_array_get(f, 1);
    if (optional) {
        if (!json_is_array(t) || strcmp(json_string_value(json_array_get(t, 0)), "null") != 0)
            fail_msg("field %d (%s) is not optional", id, name);
        t = json_array_get(t, 1);
    }
    if (type) {
        const char *tn = json_is_string(t) ? json_string_value(t)
                                           : json_string_value(json_object_get(t, "type"));
        if (strcmp(tn, type) != 0)
            fail_msg("field %d (%s) is %s, want %s", id, name, tn, type);
    }
}

static void
test_manifest_fields_by_id(void **state)
{
    (void)state;
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/fields", g_dir);
    lake_store *st = lt_open_store(root);
    const char *prefix = "lake/db/s/fields";
    lake_schema *s = tf_schema(false);
    lake_iceberg_table *t = open_table(st, prefix, s);
    tf_file a;
    tf_write(root, prefix, s, false, "a", 0, 20, &a);
    tf_file *c[] = {&a};
    int64_t sid = commit(t, c, 1, NULL, 0);
    json_t *got = read_table(root, prefix);

    /* manifest list: manifest_file, spec v2 */
    json_t *lf = json_object_get(got, "list_fields");
    expect_field(lf, 500, "manifest_path", "string", false);
    expect_field(lf, 501, "manifest_length", "long", false);
    expect_field(lf, 502, "partition_spec_id", "int", false);
    expect_field(lf, 517, "content", "int", false);
    expect_field(lf, 515, "sequence_number", "long", false);
    expect_field(lf, 516, "min_sequence_number", "long", false);
    expect_field(lf, 503, "added_snapshot_id", "long", false);
    expect_field(lf, 504, "added_data_files_count", "int", false);
    expect_field(lf, 505, "existing_data_files_count", "int", false);
    expect_field(lf, 506, "deleted_data_files_count", "int", false);
    expect_field(lf, 512, "added_rows_count", "long", false);
    expect_field(lf, 513, "existing_rows_count", "long", false);
    expect_field(lf, 514, "deleted_rows_count", "long", false);
    expect_field(lf, 507, "partitions", "array", true);
    expect_field(lf, 508, "partitions[]", "record", false);
    expect_field(lf, 509, "partitions[].contains_null", "boolean", false);
    expect_field(lf, 518, "partitions[].contains_nan", "boolean", true);
    expect_field(lf, 510, "partitions[].lower_bound", "bytes", true);
    expect_field(lf, 511, "partitions[].upper_bound", "bytes", true);
    expect_field(lf, 519, "key_metadata", "bytes", true);

    /* manifest: manifest_entry and data_file, spec v2 */
    json_t *ef = json_object_get(got, "entry_fields");
    expect_field(ef, 0, "status", "int", false);
    expect_field(ef, 1, "snapshot_id", "long", true);
    expect_field(ef, 3, "sequence_number", "long", true);
    expect_field(ef, 4, "file_sequence_number", "long", true);
    expect_field(ef, 2, "data_file", "record", false);
    expect_field(ef, 134, "data_file.content", "int", false);
    expect_field(ef, 100, "data_file.file_path", "string", false);
    expect_field(ef, 101, "data_file.file_format", "string", false);
    expect_field(ef, 102, "data_file.partition", "record", false);
    expect_field(ef, 103, "data_file.record_count", "long", false);
    expect_field(ef, 104, "data_file.file_size_in_bytes", "long", false);
    const struct {
        int id, key, value;
        const char *name, *vtype;
    } maps[] = {
        {108, 117, 118, "column_sizes", "long"},      {109, 119, 120, "value_counts", "long"},
        {110, 121, 122, "null_value_counts", "long"}, {137, 138, 139, "nan_value_counts", "long"},
        {125, 126, 127, "lower_bounds", "bytes"},     {128, 129, 130, "upper_bounds", "bytes"}};
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        char name[96];
        snprintf(name, sizeof(name), "data_file.%s", maps[i].name);
        expect_field(ef, maps[i].id, name, "array", true);
        snprintf(name, sizeof(name), "data_file.%s[].key", maps[i].name);
        expect_field(ef, maps[i].key, name, "int", false);
        snprintf(name, sizeof(name), "data_file.%s[].value", maps[i].name);
        expect_field(ef, maps[i].value, name, maps[i].vtype, false);
    }
    expect_field(ef, 131, "data_file.key_metadata", "bytes", true);
    expect_field(ef, 132, "data_file.split_offsets", "array", true);
    expect_field(ef, 133, "data_file.split_offsets[]", "long", false);
    expect_field(ef, 135, "data_file.equality_ids", "array", true);
    expect_field(ef, 136, "data_file.equality_ids[]", "int", false);
    expect_field(ef, 140, "data_file.sort_order_id", "int", true);
    expect_field(ef, 143, "data_file.referenced_data_file", "string", true);

    /* header metadata the spec requires */
    json_t *mm = json_object_get(got, "manifest_meta");
    assert_string_equal(json_string_value(json_object_get(mm, "format-version")), "2");
    assert_string_equal(json_string_value(json_object_get(mm, "content")), "data");
    assert_string_equal(json_string_value(json_object_get(mm, "schema-id")), "0");
    assert_string_equal(json_string_value(json_object_get(mm, "partition-spec-id")), "0");
    assert_string_equal(json_string_value(json_object_get(mm, "partition-spec")), "[]");
    json_t *mschema = json_loads(json_string_value(json_object_get(mm, "schema")), 0, NULL);
    assert_non_null(mschema);
    assert_int_equal(json_integer_value(json_object_get(mschema, "schema-id")), 0);
    json_t *tags = json_array_get(json_object_get(mschema, "fields"), 6);
    assert_string_equal(json_string_value(json_object_get(tags, "name")), "tags");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(tags, "type"), "element-id")), 9);
    json_decref(mschema);
    json_t *lm = json_object_get(got, "list_meta");
    char sids[32];
    snprintf(sids, sizeof(sids), "%lld", (long long)sid);
    assert_string_equal(json_string_value(json_object_get(lm, "snapshot-id")), sids);
    assert_string_equal(json_string_value(json_object_get(lm, "parent-snapshot-id")), "null");
    assert_string_equal(json_string_value(json_object_get(lm, "sequence-number")), "1");
    assert_string_equal(json_string_value(json_object_get(lm, "format-version")), "2");

    /* one row group: split offsets [4] */
    json_t *e = entry_of(got, a.path);
    assert_string_equal(json_string_value(json_array_get(json_object_get(e, "split_offsets"), 0)),
                        "4");
    json_decref(got);

    /* metadata.json: v2 fields */
    json_t *meta = load_metadata(root, prefix, 2);
    const char *required[] = {"format-version",
                              "table-uuid",
                              "location",
                              "last-sequence-number",
                              "last-updated-ms",
                              "last-column-id",
                              "schemas",
                              "current-schema-id",
                              "partition-specs",
                              "default-spec-id",
                              "last-partition-id",
                              "sort-orders",
                              "default-sort-order-id",
                              "properties",
                              "current-snapshot-id",
                              "snapshots",
                              "refs",
                              "snapshot-log",
                              "metadata-log"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (!json_object_get(meta, required[i]))
            fail_msg("metadata has no \"%s\"", required[i]);
    json_t *snap = json_array_get(json_object_get(meta, "snapshots"), 0);
    const char *snap_fields[] = {"snapshot-id",   "sequence-number", "timestamp-ms",
                                 "manifest-list", "summary",         "schema-id"};
    for (size_t i = 0; i < sizeof(snap_fields) / sizeof(snap_fields[0]); i++)
        assert_non_null(json_object_get(snap, snap_fields[i]));
    json_t *schema0 = json_array_get(json_object_get(meta, "schemas"), 0);
    json_t *amount = json_array_get(json_object_get(schema0, "fields"), 2);
    assert_string_equal(json_string_value(json_object_get(amount, "type")), "decimal(12, 2)");
    json_t *id0 = json_array_get(json_object_get(schema0, "fields"), 0);
    assert_true(json_is_true(json_object_get(id0, "required")));
    json_decref(meta);

    lake_iceberg_close(t);
    tf_free(&a);
    lake_schema_free(s);
    lake_store_close(st);
}

/* Our Avro schemas against the Spark-written reference: every field id
 * Spark writes, we write, with the same name and type; and the header keys
 * Spark writes that the spec requires. */
static void
test_reference_structure(void **state)
{
    (void)state;
    char ref[PATH_MAX];
    snprintf(ref, sizeof(ref), "%s/../shared/testdata/iceberg-sample", tu_project_root());
    if (access(ref, R_OK) != 0) {
        snprintf(ref, sizeof(ref), "/work/shared/testdata/iceberg-sample");
        if (access(ref, R_OK) != 0)
            skip();
    }
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/ref", g_dir);
    lake_store *st = lt_open_store(root);
    const char *prefix = "lake/db/s/ref";
    lake_schema *s = tf_schema(false);
    lake_iceberg_table *t = open_table(st, prefix, s);
    tf_file a;
    tf_write(root, prefix, s, false, "a", 0, 5, &a);
    tf_file *c[] = {&a};
    commit(t, c, 1, NULL, 0);
    json_t *ours = read_table(root, prefix);

    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof(cmd), "ls %s/*-m0.avro %s/snap-*.avro", ref, ref);
    lb_buf names = LB_BUF_INIT;
    assert_int_equal(tu_run(cmd, &names), 0);
    lb_buf_append(&names, "", 1);
    char *save = NULL;
    for (char *file = strtok_r(names.data, "\n", &save); file; file = strtok_r(NULL, "\n", &save)) {
        bool list = strstr(file, "/snap-") != NULL;
        json_t *theirs = tf_script(g_dir, "avro_read.mjs", file);
        json_t *their_schema = json_object_get(theirs, "schema");
        json_t *our_meta = json_object_get(ours, list ? "list_meta" : "manifest_meta");
        json_t *our_fields = json_object_get(ours, list ? "list_fields" : "entry_fields");
        /* header keys */
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(theirs, "meta"), k, v)
        {
            if (strcmp(k, "iceberg.schema") == 0) {
                fprintf(stderr,
                        "note: %s: Spark also writes \"iceberg.schema\"; we do not (not in "
                        "the spec)\n",
                        list ? "manifest list" : "manifest");
                continue;
            }
            if (!json_object_get(our_meta, k))
                fail_msg("%s: Spark writes header key \"%s\", we do not",
                         list ? "manifest list" : "manifest", k);
        }
        /* fields by id: walk their schema and compare with ours */
        json_t *stack[64];
        static char pfx[64][256];
        int depth = 0;
        stack[depth] = their_schema;
        pfx[depth++][0] = 0;
        int compared = 0;
        while (depth > 0) {
            json_t *rec = stack[--depth];
            char p[256];
            snprintf(p, sizeof(p), "%s", pfx[depth]);
            size_t i;
            json_t *f;
            json_array_foreach(json_object_get(rec, "fields"), i, f)
            {
                char path[256];
                snprintf(path, sizeof(path), "%s%s", p,
                         json_string_value(json_object_get(f, "name")));
                json_t *ft = json_object_get(f, "type");
                bool optional = json_is_array(ft);
                json_t *inner = optional ? json_array_get(ft, 1) : ft;
                const char *tn = json_is_string(inner)
                                     ? json_string_value(inner)
                                     : json_string_value(json_object_get(inner, "type"));
                expect_field(our_fields, (int)json_integer_value(json_object_get(f, "field-id")),
                             path, tn, optional);
                compared++;
                if (json_is_object(inner) && strcmp(tn, "record") == 0 && depth < 63) {
                    stack[depth] = inner;
                    snprintf(pfx[depth++], sizeof(pfx[0]), "%s.", path);
                } else if (json_is_object(inner) && strcmp(tn, "array") == 0) {
                    json_t *items = json_object_get(inner, "items");
                    if (json_object_get(inner, "element-id")) {
                        char ep[300];
                        snprintf(ep, sizeof(ep), "%s[]", path);
                        expect_field(
                            our_fields,
                            (int)json_integer_value(json_object_get(inner, "element-id")), ep,
                            json_is_string(items) ? json_string_value(items) : "record", false);
                    }
                    if (json_is_object(items) && depth < 63) {
                        stack[depth] = items;
                        snprintf(pfx[depth++], sizeof(pfx[0]), "%s[].", path);
                    }
                }
            }
        }
        assert_true(compared >= (list ? 18 : 30));
        json_decref(theirs);
    }
    lb_buf_free(&names);
    json_decref(ours);
    lake_iceberg_close(t);
    tf_free(&a);
    lake_schema_free(s);
    lake_store_close(st);
}

static int
count_metadata(const char *root, const char *prefix)
{
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof(cmd), "ls '%s/%s/metadata' | grep -c 'metadata.json$'", root, prefix);
    lb_buf out = LB_BUF_INIT;
    tu_run(cmd, &out);
    int n = out.data ? atoi(out.data) : 0;
    lb_buf_free(&out);
    return n;
}

static void
test_refused_input_writes_nothing(void **state)
{
    (void)state;
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/refused", g_dir);
    lake_store *st = lt_open_store(root);
    const char *prefix = "lake/db/s/r";
    lake_schema *s = tf_schema(false);
    lake_iceberg_table *t = open_table(st, prefix, s);
    tf_file a, other;
    tf_write(root, prefix, s, false, "a", 0, 9, &a);
    tf_file *c[] = {&a};
    commit(t, c, 1, NULL, 0);

    const char *rm[] = {"data/nope.parquet"};
    assert_int_equal(lake_iceberg_commit(t, NULL, 0, rm, 1, NULL, &g_err), LB_ENOTFOUND);
    assert_non_null(strstr(g_err.message, "not a live file"));
    lake_data_file df = tf_data_file(&a);
    assert_int_equal(lake_iceberg_commit(t, &df, 1, NULL, 0, NULL, &g_err), LB_EVALUE);
    lake_schema *s2 = tf_schema(true);
    tf_write(root, prefix, s2, true, "other", 0, 3, &other);
    df = tf_data_file(&other);
    assert_int_equal(lake_iceberg_commit(t, &df, 1, NULL, 0, NULL, &g_err), LB_EVALUE);
    assert_non_null(strstr(g_err.message, "columns"));
    df = tf_data_file(&a);
    df.path = "data/b.parquet";
    a.stats->columns[2].type = LAKE_TYPE_INT64;
    assert_int_equal(lake_iceberg_commit(t, &df, 1, NULL, 0, NULL, &g_err), LB_EVALUE);
    assert_non_null(strstr(g_err.message, "is int64, the table schema has decimal"));
    a.stats->columns[2].type = LAKE_TYPE_DECIMAL;
    a.stats->columns[1].null_count = a.stats->columns[1].num_values + 1;
    assert_int_equal(lake_iceberg_commit(t, &df, 1, NULL, 0, NULL, &g_err), LB_EVALUE);
    assert_non_null(strstr(g_err.message, "inconsistent counts"));
    assert_int_equal(lake_iceberg_commit(t, NULL, 0, NULL, 0, NULL, &g_err), -EINVAL);
    assert_int_equal(count_metadata(root, prefix), 2);
    assert_int_equal(lake_iceberg_version(t), 2);

    /* another schema at reopen; a schema without field ids */
    lake_iceberg_table *t2 = NULL;
    lb_err err = {0};
    assert_int_equal(lake_iceberg_open(st, prefix, s2, NULL, &t2, &err), 0); /* adds a field */
    assert_true(lake_iceberg_schema_pending(t2));
    assert_int_equal(lake_iceberg_schema_id(t2), 1);
    lake_iceberg_close(t2);
    lake_schema *s3 = tf_schema(false); /* "name" string -> long: no promotion */
    ((lake__node *)lake__schema_node(s3, 2))->type = LAKE_TYPE_INT64;
    assert_int_equal(lake_iceberg_open(st, prefix, s3, NULL, &t2, &err), LB_ESCHEMA);
    assert_non_null(strstr(err.message, "not a promotion"));
    lake_schema_free(s3);
    lake_schema *noid = NULL;
    assert_int_equal(lake_schema_new(&noid), 0);
    lake_field f = {.name = "x", .field_id = 0, .type = LAKE_TYPE_INT32};
    assert_int_equal(lake_schema_add(noid, 0, &f, NULL), 0);
    assert_int_equal(lake_iceberg_open(st, "lake/db/s/noid", noid, NULL, &t2, &err), LB_ESCHEMA);
    assert_non_null(strstr(err.message, "field \"x\" has no field id"));
    lake_schema_free(noid);
    /* duplicate field ids never reach a table: the schema refuses them */
    lake_schema *dup = NULL;
    assert_int_equal(lake_schema_new(&dup), 0);
    lake_field f1 = {.name = "a", .field_id = 7, .type = LAKE_TYPE_INT32};
    lake_field f2 = {.name = "b", .field_id = 7, .type = LAKE_TYPE_INT64};
    assert_int_equal(lake_schema_add(dup, 0, &f1, NULL), 0);
    assert_int_equal(lake_schema_add(dup, 0, &f2, NULL), LB_ESCHEMA);
    lake_schema_free(dup);

    json_t *got = read_table(root, prefix);
    tf_file *live[] = {&a};
    check_table(got, live, 1);
    json_decref(got);
    lake_iceberg_close(t);
    tf_free(&a);
    tf_free(&other);
    lake_schema_free(s);
    lake_schema_free(s2);
    lake_store_close(st);
}

static void
test_schema_json(void **state)
{
    (void)state;
    lake_schema *s = tf_schema(true);
    lb_err err = {0};
    char *j = lake_iceberg_schema_json(s, &err);
    assert_non_null(j);
    json_t *doc = json_loads(j, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "type")), "struct");
    json_t *fields = json_object_get(doc, "fields");
    const char *types[] = {"long",        "string",    "decimal(12, 2)", "date",
                           "timestamptz", "timestamp", "double"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(fields, i), "type")),
                            types[i]);
    json_t *info = json_object_get(json_array_get(fields, 8), "type");
    assert_int_equal(json_integer_value(
                         json_object_get(json_array_get(json_object_get(info, "fields"), 0), "id")),
                     11);
    json_decref(doc);
    free(j);
    lake_schema_free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commits_adds_and_removes),
        cmocka_unit_test(test_manifest_fields_by_id),
        cmocka_unit_test(test_reference_structure),
        cmocka_unit_test(test_refused_input_writes_nothing),
        cmocka_unit_test(test_schema_json),
    };
    return lake_test_run("lake-iceberg", tests);
}
