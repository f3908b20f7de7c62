/*
 * queue.c: the rate-limited work queue (see queue.h).
 *
 * One array of entries, one per key that is waiting, being processed, or
 * has failures to remember; linear scans, since a controller has at most a
 * few thousand keys and each reconcile costs far more than a scan.
 *
 * An entry is
 *   pending     it wants a worker (at ready_at or later);
 *   processing  a worker holds it: never handed out twice;
 *   failures    the backoff exponent.
 * It is dropped when none of the three holds. Invariant: a key appears at
 * most once in the array.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "errors.h"
#include "queue.h"

typedef struct entry {
    char *key;
    bool pending;
    bool processing;
    int failures;
    int64_t ready_at; /* ms, monotonic */
    uint64_t seq;     /* order of the add that made it pending */
} entry;

struct ctl_queue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    entry *entries;
    size_t n, cap;
    uint64_t next_seq;
    int64_t base_ms, max_ms;
    int64_t (*now_ms)(void);
    bool shutdown;
};

int
ctl_queue_new(int64_t base_ms, int64_t max_ms, int64_t (*now_ms)(void), ctl_queue **out)
{
    if (base_ms <= 0 || max_ms < base_ms)
        return -EINVAL;
    ctl_queue *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &attr);
    pthread_condattr_destroy(&attr);
    q->base_ms = base_ms;
    q->max_ms = max_ms;
    q->now_ms = now_ms ? now_ms : lb_mono_ms;
    *out = q;
    return 0;
}

void
ctl_queue_free(ctl_queue *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++)
        free(q->entries[i].key);
    free(q->entries);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static entry *
find(ctl_queue *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->entries[i].key, key) == 0)
            return &q->entries[i];
    return NULL;
}

static entry *
find_or_add(ctl_queue *q, const char *key)
{
    entry *e = find(q, key);
    if (e)
        return e;
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        entry *n = realloc(q->entries, cap * sizeof(*n));
        if (!n)
            return NULL;
        q->entries = n;
        q->cap = cap;
    }
    char *k = strdup(key);
    if (!k)
        return NULL;
    e = &q->entries[q->n++];
    memset(e, 0, sizeof(*e));
    e->key = k;
    return e;
}

/* Drop e if nothing about it needs remembering. */
static void
maybe_drop(ctl_queue *q, entry *e)
{
    if (e->pending || e->processing || e->failures)
        return;
    free(e->key);
    size_t i = (size_t)(e - q->entries);
    q->entries[i] = q->entries[--q->n];
}

static int
add_at(ctl_queue *q, const char *key, int64_t delay_ms, bool rate_limited)
{
    if (!key || !*key)
        return -EINVAL;
    pthread_mutex_lock(&q->lock);
    if (q->shutdown) {
        pthread_mutex_unlock(&q->lock);
        return -ESHUTDOWN;
    }
    entry *e = find_or_add(q, key);
    if (!e) {
        pthread_mutex_unlock(&q->lock);
        return -ENOMEM;
    }
    if (rate_limited) {
        delay_ms = q->base_ms;
        for (int i = 0; i < e->failures && delay_ms < q->max_ms; i++)
            delay_ms *= 2;
        if (delay_ms > q->max_ms)
            delay_ms = q->max_ms;
        if (e->failures < 62)
            e->failures++;
    }
    int64_t at = q->now_ms() + (delay_ms > 0 ? delay_ms : 0);
    if (!e->pending) {
        e->pending = true;
        e->ready_at = at;
        e->seq = q->next_seq++;
    } else if (at < e->ready_at) {
        e->ready_at = at;
    }
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

int
ctl_queue_add(ctl_queue *q, const char *key)
{
    return add_at(q, key, 0, false);
}

int
ctl_queue_add_after(ctl_queue *q, const char *key, int64_t delay_ms)
{
    return add_at(q, key, delay_ms, false);
}

int
ctl_queue_add_rate_limited(ctl_queue *q, const char *key)
{
    return add_at(q, key, 0, true);
}

void
ctl_queue_forget(ctl_queue *q, const char *key)
{
    pthread_mutex_lock(&q->lock);
    entry *e = find(q, key);
    if (e) {
        e->failures = 0;
        maybe_drop(q, e);
    }
    pthread_mutex_unlock(&q->lock);
}

int
ctl_queue_failures(ctl_queue *q, const char *key)
{
    pthread_mutex_lock(&q->lock);
    entry *e = find(q, key);
    int n = e ? e->failures : 0;
    pthread_mutex_unlock(&q->lock);
    return n;
}

int
ctl_queue_get(ctl_queue *q, int64_t timeout_ms, char **key)
{
    pthread_mutex_lock(&q->lock);
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : q->now_ms() + timeout_ms;
    for (;;) {
        if (q->shutdown) {
            pthread_mutex_unlock(&q->lock);
            return -ESHUTDOWN;
        }
        int64_t now = q->now_ms();
        entry *best = NULL;
        int64_t next = INT64_MAX;
        for (size_t i = 0; i < q->n; i++) {
            entry *e = &q->entries[i];
            if (!e->pending || e->processing)
                continue;
            if (e->ready_at <= now) {
                if (!best || e->seq < best->seq)
                    best = e;
            } else if (e->ready_at < next) {
                next = e->ready_at;
            }
        }
        if (best) {
            char *k = strdup(best->key);
            if (!k) {
                pthread_mutex_unlock(&q->lock);
                return -ENOMEM;
            }
            best->pending = false;
            best->processing = true;
            *key = k;
            pthread_mutex_unlock(&q->lock);
            return 0;
        }
        if (now >= deadline) {
            pthread_mutex_unlock(&q->lock);
            return LB_ETIMEOUT;
        }
        int64_t until = next < deadline ? next : deadline;
        /* The queue's clock may be a test's; wait on the real monotonic
         * clock for at most the same span. */
        int64_t wait_ms = until == INT64_MAX ? 1000 : until - now;
        if (wait_ms > 1000)
            wait_ms = 1000;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&q->cond, &q->lock, &ts);
    }
}

void
ctl_queue_done(ctl_queue *q, const char *key)
{
    pthread_mutex_lock(&q->lock);
    entry *e = find(q, key);
    assert(e && e->processing);
    if (e) {
        e->processing = false;
        if (e->pending)
            pthread_cond_broadcast(&q->cond);
        maybe_drop(q, e);
    }
    pthread_mutex_unlock(&q->lock);
}

size_t
ctl_queue_len(ctl_queue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = 0;
    for (size_t i = 0; i < q->n; i++)
        n += q->entries[i].pending;
    pthread_mutex_unlock(&q->lock);
    return n;
}

void
ctl_queue_shutdown(ctl_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->shutdown = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}
