/*
 * selector.h: label selectors and field selectors, as in list and watch
 * queries (?labelSelector=app=web,tier!=db&fieldSelector=metadata.name=x).
 *
 * Label selector grammar (k8s.io/apimachinery/pkg/labels): comma-separated
 * requirements, each `key`, `!key`, `key=value`, `key==value`,
 * `key!=value`, `key in (a,b)` or `key notin (a,b)`.
 * Field selector grammar: comma-separated `path=value`, `path==value` or
 * `path!=value`, where path is a dotted field path of the object.
 */
#ifndef DC_SELECTOR_H
#define DC_SELECTOR_H

#include <jansson.h>
#include <stdbool.h>

typedef struct dc_selector dc_selector;

/* Parse; NULL or "" gives a selector that matches everything. 0, or
 * LB_EPARSE with a message in err (cap bytes). *out freed with
 * dc_selector_free. */
int dc_selector_parse_labels(const char *text, dc_selector **out, char *err, size_t cap);
int dc_selector_parse_fields(const char *text, dc_selector **out, char *err, size_t cap);
/* Labels: the object's metadata.labels; fields: the object itself. */
bool dc_selector_matches(const dc_selector *sel, const json_t *obj);
/* A label selector object ({matchLabels, matchExpressions}) against labels. */
bool dc_label_selector_object_matches(const json_t *selector, const json_t *labels);
void dc_selector_free(dc_selector *sel);

#endif
