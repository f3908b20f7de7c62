/* test_pgauth.c: SCRAM verifiers as PostgreSQL stores them; password files
 * refused when empty, unreadable, too long or not printable ASCII; the
 * pg_hba.conf that keeps the superuser off TCP; the roles' SQL; and the log
 * lines that say a synchronous-replication wait was cancelled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compute.h"
#include "errors.h"
#include "pgauth.h"

static void
test_scram_verifier(void **state)
{
    (void)state;
    /* Computed independently (Python hashlib: PBKDF2-HMAC-SHA-256, RFC 5802). */
    unsigned char salt[16];
    for (int i = 0; i < 16; i++)
        salt[i] = (unsigned char)i;
    char v[CC_SCRAM_VERIFIER_MAX];
    assert_int_equal(cc_scram_verifier("pencil", salt, sizeof(salt), v, sizeof(v)), 0);
    assert_string_equal(v, "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$"
                           "zHCdol2044/ZyWzPLi7oxApCkamKw9Z+E4U/QApd/5Y=:"
                           "dd5peBOitVnLNFu7VmwP+HiDaaw4OUCv396eVCWhYiE=");
    /* A random salt: two verifiers of one password differ. */
    char a[CC_SCRAM_VERIFIER_MAX], b[CC_SCRAM_VERIFIER_MAX];
    assert_int_equal(cc_scram_verifier("pencil", NULL, 0, a, sizeof(a)), 0);
    assert_int_equal(cc_scram_verifier("pencil", NULL, 0, b, sizeof(b)), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(strncmp(a, "SCRAM-SHA-256$4096:", 19), 0);
    /* Too small a buffer is an error, not a truncated verifier. */
    assert_int_equal(cc_scram_verifier("pencil", salt, sizeof(salt), v, 40), -EIO);
}

static char *
write_tmp(const char *content, size_t n)
{
    static char path[64];
    strcpy(path, "/tmp/test_pgauth_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, n), (ssize_t)n);
    close(fd);
    return path;
}

static void
expect_secret_refused(const char *content, size_t n, const char *message)
{
    char *path = write_tmp(content, n);
    char out[CC_SECRET_MAX], err[512];
    int rc = cc_secret_read(path, out, sizeof(out), err, sizeof(err));
    unlink(path);
    if (rc == 0)
        fail_msg("accepted a password file holding \"%.*s\"", (int)n, content);
    if (!strstr(err, message))
        fail_msg("error \"%s\" does not say \"%s\"", err, message);
}

static void
test_secret_read(void **state)
{
    (void)state;
    char out[CC_SECRET_MAX], err[512];
    char *path = write_tmp("s3cret-Pass_word\nsecond line\n", 29);
    assert_int_equal(cc_secret_read(path, out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "s3cret-Pass_word");
    unlink(path);
    path = write_tmp("no-newline", 10);
    assert_int_equal(cc_secret_read(path, out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "no-newline");
    unlink(path);

    expect_secret_refused("", 0, "is empty");
    expect_secret_refused("\nsecret\n", 8, "is empty");
    expect_secret_refused("caf\xc3\xa9\n", 6, "printable ASCII");
    expect_secret_refused("tab\there\n", 9, "printable ASCII");
    expect_secret_refused("nul\0here\n", 9, "printable ASCII");
    expect_secret_refused(" padded\n", 8, "starts or ends with a space");
    char longpw[CC_SECRET_MAX + 2];
    memset(longpw, 'x', sizeof(longpw));
    expect_secret_refused(longpw, sizeof(longpw), "too long");
    assert_int_not_equal(
        cc_secret_read("/nonexistent/password", out, sizeof(out), err, sizeof(err)), 0);
    assert_non_null(strstr(err, "could not read password file \"/nonexistent/password\""));
}

static void
test_hba(void **state)
{
    (void)state;
    cc_spec s;
    memset(&s, 0, sizeof(s));
    strcpy(s.pg_user, "postgres");
    strcpy(s.user, "app");
    lb_buf hba = LB_BUF_INIT, ident = LB_BUF_INIT;
    assert_int_equal(cc_hba_render(&s, &hba), 0);
    /* No trust anywhere; the superuser only over the socket, by peer; the
     * safekeepers' role only for replication; first match wins. */
    assert_null(strstr(hba.data, "trust"));
    const char *peer = strstr(hba.data, "local  all          postgres  peer map=compute_ctl");
    const char *local_reject = strstr(hba.data, "local  all          all       reject");
    const char *sk =
        strstr(hba.data, "host   replication  lakebase_safekeeper  all  scram-sha-256");
    const char *sk_reject =
        strstr(hba.data, "host   all          lakebase_safekeeper  all  reject");
    const char *repl_reject = strstr(hba.data, "host   replication  all       all  reject");
    const char *su_reject = strstr(hba.data, "host   all          postgres  all  reject");
    const char *users = strstr(hba.data, "host   all          all       all  scram-sha-256");
    assert_true(peer && local_reject && sk && sk_reject && repl_reject && su_reject && users);
    assert_true(peer < local_reject && sk < sk_reject && sk_reject < repl_reject &&
                repl_reject < users && su_reject < users);
    assert_int_equal(cc_ident_render(&s, "root", &ident), 0);
    assert_non_null(strstr(ident.data, "compute_ctl  postgres  postgres\n"));
    assert_non_null(strstr(ident.data, "compute_ctl  root  postgres\n"));
    lb_buf_free(&ident);
    /* Not mapped twice when compute-ctl runs as the PostgreSQL user. */
    assert_int_equal(cc_ident_render(&s, "postgres", &ident), 0);
    assert_null(strstr(strstr(ident.data, "compute_ctl") + 1, "compute_ctl"));
    lb_buf_free(&hba);
    lb_buf_free(&ident);
}

static void
test_roles_sql(void **state)
{
    (void)state;
    cc_spec s;
    memset(&s, 0, sizeof(s));
    strcpy(s.user, "app");
    lb_buf sql = LB_BUF_INIT;
    assert_int_equal(cc_roles_sql(&s, "SCRAM-SHA-256$u'v", "SCRAM-SHA-256$sk", NULL, &sql), 0);
    assert_non_null(strstr(sql.data, "ALTER ROLE lakebase_safekeeper WITH LOGIN REPLICATION "
                                     "NOSUPERUSER"));
    assert_non_null(strstr(sql.data, "PASSWORD 'SCRAM-SHA-256$sk'"));
    assert_non_null(strstr(sql.data, "ALTER ROLE \"app\" WITH LOGIN NOSUPERUSER CREATEDB "
                                     "NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD "
                                     "'SCRAM-SHA-256$u''v'"));
    assert_non_null(strstr(sql.data, "REVOKE pg_read_server_files, pg_write_server_files, "
                                     "pg_execute_server_program FROM \"app\""));
    /* Per-role and per-database values of every guarded setting go. */
    assert_non_null(strstr(sql.data, "'synchronous_commit'"));
    assert_non_null(strstr(sql.data, "'log_min_messages'"));
    assert_non_null(strstr(sql.data, "ALTER ROLE ALL RESET %I"));
    /* No superuser password given: any old one is cleared. */
    assert_non_null(strstr(sql.data, "ALTER ROLE postgres WITH PASSWORD NULL;"));
    lb_buf_free(&sql);
    /* Given: its verifier, quoted. */
    assert_int_equal(
        cc_roles_sql(&s, "SCRAM-SHA-256$u", "SCRAM-SHA-256$sk", "SCRAM-SHA-256$s'u", &sql), 0);
    assert_non_null(strstr(sql.data, "ALTER ROLE postgres WITH PASSWORD 'SCRAM-SHA-256$s''u';"));
    assert_null(strstr(sql.data, "PASSWORD NULL"));
    lb_buf_free(&sql);
}

/* With a superuser_password_file the superuser may log in over TCP with
 * SCRAM, before the users' line; the unix socket rules stay first. */
static void
test_hba_superuser_over_tcp(void **state)
{
    (void)state;
    cc_spec s;
    memset(&s, 0, sizeof(s));
    strcpy(s.pg_user, "postgres");
    strcpy(s.user, "app");
    strcpy(s.superuser_password_file, "/etc/lakebase/superuser/password");
    lb_buf hba = LB_BUF_INIT;
    assert_int_equal(cc_hba_render(&s, &hba), 0);
    assert_null(strstr(hba.data, "trust"));
    assert_null(strstr(hba.data, "host   all          postgres  all  reject"));
    const char *peer = strstr(hba.data, "local  all          postgres  peer map=compute_ctl");
    const char *repl_reject = strstr(hba.data, "host   replication  all       all  reject");
    const char *su = strstr(hba.data, "host   all          postgres  all  scram-sha-256");
    const char *users = strstr(hba.data, "host   all          all       all  scram-sha-256");
    assert_true(peer && repl_reject && su && users);
    assert_true(peer < repl_reject && repl_reject < su && su < users);
    lb_buf_free(&hba);
}

static void
test_sync_cancel_lines(void **state)
{
    (void)state;
    assert_true(cc_log_line_is_sync_cancel(
        "2026-12-04 20:00:00.000 UTC [123] WARNING:  canceling wait for synchronous "
        "replication due to user request"));
    assert_true(cc_log_line_is_sync_cancel(
        "WARNING:  canceling the wait for synchronous replication and terminating connection "
        "due to administrator command"));
    assert_false(cc_log_line_is_sync_cancel(
        "DETAIL:  The transaction has already committed locally, but might not have been "
        "replicated to the standby."));
    assert_false(cc_log_line_is_sync_cancel("LOG:  statement: select 'wait for synchronous "
                                            "replication'"));
    assert_false(cc_log_line_is_sync_cancel("ERROR:  canceling statement due to user request"));
    assert_false(cc_log_line_is_sync_cancel(""));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scram_verifier),
        cmocka_unit_test(test_secret_read),
        cmocka_unit_test(test_hba),
        cmocka_unit_test(test_roles_sql),
        cmocka_unit_test(test_hba_superuser_over_tcp),
        cmocka_unit_test(test_sync_cancel_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
