/*
 * daemon.c: pageserver start-up and shut-down.
 */
#include "daemon.h"
#include "gc.h"
#include "http_api.h"
#include "ingest.h"
#include "timelines.h"
#include "workers.h"
#include "auth.h"
#include "event_loop.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "fileio.h"
#include "log.h"
#include "pgbin.h"
#include "ltap/lakeview.h"

struct ps_call {
    ps_loop_fn fn;
    void *arg;
    bool done;
    ps_call *next;
};

bool
ps_on_loop(ps_daemon *d)
{
    return pthread_equal(pthread_self(), d->loop_thread) != 0;
}

/* The loop's side: take every queued call, run them, mark them done. */
static void
run_calls(ps_daemon *d)
{
    pthread_mutex_lock(&d->call_lock);
    ps_call *list = d->calls;
    d->calls = NULL;
    pthread_mutex_unlock(&d->call_lock);
    ps_call *rev = NULL; /* queued newest first: run oldest first */
    while (list) {
        ps_call *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    for (ps_call *c = rev; c; c = c->next)
        c->fn(d, c->arg);
    pthread_mutex_lock(&d->call_lock);
    for (ps_call *c = rev, *next; c; c = next) {
        next = c->next; /* a waiter may return (and its c go) once done is set */
        c->done = true;
    }
    pthread_cond_broadcast(&d->call_cond);
    pthread_mutex_unlock(&d->call_lock);
}

static void
on_wakeup(lb_loop *loop, void *arg)
{
    (void)loop;
    run_calls(arg);
}

int
ps_loop_call(ps_daemon *d, ps_loop_fn fn, void *arg)
{
    if (ps_on_loop(d)) {
        fn(d, arg);
        return 0;
    }
    ps_call c = {.fn = fn, .arg = arg};
    pthread_mutex_lock(&d->call_lock);
    if (d->loop_closed) {
        pthread_mutex_unlock(&d->call_lock);
        return -ECANCELED;
    }
    c.next = d->calls;
    d->calls = &c;
    lb_loop_wakeup(d->loop);
    while (!c.done)
        pthread_cond_wait(&d->call_cond, &d->call_lock);
    pthread_mutex_unlock(&d->call_lock);
    return 0;
}

static double
jobs_running(void *arg)
{
    int running, queued;
    ps_workers_counts(arg, &running, &queued);
    return running;
}

static double
jobs_queued(void *arg)
{
    int running, queued;
    ps_workers_counts(arg, &running, &queued);
    return queued;
}

static double
basebackups_running(void *arg)
{
    ps_daemon *d = arg;
    return atomic_load(&d->basebackups);
}

/* The lake status of every timeline, read back from the lake in object
 * storage (ltap/lakeview.h), so that GET .../lake and /metrics report
 * after a restart what they reported before it, without waiting for the
 * next lake run. One job on the worker pool; a run that finishes first
 * wins. */
typedef struct lake_restore {
    ps_daemon *d;
    int n;
    char ids[][2][PS_ID_LEN + 1];
} lake_restore;

static void
lake_restore_job(void *arg)
{
    lake_restore *r = arg;
    for (int i = 0; i < r->n; i++) {
        lb_err err = {0};
        int rc = ltap_timeline_status_load(r->ids[i][0], r->ids[i][1], r->d->conf.remote_storage,
                                           r->d->metrics, &err);
        if (rc && rc != LB_ENOTFOUND)
            lb_warn("lake status: could not read it from the store tenant=%s timeline=%s "
                    "error=\"%s\"",
                    r->ids[i][0], r->ids[i][1], err.message);
    }
    free(r);
}

static void
lake_status_restore(ps_daemon *d)
{
    pthread_mutex_lock(&d->lock);
    lake_restore *r = calloc(1, sizeof(*r) + (size_t)d->ntimelines * sizeof(r->ids[0]));
    for (int i = 0; r && i < d->ntimelines; i++)
        if (!d->timelines[i]->deleting) {
            memcpy(r->ids[r->n][0], d->timelines[i]->meta.tenant_id, PS_ID_LEN + 1);
            memcpy(r->ids[r->n][1], d->timelines[i]->meta.timeline_id, PS_ID_LEN + 1);
            r->n++;
        }
    pthread_mutex_unlock(&d->lock);
    if (!r)
        return;
    r->d = d;
    if (r->n == 0 || ps_workers_submit(d->workers, lake_restore_job, r) != 0)
        free(r); /* a full queue at start: GET .../lake loads it on demand */
}

int
ps_daemon_init(ps_daemon *d)
{
    int rc;
    pthread_mutex_init(&d->lock, NULL);
    pthread_mutex_init(&d->ingest_lock, NULL);
    pthread_cond_init(&d->ingest_cond, NULL);
    pthread_mutex_init(&d->call_lock, NULL);
    pthread_cond_init(&d->call_cond, NULL);
    lb_loop_set_on_wakeup(d->loop, on_wakeup, d);
    if ((rc = ps_workers_new((int)d->conf.worker_threads, (int)d->conf.worker_queue,
                             &d->workers)) != 0)
        return rc;
    if (d->conf.auth_token_file && d->conf.auth_token_file[0] &&
        (rc = lb_auth_token_load(d->conf.auth_token_file, &d->token)) != 0)
        return rc;
    if ((rc = lb_mkdir_p(d->conf.data_dir, 0700)) != 0) {
        lb_error("could not create data directory \"%s\": %s", d->conf.data_dir, lb_strerror(rc));
        return rc;
    }
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s/tmp", d->conf.data_dir);
    if ((rc = lb_mkdir_p(tmp, 0700)) != 0) {
        lb_error("could not create \"%s\": %s", tmp, lb_strerror(rc));
        return rc;
    }
    if (!d->conf.pg_bin_dir || !d->conf.pg_bin_dir[0]) {
        free(d->conf.pg_bin_dir);
        char bindir[PATH_MAX];
        lb_pg_bindir(bindir, sizeof(bindir));
        d->conf.pg_bin_dir = strdup(bindir);
    }
    if ((rc = lb_auth_keys_load(d->conf.auth_public_keys, &d->keys)) != 0) {
        lb_error("could not load auth_public_keys \"%s\": %s", d->conf.auth_public_keys,
                 lb_strerror(rc));
        return rc;
    }
    pthread_mutex_init(&d->stores.lock, NULL);
    lb_objstore *store;
    if ((rc = ps_store_acquire(d, &store)) != 0) {
        lb_error("could not open remote storage \"%s\": %s", d->conf.remote_storage,
                 lb_strerror(rc));
        return rc;
    }
    ps_store_release(d, store);
    if ((rc = lb_metrics_new(&d->metrics)) != 0 ||
        (rc = lb_metrics_counter(d->metrics, "pageserver_storage_bytes_total",
                                 "Bytes uploaded to object storage.", NULL, &d->storage_bytes)) !=
            0 ||
        (rc = lb_metrics_counter(d->metrics, "pageserver_storage_errors_total",
                                 "Failed object storage operations.", NULL, &d->storage_errors)) !=
            0 ||
        (rc = lb_metrics_histogram(d->metrics, "pageserver_snapshot_seconds",
                                   "Duration of a snapshot, replay paused.", NULL,
                                   (const double[]){0.1, 0.5, 1, 2, 5, 10, 30, 60}, 8,
                                   &d->snapshot_seconds)) != 0 ||
        (rc = lb_metrics_counter(d->metrics, "pageserver_gc_snapshots_deleted_total",
                                 "Snapshots (and their layers) deleted by gc.", NULL,
                                 &d->gc_deleted)) != 0 ||
        (rc = lb_metrics_histogram(
             d->metrics, "pageserver_snapshot_bytes", "Size of a snapshot's layer file.", NULL,
             (const double[]){1e5, 1e6, 1e7, 1e8, 1e9, 1e10}, 6, &d->snapshot_bytes)) != 0 ||
        (rc = lb_metrics_counter(d->metrics, "pageserver_snapshot_pages_total",
                                 "Main-fork pages written into layers.", NULL,
                                 &d->snapshot_pages)) != 0 ||
        (rc = lb_metrics_counter(d->metrics, "pageserver_storage_download_bytes_total",
                                 "Bytes downloaded from object storage.", NULL,
                                 &d->download_bytes)) != 0 ||
        (rc = lb_metrics_gauge(d->metrics, "pageserver_last_record_lsn",
                               "LSN a timeline's redo standby has replayed up to.",
                               "tenant_id,timeline_id", &d->last_record_lsn)) != 0 ||
        (rc = lb_metrics_gauge(d->metrics, "pageserver_ingest_lag_bytes",
                               "WAL received by a timeline's redo standby but not replayed yet.",
                               "tenant_id,timeline_id", &d->ingest_lag_bytes)) != 0 ||
        (rc = lb_metrics_gauge_fn(d->metrics, "pageserver_worker_jobs_running",
                                  "Jobs the worker pool runs now (at most worker_threads).",
                                  jobs_running, d->workers)) != 0 ||
        (rc = lb_metrics_gauge_fn(d->metrics, "pageserver_worker_jobs_queued",
                                  "Jobs waiting for a worker (at most worker_queue; more get 503).",
                                  jobs_queued, d->workers)) != 0 ||
        (rc = lb_metrics_gauge_fn(d->metrics, "pageserver_basebackups_running",
                                  "Basebackups streaming now (at most max_basebackups; more get "
                                  "503).",
                                  basebackups_running, d)) != 0)
        return rc;
    if ((rc = ps_load_timelines(d)) != 0)
        return rc;
    lb_http_server_config hc = {
        .address = d->conf.listen_http.host,
        .port = d->conf.listen_http.port,
        .threads = (unsigned)d->conf.http_threads,
        .metrics = d->metrics,
    };
    if ((rc = lb_http_server_new(&hc, &d->http)) != 0 || (rc = ps_http_routes(d)) != 0 ||
        (rc = lb_http_server_set_auth(d->http, d->keys)) != 0)
        return rc;
    if ((rc = lb_http_server_start(d->http)) != 0) {
        lb_error("could not listen on %s:%d: %s", hc.address, hc.port, lb_strerror(rc));
        return rc;
    }
    d->http_port = lb_http_server_port(d->http);
    if ((rc = ps_gc_start(d, &d->gc)) != 0)
        return rc;
    /* The ids first, under the lock: HTTP already runs and may change the
     * registry. */
    pthread_mutex_lock(&d->lock);
    int n = 0;
    char(*ids)[2][PS_ID_LEN + 1] = calloc(d->ntimelines ? (size_t)d->ntimelines : 1, sizeof(*ids));
    for (int i = 0; ids && i < d->ntimelines; i++)
        if (d->timelines[i]->meta.nsafekeepers) {
            memcpy(ids[n][0], d->timelines[i]->meta.tenant_id, PS_ID_LEN + 1);
            memcpy(ids[n][1], d->timelines[i]->meta.timeline_id, PS_ID_LEN + 1);
            n++;
        }
    int ntimelines = d->ntimelines;
    pthread_mutex_unlock(&d->lock);
    if (!ids)
        return -ENOMEM;
    for (int i = 0; i < n; i++)
        if ((rc = ps_ingest_start(d, ids[i][0], ids[i][1])) != 0)
            lb_error("could not start ingest tenant=%s timeline=%s: %s", ids[i][0], ids[i][1],
                     lb_strerror(rc));
    free(ids);
    lake_status_restore(d);
    lb_info("pageserver started http=%s:%d remote_storage=%s timelines=%d", hc.address,
            d->http_port, d->conf.remote_storage, ntimelines);
    return 0;
}

void
ps_daemon_shutdown(ps_daemon *d)
{
    /* The loop has stopped: calls queued before now run here, on its
     * thread; later ones are refused (an HTTP handler still running gets
     * an error), and from here this thread owns the loop's timers. */
    pthread_mutex_lock(&d->call_lock);
    d->loop_closed = true;
    pthread_mutex_unlock(&d->call_lock);
    run_calls(d);
    if (d->http)
        lb_http_server_free(d->http);
    ps_gc_stop(d->gc);
    ps_ingest_stop_all(d);
    ps_workers_free(d->workers); /* runs what is queued, joins */
    d->workers = NULL;
    for (int i = 0; i < d->ntimelines; i++) {
        ps_tlmeta_free(&d->timelines[i]->meta);
        pthread_mutex_destroy(&d->timelines[i]->save_lock);
        free(d->timelines[i]);
    }
    d->ntimelines = 0;
    for (int i = 0; i < d->stores.nfree; i++)
        lb_objstore_close(d->stores.free[i]);
    d->stores.nfree = 0;
    lb_auth_token_free(d->token);
    d->token = NULL;
    lb_metrics_free(d->metrics);
    lb_auth_keys_free(d->keys);
    d->keys = NULL;
}

int
ps_store_acquire(ps_daemon *d, lb_objstore **out)
{
    pthread_mutex_lock(&d->stores.lock);
    lb_objstore *s = d->stores.nfree ? d->stores.free[--d->stores.nfree] : NULL;
    pthread_mutex_unlock(&d->stores.lock);
    if (s) {
        *out = s;
        return 0;
    }
    return lb_objstore_open(d->conf.remote_storage, NULL, out);
}

void
ps_store_release(ps_daemon *d, lb_objstore *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&d->stores.lock);
    if (d->stores.nfree < (int)(sizeof(d->stores.free) / sizeof(d->stores.free[0]))) {
        d->stores.free[d->stores.nfree++] = s;
        s = NULL;
    }
    pthread_mutex_unlock(&d->stores.lock);
    lb_objstore_close(s); /* beyond the pool's size */
}
