/*
 * schema.h: the table schema the lake writers share.
 *
 * A schema is a tree of named, typed fields with Iceberg-style field ids.
 * Leaves are primitive (logical) types; LAKE_TYPE_STRUCT fields have one or
 * more children, LAKE_TYPE_LIST fields exactly one child, the element. The
 * builder validates as it goes, so an invalid definition is refused at the
 * call that introduces it, with a message naming the field.
 *
 * A schema knows nothing about Parquet; the Parquet writer maps it (see
 * parquet.h), and the Iceberg and Delta writers will map it to their JSON.
 */
#ifndef LAKE_SCHEMA_H
#define LAKE_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum lake_type {
    LAKE_TYPE_BOOLEAN = 1,
    LAKE_TYPE_INT8,  /* int32 with INTEGER(8, signed) */
    LAKE_TYPE_INT16, /* int32 with INTEGER(16, signed) */
    LAKE_TYPE_INT32,
    LAKE_TYPE_INT64,
    LAKE_TYPE_FLOAT,
    LAKE_TYPE_DOUBLE,
    LAKE_TYPE_DECIMAL,     /* precision 1..38, scale 0..precision */
    LAKE_TYPE_DATE,        /* days since 1970-01-01 */
    LAKE_TYPE_TIME,        /* microseconds since midnight, 0..86400000000 */
    LAKE_TYPE_TIMESTAMP,   /* microseconds since 1970-01-01 00:00, local */
    LAKE_TYPE_TIMESTAMPTZ, /* microseconds since 1970-01-01 00:00 UTC */
    LAKE_TYPE_STRING,      /* UTF-8 */
    LAKE_TYPE_JSON,        /* UTF-8 JSON text */
    LAKE_TYPE_UUID,        /* 16 bytes, big-endian as printed */
    LAKE_TYPE_BINARY,
    LAKE_TYPE_FIXED,  /* exactly `length` bytes */
    LAKE_TYPE_LIST,   /* one child: the element */
    LAKE_TYPE_STRUCT, /* one or more children */
} lake_type;

/* The description of one field, as given to lake_schema_add(). */
typedef struct lake_field {
    const char *name; /* copied; ignored (NULL allowed) for a list's element */
    int32_t field_id; /* >= 1 and unique in the schema; 0 for none */
    lake_type type;
    bool required;     /* false: the field may be NULL */
    int32_t length;    /* LAKE_TYPE_FIXED only: byte length >= 1 */
    int32_t precision; /* LAKE_TYPE_DECIMAL only: 1..38 */
    int32_t scale;     /* LAKE_TYPE_DECIMAL only: 0..precision */
} lake_field;

typedef struct lake_schema lake_schema;

/* The parent id of top-level fields. */
#define LAKE_SCHEMA_ROOT 0
#define LAKE_DECIMAL_MAX_PRECISION 38

/* ---- building (the transcoder, tests) ----------------------------------- */

/* A new empty schema; the caller frees it with lake_schema_free(). 0 or
 * -ENOMEM. */
int lake_schema_new(lake_schema **out);
void lake_schema_free(lake_schema *s);

/* Add a field under parent (LAKE_SCHEMA_ROOT or the id of a struct or list
 * field); its id for later calls goes to *id (may be NULL). Returns 0,
 * LB_ESCHEMA for an invalid field (duplicate field id or sibling name, bad
 * decimal precision or scale, FIXED without a length, a second list
 * element, a parent that is not a group, ...), -EBUSY once a writer uses the
 * schema, or -ENOMEM. lake_schema_error() says what was wrong. */
int lake_schema_add(lake_schema *s, int parent, const lake_field *f, int *id);

/* Checks what can only be checked once the schema is complete: at least one
 * top-level field, every list has its element, every struct a field.
 * Writers call it; 0 or LB_ESCHEMA. */
int lake_schema_validate(lake_schema *s);

/* The message of the last failure, "" if none. Owned by the schema, valid
 * until the next call on it. */
const char *lake_schema_error(const lake_schema *s);

/* Name of a type ("decimal", "list", ...). Static storage. */
const char *lake_type_name(lake_type t);

/* ---- reading (writers in lake/) ------------------------------------------ */

/* One node of the tree. Node 0 is the root (a struct without a name). */
typedef struct lake__node {
    char *name;
    /* The name data files use for the field, when a table format fixed one
     * that differs from name (Delta column mapping keeps a field's first
     * name across renames); NULL: name. */
    char *physical;
    int32_t field_id;
    lake_type type;
    bool required;
    int32_t length, precision, scale;
    int parent;    /* -1 for the root */
    int *children; /* node ids, in the order added */
    int nchildren;
    int cap;
} lake__node;

/* Number of nodes including the root. */
int lake__schema_nnodes(const lake_schema *s);
const lake__node *lake__schema_node(const lake_schema *s, int id);
/* The name a data file gives node n (its physical name, else its name). */
const char *lake__node_physical(const lake__node *n);
/* Set the physical name of node id (not the root); the caller keeps it
 * unique among its siblings. 0, -EBUSY (a writer holds the schema) or
 * -ENOMEM. */
int lake__schema_set_physical(lake_schema *s, int id, const char *name);
/* A writer holds the schema: further lake_schema_add() calls get -EBUSY. */
void lake__schema_hold(lake_schema *s);
void lake__schema_release(lake_schema *s);
bool lake__type_is_group(lake_type t);

#endif
