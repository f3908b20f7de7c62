/*
 * kubelet.h: runs the cluster's Pods as podman pods and reports their status.
 *
 * dc_kubelet_sync() is one level-triggered pass: list Pods, list this
 * cluster's podman containers, make the second match the first (create,
 * restart with back-off, probe, stop, remove), write each changed
 * status through pods/NAME/status. node.c calls it from the kubelet thread.
 */
#ifndef DC_KUBELET_H
#define DC_KUBELET_H

#include <stdbool.h>

/* The one node's name: Pods are bound to it (spec.nodeName), and the Node
 * object of that name is the controllers' (controllers.c). */
#define DC_KUBELET_NODE_NAME "devcluster"

typedef struct dc_kubelet dc_kubelet;

typedef struct dc_kubelet_config {
    const char *cluster_id;
    const char *node_dir; /* <data_dir>/node: pods/, pvc/, hosts/ */
    const char *api_url;
    const char *ca_file;
    const char *token;
    const char *api_host; /* as pods see the API server */
    int api_port;
} dc_kubelet_config;

/* 0 or -errno; removes podman pods a previous run left behind. */
int dc_kubelet_new(const dc_kubelet_config *config, dc_kubelet **out);
void dc_kubelet_sync(dc_kubelet *k);
/* remove_pods: stop and remove every podman pod of the cluster. */
void dc_kubelet_free(dc_kubelet *k, bool remove_pods);

/* Remove every podman pod labelled with cluster_id, by id. Number removed. */
int dc_kubelet_remove_all(const char *cluster_id);

#endif
