/*
 * pgtype.c: PostgreSQL's binary (typsend) values as lake values.
 *
 * Every decoder checks the length it is given against what the type's
 * send function writes, so bytes that are not a value of the column's type
 * (a catalog that changed under us, a protocol error) are refused with
 * LB_EPROTO rather than misread. A value with no exact native counterpart
 * returns 1 and goes to the row's overflow list untouched: the overflow
 * list holds the typsend bytes themselves, so nothing is lost in either
 * case.
 *
 * Epochs: PostgreSQL counts dates and timestamps from 2000-01-01, Parquet
 * from 1970-01-01 (10957 days, 946684800000000 microseconds earlier).
 * Infinite dates and timestamps, and finite ones that would overflow the
 * Parquet representation after the shift, go to overflow.
 */
#include "pgtype.h"

#include <errno.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#define EPOCH_DAYS 10957
#define EPOCH_USECS INT64_C(946684800000000)

/* PostgreSQL type ids (pg_type.dat). */
enum {
    BOOLOID = 16,
    BYTEAOID = 17,
    NAMEOID = 19,
    INT8OID = 20,
    INT2OID = 21,
    INT4OID = 23,
    REGPROCOID = 24,
    TEXTOID = 25,
    OIDOID = 26,
    JSONOID = 114,
    CIDROID = 650,
    FLOAT4OID = 700,
    MACADDR8OID = 774,
    MACADDROID = 829,
    INETOID = 869,
    FLOAT8OID = 701,
    MONEYOID = 790,
    BPCHAROID = 1042,
    VARCHAROID = 1043,
    DATEOID = 1082,
    TIMEOID = 1083,
    TIMESTAMPOID = 1114,
    TIMESTAMPTZOID = 1184,
    INTERVALOID = 1186,
    BITOID = 1560,
    VARBITOID = 1562,
    NUMERICOID = 1700,
    REGPROCEDUREOID = 2202,
    REGOPEROID = 2203,
    REGOPERATOROID = 2204,
    REGCLASSOID = 2205,
    REGTYPEOID = 2206,
    UUIDOID = 2950,
    REGCONFIGOID = 3734,
    REGDICTIONARYOID = 3769,
    JSONBOID = 3802,
    REGNAMESPACEOID = 4089,
    REGROLEOID = 4096,
    REGCOLLATIONOID = 4191,
};

#define NUMERIC_POS 0x0000
#define NUMERIC_NEG 0x4000

static ltap_kind
scalar_kind(uint32_t typid, char typtype)
{
    if (typtype == 'e')
        return LTAP_TEXT; /* enum_send writes the label */
    switch (typid) {
    case BOOLOID:
        return LTAP_BOOL;
    case BYTEAOID:
        return LTAP_BYTEA;
    case NAMEOID:
    case TEXTOID:
    case BPCHAROID:
    case VARCHAROID:
        return LTAP_TEXT;
    case INT2OID:
        return LTAP_INT2;
    case INT4OID:
        return LTAP_INT4;
    case INT8OID:
        return LTAP_INT8;
    case OIDOID:
    case REGPROCOID:
    case REGPROCEDUREOID:
    case REGOPEROID:
    case REGOPERATOROID:
    case REGCLASSOID:
    case REGTYPEOID:
    case REGCONFIGOID:
    case REGDICTIONARYOID:
    case REGNAMESPACEOID:
    case REGROLEOID:
    case REGCOLLATIONOID:
        return LTAP_OID;
    case FLOAT4OID:
        return LTAP_FLOAT4;
    case FLOAT8OID:
        return LTAP_FLOAT8;
    case MONEYOID:
        return LTAP_MONEY;
    case NUMERICOID:
        return LTAP_NUMERIC;
    case UUIDOID:
        return LTAP_UUID;
    case DATEOID:
        return LTAP_DATE;
    case TIMEOID:
        return LTAP_TIME;
    case TIMESTAMPOID:
        return LTAP_TIMESTAMP;
    case TIMESTAMPTZOID:
        return LTAP_TIMESTAMPTZ;
    case JSONOID:
        return LTAP_JSON;
    case JSONBOID:
        return LTAP_JSONB;
    case INTERVALOID:
        return LTAP_INTERVAL;
    case INETOID:
        return LTAP_INET;
    case CIDROID:
        return LTAP_CIDR;
    case MACADDROID:
    case MACADDR8OID:
        return LTAP_MACADDR;
    case BITOID:
    case VARBITOID:
        return LTAP_BITS;
    default:
        return LTAP_OVERFLOW;
    }
}

void
ltap__column_map(ltap_column *c, char typtype, uint32_t elem_typid, char elem_typtype)
{
    c->kind = scalar_kind(c->typid, typtype);
    c->elem_kind = LTAP_OVERFLOW;
    c->elem_typid = elem_typid;
    if (c->kind == LTAP_NUMERIC && c->typmod >= 4) {
        /* numeric(p, s): typmod = ((p << 16) | s) + VARHDRSZ */
        int32_t t = c->typmod - 4;
        int p = (t >> 16) & 0xffff, s = t & 0x7ff;
        if (t & 0x400) /* negative scale (PG 15): scale is sign-extended 11 bits */
            s = -((~t & 0x7ff) + 1);
        if (p >= 1 && p <= LAKE_DECIMAL_MAX_PRECISION && s >= 0 && s <= p) {
            c->kind = LTAP_DECIMAL;
            c->precision = p;
            c->scale = s;
        }
    }
    if (c->kind == LTAP_OVERFLOW && elem_typid != 0 && typtype == 'r') {
        /* a range of a scalar with a native form; its bounds decode as that */
        ltap_kind sk = scalar_kind(elem_typid, elem_typtype);
        if (sk != LTAP_OVERFLOW && sk != LTAP_INTERVAL) {
            c->kind = LTAP_RANGE;
            c->elem_kind = sk;
        }
    }
    if (c->kind == LTAP_OVERFLOW && elem_typid != 0 && typtype == 'b') {
        ltap_kind ek = scalar_kind(elem_typid, elem_typtype);
        /* arrays of unconstrained-typmod scalars only: numeric elements of
         * a numeric(p,s)[] carry the typmod too, so keep them as text */
        if (ek != LTAP_OVERFLOW && ek != LTAP_INTERVAL) {
            c->kind = LTAP_ARRAY;
            c->elem_kind = ek;
        }
    }
}

void
ltap__column_free(ltap_column *c)
{
    for (size_t i = 0; i < c->nfields; i++)
        ltap__column_free(&c->fields[i]);
    free(c->fields);
    free(c->name);
    c->fields = NULL;
    c->nfields = 0;
    c->name = NULL;
}

static bool
scalar(ltap_kind k)
{
    return k != LTAP_OVERFLOW && k != LTAP_INTERVAL && k != LTAP_ARRAY && k != LTAP_RANGE &&
           k != LTAP_COMPOSITE;
}

void
ltap__composite_map(ltap_column *c, ltap_column *fields, size_t nfields)
{
    c->fields = fields;
    c->nfields = nfields;
    bool native = nfields >= 1 && nfields <= LTAP_MAX_STRUCT_FIELDS;
    for (size_t i = 0; native && i < nfields; i++)
        native = scalar(fields[i].kind);
    c->kind = native ? LTAP_COMPOSITE : LTAP_OVERFLOW;
}

/* ---- schema ----------------------------------------------------------------- */

static int
add(lake_schema *s, int parent, const char *name, int32_t id, lake_type t, bool required, int *node,
    lb_err *err)
{
    lake_field f = {.name = name, .field_id = id, .type = t, .required = required};
    int rc = lake_schema_add(s, parent, &f, node);
    if (rc)
        return lb_err_set(err, rc, "%s", lake_schema_error(s));
    return 0;
}

static lake_type
lake_type_of(ltap_kind k)
{
    switch (k) {
    case LTAP_BOOL:
        return LAKE_TYPE_BOOLEAN;
    case LTAP_INT2:
        return LAKE_TYPE_INT16;
    case LTAP_INT4:
        return LAKE_TYPE_INT32;
    case LTAP_INT8:
    case LTAP_OID:
    case LTAP_MONEY:
        return LAKE_TYPE_INT64;
    case LTAP_FLOAT4:
        return LAKE_TYPE_FLOAT;
    case LTAP_FLOAT8:
        return LAKE_TYPE_DOUBLE;
    case LTAP_DECIMAL:
        return LAKE_TYPE_DECIMAL;
    case LTAP_NUMERIC:
    case LTAP_TEXT:
    case LTAP_INET:
    case LTAP_CIDR:
    case LTAP_MACADDR:
    case LTAP_BITS:
        return LAKE_TYPE_STRING;
    case LTAP_BYTEA:
        return LAKE_TYPE_BINARY;
    case LTAP_UUID:
        return LAKE_TYPE_UUID;
    case LTAP_DATE:
        return LAKE_TYPE_DATE;
    case LTAP_TIME:
        return LAKE_TYPE_TIME;
    case LTAP_TIMESTAMP:
        return LAKE_TYPE_TIMESTAMP;
    case LTAP_TIMESTAMPTZ:
        return LAKE_TYPE_TIMESTAMPTZ;
    case LTAP_JSON:
    case LTAP_JSONB:
        return LAKE_TYPE_JSON;
    case LTAP_INTERVAL:
        return LAKE_TYPE_STRUCT;
    case LTAP_ARRAY:
        return LAKE_TYPE_LIST;
    case LTAP_RANGE:
    case LTAP_COMPOSITE:
        return LAKE_TYPE_STRUCT;
    default:
        return 0;
    }
}

static int
add_interval(lake_schema *s, int node, int16_t attnum, int k0, lb_err *err)
{
    int rc;
    if ((rc = add(s, node, "months", LTAP_FID_NESTED(attnum, k0), LAKE_TYPE_INT32, true, NULL,
                  err)) ||
        (rc = add(s, node, "days", LTAP_FID_NESTED(attnum, k0 + 1), LAKE_TYPE_INT32, true, NULL,
                  err)) ||
        (rc = add(s, node, "microseconds", LTAP_FID_NESTED(attnum, k0 + 2), LAKE_TYPE_INT64, true,
                  NULL, err)))
        return rc;
    return 0;
}

int
ltap__schema_build(const ltap_column *cols, size_t ncols, lake_schema **out, lb_err *err)
{
    lake_schema *s = NULL;
    int rc = lake_schema_new(&s);
    if (rc)
        return rc;
    int node;
    rc = add(s, 0, LTAP_COL_TID_BLOCK, LTAP_FID_TID_BLOCK, LAKE_TYPE_INT64, true, NULL, err);
    if (rc == 0)
        rc = add(s, 0, LTAP_COL_TID_OFFSET, LTAP_FID_TID_OFFSET, LAKE_TYPE_INT32, true, NULL, err);
    for (size_t i = 0; rc == 0 && i < ncols; i++) {
        const ltap_column *c = &cols[i];
        if (c->kind == LTAP_OVERFLOW)
            continue;
        lake_field f = {.name = c->name,
                        .field_id = c->attnum,
                        .type = lake_type_of(c->kind),
                        .precision = c->precision,
                        .scale = c->scale};
        if ((rc = lake_schema_add(s, 0, &f, &node))) {
            rc = lb_err_set(err, rc, "column \"%s\": %s", c->name, lake_schema_error(s));
            break;
        }
        if (c->kind == LTAP_INTERVAL) {
            rc = add_interval(s, node, c->attnum, 0, err);
        } else if (c->kind == LTAP_COMPOSITE) {
            for (size_t k = 0; rc == 0 && k < c->nfields; k++) {
                const ltap_column *fc = &c->fields[k];
                lake_field ff = {.name = fc->name,
                                 .field_id = LTAP_FID_NESTED(c->attnum, (int)k),
                                 .type = lake_type_of(fc->kind),
                                 .precision = fc->precision,
                                 .scale = fc->scale};
                int fn;
                if ((rc = lake_schema_add(s, node, &ff, &fn)))
                    rc = lb_err_set(err, rc, "column \"%s\" field \"%s\": %s", c->name, fc->name,
                                    lake_schema_error(s));
            }
        } else if (c->kind == LTAP_RANGE) {
            lake_field b = {.field_id = LTAP_FID_NESTED(c->attnum, 1),
                            .type = lake_type_of(c->elem_kind)};
            int el;
            if ((rc = add(s, node, "empty", LTAP_FID_NESTED(c->attnum, 0), LAKE_TYPE_BOOLEAN, true,
                          NULL, err)) == 0) {
                b.name = "lower";
                if ((rc = lake_schema_add(s, node, &b, &el)) == 0) {
                    b.name = "upper";
                    b.field_id = LTAP_FID_NESTED(c->attnum, 2);
                    rc = lake_schema_add(s, node, &b, &el);
                }
                if (rc)
                    rc = lb_err_set(err, rc, "column \"%s\": %s", c->name, lake_schema_error(s));
            }
            if (rc == 0)
                rc = add(s, node, "lower_inclusive", LTAP_FID_NESTED(c->attnum, 3),
                         LAKE_TYPE_BOOLEAN, true, NULL, err);
            if (rc == 0)
                rc = add(s, node, "upper_inclusive", LTAP_FID_NESTED(c->attnum, 4),
                         LAKE_TYPE_BOOLEAN, true, NULL, err);
        } else if (c->kind == LTAP_ARRAY) {
            int el;
            lake_field e = {.field_id = LTAP_FID_NESTED(c->attnum, 0),
                            .type = lake_type_of(c->elem_kind)};
            if ((rc = lake_schema_add(s, node, &e, &el)))
                rc = lb_err_set(err, rc, "column \"%s\": %s", c->name, lake_schema_error(s));
        }
    }
    int list, elem;
    if (rc == 0)
        rc = add(s, 0, LTAP_COL_OVERFLOW, LTAP_FID_OVERFLOW, LAKE_TYPE_LIST, false, &list, err);
    if (rc == 0)
        rc = add(s, list, "element", LTAP_FID_OVERFLOW_ELEM, LAKE_TYPE_STRUCT, true, &elem, err);
    if (rc == 0)
        rc = add(s, elem, "attnum", LTAP_FID_OVERFLOW_ATTNUM, LAKE_TYPE_INT16, true, NULL, err);
    if (rc == 0)
        rc = add(s, elem, "send", LTAP_FID_OVERFLOW_SEND, LAKE_TYPE_BINARY, true, NULL, err);
    if (rc) {
        lake_schema_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ---- arena -------------------------------------------------------------------- */

struct ltap_arena_block {
    struct ltap_arena_block *next;
    size_t used, cap;
    max_align_t data[];
};

void *
ltap__arena_alloc(ltap_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct ltap_arena_block *b = a->cur;
    if (!b || b->cap - b->used < n) {
        /* the next kept block that holds n, or a new one at the end */
        while (b && b->next) {
            b = b->next;
            b->used = 0;
            if (b->cap >= n)
                break;
        }
        if (!b || b->cap - b->used < n) {
            size_t cap = n > 65536 ? n : 65536;
            struct ltap_arena_block *nb = malloc(sizeof(*nb) + cap);
            if (!nb)
                return NULL;
            nb->next = NULL;
            nb->used = 0;
            nb->cap = cap;
            if (b)
                b->next = nb;
            else
                a->head = nb;
            b = nb;
        }
        a->cur = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

void
ltap__arena_reset(ltap_arena *a)
{
    a->cur = a->head;
    if (a->cur)
        a->cur->used = 0;
}

void
ltap__arena_free(ltap_arena *a)
{
    struct ltap_arena_block *b = a->head;
    while (b) {
        struct ltap_arena_block *n = b->next;
        free(b);
        b = n;
    }
    a->head = a->cur = NULL;
}

/* ---- decoding ------------------------------------------------------------------- */

/*
 * Shapes. Values are written in place (lake_set_*, value.h), never built
 * on the stack and copied. The decoders come in a few shapes, each one
 * helper: a fixed-width big-endian integer (fixed_int: int2/4/8, oid,
 * money, time, and with an epoch shift and an overflow test, date and
 * timestamps), bytes that must be UTF-8 (utf8_bytes: text, json, jsonb's
 * text), text the transcoder writes into the batch's arena (numeric, inet,
 * macaddr, bits), and containers whose parts are length-prefixed values of
 * one kind (decode_next: array elements, range bounds, composite
 * attributes).
 */

static inline uint16_t
be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t
be32(const uint8_t *p)
{
    uint32_t x;
    memcpy(&x, p, 4);
    return __builtin_bswap32(x);
}

static inline uint64_t
be64(const uint8_t *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return __builtin_bswap64(x);
}

/* Powers of ten up to 10^19 (the most a uint64_t holds). */
static const uint64_t POW10[20] = {1,
                                   10,
                                   100,
                                   1000,
                                   10000,
                                   100000,
                                   1000000,
                                   10000000,
                                   100000000,
                                   1000000000,
                                   10000000000ULL,
                                   100000000000ULL,
                                   1000000000000ULL,
                                   10000000000000ULL,
                                   100000000000000ULL,
                                   1000000000000000ULL,
                                   10000000000000000ULL,
                                   100000000000000000ULL,
                                   1000000000000000000ULL,
                                   10000000000000000000ULL};

/* 10^e for 0 <= e <= 38. */
static inline lake_int128
pow10_128(int e)
{
    return e <= 19 ? (lake_int128)POW10[e] : (lake_int128)POW10[19] * POW10[e - 19];
}

/* A numeric's header (numeric_send: ndigits, weight, sign, dscale, then
 * ndigits base-10000 digits, most significant first, at weight, weight -
 * 1, ...). LB_EPROTO if the length does not match. */
typedef struct numeric_hdr {
    int ndigits, weight, dscale;
    uint16_t sign;
    const uint8_t *digits;
} numeric_hdr;

#define NUMERIC_NAN 0xC000
#define NUMERIC_PINF 0xD000
#define NUMERIC_NINF 0xF000

static inline int
numeric_header(const uint8_t *p, size_t len, numeric_hdr *h)
{
    if (len < 8)
        return LB_EPROTO;
    h->ndigits = (int16_t)be16(p);
    h->weight = (int16_t)be16(p + 2);
    h->sign = be16(p + 4);
    h->dscale = be16(p + 6);
    h->digits = p + 8;
    if (h->ndigits < 0 || len != 8 + 2 * (size_t)h->ndigits)
        return LB_EPROTO;
    return 0;
}

/* numeric(p, s) as its unscaled integer; 1 if it has no exact one (NaN,
 * ±Infinity, more than p digits, a non-zero digit past the scale). */
static int
numeric_decimal(const uint8_t *p, size_t len, int precision, int scale, lake_value *out)
{
    numeric_hdr h;
    if (numeric_header(p, len, &h))
        return LB_EPROTO;
    if (h.sign != NUMERIC_POS && h.sign != NUMERIC_NEG)
        return 1;
    lake_int128 limit = pow10_128(precision), v = 0;
    for (int i = 0; i < h.ndigits; i++) {
        uint32_t d = be16(h.digits + 2 * i);
        if (d > 9999)
            return LB_EPROTO;
        if (d == 0)
            continue;
        int e = 4 * (h.weight - i) + scale; /* this group's power of ten, unscaled */
        if (e < 0) {
            /* only whole trailing zeros may lie past the scale */
            if (e <= -4 || d % POW10[-e] != 0)
                return 1;
            d /= (uint32_t)POW10[-e];
            e = 0;
        }
        /* d * 10^e < 10^precision, tested without overflowing */
        if (e >= precision || (precision - e <= 4 && d >= POW10[precision - e]))
            return 1;
        v += (lake_int128)d * pow10_128(e);
        if (v >= limit)
            return 1;
    }
    lake_set_decimal(out, h.sign == NUMERIC_NEG ? -v : v);
    return 0;
}

/* The four decimal digits of d (< 10000) at o. */
static inline void
digits4(char *o, uint32_t d)
{
    o[0] = (char)('0' + d / 1000);
    o[1] = (char)('0' + d / 100 % 10);
    o[2] = (char)('0' + d / 10 % 10);
    o[3] = (char)('0' + d % 10);
}

/* numeric as the text numeric_out writes: sign, the integer digits
 * without leading zeros (at least one), and exactly dscale fraction
 * digits. NaN and ±Infinity: 1 (the column holds numbers only). */
static int
numeric_text(const uint8_t *p, size_t len, ltap_arena *a, lake_value *out)
{
    numeric_hdr h;
    if (numeric_header(p, len, &h) || h.dscale > 0x3fff)
        return LB_EPROTO;
    if (h.sign == NUMERIC_NAN || h.sign == NUMERIC_PINF || h.sign == NUMERIC_NINF)
        return 1;
    if (h.sign != NUMERIC_POS && h.sign != NUMERIC_NEG)
        return LB_EPROTO;
    /* sign, integer groups, point, fraction rounded up to whole groups */
    size_t cap = 1 + (size_t)(h.weight >= 0 ? h.weight + 1 : 1) * 4 + 1 + (size_t)h.dscale + 4;
    char *s = ltap__arena_alloc(a, cap), *o = s;
    if (!s)
        return -ENOMEM;
    if (h.sign == NUMERIC_NEG)
        *o++ = '-';
    if (h.weight < 0) {
        *o++ = '0';
    } else {
        for (int i = 0; i <= h.weight; i++) {
            uint32_t d = i < h.ndigits ? be16(h.digits + 2 * i) : 0;
            if (d > 9999)
                return LB_EPROTO;
            char g[4];
            digits4(g, d);
            /* the first group without its leading zeros */
            int skip = i > 0 ? 0 : d >= 1000 ? 0 : d >= 100 ? 1 : d >= 10 ? 2 : 3;
            memcpy(o, g + skip, (size_t)(4 - skip));
            o += 4 - skip;
        }
    }
    if (h.dscale > 0) {
        *o++ = '.';
        char *frac = o;
        /* the first fraction group is the one at weight -1 */
        for (int gi = h.weight + 1; o - frac < h.dscale; gi++, o += 4) {
            uint32_t d = gi >= 0 && gi < h.ndigits ? be16(h.digits + 2 * gi) : 0;
            if (d > 9999)
                return LB_EPROTO;
            digits4(o, d);
        }
        o = frac + h.dscale;
    }
    lake_set_bytes(out, s, (size_t)(o - s));
    return 0;
}

/* inet/cidr send: family (2: IPv4, 3: IPv6), bits, is_cidr, address
 * length, address. As "<address>/<bits>", bits always written. A value
 * whose is_cidr flag is not its type's goes to overflow. */
static int
network_text(bool cidr, const uint8_t *p, size_t len, ltap_arena *a, lake_value *out)
{
    if (len < 4)
        return LB_EPROTO;
    int family = p[0] == 2 ? AF_INET : p[0] == 3 ? AF_INET6 : -1;
    size_t nb = p[3];
    unsigned maxbits = family == AF_INET ? 32 : 128;
    if (family < 0 || nb != maxbits / 8 || len != 4 + nb || p[1] > maxbits || p[2] > 1)
        return LB_EPROTO;
    if ((p[2] == 1) != cidr)
        return 1;
    char addr[INET6_ADDRSTRLEN];
    if (!inet_ntop(family, p + 4, addr, sizeof(addr)))
        return LB_EPROTO;
    char *t = ltap__arena_alloc(a, INET6_ADDRSTRLEN + 8);
    if (!t)
        return -ENOMEM;
    int n = snprintf(t, INET6_ADDRSTRLEN + 8, "%s/%u", addr, p[1]);
    lake_set_bytes(out, t, (size_t)n);
    return 0;
}

/* macaddr (6 bytes) and macaddr8 (8 bytes) as lowercase hex pairs. */
static int
mac_text(const uint8_t *p, size_t len, ltap_arena *a, lake_value *out)
{
    static const char hex[] = "0123456789abcdef";
    if (len != 6 && len != 8)
        return LB_EPROTO;
    char *t = ltap__arena_alloc(a, 3 * len);
    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        t[3 * i] = hex[p[i] >> 4];
        t[3 * i + 1] = hex[p[i] & 15];
        t[3 * i + 2] = ':';
    }
    lake_set_bytes(out, t, 3 * len - 1);
    return 0;
}

/* bit/varbit send: int32 bit length, then the bits, most significant
 * first, padded with zeros to a byte. Padding that is not zero cannot be
 * written as '0'/'1' text: overflow. */
static int
bits_text(const uint8_t *p, size_t len, ltap_arena *a, lake_value *out)
{
    if (len < 4)
        return LB_EPROTO;
    int32_t nbits = (int32_t)be32(p);
    if (nbits < 0 || len != 4 + ((size_t)nbits + 7) / 8)
        return LB_EPROTO;
    if (nbits % 8 && (p[len - 1] & (0xFFu >> (nbits % 8))))
        return 1;
    char *t = ltap__arena_alloc(a, (size_t)nbits + 1);
    if (!t)
        return -ENOMEM;
    for (int32_t i = 0; i < nbits; i++)
        t[i] = (p[4 + i / 8] >> (7 - i % 8)) & 1 ? '1' : '0';
    lake_set_bytes(out, t, (size_t)nbits);
    return 0;
}

/* A big-endian integer of exactly width bytes (2, 4 or 8), sign-extended
 * (or, for an oid, not); LB_EPROTO for any other length. */
static inline int
fixed_int(const uint8_t *p, size_t len, size_t width, bool is_signed, int64_t *x)
{
    if (len != width)
        return LB_EPROTO;
    switch (width) {
    case 2:
        *x = (int16_t)be16(p);
        return 0;
    case 4:
        *x = is_signed ? (int64_t)(int32_t)be32(p) : (int64_t)be32(p);
        return 0;
    default:
        *x = (int64_t)be64(p);
        return 0;
    }
}

/* Bytes that must be UTF-8 to be a STRING or JSON; 1 if they are not. */
static inline int
utf8_bytes(const uint8_t *p, size_t len, lake_value *out)
{
    if (!lake_utf8_valid(p, len))
        return 1;
    lake_set_bytes(out, p, len);
    return 0;
}

static int decode_kind(ltap_kind k, const ltap_column *c, const uint8_t *p, size_t len,
                       ltap_arena *a, lake_value *out);

/* The next length-prefixed value of a container's send bytes (an
 * attribute, a range bound, an array element) at *off, decoded as kind k
 * of column c into *out; a length of -1 is NULL when nulls, else bad.
 * Advances *off. 0, 1 (no native form), LB_EPROTO, -ENOMEM. */
static inline int
decode_next(ltap_kind k, const ltap_column *c, bool nulls, const uint8_t *p, size_t len,
            size_t *off, ltap_arena *a, lake_value *out)
{
    if (len - *off < 4)
        return LB_EPROTO;
    int32_t n = (int32_t)be32(p + *off);
    *off += 4;
    if (n == -1 && nulls) {
        lake_set_null(out);
        return 0;
    }
    if (n < 0 || (size_t)n > len - *off)
        return LB_EPROTO;
    int rc = decode_kind(k, c, p + *off, (size_t)n, a, out);
    *off += (size_t)n;
    return rc;
}

/* record_send: int32 count of live attributes, then per attribute its
 * declared type id, int32 length (-1: NULL) and send bytes. As a STRUCT,
 * a NULL attribute NULL; an attribute with no native form sends the whole
 * value to overflow. */
static int
decode_composite(const ltap_column *c, const uint8_t *p, size_t len, ltap_arena *a, lake_value *out)
{
    if (len < 4)
        return LB_EPROTO;
    if (be32(p) != c->nfields)
        return LB_EPROTO;
    lake_value *f = ltap__arena_alloc(a, c->nfields * sizeof(lake_value));
    if (!f)
        return -ENOMEM;
    size_t off = 4;
    for (size_t i = 0; i < c->nfields; i++) {
        if (len - off < 8)
            return LB_EPROTO;
        if (be32(p + off) != c->fields[i].decl_typid)
            return LB_EPROTO;
        off += 4;
        int rc = decode_next(c->fields[i].kind, &c->fields[i], true, p, len, &off, a, &f[i]);
        if (rc)
            return rc;
    }
    if (off != len)
        return LB_EPROTO;
    lake_set_struct(out, f, c->nfields);
    return 0;
}

/* range_send: a flags byte (empty 0x01, lower inclusive 0x02, upper
 * inclusive 0x04, lower infinite 0x08, upper infinite 0x10), then each
 * finite bound as int32 length and the subtype's send bytes. As
 * {empty, lower, upper, lower_inclusive, upper_inclusive}, an infinite
 * bound NULL. Other flag bits, or a bound with no native form (an
 * 'infinity' timestamp), send the whole range to overflow. */
static int
decode_range(const ltap_column *c, const uint8_t *p, size_t len, ltap_arena *a, lake_value *out)
{
    if (len < 1)
        return LB_EPROTO;
    uint8_t flags = p[0];
    if (flags & ~0x1Fu)
        return 1;
    bool empty = flags & 0x01;
    if (empty && flags != 0x01)
        return 1;
    lake_value *f = ltap__arena_alloc(a, 5 * sizeof(lake_value));
    if (!f)
        return -ENOMEM;
    lake_set_bool(&f[0], empty);
    lake_set_null(&f[1]);
    lake_set_null(&f[2]);
    lake_set_bool(&f[3], flags & 0x02);
    lake_set_bool(&f[4], flags & 0x04);
    size_t off = 1;
    for (int b = 0; b < 2 && !empty; b++) {
        if (flags & (b == 0 ? 0x08 : 0x10))
            continue;
        int rc = decode_next(c->elem_kind, c, false, p, len, &off, a, &f[1 + b]);
        if (rc)
            return rc;
    }
    if (off != len)
        return LB_EPROTO;
    lake_set_struct(out, f, 5);
    return 0;
}

/* array_send: ndim, has-nulls flag, element type, per dimension its
 * length and lower bound, then the elements length-prefixed. A LIST when
 * one-dimensional with lower bound 1 (or empty) and every element has a
 * native form; else overflow. */
static int
decode_array(const ltap_column *c, const uint8_t *p, size_t len, ltap_arena *a, lake_value *out)
{
    if (len < 12)
        return LB_EPROTO;
    int32_t ndim = (int32_t)be32(p);
    uint32_t elem = be32(p + 8);
    if (ndim < 0 || ndim > 6 || elem != c->elem_typid)
        return LB_EPROTO;
    if (ndim == 0) {
        lake_set_list(out, NULL, 0);
        return 0;
    }
    if (ndim != 1 || len < 20)
        return 1;
    int32_t n = (int32_t)be32(p + 12), lb = (int32_t)be32(p + 16);
    /* every element takes at least its 4-byte length */
    if (n < 0 || (size_t)n > (len - 20) / 4)
        return LB_EPROTO;
    if (lb != 1)
        return 1;
    lake_value *items = ltap__arena_alloc(a, sizeof(lake_value) * (size_t)(n ? n : 1));
    if (!items)
        return -ENOMEM;
    size_t pos = 20;
    for (int32_t i = 0; i < n; i++) {
        int rc = decode_next(c->elem_kind, c, true, p, len, &pos, a, &items[i]);
        if (rc)
            return rc; /* 1: an element without a native form sends the whole array over */
    }
    if (pos != len)
        return LB_EPROTO;
    lake_set_list(out, items, (size_t)n);
    return 0;
}

static int
decode_kind(ltap_kind k, const ltap_column *c, const uint8_t *p, size_t len, ltap_arena *a,
            lake_value *out)
{
    int64_t x;
    switch (k) {
    case LTAP_BOOL:
        if (len != 1)
            return LB_EPROTO;
        lake_set_bool(out, p[0] != 0);
        return 0;
    case LTAP_INT2:
        if (fixed_int(p, len, 2, true, &x))
            return LB_EPROTO;
        lake_set_int(out, x);
        return 0;
    case LTAP_INT4:
        if (fixed_int(p, len, 4, true, &x))
            return LB_EPROTO;
        lake_set_int(out, x);
        return 0;
    case LTAP_OID:
        if (fixed_int(p, len, 4, false, &x))
            return LB_EPROTO;
        lake_set_int(out, x);
        return 0;
    case LTAP_INT8:
    case LTAP_MONEY:
    case LTAP_TIME:
        if (fixed_int(p, len, 8, true, &x))
            return LB_EPROTO;
        lake_set_int(out, x);
        return 0;
    case LTAP_DATE: {
        if (fixed_int(p, len, 4, true, &x))
            return LB_EPROTO;
        /* ±infinity are INT32_MIN/MAX; the shifted day must stay an int32 */
        if (x == INT32_MAX || x == INT32_MIN || x + EPOCH_DAYS > INT32_MAX)
            return 1;
        lake_set_int(out, x + EPOCH_DAYS);
        return 0;
    }
    case LTAP_TIMESTAMP:
    case LTAP_TIMESTAMPTZ: {
        int64_t shifted;
        if (fixed_int(p, len, 8, true, &x))
            return LB_EPROTO;
        if (x == INT64_MAX || x == INT64_MIN || __builtin_add_overflow(x, EPOCH_USECS, &shifted))
            return 1;
        lake_set_int(out, shifted);
        return 0;
    }
    case LTAP_FLOAT4: {
        if (len != 4)
            return LB_EPROTO;
        uint32_t u = be32(p);
        float f;
        memcpy(&f, &u, 4);
        lake_set_float(out, f);
        return 0;
    }
    case LTAP_FLOAT8: {
        if (len != 8)
            return LB_EPROTO;
        uint64_t u = be64(p);
        double d;
        memcpy(&d, &u, 8);
        lake_set_double(out, d);
        return 0;
    }
    case LTAP_DECIMAL:
        return numeric_decimal(p, len, c->precision, c->scale, out);
    case LTAP_NUMERIC:
        return numeric_text(p, len, a, out);
    case LTAP_TEXT:
    case LTAP_JSON:
        return utf8_bytes(p, len, out);
    case LTAP_JSONB:
        if (len < 1 || p[0] != 1) /* the format version */
            return LB_EPROTO;
        return utf8_bytes(p + 1, len - 1, out);
    case LTAP_BYTEA:
        lake_set_bytes(out, p, len);
        return 0;
    case LTAP_UUID:
        if (len != 16)
            return LB_EPROTO;
        lake_set_bytes(out, p, 16);
        return 0;
    case LTAP_INTERVAL: {
        /* interval_send: microseconds int64, days int32, months int32 */
        if (len != 16)
            return LB_EPROTO;
        lake_value *f = ltap__arena_alloc(a, 3 * sizeof(lake_value));
        if (!f)
            return -ENOMEM;
        lake_set_int(&f[0], (int32_t)be32(p + 12));
        lake_set_int(&f[1], (int32_t)be32(p + 8));
        lake_set_int(&f[2], (int64_t)be64(p));
        lake_set_struct(out, f, 3);
        return 0;
    }
    case LTAP_ARRAY:
        return decode_array(c, p, len, a, out);
    case LTAP_INET:
    case LTAP_CIDR:
        return network_text(k == LTAP_CIDR, p, len, a, out);
    case LTAP_MACADDR:
        return mac_text(p, len, a, out);
    case LTAP_BITS:
        return bits_text(p, len, a, out);
    case LTAP_RANGE:
        return decode_range(c, p, len, a, out);
    case LTAP_COMPOSITE:
        return decode_composite(c, p, len, a, out);
    default:
        return 1;
    }
}

int
ltap__decode(const ltap_column *c, const uint8_t *p, size_t len, ltap_arena *a, lake_value *out)
{
    int rc = decode_kind(c->kind, c, p, len, a, out);
    if (rc)
        lake_set_null(out);
    return rc;
}
