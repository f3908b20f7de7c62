/*
 * cluster.c: the LakebaseCluster reconcile.
 *
 * Level-triggered and idempotent: each pass reads the cluster, checks its
 * spec, and makes sure every object it owns exists as it should (names in
 * controller.h), then writes status through /status. Nothing here depends on
 * what a previous pass did or remembered: a controller killed at any point
 * converges on the next pass, and creating what already exists is a no-op
 * (ctl_apply, ctl_ensure_secret). Secrets are made once and never changed:
 * keys, tokens and passwords survive every reconcile and every controller.
 *
 * Credentials (docs/auth.md): the signing key stays in N-signing, read by
 * nobody but the controller; each safekeeper and pageserver mounts only its
 * role's token Secret and finds its own token by its pod name; computes get
 * their own token from their Branch's Secret (branch.c).
 *
 * Deletion: the finalizer lakebase.io/cluster holds the cluster until every
 * Branch of it is gone (their own finalizers run first) and the claims of
 * its StatefulSets (which Kubernetes keeps) are deleted; everything else it
 * owns goes with the garbage collector through ownerReferences.
 *
 * Immutable fields (postgresVersion, objectStorage) are checked by the CRD's
 * CEL rules on a real API server; the controller also keeps a hash of them
 * in the annotation lakebase.io/immutable-hash and refuses to act on a
 * changed one (condition Ready=False, reason ImmutableFieldChanged), for API
 * servers that do not run CEL.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conditions.h"
#include "controller.h"
#include "credentials.h"
#include "errors.h"
#include "log.h"
#include "quantity.h"

/* Object names are bounded by Kubernetes (a namespace and a cluster name at
 * most 63 characters each), and the buffers below hold the longest names
 * built from them; GCC cannot see that bound. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define IMMUTABLE_ANNOTATION "lakebase.io/immutable-hash"

/* Settings compute-ctl owns or durability rests on (compute/spec.c); the
 * CRD refuses them too. */
static const char *const refused_parameters[] = {
    "synchronous_standby_names",
    "synchronous_commit",
    "fsync",
    "full_page_writes",
    "wal_level",
    "archive_mode",
    "archive_command",
    "archive_library",
    "restore_command",
    "primary_conninfo",
    "primary_slot_name",
    "port",
    "data_directory",
    "hba_file",
    "ident_file",
    "listen_addresses",
    NULL,
};

static int bad(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int
bad(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return LB_EBADCONFIG;
}

static int
check_size(const json_t *v, const char *field, char *why, size_t cap)
{
    int64_t n;
    char buf[64];
    const char *s = json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        s = buf;
    }
    if (v && (!s || lb_quantity_parse(s, &n) != 0 || n <= 0))
        return bad(why, cap, "%s \"%s\" is not a positive quantity such as \"1Gi\"", field,
                   s ? s : "?");
    return 0;
}

static int
check_duration(const json_t *v, const char *field, char *why, size_t cap)
{
    int64_t ms;
    if (v && (!json_is_string(v) || lb_duration_parse(json_string_value(v), &ms) != 0))
        return bad(why, cap, "%s \"%s\" is not a duration such as \"5m\" or \"168h\"", field,
                   json_is_string(v) ? json_string_value(v) : "?");
    return 0;
}

/* The checks the schema makes, and those it cannot. 0 or LB_EBADCONFIG. */
int ctl_cluster_validate(const json_t *spec, char *why, size_t cap);
int
ctl_cluster_validate(const json_t *spec, char *why, size_t cap)
{
    if (!json_is_object(spec))
        return bad(why, cap, "spec is missing");
    json_t *pv = json_object_get(spec, "postgresVersion");
    if (pv && json_integer_value(pv) != 15)
        return bad(why, cap, "spec.postgresVersion must be 15");
    json_t *sk = ctl_at(spec, "safekeepers.replicas");
    if (sk && json_integer_value(sk) != 3 && json_integer_value(sk) != 5) {
        char n[32];
        snprintf(n, sizeof(n), "%lld", (long long)json_integer_value(sk));
        return bad(why, cap,
                   "spec.safekeepers.replicas is %s: it must be 3 or 5 (a majority of them "
                   "must be up to commit)",
                   n);
    }
    json_t *ps = ctl_at(spec, "pageservers.replicas");
    if (ps && json_integer_value(ps) < 1)
        return bad(why, cap, "spec.pageservers.replicas must be at least 1");
    json_t *os = json_object_get(spec, "objectStorage");
    json_t *s3 = json_object_get(os, "s3"), *vol = json_object_get(os, "volume");
    if (!os || !s3 == !vol)
        return bad(why, cap, "spec.objectStorage needs exactly one of s3 or volume");
    if (s3) {
        const char *bucket = json_string_value(json_object_get(s3, "bucket"));
        if (!bucket || !*bucket)
            return bad(why, cap, "spec.objectStorage.s3.bucket is required");
    }
    if (vol && ps && json_integer_value(ps) > 1)
        return bad(why, cap,
                   "spec.objectStorage.volume is for one pageserver only (a claim one pod "
                   "mounts); use s3 with more pageservers");
    int rc;
    if ((rc = check_size(ctl_at(spec, "safekeepers.storage.size"), "spec.safekeepers.storage.size",
                         why, cap)) ||
        (rc = check_size(ctl_at(spec, "pageservers.storage.size"), "spec.pageservers.storage.size",
                         why, cap)) ||
        (rc = check_size(vol ? json_object_get(vol, "size") : NULL,
                         "spec.objectStorage.volume.size", why, cap)) ||
        (rc = check_duration(ctl_at(spec, "pageservers.gcRetention"),
                             "spec.pageservers.gcRetention", why, cap)) ||
        (rc = check_duration(ctl_at(spec, "compute.suspendTimeout"), "spec.compute.suspendTimeout",
                             why, cap)))
        return rc;
    const char *key;
    json_t *v;
    json_object_foreach(ctl_at(spec, "compute.parameters"), key, v)
    {
        if (!json_is_string(v))
            return bad(why, cap, "spec.compute.parameters.%s must be a string", key);
        for (int i = 0; refused_parameters[i]; i++)
            if (strcasecmp(key, refused_parameters[i]) == 0)
                return bad(why, cap,
                           "spec.compute.parameters.%s is refused: lakebase sets it itself "
                           "(durability or compute-ctl's own setting)",
                           key);
    }
    return 0;
}

/* ---- names ---- */

static void
fqdn(char *buf, size_t cap, const char *pod, const char *svc, const char *ns)
{
    snprintf(buf, cap, "%s.%s.%s.svc.cluster.local", pod, svc, ns);
}

static void
path_of(char *buf, size_t cap, const char *ns, const char *name)
{
    ctl_kube_path(buf, cap, CTL_GROUP_VERSION, ns, "lakebaseclusters", name, NULL);
}

static const char *
image_of(const ctl_ctx *c, const json_t *spec, const char *which)
{
    const char *v = ctl_str_at(spec, which[0] == 's'   ? "images.safekeeper"
                                     : which[0] == 'p' ? "images.pageserver"
                                                       : "images.compute");
    if (v && *v)
        return v;
    return which[0] == 's'   ? c->opts->safekeeper_image
           : which[0] == 'p' ? c->opts->pageserver_image
                             : c->opts->compute_image;
}

/* ---- pieces of pods ---- */

static json_t *
pod_security(void)
{
    return json_pack("{s:b, s:i, s:i, s:i, s:{s:s}}", "runAsNonRoot", 1, "runAsUser", 65532,
                     "runAsGroup", 65532, "fsGroup", 65532, "seccompProfile", "type",
                     "RuntimeDefault");
}

static json_t *
container_security(void)
{
    return json_pack("{s:b, s:{s:[s]}}", "allowPrivilegeEscalation", 0, "capabilities", "drop",
                     "ALL");
}

static json_t *
claim_template(const char *name, const json_t *storage, json_t *labels)
{
    json_t *size = json_object_get(storage, "size");
    json_t *t = json_pack("{s:{s:s, s:o}, s:{s:[s], s:{s:{s:O}}}}", "metadata", "name", name,
                          "labels", labels, "spec", "accessModes", "ReadWriteOnce", "resources",
                          "requests", "storage", size ? size : json_string("1Gi"));
    const char *sc = json_string_value(json_object_get(storage, "storageClassName"));
    if (t && sc && *sc)
        json_object_set_new(json_object_get(t, "spec"), "storageClassName", json_string(sc));
    return t;
}

static json_t *
secret_volume(const char *name, const char *secret)
{
    return json_pack("{s:s, s:{s:s, s:i}}", "name", name, "secret", "secretName", secret,
                     "defaultMode", 0440);
}

static json_t *
configmap_volume(const char *name, const char *cm)
{
    return json_pack("{s:s, s:{s:s}}", "name", name, "configMap", "name", cm);
}

static json_t *
mount(const char *name, const char *path)
{
    return json_pack("{s:s, s:s, s:b}", "name", name, "mountPath", path, "readOnly",
                     strcmp(name, "data") != 0 && strcmp(name, "store") != 0);
}

/* ---- the reconcile ---- */

typedef struct cluster_pass {
    ctl_ctx *c;
    ctl_kube *k;
    json_t *obj; /* the LakebaseCluster */
    json_t *spec;
    const char *ns, *name;
    char tenant[40];
    lb_auth_signer *signer;
    char sk_fqdn[5][300];
    int sk_replicas, ps_replicas;
} cluster_pass;

static int
apply_in_ns(cluster_pass *p, const char *gv, const char *resource, json_t *desired,
            json_t **current)
{
    char coll[512];
    ctl_kube_path(coll, sizeof(coll), gv, p->ns, resource, NULL, NULL);
    int rc = ctl_apply(p->k, coll, desired, current);
    if (rc)
        lb_warn("could not apply %s=%s/%s: %s", resource, p->ns, ctl_meta_str(desired, "name"),
                ctl_kube_error(p->k));
    return rc;
}

static int
credentials(cluster_pass *p)
{
    char sname[300];
    int rc;
    /* the signing key and the tenant id: made once */
    char *priv = NULL, *pub = NULL;
    if ((rc = ctl_keygen(&priv, &pub)))
        return rc;
    char tenant[40];
    if ((rc = ctl_random_id(tenant, sizeof(tenant)))) {
        ctl_secret_free(priv);
        free(pub);
        return rc;
    }
    snprintf(sname, sizeof(sname), "%s-signing", p->name);
    json_t *meta =
        ctl_object("v1", "Secret", p->ns, sname, ctl_labels(p->name, "controller", NULL), p->obj);
    json_t *sd =
        json_pack("{s:s, s:s, s:s}", "signing.key", priv, "signing.pem", pub, "tenant-id", tenant);
    json_t *data = NULL;
    rc = meta && sd ? ctl_ensure_secret(p->k, p->ns, meta, sd, &data) : -ENOMEM;
    ctl_secret_free(priv);
    free(pub);
    json_decref(meta);
    json_decref(sd);
    if (rc) {
        lb_warn("could not ensure secret=%s/%s: %s", p->ns, sname, ctl_kube_error(p->k));
        return rc;
    }
    const char *key = json_string_value(json_object_get(data, "signing.key"));
    const char *pem = json_string_value(json_object_get(data, "signing.pem"));
    const char *tid = json_string_value(json_object_get(data, "tenant-id"));
    if (!key || !pem || !tid || strlen(tid) != 32) {
        json_decref(data);
        lb_error("secret=%s/%s lacks signing.key, signing.pem or tenant-id", p->ns, sname);
        return LB_EPROTO;
    }
    snprintf(p->tenant, sizeof(p->tenant), "%s", tid);
    rc = ctl_signer_from_pem(key, strlen(key), &p->signer);
    if (rc == 0) {
        char cm[300];
        snprintf(cm, sizeof(cm), "%s-auth-keys", p->name);
        json_t *o = ctl_object("v1", "ConfigMap", p->ns, cm,
                               ctl_labels(p->name, "controller", NULL), p->obj);
        json_object_set_new(o, "data", json_pack("{s:s}", "signing.pem", pem));
        rc = apply_in_ns(p, "v1", "configmaps", o, NULL);
        json_decref(o);
    }
    json_t *v = json_object_get(data, "signing.key");
    if (v)
        explicit_bzero((char *)json_string_value(v), strlen(json_string_value(v)));
    json_decref(data);
    if (rc)
        return rc;

    /* one token per daemon, by its pod name */
    const char *roles[] = {"safekeeper", "pageserver"};
    int counts[] = {5, p->ps_replicas};
    for (int r = 0; r < 2; r++) {
        json_t *toks = json_object();
        for (int i = 0; i < counts[r]; i++) {
            char pod[300];
            snprintf(pod, sizeof(pod), "%s-%s-%d", p->name, roles[r], i);
            char *t = NULL;
            rc = ctl_mint(p->signer, r == 0 ? LB_AUTH_SAFEKEEPER : LB_AUTH_PAGESERVER, pod, NULL,
                          NULL, NULL, &t);
            if (rc) {
                json_decref(toks);
                return rc;
            }
            json_object_set_new(toks, pod, json_string(t));
            ctl_secret_free(t);
        }
        snprintf(sname, sizeof(sname), "%s-%s-tokens", p->name, roles[r]);
        meta =
            ctl_object("v1", "Secret", p->ns, sname, ctl_labels(p->name, roles[r], NULL), p->obj);
        rc = ctl_ensure_secret(p->k, p->ns, meta, toks, NULL);
        json_decref(meta);
        json_decref(toks);
        if (rc)
            return rc;
    }

    /* passwords */
    char pw[40];
    if ((rc = ctl_password(pw, sizeof(pw))))
        return rc;
    snprintf(sname, sizeof(sname), "%s-sk-password", p->name);
    meta =
        ctl_object("v1", "Secret", p->ns, sname, ctl_labels(p->name, "safekeeper", NULL), p->obj);
    sd = json_pack("{s:s}", "password", pw);
    rc = ctl_ensure_secret(p->k, p->ns, meta, sd, NULL);
    json_decref(meta);
    json_decref(sd);
    if (rc)
        return rc;
    if (!ctl_str_at(p->spec, "superuserSecret.name")) {
        if ((rc = ctl_password(pw, sizeof(pw))))
            return rc;
        snprintf(sname, sizeof(sname), "%s-superuser", p->name);
        meta =
            ctl_object("v1", "Secret", p->ns, sname, ctl_labels(p->name, "compute", NULL), p->obj);
        sd = json_pack("{s:s, s:s}", "username", "postgres", "password", pw);
        rc = ctl_ensure_secret(p->k, p->ns, meta, sd, NULL);
        json_decref(meta);
        json_decref(sd);
        if (rc)
            return rc;
    }
    /* The lake's read-only token (role analytics: the pageserver's Iceberg
     * REST catalog and lake status of this tenant, nothing else), for the
     * user's analytics engines. */
    char *atok = NULL;
    if ((rc = ctl_mint(p->signer, LB_AUTH_ANALYTICS, "analytics", p->tenant, NULL, NULL, &atok)))
        return rc;
    char ps[400];
    snprintf(ps, sizeof(ps), "http://%s-pageserver-0.%s-pageserver.%s.svc.cluster.local:%d",
             p->name, p->name, p->ns, CTL_PS_HTTP_PORT);
    snprintf(sname, sizeof(sname), "%s-analytics", p->name);
    meta =
        ctl_object("v1", "Secret", p->ns, sname, ctl_labels(p->name, "pageserver", NULL), p->obj);
    sd = json_pack("{s:s, s:s, s:s}", "token", atok, "tenant-id", p->tenant, "pageserver", ps);
    rc = ctl_ensure_secret(p->k, p->ns, meta, sd, NULL);
    ctl_secret_free(atok);
    json_decref(meta);
    json_decref(sd);
    if (rc)
        return rc;

    if ((rc = ctl_password(pw, sizeof(pw))))
        return rc;
    char host[300], port[16], uri[600];
    snprintf(host, sizeof(host), "%s.%s.svc.cluster.local", p->name, p->ns);
    snprintf(port, sizeof(port), "%d", CTL_PG_PORT);
    snprintf(uri, sizeof(uri), "postgresql://app:%s@%s:%d/postgres", pw, host, CTL_PG_PORT);
    snprintf(sname, sizeof(sname), "%s-app", p->name);
    meta = ctl_object("v1", "Secret", p->ns, sname, ctl_labels(p->name, "compute", NULL), p->obj);
    sd = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "username", "app", "password", pw, "host",
                   host, "port", port, "dbname", "postgres", "uri", uri);
    rc = ctl_ensure_secret(p->k, p->ns, meta, sd, NULL);
    explicit_bzero(pw, sizeof(pw));
    explicit_bzero(uri, sizeof(uri));
    json_decref(meta);
    json_decref(sd);
    return rc;
}

static char *
remote_storage_url(cluster_pass *p)
{
    json_t *s3 = ctl_at(p->spec, "objectStorage.s3");
    lb_buf u = LB_BUF_INIT;
    if (!s3) {
        lb_buf_printf(&u, "file:///store/lakebase");
    } else {
        const char *prefix = json_string_value(json_object_get(s3, "prefix"));
        lb_buf_printf(&u, "s3://%s/%s", json_string_value(json_object_get(s3, "bucket")),
                      prefix && *prefix ? prefix : p->name);
        const char *region = json_string_value(json_object_get(s3, "region"));
        const char *endpoint = json_string_value(json_object_get(s3, "endpoint"));
        char sep = '?';
        if (endpoint && *endpoint) {
            lb_buf_printf(&u, "%cendpoint=%s", sep, endpoint);
            sep = '&';
        }
        lb_buf_printf(&u, "%cregion=%s", sep, region && *region ? region : "us-east-1");
        if (json_is_true(json_object_get(s3, "forcePathStyle")))
            lb_buf_printf(&u, "&addressing=path");
    }
    return u.data;
}

/* The StatefulSet of a data-plane daemon (safekeeper or pageserver): N-<component>,
 * governed by its headless Service of the same name, pods started in
 * parallel, one claim "data" each (spec.<component>s.storage). Takes pod. */
static int
data_statefulset(cluster_pass *p, const char *component, int replicas, json_t *pod, json_t **sts)
{
    char svc[300], storage[64];
    snprintf(svc, sizeof(svc), "%s-%s", p->name, component);
    snprintf(storage, sizeof(storage), "%ss.storage", component);
    json_t *o = ctl_object("apps/v1", "StatefulSet", p->ns, svc,
                           ctl_labels(p->name, component, NULL), p->obj);
    json_object_set_new(o, "spec",
                        json_pack("{s:s, s:i, s:s, s:{s:{s:s, s:s}}, s:o, s:[o], s:{s:s}}",
                                  "serviceName", svc, "replicas", replicas, "podManagementPolicy",
                                  "Parallel", "selector", "matchLabels", "lakebase.io/cluster",
                                  p->name, "app.kubernetes.io/component", component, "template",
                                  pod, "volumeClaimTemplates",
                                  claim_template("data", ctl_at(p->spec, storage),
                                                 ctl_labels(p->name, component, NULL)),
                                  "updateStrategy", "type", "RollingUpdate"));
    int rc =
        json_object_get(o, "spec") ? apply_in_ns(p, "apps/v1", "statefulsets", o, sts) : -ENOMEM;
    json_decref(o);
    return rc;
}

/* The environment of a daemon that reaches object storage: POD_NAME, and
 * with spec.objectStorage.s3.credentialsSecret the AWS keys as
 * secretKeyRefs (never literals). */
static json_t *
store_env(cluster_pass *p)
{
    json_t *env = json_pack("[{s:s, s:{s:{s:s}}}]", "name", "POD_NAME", "valueFrom", "fieldRef",
                            "fieldPath", "metadata.name");
    json_t *cred = ctl_at(p->spec, "objectStorage.s3.credentialsSecret");
    if (env && cred) {
        const char *cname = json_string_value(json_object_get(cred, "name"));
        const char *ak = json_string_value(json_object_get(cred, "accessKeyIdKey"));
        const char *sk = json_string_value(json_object_get(cred, "secretAccessKeyKey"));
        json_array_append_new(env, json_pack("{s:s, s:{s:{s:s, s:s}}}", "name", "AWS_ACCESS_KEY_ID",
                                             "valueFrom", "secretKeyRef", "name", cname, "key",
                                             ak ? ak : "AWS_ACCESS_KEY_ID"));
        json_array_append_new(env,
                              json_pack("{s:s, s:{s:{s:s, s:s}}}", "name", "AWS_SECRET_ACCESS_KEY",
                                        "valueFrom", "secretKeyRef", "name", cname, "key",
                                        sk ? sk : "AWS_SECRET_ACCESS_KEY"));
    }
    return env;
}

/* spec.superuserSecret names a Secret of the user's: it must exist and
 * hold a password compute-ctl takes (pgauth.c, cc_secret_read: printable
 * ASCII, no space at either end), else the computes could not start. 0,
 * or LB_EBADCONFIG with why; other errors (the API) also fill why. */
static int
superuser_secret_check(cluster_pass *p, char *why, size_t cap)
{
    const char *name = ctl_str_at(p->spec, "superuserSecret.name");
    if (!name)
        return 0;
    char path[1024];
    ctl_kube_path(path, sizeof(path), "v1", p->ns, "secrets", name, NULL);
    json_t *sec = NULL;
    int rc = ctl_kube_get(p->k, path, &sec);
    if (rc == LB_ENOTFOUND)
        return bad(why, cap, "Secret \"%s\" named by spec.superuserSecret does not exist", name);
    if (rc) {
        snprintf(why, cap, "could not read Secret \"%s\": %s", name, ctl_kube_error(p->k));
        return rc;
    }
    const char *pw64 = json_string_value(json_object_get(json_object_get(sec, "data"), "password"));
    unsigned char pw[256];
    int n = pw64 ? ctl_b64_decode(pw64, strlen(pw64), pw, sizeof(pw)) : -1;
    json_decref(sec);
    const char *what = NULL;
    if (!pw64)
        what = "has no key \"password\"";
    else if (n <= 0 || n >= (int)sizeof(pw))
        what = "has an empty or too long \"password\" (1 to 255 characters)";
    for (int i = 0; !what && i < n; i++)
        if (pw[i] < 0x20 || pw[i] > 0x7e)
            what = "has a \"password\" that is not printable ASCII";
    if (!what && (pw[0] == ' ' || pw[n - 1] == ' '))
        what = "has a \"password\" that starts or ends with a space";
    explicit_bzero(pw, sizeof(pw));
    if (what)
        return bad(why, cap, "Secret \"%s\" named by spec.superuserSecret %s", name, what);
    return 0;
}

static int
safekeepers(cluster_pass *p, json_t **sts)
{
    char svc[300], cm[300], buf[600];
    snprintf(svc, sizeof(svc), "%s-safekeeper", p->name);
    /* WAL offload with s3 only: a volume (one machine) is the pageserver's
     * claim alone, and the safekeepers keep their WAL on their own disks */
    char *remote = ctl_at(p->spec, "objectStorage.s3") ? remote_storage_url(p) : NULL;
    /* one configuration file per safekeeper: its peers are the others */
    json_t *files = json_object();
    for (int i = 0; i < p->sk_replicas; i++) {
        lb_buf y = LB_BUF_INIT;
        lb_buf_printf(&y,
                      "# written by lakebase-controller for %s-%d\n"
                      "data_dir: /data/safekeeper\n"
                      "# its own DNS name, not 0.0.0.0: a compute names the donor of WAL by\n"
                      "# this URL, and the safekeeper knows the URL as its own by this name\n"
                      "listen_http: %s:%d\n"
                      "listen_pg: 0.0.0.0:%d\n"
                      "auth_public_keys: /etc/lakebase/keys\n"
                      "compute_password_file: /etc/lakebase/sk-password/password\n"
                      "peers:\n",
                      svc, i, p->sk_fqdn[i], CTL_SK_HTTP_PORT, CTL_SK_PG_PORT);
        for (int j = 0; j < p->sk_replicas; j++)
            if (j != i)
                lb_buf_printf(&y, "  - %s-%d=%s:%d\n", svc, j, p->sk_fqdn[j], CTL_SK_PG_PORT);
        lb_buf_printf(&y, "peers_http:\n");
        for (int j = 0; j < p->sk_replicas; j++)
            if (j != i)
                lb_buf_printf(&y, "  - %s-%d=%s:%d\n", svc, j, p->sk_fqdn[j], CTL_SK_HTTP_PORT);
        if (remote)
            lb_buf_printf(&y,
                          "# completed WAL segments go to the pageserver's object store, where\n"
                          "# it reads them (<tenant>/<timeline>/wal/); then local ones no\n"
                          "# consumer needs are removed\n"
                          "remote_storage: \"%s\"\n",
                          remote);
        snprintf(buf, sizeof(buf), "%s-%d.yaml", svc, i);
        json_object_set_new(files, buf, json_stringn(y.data ? y.data : "", y.len));
        lb_buf_free(&y);
    }
    free(remote);
    snprintf(cm, sizeof(cm), "%s-safekeeper", p->name);
    json_t *o =
        ctl_object("v1", "ConfigMap", p->ns, cm, ctl_labels(p->name, "safekeeper", NULL), p->obj);
    json_object_set_new(o, "data", files);
    char cmhash[17];
    ctl_json_hash(files, cmhash);
    int rc = apply_in_ns(p, "v1", "configmaps", o, NULL);
    json_decref(o);
    if (rc)
        return rc;

    o = ctl_object("v1", "Service", p->ns, svc, ctl_labels(p->name, "safekeeper", NULL), p->obj);
    json_object_set_new(o, "spec",
                        json_pack("{s:s, s:b, s:{s:s, s:s}, s:[{s:s, s:i, s:s}, {s:s, s:i, s:s}]}",
                                  "clusterIP", "None", "publishNotReadyAddresses", 1, "selector",
                                  "lakebase.io/cluster", p->name, "app.kubernetes.io/component",
                                  "safekeeper", "ports", "name", "pg", "port", CTL_SK_PG_PORT,
                                  "protocol", "TCP", "name", "http", "port", CTL_SK_HTTP_PORT,
                                  "protocol", "TCP"));
    rc = apply_in_ns(p, "v1", "services", o, NULL);
    json_decref(o);
    if (rc)
        return rc;

    /* listen_http is the pod's own DNS name, which must resolve before the
     * safekeeper binds it: the kubelet writes it into /etc/hosts before the
     * container starts, but a cluster DNS may take a moment */
    static const char wait_for_own_name[] =
        "for i in $(seq 600); do getent hosts \"$0\" >/dev/null && break; sleep 0.2; done; "
        "exec /usr/local/bin/safekeeper \"$@\"";
    char fqdn_arg[400];
    snprintf(fqdn_arg, sizeof(fqdn_arg), "$(POD_NAME).%s.%s.svc.cluster.local", svc, p->ns);
    char sktok[300], skpw[300], keys[300];
    snprintf(sktok, sizeof(sktok), "%s-safekeeper-tokens", p->name);
    snprintf(skpw, sizeof(skpw), "%s-sk-password", p->name);
    snprintf(keys, sizeof(keys), "%s-auth-keys", p->name);
    json_t *container = json_pack(
        "{s:s, s:s, s:[s, s, s], s:[s, s, s, s, s, s, s], s:o, s:[{s:s, s:i}, "
        "{s:s, s:i}], s:{s:{s:s, s:i}, s:i, s:i}, s:{s:{s:i}, s:i, s:i, s:i}, s:o, s:[o, o, o, o, "
        "o]}",
        "name", "safekeeper", "image", image_of(p->c, p->spec, "safekeeper"), "command", "/bin/sh",
        "-c", wait_for_own_name, "args", fqdn_arg, "-c", "/etc/lakebase/config/$(POD_NAME).yaml",
        "--id", "$(POD_NAME)", "--auth_token_file", "/etc/lakebase/tokens/$(POD_NAME)", "env",
        store_env(p), "ports", "name", "pg", "containerPort", CTL_SK_PG_PORT, "name", "http",
        "containerPort", CTL_SK_HTTP_PORT, "readinessProbe", "httpGet", "path", "/healthz", "port",
        CTL_SK_HTTP_PORT, "periodSeconds", 2, "failureThreshold", 3, "livenessProbe", "tcpSocket",
        "port", CTL_SK_PG_PORT, "periodSeconds", 10, "failureThreshold", 6, "initialDelaySeconds",
        10, "securityContext", container_security(), "volumeMounts", mount("data", "/data"),
        mount("config", "/etc/lakebase/config"), mount("keys", "/etc/lakebase/keys"),
        mount("tokens", "/etc/lakebase/tokens"), mount("sk-password", "/etc/lakebase/sk-password"));
    json_t *res = ctl_at(p->spec, "safekeepers.resources");
    if (container && json_is_object(res) && json_object_size(res))
        json_object_set(container, "resources", res);
    json_t *template_labels = ctl_labels(p->name, "safekeeper", NULL);
    json_t *pod = json_pack("{s:{s:o, s:{s:s}}, s:{s:o, s:i, s:[o], s:[o, o, o, o]}}", "metadata",
                            "labels", template_labels, "annotations", "lakebase.io/config-hash",
                            cmhash, "spec", "securityContext", pod_security(),
                            "terminationGracePeriodSeconds", 30, "containers", container, "volumes",
                            configmap_volume("config", cm), configmap_volume("keys", keys),
                            secret_volume("tokens", sktok), secret_volume("sk-password", skpw));
    return data_statefulset(p, "safekeeper", p->sk_replicas, pod, sts);
}

static int
pageservers(cluster_pass *p, json_t **sts)
{
    char svc[300], cm[300];
    snprintf(svc, sizeof(svc), "%s-pageserver", p->name);
    snprintf(cm, sizeof(cm), "%s-pageserver", p->name);
    char *remote = remote_storage_url(p);
    const char *gc = ctl_str_at(p->spec, "pageservers.gcRetention");
    int64_t gc_ms = 0;
    if (!gc || lb_duration_parse(gc, &gc_ms) != 0)
        gc_ms = 168LL * 3600 * 1000;
    lb_buf y = LB_BUF_INIT;
    lb_buf_printf(&y,
                  "# written by lakebase-controller\n"
                  "data_dir: /data/pageserver\n"
                  "listen_http: 0.0.0.0:%d\n"
                  "remote_storage: \"%s\"\n"
                  "auth_public_keys: /etc/lakebase/keys\n"
                  "gc_retention: %llds\n",
                  CTL_PS_HTTP_PORT, remote ? remote : "", (long long)(gc_ms / 1000));
    free(remote);
    json_t *o =
        ctl_object("v1", "ConfigMap", p->ns, cm, ctl_labels(p->name, "pageserver", NULL), p->obj);
    json_object_set_new(o, "data",
                        json_pack("{s:s%}", "pageserver.yaml", y.data ? y.data : "", y.len));
    char cmhash[17];
    ctl_json_hash(json_object_get(o, "data"), cmhash);
    lb_buf_free(&y);
    int rc = apply_in_ns(p, "v1", "configmaps", o, NULL);
    json_decref(o);
    if (rc)
        return rc;

    o = ctl_object("v1", "Service", p->ns, svc, ctl_labels(p->name, "pageserver", NULL), p->obj);
    json_object_set_new(o, "spec",
                        json_pack("{s:s, s:b, s:{s:s, s:s}, s:[{s:s, s:i, s:s}]}", "clusterIP",
                                  "None", "publishNotReadyAddresses", 1, "selector",
                                  "lakebase.io/cluster", p->name, "app.kubernetes.io/component",
                                  "pageserver", "ports", "name", "http", "port", CTL_PS_HTTP_PORT,
                                  "protocol", "TCP"));
    rc = apply_in_ns(p, "v1", "services", o, NULL);
    json_decref(o);
    if (rc)
        return rc;

    json_t *vol = ctl_at(p->spec, "objectStorage.volume");
    char claim[300];
    snprintf(claim, sizeof(claim), "%s-objstore", p->name);
    if (vol) {
        json_t *t = claim_template(claim, vol, ctl_labels(p->name, "pageserver", NULL));
        o = ctl_object("v1", "PersistentVolumeClaim", p->ns, claim,
                       ctl_labels(p->name, "pageserver", NULL), p->obj);
        json_object_set(o, "spec", json_object_get(t, "spec"));
        json_decref(t);
        rc = apply_in_ns(p, "v1", "persistentvolumeclaims", o, NULL);
        json_decref(o);
        if (rc)
            return rc;
    }

    char pstok[300], keys[300];
    snprintf(pstok, sizeof(pstok), "%s-pageserver-tokens", p->name);
    snprintf(keys, sizeof(keys), "%s-auth-keys", p->name);
    json_t *mounts =
        json_pack("[o, o, o, o]", mount("data", "/data"), mount("config", "/etc/lakebase/config"),
                  mount("keys", "/etc/lakebase/keys"), mount("tokens", "/etc/lakebase/tokens"));
    json_t *volumes = json_pack("[o, o, o]", configmap_volume("config", cm),
                                configmap_volume("keys", keys), secret_volume("tokens", pstok));
    json_t *env = store_env(p);
    if (vol) {
        json_array_append_new(mounts, mount("store", "/store"));
        json_array_append_new(volumes, json_pack("{s:s, s:{s:s}}", "name", "store",
                                                 "persistentVolumeClaim", "claimName", claim));
    }
    json_t *container = json_pack(
        "{s:s, s:s, s:[s], s:[s, s, s, s], s:o, s:[{s:s, s:i}], s:{s:{s:s, s:i}, s:i, s:i}, "
        "s:{s:{s:i}, s:i, s:i, s:i}, s:o, s:o}",
        "name", "pageserver", "image", image_of(p->c, p->spec, "pageserver"), "command",
        "/usr/local/bin/pageserver", "args", "-c", "/etc/lakebase/config/pageserver.yaml",
        "--auth_token_file", "/etc/lakebase/tokens/$(POD_NAME)", "env", env, "ports", "name",
        "http", "containerPort", CTL_PS_HTTP_PORT, "readinessProbe", "httpGet", "path", "/healthz",
        "port", CTL_PS_HTTP_PORT, "periodSeconds", 2, "failureThreshold", 3, "livenessProbe",
        "tcpSocket", "port", CTL_PS_HTTP_PORT, "periodSeconds", 10, "failureThreshold", 6,
        "initialDelaySeconds", 10, "securityContext", container_security(), "volumeMounts", mounts);
    json_t *res = ctl_at(p->spec, "pageservers.resources");
    if (container && json_is_object(res) && json_object_size(res))
        json_object_set(container, "resources", res);
    json_t *pod =
        json_pack("{s:{s:o, s:{s:s}}, s:{s:o, s:i, s:[o], s:o}}", "metadata", "labels",
                  ctl_labels(p->name, "pageserver", NULL), "annotations", "lakebase.io/config-hash",
                  cmhash, "spec", "securityContext", pod_security(),
                  "terminationGracePeriodSeconds", 30, "containers", container, "volumes", volumes);
    return data_statefulset(p, "pageserver", p->ps_replicas, pod, sts);
}

static int
endpoint_service(cluster_pass *p)
{
    char main_branch[300];
    snprintf(main_branch, sizeof(main_branch), "%s-main", p->name);
    const char *type = ctl_str_at(p->spec, "proxy.serviceType");
    json_t *o =
        ctl_object("v1", "Service", p->ns, p->name, ctl_labels(p->name, "proxy", NULL), p->obj);
    json_object_set_new(o, "spec",
                        json_pack("{s:s, s:{s:s, s:s, s:s}, s:[{s:s, s:i, s:s, s:s}]}", "type",
                                  type ? type : "ClusterIP", "selector", "lakebase.io/cluster",
                                  p->name, "lakebase.io/branch", main_branch,
                                  "app.kubernetes.io/component", "compute", "ports", "name",
                                  "postgres", "port", CTL_PG_PORT, "targetPort", "postgres",
                                  "protocol", "TCP"));
    int rc = apply_in_ns(p, "v1", "services", o, NULL);
    json_decref(o);
    return rc;
}

/* The main Branch: created once, never overwritten (users scale it). */
static int
main_branch(cluster_pass *p, json_t **branch)
{
    char name[300], coll[512], path[1024];
    snprintf(name, sizeof(name), "%s-main", p->name);
    ctl_kube_path(coll, sizeof(coll), CTL_GROUP_VERSION, p->ns, "branches", NULL, NULL);
    snprintf(path, sizeof(path), "%s/%s", coll, name);
    int rc = ctl_kube_get(p->k, path, branch);
    if (rc != LB_ENOTFOUND)
        return rc;
    json_t *o = ctl_object(CTL_GROUP_VERSION, "Branch", p->ns, name,
                           ctl_labels(p->name, "compute", name), p->obj);
    json_object_set_new(
        o, "spec",
        json_pack("{s:{s:s}, s:s}", "clusterRef", "name", p->name, "branchName", "main"));
    rc = ctl_kube_create(p->k, coll, o, branch);
    json_decref(o);
    if (rc == LB_EEXIST)
        return ctl_kube_get(p->k, path, branch);
    if (rc == 0) {
        lb_info("created Branch=%s/%s", p->ns, name);
        ctl_event(p->c->events, p->k, p->obj, "Normal", "MainBranchCreated", "created Branch %s",
                  name);
    }
    return rc;
}

static int
ready_replicas(const json_t *sts)
{
    return (int)json_integer_value(ctl_at(sts, "status.readyReplicas"));
}

/* Delete what the garbage collector does not: the Branches (whose
 * finalizers delete their timelines and computes) and the claims that the
 * StatefulSets keep. true once everything is gone. */
static int
teardown(cluster_pass *p, bool *done)
{
    *done = false;
    char coll[512], path[1024];
    ctl_kube_path(coll, sizeof(coll), CTL_GROUP_VERSION, p->ns, "branches", NULL, NULL);
    json_t *list = NULL;
    int rc = ctl_kube_get(p->k, coll, &list);
    if (rc)
        return rc;
    int remaining = 0;
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(list, "items"), i, b)
    {
        const char *ref = ctl_str_at(b, "spec.clusterRef.name");
        if (!ref || strcmp(ref, p->name) != 0)
            continue;
        remaining++;
        if (!ctl_deleting(b)) {
            snprintf(path, sizeof(path), "%s/%s", coll, ctl_meta_str(b, "name"));
            if ((rc = ctl_kube_delete(p->k, path)))
                break;
        }
    }
    json_decref(list);
    if (rc || remaining)
        return rc;
    /* claims: those of the StatefulSets' templates, and the object store's */
    ctl_kube_path(coll, sizeof(coll), "v1", p->ns, "persistentvolumeclaims", NULL, NULL);
    char sel[1400];
    snprintf(sel, sizeof(sel), "%s?labelSelector=lakebase.io/cluster%%3D%s", coll, p->name);
    rc = ctl_kube_get(p->k, sel, &list);
    if (rc)
        return rc;
    json_array_foreach(json_object_get(list, "items"), i, b)
    {
        snprintf(path, sizeof(path), "%s/%s", coll, ctl_meta_str(b, "name"));
        if ((rc = ctl_kube_delete(p->k, path)))
            break;
    }
    json_decref(list);
    *done = rc == 0;
    return rc;
}

int
ctl_reconcile_cluster(ctl_ctx *c, ctl_kube *k, const char *ns, const char *name, ctl_result *res)
{
    char path[1024], now[40];
    path_of(path, sizeof(path), ns, name);
    ctl_now_rfc3339(now, sizeof(now));
    json_t *obj = NULL;
    int rc = ctl_kube_get(k, path, &obj);
    if (rc == LB_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    cluster_pass p = {.c = c, .k = k, .obj = obj, .ns = ns, .name = name};
    p.spec = json_object_get(obj, "spec");
    int64_t gen = json_integer_value(ctl_at(obj, "metadata.generation"));
    json_t *status = json_deep_copy(json_object_get(obj, "status"));
    if (!json_is_object(status)) {
        json_decref(status);
        status = json_object();
    }
    json_t *conds = json_object_get(status, "conditions");
    if (!json_is_array(conds)) {
        conds = json_array();
        json_object_set_new(status, "conditions", conds);
    }
    char why[600];
    bool ready = false;

    if (ctl_deleting(obj)) {
        json_object_set_new(status, "phase", json_string("Deleting"));
        ctl_condition_set(conds, "Ready", "False", "Deleting", "the cluster is being deleted", gen,
                          now);
        ctl_write_status(k, path, obj, status);
        bool done = false;
        rc = ctl_has_finalizer(obj, CTL_CLUSTER_FINALIZER) ? teardown(&p, &done) : 0;
        if (rc == 0 && done) {
            rc = ctl_set_finalizer(k, path, obj, CTL_CLUSTER_FINALIZER, false);
            if (rc == 0)
                lb_info("cluster=%s/%s deleted: branches and claims are gone", ns, name);
        } else if (rc == 0) {
            res->requeue_ms = 2000;
        }
        goto out;
    }
    if ((rc = ctl_set_finalizer(k, path, obj, CTL_CLUSTER_FINALIZER, true)))
        goto out;

    if (ctl_cluster_validate(p.spec, why, sizeof(why)) != 0) {
        ctl_condition_set(conds, "Ready", "False", "InvalidSpec", why, gen, now);
        if (!json_object_get(status, "phase"))
            json_object_set_new(status, "phase", json_string("Pending"));
        json_object_set_new(status, "observedGeneration", json_integer(gen));
        ctl_event(c->events, k, obj, "Warning", "InvalidSpec", "%s", why);
        rc = ctl_write_status(k, path, obj, status);
        goto out;
    }
    /* immutable fields */
    json_t *imm =
        json_pack("{s:O?, s:O?}", "postgresVersion", json_object_get(p.spec, "postgresVersion"),
                  "objectStorage", json_object_get(p.spec, "objectStorage"));
    char ihash[17];
    ctl_json_hash(imm, ihash);
    json_decref(imm);
    const char *have = json_string_value(
        json_object_get(ctl_at(obj, "metadata.annotations"), IMMUTABLE_ANNOTATION));
    if (have && strcmp(have, ihash) != 0) {
        snprintf(why, sizeof(why),
                 "spec.postgresVersion or spec.objectStorage changed after the cluster was made; "
                 "they are immutable: put the old values back (the cluster runs on with them)");
        ctl_condition_set(conds, "Ready", "False", "ImmutableFieldChanged", why, gen, now);
        ctl_event(c->events, k, obj, "Warning", "ImmutableFieldChanged", "%s", why);
        rc = ctl_write_status(k, path, obj, status);
        goto out;
    }
    if (!have) {
        json_t *patch =
            json_pack("{s:{s:{s:s}}}", "metadata", "annotations", IMMUTABLE_ANNOTATION, ihash);
        rc = ctl_kube_merge_patch(k, path, patch, NULL);
        json_decref(patch);
        if (rc)
            goto out;
    }

    if (superuser_secret_check(&p, why, sizeof(why)) != 0) {
        ctl_condition_set(conds, "Ready", "False", "SuperuserSecretInvalid", why, gen, now);
        if (!json_object_get(status, "phase"))
            json_object_set_new(status, "phase", json_string("Pending"));
        ctl_event(c->events, k, obj, "Warning", "SuperuserSecretInvalid", "%s", why);
        rc = ctl_write_status(k, path, obj, status);
        res->requeue_ms = 10000; /* Secrets are not watched */
        goto out;
    }

    p.sk_replicas = (int)json_integer_value(ctl_at(p.spec, "safekeepers.replicas"));
    if (p.sk_replicas != 5)
        p.sk_replicas = 3;
    p.ps_replicas = (int)json_integer_value(ctl_at(p.spec, "pageservers.replicas"));
    if (p.ps_replicas < 1)
        p.ps_replicas = 1;
    for (int i = 0; i < p.sk_replicas; i++) {
        char pod[300], svc[300];
        snprintf(pod, sizeof(pod), "%s-safekeeper-%d", name, i);
        snprintf(svc, sizeof(svc), "%s-safekeeper", name);
        fqdn(p.sk_fqdn[i], sizeof(p.sk_fqdn[i]), pod, svc, ns);
    }

    json_t *sk_sts = NULL, *ps_sts = NULL, *branch = NULL;
    if ((rc = credentials(&p)) || (rc = safekeepers(&p, &sk_sts)) ||
        (rc = pageservers(&p, &ps_sts)) || (rc = endpoint_service(&p)) ||
        (rc = main_branch(&p, &branch))) {
        snprintf(why, sizeof(why), "%s", ctl_kube_error(k));
        ctl_condition_set(conds, "Ready", "False", "ReconcileFailed", why, gen, now);
        ctl_event(c->events, k, obj, "Warning", "ReconcileFailed", "%s", why);
        ctl_write_status(k, path, obj, status);
        json_decref(sk_sts);
        json_decref(ps_sts);
        json_decref(branch);
        goto out;
    }
    int skr = ready_replicas(sk_sts), psr = ready_replicas(ps_sts);
    int majority = p.sk_replicas / 2 + 1;
    char msg[300];
    snprintf(msg, sizeof(msg), "%d/%d", skr, p.sk_replicas);
    json_object_set_new(status, "safekeepersReady", json_string(msg));
    snprintf(msg, sizeof(msg), "%d of %d safekeepers ready", skr, p.sk_replicas);
    ctl_condition_set(conds, "SafekeepersReady", skr >= majority ? "True" : "False",
                      skr == p.sk_replicas ? "AllReady"
                      : skr >= majority    ? "QuorumReady"
                                           : "QuorumNotReady",
                      msg, gen, now);
    snprintf(msg, sizeof(msg), "%d of %d pageservers ready", psr, p.ps_replicas);
    ctl_condition_set(conds, "PageserversReady", psr >= 1 ? "True" : "False",
                      psr == p.ps_replicas ? "AllReady"
                      : psr >= 1           ? "SomeReady"
                                           : "NotReady",
                      msg, gen, now);
    bool compute_ready = ctl_condition_true(ctl_at(branch, "status.conditions"), "Ready");
    ctl_condition_set(conds, "ProxyReady", compute_ready ? "True" : "False",
                      compute_ready ? "MainComputeReady" : "MainComputeNotReady",
                      compute_ready ? "the endpoint Service selects the main branch's compute, "
                                      "which is ready"
                                    : "the main branch's compute is not ready yet",
                      gen, now);
    ready = skr >= majority && psr >= 1 && compute_ready;
    ctl_condition_set(conds, "Ready", ready ? "True" : "False",
                      ready ? "ClusterReady" : "ComponentsNotReady",
                      ready ? "safekeeper quorum, pageservers and main compute are ready"
                            : "waiting for the safekeeper quorum, the pageservers and the main "
                              "compute",
                      gen, now);
    const char *old_phase = json_string_value(json_object_get(status, "phase"));
    const char *phase =
        ready ? "Ready"
        : (old_phase && (strcmp(old_phase, "Ready") == 0 || strcmp(old_phase, "Degraded") == 0))
            ? "Degraded"
            : "Creating";
    if (ready && (!old_phase || strcmp(old_phase, "Ready") != 0))
        ctl_event(c->events, k, obj, "Normal", "ClusterReady", "the cluster is ready");
    json_object_set_new(status, "phase", json_string(phase));
    json_object_set_new(status, "observedGeneration", json_integer(gen));
    json_object_set_new(status, "tenantId", json_string(p.tenant));
    snprintf(msg, sizeof(msg), "%s.%s.svc.cluster.local:%d", name, ns, CTL_PG_PORT);
    json_object_set_new(status, "endpoint", json_string(msg));
    snprintf(msg, sizeof(msg), "%s-app", name);
    json_object_set_new(status, "userSecret", json_string(msg));
    json_decref(sk_sts);
    json_decref(ps_sts);
    json_decref(branch);
    rc = ctl_write_status(k, path, obj, status);
    if (!ready)
        res->requeue_ms = 5000;
out:
    lb_auth_signer_free(p.signer);
    json_decref(status);
    json_decref(obj);
    return rc;
}
