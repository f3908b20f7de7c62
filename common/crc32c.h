/*
 * crc32c.h: CRC-32C (Castagnoli), the checksum of PostgreSQL WAL records and
 * of lakebase's own files.
 *
 * Same convention as PostgreSQL's INIT/COMP/FIN_CRC32C:
 *     uint32_t crc = LB_CRC32C_INIT;
 *     crc = lb_crc32c_update(crc, a, alen);
 *     crc = lb_crc32c_update(crc, b, blen);
 *     crc = LB_CRC32C_FINAL(crc);
 */
#ifndef LB_CRC32C_H
#define LB_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LB_CRC32C_INIT 0xFFFFFFFFu
#define LB_CRC32C_FINAL(crc) ((crc) ^ 0xFFFFFFFFu)

/* Uses SSE4.2 when the CPU has it, a slicing-by-8 table otherwise. */
uint32_t lb_crc32c_update(uint32_t crc, const void *bytes, size_t n);
/* One-shot: INIT, update, FINAL. */
uint32_t lb_crc32c(const void *bytes, size_t n);

/* For tests: the portable path, and whether the hardware path is in use. */
uint32_t lb_crc32c_update_sw(uint32_t crc, const void *bytes, size_t n);
bool lb_crc32c_hw_available(void);

#endif
