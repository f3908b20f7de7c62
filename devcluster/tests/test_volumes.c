/*
 * test_volumes.c: configMap, secret, downwardAPI and projected volumes as
 * files, the service-account directory, and refusals of paths that would
 * leave the volume.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "testutil.h"
#include "volumes.h"

static json_t *
parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s at %d", e.text, e.position);
    return j;
}

static char *
slurp(const char *dir, const char *rel)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 4096);
    size_t n = fread(buf, 1, 4095, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void
expect_file(const char *dir, const char *rel, const char *want)
{
    char *got = slurp(dir, rel);
    if (!got)
        fail_msg("%s/%s is missing", dir, rel);
    assert_string_equal(got, want);
    free(got);
}

static json_t *
refs(void)
{
    return parse(
        "{\"configmap/c\":{\"data\":{\"mode\":\"fast\",\"conf.yaml\":\"a: 1\\n\"}},"
        "\"secret/"
        "s\":{\"data\":{\"pw\":\"czNjcjN0\",\"bad\":\"***\"},\"stringData\":{\"plain\":\"p\"}}}");
}

static void
test_file_volumes(void **state)
{
    (void)state;
    char *dir = tu_tempdir("dc-vol");
    json_t *pod = parse(
        "{\"metadata\":{\"name\":\"p\",\"namespace\":\"db\",\"uid\":\"u1\",\"labels\":{\"b\":\"2\","
        "\"a\":\"x\\\"y\"}},"
        "\"spec\":{\"volumes\":["
        "{\"name\":\"scratch\",\"emptyDir\":{}},"
        "{\"name\":\"conf\",\"configMap\":{\"name\":\"c\"}},"
        "{\"name\":\"picked\",\"configMap\":{\"name\":\"c\",\"items\":[{\"key\":\"mode\",\"path\":"
        "\"sub/m\","
        "\"mode\":384}]}},"
        "{\"name\":\"sec\",\"secret\":{\"secretName\":\"s\",\"items\":[{\"key\":\"pw\",\"path\":"
        "\"password\"}]}},"
        "{\"name\":\"opt\",\"secret\":{\"secretName\":\"absent\",\"optional\":true}},"
        "{\"name\":\"info\",\"downwardAPI\":{\"items\":[{\"path\":\"labels\",\"fieldRef\":{"
        "\"fieldPath\":"
        "\"metadata.labels\"}},{\"path\":\"name\",\"fieldRef\":{\"fieldPath\":\"metadata.name\"}}]}"
        "},"
        "{\"name\":\"proj\",\"projected\":{\"sources\":[{\"serviceAccountToken\":{\"path\":"
        "\"token\"}},"
        "{\"configMap\":{\"name\":\"c\",\"items\":[{\"key\":\"mode\",\"path\":\"mode\"}]}}]}}]}}");
    json_t *r = refs();
    lb_buf err = LB_BUF_INIT;
    int rc = dc_volumes_prepare(pod, dir, r, "tok", NULL, &err);
    if (rc)
        fail_msg("prepare: %d %s", rc, err.data);
    char path[4200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/scratch", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0777); /* any container user may write an emptyDir */
    expect_file(dir, "conf/mode", "fast");
    expect_file(dir, "conf/conf.yaml", "a: 1\n");
    expect_file(dir, "picked/sub/m", "fast");
    snprintf(path, sizeof(path), "%s/picked/sub/m", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    expect_file(dir, "sec/password", "s3cr3t");
    expect_file(dir, "info/labels", "a=\"x\\\"y\"\nb=\"2\"");
    expect_file(dir, "info/name", "p");
    expect_file(dir, "proj/token", "tok");
    expect_file(dir, "proj/mode", "fast");
    lb_buf_free(&err);
    json_decref(pod);
    json_decref(r);
    tu_rmdir(dir);
}

static void
test_refusals(void **state)
{
    (void)state;
    struct {
        const char *volume;
        int rc;
        const char *msg;
    } cases[] = {
        {"{\"name\":\"v\",\"configMap\":{\"name\":\"c\",\"items\":[{\"key\":\"mode\",\"path\":\"../"
         "../etc/x\"}]}}",
         LB_EPARSE, "bad path"},
        {"{\"name\":\"v\",\"configMap\":{\"name\":\"c\",\"items\":[{\"key\":\"mode\",\"path\":\"/"
         "abs\"}]}}",
         LB_EPARSE, "bad path"},
        {"{\"name\":\"v\",\"configMap\":{\"name\":\"missing\"}}", LB_ENOTFOUND,
         "configmap \"missing\" not found"},
        {"{\"name\":\"v\",\"configMap\":{\"name\":\"c\",\"items\":[{\"key\":\"nope\",\"path\":"
         "\"n\"}]}}",
         LB_ENOTFOUND, "has no key nope"},
        {"{\"name\":\"v\",\"secret\":{\"secretName\":\"s\",\"items\":[{\"key\":\"bad\",\"path\":"
         "\"b\"}]}}",
         LB_EPARSE, NULL},
        {"{\"name\":\"../up\",\"emptyDir\":{}}", LB_EPARSE, "no usable name"},
        {"{\"name\":\"v\",\"downwardAPI\":{\"items\":[{\"path\":\"x\",\"fieldRef\":{\"fieldPath\":"
         "\"spec.nope\"}}]}}",
         LB_EUNSUPPORTED, "unsupported fieldPath"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *dir = tu_tempdir("dc-vol");
        char text[2048];
        snprintf(text, sizeof(text), "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"volumes\":[%s]}}",
                 cases[i].volume);
        json_t *pod = parse(text), *r = refs();
        lb_buf err = LB_BUF_INIT;
        int rc = dc_volumes_prepare(pod, dir, r, NULL, NULL, &err);
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d want %d (%s)", i, rc, cases[i].rc, err.data ? err.data : "");
        if (cases[i].msg && (!err.data || !strstr(err.data, cases[i].msg)))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.data ? err.data : "",
                     cases[i].msg);
        /* nothing was written outside the volume root */
        char outside[4200];
        snprintf(outside, sizeof(outside), "%s/../etc/x", dir);
        assert_int_not_equal(access(outside, F_OK), 0);
        lb_buf_free(&err);
        json_decref(pod);
        json_decref(r);
        tu_rmdir(dir);
    }
}

static void
test_service_account_dir(void **state)
{
    (void)state;
    char *dir = tu_tempdir("dc-sa");
    char ca[4200], sa[4200];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(sa, sizeof(sa), "%s/pods/u1/sa", dir);
    FILE *f = fopen(ca, "w");
    fputs("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    assert_int_equal(dc_volumes_write_sa(sa, "tok", ca, "db"), 0);
    expect_file(sa, "token", "tok");
    expect_file(sa, "namespace", "db");
    expect_file(sa, "ca.crt", "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n");
    tu_rmdir(dir);
}

/* fsGroup: the group owns the volumes and may read what the owner may
 * (a 0400 secret becomes 0440), and write an emptyDir. */
static void
test_fsgroup(void **state)
{
    (void)state;
    char *dir = tu_tempdir("dc-vol");
    json_t *pod =
        parse("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"securityContext\":{\"fsGroup\":4242},"
              "\"volumes\":[{\"name\":\"tok\",\"secret\":{\"secretName\":\"s\",\"defaultMode\":256,"
              "\"items\":[{\"key\":\"pw\",\"path\":\"pw\"}]}},"
              "{\"name\":\"scratch\",\"emptyDir\":{}}]}}");
    json_t *r = refs();
    lb_buf err = LB_BUF_INIT;
    int rc = dc_volumes_prepare(pod, dir, r, NULL, NULL, &err);
    if (rc)
        fail_msg("prepare: %d %s", rc, err.data);
    char path[4200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/tok/pw", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_gid, 4242);
    assert_int_equal(st.st_mode & 0777, 0440);
    snprintf(path, sizeof(path), "%s/scratch", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_gid, 4242);
    assert_true(st.st_mode & S_IWGRP);
    assert_true(st.st_mode & S_ISGID);
    lb_buf_free(&err);
    json_decref(pod);
    json_decref(r);
    tu_rmdir(dir);
}

static void
test_refs_needed(void **state)
{
    (void)state;
    json_t *pod =
        parse("{\"spec\":{\"initContainers\":[{\"envFrom\":[{\"secretRef\":{\"name\":\"s1\"}}]}],"
              "\"containers\":[{\"env\":[{\"name\":\"A\",\"valueFrom\":{\"configMapKeyRef\":{"
              "\"name\":\"c1\",\"key\":\"k\"}}}]}],"
              "\"volumes\":[{\"name\":\"v\",\"secret\":{\"secretName\":\"s2\"}},{\"name\":\"p\","
              "\"projected\":{\"sources\":"
              "[{\"configMap\":{\"name\":\"c2\"}}]}}]}}");
    json_t *need = dc_volumes_refs_needed(pod);
    assert_int_equal(json_object_size(need), 4);
    assert_non_null(json_object_get(need, "secret/s1"));
    assert_non_null(json_object_get(need, "secret/s2"));
    assert_non_null(json_object_get(need, "configmap/c1"));
    assert_non_null(json_object_get(need, "configmap/c2"));
    json_decref(need);
    json_decref(pod);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_volumes),        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_service_account_dir), cmocka_unit_test(test_fsgroup),
        cmocka_unit_test(test_refs_needed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
