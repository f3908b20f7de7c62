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

#include "common/pgproc.h"

/* The running itself is common/pgproc.c's, shared with the pageserver. */
static lb_pg_env
pg_env(const cc_spec *spec)
{
    return (lb_pg_env){.bin_dir = spec->pg_bin_dir, .user = spec->pg_user};
}

pid_t
cc_pg_spawn(const cc_spec *spec, const char *tool, const char *const args[], int out_fd)
{
    lb_pg_env env = pg_env(spec);
    return lb_pg_spawn(&env, tool, args, out_fd);
}

int
cc_pg_run(const cc_spec *spec, const char *tool, const char *const args[], lb_buf *out)
{
    lb_pg_env env = pg_env(spec);
    return lb_pg_run(&env, tool, args, out);
}

int
cc_pg_chown_tree(const cc_spec *spec, const char *path)
{
    lb_pg_env env = pg_env(spec);
    return lb_pg_chown_tree(&env, path);
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
    if (rc == 0)
        lb_http_client_set_token(http, spec->auth_token); /* a compute token */
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
    return lb_pg_controldata_field(text, field, out, cap);
}
