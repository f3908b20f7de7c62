/*
 * json.h: JSON request bodies and responses for HTTP handlers (jansson).
 *
 * Reading a request goes through one sticky error, lb_json_error: the first
 * failure records a message that names the field, and every later call sees
 * the error and does nothing. A handler reads all it needs, then checks
 * once, and lb_json_respond_bad_request() turns the error into
 * 400 {"error": "..."}:
 *
 *     lb_json_error err = LB_JSON_ERROR_INIT;
 *     json_t *body = NULL;
 *     char timeline_id[LB_ID_STRLEN];
 *     lb_lsn lsn;
 *     lb_json_parse_request(req, &body, &err);
 *     lb_json_req_id(body, "timeline_id", timeline_id, &err);
 *     lb_json_req_lsn(body, "lsn", &lsn, &err);
 *     if (err.failed) {
 *         json_decref(body);
 *         return lb_json_respond_bad_request(req, &err);
 *     }
 *
 * Getters never touch their output on failure, and an optional field that
 * is absent or null gets its default. Strings returned point into the
 * json_t and live as long as it does.
 */
#ifndef LB_JSON_H
#define LB_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "http_server.h"
#include "lsn.h"

/* 32 lowercase hex characters plus NUL: tenant and timeline ids. */
#define LB_ID_LEN 32
#define LB_ID_STRLEN (LB_ID_LEN + 1)

typedef struct lb_json_error {
    bool failed;
    int code; /* LB_EPARSE (malformed, wrong type) or LB_ENOTFOUND (missing) */
    char message[256];
} lb_json_error;

#define LB_JSON_ERROR_INIT                                                                         \
    {                                                                                              \
        false, 0,                                                                                  \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/* Record an error (only the first one sticks); returns err->code. */
int lb_json_fail(lb_json_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- handlers: reading a request ---- */

/* Parse text (len bytes) as a JSON object; *out gets a new reference the
 * caller releases with json_decref(). Refuses malformed JSON (the message
 * gives line and column), duplicate keys, and anything but an object. */
int lb_json_parse(const char *text, size_t len, json_t **out, lb_json_error *err);
/* lb_json_parse() of the request body. */
int lb_json_parse_request(lb_http_request *req, json_t **out, lb_json_error *err);

/* Required fields: 0, or LB_ENOTFOUND ("missing field \"x\"") or LB_EPARSE
 * ("field \"x\" must be ..."). obj may be NULL (after a failed parse). */
int lb_json_req_str(const json_t *obj, const char *field, const char **out, lb_json_error *err);
int lb_json_req_int64(const json_t *obj, const char *field, int64_t *out, lb_json_error *err);
int lb_json_req_bool(const json_t *obj, const char *field, bool *out, lb_json_error *err);
/* An LSN as the string "X/X". */
int lb_json_req_lsn(const json_t *obj, const char *field, lb_lsn *out, lb_json_error *err);
/* An id: 32 lowercase hex characters, copied into out. */
int lb_json_req_id(const json_t *obj, const char *field, char out[LB_ID_STRLEN],
                   lb_json_error *err);

/* Optional fields: absent or null gives def. */
int lb_json_opt_str(const json_t *obj, const char *field, const char *def, const char **out,
                    lb_json_error *err);
int lb_json_opt_int64(const json_t *obj, const char *field, int64_t def, int64_t *out,
                      lb_json_error *err);
int lb_json_opt_bool(const json_t *obj, const char *field, bool def, bool *out, lb_json_error *err);
int lb_json_opt_lsn(const json_t *obj, const char *field, lb_lsn def, lb_lsn *out,
                    lb_json_error *err);

/* A path parameter that must be an id ("path parameter \"x\" must be ..."). */
int lb_json_param_id(const lb_http_request *req, const char *name, char out[LB_ID_STRLEN],
                     lb_json_error *err);
/* True if s is exactly 32 lowercase hex characters. */
bool lb_json_is_id(const char *s);

/* ---- handlers: responding ---- */

/* 400 {"error": err->message}. (A handler that wants 404 for an id it does
 * not know answers that itself.) */
int lb_json_respond_bad_request(lb_http_request *req, const lb_json_error *err);
/* Send body as application/json. Steals the reference to body (released in
 * every case). A NULL body (a failed json_pack) gives -ENOMEM. */
int lb_json_respond(lb_http_request *req, int status, json_t *body);

/* ---- building responses ---- */

/* json_string of an LSN in "X/X" form; a new reference, NULL on no memory. */
json_t *lb_json_lsn(lb_lsn lsn);

#endif
