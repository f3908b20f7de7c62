/*
 * errors.c: names and messages for the codes of errors.h.
 *
 * lb_strerror() accepts both project codes and -errno so that callers can log
 * any return value without checking which kind it is.
 */
#include "errors.h"

#include <errno.h>
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
