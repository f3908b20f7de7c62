/*
 * controllers.c: the pass that runs every controller, and their helpers.
 *
 * A pass reads the whole cluster once (seven lists), so each controller
 * sees one consistent-enough picture and makes at most one change per
 * object; the next pass (node.c runs one a second) sees the result. This is
 * the level-triggered shape of kube-controller-manager without its informer
 * caches: devcluster's clusters hold tens of objects, not thousands.
 */
#include "controllers.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "kubelet.h"
#include "log.h"

const char *
dc_ctl_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

const char *
dc_ctl_meta(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

bool
dc_ctl_pod_ready(json_t *pod)
{
    json_t *status = json_object_get(pod, "status");
    const char *phase = dc_ctl_str(status, "phase");
    if (!phase || strcmp(phase, "Running") != 0 || dc_ctl_meta(pod, "deletionTimestamp"))
        return false;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(status, "conditions"), i, c)
    {
        const char *t = dc_ctl_str(c, "type"), *st = dc_ctl_str(c, "status");
        if (t && st && strcmp(t, "Ready") == 0)
            return strcmp(st, "True") == 0;
    }
    return false;
}

bool
dc_ctl_pod_active(json_t *pod)
{
    const char *phase = dc_ctl_str(json_object_get(pod, "status"), "phase");
    if (dc_ctl_meta(pod, "deletionTimestamp"))
        return false;
    return !phase || (strcmp(phase, "Succeeded") != 0 && strcmp(phase, "Failed") != 0);
}

bool
dc_ctl_owned_by(json_t *obj, const char *owner_uid)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), i, r)
    {
        const char *uid = dc_ctl_str(r, "uid");
        if (uid && strcmp(uid, owner_uid) == 0 && json_is_true(json_object_get(r, "controller")))
            return true;
    }
    return false;
}

json_t *
dc_ctl_owner_ref(json_t *owner, const char *api_version, const char *kind)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:b,s:b}", "apiVersion", api_version, "kind", kind, "name",
                     dc_ctl_meta(owner, "name"), "uid", dc_ctl_meta(owner, "uid"), "controller", 1,
                     "blockOwnerDeletion", 1);
}

void
dc_ctl_hash(json_t *v, char out[16])
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(text ? text : "", text ? strlen(text) : 0, md, &len, EVP_sha256(), NULL);
    free(text);
    /* Kubernetes' pod-template-hash alphabet: no vowels, no look-alikes */
    static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    for (int i = 0; i < 10; i++)
        out[i] = alphabet[md[i] % (sizeof(alphabet) - 1)];
    out[10] = 0;
}

int
dc_ctl_create(dc_ctl *ctl, const char *path, json_t *obj)
{
    long code = 0;
    json_t *resp = NULL;
    int rc = dc_kclient_do(ctl->api, "POST", path, obj, NULL, &code, &resp);
    json_decref(resp);
    if (rc || code >= 300) {
        if (code != 409)
            lb_warn("create failed path=%s error=\"%s\"", path, dc_kclient_error(ctl->api));
        return -1;
    }
    return 0;
}

int
dc_ctl_put(dc_ctl *ctl, const char *path, json_t *obj)
{
    long code = 0;
    json_t *resp = NULL;
    int rc = dc_kclient_do(ctl->api, "PUT", path, obj, NULL, &code, &resp);
    json_decref(resp);
    if (rc || code >= 300) {
        if (code != 409 && code != 404)
            lb_warn("update failed path=%s error=\"%s\"", path, dc_kclient_error(ctl->api));
        return -1;
    }
    return 0;
}

int
dc_ctl_delete(dc_ctl *ctl, const char *path, const char *uid)
{
    json_t *opts = json_pack("{s:s,s:s,s:s}", "kind", "DeleteOptions", "apiVersion", "v1",
                             "propagationPolicy", "Background");
    if (uid)
        json_object_set_new(opts, "preconditions", json_pack("{s:s}", "uid", uid));
    long code = 0;
    json_t *resp = NULL;
    int rc = dc_kclient_do(ctl->api, "DELETE", path, opts, NULL, &code, &resp);
    json_decref(resp);
    json_decref(opts);
    if (rc || (code >= 300 && code != 404)) {
        lb_warn("delete failed path=%s error=\"%s\"", path, dc_kclient_error(ctl->api));
        return -1;
    }
    return 0;
}

int
dc_ctl_put_status(dc_ctl *ctl, const char *path, json_t *obj, json_t *status)
{
    json_t *old = json_object_get(obj, "status");
    if (old && json_equal(old, status))
        return 0;
    json_t *copy = json_deep_copy(obj);
    json_object_set(copy, "status", status);
    char spath[1200];
    snprintf(spath, sizeof(spath), "%s/status", path);
    int rc = dc_ctl_put(ctl, spath, copy);
    json_decref(copy);
    return rc;
}

static json_t *
list(dc_ctl *ctl, const char *path, bool *ok)
{
    json_t *items = NULL;
    if (dc_kclient_list(ctl->api, path, &items) != 0) {
        lb_warn("list failed path=%s error=\"%s\"", path, dc_kclient_error(ctl->api));
        *ok = false;
        return json_array();
    }
    return items;
}

/* The Node object of the one node, registered once per start with a Ready
 * condition, as kubelet registers itself (`kubectl get nodes` shows it). */
static void
register_node(dc_ctl *ctl)
{
    const char *path = "/api/v1/nodes/" DC_KUBELET_NODE_NAME;
    long code = 0;
    json_t *node = NULL;
    if (dc_kclient_do(ctl->api, "GET", path, NULL, NULL, &code, &node) != 0)
        return;
    if (code == 404) {
        json_decref(node);
        node = NULL;
        json_t *obj =
            json_pack("{s:s,s:s,s:{s:s,s:{s:s,s:s}}}", "apiVersion", "v1", "kind", "Node",
                      "metadata", "name", DC_KUBELET_NODE_NAME, "labels", "kubernetes.io/hostname",
                      DC_KUBELET_NODE_NAME, "kubernetes.io/os", "linux");
        if (dc_kclient_do(ctl->api, "POST", "/api/v1/nodes", obj, NULL, &code, &node) != 0 ||
            code >= 300) {
            json_decref(obj);
            json_decref(node);
            return;
        }
        json_decref(obj);
    } else if (code != 200) {
        json_decref(node);
        return;
    }
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *status =
        json_pack("{s:[{s:s,s:s,s:s,s:s,s:s,s:s}],s:[{s:s,s:s},{s:s,s:s}],s:{s:s,s:s,s:s,s:s}}",
                  "conditions", "type", "Ready", "status", "True", "reason", "KubeletReady",
                  "message", "devcluster's node agent is running", "lastHeartbeatTime", now,
                  "lastTransitionTime", now, "addresses", "type", "InternalIP", "address",
                  ctl->api_host, "type", "Hostname", "address", DC_KUBELET_NODE_NAME, "nodeInfo",
                  "kubeletVersion", "v1.32.3-devcluster", "containerRuntimeVersion", "podman://4",
                  "operatingSystem", "linux", "architecture", "amd64");
    if (dc_ctl_put_status(ctl, path, node, status) == 0)
        ctl->node_registered = true;
    json_decref(status);
    json_decref(node);
}

void
dc_ctl_sync(dc_ctl *ctl)
{
    if (!ctl->node_registered)
        register_node(ctl);
    bool ok = true;
    dc_ctl_snapshot s = {
        .pods = list(ctl, "/api/v1/pods", &ok),
        .services = list(ctl, "/api/v1/services", &ok),
        .endpoints = list(ctl, "/api/v1/endpoints", &ok),
        .pvcs = list(ctl, "/api/v1/persistentvolumeclaims", &ok),
        .statefulsets = list(ctl, "/apis/apps/v1/statefulsets", &ok),
        .replicasets = list(ctl, "/apis/apps/v1/replicasets", &ok),
        .deployments = list(ctl, "/apis/apps/v1/deployments", &ok),
    };
    /* A partial picture would make controllers create what exists or delete
     * what they cannot see: act only on a complete one. */
    if (ok) {
        dc_pvc_sync(ctl, &s);
        dc_statefulset_sync(ctl, &s);
        dc_deployment_sync(ctl, &s);
        dc_replicaset_sync(ctl, &s);
        dc_endpoints_sync(ctl, &s);
        dc_dns_sync(ctl, &s);
        dc_hostports_sync(ctl, &s);
    }
    json_decref(s.pods);
    json_decref(s.services);
    json_decref(s.endpoints);
    json_decref(s.pvcs);
    json_decref(s.statefulsets);
    json_decref(s.replicasets);
    json_decref(s.deployments);
}
