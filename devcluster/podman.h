/*
 * podman.h: how the node agent runs pods under podman.
 *
 * Two halves:
 *   - pure translation of a Pod (its JSON, as the API server stores it) into
 *     `podman pod create` and `podman create` argument vectors, unit-tested
 *     without podman (tests/test_podman.c);
 *   - running podman itself (dc_podman_run), always with lakebase's own
 *     containers.conf and storage.conf (CONTAINERS_CONF,
 *     CONTAINERS_STORAGE_CONF), written by dc_podman_setup() with the same
 *     contents as images/podman-env.sh, so that `make images` and devcluster
 *     share one image cache and never touch the machine's podman files.
 *
 * Callers: kubelet.c (pods, probes, logs), node.c (setup, `down`).
 */
#ifndef DC_PODMAN_H
#define DC_PODMAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* ---- argument vectors ---- */

typedef struct dc_argv {
    char **v; /* NULL-terminated; each string owned */
    size_t n, cap;
} dc_argv;

int dc_argv_add(dc_argv *a, const char *s);
int dc_argv_addf(dc_argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dc_argv_free(dc_argv *a);

/* ---- running podman ---- */

/* LB_PODMAN_DIR / LB_PODMAN_RUN, or their defaults, as images/podman-env.sh. */
const char *dc_podman_dir(void);
const char *dc_podman_rundir(void);

/* Write containers.conf and storage.conf under dc_podman_dir() when they
 * differ, and set CONTAINERS_CONF / CONTAINERS_STORAGE_CONF in this process's
 * environment (before any thread starts). 0 or -errno. */
int dc_podman_setup(void);

/* Run `podman ARGS...` (args excludes "podman"), wait for it, collect stdout
 * into out and stderr into err (either may be NULL: discarded). Returns the
 * exit status (0..255), or -errno if it could not run. timeout_ms > 0 kills
 * it (SIGKILL) after that long and returns LB_ETIMEOUT. */
int dc_podman_run(const char *const *args, lb_buf *out, lb_buf *err, int timeout_ms);

/* Run podman, passing its stdout and stderr to on_output as they arrive,
 * until podman exits, on_output returns non-zero, or keep (checked at least
 * every poll_ms) returns false; then podman is killed. Returns podman's exit
 * status, 0 when stopped early, or -errno if it could not run. */
typedef int (*dc_podman_output_fn)(void *arg, const char *bytes, size_t n);
typedef bool (*dc_podman_keep_fn)(void *arg);
int dc_podman_stream(const char *const *args, dc_podman_output_fn on_output, dc_podman_keep_fn keep,
                     void *arg, int poll_ms);

/* ---- translation of a pod ---- */

/* What translation needs beyond the Pod itself. All borrowed. */
typedef struct dc_pod_ctx {
    const char *cluster_id;  /* labels every pod and container: io.lakebase.devcluster */
    const char *pod_ip;      /* for fieldRef status.podIP ("" before the pod has one) */
    const char *node_name;   /* for fieldRef spec.nodeName */
    const char *volume_root; /* host dir of this pod's volumes: <volume_root>/<volume name> */
    const char *pvc_root;    /* host dir of claims: <pvc_root>/<namespace>/<claim name> */
    const char *hosts_file;  /* mounted at /etc/hosts (cluster DNS); NULL: podman's */
    const char *sa_dir;   /* mounted at /var/run/secrets/kubernetes.io/serviceaccount; NULL: none */
    const char *api_host; /* KUBERNETES_SERVICE_HOST */
    int api_port;         /* KUBERNETES_SERVICE_PORT */
    /* {"secret/NAME": Secret, "configmap/NAME": ConfigMap} of the pod's
     * namespace, for env valueFrom and envFrom; may be NULL. */
    json_t *refs;
    /* the image's configured user ("" or "0" or "root..." means root), for
     * runAsNonRoot; NULL: unknown, not checked */
    const char *image_user;
} dc_pod_ctx;

/* Podman object names: "<cluster>-<ns>-<name>-<uid first 8>" for the pod,
 * that plus "-<container>" for a container. Written into out (cap bytes).
 * 0 or -ENAMETOOLONG. */
int dc_podman_pod_name(const char *cluster_id, json_t *pod, char *out, size_t cap);

/* `pod create ...` for pod (without "podman"). 0, or LB_EPARSE with a message
 * in err (the pod is malformed). */
int dc_podman_pod_args(const dc_pod_ctx *ctx, json_t *pod, dc_argv *out, lb_buf *err);

/* `create ...` for one container of pod (a member of spec.containers or
 * spec.initContainers). 0, or LB_EPARSE / LB_ENOTFOUND (a referenced secret,
 * config map or key is missing; a real kubelet reports
 * CreateContainerConfigError) / LB_EUNSUPPORTED, with a message in err. */
int dc_podman_container_args(const dc_pod_ctx *ctx, json_t *pod, json_t *container, dc_argv *out,
                             lb_buf *err);

/* Does a pod's label selector (matchLabels / matchExpressions, or a plain
 * map for a Service's selector) match labels? An empty selector matches
 * everything; a NULL one nothing. */
bool dc_label_selector_matches(json_t *selector, json_t *labels, bool plain_map);

#endif
