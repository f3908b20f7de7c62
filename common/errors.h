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

#define LB_ERRNO_MAP(XX)                                                   \
    XX(EPARSE, "malformed input")                                          \
    XX(EBADCONFIG, "invalid configuration")                                \
    XX(ENOTFOUND, "not found")                                             \
    XX(EEXIST, "already exists")                                           \
    XX(ECRC, "checksum mismatch")                                          \
    XX(ETRUNCATED, "input ends early")                                     \
    XX(EPROTO, "protocol violation")                                       \
    XX(EHTTP, "HTTP request failed")                                       \
    XX(ETIMEOUT, "timed out")                                              \
    XX(ESTALETERM, "stale term")                                           \
    XX(ECONFLICT, "conflict")                                              \
    XX(EUNSUPPORTED, "unsupported")                                        \
    XX(ETOOBIG, "too large")                                               \
    XX(EFSYNC, "fsync failed")                                             \
    XX(ESCHEMA, "invalid schema")                                          \
    XX(EVALUE, "value does not fit its column")                            \
    XX(ESTORAGE, "object storage error")                                   \
    XX(EAUTH, "authentication failed")                                     \
    XX(EFORBIDDEN, "permission denied")

typedef enum lb_errno {
    LB__EBASE = -10000,
#define XX(code, _) LB_##code,
    LB_ERRNO_MAP(XX)
#undef XX
    LB__ELAST
} lb_errno;

/* Message for any return code: a project code, a -errno, or 0. Static storage. */
const char *lb_strerror(int err);
/* Symbolic name ("EPARSE", "ENOENT", ...). Static storage. */
const char *lb_err_name(int err);

#endif
