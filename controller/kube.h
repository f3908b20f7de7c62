/*
 * kube.h: a small untyped Kubernetes REST client (libcurl + jansson).
 *
 * Objects are jansson values; paths are the API's own
 * ("/apis/apps/v1/namespaces/db/statefulsets/x"), built by the caller with
 * ctl_kube_path(). HTTPS with the configured CA (never without verification
 * unless the kubeconfig says insecure-skip-tls-verify), a bearer token (a
 * token file is re-read at every request) or a client certificate.
 *
 * Results: 0 for a 2xx answer; LB_ENOTFOUND (404), LB_EEXIST (409
 * AlreadyExists), LB_ECONFLICT (409 Conflict: a stale resourceVersion),
 * LB_EFORBIDDEN (401/403), -EINVAL (400/422: the object was refused),
 * LB_ETIMEOUT (410 Gone: an expired resourceVersion), LB_EPROTO (any other
 * status), LB_EHTTP (no answer). ctl_kube_error() gives the API server's
 * message (its Status's "message") or the transport error.
 *
 * Threads: a client belongs to one thread. ctl_kube_abort_all() (any
 * thread, also a signal's handler) makes every client's requests in flight
 * and to come fail with -ECANCELED: how watches stop at shutdown.
 *
 * Callers: informer.c, leader.c, events.c, cluster.c, branch.c.
 */
#ifndef CTL_KUBE_H
#define CTL_KUBE_H

#include <jansson.h>
#include <stdbool.h>

#include "kubeconfig.h"

typedef struct ctl_kube ctl_kube;

/* A client for kc (copied). 0, -ENOMEM, LB_EHTTP (libcurl failed). */
int ctl_kube_new(const ctl_kubeconfig *kc, ctl_kube **out);
void ctl_kube_free(ctl_kube *k);

/* "/api/v1" or "/apis/GROUP/VERSION" + "/namespaces/NS" (ns NULL: none) +
 * "/RESOURCE" + "/NAME" (NULL: none) + "/SUB" (NULL: none) into buf. */
void ctl_kube_path(char *buf, size_t cap, const char *group_version, const char *ns,
                   const char *resource, const char *name, const char *sub);

/* One request: body (borrowed, may be NULL) sent as content_type (NULL:
 * application/json). *status: the HTTP status (0: none); *resp, if resp is
 * not NULL: the JSON answer (new reference; NULL if none). Returns the codes
 * above. */
int ctl_kube_do(ctl_kube *k, const char *method, const char *path, const json_t *body,
                const char *content_type, long *status, json_t **resp);

int ctl_kube_get(ctl_kube *k, const char *path, json_t **obj);
/* POST to the collection path. */
int ctl_kube_create(ctl_kube *k, const char *collection, const json_t *obj, json_t **created);
/* PUT (the object's metadata.resourceVersion makes it conditional). */
int ctl_kube_update(ctl_kube *k, const char *path, const json_t *obj, json_t **updated);
/* application/merge-patch+json. */
int ctl_kube_merge_patch(ctl_kube *k, const char *path, const json_t *patch, json_t **patched);
/* DELETE with propagationPolicy=Background; 404 counts as done (0). */
int ctl_kube_delete(ctl_kube *k, const char *path);

/* A watch: GET path (which carries ?watch=1&...) and call
 * on_event(type, object, arg) for each event ("ADDED", "MODIFIED",
 * "DELETED", "BOOKMARK", "ERROR"), in order. Returns 0 when the server ends
 * the stream, the code on_event returned if not 0 (the stream is closed),
 * -ECANCELED after ctl_kube_abort_all(), or the codes above if the watch
 * could not start. */
typedef int (*ctl_watch_fn)(const char *type, json_t *object, void *arg);
int ctl_kube_watch(ctl_kube *k, const char *path, ctl_watch_fn on_event, void *arg);

const char *ctl_kube_error(const ctl_kube *k);

void ctl_kube_abort_all(void);
/* Make k ignore ctl_kube_abort_all() (the leader's client, which releases
 * the Lease after everything else has stopped). */
void ctl_kube_set_immune(ctl_kube *k);
bool ctl_kube_aborted(void);

#endif
