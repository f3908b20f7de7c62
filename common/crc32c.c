/*
 * crc32c.c: CRC-32C with a hardware path (SSE4.2 crc32 instruction) chosen
 * once at first use, and a slicing-by-8 table path for other CPUs. Both give
 * identical results; the unit test checks them against each other and
 * against the standard check value 0xE3069283 for "123456789".
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define LB_HAVE_SSE42_PATH 1
#endif

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_hw;

static void
crc_setup(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
#ifdef LB_HAVE_SSE42_PATH
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t
lb_crc32c_update_sw(uint32_t crc, const void *bytes, size_t n)
{
    pthread_once(&crc_once, crc_setup);
    const unsigned char *p = bytes;
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= crc; /* little-endian word order, as on every platform we build for */
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
              crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^
              crc_table[2][(hi >> 8) & 0xFF] ^ crc_table[1][(hi >> 16) & 0xFF] ^
              crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return crc;
}

#ifdef LB_HAVE_SSE42_PATH
__attribute__((target("sse4.2"))) static uint32_t
crc32c_hw(uint32_t crc, const void *bytes, size_t n)
{
    const unsigned char *p = bytes;
#ifdef __x86_64__
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        n -= 8;
    }
    crc = (uint32_t)c;
#endif
    while (n--)
        crc = _mm_crc32_u8(crc, *p++);
    return crc;
}
#endif

bool
lb_crc32c_hw_available(void)
{
    pthread_once(&crc_once, crc_setup);
    return crc_hw;
}

uint32_t
lb_crc32c_update(uint32_t crc, const void *bytes, size_t n)
{
    pthread_once(&crc_once, crc_setup);
#ifdef LB_HAVE_SSE42_PATH
    if (crc_hw)
        return crc32c_hw(crc, bytes, n);
#endif
    return lb_crc32c_update_sw(crc, bytes, n);
}

uint32_t
lb_crc32c(const void *bytes, size_t n)
{
    return LB_CRC32C_FINAL(lb_crc32c_update(LB_CRC32C_INIT, bytes, n));
}
