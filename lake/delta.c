/*
 * delta.c: the Delta Lake transaction log (PROTOCOL.md of delta-io/delta).
 *
 * State. A table handle holds the last version and the set of live files
 * (sorted paths, for binary search). Opening replays every log entry from
 * version 0: adds insert, removes delete, by path (decoded from the URI
 * form the log stores). The versions must be contiguous from 0; a log that
 * starts later (its history folded into a checkpoint) is refused, since we
 * do not read checkpoints.
 *
 * Commit. All input is validated first (statistics against the schema,
 * removes against the live set, no duplicates), then one entry is built
 * in memory and created with lake_store_put_new(). Only after the store
 * accepted it does the live set change, so a failed or conflicting commit
 * leaves the handle as it was. Action order in an entry: commitInfo,
 * protocol and metaData (version 0 only), removes, adds; readers must not
 * depend on it.
 *
 * Stats. add.stats is JSON text built by hand rather than by jansson so
 * that decimals go out as exact JSON numbers (a double cannot hold 38
 * digits). Timestamps are floored to milliseconds, which the protocol
 * prescribes for both bounds and readers widen by.
 *
 * Callers: the transcoder, once per lake snapshot; tests.
 */
#include "delta.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "encoding.h"
#include "errors.h"

#define LOG_DIR "_delta_log/"

struct lake_delta_table {
    lake__table_core core; /* store, prefix, schema, leaves, live set */
    char *schema_string;   /* of the caller's schema (column mapping by id) */
    bool ntz;              /* it has a timestamp_ntz column */
    bool mapping;          /* every field has an id: column mapping by id */
    int32_t max_id;
    json_t *meta;          /* the newest metaData action (of the log, or written) */
    json_t *protocol;      /* the newest protocol action */
    json_t *next_protocol; /* to write with the next commit, or NULL */
    bool pending;          /* the next commit writes a metaData action */
    bool retyped;          /* ... that changes a field's type */
    int64_t version;
    json_t *summary; /* commitInfo.lakebase of the newest version, or NULL */
    lb_err *err;     /* the current call's, never NULL during a call */
};

/* Set the current call's error. */
#define terr(t, ...) lb_err_set((t)->err, __VA_ARGS__)

/* ---- schema --------------------------------------------------------------- */

/* What one walk of the schema learns, for the dialect. */
typedef struct delta_walk {
    const lake_schema *schema;
    bool ntz;     /* a timestamp_ntz column */
    bool mapping; /* write column mapping metadata */
} delta_walk;

static json_t *
delta_primitive(const lake__node *n, void *arg)
{
    char buf[64];
    switch (n->type) {
    case LAKE_TYPE_BOOLEAN:
        return json_string("boolean");
    case LAKE_TYPE_INT8:
        return json_string("byte");
    case LAKE_TYPE_INT16:
        return json_string("short");
    case LAKE_TYPE_INT32:
        return json_string("integer");
    case LAKE_TYPE_INT64:
    case LAKE_TYPE_TIME:
        return json_string("long");
    case LAKE_TYPE_FLOAT:
        return json_string("float");
    case LAKE_TYPE_DOUBLE:
        return json_string("double");
    case LAKE_TYPE_DECIMAL:
        snprintf(buf, sizeof(buf), "decimal(%d,%d)", n->precision, n->scale);
        return json_string(buf);
    case LAKE_TYPE_DATE:
        return json_string("date");
    case LAKE_TYPE_TIMESTAMP:
        ((delta_walk *)arg)->ntz = true;
        return json_string("timestamp_ntz");
    case LAKE_TYPE_TIMESTAMPTZ:
        return json_string("timestamp");
    case LAKE_TYPE_STRING:
    case LAKE_TYPE_JSON:
        return json_string("string");
    case LAKE_TYPE_UUID:
    case LAKE_TYPE_BINARY:
    case LAKE_TYPE_FIXED:
        return json_string("binary");
    default:
        return NULL;
    }
}

static json_t *
delta_list(const lake__node *list, const lake__node *el, json_t *et, void *arg)
{
    (void)list, (void)arg;
    return json_pack("{s:s, s:o, s:b}", "type", "array", "elementType", et, "containsNull",
                     !el->required);
}

/* The ids of the elements of the lists a field holds (a list of lists
 * too), as delta.columnMapping.nested.ids wants them: "<physical
 * name>.element" -> id, ".element" once more per level. The protocol asks
 * for them with icebergCompatV2; readers by id find list elements by them. */
static json_t *
nested_ids(const lake_schema *s, const lake__node *f)
{
    json_t *ids = json_object();
    lb_buf key = LB_BUF_INIT;
    lb_buf_append_str(&key, lake__node_physical(f));
    for (const lake__node *n = f; ids && n->type == LAKE_TYPE_LIST;) {
        n = lake__schema_node(s, n->children[0]);
        lb_buf_append(&key, ".element", 9);
        if (!key.data || json_object_set_new(ids, key.data, json_integer(n->field_id))) {
            json_decref(ids);
            ids = NULL;
        }
        key.len--;
    }
    lb_buf_free(&key);
    return ids;
}

static json_t *
delta_field(const lake__node *f, json_t *type, void *arg)
{
    const delta_walk *w = arg;
    if (w->mapping) {
        json_t *j =
            json_pack("{s:s, s:o, s:b, s:{s:i, s:s}}", "name", f->name, "type", type, "nullable",
                      !f->required, "metadata", "delta.columnMapping.id", (int)f->field_id,
                      "delta.columnMapping.physicalName", lake__node_physical(f));
        if (j && f->type == LAKE_TYPE_LIST) {
            json_t *ids = nested_ids(w->schema, f);
            if (!ids) {
                json_decref(j);
                return NULL;
            }
            json_object_set_new(json_object_get(j, "metadata"), "delta.columnMapping.nested.ids",
                                ids);
        }
        return j;
    }
    return json_pack("{s:s, s:o, s:b, s:{}}", "name", f->name, "type", type, "nullable",
                     !f->required, "metadata");
}

static const lake__schema_dialect delta_dialect = {
    .ids_required = false,
    .primitive = delta_primitive,
    .list = delta_list,
    .field = delta_field,
};

/* Whether every field of the schema (list elements aside, which Delta
 * does not name) has a field id: then the table maps columns by id. */
static bool
all_ids(const lake_schema *s)
{
    for (int i = 1; i < lake__schema_nnodes(s); i++) {
        const lake__node *n = lake__schema_node(s, i);
        if (n->field_id <= 0 && lake__schema_node(s, n->parent)->type != LAKE_TYPE_LIST)
            return false;
    }
    return true;
}

/* *ntz: whether a column is a timestamp without time zone. With mapping,
 * each field's metadata has its id and physical name. */
static char *
schema_string(const lake_schema *schema, bool mapping, bool *ntz, int32_t *max_id, lb_err *err)
{
    delta_walk w = {.schema = schema, .mapping = mapping};
    json_t *j = lake__schema_json(schema, &delta_dialect, &w, max_id, err);
    *ntz = w.ntz;
    if (!j) {
        lb_err_prefix(err, "schema has no Delta form");
        return NULL;
    }
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

char *
lake_delta_schema_string(const lake_schema *schema, lb_err *err)
{
    bool ntz;
    int32_t max_id;
    return schema_string(schema, all_ids(schema), &ntz, &max_id, err);
}

/* ---- stats ------------------------------------------------------------------ */

static void
put_json_string(lb_buf *b, const uint8_t *p, size_t n)
{
    json_t *s = json_stringn((const char *)p, n);
    char *text = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    if (text)
        lb_buf_append_str(b, text);
    free(text);
    json_decref(s);
}

static void
put_int128(lb_buf *b, __int128 v, int scale)
{
    char digits[64];
    int n = 0;
    bool neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
    do {
        digits[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    while (n <= scale)
        digits[n++] = '0';
    if (neg)
        lb_buf_append(b, "-", 1);
    for (int i = n - 1; i >= 0; i--) {
        lb_buf_append(b, &digits[i], 1);
        if (i == scale && scale > 0)
            lb_buf_append(b, ".", 1);
    }
}

static int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* A JSON value for one bound, or false when Delta has no form for it. */
static bool
put_bound(lb_buf *b, const lake__node *n, const uint8_t *p, size_t len)
{
    uint64_t u = 0;
    for (size_t i = 0; i < len && i < 8; i++)
        u |= (uint64_t)p[i] << (8 * i);
    switch (n->type) {
    case LAKE_TYPE_INT8:
    case LAKE_TYPE_INT16:
    case LAKE_TYPE_INT32:
        lb_buf_printf(b, "%" PRId32, (int32_t)(uint32_t)u);
        return true;
    case LAKE_TYPE_INT64:
    case LAKE_TYPE_TIME:
        lb_buf_printf(b, "%" PRId64, (int64_t)u);
        return true;
    case LAKE_TYPE_FLOAT:
    case LAKE_TYPE_DOUBLE: {
        double d;
        if (n->type == LAKE_TYPE_FLOAT) {
            uint32_t bits = (uint32_t)u;
            float f;
            memcpy(&f, &bits, 4);
            d = f;
        } else {
            memcpy(&d, &u, 8);
        }
        if (!isfinite(d))
            return false;
        lb_buf_printf(b, n->type == LAKE_TYPE_FLOAT ? "%.9g" : "%.17g", d);
        return true;
    }
    case LAKE_TYPE_DECIMAL:
        put_int128(b, lake__decimal_bound(n, p, len), n->scale);
        return true;
    case LAKE_TYPE_DATE: {
        int64_t y;
        unsigned m, d;
        lake__civil_from_days((int32_t)(uint32_t)u, &y, &m, &d);
        if (y < 0 || y > 9999)
            return false;
        lb_buf_printf(b, "\"%04" PRId64 "-%02u-%02u\"", y, m, d);
        return true;
    }
    case LAKE_TYPE_TIMESTAMP:
    case LAKE_TYPE_TIMESTAMPTZ: {
        int64_t ms = floor_div((int64_t)u, 1000);
        int64_t days = floor_div(ms, 86400000);
        int64_t rem = ms - days * 86400000;
        int64_t y;
        unsigned m, d;
        lake__civil_from_days(days, &y, &m, &d);
        if (y < 0 || y > 9999)
            return false;
        lb_buf_printf(b, "\"%04" PRId64 "-%02u-%02uT%02d:%02d:%02d.%03d%s\"", y, m, d,
                      (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
                      (int)(rem % 1000), n->type == LAKE_TYPE_TIMESTAMPTZ ? "Z" : "");
        return true;
    }
    case LAKE_TYPE_STRING:
    case LAKE_TYPE_JSON:
        if (!lake__utf8_valid(p, len, NULL))
            return false;
        put_json_string(b, p, len);
        return true;
    default:
        return false; /* boolean, binary, uuid, fixed */
    }
}

typedef enum stat_kind { STAT_NULLS, STAT_MIN, STAT_MAX } stat_kind;

static size_t
count_leaves(const lake_schema *s, int id)
{
    const lake__node *n = lake__schema_node(s, id);
    if (!lake__type_is_group(n->type))
        return 1;
    size_t total = 0;
    for (int i = 0; i < n->nchildren; i++)
        total += count_leaves(s, n->children[i]);
    return total;
}

/* Emit the object for one struct node; leaf index advances in schema
 * order. Returns whether anything was written. */
static bool
put_stats_struct(lb_buf *b, const lake_schema *s, int id, const lake_parquet_file_stats *st,
                 size_t *leaf, stat_kind kind)
{
    const lake__node *n = lake__schema_node(s, id);
    bool any = false;
    size_t mark = b->len;
    lb_buf_append(b, "{", 1);
    for (int i = 0; i < n->nchildren; i++) {
        const lake__node *c = lake__schema_node(s, n->children[i]);
        size_t before = b->len;
        if (any)
            lb_buf_append(b, ",", 1);
        /* column mapping: statistics go by physical name */
        const char *name = lake__node_physical(c);
        put_json_string(b, (const uint8_t *)name, strlen(name));
        lb_buf_append(b, ":", 1);
        bool wrote = false;
        if (c->type == LAKE_TYPE_STRUCT) {
            wrote = put_stats_struct(b, s, n->children[i], st, leaf, kind);
        } else if (c->type == LAKE_TYPE_LIST) {
            *leaf += count_leaves(s, n->children[i]); /* no stats inside lists */
        } else {
            const lake_column_stats *cs = &st->columns[(*leaf)++];
            if (kind == STAT_NULLS) {
                lb_buf_printf(b, "%lld", (long long)cs->null_count);
                wrote = true;
            } else if (cs->has_bounds && cs->nan_count == 0) {
                wrote = kind == STAT_MIN ? put_bound(b, c, cs->min, cs->min_len)
                                         : put_bound(b, c, cs->max, cs->max_len);
            }
        }
        if (wrote)
            any = true;
        else
            b->len = before;
    }
    if (!any) {
        b->len = mark;
        return false;
    }
    lb_buf_append(b, "}", 1);
    return true;
}

static char *
stats_json(const lake_schema *s, const lake_parquet_file_stats *st)
{
    lb_buf b = LB_BUF_INIT;
    lb_buf_printf(&b, "{\"numRecords\":%lld", (long long)st->num_rows);
    static const char *const names[] = {"nullCount", "minValues", "maxValues"};
    for (int k = STAT_NULLS; k <= STAT_MAX; k++) {
        size_t mark = b.len, leaf = 0;
        lb_buf_printf(&b, ",\"%s\":", names[k]);
        if (!put_stats_struct(&b, s, LAKE_SCHEMA_ROOT, st, &leaf, (stat_kind)k))
            b.len = mark;
    }
    lb_buf_append(&b, "}", 2);
    return lb_buf_steal(&b, NULL);
}

/* ---- paths ---------------------------------------------------------------- */

/* RFC 2396 escaping for add.path / remove.path. */
static char *
uri_encode(const char *p)
{
    lb_buf b = LB_BUF_INIT;
    for (const unsigned char *c = (const unsigned char *)p; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("-_.~/", *c))
            lb_buf_append(&b, c, 1);
        else
            lb_buf_printf(&b, "%%%02X", *c);
    }
    lb_buf_append(&b, "", 1);
    return lb_buf_steal(&b, NULL);
}

/* add.path / remove.path of a file: relative to the table, or for a
 * shared file ('/' and a key, table.h) the absolute URI of the key in the
 * store (the Delta protocol: "a relative path ... or an absolute path"). */
static char *
path_uri(const lake_delta_table *t, const char *path)
{
    char *enc = uri_encode(path), *out = NULL;
    if (!enc || path[0] != '/')
        return enc;
    if (asprintf(&out, "%s%s", lake_store_url(t->core.store), enc) < 0)
        out = NULL;
    free(enc);
    return out;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char *
uri_decode(const char *p)
{
    size_t n = strlen(p);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
            *o++ = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
            i += 2;
        } else {
            *o++ = p[i];
        }
    }
    *o = 0;
    return out;
}

/* ---- open and replay ------------------------------------------------------------ */

static void
log_key(const lake_delta_table *t, int64_t version, char *out, size_t cap)
{
    snprintf(out, cap, "%s/" LOG_DIR "%020" PRId64 ".json", t->core.prefix, version);
}

static int
check_protocol(lake_delta_table *t, json_t *p, int64_t v)
{
    json_t *r = json_object_get(p, "minReaderVersion"), *w = json_object_get(p, "minWriterVersion");
    if (!json_is_integer(r) || !json_is_integer(w))
        return terr(t, LB_EPARSE, "version %lld: protocol without reader and writer versions",
                    (long long)v);
    if (json_integer_value(r) > 3 || json_integer_value(w) > 7)
        return terr(t, LB_EUNSUPPORTED, "the table needs reader %lld / writer %lld",
                    (long long)json_integer_value(r), (long long)json_integer_value(w));
    const char *lists[] = {"readerFeatures", "writerFeatures"};
    for (int k = 0; k < 2; k++) {
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(p, lists[k]), i, f)
        {
            if (!json_is_string(f) || (strcmp(json_string_value(f), "timestampNtz") != 0 &&
                                       strcmp(json_string_value(f), "columnMapping") != 0))
                return terr(t, LB_EUNSUPPORTED, "the table uses the %s \"%s\"", lists[k],
                            json_is_string(f) ? json_string_value(f) : "?");
        }
    }
    return 0;
}

static int
replay_entry(lake_delta_table *t, int64_t v, const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    int line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        if (n > 0) {
            json_error_t jerr;
            json_t *a = json_loadb(p, n, 0, &jerr);
            if (!a || !json_is_object(a)) {
                json_decref(a);
                return terr(t, LB_EPARSE, "version %lld line %d is not a JSON object", (long long)v,
                            line);
            }
            int rc = 0;
            json_t *x;
            if ((x = json_object_get(a, "commitInfo"))) {
                if (json_object_get(x, "lakebase")) {
                    json_decref(t->summary);
                    t->summary = json_incref(json_object_get(x, "lakebase"));
                }
            } else if ((x = json_object_get(a, "protocol"))) {
                rc = check_protocol(t, x, v);
                if (rc == 0) {
                    json_decref(t->protocol);
                    t->protocol = json_incref(x);
                }
            } else if ((x = json_object_get(a, "metaData"))) {
                const char *ss = json_string_value(json_object_get(x, "schemaString"));
                if (!ss)
                    rc = terr(t, LB_EPARSE, "version %lld: metaData without schemaString",
                              (long long)v);
                else if (json_array_size(json_object_get(x, "partitionColumns")) > 0)
                    rc = terr(t, LB_EUNSUPPORTED, "partitioned Delta tables are not supported");
                if (rc == 0) {
                    json_decref(t->meta);
                    t->meta = json_incref(x);
                }
            } else if ((x = json_object_get(a, "add")) || (x = json_object_get(a, "remove"))) {
                bool add = json_object_get(a, "add") != NULL;
                const char *path = json_string_value(json_object_get(x, "path"));
                char *raw = path ? uri_decode(path) : NULL;
                /* a shared file: the absolute URI of a key in this store (table.h) */
                const char *url = lake_store_url(t->core.store);
                size_t ulen = strlen(url);
                if (raw && strncmp(raw, url, ulen) == 0 && raw[ulen] == '/')
                    memmove(raw, raw + ulen, strlen(raw + ulen) + 1);
                if (!path)
                    rc = terr(t, LB_EPARSE, "version %lld: %s without a path", (long long)v,
                              add ? "add" : "remove");
                else if (!raw)
                    rc = -ENOMEM;
                else if (json_object_get(x, "deletionVector") &&
                         !json_is_null(json_object_get(x, "deletionVector")))
                    rc = terr(t, LB_EUNSUPPORTED, "deletion vectors are not supported");
                if (rc == 0) {
                    ssize_t i = lake__live_find(&t->core, raw);
                    if (add && i < 0)
                        rc = lake__live_add(&t->core, raw);
                    else if (!add && i >= 0)
                        lake__live_remove(&t->core, (size_t)i);
                }
                free(raw);
            }
            json_decref(a);
            if (rc)
                return rc;
        }
        p += n + 1;
    }
    return 0;
}

static int
load_log(lake_delta_table *t)
{
    char dir[2048];
    snprintf(dir, sizeof(dir), "%s/" LOG_DIR, t->core.prefix);
    lb_objstore_listing l;
    memset(&l, 0, sizeof(l));
    int rc = lake_store_list(t->core.store, dir, &l);
    if (rc)
        return terr(t, rc, "%s", lake_store_error(t->core.store));
    int64_t expect = 0;
    bool checkpoint = false;
    for (size_t i = 0; i < l.nobjects && rc == 0; i++) {
        const char *name = l.objects[i].key + strlen(dir);
        size_t nl = strlen(name);
        if (strstr(name, "checkpoint"))
            checkpoint = true;
        if (nl != 25 || strcmp(name + 20, ".json") != 0 || strspn(name, "0123456789") != 20)
            continue;
        int64_t v = strtoll(name, NULL, 10);
        if (v != expect) {
            rc = expect == 0 && checkpoint
                     ? terr(t, LB_EUNSUPPORTED,
                            "the log starts at a checkpoint; checkpoints "
                            "are not supported")
                     : terr(t, LB_EPARSE, "the log has no version %lld", (long long)expect);
            break;
        }
        lb_buf body = LB_BUF_INIT;
        rc = lake_store_get(t->core.store, l.objects[i].key, &body);
        if (rc)
            terr(t, rc, "%s", lake_store_error(t->core.store));
        else
            rc = replay_entry(t, v, body.data ? body.data : "", body.len);
        lb_buf_free(&body);
        expect = v + 1;
    }
    lb_objstore_list_free(&l);
    if (rc)
        return rc;
    if (expect == 0 && checkpoint)
        return terr(t, LB_EUNSUPPORTED,
                    "the log starts at a checkpoint; checkpoints are not "
                    "supported");
    t->version = expect - 1;
    return 0;
}

/* ---- writing entries ------------------------------------------------------------ */

static int
append_action(lb_buf *b, const char *name, json_t *body)
{
    json_t *a = json_pack("{s:o}", name, body);
    char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    if (!text)
        return -ENOMEM;
    int rc = lb_buf_append_str(b, text);
    if (rc == 0)
        rc = lb_buf_append(b, "\n", 1);
    free(text);
    return rc;
}

static bool
has_feature(const json_t *p, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(p, "writerFeatures"), i, f)
    {
        if (json_is_string(f) && strcmp(json_string_value(f), name) == 0)
            return true;
    }
    return false;
}

/* The protocol the table needs: timestamp_ntz columns take reader 3 /
 * writer 7 with the timestampNtz feature; column mapping takes reader 2 /
 * writer 5, or the columnMapping feature at 3 / 7. Never below old (a
 * table's protocol only goes up, and its features stay). */
static json_t *
protocol_for(bool ntz, bool mapping, const json_t *old)
{
    int r = ntz ? 3 : mapping ? 2 : 1, w = ntz ? 7 : mapping ? 5 : 2;
    int or = old ? (int)json_integer_value(json_object_get(old, "minReaderVersion")) : 1;
    int ow = old ? (int)json_integer_value(json_object_get(old, "minWriterVersion")) : 2;
    if (r < or)
        r = or ;
    if (w < ow)
        w = ow;
    if (r < 3 && w < 7)
        return json_pack("{s:i, s:i}", "minReaderVersion", r, "minWriterVersion", w);
    /* table features: ours, the old table's, and those its old versions implied */
    bool f_ntz = ntz || has_feature(old, "timestampNtz");
    bool f_map = mapping || has_feature(old, "columnMapping") || (or == 2 && ow < 7);
    json_t *rf = json_array(), *wf = json_array();
    if (f_map) {
        json_array_append_new(rf, json_string("columnMapping"));
        json_array_append_new(wf, json_string("columnMapping"));
    }
    if (f_ntz) {
        json_array_append_new(rf, json_string("timestampNtz"));
        json_array_append_new(wf, json_string("timestampNtz"));
    }
    return json_pack("{s:i, s:i, s:o, s:o}", "minReaderVersion", 3, "minWriterVersion", 7,
                     "readerFeatures", rf, "writerFeatures", wf);
}

/* The configuration with column mapping by id (mode, maxColumnId: never
 * lower than before). */
static void
set_mapping_config(json_t *config, int32_t max_id)
{
    const char *old = json_string_value(json_object_get(config, "delta.columnMapping.maxColumnId"));
    long long m = old ? strtoll(old, NULL, 10) : 0;
    if (max_id > m)
        m = max_id;
    char num[24];
    snprintf(num, sizeof(num), "%lld", m);
    json_object_set_new(config, "delta.columnMapping.mode", json_string("id"));
    json_object_set_new(config, "delta.columnMapping.maxColumnId", json_string(num));
}

static int
create_table(lake_delta_table *t, const lake_delta_options *opts)
{
    char id[37], txn[37];
    lake__uuid4(id);
    lake__uuid4(txn);
    int64_t now = lake__now_ms();
    json_t *config = json_object();
    if (opts && opts->configuration)
        for (const char *const *kv = opts->configuration; kv[0] && kv[1]; kv += 2)
            json_object_set_new(config, kv[0], json_string(kv[1]));
    if (t->mapping)
        set_mapping_config(config, t->max_id);
    json_t *meta =
        json_pack("{s:s, s:{s:s, s:{}}, s:s, s:[], s:o, s:I}", "id", id, "format", "provider",
                  "parquet", "options", "schemaString", t->schema_string, "partitionColumns",
                  "configuration", config, "createdTime", (json_int_t)now);
    if (meta && opts && opts->name)
        json_object_set_new(meta, "name", json_string(opts->name));
    if (meta && opts && opts->description)
        json_object_set_new(meta, "description", json_string(opts->description));
    json_t *info =
        json_pack("{s:I, s:s, s:{s:s, s:s}, s:s, s:b, s:s, s:s}", "timestamp", (json_int_t)now,
                  "operation", "CREATE TABLE", "operationParameters", "isManaged", "false",
                  "partitionBy", "[]", "isolationLevel", "Serializable", "isBlindAppend", 1,
                  "engineInfo", "lakebase", "txnId", txn);
    lb_buf b = LB_BUF_INIT;
    int rc = meta && info ? 0 : -ENOMEM;
    if (rc == 0)
        rc = append_action(&b, "commitInfo", info);
    else
        json_decref(info);
    json_t *proto = protocol_for(t->ntz, t->mapping, NULL);
    if (rc == 0 && !proto)
        rc = -ENOMEM;
    if (rc == 0)
        rc = append_action(&b, "protocol", json_incref(proto));
    if (rc == 0)
        rc = append_action(&b, "metaData", json_incref(meta));
    char key[2100];
    log_key(t, 0, key, sizeof(key));
    if (rc == 0) {
        rc = lake_store_put_new(t->core.store, key, b.data, b.len);
        if (rc == LB_ECONFLICT)
            terr(t, rc, "another writer created the table first (\"%s\" exists); open it again",
                 key);
        else if (rc)
            terr(t, rc, "%s", lake_store_error(t->core.store));
    }
    lb_buf_free(&b);
    if (rc == 0) {
        t->version = 0;
        t->meta = meta;
        t->protocol = proto;
    } else {
        json_decref(meta);
        json_decref(proto);
    }
    return rc;
}

void
lake_delta_close(lake_delta_table *t)
{
    if (!t)
        return;
    lake__core_free(&t->core);
    free(t->schema_string);
    json_decref(t->summary);
    json_decref(t->meta);
    json_decref(t->protocol);
    json_decref(t->next_protocol);
    free(t);
}

/* ---- column mapping and schema changes -------------------------------------- */

/* One field of a Delta schema JSON: its column mapping id, physical name
 * and, for a primitive, its type name. Borrowed from the JSON. */
typedef struct mapped {
    int32_t id;
    const char *physical, *type;
} mapped;

typedef struct mapping {
    mapped *v;
    size_t n, cap;
} mapping;

static int
mapping_walk(mapping *m, const json_t *type)
{
    if (!json_is_object(type))
        return 0;
    const char *kind = json_string_value(json_object_get(type, "type"));
    if (kind && strcmp(kind, "array") == 0)
        return mapping_walk(m, json_object_get(type, "elementType"));
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(type, "fields"), i, f)
    {
        json_t *md = json_object_get(f, "metadata"), *ft = json_object_get(f, "type");
        json_t *id = json_object_get(md, "delta.columnMapping.id");
        const char *phys =
            json_string_value(json_object_get(md, "delta.columnMapping.physicalName"));
        if (json_is_integer(id) && phys) {
            if (m->n == m->cap) {
                size_t cap = m->cap ? 2 * m->cap : 32;
                mapped *g = realloc(m->v, cap * sizeof(*g));
                if (!g)
                    return -ENOMEM;
                m->v = g;
                m->cap = cap;
            }
            m->v[m->n++] = (mapped){.id = (int32_t)json_integer_value(id),
                                    .physical = phys,
                                    .type = json_string_value(ft)};
        }
        int rc = mapping_walk(m, ft);
        if (rc)
            return rc;
    }
    return 0;
}

static const mapped *
mapping_find(const mapping *m, int32_t id)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].id == id)
            return &m->v[i];
    return NULL;
}

/* Whether name is the physical name given to a sibling of node `self`
 * (chosen[k] for the k-th child of parent, NULL where not chosen yet). */
static bool
taken(const lake__node *parent, char **chosen, int self, const char *name)
{
    for (int k = 0; k < parent->nchildren; k++)
        if (k != self && chosen[k] && strcmp(chosen[k], name) == 0)
            return true;
    return false;
}

/*
 * Give every field of the caller's schema its physical name: the one the
 * table's newest metaData maps its id to, else its own name, else (taken
 * by a sibling: a column renamed away and a new one given its old name)
 * "<name>_<id>", with more "_" until free. A field keeps its physical
 * name for life, so data files written before and after a rename use the
 * same column name, and the files stay friendly to readers by name when
 * nothing was renamed.
 */
static int
assign_physical(lake_delta_table *t, const mapping *old)
{
    lake_schema *s = t->core.schema;
    int rc = 0;
    for (int p = 0; rc == 0 && p < lake__schema_nnodes(s); p++) {
        const lake__node *pn = lake__schema_node(s, p);
        if (pn->type != LAKE_TYPE_STRUCT || pn->nchildren == 0)
            continue;
        char **chosen = calloc((size_t)pn->nchildren, sizeof(char *));
        if (!chosen)
            return -ENOMEM;
        for (int k = 0; rc == 0 && k < pn->nchildren; k++) {
            const mapped *m = mapping_find(old, lake__schema_node(s, pn->children[k])->field_id);
            if (m && !taken(pn, chosen, k, m->physical) && !(chosen[k] = strdup(m->physical)))
                rc = -ENOMEM;
        }
        for (int k = 0; rc == 0 && k < pn->nchildren; k++) {
            const lake__node *c = lake__schema_node(s, pn->children[k]);
            if (chosen[k])
                continue;
            lb_buf b = LB_BUF_INIT;
            lb_buf_append_str(&b, c->name);
            if (taken(pn, chosen, k, c->name))
                lb_buf_printf(&b, "_%d", (int)c->field_id);
            lb_buf_append(&b, "", 1);
            while (b.data && taken(pn, chosen, k, b.data)) {
                b.len--;
                lb_buf_append(&b, "_", 2);
            }
            if (!(chosen[k] = lb_buf_steal(&b, NULL)))
                rc = -ENOMEM;
        }
        for (int k = 0; rc == 0 && k < pn->nchildren; k++)
            if (strcmp(chosen[k], lake__schema_node(s, pn->children[k])->name) != 0)
                rc = lake__schema_set_physical(s, pn->children[k], chosen[k]);
        for (int k = 0; k < pn->nchildren; k++)
            free(chosen[k]);
        free(chosen);
    }
    return rc;
}

/*
 * After replaying the log: fix the physical names, then compare the
 * caller's schema (and the protocol it needs) with the table's. A
 * difference is a pending metaData action (and a protocol action when the
 * protocol goes up) for the next commit. A field whose type changes is
 * noted: that commit must replace every live file (without Delta's type
 * widening feature, files of the old type cannot stay).
 */
static int
prepare_schema(lake_delta_table *t)
{
    if (t->version >= 0 && !t->meta)
        return terr(t, LB_EPARSE, "the log has no metaData action");
    const char *ss = json_string_value(json_object_get(t->meta, "schemaString"));
    json_t *old = ss ? json_loads(ss, 0, NULL) : NULL;
    if (t->meta && !old)
        return terr(t, LB_EPARSE, "the table's schemaString is not JSON");
    mapping om = {0}, nm = {0};
    int rc = mapping_walk(&om, old);
    const char *mode = json_string_value(
        json_object_get(json_object_get(t->meta, "configuration"), "delta.columnMapping.mode"));
    if (rc == 0 && mode && strcmp(mode, "none") != 0 && (strcmp(mode, "id") != 0 || !t->mapping))
        rc = terr(t, t->mapping ? LB_EUNSUPPORTED : LB_ESCHEMA, "the table maps columns by %s; %s",
                  mode,
                  t->mapping ? "only mapping by id is supported"
                             : "the given schema has fields without an id");
    if (rc == 0 && t->mapping)
        rc = assign_physical(t, &om);
    if (rc == 0 && !(t->schema_string =
                         schema_string(t->core.schema, t->mapping, &t->ntz, &t->max_id, t->err)))
        rc = t->err->code ? t->err->code : -ENOMEM;
    json_t *ours = rc == 0 ? json_loads(t->schema_string, 0, NULL) : NULL;
    if (rc == 0 && (rc = ours ? mapping_walk(&nm, ours) : -ENOMEM) == 0 && t->meta) {
        for (size_t i = 0; i < nm.n; i++) {
            const mapped *o = mapping_find(&om, nm.v[i].id);
            if (o && (!o->type) != (!nm.v[i].type))
                t->retyped = true;
            else if (o && o->type && strcmp(o->type, nm.v[i].type) != 0)
                t->retyped = true;
        }
        json_t *proto = protocol_for(t->ntz, t->mapping, t->protocol);
        if (!proto)
            rc = -ENOMEM;
        else if (json_equal(proto, t->protocol))
            json_decref(proto);
        else
            t->next_protocol = proto;
        bool has_mode = mode && strcmp(mode, "id") == 0;
        t->pending =
            strcmp(ss, t->schema_string) != 0 || t->next_protocol || has_mode != t->mapping;
    }
    json_decref(ours);
    json_decref(old);
    free(om.v);
    free(nm.v);
    return rc;
}

int
lake_delta_open(lake_store *store, const char *prefix, lake_schema *schema,
                const lake_delta_options *opts, lake_delta_table **out, lb_err *err)
{
    lb_err local;
    if (!err)
        err = &local;
    err->code = 0, err->message[0] = 0;
    if (!out)
        return lb_err_set(err, -EINVAL, "delta table: out is required");
    lake_delta_table *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->err = err;
    t->version = -1;
    int rc = lake__core_init(&t->core, "delta", store, prefix, schema, err);
    t->mapping = rc == 0 && all_ids(schema);
    if (rc == 0)
        rc = load_log(t);
    if (rc == 0)
        rc = prepare_schema(t);
    if (rc == 0 && t->version < 0)
        rc = create_table(t, opts);
    if (rc) {
        if (rc != -ENOMEM && strncmp(err->message, "delta table", 11) != 0)
            lb_err_prefix(err, "delta table \"%.150s\"", prefix);
        lake_delta_close(t);
        return rc;
    }
    t->err = NULL;
    *out = t;
    return 0;
}

/* ---- commit ------------------------------------------------------------------- */

static int
delta_commit(lake_delta_table *t, const lake_commit *c, bool allow_no_stats, int64_t *version_out)
{
    const lake_data_file *adds = c->adds;
    const char *const *removes = c->removes;
    size_t nadds = c->nadds, nremoves = c->nremoves;
    char at[48];
    snprintf(at, sizeof(at), "version %lld", (long long)t->version);
    bool schema_only = nadds + nremoves == 0 && t->pending;
    int rc = schema_only ? lake__check_summary(c->summary, t->err)
                         : lake__check_commit(&t->core, c, at, allow_no_stats, t->err);
    if (rc)
        return rc;
    if (t->pending && t->retyped && nremoves != t->core.nlive)
        return terr(t, LB_EVALUE,
                    "the schema change alters a field's type: the commit must replace every "
                    "live file (%zu live, %zu removed)",
                    t->core.nlive, nremoves);
    json_t *meta = NULL;
    if (t->pending) {
        meta = json_deep_copy(t->meta);
        json_t *config = json_object_get(meta, "configuration");
        if (!config && meta)
            json_object_set_new(meta, "configuration", config = json_object());
        if (!meta || !config)
            return -ENOMEM;
        json_object_set_new(meta, "schemaString", json_string(t->schema_string));
        if (t->mapping)
            set_mapping_config(config, t->max_id);
    }

    int64_t now = lake__now_ms(), version = t->version + 1;
    long long rows = 0;
    for (size_t i = 0; i < nadds; i++)
        rows += adds[i].stats ? adds[i].stats->num_rows : 0;
    char txn[37];
    lake__uuid4(txn);
    const char *op = schema_only     ? "CHANGE COLUMN"
                     : nremoves == 0 ? "WRITE"
                     : nadds == 0    ? "DELETE"
                                     : "UPDATE";
    json_t *params = nremoves == 0 ? json_pack("{s:s, s:s}", "mode", "Append", "partitionBy", "[]")
                                   : json_pack("{s:s}", "predicate", "[]");
    json_t *info =
        json_pack("{s:I, s:s, s:o, s:I, s:s, s:b, s:{s:s, s:s, s:s}, s:s, s:s}", "timestamp",
                  (json_int_t)now, "operation", op, "operationParameters", params, "readVersion",
                  (json_int_t)t->version, "isolationLevel", "Serializable", "isBlindAppend",
                  nremoves == 0, "operationMetrics", "numAddedFiles", "", "numRemovedFiles", "",
                  "numOutputRows", "", "engineInfo", "lakebase", "txnId", txn);
    if (!info) {
        json_decref(meta);
        return -ENOMEM;
    }
    if (c->summary) {
        json_t *lb = json_object();
        for (size_t i = 0; lb && c->summary[i]; i += 2)
            json_object_set_new(lb, c->summary[i], json_string(c->summary[i + 1]));
        json_object_set_new(info, "lakebase", lb);
    }
    char num[32];
    json_t *metrics = json_object_get(info, "operationMetrics");
    snprintf(num, sizeof(num), "%zu", nadds);
    json_object_set_new(metrics, "numAddedFiles", json_string(num));
    snprintf(num, sizeof(num), "%zu", nremoves);
    json_object_set_new(metrics, "numRemovedFiles", json_string(num));
    snprintf(num, sizeof(num), "%lld", rows);
    json_object_set_new(metrics, "numOutputRows", json_string(num));

    lb_buf b = LB_BUF_INIT;
    json_incref(info);
    rc = append_action(&b, "commitInfo", info);
    if (rc == 0 && t->next_protocol)
        rc = append_action(&b, "protocol", json_incref(t->next_protocol));
    if (rc == 0 && meta)
        rc = append_action(&b, "metaData", json_incref(meta));
    for (size_t i = 0; i < nremoves && rc == 0; i++) {
        char *path = path_uri(t, removes[i]);
        json_t *r = path ? json_pack("{s:s, s:I, s:b, s:b, s:{}}", "path", path,
                                     "deletionTimestamp", (json_int_t)now, "dataChange", 1,
                                     "extendedFileMetadata", 0, "partitionValues")
                         : NULL;
        free(path);
        rc = r ? append_action(&b, "remove", r) : -ENOMEM;
    }
    for (size_t i = 0; i < nadds && rc == 0; i++) {
        char *path = path_uri(t, adds[i].path);
        /* a file without statistics (a table brought level, a shared file)
         * gets its row count only, when known */
        char *stats = adds[i].stats ? stats_json(t->core.schema, adds[i].stats) : NULL;
        if (!adds[i].stats && adds[i].records > 0 &&
            asprintf(&stats, "{\"numRecords\":%lld}", (long long)adds[i].records) < 0)
            stats = NULL;
        int64_t mtime = adds[i].modification_ms ? adds[i].modification_ms : now;
        int64_t size = adds[i].stats ? (int64_t)adds[i].stats->file_bytes : adds[i].file_bytes;
        json_t *a = path && (stats || !adds[i].stats || adds[i].records > 0)
                        ? json_pack("{s:s, s:{}, s:I, s:I, s:b}", "path", path, "partitionValues",
                                    "size", (json_int_t)size, "modificationTime", (json_int_t)mtime,
                                    "dataChange", 1)
                        : NULL;
        if (a && stats)
            json_object_set_new(a, "stats", json_string(stats));
        free(path);
        free(stats);
        rc = a ? append_action(&b, "add", a) : -ENOMEM;
    }
    char key[2100];
    log_key(t, version, key, sizeof(key));
    if (rc == 0) {
        rc = lake_store_put_new(t->core.store, key, b.data, b.len);
        if (rc == LB_ECONFLICT)
            terr(t, rc,
                 "version %lld of the table was committed by another writer; reopen the "
                 "table and retry",
                 (long long)version);
        else if (rc)
            terr(t, rc, "could not write version %lld: %s", (long long)version,
                 lake_store_error(t->core.store));
    }
    lb_buf_free(&b);
    if (rc) {
        json_decref(info);
        json_decref(meta);
        return rc;
    }

    /* The entry is durable: now the handle follows it. */
    if (meta) {
        json_decref(t->meta);
        t->meta = meta;
        if (t->next_protocol) {
            json_decref(t->protocol);
            t->protocol = t->next_protocol;
            t->next_protocol = NULL;
        }
        t->pending = t->retyped = false;
    }
    rc = lake__live_apply(&t->core, c);
    if (json_object_get(info, "lakebase")) {
        json_decref(t->summary);
        t->summary = json_incref(json_object_get(info, "lakebase"));
    }
    json_decref(info);
    t->version = version;
    if (version_out)
        *version_out = version;
    return rc;
}

int
lake_delta_commit(lake_delta_table *t, const lake_data_file *adds, size_t nadds,
                  const char *const *removes, size_t nremoves, int64_t *version_out, lb_err *err)
{
    lb_err local;
    t->err = err ? err : &local;
    t->err->code = 0, t->err->message[0] = 0;
    lake_commit c = {.adds = adds, .nadds = nadds, .removes = removes, .nremoves = nremoves};
    int rc = delta_commit(t, &c, false, version_out);
    t->err = NULL;
    return rc;
}

bool
lake_delta_schema_pending(const lake_delta_table *t)
{
    return t->pending;
}

bool
lake_delta_schema_retyped(const lake_delta_table *t)
{
    return t->pending && t->retyped;
}

int64_t
lake_delta_version(const lake_delta_table *t)
{
    return t->version;
}

size_t
lake_delta_live_count(const lake_delta_table *t)
{
    return t->core.nlive;
}

const char *
lake_delta_live_path(const lake_delta_table *t, size_t i)
{
    return i < t->core.nlive ? t->core.live[i] : NULL;
}

/* ---- the format ------------------------------------------------------------- */

static int
fmt_open(lake_store *store, const char *prefix, lake_schema *schema, const lake_table_options *opts,
         void **state, lb_err *err)
{
    lake_delta_options o = {0};
    if (opts)
        o = (lake_delta_options){.name = opts->name,
                                 .description = opts->description,
                                 .configuration = opts->properties};
    return lake_delta_open(store, prefix, schema, &o, (lake_delta_table **)state, err);
}

static int
fmt_commit(void *state, const lake_commit *c, lb_err *err)
{
    lake_delta_table *t = state;
    lb_err local;
    t->err = err ? err : &local;
    t->err->code = 0, t->err->message[0] = 0;
    int rc = delta_commit(t, c, true, NULL);
    t->err = NULL;
    return rc;
}

static size_t
fmt_live_count(const void *state)
{
    return lake_delta_live_count(state);
}

static const char *
fmt_live_path(const void *state, size_t i)
{
    return lake_delta_live_path(state, i);
}

static const char *
fmt_summary_value(const void *state, const char *key)
{
    const lake_delta_table *t = state;
    return json_string_value(json_object_get(t->summary, key));
}

static void
fmt_close(void *state)
{
    lake_delta_close(state);
}

static bool
fmt_schema_pending(const void *state)
{
    return lake_delta_schema_pending(state);
}

const lake_table_format lake_delta_format = {
    .name = "delta",
    .open = fmt_open,
    .commit = fmt_commit,
    .live_count = fmt_live_count,
    .live_path = fmt_live_path,
    .summary_value = fmt_summary_value,
    .schema_pending = fmt_schema_pending,
    .close = fmt_close,
};
