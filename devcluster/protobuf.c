/*
 * protobuf.c: protobuf-c messages of k8s.proto to JSON (see protobuf.h).
 *
 * One generic walker turns any message into JSON by its descriptor: field
 * names in k8s.proto are the JSON names, map fields (repeated *Entry
 * messages) become objects, bytes become base64 as in Kubernetes' JSON.
 * Three message types have a JSON form of their own: Time (an RFC 3339
 * string), IntOrString (a number or a string) and FieldsV1 (raw JSON).
 * Go's encoder writes non-pointer fields even when empty; JSON omits them
 * (omitempty), so empty strings, zero numbers and zero Times are dropped.
 */
#include "protobuf.h"

#include "errors.h"
#include "k8s.pb-c.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
    const char *kind;
    const ProtobufCMessageDescriptor *desc;
} kinds[] = {
    {"ConfigMap", &dck8s__config_map__descriptor},
    {"Secret", &dck8s__secret__descriptor},
    {"Namespace", &dck8s__namespace__descriptor},
    {"ServiceAccount", &dck8s__service_account__descriptor},
    {"Service", &dck8s__service__descriptor},
    {"Role", &dck8s__role__descriptor},
    {"ClusterRole", &dck8s__cluster_role__descriptor},
    {"RoleBinding", &dck8s__role_binding__descriptor},
    {"ClusterRoleBinding", &dck8s__cluster_role_binding__descriptor},
    {"TokenRequest", &dck8s__token_request__descriptor},
    {"DeleteOptions", &dck8s__delete_options__descriptor},
    {"SelfSubjectAccessReview", &dck8s__self_subject_access_review__descriptor},
    {"Deployment", &dck8s__deployment__descriptor},
};

static json_t *
base64(const uint8_t *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    json_t *s = json_string(out);
    free(out);
    return s;
}

static json_t *message_json(const ProtobufCMessage *m, int depth);

/* A single (non-repeated) value at p of field f; NULL to omit. */
static json_t *
value_json(const ProtobufCFieldDescriptor *f, const void *p, bool in_map, int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        if (!s || (!*s && !in_map))
            return NULL;
        return json_string(s);
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        return base64(b->data ? b->data : (const uint8_t *)"", b->len);
    }
    case PROTOBUF_C_TYPE_INT64:
        return *(const int64_t *)p || in_map ? json_integer(*(const int64_t *)p) : NULL;
    case PROTOBUF_C_TYPE_INT32:
        return *(const int32_t *)p || in_map ? json_integer(*(const int32_t *)p) : NULL;
    case PROTOBUF_C_TYPE_BOOL: {
        /* Go's non-pointer bools are omitempty in JSON; pointer bools keep false */
        static const char *const plain[] = {
            "stdin",   "stdinOnce", "tty",    "hostNetwork",
            "hostPID", "hostIPC",   "paused", "publishNotReadyAddresses"};
        bool v = *(const protobuf_c_boolean *)p;
        for (size_t i = 0; !v && !in_map && i < sizeof plain / sizeof plain[0]; i++)
            if (strcmp(f->name, plain[i]) == 0)
                return NULL;
        return json_boolean(v);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        return sub ? message_json(sub, depth + 1) : NULL;
    }
    default:
        return NULL;
    }
}

static bool
is_map_entry(const ProtobufCFieldDescriptor *f)
{
    if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED)
        return false;
    const ProtobufCMessageDescriptor *d = f->descriptor;
    size_t n = strlen(d->name);
    return n > 5 && strcmp(d->name + n - 5, "Entry") == 0 && d->n_fields == 2;
}

static json_t *
special(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d == &dck8s__time__descriptor) {
        const Dck8s__Time *t = (const Dck8s__Time *)m;
        if (t->seconds == 0 && t->nanos == 0)
            return json_null();
        time_t secs = (time_t)t->seconds;
        struct tm tm;
        gmtime_r(&secs, &tm);
        char buf[32];
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return json_string(buf);
    }
    if (d == &dck8s__int_or_string__descriptor) {
        const Dck8s__IntOrString *v = (const Dck8s__IntOrString *)m;
        if (v->type == 1)
            return json_string(v->strval ? v->strval : "");
        return json_integer(v->intval);
    }
    if (d == &dck8s__quantity__descriptor) {
        const Dck8s__Quantity *q = (const Dck8s__Quantity *)m;
        return json_string(q->string ? q->string : "0");
    }
    if (d == &dck8s__fields_v1__descriptor) {
        const Dck8s__FieldsV1 *v = (const Dck8s__FieldsV1 *)m;
        json_error_t e;
        json_t *raw = v->has_raw ? json_loadb((const char *)v->raw.data, v->raw.len, 0, &e) : NULL;
        return raw ? raw : json_object();
    }
    return NULL;
}

static json_t *
message_json(const ProtobufCMessage *m, int depth)
{
    if (depth > 32)
        return json_null();
    json_t *sp = special(m);
    if (sp)
        return sp;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    json_t *obj = json_object();
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m;
        const char *name = strcmp(f->name, "uID") == 0 ? "uid" : f->name;
        json_t *v = NULL;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(const char *const *)(base + f->offset);
            if (n == 0)
                continue;
            if (is_map_entry(f)) {
                v = json_object();
                for (size_t k = 0; k < n; k++) {
                    const ProtobufCMessage *e = ((ProtobufCMessage *const *)arr)[k];
                    const ProtobufCMessageDescriptor *ed = e->descriptor;
                    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
                    if (kf->id != 1) {
                        kf = &ed->fields[1];
                        vf = &ed->fields[0];
                    }
                    const char *key = *(char *const *)((const char *)e + kf->offset);
                    json_t *val = value_json(vf, (const char *)e + vf->offset, true, depth);
                    if (key && val)
                        json_object_set_new(v, key, val);
                    else
                        json_decref(val);
                }
            } else {
                v = json_array();
                size_t size =
                    f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE
                        ? sizeof(void *)
                    : f->type == PROTOBUF_C_TYPE_BYTES ? sizeof(ProtobufCBinaryData)
                    : f->type == PROTOBUF_C_TYPE_INT64 ? sizeof(int64_t)
                    : f->type == PROTOBUF_C_TYPE_BOOL  ? sizeof(protobuf_c_boolean)
                                                       : sizeof(int32_t);
                for (size_t k = 0; k < n; k++) {
                    json_t *e = value_json(f, arr + k * size, true, depth);
                    json_array_append_new(v, e ? e : json_null());
                }
            }
        } else {
            if (f->quantifier_offset && f->type != PROTOBUF_C_TYPE_STRING &&
                f->type != PROTOBUF_C_TYPE_MESSAGE &&
                !*(const protobuf_c_boolean *)(base + f->quantifier_offset))
                continue;
            v = value_json(f, base + f->offset, false, depth);
            if (json_is_null(v) && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                json_decref(v);
                v = NULL;
            }
        }
        if (v)
            json_object_set_new(obj, name, v);
    }
    return obj;
}

/* The first field that k8s.proto does not declare, anywhere in m: such a
 * body is refused (415) rather than stored without that field. */
static const char *
unknown_field(const ProtobufCMessage *m, uint32_t *tag, int depth)
{
    if (m->n_unknown_fields > 0) {
        *tag = m->unknown_fields[0].tag;
        return m->descriptor->name;
    }
    if (depth > 32)
        return NULL;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++) {
                const char *found = unknown_field(arr[k], tag, depth + 1);
                if (found)
                    return found;
            }
        } else {
            const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(base + f->offset);
            const char *found = sub ? unknown_field(sub, tag, depth + 1) : NULL;
            if (found)
                return found;
        }
    }
    return NULL;
}

int
dc_protobuf_decode(const void *body, size_t len, json_t **out, char *err, size_t cap)
{
    const uint8_t *b = body;
    if (len < 4 || memcmp(b, "k8s\0", 4) != 0) {
        snprintf(err, cap,
                 "provided data does not appear to be a protobuf message, expected "
                 "prefix [107 56 115 0]");
        return LB_EPARSE;
    }
    Dck8s__Unknown *u = dck8s__unknown__unpack(NULL, len - 4, b + 4);
    if (!u) {
        snprintf(err, cap, "proto: malformed runtime.Unknown envelope");
        return LB_EPARSE;
    }
    const char *kind = u->typemeta && u->typemeta->kind ? u->typemeta->kind : "";
    const char *av = u->typemeta && u->typemeta->apiversion ? u->typemeta->apiversion : "";
    const ProtobufCMessageDescriptor *desc = NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].kind, kind) == 0)
            desc = kinds[i].desc;
    if (!desc) {
        snprintf(err, cap, "protobuf bodies of kind \"%s\" are not supported; send JSON", kind);
        dck8s__unknown__free_unpacked(u, NULL);
        return LB_EUNSUPPORTED;
    }
    ProtobufCMessage *m =
        protobuf_c_message_unpack(desc, NULL, u->has_raw ? u->raw.len : 0, u->raw.data);
    if (!m) {
        snprintf(err, cap, "proto: malformed %s message", kind);
        dck8s__unknown__free_unpacked(u, NULL);
        return LB_EPARSE;
    }
    uint32_t tag = 0;
    const char *where = unknown_field(m, &tag, 0);
    if (where) {
        snprintf(err, cap,
                 "protobuf field %u of %s is not decoded by this server; send the %s as JSON", tag,
                 where, kind);
        protobuf_c_message_free_unpacked(m, NULL);
        dck8s__unknown__free_unpacked(u, NULL);
        return LB_EUNSUPPORTED;
    }
    json_t *obj = message_json(m, 0);
    if (*av)
        json_object_set_new(obj, "apiVersion", json_string(av));
    if (*kind)
        json_object_set_new(obj, "kind", json_string(kind));
    protobuf_c_message_free_unpacked(m, NULL);
    dck8s__unknown__free_unpacked(u, NULL);
    *out = obj;
    return 0;
}
