/* test_quantity.c: Kubernetes quantities (also in thousandths) and
 * durations, and what they refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "errors.h"
#include "quantity.h"

static void
test_quantities(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t value;
    } ok[] = {
        {"1Gi", 1073741824LL},
        {"1Ki", 1024},
        {"512Mi", 536870912LL},
        {"1.5Gi", 1610612736LL},
        {"100M", 100000000LL},
        {"1k", 1000},
        {"250m", 1},
        {"2", 2},
        {"1e3", 1000},
        {"1E", 1000000000000000000LL},
        {"+5", 5},
        {"0", 0},
        {".5Ki", 512},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t v = -1;
        assert_int_equal(lb_quantity_parse(ok[i].text, &v), 0);
        assert_int_equal(v, ok[i].value);
    }
    const char *bad[] = {"",      "Gi",   "1GB",   "1 Gi", "-1Gi", "1Gi ",
                         "1.2.3", "10Ei", "1e999", "abc",  "1iG",  "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v;
        assert_int_equal(lb_quantity_parse(bad[i], &v), LB_EPARSE);
    }
    int64_t v;
    assert_int_equal(lb_quantity_parse(NULL, &v), LB_EPARSE);
}

/* Thousandths, rounded up: millicores. */
static void
test_milli(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t value;
    } ok[] = {{"500m", 500}, {"2", 2000}, {"0.25", 250}, {"1.0005", 1001}, {"1k", 1000000}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t v = -1;
        assert_int_equal(lb_quantity_milli(ok[i].text, &v), 0);
        assert_int_equal(v, ok[i].value);
    }
    int64_t v;
    assert_int_equal(lb_quantity_milli("5Xi", &v), LB_EPARSE);
    assert_int_equal(lb_quantity_milli("10E", &v), LB_EPARSE);
}

static void
test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t ms;
    } ok[] = {
        {"168h", 604800000LL}, {"5m", 300000},    {"0s", 0},         {"0", 0},
        {"1h30m", 5400000},    {"1.5h", 5400000}, {"300ms", 300},    {"2h45m10s", 9910000},
        {"1500us", 1},         {"10ns", 0},       {"1\xc2\xb5s", 0}, {"2d", 172800000LL},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t ms = -1;
        assert_int_equal(lb_duration_parse(ok[i].text, &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    const char *bad[] = {"", "5", "h", "5 m", "-5m", "5w", "1.5.h", "m5", "5mm", "9999999999999h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms;
        assert_int_equal(lb_duration_parse(bad[i], &ms), LB_EPARSE);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantities),
        cmocka_unit_test(test_milli),
        cmocka_unit_test(test_durations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
