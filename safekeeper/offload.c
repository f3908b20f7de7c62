/*
 * offload.c: completed WAL segments go to object storage.
 *
 * A thread of its own (object storage calls block and may retry for
 * seconds) asks the loop which whole segments are committed but not yet
 * offloaded, uploads every file of each such segment (a segment where a
 * timeline switch happened has a file per PostgreSQL timeline) under
 * <tenant>/<timeline>/wal/<file name>, and then tells the loop, which
 * records the new offloaded LSN durably and removes local segments that no
 * consumer still needs. Only committed WAL is offloaded: it can never be
 * truncated, so an uploaded segment is final.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "clock.h"
#include "errors.h"
#include "log.h"
#include "objstore.h"
#include "wal.h"

#define MAX_BATCH 64

typedef struct work_item {
    char tenant[SK_ID_LEN + 1], timeline[SK_ID_LEN + 1];
    char dir[PATH_MAX];
    uint32_t seg_size;
    uint64_t from, to;
} work_item;

struct sk_offload {
    sk_daemon *sk;
    lb_objstore *store;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    work_item items[SK_MAX_TIMELINES];
    int nitems;
    /* job arguments */
    const work_item *done_item;
    uint64_t done_segno;
};

static int
job_collect(sk_daemon *sk, void *arg)
{
    sk_offload *o = arg;
    o->nitems = 0;
    for (int i = 0; i < sk->ntimelines; i++) {
        sk_timeline *tl = sk->timelines[i].tl;
        uint64_t from, to;
        sk_timeline_offload_range(tl, &from, &to);
        if (from >= to || sk_timeline_broken(tl))
            continue;
        work_item *w = &o->items[o->nitems++];
        strcpy(w->tenant, sk->timelines[i].tenant_id);
        strcpy(w->timeline, sk->timelines[i].timeline_id);
        snprintf(w->dir, sizeof(w->dir), "%s", sk_timeline_dir(tl));
        w->seg_size = sk_timeline_state(tl)->wal_seg_size;
        w->from = from;
        w->to = to > from + MAX_BATCH ? from + MAX_BATCH : to;
    }
    return 0;
}

static int
job_done(sk_daemon *sk, void *arg)
{
    sk_offload *o = arg;
    sk_tl_entry *e = sk_find(sk, o->done_item->tenant, o->done_item->timeline);
    if (!e)
        return 0; /* deleted meanwhile */
    int rc = sk_timeline_offloaded(e->tl, o->done_segno);
    if (rc == 0)
        lb_counter_add(sk->offloaded_bytes, (double)o->done_item->seg_size);
    return rc;
}

/* Upload every file of segment segno in w's directory. */
static int
upload_segment(sk_offload *o, const work_item *w, uint64_t segno)
{
    DIR *d = opendir(w->dir);
    if (!d)
        return -errno;
    int rc = 0, files = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        uint32_t tli;
        uint64_t s;
        if (lb_wal_segment_parse(e->d_name, w->seg_size, &tli, &s) != 0 || s != segno)
            continue;
        char path[PATH_MAX + 300], key[512];
        snprintf(path, sizeof(path), "%s/%s", w->dir, e->d_name);
        snprintf(key, sizeof(key), "%s/%s/wal/%s", w->tenant, w->timeline, e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            rc = -errno;
            break;
        }
        rc = lb_objstore_put_fd(o->store, key, fd);
        close(fd);
        if (rc)
            lb_warn("could not offload segment \"%s\": %s", key, lb_objstore_error(o->store));
        files++;
    }
    closedir(d);
    if (rc == 0 && files == 0) {
        /* Committed WAL whose file is gone: removed already by an earlier
         * round that crashed before recording it. Nothing to upload. */
        lb_debug("no local file for segment %llu of %s/%s", (unsigned long long)segno, w->tenant,
                 w->timeline);
    }
    return rc;
}

static void *
run(void *arg)
{
    sk_offload *o = arg;
    for (;;) {
        pthread_mutex_lock(&o->lock);
        if (!o->stop) {
            struct timespec ts = lb_mono_deadline(1000);
            pthread_cond_timedwait(&o->cond, &o->lock, &ts);
        }
        bool stop = o->stop;
        pthread_mutex_unlock(&o->lock);
        if (stop || sk_run_on_loop(o->sk, job_collect, o) != 0)
            break;
        for (int i = 0; i < o->nitems; i++) {
            const work_item *w = &o->items[i];
            for (uint64_t segno = w->from; segno < w->to; segno++) {
                if (upload_segment(o, w, segno) != 0)
                    break; /* retried next round */
                o->done_item = w;
                o->done_segno = segno + 1;
                if (sk_run_on_loop(o->sk, job_done, o) != 0)
                    break;
            }
        }
    }
    return NULL;
}

int
sk_offload_start(sk_daemon *sk, sk_offload **out)
{
    *out = NULL;
    if (!sk->conf.remote_storage || !sk->conf.remote_storage[0])
        return 0; /* offload is off: nothing is ever removed */
    sk_offload *o = calloc(1, sizeof(*o));
    if (!o)
        return -ENOMEM;
    o->sk = sk;
    pthread_mutex_init(&o->lock, NULL);
    lb_cond_init_mono(&o->cond);
    int rc = lb_objstore_open(sk->conf.remote_storage, NULL, &o->store);
    if (rc) {
        lb_error("could not open remote storage \"%s\": %s", sk->conf.remote_storage,
                 lb_strerror(rc));
        free(o);
        return rc;
    }
    if (pthread_create(&o->thread, NULL, run, o) != 0) {
        lb_objstore_close(o->store);
        free(o);
        return -EAGAIN;
    }
    *out = o;
    return 0;
}

void
sk_offload_stop(sk_offload *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&o->lock);
    o->stop = true;
    pthread_cond_signal(&o->cond);
    pthread_mutex_unlock(&o->lock);
    pthread_join(o->thread, NULL);
    lb_objstore_close(o->store);
    free(o);
}
