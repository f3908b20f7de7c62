/*
 * discovery.c: /version, /api, /apis, /api/v1, /apis/GROUP[/VERSION],
 * and /openapi/v3.
 *
 * Discovery comes in both forms: the aggregated one (apidiscovery.k8s.io/v2,
 * one document each for /api and /apis, built from the legacy lists), which
 * kubectl 1.32 asks for first (Accept: ...as=APIGroupDiscoveryList), and the
 * legacy documents for everyone else.
 *
 * /openapi/v3 serves, per group-version, a document whose PATCH
 * operations carry x-kubernetes-group-version-kind and the fieldValidation
 * query parameter. That is what kubectl's validation looks for: finding
 * the parameter, it leaves validation to the server and sends
 * ?fieldValidation=Strict. Custom resources also get component schemas
 * in the real server's shapes, which is what `kubectl explain` reads: it
 * finds the kind's x-kubernetes-group-version-kind on an operation of the
 * resource's path, then the component schema whose
 * x-kubernetes-group-version-kind list holds the same {group, kind,
 * version}, named like the real server's (io.lakebase.v1alpha1.Branch,
 * its List, and the ObjectMeta/ListMeta they refer to). Built-in kinds
 * have no component schemas, so explain shows nothing for them, and
 * kubectl apply builds its strategic merge patches from its compiled-in
 * types (as it does against any server whose OpenAPI lacks a kind; the
 * PATCH operations declare no strategic-merge request body). /openapi/v2
 * is a document with no definitions, for kubectl's validation of Lists.
 */
#include "api.h"
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const all_category[] = {"pods", "services", "deployments", "statefulsets",
                                           "replicasets"};

static json_t *
verbs_for(const dc_resource *r)
{
    if (r->create_only)
        return json_pack("[s]", "create");
    return json_pack("[s,s,s,s,s,s,s,s]", "create", "delete", "deletecollection", "get", "list",
                     "patch", "update", "watch");
}

static json_t *
resource_list(const char *group, const char *version)
{
    char gv[256];
    snprintf(gv, sizeof gv, "%s%s%s", group, group[0] ? "/" : "", version);
    json_t *list = json_pack("{s:s, s:s, s:s, s:[]}", "kind", "APIResourceList", "apiVersion", "v1",
                             "groupVersion", gv, "resources");
    json_t *items = json_object_get(list, "resources");
    bool any = false;
    for (int i = 0; i < dc_resources_count(); i++) {
        const dc_resource *r = dc_resources_at(i);
        if (strcmp(r->group, group) != 0 || strcmp(r->version, version) != 0)
            continue;
        any = true;
        json_t *e =
            json_pack("{s:s, s:s, s:b, s:s, s:o}", "name", r->plural, "singularName", r->singular,
                      "namespaced", r->namespaced, "kind", r->kind, "verbs", verbs_for(r));
        json_t *shorts = json_array();
        for (int k = 0; k < 6 && r->short_names[k]; k++)
            json_array_append_new(shorts, json_string(r->short_names[k]));
        if (r->crd_short_names && *r->crd_short_names) {
            char buf[1024];
            snprintf(buf, sizeof buf, "%s", r->crd_short_names);
            char *save = NULL;
            for (char *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save))
                json_array_append_new(shorts, json_string(s));
        }
        if (json_array_size(shorts))
            json_object_set_new(e, "shortNames", shorts);
        else
            json_decref(shorts);
        json_t *cats = json_array();
        for (size_t k = 0; k < sizeof all_category / sizeof all_category[0]; k++)
            if (!r->custom && strcmp(r->plural, all_category[k]) == 0)
                json_array_append_new(cats, json_string("all"));
        if (r->crd_categories && *r->crd_categories) {
            char buf[1024];
            snprintf(buf, sizeof buf, "%s", r->crd_categories);
            char *save = NULL;
            for (char *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save))
                json_array_append_new(cats, json_string(s));
        }
        if (json_array_size(cats))
            json_object_set_new(e, "categories", cats);
        else
            json_decref(cats);
        json_array_append_new(items, e);
        char sub[300];
        if (r->has_status) {
            snprintf(sub, sizeof sub, "%s/status", r->plural);
            json_array_append_new(items,
                                  json_pack("{s:s, s:s, s:b, s:s, s:[s,s,s]}", "name", sub,
                                            "singularName", "", "namespaced", r->namespaced, "kind",
                                            r->kind, "verbs", "get", "patch", "update"));
        }
        if (r->has_scale) {
            snprintf(sub, sizeof sub, "%s/scale", r->plural);
            json_array_append_new(items,
                                  json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:[s,s,s]}", "name",
                                            sub, "singularName", "", "group", "autoscaling",
                                            "namespaced", r->namespaced, "version", "v1", "kind",
                                            "Scale", "verbs", "get", "patch", "update"));
        }
        for (int k = 0; k < 4 && r->subresources[k]; k++) {
            snprintf(sub, sizeof sub, "%s/%s", r->plural, r->subresources[k]);
            bool is_token = strcmp(r->subresources[k], "token") == 0;
            json_t *e2 =
                json_pack("{s:s, s:s, s:b, s:s, s:[s]}", "name", sub, "singularName", "",
                          "namespaced", r->namespaced, "kind", is_token ? "TokenRequest" : r->kind,
                          "verbs", is_token ? "create" : "get");
            if (is_token) {
                json_object_set_new(e2, "group", json_string("authentication.k8s.io"));
                json_object_set_new(e2, "version", json_string("v1"));
            }
            json_array_append_new(items, e2);
        }
    }
    if (!any) {
        json_decref(list);
        return NULL;
    }
    return list;
}

/* Groups in first-seen order, with their versions. */
static json_t *
group_list(void)
{
    json_t *groups = json_array();
    json_t *seen = json_object();
    for (int i = 0; i < dc_resources_count(); i++) {
        const dc_resource *r = dc_resources_at(i);
        if (!r->group[0])
            continue;
        json_t *g = json_object_get(seen, r->group);
        if (!g) {
            g = json_pack("{s:s, s:s, s:s, s:[]}", "kind", "APIGroup", "apiVersion", "v1", "name",
                          r->group, "versions");
            json_object_set_new(seen, r->group, g);
            json_array_append(groups, g);
        }
        json_t *versions = json_object_get(g, "versions");
        bool have = false;
        size_t k;
        json_t *v;
        json_array_foreach(versions, k,
                           v) if (strcmp(json_string_value(json_object_get(v, "version")),
                                         r->version) == 0) have = true;
        char gv[300];
        snprintf(gv, sizeof gv, "%s/%s", r->group, r->version);
        if (!have)
            json_array_append_new(
                versions, json_pack("{s:s, s:s}", "groupVersion", gv, "version", r->version));
        if (r->storage_version || !json_object_get(g, "preferredVersion"))
            json_object_set_new(g, "preferredVersion",
                                json_pack("{s:s, s:s}", "groupVersion", gv, "version", r->version));
    }
    json_decref(seen);
    return groups;
}

static json_t *
openapi_root(dc_ctx *c)
{
    json_t *paths = json_object();
    char hash[32];
    snprintf(hash, sizeof hash, "%016llX", (long long)dc_store_rv(c->api->store));
    for (int i = 0; i < dc_resources_count(); i++) {
        const dc_resource *r = dc_resources_at(i);
        char key[300], url[400];
        if (r->group[0])
            snprintf(key, sizeof key, "apis/%s/%s", r->group, r->version);
        else
            snprintf(key, sizeof key, "api/%s", r->version);
        snprintf(url, sizeof url, "/openapi/v3/%s?hash=%s", key, hash);
        json_object_set_new(paths, key, json_pack("{s:s}", "serverRelativeURL", url));
    }
    return json_pack("{s:o}", "paths", paths);
}

static json_t *
operation(const dc_resource *r, const char *action)
{
    return json_pack("{s:s, s:{s:s, s:s, s:s}, s:[{s:s, s:s, s:{s:s}, s:s}], s:{s:{s:s}}}",
                     "x-kubernetes-action", action, "x-kubernetes-group-version-kind", "group",
                     r->group, "version", r->version, "kind", r->kind, "parameters", "name",
                     "fieldValidation", "in", "query", "schema", "type", "string", "description",
                     "fieldValidation instructs the server on how to handle objects in the "
                     "request containing unknown or duplicate fields.",
                     "responses", "200", "description", "OK");
}

/* "lakebase.io" -> "io.lakebase": the real server's component names
 * start with the reversed group. */
static void
reversed_group(const char *group, char *out, size_t cap)
{
    out[0] = '\0';
    size_t len = strlen(group), used = 0;
    size_t end = len;
    while (end > 0 && used + 1 < cap) {
        size_t start = end;
        while (start > 0 && group[start - 1] != '.')
            start--;
        int n = snprintf(out + used, cap - used, "%s%.*s", used ? "." : "", (int)(end - start),
                         group + start);
        if (n < 0 || (size_t)n >= cap - used)
            break;
        used += (size_t)n;
        end = start > 0 ? start - 1 : 0;
    }
}

#define META_DOC                                                                                   \
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"

static json_t *
gvk_list(const dc_resource *r, const char *kind)
{
    return json_pack("[{s:s, s:s, s:s}]", "group", r->group, "kind", kind, "version", r->version);
}

/* The ObjectMeta and ListMeta components the kinds' metadata refer to
 * (the fields users set and read; the real documents have them all). */
typedef struct meta_field {
    const char *name, *type, *format, *description;
} meta_field;

static const meta_field object_meta[] = {
    {"name", "string", NULL, "Name must be unique within a namespace."},
    {"namespace", "string", NULL,
     "Namespace defines the space within which each name must be unique."},
    {"generateName", "string", NULL,
     "GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF "
     "the Name field has not been provided."},
    {"uid", "string", NULL, "UID is the unique in time and space value for this object."},
    {"labels", "map", NULL,
     "Map of string keys and values that can be used to organize and categorize (scope and "
     "select) objects."},
    {"annotations", "map", NULL,
     "Annotations is an unstructured key value map stored with a resource."},
    {"resourceVersion", "string", NULL,
     "An opaque value that represents the internal version of this object."},
    {"generation", "integer", "int64",
     "A sequence number representing a specific generation of the desired state."},
    {"creationTimestamp", "string", "date-time",
     "CreationTimestamp is a timestamp representing the server time when this object was "
     "created."},
    {"deletionTimestamp", "string", "date-time",
     "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."},
    {"deletionGracePeriodSeconds", "integer", "int64",
     "Number of seconds allowed for this object to gracefully terminate."},
    {"finalizers", "list", NULL, "Must be empty before the object is deleted from the registry."},
    {"ownerReferences", "objects", NULL, "List of objects depended by this object."},
    {NULL, NULL, NULL, NULL},
};

static const meta_field list_meta[] = {
    {"continue", "string", NULL,
     "continue may be set if the user set a limit on the number of items returned."},
    {"resourceVersion", "string", NULL,
     "String that identifies the server's internal version of this object."},
    {"remainingItemCount", "integer", "int64",
     "The number of subsequent items in the list which are not included in this list response."},
    {NULL, NULL, NULL, NULL},
};

static json_t *
meta_schema(const char *description, const meta_field *fields)
{
    json_t *props = json_object();
    for (const meta_field *f = fields; f->name; f++) {
        json_t *p = json_pack("{s:s}", "description", f->description);
        if (strcmp(f->type, "map") == 0) {
            json_object_set_new(p, "type", json_string("object"));
            json_object_set_new(p, "additionalProperties",
                                json_pack("{s:s, s:s}", "type", "string", "default", ""));
        } else if (strcmp(f->type, "list") == 0 || strcmp(f->type, "objects") == 0) {
            json_object_set_new(p, "type", json_string("array"));
            json_object_set_new(
                p, "items", json_pack("{s:s}", "type", f->type[0] == 'l' ? "string" : "object"));
        } else {
            json_object_set_new(p, "type", json_string(f->type));
        }
        if (f->format)
            json_object_set_new(p, "format", json_string(f->format));
        json_object_set_new(props, f->name, p);
    }
    return json_pack("{s:s, s:s, s:o}", "description", description, "type", "object", "properties",
                     props);
}

static void
add_meta_components(json_t *schemas)
{
    if (json_object_get(schemas, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"))
        return;
    json_object_set_new(schemas, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                        meta_schema("ObjectMeta is metadata that all persisted resources must "
                                    "have, which includes all objects users must create.",
                                    object_meta));
    json_object_set_new(schemas, "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
                        meta_schema("ListMeta describes metadata that synthetic resources must "
                                    "have, including lists and various status objects.",
                                    list_meta));
}

/* A custom resource's component schemas: the kind (its openAPIV3Schema,
 * with the standard apiVersion, kind and metadata) and its List. */
static void
add_custom_components(json_t *schemas, const dc_resource *r)
{
    char rg[160], name[500], list_name[520], ref[600];
    reversed_group(r->group, rg, sizeof rg);
    snprintf(name, sizeof name, "%s.%s.%s", rg, r->version, r->kind);
    snprintf(list_name, sizeof list_name, "%s.%s.%s", rg, r->version, r->list_kind);
    json_t *s = json_deep_copy(r->schema);
    if (!json_is_object(s)) {
        json_decref(s);
        s = json_pack("{s:s, s:b}", "type", "object", "x-kubernetes-preserve-unknown-fields", 1);
    }
    json_t *props = json_object_get(s, "properties");
    if (!json_is_object(props)) {
        props = json_object();
        json_object_set_new(s, "properties", props);
    }
    json_object_set_new(props, "apiVersion",
                        json_pack("{s:s, s:s}", "description",
                                  "APIVersion defines the versioned schema of this representation "
                                  "of an object. Servers should convert recognized schemas to "
                                  "the latest internal value, and may reject unrecognized "
                                  "values. More info: " META_DOC "#resources",
                                  "type", "string"));
    json_object_set_new(props, "kind",
                        json_pack("{s:s, s:s}", "description",
                                  "Kind is a string value representing the REST resource this "
                                  "object represents. Servers may infer this from the endpoint "
                                  "the client submits requests to. Cannot be updated. In "
                                  "CamelCase. More info: " META_DOC "#types-kinds",
                                  "type", "string"));
    json_object_set_new(
        props, "metadata",
        json_pack("{s:[{s:s}], s:s, s:{}}", "allOf", "$ref",
                  "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                  "description", "Standard object's metadata. More info: " META_DOC "#metadata",
                  "default"));
    json_object_set_new(s, "x-kubernetes-group-version-kind", gvk_list(r, r->kind));
    json_object_set_new(schemas, name, s);
    snprintf(ref, sizeof ref, "#/components/schemas/%s", name);
    json_object_set_new(
        schemas, list_name,
        json_pack("{s:s, s:s, s:[s], s:{s:{s:s, s:s}, s:{s:s, s:s, s:{s:s}}, s:{s:s, s:s}, "
                  "s:{s:[{s:s}], s:s, s:{}}}, s:o}",
                  "description", "List of custom resources.", "type", "object", "required", "items",
                  "properties", "apiVersion", "description",
                  "APIVersion defines the versioned schema of this representation of an object.",
                  "type", "string", "items", "description",
                  "List of objects. More info: " META_DOC "#resources", "type", "array", "items",
                  "$ref", ref, "kind", "description",
                  "Kind is a string value representing the REST resource this object represents.",
                  "type", "string", "metadata", "allOf", "$ref",
                  "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
                  "description", "Standard list metadata. More info: " META_DOC "#types-kinds",
                  "default", "x-kubernetes-group-version-kind", gvk_list(r, r->list_kind)));
}

static json_t *
openapi_gv(const char *group, const char *version)
{
    json_t *schemas = json_object();
    json_t *paths = json_object();
    bool any = false;
    for (int i = 0; i < dc_resources_count(); i++) {
        const dc_resource *r = dc_resources_at(i);
        if (strcmp(r->group, group) != 0 || strcmp(r->version, version) != 0)
            continue;
        any = true;
        char base[800], item[1200];
        if (group[0])
            snprintf(base, sizeof base, "/apis/%s/%s%s", group, version,
                     r->namespaced ? "/namespaces/{namespace}" : "");
        else
            snprintf(base, sizeof base, "/api/%s%s", version,
                     r->namespaced ? "/namespaces/{namespace}" : "");
        char coll[1200];
        snprintf(coll, sizeof coll, "%s/%s", base, r->plural);
        snprintf(item, sizeof item, "%s/%s/{name}", base, r->plural);
        json_object_set_new(paths, coll, json_pack("{s:o}", "post", operation(r, "post")));
        json_object_set_new(
            paths, item,
            json_pack("{s:o, s:o}", "patch", operation(r, "patch"), "put", operation(r, "put")));
        if (r->custom) {
            add_meta_components(schemas);
            add_custom_components(schemas, r);
        }
    }
    if (!any) {
        json_decref(paths);
        json_decref(schemas);
        return NULL;
    }
    return json_pack("{s:s, s:{s:s, s:s}, s:o, s:{s:o}}", "openapi", "3.0.0", "info", "title",
                     "Kubernetes", "version", "v1.32.3", "paths", paths, "components", "schemas",
                     schemas);
}

/* The aggregated form (apidiscovery.k8s.io/v2) of /api (core) or /apis:
 * every group, version and resource in one document, built from the
 * legacy lists. */
static json_t *
aggregated(bool core)
{
    json_t *groups;
    if (core) {
        groups = json_pack("[{s:s, s:[{s:s}]}]", "name", "", "versions", "version", "v1");
    } else {
        groups = group_list();
        /* the preferred version first */
        size_t i;
        json_t *g;
        json_array_foreach(groups, i, g)
        {
            json_t *pref = json_object_get(json_object_get(g, "preferredVersion"), "version");
            json_t *versions = json_object_get(g, "versions");
            size_t k;
            json_t *v;
            json_array_foreach(versions, k, v)
            {
                if (k > 0 && json_equal(json_object_get(v, "version"), pref)) {
                    json_array_insert(versions, 0, v);
                    json_array_remove(versions, k + 1);
                    break;
                }
            }
        }
    }
    json_t *items = json_array();
    size_t i;
    json_t *g;
    json_array_foreach(groups, i, g)
    {
        const char *gname = json_string_value(json_object_get(g, "name"));
        json_t *versions = json_array();
        size_t k;
        json_t *v;
        json_array_foreach(json_object_get(g, "versions"), k, v)
        {
            const char *ver = json_string_value(json_object_get(v, "version"));
            json_t *rl = resource_list(gname, ver);
            json_t *resources = json_array();
            json_t *by_name = json_object();
            size_t r;
            json_t *e;
            json_array_foreach(json_object_get(rl, "resources"), r, e)
            {
                const char *name = json_string_value(json_object_get(e, "name"));
                const char *slash = strchr(name, '/');
                json_t *kind =
                    json_pack("{s:s, s:s, s:O}", "group",
                              json_string_value(json_object_get(e, "group")) ?: gname, "version",
                              json_string_value(json_object_get(e, "version")) ?: ver, "kind",
                              json_object_get(e, "kind"));
                if (!slash) {
                    json_t *res = json_pack(
                        "{s:s, s:o, s:s, s:O, s:O, s:[]}", "resource", name, "responseKind", kind,
                        "scope",
                        json_is_true(json_object_get(e, "namespaced")) ? "Namespaced" : "Cluster",
                        "singularResource", json_object_get(e, "singularName"), "verbs",
                        json_object_get(e, "verbs"), "subresources");
                    if (json_object_get(e, "shortNames"))
                        json_object_set(res, "shortNames", json_object_get(e, "shortNames"));
                    if (json_object_get(e, "categories"))
                        json_object_set(res, "categories", json_object_get(e, "categories"));
                    json_array_append_new(resources, res);
                    json_object_set(by_name, name, res);
                } else {
                    char parent[256];
                    snprintf(parent, sizeof parent, "%.*s", (int)(slash - name), name);
                    json_t *res = json_object_get(by_name, parent);
                    json_array_append_new(json_object_get(res, "subresources"),
                                          json_pack("{s:s, s:o, s:O}", "subresource", slash + 1,
                                                    "responseKind", kind, "verbs",
                                                    json_object_get(e, "verbs")));
                    /* (a parent always comes first; without one the entry is dropped) */
                }
            }
            json_decref(by_name);
            json_decref(rl);
            json_array_append_new(versions,
                                  json_pack("{s:s, s:o, s:s}", "version", ver, "resources",
                                            resources, "freshness", "Current"));
        }
        json_array_append_new(
            items, json_pack("{s:{s:s}, s:o}", "metadata", "name", gname, "versions", versions));
    }
    json_decref(groups);
    return json_pack("{s:s, s:s, s:{}, s:o}", "kind", "APIGroupDiscoveryList", "apiVersion",
                     "apidiscovery.k8s.io/v2", "metadata", "items", items);
}

static bool
wants_aggregated(dc_ctx *c)
{
    const char *accept = dc_req_header(c->req, "Accept");
    return accept && strstr(accept, "as=APIGroupDiscoveryList") &&
           strstr(accept, "g=apidiscovery.k8s.io;v=v2");
}

bool
dc_discovery_serve(dc_ctx *c)
{
    const char *path = dc_req_path(c->req);
    const char *m = dc_req_method(c->req);
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0)
        return false;
    snprintf(c->verb, sizeof c->verb, "get");
    if (dc_rbac_authorize(c) < 0)
        return true;
    if (strcmp(path, "/version") == 0 || strcmp(path, "/version/") == 0) {
        dc_api_respond_json(c, 200,
                            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "major", "1",
                                      "minor", "32", "gitVersion", "v1.32.3-devcluster",
                                      "gitCommit", "", "gitTreeState", "clean", "buildDate",
                                      "2026-01-01T00:00:00Z", "goVersion", "go1.23", "compiler",
                                      "gc", "platform", "linux/amd64"));
        return true;
    }
    if ((strcmp(path, "/api") == 0 || strcmp(path, "/apis") == 0) && wants_aggregated(c)) {
        c->out_content_type =
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
        dc_api_respond_json(c, 200, aggregated(path[4] == '\0'));
        return true;
    }
    if (strcmp(path, "/api") == 0 || strcmp(path, "/api/") == 0) {
        char addr[64];
        snprintf(addr, sizeof addr, "%s", c->api->url + 8);
        dc_api_respond_json(c, 200,
                            json_pack("{s:s, s:[s], s:[{s:s, s:s}]}", "kind", "APIVersions",
                                      "versions", "v1", "serverAddressByClientCIDRs", "clientCIDR",
                                      "0.0.0.0/0", "serverAddress", addr));
        return true;
    }
    if (strcmp(path, "/apis") == 0 || strcmp(path, "/apis/") == 0) {
        dc_api_respond_json(c, 200,
                            json_pack("{s:s, s:s, s:o}", "kind", "APIGroupList", "apiVersion", "v1",
                                      "groups", group_list()));
        return true;
    }
    if (strcmp(path, "/api/v1") == 0 || strcmp(path, "/api/v1/") == 0) {
        dc_api_respond_json(c, 200, resource_list("", "v1"));
        return true;
    }
    char group[128], version[64];
    if (sscanf(path, "/apis/%127[^/]/%63[^/]", group, version) == 2) {
        json_t *l = resource_list(group, version);
        if (!l)
            return false;
        dc_api_respond_json(c, 200, l);
        return true;
    }
    if (sscanf(path, "/apis/%127[^/]", group) == 1) {
        json_t *groups = group_list();
        size_t i;
        json_t *g;
        json_array_foreach(groups, i, g)
        {
            if (strcmp(json_string_value(json_object_get(g, "name")), group) == 0) {
                dc_api_respond_json(c, 200, json_incref(g));
                json_decref(groups);
                return true;
            }
        }
        json_decref(groups);
        return false;
    }
    if (strcmp(path, "/openapi/v2") == 0) {
        /* An OpenAPI v2 document with no definitions: kubectl validates the
         * items of a `kind: List` against /openapi/v2 (and fails without
         * one); with no definition for a kind it checks nothing, and its
         * patches come from its compiled-in types as before. client-go asks
         * for the protobuf form (gnostic's openapi_v2.Document): swagger
         * (field 1) "2.0" and nothing else. */
        const char *accept = dc_req_header(c->req, "Accept");
        if (accept && strstr(accept, "protobuf")) {
            static const char doc[] = "\x0a\x03"
                                      "2.0";
            dc_respond(c->req, 200, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                       doc, sizeof doc - 1);
        } else {
            dc_api_respond_json(c, 200,
                                json_pack("{s:s, s:{s:s, s:s}, s:{}, s:{}}", "swagger", "2.0",
                                          "info", "title", "Kubernetes", "version", "v1.32.3",
                                          "paths", "definitions"));
        }
        return true;
    }
    if (strcmp(path, "/openapi/v3") == 0 || strcmp(path, "/openapi/v3/") == 0) {
        dc_api_respond_json(c, 200, openapi_root(c));
        return true;
    }
    if (sscanf(path, "/openapi/v3/apis/%127[^/]/%63[^/]", group, version) == 2 ||
        (group[0] = '\0', sscanf(path, "/openapi/v3/api/%63[^/]", version) == 1)) {
        json_t *doc = openapi_gv(group, version);
        if (!doc)
            return false;
        dc_api_respond_json(c, 200, doc);
        return true;
    }
    return false;
}
