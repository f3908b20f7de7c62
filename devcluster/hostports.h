/*
 * hostports.h: TCP forwarding from the host into pods, and from pods to the
 * API server.
 *
 * One thread, one event loop (common/event_loop.h) owning every listener
 * and connection:
 *   - <bridge address>:<api port> -> 127.0.0.1:<api port>: how pods reach
 *     the API server, which listens on loopback only (KUBERNETES_SERVICE_HOST
 *     is the bridge address). Bound with IP_FREEBIND, since podman creates
 *     the bridge only with the first pod.
 *   - 127.0.0.1:<nodePort> -> a ready endpoint of the Service (round robin
 *     per connection), for every port of every Service of type NodePort or
 *     LoadBalancer: how a user on the host reaches a database in the
 *     cluster. The table comes from the controllers' pass
 *     (dc_hostports_sync in controllers.h).
 */
#ifndef DC_HOSTPORTS_H
#define DC_HOSTPORTS_H

#include <jansson.h>

typedef struct dc_hostports dc_hostports;

/* Start the thread. bridge_host NULL or api_port 0: no API forward.
 * 0 or -errno. */
int dc_hostports_start(const char *bridge_host, int api_port, dc_hostports **out);
void dc_hostports_stop(dc_hostports *h);

/* Replace the host-port table: {"<port>": ["ip:port", ...], ...} (copied).
 * Listeners open and close to match; a port that cannot be bound is
 * retried at the next call. Safe from any thread. */
void dc_hostports_set(dc_hostports *h, json_t *table);

/* The ports that are listening now, as a JSON array of integers (new ref). */
json_t *dc_hostports_listening(dc_hostports *h);

#endif
