/*
 * runtime.c: informers -> work queue -> workers (see runtime.h).
 *
 * Informers (one thread each) watch LakebaseClusters, Branches, and the
 * StatefulSets and Pods the controller manages (label
 * app.kubernetes.io/managed-by=lakebase-controller); every change becomes
 * queue keys:
 *   LakebaseCluster  -> its key and its Branches' keys;
 *   Branch           -> its key, its cluster's (status shows the main
 *                       branch), its parent's (a parent waiting on
 *                       HasChildBranches) and its children's (waiting on
 *                       ParentNotReady);
 *   StatefulSet, Pod -> the Branch (label lakebase.io/branch) or else the
 *                       cluster (label lakebase.io/cluster) they belong to.
 * Workers take keys, one worker per key at a time (queue.h), and run the
 * reconcile with their own API client. A failure comes back with per-key
 * exponential backoff (1 s doubling to 5 min); a success forgets the
 * backoff and may ask for a later look (requeue_ms).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "errors.h"
#include "log.h"
#include "runtime.h"

#define LABEL_SELECTOR "app.kubernetes.io/managed-by%3Dlakebase-controller"

struct ctl_runtime {
    ctl_ctx *c;
    pthread_t *workers;
    int nworkers;
};

int
ctl_key_split(const char *key, char *buf, size_t cap, const char **kind, const char **ns,
              const char **name)
{
    if (!key || strlen(key) >= cap)
        return -EINVAL;
    strcpy(buf, key);
    char *a = strchr(buf, '/');
    char *b = a ? strchr(a + 1, '/') : NULL;
    if (!a || !b || a == buf || b == a + 1 || !b[1] || strchr(b + 1, '/'))
        return -EINVAL;
    *a = *b = '\0';
    *kind = buf;
    *ns = a + 1;
    *name = b + 1;
    return 0;
}

static void
enqueue(ctl_ctx *c, const char *kind, const char *ns, const char *name)
{
    if (!ns || !name || !*name)
        return;
    char key[600];
    snprintf(key, sizeof(key), "%s/%s/%s", kind, ns, name);
    ctl_queue_add(c->queue, key);
}

/* Every cached Branch of ns whose field at path is name. */
static void
enqueue_branches_where(ctl_ctx *c, const char *ns, const char *path, const char *name)
{
    if (!c->branches || !name)
        return;
    json_t *all = ctl_informer_list(c->branches, ns);
    size_t i;
    json_t *b;
    json_array_foreach(all, i, b)
    {
        const char *v = ctl_str_at(b, path);
        if (v && strcmp(v, name) == 0)
            enqueue(c, "branch", ns, ctl_meta_str(b, "name"));
    }
    json_decref(all);
}

static void
on_cluster(const char *type, json_t *obj, void *arg)
{
    (void)type;
    ctl_ctx *c = arg;
    const char *ns = ctl_meta_str(obj, "namespace");
    const char *name = ctl_meta_str(obj, "name");
    enqueue(c, "cluster", ns, name);
    enqueue_branches_where(c, ns, "spec.clusterRef.name", name);
}

static void
on_branch(const char *type, json_t *obj, void *arg)
{
    (void)type;
    ctl_ctx *c = arg;
    const char *ns = ctl_meta_str(obj, "namespace");
    const char *name = ctl_meta_str(obj, "name");
    enqueue(c, "branch", ns, name);
    enqueue(c, "cluster", ns, ctl_str_at(obj, "spec.clusterRef.name"));
    const char *parent = ctl_str_at(obj, "spec.parent");
    if (parent)
        enqueue(c, "branch", ns, parent);
    enqueue_branches_where(c, ns, "spec.parent", name);
}

static void
on_owned(const char *type, json_t *obj, void *arg)
{
    (void)type;
    ctl_ctx *c = arg;
    json_t *labels = ctl_at(obj, "metadata.labels");
    const char *ns = ctl_meta_str(obj, "namespace");
    const char *branch = json_string_value(json_object_get(labels, "lakebase.io/branch"));
    const char *cluster = json_string_value(json_object_get(labels, "lakebase.io/cluster"));
    if (branch)
        enqueue(c, "branch", ns, branch);
    else if (cluster)
        enqueue(c, "cluster", ns, cluster);
}

static void *
worker(void *arg)
{
    ctl_runtime *r = arg;
    ctl_ctx *c = r->c;
    ctl_kube *k = NULL;
    if (ctl_kube_new(&c->kc, &k) != 0) {
        lb_error("worker: could not make an API client");
        return NULL;
    }
    for (;;) {
        char *key = NULL;
        int rc = ctl_queue_get(c->queue, -1, &key);
        if (rc == -ESHUTDOWN)
            break;
        if (rc)
            continue;
        char buf[600];
        const char *kind, *ns, *name;
        if (ctl_key_split(key, buf, sizeof(buf), &kind, &ns, &name) != 0) {
            lb_error("malformed queue key \"%s\"", key);
            ctl_queue_done(c->queue, key);
            free(key);
            continue;
        }
        ctl_result res = {0};
        int64_t t0 = lb_mono_ms();
        bool is_cluster = strcmp(kind, "cluster") == 0;
        rc = is_cluster ? ctl_reconcile_cluster(c, k, ns, name, &res)
                        : ctl_reconcile_branch(c, k, ns, name, &res);
        double secs = (double)(lb_mono_ms() - t0) / 1000.0;
        lb_counter *count = NULL, *errs = NULL;
        lb_histogram *h = NULL;
        if (lb_counter_labels(c->reconciles, &count, kind, NULL) == 0)
            lb_counter_inc(count);
        if (lb_histogram_labels(c->reconcile_seconds, &h, kind, NULL) == 0)
            lb_histogram_observe(h, secs);
        if (rc == 0) {
            ctl_queue_forget(c->queue, key);
            if (res.requeue_ms > 0)
                ctl_queue_add_after(c->queue, key, res.requeue_ms);
            lb_debug("reconciled %s=%s/%s in %.3fs", kind, ns, name, secs);
        } else if (rc != -ECANCELED) {
            if (lb_counter_labels(c->reconcile_errors, &errs, kind, NULL) == 0)
                lb_counter_inc(errs);
            int n = ctl_queue_failures(c->queue, key);
            lb_log(rc == LB_ECONFLICT ? LB_LOG_INFO : LB_LOG_WARN,
                   "reconcile %s=%s/%s failed (%s): %s; retry %d", kind, ns, name, lb_err_name(rc),
                   ctl_kube_error(k), n + 1);
            ctl_queue_add_rate_limited(c->queue, key);
        }
        ctl_queue_done(c->queue, key);
        free(key);
    }
    ctl_kube_free(k);
    return NULL;
}

int
ctl_runtime_start(ctl_ctx *c, ctl_runtime **out)
{
    ctl_runtime *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->c = c;
    const char *ns = c->opts->namespace && *c->opts->namespace ? c->opts->namespace : NULL;
    ctl_informer_config cfg[] = {
        {CTL_GROUP_VERSION, "lakebaseclusters", ns, NULL, on_cluster, c},
        {CTL_GROUP_VERSION, "branches", ns, NULL, on_branch, c},
        {"apps/v1", "statefulsets", ns, LABEL_SELECTOR, on_owned, c},
        {"v1", "pods", ns, LABEL_SELECTOR, on_owned, c},
    };
    ctl_informer **slots[] = {&c->clusters, &c->branches, &c->statefulsets, &c->pods};
    /* branches first: the cluster handler reads the branch cache */
    int order[] = {1, 0, 2, 3};
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++)
        rc = ctl_informer_start(&c->kc, &cfg[order[i]], slots[order[i]]);
    r->nworkers = (int)c->opts->workers;
    r->workers = calloc((size_t)r->nworkers, sizeof(pthread_t));
    if (rc == 0 && !r->workers)
        rc = -ENOMEM;
    for (int i = 0; rc == 0 && i < r->nworkers; i++) {
        rc = -pthread_create(&r->workers[i], NULL, worker, r);
        if (rc)
            r->nworkers = i;
    }
    if (rc) {
        ctl_runtime_stop(r);
        return rc;
    }
    lb_info("controller running workers=%d namespace=%s", r->nworkers, ns ? ns : "(all)");
    *out = r;
    return 0;
}

bool
ctl_runtime_synced(ctl_runtime *r)
{
    ctl_ctx *c = r->c;
    return c->clusters && c->branches && c->statefulsets && c->pods &&
           ctl_informer_synced(c->clusters) && ctl_informer_synced(c->branches) &&
           ctl_informer_synced(c->statefulsets) && ctl_informer_synced(c->pods);
}

void
ctl_runtime_resync(ctl_runtime *r)
{
    ctl_ctx *c = r->c;
    ctl_informer *infs[] = {c->clusters, c->branches};
    const char *kinds[] = {"cluster", "branch"};
    for (int i = 0; i < 2; i++) {
        if (!infs[i])
            continue;
        json_t *all = ctl_informer_list(infs[i], NULL);
        size_t j;
        json_t *o;
        json_array_foreach(all, j, o)
            enqueue(c, kinds[i], ctl_meta_str(o, "namespace"), ctl_meta_str(o, "name"));
        json_decref(all);
    }
}

void
ctl_runtime_stop(ctl_runtime *r)
{
    if (!r)
        return;
    ctl_ctx *c = r->c;
    ctl_kube_abort_all();
    ctl_queue_shutdown(c->queue);
    for (int i = 0; i < r->nworkers; i++)
        pthread_join(r->workers[i], NULL);
    free(r->workers);
    ctl_informer_stop(c->clusters);
    ctl_informer_stop(c->branches);
    ctl_informer_stop(c->statefulsets);
    ctl_informer_stop(c->pods);
    c->clusters = c->branches = c->statefulsets = c->pods = NULL;
    free(r);
}
