/*
 * hostport.h: "host:port", the one parser of network addresses.
 *
 * Accepted: "name:port", "1.2.3.4:port", "[v6]:port". The host is kept
 * without brackets, as libpq and getaddrinfo() want it; an IPv6 address
 * needs brackets (else "::1:5432" would be ambiguous). The port is 1 to 5
 * decimal digits, 0 to 65535 (0: "any free port" for a listener; callers
 * that connect refuse it). Refused, with LB_EPARSE: no colon, an empty
 * host or port, spaces, '/', stray brackets, a sign or anything after the
 * port.
 *
 * Callers: config.c (LB_CONFIG_ADDR settings), compute/spec.c, the
 * safekeeper's --peers.
 */
#ifndef LB_HOSTPORT_H
#define LB_HOSTPORT_H

#include <stddef.h>

typedef struct lb_hostport {
    char host[256]; /* without brackets */
    int port;
} lb_hostport;

/* 0 or LB_EPARSE (out unchanged). */
int lb_hostport_parse(const char *text, lb_hostport *out);

/* "host:port", or "[host]:port" when host holds a ':'. 0 or -ENAMETOOLONG. */
int lb_hostport_format(const lb_hostport *hp, char *out, size_t cap);

#endif
