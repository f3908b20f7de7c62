/*
 * kclient.h: the node agent's and controllers' client of the API server.
 *
 * HTTPS with the cluster CA and a bearer token (libcurl + jansson), one
 * keep-alive connection per client. A client belongs to one thread. Paths are
 * the API's own ("/api/v1/namespaces/db/pods/sk-0/status"); callers build
 * them. These are the calls a kubelet and kube-controller-manager make:
 * list, get, create, update (PUT, with resourceVersion: 409 on a stale one),
 * merge patch, delete.
 *
 * Callers: kubelet.c, controllers.c.
 */
#ifndef DC_KCLIENT_H
#define DC_KCLIENT_H

#include <jansson.h>

typedef struct dc_kclient dc_kclient;

/* base_url "https://127.0.0.1:PORT"; ca_file a PEM file (NULL: system CAs);
 * token may be NULL. All copied. 0, -ENOMEM, LB_EHTTP. */
int dc_kclient_new(const char *base_url, const char *ca_file, const char *token, dc_kclient **out);
void dc_kclient_free(dc_kclient *c);

/* One request. body (borrowed) may be NULL; content_type NULL means
 * application/json. Returns 0 once a response arrived, with *status set and
 * *resp the parsed JSON body (NULL if none or not JSON; caller decrefs);
 * LB_EHTTP if no response arrived. */
int dc_kclient_do(dc_kclient *c, const char *method, const char *path, json_t *body,
                  const char *content_type, long *status, json_t **resp);

/* GET a list; *items is the items array (new reference; caller decrefs).
 * 0, LB_EHTTP, or LB_EPROTO (a non-200 answer, or no items). */
int dc_kclient_list(dc_kclient *c, const char *path, json_t **items);

/* The last failure, for logs. Owned by the client. */
const char *dc_kclient_error(const dc_kclient *c);

#endif
