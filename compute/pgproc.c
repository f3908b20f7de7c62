/*
 * pgproc.c: running PostgreSQL binaries as the PostgreSQL user, and
 * unpacking a basebackup into the data directory (pgproc.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errors.h"
#include "fileio.h"
#include "http_client.h"
#include "log.h"
#include "pgproc.h"
#include "tar.h"

static int
pg_ids(const cc_spec *spec, uid_t *uid, gid_t *gid)
{
    struct passwd *pw = getpwnam(spec->pg_user);
    if (!pw)
        return -ENOENT;
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

pid_t
cc_pg_spawn(const cc_spec *spec, const char *tool, const char *const args[], int out_fd)
{
    char bin[PATH_MAX + 64];
    snprintf(bin, sizeof(bin), "%s/%s", spec->pg_bin_dir, tool);
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    uid_t uid = 0;
    gid_t gid = 0;
    bool drop = geteuid() == 0;
    if (drop && pg_ids(spec, &uid, &gid) != 0)
        return -ENOENT;
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
        signal(SIGPIPE, SIG_DFL);
        if (drop && (setgid(gid) != 0 || initgroups(spec->pg_user, gid) != 0 || setuid(uid) != 0))
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
cc_pg_run(const cc_spec *spec, const char *tool, const char *const args[], lb_buf *out)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return -errno;
    pid_t pid = cc_pg_spawn(spec, tool, args, pipefd[1]);
    close(pipefd[1]);
    if (pid < 0) {
        close(pipefd[0]);
        return pid;
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
cc_pg_chown_tree(const cc_spec *spec, const char *path)
{
    if (geteuid() != 0)
        return 0;
    int rc = pg_ids(spec, &chown_uid, &chown_gid);
    if (rc)
        return rc;
    return nftw(path, chown_one, 32, FTW_PHYS) == 0 ? 0 : -errno;
}

/* ---- basebackup ------------------------------------------------------------------- */

typedef struct untar {
    const char *dir;
    int fd;
    lb_tar_reader *tar;
    int rc;
    char err[256];
} untar;

static int
entry_path(untar *u, const lb_tar_entry *e, char *out, size_t cap)
{
    if (!lb_tar_name_is_safe(e->name))
        return LB_EPARSE;
    if ((size_t)snprintf(out, cap, "%s/%s", u->dir, e->name) >= cap)
        return -ENAMETOOLONG;
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
    return 0;
}

static int
on_entry(void *arg, const lb_tar_entry *e)
{
    untar *u = arg;
    char path[PATH_MAX], parent[PATH_MAX];
    int rc = entry_path(u, e, path, sizeof(path));
    if (rc)
        return rc;
    if (lb_dirname(path, parent, sizeof(parent)) == 0)
        lb_mkdir_p(parent, 0700);
    switch (e->type) {
    case LB_TAR_DIR:
        return lb_mkdir_p(path, 0700);
    case LB_TAR_SYMLINK:
        /* A data directory from the pageserver has none (no tablespaces,
         * pg_wal in place); one in the archive could point a later entry
         * anywhere compute-ctl (root) may write. */
        snprintf(u->err, sizeof(u->err), "entry \"%.100s\" is a symbolic link to \"%.100s\"",
                 e->name, e->linkname ? e->linkname : "");
        return LB_EPARSE;
    case LB_TAR_FILE:
        /* Never through a symbolic link, whatever put one there. */
        u->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (u->fd < 0)
            return -errno;
        if (e->size == 0) {
            close(u->fd);
            u->fd = -1;
        }
        return 0;
    }
    return 0;
}

static int
on_data(void *arg, const lb_tar_entry *e, const void *bytes, size_t n)
{
    (void)e;
    untar *u = arg;
    return u->fd >= 0 ? lb_write_all(u->fd, bytes, n) : LB_EPROTO;
}

static int
on_end(void *arg, const lb_tar_entry *e)
{
    (void)e;
    untar *u = arg;
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
    return 0;
}

static int
feed(void *arg, const char *bytes, size_t n)
{
    untar *u = arg;
    return lb_tar_reader_feed(u->tar, bytes, n);
}

/* A retry starts the data directory over. */
static int
reset(void *arg)
{
    untar *u = arg;
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
    lb_tar_reader_free(u->tar);
    u->tar = NULL;
    static const lb_tar_reader_ops ops = {on_entry, on_data, on_end};
    int rc = lb_rm_rf(u->dir);
    if (rc == 0)
        rc = lb_mkdir_p(u->dir, 0700);
    if (rc == 0)
        rc = lb_tar_reader_new(&ops, u, &u->tar);
    return rc;
}

int
cc_basebackup(const cc_spec *spec, lb_lsn lsn, lb_lsn *snapshot_lsn, char *err, size_t cap)
{
    untar u = {.dir = spec->data_dir, .fd = -1};
    *snapshot_lsn = 0;
    int rc = reset(&u);
    if (rc) {
        snprintf(err, cap, "could not prepare data directory \"%s\": %s", spec->data_dir,
                 lb_strerror(rc));
        return rc;
    }
    char url[1024], lsn_s[LB_LSN_STRLEN];
    snprintf(url, sizeof(url), "%s/v1/tenant/%s/timeline/%s/basebackup%s%s", spec->pageserver,
             spec->tenant_id, spec->timeline_id, lsn ? "?lsn=" : "",
             lsn ? lb_lsn_format(lsn, lsn_s) : "");
    lb_http_options opts = {.timeout_ms = -1, .stall_timeout_ms = 120000, .max_attempts = 4};
    lb_http_client *http = NULL;
    rc = lb_http_client_new(&opts, &http);
    lb_http_call call = {.method = "GET",
                         .url = url,
                         .response_write = feed,
                         .response_reset = reset,
                         .response_arg = &u};
    lb_http_result res = LB_HTTP_RESULT_INIT;
    if (rc == 0)
        rc = lb_http_do(http, &call, &res);
    if (rc && u.err[0]) {
        snprintf(err, cap, "refused basebackup \"%s\": %s", url, u.err);
    } else if (rc) {
        snprintf(err, cap, "could not fetch basebackup \"%s\": %s", url,
                 http && lb_http_client_error(http)[0] ? lb_http_client_error(http)
                                                       : lb_strerror(rc));
    } else if (res.status != 200) {
        snprintf(err, cap, "pageserver refused basebackup \"%s\": %ld %.*s", url, res.status,
                 (int)(res.error_body.len > 200 ? 200 : res.error_body.len),
                 res.error_body.data ? res.error_body.data : "");
        rc = res.status == 404 ? LB_ENOTFOUND : LB_EHTTP;
    } else if (!lb_tar_reader_done(u.tar)) {
        snprintf(err, cap, "basebackup \"%s\" ends early", url);
        rc = LB_ETRUNCATED;
    } else {
        const char *h = lb_http_result_header(&res, "x-lakebase-snapshot-lsn");
        if (h)
            lb_lsn_parse(h, snapshot_lsn);
    }
    if (u.fd >= 0)
        close(u.fd);
    lb_tar_reader_free(u.tar);
    lb_http_result_free(&res);
    lb_http_client_free(http);
    if (rc == 0) {
        chmod(spec->data_dir, 0700);
        rc = cc_pg_chown_tree(spec, spec->data_dir);
        if (rc)
            snprintf(err, cap, "could not chown \"%s\" to %s: %s", spec->data_dir, spec->pg_user,
                     lb_strerror(rc));
    }
    return rc;
}

int
cc_controldata_field(const char *text, const char *field, char *out, size_t cap)
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
