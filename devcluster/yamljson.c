/*
 * yamljson.c: YAML to JSON with libyaml's document loader (see yamljson.h).
 *
 * Aliases are resolved by libyaml's loader; the depth of nesting is bounded
 * (a hostile body cannot exhaust the stack).
 */
#include "yamljson.h"

#include "errors.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define MAX_DEPTH 100

static json_t *
scalar(yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_stringn(v, len);
    if (len == 0 || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0)
        return json_null();
    static const char *const truthy[] = {"true", "yes", "on", "y"};
    static const char *const falsy[] = {"false", "no", "off", "n"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, truthy[i]) == 0 && i < 3)
            return json_true();
        if (strcasecmp(v, falsy[i]) == 0 && i < 3)
            return json_false();
    }
    char *end;
    errno = 0;
    long long iv = strtoll(v, &end, 10);
    if (*v && *end == '\0' && errno == 0 && !(v[0] == '0' && len > 1))
        return json_integer(iv);
    if (len > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
        iv = strtoll(v + 2, &end, 16);
        if (*end == '\0')
            return json_integer(iv);
    }
    bool numeric = true, dot = false;
    for (const char *p = v; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '-' ||
              *p == '+'))
            numeric = false;
        else if (*p == '.' || *p == 'e' || *p == 'E')
            dot = true;
    if (numeric && dot) {
        double d = strtod(v, &end);
        if (*end == '\0')
            return json_real(d);
    }
    if (strcmp(v, ".inf") == 0 || strcmp(v, ".nan") == 0)
        return json_stringn(v, len);
    return json_stringn(v, len);
}

static json_t *
convert(yaml_document_t *doc, yaml_node_t *n, int depth, char *err, size_t cap)
{
    if (!n || depth > MAX_DEPTH) {
        snprintf(err, cap, "yaml: nesting too deep");
        return NULL;
    }
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return scalar(n);
    case YAML_SEQUENCE_NODE: {
        json_t *arr = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            json_t *v = convert(doc, yaml_document_get_node(doc, *it), depth + 1, err, cap);
            if (!v) {
                json_decref(arr);
                return NULL;
            }
            json_array_append_new(arr, v);
        }
        return arr;
    }
    case YAML_MAPPING_NODE: {
        json_t *obj = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (!k || k->type != YAML_SCALAR_NODE) {
                snprintf(err, cap, "yaml: invalid map key");
                json_decref(obj);
                return NULL;
            }
            json_t *v = convert(doc, yaml_document_get_node(doc, p->value), depth + 1, err, cap);
            if (!v) {
                json_decref(obj);
                return NULL;
            }
            char *key = strndup((const char *)k->data.scalar.value, k->data.scalar.length);
            json_object_set_new(obj, key, v);
            free(key);
        }
        return obj;
    }
    default:
        snprintf(err, cap, "yaml: unexpected node");
        return NULL;
    }
}

int
dc_yaml_to_json(const char *text, size_t len, json_t **out, char *err, size_t cap)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, cap, "yaml: line %zu: %s", parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "malformed");
        yaml_parser_delete(&parser);
        return LB_EPARSE;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    json_t *v = root ? convert(&doc, root, 0, err, cap) : json_null();
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (!v)
        return LB_EPARSE;
    *out = v;
    return 0;
}
