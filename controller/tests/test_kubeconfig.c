/* test_kubeconfig.c: kubeconfig files (contexts, CA data or file, tokens,
 * client certificates) and in-cluster configuration, and the refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "fileio.h"
#include "kubeconfig.h"
#include "testutil.h"

/* "CA\n" in base64 */
#define CA64 "Q0EK"

static int
parse(const char *text, ctl_kubeconfig *kc, char *err, size_t cap)
{
    return ctl_kubeconfig_parse(text, strlen(text), NULL, kc, err, cap);
}

static void
test_token_and_ca_data(void **state)
{
    (void)state;
    const char *y = "apiVersion: v1\n"
                    "kind: Config\n"
                    "clusters:\n"
                    "- name: other\n"
                    "  cluster: {server: https://10.0.0.1:1}\n"
                    "- name: dev\n"
                    "  cluster:\n"
                    "    server: https://127.0.0.1:6443/\n"
                    "    certificate-authority-data: " CA64 "\n"
                    "users:\n"
                    "- name: admin\n"
                    "  user: {token: abc123}\n"
                    "contexts:\n"
                    "- name: dev\n"
                    "  context: {cluster: dev, user: admin, namespace: db}\n"
                    "current-context: dev\n";
    ctl_kubeconfig kc;
    char err[256] = "";
    assert_int_equal(parse(y, &kc, err, sizeof(err)), 0);
    assert_string_equal(kc.server, "https://127.0.0.1:6443");
    assert_int_equal(kc.ca_len, 3);
    assert_memory_equal(kc.ca_pem, "CA\n", 3);
    assert_string_equal(kc.token, "abc123");
    assert_null(kc.token_file);
    assert_string_equal(kc.namespace, "db");
    ctl_kubeconfig_free(&kc);
}

static void
test_files_relative_to_kubeconfig(void **state)
{
    (void)state;
    char *dir = tu_tempdir("ctl-kc");
    char path[512];
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    assert_int_equal(lb_write_file_atomic(path, "PEMCA", 5), 0);
    snprintf(path, sizeof(path), "%s/c.crt", dir);
    assert_int_equal(lb_write_file_atomic(path, "CERT", 4), 0);
    snprintf(path, sizeof(path), "%s/c.key", dir);
    assert_int_equal(lb_write_file_atomic(path, "KEY", 3), 0);
    const char *y = "clusters:\n"
                    "- name: c\n"
                    "  cluster: {server: https://h:1, certificate-authority: ca.pem}\n"
                    "users:\n"
                    "- name: u\n"
                    "  user: {client-certificate: c.crt, client-key: c.key, tokenFile: tok}\n"
                    "contexts:\n"
                    "- {name: x, context: {cluster: c, user: u}}\n"
                    "current-context: x\n";
    snprintf(path, sizeof(path), "%s/config", dir);
    assert_int_equal(lb_write_file_atomic(path, y, strlen(y)), 0);
    ctl_kubeconfig kc;
    char err[256] = "";
    assert_int_equal(ctl_kubeconfig_load(path, &kc, err, sizeof(err)), 0);
    assert_string_equal(kc.ca_pem, "PEMCA");
    assert_string_equal(kc.client_cert, "CERT");
    assert_string_equal(kc.client_key, "KEY");
    char want[600];
    snprintf(want, sizeof(want), "%s/tok", dir);
    assert_string_equal(kc.token_file, want);
    assert_null(kc.namespace);
    ctl_kubeconfig_free(&kc);
    tu_rmdir(dir);
}

static void
test_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        const char *says;
    } cases[] = {
        {"", "not a mapping"},
        {"[1, 2]", "not a mapping"},
        {"a: [", "kubeconfig"},
        {"clusters: []\n", "no current-context"},
        {"current-context: x\n", "\"x\" is not defined"},
        {"current-context: x\ncontexts:\n- {name: x, context: {cluster: nope}}\n",
         "names cluster \"nope\""},
        {"current-context: x\ncontexts:\n- {name: x, context: {cluster: c}}\n"
         "clusters:\n- {name: c, cluster: {server: ftp://h}}\n",
         "no http(s):// server"},
        {"current-context: x\ncontexts:\n- {name: x, context: {cluster: c, user: u}}\n"
         "clusters:\n- {name: c, cluster: {server: https://h}}\n",
         "names user \"u\""},
        {"current-context: x\ncontexts:\n- {name: x, context: {cluster: c, user: u}}\n"
         "clusters:\n- {name: c, cluster: {server: https://h}}\n"
         "users:\n- {name: u, user: {exec: {command: aws}}}\n",
         "exec or auth-provider"},
        {"current-context: x\ncontexts:\n- {name: x, context: {cluster: c}}\n"
         "clusters:\n- {name: c, cluster: {server: https://h, certificate-authority-data: "
         "'***'}}\n",
         "not valid base64"},
        {"current-context: x\ncontexts:\n- {name: x, context: {cluster: c}}\n"
         "clusters:\n- {name: c, cluster: {server: https://h, certificate-authority-data: " CA64
         ", insecure-skip-tls-verify: true}}\n",
         "both a certificate authority"},
        {"current-context: x\ncontexts:\n- {name: x, context: {cluster: c, user: u}}\n"
         "clusters:\n- {name: c, cluster: {server: https://h}}\n"
         "users:\n- {name: u, user: {client-certificate-data: " CA64 "}}\n",
         "needs both a client certificate and its key"},
        {"current-context: x\ncontexts:\n- {name: x, context: {cluster: c}}\n"
         "clusters:\n- {name: c, cluster: {server: https://h, certificate-authority: "
         "/nonexistent/ca}}\n",
         "could not read"},
        {"current-context: x\ncurrent-context: y\n", "given twice"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ctl_kubeconfig kc;
        char err[256] = "";
        int rc = parse(cases[i].yaml, &kc, err, sizeof(err));
        assert_int_not_equal(rc, 0);
        if (!strstr(err, cases[i].says))
            fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, cases[i].says);
        ctl_kubeconfig_free(&kc);
    }
}

static void
test_in_cluster(void **state)
{
    (void)state;
    char *dir = tu_tempdir("ctl-sa");
    char path[512];
    ctl_kubeconfig kc;
    char err[256] = "";
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    assert_int_equal(ctl_kubeconfig_in_cluster(dir, &kc, err, sizeof(err)), LB_EBADCONFIG);
    assert_non_null(strstr(err, "KUBERNETES_SERVICE_HOST"));
    ctl_kubeconfig_free(&kc);
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "99999", 1);
    assert_int_equal(ctl_kubeconfig_in_cluster(dir, &kc, err, sizeof(err)), LB_EBADCONFIG);
    ctl_kubeconfig_free(&kc);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    /* no ca.crt yet */
    assert_int_equal(ctl_kubeconfig_in_cluster(dir, &kc, err, sizeof(err)), LB_EBADCONFIG);
    ctl_kubeconfig_free(&kc);
    snprintf(path, sizeof(path), "%s/ca.crt", dir);
    lb_write_file_atomic(path, "CA", 2);
    snprintf(path, sizeof(path), "%s/token", dir);
    lb_write_file_atomic(path, "tok\n", 4);
    snprintf(path, sizeof(path), "%s/namespace", dir);
    lb_write_file_atomic(path, "lakebase\n", 9);
    assert_int_equal(ctl_kubeconfig_in_cluster(dir, &kc, err, sizeof(err)), 0);
    assert_string_equal(kc.server, "https://[fd00::1]:443");
    assert_string_equal(kc.namespace, "lakebase");
    snprintf(path, sizeof(path), "%s/token", dir);
    assert_string_equal(kc.token_file, path);
    assert_null(kc.token);
    ctl_kubeconfig_free(&kc);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    tu_rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_and_ca_data),
        cmocka_unit_test(test_files_relative_to_kubeconfig),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_in_cluster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
