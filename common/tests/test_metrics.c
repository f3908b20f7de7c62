/* test_metrics.c: the registry renders exact Prometheus text, refuses bad
 * declarations, and loses no update under concurrent writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"
#include "metrics.h"

static char *
render(lb_metrics *m)
{
    lb_buf out = LB_BUF_INIT;
    assert_int_equal(lb_metrics_render(m, &out), 0);
    return out.data ? lb_buf_steal(&out, NULL) : strdup("");
}

static double
read_temperature(void *arg)
{
    return *(double *)arg;
}

static void
test_exact_text_output(void **state)
{
    (void)state;
    lb_metrics *m;
    assert_int_equal(lb_metrics_new(&m), 0);

    lb_counter *requests, *get_ok, *post_err;
    assert_int_equal(
        lb_metrics_counter(m, "lb_requests_total", "Requests served.", "method, status", &requests),
        0);
    assert_int_equal(lb_counter_labels(requests, &post_err, "POST", "500", NULL), 0);
    assert_int_equal(lb_counter_labels(requests, &get_ok, "GET", "200", NULL), 0);
    lb_counter_inc(get_ok);
    lb_counter_add(get_ok, 2);
    lb_counter_inc(post_err);

    lb_gauge *conns;
    assert_int_equal(lb_metrics_gauge(m, "lb_connections", "Open connections.", NULL, &conns), 0);
    lb_gauge_set(conns, 5);
    lb_gauge_dec(conns);
    lb_gauge_add(conns, 0.5);

    lb_histogram *lat;
    const double bounds[] = {0.1, 1, 2.5};
    assert_int_equal(
        lb_metrics_histogram(m, "lb_latency_seconds", "Latency.", NULL, bounds, 3, &lat), 0);
    lb_histogram_observe(lat, 0.05);
    lb_histogram_observe(lat, 0.1); /* le is inclusive */
    lb_histogram_observe(lat, 2);
    lb_histogram_observe(lat, 7);

    double temperature = 21.25;
    assert_int_equal(lb_metrics_gauge_fn(m, "lb_temperature", "Read at scrape time.",
                                         read_temperature, &temperature),
                     0);

    char *text = render(m);
    const char *expected = "# HELP lb_connections Open connections.\n"
                           "# TYPE lb_connections gauge\n"
                           "lb_connections 4.5\n"
                           "# HELP lb_latency_seconds Latency.\n"
                           "# TYPE lb_latency_seconds histogram\n"
                           "lb_latency_seconds_bucket{le=\"0.1\"} 2\n"
                           "lb_latency_seconds_bucket{le=\"1\"} 2\n"
                           "lb_latency_seconds_bucket{le=\"2.5\"} 3\n"
                           "lb_latency_seconds_bucket{le=\"+Inf\"} 4\n"
                           "lb_latency_seconds_sum 9.15\n"
                           "lb_latency_seconds_count 4\n"
                           "# HELP lb_requests_total Requests served.\n"
                           "# TYPE lb_requests_total counter\n"
                           "lb_requests_total{method=\"GET\",status=\"200\"} 3\n"
                           "lb_requests_total{method=\"POST\",status=\"500\"} 1\n"
                           "# HELP lb_temperature Read at scrape time.\n"
                           "# TYPE lb_temperature gauge\n"
                           "lb_temperature 21.25\n";
    assert_string_equal(text, expected);
    free(text);

    temperature = -3;
    text = render(m);
    assert_non_null(strstr(text, "\nlb_temperature -3\n"));
    free(text);
    lb_metrics_free(m);
}

static void
test_labelled_histogram_and_escaping(void **state)
{
    (void)state;
    lb_metrics *m;
    assert_int_equal(lb_metrics_new(&m), 0);
    lb_histogram *fam, *h;
    const double bounds[] = {0.005, 0.25};
    assert_int_equal(
        lb_metrics_histogram(m, "x_seconds", "Back\\slash and\nnewline.", "route", bounds, 2, &fam),
        0);
    assert_int_equal(lb_histogram_labels(fam, &h, "/a\"b\\c\nd", NULL), 0);
    lb_histogram_observe(h, 0.001);
    lb_histogram_observe(h, NAN); /* ignored */
    assert_int_equal(lb_histogram_count(h), 1);

    char *text = render(m);
    const char *expected = "# HELP x_seconds Back\\\\slash and\\nnewline.\n"
                           "# TYPE x_seconds histogram\n"
                           "x_seconds_bucket{route=\"/a\\\"b\\\\c\\nd\",le=\"0.005\"} 1\n"
                           "x_seconds_bucket{route=\"/a\\\"b\\\\c\\nd\",le=\"0.25\"} 1\n"
                           "x_seconds_bucket{route=\"/a\\\"b\\\\c\\nd\",le=\"+Inf\"} 1\n"
                           "x_seconds_sum{route=\"/a\\\"b\\\\c\\nd\"} 0.001\n"
                           "x_seconds_count{route=\"/a\\\"b\\\\c\\nd\"} 1\n";
    assert_string_equal(text, expected);
    free(text);
    lb_metrics_free(m);
}

static void
test_special_values_render(void **state)
{
    (void)state;
    lb_metrics *m;
    assert_int_equal(lb_metrics_new(&m), 0);
    lb_gauge *a, *b, *c;
    assert_int_equal(lb_metrics_gauge(m, "a", "", NULL, &a), 0);
    assert_int_equal(lb_metrics_gauge(m, "b", "", NULL, &b), 0);
    assert_int_equal(lb_metrics_gauge(m, "c", "", NULL, &c), 0);
    lb_gauge_set(a, INFINITY);
    lb_gauge_set(b, NAN);
    lb_gauge_set(c, 0.1);
    char *text = render(m);
    assert_non_null(strstr(text, "\na +Inf\n"));
    assert_non_null(strstr(text, "\nb NaN\n"));
    assert_non_null(strstr(text, "\nc 0.1\n")); /* shortest round-trip form */
    free(text);
    lb_metrics_free(m);
}

static void
test_redeclare_returns_same_or_conflicts(void **state)
{
    (void)state;
    lb_metrics *m;
    assert_int_equal(lb_metrics_new(&m), 0);
    lb_counter *c1, *c2;
    lb_gauge *g;
    assert_int_equal(lb_metrics_counter(m, "dup_total", "h", "a", &c1), 0);
    assert_int_equal(lb_metrics_counter(m, "dup_total", "h", "a", &c2), 0);
    assert_ptr_equal(c1, c2);
    assert_int_equal(lb_metrics_counter(m, "dup_total", "h", "b", &c2), LB_EEXIST);
    assert_int_equal(lb_metrics_counter(m, "dup_total", "h", NULL, &c2), LB_EEXIST);
    assert_int_equal(lb_metrics_gauge(m, "dup_total", "h", "a", &g), LB_EEXIST);
    lb_metrics_free(m);
}

static void
test_bad_declarations_refused(void **state)
{
    (void)state;
    lb_metrics *m;
    assert_int_equal(lb_metrics_new(&m), 0);
    lb_counter *c;
    lb_histogram *h;
    assert_int_equal(lb_metrics_counter(m, "", "h", NULL, &c), -EINVAL);
    assert_int_equal(lb_metrics_counter(m, "9lives", "h", NULL, &c), -EINVAL);
    assert_int_equal(lb_metrics_counter(m, "has-dash", "h", NULL, &c), -EINVAL);
    assert_int_equal(lb_metrics_counter(m, "ok", "h", "a,a", &c), -EINVAL);
    assert_int_equal(lb_metrics_counter(m, "ok", "h", "__reserved", &c), -EINVAL);
    assert_int_equal(lb_metrics_counter(m, "ok", "h", "a,,b", &c), -EINVAL);
    assert_int_equal(lb_metrics_counter(m, "ok", "h", "a b", &c), -EINVAL);
    const double unsorted[] = {1, 0.5};
    const double inf[] = {1, INFINITY};
    const double fine[] = {1};
    assert_int_equal(lb_metrics_histogram(m, "h1", "", NULL, unsorted, 2, &h), -EINVAL);
    assert_int_equal(lb_metrics_histogram(m, "h2", "", NULL, inf, 2, &h), -EINVAL);
    assert_int_equal(lb_metrics_histogram(m, "h3", "", "le", fine, 1, &h), -EINVAL);
    assert_int_equal(lb_metrics_gauge_fn(m, "g", "", NULL, NULL), -EINVAL);

    /* wrong number of label values; a family handle ignores updates */
    lb_counter *fam, *s;
    assert_int_equal(lb_metrics_counter(m, "two_total", "h", "a,b", &fam), 0);
    assert_int_equal(lb_counter_labels(fam, &s, "x", NULL), -EINVAL);
    assert_int_equal(lb_counter_labels(fam, &s, "x", "y", "z", NULL), -EINVAL);
    lb_counter_inc(fam);
    assert_true(lb_counter_value(fam) == 0);
    /* an unlabelled counter has no series to look up, and never goes down */
    lb_counter *plain;
    assert_int_equal(lb_metrics_counter(m, "plain_total", "h", NULL, &plain), 0);
    assert_int_equal(lb_counter_labels(plain, &s, NULL), -EINVAL);
    lb_counter_add(plain, -5);
    lb_counter_add(plain, NAN);
    assert_true(lb_counter_value(plain) == 0);

    /* nothing half-registered shows up */
    char *text = render(m);
    assert_null(strstr(text, "ok"));
    assert_null(strstr(text, "h1"));
    free(text);
    lb_metrics_free(m);
}

#define THREADS 8
#define ITERATIONS 50000

typedef struct worker_arg {
    lb_counter *family;
    lb_gauge *gauge;
    lb_histogram *hist;
    int id;
} worker_arg;

static void *
worker(void *p)
{
    worker_arg *a = p;
    for (int i = 0; i < ITERATIONS; i++) {
        lb_counter *s;
        /* half the threads share a series, each also creates its own */
        if (lb_counter_labels(a->family, &s, (i & 1) ? "shared" : "own", NULL) != 0)
            return (void *)1;
        lb_counter_inc(s);
        lb_gauge_inc(a->gauge);
        lb_histogram_observe(a->hist, (double)(i % 4));
    }
    return NULL;
}

static void
test_concurrent_updates_add_up(void **state)
{
    (void)state;
    lb_metrics *m;
    assert_int_equal(lb_metrics_new(&m), 0);
    worker_arg args[THREADS];
    pthread_t threads[THREADS];
    lb_counter *fam;
    lb_gauge *g;
    lb_histogram *h;
    const double bounds[] = {0.5, 1.5};
    assert_int_equal(lb_metrics_counter(m, "ops_total", "", "kind", &fam), 0);
    assert_int_equal(lb_metrics_gauge(m, "level", "", NULL, &g), 0);
    assert_int_equal(lb_metrics_histogram(m, "obs", "", NULL, bounds, 2, &h), 0);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (worker_arg){fam, g, h, i};
        assert_int_equal(pthread_create(&threads[i], NULL, worker, &args[i]), 0);
    }
    /* scrape while writers run: must not crash and must stay self-consistent */
    for (int i = 0; i < 20; i++) {
        char *text = render(m);
        free(text);
    }
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(threads[i], &ret);
        assert_null(ret);
    }
    lb_counter *own, *shared;
    assert_int_equal(lb_counter_labels(fam, &own, "own", NULL), 0);
    assert_int_equal(lb_counter_labels(fam, &shared, "shared", NULL), 0);
    assert_true(lb_counter_value(own) == THREADS * ITERATIONS / 2);
    assert_true(lb_counter_value(shared) == THREADS * ITERATIONS / 2);
    assert_true(lb_gauge_value(g) == THREADS * ITERATIONS);
    assert_int_equal(lb_histogram_count(h), THREADS * ITERATIONS);
    /* values 0,1,2,3 equally often: sum is 1.5 per observation */
    assert_true(lb_histogram_sum(h) == 1.5 * THREADS * ITERATIONS);

    char *text = render(m);
    char line[128];
    snprintf(line, sizeof(line), "obs_bucket{le=\"0.5\"} %d\n", THREADS * ITERATIONS / 4);
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof(line), "obs_bucket{le=\"1.5\"} %d\n", THREADS * ITERATIONS / 2);
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof(line), "obs_bucket{le=\"+Inf\"} %d\n", THREADS * ITERATIONS);
    assert_non_null(strstr(text, line));
    free(text);
    lb_metrics_free(m);
}

static void
test_default_registry_is_shared(void **state)
{
    (void)state;
    lb_metrics *a = lb_metrics_default();
    assert_non_null(a);
    assert_ptr_equal(a, lb_metrics_default());
    lb_counter *c1, *c2;
    assert_int_equal(lb_metrics_counter(a, "test_default_total", "h", NULL, &c1), 0);
    assert_int_equal(lb_metrics_counter(lb_metrics_default(), "test_default_total", "h", NULL, &c2),
                     0);
    assert_ptr_equal(c1, c2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_text_output),
        cmocka_unit_test(test_labelled_histogram_and_escaping),
        cmocka_unit_test(test_special_values_render),
        cmocka_unit_test(test_redeclare_returns_same_or_conflicts),
        cmocka_unit_test(test_bad_declarations_refused),
        cmocka_unit_test(test_concurrent_updates_add_up),
        cmocka_unit_test(test_default_registry_is_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
