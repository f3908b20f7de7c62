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
 * Callers: iceberg.c, delta.c.
 */
#include "table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
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
                      char *err, size_t errcap)
{
#define BAD(...) (snprintf(err, errcap, __VA_ARGS__), LB_EVALUE)
    const char *path = f && f->path ? f->path : "";
    if (!f || !valid_rel_path(f->path))
        return BAD("data file path \"%s\" is not a relative key under the table", path);
    const lake_parquet_file_stats *st = f->stats;
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
