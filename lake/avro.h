/*
 * avro.h: Avro object container files, written and read.
 *
 * The writer takes records as trees of typed values (lake_avro_value) for a
 * schema given as Avro JSON, and pushes the bytes of one container file to
 * a sink: the header (magic, metadata map with avro.schema and avro.codec,
 * 16-byte sync marker), then blocks of records (object count, byte size,
 * records, sync marker), each compressed with the file's codec ("null", or
 * "deflate": raw RFC 1951 deflate as the Avro spec says).
 *
 * Schemas keep every attribute they are given, so Iceberg's "field-id",
 * "element-id", "key-id" and "value-id" reach the file's avro.schema
 * untouched. The parser checks those ids too: each must be an integer, and
 * no id may appear twice in one schema (Iceberg resolves columns by id).
 * Supported types: null, boolean, int, long, float, double, bytes, string,
 * fixed, record, array, map and unions, and references to named types
 * (so recursive records work). Enums are refused with LB_EUNSUPPORTED.
 *
 * The reader decodes files of the same feature set from memory. The
 * Iceberg writer uses it to load the manifests of an existing table.
 *
 * Errors. A value that does not fit the schema is refused with LB_EVALUE
 * before any of it is buffered, and the message names the place in the
 * record ("data_file.lower_bounds[2].value: expected bytes, got long"): the
 * writer stays usable. A failure of the sink or of memory makes the writer
 * dead: every later call returns that first error.
 */
#ifndef LAKE_AVRO_H
#define LAKE_AVRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "errors.h"

/* Kinds of schema types and of values. */
typedef enum lake_avro_kind {
    LAKE_AVRO_NULL = 0,
    LAKE_AVRO_BOOLEAN,
    LAKE_AVRO_INT,
    LAKE_AVRO_LONG,
    LAKE_AVRO_FLOAT,
    LAKE_AVRO_DOUBLE,
    LAKE_AVRO_BYTES,
    LAKE_AVRO_STRING,
    LAKE_AVRO_FIXED,
    LAKE_AVRO_RECORD,
    LAKE_AVRO_ARRAY,
    LAKE_AVRO_MAP,
    LAKE_AVRO_UNION,
} lake_avro_kind;

typedef struct lake_avro_entry lake_avro_entry;

/*
 * One value. It borrows its bytes and children: the writer encodes it
 * before lake_avro_write() returns. A value for a union-typed schema may be
 * either an explicit LAKE_AVRO_UNION (branch index + value) or the branch
 * value itself, in which case the branch is the only one of that kind
 * (null for LAKE_AVRO_NULL): so a ["null", "long"] field takes
 * lake_avro_null() or lake_avro_long(5). Several branches of one kind (two
 * records, say) need the explicit form.
 */
typedef struct lake_avro_value {
    lake_avro_kind kind;
    union {
        bool b;
        int32_t i;
        int64_t l;
        float f;
        double d;
        struct {
            const void *ptr; /* borrowed; BYTES, STRING (UTF-8, not checked), FIXED */
            size_t len;
        } bytes;
        struct {
            const struct lake_avro_value *items; /* borrowed; RECORD fields in order, ARRAY items */
            size_t count;
        } list;
        struct {
            const lake_avro_entry *entries; /* borrowed */
            size_t count;
        } map;
        struct {
            int branch; /* index in the union */
            const struct lake_avro_value *value;
        } uni;
    } u;
} lake_avro_value;

/* One map entry: a string key and its value. */
struct lake_avro_entry {
    const char *key; /* borrowed, key_len bytes */
    size_t key_len;
    lake_avro_value value;
};

static inline lake_avro_value
lake_avro_null(void)
{
    lake_avro_value v;
    memset(&v, 0, sizeof(v));
    return v;
}

static inline lake_avro_value
lake_avro_boolean(bool b)
{
    lake_avro_value v = lake_avro_null();
    v.kind = LAKE_AVRO_BOOLEAN;
    v.u.b = b;
    return v;
}

static inline lake_avro_value
lake_avro_int(int32_t i)
{
    lake_avro_value v = lake_avro_null();
    v.kind = LAKE_AVRO_INT;
    v.u.i = i;
    return v;
}

static inline lake_avro_value
lake_avro_long(int64_t l)
{
    lake_avro_value v = lake_avro_null();
    v.kind = LAKE_AVRO_LONG;
    v.u.l = l;
    return v;
}

static inline lake_avro_value
lake_avro_float(float f)
{
    lake_avro_value v = lake_avro_null();
    v.kind = LAKE_AVRO_FLOAT;
    v.u.f = f;
    return v;
}

static inline lake_avro_value
lake_avro_double(double d)
{
    lake_avro_value v = lake_avro_null();
    v.kind = LAKE_AVRO_DOUBLE;
    v.u.d = d;
    return v;
}

static inline lake_avro_value
lake_avro_bytes(const void *ptr, size_t len)
{
    lake_avro_value v = lake_avro_null();
    v.kind = LAKE_AVRO_BYTES;
    v.u.bytes.ptr = ptr;
    v.u.bytes.len = len;
    return v;
}

static inline lake_avro_value
lake_avro_string_n(const char *s, size_t len)
{
    lake_avro_value v = lake_avro_bytes(s, len);
    v.kind = LAKE_AVRO_STRING;
    return v;
}

static inline lake_avro_value
lake_avro_string(const char *s)
{
    return lake_avro_string_n(s, strlen(s));
}

static inline lake_avro_value
lake_avro_fixed(const void *ptr, size_t len)
{
    lake_avro_value v = lake_avro_bytes(ptr, len);
    v.kind = LAKE_AVRO_FIXED;
    return v;
}

static inline lake_avro_value
lake_avro_record(const lake_avro_value *fields, size_t count)
{
    lake_avro_value v = lake_avro_null();
    v.kind = LAKE_AVRO_RECORD;
    v.u.list.items = fields;
    v.u.list.count = count;
    return v;
}

static inline lake_avro_value
lake_avro_array(const lake_avro_value *items, size_t count)
{
    lake_avro_value v = lake_avro_record(items, count);
    v.kind = LAKE_AVRO_ARRAY;
    return v;
}

static inline lake_avro_value
lake_avro_map(const lake_avro_entry *entries, size_t count)
{
    lake_avro_value v = lake_avro_null();
    v.kind = LAKE_AVRO_MAP;
    v.u.map.entries = entries;
    v.u.map.count = count;
    return v;
}

static inline lake_avro_value
lake_avro_union(int branch, const lake_avro_value *value)
{
    lake_avro_value v = lake_avro_null();
    v.kind = LAKE_AVRO_UNION;
    v.u.uni.branch = branch;
    v.u.uni.value = value;
    return v;
}

/* The value inside an explicit union (recursively), or v itself. */
const lake_avro_value *lake_avro_unwrap(const lake_avro_value *v);

/* Name of a kind ("record", ...). Static storage. */
const char *lake_avro_kind_name(lake_avro_kind k);

/* ---- schemas ---------------------------------------------------------------- */

typedef struct lake_avro_schema lake_avro_schema;

/* Parse an Avro schema (JSON text of len bytes). 0, LB_EPARSE (not JSON),
 * LB_ESCHEMA (not a valid schema: unknown type or reference, bad or
 * duplicate name, union inside a union, duplicate field id, ...),
 * LB_EUNSUPPORTED (enum) or -ENOMEM, with a message in err (may be NULL).
 * The caller frees *out with lake_avro_schema_free(). */
int lake_avro_schema_parse(const char *json, size_t len, lake_avro_schema **out, lb_err *err);
void lake_avro_schema_free(lake_avro_schema *s);

/* The schema as compact JSON, attributes kept: what goes to avro.schema.
 * Owned by the schema. */
const char *lake_avro_schema_json(const lake_avro_schema *s);

/* Kind of the schema's top-level type. */
lake_avro_kind lake_avro_schema_kind(const lake_avro_schema *s);

/* ---- writing ---------------------------------------------------------------- */

typedef enum lake_avro_codec {
    LAKE_AVRO_CODEC_NULL = 0,
    LAKE_AVRO_CODEC_DEFLATE,
} lake_avro_codec;

typedef struct lake_avro_options {
    lake_avro_codec codec; /* default DEFLATE */
    int deflate_level;     /* 0..9, or -1 for zlib's default; default -1 */
    size_t block_bytes;    /* a block is written once its records reach this size; 64 KiB */
    size_t block_records;  /* ... or this many records; 0 for no limit (default) */
    const uint8_t *sync;   /* 16 bytes, copied; NULL (default) for random ones */
} lake_avro_options;

/* Receives the file's bytes in order; returns 0 or an error, which kills
 * the writer. */
typedef int (*lake_avro_sink_fn)(void *arg, const void *bytes, size_t n);

/* A sink that appends to the lb_buf (common/buf.h) passed as arg. */
int lake_avro_buf_sink(void *arg, const void *bytes, size_t n);

typedef struct lake_avro_writer lake_avro_writer;

void lake_avro_options_init(lake_avro_options *o);

/* Start a file. The schema must outlive the writer; opts may be NULL for
 * the defaults and is copied. Nothing is written until the first block or
 * close, so metadata can be added first. 0, LB_EBADCONFIG (bad options,
 * message in err, may be NULL) or -ENOMEM. The caller frees *out with
 * lake_avro_writer_free(). */
int lake_avro_writer_new(const lake_avro_schema *schema, const lake_avro_options *opts,
                         lake_avro_sink_fn sink, void *sink_arg, lake_avro_writer **out,
                         lb_err *err);

/* Add a pair to the header's metadata (copied; a later pair with the same
 * key replaces it). Keys starting with "avro." are the format's own:
 * -EINVAL. -EBUSY once the header is out (after the first block). */
int lake_avro_set_meta(lake_avro_writer *w, const char *key, const void *value, size_t len);
int lake_avro_set_meta_str(lake_avro_writer *w, const char *key, const char *value);

/* Append one datum of the schema's type. 0; LB_EVALUE if it does not fit
 * (nothing written, the writer stays usable); or the writer is dead. */
int lake_avro_write(lake_avro_writer *w, const lake_avro_value *datum);

/* Write the buffered records out as a block now (no-op if none). */
int lake_avro_flush_block(lake_avro_writer *w);

/* Finish: header if not yet written, then the last block. Call once. */
int lake_avro_writer_close(lake_avro_writer *w);

/* Datums accepted and bytes given to the sink so far. */
int64_t lake_avro_records(const lake_avro_writer *w);
uint64_t lake_avro_bytes_written(const lake_avro_writer *w);

void lake_avro_writer_free(lake_avro_writer *w);

/* The message of the last failure, "" if none. Owned by the writer. */
const char *lake_avro_writer_error(const lake_avro_writer *w);

/* ---- reading ---------------------------------------------------------------- */

typedef struct lake_avro_reader lake_avro_reader;

/* Open a container file held in memory (borrowed: it must outlive the
 * reader). Reads the header and parses the schema. 0, LB_EPARSE (not an
 * Avro file, bad header or schema), LB_ETRUNCATED, LB_EUNSUPPORTED (a codec
 * other than null and deflate) or -ENOMEM, with a message in err (may be
 * NULL). The caller frees *out with lake_avro_reader_free(). */
int lake_avro_reader_open(const void *bytes, size_t len, lake_avro_reader **out, lb_err *err);

/* The next datum: 1 and *datum set (valid until the next call or free), 0
 * at the end of the file, or LB_EPARSE / LB_ETRUNCATED / LB_ETOOBIG (a
 * datum needing more than 256 MiB) / -ENOMEM with a message in
 * lake_avro_reader_error(). Decoded unions are explicit LAKE_AVRO_UNION
 * values, so a datum can be written again with the same schema. */
int lake_avro_reader_next(lake_avro_reader *r, const lake_avro_value **datum);

/* A header metadata value, or NULL; *len gets its length. Owned by r. */
const void *lake_avro_reader_meta(const lake_avro_reader *r, const char *key, size_t *len);
const lake_avro_schema *lake_avro_reader_schema(const lake_avro_reader *r);
void lake_avro_reader_free(lake_avro_reader *r);
const char *lake_avro_reader_error(const lake_avro_reader *r);

#endif
