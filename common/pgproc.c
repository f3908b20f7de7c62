/*
 * pgproc.c: running PostgreSQL programs as the PostgreSQL user (pgproc.h).
 *
 * The output pipe is made with pipe2(O_CLOEXEC): between pipe() and the
 * parent's close of the write end, a fork on another thread would copy
 * that write end into its child, and a long-lived child (a postmaster
 * started by pg_ctl) would hold it open for ever. Reads and waits retry
 * on EINTR. The tree chown walks with nftw(FTW_PHYS) and lchown, so a
 * symbolic link the PostgreSQL user planted never redirects it.
 */
#include "pgproc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errors.h"

#define MAX_ARGS 64

#define MAX_GROUPS 64

/* The user's ids and supplementary groups, looked up before the fork: in
 * the child of a threaded process only async-signal-safe calls are safe,
 * and initgroups() allocates and reads the group database through NSS,
 * which can block for ever on a lock another thread held at the fork. */
static int
pg_ids(const lb_pg_env *env, uid_t *uid, gid_t *gid, gid_t *groups, int *ngroups)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (!env->user || getpwnam_r(env->user, &pw, buf, sizeof(buf), &res) != 0 || !res)
        return -ENOENT;
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    if (!groups)
        return 0;
    int n = MAX_GROUPS;
    if (getgrouplist(env->user, pw.pw_gid, groups, &n) < 0)
        return -E2BIG;
    *ngroups = n;
    return 0;
}

pid_t
lb_pg_spawn(const lb_pg_env *env, const char *tool, const char *const args[], int out_fd)
{
    char bin[PATH_MAX + 64];
    if ((size_t)snprintf(bin, sizeof(bin), "%s/%s", env->bin_dir, tool) >= sizeof(bin))
        return -ENAMETOOLONG;
    const char *argv[MAX_ARGS];
    int n = 0;
    argv[n++] = bin;
    for (int i = 0; args[i]; i++) {
        if (n == MAX_ARGS - 1)
            return -E2BIG;
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    uid_t uid = 0;
    gid_t gid = 0;
    gid_t groups[MAX_GROUPS];
    int ngroups = 0;
    bool drop = geteuid() == 0;
    int rc = drop ? pg_ids(env, &uid, &gid, groups, &ngroups) : 0;
    if (rc != 0)
        return rc;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        if (out_fd >= 0) {
            dup2(out_fd, 1);
            dup2(out_fd, 2);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        if (drop &&
            (setgid(gid) != 0 || setgroups((size_t)ngroups, groups) != 0 || setuid(uid) != 0))
            _exit(126);
        /* After the credentials change, which clears it. */
        prctl(PR_SET_PDEATHSIG, SIGQUIT);
        if (getppid() != parent)
            _exit(126);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int
lb_pg_run(const lb_pg_env *env, const char *tool, const char *const args[], lb_buf *out)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return -errno;
    pid_t pid = lb_pg_spawn(env, tool, args, pipefd[1]);
    close(pipefd[1]);
    if (pid < 0) {
        close(pipefd[0]);
        return (int)pid;
    }
    char buf[4096];
    ssize_t r;
    while ((r = read(pipefd[0], buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR))
        if (r > 0 && out)
            lb_buf_append(out, buf, (size_t)r);
    close(pipefd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* nftw has no argument for its callback: the ids travel in statics, so
 * one tree chown runs at a time. */
static pthread_mutex_t chown_lock = PTHREAD_MUTEX_INITIALIZER;
static uid_t chown_uid;
static gid_t chown_gid;

static int
chown_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return lchown(path, chown_uid, chown_gid) == 0 ? 0 : -1;
}

int
lb_pg_chown_tree(const lb_pg_env *env, const char *path)
{
    if (geteuid() != 0)
        return 0;
    uid_t uid;
    gid_t gid;
    int rc = pg_ids(env, &uid, &gid, NULL, NULL);
    if (rc)
        return rc;
    pthread_mutex_lock(&chown_lock);
    chown_uid = uid;
    chown_gid = gid;
    rc = nftw(path, chown_one, 32, FTW_PHYS) == 0 ? 0 : -errno;
    pthread_mutex_unlock(&chown_lock);
    return rc;
}

int
lb_pg_controldata_field(const char *text, const char *field, char *out, size_t cap)
{
    const char *p = text;
    size_t fl = strlen(field);
    while (p && *p) {
        if (strncmp(p, field, fl) == 0 && p[fl] == ':') {
            p += fl + 1;
            while (*p == ' ')
                p++;
            size_t n = strcspn(p, "\n");
            if (n >= cap)
                return -ENAMETOOLONG;
            memcpy(out, p, n);
            out[n] = '\0';
            return 0;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return LB_ENOTFOUND;
}
