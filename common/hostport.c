/*
 * hostport.c: parsing and printing "host:port" (hostport.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "hostport.h"

int
lb_hostport_parse(const char *text, lb_hostport *out)
{
    if (!text)
        return LB_EPARSE;
    const char *host = text, *host_end, *colon;
    if (text[0] == '[') {
        host = text + 1;
        host_end = strchr(host, ']');
        if (!host_end || host_end[1] != ':')
            return LB_EPARSE;
        colon = host_end + 1;
    } else {
        colon = strchr(text, ':');
        if (!colon || strchr(colon + 1, ':'))
            return LB_EPARSE; /* none, or an IPv6 address without brackets */
        host_end = colon;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen >= sizeof(out->host))
        return LB_EPARSE;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (isspace(c) || !isprint(c) || c == '/' || c == '[' || c == ']' || c == '\'' ||
            c == '\\' || c == '@')
            return LB_EPARSE;
    }
    const char *port = colon + 1;
    size_t plen = strlen(port);
    if (plen == 0 || plen > 5)
        return LB_EPARSE;
    long p = 0;
    for (const char *c = port; *c; c++) {
        if (!isdigit((unsigned char)*c))
            return LB_EPARSE;
        p = p * 10 + (*c - '0');
    }
    if (p > 65535)
        return LB_EPARSE;
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = (int)p;
    return 0;
}

int
lb_hostport_format(const lb_hostport *hp, char *out, size_t cap)
{
    bool v6 = strchr(hp->host, ':') != NULL;
    int n = snprintf(out, cap, v6 ? "[%s]:%d" : "%s:%d", hp->host, hp->port);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}
