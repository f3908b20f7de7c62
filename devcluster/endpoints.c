/*
 * endpoints.c: Endpoints from Services, and the claim binder.
 *
 * Endpoints: for each Service with a selector, the matching pods that have
 * an address: ready ones in addresses, the others in notReadyAddresses
 * (all in addresses with publishNotReadyAddresses). A named targetPort is
 * resolved against the first matching pod's container ports. Written only
 * when the subsets change. EndpointSlices are not made (kubectl and the
 * cluster DNS here read Endpoints).
 *
 * Claims: devcluster's storage is a directory per claim, so every claim is
 * bound at once (status.phase Bound, capacity = the request); the kubelet
 * makes the directory on first mount. A claim's directory is removed once
 * its claim has been gone for two passes at least 5 s apart, so a claim
 * created between a list and a directory scan never loses its data.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controllers.h"
#include "event_loop.h"
#include "kubelet.h"
#include "log.h"
#include "podman.h"
#include "volumes.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

static int
resolve_port(json_t *pod, json_t *target, int fallback)
{
    if (json_is_integer(target))
        return (int)json_integer_value(target);
    const char *name = json_string_value(target);
    if (!name)
        return fallback;
    size_t i, j;
    json_t *c, *p;
    json_array_foreach(json_object_get(json_object_get(pod, "spec"), "containers"), i, c)
    {
        json_array_foreach(json_object_get(c, "ports"), j, p)
        {
            const char *n = dc_ctl_str(p, "name");
            if (n && strcmp(n, name) == 0)
                return (int)json_integer_value(json_object_get(p, "containerPort"));
        }
    }
    return atoi(name) > 0 ? atoi(name) : fallback;
}

static int
by_ip(const void *a, const void *b)
{
    const char *x = dc_ctl_str(*(json_t *const *)a, "ip"),
               *y = dc_ctl_str(*(json_t *const *)b, "ip");
    return strcmp(x ? x : "", y ? y : "");
}

static json_t *
sorted(json_t *arr)
{
    size_t n = json_array_size(arr);
    json_t **v = calloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(arr, i);
    qsort(v, n, sizeof(*v), by_ip);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(out, v[i]);
    free(v);
    return out;
}

json_t *
dc_endpoints_subsets(json_t *svc, json_t *pods)
{
    const char *ns = dc_ctl_meta(svc, "namespace"), *name = dc_ctl_meta(svc, "name");
    json_t *spec = json_object_get(svc, "spec");
    json_t *selector = json_object_get(spec, "selector");
    bool publish_all = json_is_true(json_object_get(spec, "publishNotReadyAddresses"));
    json_t *ready = json_array(), *not_ready = json_array();
    json_t *first = NULL;
    size_t i;
    json_t *pod;
    json_array_foreach(pods, i, pod)
    {
        const char *pns = dc_ctl_meta(pod, "namespace");
        const char *ip = dc_ctl_str(json_object_get(pod, "status"), "podIP");
        if (!pns || strcmp(pns, ns) != 0 || !ip || !*ip || !dc_ctl_pod_active(pod))
            continue;
        if (!dc_label_selector_matches(
                selector, json_object_get(json_object_get(pod, "metadata"), "labels"), true))
            continue;
        if (!first)
            first = pod;
        json_t *addr = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s}}", "ip", ip, "nodeName",
                                 DC_KUBELET_NODE_NAME, "targetRef", "kind", "Pod", "namespace", pns,
                                 "name", dc_ctl_meta(pod, "name"), "uid", dc_ctl_meta(pod, "uid"));
        json_t *pspec = json_object_get(pod, "spec");
        const char *hostname = dc_ctl_str(pspec, "hostname"), *sub = dc_ctl_str(pspec, "subdomain");
        if (hostname && sub && strcmp(sub, name) == 0)
            json_object_set_new(addr, "hostname", json_string(hostname));
        json_array_append_new(publish_all || dc_ctl_pod_ready(pod) ? ready : not_ready, addr);
    }
    json_t *ports = json_array();
    json_t *sp;
    json_array_foreach(json_object_get(spec, "ports"), i, sp)
    {
        int port = (int)json_integer_value(json_object_get(sp, "port"));
        json_t *target = json_object_get(sp, "targetPort");
        int tp = first ? resolve_port(first, target, port)
                       : (json_is_integer(target) ? (int)json_integer_value(target) : port);
        const char *proto = dc_ctl_str(sp, "protocol");
        json_t *ep = json_pack("{s:i,s:s}", "port", tp, "protocol", proto ? proto : "TCP");
        if (dc_ctl_str(sp, "name"))
            json_object_set_new(ep, "name", json_string(dc_ctl_str(sp, "name")));
        json_array_append_new(ports, ep);
    }
    json_t *subsets = json_array();
    if (json_array_size(ready) || json_array_size(not_ready)) {
        json_t *sub = json_object();
        if (json_array_size(ready))
            json_object_set_new(sub, "addresses", sorted(ready));
        if (json_array_size(not_ready))
            json_object_set_new(sub, "notReadyAddresses", sorted(not_ready));
        if (json_array_size(ports))
            json_object_set(sub, "ports", ports);
        json_array_append_new(subsets, sub);
    }
    json_decref(ready);
    json_decref(not_ready);
    json_decref(ports);
    return subsets;
}

void
dc_endpoints_sync(dc_ctl *ctl, dc_ctl_snapshot *s)
{
    size_t i, j;
    json_t *svc, *ep;
    json_array_foreach(s->services, i, svc)
    {
        const char *ns = dc_ctl_meta(svc, "namespace"), *name = dc_ctl_meta(svc, "name");
        json_t *selector = json_object_get(json_object_get(svc, "spec"), "selector");
        if (!ns || !name || !json_is_object(selector) || json_object_size(selector) == 0)
            continue;
        json_t *subsets = dc_endpoints_subsets(svc, s->pods);
        json_t *existing = NULL;
        json_array_foreach(s->endpoints, j, ep)
        {
            const char *en = dc_ctl_meta(ep, "name"), *ens = dc_ctl_meta(ep, "namespace");
            if (en && ens && strcmp(en, name) == 0 && strcmp(ens, ns) == 0)
                existing = ep;
        }
        char path[1200];
        if (!existing) {
            json_t *labels = json_object_get(json_object_get(svc, "metadata"), "labels");
            json_t *obj =
                json_pack("{s:s,s:s,s:{s:s,s:s,s:o},s:O}", "apiVersion", "v1", "kind", "Endpoints",
                          "metadata", "name", name, "namespace", ns, "labels",
                          labels ? json_incref(labels) : json_object(), "subsets", subsets);
            snprintf(path, sizeof(path), "/api/v1/namespaces/%s/endpoints", ns);
            dc_ctl_create(ctl, path, obj);
            json_decref(obj);
        } else {
            json_t *old = json_object_get(existing, "subsets");
            bool same = (old ? json_equal(old, subsets) : json_array_size(subsets) == 0);
            if (!same) {
                json_t *obj = json_deep_copy(existing);
                json_object_set(obj, "subsets", subsets);
                snprintf(path, sizeof(path), "/api/v1/namespaces/%s/endpoints/%s", ns, name);
                dc_ctl_put(ctl, path, obj);
                json_decref(obj);
            }
        }
        json_decref(subsets);
    }
}

void
dc_pvc_sync(dc_ctl *ctl, dc_ctl_snapshot *s)
{
    size_t i;
    json_t *pvc;
    json_t *live = json_object();
    json_array_foreach(s->pvcs, i, pvc)
    {
        const char *ns = dc_ctl_meta(pvc, "namespace"), *name = dc_ctl_meta(pvc, "name");
        if (!ns || !name)
            continue;
        char key[600];
        snprintf(key, sizeof(key), "%s/%s", ns, name);
        json_object_set_new(live, key, json_true());
        const char *phase = dc_ctl_str(json_object_get(pvc, "status"), "phase");
        if (phase && strcmp(phase, "Bound") == 0)
            continue;
        json_t *spec = json_object_get(pvc, "spec");
        json_t *storage = json_object_get(
            json_object_get(json_object_get(spec, "resources"), "requests"), "storage");
        json_t *modes = json_object_get(spec, "accessModes");
        json_t *status =
            json_pack("{s:s,s:o,s:{s:o}}", "phase", "Bound", "accessModes",
                      modes ? json_incref(modes) : json_pack("[s]", "ReadWriteOnce"), "capacity",
                      "storage", storage ? json_incref(storage) : json_string("1Gi"));
        char path[1200];
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/persistentvolumeclaims/%s", ns, name);
        if (dc_ctl_put_status(ctl, path, pvc, status) == 0)
            lb_info("claim bound namespace=%s claim=%s", ns, name);
        json_decref(status);
    }
    /* claims some live pod still mounts are in use, whatever the API says */
    json_t *pod;
    json_array_foreach(s->pods, i, pod)
    {
        size_t j;
        json_t *v;
        json_array_foreach(json_object_get(json_object_get(pod, "spec"), "volumes"), j, v)
        {
            const char *claim =
                dc_ctl_str(json_object_get(v, "persistentVolumeClaim"), "claimName");
            if (!claim || !dc_ctl_meta(pod, "namespace"))
                continue;
            char key[600];
            snprintf(key, sizeof(key), "%s/%s", dc_ctl_meta(pod, "namespace"), claim);
            json_object_set_new(live, key, json_true());
        }
    }
    /* directories of claims that are gone */
    char root[2048];
    snprintf(root, sizeof(root), "%s/pvc", ctl->node_dir);
    DIR *d = opendir(root);
    int64_t now = lb_now_ms();
    json_t *still = json_object();
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char nsdir[2400];
            snprintf(nsdir, sizeof(nsdir), "%s/%s", root, e->d_name);
            DIR *nd = opendir(nsdir);
            if (!nd)
                continue;
            struct dirent *c;
            while ((c = readdir(nd)) != NULL) {
                if (c->d_name[0] == '.')
                    continue;
                char key[600];
                snprintf(key, sizeof(key), "%s/%s", e->d_name, c->d_name);
                if (json_object_get(live, key))
                    continue;
                json_t *since = json_object_get(ctl->pvc_missing, key);
                int64_t first = since ? json_integer_value(since) : now;
                if (since && now - first >= 5000) {
                    char dir[3000];
                    snprintf(dir, sizeof(dir), "%s/%s", nsdir, c->d_name);
                    dc_rmtree(dir);
                    lb_info("claim directory removed claim=%s", key);
                } else {
                    json_object_set_new(still, key, json_integer(first));
                }
            }
            closedir(nd);
        }
        closedir(d);
    }
    json_decref(ctl->pvc_missing);
    ctl->pvc_missing = still;
    json_decref(live);
}
