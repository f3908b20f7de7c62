/* test_spec.c: a compute's spec in YAML and JSON gives the same fields;
 * every malformed field is refused with its name; settings that would break
 * durability or that compute-ctl owns are refused; the rendered
 * postgresql.auto.conf enforces what lakebase relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "spec.h"

#define TENANT "0123456789abcdef0123456789abcdef"
#define TIMELINE "fedcba9876543210fedcba9876543210"

static const char *const yaml_spec =
    "# a primary\n"
    "tenant_id: " TENANT "\n"
    "timeline_id: \"" TIMELINE "\"\n"
    "mode: primary\n"
    "pageserver: http://127.0.0.1:9898/\n"
    "safekeepers:\n"
    "  - name: sk-0\n"
    "    http: http://127.0.0.1:7676\n"
    "    pg: 127.0.0.1:5454\n"
    "  - {name: sk-1, http: 'http://127.0.0.1:7677', pg: '127.0.0.1:5455'}\n"
    "  - name: sk-2\n"
    "    http: http://[::1]:7678\n"
    "    pg: \"[::1]:5456\"\n"
    "pg_port: 55432\n"
    "listen: 0.0.0.0:3080\n"
    "announce_host: compute-0.lakebase\n"
    "data_dir: /var/lib/lakebase/compute/pgdata\n"
    "pg_bin_dir: /usr/lib/postgresql/15/bin\n"
    "pg_user: pguser\n"
    "user: app\n"
    "password_file: /etc/lakebase/user-password\n"
    "safekeeper_password_file: /etc/lakebase/sk-password\n"
    "superuser_password_file: /etc/lakebase/superuser/password\n"
    "auth_public_keys: /etc/lakebase/keys\n"
    "settings:\n"
    "  shared_buffers: 128MB\n"
    "  Work_Mem: 4096\n"
    "  jit: false\n"
    "  random_page_cost: 1.5\n"
    "  search_path: \"it's, public\"\n";

static const char *const json_spec =
    "{\"tenant_id\": \"" TENANT "\", \"timeline_id\": \"" TIMELINE "\", \"mode\": \"primary\","
    " \"pageserver\": \"http://127.0.0.1:9898/\","
    " \"safekeepers\": [{\"name\": \"sk-0\", \"http\": \"http://127.0.0.1:7676\","
    " \"pg\": \"127.0.0.1:5454\"}, {\"name\": \"sk-1\", \"http\": \"http://127.0.0.1:7677\","
    " \"pg\": \"127.0.0.1:5455\"}, {\"name\": \"sk-2\", \"http\": \"http://[::1]:7678\","
    " \"pg\": \"[::1]:5456\"}],"
    " \"pg_port\": 55432, \"listen\": \"0.0.0.0:3080\", \"announce_host\": "
    "\"compute-0.lakebase\", \"data_dir\": \"/var/lib/lakebase/compute/pgdata\","
    " \"pg_bin_dir\": \"/usr/lib/postgresql/15/bin\", \"pg_user\": \"pguser\","
    " \"user\": \"app\", \"password_file\": \"/etc/lakebase/user-password\","
    " \"safekeeper_password_file\": \"/etc/lakebase/sk-password\","
    " \"superuser_password_file\": \"/etc/lakebase/superuser/password\","
    " \"auth_public_keys\": \"/etc/lakebase/keys\","
    " \"settings\": {\"shared_buffers\": \"128MB\", \"Work_Mem\": 4096, \"jit\": false,"
    " \"random_page_cost\": 1.5, \"search_path\": \"it's, public\"}}";

static const char *
setting(const cc_spec *s, const char *name)
{
    for (size_t i = 0; i < s->nsettings; i++)
        if (strcmp(s->settings[i].name, name) == 0)
            return s->settings[i].value;
    return NULL;
}

static void
check_full_spec(const cc_spec *s)
{
    assert_string_equal(s->tenant_id, TENANT);
    assert_string_equal(s->timeline_id, TIMELINE);
    assert_int_equal(s->mode, CC_MODE_PRIMARY);
    assert_string_equal(s->pageserver, "http://127.0.0.1:9898"); /* trailing slash dropped */
    assert_int_equal(s->nsafekeepers, 3);
    assert_string_equal(s->safekeepers[0].name, "sk-0");
    assert_string_equal(s->safekeepers[1].http, "http://127.0.0.1:7677");
    assert_string_equal(s->safekeepers[1].pg_host, "127.0.0.1");
    assert_int_equal(s->safekeepers[1].pg_port, 5455);
    assert_string_equal(s->safekeepers[2].pg_host, "::1");
    assert_int_equal(s->safekeepers[2].pg_port, 5456);
    assert_int_equal(s->pg_port, 55432);
    assert_string_equal(s->listen_host, "0.0.0.0");
    assert_int_equal(s->listen_port, 3080);
    assert_string_equal(s->announce_host, "compute-0.lakebase");
    assert_string_equal(s->data_dir, "/var/lib/lakebase/compute/pgdata");
    assert_string_equal(s->pg_bin_dir, "/usr/lib/postgresql/15/bin");
    assert_string_equal(s->pg_user, "pguser");
    assert_string_equal(s->user, "app");
    assert_string_equal(s->password_file, "/etc/lakebase/user-password");
    assert_string_equal(s->safekeeper_password_file, "/etc/lakebase/sk-password");
    assert_string_equal(s->superuser_password_file, "/etc/lakebase/superuser/password");
    assert_string_equal(s->auth_public_keys, "/etc/lakebase/keys");
    assert_int_equal(s->nsettings, 5);
    assert_string_equal(setting(s, "shared_buffers"), "128MB");
    assert_string_equal(setting(s, "work_mem"), "4096"); /* names are lowercased */
    assert_string_equal(setting(s, "jit"), "off");
    assert_string_equal(setting(s, "random_page_cost"), "1.5");
    assert_string_equal(setting(s, "search_path"), "it's, public");
}

static void
test_yaml_and_json_give_every_field(void **state)
{
    (void)state;
    const char *texts[] = {yaml_spec, json_spec};
    for (int i = 0; i < 2; i++) {
        cc_spec s;
        char err[512];
        int rc = cc_spec_parse(texts[i], strlen(texts[i]), &s, err, sizeof(err));
        if (rc)
            fail_msg("%s: %s", i ? "json" : "yaml", err);
        check_full_spec(&s);
        cc_spec_free(&s);
    }
}

static void
test_defaults(void **state)
{
    (void)state;
    const char *text = "tenant_id: " TENANT "\ntimeline_id: " TIMELINE "\nmode: replica\n"
                       "pageserver: http://ps:9898\n"
                       "safekeepers: [{name: a, http: 'http://a:1', pg: 'a:2'}]\n"
                       "pg_port: 5432\ndata_dir: /d/pgdata\nauth_public_keys: /k\n";
    cc_spec s;
    char err[512];
    assert_int_equal(cc_spec_parse(text, strlen(text), &s, err, sizeof(err)), 0);
    assert_int_equal(s.mode, CC_MODE_REPLICA);
    assert_string_equal(s.listen_host, "127.0.0.1");
    assert_int_equal(s.listen_port, 0);
    assert_string_equal(s.announce_host, "127.0.0.1");
    assert_string_equal(s.pg_user, "postgres");
    assert_true(s.pg_bin_dir[0] == '/');
    assert_int_equal(s.nsettings, 0);
    cc_spec_free(&s);

    const char *st = "{\"tenant_id\": \"" TENANT "\", \"timeline_id\": \"" TIMELINE "\","
                     " \"mode\": \"static\", \"lsn\": \"0/3000028\", \"pageserver\": "
                     "\"http://ps\", \"safekeepers\": [{\"name\": \"a\", \"http\": "
                     "\"http://a\", \"pg\": \"a:1\"}], \"pg_port\": 1, \"listen\": 8080,"
                     " \"data_dir\": \"/x\", \"auth_public_keys\": \"/k\"}";
    assert_int_equal(cc_spec_parse(st, strlen(st), &s, err, sizeof(err)), 0);
    assert_int_equal(s.mode, CC_MODE_STATIC);
    assert_true(s.lsn == 0x3000028);
    assert_int_equal(s.listen_port, 8080);
    cc_spec_free(&s);

    /* An id of digits only stays a string in YAML. */
    const char *digits = "tenant_id: 01234567890123456789012345678901\ntimeline_id: "
                         "12345678901234567890123456789012\nmode: primary\n"
                         "pageserver: http://ps\nsafekeepers: [{name: a, http: 'http://a', "
                         "pg: 'a:1'}]\npg_port: 1\ndata_dir: /x\nuser: u\n"
                         "password_file: /p\nsafekeeper_password_file: /s\n"
                         "auth_public_keys: /k\n";
    assert_int_equal(cc_spec_parse(digits, strlen(digits), &s, err, sizeof(err)), 0);
    assert_string_equal(s.tenant_id, "01234567890123456789012345678901");
    assert_string_equal(s.timeline_id, "12345678901234567890123456789012");
    cc_spec_free(&s);
}

/* Replace the line starting with key in the YAML spec (or append it when
 * not found); NULL value removes it. */
static char *
yaml_with(const char *key, const char *line)
{
    size_t cap = strlen(yaml_spec) + 1024;
    char *out = calloc(1, cap);
    const char *p = yaml_spec;
    bool replaced = false;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p + 1) : strlen(p);
        if (!replaced && strncmp(p, key, strlen(key)) == 0 && p[strlen(key)] == ':') {
            if (line) {
                strcat(out, line);
                strcat(out, "\n");
            }
            replaced = true;
            /* and the key's indented value lines */
            while (p[n] == ' ') {
                const char *next = strchr(p + n, '\n');
                n = next ? (size_t)(next - p + 1) : strlen(p);
            }
        } else {
            strncat(out, p, n);
        }
        p += n;
    }
    if (!replaced && line) {
        strcat(out, line);
        strcat(out, "\n");
    }
    return out;
}

static void
expect_refused(const char *text, const char *message)
{
    cc_spec s;
    char err[512];
    int rc = cc_spec_parse(text, strlen(text), &s, err, sizeof(err));
    cc_spec_free(&s);
    if (rc != LB_EBADCONFIG)
        fail_msg("accepted, expected \"%s\":\n%s", message, text);
    if (!strstr(err, message))
        fail_msg("error \"%s\" does not say \"%s\"", err, message);
}

static void
test_every_field_refused_by_name(void **state)
{
    (void)state;
    static const struct {
        const char *key, *line, *message;
    } cases[] = {
        {"tenant_id", NULL, "missing field \"tenant_id\""},
        {"tenant_id", "tenant_id: 0123", "\"tenant_id\" must be 32 lowercase hex"},
        {"tenant_id", "tenant_id: 01234567890123456789012345678901x",
         "\"tenant_id\" must be 32 lowercase hex"},
        {"tenant_id", "tenant_id: 0123456789ABCDEF0123456789ABCDEF",
         "\"tenant_id\" must be 32 lowercase hex"},
        {"timeline_id", NULL, "missing field \"timeline_id\""},
        {"user", NULL, "missing field \"user\""},
        {"user", "user: postgres", "\"user\": \"postgres\" is reserved"},
        {"user", "user: lakebase_safekeeper", "\"user\": \"lakebase_safekeeper\" is reserved"},
        {"user", "user: pg_monitor", "\"user\": \"pg_monitor\" is reserved"},
        {"user", "user: App", "\"user\" must be a lowercase identifier"},
        {"user", "user: '1a'", "\"user\" must be a lowercase identifier"},
        {"user", "user: 'a\"; drop'", "\"user\" must be a lowercase identifier"},
        {"user", "user: 12", "\"user\" must be a string"},
        {"password_file", NULL, "missing field \"password_file\""},
        {"safekeeper_password_file", NULL, "missing field \"safekeeper_password_file\""},
        {"superuser_password_file", "superuser_password_file: ''",
         "\"superuser_password_file\" must not be empty"},
        {"superuser_password_file", "superuser_password_file: [a]",
         "\"superuser_password_file\" must be a string"},
        {"auth_public_keys", NULL, "missing field \"auth_public_keys\""},
        {"data_dir",
         "data_dir: /a/very/long/path/that/leaves/no/room/for/the/unix/socket/of/postgresql/"
         "in/its/sun/path/which/has/108/bytes",
         "\"data_dir\" is longer than 90 characters"},
        {"timeline_id", "timeline_id: [1]", "\"timeline_id\" must be a string"},
        {"mode", NULL, "missing field \"mode\""},
        {"mode", "mode: leader", "\"mode\" must be primary, replica or static"},
        {"mode", "mode: static", "missing field \"lsn\""},
        {"lsn", "lsn: 0/3000028", "\"lsn\" is only for mode static"},
        {"pageserver", NULL, "missing field \"pageserver\""},
        {"pageserver", "pageserver: 127.0.0.1:9898", "\"pageserver\" must be an http"},
        {"safekeepers", NULL, "missing field \"safekeepers\""},
        {"safekeepers", "safekeepers: []", "\"safekeepers\" must list 1 to"},
        {"safekeepers", "safekeepers: {a: b}", "\"safekeepers\" must be a list"},
        {"safekeepers", "safekeepers: [x]", "\"safekeepers[0]\" must be a mapping"},
        {"safekeepers", "safekeepers: [{name: a, http: 'http://a'}]",
         "missing field \"safekeepers[0].pg\""},
        {"safekeepers", "safekeepers: [{name: a, pg: 'a:1'}]",
         "missing field \"safekeepers[0].http\""},
        {"safekeepers", "safekeepers: [{http: 'http://a', pg: 'a:1'}]",
         "missing field \"safekeepers[0].name\""},
        {"safekeepers", "safekeepers: [{name: a, http: 'http://a', pg: 'a:1', x: 1}]",
         "unknown field \"safekeepers[0].x\""},
        {"safekeepers", "safekeepers: [{name: a, http: 'ftp://a', pg: 'a:1'}]",
         "\"safekeepers[0].http\" must be an http"},
        {"safekeepers", "safekeepers: [{name: a, http: 'http://a', pg: 'a'}]",
         "\"safekeepers[0].pg\" must be host:port"},
        {"safekeepers", "safekeepers: [{name: a, http: 'http://a', pg: 'a:99999'}]",
         "\"safekeepers[0].pg\" must be host:port"},
        {"safekeepers", "safekeepers: [{name: 'a\"b', http: 'http://a', pg: 'a:1'}]",
         "\"safekeepers[0].name\" must be letters"},
        {"safekeepers",
         "safekeepers: [{name: a, http: 'http://a', pg: 'a:1'}, {name: a, http: 'http://b', "
         "pg: 'b:1'}]",
         "\"safekeepers[1].name\": \"a\" is listed twice"},
        {"pg_port", NULL, "missing field \"pg_port\""},
        {"pg_port", "pg_port: 0", "\"pg_port\" must be a port number"},
        {"pg_port", "pg_port: '5432'", "\"pg_port\" must be a port number"},
        {"listen", "listen: nowhere", "\"listen\" must be host:port"},
        {"data_dir", NULL, "missing field \"data_dir\""},
        {"data_dir", "data_dir: pgdata", "\"data_dir\" must be an absolute path"},
        {"data_dir", "data_dir: /", "\"data_dir\" must not be \"/\""},
        {"pg_user", "pg_user: ''", "\"pg_user\" must not be empty"},
        {"settings", "settings: [a]", "\"settings\" must be a mapping"},
        {"colour", "colour: blue", "unknown field \"colour\""},
        {"mode", "mode: primary\nmode: replica", "key \"mode\" is given twice"},
        {"mode", "mode: [primary", "malformed YAML"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = yaml_with(cases[i].key, cases[i].line);
        expect_refused(text, cases[i].message);
        free(text);
    }
    expect_refused("{\"tenant_id\": ", "malformed JSON");
    expect_refused("{\"tenant_id\": \"a\", \"tenant_id\": \"b\"}", "malformed JSON");
    expect_refused("", "the spec is empty");
    expect_refused("- a\n- b\n", "must be a mapping");
}

static void
test_settings_refused(void **state)
{
    (void)state;
    static const struct {
        const char *line, *message;
    } cases[] = {
        {"  fsync: off", "\"fsync\" = \"off\" is refused"},
        {"  fsync: 'no'", "\"fsync\" = \"no\" is refused"},
        {"  fsync: maybe", "\"fsync\" = \"maybe\" is refused"},
        {"  full_page_writes: false", "\"full_page_writes\" = \"off\" is refused"},
        {"  synchronous_commit: 'off'", "\"synchronous_commit\" = \"off\" is refused"},
        {"  synchronous_commit: local", "\"synchronous_commit\" = \"local\" is refused"},
        {"  synchronous_commit: remote_write", "\"synchronous_commit\" = \"remote_write\""},
        {"  wal_level: minimal", "\"wal_level\" = \"minimal\" is refused"},
        {"  max_wal_size: 2GB", "\"max_wal_size\" = \"2GB\" is refused"},
        {"  max_wal_size: 4096", "\"max_wal_size\" = \"4096\" is refused"},
        {"  max_wal_size: lots", "\"max_wal_size\" = \"lots\" is not a size"},
        {"  max_wal_senders: 3", "\"max_wal_senders\" = \"3\" is refused: it must be at least 8"},
        {"  synchronous_standby_names: '*'", "\"synchronous_standby_names\" is managed"},
        {"  archive_mode: on", "\"archive_mode\" is managed by compute-ctl"},
        {"  restore_command: cp", "\"restore_command\" is managed by compute-ctl"},
        {"  primary_conninfo: x", "\"primary_conninfo\" is managed by compute-ctl"},
        {"  PORT: 1", "\"port\" is managed by compute-ctl"},
        {"  zero_damaged_pages: on", "\"zero_damaged_pages\" = \"on\" is refused"},
        {"  restart_after_crash: on", "\"restart_after_crash\" is managed by compute-ctl"},
        {"  data_sync_retry: on", "\"data_sync_retry\" is managed by compute-ctl"},
        {"  logging_collector: on", "\"logging_collector\" is managed by compute-ctl"},
        {"  log_destination: csvlog", "\"log_destination\" is managed by compute-ctl"},
        {"  lc_messages: de_DE", "\"lc_messages\" is managed by compute-ctl"},
        {"  unix_socket_directories: /tmp", "\"unix_socket_directories\" is managed"},
        {"  allow_in_place_tablespaces: on", "\"allow_in_place_tablespaces\" is managed"},
        {"  log_min_messages: error", "\"log_min_messages\" = \"error\" is refused"},
        {"  log_min_messages: panic", "\"log_min_messages\" = \"panic\" is refused"},
        {"  temp_buffers: [1]", "\"settings.temp_buffers\" must be a string, number or boolean"},
        {"  'bad name': 1", "\"settings.bad name\": not a setting name"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[4096];
        snprintf(text, sizeof(text), "%s%s\n", yaml_spec, cases[i].line);
        expect_refused(text, cases[i].message);
    }
    /* What is allowed. */
    const char *ok[] = {"  synchronous_commit: remote_apply",
                        "  synchronous_commit: on",
                        "  wal_level: logical",
                        "  max_wal_size: 512MB",
                        "  max_wal_senders: 20",
                        "  fsync: true",
                        "  log_min_messages: debug1",
                        "  log_min_messages: WARNING"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char text[4096], err[512];
        snprintf(text, sizeof(text), "%s%s\n", yaml_spec, ok[i]);
        cc_spec s;
        int rc = cc_spec_parse(text, strlen(text), &s, err, sizeof(err));
        if (rc)
            fail_msg("%s refused: %s", ok[i], err);
        cc_spec_free(&s);
    }
}

static char *
render(const char *extra, cc_mode mode, const cc_pg_minimums *min)
{
    char text[4096], err[512];
    snprintf(text, sizeof(text), "%s%s", yaml_spec, extra);
    cc_spec s;
    assert_int_equal(cc_spec_parse(text, strlen(text), &s, err, sizeof(err)), 0);
    s.mode = mode;
    if (mode == CC_MODE_STATIC)
        s.lsn = 0x3000028;
    lb_buf out = LB_BUF_INIT;
    assert_int_equal(cc_settings_render(&s, min, 4242, &out), 0);
    cc_spec_free(&s);
    return lb_buf_steal(&out, NULL);
}

/* The last value given for name (later lines win in postgresql.conf). */
static char *
conf_value(const char *conf, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "%s = ", name);
    const char *found = NULL;
    for (const char *p = conf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            found = p + strlen(prefix);
    if (!found)
        return NULL;
    size_t n = strcspn(found, "\n");
    snprintf(out, cap, "%.*s", (int)n, found);
    return out;
}

static void
test_render_enforces(void **state)
{
    (void)state;
    char v[1024];
    char *conf = render("", CC_MODE_PRIMARY, NULL);
    assert_string_equal(conf_value(conf, "synchronous_standby_names", v, sizeof(v)),
                        "'ANY 2 (\"sk-0\", \"sk-1\", \"sk-2\")'");
    assert_string_equal(conf_value(conf, "fsync", v, sizeof(v)), "'on'");
    assert_string_equal(conf_value(conf, "full_page_writes", v, sizeof(v)), "'on'");
    assert_string_equal(conf_value(conf, "synchronous_commit", v, sizeof(v)), "'on'");
    assert_string_equal(conf_value(conf, "wal_level", v, sizeof(v)), "'replica'");
    assert_string_equal(conf_value(conf, "max_wal_senders", v, sizeof(v)), "'8'");
    assert_string_equal(conf_value(conf, "max_wal_size", v, sizeof(v)), "'1024MB'");
    assert_string_equal(conf_value(conf, "port", v, sizeof(v)), "'55432'");
    assert_string_equal(conf_value(conf, "archive_mode", v, sizeof(v)), "'off'");
    assert_string_equal(conf_value(conf, "restart_after_crash", v, sizeof(v)), "'off'");
    assert_string_equal(conf_value(conf, "data_sync_retry", v, sizeof(v)), "'off'");
    assert_string_equal(conf_value(conf, "logging_collector", v, sizeof(v)), "'off'");
    assert_string_equal(conf_value(conf, "log_destination", v, sizeof(v)), "'stderr'");
    assert_string_equal(conf_value(conf, "lc_messages", v, sizeof(v)), "'C'");
    assert_string_equal(conf_value(conf, "allow_in_place_tablespaces", v, sizeof(v)), "'off'");
    assert_string_equal(conf_value(conf, "unix_socket_directories", v, sizeof(v)),
                        "'/var/lib/lakebase/compute/pgdata'");
    assert_string_equal(conf_value(conf, "unix_socket_permissions", v, sizeof(v)), "'0700'");
    assert_string_equal(conf_value(conf, "search_path", v, sizeof(v)), "'it''s, public'");
    assert_non_null(
        strstr(conf_value(conf, "restore_command", v, sizeof(v)), "http://127.0.0.1:4242/wal/%f"));
    assert_non_null(strstr(v, "exit 127")); /* a primary never promotes on an unsure answer */
    /* its credential for /wal comes from a file, never the command line */
    assert_non_null(strstr(v, "-H @/var/lib/lakebase/compute/pgdata/compute_ctl_restore.header"));
    assert_null(conf_value(conf, "primary_conninfo", v, sizeof(v)));
    free(conf);

    conf = render("  max_wal_size: 256MB\n  max_wal_senders: 12\n  wal_level: logical\n",
                  CC_MODE_PRIMARY, NULL);
    assert_string_equal(conf_value(conf, "max_wal_size", v, sizeof(v)), "'256MB'");
    assert_string_equal(conf_value(conf, "max_wal_senders", v, sizeof(v)), "'12'");
    assert_string_equal(conf_value(conf, "wal_level", v, sizeof(v)), "'logical'");
    free(conf);

    conf = render("", CC_MODE_REPLICA, NULL);
    assert_non_null(conf_value(conf, "primary_conninfo", v, sizeof(v)));
    assert_non_null(strstr(v, "host=127.0.0.1 port=5454 user=postgres"));
    assert_non_null(strstr(v, "options=''-c tenant_id=" TENANT " -c timeline_id=" TIMELINE "''"));
    assert_null(conf_value(conf, "synchronous_standby_names", v, sizeof(v)));
    assert_non_null(strstr(conf_value(conf, "restore_command", v, sizeof(v)), "exit 1"));
    free(conf);

    conf = render("", CC_MODE_STATIC, NULL);
    assert_string_equal(conf_value(conf, "recovery_target_lsn", v, sizeof(v)), "'0/3000028'");
    assert_string_equal(conf_value(conf, "recovery_target_action", v, sizeof(v)), "'pause'");
    assert_string_equal(conf_value(conf, "recovery_target_inclusive", v, sizeof(v)), "'off'");
    assert_string_equal(conf_value(conf, "hot_standby", v, sizeof(v)), "'on'");
    free(conf);

    /* A hot standby needs at least what the WAL was written with. */
    cc_pg_minimums min;
    cc_pg_minimums_parse("max_connections setting:              200\n"
                         "max_wal_senders setting:              10\n"
                         "max_locks_per_xact setting:           64\n",
                         &min);
    assert_int_equal(min.max_connections, 200);
    assert_int_equal(min.max_wal_senders, 10);
    conf = render("  max_connections: 50\n", CC_MODE_PRIMARY, &min);
    assert_string_equal(conf_value(conf, "max_connections", v, sizeof(v)), "'200'");
    assert_string_equal(conf_value(conf, "max_wal_senders", v, sizeof(v)), "'10'");
    assert_string_equal(conf_value(conf, "max_locks_per_transaction", v, sizeof(v)), "'64'");
    free(conf);
}

static void
test_guard_query(void **state)
{
    (void)state;
    char err[512];
    cc_spec s;
    assert_int_equal(cc_spec_parse(yaml_spec, strlen(yaml_spec), &s, err, sizeof(err)), 0);
    lb_buf q = LB_BUF_INIT;
    assert_int_equal(cc_guard_query(&s, &q), 0);
    /* Every guarded setting, in force, pending a reload, and per role or
     * database; the quorum as the spec makes it. */
    assert_non_null(strstr(q.data, "from pg_settings where "));
    assert_non_null(strstr(q.data, "from pg_file_settings where applied and ("));
    assert_non_null(strstr(q.data, "from pg_db_role_setting"));
    assert_non_null(strstr(q.data, "(name = 'synchronous_standby_names' and setting not in "
                                   "('ANY 2 (\"sk-0\", \"sk-1\", \"sk-2\")'))"));
    assert_non_null(
        strstr(q.data, "(name = 'synchronous_commit' and setting not in ('on', 'remote_apply'))"));
    assert_non_null(strstr(q.data, "(name = 'restart_after_crash' and setting not in ('off'))"));
    for (int i = 0; cc_guarded_settings[i].name; i++) {
        char needle[128];
        snprintf(needle, sizeof(needle), "'%s'", cc_guarded_settings[i].name);
        const char *first = strstr(q.data, needle);
        assert_non_null(first);
        assert_non_null(strstr(first + 1, needle));
    }
    lb_buf_free(&q);
    cc_spec_free(&s);
}

static void
test_quote(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    assert_int_equal(cc_conf_quote("a'b\\c", &b), 0);
    assert_string_equal(b.data, "'a''b\\\\c'");
    lb_buf_free(&b);
}

/* Every mode is one row: a name the spec accepts, settings of its own. */
static void
test_mode_table(void **state)
{
    (void)state;
    int n = 0;
    for (cc_mode m = 0; cc_mode_of(m); m++, n++) {
        const cc_mode_info *info = cc_mode_of(m);
        assert_non_null(info->name);
        assert_non_null(info->render);
        assert_string_equal(cc_mode_name(m), info->name);
        assert_true(info->restore_unsure_exit == 1 || info->restore_unsure_exit == 127);
        for (cc_mode o = 0; o < m; o++)
            assert_string_not_equal(cc_mode_of(o)->name, info->name);
        /* The spec takes the row's name. */
        char *text = yaml_with("mode", NULL);
        char full[4096], err[512];
        snprintf(full, sizeof(full), "mode: %s\n%s%s", info->name, text,
                 info->at_lsn ? "lsn: 0/3000028\n" : "");
        free(text);
        cc_spec s;
        int rc = cc_spec_parse(full, strlen(full), &s, err, sizeof(err));
        if (rc)
            fail_msg("mode %s: %s", info->name, err);
        assert_int_equal(s.mode, m);
        cc_spec_free(&s);
    }
    assert_int_equal(n, 3);
    assert_null(cc_mode_of((cc_mode)99));
    assert_string_equal(cc_mode_name((cc_mode)99), "?");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_and_json_give_every_field),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_field_refused_by_name),
        cmocka_unit_test(test_settings_refused),
        cmocka_unit_test(test_render_enforces),
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_guard_query),
        cmocka_unit_test(test_mode_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
