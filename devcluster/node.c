/*
 * node.c: starts and stops the node half of devcluster (node.h).
 *
 * Three threads: the kubelet's passes, the controllers' passes, and the
 * forwarder's event loop (hostports.c). The two pass loops are separate so
 * that a slow podman call (an image's first start, a container stopping
 * for its grace period) never holds back Endpoints or DNS, and each owns
 * its own API client. Passes run every sync_interval_ms; stop wakes them.
 *
 * State on disk, under <data_dir>/node: cluster-id (8 hex characters,
 * labels every podman object of this cluster, so two devclusters on one
 * machine never touch each other's containers), pods/, pvc/, hosts/ (see
 * volumes.h and dns.c).
 */
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "components.h"
#include "controllers.h"
#include "errors.h"
#include "hostports.h"
#include "kubelet.h"
#include "log.h"
#include "podman.h"
#include "volumes.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

struct dc_node {
    char cluster_id[32];
    char node_dir[2048];
    char *api_url, *ca_file, *token;
    int api_port;
    int interval_ms;
    bool no_controllers;
    dc_kubelet *kubelet;
    dc_hostports *hostports;
    pthread_t kubelet_thread, ctl_thread;
    bool ctl_started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stopping;
};

int
dc_node_cluster_id(const char *data_dir, char *out, size_t cap)
{
    char dir[2048], path[2100];
    snprintf(dir, sizeof(dir), "%s/node", data_dir);
    int rc = dc_mkdirs(dir, 0755);
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "%s/cluster-id", dir);
    FILE *f = fopen(path, "r");
    char id[32] = "";
    if (f) {
        if (!fgets(id, sizeof(id), f))
            id[0] = 0;
        fclose(f);
        id[strcspn(id, "\n")] = 0;
    }
    if (strlen(id) != 10) {
        unsigned char r[4];
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, r, sizeof(r)) != (ssize_t)sizeof(r)) {
            if (fd >= 0)
                close(fd);
            return -EIO;
        }
        close(fd);
        snprintf(id, sizeof(id), "dc%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
        f = fopen(path, "w");
        if (!f)
            return -errno;
        fprintf(f, "%s\n", id);
        if (fclose(f) != 0)
            return -EIO;
    }
    if (strlen(id) + 1 > cap)
        return -ENAMETOOLONG;
    memcpy(out, id, strlen(id) + 1);
    return 0;
}

/* Sleep up to ms, or until stop. true if stopping. */
static bool
wait_or_stop(dc_node *n, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&n->mu);
    while (!n->stopping) {
        if (pthread_cond_timedwait(&n->cond, &n->mu, &until) == ETIMEDOUT)
            break;
    }
    bool stopping = n->stopping;
    pthread_mutex_unlock(&n->mu);
    return stopping;
}

static void *
kubelet_main(void *arg)
{
    dc_node *n = arg;
    do {
        dc_kubelet_sync(n->kubelet);
    } while (!wait_or_stop(n, n->interval_ms));
    return NULL;
}

static void *
ctl_main(void *arg)
{
    dc_node *n = arg;
    dc_ctl ctl = {
        .node_dir = n->node_dir, .api_host = DC_NODE_POD_API_HOST, .hostports = n->hostports};
    if (dc_kclient_new(n->api_url, n->ca_file, n->token, &ctl.api) != 0) {
        lb_error("controllers could not start: no API client");
        return NULL;
    }
    ctl.pvc_missing = json_object();
    do {
        dc_ctl_sync(&ctl);
    } while (!wait_or_stop(n, n->interval_ms));
    json_decref(ctl.pvc_missing);
    dc_kclient_free(ctl.api);
    return NULL;
}

static int
port_of(const char *url)
{
    const char *colon = strrchr(url, ':');
    return colon ? atoi(colon + 1) : 0;
}

int
dc_node_start(const dc_node_config *config, dc_node **out)
{
    if (!config->data_dir || !config->api_url || !config->ca_file || !config->token)
        return -EINVAL;
    int rc = dc_podman_setup();
    if (rc) {
        lb_error("could not write the podman configuration dir=\"%s\" error=\"%s\"",
                 dc_podman_dir(), lb_strerror(rc));
        return rc;
    }
    dc_node *n = calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cond, NULL);
    n->api_url = strdup(config->api_url);
    n->ca_file = strdup(config->ca_file);
    n->token = strdup(config->token);
    n->api_port = port_of(config->api_url);
    n->interval_ms = config->sync_interval_ms > 0 ? config->sync_interval_ms : 1000;
    n->no_controllers = config->no_controllers;
    snprintf(n->node_dir, sizeof(n->node_dir), "%s/node", config->data_dir);
    if ((rc = dc_node_cluster_id(config->data_dir, n->cluster_id, sizeof(n->cluster_id))) != 0) {
        dc_node_stop(n, false);
        return rc;
    }
    const char *subdirs[] = {"pods", "pvc", "hosts"};
    for (int i = 0; i < 3; i++) {
        char path[2200];
        snprintf(path, sizeof(path), "%s/%s", n->node_dir, subdirs[i]);
        if ((rc = dc_mkdirs(path, 0755)) != 0) {
            dc_node_stop(n, false);
            return rc;
        }
    }
    dc_kubelet_config kc = {
        .cluster_id = n->cluster_id,
        .node_dir = n->node_dir,
        .api_url = n->api_url,
        .ca_file = n->ca_file,
        .token = n->token,
        .api_host = DC_NODE_POD_API_HOST,
        .api_port = n->api_port,
    };
    if ((rc = dc_kubelet_new(&kc, &n->kubelet)) != 0 ||
        (rc = dc_hostports_start(DC_NODE_POD_API_HOST, n->api_port, &n->hostports)) != 0) {
        dc_node_stop(n, false);
        return rc;
    }
    if ((rc = pthread_create(&n->kubelet_thread, NULL, kubelet_main, n)) != 0) {
        dc_node_stop(n, false);
        return -rc;
    }
    if (!n->no_controllers) {
        if ((rc = pthread_create(&n->ctl_thread, NULL, ctl_main, n)) != 0) {
            n->ctl_started = false;
            lb_error("could not start the controllers thread");
        } else {
            n->ctl_started = true;
        }
    }
    lb_info("node started cluster=%s dir=%s api=%s", n->cluster_id, n->node_dir, n->api_url);
    *out = n;
    return 0;
}

void
dc_node_stop(dc_node *n, bool remove_pods)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    n->stopping = true;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->mu);
    if (n->kubelet && n->kubelet_thread)
        pthread_join(n->kubelet_thread, NULL);
    if (n->ctl_started)
        pthread_join(n->ctl_thread, NULL);
    dc_kubelet_free(n->kubelet, remove_pods);
    dc_hostports_stop(n->hostports);
    free(n->api_url);
    free(n->ca_file);
    free(n->token);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cond);
    free(n);
}

int
dc_node_down(const char *data_dir)
{
    char marker[4096];
    snprintf(marker, sizeof(marker), "%s/node/cluster-id", data_dir);
    if (access(marker, F_OK) != 0)
        return 0; /* no node ever ran here */
    char id[32];
    int rc = dc_node_cluster_id(data_dir, id, sizeof(id));
    if (rc)
        return rc;
    if ((rc = dc_podman_setup()) != 0)
        return rc;
    return dc_kubelet_remove_all(id);
}

int
dc_node_log_container(const char *data_dir, const char *ns, const char *pod, const char *container,
                      char *id_out, size_t cap)
{
    char id[32];
    int rc = dc_node_cluster_id(data_dir, id, sizeof(id));
    if (rc)
        return rc;
    char f1[300], f2[600], f3[600];
    snprintf(f1, sizeof(f1), "label=io.lakebase.devcluster=%s", id);
    snprintf(f2, sizeof(f2), "label=io.kubernetes.pod.namespace=%s", ns);
    snprintf(f3, sizeof(f3), "label=io.kubernetes.pod.name=%s", pod);
    const char *ps[] = {"ps",       "-a", "--filter", f1,     "--filter", f2,
                        "--filter", f3,   "--format", "json", NULL};
    lb_buf listing = LB_BUF_INIT;
    rc = dc_podman_run(ps, &listing, NULL, 60000);
    json_t *arr = rc == 0 && listing.data ? json_loads(listing.data, 0, NULL) : NULL;
    lb_buf_free(&listing);
    if (rc != 0) {
        json_decref(arr);
        return rc < 0 ? rc : LB_EPROTO;
    }
    const char *cid = NULL;
    long long newest = -1;
    size_t i;
    json_t *c;
    json_array_foreach(arr, i, c)
    {
        const char *cname = json_string_value(
            json_object_get(json_object_get(c, "Labels"), "io.kubernetes.container.name"));
        if (!cname || json_is_true(json_object_get(c, "IsInfra")))
            continue;
        if (container && *container && strcmp(cname, container) != 0)
            continue;
        long long created = json_integer_value(json_object_get(c, "Created"));
        /* the newest pod of that name (a StatefulSet pod recreated) */
        if (created > newest) {
            newest = created;
            cid = json_string_value(json_object_get(c, "Id"));
        }
    }
    rc = cid ? 0 : LB_ENOTFOUND;
    if (cid)
        snprintf(id_out, cap, "%s", cid);
    json_decref(arr);
    return rc;
}

static void
logs_args(const char *cid, long tail_lines, bool timestamps, bool follow, char *tail, size_t cap,
          const char **args)
{
    snprintf(tail, cap, "--tail=%ld", tail_lines < 0 ? -1L : tail_lines);
    size_t n = 0;
    args[n++] = "logs";
    args[n++] = tail;
    if (timestamps)
        args[n++] = "--timestamps";
    if (follow)
        args[n++] = "--follow";
    args[n++] = cid;
    args[n] = NULL;
}

int
dc_node_pod_logs(const char *data_dir, const char *ns, const char *pod, const char *container,
                 long tail_lines, bool timestamps, lb_buf *out)
{
    char cid[128], tail[32];
    int rc = dc_node_log_container(data_dir, ns, pod, container, cid, sizeof(cid));
    if (rc)
        return rc;
    const char *args[8];
    logs_args(cid, tail_lines, timestamps, false, tail, sizeof(tail), args);
    /* stdout and stderr of the container arrive on podman's two streams;
     * both go to out, as the API server serves them interleaved */
    rc = dc_podman_run(args, out, out, 60000);
    return rc == 0 ? 0 : (rc < 0 ? rc : LB_EPROTO);
}

int
dc_node_container_logs_follow(const char *container_id, long tail_lines, bool timestamps,
                              dc_podman_output_fn write, dc_podman_keep_fn keep, void *arg)
{
    char tail[32];
    const char *args[8];
    logs_args(container_id, tail_lines, timestamps, true, tail, sizeof(tail), args);
    int rc = dc_podman_stream(args, write, keep, arg, 1000);
    return rc == 0 ? 0 : (rc < 0 ? rc : LB_EPROTO);
}

/* ---- as a component of `devcluster up` (components.h) ---- */

static int
component_start(const dc_component_env *env, void **state)
{
    dc_node_config config = {
        .data_dir = env->data_dir,
        .api_url = env->api_url,
        .ca_file = env->ca_file,
        .token = env->token,
    };
    const char *interval = getenv("DEVCLUSTER_SYNC_MS");
    if (interval && atoi(interval) > 0)
        config.sync_interval_ms = atoi(interval);
    dc_node *n = NULL;
    int rc = dc_node_start(&config, &n);
    *state = n;
    return rc;
}

static void
component_stop(void *state)
{
    /* `devcluster down` stops every container this cluster started */
    dc_node_stop(state, true);
}

const dc_component dc_node_component = {"node", component_start, component_stop};
