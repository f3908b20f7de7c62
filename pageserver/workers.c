/*
 * workers.c: a fixed set of threads taking jobs from one FIFO queue of
 * bounded length (see workers.h).
 *
 * One mutex (w->lock) guards the queue, the stop flag and the done flags
 * of waited-for jobs; it is a leaf lock, never held while a job runs.
 * A job submitted with ps_workers_submit is a node the pool allocates and
 * frees itself, so a job whose fn frees its own arg leaves nothing
 * behind; a job of ps_workers_run lives on its waiter's stack, and the
 * worker marks it done under the lock as its very last access.
 */
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct ps_job {
    ps_work_fn fn;
    void *arg;
    bool waited; /* on the stack of a ps_workers_run caller */
    bool done;
    struct ps_job *next;
} ps_job;

struct ps_workers {
    pthread_mutex_t lock;
    pthread_cond_t work; /* a job was queued, or stop */
    pthread_cond_t done; /* a waited-for job finished */
    ps_job *head, *tail;
    int queued, queue_max;
    int running; /* jobs a worker runs now */
    bool stop;
    int nthreads;
    pthread_t *threads;
};

static _Thread_local bool on_worker;

bool
ps_workers_on_worker(void)
{
    return on_worker;
}

static void *
worker_main(void *arg)
{
    ps_workers *w = arg;
    on_worker = true;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->stop)
            pthread_cond_wait(&w->work, &w->lock);
        ps_job *j = w->head;
        if (!j)
            break; /* stop, and the queue is empty */
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        w->queued--;
        w->running++;
        pthread_mutex_unlock(&w->lock);
        ps_work_fn fn = j->fn;
        void *jarg = j->arg;
        bool waited = j->waited;
        if (!waited)
            free(j);
        fn(jarg);
        pthread_mutex_lock(&w->lock);
        w->running--;
        if (waited) {
            j->done = true;
            pthread_cond_broadcast(&w->done);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int
ps_workers_new(int threads, int queue_max, ps_workers **out)
{
    ps_workers *w = calloc(1, sizeof(*w));
    if (!w || threads < 1 || !(w->threads = calloc((size_t)threads, sizeof(pthread_t)))) {
        free(w);
        return threads < 1 ? -EINVAL : -ENOMEM;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->work, NULL);
    pthread_cond_init(&w->done, NULL);
    w->queue_max = queue_max;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0) {
            ps_workers_free(w);
            return -EAGAIN;
        }
        w->nthreads++;
    }
    *out = w;
    return 0;
}

void
ps_workers_free(ps_workers *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->done);
    free(w->threads);
    free(w);
}

static int
enqueue_locked(ps_workers *w, ps_job *j)
{
    if (w->stop || w->queued >= w->queue_max)
        return -EBUSY;
    j->next = NULL;
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->queued++;
    pthread_cond_signal(&w->work);
    return 0;
}

int
ps_workers_submit(ps_workers *w, ps_work_fn fn, void *arg)
{
    ps_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&w->lock);
    int rc = enqueue_locked(w, j);
    pthread_mutex_unlock(&w->lock);
    if (rc)
        free(j);
    return rc;
}

int
ps_workers_run(ps_workers *w, ps_work_fn fn, void *arg)
{
    if (on_worker) {
        fn(arg);
        return 0;
    }
    ps_job j = {.fn = fn, .arg = arg, .waited = true};
    pthread_mutex_lock(&w->lock);
    int rc = enqueue_locked(w, &j);
    while (rc == 0 && !j.done)
        pthread_cond_wait(&w->done, &w->lock);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

void
ps_workers_counts(ps_workers *w, int *running, int *queued)
{
    pthread_mutex_lock(&w->lock);
    *running = w->running;
    *queued = w->queued;
    pthread_mutex_unlock(&w->lock);
}
