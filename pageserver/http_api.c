/*
 * http_api.c: the pageserver's HTTP API.
 *
 *   POST   /v1/tenant/{tenant_id}/timeline        {"timeline_id"[, "ancestor_timeline_id",
 *                                                   "ancestor_lsn" | "ancestor_timestamp"]}
 *          bootstrap, or branch at an LSN or at a time (RFC 3339: the state after the
 *          last commit at or before it, from the ancestor's WAL index)
 *   GET    .../lsn_by_timestamp?timestamp=<RFC 3339>  that commit: {"lsn", "commit_timestamp",
 *          "xid"}
 *   GET    /v1/tenant/{tenant_id}/timeline        list
 *   GET    /v1/tenant/{tenant_id}/timeline/{timeline_id}             status
 *   DELETE /v1/tenant/{tenant_id}/timeline/{timeline_id}
 *   GET    /v1/tenant/{tenant_id}/timeline/{timeline_id}/basebackup[?lsn=X/X]
 *          a tar of the newest snapshot at or before lsn (default: the newest);
 *          headers X-Lakebase-Snapshot-Lsn and X-Lakebase-Redo-Lsn say which
 *   PUT    .../safekeepers  {"safekeepers": [{"pg": "host:port", "http": "http://..."}]}
 *          where the timeline's committed WAL comes from; starts its redo standby
 *   POST   .../snapshot     take a snapshot now if a checkpoint was replayed since the last
 *   GET    .../wal/{name}   a WAL segment or history file as a server restoring this
 *          timeline must see it, across ancestors (walserve.c): for restore_command
 *   POST   /v1/gc           one gc pass now (gc.c): {"snapshots_deleted": n}
 *   GET    .../lake         the timeline's lake tables (ltap/timeline.h)
 *   ...    .../iceberg/v1/...  the timeline's Iceberg REST catalog (catalog.c)
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "catalog.h"
#include "daemon.h"
#include "gc.h"
#include "http_api.h"
#include "ingest.h"
#include "timelines.h"
#include "walserve.h"
#include "workers.h"
#include "clock.h"
#include "errors.h"
#include "fileio.h"
#include "json.h"
#include "log.h"
#include "wal.h"
#include "ltap/lakeview.h"
#include "ltap/timeline.h"

static void
format_timestamp(int64_t us, char *out, size_t cap)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%06lldZ", base, (long long)(us % 1000000));
}

static bool scope_allows(ps_daemon *d, lb_http_request *req, unsigned roles, const char *tenant,
                         const char *timeline, int *rc);

/* The prologue of a route under /v1/tenant/{tenant_id}/timeline/{timeline_id}:
 * the ids in the path, then, for a route other roles than management may
 * call (roles, as in the route table), whether the token covers that
 * timeline. false after answering (its status in *rc): 400 when an id is
 * malformed, 403 when the token does not cover the timeline. */
static bool
timeline_route(ps_daemon *d, lb_http_request *req, unsigned roles, char *tenant, char *timeline,
               int *rc)
{
    lb_json_error e = LB_JSON_ERROR_INIT;
    lb_json_param_id(req, "tenant_id", tenant, &e);
    lb_json_param_id(req, "timeline_id", timeline, &e);
    if (e.failed) {
        *rc = lb_json_respond_bad_request(req, &e);
        return false;
    }
    return roles == 0 || scope_allows(d, req, roles, tenant, timeline, rc);
}

static int
respond_meta(lb_http_request *req, int status, ps_tlmeta *m)
{
    json_t *j = ps_tlmeta_to_json(m);
    ps_tlmeta_free(m);
    return lb_json_respond(req, status, j);
}

/* The worker pool (workers.h) is full: 503, as for any overload. */
static int
busy(lb_http_request *req)
{
    return lb_http_respond_error(req, 503, "the pageserver is busy (worker_queue is full)");
}

/* Creating a timeline (initdb, uploads) runs on the worker pool. */
typedef struct create_call {
    ps_daemon *d;
    const char *tenant, *timeline, *ancestor;
    lb_lsn lsn;
    char *err;
    size_t errcap;
    ps_tlmeta m;
    int rc;
} create_call;

static void
create_job(void *arg)
{
    create_call *c = arg;
    c->rc = c->ancestor ? ps_create_branch(c->d, c->tenant, c->timeline, c->ancestor, c->lsn, &c->m,
                                           c->err, c->errcap)
                        : ps_create_root(c->d, c->tenant, c->timeline, &c->m, c->err, c->errcap);
}

static int
h_create(lb_http_request *req, void *arg)
{
    ps_daemon *d = arg;
    lb_json_error e = LB_JSON_ERROR_INIT;
    char tenant[LB_ID_STRLEN], timeline[LB_ID_STRLEN];
    json_t *body = NULL;
    const char *ancestor = NULL;
    lb_lsn lsn = 0;
    lb_json_param_id(req, "tenant_id", tenant, &e);
    lb_json_parse_request(req, &body, &e);
    lb_json_req_id(body, "timeline_id", timeline, &e);
    lb_json_opt_str(body, "ancestor_timeline_id", NULL, &ancestor, &e);
    if (!e.failed && ancestor && !lb_json_is_id(ancestor))
        lb_json_fail(&e, LB_EPARSE,
                     "field \"ancestor_timeline_id\" must be 32 lowercase hex "
                     "characters");
    const char *when = NULL;
    int64_t when_us = 0;
    lb_json_opt_str(body, "ancestor_timestamp", NULL, &when, &e);
    if (!e.failed && when && !ancestor)
        lb_json_fail(&e, LB_EPARSE, "field \"ancestor_timestamp\" needs \"ancestor_timeline_id\"");
    if (!e.failed && when && json_object_get(body, "ancestor_lsn"))
        lb_json_fail(&e, LB_EPARSE, "give \"ancestor_lsn\" or \"ancestor_timestamp\", not both");
    if (!e.failed && when && lb_rfc3339_parse(when, &when_us) != 0)
        lb_json_fail(&e, LB_EPARSE,
                     "field \"ancestor_timestamp\" must be an RFC 3339 time "
                     "like \"2026-01-02T03:04:05.123456Z\"");
    if (ancestor && !when)
        lb_json_req_lsn(body, "ancestor_lsn", &lsn, &e);
    if (e.failed) {
        json_decref(body);
        return lb_json_respond_bad_request(req, &e);
    }
    char err[400] = "";
    if (when) {
        int64_t ts;
        uint32_t xid;
        int rc = ps_ingest_commit_before(d, tenant, ancestor, when_us, &lsn, &ts, &xid, err,
                                         sizeof(err));
        if (rc) {
            json_decref(body);
            return lb_http_respond_error(
                req, rc == LB_ENOTFOUND ? 409 : lb_http_status_for_error(rc), "%s", err);
        }
    }
    create_call c = {.d = d,
                     .tenant = tenant,
                     .timeline = timeline,
                     .ancestor = ancestor,
                     .lsn = lsn,
                     .err = err,
                     .errcap = sizeof(err)};
    int rc = ps_workers_run(d->workers, create_job, &c);
    json_decref(body);
    if (rc)
        return busy(req);
    if (c.rc)
        return lb_http_respond_error(req, lb_http_status_for_error(c.rc), "%s", err);
    return respond_meta(req, 201, &c.m);
}

static int
h_list(lb_http_request *req, void *arg)
{
    ps_daemon *d = arg;
    lb_json_error e = LB_JSON_ERROR_INIT;
    char tenant[LB_ID_STRLEN];
    if (lb_json_param_id(req, "tenant_id", tenant, &e) != 0)
        return lb_json_respond_bad_request(req, &e);
    json_t *arr = json_array();
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < d->ntimelines; i++)
        if (strcmp(d->timelines[i]->meta.tenant_id, tenant) == 0 && !d->timelines[i]->deleting)
            json_array_append_new(arr, ps_tlmeta_to_json(&d->timelines[i]->meta));
    pthread_mutex_unlock(&d->lock);
    return lb_json_respond(req, 200, arr);
}

static int
h_status(lb_http_request *req, void *arg)
{
    ps_daemon *d = arg;
    char tenant[LB_ID_STRLEN], timeline[LB_ID_STRLEN];
    int rc;
    if (!timeline_route(d, req, LB_AUTH_COMPUTE, tenant, timeline, &rc))
        return rc;
    ps_tlmeta m;
    if (ps_get_timeline(d, tenant, timeline, &m) != 0)
        return lb_http_respond_error(req, 404, "timeline %s/%s not found", tenant, timeline);
    json_t *j = ps_tlmeta_to_json(&m);
    ps_tlmeta_free(&m);
    const char *state = ps_ingest_state(d, tenant, timeline);
    json_object_set_new(j, "ingest", state ? json_string(state) : json_null());
    char why[400];
    if (ps_ingest_snapshot_error(d, tenant, timeline, why, sizeof(why)) == 0 && why[0])
        json_object_set_new(j, "snapshot_error", json_string(why));
    return lb_json_respond(req, 200, j);
}

/* The timeline's lake tables: LSN, lag behind the last replayed LSN, files
 * and bytes per table (ltap/timeline.h). */
static int
h_lake(lb_http_request *req, void *arg)
{
    ps_daemon *d = arg;
    char tenant[LB_ID_STRLEN], timeline[LB_ID_STRLEN];
    int rc;
    if (!timeline_route(d, req, LB_AUTH_COMPUTE | LB_AUTH_ANALYTICS, tenant, timeline, &rc))
        return rc;
    ps_tlmeta m;
    if (ps_get_timeline(d, tenant, timeline, &m) != 0)
        return lb_http_respond_error(req, 404, "timeline %s/%s not found", tenant, timeline);
    /* After a restart: the status the lake itself records, until a run */
    lb_err err = {0};
    rc = ltap_timeline_status_load(tenant, timeline, d->conf.remote_storage, d->metrics, &err);
    if (rc && rc != LB_ENOTFOUND)
        lb_warn("lake status: could not read it from the store tenant=%s timeline=%s error=\"%s\"",
                tenant, timeline, err.message);
    json_t *j = ltap_timeline_status(tenant, timeline, m.last_record_lsn);
    ps_tlmeta_free(&m);
    if (!j)
        return lb_http_respond_error(req, 500, "out of memory");
    return lb_json_respond(req, 200, j);
}

static int
h_delete(lb_http_request *req, void *arg)
{
    ps_daemon *d = arg;
    char tenant[LB_ID_STRLEN], timeline[LB_ID_STRLEN];
    int rc;
    if (!timeline_route(d, req, 0, tenant, timeline, &rc))
        return rc;
    char err[300] = "";
    rc = ps_delete_timeline(d, tenant, timeline, err, sizeof(err));
    if (rc)
        return lb_http_respond_error(req, lb_http_status_for_error(rc), "%s", err);
    return lb_json_respond(req, 200, json_object());
}

/* The tar is produced by a job on the worker pool into a pipe; the
 * response streams from the pipe, so a basebackup of any size holds
 * little memory. The job signals its end (done, under lock), which the
 * response's clean-up waits for. The job writes as fast as the client
 * reads, so a slow client holds a worker for as long as it takes: at most
 * max_basebackups run at once (d->basebackups, taken before the job is
 * queued and given back by the response's clean-up), and the rest get
 * 503, so that basebackups never hold every worker and ingest, snapshots
 * and uploads go on. */
typedef struct bb_job {
    ps_daemon *d;
    char tenant[LB_ID_STRLEN], timeline[LB_ID_STRLEN];
    lb_lsn lsn, snap_lsn, redo_lsn;
    ps_basebackup_plan *plan;
    int fd;        /* write end */
    atomic_int rc; /* the writer's result: set before it closes fd, read after EOF */
    char err[300];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done; /* the job has ended (under lock) */
    int read_fd;
    bool started;
} bb_job;

static int
pipe_sink(void *arg, const void *bytes, size_t n)
{
    return lb_write_all(*(int *)arg, bytes, n);
}

static void
bb_run(void *arg)
{
    bb_job *j = arg;
    lb_tar_writer tar;
    lb_tar_writer_init(&tar, pipe_sink, &j->fd);
    int rc = ps_basebackup_write(j->plan, &tar);
    atomic_store(&j->rc, rc);
    if (rc)
        lb_error("basebackup failed tenant=%s timeline=%s: %s", j->tenant, j->timeline,
                 lb_strerror(rc));
    close(j->fd); /* a failure shows as a truncated tar */
    pthread_mutex_lock(&j->lock);
    j->done = true; /* the job's last access to j */
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

static ssize_t
bb_produce(void *arg, uint64_t offset, char *buf, size_t cap)
{
    (void)offset;
    bb_job *j = arg;
    for (;;) {
        ssize_t r = read(j->read_fd, buf, cap);
        if (r >= 0)
            return r > 0 ? r : (atomic_load(&j->rc) ? -EIO : 0);
        if (errno != EINTR)
            return -errno;
    }
}

static void
bb_done(void *arg)
{
    bb_job *j = arg;
    close(j->read_fd); /* unblocks a writer that is still going */
    pthread_mutex_lock(&j->lock);
    while (j->started && !j->done)
        pthread_cond_wait(&j->cond, &j->lock);
    pthread_mutex_unlock(&j->lock);
    atomic_fetch_sub(&j->d->basebackups, 1);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    ps_basebackup_free(j->plan);
    free(j);
}

/* max_basebackups, or worker_threads - 1 (at least 1) for 0. */
static int
basebackup_cap(const ps_daemon *d)
{
    if (d->conf.max_basebackups > 0)
        return (int)d->conf.max_basebackups;
    return d->conf.worker_threads > 1 ? (int)d->conf.worker_threads - 1 : 1;
}

static int
h_basebackup(lb_http_request *req, void *arg)
{
    ps_daemon *d = arg;
    bb_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->d = d;
    int arc;
    if (!timeline_route(d, req, LB_AUTH_COMPUTE, j->tenant, j->timeline, &arc)) {
        free(j);
        return arc;
    }
    const char *lsn = lb_http_query(req, "lsn");
    if (lsn && lb_lsn_parse(lsn, &j->lsn) != 0) {
        free(j);
        lb_json_error e = LB_JSON_ERROR_INIT;
        lb_json_fail(&e, LB_EPARSE, "query \"lsn\" must be an LSN like \"0/16B3F10\"");
        return lb_json_respond_bad_request(req, &e);
    }
    ps_tlmeta m;
    if (ps_get_timeline(d, j->tenant, j->timeline, &m) != 0) {
        free(j);
        return lb_http_respond_error(req, 404, "timeline not found");
    }
    if (!lsn)
        j->lsn = m.last_record_lsn;
    ps_tlmeta_free(&m);
    char err[300] = "";
    int rc = ps_basebackup_prepare(d, j->tenant, j->timeline, j->lsn, &j->plan, &j->snap_lsn,
                                   &j->redo_lsn, err, sizeof(err));
    if (rc) {
        free(j);
        return lb_http_respond_error(req, lb_http_status_for_error(rc), "%s", err);
    }
    char hdr[LB_LSN_STRLEN];
    lb_http_add_header(req, "X-Lakebase-Snapshot-Lsn", lb_lsn_format(j->snap_lsn, hdr));
    lb_http_add_header(req, "X-Lakebase-Redo-Lsn", lb_lsn_format(j->redo_lsn, hdr));
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        ps_basebackup_free(j->plan);
        free(j);
        return -errno;
    }
    j->read_fd = p[0];
    j->fd = p[1];
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    int cap = basebackup_cap(d);
    int running = atomic_fetch_add(&d->basebackups, 1);
    if (running >= cap || (rc = ps_workers_submit(d->workers, bb_run, j)) != 0) {
        atomic_fetch_sub(&d->basebackups, 1);
        close(p[0]);
        close(p[1]);
        pthread_mutex_destroy(&j->lock);
        pthread_cond_destroy(&j->cond);
        ps_basebackup_free(j->plan);
        free(j);
        if (running >= cap) {
            lb_http_add_header(req, "Retry-After", "1");
            return lb_http_respond_error(req, 503,
                                         "the pageserver is busy: %d basebackups run "
                                         "(max_basebackups)",
                                         running);
        }
        return rc == -EBUSY ? busy(req) : rc;
    }
    j->started = true;
    return lb_http_respond_stream(req, 200, "application/x-tar", -1, bb_produce, bb_done, j);
}

static int
h_safekeepers(lb_http_request *req, void *arg)
{
    ps_daemon *d = arg;
    char tenant[LB_ID_STRLEN], timeline[LB_ID_STRLEN];
    int rc;
    if (!timeline_route(d, req, 0, tenant, timeline, &rc))
        return rc;
    lb_json_error e = LB_JSON_ERROR_INIT;
    json_t *body = NULL;
    lb_json_parse_request(req, &body, &e);
    if (e.failed) {
        json_decref(body);
        return lb_json_respond_bad_request(req, &e);
    }
    char err[300] = "";
    rc = ps_set_safekeepers(d, tenant, timeline, json_object_get(body, "safekeepers"), err,
                            sizeof(err));
    json_decref(body);
    if (rc == 0)
        rc = ps_ingest_start(d, tenant, timeline);
    if (rc)
        return lb_http_respond_error(req, lb_http_status_for_error(rc), "%s",
                                     err[0] ? err : lb_strerror(rc));
    ps_tlmeta m;
    if (ps_get_timeline(d, tenant, timeline, &m) != 0)
        return lb_http_respond_error(req, 404, "timeline not found");
    return respond_meta(req, 200, &m);
}

static int
h_snapshot(lb_http_request *req, void *arg)
{
    ps_daemon *d = arg;
    char tenant[LB_ID_STRLEN], timeline[LB_ID_STRLEN];
    int rc;
    if (!timeline_route(d, req, 0, tenant, timeline, &rc))
        return rc;
    char err[500] = "";
    bool taken;
    rc = ps_ingest_snapshot_now(d, tenant, timeline, &taken, err, sizeof(err));
    if (rc == -EBUSY)
        return busy(req);
    if (rc) /* unsupported: the data directory's state, not this server's lack */
        return lb_http_respond_error(
            req, rc == LB_EUNSUPPORTED ? 409 : lb_http_status_for_error(rc), "%s", err);
    ps_tlmeta m;
    if (ps_get_timeline(d, tenant, timeline, &m) != 0)
        return lb_http_respond_error(req, 404, "timeline not found");
    json_t *j = ps_tlmeta_to_json(&m);
    ps_tlmeta_free(&m);
    json_object_set_new(j, "snapshot_taken", json_boolean(taken));
    return lb_json_respond(req, 200, j);
}

static int
h_wal(lb_http_request *req, void *arg)
{
    ps_daemon *d = arg;
    char tenant[LB_ID_STRLEN], timeline[LB_ID_STRLEN];
    int rc;
    if (!timeline_route(d, req, LB_AUTH_COMPUTE | LB_AUTH_PAGESERVER, tenant, timeline, &rc))
        return rc;
    const char *name = lb_http_param(req, "name");
    if (!name || lb_wal_file_parse(name, LB_WAL_SEG_SIZE_MIN, NULL, NULL) == LB_WAL_FILE_BAD)
        return lb_http_respond_error(
            req, 400, "\"%.40s\" is not a WAL segment or history file name", name ? name : "");
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/tmp", d->conf.data_dir);
    int fd = open(tmp, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return lb_http_respond_error(req, 500, "could not create a temporary file in \"%s\": %s",
                                     tmp, strerror(errno));
    char err[400];
    lb_wal_valid valid;
    rc = ps_wal_fetch(d, tenant, timeline, name, fd, &valid, err, sizeof(err));
    if (rc) {
        close(fd);
        int status = rc == LB_EHTTP ? 503 : lb_http_status_for_error(rc);
        return lb_http_respond_error(req, status, "%s", err);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -errno;
    }
    if (lb_wal_file_parse(name, LB_WAL_SEG_SIZE_MIN, NULL, NULL) == LB_WAL_FILE_SEGMENT) {
        char valid_bytes[21];
        const char *final;
        lb_wal_valid_format(&valid, (uint32_t)st.st_size, valid_bytes, &final);
        if (lb_http_add_header(req, LB_WAL_VALID_BYTES_HEADER, valid_bytes) != 0 ||
            (final && lb_http_add_header(req, LB_WAL_VALID_FINAL_HEADER, final) != 0)) {
            close(fd);
            return -ENOMEM;
        }
    }
    return lb_http_respond_fd(req, 200, "application/octet-stream", fd, 0, (uint64_t)st.st_size);
}

static int
h_lsn_by_timestamp(lb_http_request *req, void *arg)
{
    ps_daemon *d = arg;
    char tenant[LB_ID_STRLEN], timeline[LB_ID_STRLEN];
    int rc;
    if (!timeline_route(d, req, LB_AUTH_COMPUTE, tenant, timeline, &rc))
        return rc;
    int64_t t;
    const char *when = lb_http_query(req, "timestamp");
    if (lb_rfc3339_parse(when, &t) != 0)
        return lb_http_respond_error(req, 400,
                                     "query \"timestamp\" must be an RFC 3339 time "
                                     "like \"2026-01-02T03:04:05.123456Z\"");
    lb_lsn lsn;
    int64_t ts;
    uint32_t xid;
    char err[300] = "";
    rc = ps_ingest_commit_before(d, tenant, timeline, t, &lsn, &ts, &xid, err, sizeof(err));
    if (rc)
        return lb_http_respond_error(req, lb_http_status_for_error(rc), "%s", err);
    char when_s[48];
    format_timestamp(ts, when_s, sizeof(when_s));
    return lb_json_respond(req, 200,
                           json_pack("{s:o, s:s, s:I}", "lsn", lb_json_lsn(lsn), "commit_timestamp",
                                     when_s, "xid", (json_int_t)xid));
}

typedef struct gc_call {
    ps_daemon *d;
    size_t deleted;
    int rc;
} gc_call;

static void
gc_job(void *arg)
{
    gc_call *c = arg;
    c->rc = ps_gc_once(c->d, &c->deleted);
}

static int
h_gc(lb_http_request *req, void *arg)
{
    gc_call c = {.d = arg};
    if (ps_workers_run(c.d->workers, gc_job, &c) != 0)
        return busy(req);
    int rc = c.rc;
    size_t deleted = c.deleted;
    if (rc)
        return lb_http_respond_error(req, lb_http_status_for_error(rc), "gc failed: %s",
                                     lb_strerror(rc));
    return lb_json_respond(req, 200, json_pack("{s:I}", "snapshots_deleted", (json_int_t)deleted));
}

/* Who may call the routes whose scope the handler checks (own_scope):
 * management, a token scoped to the request's tenant and timeline, or a
 * compute token of a branch of it (a compute reads its ancestors' WAL and
 * snapshots). 0, or 403 answered (*rc its status). */
static bool
scope_allows(ps_daemon *d, lb_http_request *req, unsigned roles, const char *tenant,
             const char *timeline, int *rc)
{
    const lb_auth_claims *who = lb_http_claims(req);
    if (!who || lb_auth_allows(who, roles, tenant, timeline))
        return true;
    if (who->role == LB_AUTH_COMPUTE && (roles & LB_AUTH_COMPUTE) && who->timeline[0] &&
        strcmp(who->tenant, tenant) == 0 && ps_is_ancestor(d, tenant, timeline, who->timeline))
        return true;
    *rc = lb_http_respond_error(req, 403, "the token (role %s) does not cover timeline %s/%s",
                                lb_auth_role_name(who->role), tenant, timeline);
    return false;
}

/* The route table: who may call what (AUTH_DESIGN). Management may do
 * everything; a compute token reads its own timeline (and ancestors);
 * the pageserver's own token reads WAL (its redo standbys' restore
 * script). /metrics and /healthz are the HTTP server's, open. */
int
ps_http_routes(ps_daemon *d)
{
    enum {
        MGMT = 0,
        COMPUTE = LB_AUTH_COMPUTE,
        PS = LB_AUTH_PAGESERVER,
        ANALYTICS = LB_AUTH_ANALYTICS
    };
    static const struct {
        const char *method, *pattern;
        lb_http_handler fn;
        unsigned roles; /* besides management; checked by the handler (own_scope) */
    } routes[] = {
        {"POST", "/v1/tenant/{tenant_id}/timeline", h_create, MGMT},
        {"GET", "/v1/tenant/{tenant_id}/timeline", h_list, MGMT},
        {"GET", "/v1/tenant/{tenant_id}/timeline/{timeline_id}", h_status, COMPUTE},
        {"DELETE", "/v1/tenant/{tenant_id}/timeline/{timeline_id}", h_delete, MGMT},
        {"GET", "/v1/tenant/{tenant_id}/timeline/{timeline_id}/basebackup", h_basebackup, COMPUTE},
        {"PUT", "/v1/tenant/{tenant_id}/timeline/{timeline_id}/safekeepers", h_safekeepers, MGMT},
        {"POST", "/v1/tenant/{tenant_id}/timeline/{timeline_id}/snapshot", h_snapshot, MGMT},
        {"GET", "/v1/tenant/{tenant_id}/timeline/{timeline_id}/wal/{name}", h_wal, COMPUTE | PS},
        {"GET", "/v1/tenant/{tenant_id}/timeline/{timeline_id}/lake", h_lake, COMPUTE | ANALYTICS},
        {"POST", "/v1/gc", h_gc, MGMT},
        {"GET", "/v1/tenant/{tenant_id}/timeline/{timeline_id}/lsn_by_timestamp",
         h_lsn_by_timestamp, COMPUTE},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        lb_http_access access = {.roles = routes[i].roles, .own_scope = routes[i].roles != 0};
        int rc = lb_http_server_route_access(d->http, routes[i].method, routes[i].pattern,
                                             routes[i].fn, d, &access);
        if (rc)
            return rc;
    }
    return ps_catalog_routes(d);
}
