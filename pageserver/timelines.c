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
#include "errors.h"
#include "fileio.h"
#include "json.h"
#include "layer.h"
#include "log.h"
#include "pgproc.h"
#include "snapshot.h"
#include "wal.h"

#define MAX_CHAIN 64

void
ps_timeline_dir(const ps_daemon *d, const char *tenant, const char *timeline, char *out,
                size_t cap)
{
    snprintf(out, cap, "%s/tenants/%.32s/%.32s", d->conf.data_dir, tenant, timeline);
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Registry lookups: caller holds d->lock. */
static ps_tlmeta *
find_locked(ps_daemon *d, const char *tenant, const char *timeline)
{
    for (int i = 0; i < d->ntimelines; i++)
        if (strcmp(d->timelines[i]->tenant_id, tenant) == 0 &&
            strcmp(d->timelines[i]->timeline_id, timeline) == 0)
            return d->timelines[i];
    return NULL;
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

/* Insert (taking ownership of m's snapshots) unless it exists. */
static int
register_locked(ps_daemon *d, const ps_tlmeta *m)
{
    if (find_locked(d, m->tenant_id, m->timeline_id))
        return LB_EEXIST;
    if (d->ntimelines == PS_MAX_TIMELINES)
        return -ENOSPC;
    ps_tlmeta *copy = malloc(sizeof(*copy));
    if (!copy || copy_meta(m, copy) != 0) {
        free(copy);
        return -ENOMEM;
    }
    d->timelines[d->ntimelines++] = copy;
    return 0;
}

/* ---- storage ------------------------------------------------------------------- */

static int
upload_file(ps_daemon *d, const char *key, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    fstat(fd, &st);
    int rc = lb_objstore_put_fd(d->store, key, fd);
    close(fd);
    if (rc) {
        lb_counter_inc(d->storage_errors);
        lb_error("could not upload \"%s\": %s", key, lb_objstore_error(d->store));
    } else {
        lb_counter_add(d->storage_bytes, (double)st.st_size);
    }
    return rc;
}

static int
save_meta(ps_daemon *d, const ps_tlmeta *m)
{
    char dir[PATH_MAX], path[PATH_MAX + 16], key[256];
    ps_timeline_dir(d, m->tenant_id, m->timeline_id, dir, sizeof(dir));
    int rc = lb_mkdir_p(dir, 0700);
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "%s/index.json", dir);
    rc = ps_tlmeta_save(path, m);
    if (rc)
        return rc;
    snprintf(key, sizeof(key), "%s/%s/index/index.json", m->tenant_id, m->timeline_id);
    return upload_file(d, key, path);
}

typedef struct dl {
    int fd;
} dl;

static int
dl_write(void *arg, const char *bytes, size_t n)
{
    return lb_write_all(((dl *)arg)->fd, bytes, n);
}

/* Open a layer, downloading it into the local cache if needed. */
static int
open_layer(ps_daemon *d, const char *tenant, const char *timeline, const char *name,
           ps_layer **out)
{
    char dir[PATH_MAX], path[PATH_MAX + 128];
    ps_timeline_dir(d, tenant, timeline, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/layers/%s", dir, name);
    if (access(path, R_OK) != 0) {
        char key[256], tmp[PATH_MAX + 160], ldir[PATH_MAX + 16];
        snprintf(ldir, sizeof(ldir), "%s/layers", dir);
        lb_mkdir_p(ldir, 0700);
        snprintf(key, sizeof(key), "%.32s/%.32s/layers/%.63s", tenant, timeline, name);
        snprintf(tmp, sizeof(tmp), "%s.download", path);
        dl ctx = {open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
        if (ctx.fd < 0)
            return -errno;
        int rc = lb_objstore_get_stream(d->store, key, dl_write, &ctx);
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
            lb_error("could not download layer \"%s\": %s", key, lb_strerror(rc));
            return rc;
        }
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
    const char *initdb[] = {"-k", "-A", "trust", "-U", "postgres", "--no-instructions",
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
    if (st != 0 || lb_pg_controldata_field(text.data, "Database system identifier", v_sysid, sizeof(v_sysid)) ||
        lb_pg_controldata_field(text.data, "Latest checkpoint location", v_ckpt, sizeof(v_ckpt)) ||
        lb_pg_controldata_field(text.data, "Latest checkpoint's REDO location", v_redo, sizeof(v_redo)) ||
        lb_pg_controldata_field(text.data, "Bytes per WAL segment", v_seg, sizeof(v_seg)) ||
        lb_pg_controldata_field(text.data, "Latest checkpoint's TimeLineID", v_tli, sizeof(v_tli)) ||
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
    snap.created_ms = now_ms();
    snap.full = true;

    char lpath[PATH_MAX + 100], key[256];
    snprintf(lpath, sizeof(lpath), "%s/%s", ldir, snap.layer);
    ps_layer_info info = {.lsn = snap.lsn, .redo_lsn = snap.redo_lsn,
                          .created_unix_ms = (uint64_t)snap.created_ms};
    ps_snapshot_stats stats;
    rc = ps_snapshot_take(pgdata, &info, m.wal_seg_size, lpath, &stats);
    snap.bytes = stats.bytes;
    snprintf(key, sizeof(key), "%s/%s/layers/%s", tenant, timeline, snap.layer);
    if (rc == 0)
        rc = upload_file(d, key, lpath);
    if (rc == 0)
        rc = ps_tlmeta_add_snapshot(&m, &snap);
    if (rc == 0)
        rc = save_meta(d, &m);
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
    int rc = ps_get_timeline(d, tenant, ancestor, &a);
    if (rc)
        return branch_gone(err, errcap, tenant, ancestor);
    uint32_t tli = 0;
    lb_lsn commit = 0;
    if (lsn >= a.start_lsn) {
        rc = ps_tli_at(d, &a, lsn, &tli, &commit, err, errcap);
        if (rc == 0 && lsn > commit)
            tli = 0; /* refused below */
        for (int64_t waited = 0; rc == 0 && tli && lsn > a.last_record_lsn &&
                                 waited < BRANCH_WAIT_MS;
             waited += 50) {
            ps_tlmeta_free(&a);
            usleep(50000);
            if (ps_get_timeline(d, tenant, ancestor, &a) != 0)
                return branch_gone(err, errcap, tenant, ancestor);
        }
    }
    ps_tlmeta_free(&a);
    if (rc)
        return rc; /* err says why */

    ps_tlmeta m = {0};
    rc = 0;
    pthread_mutex_lock(&d->lock);
    ps_tlmeta *anc = find_locked(d, tenant, ancestor);
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
    rc = save_meta(d, &m);
    if (rc) {
        snprintf(err, errcap, "could not store the branch: %s", lb_strerror(rc));
        return rc;
    }
    lb_info("branch created tenant=%s timeline=%s ancestor=%s lsn=%X/%X", tenant, timeline,
            ancestor, LB_LSN_ARGS(lsn));
    *out = m;
    return 0;
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

int
ps_delete_timeline(ps_daemon *d, const char *tenant, const char *timeline, char *err,
                   size_t errcap)
{
    pthread_mutex_lock(&d->lock);
    int idx = -1;
    for (int i = 0; i < d->ntimelines; i++) {
        ps_tlmeta *m = d->timelines[i];
        if (strcmp(m->tenant_id, tenant) != 0)
            continue;
        if (strcmp(m->timeline_id, timeline) == 0)
            idx = i;
        else if (strcmp(m->ancestor_id, timeline) == 0) {
            snprintf(err, errcap, "timeline %s has branch %s: delete the branch first", timeline,
                     m->timeline_id);
            pthread_mutex_unlock(&d->lock);
            return LB_ECONFLICT;
        }
    }
    if (idx < 0) {
        pthread_mutex_unlock(&d->lock);
        snprintf(err, errcap, "timeline %s/%s not found", tenant, timeline);
        return LB_ENOTFOUND;
    }
    ps_tlmeta *m = d->timelines[idx];
    d->timelines[idx] = d->timelines[--d->ntimelines];
    pthread_mutex_unlock(&d->lock);
    /* Remote first (index before layers), then the local cache. */
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "%s/%s/", tenant, timeline);
    char key[256];
    snprintf(key, sizeof(key), "%sindex/index.json", prefix);
    int rc = lb_objstore_delete(d->store, key);
    lb_objstore_listing list;
    if (rc == 0 && (rc = lb_objstore_list(d->store, prefix, NULL, &list)) == 0) {
        for (size_t i = 0; i < list.nobjects && rc == 0; i++)
            rc = lb_objstore_delete(d->store, list.objects[i].key);
        lb_objstore_list_free(&list);
    }
    char dir[PATH_MAX];
    ps_timeline_dir(d, tenant, timeline, dir, sizeof(dir));
    lb_rm_rf(dir);
    ps_tlmeta_free(m);
    free(m);
    if (rc)
        snprintf(err, errcap, "could not delete remote objects: %s", lb_strerror(rc));
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
    ps_tlmeta *m = find_locked(d, tenant, timeline);
    ps_tlmeta copy;
    int rc = m ? ps_tlmeta_set_safekeepers(m, safekeepers, err, errcap) : LB_ENOTFOUND;
    if (rc == LB_ENOTFOUND)
        snprintf(err, errcap, "timeline %s/%s not found", tenant, timeline);
    if (rc == 0)
        rc = copy_meta(m, &copy);
    pthread_mutex_unlock(&d->lock);
    if (rc)
        return rc;
    rc = save_meta(d, &copy);
    ps_tlmeta_free(&copy);
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
    ps_tlmeta *m = find_locked(d, tenant, timeline);
    ps_tlmeta copy;
    rc = m ? ps_tlmeta_add_snapshot(m, snap) : LB_ENOTFOUND;
    if (rc == 0)
        rc = copy_meta(m, &copy);
    pthread_mutex_unlock(&d->lock);
    if (rc)
        return rc;
    rc = save_meta(d, &copy);
    ps_tlmeta_free(&copy);
    return rc;
}

int
ps_drop_snapshots(ps_daemon *d, const char *tenant, const char *timeline,
                  const char (*layers)[64], size_t n)
{
    pthread_mutex_lock(&d->lock);
    ps_tlmeta *m = find_locked(d, tenant, timeline);
    ps_tlmeta copy;
    int rc = m ? 0 : LB_ENOTFOUND;
    size_t kept = 0;
    for (size_t i = 0; rc == 0 && i < m->nsnapshots; i++) {
        bool drop = i + 1 < m->nsnapshots; /* never the newest */
        if (drop) {
            drop = false;
            for (size_t k = 0; k < n && !drop; k++)
                drop = strcmp(m->snapshots[i].layer, layers[k]) == 0;
        }
        if (!drop)
            m->snapshots[kept++] = m->snapshots[i];
    }
    if (rc == 0) {
        m->nsnapshots = kept;
        rc = copy_meta(m, &copy);
    }
    pthread_mutex_unlock(&d->lock);
    if (rc)
        return rc;
    rc = save_meta(d, &copy); /* the index no longer names them */
    ps_tlmeta_free(&copy);
    if (rc)
        return rc;
    char dir[PATH_MAX];
    ps_timeline_dir(d, tenant, timeline, dir, sizeof(dir));
    for (size_t k = 0; k < n; k++) {
        char key[256], path[PATH_MAX + 128];
        snprintf(key, sizeof(key), "%.32s/%.32s/layers/%.63s", tenant, timeline, layers[k]);
        int drc = lb_objstore_delete(d->store, key);
        if (drc && drc != LB_ENOTFOUND) {
            lb_counter_inc(d->storage_errors);
            lb_warn("could not delete \"%s\": %s", key, lb_objstore_error(d->store));
            rc = rc ? rc : drc;
        }
        snprintf(path, sizeof(path), "%s/layers/%s", dir, layers[k]);
        unlink(path);
    }
    lb_counter_add(d->gc_deleted, (double)n);
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
    int rc = LB_ENOTFOUND;
    char cur[PS_ID_LEN + 1];
    snprintf(cur, sizeof(cur), "%s", timeline);
    pthread_mutex_lock(&d->lock);
    for (int depth = 0; depth < MAX_CHAIN && cur[0] && rc == LB_ENOTFOUND; depth++) {
        ps_tlmeta *m = find_locked(d, tenant, cur);
        if (!m)
            break;
        const ps_snapshot_meta *s = ps_tlmeta_snapshot_at(m, lsn);
        if (s) {
            *snap_lsn = s->lsn;
            rc = 0;
        }
        if (m->ancestor_id[0] && m->ancestor_lsn < lsn)
            lsn = m->ancestor_lsn;
        snprintf(cur, sizeof(cur), "%s", m->ancestor_id);
    }
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

int
ps_load_timelines(ps_daemon *d)
{
    /* Local disk. */
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/tenants", d->conf.data_dir);
    DIR *td = opendir(root);
    struct dirent *t;
    while (td && (t = readdir(td))) {
        if (!lb_json_is_id(t->d_name))
            continue;
        char tdir[PATH_MAX + 300];
        snprintf(tdir, sizeof(tdir), "%s/%s", root, t->d_name);
        DIR *ld = opendir(tdir);
        struct dirent *l;
        while (ld && (l = readdir(ld))) {
            if (!lb_json_is_id(l->d_name))
                continue;
            char path[PATH_MAX + 600];
            snprintf(path, sizeof(path), "%s/%s/index.json", tdir, l->d_name);
            ps_tlmeta m;
            if (ps_tlmeta_load(path, &m) == 0) {
                load_one(d, &m);
                ps_tlmeta_free(&m);
            }
        }
        if (ld)
            closedir(ld);
    }
    if (td)
        closedir(td);

    /* Object storage: timelines this disk does not have. */
    lb_objstore_listing tenants;
    int rc = lb_objstore_list(d->store, "", "/", &tenants);
    if (rc) {
        lb_error("could not list remote storage: %s", lb_objstore_error(d->store));
        return rc;
    }
    for (size_t i = 0; i < tenants.nprefixes; i++) {
        lb_objstore_listing tls;
        if (lb_objstore_list(d->store, tenants.prefixes[i], "/", &tls) != 0)
            continue;
        for (size_t j = 0; j < tls.nprefixes; j++) {
            char key[300];
            snprintf(key, sizeof(key), "%sindex/index.json", tls.prefixes[j]);
            lb_buf body = LB_BUF_INIT;
            if (lb_objstore_get(d->store, key, &body) == 0) {
                json_error_t je;
                json_t *doc = json_loadb(body.data, body.len, 0, &je);
                ps_tlmeta m;
                char msg[200];
                if (doc && ps_tlmeta_from_json(doc, &m, msg, sizeof(msg)) == 0) {
                    pthread_mutex_lock(&d->lock);
                    bool have = find_locked(d, m.tenant_id, m.timeline_id) != NULL;
                    pthread_mutex_unlock(&d->lock);
                    if (!have) {
                        char dir[PATH_MAX], path[PATH_MAX + 16];
                        ps_timeline_dir(d, m.tenant_id, m.timeline_id, dir, sizeof(dir));
                        lb_mkdir_p(dir, 0700);
                        snprintf(path, sizeof(path), "%s/index.json", dir);
                        ps_tlmeta_save(path, &m);
                        load_one(d, &m);
                        lb_info("timeline restored from remote storage tenant=%s timeline=%s",
                                m.tenant_id, m.timeline_id);
                    }
                    ps_tlmeta_free(&m);
                } else {
                    lb_error("remote index \"%s\" is invalid", key);
                }
                json_decref(doc);
            }
            lb_buf_free(&body);
        }
        lb_objstore_list_free(&tls);
    }
    lb_objstore_list_free(&tenants);
    return 0;
}
