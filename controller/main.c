/*
 * lakebase-controller: the Kubernetes operator of lakebase.
 *
 * It watches LakebaseCluster and Branch objects (group lakebase.io,
 * crds/) and makes the cluster they describe: safekeepers and pageservers
 * as StatefulSets, computes per Branch, their credentials and
 * configuration, timelines on the pageserver (see cluster.c, branch.c).
 *
 * Settings (--help lists them) come from the command line, or from
 * environment variables LAKEBASE_CONTROLLER_<NAME> (the command line wins),
 * through lb_startup() (startup.h) like every other lakebase program.
 *
 * Threads: the main thread runs the event loop (signals, the resync timer,
 * starting the workers once this process leads); the leader election, each
 * informer and each worker have a thread of their own; the HTTP server
 * (/healthz, /readyz, /metrics) has its pool. SIGTERM stops everything: the
 * workers finish or abandon their request, the Lease is released so that a
 * successor takes over at once, and the process exits 0. Losing the Lease
 * exits at once with status 1: a controller that may have a successor must
 * not write again.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "controller.h"
#include "credentials.h"
#include "errors.h"
#include "event_loop.h"
#include "http_server.h"
#include "leader.h"
#include "log.h"
#include "runtime.h"
#include "startup.h"

static const lb_config_setting settings[] = {
    LB_SETTING("kubeconfig", LB_CONFIG_STRING, ctl_options, kubeconfig, NULL,
               "kubeconfig file; absent: in-cluster configuration (service account)"),
    LB_SETTING("namespace", LB_CONFIG_STRING, ctl_options, namespace, "",
               "watch only this namespace; empty: every namespace"),
    LB_SETTING("leader_elect", LB_CONFIG_BOOL, ctl_options, leader_elect, "true",
               "elect a leader with a Lease before reconciling (one active controller)"),
    LB_SETTING("lease_name", LB_CONFIG_STRING, ctl_options, lease_name, "lakebase-controller",
               "name of the Lease"),
    LB_SETTING("lease_namespace", LB_CONFIG_STRING, ctl_options, lease_namespace, "",
               "namespace of the Lease; empty: the pod's namespace, else default"),
    LB_SETTING_RANGE("http_port", LB_CONFIG_INT, ctl_options, http_port, "8080",
                     "port of /healthz, /readyz and /metrics (0: any free port)", 0, 65535),
    LB_SETTING("safekeeper_image", LB_CONFIG_STRING, ctl_options, safekeeper_image,
               "localhost/lakebase/safekeeper:dev", "default image of the safekeepers"),
    LB_SETTING("pageserver_image", LB_CONFIG_STRING, ctl_options, pageserver_image,
               "localhost/lakebase/pageserver:dev", "default image of the pageservers"),
    LB_SETTING("compute_image", LB_CONFIG_STRING, ctl_options, compute_image,
               "localhost/lakebase/compute:dev", "default image of the computes"),
    LB_SETTING("log_level", LB_CONFIG_STRING, ctl_options, log_level, "info",
               "error, warn, info or debug"),
    LB_SETTING_RANGE("workers", LB_CONFIG_INT, ctl_options, workers, "2", "reconciles run at once",
                     1, 64),
    LB_SETTING_RANGE("resync", LB_CONFIG_DURATION, ctl_options, resync_ms, "30s",
                     "how often every object is reconciled even without a change", 1000, 86400000),
    LB_CONFIG_END,
};

static ctl_ctx ctx;
static ctl_options opts;
static lb_loop *loop;
static ctl_runtime *runtime_;
static ctl_leader *leader;
static atomic_bool should_lead;
static int http_port_bound = -1;

static void
on_started(void *arg)
{
    (void)arg;
    lb_info("leading: starting the workers");
    atomic_store(&should_lead, true);
    lb_loop_wakeup(loop);
}

static void
on_lost(void *arg)
{
    (void)arg;
    lb_error("lost leadership: exiting so that the new leader alone reconciles");
    ctl_kube_abort_all();
    _exit(1);
}

static void
on_wakeup(lb_loop *l, void *arg)
{
    (void)l, (void)arg;
    if (atomic_load(&should_lead) && !runtime_) {
        int rc = ctl_runtime_start(&ctx, &runtime_);
        if (rc) {
            lb_error("could not start the controller: %s", lb_strerror(rc));
            lb_loop_stop(loop);
        }
    }
}

static void
on_signal(lb_loop *l, int signo, void *arg)
{
    (void)arg;
    lb_info("signal %d: stopping", signo);
    lb_loop_stop(l);
}

static int64_t
on_resync(lb_loop *l, uint64_t id, void *arg)
{
    (void)l, (void)id, (void)arg;
    if (runtime_)
        ctl_runtime_resync(runtime_);
    return opts.resync_ms;
}

static int
readyz(lb_http_request *req, void *arg)
{
    (void)arg;
    if (opts.leader_elect && !ctl_leader_is_leader(leader))
        return lb_http_respond_text(req, 200, "standby: another controller leads\n");
    if (runtime_ && ctl_runtime_synced(runtime_))
        return lb_http_respond_text(req, 200, "ok\n");
    return lb_http_respond_text(req, 503, "informers not synced\n");
}

static double
read_leader(void *arg)
{
    (void)arg;
    return !opts.leader_elect || ctl_leader_is_leader(leader) ? 1.0 : 0.0;
}

static double
read_queue(void *arg)
{
    (void)arg;
    return ctx.queue ? (double)ctl_queue_len(ctx.queue) : 0.0;
}

int
main(int argc, char **argv)
{
    /* The log keeps the component "controller" its lines always had. */
    const lb_startup_spec start = {.program = "lakebase-controller",
                                   .log_component = "controller",
                                   .env_prefix = "LAKEBASE_CONTROLLER_",
                                   .usage = "[options]",
                                   .settings = settings,
                                   .conf = &opts};
    lb_config_result res;
    int rc = lb_startup(&start, argc, argv, &res);
    if (rc >= 0)
        return rc;
    lb_config_result_free(&res);

    char err[1024] = "";
    rc = opts.kubeconfig && *opts.kubeconfig
             ? ctl_kubeconfig_load(opts.kubeconfig, &ctx.kc, err, sizeof(err))
             : ctl_kubeconfig_in_cluster(NULL, &ctx.kc, err, sizeof(err));
    if (rc) {
        lb_error("%s", err);
        return 2;
    }
    ctx.opts = &opts;
    char host[128] = "controller", suffix[40];
    gethostname(host, sizeof(host) - 1);
    ctl_random_id(suffix, sizeof(suffix));
    snprintf(ctx.identity, sizeof(ctx.identity), "%s_%.8s", host, suffix);
    const char *lease_ns = opts.lease_namespace && *opts.lease_namespace ? opts.lease_namespace
                           : !opts.kubeconfig && ctx.kc.namespace        ? ctx.kc.namespace
                                                                         : "default";

    lb_metrics *m = lb_metrics_default();
    static const double bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    if (lb_metrics_counter(m, "lakebase_controller_reconciles_total", "reconciles run", "kind",
                           &ctx.reconciles) ||
        lb_metrics_counter(m, "lakebase_controller_reconcile_errors_total",
                           "reconciles that failed and will be retried", "kind",
                           &ctx.reconcile_errors) ||
        lb_metrics_histogram(m, "lakebase_controller_reconcile_seconds", "time of one reconcile",
                             "kind", bounds, sizeof(bounds) / sizeof(bounds[0]),
                             &ctx.reconcile_seconds) ||
        lb_metrics_gauge_fn(m, "lakebase_controller_leader", "1 while this process leads",
                            read_leader, NULL) ||
        lb_metrics_gauge_fn(m, "lakebase_controller_queue_depth", "keys waiting in the queue",
                            read_queue, NULL)) {
        lb_error("could not register metrics");
        return 1;
    }
    if ((rc = ctl_queue_new(1000, 300000, NULL, &ctx.queue)) ||
        (rc = ctl_events_new(ctx.identity, &ctx.events)) || (rc = lb_loop_new(&loop))) {
        lb_error("could not start: %s", lb_strerror(rc));
        return 1;
    }
    /* signals go through the loop; set up before any thread starts */
    lb_loop_watch_signal(loop, SIGTERM, on_signal, NULL);
    lb_loop_watch_signal(loop, SIGINT, on_signal, NULL);
    signal(SIGPIPE, SIG_IGN);
    lb_loop_set_on_wakeup(loop, on_wakeup, NULL);
    lb_loop_add_timer(loop, opts.resync_ms, on_resync, NULL, NULL);

    lb_http_server_config hc = {.address = "0.0.0.0", .port = (int)opts.http_port, .threads = 2};
    lb_http_server *http = NULL;
    lb_http_access open = {.open = true};
    if ((rc = lb_http_server_new(&hc, &http)) ||
        (rc = lb_http_server_route_access(http, "GET", "/readyz", readyz, NULL, &open)) ||
        (rc = lb_http_server_start(http))) {
        lb_error("could not serve HTTP on port %lld: %s", (long long)opts.http_port,
                 lb_strerror(rc));
        return 1;
    }
    http_port_bound = lb_http_server_port(http);
    lb_info("lakebase-controller starting identity=%s server=%s http_port=%d leader_elect=%s "
            "lease=%s/%s",
            ctx.identity, ctx.kc.server, http_port_bound, opts.leader_elect ? "true" : "false",
            lease_ns, opts.lease_name);

    if (opts.leader_elect) {
        ctl_leader_config lc = {.ns = lease_ns,
                                .name = opts.lease_name,
                                .identity = ctx.identity,
                                .on_started = on_started,
                                .on_lost = on_lost};
        if ((rc = ctl_leader_start(&ctx.kc, &lc, &leader))) {
            lb_error("could not start the leader election: %s", lb_strerror(rc));
            return 1;
        }
    } else {
        atomic_store(&should_lead, true);
        lb_loop_wakeup(loop);
    }
    lb_loop_run(loop);

    lb_info("stopping");
    ctl_runtime_stop(runtime_);
    runtime_ = NULL;
    ctl_leader_stop(leader); /* releases the Lease */
    leader = NULL;
    lb_http_server_free(http);
    ctl_events_free(ctx.events);
    ctl_queue_free(ctx.queue);
    ctl_kubeconfig_free(&ctx.kc);
    lb_loop_free(loop);
    lb_config_free(settings, &opts);
    lb_info("stopped");
    return 0;
}
