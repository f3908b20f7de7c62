/*
 * rbac.c: authorization of service-account requests with the stored RBAC
 * objects (Role, RoleBinding, ClusterRole, ClusterRoleBinding), as the real
 * RBAC authorizer does it.
 *
 * The admin token is cluster-admin and is never checked here. A service
 * account is the user "system:serviceaccount:NS:NAME" in the groups
 * "system:serviceaccounts", "system:serviceaccounts:NS" and
 * "system:authenticated". Every authenticated user may read discovery,
 * /version, /openapi and the health endpoints (the default
 * system:discovery and system:public-info-viewer bindings). A request is
 * allowed if some binding that names the user (or one of its groups)
 * grants a rule matching verb, API group, resource (or "resource/sub"),
 * and, if the rule lists resourceNames, the object's name. Aggregated
 * ClusterRoles (aggregationRule) are not expanded, and nothing prevents a
 * user from granting rights it does not hold (no escalation check).
 */
#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct subject_ctx {
    const char *user;
    const char *sa_ns;
    const char *sa_name;
} subject_ctx;

static bool
str_in(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *x = json_string_value(v);
        if (x && (strcmp(x, "*") == 0 || strcmp(x, s) == 0))
            return true;
    }
    return false;
}

static bool
subject_matches(json_t *binding, const subject_ctx *who, const char *binding_ns)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(binding, "subjects"), i, s)
    {
        const char *kind = json_string_value(json_object_get(s, "kind"));
        const char *name = json_string_value(json_object_get(s, "name"));
        const char *ns = json_string_value(json_object_get(s, "namespace"));
        if (!kind || !name)
            continue;
        if (strcmp(kind, "ServiceAccount") == 0) {
            if (!ns || !*ns)
                ns = binding_ns;
            if (ns && strcmp(ns, who->sa_ns) == 0 && strcmp(name, who->sa_name) == 0)
                return true;
        } else if (strcmp(kind, "User") == 0) {
            if (strcmp(name, who->user) == 0)
                return true;
        } else if (strcmp(kind, "Group") == 0) {
            char g[300];
            snprintf(g, sizeof g, "system:serviceaccounts:%s", who->sa_ns);
            if (strcmp(name, "system:authenticated") == 0)
                return true;
            if (who->sa_ns[0] &&
                (strcmp(name, "system:serviceaccounts") == 0 || strcmp(name, g) == 0))
                return true;
        }
    }
    return false;
}

typedef struct request_attrs {
    const char *verb, *group, *resource, *ns, *name, *path;
} request_attrs;

static bool
rule_allows(json_t *rule, const request_attrs *a)
{
    if (!str_in(json_object_get(rule, "verbs"), a->verb))
        return false;
    if (a->path) {
        size_t i;
        json_t *u;
        json_array_foreach(json_object_get(rule, "nonResourceURLs"), i, u)
        {
            const char *p = json_string_value(u);
            if (!p)
                continue;
            size_t n = strlen(p);
            if (strcmp(p, a->path) == 0 || strcmp(p, "*") == 0 ||
                (n > 0 && p[n - 1] == '*' && strncmp(p, a->path, n - 1) == 0))
                return true;
        }
        return false;
    }
    if (!str_in(json_object_get(rule, "apiGroups"), a->group))
        return false;
    bool res_ok = false;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(rule, "resources"), i, r)
    {
        const char *s = json_string_value(r);
        if (!s)
            continue;
        const char *slash = strchr(a->resource, '/');
        if (strcmp(s, "*") == 0 || strcmp(s, a->resource) == 0 ||
            (slash && strncmp(s, "*/", 2) == 0 && strcmp(s + 1, slash) == 0))
            res_ok = true;
    }
    if (!res_ok)
        return false;
    json_t *names = json_object_get(rule, "resourceNames");
    if (json_array_size(names) > 0)
        return a->name && *a->name && str_in(names, a->name);
    return true;
}

static bool
role_allows(dc_store *s, const char *kind, const char *name, const char *ns, const request_attrs *a)
{
    json_t *role = NULL;
    int rc = strcmp(kind, "ClusterRole") == 0
                 ? dc_store_get(s, "rbac.authorization.k8s.io/clusterroles", "", name, &role)
                 : dc_store_get(s, "rbac.authorization.k8s.io/roles", ns, name, &role);
    if (rc != 0)
        return false;
    bool ok = false;
    size_t i;
    json_t *rule;
    json_array_foreach(json_object_get(role, "rules"), i, rule) if (rule_allows(rule, a)) ok = true;
    json_decref(role);
    return ok;
}

typedef struct search {
    dc_store *s;
    const subject_ctx *who;
    const request_attrs *a;
    bool allowed;
} search;

static int
visit_binding(void *arg, const char *ns, const char *name, json_t *b)
{
    (void)name;
    search *sr = arg;
    if (!subject_matches(b, sr->who, ns))
        return 0;
    json_t *ref = json_object_get(b, "roleRef");
    const char *kind = json_string_value(json_object_get(ref, "kind"));
    const char *role = json_string_value(json_object_get(ref, "name"));
    if (kind && role && role_allows(sr->s, kind, role, ns, sr->a)) {
        sr->allowed = true;
        return 1;
    }
    return 0;
}

bool
dc_rbac_allows(dc_store *s, const char *user, const char *sa_ns, const char *verb,
               const char *group, const char *resource, const char *ns, const char *name,
               const char *path)
{
    const char *colon = strrchr(user, ':');
    subject_ctx who = {.user = user, .sa_ns = sa_ns, .sa_name = colon ? colon + 1 : user};
    request_attrs a = {verb, group, resource, ns, name, path};
    search sr = {.s = s, .who = &who, .a = &a};
    dc_store_list(s, "rbac.authorization.k8s.io/clusterrolebindings", NULL, NULL, NULL,
                  visit_binding, &sr);
    if (!sr.allowed && ns && *ns && !path)
        dc_store_list(s, "rbac.authorization.k8s.io/rolebindings", ns, NULL, NULL, visit_binding,
                      &sr);
    return sr.allowed;
}

static bool
discovery_path(const char *p)
{
    static const char *const prefixes[] = {"/api",     "/apis",  "/version", "/openapi",
                                           "/healthz", "/livez", "/readyz"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(p, prefixes[i], n) == 0 && (p[n] == '\0' || p[n] == '/'))
            return true;
    }
    return false;
}

int
dc_rbac_authorize(dc_ctx *c)
{
    if (c->admin)
        return 0;
    if (c->res && c->res->create_only)
        return 0; /* every user may ask what it may do (system:basic-user) */
    const char *as = dc_req_header(c->req, "Impersonate-User");
    if (as && !c->impersonated) {
        char msg[1200];
        snprintf(msg, sizeof msg,
                 "users \"%s\" is forbidden: User \"%s\" cannot impersonate resource \"users\" in "
                 "API group \"\" at the cluster scope",
                 as, c->user);
        dc_api_respond_status(c, 403, "Forbidden", msg,
                              json_pack("{s:s, s:s}", "name", as, "kind", "users"));
        return -EACCES;
    }
    char msg[4096];
    if (!c->res) {
        const char *path = dc_req_path(c->req);
        if (discovery_path(path) ||
            dc_rbac_allows(c->api->store, c->user, c->sa_ns, "get", "", "", "", "", path))
            return 0;
        snprintf(msg, sizeof msg, "forbidden: User \"%s\" cannot get path \"%s\"", c->user, path);
        dc_api_respond_status(c, 403, "Forbidden", msg, json_object());
        return -EACCES;
    }
    char resource[300];
    if (c->sub[0])
        snprintf(resource, sizeof resource, "%s/%s", c->res->plural, c->sub);
    else
        snprintf(resource, sizeof resource, "%s", c->res->plural);
    const char *ns = c->res->namespaced && c->namespaced_path ? c->ns : "";
    if (strcmp(c->res->plural, "namespaces") == 0 && !c->res->group[0] && c->name[0])
        ns = c->name; /* a namespace is inside itself, for RoleBindings */
    if (dc_rbac_allows(c->api->store, c->user, c->sa_ns, c->verb, c->res->group, resource, ns,
                       c->name, NULL))
        return 0;
    char q[300];
    dc_api_qualified(c->res, q, sizeof q);
    char scope[400];
    if (c->res->namespaced && c->namespaced_path)
        snprintf(scope, sizeof scope, "in the namespace \"%s\"", c->ns);
    else
        snprintf(scope, sizeof scope, "at the cluster scope");
    if (c->name[0])
        snprintf(msg, sizeof msg,
                 "%s \"%s\" is forbidden: User \"%s\" cannot %s resource \"%s\" in API group "
                 "\"%s\" %s",
                 q, c->name, c->user, c->verb, resource, c->res->group, scope);
    else
        snprintf(msg, sizeof msg,
                 "%s is forbidden: User \"%s\" cannot %s resource \"%s\" in API group \"%s\" %s", q,
                 c->user, c->verb, resource, c->res->group, scope);
    json_t *d = json_object();
    if (c->name[0])
        json_object_set_new(d, "name", json_string(c->name));
    if (c->res->group[0])
        json_object_set_new(d, "group", json_string(c->res->group));
    json_object_set_new(d, "kind", json_string(c->res->plural));
    dc_api_respond_status(c, 403, "Forbidden", msg, d);
    return -EACCES;
}
