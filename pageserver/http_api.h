/*
 * http_api.h: the pageserver's HTTP API (http_api.c lists the routes
 * and who may call each).
 *
 * Callers: daemon.c.
 */
#ifndef PS_HTTP_API_H
#define PS_HTTP_API_H

#include "daemon.h"

int ps_http_routes(ps_daemon *d);

#endif
