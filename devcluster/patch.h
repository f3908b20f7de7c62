/*
 * patch.h: the three PATCH flavours a real API server accepts.
 *
 *   application/merge-patch+json           RFC 7386
 *   application/json-patch+json            RFC 6902 (add, remove, replace,
 *                                          move, copy, test)
 *   application/strategic-merge-patch+json Kubernetes' strategic merge:
 *       lists with a merge key (containers by name, ports by containerPort
 *       or port, conditions by type, ...) merge element by element, the
 *       directives $patch (replace, delete, merge), $retainKeys,
 *       $setElementOrder/<list> and $deleteFromPrimitiveList/<list> apply,
 *       and finalizers merge as a set. Which list merges by which key is
 *       decided by the field's name (see merge_key_for in patch.c), which
 *       is right for the built-in kinds that kubectl and helm patch.
 *
 * Each returns 0 and a new object in *out (the target is not modified), or
 * LB_EPARSE / LB_ECONFLICT (a failed "test" or a path that is not there)
 * with a message in err.
 */
#ifndef DC_PATCH_H
#define DC_PATCH_H

#include <jansson.h>
#include <stddef.h>

int dc_merge_patch(const json_t *target, const json_t *patch, json_t **out, char *err, size_t cap);
int dc_json_patch(const json_t *target, const json_t *patch, json_t **out, char *err, size_t cap);
int dc_strategic_merge_patch(const json_t *target, const json_t *patch, json_t **out, char *err,
                             size_t cap);

#endif
