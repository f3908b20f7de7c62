/*
 * informer.h: list+watch of one resource, with a cache of its objects.
 *
 * An informer lists the resource (in pages), then watches from the list's
 * resourceVersion with bookmarks, resuming each new watch from the last
 * resourceVersion it saw (an event's or a bookmark's). When the server says
 * that version is gone (410 Expired, as a status or as an ERROR event) it
 * lists again, and reports as DELETED every cached object the new list
 * lacks, so a handler never misses a deletion. Transport failures back off
 * (1 s doubling to 30 s) and resume.
 *
 * on_change(type, object, arg) runs on the informer's own thread for every
 * ADDED, MODIFIED and DELETED (also those a relist finds); it must be quick
 * and thread-safe (controller.c only enqueues keys). The object is borrowed.
 *
 * Threads: one thread per informer; the cache functions may be called from
 * any thread.
 *
 * Callers: controller.c.
 */
#ifndef CTL_INFORMER_H
#define CTL_INFORMER_H

#include <jansson.h>
#include <stdbool.h>

#include "kubeconfig.h"

typedef struct ctl_informer ctl_informer;

typedef void (*ctl_informer_fn)(const char *type, json_t *object, void *arg);

typedef struct ctl_informer_config {
    const char *group_version;  /* "v1", "apps/v1", "lakebase.io/v1alpha1" */
    const char *resource;       /* "pods", "branches" */
    const char *ns;             /* NULL: every namespace */
    const char *label_selector; /* NULL: everything */
    ctl_informer_fn on_change;
    void *arg;
} ctl_informer_config;

/* Start an informer thread (config and kc copied). 0, -ENOMEM, -errno. */
int ctl_informer_start(const ctl_kubeconfig *kc, const ctl_informer_config *config,
                       ctl_informer **out);
/* true once the first list has been delivered. */
bool ctl_informer_synced(ctl_informer *inf);
/* A deep copy of the cached object ns/name, or NULL. Caller decrefs. */
json_t *ctl_informer_get(ctl_informer *inf, const char *ns, const char *name);
/* A deep copy of every cached object in ns (NULL: all), as an array. */
json_t *ctl_informer_list(ctl_informer *inf, const char *ns);
/* How many relists (after the first list) and watch restarts happened. */
unsigned long ctl_informer_relists(ctl_informer *inf);
/* Join the thread (after ctl_kube_abort_all()) and free. */
void ctl_informer_stop(ctl_informer *inf);

/* "ns/name" of an object into buf (cluster-scoped: "name"). */
void ctl_object_key(const json_t *obj, char *buf, size_t cap);

#endif
