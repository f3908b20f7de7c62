/*
 * avro.c: Avro object container files (Avro 1.11 spec, "Object Container
 * Files" and "Binary Encoding").
 *
 * Schemas. The JSON schema is parsed (jansson) into a flat table of types
 * that refer to each other by index; a named record or fixed is entered in
 * the name table before its fields are parsed, so a field may refer back to
 * it. The text that goes to the header is the caller's JSON re-serialized
 * compactly, so every attribute (field-id, element-id, logicalType, doc,
 * ...) survives. Iceberg ids found on fields, arrays and maps must be
 * integers and unique: two columns with one id would make Iceberg readers
 * resolve the wrong column.
 *
 * Writing. A datum is validated and encoded in one recursive pass into the
 * current block buffer; if it does not fit, the buffer is cut back to where
 * the datum started, so a refused datum leaves no trace. A block goes out
 * (count, size, bytes, sync) once it reaches block_bytes or block_records;
 * with the deflate codec the block's bytes are raw deflate (zlib with
 * windowBits -15, no zlib header or checksum), which is what the spec
 * names "deflate". The header is written just before the first block, so
 * metadata may be set until then. Ints and longs are zig-zag varints;
 * floats and doubles little-endian IEEE 754; arrays and maps one block of
 * items followed by a zero count.
 *
 * Reading. The file is in memory (manifests are small). Blocks are
 * checked against the sync marker; each datum is decoded into an arena that
 * the next call frees, with bytes and strings pointing into the block. A
 * hostile count (say 2^60 nulls) is refused before allocation: every datum
 * has a budget of decoded values.
 *
 * Callers: iceberg.c (manifests, manifest lists), the tests.
 */
#include "avro.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <zlib.h>

#include "buf.h"
#include "errors.h"

#define AVRO_MAGIC "Obj\x01"
#define SYNC_BYTES 16
#define MAX_JSON_DEPTH 64
#define MAX_DECODE_DEPTH 200
#define DATUM_BUDGET (256u << 20) /* bytes of decoded values per datum */

/* ---- schema ------------------------------------------------------------- */

typedef struct avro_field {
    char *name;
    int type;
} avro_field;

typedef struct avro_type {
    lake_avro_kind kind;
    char *name; /* full name of a record or fixed */
    int32_t size;
    avro_field *fields;
    int nfields;
    int items; /* array items, map values */
    int *branches;
    int nbranches;
} avro_type;

struct lake_avro_schema {
    avro_type *types;
    int ntypes, cap;
    int root;
    char *json;
};

typedef struct parse_ctx {
    lake_avro_schema *s;
    int64_t *ids;
    size_t nids, capids;
    int depth;
    int prim[LAKE_AVRO_STRING + 1]; /* index of each primitive type, -1 until used */
    lb_err *err;                    /* the caller's, may be NULL */
} parse_ctx;

const char *
lake_avro_kind_name(lake_avro_kind k)
{
    static const char *const names[] = {"null",   "boolean", "int",    "long",  "float",
                                        "double", "bytes",   "string", "fixed", "record",
                                        "array",  "map",     "union"};
    if ((unsigned)k < sizeof(names) / sizeof(names[0]))
        return names[k];
    return "?";
}

const lake_avro_value *
lake_avro_unwrap(const lake_avro_value *v)
{
    while (v && v->kind == LAKE_AVRO_UNION)
        v = v->u.uni.value;
    return v;
}

static int
new_type(lake_avro_schema *s, lake_avro_kind kind)
{
    if (s->ntypes == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        avro_type *t = realloc(s->types, (size_t)cap * sizeof(*t));
        if (!t)
            return -ENOMEM;
        s->types = t;
        s->cap = cap;
    }
    avro_type *t = &s->types[s->ntypes];
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->items = -1;
    return s->ntypes++;
}

static int
primitive_kind(const char *name)
{
    static const char *const prims[] = {"null",  "boolean", "int",   "long",
                                        "float", "double",  "bytes", "string"};
    for (int k = 0; k < (int)(sizeof(prims) / sizeof(prims[0])); k++)
        if (strcmp(name, prims[k]) == 0)
            return k;
    return -1;
}

static bool
valid_name(const char *n)
{
    if (!n || !*n)
        return false;
    if (!((*n >= 'A' && *n <= 'Z') || (*n >= 'a' && *n <= 'z') || *n == '_'))
        return false;
    for (n++; *n; n++)
        if (!((*n >= 'A' && *n <= 'Z') || (*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') ||
              *n == '_'))
            return false;
    return true;
}

/* Dotted full names: every component must be a valid name. */
static bool
valid_fullname(const char *n)
{
    char part[256];
    while (n && *n) {
        const char *dot = strchr(n, '.');
        size_t len = dot ? (size_t)(dot - n) : strlen(n);
        if (len == 0 || len >= sizeof(part))
            return false;
        memcpy(part, n, len);
        part[len] = 0;
        if (!valid_name(part))
            return false;
        n = dot ? dot + 1 : NULL;
        if (dot && !*n)
            return false;
    }
    return true;
}

static int
find_named(const lake_avro_schema *s, const char *fullname)
{
    for (int i = 0; i < s->ntypes; i++)
        if (s->types[i].name && strcmp(s->types[i].name, fullname) == 0)
            return i;
    return -1;
}

/* Full name of a named type: its own dotted name, or namespace.name. */
static int
full_name(json_t *obj, const char *ns, char **out, char **ns_out, lb_err *err)
{
    const char *name = json_string_value(json_object_get(obj, "name"));
    json_t *jns = json_object_get(obj, "namespace");
    if (!name)
        return lb_err_set(err, LB_ESCHEMA, "named type without a \"name\"");
    if (jns && !json_is_string(jns) && !json_is_null(jns))
        return lb_err_set(err, LB_ESCHEMA, "namespace of \"%s\" is not a string", name);
    const char *space = strchr(name, '.')            ? ""
                        : jns && json_is_string(jns) ? json_string_value(jns)
                                                     : ns;
    char *full = NULL;
    if (space && *space) {
        if (asprintf(&full, "%s.%s", space, name) < 0)
            return -ENOMEM;
    } else if (!(full = strdup(name))) {
        return -ENOMEM;
    }
    if (!valid_fullname(full)) {
        int rc = lb_err_set(err, LB_ESCHEMA, "invalid name \"%s\"", full);
        free(full);
        return rc;
    }
    char *dot = strrchr(full, '.');
    *ns_out = dot ? strndup(full, (size_t)(dot - full)) : strdup("");
    if (!*ns_out) {
        free(full);
        return -ENOMEM;
    }
    *out = full;
    return 0;
}

static int
add_id(parse_ctx *c, json_t *holder, const char *attr, const char *where)
{
    json_t *id = json_object_get(holder, attr);
    if (!id)
        return 0;
    if (!json_is_integer(id))
        return lb_err_set(c->err, LB_ESCHEMA, "%s of %s is not an integer", attr, where);
    int64_t v = json_integer_value(id);
    for (size_t i = 0; i < c->nids; i++)
        if (c->ids[i] == v)
            return lb_err_set(c->err, LB_ESCHEMA, "field id %lld is used twice (again as %s of %s)",
                              (long long)v, attr, where);
    if (c->nids == c->capids) {
        size_t cap = c->capids ? 2 * c->capids : 32;
        int64_t *ids = realloc(c->ids, cap * sizeof(*ids));
        if (!ids)
            return -ENOMEM;
        c->ids = ids;
        c->capids = cap;
    }
    c->ids[c->nids++] = v;
    return 0;
}

static int parse_type(parse_ctx *c, json_t *j, const char *ns, int *out);

static int
parse_record(parse_ctx *c, json_t *j, const char *ns, int *out)
{
    char *name = NULL, *space = NULL;
    int rc = full_name(j, ns, &name, &space, c->err);
    if (rc)
        return rc;
    if (find_named(c->s, name) >= 0) {
        rc = lb_err_set(c->err, LB_ESCHEMA, "type \"%s\" is defined twice", name);
        goto done;
    }
    json_t *fields = json_object_get(j, "fields");
    if (!json_is_array(fields)) {
        rc = lb_err_set(c->err, LB_ESCHEMA, "record \"%s\" has no \"fields\" array", name);
        goto done;
    }
    int t = new_type(c->s, LAKE_AVRO_RECORD);
    if (t < 0) {
        rc = t;
        goto done;
    }
    c->s->types[t].name = name; /* entered before the fields: they may refer to it */
    name = NULL;
    size_t n = json_array_size(fields);
    avro_field *fs = calloc(n ? n : 1, sizeof(*fs));
    if (!fs) {
        rc = -ENOMEM;
        goto done;
    }
    c->s->types[t].fields = fs;
    const char *rname = c->s->types[t].name;
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_array_get(fields, i);
        const char *fname = json_string_value(json_object_get(f, "name"));
        if (!json_is_object(f) || !fname || !valid_name(fname)) {
            rc = lb_err_set(c->err, LB_ESCHEMA, "field %zu of record \"%s\" has no valid name", i,
                            rname);
            goto done;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(c->s->types[t].fields[k].name, fname) == 0) {
                rc = lb_err_set(c->err, LB_ESCHEMA, "record \"%s\" has two fields \"%s\"", rname,
                                fname);
                goto done;
            }
        char where[300];
        snprintf(where, sizeof(where), "field \"%s.%s\"", rname, fname);
        if ((rc = add_id(c, f, "field-id", where)))
            goto done;
        json_t *ft = json_object_get(f, "type");
        if (!ft) {
            rc = lb_err_set(c->err, LB_ESCHEMA, "%s has no type", where);
            goto done;
        }
        int ti;
        if ((rc = parse_type(c, ft, space, &ti)))
            goto done;
        /* parse_type may have moved the table */
        avro_field *af = &c->s->types[t].fields[i];
        if (!(af->name = strdup(fname))) {
            rc = -ENOMEM;
            goto done;
        }
        af->type = ti;
        c->s->types[t].nfields = (int)i + 1;
        rname = c->s->types[t].name;
    }
    *out = t;
done:
    free(name);
    free(space);
    return rc;
}

static int
parse_object(parse_ctx *c, json_t *j, const char *ns, int *out)
{
    json_t *jt = json_object_get(j, "type");
    if (!jt)
        return lb_err_set(c->err, LB_ESCHEMA, "schema object without \"type\"");
    if (!json_is_string(jt))
        return parse_type(c, jt, ns, out);
    const char *type = json_string_value(jt);
    if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0)
        return parse_record(c, j, ns, out);
    if (strcmp(type, "enum") == 0)
        return lb_err_set(c->err, LB_EUNSUPPORTED, "enum types are not supported");
    if (strcmp(type, "array") == 0 || strcmp(type, "map") == 0) {
        bool array = type[0] == 'a';
        json_t *items = json_object_get(j, array ? "items" : "values");
        if (!items)
            return lb_err_set(c->err, LB_ESCHEMA, "%s without \"%s\"", type,
                              array ? "items" : "values");
        int rc;
        if (array)
            rc = add_id(c, j, "element-id", "an array");
        else if (!(rc = add_id(c, j, "key-id", "a map")))
            rc = add_id(c, j, "value-id", "a map");
        if (rc)
            return rc;
        int it;
        if ((rc = parse_type(c, items, ns, &it)))
            return rc;
        int t = new_type(c->s, array ? LAKE_AVRO_ARRAY : LAKE_AVRO_MAP);
        if (t < 0)
            return t;
        c->s->types[t].items = it;
        *out = t;
        return 0;
    }
    if (strcmp(type, "fixed") == 0) {
        char *name = NULL, *space = NULL;
        int rc = full_name(j, ns, &name, &space, c->err);
        if (rc)
            return rc;
        free(space);
        json_t *size = json_object_get(j, "size");
        if (!json_is_integer(size) || json_integer_value(size) < 0 ||
            json_integer_value(size) > INT32_MAX) {
            rc = lb_err_set(c->err, LB_ESCHEMA, "fixed \"%s\" has no valid size", name);
            free(name);
            return rc;
        }
        if (find_named(c->s, name) >= 0) {
            rc = lb_err_set(c->err, LB_ESCHEMA, "type \"%s\" is defined twice", name);
            free(name);
            return rc;
        }
        int t = new_type(c->s, LAKE_AVRO_FIXED);
        if (t < 0) {
            free(name);
            return t;
        }
        c->s->types[t].name = name;
        c->s->types[t].size = (int32_t)json_integer_value(size);
        *out = t;
        return 0;
    }
    int k = primitive_kind(type);
    if (k >= 0)
        return parse_type(c, jt, ns, out);
    return lb_err_set(c->err, LB_ESCHEMA, "unknown type \"%s\"", type);
}

static int
parse_union(parse_ctx *c, json_t *j, const char *ns, int *out)
{
    size_t n = json_array_size(j);
    if (n == 0)
        return lb_err_set(c->err, LB_ESCHEMA, "empty union");
    int *br = calloc(n, sizeof(int));
    if (!br)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if ((rc = parse_type(c, json_array_get(j, i), ns, &br[i])))
            break;
        const avro_type *bt = &c->s->types[br[i]];
        if (bt->kind == LAKE_AVRO_UNION) {
            rc = lb_err_set(c->err, LB_ESCHEMA, "a union cannot hold a union directly");
            break;
        }
        for (size_t k = 0; k < i; k++) {
            const avro_type *ot = &c->s->types[br[k]];
            if (ot->kind != bt->kind)
                continue;
            if (!bt->name || (ot->name && strcmp(ot->name, bt->name) == 0)) {
                rc = bt->name ? lb_err_set(c->err, LB_ESCHEMA, "union holds \"%s\" twice", bt->name)
                              : lb_err_set(c->err, LB_ESCHEMA, "union holds %s twice",
                                           lake_avro_kind_name(bt->kind));
                break;
            }
        }
    }
    if (rc) {
        free(br);
        return rc;
    }
    int t = new_type(c->s, LAKE_AVRO_UNION);
    if (t < 0) {
        free(br);
        return t;
    }
    c->s->types[t].branches = br;
    c->s->types[t].nbranches = (int)n;
    *out = t;
    return 0;
}

static int
parse_type(parse_ctx *c, json_t *j, const char *ns, int *out)
{
    if (++c->depth > MAX_JSON_DEPTH) {
        c->depth--;
        return lb_err_set(c->err, LB_ESCHEMA, "schema nested deeper than %d", MAX_JSON_DEPTH);
    }
    int rc;
    if (json_is_string(j)) {
        const char *name = json_string_value(j);
        int k = primitive_kind(name);
        if (k >= 0) {
            if (c->prim[k] < 0) {
                int t = new_type(c->s, (lake_avro_kind)k);
                if (t < 0) {
                    c->depth--;
                    return t;
                }
                c->prim[k] = t;
            }
            *out = c->prim[k];
            rc = 0;
        } else {
            int t = -1;
            if (!strchr(name, '.') && ns && *ns) {
                char full[512];
                snprintf(full, sizeof(full), "%s.%s", ns, name);
                t = find_named(c->s, full);
            }
            if (t < 0)
                t = find_named(c->s, name);
            rc = t < 0 ? lb_err_set(c->err, LB_ESCHEMA, "unknown type \"%s\"", name) : 0;
            *out = t;
        }
    } else if (json_is_array(j)) {
        rc = parse_union(c, j, ns, out);
    } else if (json_is_object(j)) {
        rc = parse_object(c, j, ns, out);
    } else {
        rc = lb_err_set(c->err, LB_ESCHEMA, "a type must be a string, an object or an array");
    }
    c->depth--;
    return rc;
}

void
lake_avro_schema_free(lake_avro_schema *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->ntypes; i++) {
        avro_type *t = &s->types[i];
        free(t->name);
        for (int f = 0; f < t->nfields; f++)
            free(t->fields[f].name);
        free(t->fields);
        free(t->branches);
    }
    free(s->types);
    free(s->json);
    free(s);
}

int
lake_avro_schema_parse(const char *json, size_t len, lake_avro_schema **out, lb_err *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
    if (!doc)
        return lb_err_set(err, LB_EPARSE, "schema is not JSON: %s (line %d)", jerr.text, jerr.line);
    lake_avro_schema *s = calloc(1, sizeof(*s));
    if (!s) {
        json_decref(doc);
        return -ENOMEM;
    }
    parse_ctx c = {.s = s, .err = err};
    for (size_t k = 0; k < sizeof(c.prim) / sizeof(c.prim[0]); k++)
        c.prim[k] = -1;
    int rc = parse_type(&c, doc, "", &s->root);
    free(c.ids);
    if (rc == 0 && !(s->json = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY)))
        rc = -ENOMEM;
    json_decref(doc);
    if (rc) {
        lake_avro_schema_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

const char *
lake_avro_schema_json(const lake_avro_schema *s)
{
    return s->json;
}

lake_avro_kind
lake_avro_schema_kind(const lake_avro_schema *s)
{
    return s->types[s->root].kind;
}

/* ---- binary encoding ---------------------------------------------------- */

static int
put_long(lb_buf *b, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    uint8_t tmp[10];
    size_t n = 0;
    while (z >= 0x80) {
        tmp[n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    tmp[n++] = (uint8_t)z;
    return lb_buf_append(b, tmp, n);
}

static int
put_bytes(lb_buf *b, const void *p, size_t n)
{
    if (put_long(b, (int64_t)n))
        return -ENOMEM;
    return n ? lb_buf_append(b, p, n) : 0;
}

static int
put_le(lb_buf *b, uint64_t v, int n)
{
    uint8_t tmp[8];
    for (int i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    return lb_buf_append(b, tmp, (size_t)n);
}

/* ---- writer ------------------------------------------------------------- */

typedef struct meta_pair {
    char *key;
    uint8_t *value;
    size_t len;
} meta_pair;

struct lake_avro_writer {
    const lake_avro_schema *schema;
    lake_avro_options opts;
    uint8_t sync[SYNC_BYTES];
    lake_avro_sink_fn sink;
    void *sink_arg;
    meta_pair *meta;
    size_t nmeta;
    bool header_done, closed;
    int dead; /* first fatal error, 0 while usable */
    lb_buf block;
    int64_t block_count;
    int64_t records;
    uint64_t bytes;
    lb_buf zbuf;
    char path[256]; /* where in the datum the encoder is, for messages */
    size_t plen;
    char error[512];
};

static int set_error(lake_avro_writer *w, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
set_error(lake_avro_writer *w, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->error, sizeof(w->error), fmt, ap);
    va_end(ap);
    return code;
}

static int
kill_writer(lake_avro_writer *w, int rc, const char *what)
{
    if (!w->dead) {
        w->dead = rc;
        set_error(w, rc, "%s: %s", what, lb_strerror(rc));
    }
    return rc;
}

int
lake_avro_buf_sink(void *arg, const void *bytes, size_t n)
{
    return lb_buf_append(arg, bytes, n);
}

void
lake_avro_options_init(lake_avro_options *o)
{
    memset(o, 0, sizeof(*o));
    o->codec = LAKE_AVRO_CODEC_DEFLATE;
    o->deflate_level = -1;
    o->block_bytes = 64 * 1024;
}

static void
random_bytes(uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got < n) {
        /* No entropy source: a sync marker only has to be unlikely to
         * occur in the data, so address and time bits will do. */
        uint64_t x = (uint64_t)(uintptr_t)p ^ (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
        for (; got < n; got++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            p[got] = (uint8_t)x;
        }
    }
}

int
lake_avro_writer_new(const lake_avro_schema *schema, const lake_avro_options *opts,
                     lake_avro_sink_fn sink, void *sink_arg, lake_avro_writer **out, lb_err *err)
{
    lake_avro_options o;
    if (opts)
        o = *opts;
    else
        lake_avro_options_init(&o);
    if (!schema || !sink || !out)
        return lb_err_set(err, -EINVAL, "schema, sink and out are required");
    if (o.codec != LAKE_AVRO_CODEC_NULL && o.codec != LAKE_AVRO_CODEC_DEFLATE)
        return lb_err_set(err, LB_EBADCONFIG, "unknown codec %d", (int)o.codec);
    if (o.deflate_level < -1 || o.deflate_level > 9)
        return lb_err_set(err, LB_EBADCONFIG, "deflate level %d is not in -1..9", o.deflate_level);
    if (o.block_bytes == 0)
        o.block_bytes = 64 * 1024;
    lake_avro_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->schema = schema;
    w->opts = o;
    if (o.sync)
        memcpy(w->sync, o.sync, SYNC_BYTES);
    else
        random_bytes(w->sync, SYNC_BYTES);
    w->opts.sync = NULL;
    w->sink = sink;
    w->sink_arg = sink_arg;
    *out = w;
    return 0;
}

int
lake_avro_set_meta(lake_avro_writer *w, const char *key, const void *value, size_t len)
{
    if (w->dead)
        return w->dead;
    if (!key || !*key || (len && !value))
        return set_error(w, -EINVAL, "metadata needs a key and a value");
    if (strncmp(key, "avro.", 5) == 0)
        return set_error(w, -EINVAL, "metadata key \"%s\" is reserved by the format", key);
    if (w->header_done)
        return set_error(w, -EBUSY, "metadata \"%s\" comes too late: the header is written", key);
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -ENOMEM;
    if (len)
        memcpy(copy, value, len);
    for (size_t i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].value);
            w->meta[i].value = copy;
            w->meta[i].len = len;
            return 0;
        }
    meta_pair *m = realloc(w->meta, (w->nmeta + 1) * sizeof(*m));
    char *k = strdup(key);
    if (!m || !k) {
        if (m)
            w->meta = m;
        free(k);
        free(copy);
        return -ENOMEM;
    }
    w->meta = m;
    w->meta[w->nmeta++] = (meta_pair){k, copy, len};
    return 0;
}

int
lake_avro_set_meta_str(lake_avro_writer *w, const char *key, const char *value)
{
    return lake_avro_set_meta(w, key, value, value ? strlen(value) : 0);
}

static int
emit(lake_avro_writer *w, const void *p, size_t n)
{
    int rc = w->sink(w->sink_arg, p, n);
    if (rc)
        return kill_writer(w, rc < 0 ? rc : LB_ESTORAGE, "sink failed");
    w->bytes += n;
    return 0;
}

static int
write_header(lake_avro_writer *w)
{
    lb_buf h = LB_BUF_INIT;
    const char *codec = w->opts.codec == LAKE_AVRO_CODEC_DEFLATE ? "deflate" : "null";
    const char *sj = w->schema->json;
    int rc = lb_buf_append(&h, AVRO_MAGIC, 4);
    if (!rc)
        rc = put_long(&h, (int64_t)w->nmeta + 2);
    if (!rc)
        rc = put_bytes(&h, "avro.schema", 11);
    if (!rc)
        rc = put_bytes(&h, sj, strlen(sj));
    if (!rc)
        rc = put_bytes(&h, "avro.codec", 10);
    if (!rc)
        rc = put_bytes(&h, codec, strlen(codec));
    for (size_t i = 0; i < w->nmeta && rc == 0; i++) {
        rc = put_bytes(&h, w->meta[i].key, strlen(w->meta[i].key));
        if (!rc)
            rc = put_bytes(&h, w->meta[i].value, w->meta[i].len);
    }
    if (!rc)
        rc = put_long(&h, 0);
    if (!rc)
        rc = lb_buf_append(&h, w->sync, SYNC_BYTES);
    if (rc) {
        lb_buf_free(&h);
        return kill_writer(w, rc, "writing the header");
    }
    w->header_done = true;
    rc = emit(w, h.data, h.len);
    lb_buf_free(&h);
    return rc;
}

static int
deflate_block(lake_avro_writer *w, const void *src, size_t n)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, w->opts.deflate_level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    uLong bound = deflateBound(&z, (uLong)n);
    lb_buf_reset(&w->zbuf);
    if (lb_buf_reserve(&w->zbuf, bound + 16)) {
        deflateEnd(&z);
        return -ENOMEM;
    }
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)w->zbuf.data;
    z.avail_out = (uInt)(bound + 16);
    int zr = deflate(&z, Z_FINISH);
    size_t out = (size_t)z.total_out;
    deflateEnd(&z);
    if (zr != Z_STREAM_END)
        return -EIO;
    w->zbuf.len = out;
    return 0;
}

int
lake_avro_flush_block(lake_avro_writer *w)
{
    if (w->dead)
        return w->dead;
    if (!w->header_done) {
        int rc = write_header(w);
        if (rc)
            return rc;
    }
    if (w->block_count == 0)
        return 0;
    const void *body = w->block.data;
    size_t blen = w->block.len;
    if (w->opts.codec == LAKE_AVRO_CODEC_DEFLATE) {
        int rc = deflate_block(w, w->block.data, w->block.len);
        if (rc)
            return kill_writer(w, rc, "compressing a block");
        body = w->zbuf.data;
        blen = w->zbuf.len;
    }
    lb_buf head = LB_BUF_INIT;
    int rc = put_long(&head, w->block_count);
    if (!rc)
        rc = put_long(&head, (int64_t)blen);
    if (rc) {
        lb_buf_free(&head);
        return kill_writer(w, rc, "writing a block");
    }
    rc = emit(w, head.data, head.len);
    lb_buf_free(&head);
    if (!rc)
        rc = emit(w, body, blen);
    if (!rc)
        rc = emit(w, w->sync, SYNC_BYTES);
    if (rc)
        return rc;
    lb_buf_reset(&w->block);
    w->block_count = 0;
    return 0;
}

/* Path bookkeeping for error messages. */
static size_t path_push(lake_avro_writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static size_t
path_push(lake_avro_writer *w, const char *fmt, ...)
{
    size_t old = w->plen;
    if (w->plen < sizeof(w->path) - 1) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(w->path + w->plen, sizeof(w->path) - w->plen, fmt, ap);
        va_end(ap);
        if (n > 0)
            w->plen =
                w->plen + (size_t)n < sizeof(w->path) ? w->plen + (size_t)n : sizeof(w->path) - 1;
    }
    return old;
}

static void
path_pop(lake_avro_writer *w, size_t old)
{
    w->plen = old;
    w->path[old] = 0;
}

static const char *
path_str(const lake_avro_writer *w)
{
    return w->plen ? w->path : "datum";
}

static int
mismatch(lake_avro_writer *w, const avro_type *t, const lake_avro_value *v)
{
    if (t->name)
        return set_error(w, LB_EVALUE, "%s: expected %s \"%s\", got %s", path_str(w),
                         lake_avro_kind_name(t->kind), t->name, lake_avro_kind_name(v->kind));
    return set_error(w, LB_EVALUE, "%s: expected %s, got %s", path_str(w),
                     lake_avro_kind_name(t->kind), lake_avro_kind_name(v->kind));
}

static int encode(lake_avro_writer *w, int ti, const lake_avro_value *v, int depth);

static int
choose_branch(lake_avro_writer *w, const avro_type *t, const lake_avro_value *v, int *branch)
{
    if (v->kind == LAKE_AVRO_UNION) {
        if (v->u.uni.branch < 0 || v->u.uni.branch >= t->nbranches)
            return set_error(w, LB_EVALUE, "%s: union has no branch %d", path_str(w),
                             v->u.uni.branch);
        if (!v->u.uni.value)
            return set_error(w, LB_EVALUE, "%s: union branch without a value", path_str(w));
        *branch = v->u.uni.branch;
        return 0;
    }
    int found = -1;
    for (int i = 0; i < t->nbranches; i++) {
        if (w->schema->types[t->branches[i]].kind != v->kind)
            continue;
        if (found >= 0)
            return set_error(w, LB_EVALUE,
                             "%s: a %s fits more than one branch of the union; name the branch",
                             path_str(w), lake_avro_kind_name(v->kind));
        found = i;
    }
    if (found < 0)
        return set_error(w, LB_EVALUE, "%s: the union has no %s branch", path_str(w),
                         lake_avro_kind_name(v->kind));
    *branch = found;
    return 0;
}

static int
encode(lake_avro_writer *w, int ti, const lake_avro_value *v, int depth)
{
    const avro_type *t = &w->schema->types[ti];
    lb_buf *b = &w->block;
    if (!v)
        return set_error(w, LB_EVALUE, "%s: missing value", path_str(w));
    if (depth > MAX_DECODE_DEPTH)
        return set_error(w, LB_EVALUE, "%s: nested deeper than %d", path_str(w), MAX_DECODE_DEPTH);
    if (t->kind == LAKE_AVRO_UNION) {
        int br = 0, rc = choose_branch(w, t, v, &br);
        if (rc)
            return rc;
        if (put_long(b, br))
            return -ENOMEM;
        return encode(w, t->branches[br], v->kind == LAKE_AVRO_UNION ? v->u.uni.value : v,
                      depth + 1);
    }
    if (v->kind != t->kind)
        return mismatch(w, t, v);
    switch (t->kind) {
    case LAKE_AVRO_NULL:
        return 0;
    case LAKE_AVRO_BOOLEAN:
        return lb_buf_append(b, v->u.b ? "\1" : "\0", 1);
    case LAKE_AVRO_INT:
        return put_long(b, v->u.i);
    case LAKE_AVRO_LONG:
        return put_long(b, v->u.l);
    case LAKE_AVRO_FLOAT: {
        uint32_t bits;
        memcpy(&bits, &v->u.f, 4);
        return put_le(b, bits, 4);
    }
    case LAKE_AVRO_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &v->u.d, 8);
        return put_le(b, bits, 8);
    }
    case LAKE_AVRO_BYTES:
    case LAKE_AVRO_STRING:
        if (v->u.bytes.len && !v->u.bytes.ptr)
            return set_error(w, LB_EVALUE, "%s: %zu bytes at NULL", path_str(w), v->u.bytes.len);
        return put_bytes(b, v->u.bytes.ptr, v->u.bytes.len);
    case LAKE_AVRO_FIXED:
        if (v->u.bytes.len != (size_t)t->size)
            return set_error(w, LB_EVALUE, "%s: fixed \"%s\" takes %d bytes, got %zu", path_str(w),
                             t->name, t->size, v->u.bytes.len);
        if (v->u.bytes.len && !v->u.bytes.ptr)
            return set_error(w, LB_EVALUE, "%s: %zu bytes at NULL", path_str(w), v->u.bytes.len);
        return v->u.bytes.len ? lb_buf_append(b, v->u.bytes.ptr, v->u.bytes.len) : 0;
    case LAKE_AVRO_RECORD:
        if (v->u.list.count != (size_t)t->nfields)
            return set_error(w, LB_EVALUE, "%s: record \"%s\" has %d fields, got %zu values",
                             path_str(w), t->name, t->nfields, v->u.list.count);
        for (int i = 0; i < t->nfields; i++) {
            size_t old = path_push(w, "%s%s", w->plen ? "." : "", t->fields[i].name);
            int rc = encode(w, t->fields[i].type, &v->u.list.items[i], depth + 1);
            if (rc)
                return rc;
            path_pop(w, old);
        }
        return 0;
    case LAKE_AVRO_ARRAY:
        if (v->u.list.count) {
            if (!v->u.list.items)
                return set_error(w, LB_EVALUE, "%s: array items at NULL", path_str(w));
            if (put_long(b, (int64_t)v->u.list.count))
                return -ENOMEM;
            for (size_t i = 0; i < v->u.list.count; i++) {
                size_t old = path_push(w, "[%zu]", i);
                int rc = encode(w, t->items, &v->u.list.items[i], depth + 1);
                if (rc)
                    return rc;
                path_pop(w, old);
            }
        }
        return put_long(b, 0);
    case LAKE_AVRO_MAP:
        if (v->u.map.count) {
            if (!v->u.map.entries)
                return set_error(w, LB_EVALUE, "%s: map entries at NULL", path_str(w));
            if (put_long(b, (int64_t)v->u.map.count))
                return -ENOMEM;
            for (size_t i = 0; i < v->u.map.count; i++) {
                const lake_avro_entry *e = &v->u.map.entries[i];
                size_t old = path_push(w, "[\"%.*s\"]", (int)(e->key_len > 40 ? 40 : e->key_len),
                                       e->key ? e->key : "");
                if (!e->key && e->key_len)
                    return set_error(w, LB_EVALUE, "%s: map key at NULL", path_str(w));
                if (put_bytes(b, e->key, e->key_len))
                    return -ENOMEM;
                int rc = encode(w, t->items, &e->value, depth + 1);
                if (rc)
                    return rc;
                path_pop(w, old);
            }
        }
        return put_long(b, 0);
    case LAKE_AVRO_UNION:
        break;
    }
    assert(!"unreachable");
    return -EINVAL;
}

int
lake_avro_write(lake_avro_writer *w, const lake_avro_value *datum)
{
    if (w->dead)
        return w->dead;
    if (w->closed)
        return set_error(w, -EINVAL, "the file is closed");
    size_t start = w->block.len;
    w->plen = 0;
    w->path[0] = 0;
    int rc = encode(w, w->schema->root, datum, 0);
    if (rc) {
        w->block.len = start; /* no trace of the refused datum */
        if (rc == -ENOMEM)
            return kill_writer(w, rc, "encoding a datum");
        return rc;
    }
    w->block_count++;
    w->records++;
    if (w->block.len >= w->opts.block_bytes ||
        (w->opts.block_records && (size_t)w->block_count >= w->opts.block_records))
        return lake_avro_flush_block(w);
    return 0;
}

int
lake_avro_writer_close(lake_avro_writer *w)
{
    if (w->dead)
        return w->dead;
    if (w->closed)
        return set_error(w, -EINVAL, "the file is already closed");
    int rc = lake_avro_flush_block(w);
    if (rc == 0)
        w->closed = true;
    return rc;
}

int64_t
lake_avro_records(const lake_avro_writer *w)
{
    return w->records;
}

uint64_t
lake_avro_bytes_written(const lake_avro_writer *w)
{
    return w->bytes;
}

void
lake_avro_writer_free(lake_avro_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nmeta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->meta);
    lb_buf_free(&w->block);
    lb_buf_free(&w->zbuf);
    free(w);
}

const char *
lake_avro_writer_error(const lake_avro_writer *w)
{
    return w->error;
}

/* ---- reader ------------------------------------------------------------- */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
} arena_chunk;

struct lake_avro_reader {
    const uint8_t *file;
    size_t len, pos;
    lake_avro_schema *schema;
    meta_pair *meta;
    size_t nmeta;
    bool deflate;
    uint8_t sync[SYNC_BYTES];
    const uint8_t *blk; /* the current block's (inflated) bytes */
    size_t blk_len, blk_pos;
    int64_t blk_left; /* datums left in the block */
    lb_buf inflated;
    arena_chunk *arena;
    size_t budget; /* bytes of values the current datum may still use */
    char error[512];
};

typedef struct cursor {
    const uint8_t *p;
    size_t n, pos;
} cursor;

static int rd_error(lake_avro_reader *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
rd_error(lake_avro_reader *r, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    return code;
}

static int
get_long(cursor *c, int64_t *out)
{
    uint64_t z = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (c->pos >= c->n)
            return LB_ETRUNCATED;
        uint8_t byte = c->p[c->pos++];
        if (shift == 63 && byte > 1)
            return LB_EPARSE;
        z |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
            return 0;
        }
    }
    return LB_EPARSE;
}

static int
get_span(cursor *c, const uint8_t **p, size_t *n)
{
    int64_t len;
    int rc = get_long(c, &len);
    if (rc)
        return rc;
    if (len < 0)
        return LB_EPARSE;
    if ((uint64_t)len > c->n - c->pos)
        return LB_ETRUNCATED;
    *p = c->p + c->pos;
    *n = (size_t)len;
    c->pos += (size_t)len;
    return 0;
}

static void *
arena_alloc(lake_avro_reader *r, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (n > r->budget)
        return NULL;
    r->budget -= n;
    arena_chunk *c = r->arena;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 64 * 1024 ? n : 64 * 1024;
        c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->next = r->arena;
        c->used = 0;
        c->cap = cap;
        r->arena = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

static void
arena_reset(lake_avro_reader *r)
{
    while (r->arena) {
        arena_chunk *next = r->arena->next;
        free(r->arena);
        r->arena = next;
    }
    r->budget = DATUM_BUDGET;
}

static int decode(lake_avro_reader *r, cursor *c, int ti, lake_avro_value *out, int depth);

/* Arrays and maps: blocks of items (a negative count is followed by the
 * block's byte size) until a zero count. */
static int
decode_items(lake_avro_reader *r, cursor *c, const avro_type *t, lake_avro_value *out, int depth)
{
    bool map = t->kind == LAKE_AVRO_MAP;
    size_t elem = map ? sizeof(lake_avro_entry) : sizeof(lake_avro_value);
    void *items = NULL;
    size_t count = 0;
    for (;;) {
        int64_t n;
        int rc = get_long(c, &n);
        if (rc)
            return rc;
        if (n == 0)
            break;
        if (n < 0) {
            int64_t size;
            if (n == INT64_MIN)
                return LB_EPARSE;
            n = -n;
            if ((rc = get_long(c, &size)))
                return rc;
        }
        /* The budget bounds a hostile count before anything is allocated. */
        if ((uint64_t)n > (r->budget / elem))
            return rd_error(r, LB_ETOOBIG, "a datum holds more values than the reader allows");
        void *grown = arena_alloc(r, (count + (size_t)n) * elem);
        if (!grown)
            return r->budget ? -ENOMEM : LB_ETOOBIG;
        if (count)
            memcpy(grown, items, count * elem);
        items = grown;
        for (int64_t i = 0; i < n; i++, count++) {
            if (map) {
                lake_avro_entry *e = (lake_avro_entry *)items + count;
                const uint8_t *k;
                size_t klen;
                if ((rc = get_span(c, &k, &klen)))
                    return rc;
                e->key = (const char *)k;
                e->key_len = klen;
                rc = decode(r, c, t->items, &e->value, depth + 1);
            } else {
                rc = decode(r, c, t->items, (lake_avro_value *)items + count, depth + 1);
            }
            if (rc)
                return rc;
        }
    }
    if (map)
        *out = lake_avro_map(items, count);
    else
        *out = lake_avro_array(items, count);
    return 0;
}

static int
decode(lake_avro_reader *r, cursor *c, int ti, lake_avro_value *out, int depth)
{
    const avro_type *t = &r->schema->types[ti];
    if (depth > MAX_DECODE_DEPTH)
        return rd_error(r, LB_EPARSE, "datum nested deeper than %d", MAX_DECODE_DEPTH);
    int64_t l;
    int rc;
    *out = lake_avro_null();
    switch (t->kind) {
    case LAKE_AVRO_NULL:
        return 0;
    case LAKE_AVRO_BOOLEAN:
        if (c->pos >= c->n)
            return LB_ETRUNCATED;
        if (c->p[c->pos] > 1)
            return LB_EPARSE;
        *out = lake_avro_boolean(c->p[c->pos++] == 1);
        return 0;
    case LAKE_AVRO_INT:
        if ((rc = get_long(c, &l)))
            return rc;
        if (l < INT32_MIN || l > INT32_MAX)
            return LB_EPARSE;
        *out = lake_avro_int((int32_t)l);
        return 0;
    case LAKE_AVRO_LONG:
        if ((rc = get_long(c, &l)))
            return rc;
        *out = lake_avro_long(l);
        return 0;
    case LAKE_AVRO_FLOAT:
    case LAKE_AVRO_DOUBLE: {
        size_t n = t->kind == LAKE_AVRO_FLOAT ? 4 : 8;
        if (c->n - c->pos < n)
            return LB_ETRUNCATED;
        uint64_t bits = 0;
        for (size_t i = 0; i < n; i++)
            bits |= (uint64_t)c->p[c->pos + i] << (8 * i);
        c->pos += n;
        if (n == 4) {
            uint32_t b32 = (uint32_t)bits;
            float f;
            memcpy(&f, &b32, 4);
            *out = lake_avro_float(f);
        } else {
            double d;
            memcpy(&d, &bits, 8);
            *out = lake_avro_double(d);
        }
        return 0;
    }
    case LAKE_AVRO_BYTES:
    case LAKE_AVRO_STRING: {
        const uint8_t *p;
        size_t n;
        if ((rc = get_span(c, &p, &n)))
            return rc;
        *out = lake_avro_bytes(p, n);
        out->kind = t->kind;
        return 0;
    }
    case LAKE_AVRO_FIXED:
        if (c->n - c->pos < (size_t)t->size)
            return LB_ETRUNCATED;
        *out = lake_avro_fixed(c->p + c->pos, (size_t)t->size);
        c->pos += (size_t)t->size;
        return 0;
    case LAKE_AVRO_RECORD: {
        lake_avro_value *fs = arena_alloc(r, (size_t)(t->nfields ? t->nfields : 1) * sizeof(*fs));
        if (!fs)
            return r->budget ? -ENOMEM : LB_ETOOBIG;
        for (int i = 0; i < t->nfields; i++)
            if ((rc = decode(r, c, t->fields[i].type, &fs[i], depth + 1)))
                return rc;
        *out = lake_avro_record(fs, (size_t)t->nfields);
        return 0;
    }
    case LAKE_AVRO_ARRAY:
    case LAKE_AVRO_MAP:
        return decode_items(r, c, t, out, depth);
    case LAKE_AVRO_UNION: {
        if ((rc = get_long(c, &l)))
            return rc;
        if (l < 0 || l >= t->nbranches)
            return rd_error(r, LB_EPARSE, "union branch %lld out of range", (long long)l);
        lake_avro_value *inner = arena_alloc(r, sizeof(*inner));
        if (!inner)
            return r->budget ? -ENOMEM : LB_ETOOBIG;
        if ((rc = decode(r, c, t->branches[l], inner, depth + 1)))
            return rc;
        *out = lake_avro_union((int)l, inner);
        return 0;
    }
    }
    return LB_EPARSE;
}

void
lake_avro_reader_free(lake_avro_reader *r)
{
    if (!r)
        return;
    lake_avro_schema_free(r->schema);
    for (size_t i = 0; i < r->nmeta; i++) {
        free(r->meta[i].key);
        free(r->meta[i].value);
    }
    free(r->meta);
    lb_buf_free(&r->inflated);
    arena_reset(r);
    free(r);
}

int
lake_avro_reader_open(const void *bytes, size_t len, lake_avro_reader **out, lb_err *err)
{
    if (len < 4 || memcmp(bytes, AVRO_MAGIC, 4) != 0)
        return lb_err_set(err, LB_EPARSE, "not an Avro container file (bad magic)");
    lake_avro_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->file = bytes;
    r->len = len;
    r->budget = DATUM_BUDGET;
    cursor c = {bytes, len, 4};
    int rc = 0;
    for (;;) {
        int64_t n;
        if ((rc = get_long(&c, &n)))
            break;
        if (n == 0)
            break;
        if (n < 0) {
            int64_t size;
            if (n == INT64_MIN || (rc = get_long(&c, &size))) {
                if (!rc)
                    rc = LB_EPARSE;
                break;
            }
            n = -n;
        }
        if ((uint64_t)n > len) {
            rc = LB_EPARSE;
            break;
        }
        for (int64_t i = 0; i < n && rc == 0; i++) {
            const uint8_t *k, *v;
            size_t kn, vn;
            if ((rc = get_span(&c, &k, &kn)) || (rc = get_span(&c, &v, &vn)))
                break;
            meta_pair *m = realloc(r->meta, (r->nmeta + 1) * sizeof(*m));
            if (!m) {
                rc = -ENOMEM;
                break;
            }
            r->meta = m;
            m = &r->meta[r->nmeta];
            m->key = strndup((const char *)k, kn);
            m->value = malloc(vn + 1); /* NUL-terminated for convenience */
            if (!m->key || !m->value) {
                free(m->key);
                free(m->value);
                rc = -ENOMEM;
                break;
            }
            memcpy(m->value, v, vn);
            m->value[vn] = 0;
            m->len = vn;
            r->nmeta++;
        }
        if (rc)
            break;
    }
    if (rc == 0 && c.n - c.pos < SYNC_BYTES)
        rc = LB_ETRUNCATED;
    if (rc) {
        lake_avro_reader_free(r);
        return lb_err_set(err, rc, "bad Avro header: %s", lb_strerror(rc));
    }
    memcpy(r->sync, c.p + c.pos, SYNC_BYTES);
    r->pos = c.pos + SYNC_BYTES;
    size_t slen, clen;
    const char *sj = lake_avro_reader_meta(r, "avro.schema", &slen);
    const char *codec = lake_avro_reader_meta(r, "avro.codec", &clen);
    if (!sj) {
        lake_avro_reader_free(r);
        return lb_err_set(err, LB_EPARSE, "Avro header has no avro.schema");
    }
    if (codec && strcmp(codec, "deflate") == 0) {
        r->deflate = true;
    } else if (codec && strcmp(codec, "null") != 0) {
        lb_err_set(err, LB_EUNSUPPORTED, "Avro codec \"%.40s\" is not supported", codec);
        lake_avro_reader_free(r);
        return LB_EUNSUPPORTED;
    }
    if ((rc = lake_avro_schema_parse(sj, slen, &r->schema, err))) {
        lake_avro_reader_free(r);
        if (rc != -ENOMEM && err)
            err->code = LB_EPARSE; /* the message says what the schema lacks */
        return rc == -ENOMEM ? rc : LB_EPARSE;
    }
    *out = r;
    return 0;
}

static int
inflate_block(lake_avro_reader *r, const uint8_t *src, size_t n)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -15) != Z_OK)
        return -ENOMEM;
    lb_buf_reset(&r->inflated);
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    int zr = Z_OK;
    while (zr != Z_STREAM_END) {
        if (r->inflated.len >= DATUM_BUDGET) {
            inflateEnd(&z);
            return rd_error(r, LB_ETOOBIG, "a block inflates to more than %u bytes", DATUM_BUDGET);
        }
        if (lb_buf_reserve(&r->inflated, 64 * 1024)) {
            inflateEnd(&z);
            return -ENOMEM;
        }
        z.next_out = (Bytef *)r->inflated.data + r->inflated.len;
        z.avail_out = (uInt)(r->inflated.cap - r->inflated.len);
        uInt before = z.avail_out;
        zr = inflate(&z, Z_NO_FLUSH);
        r->inflated.len += before - z.avail_out;
        if (zr == Z_BUF_ERROR && z.avail_in == 0) {
            inflateEnd(&z);
            return rd_error(r, LB_ETRUNCATED, "deflate block ends early");
        }
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
            inflateEnd(&z);
            return rd_error(r, LB_EPARSE, "bad deflate block");
        }
    }
    inflateEnd(&z);
    return 0;
}

int
lake_avro_reader_next(lake_avro_reader *r, const lake_avro_value **datum)
{
    arena_reset(r);
    while (r->blk_left == 0) {
        if (r->blk && r->blk_pos != r->blk_len)
            return rd_error(r, LB_EPARSE, "block has %zu bytes after its last datum",
                            r->blk_len - r->blk_pos);
        r->blk = NULL;
        if (r->pos == r->len)
            return 0;
        cursor c = {r->file, r->len, r->pos};
        int64_t count;
        const uint8_t *body;
        size_t blen;
        int rc = get_long(&c, &count);
        if (!rc)
            rc = count < 0 ? LB_EPARSE : 0;
        if (!rc)
            rc = get_span(&c, &body, &blen);
        if (rc == 0 && c.n - c.pos < SYNC_BYTES)
            rc = LB_ETRUNCATED;
        if (rc)
            return rd_error(r, rc, "bad block header at byte %zu", r->pos);
        if (memcmp(c.p + c.pos, r->sync, SYNC_BYTES) != 0)
            return rd_error(r, LB_EPARSE, "block at byte %zu does not end with the sync marker",
                            r->pos);
        r->pos = c.pos + SYNC_BYTES;
        if (r->deflate) {
            if ((rc = inflate_block(r, body, blen)))
                return rc;
            body = (const uint8_t *)r->inflated.data;
            blen = r->inflated.len;
        }
        r->blk = body;
        r->blk_len = blen;
        r->blk_pos = 0;
        r->blk_left = count;
    }
    cursor c = {r->blk, r->blk_len, r->blk_pos};
    lake_avro_value *v = arena_alloc(r, sizeof(*v));
    if (!v)
        return -ENOMEM;
    int rc = decode(r, &c, r->schema->root, v, 0);
    if (rc) {
        if (!r->error[0] || rc == LB_ETRUNCATED)
            rd_error(r, rc, "bad datum in the block ending before byte %zu: %s", r->pos,
                     lb_strerror(rc));
        return rc;
    }
    r->blk_pos = c.pos;
    r->blk_left--;
    *datum = v;
    return 1;
}

const void *
lake_avro_reader_meta(const lake_avro_reader *r, const char *key, size_t *len)
{
    for (size_t i = 0; i < r->nmeta; i++)
        if (strcmp(r->meta[i].key, key) == 0) {
            if (len)
                *len = r->meta[i].len;
            return r->meta[i].value;
        }
    return NULL;
}

const lake_avro_schema *
lake_avro_reader_schema(const lake_avro_reader *r)
{
    return r->schema;
}

const char *
lake_avro_reader_error(const lake_avro_reader *r)
{
    return r->error;
}
