/*
 * store.c: SQLite persistence, the global resourceVersion and the event
 * window (see store.h).
 *
 * Tables:
 *   meta(key, value)            key "rv": the last resourceVersion handed out
 *   objects(resource, namespace, name, uid, gc, body)
 *                               body is the object's JSON, its
 *                               metadata.resourceVersion already set; gc is 1
 *                               when the garbage collector must look at it
 *
 * Invariant: meta.rv >= every stored object's resourceVersion, and a write
 * bumps meta.rv and changes the object in one transaction, so after a crash
 * the resourceVersion never goes backwards and no rv is handed out twice.
 * The in-memory s->rv equals meta.rv whenever the lock is free.
 */
#include "store.h"

#include "log.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct dc_store {
    sqlite3 *db;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int64_t rv;
    dc_event *ring; /* window slots; event i (in rv order) at ring[i % window] */
    unsigned window;
    unsigned count;   /* events in the ring */
    size_t bytes;     /* their objects' JSON size */
    size_t max_bytes; /* the window also ends where its events weigh this much */
    unsigned head;    /* slot of the oldest */
    int64_t floor;    /* a watch may resume from any rv >= floor */
};

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta VALUES('rv', 1);"
    "CREATE TABLE IF NOT EXISTS objects(resource TEXT NOT NULL, namespace TEXT NOT NULL,"
    " name TEXT NOT NULL, uid TEXT, gc INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL,"
    " PRIMARY KEY(resource, namespace, name)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS objects_uid ON objects(uid);"
    "CREATE INDEX IF NOT EXISTS objects_ns ON objects(namespace);"
    "CREATE INDEX IF NOT EXISTS objects_gc ON objects(gc) WHERE gc = 1;";

static int
exec(dc_store *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        lb_error("sqlite failed: %s sql=\"%.60s\"", msg ? msg : "?", sql);
        sqlite3_free(msg);
        return -EIO;
    }
    return 0;
}

int
dc_store_open(const char *path, unsigned window, dc_store **out)
{
    dc_store *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->window = window ? window : 10000;
    s->max_bytes = 64u * 1024 * 1024;
    s->ring = calloc(s->window, sizeof *s->ring);
    if (!s->ring) {
        free(s);
        return -ENOMEM;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->changed, &ca);
    pthread_condattr_destroy(&ca);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        lb_error("could not open database \"%s\": %s", path, sqlite3_errmsg(s->db));
        dc_store_close(s);
        return -EIO;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;") < 0 ||
        exec(s, schema_sql) < 0) {
        dc_store_close(s);
        return -EIO;
    }
    sqlite3_stmt *st;
    sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key='rv'", -1, &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW)
        s->rv = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    s->floor = s->rv;
    *out = s;
    return 0;
}

void
dc_store_close(dc_store *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->count; i++)
        dc_event_clear(&s->ring[(s->head + i) % s->window]);
    free(s->ring);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->changed);
    free(s);
}

void
dc_store_set_max_bytes(dc_store *s, size_t bytes)
{
    s->max_bytes = bytes;
}

int
dc_store_cap_pages(dc_store *s, int extra)
{
    sqlite3_stmt *st;
    long long pages = 0;
    if (sqlite3_prepare_v2(s->db, "PRAGMA page_count", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        pages = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    char sql[96];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count=%lld",
             extra > 0 ? pages + extra : 1073741823LL);
    return exec(s, sql);
}

void
dc_store_lock(dc_store *s)
{
    pthread_mutex_lock(&s->lock);
}

void
dc_store_unlock(dc_store *s)
{
    pthread_mutex_unlock(&s->lock);
}

int64_t
dc_store_rv(dc_store *s)
{
    return s->rv;
}

int64_t
dc_store_window_floor(dc_store *s)
{
    return s->floor;
}

static json_t *
parse_body(sqlite3_stmt *st, int col)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    json_error_t e;
    json_t *obj = text ? json_loads(text, 0, &e) : NULL;
    if (!obj)
        lb_error("stored object is not JSON: %s", text ? e.text : "null");
    return obj;
}

int
dc_store_get(dc_store *s, const char *resource, const char *ns, const char *name, json_t **out)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(s->db,
                       "SELECT body FROM objects WHERE resource=?1 AND namespace=?2 AND name=?3",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, resource, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ns ? ns : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    int rc = -ENOENT;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *out = parse_body(st, 0);
        rc = *out ? 0 : -EIO;
    }
    sqlite3_finalize(st);
    return rc;
}

static void
set_rv(json_t *obj, int64_t rv)
{
    json_t *meta = json_object_get(obj, "metadata");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(obj, "metadata", meta);
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)rv);
    json_object_set_new(meta, "resourceVersion", json_string(buf));
}

static void
drop_oldest(dc_store *s)
{
    dc_event *old = &s->ring[s->head];
    s->floor = old->rv;
    s->bytes -= old->size;
    dc_event_clear(old);
    s->head = (s->head + 1) % s->window;
    s->count--;
}

/* size: the object's JSON length, what the event weighs in the window. */
static void
emit(dc_store *s, dc_event_type type, const char *resource, const char *ns, const char *name,
     json_t *obj, size_t size)
{
    while (s->count > 0 && (s->count == s->window || s->bytes + size > s->max_bytes))
        drop_oldest(s);
    dc_event *e = &s->ring[(s->head + s->count) % s->window];
    e->rv = s->rv;
    e->type = type;
    e->resource = strdup(resource);
    e->ns = strdup(ns ? ns : "");
    e->name = strdup(name);
    e->object = json_deep_copy(obj);
    e->size = size;
    s->bytes += size;
    s->count++;
    pthread_cond_broadcast(&s->changed);
}

static bool
needs_gc(json_t *obj)
{
    json_t *meta = json_object_get(obj, "metadata");
    json_t *owners = json_object_get(meta, "ownerReferences");
    return (json_is_array(owners) && json_array_size(owners) > 0) ||
           json_object_get(meta, "deletionTimestamp") != NULL;
}

/* Bump rv inside an open transaction. */
static int
bump_rv(dc_store *s)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(s->db, "UPDATE meta SET value=?1 WHERE key='rv'", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, s->rv + 1);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
    sqlite3_finalize(st);
    return rc;
}

int
dc_store_put(dc_store *s, const char *resource, const char *ns, const char *name, json_t *obj,
             dc_event_type type)
{
    if (exec(s, "BEGIN IMMEDIATE") < 0)
        return -EIO;
    set_rv(obj, s->rv + 1);
    char *body = json_dumps(obj, JSON_COMPACT);
    size_t size = body ? strlen(body) : 0;
    json_t *uid = json_object_get(json_object_get(obj, "metadata"), "uid");
    int rc = body ? bump_rv(s) : -ENOMEM;
    if (rc == 0) {
        sqlite3_stmt *st;
        sqlite3_prepare_v2(
            s->db,
            "INSERT OR REPLACE INTO objects(resource, namespace, name, uid, gc, body)"
            " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            -1, &st, NULL);
        sqlite3_bind_text(st, 1, resource, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, ns ? ns : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
        if (json_is_string(uid))
            sqlite3_bind_text(st, 4, json_string_value(uid), -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 4);
        sqlite3_bind_int(st, 5, needs_gc(obj));
        sqlite3_bind_text(st, 6, body, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
        if (rc < 0)
            lb_error("could not store object resource=%s name=\"%s\": %s", resource, name,
                     sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
    }
    free(body);
    if (rc == 0 && exec(s, "COMMIT") < 0)
        rc = -EIO;
    if (rc < 0) {
        exec(s, "ROLLBACK");
        set_rv(obj, s->rv);
        return rc;
    }
    s->rv++;
    emit(s, type, resource, ns, name, obj, size);
    return 0;
}

int
dc_store_delete(dc_store *s, const char *resource, const char *ns, const char *name, json_t *obj)
{
    if (exec(s, "BEGIN IMMEDIATE") < 0)
        return -EIO;
    int rc = bump_rv(s);
    if (rc == 0) {
        sqlite3_stmt *st;
        sqlite3_prepare_v2(s->db,
                           "DELETE FROM objects WHERE resource=?1 AND namespace=?2 AND name=?3", -1,
                           &st, NULL);
        sqlite3_bind_text(st, 1, resource, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, ns ? ns : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
        if (rc == 0 && sqlite3_changes(s->db) == 0)
            rc = -ENOENT;
        sqlite3_finalize(st);
    }
    if (rc == 0 && exec(s, "COMMIT") < 0)
        rc = -EIO;
    if (rc < 0) {
        exec(s, "ROLLBACK");
        return rc;
    }
    s->rv++;
    set_rv(obj, s->rv);
    emit(s, DC_DELETED, resource, ns, name, obj, json_dumpb(obj, NULL, 0, JSON_COMPACT));
    return 0;
}

int
dc_store_list(dc_store *s, const char *resource, const char *ns, const char *after_ns,
              const char *after_name, dc_store_visit fn, void *arg)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(s->db,
                       "SELECT namespace, name, body FROM objects WHERE resource=?1"
                       " AND (?2 IS NULL OR namespace=?2)"
                       " AND (?4 IS NULL OR namespace > ?3 OR (namespace = ?3 AND name > ?4))"
                       " ORDER BY namespace, name",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, resource, -1, SQLITE_STATIC);
    if (ns)
        sqlite3_bind_text(st, 2, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, after_ns ? after_ns : "", -1, SQLITE_STATIC);
    if (after_name)
        sqlite3_bind_text(st, 4, after_name, -1, SQLITE_STATIC);
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        json_t *obj = parse_body(st, 2);
        if (!obj)
            continue;
        rc = fn(arg, (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1), obj);
        json_decref(obj);
    }
    sqlite3_finalize(st);
    return rc < 0 ? rc : 0;
}

static int
visit_rows(dc_store *s, sqlite3_stmt *st,
           int (*fn)(void *, const char *, const char *, const char *, json_t *), void *arg)
{
    (void)s;
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        json_t *obj = parse_body(st, 3);
        if (!obj)
            continue;
        rc = fn(arg, (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
                obj);
        json_decref(obj);
    }
    sqlite3_finalize(st);
    return rc < 0 ? rc : 0;
}

int
dc_store_list_namespace(dc_store *s, const char *ns,
                        int (*fn)(void *, const char *, const char *, const char *, json_t *),
                        void *arg)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(s->db,
                       "SELECT resource, namespace, name, body FROM objects WHERE namespace=?1"
                       " ORDER BY resource, name",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_TRANSIENT);
    return visit_rows(s, st, fn, arg);
}

int
dc_store_list_gc_candidates(dc_store *s,
                            int (*fn)(void *, const char *, const char *, const char *, json_t *),
                            void *arg)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(s->db,
                       "SELECT resource, namespace, name, body FROM objects WHERE gc = 1"
                       " ORDER BY resource, namespace, name",
                       -1, &st, NULL);
    return visit_rows(s, st, fn, arg);
}

bool
dc_store_uid_exists(dc_store *s, const char *uid)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(s->db, "SELECT 1 FROM objects WHERE uid=?1", -1, &st, NULL);
    sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

int
dc_store_events_since(dc_store *s, int64_t after, dc_event *out, int max)
{
    if (after < s->floor)
        return -ESTALE;
    int n = 0;
    for (unsigned i = 0; i < s->count && n < max; i++) {
        dc_event *e = &s->ring[(s->head + i) % s->window];
        if (e->rv <= after)
            continue;
        out[n].rv = e->rv;
        out[n].type = e->type;
        out[n].size = e->size;
        out[n].resource = strdup(e->resource);
        out[n].ns = strdup(e->ns);
        out[n].name = strdup(e->name);
        out[n].object = json_incref(e->object);
        n++;
    }
    return n;
}

void
dc_event_clear(dc_event *e)
{
    free(e->resource);
    free(e->ns);
    free(e->name);
    json_decref(e->object);
    memset(e, 0, sizeof *e);
}

void
dc_store_wait(dc_store *s, int64_t after, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (s->rv <= after) {
        if (pthread_cond_timedwait(&s->changed, &s->lock, &ts) != 0)
            break;
    }
}

void
dc_store_broadcast(dc_store *s)
{
    pthread_cond_broadcast(&s->changed);
}
