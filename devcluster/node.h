/*
 * node.h: the node half of devcluster: kubelet, controllers, cluster DNS and
 * host ports, all clients of the API server over HTTPS (as kubelet and
 * kube-controller-manager are).
 *
 * `devcluster up` starts the API server, then dc_node_start() with its URL,
 * CA and admin token; `devcluster down` (or the end of `up`) calls
 * dc_node_stop(n, true), which stops and removes every container this
 * cluster started, by id. dc_node_down() does the same without a running
 * node (after a kill -9 of `up`).
 *
 * The API server serves pods/log with dc_node_pod_logs().
 *
 * Pods reach the API server at DC_NODE_POD_API_HOST:<api port>, the host's
 * address on podman's bridge, forwarded to the loopback listener: the
 * serving certificate must name that address (pass it in the API server's
 * sans).
 */
#ifndef DC_NODE_H
#define DC_NODE_H

#include <stdbool.h>

#include "buf.h"
#include "podman.h"

#define DC_NODE_POD_API_HOST "10.88.0.1"
#define DC_NODE_NAME "devcluster"

typedef struct dc_node dc_node;

typedef struct dc_node_config {
    const char *data_dir; /* devcluster's data directory; node state in <data_dir>/node */
    const char *api_url;  /* https://127.0.0.1:PORT */
    const char *ca_file;  /* PEM file of the cluster CA (mounted in pods as ca.crt) */
    const char *token;    /* a cluster-admin bearer token */
    int sync_interval_ms; /* how often kubelet and controllers resync; 0: 1000 */
    bool no_controllers;  /* run only the kubelet */
} dc_node_config;

/* Set up podman, start the kubelet, controller and forwarder threads.
 * 0 or -errno; *out freed by dc_node_stop. Call before other threads use
 * podman (it sets CONTAINERS_CONF in the environment). */
int dc_node_start(const dc_node_config *config, dc_node **out);

/* Stop every thread; with remove_pods, also stop and remove every podman
 * pod and container of this cluster, by id. */
void dc_node_stop(dc_node *n, bool remove_pods);

/* Stop and remove every container of the cluster whose state is in
 * data_dir, by id, with no node running. Number removed, or -errno. */
int dc_node_down(const char *data_dir);

/* Logs of a pod's container, oldest first, into out ("" or NULL: the first
 * container). tail_lines < 0: all. 0, LB_ENOTFOUND (no such pod or
 * container on this node), or -errno. */
int dc_node_pod_logs(const char *data_dir, const char *ns, const char *pod, const char *container,
                     long tail_lines, bool timestamps, lb_buf *out);

/* For `kubectl logs -f`: the podman id of the container whose logs
 * dc_node_pod_logs reads (0 or LB_ENOTFOUND), then its logs passed to write
 * as they come, until the container stops, write returns non-zero, or keep
 * (asked every second) returns false. */
int dc_node_log_container(const char *data_dir, const char *ns, const char *pod,
                          const char *container, char *id_out, size_t cap);
int dc_node_container_logs_follow(const char *container_id, long tail_lines, bool timestamps,
                                  dc_podman_output_fn write, dc_podman_keep_fn keep, void *arg);

/* This cluster's id (labels its podman objects), from <data_dir>/node/cluster-id,
 * created on first use. 0 or -errno. */
int dc_node_cluster_id(const char *data_dir, char *out, size_t cap);

/* The node as a component of `devcluster up` (components.c lists it). */
struct dc_component;
extern const struct dc_component dc_node_component;

#endif
