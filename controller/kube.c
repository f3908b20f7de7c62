/*
 * kube.c: the Kubernetes REST client (see kube.h).
 *
 * One CURL easy handle per client, so consecutive requests reuse one TLS
 * connection. The CA and client certificate go to libcurl as in-memory
 * blobs: nothing is written to disk. No header, body or token is ever
 * logged: request bodies carry Secrets.
 *
 * A watch is one long GET whose body is a stream of JSON objects, one per
 * line ({"type": ..., "object": ...}); lines are split here and parsed one
 * at a time, so a stream of any length uses memory bounded by its longest
 * event (capped at CTL_WATCH_LINE_MAX).
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"
#include "fileio.h"
#include "kube.h"

#define CTL_WATCH_LINE_MAX (64u << 20)
#define CTL_RESPONSE_MAX (256u << 20)

static atomic_bool aborted;

struct ctl_kube {
    CURL *curl;
    ctl_kubeconfig kc; /* owned copies */
    char error[1024];
    bool immune; /* ignores ctl_kube_abort_all (the Lease's release at shutdown) */
};

void
ctl_kube_set_immune(ctl_kube *k)
{
    k->immune = true;
}

static bool
is_aborted(const ctl_kube *k)
{
    return !k->immune && atomic_load(&aborted);
}

void
ctl_kube_abort_all(void)
{
    atomic_store(&aborted, true);
}

bool
ctl_kube_aborted(void)
{
    return atomic_load(&aborted);
}

static void
global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *
dup_or_null(const char *s, bool *fail)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *fail = true;
    return d;
}

int
ctl_kube_new(const ctl_kubeconfig *kc, ctl_kube **out)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init);
    ctl_kube *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    bool fail = false;
    k->kc.server = dup_or_null(kc->server, &fail);
    if (kc->ca_pem) {
        k->kc.ca_pem = malloc(kc->ca_len + 1);
        if (k->kc.ca_pem) {
            memcpy(k->kc.ca_pem, kc->ca_pem, kc->ca_len);
            k->kc.ca_pem[kc->ca_len] = '\0';
            k->kc.ca_len = kc->ca_len;
        } else {
            fail = true;
        }
    }
    k->kc.insecure = kc->insecure;
    k->kc.token = dup_or_null(kc->token, &fail);
    k->kc.token_file = dup_or_null(kc->token_file, &fail);
    k->kc.client_cert = dup_or_null(kc->client_cert, &fail);
    k->kc.client_key = dup_or_null(kc->client_key, &fail);
    k->kc.namespace = dup_or_null(kc->namespace, &fail);
    if (fail) {
        ctl_kube_free(k);
        return -ENOMEM;
    }
    k->curl = curl_easy_init();
    if (!k->curl) {
        ctl_kube_free(k);
        return LB_EHTTP;
    }
    *out = k;
    return 0;
}

void
ctl_kube_free(ctl_kube *k)
{
    if (!k)
        return;
    if (k->curl)
        curl_easy_cleanup(k->curl);
    if (k->kc.token)
        memset(k->kc.token, 0, strlen(k->kc.token));
    ctl_kubeconfig_free(&k->kc);
    free(k);
}

const char *
ctl_kube_error(const ctl_kube *k)
{
    return k->error;
}

void
ctl_kube_path(char *buf, size_t cap, const char *group_version, const char *ns,
              const char *resource, const char *name, const char *sub)
{
    int n =
        snprintf(buf, cap, "%s%s", strchr(group_version, '/') ? "/apis/" : "/api/", group_version);
    if (ns && n >= 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, "/namespaces/%s", ns);
    if (n >= 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, "/%s", resource);
    if (name && n >= 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, "/%s", name);
    if (sub && n >= 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, "/%s", sub);
}

/* ---- the transfer ---- */

typedef struct transfer {
    ctl_kube *k;
    lb_buf body;   /* plain requests: the whole answer */
    bool watching; /* split lines to on_event instead */
    long status;   /* known once the first body byte arrives */
    ctl_watch_fn on_event;
    void *arg;
    int cb_rc; /* what on_event returned */
} transfer;

static int
deliver_line(transfer *t, const char *line, size_t n)
{
    if (n == 0)
        return 0;
    json_error_t jerr;
    json_t *ev = json_loadb(line, n, 0, &jerr);
    if (!ev) {
        snprintf(t->k->error, sizeof(t->k->error), "malformed watch event: %s", jerr.text);
        return LB_EPROTO;
    }
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    int rc = 0;
    if (!type || !json_is_object(obj)) {
        snprintf(t->k->error, sizeof(t->k->error), "watch event without type or object");
        rc = LB_EPROTO;
    } else {
        rc = t->on_event(type, obj, t->arg);
    }
    json_decref(ev);
    return rc;
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    transfer *t = arg;
    size_t n = size * nmemb;
    if (is_aborted(t->k))
        return 0;
    if (t->status == 0)
        curl_easy_getinfo(t->k->curl, CURLINFO_RESPONSE_CODE, &t->status);
    if (lb_buf_append(&t->body, ptr, n) != 0)
        return 0;
    if (!t->watching || t->status / 100 != 2) {
        return t->body.len > CTL_RESPONSE_MAX ? 0 : n;
    }
    /* deliver every complete line */
    size_t start = 0;
    for (size_t i = 0; i < t->body.len; i++) {
        if (t->body.data[i] != '\n')
            continue;
        int rc = deliver_line(t, t->body.data + start, i - start);
        start = i + 1;
        if (rc) {
            t->cb_rc = rc;
            return 0;
        }
    }
    lb_buf_consume(&t->body, start);
    if (t->body.len > CTL_WATCH_LINE_MAX) {
        snprintf(t->k->error, sizeof(t->k->error), "watch event over %u bytes", CTL_WATCH_LINE_MAX);
        t->cb_rc = LB_ETOOBIG;
        return 0;
    }
    return n;
}

static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return is_aborted(arg) ? 1 : 0;
}

/* The code for a non-2xx status, with the Status's reason. */
static int
code_for(long status, const json_t *resp)
{
    const char *reason = json_string_value(json_object_get(resp, "reason"));
    switch (status) {
    case 404:
        return LB_ENOTFOUND;
    case 409:
        return reason && strcmp(reason, "AlreadyExists") == 0 ? LB_EEXIST : LB_ECONFLICT;
    case 401:
    case 403:
        return LB_EFORBIDDEN;
    case 400:
    case 422:
        return -EINVAL;
    case 410:
        return LB_ETIMEOUT;
    default:
        return LB_EPROTO;
    }
}

static int
perform(ctl_kube *k, const char *method, const char *path, const json_t *body,
        const char *content_type, transfer *t)
{
    CURL *h = k->curl;
    k->error[0] = '\0';
    if (is_aborted(k)) {
        snprintf(k->error, sizeof(k->error), "shutting down");
        return -ECANCELED;
    }
    char url[8192];
    if ((size_t)snprintf(url, sizeof(url), "%s%s", k->kc.server, path) >= sizeof(url))
        return -EINVAL;
    char *payload = NULL;
    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        if (!payload)
            return -ENOMEM;
    }
    char auth[8192] = "";
    if (k->kc.token_file) {
        lb_buf tok = LB_BUF_INIT;
        int rc = lb_read_file(k->kc.token_file, &tok);
        if (rc == 0) {
            size_t n = tok.len;
            while (n > 0 &&
                   (tok.data[n - 1] == '\n' || tok.data[n - 1] == ' ' || tok.data[n - 1] == '\r'))
                n--;
            if (n + 32 < sizeof(auth))
                snprintf(auth, sizeof(auth), "Authorization: Bearer %.*s", (int)n, tok.data);
            memset(tok.data, 0, tok.len);
        }
        lb_buf_free(&tok);
        if (rc) {
            free(payload);
            snprintf(k->error, sizeof(k->error), "could not read token file \"%s\": %s",
                     k->kc.token_file, lb_strerror(rc));
            return LB_EFORBIDDEN;
        }
    } else if (k->kc.token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", k->kc.token);
    }
    struct curl_slist *hdrs = NULL;
    char ct[128];
    snprintf(ct, sizeof(ct), "Content-Type: %s", content_type ? content_type : "application/json");
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (body)
        hdrs = curl_slist_append(hdrs, ct);
    if (auth[0])
        hdrs = curl_slist_append(hdrs, auth);
    memset(auth, 0, sizeof(auth));

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "lakebase-controller");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, t->watching ? 0L : 60000L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, k);
    if (t->watching) {
        /* a stalled watch (no byte, not even a bookmark, for 5 min) is dead */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 300L);
    }
    if (k->kc.ca_pem) {
        struct curl_blob blob = {
            .data = k->kc.ca_pem, .len = k->kc.ca_len, .flags = CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (k->kc.insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (k->kc.client_cert) {
        struct curl_blob cert = {
            .data = k->kc.client_cert, .len = strlen(k->kc.client_cert), .flags = CURL_BLOB_COPY};
        struct curl_blob key = {
            .data = k->kc.client_key, .len = strlen(k->kc.client_key), .flags = CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cert);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (payload) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(payload));
        }
    }
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    if (payload) {
        memset(payload, 0, strlen(payload));
        free(payload);
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &t->status);
    if (t->cb_rc)
        return t->cb_rc;
    if (is_aborted(k)) {
        snprintf(k->error, sizeof(k->error), "shutting down");
        return -ECANCELED;
    }
    if (cc != CURLE_OK) {
        snprintf(k->error, sizeof(k->error), "%s %s: %s", method, path, curl_easy_strerror(cc));
        return cc == CURLE_OPERATION_TIMEDOUT && t->watching ? 0 : LB_EHTTP;
    }
    return 0;
}

int
ctl_kube_do(ctl_kube *k, const char *method, const char *path, const json_t *body,
            const char *content_type, long *status, json_t **resp)
{
    transfer t = {.k = k};
    if (resp)
        *resp = NULL;
    int rc = perform(k, method, path, body, content_type, &t);
    if (status)
        *status = t.status;
    if (rc) {
        lb_buf_free(&t.body);
        return rc;
    }
    json_t *j = t.body.len ? json_loadb(t.body.data, t.body.len, 0, NULL) : NULL;
    lb_buf_free(&t.body);
    if (t.status / 100 != 2) {
        const char *msg = json_string_value(json_object_get(j, "message"));
        snprintf(k->error, sizeof(k->error), "%s %s: %ld %s", method, path, t.status,
                 msg ? msg : "");
        rc = code_for(t.status, j);
    }
    if (resp)
        *resp = j;
    else
        json_decref(j);
    return rc;
}

static int
keep_on_success(int rc, json_t *resp, json_t **out)
{
    if (out && rc == 0)
        *out = resp;
    else
        json_decref(resp);
    if (out && rc)
        *out = NULL;
    return rc;
}

int
ctl_kube_get(ctl_kube *k, const char *path, json_t **obj)
{
    json_t *resp = NULL;
    int rc = ctl_kube_do(k, "GET", path, NULL, NULL, NULL, &resp);
    return keep_on_success(rc, resp, obj);
}

int
ctl_kube_create(ctl_kube *k, const char *collection, const json_t *obj, json_t **created)
{
    json_t *resp = NULL;
    int rc = ctl_kube_do(k, "POST", collection, obj, NULL, NULL, &resp);
    return keep_on_success(rc, resp, created);
}

int
ctl_kube_update(ctl_kube *k, const char *path, const json_t *obj, json_t **updated)
{
    json_t *resp = NULL;
    int rc = ctl_kube_do(k, "PUT", path, obj, NULL, NULL, &resp);
    return keep_on_success(rc, resp, updated);
}

int
ctl_kube_merge_patch(ctl_kube *k, const char *path, const json_t *patch, json_t **patched)
{
    json_t *resp = NULL;
    int rc = ctl_kube_do(k, "PATCH", path, patch, "application/merge-patch+json", NULL, &resp);
    return keep_on_success(rc, resp, patched);
}

int
ctl_kube_delete(ctl_kube *k, const char *path)
{
    json_t *opts = json_pack("{s:s, s:s, s:s}", "kind", "DeleteOptions", "apiVersion", "v1",
                             "propagationPolicy", "Background");
    if (!opts)
        return -ENOMEM;
    int rc = ctl_kube_do(k, "DELETE", path, opts, NULL, NULL, NULL);
    json_decref(opts);
    return rc == LB_ENOTFOUND ? 0 : rc;
}

int
ctl_kube_watch(ctl_kube *k, const char *path, ctl_watch_fn on_event, void *arg)
{
    transfer t = {.k = k, .watching = true, .on_event = on_event, .arg = arg};
    int rc = perform(k, "GET", path, NULL, NULL, &t);
    if (rc == 0 && t.status / 100 != 2) {
        json_t *j = json_loadb(t.body.data ? t.body.data : "", t.body.len, 0, NULL);
        const char *msg = json_string_value(json_object_get(j, "message"));
        snprintf(k->error, sizeof(k->error), "watch %s: %ld %s", path, t.status, msg ? msg : "");
        rc = code_for(t.status, j);
        json_decref(j);
    } else if (rc == 0 && t.body.len) {
        /* a last event without its newline */
        rc = deliver_line(&t, t.body.data, t.body.len);
    }
    lb_buf_free(&t.body);
    return rc;
}
