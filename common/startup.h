/*
 * startup.h: the first lines of every lakebase program's main().
 *
 * A daemon or command declares its settings in a table (config.h) and
 * calls lb_startup() with it. lb_startup() loads the settings (defaults,
 * -c FILE, the command line), answers --help with the table's usage text
 * on stdout, refuses anything wrong (an unknown or ill-typed setting, an
 * argument too many) with one line "<program>: <why>" on stderr, and
 * starts the log under the program's name at the table's log_level:
 *
 *     static const lb_config_setting settings[] = {
 *         ...
 *         LB_SETTING_LOG_LEVEL(sk_config, log_level),
 *         LB_CONFIG_END,
 *     };
 *     lb_config_result res;
 *     int code = lb_startup(&(lb_startup_spec){.program = "safekeeper", .usage = "[options]",
 *                                              .settings = settings, .conf = &sk.conf},
 *                           argc, argv, &res);
 *     if (code >= 0)
 *         return code;
 *
 * A program whose settings also come from the environment (a Kubernetes
 * Deployment's env) names a prefix: each setting NAME is then also read
 * from <env_prefix><NAME in upper case>, and the command line wins.
 *
 * Callers: safekeeper/main.c (the daemon and `safekeeper elect`),
 * compute/main.c, token/main.c, pageserver/main.c, controller/main.c.
 */
#ifndef LB_STARTUP_H
#define LB_STARTUP_H

#include "config.h"
#include "log.h"

/* Exit code after a refused setting or argument (after --help: 0). */
#define LB_STARTUP_EXIT_USAGE 2

/* The words of log_level, in lb_log_level order. */
extern const char *const lb_log_level_words[];

/* The log_level setting: an int member holding an lb_log_level. */
#define LB_SETTING_LOG_LEVEL(struct_, member_)                                                     \
    LB_SETTING_ENUM("log_level", struct_, member_, "info", "error, warn, info or debug",           \
                    lb_log_level_words)

typedef struct lb_startup_spec {
    const char *program;               /* message prefix (and log component): "safekeeper" */
    const char *log_component;         /* the log's component if not program; NULL: program */
    const char *env_prefix;            /* "LAKEBASE_CONTROLLER_": settings from the
                                        * environment too; NULL: the command line only */
    const char *usage;                 /* after the program's name in --help: "[options]" */
    const lb_config_setting *settings; /* the table; its "log_level", if any, is an enum
                                        * (LB_SETTING_LOG_LEVEL) or a string of its words */
    void *conf;                        /* filled from the table; zeroed by the caller */
    int max_positional;                /* arguments that are not options it takes */
    lb_log_level level;                /* the log threshold when the table has no log_level */
} lb_startup_spec;

/* Load spec->settings into spec->conf from argv (argv[0] is skipped).
 * -1: go on; the log is started, res holds the positional arguments (free
 * it with lb_config_result_free(), and conf with lb_config_free(), when
 * done). Otherwise the exit code: 0 after printing --help, or
 * LB_STARTUP_EXIT_USAGE after printing why on stderr; then conf and res
 * are already freed. */
int lb_startup(const lb_startup_spec *spec, int argc, char **argv, lb_config_result *res);

#endif
