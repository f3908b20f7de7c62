/*
 * test_parquet.c: files from the Parquet writer are read back by two
 * independent readers, DuckDB and the Rust parquet crate (parquet-wasm into
 * Apache Arrow), through lake/tests/parquet_duckdb.mjs and parquet_arrow.mjs.
 * Each test writes rows, renders the rows it wrote in the scripts'
 * canonical text form, and requires both readers to print exactly that.
 * Metadata (schema, field ids, logical types, encodings, codecs, statistics,
 * row groups) is checked through DuckDB's parquet_* table functions.
 *
 * Also: refused input (bad schemas, values that do not fit, NULL into a
 * required column) gets LB_ESCHEMA / LB_EVALUE with a message and leaves
 * the file valid; a failing sink kills the writer; memory stays bounded by
 * a row group; and our files have the structure of a Spark-written Iceberg
 * data file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <jansson.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "parquet.h"
#include "schema.h"
#include "testutil.h"

#include "lake_test.h"
#include "value.h"

static int g_seq;

/* ---- schema helpers --------------------------------------------------- */

static int
add_field(lake_schema *s, int parent, const char *name, int32_t id, lake_type type, bool required)
{
    lake_field f = {.name = name, .field_id = id, .type = type, .required = required};
    int node = -1;
    int rc = lake_schema_add(s, parent, &f, &node);
    if (rc)
        fail_msg("adding \"%s\": %s", name, lake_schema_error(s));
    return node;
}

static int
add_decimal(lake_schema *s, int parent, const char *name, int32_t id, int p, int sc, bool required)
{
    lake_field f = {.name = name,
                    .field_id = id,
                    .type = LAKE_TYPE_DECIMAL,
                    .required = required,
                    .precision = p,
                    .scale = sc};
    int node = -1;
    if (lake_schema_add(s, parent, &f, &node))
        fail_msg("adding \"%s\": %s", name, lake_schema_error(s));
    return node;
}

static int
add_fixed(lake_schema *s, int parent, const char *name, int32_t id, int len, bool required)
{
    lake_field f = {
        .name = name, .field_id = id, .type = LAKE_TYPE_FIXED, .required = required, .length = len};
    int node = -1;
    if (lake_schema_add(s, parent, &f, &node))
        fail_msg("adding \"%s\": %s", name, lake_schema_error(s));
    return node;
}

/* ---- canonical rendering (see parquet_duckdb.mjs) ---------------------- */

static void
render_int128(lb_buf *out, lake_int128 v)
{
    char digits[64];
    int n = 0;
    bool neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
    do {
        digits[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    if (neg)
        lb_buf_append(out, "-", 1);
    while (n)
        lb_buf_append(out, &digits[--n], 1);
}

static void
render_json_string(lb_buf *out, const uint8_t *p, size_t n)
{
    lb_buf_append(out, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        switch (c) {
        case '"':
            lb_buf_append_str(out, "\\\"");
            break;
        case '\\':
            lb_buf_append_str(out, "\\\\");
            break;
        case '\b':
            lb_buf_append_str(out, "\\b");
            break;
        case '\f':
            lb_buf_append_str(out, "\\f");
            break;
        case '\n':
            lb_buf_append_str(out, "\\n");
            break;
        case '\r':
            lb_buf_append_str(out, "\\r");
            break;
        case '\t':
            lb_buf_append_str(out, "\\t");
            break;
        default:
            if (c < 0x20)
                lb_buf_printf(out, "\\u%04x", c);
            else
                lb_buf_append(out, &c, 1);
        }
    }
    lb_buf_append(out, "\"", 1);
}

static void
render_hex(lb_buf *out, const uint8_t *p, size_t n)
{
    lb_buf_append_str(out, "0x");
    for (size_t i = 0; i < n; i++)
        lb_buf_printf(out, "%02x", p[i]);
}

static void
render(lb_buf *out, const lake_schema *s, int id, const lake_value *v)
{
    const lake__node *n = lake__schema_node(s, id);
    if (v->kind == LAKE_NULL) {
        lb_buf_append_str(out, "null");
        return;
    }
    switch (n->type) {
    case LAKE_TYPE_BOOLEAN:
        lb_buf_append_str(out, v->u.b ? "true" : "false");
        return;
    case LAKE_TYPE_FLOAT: {
        if (isnan(v->u.f)) {
            lb_buf_append_str(out, "NaN");
            return;
        }
        uint32_t bits;
        memcpy(&bits, &v->u.f, 4);
        lb_buf_printf(out, "f:%08x", bits);
        return;
    }
    case LAKE_TYPE_DOUBLE: {
        if (isnan(v->u.d)) {
            lb_buf_append_str(out, "NaN");
            return;
        }
        uint64_t bits;
        memcpy(&bits, &v->u.d, 8);
        lb_buf_printf(out, "d:%016llx", (unsigned long long)bits);
        return;
    }
    case LAKE_TYPE_DECIMAL:
        render_int128(out, v->u.dec);
        return;
    case LAKE_TYPE_STRING:
    case LAKE_TYPE_JSON:
        render_json_string(out, v->u.bytes.ptr, v->u.bytes.len);
        return;
    case LAKE_TYPE_UUID:
    case LAKE_TYPE_BINARY:
    case LAKE_TYPE_FIXED:
        render_hex(out, v->u.bytes.ptr, v->u.bytes.len);
        return;
    case LAKE_TYPE_LIST:
        lb_buf_append_str(out, "[");
        for (size_t i = 0; i < v->u.list.count; i++) {
            if (i)
                lb_buf_append_str(out, ",");
            render(out, s, n->children[0], &v->u.list.items[i]);
        }
        lb_buf_append_str(out, "]");
        return;
    case LAKE_TYPE_STRUCT:
        lb_buf_append_str(out, "{");
        for (int i = 0; i < n->nchildren; i++) {
            if (i)
                lb_buf_append_str(out, ",");
            render(out, s, n->children[i], &v->u.list.items[i]);
        }
        lb_buf_append_str(out, "}");
        return;
    default:
        lb_buf_printf(out, "%lld", (long long)v->u.i);
        return;
    }
}

/* ---- writing a file ----------------------------------------------------- */

typedef struct tfile {
    char path[PATH_MAX];
    int fd;
    lake_schema *schema;
    lake_parquet_writer *w;
    lb_buf expected; /* canonical rows written so far */
    int64_t rows;
} tfile;

static void
tf_open(tfile *f, lake_schema *s, const lake_parquet_options *o, const char *name)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "%s/%02d-%s.parquet", g_dir, ++g_seq, name);
    f->fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(f->fd >= 0);
    f->schema = s;
    lb_err err = {0};
    int rc = lake_parquet_writer_new_fd(s, o, f->fd, &f->w, &err);
    if (rc)
        fail_msg("writer for %s: %s (%s)", name, err.message, lb_strerror(rc));
}

static void
tf_row(tfile *f, const lake_value *vals, size_t n)
{
    int rc = lake_parquet_write_row(f->w, vals, n);
    if (rc)
        fail_msg("row %lld of %s: %s", (long long)f->rows, f->path,
                 lake_parquet_writer_error(f->w));
    const lake__node *root = lake__schema_node(f->schema, LAKE_SCHEMA_ROOT);
    for (size_t i = 0; i < n; i++) {
        if (i)
            lb_buf_append_str(&f->expected, " | ");
        render(&f->expected, f->schema, root->children[i], &vals[i]);
    }
    lb_buf_append_str(&f->expected, "\n");
    f->rows++;
}

static void
tf_close(tfile *f, lake_parquet_file_stats **stats)
{
    int rc = lake_parquet_writer_close(f->w, stats);
    if (rc)
        fail_msg("closing %s: %s", f->path, lake_parquet_writer_error(f->w));
    lake_parquet_writer_free(f->w);
    f->w = NULL;
    assert_int_equal(close(f->fd), 0);
}

static void
tf_free(tfile *f)
{
    lb_buf_free(&f->expected);
}

/* ---- the readers ---------------------------------------------------------- */

/* Run lake/tests/<script> <mode> <file>; stdout into out. */
static void
run_script(const char *script, const char *mode, const char *file, lb_buf *out)
{
    char cmd[3 * PATH_MAX];
    char errfile[PATH_MAX];
    snprintf(errfile, sizeof(errfile), "%s/node-stderr.txt", g_dir);
    snprintf(cmd, sizeof(cmd), "node '%s/lake/tests/%s' %s '%s' 2>'%s'", tu_project_root(), script,
             mode, file, errfile);
    lb_buf_reset(out);
    int rc = tu_run(cmd, out);
    if (rc != 0) {
        lb_buf err = LB_BUF_INIT;
        FILE *fp = fopen(errfile, "r");
        char chunk[4096];
        size_t n;
        while (fp && (n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
            lb_buf_append(&err, chunk, n);
        if (fp)
            fclose(fp);
        fail_msg("%s %s %s exited %d:\n%.3000s", script, mode, file, rc, err.data ? err.data : "");
    }
}

static void
compare_text(const char *reader, const lb_buf *want, const lb_buf *got)
{
    if (want->len == got->len && (want->len == 0 || memcmp(want->data, got->data, want->len) == 0))
        return;
    /* Show the first line that differs. */
    const char *a = want->data ? want->data : "", *b = got->data ? got->data : "";
    int line = 1;
    while (*a && *a == *b) {
        if (*a == '\n') {
            line++;
            const char *na = a + 1, *nb = b + 1;
            if (strchr(na, '\n') && strchr(nb, '\n') &&
                strncmp(na, nb, (size_t)(strchr(na, '\n') - na + 1)) != 0) {
                a = na, b = nb;
                break;
            }
        }
        a++, b++;
    }
    while (a > want->data && a[-1] != '\n')
        a--;
    while (b > got->data && b[-1] != '\n')
        b--;
    fail_msg("%s read something else at line %d:\n want: %.400s\n  got: %.400s", reader, line, a,
             b);
}

/* Both readers must print exactly the rows we wrote. */
static void
check_rows(const tfile *f)
{
    lb_buf got = LB_BUF_INIT;
    run_script("parquet_duckdb.mjs", "rows", f->path, &got);
    compare_text("duckdb", &f->expected, &got);
    run_script("parquet_arrow.mjs", "rows", f->path, &got);
    compare_text("parquet-wasm/arrow", &f->expected, &got);
    lb_buf_free(&got);
}

static json_t *
run_json(const char *script, const char *mode, const char *file)
{
    lb_buf out = LB_BUF_INIT;
    run_script(script, mode, file, &out);
    json_error_t jerr;
    json_t *j = json_loadb(out.data, out.len, 0, &jerr);
    if (!j)
        fail_msg("%s %s: bad JSON: %s", script, mode, jerr.text);
    lb_buf_free(&out);
    return j;
}

static json_t *
duck_meta(const char *file)
{
    return run_json("parquet_duckdb.mjs", "meta", file);
}

static const char *
jstr(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static long long
jint(json_t *obj, const char *key)
{
    const char *s = jstr(obj, key);
    if (s)
        return strtoll(s, NULL, 10);
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        return json_integer_value(v);
    fail_msg("no integer \"%s\"", key);
    return 0;
}

/* The parquet_schema() row of a named element. */
static json_t *
schema_row(json_t *meta, const char *name)
{
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(meta, "schema"), i, row)
    {
        const char *n = jstr(row, "name");
        if (n && strcmp(n, name) == 0)
            return row;
    }
    fail_msg("no schema element \"%s\"", name);
    return NULL;
}

/* DuckDB's type (DESCRIBE) of a top-level column. */
static const char *
duck_type(json_t *meta, const char *name)
{
    size_t i;
    json_t *pair;
    json_array_foreach(json_object_get(meta, "types"), i, pair)
    {
        if (strcmp(json_string_value(json_array_get(pair, 0)), name) == 0)
            return json_string_value(json_array_get(pair, 1));
    }
    fail_msg("no column \"%s\"", name);
    return NULL;
}

static bool
contains(const char *haystack, const char *needle)
{
    return haystack && strstr(haystack, needle);
}

/* ---- sample values -------------------------------------------------------- */

static lake_int128
pow10_i128(int p)
{
    lake_int128 x = 1;
    while (p--)
        x *= 10;
    return x;
}

typedef struct type_case {
    const char *name;
    lake_type type;
    int precision, scale, length;
    const char *duck;    /* DuckDB's type */
    const char *arrow;   /* Arrow's type from parquet-wasm */
    const char *ptype;   /* Parquet physical type */
    const char *conv;    /* converted type, or NULL */
    const char *logical; /* substring of DuckDB's logical_type, or NULL */
} type_case;

static const type_case type_cases[] = {
    {"c_bool", LAKE_TYPE_BOOLEAN, 0, 0, 0, "BOOLEAN", "Bool", "BOOLEAN", NULL, NULL},
    {"c_int8", LAKE_TYPE_INT8, 0, 0, 0, "TINYINT", "Int8", "INT32", "INT_8",
     "IntType(bitWidth=\x08, isSigned=1)"}, /* DuckDB prints the i8 as a char */
    {"c_int16", LAKE_TYPE_INT16, 0, 0, 0, "SMALLINT", "Int16", "INT32", "INT_16",
     "IntType(bitWidth=\x10, isSigned=1)"},
    {"c_int32", LAKE_TYPE_INT32, 0, 0, 0, "INTEGER", "Int32", "INT32", NULL, NULL},
    {"c_int64", LAKE_TYPE_INT64, 0, 0, 0, "BIGINT", "Int64", "INT64", NULL, NULL},
    {"c_float", LAKE_TYPE_FLOAT, 0, 0, 0, "FLOAT", "Float32", "FLOAT", NULL, NULL},
    {"c_double", LAKE_TYPE_DOUBLE, 0, 0, 0, "DOUBLE", "Float64", "DOUBLE", NULL, NULL},
    {"c_dec9", LAKE_TYPE_DECIMAL, 9, 2, 0, "DECIMAL(9,2)", "Decimal[9e+2]", "INT32", "DECIMAL",
     "DecimalType(scale=2, precision=9)"},
    {"c_dec18", LAKE_TYPE_DECIMAL, 18, 4, 0, "DECIMAL(18,4)", "Decimal[18e+4]", "INT64", "DECIMAL",
     "DecimalType(scale=4, precision=18)"},
    {"c_dec20", LAKE_TYPE_DECIMAL, 20, 0, 0, "DECIMAL(20,0)", "Decimal[20e0]",
     "FIXED_LEN_BYTE_ARRAY", "DECIMAL", "DecimalType(scale=0, precision=20)"},
    {"c_dec38", LAKE_TYPE_DECIMAL, 38, 10, 0, "DECIMAL(38,10)", "Decimal[38e+10]",
     "FIXED_LEN_BYTE_ARRAY", "DECIMAL", "DecimalType(scale=10, precision=38)"},
    {"c_date", LAKE_TYPE_DATE, 0, 0, 0, "DATE", "Date32<DAY>", "INT32", "DATE", "DateType"},
    {"c_time", LAKE_TYPE_TIME, 0, 0, 0, "TIME", "Time64<MICROSECOND>", "INT64", "TIME_MICROS",
     "isAdjustedToUTC=0"},
    {"c_ts", LAKE_TYPE_TIMESTAMP, 0, 0, 0, "TIMESTAMP", "Timestamp<MICROSECOND>", "INT64",
     "TIMESTAMP_MICROS", "isAdjustedToUTC=0"},
    {"c_tstz", LAKE_TYPE_TIMESTAMPTZ, 0, 0, 0, "TIMESTAMP WITH TIME ZONE",
     "Timestamp<MICROSECOND, UTC>", "INT64", "TIMESTAMP_MICROS", "isAdjustedToUTC=1"},
    {"c_string", LAKE_TYPE_STRING, 0, 0, 0, "VARCHAR", "Utf8", "BYTE_ARRAY", "UTF8", "StringType"},
    {"c_json", LAKE_TYPE_JSON, 0, 0, 0, "JSON", "Utf8", "BYTE_ARRAY", "JSON", "JsonType"},
    {"c_uuid", LAKE_TYPE_UUID, 0, 0, 0, "UUID", "FixedSizeBinary[16]", "FIXED_LEN_BYTE_ARRAY", NULL,
     "UUIDType"},
    {"c_binary", LAKE_TYPE_BINARY, 0, 0, 0, "BLOB", "Binary", "BYTE_ARRAY", NULL, NULL},
    {"c_fixed", LAKE_TYPE_FIXED, 0, 0, 5, "BLOB", "FixedSizeBinary[5]", "FIXED_LEN_BYTE_ARRAY",
     NULL, NULL},
};
#define NTYPES (sizeof(type_cases) / sizeof(type_cases[0]))

static const char *const strings[] = {
    "",
    "a",
    "h\xc3\xa9llo w\xc3\xb6rld",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88",
    "emoji \xf0\x9f\x8e\x89\xf0\x9f\x9a\x80",
    "quote\" backslash\\ newline\n tab\t ctrl\x01 del\x7f",
    "z",
    "\xf4\x8f\xbf\xbf max code point",
};
static const char *const jsons[] = {
    "{}", "[1,2,3]", "{\"a\": \"\xc3\xbc\", \"b\": [null, true]}", "null", "\"text\"", "-1.5e10"};
static const uint8_t uuids[][16] = {
    {0},
    {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff},
    {0xa0, 0xec, 0x12, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x90,
     0xab},
};
static const char *const binaries[] = {"", "\x00\xff\x10", "\x80", "plain ascii"};
static const size_t binary_lens[] = {0, 3, 1, 11};
static const char *const fixeds[] = {"\0\0\0\0\0", "\xff\xff\xff\xff\xff", "abcde"};

/* PostgreSQL's range ends as Unix days and microseconds. */
#define PG_MIN_DATE INT64_C(-2440588)   /* 4713-11-24 BC */
#define PG_MAX_DATE INT64_C(2145042905) /* 5874897-12-31 */
#define PG_MIN_TS INT64_C(-210866803200000000)

/* The k-th sample of a type (cycling); byte values point at static data. */
static lake_value
sample(const type_case *tc, unsigned k)
{
    switch (tc->type) {
    case LAKE_TYPE_BOOLEAN:
        return lake_bool(k % 2);
    case LAKE_TYPE_INT8: {
        static const int64_t v[] = {INT8_MIN, INT8_MAX, 0, -1, 1};
        return lake_int(v[k % 5]);
    }
    case LAKE_TYPE_INT16: {
        static const int64_t v[] = {INT16_MIN, INT16_MAX, 0, 12345};
        return lake_int(v[k % 4]);
    }
    case LAKE_TYPE_INT32: {
        static const int64_t v[] = {INT32_MIN, INT32_MAX, 0, -1, 42};
        return lake_int(v[k % 5]);
    }
    case LAKE_TYPE_INT64: {
        static const int64_t v[] = {INT64_MIN, INT64_MAX, 0, -1, 999999999999999999};
        return lake_int(v[k % 5]);
    }
    case LAKE_TYPE_FLOAT: {
        const float v[] = {0.0f,    -0.0f,    NAN,     INFINITY, -INFINITY,
                           FLT_MAX, -FLT_MAX, FLT_MIN, 1e-45f,   1.5f};
        return lake_float(v[k % 10]);
    }
    case LAKE_TYPE_DOUBLE: {
        const double v[] = {0.0,     -0.0,     NAN,     INFINITY, -INFINITY,
                            DBL_MAX, -DBL_MAX, DBL_MIN, 4.9e-324, 67890.12345};
        return lake_double(v[k % 10]);
    }
    case LAKE_TYPE_DECIMAL: {
        lake_int128 max = pow10_i128(tc->precision) - 1;
        lake_int128 v[] = {max, -max, 0, -1, 10050};
        return lake_decimal(v[k % 5]);
    }
    case LAKE_TYPE_DATE: {
        static const int64_t v[] = {PG_MIN_DATE, PG_MAX_DATE, 0, -1, 19844};
        return lake_int(v[k % 5]);
    }
    case LAKE_TYPE_TIME: {
        static const int64_t v[] = {0, INT64_C(86400000000), INT64_C(43200000000), 1};
        return lake_int(v[k % 4]);
    }
    case LAKE_TYPE_TIMESTAMP:
    case LAKE_TYPE_TIMESTAMPTZ: {
        static const int64_t v[] = {PG_MIN_TS, INT64_MAX - 1, 0, -1, 1714545000000000};
        return lake_int(v[k % 5]);
    }
    case LAKE_TYPE_STRING:
        return lake_str(strings[k % (sizeof(strings) / sizeof(strings[0]))]);
    case LAKE_TYPE_JSON:
        return lake_str(jsons[k % (sizeof(jsons) / sizeof(jsons[0]))]);
    case LAKE_TYPE_UUID:
        return lake_bytes(uuids[k % 3], 16);
    case LAKE_TYPE_BINARY:
        return lake_bytes(binaries[k % 4], binary_lens[k % 4]);
    case LAKE_TYPE_FIXED:
        return lake_bytes(fixeds[k % 3], 5);
    default:
        fail_msg("no samples for %s", tc->name);
    }
    return lake_null();
}

static void
add_type_case(lake_schema *s, int parent, const type_case *tc, const char *name, int32_t id,
              bool required)
{
    if (tc->type == LAKE_TYPE_DECIMAL)
        add_decimal(s, parent, name, id, tc->precision, tc->scale, required);
    else if (tc->type == LAKE_TYPE_FIXED)
        add_fixed(s, parent, name, id, tc->length, required);
    else
        add_field(s, parent, name, id, tc->type, required);
}

/* A schema with a required and an optional column of every type. */
static lake_schema *
all_types_schema(void)
{
    lake_schema *s;
    assert_int_equal(lake_schema_new(&s), 0);
    for (size_t t = 0; t < NTYPES; t++) {
        char name[64];
        add_type_case(s, LAKE_SCHEMA_ROOT, &type_cases[t], type_cases[t].name, (int32_t)(t + 1),
                      true);
        snprintf(name, sizeof(name), "%s_opt", type_cases[t].name);
        add_type_case(s, LAKE_SCHEMA_ROOT, &type_cases[t], name, (int32_t)(100 + t), false);
    }
    return s;
}

/* Row r of the all-types table. */
static void
all_types_row(unsigned r, lake_value *vals)
{
    for (size_t t = 0; t < NTYPES; t++) {
        vals[2 * t] = sample(&type_cases[t], r);
        vals[2 * t + 1] = r % 3 == 0 ? lake_null() : sample(&type_cases[t], r * 7 + 1);
    }
}

/* ---- tests ------------------------------------------------------------------- */

/* Every type, required and optional, with nulls and extreme values, read
 * back exactly by both readers; schema annotations as the spec says. */
static void
test_all_types(void **state)
{
    (void)state;
    lake_schema *s = all_types_schema();
    tfile f;
    tf_open(&f, s, NULL, "all-types");
    lake_value vals[2 * NTYPES];
    for (unsigned r = 0; r < 60; r++) {
        all_types_row(r, vals);
        tf_row(&f, vals, 2 * NTYPES);
    }
    assert_int_equal(lake_parquet_set_kv(f.w, "origin", "test_all_types"), 0);
    assert_int_equal(lake_parquet_set_kv(f.w, "note", "first"), 0);
    assert_int_equal(lake_parquet_set_kv(f.w, "note", "replaced"), 0);
    tf_close(&f, NULL);
    check_rows(&f);

    json_t *meta = duck_meta(f.path);
    json_t *arrow = run_json("parquet_arrow.mjs", "schema", f.path);
    for (size_t t = 0; t < NTYPES; t++) {
        const type_case *tc = &type_cases[t];
        json_t *el = schema_row(meta, tc->name);
        assert_int_equal(jint(el, "field_id"), (long long)(t + 1));
        assert_string_equal(jstr(el, "type"), tc->ptype);
        assert_string_equal(jstr(el, "repetition_type"), "REQUIRED");
        if (tc->conv)
            assert_string_equal(jstr(el, "converted_type"), tc->conv);
        else
            assert_null(jstr(el, "converted_type"));
        if (tc->logical && !contains(jstr(el, "logical_type"), tc->logical))
            fail_msg("%s: logical type %s, want %s", tc->name, jstr(el, "logical_type"),
                     tc->logical);
        if (!tc->logical)
            assert_null(jstr(el, "logical_type"));
        assert_string_equal(duck_type(meta, tc->name), tc->duck);

        char name[64];
        snprintf(name, sizeof(name), "%s_opt", tc->name);
        el = schema_row(meta, name);
        assert_string_equal(jstr(el, "repetition_type"), "OPTIONAL");
        assert_int_equal(jint(el, "field_id"), (long long)(100 + t));

        json_t *af = json_array_get(arrow, 2 * t);
        assert_string_equal(json_string_value(json_array_get(af, 0)), tc->name);
        if (strcmp(json_string_value(json_array_get(af, 1)), tc->arrow) != 0)
            fail_msg("%s: arrow type %s, want %s", tc->name,
                     json_string_value(json_array_get(af, 1)), tc->arrow);
        char idtext[16];
        snprintf(idtext, sizeof(idtext), "%zu", t + 1);
        assert_string_equal(json_string_value(json_array_get(af, 2)), idtext);
    }
    json_t *fm = json_array_get(json_object_get(meta, "file"), 0);
    assert_string_equal(jstr(fm, "created_by"), "lakebase version 0.1.0");
    assert_int_equal(jint(fm, "num_rows"), 60);
    json_t *orders = json_object_get(fm, "column_orders");
    assert_int_equal(json_array_size(orders), 2 * NTYPES);
    assert_true(contains(json_string_value(json_array_get(orders, 0)), "TypeDefinedOrder"));
    json_t *kv = json_object_get(meta, "kv");
    assert_int_equal(json_array_size(kv), 2);
    assert_string_equal(jstr(json_array_get(kv, 0), "key"), "origin");
    assert_string_equal(jstr(json_array_get(kv, 1), "value"), "replaced");
    json_decref(arrow);
    json_decref(meta);
    tf_free(&f);
    lake_schema_free(s);
}

/* Lists (empty, null, with null elements, nested) and structs. */
static void
test_lists_and_structs(void **state)
{
    (void)state;
    lake_schema *s;
    assert_int_equal(lake_schema_new(&s), 0);
    add_field(s, LAKE_SCHEMA_ROOT, "id", 1, LAKE_TYPE_INT32, true);
    int ints = add_field(s, LAKE_SCHEMA_ROOT, "ints", 2, LAKE_TYPE_LIST, false);
    add_field(s, ints, NULL, 3, LAKE_TYPE_INT32, false);
    int names = add_field(s, LAKE_SCHEMA_ROOT, "names", 4, LAKE_TYPE_LIST, true);
    add_field(s, names, NULL, 5, LAKE_TYPE_STRING, true);
    int point = add_field(s, LAKE_SCHEMA_ROOT, "point", 6, LAKE_TYPE_STRUCT, false);
    add_field(s, point, "x", 7, LAKE_TYPE_DOUBLE, true);
    add_field(s, point, "label", 8, LAKE_TYPE_STRING, false);
    int inner = add_field(s, point, "inner", 9, LAKE_TYPE_STRUCT, false);
    add_decimal(s, inner, "amount", 10, 12, 2, false);
    int grid = add_field(s, LAKE_SCHEMA_ROOT, "grid", 11, LAKE_TYPE_LIST, false);
    int row = add_field(s, grid, NULL, 12, LAKE_TYPE_LIST, false);
    add_field(s, row, NULL, 13, LAKE_TYPE_INT64, false);
    int recs = add_field(s, LAKE_SCHEMA_ROOT, "recs", 14, LAKE_TYPE_LIST, false);
    int rec = add_field(s, recs, NULL, 15, LAKE_TYPE_STRUCT, false);
    add_field(s, rec, "k", 16, LAKE_TYPE_STRING, true);
    int tags = add_field(s, rec, "tags", 17, LAKE_TYPE_LIST, false);
    add_field(s, tags, NULL, 18, LAKE_TYPE_DATE, true);

    lake_parquet_options o;
    lake_parquet_options_init(&o);
    o.page_bytes = 512; /* many pages: rows never split across them */
    for (int version = 1; version <= 2; version++) {
        o.page_version = version;
        tfile f;
        tf_open(&f, s, &o, version == 1 ? "nested-v1" : "nested-v2");
        for (unsigned r = 0; r < 700; r++) {
            lake_value items[8], strs[6], pfields[3], ifields[1], rowsv[4][5], cells[4], recv[3],
                recfields[3][2], dates[3][4], tagl[3];
            lake_value vals[6];
            vals[0] = lake_int(r);
            /* ints: null, empty, [null], [1, null, 3], ... */
            unsigned n = r % 6;
            for (unsigned i = 0; i < n; i++)
                items[i] = (i + r) % 4 == 1 ? lake_null() : lake_int((int64_t)(r * 10 + i));
            vals[1] = r % 5 == 0 ? lake_null() : lake_list(items, n);
            /* names: required list of required strings, sometimes empty */
            unsigned m = r % 4;
            for (unsigned i = 0; i < m; i++)
                strs[i] = lake_str(strings[(r + i) % 8]);
            vals[2] = lake_list(strs, m);
            /* point: null, or {x, label?, inner?{amount?}} */
            ifields[0] = r % 3 ? lake_decimal((lake_int128)r * 101 - 5000) : lake_null();
            pfields[0] = lake_double(r * 0.5 - 7);
            pfields[1] = r % 2 ? lake_str("p") : lake_null();
            pfields[2] = r % 4 == 3 ? lake_null() : lake_struct(ifields, 1);
            vals[3] = r % 7 == 0 ? lake_null() : lake_struct(pfields, 3);
            /* grid: list of lists of int64 with nulls at both levels */
            unsigned gr = r % 5;
            for (unsigned i = 0; i < gr; i++) {
                unsigned gc = (r + i) % 4;
                for (unsigned k = 0; k < gc; k++)
                    rowsv[i][k] =
                        (k + i) % 3 == 2 ? lake_null() : lake_int((int64_t)r * 1000 + i * 10 + k);
                cells[i] = (r + i) % 6 == 5 ? lake_null() : lake_list(rowsv[i], gc);
            }
            vals[4] = r % 9 == 4 ? lake_null() : lake_list(cells, gr);
            /* recs: list of structs holding a list */
            unsigned nr = r % 4;
            for (unsigned i = 0; i < nr; i++) {
                unsigned nd = (r + i) % 4;
                for (unsigned k = 0; k < nd; k++)
                    dates[i][k] = lake_int((int64_t)r - 300 + k);
                tagl[i] = (r + i) % 5 == 0 ? lake_null() : lake_list(dates[i], nd);
                recfields[i][0] = lake_str(strings[(r * 3 + i) % 8]);
                recfields[i][1] = tagl[i];
                recv[i] = (r + i) % 7 == 3 ? lake_null() : lake_struct(recfields[i], 2);
            }
            vals[5] = r % 8 == 1 ? lake_null() : lake_list(recv, nr);
            tf_row(&f, vals, 6);
        }
        tf_close(&f, NULL);
        check_rows(&f);

        json_t *meta = duck_meta(f.path);
        /* Three-level lists with the spec's names, ids on the right nodes. */
        json_t *el = schema_row(meta, "ints");
        assert_string_equal(jstr(el, "converted_type"), "LIST");
        assert_int_equal(jint(el, "field_id"), 2);
        assert_string_equal(jstr(schema_row(meta, "list"), "repetition_type"), "REPEATED");
        assert_null(jstr(schema_row(meta, "list"), "field_id"));
        assert_int_equal(jint(schema_row(meta, "inner"), "field_id"), 9);
        /* The nested paths exist as columns, with many pages (v2 pages
         * start at row boundaries, which both readers relied on above). */
        json_t *md = json_object_get(meta, "metadata");
        size_t i;
        json_t *col;
        bool seen_tags = false;
        json_array_foreach(md, i, col)
        {
            if (strcmp(jstr(col, "path_in_schema"), "recs, list, element, tags, list, element") ==
                0) {
                seen_tags = true;
                assert_true(jint(col, "num_values") > 700);
            }
        }
        assert_true(seen_tags);
        json_decref(meta);
        tf_free(&f);
    }
    lake_schema_free(s);
}

/* A simple three-column table used by several tests. */
static lake_schema *
simple_schema(void)
{
    lake_schema *s;
    assert_int_equal(lake_schema_new(&s), 0);
    add_field(s, LAKE_SCHEMA_ROOT, "id", 1, LAKE_TYPE_INT64, true);
    add_field(s, LAKE_SCHEMA_ROOT, "city", 2, LAKE_TYPE_STRING, false);
    add_field(s, LAKE_SCHEMA_ROOT, "score", 3, LAKE_TYPE_DOUBLE, false);
    int l = add_field(s, LAKE_SCHEMA_ROOT, "tags", 4, LAKE_TYPE_LIST, false);
    add_field(s, l, NULL, 5, LAKE_TYPE_STRING, false);
    return s;
}

static const char *const cities[] = {"Amsterdam",         "Berlin", "Cork",
                                     "D\xc3\xbcsseldorf", "Espoo",  "Faro"};

static void
simple_row(unsigned r, lake_value *vals, lake_value *tags, char *buf, size_t bufsz)
{
    vals[0] = lake_int((int64_t)r * 7919 % 100003);
    vals[1] = r % 11 == 0 ? lake_null() : lake_str(cities[r % 6]);
    vals[2] = r % 13 == 0 ? lake_null() : lake_double((double)r / 8.0);
    snprintf(buf, bufsz, "tag-%u", r % 97);
    unsigned n = r % 3;
    for (unsigned i = 0; i < n; i++)
        tags[i] = i == 1 ? lake_null() : lake_str(buf);
    vals[3] = r % 17 == 0 ? lake_null() : lake_list(tags, n);
}

/* Every codec with both data page versions. */
static void
test_codecs_and_page_versions(void **state)
{
    (void)state;
    static const struct {
        lake_codec codec;
        const char *name;
        int zstd_level;
        bool zstd_trial;
    } codecs[] = {{LAKE_CODEC_UNCOMPRESSED, "UNCOMPRESSED", 0, true},
                  {LAKE_CODEC_SNAPPY, "SNAPPY", 0, true},
                  {LAKE_CODEC_ZSTD, "ZSTD", 0, true},
                  {LAKE_CODEC_ZSTD, "ZSTD", 2, false}};
    lake_schema *s = simple_schema();
    for (size_t c = 0; c < sizeof(codecs) / sizeof(codecs[0]); c++) {
        for (int version = 1; version <= 2; version++) {
            lake_parquet_options o;
            lake_parquet_options_init(&o);
            o.codec = codecs[c].codec;
            o.zstd_level = codecs[c].zstd_level;
            o.zstd_trial = codecs[c].zstd_trial;
            o.page_version = version;
            o.page_bytes = 4096;
            o.row_group_bytes = 64 << 10;
            char name[64];
            snprintf(name, sizeof(name), "codec-%s-v%d%s", codecs[c].name, version,
                     codecs[c].zstd_trial ? "" : "-level2-notrial");
            tfile f;
            tf_open(&f, s, &o, name);
            for (unsigned r = 0; r < 5000; r++) {
                lake_value vals[4], tags[3];
                char buf[32];
                simple_row(r, vals, tags, buf, sizeof(buf));
                tf_row(&f, vals, 4);
            }
            tf_close(&f, NULL);
            check_rows(&f);
            json_t *meta = duck_meta(f.path);
            size_t i;
            json_t *col;
            json_array_foreach(json_object_get(meta, "metadata"), i, col)
            {
                assert_string_equal(jstr(col, "compression"), codecs[c].name);
            }
            json_decref(meta);
            tf_free(&f);
        }
    }
    lake_schema_free(s);
}

/* Small row groups: many of them, streamed out as they fill, with row
 * counts that add up, and heap use that does not grow with the rows. */
typedef struct counting_sink {
    int fd;
    uint64_t bytes;
    int calls;
} counting_sink;

static int
counting_write(void *arg, const void *bytes, size_t n)
{
    counting_sink *cs = arg;
    cs->bytes += n;
    cs->calls++;
    ssize_t w = write(cs->fd, bytes, n);
    return w == (ssize_t)n ? 0 : -EIO;
}

static size_t
heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks;
}

static void
test_many_row_groups(void **state)
{
    (void)state;
    lake_schema *s = simple_schema();
    lake_parquet_options o;
    lake_parquet_options_init(&o);
    o.row_group_bytes = 16 << 10;
    o.page_bytes = 2048;

    tfile f;
    memset(&f, 0, sizeof(f));
    snprintf(f.path, sizeof(f.path), "%s/%02d-many-row-groups.parquet", g_dir, ++g_seq);
    counting_sink cs = {.fd = open(f.path, O_WRONLY | O_CREAT | O_TRUNC, 0644)};
    assert_true(cs.fd >= 0);
    f.fd = cs.fd;
    f.schema = s;
    lb_err err = {0};
    assert_int_equal(lake_parquet_writer_new(s, &o, counting_write, &cs, &f.w, &err), 0);
    size_t heap_early = 0, heap_late = 0;
    uint64_t bytes_at_half = 0;
    const unsigned nrows = 60000;
    for (unsigned r = 0; r < nrows; r++) {
        lake_value vals[4], tags[3];
        char buf[32];
        simple_row(r, vals, tags, buf, sizeof(buf));
        tf_row(&f, vals, 4);
        if (r == nrows / 4)
            heap_early = heap_in_use();
        if (r == nrows / 2)
            bytes_at_half = cs.bytes;
    }
    heap_late = heap_in_use();
    /* Streaming: half the rows are already in the sink. */
    assert_true(bytes_at_half > 0);
    assert_true(cs.calls > 20);
    lake_parquet_file_stats *st;
    tf_close(&f, &st);
    assert_true(st->num_row_groups > 20);
    assert_int_equal(st->num_rows, nrows);
    assert_int_equal(st->file_bytes, cs.bytes);
    assert_true(bytes_at_half > cs.bytes / 3);
    /* Memory is bounded by a row group, plus ~100 bytes of footer per
     * column chunk. (mallinfo2 is not meaningful under sanitizers.) */
    if (heap_early > 0) {
        size_t footer_growth = (size_t)st->num_row_groups * 5 * 200;
        if (heap_late > heap_early + footer_growth + (64 << 10))
            fail_msg("heap grew from %zu to %zu bytes", heap_early, heap_late);
    }
    check_rows(&f);

    json_t *meta = duck_meta(f.path);
    json_t *fm = json_array_get(json_object_get(meta, "file"), 0);
    assert_int_equal(jint(fm, "num_row_groups"), st->num_row_groups);
    /* Row group row counts add up to the file's. */
    long long total = 0, last_rg = -1;
    size_t i;
    json_t *col;
    json_array_foreach(json_object_get(meta, "metadata"), i, col)
    {
        long long rg = jint(col, "row_group_id");
        if (rg != last_rg) {
            total += jint(col, "row_group_num_rows");
            last_rg = rg;
        }
    }
    assert_int_equal(total, nrows);
    json_decref(meta);
    lake_parquet_file_stats_free(st);
    tf_free(&f);
    lake_schema_free(s);
}

/* The encodings of one column over the file, as DuckDB lists them, and the
 * largest dictionary page region (from its offset to the first data page). */
static void
column_encodings(json_t *meta, const char *path, bool *dict, bool *plain, long long *dict_bytes)
{
    *dict = *plain = false;
    *dict_bytes = -1;
    size_t i;
    json_t *col;
    json_array_foreach(json_object_get(meta, "metadata"), i, col)
    {
        if (strcmp(jstr(col, "path_in_schema"), path) != 0)
            continue;
        const char *enc = jstr(col, "encodings");
        if (contains(enc, "RLE_DICTIONARY"))
            *dict = true;
        if (contains(enc, "PLAIN"))
            *plain = true;
        if (jstr(col, "dictionary_page_offset")) {
            long long n = jint(col, "data_page_offset") - jint(col, "dictionary_page_offset");
            if (n > *dict_bytes)
                *dict_bytes = n;
        }
    }
}

/* Low cardinality: dictionary pages; a dictionary that outgrows its limit
 * falls back to PLAIN mid-chunk; dictionary off: PLAIN only. */
static void
test_dictionary_and_fallback(void **state)
{
    (void)state;
    lake_schema *s;
    assert_int_equal(lake_schema_new(&s), 0);
    add_field(s, LAKE_SCHEMA_ROOT, "low", 1, LAKE_TYPE_STRING, true);
    add_field(s, LAKE_SCHEMA_ROOT, "high", 2, LAKE_TYPE_STRING, false);
    add_field(s, LAKE_SCHEMA_ROOT, "n", 3, LAKE_TYPE_INT32, true);
    add_decimal(s, LAKE_SCHEMA_ROOT, "d", 4, 30, 3, false);
    add_field(s, LAKE_SCHEMA_ROOT, "uniq", 5, LAKE_TYPE_INT64, true);

    for (int mode = 0; mode < 2; mode++) {
        lake_parquet_options o;
        lake_parquet_options_init(&o);
        o.dictionary = mode == 0;
        o.dictionary_bytes = 8 << 10;
        o.page_bytes = 1024;
        o.codec = LAKE_CODEC_SNAPPY;
        tfile f;
        tf_open(&f, s, &o, mode == 0 ? "dictionary" : "no-dictionary");
        for (unsigned r = 0; r < 4000; r++) {
            /* repetitive at first (the dictionary pays), then distinct */
            char high[64];
            snprintf(high, sizeof(high), "unique value number %u", r < 1000 ? r % 50 : r);
            lake_value vals[5] = {
                lake_str(cities[r % 6]), r % 10 == 0 ? lake_null() : lake_str(high),
                lake_int((int64_t)(r % 7) - 3), lake_decimal((lake_int128)(r % 5) * 1000000007 - 2),
                lake_int((int64_t)r * 1000003)};
            tf_row(&f, vals, 5);
        }
        tf_close(&f, NULL);
        check_rows(&f);
        /* PLAIN is listed for the dictionary page too, so a fallback shows as
         * a dictionary page too small for the distinct values (2700 of ~26
         * bytes) that both readers nevertheless read back. */
        json_t *meta = duck_meta(f.path);
        bool dict, plain;
        long long dict_bytes;
        column_encodings(meta, "low", &dict, &plain, &dict_bytes);
        assert_true(plain && dict == (mode == 0));
        assert_true(mode == 0 ? dict_bytes > 0 && dict_bytes < 200 : dict_bytes == -1);
        column_encodings(meta, "high", &dict, &plain, &dict_bytes);
        if (mode == 0)
            assert_true(dict && plain && dict_bytes > 0 && dict_bytes <= (8 << 10) + 64);
        else
            assert_true(!dict && plain && dict_bytes == -1);
        column_encodings(meta, "d", &dict, &plain, &dict_bytes);
        assert_true(plain && dict == (mode == 0));
        /* Distinct from the first page on: the dictionary is dropped. */
        column_encodings(meta, "uniq", &dict, &plain, &dict_bytes);
        assert_true(plain && !dict && dict_bytes == -1);
        json_decref(meta);
        tf_free(&f);
    }
    lake_schema_free(s);
}

/* Strings of megabytes (dictionary falls back on its own), with truncated
 * but valid statistics. */
static void
test_long_strings(void **state)
{
    (void)state;
    lake_schema *s;
    assert_int_equal(lake_schema_new(&s), 0);
    add_field(s, LAKE_SCHEMA_ROOT, "id", 1, LAKE_TYPE_INT32, true);
    add_field(s, LAKE_SCHEMA_ROOT, "body", 2, LAKE_TYPE_STRING, false);
    add_field(s, LAKE_SCHEMA_ROOT, "blob", 3, LAKE_TYPE_BINARY, false);

    size_t sizes[] = {1 << 20, (3 << 20) + 7, 5, 0, 1500000};
    char *texts[5];
    uint8_t *blobs[5];
    tfile f;
    tf_open(&f, s, NULL, "long-strings");
    for (int r = 0; r < 5; r++) {
        /* Multibyte text: "ü" and "日" interleaved with ASCII. */
        texts[r] = malloc(sizes[r] + 8);
        size_t n = 0;
        if (r == 4) {
            memcpy(texts[r], "\xf0\x9f\x8e\x89", 4); /* U+1F389 sorts last */
            n = 4;
        }
        while (n < sizes[r]) {
            const char *piece = (n / 3) % 3 == 0   ? "\xc3\xbc"
                                : (n / 3) % 3 == 1 ? "x"
                                                   : "\xe6\x97\xa5";
            size_t pl = strlen(piece);
            memcpy(texts[r] + n, piece, pl);
            n += pl;
        }
        texts[r][n] = '\0';
        sizes[r] = n;
        blobs[r] = malloc(sizes[r] + 1);
        for (size_t k = 0; k < sizes[r]; k++)
            blobs[r][k] = (uint8_t)(k * 131 + r);
        if (sizes[r])
            blobs[r][0] = 0xff; /* the max: 0xff bytes roll over on truncation */
        lake_value vals[3] = {lake_int(r), lake_bytes(texts[r], sizes[r]),
                              lake_bytes(blobs[r], sizes[r])};
        tf_row(&f, vals, 3);
    }
    lake_parquet_file_stats *st;
    tf_close(&f, &st);
    check_rows(&f);

    /* The file's stats: truncated to 64 bytes, inexact, still bounds. */
    const lake_column_stats *body = &st->columns[1];
    assert_string_equal(body->path, "body");
    assert_true(body->has_bounds);
    assert_true(body->min_exact && body->min_len == 0); /* "" of row 3 */
    assert_false(body->max_exact);
    assert_true(body->max_len > 0 && body->max_len <= 64);
    assert_memory_equal(body->max, "\xf0\x9f\x8e\x89", 4);
    const lake_column_stats *blob = &st->columns[2];
    assert_true(blob->has_bounds && blob->min_exact && !blob->max_exact);
    /* 0xff..., truncated to 64 bytes and rounded up past the 0xff */
    assert_true(blob->max_len <= 64 && blob->max[0] == 0xff);
    for (int r = 0; r < 5; r++) {
        size_t n = sizes[r];
        int c = memcmp(texts[r], body->min, n < body->min_len ? n : body->min_len);
        assert_true(c > 0 || (c == 0 && n >= body->min_len) || n == 0);
        c = memcmp(texts[r], body->max, n < body->max_len ? n : body->max_len);
        assert_true(c < 0 || (c == 0 && n <= body->max_len));
    }
    json_t *meta = duck_meta(f.path);
    size_t i;
    json_t *col;
    json_array_foreach(json_object_get(meta, "metadata"), i, col)
    {
        if (strcmp(jstr(col, "path_in_schema"), "body") == 0) {
            assert_string_equal(jstr(col, "stats_min_value"), "");
            assert_true(strncmp(jstr(col, "stats_max_value"), "\xf0\x9f\x8e\x89", 4) == 0);
            assert_true(strlen(jstr(col, "stats_max_value")) <= 68);
            assert_int_equal(jint(col, "stats_null_count"), 0);
        }
    }
    json_decref(meta);
    for (int r = 0; r < 5; r++) {
        free(texts[r]);
        free(blobs[r]);
    }
    lake_parquet_file_stats_free(st);
    tf_free(&f);
    lake_schema_free(s);
}

/* ---- statistics ------------------------------------------------------------ */

/*
 * For every row group and top-level primitive column, DuckDB's view of the
 * footer statistics must agree with the data of that row group as DuckDB
 * itself reads it (min/max/null count computed by SQL over the rows of the
 * row group), under each type's order.
 */
static int
check_stats_against_data(const char *path)
{
    lb_buf out = LB_BUF_INIT;
    run_script("parquet_duckdb.mjs", "stats", path, &out);
    json_error_t jerr;
    json_t *rows = json_loadb(out.data, out.len, 0, &jerr);
    if (!rows)
        fail_msg("stats: bad JSON: %s", jerr.text);
    size_t i;
    json_t *r;
    int checked = 0;
    json_array_foreach(rows, i, r)
    {
        const char *name = jstr(r, "column");
        const char *ptype = jstr(r, "type");
        long long rg = jint(r, "row_group");
        assert_int_equal(jint(r, "stats_null_count"), jint(r, "true_nulls"));
        const char *smin = jstr(r, "stats_min"), *smax = jstr(r, "stats_max");
        const char *tmin = jstr(r, "true_min"), *tmax = jstr(r, "true_max");
        if (!tmin) {
            /* No non-null (non-NaN) values: no bounds. */
            if (smin || smax)
                fail_msg("%s rg %lld: bounds %s..%s for a column without values", name, rg, smin,
                         smax);
            continue;
        }
        bool is_float = strcmp(ptype, "FLOAT") == 0 || strcmp(ptype, "DOUBLE") == 0;
        if (is_float) {
            /* DuckDB shows no infinite float bound; the other must agree. */
            double ta = strtod(tmin, NULL), tb = strtod(tmax, NULL);
            if (smin || !isinf(ta)) {
                if (!smin)
                    fail_msg("%s rg %lld: no min, data has %s", name, rg, tmin);
                double a = strtod(smin, NULL);
                assert_true(a == ta);
                if (ta == 0)
                    assert_true(signbit(a)); /* written as -0.0 */
            }
            if (smax || !isinf(tb)) {
                if (!smax)
                    fail_msg("%s rg %lld: no max, data has %s", name, rg, tmax);
                double b = strtod(smax, NULL);
                assert_true(b == tb);
                if (tb == 0)
                    assert_false(signbit(b)); /* written as +0.0 */
            }
            checked++;
            continue;
        }
        if (!smin || !smax)
            fail_msg("%s rg %lld: no bounds, data has %s..%s", name, rg, tmin, tmax);
        if (strcmp(smin, tmin) != 0 || strcmp(smax, tmax) != 0)
            fail_msg("%s rg %lld: stats %s..%s, data %s..%s", name, rg, smin, smax, tmin, tmax);
        checked++;
    }
    json_decref(rows);
    lb_buf_free(&out);
    return checked;
}

static void
test_statistics(void **state)
{
    (void)state;
    lake_schema *s = all_types_schema();
    tfile f;
    tf_open(&f, s, NULL, "statistics");
    lake_value vals[2 * NTYPES];
    for (unsigned r = 0; r < 40; r++) {
        all_types_row(r, vals);
        tf_row(&f, vals, 2 * NTYPES);
        if (r % 7 == 6) /* row groups of 7 rows, cut by the caller */
            assert_int_equal(lake_parquet_flush_row_group(f.w), 0);
    }
    lake_parquet_file_stats *st;
    tf_close(&f, &st);
    assert_int_equal(st->num_row_groups, 6);
    /* 40 columns in 6 row groups; only optional ones may lack values. */
    assert_true(check_stats_against_data(f.path) >= 220);

    /* The stats handed back to the caller, spot-checked. */
    assert_int_equal(st->ncolumns, 2 * NTYPES);
    const lake_column_stats *c_int64 = &st->columns[2 * 4];
    assert_string_equal(c_int64->path, "c_int64");
    assert_int_equal(c_int64->field_id, 5);
    assert_int_equal(c_int64->null_count, 0);
    assert_int_equal(c_int64->num_values, 40);
    int64_t mn, mx;
    assert_int_equal(c_int64->min_len, 8);
    memcpy(&mn, c_int64->min, 8);
    memcpy(&mx, c_int64->max, 8);
    assert_true(mn == INT64_MIN && mx == INT64_MAX);
    const lake_column_stats *c_float_opt = &st->columns[2 * 5 + 1];
    assert_string_equal(c_float_opt->path, "c_float_opt");
    assert_int_equal(c_float_opt->null_count, 14); /* r % 3 == 0 for r < 40 */
    assert_true(c_float_opt->nan_count > 0);
    float fmin, fmax;
    memcpy(&fmin, c_float_opt->min, 4);
    memcpy(&fmax, c_float_opt->max, 4);
    assert_true(isinf(fmin) && fmin < 0 && isinf(fmax) && fmax > 0);
    const lake_column_stats *c_dec38 = &st->columns[2 * 10];
    assert_string_equal(c_dec38->path, "c_dec38");
    assert_int_equal(c_dec38->min_len, 16);
    /* -(10^38 - 1) big-endian starts with 0xb4; +(10^38 - 1) with 0x4b. */
    assert_int_equal(c_dec38->min[0], 0xb4);
    assert_int_equal(c_dec38->max[0], 0x4b);
    lake_parquet_file_stats_free(st);
    tf_free(&f);
    lake_schema_free(s);
}

/* Edge cases of float statistics: all-NaN, only zeros, NaN mixed in. */
static void
test_float_statistics(void **state)
{
    (void)state;
    lake_schema *s;
    assert_int_equal(lake_schema_new(&s), 0);
    add_field(s, LAKE_SCHEMA_ROOT, "all_nan", 1, LAKE_TYPE_DOUBLE, false);
    add_field(s, LAKE_SCHEMA_ROOT, "zeros", 2, LAKE_TYPE_FLOAT, true);
    add_field(s, LAKE_SCHEMA_ROOT, "mixed", 3, LAKE_TYPE_DOUBLE, true);
    add_field(s, LAKE_SCHEMA_ROOT, "all_null", 4, LAKE_TYPE_INT32, false);
    tfile f;
    tf_open(&f, s, NULL, "float-stats");
    for (unsigned r = 0; r < 10; r++) {
        lake_value vals[4] = {r % 2 ? lake_double(NAN) : lake_null(),
                              lake_float(r % 2 ? 0.0f : -0.0f),
                              lake_double(r % 3 == 0 ? NAN : (double)r - 4.5), lake_null()};
        tf_row(&f, vals, 4);
    }
    lake_parquet_file_stats *st;
    tf_close(&f, &st);
    check_rows(&f);
    assert_int_equal(check_stats_against_data(f.path), 2); /* zeros, mixed */
    assert_false(st->columns[0].has_bounds);
    assert_int_equal(st->columns[0].nan_count, 5);
    assert_int_equal(st->columns[0].null_count, 5);
    float z;
    memcpy(&z, st->columns[1].min, 4);
    assert_true(z == 0 && signbit(z));
    memcpy(&z, st->columns[1].max, 4);
    assert_true(z == 0 && !signbit(z));
    assert_false(st->columns[3].has_bounds);
    assert_int_equal(st->columns[3].null_count, 10);
    lake_parquet_file_stats_free(st);
    tf_free(&f);
    lake_schema_free(s);
}

/* ---- refused input ----------------------------------------------------------- */

static void
expect_schema_error(lake_schema *s, int parent, const lake_field *f, const char *needle)
{
    int rc = lake_schema_add(s, parent, f, NULL);
    assert_int_equal(rc, LB_ESCHEMA);
    if (!strstr(lake_schema_error(s), needle))
        fail_msg("error \"%s\" does not mention \"%s\"", lake_schema_error(s), needle);
}

static void
test_bad_schemas(void **state)
{
    (void)state;
    lake_schema *s;
    assert_int_equal(lake_schema_new(&s), 0);
    add_field(s, LAKE_SCHEMA_ROOT, "a", 7, LAKE_TYPE_INT32, true);
    lake_field f = {.name = "b", .field_id = 7, .type = LAKE_TYPE_INT64};
    expect_schema_error(s, LAKE_SCHEMA_ROOT, &f, "duplicate field id 7");
    f = (lake_field){.name = "a", .field_id = 8, .type = LAKE_TYPE_INT64};
    expect_schema_error(s, LAKE_SCHEMA_ROOT, &f, "duplicate field name \"a\"");
    f = (lake_field){.name = "d", .field_id = 9, .type = LAKE_TYPE_DECIMAL, .precision = 39};
    expect_schema_error(s, LAKE_SCHEMA_ROOT, &f, "precision 39");
    f = (lake_field){.name = "d", .field_id = 9, .type = LAKE_TYPE_DECIMAL, .precision = 0};
    expect_schema_error(s, LAKE_SCHEMA_ROOT, &f, "precision 0");
    f = (lake_field){
        .name = "d", .field_id = 9, .type = LAKE_TYPE_DECIMAL, .precision = 5, .scale = 6};
    expect_schema_error(s, LAKE_SCHEMA_ROOT, &f, "scale 6");
    f = (lake_field){
        .name = "d", .field_id = 9, .type = LAKE_TYPE_DECIMAL, .precision = 5, .scale = -1};
    expect_schema_error(s, LAKE_SCHEMA_ROOT, &f, "scale -1");
    f = (lake_field){.name = "fx", .field_id = 9, .type = LAKE_TYPE_FIXED};
    expect_schema_error(s, LAKE_SCHEMA_ROOT, &f, "fixed field \"fx\" has length 0");
    f = (lake_field){.name = "n", .field_id = 9, .type = LAKE_TYPE_INT32, .length = 4};
    expect_schema_error(s, LAKE_SCHEMA_ROOT, &f, "has a length");
    f = (lake_field){.name = "", .field_id = 9, .type = LAKE_TYPE_INT32};
    expect_schema_error(s, LAKE_SCHEMA_ROOT, &f, "name is empty");
    f = (lake_field){.name = "neg", .field_id = -3, .type = LAKE_TYPE_INT32};
    expect_schema_error(s, LAKE_SCHEMA_ROOT, &f, "negative field id");
    f = (lake_field){.name = "t", .field_id = 9, .type = (lake_type)99};
    expect_schema_error(s, LAKE_SCHEMA_ROOT, &f, "unknown type");
    f = (lake_field){.name = "child", .field_id = 9, .type = LAKE_TYPE_INT32};
    expect_schema_error(s, 1, &f, "cannot have children");
    expect_schema_error(s, 42, &f, "parent 42");
    int l = add_field(s, LAKE_SCHEMA_ROOT, "l", 10, LAKE_TYPE_LIST, true);
    /* A list without its element is caught when the schema is used. */
    lb_err err = {0};
    lake_parquet_writer *w;
    int fd = open("/dev/null", O_WRONLY);
    assert_int_equal(lake_parquet_writer_new_fd(s, NULL, fd, &w, &err), LB_ESCHEMA);
    assert_string_equal(err.message, "list \"l\" has no element");
    add_field(s, l, NULL, 11, LAKE_TYPE_INT32, true);
    f = (lake_field){.name = "e2", .field_id = 12, .type = LAKE_TYPE_INT32};
    expect_schema_error(s, l, &f, "already has its element");
    int st = add_field(s, LAKE_SCHEMA_ROOT, "st", 13, LAKE_TYPE_STRUCT, false);
    assert_int_equal(lake_parquet_writer_new_fd(s, NULL, fd, &w, &err), LB_ESCHEMA);
    assert_string_equal(err.message, "struct \"st\" has no fields");
    add_field(s, st, "x", 14, LAKE_TYPE_INT32, false);
    /* Bad options. */
    lake_parquet_options o;
    lake_parquet_options_init(&o);
    o.page_version = 3;
    assert_int_equal(lake_parquet_writer_new_fd(s, &o, fd, &w, &err), LB_EBADCONFIG);
    assert_true(contains(err.message, "version 3"));
    lake_parquet_options_init(&o);
    o.codec = (lake_codec)2;
    assert_int_equal(lake_parquet_writer_new_fd(s, &o, fd, &w, &err), LB_EBADCONFIG);
    assert_true(contains(err.message, "codec 2"));
    /* A schema in use cannot change. */
    assert_int_equal(lake_parquet_writer_new_fd(s, NULL, fd, &w, &err), 0);
    f = (lake_field){.name = "late", .field_id = 99, .type = LAKE_TYPE_INT32};
    assert_int_equal(lake_schema_add(s, LAKE_SCHEMA_ROOT, &f, NULL), -EBUSY);
    lake_parquet_writer_free(w);
    assert_int_equal(lake_schema_add(s, LAKE_SCHEMA_ROOT, &f, NULL), 0);
    close(fd);
    lake_schema_free(s);
}

static void
expect_refused(tfile *f, const lake_value *vals, size_t n, const char *needle)
{
    int rc = lake_parquet_write_row(f->w, vals, n);
    assert_int_equal(rc, LB_EVALUE);
    const char *msg = lake_parquet_writer_error(f->w);
    if (!strstr(msg, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", msg, needle);
}

/* Rows that do not fit are refused, the writer goes on, and the file holds
 * exactly the good rows. */
static void
test_bad_values(void **state)
{
    (void)state;
    lake_schema *s;
    assert_int_equal(lake_schema_new(&s), 0);
    add_field(s, LAKE_SCHEMA_ROOT, "id", 1, LAKE_TYPE_INT32, true);
    add_field(s, LAKE_SCHEMA_ROOT, "small", 2, LAKE_TYPE_INT8, false);
    add_decimal(s, LAKE_SCHEMA_ROOT, "amount", 3, 5, 2, false);
    add_field(s, LAKE_SCHEMA_ROOT, "name", 4, LAKE_TYPE_STRING, false);
    add_field(s, LAKE_SCHEMA_ROOT, "u", 5, LAKE_TYPE_UUID, false);
    int l = add_field(s, LAKE_SCHEMA_ROOT, "l", 6, LAKE_TYPE_LIST, false);
    add_field(s, l, NULL, 7, LAKE_TYPE_INT64, true);
    int st = add_field(s, LAKE_SCHEMA_ROOT, "st", 8, LAKE_TYPE_STRUCT, false);
    add_field(s, st, "t", 9, LAKE_TYPE_TIME, false);
    add_decimal(s, LAKE_SCHEMA_ROOT, "big", 10, 38, 0, false);

    tfile f;
    tf_open(&f, s, NULL, "bad-values");
    lake_value items[2] = {lake_int(1), lake_int(2)};
    lake_value sfields[1] = {lake_int(5)};
    lake_value good[10] = {lake_int(1),
                           lake_int(-128),
                           lake_decimal(99999),
                           lake_str("ok"),
                           lake_bytes(uuids[2], 16),
                           lake_list(items, 2),
                           lake_struct(sfields, 1),
                           lake_decimal(pow10_i128(38) - 1)};
    tf_row(&f, good, 8);

    lake_value bad[8];
    memcpy(bad, good, sizeof(bad));
    bad[0] = lake_null();
    expect_refused(&f, bad, 8, "null value in required column \"id\"");
    memcpy(bad, good, sizeof(bad));
    bad[0] = lake_str("1");
    expect_refused(&f, bad, 8, "column \"id\" of type int32 takes int values, not bytes");
    memcpy(bad, good, sizeof(bad));
    bad[0] = lake_int((int64_t)INT32_MAX + 1);
    expect_refused(&f, bad, 8, "out of range for int32 column \"id\"");
    memcpy(bad, good, sizeof(bad));
    bad[1] = lake_int(128);
    expect_refused(&f, bad, 8, "value 128 is out of range for int8 column \"small\"");
    memcpy(bad, good, sizeof(bad));
    bad[2] = lake_decimal(100000);
    expect_refused(&f, bad, 8, "decimal value exceeds precision 5 of column \"amount\"");
    memcpy(bad, good, sizeof(bad));
    bad[2] = lake_decimal(-100000);
    expect_refused(&f, bad, 8, "precision 5");
    memcpy(bad, good, sizeof(bad));
    bad[7] = lake_decimal(pow10_i128(38));
    expect_refused(&f, bad, 8, "precision 38 of column \"big\"");
    memcpy(bad, good, sizeof(bad));
    bad[2] = lake_int(5);
    expect_refused(&f, bad, 8, "takes decimal values, not int");
    memcpy(bad, good, sizeof(bad));
    bad[3] = lake_bytes("bad \xc3\x28 utf8", 12);
    expect_refused(&f, bad, 8, "invalid UTF-8 at byte 4");
    memcpy(bad, good, sizeof(bad));
    bad[3] = lake_bytes("\xed\xa0\x80", 3); /* a surrogate */
    expect_refused(&f, bad, 8, "invalid UTF-8 at byte 0");
    memcpy(bad, good, sizeof(bad));
    bad[4] = lake_bytes(uuids[2], 15);
    expect_refused(&f, bad, 8, "column \"u\" takes values of 16 bytes, not 15");
    memcpy(bad, good, sizeof(bad));
    lake_value bad_items[2] = {lake_int(1), lake_null()};
    bad[5] = lake_list(bad_items, 2);
    expect_refused(&f, bad, 8, "null value in required column \"l.element\"");
    memcpy(bad, good, sizeof(bad));
    bad[6] = lake_struct(sfields, 0);
    expect_refused(&f, bad, 8, "struct \"st\" has 1 fields, got 0 values");
    memcpy(bad, good, sizeof(bad));
    lake_value bad_time[1] = {lake_int(INT64_C(86400000001))};
    bad[6] = lake_struct(bad_time, 1);
    expect_refused(&f, bad, 8, "out of range for time column \"st.t\"");
    memcpy(bad, good, sizeof(bad));
    bad[5] = lake_int(3);
    expect_refused(&f, bad, 8, "takes list values, not int");
    expect_refused(&f, good, 7, "row has 7 values, the schema has 8 fields");

    /* Still usable: more good rows, including nulls where allowed. */
    lake_value nulls[8] = {lake_int(2), lake_null(), lake_null(), lake_null(),
                           lake_null(), lake_null(), lake_null(), lake_null()};
    tf_row(&f, nulls, 8);
    tf_row(&f, good, 8);
    assert_int_equal(lake_parquet_rows(f.w), 3);
    tf_close(&f, NULL);
    check_rows(&f);
    tf_free(&f);
    lake_schema_free(s);
}

/* A sink that fails kills the writer; every later call says so. */
static int
failing_sink(void *arg, const void *bytes, size_t n)
{
    (void)bytes;
    size_t *budget = arg;
    if (n > *budget)
        return -ENOSPC;
    *budget -= n;
    return 0;
}

static void
test_sink_failure(void **state)
{
    (void)state;
    lake_schema *s = simple_schema();
    lake_parquet_options o;
    lake_parquet_options_init(&o);
    o.row_group_bytes = 4096;
    size_t budget = 0;
    lake_parquet_writer *w;
    lb_err err = {0};
    /* Not even the magic fits. */
    assert_int_equal(lake_parquet_writer_new(s, &o, failing_sink, &budget, &w, &err), -ENOSPC);
    assert_true(contains(err.message, "No space left"));
    budget = 10000;
    assert_int_equal(lake_parquet_writer_new(s, &o, failing_sink, &budget, &w, &err), 0);
    int rc = 0;
    unsigned r;
    for (r = 0; r < 100000 && rc == 0; r++) {
        lake_value vals[4], tags[3];
        char buf[32];
        simple_row(r, vals, tags, buf, sizeof(buf));
        rc = lake_parquet_write_row(w, vals, 4);
    }
    assert_int_equal(rc, -ENOSPC);
    assert_true(contains(lake_parquet_writer_error(w), "could not write parquet file"));
    lake_value vals[4], tags[3];
    char buf[32];
    simple_row(0, vals, tags, buf, sizeof(buf));
    assert_int_equal(lake_parquet_write_row(w, vals, 4), -ENOSPC);
    assert_int_equal(lake_parquet_writer_close(w, NULL), -ENOSPC);
    lake_parquet_writer_free(w);
    lake_schema_free(s);
}

/* A sink into a buffer that fails while `fail` is set. */
typedef struct rec_sink {
    lb_buf buf;
    bool fail;
} rec_sink;

static int
rec_write(void *arg, const void *bytes, size_t n)
{
    rec_sink *rs = arg;
    if (rs->fail)
        return -ENOSPC;
    return lb_buf_append(&rs->buf, bytes, n);
}

/* simple_row() rows [from, from + n) into w; 0 or the first error. */
static int
simple_rows(lake_parquet_writer *w, unsigned from, unsigned n)
{
    int rc = 0;
    for (unsigned r = from; r < from + n && rc == 0; r++) {
        lake_value vals[4], tags[3];
        char buf[32];
        simple_row(r, vals, tags, buf, sizeof(buf));
        rc = lake_parquet_write_row(w, vals, 4);
    }
    return rc;
}

/*
 * A restarted writer writes the file a new writer writes: nothing of the
 * file before it (pages, dictionaries, row groups, statistics, key-value
 * pairs, a failure) shows in the next one.
 */
static void
test_restart(void **state)
{
    (void)state;
    lake_schema *s = simple_schema();
    lake_parquet_options o;
    lake_parquet_options_init(&o);
    o.page_bytes = 2000;       /* many pages */
    o.row_group_bytes = 20000; /* several row groups */
    o.dictionary_bytes = 300;  /* dictionaries that fall back */
    lb_err err = {0};
    enum { N = 5000 };

    rec_sink fresh = {LB_BUF_INIT, false};
    lake_parquet_writer *w;
    assert_int_equal(lake_parquet_writer_new(s, &o, rec_write, &fresh, &w, &err), 0);
    assert_int_equal(simple_rows(w, 0, N), 0);
    lake_parquet_file_stats *want;
    assert_int_equal(lake_parquet_writer_close(w, &want), 0);
    lake_parquet_writer_free(w);

    rec_sink rs = {LB_BUF_INIT, false};
    assert_int_equal(lake_parquet_writer_new(s, &o, rec_write, &rs, &w, &err), 0);
    for (int round = 0; round < 3; round++) {
        /* Another file first: other rows, a key-value pair; the second
         * time it is left unclosed, the third time its sink fails. */
        if (round > 0)
            assert_int_equal(lake_parquet_writer_restart(w), 0);
        assert_int_equal(simple_rows(w, 100000, 777 + (unsigned)round * 3000), 0);
        assert_int_equal(lake_parquet_set_kv(w, "k", "v"), 0);
        if (round == 0) {
            assert_int_equal(lake_parquet_writer_close(w, NULL), 0);
        } else if (round == 2) {
            rs.fail = true;
            assert_int_equal(lake_parquet_writer_close(w, NULL), -ENOSPC);
            /* The magic of the next file cannot be written either. */
            assert_int_equal(lake_parquet_writer_restart(w), -ENOSPC);
            assert_int_equal(simple_rows(w, 0, 1), -ENOSPC);
            rs.fail = false;
        }
        lb_buf_reset(&rs.buf);
        assert_int_equal(lake_parquet_writer_restart(w), 0);
        assert_int_equal(lake_parquet_rows(w), 0);
        assert_int_equal(simple_rows(w, 0, N), 0);
        lake_parquet_file_stats *got;
        assert_int_equal(lake_parquet_writer_close(w, &got), 0);
        assert_int_equal(rs.buf.len, fresh.buf.len);
        assert_memory_equal(rs.buf.data, fresh.buf.data, fresh.buf.len);
        assert_int_equal(got->num_rows, N);
        assert_true(got->num_row_groups > 1);
        assert_int_equal(got->num_row_groups, want->num_row_groups);
        assert_int_equal(got->file_bytes, want->file_bytes);
        assert_int_equal(got->ncolumns, want->ncolumns);
        for (size_t i = 0; i < got->ncolumns; i++) {
            const lake_column_stats *a = &got->columns[i], *b = &want->columns[i];
            assert_int_equal(a->num_values, b->num_values);
            assert_int_equal(a->null_count, b->null_count);
            assert_int_equal(a->compressed_bytes, b->compressed_bytes);
            assert_int_equal(a->has_bounds, b->has_bounds);
            if (a->has_bounds) {
                assert_int_equal(a->min_len, b->min_len);
                assert_memory_equal(a->min, b->min, a->min_len);
                assert_int_equal(a->max_len, b->max_len);
                assert_memory_equal(a->max, b->max, a->max_len);
            }
        }
        lake_parquet_file_stats_free(got);
    }
    lake_parquet_writer_free(w);
    lake_parquet_file_stats_free(want);
    lb_buf_free(&fresh.buf);
    lb_buf_free(&rs.buf);
    lake_schema_free(s);
}

/* With trusted_utf8 the writer skips its UTF-8 check and nothing else:
 * the same rows make the same file; without it a bad value is refused. */
static void
test_trusted_utf8(void **state)
{
    (void)state;
    lake_schema *s = simple_schema();
    lb_err err = {0};
    rec_sink out[2] = {{LB_BUF_INIT, false}, {LB_BUF_INIT, false}};
    for (int trusted = 0; trusted < 2; trusted++) {
        lake_parquet_options o;
        lake_parquet_options_init(&o);
        o.trusted_utf8 = trusted;
        lake_parquet_writer *w;
        assert_int_equal(lake_parquet_writer_new(s, &o, rec_write, &out[trusted], &w, &err), 0);
        assert_int_equal(simple_rows(w, 0, 3000), 0);
        if (!trusted) {
            lake_value bad[4] = {lake_int(1), lake_bytes("\xc3\x28", 2), lake_null(), lake_null()};
            assert_int_equal(lake_parquet_write_row(w, bad, 4), LB_EVALUE);
        }
        assert_int_equal(lake_parquet_writer_close(w, NULL), 0);
        lake_parquet_writer_free(w);
    }
    assert_int_equal(out[0].buf.len, out[1].buf.len);
    assert_memory_equal(out[0].buf.data, out[1].buf.data, out[0].buf.len);
    lb_buf_free(&out[0].buf);
    lb_buf_free(&out[1].buf);
    lake_schema_free(s);
}

/* No rows: still a valid file with the schema. */
static void
test_empty_file(void **state)
{
    (void)state;
    lake_schema *s = simple_schema();
    tfile f;
    tf_open(&f, s, NULL, "empty");
    lake_parquet_file_stats *st;
    tf_close(&f, &st);
    assert_int_equal(st->num_rows, 0);
    assert_int_equal(st->num_row_groups, 0);
    check_rows(&f);
    json_t *meta = duck_meta(f.path);
    assert_int_equal(jint(schema_row(meta, "city"), "field_id"), 2);
    json_decref(meta);
    lake_parquet_file_stats_free(st);
    tf_free(&f);
    lake_schema_free(s);
}

/* Pages without a single value (all null, empty lists) in v2 pages under
 * each codec: the values section is empty and marked uncompressed. */
static void
test_all_null_pages(void **state)
{
    (void)state;
    lake_schema *s;
    assert_int_equal(lake_schema_new(&s), 0);
    add_field(s, LAKE_SCHEMA_ROOT, "id", 1, LAKE_TYPE_INT32, true);
    add_field(s, LAKE_SCHEMA_ROOT, "nothing", 2, LAKE_TYPE_STRING, false);
    int l = add_field(s, LAKE_SCHEMA_ROOT, "empty", 3, LAKE_TYPE_LIST, true);
    add_field(s, l, NULL, 4, LAKE_TYPE_DOUBLE, false);
    static const lake_codec codecs[] = {LAKE_CODEC_UNCOMPRESSED, LAKE_CODEC_SNAPPY,
                                        LAKE_CODEC_ZSTD};
    for (int c = 0; c < 3; c++) {
        lake_parquet_options o;
        lake_parquet_options_init(&o);
        o.page_version = 2;
        o.codec = codecs[c];
        o.page_bytes = 256;
        tfile f;
        tf_open(&f, s, &o, "all-null-v2");
        for (unsigned r = 0; r < 300; r++) {
            lake_value vals[3] = {lake_int(r), lake_null(), lake_list(NULL, 0)};
            tf_row(&f, vals, 3);
        }
        lake_parquet_file_stats *st;
        tf_close(&f, &st);
        check_rows(&f);
        assert_int_equal(st->columns[1].null_count, 300);
        assert_false(st->columns[1].has_bounds);
        assert_int_equal(st->columns[2].num_values, 300);
        lake_parquet_file_stats_free(st);
        tf_free(&f);
    }
    lake_schema_free(s);
}

/*
 * The reference: a Spark-written Iceberg data file. Both readers read it
 * with the same scripts, and a file of ours with the same Iceberg schema
 * has the same Parquet structure, except where we chose differently (noted
 * on stderr).
 */
static void
test_reference_structure(void **state)
{
    (void)state;
    char ref[PATH_MAX];
    snprintf(ref, sizeof(ref), "%s/../shared/testdata/iceberg-sample/data.parquet",
             tu_project_root());
    if (access(ref, R_OK) != 0) {
        snprintf(ref, sizeof(ref), "/work/shared/testdata/iceberg-sample/data.parquet");
        if (access(ref, R_OK) != 0)
            skip();
    }
    lb_buf rows = LB_BUF_INIT, rows2 = LB_BUF_INIT;
    run_script("parquet_duckdb.mjs", "rows", ref, &rows);
    run_script("parquet_arrow.mjs", "rows", ref, &rows2);
    compare_text("reference via arrow", &rows, &rows2);

    /* The reference's Iceberg schema, as our transcoder would declare it. */
    lake_schema *s;
    assert_int_equal(lake_schema_new(&s), 0);
    add_field(s, 0, "int_col", 1, LAKE_TYPE_INT32, true);
    add_field(s, 0, "text_col", 2, LAKE_TYPE_STRING, true);
    add_decimal(s, 0, "numeric_col", 3, 10, 2, true);
    int l = add_field(s, 0, "int_array_col", 4, LAKE_TYPE_LIST, true);
    add_field(s, l, NULL, 18, LAKE_TYPE_INT32, true);
    add_field(s, 0, "boolean_col", 5, LAKE_TYPE_BOOLEAN, true);
    add_field(s, 0, "date_col", 6, LAKE_TYPE_DATE, true);
    add_field(s, 0, "timestamp_col", 7, LAKE_TYPE_TIMESTAMPTZ, true);
    int st = add_field(s, 0, "struct_col", 8, LAKE_TYPE_STRUCT, true);
    add_field(s, st, "field1", 19, LAKE_TYPE_STRING, true);
    add_field(s, st, "field2", 20, LAKE_TYPE_INT32, true);
    add_field(s, 0, "bigint_col", 9, LAKE_TYPE_INT64, true);
    add_decimal(s, 0, "decimal_col", 10, 20, 6, true);
    add_field(s, 0, "real_col", 11, LAKE_TYPE_FLOAT, true);
    add_field(s, 0, "uuid_col", 12, LAKE_TYPE_UUID, true);
    add_field(s, 0, "float_col", 13, LAKE_TYPE_FLOAT, true);
    add_field(s, 0, "smallint_col", 14, LAKE_TYPE_INT16, true);
    add_field(s, 0, "double_col", 15, LAKE_TYPE_DOUBLE, true);
    add_field(s, 0, "char_col", 16, LAKE_TYPE_STRING, true);
    add_field(s, 0, "varchar_col", 17, LAKE_TYPE_STRING, true);

    tfile f;
    tf_open(&f, s, NULL, "like-reference");
    lake_value arr[3] = {lake_int(10), lake_int(20), lake_int(30)};
    lake_value sf[2] = {lake_str("Example"), lake_int(5)};
    lake_value vals[17] = {lake_int(1),
                           lake_str("Example text"),
                           lake_decimal(10050),
                           lake_list(arr, 3),
                           lake_bool(true),
                           lake_int(19844),
                           lake_int(1714545000000000),
                           lake_struct(sf, 2),
                           lake_int(999999999999999999),
                           lake_decimal(789012345678),
                           lake_float(23456.7890625f),
                           lake_bytes(uuids[2], 16),
                           lake_float(12.345f),
                           lake_int(12345),
                           lake_double(67890.12345),
                           lake_str("C"),
                           lake_str("Another variable length string")};
    tf_row(&f, vals, 17);
    tf_close(&f, NULL);
    check_rows(&f);

    json_t *theirs = duck_meta(ref);
    json_t *ours = duck_meta(f.path);
    static const char *const keys[] = {"type",         "type_length",    "repetition_type",
                                       "num_children", "converted_type", "scale",
                                       "precision",    "field_id",       "logical_type"};
    json_t *ts = json_object_get(theirs, "schema"), *os = json_object_get(ours, "schema");
    assert_int_equal(json_array_size(ts), json_array_size(os));
    int differences = 0;
    for (size_t i = 1; i < json_array_size(ts); i++) {
        json_t *a = json_array_get(ts, i), *b = json_array_get(os, i);
        assert_string_equal(jstr(a, "name"), jstr(b, "name"));
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            const char *x = jstr(a, keys[k]), *y = jstr(b, keys[k]);
            if ((x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0)) {
                fprintf(stderr, "note: reference differs: %s.%s spark=%s lakebase=%s\n",
                        jstr(a, "name"), keys[k], x ? x : "-", y ? y : "-");
                differences++;
                /* Only where our mapping is deliberately richer. */
                const char *name = jstr(a, "name");
                assert_true(strcmp(name, "uuid_col") == 0 || strcmp(name, "smallint_col") == 0 ||
                            strcmp(name, "int_array_col") == 0);
            }
        }
    }
    assert_true(differences > 0 && differences < 10);
    json_decref(theirs);
    json_decref(ours);
    tf_free(&f);
    lb_buf_free(&rows);
    lb_buf_free(&rows2);
    lake_schema_free(s);
}

/* ---- rows by column ---------------------------------------------------------- */

/* Render rows [first, first + n) of columns into f->expected, as tf_row
 * does for the rows it writes. */
static void
tf_expect_columns(tfile *f, lake_value *const *columns, size_t ncolumns, size_t first, size_t n)
{
    const lake__node *root = lake__schema_node(f->schema, LAKE_SCHEMA_ROOT);
    for (size_t r = first; r < first + n; r++) {
        for (size_t k = 0; k < ncolumns; k++) {
            if (k)
                lb_buf_append_str(&f->expected, " | ");
            render(&f->expected, f->schema, root->children[k], &columns[k][r]);
        }
        lb_buf_append_str(&f->expected, "\n");
        f->rows++;
    }
}

/* Write rows [first, first + n) of columns with lake_parquet_write_columns. */
static void
tf_columns(tfile *f, lake_value *const *columns, size_t ncolumns, size_t first, size_t n)
{
    const lake_value *batch[64];
    assert_true(ncolumns <= 64);
    for (size_t k = 0; k < ncolumns; k++)
        batch[k] = columns[k] + first;
    int rc = lake_parquet_write_columns(f->w, batch, ncolumns, n);
    if (rc)
        fail_msg("rows %zu.. of %s: %s", first, f->path, lake_parquet_writer_error(f->w));
    tf_expect_columns(f, columns, ncolumns, first, n);
}

static void
read_whole(const char *path, lb_buf *out)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char chunk[65536];
    size_t n;
    lb_buf_reset(out);
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        assert_int_equal(lb_buf_append(out, chunk, n), 0);
    fclose(fp);
}

#define COLUMN_ROWS 3000

/*
 * Rows given by column make the file that the same rows make one at a
 * time: every type required and optional, a list and a struct (which go
 * row by row), a distinct column, many small pages, batches of all sizes.
 * With a tiny dictionary limit, the dictionaries fall back to PLAIN in the
 * middle of a batch and both readers still read every value back.
 */
static void
test_write_columns(void **state)
{
    (void)state;
    lake_schema *s = all_types_schema();
    add_field(s, LAKE_SCHEMA_ROOT, "uniq", 300, LAKE_TYPE_INT64, true);
    add_field(s, LAKE_SCHEMA_ROOT, "text", 301, LAKE_TYPE_STRING, false);
    int l = add_field(s, LAKE_SCHEMA_ROOT, "tags", 302, LAKE_TYPE_LIST, false);
    add_field(s, l, NULL, 303, LAKE_TYPE_STRING, false);
    int st = add_field(s, LAKE_SCHEMA_ROOT, "pt", 304, LAKE_TYPE_STRUCT, false);
    add_field(s, st, "x", 305, LAKE_TYPE_DOUBLE, true);
    const size_t ncols = 2 * NTYPES + 4;

    lake_value *columns[2 * NTYPES + 4];
    for (size_t k = 0; k < ncols; k++)
        columns[k] = calloc(COLUMN_ROWS, sizeof(lake_value));
    lake_value(*tags)[2] = calloc(COLUMN_ROWS, sizeof(*tags));
    lake_value *pts = calloc(COLUMN_ROWS, sizeof(lake_value));
    char(*texts)[32] = calloc(COLUMN_ROWS, sizeof(*texts));
    lake_value row[2 * NTYPES];
    for (unsigned r = 0; r < COLUMN_ROWS; r++) {
        all_types_row(r, row);
        for (size_t k = 0; k < 2 * NTYPES; k++)
            columns[k][r] = row[k];
        columns[2 * NTYPES][r] = lake_int((int64_t)r * 1000003 - 5);
        snprintf(texts[r], sizeof(texts[r]), "text %u", r * 7919);
        columns[2 * NTYPES + 1][r] = r % 5 == 0 ? lake_null() : lake_str(texts[r]);
        tags[r][0] = lake_str(cities[r % 6]);
        tags[r][1] = r % 4 ? lake_null() : lake_str(texts[r]);
        columns[2 * NTYPES + 2][r] = r % 7 == 0 ? lake_null() : lake_list(tags[r], r % 3);
        pts[r] = lake_double(r * 0.25);
        columns[2 * NTYPES + 3][r] = r % 6 == 0 ? lake_null() : lake_struct(&pts[r], 1);
    }
    static const size_t batches[] = {1, 2, 3, 5, 8, 13, 100, 511, 512, 513, 1000};

    lb_buf a = LB_BUF_INIT, b = LB_BUF_INIT;
    for (int mode = 0; mode < 2; mode++) {
        lake_parquet_options o;
        lake_parquet_options_init(&o);
        o.page_bytes = 700;
        o.page_version = mode + 1;
        if (mode == 1)
            o.dictionary_bytes = 100;
        tfile by_row, by_column;
        tf_open(&by_row, s, &o, mode == 0 ? "by-row" : "by-row-small-dictionary");
        tf_open(&by_column, s, &o, mode == 0 ? "by-column" : "by-column-small-dictionary");
        lake_value vals[2 * NTYPES + 4];
        for (unsigned r = 0; r < COLUMN_ROWS; r++) {
            for (size_t k = 0; k < ncols; k++)
                vals[k] = columns[k][r];
            tf_row(&by_row, vals, ncols);
        }
        size_t first = 0;
        for (size_t i = 0; first < COLUMN_ROWS; i++) {
            size_t n = batches[i % (sizeof(batches) / sizeof(batches[0]))];
            if (n > COLUMN_ROWS - first)
                n = COLUMN_ROWS - first;
            tf_columns(&by_column, columns, ncols, first, n);
            first += n;
        }
        assert_int_equal(lake_parquet_rows(by_column.w), COLUMN_ROWS);
        tf_close(&by_row, NULL);
        tf_close(&by_column, NULL);
        assert_string_equal(by_column.expected.data, by_row.expected.data);
        check_rows(&by_column);
        if (mode == 0) {
            /* Pages end after the same rows: the files are the same. */
            read_whole(by_row.path, &a);
            read_whole(by_column.path, &b);
            assert_int_equal(a.len, b.len);
            assert_memory_equal(a.data, b.data, a.len);
        }
        tf_free(&by_row);
        tf_free(&by_column);
    }
    lb_buf_free(&a);
    lb_buf_free(&b);
    for (size_t k = 0; k < ncols; k++)
        free(columns[k]);
    free(tags);
    free(pts);
    free(texts);
    lake_schema_free(s);
}

/* A batch with bad rows: the rows before the first bad one (in any column)
 * go in, the error names that one, and the writer goes on. */
static void
test_write_columns_bad_values(void **state)
{
    (void)state;
    lake_schema *s;
    assert_int_equal(lake_schema_new(&s), 0);
    add_field(s, LAKE_SCHEMA_ROOT, "id", 1, LAKE_TYPE_INT32, true);
    add_field(s, LAKE_SCHEMA_ROOT, "small", 2, LAKE_TYPE_INT8, false);
    add_field(s, LAKE_SCHEMA_ROOT, "name", 3, LAKE_TYPE_STRING, true);
    add_decimal(s, LAKE_SCHEMA_ROOT, "amount", 4, 5, 2, false);
    tfile f;
    tf_open(&f, s, NULL, "by-column-bad-values");
    enum { N = 10 };
    lake_value id[N], small[N], name[N], amount[N];
    for (int r = 0; r < N; r++) {
        id[r] = lake_int(r);
        small[r] = r % 2 ? lake_null() : lake_int(-r);
        name[r] = lake_str(cities[r % 6]);
        amount[r] = lake_decimal(r * 1001);
    }
    lake_value *columns[4] = {id, small, name, amount};
    const lake_value *batch[4] = {id, small, name, amount};

    small[6] = lake_int(300);            /* out of range at row 6 */
    name[4] = lake_bytes("\xc3\x28", 2); /* bad UTF-8 at row 4 */
    amount[4] = lake_decimal(100000);    /* also row 4, a later column */
    assert_int_equal(lake_parquet_write_columns(f.w, batch, 4, N), LB_EVALUE);
    const char *msg = lake_parquet_writer_error(f.w);
    if (!strstr(msg, "invalid UTF-8 at byte 0 of a value for column \"name\""))
        fail_msg("unexpected error \"%s\"", msg);
    assert_int_equal(lake_parquet_rows(f.w), 4);
    tf_expect_columns(&f, columns, 4, 0, 4);

    name[4] = lake_str("fixed");
    amount[4] = lake_decimal(4004);
    const lake_value *rest[4] = {id + 4, small + 4, name + 4, amount + 4};
    assert_int_equal(lake_parquet_write_columns(f.w, rest, 4, N - 4), LB_EVALUE);
    assert_true(strstr(lake_parquet_writer_error(f.w), "value 300 is out of range for int8"));
    assert_int_equal(lake_parquet_rows(f.w), 6);
    tf_expect_columns(&f, columns, 4, 4, 2);
    small[6] = lake_int(6);
    tf_columns(&f, columns, 4, 6, N - 6);
    /* Wrong shapes are refused whole. */
    assert_int_equal(lake_parquet_write_columns(f.w, batch, 3, 1), LB_EVALUE);
    const lake_value *holes[4] = {id, NULL, name, amount};
    assert_int_equal(lake_parquet_write_columns(f.w, holes, 4, 1), LB_EVALUE);
    assert_int_equal(lake_parquet_write_columns(f.w, holes, 4, 0), 0);
    assert_int_equal(lake_parquet_rows(f.w), N);
    tf_close(&f, NULL);
    check_rows(&f);
    tf_free(&f);
    lake_schema_free(s);
}

/* Rough write throughput, printed for the record (not asserted). */
static void
test_write_speed(void **state)
{
    (void)state;
    lake_schema *s = simple_schema();
    int fd = open("/dev/null", O_WRONLY);
    lake_parquet_writer *w;
    lb_err err = {0};
    assert_int_equal(lake_parquet_writer_new_fd(s, NULL, fd, &w, &err), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const unsigned nrows = 300000;
    for (unsigned r = 0; r < nrows; r++) {
        lake_value vals[4], tags[3];
        char buf[32];
        simple_row(r, vals, tags, buf, sizeof(buf));
        assert_int_equal(lake_parquet_write_row(w, vals, 4), 0);
    }
    lake_parquet_file_stats *st;
    assert_int_equal(lake_parquet_writer_close(w, &st), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr,
            "note: %u rows (4 columns, zstd, dictionary) in %.3f s: %.0f rows/s, %.1f MB "
            "written\n",
            nrows, secs, nrows / secs, (double)st->file_bytes / 1e6);
    lake_parquet_file_stats_free(st);
    lake_parquet_writer_free(w);
    close(fd);
    lake_schema_free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_types),
        cmocka_unit_test(test_lists_and_structs),
        cmocka_unit_test(test_codecs_and_page_versions),
        cmocka_unit_test(test_many_row_groups),
        cmocka_unit_test(test_dictionary_and_fallback),
        cmocka_unit_test(test_long_strings),
        cmocka_unit_test(test_statistics),
        cmocka_unit_test(test_float_statistics),
        cmocka_unit_test(test_bad_schemas),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_sink_failure),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_trusted_utf8),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_all_null_pages),
        cmocka_unit_test(test_reference_structure),
        cmocka_unit_test(test_write_columns),
        cmocka_unit_test(test_write_columns_bad_values),
        cmocka_unit_test(test_write_speed),
    };
    return lake_test_run("lake-parquet", tests);
}
