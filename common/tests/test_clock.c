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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mono_is_monotonic),
        cmocka_unit_test(test_deadline_is_normalized_and_ahead),
        cmocka_unit_test(test_monotonic_condition_times_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
