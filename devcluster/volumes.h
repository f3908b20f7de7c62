/*
 * volumes.h: a pod's volumes as host directories, before its containers start.
 *
 * Layout under the node's state directory (dc_node_config.data_dir/node):
 *   pods/<uid>/volumes/<volume>   emptyDir (mode 0777, as Kubernetes makes it),
 *                                 configMap, secret, downwardAPI, projected
 *                                 (files written once, at pod start)
 *   pods/<uid>/sa/                token, ca.crt, namespace: the service
 *                                 account mount
 *   pvc/<namespace>/<claim>       a PersistentVolumeClaim's data: outlives
 *                                 every pod, removed only with the claim
 *
 * Callers: kubelet.c.
 */
#ifndef DC_VOLUMES_H
#define DC_VOLUMES_H

#include <jansson.h>
#include <stdbool.h>

#include "buf.h"

/* Write every file volume of pod under volume_root (created), from refs
 * ({"secret/NAME": Secret, "configmap/NAME": ConfigMap}) and token (for
 * projected serviceAccountToken sources; may be NULL). 0, or LB_ENOTFOUND /
 * LB_EPARSE / -errno with a message in err. */
int dc_volumes_prepare(json_t *pod, const char *volume_root, json_t *refs, const char *token,
                       const char *ca_file, lb_buf *err);

/* Write the service account directory: token, ca.crt (copied from ca_file),
 * namespace. 0 or -errno. */
int dc_volumes_write_sa(const char *sa_dir, const char *token, const char *ca_file, const char *ns);

/* The names of the secrets and config maps pod refers to (env, envFrom,
 * volumes), as {"secret/NAME": true, ...} (new reference). */
json_t *dc_volumes_refs_needed(json_t *pod);

/* fsGroup: give gid group ownership of path and everything under it, with
 * group read (and write and setgid directories when writable) wherever the
 * owner has it, as the kubelet does for a pod's volumes. 0 or -errno. */
int dc_volumes_apply_fsgroup(const char *path, long gid, bool writable);

/* mkdir -p with mode for the last component (created ones only). 0 or -errno. */
int dc_mkdirs(const char *path, unsigned mode);
/* rm -rf. 0 or -errno. */
int dc_rmtree(const char *path);

#endif
