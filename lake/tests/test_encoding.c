/*
 * test_encoding.c: the byte-level encoders of lake/ against vectors worked
 * out from the specifications: the RLE / bit-packing hybrid (Parquet's
 * Encodings.md example), the Thrift compact protocol (field deltas, long
 * field ids, zigzag varints, bools in the type nibble, list headers), and
 * the UTF-8 checks that guard STRING columns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"
#include "encoding.h"
#include "thrift.h"

static void
expect_bytes(const lb_buf *b, const uint8_t *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

/* Values 0..7 at bit width 3 bit-pack to 0x88 0xc6 0xfa (the spec's
 * example), behind a header of one group: (1 << 1) | 1. */
static void
test_rle_bitpacked_spec_example(void **state)
{
    (void)state;
    uint32_t v[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    lb_buf b = LB_BUF_INIT;
    assert_int_equal(lake__rle_encode(v, 8, 3, &b), 0);
    static const uint8_t want[] = {0x03, 0x88, 0xc6, 0xfa};
    expect_bytes(&b, want, sizeof(want));
    lb_buf_free(&b);
}

/* A run of 8 or more equal values is one RLE run: count << 1, then the
 * value in ceil(width / 8) little-endian bytes. */
static void
test_rle_runs(void **state)
{
    (void)state;
    uint32_t v[300];
    for (int i = 0; i < 300; i++)
        v[i] = i < 100 ? 1 : 0x1234;
    lb_buf b = LB_BUF_INIT;
    assert_int_equal(lake__rle_encode(v, 300, 13, &b), 0);
    /* 100 << 1 = 200 = varint c8 01; 200 << 1 = 400 = varint 90 03. */
    static const uint8_t want[] = {0xc8, 0x01, 0x01, 0x00, 0x90, 0x03, 0x34, 0x12};
    expect_bytes(&b, want, sizeof(want));
    lb_buf_free(&b);
}

/* Short runs are bit-packed in whole groups (zero-padded at the end), and
 * a long run after them starts a new RLE run. */
static void
test_rle_mixed(void **state)
{
    (void)state;
    uint32_t v[19] = {1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
    lb_buf b = LB_BUF_INIT;
    assert_int_equal(lake__rle_encode(v, 19, 1, &b), 0);
    /* group 1 packed (0b01010101), then a run of ten 1s, then one packed
     * group holding the final 0 and zero padding. */
    static const uint8_t want[] = {0x03, 0x55, 0x14, 0x01, 0x03, 0x00};
    expect_bytes(&b, want, sizeof(want));
    lb_buf_free(&b);
}

static void
test_bit_width(void **state)
{
    (void)state;
    assert_int_equal(lake__bit_width(0), 0);
    assert_int_equal(lake__bit_width(1), 1);
    assert_int_equal(lake__bit_width(2), 2);
    assert_int_equal(lake__bit_width(3), 2);
    assert_int_equal(lake__bit_width(255), 8);
    assert_int_equal(lake__bit_width(256), 9);
    assert_int_equal(lake__bit_width(UINT32_MAX), 32);
}

static void
test_thrift_compact(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    lake__thrift t;
    lake__thrift_init(&t, &b);
    lake__thrift_struct_begin(&t);
    lake__thrift_field_i32(&t, 1, 5);       /* 0x15, zigzag 10 */
    lake__thrift_field_i64(&t, 20, -1);     /* delta 19: 0x06, id zigzag 40, value 1 */
    lake__thrift_field_bool(&t, 21, true);  /* 0x11 */
    lake__thrift_field_bool(&t, 22, false); /* 0x12 */
    lake__thrift_field_binary(&t, 23, "ab", 2);
    lake__thrift_field_list(&t, 24, LAKE__TT_I32, 2);
    lake__thrift_i32(&t, -64); /* zigzag 127 */
    lake__thrift_i32(&t, 64);  /* zigzag 128: 80 01 */
    lake__thrift_field_struct(&t, 25);
    lake__thrift_struct_begin(&t);
    lake__thrift_field_i8(&t, 1, -2);
    lake__thrift_struct_end(&t);
    lake__thrift_field_list(&t, 26, LAKE__TT_STRUCT, 15); /* long list header */
    for (int i = 0; i < 15; i++) {
        lake__thrift_struct_begin(&t);
        lake__thrift_struct_end(&t);
    }
    lake__thrift_struct_end(&t);
    assert_int_equal(lake__thrift_error(&t), 0);
    static const uint8_t want[] = {0x15, 0x0a, 0x06, 0x28, 0x01, 0x11, 0x12, 0x18, 0x02, 'a',
                                   'b',  0x19, 0x25, 0x7f, 0x80, 0x01, 0x1c, 0x13, 0xfe, 0x00,
                                   0x19, 0xfc, 0x0f, 0,    0,    0,    0,    0,    0,    0,
                                   0,    0,    0,    0,    0,    0,    0,    0,    0x00};
    expect_bytes(&b, want, sizeof(want));
    lb_buf_free(&b);
}

static void
test_utf8(void **state)
{
    (void)state;
    size_t bad = 99;
    assert_true(lake__utf8_valid((const uint8_t *)"", 0, &bad));
    assert_true(
        lake__utf8_valid((const uint8_t *)"a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x8e\x89", 10, &bad));
    assert_true(lake__utf8_valid((const uint8_t *)"\xf4\x8f\xbf\xbf", 4, &bad)); /* U+10FFFF */
    assert_false(lake__utf8_valid((const uint8_t *)"ab\xc0\xaf", 4, &bad));      /* overlong */
    assert_int_equal(bad, 2);
    assert_false(lake__utf8_valid((const uint8_t *)"\xed\xa0\x80", 3, &bad)); /* surrogate */
    assert_int_equal(bad, 0);
    assert_false(lake__utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4, &bad)); /* > U+10FFFF */
    assert_false(lake__utf8_valid((const uint8_t *)"x\xe6\x97", 3, &bad));        /* truncated */
    assert_int_equal(bad, 1);
    assert_false(lake__utf8_valid((const uint8_t *)"\x80", 1, &bad)); /* stray continuation */
    /* In long strings (the ASCII fast paths take 32 and 8 bytes at a time,
     * and the last 8 overlapping), a bad byte or a good character is found
     * at every position. */
    for (size_t len = 1; len <= 80; len++) {
        uint8_t text[80];
        for (size_t at = 0; at < len; at++) {
            memset(text, 'a', len);
            text[at] = 0x80;
            assert_false(lake__utf8_valid(text, len, &bad));
            assert_int_equal(bad, at);
            if (at + 2 <= len) {
                text[at] = 0xc3, text[at + 1] = 0xa9;
                assert_true(lake__utf8_valid(text, len, &bad));
            }
            if (at + 3 <= len) {
                text[at + 2] = 0xa9; /* a continuation with no lead */
                assert_false(lake__utf8_valid(text, len, &bad));
                assert_int_equal(bad, at + 2);
            }
        }
    }
    /* Prefixes end on character boundaries. */
    const uint8_t *s = (const uint8_t *)"a\xe6\x97\xa5z";
    assert_int_equal(lake__utf8_prefix(s, 5, 10), 5);
    assert_int_equal(lake__utf8_prefix(s, 5, 4), 4);
    assert_int_equal(lake__utf8_prefix(s, 5, 3), 1);
    assert_int_equal(lake__utf8_prefix(s, 5, 2), 1);
    assert_int_equal(lake__utf8_prefix(s, 5, 0), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rle_bitpacked_spec_example),
        cmocka_unit_test(test_rle_runs),
        cmocka_unit_test(test_rle_mixed),
        cmocka_unit_test(test_bit_width),
        cmocka_unit_test(test_thrift_compact),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
