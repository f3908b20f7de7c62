/*
 * walproxy.c: GET /wal/{name} for a compute's restore_command; the order of
 * sources is explained in walproxy.h.
 *
 * A segment's answer says how much of it is WAL (wal.h: the rest is
 * zeros): the segment holding the end of committed WAL is cut there, and a
 * safekeeper that just restarted or is behind cuts it early. So a segment
 * is not taken from the first source that has it: sources are asked in
 * order until one's answer is whole, final, or covers the WAL the compute
 * needs (cc_wal_sources.need_lsn), and the best answer is kept. When none
 * covers, the round is asked again until short_wait_ms has passed (a
 * restarted safekeeper learns its peers' positions within a second), then
 * the fetch fails as unsure, never with zeros taken for WAL.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "errors.h"
#include "http_client.h"
#include "log.h"
#include "wal.h"
#include "walproxy.h"

typedef enum answer { FOUND, MISSING, UNREACHABLE } answer;

/* One fetch: its sources, and the best answer so far. */
typedef struct fetch {
    const cc_wal_sources *src;
    lb_http_client *http;
    const char *name;
    bool segment;
    uint64_t segno;
    lb_buf scratch; /* the answer being read */
    lb_buf *best;   /* the caller's out: the best answer */
    size_t best0;   /* out's length before the fetch */
    bool found;
    lb_wal_valid valid; /* of best */
    bool unsure;        /* some source could not be asked */
    char *from;
    size_t fromcap;
} fetch;

static bool
covers(const fetch *f)
{
    if (!f->found)
        return false;
    if (!f->segment)
        return true;
    return lb_wal_valid_complete(&f->valid, f->src->seg_size) ||
           lb_wal_valid_covers(&f->valid, f->segno, f->src->seg_size, f->src->need_lsn);
}

/* Ask url; keep its answer if it is better than the best so far. */
static answer
ask(fetch *f, const char *url)
{
    f->scratch.len = 0;
    lb_http_call call = {.method = "GET", .url = url, .response_body = &f->scratch};
    lb_http_result res = LB_HTTP_RESULT_INIT;
    int rc = lb_http_do(f->http, &call, &res);
    long status = res.status;
    lb_wal_valid valid = {.bytes = f->src->seg_size, .final = true};
    bool bad_valid = rc == 0 && status == 200 && f->segment &&
                     lb_wal_valid_parse(lb_http_result_header(&res, LB_WAL_VALID_BYTES_HEADER),
                                        lb_http_result_header(&res, LB_WAL_VALID_FINAL_HEADER),
                                        f->src->seg_size, &valid) != 0;
    lb_http_result_free(&res);
    if (rc == 0 && status == 200 && !bad_valid) {
        if (!f->found || lb_wal_valid_better(&valid, &f->valid)) {
            f->best->len = f->best0;
            if (lb_buf_append(f->best, f->scratch.data ? f->scratch.data : "", f->scratch.len) !=
                0) {
                f->best->len = f->best0;
                f->found = false;
                snprintf(f->from, f->fromcap, "%s: out of memory", url);
                f->unsure = true;
                return UNREACHABLE;
            }
            f->found = true;
            f->valid = valid;
            snprintf(f->from, f->fromcap, "%s", url);
        }
        if (f->segment && !covers(f))
            lb_info("short segment file=%s from=\"%s\" valid_bytes=%llu", f->name, url,
                    (unsigned long long)valid.bytes);
        return FOUND;
    }
    if (rc == 0 && status == 404)
        return MISSING;
    const char *why = rc          ? lb_http_client_error(f->http)
                      : bad_valid ? "malformed " LB_WAL_VALID_BYTES_HEADER " header"
                                  : "unexpected status";
    if (!f->found)
        snprintf(f->from, f->fromcap, "%s: %s", url, why);
    lb_warn("could not fetch WAL from \"%s\": %s", url, why);
    f->unsure = true;
    return UNREACHABLE;
}

/* One round over the sources, in the order of walproxy.h. */
static void
ask_sources(fetch *f, lb_wal_file_kind kind, uint32_t tli, const char *ps_url, char sk_url[][512])
{
    const cc_wal_sources *src = f->src;
    bool own = kind == LB_WAL_FILE_SEGMENT && tli > src->pg_tli;
    if (!own) {
        answer a = ask(f, ps_url);
        /* The pageserver's no for an ancestor's segment is final: it cuts
         * the ancestor's WAL at the branch point. */
        bool final_no = kind == LB_WAL_FILE_SEGMENT && src->has_ancestor && a == MISSING;
        for (int i = 0; !covers(f) && !final_no && i < src->nsafekeepers; i++)
            ask(f, sk_url[i]);
    } else {
        for (int i = 0; !covers(f) && i < src->nsafekeepers; i++)
            ask(f, sk_url[i]);
        if (!covers(f))
            ask(f, ps_url);
    }
}

int
cc_wal_fetch(const cc_wal_sources *src, const char *name, lb_buf *out, char *from, size_t fromcap)
{
    uint32_t tli = 0;
    uint64_t segno = 0;
    lb_wal_file_kind kind = lb_wal_file_parse(name, src->seg_size, &tli, &segno);
    from[0] = '\0';
    if (kind == LB_WAL_FILE_BAD)
        return LB_EPARSE;
    if (kind == LB_WAL_FILE_HISTORY && tli == 1)
        return LB_ENOTFOUND; /* the first timeline has no history; PostgreSQL asks anyway */
    lb_http_options opts = {.connect_timeout_ms = 3000, .timeout_ms = 120000, .max_attempts = 3};
    fetch f = {.src = src,
               .name = name,
               .segment = kind == LB_WAL_FILE_SEGMENT,
               .segno = segno,
               .scratch = LB_BUF_INIT,
               .best = out,
               .best0 = out->len,
               .from = from,
               .fromcap = fromcap};
    int rc = lb_http_client_new(&opts, &f.http);
    if (rc)
        return rc;
    lb_http_client_set_token(f.http, src->token);
    char ps_url[512], sk_url[SK_ELECT_MAX][512];
    snprintf(ps_url, sizeof(ps_url), "%s/v1/tenant/%s/timeline/%s/wal/%s", src->pageserver,
             src->tenant_id, src->timeline_id, name);
    for (int i = 0; i < src->nsafekeepers; i++)
        snprintf(sk_url[i], sizeof(sk_url[i]), "%s/v1/tenant/%s/timeline/%s/%s/%s",
                 src->safekeepers[i], src->tenant_id, src->timeline_id,
                 kind == LB_WAL_FILE_HISTORY ? "history" : "segment", name);

    int64_t deadline = lb_mono_ms() + src->short_wait_ms;
    for (;;) {
        ask_sources(&f, kind, tli, ps_url, sk_url);
        if (!f.found || covers(&f) || lb_mono_ms() >= deadline)
            break;
        /* Every answer is short of need_lsn: some source lags. Ask again. */
        struct timespec ts = {.tv_nsec = 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        f.unsure = false;
    }
    lb_http_client_free(f.http);
    lb_buf_free(&f.scratch);
    if (f.found && covers(&f))
        return 0;
    if (f.found) {
        char need[LB_LSN_STRLEN];
        char best[512];
        snprintf(best, sizeof(best), "%s", from);
        snprintf(from, fromcap,
                 "no source has WAL up to %s in %s (the most: %llu bytes, from \"%s\")",
                 lb_lsn_format(src->need_lsn, need), name, (unsigned long long)f.valid.bytes, best);
        out->len = f.best0;
        return LB_EHTTP;
    }
    return f.unsure ? LB_EHTTP : LB_ENOTFOUND;
}
