/*
 * test_avro.c: files from the Avro writer are read back by avsc (through
 * lake/tests/avro_read.mjs) and by our own reader, and both must give back
 * exactly the data written, for every type, both codecs and files of many
 * blocks. The expected text is rendered here from the values written and
 * the schema's JSON (walked with jansson, not with avro.c's parser), in the
 * canonical form the script prints.
 *
 * Also: field-id / element-id / key-id / value-id attributes arrive
 * intact in the file's schema; bad schemas and bad values are refused with
 * a message and leave the file valid; a failing sink kills the writer; our
 * reader survives truncated and corrupted files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro.h"
#include "buf.h"
#include "errors.h"
#include "fileio.h"
#include "testutil.h"

#include "lake_test.h"

static int g_seq;

/* ---- canonical rendering from the schema JSON -------------------------- */

typedef struct names {
    const char *name[64];
    json_t *def[64];
    int n;
} names;

static json_t *
resolve(names *nm, json_t *t)
{
    if (json_is_string(t)) {
        const char *s = json_string_value(t);
        const char *dot = strrchr(s, '.');
        for (int i = 0; i < nm->n; i++)
            if (strcmp(nm->name[i], dot ? dot + 1 : s) == 0)
                return nm->def[i];
    }
    return t;
}

static const char *
type_name(json_t *t)
{
    if (json_is_string(t))
        return json_string_value(t);
    if (json_is_array(t))
        return "union";
    return json_string_value(json_object_get(t, "type"));
}

static void
render(lb_buf *out, names *nm, json_t *t, const lake_avro_value *v)
{
    t = resolve(nm, t);
    const char *tn = type_name(t);
    if (json_is_object(t)) {
        json_t *name = json_object_get(t, "name");
        if (name && nm->n < 64) {
            nm->name[nm->n] = json_string_value(name);
            nm->def[nm->n++] = t;
        }
    }
    if (strcmp(tn, "union") == 0) {
        int br = -1;
        const lake_avro_value *inner = v;
        if (v->kind == LAKE_AVRO_UNION) {
            br = v->u.uni.branch;
            inner = v->u.uni.value;
        } else {
            for (size_t i = 0; i < json_array_size(t); i++) {
                json_t *b = resolve(nm, json_array_get(t, i));
                const char *bn = type_name(b);
                if (strcmp(bn, lake_avro_kind_name(v->kind)) == 0)
                    br = (int)i;
            }
        }
        assert_true(br >= 0);
        json_t *b = resolve(nm, json_array_get(t, (size_t)br));
        if (strcmp(type_name(b), "null") == 0) {
            lb_buf_append_str(out, "null");
            return;
        }
        json_t *bname = json_is_object(b) ? json_object_get(b, "name") : NULL;
        lb_buf_printf(out, "%s:", bname ? json_string_value(bname) : type_name(b));
        render(out, nm, b, inner);
        return;
    }
    if (strcmp(tn, "null") == 0) {
        lb_buf_append_str(out, "null");
    } else if (strcmp(tn, "boolean") == 0) {
        lb_buf_append_str(out, v->u.b ? "true" : "false");
    } else if (strcmp(tn, "int") == 0) {
        lb_buf_printf(out, "%d", v->u.i);
    } else if (strcmp(tn, "long") == 0) {
        lb_buf_printf(out, "%lld", (long long)v->u.l);
    } else if (strcmp(tn, "float") == 0) {
        uint32_t bits;
        memcpy(&bits, &v->u.f, 4);
        lb_buf_printf(out, "f:%08x", bits);
    } else if (strcmp(tn, "double") == 0) {
        uint64_t bits;
        memcpy(&bits, &v->u.d, 8);
        lb_buf_printf(out, "d:%016llx", (unsigned long long)bits);
    } else if (strcmp(tn, "bytes") == 0 || strcmp(tn, "fixed") == 0) {
        lb_buf_append_str(out, "0x");
        for (size_t i = 0; i < v->u.bytes.len; i++)
            lb_buf_printf(out, "%02x", ((const uint8_t *)v->u.bytes.ptr)[i]);
    } else if (strcmp(tn, "string") == 0) {
        json_t *s = json_stringn(v->u.bytes.ptr, v->u.bytes.len);
        assert_non_null(s);
        char *text = json_dumps(s, JSON_ENCODE_ANY);
        lb_buf_append_str(out, text);
        free(text);
        json_decref(s);
    } else if (strcmp(tn, "record") == 0) {
        json_t *fields = json_object_get(t, "fields");
        lb_buf_append_str(out, "{");
        for (size_t i = 0; i < json_array_size(fields); i++) {
            json_t *f = json_array_get(fields, i);
            lb_buf_printf(out, "%s%s=", i ? "," : "",
                          json_string_value(json_object_get(f, "name")));
            render(out, nm, json_object_get(f, "type"), &v->u.list.items[i]);
        }
        lb_buf_append_str(out, "}");
    } else if (strcmp(tn, "array") == 0) {
        lb_buf_append_str(out, "[");
        for (size_t i = 0; i < v->u.list.count; i++) {
            if (i)
                lb_buf_append_str(out, ",");
            render(out, nm, json_object_get(t, "items"), &v->u.list.items[i]);
        }
        lb_buf_append_str(out, "]");
    } else if (strcmp(tn, "map") == 0) {
        lb_buf_append_str(out, "{");
        for (size_t i = 0; i < v->u.map.count; i++) {
            const lake_avro_entry *e = &v->u.map.entries[i];
            json_t *k = json_stringn(e->key, e->key_len);
            char *text = json_dumps(k, JSON_ENCODE_ANY);
            lb_buf_printf(out, "%s%s:", i ? "," : "", text);
            free(text);
            json_decref(k);
            render(out, nm, json_object_get(t, "values"), &e->value);
        }
        lb_buf_append_str(out, "}");
    } else {
        fail_msg("unexpected schema type %s", tn);
    }
}

static char *
render_datum(const char *schema_json, const lake_avro_value *v)
{
    json_t *schema = json_loads(schema_json, JSON_DECODE_ANY, NULL);
    assert_non_null(schema);
    names nm = {.n = 0};
    lb_buf out = LB_BUF_INIT;
    render(&out, &nm, schema, v);
    json_decref(schema);
    lb_buf_append(&out, "", 1);
    return lb_buf_steal(&out, NULL);
}

/* ---- files and the reader script ----------------------------------------- */

typedef struct tfile {
    char path[PATH_MAX];
    lb_buf bytes;
    lake_avro_schema *schema;
    lake_avro_writer *w;
    json_t *expected; /* canonical text per datum */
} tfile;

static lake_avro_schema *
parse_schema(const char *json)
{
    lake_avro_schema *s = NULL;
    lb_err err = {0};
    int rc = lake_avro_schema_parse(json, strlen(json), &s, &err);
    if (rc)
        fail_msg("schema refused: %s (%s)", err.message, lb_strerror(rc));
    return s;
}

static void
tf_open(tfile *f, const char *schema_json, const lake_avro_options *o, const char *name)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "%s/%02d-%s.avro", g_dir, ++g_seq, name);
    f->schema = parse_schema(schema_json);
    lb_err err = {0};
    int rc = lake_avro_writer_new(f->schema, o, lake_avro_buf_sink, &f->bytes, &f->w, &err);
    if (rc)
        fail_msg("writer: %s", err.message);
    f->expected = json_array();
}

static void
tf_write(tfile *f, const lake_avro_value *v)
{
    int rc = lake_avro_write(f->w, v);
    if (rc)
        fail_msg("write %zu: %s", json_array_size(f->expected), lake_avro_writer_error(f->w));
    char *text = render_datum(lake_avro_schema_json(f->schema), v);
    json_array_append_new(f->expected, json_string(text));
    free(text);
}

static void
tf_close(tfile *f)
{
    int rc = lake_avro_writer_close(f->w);
    if (rc)
        fail_msg("close: %s", lake_avro_writer_error(f->w));
    assert_int_equal(lake_avro_bytes_written(f->w), f->bytes.len);
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(f->bytes.data, 1, f->bytes.len, fp), f->bytes.len);
    assert_int_equal(fclose(fp), 0);
}

static void
tf_free(tfile *f)
{
    lake_avro_writer_free(f->w);
    lake_avro_schema_free(f->schema);
    lb_buf_free(&f->bytes);
    json_decref(f->expected);
}

static json_t *
avsc_read(const char *path)
{
    char cmd[3 * PATH_MAX], errfile[PATH_MAX];
    snprintf(errfile, sizeof(errfile), "%s/node-stderr.txt", g_dir);
    snprintf(cmd, sizeof(cmd), "node '%s/lake/tests/avro_read.mjs' '%s' 2>'%s'", tu_project_root(),
             path, errfile);
    lb_buf out = LB_BUF_INIT;
    int rc = tu_run(cmd, &out);
    if (rc != 0) {
        lb_buf err = LB_BUF_INIT;
        lb_read_file(errfile, &err);
        fail_msg("avro_read.mjs %s exited %d:\n%.3000s", path, rc, err.data ? err.data : "");
    }
    json_error_t jerr;
    json_t *j = json_loadb(out.data, out.len, 0, &jerr);
    if (!j)
        fail_msg("avro_read.mjs: bad JSON: %s", jerr.text);
    lb_buf_free(&out);
    return j;
}

/* Every datum avsc read equals what was written, in order. */
static void
compare_records(const char *who, json_t *expected, json_t *got)
{
    if (json_array_size(expected) != json_array_size(got))
        fail_msg("%s read %zu datums, %zu were written", who, json_array_size(got),
                 json_array_size(expected));
    for (size_t i = 0; i < json_array_size(expected); i++) {
        const char *want = json_string_value(json_array_get(expected, i));
        const char *have = json_string_value(json_array_get(got, i));
        if (!have || strcmp(want, have) != 0)
            fail_msg("%s: datum %zu differs:\n want: %.500s\n  got: %.500s", who, i, want,
                     have ? have : "(none)");
    }
}

/* Our reader must give back the same datums, and they re-encode to the
 * same canonical text. */
static void
check_own_reader(const tfile *f)
{
    lake_avro_reader *r = NULL;
    lb_err err = {0};
    int rc = lake_avro_reader_open(f->bytes.data, f->bytes.len, &r, &err);
    if (rc)
        fail_msg("reader: %s", err.message);
    assert_string_equal(lake_avro_schema_json(lake_avro_reader_schema(r)),
                        lake_avro_schema_json(f->schema));
    json_t *got = json_array();
    const lake_avro_value *v;
    while ((rc = lake_avro_reader_next(r, &v)) == 1) {
        char *text = render_datum(lake_avro_schema_json(f->schema), v);
        json_array_append_new(got, json_string(text));
        free(text);
    }
    if (rc)
        fail_msg("reader next: %s", lake_avro_reader_error(r));
    compare_records("our reader", f->expected, got);
    json_decref(got);
    lake_avro_reader_free(r);
}

/* ---- the schema used by most tests -------------------------------------- */

static const char *ALL_TYPES =
    "{\"type\":\"record\",\"name\":\"row\",\"namespace\":\"lake.test\",\"fields\":["
    "{\"name\":\"n\",\"type\":\"null\",\"field-id\":1},"
    "{\"name\":\"b\",\"type\":\"boolean\",\"field-id\":2},"
    "{\"name\":\"i\",\"type\":\"int\",\"field-id\":3},"
    "{\"name\":\"l\",\"type\":\"long\",\"field-id\":4},"
    "{\"name\":\"f\",\"type\":\"float\",\"field-id\":5},"
    "{\"name\":\"d\",\"type\":\"double\",\"field-id\":6},"
    "{\"name\":\"by\",\"type\":\"bytes\",\"field-id\":7},"
    "{\"name\":\"s\",\"type\":\"string\",\"field-id\":8,\"doc\":\"a string\"},"
    "{\"name\":\"fx\",\"type\":{\"type\":\"fixed\",\"name\":\"f4\",\"size\":4},\"field-id\":9},"
    "{\"name\":\"opt\",\"type\":[\"null\",\"long\"],\"default\":null,\"field-id\":10},"
    "{\"name\":\"sub\",\"type\":{\"type\":\"record\",\"name\":\"r11\",\"fields\":["
    "  {\"name\":\"x\",\"type\":\"int\",\"field-id\":12},"
    "  {\"name\":\"y\",\"type\":[\"null\",\"string\"],\"field-id\":13}]},\"field-id\":11},"
    "{\"name\":\"arr\",\"type\":{\"type\":\"array\",\"items\":\"long\",\"element-id\":15},"
    "\"field-id\":14},"
    "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":"
    "\"string\",\"element-id\":19},\"key-id\":17,\"value-id\":18},\"field-id\":16},"
    "{\"name\":\"kv\",\"type\":[\"null\",{\"type\":\"array\",\"items\":{\"type\":\"record\","
    "\"name\":\"k21_v22\",\"fields\":[{\"name\":\"key\",\"type\":\"int\",\"field-id\":21},"
    "{\"name\":\"value\",\"type\":\"bytes\",\"field-id\":22}]},\"logicalType\":\"map\"}],"
    "\"default\":null,\"field-id\":20},"
    "{\"name\":\"u\",\"type\":[\"null\",\"string\",\"r11\",\"f4\",\"double\"],\"field-id\":23},"
    "{\"name\":\"again\",\"type\":\"lake.test.r11\",\"field-id\":24}"
    "]}";

/* Fills vals (17 fields) for datum k; the arrays hold the children. */
typedef struct row_store {
    lake_avro_value vals[17];
    lake_avro_value sub[2], again[2], arr[8], m_lists[3][3], kv_recs[4][2], kv_items[4], kv,
        u_inner, opt_inner, y;
    lake_avro_entry m[3];
    char s[64], key[3][32], str[3][3][24];
    uint8_t fx[4], by[32], kvb[4][4];
} row_store;

static void
make_row(row_store *r, unsigned k)
{
    memset(r, 0, sizeof(*r));
    lake_avro_value *v = r->vals;
    v[0] = lake_avro_null();
    v[1] = lake_avro_boolean(k % 2);
    v[2] = lake_avro_int(k % 3 == 0 ? INT32_MIN + (int32_t)k : (int32_t)(k * 7919) - 40000);
    v[3] = lake_avro_long(k % 5 == 0 ? INT64_MAX - k : (int64_t)k * -1234567891011LL);
    v[4] = lake_avro_float(k % 7 == 0 ? -0.0f : k % 7 == 1 ? NAN : (float)k / 3.0f);
    v[5] = lake_avro_double(k % 4 == 0 ? INFINITY : k % 4 == 1 ? -1e-300 : (double)k * 1.1);
    size_t nb = k % 32;
    for (size_t i = 0; i < nb; i++)
        r->by[i] = (uint8_t)(k * 31 + i);
    v[6] = lake_avro_bytes(r->by, nb);
    snprintf(r->s, sizeof(r->s), k % 3 ? "row %u \"q\" é\n\t" : "", k);
    v[7] = lake_avro_string(r->s);
    for (int i = 0; i < 4; i++)
        r->fx[i] = (uint8_t)(k >> (8 * i));
    v[8] = lake_avro_fixed(r->fx, 4);
    r->opt_inner = lake_avro_long(-(int64_t)k);
    v[9] = k % 3 == 0   ? lake_avro_null()
           : k % 3 == 1 ? lake_avro_long((int64_t)k << 40)
                        : lake_avro_union(1, &r->opt_inner);
    r->y = k % 2 ? lake_avro_string("y") : lake_avro_null();
    r->sub[0] = lake_avro_int((int32_t)k);
    r->sub[1] = r->y;
    v[10] = lake_avro_record(r->sub, 2);
    size_t na = k % 9;
    for (size_t i = 0; i < na; i++)
        r->arr[i] = lake_avro_long((int64_t)(i * k) - 3);
    v[11] = lake_avro_array(r->arr, na);
    size_t nm = k % 4;
    for (size_t i = 0; i < nm; i++) {
        snprintf(r->key[i], sizeof(r->key[i]), "k%zu_%u", i, k % 10);
        for (size_t j = 0; j < i; j++) {
            snprintf(r->str[i][j], sizeof(r->str[i][j]), "s%zu", j);
            r->m_lists[i][j] = lake_avro_string(r->str[i][j]);
        }
        r->m[i] =
            (lake_avro_entry){r->key[i], strlen(r->key[i]), lake_avro_array(r->m_lists[i], i)};
    }
    v[12] = lake_avro_map(r->m, nm);
    size_t nkv = k % 5;
    for (size_t i = 0; i < nkv; i++) {
        for (int b = 0; b < 4; b++)
            r->kvb[i][b] = (uint8_t)(i + b + k);
        r->kv_recs[i][0] = lake_avro_int((int32_t)(i + 1));
        r->kv_recs[i][1] = lake_avro_bytes(r->kvb[i], i);
        r->kv_items[i] = lake_avro_record(r->kv_recs[i], 2);
    }
    v[13] = k % 6 == 5 ? lake_avro_null() : lake_avro_array(r->kv_items, nkv);
    switch (k % 5) {
    case 0:
        v[14] = lake_avro_null();
        break;
    case 1:
        v[14] = lake_avro_string("in the union");
        break;
    case 2:
        v[14] = lake_avro_record(r->sub, 2);
        break;
    case 3:
        v[14] = lake_avro_fixed(r->fx, 4);
        break;
    default:
        r->u_inner = lake_avro_double(-2.5);
        v[14] = lake_avro_union(4, &r->u_inner);
        break;
    }
    r->again[0] = lake_avro_int(-(int32_t)k);
    r->again[1] = lake_avro_null();
    v[15] = lake_avro_record(r->again, 2);
    v[16] = lake_avro_null(); /* unused slot */
}

static void
write_rows(tfile *f, unsigned n)
{
    for (unsigned k = 0; k < n; k++) {
        row_store r;
        make_row(&r, k);
        lake_avro_value datum = lake_avro_record(r.vals, 16);
        tf_write(f, &datum);
    }
}

/* ---- tests ------------------------------------------------------------------ */

static json_t *
field_of(json_t *record, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(record, "fields"), i, f)
    {
        if (strcmp(json_string_value(json_object_get(f, "name")), name) == 0)
            return f;
    }
    fail_msg("no field %s", name);
    return NULL;
}

static void
check_ids(json_t *schema)
{
    /* The ids as avsc sees them in the file's header. */
    assert_int_equal(json_integer_value(json_object_get(field_of(schema, "l"), "field-id")), 4);
    json_t *sub = field_of(schema, "sub");
    assert_int_equal(json_integer_value(json_object_get(sub, "field-id")), 11);
    json_t *x = field_of(json_object_get(sub, "type"), "x");
    assert_int_equal(json_integer_value(json_object_get(x, "field-id")), 12);
    json_t *arr = json_object_get(field_of(schema, "arr"), "type");
    assert_int_equal(json_integer_value(json_object_get(arr, "element-id")), 15);
    json_t *m = json_object_get(field_of(schema, "m"), "type");
    assert_int_equal(json_integer_value(json_object_get(m, "key-id")), 17);
    assert_int_equal(json_integer_value(json_object_get(m, "value-id")), 18);
    json_t *kv = json_array_get(json_object_get(field_of(schema, "kv"), "type"), 1);
    assert_string_equal(json_string_value(json_object_get(kv, "logicalType")), "map");
    json_t *key = field_of(json_object_get(kv, "items"), "key");
    assert_int_equal(json_integer_value(json_object_get(key, "field-id")), 21);
    assert_string_equal(json_string_value(json_object_get(field_of(schema, "s"), "doc")),
                        "a string");
}

static void
test_every_type_both_codecs(void **state)
{
    (void)state;
    for (int codec = 0; codec < 2; codec++) {
        lake_avro_options o;
        lake_avro_options_init(&o);
        o.codec = codec ? LAKE_AVRO_CODEC_DEFLATE : LAKE_AVRO_CODEC_NULL;
        tfile f;
        tf_open(&f, ALL_TYPES, &o, codec ? "deflate" : "null");
        assert_int_equal(lake_avro_set_meta_str(f.w, "format-version", "2"), 0);
        assert_int_equal(lake_avro_set_meta_str(f.w, "content", "first"), 0);
        assert_int_equal(lake_avro_set_meta_str(f.w, "content", "data"), 0); /* replaces */
        write_rows(&f, 200);
        tf_close(&f);
        json_t *got = avsc_read(f.path);
        assert_string_equal(json_string_value(json_object_get(got, "codec")),
                            codec ? "deflate" : "null");
        json_t *meta = json_object_get(got, "meta");
        assert_string_equal(json_string_value(json_object_get(meta, "format-version")), "2");
        assert_string_equal(json_string_value(json_object_get(meta, "content")), "data");
        assert_string_equal(json_string_value(json_object_get(meta, "avro.codec")),
                            codec ? "deflate" : "null");
        compare_records("avsc", f.expected, json_object_get(got, "records"));
        check_ids(json_object_get(got, "schema"));
        check_own_reader(&f);
        json_decref(got);
        tf_free(&f);
    }
}

static void
test_many_blocks(void **state)
{
    (void)state;
    struct {
        lake_avro_codec codec;
        size_t block_bytes, block_records;
        unsigned rows;
    } cases[] = {
        {LAKE_AVRO_CODEC_DEFLATE, 0, 7, 1000},
        {LAKE_AVRO_CODEC_NULL, 0, 1, 50},
        {LAKE_AVRO_CODEC_DEFLATE, 1024, 0, 3000},
        {LAKE_AVRO_CODEC_NULL, 1, 0, 20},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        lake_avro_options o;
        lake_avro_options_init(&o);
        o.codec = cases[c].codec;
        if (cases[c].block_bytes)
            o.block_bytes = cases[c].block_bytes;
        o.block_records = cases[c].block_records;
        o.deflate_level = 9;
        tfile f;
        tf_open(&f, ALL_TYPES, &o, "blocks");
        write_rows(&f, cases[c].rows / 2);
        assert_int_equal(lake_avro_flush_block(f.w), 0); /* a block cut by hand */
        assert_int_equal(lake_avro_flush_block(f.w), 0); /* and nothing: no empty block */
        write_rows(&f, cases[c].rows - cases[c].rows / 2);
        tf_close(&f);
        json_t *got = avsc_read(f.path);
        compare_records("avsc", f.expected, json_object_get(got, "records"));
        json_t *counts = json_object_get(got, "counts");
        long long sum = 0;
        size_t i;
        json_t *n;
        json_array_foreach(counts, i, n)
        {
            assert_true(json_integer_value(n) > 0);
            if (cases[c].block_records)
                assert_true(json_integer_value(n) <= (long long)cases[c].block_records);
            sum += json_integer_value(n);
        }
        assert_int_equal(sum, cases[c].rows);
        if (cases[c].block_records)
            assert_true(json_array_size(counts) >=
                        (cases[c].rows / 2 + cases[c].block_records - 1) / cases[c].block_records);
        else
            assert_true(json_array_size(counts) >= 10);
        check_own_reader(&f);
        json_decref(got);
        tf_free(&f);
    }
}

static void
test_empty_file(void **state)
{
    (void)state;
    tfile f;
    tf_open(&f, "\"long\"", NULL, "empty");
    assert_int_equal(lake_avro_set_meta_str(f.w, "k", ""), 0);
    tf_close(&f);
    json_t *got = avsc_read(f.path);
    assert_int_equal(json_array_size(json_object_get(got, "records")), 0);
    assert_int_equal(json_integer_value(json_object_get(got, "blocks")), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(got, "meta"), "k")), "");
    check_own_reader(&f);
    json_decref(got);
    tf_free(&f);
}

static void
test_recursive_schema(void **state)
{
    (void)state;
    const char *schema = "{\"type\":\"record\",\"name\":\"node\",\"fields\":["
                         "{\"name\":\"v\",\"type\":\"int\"},"
                         "{\"name\":\"next\",\"type\":[\"null\",\"node\"]}]}";
    tfile f;
    tf_open(&f, schema, NULL, "recursive");
    for (int len = 0; len < 20; len++) {
        lake_avro_value nodes[20][2];
        lake_avro_value recs[20];
        for (int i = len; i >= 0; i--) {
            nodes[i][0] = lake_avro_int(i * 100 + len);
            nodes[i][1] = i == len ? lake_avro_null() : recs[i + 1];
            recs[i] = lake_avro_record(nodes[i], 2);
        }
        tf_write(&f, &recs[0]);
    }
    tf_close(&f);
    json_t *got = avsc_read(f.path);
    compare_records("avsc", f.expected, json_object_get(got, "records"));
    check_own_reader(&f);
    json_decref(got);
    tf_free(&f);
}

static void
expect_schema_error(const char *json, int code, const char *fragment)
{
    lake_avro_schema *s = NULL;
    lb_err err = {0};
    int rc = lake_avro_schema_parse(json, strlen(json), &s, &err);
    if (rc != code)
        fail_msg("schema %s: got %s (%s), want %s", json, lb_err_name(rc), err.message,
                 lb_err_name(code));
    assert_null(s);
    if (!strstr(err.message, fragment))
        fail_msg("schema %s: message \"%s\" does not mention \"%s\"", json, err.message, fragment);
}

static void
test_bad_schemas(void **state)
{
    (void)state;
    expect_schema_error("{\"type\":", LB_EPARSE, "not JSON");
    expect_schema_error("\"longer\"", LB_ESCHEMA, "unknown type \"longer\"");
    expect_schema_error("{\"type\":\"record\",\"name\":\"r\",\"fields\":["
                        "{\"name\":\"a\",\"type\":\"int\",\"field-id\":1},"
                        "{\"name\":\"b\",\"type\":\"int\",\"field-id\":1}]}",
                        LB_ESCHEMA, "field id 1 is used twice");
    expect_schema_error("{\"type\":\"record\",\"name\":\"r\",\"fields\":["
                        "{\"name\":\"a\",\"type\":\"int\",\"field-id\":5},"
                        "{\"name\":\"b\",\"type\":{\"type\":\"array\",\"items\":\"int\","
                        "\"element-id\":5}}]}",
                        LB_ESCHEMA, "field id 5 is used twice");
    expect_schema_error("{\"type\":\"record\",\"name\":\"r\",\"fields\":["
                        "{\"name\":\"a\",\"type\":\"int\",\"field-id\":\"1\"}]}",
                        LB_ESCHEMA, "not an integer");
    expect_schema_error("{\"type\":\"record\",\"name\":\"r\",\"fields\":["
                        "{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"a\",\"type\":\"long\"}]}",
                        LB_ESCHEMA, "two fields \"a\"");
    expect_schema_error("[\"null\",[\"int\"]]", LB_ESCHEMA, "union cannot hold a union");
    expect_schema_error("[\"int\",\"int\"]", LB_ESCHEMA, "union holds int twice");
    expect_schema_error("[]", LB_ESCHEMA, "empty union");
    expect_schema_error("{\"type\":\"record\",\"name\":\"1r\",\"fields\":[]}", LB_ESCHEMA,
                        "invalid name");
    expect_schema_error("{\"type\":\"record\",\"name\":\"r\"}", LB_ESCHEMA, "no \"fields\"");
    expect_schema_error("{\"type\":\"fixed\",\"name\":\"f\"}", LB_ESCHEMA, "no valid size");
    expect_schema_error("{\"type\":\"enum\",\"name\":\"e\",\"symbols\":[\"A\"]}", LB_EUNSUPPORTED,
                        "enum");
    expect_schema_error(
        "{\"type\":\"record\",\"name\":\"r\",\"fields\":["
        "{\"name\":\"a\",\"type\":{\"type\":\"fixed\",\"name\":\"r\",\"size\":1}}]}",
        LB_ESCHEMA, "defined twice");
    expect_schema_error("{\"type\":\"map\"}", LB_ESCHEMA, "without \"values\"");
}

static void
expect_value_error(lake_avro_writer *w, const lake_avro_value *v, const char *fragment)
{
    int rc = lake_avro_write(w, v);
    assert_int_equal(rc, LB_EVALUE);
    if (!strstr(lake_avro_writer_error(w), fragment))
        fail_msg("message \"%s\" does not mention \"%s\"", lake_avro_writer_error(w), fragment);
}

static void
test_bad_values(void **state)
{
    (void)state;
    lake_avro_options o;
    lake_avro_options_init(&o);
    o.block_records = 3;
    tfile f;
    tf_open(&f, ALL_TYPES, &o, "badvalues");
    write_rows(&f, 5);
    row_store r;
    make_row(&r, 7);
    lake_avro_value saved;

    saved = r.vals[3];
    r.vals[3] = lake_avro_int(1);
    lake_avro_value datum = lake_avro_record(r.vals, 16);
    expect_value_error(f.w, &datum, "l: expected long, got int");
    r.vals[3] = saved;

    datum = lake_avro_record(r.vals, 15);
    expect_value_error(f.w, &datum, "has 16 fields, got 15 values");

    saved = r.vals[8];
    r.vals[8] = lake_avro_fixed(r.fx, 3);
    datum = lake_avro_record(r.vals, 16);
    expect_value_error(f.w, &datum, "fx: fixed \"lake.test.f4\" takes 4 bytes, got 3");
    r.vals[8] = saved;

    saved = r.vals[9];
    r.vals[9] = lake_avro_string("x");
    expect_value_error(f.w, &datum, "opt: the union has no string branch");
    r.vals[9] = lake_avro_union(2, &r.opt_inner);
    expect_value_error(f.w, &datum, "opt: union has no branch 2");
    r.vals[9] = saved;

    /* deep inside: the third kv entry's value */
    lake_avro_value bad_kv[4];
    memcpy(bad_kv, r.kv_items, sizeof(bad_kv));
    lake_avro_value rec[2] = {lake_avro_int(3), lake_avro_long(4)};
    bad_kv[2] = lake_avro_record(rec, 2);
    saved = r.vals[13];
    r.vals[13] = lake_avro_array(bad_kv, 3);
    expect_value_error(f.w, &datum, "kv[2].value: expected bytes, got long");
    r.vals[13] = saved;

    lake_avro_value amb_inner = lake_avro_null();
    (void)amb_inner;
    /* the writer is still usable and the file valid */
    write_rows(&f, 5);
    tf_close(&f);
    json_t *got = avsc_read(f.path);
    compare_records("avsc", f.expected, json_object_get(got, "records"));
    json_decref(got);
    tf_free(&f);

    /* ambiguous union kinds need the explicit form */
    tfile g;
    tf_open(&g,
            "[{\"type\":\"fixed\",\"name\":\"a\",\"size\":2},{\"type\":\"fixed\",\"name\":\"b\","
            "\"size\":2}]",
            NULL, "ambiguous");
    lake_avro_value fx = lake_avro_fixed("xy", 2);
    expect_value_error(g.w, &fx, "more than one branch");
    lake_avro_value u = lake_avro_union(1, &fx);
    tf_write(&g, &u);
    tf_close(&g);
    got = avsc_read(g.path);
    compare_records("avsc", g.expected, json_object_get(got, "records"));
    assert_string_equal(json_string_value(json_array_get(json_object_get(got, "records"), 0)),
                        "b:0x7879");
    json_decref(got);
    tf_free(&g);
}

static void
test_metadata_rules(void **state)
{
    (void)state;
    lake_avro_options o;
    lake_avro_options_init(&o);
    o.block_records = 1;
    tfile f;
    tf_open(&f, "\"string\"", &o, "meta");
    assert_int_equal(lake_avro_set_meta_str(f.w, "avro.codec", "null"), -EINVAL);
    assert_non_null(strstr(lake_avro_writer_error(f.w), "reserved"));
    assert_int_equal(lake_avro_set_meta_str(f.w, "schema-id", "0"), 0);
    lake_avro_value s = lake_avro_string("first");
    tf_write(&f, &s); /* a block of one: the header is out */
    assert_int_equal(lake_avro_set_meta_str(f.w, "late", "x"), -EBUSY);
    tf_close(&f);
    assert_int_equal(lake_avro_write(f.w, &s), -EINVAL); /* closed */
    json_t *got = avsc_read(f.path);
    assert_null(json_object_get(json_object_get(got, "meta"), "late"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(got, "meta"), "schema-id")), "0");
    json_decref(got);
    tf_free(&f);

    /* a given sync marker is used */
    uint8_t sync[16];
    for (int i = 0; i < 16; i++)
        sync[i] = (uint8_t)(0xa0 + i);
    lake_avro_options_init(&o);
    o.sync = sync;
    tfile g;
    tf_open(&g, "\"int\"", &o, "sync");
    lake_avro_value one = lake_avro_int(1);
    tf_write(&g, &one);
    tf_close(&g);
    assert_memory_equal(g.bytes.data + g.bytes.len - 16, sync, 16);
    tf_free(&g);

    lake_avro_schema *sch = parse_schema("\"int\"");
    lake_avro_writer *w = NULL;
    lb_err err = {0};
    lake_avro_options_init(&o);
    o.deflate_level = 12;
    lb_buf sink = LB_BUF_INIT;
    assert_int_equal(lake_avro_writer_new(sch, &o, lake_avro_buf_sink, &sink, &w, &err),
                     LB_EBADCONFIG);
    assert_non_null(strstr(err.message, "deflate level"));
    lake_avro_schema_free(sch);
}

static int g_sink_calls;

static int
failing_sink(void *arg, const void *bytes, size_t n)
{
    (void)arg, (void)bytes, (void)n;
    return ++g_sink_calls >= 3 ? -ENOSPC : 0;
}

static void
test_sink_failure(void **state)
{
    (void)state;
    lake_avro_schema *s = parse_schema("\"long\"");
    lake_avro_options o;
    lake_avro_options_init(&o);
    o.block_records = 1;
    lake_avro_writer *w = NULL;
    assert_int_equal(lake_avro_writer_new(s, &o, failing_sink, NULL, &w, NULL), 0);
    lake_avro_value v = lake_avro_long(1);
    int rc = 0;
    for (int i = 0; i < 10 && rc == 0; i++)
        rc = lake_avro_write(w, &v);
    assert_int_equal(rc, -ENOSPC);
    assert_int_equal(lake_avro_write(w, &v), -ENOSPC); /* dead */
    assert_int_equal(lake_avro_writer_close(w), -ENOSPC);
    assert_non_null(strstr(lake_avro_writer_error(w), "sink failed"));
    lake_avro_writer_free(w);
    lake_avro_schema_free(s);
}

/* Truncations and corruptions: the reader returns an error or data, never
 * crashes (the ASan build is the judge), and every truncation is noticed. */
static void
test_reader_bad_input(void **state)
{
    (void)state;
    for (int codec = 0; codec < 2; codec++) {
        lake_avro_options o;
        lake_avro_options_init(&o);
        o.codec = codec ? LAKE_AVRO_CODEC_DEFLATE : LAKE_AVRO_CODEC_NULL;
        o.block_records = 4;
        tfile f;
        tf_open(&f, ALL_TYPES, &o, "corrupt");
        write_rows(&f, 12);
        tf_close(&f);
        for (size_t cut = 0; cut < f.bytes.len; cut += 1 + cut / 50) {
            lake_avro_reader *r = NULL;
            int rc = lake_avro_reader_open(f.bytes.data, cut, &r, NULL);
            if (rc == 0) {
                const lake_avro_value *v;
                int n = 0;
                while ((rc = lake_avro_reader_next(r, &v)) == 1)
                    n++;
                /* ending exactly at a block boundary is a valid shorter file */
                if (rc == 0)
                    assert_true(n % 4 == 0);
                lake_avro_reader_free(r);
            }
        }
        uint8_t *copy = malloc(f.bytes.len);
        unsigned seed = 12345;
        for (int round = 0; round < 3000; round++) {
            memcpy(copy, f.bytes.data, f.bytes.len);
            for (int k = 0; k < 1 + round % 3; k++) {
                seed = seed * 1103515245 + 12345;
                copy[(seed >> 8) % f.bytes.len] ^= (uint8_t)(1 + (seed >> 20) % 255);
            }
            lake_avro_reader *r = NULL;
            if (lake_avro_reader_open(copy, f.bytes.len, &r, NULL) == 0) {
                const lake_avro_value *v;
                while (lake_avro_reader_next(r, &v) == 1)
                    ;
                lake_avro_reader_free(r);
            }
        }
        free(copy);
        tf_free(&f);
    }
    /* a hostile count of nulls is refused before it is allocated */
    lb_buf b = LB_BUF_INIT;
    const char *schema = "{\"type\":\"array\",\"items\":\"null\"}";
    lake_avro_schema *s = parse_schema(schema);
    lake_avro_options o;
    lake_avro_options_init(&o);
    o.codec = LAKE_AVRO_CODEC_NULL;
    uint8_t sync[16] = {0};
    o.sync = sync;
    lake_avro_writer *w = NULL;
    assert_int_equal(lake_avro_writer_new(s, &o, lake_avro_buf_sink, &b, &w, NULL), 0);
    assert_int_equal(lake_avro_writer_close(w), 0);
    lake_avro_writer_free(w);
    /* one block: count 1, 11 bytes: varint 2^60 items, then 0 */
    const uint8_t block[] = {0x02, 0x16, 0x80, 0x80, 0x80, 0x80, 0x80,
                             0x80, 0x80, 0x80, 0x20, 0x00, 0x00};
    lb_buf_append(&b, block, sizeof(block));
    lb_buf_append(&b, sync, 16);
    lake_avro_reader *r = NULL;
    assert_int_equal(lake_avro_reader_open(b.data, b.len, &r, NULL), 0);
    const lake_avro_value *v;
    assert_int_equal(lake_avro_reader_next(r, &v), LB_ETOOBIG);
    lake_avro_reader_free(r);
    lake_avro_schema_free(s);
    lb_buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type_both_codecs),
        cmocka_unit_test(test_many_blocks),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_recursive_schema),
        cmocka_unit_test(test_bad_schemas),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_metadata_rules),
        cmocka_unit_test(test_sink_failure),
        cmocka_unit_test(test_reader_bad_input),
    };
    return lake_test_run("lake-avro", tests);
}
