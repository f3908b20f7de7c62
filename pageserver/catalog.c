/*
 * catalog.c: the Iceberg REST catalog (Apache Iceberg's
 * rest-catalog-open-api.yaml) that the pageserver serves over each
 * timeline's lake, so that any Iceberg engine finds the tables LTAP
 * materializes (ltap/README.md) without a catalog service of its own.
 *
 * Where. One catalog per timeline; its base URL is
 *
 *   /v1/tenant/{tenant_id}/timeline/{timeline_id}/iceberg
 *
 * and the spec's routes hang under it, each both without a prefix
 * (/v1/namespaces, what a client without a warehouse calls) and with the
 * one prefix GET /v1/config announces ("overrides": {"prefix": "lake"}):
 *
 *   GET  /v1/config
 *   GET  /v1/[lake/]namespaces[?parent=db]      [[db], ...] or [[db, schema], ...]
 *   GET  /v1/[lake/]namespaces/{ns}             {"namespace", "properties"}
 *   HEAD /v1/[lake/]namespaces/{ns}             204 or 404
 *   GET  /v1/[lake/]namespaces/{ns}/tables      {"identifiers"}
 *   GET  /v1/[lake/]namespaces/{ns}/tables/{t}  LoadTableResult; ETag, If-None-Match
 *   HEAD /v1/[lake/]namespaces/{ns}/tables/{t}  204 or 404
 *   POST /v1/[lake/]namespaces/{ns}/tables/{t}/metrics   204 (reports are dropped)
 *
 * The lists take pageSize and pageToken (an offset this server hands out
 * as "next-page-token"), sorted by name so pages follow one order.
 *
 * Namespaces. A database is a top-level namespace, [database]; each
 * schema of it is a child, [database, schema], which holds the tables.
 * A namespace exists while the lake holds a table in it. The lake's own
 * list (<tenant>/<timeline>/lake/_ltap_tables.json, ltap/lakeview.h) is
 * the source: what the last complete lake run materialized.
 *
 * Freshness. Before a table is loaded (GET, not HEAD) the lake catches up
 * with the committed WAL the timeline's redo standby has replayed: replay
 * pauses there, the lake runs at that LSN (ingest.h, ps_ingest_lake_now),
 * replay resumes. So an engine reads data as fresh as the last commit the
 * pageserver has, not as of the last snapshot. Skipped when the last lake
 * run is at the commit LSN already, or the timeline is not ingesting (its
 * standby idle or stopped: served as it is).
 *
 * Load table. The table's newest Iceberg metadata file, as it is
 * ("metadata" equals the file), its location in "metadata-location" (the
 * store's URL plus the key), and in "config" how to reach the files: for a
 * file:// store "lakebase.table-path", the table's absolute directory; for
 * s3:// the endpoint ("s3.endpoint", "s3.path-style-access",
 * "client.region"). No credentials are vended.
 *
 * Read-only. Tables are written by the transcoder alone: every route that
 * would change the catalog (create, update, drop, rename, register,
 * commit) answers 406 UnsupportedOperationException, the spec's
 * UnsupportedOperationResponse, which Iceberg clients raise as an
 * unsupported operation. Errors are the spec's ErrorModel,
 * {"error": {"message", "type", "code"}}: 400 BadRequestException, 404
 * NoSuchNamespaceException / NoSuchTableException / NotFoundException
 * (an unknown timeline or prefix), 401 NotAuthorizedException, 403
 * ForbiddenException.
 *
 * Who. The same tokens as the rest of the API (docs/auth.md):
 * management, a compute token of the timeline, or an analytics token (the
 * read-only role for engines) scoped to the tenant or the timeline. The
 * HTTP server checks them before a handler runs; its refusals take the
 * ErrorModel shape through the routes' refuse hook.
 *
 * Known limits. A name holding '/' cannot be addressed (the server
 * decodes the path before splitting it into segments); a load cannot name
 * an older LSN to materialize at; requests read the store on the HTTP
 * thread (the lake run itself goes to the worker pool, and the request
 * waits for it).
 */
#include "catalog.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "ingest.h"
#include "timelines.h"
#include "ltap/lakeview.h"
#include "ltap/timeline.h"

#define CATALOG_PREFIX "lake"
#define MAX_NS_LEVELS 2

/* ---- errors: the spec's ErrorModel ------------------------------------------------ */

static int __attribute__((format(printf, 4, 5)))
ice_error(lb_http_request *req, int status, const char *type, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return lb_json_respond(
        req, status,
        json_pack("{s:{s:s, s:s, s:i}}", "error", "message", msg, "type", type, "code", status));
}

/* The HTTP server's 401 and 403, in the catalog's error shape. */
static int
ice_refuse(lb_http_request *req, int status, const char *message)
{
    return ice_error(req, status, status == 401 ? "NotAuthorizedException" : "ForbiddenException",
                     "%s", message);
}

/* ---- one request ------------------------------------------------------------------- */

typedef struct cat_req {
    ps_daemon *d;
    lb_http_request *req;
    char tenant[LB_ID_STRLEN], timeline[LB_ID_STRLEN];
    lake_store *st;
    ltap_lake_list list; /* empty before the first lake run */
    char ns[MAX_NS_LEVELS][256];
    int nns;
} cat_req;

static void
cat_end(cat_req *c)
{
    ltap_lake_list_free(&c->list);
    lake_store_close(c->st);
}

/* Freshness: before a table is loaded, the lake catches up with what the
 * timeline's redo standby has replayed (the committed WAL), unless the
 * last lake run is there already (ps_ingest_lake_now()). A timeline that
 * is not ingesting, or whose standby is idle, is served as it is; so is
 * one whose run fails (logged, and shown by GET .../lake). */
static void
freshen(cat_req *c, lb_lsn commit_lsn)
{
    lb_lsn since = 0, p = 0;
    json_t *st = ltap_timeline_status(c->tenant, c->timeline, commit_lsn);
    const char *run = json_string_value(json_object_get(st, "run_lsn"));
    if (run && lb_lsn_parse(run, &since) != 0)
        since = 0;
    json_decref(st);
    if (since && since >= commit_lsn)
        return;
    lb_err err = {0};
    int rc = ps_ingest_lake_now(c->d, c->tenant, c->timeline, since, &p, &err);
    if (rc && rc != LB_ENOTFOUND)
        lb_warn("iceberg catalog: the lake did not catch up tenant=%s timeline=%s error=\"%s\"",
                c->tenant, c->timeline, err.message);
}

/* Ids, prefix, timeline; with fresh, the lake caught up first (freshen());
 * with load, the store and the lake's table list. false once the request
 * is answered (*rc its status). */
static bool
cat_begin(cat_req *c, lb_http_request *req, ps_daemon *d, bool load, bool fresh, int *rc)
{
    memset(c, 0, sizeof(*c));
    c->d = d;
    c->req = req;
    const char *t = lb_http_param(req, "tenant_id"), *l = lb_http_param(req, "timeline_id");
    if (!t || !l || !lb_json_is_id(t) || !lb_json_is_id(l)) {
        *rc = ice_error(req, 400, "BadRequestException",
                        "tenant and timeline ids must be 32 lowercase hex characters");
        return false;
    }
    snprintf(c->tenant, sizeof(c->tenant), "%s", t);
    snprintf(c->timeline, sizeof(c->timeline), "%s", l);
    const char *prefix = lb_http_param(req, "prefix");
    if (prefix && strcmp(prefix, CATALOG_PREFIX) != 0) {
        *rc = ice_error(req, 404, "NotFoundException",
                        "unknown catalog prefix \"%.100s\" (GET /v1/config gives \"%s\")", prefix,
                        CATALOG_PREFIX);
        return false;
    }
    ps_tlmeta m;
    if (ps_get_timeline(d, c->tenant, c->timeline, &m) != 0) {
        *rc = ice_error(req, 404, "NotFoundException", "timeline %s/%s not found", c->tenant,
                        c->timeline);
        return false;
    }
    lb_lsn commit_lsn = m.last_record_lsn;
    ps_tlmeta_free(&m);
    if (fresh)
        freshen(c, commit_lsn);
    if (!load)
        return true;
    lb_err err = {0};
    int lrc = lake_store_open(d->conf.remote_storage, NULL, &c->st, &err);
    if (lrc) {
        *rc = ice_error(req, 503, "ServiceUnavailableException", "%s", err.message);
        return false;
    }
    char tl_prefix[80];
    snprintf(tl_prefix, sizeof(tl_prefix), "%s/%s", c->tenant, c->timeline);
    lrc = ltap_lake_list_load(c->st, tl_prefix, &c->list, &err);
    if (lrc && lrc != LB_ENOTFOUND) {
        lb_warn("iceberg catalog: could not read the lake tenant=%s timeline=%s error=\"%s\"",
                c->tenant, c->timeline, err.message);
        *rc = ice_error(req, 500, "InternalServerError", "%s", err.message);
        cat_end(c);
        return false;
    }
    return true;
}

/* Split a namespace (parts separated by 0x1F, already percent-decoded)
 * into c->ns. false after a 400 for an empty part. A namespace of more
 * levels than the lake has is kept as nns = MAX_NS_LEVELS + 1 (it exists
 * nowhere: 404). */
static bool
parse_namespace(cat_req *c, const char *s, bool empty_ok, int *rc)
{
    c->nns = 0;
    if (!s || !*s) {
        if (empty_ok)
            return true;
        *rc = ice_error(c->req, 400, "BadRequestException", "the namespace is empty");
        return false;
    }
    for (const char *p = s;;) {
        const char *end = strchr(p, 0x1F);
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0) {
            *rc = ice_error(c->req, 400, "BadRequestException",
                            "namespace \"%.200s\" has an empty part", s);
            return false;
        }
        if (c->nns < MAX_NS_LEVELS && n < sizeof(c->ns[0]))
            snprintf(c->ns[c->nns], sizeof(c->ns[0]), "%.*s", (int)n, p);
        else
            c->nns = MAX_NS_LEVELS; /* too deep or too long: names nothing */
        c->nns++;
        if (!end)
            return true;
        p = end + 1;
    }
}

/* Does the namespace c->ns hold a table (at any depth)? */
static bool
namespace_exists(const cat_req *c)
{
    if (c->nns < 1 || c->nns > MAX_NS_LEVELS)
        return false;
    for (size_t i = 0; i < c->list.n; i++) {
        const ltap_lake_entry *e = &c->list.tables[i];
        if (strcmp(e->database, c->ns[0]) == 0 && (c->nns == 1 || strcmp(e->schema, c->ns[1]) == 0))
            return true;
    }
    return false;
}

/* The namespace as its display form "a.b" (messages). */
static const char *
ns_text(const cat_req *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s", c->nns > 0 ? c->ns[0] : "", c->nns > 1 ? "." : "",
             c->nns > 1 ? c->ns[1] : "");
    return buf;
}

static int
no_namespace(cat_req *c)
{
    char b[600];
    return ice_error(c->req, 404, "NoSuchNamespaceException", "namespace \"%s\" does not exist",
                     c->nns > MAX_NS_LEVELS ? "(deeper than database.schema)"
                                            : ns_text(c, b, sizeof(b)));
}

static json_t *
ns_json(const char *a, const char *b)
{
    return b ? json_pack("[s, s]", a, b) : json_pack("[s]", a);
}

/* ---- handlers ------------------------------------------------------------------------ */

/* A list answer, one page of it when the client asks (pageToken: where the
 * page starts, an offset this server handed out, "" for the first page;
 * pageSize: at most this many), with "next-page-token" while more follow.
 * Takes all. */
static int
respond_page(lb_http_request *req, const char *field, json_t *all)
{
    const char *token = lb_http_query(req, "pageToken");
    const char *size = lb_http_query(req, "pageSize");
    size_t total = json_array_size(all), from = 0, n = total;
    char *end;
    if (token && *token) {
        unsigned long long v = strtoull(token, &end, 10);
        if (*end || token[0] < '0' || token[0] > '9' || v > total) {
            json_decref(all);
            return ice_error(req, 400, "BadRequestException",
                             "pageToken \"%.40s\" is not one this server handed out", token);
        }
        from = (size_t)v;
    }
    if (size) {
        unsigned long long v = strtoull(size, &end, 10);
        if (*end || size[0] < '0' || size[0] > '9' || v < 1 || v > 100000) {
            json_decref(all);
            return ice_error(req, 400, "BadRequestException",
                             "pageSize must be an integer from 1 to 100000");
        }
        n = (size_t)v;
    }
    json_t *page = json_array();
    for (size_t i = from; i < total && i - from < n; i++)
        json_array_append(page, json_array_get(all, i));
    json_t *body = json_pack("{s:o}", field, page);
    if (body && from + n < total) {
        char next[32];
        snprintf(next, sizeof(next), "%zu", from + n);
        json_object_set_new(body, "next-page-token", json_string(next));
    }
    json_decref(all);
    return lb_json_respond(req, 200, body);
}

static int
h_config(lb_http_request *req, void *arg)
{
    cat_req c;
    int rc;
    if (!cat_begin(&c, req, arg, false, false, &rc))
        return rc;
    static const char *const endpoints[] = {
        "GET /v1/{prefix}/namespaces",
        "GET /v1/{prefix}/namespaces/{namespace}",
        "HEAD /v1/{prefix}/namespaces/{namespace}",
        "GET /v1/{prefix}/namespaces/{namespace}/tables",
        "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
        "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
        "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics",
    };
    json_t *eps = json_array();
    for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++)
        json_array_append_new(eps, json_string(endpoints[i]));
    return lb_json_respond(req, 200,
                           json_pack("{s:{}, s:{s:s}, s:o}", "defaults", "overrides", "prefix",
                                     CATALOG_PREFIX, "endpoints", eps));
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
h_list_namespaces(lb_http_request *req, void *arg)
{
    cat_req c;
    int rc;
    if (!cat_begin(&c, req, arg, true, false, &rc))
        return rc;
    if (!parse_namespace(&c, lb_http_query(req, "parent"), true, &rc)) {
        cat_end(&c);
        return rc;
    }
    if (c.nns > 0 && !namespace_exists(&c)) {
        rc = no_namespace(&c);
        cat_end(&c);
        return rc;
    }
    /* children of the parent: databases, or the schemas of [database] */
    const char **names = calloc(c.list.n ? c.list.n : 1, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; names && c.nns < 2 && i < c.list.n; i++) {
        const ltap_lake_entry *e = &c.list.tables[i];
        if (c.nns == 0)
            names[n++] = e->database;
        else if (strcmp(e->database, c.ns[0]) == 0)
            names[n++] = e->schema;
    }
    if (!names) {
        cat_end(&c);
        return -ENOMEM;
    }
    qsort(names, n, sizeof(char *), cmp_str);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
            json_array_append_new(out, c.nns == 0 ? ns_json(names[i], NULL)
                                                  : ns_json(c.ns[0], names[i]));
    free(names);
    cat_end(&c);
    return respond_page(req, "namespaces", out);
}

static int
namespace_common(lb_http_request *req, void *arg, bool head)
{
    cat_req c;
    int rc;
    if (!cat_begin(&c, req, arg, true, false, &rc))
        return rc;
    if (!parse_namespace(&c, lb_http_param(req, "namespace"), false, &rc)) {
        cat_end(&c);
        return rc;
    }
    if (!namespace_exists(&c)) {
        rc = no_namespace(&c);
        cat_end(&c);
        return rc;
    }
    json_t *body = NULL;
    if (!head) {
        char lsn[LB_LSN_STRLEN];
        body =
            json_pack("{s:o, s:{s:s}}", "namespace", ns_json(c.ns[0], c.nns > 1 ? c.ns[1] : NULL),
                      "properties", "lakebase.lake-lsn", lb_lsn_format(c.list.lsn, lsn));
    }
    cat_end(&c);
    return head ? lb_http_respond(req, 204, NULL, NULL, 0) : lb_json_respond(req, 200, body);
}

static int
h_get_namespace(lb_http_request *req, void *arg)
{
    return namespace_common(req, arg, false);
}

static int
h_head_namespace(lb_http_request *req, void *arg)
{
    return namespace_common(req, arg, true);
}

static int
h_list_tables(lb_http_request *req, void *arg)
{
    cat_req c;
    int rc;
    if (!cat_begin(&c, req, arg, true, false, &rc))
        return rc;
    if (!parse_namespace(&c, lb_http_param(req, "namespace"), false, &rc)) {
        cat_end(&c);
        return rc;
    }
    if (!namespace_exists(&c)) {
        rc = no_namespace(&c);
        cat_end(&c);
        return rc;
    }
    const char **names = calloc(c.list.n ? c.list.n : 1, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; names && c.nns == 2 && i < c.list.n; i++) {
        const ltap_lake_entry *e = &c.list.tables[i];
        if (strcmp(e->database, c.ns[0]) == 0 && strcmp(e->schema, c.ns[1]) == 0)
            names[n++] = e->table;
    }
    if (!names) {
        cat_end(&c);
        return -ENOMEM;
    }
    qsort(names, n, sizeof(char *), cmp_str);
    json_t *ids = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            ids, json_pack("{s:o, s:s}", "namespace", ns_json(c.ns[0], c.ns[1]), "name", names[i]));
    free(names);
    cat_end(&c);
    return respond_page(req, "identifiers", ids);
}

/* How a reader reaches the files: the table's directory for a file://
 * store; the endpoint for s3:// (from the URL's query or the environment,
 * as the object store reads it). */
static json_t *
table_config(const char *store_url, const char *tprefix)
{
    json_t *cfg = json_object();
    if (strncmp(store_url, "file://", 7) == 0) {
        char *path = NULL;
        const char *dir = store_url + 7;
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/')
            n--;
        if (asprintf(&path, "%.*s/%s", (int)n, dir, tprefix) >= 0) {
            json_object_set_new(cfg, "lakebase.table-path", json_string(path));
            free(path);
        }
        return cfg;
    }
    if (strncmp(store_url, "s3://", 5) != 0)
        return cfg;
    const char *q = strchr(store_url, '?');
    const char *endpoint = getenv("AWS_ENDPOINT_URL_S3");
    if (!endpoint)
        endpoint = getenv("AWS_ENDPOINT_URL");
    const char *region = getenv("AWS_REGION");
    if (!region)
        region = getenv("AWS_DEFAULT_REGION");
    char ep[512] = "", rg[64] = "", addressing[16] = "";
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > 9 && strncmp(p, "endpoint=", 9) == 0 && n - 9 < sizeof(ep))
            snprintf(ep, sizeof(ep), "%.*s", (int)(n - 9), p + 9);
        else if (n > 7 && strncmp(p, "region=", 7) == 0 && n - 7 < sizeof(rg))
            snprintf(rg, sizeof(rg), "%.*s", (int)(n - 7), p + 7);
        else if (n > 11 && strncmp(p, "addressing=", 11) == 0 && n - 11 < sizeof(addressing))
            snprintf(addressing, sizeof(addressing), "%.*s", (int)(n - 11), p + 11);
        p = amp ? amp + 1 : NULL;
    }
    if (ep[0])
        endpoint = ep;
    if (rg[0])
        region = rg;
    if (endpoint)
        json_object_set_new(cfg, "s3.endpoint", json_string(endpoint));
    json_object_set_new(cfg, "client.region", json_string(region ? region : "us-east-1"));
    /* path-style unless virtual is asked for, or AWS is the endpoint */
    bool path = addressing[0] ? strcmp(addressing, "path") == 0 : endpoint != NULL;
    json_object_set_new(cfg, "s3.path-style-access", json_string(path ? "true" : "false"));
    return cfg;
}

static int
table_common(lb_http_request *req, void *arg, bool head)
{
    cat_req c;
    int rc;
    if (!cat_begin(&c, req, arg, true, !head, &rc))
        return rc;
    if (!parse_namespace(&c, lb_http_param(req, "namespace"), false, &rc)) {
        cat_end(&c);
        return rc;
    }
    const char *name = lb_http_param(req, "table");
    if (!namespace_exists(&c)) {
        rc = no_namespace(&c);
        cat_end(&c);
        return rc;
    }
    char b[600];
    const ltap_lake_entry *e =
        c.nns == 2 ? ltap_lake_list_find(&c.list, c.ns[0], c.ns[1], name) : NULL;
    char *key = NULL;
    json_t *meta = NULL;
    lb_err err = {0};
    rc = e ? ltap_lake_metadata(c.st, e->prefix, &key, &meta, &err) : LB_ENOTFOUND;
    if (rc == LB_ENOTFOUND) { /* not in the lake, or dropped since the list was written */
        rc = ice_error(req, 404, "NoSuchTableException", "table \"%s.%.200s\" does not exist",
                       ns_text(&c, b, sizeof(b)), name);
        cat_end(&c);
        return rc;
    }
    if (rc) {
        lb_warn("iceberg catalog: could not load a table prefix=%s error=\"%s\"", e->prefix,
                err.message);
        rc = ice_error(req, 500, "InternalServerError", "%s", err.message);
        cat_end(&c);
        return rc;
    }
    if (head) {
        json_decref(meta);
        free(key);
        cat_end(&c);
        return lb_http_respond(req, 204, NULL, NULL, 0);
    }
    const char *url = lake_store_url(c.st);
    char *location = NULL, *etag = NULL;
    if (asprintf(&location, "%s/%s", url, key) < 0)
        location = NULL;
    if (asprintf(&etag, "\"%s\"", key) < 0)
        etag = NULL;
    json_t *cfg = table_config(c.d->conf.remote_storage, e->prefix); /* with its query */
    free(key);
    cat_end(&c);
    if (!location || !etag || !cfg) {
        free(location);
        free(etag);
        json_decref(cfg);
        json_decref(meta);
        return -ENOMEM;
    }
    const char *inm = lb_http_header(req, "If-None-Match");
    lb_http_add_header(req, "ETag", etag);
    if (inm && strcmp(inm, etag) == 0) {
        free(location);
        free(etag);
        json_decref(cfg);
        json_decref(meta);
        return lb_http_respond(req, 304, NULL, NULL, 0);
    }
    json_t *body = json_pack("{s:s, s:o, s:o}", "metadata-location", location, "metadata", meta,
                             "config", cfg);
    free(location);
    free(etag);
    return lb_json_respond(req, 200, body);
}

static int
h_load_table(lb_http_request *req, void *arg)
{
    return table_common(req, arg, false);
}

static int
h_head_table(lb_http_request *req, void *arg)
{
    return table_common(req, arg, true);
}

/* Scan reports (ReportMetricsRequest) are accepted and dropped. */
static int
h_metrics(lb_http_request *req, void *arg)
{
    cat_req c;
    int rc;
    if (!cat_begin(&c, req, arg, false, false, &rc))
        return rc;
    return lb_http_respond(req, 204, NULL, NULL, 0);
}

static int
h_read_only(lb_http_request *req, void *arg)
{
    cat_req c;
    int rc;
    if (!cat_begin(&c, req, arg, false, false, &rc))
        return rc;
    return ice_error(req, 406, "UnsupportedOperationException",
                     "the lakebase catalog is read-only: %s %s is not supported (lake tables are "
                     "written by the pageserver's transcoder alone)",
                     lb_http_method(req), lb_http_route(req));
}

/* ---- routes ---------------------------------------------------------------------------- */

int
ps_catalog_routes(ps_daemon *d)
{
    static const struct {
        const char *method, *path;
        lb_http_handler fn;
        bool prefixed_only; /* only under /v1/{prefix} ... , or only without (config) */
        bool unprefixed_only;
    } routes[] = {
        {"GET", "/config", h_config, false, true},
        {"GET", "/namespaces", h_list_namespaces, false, false},
        {"POST", "/namespaces", h_read_only, false, false},
        {"GET", "/namespaces/{namespace}", h_get_namespace, false, false},
        {"HEAD", "/namespaces/{namespace}", h_head_namespace, false, false},
        {"DELETE", "/namespaces/{namespace}", h_read_only, false, false},
        {"POST", "/namespaces/{namespace}/properties", h_read_only, false, false},
        {"GET", "/namespaces/{namespace}/tables", h_list_tables, false, false},
        {"POST", "/namespaces/{namespace}/tables", h_read_only, false, false},
        {"POST", "/namespaces/{namespace}/register", h_read_only, false, false},
        {"GET", "/namespaces/{namespace}/tables/{table}", h_load_table, false, false},
        {"HEAD", "/namespaces/{namespace}/tables/{table}", h_head_table, false, false},
        {"POST", "/namespaces/{namespace}/tables/{table}", h_read_only, false, false},
        {"DELETE", "/namespaces/{namespace}/tables/{table}", h_read_only, false, false},
        {"POST", "/namespaces/{namespace}/tables/{table}/metrics", h_metrics, false, false},
        {"POST", "/tables/rename", h_read_only, false, false},
        {"POST", "/transactions/commit", h_read_only, false, false},
    };
    lb_http_access access = {.roles = LB_AUTH_COMPUTE | LB_AUTH_ANALYTICS, .refuse = ice_refuse};
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        for (int prefixed = 0; prefixed < 2; prefixed++) {
            if ((prefixed && routes[i].unprefixed_only) || (!prefixed && routes[i].prefixed_only))
                continue;
            char pattern[256];
            snprintf(pattern, sizeof(pattern),
                     "/v1/tenant/{tenant_id}/timeline/{timeline_id}/iceberg/v1%s%s",
                     prefixed ? "/{prefix}" : "", routes[i].path);
            int rc = lb_http_server_route_access(d->http, routes[i].method, pattern, routes[i].fn,
                                                 d, &access);
            if (rc)
                return rc;
        }
    return 0;
}
