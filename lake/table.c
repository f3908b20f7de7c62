/*
 * table.c: pieces shared by the Iceberg and Delta writers.
 *
 * The check of a data file's statistics is the guard that keeps metadata
 * honest: both writers derive column metrics (Iceberg) and stats JSON
 * (Delta) from lake_parquet_file_stats by position, so a stats array from a
 * file of another schema would silently attach one column's bounds to
 * another. Every column must therefore carry the field id and type of the
 * schema leaf at its position, counts that make sense, and bounds of the
 * width its type's encoding has.
 *
 * The model (lake_table) keeps one table in every format: it opens each,
 * brings a format that a crash left one commit behind level with the
 * first, checks each commit once and hands it to every format in order.
 * The formats share their bookkeeping through lake__table_core: argument
 * checks at open, the sorted live set, the commit checks, and one walk of
 * the schema to JSON in each format's dialect.
 *
 * Schema changes: each format compares the caller's schema with its own
 * at open and records a difference with its next commit; the model lets
 * a commit without files through when one is pending, and refuses before
 * any format writes a type change that does not replace every file
 * (Delta could not read the old ones).
 *
 * Callers: iceberg.c, delta.c (the internal parts); the transcoder (the
 * model).
 */
#include "table.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "delta.h"
#include "errors.h"
#include "iceberg.h"
#include "objstore.h"

static int
encode_name(const char *name, char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    if (!name || !*name)
        return -EINVAL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
                     (*p == '.' && p != (const unsigned char *)name);
        if (n + 4 > cap)
            return -ENAMETOOLONG;
        if (plain)
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", *p);
    }
    out[n] = 0;
    *len = n;
    return 0;
}

int
lake_table_prefix(const char *database, const char *schema, const char *table, char **out)
{
    char parts[3][3 * 256 + 4];
    const char *names[3] = {database, schema, table};
    for (int i = 0; i < 3; i++) {
        size_t len;
        int rc = encode_name(names[i], parts[i], sizeof(parts[i]), &len);
        if (rc)
            return rc == -ENAMETOOLONG ? -EINVAL : rc;
    }
    if (asprintf(out, "lake/%s/%s/%s", parts[0], parts[1], parts[2]) < 0)
        return -ENOMEM;
    return 0;
}

/* ---- leaves ------------------------------------------------------------- */

static int
collect(const lake_schema *s, int id, bool in_list, lake__leaves *l, size_t *cap)
{
    const lake__node *n = lake__schema_node(s, id);
    if (!lake__type_is_group(n->type)) {
        if (l->n == *cap) {
            size_t c = *cap ? 2 * *cap : 16;
            int *node = realloc(l->node, c * sizeof(int));
            if (!node)
                return -ENOMEM;
            l->node = node;
            bool *il = realloc(l->in_list, c * sizeof(bool));
            if (!il)
                return -ENOMEM;
            l->in_list = il;
            *cap = c;
        }
        l->node[l->n] = id;
        l->in_list[l->n++] = in_list;
        return 0;
    }
    for (int i = 0; i < n->nchildren; i++) {
        int rc = collect(s, n->children[i], in_list || n->type == LAKE_TYPE_LIST, l, cap);
        if (rc)
            return rc;
    }
    return 0;
}

int
lake__leaves_of(const lake_schema *s, lake__leaves *out)
{
    memset(out, 0, sizeof(*out));
    size_t cap = 0;
    int rc = collect(s, LAKE_SCHEMA_ROOT, false, out, &cap);
    if (rc)
        lake__leaves_free(out);
    return rc;
}

void
lake__leaves_free(lake__leaves *l)
{
    free(l->node);
    free(l->in_list);
    memset(l, 0, sizeof(*l));
}

/* ---- checks ------------------------------------------------------------- */

size_t
lake__bound_width(const lake__node *n)
{
    switch (n->type) {
    case LAKE_TYPE_BOOLEAN:
        return 1;
    case LAKE_TYPE_INT8:
    case LAKE_TYPE_INT16:
    case LAKE_TYPE_INT32:
    case LAKE_TYPE_DATE:
    case LAKE_TYPE_FLOAT:
        return 4;
    case LAKE_TYPE_INT64:
    case LAKE_TYPE_TIME:
    case LAKE_TYPE_TIMESTAMP:
    case LAKE_TYPE_TIMESTAMPTZ:
    case LAKE_TYPE_DOUBLE:
        return 8;
    case LAKE_TYPE_DECIMAL: {
        if (n->precision <= 9)
            return 4;
        if (n->precision <= 18)
            return 8;
        /* smallest two's complement width for `precision` digits, as the
         * Parquet writer sizes its FIXED_LEN_BYTE_ARRAY */
        unsigned __int128 limit = 1;
        for (int i = 0; i < n->precision; i++)
            limit *= 10;
        size_t w = 1;
        while (w < 16 && ((unsigned __int128)1 << (8 * w - 1)) < limit)
            w++;
        return w;
    }
    case LAKE_TYPE_UUID:
        return 16;
    case LAKE_TYPE_FIXED:
        return (size_t)n->length;
    default:
        return 0;
    }
}

__int128
lake__decimal_bound(const lake__node *n, const uint8_t *p, size_t len)
{
    if (n->precision <= 18) {
        /* little-endian INT32 / INT64 */
        uint64_t u = 0;
        for (size_t i = 0; i < len; i++)
            u |= (uint64_t)p[i] << (8 * i);
        if (len == 4)
            return (int32_t)(uint32_t)u;
        return (int64_t)u;
    }
    /* big-endian two's complement */
    unsigned __int128 u = (len && (p[0] & 0x80)) ? ~(unsigned __int128)0 : 0;
    for (size_t i = 0; i < len; i++)
        u = (u << 8) | p[i];
    return (__int128)u;
}

static bool
valid_rel_path(const char *p)
{
    if (!p || !*p || *p == '/')
        return false;
    const char *c = p;
    while (*c) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        c += len;
        if (*c == '/')
            c++;
    }
    const char *why;
    return lb_objstore_check_key(p, &why) == 0;
}

int
lake__check_data_file(const lake_schema *s, const lake__leaves *leaves, const lake_data_file *f,
                      bool allow_no_stats, lb_err *err)
{
#define BAD(...) lb_err_set(err, LB_EVALUE, __VA_ARGS__)
    const char *path = f && f->path ? f->path : "";
    bool shared = path[0] == '/';
    if (!f || !valid_rel_path(shared ? path + 1 : path))
        return BAD("data file path \"%s\" is neither a relative key under the table nor '/' "
                   "and a key",
                   path);
    const lake_parquet_file_stats *st = f->stats;
    if (!st && (allow_no_stats || shared) && f->file_bytes >= 12 && f->records >= 0)
        return 0;
    if (!st)
        return BAD("data file \"%s\" has no statistics", path);
    if (st->num_rows < 0 || st->file_bytes < 12 || st->num_row_groups < 0)
        return BAD("data file \"%s\": %lld rows in %llu bytes is not a Parquet file", path,
                   (long long)st->num_rows, (unsigned long long)st->file_bytes);
    if (st->ncolumns != leaves->n)
        return BAD("data file \"%s\" has %zu columns, the table schema %zu", path, st->ncolumns,
                   leaves->n);
    for (size_t i = 0; i < st->ncolumns; i++) {
        const lake_column_stats *c = &st->columns[i];
        const lake__node *n = lake__schema_node(s, leaves->node[i]);
        const char *cname = c->path ? c->path : "?";
        if (c->field_id != n->field_id)
            return BAD("data file \"%s\": column %zu (\"%s\") has field id %d, the table "
                       "schema has %d there",
                       path, i, cname, c->field_id, n->field_id);
        if (c->type != n->type)
            return BAD("data file \"%s\": column %zu (\"%s\") is %s, the table schema has %s", path,
                       i, cname, lake_type_name(c->type), lake_type_name(n->type));
        if (c->num_values < 0 || c->null_count < 0 || c->nan_count < 0 ||
            c->null_count > c->num_values || c->nan_count > c->num_values - c->null_count ||
            c->compressed_bytes < 0)
            return BAD("data file \"%s\": column \"%s\" has inconsistent counts (%lld values, "
                       "%lld nulls, %lld NaN)",
                       path, cname, (long long)c->num_values, (long long)c->null_count,
                       (long long)c->nan_count);
        if (!leaves->in_list[i] && c->num_values != st->num_rows)
            return BAD("data file \"%s\": column \"%s\" has %lld values in %lld rows", path, cname,
                       (long long)c->num_values, (long long)st->num_rows);
        if (!c->has_bounds)
            continue;
        size_t w = lake__bound_width(n);
        if (!c->min || !c->max || (w && (c->min_len != w || c->max_len != w)))
            return BAD("data file \"%s\": column \"%s\" has bounds of %zu and %zu bytes, its "
                       "type %s takes %zu",
                       path, cname, c->min_len, c->max_len, lake_type_name(n->type), w);
    }
    return 0;
#undef BAD
}

static void
random_fill(void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom((char *)p + got, n - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got < n) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
        for (; got < n; got++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            ((uint8_t *)p)[got] = (uint8_t)x;
        }
    }
}

void
lake__uuid4(char out[37])
{
    uint8_t b[16];
    random_fill(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

int64_t
lake__random_id(void)
{
    uint64_t v = 0;
    while (v == 0) {
        random_fill(&v, sizeof(v));
        v &= INT64_MAX;
    }
    return (int64_t)v;
}

int64_t
lake__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Howard Hinnant's days-to-civil algorithm (proleptic Gregorian). */
void
lake__civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    uint64_t doe = (uint64_t)(z - era * 146097);
    uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    uint64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yy + (*m <= 2);
}

/* ---- core shared by the formats ----------------------------------------- */

int
lake__core_init(lake__table_core *core, const char *format, lake_store *store, const char *prefix,
                lake_schema *schema, lb_err *err)
{
    memset(core, 0, sizeof(*core));
    core->format = format;
    if (!store || !prefix || !*prefix || !schema)
        return lb_err_set(err, -EINVAL, "%s table: store, prefix and schema are required", format);
    int rc = lake_schema_validate(schema);
    if (rc)
        return lb_err_set(err, rc, "%s table \"%s\": invalid schema: %s", format, prefix,
                          lake_schema_error(schema));
    core->store = store;
    core->schema = schema;
    if (!(core->prefix = strdup(prefix)))
        return -ENOMEM;
    size_t n = strlen(core->prefix);
    while (n > 0 && core->prefix[n - 1] == '/')
        core->prefix[--n] = 0;
    if ((rc = lake__leaves_of(schema, &core->leaves))) {
        lake__core_free(core);
        return rc;
    }
    return 0;
}

void
lake__core_free(lake__table_core *core)
{
    for (size_t i = 0; i < core->nlive; i++)
        free(core->live[i]);
    free(core->live);
    free(core->prefix);
    lake__leaves_free(&core->leaves);
    memset(core, 0, sizeof(*core));
}

static int
cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

ssize_t
lake__live_find(const lake__table_core *core, const char *path)
{
    if (core->nlive == 0)
        return -1;
    char *const *hit = bsearch(&path, core->live, core->nlive, sizeof(char *), cmp_path);
    return hit ? hit - core->live : -1;
}

static int
live_reserve(lake__table_core *core)
{
    if (core->nlive < core->caplive)
        return 0;
    size_t cap = core->caplive ? 2 * core->caplive : 16;
    char **l = realloc(core->live, cap * sizeof(char *));
    if (!l)
        return -ENOMEM;
    core->live = l;
    core->caplive = cap;
    return 0;
}

int
lake__live_append(lake__table_core *core, const char *path)
{
    char *p = strdup(path);
    if (!p || live_reserve(core)) {
        free(p);
        return -ENOMEM;
    }
    core->live[core->nlive++] = p;
    return 0;
}

int
lake__live_sort(lake__table_core *core, lb_err *err)
{
    if (core->nlive > 1)
        qsort(core->live, core->nlive, sizeof(char *), cmp_path);
    for (size_t i = 1; i < core->nlive; i++)
        if (strcmp(core->live[i - 1], core->live[i]) == 0)
            return lb_err_set(err, LB_EPARSE, "data file \"%s\" is live twice", core->live[i]);
    return 0;
}

int
lake__live_add(lake__table_core *core, const char *path)
{
    size_t lo = 0, hi = core->nlive;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(core->live[mid], path) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    char *p = strdup(path);
    if (!p || live_reserve(core)) {
        free(p);
        return -ENOMEM;
    }
    memmove(core->live + lo + 1, core->live + lo, (core->nlive - lo) * sizeof(char *));
    core->live[lo] = p;
    core->nlive++;
    return 0;
}

void
lake__live_remove(lake__table_core *core, size_t i)
{
    assert(i < core->nlive);
    free(core->live[i]);
    memmove(core->live + i, core->live + i + 1, (core->nlive - i - 1) * sizeof(char *));
    core->nlive--;
}

int
lake__live_apply(lake__table_core *core, const lake_commit *c)
{
    for (size_t i = 0; i < c->nremoves; i++) {
        ssize_t k = lake__live_find(core, c->removes[i]);
        if (k >= 0)
            lake__live_remove(core, (size_t)k);
    }
    for (size_t i = 0; i < c->nadds; i++) {
        int rc = lake__live_add(core, c->adds[i].path);
        if (rc)
            return rc;
    }
    return 0;
}

int
lake__check_summary(const char *const *summary, lb_err *err)
{
    for (size_t i = 0; summary && summary[i]; i += 2) {
        const char *k = summary[i];
        if (!summary[i + 1])
            return lb_err_set(err, LB_EVALUE, "summary key \"%s\" has no value", k);
        if (!*k || strncmp(k, "added-", 6) == 0 || strncmp(k, "deleted-", 8) == 0 ||
            strncmp(k, "total-", 6) == 0 || strcmp(k, "operation") == 0)
            return lb_err_set(err, LB_EVALUE, "summary key \"%s\" is reserved", k);
        for (const char *p = k; *p; p++)
            if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e || *p == '"' || *p == '\\')
                return lb_err_set(err, LB_EVALUE, "summary key \"%s\" is not plain ASCII", k);
    }
    return 0;
}

int
lake__check_commit(const lake__table_core *core, const lake_commit *c, const char *at,
                   bool allow_no_stats, lb_err *err)
{
    if (c->nadds + c->nremoves == 0)
        return lb_err_set(err, -EINVAL, "nothing to commit");
    if ((c->nadds && !c->adds) || (c->nremoves && !c->removes))
        return lb_err_set(err, -EINVAL, "adds or removes missing");
    int rc = lake__check_summary(c->summary, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < c->nadds; i++) {
        const lake_data_file *a = &c->adds[i];
        if ((rc = lake__check_data_file(core->schema, &core->leaves, a, allow_no_stats, err)))
            return rc;
        if (lake__live_find(core, a->path) >= 0)
            return lb_err_set(err, LB_EVALUE, "data file \"%s\" is already in the table", a->path);
        for (size_t k = 0; k < i; k++)
            if (strcmp(c->adds[k].path, a->path) == 0)
                return lb_err_set(err, LB_EVALUE, "data file \"%s\" is added twice", a->path);
    }
    for (size_t i = 0; i < c->nremoves; i++) {
        const char *r = c->removes[i];
        if (!r)
            return lb_err_set(err, -EINVAL, "remove %zu has no path", i);
        if (lake__live_find(core, r) < 0)
            return lb_err_set(err, LB_ENOTFOUND,
                              "cannot remove \"%s\": it is not a live file of the table at %s", r,
                              at);
        for (size_t k = 0; k < i; k++)
            if (strcmp(c->removes[k], r) == 0)
                return lb_err_set(err, LB_EVALUE, "data file \"%s\" is removed twice", r);
        for (size_t k = 0; k < c->nadds; k++)
            if (strcmp(c->adds[k].path, r) == 0)
                return lb_err_set(err, LB_EVALUE, "data file \"%s\" is both removed and added", r);
    }
    return 0;
}

/* ---- schema to JSON ------------------------------------------------------ */

static json_t *
walk_type(const lake_schema *s, int id, const lake__schema_dialect *d, void *arg, int32_t *max_id,
          lb_err *err)
{
    const lake__node *n = lake__schema_node(s, id);
    if (n->type == LAKE_TYPE_LIST) {
        const lake__node *el = lake__schema_node(s, n->children[0]);
        if (d->ids_required && el->field_id <= 0) {
            lb_err_set(err, LB_ESCHEMA, "the element of list \"%s\" has no field id", n->name);
            return NULL;
        }
        if (el->field_id > *max_id)
            *max_id = el->field_id;
        json_t *et = walk_type(s, n->children[0], d, arg, max_id, err);
        return et ? d->list(n, el, et, arg) : NULL;
    }
    if (n->type == LAKE_TYPE_STRUCT) {
        json_t *fields = json_array();
        for (int i = 0; fields && i < n->nchildren; i++) {
            const lake__node *c = lake__schema_node(s, n->children[i]);
            if (d->ids_required && c->field_id <= 0) {
                lb_err_set(err, LB_ESCHEMA, "field \"%s\" has no field id", c->name);
                json_decref(fields);
                return NULL;
            }
            if (c->field_id > *max_id)
                *max_id = c->field_id;
            json_t *ct = walk_type(s, n->children[i], d, arg, max_id, err);
            json_t *f = ct ? d->field(c, ct, arg) : NULL;
            if (!f || json_array_append_new(fields, f)) {
                json_decref(fields);
                return NULL;
            }
        }
        if (!fields)
            return NULL;
        return json_pack("{s:s, s:o}", "type", "struct", "fields", fields);
    }
    json_t *t = d->primitive(n, arg);
    if (!t)
        lb_err_set(err, LB_ESCHEMA, "column \"%s\" of type %s has no form", n->name,
                   lake_type_name(n->type));
    return t;
}

json_t *
lake__schema_json(const lake_schema *s, const lake__schema_dialect *d, void *arg, int32_t *max_id,
                  lb_err *err)
{
    int32_t m = 0;
    lb_err_set(err, -ENOMEM, "out of memory");
    json_t *j = walk_type(s, LAKE_SCHEMA_ROOT, d, arg, &m, err);
    if (j && err)
        err->code = 0, err->message[0] = 0;
    if (max_id)
        *max_id = m;
    return j;
}

/* ---- the model ----------------------------------------------------------- */

/* Iceberg first: the model's schema questions go to it (state[0]). */
static const lake_table_format *const formats[] = {&lake_iceberg_format, &lake_delta_format};
#define NFORMATS (sizeof(formats) / sizeof(formats[0]))

struct lake_table {
    lake_store *store;
    char *prefix;
    void *state[NFORMATS];
    lake__table_core core; /* the live set of the first format, for checks */
};

static int
core_sync(lake_table *t)
{
    const lake_table_format *f = formats[0];
    for (size_t i = 0; i < t->core.nlive; i++)
        free(t->core.live[i]);
    t->core.nlive = 0;
    size_t n = f->live_count(t->state[0]);
    for (size_t i = 0; i < n; i++) {
        int rc = lake__live_append(&t->core, f->live_path(t->state[0], i));
        if (rc)
            return rc;
    }
    return lake__live_sort(&t->core, NULL);
}

/* Bring format k level with the first: remove what it has beyond, add what
 * it lacks (size from the store, no statistics). */
static int
level(lake_table *t, size_t k, lb_err *err)
{
    const lake_table_format *f = formats[k];
    void *st = t->state[k];
    size_t n = f->live_count(st);
    const char **removes = calloc(n + 1, sizeof(char *));
    lake_data_file *adds = calloc(t->core.nlive + 1, sizeof(*adds));
    char **keys = calloc(t->core.nlive + 1, sizeof(char *));
    size_t nr = 0, na = 0;
    int rc = removes && adds && keys ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (lake__live_find(&t->core, f->live_path(st, i)) < 0)
            removes[nr++] = f->live_path(st, i);
    for (size_t i = 0; rc == 0 && i < t->core.nlive; i++) {
        const char *p = t->core.live[i];
        bool have = false;
        for (size_t j = 0; j < n && !have; j++)
            have = strcmp(f->live_path(st, j), p) == 0;
        if (have)
            continue;
        if ((p[0] == '/' ? asprintf(&keys[na], "%s", p + 1)
                         : asprintf(&keys[na], "%s/%s", t->core.prefix, p)) < 0) {
            keys[na] = NULL;
            rc = -ENOMEM;
            break;
        }
        lb_objstore_listing l;
        memset(&l, 0, sizeof(l));
        rc = lake_store_list(t->store, keys[na], &l);
        int64_t size = -1;
        for (size_t j = 0; rc == 0 && j < l.nobjects; j++)
            if (strcmp(l.objects[j].key, keys[na]) == 0)
                size = (int64_t)l.objects[j].size;
        lb_objstore_list_free(&l);
        if (rc == 0 && size < 0)
            rc = lb_err_set(err, LB_ENOTFOUND, "data file \"%s\" of the %s table is missing", p,
                            formats[0]->name);
        if (rc == 0)
            adds[na] = (lake_data_file){.path = p, .file_bytes = size};
        na++;
    }
    if (rc == 0 && na + nr > 0) {
        const char *summary[] = {"lakebase.levelled-with", formats[0]->name, NULL};
        lake_commit c = {
            .adds = adds, .nadds = na, .removes = removes, .nremoves = nr, .summary = summary};
        rc = f->commit(st, &c, err);
    }
    for (size_t i = 0; keys && i < na; i++)
        free(keys[i]);
    free(keys);
    free(adds);
    free(removes);
    return rc;
}

void
lake_table_close(lake_table *t)
{
    if (!t)
        return;
    for (size_t k = 0; k < NFORMATS; k++)
        if (t->state[k])
            formats[k]->close(t->state[k]);
    lake__core_free(&t->core);
    free(t);
}

int
lake_table_open(lake_store *store, const char *prefix, lake_schema *schema,
                const lake_table_options *opts, lake_table **out, lb_err *err)
{
    lake_table *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->store = store;
    int rc = lake__core_init(&t->core, "lake", store, prefix, schema, err);
    for (size_t k = 0; rc == 0 && k < NFORMATS; k++)
        rc = formats[k]->open(store, prefix, schema, opts, &t->state[k], err);
    if (rc == 0)
        rc = core_sync(t);
    for (size_t k = 1; rc == 0 && k < NFORMATS; k++)
        if ((rc = level(t, k, err)))
            lb_err_prefix(err, "bringing the %s table \"%s\" level with %s", formats[k]->name,
                          prefix, formats[0]->name);
    if (rc) {
        lake_table_close(t);
        return rc;
    }
    *out = t;
    return 0;
}

bool
lake_table_schema_changed(const lake_table *t)
{
    for (size_t k = 0; k < NFORMATS; k++)
        if (formats[k]->schema_pending(t->state[k]))
            return true;
    return false;
}

bool
lake_table_schema_retyped(const lake_table *t)
{
    /* the formats' types differ in grain: int16 -> int32 is "int" to
     * Iceberg both times, "short" -> "integer" to Delta */
    return lake_iceberg_schema_retyped(t->state[0]) || lake_delta_schema_retyped(t->state[1]);
}

bool
lake_table_field_existed(const lake_table *t, int32_t field_id)
{
    return lake_iceberg_field_existed(t->state[0], field_id);
}

int
lake_table_commit(lake_table *t, const lake_commit *c, lb_err *err)
{
    bool schema_only = c->nadds + c->nremoves == 0 && lake_table_schema_changed(t);
    int rc = schema_only ? lake__check_summary(c->summary, err)
                         : lake__check_commit(&t->core, c, "its newest commit", false, err);
    /* Delta takes a type change only with every file replaced (no type
     * widening); checked here so that no format commits alone */
    if (rc == 0 && lake_table_schema_changed(t) && lake_table_schema_retyped(t) &&
        c->nremoves != t->core.nlive)
        rc = lb_err_set(err, LB_EVALUE,
                        "the schema change alters a field's type: the commit must replace every "
                        "live file (%zu live, %zu removed)",
                        t->core.nlive, c->nremoves);
    for (size_t k = 0; rc == 0 && k < NFORMATS; k++)
        if (!schema_only || formats[k]->schema_pending(t->state[k]))
            rc = formats[k]->commit(t->state[k], c, err);
    if (rc == 0)
        rc = lake__live_apply(&t->core, c);
    return rc;
}

size_t
lake_table_live_count(const lake_table *t)
{
    return t->core.nlive;
}

const char *
lake_table_live_path(const lake_table *t, size_t i)
{
    return i < t->core.nlive ? t->core.live[i] : NULL;
}

int
lake_table_live_size(const lake_table *t, size_t i, int64_t *records, int64_t *bytes)
{
    if (i >= t->core.nlive)
        return LB_ENOTFOUND;
    if (!formats[0]->live_size)
        return -ENOTSUP;
    return formats[0]->live_size(t->state[0], t->core.live[i], records, bytes);
}

const char *
lake_table_summary_value(const lake_table *t, const char *key)
{
    return formats[0]->summary_value(t->state[0], key);
}

void *
lake_table_format_state(const lake_table *t, const lake_table_format *f)
{
    for (size_t k = 0; k < NFORMATS; k++)
        if (formats[k] == f)
            return t->state[k];
    return NULL;
}
