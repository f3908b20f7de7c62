/*
 * election.c: the proposer (see election.h).
 *
 * Safety comes from the acceptors, not from here: a safekeeper grants a
 * term only once, persists it before answering, refuses older terms, and
 * drops an older compute's stream. The proposer's job is liveness and
 * choosing the right donor: the highest (last log term, end LSN) among a
 * majority always holds every commit acknowledged in earlier terms,
 * because such a commit was on a majority, and any two majorities meet.
 */
#include "election.h"
#include "auth.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "errors.h"
#include "http_client.h"
#include "log.h"
#include "startup.h"

#define MAX_ROUNDS 5

typedef struct sk_view {
    bool ok;
    uint64_t term, last_log_term;
    lb_lsn end_lsn;
    bool granted;
    uint64_t system_id;
    uint32_t seg_size, start_tli;
    sk_term_entry history[SK_MAX_TERM_HISTORY];
    size_t nhistory;
} sk_view;

/* POST (or GET when body is NULL) and parse the JSON answer. */
static int
call(lb_http_client *http, const char *method, const char *url, json_t *body, json_t **reply,
     long *status)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    const char *hdr[] = {"Content-Type: application/json"};
    lb_buf out = LB_BUF_INIT;
    lb_http_call c = {.method = method,
                      .url = url,
                      .headers = hdr,
                      .nheaders = text ? 1 : 0,
                      .body = text,
                      .body_len = text ? strlen(text) : 0,
                      .response_body = &out,
                      .max_response = 1 << 20,       /* a status, a vote: never large */
                      .retry_non_idempotent = true}; /* vote/accept/elected are idempotent */
    lb_http_result res = LB_HTTP_RESULT_INIT;
    int rc = lb_http_do(http, &c, &res);
    free(text);
    *status = res.status;
    *reply = NULL;
    if (rc == 0) {
        const lb_buf *b = res.status == 200 ? &out : &res.error_body;
        json_error_t e;
        *reply = json_loadb(b->data ? b->data : "", b->len, 0, &e);
    }
    lb_buf_free(&out);
    lb_http_result_free(&res);
    return rc;
}

static int
parse_view(json_t *j, sk_view *v)
{
    char msg[200];
    json_t *term = json_object_get(j, "term"), *llt = json_object_get(j, "last_log_term");
    const char *end = json_string_value(json_object_get(j, "end_lsn"));
    const char *sysid = json_string_value(json_object_get(j, "system_id"));
    json_t *seg = json_object_get(j, "wal_seg_size"), *stli = json_object_get(j, "start_tli");
    if (!json_is_integer(term) || !json_is_integer(llt) || !end || !sysid ||
        !json_is_integer(seg) || !json_is_integer(stli) || lb_lsn_parse(end, &v->end_lsn) != 0)
        return LB_EPARSE;
    if (sk_term_history_from_json(json_object_get(j, "term_history"), v->history,
                                  SK_MAX_TERM_HISTORY, &v->nhistory, msg, sizeof(msg)) != 0)
        return LB_EPARSE;
    v->term = (uint64_t)json_integer_value(term);
    v->last_log_term = (uint64_t)json_integer_value(llt);
    v->system_id = strtoull(sysid, NULL, 10);
    v->seg_size = (uint32_t)json_integer_value(seg);
    v->start_tli = (uint32_t)json_integer_value(stli);
    v->granted = json_is_true(json_object_get(j, "granted"));
    v->ok = true;
    return 0;
}

static void
tl_url(char *out, size_t cap, const sk_elect_params *p, int i, const char *suffix)
{
    snprintf(out, cap, "%s/v1/tenant/%s/timeline/%s%s", p->urls[i], p->tenant_id, p->timeline_id,
             suffix);
}

int
sk_elect(const sk_elect_params *p, sk_elect_result *out, char *err, size_t errcap)
{
    if (p->n < 1 || p->n > SK_ELECT_MAX || !sk_id_valid(p->tenant_id) ||
        !sk_id_valid(p->timeline_id)) {
        snprintf(err, errcap, "need 1 to %d safekeepers and valid tenant and timeline ids",
                 SK_ELECT_MAX);
        return -EINVAL;
    }
    memset(out, 0, sizeof(*out));
    lb_http_options opts = {.connect_timeout_ms = 1000,
                            .timeout_ms = p->timeout_ms ? p->timeout_ms : 5000,
                            .max_attempts = 2};
    lb_http_client *http;
    if (lb_http_client_new(&opts, &http) != 0) {
        snprintf(err, errcap, "could not create an HTTP client");
        return -ENOMEM;
    }
    lb_http_client_set_token(http, p->token);
    sk_view *views = calloc((size_t)p->n, sizeof(*views));
    int need = p->n / 2 + 1;
    int rc = LB_ECONFLICT;
    char url[512];
    json_t *reply;
    long status;

    /* 1. Read states: the highest term anyone has promised. */
    uint64_t max_term = 0;
    int alive = 0;
    for (int i = 0; i < p->n; i++) {
        tl_url(url, sizeof(url), p, i, "");
        if (call(http, "GET", url, NULL, &reply, &status) == 0 && status == 200 &&
            parse_view(reply, &views[i]) == 0) {
            alive++;
            if (views[i].term > max_term)
                max_term = views[i].term;
        }
        json_decref(reply);
    }
    if (alive < need) {
        snprintf(err, errcap, "only %d of %d safekeepers answered, %d needed", alive, p->n, need);
        goto out;
    }

    /* 2. Votes, retrying above any newer term we meet. */
    uint64_t term = max_term + 1;
    int granted = 0;
    for (int round = 0; round < MAX_ROUNDS && granted < need; round++) {
        granted = 0;
        uint64_t seen = term;
        for (int i = 0; i < p->n; i++) {
            views[i].granted = false;
            tl_url(url, sizeof(url), p, i, "/vote");
            json_t *body = json_pack("{s:I}", "term", (json_int_t)term);
            if (call(http, "POST", url, body, &reply, &status) == 0 && status == 200 &&
                parse_view(reply, &views[i]) == 0) {
                if (views[i].granted)
                    granted++;
                else if (views[i].term > seen)
                    seen = views[i].term;
            }
            json_decref(body);
            json_decref(reply);
        }
        if (granted < need)
            term = seen + 1;
    }
    if (granted < need) {
        snprintf(err, errcap, "term %" PRIu64 " got %d of %d votes, %d needed", term, granted, p->n,
                 need);
        goto out;
    }

    /* 3. The donor: highest (last log term, end of WAL) among the voters. */
    int donor = -1;
    for (int i = 0; i < p->n; i++) {
        if (!views[i].granted || views[i].term != term)
            continue;
        if (donor < 0 || sk_donor_cmp(views[i].last_log_term, views[i].end_lsn,
                                      views[donor].last_log_term, views[donor].end_lsn) > 0)
            donor = i;
    }
    const sk_view *d = &views[donor];
    out->term = term;
    out->donor = donor;
    out->voters = granted;
    out->start_lsn = d->end_lsn;
    out->system_id = d->system_id;
    out->wal_seg_size = d->seg_size;
    uint32_t max_tli = d->start_tli;
    out->nhistory = 0;
    for (size_t i = 0; i < d->nhistory && d->history[i].start_lsn <= d->end_lsn; i++) {
        /* A term that wrote no WAL leaves no trace: its compute may never
         * have promoted, so its PostgreSQL timeline id is free again. */
        lb_lsn end = i + 1 < d->nhistory ? d->history[i + 1].start_lsn : d->end_lsn;
        if (end == d->history[i].start_lsn)
            continue;
        out->history[out->nhistory++] = d->history[i];
        if (d->history[i].tli > max_tli)
            max_tli = d->history[i].tli;
    }
    if (out->nhistory == SK_MAX_TERM_HISTORY) {
        snprintf(err, errcap, "term history is full");
        goto out;
    }
    out->prev_tli = out->nhistory ? out->history[out->nhistory - 1].tli : d->start_tli;
    out->tli = max_tli + 1;
    out->history[out->nhistory++] = (sk_term_entry){term, d->end_lsn, out->tli};

    /* 4. Every voter adopts the donor's log up to E. */
    snprintf(out->donor_url, sizeof(out->donor_url), "%s", p->urls[donor]);
    const char *donor_url = out->donor_url;
    json_t *hist = sk_term_history_to_json(out->history, out->nhistory);
    char e[LB_LSN_STRLEN];
    for (int i = 0; i < p->n; i++) {
        if (!views[i].granted || views[i].term != term)
            continue;
        tl_url(url, sizeof(url), p, i, "/accept");
        json_t *body =
            json_pack("{s:I, s:O, s:s, s:s}", "term", (json_int_t)term, "term_history", hist,
                      "end_lsn", lb_lsn_format(out->start_lsn, e), "donor", donor_url);
        if (call(http, "POST", url, body, &reply, &status) == 0 && status == 200) {
            out->accepted[i] = 1;
            out->acceptors++;
        } else {
            const char *why = json_string_value(json_object_get(reply, "error"));
            lb_warn("safekeeper \"%s\" did not accept term %" PRIu64 ": %s", p->urls[i], term,
                    why ? why : lb_http_client_error(http));
        }
        json_decref(body);
        json_decref(reply);
    }
    json_decref(hist);
    if (out->acceptors < need) {
        snprintf(err, errcap, "term %" PRIu64 " accepted by %d of %d safekeepers, %d needed", term,
                 out->acceptors, p->n, need);
        goto out;
    }
    /* The term is established: a majority holds WAL to E. Let every
     * acceptor serve WAL up to E to the compute that restores now. */
    for (int i = 0; i < p->n; i++) {
        if (!out->accepted[i])
            continue;
        tl_url(url, sizeof(url), p, i, "/elected");
        json_t *body = json_pack("{s:I}", "term", (json_int_t)term);
        call(http, "POST", url, body, &reply, &status);
        json_decref(body);
        json_decref(reply);
    }
    rc = 0;
    lb_info("elected term=%" PRIu64 " start_lsn=%X/%X tli=%u donor=%s voters=%d acceptors=%d", term,
            LB_LSN_ARGS(out->start_lsn), out->tli, p->urls[donor], granted, out->acceptors);
out:
    free(views);
    lb_http_client_free(http);
    return rc;
}

static int
post(lb_http_client *http, const char *url, json_t *body, long *status)
{
    json_t *reply;
    int rc = call(http, "POST", url, body, &reply, status);
    json_decref(body);
    json_decref(reply);
    return rc;
}

int
sk_announce(const sk_elect_params *p, const sk_elect_result *r, const char *compute, int *acked)
{
    lb_http_options opts = {.connect_timeout_ms = 1000,
                            .timeout_ms = p->timeout_ms ? p->timeout_ms : 5000,
                            .max_attempts = 2};
    lb_http_client *http;
    if (lb_http_client_new(&opts, &http) != 0)
        return -ENOMEM;
    lb_http_client_set_token(http, p->token);
    *acked = 0;
    char e[LB_LSN_STRLEN];
    lb_lsn_format(r->start_lsn, e);
    for (int i = 0; i < p->n; i++) {
        char url[512];
        long status = 0;
        tl_url(url, sizeof(url), p, i, "/elected");
        if (post(http, url,
                 json_pack("{s:I, s:s}", "term", (json_int_t)r->term, "compute", compute),
                 &status) != 0)
            continue; /* down: it joins the term on a later announce */
        if (status == 409) {
            /* It missed the election: bring it into the term. */
            tl_url(url, sizeof(url), p, i, "/vote");
            post(http, url, json_pack("{s:I}", "term", (json_int_t)r->term), &status);
            tl_url(url, sizeof(url), p, i, "/accept");
            post(http, url,
                 json_pack("{s:I, s:o, s:s, s:s}", "term", (json_int_t)r->term, "term_history",
                           sk_term_history_to_json(r->history, r->nhistory), "end_lsn", e, "donor",
                           r->donor_url),
                 &status);
            if (status != 200) {
                lb_warn("safekeeper \"%s\" could not join term %" PRIu64, p->urls[i], r->term);
                continue;
            }
            tl_url(url, sizeof(url), p, i, "/elected");
            post(http, url,
                 json_pack("{s:I, s:s}", "term", (json_int_t)r->term, "compute", compute), &status);
        }
        if (status == 200)
            (*acked)++;
    }
    lb_http_client_free(http);
    return 0;
}

json_t *
sk_elect_result_to_json(const sk_elect_params *p, const sk_elect_result *r)
{
    (void)p;
    char s[LB_LSN_STRLEN], sysid[24];
    snprintf(sysid, sizeof(sysid), "%" PRIu64, r->system_id);
    return json_pack("{s:I, s:s, s:I, s:I, s:s, s:I, s:s, s:i, s:i, s:o}", "term",
                     (json_int_t)r->term, "start_lsn", lb_lsn_format(r->start_lsn, s), "tli",
                     (json_int_t)r->tli, "prev_tli", (json_int_t)r->prev_tli, "donor", r->donor_url,
                     "wal_seg_size", (json_int_t)r->wal_seg_size, "system_id", sysid, "voters",
                     r->voters, "acceptors", r->acceptors, "term_history",
                     sk_term_history_to_json(r->history, r->nhistory));
}

int
sk_elect_result_from_json(const json_t *j, sk_elect_result *r, char *err, size_t cap)
{
    json_int_t term = 0, tli = 0;
    const char *start = NULL, *donor = NULL;
    memset(r, 0, sizeof(*r));
    if (json_unpack((json_t *)j, "{s:I, s:s, s:I, s:s}", "term", &term, "start_lsn", &start, "tli",
                    &tli, "donor", &donor) != 0 ||
        term <= 0 || lb_lsn_parse(start, &r->start_lsn) != 0 ||
        strlen(donor) >= sizeof(r->donor_url)) {
        snprintf(err, cap, "the election must have term, start_lsn, tli, donor, term_history");
        return LB_EPARSE;
    }
    r->term = (uint64_t)term;
    r->tli = (uint32_t)tli;
    strcpy(r->donor_url, donor);
    return sk_term_history_from_json(json_object_get(j, "term_history"), r->history,
                                     SK_MAX_TERM_HISTORY, &r->nhistory, err, cap);
}

/* ---- commands ------------------------------------------------------------------ */

typedef struct elect_conf {
    char *tenant;
    char *timeline;
    lb_config_list safekeepers;
    char *compute;
    char *election;
    char *token_file;
    int64_t timeout_ms;
} elect_conf;

static const lb_config_setting elect_settings[] = {
    LB_SETTING_REQUIRED("tenant", LB_CONFIG_STRING, elect_conf, tenant, "tenant id"),
    LB_SETTING_REQUIRED("timeline", LB_CONFIG_STRING, elect_conf, timeline, "timeline id"),
    LB_SETTING_REQUIRED("safekeepers", LB_CONFIG_LIST, elect_conf, safekeepers,
                        "safekeepers' HTTP URLs, comma-separated"),
    LB_SETTING("compute", LB_CONFIG_STRING, elect_conf, compute, NULL,
               "announce: conninfo of the promoted compute"),
    LB_SETTING("election", LB_CONFIG_STRING, elect_conf, election, NULL,
               "announce: the JSON that `safekeeper elect` printed"),
    LB_SETTING("timeout", LB_CONFIG_DURATION, elect_conf, timeout_ms, "5s", "per-request timeout"),
    LB_SETTING("token_file", LB_CONFIG_STRING, elect_conf, token_file, NULL,
               "file with the token to send (a compute token of this timeline)"),
    LB_CONFIG_END,
};

int
sk_elect_main(int argc, char **argv)
{
    elect_conf c;
    lb_config_result res;
    memset(&c, 0, sizeof(c));
    const lb_startup_spec start = {.program = "safekeeper elect",
                                   .usage = "[announce] [options]",
                                   .settings = elect_settings,
                                   .conf = &c,
                                   .max_positional = 1,
                                   .level = LB_LOG_WARN};
    int rc = lb_startup(&start, argc, argv, &res);
    if (rc >= 0)
        return rc;
    bool announce = res.npositional == 1 && strcmp(res.positional[0], "announce") == 0;
    if (res.npositional == 1 && !announce) {
        fprintf(stderr, "safekeeper elect: unexpected argument \"%s\"\n", res.positional[0]);
        lb_config_result_free(&res);
        lb_config_free(elect_settings, &c);
        return LB_STARTUP_EXIT_USAGE;
    }
    lb_config_result_free(&res);
    sk_elect_params p = {
        .tenant_id = c.tenant, .timeline_id = c.timeline, .timeout_ms = c.timeout_ms};
    for (size_t i = 0; i < c.safekeepers.count && p.n < SK_ELECT_MAX; i++)
        p.urls[p.n++] = c.safekeepers.items[i];
    lb_auth_token *token = NULL;
    if (c.token_file && lb_auth_token_load(c.token_file, &token) != 0) {
        fprintf(stderr, "safekeeper elect: could not read a token from \"%s\"\n", c.token_file);
        lb_config_free(elect_settings, &c);
        return 2;
    }
    p.token = token;
    int status = 0;
    if (announce) {
        int acked = 0;
        static sk_elect_result r;
        char err[300] = "";
        json_error_t je;
        json_t *j = c.election ? json_loads(c.election, 0, &je) : NULL;
        if (!c.compute || !j || sk_elect_result_from_json(j, &r, err, sizeof(err)) != 0) {
            fprintf(stderr,
                    "safekeeper elect announce: --compute and a valid --election are "
                    "required%s%s\n",
                    err[0] ? ": " : "", err);
            status = 2;
        } else {
            sk_announce(&p, &r, c.compute, &acked);
            printf("{\"term\": %" PRIu64 ", \"acked\": %d}\n", r.term, acked);
            status = acked >= p.n / 2 + 1 ? 0 : 1;
        }
        json_decref(j);
    } else {
        static sk_elect_result r;
        char err[300] = "";
        rc = sk_elect(&p, &r, err, sizeof(err));
        if (rc) {
            fprintf(stderr, "safekeeper elect: %s\n", err);
            status = 1;
        } else {
            json_t *j = sk_elect_result_to_json(&p, &r);
            char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
            printf("%s\n", text);
            free(text);
            json_decref(j);
        }
    }
    lb_auth_token_free(token);
    lb_config_free(elect_settings, &c);
    return status;
}
