/*
 * resources.c: the table of built-in kinds and the custom resources of the
 * stored CRDs (see resources.h).
 *
 * A CRD contributes one dc_resource per served version; all versions share
 * one storage key, and objects are returned with the apiVersion asked for
 * (conversion strategy None, which is what CRDs default to).
 */
#include "resources.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B(g, v, p, s, k, ns, st, sc, gen, ...)                                                     \
    {                                                                                              \
        .group = g, .version = v, .plural = p, .singular = s, .kind = k, .list_kind = k "List",    \
        .key = g "/" p, .namespaced = ns, .has_status = st, .has_scale = sc,                       \
        .has_generation = gen, .storage_version = true, __VA_ARGS__                                \
    }

static const dc_resource builtins[] = {
    B("", "v1", "namespaces", "namespace", "Namespace", false, true, false, false,
      .short_names = {"ns"}),
    B("", "v1", "pods", "pod", "Pod", true, true, false, false, .short_names = {"po"},
      .subresources = {"log"}),
    B("", "v1", "services", "service", "Service", true, true, false, false, .short_names = {"svc"}),
    B("", "v1", "endpoints", "endpoints", "Endpoints", true, false, false, false,
      .short_names = {"ep"}),
    B("", "v1", "configmaps", "configmap", "ConfigMap", true, false, false, false,
      .short_names = {"cm"}),
    B("", "v1", "secrets", "secret", "Secret", true, false, false, false),
    B("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, false, false, false,
      .short_names = {"sa"}, .subresources = {"token"}),
    B("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true,
      true, false, false, .short_names = {"pvc"}),
    B("", "v1", "events", "event", "Event", true, false, false, false, .short_names = {"ev"}),
    B("", "v1", "nodes", "node", "Node", false, true, false, false, .short_names = {"no"}),
    B("apps", "v1", "deployments", "deployment", "Deployment", true, true, true, true,
      .short_names = {"deploy"}),
    B("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, true, true, true,
      .short_names = {"sts"}),
    B("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, true, true, true,
      .short_names = {"rs"}),
    B("apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", true, false,
      false, false),
    B("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, false, false, false),
    B("apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition",
      "CustomResourceDefinition", false, true, false, true, .short_names = {"crd", "crds"}),
    B("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true, false, false, false),
    B("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", true, false,
      false, false),
    B("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", false, false,
      false, false),
    B("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding",
      "ClusterRoleBinding", false, false, false, false),
    /* stored and served, with no controller behind them (README) */
    B("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", false, true, false,
      false, .short_names = {"pv"}),
    B("", "v1", "limitranges", "limitrange", "LimitRange", true, false, false, false,
      .short_names = {"limits"}),
    B("", "v1", "resourcequotas", "resourcequota", "ResourceQuota", true, true, false, false,
      .short_names = {"quota"}),
    B("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, true, false, true,
      .short_names = {"ds"}),
    B("batch", "v1", "jobs", "job", "Job", true, true, false, true),
    B("batch", "v1", "cronjobs", "cronjob", "CronJob", true, true, false, true,
      .short_names = {"cj"}),
    B("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true,
      true, false, true, .short_names = {"pdb"}),
    B("networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", true, false,
      false, true, .short_names = {"netpol"}),
    B("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", true, true, false, true,
      .short_names = {"ing"}),
    B("networking.k8s.io", "v1", "ingressclasses", "ingressclass", "IngressClass", false, false,
      false, false),
    B("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", true, false,
      false, false),
    B("storage.k8s.io", "v1", "storageclasses", "storageclass", "StorageClass", false, false, false,
      false, .short_names = {"sc"}),
    B("scheduling.k8s.io", "v1", "priorityclasses", "priorityclass", "PriorityClass", false, false,
      false, false, .short_names = {"pc"}),
    B("autoscaling", "v2", "horizontalpodautoscalers", "horizontalpodautoscaler",
      "HorizontalPodAutoscaler", true, true, false, false, .short_names = {"hpa"}),
    B("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "selfsubjectaccessreview",
      "SelfSubjectAccessReview", false, false, false, false, .create_only = true),
};
#define NBUILTIN (int)(sizeof builtins / sizeof builtins[0])

static dc_resource *custom;
static int ncustom;

void
dc_resources_free(void)
{
    for (int i = 0; i < ncustom; i++) {
        json_decref(custom[i].schema);
        json_decref(custom[i].printer_columns);
        free(custom[i].crd_short_names);
        free(custom[i].crd_categories);
    }
    free(custom);
    custom = NULL;
    ncustom = 0;
}

static void
copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static char *
join(json_t *arr)
{
    char buf[1024] = "";
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            continue;
        size_t len = strlen(buf);
        snprintf(buf + len, sizeof buf - len, "%s%s", len ? "," : "", json_string_value(v));
    }
    return strdup(buf);
}

typedef struct crd_list {
    dc_resource *items;
    int n;
} crd_list;

static int
add_crd(void *arg, const char *ns, const char *name, json_t *crd)
{
    (void)ns;
    (void)name;
    crd_list *l = arg;
    json_t *spec = json_object_get(crd, "spec");
    json_t *names = json_object_get(spec, "names");
    json_t *versions = json_object_get(spec, "versions");
    size_t i;
    json_t *ver;
    json_array_foreach(versions, i, ver)
    {
        if (json_is_false(json_object_get(ver, "served")))
            continue;
        dc_resource *grown = realloc(l->items, sizeof *grown * (size_t)(l->n + 1));
        if (!grown)
            return -1;
        l->items = grown;
        dc_resource *r = &l->items[l->n++];
        memset(r, 0, sizeof *r);
        copy(r->group, sizeof r->group, json_string_value(json_object_get(spec, "group")));
        copy(r->version, sizeof r->version, json_string_value(json_object_get(ver, "name")));
        copy(r->plural, sizeof r->plural, json_string_value(json_object_get(names, "plural")));
        copy(r->singular, sizeof r->singular,
             json_string_value(json_object_get(names, "singular")));
        copy(r->kind, sizeof r->kind, json_string_value(json_object_get(names, "kind")));
        const char *lk = json_string_value(json_object_get(names, "listKind"));
        if (lk)
            copy(r->list_kind, sizeof r->list_kind, lk);
        else
            snprintf(r->list_kind, sizeof r->list_kind, "%sList", r->kind);
        if (!r->singular[0]) {
            for (size_t k = 0; r->kind[k] && k + 1 < sizeof r->singular; k++)
                r->singular[k] =
                    (char)(r->kind[k] >= 'A' && r->kind[k] <= 'Z' ? r->kind[k] + 32 : r->kind[k]);
        }
        snprintf(r->key, sizeof r->key, "%s/%s", r->group, r->plural);
        r->namespaced = !json_is_string(json_object_get(spec, "scope")) ||
                        strcmp(json_string_value(json_object_get(spec, "scope")), "Cluster") != 0;
        r->has_generation = true;
        r->custom = true;
        r->storage_version = json_is_true(json_object_get(ver, "storage"));
        json_t *sub = json_object_get(ver, "subresources");
        r->has_status = json_object_get(sub, "status") != NULL;
        json_t *scale = json_object_get(sub, "scale");
        r->has_scale = scale != NULL;
        if (scale) {
            copy(r->scale_spec_path, sizeof r->scale_spec_path,
                 json_string_value(json_object_get(scale, "specReplicasPath")));
            copy(r->scale_status_path, sizeof r->scale_status_path,
                 json_string_value(json_object_get(scale, "statusReplicasPath")));
            copy(r->scale_selector_path, sizeof r->scale_selector_path,
                 json_string_value(json_object_get(scale, "labelSelectorPath")));
        }
        json_t *schema = json_object_get(json_object_get(ver, "schema"), "openAPIV3Schema");
        r->schema = schema ? json_deep_copy(schema) : NULL;
        json_t *cols = json_object_get(ver, "additionalPrinterColumns");
        r->printer_columns = cols ? json_deep_copy(cols) : NULL;
        r->crd_short_names = join(json_object_get(names, "shortNames"));
        r->crd_categories = join(json_object_get(names, "categories"));
    }
    return 0;
}

int
dc_resources_reload(dc_store *s)
{
    crd_list l = {0};
    int rc = dc_store_list(s, "apiextensions.k8s.io/customresourcedefinitions", NULL, NULL, NULL,
                           add_crd, &l);
    dc_resources_free();
    custom = l.items;
    ncustom = l.n;
    return rc;
}

int
dc_resources_count(void)
{
    return NBUILTIN + ncustom;
}

const dc_resource *
dc_resources_at(int i)
{
    if (i < NBUILTIN)
        return &builtins[i];
    return i - NBUILTIN < ncustom ? &custom[i - NBUILTIN] : NULL;
}

const dc_resource *
dc_resources_find(const char *group, const char *version, const char *plural)
{
    for (int i = 0; i < dc_resources_count(); i++) {
        const dc_resource *r = dc_resources_at(i);
        if (strcmp(r->group, group) == 0 && strcmp(r->version, version) == 0 &&
            strcmp(r->plural, plural) == 0)
            return r;
    }
    return NULL;
}

const dc_resource *
dc_resources_find_kind(const char *group, const char *kind)
{
    const dc_resource *any = NULL;
    for (int i = 0; i < dc_resources_count(); i++) {
        const dc_resource *r = dc_resources_at(i);
        if (strcmp(r->group, group) == 0 && strcmp(r->kind, kind) == 0) {
            if (r->storage_version)
                return r;
            any = any ? any : r;
        }
    }
    return any;
}

const dc_resource *
dc_resources_by_key(const char *key)
{
    for (int i = 0; i < dc_resources_count(); i++) {
        const dc_resource *r = dc_resources_at(i);
        if (strcmp(r->key, key) == 0)
            return r;
    }
    return NULL;
}
