/*
 * config.c: loading a declared settings table from defaults, a YAML file
 * and the command line.
 *
 * Order of work: check the table (a bad table is a programming error, but
 * it is reported, not crashed on); read the command line into a list of
 * assignments, so that -c, --help and unknown options are known before
 * anything else; apply defaults; walk the YAML document (libyaml's document
 * API, which keeps line numbers on every node); apply the command-line
 * assignments; check required settings.
 *
 * Invariants: every value is parsed by the same function whatever its
 * source, so "64MiB" means the same in a default, a file and an option.
 * A setting is assigned at most once from the file: a second assignment,
 * whether by a repeated key or by a nested key and a dotted key naming the
 * same setting, is refused with both lines. Messages always name the
 * setting and its source: the file and line, or the option.
 */
#include "config.h"
#include "quantity.h"
#include "errors.h"
#include "fileio.h"
#include "json.h"
#include "lsn.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* No settings table nests anywhere near this deep. */
#define MAX_YAML_DEPTH 32

/* ---- value parsing ---- */

int
lb_config_parse_size(const char *text, uint64_t *bytes)
{
    static const struct {
        const char *unit;
        uint64_t factor;
    } units[] = {
        {"", 1},
        {"B", 1},
        {"kB", 1000ull},
        {"MB", 1000ull * 1000},
        {"GB", 1000ull * 1000 * 1000},
        {"TB", 1000ull * 1000 * 1000 * 1000},
        {"KiB", 1ull << 10},
        {"MiB", 1ull << 20},
        {"GiB", 1ull << 30},
        {"TiB", 1ull << 40},
    };
    if (!text || !isdigit((unsigned char)text[0]))
        return LB_EPARSE;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(text, &end, 10);
    if (errno != 0)
        return LB_EPARSE;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) != 0)
            continue;
        if (n > UINT64_MAX / units[i].factor)
            return LB_EPARSE;
        *bytes = n * units[i].factor;
        return 0;
    }
    return LB_EPARSE;
}

static void
format_size(uint64_t v, char *out, size_t cap)
{
    static const char *const iec[] = {"TiB", "GiB", "MiB", "KiB"};
    for (int i = 0; i < 4; i++) {
        uint64_t f = 1ull << (10 * (4 - i));
        if (v >= f && v % f == 0) {
            snprintf(out, cap, "%" PRIu64 "%s", v / f, iec[i]);
            return;
        }
    }
    snprintf(out, cap, "%" PRIu64 "B", v);
}

static void
format_duration(int64_t ms, char *out, size_t cap)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(out, cap, "%" PRId64 "h", ms / 3600000);
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(out, cap, "%" PRId64 "m", ms / 60000);
    else if (ms != 0 && ms % 1000 == 0)
        snprintf(out, cap, "%" PRId64 "s", ms / 1000);
    else
        snprintf(out, cap, "%" PRId64 "ms", ms);
}

int
lb_bool_parse(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; text && i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return LB_EPARSE;
}

static bool
has_range(const lb_config_setting *s)
{
    return s->min < s->max;
}

static void
describe_range(const lb_config_setting *s, char *out, size_t cap)
{
    char lo[32], hi[32];
    if (s->type == LB_CONFIG_SIZE) {
        format_size((uint64_t)s->min, lo, sizeof(lo));
        format_size((uint64_t)s->max, hi, sizeof(hi));
    } else if (s->type == LB_CONFIG_DURATION) {
        format_duration(s->min, lo, sizeof(lo));
        format_duration(s->max, hi, sizeof(hi));
    } else {
        snprintf(lo, sizeof(lo), "%" PRId64, s->min);
        snprintf(hi, sizeof(hi), "%" PRId64, s->max);
    }
    snprintf(out, cap, "between %s and %s", lo, hi);
}

static void
describe_choices(const lb_config_setting *s, char *out, size_t cap, const char *sep, bool quote)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; s->choices && s->choices[i] && len < cap; i++) {
        int n = snprintf(out + len, cap - len, "%s%s%s%s", i ? sep : "", quote ? "\"" : "",
                         s->choices[i], quote ? "\"" : "");
        if (n < 0)
            break;
        len += (size_t)n;
    }
}

static void *
field(const lb_config_setting *s, void *conf)
{
    return (char *)conf + s->offset;
}

static void
free_list(lb_config_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

/* Store items (taking ownership of the array and strings). */
static void
store_list(const lb_config_setting *s, void *conf, char **items, size_t count)
{
    lb_config_list *l = field(s, conf);
    free_list(l);
    l->items = items;
    l->count = count;
}

/* Split "a, b,c" into an owned array. "" is the empty list. 0, LB_EPARSE
 * (empty item), -ENOMEM. */
static int
split_list(const char *text, char ***items_out, size_t *count_out)
{
    *items_out = NULL;
    *count_out = 0;
    size_t n = 0, cap = 0;
    char **items = NULL;
    const char *p = text;
    while (*p == ' ')
        p++;
    if (*p == '\0')
        return 0;
    int rc = 0;
    for (;;) {
        const char *end = strchr(p, ',');
        const char *stop = end ? end : p + strlen(p);
        const char *b = p, *e = stop;
        while (b < e && *b == ' ')
            b++;
        while (e > b && e[-1] == ' ')
            e--;
        if (b == e) {
            rc = LB_EPARSE;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            char **grown = realloc(items, cap * sizeof(char *));
            if (!grown) {
                rc = -ENOMEM;
                break;
            }
            items = grown;
        }
        if (!(items[n] = strndup(b, (size_t)(e - b)))) {
            rc = -ENOMEM;
            break;
        }
        n++;
        if (!end)
            break;
        p = end + 1;
    }
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            free(items[i]);
        free(items);
        return rc;
    }
    *items_out = items;
    *count_out = n;
    return 0;
}

/* Parse text for setting s and store it in conf. On a bad value returns
 * LB_EBADCONFIG with why filled ("must be ..."); -ENOMEM. */
static int
apply_text(const lb_config_setting *s, void *conf, const char *text, char *why, size_t cap)
{
    void *dst = field(s, conf);
    char range[128];
    switch (s->type) {
    case LB_CONFIG_STRING: {
        char *copy = strdup(text);
        if (!copy)
            return -ENOMEM;
        free(*(char **)dst);
        *(char **)dst = copy;
        return 0;
    }
    case LB_CONFIG_INT: {
        errno = 0;
        char *end;
        long long v = strtoll(text, &end, 10);
        if (!*text || *end || errno != 0 || isspace((unsigned char)*text)) {
            snprintf(why, cap, "must be an integer");
            return LB_EBADCONFIG;
        }
        if (has_range(s) && (v < s->min || v > s->max)) {
            describe_range(s, range, sizeof(range));
            snprintf(why, cap, "must be an integer %s", range);
            return LB_EBADCONFIG;
        }
        *(int64_t *)dst = v;
        return 0;
    }
    case LB_CONFIG_BOOL:
        if (lb_bool_parse(text, (bool *)dst) != 0) {
            snprintf(why, cap, "must be true or false");
            return LB_EBADCONFIG;
        }
        return 0;
    case LB_CONFIG_SIZE: {
        uint64_t v;
        if (lb_config_parse_size(text, &v) != 0) {
            snprintf(why, cap, "must be a size like \"64MiB\", \"512kB\" or \"4096\"");
            return LB_EBADCONFIG;
        }
        if (has_range(s) && (v < (uint64_t)s->min || v > (uint64_t)s->max)) {
            describe_range(s, range, sizeof(range));
            snprintf(why, cap, "must be a size %s", range);
            return LB_EBADCONFIG;
        }
        *(uint64_t *)dst = v;
        return 0;
    }
    case LB_CONFIG_DURATION: {
        int64_t v;
        if (lb_duration_parse(text, &v) != 0) {
            snprintf(why, cap, "must be a duration like \"500ms\", \"10s\" or \"5m\"");
            return LB_EBADCONFIG;
        }
        if (has_range(s) && (v < s->min || v > s->max)) {
            describe_range(s, range, sizeof(range));
            snprintf(why, cap, "must be a duration %s", range);
            return LB_EBADCONFIG;
        }
        *(int64_t *)dst = v;
        return 0;
    }
    case LB_CONFIG_ENUM:
        for (int i = 0; s->choices && s->choices[i]; i++) {
            if (strcmp(text, s->choices[i]) == 0) {
                *(int *)dst = i;
                return 0;
            }
        }
        {
            int len = snprintf(why, cap, "must be one of ");
            if (len > 0 && (size_t)len < cap)
                describe_choices(s, why + len, cap - (size_t)len, ", ", true);
        }
        return LB_EBADCONFIG;
    case LB_CONFIG_LSN:
        if (lb_lsn_parse(text, (lb_lsn *)dst) != 0) {
            snprintf(why, cap, "must be an LSN like \"0/16B3F10\"");
            return LB_EBADCONFIG;
        }
        return 0;
    case LB_CONFIG_LIST: {
        char **items;
        size_t n;
        int rc = split_list(text, &items, &n);
        if (rc == LB_EPARSE) {
            snprintf(why, cap, "must be a comma-separated list without empty items");
            return LB_EBADCONFIG;
        }
        if (rc != 0)
            return rc;
        store_list(s, conf, items, n);
        return 0;
    }
    case LB_CONFIG_ADDR:
        if (lb_hostport_parse(text, (lb_config_addr *)dst) != 0) {
            snprintf(why, cap, "must be an address like \"127.0.0.1:5432\" or \"[::1]:5432\"");
            return LB_EBADCONFIG;
        }
        return 0;
    }
    snprintf(why, cap, "has an unknown type");
    return LB_EBADCONFIG;
}

/* Reset a setting to its zero value before its default is applied. */
static void
clear_value(const lb_config_setting *s, void *conf)
{
    void *dst = field(s, conf);
    switch (s->type) {
    case LB_CONFIG_STRING:
        free(*(char **)dst);
        *(char **)dst = NULL;
        break;
    case LB_CONFIG_INT:
    case LB_CONFIG_DURATION:
        *(int64_t *)dst = 0;
        break;
    case LB_CONFIG_BOOL:
        *(bool *)dst = false;
        break;
    case LB_CONFIG_SIZE:
        *(uint64_t *)dst = 0;
        break;
    case LB_CONFIG_ENUM:
        *(int *)dst = 0;
        break;
    case LB_CONFIG_LSN:
        *(lb_lsn *)dst = 0;
        break;
    case LB_CONFIG_LIST:
        free_list(dst);
        break;
    case LB_CONFIG_ADDR:
        memset(dst, 0, sizeof(lb_config_addr));
        break;
    }
}

/* ---- the load ---- */

typedef struct loader {
    const lb_config_setting *table;
    size_t nsettings;
    void *conf;
    lb_config_result *result;
    const char *file;
    yaml_document_t *doc;
    int *file_line; /* per setting: line of its assignment in the file, 0 if none */
    bool *set;      /* per setting: assigned from the file or command line */
} loader;

static int fail(loader *ld, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(loader *ld, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->result->error, sizeof(ld->result->error), fmt, ap);
    va_end(ap);
    return code;
}

static bool
valid_setting_name(const char *name)
{
    if (!name || !*name || *name == '.')
        return false;
    for (const char *p = name; *p; p++) {
        if (*p == '.') {
            if (p[1] == '.' || p[1] == '\0')
                return false;
        } else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) {
            return false;
        }
    }
    return true;
}

static int
find_setting(const loader *ld, const char *name, size_t len)
{
    for (size_t i = 0; i < ld->nsettings; i++)
        if (strlen(ld->table[i].name) == len && strncmp(ld->table[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

/* True if some setting's name starts with "<group>." */
static bool
is_group(const loader *ld, const char *group)
{
    size_t len = strlen(group);
    for (size_t i = 0; i < ld->nsettings; i++)
        if (strncmp(ld->table[i].name, group, len) == 0 && ld->table[i].name[len] == '.')
            return true;
    return false;
}

static int
check_table(loader *ld)
{
    for (size_t i = 0; i < ld->nsettings; i++) {
        const lb_config_setting *s = &ld->table[i];
        if (!valid_setting_name(s->name))
            return fail(ld, LB_EBADCONFIG, "bad settings table: invalid name \"%s\"", s->name);
        if ((int)s->type < LB_CONFIG_STRING || s->type > LB_CONFIG_ADDR)
            return fail(ld, LB_EBADCONFIG, "bad settings table: \"%s\" has an unknown type",
                        s->name);
        if (s->type == LB_CONFIG_ENUM && (!s->choices || !s->choices[0]))
            return fail(ld, LB_EBADCONFIG, "bad settings table: enum \"%s\" has no choices",
                        s->name);
        if (find_setting(ld, s->name, strlen(s->name)) != (int)i)
            return fail(ld, LB_EBADCONFIG, "bad settings table: \"%s\" declared twice", s->name);
        if (is_group(ld, s->name))
            return fail(ld, LB_EBADCONFIG,
                        "bad settings table: \"%s\" is both a setting and a group", s->name);
    }
    return 0;
}

static int
apply_defaults(loader *ld)
{
    char why[256];
    for (size_t i = 0; i < ld->nsettings; i++) {
        const lb_config_setting *s = &ld->table[i];
        clear_value(s, ld->conf);
        if (!s->def)
            continue;
        int rc = apply_text(s, ld->conf, s->def, why, sizeof(why));
        if (rc == LB_EBADCONFIG)
            return fail(ld, rc, "bad settings table: default \"%s\" of \"%s\" %s", s->def, s->name,
                        why);
        if (rc != 0)
            return fail(ld, rc, "could not apply defaults: %s", lb_strerror(rc));
    }
    return 0;
}

static int
line_of(const yaml_node_t *node)
{
    return (int)node->start_mark.line + 1;
}

static bool
is_null_scalar(const yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)node->data.scalar.value;
    return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

/* The scalar's text, or NULL if it holds a NUL byte. */
static const char *
scalar_text(const yaml_node_t *node)
{
    const char *v = (const char *)node->data.scalar.value;
    return strlen(v) == node->data.scalar.length ? v : NULL;
}

static int
apply_yaml_value(loader *ld, int idx, const char *name, const yaml_node_t *value)
{
    const lb_config_setting *s = &ld->table[idx];
    int line = line_of(value);
    if (ld->file_line[idx])
        return fail(ld, LB_EBADCONFIG,
                    "config \"%s\" line %d: duplicate setting \"%s\" (first at line %d)", ld->file,
                    line, name, ld->file_line[idx]);
    ld->file_line[idx] = line;
    ld->set[idx] = true;

    if (s->type == LB_CONFIG_LIST && value->type == YAML_SEQUENCE_NODE) {
        size_t n = (size_t)(value->data.sequence.items.top - value->data.sequence.items.start);
        char **items = n ? calloc(n, sizeof(char *)) : NULL;
        if (n && !items)
            return fail(ld, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            yaml_node_t *item =
                yaml_document_get_node(ld->doc, value->data.sequence.items.start[i]);
            const char *text = item && item->type == YAML_SCALAR_NODE && !is_null_scalar(item)
                                   ? scalar_text(item)
                                   : NULL;
            if (!text || !(items[i] = strdup(text))) {
                for (size_t j = 0; j < i; j++)
                    free(items[j]);
                free(items);
                if (!text)
                    return fail(ld, LB_EBADCONFIG,
                                "config \"%s\" line %d: setting \"%s\" must be a list of plain "
                                "values",
                                ld->file, item ? line_of(item) : line, name);
                return fail(ld, -ENOMEM, "out of memory");
            }
        }
        store_list(s, ld->conf, items, n);
        return 0;
    }
    if (value->type == YAML_MAPPING_NODE)
        return fail(ld, LB_EBADCONFIG,
                    "config \"%s\" line %d: setting \"%s\" must be a single value, not a mapping",
                    ld->file, line, name);
    if (value->type == YAML_SEQUENCE_NODE)
        return fail(ld, LB_EBADCONFIG,
                    "config \"%s\" line %d: setting \"%s\" must be a single value, not a list",
                    ld->file, line, name);
    if (is_null_scalar(value)) {
        if (s->type == LB_CONFIG_LIST) {
            store_list(s, ld->conf, NULL, 0);
            return 0;
        }
        return fail(ld, LB_EBADCONFIG, "config \"%s\" line %d: setting \"%s\" has no value",
                    ld->file, line, name);
    }
    const char *text = scalar_text(value);
    if (!text)
        return fail(ld, LB_EBADCONFIG, "config \"%s\" line %d: setting \"%s\" contains a NUL byte",
                    ld->file, line, name);
    char why[256];
    int rc = apply_text(s, ld->conf, text, why, sizeof(why));
    if (rc == LB_EBADCONFIG)
        return fail(ld, rc, "config \"%s\" line %d: invalid value \"%s\" for setting \"%s\": %s",
                    ld->file, line, text, name, why);
    if (rc != 0)
        return fail(ld, rc, "out of memory");
    return 0;
}

static int
walk_mapping(loader *ld, const yaml_node_t *map, const char *prefix, int depth)
{
    assert(map->type == YAML_MAPPING_NODE);
    if (depth > MAX_YAML_DEPTH) /* also stops alias cycles */
        return fail(ld, LB_EBADCONFIG, "config \"%s\" line %d: nested too deeply", ld->file,
                    line_of(map));
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *key = yaml_document_get_node(ld->doc, pair->key);
        yaml_node_t *value = yaml_document_get_node(ld->doc, pair->value);
        if (!key || !value)
            return fail(ld, LB_EBADCONFIG, "config \"%s\": malformed YAML document", ld->file);
        const char *kt = key->type == YAML_SCALAR_NODE ? scalar_text(key) : NULL;
        if (!kt || !*kt)
            return fail(ld, LB_EBADCONFIG, "config \"%s\" line %d: keys must be setting names",
                        ld->file, line_of(key));
        /* the same key twice in one mapping */
        for (yaml_node_pair_t *prev = map->data.mapping.pairs.start; prev < pair; prev++) {
            yaml_node_t *pk = yaml_document_get_node(ld->doc, prev->key);
            if (pk && pk->type == YAML_SCALAR_NODE &&
                strcmp((const char *)pk->data.scalar.value, kt) == 0)
                return fail(ld, LB_EBADCONFIG,
                            "config \"%s\" line %d: duplicate key \"%s\" (first at line %d)",
                            ld->file, line_of(key), kt, line_of(pk));
        }
        char name[512];
        int n = prefix ? snprintf(name, sizeof(name), "%s.%s", prefix, kt)
                       : snprintf(name, sizeof(name), "%s", kt);
        if (n < 0 || (size_t)n >= sizeof(name))
            return fail(ld, LB_EBADCONFIG, "config \"%s\" line %d: key too long", ld->file,
                        line_of(key));
        int idx = find_setting(ld, name, strlen(name));
        int rc;
        if (idx >= 0) {
            rc = apply_yaml_value(ld, idx, name, value);
        } else if (is_group(ld, name)) {
            if (value->type != YAML_MAPPING_NODE)
                return fail(ld, LB_EBADCONFIG,
                            "config \"%s\" line %d: \"%s\" is a group of settings and must be a "
                            "mapping",
                            ld->file, line_of(value), name);
            rc = walk_mapping(ld, value, name, depth + 1);
        } else {
            rc = fail(ld, LB_EBADCONFIG, "config \"%s\" line %d: unknown setting \"%s\"", ld->file,
                      line_of(key), name);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* "line N: malformed YAML: why" into err. */
static int
malformed(const yaml_parser_t *parser, char *err, size_t cap)
{
    snprintf(err, cap, "line %zu: malformed YAML: %s%s%s", parser->problem_mark.line + 1,
             parser->problem ? parser->problem : "error", parser->context ? " " : "",
             parser->context ? parser->context : "");
    return LB_EPARSE;
}

/* A cheap pass over the events before the document is built: libyaml's
 * scanner takes time quadratic in the nesting depth, so deep nesting is
 * refused first; and aliases are refused, since a node reached through
 * many aliases would be walked (or converted) once per path to it. */
static int
check_events(const unsigned char *text, size_t len, char *err, size_t cap)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, text, len);
    int depth = 0, rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = malformed(&parser, err, cap);
            break;
        }
        yaml_event_type_t type = ev.type;
        int line = (int)ev.start_mark.line + 1;
        yaml_event_delete(&ev);
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
            if (++depth > MAX_YAML_DEPTH) {
                snprintf(err, cap, "line %d: nested too deeply", line);
                rc = LB_EPARSE;
                break;
            }
        } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
            depth--;
        } else if (type == YAML_ALIAS_EVENT) {
            snprintf(err, cap, "line %d: aliases are not supported", line);
            rc = LB_EPARSE;
            break;
        } else if (type == YAML_STREAM_END_EVENT) {
            break;
        }
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* The one YAML reader: exactly one document (or none), nested at most
 * MAX_YAML_DEPTH deep, no aliases. On 0, *doc is loaded (its root is NULL
 * for an empty stream) and the caller deletes it; otherwise err says
 * "line N: why". */
static int
yaml_load_one(const char *text, size_t len, yaml_document_t *doc, char *err, size_t cap)
{
    const unsigned char *bytes = (const unsigned char *)(text ? text : "");
    int rc = check_events(bytes, len, err, cap);
    if (rc)
        return rc;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, bytes, len);
    if (!yaml_parser_load(&parser, doc)) {
        rc = malformed(&parser, err, cap);
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_document_t next;
    if (!yaml_parser_load(&parser, &next)) {
        rc = malformed(&parser, err, cap);
    } else {
        yaml_node_t *extra = yaml_document_get_root_node(&next);
        if (extra) {
            snprintf(err, cap, "line %d: more than one YAML document", line_of(extra));
            rc = LB_EPARSE;
        }
        yaml_document_delete(&next);
    }
    yaml_parser_delete(&parser);
    if (rc)
        yaml_document_delete(doc);
    return rc;
}

static int
load_yaml(loader *ld, const char *path)
{
    ld->file = path;
    lb_buf text = LB_BUF_INIT;
    int rc = lb_read_file(path, &text);
    if (rc != 0) {
        lb_buf_free(&text);
        return fail(ld, rc, "could not read config \"%s\": %s", path, lb_strerror(rc));
    }
    yaml_document_t doc;
    char why[512];
    rc = yaml_load_one(text.data, text.len, &doc, why, sizeof(why));
    lb_buf_free(&text);
    if (rc == -ENOMEM)
        return fail(ld, rc, "out of memory");
    if (rc)
        return fail(ld, LB_EBADCONFIG, "config \"%s\" %s", path, why);
    ld->doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && is_null_scalar(root))
        root = NULL; /* a file of comments only */
    if (root && root->type != YAML_MAPPING_NODE)
        rc = fail(ld, LB_EBADCONFIG, "config \"%s\" line %d: expected a mapping of settings", path,
                  line_of(root));
    else if (root)
        rc = walk_mapping(ld, root, NULL, 0);
    yaml_document_delete(&doc);
    ld->doc = NULL;
    return rc;
}

/* ---- YAML as JSON -------------------------------------------------------- */

/* A plain scalar's type: null, an integer (no leading zeros, within
 * int64), a real, a boolean (lb_bool_parse()'s words other than 1 and 0),
 * else a string. Quoted scalars are strings. */
static json_t *
scalar_json(const yaml_node_t *node)
{
    const char *v = (const char *)node->data.scalar.value;
    size_t n = node->data.scalar.length;
    if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_stringn(v, n);
    if (is_null_scalar(node))
        return json_null();
    const char *digits = v + (v[0] == '-' || v[0] == '+');
    bool numeric = isdigit((unsigned char)digits[0]) ||
                   (digits[0] == '.' && isdigit((unsigned char)digits[1]));
    if (numeric && !(digits[0] == '0' && isdigit((unsigned char)digits[1]))) {
        char *end;
        errno = 0;
        long long i = strtoll(v, &end, 10);
        if (*end == '\0')
            return errno == ERANGE ? json_stringn(v, n) : json_integer(i);
        errno = 0;
        double d = strtod(v, &end);
        if (*end == '\0' && errno == 0 && d == d && d - d == 0)
            return json_real(d);
    }
    bool b;
    if (!numeric && lb_bool_parse(v, &b) == 0)
        return json_boolean(b);
    return json_stringn(v, n);
}

static int
node_json(yaml_document_t *doc, const yaml_node_t *node, json_t **out, char *err, size_t cap)
{
    *out = NULL;
    if (node->type == YAML_SCALAR_NODE) {
        if (strlen((const char *)node->data.scalar.value) != node->data.scalar.length) {
            snprintf(err, cap, "line %d: a NUL character in a value", line_of(node));
            return LB_EPARSE;
        }
        *out = scalar_json(node);
        return *out ? 0 : -ENOMEM;
    }
    if (node->type == YAML_SEQUENCE_NODE) {
        json_t *arr = json_array();
        for (yaml_node_item_t *it = node->data.sequence.items.start;
             arr && it < node->data.sequence.items.top; it++) {
            json_t *v;
            int rc = node_json(doc, yaml_document_get_node(doc, *it), &v, err, cap);
            if (rc) {
                json_decref(arr);
                return rc;
            }
            json_array_append_new(arr, v);
        }
        *out = arr;
        return arr ? 0 : -ENOMEM;
    }
    json_t *obj = json_object();
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
         obj && p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *key = yaml_document_get_node(doc, p->key);
        const char *k = key->type == YAML_SCALAR_NODE ? scalar_text(key) : NULL;
        int rc = 0;
        if (!k) {
            snprintf(err, cap, "line %d: only plain keys are supported", line_of(key));
            rc = LB_EPARSE;
        } else if (json_object_get(obj, k)) {
            snprintf(err, cap, "line %d: key \"%.64s\" is given twice", line_of(key), k);
            rc = LB_EPARSE;
        }
        json_t *v = NULL;
        if (rc == 0)
            rc = node_json(doc, yaml_document_get_node(doc, p->value), &v, err, cap);
        if (rc) {
            json_decref(obj);
            return rc;
        }
        json_object_set_new(obj, k, v);
    }
    *out = obj;
    return obj ? 0 : -ENOMEM;
}

int
lb_yaml_to_json(const char *text, size_t len, json_t **out, char *err, size_t cap)
{
    *out = NULL;
    err[0] = '\0';
    yaml_document_t doc;
    int rc = yaml_load_one(text, len, &doc, err, cap);
    if (rc == -ENOMEM)
        snprintf(err, cap, "out of memory");
    if (rc)
        return rc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root)
        *out = json_null();
    else
        rc = node_json(&doc, root, out, err, cap);
    yaml_document_delete(&doc);
    if (rc == 0 && !*out)
        rc = -ENOMEM;
    if (rc == -ENOMEM)
        snprintf(err, cap, "out of memory");
    return rc;
}

typedef struct assignment {
    int setting;
    const char *value;
    const char *option; /* argv entry, for messages */
} assignment;

/* The option text up to '=', for messages: "--port=x" -> "--port". */
static void
option_name(const char *arg, char *out, size_t cap)
{
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    snprintf(out, cap, "%.*s", (int)len, arg);
}

static int
parse_argv(loader *ld, int argc, char *const argv[], assignment *assigns, int *nassigns,
           const char **config_path)
{
    lb_config_result *res = ld->result;
    char **positional = calloc((size_t)argc + 1, sizeof(char *));
    if (!positional)
        return fail(ld, -ENOMEM, "out of memory");
    res->positional = positional;
    int npos = 0;
    bool options_done = false;
    char opt[128];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!a)
            break;
        if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
            positional[npos++] = (char *)a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc || !argv[i + 1])
                return fail(ld, LB_EBADCONFIG, "option \"%s\" needs a file name", a);
            *config_path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            *config_path = a + 9;
        } else if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            int idx = find_setting(ld, name, eq ? (size_t)(eq - name) : strlen(name));
            option_name(a, opt, sizeof(opt));
            if (idx < 0)
                return fail(ld, LB_EBADCONFIG, "unknown option \"%s\"", opt);
            const char *value;
            if (eq)
                value = eq + 1;
            else if (ld->table[idx].type == LB_CONFIG_BOOL)
                value = "true";
            else if (i + 1 < argc && argv[i + 1])
                value = argv[++i];
            else
                return fail(ld, LB_EBADCONFIG, "option \"%s\" needs a value", opt);
            assigns[(*nassigns)++] = (assignment){idx, value, a};
        } else {
            option_name(a, opt, sizeof(opt));
            return fail(ld, LB_EBADCONFIG, "unknown option \"%s\"", opt);
        }
    }
    res->npositional = npos;
    return 0;
}

int
lb_config_load(const lb_config_setting *table, void *conf, const char *yaml_path, int argc,
               char *const argv[], lb_config_result *result)
{
    assert(table && conf && result);
    memset(result, 0, sizeof(*result));
    loader ld = {.table = table, .conf = conf, .result = result};
    while (table[ld.nsettings].name)
        ld.nsettings++;
    int rc = check_table(&ld);
    if (rc != 0)
        return rc;

    size_t n = ld.nsettings ? ld.nsettings : 1;
    ld.file_line = calloc(n, sizeof(int));
    ld.set = calloc(n, sizeof(bool));
    assignment *assigns = calloc(argc > 0 ? (size_t)argc : 1, sizeof(assignment));
    int nassigns = 0;
    if (!ld.file_line || !ld.set || !assigns) {
        rc = fail(&ld, -ENOMEM, "out of memory");
        goto out;
    }
    /* --help wins over everything else on the line, even broken options */
    for (int i = 1; i < argc && argv[i] && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            result->help = true;
    const char *path = yaml_path;
    if (!result->help && (rc = parse_argv(&ld, argc, argv, assigns, &nassigns, &path)) != 0)
        goto out;
    if (result->help)
        goto out;
    if ((rc = apply_defaults(&ld)) != 0)
        goto out;
    if (path) {
        result->file = path;
        if ((rc = load_yaml(&ld, path)) != 0)
            goto out;
    }
    char why[256];
    for (int i = 0; i < nassigns; i++) {
        const assignment *as = &assigns[i];
        rc = apply_text(&table[as->setting], conf, as->value, why, sizeof(why));
        if (rc == LB_EBADCONFIG) {
            char opt[128];
            option_name(as->option, opt, sizeof(opt));
            rc = fail(&ld, rc, "invalid value \"%s\" for option \"%s\": %s", as->value, opt, why);
            goto out;
        }
        if (rc != 0) {
            rc = fail(&ld, rc, "out of memory");
            goto out;
        }
        ld.set[as->setting] = true;
    }
    for (size_t i = 0; i < ld.nsettings; i++) {
        if ((table[i].flags & LB_CONFIG_REQUIRED) && !ld.set[i]) {
            rc = fail(&ld, LB_EBADCONFIG,
                      "setting \"%s\" is required: set it in the config file or with --%s",
                      table[i].name, table[i].name);
            goto out;
        }
    }
out:
    free(ld.file_line);
    free(ld.set);
    free(assigns);
    return rc;
}

void
lb_config_free(const lb_config_setting *table, void *conf)
{
    if (!table || !conf)
        return;
    for (const lb_config_setting *s = table; s->name; s++)
        if (s->type == LB_CONFIG_STRING || s->type == LB_CONFIG_LIST)
            clear_value(s, conf);
}

void
lb_config_result_free(lb_config_result *result)
{
    if (!result)
        return;
    free((void *)result->positional);
    result->positional = NULL;
    result->npositional = 0;
}

/* ---- --help ---- */

static const char *
metavar(const lb_config_setting *s, char *buf, size_t cap)
{
    switch (s->type) {
    case LB_CONFIG_STRING:
        return "TEXT";
    case LB_CONFIG_INT:
        return "N";
    case LB_CONFIG_BOOL:
        return "[=true|false]";
    case LB_CONFIG_SIZE:
        return "SIZE";
    case LB_CONFIG_DURATION:
        return "DURATION";
    case LB_CONFIG_ENUM:
        describe_choices(s, buf, cap, "|", false);
        return buf;
    case LB_CONFIG_LSN:
        return "LSN";
    case LB_CONFIG_LIST:
        return "A,B,...";
    case LB_CONFIG_ADDR:
        return "HOST:PORT";
    }
    return "VALUE";
}

int
lb_config_help(const lb_config_setting *table, const char *program, const char *usage, lb_buf *out)
{
    int rc = lb_buf_printf(out,
                           "usage: %s %s\n\noptions:\n"
                           "  -c, --config FILE\n        read settings from this YAML file\n"
                           "  -h, --help\n        show this help and exit\n",
                           program ? program : "lakebase", usage ? usage : "[options]");
    for (const lb_config_setting *s = table; s->name && rc == 0; s++) {
        char mv[256], range[128];
        const char *m = metavar(s, mv, sizeof(mv));
        rc = lb_buf_printf(out, "  --%s%s%s\n        %s", s->name,
                           s->type == LB_CONFIG_BOOL ? "" : " ", m,
                           s->description ? s->description : "");
        if (rc == 0 && (s->flags & LB_CONFIG_REQUIRED))
            rc = lb_buf_printf(out, " (required)");
        else if (rc == 0 && s->def)
            rc = lb_buf_printf(out, " (default: %s)", *s->def ? s->def : "\"\"");
        if (rc == 0 && has_range(s) &&
            (s->type == LB_CONFIG_INT || s->type == LB_CONFIG_SIZE ||
             s->type == LB_CONFIG_DURATION)) {
            describe_range(s, range, sizeof(range));
            rc = lb_buf_printf(out, " (%s)", range);
        }
        if (rc == 0)
            rc = lb_buf_append_str(out, "\n");
    }
    return rc;
}
