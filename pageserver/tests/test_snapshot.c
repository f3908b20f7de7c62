/*
 * test_snapshot.c: snapshots of a real PostgreSQL 15 data directory.
 *
 * A full snapshot, then an incremental one after an update touching about
 * 1 % of a table: the second layer holds about that many main-fork pages,
 * not the table. Rebuilt from the two layers, the data directory starts,
 * holds exactly the same rows, passes amcheck on every index and
 * pg_checksums --check. Relation paths parse and print as PostgreSQL names
 * them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "snapshot.h"
#include "testutil.h"
#include "wal.h"

#define SEG (16u * 1024 * 1024)

static lb_lsn
control_lsn(const char *datadir, const char *field)
{
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof(cmd), "%s%s/pg_controldata %s", tu_pg_as(), tu_pg_bindir(), datadir);
    lb_buf out = LB_BUF_INIT;
    tu_run(cmd, &out);
    char *p = strstr(out.data, field);
    assert_non_null(p);
    p = strchr(p, ':') + 1;
    while (*p == ' ')
        p++;
    char *nl = strchr(p, '\n');
    *nl = '\0';
    lb_lsn lsn;
    assert_int_equal(lb_lsn_parse(p, &lsn), 0);
    lb_buf_free(&out);
    return lsn;
}

static char *
table_digest(tu_pg *pg)
{
    lb_buf out = LB_BUF_INIT;
    assert_int_equal(tu_pg_sql(pg,
                               "select count(*) || ':' || md5(string_agg(id || '=' || v, ',' "
                               "order by id)) from t",
                               &out),
                     0);
    return lb_buf_steal(&out, NULL);
}

static void
test_incremental_snapshots_rebuild_the_cluster(void **state)
{
    (void)state;
    char *dir = tu_tempdir("snap");
    tu_pg pg;
    assert_int_equal(tu_pg_init(&pg, dir, NULL), 0);
    assert_int_equal(tu_pg_start(&pg), 0);
    assert_int_equal(
        tu_pg_sql(&pg,
                  "create extension amcheck;"
                  "create table t (id int primary key, v text);"
                  "insert into t select g, md5(g::text) from generate_series(1, 200000) g;"
                  "vacuum t; checkpoint;",
                  NULL),
        0);
    assert_int_equal(tu_pg_stop(&pg, false), 0);

    char l1[PATH_MAX], l2[PATH_MAX], rebuilt[PATH_MAX];
    snprintf(l1, sizeof(l1), "%s/1.layer", dir);
    snprintf(l2, sizeof(l2), "%s/2.layer", dir);
    snprintf(rebuilt, sizeof(rebuilt), "%s/rebuilt", dir);
    /* P: the end of the shutdown checkpoint, the last record. */
    ps_layer_info i1 = {.redo_lsn = control_lsn(pg.datadir, "Latest checkpoint's REDO location")};
    assert_int_equal(ps_wal_record_end(pg.datadir, 1, SEG,
                                       control_lsn(pg.datadir, "Latest checkpoint location"),
                                       &i1.lsn),
                     0);
    ps_snapshot_stats s1;
    assert_int_equal(ps_snapshot_take(pg.datadir, &i1, SEG, l1, &s1), 0);
    assert_true(s1.main_pages_written == s1.main_pages_seen); /* the first is full */
    assert_true(s1.main_pages_seen > 1500);

    /* Touch about 1 % of the table: a contiguous range of ids. */
    assert_int_equal(tu_pg_start(&pg), 0);
    assert_int_equal(
        tu_pg_sql(&pg, "update t set v = 'changed' where id <= 2000; checkpoint;", NULL), 0);
    char *want = table_digest(&pg);
    assert_int_equal(tu_pg_stop(&pg, false), 0);
    ps_layer_info i2 = {.redo_lsn = control_lsn(pg.datadir, "Latest checkpoint's REDO location"),
                        .prev_lsn = i1.lsn};
    assert_int_equal(ps_wal_record_end(pg.datadir, 1, SEG,
                                       control_lsn(pg.datadir, "Latest checkpoint location"),
                                       &i2.lsn),
                     0);
    ps_snapshot_stats s2;
    assert_int_equal(ps_snapshot_take(pg.datadir, &i2, SEG, l2, &s2), 0);
    print_message("full: %llu main pages, %llu bytes; incremental: %llu of %llu main pages, "
                  "%llu bytes\n",
                  (unsigned long long)s1.main_pages_written, (unsigned long long)s1.bytes,
                  (unsigned long long)s2.main_pages_written, (unsigned long long)s2.main_pages_seen,
                  (unsigned long long)s2.bytes);
    /* ~1 % of the heap (2000 of 200000 rows, updated into new pages) plus
     * the index pages and catalog pages it touched: far below the table. */
    assert_true(s2.main_pages_written > 20);
    assert_true(s2.main_pages_written < s2.main_pages_seen / 20);
    /* (Layer bytes are dominated by the WAL segment from R to P that every
     * layer carries, so they are printed, not compared.) */

    /* Rebuild from both layers, newest first, and start a server on it. */
    ps_layer *layers[2];
    assert_int_equal(ps_layer_open(l2, &layers[0]), 0);
    assert_int_equal(ps_layer_open(l1, &layers[1]), 0);
    assert_int_equal(ps_reconstruct_dir(layers, 2, rebuilt, UINT64_MAX, 16u << 20), 0);
    ps_layer_close(layers[0]);
    ps_layer_close(layers[1]);
    tu_pg_chown(rebuilt);

    char cmd[PATH_MAX * 3];
    snprintf(cmd, sizeof(cmd), "%s%s/pg_checksums --check -D %s 2>&1", tu_pg_as(), tu_pg_bindir(),
             rebuilt);
    lb_buf out = LB_BUF_INIT;
    int st = tu_run(cmd, &out);
    if (st != 0)
        fail_msg("pg_checksums failed: %s", out.data);
    lb_buf_free(&out);

    tu_pg copy = pg;
    snprintf(copy.datadir, sizeof(copy.datadir), "%s", rebuilt);
    copy.port = tu_free_port();
    char conf[64];
    snprintf(conf, sizeof(conf), "port = %d", copy.port);
    assert_int_equal(tu_pg_conf(&copy, conf), 0);
    assert_int_equal(tu_pg_start(&copy), 0);
    char *got = table_digest(&copy);
    assert_string_equal(got, want);
    lb_buf res = LB_BUF_INIT;
    assert_int_equal(tu_pg_sql(&copy,
                               "select count(*) from (select bt_index_check(c.oid, true) from "
                               "pg_index i join pg_class c on c.oid = i.indexrelid join pg_am a "
                               "on a.oid = c.relam where a.amname = 'btree') x",
                               &res),
                     0);
    assert_true(atoi(res.data) > 10); /* every btree index, catalogs included, checked */
    lb_buf_free(&res);
    tu_pg_stop(&copy, false);
    free(got);
    free(want);
    tu_rmdir(dir);
}

static void
test_relpaths(void **state)
{
    (void)state;
    ps_relkey k;
    uint32_t seg;
    char out[64];
    assert_int_equal(ps_parse_relpath("base/5/16384", &k, &seg), 0);
    assert_true(k.spc == 1663 && k.db == 5 && k.rel == 16384 && k.fork == 0 && seg == 0);
    assert_int_equal(ps_parse_relpath("base/5/16384_vm.3", &k, &seg), 0);
    assert_true(k.fork == LB_FORK_VM && seg == 3);
    assert_int_equal(ps_relpath(&k, seg, out, sizeof(out)), 0);
    assert_string_equal(out, "base/5/16384_vm.3");
    assert_int_equal(ps_parse_relpath("global/1262_fsm", &k, &seg), 0);
    assert_true(k.spc == 1664 && k.db == 0 && k.fork == LB_FORK_FSM);
    assert_int_equal(ps_relpath(&k, 0, out, sizeof(out)), 0);
    assert_string_equal(out, "global/1262_fsm");
    const char *not_rel[] = {
        "base/5/PG_VERSION", "base/5/pg_filenode.map", "global/pg_control", "base/5/t3_16384",
        "base/x/1",          "base/5/16384.0",         "base/5/16384_xx",   "pg_xact/0000",
        "base/5/0"};
    for (size_t i = 0; i < sizeof(not_rel) / sizeof(not_rel[0]); i++)
        assert_int_equal(ps_parse_relpath(not_rel[i], &k, &seg), LB_ENOTFOUND);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relpaths),
        cmocka_unit_test(test_incremental_snapshots_rebuild_the_cluster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
