/*
 * recv.c: streaming WAL from the compute (see recv.h).
 *
 * States: IDLE (no target, or waiting out a backoff), CONNECTING (driving
 * PQconnectPoll), IDENTIFY (IDENTIFY_SYSTEM sent), STARTING
 * (START_REPLICATION sent), STREAMING (CopyBoth). Any error, a stale term,
 * or a compute that is not the one this term expects goes back to IDLE
 * with a backoff that doubles up to 2 s.
 *
 * The fence: before every standby status update the receiver checks that
 * the term it streams for is still the timeline's term, and the timeline
 * refuses appends from any other term. So once a vote for a newer term is
 * durable, the old compute can get no further acknowledgement from us,
 * even before its connection is torn down.
 */
#include "recv.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "pgwire.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define STATUS_INTERVAL_MS 1000
/* Read on while WAL keeps arriving, up to this much per loop round, before
 * the round's fsync. libpq hands over one walsender message (at most
 * 128 kB) per read, so without this a bulk stream costs an fsync per
 * 128 kB; the bound keeps the acknowledgement of what was read prompt. */
#define READ_BATCH_BYTES (1024u * 1024)

typedef enum rstate {
    R_IDLE,
    R_CONNECTING,
    R_IDENTIFY,
    R_STARTING,
    R_STREAMING,
} rstate;

struct sk_receiver {
    lb_loop *loop;
    sk_timeline *tl;
    char *app_name;
    rstate state;
    PGconn *conn;
    int fd;              /* watched socket, -1 if none */
    int watched;         /* LB_READABLE/LB_WRITABLE currently watched */
    uint64_t term;       /* term of the compute we stream from */
    char *target;        /* conninfo we connected with */
    const char *password; /* lakebase_safekeeper's on the compute; not owned */
    int64_t retry_at_ms;
    int64_t backoff_ms;
    bool dirty;          /* appended since last sync */
    bool reply_requested;
    bool identified; /* IDENTIFY_SYSTEM matched this term's compute */
    lb_lsn reported_flush;
    int64_t last_status_ms;
    sk_receiver_stats stats;
};

static void on_socket(lb_loop *loop, int fd, int events, void *arg);

int
sk_receiver_new(lb_loop *loop, sk_timeline *tl, const char *app_name, sk_receiver **out)
{
    sk_receiver *r = calloc(1, sizeof(*r));
    if (!r || !(r->app_name = strdup(app_name))) {
        free(r);
        return -ENOMEM;
    }
    r->loop = loop;
    r->tl = tl;
    r->fd = -1;
    r->backoff_ms = BACKOFF_MIN_MS;
    *out = r;
    return 0;
}

static void
watch(sk_receiver *r, int events)
{
    int fd = r->conn ? PQsocket(r->conn) : -1;
    if (r->fd >= 0 && (fd != r->fd || events == 0)) {
        lb_loop_unwatch(r->loop, r->fd);
        r->fd = -1;
        r->watched = 0;
    }
    if (fd < 0 || events == 0)
        return;
    if (r->fd == fd && r->watched == events)
        return;
    if (lb_loop_watch(r->loop, fd, events, on_socket, r) == 0) {
        r->fd = fd;
        r->watched = events;
    }
}

static void
disconnect(sk_receiver *r, const char *why)
{
    if (r->conn) {
        lb_info("stopped streaming from the compute tenant=%s timeline=%s term=%" PRIu64
                " reason=\"%s\"",
                sk_timeline_state(r->tl)->tenant_id, sk_timeline_state(r->tl)->timeline_id,
                r->term, why);
        watch(r, 0);
        PQfinish(r->conn);
        r->conn = NULL;
    }
    r->state = R_IDLE;
    r->stats.streaming = false;
    r->retry_at_ms = lb_mono_ms() + r->backoff_ms;
    r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

void
sk_receiver_set_password(sk_receiver *r, const char *password)
{
    r->password = password;
}

void
sk_receiver_free(sk_receiver *r)
{
    if (!r)
        return;
    disconnect(r, "shutting down");
    free(r->target);
    free(r->app_name);
    free(r);
}

static const char *
conn_error(PGconn *c)
{
    static char msg[256];
    snprintf(msg, sizeof(msg), "%s", c ? PQerrorMessage(c) : "no connection");
    char *nl = strchr(msg, '\n');
    if (nl)
        *nl = '\0';
    return msg;
}

static void
start_connect(sk_receiver *r, const char *target)
{
    /* target is "host=H port=P", built by the safekeeper from a token's
     * endpoint (http_api.c); who we are comes after it, so it cannot be
     * overridden by it. */
    bool has_password = r->password && r->password[0];
    const char *keys[] = {"dbname",   "replication", "application_name", "connect_timeout", "user",
                          "password", NULL};
    const char *vals[] = {target,
                          "true",
                          r->app_name,
                          "5",
                          has_password ? "lakebase_safekeeper" : "postgres",
                          has_password ? r->password : NULL,
                          NULL};
    free(r->target);
    r->target = strdup(target);
    r->term = sk_timeline_compute_term(r->tl);
    r->conn = PQconnectStartParams(keys, vals, 1);
    r->stats.connects++;
    if (!r->conn || PQstatus(r->conn) == CONNECTION_BAD) {
        disconnect(r, conn_error(r->conn));
        return;
    }
    PQsetnonblocking(r->conn, 1);
    r->state = R_CONNECTING;
    watch(r, LB_WRITABLE); /* PQconnectPoll starts out writing */
}

static void
send_query(sk_receiver *r, const char *sql, rstate next)
{
    if (!PQsendQuery(r->conn, sql)) {
        disconnect(r, conn_error(r->conn));
        return;
    }
    r->state = next;
    watch(r, PQflush(r->conn) == 1 ? LB_READABLE | LB_WRITABLE : LB_READABLE);
}

static void
start_replication(sk_receiver *r)
{
    lb_lsn start;
    uint32_t tli;
    char sql[128];
    sk_timeline_stream_start(r->tl, &start, &tli);
    snprintf(sql, sizeof(sql), "START_REPLICATION PHYSICAL %X/%X TIMELINE %u", LB_LSN_ARGS(start),
             tli);
    lb_info("streaming from the compute tenant=%s timeline=%s term=%" PRIu64 " start=%X/%X tli=%u",
            sk_timeline_state(r->tl)->tenant_id, sk_timeline_state(r->tl)->timeline_id, r->term,
            LB_LSN_ARGS(start), tli);
    send_query(r, sql, R_STARTING);
}

/* IDENTIFY_SYSTEM answered: is this the compute our term expects? true if
 * so; otherwise the receiver has disconnected. */
static bool
check_identity(sk_receiver *r, PGresult *res)
{
    const sk_acceptor_state *st = sk_timeline_state(r->tl);
    if (PQntuples(res) != 1 || PQnfields(res) < 3) {
        disconnect(r, "IDENTIFY_SYSTEM returned an unexpected result");
        return false;
    }
    uint64_t sysid = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    uint32_t tli = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
    lb_lsn start;
    uint32_t want_tli;
    sk_timeline_stream_start(r->tl, &start, &want_tli);
    if (sysid != st->system_id) {
        lb_error("compute has database system %" PRIu64 ", timeline expects %" PRIu64, sysid,
                 st->system_id);
        disconnect(r, "wrong database system");
        return false;
    }
    if (tli != want_tli) {
        /* Not promoted yet, or a different compute: try again later. */
        char why[96];
        snprintf(why, sizeof(why), "compute is on timeline %u, term expects %u", tli, want_tli);
        disconnect(r, why);
        return false;
    }
    return true;
}

static void
handle_copy_data(sk_receiver *r, const char *buf, int len)
{
    lb_pq_repl m;
    if (lb_pq_parse_repl(buf, (size_t)len, &m) != 0) {
        disconnect(r, "malformed replication message");
        return;
    }
    if (m.kind == 'w') {
        int rc = sk_timeline_append(r->tl, r->term, m.wal_start, m.wal, m.wal_len);
        if (rc) {
            disconnect(r, lb_strerror(rc));
            return;
        }
        r->dirty = true;
        r->stats.bytes_received += m.wal_len;
        /* Reset only on progress, not on connecting: a stream that fails
         * at once (a full disk, a refused start) must back off, not
         * reconnect to the compute ten times a second. */
        r->backoff_ms = BACKOFF_MIN_MS;
    } else if (m.kind == 'k') {
        if (m.reply_requested)
            r->reply_requested = true;
    }
}

static void
drive(sk_receiver *r)
{
    if (!r->conn)
        return;
    if (r->state == R_CONNECTING) {
        switch (PQconnectPoll(r->conn)) {
        case PGRES_POLLING_READING:
            watch(r, LB_READABLE);
            return;
        case PGRES_POLLING_WRITING:
            watch(r, LB_WRITABLE);
            return;
        case PGRES_POLLING_OK:
            r->identified = false;
            send_query(r, "IDENTIFY_SYSTEM", R_IDENTIFY);
            return;
        default:
            disconnect(r, conn_error(r->conn));
            return;
        }
    }
    if (!PQconsumeInput(r->conn)) {
        disconnect(r, conn_error(r->conn));
        return;
    }
    if (r->state == R_IDENTIFY || r->state == R_STARTING) {
        /* Drain results: a new command may only be sent once PQgetResult
         * has returned NULL; COPY_BOTH is the exception that starts the
         * stream. */
        while (r->conn && !PQisBusy(r->conn)) {
            PGresult *res = PQgetResult(r->conn);
            if (!res) {
                if (r->state == R_IDENTIFY && r->identified)
                    start_replication(r);
                else if (r->state == R_IDENTIFY)
                    disconnect(r, "IDENTIFY_SYSTEM returned no rows");
                break;
            }
            ExecStatusType s = PQresultStatus(res);
            if (r->state == R_IDENTIFY && s == PGRES_TUPLES_OK) {
                r->identified = check_identity(r, res);
            } else if (r->state == R_STARTING && s == PGRES_COPY_BOTH) {
                r->state = R_STREAMING;
                r->stats.streaming = true;
                PQclear(res);
                break;
            } else if (s != PGRES_COMMAND_OK) {
                char why[300];
                snprintf(why, sizeof(why), "compute refused: %s", conn_error(r->conn));
                PQclear(res);
                disconnect(r, why);
                return;
            }
            PQclear(res);
        }
        if (r->state != R_STREAMING)
            return;
    }
    if (r->state == R_STREAMING) {
        size_t batch = 0;   /* bytes of messages handled in this call */
        bool read_again = true;
        for (;;) {
            char *buf = NULL;
            int n = PQgetCopyData(r->conn, &buf, 1);
            if (n > 0) {
                handle_copy_data(r, buf, n);
                PQfreemem(buf);
                if (!r->conn)
                    return;
                batch += (size_t)n;
                read_again = true;
                continue;
            }
            if (n == 0 && read_again && batch > 0 && batch < READ_BATCH_BYTES) {
                /* More may have arrived meanwhile: read it now, so that one
                 * group-commit fsync covers it too. */
                read_again = false;
                if (!PQconsumeInput(r->conn)) {
                    disconnect(r, conn_error(r->conn));
                    return;
                }
                continue;
            }
            if (n == 0)
                break; /* would block */
            disconnect(r, n == -1 ? "compute ended the stream" : conn_error(r->conn));
            return;
        }
        watch(r, PQflush(r->conn) == 1 ? LB_READABLE | LB_WRITABLE : LB_READABLE);
    }
}

static void
on_socket(lb_loop *loop, int fd, int events, void *arg)
{
    (void)loop;
    (void)fd;
    sk_receiver *r = arg;
    if ((events & LB_WRITABLE) && r->conn && r->state != R_CONNECTING && PQflush(r->conn) < 0) {
        disconnect(r, conn_error(r->conn));
        return;
    }
    drive(r);
}

void
sk_receiver_poke(sk_receiver *r)
{
    const char *target = sk_timeline_compute(r->tl);
    if (r->conn) {
        if (sk_timeline_broken(r->tl))
            disconnect(r, "timeline broken by an fsync failure");
        else if (!target || r->term != sk_timeline_compute_term(r->tl) ||
                 strcmp(target, r->target) != 0)
            disconnect(r, target ? "compute changed" : "term moved on");
        return;
    }
    if (!target || sk_timeline_broken(r->tl) || lb_mono_ms() < r->retry_at_ms)
        return;
    start_connect(r, target);
}

bool
sk_receiver_dirty(const sk_receiver *r)
{
    return r->dirty;
}

void
sk_receiver_report(sk_receiver *r)
{
    r->dirty = false;
    if (r->state != R_STREAMING || !r->conn)
        return;
    /* The fence: never acknowledge for a term that is no longer ours. */
    if (sk_timeline_compute(r->tl) == NULL || r->term != sk_timeline_compute_term(r->tl) ||
        sk_timeline_broken(r->tl)) {
        disconnect(r, "term moved on");
        return;
    }
    lb_lsn flush = sk_timeline_flush_lsn(r->tl);
    int64_t now = lb_mono_ms();
    if (flush == r->reported_flush && !r->reply_requested &&
        now - r->last_status_ms < STATUS_INTERVAL_MS)
        return;
    lb_buf msg = LB_BUF_INIT;
    /* Safekeepers apply nothing; apply = flush keeps remote_apply usable. */
    if (lb_pq_put_standby_status(&msg, sk_timeline_write_lsn(r->tl), flush, flush, lb_pq_now(),
                                 false) != 0) {
        lb_buf_free(&msg);
        return;
    }
    /* lb_pq_put_* built a whole 'd' message; libpq adds the framing itself. */
    int ok = PQputCopyData(r->conn, msg.data + 5, (int)(msg.len - 5));
    lb_buf_free(&msg);
    if (ok != 1) {
        disconnect(r, conn_error(r->conn));
        return;
    }
    int f = PQflush(r->conn);
    if (f < 0) {
        disconnect(r, conn_error(r->conn));
        return;
    }
    watch(r, f == 1 ? LB_READABLE | LB_WRITABLE : LB_READABLE);
    r->reported_flush = flush;
    r->reply_requested = false;
    r->last_status_ms = now;
    r->stats.status_sent++;
}

void
sk_receiver_stats_get(const sk_receiver *r, sk_receiver_stats *s)
{
    *s = r->stats;
}
