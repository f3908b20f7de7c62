/*
 * fields.c: walk an object along the field table (see fields.h).
 *
 * The table is sorted by (message, name); lookups bisect it. A child
 * message is always in the table (the generator lists every message it
 * reaches), so an object key missing from its message is unknown.
 */
#include "fields.h"

#include <stdio.h>
#include <string.h>

static const dc_field *
find(const char *message, const char *name)
{
    size_t lo = 0, hi = dc_nfields;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(dc_fields[mid].message, message);
        if (c == 0)
            c = strcmp(dc_fields[mid].name, name);
        if (c == 0)
            return &dc_fields[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int walk(const char *message, const json_t *obj, const char *path, json_t *unknown,
                int depth);

static int
walk_value(const dc_field *f, const json_t *v, const char *path, json_t *unknown, int depth)
{
    if (!f->child)
        return 0;
    char sub[1024];
    int n = 0;
    if (f->shape == DC_FIELD_LIST && json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            snprintf(sub, sizeof sub, "%.900s[%zu]", path, i);
            n += walk(f->child, e, sub, unknown, depth + 1);
        }
    } else if (f->shape == DC_FIELD_MAP && json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e)
        {
            snprintf(sub, sizeof sub, "%.600s[%.300s]", path, k);
            n += walk(f->child, e, sub, unknown, depth + 1);
        }
    } else if (f->shape == DC_FIELD_ONE) {
        n += walk(f->child, v, path, unknown, depth + 1);
    }
    return n;
}

static int
walk(const char *message, const json_t *obj, const char *path, json_t *unknown, int depth)
{
    if (!json_is_object(obj) || depth > 32)
        return 0;
    int n = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        char sub[1024];
        snprintf(sub, sizeof sub, "%.800s%s%.200s", path, path[0] ? "." : "", k);
        if (depth == 0 && (strcmp(k, "apiVersion") == 0 || strcmp(k, "kind") == 0))
            continue;
        const dc_field *f = find(message, k);
        if (!f) {
            json_array_append_new(unknown, json_string(sub));
            n++;
            continue;
        }
        n += walk_value(f, v, sub, unknown, depth);
    }
    return n;
}

int
dc_fields_check(const char *kind, const json_t *obj, json_t *unknown)
{
    for (size_t i = 0; i < dc_nfield_roots; i++)
        if (strcmp(dc_field_roots[i].kind, kind) == 0)
            return walk(dc_field_roots[i].message, obj, "", unknown, 0);
    return 0;
}
