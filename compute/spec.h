/*
 * spec.h: what one compute is asked to run, and the PostgreSQL settings it
 * runs with.
 *
 * A spec is a YAML or JSON file:
 *
 *     tenant_id: 0123...      32 lowercase hex characters
 *     timeline_id: 4567...
 *     mode: primary           primary | replica | static
 *     lsn: 0/3000028          static only: the LSN it shows
 *     pageserver: http://127.0.0.1:9898
 *     safekeepers:            1 to SK_ELECT_MAX of them
 *       - {name: sk-0, http: "http://127.0.0.1:7676", pg: "127.0.0.1:5454"}
 *     pg_port: 5432
 *     listen: 127.0.0.1:0     compute-ctl's own HTTP (port 0: any free port)
 *     announce_host: 127.0.0.1  where the safekeepers reach PostgreSQL
 *     data_dir: /var/lib/lakebase/compute/pgdata   rebuilt on every start
 *     pg_bin_dir: /usr/lib/postgresql/15/bin       default: pg_config --bindir
 *     pg_user: postgres       PostgreSQL runs as this user when we are root
 *     user: app               the role users connect as (SCRAM; not superuser)
 *     password_file: /etc/lakebase/user-password      its password, first line
 *     safekeeper_password_file: /etc/lakebase/sk-password
 *                             the password of role lakebase_safekeeper, as
 *                             which the safekeepers connect (pgauth.h)
 *     superuser_password_file: /etc/lakebase/superuser/password
 *                             optional: the superuser (postgres) may then
 *                             also log in over TCP with this password
 *                             (SCRAM); absent, it may not (pgauth.h)
 *     auth_public_keys: /etc/lakebase/keys   PEM file or directory: tokens to
 *                             compute-ctl's HTTP API are verified with these
 *     settings:               PostgreSQL settings
 *       shared_buffers: 128MB
 *
 * Parsing refuses anything unknown, missing or ill-formed with a message
 * naming the field. Settings that lakebase relies on are enforced, and a
 * user setting that would break durability or that compute-ctl owns is
 * refused (cc_settings_check). A primary needs user, password_file and
 * safekeeper_password_file; replicas and static computes use the roles as
 * the primary made them (their catalog is read-only).
 *
 * Callers: main.c (load), compute.c (render the configuration).
 */
#ifndef CC_SPEC_H
#define CC_SPEC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "json.h"
#include "lsn.h"
#include "safekeeper/election.h"

/* The longest data_dir: it holds the unix socket ".s.PGSQL.65535". */
#define CC_DATA_DIR_MAX 90

typedef enum cc_mode {
    CC_MODE_PRIMARY,
    CC_MODE_REPLICA,
    CC_MODE_STATIC,
} cc_mode;

typedef struct cc_safekeeper {
    char name[64];     /* its --id: an application_name in synchronous_standby_names */
    char http[256];    /* base URL of its HTTP API */
    char pg_host[256]; /* its walsender */
    int pg_port;
} cc_safekeeper;

typedef struct cc_setting {
    char *name;  /* lowercase */
    char *value; /* as PostgreSQL would read it, unquoted */
} cc_setting;

typedef struct cc_spec {
    char tenant_id[LB_ID_STRLEN];
    char timeline_id[LB_ID_STRLEN];
    cc_mode mode;
    lb_lsn lsn; /* static */
    char pageserver[256];
    cc_safekeeper safekeepers[SK_ELECT_MAX];
    int nsafekeepers;
    int pg_port;
    char listen_host[256];
    int listen_port;
    char announce_host[256];
    char data_dir[PATH_MAX];
    char pg_bin_dir[PATH_MAX];
    char pg_user[64];
    char user[64];                           /* a plain lowercase identifier */
    char password_file[PATH_MAX];            /* "" if not given */
    char safekeeper_password_file[PATH_MAX]; /* "" if not given */
    char superuser_password_file[PATH_MAX];  /* "" if not given: no superuser over TCP */
    char auth_public_keys[PATH_MAX];         /* verify callers of compute-ctl's HTTP API */
    cc_setting *settings;                    /* owned */
    size_t nsettings;
    int stream_from; /* replica: the safekeeper primary_conninfo names; chosen at start
                        (the first one that answers), not read from the file */
    struct lb_auth_token *auth_token; /* owned; from auth_token_file: this compute's token
                                         towards safekeepers; NULL: none */
} cc_spec;

/* ---- main: loading ---- */

/* Parse a spec from text (JSON when it starts with '{', YAML otherwise).
 * 0, or LB_EBADCONFIG with err naming the field. Call cc_spec_free() in
 * every case. pg_bin_dir defaults to pg_config --bindir. */
int cc_spec_parse(const char *text, size_t len, cc_spec *spec, char *err, size_t cap);
/* cc_spec_parse() of a file; -errno if it cannot be read. */
int cc_spec_load(const char *path, cc_spec *spec, char *err, size_t cap);
void cc_spec_free(cc_spec *spec);

/* What a mode is, in one table (spec.c, cc_modes): to add a mode, add an
 * enum value above and a row there; compute.c and the settings follow the
 * row, never the enum. */
typedef struct cc_mode_info {
    const char *name;        /* the spec's "mode" */
    bool elects;             /* primary: elects, writes, makes the roles, is watched */
    bool streams;            /* follows a safekeeper (primary_conninfo, standby.signal) */
    bool at_lsn;             /* needs the spec's "lsn": basebackup and replay up to it, pause */
    int restore_unsure_exit; /* restore_command's exit when a WAL source could not be
                                asked: 127 (fatal) unless stopping short is harmless */
    /* The mode's own lines of postgresql.auto.conf, appended to out (buf
     * is scratch space of cap bytes). 0 or -ENOMEM. */
    int (*render)(const cc_spec *spec, lb_buf *out, char *buf, size_t cap);
} cc_mode_info;

/* The row of mode (never NULL for a parsed spec). */
const cc_mode_info *cc_mode_of(cc_mode mode);
const char *cc_mode_name(cc_mode mode);

/* ---- compute: the settings ---- */

/* Check the user's settings against what lakebase relies on. 0, or
 * LB_EBADCONFIG with err naming the setting and why. */
int cc_settings_check(const cc_spec *spec, char *err, size_t cap);

/* A hot standby refuses to start with these below the values its WAL was
 * written with (pg_controldata's "... setting" lines); 0: unknown. */
typedef struct cc_pg_minimums {
    long max_connections;
    long max_worker_processes;
    long max_wal_senders;
    long max_prepared_transactions;
    long max_locks_per_transaction;
} cc_pg_minimums;

/* Fill min from pg_controldata's output. */
void cc_pg_minimums_parse(const char *controldata, cc_pg_minimums *min);

/* The postgresql.auto.conf of a compute in spec's mode: the enforced
 * settings, the user's (already checked; those in min raised to it), and
 * restore_command fetching from http://127.0.0.1:<ctl_port>/wal/. min may
 * be NULL. Appended to out. 0 or -ENOMEM. */
int cc_settings_render(const cc_spec *spec, const cc_pg_minimums *min, int ctl_port, lb_buf *out);

/* The file holding the restore_command's credential for compute-ctl's
 * /wal ("Authorization: Bearer <secret>", a curl header file): in the data
 * directory, mode 0600, owned by the PostgreSQL user. PostgreSQL's
 * restore_command reads it; SQL users cannot (pg_read_file and COPY FROM a
 * file need a superuser or pg_read_server_files, which they are not and do
 * not have). */
#define CC_RESTORE_HEADER "compute_ctl_restore.header"
void cc_restore_header_path(const cc_spec *spec, char *out, size_t cap);

/* 'ANY 2 ("sk-0", "sk-1", "sk-2")' without the outer quotes, into out. */
void cc_sync_standby_names(const cc_spec *spec, char *out, size_t cap);

/* A SQL string literal ('it''s'; standard_conforming_strings), appended to out. */
int cc_sql_quote(const char *value, lb_buf *out);

/* A value quoted for postgresql.conf: 'it''s' (backslashes doubled). */
int cc_conf_quote(const char *value, lb_buf *out);

/* The settings durability rests on, which compute-ctl watches while a
 * primary runs (compute.c): the values PostgreSQL may show in pg_settings,
 * comma-separated (NULL: synchronous_standby_names, computed from the
 * spec). NULL-terminated. */
typedef struct cc_guarded_setting {
    const char *name;
    const char *allowed;
} cc_guarded_setting;
extern const cc_guarded_setting cc_guarded_settings[];

/* One query that returns a row describing each way the running PostgreSQL
 * departs from cc_guarded_settings: a value in force (pg_settings), one
 * waiting in a configuration file for the next reload (pg_file_settings,
 * e.g. ALTER SYSTEM), or a per-role or per-database value
 * (pg_db_role_setting). Needs a superuser. Appended to out. 0 or -ENOMEM. */
int cc_guard_query(const cc_spec *spec, lb_buf *out);

/* The max_wal_size compute-ctl sets, and the most a user may set (MB). */
#define CC_MAX_WAL_SIZE_MB 1024

#endif
