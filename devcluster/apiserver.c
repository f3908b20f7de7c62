/*
 * apiserver.c: authentication, routing and the REST verbs of the API
 * server (create, get, list, update, patch, delete, deletecollection, and
 * the status, scale and token subresources). Watches are in watch.c,
 * discovery and OpenAPI in discovery.c, Table output in table.c, RBAC in
 * rbac.c, CRD schemas in schema.c, garbage collection in gc.c.
 *
 * Every request that reads or writes objects runs under the store lock, so
 * a read-modify-write (a conflict check, a generation bump, a finalizer
 * removal that deletes) is atomic. The answer is built under the lock and
 * sent after it is released, so a slow client holds up nobody.
 *
 * Semantics follow the real API server (k8s.io/apiserver and the
 * registries in k8s.io/kubernetes/pkg/registry): one global
 * resourceVersion, 409 on a stale update and on creating an existing name,
 * generation bumped on spec changes only, writes that change nothing are no
 * writes (no new resourceVersion), status changes only through /status for
 * kinds that have it, finalizers and deletionTimestamp, and error bodies
 * that are metav1.Status with the same reason, code and message text.
 */
#include "apiserver.h"
#include "node.h"

#include "api.h"
#include "errors.h"
#include "fileio.h"
#include "log.h"
#include "fields.h"
#include "patch.h"
#include "protobuf.h"
#include "schema.h"
#include "buf.h"
#include "selector.h"
#include "yamljson.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- small helpers ---- */

void
dc_api_now(char *out, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
new_uid(char out[37])
{
    unsigned char b[16];
    RAND_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

const char *
dc_api_meta_str(const json_t *obj, const char *field)
{
    return json_string_value(json_object_get(json_object_get(obj, "metadata"), field));
}

static json_t *
meta_of(json_t *obj)
{
    json_t *m = json_object_get(obj, "metadata");
    if (!json_is_object(m)) {
        m = json_object();
        json_object_set_new(obj, "metadata", m);
    }
    return m;
}

void
dc_api_set_type(json_t *obj, const dc_resource *r)
{
    char av[256];
    if (r->group[0])
        snprintf(av, sizeof av, "%s/%s", r->group, r->version);
    else
        snprintf(av, sizeof av, "%s", r->version);
    json_object_set_new(obj, "apiVersion", json_string(av));
    json_object_set_new(obj, "kind", json_string(r->kind));
}

void
dc_api_qualified(const dc_resource *r, char *out, size_t cap)
{
    if (r->group[0])
        snprintf(out, cap, "%s.%s", r->plural, r->group);
    else
        snprintf(out, cap, "%s", r->plural);
}

/* ---- responses ---- */

void
dc_api_respond_json(dc_ctx *c, int status, json_t *obj)
{
    if (c->out_body || c->out_status) {
        json_decref(obj);
        return;
    }
    c->out_status = status;
    c->out_body = obj ? obj : json_object();
}

void
dc_api_respond_status(dc_ctx *c, int code, const char *reason, const char *message, json_t *details)
{
    json_t *st = json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status", "apiVersion",
                           "v1", "metadata", "status", "Failure", "message", message, "reason",
                           reason, "code", code);
    if (details)
        json_object_set_new(st, "details", details);
    dc_api_respond_json(c, code, st);
}

static json_t *
details_for(const dc_resource *r, const char *name)
{
    json_t *d = json_object();
    if (name && *name)
        json_object_set_new(d, "name", json_string(name));
    if (r) {
        if (r->group[0])
            json_object_set_new(d, "group", json_string(r->group));
        json_object_set_new(d, "kind", json_string(r->plural));
    }
    return d;
}

void
dc_api_respond_not_found(dc_ctx *c, const dc_resource *r, const char *name)
{
    char q[300], msg[700];
    dc_api_qualified(r, q, sizeof q);
    snprintf(msg, sizeof msg, "%s \"%s\" not found", q, name);
    dc_api_respond_status(c, 404, "NotFound", msg, details_for(r, name));
}

static void
respond_conflict(dc_ctx *c, const dc_resource *r, const char *name)
{
    char q[300], msg[900];
    dc_api_qualified(r, q, sizeof q);
    snprintf(msg, sizeof msg,
             "Operation cannot be fulfilled on %s \"%s\": the object has been modified; please "
             "apply your changes to the latest version and try again",
             q, name);
    dc_api_respond_status(c, 409, "Conflict", msg, details_for(r, name));
}

static void
respond_bad_request(dc_ctx *c, const char *msg)
{
    dc_api_respond_status(c, 400, "BadRequest", msg, NULL);
}

/* 422 with causes (stolen): `Kind.group "name" is invalid: [a, b]` */
static void
respond_invalid(dc_ctx *c, const dc_resource *r, const char *name, json_t *causes)
{
    lb_buf msg = LB_BUF_INIT;
    if (r->group[0])
        lb_buf_printf(&msg, "%s.%s \"%s\" is invalid: ", r->kind, r->group, name ? name : "");
    else
        lb_buf_printf(&msg, "%s \"%s\" is invalid: ", r->kind, name ? name : "");
    size_t n = json_array_size(causes);
    if (n > 1)
        lb_buf_append_str(&msg, "[");
    for (size_t i = 0; i < n; i++) {
        json_t *cause = json_array_get(causes, i);
        lb_buf_printf(&msg, "%s%s: %s", i ? ", " : "",
                      json_string_value(json_object_get(cause, "field")),
                      json_string_value(json_object_get(cause, "message")));
    }
    if (n > 1)
        lb_buf_append_str(&msg, "]");
    json_t *d = json_object();
    json_object_set_new(d, "name", json_string(name ? name : ""));
    if (r->group[0])
        json_object_set_new(d, "group", json_string(r->group));
    json_object_set_new(d, "kind", json_string(r->kind));
    json_object_set_new(d, "causes", causes);
    dc_api_respond_status(c, 422, "Invalid", msg.data ? msg.data : "invalid", d);
    lb_buf_free(&msg);
}

static void add_cause(json_t *causes, const char *reason, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void
add_cause(json_t *causes, const char *reason, const char *field, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(
        causes, json_pack("{s:s, s:s, s:s}", "reason", reason, "message", msg, "field", field));
}

/* ---- request bodies ---- */

/* Decode the body as JSON or YAML into an object; answers 400/415 itself
 * and returns NULL on failure. */
static json_t *
decode_body(dc_ctx *c)
{
    size_t len;
    const char *body = dc_req_body(c->req, &len);
    const char *ct = dc_req_header(c->req, "Content-Type");
    char err[512] = "";
    json_t *obj = NULL;
    if (ct && strncasecmp(ct, "application/vnd.kubernetes.protobuf", 35) == 0) {
        int rc = dc_protobuf_decode(body, len, &obj, err, sizeof err);
        if (rc == LB_EUNSUPPORTED) {
            char msg[700];
            snprintf(msg, sizeof msg,
                     "the body of the request was in an unknown format - accepted media types "
                     "include: application/json, application/yaml (%s)",
                     err);
            dc_api_respond_status(c, 415, "UnsupportedMediaType", msg, NULL);
            return NULL;
        }
        if (rc != 0) {
            respond_bad_request(c, err);
            return NULL;
        }
        return obj;
    }
    if (ct && (strncasecmp(ct, "application/yaml", 16) == 0 ||
               strncasecmp(ct, "application/apply-patch+yaml", 28) == 0)) {
        if (dc_yaml_to_json(body, len, &obj, err, sizeof err) != 0) {
            char msg[700];
            snprintf(msg, sizeof msg, "error converting YAML to JSON: %s", err);
            respond_bad_request(c, msg);
            return NULL;
        }
    } else {
        json_error_t e;
        obj = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
        if (!obj) {
            char msg[700];
            snprintf(msg, sizeof msg, "couldn't get version/kind; json parse error: %s", e.text);
            respond_bad_request(c, msg);
            return NULL;
        }
    }
    return obj;
}

/* The object's apiVersion and kind must name the resource of the URL. */
static bool
check_type(dc_ctx *c, json_t *obj)
{
    if (!json_is_object(obj)) {
        respond_bad_request(c, "couldn't get version/kind; json parse error: the body is not an "
                               "object");
        return false;
    }
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    const char *av = json_string_value(json_object_get(obj, "apiVersion"));
    char want[256];
    if (c->res->group[0])
        snprintf(want, sizeof want, "%s/%s", c->res->group, c->res->version);
    else
        snprintf(want, sizeof want, "%s", c->res->version);
    char msg[600];
    if (!kind || !*kind) {
        char *text = json_dumps(obj, JSON_COMPACT);
        snprintf(msg, sizeof msg, "Object 'Kind' is missing in '%.300s'", text ? text : "");
        free(text);
        respond_bad_request(c, msg);
        return false;
    }
    if (!av || !*av) {
        char *text = json_dumps(obj, JSON_COMPACT);
        snprintf(msg, sizeof msg, "Object 'apiVersion' is missing in '%.300s'", text ? text : "");
        free(text);
        respond_bad_request(c, msg);
        return false;
    }
    if (strcmp(av, want) != 0 || strcmp(kind, c->res->kind) != 0) {
        /* another version of the same group and kind is fine (CRDs) */
        const char *slash = strrchr(av, '/');
        size_t glen = slash ? (size_t)(slash - av) : 0;
        bool same_group = strlen(c->res->group) == glen && strncmp(av, c->res->group, glen) == 0;
        if (!(same_group && strcmp(kind, c->res->kind) == 0 &&
              dc_resources_find(c->res->group, slash ? slash + 1 : av, c->res->plural))) {
            snprintf(msg, sizeof msg,
                     "the API version in the data (%s) does not match the expected API version "
                     "(%s)",
                     av, want);
            if (strcmp(kind, c->res->kind) != 0)
                snprintf(msg, sizeof msg,
                         "the kind in the data (%s) does not match the expected kind (%s)", kind,
                         c->res->kind);
            respond_bad_request(c, msg);
            return false;
        }
    }
    dc_api_set_type(obj, c->res);
    return true;
}

/* ---- names ---- */

static bool
dns_label(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
            return false;
    return true;
}

static bool
dns_subdomain(const char *s)
{
    if (strlen(s) > 253 || !*s)
        return false;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *p = strtok_r(buf, ".", &save); p; p = strtok_r(NULL, ".", &save))
        if (!dns_label(p, 63))
            return false;
    return s[strlen(s) - 1] != '.' && s[0] != '.' && !strstr(s, "..");
}

/* Names of these kinds may be any path segment (RBAC roles contain ':'). */
static bool
name_is_path_segment(const dc_resource *r)
{
    return strcmp(r->group, "rbac.authorization.k8s.io") == 0;
}

static void
validate_name(const dc_resource *r, const char *name, json_t *causes)
{
    if (name_is_path_segment(r)) {
        if (strchr(name, '/') || strchr(name, '%') || strcmp(name, ".") == 0 ||
            strcmp(name, "..") == 0)
            add_cause(causes, "FieldValueInvalid", "metadata.name",
                      "Invalid value: \"%s\": may not contain '/' or '%%'", name);
        return;
    }
    bool label = strcmp(r->plural, "namespaces") == 0 || strcmp(r->plural, "services") == 0;
    if (label ? !dns_label(name, 63) : !dns_subdomain(name)) {
        if (label)
            add_cause(causes, "FieldValueInvalid", "metadata.name",
                      "Invalid value: \"%s\": a lowercase RFC 1123 label must consist of lower "
                      "case alphanumeric characters or '-', and must start and end with an "
                      "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                      "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                      name);
        else
            add_cause(causes, "FieldValueInvalid", "metadata.name",
                      "Invalid value: \"%s\": a lowercase RFC 1123 subdomain must consist of "
                      "lower case alphanumeric characters, '-' or '.', and must start and end "
                      "with an alphanumeric character (e.g. 'example.com', regex used for "
                      "validation is "
                      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                      name);
    }
}

static void
validate_labels(json_t *meta, json_t *causes)
{
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(meta, "labels"), k, v)
    {
        char field[600];
        snprintf(field, sizeof field, "metadata.labels");
        if (!json_is_string(v)) {
            add_cause(causes, "FieldValueInvalid", field,
                      "Invalid value: label \"%s\" must be a string", k);
            continue;
        }
        const char *s = json_string_value(v);
        bool ok = strlen(s) <= 63;
        for (const char *p = s; *p && ok; p++)
            if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.'))
                ok = false;
        if (ok && *s &&
            (!isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[strlen(s) - 1])))
            ok = false;
        if (!ok)
            add_cause(causes, "FieldValueInvalid", field,
                      "Invalid value: \"%s\": a valid label must be an empty string or consist of "
                      "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                      "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex "
                      "used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                      s);
    }
}

/* ---- kind-specific preparation (the registries' PrepareForCreate and
 * defaulting) ---- */

static void
set_default(json_t *obj, const char *key, json_t *value)
{
    if (!json_object_get(obj, key))
        json_object_set_new(obj, key, value);
    else
        json_decref(value);
}

static json_t *
child(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_object(v)) {
        v = json_object();
        json_object_set_new(obj, key, v);
    }
    return v;
}

typedef struct used_ips {
    json_t *ips;   /* set of strings */
    json_t *ports; /* set of node ports */
} used_ips;

static int
collect_service(void *arg, const char *ns, const char *name, json_t *svc)
{
    (void)ns;
    (void)name;
    used_ips *u = arg;
    json_t *spec = json_object_get(svc, "spec");
    const char *ip = json_string_value(json_object_get(spec, "clusterIP"));
    if (ip)
        json_object_set_new(u->ips, ip, json_true());
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(spec, "ports"), i, p)
    {
        json_t *np = json_object_get(p, "nodePort");
        if (json_is_integer(np)) {
            char k[16];
            snprintf(k, sizeof k, "%lld", (long long)json_integer_value(np));
            json_object_set_new(u->ports, k, json_true());
        }
    }
    return 0;
}

/* ClusterIP and NodePort allocation, and the Service defaults. */
static void
prepare_service(dc_apiserver *a, json_t *svc, const json_t *old)
{
    json_t *spec = child(svc, "spec");
    json_t *old_spec = json_object_get(old, "spec");
    set_default(spec, "type", json_string("ClusterIP"));
    const char *type = json_string_value(json_object_get(spec, "type"));
    if (!type)
        type = "ClusterIP";
    set_default(spec, "sessionAffinity", json_string("None"));
    used_ips u = {json_object(), json_object()};
    dc_store_list(a->store, "/services", NULL, NULL, NULL, collect_service, &u);
    json_t *ip = json_object_get(spec, "clusterIP");
    if (old_spec && (!json_is_string(ip) || !*json_string_value(ip)) &&
        json_object_get(old_spec, "clusterIP")) {
        json_object_set(spec, "clusterIP", json_object_get(old_spec, "clusterIP"));
        ip = json_object_get(spec, "clusterIP");
    }
    if (strcmp(type, "ExternalName") != 0 && (!json_is_string(ip) || !*json_string_value(ip))) {
        for (unsigned n = 10; n < 65000; n++) {
            char cand[32];
            snprintf(cand, sizeof cand, "10.96.%u.%u", n / 250, n % 250 + 1);
            if (!json_object_get(u.ips, cand)) {
                json_object_set_new(spec, "clusterIP", json_string(cand));
                break;
            }
        }
    }
    ip = json_object_get(spec, "clusterIP");
    if (json_is_string(ip)) {
        json_object_set_new(spec, "clusterIPs", json_pack("[O]", ip));
        set_default(spec, "ipFamilies", json_pack("[s]", "IPv4"));
        set_default(spec, "ipFamilyPolicy", json_string("SingleStack"));
    }
    bool node_ports = strcmp(type, "NodePort") == 0 || strcmp(type, "LoadBalancer") == 0;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(spec, "ports"), i, p)
    {
        set_default(p, "protocol", json_string("TCP"));
        if (json_object_get(p, "port"))
            set_default(p, "targetPort", json_deep_copy(json_object_get(p, "port")));
        if (node_ports && !json_is_integer(json_object_get(p, "nodePort"))) {
            /* keep the old port of the same service port */
            json_t *keep = NULL;
            size_t j;
            json_t *op;
            json_array_foreach(json_object_get(old_spec, "ports"), j, op)
            {
                if (json_equal(json_object_get(op, "port"), json_object_get(p, "port")))
                    keep = json_object_get(op, "nodePort");
            }
            if (json_is_integer(keep)) {
                json_object_set(p, "nodePort", keep);
                continue;
            }
            for (int port = 30000; port <= 32767; port++) {
                char k[16];
                snprintf(k, sizeof k, "%d", port);
                if (!json_object_get(u.ports, k)) {
                    json_object_set_new(p, "nodePort", json_integer(port));
                    json_object_set_new(u.ports, k, json_true());
                    break;
                }
            }
        }
    }
    if (strcmp(type, "LoadBalancer") == 0 || strcmp(type, "NodePort") == 0)
        set_default(spec, "externalTrafficPolicy", json_string("Cluster"));
    json_decref(u.ips);
    json_decref(u.ports);
}

static void
prepare_secret(json_t *secret)
{
    set_default(secret, "type", json_string("Opaque"));
    json_t *sd = json_object_get(secret, "stringData");
    if (json_is_object(sd)) {
        json_t *data = child(secret, "data");
        const char *k;
        json_t *v;
        json_object_foreach(sd, k, v)
        {
            const char *s = json_string_value(v);
            if (!s)
                continue;
            size_t n = strlen(s);
            unsigned char *b64 = malloc(4 * ((n + 2) / 3) + 1);
            if (!b64)
                continue;
            EVP_EncodeBlock(b64, (const unsigned char *)s, (int)n);
            json_object_set_new(data, k, json_string((char *)b64));
            free(b64);
        }
    }
    json_object_del(secret, "stringData");
}

static void
prepare_pod_spec(json_t *spec)
{
    set_default(spec, "restartPolicy", json_string("Always"));
    set_default(spec, "dnsPolicy", json_string("ClusterFirst"));
    set_default(spec, "schedulerName", json_string("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json_integer(30));
    set_default(spec, "securityContext", json_object());
    if (!json_object_get(spec, "serviceAccountName"))
        json_object_set_new(
            spec, "serviceAccountName",
            json_string(json_string_value(json_object_get(spec, "serviceAccount")) ?: "default"));
    set_default(spec, "serviceAccount",
                json_string(json_string_value(json_object_get(spec, "serviceAccountName"))));
    size_t i;
    json_t *ctr;
    json_t *all = json_array();
    json_array_extend(all, json_object_get(spec, "initContainers"));
    json_array_extend(all, json_object_get(spec, "containers"));
    json_array_foreach(all, i, ctr)
    {
        size_t k;
        json_t *port;
        json_array_foreach(json_object_get(ctr, "ports"), k, port)
            set_default(port, "protocol", json_string("TCP"));
        set_default(ctr, "imagePullPolicy", json_string("IfNotPresent"));
        set_default(ctr, "terminationMessagePath", json_string("/dev/termination-log"));
        set_default(ctr, "terminationMessagePolicy", json_string("File"));
        set_default(ctr, "resources", json_object());
    }
    json_decref(all);
}

/* The defaults a real server applies whenever it decodes an object (on
 * create and on every update), for the kinds devcluster's controllers and
 * clients read. */
static void
apply_defaults(const dc_resource *r, json_t *obj)
{
    const char *p = r->plural;
    if (r->custom)
        return;
    if (strcmp(p, "pods") == 0) {
        prepare_pod_spec(child(obj, "spec"));
    } else if (strcmp(p, "deployments") == 0) {
        json_t *spec = child(obj, "spec");
        set_default(spec, "replicas", json_integer(1));
        set_default(spec, "revisionHistoryLimit", json_integer(10));
        set_default(spec, "progressDeadlineSeconds", json_integer(600));
        json_t *strategy = child(spec, "strategy");
        set_default(strategy, "type", json_string("RollingUpdate"));
        const char *stype = json_string_value(json_object_get(strategy, "type"));
        if (stype && strcmp(stype, "RollingUpdate") == 0) {
            json_t *ru = child(strategy, "rollingUpdate");
            set_default(ru, "maxUnavailable", json_string("25%"));
            set_default(ru, "maxSurge", json_string("25%"));
        }
        prepare_pod_spec(child(child(spec, "template"), "spec"));
    } else if (strcmp(p, "statefulsets") == 0) {
        json_t *spec = child(obj, "spec");
        set_default(spec, "replicas", json_integer(1));
        set_default(spec, "revisionHistoryLimit", json_integer(10));
        set_default(spec, "podManagementPolicy", json_string("OrderedReady"));
        set_default(
            spec, "updateStrategy",
            json_pack("{s:s, s:{s:i}}", "type", "RollingUpdate", "rollingUpdate", "partition", 0));
        set_default(spec, "persistentVolumeClaimRetentionPolicy",
                    json_pack("{s:s, s:s}", "whenDeleted", "Retain", "whenScaled", "Retain"));
        prepare_pod_spec(child(child(spec, "template"), "spec"));
    } else if (strcmp(p, "replicasets") == 0) {
        json_t *spec = child(obj, "spec");
        set_default(spec, "replicas", json_integer(1));
        prepare_pod_spec(child(child(spec, "template"), "spec"));
    } else if (strcmp(p, "persistentvolumeclaims") == 0) {
        set_default(child(obj, "spec"), "volumeMode", json_string("Filesystem"));
    }
}

static void
prepare_create(dc_apiserver *a, const dc_resource *r, json_t *obj)
{
    const char *p = r->plural;
    if (r->has_status && strcmp(p, "namespaces") != 0 && strcmp(p, "nodes") != 0)
        json_object_del(obj, "status");
    if (strcmp(p, "namespaces") == 0) {
        json_t *spec = child(obj, "spec");
        json_object_set_new(spec, "finalizers", json_pack("[s]", "kubernetes"));
        json_object_set_new(obj, "status", json_pack("{s:s}", "phase", "Active"));
        json_t *labels = child(meta_of(obj), "labels");
        json_object_set_new(labels, "kubernetes.io/metadata.name",
                            json_string(dc_api_meta_str(obj, "name")));
    } else if (strcmp(p, "pods") == 0) {
        json_object_set_new(obj, "status",
                            json_pack("{s:s, s:s}", "phase", "Pending", "qosClass", "BestEffort"));
    } else if (strcmp(p, "services") == 0) {
        prepare_service(a, obj, NULL);
        json_object_set_new(obj, "status", json_pack("{s:{}}", "loadBalancer"));
    } else if (strcmp(p, "secrets") == 0) {
        prepare_secret(obj);
    } else if (strcmp(p, "persistentvolumeclaims") == 0) {
        json_object_set_new(obj, "status", json_pack("{s:s}", "phase", "Pending"));
    } else if (strcmp(p, "customresourcedefinitions") == 0) {
        json_t *spec = json_object_get(obj, "spec");
        json_t *names = json_object_get(spec, "names");
        char now[32];
        dc_api_now(now, sizeof now);
        json_t *stored = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(spec, "versions"), i, v)
        {
            if (json_is_true(json_object_get(v, "storage")))
                json_array_append(stored, json_object_get(v, "name"));
        }
        json_object_set_new(
            obj, "status",
            json_pack("{s:O, s:o, s:[{s:s, s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s, s:s}]}",
                      "acceptedNames", names ? names : json_object(), "storedVersions", stored,
                      "conditions", "type", "NamesAccepted", "status", "True", "reason",
                      "NoConflicts", "message", "no conflicts found", "lastTransitionTime", now,
                      "type", "Established", "status", "True", "reason", "InitialNamesAccepted",
                      "message", "the initial names have been accepted", "lastTransitionTime",
                      now));
    }
}

/* Kind-specific validation a real API server does that clients rely on. */
static void
validate_builtin(const dc_resource *r, json_t *obj, json_t *causes)
{
    if (strcmp(r->plural, "customresourcedefinitions") == 0) {
        json_t *spec = json_object_get(obj, "spec");
        const char *group = json_string_value(json_object_get(spec, "group"));
        const char *plural =
            json_string_value(json_object_get(json_object_get(spec, "names"), "plural"));
        const char *kind =
            json_string_value(json_object_get(json_object_get(spec, "names"), "kind"));
        const char *name = dc_api_meta_str(obj, "name");
        if (!group || !*group)
            add_cause(causes, "FieldValueRequired", "spec.group", "Required value");
        if (!plural || !*plural)
            add_cause(causes, "FieldValueRequired", "spec.names.plural", "Required value");
        if (!kind || !*kind)
            add_cause(causes, "FieldValueRequired", "spec.names.kind", "Required value");
        if (json_array_size(json_object_get(spec, "versions")) == 0)
            add_cause(causes, "FieldValueRequired", "spec.versions", "Required value");
        const char *scope = json_string_value(json_object_get(spec, "scope"));
        if (!scope || (strcmp(scope, "Namespaced") != 0 && strcmp(scope, "Cluster") != 0))
            add_cause(causes, "FieldValueNotSupported", "spec.scope",
                      "Unsupported value: \"%s\": supported values: \"Cluster\", \"Namespaced\"",
                      scope ? scope : "");
        if (group && plural && name) {
            char want[512];
            snprintf(want, sizeof want, "%s.%s", plural, group);
            if (strcmp(want, name) != 0)
                add_cause(causes, "FieldValueInvalid", "metadata.name",
                          "Invalid value: \"%s\": must be spec.names.plural+\".\"+spec.group",
                          name);
        }
        size_t i, nstorage = 0;
        json_t *v;
        json_array_foreach(json_object_get(spec, "versions"), i,
                           v) if (json_is_true(json_object_get(v, "storage"))) nstorage++;
        if (json_array_size(json_object_get(spec, "versions")) > 0 && nstorage != 1)
            add_cause(causes, "FieldValueInvalid", "spec.versions",
                      "Invalid value: []apiextensions.CustomResourceDefinitionVersion{...}: must "
                      "have exactly one version marked as storage version");
        json_t *ver;
        json_array_foreach(json_object_get(spec, "versions"), i, ver)
        {
            char path[64];
            snprintf(path, sizeof path, "spec.versions[%zu].schema.openAPIV3Schema", i);
            dc_schema_check_patterns(
                json_object_get(json_object_get(ver, "schema"), "openAPIV3Schema"), path, causes);
            /* a real server accepts every rule that compiles; the ones
             * outside cel.c's subset are accepted and logged, not enforced */
            dc_schema_report_unsupported_rules(
                json_object_get(json_object_get(ver, "schema"), "openAPIV3Schema"), name);
        }
    } else if (strcmp(r->plural, "deployments") == 0 || strcmp(r->plural, "statefulsets") == 0 ||
               strcmp(r->plural, "replicasets") == 0) {
        json_t *spec = json_object_get(obj, "spec");
        json_t *sel = json_object_get(spec, "selector");
        json_t *labels = json_object_get(
            json_object_get(json_object_get(spec, "template"), "metadata"), "labels");
        if (!json_is_object(sel))
            add_cause(causes, "FieldValueRequired", "spec.selector", "Required value");
        else if (!dc_label_selector_object_matches(sel, labels))
            add_cause(causes, "FieldValueInvalid", "spec.template.metadata.labels",
                      "Invalid value: map[string]string{...}: `selector` does not match template "
                      "`labels`");
        json_t *replicas = json_object_get(spec, "replicas");
        if (replicas && (!json_is_integer(replicas) || json_integer_value(replicas) < 0))
            add_cause(causes, "FieldValueInvalid", "spec.replicas",
                      "Invalid value: %lld: must be greater than or equal to 0",
                      (long long)json_integer_value(replicas));
    } else if (strcmp(r->plural, "pods") == 0) {
        json_t *ctrs = json_object_get(json_object_get(obj, "spec"), "containers");
        if (json_array_size(ctrs) == 0)
            add_cause(causes, "FieldValueRequired", "spec.containers", "Required value");
        size_t i;
        json_t *ctr;
        json_array_foreach(ctrs, i, ctr)
        {
            char f[64];
            if (!json_is_string(json_object_get(ctr, "name"))) {
                snprintf(f, sizeof f, "spec.containers[%zu].name", i);
                add_cause(causes, "FieldValueRequired", f, "Required value");
            }
            if (!json_is_string(json_object_get(ctr, "image"))) {
                snprintf(f, sizeof f, "spec.containers[%zu].image", i);
                add_cause(causes, "FieldValueRequired", f, "Required value");
            }
        }
    } else if (strcmp(r->plural, "configmaps") == 0 || strcmp(r->plural, "secrets") == 0) {
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(obj, "data"), k, v)
        {
            if (!json_is_string(v)) {
                char f[300];
                snprintf(f, sizeof f, "data[%s]", k);
                add_cause(causes, "FieldValueInvalid", f, "Invalid value: must be a string");
            }
        }
    }
}

/* ---- generation ---- */

/* Everything but metadata and status: what a generation counts. */
static bool
spec_changed(const json_t *a, const json_t *b)
{
    json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
    json_object_del(x, "metadata");
    json_object_del(x, "status");
    json_object_del(y, "metadata");
    json_object_del(y, "status");
    bool changed = !json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return changed;
}

/* Equal apart from resourceVersion and managedFields. */
static bool
same_object(const json_t *a, const json_t *b)
{
    json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
    json_t *mx = json_object_get(x, "metadata"), *my = json_object_get(y, "metadata");
    json_object_del(mx, "resourceVersion");
    json_object_del(my, "resourceVersion");
    json_object_del(mx, "managedFields");
    json_object_del(my, "managedFields");
    bool same = json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return same;
}

/* ---- the shared write paths ---- */

static void
after_write(dc_apiserver *a, const dc_resource *r)
{
    (void)a;
    if (strcmp(r->plural, "customresourcedefinitions") == 0 &&
        strcmp(r->group, "apiextensions.k8s.io") == 0)
        dc_resources_reload(a->store);
}

int
dc_api_store_update(dc_apiserver *a, const dc_resource *r, const char *ns, const char *name,
                    json_t *obj)
{
    json_t *meta = json_object_get(obj, "metadata");
    json_t *fins = json_object_get(meta, "finalizers");
    bool gone = json_object_get(meta, "deletionTimestamp") && json_array_size(fins) == 0;
    if (strcmp(r->plural, "namespaces") == 0 && r->group[0] == '\0')
        gone = gone &&
               json_array_size(json_object_get(json_object_get(obj, "spec"), "finalizers")) == 0;
    if (strcmp(r->plural, "pods") == 0 && r->group[0] == '\0' && gone) {
        /* a pod marked for graceful deletion waits for its node (or grace 0) */
        json_t *grace = json_object_get(meta, "deletionGracePeriodSeconds");
        if (json_is_integer(grace) && json_integer_value(grace) > 0)
            gone = false;
    }
    int rc = gone ? dc_store_delete(a->store, r->key, ns, name, obj)
                  : dc_store_put(a->store, r->key, ns, name, obj, DC_MODIFIED);
    if (rc == 0)
        after_write(a, r);
    return rc;
}

static bool
has_string(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (json_is_string(v) &&
                                      strcmp(json_string_value(v), s) == 0) return true;
    return false;
}

/* Collects objects; writes happen after the listing statement is done. */
static int
collect_victim(void *arg, const char *ns, const char *name, json_t *obj)
{
    (void)ns;
    (void)name;
    json_array_append((json_t *)arg, obj);
    return 0;
}

int
dc_api_delete_object(dc_apiserver *a, const dc_resource *r, const char *ns, const char *name,
                     json_t *obj, const char *propagation, bool grace_zero, bool *deleted,
                     json_t **result)
{
    json_t *meta = meta_of(obj);
    *deleted = false;
    *result = NULL;
    bool is_ns = strcmp(r->plural, "namespaces") == 0 && !r->group[0];
    bool is_pod = strcmp(r->plural, "pods") == 0 && !r->group[0];
    json_t *fins = json_object_get(meta, "finalizers");
    if (!json_is_array(fins))
        fins = NULL;
    json_t *newfins = fins ? json_deep_copy(fins) : json_array();
    if (propagation && strcmp(propagation, "Foreground") == 0 &&
        !has_string(newfins, "foregroundDeletion"))
        json_array_append_new(newfins, json_string("foregroundDeletion"));
    if (propagation && strcmp(propagation, "Orphan") == 0 && !has_string(newfins, "orphan"))
        json_array_append_new(newfins, json_string("orphan"));
    bool graceful_pod = false;
    if (is_pod) {
        const char *node =
            json_string_value(json_object_get(json_object_get(obj, "spec"), "nodeName"));
        const char *phase =
            json_string_value(json_object_get(json_object_get(obj, "status"), "phase"));
        graceful_pod =
            node && *node &&
            !(phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0));
    }
    if (json_object_get(meta, "deletionTimestamp")) {
        /* already being deleted: only a new propagation finalizer or a pod's
         * grace period of 0 changes anything */
        if (is_pod && grace_zero) {
            json_object_set_new(meta, "deletionGracePeriodSeconds", json_integer(0));
            json_object_set_new(meta, "finalizers", newfins);
            int rc = dc_api_store_update(a, r, ns, name, obj);
            *deleted = rc == 0 && json_array_size(json_object_get(meta, "finalizers")) == 0;
            *result = json_incref(obj);
            return rc;
        }
        if (json_array_size(newfins) != json_array_size(fins)) {
            json_object_set_new(meta, "finalizers", newfins);
            int rc = dc_store_put(a->store, r->key, ns, name, obj, DC_MODIFIED);
            *result = json_incref(obj);
            return rc;
        }
        json_decref(newfins);
        *result = json_incref(obj);
        return 0;
    }
    if (grace_zero)
        graceful_pod = false;
    if (json_array_size(newfins) > 0 || is_ns || graceful_pod) {
        char now[32];
        dc_api_now(now, sizeof now);
        json_object_set_new(meta, "deletionTimestamp", json_string(now));
        json_t *grace =
            json_object_get(json_object_get(obj, "spec"), "terminationGracePeriodSeconds");
        json_object_set_new(
            meta, "deletionGracePeriodSeconds",
            json_integer(graceful_pod && json_is_integer(grace) ? json_integer_value(grace) : 0));
        if (json_array_size(newfins) > 0)
            json_object_set_new(meta, "finalizers", newfins);
        else
            json_decref(newfins);
        if (r->has_generation) {
            json_t *g = json_object_get(meta, "generation");
            json_object_set_new(meta, "generation",
                                json_integer(json_is_integer(g) ? json_integer_value(g) + 1 : 1));
        }
        if (is_ns)
            json_object_set_new(child(obj, "status"), "phase", json_string("Terminating"));
        int rc = dc_store_put(a->store, r->key, ns, name, obj, DC_MODIFIED);
        *result = json_incref(obj);
        return rc;
    }
    json_decref(newfins);
    int rc = dc_store_delete(a->store, r->key, ns, name, obj);
    if (rc == 0) {
        *deleted = true;
        if (strcmp(r->plural, "customresourcedefinitions") == 0) {
            /* the custom resources go with their definition */
            json_t *spec = json_object_get(obj, "spec");
            char key[600];
            snprintf(
                key, sizeof key, "%s/%s", json_string_value(json_object_get(spec, "group")) ?: "",
                json_string_value(json_object_get(json_object_get(spec, "names"), "plural")) ?: "");
            json_t *victims = json_array();
            dc_store_list(a->store, key, NULL, NULL, NULL, collect_victim, victims);
            size_t i;
            json_t *v;
            json_array_foreach(victims, i, v)
            {
                dc_store_delete(a->store, key, dc_api_meta_str(v, "namespace") ?: "",
                                dc_api_meta_str(v, "name"), v);
            }
            json_decref(victims);
        }
        after_write(a, r);
    }
    *result = json_incref(obj);
    return rc;
}

/* ---- namespaces ---- */

/* 0 if objects may be created in ns; else answers 404/403. */
static int
check_namespace(dc_ctx *c, const char *name)
{
    json_t *ns = NULL;
    if (dc_store_get(c->api->store, "/namespaces", "", c->ns, &ns) != 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "namespaces \"%s\" not found", c->ns);
        json_t *d = json_pack("{s:s, s:s}", "name", c->ns, "kind", "namespaces");
        dc_api_respond_status(c, 404, "NotFound", msg, d);
        return -ENOENT;
    }
    bool terminating = dc_api_meta_str(ns, "deletionTimestamp") != NULL;
    json_decref(ns);
    if (terminating) {
        char q[300], msg[900];
        dc_api_qualified(c->res, q, sizeof q);
        snprintf(msg, sizeof msg,
                 "%s \"%s\" is forbidden: unable to create new content in namespace %s because it "
                 "is being terminated",
                 q, name, c->ns);
        dc_api_respond_status(c, 403, "Forbidden", msg, details_for(c->res, name));
        return -EACCES;
    }
    return 0;
}

/* ---- verbs ---- */

static bool
dry_run(dc_ctx *c)
{
    const char *d = dc_req_query(c->req, "dryRun");
    return d && strcmp(d, "All") == 0;
}

static void
random_suffix(char *out, size_t n)
{
    static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    unsigned char b[16];
    RAND_bytes(b, sizeof b);
    for (size_t i = 0; i < n && i < sizeof b; i++)
        out[i] = alphabet[b[i] % (sizeof alphabet - 1)];
    out[n] = '\0';
}

/* Apply CRD schema validation (and its CEL rules; old is the stored
 * object of an update, NULL on create) or built-in checks; 422 and false
 * on errors. */
static bool
validate(dc_ctx *c, json_t *obj, const json_t *old, const char *name)
{
    json_t *causes = json_array();
    json_t *unknown = json_array();
    validate_labels(json_object_get(obj, "metadata"), causes);
    if (c->res->schema) {
        dc_schema_validate(c->res->schema, obj, causes, unknown);
        dc_schema_validate_rules(c->res->schema, obj, old, causes);
    } else {
        validate_builtin(c->res, obj, causes);
        dc_fields_check(c->res->kind, obj, unknown);
    }
    const char *fv = dc_req_query(c->req, "fieldValidation");
    if (json_array_size(unknown) > 0 && fv && strcmp(fv, "Strict") == 0) {
        lb_buf msg = LB_BUF_INIT;
        lb_buf_printf(&msg,
                      "%s in version \"%s\" cannot be handled as a %s: strict decoding error: ",
                      c->res->kind, c->res->version, c->res->kind);
        size_t i;
        json_t *u;
        json_array_foreach(unknown, i, u)
            lb_buf_printf(&msg, "%sunknown field \"%s\"", i ? ", " : "", json_string_value(u));
        respond_bad_request(c, msg.data ? msg.data : "strict decoding error");
        lb_buf_free(&msg);
        json_decref(causes);
        json_decref(unknown);
        return false;
    }
    /* otherwise (helm, controllers) a warning, as the real server's Warn
     * mode gives; a custom resource's unknown fields were pruned, a built-in
     * object's are kept (see README) */
    size_t i;
    json_t *u;
    bool quiet = fv && strcmp(fv, "Ignore") == 0;
    json_array_foreach(quiet ? NULL : unknown, i, u)
    {
        char warning[1200];
        snprintf(warning, sizeof warning, "299 - \"unknown field \\\"%s\\\"\"",
                 json_string_value(u));
        if (i < 20)
            dc_req_add_header(c->req, "Warning", warning);
    }
    json_decref(unknown);
    if (json_array_size(causes) > 0) {
        respond_invalid(c, c->res, name, causes);
        return false;
    }
    json_decref(causes);
    return true;
}

static int
create_object(dc_ctx *c, json_t *obj, int *status_out)
{
    const dc_resource *r = c->res;
    json_t *meta = meta_of(obj);
    const char *name = dc_api_meta_str(obj, "name");
    const char *gen_name = dc_api_meta_str(obj, "generateName");
    char namebuf[300];
    if ((!name || !*name) && gen_name && *gen_name) {
        char suffix[6];
        random_suffix(suffix, 5);
        snprintf(namebuf, sizeof namebuf, "%.250s%s", gen_name, suffix);
        json_object_set_new(meta, "name", json_string(namebuf));
        name = dc_api_meta_str(obj, "name");
    }
    if (!name || !*name) {
        json_t *causes = json_array();
        add_cause(causes, "FieldValueRequired", "metadata.name",
                  "Required value: name or generateName is required");
        respond_invalid(c, r, "", causes);
        return -EINVAL;
    }
    json_t *causes = json_array();
    validate_name(r, name, causes);
    if (json_array_size(causes) > 0) {
        respond_invalid(c, r, name, causes);
        return -EINVAL;
    }
    json_decref(causes);
    if (r->namespaced) {
        const char *body_ns = dc_api_meta_str(obj, "namespace");
        if (body_ns && *body_ns && strcmp(body_ns, c->ns) != 0) {
            respond_bad_request(c, "the namespace of the provided object does not match the "
                                   "namespace sent on the request");
            return -EINVAL;
        }
        json_object_set_new(meta, "namespace", json_string(c->ns));
        if (check_namespace(c, name) < 0)
            return -ENOENT;
    } else {
        json_object_del(meta, "namespace");
    }
    name = dc_api_meta_str(obj, "name");
    char namecopy[300];
    snprintf(namecopy, sizeof namecopy, "%s", name);
    json_t *existing = NULL;
    if (dc_store_get(c->api->store, r->key, r->namespaced ? c->ns : "", namecopy, &existing) == 0) {
        json_decref(existing);
        char q[300], msg[700];
        dc_api_qualified(r, q, sizeof q);
        snprintf(msg, sizeof msg, "%s \"%s\" already exists", q, namecopy);
        dc_api_respond_status(c, 409, "AlreadyExists", msg, details_for(r, namecopy));
        return LB_EEXIST;
    }
    char uid[37], now[32];
    new_uid(uid);
    dc_api_now(now, sizeof now);
    json_object_set_new(meta, "uid", json_string(uid));
    json_object_set_new(meta, "creationTimestamp", json_string(now));
    json_object_del(meta, "deletionTimestamp");
    json_object_del(meta, "deletionGracePeriodSeconds");
    json_object_del(meta, "resourceVersion");
    json_object_del(meta, "selfLink");
    if (r->has_generation)
        json_object_set_new(meta, "generation", json_integer(1));
    else
        json_object_del(meta, "generation");
    prepare_create(c->api, r, obj);
    apply_defaults(r, obj);
    if (!validate(c, obj, NULL, namecopy))
        return -EINVAL;
    if (!dry_run(c)) {
        int rc = dc_store_put(c->api->store, r->key, r->namespaced ? c->ns : "", namecopy, obj,
                              DC_ADDED);
        if (rc < 0) {
            dc_api_respond_status(c, 500, "InternalError", "could not store the object", NULL);
            return rc;
        }
        after_write(c->api, r);
        if (strcmp(r->plural, "namespaces") == 0 && !r->group[0]) {
            /* what kube-controller-manager adds to every namespace */
            json_t *sa =
                json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "ServiceAccount",
                          "metadata", "name", "default", "namespace", namecopy);
            json_t *cm = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion", "v1", "kind",
                                   "ConfigMap", "metadata", "name", "kube-root-ca.crt", "namespace",
                                   namecopy, "data", "ca.crt", c->api->pki.ca_pem);
            json_t *objs[2] = {sa, cm};
            const char *keys[2] = {"/serviceaccounts", "/configmaps"};
            for (int i = 0; i < 2; i++) {
                json_t *m = json_object_get(objs[i], "metadata");
                new_uid(uid);
                json_object_set_new(m, "uid", json_string(uid));
                json_object_set_new(m, "creationTimestamp", json_string(now));
                dc_store_put(c->api->store, keys[i], namecopy,
                             json_string_value(json_object_get(m, "name")), objs[i], DC_ADDED);
                json_decref(objs[i]);
            }
        }
    }
    *status_out = 201;
    return 0;
}

static void
do_create(dc_ctx *c)
{
    json_t *obj = decode_body(c);
    if (!obj)
        return;
    if (!check_type(c, obj)) {
        json_decref(obj);
        return;
    }
    int status;
    if (create_object(c, obj, &status) == 0)
        dc_api_respond_json(c, status, json_incref(obj));
    json_decref(obj);
}

/* The common path of PUT and PATCH: new (borrowed) replaces old. */
static void
update_object(dc_ctx *c, json_t *old, json_t *obj)
{
    const dc_resource *r = c->res;
    const char *ns = r->namespaced ? c->ns : "";
    meta_of(obj); /* a body without metadata gets an empty one */
    json_t *old_meta = meta_of(old);
    const char *name = dc_api_meta_str(obj, "name");
    if (name && *name && strcmp(name, c->name) != 0) {
        char msg[700];
        snprintf(msg, sizeof msg,
                 "the name of the object (%s) does not match the name on the URL (%s)", name,
                 c->name);
        respond_bad_request(c, msg);
        return;
    }
    const char *body_ns = dc_api_meta_str(obj, "namespace");
    if (r->namespaced && body_ns && *body_ns && strcmp(body_ns, c->ns) != 0) {
        respond_bad_request(c, "the namespace of the provided object does not match the namespace "
                               "sent on the request");
        return;
    }
    const char *rv = dc_api_meta_str(obj, "resourceVersion");
    const char *old_rv = dc_api_meta_str(old, "resourceVersion");
    if (rv && *rv && old_rv && strcmp(rv, old_rv) != 0) {
        respond_conflict(c, r, c->name);
        return;
    }
    json_t *result;
    if (strcmp(c->sub, "status") == 0) {
        /* only the status changes through /status */
        result = json_deep_copy(old);
        json_t *st = json_object_get(obj, "status");
        if (st)
            json_object_set(result, "status", st);
        else
            json_object_del(result, "status");
    } else {
        result = json_deep_copy(obj);
        json_t *m = meta_of(result);
        /* what a client cannot change */
        const char *keep[] = {"uid",
                              "creationTimestamp",
                              "deletionTimestamp",
                              "deletionGracePeriodSeconds",
                              "generation",
                              "namespace",
                              "name"};
        for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
            json_t *v = json_object_get(old_meta, keep[i]);
            if (v)
                json_object_set(m, keep[i], v);
            else
                json_object_del(m, keep[i]);
        }
        if (r->has_status) {
            json_t *st = json_object_get(old, "status");
            if (st)
                json_object_set(result, "status", st);
            else
                json_object_del(result, "status");
        }
        if (json_object_get(old_meta, "deletionTimestamp")) {
            json_t *oldf = json_object_get(old_meta, "finalizers");
            size_t i;
            json_t *f;
            json_array_foreach(json_object_get(m, "finalizers"), i, f)
            {
                if (json_is_string(f) && !has_string(oldf, json_string_value(f))) {
                    json_t *causes = json_array();
                    add_cause(causes, "FieldValueForbidden", "metadata.finalizers",
                              "Forbidden: no new finalizers can be added if the object is being "
                              "deleted, found new finalizers []string{\"%s\"}",
                              json_string_value(f));
                    respond_invalid(c, r, c->name, causes);
                    json_decref(result);
                    return;
                }
            }
        }
        if (strcmp(r->plural, "services") == 0 && !r->group[0])
            prepare_service(c->api, result, old);
        else if (strcmp(r->plural, "secrets") == 0 && !r->group[0])
            prepare_secret(result);
        apply_defaults(r, result);
        if (!validate(c, result, old, c->name)) {
            json_decref(result);
            return;
        }
        if (r->has_generation && spec_changed(old, result)) {
            json_t *g = json_object_get(old_meta, "generation");
            json_object_set_new(m, "generation",
                                json_integer((json_is_integer(g) ? json_integer_value(g) : 0) + 1));
        }
    }
    json_object_set_new(meta_of(result), "resourceVersion", json_string(old_rv ? old_rv : ""));
    if (same_object(old, result) || dry_run(c)) {
        dc_api_respond_json(c, 200, result);
        return;
    }
    if (dc_api_store_update(c->api, r, ns, c->name, result) < 0) {
        json_decref(result);
        dc_api_respond_status(c, 500, "InternalError", "could not store the object", NULL);
        return;
    }
    dc_api_respond_json(c, 200, result);
}

/* ---- scale ---- */

static json_t *
path_get(json_t *obj, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path[0] == '.' ? path + 1 : path);
    char *save = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg && obj; seg = strtok_r(NULL, ".", &save))
        obj = json_object_get(obj, seg);
    return obj;
}

static void
path_set(json_t *obj, const char *path, json_t *value)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path[0] == '.' ? path + 1 : path);
    char *save = NULL;
    char *seg = strtok_r(buf, ".", &save);
    while (seg) {
        char *next = strtok_r(NULL, ".", &save);
        if (!next) {
            json_object_set_new(obj, seg, value);
            return;
        }
        obj = child(obj, seg);
        seg = next;
    }
    json_decref(value);
}

static void
scale_paths(const dc_resource *r, const char **spec, const char **status, const char **selector)
{
    if (r->scale_spec_path[0]) {
        *spec = r->scale_spec_path;
        *status = r->scale_status_path;
        *selector = r->scale_selector_path;
    } else {
        *spec = ".spec.replicas";
        *status = ".status.replicas";
        *selector = ".status.selector";
    }
}

static json_t *
scale_of(const dc_resource *r, json_t *obj)
{
    const char *sp, *stp, *selp;
    scale_paths(r, &sp, &stp, &selp);
    json_t *m = json_object_get(obj, "metadata");
    json_t *replicas = path_get(obj, sp);
    json_t *st = stp[0] ? path_get(obj, stp) : NULL;
    json_t *scale = json_pack(
        "{s:s, s:s, s:{s:O?, s:O?, s:O?, s:O?, s:O?}, s:{s:I}, s:{s:I}}", "kind", "Scale",
        "apiVersion", "autoscaling/v1", "metadata", "name", json_object_get(m, "name"), "namespace",
        json_object_get(m, "namespace"), "uid", json_object_get(m, "uid"), "resourceVersion",
        json_object_get(m, "resourceVersion"), "creationTimestamp",
        json_object_get(m, "creationTimestamp"), "spec", "replicas",
        (json_int_t)(json_is_integer(replicas) ? json_integer_value(replicas) : 0), "status",
        "replicas", (json_int_t)(json_is_integer(st) ? json_integer_value(st) : 0));
    json_t *sel = selp[0] ? path_get(obj, selp) : NULL;
    if (json_is_string(sel))
        json_object_set(json_object_get(scale, "status"), "selector", sel);
    else if (!r->scale_spec_path[0]) {
        /* built-ins: the selector as a string, from spec.selector.matchLabels */
        json_t *ml = path_get(obj, ".spec.selector.matchLabels");
        lb_buf b = LB_BUF_INIT;
        const char *k;
        json_t *v;
        json_object_foreach(ml, k, v)
            lb_buf_printf(&b, "%s%s=%s", b.len ? "," : "", k, json_string_value(v) ?: "");
        if (b.data)
            json_object_set_new(json_object_get(scale, "status"), "selector", json_string(b.data));
        lb_buf_free(&b);
    }
    return scale;
}

static void
do_scale(dc_ctx *c, json_t *obj)
{
    if (strcmp(c->verb, "get") == 0) {
        dc_api_respond_json(c, 200, scale_of(c->res, obj));
        return;
    }
    json_t *current = scale_of(c->res, obj);
    json_t *wanted = NULL;
    if (strcmp(c->verb, "update") == 0) {
        wanted = decode_body(c);
    } else {
        json_t *patch = decode_body(c);
        if (!patch) {
            json_decref(current);
            return;
        }
        char err[256] = "";
        const char *ct = dc_req_header(c->req, "Content-Type");
        int rc = ct && strstr(ct, "json-patch")
                     ? dc_json_patch(current, patch, &wanted, err, sizeof err)
                     : dc_merge_patch(current, patch, &wanted, err, sizeof err);
        json_decref(patch);
        if (rc != 0) {
            respond_bad_request(c, err);
            json_decref(current);
            return;
        }
    }
    if (!wanted) {
        json_decref(current);
        return;
    }
    json_t *replicas = path_get(wanted, ".spec.replicas");
    const char *rv = dc_api_meta_str(wanted, "resourceVersion");
    if (rv && *rv && strcmp(rv, dc_api_meta_str(obj, "resourceVersion") ?: "") != 0) {
        respond_conflict(c, c->res, c->name);
    } else if (!json_is_integer(replicas) || json_integer_value(replicas) < 0) {
        json_t *causes = json_array();
        add_cause(causes, "FieldValueInvalid", "spec.replicas",
                  "Invalid value: %lld: must be greater than or equal to 0",
                  (long long)json_integer_value(replicas));
        char q[140];
        snprintf(q, sizeof q, "%s", c->res->kind);
        respond_invalid(c, c->res, c->name, causes);
    } else {
        const char *sp, *stp, *selp;
        scale_paths(c->res, &sp, &stp, &selp);
        json_t *updated = json_deep_copy(obj);
        path_set(updated, sp, json_integer(json_integer_value(replicas)));
        if (!json_equal(updated, obj)) {
            json_t *m = meta_of(updated);
            if (c->res->has_generation) {
                json_t *g = json_object_get(m, "generation");
                json_object_set_new(
                    m, "generation",
                    json_integer((json_is_integer(g) ? json_integer_value(g) : 0) + 1));
            }
            dc_api_store_update(c->api, c->res, c->res->namespaced ? c->ns : "", c->name, updated);
        }
        dc_api_respond_json(c, 200, scale_of(c->res, updated));
        json_decref(updated);
    }
    json_decref(wanted);
    json_decref(current);
}

/* ---- PATCH ---- */

static void
do_patch(dc_ctx *c, json_t *old)
{
    const char *ct = dc_req_header(c->req, "Content-Type");
    if (!ct)
        ct = "";
    json_t *patch = NULL;
    char err[512] = "";
    int rc;
    json_t *patched = NULL;
    bool custom = c->res->custom;
    if (strncasecmp(ct, "application/strategic-merge-patch+json", 38) == 0 && custom) {
        dc_api_respond_status(c, 415, "UnsupportedMediaType",
                              "the body of the request was in an unknown format - accepted media "
                              "types include: application/json-patch+json, "
                              "application/merge-patch+json, application/apply-patch+yaml",
                              NULL);
        return;
    }
    if (strncasecmp(ct, "application/json-patch+json", 27) != 0 &&
        strncasecmp(ct, "application/merge-patch+json", 28) != 0 &&
        strncasecmp(ct, "application/strategic-merge-patch+json", 38) != 0 &&
        strncasecmp(ct, "application/apply-patch+yaml", 28) != 0) {
        dc_api_respond_status(c, 415, "UnsupportedMediaType",
                              "the body of the request was in an unknown format - accepted media "
                              "types include: application/json-patch+json, "
                              "application/merge-patch+json, "
                              "application/apply-patch+yaml, "
                              "application/strategic-merge-patch+json",
                              NULL);
        return;
    }
    patch = decode_body(c);
    if (!patch)
        return;
    if (strncasecmp(ct, "application/json-patch+json", 27) == 0)
        rc = dc_json_patch(old, patch, &patched, err, sizeof err);
    else if (strncasecmp(ct, "application/strategic-merge-patch+json", 38) == 0)
        rc = dc_strategic_merge_patch(old, patch, &patched, err, sizeof err);
    else
        rc = dc_merge_patch(old, patch, &patched, err, sizeof err);
    json_decref(patch);
    if (rc == LB_ECONFLICT) {
        dc_api_respond_status(c, 422, "Invalid", err, NULL);
        return;
    }
    if (rc != 0) {
        respond_bad_request(c, err);
        return;
    }
    if (!json_is_object(patched) || !check_type(c, patched)) {
        if (!c->out_status)
            respond_bad_request(c, "the patch does not result in an object");
        json_decref(patched);
        return;
    }
    update_object(c, old, patched);
    json_decref(patched);
}

/* ---- list ---- */

typedef struct list_state {
    dc_ctx *c;
    dc_selector *labels;
    dc_selector *fields;
    json_t *items;
    long limit;
    bool more;
    char last_ns[256];
    char last_name[256];
} list_state;

static int
list_visit(void *arg, const char *ns, const char *name, json_t *obj)
{
    list_state *ls = arg;
    if (!dc_selector_matches(ls->labels, obj) || !dc_selector_matches(ls->fields, obj))
        return 0;
    if (ls->limit > 0 && (long)json_array_size(ls->items) >= ls->limit) {
        ls->more = true;
        return 1;
    }
    dc_api_set_type(obj, ls->c->res);
    json_array_append(ls->items, obj);
    snprintf(ls->last_ns, sizeof ls->last_ns, "%s", ns);
    snprintf(ls->last_name, sizeof ls->last_name, "%s", name);
    return 0;
}

static void
b64(const char *in, char *out, size_t cap)
{
    size_t n = strlen(in);
    if (4 * ((n + 2) / 3) + 1 > cap) {
        out[0] = '\0';
        return;
    }
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
}

static void
do_list(dc_ctx *c)
{
    list_state ls = {.c = c, .items = json_array()};
    char err[512] = "";
    if (dc_selector_parse_labels(dc_req_query(c->req, "labelSelector"), &ls.labels, err,
                                 sizeof err) != 0 ||
        dc_selector_parse_fields(dc_req_query(c->req, "fieldSelector"), &ls.fields, err,
                                 sizeof err) != 0) {
        respond_bad_request(c, err);
        goto out;
    }
    const char *limit = dc_req_query(c->req, "limit");
    ls.limit = limit ? atol(limit) : 0;
    const char *cont = dc_req_query(c->req, "continue");
    int64_t list_rv = 0;
    char after_ns[256] = "", after_name[256] = "";
    bool has_after = false;
    if (cont && *cont) {
        unsigned char dec[1200];
        size_t clen = strlen(cont);
        int n = clen < 1500 ? EVP_DecodeBlock(dec, (const unsigned char *)cont, (int)clen) : -1;
        json_error_t e;
        json_t *tok =
            n > 0 ? json_loadb((char *)dec, strnlen((char *)dec, (size_t)n), 0, &e) : NULL;
        const char *tn = json_string_value(json_object_get(tok, "ns"));
        const char *tname = json_string_value(json_object_get(tok, "name"));
        if (!tn || !tname) {
            json_decref(tok);
            respond_bad_request(c, "continue key is not valid: illegal base64 data");
            goto out;
        }
        snprintf(after_ns, sizeof after_ns, "%s", tn);
        snprintf(after_name, sizeof after_name, "%s", tname);
        has_after = true;
        list_rv = atoll(json_string_value(json_object_get(tok, "rv")) ?: "0");
        json_decref(tok);
        /* Every page carries the first page's resourceVersion: a watch from
         * it then delivers whatever changed while the pages were read (the
         * pages themselves read the current state). That needs the window
         * to still reach back to it, as etcd's compaction does. */
        int64_t floor = dc_store_window_floor(c->api->store);
        if (list_rv < floor) {
            dc_api_respond_status(
                c, 410, "Expired",
                "The provided continue parameter is too old to display a consistent list "
                "result. You can start a new list without the continue parameter, or use "
                "the continue token in this response to retrieve the remainder of the "
                "results. Continuing with the provided token results in an inconsistent "
                "list - objects that were created, modified, or deleted between the time "
                "the first chunk was returned and now may show up in the list.",
                NULL);
            goto out;
        }
    }
    const char *ns = (c->res->namespaced && c->namespaced_path) ? c->ns : NULL;
    dc_store_list(c->api->store, c->res->key, ns, has_after ? after_ns : NULL,
                  has_after ? after_name : NULL, list_visit, &ls);
    char rv[32];
    snprintf(rv, sizeof rv, "%lld", (long long)(has_after ? list_rv : dc_store_rv(c->api->store)));
    char token[1200] = "";
    if (ls.more) {
        json_t *tok =
            json_pack("{s:s, s:s, s:s}", "ns", ls.last_ns, "name", ls.last_name, "rv", rv);
        char *text = json_dumps(tok, JSON_COMPACT);
        if (text)
            b64(text, token, sizeof token);
        free(text);
        json_decref(tok);
    }
    if (dc_table_wanted(dc_req_header(c->req, "Accept"))) {
        json_t **objs = malloc(sizeof *objs * (json_array_size(ls.items) + 1));
        for (size_t i = 0; i < json_array_size(ls.items); i++)
            objs[i] = json_array_get(ls.items, i);
        dc_api_respond_json(c, 200,
                            dc_table_build(c->res, objs, json_array_size(ls.items), rv,
                                           ls.more ? token : NULL, true));
        free(objs);
        goto out;
    }
    char av[256];
    snprintf(av, sizeof av, "%s%s%s", c->res->group, c->res->group[0] ? "/" : "", c->res->version);
    json_t *list = json_pack("{s:s, s:s, s:{s:s}, s:O}", "kind", c->res->list_kind, "apiVersion",
                             av, "metadata", "resourceVersion", rv, "items", ls.items);
    if (ls.more)
        json_object_set_new(json_object_get(list, "metadata"), "continue", json_string(token));
    dc_api_respond_json(c, 200, list);
out:
    json_decref(ls.items);
    dc_selector_free(ls.labels);
    dc_selector_free(ls.fields);
}

/* ---- delete ---- */

typedef struct delete_opts {
    const char *propagation;
    char prop_buf[32];
    char uid[64];
    char rv[32];
    long long grace;
} delete_opts;

static bool
read_delete_options(dc_ctx *c, delete_opts *o)
{
    memset(o, 0, sizeof *o);
    o->grace = -1;
    size_t len;
    const char *body = dc_req_body(c->req, &len);
    if (len > 0) {
        json_error_t e;
        json_t *opts = NULL;
        const char *ct = dc_req_header(c->req, "Content-Type");
        char msg[700];
        if (ct && strncasecmp(ct, "application/vnd.kubernetes.protobuf", 35) == 0) {
            char err[512];
            if (dc_protobuf_decode(body, len, &opts, err, sizeof err) != 0) {
                snprintf(msg, sizeof msg, "%s", err);
                respond_bad_request(c, msg);
                return false;
            }
        } else {
            opts = json_loadb(body, len, 0, &e);
            if (!json_is_object(opts)) {
                json_decref(opts);
                snprintf(msg, sizeof msg, "couldn't get version/kind; json parse error: %s",
                         e.text);
                respond_bad_request(c, msg);
                return false;
            }
        }
        const char *p = json_string_value(json_object_get(opts, "propagationPolicy"));
        if (p)
            snprintf(o->prop_buf, sizeof o->prop_buf, "%s", p);
        json_t *orphan = json_object_get(opts, "orphanDependents");
        if (!p && json_is_boolean(orphan))
            snprintf(o->prop_buf, sizeof o->prop_buf, "%s",
                     json_is_true(orphan) ? "Orphan" : "Background");
        json_t *pre = json_object_get(opts, "preconditions");
        snprintf(o->uid, sizeof o->uid, "%s", json_string_value(json_object_get(pre, "uid")) ?: "");
        snprintf(o->rv, sizeof o->rv, "%s",
                 json_string_value(json_object_get(pre, "resourceVersion")) ?: "");
        json_t *g = json_object_get(opts, "gracePeriodSeconds");
        if (json_is_integer(g))
            o->grace = json_integer_value(g);
        json_decref(opts);
    }
    const char *q = dc_req_query(c->req, "propagationPolicy");
    if (q)
        snprintf(o->prop_buf, sizeof o->prop_buf, "%s", q);
    q = dc_req_query(c->req, "gracePeriodSeconds");
    if (q)
        o->grace = atoll(q);
    if (o->prop_buf[0] && strcmp(o->prop_buf, "Background") != 0 &&
        strcmp(o->prop_buf, "Foreground") != 0 && strcmp(o->prop_buf, "Orphan") != 0) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: "
                 "\"%s\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"",
                 o->prop_buf);
        dc_api_respond_status(c, 422, "Invalid", msg, NULL);
        return false;
    }
    o->propagation = o->prop_buf[0] ? o->prop_buf : NULL;
    return true;
}

static void
do_delete(dc_ctx *c, json_t *obj)
{
    delete_opts o;
    if (!read_delete_options(c, &o))
        return;
    const char *uid = dc_api_meta_str(obj, "uid");
    const char *rv = dc_api_meta_str(obj, "resourceVersion");
    if ((o.uid[0] && strcmp(o.uid, uid ? uid : "") != 0) ||
        (o.rv[0] && strcmp(o.rv, rv ? rv : "") != 0)) {
        char q[300], msg[900];
        dc_api_qualified(c->res, q, sizeof q);
        snprintf(msg, sizeof msg,
                 "Operation cannot be fulfilled on %s \"%s\": Precondition failed: %s in "
                 "precondition: %s, %s in object meta: %s",
                 q, c->name, o.uid[0] ? "UID" : "ResourceVersion", o.uid[0] ? o.uid : o.rv,
                 o.uid[0] ? "UID" : "ResourceVersion",
                 o.uid[0] ? (uid ? uid : "") : (rv ? rv : ""));
        dc_api_respond_status(c, 409, "Conflict", msg, details_for(c->res, c->name));
        return;
    }
    if (dry_run(c)) {
        dc_api_respond_json(c, 200, json_incref(obj));
        return;
    }
    bool deleted;
    json_t *result;
    int rc = dc_api_delete_object(c->api, c->res, c->res->namespaced ? c->ns : "", c->name, obj,
                                  o.propagation, o.grace == 0, &deleted, &result);
    if (rc < 0) {
        json_decref(result);
        dc_api_respond_status(c, 500, "InternalError", "could not delete the object", NULL);
        return;
    }
    dc_api_respond_json(
        c, !deleted && o.propagation && strcmp(o.propagation, "Foreground") == 0 ? 202 : 200,
        result);
}

typedef struct dc_state {
    dc_ctx *c;
    dc_selector *labels;
    dc_selector *fields;
    json_t *victims;
} dc_state;

static int
collect(void *arg, const char *ns, const char *name, json_t *obj)
{
    (void)ns;
    (void)name;
    dc_state *st = arg;
    if (dc_selector_matches(st->labels, obj) && dc_selector_matches(st->fields, obj))
        json_array_append(st->victims, obj);
    return 0;
}

static void
do_deletecollection(dc_ctx *c)
{
    dc_state st = {.c = c, .victims = json_array()};
    char err[512];
    delete_opts o;
    if (dc_selector_parse_labels(dc_req_query(c->req, "labelSelector"), &st.labels, err,
                                 sizeof err) != 0 ||
        dc_selector_parse_fields(dc_req_query(c->req, "fieldSelector"), &st.fields, err,
                                 sizeof err) != 0) {
        respond_bad_request(c, err);
    } else if (read_delete_options(c, &o)) {
        dc_store_list(c->api->store, c->res->key,
                      c->res->namespaced && c->namespaced_path ? c->ns : NULL, NULL, NULL, collect,
                      &st);
        size_t i;
        json_t *obj;
        json_array_foreach(st.victims, i, obj)
        {
            bool deleted;
            json_t *result;
            dc_api_delete_object(c->api, c->res, dc_api_meta_str(obj, "namespace") ?: "",
                                 dc_api_meta_str(obj, "name"), obj, o.propagation, o.grace == 0,
                                 &deleted, &result);
            json_decref(result);
        }
        char av[256];
        snprintf(av, sizeof av, "%s%s%s", c->res->group, c->res->group[0] ? "/" : "",
                 c->res->version);
        char rv[32];
        snprintf(rv, sizeof rv, "%lld", (long long)dc_store_rv(c->api->store));
        dc_api_respond_json(c, 200,
                            json_pack("{s:s, s:s, s:{s:s}, s:O}", "kind", c->res->list_kind,
                                      "apiVersion", av, "metadata", "resourceVersion", rv, "items",
                                      st.victims));
    }
    json_decref(st.victims);
    dc_selector_free(st.labels);
    dc_selector_free(st.fields);
}

/* ---- pods/log: from the node agent (node.h), which reads podman's logs ---- */

static int
log_chunk(void *arg, const char *bytes, size_t n)
{
    return dc_stream_write(arg, bytes, n) == 0 ? 0 : -1;
}

static bool
log_client_here(void *arg)
{
    return !dc_req_client_gone(arg, 0);
}

static void
serve_pod_log(dc_ctx *c)
{
    const char *tail = dc_req_query(c->req, "tailLines");
    const char *ts = dc_req_query(c->req, "timestamps");
    const char *follow = dc_req_query(c->req, "follow");
    if (follow && strcmp(follow, "true") == 0) {
        char cid[128];
        int frc = dc_node_log_container(c->api->data_dir, c->ns, c->name,
                                        dc_req_query(c->req, "container"), cid, sizeof cid);
        if (frc == 0) {
            dc_stream_begin(c->req, 200, "text/plain");
            dc_node_container_logs_follow(cid, tail ? atol(tail) : -1,
                                          ts && strcmp(ts, "true") == 0, log_chunk, log_client_here,
                                          c->req);
            dc_stream_end(c->req);
            return;
        }
    }
    lb_buf out = LB_BUF_INIT;
    int rc = dc_node_pod_logs(c->api->data_dir, c->ns, c->name, dc_req_query(c->req, "container"),
                              tail ? atol(tail) : -1, ts && strcmp(ts, "true") == 0, &out);
    if (rc == 0) {
        dc_respond(c->req, 200, "text/plain", out.data ? out.data : "", out.len);
    } else {
        char msg[600];
        snprintf(msg, sizeof msg, "container logs of pod \"%s\" are not available: %s", c->name,
                 lb_strerror(rc));
        dc_api_respond_status(c, rc == LB_ENOTFOUND ? 400 : 500,
                              rc == LB_ENOTFOUND ? "BadRequest" : "InternalError", msg, NULL);
    }
    lb_buf_free(&out);
}

/* ---- serviceaccounts/token ---- */

static void
do_token(dc_ctx *c, json_t *sa)
{
    json_t *req = decode_body(c);
    if (!req)
        return;
    json_t *exp = json_object_get(json_object_get(req, "spec"), "expirationSeconds");
    long long secs = json_is_integer(exp) ? json_integer_value(exp) : 3600;
    if (secs < 600)
        secs = 600;
    long long until = (long long)time(NULL) + secs;
    char *token = NULL;
    dc_pki_issue_token(&c->api->pki, c->ns, c->name, dc_api_meta_str(sa, "uid") ?: "", until,
                       &token);
    time_t t = (time_t)until;
    struct tm tm;
    gmtime_r(&t, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *spec = json_object_get(req, "spec");
    json_t *resp = json_pack("{s:s, s:s, s:{s:s, s:s}, s:O?, s:{s:s, s:s}}", "kind", "TokenRequest",
                             "apiVersion", "authentication.k8s.io/v1", "metadata", "name", c->name,
                             "namespace", c->ns, "spec", spec, "status", "token",
                             token ? token : "", "expirationTimestamp", ts);
    json_object_set_new(json_object_get(resp, "spec"), "expirationSeconds", json_integer(secs));
    free(token);
    json_decref(req);
    dc_api_respond_json(c, 201, resp);
}

int
dc_apiserver_issue_token(dc_apiserver *a, const char *ns, const char *name, char **out)
{
    dc_store_lock(a->store);
    json_t *sa = NULL;
    int rc = dc_store_get(a->store, "/serviceaccounts", ns, name, &sa);
    if (rc == 0)
        rc = dc_pki_issue_token(&a->pki, ns, name, dc_api_meta_str(sa, "uid") ?: "", 0, out);
    json_decref(sa);
    dc_store_unlock(a->store);
    return rc;
}

/* ---- authorization.k8s.io SelfSubjectAccessReview (kubectl auth can-i) ---- */

static void
do_access_review(dc_ctx *c)
{
    json_t *review = decode_body(c);
    if (!review)
        return;
    if (!check_type(c, review)) {
        json_decref(review);
        return;
    }
    json_t *spec = json_object_get(review, "spec");
    json_t *ra = json_object_get(spec, "resourceAttributes");
    json_t *nra = json_object_get(spec, "nonResourceAttributes");
    bool allowed = c->admin;
    if (!c->admin && json_is_object(ra)) {
        const char *res = json_string_value(json_object_get(ra, "resource")) ?: "";
        const char *sub = json_string_value(json_object_get(ra, "subresource"));
        char resource[300];
        if (sub && *sub)
            snprintf(resource, sizeof resource, "%s/%s", res, sub);
        else
            snprintf(resource, sizeof resource, "%s", res);
        allowed = dc_rbac_allows(c->api->store, c->user, c->sa_ns,
                                 json_string_value(json_object_get(ra, "verb")) ?: "",
                                 json_string_value(json_object_get(ra, "group")) ?: "", resource,
                                 json_string_value(json_object_get(ra, "namespace")) ?: "",
                                 json_string_value(json_object_get(ra, "name")) ?: "", NULL);
    } else if (!c->admin && json_is_object(nra)) {
        allowed = dc_rbac_allows(c->api->store, c->user, c->sa_ns,
                                 json_string_value(json_object_get(nra, "verb")) ?: "", "", "", "",
                                 "", json_string_value(json_object_get(nra, "path")) ?: "");
    }
    json_object_set_new(review, "status",
                        allowed ? json_pack("{s:b, s:s}", "allowed", 1, "reason",
                                            c->admin ? "the admin token is cluster-admin"
                                                     : "allowed by a role binding")
                                : json_pack("{s:b}", "allowed", 0));
    dc_api_respond_json(c, 201, review);
}

/* ---- routing ---- */

/* Split path into segments (in place); returns how many. */
static int
split(char *path, char **segs, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *s = strtok_r(path, "/", &save); s && n < max; s = strtok_r(NULL, "/", &save))
        segs[n++] = s;
    return n;
}

/* Parse a resource path into c; false if the path is not one. */
static bool
parse_resource_path(dc_ctx *c, const char *path)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", path);
    char *seg[12];
    int n = split(buf, seg, 12);
    int i;
    if (n >= 2 && strcmp(seg[0], "api") == 0) {
        c->group[0] = '\0';
        snprintf(c->version, sizeof c->version, "%s", seg[1]);
        i = 2;
    } else if (n >= 3 && strcmp(seg[0], "apis") == 0) {
        snprintf(c->group, sizeof c->group, "%s", seg[1]);
        snprintf(c->version, sizeof c->version, "%s", seg[2]);
        i = 3;
    } else {
        return false;
    }
    int rest = n - i;
    if (rest <= 0)
        return false;
    char **r = seg + i;
    if (strcmp(r[0], "namespaces") == 0 && rest >= 3 && strcmp(r[2], "status") != 0 &&
        strcmp(r[2], "finalize") != 0) {
        c->namespaced_path = true;
        snprintf(c->ns, sizeof c->ns, "%s", r[1]);
        r += 2;
        rest -= 2;
    }
    if (rest > 3)
        return false;
    snprintf(c->plural, sizeof c->plural, "%s", r[0]);
    if (rest >= 2)
        snprintf(c->name, sizeof c->name, "%s", r[1]);
    if (rest >= 3)
        snprintf(c->sub, sizeof c->sub, "%s", r[2]);
    return true;
}

static void
set_verb(dc_ctx *c)
{
    const char *m = dc_req_method(c->req);
    const char *w = dc_req_query(c->req, "watch");
    bool watch = w && (strcmp(w, "true") == 0 || strcmp(w, "1") == 0);
    const char *v = "get";
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        v = c->name[0] ? "get" : watch ? "watch" : "list";
    else if (strcmp(m, "POST") == 0)
        v = "create";
    else if (strcmp(m, "PUT") == 0)
        v = "update";
    else if (strcmp(m, "PATCH") == 0)
        v = "patch";
    else if (strcmp(m, "DELETE") == 0)
        v = c->name[0] ? "delete" : "deletecollection";
    else
        v = "";
    snprintf(c->verb, sizeof c->verb, "%s", v);
}

static bool
authenticate(dc_ctx *c)
{
    const char *auth = dc_req_header(c->req, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    const char *token = auth + 7;
    while (*token == ' ')
        token++;
    if (strlen(token) == strlen(c->api->pki.admin_token) &&
        CRYPTO_memcmp(token, c->api->pki.admin_token, strlen(token)) == 0) {
        c->admin = true;
        snprintf(c->user, sizeof c->user, "admin");
        /* the admin may act as another user (kubectl --as), to test roles */
        const char *as = dc_req_header(c->req, "Impersonate-User");
        if (as && *as) {
            c->admin = false;
            c->impersonated = true;
            snprintf(c->user, sizeof c->user, "%s", as);
            const char *prefix = "system:serviceaccount:";
            if (strncmp(as, prefix, strlen(prefix)) == 0) {
                const char *rest = as + strlen(prefix);
                const char *colon = strchr(rest, ':');
                if (colon) {
                    snprintf(c->sa_ns, sizeof c->sa_ns, "%.*s", (int)(colon - rest), rest);
                    snprintf(c->sa_name, sizeof c->sa_name, "%s", colon + 1);
                }
            }
        }
        return true;
    }
    char *ns = NULL, *name = NULL, *uid = NULL;
    if (dc_pki_verify_token(&c->api->pki, token, &ns, &name, &uid) != 0)
        return false;
    /* the account must still exist, with the same uid */
    json_t *sa = NULL;
    bool ok = dc_store_get(c->api->store, "/serviceaccounts", ns, name, &sa) == 0 &&
              strcmp(dc_api_meta_str(sa, "uid") ?: "", uid) == 0;
    json_decref(sa);
    if (ok) {
        snprintf(c->user, sizeof c->user, "system:serviceaccount:%s:%s", ns, name);
        snprintf(c->sa_ns, sizeof c->sa_ns, "%s", ns);
        snprintf(c->sa_name, sizeof c->sa_name, "%s", name);
    }
    free(ns);
    free(name);
    free(uid);
    return ok;
}

static void
dispatch(dc_ctx *c)
{
    const char *path = dc_req_path(c->req);
    if (!parse_resource_path(c, path)) {
        if (!dc_discovery_serve(c)) {
            dc_api_respond_status(c, 404, "NotFound",
                                  "the server could not find the requested "
                                  "resource",
                                  json_object());
        }
        return;
    }
    set_verb(c);
    c->res = dc_resources_find(c->group, c->version, c->plural);
    if (!c->res) {
        dc_api_respond_status(c, 404, "NotFound",
                              "the server could not find the requested resource", json_object());
        return;
    }
    if (c->namespaced_path && !c->res->namespaced) {
        dc_api_respond_status(c, 404, "NotFound",
                              "the server could not find the requested resource", json_object());
        return;
    }
    if (c->sub[0]) {
        bool known = (strcmp(c->sub, "status") == 0 && c->res->has_status) ||
                     (strcmp(c->sub, "scale") == 0 && c->res->has_scale) ||
                     (strcmp(c->plural, "namespaces") == 0 && strcmp(c->sub, "finalize") == 0);
        for (int i = 0; i < 4 && c->res->subresources[i]; i++)
            if (strcmp(c->res->subresources[i], c->sub) == 0)
                known = true;
        if (!known) {
            dc_api_respond_status(c, 404, "NotFound",
                                  "the server could not find the requested resource",
                                  json_object());
            return;
        }
    }
    if (!c->verb[0]) {
        dc_api_respond_status(c, 405, "MethodNotAllowed",
                              "the server does not allow this method on the requested resource",
                              NULL);
        return;
    }
    if (dc_rbac_authorize(c) < 0)
        return;
    if (c->res->create_only) {
        if (strcmp(c->verb, "create") == 0 && !c->name[0])
            do_access_review(c);
        else
            dc_api_respond_status(c, 405, "MethodNotAllowed",
                                  "the server does not allow this method on the requested "
                                  "resource",
                                  NULL);
        return;
    }
    if (c->res->namespaced && !c->namespaced_path &&
        (c->name[0] || strcmp(c->verb, "create") == 0 ||
         strcmp(c->verb, "deletecollection") == 0)) {
        dc_api_respond_status(c, 404, "NotFound",
                              "the server could not find the requested resource", json_object());
        return;
    }
    if (strcmp(c->verb, "list") == 0) {
        do_list(c);
        return;
    }
    if (strcmp(c->verb, "watch") == 0) {
        dc_watch_serve(c); /* unlocks while it waits */
        return;
    }
    if (strcmp(c->verb, "create") == 0 && !c->name[0]) {
        do_create(c);
        return;
    }
    if (strcmp(c->verb, "deletecollection") == 0) {
        do_deletecollection(c);
        return;
    }
    json_t *obj = NULL;
    const char *ns = c->res->namespaced ? c->ns : "";
    if (dc_store_get(c->api->store, c->res->key, ns, c->name, &obj) != 0) {
        if (strcmp(c->verb, "update") == 0 && strcmp(c->plural, "leases") == 0) {
            do_create(c); /* leases are created by PUT, as the real registry allows */
            return;
        }
        const char *ct = dc_req_header(c->req, "Content-Type");
        if (strcmp(c->verb, "patch") == 0 && ct &&
            strncasecmp(ct, "application/apply-patch+yaml", 28) == 0) {
            do_create(c); /* server-side apply creates what is not there */
            return;
        }
        dc_api_respond_not_found(c, c->res, c->name);
        return;
    }
    dc_api_set_type(obj, c->res);
    if (strcmp(c->sub, "scale") == 0) {
        do_scale(c, obj);
    } else if (strcmp(c->sub, "token") == 0 && strcmp(c->verb, "create") == 0) {
        do_token(c, obj);
    } else if (strcmp(c->sub, "log") == 0) {
        /* reading container logs runs podman: nobody waits on the store meanwhile */
        dc_store_unlock(c->api->store);
        serve_pod_log(c);
        dc_store_lock(c->api->store);
    } else if (strcmp(c->verb, "get") == 0) {
        if (dc_table_wanted(dc_req_header(c->req, "Accept"))) {
            char rv[32];
            snprintf(rv, sizeof rv, "%s", dc_api_meta_str(obj, "resourceVersion") ?: "");
            dc_api_respond_json(c, 200, dc_table_build(c->res, &obj, 1, rv, NULL, true));
        } else {
            dc_api_respond_json(c, 200, json_incref(obj));
        }
    } else if (strcmp(c->verb, "update") == 0) {
        json_t *body = decode_body(c);
        if (body && check_type(c, body))
            update_object(c, obj, body);
        json_decref(body);
    } else if (strcmp(c->verb, "patch") == 0) {
        do_patch(c, obj);
    } else if (strcmp(c->verb, "delete") == 0 && !c->sub[0]) {
        do_delete(c, obj);
    } else {
        dc_api_respond_status(c, 405, "MethodNotAllowed",
                              "the server does not allow this method on the requested resource",
                              NULL);
    }
    json_decref(obj);
}

/* apiserver_request_total and _duration_seconds, as the real server names
 * them (watches count when they end, in watch.c's gauge meanwhile). */
static void
count_request(dc_ctx *c, const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
    const char *verb = c->verb[0] ? c->verb : "get";
    char code[8];
    snprintf(code, sizeof code, "%d", c->out_status);
    lb_counter *series = NULL;
    if (lb_counter_labels(c->api->requests, &series, verb, c->res ? c->res->plural : "", code,
                          NULL) == 0)
        lb_counter_inc(series);
    lb_histogram *h = NULL;
    if (lb_histogram_labels(c->api->latency, &h, verb, NULL) == 0)
        lb_histogram_observe(h, secs);
}

static double
read_rv(void *arg)
{
    dc_apiserver *a = arg;
    dc_store_lock(a->store);
    double rv = (double)dc_store_rv(a->store);
    dc_store_unlock(a->store);
    return rv;
}

static void
handle(dc_req *req, void *arg)
{
    dc_ctx c;
    memset(&c, 0, sizeof c);
    c.api = arg;
    c.req = req;
    const char *path = dc_req_path(req);
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/livez") == 0 ||
        strcmp(path, "/readyz") == 0) {
        dc_respond(req, 200, "text/plain; charset=utf-8", "ok", 2);
        return;
    }
    if (strcmp(path, "/metrics") == 0) { /* open, as every lakebase daemon's */
        lb_buf text = LB_BUF_INIT;
        lb_metrics_render(c.api->metrics, &text);
        dc_respond(req, 200, LB_METRICS_CONTENT_TYPE, text.data ? text.data : "", text.len);
        lb_buf_free(&text);
        return;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    dc_store_lock(c.api->store);
    if (!authenticate(&c)) {
        dc_api_respond_status(&c, 401, "Unauthorized", "Unauthorized", NULL);
    } else {
        dispatch(&c);
    }
    dc_store_unlock(c.api->store);
    if (dc_req_responded(req)) {
        json_decref(c.out_body);
        return;
    }
    if (!c.out_body) {
        dc_respond(req, 500, "text/plain", "no response", 11);
        return;
    }
    count_request(&c, &t0);
    char *text = json_dumps(c.out_body, JSON_COMPACT);
    if (text)
        dc_respond(req, c.out_status, c.out_content_type ? c.out_content_type : "application/json",
                   text, strlen(text));
    else
        dc_respond(req, 500, "text/plain", "out of memory", 13);
    if (c.out_status >= 400 || getenv("DEVCLUSTER_LOG_REQUESTS"))
        lb_info("request method=%s path=%s user=%s status=%d", dc_req_method(req), path,
                c.user[0] ? c.user : "-", c.out_status);
    free(text);
    json_decref(c.out_body);
}

/* ---- start and stop ---- */

static void
put_builtin(dc_apiserver *a, const char *key, const char *ns, json_t *obj)
{
    json_t *existing = NULL;
    const char *name = dc_api_meta_str(obj, "name");
    if (dc_store_get(a->store, key, ns, name, &existing) == 0) {
        json_decref(existing);
        json_decref(obj);
        return;
    }
    char uid[37], now[32];
    new_uid(uid);
    dc_api_now(now, sizeof now);
    json_t *m = json_object_get(obj, "metadata");
    json_object_set_new(m, "uid", json_string(uid));
    json_object_set_new(m, "creationTimestamp", json_string(now));
    dc_store_put(a->store, key, ns, name, obj, DC_ADDED);
    json_decref(obj);
}

/* The objects every cluster starts with. */
static void
bootstrap(dc_apiserver *a)
{
    static const char *const namespaces[] = {"default", "kube-system", "kube-public",
                                             "kube-node-lease"};
    for (size_t i = 0; i < 4; i++) {
        json_t *ns = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:[s]}, s:{s:s}}", "apiVersion",
                               "v1", "kind", "Namespace", "metadata", "name", namespaces[i],
                               "labels", "kubernetes.io/metadata.name", namespaces[i], "spec",
                               "finalizers", "kubernetes", "status", "phase", "Active");
        put_builtin(a, "/namespaces", "", ns);
        put_builtin(a, "/serviceaccounts", namespaces[i],
                    json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind",
                              "ServiceAccount", "metadata", "name", "default", "namespace",
                              namespaces[i]));
        put_builtin(a, "/configmaps", namespaces[i],
                    json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion", "v1", "kind",
                              "ConfigMap", "metadata", "name", "kube-root-ca.crt", "namespace",
                              namespaces[i], "data", "ca.crt", a->pki.ca_pem));
    }
    put_builtin(a, "/services", "default",
                json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}}, s:{s:s, s:s, s:[s], "
                          "s:[{s:s, s:i, s:s, s:i}], s:s}}",
                          "apiVersion", "v1", "kind", "Service", "metadata", "name", "kubernetes",
                          "namespace", "default", "labels", "component", "apiserver", "provider",
                          "kubernetes", "spec", "type", "ClusterIP", "clusterIP", "10.96.0.1",
                          "clusterIPs", "10.96.0.1", "ports", "name", "https", "port", 443,
                          "protocol", "TCP", "targetPort", a->config.port ? a->config.port : 6443,
                          "sessionAffinity", "None"));
    /* the endpoints name the address and port this start listens on */
    json_t *ep = NULL;
    if (dc_store_get(a->store, "/endpoints", "default", "kubernetes", &ep) == 0)
        json_decref(ep);
    json_t *want = json_pack("{s:s, s:s, s:{s:s, s:s}, s:[{s:[{s:s}], s:[{s:s, s:i, s:s}]}]}",
                             "apiVersion", "v1", "kind", "Endpoints", "metadata", "name",
                             "kubernetes", "namespace", "default", "subsets", "addresses", "ip",
                             a->config.address ? a->config.address : "127.0.0.1", "ports", "name",
                             "https", "port", dc_https_port(a->https), "protocol", "TCP");
    char uid[37], now[32];
    new_uid(uid);
    dc_api_now(now, sizeof now);
    json_object_set_new(json_object_get(want, "metadata"), "uid", json_string(uid));
    json_object_set_new(json_object_get(want, "metadata"), "creationTimestamp", json_string(now));
    dc_store_put(a->store, "/endpoints", "default", "kubernetes", want, DC_ADDED);
    json_decref(want);
    /* the admin's rights, visible like a real cluster's */
    put_builtin(a, "rbac.authorization.k8s.io/clusterroles", "",
                json_pack("{s:s, s:s, s:{s:s}, s:[{s:[s], s:[s], s:[s]}, {s:[s], s:[s]}]}",
                          "apiVersion", "rbac.authorization.k8s.io/v1", "kind", "ClusterRole",
                          "metadata", "name", "cluster-admin", "rules", "apiGroups", "*",
                          "resources", "*", "verbs", "*", "nonResourceURLs", "*", "verbs", "*"));
}

int
dc_apiserver_start(const dc_apiserver_config *config, dc_apiserver **out)
{
    dc_apiserver *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->config = *config;
    a->data_dir = strdup(config->data_dir);
    if (!a->config.bookmark_interval_ms)
        a->config.bookmark_interval_ms = 60000;
    if (!a->config.gc_interval_ms)
        a->config.gc_interval_ms = 1000;
    pthread_mutex_init(&a->ip_lock, NULL);
    static const double buckets[] = {LB_METRICS_LATENCY_BUCKETS};
    int rc = lb_metrics_new(&a->metrics);
    if (rc == 0)
        rc = lb_metrics_counter(a->metrics, "apiserver_request_total",
                                "Requests answered, by verb, resource and HTTP code.",
                                "verb,resource,code", &a->requests);
    if (rc == 0)
        rc = lb_metrics_histogram(a->metrics, "apiserver_request_duration_seconds",
                                  "Time to answer a request (watches excluded), by verb.", "verb",
                                  buckets, sizeof buckets / sizeof buckets[0], &a->latency);
    if (rc == 0)
        rc = lb_metrics_gauge(a->metrics, "apiserver_longrunning_requests", "Open watches.", NULL,
                              &a->watches);
    if (rc == 0)
        rc = lb_metrics_gauge_fn(a->metrics, "devcluster_resource_version",
                                 "The last resourceVersion handed out.", read_rv, a);
    if (rc < 0) {
        lb_metrics_free(a->metrics);
        free(a->data_dir);
        free(a);
        return rc;
    }
    rc = dc_pki_load(a->data_dir, config->sans, &a->pki);
    if (rc < 0) {
        lb_error("could not prepare certificates dir=\"%s\": %s", a->data_dir, strerror(-rc));
        goto fail;
    }
    char db[4096];
    snprintf(db, sizeof db, "%s/state.db", a->data_dir);
    rc = dc_store_open(db, config->watch_window, &a->store);
    if (rc < 0)
        goto fail;
    dc_store_lock(a->store);
    dc_resources_reload(a->store);
    dc_store_unlock(a->store);
    dc_https_config hc = {
        .address = config->address,
        .port = config->port,
        .cert_pem = a->pki.cert_pem,
        .key_pem = a->pki.key_pem,
        .max_body = config->max_body,
        .handler = handle,
        .handler_arg = a,
    };
    rc = dc_https_start(&hc, &a->https);
    if (rc < 0) {
        lb_error("could not listen address=%s port=%d: %s",
                 config->address ? config->address : "127.0.0.1", config->port, strerror(-rc));
        goto fail;
    }
    dc_store_lock(a->store);
    bootstrap(a);
    dc_store_unlock(a->store);
    const char *host = config->address ? config->address : "127.0.0.1";
    snprintf(a->url, sizeof a->url, "https://%s:%d", host, dc_https_port(a->https));
    snprintf(a->kubeconfig, sizeof a->kubeconfig, "%s/kubeconfig", a->data_dir);
    rc = dc_pki_write_kubeconfig(&a->pki, a->data_dir, host, dc_https_port(a->https));
    if (rc < 0)
        goto fail;
    char portfile[4096], portnum[16];
    snprintf(portfile, sizeof portfile, "%s/port", a->data_dir);
    snprintf(portnum, sizeof portnum, "%d\n", dc_https_port(a->https));
    lb_write_file_atomic(portfile, portnum, strlen(portnum));
    rc = -pthread_create(&a->gc_thread, NULL, dc_gc_main, a);
    if (rc < 0)
        goto fail;
    lb_info("api server started url=%s kubeconfig=%s", a->url, a->kubeconfig);
    *out = a;
    return 0;
fail:
    dc_https_stop(a->https);
    a->https = NULL;
    dc_store_close(a->store);
    dc_pki_free(&a->pki);
    lb_metrics_free(a->metrics);
    free(a->data_dir);
    free(a);
    return rc < 0 ? rc : -EIO;
}

int
dc_apiserver_port(const dc_apiserver *a)
{
    return dc_https_port(a->https);
}
const char *
dc_apiserver_url(const dc_apiserver *a)
{
    return a->url;
}
const char *
dc_apiserver_token(const dc_apiserver *a)
{
    return a->pki.admin_token;
}
const char *
dc_apiserver_ca_pem(const dc_apiserver *a)
{
    return a->pki.ca_pem;
}
const char *
dc_apiserver_kubeconfig_path(const dc_apiserver *a)
{
    return a->kubeconfig;
}

void
dc_apiserver_stop(dc_apiserver *a)
{
    if (!a)
        return;
    atomic_store(&a->stopping, true);
    dc_store_lock(a->store);
    dc_store_broadcast(a->store);
    dc_store_unlock(a->store);
    pthread_join(a->gc_thread, NULL);
    dc_https_stop(a->https);
    dc_store_lock(a->store);
    dc_resources_free();
    dc_store_unlock(a->store);
    dc_store_close(a->store);
    dc_pki_free(&a->pki);
    lb_metrics_free(a->metrics);
    free(a->data_dir);
    free(a);
}
