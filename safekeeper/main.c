/*
 * main.c: the safekeeper daemon, and the `safekeeper elect` command that a
 * compute's proposer (compute-ctl) runs.
 *
 *   safekeeper [-c FILE] [--id sk-0] [--data_dir DIR] [--listen_http H:P] ...
 *   safekeeper elect --tenant T --timeline L --safekeepers URL,URL,URL ...
 *
 * Signals are events of the loop (SIGTERM/SIGINT stop it cleanly); the
 * HTTP server is stopped after the loop, so handlers waiting on the loop
 * are answered with 503 rather than left hanging.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "election.h"
#include "errors.h"
#include "log.h"
#include "startup.h"

static const lb_config_setting settings[] = {
    LB_SETTING("id", LB_CONFIG_STRING, sk_config, id, "sk-0",
               "this safekeeper's name; computes list it in synchronous_standby_names"),
    LB_SETTING("data_dir", LB_CONFIG_STRING, sk_config, data_dir, "./safekeeper-data",
               "where timelines' WAL and state live"),
    LB_SETTING("listen_http", LB_CONFIG_ADDR, sk_config, listen_http, "127.0.0.1:7676",
               "control API, /metrics and WAL over HTTP"),
    LB_SETTING("listen_pg", LB_CONFIG_ADDR, sk_config, listen_pg, "127.0.0.1:5454",
               "walsender-compatible server for standbys and pageservers"),
    LB_SETTING("peers", LB_CONFIG_LIST, sk_config, peers, "",
               "the other safekeepers of the set, as name=host:port (their listen_pg)"),
    LB_SETTING_LOG_LEVEL(sk_config, log_level),
    LB_SETTING("remote_storage", LB_CONFIG_STRING, sk_config, remote_storage, "",
               "object store for completed WAL segments (file:// or s3://); empty: keep all WAL"),
    LB_SETTING_RANGE("http_threads", LB_CONFIG_INT, sk_config, http_threads, "4",
                     "threads serving HTTP", 1, 64),
    LB_SETTING("peers_http", LB_CONFIG_LIST, sk_config, peers_http, "",
               "the other safekeepers' HTTP addresses, as name=host:port; the only donors "
               "/accept copies WAL from"),
    LB_SETTING_REQUIRED("auth_public_keys", LB_CONFIG_STRING, sk_config, auth_public_keys,
                        "Ed25519 public key (PEM file, or a directory of *.pem) that every "
                        "token must verify with; re-read on SIGHUP"),
    LB_SETTING("auth_token_file", LB_CONFIG_STRING, sk_config, auth_token_file, "",
               "file with this safekeeper's token (role safekeeper, sub = id) for its peers; "
               "re-read on SIGHUP"),
    LB_SETTING("compute_password_file", LB_CONFIG_STRING, sk_config, compute_password_file, "",
               "file with the password of role lakebase_safekeeper on the computes; empty: "
               "connect as postgres"),
    LB_SETTING_RANGE("max_connections", LB_CONFIG_INT, sk_config, max_connections, "512",
                     "walsender connections at once", 1, 65536),
    LB_SETTING_RANGE("http_max_connections", LB_CONFIG_INT, sk_config, http_max_connections, "1024",
                     "HTTP connections at once; more are refused until one closes", 1, 65536),
    LB_SETTING_RANGE("startup_timeout", LB_CONFIG_DURATION, sk_config, startup_timeout_ms, "10s",
                     "time a walsender connection has to authenticate", 100, 600000),
    LB_SETTING_RANGE("consumer_ttl", LB_CONFIG_DURATION, sk_config, consumer_ttl_ms, "24h",
                     "a WAL consumer that has not reported for this long stops holding WAL", 1000,
                     365LL * 24 * 3600 * 1000),
    LB_SETTING_RANGE("max_accept_bytes", LB_CONFIG_SIZE, sk_config, max_accept_bytes, "16GiB",
                     "the most WAL one /accept copies from a donor", 16LL << 20, 1LL << 50),
    LB_CONFIG_END,
};

static int
run_daemon(int argc, char **argv)
{
    static sk_daemon sk;
    lb_config_result res;
    const lb_startup_spec start = {.program = "safekeeper",
                                   .usage = "[options] | elect [options]",
                                   .settings = settings,
                                   .conf = &sk.conf};
    int rc = lb_startup(&start, argc, argv, &res);
    if (rc >= 0)
        return rc;
    lb_config_result_free(&res);

    rc = sk_daemon_init(&sk);
    if (rc == 0)
        rc = lb_loop_run(sk.loop);
    sk_daemon_shutdown(&sk);
    lb_config_free(settings, &sk.conf);
    if (rc) {
        lb_error("safekeeper stopped: %s", lb_strerror(rc));
        return 1;
    }
    lb_info("safekeeper stopped");
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "elect") == 0)
        return sk_elect_main(argc - 1, argv + 1);
    return run_daemon(argc, argv);
}
