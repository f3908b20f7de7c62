/*
 * test_gc.c: which snapshots gc keeps. Inside the retention window, the
 * window's base, the newest, and the newest at or before each branch point
 * are kept, each with its chain back to the nearest full snapshot; nothing
 * else is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "gc.h"
#include "timelines.h"

/* Snapshots at LSN 100*i created at 10*i ms; full where the mask says. */
static ps_tlmeta
timeline(size_t n, unsigned full_mask)
{
    ps_tlmeta m;
    memset(&m, 0, sizeof(m));
    m.nsnapshots = n;
    m.snapshots = calloc(n, sizeof(*m.snapshots));
    for (size_t i = 0; i < n; i++) {
        m.snapshots[i].lsn = 100 * (i + 1);
        m.snapshots[i].redo_lsn = 100 * (i + 1) - 10;
        m.snapshots[i].created_ms = (int64_t)(10 * i);
        m.snapshots[i].full = (full_mask >> i) & 1;
    }
    return m;
}

static unsigned
plan(const ps_tlmeta *m, const lb_lsn *points, size_t npoints, int64_t horizon)
{
    bool keep[32];
    ps_gc_plan(m, points, npoints, horizon, keep);
    unsigned mask = 0;
    for (size_t i = 0; i < m->nsnapshots; i++)
        mask |= (unsigned)keep[i] << i;
    return mask;
}

static void
test_window_and_chains(void **state)
{
    (void)state;
    /* F0 D1 D2 F3 D4 D5, created at 0, 10, ..., 50 ms. */
    ps_tlmeta m = timeline(6, 1u << 0 | 1u << 3);
    /* Window from 45: D5 in it, D4 its base; their chain stops at F3. */
    assert_int_equal(plan(&m, NULL, 0, 45), 0x38);
    /* Window from 25: F3, D4, D5 in it, D2 its base -> D1, F0 too. */
    assert_int_equal(plan(&m, NULL, 0, 25), 0x3F);
    /* Window from 30 (F3 exactly at it): D2 is the base. */
    assert_int_equal(plan(&m, NULL, 0, 30), 0x3F);
    /* Everything in the window. */
    assert_int_equal(plan(&m, NULL, 0, 0), 0x3F);
    /* Nothing in the window: the newest (also the base) and its chain. */
    assert_int_equal(plan(&m, NULL, 0, 1000), 0x38);
    /* A branch point between D1 and D2 keeps D1 and F0. */
    lb_lsn at = 250;
    assert_int_equal(plan(&m, &at, 1, 1000), 0x3B);
    /* A branch point before every snapshot needs none of them. */
    at = 50;
    assert_int_equal(plan(&m, &at, 1, 1000), 0x38);
    /* A branch point exactly at F3's LSN needs F3 only. */
    at = 400;
    assert_int_equal(plan(&m, &at, 1, 1000), 0x38);
    free(m.snapshots);
}

static void
test_no_full_snapshot_keeps_the_whole_chain(void **state)
{
    (void)state;
    /* A branch's own snapshots are all deltas over its ancestor's. */
    ps_tlmeta m = timeline(4, 0);
    assert_int_equal(plan(&m, NULL, 0, 1000), 0xF);
    free(m.snapshots);
    /* The newest is full: everything older can go. */
    m = timeline(4, 1u << 3);
    assert_int_equal(plan(&m, NULL, 0, 1000), 0x8);
    free(m.snapshots);
    /* Nothing to plan. */
    m = timeline(0, 0);
    assert_int_equal(plan(&m, NULL, 0, 1000), 0);
    free(m.snapshots);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_and_chains),
        cmocka_unit_test(test_no_full_snapshot_keeps_the_whole_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
