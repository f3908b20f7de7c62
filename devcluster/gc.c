/*
 * gc.c: the garbage collector and the namespace finalizer, one thread
 * inside the API server (kube-controller-manager's garbagecollector and
 * namespace controllers, reduced to what one machine needs).
 *
 * Each pass runs under the store lock, after any change or every
 * gc_interval_ms, and is idempotent (level-triggered):
 *   - an object whose owners (ownerReferences by uid) are all gone is
 *     deleted (background propagation); a dangling reference next to a live
 *     owner is removed;
 *   - dependents of an owner marked for deletion with the
 *     foregroundDeletion finalizer are deleted; once none is left, the
 *     owner's finalizer is removed, which deletes it;
 *   - dependents of an owner with the orphan finalizer lose their
 *     reference to it, then the finalizer is removed;
 *   - a namespace marked for deletion has everything in it deleted; once
 *     it is empty its "kubernetes" finalizer goes, and the namespace with it.
 */
#include "api.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pass {
    dc_apiserver *a;
    json_t *items;  /* [{resource, ns, name, obj}] */
    json_t *owners; /* uid -> obj, for objects being deleted */
} pass;

static int
collect(void *arg, const char *resource, const char *ns, const char *name, json_t *obj)
{
    pass *p = arg;
    json_array_append_new(p->items, json_pack("{s:s, s:s, s:s, s:O}", "resource", resource, "ns",
                                              ns, "name", name, "obj", obj));
    const char *uid = dc_api_meta_str(obj, "uid");
    if (uid && dc_api_meta_str(obj, "deletionTimestamp"))
        json_object_set(p->owners, uid, obj);
    return 0;
}

static bool
has_finalizer(json_t *obj, const char *f)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(json_object_get(obj, "metadata"), "finalizers"), i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), f) == 0)
            return true;
    }
    return false;
}

/* Re-read, apply fn, store if changed. */
static void
update(dc_apiserver *a, const char *resource, const char *ns, const char *name,
       void (*fn)(json_t *obj, const void *arg), const void *arg)
{
    const dc_resource *r = dc_resources_by_key(resource);
    json_t *obj = NULL;
    if (!r || dc_store_get(a->store, resource, ns, name, &obj) != 0)
        return;
    json_t *before = json_deep_copy(obj);
    fn(obj, arg);
    if (!json_equal(before, obj))
        dc_api_store_update(a, r, ns, name, obj);
    json_decref(before);
    json_decref(obj);
}

static void
drop_finalizer(json_t *obj, const void *arg)
{
    json_t *fins = json_object_get(json_object_get(obj, "metadata"), "finalizers");
    for (size_t i = 0; i < json_array_size(fins);) {
        const char *f = json_string_value(json_array_get(fins, i));
        if (f && strcmp(f, (const char *)arg) == 0)
            json_array_remove(fins, i);
        else
            i++;
    }
}

static void
drop_owner(json_t *obj, const void *arg)
{
    json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
    for (size_t i = 0; i < json_array_size(refs);) {
        const char *uid = json_string_value(json_object_get(json_array_get(refs, i), "uid"));
        if (uid && strcmp(uid, (const char *)arg) == 0)
            json_array_remove(refs, i);
        else
            i++;
    }
    if (json_array_size(refs) == 0)
        json_object_del(json_object_get(obj, "metadata"), "ownerReferences");
}

static void
delete_now(dc_apiserver *a, const char *resource, const char *ns, const char *name,
           const char *propagation)
{
    const dc_resource *r = dc_resources_by_key(resource);
    json_t *obj = NULL;
    if (!r || dc_store_get(a->store, resource, ns, name, &obj) != 0)
        return;
    if (!dc_api_meta_str(obj, "deletionTimestamp")) {
        bool deleted;
        json_t *result = NULL;
        dc_api_delete_object(a, r, ns, name, obj, propagation, false, &deleted, &result);
        lb_debug("garbage collected resource=%s namespace=%s name=%s deleted=%d", resource, ns,
                 name, deleted);
        json_decref(result);
    }
    json_decref(obj);
}

static void
collect_owners(pass *p)
{
    dc_apiserver *a = p->a;
    size_t i;
    json_t *it;
    json_t *has_dependents = json_object(); /* owner uid -> true */
    json_array_foreach(p->items, i, it)
    {
        const char *resource = json_string_value(json_object_get(it, "resource"));
        const char *ns = json_string_value(json_object_get(it, "ns"));
        const char *name = json_string_value(json_object_get(it, "name"));
        json_t *obj = json_object_get(it, "obj");
        json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
        if (json_array_size(refs) == 0)
            continue;
        size_t live = 0, k;
        json_t *ref;
        bool delete_dependent = false;
        json_array_foreach(refs, k, ref)
        {
            const char *uid = json_string_value(json_object_get(ref, "uid"));
            if (!uid)
                continue;
            if (!dc_store_uid_exists(a->store, uid))
                continue;
            live++;
            json_object_set_new(has_dependents, uid, json_true());
            json_t *owner = json_object_get(p->owners, uid);
            if (owner && has_finalizer(owner, "foregroundDeletion"))
                delete_dependent = true;
            if (owner && has_finalizer(owner, "orphan"))
                update(a, resource, ns, name, drop_owner, uid);
        }
        if (live == 0 || delete_dependent) {
            delete_now(a, resource, ns, name, delete_dependent ? "Foreground" : "Background");
        } else if (live < json_array_size(refs)) {
            json_array_foreach(refs, k, ref)
            {
                const char *uid = json_string_value(json_object_get(ref, "uid"));
                if (uid && !dc_store_uid_exists(a->store, uid))
                    update(a, resource, ns, name, drop_owner, uid);
            }
        }
    }
    /* owners whose dependents are all gone (or orphaned) finish deleting */
    const char *uid;
    json_t *owner;
    json_object_foreach(p->owners, uid, owner)
    {
        json_t *m = json_object_get(owner, "metadata");
        const char *resource = NULL;
        json_array_foreach(p->items, i, it)
        {
            if (json_object_get(it, "obj") == owner)
                resource = json_string_value(json_object_get(it, "resource"));
        }
        if (!resource)
            continue;
        const char *ns = json_string_value(json_object_get(m, "namespace")) ?: "";
        const char *name = json_string_value(json_object_get(m, "name"));
        if (has_finalizer(owner, "orphan"))
            update(a, resource, ns, name, drop_finalizer, "orphan");
        if (has_finalizer(owner, "foregroundDeletion") && !json_object_get(has_dependents, uid))
            update(a, resource, ns, name, drop_finalizer, "foregroundDeletion");
    }
    json_decref(has_dependents);
}

/* Collects what a namespace holds; deleting happens after the listing. */
static int
sweep_object(void *arg, const char *resource, const char *ns, const char *name, json_t *obj)
{
    (void)obj;
    json_array_append_new(
        (json_t *)arg, json_pack("{s:s, s:s, s:s}", "resource", resource, "ns", ns, "name", name));
    return 0;
}

static void
drop_ns_finalizer(json_t *obj, const void *arg)
{
    (void)arg;
    json_t *spec = json_object_get(obj, "spec");
    json_object_set_new(spec, "finalizers", json_array());
}

static void
finalize_namespaces(pass *p)
{
    size_t i;
    json_t *it;
    json_array_foreach(p->items, i, it)
    {
        if (strcmp(json_string_value(json_object_get(it, "resource")), "/namespaces") != 0)
            continue;
        json_t *obj = json_object_get(it, "obj");
        if (!dc_api_meta_str(obj, "deletionTimestamp"))
            continue;
        const char *name = dc_api_meta_str(obj, "name");
        json_t *held = json_array();
        dc_store_list_namespace(p->a->store, name, sweep_object, held);
        size_t k;
        json_t *h;
        json_array_foreach(held, k, h)
        {
            delete_now(p->a, json_string_value(json_object_get(h, "resource")),
                       json_string_value(json_object_get(h, "ns")),
                       json_string_value(json_object_get(h, "name")), "Background");
        }
        if (json_array_size(held) == 0)
            update(p->a, "/namespaces", "", name, drop_ns_finalizer, NULL);
        json_decref(held);
    }
}

void *
dc_gc_main(void *arg)
{
    dc_apiserver *a = arg;
    int64_t seen = -1;
    dc_store_lock(a->store);
    while (!atomic_load(&a->stopping)) {
        dc_store_wait(a->store, seen, a->config.gc_interval_ms);
        if (atomic_load(&a->stopping))
            break;
        seen = dc_store_rv(a->store);
        pass p = {.a = a, .items = json_array(), .owners = json_object()};
        dc_store_list_gc_candidates(a->store, collect, &p);
        collect_owners(&p);
        finalize_namespaces(&p);
        json_decref(p.items);
        json_decref(p.owners);
        /* if this pass wrote, the next wait returns at once and looks again */
    }
    dc_store_unlock(a->store);
    return NULL;
}
