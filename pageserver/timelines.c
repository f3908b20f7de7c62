/*
 * timelines.c: creating, branching, deleting and serving timelines.
 *
 * Durability order for anything new: the layer goes to object storage
 * first, then the index that names it; the local copy of the index is
 * written last. A crash in between leaves at worst an unreferenced layer.
 * Layers are downloaded on demand into the local cache, which is only a
 * cache: a pageserver started on an empty disk reloads every timeline's
 * index from object storage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "gc.h"
#include "ingest.h"
#include "timelines.h"
#include "walserve.h"
#include "clock.h"
#include "errors.h"
#include "fileio.h"
#include "json.h"
#include "layer.h"
#include "log.h"
#include "pgproc.h"
#include "snapshot.h"
#include "wal.h"

#define MAX_CHAIN 64

static int catalog_add(ps_daemon *d, const char *tenant, const char *timeline);
static int refuse_if_deleted(ps_daemon *d, const char *tenant, const char *timeline, char *err,
                             size_t errcap);

void
ps_timeline_dir(const ps_daemon *d, const char *tenant, const char *timeline, char *out, size_t cap)
{
    snprintf(out, cap, "%s/tenants/%.32s/%.32s", d->conf.data_dir, tenant, timeline);
}

/* Registry lookups: caller holds d->lock. */
ps_timeline *
ps__find_locked(ps_daemon *d, const char *tenant, const char *timeline)
{
    for (int i = 0; i < d->ntimelines; i++)
        if (strcmp(d->timelines[i]->meta.tenant_id, tenant) == 0 &&
            strcmp(d->timelines[i]->meta.timeline_id, timeline) == 0)
            return d->timelines[i];
    return NULL;
}

static ps_tlmeta *
find_locked(ps_daemon *d, const char *tenant, const char *timeline)
{
    ps_timeline *tl = ps__find_locked(d, tenant, timeline);
    return tl ? &tl->meta : NULL;
}

static int
copy_meta(const ps_tlmeta *src, ps_tlmeta *dst)
{
    *dst = *src;
    dst->snapshots = NULL;
    if (src->nsnapshots) {
        dst->snapshots = malloc(src->nsnapshots * sizeof(*dst->snapshots));
        if (!dst->snapshots)
            return -ENOMEM;
        memcpy(dst->snapshots, src->snapshots, src->nsnapshots * sizeof(*dst->snapshots));
    }
    return 0;
}

/* Insert a copy of m (m stays the caller's) unless the id exists. */
static int
register_locked(ps_daemon *d, const ps_tlmeta *m)
{
    if (ps__find_locked(d, m->tenant_id, m->timeline_id))
        return LB_EEXIST;
    if (d->ntimelines == PS_MAX_TIMELINES)
        return -ENOSPC;
    ps_timeline *tl = calloc(1, sizeof(*tl));
    if (!tl || copy_meta(m, &tl->meta) != 0) {
        free(tl);
        return -ENOMEM;
    }
    pthread_mutex_init(&tl->save_lock, NULL);
    tl->generation = 1;
    d->timelines[d->ntimelines++] = tl;
    return 0;
}

static void
free_timeline(ps_timeline *tl)
{
    ps_tlmeta_free(&tl->meta);
    pthread_mutex_destroy(&tl->save_lock);
    free(tl);
}

/* A reference to a registered timeline, for use outside d->lock. */
static ps_timeline *
tl_ref(ps_daemon *d, const char *tenant, const char *timeline)
{
    pthread_mutex_lock(&d->lock);
    ps_timeline *tl = ps__find_locked(d, tenant, timeline);
    if (tl)
        tl->refs++;
    pthread_mutex_unlock(&d->lock);
    return tl;
}

static void
tl_unref(ps_daemon *d, ps_timeline *tl)
{
    pthread_mutex_lock(&d->lock);
    bool registered = false;
    for (int i = 0; i < d->ntimelines && !registered; i++)
        registered = d->timelines[i] == tl;
    bool last = --tl->refs == 0 && !registered;
    pthread_mutex_unlock(&d->lock);
    if (last)
        free_timeline(tl);
}

/* P of the snapshot a basebackup at lsn starts from, walking ancestors;
 * LB_ENOTFOUND if none. The caller holds d->lock. */
static int
snapshot_at_locked(ps_daemon *d, const char *tenant, const char *timeline, lb_lsn lsn,
                   lb_lsn *snap_lsn)
{
    char cur[PS_ID_LEN + 1];
    snprintf(cur, sizeof(cur), "%s", timeline);
    for (int depth = 0; depth < MAX_CHAIN && cur[0]; depth++) {
        ps_tlmeta *m = find_locked(d, tenant, cur);
        if (!m)
            break;
        const ps_snapshot_meta *s = ps_tlmeta_snapshot_at(m, lsn);
        if (s) {
            *snap_lsn = s->lsn;
            return 0;
        }
        if (m->ancestor_id[0] && m->ancestor_lsn < lsn)
            lsn = m->ancestor_lsn;
        snprintf(cur, sizeof(cur), "%s", m->ancestor_id);
    }
    return LB_ENOTFOUND;
}

/* ---- storage ------------------------------------------------------------------- */

static int
upload_fd(ps_daemon *d, const char *key, int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    lb_objstore *store = NULL;
    int rc = ps_store_acquire(d, &store);
    if (rc == 0)
        rc = lb_objstore_put_fd(store, key, fd);
    if (rc) {
        lb_counter_inc(d->storage_errors);
        lb_error("could not upload \"%s\": %s", key,
                 store ? lb_objstore_error(store) : lb_strerror(rc));
    } else {
        lb_counter_add(d->storage_bytes, (double)st.st_size);
    }
    ps_store_release(d, store);
    return rc;
}

static int
upload_file(ps_daemon *d, const char *key, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = upload_fd(d, key, fd);
    close(fd);
    return rc;
}

/* The index of m: serialized once; those bytes go to object storage, then
 * to the local copy (a unique temporary file renamed over index.json), so
 * what is uploaded is what was written. Callers order their saves
 * (save_timeline), or own m alone (a timeline not registered yet). */
static int
write_index(ps_daemon *d, const ps_tlmeta *m)
{
    char dir[PATH_MAX], path[PATH_MAX + 16], key[256];
    ps_timeline_dir(d, m->tenant_id, m->timeline_id, dir, sizeof(dir));
    int rc = lb_mkdir_p(dir, 0700);
    if (rc)
        return rc;
    json_t *j = ps_tlmeta_to_json(m);
    char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!text)
        return -ENOMEM;
    size_t len = strlen(text);
    snprintf(key, sizeof(key), "%s/%s/index/index.json", m->tenant_id, m->timeline_id);
    lb_objstore *store = NULL;
    rc = ps_store_acquire(d, &store);
    if (rc == 0 && (rc = lb_objstore_put(store, key, text, len)) != 0) {
        lb_counter_inc(d->storage_errors);
        lb_error("could not upload \"%s\": %s", key, lb_objstore_error(store));
    } else if (rc == 0) {
        lb_counter_add(d->storage_bytes, (double)len);
    }
    ps_store_release(d, store);
    snprintf(path, sizeof(path), "%s/index.json", dir);
    if (rc == 0)
        rc = lb_write_file_atomic(path, text, len);
    free(text);
    return rc;
}

/* Save the registry's current state of a timeline, ordered with every
 * other save of it (see ps_timeline). LB_ENOTFOUND once it is gone. */
static int
save_timeline(ps_daemon *d, const char *tenant, const char *timeline)
{
    ps_timeline *tl = tl_ref(d, tenant, timeline);
    if (!tl)
        return LB_ENOTFOUND;
    pthread_mutex_lock(&tl->save_lock);
    ps_tlmeta copy;
    pthread_mutex_lock(&d->lock);
    uint64_t gen = tl->generation;
    int rc = copy_meta(&tl->meta, &copy);
    pthread_mutex_unlock(&d->lock);
    if (rc == 0 && gen > tl->saved_generation) {
        rc = write_index(d, &copy);
        if (rc == 0)
            tl->saved_generation = gen;
    }
    ps_tlmeta_free(&copy);
    pthread_mutex_unlock(&tl->save_lock);
    tl_unref(d, tl);
    return rc;
}

typedef struct dl {
    int fd;
} dl;

static int
dl_write(void *arg, const char *bytes, size_t n)
{
    return lb_write_all(((dl *)arg)->fd, bytes, n);
}

/* Open a layer, downloading it into the local cache if needed. Each
 * download has a temporary file of its own: two readers of a missing
 * layer both download it, and the second rename replaces the first's
 * identical file. */
static int
open_layer(ps_daemon *d, const char *tenant, const char *timeline, const char *name, ps_layer **out)
{
    char dir[PATH_MAX], path[PATH_MAX + 128];
    ps_timeline_dir(d, tenant, timeline, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/layers/%s", dir, name);
    if (access(path, R_OK) != 0) {
        char key[256], tmp[PATH_MAX + 160], ldir[PATH_MAX + 16];
        snprintf(ldir, sizeof(ldir), "%s/layers", dir);
        lb_mkdir_p(ldir, 0700);
        snprintf(key, sizeof(key), "%.32s/%.32s/layers/%.63s", tenant, timeline, name);
        snprintf(tmp, sizeof(tmp), "%s.download.XXXXXX", path);
        dl ctx = {mkostemp(tmp, O_CLOEXEC)};
        if (ctx.fd < 0)
            return -errno;
        lb_objstore *store = NULL;
        int rc = ps_store_acquire(d, &store);
        if (rc == 0)
            rc = lb_objstore_get_stream(store, key, dl_write, &ctx);
        if (rc == 0)
            rc = lb_fsync(ctx.fd);
        struct stat st;
        if (rc == 0 && fstat(ctx.fd, &st) == 0)
            lb_counter_add(d->download_bytes, (double)st.st_size);
        close(ctx.fd);
        if (rc == 0 && rename(tmp, path) != 0)
            rc = -errno;
        if (rc) {
            unlink(tmp);
            lb_counter_inc(d->storage_errors);
            lb_error("could not download layer \"%s\": %s", key,
                     store && rc != -ENOMEM ? lb_objstore_error(store) : lb_strerror(rc));
        }
        ps_store_release(d, store);
        if (rc)
            return rc;
    }
    return ps_layer_open(path, out);
}

/* ---- running PostgreSQL tools --------------------------------------------------- */

/* PostgreSQL programs run through common/pgproc.c, as conf.pg_user when
 * the pageserver is root. */
int
ps_run_pg(ps_daemon *d, lb_buf *out, const char *tool, const char *const args[])
{
    lb_pg_env env = {.bin_dir = d->conf.pg_bin_dir, .user = d->conf.pg_user};
    return lb_pg_run(&env, tool, args, out);
}

int
ps_chown_to_pg(ps_daemon *d, const char *path)
{
    lb_pg_env env = {.bin_dir = d->conf.pg_bin_dir, .user = d->conf.pg_user};
    return lb_pg_chown_tree(&env, path);
}

/* ---- create ---------------------------------------------------------------------- */

int
ps_create_root(ps_daemon *d, const char *tenant, const char *timeline, ps_tlmeta *out, char *err,
               size_t errcap)
{
    pthread_mutex_lock(&d->lock);
    bool exists = find_locked(d, tenant, timeline) != NULL;
    pthread_mutex_unlock(&d->lock);
    if (exists) {
        snprintf(err, errcap, "timeline %s/%s already exists", tenant, timeline);
        return LB_EEXIST;
    }
    int drc = refuse_if_deleted(d, tenant, timeline, err, errcap);
    if (drc)
        return drc;
    char dir[PATH_MAX], boot[PATH_MAX + 96], pgdata[PATH_MAX + 128], ldir[PATH_MAX + 16];
    char boot_root[PATH_MAX + 16];
    ps_timeline_dir(d, tenant, timeline, dir, sizeof(dir));
    /* initdb runs as the PostgreSQL user: bootstrap where it can reach
     * (data_dir and data_dir/bootstrap are traversable, not listable). */
    snprintf(boot_root, sizeof(boot_root), "%s/bootstrap", d->conf.data_dir);
    lb_mkdir_p(boot_root, 0711);
    chmod(d->conf.data_dir, 0711);
    chmod(boot_root, 0711);
    snprintf(boot, sizeof(boot), "%s/%.32s-%.32s", boot_root, tenant, timeline);
    snprintf(pgdata, sizeof(pgdata), "%s/pgdata", boot);
    snprintf(ldir, sizeof(ldir), "%s/layers", dir);
    lb_rm_rf(boot);
    int rc = lb_mkdir_p(boot, 0700);
    if (rc == 0)
        rc = lb_mkdir_p(ldir, 0700);
    if (rc == 0)
        rc = ps_chown_to_pg(d, boot);
    if (rc) {
        snprintf(err, errcap, "could not prepare \"%s\": %s", boot, lb_strerror(rc));
        return rc;
    }
    lb_buf text = LB_BUF_INIT;
    const char *initdb[] = {"-k", "-A",   "trust", "-U", "postgres", "--no-instructions",
                            "-D", pgdata, NULL};
    int st = ps_run_pg(d, &text, "initdb", initdb);
    if (st != 0) {
        const char *tail = text.data ? text.data : "";
        if (text.len > 300)
            tail += text.len - 300;
        snprintf(err, errcap, "initdb failed (exit %d): ...%s", st, tail);
        lb_buf_free(&text);
        lb_rm_rf(dir);
        return LB_EUNSUPPORTED;
    }
    lb_buf_reset(&text);
    const char *cd[] = {pgdata, NULL};
    st = ps_run_pg(d, &text, "pg_controldata", cd);
    char v_sysid[64], v_ckpt[32], v_redo[32], v_seg[32], v_tli[32];
    ps_tlmeta m = {0};
    lb_lsn ckpt = 0;
    ps_snapshot_meta snap = {0};
    if (st != 0 ||
        lb_pg_controldata_field(text.data, "Database system identifier", v_sysid,
                                sizeof(v_sysid)) ||
        lb_pg_controldata_field(text.data, "Latest checkpoint location", v_ckpt, sizeof(v_ckpt)) ||
        lb_pg_controldata_field(text.data, "Latest checkpoint's REDO location", v_redo,
                                sizeof(v_redo)) ||
        lb_pg_controldata_field(text.data, "Bytes per WAL segment", v_seg, sizeof(v_seg)) ||
        lb_pg_controldata_field(text.data, "Latest checkpoint's TimeLineID", v_tli,
                                sizeof(v_tli)) ||
        lb_lsn_parse(v_ckpt, &ckpt) || lb_lsn_parse(v_redo, &snap.redo_lsn)) {
        snprintf(err, errcap, "could not read the new cluster's control data");
        lb_buf_free(&text);
        lb_rm_rf(dir);
        return LB_EPARSE;
    }
    lb_buf_free(&text);
    snprintf(m.tenant_id, sizeof(m.tenant_id), "%s", tenant);
    snprintf(m.timeline_id, sizeof(m.timeline_id), "%s", timeline);
    m.system_id = strtoull(v_sysid, NULL, 10);
    m.wal_seg_size = (uint32_t)strtoul(v_seg, NULL, 10);
    m.pg_tli = (uint32_t)strtoul(v_tli, NULL, 10);
    rc = ps_wal_record_end(pgdata, m.pg_tli, m.wal_seg_size, ckpt, &snap.lsn);
    if (rc) {
        snprintf(err, errcap, "could not find the end of the bootstrap WAL: %s", lb_strerror(rc));
        lb_rm_rf(dir);
        return rc;
    }
    m.start_lsn = m.last_record_lsn = snap.lsn;
    snprintf(snap.layer, sizeof(snap.layer), "%016" PRIX64 ".layer", snap.lsn);
    snap.created_ms = lb_now_ms();
    snap.full = true;

    char lpath[PATH_MAX + 100], key[256];
    snprintf(lpath, sizeof(lpath), "%s/%s", ldir, snap.layer);
    ps_layer_info info = {
        .lsn = snap.lsn, .redo_lsn = snap.redo_lsn, .created_unix_ms = (uint64_t)snap.created_ms};
    ps_snapshot_stats stats;
    rc = ps_snapshot_take(pgdata, &info, m.wal_seg_size, lpath, &stats);
    snap.bytes = stats.bytes;
    snprintf(key, sizeof(key), "%s/%s/layers/%s", tenant, timeline, snap.layer);
    if (rc == 0)
        rc = upload_file(d, key, lpath);
    if (rc == 0)
        rc = ps_tlmeta_add_snapshot(&m, &snap);
    if (rc == 0)
        rc = write_index(d, &m); /* not registered yet: nobody else saves it */
    if (rc == 0)
        rc = catalog_add(d, tenant, timeline); /* last: a listed timeline has its index */
    lb_rm_rf(boot);
    if (rc == 0) {
        pthread_mutex_lock(&d->lock);
        rc = register_locked(d, &m);
        pthread_mutex_unlock(&d->lock);
    }
    if (rc) {
        snprintf(err, errcap, "could not bootstrap timeline: %s", lb_strerror(rc));
        ps_tlmeta_free(&m);
        return rc;
    }
    lb_info("timeline bootstrapped tenant=%s timeline=%s lsn=%X/%X layer_bytes=%llu", tenant,
            timeline, LB_LSN_ARGS(snap.lsn), (unsigned long long)snap.bytes);
    *out = m; /* hands over the snapshots array */
    return 0;
}

static int
branch_gone(char *err, size_t errcap, const char *tenant, const char *ancestor)
{
    snprintf(err, errcap, "ancestor timeline %s/%s not found", tenant, ancestor);
    return LB_ENOTFOUND;
}

/* How long a branch request waits for the ancestor's ingest to reach its LSN. */
#define BRANCH_WAIT_MS 30000

int
ps_create_branch(ps_daemon *d, const char *tenant, const char *timeline, const char *ancestor,
                 lb_lsn lsn, ps_tlmeta *out, char *err, size_t errcap)
{
    /* The PostgreSQL timeline of the ancestor's WAL at the branch point,
     * and its commit LSN; a branch point that is committed but not yet
     * ingested is waited for, a little. */
    ps_tlmeta a;
    int rc = refuse_if_deleted(d, tenant, timeline, err, errcap);
    if (rc)
        return rc;
    rc = ps_get_timeline(d, tenant, ancestor, &a);
    if (rc)
        return branch_gone(err, errcap, tenant, ancestor);
    uint32_t tli = 0;
    lb_lsn commit = 0;
    if (lsn >= a.start_lsn) {
        rc = ps_tli_at(d, &a, lsn, &tli, &commit, err, errcap);
        if (rc == 0 && lsn > commit)
            tli = 0; /* refused below */
        for (int64_t waited = 0;
             rc == 0 && tli && lsn > a.last_record_lsn && waited < BRANCH_WAIT_MS; waited += 50) {
            ps_tlmeta_free(&a);
            lb_sleep_ms(50);
            if (ps_get_timeline(d, tenant, ancestor, &a) != 0)
                return branch_gone(err, errcap, tenant, ancestor);
        }
    }
    ps_tlmeta_free(&a);
    if (rc)
        return rc; /* err says why */

    ps_tlmeta m = {0};
    rc = 0;
    /* One critical section with gc (which plans and applies under the same
     * lock): a branch registered here is a branch point for every later gc
     * pass, and one at an LSN whose snapshots gc already dropped is
     * refused. */
    pthread_mutex_lock(&d->lock);
    ps_timeline *anc_tl = ps__find_locked(d, tenant, ancestor);
    ps_tlmeta *anc = anc_tl && !anc_tl->deleting ? &anc_tl->meta : NULL;
    lb_lsn base;
    if (find_locked(d, tenant, timeline)) {
        snprintf(err, errcap, "timeline %s/%s already exists", tenant, timeline);
        rc = LB_EEXIST;
    } else if (!anc) {
        snprintf(err, errcap, "ancestor timeline %s/%s not found", tenant, ancestor);
        rc = LB_ENOTFOUND;
    } else if (lsn < anc->start_lsn || lsn > anc->last_record_lsn || !tli) {
        char s0[LB_LSN_STRLEN], e[LB_LSN_STRLEN], l[LB_LSN_STRLEN];
        snprintf(err, errcap, "branch LSN %s is outside the ancestor's WAL %s-%s",
                 lb_lsn_format(lsn, l), lb_lsn_format(anc->start_lsn, s0),
                 lb_lsn_format(anc->last_record_lsn, e));
        rc = LB_ECONFLICT;
    } else if (snapshot_at_locked(d, tenant, ancestor, lsn, &base) != 0) {
        char l[LB_LSN_STRLEN];
        snprintf(err, errcap,
                 "branch LSN %s is older than every snapshot of the ancestor that gc kept "
                 "(gc_retention)",
                 lb_lsn_format(lsn, l));
        rc = LB_ECONFLICT;
    } else {
        snprintf(m.tenant_id, sizeof(m.tenant_id), "%s", tenant);
        snprintf(m.timeline_id, sizeof(m.timeline_id), "%s", timeline);
        snprintf(m.ancestor_id, sizeof(m.ancestor_id), "%s", ancestor);
        m.ancestor_lsn = m.start_lsn = m.last_record_lsn = lsn;
        m.system_id = anc->system_id;
        m.wal_seg_size = anc->wal_seg_size;
        m.pg_tli = tli;
        rc = register_locked(d, &m);
    }
    pthread_mutex_unlock(&d->lock);
    if (rc)
        return rc;
    rc = save_timeline(d, tenant, timeline);
    if (rc == 0)
        rc = catalog_add(d, tenant, timeline);
    if (rc) {
        snprintf(err, errcap, "could not store the branch: %s", lb_strerror(rc));
        return rc;
    }
    lb_info("branch created tenant=%s timeline=%s ancestor=%s lsn=%X/%X", tenant, timeline,
            ancestor, LB_LSN_ARGS(lsn));
    *out = m;
    return 0;
}

bool
ps_is_ancestor(ps_daemon *d, const char *tenant, const char *ancestor, const char *timeline)
{
    char cur[PS_ID_LEN + 1];
    snprintf(cur, sizeof(cur), "%s", timeline);
    bool found = false;
    pthread_mutex_lock(&d->lock);
    for (int depth = 0; depth < MAX_CHAIN && cur[0] && !found; depth++) {
        ps_tlmeta *m = find_locked(d, tenant, cur);
        if (!m)
            break;
        found = strcmp(m->ancestor_id, ancestor) == 0;
        snprintf(cur, sizeof(cur), "%s", m->ancestor_id);
    }
    pthread_mutex_unlock(&d->lock);
    return found;
}

int
ps_get_timeline(ps_daemon *d, const char *tenant, const char *timeline, ps_tlmeta *out)
{
    pthread_mutex_lock(&d->lock);
    ps_tlmeta *m = find_locked(d, tenant, timeline);
    int rc = m ? copy_meta(m, out) : LB_ENOTFOUND;
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* Object storage layout besides <tenant>/<timeline>/: one empty object
 * per timeline, catalog/<tenant>/<timeline>, so that start-up finds every
 * timeline with one listing of a prefix, without delimiters (and without
 * walking the layers); deleted/<tenant>/<timeline> marks a soft-deleted
 * one, with its deletion time. */
#define CATALOG_PREFIX "catalog/"
#define DELETED_PREFIX "deleted/"

/* "<tenant>/<timeline>" (the rest of a catalog or marker key) into ids. */
static bool
catalog_ids(const char *rest, char *tenant, char *timeline)
{
    if (strlen(rest) != 2 * PS_ID_LEN + 1 || rest[PS_ID_LEN] != '/')
        return false;
    memcpy(tenant, rest, PS_ID_LEN);
    tenant[PS_ID_LEN] = '\0';
    memcpy(timeline, rest + PS_ID_LEN + 1, PS_ID_LEN);
    timeline[PS_ID_LEN] = '\0';
    return lb_json_is_id(tenant) && lb_json_is_id(timeline);
}

static int
catalog_add(ps_daemon *d, const char *tenant, const char *timeline)
{
    char key[128];
    snprintf(key, sizeof(key), CATALOG_PREFIX "%.32s/%.32s", tenant, timeline);
    lb_objstore *store = NULL;
    int rc = ps_store_acquire(d, &store);
    if (rc == 0 && (rc = lb_objstore_put(store, key, "", 0)) != 0) {
        lb_counter_inc(d->storage_errors);
        lb_error("could not upload \"%s\": %s", key, lb_objstore_error(store));
    }
    ps_store_release(d, store);
    return rc;
}

/* The marker of a soft-deleted timeline. Its objects stay until
 * ps_purge_deleted: a DELETE sent by mistake loses nothing for
 * deleted_retention (remove the marker to bring the timeline back). */

int
ps_delete_timeline(ps_daemon *d, const char *tenant, const char *timeline, char *err, size_t errcap)
{
    /* Checked and marked in one critical section with branch creation:
     * no branch of it can appear until it is gone. */
    pthread_mutex_lock(&d->lock);
    ps_timeline *tl = ps__find_locked(d, tenant, timeline);
    int rc = 0;
    if (!tl || tl->deleting) {
        snprintf(err, errcap, "timeline %s/%s not found", tenant, timeline);
        rc = LB_ENOTFOUND;
    }
    for (int i = 0; rc == 0 && i < d->ntimelines; i++) {
        ps_tlmeta *m = &d->timelines[i]->meta;
        if (strcmp(m->tenant_id, tenant) == 0 && strcmp(m->ancestor_id, timeline) == 0) {
            snprintf(err, errcap, "timeline %s has branch %s: delete the branch first", timeline,
                     m->timeline_id);
            rc = LB_ECONFLICT;
        }
    }
    if (rc == 0) {
        tl->deleting = true;
        tl->refs++;
    }
    pthread_mutex_unlock(&d->lock);
    if (rc)
        return rc;

    /* Nothing may still write the timeline: its ingest (snapshots,
     * consumer reports), WAL index and redo standby stop first. */
    ps_ingest_stop(d, tenant, timeline);

    char key[256], body[96];
    snprintf(key, sizeof(key), DELETED_PREFIX "%s/%s", tenant, timeline);
    snprintf(body, sizeof(body), "{\"deleted_ms\": %lld}\n", (long long)lb_now_ms());
    lb_objstore *store = NULL;
    rc = ps_store_acquire(d, &store);
    if (rc == 0 && (rc = lb_objstore_put(store, key, body, strlen(body))) != 0) {
        lb_counter_inc(d->storage_errors);
        snprintf(err, errcap, "could not mark the timeline deleted in object storage: %s",
                 lb_objstore_error(store));
    } else if (rc) {
        snprintf(err, errcap, "could not open object storage: %s", lb_strerror(rc));
    }
    ps_store_release(d, store);

    pthread_mutex_lock(&d->lock);
    if (rc) {
        tl->deleting = false; /* still whole: it goes on, without its ingest */
    } else {
        for (int i = 0; i < d->ntimelines; i++)
            if (d->timelines[i] == tl) {
                d->timelines[i] = d->timelines[--d->ntimelines];
                break;
            }
    }
    pthread_mutex_unlock(&d->lock);
    if (rc) {
        tl_unref(d, tl);
        if (tl->meta.nsafekeepers)
            ps_ingest_start(d, tenant, timeline);
        return rc;
    }
    /* Every save in flight has finished (it holds save_lock) before the
     * local directory goes. */
    pthread_mutex_lock(&tl->save_lock);
    char dir[PATH_MAX], standby[PATH_MAX];
    ps_timeline_dir(d, tenant, timeline, dir, sizeof(dir));
    lb_rm_rf(dir);
    snprintf(standby, sizeof(standby), "%.4000s/standby/%.32s-%.32s", d->conf.data_dir, tenant,
             timeline);
    lb_rm_rf(standby);
    pthread_mutex_unlock(&tl->save_lock);
    tl_unref(d, tl);
    lb_info("timeline deleted tenant=%s timeline=%s purge_after_ms=%lld", tenant, timeline,
            (long long)d->conf.deleted_retention_ms);
    return 0;
}

/* Whether the timeline's prefix has the deletion marker; *deleted_ms gets
 * its time. 0, LB_ENOTFOUND (not deleted), or a storage error. */
static int
deleted_marker(lb_objstore *store, const char *tenant, const char *timeline, int64_t *deleted_ms)
{
    char key[256];
    snprintf(key, sizeof(key), DELETED_PREFIX "%.32s/%.32s", tenant, timeline);
    lb_buf body = LB_BUF_INIT;
    int rc = lb_objstore_get(store, key, &body);
    *deleted_ms = 0;
    if (rc == 0) {
        json_t *j = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
        json_t *v = json_object_get(j, "deleted_ms");
        *deleted_ms = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
        json_decref(j);
    }
    lb_buf_free(&body);
    return rc;
}

/* A new timeline may not take the id of one whose purge is pending: its
 * old layers and index are still under that prefix. */
static int
refuse_if_deleted(ps_daemon *d, const char *tenant, const char *timeline, char *err, size_t errcap)
{
    lb_objstore *store = NULL;
    int64_t when;
    int rc = ps_store_acquire(d, &store);
    if (rc == 0)
        rc = deleted_marker(store, tenant, timeline, &when);
    if (rc == 0) {
        snprintf(err, errcap,
                 "timeline %s/%s was deleted and its objects are not purged yet: choose another "
                 "id",
                 tenant, timeline);
        rc = LB_EEXIST;
    } else if (rc == LB_ENOTFOUND) {
        rc = 0;
    } else {
        snprintf(err, errcap, "could not read object storage: %s",
                 store ? lb_objstore_error(store) : lb_strerror(rc));
    }
    ps_store_release(d, store);
    return rc;
}

/* The prefixes under a timeline that the pageserver writes; wal/ is the
 * safekeepers' and is never touched here. lake/ holds only the timeline's
 * own lake files: what a branch shares of its parent's lake stays under
 * the parent (ltap/timeline.h). */
static const char *const owned_prefixes[] = {"layers/", "walindex/", "lake/", NULL};

/* A branch's references into its ancestors' lakes
 * (<owner>/lake/_ltap_refs/<timeline>.json, listed in its
 * lake/_ltap_refs_out.json): deleted first, so that the owners' expiry
 * may delete what only this timeline listed. */
static int
purge_lake_refs(lb_objstore *store, const char *tenant, const char *timeline)
{
    char key[256];
    snprintf(key, sizeof(key), "%.32s/%.32s/lake/_ltap_refs_out.json", tenant, timeline);
    lb_buf body = LB_BUF_INIT;
    int rc = lb_objstore_get(store, key, &body);
    if (rc == LB_ENOTFOUND) {
        lb_buf_free(&body);
        return 0;
    }
    json_t *j = rc == 0 ? json_loadb(body.data ? body.data : "", body.len, 0, NULL) : NULL;
    lb_buf_free(&body);
    size_t i;
    json_t *o;
    json_array_foreach(j, i, o)
    {
        const char *owner = json_string_value(o);
        char rkey[400];
        if (!owner || rc)
            continue;
        snprintf(rkey, sizeof(rkey), "%.200s/lake/_ltap_refs/%.32s.json", owner, timeline);
        rc = lb_objstore_delete(store, rkey);
    }
    json_decref(j);
    return rc;
}

static int
purge_one(ps_daemon *d, lb_objstore *store, const char *tenant, const char *timeline)
{
    int rc = purge_lake_refs(store, tenant, timeline);
    for (int p = 0; owned_prefixes[p] && rc == 0; p++) {
        char prefix[256];
        snprintf(prefix, sizeof(prefix), "%.32s/%.32s/%s", tenant, timeline, owned_prefixes[p]);
        lb_objstore_listing list;
        if ((rc = lb_objstore_list(store, prefix, NULL, &list)) != 0)
            break;
        for (size_t i = 0; i < list.nobjects && rc == 0; i++)
            rc = lb_objstore_delete(store, list.objects[i].key);
        lb_objstore_list_free(&list);
    }
    char key[256];
    snprintf(key, sizeof(key), "%.32s/%.32s/index/index.json", tenant, timeline);
    if (rc == 0)
        rc = lb_objstore_delete(store, key);
    snprintf(key, sizeof(key), CATALOG_PREFIX "%.32s/%.32s", tenant, timeline);
    if (rc == 0)
        rc = lb_objstore_delete(store, key);
    /* The marker last: a purge cut short is taken up again next time. */
    snprintf(key, sizeof(key), DELETED_PREFIX "%.32s/%.32s", tenant, timeline);
    if (rc == 0)
        rc = lb_objstore_delete(store, key);
    if (rc) {
        lb_counter_inc(d->storage_errors);
        lb_warn("could not purge deleted timeline tenant=%s timeline=%s: %s", tenant, timeline,
                lb_objstore_error(store));
    } else {
        lb_info("deleted timeline purged tenant=%s timeline=%s", tenant, timeline);
    }
    return rc;
}

int
ps_purge_deleted(ps_daemon *d, size_t *purged)
{
    *purged = 0;
    lb_objstore *store = NULL;
    int rc = ps_store_acquire(d, &store);
    lb_objstore_listing list = {0};
    if (rc == 0)
        rc = lb_objstore_list(store, DELETED_PREFIX, NULL, &list);
    int64_t now = lb_now_ms();
    for (size_t i = 0; rc == 0 && i < list.nobjects; i++) {
        char tenant[PS_ID_LEN + 1], timeline[PS_ID_LEN + 1];
        if (!catalog_ids(list.objects[i].key + strlen(DELETED_PREFIX), tenant, timeline)) {
            lb_warn("skipped \"%s\" in remote storage: not a deleted timeline's marker",
                    list.objects[i].key);
            continue;
        }
        int64_t when;
        int mrc = deleted_marker(store, tenant, timeline, &when);
        if (mrc == LB_ENOTFOUND || (mrc == 0 && now - when < d->conf.deleted_retention_ms))
            continue;
        if (mrc) {
            rc = mrc;
            break;
        }
        pthread_mutex_lock(&d->lock);
        bool live = ps__find_locked(d, tenant, timeline) != NULL;
        pthread_mutex_unlock(&d->lock);
        if (!live && purge_one(d, store, tenant, timeline) == 0)
            (*purged)++;
    }
    if (rc)
        lb_warn("could not look for deleted timelines to purge: %s",
                store ? lb_objstore_error(store) : lb_strerror(rc));
    lb_objstore_list_free(&list);
    ps_store_release(d, store);
    return rc;
}

/* ---- basebackup ------------------------------------------------------------------- */

struct ps_basebackup_plan {
    ps_layer **layers; /* newest first */
    size_t n;
    lb_lsn wal_cut; /* the branch point when the snapshot is an ancestor's */
    uint32_t seg_size;
};

void
ps_basebackup_free(ps_basebackup_plan *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->n; i++)
        ps_layer_close(plan->layers[i]);
    free(plan->layers);
    free(plan);
}

int
ps_basebackup_write(ps_basebackup_plan *plan, lb_tar_writer *tar)
{
    return ps_reconstruct_tar(plan->layers, plan->n, tar, plan->wal_cut, plan->seg_size);
}

int
ps_basebackup_write_dir(ps_basebackup_plan *plan, const char *target)
{
    return ps_reconstruct_dir(plan->layers, plan->n, target, plan->wal_cut, plan->seg_size);
}

int
ps_set_safekeepers(ps_daemon *d, const char *tenant, const char *timeline,
                   const json_t *safekeepers, char *err, size_t errcap)
{
    pthread_mutex_lock(&d->lock);
    ps_timeline *tl = ps__find_locked(d, tenant, timeline);
    int rc = tl && !tl->deleting ? ps_tlmeta_set_safekeepers(&tl->meta, safekeepers, err, errcap)
                                 : LB_ENOTFOUND;
    if (rc == LB_ENOTFOUND)
        snprintf(err, errcap, "timeline %s/%s not found", tenant, timeline);
    if (rc == 0)
        tl->generation++;
    pthread_mutex_unlock(&d->lock);
    if (rc)
        return rc;
    rc = save_timeline(d, tenant, timeline);
    if (rc)
        snprintf(err, errcap, "could not store the timeline: %s", lb_strerror(rc));
    return rc;
}

int
ps_add_snapshot(ps_daemon *d, const char *tenant, const char *timeline,
                const ps_snapshot_meta *snap, const char *layer_path)
{
    char key[256];
    snprintf(key, sizeof(key), "%.32s/%.32s/layers/%.63s", tenant, timeline, snap->layer);
    int rc = upload_file(d, key, layer_path);
    if (rc)
        return rc;
    pthread_mutex_lock(&d->lock);
    ps_timeline *tl = ps__find_locked(d, tenant, timeline);
    rc = tl && !tl->deleting ? ps_tlmeta_add_snapshot(&tl->meta, snap) : LB_ENOTFOUND;
    if (rc == 0)
        tl->generation++;
    pthread_mutex_unlock(&d->lock);
    if (rc)
        return rc;
    return save_timeline(d, tenant, timeline);
}

int
ps_gc_timeline(ps_daemon *d, const char *tenant, const char *timeline, int64_t horizon_ms,
               size_t *deleted)
{
    *deleted = 0;
    /* Plan and drop from the index in one critical section: the branch
     * points are those of every branch that exists when the index changes
     * (branch creation registers under the same lock). */
    lb_lsn *points = NULL;
    size_t npoints = 0, ndrop = 0;
    bool *keep = NULL;
    char(*drop)[64] = NULL;
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    ps_timeline *tl = ps__find_locked(d, tenant, timeline);
    ps_tlmeta *m = tl && !tl->deleting ? &tl->meta : NULL;
    if (!m)
        rc = LB_ENOTFOUND;
    for (int i = 0; rc == 0 && i < d->ntimelines; i++) {
        const ps_tlmeta *c = &d->timelines[i]->meta;
        if (strcmp(c->tenant_id, tenant) == 0 && strcmp(c->ancestor_id, timeline) == 0) {
            lb_lsn *p = realloc(points, (npoints + 1) * sizeof(*p));
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            points = p;
            points[npoints++] = c->ancestor_lsn;
        }
    }
    size_t n = m ? m->nsnapshots : 0;
    if (rc == 0 &&
        (!(keep = calloc(n ? n : 1, sizeof(*keep))) || !(drop = calloc(n ? n : 1, sizeof(*drop)))))
        rc = -ENOMEM;
    if (rc == 0) {
        ps_gc_plan(m, points, npoints, horizon_ms, keep);
        keep[n ? n - 1 : 0] = true; /* never the newest */
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            if (keep[i])
                m->snapshots[kept++] = m->snapshots[i];
            else
                memcpy(drop[ndrop++], m->snapshots[i].layer, sizeof(drop[0]));
        }
        m->nsnapshots = kept;
        if (ndrop)
            tl->generation++;
    }
    pthread_mutex_unlock(&d->lock);
    free(points);
    free(keep);
    if (rc == 0 && ndrop)
        rc = save_timeline(d, tenant, timeline); /* the index no longer names them */
    if (rc || !ndrop) {
        free(drop);
        return rc;
    }
    char dir[PATH_MAX];
    ps_timeline_dir(d, tenant, timeline, dir, sizeof(dir));
    lb_objstore *store = NULL;
    rc = ps_store_acquire(d, &store);
    for (size_t k = 0; rc == 0 && k < ndrop; k++) {
        char key[256], path[PATH_MAX + 128];
        snprintf(key, sizeof(key), "%.32s/%.32s/layers/%.63s", tenant, timeline, drop[k]);
        int drc = lb_objstore_delete(store, key);
        if (drc && drc != LB_ENOTFOUND) {
            lb_counter_inc(d->storage_errors);
            lb_warn("could not delete \"%s\": %s", key, lb_objstore_error(store));
            rc = rc ? rc : drc;
        }
        snprintf(path, sizeof(path), "%s/layers/%s", dir, drop[k]);
        unlink(path);
    }
    ps_store_release(d, store);
    free(drop);
    lb_counter_add(d->gc_deleted, (double)ndrop);
    *deleted = ndrop;
    return rc;
}

void
ps_set_last_record_lsn(ps_daemon *d, const char *tenant, const char *timeline, lb_lsn lsn)
{
    pthread_mutex_lock(&d->lock);
    ps_tlmeta *m = find_locked(d, tenant, timeline);
    if (m && lsn > m->last_record_lsn)
        m->last_record_lsn = lsn;
    pthread_mutex_unlock(&d->lock);
}

bool
ps_image_due(ps_daemon *d, const char *tenant, const char *timeline)
{
    /* Delta layers since the newest full one (through ancestors) against
     * the size of that full one: once they weigh as much, the next
     * snapshot is full, so that older layers can go once the retention
     * window has passed them. */
    uint64_t deltas = 0, base = 0;
    char cur[PS_ID_LEN + 1];
    snprintf(cur, sizeof(cur), "%s", timeline);
    lb_lsn limit = UINT64_MAX;
    pthread_mutex_lock(&d->lock);
    for (int depth = 0; depth < MAX_CHAIN && cur[0] && !base; depth++) {
        ps_tlmeta *m = find_locked(d, tenant, cur);
        if (!m)
            break;
        for (size_t i = m->nsnapshots; i-- > 0 && !base;) {
            const ps_snapshot_meta *s = &m->snapshots[i];
            if (s->lsn > limit)
                continue;
            if (s->full)
                base = s->bytes ? s->bytes : 1;
            else
                deltas += s->bytes;
        }
        limit = m->ancestor_lsn;
        snprintf(cur, sizeof(cur), "%s", m->ancestor_id);
    }
    pthread_mutex_unlock(&d->lock);
    return base == 0 || deltas >= base;
}

int
ps_snapshot_lsn_at(ps_daemon *d, const char *tenant, const char *timeline, lb_lsn lsn,
                   lb_lsn *snap_lsn)
{
    pthread_mutex_lock(&d->lock);
    int rc = snapshot_at_locked(d, tenant, timeline, lsn, snap_lsn);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int
ps_basebackup_prepare(ps_daemon *d, const char *tenant, const char *timeline, lb_lsn lsn,
                      ps_basebackup_plan **out, lb_lsn *snap_lsn, lb_lsn *redo_lsn, char *err,
                      size_t errcap)
{
    /* Walk the ancestry: layers of the chosen snapshot and everything older
     * that it may take pages from, newest first. */
    typedef struct {
        char tl[PS_ID_LEN + 1];
        char layer[64];
    } ref;
    size_t cap = 64, nrefs = 0;
    ref *refs = malloc(cap * sizeof(*refs));
    if (!refs)
        return -ENOMEM;
    bool chosen = false;
    int rc = 0;
    char cur[PS_ID_LEN + 1];
    snprintf(cur, sizeof(cur), "%s", timeline);
    lb_lsn limit = lsn, wal_cut = UINT64_MAX;
    uint32_t seg_size = 0;
    pthread_mutex_lock(&d->lock);
    for (int depth = 0; depth < MAX_CHAIN && cur[0] && rc == 0; depth++) {
        ps_tlmeta *m = find_locked(d, tenant, cur);
        if (!m) {
            snprintf(err, errcap, "timeline %s/%s not found", tenant, cur);
            rc = LB_ENOTFOUND;
            break;
        }
        if (depth == 0 && (lsn < m->start_lsn || lsn > m->last_record_lsn)) {
            char a[LB_LSN_STRLEN], b2[LB_LSN_STRLEN], c[LB_LSN_STRLEN];
            snprintf(err, errcap, "LSN %s is outside the timeline's WAL %s-%s",
                     lb_lsn_format(lsn, a), lb_lsn_format(m->start_lsn, b2),
                     lb_lsn_format(m->last_record_lsn, c));
            rc = LB_ECONFLICT;
            break;
        }
        for (size_t i = m->nsnapshots; i-- > 0 && rc == 0;) {
            const ps_snapshot_meta *s = &m->snapshots[i];
            if (s->lsn > limit)
                continue;
            if (!chosen) {
                chosen = true;
                *snap_lsn = s->lsn;
                *redo_lsn = s->redo_lsn;
                seg_size = m->wal_seg_size;
                if (depth > 0)
                    wal_cut = limit;
            }
            if (nrefs == cap) {
                ref *p = realloc(refs, 2 * cap * sizeof(*refs));
                if (!p) {
                    rc = -ENOMEM;
                    break;
                }
                refs = p;
                cap *= 2;
            }
            snprintf(refs[nrefs].tl, sizeof(refs[nrefs].tl), "%s", m->timeline_id);
            snprintf(refs[nrefs].layer, sizeof(refs[nrefs].layer), "%s", s->layer);
            nrefs++;
            if (s->full) { /* it has every page: nothing older is read */
                cur[0] = '\0';
                break;
            }
        }
        if (!cur[0])
            break;
        if (m->ancestor_id[0] && m->ancestor_lsn < limit)
            limit = m->ancestor_lsn;
        snprintf(cur, sizeof(cur), "%s", m->ancestor_id);
    }
    pthread_mutex_unlock(&d->lock);
    if (rc == 0 && !chosen) {
        snprintf(err, errcap, "no snapshot at or before the LSN");
        rc = LB_ENOTFOUND;
    }
    ps_basebackup_plan *plan = rc ? NULL : calloc(1, sizeof(*plan));
    if (rc == 0 && (!plan || !(plan->layers = calloc(nrefs, sizeof(*plan->layers)))))
        rc = -ENOMEM;
    if (rc == 0) {
        plan->wal_cut = wal_cut;
        plan->seg_size = seg_size;
    }
    for (size_t i = 0; i < nrefs && rc == 0; i++) {
        rc = open_layer(d, tenant, refs[i].tl, refs[i].layer, &plan->layers[i]);
        if (rc)
            snprintf(err, errcap, "layer %s of timeline %s is unreadable: %s", refs[i].layer,
                     refs[i].tl, lb_strerror(rc));
        else
            plan->n++;
    }
    free(refs);
    if (rc) {
        ps_basebackup_free(plan);
        return rc;
    }
    *out = plan;
    return 0;
}

/* ---- loading ---------------------------------------------------------------------- */

static int
load_one(ps_daemon *d, const ps_tlmeta *m)
{
    pthread_mutex_lock(&d->lock);
    int rc = register_locked(d, m);
    pthread_mutex_unlock(&d->lock);
    return rc == LB_EEXIST ? 0 : rc;
}

/* The timelines on the local disk. Every entry skipped is logged with its
 * reason; anything but a missing file fails start-up. */
static int
load_local(ps_daemon *d, lb_objstore *store)
{
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/tenants", d->conf.data_dir);
    DIR *td = opendir(root);
    if (!td) {
        if (errno == ENOENT)
            return 0;
        lb_error("could not open \"%s\": %s", root, strerror(errno));
        return -errno;
    }
    int rc = 0;
    struct dirent *t;
    while (rc == 0 && (t = readdir(td))) {
        if (t->d_name[0] == '.')
            continue;
        if (!lb_json_is_id(t->d_name)) {
            lb_warn("skipped \"%s/%s\": not a tenant id", root, t->d_name);
            continue;
        }
        char tdir[PATH_MAX + 300];
        snprintf(tdir, sizeof(tdir), "%s/%s", root, t->d_name);
        DIR *ld = opendir(tdir);
        if (!ld) {
            rc = -errno;
            lb_error("could not open \"%s\": %s", tdir, lb_strerror(rc));
            break;
        }
        struct dirent *l;
        while (rc == 0 && (l = readdir(ld))) {
            if (l->d_name[0] == '.')
                continue;
            char path[PATH_MAX + 620], dir[PATH_MAX + 600];
            snprintf(dir, sizeof(dir), "%s/%s", tdir, l->d_name);
            if (!lb_json_is_id(l->d_name)) {
                lb_warn("skipped \"%s\": not a timeline id", dir);
                continue;
            }
            snprintf(path, sizeof(path), "%s/index.json", dir);
            ps_tlmeta m;
            int lrc = ps_tlmeta_load(path, &m);
            if (lrc == -ENOENT) {
                lb_warn("skipped \"%s\": no index.json (object storage is searched next)", dir);
                continue;
            }
            if (lrc) {
                lb_error("could not load timeline tenant=%s timeline=%s from \"%s\": %s", t->d_name,
                         l->d_name, path, lb_strerror(lrc));
                rc = lrc;
                break;
            }
            if (strcmp(m.tenant_id, t->d_name) != 0 || strcmp(m.timeline_id, l->d_name) != 0) {
                lb_error("\"%s\" names timeline tenant=%s timeline=%s, not its directory's", path,
                         m.tenant_id, m.timeline_id);
                ps_tlmeta_free(&m);
                rc = LB_EPARSE;
                break;
            }
            int64_t when;
            int mrc = deleted_marker(store, m.tenant_id, m.timeline_id, &when);
            if (mrc == 0) {
                lb_info("skipped deleted timeline tenant=%s timeline=%s (purge pending); its "
                        "local copy is removed",
                        m.tenant_id, m.timeline_id);
                lb_rm_rf(dir);
            } else if (mrc != LB_ENOTFOUND) {
                lb_error("could not check timeline tenant=%s timeline=%s in object storage: %s",
                         m.tenant_id, m.timeline_id, lb_objstore_error(store));
                rc = mrc;
            } else if ((rc = load_one(d, &m)) != 0) {
                lb_error("could not register timeline tenant=%s timeline=%s: %s", m.tenant_id,
                         m.timeline_id, lb_strerror(rc));
            }
            ps_tlmeta_free(&m);
        }
        closedir(ld);
    }
    closedir(td);
    return rc;
}

/* Timelines in object storage that the local disk does not have: those
 * of the catalog. */
static int
load_remote(ps_daemon *d, lb_objstore *store)
{
    lb_objstore_listing list;
    int rc = lb_objstore_list(store, CATALOG_PREFIX, NULL, &list);
    if (rc) {
        lb_error("could not list remote storage: %s", lb_objstore_error(store));
        return rc;
    }
    for (size_t i = 0; rc == 0 && i < list.nobjects; i++) {
        char tenant[PS_ID_LEN + 1], timeline[PS_ID_LEN + 1], key[300];
        if (!catalog_ids(list.objects[i].key + strlen(CATALOG_PREFIX), tenant, timeline)) {
            lb_warn("skipped \"%s\" in remote storage: not a timeline's catalog entry",
                    list.objects[i].key);
            continue;
        }
        pthread_mutex_lock(&d->lock);
        bool have = ps__find_locked(d, tenant, timeline) != NULL;
        pthread_mutex_unlock(&d->lock);
        if (have)
            continue;
        int64_t when;
        int mrc = deleted_marker(store, tenant, timeline, &when);
        if (mrc == 0) {
            lb_info("skipped deleted timeline tenant=%s timeline=%s (purge pending)", tenant,
                    timeline);
            continue;
        }
        if (mrc != LB_ENOTFOUND) {
            lb_error("could not read the deletion marker of tenant=%s timeline=%s: %s", tenant,
                     timeline, lb_objstore_error(store));
            rc = mrc;
            break;
        }
        snprintf(key, sizeof(key), "%s/%s/index/index.json", tenant, timeline);
        lb_buf body = LB_BUF_INIT;
        rc = lb_objstore_get(store, key, &body);
        if (rc) {
            /* The catalog entry is written after the index: a missing
             * index is damage, not a timeline being created. */
            lb_error("could not read \"%s\": %s", key, lb_objstore_error(store));
            lb_buf_free(&body);
            break;
        }
        json_error_t je;
        json_t *doc = json_loadb(body.data ? body.data : "", body.len, 0, &je);
        lb_buf_free(&body);
        ps_tlmeta m;
        char msg[200] = "";
        rc = doc ? ps_tlmeta_from_json(doc, &m, msg, sizeof(msg)) : LB_EPARSE;
        json_decref(doc);
        if (rc) {
            lb_error("remote index \"%s\" is invalid: %s", key, doc ? msg : je.text);
            break;
        }
        if (strcmp(m.tenant_id, tenant) != 0 || strcmp(m.timeline_id, timeline) != 0) {
            lb_error("remote index \"%s\" names timeline tenant=%s timeline=%s", key, m.tenant_id,
                     m.timeline_id);
            ps_tlmeta_free(&m);
            rc = LB_EPARSE;
            break;
        }
        char dir[PATH_MAX], path[PATH_MAX + 16];
        ps_timeline_dir(d, m.tenant_id, m.timeline_id, dir, sizeof(dir));
        snprintf(path, sizeof(path), "%s/index.json", dir);
        if ((rc = lb_mkdir_p(dir, 0700)) != 0 || (rc = ps_tlmeta_save(path, &m)) != 0)
            lb_error("could not write \"%s\": %s", path, lb_strerror(rc));
        else if ((rc = load_one(d, &m)) != 0)
            lb_error("could not register timeline tenant=%s timeline=%s: %s", m.tenant_id,
                     m.timeline_id, lb_strerror(rc));
        else
            lb_info("timeline restored from remote storage tenant=%s timeline=%s", m.tenant_id,
                    m.timeline_id);
        ps_tlmeta_free(&m);
    }
    lb_objstore_list_free(&list);
    return rc;
}

int
ps_load_timelines(ps_daemon *d)
{
    lb_objstore *store = NULL;
    int rc = ps_store_acquire(d, &store);
    if (rc) {
        lb_error("could not open remote storage: %s", lb_strerror(rc));
        return rc;
    }
    rc = load_local(d, store);
    if (rc == 0)
        rc = load_remote(d, store);
    ps_store_release(d, store);
    return rc;
}
