/*
 * errors.c: names and messages for the codes of errors.h.
 *
 * lb_err_set() fills a caller's lb_err (see errors.h).
 *
 * lb_strerror() accepts both project codes and -errno so that callers can log
 * any return value without checking which kind it is.
 */
#include "errors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *
lb_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define XX(code, msg)                                                                              \
    case LB_##code:                                                                                \
        return msg;
        LB_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    if (err < 0 && err > LB__EBASE)
        return strerror(-err);
    return "unknown error";
}

const char *
lb_err_name(int err)
{
    switch (err) {
    case 0:
        return "OK";
#define XX(code, _)                                                                                \
    case LB_##code:                                                                                \
        return #code;
        LB_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    if (err < 0 && err > LB__EBASE) {
        const char *name = strerrorname_np(-err);
        return name ? name : "EUNKNOWN";
    }
    return "EUNKNOWN";
}

int
lb_err_set(lb_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return code;
}

int
lb_err_prefix(lb_err *err, const char *fmt, ...)
{
    if (!err)
        return 0;
    char head[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    size_t hn = strnlen(head, sizeof(err->message) - 3);
    size_t on = strnlen(err->message, sizeof(err->message) - 1);
    if (hn + 2 + on > sizeof(err->message) - 1)
        on = sizeof(err->message) - 1 - hn - 2;
    memmove(err->message + hn + 2, err->message, on);
    memcpy(err->message, head, hn);
    memcpy(err->message + hn, ": ", 2);
    err->message[hn + 2 + on] = 0;
    return err->code;
}
