/*
 * table.c: server-side printing (Accept: application/json;as=Table;
 * g=meta.k8s.io;v=v1), which `kubectl get` asks for.
 *
 * Built-in kinds get the columns kubectl users know (the subset of
 * pkg/printers/internalversion that matters here); custom resources get
 * NAME, their CRD's additionalPrinterColumns, and AGE unless a column
 * already shows creationTimestamp. Each row carries the object's metadata
 * (PartialObjectMetadata), which kubectl uses for -A and --show-labels.
 *
 * Column JSONPaths support what printer columns use: dotted fields, [n],
 * and one filter [?(@.field=="value")].
 */
#include "api.h"
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

bool
dc_table_wanted(const char *accept)
{
    return accept && strstr(accept, "as=Table") != NULL;
}

static void
age(const char *ts, char *out, size_t cap)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!ts || !strptime(ts, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
        snprintf(out, cap, "<unknown>");
        return;
    }
    long long d = (long long)(time(NULL) - timegm(&tm));
    if (d < 0)
        d = 0;
    if (d < 120)
        snprintf(out, cap, "%llds", d);
    else if (d < 600)
        snprintf(out, cap, "%lldm%llds", d / 60, d % 60);
    else if (d < 3 * 3600)
        snprintf(out, cap, "%lldm", d / 60);
    else if (d < 8 * 3600)
        snprintf(out, cap, "%lldh%lldm", d / 3600, (d % 3600) / 60);
    else if (d < 48 * 3600)
        snprintf(out, cap, "%lldh", d / 3600);
    else if (d < 8 * 86400)
        snprintf(out, cap, "%lldd%lldh", d / 86400, (d % 86400) / 3600);
    else
        snprintf(out, cap, "%lldd", d / 86400);
}

/* Evaluate a printer-column JSONPath; a borrowed value or NULL. */
static json_t *
jsonpath(json_t *obj, const char *path)
{
    const char *p = path;
    if (*p == '{')
        p++;
    json_t *cur = obj;
    while (*p && *p != '}' && cur) {
        if (*p == '.') {
            p++;
            char name[256];
            size_t n = 0;
            while (*p && *p != '.' && *p != '[' && *p != '}' && n + 1 < sizeof name)
                name[n++] = *p++;
            name[n] = '\0';
            if (n)
                cur = json_object_get(cur, name);
        } else if (*p == '[') {
            const char *close = strchr(p, ']');
            if (!close)
                return NULL;
            if (p[1] == '?') {
                /* [?(@.field=="value")] */
                char field[128], value[256];
                if (sscanf(p, "[?(@.%127[^=!]==\"%255[^\"]\")]", field, value) != 2 &&
                    sscanf(p, "[?(@.%127[^=!]=='%255[^']')]", field, value) != 2)
                    return NULL;
                json_t *found = NULL;
                size_t i;
                json_t *e;
                json_array_foreach(cur, i, e)
                {
                    json_t *f = json_object_get(e, field);
                    if (json_is_string(f) && strcmp(json_string_value(f), value) == 0) {
                        found = e;
                        break;
                    }
                }
                cur = found;
            } else {
                long idx = atol(p + 1);
                cur = idx < 0 ? json_array_get(cur, json_array_size(cur) + (size_t)idx)
                              : json_array_get(cur, (size_t)idx);
            }
            p = close + 1;
        } else {
            return NULL;
        }
    }
    return cur;
}

static json_t *
coldef(const char *name, const char *type, const char *format, int priority)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:i}", "name", name, "type", type, "format", format,
                     "description", "", "priority", priority);
}

static json_t *
str(const char *s)
{
    return json_string(s ? s : "");
}

static json_t *
age_cell(json_t *obj)
{
    char a[32];
    age(dc_api_meta_str(obj, "creationTimestamp"), a, sizeof a);
    return json_string(a);
}

static long long
ival(json_t *obj, const char *path)
{
    json_t *v = jsonpath(obj, path);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static json_t *
count_cell(json_t *obj, const char *field)
{
    json_t *m = json_object_get(obj, field);
    return json_integer(json_is_object(m) ? (json_int_t)json_object_size(m) : 0);
}

static void
builtin_columns(const dc_resource *r, json_t *cols)
{
    const char *p = r->plural;
    if (strcmp(p, "events") == 0) {
        json_array_append_new(cols, coldef("Last Seen", "string", "", 0));
        json_array_append_new(cols, coldef("Type", "string", "", 0));
        json_array_append_new(cols, coldef("Reason", "string", "", 0));
        json_array_append_new(cols, coldef("Object", "string", "", 0));
        json_array_append_new(cols, coldef("Message", "string", "", 0));
        return;
    }
    json_array_append_new(cols, coldef("Name", "string", "name", 0));
    if (strcmp(p, "serviceaccounts") == 0) {
        json_array_append_new(cols, coldef("Secrets", "integer", "", 0));
    } else if (strcmp(p, "nodes") == 0) {
        json_array_append_new(cols, coldef("Status", "string", "", 0));
        json_array_append_new(cols, coldef("Roles", "string", "", 0));
    } else if (strcmp(p, "endpoints") == 0) {
        json_array_append_new(cols, coldef("Endpoints", "string", "", 0));
    } else if (strcmp(p, "jobs") == 0) {
        json_array_append_new(cols, coldef("Status", "string", "", 0));
        json_array_append_new(cols, coldef("Completions", "string", "", 0));
    } else if (strcmp(p, "namespaces") == 0) {
        json_array_append_new(cols, coldef("Status", "string", "", 0));
    } else if (strcmp(p, "pods") == 0) {
        json_array_append_new(cols, coldef("Ready", "string", "", 0));
        json_array_append_new(cols, coldef("Status", "string", "", 0));
        json_array_append_new(cols, coldef("Restarts", "string", "", 0));
        json_array_append_new(cols, coldef("Age", "string", "", 0));
        json_array_append_new(cols, coldef("IP", "string", "", 1));
        json_array_append_new(cols, coldef("Node", "string", "", 1));
        return;
    } else if (strcmp(p, "services") == 0) {
        json_array_append_new(cols, coldef("Type", "string", "", 0));
        json_array_append_new(cols, coldef("Cluster-IP", "string", "", 0));
        json_array_append_new(cols, coldef("External-IP", "string", "", 0));
        json_array_append_new(cols, coldef("Port(s)", "string", "", 0));
    } else if (strcmp(p, "configmaps") == 0) {
        json_array_append_new(cols, coldef("Data", "integer", "", 0));
    } else if (strcmp(p, "secrets") == 0) {
        json_array_append_new(cols, coldef("Type", "string", "", 0));
        json_array_append_new(cols, coldef("Data", "integer", "", 0));
    } else if (strcmp(p, "deployments") == 0) {
        json_array_append_new(cols, coldef("Ready", "string", "", 0));
        json_array_append_new(cols, coldef("Up-to-date", "integer", "", 0));
        json_array_append_new(cols, coldef("Available", "integer", "", 0));
    } else if (strcmp(p, "statefulsets") == 0) {
        json_array_append_new(cols, coldef("Ready", "string", "", 0));
    } else if (strcmp(p, "replicasets") == 0) {
        json_array_append_new(cols, coldef("Desired", "integer", "", 0));
        json_array_append_new(cols, coldef("Current", "integer", "", 0));
        json_array_append_new(cols, coldef("Ready", "integer", "", 0));
    } else if (strcmp(p, "persistentvolumeclaims") == 0) {
        json_array_append_new(cols, coldef("Status", "string", "", 0));
        json_array_append_new(cols, coldef("Volume", "string", "", 0));
    } else if (strcmp(p, "customresourcedefinitions") == 0) {
        json_array_append_new(cols, coldef("Created At", "date", "", 0));
        return;
    } else if (strcmp(p, "leases") == 0) {
        json_array_append_new(cols, coldef("Holder", "string", "", 0));
    }
    json_array_append_new(cols, coldef("Age", "string", "", 0));
}

static void
builtin_cells(const dc_resource *r, json_t *obj, json_t *cells)
{
    const char *p = r->plural;
    char buf[512];
    if (strcmp(p, "events") == 0) {
        const char *last = json_string_value(json_object_get(obj, "lastTimestamp"));
        if (!last)
            last = json_string_value(json_object_get(obj, "eventTime"));
        if (!last)
            last = dc_api_meta_str(obj, "creationTimestamp");
        char a[32];
        age(last, a, sizeof a);
        json_array_append_new(cells, json_string(a));
        json_array_append_new(cells, str(json_string_value(json_object_get(obj, "type"))));
        json_array_append_new(cells, str(json_string_value(json_object_get(obj, "reason"))));
        const char *kind = json_string_value(jsonpath(obj, ".involvedObject.kind"));
        const char *name = json_string_value(jsonpath(obj, ".involvedObject.name"));
        snprintf(buf, sizeof buf, "%s%s%s", kind ? kind : "", kind ? "/" : "", name ? name : "");
        for (char *q = buf; *q && *q != '/'; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q + 32);
        json_array_append_new(cells, json_string(buf));
        json_array_append_new(cells, str(json_string_value(json_object_get(obj, "message"))));
        return;
    }
    json_array_append_new(cells, str(dc_api_meta_str(obj, "name")));
    if (strcmp(p, "serviceaccounts") == 0) {
        json_array_append_new(
            cells, json_integer((json_int_t)json_array_size(json_object_get(obj, "secrets"))));
    } else if (strcmp(p, "nodes") == 0) {
        const char *ready =
            json_string_value(jsonpath(obj, ".status.conditions[?(@.type==\"Ready\")].status"));
        json_array_append_new(
            cells, json_string(ready && strcmp(ready, "True") == 0 ? "Ready" : "NotReady"));
        json_array_append_new(cells, json_string("<none>"));
    } else if (strcmp(p, "endpoints") == 0) {
        lb_buf eps = LB_BUF_INIT;
        size_t i, k, n = 0;
        json_t *sub, *addr, *port;
        json_array_foreach(json_object_get(obj, "subsets"), i, sub)
        {
            json_array_foreach(json_object_get(sub, "addresses"), k, addr)
            {
                size_t pi;
                json_array_foreach(json_object_get(sub, "ports"), pi, port)
                {
                    if (n++ < 3)
                        lb_buf_printf(&eps, "%s%s:%lld", eps.len ? "," : "",
                                      json_string_value(json_object_get(addr, "ip")) ?: "",
                                      ival(port, ".port"));
                }
            }
        }
        if (n > 3)
            lb_buf_printf(&eps, " + %zu more...", n - 3);
        json_array_append_new(cells, str(eps.data ? eps.data : "<none>"));
        lb_buf_free(&eps);
    } else if (strcmp(p, "jobs") == 0) {
        long long ok = ival(obj, ".status.succeeded");
        json_t *want = jsonpath(obj, ".spec.completions");
        long long total = json_is_integer(want) ? json_integer_value(want) : 1;
        json_array_append_new(cells, json_string(ok >= total ? "Complete" : "Running"));
        snprintf(buf, sizeof buf, "%lld/%lld", ok, total);
        json_array_append_new(cells, json_string(buf));
    } else if (strcmp(p, "namespaces") == 0) {
        json_array_append_new(cells, str(json_string_value(jsonpath(obj, ".status.phase"))));
    } else if (strcmp(p, "pods") == 0) {
        json_t *statuses = jsonpath(obj, ".status.containerStatuses");
        size_t total = json_array_size(jsonpath(obj, ".spec.containers")), ready = 0;
        long long restarts = 0;
        size_t i;
        json_t *s;
        json_array_foreach(statuses, i, s)
        {
            if (json_is_true(json_object_get(s, "ready")))
                ready++;
            restarts += ival(s, ".restartCount");
        }
        snprintf(buf, sizeof buf, "%zu/%zu", ready, total);
        json_array_append_new(cells, json_string(buf));
        const char *phase = json_string_value(jsonpath(obj, ".status.phase"));
        const char *reason = NULL;
        json_array_foreach(statuses, i, s)
        {
            const char *w = json_string_value(jsonpath(s, ".state.waiting.reason"));
            if (w)
                reason = w;
        }
        if (dc_api_meta_str(obj, "deletionTimestamp"))
            reason = "Terminating";
        json_array_append_new(cells, str(reason ? reason : phase));
        snprintf(buf, sizeof buf, "%lld", restarts);
        json_array_append_new(cells, json_string(buf));
        json_array_append_new(cells, age_cell(obj));
        const char *ip = json_string_value(jsonpath(obj, ".status.podIP"));
        const char *node = json_string_value(jsonpath(obj, ".spec.nodeName"));
        json_array_append_new(cells, str(ip ? ip : "<none>"));
        json_array_append_new(cells, str(node ? node : "<none>"));
        return;
    } else if (strcmp(p, "services") == 0) {
        json_array_append_new(cells, str(json_string_value(jsonpath(obj, ".spec.type"))));
        json_array_append_new(cells, str(json_string_value(jsonpath(obj, ".spec.clusterIP"))));
        const char *ext = json_string_value(jsonpath(obj, ".status.loadBalancer.ingress[0].ip"));
        const char *stype = json_string_value(jsonpath(obj, ".spec.type"));
        bool lb = stype && strcmp(stype, "LoadBalancer") == 0;
        json_array_append_new(cells, str(ext ? ext : lb ? "<pending>" : "<none>"));
        lb_buf ports = LB_BUF_INIT;
        size_t i;
        json_t *port;
        json_array_foreach(jsonpath(obj, ".spec.ports"), i, port)
        {
            lb_buf_printf(&ports, "%s%lld", i ? "," : "", ival(port, ".port"));
            if (json_is_integer(json_object_get(port, "nodePort")))
                lb_buf_printf(&ports, ":%lld", ival(port, ".nodePort"));
            lb_buf_printf(&ports, "/%s",
                          json_string_value(json_object_get(port, "protocol")) ?: "TCP");
        }
        json_array_append_new(cells, str(ports.data ? ports.data : "<none>"));
        lb_buf_free(&ports);
    } else if (strcmp(p, "configmaps") == 0) {
        json_t *d = json_object_get(obj, "data"), *b = json_object_get(obj, "binaryData");
        json_array_append_new(
            cells, json_integer((json_int_t)(json_object_size(d) + json_object_size(b))));
    } else if (strcmp(p, "secrets") == 0) {
        json_array_append_new(cells, str(json_string_value(json_object_get(obj, "type"))));
        json_array_append_new(cells, count_cell(obj, "data"));
    } else if (strcmp(p, "deployments") == 0 || strcmp(p, "statefulsets") == 0) {
        snprintf(buf, sizeof buf, "%lld/%lld", ival(obj, ".status.readyReplicas"),
                 ival(obj, ".spec.replicas"));
        json_array_append_new(cells, json_string(buf));
        if (p[0] == 'd') {
            json_array_append_new(cells, json_integer(ival(obj, ".status.updatedReplicas")));
            json_array_append_new(cells, json_integer(ival(obj, ".status.availableReplicas")));
        }
    } else if (strcmp(p, "replicasets") == 0) {
        json_array_append_new(cells, json_integer(ival(obj, ".spec.replicas")));
        json_array_append_new(cells, json_integer(ival(obj, ".status.replicas")));
        json_array_append_new(cells, json_integer(ival(obj, ".status.readyReplicas")));
    } else if (strcmp(p, "persistentvolumeclaims") == 0) {
        json_array_append_new(cells, str(json_string_value(jsonpath(obj, ".status.phase"))));
        json_array_append_new(cells, str(json_string_value(jsonpath(obj, ".spec.volumeName"))));
    } else if (strcmp(p, "customresourcedefinitions") == 0) {
        json_array_append_new(cells, str(dc_api_meta_str(obj, "creationTimestamp")));
        return;
    } else if (strcmp(p, "leases") == 0) {
        json_array_append_new(cells, str(json_string_value(jsonpath(obj, ".spec.holderIdentity"))));
    }
    json_array_append_new(cells, age_cell(obj));
}

static bool
shows_creation(json_t *cols)
{
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c)
    {
        const char *jp = json_string_value(json_object_get(c, "jsonPath"));
        if (jp && strcmp(jp, ".metadata.creationTimestamp") == 0)
            return true;
    }
    return false;
}

static void
custom_columns(const dc_resource *r, json_t *cols)
{
    json_array_append_new(cols, coldef("Name", "string", "name", 0));
    size_t i;
    json_t *c;
    json_array_foreach(r->printer_columns, i, c)
    {
        json_t *p = json_object_get(c, "priority");
        json_array_append_new(
            cols, json_pack("{s:s, s:s, s:s, s:s, s:i}", "name",
                            json_string_value(json_object_get(c, "name")) ?: "", "type",
                            json_string_value(json_object_get(c, "type")) ?: "string", "format",
                            json_string_value(json_object_get(c, "format")) ?: "", "description",
                            json_string_value(json_object_get(c, "description")) ?: "", "priority",
                            json_is_integer(p) ? (int)json_integer_value(p) : 0));
    }
    if (!shows_creation(r->printer_columns))
        json_array_append_new(cols, coldef("Age", "date", "", 0));
}

static void
custom_cells(const dc_resource *r, json_t *obj, json_t *cells)
{
    json_array_append_new(cells, str(dc_api_meta_str(obj, "name")));
    size_t i;
    json_t *c;
    json_array_foreach(r->printer_columns, i, c)
    {
        const char *type = json_string_value(json_object_get(c, "type")) ?: "string";
        json_t *v = jsonpath(obj, json_string_value(json_object_get(c, "jsonPath")) ?: "");
        if (!v || json_is_null(v)) {
            json_array_append_new(cells, json_null());
        } else if (strcmp(type, "date") == 0 && json_is_string(v)) {
            char a[32];
            age(json_string_value(v), a, sizeof a);
            json_array_append_new(cells, json_string(a));
        } else if (json_is_object(v) || json_is_array(v)) {
            char *text = json_dumps(v, JSON_COMPACT);
            json_array_append_new(cells, str(text));
            free(text);
        } else {
            json_array_append(cells, v);
        }
    }
    if (!shows_creation(r->printer_columns))
        json_array_append_new(cells, age_cell(obj));
}

json_t *
dc_table_build(const dc_resource *r, json_t *const *objs, size_t n, const char *rv,
               const char *cont, bool include_headers)
{
    json_t *cols = json_array();
    if (r->custom)
        custom_columns(r, cols);
    else
        builtin_columns(r, cols);
    json_t *rows = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *cells = json_array();
        if (r->custom)
            custom_cells(r, objs[i], cells);
        else
            builtin_cells(r, objs[i], cells);
        json_t *meta = json_deep_copy(json_object_get(objs[i], "metadata"));
        json_object_del(meta, "managedFields");
        json_t *partial =
            json_pack("{s:s, s:s, s:o}", "kind", "PartialObjectMetadata", "apiVersion",
                      "meta.k8s.io/v1", "metadata", meta ? meta : json_object());
        json_array_append_new(rows, json_pack("{s:o, s:o}", "cells", cells, "object", partial));
    }
    json_t *table =
        json_pack("{s:s, s:s, s:{s:s}, s:o, s:o}", "kind", "Table", "apiVersion", "meta.k8s.io/v1",
                  "metadata", "resourceVersion", rv ? rv : "", "columnDefinitions",
                  include_headers ? cols : json_array(), "rows", rows);
    if (!include_headers)
        json_decref(cols);
    if (cont)
        json_object_set_new(json_object_get(table, "metadata"), "continue", json_string(cont));
    return table;
}
