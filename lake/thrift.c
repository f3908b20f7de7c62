/*
 * thrift.c: the Thrift compact protocol, write side only.
 *
 * Parquet stores its page headers and footer as Thrift structs in the
 * compact protocol. We write them by hand rather than generate code: the
 * subset is small and the encoding is simple.
 *
 *   - Integers (i16, i32, i64) are zigzag-mapped and written as ULEB128
 *     varints; i8 is one raw byte.
 *   - A field starts with one byte: the field id delta from the previous
 *     field of the same struct in the high nibble, the type in the low
 *     nibble. If the delta is not in 1..15, the byte holds only the type
 *     and the id follows as a zigzag varint.
 *   - A bool field carries its value in the type nibble (1 true, 2 false)
 *     and has no value byte.
 *   - binary is a varint length and the bytes.
 *   - A list header is one byte (count << 4 | element type) for fewer than
 *     15 elements, else 0xF0 | type followed by the count as a varint.
 *   - A struct ends with a 0 byte; each struct has its own "previous field
 *     id", so nesting keeps a stack.
 *
 * Invariant: within one struct, field ids are written in increasing order
 * (asserted). Errors are sticky (see thrift.h). Callers: parquet.c.
 */
#include "thrift.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "errors.h"

void
lake__thrift_init(lake__thrift *t, lb_buf *out)
{
    assert(out);
    memset(t, 0, sizeof(*t));
    t->out = out;
}

int
lake__thrift_error(const lake__thrift *t)
{
    return t->err;
}

int
lake__put_uvarint(lb_buf *out, uint64_t v)
{
    uint8_t bytes[10];
    size_t n = 0;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        bytes[n++] = v ? (uint8_t)(b | 0x80) : b;
    } while (v);
    return lb_buf_append(out, bytes, n);
}

static uint64_t
zigzag64(int64_t v)
{
    /* Shift the unsigned bits so that negative values are well defined. */
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static void
put_bytes(lake__thrift *t, const void *bytes, size_t n)
{
    if (t->err)
        return;
    int rc = lb_buf_append(t->out, bytes, n);
    if (rc)
        t->err = rc;
}

static void
put_byte(lake__thrift *t, uint8_t b)
{
    put_bytes(t, &b, 1);
}

static void
put_varint(lake__thrift *t, uint64_t v)
{
    if (t->err)
        return;
    int rc = lake__put_uvarint(t->out, v);
    if (rc)
        t->err = rc;
}

static void
field_header(lake__thrift *t, int16_t id, int type)
{
    if (t->err)
        return;
    if (t->depth < 1) {
        assert(!"thrift field outside a struct");
        t->err = LB_EPROTO;
        return;
    }
    int16_t last = t->last_id[t->depth - 1];
    assert(id > last && "thrift field ids must increase");
    int delta = id - last;
    if (delta > 0 && delta <= 15) {
        put_byte(t, (uint8_t)(delta << 4 | type));
    } else {
        put_byte(t, (uint8_t)type);
        put_varint(t, zigzag64(id));
    }
    t->last_id[t->depth - 1] = id;
}

void
lake__thrift_struct_begin(lake__thrift *t)
{
    if (t->err)
        return;
    if (t->depth >= LAKE__THRIFT_MAX_DEPTH) {
        assert(!"thrift structs nested too deep");
        t->err = LB_EPROTO;
        return;
    }
    t->last_id[t->depth++] = 0;
}

void
lake__thrift_struct_end(lake__thrift *t)
{
    if (t->err)
        return;
    assert(t->depth > 0);
    put_byte(t, 0);
    t->depth--;
}

void
lake__thrift_field_bool(lake__thrift *t, int16_t id, bool v)
{
    field_header(t, id, v ? LAKE__TT_BOOL_TRUE : LAKE__TT_BOOL_FALSE);
}

void
lake__thrift_field_i8(lake__thrift *t, int16_t id, int8_t v)
{
    field_header(t, id, LAKE__TT_I8);
    put_byte(t, (uint8_t)v);
}

void
lake__thrift_field_i16(lake__thrift *t, int16_t id, int16_t v)
{
    field_header(t, id, LAKE__TT_I16);
    put_varint(t, zigzag64(v));
}

void
lake__thrift_field_i32(lake__thrift *t, int16_t id, int32_t v)
{
    field_header(t, id, LAKE__TT_I32);
    put_varint(t, zigzag64(v));
}

void
lake__thrift_field_i64(lake__thrift *t, int16_t id, int64_t v)
{
    field_header(t, id, LAKE__TT_I64);
    put_varint(t, zigzag64(v));
}

void
lake__thrift_field_binary(lake__thrift *t, int16_t id, const void *bytes, size_t n)
{
    field_header(t, id, LAKE__TT_BINARY);
    lake__thrift_binary(t, bytes, n);
}

void
lake__thrift_field_string(lake__thrift *t, int16_t id, const char *s)
{
    lake__thrift_field_binary(t, id, s, strlen(s));
}

void
lake__thrift_field_struct(lake__thrift *t, int16_t id)
{
    field_header(t, id, LAKE__TT_STRUCT);
}

void
lake__thrift_field_empty_struct(lake__thrift *t, int16_t id)
{
    field_header(t, id, LAKE__TT_STRUCT);
    put_byte(t, 0);
}

void
lake__thrift_field_list(lake__thrift *t, int16_t id, int elem_type, size_t count)
{
    assert(elem_type > 0 && elem_type <= LAKE__TT_STRUCT);
    field_header(t, id, LAKE__TT_LIST);
    if (count < 15) {
        put_byte(t, (uint8_t)(count << 4 | (size_t)elem_type));
    } else {
        put_byte(t, (uint8_t)(0xf0 | elem_type));
        put_varint(t, count);
    }
}

void
lake__thrift_i32(lake__thrift *t, int32_t v)
{
    put_varint(t, zigzag64(v));
}

void
lake__thrift_i64(lake__thrift *t, int64_t v)
{
    put_varint(t, zigzag64(v));
}

void
lake__thrift_binary(lake__thrift *t, const void *bytes, size_t n)
{
    put_varint(t, n);
    put_bytes(t, bytes, n);
}

void
lake__thrift_raw(lake__thrift *t, const void *bytes, size_t n)
{
    put_bytes(t, bytes, n);
}
