/*
 * pgproc.h: PostgreSQL's processes and data directory, as compute-ctl
 * handles them.
 *
 * PostgreSQL refuses to run as root; when compute-ctl is root, every
 * PostgreSQL binary runs as spec->pg_user and the data directory belongs
 * to that user. The postmaster is compute-ctl's own child, so that its
 * death is seen at once (waitpid), and it gets SIGQUIT (immediate
 * shutdown) if compute-ctl itself dies: a compute never outlives its
 * controller.
 *
 * Callers: compute.c.
 */
#ifndef CC_PGPROC_H
#define CC_PGPROC_H

#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"
#include "lsn.h"
#include "spec.h"

/* Start bin_dir/tool args... (NULL-terminated, without argv[0]) as the
 * PostgreSQL user, stdout and stderr to out_fd (-1: inherit). Returns the
 * pid, or -errno. */
pid_t cc_pg_spawn(const cc_spec *spec, const char *tool, const char *const args[], int out_fd);
/* Run a tool to completion, output into out (may be NULL). Exit status,
 * 128 + signal, or -errno. */
int cc_pg_run(const cc_spec *spec, const char *tool, const char *const args[], lb_buf *out);

/* chown -R path to the PostgreSQL user (when root; else nothing). 0 or -errno. */
int cc_pg_chown_tree(const cc_spec *spec, const char *path);

/* Empty data_dir and unpack the pageserver's basebackup of the timeline
 * at lsn (0: the newest) into it. *snapshot_lsn gets the snapshot's LSN
 * (0 if not said). 0, or an error with err set. */
int cc_basebackup(const cc_spec *spec, lb_lsn lsn, lb_lsn *snapshot_lsn, char *err, size_t cap);

/* A field of pg_controldata's output ("Data page checksum version"), into out. */
int cc_controldata_field(const char *text, const char *field, char *out, size_t cap);

#endif
