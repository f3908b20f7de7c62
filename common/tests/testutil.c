/*
 * testutil.c: process, port and directory helpers for unit tests.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"

int
tu_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

char *
tu_tempdir(const char *prefix)
{
    const char *base = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof(tmpl), "%s/lb-%s-XXXXXX", base && *base ? base : "/tmp", prefix);
    if (!mkdtemp(tmpl))
        return NULL;
    chmod(tmpl, 0755);
    return strdup(tmpl);
}

void
tu_rmdir(char *dir)
{
    if (!dir)
        return;
    if (!getenv("LB_KEEP_TMP"))
        lb_rm_rf(dir);
    free(dir);
}

pid_t
tu_spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (log) {
            int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
        }
        setpgid(0, 0);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

static long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void
tu_stop(pid_t pid, int timeout_ms)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    long deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return;
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

bool
tu_wait_port(int port, int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (ok)
            return true;
        usleep(20000);
    }
    return false;
}

int
tu_run(const char *cmd, lb_buf *out)
{
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (out)
            lb_buf_append(out, chunk, n);
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const char *
tu_pg_bindir(void)
{
    static char dir[PATH_MAX];
    if (dir[0])
        return dir;
    lb_buf out = LB_BUF_INIT;
    if (tu_run("pg_config --bindir 2>/dev/null", &out) == 0 && out.len > 0) {
        while (out.len && (out.data[out.len - 1] == '\n'))
            out.data[--out.len] = '\0';
        snprintf(dir, sizeof(dir), "%s", out.data);
    } else {
        snprintf(dir, sizeof(dir), "/usr/lib/postgresql/15/bin");
    }
    lb_buf_free(&out);
    return dir;
}

const char *
tu_pg_as(void)
{
    return geteuid() == 0 ? "runuser -u postgres -- " : "";
}

void
tu_pg_chown(const char *path)
{
    if (geteuid() != 0)
        return;
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "chown -R postgres: '%s'", path);
    tu_run(cmd, NULL);
}

const char *
tu_project_root(void)
{
    static char root[PATH_MAX];
    if (root[0])
        return root;
    const char *env = getenv("LB_PROJECT_ROOT");
    if (env) {
        snprintf(root, sizeof(root), "%s", env);
        return root;
    }
    /* Walk up from the cwd to the folder with the Makefile and common/. */
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        return ".";
    for (;;) {
        char probe[PATH_MAX + 32];
        snprintf(probe, sizeof(probe), "%s/common/errors.h", cwd);
        if (access(probe, R_OK) == 0) {
            snprintf(root, sizeof(root), "%s", cwd);
            return root;
        }
        char *slash = strrchr(cwd, '/');
        if (!slash || slash == cwd)
            return ".";
        *slash = '\0';
    }
}

/* ---- throwaway PostgreSQL 15 clusters ---------------------------------- */

/* Run a command built with printf-style arguments; its exit status. */
static int tu_pg_cmd(lb_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
tu_pg_cmd(lb_buf *out, const char *fmt, ...)
{
    lb_buf cmd = LB_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    int rc = lb_buf_vprintf(&cmd, fmt, ap);
    va_end(ap);
    if (rc == 0)
        rc = tu_run(cmd.data, out);
    else
        rc = -1;
    lb_buf_free(&cmd);
    return rc;
}

int
tu_pg_init(tu_pg *pg, const char *dir, const char *initdb_args)
{
    memset(pg, 0, sizeof(*pg));
    size_t n1 = (size_t)snprintf(pg->datadir, sizeof(pg->datadir), "%s/pgdata", dir);
    size_t n2 = (size_t)snprintf(pg->rundir, sizeof(pg->rundir), "%s/pgrun", dir);
    if (n1 >= sizeof(pg->datadir) || n2 >= sizeof(pg->rundir))
        return -1;
    if (mkdir(pg->datadir, 0700) != 0 || mkdir(pg->rundir, 0755) != 0)
        return -1;
    tu_pg_chown(pg->datadir);
    tu_pg_chown(pg->rundir);
    pg->port = tu_free_port();
    if (pg->port <= 0)
        return -1;
    if (tu_pg_cmd(NULL,
                  "%s'%s/initdb' -k --auth=trust -U postgres -D '%s' %s >>'%s/initdb.log' 2>&1",
                  tu_pg_as(), tu_pg_bindir(), pg->datadir, initdb_args ? initdb_args : "",
                  pg->rundir) != 0)
        return -1;
    lb_buf line = LB_BUF_INIT;
    int rc = tu_pg_conf(pg, "listen_addresses = '127.0.0.1'");
    if (rc == 0)
        rc = lb_buf_printf(&line, "port = %d", pg->port) ? -1 : tu_pg_conf(pg, line.data);
    lb_buf_reset(&line);
    if (rc == 0)
        rc = lb_buf_printf(&line, "unix_socket_directories = '%s'", pg->rundir)
                 ? -1
                 : tu_pg_conf(pg, line.data);
    lb_buf_free(&line);
    return rc;
}

int
tu_pg_conf(const tu_pg *pg, const char *line)
{
    lb_buf path = LB_BUF_INIT;
    if (lb_buf_printf(&path, "%s/postgresql.conf", pg->datadir) != 0)
        return -1;
    FILE *f = fopen(path.data, "a");
    lb_buf_free(&path);
    if (!f)
        return -1;
    int ok = fprintf(f, "%s\n", line) > 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

int
tu_pg_start(const tu_pg *pg)
{
    int rc =
        tu_pg_cmd(NULL, "%s'%s/pg_ctl' start -w -t 60 -D '%s' -l '%s/postgres.log' >/dev/null 2>&1",
                  tu_pg_as(), tu_pg_bindir(), pg->datadir, pg->rundir);
    return rc == 0 ? 0 : -1;
}

int
tu_pg_sql(const tu_pg *pg, const char *sql, lb_buf *out)
{
    static int seq;
    lb_buf path = LB_BUF_INIT;
    if (lb_buf_printf(&path, "%s/q-%d-%d.sql", pg->rundir, (int)getpid(), ++seq) != 0)
        return -1;
    FILE *f = fopen(path.data, "w");
    int rc = -1;
    if (f) {
        int ok = fputs(sql, f) >= 0;
        if (fclose(f) == 0 && ok) {
            chmod(path.data, 0644);
            rc = tu_pg_cmd(out,
                           "%s'%s/psql' -X -q -At -v ON_ERROR_STOP=1 -h '%s' -p %d -U postgres "
                           "-d postgres -f '%s' 2>>'%s/psql.log'",
                           tu_pg_as(), tu_pg_bindir(), pg->rundir, pg->port, path.data, pg->rundir);
        }
        unlink(path.data);
    }
    lb_buf_free(&path);
    return rc;
}

int
tu_pg_stop(const tu_pg *pg, bool immediate)
{
    return tu_pg_cmd(NULL, "%s'%s/pg_ctl' stop -w -t 60 -m %s -D '%s' >/dev/null 2>&1", tu_pg_as(),
                     tu_pg_bindir(), immediate ? "immediate" : "fast", pg->datadir) == 0
               ? 0
               : -1;
}
