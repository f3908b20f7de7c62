/*
 * quantity.h: Kubernetes quantities ("1Gi", "500M", "250m") and Go
 * durations ("168h", "1h30m", "0s"), the two value forms the CRDs use.
 *
 * The one parser of each: the controller's spec checks (a CRD installed
 * without validation must not make it act on garbage), devcluster's
 * resource limits, and every duration setting of the daemons' config files
 * (common/config.c). Durations also take "d" (days), which Go's grammar
 * lacks, for config files; the CRDs' patterns do not allow it.
 */
#ifndef LB_QUANTITY_H
#define LB_QUANTITY_H

#include <stdint.h>

/* A quantity into its value rounded up to a whole number (bytes for sizes,
 * cores rounded up for cpu). Suffixes: Ki Mi Gi Ti Pi Ei (powers of 1024),
 * n u m k M G T P E (powers of 1000), or an exponent e/E. 0, or LB_EPARSE
 * (malformed, negative or beyond int64). */
int lb_quantity_parse(const char *text, int64_t *out);

/* The same quantity in thousandths, rounded up ("250m" -> 250, "2" ->
 * 2000): millicores for cpu. 0, or LB_EPARSE. */
int lb_quantity_milli(const char *text, int64_t *out);

/* A Go duration ("300ms", "1.5h", "2h45m", "0s"; units ns us µs ms s m h, and d)
 * into milliseconds, rounded down. 0, or LB_EPARSE (malformed, negative,
 * overflow). */
int lb_duration_parse(const char *text, int64_t *ms);

#endif
