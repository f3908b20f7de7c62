/*
 * protobuf.h: Kubernetes protobuf request bodies
 * (Content-Type: application/vnd.kubernetes.protobuf) as JSON.
 *
 * client-go 1.32's typed clientset sends built-in objects as protobuf: a
 * 4-byte magic "k8s\0", then a runtime.Unknown whose typeMeta names the
 * kind and whose raw bytes are the object's message. kubectl's create
 * commands and helm's release Secrets arrive this way. The kinds decoded
 * are those of k8s.proto; any other gets LB_EUNSUPPORTED (the API server
 * answers 415).
 */
#ifndef DC_PROTOBUF_H
#define DC_PROTOBUF_H

#include <jansson.h>
#include <stddef.h>

/* Decode an object. 0 and a new JSON object in *out (apiVersion and kind
 * from the envelope), LB_EPARSE (malformed; message in err) or
 * LB_EUNSUPPORTED (a kind this server does not decode). */
int dc_protobuf_decode(const void *body, size_t len, json_t **out, char *err, size_t cap);

#endif
