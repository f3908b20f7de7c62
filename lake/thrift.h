/*
 * thrift.h: a writer for the Thrift compact protocol, the encoding of every
 * Parquet page header and of the Parquet footer.
 *
 * Internal to lake/. Only what the Parquet structures need is here: structs,
 * lists, bool, i8, i16, i32, i64 and binary. Errors are sticky: after the
 * first failed append every call is a no-op and lake__thrift_error() reports
 * it, so a caller serializes a whole structure and checks once.
 */
#ifndef LAKE_THRIFT_H
#define LAKE_THRIFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Compact-protocol type ids (also the list element types). */
enum {
    LAKE__TT_BOOL_TRUE = 1,
    LAKE__TT_BOOL_FALSE = 2,
    LAKE__TT_I8 = 3,
    LAKE__TT_I16 = 4,
    LAKE__TT_I32 = 5,
    LAKE__TT_I64 = 6,
    LAKE__TT_DOUBLE = 7,
    LAKE__TT_BINARY = 8,
    LAKE__TT_LIST = 9,
    LAKE__TT_STRUCT = 12,
};

#define LAKE__THRIFT_MAX_DEPTH 16

/* Serializer state; out is borrowed and appended to. */
typedef struct lake__thrift {
    lb_buf *out;
    int depth;                               /* open structs */
    int16_t last_id[LAKE__THRIFT_MAX_DEPTH]; /* last field id per open struct */
    int err;                                 /* first error, sticky */
} lake__thrift;

void lake__thrift_init(lake__thrift *t, lb_buf *out);
/* 0 or the first error (-ENOMEM, or LB_EPROTO for misuse). */
int lake__thrift_error(const lake__thrift *t);

/* A struct value: the top-level one, a list element, or (after a
 * lake__thrift_field_struct header) a field. End writes the stop byte. */
void lake__thrift_struct_begin(lake__thrift *t);
void lake__thrift_struct_end(lake__thrift *t);

/* Fields of the innermost open struct; ids must increase. */
void lake__thrift_field_bool(lake__thrift *t, int16_t id, bool v);
void lake__thrift_field_i8(lake__thrift *t, int16_t id, int8_t v);
void lake__thrift_field_i16(lake__thrift *t, int16_t id, int16_t v);
void lake__thrift_field_i32(lake__thrift *t, int16_t id, int32_t v);
void lake__thrift_field_i64(lake__thrift *t, int16_t id, int64_t v);
void lake__thrift_field_binary(lake__thrift *t, int16_t id, const void *bytes, size_t n);
void lake__thrift_field_string(lake__thrift *t, int16_t id, const char *s);
/* Field header of a struct-typed field; follow with struct_begin/end. */
void lake__thrift_field_struct(lake__thrift *t, int16_t id);
/* An empty struct-typed field (the marker structs of unions). */
void lake__thrift_field_empty_struct(lake__thrift *t, int16_t id);
/* Field header plus list header; follow with count elements. */
void lake__thrift_field_list(lake__thrift *t, int16_t id, int elem_type, size_t count);

/* List elements. */
void lake__thrift_i32(lake__thrift *t, int32_t v);
void lake__thrift_i64(lake__thrift *t, int64_t v);
void lake__thrift_binary(lake__thrift *t, const void *bytes, size_t n);
/* Append bytes that already are a serialized value (a struct written by
 * another lake__thrift), e.g. list elements prepared ahead of time. */
void lake__thrift_raw(lake__thrift *t, const void *bytes, size_t n);

/* ULEB128 varint, shared with the RLE encoder. Returns 0 or -ENOMEM. */
int lake__put_uvarint(lb_buf *out, uint64_t v);

#endif
