/*
 * objects.c: building, applying and patching Kubernetes objects (see
 * controller.h).
 *
 * ctl_apply() is the one way owned objects are written. It is idempotent:
 * the desired object's hash goes into its lakebase.io/spec-hash annotation,
 * and an object whose annotation already matches is left alone, so a
 * controller restart or upgrade writes nothing (and restarts no pod) unless
 * what it would write changed. Fields the API refuses to change (a
 * StatefulSet's selector, serviceName and volumeClaimTemplates, a Service's
 * clusterIP) are taken from the existing object.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conditions.h"
#include "controller.h"
#include "errors.h"
#include "log.h"

#define HASH_ANNOTATION "lakebase.io/spec-hash"

const char *
ctl_meta_str(const json_t *obj, const char *field)
{
    return json_string_value(json_object_get(json_object_get(obj, "metadata"), field));
}

json_t *
ctl_at(const json_t *obj, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const json_t *cur = obj;
    char *save = NULL;
    for (char *part = strtok_r(buf, ".", &save); part && cur; part = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, part);
    return (json_t *)cur;
}

const char *
ctl_str_at(const json_t *obj, const char *path)
{
    return json_string_value(ctl_at(obj, path));
}

bool
ctl_deleting(const json_t *obj)
{
    return ctl_meta_str(obj, "deletionTimestamp") != NULL;
}

bool
ctl_has_finalizer(const json_t *obj, const char *name)
{
    json_t *f = json_object_get(json_object_get(obj, "metadata"), "finalizers");
    size_t i;
    json_t *v;
    json_array_foreach(f, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
            return true;
    }
    return false;
}

void
ctl_json_hash(const json_t *v, char out[17])
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = s ? s : ""; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ULL;
    }
    free(s);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

char *
ctl_b64(const void *bytes, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, bytes, (int)n);
    return out;
}

int
ctl_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    if (n % 4 != 0 || cap < n / 4 * 3 + 1)
        return -1;
    int len = n ? EVP_DecodeBlock(out, (const unsigned char *)in, (int)n) : 0;
    if (len < 0)
        return -1;
    if (n >= 1 && in[n - 1] == '=')
        len--;
    if (n >= 2 && in[n - 2] == '=')
        len--;
    out[len] = '\0';
    return len;
}

json_t *
ctl_labels(const char *cluster, const char *component, const char *branch)
{
    json_t *l =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "app.kubernetes.io/name", "lakebase",
                  "app.kubernetes.io/instance", cluster, "app.kubernetes.io/component", component,
                  "app.kubernetes.io/managed-by", CTL_MANAGED_BY, "lakebase.io/cluster", cluster);
    if (l && branch)
        json_object_set_new(l, "lakebase.io/branch", json_string(branch));
    return l;
}

json_t *
ctl_owner_refs(const json_t *owner)
{
    return json_pack("[{s:O, s:O, s:s, s:s, s:b, s:b}]", "apiVersion",
                     json_object_get(owner, "apiVersion"), "kind", json_object_get(owner, "kind"),
                     "name", ctl_meta_str(owner, "name"), "uid", ctl_meta_str(owner, "uid"),
                     "controller", 1, "blockOwnerDeletion", 1);
}

json_t *
ctl_object(const char *api_version, const char *kind, const char *ns, const char *name,
           json_t *labels, const json_t *owner)
{
    json_t *o = json_pack("{s:s, s:s, s:{s:s, s:s, s:o}}", "apiVersion", api_version, "kind", kind,
                          "metadata", "name", name, "namespace", ns, "labels",
                          labels ? labels : json_object());
    if (o && owner)
        json_object_set_new(json_object_get(o, "metadata"), "ownerReferences",
                            ctl_owner_refs(owner));
    return o;
}

/* Carry over what the API will not let an update change. */
static void
keep_immutable(const char *kind, json_t *desired, const json_t *current)
{
    json_t *dspec = json_object_get(desired, "spec");
    json_t *cspec = json_object_get(current, "spec");
    if (!dspec || !cspec)
        return;
    if (strcmp(kind, "StatefulSet") == 0) {
        static const char *const fields[] = {"selector", "serviceName", "volumeClaimTemplates",
                                             "podManagementPolicy"};
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            json_t *v = json_object_get(cspec, fields[i]);
            if (v)
                json_object_set(dspec, fields[i], v);
            else
                json_object_del(dspec, fields[i]);
        }
    } else if (strcmp(kind, "Service") == 0) {
        static const char *const fields[] = {"clusterIP", "clusterIPs", "ipFamilies",
                                             "ipFamilyPolicy"};
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            json_t *v = json_object_get(cspec, fields[i]);
            if (v)
                json_object_set(dspec, fields[i], v);
        }
    } else if (strcmp(kind, "PersistentVolumeClaim") == 0) {
        json_object_set(desired, "spec", cspec); /* a claim is made once */
    }
}

int
ctl_apply(ctl_kube *k, const char *collection, json_t *desired, json_t **current)
{
    const char *kind = json_string_value(json_object_get(desired, "kind"));
    const char *name = ctl_meta_str(desired, "name");
    json_t *md = json_object_get(desired, "metadata");
    char hash[17];
    ctl_json_hash(desired, hash);
    json_t *ann = json_object_get(md, "annotations");
    if (!ann) {
        ann = json_object();
        json_object_set_new(md, "annotations", ann);
    }
    json_object_set_new(ann, HASH_ANNOTATION, json_string(hash));

    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", collection, name);
    json_t *cur = NULL;
    int rc = ctl_kube_get(k, path, &cur);
    if (rc == LB_ENOTFOUND) {
        rc = ctl_kube_create(k, collection, desired, &cur);
        if (rc == LB_EEXIST) /* made meanwhile (another worker, a dying leader) */
            rc = ctl_kube_get(k, path, &cur);
        else if (rc == 0)
            lb_info("created %s=%s/%s", kind, ctl_meta_str(desired, "namespace"), name);
    } else if (rc == 0) {
        const char *have = json_string_value(json_object_get(
            json_object_get(json_object_get(cur, "metadata"), "annotations"), HASH_ANNOTATION));
        if (!have || strcmp(have, hash) != 0) {
            keep_immutable(kind, desired, cur);
            json_object_set(md, "resourceVersion",
                            json_object_get(json_object_get(cur, "metadata"), "resourceVersion"));
            /* keep what others put on the object: its other annotations and labels */
            json_t *cann = json_object_get(json_object_get(cur, "metadata"), "annotations");
            const char *key;
            json_t *v;
            json_object_foreach(cann, key, v)
            {
                if (!json_object_get(ann, key))
                    json_object_set(ann, key, v);
            }
            json_t *status = json_object_get(cur, "status");
            if (status)
                json_object_set(desired, "status", status);
            json_t *updated = NULL;
            rc = ctl_kube_update(k, path, desired, &updated);
            json_object_del(desired, "status");
            if (rc == 0) {
                lb_info("updated %s=%s/%s", kind, ctl_meta_str(desired, "namespace"), name);
                json_decref(cur);
                cur = updated;
            }
        }
    }
    if (current && rc == 0)
        *current = cur;
    else
        json_decref(cur);
    return rc;
}

/* Decode a Secret's data into strings. */
static json_t *
decode_data(const json_t *secret)
{
    json_t *out = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(secret, "data"), key, v)
    {
        const char *b = json_string_value(v);
        if (!b)
            continue;
        size_t n = strlen(b);
        unsigned char *buf = malloc(n / 4 * 3 + 4);
        if (!buf)
            continue;
        int len = n ? EVP_DecodeBlock(buf, (const unsigned char *)b, (int)n) : 0;
        if (len >= 0) {
            if (n >= 1 && b[n - 1] == '=')
                len--;
            if (n >= 2 && b[n - 2] == '=')
                len--;
            json_object_set_new(out, key, json_stringn((const char *)buf, (size_t)len));
        }
        explicit_bzero(buf, n / 4 * 3 + 4);
        free(buf);
    }
    return out;
}

int
ctl_ensure_secret(ctl_kube *k, const char *ns, json_t *secret, json_t *string_data, json_t **data)
{
    char coll[512], path[1024];
    ctl_kube_path(coll, sizeof(coll), "v1", ns, "secrets", NULL, NULL);
    snprintf(path, sizeof(path), "%s/%s", coll, ctl_meta_str(secret, "name"));
    json_t *cur = NULL;
    int rc = ctl_kube_get(k, path, &cur);
    if (rc == LB_ENOTFOUND) {
        json_object_set(secret, "stringData", string_data);
        json_object_set_new(secret, "type", json_string("Opaque"));
        rc = ctl_kube_create(k, coll, secret, &cur);
        json_object_del(secret, "stringData");
        if (rc == LB_EEXIST)
            rc = ctl_kube_get(k, path, &cur);
        else if (rc == 0)
            lb_info("created Secret=%s/%s", ns, ctl_meta_str(secret, "name"));
    } else if (rc == 0) {
        json_t *have = decode_data(cur);
        json_t *missing = json_object();
        const char *key;
        json_t *v;
        json_object_foreach(string_data, key, v)
        {
            if (!json_object_get(have, key))
                json_object_set(missing, key, v);
        }
        json_decref(have);
        if (json_object_size(missing)) {
            json_t *patch =
                json_pack("{s:O, s:{s:O}}", "stringData", missing, "metadata", "resourceVersion",
                          json_object_get(json_object_get(cur, "metadata"), "resourceVersion"));
            json_t *patched = NULL;
            rc = patch ? ctl_kube_merge_patch(k, path, patch, &patched) : -ENOMEM;
            json_decref(patch);
            if (rc == 0) {
                json_decref(cur);
                cur = patched;
            }
        }
        json_decref(missing);
    }
    if (rc == 0 && data)
        *data = decode_data(cur);
    json_decref(cur);
    return rc;
}

int
ctl_set_finalizer(ctl_kube *k, const char *path, const json_t *obj, const char *name, bool present)
{
    json_t *list = json_array();
    json_t *f = json_object_get(json_object_get(obj, "metadata"), "finalizers");
    size_t i;
    json_t *v;
    bool had = false;
    json_array_foreach(f, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), name) == 0) {
            had = true;
            if (!present)
                continue;
        }
        json_array_append(list, v);
    }
    if (had == present) {
        json_decref(list);
        return 0;
    }
    if (present)
        json_array_append_new(list, json_string(name));
    json_t *patch = json_pack("{s:{s:o, s:O}}", "metadata", "finalizers", list, "resourceVersion",
                              json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    int rc = patch ? ctl_kube_merge_patch(k, path, patch, NULL) : -ENOMEM;
    json_decref(patch);
    return rc;
}

int
ctl_write_status(ctl_kube *k, const char *path, const json_t *obj, const json_t *status)
{
    char spath[1100];
    snprintf(spath, sizeof(spath), "%s/status", path);
    json_t *cur = json_deep_copy(obj);
    int rc = 0;
    for (int attempt = 0; attempt < 5; attempt++) {
        if (json_equal(json_object_get(cur, "status"), (json_t *)status)) {
            rc = 0;
            break;
        }
        json_object_set(cur, "status", (json_t *)status);
        rc = ctl_kube_update(k, spath, cur, NULL);
        if (rc != LB_ECONFLICT)
            break;
        /* someone wrote meanwhile: take their resourceVersion and try again */
        json_decref(cur);
        cur = NULL;
        rc = ctl_kube_get(k, path, &cur);
        if (rc)
            break;
        rc = LB_ECONFLICT;
    }
    json_decref(cur);
    return rc;
}
