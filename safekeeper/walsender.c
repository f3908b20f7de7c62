/*
 * walsender.c: a walsender-compatible server, so that a vanilla PostgreSQL
 * hot standby (primary_conninfo pointing at a safekeeper) and the
 * pageserver can stream a timeline's WAL from the safekeepers.
 *
 * Only committed WAL is ever sent: the stream stops at commit_lsn and goes
 * on when it advances (sk_walsender_notify). The timeline is chosen by
 * startup options: options='-c tenant_id=<id> -c timeline_id=<id>'.
 *
 * Commands: IDENTIFY_SYSTEM, TIMELINE_HISTORY n, SHOW wal_segment_size,
 * START_REPLICATION [SLOT s] [PHYSICAL] X/X [TIMELINE n].
 *
 * Authentication: after the startup packet the server asks for a cleartext
 * password (AuthenticationCleartextPassword) and the client sends its
 * token (common/auth.h) as the password; libpq clients put password=<token>
 * in their conninfo. A token that does not verify gets FATAL 28P01; one
 * whose role or scope does not cover the request, 28000. A timeline's
 * stream takes compute (its own timeline), pageserver, safekeeper and
 * management tokens. Until a connection has authenticated it can learn
 * nothing (not even whether a timeline exists), and it must do so within
 * startup_timeout; at most max_connections connections exist at once.
 * Cleartext tokens on the wire are a known limit until TLS lands.
 *
 * The other safekeepers of the set connect here too (peers.c): with no
 * timeline in the options and a safekeeper token, they send
 * START_PEER_STREAM and then one CopyData per position of a timeline,
 * which feeds the commit LSN. The peer is the one its token names (sub):
 * application_name is not trusted, and a token naming no configured peer
 * is refused. A historic
 * timeline is streamed up to its switch point, then the stream ends with
 * the next timeline and its start, as PostgreSQL's walsender does.
 * The options and the commands are parsed by repl_command.c.
 *
 * All connections live on the daemon's loop thread. Each has an output
 * buffer; WAL is read into it only while it holds less than OUT_HIGH
 * bytes, so a slow standby costs bounded memory.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "clock.h"
#include "errors.h"
#include "log.h"
#include "pgwire.h"
#include "repl_command.h"
#include "wal.h"

#define OUT_HIGH (1u << 20)
#define WAL_CHUNK (128u * 1024)
#define IN_MAX (1u << 20)
#define KEEPALIVE_MS 2000
#define ACCEPT_BACKOFF_MS 100 /* after EMFILE/ENFILE: stop accepting this long */

typedef enum cstate {
    C_STARTUP,
    C_AUTH, /* AuthenticationCleartextPassword sent; the token comes next */
    C_READY,
    C_STREAMING,
    C_PEER, /* a peer safekeeper's position stream */
    C_CLOSING,
} cstate;

typedef struct wconn wconn;
struct wconn {
    sk_walsender *ws;
    int fd;
    cstate state;
    lb_buf in, out;
    char tenant[SK_ID_LEN + 1], timeline[SK_ID_LEN + 1];
    char app_name[64];
    int peer;            /* index of the peer safekeeper (C_PEER), else -1 */
    int64_t accepted_ms; /* C_STARTUP and C_AUTH must end by startup_timeout */
    bool ended_stream;   /* we ended a stream: the client's CopyDone and late
                          * status updates may still come */
    /* streaming */
    lb_lsn sent_lsn;
    uint32_t stream_tli;
    lb_lsn stream_end;  /* switch point of a historic timeline; UINT64_MAX if current */
    lb_lsn applied_lsn; /* what the standby reports */
    int64_t last_keepalive_ms;
    wconn *next;
};

struct sk_walsender {
    sk_daemon *sk;
    int listen_fd;
    int port;
    wconn *conns;
    int32_t next_pid;
    uint64_t timer;
    int nconns;
    uint64_t accept_timer; /* while accepting is paused after EMFILE; 0 if not */
};

static void conn_event(lb_loop *loop, int fd, int events, void *arg);

static sk_tl_entry *
conn_timeline(wconn *c)
{
    return sk_find(c->ws->sk, c->tenant, c->timeline);
}

static void
conn_close(wconn *c)
{
    sk_walsender *ws = c->ws;
    lb_loop_unwatch(ws->sk->loop, c->fd);
    close(c->fd);
    for (wconn **p = &ws->conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    lb_buf_free(&c->in);
    lb_buf_free(&c->out);
    ws->nconns--;
    free(c);
}

/* Flush what we can; watch for writability while output remains. */
static int
conn_flush(wconn *c)
{
    return lb_loop_send_buf(c->ws->sk->loop, c->fd, &c->out, conn_event, c);
}

static void send_error(wconn *c, const char *severity, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
send_error(wconn *c, const char *severity, const char *sqlstate, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lb_pq_put_error(&c->out, severity, sqlstate, msg, NULL);
    if (strcmp(severity, "FATAL") == 0)
        c->state = C_CLOSING;
    else
        lb_pq_put_ready(&c->out, 'I');
}

static bool
truthy(const char *v)
{
    return v && (strcasecmp(v, "true") == 0 || strcasecmp(v, "on") == 0 ||
                 strcasecmp(v, "yes") == 0 || strcmp(v, "1") == 0);
}

static void
handle_startup(wconn *c, const lb_pq_startup *st)
{
    if (st->kind == LB_PQ_SSL || st->kind == LB_PQ_GSSENC) {
        lb_buf_append(&c->out, "N", 1); /* no encryption: the client goes on in clear */
        return;
    }
    if (st->kind == LB_PQ_CANCEL) {
        c->state = C_CLOSING;
        return;
    }
    const char *repl = lb_pq_startup_param(st, "replication");
    if (!truthy(repl)) {
        send_error(c, "FATAL", "08P01",
                   "a safekeeper only accepts physical replication connections");
        return;
    }
    sk_repl_options_parse(lb_pq_startup_param(st, "options"), c->tenant, c->timeline);
    const char *app = lb_pq_startup_param(st, "application_name");
    snprintf(c->app_name, sizeof(c->app_name), "%s", app ? app : "");
    /* Nothing about timelines is said before the client has authenticated. */
    lb_pq_put_auth_cleartext(&c->out);
    c->state = C_AUTH;
}

/* The PasswordMessage: the token. Then what the connection asked for. */
static void
handle_password(wconn *c, const lb_pq_msg *m)
{
    if (m->type != 'p' || m->len == 0 || m->body[m->len - 1] != '\0' ||
        strlen((const char *)m->body) != m->len - 1) {
        send_error(c, "FATAL", "08P01", "expected a password message");
        return;
    }
    lb_auth_claims who;
    const char *why = NULL;
    if (lb_auth_verify(c->ws->sk->keys, (const char *)m->body, 0, &who, &why) != 0) {
        lb_info("walsender connection refused app=\"%s\" reason=\"%s\"", c->app_name,
                why ? why : "?");
        send_error(c, "FATAL", "28P01", "password authentication failed: %s",
                   why ? why : "invalid token");
        return;
    }
    bool no_timeline = !c->tenant[0] && !c->timeline[0];
    if (no_timeline) {
        /* A peer safekeeper, named by its token, never by application_name. */
        int peer = who.role == LB_AUTH_SAFEKEEPER ? sk_peer_index(c->ws->sk, who.sub) : -1;
        if (peer < 0) {
            send_error(c, "FATAL", "28000",
                       "options must name the timeline: -c tenant_id=<32 hex> -c "
                       "timeline_id=<32 hex>");
            return;
        }
        c->peer = peer;
        snprintf(c->app_name, sizeof(c->app_name), "%s", who.sub);
    } else if (!sk_id_valid(c->tenant) || !sk_id_valid(c->timeline)) {
        send_error(c, "FATAL", "28000",
                   "options must name the timeline: -c tenant_id=<32 hex> -c timeline_id=<32 hex>");
        return;
    } else if (!lb_auth_allows(&who, LB_AUTH_COMPUTE | LB_AUTH_PAGESERVER | LB_AUTH_SAFEKEEPER,
                               c->tenant, c->timeline)) {
        lb_info("walsender connection refused app=\"%s\" role=%s sub=\"%s\" tenant=%s "
                "timeline=%s",
                c->app_name, lb_auth_role_name(who.role), who.sub, c->tenant, c->timeline);
        send_error(c, "FATAL", "28000", "token of role \"%s\" may not read timeline %s/%s",
                   lb_auth_role_name(who.role), c->tenant, c->timeline);
        return;
    } else if (!conn_timeline(c)) {
        send_error(c, "FATAL", "3D000", "timeline %s/%s does not exist on this safekeeper",
                   c->tenant, c->timeline);
        return;
    }
    lb_pq_put_auth_ok(&c->out);
    lb_pq_put_parameter_status(&c->out, "server_version", "15.0");
    lb_pq_put_parameter_status(&c->out, "server_encoding", "UTF8");
    lb_pq_put_parameter_status(&c->out, "client_encoding", "UTF8");
    lb_pq_put_parameter_status(&c->out, "DateStyle", "ISO, MDY");
    lb_pq_put_parameter_status(&c->out, "integer_datetimes", "on");
    lb_pq_put_parameter_status(&c->out, "standard_conforming_strings", "on");
    size_t start;
    lb_pq_begin(&c->out, 'K', &start);
    lb_pq_put_i32(&c->out, ++c->ws->next_pid);
    lb_pq_put_i32(&c->out, (int32_t)(c->ws->next_pid * 2654435761u));
    lb_pq_end(&c->out, start);
    lb_pq_put_ready(&c->out, 'I');
    c->state = C_READY;
}

static uint32_t
current_tli(const sk_timeline *tl)
{
    const sk_acceptor_state *st = sk_timeline_state(tl);
    return st->nhistory ? st->history[st->nhistory - 1].tli : st->start_tli;
}

static void
cmd_identify(wconn *c, sk_tl_entry *e)
{
    const sk_acceptor_state *st = sk_timeline_state(e->tl);
    const char *names[] = {"systemid", "timeline", "xlogpos", "dbname"};
    const uint32_t oids[] = {25, 23, 25, 25};
    char sysid[24], tli[12], pos[LB_LSN_STRLEN];
    snprintf(sysid, sizeof(sysid), "%" PRIu64, st->system_id);
    snprintf(tli, sizeof(tli), "%u", current_tli(e->tl));
    lb_lsn_format(sk_timeline_serve_lsn(e->tl), pos);
    const char *vals[] = {sysid, tli, pos, NULL};
    lb_pq_put_row_description(&c->out, 4, names, oids);
    lb_pq_put_data_row(&c->out, 4, vals);
    lb_pq_put_command_complete(&c->out, "IDENTIFY_SYSTEM");
    lb_pq_put_ready(&c->out, 'I');
}

static void
cmd_timeline_history(wconn *c, sk_tl_entry *e, uint32_t tli)
{
    lb_buf content = LB_BUF_INIT;
    if (sk_timeline_history_file(e->tl, tli, &content) != 0) {
        send_error(c, "ERROR", "58P01", "could not find history file for timeline %u", tli);
        lb_buf_free(&content);
        return;
    }
    char name[32];
    snprintf(name, sizeof(name), "%08X.history", tli);
    const char *names[] = {"filename", "content"};
    const uint32_t oids[] = {25, 17};
    lb_pq_put_row_description(&c->out, 2, names, oids);
    /* The content goes out as raw bytes, as PostgreSQL's walsender sends it. */
    size_t start;
    lb_pq_begin(&c->out, 'D', &start);
    lb_pq_put_i16(&c->out, 2);
    lb_pq_put_i32(&c->out, (int32_t)strlen(name));
    lb_pq_put_bytes(&c->out, name, strlen(name));
    lb_pq_put_i32(&c->out, (int32_t)content.len);
    lb_pq_put_bytes(&c->out, content.data, content.len);
    lb_pq_end(&c->out, start);
    lb_pq_put_command_complete(&c->out, "TIMELINE_HISTORY");
    lb_pq_put_ready(&c->out, 'I');
    lb_buf_free(&content);
}

static void
cmd_show(wconn *c, sk_tl_entry *e, const char *what)
{
    if (strcasecmp(what, "wal_segment_size") != 0) {
        send_error(c, "ERROR", "42704", "unrecognized configuration parameter \"%s\"", what);
        return;
    }
    char v[32];
    snprintf(v, sizeof(v), "%uMB", sk_timeline_state(e->tl)->wal_seg_size / (1024 * 1024));
    const char *names[] = {"wal_segment_size"};
    const uint32_t oids[] = {25};
    const char *vals[] = {v};
    lb_pq_put_row_description(&c->out, 1, names, oids);
    lb_pq_put_data_row(&c->out, 1, vals);
    lb_pq_put_command_complete(&c->out, "SHOW");
    lb_pq_put_ready(&c->out, 'I');
}

static void pump(wconn *c);

static void
cmd_start_replication(wconn *c, sk_tl_entry *e, lb_lsn start, uint32_t tli)
{
    const sk_acceptor_state *st = sk_timeline_state(e->tl);
    uint32_t cur = current_tli(e->tl);
    if (tli == 0)
        tli = cur;
    lb_lsn end = UINT64_MAX;
    if (tli != cur) {
        /* A historic timeline ends where the next timeline starts. */
        bool known = tli == st->start_tli;
        for (size_t i = 0; i < st->nhistory; i++) {
            if (st->history[i].tli == tli)
                known = true;
            if (st->history[i].tli > tli && end == UINT64_MAX)
                end = st->history[i].start_lsn;
        }
        if (!known || end == UINT64_MAX) {
            send_error(c, "ERROR", "58P01", "requested timeline %u is not in this server's history",
                       tli);
            return;
        }
        if (start > end) {
            send_error(c, "ERROR", "58P01",
                       "requested starting point %X/%X on timeline %u is not in this server's "
                       "history",
                       LB_LSN_ARGS(start), tli);
            return;
        }
    }
    lb_lsn commit = sk_timeline_serve_lsn(e->tl);
    if (start > commit) {
        send_error(c, "ERROR", "55000",
                   "requested starting point %X/%X is ahead of the WAL flush position of this "
                   "server %X/%X",
                   LB_LSN_ARGS(start), LB_LSN_ARGS(commit));
        return;
    }
    lb_lsn first = sk_timeline_start_lsn(e->tl);
    if (start < first - first % st->wal_seg_size) {
        send_error(c, "ERROR", "58P01", "requested WAL segment for %X/%X has already been removed",
                   LB_LSN_ARGS(start));
        return;
    }
    c->sent_lsn = start;
    c->ended_stream = false;
    c->stream_tli = tli;
    c->stream_end = end;
    c->state = C_STREAMING;
    lb_pq_put_copy_both(&c->out);
    lb_info("standby streaming app=%s tenant=%s timeline=%s start=%X/%X tli=%u", c->app_name,
            c->tenant, c->timeline, LB_LSN_ARGS(start), tli);
    pump(c);
}

static void
handle_query(wconn *c, const char *sql)
{
    sk_repl_command cmd;
    sk_repl_command_parse(sql, &cmd);
    if (!c->tenant[0]) { /* a peer's connection: nothing but its stream */
        if (cmd.kind != SK_REPL_START_PEER_STREAM) {
            send_error(c, "FATAL", "08P01",
                       "a connection without a timeline only takes START_PEER_STREAM");
            return;
        }
        assert(c->peer >= 0); /* set from the token at authentication */
        lb_pq_put_copy_both(&c->out);
        c->state = C_PEER;
        lb_info("peer \"%s\" streams its positions", c->app_name);
        return;
    }
    sk_tl_entry *e = conn_timeline(c);
    if (!e) {
        send_error(c, "FATAL", "3D000", "timeline %s/%s was deleted", c->tenant, c->timeline);
        return;
    }
    switch (cmd.kind) {
    case SK_REPL_EMPTY:
        lb_pq_put_command_complete(&c->out, "");
        lb_pq_put_ready(&c->out, 'I');
        break;
    case SK_REPL_IDENTIFY_SYSTEM:
        cmd_identify(c, e);
        break;
    case SK_REPL_TIMELINE_HISTORY:
        cmd_timeline_history(c, e, cmd.tli);
        break;
    case SK_REPL_BAD_TIMELINE:
        send_error(c, "ERROR", "42601", "invalid timeline \"%s\"", cmd.arg);
        break;
    case SK_REPL_SHOW:
        cmd_show(c, e, cmd.arg);
        break;
    case SK_REPL_START_REPLICATION:
        cmd_start_replication(c, e, cmd.start, cmd.tli);
        break;
    case SK_REPL_START_PEER_STREAM:
        send_error(c, "ERROR", "42601", "START_PEER_STREAM is for peer safekeepers");
        break;
    case SK_REPL_BAD_SYNTAX:
        send_error(c, "ERROR", "42601", "syntax error in START_REPLICATION");
        break;
    case SK_REPL_UNSUPPORTED:
        send_error(c, "ERROR", "42601", "command not supported by a safekeeper: \"%.80s\"",
                   cmd.text);
        break;
    }
}

/* Move committed WAL into the output buffer while there is room. */
static void
pump(wconn *c)
{
    if (c->state != C_STREAMING)
        return;
    sk_tl_entry *e = conn_timeline(c);
    if (!e) {
        send_error(c, "FATAL", "3D000", "timeline %s/%s was deleted", c->tenant, c->timeline);
        return;
    }
    if (c->stream_end == UINT64_MAX) {
        /* A new term moved the timeline to a newer PostgreSQL timeline
         * since this stream began: it ends at the switch point, as a
         * cascading walsender's does, and the standby follows the switch. */
        const sk_acceptor_state *hist = sk_timeline_state(e->tl);
        for (size_t i = 0; i < hist->nhistory; i++)
            if (hist->history[i].tli > c->stream_tli &&
                sk_timeline_flush_lsn(e->tl) > hist->history[i].start_lsn) {
                /* once the new timeline has WAL (and so a history file) */
                c->stream_end = hist->history[i].start_lsn;
                break;
            }
    }
    lb_lsn limit = sk_timeline_serve_lsn(e->tl);
    if (limit > c->stream_end)
        limit = c->stream_end;
    static char buf[WAL_CHUNK];
    while (c->out.len < OUT_HIGH && c->sent_lsn < limit) {
        size_t n = limit - c->sent_lsn < WAL_CHUNK ? (size_t)(limit - c->sent_lsn) : WAL_CHUNK;
        int rc = sk_timeline_read(e->tl, c->sent_lsn, buf, n, limit);
        if (rc) {
            send_error(c, "FATAL", "58030", "could not read WAL at %X/%X: %s",
                       LB_LSN_ARGS(c->sent_lsn), lb_strerror(rc));
            return;
        }
        lb_pq_put_xlogdata(&c->out, c->sent_lsn, limit, lb_pq_now(), buf, n);
        c->sent_lsn += n;
    }
    if (c->stream_end != UINT64_MAX && c->sent_lsn >= c->stream_end) {
        /* End of a historic timeline: CopyDone, then the next timeline. */
        const sk_acceptor_state *st = sk_timeline_state(e->tl);
        uint32_t next_tli = 0;
        for (size_t i = 0; i < st->nhistory; i++)
            if (st->history[i].tli > c->stream_tli) {
                next_tli = st->history[i].tli;
                break;
            }
        size_t start;
        lb_pq_begin(&c->out, 'c', &start);
        lb_pq_end(&c->out, start);
        char t[12], pos[LB_LSN_STRLEN];
        snprintf(t, sizeof(t), "%u", next_tli);
        lb_lsn_format(c->stream_end, pos);
        const char *names[] = {"next_tli", "next_tli_startpos"};
        const uint32_t oids[] = {20, 25};
        const char *vals[] = {t, pos};
        lb_pq_put_row_description(&c->out, 2, names, oids);
        lb_pq_put_data_row(&c->out, 2, vals);
        lb_pq_put_command_complete(&c->out, "START_STREAMING");
        lb_pq_put_command_complete(&c->out, "START_REPLICATION");
        lb_pq_put_ready(&c->out, 'I');
        c->state = C_READY;
        c->ended_stream = true;
        return;
    }
    int64_t now = lb_mono_ms();
    if (now - c->last_keepalive_ms >= KEEPALIVE_MS) {
        lb_pq_put_keepalive(&c->out, limit, lb_pq_now(), false);
        c->last_keepalive_ms = now;
    }
}

static void
handle_copy(wconn *c, const lb_pq_msg *m)
{
    if (m->type == 'c') { /* the standby ends streaming */
        size_t start;
        lb_pq_begin(&c->out, 'c', &start);
        lb_pq_end(&c->out, start);
        lb_pq_put_command_complete(&c->out, "START_REPLICATION");
        lb_pq_put_ready(&c->out, 'I');
        c->state = C_READY;
        return;
    }
    lb_pq_repl r;
    if (m->type != 'd' || lb_pq_parse_repl(m->body, m->len, &r) != 0) {
        send_error(c, "FATAL", "08P01", "unexpected message in replication stream");
        return;
    }
    if (r.kind == 'r') {
        c->applied_lsn = r.apply_lsn ? r.apply_lsn : r.flush_lsn;
        if (r.reply_requested)
            lb_pq_put_keepalive(&c->out, c->sent_lsn, lb_pq_now(), false);
    }
    /* 'h' (hot standby feedback) needs nothing: there is no primary here. */
}

/* One position from a peer safekeeper. Timelines this safekeeper does not
 * have are skipped: the peer may have been told of one first. */
static void
handle_peer_copy(wconn *c, const lb_pq_msg *m)
{
    sk_peer_msg pm;
    if (m->type != 'd' || sk_peer_msg_parse(m->body, m->len, &pm) != 0) {
        send_error(c, "FATAL", "08P01", "invalid message in a peer position stream");
        return;
    }
    sk_daemon *sk = c->ws->sk;
    sk_tl_entry *e = sk_find(sk, pm.tenant_id, pm.timeline_id);
    if (!e)
        return;
    lb_lsn before = sk_timeline_commit_lsn(e->tl);
    sk_timeline_peer_flush(e->tl, c->peer, pm.term, pm.last_log_term, pm.flush_lsn);
    if (sk_timeline_commit_lsn(e->tl) != before)
        sk_timeline_changed(sk, e);
}

static void
process_input(wconn *c)
{
    while (c->state != C_CLOSING) {
        size_t used = 0;
        if (c->state == C_STARTUP) {
            lb_pq_startup st;
            int rc = lb_pq_parse_startup(c->in.data, c->in.len, &st, &used);
            if (rc == LB_ETRUNCATED)
                return;
            if (rc) {
                send_error(c, "FATAL", "08P01", "invalid startup packet");
                return;
            }
            handle_startup(c, &st);
            lb_buf_consume(&c->in, used);
            continue;
        }
        lb_pq_msg m;
        /* before authentication, nothing longer than a token is read */
        size_t max = c->state == C_AUTH ? LB_AUTH_TOKEN_MAX + 64 : IN_MAX;
        int rc = lb_pq_parse_msg(c->in.data, c->in.len, max, &m, &used);
        if (rc == LB_ETRUNCATED)
            return;
        if (rc) {
            send_error(c, "FATAL", "08P01", "invalid message");
            return;
        }
        if (c->state == C_AUTH) {
            handle_password(c, &m);
            lb_buf_consume(&c->in, used);
            continue;
        }
        if (m.type == 'X') {
            c->state = C_CLOSING;
            return;
        }
        if (c->state == C_READY && c->ended_stream && (m.type == 'c' || m.type == 'd')) {
            /* The client's side of the stream we ended: its CopyDone, and
             * status updates it sent before it saw ours. */
            if (m.type == 'c')
                c->ended_stream = false;
        } else if (c->state == C_PEER) {
            handle_peer_copy(c, &m);
        } else if (c->state == C_STREAMING) {
            handle_copy(c, &m);
        } else if (m.type == 'Q') {
            if (m.len == 0 || m.body[m.len - 1] != '\0')
                send_error(c, "FATAL", "08P01", "invalid query message");
            else
                handle_query(c, (const char *)m.body);
        } else {
            send_error(c, "FATAL", "08P01", "message type '%c' is not supported here",
                       m.type >= 32 && m.type < 127 ? m.type : '?');
        }
        lb_buf_consume(&c->in, used);
    }
}

static void
conn_event(lb_loop *loop, int fd, int events, void *arg)
{
    (void)loop;
    wconn *c = arg;
    if (events & LB_READABLE) {
        char buf[65536];
        for (;;) {
            ssize_t r = recv(fd, buf, sizeof(buf), 0);
            if (r > 0) {
                size_t cap = c->state == C_STARTUP || c->state == C_AUTH
                                 ? LB_PQ_MAX_STARTUP + LB_AUTH_TOKEN_MAX + 128
                                 : IN_MAX + 64;
                if (c->in.len + (size_t)r > cap || lb_buf_append(&c->in, buf, (size_t)r)) {
                    conn_close(c);
                    return;
                }
                continue;
            }
            if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                conn_close(c);
                return;
            }
            if (errno == EINTR)
                continue;
            break;
        }
        process_input(c);
    }
    pump(c);
    if (conn_flush(c) != 0 || (c->state == C_CLOSING && c->out.len == 0))
        conn_close(c);
}

static void on_accept(lb_loop *loop, int fd, int events, void *arg);

static int64_t
resume_accept(lb_loop *loop, uint64_t id, void *arg)
{
    (void)id;
    sk_walsender *ws = arg;
    ws->accept_timer = 0;
    if (lb_loop_watch(loop, ws->listen_fd, LB_READABLE, on_accept, ws) != 0)
        lb_error("could not watch the walsender listener again");
    return -1;
}

static void
on_accept(lb_loop *loop, int fd, int events, void *arg)
{
    (void)events;
    sk_walsender *ws = arg;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The listener stays readable: pause it instead of spinning. */
                lb_warn("walsender could not accept, pausing for %d ms: %s", ACCEPT_BACKOFF_MS,
                        strerror(errno));
                lb_loop_unwatch(loop, fd);
                if (!ws->accept_timer && lb_loop_add_timer(loop, ACCEPT_BACKOFF_MS, resume_accept,
                                                           ws, &ws->accept_timer) != 0)
                    resume_accept(loop, 0, ws);
            }
            return;
        }
        if (ws->nconns >= ws->sk->conf.max_connections) {
            lb_buf out = LB_BUF_INIT;
            lb_pq_put_error(&out, "FATAL", "53300", "sorry, too many clients already", NULL);
            ssize_t ignored = send(cfd, out.data, out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)ignored;
            lb_buf_free(&out);
            close(cfd);
            continue;
        }
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        wconn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(cfd);
            continue;
        }
        c->ws = ws;
        c->fd = cfd;
        c->peer = -1;
        c->stream_end = UINT64_MAX;
        c->accepted_ms = lb_mono_ms();
        c->next = ws->conns;
        ws->conns = c;
        ws->nconns++;
        if (lb_loop_watch(loop, cfd, LB_READABLE, conn_event, c) != 0)
            conn_close(c);
    }
}

/* Keepalives for idle streams, so standbys' wal_receiver_timeout never fires. */
static int64_t
keepalive_tick(lb_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    sk_walsender *ws = arg;
    /* Connections that have not authenticated in time go. */
    int64_t now = lb_mono_ms();
    for (wconn *c = ws->conns, *next; c; c = next) {
        next = c->next;
        if ((c->state == C_STARTUP || c->state == C_AUTH) &&
            now - c->accepted_ms > ws->sk->conf.startup_timeout_ms) {
            lb_info("walsender connection closed: no authentication within %" PRId64 " ms",
                    ws->sk->conf.startup_timeout_ms);
            conn_close(c);
        }
    }
    sk_walsender_notify(ws);
    return KEEPALIVE_MS / 2;
}

int
sk_walsender_start(sk_daemon *sk, sk_walsender **out)
{
    sk_walsender *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return -ENOMEM;
    ws->sk = sk;
    ws->next_pid = 1000;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)sk->conf.listen_pg.port)};
    if (inet_pton(AF_INET, sk->conf.listen_pg.host, &a.sin_addr) != 1) {
        lb_error("listen_pg address \"%s\" is not an IPv4 address", sk->conf.listen_pg.host);
        free(ws);
        return LB_EBADCONFIG;
    }
    ws->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ws->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t len = sizeof(a);
    if (bind(ws->listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(ws->listen_fd, 128) != 0 ||
        getsockname(ws->listen_fd, (struct sockaddr *)&a, &len) != 0) {
        int rc = -errno;
        lb_error("could not listen on %s:%d: %s", sk->conf.listen_pg.host,
                 (int)sk->conf.listen_pg.port, strerror(-rc));
        close(ws->listen_fd);
        free(ws);
        return rc;
    }
    ws->port = ntohs(a.sin_port);
    int rc = lb_loop_watch(sk->loop, ws->listen_fd, LB_READABLE, on_accept, ws);
    if (rc == 0)
        rc = lb_loop_add_timer(sk->loop, KEEPALIVE_MS / 2, keepalive_tick, ws, &ws->timer);
    if (rc) {
        close(ws->listen_fd);
        free(ws);
        return rc;
    }
    *out = ws;
    return 0;
}

int
sk_walsender_port(const sk_walsender *ws)
{
    return ws->port;
}

void
sk_walsender_notify(sk_walsender *ws)
{
    for (wconn *c = ws->conns, *next; c; c = next) {
        next = c->next;
        if (c->state != C_STREAMING)
            continue;
        pump(c);
        if (conn_flush(c) != 0 || (c->state == C_CLOSING && c->out.len == 0))
            conn_close(c);
    }
}

void
sk_walsender_stop(sk_walsender *ws)
{
    if (!ws)
        return;
    while (ws->conns)
        conn_close(ws->conns);
    lb_loop_del_timer(ws->sk->loop, ws->timer);
    if (ws->accept_timer)
        lb_loop_del_timer(ws->sk->loop, ws->accept_timer);
    lb_loop_unwatch(ws->sk->loop, ws->listen_fd);
    close(ws->listen_fd);
    free(ws);
}
