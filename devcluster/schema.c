/*
 * schema.c: structural-schema validation of custom resources, as the
 * apiextensions API server does it: defaults first, then pruning of fields
 * the schema does not know, then validation, with error messages in the
 * real server's words:
 *
 *   spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"
 *   spec.cluster: Required value
 *   spec.mode: Unsupported value: "x": supported values: "a", "b"
 *   spec.replicas: Invalid value: 7: spec.replicas in body should be less than or equal to 5
 *   spec.name: Invalid value: "X": spec.name in body should match '^[a-z]+$'
 *
 * Supported keywords: type, properties, required, items, enum, minimum,
 * maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength,
 * pattern, minItems, maxItems, minProperties, maxProperties,
 * additionalProperties, default, nullable, x-kubernetes-preserve-unknown-
 * fields, x-kubernetes-int-or-string, x-kubernetes-embedded-resource.
 * Patterns are ECMA-262 in Kubernetes; here they run as POSIX extended
 * regular expressions after \d, \w and \s are rewritten, which covers the
 * patterns CRDs use in practice. Formats are not checked.
 *
 * CEL rules (x-kubernetes-validations) run after the schema, on the
 * defaulted object, through cel.c's subset: each rule with self the value
 * at its node (absent values are not checked), transition rules (those
 * naming oldSelf) only on an update whose old object has a value there
 * (correlated through properties, map keys and list-type=map keys, as the
 * real server does). A failure reads as the real server's:
 *
 *   spec.clusterRef: Invalid value: "object": clusterRef is immutable
 *
 * A rule outside the subset is not enforced: a real server accepts the CRD,
 * so this one does too and logs the rule when the CRD is written.
 */
#include "schema.h"

#include "buf.h"
#include "cel.h"
#include "log.h"

#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cause(json_t *causes, const char *reason, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void
cause(json_t *causes, const char *reason, const char *field, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(
        causes, json_pack("{s:s, s:s, s:s}", "reason", reason, "message", msg, "field", field));
}

static const char *
type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

/* The value as the real server prints it after "Invalid value: ". */
static void
show(const json_t *v, char *out, size_t cap)
{
    if (json_is_string(v)) {
        snprintf(out, cap, "\"%s\"", json_string_value(v));
    } else if (json_is_object(v) || json_is_array(v)) {
        snprintf(out, cap, "\"%s\"", type_name(v));
    } else {
        char *t = json_dumps(v, JSON_ENCODE_ANY);
        snprintf(out, cap, "%s", t ? t : "null");
        free(t);
    }
}

static bool
type_ok(const char *type, const json_t *v, bool int_or_string)
{
    if (int_or_string)
        return json_is_integer(v) || json_is_string(v);
    if (!type)
        return true;
    if (strcmp(type, "object") == 0)
        return json_is_object(v);
    if (strcmp(type, "array") == 0)
        return json_is_array(v);
    if (strcmp(type, "string") == 0)
        return json_is_string(v);
    if (strcmp(type, "integer") == 0)
        return json_is_integer(v) ||
               (json_is_real(v) && json_real_value(v) == (double)(long long)json_real_value(v));
    if (strcmp(type, "number") == 0)
        return json_is_number(v);
    if (strcmp(type, "boolean") == 0)
        return json_is_boolean(v);
    return true;
}

/* ECMA-262 escapes to POSIX classes. */
static char *
posix_pattern(const char *ecma)
{
    lb_buf b = LB_BUF_INIT;
    for (const char *p = ecma; *p; p++) {
        if (p[0] == '\\' && p[1]) {
            switch (p[1]) {
            case 'd':
                lb_buf_append_str(&b, "[0-9]");
                p++;
                continue;
            case 'D':
                lb_buf_append_str(&b, "[^0-9]");
                p++;
                continue;
            case 'w':
                lb_buf_append_str(&b, "[A-Za-z0-9_]");
                p++;
                continue;
            case 'W':
                lb_buf_append_str(&b, "[^A-Za-z0-9_]");
                p++;
                continue;
            case 's':
                lb_buf_append_str(&b, "[[:space:]]");
                p++;
                continue;
            case 'S':
                lb_buf_append_str(&b, "[^[:space:]]");
                p++;
                continue;
            default:
                break;
            }
        }
        lb_buf_append(&b, p, 1);
    }
    if (!b.data)
        lb_buf_append_str(&b, "");
    return lb_buf_steal(&b, NULL);
}

int
dc_schema_pattern_ok(const char *pattern, char *why, size_t cap)
{
    /* What Go's regexp (RE2) refuses and what makes glibc's regcomp build
     * an automaton of gigabytes: a repetition of a repetition, counts over
     * 1000, and very long patterns. */
    size_t n = strlen(pattern);
    if (n > 4096) {
        snprintf(why, cap, "pattern longer than 4096 bytes");
        return -1;
    }
    long counted = 1;
    int state = 0; /* 0: after an atom, 1: after a quantifier, 2: after a lazy one */
    for (size_t i = 0; i < n; i++) {
        char ch = pattern[i];
        if (ch == '\\' && i + 1 < n) {
            i++;
            state = 0;
            continue;
        }
        if (ch == '[') { /* a class: skip to its end */
            size_t j = i + 1;
            if (j < n && pattern[j] == '^')
                j++;
            if (j < n && pattern[j] == ']')
                j++;
            while (j < n && pattern[j] != ']')
                j += pattern[j] == '\\' ? 2 : 1;
            i = j;
            state = 0;
            continue;
        }
        if (ch == '?') {
            if (state == 2) {
                snprintf(why, cap, "invalid nested repetition operator at offset %zu", i);
                return -1;
            }
            state = state == 1 ? 2 : 1;
            continue;
        }
        if (ch == '*' || ch == '+' || ch == '{') {
            if (state != 0) {
                snprintf(why, cap, "invalid nested repetition operator at offset %zu", i);
                return -1;
            }
            state = 1;
            if (ch == '{') {
                char *end;
                long lo = strtol(pattern + i + 1, &end, 10);
                long hi = lo;
                if (*end == ',')
                    hi = end[1] == '}' ? lo : strtol(end + 1, &end, 10);
                if (lo > 1000 || hi > 1000 || lo < 0 || hi < 0) {
                    snprintf(why, cap, "invalid repeat count at offset %zu", i);
                    return -1;
                }
                counted *= (hi > 0 ? hi : 1);
                if (counted > 1000) {
                    snprintf(why, cap, "repetitions over 1000 in total at offset %zu", i);
                    return -1;
                }
                const char *close = strchr(pattern + i, '}');
                if (close)
                    i = (size_t)(close - pattern);
            }
            continue;
        }
        state = 0;
    }
    return 0;
}

static bool
matches_pattern(const char *pattern, const char *s)
{
    char why[128];
    if (dc_schema_pattern_ok(pattern, why, sizeof why) != 0)
        return true; /* refused when the CRD was written; never run */
    char *posix = posix_pattern(pattern);
    regex_t re;
    bool ok = true;
    if (posix && regcomp(&re, posix, REG_EXTENDED | REG_NOSUB) == 0) {
        ok = regexec(&re, s, 0, NULL, 0) == 0;
        regfree(&re);
    }
    free(posix);
    return ok;
}

int
dc_schema_regex_match(const char *pattern, const char *s)
{
    char why[128];
    if (dc_schema_pattern_ok(pattern, why, sizeof why) != 0)
        return -1;
    char *posix = posix_pattern(pattern);
    regex_t re;
    if (!posix || regcomp(&re, posix, REG_EXTENDED | REG_NOSUB) != 0) {
        free(posix);
        return -1;
    }
    int m = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    free(posix);
    return m;
}

static double
num(const json_t *v)
{
    return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

static void validate(const json_t *schema, json_t *v, const char *path, json_t *causes,
                     json_t *unknown, int depth);

static void
apply_defaults(const json_t *schema, json_t *obj)
{
    const char *k;
    json_t *sub;
    json_object_foreach((json_t *)json_object_get(schema, "properties"), k, sub)
    {
        json_t *def = json_object_get(sub, "default");
        if (def && !json_object_get(obj, k))
            json_object_set_new(obj, k, json_deep_copy(def));
    }
}

static void
validate_object(const json_t *schema, json_t *v, const char *path, json_t *causes, json_t *unknown,
                int depth)
{
    apply_defaults(schema, v);
    json_t *props = json_object_get(schema, "properties");
    json_t *addl = json_object_get(schema, "additionalProperties");
    bool preserve = json_is_true(json_object_get(schema, "x-kubernetes-preserve-unknown-fields"));
    bool embedded = json_is_true(json_object_get(schema, "x-kubernetes-embedded-resource"));
    bool root = depth == 0;
    size_t i;
    json_t *req;
    json_array_foreach(json_object_get(schema, "required"), i, req)
    {
        const char *name = json_string_value(req);
        if (name && !json_object_get(v, name)) {
            char f[1024];
            snprintf(f, sizeof f, "%s%s%s", path, path[0] ? "." : "", name);
            cause(causes, "FieldValueRequired", f, "Required value");
        }
    }
    void *tmp;
    const char *k;
    json_t *child;
    json_object_foreach_safe(v, tmp, k, child)
    {
        char f[1024];
        snprintf(f, sizeof f, "%s%s%s", path, path[0] ? "." : "", k);
        if ((root || embedded) &&
            (strcmp(k, "apiVersion") == 0 || strcmp(k, "kind") == 0 || strcmp(k, "metadata") == 0))
            continue;
        json_t *sub = json_object_get(props, k);
        if (sub) {
            validate(sub, child, f, causes, unknown, depth + 1);
        } else if (json_is_object(addl)) {
            validate(addl, child, f, causes, unknown, depth + 1);
        } else if (preserve || json_is_true(addl)) {
            continue;
        } else if (props || json_object_get(schema, "type")) {
            if (unknown)
                json_array_append_new(unknown, json_string(f));
            json_object_del(v, k);
        }
    }
    json_t *minp = json_object_get(schema, "minProperties");
    json_t *maxp = json_object_get(schema, "maxProperties");
    if (json_is_integer(minp) && (json_int_t)json_object_size(v) < json_integer_value(minp))
        cause(causes, "FieldValueInvalid", path,
              "Invalid value: %zu: %s in body should have at least %lld properties",
              json_object_size(v), path, (long long)json_integer_value(minp));
    if (json_is_integer(maxp) && (json_int_t)json_object_size(v) > json_integer_value(maxp))
        cause(causes, "FieldValueTooMany", path, "Too many: %zu: must have at most %lld items",
              json_object_size(v), (long long)json_integer_value(maxp));
}

static void
validate(const json_t *schema, json_t *v, const char *path, json_t *causes, json_t *unknown,
         int depth)
{
    if (!json_is_object(schema) || depth > 64)
        return;
    char shown[600];
    const char *type = json_string_value(json_object_get(schema, "type"));
    bool int_or_string = json_is_true(json_object_get(schema, "x-kubernetes-int-or-string"));
    if (json_is_null(v)) {
        if (json_is_true(json_object_get(schema, "nullable")) || (!type && !int_or_string))
            return;
        cause(causes, "FieldValueTypeInvalid", path,
              "Invalid value: \"null\": %s in body must be of type %s: \"null\"", path,
              type ? type : "string");
        return;
    }
    if (!type_ok(type, v, int_or_string)) {
        cause(causes, "FieldValueTypeInvalid", path,
              "Invalid value: \"%s\": %s in body must be of type %s: \"%s\"", type_name(v), path,
              int_or_string ? "integer,string" : type, type_name(v));
        return;
    }
    json_t *en = json_object_get(schema, "enum");
    if (json_is_array(en)) {
        bool found = false;
        size_t i;
        json_t *e;
        json_array_foreach(en, i, e) if (json_equal(e, v)) found = true;
        if (!found) {
            lb_buf list = LB_BUF_INIT;
            json_array_foreach(en, i, e)
            {
                char s[300];
                show(e, s, sizeof s);
                lb_buf_printf(&list, "%s%s", i ? ", " : "", s);
            }
            show(v, shown, sizeof shown);
            cause(causes, "FieldValueNotSupported", path,
                  "Unsupported value: %s: supported values: %s", shown, list.data ? list.data : "");
            lb_buf_free(&list);
        }
    }
    if (json_is_number(v)) {
        json_t *mn = json_object_get(schema, "minimum"), *mx = json_object_get(schema, "maximum");
        bool exmin = json_is_true(json_object_get(schema, "exclusiveMinimum"));
        bool exmax = json_is_true(json_object_get(schema, "exclusiveMaximum"));
        show(v, shown, sizeof shown);
        char lim[64];
        if (json_is_number(mx) && (exmax ? num(v) >= num(mx) : num(v) > num(mx))) {
            show(mx, lim, sizeof lim);
            cause(causes, "FieldValueInvalid", path,
                  "Invalid value: %s: %s in body should be less than %s%s", shown, path,
                  exmax ? "" : "or equal to ", lim);
        }
        if (json_is_number(mn) && (exmin ? num(v) <= num(mn) : num(v) < num(mn))) {
            show(mn, lim, sizeof lim);
            cause(causes, "FieldValueInvalid", path,
                  "Invalid value: %s: %s in body should be greater than %s%s", shown, path,
                  exmin ? "" : "or equal to ", lim);
        }
    }
    if (json_is_string(v)) {
        size_t len = json_string_length(v);
        json_t *maxl = json_object_get(schema, "maxLength");
        json_t *minl = json_object_get(schema, "minLength");
        const char *pat = json_string_value(json_object_get(schema, "pattern"));
        show(v, shown, sizeof shown);
        if (json_is_integer(maxl) && (json_int_t)len > json_integer_value(maxl))
            cause(causes, "FieldValueTooLong", path, "Too long: may not be more than %lld bytes",
                  (long long)json_integer_value(maxl));
        if (json_is_integer(minl) && (json_int_t)len < json_integer_value(minl))
            cause(causes, "FieldValueInvalid", path,
                  "Invalid value: %s: %s in body should be at least %lld chars long", shown, path,
                  (long long)json_integer_value(minl));
        if (pat && !matches_pattern(pat, json_string_value(v)))
            cause(causes, "FieldValueInvalid", path,
                  "Invalid value: %s: %s in body should match '%s'", shown, path, pat);
    }
    if (json_is_array(v)) {
        json_t *items = json_object_get(schema, "items");
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            char f[1024];
            snprintf(f, sizeof f, "%s[%zu]", path, i);
            if (json_is_object(items) && json_is_object(e))
                apply_defaults(items, e);
            validate(items, e, f, causes, unknown, depth + 1);
        }
        json_t *mini = json_object_get(schema, "minItems");
        json_t *maxi = json_object_get(schema, "maxItems");
        if (json_is_integer(mini) && (json_int_t)json_array_size(v) < json_integer_value(mini))
            cause(causes, "FieldValueInvalid", path,
                  "Invalid value: %zu: %s in body should have at least %lld items",
                  json_array_size(v), path, (long long)json_integer_value(mini));
        if (json_is_integer(maxi) && (json_int_t)json_array_size(v) > json_integer_value(maxi))
            cause(causes, "FieldValueTooMany", path, "Too many: %zu: must have at most %lld items",
                  json_array_size(v), (long long)json_integer_value(maxi));
    }
    if (json_is_object(v))
        validate_object(schema, v, path, causes, unknown, depth);
}

/* Every pattern in a schema must be one dc_schema_pattern_ok accepts. */
static void
check_patterns(const json_t *schema, const char *path, json_t *causes, int depth)
{
    if (depth > 64)
        return;
    if (json_is_object(schema)) {
        const char *pat = json_string_value(json_object_get(schema, "pattern"));
        char why[128];
        if (pat && dc_schema_pattern_ok(pat, why, sizeof why) != 0) {
            char field[1100];
            snprintf(field, sizeof field, "%.1000s.pattern", path);
            cause(causes, "FieldValueInvalid", field,
                  "Invalid value: \"%.200s\": must be a valid regular expression, but isn't: %s",
                  pat, why);
        }
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)schema, k, v)
        {
            if (json_is_object(v) || json_is_array(v)) {
                char sub[1100];
                snprintf(sub, sizeof sub, "%.900s.%.150s", path, k);
                check_patterns(v, sub, causes, depth + 1);
            }
        }
    } else if (json_is_array(schema)) {
        size_t i;
        json_t *v;
        json_array_foreach((json_t *)schema, i, v)
        {
            char sub[1100];
            snprintf(sub, sizeof sub, "%.1000s[%zu]", path, i);
            check_patterns(v, sub, causes, depth + 1);
        }
    }
}

int
dc_schema_check_patterns(const json_t *schema, const char *path, json_t *causes)
{
    size_t before = json_array_size(causes);
    check_patterns(schema, path, causes, 0);
    return (int)(json_array_size(causes) - before);
}

int
dc_schema_validate(const json_t *schema, json_t *obj, json_t *causes, json_t *unknown)
{
    size_t before = json_array_size(causes);
    if (json_is_object(schema) && json_is_object(obj))
        validate_object(schema, obj, "", causes, unknown, 0);
    return (int)(json_array_size(causes) - before);
}

/* ---- CEL rules ---- */

static void
join_path(char *out, size_t cap, const char *path, const char *k)
{
    snprintf(out, cap, "%s%s%s", path, path[0] ? "." : "", k);
}

/* The element of old (a list-type=map list) with the same keys as e. */
static const json_t *
list_map_match(const json_t *keys, const json_t *old, const json_t *e)
{
    size_t i, j;
    json_t *o, *k;
    json_array_foreach((json_t *)old, i, o)
    {
        bool same = json_is_object(o) && json_array_size(keys) > 0;
        json_array_foreach((json_t *)keys, j, k)
        {
            const char *key = json_string_value(k);
            json_t *a = key ? json_object_get(e, key) : NULL;
            json_t *b = key ? json_object_get(o, key) : NULL;
            if (!(a == b || (a && b && json_equal(a, b))))
                same = false;
        }
        if (same)
            return o;
    }
    return NULL;
}

static void
rule_failed(json_t *causes, const json_t *rule, const char *type, const char *path, const char *why)
{
    const char *text = json_string_value(json_object_get(rule, "rule"));
    const char *msg = json_string_value(json_object_get(rule, "message"));
    const char *reason = json_string_value(json_object_get(rule, "reason"));
    const char *fp = json_string_value(json_object_get(rule, "fieldPath"));
    char field[1100];
    /* fieldPath is a JSON path relative to the rule's node (".spec.x");
     * an evaluation error is reported at the node itself */
    if (why)
        fp = NULL;
    snprintf(field, sizeof field, "%.900s%.190s", path,
             fp ? (path[0] ? fp : fp + (*fp == '.')) : "");
    char def[1200];
    if (why) {
        snprintf(def, sizeof def, "%s evaluating rule: %s", why, text ? text : "");
        msg = def;
    } else if (!msg || !*msg) {
        snprintf(def, sizeof def, "failed rule: %s", text ? text : "");
        msg = def;
    }
    if (!why && reason && strcmp(reason, "FieldValueForbidden") == 0)
        cause(causes, reason, field, "Forbidden: %s", msg);
    else if (!why && reason && strcmp(reason, "FieldValueRequired") == 0)
        cause(causes, reason, field, "Required value: %s", msg);
    else if (!why && reason && strcmp(reason, "FieldValueDuplicate") == 0)
        cause(causes, reason, field, "Duplicate value: %s", msg);
    else
        cause(causes, "FieldValueInvalid", field, "Invalid value: \"%s\": %s", type, msg);
}

static void
check_rules(const json_t *schema, const json_t *v, const json_t *old, const char *path,
            json_t *causes, int depth)
{
    if (!json_is_object(schema) || !v || json_is_null(v) || depth > 64)
        return;
    if (json_is_null(old))
        old = NULL;
    const char *type = json_string_value(json_object_get(schema, "type"));
    size_t i;
    json_t *rule;
    json_array_foreach(json_object_get(schema, "x-kubernetes-validations"), i, rule)
    {
        const char *text = json_string_value(json_object_get(rule, "rule"));
        dc_cel_rule *r;
        char err[300];
        if (!text || dc_cel_parse(text, &r, err, sizeof err) != 0)
            continue; /* not enforced; logged when the CRD was written */
        if (dc_cel_uses_old_self(r) && !old) {
            dc_cel_free(r);
            continue;
        }
        bool ok = false;
        int rc = dc_cel_eval(r, v, old, &ok, err, sizeof err);
        dc_cel_free(r);
        if (rc != 0)
            rule_failed(causes, rule, type ? type : "", path, err);
        else if (!ok)
            rule_failed(causes, rule, type ? type : "", path, NULL);
    }
    char f[1024];
    const char *k;
    json_t *sub, *child;
    if (json_is_object(v)) {
        json_t *props = json_object_get(schema, "properties");
        json_object_foreach(props, k, sub)
        {
            child = json_object_get(v, k);
            if (!child)
                continue;
            join_path(f, sizeof f, path, k);
            check_rules(sub, child, json_is_object(old) ? json_object_get(old, k) : NULL, f, causes,
                        depth + 1);
        }
        json_t *addl = json_object_get(schema, "additionalProperties");
        if (json_is_object(addl) && !props) {
            json_object_foreach((json_t *)v, k, child)
            {
                join_path(f, sizeof f, path, k);
                check_rules(addl, child, json_is_object(old) ? json_object_get(old, k) : NULL, f,
                            causes, depth + 1);
            }
        }
    }
    if (json_is_array(v)) {
        json_t *items = json_object_get(schema, "items");
        const char *lt = json_string_value(json_object_get(schema, "x-kubernetes-list-type"));
        json_t *keys = json_object_get(schema, "x-kubernetes-list-map-keys");
        json_array_foreach((json_t *)v, i, child)
        {
            snprintf(f, sizeof f, "%s[%zu]", path, i);
            const json_t *o = NULL;
            if (lt && strcmp(lt, "map") == 0 && json_is_array(old))
                o = list_map_match(keys, old, child);
            check_rules(items, child, o, f, causes, depth + 1);
        }
    }
}

int
dc_schema_validate_rules(const json_t *schema, const json_t *obj, const json_t *old, json_t *causes)
{
    size_t before = json_array_size(causes);
    check_rules(schema, obj, old, "", causes, 0);
    return (int)(json_array_size(causes) - before);
}

static void
report_rules(const json_t *schema, const char *crd, const char *path, int *count, int depth)
{
    if (!json_is_object(schema) || depth > 64)
        return;
    size_t i;
    json_t *rule;
    json_array_foreach(json_object_get(schema, "x-kubernetes-validations"), i, rule)
    {
        const char *text = json_string_value(json_object_get(rule, "rule"));
        dc_cel_rule *r;
        char err[300];
        if (text && dc_cel_parse(text, &r, err, sizeof err) == 0) {
            dc_cel_free(r);
            continue;
        }
        (*count)++;
        lb_warn("cel rule not enforced crd=%s field=%s rule=\"%.300s\" reason=\"%s\"", crd,
                path[0] ? path : "<root>", text ? text : "", text ? err : "no rule");
    }
    char f[1024];
    const char *k;
    json_t *sub;
    json_object_foreach(json_object_get(schema, "properties"), k, sub)
    {
        join_path(f, sizeof f, path, k);
        report_rules(sub, crd, f, count, depth + 1);
    }
    json_t *addl = json_object_get(schema, "additionalProperties");
    if (json_is_object(addl)) {
        snprintf(f, sizeof f, "%s[*]", path);
        report_rules(addl, crd, f, count, depth + 1);
    }
    json_t *items = json_object_get(schema, "items");
    if (json_is_object(items)) {
        snprintf(f, sizeof f, "%s[*]", path);
        report_rules(items, crd, f, count, depth + 1);
    }
}

int
dc_schema_report_unsupported_rules(const json_t *schema, const char *crd)
{
    int count = 0;
    report_rules(schema, crd ? crd : "", "", &count, 0);
    return count;
}
