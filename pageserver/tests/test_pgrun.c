/*
 * test_pgrun.c: the pageserver runs PostgreSQL programs without leaking
 * descriptors between threads. Programs run on several threads at once
 * (initdb and pg_ctl on the worker pool's threads, pg_ctl stop on HTTP threads); each program must
 * see exactly one pipe, its own output, never another run's, or a
 * long-lived child (a postmaster) would hold another run's pipe open and
 * that run would wait for ever. Also: the tree chown never follows a
 * symbolic link out of the tree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "gc.h"
#include "timelines.h"
#include "testutil.h"

#define THREADS 6
#define RUNS 40

static char *dir;
static ps_daemon daemon_;
static int leaks;
static int failures;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;

/* Pipes the test process itself holds without close-on-exec (its own
 * stdout, say): every program inherits those, legitimately. */
static lb_buf own_pipes = LB_BUF_INIT;

/* How many distinct pipes a run's output names, besides the test's own. */
static int
distinct_pipes(const char *text)
{
    char seen[16][64];
    int n = 0;
    for (const char *p = text; (p = strstr(p, "pipe:[")) != NULL; p++) {
        char name[64];
        size_t len = strcspn(p, "\n");
        snprintf(name, sizeof(name), "%.*s", (int)(len < 63 ? len : 63), p);
        bool dup = own_pipes.data && strstr(own_pipes.data, name) != NULL;
        for (int i = 0; i < n && !dup; i++)
            dup = strcmp(seen[i], name) == 0;
        if (!dup && n < 16)
            snprintf(seen[n++], sizeof(seen[0]), "%s", name);
    }
    return n;
}

static void *
runner(void *arg)
{
    (void)arg;
    for (int i = 0; i < RUNS; i++) {
        lb_buf out = LB_BUF_INIT;
        const char *args[] = {NULL};
        int st = ps_run_pg(&daemon_, &out, "fdlist", args);
        int pipes = st == 0 && out.data ? distinct_pipes(out.data) : -1;
        pthread_mutex_lock(&count_lock);
        if (st != 0 || pipes < 1)
            failures++;
        else if (pipes > 1)
            leaks++;
        pthread_mutex_unlock(&count_lock);
        lb_buf_free(&out);
    }
    return NULL;
}

static void
test_no_pipe_leaks_between_threads(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, runner, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(failures, 0);
    assert_int_equal(leaks, 0);
}

static void
test_chown_tree_stays_in_the_tree(void **state)
{
    (void)state;
    if (geteuid() != 0 || !getpwnam("postgres"))
        skip();
    struct passwd *pw = getpwnam("postgres");
    char tree[PATH_MAX], file[PATH_MAX + 16], outside[PATH_MAX + 16], link[PATH_MAX + 16];
    snprintf(tree, sizeof(tree), "%s/it's a tree", dir);
    assert_int_equal(mkdir(tree, 0700), 0);
    snprintf(file, sizeof(file), "%s/file", tree);
    snprintf(outside, sizeof(outside), "%s/outside", dir);
    snprintf(link, sizeof(link), "%s/link", tree);
    FILE *f = fopen(file, "w");
    fclose(f);
    f = fopen(outside, "w");
    fclose(f);
    assert_int_equal(symlink(outside, link), 0);
    assert_int_equal(ps_chown_to_pg(&daemon_, tree), 0);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_uid, pw->pw_uid);
    assert_int_equal(stat(tree, &st), 0);
    assert_int_equal(st.st_uid, pw->pw_uid);
    assert_int_equal(stat(outside, &st), 0);
    assert_int_equal(st.st_uid, 0);
}

/* As root, a program runs as the PostgreSQL user with exactly that
 * user's groups (looked up before the fork: see pgproc.c). */
static void
test_runs_with_the_users_ids_and_groups(void **state)
{
    (void)state;
    struct passwd *pw = getpwnam("postgres");
    if (geteuid() != 0 || !pw)
        skip();
    gid_t want[64];
    int n = 64;
    assert_true(getgrouplist("postgres", pw->pw_gid, want, &n) >= 0);
    lb_buf out = LB_BUF_INIT;
    const char *args[] = {NULL};
    assert_int_equal(ps_run_pg(&daemon_, &out, "ids", args), 0);
    assert_non_null(out.data);
    unsigned uid = 0;
    int off = 0;
    assert_int_equal(sscanf(out.data, "%u%n", &uid, &off), 1);
    assert_int_equal(uid, pw->pw_uid);
    int got = 0;
    unsigned g;
    int len;
    for (const char *p = out.data + off; sscanf(p, "%u%n", &g, &len) == 1; p += len) {
        bool member = false;
        for (int i = 0; i < n; i++)
            member = member || want[i] == g;
        assert_true(member);
        got++;
    }
    assert_int_equal(got, n);
    lb_buf_free(&out);
}

static int
setup(void **state)
{
    (void)state;
    dir = tu_tempdir("pgrun");
    if (!dir)
        return -1;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/fdlist", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("#!/bin/sh\nfor f in /proc/$$/fd/*; do readlink \"$f\"; done\nexit 0\n", f);
    fclose(f);
    chmod(path, 0755);
    snprintf(path, sizeof(path), "%s/ids", dir);
    f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("#!/bin/sh\nid -u\nid -G\n", f);
    fclose(f);
    chmod(path, 0755);
    for (int fd = 0; fd < 1024; fd++) {
        char link[64], target[128];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            lb_buf_printf(&own_pipes, "%s\n", target);
        }
    }
    daemon_.conf.pg_bin_dir = dir;
    daemon_.conf.pg_user = "postgres";
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tu_rmdir(dir);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_pipe_leaks_between_threads),
        cmocka_unit_test(test_chown_tree_stays_in_the_tree),
        cmocka_unit_test(test_runs_with_the_users_ids_and_groups),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
