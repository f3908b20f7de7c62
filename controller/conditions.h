/*
 * conditions.h: status conditions after the Kubernetes API conventions.
 *
 * A condition is {type, status ("True"/"False"/"Unknown"), reason
 * (CamelCase), message, lastTransitionTime (RFC 3339), observedGeneration}.
 * lastTransitionTime changes only when status changes: a new reason or
 * message with the same status keeps the old time, so `kubectl wait` and
 * humans see when the condition last flipped, not when it was last written.
 * observedGeneration is the generation the condition was computed for;
 * `kubectl wait --for=condition=Ready` treats one older than the object's
 * metadata.generation as not met.
 *
 * Callers: cluster.c, branch.c (building the status they write through
 * /status).
 */
#ifndef CTL_CONDITIONS_H
#define CTL_CONDITIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Set condition type in conditions (a JSON array, changed in place) to
 * status/reason/message for generation. now: RFC 3339 time used when the
 * condition is new or its status changes. reason must be CamelCase
 * ([A-Z][A-Za-z0-9]*): anything else is refused with -EINVAL (a programming
 * error, asserted in debug builds). 0, -EINVAL, -ENOMEM. */
int ctl_condition_set(json_t *conditions, const char *type, const char *status, const char *reason,
                      const char *message, int64_t generation, const char *now);

/* The condition of that type in conditions, or NULL (borrowed). */
json_t *ctl_condition_get(const json_t *conditions, const char *type);
/* true if the condition exists with status "True". */
bool ctl_condition_true(const json_t *conditions, const char *type);

/* true if reason is CamelCase: [A-Z][A-Za-z0-9]*, at most 1024 bytes. */
bool ctl_reason_valid(const char *reason);

/* The current time as RFC 3339 in UTC with seconds ("2026-12-04T23:41:09Z")
 * into buf (at least 32 bytes). */
void ctl_now_rfc3339(char *buf, size_t cap);
/* Format a time (seconds since the epoch) the same way. */
void ctl_time_rfc3339(int64_t secs, char *buf, size_t cap);
/* Parse an RFC 3339 time into whole seconds since the epoch, by the one
 * parser lb_rfc3339_parse() (clock.h). 0 or LB_EPARSE. */
int ctl_rfc3339_parse(const char *text, int64_t *secs);

#endif
