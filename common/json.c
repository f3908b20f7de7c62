/*
 * json.c: parsing request bodies and reading typed fields with errors that
 * name the field, and sending JSON responses.
 *
 * The error is sticky so that a handler can read every field it needs in a
 * row and check once: a getter called after a failure returns the recorded
 * code at once and leaves its output alone. Messages are what the client
 * sees in {"error": ...}, so they name the field as the client wrote it and
 * say what was expected.
 *
 * Callers: the HTTP handlers of every daemon.
 */
#include "json.h"
#include "errors.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
lb_json_fail(lb_json_error *err, int code, const char *fmt, ...)
{
    assert(err && code != 0);
    if (err->failed)
        return err->code;
    err->failed = true;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return code;
}

int
lb_json_parse(const char *text, size_t len, json_t **out, lb_json_error *err)
{
    assert(out && err);
    if (err->failed)
        return err->code;
    if (!text || len == 0)
        return lb_json_fail(err, LB_EPARSE, "request body is empty; expected a JSON object");
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        return lb_json_fail(err, LB_EPARSE, "malformed JSON at line %d column %d: %s", jerr.line,
                            jerr.column, jerr.text);
    if (!json_is_object(v)) {
        json_decref(v);
        return lb_json_fail(err, LB_EPARSE, "request body must be a JSON object");
    }
    *out = v;
    return 0;
}

int
lb_json_parse_request(lb_http_request *req, json_t **out, lb_json_error *err)
{
    size_t len;
    const char *body = lb_http_body(req, &len);
    return lb_json_parse(body, len, out, err);
}

/* The field's value: 0 and *value set (NULL when absent or null), or the
 * sticky error. */
static int
lookup(const json_t *obj, const char *field, const json_t **value, lb_json_error *err)
{
    assert(field && err);
    if (err->failed)
        return err->code;
    if (!json_is_object(obj))
        return lb_json_fail(err, LB_EPARSE, "request body must be a JSON object");
    const json_t *v = json_object_get(obj, field);
    *value = json_is_null(v) ? NULL : v;
    return 0;
}

static int
missing(const char *field, lb_json_error *err)
{
    return lb_json_fail(err, LB_ENOTFOUND, "missing field \"%s\"", field);
}

static int
get_str(const json_t *v, const char *field, const char **out, lb_json_error *err)
{
    if (!json_is_string(v))
        return lb_json_fail(err, LB_EPARSE, "field \"%s\" must be a string", field);
    *out = json_string_value(v);
    return 0;
}

static int
get_int64(const json_t *v, const char *field, int64_t *out, lb_json_error *err)
{
    if (!json_is_integer(v))
        return lb_json_fail(err, LB_EPARSE, "field \"%s\" must be an integer", field);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static int
get_bool(const json_t *v, const char *field, bool *out, lb_json_error *err)
{
    if (!json_is_boolean(v))
        return lb_json_fail(err, LB_EPARSE, "field \"%s\" must be true or false", field);
    *out = json_is_true(v);
    return 0;
}

static int
get_lsn(const json_t *v, const char *field, lb_lsn *out, lb_json_error *err)
{
    lb_lsn lsn;
    if (!json_is_string(v) || lb_lsn_parse(json_string_value(v), &lsn) != 0)
        return lb_json_fail(err, LB_EPARSE, "field \"%s\" must be an LSN like \"0/16B3F10\"",
                            field);
    *out = lsn;
    return 0;
}

bool
lb_json_is_id(const char *s)
{
    if (!s)
        return false;
    size_t i = 0;
    for (; s[i]; i++)
        if (i == LB_ID_LEN || !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == LB_ID_LEN;
}

int
lb_json_req_str(const json_t *obj, const char *field, const char **out, lb_json_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, field, &v, err);
    if (rc != 0)
        return rc;
    return v ? get_str(v, field, out, err) : missing(field, err);
}

int
lb_json_req_int64(const json_t *obj, const char *field, int64_t *out, lb_json_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, field, &v, err);
    if (rc != 0)
        return rc;
    return v ? get_int64(v, field, out, err) : missing(field, err);
}

int
lb_json_req_bool(const json_t *obj, const char *field, bool *out, lb_json_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, field, &v, err);
    if (rc != 0)
        return rc;
    return v ? get_bool(v, field, out, err) : missing(field, err);
}

int
lb_json_req_lsn(const json_t *obj, const char *field, lb_lsn *out, lb_json_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, field, &v, err);
    if (rc != 0)
        return rc;
    return v ? get_lsn(v, field, out, err) : missing(field, err);
}

int
lb_json_req_id(const json_t *obj, const char *field, char out[LB_ID_STRLEN], lb_json_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, field, &v, err);
    if (rc != 0)
        return rc;
    if (!v)
        return missing(field, err);
    if (!json_is_string(v) || !lb_json_is_id(json_string_value(v)))
        return lb_json_fail(err, LB_EPARSE,
                            "field \"%s\" must be an id of 32 lowercase hex characters", field);
    memcpy(out, json_string_value(v), LB_ID_STRLEN);
    return 0;
}

int
lb_json_opt_str(const json_t *obj, const char *field, const char *def, const char **out,
                lb_json_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, field, &v, err);
    if (rc != 0)
        return rc;
    if (!v) {
        *out = def;
        return 0;
    }
    return get_str(v, field, out, err);
}

int
lb_json_opt_int64(const json_t *obj, const char *field, int64_t def, int64_t *out,
                  lb_json_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, field, &v, err);
    if (rc != 0)
        return rc;
    if (!v) {
        *out = def;
        return 0;
    }
    return get_int64(v, field, out, err);
}

int
lb_json_opt_bool(const json_t *obj, const char *field, bool def, bool *out, lb_json_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, field, &v, err);
    if (rc != 0)
        return rc;
    if (!v) {
        *out = def;
        return 0;
    }
    return get_bool(v, field, out, err);
}

int
lb_json_opt_lsn(const json_t *obj, const char *field, lb_lsn def, lb_lsn *out, lb_json_error *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, field, &v, err);
    if (rc != 0)
        return rc;
    if (!v) {
        *out = def;
        return 0;
    }
    return get_lsn(v, field, out, err);
}

int
lb_json_param_id(const lb_http_request *req, const char *name, char out[LB_ID_STRLEN],
                 lb_json_error *err)
{
    assert(req && name && err);
    if (err->failed)
        return err->code;
    const char *v = lb_http_param(req, name);
    if (!v)
        return lb_json_fail(err, LB_ENOTFOUND, "missing path parameter \"%s\"", name);
    if (!lb_json_is_id(v))
        return lb_json_fail(err, LB_EPARSE,
                            "path parameter \"%s\" must be an id of 32 lowercase hex characters",
                            name);
    memcpy(out, v, LB_ID_STRLEN);
    return 0;
}

int
lb_json_respond_bad_request(lb_http_request *req, const lb_json_error *err)
{
    assert(err);
    return lb_http_respond_error(req, 400, "%s", err->failed ? err->message : "bad request");
}

int
lb_json_respond(lb_http_request *req, int status, json_t *body)
{
    if (!body)
        return -ENOMEM;
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    if (!text)
        return -ENOMEM;
    int rc = lb_http_respond(req, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

json_t *
lb_json_lsn(lb_lsn lsn)
{
    char text[LB_LSN_STRLEN];
    return json_string(lb_lsn_format(lsn, text));
}
