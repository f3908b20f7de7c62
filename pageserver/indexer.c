/*
 * indexer.c: per ingested timeline, the timeline's committed WAL streamed
 * from its safekeepers (a physical replication connection, like the redo
 * standby's) into its WAL block index (walindex.h).
 *
 * The index starts at the timeline's own start (a branch's ancestors
 * index their own WAL). Completed index files are uploaded to object
 * storage under <tenant>/<timeline>/walindex/; a pageserver that lost its
 * disk installs them again before it streams the rest. The indexer tells
 * the safekeepers where it is (consumer "pageserver-walindex"), so that
 * they keep the WAL it still has to read.
 *
 * Threads. The stream runs on the pageserver's loop (daemon.h), driving
 * libpq without blocking as safekeeper/recv.c does: IDLE (waiting out
 * RETRY_MS), CONNECTING (PQconnectPoll), STARTING (START_REPLICATION
 * sent), STREAMING (CopyBoth). A connection that is not streaming after
 * CONNECT_TIMEOUT_MS is dropped. Decoding and feeding the index happen on
 * the loop, under x->lock, which HTTP queries, LTAP (ps_indexer_with_index)
 * and the housekeeping job also take: the loop only tries it, and when it
 * is taken keeps the message, stops reading the socket and tries again
 * 5 ms later, so it never waits for another thread's fsync or query. What
 * blocks runs on the worker pool, one job at a time (house_busy): opening
 * the index and installing files from object storage (ps_indexer_open, in
 * the ingest's start job), and every HOUSEKEEPING_MS an fsync of the
 * index, the uploads of its sealed files (outside x->lock) and the report
 * to the safekeepers. A safekeeper's host name is resolved by a job on
 * the pool as well (RESOLVING: getaddrinfo can wait seconds on DNS, which
 * the loop must never do; the loop's timer looks for the answer), and
 * libpq gets the address as hostaddr, so PQconnectStartParams does not
 * resolve anything itself.
 *
 * A decoding error stops nothing else: it is logged, and streaming starts
 * again from the end of the last record indexed.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "indexer.h"
#include "timelines.h"
#include "walserve.h"
#include "workers.h"
#include "auth.h"
#include "clock.h"
#include "errors.h"
#include "event_loop.h"
#include "fileio.h"
#include "hostport.h"
#include "http_client.h"
#include "log.h"
#include "pgwire.h"
#include "walindex.h"

#define RETRY_MS 1000
#define HOUSEKEEPING_MS 1000
#define REPORT_MS 5000
#define CONNECT_TIMEOUT_MS 10000
#define CONSUMER "pageserver-walindex"

typedef enum xstate { X_IDLE, X_RESOLVING, X_CONNECTING, X_STARTING, X_STREAMING } xstate;

struct ps_indexer {
    ps_daemon *d;
    char tenant[PS_ID_LEN + 1], timeline[PS_ID_LEN + 1];
    char dir[PATH_MAX];
    pthread_mutex_t lock; /* ix, feed_lsn, house_busy: the loop feeds, queries read */
    pthread_cond_t cond;  /* house_busy went false */
    ps_walindex *ix;
    lb_lsn feed_lsn;               /* where the next byte fed to the index belongs */
    bool house_busy;               /* a housekeeping job is queued or running */
    struct resolve_req *resolving; /* the loop's: the last name resolution asked for */
    int resolve_port;              /* the loop's: the port of the address being resolved */
    char **uploaded; /* names of sealed files known to be in object storage (jobs only) */
    size_t nuploaded;
    int64_t last_report_ms; /* jobs only */
    /* The loop's alone: */
    bool attached;
    uint64_t timer;
    xstate state;
    PGconn *conn;
    int fd, watched;
    int sk_index;
    int64_t state_since_ms, retry_at_ms, last_house_ms;
    lb_lsn resume_lsn; /* the index's, as of the last feed (for standby status replies) */
    char *pending;     /* a message the index was too busy to take (PQfreemem) */
    int pending_len;
    bool retry_armed; /* retry_timer is set */
    uint64_t retry_timer;
};

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

/* ---- jobs (worker pool) ------------------------------------------------------------ */

/* A pageserver that lost its disk: the sealed files from object storage,
 * in order, before anything is streamed. */
static void
download_index(ps_indexer *x)
{
    lb_objstore *store;
    int rc = ps_store_acquire(x->d, &store);
    if (rc) {
        lb_error("could not open object storage for the WAL index tenant=%s timeline=%s: %s",
                 x->tenant, x->timeline, lb_strerror(rc));
        return;
    }
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "%s/%s/walindex/", x->tenant, x->timeline);
    lb_objstore_listing list;
    if (lb_objstore_list(store, prefix, NULL, &list) != 0) {
        lb_warn("could not list \"%s\": %s", prefix, lb_objstore_error(store));
        ps_store_release(x->d, store);
        return;
    }
    for (size_t i = 0; i < list.nobjects; i++) { /* names sort in segment order */
        const char *name = list.objects[i].key + strlen(prefix);
        lb_buf body = LB_BUF_INIT;
        rc = lb_objstore_get(store, list.objects[i].key, &body);
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
    ps_store_release(x->d, store);
}

typedef struct sealed {
    char name[64];
    char path[PATH_MAX];
    uint64_t size;
} sealed;

typedef struct sealed_list {
    ps_indexer *x;
    sealed *v;
    size_t n;
} sealed_list;

static int
collect_sealed(void *arg, const ps_walindex_file *f)
{
    sealed_list *l = arg;
    if (was_uploaded(l->x, f->name))
        return 0;
    sealed *v = realloc(l->v, (l->n + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    l->v = v;
    snprintf(v[l->n].name, sizeof(v[l->n].name), "%s", f->name);
    snprintf(v[l->n].path, sizeof(v[l->n].path), "%s", f->path);
    v[l->n].size = f->size;
    l->n++;
    return 0;
}

/* Sealed files never change, so they are uploaded outside x->lock: the
 * loop goes on feeding the index meanwhile. */
static void
upload_sealed(ps_indexer *x, const sealed_list *l)
{
    if (!l->n)
        return;
    lb_objstore *store;
    if (ps_store_acquire(x->d, &store) != 0)
        return; /* tried again next time */
    for (size_t i = 0; i < l->n; i++) {
        char key[256];
        snprintf(key, sizeof(key), "%s/%s/walindex/%s", x->tenant, x->timeline, l->v[i].name);
        int fd = open(l->v[i].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        int rc = lb_objstore_put_fd(store, key, fd);
        close(fd);
        if (rc) {
            lb_counter_inc(x->d->storage_errors);
            lb_warn("could not upload \"%s\": %s", key, lb_objstore_error(store));
            continue; /* tried again next time */
        }
        lb_counter_add(x->d->storage_bytes, (double)l->v[i].size);
        mark_uploaded(x, l->v[i].name);
    }
    ps_store_release(x->d, store);
}

static void
housekeeping_job(void *arg)
{
    ps_indexer *x = arg;
    sealed_list l = {.x = x};
    pthread_mutex_lock(&x->lock);
    ps_walindex_sync(x->ix);
    lb_lsn pos = ps_walindex_resume_lsn(x->ix);
    ps_walindex_sealed_files(x->ix, collect_sealed, &l);
    pthread_mutex_unlock(&x->lock);
    upload_sealed(x, &l);
    free(l.v);
    if (lb_mono_ms() - x->last_report_ms >= REPORT_MS) {
        ps_tlmeta m;
        if (ps_get_timeline(x->d, x->tenant, x->timeline, &m) == 0) {
            ps_report_consumer(x->d, &m, CONSUMER, pos);
            ps_tlmeta_free(&m);
        }
        x->last_report_ms = lb_mono_ms();
    }
    pthread_mutex_lock(&x->lock);
    x->house_busy = false; /* the job's last access to x */
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
}

/* ---- the stream (loop) ------------------------------------------------------------- */

static void on_socket(lb_loop *loop, int fd, int events, void *arg);

static void
watch(ps_indexer *x, int events)
{
    int fd = x->conn ? PQsocket(x->conn) : -1;
    if (x->fd >= 0 && (fd != x->fd || events == 0)) {
        lb_loop_unwatch(x->d->loop, x->fd);
        x->fd = -1;
        x->watched = 0;
    }
    if (fd < 0 || events == 0 || (x->fd == fd && x->watched == events))
        return;
    if (lb_loop_watch(x->d->loop, fd, events, on_socket, x) == 0) {
        x->fd = fd;
        x->watched = events;
    }
}

static void
set_state(ps_indexer *x, xstate s)
{
    x->state = s;
    x->state_since_ms = lb_mono_ms();
}

static void
drop_pending(ps_indexer *x)
{
    if (x->pending)
        PQfreemem(x->pending);
    x->pending = NULL;
    x->pending_len = 0;
}

static void
disconnect(ps_indexer *x, const char *why)
{
    drop_pending(x);
    if (x->retry_armed)
        lb_loop_del_timer(x->d->loop, x->retry_timer);
    x->retry_armed = false;
    if (x->conn) {
        if (why)
            lb_debug("WAL index stream ended tenant=%s timeline=%s reason=\"%s\"", x->tenant,
                     x->timeline, why);
        watch(x, 0);
        PQfinish(x->conn);
        x->conn = NULL;
    }
    set_state(x, X_IDLE);
    x->retry_at_ms = lb_mono_ms() + RETRY_MS;
}

static const char *
conn_error(PGconn *c)
{
    const char *m = c ? PQerrorMessage(c) : "no connection";
    return m && m[0] ? m : "connection failed";
}

/* Connect to the safekeeper at numeric address addr (its name host), as
 * libpq's hostaddr: nothing is resolved on the loop. */
static void
connect_to(ps_indexer *x, const char *host, const char *addr, int port_number)
{
    char port[8], opts[200];
    snprintf(port, sizeof(port), "%d", port_number);
    snprintf(opts, sizeof(opts), "-c tenant_id=%s -c timeline_id=%s", x->tenant, x->timeline);
    char token[LB_AUTH_TOKEN_MAX + 1] = ""; /* the safekeeper's password */
    if (x->d->token)
        lb_auth_token_get(x->d->token, token, sizeof(token));
    const char *keys[] = {"host",    "hostaddr", "port", "user", "replication", "application_name",
                          "options", "password", NULL};
    const char *vals[] = {host, addr, port, "postgres", "true", CONSUMER, opts, token, NULL};
    x->conn = PQconnectStartParams(keys, vals, 0);
    explicit_bzero(token, sizeof(token));
    if (!x->conn || PQstatus(x->conn) == CONNECTION_BAD) {
        disconnect(x, conn_error(x->conn));
        x->sk_index++;
        return;
    }
    PQsetnonblocking(x->conn, 1);
    set_state(x, X_CONNECTING);
    watch(x, LB_WRITABLE); /* PQconnectPoll starts out writing */
}

/* A name resolution, shared by the indexer and the job that resolves it:
 * each drops its reference, and the last frees it, so that stopping an
 * indexer never waits on DNS. */
typedef struct resolve_req {
    pthread_mutex_t lock;
    int refs;
    bool done;
    char host[256];
    char addr[INET6_ADDRSTRLEN + 1]; /* the answer; "" if it failed (err says why) */
    char err[160];
} resolve_req;

static void
resolve_unref(resolve_req *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->lock);
    if (last) {
        pthread_mutex_destroy(&r->lock);
        free(r);
    }
}

/* On the pool: resolve r->host to one numeric address. */
static void
resolve_job(void *arg)
{
    resolve_req *r = arg;
    char addr[sizeof(r->addr)] = "", err[sizeof(r->err)] = "";
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(r->host, NULL, &hints, &res); /* r->host is not written again */
    if (rc != 0) {
        snprintf(err, sizeof(err), "could not resolve \"%.64s\": %s", r->host, gai_strerror(rc));
    } else {
        const void *a = res->ai_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
        if (!inet_ntop(res->ai_family, a, addr, sizeof(addr)))
            snprintf(err, sizeof(err), "could not resolve \"%.64s\": %s", r->host, strerror(errno));
        freeaddrinfo(res);
    }
    pthread_mutex_lock(&r->lock);
    memcpy(r->addr, addr, sizeof(addr));
    memcpy(r->err, err, sizeof(err));
    r->done = true;
    pthread_mutex_unlock(&r->lock);
    resolve_unref(r);
}

/* RESOLVING: connect once the resolve job has answered (the timer asks). */
static void
resolved(ps_indexer *x)
{
    resolve_req *r = x->resolving;
    assert(r);
    pthread_mutex_lock(&r->lock);
    bool done = r->done;
    pthread_mutex_unlock(&r->lock);
    if (!done)
        return;
    x->resolving = NULL;
    if (!r->addr[0]) {
        lb_warn("WAL index tenant=%s timeline=%s: %s", x->tenant, x->timeline, r->err);
        disconnect(x, NULL);
        x->sk_index++;
    } else {
        connect_to(x, r->host, r->addr, x->resolve_port);
    }
    resolve_unref(r);
}

static void
start_connect(ps_indexer *x)
{
    ps_tlmeta m;
    if (ps_get_timeline(x->d, x->tenant, x->timeline, &m) != 0)
        return; /* deleted: its DELETE detaches us */
    if (!m.nsafekeepers) {
        ps_tlmeta_free(&m);
        x->retry_at_ms = lb_mono_ms() + RETRY_MS;
        return;
    }
    const struct ps_sk_addr *sk = &m.safekeepers[x->sk_index % m.nsafekeepers];
    lb_hostport hp;
    if (lb_hostport_parse(sk->pg, &hp) != 0 || hp.port == 0) {
        lb_warn("WAL index tenant=%s timeline=%s: safekeeper address \"%s\" is not host:port",
                x->tenant, x->timeline, sk->pg);
        x->sk_index++;
        x->retry_at_ms = lb_mono_ms() + RETRY_MS;
        ps_tlmeta_free(&m);
        return;
    }
    ps_tlmeta_free(&m);
    unsigned char bin[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, hp.host, bin) == 1 || inet_pton(AF_INET6, hp.host, bin) == 1) {
        connect_to(x, hp.host, hp.host, hp.port);
        return;
    }
    /* A name: resolved on the pool, one job at a time (one left from an
     * attempt that timed out may still wait on DNS: no new one till then). */
    if (x->resolving) {
        pthread_mutex_lock(&x->resolving->lock);
        bool done = x->resolving->done;
        pthread_mutex_unlock(&x->resolving->lock);
        if (!done) {
            x->retry_at_ms = lb_mono_ms() + RETRY_MS;
            return;
        }
        resolve_unref(x->resolving);
        x->resolving = NULL;
    }
    resolve_req *r = calloc(1, sizeof(*r));
    if (!r) {
        x->retry_at_ms = lb_mono_ms() + RETRY_MS;
        return;
    }
    pthread_mutex_init(&r->lock, NULL);
    r->refs = 2; /* the indexer's and the job's */
    snprintf(r->host, sizeof(r->host), "%s", hp.host);
    if (ps_workers_submit(x->d->workers, resolve_job, r) != 0) {
        pthread_mutex_destroy(&r->lock);
        free(r); /* the pool is full: next time */
        x->retry_at_ms = lb_mono_ms() + RETRY_MS;
        return;
    }
    x->resolving = r;
    x->resolve_port = hp.port;
    set_state(x, X_RESOLVING);
}

/* Handle one message. false: the index is busy (an upload's fsync, a
 * query of LTAP), and nothing was done: the loop never waits for x->lock,
 * it keeps the message and tries again shortly (drive). */
static bool
handle_copy_data(ps_indexer *x, const char *buf, int n)
{
    lb_pq_repl msg;
    int rc = lb_pq_parse_repl(buf, (size_t)n, &msg);
    if (rc) {
        disconnect(x, "malformed replication message");
        return true;
    }
    if (msg.kind == 'w') {
        /* Contiguous bytes only: skip what was fed already; a gap (which
         * a walsender never makes) starts the stream again. */
        const uint8_t *wal = msg.wal;
        size_t len = msg.wal_len;
        if (msg.wal_start > x->feed_lsn) {
            lb_warn("WAL index stream jumped tenant=%s timeline=%s from=%X/%X to=%X/%X", x->tenant,
                    x->timeline, LB_LSN_ARGS(x->feed_lsn), LB_LSN_ARGS(msg.wal_start));
            disconnect(x, "stream jumped");
            return true;
        }
        if (msg.wal_start + len <= x->feed_lsn)
            return true;
        wal += x->feed_lsn - msg.wal_start;
        len -= (size_t)(x->feed_lsn - msg.wal_start);
        if (pthread_mutex_trylock(&x->lock) != 0)
            return false;
        rc = ps_walindex_feed(x->ix, wal, len);
        if (rc == 0) {
            x->feed_lsn += len;
        } else {
            lb_error("WAL index stopped tenant=%s timeline=%s lsn=%X/%X error=\"%s\"", x->tenant,
                     x->timeline, LB_LSN_ARGS(ps_walindex_resume_lsn(x->ix)),
                     ps_walindex_errmsg(x->ix));
            x->feed_lsn = ps_walindex_resume_lsn(x->ix);
        }
        x->resume_lsn = ps_walindex_resume_lsn(x->ix);
        pthread_mutex_unlock(&x->lock);
        if (rc)
            disconnect(x, "decoding error"); /* again from the last record indexed */
    } else if (msg.kind == 'k' && msg.reply_requested) {
        lb_buf out = LB_BUF_INIT;
        lb_lsn at = x->resume_lsn;
        /* lb_pq_put_* builds a whole 'd' message; libpq frames it itself. */
        if (lb_pq_put_standby_status(&out, at, at, at, lb_pq_now(), false) == 0 &&
            PQputCopyData(x->conn, out.data + 5, (int)(out.len - 5)) != 1)
            rc = LB_EPROTO;
        lb_buf_free(&out);
        if (rc)
            disconnect(x, conn_error(x->conn));
    }
    return true;
}

static void drive(ps_indexer *x);

static int64_t
on_retry(lb_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    ps_indexer *x = arg;
    x->retry_armed = false;
    drive(x);
    return -1; /* one shot */
}

static void
drive(ps_indexer *x)
{
    if (!x->conn)
        return;
    if (x->state == X_CONNECTING) {
        switch (PQconnectPoll(x->conn)) {
        case PGRES_POLLING_READING:
            watch(x, LB_READABLE);
            return;
        case PGRES_POLLING_WRITING:
            watch(x, LB_WRITABLE);
            return;
        case PGRES_POLLING_OK: {
            char cmd[80], p[LB_LSN_STRLEN];
            snprintf(cmd, sizeof(cmd), "START_REPLICATION PHYSICAL %s",
                     lb_lsn_format(x->feed_lsn, p));
            if (!PQsendQuery(x->conn, cmd)) {
                disconnect(x, conn_error(x->conn));
                return;
            }
            set_state(x, X_STARTING);
            watch(x, PQflush(x->conn) == 1 ? LB_READABLE | LB_WRITABLE : LB_READABLE);
            return;
        }
        default:
            lb_debug("WAL index tenant=%s timeline=%s: could not connect: %s", x->tenant,
                     x->timeline, conn_error(x->conn));
            disconnect(x, NULL);
            x->sk_index++;
            return;
        }
    }
    if (!PQconsumeInput(x->conn)) {
        disconnect(x, conn_error(x->conn));
        return;
    }
    if (x->state == X_STARTING) {
        while (x->conn && !PQisBusy(x->conn)) {
            PGresult *r = PQgetResult(x->conn);
            if (!r) {
                disconnect(x, "START_REPLICATION gave no stream");
                return;
            }
            ExecStatusType s = PQresultStatus(r);
            PQclear(r);
            if (s == PGRES_COPY_BOTH) {
                set_state(x, X_STREAMING);
                break;
            }
            lb_warn("WAL index tenant=%s timeline=%s: START_REPLICATION refused: %s", x->tenant,
                    x->timeline, conn_error(x->conn));
            disconnect(x, NULL);
            x->sk_index++;
            return;
        }
        if (x->state != X_STREAMING)
            return;
    }
    for (;;) {
        char *buf = x->pending;
        int n = x->pending_len;
        x->pending = NULL;
        if (!buf)
            n = PQgetCopyData(x->conn, &buf, 1);
        if (n > 0) {
            if (!handle_copy_data(x, buf, n)) {
                /* The index is busy: stop reading (the socket's data
                 * waits in the kernel) and try again in a moment. */
                x->pending = buf;
                x->pending_len = n;
                watch(x, 0);
                if (!x->retry_armed &&
                    lb_loop_add_timer(x->d->loop, 5, on_retry, x, &x->retry_timer) == 0)
                    x->retry_armed = true;
                return;
            }
            PQfreemem(buf);
            if (!x->conn)
                return;
            continue;
        }
        if (n == 0)
            break; /* would block */
        disconnect(x, n == -1 ? "the safekeeper ended the stream" : conn_error(x->conn));
        return;
    }
    watch(x, PQflush(x->conn) == 1 ? LB_READABLE | LB_WRITABLE : LB_READABLE);
}

static void
on_socket(lb_loop *loop, int fd, int events, void *arg)
{
    (void)loop;
    (void)fd;
    ps_indexer *x = arg;
    if ((events & LB_WRITABLE) && x->conn && x->state != X_CONNECTING && PQflush(x->conn) < 0) {
        disconnect(x, conn_error(x->conn));
        return;
    }
    drive(x);
}

static int64_t
on_timer(lb_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    ps_indexer *x = arg;
    int64_t now = lb_mono_ms();
    if (x->state == X_IDLE && now >= x->retry_at_ms)
        start_connect(x);
    else if (x->state == X_RESOLVING && now - x->state_since_ms < CONNECT_TIMEOUT_MS)
        resolved(x);
    else if (x->state != X_IDLE && x->state != X_STREAMING &&
             now - x->state_since_ms >= CONNECT_TIMEOUT_MS) {
        disconnect(x, "timed out connecting");
        x->sk_index++;
    }
    if (now - x->last_house_ms >= HOUSEKEEPING_MS) {
        pthread_mutex_lock(&x->lock);
        bool start = !x->house_busy;
        x->house_busy = true;
        pthread_mutex_unlock(&x->lock);
        if (start && ps_workers_submit(x->d->workers, housekeeping_job, x) != 0) {
            pthread_mutex_lock(&x->lock);
            x->house_busy = false; /* the pool is full: next time */
            pthread_mutex_unlock(&x->lock);
        }
        x->last_house_ms = now;
    }
    return x->state == X_RESOLVING ? 10 : x->state == X_IDLE ? RETRY_MS / 4 : HOUSEKEEPING_MS;
}

/* ---- life cycle -------------------------------------------------------------------- */

int
ps_indexer_open(ps_daemon *d, const char *tenant, const char *timeline, ps_indexer **out)
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
    x->fd = -1;
    snprintf(x->tenant, sizeof(x->tenant), "%s", tenant);
    snprintf(x->timeline, sizeof(x->timeline), "%s", timeline);
    char tdir[PATH_MAX];
    ps_timeline_dir(d, tenant, timeline, tdir, sizeof(tdir));
    snprintf(x->dir, sizeof(x->dir), "%.4000s/walindex", tdir);
    char msg[300] = "";
    rc = ps_walindex_open(x->dir, m.start_lsn, m.wal_seg_size, &x->ix, msg, sizeof(msg));
    ps_tlmeta_free(&m);
    if (rc) {
        lb_error("could not open the WAL index tenant=%s timeline=%s: %s", tenant, timeline, msg);
        free(x);
        return rc;
    }
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->cond, NULL);
    download_index(x);
    x->feed_lsn = x->resume_lsn = ps_walindex_resume_lsn(x->ix);
    *out = x;
    return 0;
}

int
ps_indexer_attach(ps_indexer *x)
{
    if (x->attached)
        return 0;
    int rc = lb_loop_add_timer(x->d->loop, 0, on_timer, x, &x->timer);
    if (rc == 0)
        x->attached = true;
    return rc;
}

void
ps_indexer_detach(ps_indexer *x)
{
    if (!x || !x->attached)
        return;
    disconnect(x, NULL);
    resolve_unref(x->resolving); /* a job still waiting on DNS frees it */
    x->resolving = NULL;
    lb_loop_del_timer(x->d->loop, x->timer);
    x->attached = false;
}

void
ps_indexer_close(ps_indexer *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&x->lock);
    while (x->house_busy)
        pthread_cond_wait(&x->cond, &x->lock);
    ps_walindex_sync(x->ix);
    pthread_mutex_unlock(&x->lock);
    drop_pending(x);
    if (x->conn) /* never attached after all, or the loop is gone */
        PQfinish(x->conn);
    resolve_unref(x->resolving);
    ps_walindex_close(x->ix);
    for (size_t i = 0; i < x->nuploaded; i++)
        free(x->uploaded[i]);
    free(x->uploaded);
    pthread_mutex_destroy(&x->lock);
    pthread_cond_destroy(&x->cond);
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
