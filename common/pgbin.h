/*
 * pgbin.h: where PostgreSQL's programs are.
 *
 * Callers: compute/spec.c and the pageserver, for the default of their
 * pg_bin_dir settings.
 */
#ifndef LB_PGBIN_H
#define LB_PGBIN_H

#include <stddef.h>

/* `pg_config --bindir`, else /usr/lib/postgresql/15/bin, into out. */
void lb_pg_bindir(char *out, size_t cap);

#endif
