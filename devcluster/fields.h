/*
 * fields.h: unknown-field detection for built-in kinds.
 *
 * A real API server decodes built-in objects into Go structs, so a field
 * that the struct does not have (a typo like spec.replica) is refused with
 * fieldValidation=Strict (what kubectl sends) and dropped with a warning
 * otherwise. devcluster checks objects against the field names of the
 * upstream types (fields_table.c, generated from kubernetes/api's
 * generated.proto by the script described there). Messages not in the
 * table (and every status) are not checked.
 */
#ifndef DC_FIELDS_H
#define DC_FIELDS_H

#include <jansson.h>
#include <stddef.h>

typedef enum dc_field_shape { DC_FIELD_ONE, DC_FIELD_LIST, DC_FIELD_MAP } dc_field_shape;

typedef struct dc_field {
    const char *message; /* "PodSpec" */
    const char *name;    /* JSON name, "containers" */
    const char *child;   /* message of the value, or NULL for a leaf */
    dc_field_shape shape;
} dc_field;

typedef struct dc_field_root {
    const char *kind;    /* "Deployment" */
    const char *message; /* its message */
} dc_field_root;

extern const dc_field dc_fields[];
extern const size_t dc_nfields;
extern const dc_field_root dc_field_roots[];
extern const size_t dc_nfield_roots;

/* Append to unknown (a JSON array) the path of every field of obj, an
 * object of kind, that its type does not have ("spec.replica",
 * "spec.template.spec.containers[0].imagePullpolicy"). Returns how many; 0
 * for kinds not in the table. apiVersion and kind are always known. */
int dc_fields_check(const char *kind, const json_t *obj, json_t *unknown);

#endif
