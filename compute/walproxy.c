/*
 * walproxy.c: GET /wal/{name} for a compute's restore_command; the order of
 * sources is explained in walproxy.h.
 */
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "http_client.h"
#include "log.h"
#include "wal.h"
#include "walproxy.h"

typedef enum answer { FOUND, MISSING, UNREACHABLE } answer;

static answer
ask(lb_http_client *http, const char *url, lb_buf *out, char *from, size_t fromcap)
{
    size_t len0 = out->len;
    lb_http_call call = {.method = "GET", .url = url, .response_body = out};
    lb_http_result res = LB_HTTP_RESULT_INIT;
    int rc = lb_http_do(http, &call, &res);
    long status = res.status;
    lb_http_result_free(&res);
    if (rc == 0 && status == 200) {
        snprintf(from, fromcap, "%s", url);
        return FOUND;
    }
    out->len = len0;
    if (rc == 0 && status == 404)
        return MISSING;
    snprintf(from, fromcap, "%s: %s", url, rc ? lb_http_client_error(http) : "unexpected status");
    lb_warn("could not fetch WAL from \"%s\": %s", url,
            rc ? lb_http_client_error(http) : "unexpected status");
    return UNREACHABLE;
}

int
cc_wal_fetch(const cc_wal_sources *src, const char *name, lb_buf *out, char *from, size_t fromcap)
{
    uint32_t tli = 0;
    lb_wal_file_kind kind = lb_wal_file_parse(name, src->seg_size, &tli, NULL);
    from[0] = '\0';
    if (kind == LB_WAL_FILE_BAD)
        return LB_EPARSE;
    if (kind == LB_WAL_FILE_HISTORY && tli == 1)
        return LB_ENOTFOUND; /* the first timeline has no history; PostgreSQL asks anyway */
    lb_http_options opts = {.connect_timeout_ms = 3000, .timeout_ms = 120000, .max_attempts = 3};
    lb_http_client *http;
    int rc = lb_http_client_new(&opts, &http);
    if (rc)
        return rc;
    lb_http_client_set_token(http, src->token);
    char ps_url[512], sk_url[SK_ELECT_MAX][512];
    snprintf(ps_url, sizeof(ps_url), "%s/v1/tenant/%s/timeline/%s/wal/%s", src->pageserver,
             src->tenant_id, src->timeline_id, name);
    for (int i = 0; i < src->nsafekeepers; i++)
        snprintf(sk_url[i], sizeof(sk_url[i]), "%s/v1/tenant/%s/timeline/%s/%s/%s",
                 src->safekeepers[i], src->tenant_id, src->timeline_id,
                 kind == LB_WAL_FILE_HISTORY ? "history" : "segment", name);

    bool unsure = false;
    answer a = MISSING;
    bool own = kind == LB_WAL_FILE_SEGMENT && tli > src->pg_tli;
    if (!own) {
        a = ask(http, ps_url, out, from, fromcap);
        unsure = a == UNREACHABLE;
        /* The pageserver's no for an ancestor's segment is final: it cuts
         * the ancestor's WAL at the branch point. */
        bool final_no = kind == LB_WAL_FILE_SEGMENT && src->has_ancestor && a == MISSING;
        for (int i = 0; a != FOUND && !final_no && i < src->nsafekeepers; i++) {
            a = ask(http, sk_url[i], out, from, fromcap);
            unsure |= a == UNREACHABLE;
        }
    } else {
        for (int i = 0; a != FOUND && i < src->nsafekeepers; i++) {
            a = ask(http, sk_url[i], out, from, fromcap);
            unsure |= a == UNREACHABLE;
        }
        if (a != FOUND) {
            a = ask(http, ps_url, out, from, fromcap);
            unsure |= a == UNREACHABLE;
        }
    }
    lb_http_client_free(http);
    if (a == FOUND)
        return 0;
    return unsure ? LB_EHTTP : LB_ENOTFOUND;
}
