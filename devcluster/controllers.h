/*
 * controllers.h: what kube-controller-manager does for devcluster, as one
 * level-triggered pass over a snapshot of the cluster.
 *
 * dc_ctl_sync() lists pods, services, endpoints, persistent volume claims,
 * stateful sets, replica sets and deployments once, then runs each
 * controller over that snapshot:
 *   statefulset.c   ordered pods with stable names, claims from templates
 *   deployment.c    deployments -> replica sets -> pods
 *   endpoints.c     Endpoints from Services and ready pods; claims bound
 *   dns.c           the per-namespace hosts files that are cluster DNS
 *   hostports.c     NodePort / LoadBalancer services on 127.0.0.1
 * A controller acts through the API (create, PUT with resourceVersion,
 * delete); a conflict or a failure is retried by the next pass. Only one
 * change per object per pass, so each pass starts from the API's truth.
 */
#ifndef DC_CONTROLLERS_H
#define DC_CONTROLLERS_H

#include <jansson.h>
#include <stdbool.h>

#include "buf.h"
#include "kclient.h"

typedef struct dc_hostports dc_hostports;

/* One snapshot: each member is a JSON array of objects (owned). */
typedef struct dc_ctl_snapshot {
    json_t *pods, *services, *endpoints, *pvcs, *statefulsets, *replicasets, *deployments;
} dc_ctl_snapshot;

typedef struct dc_ctl {
    dc_kclient *api;
    const char *node_dir; /* hosts/ and pvc/ live here */
    const char *api_host; /* kubernetes.default.svc resolves to it */
    dc_hostports *hostports;
    json_t *pvc_missing;  /* "<ns>/<claim>" -> ms since first seen without its claim */
    bool node_registered; /* the Node object exists and says Ready */
} dc_ctl;

void dc_ctl_sync(dc_ctl *ctl);

/* ---- shared by the controllers ---- */

const char *dc_ctl_str(json_t *obj, const char *key);
/* metadata.<key> of obj */
const char *dc_ctl_meta(json_t *obj, const char *key);
/* Is pod running with every container ready (the Ready condition)? */
bool dc_ctl_pod_ready(json_t *pod);
bool dc_ctl_pod_active(json_t *pod); /* not terminal, not being deleted */
/* Does owner (uid) control obj? */
bool dc_ctl_owned_by(json_t *obj, const char *owner_uid);
/* An ownerReference to owner (controller: true). New reference. */
json_t *dc_ctl_owner_ref(json_t *owner, const char *api_version, const char *kind);
/* A short stable hash of a JSON value (template revisions), 10 chars. */
void dc_ctl_hash(json_t *v, char out[16]);
/* Create obj at collection path; 0 or -1 (logged). */
int dc_ctl_create(dc_ctl *ctl, const char *path, json_t *obj);
/* PUT obj (with its resourceVersion) at path; 0 or -1 (a conflict is quiet). */
int dc_ctl_put(dc_ctl *ctl, const char *path, json_t *obj);
int dc_ctl_delete(dc_ctl *ctl, const char *path, const char *uid);
/* Write status (replacing obj's) through path + "/status" if it differs. */
int dc_ctl_put_status(dc_ctl *ctl, const char *path, json_t *obj, json_t *status);

/* The subsets of svc's Endpoints, from every pod of the cluster (new ref). */
json_t *dc_endpoints_subsets(json_t *svc, json_t *pods);
/* The hosts file of namespace file_ns (dns.c), appended to out. */
void dc_dns_render(const char *file_ns, const char *api_host, dc_ctl_snapshot *s, lb_buf *out);
/* Its first lines (localhost), which a new pod gets before the first pass. */
const char *dc_dns_header(void);

/* Pod <set>-<ordinal> of a StatefulSet at a template revision (new ref). */
json_t *dc_statefulset_pod(json_t *sts, int ordinal, const char *revision);

void dc_statefulset_sync(dc_ctl *ctl, dc_ctl_snapshot *s);
void dc_deployment_sync(dc_ctl *ctl, dc_ctl_snapshot *s);
void dc_replicaset_sync(dc_ctl *ctl, dc_ctl_snapshot *s);
void dc_endpoints_sync(dc_ctl *ctl, dc_ctl_snapshot *s);
void dc_pvc_sync(dc_ctl *ctl, dc_ctl_snapshot *s);
void dc_dns_sync(dc_ctl *ctl, dc_ctl_snapshot *s);
void dc_hostports_sync(dc_ctl *ctl, dc_ctl_snapshot *s);

#endif
