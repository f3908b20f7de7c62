/*
 * catalog.h: the pageserver's Iceberg REST catalog (read-only) over each
 * timeline's lake. Its base URL, for any Iceberg REST client, is
 *
 *   http://<pageserver>/v1/tenant/<tenant_id>/timeline/<timeline_id>/iceberg
 *
 * (catalog.c says what it serves). Callers: http_api.c (routing).
 */
#ifndef PS_CATALOG_H
#define PS_CATALOG_H

#include "daemon.h"

/* Route the catalog's endpoints on d's HTTP server (before it starts).
 * 0 or the server's routing error. */
int ps_catalog_routes(ps_daemon *d);

#endif
