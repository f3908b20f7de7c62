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
 * others, and counts what it was asked. */
typedef struct fake {
    lb_http_server *s;
    const char *name;
    const char *has[8];
    int asked;
    pthread_mutex_t lock;
} fake;

static int
h_file(lb_http_request *req, void *arg)
{
    fake *f = arg;
    const char *file = lb_http_param(req, "name");
    pthread_mutex_lock(&f->lock);
    f->asked++;
    pthread_mutex_unlock(&f->lock);
    for (int i = 0; f->has[i]; i++)
        if (strcmp(f->has[i], file) == 0)
            return lb_http_respond(req, 200, "application/octet-stream", f->name, strlen(f->name));
    return lb_http_respond_error(req, 404, "no");
}

static void
fake_start(fake *f, const char *name)
{
    f->name = name;
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
