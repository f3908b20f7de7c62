/*
 * events.c: the Event recorder (see events.h).
 *
 * Memory: a bounded table of recent (uid, reason, message) -> Event name and
 * count; when full it is cleared, which at worst creates one more Event.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conditions.h"
#include "errors.h"
#include "events.h"
#include "log.h"

#define CTL_EVENTS_REMEMBERED 1024

struct ctl_events {
    pthread_mutex_t lock;
    char *instance;
    json_t *seen; /* "uid|reason|message" -> {"name", "ns", "count"} */
};

int
ctl_events_new(const char *instance, ctl_events **out)
{
    ctl_events *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return -ENOMEM;
    ev->instance = strdup(instance);
    ev->seen = json_object();
    if (!ev->instance || !ev->seen) {
        free(ev->instance);
        json_decref(ev->seen);
        free(ev);
        return -ENOMEM;
    }
    pthread_mutex_init(&ev->lock, NULL);
    *out = ev;
    return 0;
}

void
ctl_events_free(ctl_events *ev)
{
    if (!ev)
        return;
    json_decref(ev->seen);
    free(ev->instance);
    pthread_mutex_destroy(&ev->lock);
    free(ev);
}

void
ctl_event(ctl_events *ev, ctl_kube *k, const json_t *obj, const char *type, const char *reason,
          const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    json_t *md = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *uid = json_string_value(json_object_get(md, "uid"));
    if (!ns || !name || !uid)
        return;
    char now[40];
    ctl_now_rfc3339(now, sizeof(now));
    char key[1400];
    snprintf(key, sizeof(key), "%s|%s|%s", uid, reason, message);

    pthread_mutex_lock(&ev->lock);
    json_t *prev = json_object_get(ev->seen, key);
    char prev_name[300] = "";
    json_int_t count = 1;
    if (prev) {
        snprintf(prev_name, sizeof(prev_name), "%s",
                 json_string_value(json_object_get(prev, "name")));
        count = json_integer_value(json_object_get(prev, "count")) + 1;
        json_object_set_new(prev, "count", json_integer(count));
    }
    pthread_mutex_unlock(&ev->lock);

    char path[1024];
    if (prev_name[0]) {
        ctl_kube_path(path, sizeof(path), "v1", ns, "events", prev_name, NULL);
        json_t *patch = json_pack("{s:I, s:s}", "count", count, "lastTimestamp", now);
        int rc = patch ? ctl_kube_merge_patch(k, path, patch, NULL) : -ENOMEM;
        json_decref(patch);
        if (rc == 0)
            return;
        count = 1; /* gone (events expire): make a new one */
    }
    json_t *e = json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:{s:O, s:O, s:s, s:s, s:s}, s:s, s:s, s:s, s:{s:s}, s:s, s:s, "
        "s:I, s:s, s:s}",
        "apiVersion", "v1", "kind", "Event", "metadata", "generateName", name, "namespace", ns,
        "involvedObject", "apiVersion", json_object_get(obj, "apiVersion"), "kind",
        json_object_get(obj, "kind"), "name", name, "namespace", ns, "uid", uid, "reason", reason,
        "message", message, "type", type, "source", "component", "lakebase-controller",
        "firstTimestamp", now, "lastTimestamp", now, "count", count, "reportingComponent",
        "lakebase-controller", "reportingInstance", ev->instance);
    if (!e)
        return;
    /* generateName wants a trailing dot, as client-go's recorder uses */
    char gen[300];
    snprintf(gen, sizeof(gen), "%s.", name);
    json_object_set_new(json_object_get(e, "metadata"), "generateName", json_string(gen));
    json_t *created = NULL;
    ctl_kube_path(path, sizeof(path), "v1", ns, "events", NULL, NULL);
    int rc = ctl_kube_create(k, path, e, &created);
    json_decref(e);
    if (rc) {
        lb_warn("could not record event reason=%s object=%s/%s: %s", reason, ns, name,
                ctl_kube_error(k));
        return;
    }
    const char *ename =
        json_string_value(json_object_get(json_object_get(created, "metadata"), "name"));
    pthread_mutex_lock(&ev->lock);
    if (json_object_size(ev->seen) >= CTL_EVENTS_REMEMBERED)
        json_object_clear(ev->seen);
    if (ename)
        json_object_set_new(ev->seen, key, json_pack("{s:s, s:I}", "name", ename, "count", count));
    pthread_mutex_unlock(&ev->lock);
    json_decref(created);
}
