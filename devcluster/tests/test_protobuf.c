/*
 * test_protobuf.c: Kubernetes protobuf bodies (magic + runtime.Unknown +
 * the object's message) decode to the JSON a real server stores: maps,
 * base64 bytes, times, omitted empty fields; malformed or unknown input is
 * refused with the right code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "k8s.pb-c.h"
#include "protobuf.h"

/* Frame an object message as client-go does. *len gets the size. */
static uint8_t *
frame(const char *api_version, const char *kind, const ProtobufCMessage *obj, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(obj);
    uint8_t *raw = malloc(n);
    protobuf_c_message_pack(obj, raw);
    Dck8s__RuntimeTypeMeta tm = DCK8S__RUNTIME_TYPE_META__INIT;
    tm.apiversion = (char *)api_version;
    tm.kind = (char *)kind;
    Dck8s__Unknown u = DCK8S__UNKNOWN__INIT;
    u.typemeta = &tm;
    u.has_raw = 1;
    u.raw.data = raw;
    u.raw.len = n;
    size_t un = dck8s__unknown__get_packed_size(&u);
    uint8_t *out = malloc(un + 4);
    memcpy(out, "k8s\0", 4);
    dck8s__unknown__pack(&u, out + 4);
    free(raw);
    *len = un + 4;
    return out;
}

static void
test_secret_decodes_like_json(void **state)
{
    (void)state;
    Dck8s__Time created = DCK8S__TIME__INIT;
    created.has_seconds = 1;
    created.seconds = 1700000000;
    Dck8s__ObjectMeta__LabelsEntry label = DCK8S__OBJECT_META__LABELS_ENTRY__INIT;
    label.key = "owner";
    label.value = "helm";
    Dck8s__ObjectMeta__LabelsEntry *labels[] = {&label};
    Dck8s__ObjectMeta meta = DCK8S__OBJECT_META__INIT;
    meta.name = "sh.helm.release.v1.r1.v1";
    meta.namespace_ = ""; /* Go writes empty strings; JSON omits them */
    meta.has_generation = 1;
    meta.generation = 0;
    meta.creationtimestamp = &created;
    meta.n_labels = 1;
    meta.labels = labels;
    Dck8s__Secret__DataEntry d = DCK8S__SECRET__DATA_ENTRY__INIT;
    d.key = "release";
    d.has_value = 1;
    d.value.data = (uint8_t *)"hi";
    d.value.len = 2;
    Dck8s__Secret__DataEntry *data[] = {&d};
    Dck8s__Secret secret = DCK8S__SECRET__INIT;
    secret.metadata = &meta;
    secret.type = "helm.sh/release.v1";
    secret.n_data = 1;
    secret.data = data;
    secret.has_immutable = 1;
    secret.immutable = 0;
    size_t len;
    uint8_t *body = frame("v1", "Secret", &secret.base, &len);
    json_t *out = NULL;
    char err[256];
    assert_int_equal(dc_protobuf_decode(body, len, &out, err, sizeof err), 0);
    json_error_t e;
    json_t *want =
        json_loads("{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"type\":\"helm.sh/release.v1\","
                   "\"immutable\":false,\"data\":{\"release\":\"aGk=\"},\"metadata\":{\"name\":"
                   "\"sh.helm.release.v1.r1.v1\",\"labels\":{\"owner\":\"helm\"},"
                   "\"creationTimestamp\":\"2023-11-14T22:13:20Z\"}}",
                   0, &e);
    if (!json_equal(out, want)) {
        char *got = json_dumps(out, JSON_SORT_KEYS);
        fail_msg("got %s", got);
    }
    json_decref(out);
    json_decref(want);
    free(body);
}

static void
test_service_ports_and_int_or_string(void **state)
{
    (void)state;
    Dck8s__IntOrString target = DCK8S__INT_OR_STRING__INIT;
    target.has_type = 1;
    target.type = 1;
    target.strval = "http";
    Dck8s__ServicePort port = DCK8S__SERVICE_PORT__INIT;
    port.has_port = 1;
    port.port = 80;
    port.targetport = &target;
    Dck8s__ServicePort *ports[] = {&port};
    Dck8s__ServiceSpec spec = DCK8S__SERVICE_SPEC__INIT;
    spec.n_ports = 1;
    spec.ports = ports;
    spec.type = "NodePort";
    Dck8s__ObjectMeta meta = DCK8S__OBJECT_META__INIT;
    meta.name = "web";
    Dck8s__Service svc = DCK8S__SERVICE__INIT;
    svc.metadata = &meta;
    svc.spec = &spec;
    size_t len;
    uint8_t *body = frame("v1", "Service", &svc.base, &len);
    json_t *out = NULL;
    char err[256];
    assert_int_equal(dc_protobuf_decode(body, len, &out, err, sizeof err), 0);
    json_t *p = json_array_get(json_object_get(json_object_get(out, "spec"), "ports"), 0);
    assert_int_equal(json_integer_value(json_object_get(p, "port")), 80);
    assert_string_equal(json_string_value(json_object_get(p, "targetPort")), "http");
    assert_string_equal(json_string_value(json_object_get(json_object_get(out, "spec"), "type")),
                        "NodePort");
    json_decref(out);
    free(body);
}

static void
test_bad_bodies_are_refused(void **state)
{
    (void)state;
    json_t *out = NULL;
    char err[256] = "";
    assert_int_equal(dc_protobuf_decode("{\"a\":1}", 7, &out, err, sizeof err), LB_EPARSE);
    assert_int_equal(dc_protobuf_decode("k8s\0\x0a\xff\xff\xff", 8, &out, err, sizeof err),
                     LB_EPARSE);
    Dck8s__ObjectMeta meta = DCK8S__OBJECT_META__INIT;
    Dck8s__ConfigMap cm = DCK8S__CONFIG_MAP__INIT;
    cm.metadata = &meta;
    size_t len;
    uint8_t *body = frame("batch/v1", "Job", &cm.base, &len);
    err[0] = '\0';
    assert_int_equal(dc_protobuf_decode(body, len, &out, err, sizeof err), LB_EUNSUPPORTED);
    assert_non_null(strstr(err, "Job"));
    assert_null(out);
    free(body);
}

/* A field this server does not know (a newer client, a kind only partly
 * declared) makes the body refused, never stored without it. */
static void
test_unknown_fields_are_refused_not_dropped(void **state)
{
    (void)state;
    Dck8s__ObjectMeta meta = DCK8S__OBJECT_META__INIT;
    meta.name = "c";
    Dck8s__ConfigMap cm = DCK8S__CONFIG_MAP__INIT;
    cm.metadata = &meta;
    size_t n = protobuf_c_message_get_packed_size(&cm.base);
    uint8_t *raw = malloc(n + 3);
    protobuf_c_message_pack(&cm.base, raw);
    raw[n] = 0x98; /* field 99, varint */
    raw[n + 1] = 0x06;
    raw[n + 2] = 0x01;
    Dck8s__RuntimeTypeMeta tm = DCK8S__RUNTIME_TYPE_META__INIT;
    tm.apiversion = "v1";
    tm.kind = "ConfigMap";
    Dck8s__Unknown u = DCK8S__UNKNOWN__INIT;
    u.typemeta = &tm;
    u.has_raw = 1;
    u.raw.data = raw;
    u.raw.len = n + 3;
    size_t un = dck8s__unknown__get_packed_size(&u);
    uint8_t *body = malloc(un + 4);
    memcpy(body, "k8s\0", 4);
    dck8s__unknown__pack(&u, body + 4);
    json_t *out = NULL;
    char err[256] = "";
    assert_int_equal(dc_protobuf_decode(body, un + 4, &out, err, sizeof err), LB_EUNSUPPORTED);
    assert_non_null(strstr(err, "field 99"));
    assert_null(out);
    free(raw);
    free(body);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_decodes_like_json),
        cmocka_unit_test(test_service_ports_and_int_or_string),
        cmocka_unit_test(test_bad_bodies_are_refused),
        cmocka_unit_test(test_unknown_fields_are_refused_not_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
