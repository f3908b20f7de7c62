/*
 * quantity.h: Kubernetes quantities ("1Gi", "500M", "250m") and Go
 * durations ("168h", "1h30m", "0s"), the two value forms the CRDs use.
 *
 * The API server checks a quantity's pattern, and the CRD a duration's, but
 * the controller parses both itself before acting on them: a CRD installed
 * without validation (or an older copy of it) must not make the controller
 * act on garbage.
 *
 * Callers: cluster.c and branch.c (spec checks, ttl, storage sizes).
 */
#ifndef CTL_QUANTITY_H
#define CTL_QUANTITY_H

#include <stdint.h>

/* A quantity into its value rounded up to a whole number (bytes for sizes,
 * cores rounded up for cpu). Suffixes: Ki Mi Gi Ti Pi Ei (powers of 1024),
 * n u m k M G T P E (powers of 1000), or an exponent e/E. 0, or LB_EPARSE
 * (malformed, negative or beyond int64). */
int ctl_quantity_parse(const char *text, int64_t *out);

/* A Go duration ("300ms", "1.5h", "2h45m", "0s"; units ns us µs ms s m h)
 * into milliseconds, rounded down. 0, or LB_EPARSE (malformed, negative,
 * overflow). */
int ctl_duration_parse(const char *text, int64_t *ms);

#endif
