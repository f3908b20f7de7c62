/*
 * branch.c: the Branch reconcile.
 *
 * A Branch is a timeline on the cluster's pageserver and a compute that
 * serves it. The pass:
 *
 *   1. finds its cluster and the cluster's signing key and tenant (from
 *      N-signing); without them it waits (ClusterNotReady);
 *   2. decides its timeline id once and records it in the annotation
 *      lakebase.io/timeline-id BEFORE asking the pageserver for it, so a
 *      controller killed between the two asks for the same id again (the
 *      pageserver's answer for an existing id is adopted) and never leaves a
 *      second timeline behind;
 *   3. creates the timeline: bootstrap for a Branch without parent (the
 *      cluster's main), else a branch of the parent's timeline at spec.lsn,
 *      at spec.timestamp, or at the parent's last LSN;
 *   4. writes the compute's token Secret, its compute-ctl spec (ConfigMap),
 *      a headless Service and a StatefulSet of 0 or 1 replica
 *      (spec.compute.replicas: the scale subresource); and, once
 *      spec.compute.readReplicas asks for any, the same for the read
 *      replicas (compute-ctl's replica mode, StatefulSet <branch>-replica)
 *      with the read-only ClusterIP Service <branch>-ro;
 *   5. once the compute is ready, tells the pageserver where the timeline's
 *      WAL is (PUT .../safekeepers: the management call compute-ctl may not
 *      make);
 *   6. writes status.
 *
 * Deleting: while another Branch names this one as parent, the finalizer
 * stays and Ready=False, reason HasChildBranches, names them; then the
 * timeline is deleted on the pageserver (404 is success) and the finalizer
 * removed; the garbage collector takes the compute's objects.
 *
 * resetGeneration: raising it makes a new timeline from the parent's
 * current last LSN (recorded in the annotations first, as in 2), restarts
 * the compute on it, and then deletes the old timeline.
 *
 * Why a StatefulSet of one and not a bare Pod: the StatefulSet gives the
 * pod a stable DNS name (its token's endpoint claim, where the safekeepers
 * reach its PostgreSQL), restarts it on another node if one goes away, and
 * lets `kubectl scale` and rollouts work as on any workload.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "conditions.h"
#include "controller.h"
#include "credentials.h"
#include "errors.h"
#include "http_client.h"
#include "log.h"
#include "lsn.h"
#include "quantity.h"

#pragma GCC diagnostic ignored "-Wformat-truncation" /* names are bounded: see cluster.c */

#define TIMELINE_ANNOTATION "lakebase.io/timeline-id"
#define PREVIOUS_ANNOTATION "lakebase.io/previous-timeline-id"
#define RESET_ANNOTATION "lakebase.io/reset-generation"
#define IMMUTABLE_ANNOTATION "lakebase.io/immutable-hash"

typedef struct branch_pass {
    ctl_ctx *c;
    ctl_kube *k;
    json_t *obj;     /* the Branch */
    json_t *cluster; /* its LakebaseCluster */
    json_t *spec;
    const char *ns, *name;
    const char *cluster_name; /* points into cluster_buf: p->obj is replaced on patches */
    char cluster_buf[300];
    char path[1024];
    char tenant[40];
    lb_auth_signer *signer;
    char ps_url[300]; /* the controller's way to pageserver-0 (its pod IP) */
    char mgmt[LB_AUTH_HEADER_MAX];
    json_t *status, *conds;
    int64_t gen;
    char now[40];
} branch_pass;

static const char *
annotation(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(ctl_at(obj, "metadata.annotations"), key));
}

/* Merge-patch annotations (NULL values delete) on the Branch, conditional
 * on its resourceVersion; p->obj becomes the patched object. */
static int
patch_annotations(branch_pass *p, json_t *ann)
{
    json_t *patch = json_pack("{s:{s:o, s:O}}", "metadata", "annotations", ann, "resourceVersion",
                              ctl_at(p->obj, "metadata.resourceVersion"));
    json_t *patched = NULL;
    int rc = patch ? ctl_kube_merge_patch(p->k, p->path, patch, &patched) : -ENOMEM;
    json_decref(patch);
    if (rc == 0) {
        json_decref(p->obj);
        p->obj = patched;
        p->spec = json_object_get(p->obj, "spec");
    }
    return rc;
}

/* ---- the pageserver ---- */

/* One management call to pageserver-0. *status: HTTP status; *resp: JSON. */
static int
tenant_call(branch_pass *p, const char *base, const char *method, const char *suffix, json_t *body,
            long timeout_ms, long *status, json_t **resp)
{
    char url[800];
    snprintf(url, sizeof(url), "%s/v1/tenant/%s/timeline%s", base, p->tenant, suffix);
    lb_http_options o = {.timeout_ms = timeout_ms, .max_attempts = 2};
    lb_http_client *h = NULL;
    int rc = lb_http_client_new(&o, &h);
    if (rc)
        return rc;
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    const char *headers[] = {p->mgmt, "Content-Type: application/json"};
    lb_buf out = LB_BUF_INIT;
    lb_http_call call = {.method = method,
                         .url = url,
                         .headers = headers,
                         .nheaders = payload ? 2 : 1,
                         .body = payload,
                         .body_len = payload ? strlen(payload) : 0,
                         .response_body = &out,
                         .max_response = 1 << 20};
    lb_http_result r = LB_HTTP_RESULT_INIT;
    rc = lb_http_do(h, &call, &r);
    *status = r.status;
    *resp = NULL;
    if (rc == 0) {
        const lb_buf *b = r.status / 100 == 2 ? &out : &r.error_body;
        *resp = b->len ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    } else {
        lb_warn("%s %s: %s", method, url, lb_http_client_error(h));
    }
    lb_buf_free(&out);
    lb_http_result_free(&r);
    free(payload);
    lb_http_client_free(h);
    return rc;
}

static const char *error_of(const json_t *resp);

static int
ps_call(branch_pass *p, const char *method, const char *suffix, json_t *body, long timeout_ms,
        long *status, json_t **resp)
{
    return tenant_call(p, p->ps_url, method, suffix, body, timeout_ms, status, resp);
}

/* The newest commit LSN of timeline that the cluster's safekeepers report
 * (management token; each safekeeper by its pod IP) into lsn; "" if none
 * knows the timeline (it never had a compute). Branching "at the parent's
 * current state" means at this LSN: the pageserver's last_record_lsn lags
 * it while WAL is being ingested. */
static int
sk_count(branch_pass *p)
{
    int n = (int)json_integer_value(ctl_at(p->cluster, "spec.safekeepers.replicas"));
    return n == 5 ? 5 : 3;
}

/* The base URL of safekeeper i at its pod IP into base ("" if it has none). */
static void
sk_base(branch_pass *p, int i, char *base, size_t cap)
{
    char pod[320], path[1024];
    base[0] = '\0';
    snprintf(pod, sizeof(pod), "%s-safekeeper-%d", p->cluster_name, i);
    ctl_kube_path(path, sizeof(path), "v1", p->ns, "pods", pod, NULL);
    json_t *obj = NULL;
    if (ctl_kube_get(p->k, path, &obj) != 0)
        return;
    const char *ip = ctl_str_at(obj, "status.podIP");
    if (ip && *ip)
        snprintf(base, cap, strchr(ip, ':') ? "http://[%s]:%d" : "http://%s:%d", ip,
                 CTL_SK_HTTP_PORT);
    json_decref(obj);
}

/* Management creates the timeline on every safekeeper that lacks it,
 * starting where the pageserver's does (a compute token may not create
 * one): before a primary compute starts on it. A safekeeper that does not
 * answer is left out (the election needs a majority); 0 once a majority
 * has it. */
static int
create_sk_timelines(branch_pass *p, const char *timeline)
{
    char suffix[100];
    snprintf(suffix, sizeof(suffix), "/%s", timeline);
    long st = 0;
    json_t *meta = NULL;
    int rc = ps_call(p, "GET", suffix, NULL, 30000, &st, &meta);
    if (rc || st != 200) {
        json_decref(meta);
        return rc ? rc : LB_EPROTO;
    }
    json_t *body =
        json_pack("{s:s, s:O, s:O, s:O, s:O}", "timeline_id", timeline, "system_id",
                  json_object_get(meta, "system_id"), "start_lsn",
                  json_object_get(meta, "start_lsn"), "pg_tli", json_object_get(meta, "pg_tli"),
                  "wal_seg_size", json_object_get(meta, "wal_seg_size"));
    json_decref(meta);
    if (!body)
        return LB_EPROTO; /* the pageserver's answer lacks a field */
    int n = sk_count(p), have = 0;
    for (int i = 0; i < n; i++) {
        char base[300];
        sk_base(p, i, base, sizeof(base));
        if (!base[0])
            continue;
        json_t *resp = NULL;
        if (tenant_call(p, base, "GET", suffix, NULL, 5000, &st, &resp) == 0 && st == 200) {
            have++;
        } else if (st == 404) {
            json_decref(resp);
            resp = NULL;
            if (tenant_call(p, base, "POST", "", body, 10000, &st, &resp) == 0 &&
                (st == 200 || st == 201 || st == 409)) {
                have++;
                lb_info("created timeline=%s on safekeeper %s-safekeeper-%d", timeline,
                        p->cluster_name, i);
            } else {
                lb_warn("safekeeper %s-safekeeper-%d refused timeline=%s: %ld %s", p->cluster_name,
                        i, timeline, st, error_of(resp));
            }
        }
        json_decref(resp);
    }
    json_decref(body);
    return have > n / 2 ? 0 : LB_EPROTO;
}

static int
parent_commit_lsn(branch_pass *p, const char *timeline, char *lsn, size_t cap)
{
    lsn[0] = '\0';
    lb_lsn best = 0;
    int n = sk_count(p);
    for (int i = 0; i < n; i++) {
        char base[300];
        sk_base(p, i, base, sizeof(base));
        if (!base[0])
            continue;
        char suffix[100];
        snprintf(suffix, sizeof(suffix), "/%s", timeline);
        long st = 0;
        json_t *resp = NULL;
        if (tenant_call(p, base, "GET", suffix, NULL, 5000, &st, &resp) == 0 && st == 200) {
            lb_lsn l;
            const char *c = json_string_value(json_object_get(resp, "commit_lsn"));
            if (c && lb_lsn_parse(c, &l) == 0 && l > best)
                best = l;
        }
        json_decref(resp);
    }
    if (best) {
        char buf[LB_LSN_STRLEN];
        snprintf(lsn, cap, "%s", lb_lsn_format(best, buf));
    }
    return 0;
}

static const char *
error_of(const json_t *resp)
{
    const char *e = json_string_value(json_object_get(resp, "error"));
    return e ? e : "no message";
}

/* ---- status helpers ---- */

static void
set_cond(branch_pass *p, const char *type, const char *st, const char *reason, const char *msg)
{
    ctl_condition_set(p->conds, type, st, reason, msg, p->gen, p->now);
}

static int
finish(branch_pass *p, const char *phase)
{
    if (phase)
        json_object_set_new(p->status, "phase", json_string(phase));
    json_object_set_new(p->status, "observedGeneration", json_integer(p->gen));
    return ctl_write_status(p->k, p->path, p->obj, p->status);
}

/* Not ready because of why; Event once per distinct message. */
static int
waiting(branch_pass *p, const char *reason, const char *why, const char *phase, bool warn)
{
    set_cond(p, "Ready", "False", reason, why);
    if (warn)
        ctl_event(p->c->events, p->k, p->obj, "Warning", reason, "%s", why);
    return finish(p, phase);
}

/* ---- cluster credentials ---- */

static int
load_cluster(branch_pass *p)
{
    char path[1024];
    ctl_kube_path(path, sizeof(path), "v1", p->ns, "secrets", NULL, NULL);
    char spath[1400];
    snprintf(spath, sizeof(spath), "%s/%s-signing", path, p->cluster_name);
    json_t *secret = NULL;
    int rc = ctl_kube_get(p->k, spath, &secret);
    if (rc)
        return rc;
    json_t *data = json_object_get(secret, "data");
    const char *key64 = json_string_value(json_object_get(data, "signing.key"));
    const char *tid64 = json_string_value(json_object_get(data, "tenant-id"));
    rc = LB_EPROTO;
    if (key64 && tid64) {
        unsigned char key[4096], tid[64];
        size_t kl = strlen(key64), tl = strlen(tid64);
        {
            int kn = ctl_b64_decode(key64, kl, key, sizeof(key));
            int tn = ctl_b64_decode(tid64, tl, tid, sizeof(tid));
            if (kn > 0 && tn == 32) {
                memcpy(p->tenant, tid, 32);
                p->tenant[32] = '\0';
                rc = ctl_signer_from_pem((const char *)key, (size_t)kn, &p->signer);
            }
            explicit_bzero(key, sizeof(key));
        }
    }
    json_decref(secret);
    if (rc)
        return rc;
    char *tok = NULL;
    rc =
        ctl_mint(p->signer, LB_AUTH_MANAGEMENT, "lakebase-controller", p->tenant, NULL, NULL, &tok);
    if (rc == 0)
        snprintf(p->mgmt, sizeof(p->mgmt), "Authorization: Bearer %s", tok);
    ctl_secret_free(tok);
    return rc;
}

/* The pod IP of pageserver-0, or "" while it has none. */
static int
find_pageserver(branch_pass *p)
{
    char path[1024], pod[300];
    snprintf(pod, sizeof(pod), "%s-pageserver-0", p->cluster_name);
    ctl_kube_path(path, sizeof(path), "v1", p->ns, "pods", pod, NULL);
    json_t *obj = NULL;
    int rc = ctl_kube_get(p->k, path, &obj);
    p->ps_url[0] = '\0';
    if (rc == 0) {
        const char *ip = ctl_str_at(obj, "status.podIP");
        if (ip && *ip && ctl_condition_true(ctl_at(obj, "status.conditions"), "Ready"))
            snprintf(p->ps_url, sizeof(p->ps_url),
                     strchr(ip, ':') ? "http://[%s]:%d" : "http://%s:%d", ip, CTL_PS_HTTP_PORT);
    }
    json_decref(obj);
    return rc == LB_ENOTFOUND ? 0 : rc;
}

/* ---- children ---- */

/* Names of Branches whose spec.parent is this one, comma-separated into
 * buf; how many. */
static int
children(branch_pass *p, char *buf, size_t cap, int *count)
{
    char coll[512];
    ctl_kube_path(coll, sizeof(coll), CTL_GROUP_VERSION, p->ns, "branches", NULL, NULL);
    json_t *list = NULL;
    int rc = ctl_kube_get(p->k, coll, &list);
    if (rc)
        return rc;
    *count = 0;
    buf[0] = '\0';
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(list, "items"), i, b)
    {
        const char *parent = ctl_str_at(b, "spec.parent");
        if (parent && strcmp(parent, p->name) == 0) {
            size_t n = strlen(buf);
            snprintf(buf + n, cap - n, "%s%s", *count ? ", " : "", ctl_meta_str(b, "name"));
            (*count)++;
        }
    }
    json_decref(list);
    return 0;
}

/* ---- the compute and its read replicas ---- */

/* What differs between the branch's primary compute and its read
 * replicas. Everything else (image, probes, security context, the
 * compute-ctl spec's shape) is one code path. */
typedef struct compute_role {
    const char *suffix;    /* objects are named <branch>-<suffix> */
    const char *component; /* app.kubernetes.io/component of its objects and pods */
    const char *mode;      /* compute-ctl's spec "mode" */
    bool primary;
} compute_role;

static const compute_role PRIMARY = {"compute", "compute", "primary", true};
/* A hot standby streaming from a safekeeper (compute-ctl's replica mode).
 * Its component differs from the primary's so that neither Service nor
 * StatefulSet selects the other's pods. */
static const compute_role REPLICA = {"replica", "compute-replica", "replica", false};

static void
compute_names(branch_pass *p, const compute_role *r, char *sts, size_t cap)
{
    snprintf(sts, cap, "%s-%s", p->name, r->suffix);
}

/* The read replicas' Service: <branch>-ro. */
static void
replica_service(branch_pass *p, char *svc, size_t cap)
{
    snprintf(svc, cap, "%s-ro", p->name);
}

static json_t *
compute_spec(branch_pass *p, const compute_role *r, const char *timeline)
{
    char sts[300], host[400], ps[600];
    compute_names(p, r, sts, sizeof(sts));
    snprintf(host, sizeof(host), "%s-0.%s.%s.svc.cluster.local", sts, sts, p->ns);
    snprintf(ps, sizeof(ps), "http://%s-pageserver-0.%s-pageserver.%s.svc.cluster.local:%d",
             p->cluster_name, p->cluster_name, p->ns, CTL_PS_HTTP_PORT);
    json_t *sks = json_array();
    int n = (int)json_integer_value(ctl_at(p->cluster, "spec.safekeepers.replicas"));
    if (n != 5)
        n = 3;
    for (int i = 0; i < n; i++) {
        char name[300], fq[500], http[600], pg[600];
        snprintf(name, sizeof(name), "%s-safekeeper-%d", p->cluster_name, i);
        snprintf(fq, sizeof(fq), "%s.%s-safekeeper.%s.svc.cluster.local", name, p->cluster_name,
                 p->ns);
        snprintf(http, sizeof(http), "http://%s:%d", fq, CTL_SK_HTTP_PORT);
        snprintf(pg, sizeof(pg), "%s:%d", fq, CTL_SK_PG_PORT);
        json_array_append_new(sks,
                              json_pack("{s:s, s:s, s:s}", "name", name, "http", http, "pg", pg));
    }
    json_t *settings = json_pack("{s:s, s:s}", "listen_addresses", "*", "shared_buffers", "128MB");
    const char *key;
    json_t *v;
    json_object_foreach(ctl_at(p->cluster, "spec.compute.parameters"), key, v)
    {
        if (json_is_string(v))
            json_object_set(settings, key, v);
    }
    json_object_set_new(settings, "listen_addresses", json_string("*"));
    json_t *spec = json_pack("{s:s, s:s, s:s, s:s, s:o, s:i, s:s, s:s, s:s, s:s, s:o}", "tenant_id",
                             p->tenant, "timeline_id", timeline, "mode", r->mode, "pageserver", ps,
                             "safekeepers", sks, "pg_port", CTL_PG_PORT, "listen", "0.0.0.0:3080",
                             "data_dir", "/data/pgdata", "auth_public_keys", "/etc/lakebase/keys",
                             "auth_token_file", "/etc/lakebase/token/token", "settings", settings);
    /* A primary makes the roles and is what the safekeepers stream from; a
     * replica has the roles the primary made (its catalog is read-only)
     * and is reached by no safekeeper. */
    /* The superuser's password (the cluster's superuser Secret): the
     * superuser may also log in over TCP with it (compute/pgauth.c). A
     * replica's pg_hba.conf follows the same line; its role comes from
     * the primary. */
    if (spec)
        json_object_set_new(spec, "superuser_password_file",
                            json_string("/etc/lakebase/superuser/password"));
    if (spec && r->primary) {
        json_object_set_new(spec, "announce_host", json_string(host));
        json_object_set_new(spec, "user", json_string("app"));
        json_object_set_new(spec, "password_file", json_string("/etc/lakebase/user/password"));
        json_object_set_new(spec, "safekeeper_password_file",
                            json_string("/etc/lakebase/sk-password/password"));
    }
    return spec;
}

/* The compute's token Secret, remade when the timeline changes. The
 * primary's token names its endpoint (where the safekeepers it is elected
 * by reach it); a replica's names none, so it can stream and take a
 * basebackup but never be named a primary by the safekeepers. */
static int
compute_token(branch_pass *p, const compute_role *r, const char *timeline)
{
    char sts[300], coll[512], path[1024], endpoint[500] = "";
    compute_names(p, r, sts, sizeof(sts));
    if (r->primary)
        snprintf(endpoint, sizeof(endpoint), "%s-0.%s.%s.svc.cluster.local:%d", sts, sts, p->ns,
                 CTL_PG_PORT);
    ctl_kube_path(coll, sizeof(coll), "v1", p->ns, "secrets", NULL, NULL);
    snprintf(path, sizeof(path), "%s/%s", coll, sts);
    json_t *cur = NULL;
    int rc = ctl_kube_get(p->k, path, &cur);
    if (rc == 0 && annotation(cur, TIMELINE_ANNOTATION) &&
        strcmp(annotation(cur, TIMELINE_ANNOTATION), timeline) == 0) {
        json_decref(cur);
        return 0;
    }
    if (rc && rc != LB_ENOTFOUND)
        return rc;
    char *tok = NULL;
    rc = ctl_mint(p->signer, LB_AUTH_COMPUTE, r->primary ? p->name : sts, p->tenant, timeline,
                  endpoint, &tok);
    if (rc) {
        json_decref(cur);
        return rc;
    }
    json_t *o = ctl_object("v1", "Secret", p->ns, sts,
                           ctl_labels(p->cluster_name, r->component, p->name), p->obj);
    json_object_set_new(json_object_get(o, "metadata"), "annotations",
                        json_pack("{s:s}", TIMELINE_ANNOTATION, timeline));
    json_object_set_new(o, "type", json_string("Opaque"));
    json_object_set_new(o, "stringData", json_pack("{s:s}", "token", tok));
    ctl_secret_free(tok);
    if (cur) {
        json_object_set(json_object_get(o, "metadata"), "resourceVersion",
                        ctl_at(cur, "metadata.resourceVersion"));
        rc = ctl_kube_update(p->k, path, o, NULL);
    } else {
        rc = ctl_kube_create(p->k, coll, o, NULL);
    }
    json_t *sd = json_object_get(o, "stringData");
    json_t *t = json_object_get(sd, "token");
    if (t)
        explicit_bzero((char *)json_string_value(t), strlen(json_string_value(t)));
    json_decref(o);
    json_decref(cur);
    return rc;
}

/* The cluster's superuser Secret: spec.superuserSecret.name, else the one
 * the controller makes (cluster.c). Its key "password". */
static void
superuser_secret(branch_pass *p, char *name, size_t cap)
{
    const char *named = ctl_str_at(p->cluster, "spec.superuserSecret.name");
    if (named)
        snprintf(name, cap, "%s", named);
    else
        snprintf(name, cap, "%s-superuser", p->cluster_name);
}

static json_t *
vol_secret(const char *name, const char *secret, const char *key)
{
    json_t *v = json_pack("{s:s, s:{s:s, s:i}}", "name", name, "secret", "secretName", secret,
                          "defaultMode", 0440);
    if (v && key)
        json_object_set_new(json_object_get(v, "secret"), "items",
                            json_pack("[{s:s, s:s}]", "key", key, "path", key));
    return v;
}

static json_t *
vmount(const char *name, const char *path, bool ro)
{
    return json_pack("{s:s, s:s, s:b}", "name", name, "mountPath", path, "readOnly", ro);
}

/* The Service of role r: the primary's is headless and publishes not-ready
 * addresses (the branch endpoint, and the DNS name the safekeepers reach
 * its PostgreSQL by, before it is ready); the replicas' (<branch>-ro) is
 * an ordinary ClusterIP Service over the ready replicas. */
static int
compute_service(branch_pass *p, const compute_role *r, const json_t *sel)
{
    char name[300], coll[512];
    json_t *spec;
    if (r->primary) {
        compute_names(p, r, name, sizeof(name));
        spec = json_pack("{s:s, s:b, s:O, s:[{s:s, s:i, s:s, s:s}, {s:s, s:i, s:s}]}", "clusterIP",
                         "None", "publishNotReadyAddresses", 1, "selector", sel, "ports", "name",
                         "postgres", "port", CTL_PG_PORT, "targetPort", "postgres", "protocol",
                         "TCP", "name", "http", "port", CTL_COMPUTE_HTTP_PORT, "protocol", "TCP");
    } else {
        replica_service(p, name, sizeof(name));
        spec = json_pack("{s:s, s:O, s:[{s:s, s:i, s:s, s:s}]}", "type", "ClusterIP", "selector",
                         sel, "ports", "name", "postgres", "port", CTL_PG_PORT, "targetPort",
                         "postgres", "protocol", "TCP");
    }
    json_t *o = ctl_object("v1", "Service", p->ns, name,
                           ctl_labels(p->cluster_name, r->component, p->name), p->obj);
    json_object_set_new(o, "spec", spec);
    ctl_kube_path(coll, sizeof(coll), "v1", p->ns, "services", NULL, NULL);
    int rc = ctl_apply(p->k, coll, o, NULL);
    json_decref(o);
    return rc;
}

/* The objects of role r: its token Secret, compute-ctl's spec (ConfigMap),
 * its Service and a StatefulSet of `replicas` pods. *sts_out: the
 * StatefulSet as the API server has it. */
static int
compute(branch_pass *p, const compute_role *r, const char *timeline, int replicas, json_t **sts_out)
{
    char sts[300], coll[512], cm[300], svc[300];
    compute_names(p, r, sts, sizeof(sts));
    snprintf(cm, sizeof(cm), "%s", sts);
    int rc = compute_token(p, r, timeline);
    if (rc)
        return rc;
    json_t *spec = compute_spec(p, r, timeline);
    char *spec_json = spec ? json_dumps(spec, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(spec);
    if (!spec_json)
        return -ENOMEM;
    json_t *o = ctl_object("v1", "ConfigMap", p->ns, cm,
                           ctl_labels(p->cluster_name, r->component, p->name), p->obj);
    json_object_set_new(o, "data", json_pack("{s:s}", "spec.json", spec_json));
    char hash[17];
    ctl_json_hash(json_object_get(o, "data"), hash);
    free(spec_json);
    ctl_kube_path(coll, sizeof(coll), "v1", p->ns, "configmaps", NULL, NULL);
    rc = ctl_apply(p->k, coll, o, NULL);
    json_decref(o);
    if (rc)
        return rc;

    json_t *sel = json_pack("{s:s, s:s}", "lakebase.io/branch", p->name,
                            "app.kubernetes.io/component", r->component);
    if ((rc = compute_service(p, r, sel))) {
        json_decref(sel);
        return rc;
    }
    if (r->primary)
        snprintf(svc, sizeof(svc), "%s", sts);
    else
        replica_service(p, svc, sizeof(svc));

    char app[300], skpw[300], keys[300];
    snprintf(app, sizeof(app), "%s-app", p->cluster_name);
    snprintf(skpw, sizeof(skpw), "%s-sk-password", p->cluster_name);
    snprintf(keys, sizeof(keys), "%s-auth-keys", p->cluster_name);
    /* A replica needs neither the user's nor the safekeepers' password:
     * the primary makes the roles. */
    json_t *mounts = json_pack("[o, o, o]", vmount("data", "/data", false),
                               vmount("spec", "/etc/lakebase/spec", true),
                               vmount("token", "/etc/lakebase/token", true));
    json_t *volumes =
        json_pack("[{s:s, s:{}}, {s:s, s:{s:s}}, o]", "name", "data", "emptyDir", "name", "spec",
                  "configMap", "name", cm, vol_secret("token", sts, NULL));
    if (mounts && volumes && r->primary) {
        json_array_append_new(mounts, vmount("user", "/etc/lakebase/user", true));
        json_array_append_new(mounts, vmount("sk-password", "/etc/lakebase/sk-password", true));
        json_array_append_new(volumes, vol_secret("user", app, "password"));
        json_array_append_new(volumes, vol_secret("sk-password", skpw, NULL));
    }
    if (mounts && volumes) {
        char su[300];
        superuser_secret(p, su, sizeof(su));
        json_array_append_new(mounts, vmount("superuser", "/etc/lakebase/superuser", true));
        json_array_append_new(volumes, vol_secret("superuser", su, "password"));
        json_array_append_new(mounts, vmount("keys", "/etc/lakebase/keys", true));
        json_array_append_new(
            volumes, json_pack("{s:s, s:{s:s}}", "name", "keys", "configMap", "name", keys));
    }
    /* Ready: a replica once it accepts connections; the primary once it
     * also left recovery (it starts as a hot standby of the pageserver's
     * basebackup and is promoted after the safekeepers elect it, and a
     * client let in before that gets "read-only transaction"). The check
     * runs as compute-ctl's superuser over the unix socket in the data
     * directory (peer authentication: no password). */
    json_t *probe =
        r->primary
            ? json_pack("[s, s, s]", "sh", "-c",
                        "test \"$(psql -h /data/pgdata -p 5432 -U postgres -d postgres -XAtqc "
                        "'select pg_is_in_recovery()')\" = f")
            : json_pack("[s, s, s, s, s, s, s, s, s, s]", "pg_isready", "-q", "-h", "127.0.0.1",
                        "-p", "5432", "-U", "app", "-d", "postgres");
    json_t *container = json_pack(
        "{s:s, s:s, s:[s], s:[s, s], s:[{s:s, s:i}, {s:s, s:i}], s:{s:{s:o}, s:i, s:i, s:i}, "
        "s:{s:b, s:{s:[s]}}, s:o}",
        "name", "compute", "image",
        ctl_str_at(p->cluster, "spec.images.compute")
            ? ctl_str_at(p->cluster, "spec.images.compute")
            : p->c->opts->compute_image,
        "command", "/usr/local/bin/compute-ctl", "args", "--spec", "/etc/lakebase/spec/spec.json",
        "ports", "name", "postgres", "containerPort", CTL_PG_PORT, "name", "http", "containerPort",
        CTL_COMPUTE_HTTP_PORT, "readinessProbe", "exec", "command", probe, "periodSeconds", 2,
        "timeoutSeconds", 5, "failureThreshold", 3, "securityContext", "allowPrivilegeEscalation",
        0, "capabilities", "drop", "ALL", "volumeMounts", mounts);
    json_t *res = ctl_at(p->spec, "compute.resources");
    if (!json_is_object(res) || !json_object_size(res))
        res = ctl_at(p->cluster, "spec.compute.resources");
    if (container && json_is_object(res) && json_object_size(res))
        json_object_set(container, "resources", res);
    json_t *pod =
        json_pack("{s:{s:o, s:{s:s, s:s}}, s:{s:{s:b, s:i, s:i, s:i, s:{s:s}}, s:i, s:[o], s:o}}",
                  "metadata", "labels", ctl_labels(p->cluster_name, r->component, p->name),
                  "annotations", "lakebase.io/config-hash", hash, TIMELINE_ANNOTATION, timeline,
                  "spec", "securityContext", "runAsNonRoot", 1, "runAsUser", 65532, "runAsGroup",
                  65532, "fsGroup", 65532, "seccompProfile", "type", "RuntimeDefault",
                  "terminationGracePeriodSeconds", 30, "containers", container, "volumes", volumes);
    o = ctl_object("apps/v1", "StatefulSet", p->ns, sts,
                   ctl_labels(p->cluster_name, r->component, p->name), p->obj);
    json_object_set_new(o, "spec",
                        json_pack("{s:s, s:i, s:s, s:{s:O}, s:o, s:{s:s}}", "serviceName", svc,
                                  "replicas", replicas, "podManagementPolicy", "Parallel",
                                  "selector", "matchLabels", sel, "template", pod, "updateStrategy",
                                  "type", "RollingUpdate"));
    json_decref(sel);
    if (!pod || !json_object_get(o, "spec")) {
        json_decref(o);
        return -ENOMEM;
    }
    ctl_kube_path(coll, sizeof(coll), "apps/v1", p->ns, "statefulsets", NULL, NULL);
    rc = ctl_apply(p->k, coll, o, sts_out);
    json_decref(o);
    return rc;
}

/* The read replicas: made once spec.compute.readReplicas is above 0 (a
 * Branch that never asks for one gets no objects for them), then scaled
 * with it, down to 0 pods. *sts_out: their StatefulSet, NULL when there
 * is none. */
static int
read_replicas(branch_pass *p, const char *timeline, int replicas, json_t **sts_out)
{
    *sts_out = NULL;
    if (replicas == 0) {
        char sts[300], path[1024];
        compute_names(p, &REPLICA, sts, sizeof(sts));
        ctl_kube_path(path, sizeof(path), "apps/v1", p->ns, "statefulsets", sts, NULL);
        json_t *cur = NULL;
        int rc = ctl_kube_get(p->k, path, &cur);
        json_decref(cur);
        if (rc == LB_ENOTFOUND)
            return 0;
        if (rc)
            return rc;
    }
    return compute(p, &REPLICA, timeline, replicas, sts_out);
}

/* Is the compute pod ready and running the timeline? A pod of an older
 * revision of the StatefulSet that is not ready is deleted: a StatefulSet's
 * rolling update waits for a broken pod to become ready before replacing
 * it, which a compute that fails on its old spec never does. */
static bool
compute_pod_ready(branch_pass *p, const char *timeline, const json_t *sts_obj)
{
    char sts[300], pod[320], path[1024];
    compute_names(p, &PRIMARY, sts, sizeof(sts));
    snprintf(pod, sizeof(pod), "%s-0", sts);
    ctl_kube_path(path, sizeof(path), "v1", p->ns, "pods", pod, NULL);
    json_t *obj = NULL;
    bool ok = false;
    if (ctl_kube_get(p->k, path, &obj) == 0) {
        const char *tl = annotation(obj, TIMELINE_ANNOTATION);
        bool ready = ctl_condition_true(ctl_at(obj, "status.conditions"), "Ready");
        ok = !ctl_deleting(obj) && tl && strcmp(tl, timeline) == 0 && ready;
        const char *rev = json_string_value(
            json_object_get(ctl_at(obj, "metadata.labels"), "controller-revision-hash"));
        const char *want = ctl_str_at(sts_obj, "status.updateRevision");
        if (!ready && !ctl_deleting(obj) && rev && want && strcmp(rev, want) != 0) {
            lb_info("deleting pod=%s/%s: not ready on an old revision", p->ns, pod);
            if (ctl_kube_delete(p->k, path) == 0)
                ctl_event(p->c->events, p->k, p->obj, "Normal", "ComputeRestarted",
                          "deleted pod %s, not ready on an old revision of its spec", pod);
        }
    }
    json_decref(obj);
    return ok;
}

static int
point_pageserver(branch_pass *p, const char *timeline)
{
    json_t *sks = json_array();
    int n = (int)json_integer_value(ctl_at(p->cluster, "spec.safekeepers.replicas"));
    if (n != 5)
        n = 3;
    for (int i = 0; i < n; i++) {
        char fq[500], http[600], pg[600];
        snprintf(fq, sizeof(fq), "%s-safekeeper-%d.%s-safekeeper.%s.svc.cluster.local",
                 p->cluster_name, i, p->cluster_name, p->ns);
        snprintf(http, sizeof(http), "http://%s:%d", fq, CTL_SK_HTTP_PORT);
        snprintf(pg, sizeof(pg), "%s:%d", fq, CTL_SK_PG_PORT);
        json_array_append_new(sks, json_pack("{s:s, s:s}", "pg", pg, "http", http));
    }
    json_t *body = json_pack("{s:o}", "safekeepers", sks);
    char suffix[100];
    snprintf(suffix, sizeof(suffix), "/%s/safekeepers", timeline);
    long st = 0;
    json_t *resp = NULL;
    int rc = ps_call(p, "PUT", suffix, body, 30000, &st, &resp);
    json_decref(body);
    if (rc == 0 && st != 200) {
        lb_warn("pageserver refused safekeepers branch=%s/%s: %ld %s", p->ns, p->name, st,
                error_of(resp));
        rc = LB_EPROTO;
    }
    json_decref(resp);
    return rc;
}

/* ---- timeline ---- */

/* Create timeline (if the pageserver lacks it). 0 when it exists (lsn
 * filled), 1 when the pageserver refused it for good (why filled), or an
 * error code to retry. */
static int
ensure_timeline(branch_pass *p, const char *timeline, const char *parent_tl, bool at_parent_end,
                char *lsn, size_t lsncap, char *why, size_t whycap)
{
    char suffix[100];
    snprintf(suffix, sizeof(suffix), "/%s", timeline);
    long st = 0;
    json_t *resp = NULL;
    int rc = ps_call(p, "GET", suffix, NULL, 30000, &st, &resp);
    if (rc)
        return rc;
    if (st == 200) {
        const char *a = json_string_value(json_object_get(resp, "ancestor_lsn"));
        snprintf(lsn, lsncap, "%s", a ? a : "0/0");
        json_decref(resp);
        return 0;
    }
    json_decref(resp);
    if (st != 404)
        return LB_EPROTO;
    json_t *body = json_pack("{s:s}", "timeline_id", timeline);
    if (parent_tl) {
        json_object_set_new(body, "ancestor_timeline_id", json_string(parent_tl));
        const char *at_lsn = ctl_str_at(p->spec, "lsn");
        const char *at_time = ctl_str_at(p->spec, "timestamp");
        if (!at_parent_end && at_lsn) {
            json_object_set_new(body, "ancestor_lsn", json_string(at_lsn));
        } else if (!at_parent_end && at_time) {
            json_object_set_new(body, "ancestor_timestamp", json_string(at_time));
        } else {
            char commit[LB_LSN_STRLEN];
            parent_commit_lsn(p, parent_tl, commit, sizeof(commit));
            if (commit[0]) {
                json_object_set_new(body, "ancestor_lsn", json_string(commit));
            } else {
                /* no safekeeper knows it: all of it is on the pageserver */
                char psuffix[100];
                snprintf(psuffix, sizeof(psuffix), "/%s", parent_tl);
                rc = ps_call(p, "GET", psuffix, NULL, 30000, &st, &resp);
                if (rc == 0 && st != 200)
                    rc = LB_EPROTO;
                const char *last = json_string_value(json_object_get(resp, "last_record_lsn"));
                if (rc == 0 && last)
                    json_object_set_new(body, "ancestor_lsn", json_string(last));
                json_decref(resp);
                if (rc || !last) {
                    json_decref(body);
                    return rc ? rc : LB_EPROTO;
                }
            }
        }
    }
    /* The call's time is the pageserver's: a branch point it has not yet
     * ingested is waited for there, and after a large write its workers
     * may be busy with snapshots. Reported apart from the controller's own
     * work (bench/operator reads it from the Event). */
    int64_t t0 = lb_mono_ms();
    rc = ps_call(p, "POST", "", body, 600000, &st, &resp);
    long long took = (long long)(lb_mono_ms() - t0);
    json_decref(body);
    if (rc)
        return rc;
    if (st == 201 || st == 200) {
        const char *a = json_string_value(json_object_get(resp, "ancestor_lsn"));
        snprintf(lsn, lsncap, "%s", a ? a : "0/0");
        json_decref(resp);
        lb_info("created timeline=%s branch=%s/%s pageserver_ms=%lld", timeline, p->ns, p->name,
                took);
        ctl_event(p->c->events, p->k, p->obj, "Normal", "TimelineCreated",
                  "created timeline %s at %s (the pageserver took %lld ms)", timeline, lsn, took);
        return 0;
    }
    if (st / 100 == 4) {
        snprintf(why, whycap, "the pageserver refused the timeline: %s", error_of(resp));
        json_decref(resp);
        /* 409: the branch point is not (yet) in the parent's committed and
         * ingested WAL; it may be soon (ingest lags), or never (an LSN in
         * the future): reported, and asked again */
        return st == 409 ? 2 : 1;
    }
    lb_warn("pageserver could not create timeline=%s branch=%s/%s: %ld %s", timeline, p->ns,
            p->name, st, error_of(resp));
    json_decref(resp);
    return LB_EPROTO;
}

static int
delete_timeline(branch_pass *p, const char *timeline)
{
    char suffix[100];
    snprintf(suffix, sizeof(suffix), "/%s", timeline);
    long st = 0;
    json_t *resp = NULL;
    int rc = ps_call(p, "DELETE", suffix, NULL, 60000, &st, &resp);
    if (rc == 0 && st != 200 && st != 404) {
        lb_warn("pageserver could not delete timeline=%s: %ld %s", timeline, st, error_of(resp));
        rc = LB_EPROTO;
    }
    if (rc == 0)
        lb_info("deleted timeline=%s branch=%s/%s", timeline, p->ns, p->name);
    json_decref(resp);
    return rc;
}

/* ---- the pass ---- */

static int
on_delete(branch_pass *p, ctl_result *res)
{
    char kids[1024];
    int nkids = 0;
    int rc = children(p, kids, sizeof(kids), &nkids);
    if (rc)
        return rc;
    json_object_set_new(p->status, "phase", json_string("Deleting"));
    if (nkids) {
        char why[1200];
        snprintf(why, sizeof(why),
                 "branch has child branches (%s): it is deleted once they are gone", kids);
        set_cond(p, "Ready", "False", "HasChildBranches", why);
        ctl_event(p->c->events, p->k, p->obj, "Warning", "HasChildBranches", "%s", why);
        res->requeue_ms = 5000;
        return finish(p, "Deleting");
    }
    const char *tl = annotation(p->obj, TIMELINE_ANNOTATION);
    bool cluster_going = !p->cluster || ctl_deleting(p->cluster);
    if (tl && !cluster_going) {
        if ((rc = load_cluster(p)) == 0 && (rc = find_pageserver(p)) == 0) {
            if (!p->ps_url[0]) {
                set_cond(p, "Ready", "False", "PageserverNotReady",
                         "waiting for the pageserver to delete the timeline");
                res->requeue_ms = 3000;
                return finish(p, "Deleting");
            }
            rc = delete_timeline(p, tl);
            const char *prev = annotation(p->obj, PREVIOUS_ANNOTATION);
            if (rc == 0 && prev)
                rc = delete_timeline(p, prev);
        }
        if (rc)
            return rc;
        ctl_event(p->c->events, p->k, p->obj, "Normal", "TimelineDeleted", "deleted timeline %s",
                  tl);
    }
    return ctl_set_finalizer(p->k, p->path, p->obj, CTL_BRANCH_FINALIZER, false);
}

int
ctl_reconcile_branch(ctl_ctx *c, ctl_kube *k, const char *ns, const char *name, ctl_result *res)
{
    branch_pass p = {.c = c, .k = k, .ns = ns, .name = name};
    ctl_kube_path(p.path, sizeof(p.path), CTL_GROUP_VERSION, ns, "branches", name, NULL);
    ctl_now_rfc3339(p.now, sizeof(p.now));
    int rc = ctl_kube_get(k, p.path, &p.obj);
    if (rc == LB_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    p.spec = json_object_get(p.obj, "spec");
    p.gen = json_integer_value(ctl_at(p.obj, "metadata.generation"));
    p.status = json_deep_copy(json_object_get(p.obj, "status"));
    if (!json_is_object(p.status)) {
        json_decref(p.status);
        p.status = json_object();
    }
    p.conds = json_object_get(p.status, "conditions");
    if (!json_is_array(p.conds)) {
        p.conds = json_array();
        json_object_set_new(p.status, "conditions", p.conds);
    }
    if (ctl_str_at(p.spec, "clusterRef.name")) {
        snprintf(p.cluster_buf, sizeof(p.cluster_buf), "%s", ctl_str_at(p.spec, "clusterRef.name"));
        p.cluster_name = p.cluster_buf;
    }
    char why[1200], cpath[1024];
    json_t *sts = NULL, *ro_sts = NULL;
    if (p.cluster_name) {
        ctl_kube_path(cpath, sizeof(cpath), CTL_GROUP_VERSION, ns, "lakebaseclusters",
                      p.cluster_name, NULL);
        rc = ctl_kube_get(k, cpath, &p.cluster);
        if (rc && rc != LB_ENOTFOUND)
            goto out;
        rc = 0;
    }

    if (ctl_deleting(p.obj)) {
        rc = ctl_has_finalizer(p.obj, CTL_BRANCH_FINALIZER) ? on_delete(&p, res) : 0;
        goto out;
    }
    if ((rc = ctl_set_finalizer(k, p.path, p.obj, CTL_BRANCH_FINALIZER, true)))
        goto out;
    if (rc == 0 && !ctl_has_finalizer(p.obj, CTL_BRANCH_FINALIZER)) {
        /* take the new resourceVersion */
        json_decref(p.obj);
        p.obj = NULL;
        if ((rc = ctl_kube_get(k, p.path, &p.obj)))
            goto out;
        p.spec = json_object_get(p.obj, "spec");
    }

    /* ttl */
    const char *ttl = ctl_str_at(p.spec, "ttl");
    if (ttl) {
        int64_t ms, created;
        if (lb_duration_parse(ttl, &ms) != 0 ||
            ctl_rfc3339_parse(ctl_meta_str(p.obj, "creationTimestamp"), &created) != 0) {
            snprintf(why, sizeof(why), "spec.ttl \"%s\" is not a duration such as \"24h\"", ttl);
            rc = waiting(&p, "InvalidSpec", why, "Failed", true);
            goto out;
        }
        int64_t expires = created + ms / 1000;
        char when[40];
        ctl_time_rfc3339(expires, when, sizeof(when));
        json_object_set_new(p.status, "expiresAt", json_string(when));
        int64_t left_ms = (expires - (int64_t)time(NULL)) * 1000;
        if (left_ms <= 0) {
            lb_info("branch=%s/%s expired (ttl %s): deleting it", ns, name, ttl);
            ctl_event(c->events, k, p.obj, "Normal", "Expired", "ttl %s has passed: deleting", ttl);
            rc = ctl_kube_delete(k, p.path);
            goto out;
        }
        res->requeue_ms = left_ms;
    }

    /* checks */
    if (!p.cluster_name || !p.cluster) {
        snprintf(why, sizeof(why), "LakebaseCluster \"%s\" does not exist",
                 p.cluster_name ? p.cluster_name : "");
        rc = waiting(&p, "ClusterNotFound", why, "Failed", true);
        res->requeue_ms = 10000;
        goto out;
    }
    const char *lsn = ctl_str_at(p.spec, "lsn"), *ts = ctl_str_at(p.spec, "timestamp");
    bool has_point = lsn || ts; /* lsn and ts point into p.obj, which patches replace */
    char parent_buf[300] = "";
    if (ctl_str_at(p.spec, "parent"))
        snprintf(parent_buf, sizeof(parent_buf), "%s", ctl_str_at(p.spec, "parent"));
    const char *parent = parent_buf[0] ? parent_buf : NULL;
    int64_t tsec;
    if (lsn && ts) {
        rc =
            waiting(&p, "InvalidSpec", "give spec.lsn or spec.timestamp, not both", "Failed", true);
        goto out;
    }
    if (ts && ctl_rfc3339_parse(ts, &tsec) != 0) {
        snprintf(why, sizeof(why), "spec.timestamp \"%s\" is not an RFC 3339 time", ts);
        rc = waiting(&p, "InvalidSpec", why, "Failed", true);
        goto out;
    }
    if ((lsn || ts) && !parent) {
        rc = waiting(&p, "InvalidSpec", "spec.lsn and spec.timestamp need spec.parent", "Failed",
                     true);
        goto out;
    }
    json_t *imm = json_pack(
        "{s:O?, s:O?, s:O?, s:O?}", "clusterRef", json_object_get(p.spec, "clusterRef"), "parent",
        json_object_get(p.spec, "parent"), "lsn", json_object_get(p.spec, "lsn"), "timestamp",
        json_object_get(p.spec, "timestamp"));
    char ihash[17];
    ctl_json_hash(imm, ihash);
    json_decref(imm);
    const char *have = annotation(p.obj, IMMUTABLE_ANNOTATION);
    if (have && strcmp(have, ihash) != 0) {
        rc = waiting(&p, "ImmutableFieldChanged",
                     "spec.clusterRef, spec.parent, spec.lsn and spec.timestamp are immutable: "
                     "put the old values back (the branch runs on with them)",
                     NULL, true);
        goto out;
    }
    if (ctl_deleting(p.cluster)) {
        rc = waiting(&p, "ClusterDeleting", "the cluster is being deleted", NULL, false);
        goto out;
    }
    const char *parent_tl = NULL;
    json_t *parent_obj = NULL;
    if (parent) {
        char ppath[1024];
        ctl_kube_path(ppath, sizeof(ppath), CTL_GROUP_VERSION, ns, "branches", parent, NULL);
        rc = ctl_kube_get(k, ppath, &parent_obj);
        if (rc == LB_ENOTFOUND) {
            snprintf(why, sizeof(why), "parent branch \"%s\" does not exist", parent);
            rc = waiting(&p, "ParentNotFound", why, "Failed", true);
            res->requeue_ms = 10000;
            goto out;
        }
        if (rc)
            goto out;
        const char *pc = ctl_str_at(parent_obj, "spec.clusterRef.name");
        if (!pc || strcmp(pc, p.cluster_name) != 0) {
            snprintf(why, sizeof(why), "parent branch \"%s\" belongs to another cluster", parent);
            json_decref(parent_obj);
            rc = waiting(&p, "InvalidSpec", why, "Failed", true);
            goto out;
        }
        parent_tl = ctl_str_at(parent_obj, "status.timelineId");
        if (!parent_tl || ctl_deleting(parent_obj)) {
            json_decref(parent_obj);
            snprintf(why, sizeof(why), "waiting for parent branch \"%s\" to have a timeline",
                     parent);
            rc = waiting(&p, "ParentNotReady", why, "Creating", false);
            res->requeue_ms = 3000;
            goto out;
        }
    }
    char parent_tl_buf[40] = "";
    if (parent_tl)
        snprintf(parent_tl_buf, sizeof(parent_tl_buf), "%s", parent_tl);
    json_decref(parent_obj);

    if ((rc = load_cluster(&p)) != 0) {
        if (rc == LB_ENOTFOUND) {
            rc = waiting(&p, "ClusterNotReady", "waiting for the cluster's credentials", "Creating",
                         false);
            res->requeue_ms = 3000;
        }
        goto out;
    }
    if ((rc = find_pageserver(&p)) != 0)
        goto out;
    if (!p.ps_url[0]) {
        rc = waiting(&p, "PageserverNotReady", "waiting for the pageserver", "Creating", false);
        res->requeue_ms = 3000;
        goto out;
    }

    /* the timeline id, recorded before it is made */
    const char *tl = annotation(p.obj, TIMELINE_ANNOTATION);
    json_int_t want_reset = json_integer_value(ctl_at(p.spec, "resetGeneration"));
    const char *done_reset_s = annotation(p.obj, RESET_ANNOTATION);
    json_int_t done_reset = done_reset_s ? strtoll(done_reset_s, NULL, 10) : 0;
    bool resetting = tl && parent && want_reset > done_reset;
    if (!tl || resetting || !have) {
        char fresh[40], gen_s[32];
        json_t *ann = json_object();
        if (!tl || resetting) {
            if ((rc = ctl_random_id(fresh, sizeof(fresh)))) {
                json_decref(ann);
                goto out;
            }
            json_object_set_new(ann, TIMELINE_ANNOTATION, json_string(fresh));
            if (resetting) {
                json_object_set_new(ann, PREVIOUS_ANNOTATION, json_string(tl));
                lb_info("resetting branch=%s/%s to its parent: timeline %s replaces %s", ns, name,
                        fresh, tl);
            }
        }
        snprintf(gen_s, sizeof(gen_s), "%lld", (long long)want_reset);
        json_object_set_new(ann, RESET_ANNOTATION, json_string(gen_s));
        json_object_set_new(ann, IMMUTABLE_ANNOTATION, json_string(ihash));
        if ((rc = patch_annotations(&p, ann)))
            goto out;
        tl = annotation(p.obj, TIMELINE_ANNOTATION);
    }
    char timeline[40];
    snprintf(timeline, sizeof(timeline), "%s", tl);
    bool was_reset = annotation(p.obj, PREVIOUS_ANNOTATION) != NULL;
    char branch_lsn[64] = "";
    rc = ensure_timeline(&p, timeline, parent ? parent_tl_buf : NULL, was_reset, branch_lsn,
                         sizeof(branch_lsn), why, sizeof(why));
    if (rc == 1 || rc == 2) {
        bool explicit_point = has_point && !was_reset;
        bool retry_soon = rc == 2 && !explicit_point;
        rc = waiting(&p, "TimelineCreateFailed", why, retry_soon ? "Creating" : "Failed",
                     !retry_soon);
        res->requeue_ms = retry_soon ? 2000 : 30000;
        goto out;
    }
    if (rc)
        goto out;
    json_object_set_new(p.status, "timelineId", json_string(timeline));
    json_object_set_new(p.status, "branchLsn", json_string(branch_lsn));
    json_object_set_new(p.status, "resetGeneration", json_integer(want_reset));

    /* the safekeepers hold the timeline before a primary starts on it */
    if ((rc = create_sk_timelines(&p, timeline)) != 0) {
        rc = waiting(&p, "SafekeepersNotReady",
                     "waiting for a majority of safekeepers to hold the timeline", "Creating",
                     false);
        res->requeue_ms = 3000;
        goto out;
    }

    /* the compute */
    bool enabled = !json_is_false(ctl_at(p.spec, "compute.enabled"));
    json_t *rj = ctl_at(p.spec, "compute.replicas");
    int replicas = enabled ? (rj ? (int)json_integer_value(rj) : 1) : 0;
    if (replicas > 1)
        replicas = 1;
    if (replicas < 0)
        replicas = 0;
    if ((rc = compute(&p, &PRIMARY, timeline, replicas, &sts))) {
        snprintf(why, sizeof(why), "could not write the compute's objects: %s", ctl_kube_error(k));
        waiting(&p, "ReconcileFailed", why, NULL, true);
        goto out;
    }
    bool ready = replicas == 1 && compute_pod_ready(&p, timeline, sts);
    if (ready && (rc = point_pageserver(&p, timeline)) != 0) {
        ready = false;
        rc = 0;
        res->requeue_ms = 3000;
    }
    if (ready && was_reset) {
        const char *prev = annotation(p.obj, PREVIOUS_ANNOTATION);
        char prev_buf[40];
        snprintf(prev_buf, sizeof(prev_buf), "%s", prev);
        if (delete_timeline(&p, prev_buf) == 0) {
            json_t *ann = json_pack("{s:n}", PREVIOUS_ANNOTATION);
            patch_annotations(&p, ann);
            ctl_event(c->events, k, p.obj, "Normal", "BranchReset",
                      "reset to the parent's state: timeline %s replaces %s", timeline, prev_buf);
        }
    }
    /* the read replicas: hot standbys of the timeline, behind <branch>-ro */
    json_t *rr = ctl_at(p.spec, "compute.readReplicas");
    int want_ro = enabled && json_is_integer(rr) ? (int)json_integer_value(rr) : 0;
    if (want_ro < 0)
        want_ro = 0;
    if ((rc = read_replicas(&p, timeline, want_ro, &ro_sts))) {
        snprintf(why, sizeof(why), "could not write the read replicas' objects: %s",
                 ctl_kube_error(k));
        waiting(&p, "ReconcileFailed", why, NULL, true);
        goto out;
    }
    if (ro_sts) {
        char ro_svc[300], ro_sel[600], ro_ep[600];
        replica_service(&p, ro_svc, sizeof(ro_svc));
        snprintf(ro_sel, sizeof(ro_sel), "app.kubernetes.io/component=%s,lakebase.io/branch=%s",
                 REPLICA.component, name);
        snprintf(ro_ep, sizeof(ro_ep), "%s.%s.svc.cluster.local:%d", ro_svc, ns, CTL_PG_PORT);
        json_object_set_new(p.status, "readReplicas",
                            json_pack("{s:i, s:I, s:s, s:s}", "replicas", want_ro, "ready",
                                      json_integer_value(ctl_at(ro_sts, "status.readyReplicas")),
                                      "endpoint", ro_ep, "selector", ro_sel));
        if (json_integer_value(ctl_at(ro_sts, "status.readyReplicas")) != want_ro &&
            (res->requeue_ms == 0 || res->requeue_ms > 3000))
            res->requeue_ms = 3000;
    } else {
        json_object_del(p.status, "readReplicas");
    }

    char sname[300], selector[600], endpoint[600];
    compute_names(&p, &PRIMARY, sname, sizeof(sname));
    snprintf(selector, sizeof(selector),
             "app.kubernetes.io/component=compute,lakebase.io/branch=%s", name);
    snprintf(endpoint, sizeof(endpoint), "%s.%s.svc.cluster.local:%d", sname, ns, CTL_PG_PORT);
    const char *state = !enabled        ? "Disabled"
                        : replicas == 0 ? "Suspended"
                        : ready         ? "Running"
                                        : "Starting";
    json_object_set_new(p.status, "compute",
                        json_pack("{s:s, s:I, s:s}", "state", state, "replicas",
                                  json_integer_value(ctl_at(sts, "status.replicas")), "selector",
                                  selector));
    json_object_set_new(p.status, "endpoint", json_string(endpoint));
    set_cond(&p, "ComputeReady", ready ? "True" : "False",
             ready           ? "ComputeRunning"
             : !enabled      ? "ComputeDisabled"
             : replicas == 0 ? "ComputeSuspended"
                             : "ComputeStarting",
             ready ? "the compute is ready" : state);
    bool settled = ready || replicas == 0;
    set_cond(&p, "Ready", settled ? "True" : "False",
             ready           ? "BranchReady"
             : replicas == 0 ? "BranchSuspended"
                             : "ComputeStarting",
             ready           ? "the timeline exists and its compute is ready"
             : replicas == 0 ? "the timeline exists; its compute is suspended"
                             : "the timeline exists; waiting for its compute");
    const char *old_phase = json_string_value(json_object_get(p.status, "phase"));
    const char *phase = ready ? "Active" : replicas == 0 ? "Suspended" : "Creating";
    if (ready && (!old_phase || strcmp(old_phase, "Active") != 0))
        ctl_event(c->events, k, p.obj, "Normal", "BranchReady", "timeline %s at %s, compute ready",
                  timeline, branch_lsn);
    rc = finish(&p, phase);
    if (!settled && (res->requeue_ms == 0 || res->requeue_ms > 3000))
        res->requeue_ms = 3000;
out:
    json_decref(sts);
    json_decref(ro_sts);
    lb_auth_signer_free(p.signer);
    explicit_bzero(p.mgmt, sizeof(p.mgmt));
    json_decref(p.status);
    json_decref(p.cluster);
    json_decref(p.obj);
    return rc;
}
