/* test_lsn.c: LSN text form round-trips and strict parsing refuses garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "errors.h"
#include "lsn.h"

static void
test_parse_valid(void **state)
{
    (void)state;
    lb_lsn l;
    assert_int_equal(lb_lsn_parse("0/16B3F10", &l), 0);
    assert_true(l == 0x16B3F10);
    assert_int_equal(lb_lsn_parse("ffffffff/FFFFFFFF", &l), 0);
    assert_true(l == UINT64_MAX);
    assert_int_equal(lb_lsn_parse("1/0", &l), 0);
    assert_true(l == ((lb_lsn)1 << 32));
}

static void
test_parse_refuses_garbage(void **state)
{
    (void)state;
    const char *bad[] = {"",     "/",    "0/",          "/0",          "0/1G", "0x1/0", "1/2/3",
                         "0/1 ", " 0/1", "123456789/0", "0/123456789", "-1/0", "0.1"};
    lb_lsn l = 42;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(lb_lsn_parse(bad[i], &l), LB_EPARSE);
        assert_true(l == 42); /* untouched on failure */
    }
    assert_int_equal(lb_lsn_parse(NULL, &l), LB_EPARSE);
}

static void
test_format_matches_postgres(void **state)
{
    (void)state;
    char buf[LB_LSN_STRLEN];
    assert_string_equal(lb_lsn_format(0x16B3F10, buf), "0/16B3F10");
    assert_string_equal(lb_lsn_format(0, buf), "0/0");
    assert_string_equal(lb_lsn_format(UINT64_MAX, buf), "FFFFFFFF/FFFFFFFF");
    /* round trip over a spread of values */
    for (uint64_t v = 1; v != 0; v *= 3) {
        lb_lsn back;
        assert_int_equal(lb_lsn_parse(lb_lsn_format(v, buf), &back), 0);
        assert_true(back == v);
        if (v > UINT64_MAX / 3)
            break;
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_refuses_garbage),
        cmocka_unit_test(test_format_matches_postgres),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
