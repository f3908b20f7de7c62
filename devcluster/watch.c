/*
 * watch.c: GET ...?watch=true, served from the store's event window.
 *
 * A watch streams one JSON event per line ({"type": ..., "object": ...}),
 * chunked, as the real API server does over HTTP/1.1:
 *   - resourceVersion unset or "0": ADDED for every current object, then
 *     the changes after them;
 *   - resourceVersion N: the changes after N, or one ERROR event with a
 *     410 Expired Status if N is older than the window (the client relists);
 *   - allowWatchBookmarks: a BOOKMARK carrying the current resourceVersion
 *     every bookmark interval;
 *   - sendInitialEvents=true: the ADDED events, then a BOOKMARK annotated
 *     k8s.io/initial-events-end (the watch-list protocol);
 *   - timeoutSeconds: the stream ends cleanly after that long;
 *   - label and field selectors: an object that stops matching is sent as
 *     DELETED, one that starts matching as ADDED;
 *   - Accept with as=Table: each object as a one-row Table.
 *
 * The caller holds the store lock; the watch releases it while it sends
 * and waits, and takes it again before returning.
 */
#include "api.h"
#include "log.h"
#include "selector.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 128

typedef struct watcher {
    dc_ctx *c;
    dc_resource res; /* a copy: the registry may change while we stream */
    char ns[256];
    bool all_namespaces;
    dc_selector *labels;
    dc_selector *fields;
    bool table;
    bool table_headers_sent;
    json_t *matching; /* names (ns/name) known to match, for selector transitions */
    bool resumed;     /* started from a resourceVersion: matching is incomplete */
} watcher;

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
send_event(watcher *w, const char *type, json_t *obj)
{
    json_t *payload;
    if (w->table && strcmp(type, "ERROR") != 0 && strcmp(type, "BOOKMARK") != 0) {
        const char *rv = dc_api_meta_str(obj, "resourceVersion");
        payload = dc_table_build(&w->res, &obj, 1, rv ? rv : "", NULL, !w->table_headers_sent);
        w->table_headers_sent = true;
    } else {
        payload = json_incref(obj);
    }
    json_t *ev = json_pack("{s:s, s:o}", "type", type, "object", payload);
    char *text = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    if (!text)
        return -ENOMEM;
    size_t n = strlen(text);
    text[n] = '\n';
    int rc = dc_stream_write(w->c->req, text, n + 1);
    free(text);
    return rc;
}

static int
send_bookmark(watcher *w, int64_t rv, bool initial_end)
{
    char rvs[32];
    snprintf(rvs, sizeof rvs, "%lld", (long long)rv);
    json_t *obj = json_object();
    dc_api_set_type(obj, &w->res);
    json_t *meta = json_pack("{s:s}", "resourceVersion", rvs);
    if (initial_end)
        json_object_set_new(meta, "annotations",
                            json_pack("{s:s}", "k8s.io/initial-events-end", "true"));
    json_object_set_new(obj, "metadata", meta);
    int rc = send_event(w, "BOOKMARK", obj);
    json_decref(obj);
    return rc;
}

static int
send_expired(watcher *w, int64_t asked, int64_t floor)
{
    char msg[200];
    snprintf(msg, sizeof msg, "too old resource version: %lld (%lld)", (long long)asked,
             (long long)floor);
    json_t *st = json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status", "apiVersion",
                           "v1", "metadata", "status", "Failure", "message", msg, "reason",
                           "Expired", "code", 410);
    int rc = send_event(w, "ERROR", st);
    json_decref(st);
    return rc;
}

typedef struct initial {
    watcher *w;
    json_t *objs;
} initial;

static int
collect_initial(void *arg, const char *ns, const char *name, json_t *obj)
{
    initial *in = arg;
    (void)ns;
    (void)name;
    if (dc_selector_matches(in->w->labels, obj) && dc_selector_matches(in->w->fields, obj))
        json_array_append(in->objs, obj);
    return 0;
}

static void
key_of(const char *ns, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", ns, name);
}

/* Send one change if it concerns this watch. */
static int
deliver(watcher *w, dc_event *e)
{
    if (strcmp(e->resource, w->res.key) != 0)
        return 0;
    if (!w->all_namespaces && strcmp(e->ns, w->ns) != 0)
        return 0;
    json_t *obj = json_deep_copy(e->object);
    dc_api_set_type(obj, &w->res);
    bool match = dc_selector_matches(w->labels, obj) && dc_selector_matches(w->fields, obj);
    char key[600];
    key_of(e->ns, e->name, key, sizeof key);
    bool was = json_object_get(w->matching, key) != NULL;
    const char *type = NULL;
    if (e->type == DC_DELETED) {
        type = match || was ? "DELETED" : NULL;
        json_object_del(w->matching, key);
    } else if (match) {
        if (was)
            type = "MODIFIED";
        else if (e->type == DC_ADDED)
            type = "ADDED";
        else /* a resumed watch does not know what matched before */
            type = w->resumed ? "MODIFIED" : "ADDED";
        json_object_set_new(w->matching, key, json_true());
    } else if (was) {
        type = "DELETED";
        json_object_del(w->matching, key);
    }
    int rc = type ? send_event(w, type, obj) : 0;
    json_decref(obj);
    return rc;
}

void
dc_watch_serve(dc_ctx *c)
{
    dc_store *s = c->api->store;
    watcher w = {.c = c, .res = *c->res, .all_namespaces = !c->namespaced_path};
    json_t *initial_objs = NULL;
    snprintf(w.ns, sizeof w.ns, "%s", c->ns);
    w.res.schema = NULL;
    w.res.printer_columns = json_incref(c->res->printer_columns);
    w.res.crd_short_names = NULL;
    w.res.crd_categories = NULL;
    w.matching = json_object();
    char err[512] = "";
    if (dc_selector_parse_labels(dc_req_query(c->req, "labelSelector"), &w.labels, err,
                                 sizeof err) != 0 ||
        dc_selector_parse_fields(dc_req_query(c->req, "fieldSelector"), &w.fields, err,
                                 sizeof err) != 0) {
        dc_api_respond_status(c, 400, "BadRequest", err, NULL);
        goto out;
    }
    w.table = dc_table_wanted(dc_req_header(c->req, "Accept"));
    const char *rvq = dc_req_query(c->req, "resourceVersion");
    const char *bm = dc_req_query(c->req, "allowWatchBookmarks");
    bool bookmarks = bm && strcmp(bm, "true") == 0;
    const char *sie = dc_req_query(c->req, "sendInitialEvents");
    bool initial_events = sie && strcmp(sie, "true") == 0;
    const char *to = dc_req_query(c->req, "timeoutSeconds");
    int64_t deadline = 0;
    if (to && atoll(to) > 0)
        deadline = now_ms() + atoll(to) * 1000;
    else
        deadline = now_ms() + 1800 * 1000; /* the real server's default is 30-60 minutes */
    int64_t rv = 0;
    bool expired = false;
    int64_t floor = dc_store_window_floor(s);

    if (!rvq || !*rvq || strcmp(rvq, "0") == 0 || initial_events) {
        initial in = {.w = &w, .objs = json_array()};
        dc_store_list(s, w.res.key, w.all_namespaces ? NULL : w.ns, NULL, NULL, collect_initial,
                      &in);
        initial_objs = in.objs;
        rv = dc_store_rv(s);
    } else {
        char *end;
        long long v = strtoll(rvq, &end, 10);
        if (*end || v < 0) {
            char msg[300];
            snprintf(msg, sizeof msg, "invalid resource version: %s", rvq);
            dc_api_respond_status(c, 400, "BadRequest", msg, NULL);
            goto out;
        }
        rv = v;
        expired = rv < floor;
        w.resumed = true;
    }
    dc_store_unlock(s);
    lb_gauge_add(c->api->watches, 1);
    if (dc_stream_begin(c->req, 200, "application/json") < 0)
        goto relock;
    if (expired) {
        send_expired(&w, rv, floor);
        goto relock;
    }
    size_t i;
    json_t *obj;
    json_array_foreach(initial_objs, i, obj)
    {
        dc_api_set_type(obj, &w.res);
        char key[600];
        key_of(dc_api_meta_str(obj, "namespace") ?: "", dc_api_meta_str(obj, "name") ?: "", key,
               sizeof key);
        json_object_set_new(w.matching, key, json_true());
        if (send_event(&w, "ADDED", obj) < 0)
            goto relock;
    }
    if (initial_events && send_bookmark(&w, rv, true) < 0)
        goto relock;
    int64_t last_bookmark = now_ms();
    dc_event batch[BATCH];
    for (;;) {
        if (now_ms() >= deadline || dc_req_client_gone(c->req, 0) || atomic_load(&c->api->stopping))
            break;
        dc_store_lock(s);
        int n = dc_store_events_since(s, rv, batch, BATCH);
        if (n == 0) {
            dc_store_wait(s, rv, 500);
            n = dc_store_events_since(s, rv, batch, BATCH);
        }
        int64_t current = dc_store_rv(s);
        int64_t fl = dc_store_window_floor(s);
        dc_store_unlock(s);
        if (n == -ESTALE) {
            send_expired(&w, rv, fl);
            break;
        }
        int rc = 0;
        for (int k = 0; k < n; k++) {
            if (rc == 0)
                rc = deliver(&w, &batch[k]);
            rv = batch[k].rv;
            dc_event_clear(&batch[k]);
        }
        if (rc < 0)
            break;
        if (n < BATCH && current > rv) /* every change up to current was seen */
            rv = current;
        if (bookmarks && now_ms() - last_bookmark >= c->api->config.bookmark_interval_ms) {
            if (send_bookmark(&w, rv, false) < 0)
                break;
            last_bookmark = now_ms();
        }
    }
relock:
    lb_gauge_add(c->api->watches, -1);
    dc_store_lock(s);
out:
    json_decref(initial_objs);
    json_decref(w.matching);
    json_decref(w.res.printer_columns);
    dc_selector_free(w.labels);
    dc_selector_free(w.fields);
}
