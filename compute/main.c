/*
 * main.c: compute-ctl, which runs one vanilla PostgreSQL compute from a spec
 * (spec.h for the format, compute.h for what it does).
 *
 *     compute-ctl --spec /etc/lakebase/compute.yaml [--log_level info]
 *
 * SIGHUP re-reads auth_public_keys and auth_token_file (docs/auth.md).
 *
 * Exit codes: 0 stopped on SIGTERM/SIGINT; 1 the compute could not start;
 * 2 bad spec or options; 3 PostgreSQL died (a supervisor restarts us).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute.h"
#include "config.h"
#include "errors.h"
#include "log.h"
#include "spec.h"
#include "startup.h"

typedef struct ctl_config {
    char *spec;
    int log_level; /* lb_log_level */
} ctl_config;

static const lb_config_setting settings[] = {
    LB_SETTING_REQUIRED("spec", LB_CONFIG_STRING, ctl_config, spec,
                        "the compute's spec, a YAML or JSON file"),
    LB_SETTING_LOG_LEVEL(ctl_config, log_level),
    LB_CONFIG_END,
};

_Static_assert(CC_EXIT_BADSPEC == LB_STARTUP_EXIT_USAGE, "bad options exit as a bad spec");

static volatile sig_atomic_t stop_requested, reload_requested;

static void
on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
}

int
main(int argc, char **argv)
{
    ctl_config conf = {0};
    lb_config_result res;
    const lb_startup_spec start = {
        .program = "compute-ctl", .usage = "--spec FILE", .settings = settings, .conf = &conf};
    int rc = lb_startup(&start, argc, argv, &res);
    if (rc >= 0)
        return rc;
    cc_spec spec;
    char err[600];
    rc = cc_spec_load(conf.spec, &spec, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "compute-ctl: %s\n", err);
        lb_error("%s", err);
        cc_spec_free(&spec);
        lb_config_free(settings, &conf);
        lb_config_result_free(&res);
        return CC_EXIT_BADSPEC;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int code = cc_compute_run(&spec, &stop_requested, &reload_requested);
    cc_spec_free(&spec);
    lb_config_free(settings, &conf);
    lb_config_result_free(&res);
    return code;
}
