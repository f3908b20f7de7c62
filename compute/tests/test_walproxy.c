/* test_walproxy.c: sources are asked in the
 * documented order (the pageserver's no is final for a branch's ancestor
 * WAL; the timeline's own WAL comes from the safekeepers first); an
 * unreachable source makes a miss "unsure", never a plain 404. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "http_server.h"
#include "testutil.h"
#include "walproxy.h"

/* A fake source: answers 200 with its name for the files it has, 404 for
 * others, and counts what it was asked. A segment's answer vouches for
 * valid bytes (growing by grow at each answer; -1: no header, as from
 * object storage), final if set; bad sends a malformed header. */
typedef struct fake {
    lb_http_server *s;
    const char *name;
    const char *has[8];
    int asked;
    long valid, grow;
    bool final, bad;
    pthread_mutex_t lock;
} fake;

static int
h_file(lb_http_request *req, void *arg)
{
    fake *f = arg;
    const char *file = lb_http_param(req, "name");
    pthread_mutex_lock(&f->lock);
    f->asked++;
    long valid = f->valid;
    f->valid += f->grow;
    pthread_mutex_unlock(&f->lock);
    for (int i = 0; f->has[i]; i++) {
        if (strcmp(f->has[i], file) != 0)
            continue;
        char v[32];
        snprintf(v, sizeof(v), "%ld", valid);
        if (f->bad)
            lb_http_add_header(req, "Lakebase-Valid-Bytes", "lots");
        else if (valid >= 0 && strlen(file) == 24)
            lb_http_add_header(req, "Lakebase-Valid-Bytes", v);
        if (f->final)
            lb_http_add_header(req, "Lakebase-Valid-Final", "true");
        return lb_http_respond(req, 200, "application/octet-stream", f->name, strlen(f->name));
    }
    return lb_http_respond_error(req, 404, "no");
}

static void
fake_start(fake *f, const char *name)
{
    f->name = name;
    if (!f->valid && !f->grow)
        f->valid = -1;
    pthread_mutex_init(&f->lock, NULL);
    lb_http_server_config c = {.port = 0, .threads = 1};
    assert_int_equal(lb_http_server_new(&c, &f->s), 0);
    assert_int_equal(
        lb_http_server_route(f->s, "GET", "/v1/tenant/{t}/timeline/{l}/wal/{name}", h_file, f), 0);
    assert_int_equal(
        lb_http_server_route(f->s, "GET", "/v1/tenant/{t}/timeline/{l}/segment/{name}", h_file, f),
        0);
    assert_int_equal(
        lb_http_server_route(f->s, "GET", "/v1/tenant/{t}/timeline/{l}/history/{name}", h_file, f),
        0);
    assert_int_equal(lb_http_server_start(f->s), 0);
}

static void
url(const fake *f, char *out, size_t cap)
{
    snprintf(out, cap, "http://127.0.0.1:%d", lb_http_server_port(f->s));
}

static int
fetch(const cc_wal_sources *src, const char *name, char *got, size_t cap)
{
    lb_buf b = LB_BUF_INIT;
    char from[600];
    int rc = cc_wal_fetch(src, name, &b, from, sizeof(from));
    snprintf(got, cap, "%.*s", (int)b.len, b.data ? b.data : "");
    lb_buf_free(&b);
    return rc;
}

static void
test_source_order(void **state)
{
    (void)state;
    fake ps = {
        .has = {"000000010000000000000001", "00000003.history", "000000030000000000000002", NULL}};
    fake sk0 = {.has = {"000000030000000000000002", "000000030000000000000003", "00000004.history",
                        "000000010000000000000001", NULL}};
    fake sk1 = {.has = {"000000030000000000000004", NULL}};
    fake_start(&ps, "ps");
    fake_start(&sk0, "sk0");
    fake_start(&sk1, "sk1");
    cc_wal_sources src = {.tenant_id = "t",
                          .timeline_id = "l",
                          .pg_tli = 2,
                          .has_ancestor = true,
                          .nsafekeepers = 2,
                          .seg_size = 16u << 20};
    url(&ps, src.pageserver, sizeof(src.pageserver));
    url(&sk0, src.safekeepers[0], sizeof(src.safekeepers[0]));
    url(&sk1, src.safekeepers[1], sizeof(src.safekeepers[1]));
    char got[64];

    /* Ancestor WAL (TLI <= pg_tli): the pageserver's answer, and its no is final. */
    assert_int_equal(fetch(&src, "000000010000000000000001", got, sizeof(got)), 0);
    assert_string_equal(got, "ps");
    sk0.asked = 0;
    assert_int_equal(fetch(&src, "000000020000000000000009", got, sizeof(got)), LB_ENOTFOUND);
    assert_int_equal(sk0.asked, 0);
    /* Own WAL: the safekeepers first, in order; then the pageserver. */
    assert_int_equal(fetch(&src, "000000030000000000000002", got, sizeof(got)), 0);
    assert_string_equal(got, "sk0");
    assert_int_equal(fetch(&src, "000000030000000000000004", got, sizeof(got)), 0);
    assert_string_equal(got, "sk1");
    /* History: the pageserver first (it completes a branch's), then the safekeepers. */
    assert_int_equal(fetch(&src, "00000003.history", got, sizeof(got)), 0);
    assert_string_equal(got, "ps");
    assert_int_equal(fetch(&src, "00000004.history", got, sizeof(got)), 0);
    assert_string_equal(got, "sk0");
    assert_int_equal(fetch(&src, "00000009.history", got, sizeof(got)), LB_ENOTFOUND);
    assert_int_equal(fetch(&src, "00000001.history", got, sizeof(got)), LB_ENOTFOUND);
    assert_int_equal(fetch(&src, "bad", got, sizeof(got)), LB_EPARSE);

    /* A root timeline: the pageserver's no is not final. */
    src.has_ancestor = false;
    src.pg_tli = 1;
    assert_int_equal(fetch(&src, "000000030000000000000003", got, sizeof(got)), 0);
    assert_string_equal(got, "sk0");

    /* A source that cannot be reached: a miss is unsure, a hit elsewhere is fine. */
    lb_http_server_stop(sk1.s);
    assert_int_equal(fetch(&src, "000000030000000000000007", got, sizeof(got)), LB_EHTTP);
    assert_int_equal(fetch(&src, "000000030000000000000003", got, sizeof(got)), 0);
    lb_http_server_stop(ps.s);
    assert_int_equal(fetch(&src, "00000004.history", got, sizeof(got)), 0);
    assert_string_equal(got, "sk0");
    assert_int_equal(fetch(&src, "00000007.history", got, sizeof(got)), LB_EHTTP);

    lb_http_server_free(ps.s);
    lb_http_server_free(sk0.s);
    lb_http_server_free(sk1.s);
}

/* A segment cut short (a safekeeper that restarted with a stale commit
 * LSN, or lags) is not taken when the compute needs more: the next source
 * is asked, the round is asked again while one lags, and a segment that no
 * source covers is an error to retry, never zeros served as WAL. */
static void
test_short_segments(void **state)
{
    (void)state;
    const char *seg = "000000030000000000000002"; /* starts at 2 * 16 MiB */
    const lb_lsn start = 2ull << 24;
    fake ps = {.has = {NULL}};
    fake sk0 = {.has = {seg, NULL}, .valid = 100};
    fake sk1 = {.has = {seg, NULL}, .valid = 200};
    fake sk2 = {.has = {seg, NULL}, .valid = 150};
    fake_start(&ps, "ps");
    fake_start(&sk0, "sk0");
    fake_start(&sk1, "sk1");
    fake_start(&sk2, "sk2");
    cc_wal_sources src = {.tenant_id = "t",
                          .timeline_id = "l",
                          .pg_tli = 1,
                          .nsafekeepers = 3,
                          .seg_size = 16u << 20,
                          .short_wait_ms = 300};
    url(&ps, src.pageserver, sizeof(src.pageserver));
    url(&sk0, src.safekeepers[0], sizeof(src.safekeepers[0]));
    url(&sk1, src.safekeepers[1], sizeof(src.safekeepers[1]));
    url(&sk2, src.safekeepers[2], sizeof(src.safekeepers[2]));
    char got[64];

    /* Nothing needed (a replica streams the rest): the first answer. */
    assert_int_equal(fetch(&src, seg, got, sizeof(got)), 0);
    assert_string_equal(got, "sk0");
    /* sk0 lags behind what is needed: sk1 covers it, sk2 is not asked. */
    src.need_lsn = start + 180;
    sk2.asked = 0;
    assert_int_equal(fetch(&src, seg, got, sizeof(got)), 0);
    assert_string_equal(got, "sk1");
    assert_int_equal(sk2.asked, 0);
    /* No source covers it: every one is asked, again, then an error that
     * is not "not found" (restore must not end there), and nothing served. */
    src.need_lsn = start + 1000;
    sk0.asked = sk1.asked = sk2.asked = ps.asked = 0;
    lb_buf b = LB_BUF_INIT;
    char from[600];
    assert_int_equal(cc_wal_fetch(&src, seg, &b, from, sizeof(from)), LB_EHTTP);
    assert_int_equal(b.len, 0);
    assert_non_null(strstr(from, "no source has WAL up to 0/20003E8"));
    assert_non_null(strstr(from, "200 bytes"));
    assert_true(sk2.asked >= 2 && ps.asked >= 2);
    lb_buf_free(&b);
    /* A source that catches up while the compute waits: taken then. */
    sk0.valid = 100;
    sk0.grow = 1000;
    assert_int_equal(fetch(&src, seg, got, sizeof(got)), 0);
    assert_string_equal(got, "sk0");
    sk0.grow = 0;
    /* A cut that is final (its timeline ends there) covers. */
    sk0.valid = 100;
    sk0.final = true;
    sk1.asked = 0;
    assert_int_equal(fetch(&src, seg, got, sizeof(got)), 0);
    assert_string_equal(got, "sk0");
    assert_int_equal(sk1.asked, 0);
    sk0.final = false;
    /* A whole segment, and an answer without the header (whole). */
    sk0.valid = 16 << 20;
    assert_int_equal(fetch(&src, seg, got, sizeof(got)), 0);
    assert_string_equal(got, "sk0");
    sk0.valid = -1;
    assert_int_equal(fetch(&src, seg, got, sizeof(got)), 0);
    assert_string_equal(got, "sk0");
    /* A malformed header is not taken for WAL. */
    sk0.bad = true;
    src.need_lsn = start + 180;
    assert_int_equal(fetch(&src, seg, got, sizeof(got)), 0);
    assert_string_equal(got, "sk1");

    lb_http_server_free(ps.s);
    lb_http_server_free(sk0.s);
    lb_http_server_free(sk1.s);
    lb_http_server_free(sk2.s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_order),
        cmocka_unit_test(test_short_segments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
