/*
 * test_pgbin.c: lb_pg_bindir() finds the installed PostgreSQL 15 through
 * pg_config, run by the project's process runner.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pgbin.h"

static void
test_bindir_holds_postgres(void **state)
{
    (void)state;
    char dir[PATH_MAX], postgres[PATH_MAX + 16];
    lb_pg_bindir(dir, sizeof(dir));
    assert_int_equal(dir[0], '/');
    assert_null(strchr(dir, '\n'));
    snprintf(postgres, sizeof(postgres), "%s/postgres", dir);
    assert_int_equal(access(postgres, X_OK), 0);
}

static void
test_short_buffer_is_cut_not_overrun(void **state)
{
    (void)state;
    char small[8];
    memset(small, 'x', sizeof(small));
    lb_pg_bindir(small, sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bindir_holds_postgres),
        cmocka_unit_test(test_short_buffer_is_cut_not_overrun),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
