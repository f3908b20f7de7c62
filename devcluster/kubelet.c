/*
 * kubelet.c: the node agent.
 *
 * Each pass (dc_kubelet_sync) is level-triggered, like kubelet's syncPod:
 *   1. list every Pod from the API server and every podman container
 *      labelled io.lakebase.devcluster=<cluster id>;
 *   2. a Pod without a podman pod gets one: volumes written, `pod create`,
 *      `pod start` (the infra container takes an address on podman's
 *      bridge), init containers run to completion in order, then each
 *      container created and started. A container that cannot be created
 *      (missing secret, image not present) waits with the reason a real
 *      kubelet gives, and is retried on later passes;
 *   3. an exited container is restarted per restartPolicy: the first
 *      restart at once, then after 10 s, 20 s, ... up to 5 min
 *      (CrashLoopBackOff), the back-off forgotten after 10 min of running;
 *   4. readiness and liveness probes (exec, httpGet, tcpSocket) run when
 *      due; a failed liveness probe stops the container, which step 3
 *      restarts;
 *   5. a Pod with a deletionTimestamp is stopped (its grace period, then
 *      SIGKILL) in a thread of its own and deleted with grace 0; a podman
 *      pod whose Pod is gone is removed;
 *   6. the status (phase, conditions, podIP, containerStatuses) is written
 *      through pods/NAME/status when it changed.
 *
 * State kept here (ids, restart counts, probe counters) is rebuilt from the
 * Pod's status after a restart of devcluster: restartCount continues.
 * A restart reuses the podman container (`podman start`), so its writable
 * layer survives a restart, unlike Kubernetes which makes a new container.
 */
#include "kubelet.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "controllers.h"
#include "errors.h"
#include "event_loop.h"
#include "kclient.h"
#include "log.h"
#include "podman.h"
#include "volumes.h"

/* Names and messages are cut to their fixed buffers on purpose. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define KL_BACKOFF_BASE_MS 10000
#define KL_BACKOFF_MAX_MS 300000
#define KL_BACKOFF_RESET_MS 600000
#define KL_CREATE_RETRY_MS 3000

typedef struct kl_probe_state {
    int successes, failures;
    int64_t next_ms;
} kl_probe_state;

typedef struct kl_container {
    char name[128];
    char id[80];
    char image[512];
    bool init;
    bool init_done;
    int restart_count;
    int64_t retry_at_ms; /* create retry or restart back-off */
    int64_t running_since_ms;
    int64_t kill_at_ms; /* liveness failed: SIGTERM sent, SIGKILL due then */
    bool ready;
    bool seen_running;
    char reason[64];
    char message[512];
    json_t *last_state; /* lastState.terminated of the previous run, or NULL */
    kl_probe_state live, readiness;
    int last_exit_code;
    long long last_started, last_finished;
} kl_container;

typedef struct kl_pod {
    char uid[80], ns[256], name[256];
    char pod_name[600];
    char pod_id[80];
    char ip[64];
    char start_time[32];
    kl_container *cs;
    size_t ncs;
    bool seen;
    bool failed_init;
    bool terminating;
    bool sandbox_stopped; /* a finished pod's infra container was stopped */
    int64_t retry_at_ms;
    char reason[64], message[512];
    struct kl_pod *next;
} kl_pod;

struct dc_kubelet {
    dc_kubelet_config conf;
    char *cluster_id, *node_dir, *api_url, *ca_file, *token, *api_host;
    dc_kclient *api;
    kl_pod *pods;
    json_t *image_users; /* image -> configured user */
    pthread_mutex_t term_mu;
    int terminating_threads;
};

static const char *
jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void
rfc3339(long long unix_s, char *out, size_t cap)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
now_rfc3339(char *out, size_t cap)
{
    rfc3339((long long)time(NULL), out, cap);
}

/* Run podman with args (NULL-terminated list); stdout trimmed into out. */
static int
podman(lb_buf *out, lb_buf *err, int timeout_ms, const char *const *args)
{
    int rc = dc_podman_run(args, out, err, timeout_ms);
    if (out && out->data)
        while (out->len && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == ' '))
            out->data[--out->len] = 0;
    if (err && err->data)
        while (err->len && err->data[err->len - 1] == '\n')
            err->data[--err->len] = 0;
    return rc;
}

/* ---- this cluster's containers as podman sees them ---- */

/* {id -> ps entry} for every container of the cluster, or NULL. */
static json_t *
list_containers(const char *cluster_id)
{
    char filter[300];
    snprintf(filter, sizeof(filter), "label=io.lakebase.devcluster=%s", cluster_id);
    const char *args[] = {"ps", "-a", "--filter", filter, "--format", "json", NULL};
    lb_buf out = LB_BUF_INIT, err = LB_BUF_INIT;
    int rc = podman(&out, &err, 60000, args);
    json_t *byid = NULL;
    if (rc == 0) {
        json_t *arr = json_loadb(out.data ? out.data : "[]", out.len ? out.len : 2, 0, NULL);
        if (json_is_array(arr)) {
            byid = json_object();
            size_t i;
            json_t *c;
            json_array_foreach(arr, i, c)
            {
                if (jstr(c, "Id"))
                    json_object_set(byid, jstr(c, "Id"), c);
            }
        }
        json_decref(arr);
    } else {
        lb_warn("podman ps failed status=%d error=\"%s\"", rc, err.data ? err.data : "");
    }
    lb_buf_free(&out);
    lb_buf_free(&err);
    return byid;
}

int
dc_kubelet_remove_all(const char *cluster_id)
{
    char filter[300];
    snprintf(filter, sizeof(filter), "label=io.lakebase.devcluster=%s", cluster_id);
    const char *args[] = {"pod", "ps", "-q", "--no-trunc", "--filter", filter, NULL};
    lb_buf out = LB_BUF_INIT;
    int removed = 0;
    if (podman(&out, NULL, 60000, args) == 0 && out.data) {
        char *save = NULL;
        for (char *id = strtok_r(out.data, "\n", &save); id; id = strtok_r(NULL, "\n", &save)) {
            const char *rm[] = {"pod", "rm", "--force", "--time=5", id, NULL};
            lb_buf err = LB_BUF_INIT;
            if (podman(NULL, &err, 120000, rm) == 0)
                removed++;
            else
                lb_warn("could not remove podman pod id=%s error=\"%s\"", id,
                        err.data ? err.data : "");
            lb_buf_free(&err);
        }
    }
    lb_buf_free(&out);
    /* containers outside any pod (none are made, but be thorough) */
    const char *cargs[] = {"ps", "-a", "-q", "--no-trunc", "--filter", filter, NULL};
    if (podman(&out, NULL, 60000, cargs) == 0 && out.data) {
        char *save = NULL;
        for (char *id = strtok_r(out.data, "\n", &save); id; id = strtok_r(NULL, "\n", &save)) {
            const char *rm[] = {"rm", "--force", "--time=5", id, NULL};
            if (podman(NULL, NULL, 120000, rm) == 0)
                removed++;
        }
    }
    lb_buf_free(&out);
    return removed;
}

/* ---- pods kept in memory ---- */

static kl_pod *
find_pod(dc_kubelet *k, const char *uid)
{
    for (kl_pod *p = k->pods; p; p = p->next)
        if (strcmp(p->uid, uid) == 0)
            return p;
    return NULL;
}

static void
free_pod(kl_pod *p)
{
    for (size_t i = 0; i < p->ncs; i++)
        json_decref(p->cs[i].last_state);
    free(p->cs);
    free(p);
}

/* restartCount and lastState from the Pod's status, so that they continue
 * across a restart of devcluster. */
static void
restore_counts(kl_container *c, json_t *pod)
{
    size_t i;
    json_t *st;
    json_t *status = json_object_get(pod, "status");
    json_array_foreach(
        json_object_get(status, c->init ? "initContainerStatuses" : "containerStatuses"), i, st)
    {
        const char *n = jstr(st, "name");
        if (n && strcmp(n, c->name) == 0) {
            c->restart_count = (int)json_integer_value(json_object_get(st, "restartCount"));
            json_t *term = json_object_get(json_object_get(st, "lastState"), "terminated");
            if (term)
                c->last_state = json_deep_copy(term);
            /* a container that ran before devcluster stopped counts a restart */
            if (!c->init && json_object_get(json_object_get(st, "state"), "running"))
                c->restart_count++;
        }
    }
}

static kl_pod *
new_pod(json_t *pod, const char *cluster_id)
{
    json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
    kl_pod *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    snprintf(p->uid, sizeof(p->uid), "%s", jstr(meta, "uid"));
    snprintf(p->ns, sizeof(p->ns), "%s",
             jstr(meta, "namespace") ? jstr(meta, "namespace") : "default");
    snprintf(p->name, sizeof(p->name), "%s", jstr(meta, "name"));
    dc_podman_pod_name(cluster_id, pod, p->pod_name, sizeof(p->pod_name));
    json_t *inits = json_object_get(spec, "initContainers"),
           *cs = json_object_get(spec, "containers");
    p->ncs = json_array_size(inits) + json_array_size(cs);
    p->cs = calloc(p->ncs ? p->ncs : 1, sizeof(*p->cs));
    if (!p->cs) {
        free(p);
        return NULL;
    }
    size_t n = 0, i;
    json_t *c;
    json_array_foreach(inits, i, c)
    {
        snprintf(p->cs[n].name, sizeof(p->cs[n].name), "%s",
                 jstr(c, "name") ? jstr(c, "name") : "");
        snprintf(p->cs[n].image, sizeof(p->cs[n].image), "%s",
                 jstr(c, "image") ? jstr(c, "image") : "");
        p->cs[n].init = true;
        restore_counts(&p->cs[n], pod);
        n++;
    }
    json_array_foreach(cs, i, c)
    {
        snprintf(p->cs[n].name, sizeof(p->cs[n].name), "%s",
                 jstr(c, "name") ? jstr(c, "name") : "");
        snprintf(p->cs[n].image, sizeof(p->cs[n].image), "%s",
                 jstr(c, "image") ? jstr(c, "image") : "");
        restore_counts(&p->cs[n], pod);
        n++;
    }
    const char *st = jstr(json_object_get(pod, "status"), "startTime");
    if (st)
        snprintf(p->start_time, sizeof(p->start_time), "%s", st);
    else
        now_rfc3339(p->start_time, sizeof(p->start_time));
    return p;
}

static json_t *
spec_container(json_t *pod, const kl_container *c)
{
    json_t *spec = json_object_get(pod, "spec");
    size_t i;
    json_t *sc;
    json_array_foreach(json_object_get(spec, c->init ? "initContainers" : "containers"), i, sc)
    {
        const char *n = jstr(sc, "name");
        if (n && strcmp(n, c->name) == 0)
            return sc;
    }
    return NULL;
}

/* ---- creating a pod ---- */

/* GET every secret and config map the pod refers to; missing ones are
 * simply absent (the translation reports them). */
static json_t *
fetch_refs(dc_kubelet *k, json_t *pod, const char *ns)
{
    json_t *need = dc_volumes_refs_needed(pod), *refs = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(need, key, v)
    {
        char path[1024];
        bool secret = strncmp(key, "secret/", 7) == 0;
        const char *name = strchr(key, '/') + 1;
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/%s/%s", ns,
                 secret ? "secrets" : "configmaps", name);
        long status = 0;
        json_t *obj = NULL;
        if (dc_kclient_do(k->api, "GET", path, NULL, NULL, &status, &obj) == 0 && status == 200)
            json_object_set(refs, key, obj);
        json_decref(obj);
    }
    json_decref(need);
    return refs;
}

/* A token for the pod's service account through TokenRequest, as kubelet
 * gets one; NULL (logged) if the API server refuses. Caller frees. */
static char *
request_token(dc_kubelet *k, json_t *pod, const char *ns)
{
    const char *sa = jstr(json_object_get(pod, "spec"), "serviceAccountName");
    char path[1024];
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/serviceaccounts/%s/token", ns,
             sa ? sa : "default");
    json_t *req =
        json_pack("{s:s,s:s,s:{s:[s],s:I}}", "apiVersion", "authentication.k8s.io/v1", "kind",
                  "TokenRequest", "spec", "audiences", "https://kubernetes.default.svc",
                  "expirationSeconds", (json_int_t)(365 * 24 * 3600));
    long status = 0;
    json_t *resp = NULL;
    char *token = NULL;
    int rc = dc_kclient_do(k->api, "POST", path, req, NULL, &status, &resp);
    json_decref(req);
    const char *t = jstr(json_object_get(resp, "status"), "token");
    if (rc == 0 && status < 300 && t)
        token = strdup(t);
    else
        lb_warn("no service account token for pod namespace=%s pod=%s error=\"%s\"", ns,
                jstr(json_object_get(pod, "metadata"), "name"), dc_kclient_error(k->api));
    json_decref(resp);
    return token;
}

static const char *
image_user(dc_kubelet *k, const char *image, bool *present)
{
    json_t *u = json_object_get(k->image_users, image);
    if (u) {
        *present = true;
        return json_string_value(u);
    }
    const char *args[] = {"image", "inspect", "--format", "{{.Config.User}}", image, NULL};
    lb_buf out = LB_BUF_INIT;
    int rc = podman(&out, NULL, 30000, args);
    *present = rc == 0;
    if (rc == 0)
        json_object_set_new(k->image_users, image, json_string(out.data ? out.data : ""));
    lb_buf_free(&out);
    return rc == 0 ? json_string_value(json_object_get(k->image_users, image)) : NULL;
}

static void
set_reason(kl_container *c, const char *reason, const char *message)
{
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
    snprintf(c->message, sizeof(c->message), "%s", message ? message : "");
}

/* Paths of a pod's host state. */
static void
pod_dir(dc_kubelet *k, const kl_pod *p, const char *sub, char *out, size_t cap)
{
    snprintf(out, cap, "%s/pods/%s%s%s", k->node_dir, p->uid, sub ? "/" : "", sub ? sub : "");
}

static void
fill_ctx(dc_kubelet *k, kl_pod *p, dc_pod_ctx *ctx, char *vol, char *pvc, char *hosts, char *sa,
         size_t cap)
{
    pod_dir(k, p, "volumes", vol, cap);
    pod_dir(k, p, "sa", sa, cap);
    snprintf(pvc, cap, "%s/pvc", k->node_dir);
    snprintf(hosts, cap, "%s/hosts/%s", k->node_dir, p->ns);
    memset(ctx, 0, sizeof(*ctx));
    ctx->cluster_id = k->cluster_id;
    ctx->pod_ip = p->ip;
    ctx->node_name = DC_KUBELET_NODE_NAME;
    ctx->volume_root = vol;
    ctx->pvc_root = pvc;
    ctx->hosts_file = hosts;
    ctx->sa_dir = sa;
    ctx->api_host = k->api_host;
    ctx->api_port = k->conf.api_port;
}

/* Every claim the pod mounts must exist (a real kubelet waits for it to be
 * bound); its directory is made on first use. */
static int
check_claims(dc_kubelet *k, kl_pod *p, json_t *pod, lb_buf *err)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(json_object_get(pod, "spec"), "volumes"), i, v)
    {
        const char *claim = jstr(json_object_get(v, "persistentVolumeClaim"), "claimName");
        if (!claim)
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/persistentvolumeclaims/%s", p->ns,
                 claim);
        long status = 0;
        json_t *obj = NULL;
        int rc = dc_kclient_do(k->api, "GET", path, NULL, NULL, &status, &obj);
        json_decref(obj);
        if (rc || status != 200) {
            lb_buf_printf(err, "persistentvolumeclaim \"%s\" not found", claim);
            return LB_ENOTFOUND;
        }
        if (strchr(claim, '/') || strstr(claim, ".."))
            return LB_EPARSE;
        snprintf(path, sizeof(path), "%s/pvc/%s/%s", k->node_dir, p->ns, claim);
        if ((rc = dc_mkdirs(path, 0777)) != 0) {
            lb_buf_printf(err, "could not create the directory of claim \"%s\": %s", claim,
                          strerror(-rc));
            return rc;
        }
        json_t *fsgroup = json_object_get(
            json_object_get(json_object_get(pod, "spec"), "securityContext"), "fsGroup");
        if (json_is_integer(fsgroup) &&
            (rc = dc_volumes_apply_fsgroup(path, (long)json_integer_value(fsgroup), true)) != 0) {
            lb_buf_printf(err, "could not apply fsGroup to claim \"%s\": %s", claim, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

/* Look up the infra container's address on the bridge. */
static void
read_pod_ip(kl_pod *p)
{
    const char *args[] = {"pod", "inspect", "--format", "{{.InfraContainerID}}", p->pod_id, NULL};
    lb_buf infra = LB_BUF_INIT, ip = LB_BUF_INIT;
    if (podman(&infra, NULL, 30000, args) == 0 && infra.data) {
        const char *iargs[] = {"inspect", "--format",
                               "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                               infra.data, NULL};
        if (podman(&ip, NULL, 30000, iargs) == 0 && ip.data) {
            char *sp = strchr(ip.data, ' ');
            if (sp)
                *sp = 0;
            snprintf(p->ip, sizeof(p->ip), "%s", ip.data);
        }
    }
    lb_buf_free(&infra);
    lb_buf_free(&ip);
}

/* Create the podman pod: volumes, service account, `pod create`, `pod start`. */
static int
create_pod(dc_kubelet *k, kl_pod *p, json_t *pod)
{
    char vol[2048], pvc[2048], hosts[2048], sa[2048];
    dc_pod_ctx ctx;
    fill_ctx(k, p, &ctx, vol, pvc, hosts, sa, sizeof(vol));
    lb_buf err = LB_BUF_INIT;
    json_t *refs = fetch_refs(k, pod, p->ns);
    char *token = request_token(k, pod, p->ns);
    int rc = check_claims(k, p, pod, &err);
    rc = rc ? rc : dc_volumes_prepare(pod, vol, refs, token, k->ca_file, &err);
    if (!rc && (rc = dc_volumes_write_sa(sa, token, k->ca_file, p->ns)) != 0)
        lb_buf_printf(&err, "could not write the service account files: %s", strerror(-rc));
    if (access(hosts, F_OK) != 0) {
        char dir[2100];
        snprintf(dir, sizeof(dir), "%s/hosts", k->node_dir);
        dc_mkdirs(dir, 0755);
        FILE *f = fopen(hosts, "a");
        if (f) {
            fputs(dc_dns_header(), f);
            fclose(f);
        }
    }
    dc_argv args = {0};
    rc = rc ? rc : dc_podman_pod_args(&ctx, pod, &args, &err);
    if (!rc) {
        lb_buf out = LB_BUF_INIT;
        int st = podman(&out, &err, 120000, (const char *const *)args.v);
        if (st == 0 && out.data) {
            snprintf(p->pod_id, sizeof(p->pod_id), "%s", out.data);
            const char *start[] = {"pod", "start", p->pod_id, NULL};
            lb_buf_reset(&err);
            st = podman(NULL, &err, 120000, start);
        }
        if (st != 0) {
            lb_error("could not create podman pod namespace=%s pod=%s error=\"%s\"", p->ns, p->name,
                     err.data ? err.data : "");
            rc = LB_EPROTO;
        }
        lb_buf_free(&out);
    }
    if (rc) {
        snprintf(p->reason, sizeof(p->reason), "%s",
                 rc == LB_ENOTFOUND ? "CreateContainerConfigError" : "FailedCreatePodSandBox");
        snprintf(p->message, sizeof(p->message), "%s", err.data ? err.data : lb_strerror(rc));
        p->retry_at_ms = lb_now_ms() + KL_CREATE_RETRY_MS;
        if (p->pod_id[0]) {
            const char *rm[] = {"pod", "rm", "--force", p->pod_id, NULL};
            podman(NULL, NULL, 60000, rm);
            p->pod_id[0] = 0;
        }
    } else {
        p->reason[0] = p->message[0] = 0;
        read_pod_ip(p);
        lb_info("pod sandbox started namespace=%s pod=%s ip=%s", p->ns, p->name, p->ip);
    }
    dc_argv_free(&args);
    lb_buf_free(&err);
    json_decref(refs);
    free(token);
    return rc;
}

/* Create one podman container for c. */
static int
create_container(dc_kubelet *k, kl_pod *p, json_t *pod, kl_container *c)
{
    json_t *sc = spec_container(pod, c);
    if (!sc)
        return LB_EPARSE;
    bool present = false;
    const char *user = image_user(k, c->image, &present);
    if (!present) {
        char msg[700];
        snprintf(msg, sizeof(msg),
                 "Container image \"%s\" is not present with pull policy of Never", c->image);
        set_reason(c, "ErrImageNeverPull", msg);
        c->retry_at_ms = lb_now_ms() + KL_CREATE_RETRY_MS;
        return LB_ENOTFOUND;
    }
    char vol[2048], pvc[2048], hosts[2048], sa[2048];
    dc_pod_ctx ctx;
    fill_ctx(k, p, &ctx, vol, pvc, hosts, sa, sizeof(vol));
    json_t *refs = fetch_refs(k, pod, p->ns);
    ctx.refs = refs;
    ctx.image_user = user;
    dc_argv args = {0};
    lb_buf err = LB_BUF_INIT, out = LB_BUF_INIT;
    int rc = dc_podman_container_args(&ctx, pod, sc, &args, &err);
    if (rc == 0) {
        int st = podman(&out, &err, 120000, (const char *const *)args.v);
        if (st == 0 && out.data) {
            snprintf(c->id, sizeof(c->id), "%s", out.data);
        } else {
            /* a leftover container of the same name (a crash between create
             * and recording its id) is removed, then created next pass */
            char name[800];
            snprintf(name, sizeof(name), "%s-%s", p->pod_name, c->name);
            const char *rm[] = {"rm", "--force", name, NULL};
            if (err.data && strstr(err.data, "already in use"))
                podman(NULL, NULL, 60000, rm);
            rc = LB_EPROTO;
        }
    }
    if (rc) {
        set_reason(c, rc == LB_EPROTO ? "CreateContainerError" : "CreateContainerConfigError",
                   err.data ? err.data : lb_strerror(rc));
        c->retry_at_ms = lb_now_ms() + KL_CREATE_RETRY_MS;
        lb_warn("could not create container namespace=%s pod=%s container=%s error=\"%s\"", p->ns,
                p->name, c->name, c->message);
    } else {
        c->reason[0] = c->message[0] = 0;
    }
    dc_argv_free(&args);
    lb_buf_free(&err);
    lb_buf_free(&out);
    json_decref(refs);
    return rc;
}

static int
start_container(kl_pod *p, kl_container *c)
{
    const char *args[] = {"start", c->id, NULL};
    lb_buf err = LB_BUF_INIT;
    int st = podman(NULL, &err, 120000, args);
    if (st != 0) {
        set_reason(c, "RunContainerError", err.data ? err.data : "podman start failed");
        lb_warn("could not start container namespace=%s pod=%s container=%s error=\"%s\"", p->ns,
                p->name, c->name, c->message);
    } else {
        c->reason[0] = c->message[0] = 0;
        c->running_since_ms = lb_now_ms();
        c->live = (kl_probe_state){0};
        c->readiness = (kl_probe_state){0};
        c->ready = false;
    }
    lb_buf_free(&err);
    return st == 0 ? 0 : LB_EPROTO;
}

/* ---- probes ---- */

static int
probe_int(json_t *probe, const char *key, int dflt)
{
    json_t *v = json_object_get(probe, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : dflt;
}

/* A probe's port: a number, or the name of one of the container's ports. */
static int
probe_port(json_t *sc, json_t *port)
{
    if (json_is_integer(port))
        return (int)json_integer_value(port);
    const char *name = json_string_value(port);
    if (!name)
        return -1;
    size_t i;
    json_t *cp;
    json_array_foreach(json_object_get(sc, "ports"), i, cp)
    {
        if (jstr(cp, "name") && strcmp(jstr(cp, "name"), name) == 0)
            return (int)json_integer_value(json_object_get(cp, "containerPort"));
    }
    return atoi(name) > 0 ? atoi(name) : -1;
}

static bool
tcp_probe(const char *ip, int port, int timeout_s)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
        return false;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = false;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        ok = true;
    } else if (errno == EINPROGRESS) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        if (poll(&pfd, 1, timeout_s * 1000) == 1) {
            int soerr = 0;
            socklen_t len = sizeof(soerr);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
            ok = soerr == 0;
        }
    }
    close(fd);
    return ok;
}

static size_t
discard(char *ptr, size_t size, size_t n, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * n;
}

static bool
http_probe(const char *ip, json_t *get, int port, int timeout_s)
{
    const char *path = jstr(get, "path");
    const char *scheme = jstr(get, "scheme");
    const char *host = jstr(get, "host");
    char url[2048];
    snprintf(url, sizeof(url), "%s://%s:%d%s%s",
             scheme && strcasecmp(scheme, "HTTPS") == 0 ? "https" : "http", host ? host : ip, port,
             path && path[0] == '/' ? "" : "/", path ? path : "");
    CURL *h = curl_easy_init();
    if (!h)
        return false;
    struct curl_slist *headers = NULL;
    size_t i;
    json_t *hd;
    json_array_foreach(json_object_get(get, "httpHeaders"), i, hd)
    {
        char line[1024];
        snprintf(line, sizeof(line), "%s: %s", jstr(hd, "name") ? jstr(hd, "name") : "X",
                 jstr(hd, "value") ? jstr(hd, "value") : "");
        headers = curl_slist_append(headers, line);
    }
    headers = curl_slist_append(headers, "User-Agent: kube-probe/1.32");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_s * 1000);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L); /* kubelet does not verify probe TLS */
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    long status = 0;
    bool ok =
        curl_easy_perform(h) == CURLE_OK &&
        (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status), status >= 200 && status < 400);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return ok;
}

static bool
exec_probe(const kl_container *c, json_t *exec, int timeout_s)
{
    dc_argv args = {0};
    dc_argv_add(&args, "exec");
    dc_argv_add(&args, c->id);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(exec, "command"), i, a)
        dc_argv_add(&args, json_string_value(a) ? json_string_value(a) : "");
    if (args.n < 3) {
        dc_argv_free(&args);
        return false;
    }
    int st = podman(NULL, NULL, timeout_s * 1000 + 5000, (const char *const *)args.v);
    dc_argv_free(&args);
    return st == 0;
}

/* Run probe if due; update counters. Returns +1 when the probe's verdict
 * became success, -1 failure, 0 unchanged/not run. */
static int
run_probe(const kl_pod *p, const kl_container *c, json_t *sc, json_t *probe, kl_probe_state *ps,
          bool *verdict)
{
    int64_t now = lb_now_ms();
    if (ps->next_ms == 0)
        ps->next_ms =
            c->running_since_ms + (int64_t)probe_int(probe, "initialDelaySeconds", 0) * 1000;
    if (now < ps->next_ms)
        return 0;
    int period = probe_int(probe, "periodSeconds", 10),
        timeout = probe_int(probe, "timeoutSeconds", 1);
    ps->next_ms = now + (int64_t)(period > 0 ? period : 10) * 1000;
    if (timeout < 1)
        timeout = 1;
    bool ok;
    json_t *h;
    if ((h = json_object_get(probe, "httpGet")) != NULL)
        ok = http_probe(p->ip, h, probe_port(sc, json_object_get(h, "port")), timeout);
    else if ((h = json_object_get(probe, "tcpSocket")) != NULL)
        ok = tcp_probe(p->ip, probe_port(sc, json_object_get(h, "port")), timeout);
    else if ((h = json_object_get(probe, "exec")) != NULL)
        ok = exec_probe(c, h, timeout);
    else
        ok = true; /* grpc probes are not supported: they pass */
    if (ok) {
        ps->successes++;
        ps->failures = 0;
        if (ps->successes >= probe_int(probe, "successThreshold", 1) && !*verdict) {
            *verdict = true;
            return 1;
        }
    } else {
        ps->failures++;
        ps->successes = 0;
        if (ps->failures >= probe_int(probe, "failureThreshold", 3) && *verdict) {
            *verdict = false;
            return -1;
        }
    }
    return 0;
}

/* ---- one container per pass ---- */

static bool
should_restart(json_t *pod, int exit_code)
{
    const char *policy = jstr(json_object_get(pod, "spec"), "restartPolicy");
    if (!policy || strcmp(policy, "Always") == 0)
        return true;
    if (strcmp(policy, "OnFailure") == 0)
        return exit_code != 0;
    return false;
}

static json_t *
terminated_state(int exit_code, long long started, long long finished, const char *reason)
{
    char s[32], f[32];
    rfc3339(started, s, sizeof(s));
    rfc3339(finished, f, sizeof(f));
    return json_pack("{s:i,s:s,s:s,s:s}", "exitCode", exit_code, "reason",
                     reason ? reason : (exit_code == 0 ? "Completed" : "Error"), "startedAt", s,
                     "finishedAt", f);
}

static void
sync_container(dc_kubelet *k, kl_pod *p, json_t *pod, kl_container *c, json_t *ps)
{
    int64_t now = lb_now_ms();
    json_t *sc = spec_container(pod, c);
    if (c->id[0] && !json_object_get(ps, c->id)) {
        lb_warn("container vanished namespace=%s pod=%s container=%s id=%.12s", p->ns, p->name,
                c->name, c->id);
        c->id[0] = 0;
    }
    if (!c->id[0]) {
        if (now < c->retry_at_ms)
            return;
        if (create_container(k, p, pod, c) != 0)
            return;
        start_container(p, c);
        return;
    }
    json_t *entry = json_object_get(ps, c->id);
    const char *state = jstr(entry, "State");
    if (state && strcmp(state, "running") == 0) {
        if (c->kill_at_ms && now >= c->kill_at_ms) {
            const char *kill[] = {"kill", "--signal=KILL", c->id, NULL};
            podman(NULL, NULL, 60000, kill);
            c->kill_at_ms = 0;
            return;
        }
        if (c->kill_at_ms)
            return; /* stopping after a failed liveness probe */
        c->seen_running = true;
        if (c->running_since_ms == 0)
            c->running_since_ms = now;
        c->last_started = json_integer_value(json_object_get(entry, "StartedAt"));
        if (c->init)
            return;
        json_t *live = json_object_get(sc, "livenessProbe"),
               *ready = json_object_get(sc, "readinessProbe");
        if (ready) {
            run_probe(p, c, sc, ready, &c->readiness, &c->ready);
        } else {
            c->ready = true;
        }
        if (live) {
            /* alive until failureThreshold failures in a row; -1 is that moment */
            bool alive = c->live.failures < probe_int(live, "failureThreshold", 3);
            if (run_probe(p, c, sc, live, &c->live, &alive) < 0) {
                lb_info(
                    "liveness probe failed, stopping container namespace=%s pod=%s container=%s",
                    p->ns, p->name, c->name);
                /* SIGTERM now, SIGKILL at the end of the grace period (a
                 * later pass), so a slow stop never holds up this pass */
                json_t *g =
                    json_object_get(json_object_get(pod, "spec"), "terminationGracePeriodSeconds");
                long long grace = json_is_integer(g) ? (long long)json_integer_value(g) : 30LL;
                const char *term[] = {"kill", "--signal=TERM", c->id, NULL};
                podman(NULL, NULL, 60000, term);
                c->kill_at_ms = now + grace * 1000;
                c->live = (kl_probe_state){0};
                c->ready = false;
            }
        }
        if (c->restart_count > 0 && now - c->running_since_ms > KL_BACKOFF_RESET_MS)
            c->retry_at_ms = 0;
        return;
    }
    /* exited, created but never started, stopped */
    c->ready = false;
    c->kill_at_ms = 0;
    int exit_code = (int)json_integer_value(json_object_get(entry, "ExitCode"));
    long long started = json_integer_value(json_object_get(entry, "StartedAt"));
    long long finished = json_integer_value(json_object_get(entry, "ExitedAt"));
    bool ever_started = state && strcmp(state, "created") != 0 && started > 0;
    if (!ever_started) {
        if (now >= c->retry_at_ms)
            start_container(p, c);
        return;
    }
    c->last_exit_code = exit_code;
    c->last_finished = finished;
    c->last_started = started;
    if (c->init) {
        if (exit_code == 0) {
            c->init_done = true;
            return;
        }
    }
    if (!should_restart(pod, exit_code))
        return;
    if (c->running_since_ms != 0) {
        /* first sight of this exit: schedule the restart */
        int64_t delay = 0;
        if (c->retry_at_ms != 0 || c->restart_count > 0) {
            int shift = c->restart_count < 6 ? c->restart_count : 6;
            delay = (int64_t)KL_BACKOFF_BASE_MS << (shift > 0 ? shift - 1 : 0);
            if (delay > KL_BACKOFF_MAX_MS)
                delay = KL_BACKOFF_MAX_MS;
            if (now - c->running_since_ms > KL_BACKOFF_RESET_MS)
                delay = 0;
        }
        c->retry_at_ms = now + delay;
        c->running_since_ms = 0;
        json_decref(c->last_state);
        c->last_state = terminated_state(exit_code, started, finished, NULL);
        lb_info("container exited namespace=%s pod=%s container=%s exit_code=%d restart_in_ms=%lld",
                p->ns, p->name, c->name, exit_code, (long long)delay);
    }
    if (now < c->retry_at_ms) {
        char msg[300];
        snprintf(msg, sizeof(msg), "back-off restarting failed container %s in pod %s_%s", c->name,
                 p->name, p->ns);
        set_reason(c, "CrashLoopBackOff", msg);
        return;
    }
    if (start_container(p, c) == 0) {
        c->restart_count++;
        /* the next exit waits: the back-off grows from here */
        c->retry_at_ms = 1;
        lb_info("container restarted namespace=%s pod=%s container=%s restart_count=%d", p->ns,
                p->name, c->name, c->restart_count);
    }
}

/* ---- status ---- */

static json_t *
container_status(const kl_pod *p, const kl_container *c, json_t *ps, json_t *pod)
{
    (void)p;
    json_t *entry = c->id[0] ? json_object_get(ps, c->id) : NULL;
    const char *state = jstr(entry, "State");
    json_t *st = json_object();
    json_object_set_new(st, "name", json_string(c->name));
    json_object_set_new(st, "image", json_string(c->image));
    json_object_set_new(st, "imageID",
                        json_string(jstr(entry, "ImageID") ? jstr(entry, "ImageID") : ""));
    if (c->id[0]) {
        char cid[128];
        snprintf(cid, sizeof(cid), "podman://%s", c->id);
        json_object_set_new(st, "containerID", json_string(cid));
    }
    bool running = state && strcmp(state, "running") == 0;
    json_object_set_new(st, "ready", json_boolean(running && c->ready && !c->init));
    json_object_set_new(st, "started", json_boolean(running));
    json_object_set_new(st, "restartCount", json_integer(c->restart_count));
    json_t *s = json_object();
    if (running) {
        char t[32];
        rfc3339(json_integer_value(json_object_get(entry, "StartedAt")), t, sizeof(t));
        json_object_set_new(s, "running", json_pack("{s:s}", "startedAt", t));
    } else if (entry && c->reason[0] == 0 && jstr(entry, "State") &&
               strcmp(state, "created") != 0 &&
               json_integer_value(json_object_get(entry, "StartedAt")) > 0 &&
               !(should_restart(pod, (int)json_integer_value(json_object_get(entry, "ExitCode"))) &&
                 !c->init)) {
        json_object_set_new(
            s, "terminated",
            terminated_state((int)json_integer_value(json_object_get(entry, "ExitCode")),
                             json_integer_value(json_object_get(entry, "StartedAt")),
                             json_integer_value(json_object_get(entry, "ExitedAt")), NULL));
    } else if (c->init && c->init_done) {
        json_object_set_new(s, "terminated",
                            terminated_state(0, c->last_started, c->last_finished, NULL));
    } else {
        json_object_set_new(
            s, "waiting",
            json_pack("{s:s}", "reason", c->reason[0] ? c->reason : "ContainerCreating"));
        if (c->message[0])
            json_object_set_new(json_object_get(s, "waiting"), "message", json_string(c->message));
    }
    json_object_set_new(st, "state", s);
    json_object_set_new(st, "lastState",
                        c->last_state ? json_pack("{s:O}", "terminated", c->last_state)
                                      : json_object());
    return st;
}

static json_t *
condition(json_t *old_status, const char *type, bool ok, const char *reason)
{
    char now[32];
    now_rfc3339(now, sizeof(now));
    const char *since = now;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(old_status, "conditions"), i, c)
    {
        if (jstr(c, "type") && strcmp(jstr(c, "type"), type) == 0 && jstr(c, "status") &&
            strcmp(jstr(c, "status"), ok ? "True" : "False") == 0 && jstr(c, "lastTransitionTime"))
            since = jstr(c, "lastTransitionTime");
    }
    json_t *cond = json_pack("{s:s,s:s,s:n,s:s}", "type", type, "status", ok ? "True" : "False",
                             "lastProbeTime", "lastTransitionTime", since);
    if (!ok && reason)
        json_object_set_new(cond, "reason", json_string(reason));
    return cond;
}

static json_t *
pod_status(dc_kubelet *k, kl_pod *p, json_t *pod, json_t *ps)
{
    json_t *old = json_object_get(pod, "status");
    json_t *st = json_object(), *cstat = json_array(), *istat = json_array();
    bool all_ready = true, any_running = false, all_started = true, all_done = true,
         any_failed = false;
    bool inits_done = true;
    size_t ncont = 0;
    for (size_t i = 0; i < p->ncs; i++) {
        kl_container *c = &p->cs[i];
        json_t *cs = container_status(p, c, ps, pod);
        json_t *entry = c->id[0] ? json_object_get(ps, c->id) : NULL;
        const char *state = jstr(entry, "State");
        bool running = state && strcmp(state, "running") == 0;
        if (c->init) {
            inits_done = inits_done && c->init_done;
            json_array_append_new(istat, cs);
            continue;
        }
        ncont++;
        json_array_append_new(cstat, cs);
        all_ready = all_ready && running && c->ready;
        any_running = any_running || running;
        all_started =
            all_started && (running || c->seen_running || c->restart_count > 0 ||
                            (entry && json_integer_value(json_object_get(entry, "StartedAt")) > 0));
        bool exited = entry && !running && state && strcmp(state, "created") != 0 &&
                      json_integer_value(json_object_get(entry, "StartedAt")) > 0;
        int code = (int)json_integer_value(json_object_get(entry, "ExitCode"));
        bool final = exited && !should_restart(pod, code);
        all_done = all_done && final;
        any_failed = any_failed || (final && code != 0);
    }
    const char *phase = "Pending";
    if (p->failed_init)
        phase = "Failed";
    else if (ncont > 0 && all_done)
        phase = any_failed ? "Failed" : "Succeeded";
    else if (p->pod_id[0] && inits_done && all_started && (any_running || ncont > 0))
        phase = "Running";
    bool ready = all_ready && strcmp(phase, "Running") == 0;
    json_object_set_new(st, "phase", json_string(phase));
    json_t *conds = json_array();
    json_array_append_new(conds,
                          condition(old, "PodReadyToStartContainers", p->pod_id[0] != 0, NULL));
    json_array_append_new(conds,
                          condition(old, "Initialized", inits_done, "ContainersNotInitialized"));
    json_array_append_new(conds, condition(old, "Ready", ready, "ContainersNotReady"));
    json_array_append_new(conds, condition(old, "ContainersReady", ready, "ContainersNotReady"));
    json_array_append_new(conds, condition(old, "PodScheduled", true, NULL));
    json_object_set_new(st, "conditions", conds);
    json_object_set_new(st, "hostIP", json_string(k->api_host));
    if (p->ip[0]) {
        json_object_set_new(st, "podIP", json_string(p->ip));
        json_object_set_new(st, "podIPs", json_pack("[{s:s}]", "ip", p->ip));
    }
    json_object_set_new(st, "startTime", json_string(p->start_time));
    json_object_set_new(st, "qosClass", json_string("BestEffort"));
    if (json_array_size(istat))
        json_object_set_new(st, "initContainerStatuses", istat);
    else
        json_decref(istat);
    json_object_set_new(st, "containerStatuses", cstat);
    if (p->reason[0] && !p->pod_id[0]) {
        json_object_set_new(st, "reason", json_string(p->reason));
        json_object_set_new(st, "message", json_string(p->message));
        /* surface it on every container too, as kubectl shows container reasons */
        size_t i;
        json_t *cs;
        json_array_foreach(cstat, i, cs)
        {
            json_object_set_new(
                cs, "state",
                json_pack("{s:{s:s,s:s}}", "waiting", "reason", p->reason, "message", p->message));
        }
    }
    return st;
}

static void
write_status(dc_kubelet *k, kl_pod *p, json_t *pod, json_t *status)
{
    json_t *old = json_object_get(pod, "status");
    if (old && json_equal(old, status))
        return;
    json_t *obj = json_deep_copy(pod);
    json_object_set(obj, "status", status);
    char path[1024];
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s/status", p->ns, p->name);
    long code = 0;
    json_t *resp = NULL;
    int rc = dc_kclient_do(k->api, "PUT", path, obj, NULL, &code, &resp);
    if (rc || (code >= 300 && code != 409 && code != 404))
        lb_warn("could not write pod status namespace=%s pod=%s error=\"%s\"", p->ns, p->name,
                dc_kclient_error(k->api));
    json_decref(resp);
    json_decref(obj);
}

/* ---- termination ---- */

typedef struct kl_term {
    dc_kubelet *k;
    char pod_id[80], ns[256], name[256], uid[80];
    long long grace;
    char dir[2048];
} kl_term;

static void *
terminate_thread(void *arg)
{
    kl_term *t = arg;
    char grace[32];
    snprintf(grace, sizeof(grace), "--time=%lld", t->grace);
    if (t->pod_id[0]) {
        const char *stop[] = {"pod", "stop", grace, t->pod_id, NULL};
        podman(NULL, NULL, (int)(t->grace * 1000 + 60000), stop);
        const char *rm[] = {"pod", "rm", "--force", t->pod_id, NULL};
        podman(NULL, NULL, 120000, rm);
    }
    dc_rmtree(t->dir);
    dc_kclient *api = NULL;
    if (dc_kclient_new(t->k->api_url, t->k->ca_file, t->k->token, &api) == 0) {
        char path[1024];
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", t->ns, t->name);
        json_t *opts = json_pack("{s:s,s:s,s:i,s:{s:s}}", "kind", "DeleteOptions", "apiVersion",
                                 "v1", "gracePeriodSeconds", 0, "preconditions", "uid", t->uid);
        long code = 0;
        json_t *resp = NULL;
        if (dc_kclient_do(api, "DELETE", path, opts, NULL, &code, &resp) != 0 ||
            (code >= 300 && code != 404 && code != 409))
            lb_warn("could not delete terminated pod namespace=%s pod=%s error=\"%s\"", t->ns,
                    t->name, dc_kclient_error(api));
        json_decref(resp);
        json_decref(opts);
        dc_kclient_free(api);
    }
    lb_info("pod terminated namespace=%s pod=%s", t->ns, t->name);
    pthread_mutex_lock(&t->k->term_mu);
    t->k->terminating_threads--;
    pthread_mutex_unlock(&t->k->term_mu);
    free(t);
    return NULL;
}

static void
start_termination(dc_kubelet *k, kl_pod *p, json_t *pod)
{
    kl_term *t = calloc(1, sizeof(*t));
    if (!t)
        return;
    t->k = k;
    snprintf(t->pod_id, sizeof(t->pod_id), "%s", p->pod_id);
    snprintf(t->ns, sizeof(t->ns), "%s", p->ns);
    snprintf(t->name, sizeof(t->name), "%s", p->name);
    snprintf(t->uid, sizeof(t->uid), "%s", p->uid);
    pod_dir(k, p, NULL, t->dir, sizeof(t->dir));
    json_t *meta = json_object_get(pod, "metadata");
    json_t *g = json_object_get(meta, "deletionGracePeriodSeconds");
    if (!json_is_integer(g))
        g = json_object_get(json_object_get(pod, "spec"), "terminationGracePeriodSeconds");
    t->grace = json_is_integer(g) ? (long long)json_integer_value(g) : 30;
    if (t->grace < 0)
        t->grace = 0;
    pthread_t th;
    pthread_mutex_lock(&k->term_mu);
    k->terminating_threads++;
    pthread_mutex_unlock(&k->term_mu);
    if (pthread_create(&th, NULL, terminate_thread, t) != 0) {
        pthread_mutex_lock(&k->term_mu);
        k->terminating_threads--;
        pthread_mutex_unlock(&k->term_mu);
        free(t);
        return;
    }
    pthread_detach(th);
    p->terminating = true;
    lb_info("terminating pod namespace=%s pod=%s grace_s=%lld", p->ns, p->name, t->grace);
}

/* ---- the pass ---- */

static void
sync_pod(dc_kubelet *k, json_t *pod, json_t *ps)
{
    json_t *meta = json_object_get(pod, "metadata");
    const char *uid = jstr(meta, "uid");
    if (!uid || !jstr(meta, "name"))
        return;
    kl_pod *p = find_pod(k, uid);
    if (!p) {
        p = new_pod(pod, k->cluster_id);
        if (!p)
            return;
        p->next = k->pods;
        k->pods = p;
    }
    p->seen = true;
    if (p->terminating)
        return;
    /* No scheduler: this node binds every pod to itself, as the scheduler's
     * binding would, so that deleting it is graceful (the API server marks
     * a bound pod and waits for the node to stop it). */
    const char *node = jstr(json_object_get(pod, "spec"), "nodeName");
    if ((!node || !*node) && !jstr(meta, "deletionTimestamp")) {
        char path[1024];
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", p->ns, p->name);
        json_t *patch = json_pack("{s:{s:s}}", "spec", "nodeName", DC_KUBELET_NODE_NAME);
        long code = 0;
        json_t *resp = NULL;
        if (dc_kclient_do(k->api, "PATCH", path, patch, "application/merge-patch+json", &code,
                          &resp) != 0 ||
            code >= 300)
            lb_warn("could not bind pod namespace=%s pod=%s error=\"%s\"", p->ns, p->name,
                    dc_kclient_error(k->api));
        json_decref(resp);
        json_decref(patch);
    }
    if (jstr(meta, "deletionTimestamp")) {
        start_termination(k, p, pod);
        return;
    }
    const char *phase = jstr(json_object_get(pod, "status"), "phase");
    bool terminal = phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0);
    if (!p->pod_id[0]) {
        if (terminal || lb_now_ms() < p->retry_at_ms) {
            if (!terminal) {
                json_t *status = pod_status(k, p, pod, ps);
                write_status(k, p, pod, status);
                json_decref(status);
            }
            return;
        }
        if (create_pod(k, p, pod) != 0) {
            json_t *status = pod_status(k, p, pod, ps);
            write_status(k, p, pod, status);
            json_decref(status);
            return;
        }
    }
    if (terminal && !p->sandbox_stopped) {
        /* a finished pod keeps its containers (for logs) but not its network
         * namespace, as a kubelet tears down a finished pod's sandbox */
        const char *stop[] = {"pod", "stop", "--time=2", p->pod_id, NULL};
        podman(NULL, NULL, 60000, stop);
        p->sandbox_stopped = true;
    }
    if (!terminal) {
        /* init containers one at a time, in order, each to completion */
        bool inits_done = true;
        for (size_t i = 0; i < p->ncs && inits_done; i++) {
            kl_container *c = &p->cs[i];
            if (!c->init || c->init_done)
                continue;
            inits_done = false;
            sync_container(k, p, pod, c, ps);
            json_t *entry = c->id[0] ? json_object_get(ps, c->id) : NULL;
            const char *policy = jstr(json_object_get(pod, "spec"), "restartPolicy");
            if (entry && jstr(entry, "State") && strcmp(jstr(entry, "State"), "exited") == 0 &&
                json_integer_value(json_object_get(entry, "ExitCode")) != 0 && policy &&
                strcmp(policy, "Never") == 0)
                p->failed_init = true;
        }
        if (inits_done) {
            for (size_t i = 0; i < p->ncs; i++)
                if (!p->cs[i].init)
                    sync_container(k, p, pod, &p->cs[i], ps);
        }
    }
    /* ps was taken before this pass acted; read the states it changed */
    json_t *fresh = NULL;
    for (size_t i = 0; i < p->ncs; i++) {
        if (p->cs[i].id[0] && !json_object_get(ps, p->cs[i].id)) {
            fresh = list_containers(k->cluster_id);
            break;
        }
    }
    json_t *status = pod_status(k, p, pod, fresh ? fresh : ps);
    write_status(k, p, pod, status);
    json_decref(status);
    json_decref(fresh);
}

void
dc_kubelet_sync(dc_kubelet *k)
{
    json_t *pods = NULL;
    if (dc_kclient_list(k->api, "/api/v1/pods", &pods) != 0) {
        lb_warn("could not list pods error=\"%s\"", dc_kclient_error(k->api));
        return;
    }
    json_t *ps = list_containers(k->cluster_id);
    if (!ps) {
        json_decref(pods);
        return;
    }
    for (kl_pod *p = k->pods; p; p = p->next)
        p->seen = false;
    size_t i;
    json_t *pod;
    json_array_foreach(pods, i, pod) sync_pod(k, pod, ps);
    /* Pods gone from the API: remove their podman pods and volumes. */
    kl_pod **pp = &k->pods;
    while (*pp) {
        kl_pod *p = *pp;
        if (p->seen) {
            pp = &p->next;
            continue;
        }
        if (!p->terminating && p->pod_id[0]) {
            const char *rm[] = {"pod", "rm", "--force", "--time=2", p->pod_id, NULL};
            podman(NULL, NULL, 120000, rm);
            char dir[2048];
            pod_dir(k, p, NULL, dir, sizeof(dir));
            dc_rmtree(dir);
            lb_info("removed pod deleted from the API namespace=%s pod=%s", p->ns, p->name);
        }
        *pp = p->next;
        free_pod(p);
    }
    /* podman pods of this cluster that no Pod claims (left by a crash) */
    json_t *known = json_object();
    for (kl_pod *p = k->pods; p; p = p->next)
        json_object_set_new(known, p->uid, json_true());
    const char *id;
    json_t *entry;
    json_t *orphan_pods = json_object();
    json_object_foreach(ps, id, entry)
    {
        const char *uid = jstr(json_object_get(entry, "Labels"), "io.lakebase.pod-uid");
        const char *podid = jstr(entry, "Pod");
        if (uid && podid && *podid && !json_object_get(known, uid))
            json_object_set_new(orphan_pods, podid, json_true());
    }
    json_object_foreach(orphan_pods, id, entry)
    {
        const char *rm[] = {"pod", "rm", "--force", "--time=2", id, NULL};
        podman(NULL, NULL, 120000, rm);
        lb_info("removed podman pod no Pod claims id=%.12s", id);
    }
    json_decref(orphan_pods);
    json_decref(known);
    json_decref(ps);
    json_decref(pods);
}

/* The node is going down with its containers: every pod it ran is no longer
 * ready (what the node lifecycle controller of a real cluster reports for a
 * node that stopped), so nobody waits on a stale Ready. */
static void
mark_not_ready(dc_kubelet *k)
{
    for (kl_pod *p = k->pods; p; p = p->next) {
        if (p->terminating)
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", p->ns, p->name);
        long code = 0;
        json_t *pod = NULL;
        if (dc_kclient_do(k->api, "GET", path, NULL, NULL, &code, &pod) != 0 || code != 200) {
            json_decref(pod);
            continue;
        }
        json_t *status = json_deep_copy(json_object_get(pod, "status"));
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(status, "conditions"), i, c)
        {
            const char *t = jstr(c, "type");
            if (t && (strcmp(t, "Ready") == 0 || strcmp(t, "ContainersReady") == 0)) {
                json_object_set_new(c, "status", json_string("False"));
                json_object_set_new(c, "reason", json_string("NodeShutdown"));
            }
        }
        json_array_foreach(json_object_get(status, "containerStatuses"), i, c)
        {
            json_object_set_new(c, "ready", json_false());
            json_object_set_new(c, "started", json_false());
        }
        if (status)
            write_status(k, p, pod, status);
        json_decref(status);
        json_decref(pod);
    }
}

int
dc_kubelet_new(const dc_kubelet_config *config, dc_kubelet **out)
{
    dc_kubelet *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->conf = *config;
    k->cluster_id = strdup(config->cluster_id);
    k->node_dir = strdup(config->node_dir);
    k->api_url = strdup(config->api_url);
    k->ca_file = strdup(config->ca_file);
    k->token = strdup(config->token);
    k->api_host = strdup(config->api_host);
    k->image_users = json_object();
    pthread_mutex_init(&k->term_mu, NULL);
    if (!k->cluster_id || !k->node_dir || !k->api_url || !k->ca_file || !k->token || !k->api_host ||
        !k->image_users || dc_kclient_new(k->api_url, k->ca_file, k->token, &k->api) != 0) {
        dc_kubelet_free(k, false);
        return -ENOMEM;
    }
    k->conf.cluster_id = k->cluster_id;
    k->conf.node_dir = k->node_dir;
    /* A previous run's pods (a crash, or `down` not run) are recreated from
     * the API's Pods, so the state here starts clean. */
    int removed = dc_kubelet_remove_all(k->cluster_id);
    if (removed > 0)
        lb_info("removed podman pods of an earlier run count=%d", removed);
    *out = k;
    return 0;
}

void
dc_kubelet_free(dc_kubelet *k, bool remove_pods)
{
    if (!k)
        return;
    /* wait for terminations in flight: they use k */
    for (int i = 0; i < 600; i++) {
        pthread_mutex_lock(&k->term_mu);
        int n = k->terminating_threads;
        pthread_mutex_unlock(&k->term_mu);
        if (n == 0)
            break;
        usleep(100000);
    }
    if (remove_pods && k->cluster_id) {
        dc_kubelet_remove_all(k->cluster_id);
        if (k->api)
            mark_not_ready(k);
    }
    while (k->pods) {
        kl_pod *p = k->pods;
        k->pods = p->next;
        free_pod(p);
    }
    dc_kclient_free(k->api);
    json_decref(k->image_users);
    free(k->cluster_id);
    free(k->node_dir);
    free(k->api_url);
    free(k->ca_file);
    free(k->token);
    free(k->api_host);
    pthread_mutex_destroy(&k->term_mu);
    free(k);
}
