/*
 * deployment.c: the Deployment and ReplicaSet controllers.
 *
 * A Deployment owns one ReplicaSet per pod template, named
 * <deployment>-<pod-template-hash>, whose pods carry that hash as a label.
 * A rollout (RollingUpdate) scales the new ReplicaSet to the full replica
 * count at once and the old ones to zero once the new one's pods are all
 * available: the surge is 100% and nothing is ever unavailable, which is
 * within what maxSurge/maxUnavailable allow a real cluster to do only when
 * maxSurge is 100%; the end state and the status fields that `kubectl
 * rollout status` reads are Kubernetes'. Recreate scales the old ones to
 * zero first and creates the new one once their pods are gone.
 *
 * A ReplicaSet keeps spec.replicas active pods named <rs>-<5 chars>,
 * deleting not-ready ones first when it has too many.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "controllers.h"
#include "log.h"
#include "podman.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

static int
replicas_of(json_t *obj)
{
    json_t *r = json_object_get(json_object_get(obj, "spec"), "replicas");
    return json_is_integer(r) ? (int)json_integer_value(r) : 1;
}

static int
status_int(json_t *obj, const char *key)
{
    return (int)json_integer_value(json_object_get(json_object_get(obj, "status"), key));
}

static long long
generation(json_t *obj)
{
    return (long long)json_integer_value(
        json_object_get(json_object_get(obj, "metadata"), "generation"));
}

/* ---- ReplicaSet ---- */

static void
random_suffix(char out[6])
{
    static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    static unsigned seed;
    if (!seed)
        seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    for (int i = 0; i < 5; i++)
        out[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
    out[5] = 0;
}

static void
sync_rs(dc_ctl *ctl, dc_ctl_snapshot *s, json_t *rs)
{
    const char *ns = dc_ctl_meta(rs, "namespace"), *name = dc_ctl_meta(rs, "name"),
               *uid = dc_ctl_meta(rs, "uid");
    if (!ns || !name || !uid || dc_ctl_meta(rs, "deletionTimestamp"))
        return;
    int want = replicas_of(rs);
    json_t *active = json_array();
    size_t i;
    json_t *pod;
    int ready = 0;
    json_array_foreach(s->pods, i, pod)
    {
        if (!dc_ctl_owned_by(pod, uid) || !dc_ctl_pod_active(pod))
            continue;
        json_array_append(active, pod);
        if (dc_ctl_pod_ready(pod))
            ready++;
    }
    int have = (int)json_array_size(active);
    char pods_path[600];
    snprintf(pods_path, sizeof(pods_path), "/api/v1/namespaces/%s/pods", ns);
    json_t *tpl = json_object_get(json_object_get(rs, "spec"), "template");
    for (int n = have; n < want; n++) {
        char suffix[6], pod_name[600];
        random_suffix(suffix);
        snprintf(pod_name, sizeof(pod_name), "%s-%s", name, suffix);
        json_t *meta = json_pack("{s:s,s:s,s:[o]}", "name", pod_name, "namespace", ns,
                                 "ownerReferences", dc_ctl_owner_ref(rs, "apps/v1", "ReplicaSet"));
        json_t *tmeta = json_object_get(tpl, "metadata");
        if (json_object_get(tmeta, "labels"))
            json_object_set(meta, "labels", json_object_get(tmeta, "labels"));
        if (json_object_get(tmeta, "annotations"))
            json_object_set(meta, "annotations", json_object_get(tmeta, "annotations"));
        json_t *spec = json_object_get(tpl, "spec");
        json_t *np = json_pack("{s:s,s:s,s:o,s:o}", "apiVersion", "v1", "kind", "Pod", "metadata",
                               meta, "spec", spec ? json_deep_copy(spec) : json_object());
        if (dc_ctl_create(ctl, pods_path, np) == 0)
            lb_info("pod created namespace=%s pod=%s replicaset=%s", ns, pod_name, name);
        json_decref(np);
    }
    /* too many: not-ready ones first */
    for (int pass = 0; pass < 2 && have > want; pass++) {
        json_array_foreach(active, i, pod)
        {
            if (have <= want)
                break;
            if (pass == 0 && dc_ctl_pod_ready(pod))
                continue;
            if (pass == 1 && !dc_ctl_pod_ready(pod))
                continue;
            char path[1200];
            snprintf(path, sizeof(path), "%s/%s", pods_path, dc_ctl_meta(pod, "name"));
            if (dc_ctl_delete(ctl, path, dc_ctl_meta(pod, "uid")) == 0)
                lb_info("pod deleted (scale down) namespace=%s pod=%s replicaset=%s", ns,
                        dc_ctl_meta(pod, "name"), name);
            have--;
        }
    }
    /* replicas: the active pods this pass saw (those it created count next pass) */
    int counted = (int)json_array_size(active);
    json_decref(active);
    json_t *status = json_pack("{s:i,s:i,s:i,s:i,s:I}", "replicas", counted, "fullyLabeledReplicas",
                               counted, "readyReplicas", ready, "availableReplicas", ready,
                               "observedGeneration", (json_int_t)generation(rs));
    char path[1200];
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/replicasets/%s", ns, name);
    dc_ctl_put_status(ctl, path, rs, status);
    json_decref(status);
}

void
dc_replicaset_sync(dc_ctl *ctl, dc_ctl_snapshot *s)
{
    size_t i;
    json_t *rs;
    json_array_foreach(s->replicasets, i, rs) sync_rs(ctl, s, rs);
}

/* ---- Deployment ---- */

static json_t *
condition(json_t *old_status, const char *type, bool ok, const char *reason, const char *message)
{
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *since = now, *updated = now;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(old_status, "conditions"), i, c)
    {
        const char *ct = dc_ctl_str(c, "type"), *cs = dc_ctl_str(c, "status"),
                   *cr = dc_ctl_str(c, "reason");
        if (ct && cs && strcmp(ct, type) == 0 && strcmp(cs, ok ? "True" : "False") == 0) {
            if (dc_ctl_str(c, "lastTransitionTime"))
                since = dc_ctl_str(c, "lastTransitionTime");
            if (cr && strcmp(cr, reason) == 0 && dc_ctl_str(c, "lastUpdateTime"))
                updated = dc_ctl_str(c, "lastUpdateTime");
        }
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", type, "status", ok ? "True" : "False",
                     "reason", reason, "message", message, "lastTransitionTime", since,
                     "lastUpdateTime", updated);
}

static int
revision_of(json_t *rs)
{
    const char *r = json_string_value(
        json_object_get(json_object_get(json_object_get(rs, "metadata"), "annotations"),
                        "deployment.kubernetes.io/revision"));
    return r ? atoi(r) : 0;
}

static void
scale_rs(dc_ctl *ctl, json_t *rs, int replicas)
{
    if (replicas_of(rs) == replicas)
        return;
    json_t *copy = json_deep_copy(rs);
    json_object_set_new(json_object_get(copy, "spec"), "replicas", json_integer(replicas));
    char path[1200];
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/replicasets/%s",
             dc_ctl_meta(rs, "namespace"), dc_ctl_meta(rs, "name"));
    if (dc_ctl_put(ctl, path, copy) == 0)
        lb_info("replicaset scaled namespace=%s replicaset=%s replicas=%d",
                dc_ctl_meta(rs, "namespace"), dc_ctl_meta(rs, "name"), replicas);
    json_decref(copy);
}

static void
sync_deployment(dc_ctl *ctl, dc_ctl_snapshot *s, json_t *d)
{
    const char *ns = dc_ctl_meta(d, "namespace"), *name = dc_ctl_meta(d, "name"),
               *uid = dc_ctl_meta(d, "uid");
    if (!ns || !name || !uid || dc_ctl_meta(d, "deletionTimestamp"))
        return;
    json_t *spec = json_object_get(d, "spec");
    int want = replicas_of(d);
    bool paused = json_is_true(json_object_get(spec, "paused"));
    const char *strategy = dc_ctl_str(json_object_get(spec, "strategy"), "type");
    bool recreate = strategy && strcmp(strategy, "Recreate") == 0;
    char hash[16];
    dc_ctl_hash(json_object_get(spec, "template"), hash);

    json_t *new_rs = NULL, *olds = json_array();
    int max_rev = 0;
    size_t i;
    json_t *rs;
    json_array_foreach(s->replicasets, i, rs)
    {
        if (!dc_ctl_owned_by(rs, uid))
            continue;
        if (revision_of(rs) > max_rev)
            max_rev = revision_of(rs);
        json_t *tmeta =
            json_object_get(json_object_get(json_object_get(rs, "spec"), "template"), "metadata");
        const char *h = json_string_value(
            json_object_get(json_object_get(tmeta, "labels"), "pod-template-hash"));
        if (h && strcmp(h, hash) == 0)
            new_rs = rs;
        else
            json_array_append(olds, rs);
    }
    int old_pods = 0;
    json_array_foreach(olds, i, rs) old_pods += status_int(rs, "replicas");
    if (!paused) {
        if (!new_rs && (!recreate || old_pods == 0)) {
            json_t *tpl = json_deep_copy(json_object_get(spec, "template"));
            json_t *tmeta = json_object_get(tpl, "metadata");
            if (!tmeta) {
                tmeta = json_object();
                json_object_set_new(tpl, "metadata", tmeta);
            }
            json_t *labels = json_object_get(tmeta, "labels");
            if (!labels) {
                labels = json_object();
                json_object_set_new(tmeta, "labels", labels);
            }
            json_object_set_new(labels, "pod-template-hash", json_string(hash));
            json_t *selector = json_deep_copy(json_object_get(spec, "selector"));
            if (!selector)
                selector = json_object();
            json_t *ml = json_object_get(selector, "matchLabels");
            if (!ml) {
                ml = json_object();
                json_object_set_new(selector, "matchLabels", ml);
            }
            json_object_set_new(ml, "pod-template-hash", json_string(hash));
            char rs_name[600], rev[16];
            snprintf(rs_name, sizeof(rs_name), "%s-%s", name, hash);
            snprintf(rev, sizeof(rev), "%d", max_rev + 1);
            json_t *rs_labels = json_deep_copy(labels);
            json_t *obj = json_pack(
                "{s:s,s:s,s:{s:s,s:s,s:o,s:{s:s},s:[o]},s:{s:i,s:o,s:o}}", "apiVersion", "apps/v1",
                "kind", "ReplicaSet", "metadata", "name", rs_name, "namespace", ns, "labels",
                rs_labels, "annotations", "deployment.kubernetes.io/revision", rev,
                "ownerReferences", dc_ctl_owner_ref(d, "apps/v1", "Deployment"), "spec", "replicas",
                want, "selector", selector, "template", tpl);
            char path[1200];
            snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/replicasets", ns);
            if (dc_ctl_create(ctl, path, obj) == 0)
                lb_info("replicaset created namespace=%s replicaset=%s deployment=%s", ns, rs_name,
                        name);
            json_decref(obj);
        } else if (new_rs) {
            scale_rs(ctl, new_rs, want);
        }
        bool new_available =
            new_rs && status_int(new_rs, "availableReplicas") >= want &&
            json_integer_value(json_object_get(json_object_get(new_rs, "status"),
                                               "observedGeneration")) >= generation(new_rs);
        json_array_foreach(olds, i, rs)
        {
            if (recreate || new_available)
                scale_rs(ctl, rs, 0);
        }
    }
    int total = 0, ready = 0, available = 0, updated = 0;
    json_array_foreach(olds, i, rs)
    {
        total += status_int(rs, "replicas");
        ready += status_int(rs, "readyReplicas");
        available += status_int(rs, "availableReplicas");
    }
    if (new_rs) {
        updated = status_int(new_rs, "replicas");
        total += updated;
        ready += status_int(new_rs, "readyReplicas");
        available += status_int(new_rs, "availableReplicas");
    }
    json_decref(olds);
    json_t *old = json_object_get(d, "status");
    bool complete = new_rs && updated == want && total == want && available >= want;
    char msg[900];
    json_t *conds = json_array();
    json_array_append_new(
        conds,
        condition(old, "Available", available >= want,
                  available >= want ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
                  available >= want ? "Deployment has minimum availability."
                                    : "Deployment does not have minimum availability."));
    if (complete)
        snprintf(msg, sizeof(msg), "ReplicaSet \"%s-%s\" has successfully progressed.", name, hash);
    else
        snprintf(msg, sizeof(msg), "ReplicaSet \"%s-%s\" is progressing.", name, hash);
    json_array_append_new(
        conds, condition(old, "Progressing", true,
                         complete ? "NewReplicaSetAvailable" : "ReplicaSetUpdated", msg));
    json_t *status =
        json_pack("{s:I,s:i,s:i,s:i,s:i,s:o}", "observedGeneration", (json_int_t)generation(d),
                  "replicas", total, "updatedReplicas", updated, "readyReplicas", ready,
                  "availableReplicas", available, "conditions", conds);
    if (want - available > 0)
        json_object_set_new(status, "unavailableReplicas", json_integer(want - available));
    char path[1200];
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/deployments/%s", ns, name);
    dc_ctl_put_status(ctl, path, d, status);
    json_decref(status);
}

void
dc_deployment_sync(dc_ctl *ctl, dc_ctl_snapshot *s)
{
    size_t i;
    json_t *d;
    json_array_foreach(s->deployments, i, d) sync_deployment(ctl, s, d);
}
