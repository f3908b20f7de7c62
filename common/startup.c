/*
 * startup.c: settings, --help and the log level for every main()
 * (startup.h).
 *
 * The log level is an enum setting whose choices are lb_log_level_words,
 * in the order of lb_log_level, so the index lb_config_load() stores is
 * the level itself (a string setting of the same words is parsed here).
 * A program's own checks of its settings (a spec file, a subcommand) come
 * after lb_startup() and log through the started log.
 *
 * Settings from the environment are put in front of the command line as
 * --name=value options, so that one loader checks both and the command
 * line, coming later, wins.
 */
#include "startup.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const lb_log_level_words[] = {"error", "warn", "info", "debug", NULL};

/* The level the table's log_level holds (spec->level without one). -1 for
 * a string that is not a level. */
static int
level_of(const lb_startup_spec *spec)
{
    for (const lb_config_setting *s = spec->settings; s->name; s++) {
        if (strcmp(s->name, "log_level") != 0)
            continue;
        const char *field = (const char *)spec->conf + s->offset;
        if (s->type == LB_CONFIG_ENUM && s->choices == lb_log_level_words)
            return *(const int *)field;
        lb_log_level level;
        if (s->type == LB_CONFIG_STRING)
            return lb_log_level_parse(*(char *const *)field, &level) == 0 ? (int)level : -1;
    }
    return (int)spec->level;
}

/* Whether argv sets name (--name, --name=value), before any "--". */
static bool
on_command_line(const char *name, int argc, char **argv)
{
    size_t n = strlen(name);
    for (int i = 1; i < argc && argv[i] && strcmp(argv[i], "--") != 0; i++)
        if (strncmp(argv[i], "--", 2) == 0 && strncmp(argv[i] + 2, name, n) == 0 &&
            (argv[i][n + 2] == '\0' || argv[i][n + 2] == '='))
            return true;
    return false;
}

/* argv with --name=value for each setting found in the environment as
 * <prefix><NAME> and not on the command line, in front of its options. NULL for no
 * memory; *nenv: how many were added (argv[1..nenv], caller frees them). */
static char **
with_env(const lb_startup_spec *spec, int argc, char **argv, int *nargc, int *nenv)
{
    size_t nsettings = 0;
    for (const lb_config_setting *s = spec->settings; s->name; s++)
        nsettings++;
    char **out = calloc((size_t)argc + nsettings + 2, sizeof(char *));
    if (!out)
        return NULL;
    int n = 0;
    out[n++] = argc > 0 ? argv[0] : (char *)spec->program;
    for (const lb_config_setting *s = spec->settings; s->name; s++) {
        char env[128];
        int k = snprintf(env, sizeof(env), "%s", spec->env_prefix);
        for (const char *p = s->name; *p && k < (int)sizeof(env) - 1; p++)
            env[k++] = (char)toupper((unsigned char)*p);
        env[k < (int)sizeof(env) ? k : (int)sizeof(env) - 1] = '\0';
        const char *v = getenv(env);
        if (!v || on_command_line(s->name, argc, argv))
            continue;
        size_t len = strlen(s->name) + strlen(v) + 4;
        char *opt = malloc(len);
        if (!opt) {
            for (int i = 1; i < n; i++)
                free(out[i]);
            free(out);
            return NULL;
        }
        snprintf(opt, len, "--%s=%s", s->name, v);
        out[n++] = opt;
    }
    *nenv = n - 1;
    for (int i = 1; i < argc; i++)
        out[n++] = argv[i];
    out[n] = NULL;
    *nargc = n;
    return out;
}

int
lb_startup(const lb_startup_spec *spec, int argc, char **argv, lb_config_result *res)
{
    int nargc = argc, nenv = 0;
    char **args = argv;
    if (spec->env_prefix && !(args = with_env(spec, argc, argv, &nargc, &nenv))) {
        memset(res, 0, sizeof(*res));
        fprintf(stderr, "%s: out of memory\n", spec->program);
        return 1;
    }
    int rc = lb_config_load(spec->settings, spec->conf, NULL, nargc, args, res);
    if (args != argv) {
        /* Settings are copied; positional arguments point into argv itself. */
        for (int i = 1; i <= nenv; i++)
            free(args[i]);
        free(args);
    }
    if (res->help) {
        lb_buf help = LB_BUF_INIT;
        int code = lb_config_help(spec->settings, spec->program, spec->usage, &help) == 0 &&
                           fputs(help.data ? help.data : "", stdout) >= 0
                       ? 0
                       : 1;
        lb_buf_free(&help);
        lb_config_free(spec->settings, spec->conf);
        lb_config_result_free(res);
        return code;
    }
    int level = rc == 0 ? level_of(spec) : 0;
    if (rc == 0 && res->npositional > spec->max_positional)
        snprintf(res->error, sizeof(res->error), "unexpected argument \"%s\"",
                 res->positional[spec->max_positional]);
    else if (rc == 0 && level < 0)
        snprintf(res->error, sizeof(res->error),
                 "setting \"log_level\" must be one of error, warn, info, debug");
    else if (rc == 0) {
        lb_log_init(spec->log_component ? spec->log_component : spec->program, (lb_log_level)level);
        return -1;
    }
    fprintf(stderr, "%s: %s\n", spec->program, res->error);
    lb_config_free(spec->settings, spec->conf);
    lb_config_result_free(res);
    return LB_STARTUP_EXIT_USAGE;
}
