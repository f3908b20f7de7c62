/*
 * parquet.c: the streaming Parquet writer.
 *
 * Shape of a file we write:
 *
 *   "PAR1" | row group 0 | row group 1 | ... | footer | footer length | "PAR1"
 *
 * A row group holds one column chunk per leaf column, in schema order; a
 * chunk is an optional dictionary page followed by data pages. Page headers
 * and the footer (FileMetaData) are Thrift compact structs (thrift.c).
 *
 * Rows come in as value trees (value.h). Each row is first checked against
 * the schema as a whole; only then is it shredded into the leaf columns
 * (the Dremel scheme: a repetition level and a definition level per
 * entry, and a value when the entry is defined all the way down). So a
 * refused row leaves no trace, and the only failures after checking are
 * memory and the sink, which kill the writer.
 *
 * Levels. A leaf's max definition level counts the optional and repeated
 * nodes on its path, its max repetition level the repeated ones. A LIST
 * field maps to the three-level form
 *
 *   <required|optional> group <name> (LIST) { repeated group list {
 *       <required|optional> <element type> element; } }
 *
 * so an empty list is an entry whose definition level stops at the list
 * field, and each element after the first repeats at the list's level.
 *
 * Memory. Per column we hold the page being filled (levels, and PLAIN
 * values or dictionary indices), the finished pages of the current row
 * group, already compressed, and the chunk's dictionary. After each row a
 * page that reached page_bytes is closed, and once the whole row group
 * reached row_group_bytes it is written to the sink and all of that is
 * released for reuse (a chunk's finished pages sit in memory mapped for
 * them, see chunk_buf). Pages only end at row boundaries (required for v2
 * pages, and harmless for v1). What grows with the file is the footer's
 * per-row-group metadata, serialized as each row group is written.
 *
 * Rows by column. lake_parquet_write_columns() takes a batch of rows as
 * one array of values per top-level field. It checks the rows first (the
 * rows before the first bad one go in), then appends each field in turn:
 * a primitive field, a run of up to RUN_VALUES values at a time, with one
 * loop per physical type and the dictionary lookups of a run overlapped;
 * a LIST or STRUCT field through the shredder, row by row. A run is cut
 * where the page could fill up, so pages end after the same row as they
 * would row by row (unless a dictionary falls back in the middle of one),
 * and row groups are checked every SLICE_ROWS rows.
 *
 * Dictionary. Each chunk starts dictionary-encoded (not BOOLEAN). If the
 * chunk's first page would be smaller as PLAIN than as dictionary plus
 * indices, the chunk drops its dictionary and is PLAIN. When a new entry
 * would push the dictionary past dictionary_bytes, the page being filled is
 * turned into PLAIN values on the spot and the rest of the chunk is PLAIN;
 * earlier pages keep their indices and the dictionary page is still written
 * first. A new row group starts a new dictionary.
 *
 * Statistics. min/max follow the column's type order (ColumnOrder
 * TYPE_ORDER): signed for integers, dates, times, timestamps and decimals
 * (INT32/INT64 by value, FIXED_LEN_BYTE_ARRAY decimals by the 128-bit
 * value), unsigned bytewise for strings, binary and UUIDs, and value order
 * for floats with NaN left out (counted in nan_count); a zero minimum is
 * written as -0.0 and a zero maximum as +0.0 as the spec asks. Long
 * strings are truncated to stats_bytes with a maximum rounded up, so both
 * stay valid bounds, and are then marked inexact.
 *
 * Callers: the pageserver's LTAP transcoder; tests.
 */
#include "parquet.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buf.h"
#include "codec.h"
#include "encoding.h"
#include "errors.h"
#include "fileio.h"
#include "thrift.h"

#define LAKE_CREATED_BY "lakebase version 0.1.0"
#define PARQUET_MAGIC "PAR1"

/* Cap on level entries per page, so that a column of nulls or tiny values
 * still gets pages of a sane size. */
#define VALUES_HEADROOM 64 /* before a page's values: room for its levels */
#define PAGE_MAX_LEVELS (1u << 20)

/* Parquet enums (parquet.thrift). */
enum {
    PT_BOOLEAN = 0,
    PT_INT32 = 1,
    PT_INT64 = 2,
    PT_FLOAT = 4,
    PT_DOUBLE = 5,
    PT_BYTE_ARRAY = 6,
    PT_FIXED = 7
};
enum {
    CT_NONE = -1,
    CT_UTF8 = 0,
    CT_LIST = 3,
    CT_DECIMAL = 5,
    CT_DATE = 6,
    CT_TIME_MICROS = 8,
    CT_TIMESTAMP_MICROS = 10,
    CT_INT_8 = 15,
    CT_INT_16 = 16,
    CT_JSON = 19
};
enum { REP_REQUIRED = 0, REP_OPTIONAL = 1, REP_REPEATED = 2 };
enum { ENC_PLAIN = 0, ENC_RLE = 3, ENC_RLE_DICTIONARY = 8 };
enum { PAGE_DATA = 0, PAGE_DICTIONARY = 2, PAGE_DATA_V2 = 3 };

/* How min/max compare for a column. */
typedef enum order_kind {
    ORD_BOOL,    /* false < true, kept in imin/imax */
    ORD_INT,     /* signed 64-bit, imin/imax (INT32 and INT64 physical) */
    ORD_FLOAT,   /* dmin/dmax, NaN excluded */
    ORD_DOUBLE,  /* dmin/dmax, NaN excluded */
    ORD_DECIMAL, /* signed 128-bit, qmin/qmax (FIXED_LEN_BYTE_ARRAY decimals) */
    ORD_BYTES,   /* unsigned bytewise, bmin/bmax */
} order_kind;

typedef struct col_stats {
    int64_t num_values; /* level entries */
    int64_t null_count; /* entries without a value */
    int64_t nan_count;
    bool has; /* min/max set: at least one non-null, non-NaN value */
    int64_t imin, imax;
    double dmin, dmax;
    lake_int128 qmin, qmax;
    lb_buf bmin, bmax;
} col_stats;

/* Where entry i's value bytes are in plain (after any length). plain never
 * exceeds dictionary_bytes <= INT32_MAX, so 32 bits hold the offset. */
typedef struct dict_entry {
    uint32_t off;
    uint32_t len;
} dict_entry;

/* A slot of the hash table. For a column of fixed-size values of at most 4
 * bytes (INT32, FLOAT, DATE, ...), key is a bijection of the value, so equal
 * keys mean equal values and a lookup reads nothing but the slot; otherwise
 * key is a hash, and the bytes are compared once it matches. */
typedef struct dict_slot {
    uint32_t key;
    uint32_t entry; /* entry + 1; 0 = empty */
} dict_slot;

/* The dictionary of one column chunk. Entries are kept PLAIN-encoded in
 * index order, which is exactly the dictionary page's body. */
typedef struct dict {
    lb_buf plain;
    dict_entry *entries;
    uint32_t count, cap;
    dict_slot *slots; /* open addressing */
    size_t nslots;    /* power of two, >= 2 * count */
} dict;

/* The finished pages of a column chunk, headers and compressed bodies, as
 * they go to the file. Its memory is mapped for it alone and grown with
 * mremap(), so growing copies nothing; past HUGE_CHUNK_BYTES it asks for
 * transparent huge pages. A chunk is tens of megabytes, written once per
 * row group, and faulting that in 4 KiB at a time (each fault is
 * expensive in a virtual machine) cost more than copying it. */
typedef struct chunk_buf {
    uint8_t *data;
    size_t len, cap;
} chunk_buf;

typedef struct column {
    int node;     /* schema node of the leaf */
    char *path;   /* dotted Parquet path */
    char **parts; /* path_in_schema components; borrowed from node names or static */
    int nparts;
    int max_def, max_rep;
    lake_type type;
    int physical;
    int32_t width; /* PLAIN byte width of fixed-size values; 0 for BYTE_ARRAY, BOOLEAN */
    order_kind order;

    /* The page being filled. */
    uint16_t *defs, *reps; /* only when max_def / max_rep > 0 */
    size_t nlevels, levels_cap;
    size_t page_values; /* entries with a value */
    size_t page_rows;   /* entries starting a row (rep == 0) */
    int64_t row_starts; /* all rep == 0 entries: one per row, always */
    lb_buf values;      /* VALUES_HEADROOM bytes, then PLAIN values (plain mode; BOOLEAN
                           bit-packed); see flush_page */
    uint32_t *indices;  /* dictionary mode */
    size_t nindices, indices_cap;

    bool use_dict;  /* the current chunk is still dictionary-encoded */
    int zstd_level; /* of the chunk's data pages; 0 until its first page chose */
    dict dict;

    /* The chunk of the current row group: finished data pages. */
    chunk_buf chunk;
    int64_t chunk_uncompressed; /* headers + uncompressed bodies */
    int dict_pages, plain_pages;
    col_stats chunk_stats;

    /* The whole file. */
    col_stats file_stats;
    int64_t file_compressed, file_uncompressed;
} column;

typedef struct node_info {
    const lake__node *node;    /* the schema's, which cannot change while held */
    int first_col, ncols;      /* leaves under the node */
    int list_rep;              /* LIST: repetition level of its repeated group */
    char *path;                /* dotted field path, for messages */
    lake_int128 decimal_limit; /* DECIMAL: 10^precision, which values stay below */
} node_info;

struct lake_parquet_writer {
    lake_schema *schema; /* held, not owned */
    lake_parquet_options opts;
    char *created_by;
    lake_sink_fn sink;
    void *sink_arg;
    int fd;
    uint64_t offset; /* bytes given to the sink */

    int nnodes;
    node_info *info;
    int ncols;
    column *cols;
    int nlists; /* LIST fields: each adds a "list" element to the schema */

    lake__compressor *comp;
    lb_buf page, levels, header, packed, trial; /* scratch for assembling pages */
    uint32_t *u32;                              /* scratch for levels as uint32 */
    size_t u32_cap;

    lb_buf row_groups; /* serialized RowGroup structs, for the footer */
    int64_t num_row_groups;
    int64_t rows, group_rows;

    char **kv_keys, **kv_values;
    size_t nkv, kv_cap;

    int dead; /* first fatal error */
    bool closed;
    char error[512];
};

static int set_error(lake_parquet_writer *w, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
set_error(lake_parquet_writer *w, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->error, sizeof(w->error), fmt, ap);
    va_end(ap);
    return rc;
}

/* A fatal error: the writer is dead from now on. */
static int
die(lake_parquet_writer *w, int rc, const char *what)
{
    assert(rc != 0);
    if (!w->dead) {
        w->dead = rc;
        set_error(w, rc, "could not write parquet file: %s: %s", what, lb_strerror(rc));
    }
    return w->dead;
}

/* ---- schema mapping ---------------------------------------------------- */

static int
physical_type(const lake__node *n)
{
    switch (n->type) {
    case LAKE_TYPE_BOOLEAN:
        return PT_BOOLEAN;
    case LAKE_TYPE_INT8:
    case LAKE_TYPE_INT16:
    case LAKE_TYPE_INT32:
    case LAKE_TYPE_DATE:
        return PT_INT32;
    case LAKE_TYPE_INT64:
    case LAKE_TYPE_TIME:
    case LAKE_TYPE_TIMESTAMP:
    case LAKE_TYPE_TIMESTAMPTZ:
        return PT_INT64;
    case LAKE_TYPE_FLOAT:
        return PT_FLOAT;
    case LAKE_TYPE_DOUBLE:
        return PT_DOUBLE;
    case LAKE_TYPE_DECIMAL:
        return n->precision <= 9 ? PT_INT32 : n->precision <= 18 ? PT_INT64 : PT_FIXED;
    case LAKE_TYPE_STRING:
    case LAKE_TYPE_JSON:
    case LAKE_TYPE_BINARY:
        return PT_BYTE_ARRAY;
    case LAKE_TYPE_UUID:
    case LAKE_TYPE_FIXED:
        return PT_FIXED;
    case LAKE_TYPE_LIST:
    case LAKE_TYPE_STRUCT:
        break;
    }
    assert(!"group has no physical type");
    return -1;
}

/* Smallest two's complement width holding every value of `precision`
 * digits: 2^(8n-1) > 10^precision - 1. */
static int32_t
decimal_bytes(int precision)
{
    unsigned __int128 limit = 1;
    for (int i = 0; i < precision; i++)
        limit *= 10;
    int32_t n = 1;
    while (n < 16 && ((unsigned __int128)1 << (8 * n - 1)) < limit)
        n++;
    return n;
}

static int32_t
type_length(const lake__node *n)
{
    if (n->type == LAKE_TYPE_UUID)
        return 16;
    if (n->type == LAKE_TYPE_FIXED)
        return n->length;
    if (n->type == LAKE_TYPE_DECIMAL && n->precision > 18)
        return decimal_bytes(n->precision);
    return 0;
}

static int
converted_type(const lake__node *n)
{
    switch (n->type) {
    case LAKE_TYPE_INT8:
        return CT_INT_8;
    case LAKE_TYPE_INT16:
        return CT_INT_16;
    case LAKE_TYPE_DECIMAL:
        return CT_DECIMAL;
    case LAKE_TYPE_DATE:
        return CT_DATE;
    case LAKE_TYPE_TIME:
        return CT_TIME_MICROS;
    case LAKE_TYPE_TIMESTAMP:
    case LAKE_TYPE_TIMESTAMPTZ:
        return CT_TIMESTAMP_MICROS;
    case LAKE_TYPE_STRING:
        return CT_UTF8;
    case LAKE_TYPE_JSON:
        return CT_JSON;
    case LAKE_TYPE_LIST:
        return CT_LIST;
    default:
        return CT_NONE;
    }
}

static order_kind
order_of(const lake__node *n, int physical)
{
    switch (physical) {
    case PT_BOOLEAN:
        return ORD_BOOL;
    case PT_INT32:
    case PT_INT64:
        return ORD_INT;
    case PT_FLOAT:
        return ORD_FLOAT;
    case PT_DOUBLE:
        return ORD_DOUBLE;
    default:
        return n->type == LAKE_TYPE_DECIMAL ? ORD_DECIMAL : ORD_BYTES;
    }
}

static char *
join_path(const char *prefix, const char *name)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s%s", prefix ? prefix : "", prefix && prefix[0] ? "." : "", name) < 0)
        return NULL;
    return s;
}

static char list_part[] = "list";

static lake_int128
pow10_128(int p)
{
    lake_int128 x = 1;
    for (int i = 0; i < p; i++)
        x *= 10;
    return x;
}

/*
 * Walk the schema depth first: give every node its leaf range and message
 * path, every leaf a column with its levels and Parquet path. parts is the
 * Parquet path so far (node names plus "list" for each LIST).
 */
static int
map_node(lake_parquet_writer *w, int id, int def, int rep, char **parts, int nparts,
         const char *ppath)
{
    const lake__node *n = lake__schema_node(w->schema, id);
    node_info *ni = &w->info[id];
    ni->node = n;
    if (n->type == LAKE_TYPE_DECIMAL)
        ni->decimal_limit = pow10_128(n->precision);
    if (id != LAKE_SCHEMA_ROOT) {
        ni->path = join_path(ppath, n->name);
        if (!ni->path)
            return -ENOMEM;
        if (nparts >= 64)
            return set_error(w, LB_ESCHEMA, "field \"%s\" is nested too deep", ni->path);
        parts[nparts++] = (char *)lake__node_physical(n);
        if (!n->required)
            def++;
    }
    ni->first_col = w->ncols;
    if (n->type == LAKE_TYPE_LIST) {
        if (nparts >= 64)
            return set_error(w, LB_ESCHEMA, "field \"%s\" is nested too deep", ni->path);
        parts[nparts++] = list_part;
        ni->list_rep = rep + 1;
        int rc = map_node(w, n->children[0], def + 1, rep + 1, parts, nparts, ni->path);
        if (rc)
            return rc;
    } else if (n->type == LAKE_TYPE_STRUCT) {
        for (int i = 0; i < n->nchildren; i++) {
            int rc = map_node(w, n->children[i], def, rep, parts, nparts, ni->path);
            if (rc)
                return rc;
        }
    } else {
        if (def > UINT16_MAX || rep > UINT16_MAX)
            return set_error(w, LB_ESCHEMA, "field \"%s\" is nested too deep", ni->path);
        column *c = &w->cols[w->ncols++];
        c->node = id;
        c->max_def = def;
        c->max_rep = rep;
        c->type = n->type;
        c->physical = physical_type(n);
        c->order = order_of(n, c->physical);
        c->width = c->physical == PT_INT32 || c->physical == PT_FLOAT    ? 4
                   : c->physical == PT_INT64 || c->physical == PT_DOUBLE ? 8
                   : c->physical == PT_FIXED                             ? type_length(n)
                                                                         : 0;
        c->use_dict = w->opts.dictionary && c->physical != PT_BOOLEAN;
        if (lb_buf_reserve(&c->values, VALUES_HEADROOM))
            return -ENOMEM;
        c->values.len = VALUES_HEADROOM;
        c->parts = malloc((size_t)nparts * sizeof(*c->parts));
        if (!c->parts)
            return -ENOMEM;
        memcpy(c->parts, parts, (size_t)nparts * sizeof(*parts));
        c->nparts = nparts;
        lb_buf p = LB_BUF_INIT;
        for (int i = 0; i < nparts; i++)
            if (lb_buf_printf(&p, "%s%s", i ? "." : "", parts[i]))
                return -ENOMEM;
        c->path = lb_buf_steal(&p, NULL);
    }
    ni->ncols = w->ncols - ni->first_col;
    assert(ni->ncols >= 1);
    return 0;
}

static int
count_leaves(const lake_schema *s, int id, int *nlists)
{
    const lake__node *n = lake__schema_node(s, id);
    if (!lake__type_is_group(n->type))
        return 1;
    if (n->type == LAKE_TYPE_LIST)
        (*nlists)++;
    int total = 0;
    for (int i = 0; i < n->nchildren; i++)
        total += count_leaves(s, n->children[i], nlists);
    return total;
}

/* ---- checking a row ----------------------------------------------------- */

static const char *
kind_name(lake_value_kind k)
{
    switch (k) {
    case LAKE_NULL:
        return "null";
    case LAKE_BOOL:
        return "bool";
    case LAKE_INT:
        return "int";
    case LAKE_FLOAT:
        return "float";
    case LAKE_DOUBLE:
        return "double";
    case LAKE_DECIMAL:
        return "decimal";
    case LAKE_BYTES:
        return "bytes";
    case LAKE_LIST:
        return "list";
    case LAKE_STRUCT:
        return "struct";
    }
    return "unknown";
}

static lake_value_kind
kind_for(lake_type t)
{
    switch (t) {
    case LAKE_TYPE_BOOLEAN:
        return LAKE_BOOL;
    case LAKE_TYPE_INT8:
    case LAKE_TYPE_INT16:
    case LAKE_TYPE_INT32:
    case LAKE_TYPE_INT64:
    case LAKE_TYPE_DATE:
    case LAKE_TYPE_TIME:
    case LAKE_TYPE_TIMESTAMP:
    case LAKE_TYPE_TIMESTAMPTZ:
        return LAKE_INT;
    case LAKE_TYPE_FLOAT:
        return LAKE_FLOAT;
    case LAKE_TYPE_DOUBLE:
        return LAKE_DOUBLE;
    case LAKE_TYPE_DECIMAL:
        return LAKE_DECIMAL;
    case LAKE_TYPE_STRING:
    case LAKE_TYPE_JSON:
    case LAKE_TYPE_UUID:
    case LAKE_TYPE_BINARY:
    case LAKE_TYPE_FIXED:
        return LAKE_BYTES;
    case LAKE_TYPE_LIST:
        return LAKE_LIST;
    case LAKE_TYPE_STRUCT:
        return LAKE_STRUCT;
    }
    return LAKE_NULL;
}

/* Largest byte string we accept: its length must fit Parquet's 4-byte
 * prefix and leave room in an int32-sized page. */
#define MAX_VALUE_BYTES ((size_t)1 << 30)

static int
check_value(lake_parquet_writer *w, int id, const lake_value *v, int depth)
{
    const lake__node *n = w->info[id].node;
    const char *path = w->info[id].path;
    if (depth > 64)
        return set_error(w, LB_EVALUE, "value of \"%s\" is nested too deep", path);
    if (v->kind == LAKE_NULL) {
        if (n->required)
            return set_error(w, LB_EVALUE, "null value in required column \"%s\"", path);
        return 0;
    }
    lake_value_kind want = kind_for(n->type);
    if (v->kind != want)
        return set_error(w, LB_EVALUE, "column \"%s\" of type %s takes %s values, not %s", path,
                         lake_type_name(n->type), kind_name(want), kind_name(v->kind));
    int64_t lo = INT64_MIN, hi = INT64_MAX;
    switch (n->type) {
    case LAKE_TYPE_INT8:
        lo = INT8_MIN, hi = INT8_MAX;
        break;
    case LAKE_TYPE_INT16:
        lo = INT16_MIN, hi = INT16_MAX;
        break;
    case LAKE_TYPE_INT32:
    case LAKE_TYPE_DATE:
        lo = INT32_MIN, hi = INT32_MAX;
        break;
    case LAKE_TYPE_TIME:
        lo = 0, hi = INT64_C(86400000000);
        break;
    case LAKE_TYPE_DECIMAL: {
        lake_int128 limit = w->info[id].decimal_limit;
        if (v->u.dec >= limit || v->u.dec <= -limit)
            return set_error(w, LB_EVALUE, "decimal value exceeds precision %d of column \"%s\"",
                             n->precision, path);
        return 0;
    }
    case LAKE_TYPE_STRING:
    case LAKE_TYPE_JSON:
    case LAKE_TYPE_BINARY: {
        if (v->u.bytes.len > MAX_VALUE_BYTES)
            return set_error(w, LB_EVALUE, "value of %zu bytes is too large for column \"%s\"",
                             v->u.bytes.len, path);
        if (v->u.bytes.len && !v->u.bytes.ptr)
            return set_error(w, LB_EVALUE, "value for column \"%s\" has no bytes", path);
        size_t bad;
        if (n->type != LAKE_TYPE_BINARY && !w->opts.trusted_utf8 &&
            !lake__utf8_valid(v->u.bytes.ptr, v->u.bytes.len, &bad))
            return set_error(w, LB_EVALUE, "invalid UTF-8 at byte %zu of a value for column \"%s\"",
                             bad, path);
        return 0;
    }
    case LAKE_TYPE_UUID:
    case LAKE_TYPE_FIXED: {
        size_t want_len = (size_t)type_length(n);
        if (v->u.bytes.len != want_len)
            return set_error(w, LB_EVALUE, "column \"%s\" takes values of %zu bytes, not %zu", path,
                             want_len, v->u.bytes.len);
        if (!v->u.bytes.ptr)
            return set_error(w, LB_EVALUE, "value for column \"%s\" has no bytes", path);
        return 0;
    }
    case LAKE_TYPE_LIST:
        if (v->u.list.count && !v->u.list.items)
            return set_error(w, LB_EVALUE, "list value for column \"%s\" has no items", path);
        for (size_t i = 0; i < v->u.list.count; i++) {
            int rc = check_value(w, n->children[0], &v->u.list.items[i], depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    case LAKE_TYPE_STRUCT:
        if (v->u.list.count != (size_t)n->nchildren || !v->u.list.items)
            return set_error(w, LB_EVALUE, "struct \"%s\" has %d fields, got %zu values", path,
                             n->nchildren, v->u.list.count);
        for (int i = 0; i < n->nchildren; i++) {
            int rc = check_value(w, n->children[i], &v->u.list.items[i], depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    default:
        return 0;
    }
    if (v->u.i < lo || v->u.i > hi)
        return set_error(w, LB_EVALUE, "value %lld is out of range for %s column \"%s\"",
                         (long long)v->u.i, lake_type_name(n->type), path);
    return 0;
}

/* ---- statistics ---------------------------------------------------------- */

/* Unsigned bytewise order, a shorter prefix first. Eight bytes at a time
 * in line: the values compared are mostly short strings that share a
 * prefix, where a call to memcmp cost more than the comparison. */
static inline int
bytes_cmp(const void *a, size_t an, const void *b, size_t bn)
{
    const uint8_t *x = a, *y = b;
    size_t n = an < bn ? an : bn;
    for (; n >= 8; x += 8, y += 8, n -= 8) {
        uint64_t u, v;
        memcpy(&u, x, 8);
        memcpy(&v, y, 8);
        if (u != v)
            return __builtin_bswap64(u) < __builtin_bswap64(v) ? -1 : 1;
    }
    for (; n > 0; x++, y++, n--)
        if (*x != *y)
            return *x < *y ? -1 : 1;
    return an < bn ? -1 : an > bn;
}

static int
set_bytes(lb_buf *b, const void *p, size_t n)
{
    lb_buf_reset(b);
    return lb_buf_append(b, p, n);
}

/* Fold one value into s. p/n are its PLAIN bytes (for ORD_BYTES). */
static int
stats_add(const column *c, col_stats *s, const lake_value *v, const uint8_t *p, size_t n)
{
    switch (c->order) {
    case ORD_BOOL:
    case ORD_INT: {
        int64_t x = c->order == ORD_BOOL      ? v->u.b
                    : v->kind == LAKE_DECIMAL ? (int64_t)v->u.dec
                                              : v->u.i;
        if (!s->has || x < s->imin)
            s->imin = x;
        if (!s->has || x > s->imax)
            s->imax = x;
        break;
    }
    case ORD_FLOAT:
    case ORD_DOUBLE: {
        double x = c->order == ORD_FLOAT ? (double)v->u.f : v->u.d;
        if (isnan(x)) {
            s->nan_count++;
            return 0;
        }
        if (!s->has || x < s->dmin)
            s->dmin = x;
        if (!s->has || x > s->dmax)
            s->dmax = x;
        break;
    }
    case ORD_DECIMAL:
        if (!s->has || v->u.dec < s->qmin)
            s->qmin = v->u.dec;
        if (!s->has || v->u.dec > s->qmax)
            s->qmax = v->u.dec;
        break;
    case ORD_BYTES:
        if (!s->has || bytes_cmp(p, n, s->bmin.data, s->bmin.len) < 0) {
            int rc = set_bytes(&s->bmin, p, n);
            if (rc)
                return rc;
        }
        if (!s->has || bytes_cmp(p, n, s->bmax.data, s->bmax.len) > 0) {
            int rc = set_bytes(&s->bmax, p, n);
            if (rc)
                return rc;
        }
        break;
    }
    s->has = true;
    return 0;
}

/* Fold the statistics of a chunk into the file's. */
static int
stats_merge(const column *c, col_stats *into, const col_stats *from)
{
    into->num_values += from->num_values;
    into->null_count += from->null_count;
    into->nan_count += from->nan_count;
    if (!from->has)
        return 0;
    bool first = !into->has;
    switch (c->order) {
    case ORD_BOOL:
    case ORD_INT:
        if (first || from->imin < into->imin)
            into->imin = from->imin;
        if (first || from->imax > into->imax)
            into->imax = from->imax;
        break;
    case ORD_FLOAT:
    case ORD_DOUBLE:
        if (first || from->dmin < into->dmin)
            into->dmin = from->dmin;
        if (first || from->dmax > into->dmax)
            into->dmax = from->dmax;
        break;
    case ORD_DECIMAL:
        if (first || from->qmin < into->qmin)
            into->qmin = from->qmin;
        if (first || from->qmax > into->qmax)
            into->qmax = from->qmax;
        break;
    case ORD_BYTES:
        if (first ||
            bytes_cmp(from->bmin.data, from->bmin.len, into->bmin.data, into->bmin.len) < 0)
            if (set_bytes(&into->bmin, from->bmin.data, from->bmin.len))
                return -ENOMEM;
        if (first ||
            bytes_cmp(from->bmax.data, from->bmax.len, into->bmax.data, into->bmax.len) > 0)
            if (set_bytes(&into->bmax, from->bmax.data, from->bmax.len))
                return -ENOMEM;
        break;
    }
    into->has = true;
    return 0;
}

static void
stats_reset(col_stats *s)
{
    lb_buf bmin = s->bmin, bmax = s->bmax;
    lb_buf_reset(&bmin);
    lb_buf_reset(&bmax);
    memset(s, 0, sizeof(*s));
    s->bmin = bmin;
    s->bmax = bmax;
}

static void
stats_free(col_stats *s)
{
    lb_buf_free(&s->bmin);
    lb_buf_free(&s->bmax);
}

static void
put_be128(uint8_t *p, int32_t width, lake_int128 v)
{
    for (int32_t i = width - 1; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8; /* arithmetic: sign-extends the top bytes */
    }
}

/* Smallest UTF-8 string greater than every string starting with s[0..n):
 * s with its last incrementable character incremented and the rest
 * dropped, written to out. 1, 0 if there is none (all U+10FFFF), -ENOMEM. */
static int
utf8_upper_bound(const uint8_t *s, size_t n, lb_buf *out)
{
    while (n > 0) {
        size_t start = n - 1;
        while (start > 0 && (s[start] & 0xc0) == 0x80)
            start--;
        uint8_t lead = s[start];
        size_t len = n - start;
        uint32_t cp = len == 1   ? lead
                      : len == 2 ? lead & 0x1f
                      : len == 3 ? lead & 0x0f
                                 : lead & 0x07;
        for (size_t k = 1; k < len; k++)
            cp = cp << 6 | (s[start + k] & 0x3f);
        if (cp < 0x10ffff) {
            cp = cp + 1 == 0xd800 ? 0xe000 : cp + 1;
            uint8_t enc[4];
            size_t elen;
            if (cp < 0x80) {
                enc[0] = (uint8_t)cp, elen = 1;
            } else if (cp < 0x800) {
                enc[0] = (uint8_t)(0xc0 | cp >> 6), enc[1] = (uint8_t)(0x80 | (cp & 0x3f)),
                elen = 2;
            } else if (cp < 0x10000) {
                enc[0] = (uint8_t)(0xe0 | cp >> 12), enc[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
                enc[2] = (uint8_t)(0x80 | (cp & 0x3f)), elen = 3;
            } else {
                enc[0] = (uint8_t)(0xf0 | cp >> 18), enc[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
                enc[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)), enc[3] = (uint8_t)(0x80 | (cp & 0x3f));
                elen = 4;
            }
            lb_buf_reset(out);
            if (lb_buf_append(out, s, start) || lb_buf_append(out, enc, elen))
                return -ENOMEM;
            return 1;
        }
        n = start;
    }
    return 0;
}

/* The same for raw bytes: increment the last byte below 0xff. */
static int
bytes_upper_bound(const uint8_t *s, size_t n, lb_buf *out)
{
    while (n > 0 && s[n - 1] == 0xff)
        n--;
    if (n == 0)
        return 0;
    lb_buf_reset(out);
    if (lb_buf_append(out, s, n))
        return -ENOMEM;
    ((uint8_t *)out->data)[n - 1]++;
    return 1;
}

/* Append the PLAIN bytes of a fixed-size bound. */
static int
put_bound(lb_buf *out, const column *c, int64_t i, double d, lake_int128 q)
{
    uint8_t b[16];
    size_t n;
    switch (c->physical) {
    case PT_BOOLEAN:
        b[0] = (uint8_t)i, n = 1;
        break;
    case PT_INT32:
        lake__le32(b, (uint32_t)(int32_t)i), n = 4;
        break;
    case PT_INT64:
        lake__le64(b, (uint64_t)i), n = 8;
        break;
    case PT_FLOAT: {
        float f = (float)d;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        lake__le32(b, bits), n = 4;
        break;
    }
    case PT_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &d, 8);
        lake__le64(b, bits), n = 8;
        break;
    }
    default:
        assert(c->order == ORD_DECIMAL);
        put_be128(b, c->width, q), n = (size_t)c->width;
        break;
    }
    return lb_buf_append(out, b, n);
}

/* The encoded bounds of s as written to the footer: 1, or 0 if the column
 * gets no min/max (no values, all NaN, or no valid truncation), or
 * -ENOMEM. */
static int
stats_bounds(const lake_parquet_writer *w, const column *c, const col_stats *s, lb_buf *min,
             lb_buf *max, bool *min_exact, bool *max_exact)
{
    lb_buf_reset(min);
    lb_buf_reset(max);
    *min_exact = *max_exact = true;
    if (!s->has)
        return 0;
    switch (c->order) {
    case ORD_BOOL:
    case ORD_INT:
        if (put_bound(min, c, s->imin, 0, 0) || put_bound(max, c, s->imax, 0, 0))
            return -ENOMEM;
        return 1;
    case ORD_FLOAT:
    case ORD_DOUBLE:
        /* Zero bounds are widened to cover both signed zeros. */
        if (put_bound(min, c, 0, s->dmin == 0 ? -0.0 : s->dmin, 0) ||
            put_bound(max, c, 0, s->dmax == 0 ? +0.0 : s->dmax, 0))
            return -ENOMEM;
        return 1;
    case ORD_DECIMAL:
        if (put_bound(min, c, 0, 0, s->qmin) || put_bound(max, c, 0, 0, s->qmax))
            return -ENOMEM;
        return 1;
    case ORD_BYTES:
        break;
    }
    size_t limit = w->opts.stats_bytes;
    const uint8_t *lo = (const uint8_t *)s->bmin.data, *hi = (const uint8_t *)s->bmax.data;
    if (c->physical == PT_FIXED) {
        /* A shorter FIXED value would not be a value of the type. */
        if ((size_t)c->width > limit)
            return 0;
        if (lb_buf_append(min, lo, s->bmin.len) || lb_buf_append(max, hi, s->bmax.len))
            return -ENOMEM;
        return 1;
    }
    bool text = c->type != LAKE_TYPE_BINARY;
    size_t cut = s->bmin.len;
    if (cut > limit) {
        cut = text ? lake__utf8_prefix(lo, s->bmin.len, limit) : limit;
        *min_exact = false;
    }
    if (lb_buf_append(min, lo, cut))
        return -ENOMEM;
    if (s->bmax.len <= limit)
        return lb_buf_append(max, hi, s->bmax.len) ? -ENOMEM : 1;
    cut = text ? lake__utf8_prefix(hi, s->bmax.len, limit) : limit;
    *max_exact = false;
    return text ? utf8_upper_bound(hi, cut, max) : bytes_upper_bound(hi, cut, max);
}

/* ---- dictionary ------------------------------------------------------------ */

/* Values looked up in the dictionary at a time: their slot keys are computed
 * first, so that the slot of a value a few places ahead can be fetched from
 * memory while the current one is probed. A large dictionary's table does
 * not fit in the cache, and without this every lookup waits for memory. */
#define RUN_VALUES 512
#define PREFETCH_AHEAD 8

/* The slot key of value bytes p[0..n); see dict_slot. exact: the column's
 * values all have n <= 4 bytes, and the key is the value under murmur3's
 * finalizer, a bijection. Else a hash of 8 bytes at a time under
 * splitmix64's finalizer. Both carry every input bit into the low bits
 * that pick the slot. */
static inline uint32_t
dict_key(const uint8_t *p, size_t n, bool exact)
{
    if (exact) {
        uint32_t x = 0;
        if (n == 4)
            memcpy(&x, p, 4);
        else
            memcpy(&x, p, n);
        x = (x ^ x >> 16) * UINT32_C(0x85ebca6b);
        x = (x ^ x >> 13) * UINT32_C(0xc2b2ae35);
        return x ^ x >> 16;
    }
    uint64_t h = UINT64_C(0x9e3779b97f4a7c15) ^ n, x;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&x, p, 8);
        h = (h ^ x) * UINT64_C(0xbf58476d1ce4e5b9);
        h ^= h >> 32;
    }
    if (n) {
        x = 0;
        memcpy(&x, p, n);
        h ^= x;
    }
    h = (h ^ h >> 30) * UINT64_C(0xbf58476d1ce4e5b9);
    h = (h ^ h >> 27) * UINT64_C(0x94d049bb133111eb);
    return (uint32_t)(h ^ h >> 31);
}

static void
dict_clear(dict *d)
{
    lb_buf_reset(&d->plain);
    d->count = 0;
    if (d->slots)
        memset(d->slots, 0, d->nslots * sizeof(*d->slots));
}

static void
dict_free(dict *d)
{
    lb_buf_free(&d->plain);
    free(d->entries);
    free(d->slots);
    memset(d, 0, sizeof(*d));
}

static int
dict_grow_slots(dict *d)
{
    size_t nslots = d->nslots ? d->nslots * 2 : 1024;
    dict_slot *slots = calloc(nslots, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t k = 0; k < d->nslots; k++) {
        if (!d->slots[k].entry)
            continue;
        size_t i = d->slots[k].key & (nslots - 1);
        while (slots[i].entry)
            i = (i + 1) & (nslots - 1);
        slots[i] = d->slots[k];
    }
    free(d->slots);
    d->slots = slots;
    d->nslots = nslots;
    return 0;
}

static inline bool
same_bytes(const void *a, const void *b, size_t n)
{
    if (n == 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        return x == y;
    }
    return memcmp(a, b, n) == 0;
}

/* Add value bytes p[0..n) with slot key `key` as a new entry; slot is the
 * empty slot where a probe for it ended. prefix: 4 for BYTE_ARRAY (the
 * length goes first), else 0. */
static int
dict_add(dict *d, size_t prefix, uint32_t key, const uint8_t *p, size_t n, size_t slot,
         uint32_t *index)
{
    if ((size_t)(d->count + 1) * 2 > d->nslots) {
        if (dict_grow_slots(d))
            return -ENOMEM;
        size_t mask = d->nslots - 1;
        for (slot = key & mask; d->slots[slot].entry; slot = (slot + 1) & mask)
            ;
    }
    if (d->count == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 256;
        dict_entry *entries = realloc(d->entries, cap * sizeof(*entries));
        if (!entries)
            return -ENOMEM;
        d->entries = entries;
        d->cap = cap;
    }
    if (lb_buf_reserve(&d->plain, prefix + n))
        return -ENOMEM;
    uint8_t *out = (uint8_t *)d->plain.data + d->plain.len;
    if (prefix)
        lake__le32(out, (uint32_t)n);
    if (n)
        memcpy(out + prefix, p, n);
    uint32_t e = d->count++;
    d->entries[e].off = (uint32_t)(d->plain.len + prefix);
    d->entries[e].len = (uint32_t)n;
    d->plain.len += prefix + n;
    d->plain.data[d->plain.len] = '\0';
    d->slots[slot].key = key;
    d->slots[slot].entry = e + 1;
    *index = e;
    return 0;
}

/*
 * The index of value bytes p[0..n), whose slot key is key, in d, adding it
 * if new: 0 with *index; 1 if adding it would take the dictionary past
 * limit bytes (nothing added); or -ENOMEM. The table must have slots.
 */
static inline int
dict_find(dict *d, size_t limit, size_t prefix, bool exact, uint32_t key, const uint8_t *p,
          size_t n, uint32_t *index)
{
    assert(d->nslots > 0);
    size_t mask = d->nslots - 1;
    size_t i = key & mask;
    for (; d->slots[i].entry; i = (i + 1) & mask) {
        if (d->slots[i].key != key)
            continue;
        uint32_t e = d->slots[i].entry - 1;
        if (exact ||
            (d->entries[e].len == n && same_bytes(d->plain.data + d->entries[e].off, p, n))) {
            *index = e;
            return 0;
        }
    }
    /* plain stays within limit <= INT32_MAX, so offsets fit 32 bits. */
    if (d->plain.len + prefix + n > limit || d->count == UINT32_MAX - 1)
        return 1;
    return dict_add(d, prefix, key, p, n, i, index);
}

/* The dictionary outgrew its limit: the page being filled becomes PLAIN,
 * and so does the rest of the chunk. */
static int
dict_fallback(column *c)
{
    assert(c->use_dict && c->values.len == VALUES_HEADROOM);
    size_t prefix = c->physical == PT_BYTE_ARRAY ? 4 : 0, total = 0;
    for (size_t k = 0; k < c->nindices; k++)
        total += prefix + c->dict.entries[c->indices[k]].len;
    if (lb_buf_reserve(&c->values, total))
        return -ENOMEM;
    uint8_t *out = (uint8_t *)c->values.data + VALUES_HEADROOM;
    for (size_t k = 0; k < c->nindices; k++) {
        uint32_t e = c->indices[k];
        assert(e < c->dict.count);
        size_t len = c->dict.entries[e].len;
        if (prefix)
            lake__le32(out, (uint32_t)len);
        memcpy(out + prefix, c->dict.plain.data + c->dict.entries[e].off, len);
        out += prefix + len;
    }
    c->values.len = VALUES_HEADROOM + total;
    c->values.data[c->values.len] = '\0';
    c->nindices = 0;
    c->use_dict = false;
    if (c->dict_pages == 0)
        dict_clear(&c->dict); /* no page refers to it: no dictionary page */
    return 0;
}

/* Room for n more dictionary indices, and a table to look them up in. */
static int
dict_reserve(column *c, size_t n)
{
    if (c->dict.nslots == 0 && dict_grow_slots(&c->dict))
        return -ENOMEM;
    if (c->nindices + n <= c->indices_cap)
        return 0;
    size_t cap = c->indices_cap ? c->indices_cap : 1024;
    while (cap < c->nindices + n)
        cap *= 2;
    uint32_t *indices = realloc(c->indices, cap * sizeof(*indices));
    if (!indices)
        return -ENOMEM;
    c->indices = indices;
    c->indices_cap = cap;
    return 0;
}

/*
 * Add nvals (at most RUN_VALUES) fixed-size values, PLAIN-encoded back to
 * back in plain[], to the page being filled: as dictionary indices while
 * the chunk is dictionary-encoded (falling back to PLAIN when the
 * dictionary fills up), else as PLAIN bytes.
 */
static int
put_fixed(lake_parquet_writer *w, column *c, const uint8_t *plain, size_t nvals)
{
    assert(nvals <= RUN_VALUES && c->width > 0);
    size_t width = (size_t)c->width;
    size_t k = 0;
    if (c->use_dict) {
        int rc = dict_reserve(c, nvals);
        if (rc)
            return rc;
        dict *d = &c->dict;
        bool exact = width <= 4;
        uint32_t keys[RUN_VALUES];
        for (size_t j = 0; j < nvals; j++)
            keys[j] = dict_key(plain + j * width, width, exact);
        for (; k < nvals; k++) {
            if (k + PREFETCH_AHEAD < nvals)
                __builtin_prefetch(&d->slots[keys[k + PREFETCH_AHEAD] & (d->nslots - 1)]);
            uint32_t index;
            rc = dict_find(d, w->opts.dictionary_bytes, 0, exact, keys[k], plain + k * width, width,
                           &index);
            if (rc < 0)
                return rc;
            if (rc > 0)
                break;
            c->indices[c->nindices++] = index;
        }
        if (k == nvals)
            return 0;
        if ((rc = dict_fallback(c)) != 0)
            return rc;
    }
    return lb_buf_append(&c->values, plain + k * width, (nvals - k) * width);
}

/* The same for the values of v[0..n) (at most RUN_VALUES) of a BYTE_ARRAY
 * column, nulls skipped. */
static int
put_bytes(lake_parquet_writer *w, column *c, const lake_value *v, size_t n)
{
    assert(n <= RUN_VALUES && c->physical == PT_BYTE_ARRAY);
    size_t k = 0;
    if (c->use_dict) {
        int rc = dict_reserve(c, n);
        if (rc)
            return rc;
        dict *d = &c->dict;
        uint32_t keys[RUN_VALUES];
        for (size_t j = 0; j < n; j++)
            keys[j] =
                v[j].kind == LAKE_NULL ? 0 : dict_key(v[j].u.bytes.ptr, v[j].u.bytes.len, false);
        for (; k < n; k++) {
            if (k + PREFETCH_AHEAD < n)
                __builtin_prefetch(&d->slots[keys[k + PREFETCH_AHEAD] & (d->nslots - 1)]);
            if (v[k].kind == LAKE_NULL)
                continue;
            uint32_t index;
            rc = dict_find(d, w->opts.dictionary_bytes, 4, false, keys[k], v[k].u.bytes.ptr,
                           v[k].u.bytes.len, &index);
            if (rc < 0)
                return rc;
            if (rc > 0)
                break;
            c->indices[c->nindices++] = index;
        }
        if (k == n)
            return 0;
        if ((rc = dict_fallback(c)) != 0)
            return rc;
    }
    size_t total = 0;
    for (size_t j = k; j < n; j++)
        if (v[j].kind != LAKE_NULL)
            total += 4 + v[j].u.bytes.len;
    if (lb_buf_reserve(&c->values, total))
        return -ENOMEM;
    uint8_t *out = (uint8_t *)c->values.data + c->values.len;
    for (; k < n; k++) {
        if (v[k].kind == LAKE_NULL)
            continue;
        size_t len = v[k].u.bytes.len;
        lake__le32(out, (uint32_t)len);
        if (len)
            memcpy(out + 4, v[k].u.bytes.ptr, len);
        out += 4 + len;
    }
    c->values.len += total;
    c->values.data[c->values.len] = '\0';
    return 0;
}

/* ---- values ---------------------------------------------------------------- */

/* The PLAIN bytes of a value (without the length of a BYTE_ARRAY). */
static void
plain_bytes(const column *c, const lake_value *v, uint8_t tmp[16], const uint8_t **p, size_t *n)
{
    switch (c->physical) {
    case PT_INT32:
        lake__le32(tmp, (uint32_t)(int32_t)(v->kind == LAKE_DECIMAL ? (int64_t)v->u.dec : v->u.i));
        *p = tmp, *n = 4;
        return;
    case PT_INT64:
        lake__le64(tmp, (uint64_t)(v->kind == LAKE_DECIMAL ? (int64_t)v->u.dec : v->u.i));
        *p = tmp, *n = 8;
        return;
    case PT_FLOAT: {
        uint32_t bits;
        memcpy(&bits, &v->u.f, 4);
        lake__le32(tmp, bits);
        *p = tmp, *n = 4;
        return;
    }
    case PT_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &v->u.d, 8);
        lake__le64(tmp, bits);
        *p = tmp, *n = 8;
        return;
    }
    case PT_FIXED:
        if (c->type == LAKE_TYPE_DECIMAL) {
            put_be128(tmp, c->width, v->u.dec);
            *p = tmp, *n = (size_t)c->width;
            return;
        }
        /* UUID and FIXED are their bytes */
        __attribute__((fallthrough));
    case PT_BYTE_ARRAY:
        *p = v->u.bytes.ptr, *n = v->u.bytes.len;
        return;
    }
    assert(!"no plain bytes for this type");
}

/* The PLAIN bytes of the non-null values of v[0..n) of an INT32 or INT64
 * column (integers, dates, times, timestamps, decimals of up to 18
 * digits) into out, folded into s. Returns their count. */
static size_t
gather_ints(const column *c, col_stats *s, const lake_value *v, size_t n, uint8_t *out)
{
    bool dec = c->type == LAKE_TYPE_DECIMAL;
    int64_t lo = s->has ? s->imin : INT64_MAX, hi = s->has ? s->imax : INT64_MIN;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].kind == LAKE_NULL)
            continue;
        int64_t x = dec ? (int64_t)v[i].u.dec : v[i].u.i;
        lo = x < lo ? x : lo;
        hi = x > hi ? x : hi;
        if (c->width == 4)
            lake__le32(out + 4 * m, (uint32_t)(int32_t)x);
        else
            lake__le64(out + 8 * m, (uint64_t)x);
        m++;
    }
    if (m) {
        s->imin = lo;
        s->imax = hi;
        s->has = true;
    }
    return m;
}

/* The same for FLOAT and DOUBLE columns; NaN is counted, not ordered. */
static size_t
gather_floats(const column *c, col_stats *s, const lake_value *v, size_t n, uint8_t *out)
{
    bool single = c->physical == PT_FLOAT;
    double lo = s->has ? s->dmin : INFINITY, hi = s->has ? s->dmax : -INFINITY;
    bool ordered = false;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].kind == LAKE_NULL)
            continue;
        double x;
        if (single) {
            uint32_t bits;
            memcpy(&bits, &v[i].u.f, 4);
            lake__le32(out + 4 * m, bits);
            x = (double)v[i].u.f;
        } else {
            uint64_t bits;
            memcpy(&bits, &v[i].u.d, 8);
            lake__le64(out + 8 * m, bits);
            x = v[i].u.d;
        }
        m++;
        if (isnan(x)) {
            s->nan_count++;
            continue;
        }
        ordered = true;
        if (x < lo)
            lo = x;
        if (x > hi)
            hi = x;
    }
    if (ordered) {
        s->dmin = lo;
        s->dmax = hi;
        s->has = true;
    }
    return m;
}

/* The first 8 bytes of p[0..n) as a big-endian number, zero-padded: when
 * two keys differ, the byte strings compare the same way. */
static inline uint64_t
bytes_prefix(const uint8_t *p, size_t n)
{
    uint64_t x = 0;
    if (n >= 8)
        memcpy(&x, p, 8);
    else if (n)
        memcpy(&x, p, n);
    return __builtin_bswap64(x);
}

/* Fold the non-null values of v[0..n) of a BYTE_ARRAY column into s: the
 * least and greatest of the run are found first, and copied only then. */
static int
stats_add_bytes(col_stats *s, const lake_value *v, size_t n)
{
    const uint8_t *lo = NULL, *hi = NULL;
    size_t lo_len = 0, hi_len = 0;
    uint64_t lo_key = 0, hi_key = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].kind == LAKE_NULL)
            continue;
        const uint8_t *p = v[i].u.bytes.ptr;
        size_t len = v[i].u.bytes.len;
        uint64_t key = bytes_prefix(p, len);
        if (!lo) {
            lo = hi = p;
            lo_len = hi_len = len;
            lo_key = hi_key = key;
            continue;
        }
        if (key < lo_key || (key == lo_key && bytes_cmp(p, len, lo, lo_len) < 0))
            lo = p, lo_len = len, lo_key = key;
        if (key > hi_key || (key == hi_key && bytes_cmp(p, len, hi, hi_len) > 0))
            hi = p, hi_len = len, hi_key = key;
    }
    if (!lo)
        return 0;
    if (!s->has || bytes_cmp(lo, lo_len, s->bmin.data, s->bmin.len) < 0)
        if (set_bytes(&s->bmin, lo, lo_len))
            return -ENOMEM;
    if (!s->has || bytes_cmp(hi, hi_len, s->bmax.data, s->bmax.len) > 0)
        if (set_bytes(&s->bmax, hi, hi_len))
            return -ENOMEM;
    s->has = true;
    return 0;
}

/*
 * Add the values of v[0..n) that are not null to the page being filled,
 * and fold them into the chunk's statistics. The caller has added their
 * levels (a null has a level and nothing here).
 */
static int
append_values(lake_parquet_writer *w, column *c, const lake_value *v, size_t n)
{
    col_stats *s = &c->chunk_stats;
    int rc = 0;
    switch (c->physical) {
    case PT_BOOLEAN: {
        if (lb_buf_reserve(&c->values, n / 8 + 1))
            return -ENOMEM;
        int64_t lo = s->has ? s->imin : 1, hi = s->has ? s->imax : 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i].kind == LAKE_NULL)
                continue;
            if (c->page_values % 8 == 0)
                c->values.data[c->values.len++] = 0;
            if (v[i].u.b)
                c->values.data[c->values.len - 1] |= (char)(1u << (c->page_values % 8));
            c->page_values++;
            lo = v[i].u.b < lo ? v[i].u.b : lo;
            hi = v[i].u.b > hi ? v[i].u.b : hi;
            s->has = true;
        }
        c->values.data[c->values.len] = '\0';
        s->imin = lo;
        s->imax = hi;
        return 0;
    }
    case PT_BYTE_ARRAY:
        for (size_t done = 0; done < n && rc == 0; done += RUN_VALUES) {
            size_t m = n - done < RUN_VALUES ? n - done : RUN_VALUES;
            const lake_value *run = v + done;
            for (size_t i = 0; i < m; i++)
                c->page_values += run[i].kind != LAKE_NULL;
            if ((rc = stats_add_bytes(s, run, m)) == 0)
                rc = put_bytes(w, c, run, m);
        }
        return rc;
    case PT_FIXED:
        /* Wide decimals, UUIDs and FIXED: one at a time. */
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (v[i].kind == LAKE_NULL)
                continue;
            uint8_t tmp[16];
            const uint8_t *p;
            size_t len;
            plain_bytes(c, &v[i], tmp, &p, &len);
            assert(len == (size_t)c->width);
            if ((rc = stats_add(c, s, &v[i], p, len)) == 0)
                rc = put_fixed(w, c, p, 1);
            c->page_values++;
        }
        return rc;
    default: {
        /* PLAIN values go straight to the page; dictionary candidates
         * through put_fixed(). */
        uint8_t plain[RUN_VALUES * 8];
        bool ints = c->physical == PT_INT32 || c->physical == PT_INT64;
        size_t width = (size_t)c->width;
        for (size_t done = 0; done < n && rc == 0; done += RUN_VALUES) {
            size_t m = n - done < RUN_VALUES ? n - done : RUN_VALUES;
            bool direct = !c->use_dict;
            if (direct && lb_buf_reserve(&c->values, m * width))
                return -ENOMEM;
            uint8_t *out = direct ? (uint8_t *)c->values.data + c->values.len : plain;
            size_t got =
                ints ? gather_ints(c, s, v + done, m, out) : gather_floats(c, s, v + done, m, out);
            c->page_values += got;
            if (direct) {
                c->values.len += got * width;
                c->values.data[c->values.len] = '\0';
            } else if (got) {
                rc = put_fixed(w, c, plain, got);
            }
        }
        return rc;
    }
    }
}

/* ---- shredding ------------------------------------------------------------- */

/* Room for n more level entries in the page being filled. */
static int
reserve_levels(column *c, size_t n)
{
    if (c->nlevels + n <= c->levels_cap)
        return 0;
    size_t cap = c->levels_cap ? c->levels_cap : 1024;
    while (cap < c->nlevels + n)
        cap *= 2;
    if (c->max_def > 0) {
        uint16_t *defs = realloc(c->defs, cap * sizeof(*defs));
        if (!defs)
            return -ENOMEM;
        c->defs = defs;
    }
    if (c->max_rep > 0) {
        uint16_t *reps = realloc(c->reps, cap * sizeof(*reps));
        if (!reps)
            return -ENOMEM;
        c->reps = reps;
    }
    c->levels_cap = cap;
    return 0;
}

static int
add_level(column *c, int rep, int def)
{
    if (reserve_levels(c, 1))
        return -ENOMEM;
    assert(def <= c->max_def && rep <= c->max_rep);
    if (c->max_def > 0)
        c->defs[c->nlevels] = (uint16_t)def;
    if (c->max_rep > 0)
        c->reps[c->nlevels] = (uint16_t)rep;
    c->nlevels++;
    if (rep == 0) {
        c->page_rows++;
        c->row_starts++;
    }
    c->chunk_stats.num_values++;
    return 0;
}

static int
add_null(column *c, int rep, int def)
{
    assert(def < c->max_def);
    c->chunk_stats.null_count++;
    return add_level(c, rep, def);
}

static int
add_value(lake_parquet_writer *w, column *c, int rep, const lake_value *v)
{
    int rc = add_level(c, rep, c->max_def);
    if (rc)
        return rc;
    return append_values(w, c, v, 1);
}

/* Emit entries for every leaf under node id: value v at definition level
 * def (that of the node's parent) and repetition level rep. */
static int
shred(lake_parquet_writer *w, int id, const lake_value *v, int def, int rep)
{
    const node_info *ni = &w->info[id];
    const lake__node *n = ni->node;
    if (v->kind == LAKE_NULL) {
        assert(!n->required);
        for (int k = 0; k < ni->ncols; k++) {
            int rc = add_null(&w->cols[ni->first_col + k], rep, def);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!n->required)
        def++;
    if (n->type == LAKE_TYPE_STRUCT) {
        for (int i = 0; i < n->nchildren; i++) {
            int rc = shred(w, n->children[i], &v->u.list.items[i], def, rep);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (n->type == LAKE_TYPE_LIST) {
        if (v->u.list.count == 0) {
            for (int k = 0; k < ni->ncols; k++) {
                int rc = add_null(&w->cols[ni->first_col + k], rep, def);
                if (rc)
                    return rc;
            }
            return 0;
        }
        for (size_t i = 0; i < v->u.list.count; i++) {
            int rc =
                shred(w, n->children[0], &v->u.list.items[i], def + 1, i == 0 ? rep : ni->list_rep);
            if (rc)
                return rc;
        }
        return 0;
    }
    column *c = &w->cols[ni->first_col];
    assert(ni->ncols == 1 && def == c->max_def);
    return add_value(w, c, rep, v);
}

/* ---- pages ----------------------------------------------------------------- */

/* Bytes the page being filled holds in memory. */
static size_t
page_footprint(const column *c)
{
    size_t levels = (c->max_def > 0) + (c->max_rep > 0);
    return c->values.len - VALUES_HEADROOM + c->nindices * sizeof(uint32_t) +
           c->nlevels * levels * sizeof(uint16_t);
}

static int
encode_levels(lake_parquet_writer *w, const uint16_t *levels, size_t n, int max_level, lb_buf *out)
{
    if (n > w->u32_cap) {
        uint32_t *u32 = realloc(w->u32, n * sizeof(*u32));
        if (!u32)
            return -ENOMEM;
        w->u32 = u32;
        w->u32_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        w->u32[i] = levels[i];
    return lake__rle_encode(w->u32, n, lake__bit_width((uint32_t)max_level), out);
}

/* Levels of a v1 page: each stream prefixed with its 4-byte length. */
static int
encode_levels_v1(lake_parquet_writer *w, const uint16_t *levels, size_t n, int max_level,
                 lb_buf *out)
{
    size_t at = out->len;
    if (lb_buf_append(out, "\0\0\0\0", 4))
        return -ENOMEM;
    int rc = encode_levels(w, levels, n, max_level, out);
    if (rc)
        return rc;
    size_t len = out->len - at - 4;
    if (len > INT32_MAX)
        return LB_ETOOBIG;
    lake__le32((uint8_t *)out->data + at, (uint32_t)len);
    return 0;
}

static void
reset_page(column *c)
{
    c->nlevels = 0;
    c->page_values = 0;
    c->page_rows = 0;
    c->nindices = 0;
    c->values.len = VALUES_HEADROOM; /* allocated with the column */
    c->values.data[c->values.len] = '\0';
}

/* Whether the dictionary page plus indices_len bytes of indices are smaller
 * than the PLAIN values of the page being filled. */
static bool
dict_pays(const column *c, size_t indices_len)
{
    size_t prefix = c->physical == PT_BYTE_ARRAY ? 4 : 0;
    size_t plain = 0;
    for (size_t k = 0; k < c->nindices; k++)
        plain += prefix + c->dict.entries[c->indices[k]].len;
    return indices_len + c->dict.plain.len < plain;
}

#define CHUNK_MIN_BYTES ((size_t)64 << 10)
#define HUGE_CHUNK_BYTES ((size_t)4 << 20)

/* Room for n more bytes in b. */
static int
chunk_reserve(chunk_buf *b, size_t n)
{
    if (n <= b->cap - b->len)
        return 0;
    size_t cap = b->cap ? b->cap : CHUNK_MIN_BYTES;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    void *p = b->data ? mremap(b->data, b->cap, cap, MREMAP_MAYMOVE)
                      : mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    if (cap >= HUGE_CHUNK_BYTES)
        (void)madvise(p, cap, MADV_HUGEPAGE); /* only a hint: fine if refused */
    b->data = p;
    b->cap = cap;
    return 0;
}

static void
chunk_free(chunk_buf *b)
{
    if (b->data)
        munmap(b->data, b->cap);
    memset(b, 0, sizeof(*b));
}

/* Below the configured level, the one a chunk's first page also tries. */
#define FAST_ZSTD_LEVEL (-1)

/*
 * Append the compressed form of a data page of c to out. With ZSTD and
 * zstd_trial, the first page of a chunk is compressed at the configured
 * level and at FAST_ZSTD_LEVEL too; if the fast level does at least as
 * well, the page and the rest of the chunk use it. Some data (dense numbers, counters)
 * compresses as small at the fast level, at a fraction of the time; the
 * configured level stays the most effort spent.
 */
static int
compress_page(lake_parquet_writer *w, column *c, const void *src, size_t n, lb_buf *out)
{
    if (c->zstd_level != 0 || w->opts.codec != LAKE_CODEC_ZSTD || !w->opts.zstd_trial)
        return lake__compress_at(w->comp, c->zstd_level, src, n, out);
    size_t at = out->len;
    int rc = lake__compress_at(w->comp, 0, src, n, out);
    if (rc)
        return rc;
    int level = lake__compressor_level(w->comp);
    c->zstd_level = level;
    if (level <= FAST_ZSTD_LEVEL)
        return 0;
    lb_buf_reset(&w->trial);
    if ((rc = lake__compress_at(w->comp, FAST_ZSTD_LEVEL, src, n, &w->trial)) != 0)
        return rc;
    if (w->trial.len <= out->len - at) {
        out->len = at;
        if (lb_buf_append(out, w->trial.data, w->trial.len))
            return -ENOMEM;
        c->zstd_level = FAST_ZSTD_LEVEL;
    }
    return 0;
}

/* Close the page being filled: encode, compress, append to the chunk. */
static int
flush_page(lake_parquet_writer *w, column *c)
{
    if (c->nlevels == 0)
        return 0;
    bool v2 = w->opts.page_version == 2;
    /* A page without values (all null) refers to no dictionary entry. */
    bool dict_page = c->use_dict && c->page_values > 0;
    lb_buf *levels = &w->levels, *packed = &w->packed, *page = &w->page, *hdr = &w->header;
    lb_buf_reset(levels);
    lb_buf_reset(packed);
    lb_buf_reset(page);
    lb_buf_reset(hdr);
    int rc = 0;

    /* Levels: repetition first, then definition. */
    size_t rep_len = 0, def_len = 0;
    if (c->max_rep > 0) {
        rc = v2 ? encode_levels(w, c->reps, c->nlevels, c->max_rep, levels)
                : encode_levels_v1(w, c->reps, c->nlevels, c->max_rep, levels);
        if (rc)
            return rc;
        rep_len = levels->len;
    }
    if (c->max_def > 0) {
        rc = v2 ? encode_levels(w, c->defs, c->nlevels, c->max_def, levels)
                : encode_levels_v1(w, c->defs, c->nlevels, c->max_def, levels);
        if (rc)
            return rc;
        def_len = levels->len - rep_len;
    }

    /* Values: dictionary indices (bit width byte + hybrid runs) or PLAIN. */
    lb_buf plain = {c->values.data + VALUES_HEADROOM, c->values.len - VALUES_HEADROOM, 0};
    const lb_buf *values = &plain;
    if (dict_page) {
        assert(plain.len == 0 && c->nindices == c->page_values);
        int width = lake__bit_width(c->dict.count ? c->dict.count - 1 : 0);
        if (width == 0)
            width = 1;
        uint8_t wb = (uint8_t)width;
        if (lb_buf_append(packed, &wb, 1))
            return -ENOMEM;
        rc = lake__rle_encode(c->indices, c->nindices, width, packed);
        if (rc)
            return rc;
        values = packed;
        if (c->dict_pages == 0 && !dict_pays(c, packed->len)) {
            /* The chunk's first page shows the dictionary does not pay off
             * (mostly distinct values): PLAIN from here on, no dictionary. */
            if ((rc = dict_fallback(c)) != 0)
                return rc;
            dict_page = false;
            plain = (lb_buf){c->values.data + VALUES_HEADROOM, c->values.len - VALUES_HEADROOM, 0};
            values = &plain;
        }
    }

    size_t uncompressed = levels->len + values->len;
    bool compressed_values = true;
    if (v2) {
        if (lb_buf_append(page, levels->data, levels->len))
            return -ENOMEM;
        if (values->len == 0 && w->opts.codec != LAKE_CODEC_UNCOMPRESSED)
            compressed_values = false; /* nothing to compress: say so */
        else
            rc = compress_page(w, c, values->data, values->len, page);
    } else {
        /* v1 compresses levels and values together: one buffer, unless
         * there are no levels (a required top-level column). */
        if (levels->len == 0) {
            rc = compress_page(w, c, values->data, values->len, page);
        } else if (values == &plain && levels->len <= VALUES_HEADROOM) {
            /* the levels go into the headroom before the values, which
             * then need not be copied after the levels */
            char *at = c->values.data + VALUES_HEADROOM - levels->len;
            memcpy(at, levels->data, levels->len);
            rc = compress_page(w, c, at, levels->len + values->len, page);
        } else {
            if (lb_buf_append(levels, values->data, values->len))
                return -ENOMEM;
            rc = compress_page(w, c, levels->data, levels->len, page);
        }
    }
    if (rc)
        return rc;
    if (uncompressed > INT32_MAX || page->len > INT32_MAX || c->nlevels > INT32_MAX)
        return LB_ETOOBIG;

    lake__thrift t;
    lake__thrift_init(&t, hdr);
    lake__thrift_struct_begin(&t);
    lake__thrift_field_i32(&t, 1, v2 ? PAGE_DATA_V2 : PAGE_DATA);
    lake__thrift_field_i32(&t, 2, (int32_t)uncompressed);
    lake__thrift_field_i32(&t, 3, (int32_t)page->len);
    int32_t encoding = dict_page ? ENC_RLE_DICTIONARY : ENC_PLAIN;
    if (v2) {
        lake__thrift_field_struct(&t, 8);
        lake__thrift_struct_begin(&t);
        lake__thrift_field_i32(&t, 1, (int32_t)c->nlevels);
        lake__thrift_field_i32(&t, 2, (int32_t)(c->nlevels - c->page_values));
        lake__thrift_field_i32(&t, 3, (int32_t)c->page_rows);
        lake__thrift_field_i32(&t, 4, encoding);
        lake__thrift_field_i32(&t, 5, (int32_t)def_len);
        lake__thrift_field_i32(&t, 6, (int32_t)rep_len);
        if (!compressed_values)
            lake__thrift_field_bool(&t, 7, false);
        lake__thrift_struct_end(&t);
    } else {
        lake__thrift_field_struct(&t, 5);
        lake__thrift_struct_begin(&t);
        lake__thrift_field_i32(&t, 1, (int32_t)c->nlevels);
        lake__thrift_field_i32(&t, 2, encoding);
        lake__thrift_field_i32(&t, 3, ENC_RLE);
        lake__thrift_field_i32(&t, 4, ENC_RLE);
        lake__thrift_struct_end(&t);
    }
    lake__thrift_struct_end(&t);
    rc = lake__thrift_error(&t);
    if (rc)
        return rc;
    if ((rc = chunk_reserve(&c->chunk, hdr->len + page->len)) != 0)
        return rc;
    memcpy(c->chunk.data + c->chunk.len, hdr->data, hdr->len);
    memcpy(c->chunk.data + c->chunk.len + hdr->len, page->data, page->len);
    c->chunk.len += hdr->len + page->len;
    c->chunk_uncompressed += (int64_t)(hdr->len + uncompressed);
    if (dict_page)
        c->dict_pages++;
    else
        c->plain_pages++;
    reset_page(c);
    return 0;
}

/* ---- row groups ------------------------------------------------------------ */

static int
sink_write(lake_parquet_writer *w, const void *bytes, size_t n)
{
    if (n == 0)
        return 0;
    int rc = w->sink(w->sink_arg, bytes, n);
    if (rc)
        return rc;
    w->offset += n;
    return 0;
}

static int
put_statistics(lake_parquet_writer *w, lake__thrift *t, const column *c, const col_stats *s)
{
    lb_buf min = LB_BUF_INIT, max = LB_BUF_INIT;
    bool min_exact, max_exact;
    int bounds = stats_bounds(w, c, s, &min, &max, &min_exact, &max_exact);
    if (bounds < 0) {
        lb_buf_free(&min);
        lb_buf_free(&max);
        return bounds;
    }
    /* The deprecated min/max are defined by signed comparison: they agree
     * with the type order only for these. */
    bool legacy = bounds && c->order != ORD_BYTES && c->order != ORD_DECIMAL;
    lake__thrift_struct_begin(t);
    if (legacy) {
        lake__thrift_field_binary(t, 1, max.data, max.len);
        lake__thrift_field_binary(t, 2, min.data, min.len);
    }
    lake__thrift_field_i64(t, 3, s->null_count);
    if (bounds) {
        lake__thrift_field_binary(t, 5, max.data, max.len);
        lake__thrift_field_binary(t, 6, min.data, min.len);
        lake__thrift_field_bool(t, 7, max_exact);
        lake__thrift_field_bool(t, 8, min_exact);
    }
    if (c->order == ORD_FLOAT || c->order == ORD_DOUBLE)
        lake__thrift_field_i64(t, 9, s->nan_count);
    lake__thrift_struct_end(t);
    lb_buf_free(&min);
    lb_buf_free(&max);
    return 0;
}

static void
put_encoding_stats(lake__thrift *t, int page_type, int encoding, int count)
{
    lake__thrift_struct_begin(t);
    lake__thrift_field_i32(t, 1, page_type);
    lake__thrift_field_i32(t, 2, encoding);
    lake__thrift_field_i32(t, 3, count);
    lake__thrift_struct_end(t);
}

/* Write one column chunk to the sink and its ColumnChunk to t. */
static int
write_chunk(lake_parquet_writer *w, column *c, lake__thrift *t, int64_t *uncompressed,
            int64_t *compressed)
{
    bool v2 = w->opts.page_version == 2;
    bool has_dict = c->dict_pages > 0;
    int64_t dict_offset = (int64_t)w->offset;
    int64_t dict_uncompressed = 0, dict_compressed = 0;
    int rc;
    if (has_dict) {
        lb_buf *page = &w->page, *hdr = &w->header;
        lb_buf_reset(page);
        lb_buf_reset(hdr);
        rc = lake__compress(w->comp, c->dict.plain.data, c->dict.plain.len, page);
        if (rc)
            return rc;
        if (c->dict.plain.len > INT32_MAX || page->len > INT32_MAX)
            return LB_ETOOBIG;
        lake__thrift h;
        lake__thrift_init(&h, hdr);
        lake__thrift_struct_begin(&h);
        lake__thrift_field_i32(&h, 1, PAGE_DICTIONARY);
        lake__thrift_field_i32(&h, 2, (int32_t)c->dict.plain.len);
        lake__thrift_field_i32(&h, 3, (int32_t)page->len);
        lake__thrift_field_struct(&h, 7);
        lake__thrift_struct_begin(&h);
        lake__thrift_field_i32(&h, 1, (int32_t)c->dict.count);
        lake__thrift_field_i32(&h, 2, ENC_PLAIN);
        lake__thrift_struct_end(&h);
        lake__thrift_struct_end(&h);
        if ((rc = lake__thrift_error(&h)) != 0)
            return rc;
        if ((rc = sink_write(w, hdr->data, hdr->len)) != 0 ||
            (rc = sink_write(w, page->data, page->len)) != 0)
            return rc;
        dict_uncompressed = (int64_t)(hdr->len + c->dict.plain.len);
        dict_compressed = (int64_t)(hdr->len + page->len);
    }
    int64_t data_offset = (int64_t)w->offset;
    if ((rc = sink_write(w, c->chunk.data, c->chunk.len)) != 0)
        return rc;
    int64_t total_uncompressed = dict_uncompressed + c->chunk_uncompressed;
    int64_t total_compressed = dict_compressed + (int64_t)c->chunk.len;

    lake__thrift_struct_begin(t); /* ColumnChunk */
    lake__thrift_field_i64(t, 2, 0);
    lake__thrift_field_struct(t, 3);
    lake__thrift_struct_begin(t); /* ColumnMetaData */
    lake__thrift_field_i32(t, 1, c->physical);
    int encodings[3], nenc = 0;
    if (has_dict || c->plain_pages)
        encodings[nenc++] = ENC_PLAIN;
    if (c->max_def > 0 || c->max_rep > 0)
        encodings[nenc++] = ENC_RLE;
    if (has_dict)
        encodings[nenc++] = ENC_RLE_DICTIONARY;
    lake__thrift_field_list(t, 2, LAKE__TT_I32, (size_t)nenc);
    for (int i = 0; i < nenc; i++)
        lake__thrift_i32(t, encodings[i]);
    lake__thrift_field_list(t, 3, LAKE__TT_BINARY, (size_t)c->nparts);
    for (int i = 0; i < c->nparts; i++)
        lake__thrift_binary(t, c->parts[i], strlen(c->parts[i]));
    lake__thrift_field_i32(t, 4, w->opts.codec);
    lake__thrift_field_i64(t, 5, c->chunk_stats.num_values);
    lake__thrift_field_i64(t, 6, total_uncompressed);
    lake__thrift_field_i64(t, 7, total_compressed);
    lake__thrift_field_i64(t, 9, data_offset);
    if (has_dict)
        lake__thrift_field_i64(t, 11, dict_offset);
    lake__thrift_field_struct(t, 12);
    if ((rc = put_statistics(w, t, c, &c->chunk_stats)) != 0)
        return rc;
    int data_type = v2 ? PAGE_DATA_V2 : PAGE_DATA;
    lake__thrift_field_list(t, 13, LAKE__TT_STRUCT,
                            (size_t)(has_dict + (c->dict_pages > 0) + (c->plain_pages > 0)));
    if (has_dict)
        put_encoding_stats(t, PAGE_DICTIONARY, ENC_PLAIN, 1);
    if (c->dict_pages > 0)
        put_encoding_stats(t, data_type, ENC_RLE_DICTIONARY, c->dict_pages);
    if (c->plain_pages > 0)
        put_encoding_stats(t, data_type, ENC_PLAIN, c->plain_pages);
    lake__thrift_struct_end(t); /* ColumnMetaData */
    lake__thrift_struct_end(t); /* ColumnChunk */

    *uncompressed = total_uncompressed;
    *compressed = total_compressed;
    c->file_uncompressed += total_uncompressed;
    c->file_compressed += total_compressed;
    return stats_merge(c, &c->file_stats, &c->chunk_stats);
}

static void
reset_chunk(lake_parquet_writer *w, column *c)
{
    c->chunk.len = 0;
    c->chunk_uncompressed = 0;
    c->dict_pages = c->plain_pages = 0;
    dict_clear(&c->dict);
    c->use_dict = w->opts.dictionary && c->physical != PT_BOOLEAN;
    c->zstd_level = 0;
    stats_reset(&c->chunk_stats);
}

static int
flush_row_group(lake_parquet_writer *w)
{
    if (w->group_rows == 0)
        return 0;
    int rc;
    for (int i = 0; i < w->ncols; i++)
        if ((rc = flush_page(w, &w->cols[i])) != 0)
            return die(w, rc, "page");

    lake__thrift t;
    lake__thrift_init(&t, &w->row_groups);
    lake__thrift_struct_begin(&t); /* RowGroup */
    lake__thrift_field_list(&t, 1, LAKE__TT_STRUCT, (size_t)w->ncols);
    int64_t first_offset = (int64_t)w->offset;
    int64_t group_uncompressed = 0, group_compressed = 0;
    for (int i = 0; i < w->ncols; i++) {
        int64_t u, z;
        if ((rc = write_chunk(w, &w->cols[i], &t, &u, &z)) != 0)
            return die(w, rc, "column chunk");
        group_uncompressed += u;
        group_compressed += z;
        reset_chunk(w, &w->cols[i]);
    }
    lake__thrift_field_i64(&t, 2, group_uncompressed);
    lake__thrift_field_i64(&t, 3, w->group_rows);
    lake__thrift_field_i64(&t, 5, first_offset);
    lake__thrift_field_i64(&t, 6, group_compressed);
    if (w->num_row_groups <= INT16_MAX) /* the optional ordinal is an i16 */
        lake__thrift_field_i16(&t, 7, (int16_t)w->num_row_groups);
    lake__thrift_struct_end(&t);
    if ((rc = lake__thrift_error(&t)) != 0)
        return die(w, rc, "row group metadata");
    w->num_row_groups++;
    w->group_rows = 0;
    return 0;
}

/* After a row: close full pages, and write the row group once it is full. */
static int
after_row(lake_parquet_writer *w)
{
    size_t buffered = 0;
    for (int i = 0; i < w->ncols; i++) {
        column *c = &w->cols[i];
        /* Shredding gave every leaf exactly one row start per row. */
        assert(c->row_starts == w->rows);
        size_t footprint = page_footprint(c);
        if (footprint >= w->opts.page_bytes || c->nlevels >= PAGE_MAX_LEVELS) {
            int rc = flush_page(w, c);
            if (rc)
                return die(w, rc, "page");
            footprint = page_footprint(c);
        }
        buffered += c->chunk.len + footprint + c->dict.plain.len;
    }
    if (buffered >= w->opts.row_group_bytes)
        return flush_row_group(w);
    return 0;
}

/* ---- rows by column -------------------------------------------------------- */

/* Close the page being filled if it reached its size. */
static int
page_check(lake_parquet_writer *w, column *c)
{
    if (page_footprint(c) >= w->opts.page_bytes || c->nlevels >= PAGE_MAX_LEVELS)
        return flush_page(w, c);
    return 0;
}

/*
 * How many of the n values at v to add to a flat column before looking at
 * the page size again: as many as surely keep the page below page_bytes
 * except perhaps for the last one, so that the page ends after the same
 * value as it would row by row. (A dictionary falling back to PLAIN in the
 * middle can make a page end a little later.)
 */
static size_t
flat_run(const lake_parquet_writer *w, const column *c, const lake_value *v, size_t n)
{
    size_t footprint = page_footprint(c);
    size_t room = footprint < w->opts.page_bytes ? w->opts.page_bytes - footprint : 1;
    size_t level = c->max_def > 0 ? sizeof(uint16_t) : 0;
    size_t m = n < RUN_VALUES ? n : RUN_VALUES;
    if (c->nlevels + m > PAGE_MAX_LEVELS)
        m = PAGE_MAX_LEVELS > c->nlevels ? PAGE_MAX_LEVELS - c->nlevels : 1;
    if (c->physical == PT_BYTE_ARRAY) {
        /* The most a value adds: its level and 4 bytes of length or index,
         * and its bytes unless they become an index. */
        size_t grow = 0;
        for (size_t i = 0; i < m; i++) {
            grow += level + 4;
            if (!c->use_dict && v[i].kind != LAKE_NULL)
                grow += v[i].u.bytes.len;
            if (grow >= room)
                return i + 1;
        }
        return m;
    }
    size_t per_value = level + (c->width > 4 ? (size_t)c->width : 4);
    size_t fit = (room - 1) / per_value + 1; /* the first `fit - 1` stay below */
    return fit < m ? fit : m;
}

/* Append n rows of a top-level primitive field (one leaf, no repetition):
 * levels and values a run at a time, closing pages as they fill. */
static int
append_flat(lake_parquet_writer *w, column *c, const lake_value *v, size_t n)
{
    assert(c->max_rep == 0 && c->max_def <= 1);
    while (n > 0) {
        size_t m = flat_run(w, c, v, n);
        assert(m >= 1 && m <= n);
        int rc = reserve_levels(c, m);
        if (rc)
            return rc;
        size_t nulls = 0;
        if (c->max_def > 0) {
            uint16_t *defs = c->defs + c->nlevels;
            for (size_t i = 0; i < m; i++) {
                defs[i] = v[i].kind != LAKE_NULL;
                nulls += v[i].kind == LAKE_NULL;
            }
        }
        c->nlevels += m;
        c->page_rows += m;
        c->row_starts += (int64_t)m;
        c->chunk_stats.num_values += (int64_t)m;
        c->chunk_stats.null_count += (int64_t)nulls;
        if ((rc = append_values(w, c, v, m)) != 0 || (rc = page_check(w, c)) != 0)
            return rc;
        v += m;
        n -= m;
    }
    return 0;
}

/* Whether top-level field id is a LIST of a primitive element. */
static bool
flat_list(const lake_parquet_writer *w, int id)
{
    const lake__node *n = w->info[id].node;
    return n->type == LAKE_TYPE_LIST && !lake__type_is_group(w->info[n->children[0]].node->type);
}

/*
 * Append n rows of a top-level LIST of a primitive element (flat_list()):
 * the levels shred() would give, each row's elements as one run of
 * values (a list's items are contiguous), and the page checked after each
 * row, as row by row.
 */
static int
append_list(lake_parquet_writer *w, int id, const lake_value *v, size_t n)
{
    const node_info *ni = &w->info[id];
    column *c = &w->cols[ni->first_col];
    assert(ni->ncols == 1 && c->max_rep == ni->list_rep && c->max_def >= 1);
    int present = ni->node->required ? 0 : 1; /* def of a list that is there */
    for (size_t r = 0; r < n; r++) {
        int rc;
        size_t m = v[r].kind == LAKE_LIST ? v[r].u.list.count : 0;
        if (m == 0) {
            /* NULL (def 0), or empty (the list's def) */
            rc = add_null(c, 0, v[r].kind == LAKE_NULL ? 0 : present);
        } else if ((rc = reserve_levels(c, m)) == 0) {
            const lake_value *items = v[r].u.list.items;
            uint16_t *defs = c->defs + c->nlevels, *reps = c->reps + c->nlevels;
            size_t nulls = 0;
            for (size_t i = 0; i < m; i++) {
                bool null = items[i].kind == LAKE_NULL;
                reps[i] = (uint16_t)(i ? ni->list_rep : 0);
                defs[i] = (uint16_t)(null ? c->max_def - 1 : c->max_def);
                nulls += null;
            }
            c->nlevels += m;
            c->page_rows++;
            c->row_starts++;
            c->chunk_stats.num_values += (int64_t)m;
            c->chunk_stats.null_count += (int64_t)nulls;
            rc = append_values(w, c, items, m);
        }
        if (rc || (rc = page_check(w, c)) != 0)
            return rc;
    }
    return 0;
}

/*
 * Check the n values at v of top-level field id: the index of the first
 * that does not fit (with the writer's message set), or n. The loops only
 * let through what check_value() accepts; anything else goes to it.
 */
static size_t
check_field(lake_parquet_writer *w, int id, const lake_value *v, size_t n)
{
    const lake__node *node = w->info[id].node;
    lake_value_kind want = kind_for(node->type);
    lake_value_kind null_ok = node->required ? want : LAKE_NULL;
    int64_t lo = INT64_MIN, hi = INT64_MAX;
    switch (node->type) {
    case LAKE_TYPE_INT8:
        lo = INT8_MIN, hi = INT8_MAX;
        goto ints;
    case LAKE_TYPE_INT16:
        lo = INT16_MIN, hi = INT16_MAX;
        goto ints;
    case LAKE_TYPE_INT32:
    case LAKE_TYPE_DATE:
        lo = INT32_MIN, hi = INT32_MAX;
        goto ints;
    case LAKE_TYPE_INT64:
    case LAKE_TYPE_TIMESTAMP:
    case LAKE_TYPE_TIMESTAMPTZ:
    ints:
        for (size_t i = 0; i < n; i++) {
            if (v[i].kind == LAKE_INT ? v[i].u.i >= lo && v[i].u.i <= hi : v[i].kind == null_ok)
                continue;
            if (check_value(w, id, &v[i], 0))
                return i;
        }
        return n;
    case LAKE_TYPE_BOOLEAN:
    case LAKE_TYPE_FLOAT:
    case LAKE_TYPE_DOUBLE:
        for (size_t i = 0; i < n; i++) {
            if (v[i].kind == want || v[i].kind == null_ok)
                continue;
            if (check_value(w, id, &v[i], 0))
                return i;
        }
        return n;
    case LAKE_TYPE_DECIMAL: {
        lake_int128 limit = w->info[id].decimal_limit;
        for (size_t i = 0; i < n; i++) {
            if (v[i].kind == LAKE_DECIMAL ? v[i].u.dec < limit && v[i].u.dec > -limit
                                          : v[i].kind == null_ok)
                continue;
            if (check_value(w, id, &v[i], 0))
                return i;
        }
        return n;
    }
    case LAKE_TYPE_STRING:
    case LAKE_TYPE_JSON:
        for (size_t i = 0; i < n; i++) {
            if (v[i].kind == LAKE_BYTES && v[i].u.bytes.len <= MAX_VALUE_BYTES &&
                (v[i].u.bytes.ptr || !v[i].u.bytes.len) &&
                (w->opts.trusted_utf8 ||
                 lake__utf8_valid(v[i].u.bytes.ptr, v[i].u.bytes.len, NULL)))
                continue;
            if (v[i].kind == null_ok && v[i].kind == LAKE_NULL)
                continue;
            if (check_value(w, id, &v[i], 0))
                return i;
        }
        return n;
    case LAKE_TYPE_LIST:
        if (!lake__type_is_group(w->info[node->children[0]].node->type)) {
            /* a list of a primitive: its items are checked as a column */
            for (size_t i = 0; i < n; i++) {
                if (v[i].kind == LAKE_LIST && (v[i].u.list.items || !v[i].u.list.count) &&
                    check_field(w, node->children[0], v[i].u.list.items, v[i].u.list.count) ==
                        v[i].u.list.count)
                    continue;
                if (check_value(w, id, &v[i], 0))
                    return i;
            }
            return n;
        }
        __attribute__((fallthrough));
    default:
        for (size_t i = 0; i < n; i++)
            if (check_value(w, id, &v[i], 0))
                return i;
        return n;
    }
}

/* Append n rows, already checked: row r's field k is columns[k][first + r]. */
static int
append_rows(lake_parquet_writer *w, const lake_value *const *columns, size_t first, size_t n)
{
    const lake__node *root = lake__schema_node(w->schema, LAKE_SCHEMA_ROOT);
    for (int k = 0; k < root->nchildren; k++) {
        int id = root->children[k];
        const node_info *ni = &w->info[id];
        const lake_value *v = columns[k] + first;
        int rc = 0;
        if (!lake__type_is_group(ni->node->type)) {
            rc = append_flat(w, &w->cols[ni->first_col], v, n);
        } else if (flat_list(w, id)) {
            rc = append_list(w, id, v, n);
        } else {
            for (size_t r = 0; r < n && rc == 0; r++) {
                rc = shred(w, id, &v[r], 0, 0);
                for (int j = 0; j < ni->ncols && rc == 0; j++)
                    rc = page_check(w, &w->cols[ni->first_col + j]);
            }
        }
        if (rc)
            return die(w, rc, "rows");
    }
    w->rows += (int64_t)n;
    w->group_rows += (int64_t)n;
    return after_row(w);
}

/* ---- footer ----------------------------------------------------------------- */

static void
put_logical_type(lake__thrift *t, const lake__node *n)
{
    int16_t which = 0;
    switch (n->type) {
    case LAKE_TYPE_STRING:
        which = 1;
        break;
    case LAKE_TYPE_LIST:
        which = 3;
        break;
    case LAKE_TYPE_DECIMAL:
    case LAKE_TYPE_TIME:
    case LAKE_TYPE_TIMESTAMP:
    case LAKE_TYPE_TIMESTAMPTZ:
    case LAKE_TYPE_INT8:
    case LAKE_TYPE_INT16:
        which = -1; /* a struct with parameters, below */
        break;
    case LAKE_TYPE_DATE:
        which = 6;
        break;
    case LAKE_TYPE_JSON:
        which = 12;
        break;
    case LAKE_TYPE_UUID:
        which = 14;
        break;
    default:
        return; /* no logical type */
    }
    lake__thrift_field_struct(t, 10);
    lake__thrift_struct_begin(t); /* LogicalType union */
    if (which > 0) {
        lake__thrift_field_empty_struct(t, which);
    } else if (n->type == LAKE_TYPE_DECIMAL) {
        lake__thrift_field_struct(t, 5);
        lake__thrift_struct_begin(t);
        lake__thrift_field_i32(t, 1, n->scale);
        lake__thrift_field_i32(t, 2, n->precision);
        lake__thrift_struct_end(t);
    } else if (n->type == LAKE_TYPE_INT8 || n->type == LAKE_TYPE_INT16) {
        lake__thrift_field_struct(t, 10);
        lake__thrift_struct_begin(t);
        lake__thrift_field_i8(t, 1, n->type == LAKE_TYPE_INT8 ? 8 : 16);
        lake__thrift_field_bool(t, 2, true);
        lake__thrift_struct_end(t);
    } else {
        /* TIME (7) or TIMESTAMP (8): isAdjustedToUTC, unit = MICROS. */
        lake__thrift_field_struct(t, n->type == LAKE_TYPE_TIME ? 7 : 8);
        lake__thrift_struct_begin(t);
        lake__thrift_field_bool(t, 1, n->type == LAKE_TYPE_TIMESTAMPTZ);
        lake__thrift_field_struct(t, 2);
        lake__thrift_struct_begin(t); /* TimeUnit union */
        lake__thrift_field_empty_struct(t, 2);
        lake__thrift_struct_end(t);
        lake__thrift_struct_end(t);
    }
    lake__thrift_struct_end(t);
}

static void
put_schema_elements(lake__thrift *t, const lake_schema *s, int id)
{
    const lake__node *n = lake__schema_node(s, id);
    lake__thrift_struct_begin(t);
    if (!lake__type_is_group(n->type)) {
        lake__thrift_field_i32(t, 1, physical_type(n));
        int32_t len = type_length(n);
        if (len)
            lake__thrift_field_i32(t, 2, len);
    }
    lake__thrift_field_i32(t, 3, n->required ? REP_REQUIRED : REP_OPTIONAL);
    lake__thrift_field_string(t, 4, lake__node_physical(n));
    if (lake__type_is_group(n->type))
        lake__thrift_field_i32(t, 5, n->nchildren);
    int ct = converted_type(n);
    if (ct != CT_NONE)
        lake__thrift_field_i32(t, 6, ct);
    if (n->type == LAKE_TYPE_DECIMAL) {
        lake__thrift_field_i32(t, 7, n->scale);
        lake__thrift_field_i32(t, 8, n->precision);
    }
    if (n->field_id > 0)
        lake__thrift_field_i32(t, 9, n->field_id);
    put_logical_type(t, n);
    lake__thrift_struct_end(t);

    if (n->type == LAKE_TYPE_LIST) {
        lake__thrift_struct_begin(t);
        lake__thrift_field_i32(t, 3, REP_REPEATED);
        lake__thrift_field_string(t, 4, list_part);
        lake__thrift_field_i32(t, 5, 1);
        lake__thrift_struct_end(t);
    }
    for (int i = 0; i < n->nchildren; i++)
        put_schema_elements(t, s, n->children[i]);
}

static int
write_footer(lake_parquet_writer *w)
{
    lb_buf footer = LB_BUF_INIT;
    lake__thrift t;
    lake__thrift_init(&t, &footer);
    const lake__node *root = lake__schema_node(w->schema, LAKE_SCHEMA_ROOT);

    lake__thrift_struct_begin(&t); /* FileMetaData */
    lake__thrift_field_i32(&t, 1, 1);
    lake__thrift_field_list(&t, 2, LAKE__TT_STRUCT, (size_t)(w->nnodes + w->nlists));
    lake__thrift_struct_begin(&t);
    lake__thrift_field_string(&t, 4, "schema");
    lake__thrift_field_i32(&t, 5, root->nchildren);
    lake__thrift_struct_end(&t);
    for (int i = 0; i < root->nchildren; i++)
        put_schema_elements(&t, w->schema, root->children[i]);
    lake__thrift_field_i64(&t, 3, w->rows);
    lake__thrift_field_list(&t, 4, LAKE__TT_STRUCT, (size_t)w->num_row_groups);
    lake__thrift_raw(&t, w->row_groups.data, w->row_groups.len);
    if (w->nkv) {
        lake__thrift_field_list(&t, 5, LAKE__TT_STRUCT, w->nkv);
        for (size_t i = 0; i < w->nkv; i++) {
            lake__thrift_struct_begin(&t);
            lake__thrift_field_string(&t, 1, w->kv_keys[i]);
            lake__thrift_field_string(&t, 2, w->kv_values[i]);
            lake__thrift_struct_end(&t);
        }
    }
    lake__thrift_field_string(&t, 6, w->created_by);
    lake__thrift_field_list(&t, 7, LAKE__TT_STRUCT, (size_t)w->ncols);
    for (int i = 0; i < w->ncols; i++) {
        lake__thrift_struct_begin(&t);          /* ColumnOrder union */
        lake__thrift_field_empty_struct(&t, 1); /* TYPE_ORDER */
        lake__thrift_struct_end(&t);
    }
    lake__thrift_struct_end(&t);
    int rc = lake__thrift_error(&t);
    if (rc == 0 && footer.len > UINT32_MAX)
        rc = LB_ETOOBIG;
    if (rc == 0)
        rc = sink_write(w, footer.data, footer.len);
    if (rc == 0) {
        uint8_t tail[8];
        lake__le32(tail, (uint32_t)footer.len);
        memcpy(tail + 4, PARQUET_MAGIC, 4);
        rc = sink_write(w, tail, sizeof(tail));
    }
    lb_buf_free(&footer);
    return rc;
}

/* ---- public API --------------------------------------------------------------- */

void
lake_parquet_options_init(lake_parquet_options *o)
{
    memset(o, 0, sizeof(*o));
    o->codec = LAKE_CODEC_ZSTD;
    o->page_version = 1;
    o->page_bytes = 1 << 20;
    o->row_group_bytes = (size_t)128 << 20;
    o->zstd_trial = true;
    o->dictionary = true;
    o->dictionary_bytes = 1 << 20;
    o->stats_bytes = 64;
}

static int
fd_sink(void *arg, const void *bytes, size_t n)
{
    return lb_write_all(*(int *)arg, bytes, n);
}

static int
check_options(lake_parquet_options *o, char *err, size_t cap)
{
    if (o->codec != LAKE_CODEC_UNCOMPRESSED && o->codec != LAKE_CODEC_SNAPPY &&
        o->codec != LAKE_CODEC_ZSTD) {
        snprintf(err, cap, "unsupported parquet codec %d", (int)o->codec);
        return LB_EBADCONFIG;
    }
    if (o->page_version == 0)
        o->page_version = 1;
    if (o->page_version != 1 && o->page_version != 2) {
        snprintf(err, cap, "parquet data page version %d is not 1 or 2", o->page_version);
        return LB_EBADCONFIG;
    }
    if (o->zstd_level < -7 || o->zstd_level > 22) {
        snprintf(err, cap, "zstd level %d is not in -7..22", o->zstd_level);
        return LB_EBADCONFIG;
    }
    if (o->page_bytes == 0)
        o->page_bytes = 1 << 20;
    if (o->row_group_bytes == 0)
        o->row_group_bytes = (size_t)128 << 20;
    if (o->dictionary_bytes == 0)
        o->dictionary_bytes = 1 << 20;
    if (o->dictionary_bytes > (size_t)INT32_MAX) {
        snprintf(err, cap, "dictionary limit of %zu bytes is too large", o->dictionary_bytes);
        return LB_EBADCONFIG;
    }
    if (o->stats_bytes == 0)
        o->stats_bytes = 64;
    return 0;
}

static void
free_writer(lake_parquet_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->ncols; i++) {
        column *c = &w->cols[i];
        free(c->path);
        free(c->parts);
        free(c->defs);
        free(c->reps);
        free(c->indices);
        lb_buf_free(&c->values);
        chunk_free(&c->chunk);
        dict_free(&c->dict);
        stats_free(&c->chunk_stats);
        stats_free(&c->file_stats);
    }
    free(w->cols);
    if (w->info)
        for (int i = 0; i < w->nnodes; i++)
            free(w->info[i].path);
    free(w->info);
    for (size_t i = 0; i < w->nkv; i++) {
        free(w->kv_keys[i]);
        free(w->kv_values[i]);
    }
    free(w->kv_keys);
    free(w->kv_values);
    lake__compressor_free(w->comp);
    lb_buf_free(&w->page);
    lb_buf_free(&w->levels);
    lb_buf_free(&w->header);
    lb_buf_free(&w->packed);
    lb_buf_free(&w->trial);
    lb_buf_free(&w->row_groups);
    free(w->u32);
    free(w->created_by);
    if (w->schema)
        lake__schema_release(w->schema);
    free(w);
}

/* Both constructors: sink NULL means "write to fd". */
static int
writer_open(lake_schema *schema, const lake_parquet_options *opts, lake_sink_fn sink,
            void *sink_arg, int fd, lake_parquet_writer **out, lb_err *err)
{
    assert(schema && out);
    int rc = lake_schema_validate(schema);
    if (rc)
        return lb_err_set(err, rc, "%s", lake_schema_error(schema));
    lake_parquet_options o;
    if (opts)
        o = *opts;
    else
        lake_parquet_options_init(&o);
    char why[256];
    if ((rc = check_options(&o, why, sizeof(why))) != 0)
        return lb_err_set(err, rc, "%s", why);

    lake_parquet_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    lake__schema_hold(schema);
    w->schema = schema;
    w->opts = o;
    w->opts.created_by = NULL;
    w->fd = fd;
    w->sink = sink ? sink : fd_sink;
    w->sink_arg = sink ? sink_arg : &w->fd;
    w->created_by = strdup(o.created_by ? o.created_by : LAKE_CREATED_BY);
    w->nnodes = lake__schema_nnodes(schema);
    w->info = calloc((size_t)w->nnodes, sizeof(*w->info));
    int nlists = 0;
    int ncols = count_leaves(schema, LAKE_SCHEMA_ROOT, &nlists);
    w->cols = calloc((size_t)ncols, sizeof(*w->cols));
    w->nlists = nlists;
    if (!w->created_by || !w->info || !w->cols) {
        free_writer(w);
        return -ENOMEM;
    }
    char *parts[64];
    rc = map_node(w, LAKE_SCHEMA_ROOT, 0, 0, parts, 0, NULL);
    if (rc == 0)
        rc = lake__compressor_new(o.codec, o.zstd_level, &w->comp);
    if (rc == 0 && (rc = sink_write(w, PARQUET_MAGIC, 4)) != 0)
        set_error(w, rc, "could not write parquet file: %s", lb_strerror(rc));
    if (rc) {
        lb_err_set(err, rc, "%s", w->error);
        free_writer(w);
        return rc;
    }
    assert(w->ncols == ncols);
    *out = w;
    return 0;
}

int
lake_parquet_writer_restart(lake_parquet_writer *w)
{
    for (int i = 0; i < w->ncols; i++) {
        column *c = &w->cols[i];
        reset_page(c);
        reset_chunk(w, c);
        c->row_starts = 0;
        stats_reset(&c->file_stats);
        c->file_compressed = c->file_uncompressed = 0;
    }
    for (size_t i = 0; i < w->nkv; i++) {
        free(w->kv_keys[i]);
        free(w->kv_values[i]);
    }
    w->nkv = 0;
    lb_buf_reset(&w->row_groups);
    w->num_row_groups = 0;
    w->rows = w->group_rows = 0;
    w->offset = 0;
    w->dead = 0;
    w->closed = false;
    w->error[0] = '\0';
    int rc = sink_write(w, PARQUET_MAGIC, 4);
    return rc ? die(w, rc, "magic") : 0;
}

int
lake_parquet_writer_new(lake_schema *schema, const lake_parquet_options *opts, lake_sink_fn sink,
                        void *sink_arg, lake_parquet_writer **out, lb_err *err)
{
    assert(sink);
    return writer_open(schema, opts, sink, sink_arg, -1, out, err);
}

int
lake_parquet_writer_new_fd(lake_schema *schema, const lake_parquet_options *opts, int fd,
                           lake_parquet_writer **out, lb_err *err)
{
    assert(fd >= 0);
    return writer_open(schema, opts, NULL, NULL, fd, out, err);
}

static int
usable(lake_parquet_writer *w)
{
    if (w->dead)
        return w->dead; /* the message of the first failure stays */
    if (w->closed)
        return set_error(w, -EINVAL, "parquet writer is closed");
    return 0;
}

int
lake_parquet_write_row(lake_parquet_writer *w, const lake_value *fields, size_t nfields)
{
    int rc = usable(w);
    if (rc)
        return rc;
    const lake__node *root = lake__schema_node(w->schema, LAKE_SCHEMA_ROOT);
    if (nfields != (size_t)root->nchildren || (nfields && !fields))
        return set_error(w, LB_EVALUE, "row has %zu values, the schema has %d fields", nfields,
                         root->nchildren);
    for (int i = 0; i < root->nchildren; i++)
        if ((rc = check_value(w, root->children[i], &fields[i], 0)) != 0)
            return rc;
    for (int i = 0; i < root->nchildren; i++)
        if ((rc = shred(w, root->children[i], &fields[i], 0, 0)) != 0)
            return die(w, rc, "row");
    w->rows++;
    w->group_rows++;
    return after_row(w);
}

/* Rows taken from lake_parquet_write_columns() between looks at the row
 * group's size, so that a large call still cuts row groups near their
 * target. */
#define SLICE_ROWS 4096

int
lake_parquet_write_columns(lake_parquet_writer *w, const lake_value *const *columns,
                           size_t ncolumns, size_t nrows)
{
    int rc = usable(w);
    if (rc)
        return rc;
    const lake__node *root = lake__schema_node(w->schema, LAKE_SCHEMA_ROOT);
    if (ncolumns != (size_t)root->nchildren || (ncolumns && !columns))
        return set_error(w, LB_EVALUE, "rows have %zu columns, the schema has %d fields", ncolumns,
                         root->nchildren);
    for (size_t k = 0; k < ncolumns; k++)
        if (nrows && !columns[k])
            return set_error(w, LB_EVALUE, "column \"%s\" has no values",
                             w->info[root->children[k]].path);
    for (size_t first = 0; first < nrows; first += SLICE_ROWS) {
        size_t n = nrows - first < SLICE_ROWS ? nrows - first : SLICE_ROWS;
        /* The rows before the first bad one go in, as row by row. */
        size_t good = n;
        for (int k = 0; k < root->nchildren && good > 0; k++)
            good = check_field(w, root->children[k], columns[k] + first, good);
        if (good > 0 && (rc = append_rows(w, columns, first, good)) != 0)
            return rc;
        if (good < n)
            return LB_EVALUE;
    }
    return 0;
}

int
lake_parquet_flush_row_group(lake_parquet_writer *w)
{
    int rc = usable(w);
    if (rc)
        return rc;
    return flush_row_group(w);
}

int
lake_parquet_set_kv(lake_parquet_writer *w, const char *key, const char *value)
{
    assert(key && value);
    int rc = usable(w);
    if (rc)
        return rc;
    char *v = strdup(value);
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < w->nkv; i++) {
        if (strcmp(w->kv_keys[i], key) == 0) {
            free(w->kv_values[i]);
            w->kv_values[i] = v;
            return 0;
        }
    }
    if (w->nkv == w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap * 2 : 4;
        char **keys = realloc(w->kv_keys, cap * sizeof(*keys));
        if (keys)
            w->kv_keys = keys;
        char **values = realloc(w->kv_values, cap * sizeof(*values));
        if (values)
            w->kv_values = values;
        if (!keys || !values) {
            free(v);
            return -ENOMEM;
        }
        w->kv_cap = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return -ENOMEM;
    }
    w->kv_keys[w->nkv] = k;
    w->kv_values[w->nkv] = v;
    w->nkv++;
    return 0;
}

int64_t
lake_parquet_rows(const lake_parquet_writer *w)
{
    return w->rows;
}

static int
make_stats(lake_parquet_writer *w, lake_parquet_file_stats **out)
{
    lake_parquet_file_stats *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return -ENOMEM;
    fs->num_rows = w->rows;
    fs->num_row_groups = w->num_row_groups;
    fs->file_bytes = w->offset;
    fs->columns = calloc((size_t)w->ncols, sizeof(*fs->columns));
    if (!fs->columns) {
        free(fs);
        return -ENOMEM;
    }
    fs->ncolumns = (size_t)w->ncols;
    for (int i = 0; i < w->ncols; i++) {
        const column *c = &w->cols[i];
        lake_column_stats *cs = &fs->columns[i];
        const col_stats *s = &c->file_stats;
        cs->path = strdup(c->path);
        cs->field_id = lake__schema_node(w->schema, c->node)->field_id;
        cs->type = c->type;
        cs->num_values = s->num_values;
        cs->null_count = s->null_count;
        cs->nan_count = s->nan_count;
        cs->compressed_bytes = c->file_compressed;
        cs->uncompressed_bytes = c->file_uncompressed;
        lb_buf min = LB_BUF_INIT, max = LB_BUF_INIT;
        int bounds = stats_bounds(w, c, s, &min, &max, &cs->min_exact, &cs->max_exact);
        cs->has_bounds = bounds > 0;
        if (cs->has_bounds) {
            cs->min = (uint8_t *)lb_buf_steal(&min, &cs->min_len);
            cs->max = (uint8_t *)lb_buf_steal(&max, &cs->max_len);
        }
        lb_buf_free(&min);
        lb_buf_free(&max);
        if (bounds < 0 || !cs->path || (cs->has_bounds && (!cs->min || !cs->max))) {
            lake_parquet_file_stats_free(fs);
            return -ENOMEM;
        }
    }
    *out = fs;
    return 0;
}

int
lake_parquet_writer_close(lake_parquet_writer *w, lake_parquet_file_stats **stats)
{
    int rc = usable(w);
    if (rc)
        return rc;
    if ((rc = flush_row_group(w)) != 0)
        return rc;
    if ((rc = write_footer(w)) != 0)
        return die(w, rc, "footer");
    w->closed = true;
    if (stats && (rc = make_stats(w, stats)) != 0)
        return set_error(w, rc, "could not collect parquet file statistics: %s", lb_strerror(rc));
    return 0;
}

void
lake_parquet_writer_free(lake_parquet_writer *w)
{
    free_writer(w);
}

const char *
lake_parquet_writer_error(const lake_parquet_writer *w)
{
    return w->error;
}

void
lake_parquet_file_stats_free(lake_parquet_file_stats *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->ncolumns; i++) {
        free(s->columns[i].path);
        free(s->columns[i].min);
        free(s->columns[i].max);
    }
    free(s->columns);
    free(s);
}
