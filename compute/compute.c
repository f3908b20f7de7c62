/*
 * compute.c: one compute, from spec to ready, and its HTTP endpoints.
 *
 * The main thread runs the steps of the compute's mode one after the other
 * (compute.h), then watches PostgreSQL (watch()): its exit (waitpid), the
 * stop flag (SIGTERM), and once a second its activity (pg_stat_activity)
 * for /status. HTTP handlers run on the server's threads and only read the
 * status under c->lock, or fetch WAL for the restore_command. A detached
 * thread copies PostgreSQL's stderr to ours and counts cancelled
 * synchronous-replication waits.
 *
 * Invariants:
 *   - the data directory is rebuilt from a basebackup on every start: a
 *     compute's disk is a cache, never a source of truth;
 *   - a primary's PostgreSQL has the quorum synchronous_standby_names from
 *     its first start, so no commit is acknowledged without 2 of 3
 *     safekeepers (the one exception, compute-ctl's own role transaction,
 *     is explained at make_roles());
 *   - a primary is ready only once its PostgreSQL timeline is the elected
 *     one and a quorum of safekeepers streams from it;
 *   - the superuser is compute-ctl's (pgauth.h); users cannot change the
 *     settings durability rests on, and while a primary runs compute-ctl
 *     checks that nobody has (cc_guarded_settings: pg_settings,
 *     pg_file_settings, pg_db_role_setting): a change stops PostgreSQL at
 *     once and the compute starts again from the quorum;
 *   - a primary that sees a newer term on any safekeeper stops serving
 *     (exit 4): another compute won an election, and this one's commits
 *     can no longer reach a quorum.
 *
 * What vanilla PostgreSQL 15 leaves open, and what compute-ctl does:
 *   - a cancelled synchronous-replication wait (pg_cancel_backend, a
 *     statement_timeout, a terminated backend) returns with a WARNING
 *     while the commit is already in the local WAL and visible to every
 *     other session, though no quorum may have it. compute-ctl reads the
 *     WARNING from PostgreSQL's stderr (logging_collector off, lc_messages
 *     C, log_min_messages at most warning: all guarded) and stops
 *     PostgreSQL, then starts the compute again from the quorum, where
 *     that commit exists only if a quorum had it. Between the WARNING and
 *     the stop (well under a second) other sessions can read it: that
 *     window remains, and closing it needs a patched PostgreSQL;
 *   - a session may SET synchronous_commit = local (or off) for itself:
 *     it is PGC_USERSET, and no role attribute prevents it. It changes
 *     only that session's own commits, which it asked not to wait for;
 *     ALTER ROLE ... SET of it is seen by the watch;
 *   - a user can forge the WARNING with RAISE WARNING: that only restarts
 *     the user's own compute.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "clock.h"
#include "compute.h"
#include "errors.h"
#include "fileio.h"
#include "http_client.h"
#include "http_server.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "pgauth.h"
#include "pgproc.h"
#include "wal.h"
#include "walproxy.h"

typedef struct cc_compute {
    const cc_spec *spec;
    volatile sig_atomic_t *stop;
    volatile sig_atomic_t *reload; /* SIGHUP: re-read the keys and the token */
    lb_http_server *http;
    PGconn *conn;

    pthread_mutex_t lock; /* guards everything below */
    cc_state state;
    char error[512];
    uint64_t term;
    uint32_t tli;
    lb_lsn start_lsn; /* primary: E, where its term starts */
    lb_lsn lsn;       /* primary: flush LSN; others: replay LSN */
    int connections;
    int64_t last_activity_ms;
    pid_t pg_pid;
    cc_wal_sources wal;
    bool wal_ready;

    /* HTTP credentials: callers' tokens are verified with keys; the
     * restore_command presents restore_secret (pgauth.h, spec.h). Both
     * set before the server starts; keys is reloaded in place on SIGHUP
     * (common/auth.h: HTTP threads may verify meanwhile). */
    lb_auth_keys *keys;
    char restore_secret[65];

    /* The basebackup's minimums (pg_controldata), kept so that a replica's
     * postgresql.auto.conf can be written again with a new token. */
    cc_pg_minimums min;
    bool min_known;

    /* Bumped by the log reader (any thread) at each cancelled
     * synchronous-replication wait PostgreSQL logs. */
    atomic_uint sync_cancels;
} cc_compute;

static void reload_credentials(cc_compute *c);
static void refresh_stream_token(cc_compute *c);

/* The pageserver's view of the timeline. */
typedef struct tl_meta {
    uint64_t system_id;
    lb_lsn start_lsn;
    uint32_t pg_tli;
    uint32_t wal_seg_size;
    bool has_ancestor;
    lb_lsn last_record_lsn; /* how far the pageserver has ingested */
} tl_meta;

const char *
cc_state_name(cc_state state)
{
    static const char *const names[] = {"init",     "electing",  "restoring",
                                        "starting", "replaying", "promoting",
                                        "ready",    "failed",    "stopping"};
    return (unsigned)state < sizeof(names) / sizeof(names[0]) ? names[state] : "?";
}

static void
set_state(cc_compute *c, cc_state s)
{
    pthread_mutex_lock(&c->lock);
    c->state = s;
    pthread_mutex_unlock(&c->lock);
    lb_info("state %s timeline=%s", cc_state_name(s), c->spec->timeline_id);
}

static int fail(cc_compute *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int
fail(cc_compute *c, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&c->lock);
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof(c->error), fmt, ap);
    va_end(ap);
    c->state = CC_STATE_FAILED;
    pthread_mutex_unlock(&c->lock);
    lb_error("%s", c->error);
    return CC_EXIT_FAILED;
}

/* ---- HTTP ------------------------------------------------------------------------- */

static json_t *
status_json(cc_compute *c)
{
    const cc_spec *s = c->spec;
    pthread_mutex_lock(&c->lock);
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:o, s:o, s:i, s:I, s:i, s:i}", "state",
                  cc_state_name(c->state), "mode", cc_mode_name(s->mode), "tenant_id", s->tenant_id,
                  "timeline_id", s->timeline_id, "term", (json_int_t)c->term, "tli", (int)c->tli,
                  "start_lsn", lb_json_lsn(c->start_lsn), "lsn", lb_json_lsn(c->lsn), "connections",
                  c->connections, "last_activity_ms", (json_int_t)c->last_activity_ms, "pid",
                  (int)c->pg_pid, "pg_port", s->pg_port);
    if (j && c->last_activity_ms) {
        char when[64];
        time_t t = (time_t)(c->last_activity_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + n, sizeof(when) - n, ".%03dZ", (int)(c->last_activity_ms % 1000));
        json_object_set_new(j, "last_activity", json_string(when));
    }
    if (j && cc_mode_of(s->mode)->at_lsn)
        json_object_set_new(j, "target_lsn", lb_json_lsn(s->lsn));
    if (j && c->error[0])
        json_object_set_new(j, "error", json_string(c->error));
    pthread_mutex_unlock(&c->lock);
    return j;
}

/* The token's tenant and timeline must be this compute's (the server
 * checked the signature and the role: routes without {tenant_id} leave the
 * scope to the handler). */
static int
check_scope(lb_http_request *req, const cc_compute *c)
{
    const lb_auth_claims *cl = lb_http_claims(req);
    if (cl && !lb_auth_allows(cl, LB_AUTH_MANAGEMENT | LB_AUTH_COMPUTE, c->spec->tenant_id,
                              c->spec->timeline_id))
        return lb_http_respond_error(req, 403,
                                     "a %s token for tenant \"%s\" may not act on this compute",
                                     lb_auth_role_name(cl->role), cl->tenant[0] ? cl->tenant : "*");
    return 1;
}

static int
h_status(lb_http_request *req, void *arg)
{
    int rc = check_scope(req, arg);
    if (rc != 1)
        return rc;
    return lb_json_respond(req, 200, status_json(arg));
}

/* /wal is open at the server: PostgreSQL's restore_command presents the
 * restore secret, which is no token. Anything else must be a token that
 * verifies and covers this compute. 1 to go on, or the answer sent. */
static int
check_wal_caller(lb_http_request *req, const cc_compute *c)
{
    const char *token = lb_auth_bearer(lb_http_header(req, "Authorization"));
    if (!token) {
        lb_http_add_header(req, "WWW-Authenticate", "Bearer");
        return lb_http_respond_error(req, 401, "a credential is required");
    }
    size_t n = strlen(token);
    if (n == strlen(c->restore_secret) && CRYPTO_memcmp(token, c->restore_secret, n) == 0)
        return 1;
    lb_auth_claims cl;
    const char *why = NULL;
    if (lb_auth_verify(c->keys, token, 0, &cl, &why) != 0) {
        lb_http_add_header(req, "WWW-Authenticate", "Bearer");
        return lb_http_respond_error(req, 401, "credential refused: %s", why ? why : "invalid");
    }
    if (!lb_auth_allows(&cl, LB_AUTH_MANAGEMENT | LB_AUTH_COMPUTE, c->spec->tenant_id,
                        c->spec->timeline_id))
        return lb_http_respond_error(req, 403,
                                     "a %s token for tenant \"%s\" may not act on this compute",
                                     lb_auth_role_name(cl.role), cl.tenant[0] ? cl.tenant : "*");
    return 1;
}

static int
h_wal(lb_http_request *req, void *arg)
{
    cc_compute *c = arg;
    int allowed = check_wal_caller(req, c);
    if (allowed != 1)
        return allowed;
    const char *name = lb_http_param(req, "name");
    uint32_t tli;
    /* Checked again with the timeline's segment size by cc_wal_fetch(). */
    if (lb_wal_file_parse(name, LB_WAL_SEG_SIZE_MIN, &tli, NULL) == LB_WAL_FILE_BAD)
        return lb_http_respond_error(req, 400,
                                     "\"%.64s\" is not a WAL segment or history "
                                     "file name",
                                     name);
    pthread_mutex_lock(&c->lock);
    cc_wal_sources src = c->wal;
    bool ready = c->wal_ready;
    pthread_mutex_unlock(&c->lock);
    if (!ready)
        return lb_http_respond_error(req, 503, "WAL sources are not known yet");
    lb_buf body = LB_BUF_INIT;
    char from[600];
    int rc = cc_wal_fetch(&src, name, &body, from, sizeof(from));
    if (rc == 0) {
        lb_debug("restore file=%s from=%s bytes=%zu", name, from, body.len);
        rc = lb_http_respond(req, 200, "application/octet-stream", body.data ? body.data : "",
                             body.len);
    } else if (rc == LB_ENOTFOUND) {
        lb_info("restore file=%s: not found on any source", name);
        rc = lb_http_respond_error(req, 404, "%s not found", name);
    } else {
        lb_warn("restore file=%s: no source answered (%s)", name, from);
        rc = lb_http_respond_error(req, 503, "%s: no source could be asked: %s", name, from);
    }
    lb_buf_free(&body);
    return rc;
}

/* The gauges of /metrics: each reads one value under the lock. */
#define LOCKED_GAUGE(name, value)                                                                  \
    static double name(void *arg)                                                                  \
    {                                                                                              \
        cc_compute *c = arg;                                                                       \
        pthread_mutex_lock(&c->lock);                                                              \
        double v = (double)(value);                                                                \
        pthread_mutex_unlock(&c->lock);                                                            \
        return v;                                                                                  \
    }

LOCKED_GAUGE(m_ready, c->state == CC_STATE_READY)
LOCKED_GAUGE(m_connections, c->connections)
LOCKED_GAUGE(m_lsn, c->lsn)
LOCKED_GAUGE(m_activity, c->last_activity_ms / 1000.0)
LOCKED_GAUGE(m_term, c->term)

static int
start_http(cc_compute *c)
{
    const cc_spec *s = c->spec;
    /* Every route but /metrics and /healthz needs a credential: the
     * controller's management token, or this compute's own compute token
     * (its tenant and timeline); /wal also takes the restore secret. */
    int rc = lb_auth_keys_load(s->auth_public_keys, &c->keys);
    if (rc)
        return fail(c, "could not load auth_public_keys \"%s\": %s", s->auth_public_keys,
                    lb_strerror(rc));
    unsigned char secret[32];
    if (RAND_bytes(secret, sizeof(secret)) != 1)
        return fail(c, "could not make the restore secret");
    for (size_t i = 0; i < sizeof(secret); i++)
        snprintf(c->restore_secret + 2 * i, 3, "%02x", secret[i]);
    lb_http_server_config hc = {.address = s->listen_host, .port = s->listen_port, .threads = 4};
    rc = lb_http_server_new(&hc, &c->http);
    static const lb_http_access status_access = {.roles = LB_AUTH_MANAGEMENT | LB_AUTH_COMPUTE,
                                                 .own_scope = true};
    static const lb_http_access wal_access = {.open = true};
    if (rc == 0)
        rc = lb_http_server_set_auth(c->http, c->keys);
    if (rc == 0)
        rc = lb_http_server_route_access(c->http, "GET", "/status", h_status, c, &status_access);
    if (rc == 0)
        rc = lb_http_server_route_access(c->http, "GET", "/wal/{name}", h_wal, c, &wal_access);
    lb_metrics *m = lb_metrics_default();
    lb_metrics_gauge_fn(m, "compute_ready", "1 when the compute is ready", m_ready, c);
    lb_metrics_gauge_fn(m, "compute_connections", "client connections to PostgreSQL", m_connections,
                        c);
    lb_metrics_gauge_fn(m, "compute_lsn",
                        "primary: WAL flush LSN; replica and static: replay LSN (bytes)", m_lsn, c);
    lb_metrics_gauge_fn(m, "compute_last_activity_seconds", "Unix time of the last client activity",
                        m_activity, c);
    lb_metrics_gauge_fn(m, "compute_term", "the safekeeper term of this primary", m_term, c);
    if (rc == 0)
        rc = lb_http_server_start(c->http);
    if (rc)
        return fail(c, "could not serve HTTP on %s:%d: %s", s->listen_host, s->listen_port,
                    lb_strerror(rc));
    lb_info("compute-ctl listening http=%s:%d mode=%s tenant=%s timeline=%s", s->listen_host,
            lb_http_server_port(c->http), cc_mode_name(s->mode), s->tenant_id, s->timeline_id);
    return 0;
}

/* ---- talking to the pageserver and safekeepers ------------------------------------- */

/* s: whose token (auth_token_file) goes along. */
static int
http_json(const cc_spec *s, const char *method, const char *url, json_t *body, json_t **reply,
          long *status, char *err, size_t cap)
{
    lb_http_options opts = {.timeout_ms = 30000, .max_attempts = 3};
    lb_http_client *http;
    int rc = lb_http_client_new(&opts, &http);
    if (rc)
        return rc;
    lb_http_client_set_token(http, s->auth_token);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    const char *hdr[] = {"Content-Type: application/json"};
    lb_buf out = LB_BUF_INIT;
    lb_http_call call = {.method = method,
                         .url = url,
                         .headers = hdr,
                         .nheaders = 1,
                         .body = text,
                         .body_len = text ? strlen(text) : 0,
                         .response_body = &out};
    lb_http_result res = LB_HTTP_RESULT_INIT;
    rc = lb_http_do(http, &call, &res);
    *status = res.status;
    if (rc) {
        snprintf(err, cap, "%s %s: %s", method, url, lb_http_client_error(http));
    } else if (res.status / 100 != 2) {
        snprintf(err, cap, "%s %s: %ld %.*s", method, url, res.status,
                 (int)(res.error_body.len > 300 ? 300 : res.error_body.len),
                 res.error_body.data ? res.error_body.data : "");
    } else if (reply) {
        json_error_t je;
        *reply = json_loadb(out.data ? out.data : "", out.len, 0, &je);
        if (!*reply) {
            snprintf(err, cap, "%s %s: malformed JSON reply", method, url);
            rc = LB_EPARSE;
        }
    }
    free(text);
    lb_buf_free(&out);
    lb_http_result_free(&res);
    lb_http_client_free(http);
    return rc;
}

static int
pageserver_meta(cc_compute *c, tl_meta *m)
{
    const cc_spec *s = c->spec;
    char url[600], err[600];
    snprintf(url, sizeof(url), "%s/v1/tenant/%s/timeline/%s", s->pageserver, s->tenant_id,
             s->timeline_id);
    json_t *j = NULL;
    long status = 0;
    int rc = http_json(s, "GET", url, NULL, &j, &status, err, sizeof(err));
    if (rc == 0 && status == 404)
        return fail(c, "timeline %s/%s does not exist on the pageserver", s->tenant_id,
                    s->timeline_id);
    if (rc || status != 200)
        return fail(c, "could not read the timeline from the pageserver: %s", err);
    lb_json_error e = LB_JSON_ERROR_INIT;
    const char *sysid = NULL;
    int64_t tli = 0, seg = 0;
    lb_json_req_str(j, "system_id", &sysid, &e);
    lb_json_req_lsn(j, "start_lsn", &m->start_lsn, &e);
    lb_json_req_int64(j, "pg_tli", &tli, &e);
    lb_json_req_int64(j, "wal_seg_size", &seg, &e);
    if (!e.failed)
        m->system_id = strtoull(sysid, NULL, 10);
    m->pg_tli = (uint32_t)tli;
    m->wal_seg_size = (uint32_t)seg;
    m->has_ancestor = json_is_string(json_object_get(j, "ancestor_timeline_id"));
    lb_json_opt_lsn(j, "last_record_lsn", 0, &m->last_record_lsn, &e);
    json_decref(j);
    if (e.failed)
        return fail(c, "pageserver timeline status: %s", e.message);
    return 0;
}

static void
elect_params(const cc_spec *s, sk_elect_params *p)
{
    memset(p, 0, sizeof(*p));
    p->tenant_id = s->tenant_id;
    p->timeline_id = s->timeline_id;
    for (int i = 0; i < s->nsafekeepers; i++)
        p->urls[i] = s->safekeepers[i].http;
    p->n = s->nsafekeepers;
    p->timeout_ms = 5000;
    p->token = s->auth_token;
}

#define ELECT_TIMEOUT_MS 60000

static int
elect(cc_compute *c, sk_elect_result *r)
{
    sk_elect_params p;
    elect_params(c->spec, &p);
    int64_t deadline = lb_mono_ms() + ELECT_TIMEOUT_MS;
    char err[512] = "";
    for (;;) {
        int rc = sk_elect(&p, r, err, sizeof(err));
        if (rc == 0)
            break;
        reload_credentials(c);
        if (*c->stop)
            return -EINTR;
        if (lb_mono_ms() > deadline)
            return fail(c, "election failed: %s", err);
        lb_warn("election failed, retrying: %s", err);
        lb_sleep_ms(1000);
    }
    pthread_mutex_lock(&c->lock);
    c->term = r->term;
    c->tli = r->tli;
    c->start_lsn = r->start_lsn;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static void
set_wal_sources(cc_compute *c, const tl_meta *m, const sk_elect_result *r)
{
    const cc_spec *s = c->spec;
    cc_wal_sources w;
    memset(&w, 0, sizeof(w));
    snprintf(w.tenant_id, sizeof(w.tenant_id), "%s", s->tenant_id);
    snprintf(w.timeline_id, sizeof(w.timeline_id), "%s", s->timeline_id);
    snprintf(w.pageserver, sizeof(w.pageserver), "%s", s->pageserver);
    w.pg_tli = m->pg_tli;
    w.has_ancestor = m->has_ancestor;
    w.token = s->auth_token;
    w.seg_size = m->wal_seg_size;
    /* What restore must reach: a primary the term's start E, a static
     * compute a record past its LSN (recovery stops before the first one
     * at or after it). A replica streams the rest. */
    w.need_lsn = r ? r->start_lsn : cc_mode_of(s->mode)->at_lsn ? s->lsn + 1 : 0;
    w.short_wait_ms = 30000;
    if (r) {
        /* Only those holding the term's WAL up to its start, the donor first. */
        snprintf(w.safekeepers[w.nsafekeepers++], sizeof(w.safekeepers[0]), "%s",
                 s->safekeepers[r->donor].http);
        for (int i = 0; i < s->nsafekeepers; i++)
            if (i != r->donor && r->accepted[i])
                snprintf(w.safekeepers[w.nsafekeepers++], sizeof(w.safekeepers[0]), "%s",
                         s->safekeepers[i].http);
    } else {
        for (int i = 0; i < s->nsafekeepers; i++)
            snprintf(w.safekeepers[w.nsafekeepers++], sizeof(w.safekeepers[0]), "%s",
                     s->safekeepers[i].http);
    }
    pthread_mutex_lock(&c->lock);
    c->wal = w;
    c->wal_ready = true;
    pthread_mutex_unlock(&c->lock);
}

/* ---- the data directory ---------------------------------------------------------- */

/* The data directory is rebuilt, so it is removed first: never remove a
 * directory that holds something else (a mistyped data_dir). Checked
 * before anything else happens, the election included. */
static int
check_datadir(cc_compute *c)
{
    const cc_spec *s = c->spec;
    DIR *d = opendir(s->data_dir);
    if (d) {
        bool empty = true;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                empty = false;
        closedir(d);
        static const char *const marks[] = {"PG_VERSION", "global", "base", "pg_wal", NULL};
        bool pgdata = false;
        for (int i = 0; marks[i]; i++) {
            char mark[PATH_MAX + 32];
            snprintf(mark, sizeof(mark), "%s/%s", s->data_dir, marks[i]);
            pgdata |= access(mark, F_OK) == 0;
        }
        if (!empty && !pgdata)
            return fail(c,
                        "data_dir \"%s\" is not empty and is not a PostgreSQL data "
                        "directory; refusing to replace it",
                        s->data_dir);
    }
    /* Nor the data directory of a PostgreSQL still running. */
    char pidfile[PATH_MAX + 32];
    snprintf(pidfile, sizeof(pidfile), "%s/postmaster.pid", s->data_dir);
    FILE *f = fopen(pidfile, "r");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
        return fail(c,
                    "PostgreSQL (pid %ld) still runs on data_dir \"%s\"; refusing to "
                    "replace it",
                    pid, s->data_dir);
    return 0;
}

/* pg_hba.conf and pg_ident.conf (pgauth.h): the basebackup's are replaced. */
static int
write_auth_files(cc_compute *c)
{
    const cc_spec *s = c->spec;
    struct passwd *pw = getpwuid(geteuid());
    lb_buf hba = LB_BUF_INIT, ident = LB_BUF_INIT;
    int rc = cc_hba_render(s, &hba);
    if (rc == 0)
        rc = cc_ident_render(s, pw ? pw->pw_name : NULL, &ident);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/pg_hba.conf", s->data_dir);
    if (rc == 0)
        rc = lb_write_file_atomic(path, hba.data, hba.len);
    snprintf(path, sizeof(path), "%s/pg_ident.conf", s->data_dir);
    if (rc == 0)
        rc = lb_write_file_atomic(path, ident.data, ident.len);
    /* The restore_command's credential (spec.h): 0600, and chowned to the
     * PostgreSQL user with the rest of the data directory. */
    char header[128];
    int n = snprintf(header, sizeof(header), "Authorization: Bearer %s\n", c->restore_secret);
    cc_restore_header_path(s, path, sizeof(path));
    if (rc == 0)
        rc = lb_write_file_atomic(path, header, (size_t)n);
    if (rc == 0 && chmod(path, 0600) != 0)
        rc = -errno;
    lb_buf_free(&hba);
    lb_buf_free(&ident);
    return rc;
}

/* postgresql.auto.conf: the settings of the spec and its mode (a replica's
 * primary_conninfo carries this compute's token). */
static int
write_settings(cc_compute *c)
{
    const cc_spec *s = c->spec;
    lb_buf conf = LB_BUF_INIT;
    int rc = cc_settings_render(s, &c->min, lb_http_server_port(c->http), &conf);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/postgresql.auto.conf", s->data_dir);
    if (rc == 0)
        rc = lb_write_file_atomic(path, conf.data, conf.len);
    if (conf.data)
        explicit_bzero(conf.data, conf.len);
    lb_buf_free(&conf);
    return rc;
}

static int
prepare_datadir(cc_compute *c)
{
    const cc_spec *s = c->spec;
    char parent[PATH_MAX];
    lb_dirname(s->data_dir, parent, sizeof(parent));
    /* The PostgreSQL user must reach the data directory. */
    struct stat st;
    if (stat(parent, &st) != 0) {
        int rc = lb_mkdir_p(parent, 0755);
        if (rc)
            return fail(c, "could not create \"%s\": %s", parent, lb_strerror(rc));
        chmod(parent, 0755);
    }
    lb_lsn snap = 0;
    char err[700];
    int rc = cc_basebackup(s, cc_mode_of(s->mode)->at_lsn ? s->lsn : 0, &snap, err, sizeof(err));
    if (rc)
        return fail(c, "%s", err);
    char lsn[LB_LSN_STRLEN];
    lb_info("basebackup unpacked data_dir=%s snapshot_lsn=%s", s->data_dir,
            lb_lsn_format(snap, lsn));

    lb_buf out = LB_BUF_INIT;
    const char *args[] = {s->data_dir, NULL};
    int st_code = cc_pg_run(s, "pg_controldata", args, &out);
    char version[32];
    if (st_code != 0 || cc_controldata_field(out.data ? out.data : "", "Data page checksum version",
                                             version, sizeof(version)) != 0) {
        lb_buf_free(&out);
        return fail(c, "pg_controldata failed on the basebackup in \"%s\" (exit %d)", s->data_dir,
                    st_code);
    }
    cc_pg_minimums min;
    cc_pg_minimums_parse(out.data, &min);
    lb_buf_free(&out);
    c->min = min;
    c->min_known = true;
    if (strcmp(version, "0") == 0)
        return fail(c,
                    "data checksums are off in the basebackup of timeline %s\n"
                    "lakebase needs clusters initialized with data checksums (initdb -k).",
                    s->timeline_id);

    /* Our settings replace whatever the snapshot's postgresql.auto.conf said. */
    rc = write_settings(c);
    char path[PATH_MAX + 64];
    if (rc == 0)
        rc = write_auth_files(c);
    const char *signal_file = cc_mode_of(s->mode)->streams ? "standby.signal" : "recovery.signal";
    snprintf(path, sizeof(path), "%s/%s", s->data_dir, signal_file);
    if (rc == 0)
        rc = lb_write_file_atomic(path, "", 0);
    if (rc == 0)
        rc = cc_pg_chown_tree(s, s->data_dir);
    if (rc)
        return fail(c, "could not configure \"%s\": %s", s->data_dir, lb_strerror(rc));
    return 0;
}

/* ---- PostgreSQL -------------------------------------------------------------------- */

/* The log reader: PostgreSQL's stderr, copied to ours line by line. It
 * owns its fd and itself, and ends when every PostgreSQL process has
 * closed the pipe (EOF), so nobody waits for it. */
typedef struct log_reader {
    cc_compute *c;
    int fd;
} log_reader;

/* The WARNINGs of syncrep.c when a backend stops waiting for the quorum
 * after its commit is already in the local WAL: the query was cancelled
 * ("canceling wait for synchronous replication due to user request") or
 * the backend terminated ("canceling the wait for synchronous replication
 * and terminating connection due to administrator command"). lc_messages
 * is C, so the text is English. */
bool
cc_log_line_is_sync_cancel(const char *line)
{
    const char *w = strstr(line, "WARNING:  canceling ");
    return w && strstr(w, "wait for synchronous replication") != NULL;
}

static void *
log_reader_main(void *arg)
{
    log_reader *lr = arg;
    char buf[8192];
    size_t have = 0;
    for (;;) {
        ssize_t r = read(lr->fd, buf + have, sizeof(buf) - 1 - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;
        buf[have] = '\0';
        char *line = buf;
        char *nl;
        while ((nl = strchr(line, '\n')) != NULL || (line == buf && have == sizeof(buf) - 1)) {
            if (!nl) /* a line longer than the buffer: pass on what we have */
                nl = buf + have - 1;
            *nl = '\0';
            if (cc_log_line_is_sync_cancel(line)) {
                atomic_fetch_add(&lr->c->sync_cancels, 1);
                lb_error("postgres cancelled a wait for synchronous replication: a commit is "
                         "visible that a quorum of safekeepers may not have");
            }
            fprintf(stderr, "%s\n", line);
            line = nl + 1;
        }
        have = (size_t)(buf + have - line);
        memmove(buf, line, have);
    }
    if (have)
        fprintf(stderr, "%.*s\n", (int)have, buf);
    close(lr->fd);
    free(lr);
    return NULL;
}

static int
start_pg(cc_compute *c)
{
    const char *args[] = {"-D", c->spec->data_dir, NULL};
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return fail(c, "could not start postgres: %s", strerror(errno));
    pid_t pid = cc_pg_spawn(c->spec, "postgres", args, pipefd[1]);
    close(pipefd[1]);
    log_reader *lr = pid < 0 ? NULL : malloc(sizeof(*lr));
    pthread_t thread;
    if (lr) {
        lr->c = c;
        lr->fd = pipefd[0];
        if (pthread_create(&thread, NULL, log_reader_main, lr) == 0) {
            pthread_detach(thread);
        } else {
            free(lr);
            lr = NULL;
        }
    }
    if (!lr) {
        close(pipefd[0]);
        if (pid > 0) {
            kill(pid, SIGQUIT);
            waitpid(pid, NULL, 0);
        }
    }
    if (pid < 0)
        return fail(c, "could not start postgres: %s", lb_strerror(pid));
    if (!lr)
        return fail(c, "could not start postgres: no thread to read its log");
    pthread_mutex_lock(&c->lock);
    c->pg_pid = pid;
    pthread_mutex_unlock(&c->lock);
    lb_info("postgres started pid=%d port=%d", (int)pid, c->spec->pg_port);
    return 0;
}

/* true if PostgreSQL has exited (and is reaped); logs how. */
static bool
pg_exited(cc_compute *c)
{
    if (c->pg_pid <= 0)
        return true;
    int st;
    pid_t r = waitpid(c->pg_pid, &st, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR))
        return false;
    if (r > 0) {
        if (WIFEXITED(st))
            lb_info("postgres exited pid=%d status=%d", (int)c->pg_pid, WEXITSTATUS(st));
        else if (WIFSIGNALED(st))
            lb_info("postgres exited pid=%d signal=%d", (int)c->pg_pid, WTERMSIG(st));
    }
    pthread_mutex_lock(&c->lock);
    c->pg_pid = 0;
    pthread_mutex_unlock(&c->lock);
    return true;
}

/* Fast shutdown; immediate after timeout_ms. */
static void
stop_pg(cc_compute *c, int sig, int timeout_ms)
{
    if (c->pg_pid <= 0)
        return;
    PQfinish(c->conn);
    c->conn = NULL;
    kill(c->pg_pid, sig);
    int64_t deadline = lb_mono_ms() + timeout_ms;
    int escalation = 0; /* 1: SIGQUIT sent; 2: SIGKILL sent */
    while (!pg_exited(c)) {
        if (lb_mono_ms() > deadline && escalation < 2) {
            escalation++;
            lb_warn("postgres did not stop in time, sending %s pid=%d",
                    escalation == 1 ? "SIGQUIT" : "SIGKILL", (int)c->pg_pid);
            kill(c->pg_pid, escalation == 1 ? SIGQUIT : SIGKILL);
            deadline = lb_mono_ms() + 10000;
        }
        lb_sleep_ms(50);
    }
}

static bool
pg_connect(cc_compute *c)
{
    if (c->conn && PQstatus(c->conn) == CONNECTION_OK)
        return true;
    PQfinish(c->conn);
    char port[16];
    snprintf(port, sizeof(port), "%d", c->spec->pg_port);
    const char *keys[] = {"host", "port", "user", "dbname", "connect_timeout", "application_name",
                          NULL};
    /* The superuser, over the unix socket in the data directory (pgauth.h). */
    const char *vals[] = {c->spec->data_dir, port, CC_SUPERUSER, "postgres", "3",
                          "compute-ctl",     NULL};
    c->conn = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(c->conn) == CONNECTION_OK)
        return true;
    PQfinish(c->conn);
    c->conn = NULL;
    return false;
}

/* One value of a one-row query, copied into out; false on any failure. */
static bool
query1(cc_compute *c, const char *sql, char *out, size_t cap)
{
    if (!pg_connect(c))
        return false;
    PGresult *r = PQexec(c->conn, sql);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) >= 1;
    if (ok)
        snprintf(out, cap, "%s", PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
    else if (PQstatus(c->conn) != CONNECTION_OK) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    PQclear(r);
    return ok;
}

/* On SIGHUP, the public keys (auth_public_keys) and this compute's own
 * token (auth_token_file) are read again, as the daemons do (docs/auth.md):
 * a reload that fails keeps what was loaded. Everything that sends the
 * token reads it from the one handle at each request, so the next
 * request carries the new one. Called from the main thread's waits. */
static void
reload_credentials(cc_compute *c)
{
    if (!c->reload || !*c->reload)
        return;
    *c->reload = 0;
    const cc_spec *s = c->spec;
    int rc;
    if (c->keys) {
        if ((rc = lb_auth_keys_reload(c->keys)) != 0)
            lb_error("could not reload auth_public_keys \"%s\": %s (the old keys stay)",
                     s->auth_public_keys, lb_strerror(rc));
        else
            lb_info("auth_public_keys reloaded keys=%zu", lb_auth_keys_count(c->keys));
    }
    if (s->auth_token) {
        if ((rc = lb_auth_token_reload(s->auth_token)) != 0)
            lb_error("could not reload auth_token_file: %s (the old token stays)", lb_strerror(rc));
        else {
            lb_info("auth_token_file reloaded");
            refresh_stream_token(c);
        }
    }
}

/* A replica streams with its token as the password (primary_conninfo):
 * a new token goes into postgresql.auto.conf, and PostgreSQL, told to
 * reload, restarts its WAL receiver with it. */
static void
refresh_stream_token(cc_compute *c)
{
    const cc_spec *s = c->spec;
    if (!cc_mode_of(s->mode)->streams || !c->min_known)
        return;
    char path[PATH_MAX + 64], ok[8];
    snprintf(path, sizeof(path), "%s/postgresql.auto.conf", s->data_dir);
    int rc = write_settings(c);
    if (rc == 0)
        rc = cc_pg_chown_tree(s, path);
    if (rc)
        lb_error("could not write the new token into \"%s\": %s", path, lb_strerror(rc));
    else if (!query1(c, "select pg_reload_conf()", ok, sizeof(ok)))
        lb_error("could not have PostgreSQL reload its settings with the new token");
    else
        lb_info("primary_conninfo has the new token; PostgreSQL reloaded");
}

/* What the main loop checks while it waits: 0 to go on, or an exit code. */
static int
interrupted(cc_compute *c)
{
    reload_credentials(c);
    if (*c->stop)
        return -EINTR;
    if (pg_exited(c)) {
        fail(c, "postgres exited unexpectedly during startup (state %s)", cc_state_name(c->state));
        return CC_EXIT_PG_DIED;
    }
    return 0;
}

/* Wait until cond(c) holds; 0, -EINTR (stop asked), or CC_EXIT_PG_DIED. */
static int
wait_until(cc_compute *c, bool (*cond)(cc_compute *c))
{
    for (;;) {
        int rc = interrupted(c);
        if (rc)
            return rc;
        if (cond(c))
            return 0;
        lb_sleep_ms(100);
    }
}

static bool
cond_connected(cc_compute *c)
{
    return pg_connect(c);
}

static bool
cond_promoted(cc_compute *c)
{
    char v[16];
    return query1(c, "select pg_is_in_recovery()", v, sizeof(v)) && strcmp(v, "f") == 0;
}

static bool
cond_standby(cc_compute *c)
{
    char v[16];
    return query1(c, "select pg_is_in_recovery()", v, sizeof(v)) && strcmp(v, "t") == 0;
}

static bool
cond_target_reached(cc_compute *c)
{
    char v[32];
    return query1(c, "select pg_get_wal_replay_pause_state()", v, sizeof(v)) &&
           strcmp(v, "paused") == 0;
}

/* Refresh LSN, connections and last activity for /status. */
static void
refresh_activity(cc_compute *c)
{
    if (!pg_connect(c))
        return;
    PGresult *r = PQexec(
        c->conn,
        "select case when pg_is_in_recovery() then coalesce(pg_last_wal_replay_lsn(), '0/0') "
        "else pg_current_wal_flush_lsn() end::text, "
        "count(*) filter (where backend_type = 'client backend' and pid <> pg_backend_pid()), "
        "coalesce((extract(epoch from max(case when state = 'active' then now() "
        "else greatest(state_change, query_start, backend_start) end) "
        "filter (where backend_type = 'client backend' and pid <> pg_backend_pid())) "
        "* 1000)::bigint, 0) from pg_stat_activity");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        lb_lsn lsn = 0;
        lb_lsn_parse(PQgetvalue(r, 0, 0), &lsn);
        int conns = atoi(PQgetvalue(r, 0, 1));
        int64_t act = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
        pthread_mutex_lock(&c->lock);
        c->lsn = lsn;
        c->connections = conns;
        if (act > c->last_activity_ms)
            c->last_activity_ms = act;
        pthread_mutex_unlock(&c->lock);
    } else if (PQstatus(c->conn) != CONNECTION_OK) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    PQclear(r);
}

/* ---- modes ------------------------------------------------------------------------- */

static int
announce(cc_compute *c, const sk_elect_result *r)
{
    const cc_spec *s = c->spec;
    sk_elect_params p;
    elect_params(s, &p);
    char conninfo[600];
    snprintf(conninfo, sizeof(conninfo),
             "host=%s port=%d user=" CC_SAFEKEEPER_ROLE " dbname=postgres", s->announce_host,
             s->pg_port);
    int quorum = s->nsafekeepers / 2 + 1;
    int64_t deadline = lb_mono_ms() + ELECT_TIMEOUT_MS;
    for (;;) {
        int acked = 0;
        int rc = sk_announce(&p, r, conninfo, &acked);
        if (acked >= quorum) {
            lb_info("announced term=%" PRIu64 " to %d of %d safekeepers", r->term, acked,
                    s->nsafekeepers);
            return 0;
        }
        if (*c->stop)
            return -EINTR;
        if (lb_mono_ms() > deadline)
            return fail(c, "only %d of %d safekeepers stream from this compute (need %d): %s",
                        acked, s->nsafekeepers, quorum, lb_strerror(rc));
        lb_warn("announce reached %d of %d safekeepers, retrying", acked, s->nsafekeepers);
        lb_sleep_ms(1000);
    }
}

/*
 * The roles (pgauth.h), made on every start of a primary, right after
 * promotion and before the safekeepers are told to connect.
 *
 * The chicken and the egg: the safekeepers connect as lakebase_safekeeper,
 * whose verifier is in the catalog; putting it there is a commit, and
 * every commit of a primary waits for 2 of 3 safekeepers. So this one
 * transaction commits with synchronous_commit = local, in compute-ctl's own
 * session (a user cannot: it is SET LOCAL inside compute-ctl's
 * transaction, and the global value stays on). Why that is sound:
 *   - what it writes is made again, identically, on every start of every
 *     primary: if the commit is lost with this compute, the next primary
 *     writes it again, so nothing depends on its durability;
 *   - the safekeepers stream the new term's WAL from its start, so any
 *     later commit that is acknowledged has this one before it in the
 *     WAL, on the same quorum;
 *   - it only changes who may log in, never data a user can read.
 * The alternatives are worse: starting without synchronous_standby_names
 * and setting it after the safekeepers connect opens a window in which
 * user commits are acknowledged locally; a password in the conninfo
 * given to the safekeepers would be stored in their state and shown in
 * their /status.
 */
static int
make_roles(cc_compute *c)
{
    const cc_spec *s = c->spec;
    char secret[CC_SECRET_MAX], err[PATH_MAX + 128];
    char user_v[CC_SCRAM_VERIFIER_MAX], sk_v[CC_SCRAM_VERIFIER_MAX], su_v[CC_SCRAM_VERIFIER_MAX];
    bool su = s->superuser_password_file[0] != '\0';
    int rc = cc_secret_read(s->password_file, secret, sizeof(secret), err, sizeof(err));
    if (rc == 0)
        rc = cc_scram_verifier(secret, NULL, 0, user_v, sizeof(user_v));
    if (rc == 0)
        rc = cc_secret_read(s->safekeeper_password_file, secret, sizeof(secret), err, sizeof(err));
    if (rc == 0)
        rc = cc_scram_verifier(secret, NULL, 0, sk_v, sizeof(sk_v));
    if (rc == 0 && su)
        rc = cc_secret_read(s->superuser_password_file, secret, sizeof(secret), err, sizeof(err));
    if (rc == 0 && su)
        rc = cc_scram_verifier(secret, NULL, 0, su_v, sizeof(su_v));
    memset(secret, 0, sizeof(secret));
    if (rc)
        return fail(c, "%s", rc == -EIO ? "could not compute a SCRAM verifier" : err);
    lb_buf sql = LB_BUF_INIT;
    rc = lb_buf_append_str(&sql, "BEGIN;\nSET LOCAL synchronous_commit = local;\n");
    if (rc == 0)
        rc = cc_roles_sql(s, user_v, sk_v, su ? su_v : NULL, &sql);
    if (rc == 0)
        rc = lb_buf_append_str(&sql, "COMMIT;\n");
    if (rc || !pg_connect(c)) {
        lb_buf_free(&sql);
        return fail(c, "could not connect to postgres to make its roles");
    }
    PGresult *r = PQexec(c->conn, sql.data);
    memset(sql.data, 0, sql.len);
    lb_buf_free(&sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
        PQclear(r);
        PQclear(PQexec(c->conn, "ROLLBACK"));
        return fail(c, "could not make the roles %s and " CC_SAFEKEEPER_ROLE ": %s", s->user, msg);
    }
    PQclear(r);
    lb_info("roles made user=%s safekeepers=" CC_SAFEKEEPER_ROLE " superuser_over_tcp=%s", s->user,
            su ? "yes" : "no");
    return 0;
}

/* Every mode (state restoring): the data directory from a basebackup,
 * PostgreSQL started on it and accepting compute-ctl's connection; then
 * it replays (state replaying). */
static int
start_from_basebackup(cc_compute *c)
{
    int rc;
    if ((rc = prepare_datadir(c)) != 0)
        return rc;
    set_state(c, CC_STATE_STARTING);
    if ((rc = start_pg(c)) != 0)
        return rc;
    if ((rc = wait_until(c, cond_connected)) != 0)
        return rc;
    set_state(c, CC_STATE_REPLAYING);
    return 0;
}

static int
run_primary(cc_compute *c, const tl_meta *m)
{
    set_state(c, CC_STATE_ELECTING);
    sk_elect_result r;
    int rc = elect(c, &r);
    if (rc)
        return rc;
    set_wal_sources(c, m, &r);
    set_state(c, CC_STATE_RESTORING);
    if ((rc = start_from_basebackup(c)) != 0)
        return rc;
    if ((rc = wait_until(c, cond_promoted)) != 0)
        return rc;
    set_state(c, CC_STATE_PROMOTING);
    /* The timeline the promotion chose must be the elected one: another
     * means this PostgreSQL saw a different history than the safekeepers. */
    char v[32];
    if (!query1(c, "select substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8)", v,
                sizeof(v)))
        return fail(c, "could not read the PostgreSQL timeline after promotion");
    uint32_t tli = (uint32_t)strtoul(v, NULL, 16);
    if (tli != r.tli)
        return fail(c, "postgres promoted to timeline %u but the election chose %u", tli, r.tli);
    if ((rc = make_roles(c)) != 0)
        return rc;
    return announce(c, &r);
}

/* The first safekeeper that knows the timeline: a replica streams from it. */
static int
pick_stream_source(const cc_spec *s)
{
    for (int i = 0; i < s->nsafekeepers; i++) {
        char url[600], err[600];
        long status = 0;
        snprintf(url, sizeof(url), "%s/v1/tenant/%s/timeline/%s", s->safekeepers[i].http,
                 s->tenant_id, s->timeline_id);
        if (http_json(s, "GET", url, NULL, NULL, &status, err, sizeof(err)) == 0 && status == 200) {
            lb_info("replica streams from safekeeper %s", s->safekeepers[i].name);
            return i;
        }
        lb_warn("safekeeper %s cannot serve the replica: %s", s->safekeepers[i].name, err);
    }
    return 0;
}

#define INGEST_WAIT_MS 120000

/* A static compute's basebackup must be of a snapshot at or before its
 * LSN, which the pageserver gives once it has ingested that far. */
static int
wait_ingested(cc_compute *c, lb_lsn lsn)
{
    int64_t deadline = lb_mono_ms() + INGEST_WAIT_MS;
    char want[LB_LSN_STRLEN], have[LB_LSN_STRLEN];
    for (;;) {
        tl_meta m = {0};
        int rc = pageserver_meta(c, &m);
        if (rc)
            return rc;
        if (m.last_record_lsn >= lsn)
            return 0;
        if (*c->stop)
            return -EINTR;
        if (lb_mono_ms() > deadline)
            return fail(c, "the pageserver has not ingested timeline %s up to %s (it is at %s)",
                        c->spec->timeline_id, lb_lsn_format(lsn, want),
                        lb_lsn_format(m.last_record_lsn, have));
        lb_sleep_ms(500);
    }
}

static int
run_standby(cc_compute *c, const tl_meta *m)
{
    set_wal_sources(c, m, NULL);
    set_state(c, CC_STATE_RESTORING);
    int rc;
    if (cc_mode_of(c->spec->mode)->at_lsn && (rc = wait_ingested(c, c->spec->lsn)) != 0)
        return rc;
    if ((rc = start_from_basebackup(c)) != 0)
        return rc;
    if (cc_mode_of(c->spec->mode)->at_lsn)
        rc = wait_until(c, cond_target_reached);
    else
        rc = wait_until(c, cond_standby);
    return rc;
}

/* ---- watching a running compute ------------------------------------------------ */

/* What the watch decided. */
typedef enum watch_outcome {
    WATCH_STOP,       /* SIGTERM */
    WATCH_PG_DIED,    /* PostgreSQL exited on its own */
    WATCH_RESTART,    /* durability at risk: start again from the quorum */
    WATCH_SUPERSEDED, /* a newer term exists */
} watch_outcome;

/* A primary's settings durability rests on, as PostgreSQL has them now
 * (spec.h, cc_guard_query). A superuser could change them (ALTER SYSTEM
 * and a reload, ALTER ROLE ... SET); the user role can change none but
 * its own synchronous_commit default, which this also sees. true if one
 * departs, with what in why. */
static bool
settings_departed(cc_compute *c, const char *query, char *why, size_t cap)
{
    if (!pg_connect(c))
        return false;
    PGresult *r = PQexec(c->conn, query);
    bool departed = false;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
        snprintf(why, cap, "%s", PQgetvalue(r, 0, 0));
        departed = true;
    } else if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        lb_warn("could not check the settings: %s", PQerrorMessage(c->conn));
        if (PQstatus(c->conn) != CONNECTION_OK) {
            PQfinish(c->conn);
            c->conn = NULL;
        }
    }
    PQclear(r);
    return departed;
}

/* The highest term any safekeeper reports for the timeline (0: none
 * answered; *answered says how many did). Each is asked with a short
 * timeout: a dead one must not hold up the watch. */
static uint64_t
safekeepers_term(cc_compute *c, char *who, size_t cap, int *answered)
{
    *answered = 0;
    const cc_spec *s = c->spec;
    uint64_t best = 0;
    lb_http_options opts = {.timeout_ms = 2000, .max_attempts = 1};
    lb_http_client *http;
    if (lb_http_client_new(&opts, &http) != 0)
        return 0;
    lb_http_client_set_token(http, s->auth_token); /* its compute token */
    for (int i = 0; i < s->nsafekeepers; i++) {
        char url[600];
        snprintf(url, sizeof(url), "%s/v1/tenant/%s/timeline/%s", s->safekeepers[i].http,
                 s->tenant_id, s->timeline_id);
        lb_buf out = LB_BUF_INIT;
        lb_http_call call = {.method = "GET", .url = url, .response_body = &out};
        lb_http_result res = LB_HTTP_RESULT_INIT;
        if (lb_http_do(http, &call, &res) == 0 && res.status == 200) {
            json_t *j = json_loadb(out.data ? out.data : "", out.len, 0, NULL);
            json_t *t = j ? json_object_get(j, "term") : NULL;
            *answered += json_is_integer(t);
            if (json_is_integer(t) && (uint64_t)json_integer_value(t) > best) {
                best = (uint64_t)json_integer_value(t);
                snprintf(who, cap, "%s", s->safekeepers[i].name);
            }
            json_decref(j);
        }
        lb_buf_free(&out);
        lb_http_result_free(&res);
    }
    lb_http_client_free(http);
    return best;
}

#define WATCH_SETTINGS_MS 1000
#define WATCH_TERM_MS 2000

/* Watch a ready compute until something ends it. */
static watch_outcome
watch(cc_compute *c)
{
    const cc_spec *s = c->spec;
    bool primary = cc_mode_of(s->mode)->elects;
    unsigned cancels = atomic_load(&c->sync_cancels);
    lb_buf guard = LB_BUF_INIT;
    if (primary && cc_guard_query(s, &guard) != 0) {
        fail(c, "out of memory");
        return WATCH_RESTART;
    }
    int64_t next_activity = 0, next_term = 0, next_blind_warning = 0;
    watch_outcome out = WATCH_STOP;
    char why[600];
    while (!*c->stop) {
        reload_credentials(c);
        if (pg_exited(c)) {
            fail(c, "postgres exited unexpectedly; compute-ctl exits so that it is restarted");
            out = WATCH_PG_DIED;
            break;
        }
        if (primary && atomic_load(&c->sync_cancels) != cancels) {
            fail(c, "postgres cancelled a wait for synchronous replication, leaving a commit "
                    "visible that a quorum of safekeepers may not have; restarting from the "
                    "quorum");
            out = WATCH_RESTART;
            break;
        }
        if (lb_mono_ms() >= next_activity) {
            refresh_activity(c);
            if (primary && settings_departed(c, guard.data, why, sizeof(why))) {
                fail(c,
                     "a setting durability rests on was changed: %s; restarting from the "
                     "quorum",
                     why);
                out = WATCH_RESTART;
                break;
            }
            next_activity = lb_mono_ms() + WATCH_SETTINGS_MS;
        }
        if (primary && lb_mono_ms() >= next_term) {
            char who[64] = "";
            int answered;
            uint64_t term = safekeepers_term(c, who, sizeof(who), &answered);
            /* Blind (all down, or refusing our token): say so, once a minute. */
            if (answered == 0 && lb_mono_ms() >= next_blind_warning) {
                lb_warn("no safekeeper told its term: a newer primary would go unnoticed");
                next_blind_warning = lb_mono_ms() + 60000;
            }
            if (term > c->term) {
                fail(c,
                     "safekeeper %s is at term %" PRIu64 ", newer than this primary's %" PRIu64
                     ": another compute is primary; stopping",
                     who, term, c->term);
                out = WATCH_SUPERSEDED;
                break;
            }
            next_term = lb_mono_ms() + WATCH_TERM_MS;
        }
        lb_sleep_ms(50);
    }
    lb_buf_free(&guard);
    return out;
}

int
cc_compute_run(cc_spec *spec, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload)
{
    cc_compute *c = calloc(1, sizeof(*c));
    if (!c)
        return CC_EXIT_FAILED;
    c->spec = spec;
    c->stop = stop;
    c->reload = reload;
    pthread_mutex_init(&c->lock, NULL);
    int rc = start_http(c);
    int code = CC_EXIT_OK;
    for (;;) {
        tl_meta m = {0};
        if (rc == 0)
            rc = check_datadir(c);
        if (rc == 0)
            rc = pageserver_meta(c, &m);
        if (rc == 0 && cc_mode_of(spec->mode)->streams)
            spec->stream_from = pick_stream_source(spec);
        if (rc == 0)
            rc = cc_mode_of(spec->mode)->elects ? run_primary(c, &m) : run_standby(c, &m);
        if (rc == -EINTR) {
            code = CC_EXIT_OK;
            break;
        }
        if (rc) {
            code = rc == CC_EXIT_PG_DIED ? CC_EXIT_PG_DIED : CC_EXIT_FAILED;
            break;
        }
        pthread_mutex_lock(&c->lock);
        c->last_activity_ms = lb_now_ms();
        c->error[0] = '\0';
        pthread_mutex_unlock(&c->lock);
        refresh_activity(c);
        set_state(c, CC_STATE_READY);
        char lsn[LB_LSN_STRLEN];
        lb_info("compute ready mode=%s timeline=%s tli=%u lsn=%s", cc_mode_name(spec->mode),
                spec->timeline_id, c->tli, lb_lsn_format(c->lsn, lsn));
        watch_outcome w = watch(c);
        if (w == WATCH_STOP) {
            code = CC_EXIT_OK;
            break;
        }
        if (w == WATCH_PG_DIED) {
            code = CC_EXIT_PG_DIED;
            break;
        }
        /* Immediate shutdown: nobody reads on from this PostgreSQL. */
        stop_pg(c, SIGQUIT, 10000);
        if (w == WATCH_SUPERSEDED) {
            code = CC_EXIT_SUPERSEDED;
            break;
        }
        lb_warn("starting the compute again from the quorum timeline=%s", spec->timeline_id);
    }
    if (code == CC_EXIT_OK) {
        set_state(c, CC_STATE_STOPPING);
        lb_info("stopping postgres (fast shutdown)");
    }
    stop_pg(c, SIGINT, 60000);
    PQfinish(c->conn);
    lb_http_server_free(c->http);
    lb_info("compute-ctl exits code=%d", code);
    /* The metrics registry still points at c: it is left allocated. */
    return code;
}
