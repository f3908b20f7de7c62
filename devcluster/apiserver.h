/*
 * apiserver.h: the Kubernetes API server of devcluster.
 *
 * It serves HTTPS on a loopback address with bearer-token authentication,
 * keeps objects in SQLite under the data directory, and writes a kubeconfig
 * there that kubectl and helm use as they are (see README.md in this
 * folder for what it serves and how it differs from a real cluster).
 *
 * Components of `devcluster up` (node agent, controllers) are API clients:
 * they connect to dc_apiserver_url() with dc_apiserver_token() and trust
 * dc_apiserver_ca_pem(), exactly as kubelet would.
 */
#ifndef DC_APISERVER_H
#define DC_APISERVER_H

#include <stddef.h>

#include "pki.h"
#include "store.h"

typedef struct dc_apiserver dc_apiserver;

typedef struct dc_apiserver_config {
    const char *data_dir;     /* required: state.db, certificates, kubeconfig */
    const char *address;      /* NULL: 127.0.0.1 */
    int port;                 /* 0: any free port (written to data_dir/port) */
    const char *const *sans;  /* extra names for the serving certificate */
    unsigned watch_window;    /* changes kept for watch resume; 0: 10000 */
    int bookmark_interval_ms; /* 0: 60000 */
    size_t max_body;          /* 0: 3 MiB */
    int gc_interval_ms;       /* how often the collector rescans; 0: 1000 */
} dc_apiserver_config;

/* Open the store, load or make certificates, start serving and the garbage
 * collector, write the kubeconfig. 0, -errno. */
int dc_apiserver_start(const dc_apiserver_config *config, dc_apiserver **out);
int dc_apiserver_port(const dc_apiserver *a);
/* "https://127.0.0.1:PORT" */
const char *dc_apiserver_url(const dc_apiserver *a);
const char *dc_apiserver_token(const dc_apiserver *a);
const char *dc_apiserver_ca_pem(const dc_apiserver *a);
const char *dc_apiserver_kubeconfig_path(const dc_apiserver *a);
/* Issue a token for a service account (TokenRequest does the same over
 * HTTPS). 0, -ENOENT (no such account). *out freed by the caller. */
int dc_apiserver_issue_token(dc_apiserver *a, const char *ns, const char *name, char **out);
void dc_apiserver_stop(dc_apiserver *a);

#endif
