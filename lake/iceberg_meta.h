/*
 * iceberg_meta.h: an Iceberg table's metadata outside the writer's handle
 * (lake/iceberg.h): finding the newest metadata version, as a reader or
 * catalog does, and expiring old snapshots, as table maintenance does.
 *
 * Callers: ltap/lakeview.c (the pageserver's REST catalog and lake status),
 * ltap/timeline.c (expiry with the timeline's GC retention).
 */
#ifndef LAKE_ICEBERG_META_H
#define LAKE_ICEBERG_META_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"
#include "store.h"

/* The newest metadata of the table under prefix: metadata/v<N>.metadata.json
 * with the largest N (each version is created put-if-absent, so the largest
 * is the last commit). *version (may be NULL) gets N, *key its key, *meta
 * its JSON. 0; LB_ENOTFOUND (no metadata); LB_EPARSE (not a JSON object);
 * or the store's error; with a message in err. The caller frees *key and
 * releases *meta. */
int lake_iceberg_newest_metadata(lake_store *st, const char *prefix, int64_t *version, char **key,
                                 json_t **meta, lb_err *err);

/*
 * Expire the snapshots of the table under prefix that stopped being
 * current at or before cutoff_ms: every snapshot older (by sequence
 * number) than the newest one committed at or before cutoff_ms. The
 * current snapshot is never expired, nor is the one that was current at
 * cutoff_ms: every snapshot a reader could ask for inside the window
 * stays whole. A data file removed by a commit at T is referenced only by
 * snapshots that stopped being current at T, so once files removed at or
 * before cutoff_ms are deleted no kept snapshot names a missing file.
 *
 * Writes metadata version N+1 (put-if-absent, then version-hint.text)
 * with those snapshots gone from "snapshots" and "snapshot-log", and the
 * "metadata-log" entries written at or before cutoff_ms dropped; then
 * deletes the expired snapshots' manifest lists, the manifests that no
 * kept snapshot lists, and the dropped metadata files. Data files are the
 * caller's (it knows which are no longer live).
 *
 * *expired (may be NULL) gets the number of snapshots expired; nothing is
 * written when it is 0. 0; LB_ECONFLICT (another writer committed version
 * N+1 first: nothing expired, try again later); LB_ENOTFOUND (no
 * metadata); LB_EPARSE; or the store's error; with a message in err. A
 * delete that fails after the commit is logged, not returned: the file is
 * unreferenced and harmless.
 */
int lake_iceberg_expire_snapshots(lake_store *st, const char *prefix, int64_t cutoff_ms,
                                  size_t *expired, lb_err *err);

#endif
