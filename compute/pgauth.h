/*
 * pgauth.h: who may connect to a compute's PostgreSQL, and how.
 *
 *   compute-ctl   the only superuser ("postgres"), over the unix socket in
 *                 the data directory, peer authentication mapped from the
 *                 OS users compute-ctl and PostgreSQL run as;
 *   safekeepers   role lakebase_safekeeper (LOGIN REPLICATION, not
 *                 superuser), SCRAM over TCP, replication connections only;
 *   users         the spec's `user` (LOGIN CREATEDB, nothing more), SCRAM
 *                 over TCP.
 *   superuser     also over TCP (SCRAM) when the spec has a
 *                 superuser_password_file; never otherwise.
 * Everything else is rejected. pg_hba.conf and pg_ident.conf are written
 * by compute-ctl on every start; the roles and their SCRAM verifiers are
 * made by compute-ctl on a primary right after promotion (compute.c).
 *
 * Callers: compute.c; tests.
 */
#ifndef CC_PGAUTH_H
#define CC_PGAUTH_H

#include <stddef.h>

#include "buf.h"
#include "spec.h"

#define CC_SUPERUSER "postgres"
#define CC_SAFEKEEPER_ROLE "lakebase_safekeeper"
/* A SCRAM-SHA-256 verifier as pg_authid stores it, with its NUL. */
#define CC_SCRAM_VERIFIER_MAX 200
#define CC_SECRET_MAX 256

/* pg_hba.conf and pg_ident.conf for spec, appended to out. os_user: the OS
 * user compute-ctl runs as, mapped to the superuser besides spec->pg_user
 * (the user PostgreSQL runs as). 0 or -ENOMEM. */
int cc_hba_render(const cc_spec *spec, lb_buf *out);
int cc_ident_render(const cc_spec *spec, const char *os_user, lb_buf *out);

/* The first line of path: a password of 1 to CC_SECRET_MAX-1 printable
 * ASCII characters (no spaces at either end). 0, or an error with err
 * naming the file and why. */
int cc_secret_read(const char *path, char *out, size_t cap, char *err, size_t errcap);

/* "SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>" (RFC 5802, RFC 7677)
 * for password with salt (salt NULL: 16 random bytes). The password never
 * reaches SQL text or PostgreSQL's log. 0 or -EIO. */
int cc_scram_verifier(const char *password, const unsigned char *salt, size_t salt_len, char *out,
                      size_t cap);

/* The SQL compute-ctl runs on a primary after promotion, in one
 * transaction (see compute.c for why it commits with synchronous_commit =
 * local): make both roles with exactly their attributes and verifiers,
 * set the superuser's verifier (superuser_verifier NULL: no password),
 * grant the user what it needs in database postgres, and remove any
 * per-role or per-database value of a setting compute-ctl owns. Appended
 * to out. 0 or -ENOMEM. */
int cc_roles_sql(const cc_spec *spec, const char *user_verifier, const char *safekeeper_verifier,
                 const char *superuser_verifier, lb_buf *out);

#endif
