/*
 * test_controllers.c: the pure parts of the controllers: a StatefulSet's
 * pods, Endpoints from pods, the hosts files that are cluster DNS, and
 * template hashes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controllers.h"

static json_t *
parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s at %d", e.text, e.position);
    return j;
}

static const char *STS =
    "{\"metadata\":{\"name\":\"sk\",\"namespace\":\"db\",\"uid\":\"u-sts\"},"
    "\"spec\":{\"serviceName\":\"sk\",\"replicas\":3,\"selector\":{\"matchLabels\":{\"app\":\"sk\"}"
    "},"
    "\"template\":{\"metadata\":{\"labels\":{\"app\":\"sk\"}},\"spec\":{\"volumes\":"
    "[{\"name\":\"data\",\"emptyDir\":{}}],\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}},"
    "\"volumeClaimTemplates\":[{\"metadata\":{\"name\":\"data\"},\"spec\":{}}]}}";

static void
test_statefulset_pod(void **state)
{
    (void)state;
    json_t *sts = parse(STS);
    json_t *pod = dc_statefulset_pod(sts, 2, "sk-abc");
    json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
    assert_string_equal(dc_ctl_str(meta, "name"), "sk-2");
    assert_string_equal(dc_ctl_str(spec, "hostname"), "sk-2");
    assert_string_equal(dc_ctl_str(spec, "subdomain"), "sk");
    json_t *labels = json_object_get(meta, "labels");
    assert_string_equal(dc_ctl_str(labels, "app"), "sk");
    assert_string_equal(dc_ctl_str(labels, "statefulset.kubernetes.io/pod-name"), "sk-2");
    assert_string_equal(dc_ctl_str(labels, "controller-revision-hash"), "sk-abc");
    /* the claim template replaces the template's volume of the same name */
    json_t *vols = json_object_get(spec, "volumes");
    assert_int_equal(json_array_size(vols), 1);
    assert_string_equal(
        dc_ctl_str(json_object_get(json_array_get(vols, 0), "persistentVolumeClaim"), "claimName"),
        "data-sk-2");
    assert_true(dc_ctl_owned_by(pod, "u-sts"));
    json_decref(pod);
    json_decref(sts);
}

static json_t *
pod(const char *name, const char *ns, const char *ip, bool is_ready, const char *app)
{
    char text[2048];
    snprintf(
        text, sizeof(text),
        "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\",\"uid\":\"u-%s\",\"labels\":{\"app\":"
        "\"%s\"}},\"spec\":{\"hostname\":\"%s\",\"subdomain\":\"sk\",\"containers\":[{\"name\":"
        "\"c\","
        "\"ports\":[{\"name\":\"http\",\"containerPort\":7676}]}]},"
        "\"status\":{\"phase\":\"Running\",\"podIP\":\"%s\",\"conditions\":[{\"type\":\"Ready\","
        "\"status\":\"%s\"}]}}",
        name, ns, name, app, name, ip, is_ready ? "True" : "False");
    return parse(text);
}

static json_t *
cluster_pods(void)
{
    json_t *pods = json_array();
    json_array_append_new(pods, pod("sk-0", "db", "10.88.0.5", true, "sk"));
    json_array_append_new(pods, pod("sk-1", "db", "10.88.0.4", true, "sk"));
    json_array_append_new(pods, pod("sk-2", "db", "10.88.0.6", false, "sk"));
    json_array_append_new(pods, pod("other", "db", "10.88.0.7", true, "web"));
    json_array_append_new(pods, pod("elsewhere", "x", "10.88.0.8", true, "sk"));
    return pods;
}

static void
test_endpoints(void **state)
{
    (void)state;
    json_t *pods = cluster_pods();
    json_t *svc = parse(
        "{\"metadata\":{\"name\":\"sk\",\"namespace\":\"db\"},\"spec\":{\"selector\":"
        "{\"app\":\"sk\"},\"ports\":[{\"name\":\"http\",\"port\":80,\"targetPort\":\"http\"}]}}");
    json_t *subsets = dc_endpoints_subsets(svc, pods);
    assert_int_equal(json_array_size(subsets), 1);
    json_t *sub = json_array_get(subsets, 0);
    json_t *ready = json_object_get(sub, "addresses"),
           *not_ready = json_object_get(sub, "notReadyAddresses");
    /* ready ones, sorted; the unready one apart; other labels and namespaces out */
    assert_int_equal(json_array_size(ready), 2);
    assert_string_equal(dc_ctl_str(json_array_get(ready, 0), "ip"), "10.88.0.4");
    assert_string_equal(dc_ctl_str(json_array_get(ready, 1), "ip"), "10.88.0.5");
    assert_string_equal(dc_ctl_str(json_array_get(ready, 0), "hostname"), "sk-1");
    assert_int_equal(json_array_size(not_ready), 1);
    assert_string_equal(dc_ctl_str(json_array_get(not_ready, 0), "ip"), "10.88.0.6");
    /* the named targetPort resolved against the container's ports */
    json_t *port = json_array_get(json_object_get(sub, "ports"), 0);
    assert_int_equal(json_integer_value(json_object_get(port, "port")), 7676);
    json_decref(subsets);

    json_object_set_new(json_object_get(svc, "spec"), "publishNotReadyAddresses", json_true());
    subsets = dc_endpoints_subsets(svc, pods);
    sub = json_array_get(subsets, 0);
    assert_int_equal(json_array_size(json_object_get(sub, "addresses")), 3);
    assert_null(json_object_get(sub, "notReadyAddresses"));
    json_decref(subsets);

    /* no pod matches: no subsets at all */
    json_object_set_new(json_object_get(svc, "spec"), "selector", parse("{\"app\":\"none\"}"));
    subsets = dc_endpoints_subsets(svc, pods);
    assert_int_equal(json_array_size(subsets), 0);
    json_decref(subsets);
    json_decref(svc);
    json_decref(pods);
}

static void
test_dns(void **state)
{
    (void)state;
    json_t *pods = cluster_pods();
    json_t *svc =
        parse("{\"metadata\":{\"name\":\"sk\",\"namespace\":\"db\"},\"spec\":{\"selector\":"
              "{\"app\":\"sk\"},\"ports\":[{\"port\":7676}]}}");
    json_t *ep = json_pack("{s:{s:s,s:s},s:o}", "metadata", "name", "sk", "namespace", "db",
                           "subsets", dc_endpoints_subsets(svc, pods));
    dc_ctl_snapshot s = {.pods = pods, .endpoints = json_pack("[o]", ep)};
    lb_buf db = LB_BUF_INIT, x = LB_BUF_INIT;
    dc_dns_render("db", "10.88.0.1", &s, &db);
    dc_dns_render("x", "10.88.0.1", &s, &x);
    assert_non_null(strstr(db.data, "127.0.0.1\tlocalhost\n"));
    assert_non_null(strstr(db.data, "10.88.0.1\tkubernetes.default.svc.cluster.local"));
    /* a service: its ready endpoints only, short name in its own namespace */
    assert_non_null(strstr(db.data, "10.88.0.4\tsk.db.svc.cluster.local sk.db.svc sk.db sk\n"));
    assert_non_null(strstr(db.data, "10.88.0.5\tsk.db.svc.cluster.local sk.db.svc sk.db sk\n"));
    assert_null(strstr(db.data, "10.88.0.6\tsk.db.svc.cluster.local"));
    assert_non_null(strstr(x.data, "10.88.0.4\tsk.db.svc.cluster.local sk.db.svc sk.db\n"));
    /* every StatefulSet pod by POD.SERVICE.NAMESPACE.svc.cluster.local */
    assert_non_null(strstr(
        db.data, "10.88.0.6\tsk-2.sk.db.svc.cluster.local sk-2.sk.db.svc sk-2.sk.db sk-2.sk\n"));
    assert_non_null(
        strstr(x.data, "10.88.0.6\tsk-2.sk.db.svc.cluster.local sk-2.sk.db.svc sk-2.sk.db\n"));
    /* a pod's bare hostname only within its namespace */
    assert_non_null(strstr(db.data, "10.88.0.5\tsk-0\n"));
    assert_null(strstr(x.data, "10.88.0.5\tsk-0\n"));
    lb_buf_free(&db);
    lb_buf_free(&x);
    json_decref(s.endpoints);
    json_decref(svc);
    json_decref(pods);
}

static void
test_hash(void **state)
{
    (void)state;
    json_t *a = parse("{\"x\":1,\"y\":[1,2]}"), *b = parse("{\"y\":[1,2],\"x\":1}"),
           *c = parse("{\"x\":2}");
    char ha[16], hb[16], hc[16];
    dc_ctl_hash(a, ha);
    dc_ctl_hash(b, hb);
    dc_ctl_hash(c, hc);
    assert_int_equal(strlen(ha), 10);
    assert_string_equal(ha, hb); /* key order does not matter */
    assert_string_not_equal(ha, hc);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statefulset_pod),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_dns),
        cmocka_unit_test(test_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
