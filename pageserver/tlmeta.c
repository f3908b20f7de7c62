/*
 * tlmeta.c: timeline metadata as JSON (see tlmeta.h).
 */
#include "tlmeta.h"
#include "hostport.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "fileio.h"
#include "json.h"
#include "log.h"
#include "wal.h"

void
ps_tlmeta_free(ps_tlmeta *m)
{
    free(m->snapshots);
    m->snapshots = NULL;
    m->nsnapshots = 0;
}

json_t *
ps_tlmeta_to_json(const ps_tlmeta *m)
{
    char sysid[24];
    snprintf(sysid, sizeof(sysid), "%" PRIu64, m->system_id);
    json_t *snaps = json_array();
    for (size_t i = 0; i < m->nsnapshots; i++) {
        const ps_snapshot_meta *s = &m->snapshots[i];
        json_array_append_new(snaps,
                              json_pack("{s:o, s:o, s:s, s:I, s:I, s:b}", "lsn",
                                        lb_json_lsn(s->lsn), "redo_lsn", lb_json_lsn(s->redo_lsn),
                                        "layer", s->layer, "bytes", (json_int_t)s->bytes,
                                        "created_ms", (json_int_t)s->created_ms, "full", s->full));
    }
    json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:I, s:I, s:o, s:o, s:o}", "version", 1,
                          "tenant_id", m->tenant_id, "timeline_id", m->timeline_id, "system_id",
                          sysid, "wal_seg_size", (json_int_t)m->wal_seg_size, "pg_tli",
                          (json_int_t)m->pg_tli, "start_lsn", lb_json_lsn(m->start_lsn),
                          "last_record_lsn", lb_json_lsn(m->last_record_lsn), "snapshots", snaps);
    if (j && m->nsafekeepers) {
        json_t *arr = json_array();
        for (size_t i = 0; i < m->nsafekeepers; i++)
            json_array_append_new(arr, json_pack("{s:s, s:s}", "pg", m->safekeepers[i].pg, "http",
                                                 m->safekeepers[i].http));
        json_object_set_new(j, "safekeepers", arr);
    }
    if (j && m->ancestor_id[0]) {
        json_object_set_new(j, "ancestor_timeline_id", json_string(m->ancestor_id));
        json_object_set_new(j, "ancestor_lsn", lb_json_lsn(m->ancestor_lsn));
    }
    return j;
}

int
ps_tlmeta_from_json(const json_t *j, ps_tlmeta *m, char *msg, size_t cap)
{
    lb_json_error err = LB_JSON_ERROR_INIT;
    const char *sysid = NULL, *anc = NULL;
    int64_t seg = 0, tli = 0;
    memset(m, 0, sizeof(*m));
    lb_json_req_id(j, "tenant_id", m->tenant_id, &err);
    lb_json_req_id(j, "timeline_id", m->timeline_id, &err);
    lb_json_req_str(j, "system_id", &sysid, &err);
    lb_json_req_int64(j, "wal_seg_size", &seg, &err);
    lb_json_req_int64(j, "pg_tli", &tli, &err);
    lb_json_req_lsn(j, "start_lsn", &m->start_lsn, &err);
    lb_json_opt_lsn(j, "last_record_lsn", m->start_lsn, &m->last_record_lsn, &err);
    lb_json_opt_str(j, "ancestor_timeline_id", NULL, &anc, &err);
    lb_json_opt_lsn(j, "ancestor_lsn", 0, &m->ancestor_lsn, &err);
    if (!err.failed && anc && !lb_json_is_id(anc))
        lb_json_fail(&err, LB_EPARSE, "field \"ancestor_timeline_id\" must be an id");
    if (!err.failed && (!lb_wal_seg_size_valid((uint64_t)seg) || tli <= 0 || tli > UINT32_MAX))
        lb_json_fail(&err, LB_EPARSE, "bad wal_seg_size or pg_tli");
    if (!err.failed) {
        char *end;
        errno = 0;
        m->system_id = strtoull(sysid, &end, 10);
        if (errno || *end || end == sysid)
            lb_json_fail(&err, LB_EPARSE, "field \"system_id\" must be a decimal number");
    }
    json_t *snaps = json_object_get(j, "snapshots");
    if (!err.failed && (!json_is_array(snaps) || json_array_size(snaps) > PS_MAX_SNAPSHOTS))
        lb_json_fail(&err, LB_EPARSE, "field \"snapshots\" must be an array");
    if (err.failed) {
        snprintf(msg, cap, "%s", err.message);
        return LB_EPARSE;
    }
    if (anc)
        strcpy(m->ancestor_id, anc);
    if (json_object_get(j, "safekeepers") &&
        ps_tlmeta_set_safekeepers(m, json_object_get(j, "safekeepers"), msg, cap) != 0)
        return LB_EPARSE;
    m->wal_seg_size = (uint32_t)seg;
    m->pg_tli = (uint32_t)tli;
    size_t i;
    json_t *s;
    json_array_foreach(snaps, i, s)
    {
        ps_snapshot_meta sm = {0};
        const char *layer = NULL;
        int64_t bytes = 0, created = 0;
        lb_json_req_lsn(s, "lsn", &sm.lsn, &err);
        lb_json_req_lsn(s, "redo_lsn", &sm.redo_lsn, &err);
        lb_json_req_str(s, "layer", &layer, &err);
        lb_json_opt_int64(s, "bytes", 0, &bytes, &err);
        lb_json_opt_int64(s, "created_ms", 0, &created, &err);
        lb_json_opt_bool(s, "full", false, &sm.full, &err);
        if (!err.failed && (strlen(layer) >= sizeof(sm.layer) || strchr(layer, '/') ||
                            layer[0] == '.' || !layer[0]))
            lb_json_fail(&err, LB_EPARSE, "snapshot %zu has a bad layer name", i);
        if (err.failed) {
            snprintf(msg, cap, "%s", err.message);
            ps_tlmeta_free(m);
            return LB_EPARSE;
        }
        strcpy(sm.layer, layer);
        sm.bytes = (uint64_t)bytes;
        sm.created_ms = created;
        if (ps_tlmeta_add_snapshot(m, &sm) != 0) {
            snprintf(msg, cap, "snapshot %zu is out of order", i);
            ps_tlmeta_free(m);
            return LB_EPARSE;
        }
    }
    return 0;
}

int
ps_tlmeta_add_snapshot(ps_tlmeta *m, const ps_snapshot_meta *s)
{
    if (m->nsnapshots && s->lsn <= m->snapshots[m->nsnapshots - 1].lsn)
        return -EINVAL;
    if (s->redo_lsn > s->lsn || m->nsnapshots >= PS_MAX_SNAPSHOTS)
        return -EINVAL;
    ps_snapshot_meta *p = realloc(m->snapshots, (m->nsnapshots + 1) * sizeof(*p));
    if (!p)
        return -ENOMEM;
    m->snapshots = p;
    m->snapshots[m->nsnapshots++] = *s;
    if (s->lsn > m->last_record_lsn)
        m->last_record_lsn = s->lsn;
    return 0;
}

const ps_snapshot_meta *
ps_tlmeta_snapshot_at(const ps_tlmeta *m, lb_lsn lsn)
{
    const ps_snapshot_meta *best = NULL;
    for (size_t i = 0; i < m->nsnapshots && m->snapshots[i].lsn <= lsn; i++)
        best = &m->snapshots[i];
    return best;
}

int
ps_tlmeta_save(const char *path, const ps_tlmeta *m)
{
    json_t *j = ps_tlmeta_to_json(m);
    char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!text)
        return -ENOMEM;
    int rc = lb_write_file_atomic(path, text, strlen(text));
    free(text);
    return rc;
}

int
ps_tlmeta_load(const char *path, ps_tlmeta *m)
{
    lb_buf b = LB_BUF_INIT;
    int rc = lb_read_file(path, &b);
    if (rc) {
        lb_buf_free(&b);
        return rc;
    }
    json_error_t je;
    json_t *j = json_loadb(b.data, b.len, 0, &je);
    lb_buf_free(&b);
    char msg[300];
    rc = j ? ps_tlmeta_from_json(j, m, msg, sizeof(msg)) : LB_EPARSE;
    if (rc)
        lb_error("invalid timeline metadata \"%s\": %s", path, j ? msg : je.text);
    json_decref(j);
    return rc;
}

int
ps_tlmeta_set_safekeepers(ps_tlmeta *m, const json_t *arr, char *msg, size_t cap)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > PS_MAX_SAFEKEEPERS) {
        snprintf(msg, cap, "\"safekeepers\" must be an array of 1 to %d entries",
                 PS_MAX_SAFEKEEPERS);
        return LB_EPARSE;
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *pg = json_string_value(json_object_get(e, "pg"));
        const char *http = json_string_value(json_object_get(e, "http"));
        lb_hostport hp;
        if (!pg || !http || lb_hostport_parse(pg, &hp) != 0 || hp.port == 0 ||
            strlen(pg) >= sizeof(m->safekeepers[0].pg) ||
            strlen(http) >= sizeof(m->safekeepers[0].http) || strncmp(http, "http://", 7) != 0 ||
            strpbrk(pg, " '\\")) {
            snprintf(msg, cap,
                     "safekeeper %zu must be {\"pg\": \"host:port\", \"http\": \"http://...\"}", i);
            return LB_EPARSE;
        }
    }
    json_array_foreach(arr, i, e)
    {
        snprintf(m->safekeepers[i].pg, sizeof(m->safekeepers[i].pg), "%s",
                 json_string_value(json_object_get(e, "pg")));
        snprintf(m->safekeepers[i].http, sizeof(m->safekeepers[i].http), "%s",
                 json_string_value(json_object_get(e, "http")));
    }
    m->nsafekeepers = json_array_size(arr);
    return 0;
}
