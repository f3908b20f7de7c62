/* test_queue.c: the work queue's dedup, one-worker-per-key, delays, backoff
 * and shutdown, on a clock the test moves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "queue.h"

static int64_t fake_now;

static int64_t
clock_fn(void)
{
    return fake_now;
}

static ctl_queue *
new_queue(void)
{
    ctl_queue *q = NULL;
    fake_now = 1000;
    assert_int_equal(ctl_queue_new(100, 1600, clock_fn, &q), 0);
    return q;
}

/* The next ready key (must exist), done at once. */
static char *
take(ctl_queue *q)
{
    char *k = NULL;
    assert_int_equal(ctl_queue_get(q, 0, &k), 0);
    return k;
}

static void
test_fifo_and_dedup(void **state)
{
    (void)state;
    ctl_queue *q = new_queue();
    assert_int_equal(ctl_queue_add(q, "cluster/a/x"), 0);
    assert_int_equal(ctl_queue_add(q, "branch/a/y"), 0);
    assert_int_equal(ctl_queue_add(q, "cluster/a/x"), 0); /* dedup */
    assert_int_equal(ctl_queue_len(q), 2);
    char *k1 = take(q), *k2 = take(q);
    assert_string_equal(k1, "cluster/a/x");
    assert_string_equal(k2, "branch/a/y");
    char *k3 = NULL;
    assert_int_equal(ctl_queue_get(q, 0, &k3), LB_ETIMEOUT);
    ctl_queue_done(q, k1);
    ctl_queue_done(q, k2);
    free(k1);
    free(k2);
    assert_int_equal(ctl_queue_len(q), 0);
    ctl_queue_free(q);
}

static void
test_key_held_by_one_worker(void **state)
{
    (void)state;
    ctl_queue *q = new_queue();
    ctl_queue_add(q, "k");
    char *k = take(q);
    /* added again while a worker holds it: not handed out until done */
    ctl_queue_add(q, "k");
    ctl_queue_add(q, "k");
    char *other = NULL;
    assert_int_equal(ctl_queue_get(q, 0, &other), LB_ETIMEOUT);
    ctl_queue_done(q, k);
    free(k);
    k = take(q); /* exactly once more */
    assert_string_equal(k, "k");
    ctl_queue_done(q, k);
    free(k);
    assert_int_equal(ctl_queue_get(q, 0, &other), LB_ETIMEOUT);
    ctl_queue_free(q);
}

static void
test_add_after_and_earliest_wins(void **state)
{
    (void)state;
    ctl_queue *q = new_queue();
    ctl_queue_add_after(q, "k", 500);
    char *k = NULL;
    assert_int_equal(ctl_queue_get(q, 0, &k), LB_ETIMEOUT);
    ctl_queue_add_after(q, "k", 200); /* earlier: wins */
    ctl_queue_add_after(q, "k", 900); /* later: ignored */
    fake_now += 199;
    assert_int_equal(ctl_queue_get(q, 0, &k), LB_ETIMEOUT);
    fake_now += 1;
    k = take(q);
    ctl_queue_done(q, k);
    free(k);
    assert_int_equal(ctl_queue_len(q), 0);
    ctl_queue_free(q);
}

static void
test_backoff_doubles_caps_and_forgets(void **state)
{
    (void)state;
    ctl_queue *q = new_queue();
    const int64_t want[] = {100, 200, 400, 800, 1600, 1600};
    for (int i = 0; i < 6; i++) {
        ctl_queue_add_rate_limited(q, "k");
        assert_int_equal(ctl_queue_failures(q, "k"), i + 1);
        char *k = NULL;
        fake_now += want[i] - 1;
        assert_int_equal(ctl_queue_get(q, 0, &k), LB_ETIMEOUT);
        fake_now += 1;
        k = take(q);
        ctl_queue_done(q, k);
        free(k);
    }
    ctl_queue_forget(q, "k");
    assert_int_equal(ctl_queue_failures(q, "k"), 0);
    ctl_queue_add_rate_limited(q, "k");
    fake_now += 100;
    char *k = take(q);
    ctl_queue_done(q, k);
    free(k);
    ctl_queue_free(q);
}

static void
test_bad_input_and_shutdown(void **state)
{
    (void)state;
    ctl_queue *q = NULL;
    assert_int_equal(ctl_queue_new(0, 10, NULL, &q), -EINVAL);
    assert_int_equal(ctl_queue_new(10, 5, NULL, &q), -EINVAL);
    q = new_queue();
    assert_int_equal(ctl_queue_add(q, ""), -EINVAL);
    assert_int_equal(ctl_queue_add(q, NULL), -EINVAL);
    ctl_queue_add(q, "k");
    ctl_queue_shutdown(q);
    char *k = NULL;
    assert_int_equal(ctl_queue_get(q, 0, &k), -ESHUTDOWN);
    assert_int_equal(ctl_queue_add(q, "x"), -ESHUTDOWN);
    ctl_queue_free(q);
}

static void *
blocked_get(void *arg)
{
    char *k = NULL;
    intptr_t rc = ctl_queue_get(arg, -1, &k);
    free(k);
    return (void *)rc;
}

static void
test_shutdown_wakes_waiters(void **state)
{
    (void)state;
    ctl_queue *q = NULL;
    assert_int_equal(ctl_queue_new(10, 100, NULL, &q), 0);
    pthread_t t;
    pthread_create(&t, NULL, blocked_get, q);
    ctl_queue_shutdown(q);
    void *rc;
    pthread_join(t, &rc);
    assert_int_equal((intptr_t)rc, -ESHUTDOWN);
    ctl_queue_free(q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_dedup),
        cmocka_unit_test(test_key_held_by_one_worker),
        cmocka_unit_test(test_add_after_and_earliest_wins),
        cmocka_unit_test(test_backoff_doubles_caps_and_forgets),
        cmocka_unit_test(test_bad_input_and_shutdown),
        cmocka_unit_test(test_shutdown_wakes_waiters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
