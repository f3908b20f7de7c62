/*
 * schema.h: see dc_schema_validate in api.h; this header exists for the
 * unit tests, which call the validator without a server.
 */
#ifndef DC_SCHEMA_H
#define DC_SCHEMA_H

#include <jansson.h>

int dc_schema_validate(const json_t *schema, json_t *obj, json_t *causes, json_t *unknown);

#endif
