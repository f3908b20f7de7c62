/*
 * schema.c: building and checking a lake schema.
 *
 * The schema is an array of nodes; node 0 is the unnamed root struct and
 * every other node points at its parent and lists its children in the
 * order they were added, which is the column order of every file written
 * with it.
 *
 * Invariants, checked at lake_schema_add() so that an invalid schema never
 * exists even transiently:
 *   - non-zero field ids are unique in the whole tree;
 *   - sibling names are unique and non-empty (a list's element is always
 *     named "element");
 *   - only a struct or a list is a parent, and a list has one child;
 *   - DECIMAL has 1 <= precision <= 38 and 0 <= scale <= precision;
 *     FIXED has length >= 1; no other type takes these parameters.
 * lake_schema_validate() adds the checks that need the whole tree.
 *
 * Callers: the pageserver's transcoder builds one per table version; the
 * Parquet writer (and later the Iceberg and Delta writers) read it.
 */
#include "schema.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

struct lake_schema {
    lake__node *nodes; /* owned, nnodes used */
    int nnodes;
    int cap;
    int holders; /* writers using the schema */
    char error[256];
};

static const char *const type_names[] = {
    [LAKE_TYPE_BOOLEAN] = "boolean",     [LAKE_TYPE_INT8] = "int8",
    [LAKE_TYPE_INT16] = "int16",         [LAKE_TYPE_INT32] = "int32",
    [LAKE_TYPE_INT64] = "int64",         [LAKE_TYPE_FLOAT] = "float",
    [LAKE_TYPE_DOUBLE] = "double",       [LAKE_TYPE_DECIMAL] = "decimal",
    [LAKE_TYPE_DATE] = "date",           [LAKE_TYPE_TIME] = "time",
    [LAKE_TYPE_TIMESTAMP] = "timestamp", [LAKE_TYPE_TIMESTAMPTZ] = "timestamptz",
    [LAKE_TYPE_STRING] = "string",       [LAKE_TYPE_JSON] = "json",
    [LAKE_TYPE_UUID] = "uuid",           [LAKE_TYPE_BINARY] = "binary",
    [LAKE_TYPE_FIXED] = "fixed",         [LAKE_TYPE_LIST] = "list",
    [LAKE_TYPE_STRUCT] = "struct",
};

const char *
lake_type_name(lake_type t)
{
    if ((int)t < LAKE_TYPE_BOOLEAN || (int)t > LAKE_TYPE_STRUCT)
        return "unknown";
    return type_names[t];
}

bool
lake__type_is_group(lake_type t)
{
    return t == LAKE_TYPE_LIST || t == LAKE_TYPE_STRUCT;
}

static int fail(lake_schema *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(lake_schema *s, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof(s->error), fmt, ap);
    va_end(ap);
    return rc;
}

int
lake_schema_new(lake_schema **out)
{
    lake_schema *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->cap = 16;
    s->nodes = calloc((size_t)s->cap, sizeof(*s->nodes));
    if (!s->nodes) {
        free(s);
        return -ENOMEM;
    }
    lake__node *root = &s->nodes[0];
    root->type = LAKE_TYPE_STRUCT;
    root->required = true;
    root->parent = -1;
    s->nnodes = 1;
    *out = s;
    return 0;
}

void
lake_schema_free(lake_schema *s)
{
    if (!s)
        return;
    assert(s->holders == 0 && "schema freed while a writer uses it");
    for (int i = 0; i < s->nnodes; i++) {
        free(s->nodes[i].name);
        free(s->nodes[i].physical);
        free(s->nodes[i].children);
    }
    free(s->nodes);
    free(s);
}

const char *
lake_schema_error(const lake_schema *s)
{
    return s->error;
}

/* The dotted name of a node, for messages ("point.x", "tags.element"). */
static void
node_path(const lake_schema *s, int id, char *out, size_t cap)
{
    int chain[64];
    int depth = 0;
    for (int n = id; n > 0 && depth < 64; n = s->nodes[n].parent)
        chain[depth++] = n;
    size_t len = 0;
    out[0] = '\0';
    for (int i = depth - 1; i >= 0 && len < cap; i--) {
        int w = snprintf(out + len, cap - len, "%s%s", len ? "." : "", s->nodes[chain[i]].name);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

static int
check_field(lake_schema *s, const lake__node *parent, const lake_field *f, const char *name)
{
    if ((int)f->type < LAKE_TYPE_BOOLEAN || (int)f->type > LAKE_TYPE_STRUCT)
        return fail(s, LB_ESCHEMA, "field \"%s\" has unknown type %d", name, (int)f->type);
    if (name[0] == '\0')
        return fail(s, LB_ESCHEMA, "field name is empty");
    if (f->field_id < 0)
        return fail(s, LB_ESCHEMA, "field \"%s\" has negative field id %d", name, f->field_id);
    if (f->field_id > 0) {
        for (int i = 1; i < s->nnodes; i++) {
            if (s->nodes[i].field_id == f->field_id) {
                char other[256];
                node_path(s, i, other, sizeof(other));
                return fail(s, LB_ESCHEMA, "duplicate field id %d in \"%s\" and \"%s\"",
                            f->field_id, other, name);
            }
        }
    }
    for (int i = 0; i < parent->nchildren; i++)
        if (strcmp(s->nodes[parent->children[i]].name, name) == 0)
            return fail(s, LB_ESCHEMA, "duplicate field name \"%s\"", name);

    if (f->type == LAKE_TYPE_DECIMAL) {
        if (f->precision < 1 || f->precision > LAKE_DECIMAL_MAX_PRECISION)
            return fail(s, LB_ESCHEMA, "decimal field \"%s\" has precision %d, not 1..%d", name,
                        f->precision, LAKE_DECIMAL_MAX_PRECISION);
        if (f->scale < 0 || f->scale > f->precision)
            return fail(s, LB_ESCHEMA, "decimal field \"%s\" has scale %d, not 0..%d", name,
                        f->scale, f->precision);
    } else if (f->precision || f->scale) {
        return fail(s, LB_ESCHEMA, "field \"%s\" of type %s has a precision or scale", name,
                    lake_type_name(f->type));
    }
    if (f->type == LAKE_TYPE_FIXED) {
        if (f->length < 1)
            return fail(s, LB_ESCHEMA, "fixed field \"%s\" has length %d, must be >= 1", name,
                        f->length);
    } else if (f->length) {
        return fail(s, LB_ESCHEMA, "field \"%s\" of type %s has a length", name,
                    lake_type_name(f->type));
    }
    return 0;
}

int
lake_schema_add(lake_schema *s, int parent, const lake_field *f, int *id)
{
    assert(s && f);
    s->error[0] = '\0';
    if (s->holders)
        return fail(s, -EBUSY, "schema is in use by a writer");
    if (parent < 0 || parent >= s->nnodes)
        return fail(s, LB_ESCHEMA, "parent %d is not a field of the schema", parent);
    lake__node *p = &s->nodes[parent];
    if (!lake__type_is_group(p->type))
        return fail(s, LB_ESCHEMA, "field \"%s\" of type %s cannot have children", p->name,
                    lake_type_name(p->type));
    bool is_element = p->type == LAKE_TYPE_LIST;
    if (is_element && p->nchildren == 1)
        return fail(s, LB_ESCHEMA, "list \"%s\" already has its element", p->name);
    const char *name = is_element ? "element" : f->name;
    if (!name)
        return fail(s, LB_ESCHEMA, "field name is missing");
    int rc = check_field(s, p, f, name);
    if (rc)
        return rc;

    if (s->nnodes == s->cap) {
        lake__node *grown = realloc(s->nodes, (size_t)s->cap * 2 * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        s->nodes = grown;
        s->cap *= 2;
        p = &s->nodes[parent];
    }
    if (p->nchildren == p->cap) {
        int cap = p->cap ? p->cap * 2 : 4;
        int *children = realloc(p->children, (size_t)cap * sizeof(*children));
        if (!children)
            return -ENOMEM;
        p->children = children;
        p->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;

    int nid = s->nnodes++;
    lake__node *n = &s->nodes[nid];
    memset(n, 0, sizeof(*n));
    n->name = copy;
    n->field_id = f->field_id;
    n->type = f->type;
    n->required = f->required;
    n->length = f->length;
    n->precision = f->precision;
    n->scale = f->scale;
    n->parent = parent;
    p->children[p->nchildren++] = nid;
    if (id)
        *id = nid;
    return 0;
}

int
lake_schema_validate(lake_schema *s)
{
    s->error[0] = '\0';
    if (s->nodes[0].nchildren == 0)
        return fail(s, LB_ESCHEMA, "schema has no fields");
    for (int i = 1; i < s->nnodes; i++) {
        const lake__node *n = &s->nodes[i];
        if (n->type == LAKE_TYPE_LIST && n->nchildren != 1) {
            char path[256];
            node_path(s, i, path, sizeof(path));
            return fail(s, LB_ESCHEMA, "list \"%s\" has no element", path);
        }
        if (n->type == LAKE_TYPE_STRUCT && n->nchildren == 0) {
            char path[256];
            node_path(s, i, path, sizeof(path));
            return fail(s, LB_ESCHEMA, "struct \"%s\" has no fields", path);
        }
    }
    return 0;
}

int
lake__schema_nnodes(const lake_schema *s)
{
    return s->nnodes;
}

const lake__node *
lake__schema_node(const lake_schema *s, int id)
{
    assert(id >= 0 && id < s->nnodes);
    return &s->nodes[id];
}

const char *
lake__node_physical(const lake__node *n)
{
    return n->physical ? n->physical : n->name;
}

int
lake__schema_set_physical(lake_schema *s, int id, const char *name)
{
    assert(id > 0 && id < s->nnodes && name && *name);
    lake__node *n = &s->nodes[id];
    if (s->holders)
        return fail(s, -EBUSY, "schema is in use by a writer");
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    free(n->physical);
    n->physical = copy;
    return 0;
}

void
lake__schema_hold(lake_schema *s)
{
    s->holders++;
}

void
lake__schema_release(lake_schema *s)
{
    assert(s->holders > 0);
    s->holders--;
}
