/* test_buf.c: buffer growth, NUL termination, consume, steal; error names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"

static void
test_append_grows_and_terminates(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    for (int i = 0; i < 10000; i++)
        assert_int_equal(lb_buf_append(&b, "ab", 2), 0);
    assert_int_equal(b.len, 20000);
    assert_int_equal(b.data[b.len], '\0');
    assert_true(b.cap > b.len);
    assert_int_equal(lb_buf_printf(&b, "-%d-%s", 42, "x"), 0);
    assert_string_equal(b.data + 20000, "-42-x");
    lb_buf_free(&b);
    assert_null(b.data);
}

static void
test_consume_and_steal(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    lb_buf_append_str(&b, "hello world");
    lb_buf_consume(&b, 6);
    assert_string_equal(b.data, "world");
    lb_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    lb_buf_append_str(&b, "kept");
    size_t n;
    char *p = lb_buf_steal(&b, &n);
    assert_int_equal(n, 4);
    assert_string_equal(p, "kept");
    assert_null(b.data);
    free(p);
    p = lb_buf_steal(&b, &n); /* empty buffer still gives a string */
    assert_int_equal(n, 0);
    assert_string_equal(p, "");
    free(p);
}

static void
test_reserve_overflow_refused(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    lb_buf_append_str(&b, "x");
    assert_int_equal(lb_buf_reserve(&b, SIZE_MAX), -ENOMEM);
    assert_int_equal(b.len, 1);
    assert_string_equal(b.data, "x");
    lb_buf_free(&b);
}

static void
test_error_names_and_messages(void **state)
{
    (void)state;
    assert_string_equal(lb_err_name(LB_EPARSE), "EPARSE");
    assert_string_equal(lb_strerror(LB_ESTALETERM), "stale term");
    assert_string_equal(lb_err_name(-ENOSPC), "ENOSPC");
    assert_string_equal(lb_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(lb_strerror(0), "success");
    assert_string_equal(lb_strerror(-20000), "unknown error");
    assert_true(LB_EPARSE < -4095); /* never collides with -errno */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_grows_and_terminates),
        cmocka_unit_test(test_consume_and_steal),
        cmocka_unit_test(test_reserve_overflow_refused),
        cmocka_unit_test(test_error_names_and_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
