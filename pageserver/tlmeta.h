/*
 * tlmeta.h: a pageserver timeline's metadata, the index of its snapshots.
 *
 * A timeline is (tenant id, timeline id), an optional ancestor (timeline,
 * LSN) it branched from, the PostgreSQL system it belongs to, and the list
 * of its snapshots, each (P, R, layer file). The same JSON document is
 * kept on local disk and in object storage as <tenant>/<timeline>/index/
 * index.json, next to the layers in <tenant>/<timeline>/layers/; a
 * pageserver that lost its disk reloads a timeline from it, finding it
 * through its catalog entry catalog/<tenant>/<timeline> (timelines.c).
 *
 * Invariants: snapshots sorted by P, strictly increasing; a branch's
 * snapshots all have P >= ancestor_lsn; a layer is never rewritten.
 */
#ifndef PS_TLMETA_H
#define PS_TLMETA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

#define PS_ID_LEN 32
#define PS_MAX_SNAPSHOTS 4096
#define PS_MAX_SAFEKEEPERS 8

typedef struct ps_snapshot_meta {
    lb_lsn lsn;      /* P */
    lb_lsn redo_lsn; /* R */
    char layer[64];  /* file name under layers/ */
    uint64_t bytes;
    int64_t created_ms;
    bool full; /* the layer holds every page: no older layer is needed */
} ps_snapshot_meta;

typedef struct ps_tlmeta {
    char tenant_id[PS_ID_LEN + 1];
    char timeline_id[PS_ID_LEN + 1];
    char ancestor_id[PS_ID_LEN + 1]; /* "" for a root timeline */
    lb_lsn ancestor_lsn;
    uint64_t system_id;
    uint32_t wal_seg_size;
    uint32_t pg_tli;        /* PostgreSQL timeline the timeline's WAL starts on */
    lb_lsn start_lsn;       /* root: end of the bootstrap WAL; branch: ancestor_lsn */
    lb_lsn last_record_lsn; /* ingested up to here (a hint between snapshots) */
    size_t nsnapshots;
    ps_snapshot_meta *snapshots; /* owned */
    /* Where the timeline's committed WAL comes from (ingest). */
    size_t nsafekeepers;
    struct ps_sk_addr {
        char pg[128];   /* host:port of its walsender-compatible server */
        char http[128]; /* its HTTP API, for history files and positions */
    } safekeepers[PS_MAX_SAFEKEEPERS];
} ps_tlmeta;

void ps_tlmeta_free(ps_tlmeta *m);
json_t *ps_tlmeta_to_json(const ps_tlmeta *m);
/* Parse and validate; msg gets the reason on LB_EPARSE. m is owned by the
 * caller (ps_tlmeta_free). */
int ps_tlmeta_from_json(const json_t *j, ps_tlmeta *m, char *msg, size_t cap);
int ps_tlmeta_save(const char *path, const ps_tlmeta *m);
int ps_tlmeta_load(const char *path, ps_tlmeta *m);
/* Append a snapshot (P must be above the last one). */
int ps_tlmeta_add_snapshot(ps_tlmeta *m, const ps_snapshot_meta *s);
/* Parse a safekeepers array [{"pg": "host:port", "http": "http://..."}]. */
int ps_tlmeta_set_safekeepers(ps_tlmeta *m, const json_t *arr, char *msg, size_t cap);
/* The newest snapshot with P <= lsn, or NULL. */
const ps_snapshot_meta *ps_tlmeta_snapshot_at(const ps_tlmeta *m, lb_lsn lsn);

#endif
