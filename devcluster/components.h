/*
 * components.h: what `devcluster up` runs besides the API server.
 *
 * Each component (node agent, controllers, DNS, ...) is an API client of
 * the API server, like kubelet or kube-controller-manager: it talks HTTPS
 * to env->api_url with the bearer token env->token, trusting env->ca_file.
 * main.c starts the API server, then calls every start function of
 * dc_components[] in order, and at shutdown the stop functions in reverse
 * order. A component that fails to start stops devcluster (with the
 * components started so far stopped again).
 *
 * To add one: define a dc_component in your file and list it in
 * components.c.
 */
#ifndef DC_COMPONENTS_H
#define DC_COMPONENTS_H

#include "apiserver.h"

typedef struct dc_component_env {
    const char *data_dir; /* devcluster's state directory; components keep theirs under it */
    const char *api_url;  /* "https://127.0.0.1:PORT" */
    const char *api_host; /* "127.0.0.1" */
    int api_port;
    const char *token;      /* the cluster-admin bearer token */
    const char *ca_pem;     /* the CA that signed the serving certificate */
    const char *ca_file;    /* the same, as a file: data_dir/ca.crt */
    const char *kubeconfig; /* data_dir/kubeconfig */
    /* In-process only: issue a token for a service account (what a pod's
     * projected token volume holds). 0, -ENOENT. *out freed by the caller. */
    dc_apiserver *api;
} dc_component_env;

typedef struct dc_component {
    const char *name;
    /* 0, or -errno (logged, and devcluster stops). *state is passed to stop. */
    int (*start)(const dc_component_env *env, void **state);
    void (*stop)(void *state);
} dc_component;

/* NULL-terminated, in start order (components.c). */
extern const dc_component *const dc_components[];

#endif
