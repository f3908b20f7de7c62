/*
 * pgbin.c: PostgreSQL's binary directory (pgbin.h). Not a configuration
 * concern: it asks the installed PostgreSQL, so it lives apart from the
 * generic settings loader. pg_config runs through the project's process
 * runner (pgproc.h): close-on-exec pipe, EINTR loops, and as the
 * PostgreSQL user when the daemon is root.
 */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "pgbin.h"
#include "pgproc.h"

#define PG_BINDIR_DEFAULT "/usr/lib/postgresql/15/bin"

void
lb_pg_bindir(char *out, size_t cap)
{
    /* Debian puts pg_config on PATH in /usr/bin. */
    const lb_pg_env env = {.bin_dir = "/usr/bin", .user = "postgres"};
    const char *const args[] = {"--bindir", NULL};
    lb_buf answer = LB_BUF_INIT;
    int rc = lb_pg_run(&env, "pg_config", args, &answer);
    const char *dir = PG_BINDIR_DEFAULT;
    if (rc == 0 && answer.len > 1 && answer.data[0] == '/') {
        answer.data[strcspn(answer.data, "\n")] = '\0';
        dir = answer.data;
    }
    snprintf(out, cap, "%s", dir);
    lb_buf_free(&answer);
}
