/*
 * schema.h: see dc_schema_validate in api.h; this header exists for the
 * unit tests, which call the validator without a server.
 */
#ifndef DC_SCHEMA_H
#define DC_SCHEMA_H

#include <jansson.h>

int dc_schema_validate(const json_t *schema, json_t *obj, json_t *causes, json_t *unknown);
/* 0 if pattern is one this server runs; -1 (reason in why) for what Go's
 * regexp refuses (nested repetition, counts over 1000) or what would cost
 * glibc's regcomp gigabytes. */
int dc_schema_pattern_ok(const char *pattern, char *why, size_t cap);
/* Add a cause for every pattern in schema that dc_schema_pattern_ok
 * refuses, path being where schema sits ("spec.versions[0].schema...").
 * Returns how many. */
int dc_schema_check_patterns(const json_t *schema, const char *path, json_t *causes);

/* 1 if s matches pattern (a CRD pattern, run as schema validation runs
 * it), 0 if not, -1 if the pattern is refused or does not compile. */
int dc_schema_regex_match(const char *pattern, const char *s);
/* Run the x-kubernetes-validations rules of schema (cel.h's subset) on obj,
 * already defaulted; old is the stored object of an update (NULL on
 * create), for transition rules. Adds a cause per failed rule; returns
 * how many. */
int dc_schema_validate_rules(const json_t *schema, const json_t *obj, const json_t *old,
                             json_t *causes);
/* Log every rule of schema outside the CEL subset (not enforced); returns
 * how many. crd names the CRD in the log. */
int dc_schema_report_unsupported_rules(const json_t *schema, const char *crd);

#endif
