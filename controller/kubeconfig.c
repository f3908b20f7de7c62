/*
 * kubeconfig.c: kubeconfig files and in-cluster configuration (see
 * kubeconfig.h).
 *
 * The YAML is read with common's reader (lb_yaml_to_json: one document, no
 * aliases, duplicate keys refused) and then walked as JSON. Everything
 * refused says what and where: "kubeconfig: context \"x\" names cluster
 * \"y\", which is not defined".
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "errors.h"
#include "fileio.h"
#include "kubeconfig.h"

void
ctl_kubeconfig_free(ctl_kubeconfig *kc)
{
    if (!kc)
        return;
    free(kc->server);
    free(kc->ca_pem);
    free(kc->token);
    free(kc->token_file);
    free(kc->client_cert);
    free(kc->client_key);
    free(kc->namespace);
    memset(kc, 0, sizeof(*kc));
}

static int
fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return LB_EBADCONFIG;
}

/* The entry named name in a kubeconfig list ("clusters", ...), its inner
 * object (the "cluster" key), or NULL. */
static json_t *
named(json_t *root, const char *list, const char *inner, const char *name)
{
    json_t *arr = json_object_get(root, list);
    size_t i;
    json_t *e;
    if (!json_is_array(arr))
        return NULL;
    json_array_foreach(arr, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (n && strcmp(n, name) == 0) {
            json_t *o = json_object_get(e, inner);
            return json_is_object(o) ? o : NULL;
        }
    }
    return NULL;
}

/* base64 (standard alphabet, padded) into a malloc'd NUL-terminated buffer. */
static int
b64decode(const char *in, char **out, size_t *outlen)
{
    size_t n = strlen(in);
    if (n == 0 || n % 4 != 0)
        return LB_EPARSE;
    unsigned char *buf = malloc(n / 4 * 3 + 1);
    if (!buf)
        return -ENOMEM;
    int len = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n);
    if (len < 0) {
        free(buf);
        return LB_EPARSE;
    }
    /* EVP_DecodeBlock counts padding as zero bytes. */
    if (n >= 1 && in[n - 1] == '=')
        len--;
    if (n >= 2 && in[n - 2] == '=')
        len--;
    buf[len] = '\0';
    *out = (char *)buf;
    if (outlen)
        *outlen = (size_t)len;
    return 0;
}

static int
read_path(const char *base_dir, const char *path, char **out, size_t *outlen, char *err, size_t cap)
{
    char full[4096];
    if (path[0] == '/' || !base_dir)
        snprintf(full, sizeof(full), "%s", path);
    else
        snprintf(full, sizeof(full), "%s/%s", base_dir, path);
    lb_buf b = LB_BUF_INIT;
    int rc = lb_read_file(full, &b);
    if (rc) {
        lb_buf_free(&b);
        snprintf(err, cap, "kubeconfig: could not read \"%s\": %s", full, lb_strerror(rc));
        return rc;
    }
    if (lb_buf_append(&b, "", 1) != 0) {
        lb_buf_free(&b);
        return -ENOMEM;
    }
    *out = (char *)b.data;
    if (outlen)
        *outlen = b.len - 1;
    return 0;
}

/* "key-data" (base64) or "key" (a file) of obj into *out; absent: NULL. */
static int
data_or_file(json_t *obj, const char *key, const char *base_dir, char **out, size_t *outlen,
             char *err, size_t cap)
{
    char data_key[64];
    snprintf(data_key, sizeof(data_key), "%s-data", key);
    json_t *d = json_object_get(obj, data_key);
    json_t *f = json_object_get(obj, key);
    if (d && !json_is_string(d))
        return fail(err, cap, "kubeconfig: \"%s\" must be a string", data_key);
    if (f && !json_is_string(f))
        return fail(err, cap, "kubeconfig: \"%s\" must be a string", key);
    if (d) {
        int rc = b64decode(json_string_value(d), out, outlen);
        if (rc == LB_EPARSE)
            return fail(err, cap, "kubeconfig: \"%s\" is not valid base64", data_key);
        return rc;
    }
    if (f)
        return read_path(base_dir, json_string_value(f), out, outlen, err, cap);
    return 0;
}

static const char *
str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

int
ctl_kubeconfig_parse(const char *text, size_t len, const char *base_dir, ctl_kubeconfig *out,
                     char *err, size_t cap)
{
    memset(out, 0, sizeof(*out));
    json_t *root = NULL;
    char yerr[256];
    int rc = lb_yaml_to_json(text, len, &root, yerr, sizeof(yerr));
    if (rc == -ENOMEM)
        return rc;
    if (rc)
        return fail(err, cap, "kubeconfig: %s", yerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(err, cap, "kubeconfig: not a mapping");
    }
    rc = 0;
    const char *ctx_name = str(root, "current-context");
    json_t *ctx = ctx_name ? named(root, "contexts", "context", ctx_name) : NULL;
    json_t *cluster = NULL, *user = NULL;
    if (!ctx_name || !*ctx_name) {
        rc = fail(err, cap, "kubeconfig: no current-context");
        goto out;
    }
    if (!ctx) {
        rc = fail(err, cap, "kubeconfig: current-context \"%s\" is not defined", ctx_name);
        goto out;
    }
    const char *cluster_name = str(ctx, "cluster");
    const char *user_name = str(ctx, "user");
    if (!cluster_name || !(cluster = named(root, "clusters", "cluster", cluster_name))) {
        rc = fail(err, cap, "kubeconfig: context \"%s\" names cluster \"%s\", which is not defined",
                  ctx_name, cluster_name ? cluster_name : "");
        goto out;
    }
    if (user_name && *user_name && !(user = named(root, "users", "user", user_name))) {
        rc = fail(err, cap, "kubeconfig: context \"%s\" names user \"%s\", which is not defined",
                  ctx_name, user_name);
        goto out;
    }
    const char *server = str(cluster, "server");
    if (!server || (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0) ||
        strlen(server) < 9) {
        rc = fail(err, cap, "kubeconfig: cluster \"%s\" has no http(s):// server", cluster_name);
        goto out;
    }
    out->server = strdup(server);
    if (!out->server) {
        rc = -ENOMEM;
        goto out;
    }
    size_t sl = strlen(out->server);
    while (sl > 0 && out->server[sl - 1] == '/')
        out->server[--sl] = '\0';
    if ((rc = data_or_file(cluster, "certificate-authority", base_dir, &out->ca_pem, &out->ca_len,
                           err, cap)))
        goto out;
    json_t *insecure = json_object_get(cluster, "insecure-skip-tls-verify");
    out->insecure = json_is_true(insecure);
    if (out->insecure && out->ca_pem) {
        rc = fail(err, cap,
                  "kubeconfig: cluster \"%s\" sets both a certificate authority and "
                  "insecure-skip-tls-verify",
                  cluster_name);
        goto out;
    }
    if (user) {
        if (json_object_get(user, "exec") || json_object_get(user, "auth-provider")) {
            rc = fail(err, cap,
                      "kubeconfig: user \"%s\" uses exec or auth-provider credentials, which "
                      "lakebase-controller does not run; use a token or a client certificate",
                      user_name);
            goto out;
        }
        const char *token = str(user, "token");
        const char *token_file = str(user, "tokenFile");
        if (token && !(out->token = strdup(token))) {
            rc = -ENOMEM;
            goto out;
        }
        if (token_file && !token) {
            char full[4096];
            if (token_file[0] == '/' || !base_dir)
                snprintf(full, sizeof(full), "%s", token_file);
            else
                snprintf(full, sizeof(full), "%s/%s", base_dir, token_file);
            if (!(out->token_file = strdup(full))) {
                rc = -ENOMEM;
                goto out;
            }
        }
        if ((rc = data_or_file(user, "client-certificate", base_dir, &out->client_cert, NULL, err,
                               cap)) ||
            (rc = data_or_file(user, "client-key", base_dir, &out->client_key, NULL, err, cap)))
            goto out;
        if (!out->client_cert != !out->client_key) {
            rc = fail(err, cap,
                      "kubeconfig: user \"%s\" needs both a client certificate and its key",
                      user_name);
            goto out;
        }
    }
    const char *ns = str(ctx, "namespace");
    if (ns && *ns && !(out->namespace = strdup(ns)))
        rc = -ENOMEM;
out:
    json_decref(root);
    return rc;
}

int
ctl_kubeconfig_load(const char *path, ctl_kubeconfig *out, char *err, size_t cap)
{
    memset(out, 0, sizeof(*out));
    char *text = NULL;
    size_t len = 0;
    int rc = read_path(NULL, path, &text, &len, err, cap);
    if (rc)
        return rc;
    char dir[4096];
    if (lb_dirname(path, dir, sizeof(dir)) != 0)
        snprintf(dir, sizeof(dir), ".");
    rc = ctl_kubeconfig_parse(text, len, dir, out, err, cap);
    free(text);
    return rc;
}

int
ctl_kubeconfig_in_cluster(const char *sa_dir, ctl_kubeconfig *out, char *err, size_t cap)
{
    memset(out, 0, sizeof(*out));
    if (!sa_dir)
        sa_dir = CTL_SA_DIR;
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !*host || !port || !*port)
        return fail(err, cap,
                    "not running in a cluster: KUBERNETES_SERVICE_HOST and "
                    "KUBERNETES_SERVICE_PORT are not set (give --kubeconfig)");
    char *end;
    long p = strtol(port, &end, 10);
    if (*end || p < 1 || p > 65535)
        return fail(err, cap, "KUBERNETES_SERVICE_PORT \"%s\" is not a port", port);
    char server[512];
    if (strchr(host, ':'))
        snprintf(server, sizeof(server), "https://[%s]:%ld", host, p);
    else
        snprintf(server, sizeof(server), "https://%s:%ld", host, p);
    char path[4096];
    int rc;
    if (!(out->server = strdup(server)))
        return -ENOMEM;
    snprintf(path, sizeof(path), "%s/ca.crt", sa_dir);
    if ((rc = read_path(NULL, path, &out->ca_pem, &out->ca_len, err, cap)))
        return rc == -ENOMEM ? rc : LB_EBADCONFIG;
    snprintf(path, sizeof(path), "%s/token", sa_dir);
    char *probe = NULL;
    if ((rc = read_path(NULL, path, &probe, NULL, err, cap)))
        return rc == -ENOMEM ? rc : LB_EBADCONFIG;
    free(probe);
    if (!(out->token_file = strdup(path)))
        return -ENOMEM;
    snprintf(path, sizeof(path), "%s/namespace", sa_dir);
    char *ns = NULL;
    if (read_path(NULL, path, &ns, NULL, err, cap) == 0) {
        size_t n = strlen(ns);
        while (n > 0 && (ns[n - 1] == '\n' || ns[n - 1] == ' '))
            ns[--n] = '\0';
        out->namespace = ns;
    }
    err[0] = '\0';
    return 0;
}
