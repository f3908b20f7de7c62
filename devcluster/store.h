/*
 * store.h: objects in SQLite, one global resourceVersion, and the window
 * of recent changes that watches are served from.
 *
 * An object is stored under (resource key, namespace, name), where the
 * resource key is "GROUP/PLURAL" ("/pods", "apps/deployments",
 * "lakebase.io/branches") and the namespace is "" for cluster-scoped kinds.
 *
 * Locking: one mutex (dc_store_lock) serializes every read-modify-write of
 * the API server; every function below except dc_store_open/close expects
 * the caller to hold it. A write is one SQLite transaction that also bumps
 * the resourceVersion; it returns only after the commit is durable
 * (journal_mode=WAL, synchronous=FULL), so an acknowledged write survives
 * kill -9.
 *
 * Events: every write appends (rv, type, resource, namespace, name,
 * object) to an in-memory ring of the last `window` changes (and at most
 * 64 MiB of their objects' JSON: helm's release Secrets are large) and
 * wakes the watchers. A watch may resume from any rv >= dc_store_window_floor(); an
 * older one gets 410 Expired, as after an etcd compaction. The window starts
 * empty at every start (its floor is the rv the store opened with).
 */
#ifndef DC_STORE_H
#define DC_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct dc_store dc_store;

typedef enum dc_event_type {
    DC_ADDED = 0,
    DC_MODIFIED = 1,
    DC_DELETED = 2,
} dc_event_type;

typedef struct dc_event {
    int64_t rv;
    dc_event_type type;
    char *resource;
    char *ns;
    char *name;
    json_t *object; /* read-only once in the ring; readers take a reference */
    size_t size;    /* the object's JSON length */
} dc_event;

/* Open (create) the database at path; window: how many changes to keep for
 * watches (0: 10000). 0, -EIO (message logged). */
int dc_store_open(const char *path, unsigned window, dc_store **out);
void dc_store_close(dc_store *s);
/* The window's weight limit in bytes of object JSON (default 64 MiB). */
void dc_store_set_max_bytes(dc_store *s, size_t bytes);
/* Cap the database at its current size plus extra pages (0: no cap), so that
 * writes fail as on a full disk. For tests. 0 or -EIO. */
int dc_store_cap_pages(dc_store *s, int extra);

void dc_store_lock(dc_store *s);
void dc_store_unlock(dc_store *s);

int64_t dc_store_rv(dc_store *s);
int64_t dc_store_window_floor(dc_store *s);

/* *out: a new reference to the stored object. 0 or -ENOENT. */
int dc_store_get(dc_store *s, const char *resource, const char *ns, const char *name, json_t **out);
/* Write obj (borrowed; its metadata.resourceVersion is set to the new rv)
 * as an ADDED or MODIFIED change. 0 or -EIO. */
int dc_store_put(dc_store *s, const char *resource, const char *ns, const char *name, json_t *obj,
                 dc_event_type type);
/* Remove the object; obj (borrowed) is its last state, which the DELETED
 * event carries with the new rv. 0, -ENOENT, -EIO. */
int dc_store_delete(dc_store *s, const char *resource, const char *ns, const char *name,
                    json_t *obj);

/* Objects of resource, in (namespace, name) order, starting after
 * (after_ns, after_name) when after_name is not NULL; ns NULL means every
 * namespace. fn returns 0 to go on, 1 to stop, < 0 to fail. */
typedef int (*dc_store_visit)(void *arg, const char *ns, const char *name, json_t *obj);
int dc_store_list(dc_store *s, const char *resource, const char *ns, const char *after_ns,
                  const char *after_name, dc_store_visit fn, void *arg);
/* Every object of every resource in namespace ns ("" for cluster-scoped). */
int dc_store_list_namespace(dc_store *s, const char *ns,
                            int (*fn)(void *arg, const char *resource, const char *ns,
                                      const char *name, json_t *obj),
                            void *arg);
/* Objects that name an owner (metadata.ownerReferences non-empty), and
 * objects being deleted: what the garbage collector looks at. */
int dc_store_list_gc_candidates(dc_store *s,
                                int (*fn)(void *arg, const char *resource, const char *ns,
                                          const char *name, json_t *obj),
                                void *arg);
/* True if an object with this uid exists. */
bool dc_store_uid_exists(dc_store *s, const char *uid);

/* Copy the events with rv > after (of any resource) into *out (up to max,
 * each with its own references); returns how many, or -ESTALE if after is
 * below the window floor. The caller frees them with dc_event_clear(). */
int dc_store_events_since(dc_store *s, int64_t after, dc_event *out, int max);
void dc_event_clear(dc_event *e);
/* Wait (lock held) until the rv passes `after` or timeout_ms elapses. */
void dc_store_wait(dc_store *s, int64_t after, int timeout_ms);
/* Wake every waiter (shutdown). */
void dc_store_broadcast(dc_store *s);

#endif
