/*
 * lsn.c: LSN text form. Parsing is strict, because an LSN that arrives in a
 * request decides what WAL is served or truncated: "0/1G", "/5", "1/" and
 * trailing garbage are all refused.
 */
#include "lsn.h"
#include "errors.h"

#include <stdio.h>

static int
parse_half(const char **p, uint32_t *out)
{
    uint32_t v = 0;
    int digits = 0;
    for (;;) {
        char c = **p;
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            break;
        if (++digits > 8)
            return LB_EPARSE;
        v = (v << 4) | (uint32_t)d;
        (*p)++;
    }
    if (digits == 0)
        return LB_EPARSE;
    *out = v;
    return 0;
}

int
lb_lsn_parse(const char *text, lb_lsn *lsn)
{
    uint32_t hi, lo;
    const char *p = text;
    if (!p || parse_half(&p, &hi) != 0 || *p++ != '/' || parse_half(&p, &lo) != 0 || *p != '\0')
        return LB_EPARSE;
    *lsn = ((lb_lsn)hi << 32) | lo;
    return 0;
}

char *
lb_lsn_format(lb_lsn lsn, char *buf)
{
    snprintf(buf, LB_LSN_STRLEN, LB_LSN_FMT, LB_LSN_ARGS(lsn));
    return buf;
}
