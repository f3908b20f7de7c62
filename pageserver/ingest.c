/*
 * ingest.c: per timeline, a vanilla PostgreSQL hot standby (the redo
 * standby) that streams committed WAL from the timeline's safekeepers, and
 * the snapshots taken from it.
 *
 * PostgreSQL applies its own WAL, so redo is right for every resource
 * manager and extension. A snapshot follows the procedure the design
 * gives, with one guard it needs: pause replay and wait until paused;
 * CHECKPOINT; the copy is exact at the replay LSN P only if that
 * CHECKPOINT really performed a restartpoint (it is skipped when no new
 * checkpoint record was replayed since the last one, and then it flushes
 * nothing). So the standby never makes restartpoints on its own
 * (checkpoint_timeout 1 day, max_wal_size 1 TB), and a snapshot is taken
 * only when the restartpoint's redo LSN moved past the one before our
 * CHECKPOINT. While paused nothing writes the data files (with data
 * checksums, hint bits do not dirty pages in recovery).
 *
 * The standby runs as the PostgreSQL user, listening on 127.0.0.1 only
 * (on a free port; no unix socket, whose path under the data directory
 * could pass the 107-byte limit), with fsync off: it is rebuilt from the
 * newest snapshot if the pageserver's disk is lost, so its own durability
 * buys nothing. Failover between safekeepers: when the WAL receiver has
 * not been streaming for a while, primary_conninfo moves to the next
 * safekeeper (a reload, no restart).
 *
 * Threads (daemon.h). An ingest has a timer on the pageserver's loop
 * (on_tick, every TICK_MS) that queues one tick job on the worker pool
 * unless the last is still queued or running (busy). The first tick
 * starts it (opens the WAL index, builds and starts the standby); later
 * ones read its progress, fail over, take a snapshot when
 * snapshot_interval has passed, report the position, stop an idle standby
 * and wake it when the safekeepers have new WAL. A tick runs under
 * in->lock and skips its turn if a snapshot that HTTP asked for holds it.
 * The loop also attaches the WAL index's stream (indexer.c) once the
 * start job has opened it. Stopping: the stop flag, the loop detaches the
 * timer and the stream, the stopper waits for the jobs' references, then
 * stops the standby and closes the index.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <pwd.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>

#include "daemon.h"
#include "indexer.h"
#include "ingest.h"
#include "timelines.h"
#include "walserve.h"
#include "workers.h"
#include "auth.h"
#include "clock.h"
#include "event_loop.h"
#include "errors.h"
#include "fileio.h"
#include "hostport.h"
#include "http_client.h"
#include "log.h"
#include "snapshot.h"
#include "wal.h"
#include "ltap/timeline.h"

#define TICK_MS 500
#define FAILOVER_AFTER_MS 10000
#define PAUSE_TIMEOUT_MS 30000

struct ps_ingest {
    ps_daemon *d;
    char tenant[PS_ID_LEN + 1], timeline[PS_ID_LEN + 1];
    char root[PATH_MAX]; /* <data_dir>/standby/<tenant>-<timeline> */
    char pgdata[PATH_MAX];
    int port;
    atomic_bool stop; /* set by ps_ingest_stop*, read by the loop and the jobs */
    /* The loop's alone: */
    bool attached; /* the tick timer is set */
    uint64_t timer;
    bool indexer_attached;
    /* A tick job is queued or running: the loop queues the next only
     * after it (a slow tick delays ticks, never piles them up). */
    atomic_bool busy;
    /* Set once by the start job (a worker), read by the loop and HTTP. */
    _Atomic(ps_indexer *) indexer; /* the WAL block index of the timeline's own WAL */
    /* Under lock, which a job holds for a tick or a snapshot (seconds):
     * the standby's connection and what the ticks keep. */
    pthread_mutex_t lock;
    PGconn *conn;
    int sk_index;
    int64_t not_streaming_since;
    int64_t last_snapshot_ms;
    int64_t last_report_ms;
    bool started; /* the first start was tried */
    bool dead;    /* it failed: the ticks do nothing until the ingest is restarted */
    bool running; /* the redo standby is up (else idle: stopped until new WAL) */
    lb_lsn last_replay;
    int64_t last_progress_ms;
    int64_t last_wake_check_ms;
    uint64_t token_generation; /* of the token the standby was given */
    /* What /status shows, readable without in->lock: "starting",
     * "running" or "idle". */
    _Atomic(const char *) state;
    int refs;                   /* jobs and callers using it outside d->ingest_lock (under it) */
    pthread_mutex_t error_lock; /* snapshot_error; never held while waiting on another */
    char snapshot_error[400];   /* why the last snapshot could not be taken ("" if it was) */
};

static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* One-row, one-column query; NULL on error (the caller frees). */
static char *
query1(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    char *v = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = strdup(PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        lb_warn("standby query failed: %s", PQresultErrorMessage(r));
    PQclear(r);
    return v;
}

static bool
exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        lb_warn("standby command \"%s\" failed: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

static bool
lsn_query(PGconn *c, const char *sql, lb_lsn *out)
{
    char *v = query1(c, sql);
    bool ok = v && lb_lsn_parse(v, out) == 0;
    free(v);
    return ok;
}

static int
get_meta(ps_ingest *in, ps_tlmeta *m)
{
    return ps_get_timeline(in->d, in->tenant, in->timeline, m);
}

static void
primary_conninfo(ps_ingest *in, const ps_tlmeta *m, char *out, size_t cap)
{
    const struct ps_sk_addr *sk = &m->safekeepers[in->sk_index % m->nsafekeepers];
    lb_hostport hp = {.host = "", .port = 0}; /* checked by PUT safekeepers (tlmeta.c) */
    lb_hostport_parse(sk->pg, &hp);
    /* The safekeeper takes the pageserver's token as the password. */
    char token[LB_AUTH_TOKEN_MAX + 1] = "";
    if (in->d->token)
        lb_auth_token_get(in->d->token, token, sizeof(token));
    snprintf(out, cap,
             "host=%s port=%d user=postgres application_name=pageserver "
             "options=''-c tenant_id=%s -c timeline_id=%s''%s%s",
             hp.host, hp.port, in->tenant, in->timeline, token[0] ? " password=" : "", token);
    explicit_bzero(token, sizeof(token));
}

static void
restore_script_path(const ps_ingest *in, char *out, size_t cap)
{
    snprintf(out, cap, "%.4000s/standby/%.32s-%.32s.restore.sh", in->d->conf.data_dir, in->tenant,
             in->timeline);
}

/* Build the standby's data directory from the newest snapshot. */
static int
prepare_standby(ps_ingest *in)
{
    struct stat st;
    char marker[2 * PATH_MAX];
    snprintf(marker, sizeof(marker), "%s/PG_VERSION", in->pgdata);
    if (stat(marker, &st) == 0)
        return 0; /* exists: it goes on from where it was */
    ps_tlmeta m = {0};
    int rc = get_meta(in, &m);
    if (rc)
        return rc;
    lb_rm_rf(in->pgdata);
    ps_basebackup_plan *plan;
    lb_lsn snap, redo;
    char err[300];
    rc = ps_basebackup_prepare(in->d, in->tenant, in->timeline, m.last_record_lsn, &plan, &snap,
                               &redo, err, sizeof(err));
    if (rc == 0) {
        rc = ps_basebackup_write_dir(plan, in->pgdata);
        ps_basebackup_free(plan);
    } else {
        lb_error("no snapshot to start the redo standby from tenant=%s timeline=%s: %s", in->tenant,
                 in->timeline, err);
    }
    if (rc == 0) {
        char conf[2 * PATH_MAX], pc[LB_AUTH_TOKEN_MAX + 600], restore[2 * PATH_MAX];
        primary_conninfo(in, &m, pc, sizeof(pc));
        /* Segments and history files come from this pageserver's WAL
         * endpoint: the timeline's own WAL from its safekeepers, an
         * ancestor's up to the branch point. */
        restore_script_path(in, restore, sizeof(restore));
        snprintf(conf, sizeof(conf), "%s/postgresql.auto.conf", in->pgdata);
        lb_buf c = LB_BUF_INIT;
        lb_buf_printf(&c,
                      "listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = ''\n"
                      "hot_standby = on\nfsync = off\nsynchronous_commit = off\n"
                      "checkpoint_timeout = '1d'\nmax_wal_size = '1TB'\n"
                      "shared_buffers = '64MB'\n"
                      "primary_conninfo = '%s'\nrestore_command = '%s %%f %%p'\n"
                      "recovery_target_timeline = 'latest'\nlogging_collector = off\n"
                      "max_standby_streaming_delay = -1\n",
                      in->port, pc, restore);
        if (rc == 0)
            rc = lb_write_file_atomic(conf, c.data, c.len);
        lb_buf_free(&c);
        char signal_path[2 * PATH_MAX];
        snprintf(signal_path, sizeof(signal_path), "%s/standby.signal", in->pgdata);
        if (rc == 0)
            rc = lb_write_file_atomic(signal_path, "", 0);
    }
    ps_tlmeta_free(&m);
    if (rc == 0) {
        rc = ps_chown_to_pg(in->d, in->root);
        if (rc)
            lb_error("could not give \"%s\" to the PostgreSQL user: %s", in->root, lb_strerror(rc));
        chmod(in->pgdata, 0700);
    }
    return rc;
}

/* The standby's restore_command: this pageserver's WAL endpoint, at its
 * address of this run (rewritten at every start). It lives next to the
 * standby's directory, in <data_dir>/standby, which belongs to the
 * pageserver's user: the PostgreSQL user owns the standby's own directory
 * and could otherwise plant a link where a root pageserver writes. A
 * temporary file of a unique name (mkostemp: O_EXCL, never through a
 * link), fchmod on the descriptor, then rename over the script. */
/* Write content to path as a new file of the given mode: a unique
 * temporary file next to it, owned by us and (when we are root) by the
 * PostgreSQL user's group, renamed over path. */
static int
publish_file(ps_ingest *in, const char *path, const char *content, mode_t mode)
{
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (geteuid() == 0) {
        struct passwd pw, *res = NULL;
        char buf[4096];
        if (getpwnam_r(in->d->conf.pg_user, &pw, buf, sizeof(buf), &res) != 0 || !res)
            rc = LB_EBADCONFIG;
        else if (fchown(fd, 0, pw.pw_gid) != 0)
            rc = -errno;
    } else {
        mode &= 0700; /* the standby runs as we do */
    }
    if (rc == 0 && fchmod(fd, mode) != 0)
        rc = -errno;
    if (rc == 0)
        rc = lb_write_all(fd, content, strlen(content));
    if (rc == 0)
        rc = lb_fsync(fd);
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc)
        unlink(tmp);
    return rc;
}

static int
write_restore_script(ps_ingest *in)
{
    char restore[PATH_MAX], authfile[PATH_MAX + 8], header[LB_AUTH_TOKEN_MAX + 64];
    char script[PATH_MAX + 1024], hopt[PATH_MAX + 16] = "";
    restore_script_path(in, restore, sizeof(restore));
    int rc = 0;
    /* The pageserver's own token, for its WAL endpoint: readable by the
     * PostgreSQL user's group only, never written into the script. */
    if (in->d->token) {
        char token[LB_AUTH_TOKEN_MAX + 1];
        snprintf(authfile, sizeof(authfile), "%.4000s.auth", restore);
        rc = lb_auth_token_get(in->d->token, token, sizeof(token));
        if (rc == 0) {
            snprintf(header, sizeof(header), "Authorization: Bearer %s\n", token);
            rc = publish_file(in, authfile, header, 0640);
        }
        explicit_bzero(token, sizeof(token));
        explicit_bzero(header, sizeof(header));
        snprintf(hopt, sizeof(hopt), "-H @'%s' ", authfile);
    }
    const char *host = in->d->conf.listen_http.host;
    if (!host[0] || strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    snprintf(script, sizeof(script),
             "#!/bin/sh\n"
             "curl -sf --max-time 60 %s-o \"$2.part\" "
             "\"http://%s:%d/v1/tenant/%s/timeline/%s/wal/$1\" && mv \"$2.part\" \"$2\" "
             "&& exit 0\nrm -f \"$2.part\"; exit 1\n",
             hopt, host, in->d->http_port, in->tenant, in->timeline);
    if (rc == 0)
        rc = publish_file(in, restore, script, 0750);
    return rc;
}

static int
start_standby(ps_ingest *in)
{
    int wrc = write_restore_script(in);
    if (wrc) {
        lb_error("could not write the restore script tenant=%s timeline=%s: %s", in->tenant,
                 in->timeline, lb_strerror(wrc));
        return wrc;
    }
    /* A pageserver that was killed leaves its standbys running: stop one
     * left on this data directory before starting ours (its settings, the
     * port at least, are not ours). */
    const char *stale[] = {"-D", in->pgdata, "-m", "immediate", "-w", "stop", NULL};
    char pidfile[2 * PATH_MAX];
    snprintf(pidfile, sizeof(pidfile), "%s/postmaster.pid", in->pgdata);
    if (access(pidfile, F_OK) == 0 && ps_run_pg(in->d, NULL, "pg_ctl", stale) == 0)
        lb_info("stopped a redo standby left running on \"%s\"", in->pgdata);
    char log[2 * PATH_MAX];
    snprintf(log, sizeof(log), "%s/postgres.log", in->root);
    /* The port and restore script of this run: the data directory may be
     * from an earlier one (and command-line settings win over its
     * postgresql.auto.conf). */
    char opts[PATH_MAX + 64], restore[PATH_MAX];
    restore_script_path(in, restore, sizeof(restore));
    snprintf(opts, sizeof(opts), "-p %d -c \"restore_command=%s %%f %%p\"", in->port, restore);
    /* Not waiting: a standby that needs WAL from a source that is down
     * (this pageserver stopping, say) does not accept connections for a
     * long time; the ingest loop connects when it does. */
    const char *args[] = {"-D", in->pgdata, "-l", log, "-o", opts, "-W", "start", NULL};
    int st = ps_run_pg(in->d, NULL, "pg_ctl", args);
    if (st != 0) {
        lb_error("could not start the redo standby tenant=%s timeline=%s log=\"%s\"", in->tenant,
                 in->timeline, log);
        return LB_EUNSUPPORTED;
    }
    return 0;
}

static void
stop_standby(ps_ingest *in)
{
    const char *args[] = {"-D", in->pgdata, "-m", "fast", "-w", "stop", NULL};
    ps_run_pg(in->d, NULL, "pg_ctl", args);
}

static bool
connect_standby(ps_ingest *in)
{
    if (in->conn && PQstatus(in->conn) == CONNECTION_OK)
        return true;
    PQfinish(in->conn);
    char port[16];
    snprintf(port, sizeof(port), "%d", in->port);
    const char *keys[] = {"host", "port", "user", "dbname", "connect_timeout", NULL};
    const char *vals[] = {"127.0.0.1", port, "postgres", "postgres", "5", NULL};
    in->conn = PQconnectdbParams(keys, vals, 0);
    return PQstatus(in->conn) == CONNECTION_OK;
}

/* LTAP: the timeline's lake at P, read from the standby still paused at
 * P (ltap/timeline.h). Its errors are logged and shown by GET .../lake;
 * they never stop ingest. Ingest waits meanwhile: that is how P is held. */
static int
lake_after_snapshot(ps_ingest *in, lb_lsn p, lb_err *err)
{
    ps_indexer *x = atomic_load(&in->indexer);
    if (!x)
        return lb_err_set(err, LB_ENOTFOUND, "the timeline's WAL block index is not open");
    char conninfo[96];
    snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d user=postgres dbname=postgres",
             in->port);
    /* a branch's first run starts from its parent's lake (ltap/timeline.h) */
    ps_tlmeta m = {0};
    char ancestor[sizeof(m.ancestor_id)] = "";
    lb_lsn ancestor_lsn = 0;
    if (get_meta(in, &m) == 0) {
        snprintf(ancestor, sizeof(ancestor), "%s", m.ancestor_id);
        ancestor_lsn = m.ancestor_lsn;
        ps_tlmeta_free(&m);
    }
    ltap_timeline_run run = {.tenant = in->tenant,
                             .ancestor = ancestor,
                             .ancestor_lsn = ancestor_lsn,
                             .pgdata = in->pgdata,
                             .timeline = in->timeline,
                             .conninfo = conninfo,
                             .lsn = p,
                             .store_url = in->d->conf.remote_storage,
                             .index = LTAP_PS_INDEX_ACCESS(x, ps_indexer_with_index),
                             .metrics = in->d->metrics,
                             .retention_ms = in->d->conf.gc_retention_ms,
                             .chunk_blocks = (uint32_t)in->d->conf.lake_chunk_blocks,
                             .cancel = &in->stop};
    return ltap_timeline_materialize(&run, err);
}

/* Pause replay and wait until it is paused; 0, LB_ETIMEOUT or LB_EPROTO. */
static int
pause_replay(PGconn *c)
{
    if (!exec_ok(c, "select pg_wal_replay_pause()"))
        return LB_EPROTO;
    int64_t deadline = lb_mono_ms() + PAUSE_TIMEOUT_MS;
    for (;;) {
        char *state = query1(c, "select pg_get_wal_replay_pause_state()");
        bool paused = state && strcmp(state, "paused") == 0;
        free(state);
        if (paused)
            return 0;
        if (lb_mono_ms() > deadline)
            return LB_ETIMEOUT;
        lb_sleep_ms(10);
    }
}

/* The snapshot procedure; the caller holds in->lock. */
static int
take_snapshot(ps_ingest *in, bool *taken)
{
    *taken = false;
    PGconn *c = in->conn;
    lb_lsn r_before, r_after, p;
    if (!lsn_query(c, "select redo_lsn from pg_control_checkpoint()", &r_before))
        return LB_EPROTO;
    int rc = pause_replay(c);
    if (rc == LB_EPROTO)
        return rc;
    int64_t t0 = lb_mono_ms();
    if (rc == 0 && (!exec_ok(c, "checkpoint") ||
                    !lsn_query(c, "select redo_lsn from pg_control_checkpoint()", &r_after) ||
                    !lsn_query(c, "select pg_last_wal_replay_lsn()", &p)))
        rc = LB_EPROTO;
    if (rc == 0 && r_after > r_before) {
        /* A restartpoint happened while paused: the files are exact at P. */
        ps_tlmeta m = {0};
        rc = get_meta(in, &m);
        if (rc == 0 && m.nsnapshots && p <= m.snapshots[m.nsnapshots - 1].lsn)
            rc = -EALREADY;
        /* Pages not newer than the snapshot before (this timeline's last,
         * or for a branch's first, the ancestor's its standby began from)
         * are already in layers. */
        lb_lsn prev = 0;
        bool full = rc == 0 && ps_image_due(in->d, in->tenant, in->timeline);
        if (rc == 0 && full)
            prev = 0;
        else if (rc == 0 && m.nsnapshots)
            prev = m.snapshots[m.nsnapshots - 1].lsn;
        else if (rc == 0 &&
                 ps_snapshot_lsn_at(in->d, in->tenant, in->timeline, m.start_lsn, &prev) != 0)
            prev = 0;
        if (rc == 0) {
            ps_snapshot_meta snap = {
                .lsn = p, .redo_lsn = r_after, .created_ms = lb_now_ms(), .full = full};
            snprintf(snap.layer, sizeof(snap.layer), "%016" PRIX64 ".layer", p);
            char dir[PATH_MAX], ldir[PATH_MAX + 16], lpath[PATH_MAX + 100];
            ps_timeline_dir(in->d, in->tenant, in->timeline, dir, sizeof(dir));
            snprintf(ldir, sizeof(ldir), "%s/layers", dir);
            lb_mkdir_p(ldir, 0700);
            snprintf(lpath, sizeof(lpath), "%s/%s", ldir, snap.layer);
            ps_layer_info info = {.lsn = p,
                                  .redo_lsn = r_after,
                                  .prev_lsn = prev,
                                  .created_unix_ms = (uint64_t)snap.created_ms};
            ps_snapshot_stats stats;
            rc = ps_snapshot_take(in->pgdata, &info, m.wal_seg_size, lpath, &stats);
            snap.bytes = stats.bytes;
            /* Replay resumes below whatever happened: a snapshot that
             * cannot be taken never stops ingest. Its reason stays for
             * /status and the next POST .../snapshot. */
            if (rc == LB_EUNSUPPORTED) {
                pthread_mutex_lock(&in->error_lock);
                snprintf(in->snapshot_error, sizeof(in->snapshot_error), "%s", stats.unsupported);
                pthread_mutex_unlock(&in->error_lock);
            } else if (rc == 0) {
                pthread_mutex_lock(&in->error_lock);
                in->snapshot_error[0] = '\0';
                pthread_mutex_unlock(&in->error_lock);
            }
            if (rc == 0)
                rc = ps_add_snapshot(in->d, in->tenant, in->timeline, &snap, lpath);
            if (rc == 0) {
                *taken = true;
                lb_histogram_observe(in->d->snapshot_seconds, (lb_mono_ms() - t0) / 1000.0);
                lb_histogram_observe(in->d->snapshot_bytes, (double)stats.bytes);
                lb_counter_add(in->d->snapshot_pages, (double)stats.main_pages_written);
                lb_info("snapshot tenant=%s timeline=%s lsn=%X/%X redo=%X/%X full=%d "
                        "pages=%llu/%llu bytes=%llu ms=%lld",
                        in->tenant, in->timeline, LB_LSN_ARGS(p), LB_LSN_ARGS(r_after), full,
                        (unsigned long long)stats.main_pages_written,
                        (unsigned long long)stats.main_pages_seen, (unsigned long long)stats.bytes,
                        (long long)(lb_mono_ms() - t0));
                lake_after_snapshot(in, p, NULL);
            }
        }
        if (rc == -EALREADY)
            rc = 0;
        ps_tlmeta_free(&m);
    }
    if (!exec_ok(c, "select pg_wal_replay_resume()") && rc == 0)
        rc = LB_EPROTO;
    return rc;
}

/* Tell the safekeepers which WAL we still need: everything from the
 * newest snapshot's redo LSN on (a compute restores from there). */
static void
report_position(ps_ingest *in)
{
    ps_tlmeta m = {0};
    if (get_meta(in, &m) != 0)
        return;
    if (m.nsnapshots)
        ps_report_consumer(in->d, &m, "pageserver", m.snapshots[m.nsnapshots - 1].redo_lsn);
    ps_tlmeta_free(&m);
}

static void
check_receiver(ps_ingest *in)
{
    char *status = query1(in->conn, "select status from pg_stat_wal_receiver");
    bool streaming = status && strcmp(status, "streaming") == 0;
    free(status);
    if (streaming) {
        in->not_streaming_since = 0;
        return;
    }
    if (!in->not_streaming_since) {
        in->not_streaming_since = lb_mono_ms();
        return;
    }
    if (lb_mono_ms() - in->not_streaming_since < FAILOVER_AFTER_MS)
        return;
    ps_tlmeta m = {0};
    if (get_meta(in, &m) != 0 || m.nsafekeepers < 2) {
        ps_tlmeta_free(&m);
        return;
    }
    in->sk_index = (in->sk_index + 1) % (int)m.nsafekeepers;
    char pc[LB_AUTH_TOKEN_MAX + 600], sql[LB_AUTH_TOKEN_MAX + 800];
    primary_conninfo(in, &m, pc, sizeof(pc));
    snprintf(sql, sizeof(sql), "alter system set primary_conninfo = '%s'", pc);
    if (exec_ok(in->conn, sql) && exec_ok(in->conn, "select pg_reload_conf()"))
        lb_info("redo standby switched safekeeper tenant=%s timeline=%s safekeeper=%s", in->tenant,
                in->timeline, m.safekeepers[in->sk_index].pg);
    in->not_streaming_since = lb_mono_ms();
    ps_tlmeta_free(&m);
}

/* Give the standby the token reloaded since it was started: its restore
 * script's header file, and primary_conninfo (a reload: the WAL
 * receiver reconnects with it). The caller holds in->lock. */
static void
refresh_token(ps_ingest *in)
{
    uint64_t gen = atomic_load(&in->d->token_generation);
    if (gen == in->token_generation)
        return;
    ps_tlmeta m = {0};
    if (get_meta(in, &m) != 0 || !m.nsafekeepers) {
        ps_tlmeta_free(&m);
        return;
    }
    char pc[LB_AUTH_TOKEN_MAX + 600], sql[LB_AUTH_TOKEN_MAX + 800];
    primary_conninfo(in, &m, pc, sizeof(pc));
    snprintf(sql, sizeof(sql), "alter system set primary_conninfo = '%s'", pc);
    int rc = write_restore_script(in);
    if (rc == 0 && exec_ok(in->conn, sql) && exec_ok(in->conn, "select pg_reload_conf()")) {
        in->token_generation = gen;
        lb_info("redo standby has the reloaded token tenant=%s timeline=%s", in->tenant,
                in->timeline);
    }
    explicit_bzero(pc, sizeof(pc));
    explicit_bzero(sql, sizeof(sql));
    ps_tlmeta_free(&m);
}

/* The caller holds in->lock. */
static int
wake(ps_ingest *in)
{
    if (in->running)
        return 0;
    int rc = start_standby(in);
    if (rc == 0) {
        in->running = true;
        atomic_store(&in->state, "running");
        in->last_progress_ms = lb_mono_ms();
        lb_info("redo standby started tenant=%s timeline=%s reason=\"new WAL\"", in->tenant,
                in->timeline);
    }
    return rc;
}

/* Idle: a snapshot of what was replayed, then the standby stops. The
 * caller holds in->lock. */
static void
sleep_standby(ps_ingest *in)
{
    bool taken;
    take_snapshot(in, &taken);
    PQfinish(in->conn);
    in->conn = NULL;
    stop_standby(in);
    in->running = false;
    atomic_store(&in->state, "idle");
    lb_info("redo standby stopped tenant=%s timeline=%s reason=idle idle_ms=%lld", in->tenant,
            in->timeline, (long long)in->d->conf.ingest_idle_timeout_ms);
}

/* While idle: whether the safekeepers hold WAL past what was replayed. */
static bool
new_wal(ps_ingest *in)
{
    ps_tlmeta m = {0};
    if (get_meta(in, &m) != 0)
        return false;
    lb_lsn committed = 0;
    ps_indexer *x = atomic_load(&in->indexer);
    if (x) {
        committed = ps_indexer_position(x);
    } else {
        uint32_t tli;
        char err[200];
        if (ps_tli_at(in->d, &m, m.last_record_lsn, &tli, &committed, err, sizeof(err)) != 0)
            committed = 0;
    }
    bool more = committed > m.last_record_lsn;
    ps_tlmeta_free(&m);
    return more;
}

/* The first tick: open the WAL index (installing its files from object
 * storage), build the standby's data directory, start it. The caller
 * holds in->lock. */
static void
start(ps_ingest *in)
{
    ps_indexer *x = NULL;
    int rc = ps_indexer_open(in->d, in->tenant, in->timeline, &x);
    if (rc)
        lb_error("WAL index not available, going on without tenant=%s timeline=%s: %s", in->tenant,
                 in->timeline, lb_strerror(rc));
    else
        atomic_store(&in->indexer, x); /* the loop attaches it at its next tick */
    rc = prepare_standby(in);
    if (rc == 0)
        rc = wake(in);
    in->started = true;
    if (!in->running)
        atomic_store(&in->state, "idle");
    if (rc) {
        in->dead = true;
        lb_error("ingest not running tenant=%s timeline=%s: %s", in->tenant, in->timeline,
                 lb_strerror(rc));
    }
}

/* One tick: progress, failover, snapshot when due, the position report,
 * idle stop and wake. The caller holds in->lock. */
static void
tick(ps_ingest *in)
{
    if (!in->running) {
        if (lb_mono_ms() - in->last_wake_check_ms >= 1000) {
            in->last_wake_check_ms = lb_mono_ms();
            if (new_wal(in))
                wake(in);
        }
        return;
    }
    if (!connect_standby(in))
        return;
    refresh_token(in);
    lb_lsn replay, received;
    if (lsn_query(in->conn, "select pg_last_wal_replay_lsn()", &replay)) {
        if (replay != in->last_replay) {
            in->last_replay = replay;
            in->last_progress_ms = lb_mono_ms();
        }
        ps_set_last_record_lsn(in->d, in->tenant, in->timeline, replay);
        lb_gauge *g;
        if (lb_gauge_labels(in->d->last_record_lsn, &g, in->tenant, in->timeline, NULL) == 0)
            lb_gauge_set(g, (double)replay);
        if (lsn_query(in->conn, "select pg_last_wal_receive_lsn()", &received) &&
            lb_gauge_labels(in->d->ingest_lag_bytes, &g, in->tenant, in->timeline, NULL) == 0)
            lb_gauge_set(g, received > replay ? (double)(received - replay) : 0);
    }
    check_receiver(in);
    if (lb_mono_ms() - in->last_snapshot_ms >= in->d->snapshot_interval_ms) {
        bool taken;
        if (take_snapshot(in, &taken) == 0)
            in->last_snapshot_ms = lb_mono_ms();
    }
    if (lb_mono_ms() - in->last_report_ms >= 5000) {
        report_position(in);
        in->last_report_ms = lb_mono_ms();
    }
    int64_t idle = in->d->conf.ingest_idle_timeout_ms;
    if (idle > 0 && lb_mono_ms() - in->last_progress_ms >= idle && !new_wal(in))
        sleep_standby(in);
}

static void ingest_unref(ps_daemon *d, ps_ingest *in);

/* A worker job. A tick finding in->lock taken (a snapshot that HTTP asked
 * for) does nothing: the next one comes soon. */
static void
tick_job(void *arg)
{
    ps_ingest *in = arg;
    if (!atomic_load(&in->stop) && pthread_mutex_trylock(&in->lock) == 0) {
        if (!in->started)
            start(in);
        else if (!in->dead && !atomic_load(&in->stop))
            tick(in);
        pthread_mutex_unlock(&in->lock);
    }
    atomic_store(&in->busy, false);
    ingest_unref(in->d, in); /* last: in may go once it is dropped */
}

/* The tick timer, on the loop: queue a tick job unless one is pending. */
static int64_t
on_tick(lb_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    ps_ingest *in = arg;
    ps_daemon *d = in->d;
    if (atomic_load(&in->stop))
        return TICK_MS; /* its stop detaches it */
    ps_indexer *x = atomic_load(&in->indexer);
    if (x && !in->indexer_attached && ps_indexer_attach(x) == 0)
        in->indexer_attached = true;
    if (!atomic_exchange(&in->busy, true)) {
        pthread_mutex_lock(&d->ingest_lock);
        in->refs++;
        pthread_mutex_unlock(&d->ingest_lock);
        if (ps_workers_submit(d->workers, tick_job, in) != 0) {
            atomic_store(&in->busy, false); /* the pool is full: the next tick tries again */
            ingest_unref(d, in);
        }
    }
    return TICK_MS;
}

static void
attach_on_loop(ps_daemon *d, void *arg)
{
    ps_ingest *in = arg;
    /* Both run on the loop: a stop whose detach came first set stop
     * before it, so nothing is attached after a detach. */
    if (!in->attached && !atomic_load(&in->stop) &&
        lb_loop_add_timer(d->loop, 0, on_tick, in, &in->timer) == 0)
        in->attached = true;
}

static void
detach_on_loop(ps_daemon *d, void *arg)
{
    ps_ingest *in = arg;
    if (in->attached)
        lb_loop_del_timer(d->loop, in->timer);
    in->attached = false;
    if (in->indexer_attached)
        ps_indexer_detach(atomic_load(&in->indexer));
    in->indexer_attached = false;
}

static ps_ingest *
find_ingest(ps_daemon *d, const char *tenant, const char *timeline)
{
    for (int i = 0; i < d->ningests; i++)
        if (strcmp(d->ingests[i]->tenant, tenant) == 0 &&
            strcmp(d->ingests[i]->timeline, timeline) == 0)
            return d->ingests[i];
    return NULL;
}

int
ps_ingest_start(ps_daemon *d, const char *tenant, const char *timeline)
{
    char base[PATH_MAX];
    if ((size_t)snprintf(base, sizeof(base), "%s/standby", d->conf.data_dir) >= sizeof(base) - 100)
        return -ENAMETOOLONG;
    ps_ingest *in = calloc(1, sizeof(*in));
    if (!in)
        return -ENOMEM;
    in->d = d;
    snprintf(in->tenant, sizeof(in->tenant), "%s", tenant);
    snprintf(in->timeline, sizeof(in->timeline), "%s", timeline);
    snprintf(in->root, sizeof(in->root), "%.3900s/%.32s-%.32s", base, tenant, timeline);
    snprintf(in->pgdata, sizeof(in->pgdata), "%.3990s/pgdata", in->root);
    pthread_mutex_init(&in->lock, NULL);
    pthread_mutex_init(&in->error_lock, NULL);
    atomic_init(&in->stop, false);
    atomic_init(&in->busy, false);
    atomic_init(&in->indexer, NULL);
    atomic_init(&in->state, "starting");
    in->last_snapshot_ms = lb_mono_ms();
    /* Its first tick gives the standby the current token, also when the
     * data directory is from a run with an older one. */
    in->token_generation = UINT64_MAX;

    pthread_mutex_lock(&d->ingest_lock);
    /* Lock order: ingest_lock, then d->lock (a leaf). A timeline being
     * deleted gets no new ingest: its DELETE marked it before stopping
     * the old one under ingest_lock. */
    pthread_mutex_lock(&d->lock);
    ps_timeline *tl = ps__find_locked(d, tenant, timeline);
    bool gone = !tl || tl->deleting;
    pthread_mutex_unlock(&d->lock);
    int rc = gone ? LB_ENOTFOUND : 0;
    bool add = !gone && !find_ingest(d, tenant, timeline) && d->ningests < PS_MAX_TIMELINES;
    if (add) {
        d->ingests[d->ningests++] = in;
        in->refs++; /* ours, until the loop has it */
    }
    pthread_mutex_unlock(&d->ingest_lock);
    if (!add) {
        pthread_mutex_destroy(&in->lock);
        pthread_mutex_destroy(&in->error_lock);
        free(in);
        return rc;
    }
    /* The directories, outside every lock. The standby listens on
     * loopback only (a unix socket path under the data directory could
     * pass the 107-byte limit); any free port. */
    lb_mkdir_p(base, 0711);
    chmod(base, 0711);
    chmod(d->conf.data_dir, 0711);
    lb_mkdir_p(in->root, 0755);
    in->port = free_port();
    /* Its first tick (a worker job) starts it. A loop that has stopped
     * (the pageserver is stopping) never ticks it: it is stopped with
     * the others. */
    ps_loop_call(d, attach_on_loop, in);
    ingest_unref(d, in);
    return 0;
}

/* A reference for use outside d->ingest_lock: the entry is not freed
 * until it is dropped (ps_ingest_stop waits for that). */
static ps_ingest *
ingest_ref(ps_daemon *d, const char *tenant, const char *timeline)
{
    pthread_mutex_lock(&d->ingest_lock);
    ps_ingest *in = find_ingest(d, tenant, timeline);
    if (in)
        in->refs++;
    pthread_mutex_unlock(&d->ingest_lock);
    return in;
}

static void
ingest_unref(ps_daemon *d, ps_ingest *in)
{
    pthread_mutex_lock(&d->ingest_lock);
    if (--in->refs == 0)
        pthread_cond_broadcast(&d->ingest_cond);
    pthread_mutex_unlock(&d->ingest_lock);
}

/* in is out of the table already: detach it from the loop, wait for its
 * jobs and users, then stop the standby and free it (holding nothing). */
static void
stop_and_free(ps_daemon *d, ps_ingest *in)
{
    atomic_store(&in->stop, true);
    /* -ECANCELED: the loop has stopped for good and fires nothing more. */
    ps_loop_call(d, detach_on_loop, in);
    pthread_mutex_lock(&d->ingest_lock);
    while (in->refs > 0)
        pthread_cond_wait(&d->ingest_cond, &d->ingest_lock);
    pthread_mutex_unlock(&d->ingest_lock);
    PQfinish(in->conn);
    in->conn = NULL;
    if (in->running)
        stop_standby(in);
    in->running = false;
    ps_indexer_close(atomic_load(&in->indexer));
    pthread_mutex_destroy(&in->lock);
    pthread_mutex_destroy(&in->error_lock);
    free(in);
}

void
ps_ingest_stop(ps_daemon *d, const char *tenant, const char *timeline)
{
    pthread_mutex_lock(&d->ingest_lock);
    ps_ingest *in = find_ingest(d, tenant, timeline);
    for (int i = 0; in && i < d->ningests; i++)
        if (d->ingests[i] == in) {
            d->ingests[i] = d->ingests[--d->ningests];
            break;
        }
    pthread_mutex_unlock(&d->ingest_lock);
    /* Out of the table first: nothing finds it while it stops. */
    if (in) {
        stop_and_free(d, in);
        lb_info("ingest stopped tenant=%s timeline=%s", tenant, timeline);
    }
}

void
ps_ingest_token_changed(ps_daemon *d)
{
    atomic_fetch_add(&d->token_generation, 1);
}

void
ps_ingest_stop_all(ps_daemon *d)
{
    pthread_mutex_lock(&d->ingest_lock);
    int n = d->ningests;
    ps_ingest **all = malloc((n ? (size_t)n : 1) * sizeof(*all));
    for (int i = 0; i < n; i++) {
        atomic_store(&d->ingests[i]->stop, true); /* all stop at once */
        if (all)
            all[i] = d->ingests[i];
    }
    if (all)
        d->ningests = 0;
    pthread_mutex_unlock(&d->ingest_lock);
    for (int i = 0; all && i < n; i++)
        stop_and_free(d, all[i]);
    free(all);
}

int
ps_ingest_snapshot_error(ps_daemon *d, const char *tenant, const char *timeline, char *out,
                         size_t cap)
{
    out[0] = '\0';
    ps_ingest *in = ingest_ref(d, tenant, timeline);
    if (!in)
        return LB_ENOTFOUND;
    pthread_mutex_lock(&in->error_lock);
    snprintf(out, cap, "%s", in->snapshot_error);
    pthread_mutex_unlock(&in->error_lock);
    ingest_unref(d, in);
    return 0;
}

const char *
ps_ingest_state(ps_daemon *d, const char *tenant, const char *timeline)
{
    pthread_mutex_lock(&d->ingest_lock);
    ps_ingest *in = find_ingest(d, tenant, timeline);
    const char *state = NULL;
    if (in)
        state = atomic_load(&in->state);
    pthread_mutex_unlock(&d->ingest_lock);
    return state;
}

int
ps_ingest_commit_before(ps_daemon *d, const char *tenant, const char *timeline, int64_t t_unix_us,
                        lb_lsn *end_lsn, int64_t *ts, uint32_t *xid, char *err, size_t errcap)
{
    ps_ingest *in = ingest_ref(d, tenant, timeline);
    ps_indexer *x = in ? atomic_load(&in->indexer) : NULL;
    int rc;
    if (!x) {
        snprintf(err, errcap, "timeline %s/%s has no WAL index (it is not ingesting)", tenant,
                 timeline);
        rc = LB_ENOTFOUND;
    } else {
        rc = ps_indexer_commit_before(x, t_unix_us, end_lsn, ts, xid, err, errcap);
    }
    if (in)
        ingest_unref(d, in);
    return rc;
}

typedef struct snapshot_call {
    ps_ingest *in;
    bool taken;
    int rc;
} snapshot_call;

/* On a worker: waits for a tick of the same timeline to end (holding
 * nothing else), then takes the snapshot under in->lock. */
static void
snapshot_job(void *arg)
{
    snapshot_call *c = arg;
    ps_ingest *in = c->in;
    pthread_mutex_lock(&in->lock);
    c->rc = wake(in);
    if (c->rc == 0)
        c->rc = connect_standby(in) ? take_snapshot(in, &c->taken) : LB_EPROTO;
    if (c->rc == 0 && c->taken)
        in->last_snapshot_ms = lb_mono_ms();
    pthread_mutex_unlock(&in->lock);
}

int
ps_ingest_snapshot_now(ps_daemon *d, const char *tenant, const char *timeline, bool *taken,
                       char *err, size_t errcap)
{
    ps_ingest *in = ingest_ref(d, tenant, timeline);
    *taken = false;
    if (!in) {
        snprintf(err, errcap, "timeline %s/%s is not ingesting (no safekeepers set)", tenant,
                 timeline);
        return LB_ENOTFOUND;
    }
    snapshot_call c = {.in = in};
    int rc = ps_workers_run(d->workers, snapshot_job, &c);
    if (rc) {
        snprintf(err, errcap, "no worker free for the snapshot (worker_queue is full)");
        ingest_unref(d, in);
        return rc;
    }
    rc = c.rc;
    *taken = c.taken;
    pthread_mutex_lock(&in->error_lock);
    if (rc == LB_EUNSUPPORTED && in->snapshot_error[0])
        snprintf(err, errcap, "snapshot failed: %s", in->snapshot_error);
    else if (rc)
        snprintf(err, errcap, "snapshot failed: %s", lb_strerror(rc));
    pthread_mutex_unlock(&in->error_lock);
    ingest_unref(d, in);
    return rc;
}

typedef struct lake_call {
    ps_ingest *in;
    lb_lsn since; /* run only if replay is past this */
    lb_lsn p;
    lb_err err;
    int rc;
} lake_call;

/* On a worker, under in->lock (so never inside a snapshot or a tick):
 * pause replay at whatever it has replayed, run the lake there, resume. */
static void
lake_job(void *arg)
{
    lake_call *c = arg;
    ps_ingest *in = c->in;
    pthread_mutex_lock(&in->lock);
    if (!in->running || !connect_standby(in)) {
        c->rc = LB_ENOTFOUND; /* idle: its lake is as of when it stopped */
        lb_err_set(&c->err, c->rc, "the redo standby is not running");
        pthread_mutex_unlock(&in->lock);
        return;
    }
    c->rc = pause_replay(in->conn);
    if (c->rc == 0 && !lsn_query(in->conn, "select pg_last_wal_replay_lsn()", &c->p))
        c->rc = LB_EPROTO;
    if (c->rc)
        lb_err_set(&c->err, c->rc, "could not pause the redo standby: %s", lb_strerror(c->rc));
    else if (c->p > c->since)
        c->rc = lake_after_snapshot(in, c->p, &c->err);
    if (!exec_ok(in->conn, "select pg_wal_replay_resume()") && c->rc == 0)
        c->rc = lb_err_set(&c->err, LB_EPROTO, "could not resume replay on the redo standby");
    pthread_mutex_unlock(&in->lock);
}

int
ps_ingest_lake_now(ps_daemon *d, const char *tenant, const char *timeline, lb_lsn since, lb_lsn *p,
                   lb_err *err)
{
    ps_ingest *in = ingest_ref(d, tenant, timeline);
    *p = 0;
    if (!in)
        return lb_err_set(err, LB_ENOTFOUND, "timeline %s/%s is not ingesting", tenant, timeline);
    lake_call c = {.in = in, .since = since};
    int rc = ps_workers_run(d->workers, lake_job, &c);
    if (rc)
        lb_err_set(err, rc, "no worker free for the lake run (worker_queue is full)");
    else if ((rc = c.rc) != 0)
        lb_err_set(err, rc, "%s", c.err.message);
    else
        *p = c.p;
    ingest_unref(d, in);
    return rc;
}
