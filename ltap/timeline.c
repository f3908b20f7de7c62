/*
 * timeline.c: a timeline's lake as the pageserver keeps it (timeline.h):
 * the dirty blocks of (L, P] from the WAL block index with the pending
 * blocks of open transactions carried from run to run, the run itself, and
 * each table's status for the API and /metrics.
 *
 * Sets are sorted arrays: blocks as (spc, db, rel, block), pending blocks
 * as (xid, block) pairs, ended xids as plain numbers. One run builds them
 * once; the transcoder's dirty test is then a binary search per chunk.
 */
#include "timeline.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "lakeview.h"
#include "ltap.h"
#include "wal.h"
#include "lake/store.h"

#define PENDING_KEY "lake/_ltap_pending.json"
#define REMOVED_KEY "lake/_ltap_removed.json"
#define RUNS_DIR "lake/_ltap_runs/"
#define REFS_DIR "lake/_ltap_refs/"
#define REFS_OUT_KEY "lake/_ltap_refs_out.json"
#define DEFAULT_INDEX_WAIT_MS 20000
#define XLOG_FPI_FOR_HINT 0xA0
#define RM_HEAP2_ID 9
#define XLOG_HEAP2_VISIBLE 0x40
#define HEAP_OPMASK 0x70

/* ---- sets ------------------------------------------------------------------------- */

typedef struct blk {
    uint32_t spc, db, rel, block;
} blk;

typedef struct xblk {
    uint32_t xid;
    blk b;
} xblk;

typedef struct vec {
    void *v;
    size_t n, cap, size;
} vec;

static int
vec_push(vec *a, const void *e)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 256;
        void *nv = realloc(a->v, cap * a->size);
        if (!nv)
            return -ENOMEM;
        a->v = nv;
        a->cap = cap;
    }
    memcpy((char *)a->v + a->n * a->size, e, a->size);
    a->n++;
    return 0;
}

static int
blk_cmp(const void *pa, const void *pb)
{
    const blk *a = pa, *b = pb;
    if (a->spc != b->spc)
        return a->spc < b->spc ? -1 : 1;
    if (a->db != b->db)
        return a->db < b->db ? -1 : 1;
    if (a->rel != b->rel)
        return a->rel < b->rel ? -1 : 1;
    if (a->block != b->block)
        return a->block < b->block ? -1 : 1;
    return 0;
}

static int
xblk_cmp(const void *pa, const void *pb)
{
    const xblk *a = pa, *b = pb;
    if (a->xid != b->xid)
        return a->xid < b->xid ? -1 : 1;
    return blk_cmp(&a->b, &b->b);
}

static int
u32_cmp(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return a < b ? -1 : a > b;
}

/* Sort and drop duplicates. */
static void
vec_sort_unique(vec *a, int (*cmp)(const void *, const void *))
{
    if (a->n < 2)
        return;
    qsort(a->v, a->n, a->size, cmp);
    size_t w = 1;
    for (size_t i = 1; i < a->n; i++) {
        char *cur = (char *)a->v + i * a->size, *last = (char *)a->v + (w - 1) * a->size;
        if (cmp(cur, last) != 0)
            memmove((char *)a->v + w++ * a->size, cur, a->size);
    }
    a->n = w;
}

static bool
xid_ended(const vec *ended, uint32_t xid)
{
    return bsearch(&xid, ended->v, ended->n, sizeof(uint32_t), u32_cmp) != NULL;
}

/* ---- the scan of [L, P) ------------------------------------------------------------- */

struct ltap_dirty {
    const ltap_index_access *ia;
    lb_lsn from, to;
    vec ended;   /* uint32_t: xids and subxids whose commit or abort is in [from, to) */
    vec dirty;   /* blk */
    vec pending; /* xblk: in: loaded; out: carried and new */
};
typedef struct ltap_dirty scan;

static int
on_xact(void *arg, const ps_walindex_xact *x)
{
    scan *s = arg;
    int rc = vec_push(&s->ended, &x->xid);
    for (uint32_t i = 0; rc == 0 && i < x->nsubxacts; i++)
        rc = vec_push(&s->ended, &x->subxacts[i]);
    return rc;
}

/* Records that change no row: hint bits (with checksums, the first hint
 * after a checkpoint logs the page) and visibility-map bits. */
static bool
changes_no_row(const ps_walindex_change *c)
{
    if (c->rmid == LB_RM_XLOG_ID && (c->info & 0xF0) == XLOG_FPI_FOR_HINT)
        return true;
    return c->rmid == RM_HEAP2_ID && (c->info & HEAP_OPMASK) == XLOG_HEAP2_VISIBLE;
}

static int
on_change(void *arg, const ps_walindex_change *c)
{
    scan *s = arg;
    if (c->block.fork != LB_FORK_MAIN || changes_no_row(c))
        return 0;
    blk b = {c->block.spc, c->block.db, c->block.rel, c->block.blkno};
    int rc = vec_push(&s->dirty, &b);
    uint32_t xid = c->toplevel_xid ? c->toplevel_xid : c->xid;
    /* A transaction still open at P: its blocks become dirty when it ends. */
    if (rc == 0 && xid && !xid_ended(&s->ended, xid) &&
        !(c->toplevel_xid && xid_ended(&s->ended, c->xid))) {
        xblk e = {xid, b};
        rc = vec_push(&s->pending, &e);
    }
    return rc;
}

static int
scan_index(void *arg, ps_walindex *ix)
{
    scan *s = arg;
    int rc = s->ia->xacts(ix, s->from, s->to, on_xact, s);
    if (rc == 0) {
        vec_sort_unique(&s->ended, u32_cmp);
        rc = s->ia->changes(ix, s->from, s->to, on_change, s);
    }
    return rc;
}

static int
index_position(void *arg, ps_walindex *ix)
{
    scan *s = arg;
    s->to = s->ia->resume_lsn(ix);
    return 0;
}

typedef struct errmsg_arg {
    const ltap_index_access *ia;
    char msg[300];
} errmsg_arg;

static int
index_errmsg(void *arg, ps_walindex *ix)
{
    errmsg_arg *e = arg;
    snprintf(e->msg, sizeof(e->msg), "%s", e->ia->errmsg(ix));
    return 0;
}

/* ---- the pending state ---------------------------------------------------------------- */

/* Load the state into s->pending and s->from; none: from 0, nothing pending. */
static int
load_pending(lake_store *st, const char *key, scan *s, lb_err *err)
{
    lb_buf b = LB_BUF_INIT;
    int rc = lake_store_get(st, key, &b);
    if (rc == LB_ENOTFOUND) {
        lb_buf_free(&b);
        s->from = 0;
        return 0;
    }
    if (rc) {
        lb_buf_free(&b);
        return lb_err_set(err, rc, "could not read \"%s\": %s", key, lake_store_error(st));
    }
    json_error_t je;
    json_t *j = json_loadb(b.data ? (const char *)b.data : "", b.len, 0, &je);
    lb_buf_free(&b);
    const char *lsn = json_string_value(json_object_get(j, "lsn"));
    json_t *pend = json_object_get(j, "pending");
    if (!j || !lsn || lb_lsn_parse(lsn, &s->from) != 0 || !json_is_array(pend) ||
        json_array_size(pend) % 5 != 0) {
        /* Unreadable state: start over from the index's beginning (every
         * block the index knows counts as dirty, which is never wrong). */
        lb_warn("ltap: ignoring unreadable state key=%s", key);
        json_decref(j);
        s->from = 0;
        return 0;
    }
    for (size_t i = 0; rc == 0 && i < json_array_size(pend); i += 5) {
        xblk e = {(uint32_t)json_integer_value(json_array_get(pend, i)),
                  {(uint32_t)json_integer_value(json_array_get(pend, i + 1)),
                   (uint32_t)json_integer_value(json_array_get(pend, i + 2)),
                   (uint32_t)json_integer_value(json_array_get(pend, i + 3)),
                   (uint32_t)json_integer_value(json_array_get(pend, i + 4))}};
        rc = vec_push(&s->pending, &e);
    }
    json_decref(j);
    return rc == 0 ? 0 : lb_err_set(err, rc, "out of memory");
}

/* Pending blocks of xids that ended become dirty; the rest carry over. */
static int
settle_pending(scan *s, size_t nloaded)
{
    xblk *p = s->pending.v;
    size_t w = 0;
    int rc = 0;
    for (size_t i = 0; i < s->pending.n && rc == 0; i++) {
        if (i < nloaded && xid_ended(&s->ended, p[i].xid))
            rc = vec_push(&s->dirty, &p[i].b);
        else
            p[w++] = p[i];
    }
    s->pending.n = w;
    vec_sort_unique(&s->pending, xblk_cmp);
    vec_sort_unique(&s->dirty, blk_cmp);
    return rc;
}

static int
save_pending(lake_store *st, const char *key, const char *run_key, const scan *s, lb_err *err)
{
    char lsn[LB_LSN_STRLEN];
    json_t *pend = json_array();
    const xblk *p = s->pending.v;
    for (size_t i = 0; pend && i < s->pending.n; i++) {
        json_array_append_new(pend, json_integer(p[i].xid));
        json_array_append_new(pend, json_integer(p[i].b.spc));
        json_array_append_new(pend, json_integer(p[i].b.db));
        json_array_append_new(pend, json_integer(p[i].b.rel));
        json_array_append_new(pend, json_integer(p[i].b.block));
    }
    json_t *j = json_pack("{s:s, s:o}", "lsn", lb_lsn_format(s->to, lsn), "pending", pend);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return lb_err_set(err, -ENOMEM, "out of memory");
    int rc = lake_store_put(st, key, text, strlen(text));
    if (rc == 0 && run_key) /* the same, kept per run for branches (RUNS_DIR) */
        rc = lake_store_put(st, run_key, text, strlen(text));
    free(text);
    if (rc)
        return lb_err_set(err, rc, "could not write \"%s\": %s", key, lake_store_error(st));
    return 0;
}

/* The transcoder's dirty test: one of blocks [first, first + n) is in the
 * set. One set serves every table (timeline.h). */
int
ltap_dirty_test(void *arg, uint32_t spc, uint32_t db, uint32_t rel, uint32_t first, uint32_t n,
                lb_lsn since)
{
    (void)since;
    const vec *d = &((const ltap_dirty *)arg)->dirty;
    const blk *v = d->v;
    blk key = {spc, db, rel, first};
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (blk_cmp(&v[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->n && v[lo].spc == spc && v[lo].db == db && v[lo].rel == rel &&
           v[lo].block - first < n;
}

/* ---- expiry ------------------------------------------------------------------------------ */

static int keyset_has(void *arg, const char *key);

/* Note the files this run removed and delete those removed longer than the
 * retention ago. *expired counts them. A file whose delete fails stays
 * noted for the next run. */
static int
expire(lake_store *st, const char *key, const ltap_result *res, int64_t retention_ms, int64_t now,
       const void *refs, uint64_t *expired, lb_err *err)
{
    *expired = 0;
    lb_buf b = LB_BUF_INIT;
    int rc = lake_store_get(st, key, &b);
    if (rc && rc != LB_ENOTFOUND) {
        lb_buf_free(&b);
        return lb_err_set(err, rc, "could not read \"%s\": %s", key, lake_store_error(st));
    }
    if (rc == LB_ENOTFOUND && res->nremoved == 0) {
        lb_buf_free(&b);
        return 0;
    }
    json_t *old = rc == 0 ? json_loadb((const char *)b.data, b.len, 0, NULL) : NULL;
    lb_buf_free(&b);
    json_t *keep = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(old, "files"), i, e)
    {
        const char *k = json_string_value(json_array_get(e, 0));
        int64_t at = json_integer_value(json_array_get(e, 1));
        if (!k)
            continue;
        /* a file a branch still lists stays (noted) until it no longer does */
        if (retention_ms >= 0 && now - at >= retention_ms && !keyset_has((void *)refs, k)) {
            int drc = lake_store_delete(st, k);
            if (drc == 0 || drc == LB_ENOTFOUND || drc == -ENOENT) {
                (*expired)++;
                continue;
            }
            lb_warn("ltap: could not delete an expired file key=%s error=\"%s\"", k,
                    lake_store_error(st));
        }
        json_array_append(keep, e);
    }
    json_decref(old);
    for (i = 0; i < res->nremoved; i++)
        json_array_append_new(keep, json_pack("[s, I]", res->removed[i], (json_int_t)now));
    json_t *j = json_pack("{s:o}", "files", keep);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return lb_err_set(err, -ENOMEM, "out of memory");
    rc = lake_store_put(st, key, text, strlen(text));
    free(text);
    if (rc)
        return lb_err_set(err, rc, "could not write \"%s\": %s", key, lake_store_error(st));
    return 0;
}

/* ---- branches ---------------------------------------------------------------------------- */

/* A sorted set of keys. */
typedef struct keyset {
    char **k;
    size_t n;
} keyset;

static int
cmp_key(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
keyset_free(keyset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->k[i]);
    free(s->k);
    memset(s, 0, sizeof(*s));
}

static int
keyset_has(void *arg, const char *key)
{
    const keyset *s = arg;
    return s->n && bsearch(&key, s->k, s->n, sizeof(char *), cmp_key) != NULL;
}

static int
keyset_add(keyset *s, const char *key)
{
    char **grown = realloc(s->k, (s->n + 1) * sizeof(char *));
    if (!grown)
        return -ENOMEM;
    s->k = grown;
    if (!(s->k[s->n] = strdup(key)))
        return -ENOMEM;
    s->n++;
    return 0;
}

static json_t *
get_json(lake_store *st, const char *key, int *rc)
{
    lb_buf b = LB_BUF_INIT;
    *rc = lake_store_get(st, key, &b);
    json_t *j = *rc == 0 ? json_loadb(b.data ? (const char *)b.data : "", b.len, 0, NULL) : NULL;
    lb_buf_free(&b);
    return j;
}

/* The keys of this lake that other lakes (branches started from it) list:
 * every <prefix>/lake/_ltap_refs/<referrer>.json, {"keys": {key: ms}}. */
static int
refs_load(lake_store *st, const char *prefix, keyset *out, lb_err *err)
{
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/%s", prefix, REFS_DIR);
    lb_objstore_listing l;
    memset(&l, 0, sizeof(l));
    int rc = lake_store_list(st, dir, &l);
    for (size_t i = 0; rc == 0 && i < l.nobjects; i++) {
        int grc;
        json_t *j = get_json(st, l.objects[i].key, &grc);
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(j, "keys"), k, v)
        {
            (void)v;
            if (rc == 0)
                rc = keyset_add(out, k);
        }
        json_decref(j);
        if (grc && grc != LB_ENOTFOUND)
            rc = grc;
    }
    lb_objstore_list_free(&l);
    if (rc)
        return lb_err_set(err, rc, "could not read the references to \"%s\": %s", dir,
                          lake_store_error(st));
    if (out->n > 1)
        qsort(out->k, out->n, sizeof(char *), cmp_key);
    return 0;
}

/* The lake prefix ("<tenant>/<timeline>") a key belongs to, in out. */
static bool
owner_of(const char *key, char *out, size_t cap)
{
    const char *a = strchr(key, '/'), *b = a ? strchr(a + 1, '/') : NULL;
    if (!b || (size_t)(b - key) >= cap)
        return false;
    memcpy(out, key, (size_t)(b - key));
    out[b - key] = 0;
    return true;
}

/* Write this lake's references into each owner's _ltap_refs/<timeline>.json:
 * the keys its tables list now, and those listed before that are younger
 * than the retention (its own older snapshots may still list them). The
 * owners written are kept in <prefix>/lake/_ltap_refs_out.json, for the
 * next run and for the purge of a deleted timeline. */
static int
refs_write(lake_store *st, const ltap_timeline_run *r, const char *prefix, const ltap_result *res,
           lb_err *err)
{
    char okey[400];
    snprintf(okey, sizeof(okey), "%s/%s", prefix, REFS_OUT_KEY);
    int rc;
    json_t *owners = get_json(st, okey, &rc);
    if (rc && rc != LB_ENOTFOUND)
        return lb_err_set(err, rc, "could not read \"%s\": %s", okey, lake_store_error(st));
    if (!json_is_array(owners)) {
        json_decref(owners);
        owners = json_array();
    }
    char owner[200];
    for (size_t i = 0; i < res->nshared; i++) {
        if (!owner_of(res->shared[i], owner, sizeof(owner)))
            continue;
        bool have = false;
        size_t k;
        json_t *o;
        json_array_foreach(owners, k, o) have |= strcmp(json_string_value(o), owner) == 0;
        if (!have)
            json_array_append_new(owners, json_string(owner));
    }
    int64_t now = lb_now_ms();
    json_t *still = json_array();
    size_t k;
    json_t *o;
    rc = 0;
    json_array_foreach(owners, k, o)
    {
        const char *own = json_string_value(o);
        if (!own || rc)
            continue;
        char rkey[600];
        snprintf(rkey, sizeof(rkey), "%s/%s%s.json", own, REFS_DIR, r->timeline);
        int grc;
        json_t *old = get_json(st, rkey, &grc);
        json_t *keys = json_object();
        size_t on = strlen(own);
        for (size_t i = 0; i < res->nshared; i++)
            if (strncmp(res->shared[i], own, on) == 0 && res->shared[i][on] == '/')
                json_object_set_new(keys, res->shared[i], json_integer(now));
        const char *kk;
        json_t *v;
        json_object_foreach(json_object_get(old, "keys"), kk, v)
        {
            if (!json_object_get(keys, kk) &&
                (r->retention_ms < 0 || now - json_integer_value(v) < r->retention_ms))
                json_object_set(keys, kk, v);
        }
        json_decref(old);
        if (json_object_size(keys) == 0) {
            rc = lake_store_delete(st, rkey);
            if (rc == LB_ENOTFOUND || rc == -ENOENT)
                rc = 0;
        } else {
            json_t *j = json_pack("{s:O}", "keys", keys);
            char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
            json_decref(j);
            rc = text ? lake_store_put(st, rkey, text, strlen(text)) : -ENOMEM;
            free(text);
            json_array_append(still, o);
        }
        json_decref(keys);
        if (rc && rc != -ENOMEM)
            lb_err_set(err, rc, "could not write \"%s\": %s", rkey, lake_store_error(st));
    }
    json_decref(owners);
    if (rc == 0) {
        char *text = json_dumps(still, JSON_COMPACT);
        rc = text ? lake_store_put(st, okey, text, strlen(text)) : -ENOMEM;
        free(text);
        if (rc && rc != -ENOMEM)
            lb_err_set(err, rc, "could not write \"%s\": %s", okey, lake_store_error(st));
    }
    json_decref(still);
    return rc;
}

/* Run records <prefix>/lake/_ltap_runs/<P, 16 hex digits>-<unix ms>.json:
 * the newest is kept, the others once older than the retention. */
static void
runs_expire(lake_store *st, const char *prefix, int64_t retention_ms)
{
    if (retention_ms < 0)
        return;
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/%s", prefix, RUNS_DIR);
    lb_objstore_listing l;
    memset(&l, 0, sizeof(l));
    if (lake_store_list(st, dir, &l) != 0)
        return;
    int64_t now = lb_now_ms();
    /* sorted by name, so by P: the last is the newest */
    for (size_t i = 0; i + 1 < l.nobjects; i++) {
        unsigned long long lsn;
        long long ms;
        if (sscanf(l.objects[i].key + strlen(dir), "%16llx-%lld.json", &lsn, &ms) == 2 &&
            now - ms >= retention_ms)
            lake_store_delete(st, l.objects[i].key);
    }
    lb_objstore_list_free(&l);
}

/* The parent's newest complete run at or before b: its P and the blocks
 * pending there (transactions open at its P). 1, 0 for none, or an error. */
static int
parent_run(lake_store *st, const char *pprefix, lb_lsn b, lb_lsn *s_out, vec *pending)
{
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/%s", pprefix, RUNS_DIR);
    lb_objstore_listing l;
    memset(&l, 0, sizeof(l));
    int rc = lake_store_list(st, dir, &l);
    const char *best = NULL;
    lb_lsn best_lsn = 0;
    for (size_t i = 0; rc == 0 && i < l.nobjects; i++) {
        unsigned long long lsn;
        long long ms;
        if (sscanf(l.objects[i].key + strlen(dir), "%16llx-%lld.json", &lsn, &ms) == 2 &&
            lsn <= b && lsn >= best_lsn)
            best = l.objects[i].key, best_lsn = lsn;
    }
    int found = 0;
    if (rc == 0 && best) {
        json_t *j = get_json(st, best, &rc);
        json_t *pend = json_object_get(j, "pending");
        if (rc == 0 && json_is_array(pend) && json_array_size(pend) % 5 == 0) {
            for (size_t i = 0; rc == 0 && i < json_array_size(pend); i += 5) {
                blk e = {(uint32_t)json_integer_value(json_array_get(pend, i + 1)),
                         (uint32_t)json_integer_value(json_array_get(pend, i + 2)),
                         (uint32_t)json_integer_value(json_array_get(pend, i + 3)),
                         (uint32_t)json_integer_value(json_array_get(pend, i + 4))};
                rc = vec_push(pending, &e);
            }
            vec_sort_unique(pending, blk_cmp);
            *s_out = best_lsn;
            found = rc == 0;
        }
        json_decref(j);
    }
    lb_objstore_list_free(&l);
    return rc ? rc : found;
}

/* A branch's first run: dirty since a table's commit in the parent's lake
 * (`since`, at or before the parent's run S <= B) is a block whose page
 * LSN on the standby at P is later (every change after since bumped it),
 * or a block of a transaction open at S (the parent's pending state: it
 * may have ended before B), or what the branch's own index says. */
typedef struct branch_dirty {
    ltap_dirty *d;
    const char *pgdata;
    vec pending; /* blk, sorted */
} branch_dirty;

#define SEG_BLOCKS 131072u /* 1 GB segments of 8 kB blocks */

static int
branch_dirty_test(void *arg, uint32_t spc, uint32_t db, uint32_t rel, uint32_t first, uint32_t n,
                  lb_lsn since)
{
    branch_dirty *bd = arg;
    if (ltap_dirty_test(bd->d, spc, db, rel, first, n, since))
        return 1;
    const blk *v = bd->pending.v;
    for (size_t i = 0; i < bd->pending.n; i++)
        if (v[i].spc == spc && v[i].db == db && v[i].rel == rel && v[i].block - first < n)
            return 1;
    if (!bd->pgdata || spc != 1663) /* a tablespace other than pg_default: count as dirty */
        return 1;
    int fd = -1;
    uint32_t seg = UINT32_MAX;
    int dirty = 0;
    for (uint32_t b = first; b - first < n && !dirty; b++) {
        if (b / SEG_BLOCKS != seg) {
            if (fd >= 0)
                close(fd);
            seg = b / SEG_BLOCKS;
            char path[600];
            if (seg)
                snprintf(path, sizeof(path), "%s/base/%u/%u.%u", bd->pgdata, db, rel, seg);
            else
                snprintf(path, sizeof(path), "%s/base/%u/%u", bd->pgdata, db, rel);
            fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                dirty = 1;
                break;
            }
        }
        uint32_t h[2];
        if (pread(fd, h, sizeof(h), (off_t)(b % SEG_BLOCKS) * 8192) != (ssize_t)sizeof(h))
            dirty = 1;
        else if (((lb_lsn)h[0] << 32 | h[1]) > since)
            dirty = 1;
    }
    if (fd >= 0)
        close(fd);
    return dirty;
}

/* ---- status ---------------------------------------------------------------------------- */

typedef struct tl_status {
    char tenant[64], timeline[64];
    lb_lsn run_lsn; /* P of the last complete run, 0 for none */
    int64_t run_ms, run_unix_ms;
    uint64_t heap_bytes_read, lake_bytes_written;
    char error[512]; /* the last run's, "" when it succeeded */
    ltap_table_status *tables;
    size_t ntables;
} tl_status;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static tl_status **g_tl;
static size_t g_ntl;

/* The entry of a timeline, created if missing; g_lock held. */
static tl_status *
status_of(const char *tenant, const char *timeline, bool create)
{
    for (size_t i = 0; i < g_ntl; i++)
        if (strcmp(g_tl[i]->tenant, tenant) == 0 && strcmp(g_tl[i]->timeline, timeline) == 0)
            return g_tl[i];
    if (!create)
        return NULL;
    tl_status **grown = realloc(g_tl, (g_ntl + 1) * sizeof(*grown));
    tl_status *s = calloc(1, sizeof(*s));
    if (!grown || !s) {
        free(s);
        if (grown)
            g_tl = grown;
        return NULL;
    }
    g_tl = grown;
    snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
    snprintf(s->timeline, sizeof(s->timeline), "%s", timeline);
    g_tl[g_ntl++] = s;
    return s;
}

typedef struct lake_gauges {
    lb_gauge *lsn, *lag, *files, *bytes, *rows;
} lake_gauges;

static int
gauges_of(lb_metrics *m, lake_gauges *g)
{
    static const char *labels = "tenant_id,timeline_id,database,schema,table";
    int rc = lb_metrics_gauge(m, "pageserver_lake_lsn", "LSN of a table's newest lake snapshot",
                              labels, &g->lsn);
    if (rc == 0)
        rc = lb_metrics_gauge(m, "pageserver_lake_lag_bytes",
                              "WAL bytes between a table's lake snapshot and the timeline's "
                              "last replayed LSN, at the last run or status request",
                              labels, &g->lag);
    if (rc == 0)
        rc = lb_metrics_gauge(m, "pageserver_lake_files", "live data files of a lake table", labels,
                              &g->files);
    if (rc == 0)
        rc = lb_metrics_gauge(m, "pageserver_lake_bytes", "bytes of a lake table's live files",
                              labels, &g->bytes);
    if (rc == 0)
        rc = lb_metrics_gauge(m, "pageserver_lake_rows", "rows in a lake table's live files",
                              labels, &g->rows);
    return rc;
}

static void
set_gauge(lb_gauge *family, const tl_status *s, const ltap_table_status *t, double v)
{
    lb_gauge *g;
    if (family && lb_gauge_labels(family, &g, s->tenant, s->timeline, t->database, t->schema,
                                  t->table, NULL) == 0)
        lb_gauge_set(g, v);
}

static lb_metrics *g_metrics; /* the registry of the last run (one per process) */

/* Per-table gauges of a timeline at commit LSN commit_lsn; g_lock held. */
static void
publish(const tl_status *s, lb_lsn commit_lsn)
{
    lake_gauges g = {0};
    if (!g_metrics || gauges_of(g_metrics, &g) != 0)
        return;
    for (size_t i = 0; i < s->ntables; i++) {
        const ltap_table_status *t = &s->tables[i];
        set_gauge(g.lsn, s, t, (double)t->lake_lsn);
        set_gauge(g.lag, s, t, commit_lsn > t->lake_lsn ? (double)(commit_lsn - t->lake_lsn) : 0);
        set_gauge(g.files, s, t, (double)t->files);
        set_gauge(g.bytes, s, t, (double)t->bytes);
        set_gauge(g.rows, s, t, (double)t->rows);
    }
}

static void
record_run(const ltap_timeline_run *r, ltap_result *res, int rc, const lb_err *err, int64_t ms)
{
    pthread_mutex_lock(&g_lock);
    if (r->metrics)
        g_metrics = r->metrics;
    tl_status *s = status_of(r->tenant, r->timeline, true);
    if (s) {
        s->run_ms = ms;
        s->run_unix_ms = lb_now_ms();
        if (rc == 0) {
            free(s->tables);
            s->tables = res->tables;
            s->ntables = res->ntables;
            res->tables = NULL;
            res->ntables = 0;
            s->run_lsn = r->lsn;
            s->heap_bytes_read = res->heap_bytes_read;
            s->lake_bytes_written = res->lake_bytes_written;
            s->error[0] = '\0';
            publish(s, r->lsn);
        } else {
            snprintf(s->error, sizeof(s->error), "%s", err->message);
        }
    }
    pthread_mutex_unlock(&g_lock);
}

bool
ltap__status_seed(const char *tenant, const char *timeline, lb_lsn run_lsn,
                  ltap_table_status *tables, size_t ntables, lb_metrics *metrics)
{
    bool taken = false;
    pthread_mutex_lock(&g_lock);
    if (metrics && !g_metrics)
        g_metrics = metrics;
    tl_status *s = status_of(tenant, timeline, true);
    if (s && !s->run_lsn) { /* a run since the start knows better */
        free(s->tables);
        s->tables = tables;
        s->ntables = ntables;
        s->run_lsn = run_lsn;
        taken = true;
        publish(s, run_lsn);
    }
    pthread_mutex_unlock(&g_lock);
    return taken;
}

bool
ltap__status_known(const char *tenant, const char *timeline)
{
    pthread_mutex_lock(&g_lock);
    const tl_status *s = status_of(tenant, timeline, false);
    bool known = s && s->run_lsn;
    pthread_mutex_unlock(&g_lock);
    return known;
}

json_t *
ltap_timeline_status(const char *tenant, const char *timeline, lb_lsn commit_lsn)
{
    char lsn[LB_LSN_STRLEN];
    json_t *tables = json_array();
    json_t *j = json_pack("{s:o}", "tables", tables);
    if (!j)
        return NULL;
    pthread_mutex_lock(&g_lock);
    const tl_status *s = status_of(tenant, timeline, false);
    json_object_set_new(j, "commit_lsn", json_string(lb_lsn_format(commit_lsn, lsn)));
    if (s && s->run_lsn) {
        json_object_set_new(j, "run_lsn", json_string(lb_lsn_format(s->run_lsn, lsn)));
        json_object_set_new(j, "run_ms", json_integer(s->run_ms));
        json_object_set_new(j, "heap_bytes_read", json_integer((json_int_t)s->heap_bytes_read));
        json_object_set_new(j, "lake_bytes_written",
                            json_integer((json_int_t)s->lake_bytes_written));
    }
    if (s && s->run_unix_ms)
        json_object_set_new(j, "run_unix_ms", json_integer(s->run_unix_ms));
    if (s && s->error[0])
        json_object_set_new(j, "error", json_string(s->error));
    for (size_t i = 0; s && i < s->ntables; i++) {
        const ltap_table_status *t = &s->tables[i];
        json_array_append_new(
            tables, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "database", t->database,
                              "schema", t->schema, "table", t->table, "lake_lsn",
                              lb_lsn_format(t->lake_lsn, lsn), "lag_bytes",
                              (json_int_t)(commit_lsn > t->lake_lsn ? commit_lsn - t->lake_lsn : 0),
                              "files", (json_int_t)t->files, "bytes", (json_int_t)t->bytes, "rows",
                              (json_int_t)t->rows));
    }
    if (s)
        publish(s, commit_lsn);
    pthread_mutex_unlock(&g_lock);
    return j;
}

/* ---- the run ---------------------------------------------------------------------------- */

/* Wait until the index has everything before P; 0 or LB_ETIMEOUT. */
static int
wait_for_index(const ltap_index_access *ia, lb_lsn p, int64_t wait_ms, lb_err *err)
{
    int64_t deadline = lb_mono_ms() + (wait_ms > 0 ? wait_ms : DEFAULT_INDEX_WAIT_MS);
    scan s = {.ia = ia};
    for (;;) {
        s.to = 0;
        ia->with_index(ia->owner, index_position, &s);
        if (s.to >= p)
            return 0;
        if (lb_mono_ms() > deadline) {
            char have[LB_LSN_STRLEN], want[LB_LSN_STRLEN];
            return lb_err_set(err, LB_ETIMEOUT,
                              "the WAL index is at %s, not yet at the snapshot's %s: lake run "
                              "skipped",
                              lb_lsn_format(s.to, have), lb_lsn_format(p, want));
        }
        usleep(50000);
    }
}

int
ltap_dirty_build(const ltap_index_access *ia, lake_store *st, const char *prefix, lb_lsn p,
                 int64_t index_wait_ms, ltap_dirty **out, lb_err *err)
{
    *out = NULL;
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", prefix, PENDING_KEY);
    scan *s = calloc(1, sizeof(*s));
    if (!s)
        return lb_err_set(err, -ENOMEM, "out of memory");
    *s = (scan){.ia = ia,
                .ended = {.size = sizeof(uint32_t)},
                .dirty = {.size = sizeof(blk)},
                .pending = {.size = sizeof(xblk)}};
    int rc = wait_for_index(ia, p, index_wait_ms, err);
    if (rc == 0)
        rc = load_pending(st, key, s, err);
    size_t nloaded = s->pending.n;
    if (rc == 0 && s->from > p) {
        s->from = 0; /* state from a later LSN (a restore): start over */
        s->pending.n = nloaded = 0;
    }
    s->to = p;
    if (rc == 0) {
        rc = ia->with_index(ia->owner, scan_index, s);
        if (rc && rc != -ENOMEM) {
            errmsg_arg e = {.ia = ia};
            ia->with_index(ia->owner, index_errmsg, &e);
            lb_err_set(err, rc, "WAL index: %s", e.msg);
        } else if (rc) {
            lb_err_set(err, rc, "out of memory");
        }
    }
    if (rc == 0 && (rc = settle_pending(s, nloaded)) != 0)
        lb_err_set(err, rc, "out of memory");
    if (rc) {
        ltap_dirty_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int
ltap_dirty_save(const ltap_dirty *d, lake_store *st, const char *prefix, lb_err *err)
{
    char key[512], run_key[600];
    snprintf(key, sizeof(key), "%s/%s", prefix, PENDING_KEY);
    snprintf(run_key, sizeof(run_key), "%s/%s%016" PRIX64 "-%lld.json", prefix, RUNS_DIR,
             (uint64_t)d->to, (long long)lb_now_ms());
    return save_pending(st, key, run_key, d, err);
}

lb_lsn
ltap_dirty_from(const ltap_dirty *d)
{
    return d->from;
}

size_t
ltap_dirty_blocks(const ltap_dirty *d)
{
    return d->dirty.n;
}

size_t
ltap_dirty_pending(const ltap_dirty *d)
{
    return d->pending.n;
}

void
ltap_dirty_free(ltap_dirty *d)
{
    if (!d)
        return;
    free(d->ended.v);
    free(d->dirty.v);
    free(d->pending.v);
    free(d);
}

int
ltap_timeline_materialize(const ltap_timeline_run *r, lb_err *err)
{
    lb_err local = {0};
    if (!err)
        err = &local;
    int64_t t0 = lb_mono_ms();
    char prefix[200];
    snprintf(prefix, sizeof(prefix), "%s/%s", r->tenant, r->timeline);
    lake_store *st = NULL;
    ltap_dirty *d = NULL;
    ltap_result res = {0};
    keyset refs = {0};
    branch_dirty bd = {.pending = {.size = sizeof(blk)}, .pgdata = r->pgdata};
    char pprefix[200] = "";
    lb_lsn seed_lsn = 0;
    int rc = lake_store_open(r->store_url, NULL, &st, err);
    if (rc == 0)
        rc = ltap_dirty_build(&r->index, st, prefix, r->lsn, r->index_wait_ms, &d, err);
    /* what branches of this timeline list of its lake */
    if (rc == 0)
        rc = refs_load(st, prefix, &refs, err);
    /* A branch's first run (no table list yet) starts from its parent's
     * lake at the parent's newest run at or before the branch point. */
    if (rc == 0 && r->ancestor && *r->ancestor) {
        char tkey[300];
        snprintf(tkey, sizeof(tkey), "%s/lake/_ltap_tables.json", prefix);
        int grc;
        json_t *tl = get_json(st, tkey, &grc);
        json_decref(tl);
        if (grc == LB_ENOTFOUND) {
            snprintf(pprefix, sizeof(pprefix), "%s/%s", r->tenant, r->ancestor);
            int f = parent_run(st, pprefix, r->ancestor_lsn, &seed_lsn, &bd.pending);
            if (f < 0)
                rc = lb_err_set(err, f, "could not read the parent's lake \"%s\": %s", pprefix,
                                lake_store_error(st));
            else if (f == 0)
                pprefix[0] = 0;
        } else if (grc) {
            rc = lb_err_set(err, grc, "could not read \"%s\": %s", tkey, lake_store_error(st));
        }
    }
    bd.d = d;
    if (rc == 0) {
        ltap_request req = {.conninfo = r->conninfo,
                            .lsn = r->lsn,
                            .dirty = pprefix[0] ? branch_dirty_test : ltap_dirty_test,
                            .dirty_arg = pprefix[0] ? (void *)&bd : (void *)d,
                            .store = st,
                            .prefix = prefix,
                            .chunk_blocks = r->chunk_blocks,
                            .cancel = r->cancel,
                            .seed_prefix = pprefix[0] ? pprefix : NULL,
                            .seed_lsn = seed_lsn,
                            .referenced = keyset_has,
                            .referenced_arg = &refs};
        if (pprefix[0])
            lb_info("lake tenant=%s timeline=%s starts from parent=%s lsn=%X/%X", r->tenant,
                    r->timeline, r->ancestor, LB_LSN_ARGS(seed_lsn));
        rc = ltap_materialize(&req, &res, err);
    }
    if (rc == 0)
        rc = ltap_dirty_save(d, st, prefix, err);
    if (rc == 0)
        rc = refs_write(st, r, prefix, &res, err);
    uint64_t expired = 0;
    size_t expired_snapshots = 0;
    if (rc == 0) {
        /* Snapshots first, then their files, at one time: a file goes only
         * once no snapshot a reader can choose names it (lakeview.h). */
        int64_t now = lb_now_ms();
        lb_err serr = {0};
        if (r->retention_ms >= 0 && ltap_lake_expire_snapshots(st, prefix, now - r->retention_ms,
                                                               &expired_snapshots, &serr) != 0)
            lb_warn("lake tenant=%s timeline=%s snapshots not expired error=\"%s\"", r->tenant,
                    r->timeline, serr.message);
        char rkey[260];
        snprintf(rkey, sizeof(rkey), "%s/%s", prefix, REMOVED_KEY);
        rc = expire(st, rkey, &res, r->retention_ms, now, &refs, &expired, err);
        runs_expire(st, prefix, r->retention_ms);
    }
    int64_t ms = lb_mono_ms() - t0;
    char lsn[LB_LSN_STRLEN];
    if (rc == 0)
        lb_info("lake tenant=%s timeline=%s lsn=%s tables=%zu dropped=%zu dirty_blocks=%zu "
                "pending_blocks=%zu from=%X/%X heap_bytes=%" PRIu64 " lake_bytes=%" PRIu64
                " expired_files=%" PRIu64 " expired_snapshots=%zu ms=%lld",
                r->tenant, r->timeline, lb_lsn_format(r->lsn, lsn), res.ntables, res.dropped,
                ltap_dirty_blocks(d), ltap_dirty_pending(d), LB_LSN_ARGS(ltap_dirty_from(d)),
                res.heap_bytes_read, res.lake_bytes_written, expired, expired_snapshots,
                (long long)ms);
    else
        lb_warn("lake tenant=%s timeline=%s lsn=%s error=\"%s\"", r->tenant, r->timeline,
                lb_lsn_format(r->lsn, lsn), err->message);
    record_run(r, &res, rc, err, ms);
    ltap_result_free(&res);
    keyset_free(&refs);
    free(bd.pending.v);
    ltap_dirty_free(d);
    lake_store_close(st);
    return rc;
}
