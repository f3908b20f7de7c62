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

#endif
