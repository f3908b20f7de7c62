/*
 * gc.c: deleting the snapshots and layers nothing needs any more.
 *
 * A snapshot is needed when it is inside the retention window (taken less
 * than gc_retention ago), when it is the newest one taken before the
 * window (a restore to the window's first moment starts from it), when it
 * is the timeline's newest, or when it is the newest at or before a
 * branch point of a child timeline. A needed snapshot needs every older
 * snapshot of the same timeline back to the nearest full one, whose layer
 * holds every page; a branch whose snapshots are all deltas needs its
 * ancestor's snapshot at the branch point, which the ancestor keeps as a
 * branch point. Everything else is deleted: first from the index (in
 * object storage, then locally), then the layer objects, then the local
 * copies. A crash in between leaves unreferenced layers, never an index
 * naming a missing one.
 *
 * Full snapshots are what make this bounded: ingest takes one when the
 * deltas since the last full one weigh as much as it (ps_image_due).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "gc.h"
#include "timelines.h"
#include "workers.h"
#include "clock.h"
#include "event_loop.h"
#include "errors.h"
#include "log.h"

/* The loop's timer queues a pass on the worker pool every gc_interval,
 * unless the last one is still running (busy). */
struct ps_gc {
    ps_daemon *d;
    uint64_t timer;       /* the loop's alone */
    pthread_mutex_t lock; /* busy, stop */
    pthread_cond_t cond;  /* busy went false */
    bool busy, stop;
};

void
ps_gc_plan(const ps_tlmeta *m, const lb_lsn *branch_points, size_t nbranch, int64_t horizon_ms,
           bool *keep)
{
    size_t n = m->nsnapshots;
    bool *anchor = calloc(n ? n : 1, sizeof(*anchor));
    if (!anchor) { /* keep everything rather than guess */
        for (size_t i = 0; i < n; i++)
            keep[i] = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        keep[i] = false;
    if (n)
        anchor[n - 1] = true;
    for (size_t i = 0; i < n; i++) {
        if (m->snapshots[i].created_ms >= horizon_ms)
            anchor[i] = true;
        else if (i + 1 == n || m->snapshots[i + 1].created_ms >= horizon_ms)
            anchor[i] = true; /* the window's base */
    }
    for (size_t b = 0; b < nbranch; b++) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < n && m->snapshots[i].lsn <= branch_points[b]; i++)
            best = i;
        if (best != SIZE_MAX)
            anchor[best] = true;
    }
    for (size_t a = n; a-- > 0;) {
        if (!anchor[a])
            continue;
        for (size_t j = a + 1; j-- > 0;) {
            if (keep[j] && j != a)
                break; /* the rest of this chain is kept already */
            keep[j] = true;
            if (m->snapshots[j].full)
                break;
        }
    }
    free(anchor);
}

int
ps_gc_once(ps_daemon *d, size_t *deleted)
{
    int64_t horizon = lb_now_ms() - d->conf.gc_retention_ms;
    size_t total = 0;
    int first_rc = 0;
    /* Ids first: the registry may change while we work. */
    pthread_mutex_lock(&d->lock);
    int n = d->ntimelines;
    char(*ids)[2][PS_ID_LEN + 1] = calloc(n ? (size_t)n : 1, sizeof(*ids));
    for (int i = 0; ids && i < n; i++) {
        memcpy(ids[i][0], d->timelines[i]->meta.tenant_id, PS_ID_LEN + 1);
        memcpy(ids[i][1], d->timelines[i]->meta.timeline_id, PS_ID_LEN + 1);
    }
    pthread_mutex_unlock(&d->lock);
    if (!ids)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        size_t k = 0;
        int rc = ps_gc_timeline(d, ids[i][0], ids[i][1], horizon, &k);
        if (rc && rc != LB_ENOTFOUND) {
            lb_warn("gc failed tenant=%s timeline=%s: %s", ids[i][0], ids[i][1], lb_strerror(rc));
            if (!first_rc)
                first_rc = rc;
        }
        if (k)
            lb_info("gc tenant=%s timeline=%s snapshots_deleted=%zu", ids[i][0], ids[i][1], k);
        total += k;
    }
    free(ids);
    size_t purged = 0;
    int prc = ps_purge_deleted(d, &purged);
    if (prc && !first_rc)
        first_rc = prc;
    if (deleted)
        *deleted = total;
    return first_rc;
}

static void
pass_job(void *arg)
{
    ps_gc *g = arg;
    ps_gc_once(g->d, NULL);
    pthread_mutex_lock(&g->lock);
    g->busy = false; /* the job's last access to g */
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static int64_t
on_timer(lb_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    ps_gc *g = arg;
    pthread_mutex_lock(&g->lock);
    bool start = !g->busy && !g->stop;
    if (start)
        g->busy = true;
    pthread_mutex_unlock(&g->lock);
    if (start && ps_workers_submit(g->d->workers, pass_job, g) != 0) {
        pthread_mutex_lock(&g->lock);
        g->busy = false; /* the pool is full: the next interval */
        pthread_mutex_unlock(&g->lock);
    }
    return g->d->conf.gc_interval_ms;
}

/* On the loop's thread (daemon.c, at start-up). */
int
ps_gc_start(ps_daemon *d, ps_gc **out)
{
    ps_gc *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->d = d;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    int rc = lb_loop_add_timer(d->loop, d->conf.gc_interval_ms, on_timer, g, &g->timer);
    if (rc) {
        free(g);
        return rc;
    }
    *out = g;
    return 0;
}

/* On the loop's thread, once it has stopped (daemon.c). */
void
ps_gc_stop(ps_gc *g)
{
    if (!g)
        return;
    lb_loop_del_timer(g->d->loop, g->timer);
    pthread_mutex_lock(&g->lock);
    g->stop = true;
    while (g->busy)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
    free(g);
}
