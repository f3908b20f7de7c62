/*
 * metrics.h: counters, gauges and histograms, rendered as Prometheus text.
 *
 * A registry (lb_metrics) holds metric families. A family has a name, a help
 * line, a type and optional label names; each distinct tuple of label values
 * is one series. Registering returns the family's handle; for a family
 * without labels that handle is its one series, for a labelled family ask
 * lb_*_labels() for the series of given values and keep the pointer.
 *
 * Updates are lock-free atomics and safe from any thread. Series live as
 * long as their registry; the pointers handed out are never invalidated.
 * Rendering follows the Prometheus text exposition format 0.0.4: families
 * sorted by name, series sorted by label values, cumulative histogram
 * buckets ending in le="+Inf", then _sum and _count.
 *
 * Every daemon's HTTP server serves a registry at /metrics (http_server.h);
 * daemons that do not pass their own use lb_metrics_default().
 */
#ifndef LB_METRICS_H
#define LB_METRICS_H

#include <stddef.h>

#include "buf.h"

typedef struct lb_metrics lb_metrics;
typedef struct lb_counter lb_counter;
typedef struct lb_gauge lb_gauge;
typedef struct lb_histogram lb_histogram;

/* Seconds: 0.5 ms to 10 s, for request and fsync latencies. */
#define LB_METRICS_LATENCY_BUCKETS                                                                 \
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10

/* ---- daemons: registries ---- */

/* A new empty registry; the caller frees it with lb_metrics_free(), which
 * also frees every family and series in it. 0 or -ENOMEM. */
int lb_metrics_new(lb_metrics **out);
void lb_metrics_free(lb_metrics *m);
/* The process-wide registry (created on first use, never freed). */
lb_metrics *lb_metrics_default(void);

/* ---- daemons and libraries: declaring metrics ----
 *
 * name: [a-zA-Z_:][a-zA-Z0-9_:]*; help: one line of text (copied).
 * label_names: comma-separated, e.g. "method,status", or NULL for none.
 * Registering a name again with the same type, labels (and buckets) returns
 * the existing family; a different declaration fails with LB_EEXIST.
 * Bad names give -EINVAL. The handle is owned by the registry. */
int lb_metrics_counter(lb_metrics *m, const char *name, const char *help, const char *label_names,
                       lb_counter **out);
int lb_metrics_gauge(lb_metrics *m, const char *name, const char *help, const char *label_names,
                     lb_gauge **out);
/* bounds: nbounds finite upper bounds in strictly increasing order (copied);
 * the +Inf bucket is implicit. "le" is not allowed as a label name. */
int lb_metrics_histogram(lb_metrics *m, const char *name, const char *help, const char *label_names,
                         const double *bounds, size_t nbounds, lb_histogram **out);
/* A gauge whose value is read at render time by calling read(arg) (on the
 * rendering thread, so it must be thread-safe). No labels. */
int lb_metrics_gauge_fn(lb_metrics *m, const char *name, const char *help,
                        double (*read)(void *arg), void *arg);

/* The series of a labelled family for the given label values, one per label
 * name, then NULL. Created on first use and owned by the registry; callers
 * on hot paths should look it up once and keep the pointer.
 * 0, -EINVAL (wrong number of values), -ENOMEM. */
int lb_counter_labels(lb_counter *family, lb_counter **series, ...) __attribute__((sentinel));
int lb_gauge_labels(lb_gauge *family, lb_gauge **series, ...) __attribute__((sentinel));
int lb_histogram_labels(lb_histogram *family, lb_histogram **series, ...) __attribute__((sentinel));

/* ---- any thread: updates ----
 *
 * Called on a labelled family's own handle (not a series), these do nothing:
 * there is no series to update. */
void lb_counter_inc(lb_counter *c);
/* v must be >= 0 (counters only go up); a negative or NaN v is ignored. */
void lb_counter_add(lb_counter *c, double v);
void lb_gauge_set(lb_gauge *g, double v);
void lb_gauge_add(lb_gauge *g, double v);
void lb_gauge_inc(lb_gauge *g);
void lb_gauge_dec(lb_gauge *g);
void lb_histogram_observe(lb_histogram *h, double v);

/* Current values, for tests and status pages. */
double lb_counter_value(const lb_counter *c);
double lb_gauge_value(const lb_gauge *g);
/* Number of observations and their sum. */
unsigned long long lb_histogram_count(const lb_histogram *h);
double lb_histogram_sum(const lb_histogram *h);

/* ---- the /metrics endpoint ---- */

/* Append the whole registry in Prometheus text format to out. 0 or -ENOMEM. */
int lb_metrics_render(lb_metrics *m, lb_buf *out);
/* Content-Type of the rendered text. */
#define LB_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
