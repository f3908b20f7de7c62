/*
 * statefulset.c: the StatefulSet controller.
 *
 * Pods are named <set>-<ordinal>, with hostname <set>-<ordinal> and
 * subdomain spec.serviceName, so each has the DNS name
 * <set>-<i>.<service>.<namespace>.svc.cluster.local (dns.c). Each
 * volumeClaimTemplate gives each ordinal a claim <template>-<set>-<i>,
 * created before the pod and never deleted by this controller: the data
 * outlives the pod and the set (persistentVolumeClaimRetentionPolicy
 * Retain, Kubernetes' default).
 *
 * OrderedReady (the default): ordinal i is created only when 0..i-1 are
 * running and ready; scale-down removes the highest ordinal first, one at
 * a time. Parallel: every missing pod at once. RollingUpdate replaces pods
 * whose controller-revision-hash differs from the template's, highest
 * ordinal first, one at a time, each once the others are ready.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controllers.h"
#include "log.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

static json_t *
find_by_name(json_t *items, const char *ns, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach(items, i, o)
    {
        const char *n = dc_ctl_meta(o, "name"), *s = dc_ctl_meta(o, "namespace");
        if (n && s && strcmp(n, name) == 0 && strcmp(s, ns) == 0)
            return o;
    }
    return NULL;
}

static int
ensure_claims(dc_ctl *ctl, dc_ctl_snapshot *s, json_t *sts, int ordinal)
{
    const char *ns = dc_ctl_meta(sts, "namespace"), *name = dc_ctl_meta(sts, "name");
    json_t *spec = json_object_get(sts, "spec");
    size_t i;
    json_t *tpl;
    int created = 0;
    json_array_foreach(json_object_get(spec, "volumeClaimTemplates"), i, tpl)
    {
        char claim[512];
        snprintf(claim, sizeof(claim), "%s-%s-%d", dc_ctl_meta(tpl, "name"), name, ordinal);
        if (find_by_name(s->pvcs, ns, claim))
            continue;
        json_t *pvc =
            json_pack("{s:s,s:s,s:{s:s,s:s},s:o}", "apiVersion", "v1", "kind",
                      "PersistentVolumeClaim", "metadata", "name", claim, "namespace", ns, "spec",
                      json_object_get(tpl, "spec") ? json_deep_copy(json_object_get(tpl, "spec"))
                                                   : json_object());
        json_t *labels =
            json_deep_copy(json_object_get(json_object_get(spec, "selector"), "matchLabels"));
        json_object_set_new(json_object_get(pvc, "metadata"), "labels",
                            labels ? labels : json_object());
        char path[600];
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/persistentvolumeclaims", ns);
        if (dc_ctl_create(ctl, path, pvc) == 0) {
            lb_info("claim created namespace=%s claim=%s statefulset=%s", ns, claim, name);
            created++;
        }
        json_decref(pvc);
    }
    return created;
}

json_t *
dc_statefulset_pod(json_t *sts, int ordinal, const char *revision)
{
    const char *ns = dc_ctl_meta(sts, "namespace"), *name = dc_ctl_meta(sts, "name");
    json_t *spec = json_object_get(sts, "spec"), *tpl = json_object_get(spec, "template");
    char pod_name[512], index[16];
    snprintf(pod_name, sizeof(pod_name), "%s-%d", name, ordinal);
    snprintf(index, sizeof(index), "%d", ordinal);
    json_t *tmeta = json_object_get(tpl, "metadata");
    json_t *labels = json_deep_copy(json_object_get(tmeta, "labels"));
    if (!labels)
        labels = json_object();
    json_object_set_new(labels, "statefulset.kubernetes.io/pod-name", json_string(pod_name));
    json_object_set_new(labels, "controller-revision-hash", json_string(revision));
    json_object_set_new(labels, "apps.kubernetes.io/pod-index", json_string(index));
    json_t *meta =
        json_pack("{s:s,s:s,s:o,s:[o]}", "name", pod_name, "namespace", ns, "labels", labels,
                  "ownerReferences", dc_ctl_owner_ref(sts, "apps/v1", "StatefulSet"));
    json_t *ann = json_object_get(tmeta, "annotations");
    if (ann)
        json_object_set(meta, "annotations", ann);
    json_t *pspec = json_deep_copy(json_object_get(tpl, "spec"));
    if (!pspec)
        pspec = json_object();
    json_object_set_new(pspec, "hostname", json_string(pod_name));
    const char *svc = dc_ctl_str(spec, "serviceName");
    if (svc && *svc)
        json_object_set_new(pspec, "subdomain", json_string(svc));
    json_t *volumes = json_object_get(pspec, "volumes");
    if (!json_is_array(volumes)) {
        volumes = json_array();
        json_object_set_new(pspec, "volumes", volumes);
    }
    size_t i, j;
    json_t *ct, *v;
    json_array_foreach(json_object_get(spec, "volumeClaimTemplates"), i, ct)
    {
        const char *vname = dc_ctl_meta(ct, "name");
        if (!vname)
            continue;
        char claim[512];
        snprintf(claim, sizeof(claim), "%s-%s-%d", vname, name, ordinal);
        json_t *vol =
            json_pack("{s:s,s:{s:s}}", "name", vname, "persistentVolumeClaim", "claimName", claim);
        bool replaced = false;
        json_array_foreach(volumes, j, v)
        {
            const char *n = dc_ctl_str(v, "name");
            if (n && strcmp(n, vname) == 0) {
                json_array_set(volumes, j, vol);
                replaced = true;
                break;
            }
        }
        if (!replaced)
            json_array_append(volumes, vol);
        json_decref(vol);
    }
    return json_pack("{s:s,s:s,s:o,s:o}", "apiVersion", "v1", "kind", "Pod", "metadata", meta,
                     "spec", pspec);
}

static void
sync_one(dc_ctl *ctl, dc_ctl_snapshot *s, json_t *sts)
{
    const char *ns = dc_ctl_meta(sts, "namespace"), *name = dc_ctl_meta(sts, "name");
    const char *uid = dc_ctl_meta(sts, "uid");
    json_t *spec = json_object_get(sts, "spec");
    if (!ns || !name || !uid || dc_ctl_meta(sts, "deletionTimestamp"))
        return;
    json_t *r = json_object_get(spec, "replicas");
    int replicas = json_is_integer(r) ? (int)json_integer_value(r) : 1;
    const char *policy = dc_ctl_str(spec, "podManagementPolicy");
    bool parallel = policy && strcmp(policy, "Parallel") == 0;
    const char *strategy = dc_ctl_str(json_object_get(spec, "updateStrategy"), "type");
    bool on_delete = strategy && strcmp(strategy, "OnDelete") == 0;
    char hash[16], revision[600];
    dc_ctl_hash(json_object_get(spec, "template"), hash);
    snprintf(revision, sizeof(revision), "%s-%s", name, hash);

    /* this set's pods by ordinal */
    int max_ord = replicas;
    size_t i;
    json_t *pod;
    json_array_foreach(s->pods, i, pod)
    {
        if (!dc_ctl_owned_by(pod, uid))
            continue;
        const char *pn = dc_ctl_meta(pod, "name");
        size_t nl = strlen(name);
        if (pn && strncmp(pn, name, nl) == 0 && pn[nl] == '-') {
            int ord = atoi(pn + nl + 1);
            if (ord + 1 > max_ord)
                max_ord = ord + 1;
        }
    }
    json_t **by_ord = calloc((size_t)max_ord + 1, sizeof(*by_ord));
    if (!by_ord)
        return;
    json_array_foreach(s->pods, i, pod)
    {
        if (!dc_ctl_owned_by(pod, uid))
            continue;
        const char *pn = dc_ctl_meta(pod, "name");
        size_t nl = strlen(name);
        if (pn && strncmp(pn, name, nl) == 0 && pn[nl] == '-') {
            int ord = atoi(pn + nl + 1);
            if (ord >= 0 && ord < max_ord)
                by_ord[ord] = pod;
        }
    }
    char pods_path[600];
    snprintf(pods_path, sizeof(pods_path), "/api/v1/namespaces/%s/pods", ns);

    int ready = 0, existing = 0, updated = 0;
    bool all_ready_below = true, acted = false;
    for (int o = 0; o < replicas; o++) {
        json_t *p = by_ord[o];
        if (!p) {
            if (acted && !parallel)
                break;
            if (!all_ready_below && !parallel)
                break;
            ensure_claims(ctl, s, sts, o);
            json_t *np = dc_statefulset_pod(sts, o, revision);
            if (dc_ctl_create(ctl, pods_path, np) == 0)
                lb_info("pod created namespace=%s pod=%s-%d statefulset=%s", ns, name, o, name);
            json_decref(np);
            acted = true;
            all_ready_below = false;
            continue;
        }
        existing++;
        bool is_ready = dc_ctl_pod_ready(p);
        const char *prev = json_string_value(json_object_get(
            json_object_get(json_object_get(p, "metadata"), "labels"), "controller-revision-hash"));
        if (prev && strcmp(prev, revision) == 0)
            updated++;
        if (is_ready)
            ready++;
        else
            all_ready_below = false;
        /* a failed pod is replaced, as Kubernetes does */
        const char *phase = dc_ctl_str(json_object_get(p, "status"), "phase");
        if (phase && (strcmp(phase, "Failed") == 0 || strcmp(phase, "Succeeded") == 0) &&
            !dc_ctl_meta(p, "deletionTimestamp")) {
            char path[1200];
            snprintf(path, sizeof(path), "%s/%s", pods_path, dc_ctl_meta(p, "name"));
            dc_ctl_delete(ctl, path, dc_ctl_meta(p, "uid"));
            acted = true;
        }
    }
    /* scale down: highest ordinal first, one at a time */
    for (int o = max_ord - 1; o >= replicas && !acted; o--) {
        json_t *p = by_ord[o];
        if (!p)
            continue;
        existing++;
        if (!dc_ctl_meta(p, "deletionTimestamp")) {
            char path[1200];
            snprintf(path, sizeof(path), "%s/%s", pods_path, dc_ctl_meta(p, "name"));
            if (dc_ctl_delete(ctl, path, dc_ctl_meta(p, "uid")) == 0)
                lb_info("pod deleted (scale down) namespace=%s pod=%s", ns, dc_ctl_meta(p, "name"));
        }
        acted = true;
    }
    /* rolling update: every pod present and ready, then the highest stale one */
    if (!acted && !on_delete && ready == replicas) {
        for (int o = replicas - 1; o >= 0; o--) {
            json_t *p = by_ord[o];
            const char *prev = json_string_value(
                json_object_get(json_object_get(json_object_get(p, "metadata"), "labels"),
                                "controller-revision-hash"));
            if (p && (!prev || strcmp(prev, revision) != 0)) {
                char path[1200];
                snprintf(path, sizeof(path), "%s/%s", pods_path, dc_ctl_meta(p, "name"));
                if (dc_ctl_delete(ctl, path, dc_ctl_meta(p, "uid")) == 0)
                    lb_info("pod replaced (rolling update) namespace=%s pod=%s", ns,
                            dc_ctl_meta(p, "name"));
                break;
            }
        }
    }
    free(by_ord);

    json_t *old = json_object_get(sts, "status");
    const char *current = dc_ctl_str(old, "currentRevision");
    bool done = updated == replicas && ready == replicas && existing == replicas;
    json_t *status = json_pack(
        "{s:I,s:i,s:i,s:i,s:i,s:i,s:s,s:s,s:i}", "observedGeneration",
        json_integer_value(json_object_get(json_object_get(sts, "metadata"), "generation")),
        "replicas", existing, "readyReplicas", ready, "availableReplicas", ready, "currentReplicas",
        done ? replicas : existing - updated, "updatedReplicas", updated, "currentRevision",
        done || !current ? revision : current, "updateRevision", revision, "collisionCount", 0);
    char path[1200];
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/statefulsets/%s", ns, name);
    dc_ctl_put_status(ctl, path, sts, status);
    json_decref(status);
}

void
dc_statefulset_sync(dc_ctl *ctl, dc_ctl_snapshot *s)
{
    size_t i;
    json_t *sts;
    json_array_foreach(s->statefulsets, i, sts) sync_one(ctl, s, sts);
}
