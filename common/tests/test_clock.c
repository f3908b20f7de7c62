/*
 * test_clock.c: the monotonic clock does not go back; a deadline from
 * lb_mono_deadline() is normalized and lies after_ms ahead on the
 * monotonic clock; a condition made by lb_cond_init_mono() times out on
 * such a deadline (it would wait for decades if it measured the wall
 * clock, whose seconds count from 1970 rather than from boot).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>

#include "clock.h"
#include "errors.h"

static void
test_mono_is_monotonic(void **state)
{
    (void)state;
    int64_t a = lb_mono_ms();
    double s = lb_mono_s();
    int64_t b = lb_mono_ms();
    assert_true(b >= a);
    assert_true(s * 1000 >= (double)a - 1 && s * 1000 <= (double)b + 1);
    /* the wall clock is Unix time: after 2020 */
    assert_true(lb_now_ms() > 1577836800000LL);
}

static void
test_deadline_is_normalized_and_ahead(void **state)
{
    (void)state;
    for (int64_t after = 0; after < 3000; after += 137) {
        int64_t before = lb_mono_ms();
        struct timespec d = lb_mono_deadline(after);
        assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
        int64_t d_ms = (int64_t)d.tv_sec * 1000 + d.tv_nsec / 1000000;
        assert_true(d_ms >= before + after);
        assert_true(d_ms <= lb_mono_ms() + after);
    }
}

static void
test_monotonic_condition_times_out(void **state)
{
    (void)state;
    pthread_cond_t cond;
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    assert_int_equal(lb_cond_init_mono(&cond), 0);
    pthread_mutex_lock(&lock);
    int64_t t0 = lb_mono_ms();
    struct timespec d = lb_mono_deadline(50);
    int rc;
    while ((rc = pthread_cond_timedwait(&cond, &lock, &d)) == 0)
        ;
    assert_int_equal(rc, ETIMEDOUT);
    assert_true(lb_mono_ms() >= t0 + 50);
    pthread_mutex_unlock(&lock);
    pthread_cond_destroy(&cond);
}

/* RFC 3339: fractions to the microsecond, offsets, z in either case; every
 * malformed or impossible time refused. */
static void
test_rfc3339(void **state)
{
    (void)state;
    int64_t us, us2;
    assert_int_equal(lb_rfc3339_parse("1970-01-01T00:00:10Z", &us), 0);
    assert_int_equal(us, 10000000);
    assert_int_equal(lb_rfc3339_parse("2026-12-04T23:41:09Z", &us), 0);
    assert_int_equal(us, 1796427669LL * 1000000);
    assert_int_equal(lb_rfc3339_parse("2026-12-04t23:41:09z", &us2), 0);
    assert_int_equal(us, us2);
    /* Fractions: fewer digits scale up, more are dropped. */
    assert_int_equal(lb_rfc3339_parse("2026-12-04T23:41:09.123456Z", &us2), 0);
    assert_int_equal(us2 - us, 123456);
    assert_int_equal(lb_rfc3339_parse("2026-12-04T23:41:09.5Z", &us2), 0);
    assert_int_equal(us2 - us, 500000);
    assert_int_equal(lb_rfc3339_parse("2026-12-04T23:41:09.123456789Z", &us2), 0);
    assert_int_equal(us2 - us, 123456);
    /* Offsets: the same instant. */
    assert_int_equal(lb_rfc3339_parse("2026-12-05T00:41:09+01:00", &us2), 0);
    assert_int_equal(us2, us);
    assert_int_equal(lb_rfc3339_parse("2026-12-04T18:11:09.000001-05:30", &us2), 0);
    assert_int_equal(us2, us + 1);
    /* Leap days and a leap second. */
    assert_int_equal(lb_rfc3339_parse("2024-02-29T00:00:00Z", &us), 0);
    assert_int_equal(lb_rfc3339_parse("2000-02-29T00:00:00Z", &us), 0);
    assert_int_equal(lb_rfc3339_parse("2016-12-31T23:59:60Z", &us), 0);
    assert_int_equal(lb_rfc3339_parse("2017-01-01T00:00:00Z", &us2), 0);
    assert_int_equal(us, us2);
    const char *bad[] = {"",
                         "yesterday",
                         "2026-12-04",
                         "2026-12-04T23:41:09",
                         "2026-12-04 23:41:09Z",
                         "2026-13-04T23:41:09Z",
                         "2026-00-04T23:41:09Z",
                         "2026-04-31T00:00:00Z",
                         "2025-02-29T00:00:00Z",
                         "1900-02-29T00:00:00Z",
                         "1969-12-31T23:59:59Z",
                         "2026-12-04T24:00:00Z",
                         "2026-12-04T23:60:00Z",
                         "2026-12-04T23:41:61Z",
                         "2026-12-04T 1:41:09Z",
                         "+026-12-04T23:41:09Z",
                         "2026-12-04T23:41:09Zjunk",
                         "2026-12-04T23:41:09.Z",
                         "2026-12-04T23:41:09+1:00",
                         "2026-12-04T23:41:09+01",
                         "2026-12-04T23:41:09+0100",
                         "2026-12-04T23:41:09+24:00",
                         "2026-12-04T23:41:09-01:60"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        us = 42;
        assert_int_equal(lb_rfc3339_parse(bad[i], &us), LB_EPARSE);
        assert_int_equal(us, 42);
    }
    assert_int_equal(lb_rfc3339_parse(NULL, &us), LB_EPARSE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mono_is_monotonic),
        cmocka_unit_test(test_deadline_is_normalized_and_ahead),
        cmocka_unit_test(test_monotonic_condition_times_out),
        cmocka_unit_test(test_rfc3339),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
