/*
 * errors.h: the project's error codes.
 *
 * Every lakebase function that can fail returns int: 0 on success, -errno for
 * a system error, or one of the negative LB_E* codes below. The codes come
 * from one X-macro table so that their names and messages cannot drift apart.
 * Project codes start at -10000, far below any errno value.
 */
#ifndef LB_ERRORS_H
#define LB_ERRORS_H

#define LB_ERRNO_MAP(XX)                                                                           \
    XX(EPARSE, "malformed input")                                                                  \
    XX(EBADCONFIG, "invalid configuration")                                                        \
    XX(ENOTFOUND, "not found")                                                                     \
    XX(EEXIST, "already exists")                                                                   \
    XX(ECRC, "checksum mismatch")                                                                  \
    XX(ETRUNCATED, "input ends early")                                                             \
    XX(EPROTO, "protocol violation")                                                               \
    XX(EHTTP, "HTTP request failed")                                                               \
    XX(ETIMEOUT, "timed out")                                                                      \
    XX(ESTALETERM, "stale term")                                                                   \
    XX(ECONFLICT, "conflict")                                                                      \
    XX(EUNSUPPORTED, "unsupported")                                                                \
    XX(ETOOBIG, "too large")                                                                       \
    XX(EFSYNC, "fsync failed")                                                                     \
    XX(ESCHEMA, "invalid schema")                                                                  \
    XX(EVALUE, "value does not fit its column")                                                    \
    XX(ESTORAGE, "object storage error")                                                           \
    XX(EAUTH, "authentication failed")                                                             \
    XX(EFORBIDDEN, "permission denied")

typedef enum lb_errno {
    LB__EBASE = -10000,
#define XX(code, _) LB_##code,
    LB_ERRNO_MAP(XX)
#undef XX
        LB__ELAST
} lb_errno;

/*
 * Delivering a message with an error. A call that can fail in more ways
 * than its code says takes an lb_err * from its caller (may be NULL) and
 * fills it on failure: the code and one message in PostgreSQL's style
 * (lowercase, quoting the object). The caller owns the buffer, so it is
 * never shared between threads or overwritten by a later call on another
 * object, which statics and per-handle buffers cannot promise.
 *
 *     lb_err err = {0};
 *     int rc = lake_table_open(store, prefix, schema, NULL, &t, &err);
 *     if (rc)
 *         lb_log_error("table=%s error=\"%s\"", prefix, err.message);
 *
 * The message of a success is unspecified; read it only after a failure.
 */
typedef struct lb_err {
    int code;
    char message[512];
} lb_err;

/* Record code and a message in err (if not NULL); returns code, so that
 * `return lb_err_set(err, LB_EPARSE, "...")` reads as one statement. */
int lb_err_set(lb_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prepend "<prefix>: " to err's message (if err is not NULL); returns err's code. */
int lb_err_prefix(lb_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Message for any return code: a project code, a -errno, or 0. Static storage. */
const char *lb_strerror(int err);
/* Symbolic name ("EPARSE", "ENOENT", ...). Static storage. */
const char *lb_err_name(int err);

#endif
