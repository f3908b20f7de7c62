/*
 * kclient.c: a minimal Kubernetes API client over libcurl.
 *
 * Deliberately small: the node agent and the controllers poll with list and
 * act with create/update/patch/delete, level-triggered; a lost request is
 * repeated by the next pass of the loop, so this client never retries.
 */
#include "kclient.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"

struct dc_kclient {
    CURL *curl;
    char *base_url;
    char *ca_file;
    char *auth;
    char error[CURL_ERROR_SIZE + 256];
};

static size_t
on_body(char *ptr, size_t size, size_t n, void *arg)
{
    lb_buf *b = arg;
    return lb_buf_append(b, ptr, size * n) == 0 ? size * n : 0;
}

int
dc_kclient_new(const char *base_url, const char *ca_file, const char *token, dc_kclient **out)
{
    dc_kclient *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->curl = curl_easy_init();
    c->base_url = strdup(base_url);
    c->ca_file = ca_file ? strdup(ca_file) : NULL;
    if (token && asprintf(&c->auth, "Authorization: Bearer %s", token) < 0)
        c->auth = NULL;
    if (!c->curl || !c->base_url || (ca_file && !c->ca_file) || (token && !c->auth)) {
        int rc = c->curl ? -ENOMEM : LB_EHTTP;
        dc_kclient_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void
dc_kclient_free(dc_kclient *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->base_url);
    free(c->ca_file);
    free(c->auth);
    free(c);
}

const char *
dc_kclient_error(const dc_kclient *c)
{
    return c->error;
}

int
dc_kclient_do(dc_kclient *c, const char *method, const char *path, json_t *body,
              const char *content_type, long *status, json_t **resp)
{
    char url[4096], ctype[160];
    char *payload = NULL;
    lb_buf answer = LB_BUF_INIT;
    struct curl_slist *headers = NULL;
    snprintf(url, sizeof(url), "%s%s", c->base_url, path);
    snprintf(ctype, sizeof(ctype), "Content-Type: %s",
             content_type ? content_type : "application/json");
    if (c->auth)
        headers = curl_slist_append(headers, c->auth);
    headers = curl_slist_append(headers, "Accept: application/json");
    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        headers = curl_slist_append(headers, ctype);
    }
    CURL *h = c->curl;
    curl_easy_reset(h);
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
    if (c->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (payload) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(headers);
    free(payload);
    if (resp)
        *resp = NULL;
    if (cc != CURLE_OK) {
        snprintf(c->error, sizeof(c->error), "%s %s: %s", method, path,
                 curl_err[0] ? curl_err : curl_easy_strerror(cc));
        lb_buf_free(&answer);
        return LB_EHTTP;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    if (resp && answer.len > 0)
        *resp = json_loadb(answer.data, answer.len, 0, NULL);
    if (*status >= 300) {
        snprintf(c->error, sizeof(c->error), "%s %s: status %ld: %.300s", method, path, *status,
                 answer.data ? answer.data : "");
    }
    lb_buf_free(&answer);
    return 0;
}

int
dc_kclient_list(dc_kclient *c, const char *path, json_t **items)
{
    long status = 0;
    json_t *resp = NULL;
    int rc = dc_kclient_do(c, "GET", path, NULL, NULL, &status, &resp);
    if (rc)
        return rc;
    json_t *it = json_object_get(resp, "items");
    if (status != 200 || !(json_is_array(it) || json_is_null(it))) {
        json_decref(resp);
        if (status == 200)
            snprintf(c->error, sizeof(c->error), "GET %s: answer has no items", path);
        return LB_EPROTO;
    }
    *items = json_is_array(it) ? json_incref(it) : json_array();
    json_decref(resp);
    return 0;
}
