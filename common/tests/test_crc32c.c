/* test_crc32c.c: CRC-32C matches the standard check values on both paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

static void
test_check_value(void **state)
{
    (void)state;
    /* The catalogued check value of CRC-32C for "123456789". */
    assert_int_equal(lb_crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(LB_CRC32C_FINAL(lb_crc32c_update_sw(LB_CRC32C_INIT, "123456789", 9)),
                     0xE3069283u);
    assert_int_equal(lb_crc32c("", 0), 0);
}

static void
test_rfc3720_vectors(void **state)
{
    (void)state;
    /* iSCSI (RFC 3720 B.4) test patterns: 32 bytes of zeros, of 0xFF, ascending. */
    uint8_t buf[32];
    memset(buf, 0, sizeof(buf));
    assert_int_equal(lb_crc32c(buf, 32), 0x8A9136AAu);
    memset(buf, 0xFF, sizeof(buf));
    assert_int_equal(lb_crc32c(buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    assert_int_equal(lb_crc32c(buf, 32), 0x46DD794Eu);
}

static void
test_hw_and_sw_agree_on_every_length_and_alignment(void **state)
{
    (void)state;
    uint8_t data[1100];
    srand(7);
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)rand();
    for (size_t off = 0; off < 8; off++) {
        for (size_t n = 0; n + off <= sizeof(data); n += 37) {
            uint32_t a = lb_crc32c_update(LB_CRC32C_INIT, data + off, n);
            uint32_t b = lb_crc32c_update_sw(LB_CRC32C_INIT, data + off, n);
            assert_int_equal(a, b);
        }
    }
}

static void
test_incremental_equals_one_shot(void **state)
{
    (void)state;
    const char *s = "The quick brown fox jumps over the lazy dog";
    size_t n = strlen(s);
    for (size_t cut = 0; cut <= n; cut++) {
        uint32_t c = lb_crc32c_update(LB_CRC32C_INIT, s, cut);
        c = lb_crc32c_update(c, s + cut, n - cut);
        assert_int_equal(LB_CRC32C_FINAL(c), lb_crc32c(s, n));
    }
    assert_int_equal(lb_crc32c(s, n), 0x22620404u);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_rfc3720_vectors),
        cmocka_unit_test(test_hw_and_sw_agree_on_every_length_and_alignment),
        cmocka_unit_test(test_incremental_equals_one_shot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
