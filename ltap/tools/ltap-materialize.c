/*
 * ltap-materialize: run the transcoder once against a PostgreSQL server
 * and print what it did as JSON. The pageserver calls ltap_materialize()
 * itself; this front exists for tests and benchmarks, which point it at a
 * server (a hot standby, or a primary nobody writes to) directly.
 *
 *   ltap-materialize --conninfo 'host=... port=...' --store file:///dir
 *                    --prefix tenants/T/timelines/L [--lsn X/X]
 *                    [--chunk-blocks N] [--dirty FILE]
 *                    [--seed-prefix tenants/T/timelines/PARENT --seed-lsn X/X]
 *
 * --lsn defaults to the server's replay LSN (a standby) or its current WAL
 * LSN. --dirty names a file of "spc db rel block" lines: only chunks
 * holding one of these blocks count as dirty (without it, every chunk is).
 * --seed-prefix starts tables new under --prefix from that lake's
 * (ltap_request.seed_prefix): the dirty blocks must then be those since
 * the seed's run at --seed-lsn.
 * Exit status 0, or 1 with the error on stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "lsn.h"
#include "ltap/ltap.h"
#include "lake/store.h"

typedef struct dirty_block {
    uint32_t spc, db, rel, block;
} dirty_block;

typedef struct dirty_set {
    dirty_block *b;
    size_t n;
} dirty_set;

static int
dirty_fn(void *arg, uint32_t spc, uint32_t db, uint32_t rel, uint32_t first, uint32_t n,
         lb_lsn since)
{
    (void)since;
    const dirty_set *d = arg;
    for (size_t i = 0; i < d->n; i++)
        if (d->b[i].rel == rel && d->b[i].db == db && d->b[i].spc == spc &&
            d->b[i].block >= first && d->b[i].block - first < n)
            return 1;
    return 0;
}

static int
load_dirty(const char *path, dirty_set *d)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    size_t cap = 0;
    dirty_block b;
    while (fscanf(f, "%u %u %u %u", &b.spc, &b.db, &b.rel, &b.block) == 4) {
        if (d->n == cap) {
            cap = cap ? 2 * cap : 256;
            dirty_block *nb = realloc(d->b, cap * sizeof(*nb));
            if (!nb) {
                fclose(f);
                return -ENOMEM;
            }
            d->b = nb;
        }
        d->b[d->n++] = b;
    }
    fclose(f);
    return 0;
}

static int
server_lsn(const char *conninfo, lb_lsn *out)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "ltap-materialize: could not connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return 1;
    }
    PGresult *r = PQexec(c, "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                            "ELSE pg_current_wal_lsn() END");
    int rc = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                     lb_lsn_parse(PQgetvalue(r, 0, 0), out) == 0
                 ? 0
                 : 1;
    if (rc)
        fprintf(stderr, "ltap-materialize: could not read the server's LSN: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return rc;
}

int
main(int argc, char **argv)
{
    const char *conninfo = NULL, *url = NULL, *prefix = NULL, *lsn_s = NULL, *dirty_path = NULL;
    const char *seed_prefix = NULL, *seed_lsn_s = NULL;
    unsigned chunk_blocks = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--conninfo") == 0)
            conninfo = argv[i + 1];
        else if (strcmp(argv[i], "--store") == 0)
            url = argv[i + 1];
        else if (strcmp(argv[i], "--prefix") == 0)
            prefix = argv[i + 1];
        else if (strcmp(argv[i], "--lsn") == 0)
            lsn_s = argv[i + 1];
        else if (strcmp(argv[i], "--chunk-blocks") == 0)
            chunk_blocks = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--dirty") == 0)
            dirty_path = argv[i + 1];
        else if (strcmp(argv[i], "--seed-prefix") == 0)
            seed_prefix = argv[i + 1];
        else if (strcmp(argv[i], "--seed-lsn") == 0)
            seed_lsn_s = argv[i + 1];
        else {
            fprintf(stderr, "ltap-materialize: unknown option \"%s\"\n", argv[i]);
            return 1;
        }
    }
    if (!conninfo || !url || !prefix) {
        fprintf(stderr, "usage: ltap-materialize --conninfo C --store URL --prefix P [--lsn X/X] "
                        "[--chunk-blocks N] [--dirty FILE] [--seed-prefix P --seed-lsn X/X]\n");
        return 1;
    }
    lb_lsn lsn = 0;
    if (lsn_s ? lb_lsn_parse(lsn_s, &lsn) != 0 : server_lsn(conninfo, &lsn) != 0) {
        fprintf(stderr, "ltap-materialize: no LSN\n");
        return 1;
    }
    lb_lsn seed_lsn = 0;
    if (seed_prefix && (!seed_lsn_s || lb_lsn_parse(seed_lsn_s, &seed_lsn) != 0)) {
        fprintf(stderr, "ltap-materialize: --seed-prefix needs --seed-lsn X/X\n");
        return 1;
    }
    dirty_set dirty = {0};
    if (dirty_path && load_dirty(dirty_path, &dirty)) {
        fprintf(stderr, "ltap-materialize: could not read \"%s\"\n", dirty_path);
        return 1;
    }
    lb_err err = {0};
    lake_store *st = NULL;
    if (lake_store_open(url, NULL, &st, &err)) {
        fprintf(stderr, "ltap-materialize: %s\n", err.message);
        return 1;
    }
    ltap_request r = {.conninfo = conninfo,
                      .lsn = lsn,
                      .dirty = dirty_path ? dirty_fn : NULL,
                      .dirty_arg = &dirty,
                      .store = st,
                      .prefix = prefix,
                      .chunk_blocks = chunk_blocks,
                      .seed_prefix = seed_prefix,
                      .seed_lsn = seed_lsn};
    ltap_result res;
    int rc = ltap_materialize(&r, &res, &err);
    if (rc) {
        fprintf(stderr, "ltap-materialize: %s (%s)\n", err.message, lb_err_name(rc));
        lake_store_close(st);
        free(dirty.b);
        return 1;
    }
    char lsnbuf[LB_LSN_STRLEN];
    json_t *tables = json_array();
    for (size_t i = 0; i < res.ntables; i++) {
        const ltap_table_status *t = &res.tables[i];
        char l[LB_LSN_STRLEN];
        json_array_append_new(
            tables, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "database",
                              t->database, "schema", t->schema, "table", t->table, "lake_lsn",
                              lb_lsn_format(t->lake_lsn, l), "files", (json_int_t)t->files, "bytes",
                              (json_int_t)t->bytes, "rows", (json_int_t)t->rows, "chunks_written",
                              (json_int_t)t->chunks_written, "heap_bytes_read",
                              (json_int_t)t->heap_bytes_read, "full", t->full));
        if (t->partitioned)
            json_object_set_new(json_array_get(tables, json_array_size(tables) - 1), "partitioned",
                                json_true());
        if (t->seeded)
            json_object_set_new(json_array_get(tables, json_array_size(tables) - 1), "seeded",
                                json_true());
    }
    json_t *out = json_pack(
        "{s:s, s:o, s:I, s:I, s:I, s:I, s:I}", "lsn", lb_lsn_format(lsn, lsnbuf), "tables", tables,
        "dropped", (json_int_t)res.dropped, "orphans_deleted", (json_int_t)res.orphans_deleted,
        "heap_bytes_read", (json_int_t)res.heap_bytes_read, "lake_bytes_written",
        (json_int_t)res.lake_bytes_written, "rows_written", (json_int_t)res.rows_written);
    char *text = json_dumps(out, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(out);
    ltap_result_free(&res);
    lake_store_close(st);
    free(dirty.b);
    return 0;
}
