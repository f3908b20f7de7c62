/* test_basebackup.c: compute-ctl unpacks the pageserver's basebackup into
 * the data directory and nothing else: an archive that is not what the
 * pageserver makes (a symbolic link entry, a path leaving the directory)
 * is refused, and no file outside the data directory is written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "fileio.h"
#include "http_server.h"
#include "compute/pgproc.h" /* not common/pgproc.h, which it builds on */
#include "tar.h"

typedef struct fake_ps {
    lb_http_server *s;
    lb_buf tar;
} fake_ps;

static int
h_basebackup(lb_http_request *req, void *arg)
{
    fake_ps *f = arg;
    return lb_http_respond(req, 200, "application/x-tar", f->tar.data, f->tar.len);
}

static int
sink(void *arg, const void *bytes, size_t n)
{
    return lb_buf_append(arg, bytes, n);
}

static void
fake_start(fake_ps *f)
{
    lb_http_server_config c = {.port = 0, .threads = 1};
    assert_int_equal(lb_http_server_new(&c, &f->s), 0);
    assert_int_equal(lb_http_server_route(f->s, "GET", "/v1/tenant/{t}/timeline/{l}/basebackup",
                                          h_basebackup, f),
                     0);
    assert_int_equal(lb_http_server_start(f->s), 0);
}

typedef struct fixture {
    char root[64];
    char outside[PATH_MAX];
    cc_spec spec;
    fake_ps ps;
    lb_tar_writer w;
} fixture;

static void
setup(fixture *fx)
{
    memset(fx, 0, sizeof(*fx));
    strcpy(fx->root, "/tmp/test_basebackup_XXXXXX");
    assert_non_null(mkdtemp(fx->root));
    chmod(fx->root, 0755);
    snprintf(fx->outside, sizeof(fx->outside), "%s/outside", fx->root);
    assert_int_equal(mkdir(fx->outside, 0755), 0);
    snprintf(fx->spec.data_dir, sizeof(fx->spec.data_dir), "%s/pgdata", fx->root);
    strcpy(fx->spec.tenant_id, "t");
    strcpy(fx->spec.timeline_id, "l");
    strcpy(fx->spec.pg_user, "postgres");
    fake_start(&fx->ps);
    snprintf(fx->spec.pageserver, sizeof(fx->spec.pageserver), "http://127.0.0.1:%d",
             lb_http_server_port(fx->ps.s));
    lb_tar_writer_init(&fx->w, sink, &fx->ps.tar);
}

static void
teardown(fixture *fx)
{
    lb_http_server_free(fx->ps.s);
    lb_buf_free(&fx->ps.tar);
    lb_rm_rf(fx->root);
}

static void
test_unpacks_files_and_dirs(void **state)
{
    (void)state;
    fixture fx;
    setup(&fx);
    assert_int_equal(lb_tar_add_dir(&fx.w, "global", 0700, 0), 0);
    assert_int_equal(lb_tar_add_file(&fx.w, "PG_VERSION", "15\n", 3, 0600, 0), 0);
    assert_int_equal(lb_tar_add_file(&fx.w, "global/pg_control", "ctl", 3, 0600, 0), 0);
    assert_int_equal(lb_tar_finish(&fx.w), 0);
    lb_lsn snap;
    char err[512] = "";
    int rc = cc_basebackup(&fx.spec, 0, &snap, err, sizeof(err));
    if (rc)
        fail_msg("%s", err);
    char path[PATH_MAX + 32];
    lb_buf got = LB_BUF_INIT;
    snprintf(path, sizeof(path), "%s/global/pg_control", fx.spec.data_dir);
    assert_int_equal(lb_read_file(path, &got), 0);
    assert_int_equal(got.len, 3);
    lb_buf_free(&got);
    teardown(&fx);
}

static void
test_refuses_symlink_entries(void **state)
{
    (void)state;
    fixture fx;
    setup(&fx);
    /* A link to a directory outside, then a file through it. */
    assert_int_equal(lb_tar_add_file(&fx.w, "PG_VERSION", "15\n", 3, 0600, 0), 0);
    assert_int_equal(lb_tar_add_symlink(&fx.w, "pg_wal", fx.outside, 0), 0);
    assert_int_equal(lb_tar_add_file(&fx.w, "pg_wal/pwned", "x", 1, 0600, 0), 0);
    assert_int_equal(lb_tar_finish(&fx.w), 0);
    lb_lsn snap;
    char err[512] = "";
    assert_int_not_equal(cc_basebackup(&fx.spec, 0, &snap, err, sizeof(err)), 0);
    if (!strstr(err, "entry \"pg_wal\" is a symbolic link"))
        fail_msg("error does not name the link: %s", err);
    char pwned[PATH_MAX + 16];
    snprintf(pwned, sizeof(pwned), "%s/pwned", fx.outside);
    assert_int_not_equal(access(pwned, F_OK), 0);
    teardown(&fx);
}

static void
test_refuses_paths_leaving_the_directory(void **state)
{
    (void)state;
    /* The writer refuses such names, so the header is made by hand: a
     * ustar header for "../outside/pwned", one byte of data. */
    fixture fx;
    setup(&fx);
    unsigned char h[512];
    memset(h, 0, sizeof(h));
    snprintf((char *)h, 100, "../outside/pwned");
    memcpy(h + 100, "0000600", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    memcpy(h + 124, "00000000001", 12);
    memcpy(h + 136, "00000000000", 12);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    lb_buf_append(&fx.ps.tar, h, sizeof(h));
    unsigned char data[512] = {'x'};
    lb_buf_append(&fx.ps.tar, data, sizeof(data));
    unsigned char zeros[1024] = {0};
    lb_buf_append(&fx.ps.tar, zeros, sizeof(zeros));
    lb_lsn snap;
    char err[512] = "";
    assert_int_not_equal(cc_basebackup(&fx.spec, 0, &snap, err, sizeof(err)), 0);
    char pwned[PATH_MAX + 16];
    snprintf(pwned, sizeof(pwned), "%s/pwned", fx.outside);
    assert_int_not_equal(access(pwned, F_OK), 0);
    teardown(&fx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unpacks_files_and_dirs),
        cmocka_unit_test(test_refuses_symlink_entries),
        cmocka_unit_test(test_refuses_paths_leaving_the_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
