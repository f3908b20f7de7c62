/*
 * spec.c: reading a compute's spec and deciding its PostgreSQL settings.
 *
 * A spec is parsed into a JSON tree first (YAML through common/config's
 * reader, lb_yaml_to_json(), JSON through jansson), so that both formats
 * go through one validator, which names the field in every refusal.
 * Booleans, in YAML and in PostgreSQL settings, are lb_bool_parse()'s.
 *
 * Settings: lakebase's durability rests on PostgreSQL waiting for 2 of 3
 * safekeepers before it acknowledges a commit, on full-page writes and
 * fsync (a restart replays WAL onto pages the pageserver copied), and on
 * data checksums (checked on the basebackup, compute.c). A user setting
 * that would weaken any of these is refused, not silently overridden, so
 * that whoever wrote the spec learns it does not do what they meant.
 */
#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "config.h"
#include "errors.h"
#include "fileio.h"
#include "hostport.h"
#include "pgbin.h"
#include "spec.h"

/* The modes' own settings (the rest is shared, cc_settings_render()). */
static int render_primary(const cc_spec *spec, lb_buf *out, char *buf, size_t cap);
static int render_replica(const cc_spec *spec, lb_buf *out, char *buf, size_t cap);
static int render_static(const cc_spec *spec, lb_buf *out, char *buf, size_t cap);

static const cc_mode_info cc_modes[] = {
    [CC_MODE_PRIMARY] = {.name = "primary",
                         .elects = true,
                         .restore_unsure_exit = 127, /* never promote short of the quorum */
                         .render = render_primary},
    [CC_MODE_REPLICA] = {.name = "replica",
                         .streams = true,
                         .restore_unsure_exit = 1, /* it goes on streaming */
                         .render = render_replica},
    [CC_MODE_STATIC] = {.name = "static",
                        .at_lsn = true,
                        .restore_unsure_exit = 127, /* never pause short of its LSN */
                        .render = render_static},
};
#define NMODES (sizeof(cc_modes) / sizeof(cc_modes[0]))

const cc_mode_info *
cc_mode_of(cc_mode mode)
{
    return (unsigned)mode < NMODES ? &cc_modes[mode] : NULL;
}

/* "primary, replica or static", from the table. */
static void
mode_names(char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NMODES && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s",
                              i == 0           ? ""
                              : i + 1 < NMODES ? ", "
                                               : " or ",
                              cc_modes[i].name);
}

const char *
cc_mode_name(cc_mode mode)
{
    return (unsigned)mode < NMODES ? cc_modes[mode].name : "?";
}

/* ---- the spec ---------------------------------------------------------------------- */

static const char *const top_fields[] = {
    "tenant_id",
    "timeline_id",
    "mode",
    "lsn",
    "pageserver",
    "safekeepers",
    "pg_port",
    "listen",
    "data_dir",
    "pg_bin_dir",
    "pg_user",
    "settings",
    "announce_host",
    "user",
    "password_file",
    "safekeeper_password_file",
    "superuser_password_file",
    "auth_token_file",
    "auth_public_keys",
    NULL,
};

static bool
in_list(const char *s, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

static int bad(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int
bad(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return LB_EBADCONFIG;
}

/* A string field into out; required or not. 1 if set, 0 if absent, <0 refused. */
static int
get_str(const json_t *obj, const char *field, const char *where, char *out, size_t outcap,
        bool required, char *err, size_t cap)
{
    json_t *v = json_object_get(obj, field);
    if (!v || json_is_null(v)) {
        if (required)
            return bad(err, cap, "spec: missing field \"%s%s\"", where, field);
        return 0;
    }
    if (!json_is_string(v))
        return bad(err, cap, "spec: field \"%s%s\" must be a string", where, field);
    const char *s = json_string_value(v);
    if (!s[0])
        return bad(err, cap, "spec: field \"%s%s\" must not be empty", where, field);
    if (strlen(s) >= outcap)
        return bad(err, cap, "spec: field \"%s%s\" is too long", where, field);
    strcpy(out, s);
    return 1;
}

static bool
http_url_ok(const char *s)
{
    return (strncmp(s, "http://", 7) == 0 && s[7]) || (strncmp(s, "https://", 8) == 0 && s[8]);
}

static int
parse_safekeepers(const json_t *arr, cc_spec *spec, char *err, size_t cap)
{
    if (!arr || json_is_null(arr))
        return bad(err, cap, "spec: missing field \"safekeepers\"");
    if (!json_is_array(arr))
        return bad(err, cap, "spec: field \"safekeepers\" must be a list");
    size_t n = json_array_size(arr);
    if (n == 0 || n > SK_ELECT_MAX)
        return bad(err, cap, "spec: field \"safekeepers\" must list 1 to %d safekeepers",
                   SK_ELECT_MAX);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        cc_safekeeper *sk = &spec->safekeepers[i];
        char where[48];
        snprintf(where, sizeof(where), "safekeepers[%zu].", i);
        if (!json_is_object(e))
            return bad(err, cap,
                       "spec: field \"safekeepers[%zu]\" must be a mapping with "
                       "name, http and pg",
                       i);
        const char *key;
        json_t *val;
        json_object_foreach(e, key, val)
        {
            if (strcmp(key, "name") && strcmp(key, "http") && strcmp(key, "pg"))
                return bad(err, cap, "spec: unknown field \"%s%s\"", where, key);
        }
        char pg[300];
        int rc;
        if ((rc = get_str(e, "name", where, sk->name, sizeof(sk->name), true, err, cap)) < 0 ||
            (rc = get_str(e, "http", where, sk->http, sizeof(sk->http), true, err, cap)) < 0 ||
            (rc = get_str(e, "pg", where, pg, sizeof(pg), true, err, cap)) < 0)
            return rc;
        for (const char *p = sk->name; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
                return bad(err, cap,
                           "spec: field \"%sname\" must be letters, digits, '-', "
                           "'_' or '.'",
                           where);
        if (!http_url_ok(sk->http))
            return bad(err, cap, "spec: field \"%shttp\" must be an http:// or https:// URL",
                       where);
        size_t l = strlen(sk->http);
        while (l > 0 && sk->http[l - 1] == '/')
            sk->http[--l] = '\0';
        lb_hostport hp;
        if (lb_hostport_parse(pg, &hp) != 0 || hp.port == 0)
            return bad(err, cap, "spec: field \"%spg\" must be host:port", where);
        snprintf(sk->pg_host, sizeof(sk->pg_host), "%s", hp.host);
        sk->pg_port = hp.port;
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->safekeepers[j].name, sk->name) == 0)
                return bad(err, cap, "spec: field \"%sname\": \"%s\" is listed twice", where,
                           sk->name);
    }
    spec->nsafekeepers = (int)n;
    return 0;
}

static int
setting_value(const json_t *v, char **out)
{
    char buf[64];
    if (json_is_string(v))
        *out = strdup(json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v)), *out = strdup(buf);
    else if (json_is_real(v))
        snprintf(buf, sizeof(buf), "%g", json_real_value(v)), *out = strdup(buf);
    else if (json_is_boolean(v))
        *out = strdup(json_is_true(v) ? "on" : "off");
    else
        return LB_EPARSE;
    return *out ? 0 : -ENOMEM;
}

static int
parse_settings(const json_t *obj, cc_spec *spec, char *err, size_t cap)
{
    if (!obj || json_is_null(obj))
        return 0;
    if (!json_is_object(obj))
        return bad(err, cap, "spec: field \"settings\" must be a mapping of PostgreSQL settings");
    size_t n = json_object_size(obj);
    spec->settings = calloc(n ? n : 1, sizeof(cc_setting));
    if (!spec->settings)
        return -ENOMEM;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        char name[128];
        size_t kl = strlen(key);
        if (kl == 0 || kl >= sizeof(name))
            return bad(err, cap, "spec: field \"settings.%.64s\": not a setting name", key);
        for (size_t i = 0; i <= kl; i++) {
            char c = (char)tolower((unsigned char)key[i]);
            if (c && !isalnum((unsigned char)c) && c != '_' && c != '.')
                return bad(err, cap, "spec: field \"settings.%.64s\": not a setting name", key);
            name[i] = c;
        }
        for (size_t i = 0; i < spec->nsettings; i++)
            if (strcmp(spec->settings[i].name, name) == 0)
                return bad(err, cap, "spec: field \"settings.%s\" is given twice", name);
        char *value = NULL;
        int rc = setting_value(val, &value);
        if (rc == LB_EPARSE)
            return bad(err, cap,
                       "spec: field \"settings.%s\" must be a string, number or "
                       "boolean",
                       name);
        if (rc)
            return rc;
        if (strpbrk(value, "\n\r") || strlen(value) > 4096) {
            free(value);
            return bad(err, cap, "spec: field \"settings.%s\" must be one line", name);
        }
        cc_setting *s = &spec->settings[spec->nsettings];
        s->name = strdup(name);
        s->value = value;
        if (!s->name)
            return -ENOMEM;
        spec->nsettings++;
    }
    return 0;
}

/* user, password_file and safekeeper_password_file: a primary makes the
 * roles (pgauth.h), so it needs all three. superuser_password_file is
 * optional in every mode (a replica's pg_hba.conf follows it too). */
static int
parse_roles(const json_t *root, cc_spec *spec, char *err, size_t cap)
{
    bool need = cc_mode_of(spec->mode)->elects;
    int rc;
    if ((rc = get_str(root, "user", "", spec->user, sizeof(spec->user), need, err, cap)) < 0)
        return rc;
    if (rc == 1) {
        bool ok = islower((unsigned char)spec->user[0]) || spec->user[0] == '_';
        for (const char *p = spec->user; ok && *p; p++)
            ok = islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_';
        if (!ok)
            return bad(err, cap,
                       "spec: field \"user\" must be a lowercase identifier (a-z, 0-9, _)");
        if (strncmp(spec->user, "pg_", 3) == 0 || strcmp(spec->user, "postgres") == 0 ||
            strcmp(spec->user, "lakebase_safekeeper") == 0 || strcmp(spec->user, "public") == 0)
            return bad(err, cap, "spec: field \"user\": \"%s\" is reserved", spec->user);
    }
    if ((rc = get_str(root, "password_file", "", spec->password_file, sizeof(spec->password_file),
                      need, err, cap)) < 0 ||
        (rc = get_str(root, "safekeeper_password_file", "", spec->safekeeper_password_file,
                      sizeof(spec->safekeeper_password_file), need, err, cap)) < 0 ||
        (rc = get_str(root, "superuser_password_file", "", spec->superuser_password_file,
                      sizeof(spec->superuser_password_file), false, err, cap)) < 0)
        return rc;
    return 0;
}

static int
parse_tree(const json_t *root, cc_spec *spec, char *err, size_t cap)
{
    if (!json_is_object(root))
        return bad(err, cap, "spec: must be a mapping of fields");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)root, key, val)
    {
        if (!in_list(key, top_fields))
            return bad(err, cap, "spec: unknown field \"%.64s\"", key);
    }
    int rc;
    if ((rc = get_str(root, "tenant_id", "", spec->tenant_id, sizeof(spec->tenant_id) + 1, true,
                      err, cap)) < 0)
        return rc;
    if (!lb_json_is_id(spec->tenant_id))
        return bad(err, cap, "spec: field \"tenant_id\" must be 32 lowercase hex characters");
    if ((rc = get_str(root, "timeline_id", "", spec->timeline_id, sizeof(spec->timeline_id) + 1,
                      true, err, cap)) < 0)
        return rc;
    if (!lb_json_is_id(spec->timeline_id))
        return bad(err, cap, "spec: field \"timeline_id\" must be 32 lowercase hex characters");

    char mode[32];
    if ((rc = get_str(root, "mode", "", mode, sizeof(mode), true, err, cap)) < 0) {
        if (strstr(err, "too long")) {
            char names[256];
            mode_names(names, sizeof(names));
            return bad(err, cap, "spec: field \"mode\" must be %s", names);
        }
        return rc;
    }
    size_t m = 0;
    while (m < NMODES && strcmp(mode, cc_modes[m].name) != 0)
        m++;
    if (m == NMODES) {
        char names[256];
        mode_names(names, sizeof(names));
        return bad(err, cap, "spec: field \"mode\" must be %s, not \"%s\"", names, mode);
    }
    spec->mode = (cc_mode)m;
    bool at_lsn = cc_modes[m].at_lsn;

    char lsn[64] = "";
    if ((rc = get_str(root, "lsn", "", lsn, sizeof(lsn), at_lsn, err, cap)) < 0) {
        if (strstr(err, "missing"))
            return bad(err, cap, "spec: missing field \"lsn\" (a static compute needs one)");
        return rc;
    }
    if (rc == 1 && !at_lsn)
        return bad(err, cap, "spec: field \"lsn\" is only for mode static");
    if (rc == 1 && (lb_lsn_parse(lsn, &spec->lsn) != 0 || spec->lsn == 0))
        return bad(err, cap, "spec: field \"lsn\" must be an LSN like \"0/3000028\"");

    if ((rc = get_str(root, "pageserver", "", spec->pageserver, sizeof(spec->pageserver), true, err,
                      cap)) < 0)
        return rc;
    if (!http_url_ok(spec->pageserver))
        return bad(err, cap, "spec: field \"pageserver\" must be an http:// or https:// URL");
    size_t l = strlen(spec->pageserver);
    while (l > 0 && spec->pageserver[l - 1] == '/')
        spec->pageserver[--l] = '\0';

    if ((rc = parse_safekeepers(json_object_get(root, "safekeepers"), spec, err, cap)) < 0)
        return rc;

    json_t *port = json_object_get(root, "pg_port");
    if (!port || json_is_null(port))
        return bad(err, cap, "spec: missing field \"pg_port\"");
    if (!json_is_integer(port) || json_integer_value(port) < 1 || json_integer_value(port) > 65535)
        return bad(err, cap, "spec: field \"pg_port\" must be a port number (1-65535)");
    spec->pg_port = (int)json_integer_value(port);

    char listen[300] = "127.0.0.1:0";
    json_t *lv = json_object_get(root, "listen");
    if (lv && json_is_integer(lv))
        snprintf(listen, sizeof(listen), "127.0.0.1:%lld", (long long)json_integer_value(lv));
    else if ((rc = get_str(root, "listen", "", listen, sizeof(listen), false, err, cap)) < 0)
        return rc;
    lb_hostport hp;
    if (lb_hostport_parse(listen, &hp) != 0)
        return bad(err, cap, "spec: field \"listen\" must be host:port (port 0: any free port)");
    snprintf(spec->listen_host, sizeof(spec->listen_host), "%s", hp.host);
    spec->listen_port = hp.port;

    strcpy(spec->announce_host, "127.0.0.1");
    if ((rc = get_str(root, "announce_host", "", spec->announce_host, sizeof(spec->announce_host),
                      false, err, cap)) < 0)
        return rc;

    if ((rc = get_str(root, "data_dir", "", spec->data_dir, sizeof(spec->data_dir), true, err,
                      cap)) < 0)
        return rc;
    if (spec->data_dir[0] != '/')
        return bad(err, cap, "spec: field \"data_dir\" must be an absolute path");
    if (strcmp(spec->data_dir, "/") == 0)
        return bad(err, cap, "spec: field \"data_dir\" must not be \"/\"");
    /* It holds the unix socket, ".s.PGSQL.<port>": sun_path has 108 bytes. */
    if (strlen(spec->data_dir) > CC_DATA_DIR_MAX)
        return bad(err, cap,
                   "spec: field \"data_dir\" is longer than %d characters (it holds "
                   "PostgreSQL's unix socket)",
                   CC_DATA_DIR_MAX);

    if ((rc = get_str(root, "pg_bin_dir", "", spec->pg_bin_dir, sizeof(spec->pg_bin_dir), false,
                      err, cap)) < 0)
        return rc;
    if (rc == 0)
        lb_pg_bindir(spec->pg_bin_dir, sizeof(spec->pg_bin_dir));
    strcpy(spec->pg_user, "postgres");
    if ((rc = get_str(root, "pg_user", "", spec->pg_user, sizeof(spec->pg_user), false, err, cap)) <
        0)
        return rc;

    if ((rc = parse_roles(root, spec, err, cap)) < 0)
        return rc;

    char token_file[PATH_MAX];
    if ((rc = get_str(root, "auth_token_file", "", token_file, sizeof(token_file), false, err,
                      cap)) < 0)
        return rc;
    if (rc > 0 && lb_auth_token_load(token_file, &spec->auth_token) != 0)
        return bad(err, cap, "spec: field \"auth_token_file\": could not read a token from \"%s\"",
                   token_file);

    /* compute-ctl's HTTP API is never open (AUTH_DESIGN, compute.c). */
    if ((rc = get_str(root, "auth_public_keys", "", spec->auth_public_keys,
                      sizeof(spec->auth_public_keys), true, err, cap)) < 0)
        return rc;
    if ((rc = parse_settings(json_object_get(root, "settings"), spec, err, cap)) < 0)
        return rc;
    return cc_settings_check(spec, err, cap);
}

int
cc_spec_parse(const char *text, size_t len, cc_spec *spec, char *err, size_t cap)
{
    memset(spec, 0, sizeof(*spec));
    err[0] = '\0';
    size_t i = 0;
    while (i < len && isspace((unsigned char)text[i]))
        i++;
    json_t *root = NULL;
    char perr[256] = "";
    if (i < len && text[i] == '{') {
        json_error_t je;
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        if (!root)
            return bad(err, cap, "spec: malformed JSON at line %d column %d: %s", je.line,
                       je.column, je.text);
    } else if (lb_yaml_to_json(text, len, &root, perr, sizeof(perr)) != 0) {
        return bad(err, cap, "spec: malformed YAML: %s", perr);
    } else if (json_is_null(root)) {
        return bad(err, cap, "spec: malformed YAML: the spec is empty");
    }
    int rc = parse_tree(root, spec, err, cap);
    json_decref(root);
    if (rc == -ENOMEM)
        snprintf(err, cap, "out of memory");
    return rc;
}

int
cc_spec_load(const char *path, cc_spec *spec, char *err, size_t cap)
{
    lb_buf text = LB_BUF_INIT;
    memset(spec, 0, sizeof(*spec));
    int rc = lb_read_file(path, &text);
    if (rc) {
        snprintf(err, cap, "could not read spec \"%s\": %s", path, lb_strerror(rc));
        lb_buf_free(&text);
        return rc;
    }
    rc = cc_spec_parse(text.data ? text.data : "", text.len, spec, err, cap);
    lb_buf_free(&text);
    return rc;
}

void
cc_spec_free(cc_spec *spec)
{
    for (size_t i = 0; i < spec->nsettings; i++) {
        free(spec->settings[i].name);
        free(spec->settings[i].value);
    }
    free(spec->settings);
    spec->settings = NULL;
    spec->nsettings = 0;
    lb_auth_token_free(spec->auth_token);
    spec->auth_token = NULL;
}

/* ---- settings ---------------------------------------------------------------------- */

/* Settings compute-ctl writes itself: a user value would fight it. */
static const char *const owned[] = {
    "synchronous_standby_names",
    "archive_mode",
    "archive_command",
    "archive_library",
    "restore_command",
    "primary_conninfo",
    "primary_slot_name",
    "port",
    "recovery_target",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_xid",
    "recovery_target_action",
    "recovery_target_inclusive",
    "recovery_target_timeline",
    "data_directory",
    "config_file",
    "hba_file",
    "ident_file",
    "hot_standby",
    /* what the unix socket, peer authentication and the log watch rest on */
    "unix_socket_directories",
    "unix_socket_permissions",
    "unix_socket_group",
    "logging_collector",
    "log_destination",
    "lc_messages",
    "restart_after_crash",
    "data_sync_retry",
    "allow_in_place_tablespaces",
    NULL,
};

/* A size setting in MB (plain numbers are in unit_kb kilobytes); -1 if malformed. */
static long long
pg_size_mb(const char *v, long long unit_kb)
{
    char *end;
    errno = 0;
    double n = strtod(v, &end);
    if (errno || end == v || n < 0)
        return -1;
    while (*end == ' ')
        end++;
    double kb;
    if (*end == '\0')
        kb = n * (double)unit_kb;
    else if (strcmp(end, "kB") == 0)
        kb = n;
    else if (strcmp(end, "MB") == 0)
        kb = n * 1024;
    else if (strcmp(end, "GB") == 0)
        kb = n * 1024 * 1024;
    else if (strcmp(end, "TB") == 0)
        kb = n * 1024.0 * 1024 * 1024;
    else
        return -1;
    return (long long)(kb / 1024);
}

static const char *
user_setting(const cc_spec *spec, const char *name)
{
    for (size_t i = 0; i < spec->nsettings; i++)
        if (strcmp(spec->settings[i].name, name) == 0)
            return spec->settings[i].value;
    return NULL;
}

const cc_guarded_setting cc_guarded_settings[] = {
    {"synchronous_standby_names", NULL},
    {"fsync", "on"},
    {"full_page_writes", "on"},
    {"synchronous_commit", "on,remote_apply"},
    {"wal_level", "replica,logical"},
    {"restart_after_crash", "off"},
    {"data_sync_retry", "off"},
    {"ignore_checksum_failure", "off"},
    {"zero_damaged_pages", "off"},
    {"allow_in_place_tablespaces", "off"},
    {"logging_collector", "off"},
    {"log_destination", "stderr"},
    {"lc_messages", "C"},
    {"log_min_messages", "debug5,debug4,debug3,debug2,debug1,info,notice,warning"},
    {NULL, NULL},
};

static const char *
guarded(const char *name)
{
    for (int i = 0; cc_guarded_settings[i].name; i++)
        if (strcmp(cc_guarded_settings[i].name, name) == 0)
            return cc_guarded_settings[i].allowed;
    return NULL;
}

/* v (any case) is one of the comma-separated values in list. */
static bool
allowed(const char *v, const char *list)
{
    size_t n = strlen(v);
    for (const char *p = list; p && *p;) {
        size_t l = strcspn(p, ",");
        if (l == n && strncasecmp(p, v, n) == 0)
            return true;
        p += l + (p[l] == ',');
    }
    return false;
}

/* "name = 'x' and setting not in ('a', 'b')" for setting s. */
static int
guard_condition(const cc_spec *spec, const cc_guarded_setting *g, lb_buf *out)
{
    char names[1024];
    int rc = lb_buf_append_str(out, "(name = ");
    rc |= cc_sql_quote(g->name, out);
    rc |= lb_buf_append_str(out, " and setting not in (");
    if (!g->allowed) {
        if (cc_mode_of(spec->mode)->elects)
            cc_sync_standby_names(spec, names, sizeof(names));
        else
            names[0] = '\0';
        rc |= cc_sql_quote(names, out);
    }
    for (const char *p = g->allowed; p && *p;) {
        size_t l = strcspn(p, ",");
        char v[64];
        snprintf(v, sizeof(v), "%.*s", (int)l, p);
        rc |= lb_buf_append_str(out, p == g->allowed ? "" : ", ");
        rc |= cc_sql_quote(v, out);
        p += l + (p[l] == ',');
    }
    return rc | lb_buf_append_str(out, "))");
}

int
cc_guard_query(const cc_spec *spec, lb_buf *out)
{
    int rc = lb_buf_append_str(out, "select format('%s = %s (in force)', name, setting) "
                                    "from pg_settings where ");
    for (int i = 0; cc_guarded_settings[i].name; i++) {
        rc |= lb_buf_append_str(out, i ? " or " : "");
        rc |= guard_condition(spec, &cc_guarded_settings[i], out);
    }
    rc |= lb_buf_append_str(out, " union all select format('%s = %s (in \"%s\" line %s, "
                                 "for the next reload)', name, setting, sourcefile, "
                                 "sourceline) from pg_file_settings where applied and (");
    for (int i = 0; cc_guarded_settings[i].name; i++) {
        rc |= lb_buf_append_str(out, i ? " or " : "");
        rc |= guard_condition(spec, &cc_guarded_settings[i], out);
    }
    rc |= lb_buf_append_str(out, ") union all select format('%s (set for role %s in "
                                 "database %s)', kv, coalesce((select rolname from pg_roles "
                                 "where oid = setrole), 'all'), coalesce((select datname from "
                                 "pg_database where oid = setdatabase), 'all')) from "
                                 "pg_db_role_setting, unnest(setconfig) kv where "
                                 "lower(split_part(kv, '=', 1)) in (");
    for (int i = 0; cc_guarded_settings[i].name; i++) {
        rc |= lb_buf_append_str(out, i ? ", " : "");
        rc |= cc_sql_quote(cc_guarded_settings[i].name, out);
    }
    rc |= lb_buf_append_str(out, ")");
    return rc ? -ENOMEM : 0;
}

int
cc_settings_check(const cc_spec *spec, char *err, size_t cap)
{
    for (size_t i = 0; i < spec->nsettings; i++) {
        const char *name = spec->settings[i].name, *v = spec->settings[i].value;
        bool b;
        if (in_list(name, owned))
            return bad(err, cap,
                       "spec: setting \"%s\" is managed by compute-ctl and cannot be "
                       "set in the spec",
                       name);
        if (strcmp(name, "fsync") == 0 || strcmp(name, "full_page_writes") == 0) {
            if (lb_bool_parse(v, &b) != 0 || !b)
                return bad(err, cap,
                           "spec: setting \"%s\" = \"%s\" is refused: lakebase needs "
                           "%s = on for durability",
                           name, v, name);
        } else if (strcmp(name, "synchronous_commit") == 0) {
            if (!(strcasecmp(v, "remote_apply") == 0 || (lb_bool_parse(v, &b) == 0 && b)))
                return bad(err, cap,
                           "spec: setting \"synchronous_commit\" = \"%s\" is refused: "
                           "a commit must wait for a quorum of safekeepers (allowed: "
                           "on, remote_apply)",
                           v);
        } else if (strcmp(name, "wal_level") == 0) {
            if (strcasecmp(v, "replica") && strcasecmp(v, "logical"))
                return bad(err, cap,
                           "spec: setting \"wal_level\" = \"%s\" is refused: the "
                           "safekeepers and pageserver need replica or logical",
                           v);
        } else if (strcmp(name, "max_wal_size") == 0) {
            long long mb = pg_size_mb(v, 1024);
            if (mb < 0)
                return bad(err, cap, "spec: setting \"max_wal_size\" = \"%s\" is not a size", v);
            if (mb > CC_MAX_WAL_SIZE_MB)
                return bad(err, cap,
                           "spec: setting \"max_wal_size\" = \"%s\" is refused: at "
                           "most %dMB, it bounds the WAL a restart must replay",
                           v, CC_MAX_WAL_SIZE_MB);
        } else if (strcmp(name, "max_wal_senders") == 0) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || end == v || n < spec->nsafekeepers + 5)
                return bad(err, cap,
                           "spec: setting \"max_wal_senders\" = \"%s\" is refused: "
                           "it must be at least %d (one per safekeeper plus 5)",
                           v, spec->nsafekeepers + 5);
        } else if (strcmp(name, "log_min_messages") == 0) {
            if (!allowed(v, guarded("log_min_messages")))
                return bad(err, cap,
                           "spec: setting \"log_min_messages\" = \"%s\" is refused: "
                           "compute-ctl watches the log for warnings (allowed: %s)",
                           v, guarded("log_min_messages"));
        } else if (strcmp(name, "ignore_checksum_failure") == 0 ||
                   strcmp(name, "zero_damaged_pages") == 0) {
            if (lb_bool_parse(v, &b) != 0 || b)
                return bad(err, cap,
                           "spec: setting \"%s\" = \"%s\" is refused: damaged pages "
                           "must stop a compute, not be read",
                           name, v);
        }
    }
    return 0;
}

void
cc_restore_header_path(const cc_spec *spec, char *out, size_t cap)
{
    snprintf(out, cap, "%s/" CC_RESTORE_HEADER, spec->data_dir);
}

int
cc_sql_quote(const char *value, lb_buf *out)
{
    int rc = lb_buf_append_str(out, "'");
    for (const char *p = value; rc == 0 && *p; p++)
        rc = *p == '\'' ? lb_buf_append_str(out, "''") : lb_buf_append(out, p, 1);
    return rc ? rc : lb_buf_append_str(out, "'");
}

int
cc_conf_quote(const char *value, lb_buf *out)
{
    int rc = lb_buf_append_str(out, "'");
    for (const char *p = value; rc == 0 && *p; p++) {
        if (*p == '\'')
            rc = lb_buf_append_str(out, "''");
        else if (*p == '\\')
            rc = lb_buf_append_str(out, "\\\\");
        else
            rc = lb_buf_append(out, p, 1);
    }
    return rc ? rc : lb_buf_append_str(out, "'");
}

void
cc_sync_standby_names(const cc_spec *spec, char *out, size_t cap)
{
    int quorum = spec->nsafekeepers / 2 + 1;
    size_t n = (size_t)snprintf(out, cap, "ANY %d (", quorum);
    for (int i = 0; i < spec->nsafekeepers && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s\"%s\"", i ? ", " : "",
                              spec->safekeepers[i].name);
    if (n < cap)
        snprintf(out + n, cap - n, ")");
}

static int
put(lb_buf *out, const char *name, const char *value)
{
    int rc = lb_buf_printf(out, "%s = ", name);
    if (rc == 0)
        rc = cc_conf_quote(value, out);
    return rc ? rc : lb_buf_append_str(out, "\n");
}

static const struct {
    const char *setting, *control;
    size_t offset;
} minimum_fields[] = {
    {"max_connections", "max_connections setting", offsetof(cc_pg_minimums, max_connections)},
    {"max_worker_processes", "max_worker_processes setting",
     offsetof(cc_pg_minimums, max_worker_processes)},
    {"max_wal_senders", "max_wal_senders setting", offsetof(cc_pg_minimums, max_wal_senders)},
    {"max_prepared_transactions", "max_prepared_xacts setting",
     offsetof(cc_pg_minimums, max_prepared_transactions)},
    {"max_locks_per_transaction", "max_locks_per_xact setting",
     offsetof(cc_pg_minimums, max_locks_per_transaction)},
};
#define NMINIMUMS (sizeof(minimum_fields) / sizeof(minimum_fields[0]))

void
cc_pg_minimums_parse(const char *controldata, cc_pg_minimums *min)
{
    memset(min, 0, sizeof(*min));
    for (size_t i = 0; i < NMINIMUMS; i++) {
        const char *p = strstr(controldata, minimum_fields[i].control);
        if (!p || !(p = strchr(p, ':')))
            continue;
        *(long *)((char *)min + minimum_fields[i].offset) = strtol(p + 1, NULL, 10);
    }
}

/* The value to write for name: at least the minimum the WAL needs. */
static const char *
raised(const cc_pg_minimums *min, const char *name, const char *value, char *buf, size_t cap)
{
    if (!min)
        return value;
    for (size_t i = 0; i < NMINIMUMS; i++) {
        if (strcmp(name, minimum_fields[i].setting) != 0)
            continue;
        long need = *(const long *)((const char *)min + minimum_fields[i].offset);
        char *end;
        long have = value ? strtol(value, &end, 10) : 0;
        if (value && (*end || end == value))
            return value; /* not a number: PostgreSQL will say so */
        if (need > have) {
            snprintf(buf, cap, "%ld", need);
            return buf;
        }
        return value;
    }
    return value;
}

int
cc_settings_render(const cc_spec *spec, const cc_pg_minimums *min, int ctl_port, lb_buf *out)
{
    char restore_header[PATH_MAX + 64];
    cc_restore_header_path(spec, restore_header, sizeof(restore_header));
    char buf[LB_AUTH_TOKEN_MAX + PATH_MAX + 1024], rbuf[32];
    int rc = lb_buf_append_str(out, "# written by compute-ctl on every start; edits are lost\n");
    for (size_t i = 0; i < NMINIMUMS; i++) {
        const char *name = minimum_fields[i].setting;
        if (user_setting(spec, name) || strcmp(name, "max_wal_senders") == 0)
            continue;
        const char *v = raised(min, name, NULL, rbuf, sizeof(rbuf));
        if (v)
            rc |= put(out, name, v);
    }
    /* Defaults a user may change. */
    if (!user_setting(spec, "listen_addresses"))
        rc |= put(out, "listen_addresses", "127.0.0.1");
    /* compute-ctl's superuser connection (pgauth.h). */
    rc |= put(out, "unix_socket_directories", spec->data_dir);
    rc |= put(out, "unix_socket_permissions", "0700");
    if (!user_setting(spec, "wal_level"))
        rc |= put(out, "wal_level", "replica");
    if (!user_setting(spec, "max_wal_senders")) {
        snprintf(buf, sizeof(buf), "%d", spec->nsafekeepers + 5);
        rc |= put(out, "max_wal_senders", raised(min, "max_wal_senders", buf, rbuf, sizeof(rbuf)));
    }
    if (!user_setting(spec, "max_replication_slots"))
        rc |= put(out, "max_replication_slots", "10");
    if (!user_setting(spec, "max_wal_size")) {
        snprintf(buf, sizeof(buf), "%dMB", CC_MAX_WAL_SIZE_MB);
        rc |= put(out, "max_wal_size", buf);
    }
    /* PostgreSQL logs to compute-ctl's pipe, in English: it watches for
     * a cancelled synchronous-replication wait (compute.c). */
    rc |= put(out, "logging_collector", "off");
    rc |= put(out, "log_destination", "stderr");
    rc |= put(out, "lc_messages", "C");
    /* What durability rests on (a user value was checked to agree).
     * After a backend crash, PostgreSQL would recover from its local WAL,
     * which may hold commits no quorum has: compute-ctl restarts from the
     * quorum instead. A failed fsync is never retried. */
    rc |= put(out, "restart_after_crash", "off");
    rc |= put(out, "data_sync_retry", "off");
    rc |= put(out, "allow_in_place_tablespaces", "off");
    rc |= put(out, "fsync", "on");
    rc |= put(out, "full_page_writes", "on");
    if (!user_setting(spec, "synchronous_commit"))
        rc |= put(out, "synchronous_commit", "on");
    rc |= put(out, "archive_mode", "off");
    /* Owned by compute-ctl. */
    snprintf(buf, sizeof(buf), "%d", spec->pg_port);
    rc |= put(out, "port", buf);
    rc |= put(out, "hot_standby", "on");
    /* 404: the file does not exist anywhere (recovery ends there). Any other
     * answer means some source could not be asked: a primary must not end
     * recovery short of the committed WAL, so it makes the failure fatal
     * (exit 127, which PostgreSQL treats like "command not found"). */
    snprintf(buf, sizeof(buf),
             "c=$(curl -s --max-time 300 -H @%s -o %%p -w '%%%%{http_code}' "
             "http://127.0.0.1:%d/wal/%%f); [ \"$c\" = 200 ] && exit 0; rm -f %%p; "
             "[ \"$c\" = 404 ] && exit 1; exit %d",
             restore_header, ctl_port, cc_mode_of(spec->mode)->restore_unsure_exit);
    rc |= put(out, "restore_command", buf);
    rc |= put(out, "recovery_target_timeline", "latest");
    rc |= cc_mode_of(spec->mode)->render(spec, out, buf, sizeof(buf));
    for (size_t i = 0; i < spec->nsettings; i++)
        rc |= put(out, spec->settings[i].name,
                  raised(min, spec->settings[i].name, spec->settings[i].value, rbuf, sizeof(rbuf)));
    return rc ? -ENOMEM : 0;
}

static int
render_primary(const cc_spec *spec, lb_buf *out, char *buf, size_t cap)
{
    /* From the start, not after promotion: no commit is ever acknowledged
     * without a quorum, not even in the moment between promotion and
     * compute-ctl noticing it. */
    cc_sync_standby_names(spec, buf, cap);
    return put(out, "synchronous_standby_names", buf);
}

static int
render_replica(const cc_spec *spec, lb_buf *out, char *buf, size_t cap)
{
    int i =
        spec->stream_from >= 0 && spec->stream_from < spec->nsafekeepers ? spec->stream_from : 0;
    const cc_safekeeper *sk = &spec->safekeepers[i];
    /* The safekeeper takes this compute's token as the password. */
    char token[LB_AUTH_TOKEN_MAX + 1] = "";
    if (spec->auth_token)
        lb_auth_token_get(spec->auth_token, token, sizeof(token));
    snprintf(buf, cap,
             "host=%s port=%d user=postgres application_name=compute-replica "
             "options='-c tenant_id=%s -c timeline_id=%s'%s%s",
             sk->pg_host, sk->pg_port, spec->tenant_id, spec->timeline_id,
             token[0] ? " password=" : "", token);
    explicit_bzero(token, sizeof(token));
    return put(out, "primary_conninfo", buf);
}

static int
render_static(const cc_spec *spec, lb_buf *out, char *buf, size_t cap)
{
    (void)buf;
    (void)cap;
    char lsn[LB_LSN_STRLEN];
    int rc = put(out, "recovery_target_lsn", lb_lsn_format(spec->lsn, lsn));
    rc |= put(out, "recovery_target_action", "pause");
    /* Stop before the first record that starts at or after lsn. */
    return rc | put(out, "recovery_target_inclusive", "off");
}
