/*
 * test_store.c: the SQLite store: one rising resourceVersion, reopening
 * keeps every acknowledged write and the rv, the event window and its
 * floor (410 territory), listing with a start key, GC candidates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "testutil.h"

static char *dir;
static char path[4096];

static int
setup(void **state)
{
    (void)state;
    dir = tu_tempdir("dc-store");
    snprintf(path, sizeof path, "%s/state.db", dir);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tu_rmdir(dir);
    return 0;
}

static json_t *
obj(const char *name, const char *uid)
{
    return json_pack("{s:s, s:{s:s, s:s}}", "kind", "ConfigMap", "metadata", "name", name, "uid",
                     uid);
}

static const char *
rv_of(json_t *o)
{
    return json_string_value(json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
}

static void
test_rv_rises_and_survives_reopen(void **state)
{
    (void)state;
    dc_store *s;
    assert_int_equal(dc_store_open(path, 100, &s), 0);
    dc_store_lock(s);
    int64_t start = dc_store_rv(s);
    json_t *a = obj("a", "u1"), *b = obj("b", "u2");
    assert_int_equal(dc_store_put(s, "/configmaps", "default", "a", a, DC_ADDED), 0);
    assert_int_equal(dc_store_put(s, "apps/deployments", "default", "b", b, DC_ADDED), 0);
    assert_int_equal(atoll(rv_of(a)), start + 1);
    assert_int_equal(atoll(rv_of(b)), start + 2);
    assert_int_equal(dc_store_delete(s, "/configmaps", "default", "a", a), 0);
    assert_int_equal(atoll(rv_of(a)), start + 3);
    assert_int_equal(dc_store_delete(s, "/configmaps", "default", "a", a), -ENOENT);
    dc_store_unlock(s);
    dc_store_close(s);
    json_decref(a);

    assert_int_equal(dc_store_open(path, 100, &s), 0);
    dc_store_lock(s);
    assert_int_equal(dc_store_rv(s), start + 3);
    json_t *got = NULL;
    assert_int_equal(dc_store_get(s, "apps/deployments", "default", "b", &got), 0);
    assert_true(json_equal(got, b));
    json_decref(got);
    got = NULL;
    assert_int_equal(dc_store_get(s, "/configmaps", "default", "a", &got), -ENOENT);
    assert_true(dc_store_uid_exists(s, "u2"));
    assert_false(dc_store_uid_exists(s, "u1"));
    /* a fresh start's window begins at the stored rv */
    assert_int_equal(dc_store_window_floor(s), start + 3);
    dc_event ev[4];
    assert_int_equal(dc_store_events_since(s, start + 2, ev, 4), -ESTALE);
    assert_int_equal(dc_store_events_since(s, start + 3, ev, 4), 0);
    dc_store_unlock(s);
    dc_store_close(s);
    json_decref(b);
}

static void
test_event_window_and_floor(void **state)
{
    (void)state;
    dc_store *s;
    assert_int_equal(dc_store_open(path, 3, &s), 0);
    dc_store_lock(s);
    int64_t start = dc_store_rv(s);
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", i);
        json_t *o = obj(name, name);
        assert_int_equal(dc_store_put(s, "/configmaps", "ns", name, o, DC_ADDED), 0);
        json_decref(o);
    }
    /* only the last 3 changes are kept: resuming needs rv >= start + 2 */
    assert_int_equal(dc_store_window_floor(s), start + 2);
    dc_event ev[8];
    assert_int_equal(dc_store_events_since(s, start + 1, ev, 8), -ESTALE);
    int n = dc_store_events_since(s, start + 2, ev, 8);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++) {
        assert_int_equal(ev[i].rv, start + 3 + i);
        assert_int_equal(ev[i].type, DC_ADDED);
        assert_string_equal(ev[i].resource, "/configmaps");
        dc_event_clear(&ev[i]);
    }
    assert_int_equal(dc_store_events_since(s, start + 4, ev, 1), 1);
    assert_int_equal(ev[0].rv, start + 5);
    dc_event_clear(&ev[0]);
    dc_store_unlock(s);
    dc_store_close(s);
}

static void
test_event_window_by_weight(void **state)
{
    (void)state;
    dc_store *s;
    assert_int_equal(dc_store_open(path, 1000, &s), 0);
    dc_store_set_max_bytes(s, 3000);
    dc_store_lock(s);
    int64_t start = dc_store_rv(s);
    char big[1001];
    memset(big, 'x', 1000);
    big[1000] = '\0';
    for (int i = 0; i < 5; i++) {
        json_t *o = obj("big", "u");
        json_object_set_new(o, "data", json_pack("{s:s}", "k", big));
        assert_int_equal(dc_store_put(s, "/configmaps", "ns", "big", o, DC_MODIFIED), 0);
        json_decref(o);
    }
    /* each change weighs a little over 1000 bytes: only 2 fit in 3000 */
    assert_int_equal(dc_store_window_floor(s), start + 3);
    dc_event ev[8];
    assert_int_equal(dc_store_events_since(s, start + 2, ev, 8), -ESTALE);
    int n = dc_store_events_since(s, start + 3, ev, 8);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++)
        dc_event_clear(&ev[i]);
    dc_store_unlock(s);
    dc_store_close(s);
}

/* A full disk: the write fails with an error, changes nothing (not the
 * rv, not the stored objects, no event), and writes work again once there
 * is room. */
static void
test_full_disk_fails_the_write_and_keeps_the_data(void **state)
{
    (void)state;
    dc_store *s;
    assert_int_equal(dc_store_open(path, 100, &s), 0);
    dc_store_lock(s);
    json_t *a = obj("a", "ua");
    assert_int_equal(dc_store_put(s, "/configmaps", "ns", "a", a, DC_ADDED), 0);
    int64_t rv = dc_store_rv(s);
    assert_int_equal(dc_store_cap_pages(s, 1), 0);
    char big[20000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    int failures = 0;
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "big%d", i);
        json_t *o = obj(name, name);
        json_object_set_new(o, "data", json_pack("{s:s}", "k", big));
        if (dc_store_put(s, "/configmaps", "ns", name, o, DC_ADDED) == -EIO)
            failures++;
        json_decref(o);
    }
    assert_true(failures > 0);
    dc_event ev[32];
    int n = dc_store_events_since(s, rv, ev, 32);
    assert_int_equal(dc_store_rv(s), rv + (20 - failures)); /* only real writes count */
    assert_int_equal(n, 20 - failures);
    for (int i = 0; i < n; i++)
        dc_event_clear(&ev[i]);
    json_t *got = NULL;
    assert_int_equal(dc_store_get(s, "/configmaps", "ns", "a", &got), 0);
    assert_true(json_equal(got, a));
    json_decref(got);
    assert_int_equal(dc_store_cap_pages(s, 0), 0);
    json_t *b = obj("b", "ub");
    assert_int_equal(dc_store_put(s, "/configmaps", "ns", "b", b, DC_ADDED), 0);
    dc_store_unlock(s);
    dc_store_close(s);
    json_decref(a);
    json_decref(b);
}

typedef struct seen {
    char names[16][32];
    int n;
} seen;

static int
visit(void *arg, const char *ns, const char *name, json_t *o)
{
    (void)o;
    seen *sn = arg;
    snprintf(sn->names[sn->n++], 32, "%s/%s", ns, name);
    return sn->n == 3 ? 1 : 0;
}

static int
visit_gc(void *arg, const char *resource, const char *ns, const char *name, json_t *o)
{
    (void)resource;
    return visit(arg, ns, name, o);
}

static void
test_list_after_key_and_gc_candidates(void **state)
{
    (void)state;
    dc_store *s;
    assert_int_equal(dc_store_open(path, 100, &s), 0);
    dc_store_lock(s);
    const char *keys[][2] = {{"b", "x"}, {"a", "z"}, {"a", "y"}, {"c", "w"}};
    for (int i = 0; i < 4; i++) {
        json_t *o = obj(keys[i][1], keys[i][1]);
        if (i == 3)
            json_object_set_new(json_object_get(o, "metadata"), "ownerReferences",
                                json_pack("[{s:s}]", "uid", "u-owner"));
        assert_int_equal(dc_store_put(s, "/configmaps", keys[i][0], keys[i][1], o, DC_ADDED), 0);
        json_decref(o);
    }
    seen sn = {0};
    assert_int_equal(dc_store_list(s, "/configmaps", NULL, NULL, NULL, visit, &sn), 0);
    assert_int_equal(sn.n, 3); /* the visitor stopped at 3 */
    assert_string_equal(sn.names[0], "a/y");
    assert_string_equal(sn.names[1], "a/z");
    assert_string_equal(sn.names[2], "b/x");
    memset(&sn, 0, sizeof sn);
    assert_int_equal(dc_store_list(s, "/configmaps", NULL, "a", "z", visit, &sn), 0);
    assert_int_equal(sn.n, 2);
    assert_string_equal(sn.names[0], "b/x");
    assert_string_equal(sn.names[1], "c/w");
    memset(&sn, 0, sizeof sn);
    assert_int_equal(dc_store_list(s, "/configmaps", "a", NULL, NULL, visit, &sn), 0);
    assert_int_equal(sn.n, 2);
    memset(&sn, 0, sizeof sn);
    assert_int_equal(dc_store_list_gc_candidates(s, visit_gc, &sn), 0);
    assert_int_equal(sn.n, 1);
    assert_string_equal(sn.names[0], "c/w");
    dc_store_unlock(s);
    dc_store_close(s);
}

static void
test_open_refuses_a_corrupt_file(void **state)
{
    (void)state;
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("this is not a database, but it is long enough to have a header of sorts......", f);
    fclose(f);
    dc_store *s = NULL;
    assert_int_equal(dc_store_open(path, 10, &s), -EIO);
    assert_null(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rv_rises_and_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_window_and_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_window_by_weight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_fails_the_write_and_keeps_the_data, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_list_after_key_and_gc_candidates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_a_corrupt_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
