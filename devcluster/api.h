/*
 * api.h: what the API server's files share (not for components).
 *
 * A request is parsed into a dc_ctx: who asks (authentication), what it
 * asks for (resource, namespace, name, subresource, verb). Handlers answer
 * through dc_api_respond_* with Kubernetes-shaped bodies: objects, lists,
 * and metav1.Status for every error.
 */
#ifndef DC_API_H
#define DC_API_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "apiserver.h"
#include "https.h"
#include "metrics.h"
#include "pki.h"
#include "resources.h"
#include "store.h"

struct dc_apiserver {
    dc_apiserver_config config;
    char *data_dir;
    char url[64];
    char kubeconfig[4096];
    dc_pki pki;
    dc_store *store;
    dc_https *https;
    pthread_t gc_thread;
    atomic_bool stopping;
    pthread_mutex_t ip_lock; /* ClusterIP and NodePort allocation happen under the store lock */
    lb_metrics *metrics;     /* served at /metrics */
    lb_counter *requests;    /* apiserver_request_total{verb,resource,code} */
    lb_histogram *latency;   /* apiserver_request_duration_seconds{verb} */
    lb_gauge *watches;       /* apiserver_longrunning_requests */
};

typedef struct dc_ctx {
    dc_apiserver *api;
    dc_req *req;
    /* who */
    bool admin;
    bool impersonated; /* the admin acting as user (Impersonate-User) */
    char user[512];
    char sa_ns[256];
    char sa_name[256];
    /* what */
    char group[128];
    char version[64];
    const dc_resource *res; /* NULL for non-resource paths */
    char plural[128];
    bool namespaced_path; /* the URL named a namespace */
    char ns[256];
    char name[256];
    char sub[64];
    char verb[32]; /* get list watch create update patch delete deletecollection */
    /* the answer, sent after the store lock is released */
    int out_status;
    json_t *out_body;
    const char *out_content_type; /* static; NULL: application/json */
} dc_ctx;

/* ---- responses ---- */
/* Send obj (stolen) as JSON with status. */
void dc_api_respond_json(dc_ctx *c, int status, json_t *obj);
/* A metav1.Status failure. reason: "NotFound", "AlreadyExists", ... */
void dc_api_respond_status(dc_ctx *c, int code, const char *reason, const char *message,
                           json_t *details);
/* 404 `<plural>.<group> "<name>" not found` */
void dc_api_respond_not_found(dc_ctx *c, const dc_resource *r, const char *name);
/* "pods" or "branches.lakebase.io": the name a real server puts in messages */
void dc_api_qualified(const dc_resource *r, char *out, size_t cap);

/* ---- objects ---- */
void dc_api_now(char *out, size_t cap); /* RFC 3339 UTC, seconds */
const char *dc_api_meta_str(const json_t *obj, const char *field);
/* Set apiVersion and kind of obj for resource r. */
void dc_api_set_type(json_t *obj, const dc_resource *r);

/* ---- watch.c ---- */
void dc_watch_serve(dc_ctx *c);

/* ---- table.c ---- */
/* A metav1.Table of the given objects (borrowed), or of one for a watch
 * event; each row carries the object's metadata (PartialObjectMetadata).
 * include_headers: the column definitions (a watch sends them once). */
json_t *dc_table_build(const dc_resource *r, json_t *const *objs, size_t n, const char *rv,
                       const char *cont, bool include_headers);
bool dc_table_wanted(const char *accept);

/* ---- discovery.c ---- */
/* Answer a non-resource path (/version, /api, /apis, /openapi/v3...);
 * false if the path is not one. */
bool dc_discovery_serve(dc_ctx *c);

/* ---- rbac.c ---- */
/* 0 if allowed; else answers 403 itself and returns -EACCES. */
int dc_rbac_authorize(dc_ctx *c);
/* true if the service account may do verb on (group, plural[/sub]) in ns */
bool dc_rbac_allows(dc_store *s, const char *user, const char *sa_ns, const char *verb,
                    const char *group, const char *resource, const char *ns, const char *name,
                    const char *path);

/* ---- schema.c ---- */
/* Validate obj against a CRD version's openAPIV3Schema, applying defaults
 * and pruning unknown fields in place. causes: a JSON array that gets one
 * {reason, message, field} per error; unknown (may be NULL): gets the path
 * of every pruned field. Returns the number of errors. */
int dc_schema_validate(const json_t *schema, json_t *obj, json_t *causes, json_t *unknown);

/* ---- gc.c ---- */
void *dc_gc_main(void *arg);
/* Delete an object now or mark it (finalizers): the shared delete path of
 * the API and the collector (lock held). propagation: "Background",
 * "Foreground", "Orphan" or NULL. grace_zero: gracePeriodSeconds=0 (a pod
 * bound to a node goes at once; the node agent's final delete). *deleted
 * tells which happened; *result (a new reference) is the object's last
 * state. */
int dc_api_delete_object(dc_apiserver *a, const dc_resource *r, const char *ns, const char *name,
                         json_t *obj, const char *propagation, bool grace_zero, bool *deleted,
                         json_t **result);
/* Store obj as an update that removes the object once it is marked for
 * deletion and its finalizers are gone (lock held). */
int dc_api_store_update(dc_apiserver *a, const dc_resource *r, const char *ns, const char *name,
                        json_t *obj);

#endif
