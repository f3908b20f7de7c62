/*
 * pgproc.h: running PostgreSQL's programs (initdb, pg_ctl, postgres,
 * pg_controldata) from a daemon.
 *
 * PostgreSQL refuses to run as root. When the daemon is root, every
 * program runs as the configured PostgreSQL user (setgid, initgroups,
 * setuid in the child) and the directories it uses belong to that user
 * (lb_pg_chown_tree). Every descriptor this module opens is close-on-exec,
 * so a program started on one thread never inherits the output pipe of a
 * program another thread is running (initdb or pg_ctl would then wait for
 * a writer that never closes). The child gets SIGQUIT if the thread that
 * started it dies (PR_SET_PDEATHSIG): a postmaster never outlives its
 * controller.
 *
 * Callers: compute-ctl (compute/pgproc.c), the pageserver's bootstrap and
 * redo standbys (pageserver/timelines.c, pageserver/ingest.c).
 */
#ifndef LB_PGPROC_H
#define LB_PGPROC_H

#include <sys/types.h>

#include "buf.h"

/* Where the programs are and whom they run as; both borrowed. */
typedef struct lb_pg_env {
    const char *bin_dir; /* PostgreSQL 15 binaries */
    const char *user;    /* the PostgreSQL user, used only when euid is 0 */
} lb_pg_env;

/* Start bin_dir/tool args... (NULL-terminated, without argv[0]) as the
 * PostgreSQL user, stdout and stderr to out_fd (-1: inherit), signals at
 * their defaults and unblocked. Returns the pid (the caller reaps it), or
 * -errno (-ENOENT for an unknown user, -E2BIG for more than 62 args). */
pid_t lb_pg_spawn(const lb_pg_env *env, const char *tool, const char *const args[], int out_fd);
/* Run a tool to completion, its output into out (may be NULL). Exit
 * status, 128 + signal, or -errno. */
int lb_pg_run(const lb_pg_env *env, const char *tool, const char *const args[], lb_buf *out);

/* chown -R path to the PostgreSQL user (when root; else nothing), never
 * following a symbolic link. 0 or -errno. */
int lb_pg_chown_tree(const lb_pg_env *env, const char *path);

/* A field of pg_controldata's output ("Data page checksum version"), into
 * out. 0, LB_ENOTFOUND, or -ENAMETOOLONG when it does not fit. */
int lb_pg_controldata_field(const char *text, const char *field, char *out, size_t cap);

#endif
