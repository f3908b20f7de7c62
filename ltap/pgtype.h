/*
 * pgtype.h: PostgreSQL column types to lake columns, and binary (typsend)
 * values to lake values. Used by ltap.c only.
 *
 * A column maps to a native lake type when every value of it has an exact
 * counterpart there; a value that does not (NaN numeric in a DECIMAL
 * column, an infinite date, ...) and every value of a type with no native
 * mapping goes to the row's overflow list as (attnum, typsend bytes), with
 * the native column NULL. The type table is in ltap/README.md.
 */
#ifndef LTAP_PGTYPE_H
#define LTAP_PGTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "lake/schema.h"
#include "lake/value.h"

typedef enum ltap_kind {
    LTAP_OVERFLOW = 0, /* no native column: every value in the overflow list */
    LTAP_BOOL,
    LTAP_INT2,
    LTAP_INT4,
    LTAP_INT8,
    LTAP_OID, /* oid and reg* types: uint32 as INT64 */
    LTAP_FLOAT4,
    LTAP_FLOAT8,
    LTAP_DECIMAL, /* numeric(p, s), p <= 38 */
    LTAP_NUMERIC, /* unconstrained numeric: its exact text as STRING */
    LTAP_TEXT,    /* text, varchar, bpchar, name, enum labels: STRING */
    LTAP_BYTEA,
    LTAP_UUID,
    LTAP_DATE,
    LTAP_TIME,
    LTAP_TIMESTAMP,
    LTAP_TIMESTAMPTZ,
    LTAP_JSON,
    LTAP_JSONB,     /* version byte 1, then the text */
    LTAP_INTERVAL,  /* STRUCT<months int32, days int32, microseconds int64> */
    LTAP_MONEY,     /* int64 in the currency's minor units */
    LTAP_ARRAY,     /* one-dimensional, lower bound 1, native elements: LIST */
    LTAP_INET,      /* inet: "<address>/<bits>" as STRING */
    LTAP_CIDR,      /* cidr: the same */
    LTAP_MACADDR,   /* macaddr, macaddr8: "xx:xx:..." as STRING */
    LTAP_BITS,      /* bit(n), varbit: the bits as a STRING of '0' and '1' */
    LTAP_RANGE,     /* STRUCT<empty, lower, upper, lower_inclusive, upper_inclusive> */
    LTAP_COMPOSITE, /* STRUCT of its attributes, each a native scalar */
} ltap_kind;

typedef struct ltap_column {
    int16_t attnum;
    char *name; /* owned */
    /* pg_attribute.atthasmissing: rows written before the column was added
     * read its default (attmissingval), not NULL */
    bool hasmissing;
    uint32_t typid;
    int32_t typmod;
    bool notnull;
    ltap_kind kind;
    ltap_kind elem_kind; /* LTAP_ARRAY: the element's; LTAP_RANGE: the subtype's */
    uint32_t elem_typid;
    int precision, scale; /* LTAP_DECIMAL */
    /* LTAP_COMPOSITE: its live attributes in order (owned; attnum is the
     * position), and for each the declared type id record_send writes
     * (a domain's own id) in decl_typid. */
    struct ltap_column *fields;
    size_t nfields;
    uint32_t decl_typid;
} ltap_column;

/* Free what a column owns (name, fields). */
void ltap__column_free(ltap_column *c);

/* A composite column: map each attribute (already mapped with
 * ltap__column_map, the array taken over) and make the column a STRUCT
 * when every attribute is a native scalar and there are at most
 * LTAP_MAX_STRUCT_FIELDS of them; otherwise it stays in overflow. */
#define LTAP_MAX_STRUCT_FIELDS 8
void ltap__composite_map(ltap_column *c, ltap_column *fields, size_t nfields);

/* What catalog facts a column's mapping needs: its (domain-resolved) type
 * id and typmod, the type's typtype ('b', 'e', 'd', ...) and, for arrays,
 * the element type and whether that element type is an enum; for ranges,
 * the subtype (and its typtype) in their place. */
void ltap__column_map(ltap_column *c, char typtype, uint32_t elem_typid, char elem_typtype);

/* Field ids: a column's is its attnum; nested fields and the system
 * columns use ids no attnum reaches (attnums stop at 1600). */
#define LTAP_FID_TID_BLOCK 10001
#define LTAP_FID_TID_OFFSET 10002
#define LTAP_FID_OVERFLOW 10003
#define LTAP_FID_OVERFLOW_ELEM 10004
#define LTAP_FID_OVERFLOW_ATTNUM 10005
#define LTAP_FID_OVERFLOW_SEND 10006
#define LTAP_FID_NESTED(attnum, k) (20000 + (int32_t)(attnum)*8 + (k))

#define LTAP_COL_TID_BLOCK "_pg_tid_block"
#define LTAP_COL_TID_OFFSET "_pg_tid_offset"
#define LTAP_COL_OVERFLOW "_pg_overflow"

/* The lake schema of a table: the TID columns, one field per native
 * column (in attnum order), the overflow list. 0, or LB_ESCHEMA with a
 * message in err (e.g. a user column named like a system column). */
int ltap__schema_build(const ltap_column *cols, size_t ncols, lake_schema **out, lb_err *err);

/* A bump allocator for the values of one batch of rows. A reset keeps
 * its blocks for the next batch. */
typedef struct ltap_arena {
    struct ltap_arena_block *head, *cur; /* cur: the block allocated from */
} ltap_arena;
void *ltap__arena_alloc(ltap_arena *a, size_t n);
void ltap__arena_reset(ltap_arena *a);
void ltap__arena_free(ltap_arena *a);

/* Decode one typsend value of column c into *out (bytes borrowed from p or
 * allocated in a). 0: native; 1: no exact native counterpart (the caller
 * puts the bytes in the overflow list and *out is NULL); LB_EPROTO for
 * bytes that are not a value of the type; -ENOMEM. */
int ltap__decode(const ltap_column *c, const uint8_t *p, size_t len, ltap_arena *a,
                 lake_value *out);

#endif
