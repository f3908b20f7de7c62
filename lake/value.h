/*
 * value.h: one typed value of a row, as handed to the lake writers.
 *
 * A value is a small tagged union that borrows its bytes and its children:
 * the writer copies what it keeps before the call returns, so the caller
 * may reuse its buffers right after. Which kind each column type takes:
 *
 *   BOOLEAN                            LAKE_BOOL
 *   INT8, INT16, INT32, INT64          LAKE_INT (range-checked)
 *   DATE                               LAKE_INT, days since 1970-01-01
 *   TIME                               LAKE_INT, µs since midnight
 *   TIMESTAMP, TIMESTAMPTZ             LAKE_INT, µs since the epoch
 *   FLOAT / DOUBLE                     LAKE_FLOAT / LAKE_DOUBLE
 *   DECIMAL(p, s)                      LAKE_DECIMAL, the unscaled integer
 *   STRING, JSON                       LAKE_BYTES, valid UTF-8
 *   BINARY                             LAKE_BYTES
 *   UUID, FIXED(n)                     LAKE_BYTES of exactly 16 / n bytes
 *   LIST                               LAKE_LIST, the elements
 *   STRUCT                             LAKE_STRUCT, one value per field
 *   any optional field                 LAKE_NULL
 */
#ifndef LAKE_VALUE_H
#define LAKE_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A signed 128-bit integer: decimals up to 38 digits. */
typedef __int128 lake_int128;

typedef enum lake_value_kind {
    LAKE_NULL = 0,
    LAKE_BOOL,
    LAKE_INT,
    LAKE_FLOAT,
    LAKE_DOUBLE,
    LAKE_DECIMAL,
    LAKE_BYTES,
    LAKE_LIST,
    LAKE_STRUCT,
} lake_value_kind;

typedef struct lake_value {
    lake_value_kind kind;
    union {
        bool b;
        int64_t i;
        float f;
        double d;
        lake_int128 dec;
        struct {
            const void *ptr; /* borrowed */
            size_t len;
        } bytes;
        struct {
            const struct lake_value *items; /* borrowed; list elements or struct fields */
            size_t count;
        } list;
    } u;
} lake_value;

/* Whether bytes are well-formed UTF-8, as STRING and JSON values must be
 * (no overlongs, no surrogates, nothing past U+10FFFF). */
bool lake_utf8_valid(const void *bytes, size_t n);

static inline lake_value
lake_null(void)
{
    lake_value v;
    memset(&v, 0, sizeof(v));
    return v;
}

static inline lake_value
lake_bool(bool b)
{
    lake_value v = lake_null();
    v.kind = LAKE_BOOL;
    v.u.b = b;
    return v;
}

static inline lake_value
lake_int(int64_t i)
{
    lake_value v = lake_null();
    v.kind = LAKE_INT;
    v.u.i = i;
    return v;
}

static inline lake_value
lake_float(float f)
{
    lake_value v = lake_null();
    v.kind = LAKE_FLOAT;
    v.u.f = f;
    return v;
}

static inline lake_value
lake_double(double d)
{
    lake_value v = lake_null();
    v.kind = LAKE_DOUBLE;
    v.u.d = d;
    return v;
}

static inline lake_value
lake_decimal(lake_int128 unscaled)
{
    lake_value v = lake_null();
    v.kind = LAKE_DECIMAL;
    v.u.dec = unscaled;
    return v;
}

static inline lake_value
lake_bytes(const void *ptr, size_t len)
{
    lake_value v = lake_null();
    v.kind = LAKE_BYTES;
    v.u.bytes.ptr = ptr;
    v.u.bytes.len = len;
    return v;
}

static inline lake_value
lake_str(const char *s)
{
    return lake_bytes(s, strlen(s));
}

static inline lake_value
lake_list(const lake_value *items, size_t count)
{
    lake_value v = lake_null();
    v.kind = LAKE_LIST;
    v.u.list.items = items;
    v.u.list.count = count;
    return v;
}

static inline lake_value
lake_struct(const lake_value *fields, size_t count)
{
    lake_value v = lake_list(fields, count);
    v.kind = LAKE_STRUCT;
    return v;
}

/* The same, written into *o in place. A hot loop that fills arrays of
 * values should use these: a value built on the stack and copied is
 * stored in pieces and then read back whole, which stalls the store
 * forwarding on every value. The kind and the whole union are written. */
static inline void
lake_set_null(lake_value *o)
{
    memset(o, 0, sizeof(*o));
}

static inline void
lake_set_int(lake_value *o, int64_t i)
{
    o->kind = LAKE_INT;
    o->u.dec = 0;
    o->u.i = i;
}

static inline void
lake_set_bool(lake_value *o, bool b)
{
    o->kind = LAKE_BOOL;
    o->u.dec = 0;
    o->u.b = b;
}

static inline void
lake_set_float(lake_value *o, float f)
{
    o->kind = LAKE_FLOAT;
    o->u.dec = 0;
    o->u.f = f;
}

static inline void
lake_set_double(lake_value *o, double d)
{
    o->kind = LAKE_DOUBLE;
    o->u.dec = 0;
    o->u.d = d;
}

static inline void
lake_set_decimal(lake_value *o, lake_int128 unscaled)
{
    o->kind = LAKE_DECIMAL;
    o->u.dec = unscaled;
}

static inline void
lake_set_bytes(lake_value *o, const void *ptr, size_t len)
{
    o->kind = LAKE_BYTES;
    o->u.bytes.ptr = ptr;
    o->u.bytes.len = len;
}

static inline void
lake_set_list(lake_value *o, const lake_value *items, size_t count)
{
    o->kind = LAKE_LIST;
    o->u.list.items = items;
    o->u.list.count = count;
}

static inline void
lake_set_struct(lake_value *o, const lake_value *fields, size_t count)
{
    o->kind = LAKE_STRUCT;
    o->u.list.items = fields;
    o->u.list.count = count;
}

#endif
