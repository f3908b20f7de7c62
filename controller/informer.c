/*
 * informer.c: list+watch informers (see informer.h).
 *
 * The cache is a JSON object from "ns/name" to the last object seen,
 * guarded by a mutex; the thread replaces entries whole, so a reader's deep
 * copy is never half-updated. resourceVersions are opaque strings: the
 * informer compares none, it only hands back the last one it saw.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "informer.h"
#include "kube.h"
#include "log.h"

struct ctl_informer {
    ctl_informer_config config; /* strings owned */
    ctl_kube *kube;
    pthread_t thread;
    pthread_mutex_t lock;
    json_t *cache; /* "ns/name" -> object */
    atomic_bool synced;
    atomic_ulong relists;
    char rv[128]; /* last resourceVersion seen; thread only */
    bool need_relist;
};

void
ctl_object_key(const json_t *obj, char *buf, size_t cap)
{
    json_t *md = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    if (ns && *ns)
        snprintf(buf, cap, "%s/%s", ns, name ? name : "");
    else
        snprintf(buf, cap, "%s", name ? name : "");
}

static void
set_rv(ctl_informer *inf, const json_t *obj)
{
    const char *rv =
        json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    if (rv && strlen(rv) < sizeof(inf->rv))
        snprintf(inf->rv, sizeof(inf->rv), "%s", rv);
}

/* Sleep ms, waking early at shutdown. */
static void
nap(int64_t ms)
{
    while (ms > 0 && !ctl_kube_aborted()) {
        usleep(100 * 1000);
        ms -= 100;
    }
}

static void
base_path(ctl_informer *inf, char *buf, size_t cap)
{
    ctl_kube_path(buf, cap, inf->config.group_version, inf->config.ns, inf->config.resource, NULL,
                  NULL);
}

static int
relist(ctl_informer *inf)
{
    char base[1024], path[4096];
    base_path(inf, base, sizeof(base));
    json_t *fresh = json_object();
    char cont[2048] = "";
    char rv[128] = "";
    for (;;) {
        snprintf(path, sizeof(path), "%s?limit=500%s%s%s%s", base,
                 inf->config.label_selector ? "&labelSelector=" : "",
                 inf->config.label_selector ? inf->config.label_selector : "",
                 cont[0] ? "&continue=" : "", cont);
        json_t *list = NULL;
        int rc = ctl_kube_get(inf->kube, path, &list);
        if (rc) {
            if (!ctl_kube_aborted())
                lb_warn("could not list resource=%s: %s", inf->config.resource,
                        ctl_kube_error(inf->kube));
            json_decref(fresh);
            return rc;
        }
        json_t *items = json_object_get(list, "items");
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
            char key[512];
            ctl_object_key(item, key, sizeof(key));
            json_object_set(fresh, key, item);
        }
        json_t *md = json_object_get(list, "metadata");
        const char *lrv = json_string_value(json_object_get(md, "resourceVersion"));
        const char *next = json_string_value(json_object_get(md, "continue"));
        if (lrv && strlen(lrv) < sizeof(rv))
            snprintf(rv, sizeof(rv), "%s", lrv);
        bool more = next && *next && strlen(next) < sizeof(cont);
        if (more)
            snprintf(cont, sizeof(cont), "%s", next);
        json_decref(list);
        if (!more)
            break;
    }
    /* swap the cache, then report: deletions first, then everything else */
    pthread_mutex_lock(&inf->lock);
    json_t *old = inf->cache;
    inf->cache = fresh;
    json_incref(fresh);
    pthread_mutex_unlock(&inf->lock);
    const char *key;
    json_t *obj;
    json_object_foreach(old, key, obj)
    {
        if (!json_object_get(fresh, key))
            inf->config.on_change("DELETED", obj, inf->config.arg);
    }
    json_object_foreach(fresh, key, obj)
    {
        inf->config.on_change(json_object_get(old, key) ? "MODIFIED" : "ADDED", obj,
                              inf->config.arg);
    }
    json_decref(old);
    json_decref(fresh);
    snprintf(inf->rv, sizeof(inf->rv), "%s", rv);
    if (atomic_load(&inf->synced))
        atomic_fetch_add(&inf->relists, 1);
    atomic_store(&inf->synced, true);
    return 0;
}

static int
on_event(const char *type, json_t *obj, void *arg)
{
    ctl_informer *inf = arg;
    if (strcmp(type, "BOOKMARK") == 0) {
        set_rv(inf, obj);
        return 0;
    }
    if (strcmp(type, "ERROR") == 0) {
        json_int_t code = json_integer_value(json_object_get(obj, "code"));
        const char *msg = json_string_value(json_object_get(obj, "message"));
        if (code == 410) {
            lb_info("watch expired resource=%s rv=%s: relisting", inf->config.resource, inf->rv);
            inf->need_relist = true;
        } else {
            lb_warn("watch error resource=%s code=%lld: %s", inf->config.resource, (long long)code,
                    msg ? msg : "");
        }
        return LB_EPROTO;
    }
    char key[512];
    ctl_object_key(obj, key, sizeof(key));
    pthread_mutex_lock(&inf->lock);
    if (strcmp(type, "DELETED") == 0)
        json_object_del(inf->cache, key);
    else
        json_object_set(inf->cache, key, obj);
    pthread_mutex_unlock(&inf->lock);
    set_rv(inf, obj);
    inf->config.on_change(type, obj, inf->config.arg);
    return 0;
}

static void *
run(void *arg)
{
    ctl_informer *inf = arg;
    int64_t backoff = 1000;
    inf->need_relist = true;
    while (!ctl_kube_aborted()) {
        if (inf->need_relist) {
            if (relist(inf) != 0) {
                nap(backoff);
                backoff = backoff < 30000 ? backoff * 2 : 30000;
                continue;
            }
            inf->need_relist = false;
            backoff = 1000;
        }
        char base[1024], path[4096];
        base_path(inf, base, sizeof(base));
        snprintf(path, sizeof(path),
                 "%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=240&resourceVersion=%s%s%s",
                 base, inf->rv, inf->config.label_selector ? "&labelSelector=" : "",
                 inf->config.label_selector ? inf->config.label_selector : "");
        int rc = ctl_kube_watch(inf->kube, path, on_event, inf);
        if (ctl_kube_aborted())
            break;
        if (rc == 0) {
            backoff = 1000;
            continue; /* the server ended the watch: resume from rv */
        }
        if (rc == LB_ETIMEOUT) {
            lb_info("watch expired resource=%s rv=%s: relisting", inf->config.resource, inf->rv);
            inf->need_relist = true;
            continue;
        }
        if (!inf->need_relist) {
            lb_warn("watch failed resource=%s: %s; retrying in %lldms", inf->config.resource,
                    ctl_kube_error(inf->kube), (long long)backoff);
            nap(backoff);
            backoff = backoff < 30000 ? backoff * 2 : 30000;
        }
    }
    return NULL;
}

static char *
dup_opt(const char *s)
{
    return s ? strdup(s) : NULL;
}

int
ctl_informer_start(const ctl_kubeconfig *kc, const ctl_informer_config *config, ctl_informer **out)
{
    ctl_informer *inf = calloc(1, sizeof(*inf));
    if (!inf)
        return -ENOMEM;
    inf->config = *config;
    inf->config.group_version = dup_opt(config->group_version);
    inf->config.resource = dup_opt(config->resource);
    inf->config.ns = dup_opt(config->ns);
    inf->config.label_selector = dup_opt(config->label_selector);
    inf->cache = json_object();
    pthread_mutex_init(&inf->lock, NULL);
    int rc = ctl_kube_new(kc, &inf->kube);
    if (rc == 0 && (!inf->config.group_version || !inf->config.resource || !inf->cache))
        rc = -ENOMEM;
    if (rc == 0)
        rc = -pthread_create(&inf->thread, NULL, run, inf);
    if (rc) {
        ctl_kube_free(inf->kube);
        json_decref(inf->cache);
        free((char *)inf->config.group_version);
        free((char *)inf->config.resource);
        free((char *)inf->config.ns);
        free((char *)inf->config.label_selector);
        pthread_mutex_destroy(&inf->lock);
        free(inf);
        return rc;
    }
    *out = inf;
    return 0;
}

bool
ctl_informer_synced(ctl_informer *inf)
{
    return atomic_load(&inf->synced);
}

unsigned long
ctl_informer_relists(ctl_informer *inf)
{
    return atomic_load(&inf->relists);
}

json_t *
ctl_informer_get(ctl_informer *inf, const char *ns, const char *name)
{
    char key[512];
    if (ns && *ns)
        snprintf(key, sizeof(key), "%s/%s", ns, name);
    else
        snprintf(key, sizeof(key), "%s", name);
    pthread_mutex_lock(&inf->lock);
    json_t *obj = json_deep_copy(json_object_get(inf->cache, key));
    pthread_mutex_unlock(&inf->lock);
    return obj;
}

json_t *
ctl_informer_list(ctl_informer *inf, const char *ns)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    pthread_mutex_lock(&inf->lock);
    const char *key;
    json_t *obj;
    json_object_foreach(inf->cache, key, obj)
    {
        const char *ons =
            json_string_value(json_object_get(json_object_get(obj, "metadata"), "namespace"));
        if (!ns || (ons && strcmp(ons, ns) == 0))
            json_array_append_new(arr, json_deep_copy(obj));
    }
    pthread_mutex_unlock(&inf->lock);
    return arr;
}

void
ctl_informer_stop(ctl_informer *inf)
{
    if (!inf)
        return;
    pthread_join(inf->thread, NULL);
    ctl_kube_free(inf->kube);
    json_decref(inf->cache);
    free((char *)inf->config.group_version);
    free((char *)inf->config.resource);
    free((char *)inf->config.ns);
    free((char *)inf->config.label_selector);
    pthread_mutex_destroy(&inf->lock);
    free(inf);
}
