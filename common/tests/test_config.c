/* test_config.c: settings tables load defaults, then YAML, then the command
 * line; every type parses; every refusal names the setting and its file and
 * line, or its option. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "quantity.h"
#include "errors.h"
#include "lsn.h"
#include "testutil.h"

typedef struct sk_conf {
    char *name;
    int64_t workers;
    bool fsync;
    uint64_t wal_buffer;
    int64_t timeout_ms;
    int sync_mode;
    lb_lsn start_lsn;
    lb_config_list peers;
    lb_config_addr listen;
    char *storage_url;
    char *storage_region;
    int64_t storage_retries;
} sk_conf;

static const char *const sync_modes[] = {"off", "local", "remote", NULL};

static const lb_config_setting table[] = {
    LB_SETTING("name", LB_CONFIG_STRING, sk_conf, name, "sk-0", "name of this safekeeper"),
    LB_SETTING_RANGE("workers", LB_CONFIG_INT, sk_conf, workers, "4", "worker threads", 1, 64),
    LB_SETTING("fsync", LB_CONFIG_BOOL, sk_conf, fsync, "true", "fsync the WAL"),
    LB_SETTING_RANGE("wal_buffer", LB_CONFIG_SIZE, sk_conf, wal_buffer, "16MiB", "WAL buffer",
                     64 * 1024, 1024LL * 1024 * 1024),
    LB_SETTING_RANGE("timeout", LB_CONFIG_DURATION, sk_conf, timeout_ms, "10s", "peer timeout", 100,
                     3600 * 1000),
    LB_SETTING_ENUM("sync_mode", sk_conf, sync_mode, "local", "how to sync", sync_modes),
    LB_SETTING("start_lsn", LB_CONFIG_LSN, sk_conf, start_lsn, "0/16B3F10", "where WAL starts"),
    LB_SETTING("peers", LB_CONFIG_LIST, sk_conf, peers, "sk-1:5454, sk-2:5454", "other members"),
    LB_SETTING("listen", LB_CONFIG_ADDR, sk_conf, listen, "127.0.0.1:7676", "HTTP API address"),
    LB_SETTING("storage.url", LB_CONFIG_STRING, sk_conf, storage_url, NULL, "object storage URL"),
    LB_SETTING("storage.region", LB_CONFIG_STRING, sk_conf, storage_region, "us-east-1",
               "S3 region"),
    LB_SETTING_RANGE("storage.retries", LB_CONFIG_INT, sk_conf, storage_retries, "3", "retries", 0,
                     10),
    LB_CONFIG_END,
};

typedef struct ctx {
    char *dir;
    char path[512];
} ctx;

static int
setup(void **state)
{
    ctx *c = calloc(1, sizeof(*c));
    c->dir = tu_tempdir("config");
    assert_non_null(c->dir);
    snprintf(c->path, sizeof(c->path), "%s/sk.yaml", c->dir);
    *state = c;
    return 0;
}

static int
teardown(void **state)
{
    ctx *c = *state;
    tu_rmdir(c->dir);
    free(c);
    return 0;
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Load with a file holding yaml (NULL: no file) and the given arguments. */
static int
load(ctx *c, const char *yaml, sk_conf *conf, lb_config_result *res, int argc, char **argv)
{
    if (yaml)
        write_file(c->path, yaml);
    memset(conf, 0, sizeof(*conf));
    char *noargs[] = {"sk", NULL};
    return lb_config_load(table, conf, yaml ? c->path : NULL, argv ? argc : 1, argv ? argv : noargs,
                          res);
}

static void
done(sk_conf *conf, lb_config_result *res)
{
    lb_config_free(table, conf);
    lb_config_result_free(res);
}

static void
test_defaults_applied(void **state)
{
    ctx *c = *state;
    sk_conf conf;
    lb_config_result res;
    assert_int_equal(load(c, NULL, &conf, &res, 0, NULL), 0);
    assert_string_equal(res.error, "");
    assert_false(res.help);
    assert_null(res.file);
    assert_int_equal(res.npositional, 0);
    assert_string_equal(conf.name, "sk-0");
    assert_int_equal(conf.workers, 4);
    assert_true(conf.fsync);
    assert_int_equal(conf.wal_buffer, 16 * 1024 * 1024);
    assert_int_equal(conf.timeout_ms, 10000);
    assert_int_equal(conf.sync_mode, 1);
    assert_true(conf.start_lsn == 0x16B3F10);
    assert_int_equal(conf.peers.count, 2);
    assert_string_equal(conf.peers.items[0], "sk-1:5454");
    assert_string_equal(conf.peers.items[1], "sk-2:5454");
    assert_string_equal(conf.listen.host, "127.0.0.1");
    assert_int_equal(conf.listen.port, 7676);
    assert_null(conf.storage_url);
    assert_string_equal(conf.storage_region, "us-east-1");
    assert_int_equal(conf.storage_retries, 3);
    done(&conf, &res);
    /* freeing leaves the struct reusable */
    assert_null(conf.name);
    assert_null(conf.peers.items);
    assert_int_equal(conf.peers.count, 0);
}

static void
test_every_type_from_file(void **state)
{
    ctx *c = *state;
    sk_conf conf;
    lb_config_result res;
    const char *yaml = "# safekeeper\n"
                       "name: \"sk-7\"\n"
                       "workers: 16\n"
                       "fsync: off\n"
                       "wal_buffer: 64MiB\n"
                       "timeout: 1m30s\n"
                       "sync_mode: remote\n"
                       "start_lsn: 1/A0\n"
                       "peers:\n"
                       "  - a:1\n"
                       "  - \"b:2\"\n"
                       "  - c:3\n"
                       "listen: '[::1]:0'\n"
                       "storage:\n"
                       "  url: s3://bucket/prefix\n"
                       "  retries: 0\n";
    assert_int_equal(load(c, yaml, &conf, &res, 0, NULL), 0);
    assert_string_equal(res.file, c->path);
    assert_string_equal(conf.name, "sk-7");
    assert_int_equal(conf.workers, 16);
    assert_false(conf.fsync);
    assert_int_equal(conf.wal_buffer, 64 * 1024 * 1024);
    assert_int_equal(conf.timeout_ms, 90000);
    assert_int_equal(conf.sync_mode, 2);
    assert_true(conf.start_lsn == (((lb_lsn)1 << 32) | 0xA0));
    assert_int_equal(conf.peers.count, 3);
    assert_string_equal(conf.peers.items[2], "c:3");
    assert_string_equal(conf.listen.host, "::1");
    assert_int_equal(conf.listen.port, 0);
    assert_string_equal(conf.storage_url, "s3://bucket/prefix");
    assert_string_equal(conf.storage_region, "us-east-1"); /* default kept */
    assert_int_equal(conf.storage_retries, 0);
    done(&conf, &res);

    /* dotted keys work in the file too; an empty list and an empty string */
    assert_int_equal(load(c, "storage.url: file:///x\npeers: []\nname: ''\n", &conf, &res, 0, NULL),
                     0);
    assert_string_equal(conf.storage_url, "file:///x");
    assert_int_equal(conf.peers.count, 0);
    assert_string_equal(conf.name, "");
    done(&conf, &res);

    /* an empty file and a comments-only file change nothing */
    assert_int_equal(load(c, "", &conf, &res, 0, NULL), 0);
    assert_string_equal(conf.name, "sk-0");
    done(&conf, &res);
    assert_int_equal(load(c, "# nothing\n", &conf, &res, 0, NULL), 0);
    assert_int_equal(conf.workers, 4);
    done(&conf, &res);
}

static void
test_precedence_defaults_file_command_line(void **state)
{
    ctx *c = *state;
    sk_conf conf;
    lb_config_result res;
    const char *yaml = "workers: 8\nname: from-file\nstorage:\n  url: s3://file\n"
                       "fsync: false\n";
    char *argv[] = {
        "sk",        "--workers=12", "--storage.url",      "s3://cli", "--fsync", "--peers=x:1,y:2",
        "--timeout", "250ms",        "--wal_buffer=512kB", NULL};
    assert_int_equal(load(c, yaml, &conf, &res, 9, argv), 0);
    assert_int_equal(conf.workers, 12);          /* command line over file */
    assert_string_equal(conf.name, "from-file"); /* file over default */
    assert_string_equal(conf.storage_url, "s3://cli");
    assert_true(conf.fsync); /* bare --fsync is true */
    assert_int_equal(conf.peers.count, 2);
    assert_string_equal(conf.peers.items[1], "y:2");
    assert_int_equal(conf.timeout_ms, 250);
    assert_int_equal(conf.wal_buffer, 512000);
    assert_string_equal(conf.storage_region, "us-east-1"); /* default */
    done(&conf, &res);

    /* the last of repeated options wins; --fsync=false turns it off */
    char *argv2[] = {"sk", "--workers=2", "--workers", "3", "--fsync=false", NULL};
    assert_int_equal(load(c, NULL, &conf, &res, 5, argv2), 0);
    assert_int_equal(conf.workers, 3);
    assert_false(conf.fsync);
    done(&conf, &res);

    /* -c and --config pick the file, replacing the default path */
    char other[600];
    snprintf(other, sizeof(other), "%s/other.yaml", c->dir);
    write_file(other, "workers: 33\n");
    char *argv3[] = {"sk", "-c", other, NULL};
    assert_int_equal(load(c, "workers: 1\n", &conf, &res, 3, argv3), 0);
    assert_int_equal(conf.workers, 33);
    assert_string_equal(res.file, other);
    done(&conf, &res);
    char opt[700];
    snprintf(opt, sizeof(opt), "--config=%s", other);
    char *argv4[] = {"sk", opt, "--workers", "34", NULL};
    assert_int_equal(load(c, NULL, &conf, &res, 4, argv4), 0);
    assert_int_equal(conf.workers, 34);
    done(&conf, &res);
}

static void
test_positional_arguments_returned(void **state)
{
    ctx *c = *state;
    sk_conf conf;
    lb_config_result res;
    char *argv[] = {"sk", "run", "--workers=5", "extra", "-", "--", "--workers=9", "-x", NULL};
    assert_int_equal(load(c, NULL, &conf, &res, 8, argv), 0);
    assert_int_equal(conf.workers, 5);
    assert_int_equal(res.npositional, 5);
    assert_string_equal(res.positional[0], "run");
    assert_string_equal(res.positional[1], "extra");
    assert_string_equal(res.positional[2], "-");
    assert_string_equal(res.positional[3], "--workers=9");
    assert_string_equal(res.positional[4], "-x");
    assert_null(res.positional[5]);
    done(&conf, &res);
}

typedef struct file_case {
    const char *yaml;
    const char *message; /* after 'config "<path>" ' */
} file_case;

static void
test_file_errors_name_key_and_line(void **state)
{
    ctx *c = *state;
    const file_case cases[] = {
        {"name: a\nworkers: 2\n\nfsync_mod: on\n", "line 4: unknown setting \"fsync_mod\""},
        {"storage:\n  url: x\n  bucket: y\n", "line 3: unknown setting \"storage.bucket\""},
        {"workers: many\n",
         "line 1: invalid value \"many\" for setting \"workers\": must be an integer"},
        {"workers: 65\n", "line 1: invalid value \"65\" for setting \"workers\": must be an "
                          "integer between 1 and 64"},
        {"workers: 99999999999999999999\n",
         "line 1: invalid value \"99999999999999999999\" for setting \"workers\": must be an "
         "integer"},
        {"fsync: perhaps\n",
         "line 1: invalid value \"perhaps\" for setting \"fsync\": must be true or false"},
        {"wal_buffer: 64 MiB\n", "line 1: invalid value \"64 MiB\" for setting \"wal_buffer\": "
                                 "must be a size like \"64MiB\", \"512kB\" or \"4096\""},
        {"wal_buffer: 2GiB\n", "line 1: invalid value \"2GiB\" for setting \"wal_buffer\": must "
                               "be a size between 64KiB and 1GiB"},
        {"timeout: 10\n", "line 1: invalid value \"10\" for setting \"timeout\": must be a "
                          "duration like \"500ms\", \"10s\" or \"5m\""},
        {"timeout: 2h\n", "line 1: invalid value \"2h\" for setting \"timeout\": must be a "
                          "duration between 100ms and 1h"},
        {"sync_mode: fast\n", "line 1: invalid value \"fast\" for setting \"sync_mode\": must be "
                              "one of \"off\", \"local\", \"remote\""},
        {"start_lsn: 16B3F10\n", "line 1: invalid value \"16B3F10\" for setting \"start_lsn\": "
                                 "must be an LSN like \"0/16B3F10\""},
        {"listen: localhost\n", "line 1: invalid value \"localhost\" for setting \"listen\": "
                                "must be an address like \"127.0.0.1:5432\" or \"[::1]:5432\""},
        {"workers:\n  - 1\n  - 2\n",
         "line 2: setting \"workers\" must be a single value, not a list"},
        {"name:\n  first: a\n", "line 2: setting \"name\" must be a single value, not a mapping"},
        {"peers:\n  - a\n  - {x: 1}\n", "line 3: setting \"peers\" must be a list of plain values"},
        {"peers: {a: 1}\n", "line 1: setting \"peers\" must be a single value, not a mapping"},
        {"storage: s3://x\n", "line 1: \"storage\" is a group of settings and must be a mapping"},
        {"workers: 1\nname: x\nworkers: 2\n",
         "line 3: duplicate key \"workers\" (first at line 1)"},
        {"storage:\n  url: a\nstorage.url: b\n",
         "line 3: duplicate setting \"storage.url\" (first at line 2)"},
        {"storage:\n  url: a\nstorage:\n  region: b\n",
         "line 3: duplicate key \"storage\" (first at line 1)"},
        {"workers:\n", "line 1: setting \"workers\" has no value"},
        {"name: ~\n", "line 1: setting \"name\" has no value"},
        {"name: \"a\\0b\"\n", "line 1: setting \"name\" contains a NUL byte"},
        {"- workers\n- 2\n", "line 1: expected a mapping of settings"},
        {"just text\n", "line 1: expected a mapping of settings"},
        {"? [a, b]\n: 1\n", "line 1: keys must be setting names"},
        {"workers: 1\n---\nworkers: 2\n", "line 3: more than one YAML document"},
        {"workers: [1\n", "line 2: malformed YAML: did not find expected ',' or ']' while "
                          "parsing a flow sequence"},
        {"name: a\n  workers: 2\n", "line 2: malformed YAML: mapping values are not allowed in "
                                    "this context"},
        {"name: \"unterminated\n", "line 2: malformed YAML: found unexpected end of stream "
                                   "while scanning a quoted scalar"},
        {"name: \xff\xfe\n", "line 1: malformed YAML: invalid leading UTF-8 octet"},
        {"a: &x {b: *x}\n", "line 1: aliases are not supported"},
        {"a: &x 1\nb: *x\n", "line 2: aliases are not supported"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sk_conf conf;
        lb_config_result res;
        int rc = load(c, cases[i].yaml, &conf, &res, 0, NULL);
        char expect[1024];
        snprintf(expect, sizeof(expect), "config \"%s\" %s", c->path, cases[i].message);
        if (rc != LB_EBADCONFIG || strcmp(res.error, expect) != 0)
            fail_msg("case %zu: rc %d\n got: %s\nwant: %s", i, rc, res.error, expect);
        done(&conf, &res);
    }
}

static void
test_hostile_yaml_refused_without_crash(void **state)
{
    ctx *c = *state;
    sk_conf conf;
    lb_config_result res;
    /* very deep nesting */
    size_t depth = 200000;
    char *deep = malloc(2 * depth + 32);
    strcpy(deep, "workers: ");
    size_t n = strlen(deep);
    memset(deep + n, '[', depth);
    memset(deep + n + depth, ']', depth);
    deep[n + 2 * depth] = '\0';
    assert_int_equal(load(c, deep, &conf, &res, 0, NULL), LB_EBADCONFIG);
    char expect[700];
    snprintf(expect, sizeof(expect), "config \"%s\" line 1: nested too deeply", c->path);
    assert_string_equal(res.error, expect);
    done(&conf, &res);
    memset(deep, '{', depth);
    deep[depth] = '\0';
    assert_int_equal(load(c, deep, &conf, &res, 0, NULL), LB_EBADCONFIG);
    done(&conf, &res);
    free(deep);
    /* many aliases of one big list ("billion laughs") */
    lb_buf y = LB_BUF_INIT;
    lb_buf_append_str(&y, "a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (char k = 'b'; k <= 'j'; k++)
        lb_buf_printf(&y, "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", k, k,
                      k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1);
    lb_buf_append_str(&y, "peers: *j\n");
    assert_int_equal(load(c, y.data, &conf, &res, 0, NULL), LB_EBADCONFIG);
    assert_non_null(strstr(res.error, "line 2: aliases are not supported"));
    done(&conf, &res);
    lb_buf_reset(&y);
    lb_buf_append_str(&y, "peers: &p [a, *p]\n");
    assert_int_equal(load(c, y.data, &conf, &res, 0, NULL), LB_EBADCONFIG);
    done(&conf, &res);
    lb_buf_free(&y);
}

static void
test_command_line_errors_name_option(void **state)
{
    ctx *c = *state;
    struct {
        char *argv[4];
        const char *message;
    } cases[] = {
        {{"sk", "--fsync_mod=on"}, "unknown option \"--fsync_mod\""},
        {{"sk", "--storage"}, "unknown option \"--storage\""},
        {{"sk", "-x"}, "unknown option \"-x\""},
        {{"sk", "--workers"}, "option \"--workers\" needs a value"},
        {{"sk", "-c"}, "option \"-c\" needs a file name"},
        {{"sk", "--workers=0"},
         "invalid value \"0\" for option \"--workers\": must be an integer between 1 and 64"},
        {{"sk", "--storage.retries", "x"},
         "invalid value \"x\" for option \"--storage.retries\": must be an integer"},
        {{"sk", "--fsync=maybe"},
         "invalid value \"maybe\" for option \"--fsync\": must be true "
         "or false"},
        {{"sk", "--peers=a,,b"},
         "invalid value \"a,,b\" for option \"--peers\": must be a "
         "comma-separated list without empty items"},
        {{"sk", "--listen=1.2.3.4:70000"},
         "invalid value \"1.2.3.4:70000\" for option \"--listen\": must be an address like "
         "\"127.0.0.1:5432\" or \"[::1]:5432\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int argc = 0;
        while (argc < 4 && cases[i].argv[argc])
            argc++;
        sk_conf conf;
        lb_config_result res;
        int rc = load(c, NULL, &conf, &res, argc, cases[i].argv);
        if (rc != LB_EBADCONFIG || strcmp(res.error, cases[i].message) != 0)
            fail_msg("case %zu: rc %d\n got: %s\nwant: %s", i, rc, res.error, cases[i].message);
        done(&conf, &res);
    }
    /* a bad option wins over a good file, and a bad file over good options */
    sk_conf conf;
    lb_config_result res;
    char *argv[] = {"sk", "--workers=1000", NULL};
    assert_int_equal(load(c, "workers: 5\n", &conf, &res, 2, argv), LB_EBADCONFIG);
    assert_non_null(strstr(res.error, "option \"--workers\""));
    done(&conf, &res);
    char *argv2[] = {"sk", "--workers=10", NULL};
    assert_int_equal(load(c, "workers: 0\n", &conf, &res, 2, argv2), LB_EBADCONFIG);
    assert_non_null(strstr(res.error, "line 1: invalid value \"0\" for setting \"workers\""));
    done(&conf, &res);
}

static void
test_missing_file(void **state)
{
    ctx *c = *state;
    sk_conf conf = {0};
    lb_config_result res;
    char path[600];
    snprintf(path, sizeof(path), "%s/absent.yaml", c->dir);
    char *argv[] = {"sk", NULL};
    assert_int_equal(lb_config_load(table, &conf, path, 1, argv, &res), -ENOENT);
    char expect[700];
    snprintf(expect, sizeof(expect), "could not read config \"%s\": No such file or directory",
             path);
    assert_string_equal(res.error, expect);
    done(&conf, &res);
    /* a directory is not a config file either */
    assert_int_not_equal(lb_config_load(table, &conf, c->dir, 1, argv, &res), 0);
    assert_non_null(strstr(res.error, c->dir));
    done(&conf, &res);
}

static void
test_required_setting(void **state)
{
    ctx *c = *state;
    typedef struct {
        char *tenant;
    } tconf;
    const lb_config_setting t[] = {
        LB_SETTING_REQUIRED("tenant_id", LB_CONFIG_STRING, tconf, tenant, "tenant"),
        LB_CONFIG_END,
    };
    tconf conf = {0};
    lb_config_result res;
    char *argv[] = {"x", NULL};
    assert_int_equal(lb_config_load(t, &conf, NULL, 1, argv, &res), LB_EBADCONFIG);
    assert_string_equal(res.error, "setting \"tenant_id\" is required: set it in the config file "
                                   "or with --tenant_id");
    lb_config_free(t, &conf);
    lb_config_result_free(&res);
    write_file(c->path, "tenant_id: abc\n");
    assert_int_equal(lb_config_load(t, &conf, c->path, 1, argv, &res), 0);
    assert_string_equal(conf.tenant, "abc");
    lb_config_free(t, &conf);
    lb_config_result_free(&res);
    char *argv2[] = {"x", "--tenant_id=def", NULL};
    assert_int_equal(lb_config_load(t, &conf, NULL, 2, argv2, &res), 0);
    assert_string_equal(conf.tenant, "def");
    lb_config_free(t, &conf);
    lb_config_result_free(&res);
}

static void
test_help_generated_from_table(void **state)
{
    ctx *c = *state;
    lb_buf out = LB_BUF_INIT;
    assert_int_equal(lb_config_help(table, "safekeeper", "[options] [run]", &out), 0);
    const char *needles[] = {
        "usage: safekeeper [options] [run]\n",
        "  -c, --config FILE\n",
        "  -h, --help\n",
        "  --workers N\n        worker threads (default: 4) (between 1 and 64)\n",
        "  --fsync[=true|false]\n        fsync the WAL (default: true)\n",
        "  --wal_buffer SIZE\n        WAL buffer (default: 16MiB) (between 64KiB and 1GiB)\n",
        "  --sync_mode off|local|remote\n",
        "  --storage.url TEXT\n        object storage URL\n",
        "  --listen HOST:PORT\n",
        "  --peers A,B,...\n",
        "  --start_lsn LSN\n",
        "  --timeout DURATION\n        peer timeout (default: 10s) (between 100ms and 1h)\n",
    };
    for (size_t i = 0; i < sizeof(needles) / sizeof(needles[0]); i++)
        if (!strstr(out.data, needles[i]))
            fail_msg("help lacks \"%s\":\n%s", needles[i], out.data);
    lb_buf_free(&out);

    /* --help loads nothing, not even a broken file, and beats bad options */
    sk_conf conf;
    lb_config_result res;
    char *argv[] = {"sk", "--bogus", "--help", NULL};
    assert_int_equal(load(c, "this: [is broken", &conf, &res, 3, argv), 0);
    assert_true(res.help);
    assert_null(conf.name);
    done(&conf, &res);
    char *argv2[] = {"sk", "--", "-h", NULL};
    assert_int_equal(load(c, NULL, &conf, &res, 3, argv2), 0);
    assert_false(res.help); /* after "--" it is an argument */
    done(&conf, &res);
}

static void
test_value_parsers(void **state)
{
    (void)state;
    uint64_t b;
    assert_int_equal(lb_config_parse_size("0", &b), 0);
    assert_true(b == 0);
    assert_int_equal(lb_config_parse_size("4096", &b), 0);
    assert_true(b == 4096);
    assert_int_equal(lb_config_parse_size("10B", &b), 0);
    assert_true(b == 10);
    assert_int_equal(lb_config_parse_size("3kB", &b), 0);
    assert_true(b == 3000);
    assert_int_equal(lb_config_parse_size("3KiB", &b), 0);
    assert_true(b == 3072);
    assert_int_equal(lb_config_parse_size("2TiB", &b), 0);
    assert_true(b == 2ull << 40);
    assert_int_equal(lb_config_parse_size("16777216TiB", &b), LB_EPARSE); /* overflows */
    assert_int_equal(lb_config_parse_size("99999999999999999999", &b), LB_EPARSE);
    const char *bad_sizes[] = {"", "MiB", "-1", "+5", "1.5GiB", "5 MiB", "5mib", "5K", "5iB"};
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++)
        assert_int_equal(lb_config_parse_size(bad_sizes[i], &b), LB_EPARSE);

    int64_t ms;
    assert_int_equal(lb_duration_parse("0", &ms), 0);
    assert_true(ms == 0);
    assert_int_equal(lb_duration_parse("500ms", &ms), 0);
    assert_true(ms == 500);
    assert_int_equal(lb_duration_parse("10s", &ms), 0);
    assert_true(ms == 10000);
    assert_int_equal(lb_duration_parse("5m", &ms), 0);
    assert_true(ms == 300000);
    assert_int_equal(lb_duration_parse("1h30m15s", &ms), 0);
    assert_true(ms == 5415000);
    assert_int_equal(lb_duration_parse("2d", &ms), 0);
    assert_true(ms == 172800000);
    assert_int_equal(lb_duration_parse("1.5s", &ms), 0); /* Go's grammar: fractions */
    assert_true(ms == 1500);
    const char *bad_durations[] = {"",     "10", "s",   "-1s", "1.5.s",
                                   "10 s", "1x", "1s2", "ms",  "99999999999999999999d"};
    for (size_t i = 0; i < sizeof(bad_durations) / sizeof(bad_durations[0]); i++)
        assert_int_equal(lb_duration_parse(bad_durations[i], &ms), LB_EPARSE);
    assert_int_equal(lb_duration_parse("106751991168d", &ms), LB_EPARSE); /* overflow */
    assert_int_equal(lb_duration_parse("100000000d", &ms), 0);            /* 8.64e15 ms fits */
}

static void
test_bad_tables_refused(void **state)
{
    (void)state;
    typedef struct {
        int64_t a;
        int64_t b;
        int e;
    } small;
    struct {
        lb_config_setting t[3];
        const char *message;
    } cases[] = {
        {{LB_SETTING("Bad", LB_CONFIG_INT, small, a, NULL, ""), LB_CONFIG_END},
         "bad settings table: invalid name \"Bad\""},
        {{LB_SETTING("a..b", LB_CONFIG_INT, small, a, NULL, ""), LB_CONFIG_END},
         "bad settings table: invalid name \"a..b\""},
        {{LB_SETTING("a", LB_CONFIG_INT, small, a, NULL, ""),
          LB_SETTING("a", LB_CONFIG_INT, small, b, NULL, "")},
         "bad settings table: \"a\" declared twice"},
        {{LB_SETTING("a", LB_CONFIG_INT, small, a, NULL, ""),
          LB_SETTING("a.b", LB_CONFIG_INT, small, b, NULL, "")},
         "bad settings table: \"a\" is both a setting and a group"},
        {{LB_SETTING("a", LB_CONFIG_INT, small, a, "ten", ""), LB_CONFIG_END},
         "bad settings table: default \"ten\" of \"a\" must be an integer"},
        {{LB_SETTING_ENUM("e", small, e, "x", "", NULL), LB_CONFIG_END},
         "bad settings table: enum \"e\" has no choices"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        small conf = {0};
        lb_config_result res;
        char *argv[] = {"x", NULL};
        /* the zeroed third entry terminates the two-entry tables */
        assert_int_equal(lb_config_load(cases[i].t, &conf, NULL, 1, argv, &res), LB_EBADCONFIG);
        assert_string_equal(res.error, cases[i].message);
        lb_config_result_free(&res);
    }
}

static void
test_reload_replaces_values(void **state)
{
    ctx *c = *state;
    sk_conf conf;
    lb_config_result res;
    assert_int_equal(load(c, "name: first\npeers: [a, b]\n", &conf, &res, 0, NULL), 0);
    lb_config_result_free(&res);
    /* loading again into the same struct frees what the first load stored */
    write_file(c->path, "name: second\n");
    char *argv[] = {"sk", NULL};
    assert_int_equal(lb_config_load(table, &conf, c->path, 1, argv, &res), 0);
    assert_string_equal(conf.name, "second");
    assert_int_equal(conf.peers.count, 2); /* back to the default list */
    assert_string_equal(conf.peers.items[0], "sk-1:5454");
    done(&conf, &res);
}

/* One vocabulary for booleans: settings files, compute specs (YAML and
 * PostgreSQL settings in them). */
static void
test_bool_vocabulary(void **state)
{
    (void)state;
    const char *yes[] = {"true", "TRUE", "True", "yes", "Yes", "on", "ON", "1"};
    const char *no[] = {"false", "FALSE", "no", "NO", "off", "Off", "0"};
    bool b;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        b = false;
        assert_int_equal(lb_bool_parse(yes[i], &b), 0);
        assert_true(b);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        b = true;
        assert_int_equal(lb_bool_parse(no[i], &b), 0);
        assert_false(b);
    }
    const char *bad[] = {"", "t", "f", "y", "n", "2", "truee", " on", "on ", "of", "yes!", NULL};
    for (int i = 0; bad[i]; i++)
        if (lb_bool_parse(bad[i], &b) == 0)
            fail_msg("\"%s\" read as a boolean", bad[i]);
    assert_int_equal(lb_bool_parse(NULL, &b), LB_EPARSE);
}

static json_t *
yaml_json(const char *text)
{
    json_t *j = NULL;
    char err[256];
    int rc = lb_yaml_to_json(text, strlen(text), &j, err, sizeof(err));
    if (rc)
        fail_msg("\"%s\": %s", text, err);
    return j;
}

static void
test_yaml_to_json(void **state)
{
    (void)state;
    json_t *j = yaml_json("i: 42\nneg: -7\nreal: 1.5\nt: true\ny: yes\nOff: OFF\n"
                          "zero: 0\none: 1\nid: 0123\nbig: 99999999999999999999\n"
                          "q: \"42\"\ns: 'true'\nnull1: ~\nnull2:\nword: hello\n"
                          "list: [a, 2, {k: v}]\nnested: {a: {b: c}}\ninf: .inf\n");
    assert_int_equal(json_integer_value(json_object_get(j, "i")), 42);
    assert_int_equal(json_integer_value(json_object_get(j, "neg")), -7);
    assert_true(json_real_value(json_object_get(j, "real")) == 1.5);
    assert_true(json_is_true(json_object_get(j, "t")));
    assert_true(json_is_true(json_object_get(j, "y")));
    assert_true(json_is_false(json_object_get(j, "Off")));
    /* 1 and 0 are numbers, not booleans */
    assert_int_equal(json_integer_value(json_object_get(j, "zero")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "one")), 1);
    /* numbers that would not survive as numbers stay strings */
    assert_string_equal(json_string_value(json_object_get(j, "id")), "0123");
    assert_string_equal(json_string_value(json_object_get(j, "big")), "99999999999999999999");
    assert_string_equal(json_string_value(json_object_get(j, "q")), "42");
    assert_string_equal(json_string_value(json_object_get(j, "s")), "true");
    assert_true(json_is_null(json_object_get(j, "null1")));
    assert_true(json_is_null(json_object_get(j, "null2")));
    assert_string_equal(json_string_value(json_object_get(j, "word")), "hello");
    assert_string_equal(json_string_value(json_object_get(j, "inf")), ".inf");
    json_t *list = json_object_get(j, "list");
    assert_int_equal(json_array_size(list), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 2), "k")), "v");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_object_get(j, "nested"), "a"), "b")),
        "c");
    json_decref(j);
    j = yaml_json("# only a comment\n");
    assert_true(json_is_null(j));
    json_decref(j);
    j = yaml_json("- 1\n- two\n");
    assert_int_equal(json_array_size(j), 2);
    json_decref(j);
}

static void
test_yaml_to_json_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *message;
    } cases[] = {
        {"a: 1\na: 2\n", "line 2: key \"a\" is given twice"},
        {"a: {b: 1, b: 2}\n", "line 1: key \"b\" is given twice"},
        {"a: &x 1\nb: *x\n", "line 2: aliases are not supported"},
        {"? [a, b]\n: 1\n", "line 1: only plain keys are supported"},
        {"a: 1\n---\nb: 2\n", "line 3: more than one YAML document"},
        {"a: [1\n", "line 2: malformed YAML"},
        {"a: \"x\\0y\"\n", "line 1: a NUL character in a value"},
        {"a: \xff\n", "malformed YAML: invalid leading UTF-8 octet"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = (json_t *)1;
        char err[256];
        int rc = lb_yaml_to_json(cases[i].yaml, strlen(cases[i].yaml), &j, err, sizeof(err));
        if (rc != LB_EPARSE || j != NULL || !strstr(err, cases[i].message))
            fail_msg("case %zu: rc %d, error \"%s\", want \"%s\"", i, rc, rc ? err : "",
                     cases[i].message);
    }
    /* Deep nesting is refused before libyaml builds it. */
    char deep[200];
    memset(deep, '[', 100);
    deep[100] = '\0';
    json_t *j = NULL;
    char err[256];
    assert_int_equal(lb_yaml_to_json(deep, strlen(deep), &j, err, sizeof(err)), LB_EPARSE);
    assert_non_null(strstr(err, "nested too deeply"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_type_from_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence_defaults_file_command_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_positional_arguments_returned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_errors_name_key_and_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_yaml_refused_without_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_line_errors_name_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_required_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_generated_from_table, setup, teardown),
        cmocka_unit_test(test_value_parsers),
        cmocka_unit_test(test_bad_tables_refused),
        cmocka_unit_test(test_bool_vocabulary),
        cmocka_unit_test(test_yaml_to_json),
        cmocka_unit_test(test_yaml_to_json_refusals),
        cmocka_unit_test_setup_teardown(test_reload_replaces_values, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
