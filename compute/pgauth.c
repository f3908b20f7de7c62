/*
 * pgauth.c: PostgreSQL's own authentication on a compute (pgauth.h).
 *
 * A tenant's SQL sessions run in the same pod as compute-ctl, so
 * PostgreSQL's superuser must not be theirs: the superuser can change the
 * settings durability rests on (synchronous_standby_names, fsync, ...),
 * read and write the server's files and run programs as its OS user. The
 * superuser is reachable only over the unix socket, which lives in the
 * data directory (mode 0700, owned by the PostgreSQL user), with peer
 * authentication: only root and the PostgreSQL OS user get in, and the
 * SQL user is neither. Over TCP, the superuser is rejected outright.
 *
 * Passwords are stored as SCRAM-SHA-256 verifiers computed here, so that
 * the plain password never appears in a SQL statement (which
 * log_statement or an error message could log) and PostgreSQL's
 * password_encryption plays no part. PostgreSQL applies SASLprep to the
 * password a client sends; for printable ASCII, the only passwords
 * cc_secret_read() accepts, SASLprep is the identity, so the verifier
 * computed from the raw bytes is the one PostgreSQL would compute.
 *
 * The exception, asked for by the spec's superuser_password_file: the
 * owner of a cluster may need PostgreSQL's superuser (an extension that
 * needs it, a role of their own with attributes the user role lacks).
 * Then the superuser may also log in over TCP with that password (SCRAM,
 * its verifier made here like the others). Whoever has it can change
 * settings (the watch in compute.c then restarts the compute with
 * compute-ctl's), read the files the compute mounts (its token, the
 * safekeepers' password) and run programs as the PostgreSQL OS user: it
 * is for the cluster's administrator, who could `kubectl exec` into the
 * compute anyway, never for an application.
 *
 * CREATE TABLESPACE needs superuser in PostgreSQL 15 ("must be superuser
 * to create a tablespace"), and the user role is not one: the pageserver,
 * whose snapshots copy only the data directory, never sees a tablespace.
 * allow_in_place_tablespaces (superuser-only too) stays off.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "errors.h"
#include "fileio.h"
#include "pgauth.h"

int
cc_hba_render(const cc_spec *spec, lb_buf *out)
{
    /* First match wins. */
    int rc =
        lb_buf_append_str(out, "# written by compute-ctl on every start; edits are lost\n"
                               "# compute-ctl's superuser: the unix socket in the data directory\n"
                               "local  all          " CC_SUPERUSER "  peer map=compute_ctl\n"
                               "local  all          all       reject\n"
                               "# the safekeepers: replication connections only\n"
                               "host   replication  " CC_SAFEKEEPER_ROLE "  all  scram-sha-256\n"
                               "host   all          " CC_SAFEKEEPER_ROLE "  all  reject\n"
                               "host   replication  all       all  reject\n");
    if (spec->superuser_password_file[0])
        rc |=
            lb_buf_append_str(out, "# the superuser over TCP: the spec's superuser_password_file\n"
                                   "host   all          " CC_SUPERUSER "  all  scram-sha-256\n");
    else
        rc |= lb_buf_append_str(out, "# never the superuser over TCP\n"
                                     "host   all          " CC_SUPERUSER "  all  reject\n");
    rc |= lb_buf_append_str(out, "# users\n"
                                 "host   all          all       all  scram-sha-256\n");
    return rc ? -ENOMEM : 0;
}

int
cc_ident_render(const cc_spec *spec, const char *os_user, lb_buf *out)
{
    int rc = lb_buf_append_str(out, "# written by compute-ctl on every start; edits are lost\n");
    rc |= lb_buf_printf(out, "compute_ctl  %s  " CC_SUPERUSER "\n", spec->pg_user);
    if (os_user && os_user[0] && strcmp(os_user, spec->pg_user) != 0)
        rc |= lb_buf_printf(out, "compute_ctl  %s  " CC_SUPERUSER "\n", os_user);
    return rc ? -ENOMEM : 0;
}

int
cc_secret_read(const char *path, char *out, size_t cap, char *err, size_t errcap)
{
    lb_buf text = LB_BUF_INIT;
    int rc = lb_read_file(path, &text);
    if (rc) {
        snprintf(err, errcap, "could not read password file \"%s\": %s", path, lb_strerror(rc));
        lb_buf_free(&text);
        return rc;
    }
    size_t n = 0;
    while (n < text.len && text.data[n] != '\n' && text.data[n] != '\r')
        n++;
    const char *why = NULL;
    if (n == 0)
        why = "is empty";
    else if (n >= cap || n >= CC_SECRET_MAX)
        why = "holds a password that is too long";
    for (size_t i = 0; !why && i < n; i++)
        if (!isprint((unsigned char)text.data[i]) || (unsigned char)text.data[i] > 126)
            why = "must hold printable ASCII characters only";
    if (!why && (text.data[0] == ' ' || text.data[n - 1] == ' '))
        why = "holds a password that starts or ends with a space";
    rc = why ? LB_EBADCONFIG : 0;
    if (why)
        snprintf(err, errcap, "password file \"%s\" %s", path, why);
    if (rc == 0) {
        memcpy(out, text.data, n);
        out[n] = '\0';
    }
    if (text.data)
        memset(text.data, 0, text.len);
    lb_buf_free(&text);
    return rc;
}

#define SCRAM_ITERATIONS 4096
#define SCRAM_KEY_LEN SHA256_DIGEST_LENGTH

static size_t
b64(const unsigned char *in, size_t n, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

int
cc_scram_verifier(const char *password, const unsigned char *salt, size_t salt_len, char *out,
                  size_t cap)
{
    unsigned char rand_salt[16];
    if (!salt) {
        if (RAND_bytes(rand_salt, sizeof(rand_salt)) != 1)
            return -EIO;
        salt = rand_salt;
        salt_len = sizeof(rand_salt);
    }
    unsigned char salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN], stored_key[SCRAM_KEY_LEN],
        server_key[SCRAM_KEY_LEN];
    unsigned int len = 0;
    int ok = PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len,
                               SCRAM_ITERATIONS, EVP_sha256(), sizeof(salted), salted) == 1;
    ok = ok && HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *)"Client Key", 10,
                    client_key, &len);
    ok = ok && SHA256(client_key, sizeof(client_key), stored_key);
    ok = ok && HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *)"Server Key", 10,
                    server_key, &len);
    char salt64[64], stored64[64], server64[64];
    if (ok && salt_len <= 40) {
        b64(salt, salt_len, salt64);
        b64(stored_key, sizeof(stored_key), stored64);
        b64(server_key, sizeof(server_key), server64);
        ok = (size_t)snprintf(out, cap, "SCRAM-SHA-256$%d:%s$%s:%s", SCRAM_ITERATIONS, salt64,
                              stored64, server64) < cap;
    } else {
        ok = 0;
    }
    memset(salted, 0, sizeof(salted));
    memset(client_key, 0, sizeof(client_key));
    return ok ? 0 : -EIO;
}

int
cc_roles_sql(const cc_spec *spec, const char *user_verifier, const char *safekeeper_verifier,
             const char *superuser_verifier, lb_buf *out)
{
    int rc = 0;
    lb_buf user = LB_BUF_INIT; /* the user's name as a literal */
    rc |= cc_sql_quote(spec->user, &user);
    rc |= lb_buf_append_str(
        out,
        "DO $lakebase$ BEGIN\n"
        "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '" CC_SAFEKEEPER_ROLE "') THEN\n"
        "    CREATE ROLE " CC_SAFEKEEPER_ROLE ";\n"
        "  END IF;\n");
    rc |= lb_buf_printf(out,
                        "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %s) THEN\n"
                        "    EXECUTE format('CREATE ROLE %%I', %s);\n"
                        "  END IF;\n"
                        "END $lakebase$;\n",
                        user.data, user.data);
    rc |= lb_buf_append_str(out, "ALTER ROLE " CC_SAFEKEEPER_ROLE
                                 " WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE "
                                 "NOINHERIT NOBYPASSRLS CONNECTION LIMIT -1 PASSWORD ");
    rc |= cc_sql_quote(safekeeper_verifier, out);
    rc |= lb_buf_append_str(out, ";\n");
    /* The name was checked to be a plain identifier (spec.c). */
    rc |= lb_buf_printf(out,
                        "ALTER ROLE \"%s\" WITH LOGIN NOSUPERUSER CREATEDB NOCREATEROLE "
                        "NOREPLICATION NOBYPASSRLS PASSWORD ",
                        spec->user);
    rc |= cc_sql_quote(user_verifier, out);
    rc |= lb_buf_append_str(out, ";\n");
    /* The superuser's password: TCP logins with it (pg_hba.conf) only when
     * the spec gives one; none clears an old one. */
    rc |= lb_buf_append_str(out, "ALTER ROLE " CC_SUPERUSER " WITH PASSWORD ");
    if (superuser_verifier)
        rc |= cc_sql_quote(superuser_verifier, out);
    else
        rc |= lb_buf_append_str(out, "NULL");
    rc |= lb_buf_append_str(out, ";\n");
    rc |= lb_buf_printf(out,
                        "REVOKE pg_read_server_files, pg_write_server_files, "
                        "pg_execute_server_program FROM \"%s\";\n"
                        "GRANT CREATE, CONNECT, TEMPORARY ON DATABASE postgres TO \"%s\";\n"
                        "GRANT USAGE, CREATE ON SCHEMA public TO \"%s\";\n",
                        spec->user, spec->user, spec->user);
    /* No database or role may carry its own value of a setting compute-ctl
     * owns (ALTER ROLE ... SET, ALTER DATABASE ... SET): the watch would
     * stop the compute again on every start. */
    rc |= lb_buf_append_str(
        out, "DO $lakebase$ DECLARE r record; BEGIN\n"
             "  FOR r IN SELECT s.setdatabase, s.setrole, split_part(kv, '=', 1) AS name\n"
             "      FROM pg_db_role_setting s, unnest(s.setconfig) kv\n"
             "      WHERE lower(split_part(kv, '=', 1)) IN (");
    for (size_t i = 0; cc_guarded_settings[i].name; i++) {
        rc |= lb_buf_append_str(out, i ? ", " : "");
        rc |= cc_sql_quote(cc_guarded_settings[i].name, out);
    }
    rc |= lb_buf_append_str(
        out, ") LOOP\n"
             "    IF r.setrole = 0 AND r.setdatabase = 0 THEN\n"
             "      EXECUTE format('ALTER ROLE ALL RESET %I', r.name);\n"
             "    ELSIF r.setrole = 0 THEN\n"
             "      EXECUTE format('ALTER DATABASE %I RESET %I',\n"
             "        (SELECT datname FROM pg_database WHERE oid = r.setdatabase), r.name);\n"
             "    ELSIF r.setdatabase = 0 THEN\n"
             "      EXECUTE format('ALTER ROLE %I RESET %I',\n"
             "        (SELECT rolname FROM pg_roles WHERE oid = r.setrole), r.name);\n"
             "    ELSE\n"
             "      EXECUTE format('ALTER ROLE %I IN DATABASE %I RESET %I',\n"
             "        (SELECT rolname FROM pg_roles WHERE oid = r.setrole),\n"
             "        (SELECT datname FROM pg_database WHERE oid = r.setdatabase), r.name);\n"
             "    END IF;\n"
             "    RAISE WARNING 'compute-ctl removed a per-role or per-database value of "
             "\"%', r.name;\n"
             "  END LOOP;\n"
             "END $lakebase$;\n");
    lb_buf_free(&user);
    return rc ? -ENOMEM : 0;
}
