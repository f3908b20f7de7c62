/*
 * lake_test.h: what every lake test binary shares: one temporary directory
 * per binary (kept with LAKE_KEEP_FILES=1, for looking at the files with
 * other readers), and a file:// store in a directory.
 *
 *     int main(void) {
 *         const struct CMUnitTest tests[] = {...};
 *         return lake_test_run("lake-delta", tests);
 *     }
 *
 * Tests use g_dir for their files.
 */
#ifndef LAKE_TEST_H
#define LAKE_TEST_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "errors.h"
#include "store.h"
#include "testutil.h"

static char *g_dir;
static const char *lt_dir_prefix;

static int
lt_setup(void **state)
{
    (void)state;
    g_dir = tu_tempdir(lt_dir_prefix);
    return g_dir ? 0 : -1;
}

static int
lt_teardown(void **state)
{
    (void)state;
    if (getenv("LAKE_KEEP_FILES"))
        fprintf(stderr, "files kept in %s\n", g_dir);
    else
        tu_rmdir(g_dir);
    return 0;
}

/* Run the group with g_dir set to a new directory named after prefix. */
#define lake_test_run(prefix, tests)                                                               \
    (lt_dir_prefix = (prefix), cmocka_run_group_tests(tests, lt_setup, lt_teardown))

/* A file:// store at root; fails the test if it cannot be opened. */
static inline lake_store *
lt_open_store(const char *root)
{
    char url[PATH_MAX + 16];
    snprintf(url, sizeof(url), "file://%s", root);
    lake_store *st = NULL;
    lb_err err = {0};
    if (lake_store_open(url, NULL, &st, &err))
        fail_msg("store: %s", err.message);
    return st;
}

#endif
