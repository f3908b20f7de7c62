/*
 * ltap.c: materializing a timeline's tables into lake tables at an LSN P.
 *
 * What. Every ordinary table (relkind 'r', relpersistence 'p') of every
 * database that accepts connections and is not a template, outside
 * pg_catalog, information_schema, pg_toast and temp schemas. Leaf
 * partitions are ordinary tables and are materialized like any other.
 * Catalogs, temp and unlogged tables are not (unlogged tables have no WAL,
 * so the standby has no rows for them). Each table is one lake table
 * (lake/table.h: Iceberg + Delta) at <prefix>/lake/<db>/<schema>/<table>.
 * So is each partitioned table (relkind 'p', any level), over its leaves'
 * data files, materialized after them (materialize_parent).
 *
 * Rows. From the standby at P, never from the compute: per database one
 * REPEATABLE READ, READ ONLY transaction (one snapshot, which is P's since
 * replay is paused), and per chunk of blocks one binary COPY of
 * `SELECT ctid, <columns> FROM ONLY t WHERE ctid >= '(a,0)' AND ctid <
 * '(b,0)'` (a TID range scan). So a lake snapshot holds exactly the rows a
 * SELECT on a hot standby at P returns, each with its heap TID. TOASTed
 * values arrive detoasted.
 *
 * Chunks and increments. A table is cut into chunks of chunk_blocks heap
 * blocks; chunk k is one data file, data/c<k>-<P>-<random>.parquet (its
 * number is in its name, so the chunk map is the lake table's live set and
 * needs no other state). A run rewrites a chunk only when the dirty test
 * (the caller's WAL block index) says a block of it changed since the
 * table's lake LSN, and removes files of chunks past the table's end. A
 * table whose relfilenode differs from the one its last snapshot records
 * (TRUNCATE, VACUUM FULL, CLUSTER, a rewriting ALTER) is rewritten in
 * full. Column changes evolve the lake table's schema by field id (one
 * per attnum) and keep its files, except where they would read wrong (see
 * schema_needs_rewrite()). One table's changes are one lake commit,
 * with lakebase.lsn and lakebase.relfilenode in its summary.
 *
 * Drops. The list of materialized tables is kept at
 * <prefix>/lake/_ltap_tables.json; a table in it that a complete run no
 * longer finds is deleted from the store (its relation was dropped or
 * renamed).
 *
 * Crashes. Data files are written before the commit that lists them, and
 * a commit is atomic per format (lake/table.h), so a crash leaves at most
 * unreferenced files; the next run with the same P skips tables already at
 * P and redoes the rest. A run marker (<prefix>/lake/_ltap_run.json) left
 * "running" tells the next run to collect those files (sweep_orphans,
 * drop_unlisted).
 */
#include "ltap.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "buf.h"
#include "log.h"
#include "lake/parquet.h"
#include "pgtype.h"
#include "lake/table.h"

#define BATCH_ROWS 4096
/* COPY rows up to this size are copied into the batch (see write_chunk) */
#define COPY_ROW_BYTES 8192
#define TABLES_KEY "lake/_ltap_tables.json"
#define RUN_KEY "lake/_ltap_run.json"

/* A leaf partition as this run left it, for its partitioned ancestors
 * (materialize_parent): its live files, with the statistics of those this
 * run wrote. */
typedef struct leaf_file {
    char *path; /* relative to the leaf's prefix */
    int64_t records, bytes;
    lake_parquet_file_stats *stats; /* written this run, or NULL */
} leaf_file;

typedef struct leaf_state {
    char *oid, *schema, *name, *tprefix;
    char *signature; /* of its columns (col_signature) */
    char *committed; /* lakebase.lsn of its last commit, "" for none */
    uint64_t nblocks;
    leaf_file *files;
    size_t nfiles;
} leaf_state;

typedef struct run {
    const ltap_request *r;
    uint32_t chunk_blocks;
    uint32_t block_size;
    ltap_result *res;
    json_t *tables;     /* the new list of tables */
    bool sweep;         /* the previous run did not finish: collect its orphans */
    leaf_state *leaves; /* of the current database */
    size_t nleaves;
    lb_err *err;
} run;

static void
leaves_free(run *ru)
{
    for (size_t i = 0; i < ru->nleaves; i++) {
        leaf_state *l = &ru->leaves[i];
        for (size_t k = 0; k < l->nfiles; k++) {
            free(l->files[k].path);
            lake_parquet_file_stats_free(l->files[k].stats);
        }
        free(l->files);
        free(l->oid);
        free(l->schema);
        free(l->name);
        free(l->tprefix);
        free(l->signature);
        free(l->committed);
    }
    free(ru->leaves);
    ru->leaves = NULL;
    ru->nleaves = 0;
}

/* ---- libpq helpers ---------------------------------------------------------- */

static PGconn *
connect_db(const char *conninfo, const char *dbname, lb_err *err)
{
    const char *keys[] = {"dbname", dbname ? "dbname" : NULL, NULL};
    const char *vals[] = {conninfo, dbname, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c) {
        lb_err_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        lb_err_set(err, LB_EPROTO, "could not connect to the standby (database \"%s\"): %s",
                   dbname ? dbname : "", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

static PGresult *
query(PGconn *c, const char *sql, int nparams, const char *const *params, lb_err *err)
{
    PGresult *res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        lb_err_set(err, LB_EPROTO, "query on the standby failed: %s", PQerrorMessage(c));
        PQclear(res);
        return NULL;
    }
    return res;
}

/* A quoted identifier, appended to b. */
static void
quote_ident(lb_buf *b, const char *name)
{
    lb_buf_append(b, "\"", 1);
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            lb_buf_append(b, "\"", 1);
        lb_buf_append(b, p, 1);
    }
    lb_buf_append(b, "\"", 1);
}

/* ---- tables ---------------------------------------------------------------------- */

typedef struct table_info {
    char *oid, *schema, *name;
    uint32_t relfilenode, spc, db;
    int natts; /* pg_class.relnatts: attnums above it are newer columns */
    uint64_t nblocks;
    ltap_column *cols;
    size_t ncols;
    bool partition; /* a leaf partition: kept for its parents (leaf_state) */
    /* Writing a copy of this leaf for a partitioned parent: the leaf's oid,
     * which the data files' names end with (-l<oid>.parquet); NULL else. */
    const char *copy_of;
} table_info;

static void
table_info_free(table_info *t)
{
    for (size_t i = 0; i < t->ncols; i++)
        ltap__column_free(&t->cols[i]);
    free(t->cols);
    free(t->oid);
    free(t->schema);
    free(t->name);
}

/* The live attributes of relation relid (a table, or a composite type's
 * relation) as mapped columns. A composite attribute of a table gets its
 * own attributes as fields (one level: a composite inside a composite
 * stays in overflow). */
static int
load_attrs(PGconn *c, const char *relid, bool nested, ltap_column **out, size_t *nout, lb_err *err)
{
    *out = NULL;
    *nout = 0;
    const char *params[] = {relid};
    PGresult *res = query(
        c,
        "SELECT a.attnum, a.attname, "
        "       CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE a.atttypid END, "
        "       CASE WHEN ty.typtype = 'd' THEN ty.typtypmod ELSE a.atttypmod END, "
        "       a.attnotnull, coalesce(bt.typtype, ty.typtype), coalesce(el.oid, rs.oid, 0), "
        "       coalesce(el.typtype, rs.typtype, ''), a.atttypid, "
        "       coalesce(bt.typrelid, ty.typrelid), a.atthasmissing "
        "FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid "
        "LEFT JOIN pg_type bt ON ty.typtype = 'd' AND bt.oid = ty.typbasetype "
        "LEFT JOIN pg_type el ON el.oid = coalesce(bt.typelem, ty.typelem) "
        "      AND coalesce(bt.typlen, ty.typlen) = -1 "
        "LEFT JOIN pg_range rg ON rg.rngtypid = coalesce(bt.oid, ty.oid) "
        "LEFT JOIN pg_type rs ON rs.oid = rg.rngsubtype "
        "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        1, params, err);
    if (!res)
        return err->code;
    int n = PQntuples(res);
    ltap_column *cols = calloc((size_t)(n ? n : 1), sizeof(ltap_column));
    if (!cols) {
        PQclear(res);
        return -ENOMEM;
    }
    int rc = 0;
    size_t ncols = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        ltap_column *col = &cols[ncols++];
        col->attnum = (int16_t)atoi(PQgetvalue(res, i, 0));
        col->name = strdup(PQgetvalue(res, i, 1));
        col->typid = (uint32_t)strtoul(PQgetvalue(res, i, 2), NULL, 10);
        col->typmod = atoi(PQgetvalue(res, i, 3));
        col->notnull = PQgetvalue(res, i, 4)[0] == 't';
        col->decl_typid = (uint32_t)strtoul(PQgetvalue(res, i, 8), NULL, 10);
        col->hasmissing = PQgetvalue(res, i, 10)[0] == 't';
        if (!col->name) {
            rc = -ENOMEM;
            break;
        }
        char typtype = PQgetvalue(res, i, 5)[0];
        ltap__column_map(col, typtype, (uint32_t)strtoul(PQgetvalue(res, i, 6), NULL, 10),
                         PQgetvalue(res, i, 7)[0]);
        if (typtype == 'c' && !nested) {
            ltap_column *fields;
            size_t nfields;
            rc = load_attrs(c, PQgetvalue(res, i, 9), true, &fields, &nfields, err);
            if (rc == 0)
                ltap__composite_map(col, fields, nfields);
        }
    }
    PQclear(res);
    if (rc) {
        for (size_t i = 0; i < ncols; i++)
            ltap__column_free(&cols[i]);
        free(cols);
        return rc;
    }
    *out = cols;
    *nout = ncols;
    return 0;
}

static int
load_columns(PGconn *c, table_info *t, lb_err *err)
{
    return load_attrs(c, t->oid, false, &t->cols, &t->ncols, err);
}

/* ---- writing one chunk ---------------------------------------------------------- */

static int
buf_sink(void *arg, const void *bytes, size_t n)
{
    return lb_buf_append(arg, bytes, n);
}

static inline uint32_t
rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

typedef struct batch {
    size_t nfields; /* top-level lake fields */
    lake_value **columns;
    size_t nrows;
    char **msgs; /* large COPY messages the values borrow from */
    size_t nmsgs;
    ltap_arena arena;
    lake_value *ovf; /* scratch: one row's overflow entries */
} batch;

static int
batch_flush(batch *b, lake_parquet_writer *w, lb_err *err)
{
    int rc = 0;
    if (b->nrows && w) {
        rc = lake_parquet_write_columns(w, (const lake_value *const *)b->columns, b->nfields,
                                        b->nrows);
        if (rc)
            lb_err_set(err, rc, "%s", lake_parquet_writer_error(w));
    }
    for (size_t i = 0; i < b->nmsgs; i++)
        PQfreemem(b->msgs[i]);
    b->nmsgs = 0;
    b->nrows = 0;
    ltap__arena_reset(&b->arena);
    return rc;
}

/* One COPY data row into the batch. */
static int
parse_row(const table_info *t, batch *b, const uint8_t *p, size_t n, lb_err *err)
{
    if (n < 2)
        return lb_err_set(err, LB_EPROTO, "short COPY row");
    int16_t nf = (int16_t)(p[0] << 8 | p[1]);
    if (nf != (int16_t)(t->ncols + 1))
        return lb_err_set(err, LB_EPROTO, "COPY row has %d fields, want %zu", nf, t->ncols + 1);
    size_t pos = 2, r = b->nrows, field = 0;
    /* ctid */
    if (n - pos < 4 || rd32(p + pos) != 6 || n - pos < 10)
        return lb_err_set(err, LB_EPROTO, "bad ctid in COPY row");
    lake_set_int(&b->columns[field++][r], rd32(p + pos + 4));
    lake_set_int(&b->columns[field++][r], (uint16_t)(p[pos + 8] << 8 | p[pos + 9]));
    pos += 10;
    size_t novf = 0;
    for (size_t i = 0; i < t->ncols; i++) {
        const ltap_column *c = &t->cols[i];
        if (n - pos < 4)
            return lb_err_set(err, LB_EPROTO, "COPY row ends early");
        int32_t len = (int32_t)rd32(p + pos);
        pos += 4;
        /* decoded in place (lake_set_*, value.h) */
        lake_value scratch, *v = c->kind != LTAP_OVERFLOW ? &b->columns[field++][r] : &scratch;
        if (len < 0)
            lake_set_null(v);
        else {
            if ((size_t)len > n - pos)
                return lb_err_set(err, LB_EPROTO, "COPY field longer than its row");
            int rc =
                c->kind == LTAP_OVERFLOW ? 1 : ltap__decode(c, p + pos, (size_t)len, &b->arena, v);
            if (rc < 0)
                return lb_err_set(err, rc, "column \"%s\": %s", c->name,
                                  rc == LB_EPROTO ? "value is not of the column's type"
                                                  : lb_strerror(rc));
            if (rc == 1) {
                lake_value *e = ltap__arena_alloc(&b->arena, 2 * sizeof(lake_value));
                if (!e)
                    return -ENOMEM;
                lake_set_int(&e[0], c->attnum);
                lake_set_bytes(&e[1], p + pos, (size_t)len);
                lake_set_struct(&b->ovf[novf++], e, 2);
            }
            pos += (size_t)len;
        }
    }
    if (novf) {
        lake_value *items = ltap__arena_alloc(&b->arena, novf * sizeof(lake_value));
        if (!items)
            return -ENOMEM;
        memcpy(items, b->ovf, novf * sizeof(lake_value));
        lake_set_list(&b->columns[field][r], items, novf);
    } else {
        lake_set_null(&b->columns[field][r]);
    }
    b->nrows++;
    return 0;
}

static void
random_hex(char *out, size_t nbytes)
{
    uint8_t r[16];
    if (nbytes > sizeof(r))
        nbytes = sizeof(r);
    if (getrandom(r, nbytes, 0) != (ssize_t)nbytes)
        memset(r, 0, sizeof(r));
    for (size_t i = 0; i < nbytes; i++)
        sprintf(out + 2 * i, "%02x", r[i]);
}

/* What writing a table's chunks reuses from one chunk to the next: the
 * batch, the Parquet writer (restarted per file, so its page buffers,
 * dictionaries and compression context are allocated and faulted in once
 * per table, not per chunk) and the buffer the file is assembled in. */
typedef struct table_writer {
    batch b;
    lake_parquet_writer *w; /* NULL until the first chunk */
    lb_buf file;
} table_writer;

static int
table_writer_init(table_writer *tw, const table_info *t)
{
    memset(tw, 0, sizeof(*tw));
    batch *b = &tw->b;
    size_t nnative = 0;
    for (size_t i = 0; i < t->ncols; i++)
        nnative += t->cols[i].kind != LTAP_OVERFLOW;
    b->nfields = 2 + nnative + 1;
    b->columns = calloc(b->nfields, sizeof(lake_value *));
    b->msgs = calloc(BATCH_ROWS + 1, sizeof(char *));
    b->ovf = calloc(t->ncols + 1, sizeof(lake_value));
    if (!b->columns || !b->msgs || !b->ovf)
        return -ENOMEM;
    for (size_t i = 0; i < b->nfields; i++)
        if (!(b->columns[i] = calloc(BATCH_ROWS, sizeof(lake_value))))
            return -ENOMEM;
    return 0;
}

static void
table_writer_free(table_writer *tw)
{
    batch *b = &tw->b;
    for (size_t i = 0; b->msgs && i < b->nmsgs; i++)
        PQfreemem(b->msgs[i]);
    for (size_t i = 0; b->columns && i < b->nfields; i++)
        free(b->columns[i]);
    free(b->columns);
    free(b->msgs);
    free(b->ovf);
    ltap__arena_free(&b->arena);
    lake_parquet_writer_free(tw->w);
    lb_buf_free(&tw->file);
    memset(tw, 0, sizeof(*tw));
}

/* A new file in tw->file: the writer made on the first call, restarted
 * after. */
static int
table_writer_start(table_writer *tw, lake_schema *schema, lb_err *err)
{
    lb_buf_reset(&tw->file);
    if (tw->w) {
        int rc = lake_parquet_writer_restart(tw->w);
        if (rc)
            lb_err_set(err, rc, "%s", lake_parquet_writer_error(tw->w));
        return rc;
    }
    /* No dictionary encoding: zstd over PLAIN pages makes files as small
     * or smaller here, and building dictionaries that high-cardinality
     * columns (ids, timestamps, uuids, floats) then abandon cost a third of
     * the CPU on a wide mixed-type table (bench/ltap: 66 -> 95 MB/s/core;
     * its files 15.1 -> 14.0 MB, pgbench_accounts' 1.40 -> 1.40 MB). */
    lake_parquet_options po;
    lake_parquet_options_init(&po);
    po.dictionary = false;
    /* zstd level 2 on every page, no trial at level -1: a chunk's file has
     * one or two pages per column, so the trial compressed nearly every
     * page twice. On bench/ltap's wide table level 2 alone is 25% faster
     * than level 3 with the trial and its files 0.7% smaller (23.32 ->
     * 23.16 MB); pgbench_accounts' 0.7% larger (2.80 -> 2.82 MB). */
    po.zstd_level = 2;
    po.zstd_trial = false;
    /* pgtype.c sends a STRING or JSON value that is not UTF-8 to the
     * overflow list: the writer need not check each again (it read them
     * cold, long after the decoder, at 4% of the CPU on the wide table) */
    po.trusted_utf8 = true;
    return lake_parquet_writer_new(schema, &po, buf_sink, &tw->file, &tw->w, err);
}

/* Read chunk k of t and write its data file; *stats_out NULL if it has no
 * rows (nothing written). path_out gets the file's path in the table. */
static int
write_chunk(run *ru, PGconn *c, const table_info *t, lake_schema *schema, table_writer *tw,
            const char *tprefix, uint64_t k, char *path_out, size_t path_cap,
            lake_parquet_file_stats **stats_out)
{
    lb_err *err = ru->err;
    *stats_out = NULL;
    uint64_t from = k * ru->chunk_blocks, to = from + ru->chunk_blocks;
    bool last = to >= t->nblocks;
    lb_buf sql = LB_BUF_INIT;
    lb_buf_printf(&sql, "COPY (SELECT ctid");
    for (size_t i = 0; i < t->ncols; i++) {
        lb_buf_append(&sql, ", ", 2);
        quote_ident(&sql, t->cols[i].name);
    }
    lb_buf_printf(&sql, " FROM ONLY ");
    quote_ident(&sql, t->schema);
    lb_buf_append(&sql, ".", 1);
    quote_ident(&sql, t->name);
    lb_buf_printf(&sql, " WHERE ctid >= '(%" PRIu64 ",0)'::tid", from);
    if (!last)
        lb_buf_printf(&sql, " AND ctid < '(%" PRIu64 ",0)'::tid", to);
    lb_buf_printf(&sql, ") TO STDOUT (FORMAT binary)");
    lb_buf_append(&sql, "", 1);
    if (!sql.data) {
        lb_buf_free(&sql);
        return -ENOMEM;
    }
    PGresult *res = PQexec(c, sql.data);
    lb_buf_free(&sql);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        lb_err_set(err, LB_EPROTO, "COPY of chunk %" PRIu64 " failed: %s", k, PQerrorMessage(c));
        PQclear(res);
        return LB_EPROTO;
    }
    PQclear(res);

    batch *b = &tw->b;
    lb_buf *file = &tw->file;
    int rc = table_writer_start(tw, schema, err);
    lake_parquet_writer *w = rc == 0 ? tw->w : NULL;
    bool header = true, done = false;
    while (!done) {
        char *msg = NULL;
        int n = PQgetCopyData(c, &msg, 0);
        if (n == -1) {
            done = true;
            break;
        }
        if (n < 0) {
            if (rc == 0)
                rc = lb_err_set(err, LB_EPROTO, "COPY failed: %s", PQerrorMessage(c));
            break;
        }
        if (rc) {
            PQfreemem(msg);
            continue; /* drain */
        }
        const uint8_t *p = (const uint8_t *)msg;
        size_t len = (size_t)n;
        if (header) {
            /* signature (11), flags (4), extension length (4) + extension */
            if (len < 19 || memcmp(p, "PGCOPY\n\377\r\n\0", 11) != 0) {
                rc = lb_err_set(err, LB_EPROTO, "binary COPY without its signature");
                PQfreemem(msg);
                continue;
            }
            size_t ext = rd32(p + 15);
            if (len < 19 + ext) {
                rc = lb_err_set(err, LB_EPROTO, "binary COPY header split");
                PQfreemem(msg);
                continue;
            }
            p += 19 + ext;
            len -= 19 + ext;
            header = false;
        }
        if (len == 2 && p[0] == 0xff && p[1] == 0xff) {
            PQfreemem(msg); /* trailer */
            continue;
        }
        if (len == 0) {
            PQfreemem(msg);
            continue;
        }
        if (len <= COPY_ROW_BYTES) {
            /* Into the batch's arena, and the message freed at once: libpq
             * allocates every row, and freeing a batch of them at its end
             * (cold, in the order of allocation) cost more than this copy;
             * freed now, the next row reuses the same memory. */
            uint8_t *row = ltap__arena_alloc(&b->arena, len);
            if (row)
                memcpy(row, p, len);
            PQfreemem(msg);
            p = row;
            if (!row) {
                rc = -ENOMEM;
                continue;
            }
        } else {
            b->msgs[b->nmsgs++] = msg; /* large: borrowed, not copied */
        }
        rc = parse_row(t, b, p, len, err);
        if (rc == 0 && b->nrows == BATCH_ROWS)
            rc = batch_flush(b, w, err);
        if (rc)
            lb_err_prefix(err, "chunk %" PRIu64, k);
    }
    PGresult *fin;
    while ((fin = PQgetResult(c)) != NULL) {
        if (rc == 0 && PQresultStatus(fin) != PGRES_COMMAND_OK)
            rc = lb_err_set(err, LB_EPROTO, "COPY of chunk %" PRIu64 " failed: %s", k,
                            PQerrorMessage(c));
        PQclear(fin);
    }
    if (rc == 0) {
        rc = batch_flush(b, w, err);
    } else {
        b->nrows = 0; /* failed: drop the batch, release its messages */
        batch_flush(b, NULL, NULL);
    }
    lake_parquet_file_stats *stats = NULL;
    int64_t rows = w ? lake_parquet_rows(w) : 0;
    if (rc == 0 && rows > 0) {
        char lsn[LB_LSN_STRLEN];
        lb_lsn_format(ru->r->lsn, lsn);
        lake_parquet_set_kv(w, "lakebase.lsn", lsn);
        if ((rc = lake_parquet_writer_close(w, &stats)))
            lb_err_set(err, rc, "%s", lake_parquet_writer_error(w));
    }
    if (rc == 0 && rows > 0) {
        char rnd[17];
        random_hex(rnd, 8);
        snprintf(path_out, path_cap, "data/c%08" PRIu64 "-%016" PRIx64 "-%s%s%s.parquet", k,
                 (uint64_t)ru->r->lsn, rnd, t->copy_of ? "-l" : "", t->copy_of ? t->copy_of : "");
        char *key = NULL;
        if (asprintf(&key, "%s/%s", tprefix, path_out) < 0)
            rc = -ENOMEM;
        else if ((rc = lake_store_put_new(ru->r->store, key, file->data, file->len)))
            lb_err_set(err, rc, "could not write \"%s\": %s", key, lake_store_error(ru->r->store));
        free(key);
        if (rc == 0) {
            ru->res->lake_bytes_written += file->len;
            ru->res->rows_written += (uint64_t)rows;
            *stats_out = stats;
            stats = NULL;
        }
    }
    lake_parquet_file_stats_free(stats);
    return rc;
}

/* ---- one table ---------------------------------------------------------------- */

/* Remember a removed file's key for expiry (best effort: a file not noted
 * stays in the store). */
static void
note_removed(ltap_result *res, const char *tprefix, const char *path)
{
    char **grown = realloc(res->removed, (res->nremoved + 1) * sizeof(*grown));
    if (!grown)
        return;
    res->removed = grown;
    if (asprintf(&grown[res->nremoved], "%s/%s", tprefix, path) >= 0)
        res->nremoved++;
}

/* Delete every object of the lake table under tprefix: logs and metadata
 * first, so that no reader finds a table whose files are gone. A data file
 * another timeline's lake still lists (ltap_request.referenced: a branch
 * that started from this lake) is kept and noted as removed instead, so
 * that expiry deletes it once nothing references it. */
static int
delete_table(run *ru, const char *tprefix)
{
    lake_store *st = ru->r->store;
    char *dir = NULL;
    if (asprintf(&dir, "%s/", tprefix) < 0)
        return -ENOMEM;
    lb_objstore_listing l;
    memset(&l, 0, sizeof(l));
    int rc = lake_store_list(st, dir, &l);
    for (int pass = 0; rc == 0 && pass < 2; pass++)
        for (size_t i = 0; rc == 0 && i < l.nobjects; i++) {
            const char *key = l.objects[i].key;
            bool data = strncmp(key + strlen(dir), "data/", 5) == 0;
            if (data != (pass == 1))
                continue;
            if (data && ru->r->referenced && ru->r->referenced(ru->r->referenced_arg, key)) {
                note_removed(ru->res, tprefix, key + strlen(dir));
                continue;
            }
            rc = lake_store_delete(st, key);
        }
    if (rc)
        lb_err_set(ru->err, rc, "could not delete lake table \"%s\": %s", tprefix,
                   lake_store_error(st));
    lb_objstore_list_free(&l);
    free(dir);
    return rc;
}

static long long
chunk_of(const char *path)
{
    unsigned long long k;
    if (path[0] == '/') { /* a file shared from another prefix: its name */
        const char *d = NULL;
        for (const char *p = strstr(path, "/data/"); p; p = strstr(p + 1, "/data/"))
            d = p;
        if (!d)
            return -1;
        path = d + 1;
    }
    if (sscanf(path, "data/c%8llu-", &k) != 1)
        return -1;
    return (long long)k;
}

/* The seed of a new table (ltap_request.seed_prefix): the same table in
 * the seed lake, as of its last commit at or before seed_lsn. */
typedef struct seed {
    lb_lsn lsn;   /* that commit's P */
    char **paths; /* '/' and key */
    int64_t *records, *bytes;
    size_t n;
} seed;

static void
seed_free(seed *sd)
{
    for (size_t i = 0; i < sd->n; i++)
        free(sd->paths[i]);
    free(sd->paths);
    free(sd->records);
    free(sd->bytes);
    memset(sd, 0, sizeof(*sd));
}

/* 1 and *sd when the seed lake has the table with these columns and this
 * relfilenode, committed last at or before seed_lsn; 0 when it does not
 * (the table is written in full); or an error. */
static int
load_seed(run *ru, const char *rel, lake_schema *schema, const table_info *t, seed *sd)
{
    const ltap_request *r = ru->r;
    memset(sd, 0, sizeof(*sd));
    char *ptp = NULL, *meta = NULL;
    if (asprintf(&ptp, "%s/%s", r->seed_prefix, rel) < 0)
        return -ENOMEM;
    if (asprintf(&meta, "%s/metadata/", ptp) < 0) {
        free(ptp);
        return -ENOMEM;
    }
    /* never create a table in the seed lake: only open one that exists */
    lb_objstore_listing l;
    memset(&l, 0, sizeof(l));
    int rc = lake_store_list(r->store, meta, &l);
    bool exists = rc == 0 && l.nobjects > 0;
    lb_objstore_list_free(&l);
    free(meta);
    lake_table *pt = NULL;
    lb_err perr = {0};
    if (rc == 0 && exists && lake_table_open(r->store, ptp, schema, NULL, &pt, &perr) != 0) {
        lb_info("ltap: no seed for table=%s: %s", rel, perr.message);
        exists = false;
    }
    const char *lsn_s = pt ? lake_table_summary_value(pt, "lakebase.lsn") : NULL;
    const char *rfn_s = pt ? lake_table_summary_value(pt, "lakebase.relfilenode") : NULL;
    int found = 0;
    if (rc == 0 && exists && lsn_s && rfn_s && lb_lsn_parse(lsn_s, &sd->lsn) == 0 &&
        sd->lsn <= r->seed_lsn && strtoul(rfn_s, NULL, 10) == t->relfilenode &&
        !lake_table_schema_changed(pt)) {
        size_t n = lake_table_live_count(pt);
        sd->paths = calloc(n + 1, sizeof(char *));
        sd->records = calloc(n + 1, sizeof(int64_t));
        sd->bytes = calloc(n + 1, sizeof(int64_t));
        if (!sd->paths || !sd->records || !sd->bytes)
            rc = -ENOMEM;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            const char *p = lake_table_live_path(pt, i);
            /* the seed's own files by key; what it shares, as it is */
            if ((p[0] == '/' ? asprintf(&sd->paths[i], "%s", p)
                             : asprintf(&sd->paths[i], "/%s/%s", ptp, p)) < 0) {
                rc = -ENOMEM;
                break;
            }
            sd->n++;
            if (lake_table_live_size(pt, i, &sd->records[i], &sd->bytes[i]) != 0)
                rc = lb_err_set(ru->err, LB_EPROTO, "no size for seed file \"%s\"", p);
        }
        found = rc == 0;
    }
    /* Every file must still be there: the seed's expiry may have deleted
     * files it replaced before this lake referenced them. Then the table
     * is written in full. */
    for (size_t i = 0; rc == 0 && found && i < sd->n;) {
        const char *slash = strrchr(sd->paths[i], '/');
        size_t dlen = (size_t)(slash - sd->paths[i]);
        char *dir = strndup(sd->paths[i] + 1, dlen);
        if (!dir) {
            rc = -ENOMEM;
            break;
        }
        memset(&l, 0, sizeof(l));
        rc = lake_store_list(r->store, dir, &l);
        size_t k = i;
        for (; rc == 0 && k < sd->n && strncmp(sd->paths[k], sd->paths[i], dlen + 1) == 0 &&
               !strchr(sd->paths[k] + dlen + 1, '/');
             k++) {
            bool there = false;
            for (size_t j = 0; j < l.nobjects && !there; j++)
                there = strcmp(l.objects[j].key, sd->paths[k] + 1) == 0;
            if (!there) {
                lb_info("ltap: seed file gone, writing in full key=%s", sd->paths[k] + 1);
                found = 0;
            }
        }
        lb_objstore_list_free(&l);
        free(dir);
        i = k > i ? k : i + 1;
    }
    if (rc != 0 || !found)
        seed_free(sd);
    lake_table_close(pt);
    free(ptp);
    return rc ? rc : found;
}

/* The P in a data file's name (data/c<k>-<P>-<random>.parquet), or 0. */
static lb_lsn
lsn_of(const char *path)
{
    unsigned long long k, lsn;
    if (sscanf(path, "data/c%8llu-%16llx-", &k, &lsn) != 2)
        return 0;
    return (lb_lsn)lsn;
}

static bool
is_live(const lake_table *lt, const char *path)
{
    size_t lo = 0, hi = lake_table_live_count(lt);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(lake_table_live_path(lt, mid), path);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/*
 * Whether the table's schema change since its last lake snapshot leaves
 * the old data files wrong, so that every chunk must be written again:
 *  - a field kept its id with a promoted type (numeric(10,2) to
 *    numeric(12,2) without a table rewrite): Iceberg could read the old
 *    files, but Delta has no type widening here, and both formats list the
 *    same files;
 *  - a column added since, whose old rows read a default: ADD COLUMN with
 *    a non-volatile DEFAULT does not rewrite the heap but sets
 *    atthasmissing, and rows written before it read attmissingval. Old
 *    files lack the field, and a reader projecting by field id reads NULL
 *    there, which is wrong. (Iceberg v3's initial-default would say it,
 *    but v2 readers and Delta cannot.) "Added since" is an attnum above
 *    the relnatts the last snapshot recorded (lakebase.natts), or, for a
 *    snapshot from before that was recorded, a native column the table's
 *    schema lacks.
 * ADD COLUMN without a default (old rows NULL), DROP COLUMN and RENAME
 * COLUMN leave every old file exact, read by field id.
 */
static bool
schema_needs_rewrite(const table_info *t, const lake_table *lt)
{
    if (lake_table_schema_retyped(lt))
        return true;
    const char *natts_s = lake_table_summary_value(lt, "lakebase.natts");
    int natts = natts_s ? atoi(natts_s) : -1;
    for (size_t i = 0; i < t->ncols; i++) {
        const ltap_column *c = &t->cols[i];
        if (!c->hasmissing)
            continue;
        bool added = natts >= 0
                         ? c->attnum > natts
                         : c->kind == LTAP_OVERFLOW || !lake_table_field_existed(lt, c->attnum);
        if (added)
            return true;
    }
    return false;
}

/*
 * Files of a killed run. A run writes a table's data files before the
 * commit that lists them, so a run that died (kill -9, an error) may have
 * left files no snapshot references. Every file a commit of the table
 * listed carries a P in its name no later than the table's last commit
 * (`committed`); a file not live now whose P is later was never
 * committed, and none of this run's files exist yet (the sweep comes
 * before the table's first chunk), so it is an orphan: deleted. Files
 * with an earlier P that are not live belong to older snapshots and are
 * left to expiry. Only after a run that did not finish (ru->sweep).
 */
static int
sweep_orphans(run *ru, const lake_table *lt, const char *tprefix, lb_lsn committed, bool has_commit)
{
    char *dir = NULL;
    if (asprintf(&dir, "%s/data/", tprefix) < 0)
        return -ENOMEM;
    lb_objstore_listing l;
    memset(&l, 0, sizeof(l));
    int rc = lake_store_list(ru->r->store, dir, &l);
    size_t skip = strlen(tprefix) + 1;
    for (size_t i = 0; rc == 0 && i < l.nobjects; i++) {
        const char *path = l.objects[i].key + skip;
        lb_lsn at = lsn_of(path);
        /* a name this transcoder does not write is left alone */
        if (at == 0 || is_live(lt, path) || (has_commit && at <= committed))
            continue;
        lb_info("ltap: deleting an orphan of an unfinished run key=%s", l.objects[i].key);
        rc = lake_store_delete(ru->r->store, l.objects[i].key);
        if (rc == LB_ENOTFOUND || rc == -ENOENT)
            rc = 0;
        if (rc == 0)
            ru->res->orphans_deleted++;
    }
    if (rc)
        lb_err_set(ru->err, rc, "could not collect orphans of \"%s\": %s", tprefix,
                   lake_store_error(ru->r->store));
    lb_objstore_list_free(&l);
    free(dir);
    return rc;
}

/* What decides a data file's layout: per column its attnum (the field
 * id), name, type, typmod and mapping, and a composite's attributes. Two
 * tables with the same signature write interchangeable files. (NOT NULL
 * is left out: a leaf may add it, and a file stricter than its table is
 * read the same.) */
static char *
col_signature(const ltap_column *cols, size_t n)
{
    lb_buf b = LB_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        const ltap_column *c = &cols[i];
        lb_buf_printf(&b, "%d:%s:%u:%d:%u:%d:%d:%u;", c->attnum, c->name, c->typid, c->typmod,
                      c->decl_typid, (int)c->kind, (int)c->elem_kind, c->elem_typid);
        for (size_t k = 0; k < c->nfields; k++)
            lb_buf_printf(&b, "(%u:%d:%u)", c->fields[k].typid, c->fields[k].typmod,
                          c->fields[k].decl_typid);
    }
    lb_buf_append(&b, "", 1);
    return lb_buf_steal(&b, NULL);
}

/* The live files of lt that another prefix owns (a seed lake's), for
 * ltap_result.shared. */
static int
note_shared(run *ru, const lake_table *lt)
{
    ltap_result *res = ru->res;
    size_t own = strlen(ru->r->prefix);
    for (size_t i = 0; i < lake_table_live_count(lt); i++) {
        const char *p = lake_table_live_path(lt, i);
        if (p[0] != '/' || (strncmp(p + 1, ru->r->prefix, own) == 0 && p[1 + own] == '/'))
            continue;
        char **grown = realloc(res->shared, (res->nshared + 1) * sizeof(char *));
        if (!grown)
            return -ENOMEM;
        res->shared = grown;
        if (!(grown[res->nshared] = strdup(p + 1)))
            return -ENOMEM;
        res->nshared++;
    }
    return 0;
}

/* Keep a leaf partition's live files (and the statistics of those this
 * run wrote, taken from adds) for its partitioned ancestors. */
static int
keep_leaf(run *ru, const table_info *t, const lake_table *lt, const char *tprefix,
          lake_data_file *adds, size_t nadds)
{
    leaf_state *grown = realloc(ru->leaves, (ru->nleaves + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    ru->leaves = grown;
    leaf_state *l = &grown[ru->nleaves++];
    memset(l, 0, sizeof(*l));
    const char *committed = lake_table_summary_value(lt, "lakebase.lsn");
    l->oid = strdup(t->oid);
    l->schema = strdup(t->schema);
    l->name = strdup(t->name);
    l->tprefix = strdup(tprefix);
    l->signature = col_signature(t->cols, t->ncols);
    l->committed = strdup(committed ? committed : "");
    l->nblocks = t->nblocks;
    size_t n = lake_table_live_count(lt);
    l->files = calloc(n + 1, sizeof(leaf_file));
    if (!l->oid || !l->schema || !l->name || !l->tprefix || !l->signature || !l->committed ||
        !l->files)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        leaf_file *f = &l->files[l->nfiles];
        if (!(f->path = strdup(lake_table_live_path(lt, i))))
            return -ENOMEM;
        l->nfiles++;
        if (lake_table_live_size(lt, i, &f->records, &f->bytes) != 0)
            f->records = f->bytes = 0;
        for (size_t k = 0; k < nadds; k++)
            if (adds[k].stats && strcmp(adds[k].path, f->path) == 0) {
                f->stats = (lake_parquet_file_stats *)adds[k].stats;
                adds[k].stats = NULL;
            }
    }
    return 0;
}

/* A new, zeroed status row for db.schema.table at the end of res; NULL
 * when out of memory. */
static ltap_table_status *
result_add_table(ltap_result *res, const char *db, const char *schema, const char *table)
{
    ltap_table_status *grown = realloc(res->tables, (res->ntables + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    res->tables = grown;
    ltap_table_status *ts = &grown[res->ntables++];
    memset(ts, 0, sizeof(*ts));
    snprintf(ts->database, sizeof(ts->database), "%s", db);
    snprintf(ts->schema, sizeof(ts->schema), "%s", schema);
    snprintf(ts->table, sizeof(ts->table), "%s", table);
    return ts;
}

static int
materialize_table(run *ru, PGconn *c, const char *dbname, table_info *t)
{
    lb_err *err = ru->err;
    const ltap_request *r = ru->r;
    lake_schema *schema = NULL;
    char *rel = NULL, *tprefix = NULL;
    lake_table *lt = NULL;
    int rc = ltap__schema_build(t->cols, t->ncols, &schema, err);
    if (rc == 0 && (rc = lake_table_prefix(dbname, t->schema, t->name, &rel)) == 0 &&
        asprintf(&tprefix, "%s/%s", r->prefix, rel) < 0) {
        tprefix = NULL;
        rc = -ENOMEM;
    }
    bool full = false;
    if (rc == 0) {
        rc = lake_table_open(r->store, tprefix, schema, NULL, &lt, err);
        if (rc == LB_ESCHEMA) {
            /* no valid evolution (a type change that is no promotion): the
             * lake table starts over, written in full */
            lb_info("ltap: columns changed incompatibly, rewriting table=%s.%s.%s msg=\"%s\"",
                    dbname, t->schema, t->name, err->message);
            full = true;
            rc = delete_table(ru, tprefix);
            if (rc == 0)
                rc = lake_table_open(r->store, tprefix, schema, NULL, &lt, err);
        }
    }
    ltap_table_status *ts = NULL;
    if (rc == 0 && !(ts = result_add_table(ru->res, dbname, t->schema, t->name)))
        rc = -ENOMEM;
    const char *prev_lsn_s = rc == 0 ? lake_table_summary_value(lt, "lakebase.lsn") : NULL;
    const char *prev_rfn_s = rc == 0 ? lake_table_summary_value(lt, "lakebase.relfilenode") : NULL;
    lb_lsn since = 0;
    if (!prev_lsn_s || lb_lsn_parse(prev_lsn_s, &since) != 0 || !prev_rfn_s ||
        strtoul(prev_rfn_s, NULL, 10) != t->relfilenode)
        full = true;
    if (rc == 0 && !full && schema_needs_rewrite(t, lt)) {
        lb_info("ltap: schema change needs the files rewritten, table=%s.%s.%s", dbname, t->schema,
                t->name);
        full = true;
    }
    bool skip = rc == 0 && !full && since == r->lsn;
    if (rc == 0 && ru->sweep)
        rc = sweep_orphans(ru, lt, tprefix, since, prev_lsn_s && since != 0);
    /* A table new here (a branch's first run) starts from its seed: the
     * seed's files by reference, only the chunks dirty since its commit
     * written again. */
    seed sd = {0};
    bool seeded = false;
    if (rc == 0 && !prev_lsn_s && lake_table_live_count(lt) == 0 && r->seed_prefix) {
        int s = load_seed(ru, rel, schema, t, &sd);
        if (s < 0)
            rc = s;
        else if (s == 1) {
            seeded = true;
            full = skip = false;
            since = sd.lsn;
        }
    }

    uint64_t nchunks = (t->nblocks + ru->chunk_blocks - 1) / ru->chunk_blocks;
    size_t nlive = rc == 0 ? lake_table_live_count(lt) : 0;
    lake_data_file *adds = calloc(nchunks + sd.n + 1, sizeof(*adds));
    char(*paths)[96] = calloc(nchunks + 1, 96);
    const char **removes = calloc(nlive + 1, sizeof(char *));
    bool *rewritten = calloc(nchunks + 1, sizeof(bool));
    size_t nadds = 0, nremoves = 0;
    if (rc == 0 && (!adds || !paths || !removes || !rewritten))
        rc = -ENOMEM;
    table_writer tw;
    int twrc = table_writer_init(&tw, t);
    if (rc == 0)
        rc = twrc;
    for (uint64_t k = 0; rc == 0 && !skip && k < nchunks; k++) {
        uint32_t first = (uint32_t)(k * ru->chunk_blocks);
        uint64_t n64 =
            t->nblocks - first < ru->chunk_blocks ? t->nblocks - first : ru->chunk_blocks;
        if (!full && r->dirty &&
            !r->dirty(r->dirty_arg, t->spc, t->db, t->relfilenode, first, (uint32_t)n64, since))
            continue;
        if (r->cancel && atomic_load(r->cancel)) {
            rc = lb_err_set(err, -ECANCELED, "cancelled");
            break;
        }
        lake_parquet_file_stats *st = NULL;
        rc =
            write_chunk(ru, c, t, schema, &tw, tprefix, k, paths[nadds], sizeof(paths[nadds]), &st);
        if (rc)
            break;
        ts->chunks_written++;
        rewritten[k] = true;
        ts->heap_bytes_read += n64 * ru->block_size;
        ru->res->heap_bytes_read += n64 * ru->block_size;
        for (size_t i = 0; i < nlive; i++)
            if (chunk_of(lake_table_live_path(lt, i)) == (long long)k)
                removes[nremoves++] = lake_table_live_path(lt, i);
        if (st)
            adds[nadds] = (lake_data_file){.path = paths[nadds], .stats = st}, nadds++;
    }
    /* files of chunks past the end, and (full) files of no chunk */
    for (size_t i = 0; rc == 0 && !skip && i < nlive; i++) {
        long long k = chunk_of(lake_table_live_path(lt, i));
        if (k < 0 || (uint64_t)k >= nchunks || (full && nchunks == 0))
            removes[nremoves++] = lake_table_live_path(lt, i);
    }
    /* the seed's files of chunks not written again, by reference */
    for (size_t i = 0; rc == 0 && seeded && i < sd.n; i++) {
        long long k = chunk_of(sd.paths[i]);
        if (k >= 0 && (uint64_t)k < nchunks && !rewritten[k])
            adds[nadds++] = (lake_data_file){
                .path = sd.paths[i], .file_bytes = sd.bytes[i], .records = sd.records[i]};
    }
    /* a schema change with no chunk to rewrite is a commit of its own */
    bool schema_only = rc == 0 && nadds + nremoves == 0 && lake_table_schema_changed(lt);
    if (rc == 0 && ((!skip && nadds + nremoves > 0) || schema_only)) {
        char lsn[LB_LSN_STRLEN], rfn[16], natts[16];
        lb_lsn_format(r->lsn, lsn);
        snprintf(rfn, sizeof(rfn), "%u", t->relfilenode);
        snprintf(natts, sizeof(natts), "%d", t->natts);
        const char *summary[] = {"lakebase.lsn", lsn, "lakebase.relfilenode", rfn, "lakebase.natts",
                                 natts,          NULL};
        lake_commit cm = {.adds = adds,
                          .nadds = nadds,
                          .removes = removes,
                          .nremoves = nremoves,
                          .summary = summary};
        /* noted before the commit: the paths belong to the live set it replaces */
        size_t noted = ru->res->nremoved;
        for (size_t i = 0; i < nremoves; i++)
            if (removes[i][0] != '/') /* a seed's file is not this table's to expire */
                note_removed(ru->res, tprefix, removes[i]);
        rc = lake_table_commit(lt, &cm, err);
        while (rc && ru->res->nremoved > noted)
            free(ru->res->removed[--ru->res->nremoved]);
    }
    if (rc == 0) {
        const char *lsn_s = lake_table_summary_value(lt, "lakebase.lsn");
        if (!lsn_s || lb_lsn_parse(lsn_s, &ts->lake_lsn) != 0 || nadds + nremoves == 0)
            ts->lake_lsn = r->lsn; /* unchanged since its last snapshot: current at P */
        ts->seeded = seeded;
        rc = note_shared(ru, lt);
        ts->files = lake_table_live_count(lt);
        const char *bytes = lake_table_summary_value(lt, "total-files-size");
        const char *rows = lake_table_summary_value(lt, "total-records");
        ts->bytes = bytes ? strtoull(bytes, NULL, 10) : 0;
        ts->rows = rows ? strtoull(rows, NULL, 10) : 0;
        ts->full = full;
        json_array_append_new(ru->tables,
                              json_pack("{s:s, s:s, s:s, s:s}", "database", dbname, "schema",
                                        t->schema, "table", t->name, "prefix", tprefix));
        if (rc == 0 && t->partition)
            rc = keep_leaf(ru, t, lt, tprefix, adds, nadds);
    }
    if (rc && rc != -ENOMEM)
        lb_err_prefix(err, "table \"%s\".\"%s\".\"%s\"", dbname, t->schema, t->name);
    table_writer_free(&tw);
    for (size_t i = 0; adds && i < nadds; i++)
        lake_parquet_file_stats_free((lake_parquet_file_stats *)adds[i].stats);
    free(adds);
    free(paths);
    free(removes);
    free(rewritten);
    seed_free(&sd);
    lake_table_close(lt);
    lake_schema_free(schema);
    free(rel);
    free(tprefix);
    return rc;
}

/* ---- a partitioned table -------------------------------------------------------- */

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether a parent's own file is a copy of leaf oid (…-l<oid>.parquet). */
static bool
copy_of_leaf(const char *path, const char *oid)
{
    const char *l = strrchr(path, '-');
    size_t n = strlen(oid);
    return l && l[1] == 'l' && strncmp(l + 2, oid, n) == 0 && strcmp(l + 2 + n, ".parquet") == 0;
}

/*
 * A partitioned table (relkind 'p', any level) as one lake table: the
 * data files of all its leaf partitions. A leaf whose columns have the
 * parent's layout (col_signature: same attnums, names and types) is
 * shared: the parent lists the leaf's own files by reference ('/' and
 * their key, lake/table.h), no copy. A leaf whose layout differs (its
 * attnums moved: a partition created after a DROP COLUMN on the parent,
 * or a table attached with other attnums) cannot share: Iceberg reads by
 * field id, and the ids are attnums. Its rows are written again, with the
 * parent's attnums, into the parent's own data/ (files named
 * ...-l<leaf oid>.parquet), whenever the leaf's last commit differs from
 * the one the copy was made at (the parent's summary keeps
 * lakebase.copy.<leaf oid> = that commit's LSN). Each run commits the
 * difference between the parent's live set and what its leaves have now,
 * so an attach, a detach or a drop of a partition changes the parent in
 * the same lake snapshot. Files shared from a leaf belong to the leaf: the
 * parent never notes them for expiry, and the leaf's expiry deletes them
 * (so the parent's snapshots older than the retention lose them too).
 */
static int
materialize_parent(run *ru, PGconn *c, const char *dbname, const char *oid, const char *nspname,
                   const char *relname)
{
    lb_err *err = ru->err;
    const ltap_request *r = ru->r;
    table_info t = {0};
    lake_schema *schema = NULL;
    char *rel = NULL, *tprefix = NULL, *sig = NULL;
    lake_table *lt = NULL;
    PGresult *leaves = NULL;
    lake_data_file *adds = NULL;
    char **want = NULL, **keys = NULL;
    const char **removes = NULL;
    size_t nwant = 0, nadds = 0, nremoves = 0, nkeys = 0, npaths = 0, cap = 0;
    t.oid = (char *)oid;
    int rc = load_attrs(c, oid, false, &t.cols, &t.ncols, err);
    if (rc == 0)
        rc = ltap__schema_build(t.cols, t.ncols, &schema, err);
    if (rc == 0 && !(sig = col_signature(t.cols, t.ncols)))
        rc = -ENOMEM;
    if (rc == 0 && (rc = lake_table_prefix(dbname, nspname, relname, &rel)) == 0 &&
        asprintf(&tprefix, "%s/%s", r->prefix, rel) < 0) {
        tprefix = NULL;
        rc = -ENOMEM;
    }
    if (rc == 0) {
        rc = lake_table_open(r->store, tprefix, schema, NULL, &lt, err);
        if (rc == LB_ESCHEMA) {
            lb_info("ltap: columns changed, rewriting table=%s.%s.%s", dbname, nspname, relname);
            rc = delete_table(ru, tprefix);
            if (rc == 0)
                rc = lake_table_open(r->store, tprefix, schema, NULL, &lt, err);
        }
    }
    if (rc == 0 && ru->sweep) {
        const char *l = lake_table_summary_value(lt, "lakebase.lsn");
        lb_lsn since = 0;
        bool has = l && lb_lsn_parse(l, &since) == 0;
        rc = sweep_orphans(ru, lt, tprefix, since, has);
    }
    if (rc == 0) {
        const char *params[] = {oid};
        leaves = query(c,
                       "SELECT p.relid::oid FROM pg_partition_tree($1::oid::regclass) p "
                       "JOIN pg_class c ON c.oid = p.relid "
                       "WHERE p.isleaf AND c.relkind = 'r' AND c.relpersistence = 'p' "
                       "ORDER BY 1",
                       1, params, err);
        rc = leaves ? 0 : err->code;
    }
    int nleaves = rc == 0 ? PQntuples(leaves) : 0;
    size_t nlive = rc == 0 ? lake_table_live_count(lt) : 0;
    for (int i = 0; rc == 0 && i < nleaves; i++) {
        const char *loid = PQgetvalue(leaves, i, 0);
        const leaf_state *l = NULL;
        for (size_t k = 0; k < ru->nleaves && !l; k++)
            if (strcmp(ru->leaves[k].oid, loid) == 0)
                l = &ru->leaves[k];
        if (!l) {
            rc = lb_err_set(err, LB_EPROTO, "leaf partition %s was not materialized", loid);
            break;
        }
        size_t more = l->nfiles + (l->nblocks + ru->chunk_blocks - 1) / ru->chunk_blocks + nlive;
        if (nwant + more > cap) {
            cap = nwant + more + 16;
            char **w = realloc(want, cap * sizeof(char *));
            lake_data_file *a = realloc(adds, cap * sizeof(*adds));
            char **k = realloc(keys, cap * sizeof(char *));
            if (w)
                want = w;
            if (a)
                adds = a;
            if (k)
                keys = k;
            if (!w || !a || !k) {
                rc = -ENOMEM;
                break;
            }
        }
        if (strcmp(l->signature, sig) == 0) {
            /* shared: the leaf's files, by reference */
            for (size_t k = 0; rc == 0 && k < l->nfiles; k++) {
                char *p = NULL;
                const char *lp = l->files[k].path; /* the leaf's own, or one it shares */
                if ((lp[0] == '/' ? asprintf(&p, "%s", lp)
                                  : asprintf(&p, "/%s/%s", l->tprefix, lp)) < 0) {
                    rc = -ENOMEM;
                    break;
                }
                keys[nkeys++] = p;
                want[nwant++] = p;
                adds[nadds++] = (lake_data_file){.path = p,
                                                 .stats = l->files[k].stats,
                                                 .file_bytes = l->files[k].bytes,
                                                 .records = l->files[k].records};
            }
            continue;
        }
        /* copied: kept while the leaf has not committed since the copy */
        char key[64];
        snprintf(key, sizeof(key), "lakebase.copy.%s", loid);
        const char *at = lake_table_summary_value(lt, key);
        if (at && strcmp(at, l->committed) == 0) {
            for (size_t k = 0; k < nlive; k++)
                if (copy_of_leaf(lake_table_live_path(lt, k), loid))
                    want[nwant++] = (char *)lake_table_live_path(lt, k);
            continue;
        }
        table_info ct = {.oid = l->oid,
                         .schema = l->schema,
                         .name = l->name,
                         .nblocks = l->nblocks,
                         .cols = t.cols,
                         .ncols = t.ncols,
                         .copy_of = l->oid};
        uint64_t nchunks = (l->nblocks + ru->chunk_blocks - 1) / ru->chunk_blocks;
        table_writer tw;
        int twrc = table_writer_init(&tw, &ct);
        if (rc == 0)
            rc = twrc;
        for (uint64_t k = 0; rc == 0 && k < nchunks; k++) {
            if (r->cancel && atomic_load(r->cancel)) {
                rc = lb_err_set(err, -ECANCELED, "cancelled");
                break;
            }
            lake_parquet_file_stats *st = NULL;
            char path[96];
            rc = write_chunk(ru, c, &ct, schema, &tw, tprefix, k, path, sizeof(path), &st);
            uint64_t n64 = l->nblocks - k * ru->chunk_blocks < ru->chunk_blocks
                               ? l->nblocks - k * ru->chunk_blocks
                               : ru->chunk_blocks;
            ru->res->heap_bytes_read += n64 * ru->block_size;
            if (rc == 0 && st) {
                char *p = strdup(path);
                if (!p) {
                    lake_parquet_file_stats_free(st);
                    rc = -ENOMEM;
                    break;
                }
                keys[nkeys++] = p;
                want[nwant++] = p;
                adds[nadds++] = (lake_data_file){.path = p, .stats = st};
                npaths++;
            }
        }
        table_writer_free(&tw);
    }
    /* the commit: what the leaves have now, against the parent's live set */
    if (rc == 0) {
        qsort(want, nwant, sizeof(char *), cmp_str);
        removes = calloc(nlive + 1, sizeof(char *));
        if (!removes)
            rc = -ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < nlive; i++) {
        const char *p = lake_table_live_path(lt, i);
        if (!bsearch(&p, want, nwant, sizeof(char *), cmp_str))
            removes[nremoves++] = p;
    }
    size_t nnew = 0; /* adds not yet live */
    for (size_t i = 0; rc == 0 && i < nadds; i++) {
        if (is_live(lt, adds[i].path)) {
            if (adds[i].path[0] != '/') /* a fresh copy is never live */
                lake_parquet_file_stats_free((lake_parquet_file_stats *)adds[i].stats);
            continue;
        }
        adds[nnew++] = adds[i];
    }
    nadds = rc == 0 ? nnew : nadds;
    ltap_table_status *ts = NULL;
    if (rc == 0 && !(ts = result_add_table(ru->res, dbname, nspname, relname)))
        rc = -ENOMEM;
    if (ts) {
        ts->chunks_written = npaths;
        ts->partitioned = true;
    }
    /* a schema change with no file to change is a commit of its own */
    if (rc == 0 && (nadds + nremoves > 0 || lake_table_schema_changed(lt))) {
        char lsn[LB_LSN_STRLEN];
        lb_lsn_format(r->lsn, lsn);
        /* lakebase.lsn, lakebase.relfilenode (none) and one lakebase.copy.<oid> per copied leaf */
        size_t nsum = 4 + 2 * (size_t)nleaves + 1;
        const char **summary = calloc(nsum, sizeof(char *));
        char(*ckeys)[64] = calloc((size_t)nleaves + 1, 64);
        size_t ns = 0;
        if (!summary || !ckeys)
            rc = -ENOMEM;
        if (rc == 0) {
            summary[ns++] = "lakebase.lsn", summary[ns++] = lsn;
            summary[ns++] = "lakebase.relfilenode", summary[ns++] = "0";
            for (int i = 0; i < nleaves; i++) {
                const char *loid = PQgetvalue(leaves, i, 0);
                for (size_t k = 0; k < ru->nleaves; k++) {
                    const leaf_state *l = &ru->leaves[k];
                    if (strcmp(l->oid, loid) != 0 || strcmp(l->signature, sig) == 0)
                        continue;
                    snprintf(ckeys[i], 64, "lakebase.copy.%s", loid);
                    summary[ns++] = ckeys[i];
                    summary[ns++] = l->committed;
                }
            }
            lake_commit cm = {.adds = adds,
                              .nadds = nadds,
                              .removes = removes,
                              .nremoves = nremoves,
                              .summary = summary};
            size_t noted = ru->res->nremoved;
            for (size_t i = 0; i < nremoves; i++)
                if (removes[i][0] != '/') /* the parent's own copies only */
                    note_removed(ru->res, tprefix, removes[i]);
            rc = lake_table_commit(lt, &cm, err);
            while (rc && ru->res->nremoved > noted)
                free(ru->res->removed[--ru->res->nremoved]);
        }
        free(summary);
        free(ckeys);
    }
    if (rc == 0) {
        const char *lsn_s = lake_table_summary_value(lt, "lakebase.lsn");
        if (!lsn_s || lb_lsn_parse(lsn_s, &ts->lake_lsn) != 0 || nadds + nremoves == 0)
            ts->lake_lsn = r->lsn;
        ts->files = lake_table_live_count(lt);
        const char *bytes = lake_table_summary_value(lt, "total-files-size");
        const char *rows = lake_table_summary_value(lt, "total-records");
        ts->bytes = bytes ? strtoull(bytes, NULL, 10) : 0;
        ts->rows = rows ? strtoull(rows, NULL, 10) : 0;
        json_array_append_new(ru->tables,
                              json_pack("{s:s, s:s, s:s, s:s}", "database", dbname, "schema",
                                        nspname, "table", relname, "prefix", tprefix));
    }
    if (rc && rc != -ENOMEM)
        lb_err_prefix(err, "partitioned table \"%s\".\"%s\".\"%s\"", dbname, nspname, relname);
    /* fresh copies' statistics are ours; shared ones belong to the leaves */
    for (size_t i = 0; adds && i < nadds; i++)
        if (adds[i].path[0] != '/')
            lake_parquet_file_stats_free((lake_parquet_file_stats *)adds[i].stats);
    for (size_t i = 0; i < nkeys; i++)
        free(keys[i]);
    free(keys);
    free(want);
    free(adds);
    free(removes);
    PQclear(leaves);
    lake_table_close(lt);
    lake_schema_free(schema);
    for (size_t i = 0; i < t.ncols; i++)
        ltap__column_free(&t.cols[i]);
    free(t.cols);
    free(sig);
    free(rel);
    free(tprefix);
    return rc;
}

/* ---- one database ----------------------------------------------------------------- */

static int
materialize_database(run *ru, const char *dbname, uint32_t db_oid, uint32_t db_spc)
{
    lb_err *err = ru->err;
    PGconn *c = connect_db(ru->r->conninfo, dbname, err);
    if (!c)
        return err->code;
    PGresult *res = query(c, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL, err);
    int rc = res ? 0 : err->code;
    PQclear(res);
    if (rc == 0) {
        res = query(c,
                    "SELECT c.oid, n.nspname, c.relname, c.relfilenode, c.reltablespace, "
                    "       pg_relation_size(c.oid, 'main') / current_setting('block_size')::int, "
                    "       current_setting('block_size'), c.relispartition, c.relnatts "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind = 'r' AND c.relpersistence = 'p' "
                    "  AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                    "  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' "
                    "ORDER BY n.nspname, c.relname",
                    0, NULL, err);
        rc = res ? 0 : err->code;
    }
    int n = rc == 0 ? PQntuples(res) : 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        table_info t = {0};
        t.oid = strdup(PQgetvalue(res, i, 0));
        t.schema = strdup(PQgetvalue(res, i, 1));
        t.name = strdup(PQgetvalue(res, i, 2));
        t.relfilenode = (uint32_t)strtoul(PQgetvalue(res, i, 3), NULL, 10);
        t.spc = (uint32_t)strtoul(PQgetvalue(res, i, 4), NULL, 10);
        if (t.spc == 0)
            t.spc = db_spc;
        t.db = db_oid;
        t.nblocks = strtoull(PQgetvalue(res, i, 5), NULL, 10);
        ru->block_size = (uint32_t)strtoul(PQgetvalue(res, i, 6), NULL, 10);
        t.partition = PQgetvalue(res, i, 7)[0] == 't';
        t.natts = atoi(PQgetvalue(res, i, 8));
        if (!t.oid || !t.schema || !t.name)
            rc = -ENOMEM;
        if (rc == 0)
            rc = load_columns(c, &t, err);
        if (rc == 0)
            rc = materialize_table(ru, c, dbname, &t);
        table_info_free(&t);
    }
    PQclear(res);
    res = NULL;
    /* partitioned tables, over the leaves just materialized */
    if (rc == 0) {
        res = query(c,
                    "SELECT c.oid, n.nspname, c.relname "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind = 'p' AND c.relpersistence = 'p' "
                    "  AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                    "  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' "
                    "ORDER BY n.nspname, c.relname",
                    0, NULL, err);
        rc = res ? 0 : err->code;
    }
    n = rc == 0 ? PQntuples(res) : 0;
    for (int i = 0; rc == 0 && i < n; i++)
        rc = materialize_parent(ru, c, dbname, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                                PQgetvalue(res, i, 2));
    PQclear(res);
    leaves_free(ru);
    PQfinish(c);
    return rc;
}

/* ---- the run ------------------------------------------------------------------------ */

static char *
tables_key(const ltap_request *r)
{
    char *k = NULL;
    if (asprintf(&k, "%s/%s", r->prefix, TABLES_KEY) < 0)
        return NULL;
    return k;
}

static bool
listed(const run *ru, const char *tprefix, size_t len)
{
    size_t k;
    json_t *f;
    json_array_foreach(ru->tables, k, f)
    {
        const char *p = json_string_value(json_object_get(f, "prefix"));
        if (p && strlen(p) == len && strncmp(p, tprefix, len) == 0)
            return true;
    }
    return false;
}

/* After an unfinished run: lake tables under <prefix>/lake/ that no list
 * names (created by the run that died, their relation dropped before
 * this run) are deleted too. A table is <db>/<schema>/<table>/ followed
 * by data/, metadata/ or _delta_log/; nothing else is touched. */
static int
drop_unlisted(run *ru)
{
    char *dir = NULL;
    if (asprintf(&dir, "%s/lake/", ru->r->prefix) < 0)
        return -ENOMEM;
    lb_objstore_listing l;
    memset(&l, 0, sizeof(l));
    int rc = lake_store_list(ru->r->store, dir, &l);
    if (rc)
        lb_err_set(ru->err, rc, "could not list \"%s\": %s", dir, lake_store_error(ru->r->store));
    size_t dlen = strlen(dir);
    char *last = NULL;
    for (size_t i = 0; rc == 0 && i < l.nobjects; i++) {
        const char *key = l.objects[i].key, *e = key + dlen;
        for (int slash = 0; e && slash < 3; slash++)
            if ((e = strchr(e, '/')))
                e++;
        if (!e || (strncmp(e, "data/", 5) != 0 && strncmp(e, "metadata/", 9) != 0 &&
                   strncmp(e, "_delta_log/", 11) != 0))
            continue;
        size_t len = (size_t)(e - 1 - key);
        if (listed(ru, key, len) || (last && strlen(last) == len && strncmp(last, key, len) == 0))
            continue;
        free(last);
        if (!(last = strndup(key, len))) {
            rc = -ENOMEM;
            break;
        }
        lb_info("ltap: dropping an unlisted lake table of an unfinished run prefix=%s", last);
        if ((rc = delete_table(ru, last)) == 0)
            ru->res->dropped++;
    }
    free(last);
    lb_objstore_list_free(&l);
    free(dir);
    return rc;
}

/* Delete the lake tables of the previous list that this run did not find. */
static int
drop_missing(run *ru, const char *key)
{
    lb_buf old = LB_BUF_INIT;
    int rc = lake_store_get(ru->r->store, key, &old);
    if (rc == LB_ENOTFOUND) {
        lb_buf_free(&old);
        return ru->sweep ? drop_unlisted(ru) : 0;
    }
    if (rc) {
        lb_buf_free(&old);
        return lb_err_set(ru->err, rc, "could not read \"%s\": %s", key,
                          lake_store_error(ru->r->store));
    }
    json_t *j = json_loadb(old.data ? old.data : "", old.len, 0, NULL);
    lb_buf_free(&old);
    size_t i, k;
    json_t *e, *f;
    json_array_foreach(json_object_get(j, "tables"), i, e)
    {
        const char *p = json_string_value(json_object_get(e, "prefix"));
        bool found = false;
        json_array_foreach(ru->tables, k, f)
        {
            found |= p && strcmp(p, json_string_value(json_object_get(f, "prefix"))) == 0;
        }
        if (p && !found) {
            lb_info("ltap: dropping lake table prefix=%s", p);
            if ((rc = delete_table(ru, p)))
                break;
            ru->res->dropped++;
        }
    }
    json_decref(j);
    if (rc == 0 && ru->sweep)
        rc = drop_unlisted(ru);
    return rc;
}

/* The run marker, <prefix>/lake/_ltap_run.json: {"lsn", "state"}, state
 * "running" from a run's start until it finished. */
static int
run_mark(run *ru, const char *key, const char *state)
{
    char lsn[LB_LSN_STRLEN];
    json_t *j = json_pack("{s:s, s:s}", "lsn", lb_lsn_format(ru->r->lsn, lsn), "state", state);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    int rc = text ? lake_store_put(ru->r->store, key, text, strlen(text)) : -ENOMEM;
    free(text);
    if (rc && rc != -ENOMEM)
        lb_err_set(ru->err, rc, "could not write \"%s\": %s", key, lake_store_error(ru->r->store));
    return rc;
}

/* A marker left "running" means the last run died or failed: this run
 * collects its orphans (sweep_orphans, drop_missing). */
static int
run_begin(run *ru, const char *key)
{
    lb_buf b = LB_BUF_INIT;
    int rc = lake_store_get(ru->r->store, key, &b);
    if (rc == 0) {
        json_t *j = json_loadb(b.data ? (const char *)b.data : "", b.len, 0, NULL);
        const char *state = json_string_value(json_object_get(j, "state"));
        ru->sweep = !state || strcmp(state, "done") != 0;
        json_decref(j);
    } else if (rc != LB_ENOTFOUND) {
        lb_buf_free(&b);
        return lb_err_set(ru->err, rc, "could not read \"%s\": %s", key,
                          lake_store_error(ru->r->store));
    }
    lb_buf_free(&b);
    if (ru->sweep)
        lb_info("ltap: the last run did not finish, collecting its orphans prefix=%s",
                ru->r->prefix);
    return run_mark(ru, key, "running");
}

int
ltap_materialize(const ltap_request *r, ltap_result *out, lb_err *err)
{
    lb_err local;
    if (!err)
        err = &local;
    ltap_result res = {0};
    run ru = {.r = r,
              .chunk_blocks = r->chunk_blocks ? r->chunk_blocks : LTAP_CHUNK_BLOCKS,
              .block_size = 8192,
              .res = &res,
              .tables = json_array(),
              .err = err};
    if (!r->conninfo || !r->store || !r->prefix)
        return lb_err_set(err, -EINVAL, "ltap: conninfo, store and prefix are required");
    PGconn *c = connect_db(r->conninfo, NULL, err);
    int rc = c ? 0 : err->code;
    PGresult *dbs = NULL;
    if (rc == 0) {
        dbs = query(c,
                    "SELECT datname, oid, dattablespace FROM pg_database "
                    "WHERE datallowconn AND NOT datistemplate ORDER BY datname",
                    0, NULL, err);
        rc = dbs ? 0 : err->code;
    }
    if (c)
        PQfinish(c);
    char *rkey = NULL;
    if (rc == 0 && asprintf(&rkey, "%s/%s", r->prefix, RUN_KEY) < 0) {
        rkey = NULL;
        rc = -ENOMEM;
    }
    if (rc == 0)
        rc = run_begin(&ru, rkey);
    int n = rc == 0 ? PQntuples(dbs) : 0;
    for (int i = 0; rc == 0 && i < n; i++)
        rc = materialize_database(&ru, PQgetvalue(dbs, i, 0),
                                  (uint32_t)strtoul(PQgetvalue(dbs, i, 1), NULL, 10),
                                  (uint32_t)strtoul(PQgetvalue(dbs, i, 2), NULL, 10));
    PQclear(dbs);
    char *key = tables_key(r);
    if (rc == 0 && !key)
        rc = -ENOMEM;
    if (rc == 0)
        rc = drop_missing(&ru, key);
    if (rc == 0) {
        char lsn[LB_LSN_STRLEN];
        json_t *list =
            json_pack("{s:s, s:O}", "lsn", lb_lsn_format(r->lsn, lsn), "tables", ru.tables);
        char *text = list ? json_dumps(list, JSON_INDENT(1)) : NULL;
        json_decref(list);
        rc = text ? lake_store_put(r->store, key, text, strlen(text)) : -ENOMEM;
        if (rc && rc != -ENOMEM)
            lb_err_set(err, rc, "could not write \"%s\": %s", key, lake_store_error(r->store));
        free(text);
    }
    if (rc == 0)
        rc = run_mark(&ru, rkey, "done");
    free(rkey);
    free(key);
    json_decref(ru.tables);
    if (rc == 0 && out)
        *out = res;
    else
        ltap_result_free(&res);
    return rc;
}

void
ltap_result_free(ltap_result *res)
{
    if (!res)
        return;
    free(res->tables);
    for (size_t i = 0; i < res->nremoved; i++)
        free(res->removed[i]);
    free(res->removed);
    for (size_t i = 0; i < res->nshared; i++)
        free(res->shared[i]);
    free(res->shared);
    memset(res, 0, sizeof(*res));
}
