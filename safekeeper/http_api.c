/*
 * http_api.c: the safekeeper's HTTP API.
 *
 *   POST   /v1/tenant/{tenant_id}/timeline                     create
 *   GET    /v1/tenant/{tenant_id}/timeline/{timeline_id}       status
 *   DELETE /v1/tenant/{tenant_id}/timeline/{timeline_id}       delete
 *   POST   .../vote      {"term"}                               promise a term
 *   POST   .../accept    {"term","term_history","end_lsn","donor"}  adopt a proposer's log
 *   POST   .../elected   {"term","compute"}                     stream from the new compute
 *   POST   .../consumer  {"name","applied_lsn"}                 a consumer's position
 *   GET    .../wal?from=X/X&to=X/X                               raw WAL for peer recovery
 *   GET    .../segment/{name}                                    a WAL segment (restore_command)
 *   GET    .../history/{name}                                    a timeline history file
 *
 * Every route but /healthz and /metrics needs a token (common/auth.h); the
 * roles each takes are in the table at the end: a compute acts on its own
 * timeline only (vote, accept, elected, reading WAL), a pageserver reads WAL
 * and reports its position, a peer safekeeper fetches WAL ranges, and only
 * management creates, deletes or lists. No request chooses an address this
 * safekeeper connects to: /accept's donor must be a configured peer
 * (peers_http), and the compute /elected streams from is the "endpoint" of
 * the compute's token (or, from management, the body's "compute" host:port).
 *
 * Handlers parse and validate on the HTTP thread, then run the operation
 * on the loop thread through sk_run_on_loop(). Every refusal is a 4xx with
 * a JSON error naming the problem: 400 for a malformed body, id or name,
 * 404 for a timeline, segment or WAL range this safekeeper does not hold,
 * 409 for a stale term or a conflicting create. Nothing is stored before
 * a request has been checked against the timeline it changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "errors.h"
#include "http_client.h"
#include "json.h"
#include "log.h"
#include "wal.h"

#define WAL_RANGE_MAX (4u * 1024 * 1024)

/* Common request context: the ids and the parsed body. */
typedef struct api_ctx {
    sk_daemon *sk;
    char tenant[LB_ID_STRLEN];
    char timeline[LB_ID_STRLEN];
    json_t *body;
    lb_json_error err;
    int err_status; /* 0: err is a malformed request (400); else see refuse() */
    /* operation inputs */
    uint64_t term;
    sk_term_entry history[SK_MAX_TERM_HISTORY];
    size_t nhistory;
    lb_lsn lsn_a, lsn_b;
    const char *text;
    int64_t num;
    /* outputs */
    json_t *reply;
    bool granted;
    char path[PATH_MAX];
    uint64_t serve_len; /* bytes of the file to serve; the rest is zeros */
    bool serve_final;   /* serve_len is where the file's timeline ends (wal.h) */
    lb_buf bytes;
} api_ctx;

static int
ids(lb_http_request *req, api_ctx *c, bool need_timeline)
{
    lb_json_param_id(req, "tenant_id", c->tenant, &c->err);
    if (need_timeline)
        lb_json_param_id(req, "timeline_id", c->timeline, &c->err);
    return c->err.failed ? c->err.code : 0;
}

static int
finish(lb_http_request *req, api_ctx *c, int rc)
{
    json_decref(c->body);
    lb_buf_free(&c->bytes);
    if (c->err.failed) {
        json_decref(c->reply);
        if (c->err_status)
            return lb_http_respond_error(req, c->err_status, "%s", c->err.message);
        return lb_json_respond_bad_request(req, &c->err);
    }
    if (rc) {
        json_decref(c->reply);
        int status = lb_http_status_for_error(rc);
        if (rc == -ESHUTDOWN || rc == -EBUSY)
            status = 503;
        return lb_http_respond_error(req, status, "%s", lb_strerror(rc));
    }
    return lb_json_respond(req, 200, c->reply ? c->reply : json_object());
}

/* Refuse a well-formed request with the status of code: 404 for what this
 * safekeeper does not hold, 409 for a conflict. A malformed request is
 * failed with lb_json_fail() instead and gets 400 ("missing field" is
 * LB_ENOTFOUND too, so the code alone cannot tell them apart). */
static int refuse(api_ctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
refuse(api_ctx *c, int code, const char *fmt, ...)
{
    char msg[sizeof(c->err.message)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!c->err.failed)
        c->err_status = lb_http_status_for_error(code);
    return lb_json_fail(&c->err, code, "%s", msg);
}

/* A request whose LSN is where the WAL of a term starts: it must be where
 * a record can start, or the timeline could not decode from it. */
static bool
record_start_ok(lb_lsn lsn, uint32_t seg_size)
{
    lb_wal_decoder *dec;
    if (lb_wal_decoder_new(lsn, seg_size, &dec) != 0)
        return false;
    lb_wal_decoder_free(dec);
    return true;
}

static sk_tl_entry *
need(api_ctx *c)
{
    sk_tl_entry *e = sk_find(c->sk, c->tenant, c->timeline);
    if (!e)
        refuse(c, LB_ENOTFOUND, "timeline %s/%s not found", c->tenant, c->timeline);
    return e;
}

/* ---- create / status / delete ------------------------------------------------ */

static int
job_create(sk_daemon *sk, void *arg)
{
    api_ctx *c = arg;
    sk_tl_entry *e = sk_find(sk, c->tenant, c->timeline);
    if (e) {
        const sk_acceptor_state *st = sk_timeline_state(e->tl);
        if (st->system_id != (uint64_t)c->num || st->wal_seg_size != c->lsn_b)
            return refuse(c, LB_EEXIST, "timeline %s/%s exists with different parameters",
                          c->tenant, c->timeline);
        c->reply = sk_timeline_status_json(e->tl);
        return 0;
    }
    sk_timeline_params p = {c->tenant,          c->timeline, (uint64_t)c->num,
                            (uint32_t)c->lsn_b, c->lsn_a,    (uint32_t)c->term};
    sk_timeline *tl;
    int rc = sk_timeline_create(sk->conf.data_dir, &p, &tl);
    if (rc == LB_ECONFLICT)
        return refuse(c, LB_ECONFLICT,
                      "timeline %s/%s has files on this safekeeper but no state that loads; "
                      "it is not initialized again (see the safekeeper's log)",
                      c->tenant, c->timeline);
    if (rc)
        return rc;
    rc = sk_add_timeline(sk, tl);
    if (rc) {
        sk_timeline_close(tl);
        return rc;
    }
    c->reply = sk_timeline_status_json(tl);
    return 0;
}

static int
h_create(lb_http_request *req, void *arg)
{
    api_ctx c = {.sk = arg, .err = LB_JSON_ERROR_INIT};
    const char *sysid;
    int64_t seg = LB_WAL_SEG_SIZE_DEFAULT, tli = 1;
    ids(req, &c, false);
    lb_json_parse_request(req, &c.body, &c.err);
    lb_json_req_id(c.body, "timeline_id", c.timeline, &c.err);
    lb_json_req_str(c.body, "system_id", &sysid, &c.err);
    lb_json_req_lsn(c.body, "start_lsn", &c.lsn_a, &c.err);
    lb_json_opt_int64(c.body, "wal_seg_size", seg, &seg, &c.err);
    lb_json_opt_int64(c.body, "pg_tli", tli, &tli, &c.err);
    if (!c.err.failed) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(sysid, &end, 10);
        /* strtoull() takes "-1" (as 2^64-1) and leading spaces: digits only */
        if (errno || *end || end == sysid || v == 0 || sysid[0] < '0' || sysid[0] > '9')
            lb_json_fail(&c.err, LB_EPARSE, "field \"system_id\" must be a decimal number > 0");
        else if (!lb_wal_seg_size_valid((uint64_t)seg))
            lb_json_fail(&c.err, LB_EPARSE,
                         "field \"wal_seg_size\" must be a power of two from 1 MiB to 1 GiB");
        else if (tli < 1 || tli > UINT32_MAX)
            lb_json_fail(&c.err, LB_EPARSE, "field \"pg_tli\" must be a timeline id > 0");
        else if (!record_start_ok(c.lsn_a, (uint32_t)seg))
            lb_json_fail(&c.err, LB_EPARSE,
                         "field \"start_lsn\" must be where a WAL record can start");
        c.num = (int64_t)v;
    }
    c.lsn_b = (lb_lsn)seg;
    c.term = (uint64_t)tli;
    int rc = c.err.failed ? 0 : sk_run_on_loop(c.sk, job_create, &c);
    return finish(req, &c, rc);
}

static int
job_status(sk_daemon *sk, void *arg)
{
    (void)sk;
    api_ctx *c = arg;
    sk_tl_entry *e = need(c);
    if (!e)
        return 0;
    c->reply = sk_timeline_status_json(e->tl);
    sk_receiver_stats rs;
    sk_receiver_stats_get(e->recv, &rs);
    json_object_set_new(c->reply, "streaming", json_boolean(rs.streaming));
    json_object_set_new(c->reply, "received_bytes", json_integer((json_int_t)rs.bytes_received));
    return 0;
}

static int
h_status(lb_http_request *req, void *arg)
{
    api_ctx c = {.sk = arg, .err = LB_JSON_ERROR_INIT};
    int rc = ids(req, &c, true) ? 0 : sk_run_on_loop(c.sk, job_status, &c);
    return finish(req, &c, rc);
}

static int
job_delete(sk_daemon *sk, void *arg)
{
    api_ctx *c = arg;
    if (!need(c))
        return 0;
    return sk_remove_timeline(sk, c->tenant, c->timeline);
}

static int
h_delete(lb_http_request *req, void *arg)
{
    api_ctx c = {.sk = arg, .err = LB_JSON_ERROR_INIT};
    int rc = ids(req, &c, true) ? 0 : sk_run_on_loop(c.sk, job_delete, &c);
    return finish(req, &c, rc);
}

/* ---- protocol -------------------------------------------------------------------- */

static json_t *
positions(const sk_timeline *tl)
{
    json_t *j = sk_timeline_status_json(tl);
    return j;
}

/* A term that far above the promised one could never be passed (the
 * arithmetic of terms stays far from overflow): false, with c->err set. */
static bool
term_reachable(api_ctx *c, const sk_tl_entry *e)
{
    uint64_t promised = sk_timeline_state(e->tl)->term;
    if (c->term <= promised || SK_TERM_REACHABLE(promised, c->term))
        return true;
    lb_json_fail(&c->err, LB_EPARSE,
                 "field \"term\" %" PRIu64 " is too far above the promised term %" PRIu64
                 " (at most %u more)",
                 c->term, promised, SK_TERM_MAX_STEP);
    return false;
}

static int
job_vote(sk_daemon *sk, void *arg)
{
    api_ctx *c = arg;
    sk_tl_entry *e = need(c);
    if (!e)
        return 0;
    if (!term_reachable(c, e))
        return LB_EPARSE;
    int rc = sk_timeline_vote(e->tl, c->term, &c->granted);
    if (rc)
        return rc;
    sk_timeline_changed(sk, e); /* a granted vote cuts the old compute's stream now */
    c->reply = positions(e->tl);
    json_object_set_new(c->reply, "granted", json_boolean(c->granted));
    return 0;
}

static int
h_vote(lb_http_request *req, void *arg)
{
    api_ctx c = {.sk = arg, .err = LB_JSON_ERROR_INIT};
    int64_t term = 0;
    ids(req, &c, true);
    lb_json_parse_request(req, &c.body, &c.err);
    lb_json_req_int64(c.body, "term", &term, &c.err);
    if (!c.err.failed && term <= 0)
        lb_json_fail(&c.err, LB_EPARSE, "field \"term\" must be > 0");
    c.term = (uint64_t)term;
    int rc = c.err.failed ? 0 : sk_run_on_loop(c.sk, job_vote, &c);
    return finish(req, &c, rc);
}

/* Peer recovery: take [from, to) from the donor safekeeper over HTTP. */
typedef struct fetch_ctx {
    char donor[300]; /* http://host:port of a configured peer */
    const char *tenant, *timeline;
    lb_http_client *http;
} fetch_ctx;

static int
fetch_from_donor(void *arg, lb_lsn from, lb_lsn to, uint32_t tli, void *buf)
{
    (void)tli;
    fetch_ctx *f = arg;
    char url[512];
    snprintf(url, sizeof(url), "%s/v1/tenant/%s/timeline/%s/wal?from=%X/%X&to=%X/%X", f->donor,
             f->tenant, f->timeline, LB_LSN_ARGS(from), LB_LSN_ARGS(to));
    lb_buf body = LB_BUF_INIT;
    lb_http_call call = {
        .method = "GET", .url = url, .response_body = &body, .max_response = to - from};
    lb_http_result res = LB_HTTP_RESULT_INIT;
    int rc = lb_http_do(f->http, &call, &res);
    if (rc == 0 && res.status != 200) {
        lb_error("donor \"%s\" refused WAL %X/%X-%X/%X: status %ld", f->donor, LB_LSN_ARGS(from),
                 LB_LSN_ARGS(to), res.status);
        rc = LB_EHTTP;
    } else if (rc == 0 && body.len != to - from) {
        lb_error("donor \"%s\" sent %zu bytes of WAL, %llu expected", f->donor, body.len,
                 (unsigned long long)(to - from));
        rc = LB_EPROTO;
    }
    if (rc == 0)
        memcpy(buf, body.data, body.len);
    lb_buf_free(&body);
    lb_http_result_free(&res);
    return rc;
}

static int
job_accept(sk_daemon *sk, void *arg)
{
    api_ctx *c = arg;
    sk_tl_entry *e = need(c);
    if (!e)
        return 0;
    /* Checked before anything changes: a history the state file could not
     * be loaded with, or a term starting where no record can, would be
     * persisted and lose the timeline on the next start. */
    if (!term_reachable(c, e))
        return LB_EPARSE;
    lb_lsn first = sk_timeline_start_lsn(e->tl);
    if (c->history[0].start_lsn < first)
        return lb_json_fail(&c->err, LB_EPARSE,
                            "field \"term_history\" starts at %X/%X, before the timeline's "
                            "start %X/%X",
                            LB_LSN_ARGS(c->history[0].start_lsn), LB_LSN_ARGS(first));
    /* What this accept may have to copy: up to end_lsn from the WAL held
     * here (from where the logs first differ, at worst the end). */
    lb_lsn held = sk_timeline_end_lsn(e->tl);
    if (c->lsn_a > held && c->lsn_a - held > sk->conf.max_accept_bytes)
        return lb_json_fail(&c->err, LB_EPARSE,
                            "field \"end_lsn\" %X/%X is more than max_accept_bytes (%" PRIu64
                            ") past the WAL held here (%X/%X)",
                            LB_LSN_ARGS(c->lsn_a), sk->conf.max_accept_bytes, LB_LSN_ARGS(held));
    if (!record_start_ok(c->lsn_a, sk_timeline_state(e->tl)->wal_seg_size))
        return lb_json_fail(&c->err, LB_EPARSE,
                            "field \"end_lsn\" %X/%X is not where a WAL record can start",
                            LB_LSN_ARGS(c->lsn_a));
    /* Truncation and the new history happen here, on the loop; the donor's
     * WAL is fetched by the HTTP thread (h_accept) and written by
     * job_accept_write, so the loop never waits on a donor. */
    lb_lsn from;
    int rc = sk_timeline_accept_begin(e->tl, c->term, c->history, c->nhistory, c->lsn_a, &from);
    sk_timeline_changed(sk, e);
    if (rc < 0)
        return rc;
    c->granted = rc == 1; /* accepted already */
    c->lsn_b = from;
    if (c->granted)
        c->reply = positions(e->tl);
    return 0;
}

typedef struct accept_step {
    api_ctx *c;
    lb_lsn pos;
    const void *buf;
    size_t n;
} accept_step;

static int
job_accept_write(sk_daemon *sk, void *arg)
{
    (void)sk;
    accept_step *a = arg;
    sk_tl_entry *e = need(a->c);
    return e ? sk_timeline_accept_write(e->tl, a->c->term, a->pos, a->buf, a->n) : 0;
}

static int
job_accept_finish(sk_daemon *sk, void *arg)
{
    api_ctx *c = arg;
    sk_tl_entry *e = need(c);
    if (!e)
        return 0;
    int rc = sk_timeline_accept_finish(e->tl, c->term);
    sk_timeline_changed(sk, e);
    if (rc)
        return rc;
    c->reply = positions(e->tl);
    return 0;
}

/* HTTP thread: the donor's WAL [from, end), a chunk at a time, each
 * written on the loop; then the accept is finished there. */
static int
accept_fetch(api_ctx *c)
{
    lb_lsn end = c->lsn_a, pos = c->lsn_b;
    fetch_ctx f = {.tenant = c->tenant, .timeline = c->timeline};
    int rc = 0;
    char *buf = NULL;
    if (pos < end && c->text) {
        /* the address comes from our configuration, not from the request */
        const sk_peer *peer = &c->sk->peers[c->num];
        snprintf(f.donor, sizeof(f.donor),
                 strchr(peer->http.host, ':') ? "http://[%s]:%d" : "http://%s:%d", peer->http.host,
                 peer->http.port);
        lb_http_options opts = {.connect_timeout_ms = 2000, .timeout_ms = 20000, .max_attempts = 3};
        if (lb_http_client_new(&opts, &f.http) != 0 || !(buf = malloc(SK_ACCEPT_CHUNK)))
            rc = -ENOMEM;
        else
            lb_http_client_set_token(f.http, c->sk->token);
        while (rc == 0 && pos < end && !c->err.failed) {
            size_t want = SK_ACCEPT_CHUNK - (size_t)(pos % SK_ACCEPT_CHUNK);
            if (want > end - pos)
                want = (size_t)(end - pos);
            rc = fetch_from_donor(&f, pos, pos + want, 0, buf);
            accept_step a = {c, pos, buf, want};
            if (rc == 0)
                rc = sk_run_on_loop(c->sk, job_accept_write, &a);
            pos += want;
        }
    }
    free(buf);
    lb_http_client_free(f.http);
    if (rc == 0 && !c->err.failed)
        rc = sk_run_on_loop(c->sk, job_accept_finish, c);
    return rc;
}

static int
h_accept(lb_http_request *req, void *arg)
{
    api_ctx c = {.sk = arg, .err = LB_JSON_ERROR_INIT};
    int64_t term = 0;
    char msg[200] = "";
    ids(req, &c, true);
    lb_json_parse_request(req, &c.body, &c.err);
    lb_json_req_int64(c.body, "term", &term, &c.err);
    lb_json_req_lsn(c.body, "end_lsn", &c.lsn_a, &c.err);
    lb_json_opt_str(c.body, "donor", NULL, &c.text, &c.err);
    if (!c.err.failed) {
        if (term <= 0)
            lb_json_fail(&c.err, LB_EPARSE, "field \"term\" must be > 0");
        else if (sk_term_history_from_json(json_object_get(c.body, "term_history"), c.history,
                                           SK_MAX_TERM_HISTORY, &c.nhistory, msg, sizeof(msg)) != 0)
            lb_json_fail(&c.err, LB_EPARSE, "field \"term_history\": %s", msg);
        else if (c.nhistory == 0 || c.history[c.nhistory - 1].term != (uint64_t)term ||
                 c.history[c.nhistory - 1].start_lsn != c.lsn_a)
            lb_json_fail(&c.err, LB_EPARSE,
                         "field \"term_history\" must end with this term starting at end_lsn");
        else if (c.text && strncmp(c.text, "http://", 7) != 0)
            lb_json_fail(&c.err, LB_EPARSE, "field \"donor\" must be an http:// URL");
        else if (c.text && (c.num = sk_peer_by_url(c.sk, c.text)) == SK_PEER_SELF)
            c.text = NULL; /* the donor is this safekeeper: it has the WAL */
        else if (c.text && c.num < 0)
            refuse(&c, LB_EFORBIDDEN,
                   "field \"donor\" \"%.200s\" is not a configured peer (peers_http)", c.text);
    }
    c.term = (uint64_t)term;
    int rc = c.err.failed ? 0 : sk_run_on_loop(c.sk, job_accept, &c);
    if (rc == 0 && !c.err.failed && !c.granted)
        rc = accept_fetch(&c);
    return finish(req, &c, rc);
}

static int
job_elected(sk_daemon *sk, void *arg)
{
    api_ctx *c = arg;
    sk_tl_entry *e = need(c);
    if (!e)
        return 0;
    int rc = sk_timeline_elected(e->tl, c->term, c->text);
    if (rc)
        return rc;
    sk_timeline_changed(sk, e);
    c->reply = positions(e->tl);
    return 0;
}

/* The compute's address as this safekeeper will store and dial it:
 * "host=H port=P", from a host:port endpoint, plus hostaddr=IP when H is a
 * name: it is resolved here, on an HTTP thread, so that the loop's
 * non-blocking connect never waits on DNS. false if it is not host:port or
 * the name does not resolve. */
static bool
compute_conninfo(const char *endpoint, char *out, size_t cap)
{
    lb_config_addr a;
    if (!endpoint || lb_hostport_parse(endpoint, &a) != 0 || a.port == 0 ||
        strpbrk(a.host, " '\\=") || !a.host[0])
        return false;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai = NULL;
    if (getaddrinfo(a.host, NULL, &hints, &ai) == 0) {
        freeaddrinfo(ai);
        return snprintf(out, cap, "host=%s port=%d", a.host, a.port) < (int)cap;
    }
    hints.ai_flags = 0;
    char ip[INET6_ADDRSTRLEN];
    if (getaddrinfo(a.host, NULL, &hints, &ai) != 0)
        return false;
    int grc = getnameinfo(ai->ai_addr, ai->ai_addrlen, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(ai);
    return grc == 0 &&
           snprintf(out, cap, "host=%s hostaddr=%s port=%d", a.host, ip, a.port) < (int)cap;
}

static int
h_elected(lb_http_request *req, void *arg)
{
    api_ctx c = {.sk = arg, .err = LB_JSON_ERROR_INIT};
    int64_t term = 0;
    char conninfo[300];
    ids(req, &c, true);
    lb_json_parse_request(req, &c.body, &c.err);
    lb_json_req_int64(c.body, "term", &term, &c.err);
    lb_json_opt_str(c.body, "compute", NULL, &c.text, &c.err);
    if (!c.err.failed && term <= 0)
        lb_json_fail(&c.err, LB_EPARSE, "field \"term\" must be > 0");
    /* A compute's token names its own address; only management may name
     * another (the body's "compute", host:port). */
    const lb_auth_claims *who = lb_http_claims(req);
    const char *endpoint = who && who->role == LB_AUTH_COMPUTE ? who->endpoint : c.text;
    if (!c.err.failed && who && who->role == LB_AUTH_COMPUTE && !who->endpoint[0])
        refuse(&c, LB_EFORBIDDEN, "the compute's token has no \"endpoint\" to stream from");
    else if (!c.err.failed && endpoint && !compute_conninfo(endpoint, conninfo, sizeof(conninfo)))
        lb_json_fail(&c.err, LB_EPARSE,
                     "the compute's address \"%.100s\" is not host:port, or does not resolve",
                     endpoint);
    else if (!c.err.failed && endpoint)
        c.text = conninfo;
    c.term = (uint64_t)term;
    int rc = c.err.failed ? 0 : sk_run_on_loop(c.sk, job_elected, &c);
    return finish(req, &c, rc);
}

static int
job_consumer(sk_daemon *sk, void *arg)
{
    (void)sk;
    api_ctx *c = arg;
    sk_tl_entry *e = need(c);
    if (!e)
        return 0;
    int rc = sk_timeline_consumer(e->tl, c->text, c->lsn_a);
    if (rc == LB_ETOOBIG)
        return lb_json_fail(&c->err, LB_ETOOBIG, "at most %d consumers per timeline",
                            SK_MAX_CONSUMERS);
    if (rc == -EINVAL)
        return lb_json_fail(&c->err, LB_EPARSE, "field \"name\" must be 1 to 63 characters");
    if (rc == 0)
        c->reply = sk_timeline_status_json(e->tl);
    return rc;
}

static int
h_consumer(lb_http_request *req, void *arg)
{
    api_ctx c = {.sk = arg, .err = LB_JSON_ERROR_INIT};
    ids(req, &c, true);
    lb_json_parse_request(req, &c.body, &c.err);
    lb_json_req_str(c.body, "name", &c.text, &c.err);
    lb_json_req_lsn(c.body, "applied_lsn", &c.lsn_a, &c.err);
    /* A pageserver's positions are kept under its own name (its token's
     * sub), so that one pageserver can never move another's. */
    const lb_auth_claims *who = lb_http_claims(req);
    char name[64];
    if (!c.err.failed && who && who->role == LB_AUTH_PAGESERVER) {
        if (!who->sub[0] || strchr(who->sub, '/'))
            refuse(&c, LB_EFORBIDDEN, "a pageserver's token must name it (sub) to report");
        else if (snprintf(name, sizeof(name), "%s/%s", who->sub, c.text) >= (int)sizeof(name))
            lb_json_fail(&c.err, LB_EPARSE, "field \"name\" is too long");
        else
            c.text = name;
    }
    int rc = c.err.failed ? 0 : sk_run_on_loop(c.sk, job_consumer, &c);
    return finish(req, &c, rc);
}

/* ---- serving WAL ------------------------------------------------------------------ */

static int
job_wal(sk_daemon *sk, void *arg)
{
    (void)sk;
    api_ctx *c = arg;
    sk_tl_entry *e = need(c);
    if (!e)
        return 0;
    lb_lsn end = sk_timeline_end_lsn(e->tl);
    if (c->lsn_a < sk_timeline_start_lsn(e->tl) || c->lsn_b > end)
        return refuse(c, LB_ENOTFOUND, "WAL %X/%X-%X/%X is not held here (held: %X/%X-%X/%X)",
                      LB_LSN_ARGS(c->lsn_a), LB_LSN_ARGS(c->lsn_b),
                      LB_LSN_ARGS(sk_timeline_start_lsn(e->tl)), LB_LSN_ARGS(end));
    size_t n = (size_t)(c->lsn_b - c->lsn_a);
    int rc = lb_buf_reserve(&c->bytes, n);
    if (rc)
        return rc;
    rc = sk_timeline_read(e->tl, c->lsn_a, c->bytes.data, n, end);
    if (rc == 0)
        c->bytes.len = n;
    return rc;
}

static int
h_wal(lb_http_request *req, void *arg)
{
    api_ctx c = {.sk = arg, .err = LB_JSON_ERROR_INIT};
    ids(req, &c, true);
    const char *from = lb_http_query(req, "from"), *to = lb_http_query(req, "to");
    if (!c.err.failed &&
        (!from || !to || lb_lsn_parse(from, &c.lsn_a) != 0 || lb_lsn_parse(to, &c.lsn_b) != 0 ||
         c.lsn_b < c.lsn_a || c.lsn_b - c.lsn_a > WAL_RANGE_MAX))
        lb_json_fail(&c.err, LB_EPARSE,
                     "query must have from=X/X and to=X/X, from <= to, at most %u bytes apart",
                     WAL_RANGE_MAX);
    int rc = c.err.failed ? 0 : sk_run_on_loop(c.sk, job_wal, &c);
    if (rc == 0 && !c.err.failed) {
        rc = lb_http_respond(req, 200, "application/octet-stream", c.bytes.data, c.bytes.len);
        lb_buf_free(&c.bytes);
        json_decref(c.body);
        return rc;
    }
    return finish(req, &c, rc);
}

/* The serving limit of a segment on timeline tli: committed WAL only, and
 * only up to where the term history moved off that timeline. The segment
 * is served whole, zero after the limit, and the response says where the
 * limit is (LB_WAL_VALID_BYTES_HEADER, wal.h): a limit set by the commit
 * LSN can be stale (this safekeeper just restarted, or is behind), so a
 * client asks the other safekeepers when it needs more; a limit set by a
 * timeline switch is final. */
static int
job_segment(sk_daemon *sk, void *arg)
{
    (void)sk;
    api_ctx *c = arg;
    sk_tl_entry *e = need(c);
    if (!e)
        return 0;
    const sk_acceptor_state *st = sk_timeline_state(e->tl);
    uint32_t tli;
    uint64_t segno;
    if (lb_wal_segment_parse(c->text, st->wal_seg_size, &tli, &segno) != 0)
        return lb_json_fail(&c->err, LB_EPARSE, "\"%.64s\" is not a WAL segment name", c->text);
    lb_lsn seg_start = segno * st->wal_seg_size;
    lb_lsn limit = sk_timeline_serve_lsn(e->tl);
    bool known_tli = tli == st->start_tli, switched = false;
    for (size_t i = 0; i < st->nhistory; i++) {
        if (st->history[i].tli == tli)
            known_tli = true;
        if (st->history[i].tli > tli && st->history[i].start_lsn <= limit) {
            limit = st->history[i].start_lsn; /* tli ends where a later one starts */
            switched = true;
        }
    }
    lb_lsn first = sk_timeline_start_lsn(e->tl);
    first -= first % st->wal_seg_size;
    if (!known_tli || limit <= seg_start || seg_start < first)
        return refuse(c, LB_ENOTFOUND, "segment %s is not available here", c->text);
    int rc = sk_timeline_segment_path(e->tl, tli, segno, c->path, sizeof(c->path));
    if (rc)
        return rc;
    c->serve_len = limit - seg_start < st->wal_seg_size ? limit - seg_start : st->wal_seg_size;
    c->serve_final = switched || c->serve_len == st->wal_seg_size;
    c->lsn_a = st->wal_seg_size;
    return 0;
}

typedef struct seg_stream {
    int fd;
    uint64_t serve_len, total;
} seg_stream;

static ssize_t
seg_produce(void *arg, uint64_t offset, char *buf, size_t cap)
{
    seg_stream *s = arg;
    if (offset >= s->total)
        return 0;
    size_t n = cap;
    if (n > s->total - offset)
        n = (size_t)(s->total - offset);
    if (offset >= s->serve_len) {
        memset(buf, 0, n);
        return (ssize_t)n;
    }
    if (n > s->serve_len - offset)
        n = (size_t)(s->serve_len - offset);
    ssize_t r = pread(s->fd, buf, n, (off_t)offset);
    if (r <= 0)
        return -EIO; /* removed or truncated under us: the client sees a short body */
    return r;
}

static void
seg_done(void *arg)
{
    seg_stream *s = arg;
    close(s->fd);
    free(s);
}

static int
h_segment(lb_http_request *req, void *arg)
{
    api_ctx c = {.sk = arg, .err = LB_JSON_ERROR_INIT};
    ids(req, &c, true);
    c.text = lb_http_param(req, "name");
    int rc = c.err.failed ? 0 : sk_run_on_loop(c.sk, job_segment, &c);
    if (rc || c.err.failed)
        return finish(req, &c, rc);
    int fd = open(c.path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        refuse(&c, LB_ENOTFOUND, "segment %s is not available here", c.text);
        return finish(req, &c, 0);
    }
    seg_stream *s = malloc(sizeof(*s));
    if (!s) {
        close(fd);
        return finish(req, &c, -ENOMEM);
    }
    *s = (seg_stream){fd, c.serve_len, c.lsn_a};
    lb_wal_valid valid = {.bytes = c.serve_len, .final = c.serve_final};
    char valid_bytes[21];
    const char *final;
    lb_wal_valid_format(&valid, (uint32_t)c.lsn_a, valid_bytes, &final);
    if (lb_http_add_header(req, LB_WAL_VALID_BYTES_HEADER, valid_bytes) != 0 ||
        (final && lb_http_add_header(req, LB_WAL_VALID_FINAL_HEADER, final) != 0)) {
        seg_done(s);
        return finish(req, &c, -ENOMEM);
    }
    return lb_http_respond_stream(req, 200, "application/octet-stream", (int64_t)s->total,
                                  seg_produce, seg_done, s);
}

static int
job_history(sk_daemon *sk, void *arg)
{
    (void)sk;
    api_ctx *c = arg;
    sk_tl_entry *e = need(c);
    if (!e)
        return 0;
    int rc = sk_timeline_history_file(e->tl, (uint32_t)c->num, &c->bytes);
    if (rc == LB_ENOTFOUND)
        return refuse(c, LB_ENOTFOUND, "history file %s is not available here", c->text);
    return rc;
}

static int
h_history(lb_http_request *req, void *arg)
{
    api_ctx c = {.sk = arg, .err = LB_JSON_ERROR_INIT};
    ids(req, &c, true);
    c.text = lb_http_param(req, "name");
    uint32_t tli = 0;
    if (!c.err.failed && lb_wal_history_parse(c.text, &tli) != 0)
        lb_json_fail(&c.err, LB_EPARSE, "\"%.64s\" is not a timeline history file name", c.text);
    c.num = tli;
    int rc = c.err.failed ? 0 : sk_run_on_loop(c.sk, job_history, &c);
    if (rc == 0 && !c.err.failed) {
        rc = lb_http_respond(req, 200, "text/plain", c.bytes.data, c.bytes.len);
        lb_buf_free(&c.bytes);
        return rc;
    }
    return finish(req, &c, rc);
}

/* ---- daemon status ---------------------------------------------------------------- */

static int
job_list(sk_daemon *sk, void *arg)
{
    api_ctx *c = arg;
    json_t *arr = json_array();
    for (int i = 0; i < sk->ntimelines; i++)
        json_array_append_new(arr, sk_timeline_status_json(sk->timelines[i].tl));
    c->reply = json_pack("{s:s, s:o}", "id", sk->conf.id, "timelines", arr);
    return 0;
}

static int
h_list(lb_http_request *req, void *arg)
{
    api_ctx c = {.sk = arg, .err = LB_JSON_ERROR_INIT};
    int rc = sk_run_on_loop(c.sk, job_list, &c);
    return finish(req, &c, rc);
}

int
sk_http_routes(sk_daemon *sk)
{
    /* Who may call what (management always may). */
    enum {
        MGMT = LB_AUTH_MANAGEMENT,
        CP = LB_AUTH_COMPUTE,
        PS = LB_AUTH_PAGESERVER,
        SK = LB_AUTH_SAFEKEEPER,
    };
    static const struct {
        const char *method, *pattern;
        lb_http_handler fn;
        unsigned roles;
    } routes[] = {
        {"GET", "/v1/status", h_list, MGMT},
        {"POST", "/v1/tenant/{tenant_id}/timeline", h_create, MGMT},
        {"GET", "/v1/tenant/{tenant_id}/timeline/{timeline_id}", h_status, CP | PS | SK},
        {"DELETE", "/v1/tenant/{tenant_id}/timeline/{timeline_id}", h_delete, MGMT},
        {"POST", "/v1/tenant/{tenant_id}/timeline/{timeline_id}/vote", h_vote, CP},
        {"POST", "/v1/tenant/{tenant_id}/timeline/{timeline_id}/accept", h_accept, CP},
        {"POST", "/v1/tenant/{tenant_id}/timeline/{timeline_id}/elected", h_elected, CP},
        {"POST", "/v1/tenant/{tenant_id}/timeline/{timeline_id}/consumer", h_consumer, PS},
        {"GET", "/v1/tenant/{tenant_id}/timeline/{timeline_id}/wal", h_wal, SK},
        {"GET", "/v1/tenant/{tenant_id}/timeline/{timeline_id}/segment/{name}", h_segment,
         CP | PS | SK},
        {"GET", "/v1/tenant/{tenant_id}/timeline/{timeline_id}/history/{name}", h_history,
         CP | PS | SK},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        lb_http_access access = {.roles = routes[i].roles};
        int rc = lb_http_server_route_access(sk->http, routes[i].method, routes[i].pattern,
                                             routes[i].fn, sk, &access);
        if (rc)
            return rc;
    }
    return 0;
}
