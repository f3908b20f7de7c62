/*
 * test_podman.c: a Pod's spec as podman arguments (no podman needed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "podman.h"
#include "quantity.h"

static json_t *
parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s at %d", e.text, e.position);
    return j;
}

static bool
has_arg(const dc_argv *a, const char *s)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], s) == 0)
            return true;
    return false;
}

static ssize_t
index_of(const dc_argv *a, const char *s)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], s) == 0)
            return (ssize_t)i;
    return -1;
}

static const char *POD =
    "{\"metadata\":{\"name\":\"sk-0\",\"namespace\":\"db\",\"uid\":\"0123456789abcdef\","
    "\"labels\":{\"app\":\"sk\"}},"
    "\"spec\":{\"hostname\":\"sk-0\",\"subdomain\":\"sk\","
    "\"securityContext\":{\"runAsUser\":1000,\"runAsGroup\":2000,\"fsGroup\":3000},"
    "\"volumes\":[{\"name\":\"data\",\"persistentVolumeClaim\":{\"claimName\":\"data-sk-0\"}},"
    "{\"name\":\"scratch\",\"emptyDir\":{}},{\"name\":\"conf\",\"configMap\":{\"name\":\"c\"}}],"
    "\"containers\":[{\"name\":\"main\",\"image\":\"localhost/lakebase/safekeeper:x\","
    "\"command\":[\"/bin/sk\"],\"args\":[\"--id\",\"$(POD_NAME)\",\"$$(literal)\"],"
    "\"env\":[{\"name\":\"POD_NAME\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"metadata.name\"}}"
    "},"
    "{\"name\":\"POD_IP\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"status.podIP\"}}},"
    "{\"name\":\"PASSWORD\",\"valueFrom\":{\"secretKeyRef\":{\"name\":\"s\",\"key\":\"pw\"}}},"
    "{\"name\":\"MODE\",\"valueFrom\":{\"configMapKeyRef\":{\"name\":\"c\",\"key\":\"mode\"}}},"
    "{\"name\":\"URL\",\"value\":\"http://$(POD_IP):7676\"}],"
    "\"volumeMounts\":[{\"name\":\"data\",\"mountPath\":\"/data\"},"
    "{\"name\":\"scratch\",\"mountPath\":\"/tmp/s\"},{\"name\":\"conf\",\"mountPath\":\"/etc/c\"}],"
    "\"securityContext\":{\"runAsNonRoot\":true,\"readOnlyRootFilesystem\":true,"
    "\"allowPrivilegeEscalation\":false,\"capabilities\":{\"drop\":[\"ALL\"]}},"
    "\"resources\":{\"limits\":{\"memory\":\"256Mi\",\"cpu\":\"500m\"}}}]}}";

static json_t *
refs(void)
{
    return parse("{\"secret/s\":{\"data\":{\"pw\":\"czNjcjN0\"}},"
                 "\"configmap/c\":{\"data\":{\"mode\":\"fast\"}}}");
}

static dc_pod_ctx
ctx_for(json_t *r)
{
    dc_pod_ctx ctx = {
        .cluster_id = "dc1",
        .pod_ip = "10.88.0.7",
        .node_name = "devcluster",
        .volume_root = "/var/dc/pods/0123/volumes",
        .pvc_root = "/var/dc/pvc",
        .hosts_file = "/var/dc/hosts/db",
        .sa_dir = "/var/dc/pods/0123/sa",
        .api_host = "10.88.0.1",
        .api_port = 6443,
        .refs = r,
        .image_user = "65532:65532",
    };
    return ctx;
}

static void
test_pod_args(void **state)
{
    (void)state;
    json_t *pod = parse(POD), *r = refs();
    dc_pod_ctx ctx = ctx_for(r);
    dc_argv a = {0};
    lb_buf err = LB_BUF_INIT;
    assert_int_equal(dc_podman_pod_args(&ctx, pod, &a, &err), 0);
    assert_string_equal(a.v[0], "pod");
    assert_string_equal(a.v[1], "create");
    assert_true(has_arg(&a, "--name=dc1-db-sk-0-01234567"));
    assert_true(has_arg(&a, "--hostname=sk-0"));
    assert_true(has_arg(&a, "--no-hosts"));
    assert_true(has_arg(&a, "--label=io.lakebase.devcluster=dc1"));
    assert_true(has_arg(&a, "--label=io.lakebase.pod-uid=0123456789abcdef"));
    dc_argv_free(&a);
    lb_buf_free(&err);
    json_decref(pod);
    json_decref(r);
}

static void
test_container_args(void **state)
{
    (void)state;
    json_t *pod = parse(POD), *r = refs();
    dc_pod_ctx ctx = ctx_for(r);
    json_t *c = json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
    dc_argv a = {0};
    lb_buf err = LB_BUF_INIT;
    int rc = dc_podman_container_args(&ctx, pod, c, &a, &err);
    if (rc)
        fail_msg("%s", err.data);
    assert_string_equal(a.v[0], "create");
    assert_true(has_arg(&a, "--name=dc1-db-sk-0-01234567-main"));
    assert_true(has_arg(&a, "--pod=dc1-db-sk-0-01234567"));
    assert_true(has_arg(&a, "--pull=never"));
    assert_true(has_arg(&a, "--env=POD_NAME=sk-0"));
    assert_true(has_arg(&a, "--env=POD_IP=10.88.0.7"));
    assert_true(has_arg(&a, "--env=PASSWORD=s3cr3t"));
    assert_true(has_arg(&a, "--env=MODE=fast"));
    assert_true(has_arg(&a, "--env=URL=http://10.88.0.7:7676"));
    assert_true(has_arg(&a, "--env=KUBERNETES_SERVICE_HOST=10.88.0.1"));
    assert_true(has_arg(&a, "--env=KUBERNETES_SERVICE_PORT=6443"));
    assert_true(has_arg(&a, "--volume=/var/dc/pvc/db/data-sk-0:/data"));
    assert_true(has_arg(&a, "--volume=/var/dc/pods/0123/volumes/scratch:/tmp/s"));
    assert_true(has_arg(&a, "--volume=/var/dc/pods/0123/volumes/conf:/etc/c:ro"));
    assert_true(has_arg(
        &a, "--volume=/var/dc/pods/0123/sa:/var/run/secrets/kubernetes.io/serviceaccount:ro"));
    assert_true(has_arg(&a, "--volume=/var/dc/hosts/db:/etc/hosts:ro"));
    assert_true(has_arg(&a, "--user=1000:2000"));
    assert_true(has_arg(&a, "--group-add=3000"));
    assert_true(has_arg(&a, "--read-only"));
    assert_true(has_arg(&a, "--security-opt=no-new-privileges"));
    assert_true(has_arg(&a, "--cap-drop=all"));
    assert_true(has_arg(&a, "--memory=268435456"));
    assert_true(has_arg(&a, "--cpus=0.500"));
    assert_true(has_arg(&a, "--entrypoint=[\"/bin/sk\"]"));
    /* image, then args with $(VAR) expanded and $$ kept literal */
    ssize_t img = index_of(&a, "localhost/lakebase/safekeeper:x");
    assert_true(img > 0);
    assert_int_equal((size_t)img + 4, a.n);
    assert_string_equal(a.v[img + 1], "--id");
    assert_string_equal(a.v[img + 2], "sk-0");
    assert_string_equal(a.v[img + 3], "$(literal)");
    dc_argv_free(&a);
    lb_buf_free(&err);
    json_decref(pod);
    json_decref(r);
}

/* A missing secret key, a root user under runAsNonRoot, an unknown volume
 * and a bad quantity are refused with a message, never run. */
static void
test_refusals(void **state)
{
    (void)state;
    struct {
        const char *patch; /* merged into the first container */
        int rc;
        const char *msg;
    } cases[] = {
        {"{\"env\":[{\"name\":\"X\",\"valueFrom\":{\"secretKeyRef\":{\"name\":\"s\",\"key\":"
         "\"nope\"}}}]}",
         LB_ENOTFOUND, "couldn't find key nope in Secret \"s\""},
        {"{\"env\":[{\"name\":\"X\",\"valueFrom\":{\"secretKeyRef\":{\"name\":\"s\",\"key\":"
         "\"nope\","
         "\"optional\":true}}}]}",
         0, NULL},
        {"{\"securityContext\":{\"runAsNonRoot\":true,\"runAsUser\":0}}", LB_EPARSE,
         "runAsUser breaks non-root"},
        {"{\"volumeMounts\":[{\"name\":\"ghost\",\"mountPath\":\"/g\"}]}", LB_EPARSE,
         "volume \"ghost\" not found"},
        {"{\"volumeMounts\":[{\"name\":\"data\",\"mountPath\":\"/a:b\"}]}", LB_EPARSE,
         "not usable"},
        {"{\"resources\":{\"limits\":{\"memory\":\"12 parsecs\"}}}", LB_EPARSE, "not valid"},
        {"{\"resources\":{\"limits\":{\"cpu\":\"-1\"}}}", LB_EPARSE, "not valid"},
        {"{\"env\":[{\"name\":\"X\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"spec.nope\"}}}]}",
         LB_EUNSUPPORTED, "unsupported fieldRef"},
        {"{\"image\":\"\"}", LB_EPARSE, "no name or image"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *pod = parse(POD), *r = refs();
        dc_pod_ctx ctx = ctx_for(r);
        json_t *c = json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
        json_t *patch = parse(cases[i].patch);
        json_object_update(c, patch);
        json_decref(patch);
        dc_argv a = {0};
        lb_buf err = LB_BUF_INIT;
        int rc = dc_podman_container_args(&ctx, pod, c, &a, &err);
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d, want %d (%s)", i, rc, cases[i].rc, err.data ? err.data : "");
        if (cases[i].msg && (!err.data || !strstr(err.data, cases[i].msg)))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.data ? err.data : "",
                     cases[i].msg);
        dc_argv_free(&a);
        lb_buf_free(&err);
        json_decref(pod);
        json_decref(r);
    }
}

/* runAsNonRoot without runAsUser is checked against the image's user. */
static void
test_nonroot_image_user(void **state)
{
    (void)state;
    const char *users[] = {"", "root", "0:0", "app", "65532"};
    int want[] = {LB_EPARSE, LB_EPARSE, LB_EPARSE, LB_EPARSE, 0};
    for (size_t i = 0; i < 5; i++) {
        json_t *pod = parse(POD), *r = refs();
        json_object_del(json_object_get(json_object_get(pod, "spec"), "securityContext"),
                        "runAsUser");
        dc_pod_ctx ctx = ctx_for(r);
        ctx.image_user = users[i];
        json_t *c = json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
        dc_argv a = {0};
        lb_buf err = LB_BUF_INIT;
        assert_int_equal(dc_podman_container_args(&ctx, pod, c, &a, &err), want[i]);
        dc_argv_free(&a);
        lb_buf_free(&err);
        json_decref(pod);
        json_decref(r);
    }
}

static void
test_quantities(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(lb_quantity_parse("128Mi", &v), 0);
    assert_int_equal(v, 128 * 1024 * 1024);
    assert_int_equal(lb_quantity_parse("1G", &v), 0);
    assert_int_equal(v, 1000000000);
    assert_int_equal(lb_quantity_parse("1.5Ki", &v), 0);
    assert_int_equal(v, 1536);
    assert_int_equal(lb_quantity_milli("500m", &v), 0);
    assert_int_equal(v, 500);
    assert_int_equal(lb_quantity_milli("2", &v), 0);
    assert_int_equal(v, 2000);
    assert_int_equal(lb_quantity_milli("0.25", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(lb_quantity_parse("", &v), LB_EPARSE);
    assert_int_equal(lb_quantity_parse("Mi", &v), LB_EPARSE);
    assert_int_equal(lb_quantity_parse("5Xi", &v), LB_EPARSE);
    assert_int_equal(lb_quantity_parse("1e40", &v), LB_EPARSE);
}

static void
test_selectors(void **state)
{
    (void)state;
    json_t *labels = parse("{\"app\":\"sk\",\"tier\":\"wal\"}");
    json_t *sel = parse("{\"matchLabels\":{\"app\":\"sk\"},\"matchExpressions\":["
                        "{\"key\":\"tier\",\"operator\":\"In\",\"values\":[\"wal\",\"x\"]},"
                        "{\"key\":\"gone\",\"operator\":\"DoesNotExist\"}]}");
    json_t *other = parse("{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"NotIn\","
                          "\"values\":[\"wal\"]}]}");
    json_t *plain = parse("{\"app\":\"sk\"}"), *plain_no = parse("{\"app\":\"ps\"}");
    json_t *empty = json_object();
    assert_true(dc_label_selector_matches(sel, labels, false));
    assert_false(dc_label_selector_matches(other, labels, false));
    assert_true(dc_label_selector_matches(plain, labels, true));
    assert_false(dc_label_selector_matches(plain_no, labels, true));
    assert_true(dc_label_selector_matches(empty, labels, false));
    assert_false(dc_label_selector_matches(NULL, labels, false));
    json_decref(labels);
    json_decref(sel);
    json_decref(other);
    json_decref(plain);
    json_decref(plain_no);
    json_decref(empty);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pod_args),   cmocka_unit_test(test_container_args),
        cmocka_unit_test(test_refusals),   cmocka_unit_test(test_nonroot_image_user),
        cmocka_unit_test(test_quantities), cmocka_unit_test(test_selectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
