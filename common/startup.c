/*
 * startup.c: settings, --help and the log level for every main()
 * (startup.h).
 *
 * The log level is an enum setting whose choices are lb_log_level_words,
 * in the order of lb_log_level, so the index lb_config_load() stores is
 * the level itself. A program's own checks of its settings (a spec file,
 * a subcommand) come after lb_startup() and log through the started log.
 */
#include "startup.h"

#include <stdio.h>
#include <string.h>

const char *const lb_log_level_words[] = {"error", "warn", "info", "debug", NULL};

static lb_log_level
level_of(const lb_startup_spec *spec)
{
    for (const lb_config_setting *s = spec->settings; s->name; s++)
        if (strcmp(s->name, "log_level") == 0 && s->type == LB_CONFIG_ENUM &&
            s->choices == lb_log_level_words)
            return (lb_log_level) * (const int *)((const char *)spec->conf + s->offset);
    return spec->level;
}

int
lb_startup(const lb_startup_spec *spec, int argc, char **argv, lb_config_result *res)
{
    int rc = lb_config_load(spec->settings, spec->conf, NULL, argc, argv, res);
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
    if (rc == 0 && res->npositional > spec->max_positional)
        snprintf(res->error, sizeof(res->error), "unexpected argument \"%s\"",
                 res->positional[spec->max_positional]);
    else if (rc == 0) {
        lb_log_init(spec->program, level_of(spec));
        return -1;
    }
    fprintf(stderr, "%s: %s\n", spec->program, res->error);
    lb_config_free(spec->settings, spec->conf);
    lb_config_result_free(res);
    return LB_STARTUP_EXIT_USAGE;
}
