/*
 * yamljson.h: a YAML request body as JSON (Content-Type: application/yaml).
 *
 * Plain scalars resolve as sigs.k8s.io/yaml does (YAML 1.1 through
 * go-yaml v2): null/~/empty, true/false/yes/no/on/off, integers, floats;
 * quoted scalars are strings. Only the first document is read.
 */
#ifndef DC_YAMLJSON_H
#define DC_YAMLJSON_H

#include <jansson.h>
#include <stddef.h>

/* 0 and a new reference in *out, or LB_EPARSE with a message in err. */
int dc_yaml_to_json(const char *text, size_t len, json_t **out, char *err, size_t cap);

#endif
