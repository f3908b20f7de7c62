/*
 * testutil.h: helpers shared by the unit tests of every component.
 *
 * Each test gets its own temporary directory and its own free loopback
 * ports; every process a test starts is stopped by its pid.
 */
#ifndef LB_TESTUTIL_H
#define LB_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

/* A free TCP port on 127.0.0.1 (bound and released; races are unlikely). */
int tu_free_port(void);
/* A fresh directory under $TMPDIR (or /tmp); the caller frees the string
 * and removes the directory with tu_rmdir(). Mode 0755 so that a postgres
 * user can enter it. */
char *tu_tempdir(const char *prefix);
void tu_rmdir(char *dir);

/* Start argv[0] (searched in PATH) with stdout and stderr appended to log
 * (or inherited if NULL). Returns the pid, or -1. */
pid_t tu_spawn(char *const argv[], const char *log);
/* SIGTERM, wait up to timeout_ms, then SIGKILL; reaps the child. */
void tu_stop(pid_t pid, int timeout_ms);
/* Wait until something accepts on 127.0.0.1:port. true if it did. */
bool tu_wait_port(int port, int timeout_ms);

/* Run a shell command, collect stdout into out (if not NULL); exit status. */
int tu_run(const char *cmd, lb_buf *out);

/* The directory holding PostgreSQL's binaries (pg_config --bindir). */
const char *tu_pg_bindir(void);
/* Prefix to run PostgreSQL tools ("runuser -u postgres -- " as root, "" otherwise). */
const char *tu_pg_as(void);
/* chown path (recursively) to the postgres user when running as root. */
void tu_pg_chown(const char *path);

/* The project root (LB_PROJECT_ROOT, or found from the cwd upwards). */
const char *tu_project_root(void);

/* ---- throwaway PostgreSQL 15 clusters ------------------------------------
 * initdb into <dir>/pgdata, socket and server log in <dir>/pgrun, listening
 * on 127.0.0.1:<port> only. Run as the postgres user when root. Stop with
 * tu_pg_stop (pg_ctl on this data directory only). */
typedef struct tu_pg {
    char datadir[4096];
    char rundir[4096]; /* unix socket and postgres.log */
    int port;
} tu_pg;

/* initdb -k --auth=trust -U postgres plus initdb_args (may be NULL), and a
 * free port; settings for port and sockets go to postgresql.conf. 0 or -1
 * (initdb's output is in <dir>/pgrun/initdb.log). */
int tu_pg_init(tu_pg *pg, const char *dir, const char *initdb_args);
/* Append one line to postgresql.conf. 0 or -1. */
int tu_pg_conf(const tu_pg *pg, const char *line);
/* pg_ctl start -w. 0 or -1 (see <rundir>/postgres.log). */
int tu_pg_start(const tu_pg *pg);
/* Run SQL with psql -X -At -v ON_ERROR_STOP=1 as user postgres, database
 * postgres; stdout into out (if not NULL). psql's exit status. */
int tu_pg_sql(const tu_pg *pg, const char *sql, lb_buf *out);
/* pg_ctl stop -w, "-m fast" (clean) or "-m immediate". 0 or -1. */
int tu_pg_stop(const tu_pg *pg, bool immediate);

#endif
