/*
 * controller.h: the controller's shared state and the helpers both
 * reconcilers use.
 *
 * Keys in the work queue are "cluster/NS/NAME" and "branch/NS/NAME". A
 * reconcile (cluster.c, branch.c) runs on a worker thread with that
 * worker's own API client; it reads the object and what it owns, makes the
 * world match (creating or updating owned objects, calling the pageserver),
 * writes status through /status, and says when to look again.
 *
 * Names of what the controller creates (N = the LakebaseCluster, B = a
 * Branch, all in the object's namespace):
 *   Secret     N-signing            the Ed25519 signing key (controller only)
 *   ConfigMap  N-auth-keys          the public key (every daemon's auth_public_keys)
 *   Secret     N-safekeeper-tokens  one token per safekeeper (role safekeeper)
 *   Secret     N-pageserver-tokens  one token per pageserver (role pageserver)
 *   Secret     N-sk-password        the password of role lakebase_safekeeper
 *   Secret     N-superuser          (unless spec.superuserSecret) the superuser's
 *   Secret     N-app                the PostgreSQL user's connection (status.userSecret)
 *   ConfigMap  N-safekeeper, N-pageserver   daemon configuration files
 *   Service    N-safekeeper, N-pageserver   headless, publishNotReadyAddresses
 *   Service    N                    the cluster endpoint (main branch's primary)
 *   StatefulSet N-safekeeper, N-pageserver  with volumeClaimTemplates "data"
 *   PVC        N-objstore           objectStorage.volume only
 *   Branch     N-main               spec.branchName main
 *   Secret     B-compute            the compute's token (role compute)
 *   ConfigMap  B-compute            compute-ctl's spec
 *   Service    B-compute            headless, publishNotReadyAddresses: the endpoint
 *   StatefulSet B-compute           0 or 1 replica of compute-ctl + PostgreSQL
 */
#ifndef CTL_CONTROLLER_H
#define CTL_CONTROLLER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "events.h"
#include "informer.h"
#include "kube.h"
#include "kubeconfig.h"
#include "metrics.h"
#include "queue.h"

#define CTL_GROUP_VERSION "lakebase.io/v1alpha1"
#define CTL_CLUSTER_FINALIZER "lakebase.io/cluster"
#define CTL_BRANCH_FINALIZER "lakebase.io/branch"
#define CTL_MANAGED_BY "lakebase-controller"

#define CTL_SK_PG_PORT 5454
#define CTL_SK_HTTP_PORT 7676
#define CTL_PS_HTTP_PORT 9898
#define CTL_PG_PORT 5432
#define CTL_COMPUTE_HTTP_PORT 3080

typedef struct ctl_options {
    char *kubeconfig;
    char *namespace;
    bool leader_elect;
    char *lease_name;
    char *lease_namespace;
    int64_t http_port;
    char *safekeeper_image;
    char *pageserver_image;
    char *compute_image;
    char *log_level;
    int64_t workers;
    int64_t resync_ms;
} ctl_options;

typedef struct ctl_ctx {
    const ctl_options *opts;
    ctl_kubeconfig kc;
    ctl_queue *queue;
    ctl_events *events;
    ctl_informer *clusters, *branches, *statefulsets, *pods;
    char identity[256];
    lb_counter *reconciles, *reconcile_errors;
    lb_histogram *reconcile_seconds;
} ctl_ctx;

/* What a reconcile asks for next: nothing (0), or another look after ms. */
typedef struct ctl_result {
    int64_t requeue_ms;
} ctl_result;

/* ---- reconcilers (cluster.c, branch.c) ---- */

/* 0 when done (requeue_ms may still ask for a later look); an error code
 * makes the key come back with backoff. */
int ctl_reconcile_cluster(ctl_ctx *c, ctl_kube *k, const char *ns, const char *name,
                          ctl_result *res);
int ctl_reconcile_branch(ctl_ctx *c, ctl_kube *k, const char *ns, const char *name,
                         ctl_result *res);

/* ---- helpers (objects.c) ---- */

/* The recommended labels of an owned object. branch may be NULL. New object. */
json_t *ctl_labels(const char *cluster, const char *component, const char *branch);
/* An ownerReferences array naming owner (a full object) as controller. */
json_t *ctl_owner_refs(const json_t *owner);
/* A new object {apiVersion, kind, metadata: {name, namespace, labels, ownerReferences}}. */
json_t *ctl_object(const char *api_version, const char *kind, const char *ns, const char *name,
                   json_t *labels, const json_t *owner);

/* Create desired, or update the existing object when the hash of desired
 * (kept in annotation lakebase.io/spec-hash) differs; fields the API makes
 * immutable are carried over from the existing object. *current (if not
 * NULL): the object as it is now (new reference). collection: the path of
 * the kind's collection in the namespace. 0, or the kube.h codes. */
int ctl_apply(ctl_kube *k, const char *collection, json_t *desired, json_t **current);
/* Create a Secret with data (base64 done here) if it does not exist; if it
 * does, add the keys it lacks (never changes a key it has). *current: the
 * Secret's decoded data as an object of strings (new reference). */
int ctl_ensure_secret(ctl_kube *k, const char *ns, json_t *secret_meta, json_t *string_data,
                      json_t **data);

/* metadata.FIELD of obj as a string, or NULL. */
const char *ctl_meta_str(const json_t *obj, const char *field);
/* A string at a dotted path ("spec.clusterRef.name"), or NULL. */
const char *ctl_str_at(const json_t *obj, const char *path);
/* A value at a dotted path, or NULL (borrowed). */
json_t *ctl_at(const json_t *obj, const char *path);
/* true if obj has a deletionTimestamp. */
bool ctl_deleting(const json_t *obj);
/* true if obj's finalizers hold name. */
bool ctl_has_finalizer(const json_t *obj, const char *name);
/* Add or remove finalizer name on the object at path (merge patch with the
 * object's resourceVersion: a conflict means someone else wrote meanwhile).
 * 0, LB_ECONFLICT, ... */
int ctl_set_finalizer(ctl_kube *k, const char *path, const json_t *obj, const char *name,
                      bool present);
/* Write status (replacing .status) through path + "/status", retrying
 * conflicts by re-reading the object (up to 5 times). Skips the write when
 * the status is unchanged. 0 or the kube.h codes. */
int ctl_write_status(ctl_kube *k, const char *path, const json_t *obj, const json_t *status);
/* FNV-1a of the compact, key-sorted JSON, as 16 hex characters. */
void ctl_json_hash(const json_t *v, char out[17]);

/* A base64 string of bytes (malloc'd). */
char *ctl_b64(const void *bytes, size_t n);
/* Decode n bytes of padded base64 into out (cap >= n / 4 * 3 + 1); the
 * decoded length, or -1 if malformed. */
int ctl_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap);

#endif
