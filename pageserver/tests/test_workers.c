/*
 * test_workers.c: the pageserver's worker pool (workers.h): the queue's
 * bound refuses with -EBUSY instead of waiting, a job that runs another
 * from a worker runs it inline (no deadlock on a pool of one), a waited
 * job has run when ps_workers_run returns, and free runs what is queued.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "workers.h"

/* A gate the first job waits at, so that the next ones stay queued. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open, gate_reached;
static atomic_int ran;

static void
gated_job(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate_lock);
    gate_reached = true;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    atomic_fetch_add(&ran, 1);
}

static void
count_job(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
}

static void
test_queue_bound_refuses(void **state)
{
    (void)state;
    ps_workers *w;
    atomic_store(&ran, 0);
    gate_open = gate_reached = false;
    assert_int_equal(ps_workers_new(1, 2, &w), 0);
    assert_int_equal(ps_workers_submit(w, gated_job, NULL), 0);
    pthread_mutex_lock(&gate_lock); /* the worker holds the first job */
    while (!gate_reached)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    assert_int_equal(ps_workers_submit(w, count_job, NULL), 0);
    assert_int_equal(ps_workers_submit(w, count_job, NULL), 0);
    /* Two wait: the third is refused, and so is a waited one, at once. */
    assert_int_equal(ps_workers_submit(w, count_job, NULL), -EBUSY);
    assert_int_equal(ps_workers_run(w, count_job, NULL), -EBUSY);
    assert_int_equal(atomic_load(&ran), 0);
    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    ps_workers_free(w); /* runs the two queued */
    assert_int_equal(atomic_load(&ran), 3);
}

typedef struct nested {
    ps_workers *w;
    int rc;
    bool on_worker;
} nested;

static void
outer_job(void *arg)
{
    nested *n = arg;
    n->on_worker = ps_workers_on_worker();
    n->rc = ps_workers_run(n->w, count_job, NULL); /* inline: the only worker is us */
}

static void
test_run_waits_and_nests(void **state)
{
    (void)state;
    ps_workers *w;
    atomic_store(&ran, 0);
    assert_int_equal(ps_workers_new(1, 4, &w), 0);
    nested n = {.w = w, .rc = -1};
    assert_false(ps_workers_on_worker());
    assert_int_equal(ps_workers_run(w, outer_job, &n), 0);
    assert_true(n.on_worker);
    assert_int_equal(n.rc, 0);
    assert_int_equal(atomic_load(&ran), 1);
    for (int i = 0; i < 100; i++)
        assert_int_equal(ps_workers_run(w, count_job, NULL), 0);
    assert_int_equal(atomic_load(&ran), 101);
    ps_workers_free(w);
}

static void
test_bad_size(void **state)
{
    (void)state;
    ps_workers *w = NULL;
    assert_int_equal(ps_workers_new(0, 4, &w), -EINVAL);
    assert_null(w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_bound_refuses),
        cmocka_unit_test(test_run_waits_and_nests),
        cmocka_unit_test(test_bad_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
