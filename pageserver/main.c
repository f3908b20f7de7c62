/*
 * main.c: the pageserver daemon.
 *
 *   pageserver [-c FILE] [--data_dir DIR] [--listen_http H:P] [--remote_storage URL] ...
 *
 * It keeps timelines' snapshots as layers in object storage (remote_storage,
 * required) and serves basebackups; see daemon.h for its threads. The
 * main thread runs the pageserver's event loop: signals (SIGTERM and
 * SIGINT stop the pageserver, SIGHUP re-reads the public keys and the
 * token file), timers and the streams from the safekeepers.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "daemon.h"
#include "ingest.h"
#include "event_loop.h"
#include "errors.h"
#include "fileio.h"
#include "log.h"
#include "startup.h"

static const lb_config_setting settings[] = {
    LB_SETTING("data_dir", LB_CONFIG_STRING, ps_config, data_dir, "./pageserver-data",
               "local cache of layers and timeline indexes"),
    LB_SETTING("listen_http", LB_CONFIG_ADDR, ps_config, listen_http, "127.0.0.1:9898",
               "HTTP API: timelines, basebackups, /metrics"),
    LB_SETTING_REQUIRED("remote_storage", LB_CONFIG_STRING, ps_config, remote_storage,
                        "object store (file:// or s3://), the durable home of every timeline; "
                        "the pageserver's disk is only a cache"),
    LB_SETTING_REQUIRED("auth_public_keys", LB_CONFIG_STRING, ps_config, auth_public_keys,
                        "Ed25519 public key (PEM file, or a directory of *.pem) that every "
                        "request's token must verify with; re-read on SIGHUP"),
    LB_SETTING("pg_bin_dir", LB_CONFIG_STRING, ps_config, pg_bin_dir, "",
               "PostgreSQL 15 binaries; empty: pg_config --bindir"),
    LB_SETTING("pg_user", LB_CONFIG_STRING, ps_config, pg_user, "postgres",
               "user that runs PostgreSQL tools when the pageserver runs as root"),
    LB_SETTING("auth_token_file", LB_CONFIG_STRING, ps_config, auth_token_file, "",
               "file with this pageserver's token (role pageserver) for the safekeepers"),
    LB_SETTING_LOG_LEVEL(ps_config, log_level),
    LB_SETTING_RANGE("http_threads", LB_CONFIG_INT, ps_config, http_threads, "8",
                     "threads serving HTTP", 1, 64),
    LB_SETTING_RANGE("worker_threads", LB_CONFIG_INT, ps_config, worker_threads, "4",
                     "threads for blocking work: redo standbys' ticks and snapshots, uploads, "
                     "basebackups, initdb",
                     1, 64),
    LB_SETTING_RANGE("worker_queue", LB_CONFIG_INT, ps_config, worker_queue, "64",
                     "jobs that may wait for a worker thread; a request that finds the queue "
                     "full gets 503",
                     1, 4096),
    LB_SETTING_RANGE("max_basebackups", LB_CONFIG_INT, ps_config, max_basebackups, "0",
                     "basebackups streamed at once; each holds a worker thread while its client "
                     "reads, so a slow client holds one: more get 503. 0: worker_threads - 1 "
                     "(at least 1), which keeps a worker for ingest and snapshots",
                     0, 64),
    LB_SETTING_RANGE("snapshot_interval", LB_CONFIG_DURATION, ps_config, snapshot_interval_ms,
                     "30s",
                     "how often a timeline's redo standby is snapshotted (when it has "
                     "replayed a checkpoint since the last)",
                     100, 86400000),
    LB_SETTING_RANGE("gc_retention", LB_CONFIG_DURATION, ps_config, gc_retention_ms, "7d",
                     "point-in-time restore window: snapshots younger than this are kept", 0,
                     INT64_C(3153600000000)),
    LB_SETTING_RANGE("gc_interval", LB_CONFIG_DURATION, ps_config, gc_interval_ms, "1m",
                     "how often snapshots past the window are deleted", 100, 86400000),
    LB_SETTING_RANGE("ingest_idle_timeout", LB_CONFIG_DURATION, ps_config, ingest_idle_timeout_ms,
                     "5m",
                     "stop a timeline's redo standby after replaying nothing this long (0: "
                     "never); it starts again when the safekeepers have new WAL",
                     0, 86400000),
    LB_SETTING_RANGE("deleted_retention", LB_CONFIG_DURATION, ps_config, deleted_retention_ms, "1d",
                     "a deleted timeline's layers and indexes stay in object storage this "
                     "long (until then, removing deleted/<tenant>/<timeline> brings it back); its "
                     "offloaded WAL (wal/, the safekeepers') is never purged by the pageserver",
                     0, INT64_C(3153600000000)),
    LB_SETTING_RANGE("lake_chunk_blocks", LB_CONFIG_INT, ps_config, lake_chunk_blocks, "1024",
                     "heap blocks per lake data file: a changed block rewrites its chunk; "
                     "small chunks make many small files and a long run (tests use that to "
                     "catch a run in the middle)",
                     1, 1048576),
    LB_CONFIG_END,
};

/* Signals arrive as loop events (signalfd): none is lost between a check
 * and a wait, and handlers run as ordinary code. */
static void
on_stop(lb_loop *loop, int signo, void *arg)
{
    (void)arg;
    lb_info("pageserver stopping signal=%d", signo);
    lb_loop_stop(loop);
}

/* SIGHUP: the public keys and this pageserver's own token (docs/auth.md).
 * A reload that fails keeps what was loaded. A new token reaches the
 * calls that read it each time (HTTP to the safekeepers) at once, and
 * the redo standbys at their next tick (ps_ingest_token_changed). */
static void
on_reload(lb_loop *loop, int signo, void *arg)
{
    (void)loop;
    (void)signo;
    ps_daemon *d = arg;
    if (d->keys) {
        int rc = lb_auth_keys_reload(d->keys);
        if (rc)
            lb_error("could not reload auth_public_keys \"%s\": %s (the old keys stay)",
                     d->conf.auth_public_keys, lb_strerror(rc));
        else
            lb_info("auth_public_keys reloaded keys=%zu", lb_auth_keys_count(d->keys));
    }
    if (d->token) {
        int rc = lb_auth_token_reload(d->token);
        if (rc)
            lb_error("could not reload auth_token_file \"%s\": %s (the old token stays)",
                     d->conf.auth_token_file, lb_strerror(rc));
        else
            ps_ingest_token_changed(d);
    }
}

int
main(int argc, char **argv)
{
    static ps_daemon d;
    lb_config_result res;
    const lb_startup_spec start = {
        .program = "pageserver", .usage = "[options]", .settings = settings, .conf = &d.conf};
    int rc = lb_startup(&start, argc, argv, &res);
    if (rc >= 0)
        return rc;
    lb_config_result_free(&res);
    signal(SIGPIPE, SIG_IGN);
    /* The signals are the loop's before any other thread starts, so that
     * every thread inherits them blocked. */
    lb_loop *loop = NULL;
    rc = lb_loop_new(&loop);
    if (rc == 0 && ((rc = lb_loop_watch_signal(loop, SIGTERM, on_stop, &d)) != 0 ||
                    (rc = lb_loop_watch_signal(loop, SIGINT, on_stop, &d)) != 0 ||
                    (rc = lb_loop_watch_signal(loop, SIGHUP, on_reload, &d)) != 0))
        lb_error("could not set up signals: %s", lb_strerror(rc));
    d.snapshot_interval_ms = d.conf.snapshot_interval_ms;
    d.loop = loop;
    d.loop_thread = pthread_self();
    if (rc == 0)
        rc = ps_daemon_init(&d);
    if (rc == 0)
        rc = lb_loop_run(loop);
    ps_daemon_shutdown(&d);
    lb_loop_free(loop);
    lb_config_free(settings, &d.conf);
    if (rc) {
        lb_error("pageserver stopped: %s", lb_strerror(rc));
        return 1;
    }
    lb_info("pageserver stopped");
    return 0;
}
