/*
 * lsn.h: PostgreSQL log sequence numbers.
 *
 * An LSN is a 64-bit byte position in the WAL, printed as two hex halves
 * "X/X" exactly as PostgreSQL prints it (upper case, no leading zeros).
 */
#ifndef LB_LSN_H
#define LB_LSN_H

#include <stddef.h>
#include <stdint.h>

typedef uint64_t lb_lsn;

#define LB_LSN_INVALID ((lb_lsn)0)
/* "FFFFFFFF/FFFFFFFF" plus NUL. */
#define LB_LSN_STRLEN 18
#define LB_LSN_FMT "%X/%X"
#define LB_LSN_ARGS(lsn) (unsigned)((uint64_t)(lsn) >> 32), (unsigned)((uint64_t)(lsn)&0xFFFFFFFFu)

/* Parse "X/X" (1 to 8 hex digits each side, nothing else). 0 or LB_EPARSE. */
int lb_lsn_parse(const char *text, lb_lsn *lsn);
/* Format into buf (at least LB_LSN_STRLEN bytes); returns buf. */
char *lb_lsn_format(lb_lsn lsn, char *buf);

#endif
