/*
 * test_pgtype.c: typsend bytes to lake values. Exact values decode
 * natively; values with no exact native form (NaN and infinite numerics,
 * infinite dates and timestamps, numerics beyond the column's DECIMAL,
 * multi-dimensional arrays or lower bounds other than 1) return 1 for the
 * overflow list; bytes that are not a value of the type are refused with
 * LB_EPROTO; a user column named like a system column is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "ltap/pgtype.h"

static ltap_column
col(uint32_t typid, int32_t typmod, char typtype, uint32_t elem)
{
    ltap_column c = {.attnum = 1, .name = "c", .typid = typid, .typmod = typmod};
    ltap__column_map(&c, typtype, elem, 'b');
    return c;
}

/* numeric_send bytes: ndigits, weight, sign, dscale, digits */
static size_t
numeric(uint8_t *out, int weight, uint16_t sign, int dscale, const int *digits, int n)
{
    uint8_t *p = out;
    *p++ = (uint8_t)(n >> 8), *p++ = (uint8_t)n;
    *p++ = (uint8_t)((uint16_t)weight >> 8), *p++ = (uint8_t)weight;
    *p++ = (uint8_t)(sign >> 8), *p++ = (uint8_t)sign;
    *p++ = (uint8_t)(dscale >> 8), *p++ = (uint8_t)dscale;
    for (int i = 0; i < n; i++)
        *p++ = (uint8_t)(digits[i] >> 8), *p++ = (uint8_t)digits[i];
    return (size_t)(p - out);
}

static void
test_numeric(void **state)
{
    (void)state;
    ltap_arena a = {0};
    lake_value v;
    uint8_t b[64];
    ltap_column dec = col(1700, ((10 << 16) | 2) + 4, 'b', 0); /* numeric(10,2) */
    assert_int_equal(dec.kind, LTAP_DECIMAL);
    assert_int_equal(dec.precision, 10);
    assert_int_equal(dec.scale, 2);
    /* -1234.5 at scale 2: groups 1234 . 5000 -> -123450 */
    size_t n = numeric(b, 0, 0x4000, 2, (const int[]){1234, 5000}, 2);
    assert_int_equal(ltap__decode(&dec, b, n, &a, &v), 0);
    assert_true(v.kind == LAKE_DECIMAL && v.u.dec == -123450);
    /* NaN and Infinity have no DECIMAL */
    n = numeric(b, 0, 0xC000, 0, NULL, 0);
    assert_int_equal(ltap__decode(&dec, b, n, &a, &v), 1);
    assert_int_equal(v.kind, LAKE_NULL);
    n = numeric(b, 0, 0xD000, 0, NULL, 0);
    assert_int_equal(ltap__decode(&dec, b, n, &a, &v), 1);
    /* beyond the precision: 10^9 at scale 2 needs 12 digits */
    n = numeric(b, 2, 0, 0, (const int[]){10}, 1);
    assert_int_equal(ltap__decode(&dec, b, n, &a, &v), 1);
    /* more fractional digits than the scale: not exact */
    n = numeric(b, -1, 0, 4, (const int[]){1234}, 1);
    assert_int_equal(ltap__decode(&dec, b, n, &a, &v), 1);
    /* a length that does not match ndigits, a digit past 9999 */
    assert_int_equal(ltap__decode(&dec, b, n - 1, &a, &v), LB_EPROTO);
    n = numeric(b, 0, 0, 0, (const int[]){10000}, 1);
    assert_int_equal(ltap__decode(&dec, b, n, &a, &v), LB_EPROTO);

    /* unconstrained: the text numeric_out writes, dscale kept */
    ltap_column txt = col(1700, -1, 'b', 0);
    assert_int_equal(txt.kind, LTAP_NUMERIC);
    n = numeric(b, 1, 0x4000, 5, (const int[]){12, 3456, 7800}, 3);
    assert_int_equal(ltap__decode(&txt, b, n, &a, &v), 0);
    assert_int_equal(v.u.bytes.len, strlen("-123456.78000"));
    assert_memory_equal(v.u.bytes.ptr, "-123456.78000", v.u.bytes.len);
    n = numeric(b, -2, 0, 6, (const int[]){1200}, 1); /* 0.000012: group 1200 at 10^-8 */
    assert_int_equal(ltap__decode(&txt, b, n, &a, &v), 0);
    assert_memory_equal(v.u.bytes.ptr, "0.000012", v.u.bytes.len);
    n = numeric(b, 0, 0, 3, NULL, 0); /* 0.000 */
    assert_int_equal(ltap__decode(&txt, b, n, &a, &v), 0);
    assert_memory_equal(v.u.bytes.ptr, "0.000", v.u.bytes.len);
    n = numeric(b, 0, 0xF000, 0, NULL, 0); /* -Infinity: overflow */
    assert_int_equal(ltap__decode(&txt, b, n, &a, &v), 1);
    ltap__arena_free(&a);
}

/* The unscaled integer of s's digits (at most 38 of them, '.' skipped). */
static lake_int128
unscaled(const char *s)
{
    lake_int128 x = 0;
    for (; *s; s++)
        if (*s != '.')
            x = x * 10 + (*s - '0');
    return x;
}

/*
 * DECIMAL at its edges: 38 digits exactly, 10^precision refused, digits of
 * every group position (leading groups of 1 to 4 digits, a fraction that
 * ends inside a group), and the unconstrained text of the same values.
 */
static void
test_numeric_edges(void **state)
{
    (void)state;
    ltap_arena a = {0};
    lake_value v;
    uint8_t b[64];
    static const struct {
        int p, s, weight, dscale, n;
        int digits[12];
        const char *text;
    } cases[] = {
        /* 38 nines, integer: groups 99 then nine 9999 */
        {38,
         0,
         9,
         0,
         10,
         {99, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999},
         "99999999999999999999999999999999999999"},
        /* 37 nines . 9: the fraction group is 9000 at 10^-4 */
        {38,
         1,
         9,
         1,
         11,
         {9, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9000},
         "9999999999999999999999999999999999999.9"},
        /* numeric(12,2): 1234567890.12 */
        {12, 2, 2, 2, 4, {12, 3456, 7890, 1200}, "1234567890.12"},
        /* leading groups of 1, 2, 3 digits */
        {9, 3, 1, 3, 3, {7, 1, 5000}, "70001.500"},
        {9, 3, 1, 3, 3, {42, 0, 10}, "420000.001"},
        {10, 3, 1, 3, 2, {123, 4567}, "1234567.000"},
        /* a fraction only: 0.0123 */
        {5, 4, -1, 4, 1, {123}, "0.0123"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ltap_column dec = col(1700, ((cases[i].p << 16) | cases[i].s) + 4, 'b', 0);
        assert_int_equal(dec.kind, LTAP_DECIMAL);
        size_t n =
            numeric(b, cases[i].weight, 0x4000, cases[i].dscale, cases[i].digits, cases[i].n);
        assert_int_equal(ltap__decode(&dec, b, n, &a, &v), 0);
        assert_true(v.kind == LAKE_DECIMAL && v.u.dec == -unscaled(cases[i].text));
        ltap_column txt = col(1700, -1, 'b', 0);
        n = numeric(b, cases[i].weight, 0, cases[i].dscale, cases[i].digits, cases[i].n);
        assert_int_equal(ltap__decode(&txt, b, n, &a, &v), 0);
        assert_int_equal(v.u.bytes.len, strlen(cases[i].text));
        assert_memory_equal(v.u.bytes.ptr, cases[i].text, v.u.bytes.len);
    }
    /* 10^38 and 10^37 * 9.99... + 1 past numeric(38, 0) and (38, 1) */
    ltap_column d38 = col(1700, ((38 << 16) | 0) + 4, 'b', 0);
    size_t n = numeric(b, 9, 0, 0, (const int[]){100}, 1);
    assert_int_equal(ltap__decode(&d38, b, n, &a, &v), 1);
    ltap_column d381 = col(1700, ((38 << 16) | 1) + 4, 'b', 0);
    n = numeric(b, 9, 0, 0, (const int[]){10}, 1); /* 10^37: 38 digits and a decimal */
    assert_int_equal(ltap__decode(&d381, b, n, &a, &v), 1);
    /* a digit past the scale inside the last group: 1.05 at scale 1 */
    ltap_column d51 = col(1700, ((5 << 16) | 1) + 4, 'b', 0);
    n = numeric(b, 0, 0, 2, (const int[]){1, 500}, 2);
    assert_int_equal(ltap__decode(&d51, b, n, &a, &v), 1);
    /* 1.50 at scale 1: the trailing zero is fine */
    n = numeric(b, 0, 0, 2, (const int[]){1, 5000}, 2);
    assert_int_equal(ltap__decode(&d51, b, n, &a, &v), 0);
    assert_true(v.u.dec == 15);
    ltap__arena_free(&a);
}

/* The arena keeps its blocks across resets: the next batch's values land
 * in the same memory, large ones get a block of their own, and nothing
 * handed out since a reset overlaps. */
static void
test_arena(void **state)
{
    (void)state;
    ltap_arena a = {0};
    enum { N = 3000 };
    static uint8_t *ptrs[N];
    static size_t lens[N];
    uint8_t *first = NULL;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            lens[i] = i % 500 == 499 ? 200000 : (size_t)(i % 97) * 11 + 1;
            ptrs[i] = ltap__arena_alloc(&a, lens[i]);
            assert_non_null(ptrs[i]);
            assert_true(((uintptr_t)ptrs[i] & 15) == 0);
            memset(ptrs[i], i & 0xff, lens[i]);
        }
        if (round == 0)
            first = ptrs[0];
        else
            assert_ptr_equal(ptrs[0], first); /* reused, not allocated anew */
        for (int i = 0; i < N; i++)
            for (size_t k = 0; k < lens[i]; k += 7)
                assert_int_equal(ptrs[i][k], i & 0xff);
        ltap__arena_reset(&a);
    }
    ltap__arena_free(&a);
    ltap__arena_reset(&a); /* a freed arena is an empty one */
    assert_non_null(ltap__arena_alloc(&a, 1));
    ltap__arena_free(&a);
}

static void
test_dates_and_times(void **state)
{
    (void)state;
    ltap_arena a = {0};
    lake_value v;
    ltap_column date = col(1082, -1, 'b', 0);
    const uint8_t zero[4] = {0, 0, 0, 0}, inf[4] = {0x7f, 0xff, 0xff, 0xff},
                  ninf[4] = {0x80, 0, 0, 0};
    assert_int_equal(ltap__decode(&date, zero, 4, &a, &v), 0);
    assert_int_equal(v.u.i, 10957); /* 2000-01-01 */
    assert_int_equal(ltap__decode(&date, inf, 4, &a, &v), 1);
    assert_int_equal(ltap__decode(&date, ninf, 4, &a, &v), 1);
    assert_int_equal(ltap__decode(&date, zero, 3, &a, &v), LB_EPROTO);
    /* the largest finite date overflows int32 days after the epoch shift */
    const uint8_t near_max[4] = {0x7f, 0xff, 0xff, 0xfe};
    assert_int_equal(ltap__decode(&date, near_max, 4, &a, &v), 1);
    ltap_column ts = col(1114, -1, 'b', 0);
    const uint8_t t0[8] = {0}, tinf[8] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(ltap__decode(&ts, t0, 8, &a, &v), 0);
    assert_true(v.u.i == INT64_C(946684800000000));
    assert_int_equal(ltap__decode(&ts, tinf, 8, &a, &v), 1);
    ltap_column iv = col(1186, -1, 'b', 0);
    const uint8_t ivb[16] = {0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xfe};
    assert_int_equal(ltap__decode(&iv, ivb, 16, &a, &v), 0);
    assert_int_equal(v.kind, LAKE_STRUCT);
    assert_int_equal(v.u.list.items[0].u.i, -2); /* months */
    assert_int_equal(v.u.list.items[1].u.i, 3);  /* days */
    assert_int_equal(v.u.list.items[2].u.i, 7);  /* microseconds */
    ltap__arena_free(&a);
}

/* v is a byte string equal to want. */
static void
assert_text(lake_value v, const char *want)
{
    assert_int_equal(v.kind, LAKE_BYTES);
    assert_int_equal(v.u.bytes.len, strlen(want));
    assert_memory_equal(v.u.bytes.ptr, want, strlen(want));
}

static void
test_network_and_bits(void **state)
{
    (void)state;
    ltap_arena a = {0};
    lake_value v;
    ltap_column inet = col(869, -1, 'b', 0), cidr = col(650, -1, 'b', 0);
    const uint8_t v4[8] = {2, 24, 0, 4, 192, 168, 1, 5};
    assert_int_equal(ltap__decode(&inet, v4, 8, &a, &v), 0);
    assert_text(v, "192.168.1.5/24");
    assert_int_equal(ltap__decode(&cidr, v4, 8, &a, &v), 1); /* is_cidr 0 in a cidr column */
    const uint8_t v6[20] = {3, 128, 1, 16, 0x20, 0x01, 0x0d, 0xb8, 0, 0,
                            0, 0,   0, 0,  0,    0,    0,    0,    0, 1};
    assert_int_equal(ltap__decode(&cidr, v6, 20, &a, &v), 0);
    assert_text(v, "2001:db8::1/128");
    const uint8_t bad_family[8] = {9, 24, 0, 4, 1, 2, 3, 4},
                  bad_bits[8] = {2, 33, 0, 4, 1, 2, 3, 4}, bad_len[8] = {2, 24, 0, 16, 1, 2, 3, 4};
    assert_int_equal(ltap__decode(&inet, bad_family, 8, &a, &v), LB_EPROTO);
    assert_int_equal(ltap__decode(&inet, bad_bits, 8, &a, &v), LB_EPROTO);
    assert_int_equal(ltap__decode(&inet, bad_len, 8, &a, &v), LB_EPROTO);
    assert_int_equal(ltap__decode(&inet, v4, 3, &a, &v), LB_EPROTO);

    ltap_column mac = col(829, -1, 'b', 0), mac8 = col(774, -1, 'b', 0);
    const uint8_t m[8] = {0x08, 0x00, 0x2b, 0x01, 0x02, 0xff, 0x04, 0x05};
    assert_int_equal(ltap__decode(&mac, m, 6, &a, &v), 0);
    assert_text(v, "08:00:2b:01:02:ff");
    assert_int_equal(ltap__decode(&mac8, m, 8, &a, &v), 0);
    assert_text(v, "08:00:2b:01:02:ff:04:05");
    assert_int_equal(ltap__decode(&mac, m, 5, &a, &v), LB_EPROTO);

    ltap_column bit = col(1560, 8, 'b', 0), varbit = col(1562, -1, 'b', 0);
    const uint8_t b10[6] = {0, 0, 0, 10, 0xa5, 0x80}, empty[4] = {0, 0, 0, 0},
                  pad[6] = {0, 0, 0, 10, 0xa5, 0x81}, short_[5] = {0, 0, 0, 10, 0xa5};
    assert_int_equal(ltap__decode(&varbit, b10, 6, &a, &v), 0);
    assert_text(v, "1010010110");
    assert_int_equal(ltap__decode(&bit, empty, 4, &a, &v), 0);
    assert_text(v, "");
    assert_int_equal(ltap__decode(&varbit, pad, 6, &a, &v), 1); /* padding not zero */
    assert_int_equal(ltap__decode(&varbit, short_, 5, &a, &v), LB_EPROTO);
    ltap__arena_free(&a);
}

static void
test_ranges(void **state)
{
    (void)state;
    ltap_arena a = {0};
    lake_value v;
    ltap_column r = {.attnum = 2, .name = "r", .typid = 3904, .typmod = -1};
    ltap__column_map(&r, 'r', 23, 'b'); /* int4range */
    assert_int_equal(r.kind, LTAP_RANGE);
    const uint8_t closed[17] = {0x02, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 10}; /* [1,10) */
    assert_int_equal(ltap__decode(&r, closed, 17, &a, &v), 0);
    assert_int_equal(v.kind, LAKE_STRUCT);
    assert_false(v.u.list.items[0].u.b);
    assert_int_equal(v.u.list.items[1].u.i, 1);
    assert_int_equal(v.u.list.items[2].u.i, 10);
    assert_true(v.u.list.items[3].u.b);
    assert_false(v.u.list.items[4].u.b);
    const uint8_t unbounded[1] = {0x18}, empty[1] = {0x01}, odd_flags[1] = {0x21},
                  empty_plus[1] = {0x03};
    assert_int_equal(ltap__decode(&r, unbounded, 1, &a, &v), 0);
    assert_int_equal(v.u.list.items[1].kind, LAKE_NULL);
    assert_int_equal(v.u.list.items[2].kind, LAKE_NULL);
    assert_int_equal(ltap__decode(&r, empty, 1, &a, &v), 0);
    assert_true(v.u.list.items[0].u.b);
    assert_int_equal(ltap__decode(&r, odd_flags, 1, &a, &v), 1);
    assert_int_equal(ltap__decode(&r, empty_plus, 1, &a, &v), 1);
    /* a bound cut short, trailing bytes, a negative length */
    assert_int_equal(ltap__decode(&r, closed, 16, &a, &v), LB_EPROTO);
    assert_int_equal(ltap__decode(&r, closed, 11, &a, &v), LB_EPROTO);
    const uint8_t trailing[18] = {0x02, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 10, 0},
                  neg[5] = {0x10, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(ltap__decode(&r, trailing, 18, &a, &v), LB_EPROTO);
    assert_int_equal(ltap__decode(&r, neg, 5, &a, &v), LB_EPROTO);
    /* a bound with no native form (an infinite date) sends the range to overflow */
    ltap_column dr = {.attnum = 3, .name = "dr", .typid = 3912, .typmod = -1};
    ltap__column_map(&dr, 'r', 1082, 'b'); /* daterange */
    const uint8_t inf_bound[9] = {0x12, 0, 0, 0, 4, 0x7f, 0xff, 0xff, 0xff};
    assert_int_equal(ltap__decode(&dr, inf_bound, 9, &a, &v), 1);
    /* a range of a type with no native form is not mapped */
    ltap_column pr = {.attnum = 4, .name = "pr", .typid = 99999, .typmod = -1};
    ltap__column_map(&pr, 'r', 600, 'b'); /* a range of points */
    assert_int_equal(pr.kind, LTAP_OVERFLOW);
    ltap__arena_free(&a);
}

static void
test_composites(void **state)
{
    (void)state;
    ltap_arena a = {0};
    lake_value v;
    ltap_column *f = calloc(2, sizeof(*f));
    assert_non_null(f);
    f[0] = col(23, -1, 'b', 0);
    f[0].decl_typid = 23;
    f[1] = col(1082, -1, 'b', 0);
    f[1].decl_typid = 1082;
    ltap_column c = {.attnum = 5, .name = "c", .typid = 70000, .typmod = -1};
    ltap__composite_map(&c, f, 2);
    assert_int_equal(c.kind, LTAP_COMPOSITE);
    /* (7, NULL) */
    const uint8_t ok[24] = {0, 0, 0, 2, 0, 0, 0, 23, 0,    0,    0,    4,
                            0, 0, 0, 7, 0, 0, 4, 58, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(ltap__decode(&c, ok, 24, &a, &v), 0);
    assert_int_equal(v.kind, LAKE_STRUCT);
    assert_int_equal(v.u.list.items[0].u.i, 7);
    assert_int_equal(v.u.list.items[1].kind, LAKE_NULL);
    /* wrong count, wrong attribute type, cut short, trailing byte */
    uint8_t bad[25];
    memcpy(bad, ok, 24);
    bad[3] = 3;
    assert_int_equal(ltap__decode(&c, bad, 24, &a, &v), LB_EPROTO);
    memcpy(bad, ok, 24);
    bad[7] = 20;
    assert_int_equal(ltap__decode(&c, bad, 24, &a, &v), LB_EPROTO);
    assert_int_equal(ltap__decode(&c, ok, 23, &a, &v), LB_EPROTO);
    memcpy(bad, ok, 24);
    bad[24] = 0;
    assert_int_equal(ltap__decode(&c, bad, 25, &a, &v), LB_EPROTO);
    /* an infinite date in a field: the whole value to overflow */
    const uint8_t inf[24] = {0, 0, 0, 2,  0, 0, 0, 23, 0xff, 0xff, 0xff, 0xff,
                             0, 0, 4, 58, 0, 0, 0, 4,  0x7f, 0xff, 0xff, 0xff};
    assert_int_equal(ltap__decode(&c, inf, 24, &a, &v), 1);
    c.name = NULL; /* a literal */
    for (size_t i = 0; i < c.nfields; i++)
        c.fields[i].name = NULL;
    ltap__column_free(&c);
    /* a field without a native form keeps the column in overflow */
    ltap_column *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    g[0] = col(600, -1, 'b', 0); /* point */
    ltap_column d = {.attnum = 6, .typid = 70001, .typmod = -1};
    ltap__composite_map(&d, g, 1);
    assert_int_equal(d.kind, LTAP_OVERFLOW);
    g[0].name = NULL;
    ltap__column_free(&d);
    ltap__arena_free(&a);
}

static void
test_arrays(void **state)
{
    (void)state;
    ltap_arena a = {0};
    lake_value v;
    ltap_column arr = col(1007, -1, 'b', 23); /* int4[] */
    assert_int_equal(arr.kind, LTAP_ARRAY);
    assert_int_equal(arr.elem_kind, LTAP_INT4);
    /* {5,NULL}: ndim 1, hasnull 1, elem 23, dim 2 lb 1 */
    const uint8_t one[] = {0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 23, 0,    0,    0,    2,
                           0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 5,  0xff, 0xff, 0xff, 0xff};
    assert_int_equal(ltap__decode(&arr, one, sizeof(one), &a, &v), 0);
    assert_int_equal(v.kind, LAKE_LIST);
    assert_int_equal(v.u.list.count, 2);
    assert_int_equal(v.u.list.items[0].u.i, 5);
    assert_int_equal(v.u.list.items[1].kind, LAKE_NULL);
    /* lower bound 0: overflow */
    uint8_t lb0[sizeof(one)];
    memcpy(lb0, one, sizeof(one));
    lb0[19] = 0;
    assert_int_equal(ltap__decode(&arr, lb0, sizeof(lb0), &a, &v), 1);
    /* empty array */
    const uint8_t empty[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23};
    assert_int_equal(ltap__decode(&arr, empty, sizeof(empty), &a, &v), 0);
    assert_int_equal(v.u.list.count, 0);
    /* another element type, an element running past the end */
    uint8_t other[sizeof(one)];
    memcpy(other, one, sizeof(one));
    other[11] = 20;
    assert_int_equal(ltap__decode(&arr, other, sizeof(other), &a, &v), LB_EPROTO);
    assert_int_equal(ltap__decode(&arr, one, sizeof(one) - 6, &a, &v), LB_EPROTO);
    ltap__arena_free(&a);
}

static void
test_text_and_schema(void **state)
{
    (void)state;
    ltap_arena a = {0};
    lake_value v;
    ltap_column text = col(25, -1, 'b', 0);
    assert_int_equal(ltap__decode(&text, (const uint8_t *)"h\xc3\xa9", 3, &a, &v), 0);
    /* not UTF-8 (a SQL_ASCII database): kept as bytes in the overflow list */
    assert_int_equal(ltap__decode(&text, (const uint8_t *)"\xff", 1, &a, &v), 1);
    ltap_column jsonb = col(3802, -1, 'b', 0);
    assert_int_equal(ltap__decode(&jsonb, (const uint8_t *)"\x02{}", 3, &a, &v), LB_EPROTO);
    assert_int_equal(ltap__decode(&jsonb, (const uint8_t *)"\x01{}", 3, &a, &v), 0);
    assert_int_equal(v.u.bytes.len, 2);
    ltap_column ext = col(16400, -1, 'b', 0); /* an extension type */
    assert_int_equal(ext.kind, LTAP_OVERFLOW);
    ltap_column en = col(16500, -1, 'e', 0); /* an enum */
    assert_int_equal(en.kind, LTAP_TEXT);

    ltap_column cols[2] = {col(23, -1, 'b', 0), col(16400, -1, 'b', 0)};
    cols[1].attnum = 2;
    lake_schema *s = NULL;
    lb_err err = {0};
    assert_int_equal(ltap__schema_build(cols, 2, &s, &err), 0);
    lake_schema_free(s);
    cols[0].name = LTAP_COL_TID_BLOCK;
    assert_int_equal(ltap__schema_build(cols, 2, &s, &err), LB_ESCHEMA);
    assert_non_null(strstr(err.message, LTAP_COL_TID_BLOCK));
    ltap__arena_free(&a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numeric),         cmocka_unit_test(test_numeric_edges),
        cmocka_unit_test(test_arena),           cmocka_unit_test(test_dates_and_times),
        cmocka_unit_test(test_arrays),          cmocka_unit_test(test_network_and_bits),
        cmocka_unit_test(test_ranges),          cmocka_unit_test(test_composites),
        cmocka_unit_test(test_text_and_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
