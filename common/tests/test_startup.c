/*
 * test_startup.c: lb_startup() loads the table, starts the log at its
 * log_level (or the program's default), answers --help with exit code 0,
 * and refuses a bad level or an argument too many with exit code 2 and a
 * line naming the program on stderr.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "startup.h"

typedef struct demo_conf {
    char *name;
    int log_level;
} demo_conf;

static const lb_config_setting with_level[] = {
    LB_SETTING("name", LB_CONFIG_STRING, demo_conf, name, "x", "a name"),
    LB_SETTING_LOG_LEVEL(demo_conf, log_level),
    LB_CONFIG_END,
};

/* As the controller's table: log_level a string of the level words. */
typedef struct str_conf {
    char *name;
    int64_t workers;
    char *log_level;
} str_conf;

static const lb_config_setting with_string_level[] = {
    LB_SETTING("name", LB_CONFIG_STRING, str_conf, name, "x", "a name"),
    LB_SETTING_RANGE("workers", LB_CONFIG_INT, str_conf, workers, "2", "how many", 1, 64),
    LB_SETTING("log_level", LB_CONFIG_STRING, str_conf, log_level, "info", "a level"),
    LB_CONFIG_END,
};

static const lb_config_setting without_level[] = {
    LB_SETTING("name", LB_CONFIG_STRING, demo_conf, name, "x", "a name"),
    LB_CONFIG_END,
};

/* Run lb_startup() with stdout and stderr going to files; their text in
 * out/err (caller frees). */
static int
run(const lb_config_setting *table, int npos, lb_log_level level, char **argv, demo_conf *conf,
    lb_config_result *res, char **out, char **err)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    memset(conf, 0, sizeof(*conf));
    fflush(stdout);
    fflush(stderr);
    FILE *o = tmpfile(), *e = tmpfile();
    assert_non_null(o);
    assert_non_null(e);
    int saved_out = dup(1), saved_err = dup(2);
    dup2(fileno(o), 1);
    dup2(fileno(e), 2);
    const lb_startup_spec spec = {.program = "demo",
                                  .usage = "[options]",
                                  .settings = table,
                                  .conf = conf,
                                  .max_positional = npos,
                                  .level = level};
    int code = lb_startup(&spec, argc, argv, res);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    FILE *files[2] = {o, e};
    char **texts[2] = {out, err};
    for (int i = 0; i < 2; i++) {
        long n = ftell(files[i]);
        *texts[i] = calloc(1, (size_t)n + 1);
        rewind(files[i]);
        assert_int_equal(fread(*texts[i], 1, (size_t)n, files[i]), (size_t)n);
        fclose(files[i]);
    }
    return code;
}

static void
test_loads_and_sets_the_level(void **state)
{
    (void)state;
    demo_conf conf;
    lb_config_result res;
    char *out, *err;
    char *argv[] = {"demo", "--log_level", "debug", "--name", "n1", "pos", NULL};
    assert_int_equal(run(with_level, 1, LB_LOG_ERROR, argv, &conf, &res, &out, &err), -1);
    assert_int_equal(lb_log_get_level(), LB_LOG_DEBUG);
    assert_int_equal(conf.log_level, LB_LOG_DEBUG);
    assert_string_equal(conf.name, "n1");
    assert_int_equal(res.npositional, 1);
    assert_string_equal(res.positional[0], "pos");
    assert_string_equal(out, "");
    assert_string_equal(err, "");
    lb_config_result_free(&res);
    lb_config_free(with_level, &conf);
    free(out);
    free(err);

    /* no log_level in the table: the program's default threshold */
    char *argv2[] = {"demo", NULL};
    assert_int_equal(run(without_level, 0, LB_LOG_WARN, argv2, &conf, &res, &out, &err), -1);
    assert_int_equal(lb_log_get_level(), LB_LOG_WARN);
    lb_config_result_free(&res);
    lb_config_free(without_level, &conf);
    free(out);
    free(err);
}

static void
test_help_exits_zero(void **state)
{
    (void)state;
    demo_conf conf;
    lb_config_result res;
    char *out, *err;
    char *argv[] = {"demo", "--help", NULL};
    assert_int_equal(run(with_level, 0, LB_LOG_INFO, argv, &conf, &res, &out, &err), 0);
    assert_non_null(strstr(out, "usage: demo [options]"));
    assert_non_null(strstr(out, "log_level"));
    assert_string_equal(err, "");
    free(out);
    free(err);
}

static void
test_bad_level_and_extra_arguments_exit_two(void **state)
{
    (void)state;
    demo_conf conf;
    lb_config_result res;
    char *out, *err;
    char *argv[] = {"demo", "--log_level", "verbose", NULL};
    assert_int_equal(run(with_level, 0, LB_LOG_INFO, argv, &conf, &res, &out, &err),
                     LB_STARTUP_EXIT_USAGE);
    assert_true(strncmp(err, "demo: ", 6) == 0);
    assert_non_null(strstr(err, "\"verbose\""));
    free(out);
    free(err);

    char *argv2[] = {"demo", "a", "b", NULL};
    assert_int_equal(run(with_level, 1, LB_LOG_INFO, argv2, &conf, &res, &out, &err),
                     LB_STARTUP_EXIT_USAGE);
    assert_string_equal(err, "demo: unexpected argument \"b\"\n");
    free(out);
    free(err);
}

/* Settings from the environment (DEMO_<NAME>) when the spec names a
 * prefix; the command line wins, even over an environment value that
 * would be refused; a string log_level is parsed, and a bad one refused. */
static void
test_environment_and_string_level(void **state)
{
    (void)state;
    str_conf conf;
    lb_config_result res;
    lb_startup_spec spec = {.program = "demo",
                            .log_component = "democ",
                            .env_prefix = "DEMO_",
                            .usage = "[options]",
                            .settings = with_string_level,
                            .conf = &conf};
    setenv("DEMO_NAME", "from-env", 1);
    setenv("DEMO_LOG_LEVEL", "debug", 1);
    setenv("DEMO_WORKERS", "999", 1); /* out of range: refused unless overridden */
    char *argv[] = {"demo", "--workers=3", "pos", NULL};
    memset(&conf, 0, sizeof(conf));
    spec.max_positional = 1;
    assert_int_equal(lb_startup(&spec, 3, argv, &res), -1);
    assert_string_equal(conf.name, "from-env");
    assert_int_equal(conf.workers, 3);
    assert_int_equal(lb_log_get_level(), LB_LOG_DEBUG);
    assert_int_equal(res.npositional, 1);
    assert_string_equal(res.positional[0], "pos");
    lb_config_result_free(&res);
    lb_config_free(with_string_level, &conf);

    char *argv2[] = {"demo", "--name", "from-argv", "--workers", "4", "--log_level=warn", NULL};
    memset(&conf, 0, sizeof(conf));
    assert_int_equal(lb_startup(&spec, 6, argv2, &res), -1);
    assert_string_equal(conf.name, "from-argv");
    assert_int_equal(lb_log_get_level(), LB_LOG_WARN);
    lb_config_result_free(&res);
    lb_config_free(with_string_level, &conf);

    /* Without a prefix the environment is not read. */
    spec.env_prefix = NULL;
    char *argv3[] = {"demo", NULL};
    memset(&conf, 0, sizeof(conf));
    assert_int_equal(lb_startup(&spec, 1, argv3, &res), -1);
    assert_string_equal(conf.name, "x");
    assert_int_equal(conf.workers, 2);
    lb_config_result_free(&res);
    lb_config_free(with_string_level, &conf);

    /* A bad environment value that nothing overrides, a bad string level. */
    spec.env_prefix = "DEMO_";
    memset(&conf, 0, sizeof(conf));
    assert_int_equal(lb_startup(&spec, 1, argv3, &res), LB_STARTUP_EXIT_USAGE);
    setenv("DEMO_WORKERS", "5", 1);
    setenv("DEMO_LOG_LEVEL", "loud", 1);
    memset(&conf, 0, sizeof(conf));
    assert_int_equal(lb_startup(&spec, 1, argv3, &res), LB_STARTUP_EXIT_USAGE);
    unsetenv("DEMO_NAME");
    unsetenv("DEMO_LOG_LEVEL");
    unsetenv("DEMO_WORKERS");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loads_and_sets_the_level),
        cmocka_unit_test(test_help_exits_zero),
        cmocka_unit_test(test_bad_level_and_extra_arguments_exit_two),
        cmocka_unit_test(test_environment_and_string_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
