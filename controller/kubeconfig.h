/*
 * kubeconfig.h: where the API server is and how to authenticate to it.
 *
 * Two sources, as client-go has them:
 *   - a kubeconfig file (--kubeconfig): its current-context's cluster
 *     (server, certificate-authority[-data], insecure-skip-tls-verify) and
 *     user (token, tokenFile, client-certificate[-data] + client-key[-data]);
 *     relative file paths are relative to the kubeconfig's directory. exec
 *     and auth-provider users are refused with a message saying so;
 *   - in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, and
 *     the service account's ca.crt, token and namespace files.
 * A token file is re-read by the client at every request (service-account
 * tokens are projected and rotate).
 *
 * Callers: main.c; kube.c uses the result.
 */
#ifndef CTL_KUBECONFIG_H
#define CTL_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CTL_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

typedef struct ctl_kubeconfig {
    char *server;      /* "https://host:port", no trailing slash */
    char *ca_pem;      /* PEM bytes of the CA bundle; NULL: the system's */
    size_t ca_len;     /* bytes of ca_pem */
    bool insecure;     /* insecure-skip-tls-verify (refused with a CA) */
    char *token;       /* bearer token, or NULL */
    char *token_file;  /* re-read at each request; or NULL */
    char *client_cert; /* PEM, or NULL */
    char *client_key;  /* PEM, or NULL (both or neither) */
    char *namespace;   /* the context's namespace / the pod's; NULL if none */
} ctl_kubeconfig;

/* Parse kubeconfig YAML text; base_dir resolves relative paths (NULL: the
 * working directory). 0, or LB_EBADCONFIG with err set ("kubeconfig: ...").
 * Call ctl_kubeconfig_free() in every case. */
int ctl_kubeconfig_parse(const char *text, size_t len, const char *base_dir, ctl_kubeconfig *out,
                         char *err, size_t cap);
/* Read and parse the file at path. Also -errno (err set) if unreadable. */
int ctl_kubeconfig_load(const char *path, ctl_kubeconfig *out, char *err, size_t cap);
/* In-cluster configuration from the environment and sa_dir (NULL:
 * CTL_SA_DIR). 0, LB_EBADCONFIG (err says what is missing). */
int ctl_kubeconfig_in_cluster(const char *sa_dir, ctl_kubeconfig *out, char *err, size_t cap);
void ctl_kubeconfig_free(ctl_kubeconfig *kc);

#endif
