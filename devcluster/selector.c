/*
 * selector.c: parse and match label and field selectors (see selector.h).
 *
 * A parsed selector is a list of requirements that must all hold. Field
 * values compare as text: a number or a boolean field matches its JSON
 * spelling ("spec.replicas=3"), an absent field matches "" (as the real API
 * server's field sets do for empty strings).
 */
#include "selector.h"

#include "errors.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum op { OP_EXISTS, OP_NOT_EXISTS, OP_EQ, OP_NE, OP_IN, OP_NOTIN } op;

typedef struct requirement {
    char *key;
    op op;
    char **values;
    size_t nvalues;
} requirement;

struct dc_selector {
    bool fields;
    requirement *reqs;
    size_t nreqs;
};

void
dc_selector_free(dc_selector *sel)
{
    if (!sel)
        return;
    for (size_t i = 0; i < sel->nreqs; i++) {
        free(sel->reqs[i].key);
        for (size_t j = 0; j < sel->reqs[i].nvalues; j++)
            free(sel->reqs[i].values[j]);
        free(sel->reqs[i].values);
    }
    free(sel->reqs);
    free(sel);
}

static char *
trimdup(const char *s, size_t n)
{
    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    return strndup(s, n);
}

static int
add_value(requirement *r, char *v)
{
    char **grown = realloc(r->values, sizeof *grown * (r->nvalues + 1));
    if (!grown || !v) {
        free(v);
        return -ENOMEM;
    }
    r->values = grown;
    r->values[r->nvalues++] = v;
    return 0;
}

static bool
valid_label_key(const char *k)
{
    if (!*k || strlen(k) > 316)
        return false;
    for (const char *p = k; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.' || *p == '/'))
            return false;
    return true;
}

/* Split text at commas outside parentheses. */
static int
parse(const char *text, bool fields, dc_selector **out, char *err, size_t cap)
{
    dc_selector *sel = calloc(1, sizeof *sel);
    if (!sel)
        return -ENOMEM;
    sel->fields = fields;
    *out = sel;
    if (!text)
        return 0;
    size_t tlen = strlen(text);
    while (tlen > 0 && isspace((unsigned char)text[tlen - 1]))
        tlen--;
    if (tlen > 0 && text[tlen - 1] == ',') {
        snprintf(err, cap, "found '', expected: identifier after ','");
        goto bad;
    }
    const char *p = text;
    while (*p) {
        const char *start = p;
        int depth = 0;
        while (*p && !(*p == ',' && depth == 0)) {
            if (*p == '(')
                depth++;
            else if (*p == ')')
                depth--;
            p++;
        }
        char *term = trimdup(start, (size_t)(p - start));
        if (*p == ',')
            p++;
        if (!term)
            goto nomem;
        if (!*term) {
            free(term);
            if (!*p && start != text) {
                snprintf(err, cap, "found '', expected: identifier after ','");
                goto bad;
            }
            continue;
        }
        requirement r = {0};
        char *q;
        if (!fields && (q = strstr(term, " notin ")) != NULL) {
            r.op = OP_NOTIN;
            r.key = trimdup(term, (size_t)(q - term));
            q += 7;
        } else if (!fields && (q = strstr(term, " in ")) != NULL) {
            r.op = OP_IN;
            r.key = trimdup(term, (size_t)(q - term));
            q += 4;
        } else if ((q = strstr(term, "!=")) != NULL) {
            r.op = OP_NE;
            r.key = trimdup(term, (size_t)(q - term));
            add_value(&r, trimdup(q + 2, strlen(q + 2)));
            q = NULL;
        } else if ((q = strstr(term, "==")) != NULL) {
            r.op = OP_EQ;
            r.key = trimdup(term, (size_t)(q - term));
            add_value(&r, trimdup(q + 2, strlen(q + 2)));
            q = NULL;
        } else if ((q = strchr(term, '=')) != NULL) {
            r.op = OP_EQ;
            r.key = trimdup(term, (size_t)(q - term));
            add_value(&r, trimdup(q + 1, strlen(q + 1)));
            q = NULL;
        } else if (!fields && term[0] == '!') {
            r.op = OP_NOT_EXISTS;
            r.key = trimdup(term + 1, strlen(term + 1));
        } else if (!fields) {
            r.op = OP_EXISTS;
            r.key = strdup(term);
        } else {
            snprintf(err, cap, "invalid selector: '%s'; can't understand '%s'", text, term);
            free(term);
            goto bad;
        }
        if (q) { /* ( a, b ) */
            while (isspace((unsigned char)*q))
                q++;
            size_t len = strlen(q);
            if (*q != '(' || len < 2 || q[len - 1] != ')') {
                snprintf(err, cap, "unable to parse requirement: found '%s', expected: '('", q);
                free(r.key);
                free(term);
                goto bad;
            }
            char *inner = trimdup(q + 1, len - 2);
            char *save = NULL;
            for (char *v = strtok_r(inner, ",", &save); v; v = strtok_r(NULL, ",", &save))
                add_value(&r, trimdup(v, strlen(v)));
            free(inner);
        }
        free(term);
        if (!r.key || (!fields && !valid_label_key(r.key)) || (fields && !*r.key)) {
            snprintf(err, cap, "unable to parse requirement: invalid label key \"%s\"",
                     r.key ? r.key : "");
            free(r.key);
            for (size_t j = 0; j < r.nvalues; j++)
                free(r.values[j]);
            free(r.values);
            goto bad;
        }
        requirement *grown = realloc(sel->reqs, sizeof *grown * (sel->nreqs + 1));
        if (!grown)
            goto nomem;
        sel->reqs = grown;
        sel->reqs[sel->nreqs++] = r;
    }
    return 0;
nomem:
    dc_selector_free(sel);
    *out = NULL;
    return -ENOMEM;
bad:
    dc_selector_free(sel);
    *out = NULL;
    return LB_EPARSE;
}

int
dc_selector_parse_labels(const char *text, dc_selector **out, char *err, size_t cap)
{
    return parse(text, false, out, err, cap);
}

int
dc_selector_parse_fields(const char *text, dc_selector **out, char *err, size_t cap)
{
    return parse(text, true, out, err, cap);
}

/* The field at a dotted path as text; false if absent. */
static bool
field_text(const json_t *obj, const char *path, char *out, size_t cap)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = obj;
    char *save = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg && cur; seg = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, seg);
    if (!cur || json_is_null(cur))
        return false;
    if (json_is_string(cur))
        snprintf(out, cap, "%s", json_string_value(cur));
    else if (json_is_integer(cur))
        snprintf(out, cap, "%lld", (long long)json_integer_value(cur));
    else if (json_is_boolean(cur))
        snprintf(out, cap, "%s", json_is_true(cur) ? "true" : "false");
    else
        return false;
    return true;
}

bool
dc_selector_matches(const dc_selector *sel, const json_t *obj)
{
    if (!sel)
        return true;
    const json_t *labels = json_object_get(json_object_get(obj, "metadata"), "labels");
    for (size_t i = 0; i < sel->nreqs; i++) {
        const requirement *r = &sel->reqs[i];
        char value[1024];
        bool has;
        if (sel->fields) {
            has = field_text(obj, r->key, value, sizeof value);
            if (!has) {
                value[0] = '\0';
                has = true;
            }
        } else {
            const json_t *v = json_object_get(labels, r->key);
            has = json_is_string(v);
            if (has)
                snprintf(value, sizeof value, "%s", json_string_value(v));
        }
        bool in = false;
        for (size_t j = 0; has && j < r->nvalues; j++)
            if (strcmp(r->values[j], value) == 0)
                in = true;
        switch (r->op) {
        case OP_EXISTS:
            if (!has)
                return false;
            break;
        case OP_NOT_EXISTS:
            if (has)
                return false;
            break;
        case OP_EQ:
        case OP_IN:
            if (!in)
                return false;
            break;
        case OP_NE:
        case OP_NOTIN:
            if (in)
                return false;
            break;
        }
    }
    return true;
}

bool
dc_label_selector_object_matches(const json_t *selector, const json_t *labels)
{
    if (!json_is_object(selector))
        return false;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(selector, "matchLabels"), key, v)
    {
        json_t *have = json_object_get(labels, key);
        if (!json_is_string(have) || !json_is_string(v) ||
            strcmp(json_string_value(have), json_string_value(v)) != 0)
            return false;
    }
    size_t i;
    json_t *expr;
    json_array_foreach(json_object_get(selector, "matchExpressions"), i, expr)
    {
        const char *k = json_string_value(json_object_get(expr, "key"));
        const char *o = json_string_value(json_object_get(expr, "operator"));
        if (!k || !o)
            return false;
        json_t *have = json_object_get(labels, k);
        bool in = false;
        size_t j;
        json_t *val;
        json_array_foreach(json_object_get(expr, "values"), j, val)
        {
            if (json_is_string(have) && json_is_string(val) &&
                strcmp(json_string_value(have), json_string_value(val)) == 0)
                in = true;
        }
        if ((strcmp(o, "In") == 0 && !in) || (strcmp(o, "NotIn") == 0 && in) ||
            (strcmp(o, "Exists") == 0 && !have) || (strcmp(o, "DoesNotExist") == 0 && have))
            return false;
    }
    return true;
}
