/*
 * indexer.c: per ingested timeline, a thread that streams the timeline's
 * committed WAL from its safekeepers (a physical replication connection,
 * like the redo standby's) into its WAL block index (walindex.h).
 *
 * The index starts at the timeline's own start (a branch's ancestors
 * index their own WAL). Completed index files are uploaded to object
 * storage under <tenant>/<timeline>/walindex/; a pageserver that lost its
 * disk installs them again before it streams the rest. The indexer tells
 * the safekeepers where it is (consumer "pageserver-walindex"), so that
 * they keep the WAL it still has to read.
 *
 * A decoding error stops nothing else: it is logged, and streaming starts
 * again from the end of the last record indexed.
 */
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "indexer.h"
#include "timelines.h"
#include "walserve.h"
#include "auth.h"
#include "errors.h"
#include "event_loop.h"
#include "fileio.h"
#include "http_client.h"
#include "log.h"
#include "pgwire.h"
#include "walindex.h"

#define RETRY_MS 1000
#define HOUSEKEEPING_MS 1000
#define REPORT_MS 5000
#define CONSUMER "pageserver-walindex"

struct ps_indexer {
    ps_daemon *d;
    char tenant[PS_ID_LEN + 1], timeline[PS_ID_LEN + 1];
    char dir[PATH_MAX];
    pthread_t thread;
    pthread_mutex_t lock; /* the index: the thread feeds, queries read */
    ps_walindex *ix;
    lb_objstore *store; /* this thread's own handle (from the daemon's pool) */
    atomic_bool stop;   /* set by ps_indexer_stop, read by the thread */
    int sk_index;
    lb_lsn feed_lsn; /* where the next byte fed to the index belongs */
    char **uploaded; /* names of sealed files known to be in object storage */
    size_t nuploaded;
    int64_t last_report_ms;
};

static void
nap(ps_indexer *x, int64_t ms)
{
    for (int64_t t = 0; t < ms && !x->stop; t += 50)
        usleep(50000);
}

static bool
was_uploaded(ps_indexer *x, const char *name)
{
    for (size_t i = 0; i < x->nuploaded; i++)
        if (strcmp(x->uploaded[i], name) == 0)
            return true;
    return false;
}

static void
mark_uploaded(ps_indexer *x, const char *name)
{
    char **p = realloc(x->uploaded, (x->nuploaded + 1) * sizeof(*p));
    if (!p)
        return;
    x->uploaded = p;
    if ((x->uploaded[x->nuploaded] = strdup(name)) != NULL)
        x->nuploaded++;
}

static int
upload_one(void *arg, const ps_walindex_file *f)
{
    ps_indexer *x = arg;
    if (was_uploaded(x, f->name))
        return 0;
    char key[256];
    snprintf(key, sizeof(key), "%s/%s/walindex/%s", x->tenant, x->timeline, f->name);
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int rc = lb_objstore_put_fd(x->store, key, fd);
    close(fd);
    if (rc) {
        lb_counter_inc(x->d->storage_errors);
        lb_warn("could not upload \"%s\": %s", key, lb_objstore_error(x->store));
        return 0; /* tried again next time */
    }
    lb_counter_add(x->d->storage_bytes, (double)f->size);
    mark_uploaded(x, f->name);
    return 0;
}

/* A pageserver that lost its disk: the sealed files from object storage,
 * in order, before anything is streamed. */
static void
download_index(ps_indexer *x)
{
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "%s/%s/walindex/", x->tenant, x->timeline);
    lb_objstore_listing list;
    if (lb_objstore_list(x->store, prefix, NULL, &list) != 0) {
        lb_warn("could not list \"%s\": %s", prefix, lb_objstore_error(x->store));
        return;
    }
    for (size_t i = 0; i < list.nobjects; i++) { /* names sort in segment order */
        const char *name = list.objects[i].key + strlen(prefix);
        lb_buf body = LB_BUF_INIT;
        int rc = lb_objstore_get(x->store, list.objects[i].key, &body);
        if (rc == 0)
            rc = ps_walindex_install(x->ix, name, body.data, body.len);
        if (rc == 0)
            mark_uploaded(x, name);
        else if (rc != LB_ECONFLICT)
            lb_warn("could not install WAL index file \"%s\": %s", list.objects[i].key,
                    rc == LB_ECRC || rc == LB_EPARSE ? ps_walindex_errmsg(x->ix) : lb_strerror(rc));
        lb_buf_free(&body);
    }
    lb_objstore_list_free(&list);
}

static void
housekeeping(ps_indexer *x, const ps_tlmeta *m)
{
    pthread_mutex_lock(&x->lock);
    ps_walindex_sync(x->ix);
    lb_lsn pos = ps_walindex_resume_lsn(x->ix);
    ps_walindex_sealed_files(x->ix, upload_one, x);
    pthread_mutex_unlock(&x->lock);
    if (lb_mono_ms() - x->last_report_ms >= REPORT_MS) {
        ps_report_consumer(x->d, m, CONSUMER, pos);
        x->last_report_ms = lb_mono_ms();
    }
}

static PGconn *
connect_sk(ps_indexer *x, const ps_tlmeta *m)
{
    const struct ps_sk_addr *sk = &m->safekeepers[x->sk_index % m->nsafekeepers];
    char host[128], opts[200];
    snprintf(host, sizeof(host), "%s", sk->pg);
    char *colon = strrchr(host, ':');
    if (!colon)
        return NULL;
    *colon = '\0';
    snprintf(opts, sizeof(opts), "-c tenant_id=%s -c timeline_id=%s", x->tenant, x->timeline);
    char token[LB_AUTH_TOKEN_MAX + 1] = ""; /* the safekeeper's password */
    if (x->d->token)
        lb_auth_token_get(x->d->token, token, sizeof(token));
    const char *keys[] = {
        "host",     "port", "user", "replication", "application_name", "options", "connect_timeout",
        "password", NULL};
    const char *vals[] = {host, colon + 1, "postgres", "true", CONSUMER, opts, "5", token, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    explicit_bzero(token, sizeof(token));
    if (PQstatus(c) != CONNECTION_OK) {
        lb_debug("WAL index of %s/%s: could not connect to %s: %s", x->tenant, x->timeline, sk->pg,
                 PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Stream from one safekeeper until an error or stop. */
static void
stream(ps_indexer *x, const ps_tlmeta *m)
{
    PGconn *c = connect_sk(x, m);
    if (!c) {
        x->sk_index++;
        nap(x, RETRY_MS);
        return;
    }
    char cmd[80], p[LB_LSN_STRLEN];
    snprintf(cmd, sizeof(cmd), "START_REPLICATION PHYSICAL %s", lb_lsn_format(x->feed_lsn, p));
    PGresult *r = PQexec(c, cmd);
    if (PQresultStatus(r) != PGRES_COPY_BOTH) {
        lb_warn("WAL index of %s/%s: %s refused: %s", x->tenant, x->timeline, cmd,
                PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
        x->sk_index++;
        nap(x, RETRY_MS);
        return;
    }
    PQclear(r);
    int64_t last_house = lb_mono_ms();
    while (!x->stop) {
        char *buf = NULL;
        int n = PQgetCopyData(c, &buf, 1);
        if (n == 0) {
            /* poll, not select: a descriptor above FD_SETSIZE is fine. */
            struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
            if (poll(&pfd, 1, 200) < 0 && errno != EINTR)
                break;
            if (!PQconsumeInput(c))
                break;
        } else if (n < 0) {
            break;
        } else {
            lb_pq_repl msg;
            int rc = lb_pq_parse_repl(buf, (size_t)n, &msg);
            if (rc == 0 && msg.kind == 'w') {
                /* Contiguous bytes only: skip what was fed already; a gap
                 * (which a walsender never makes) starts the stream again. */
                const uint8_t *wal = msg.wal;
                size_t len = msg.wal_len;
                if (msg.wal_start > x->feed_lsn) {
                    lb_warn("WAL index of %s/%s: stream jumped from %X/%X to %X/%X", x->tenant,
                            x->timeline, LB_LSN_ARGS(x->feed_lsn), LB_LSN_ARGS(msg.wal_start));
                    rc = LB_EPROTO;
                } else if (msg.wal_start + len <= x->feed_lsn) {
                    len = 0;
                } else {
                    wal += x->feed_lsn - msg.wal_start;
                    len -= (size_t)(x->feed_lsn - msg.wal_start);
                }
                pthread_mutex_lock(&x->lock);
                if (rc == 0 && len) {
                    rc = ps_walindex_feed(x->ix, wal, len);
                    if (rc == 0) {
                        x->feed_lsn += len;
                    } else {
                        lb_error("WAL index of %s/%s stopped at %X/%X: %s", x->tenant, x->timeline,
                                 LB_LSN_ARGS(ps_walindex_resume_lsn(x->ix)),
                                 ps_walindex_errmsg(x->ix));
                        x->feed_lsn = ps_walindex_resume_lsn(x->ix);
                    }
                }
                pthread_mutex_unlock(&x->lock);
            } else if (rc == 0 && msg.kind == 'k' && msg.reply_requested) {
                lb_buf out = LB_BUF_INIT;
                pthread_mutex_lock(&x->lock);
                lb_lsn at = ps_walindex_resume_lsn(x->ix);
                pthread_mutex_unlock(&x->lock);
                lb_pq_put_standby_status(&out, at, at, at, lb_pq_now(), false);
                PQputCopyData(c, out.data, (int)out.len);
                PQflush(c);
                lb_buf_free(&out);
            }
            PQfreemem(buf);
            if (rc)
                break; /* reconnect from the last record indexed */
        }
        if (lb_mono_ms() - last_house >= HOUSEKEEPING_MS) {
            housekeeping(x, m);
            last_house = lb_mono_ms();
        }
    }
    PQfinish(c);
    nap(x, x->stop ? 0 : RETRY_MS);
}

static void *
run(void *arg)
{
    ps_indexer *x = arg;
    int src = ps_store_acquire(x->d, &x->store);
    if (src) {
        lb_error("WAL index of %s/%s stopped: could not open object storage: %s", x->tenant,
                 x->timeline, lb_strerror(src));
        return NULL;
    }
    download_index(x);
    while (!x->stop) {
        ps_tlmeta m;
        if (ps_get_timeline(x->d, x->tenant, x->timeline, &m) != 0)
            break; /* deleted */
        if (m.nsafekeepers)
            stream(x, &m);
        else
            nap(x, RETRY_MS);
        if (!x->stop)
            housekeeping(x, &m);
        ps_tlmeta_free(&m);
    }
    pthread_mutex_lock(&x->lock);
    ps_walindex_sync(x->ix);
    pthread_mutex_unlock(&x->lock);
    ps_store_release(x->d, x->store);
    x->store = NULL;
    return NULL;
}

int
ps_indexer_start(ps_daemon *d, const char *tenant, const char *timeline, ps_indexer **out)
{
    ps_tlmeta m;
    int rc = ps_get_timeline(d, tenant, timeline, &m);
    if (rc)
        return rc;
    ps_indexer *x = calloc(1, sizeof(*x));
    if (!x) {
        ps_tlmeta_free(&m);
        return -ENOMEM;
    }
    x->d = d;
    snprintf(x->tenant, sizeof(x->tenant), "%s", tenant);
    snprintf(x->timeline, sizeof(x->timeline), "%s", timeline);
    char tdir[PATH_MAX];
    ps_timeline_dir(d, tenant, timeline, tdir, sizeof(tdir));
    snprintf(x->dir, sizeof(x->dir), "%.4000s/walindex", tdir);
    pthread_mutex_init(&x->lock, NULL);
    char msg[300] = "";
    rc = ps_walindex_open(x->dir, m.start_lsn, m.wal_seg_size, &x->ix, msg, sizeof(msg));
    ps_tlmeta_free(&m);
    if (rc) {
        lb_error("could not open the WAL index of %s/%s: %s", tenant, timeline, msg);
        free(x);
        return rc;
    }
    x->feed_lsn = ps_walindex_resume_lsn(x->ix);
    atomic_init(&x->stop, false);
    if (pthread_create(&x->thread, NULL, run, x) != 0) {
        ps_walindex_close(x->ix);
        free(x);
        return -EAGAIN;
    }
    *out = x;
    return 0;
}

void
ps_indexer_stop(ps_indexer *x)
{
    if (!x)
        return;
    atomic_store(&x->stop, true);
    pthread_join(x->thread, NULL);
    ps_walindex_close(x->ix);
    for (size_t i = 0; i < x->nuploaded; i++)
        free(x->uploaded[i]);
    free(x->uploaded);
    free(x);
}

int
ps_indexer_commit_before(ps_indexer *x, int64_t t_unix_us, lb_lsn *end_lsn, int64_t *ts,
                         uint32_t *xid, char *err, size_t errcap)
{
    pthread_mutex_lock(&x->lock);
    int rc = ps_walindex_last_commit_before(x->ix, t_unix_us, end_lsn, ts, xid);
    if (rc && rc != LB_ENOTFOUND)
        snprintf(err, errcap, "WAL index: %s", ps_walindex_errmsg(x->ix));
    else if (rc)
        snprintf(err, errcap, "no commit at or before that time in timeline %s", x->timeline);
    pthread_mutex_unlock(&x->lock);
    return rc;
}

lb_lsn
ps_indexer_position(ps_indexer *x)
{
    pthread_mutex_lock(&x->lock);
    lb_lsn pos = ps_walindex_resume_lsn(x->ix);
    pthread_mutex_unlock(&x->lock);
    return pos;
}

int
ps_indexer_with_index(void *owner, int (*fn)(void *arg, ps_walindex *ix), void *arg)
{
    ps_indexer *x = owner;
    pthread_mutex_lock(&x->lock);
    int rc = fn(arg, x->ix);
    pthread_mutex_unlock(&x->lock);
    return rc;
}
