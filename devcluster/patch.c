/*
 * patch.c: merge patch, JSON patch and strategic merge patch (see patch.h).
 *
 * All three work on a deep copy of the target and never modify their
 * inputs. JSON patch pointers follow RFC 6901 (~0 is '~', ~1 is '/', "-"
 * appends to an array).
 */
#include "patch.h"

#include "errors.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- RFC 7386 ---- */

static json_t *
merge(json_t *target, const json_t *patch)
{
    if (!json_is_object(patch)) {
        json_decref(target);
        return json_deep_copy(patch);
    }
    if (!json_is_object(target)) {
        json_decref(target);
        target = json_object();
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)patch, key, v)
    {
        if (json_is_null(v)) {
            json_object_del(target, key);
            continue;
        }
        json_t *cur = json_object_get(target, key);
        json_t *merged = merge(cur ? json_incref(cur) : NULL, v);
        json_object_set_new(target, key, merged);
    }
    return target;
}

int
dc_merge_patch(const json_t *target, const json_t *patch, json_t **out, char *err, size_t cap)
{
    if (!json_is_object(patch)) {
        snprintf(err, cap, "merge patch must be a JSON object");
        return LB_EPARSE;
    }
    *out = merge(json_deep_copy(target), patch);
    return *out ? 0 : -ENOMEM;
}

/* ---- RFC 6902 ---- */

/* Split pointer into its parent container and last token (decoded). */
static int
resolve(json_t *doc, const char *ptr, json_t **parent, char *last, size_t cap)
{
    if (ptr[0] != '/')
        return LB_EPARSE;
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", ptr + 1);
    json_t *cur = doc;
    char *tok = buf;
    for (;;) {
        char *slash = strchr(tok, '/');
        if (slash)
            *slash = '\0';
        /* unescape */
        char dec[1024];
        size_t n = 0;
        for (char *p = tok; *p && n + 1 < sizeof dec; p++) {
            if (p[0] == '~' && p[1] == '1') {
                dec[n++] = '/';
                p++;
            } else if (p[0] == '~' && p[1] == '0') {
                dec[n++] = '~';
                p++;
            } else {
                dec[n++] = *p;
            }
        }
        dec[n] = '\0';
        if (!slash) {
            *parent = cur;
            snprintf(last, cap, "%s", dec);
            return 0;
        }
        if (json_is_object(cur)) {
            cur = json_object_get(cur, dec);
        } else if (json_is_array(cur)) {
            char *end;
            long idx = strtol(dec, &end, 10);
            cur = (*end || idx < 0) ? NULL : json_array_get(cur, (size_t)idx);
        } else {
            cur = NULL;
        }
        if (!cur)
            return LB_ECONFLICT;
        tok = slash + 1;
    }
}

static json_t *
ptr_get(json_t *doc, const char *ptr)
{
    if (ptr[0] == '\0')
        return doc;
    json_t *parent;
    char last[1024];
    if (resolve(doc, ptr, &parent, last, sizeof last) != 0)
        return NULL;
    if (json_is_object(parent))
        return json_object_get(parent, last);
    if (json_is_array(parent)) {
        char *end;
        long idx = strtol(last, &end, 10);
        return (*end || idx < 0) ? NULL : json_array_get(parent, (size_t)idx);
    }
    return NULL;
}

static int
array_index(json_t *arr, const char *tok, bool for_add, size_t *idx)
{
    if (for_add && strcmp(tok, "-") == 0) {
        *idx = json_array_size(arr);
        return 0;
    }
    char *end;
    long v = strtol(tok, &end, 10);
    if (!*tok || *end || v < 0)
        return LB_EPARSE;
    if ((size_t)v > json_array_size(arr) || (!for_add && (size_t)v == json_array_size(arr)))
        return LB_ECONFLICT;
    *idx = (size_t)v;
    return 0;
}

/* add value (stolen) at ptr of *doc */
static int
op_add(json_t **doc, const char *ptr, json_t *value, bool replace)
{
    if (ptr[0] == '\0') {
        json_decref(*doc);
        *doc = value;
        return 0;
    }
    json_t *parent;
    char last[1024];
    int rc = resolve(*doc, ptr, &parent, last, sizeof last);
    if (rc == 0 && json_is_object(parent)) {
        if (replace && !json_object_get(parent, last))
            rc = LB_ECONFLICT;
        else
            json_object_set(parent, last, value);
    } else if (rc == 0 && json_is_array(parent)) {
        size_t idx;
        rc = array_index(parent, last, !replace, &idx);
        if (rc == 0)
            rc = replace ? json_array_set(parent, idx, value)
                         : json_array_insert(parent, idx, value);
        if (rc == -1)
            rc = LB_ECONFLICT;
    } else if (rc == 0) {
        rc = LB_ECONFLICT;
    }
    json_decref(value);
    return rc;
}

static int
op_remove(json_t *doc, const char *ptr)
{
    json_t *parent;
    char last[1024];
    int rc = resolve(doc, ptr, &parent, last, sizeof last);
    if (rc != 0)
        return rc;
    if (json_is_object(parent))
        return json_object_del(parent, last) == 0 ? 0 : LB_ECONFLICT;
    if (json_is_array(parent)) {
        size_t idx;
        rc = array_index(parent, last, false, &idx);
        return rc ? rc : json_array_remove(parent, idx) == 0 ? 0 : LB_ECONFLICT;
    }
    return LB_ECONFLICT;
}

int
dc_json_patch(const json_t *target, const json_t *patch, json_t **out, char *err, size_t cap)
{
    if (!json_is_array(patch)) {
        snprintf(err, cap, "json patch must be an array of operations");
        return LB_EPARSE;
    }
    json_t *doc = json_deep_copy(target);
    size_t i;
    json_t *op;
    json_array_foreach((json_t *)patch, i, op)
    {
        const char *name = json_string_value(json_object_get(op, "op"));
        const char *path = json_string_value(json_object_get(op, "path"));
        const char *from = json_string_value(json_object_get(op, "from"));
        json_t *value = json_object_get(op, "value");
        int rc = 0;
        if (!name || !path) {
            snprintf(err, cap, "operation %zu: missing \"op\" or \"path\"", i);
            rc = LB_EPARSE;
        } else if (strcmp(name, "add") == 0 || strcmp(name, "replace") == 0) {
            if (!value) {
                snprintf(err, cap, "operation %zu: missing \"value\"", i);
                rc = LB_EPARSE;
            } else {
                rc = op_add(&doc, path, json_deep_copy(value), name[0] == 'r');
            }
        } else if (strcmp(name, "remove") == 0) {
            rc = op_remove(doc, path);
        } else if (strcmp(name, "move") == 0 || strcmp(name, "copy") == 0) {
            json_t *src = from ? ptr_get(doc, from) : NULL;
            if (!src) {
                rc = LB_ECONFLICT;
            } else {
                json_t *copy = json_deep_copy(src);
                if (name[0] == 'm')
                    rc = op_remove(doc, from);
                rc = rc ? (json_decref(copy), rc) : op_add(&doc, path, copy, false);
            }
        } else if (strcmp(name, "test") == 0) {
            json_t *have = ptr_get(doc, path);
            if (!have || !value || !json_equal(have, value)) {
                snprintf(err, cap, "testing value %s failed", path);
                json_decref(doc);
                return LB_ECONFLICT;
            }
        } else {
            snprintf(err, cap, "Unexpected kind: %s", name);
            rc = LB_EPARSE;
        }
        if (rc != 0) {
            if (rc == LB_ECONFLICT)
                snprintf(err, cap,
                         "the server rejected our request due to an error in our request");
            else if (!err[0])
                snprintf(err, cap, "operation %zu: invalid path \"%s\"", i, path ? path : "");
            json_decref(doc);
            return rc;
        }
    }
    *out = doc;
    return 0;
}

/* ---- strategic merge patch ---- */

/* The merge key of a list field, or NULL (replace), or "" (a set of
 * primitives). sample: an element of the list, to tell container ports
 * (containerPort) from service ports (port). */
static const char *
merge_key_for(const char *field, const json_t *sample)
{
    static const struct {
        const char *field, *key;
    } keys[] = {
        {"containers", "name"},
        {"initContainers", "name"},
        {"ephemeralContainers", "name"},
        {"volumes", "name"},
        {"env", "name"},
        {"volumeMounts", "mountPath"},
        {"volumeDevices", "devicePath"},
        {"imagePullSecrets", "name"},
        {"hostAliases", "ip"},
        {"conditions", "type"},
        {"ownerReferences", "uid"},
        {"finalizers", ""},
        {"topologySpreadConstraints", "topologyKey"},
        {"resourceClaims", "name"},
    };
    if (strcmp(field, "ports") == 0)
        return json_object_get(sample, "containerPort") ? "containerPort" : "port";
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(keys[i].field, field) == 0)
            return keys[i].key;
    return NULL;
}

static json_t *smp_object(json_t *target, const json_t *patch, int depth);

static bool
key_equal(const json_t *a, const json_t *b, const char *key)
{
    json_t *x = json_object_get(a, key), *y = json_object_get(b, key);
    return x && y && json_equal(x, y);
}

static json_t *
smp_list(json_t *target, const json_t *patch, const char *field, int depth)
{
    json_t *sample = json_array_get(patch, 0);
    if (!sample)
        sample = json_array_get(target, 0);
    const char *key = merge_key_for(field, sample);
    if (!key || !json_is_array(target)) {
        json_t *copy = json_deep_copy(patch);
        /* strip directives from a replaced list */
        for (size_t i = 0; i < json_array_size(copy);) {
            json_t *e = json_array_get(copy, i);
            if (json_is_object(e) && json_object_get(e, "$patch"))
                json_array_remove(copy, i);
            else
                i++;
        }
        json_decref(target);
        return copy;
    }
    if (!*key) { /* a set of primitives */
        size_t i;
        json_t *v;
        json_array_foreach((json_t *)patch, i, v)
        {
            bool have = false;
            size_t j;
            json_t *w;
            json_array_foreach(target, j, w) if (json_equal(v, w)) have = true;
            if (!have)
                json_array_append(target, v);
        }
        return target;
    }
    size_t i;
    json_t *e;
    json_array_foreach((json_t *)patch, i, e)
    {
        if (!json_is_object(e))
            continue;
        const char *directive = json_string_value(json_object_get(e, "$patch"));
        if (directive && strcmp(directive, "replace") == 0) {
            json_t *copy = json_deep_copy(patch);
            for (size_t k = 0; k < json_array_size(copy);) {
                if (json_object_get(json_array_get(copy, k), "$patch"))
                    json_array_remove(copy, k);
                else
                    k++;
            }
            json_decref(target);
            return copy;
        }
        size_t j;
        json_t *t;
        bool found = false;
        json_array_foreach(target, j, t)
        {
            if (!key_equal(t, e, key))
                continue;
            found = true;
            if (directive && strcmp(directive, "delete") == 0) {
                json_array_remove(target, j);
            } else {
                json_t *merged = smp_object(json_incref(t), e, depth + 1);
                json_array_set_new(target, j, merged);
            }
            break;
        }
        if (!found && !(directive && strcmp(directive, "delete") == 0)) {
            json_t *fresh = smp_object(json_object(), e, depth + 1);
            json_array_append_new(target, fresh);
        }
    }
    return target;
}

static void
reorder(json_t *list, const json_t *order, const char *field)
{
    if (!json_is_array(list) || !json_is_array(order))
        return;
    const char *key = merge_key_for(field, json_array_get(order, 0));
    json_t *sorted = json_array();
    size_t i;
    json_t *o;
    json_array_foreach((json_t *)order, i, o)
    {
        size_t j;
        json_t *e;
        json_array_foreach(list, j, e)
        {
            bool same = (key && *key) ? key_equal(e, o, key) : json_equal(e, o);
            if (same) {
                json_array_append(sorted, e);
                json_array_remove(list, j);
                break;
            }
        }
    }
    json_array_extend(sorted, list);
    json_array_clear(list);
    json_array_extend(list, sorted);
    json_decref(sorted);
}

static json_t *
smp_object(json_t *target, const json_t *patch, int depth)
{
    if (!json_is_object(patch) || depth > 64) {
        json_decref(target);
        return json_deep_copy(patch);
    }
    const char *directive = json_string_value(json_object_get(patch, "$patch"));
    if (directive && strcmp(directive, "replace") == 0) {
        json_decref(target);
        json_t *copy = json_deep_copy(patch);
        json_object_del(copy, "$patch");
        return copy;
    }
    if (directive && strcmp(directive, "delete") == 0) {
        json_decref(target);
        return NULL;
    }
    if (!json_is_object(target)) {
        json_decref(target);
        target = json_object();
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v)
    {
        if (k[0] == '$') {
            if (strncmp(k, "$deleteFromPrimitiveList/", 25) == 0) {
                json_t *list = json_object_get(target, k + 25);
                size_t i;
                json_t *del;
                json_array_foreach(v, i, del)
                {
                    for (size_t j = 0; j < json_array_size(list);) {
                        if (json_equal(json_array_get(list, j), del))
                            json_array_remove(list, j);
                        else
                            j++;
                    }
                }
            }
            continue;
        }
        if (json_is_null(v)) {
            json_object_del(target, k);
            continue;
        }
        json_t *cur = json_object_get(target, k);
        json_t *merged;
        if (json_is_array(v))
            merged = smp_list(cur ? json_incref(cur) : NULL, v, k, depth);
        else if (json_is_object(v))
            merged = smp_object(cur ? json_incref(cur) : NULL, v, depth + 1);
        else
            merged = json_deep_copy(v);
        if (merged)
            json_object_set_new(target, k, merged);
        else
            json_object_del(target, k);
    }
    json_object_foreach((json_t *)patch, k, v)
    {
        if (strncmp(k, "$setElementOrder/", 17) == 0)
            reorder(json_object_get(target, k + 17), v, k + 17);
    }
    json_t *retain = json_object_get(patch, "$retainKeys");
    if (json_is_array(retain)) {
        void *tmp;
        json_object_foreach_safe(target, tmp, k, v)
        {
            bool keep = false;
            size_t i;
            json_t *r;
            json_array_foreach(retain, i, r) if (json_is_string(r) &&
                                                 strcmp(json_string_value(r), k) == 0) keep = true;
            if (!keep)
                json_object_del(target, k);
        }
    }
    return target;
}

int
dc_strategic_merge_patch(const json_t *target, const json_t *patch, json_t **out, char *err,
                         size_t cap)
{
    if (!json_is_object(patch)) {
        snprintf(err, cap, "strategic merge patch must be a JSON object");
        return LB_EPARSE;
    }
    json_t *res = smp_object(json_deep_copy(target), patch, 0);
    if (!res) {
        snprintf(err, cap, "the patch deletes the whole object");
        return LB_EPARSE;
    }
    *out = res;
    return 0;
}
