/*
 * test_wal.c: the WAL decoder against real PostgreSQL 15 WAL and pg_waldump.
 *
 * Two throwaway clusters (1 MiB segments, so records cross segment
 * boundaries cheaply, and 16 MiB segments with wal_level=logical and
 * compressed full-page images) run a workload of DDL, DML, a checkpoint,
 * large logical messages, VACUUM, an aborted transaction, a replication
 * origin, a subtransaction and pg_switch_wal(). Their WAL is decoded whole
 * and in random small chunks, and every record (LSN, lengths, xid, prev,
 * rmgr name, block references with images and holes, commit timestamps)
 * must equal what pg_waldump prints. Failure paths run on copies of that
 * WAL (flipped byte, truncation, garbage and recycled page headers, zeroed
 * tails) and on WAL built by hand here (malformed block headers, overwrite
 * contrecords, split record headers, random corruption).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "crc32c.h"
#include "errors.h"
#include "lsn.h"
#include "testutil.h"
#include "wal.h"

/* ---- decoded records in a comparable form -------------------------------- */

typedef struct xblk {
    uint8_t id, fork, flags;
    uint32_t spc, db, rel, blk;
    bool img, apply;
    uint16_t hole_off, hole_len, image_len;
} xblk;

typedef struct xrec {
    lb_lsn lsn, prev, end;
    uint32_t tot, rec_len, xid, toplevel_xid;
    uint8_t rmid, info;
    char rmgr[24];
    char desc[64]; /* pg_waldump's desc, first characters */
    size_t blk0;   /* index of the first block in the list's pool */
    int nblk;
    bool has_origin;
    uint16_t origin;
    lb_wal_xact_kind xact;
    int64_t xact_time;
} xrec;

typedef struct xlist {
    xrec *r;
    size_t n, cap;
    xblk *b;
    size_t nb, capb;
} xlist;

static xrec *
xlist_add(xlist *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->r = realloc(l->r, l->cap * sizeof(*l->r));
        assert_non_null(l->r);
    }
    xrec *r = &l->r[l->n++];
    memset(r, 0, sizeof(*r));
    r->blk0 = l->nb;
    return r;
}

static xblk *
xlist_add_blk(xlist *l, xrec *r)
{
    if (l->nb == l->capb) {
        l->capb = l->capb ? 2 * l->capb : 1024;
        l->b = realloc(l->b, l->capb * sizeof(*l->b));
        assert_non_null(l->b);
    }
    r->nblk++;
    xblk *b = &l->b[l->nb++];
    memset(b, 0, sizeof(*b));
    return b;
}

static void
xlist_free(xlist *l)
{
    free(l->r);
    free(l->b);
    memset(l, 0, sizeof(*l));
}

static void
xlist_add_record(xlist *l, const lb_wal_record *rec)
{
    xrec *r = xlist_add(l);
    r->lsn = rec->lsn;
    r->prev = rec->prev_lsn;
    r->end = rec->end_lsn;
    r->tot = rec->tot_len;
    r->rec_len = rec->tot_len;
    r->xid = rec->xid;
    r->toplevel_xid = rec->toplevel_xid;
    r->rmid = rec->rmid;
    r->info = rec->info;
    r->has_origin = rec->has_origin;
    r->origin = rec->origin;
    const char *name = lb_wal_rmgr_name(rec->rmid);
    assert_non_null(name);
    snprintf(r->rmgr, sizeof(r->rmgr), "%s", name);
    assert_int_equal(lb_wal_xact_parse(rec, &r->xact, &r->xact_time), 0);
    for (int i = 0; i < rec->nblocks; i++) {
        const lb_wal_block_ref *in = &rec->blocks[i];
        xblk *b = xlist_add_blk(l, r);
        b->id = in->block_id;
        b->fork = in->fork;
        b->flags = in->flags;
        b->spc = in->spc_node;
        b->db = in->db_node;
        b->rel = in->rel_node;
        b->blk = in->blkno;
        b->img = in->has_image;
        b->apply = in->apply_image;
        b->hole_off = in->hole_offset;
        b->hole_len = in->hole_length;
        b->image_len = in->image_len;
        if (in->has_image) {
            r->rec_len -= in->image_len;
            assert_true(in->image >= rec->raw &&
                        in->image + in->image_len <= rec->raw + rec->tot_len);
        }
        if (in->has_data)
            assert_true(in->data >= rec->raw && in->data + in->data_len <= rec->raw + rec->tot_len);
    }
    if (rec->main_data_len)
        assert_true(rec->main_data + rec->main_data_len == rec->raw + rec->tot_len);
}

/* ---- pg_waldump output ---------------------------------------------------- */

static int
fork_number(const char *name)
{
    static const char *const names[] = {"main", "fsm", "vm", "init"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

/* Parse pg_waldump --bkp-details output into l. */
static void
parse_waldump(const char *text, xlist *l)
{
    xrec *cur = NULL;
    const char *line = text;
    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char buf[4096];
        if (len >= sizeof(buf))
            len = sizeof(buf) - 1;
        memcpy(buf, line, len);
        buf[len] = '\0';
        line = nl ? nl + 1 : line + strlen(line);
        if (strncmp(buf, "rmgr: ", 6) == 0) {
            cur = xlist_add(l);
            unsigned lh, ll, ph, pl;
            int desc_at = -1;
            int n = sscanf(
                buf, "rmgr: %23s len (rec/tot): %u/%u, tx: %u, lsn: %X/%X, prev %X/%X, desc: %n",
                cur->rmgr, &cur->rec_len, &cur->tot, &cur->xid, &lh, &ll, &ph, &pl, &desc_at);
            if (n != 8 || desc_at < 0)
                fail_msg("cannot parse pg_waldump line: %s", buf);
            cur->lsn = ((lb_lsn)lh << 32) | ll;
            cur->prev = ((lb_lsn)ph << 32) | pl;
            snprintf(cur->desc, sizeof(cur->desc), "%s", buf + desc_at);
        } else if (strncmp(buf, "\tblkref #", 9) == 0) {
            if (!cur)
                fail_msg("block reference before any record: %s", buf);
            xblk *b = xlist_add_blk(l, cur);
            unsigned id, spc, db, rel, blk;
            char fork[16];
            if (sscanf(buf, "\tblkref #%u: rel %u/%u/%u fork %15s blk %u", &id, &spc, &db, &rel,
                       fork, &blk) != 6 ||
                fork_number(fork) < 0)
                fail_msg("cannot parse pg_waldump block line: %s", buf);
            b->id = (uint8_t)id;
            b->spc = spc;
            b->db = db;
            b->rel = rel;
            b->blk = blk;
            b->fork = (uint8_t)fork_number(fork);
            const char *fpw = strstr(buf, " (FPW");
            if (fpw) {
                b->img = true;
                b->apply = strncmp(fpw, " (FPW)", 6) == 0;
                const char *hole = strstr(fpw, "hole: offset: ");
                unsigned off, hl;
                if (!hole || sscanf(hole, "hole: offset: %u, length: %u", &off, &hl) != 2)
                    fail_msg("cannot parse image of block line: %s", buf);
                b->hole_off = (uint16_t)off;
                b->hole_len = (uint16_t)hl;
            }
        } else if (buf[0] != '\0') {
            fail_msg("unexpected pg_waldump line: %s", buf);
        }
    }
}

/* "2026-11-24 09:48:51.603809 UTC", as pg_waldump prints with TZ=UTC. */
static void
format_pg_time(int64_t t, char *out, size_t len)
{
    time_t secs = (time_t)((t + LB_PG_EPOCH_UNIX_USEC) / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[32];
    strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, len, "%s.%06d UTC", ts, (int)(t % 1000000));
}

/* Every field pg_waldump prints must match, record by record. */
static void
assert_same_as_waldump(const xlist *exp, const xlist *got)
{
    char a[LB_LSN_STRLEN];
    size_t n = exp->n < got->n ? exp->n : got->n;
    for (size_t i = 0; i < n; i++) {
        const xrec *e = &exp->r[i], *g = &got->r[i];
        if (e->lsn != g->lsn || e->tot != g->tot || e->rec_len != g->rec_len || e->xid != g->xid ||
            e->prev != g->prev || strcmp(e->rmgr, g->rmgr) != 0 || e->nblk != g->nblk)
            fail_msg("record %zu differs: pg_waldump lsn %s tot %u rec %u xid %u rmgr %s blocks %d;"
                     " decoder lsn %s tot %u rec %u xid %u rmgr %s blocks %d",
                     i, lb_lsn_format(e->lsn, a), e->tot, e->rec_len, e->xid, e->rmgr, e->nblk,
                     lb_lsn_format(g->lsn, (char[LB_LSN_STRLEN]){0}), g->tot, g->rec_len, g->xid,
                     g->rmgr, g->nblk);
        for (int j = 0; j < e->nblk; j++) {
            const xblk *eb = &exp->b[e->blk0 + (size_t)j], *gb = &got->b[g->blk0 + (size_t)j];
            if (eb->id != gb->id || eb->spc != gb->spc || eb->db != gb->db || eb->rel != gb->rel ||
                eb->fork != gb->fork || eb->blk != gb->blk || eb->img != gb->img ||
                eb->apply != gb->apply || eb->hole_off != gb->hole_off ||
                eb->hole_len != gb->hole_len)
                fail_msg(
                    "record at %s block #%u differs: pg_waldump rel %u/%u/%u fork %u blk %u "
                    "img %d hole %u+%u; decoder #%u rel %u/%u/%u fork %u blk %u img %d hole %u+%u",
                    lb_lsn_format(e->lsn, a), eb->id, eb->spc, eb->db, eb->rel, eb->fork, eb->blk,
                    eb->img, eb->hole_off, eb->hole_len, gb->id, gb->spc, gb->db, gb->rel, gb->fork,
                    gb->blk, gb->img, gb->hole_off, gb->hole_len);
        }
        if (g->xact == LB_WAL_XACT_COMMIT || g->xact == LB_WAL_XACT_ABORT) {
            char ts[64], want[96];
            format_pg_time(g->xact_time, ts, sizeof(ts));
            snprintf(want, sizeof(want), "%s %s",
                     g->xact == LB_WAL_XACT_COMMIT ? "COMMIT" : "ABORT", ts);
            if (strncmp(e->desc, want, strlen(want)) != 0)
                fail_msg("record at %s: pg_waldump says \"%s\", decoder \"%s\"",
                         lb_lsn_format(e->lsn, a), e->desc, want);
        }
    }
    assert_int_equal(exp->n, got->n);
}

/* ---- feeding the decoder --------------------------------------------------- */

/* Feed wal[0..len) in chunks (chunk 0: random sizes from 1 to 9000, mostly
 * small), collecting records into out. Returns the code that ended the
 * decoding: LB_ETRUNCATED if the input ran out. */
static int
decode_chunks(lb_wal_decoder *dec, const uint8_t *wal, size_t len, size_t chunk, xlist *out)
{
    size_t off = 0;
    for (;;) {
        lb_wal_record rec;
        int rc = lb_wal_decoder_next(dec, &rec);
        if (rc == 0) {
            xlist_add_record(out, &rec);
            continue;
        }
        if (rc != LB_ETRUNCATED)
            return rc;
        if (off == len)
            return rc;
        size_t n = chunk;
        if (n == 0)
            n = (rand() % 8 == 0) ? 1 + (size_t)(rand() % 9000) : 1 + (size_t)(rand() % 64);
        if (n > len - off)
            n = len - off;
        assert_int_equal(lb_wal_decoder_feed(dec, wal + off, n), 0);
        off += n;
    }
}

static int
decode_buffer(const uint8_t *wal, size_t len, lb_lsn start, uint32_t seg_size, size_t chunk,
              xlist *out, lb_wal_decoder **keep)
{
    lb_wal_decoder *dec;
    assert_int_equal(lb_wal_decoder_new(start, seg_size, &dec), 0);
    int rc = decode_chunks(dec, wal, len, chunk, out);
    if (keep)
        *keep = dec;
    else
        lb_wal_decoder_free(dec);
    return rc;
}

/* ---- the PostgreSQL fixtures ----------------------------------------------- */

typedef struct pg_fixture {
    char *dir;
    tu_pg pg;
    uint32_t seg_size;
    lb_lsn start; /* start of the first segment file */
    uint8_t *wal; /* consecutive segment files from start */
    size_t wal_len;
    xlist waldump; /* what pg_waldump prints */
    xlist decoded; /* the decoder, fed one segment file at a time */
    int end_rc;    /* how that decoding ended */
    char end_msg[192];
} pg_fixture;

static pg_fixture fx_small, fx_large;

static const char *workload =
    "CREATE TABLE t (id int PRIMARY KEY, v text, n int);\n"
    "CREATE INDEX t_n ON t (n);\n"
    "INSERT INTO t SELECT g, md5(g::text), g % 100 FROM generate_series(1, 20000) g;\n"
    "UPDATE t SET v = v || 'x' WHERE id % 7 = 0;\n"
    "DELETE FROM t WHERE id % 11 = 0;\n"
    "CHECKPOINT;\n"
    "UPDATE t SET n = n + 1 WHERE id % 50 = 0;\n"
    "SELECT pg_logical_emit_message(false, 'x', repeat('y', 100000));\n"
    "SELECT pg_logical_emit_message(true, 'x', repeat('z', 100000)) FROM generate_series(1, 12);\n"
    "BEGIN; INSERT INTO t VALUES (-1, 'gone', 0); ROLLBACK;\n"
    "VACUUM t;\n"
    "SELECT pg_replication_origin_create('lb_origin');\n"
    "SELECT pg_replication_origin_session_setup('lb_origin');\n"
    "INSERT INTO t VALUES (-2, 'from an origin', 0);\n"
    "SELECT pg_replication_origin_session_reset();\n"
    "CREATE TABLE u (a int);\n"
    "BEGIN; INSERT INTO u VALUES (1); SAVEPOINT s; INSERT INTO u VALUES (2); RELEASE s; COMMIT;\n"
    "SELECT pg_switch_wal();\n"
    "INSERT INTO u SELECT g FROM generate_series(1, 1000) g;\n";

static int
read_file(const char *path, lb_buf *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        lb_buf_append(out, chunk, n);
    fclose(f);
    return 0;
}

static void fixture_teardown(pg_fixture *fx);
static int fixture_build(pg_fixture *fx, uint32_t seg_mb, const char *const *settings);

/* Build the fixture; on failure show the logs, stop the server, and clean
 * up (cmocka runs no group teardown after a failed group setup). */
static int
fixture_setup(pg_fixture *fx, uint32_t seg_mb, const char *const *settings)
{
    if (fixture_build(fx, seg_mb, settings) == 0)
        return 0;
    if (fx->dir) {
        lb_buf cmd = LB_BUF_INIT;
        lb_buf_printf(&cmd, "tail -n 20 '%s'/pgrun/*.log >&2", fx->dir);
        tu_run(cmd.data, NULL);
        lb_buf_free(&cmd);
    }
    fixture_teardown(fx);
    return -1;
}

static int
fixture_build(pg_fixture *fx, uint32_t seg_mb, const char *const *settings)
{
    memset(fx, 0, sizeof(*fx));
    fx->seg_size = seg_mb * 1024 * 1024;
    fx->dir = tu_tempdir("wal");
    if (!fx->dir)
        return -1;
    char args[64];
    snprintf(args, sizeof(args), "--wal-segsize=%u", seg_mb);
    if (tu_pg_init(&fx->pg, fx->dir, args) != 0) {
        fprintf(stderr, "initdb failed\n");
        return -1;
    }
    for (const char *const *s = settings; *s; s++)
        if (tu_pg_conf(&fx->pg, *s) != 0)
            return -1;
    if (tu_pg_start(&fx->pg) != 0) {
        fprintf(stderr, "postgres did not start\n");
        return -1;
    }
    int rc = tu_pg_sql(&fx->pg, workload, NULL);
    if (tu_pg_stop(&fx->pg, false) != 0 || rc != 0) {
        fprintf(stderr, "workload failed (psql exit %d)\n", rc);
        return -1;
    }

    /* The lowest segment file, then every consecutive one after it. */
    char waldir[4200];
    snprintf(waldir, sizeof(waldir), "%s/pg_wal", fx->pg.datadir);
    DIR *d = opendir(waldir);
    if (!d)
        return -1;
    uint64_t first = UINT64_MAX;
    uint32_t tli = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint32_t t;
        uint64_t segno;
        if (lb_wal_segment_parse(de->d_name, fx->seg_size, &t, &segno) == 0 && segno < first) {
            first = segno;
            tli = t;
        }
    }
    closedir(d);
    if (first == UINT64_MAX)
        return -1;
    fx->start = lb_wal_segment_start(first, fx->seg_size);
    lb_buf wal = LB_BUF_INIT;
    lb_wal_decoder *dec;
    if (lb_wal_decoder_new(fx->start, fx->seg_size, &dec) != 0)
        return -1;
    fx->end_rc = LB_ETRUNCATED;
    for (uint64_t segno = first;; segno++) {
        char name[LB_WAL_SEG_NAME_LEN + 1], path[4300];
        lb_wal_segment_name(name, tli, segno, fx->seg_size);
        snprintf(path, sizeof(path), "%s/%s", waldir, name);
        size_t before = wal.len;
        if (read_file(path, &wal) != 0)
            break;
        if (wal.len - before != fx->seg_size) {
            fprintf(stderr, "segment %s is not %u bytes\n", name, fx->seg_size);
            fx->end_rc = -EIO;
            wal.len = before;
            break;
        }
        /* Decode as the file comes, one whole file per feed. */
        if (fx->end_rc == LB_ETRUNCATED)
            fx->end_rc = decode_chunks(dec, (uint8_t *)wal.data + before, fx->seg_size,
                                       fx->seg_size, &fx->decoded);
    }
    snprintf(fx->end_msg, sizeof(fx->end_msg), "%s", lb_wal_decoder_errmsg(dec));
    lb_wal_decoder_free(dec);
    fx->wal = (uint8_t *)lb_buf_steal(&wal, &fx->wal_len);

    lb_buf cmd = LB_BUF_INIT, out = LB_BUF_INIT;
    char lsn[LB_LSN_STRLEN];
    lb_buf_printf(&cmd, "TZ=UTC '%s/pg_waldump' --bkp-details -p '%s' -s %s 2>'%s/waldump.err'",
                  tu_pg_bindir(), waldir, lb_lsn_format(fx->start, lsn), fx->dir);
    tu_run(cmd.data, &out); /* exits 1 at the end of WAL */
    lb_buf_free(&cmd);
    parse_waldump(out.data ? out.data : "", &fx->waldump);
    lb_buf_free(&out);
    fprintf(stderr, "fixture: %u MiB segments, %zu bytes of WAL from %s, %zu records; %s\n", seg_mb,
            fx->wal_len, lb_lsn_format(fx->start, lsn), fx->decoded.n, fx->end_msg);
    return fx->waldump.n > 0 ? 0 : -1;
}

static void
fixture_teardown(pg_fixture *fx)
{
    if (fx->dir) {
        if (fx->pg.datadir[0])
            tu_pg_stop(&fx->pg, true); /* no-op unless a setup step failed */
        tu_rmdir(fx->dir);
    }
    free(fx->wal);
    xlist_free(&fx->waldump);
    xlist_free(&fx->decoded);
    memset(fx, 0, sizeof(*fx));
}

static int
setup_small(void **state)
{
    static const char *const settings[] = {"wal_level = replica", "wal_keep_size = 1024",
                                           "fsync = off", NULL};
    *state = &fx_small;
    return fixture_setup(&fx_small, 1, settings);
}

static int
setup_large(void **state)
{
    /* logical: records of subtransactions carry their top-level xid;
     * pglz: full-page images are compressed, with a stored hole length. */
    static const char *const settings[] = {"wal_level = logical", "wal_compression = pglz",
                                           "wal_keep_size = 1024", "fsync = off", NULL};
    *state = &fx_large;
    return fixture_setup(&fx_large, 16, settings);
}

static int
teardown_fixture(void **state)
{
    fixture_teardown(*state);
    return 0;
}

/* ---- tests on real WAL ----------------------------------------------------- */

static const xrec *
find_record(const xlist *l, uint8_t rmid, uint8_t info_mask, uint8_t info, size_t from)
{
    for (size_t i = from; i < l->n; i++)
        if (l->r[i].rmid == rmid && (l->r[i].info & info_mask) == info)
            return &l->r[i];
    return NULL;
}

/* Every record, whole-file feeding, equals pg_waldump; the end is clean. */
static void
test_records_match_pg_waldump(void **state)
{
    pg_fixture *fx = *state;
    assert_int_equal(fx->end_rc, LB_WAL_END);
    assert_non_null(strstr(fx->end_msg, "end of WAL at "));
    assert_same_as_waldump(&fx->waldump, &fx->decoded);

    /* The workload produced what the test is meant to cover. */
    const xlist *l = &fx->decoded;
    size_t cross_page = 0, cross_seg = 0, images = 0, vm = 0, same_rel = 0, commits = 0, aborts = 0,
           origin = 0, toplevel = 0, big_msg = 0, compressed = 0;
    for (size_t i = 0; i < l->n; i++) {
        const xrec *r = &l->r[i];
        bool is_switch = r->rmid == LB_RM_XLOG_ID && (r->info & 0xF0) == LB_XLOG_SWITCH;
        if (r->lsn / LB_WAL_BLCKSZ != (r->lsn + r->tot - 1) / LB_WAL_BLCKSZ)
            cross_page++;
        if (!is_switch &&
            lb_wal_segno(r->lsn, fx->seg_size) != lb_wal_segno(r->end - 1, fx->seg_size))
            cross_seg++;
        if (r->rmid == LB_RM_LOGICALMSG_ID && r->tot > 100000)
            big_msg++;
        commits += r->xact == LB_WAL_XACT_COMMIT;
        aborts += r->xact == LB_WAL_XACT_ABORT;
        origin += r->has_origin;
        toplevel += r->toplevel_xid != 0;
        for (int j = 0; j < r->nblk; j++) {
            const xblk *b = &l->b[r->blk0 + (size_t)j];
            images += b->img;
            vm += b->fork == LB_FORK_VM;
            same_rel += (b->flags & LB_BKPBLOCK_SAME_REL) != 0;
            compressed += b->img && b->image_len + b->hole_len < LB_WAL_BLCKSZ;
        }
        if (i > 0)
            assert_true(r->prev == l->r[i - 1].lsn);
    }
    assert_true(cross_page > 0 && images > 0 && vm > 0 && same_rel > 0);
    if (fx == &fx_small) /* 16 MiB of workload would be needed otherwise */
        assert_true(cross_seg > 0);
    assert_true(commits > 0 && aborts > 0 && origin > 0 && big_msg >= 13);
    if (fx == &fx_large)
        assert_true(toplevel > 0 && compressed > 0);

    /* After XLOG_SWITCH the next record is at the next segment's start. */
    const xrec *sw = find_record(l, LB_RM_XLOG_ID, 0xF0, LB_XLOG_SWITCH, 0);
    assert_non_null(sw);
    assert_true(sw->end % fx->seg_size == 0);
    assert_true(sw + 1 < l->r + l->n);
    assert_true((sw + 1)->lsn == sw->end + LB_WAL_LONG_PHD_SIZE);
}

/* Random chunk sizes (1 byte and up) give the very same records. */
static void
test_streaming_in_small_chunks(void **state)
{
    pg_fixture *fx = *state;
    srand(20240607);
    xlist got = {0};
    int rc = decode_buffer(fx->wal, fx->wal_len, fx->start, fx->seg_size, 0, &got, NULL);
    assert_int_equal(rc, LB_WAL_END);
    assert_same_as_waldump(&fx->waldump, &got);
    for (size_t i = 0; i < got.n; i++)
        assert_true(got.r[i].end == fx->decoded.r[i].end);
    xlist_free(&got);
}

/* Starting at a known record start (the safekeeper restarting at a record
 * boundary) yields the same records from there, prev-link checked. */
static void
test_start_at_record(void **state)
{
    pg_fixture *fx = *state;
    const xlist *all = &fx->decoded;
    size_t k = all->n / 2;
    /* pick a record that is not right after a page header */
    while (all->r[k].lsn % LB_WAL_BLCKSZ == LB_WAL_SHORT_PHD_SIZE)
        k++;
    lb_lsn at = all->r[k].lsn;
    lb_wal_decoder *dec;
    assert_int_equal(lb_wal_decoder_new(at, fx->seg_size, &dec), 0);
    lb_wal_decoder_expect_prev(dec, all->r[k - 1].lsn);
    xlist got = {0};
    assert_int_equal(decode_chunks(dec, fx->wal + (at - fx->start), fx->wal_len - (at - fx->start),
                                   100000, &got),
                     LB_WAL_END);
    assert_int_equal(got.n, all->n - k);
    for (size_t i = 0; i < got.n; i++) {
        assert_true(got.r[i].lsn == all->r[k + i].lsn);
        assert_true(got.r[i].tot == all->r[k + i].tot);
    }
    lb_wal_decoder_free(dec);
    xlist_free(&got);

    /* A wrong expected prev-link is an error at that record. */
    assert_int_equal(lb_wal_decoder_new(at, fx->seg_size, &dec), 0);
    lb_wal_decoder_expect_prev(dec, all->r[k - 1].lsn + 8);
    xlist none = {0};
    assert_int_equal(decode_chunks(dec, fx->wal + (at - fx->start), 65536, 65536, &none),
                     LB_EPARSE);
    assert_int_equal(none.n, 0);
    assert_true(lb_wal_decoder_error_lsn(dec) == at);
    assert_non_null(strstr(lb_wal_decoder_errmsg(dec), "incorrect prev-link"));
    lb_wal_decoder_free(dec);
    xlist_free(&none);
}

/* A record that fits in one page, at least the k-th from the start. */
static size_t
pick_single_page_record(const xlist *l, size_t from)
{
    for (size_t i = from; i < l->n; i++)
        if (l->r[i].lsn / LB_WAL_BLCKSZ == (l->r[i].lsn + l->r[i].tot - 1) / LB_WAL_BLCKSZ &&
            l->r[i].tot > 40)
            return i;
    fail_msg("no single-page record");
    return 0;
}

static uint8_t *
copy_wal(const pg_fixture *fx)
{
    uint8_t *w = malloc(fx->wal_len);
    assert_non_null(w);
    memcpy(w, fx->wal, fx->wal_len);
    return w;
}

/* Flipping one byte of a record: a checksum error at that record's LSN,
 * everything before it intact, valid end at the previous record's end. */
static void
test_flipped_byte_is_crc_error(void **state)
{
    pg_fixture *fx = *state;
    size_t k = pick_single_page_record(&fx->decoded, fx->decoded.n / 3);
    const xrec *r = &fx->decoded.r[k];
    uint8_t *w = copy_wal(fx);
    w[r->lsn - fx->start + r->tot - 1] ^= 0x40;
    xlist got = {0};
    lb_wal_decoder *dec;
    int rc = decode_buffer(w, fx->wal_len, fx->start, fx->seg_size, 4096, &got, &dec);
    assert_int_equal(rc, LB_ECRC);
    assert_int_equal(got.n, k);
    assert_true(lb_wal_decoder_error_lsn(dec) == r->lsn);
    assert_true(lb_wal_decoder_valid_end(dec) == fx->decoded.r[k - 1].end);
    char want[80], l[LB_LSN_STRLEN];
    snprintf(want, sizeof(want), "incorrect checksum in record at %s", lb_lsn_format(r->lsn, l));
    assert_string_equal(lb_wal_decoder_errmsg(dec), want);
    /* sticky */
    lb_wal_record rec;
    assert_int_equal(lb_wal_decoder_next(dec, &rec), LB_ECRC);
    lb_wal_decoder_free(dec);
    xlist_free(&got);
    free(w);
}

/* Input that stops inside a record asks for more, says where to resume,
 * and then completes the record. */
static void
test_truncated_input_needs_more(void **state)
{
    pg_fixture *fx = *state;
    const xlist *all = &fx->decoded;
    /* the big logical message crosses many pages */
    const xrec *big = NULL;
    for (size_t i = 0; i < all->n && !big; i++)
        if (all->r[i].rmid == LB_RM_LOGICALMSG_ID && all->r[i].tot > 100000)
            big = &all->r[i];
    assert_non_null(big);
    size_t k = (size_t)(big - all->r);
    size_t cut = (size_t)(big->lsn - fx->start) + big->tot / 2;

    lb_wal_decoder *dec;
    assert_int_equal(lb_wal_decoder_new(fx->start, fx->seg_size, &dec), 0);
    xlist got = {0};
    assert_int_equal(decode_chunks(dec, fx->wal, cut, 1 << 20, &got), LB_ETRUNCATED);
    assert_int_equal(got.n, k);
    assert_true(lb_wal_decoder_feed_lsn(dec) == fx->start + cut);
    lb_wal_record rec;
    assert_int_equal(lb_wal_decoder_next(dec, &rec), LB_ETRUNCATED); /* still */
    /* one byte at a time up to the end of that record, then the rest */
    size_t end = (size_t)(all->r[k + 1].lsn - fx->start);
    assert_int_equal(decode_chunks(dec, fx->wal + cut, end - cut, 1, &got), LB_ETRUNCATED);
    assert_int_equal(got.n, k + 1);
    assert_true(got.r[k].lsn == big->lsn && got.r[k].tot == big->tot);
    assert_int_equal(lb_wal_decoder_feed(dec, fx->wal + end, 8), 0);
    assert_int_equal(lb_wal_decoder_feed(dec, fx->wal + end, 8), -EBUSY);
    lb_wal_decoder_free(dec);
    xlist_free(&got);
}

/* The start of a page (not a segment's first) on which a record starts,
 * from the from-th record on: a page whose header the decoder reads. */
static lb_lsn
pick_page(const pg_fixture *fx, size_t from)
{
    for (size_t i = from; i < fx->decoded.n; i++) {
        lb_lsn page = fx->decoded.r[i].lsn / LB_WAL_BLCKSZ * LB_WAL_BLCKSZ;
        if (page % fx->seg_size != 0 && page > fx->decoded.r[i - 1].lsn)
            return page;
    }
    fail_msg("no page to pick");
    return 0;
}

/* A page header with a bad magic is a clear error naming the page. */
static void
test_garbage_page_header(void **state)
{
    pg_fixture *fx = *state;
    lb_lsn page = pick_page(fx, fx->decoded.n / 2);
    char l[LB_LSN_STRLEN], want[120];

    uint8_t *w = copy_wal(fx);
    memcpy(w + (page - fx->start), "\xde\xad\xbe\xef", 4);
    xlist got = {0};
    lb_wal_decoder *dec;
    assert_int_equal(decode_buffer(w, fx->wal_len, fx->start, fx->seg_size, 0, &got, &dec),
                     LB_EPARSE);
    assert_true(lb_wal_decoder_error_lsn(dec) == page);
    snprintf(want, sizeof(want), "invalid magic number ADDE in WAL page at %s",
             lb_lsn_format(page, l));
    assert_string_equal(lb_wal_decoder_errmsg(dec), want);
    assert_true(got.n > 0 && got.r[got.n - 1].end <= page);
    lb_wal_decoder_free(dec);
    xlist_free(&got);

    /* A page address from the future is corruption too. */
    memcpy(w, fx->wal, fx->wal_len);
    lb_lsn bogus = page + 5 * LB_WAL_BLCKSZ;
    memcpy(w + (page - fx->start) + 8, &bogus, 8);
    assert_int_equal(decode_buffer(w, fx->wal_len, fx->start, fx->seg_size, 0, &got, &dec),
                     LB_EPARSE);
    assert_non_null(strstr(lb_wal_decoder_errmsg(dec), "unexpected pageaddr"));
    lb_wal_decoder_free(dec);
    xlist_free(&got);

    /* Bad info bits. */
    memcpy(w, fx->wal, fx->wal_len);
    w[page - fx->start + 2] |= 0x40;
    assert_int_equal(decode_buffer(w, fx->wal_len, fx->start, fx->seg_size, 0, &got, &dec),
                     LB_EPARSE);
    assert_non_null(strstr(lb_wal_decoder_errmsg(dec), "invalid info bits"));
    lb_wal_decoder_free(dec);
    xlist_free(&got);

    /* A long header of the wrong segment size at the second segment. */
    memcpy(w, fx->wal, fx->wal_len);
    lb_lsn seg2 = fx->start + fx->seg_size;
    uint32_t other = fx->seg_size * 2;
    memcpy(w + (seg2 - fx->start) + 32, &other, 4);
    assert_int_equal(decode_buffer(w, fx->wal_len, fx->start, fx->seg_size, 0, &got, &dec),
                     LB_EPARSE);
    assert_true(lb_wal_decoder_error_lsn(dec) == seg2);
    assert_non_null(strstr(lb_wal_decoder_errmsg(dec), "WAL segment size"));
    lb_wal_decoder_free(dec);
    xlist_free(&got);
    free(w);
}

/* Zeroed space after a record is the end of WAL, not corruption; so is a
 * page left from a recycled segment. */
static void
test_zeroed_tail_is_clean_end(void **state)
{
    pg_fixture *fx = *state;
    size_t k = pick_single_page_record(&fx->decoded, fx->decoded.n / 2);
    const xrec *r = &fx->decoded.r[k];
    uint8_t *w = copy_wal(fx);
    size_t from = (size_t)(r->lsn - fx->start);
    memset(w + from, 0, fx->wal_len - from);
    xlist got = {0};
    lb_wal_decoder *dec;
    assert_int_equal(decode_buffer(w, fx->wal_len, fx->start, fx->seg_size, 0, &got, &dec),
                     LB_WAL_END);
    assert_int_equal(got.n, k);
    assert_true(lb_wal_decoder_error_lsn(dec) == r->lsn);
    assert_true(lb_wal_decoder_valid_end(dec) == fx->decoded.r[k - 1].end);
    char want[80], l[LB_LSN_STRLEN];
    snprintf(want, sizeof(want), "end of WAL at %s: zeroed record header",
             lb_lsn_format(r->lsn, l));
    assert_string_equal(lb_wal_decoder_errmsg(dec), want);
    lb_wal_decoder_free(dec);
    xlist_free(&got);

    /* Zeroed from a page inside a multi-page record: that record is where
     * valid WAL ends. */
    memcpy(w, fx->wal, fx->wal_len);
    const xrec *big = NULL;
    for (size_t i = 0; i < fx->decoded.n && !big; i++)
        if (fx->decoded.r[i].rmid == LB_RM_LOGICALMSG_ID && fx->decoded.r[i].tot > 100000)
            big = &fx->decoded.r[i];
    assert_non_null(big);
    lb_lsn page = (big->lsn / LB_WAL_BLCKSZ + 3) * LB_WAL_BLCKSZ;
    memset(w + (page - fx->start), 0, fx->wal_len - (page - fx->start));
    assert_int_equal(decode_buffer(w, fx->wal_len, fx->start, fx->seg_size, 0, &got, &dec),
                     LB_WAL_END);
    assert_true(lb_wal_decoder_error_lsn(dec) == big->lsn);
    assert_true(lb_wal_decoder_valid_end(dec) == (big - 1)->end);
    assert_true(got.r[got.n - 1].lsn == (big - 1)->lsn);
    assert_non_null(strstr(lb_wal_decoder_errmsg(dec), "record continues into zeroed page"));
    lb_wal_decoder_free(dec);
    xlist_free(&got);

    /* A page whose address is one segment older: a recycled segment. */
    memcpy(w, fx->wal, fx->wal_len);
    page = pick_page(fx, k);
    lb_lsn old = page - fx->seg_size;
    memcpy(w + (page - fx->start) + 8, &old, 8);
    assert_int_equal(decode_buffer(w, fx->wal_len, fx->start, fx->seg_size, 0, &got, &dec),
                     LB_WAL_END);
    assert_non_null(strstr(lb_wal_decoder_errmsg(dec), "recycled segment"));
    lb_wal_decoder_free(dec);
    xlist_free(&got);
    free(w);
}

/* ---- WAL built by hand ----------------------------------------------------- */

#define SYSID UINT64_C(7300000000000000001)

typedef struct synth {
    lb_buf w;     /* bytes from start */
    lb_lsn start; /* a segment start */
    uint32_t seg_size;
    uint32_t tli;
    uint16_t next_flags; /* OR'd into the next page header */
    lb_lsn prev;
} synth;

static void
put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static void
put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void
put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static lb_lsn
synth_pos(const synth *s)
{
    return s->start + s->w.len;
}

static void
synth_init(synth *s, lb_lsn start, uint32_t seg_size)
{
    memset(s, 0, sizeof(*s));
    s->start = start;
    s->seg_size = seg_size;
    s->tli = 1;
    s->prev = start > 0x100 ? start - 0x100 : 0;
}

static void
synth_page_header(synth *s, uint32_t rem_len)
{
    lb_lsn pos = synth_pos(s);
    assert_true(pos % LB_WAL_BLCKSZ == 0);
    uint8_t h[LB_WAL_LONG_PHD_SIZE] = {0};
    uint16_t info = s->next_flags;
    s->next_flags = 0;
    bool is_long = pos % s->seg_size == 0;
    if (is_long)
        info |= LB_XLP_LONG_HEADER;
    if (rem_len)
        info |= LB_XLP_FIRST_IS_CONTRECORD;
    put16(h, LB_WAL_PAGE_MAGIC);
    put16(h + 2, info);
    put32(h + 4, s->tli);
    put64(h + 8, pos);
    put32(h + 16, rem_len);
    if (is_long) {
        put64(h + 24, SYSID);
        put32(h + 32, s->seg_size);
        put32(h + 36, LB_WAL_BLCKSZ);
    }
    lb_buf_append(&s->w, h, is_long ? LB_WAL_LONG_PHD_SIZE : LB_WAL_SHORT_PHD_SIZE);
}

/* Lay a complete record out at the next aligned position; its LSN. */
static lb_lsn
synth_put(synth *s, const uint8_t *rec, uint32_t n)
{
    static const uint8_t zeros[8];
    lb_buf_append(&s->w, zeros, LB_WAL_MAXALIGN(synth_pos(s)) - synth_pos(s));
    if (synth_pos(s) % LB_WAL_BLCKSZ == 0)
        synth_page_header(s, 0);
    lb_lsn lsn = synth_pos(s);
    uint32_t off = 0;
    while (off < n) {
        if (synth_pos(s) % LB_WAL_BLCKSZ == 0)
            synth_page_header(s, n - off);
        uint32_t room = LB_WAL_BLCKSZ - (uint32_t)(synth_pos(s) % LB_WAL_BLCKSZ);
        uint32_t c = n - off < room ? n - off : room;
        lb_buf_append(&s->w, rec + off, c);
        off += c;
    }
    s->prev = lsn;
    return lsn;
}

/* Record builder: header placeholder, fragments, then rb_finish. */
static void
rb_start(lb_buf *b)
{
    lb_buf_reset(b);
    static const uint8_t hdr[LB_WAL_RECORD_HEADER_SIZE];
    lb_buf_append(b, hdr, sizeof(hdr));
}

static void
rb_u8(lb_buf *b, uint8_t v)
{
    lb_buf_append(b, &v, 1);
}

static void
rb_u16(lb_buf *b, uint16_t v)
{
    lb_buf_append(b, &v, 2);
}

static void
rb_u32(lb_buf *b, uint32_t v)
{
    lb_buf_append(b, &v, 4);
}

static void
rb_fill(lb_buf *b, uint8_t byte, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rb_u8(b, byte);
}

/* Fill in the header (tot_len = bytes so far) and the CRC. */
static void
rb_finish(lb_buf *b, lb_lsn prev, uint32_t xid, uint8_t info, uint8_t rmid)
{
    uint8_t *p = (uint8_t *)b->data;
    put32(p, (uint32_t)b->len);
    put32(p + 4, xid);
    put64(p + 8, prev);
    p[16] = info;
    p[17] = rmid;
    uint32_t crc = LB_CRC32C_INIT;
    crc = lb_crc32c_update(crc, p + LB_WAL_RECORD_HEADER_SIZE, b->len - LB_WAL_RECORD_HEADER_SIZE);
    crc = lb_crc32c_update(crc, p, 20);
    put32(p + 20, LB_CRC32C_FINAL(crc));
}

/* A record with only main data of n bytes. */
static lb_lsn
synth_data_record(synth *s, lb_buf *b, size_t n, uint8_t fill)
{
    rb_start(b);
    if (n > 0) {
        if (n < 256) {
            rb_u8(b, LB_XLR_BLOCK_ID_DATA_SHORT);
            rb_u8(b, (uint8_t)n);
        } else {
            rb_u8(b, LB_XLR_BLOCK_ID_DATA_LONG);
            rb_u32(b, (uint32_t)n);
        }
        rb_fill(b, fill, n);
    }
    rb_finish(b, s->prev, 1000, 0x10, LB_RM_LOGICALMSG_ID);
    return synth_put(s, (uint8_t *)b->data, (uint32_t)b->len);
}

/* Decode s->w from s->start in one go. */
static int
synth_decode(const synth *s, xlist *got, lb_wal_decoder **keep)
{
    return decode_buffer((const uint8_t *)s->w.data, s->w.len, s->start, s->seg_size, s->w.len + 1,
                         got, keep);
}

/* Block references of every kind, SAME_REL reuse, origin, top-level xid,
 * a compressed image with a stored hole, and the payload pointers. */
static void
test_block_references_decoded(void **state)
{
    (void)state;
    synth s;
    synth_init(&s, 0x3000000, LB_WAL_SEG_SIZE_DEFAULT);
    lb_buf b = LB_BUF_INIT;
    rb_start(&b);
    rb_u8(&b, LB_XLR_BLOCK_ID_ORIGIN);
    rb_u16(&b, 7);
    rb_u8(&b, LB_XLR_BLOCK_ID_TOPLEVEL_XID);
    rb_u32(&b, 4242);
    /* block 0: full image with a hole, main fork, new rel */
    rb_u8(&b, 0);
    rb_u8(&b, LB_FORK_MAIN | LB_BKPBLOCK_HAS_IMAGE | LB_BKPBLOCK_HAS_DATA);
    rb_u16(&b, 5);                   /* data_len */
    rb_u16(&b, LB_WAL_BLCKSZ - 100); /* image_len */
    rb_u16(&b, 40);                  /* hole_offset */
    rb_u8(&b, LB_BKPIMAGE_HAS_HOLE | LB_BKPIMAGE_APPLY);
    rb_u32(&b, 1663);
    rb_u32(&b, 5);
    rb_u32(&b, 16384);
    rb_u32(&b, 12);
    /* block 2: vm fork, same rel, will init, data only */
    rb_u8(&b, 2);
    rb_u8(&b, LB_FORK_VM | LB_BKPBLOCK_SAME_REL | LB_BKPBLOCK_WILL_INIT | LB_BKPBLOCK_HAS_DATA);
    rb_u16(&b, 3);
    rb_u32(&b, 0);
    /* block 5: compressed image with hole, fsm fork, other rel, not applied */
    rb_u8(&b, 5);
    rb_u8(&b, LB_FORK_FSM | LB_BKPBLOCK_HAS_IMAGE);
    rb_u16(&b, 0);
    rb_u16(&b, 300); /* compressed length */
    rb_u16(&b, 64);  /* hole offset */
    rb_u8(&b, LB_BKPIMAGE_HAS_HOLE | LB_BKPIMAGE_COMPRESS_LZ4);
    rb_u16(&b, 4000); /* hole length */
    rb_u32(&b, 1664);
    rb_u32(&b, 0);
    rb_u32(&b, 1262);
    rb_u32(&b, 3);
    rb_u8(&b, LB_XLR_BLOCK_ID_DATA_SHORT);
    rb_u8(&b, 9);
    rb_fill(&b, 0xAA, LB_WAL_BLCKSZ - 100); /* block 0 image */
    rb_fill(&b, 0xB0, 5);                   /* block 0 data */
    rb_fill(&b, 0xB2, 3);                   /* block 2 data */
    rb_fill(&b, 0xC5, 300);                 /* block 5 image */
    rb_fill(&b, 0xDD, 9);                   /* main data */
    rb_finish(&b, s.prev, 77, 0x00, 10);
    lb_lsn lsn = synth_put(&s, (uint8_t *)b.data, (uint32_t)b.len);
    synth_data_record(&s, &b, 0, 0); /* a record with nothing but a header */

    lb_wal_decoder *dec;
    assert_int_equal(lb_wal_decoder_new(s.start, s.seg_size, &dec), 0);
    assert_int_equal(lb_wal_decoder_feed(dec, s.w.data, s.w.len), 0);
    lb_wal_record r;
    assert_int_equal(lb_wal_decoder_next(dec, &r), 0);
    assert_true(r.lsn == lsn && r.lsn == s.start + LB_WAL_LONG_PHD_SIZE);
    assert_int_equal(r.xid, 77);
    assert_int_equal(r.rmid, 10);
    assert_string_equal(lb_wal_rmgr_name(r.rmid), "Heap");
    assert_true(r.has_origin && r.origin == 7);
    assert_int_equal(r.toplevel_xid, 4242);
    assert_int_equal(r.nblocks, 3);
    const lb_wal_block_ref *b0 = &r.blocks[0], *b2 = &r.blocks[1], *b5 = &r.blocks[2];
    assert_int_equal(b0->block_id, 0);
    assert_true(b0->has_image && b0->apply_image && b0->has_data && !b0->will_init);
    assert_int_equal(b0->image_len, LB_WAL_BLCKSZ - 100);
    assert_int_equal(b0->hole_offset, 40);
    assert_int_equal(b0->hole_length, 100);
    assert_int_equal(b0->image[0], 0xAA);
    assert_int_equal(b0->data_len, 5);
    assert_int_equal(b0->data[0], 0xB0);
    assert_int_equal(b0->data[4], 0xB0);
    assert_true(b0->spc_node == 1663 && b0->db_node == 5 && b0->rel_node == 16384 &&
                b0->blkno == 12);
    assert_int_equal(b2->block_id, 2);
    assert_int_equal(b2->fork, LB_FORK_VM);
    assert_true(b2->will_init && !b2->has_image && (b2->flags & LB_BKPBLOCK_SAME_REL));
    assert_true(b2->spc_node == 1663 && b2->db_node == 5 && b2->rel_node == 16384 &&
                b2->blkno == 0);
    assert_int_equal(b2->data[0], 0xB2);
    assert_int_equal(b5->block_id, 5);
    assert_int_equal(b5->fork, LB_FORK_FSM);
    assert_true(b5->has_image && !b5->apply_image && !b5->has_data && b5->data == NULL);
    assert_true(LB_BKPIMAGE_COMPRESSED(b5->bimg_info));
    assert_int_equal(b5->image_len, 300);
    assert_int_equal(b5->hole_length, 4000);
    assert_int_equal(b5->image[0], 0xC5);
    assert_int_equal(b5->image[299], 0xC5);
    assert_true(b5->rel_node == 1262 && b5->blkno == 3);
    assert_int_equal(r.main_data_len, 9);
    assert_int_equal(r.main_data[0], 0xDD);
    assert_true(r.main_data + 9 == r.raw + r.tot_len);
    lb_lsn first_end = r.end_lsn;
    assert_true(first_end == LB_WAL_MAXALIGN(lsn + r.tot_len + LB_WAL_SHORT_PHD_SIZE));

    assert_int_equal(lb_wal_decoder_next(dec, &r), 0);
    assert_true(r.lsn == first_end && r.tot_len == LB_WAL_RECORD_HEADER_SIZE);
    assert_int_equal(r.nblocks, 0);
    assert_int_equal(r.main_data_len, 0);
    assert_null(r.main_data);
    assert_true(lb_wal_decoder_sysid(dec) == SYSID);
    assert_int_equal(lb_wal_decoder_tli(dec), 1);
    assert_int_equal(lb_wal_decoder_next(dec, &r), LB_ETRUNCATED);
    lb_wal_decoder_free(dec);
    lb_buf_free(&b);
    lb_buf_free(&s.w);
}

/* One malformed block header, with a valid CRC, is one clear error. */
typedef struct bad_case {
    const char *what;
    const char *msg;
    void (*build)(lb_buf *b);
} bad_case;

static void
bad_out_of_order(lb_buf *b)
{
    for (int id = 3; id >= 2; id--) {
        rb_u8(b, (uint8_t)id);
        rb_u8(b, 0);
        rb_u16(b, 0);
        rb_u32(b, 1);
        rb_u32(b, 2);
        rb_u32(b, 3);
        rb_u32(b, 4);
    }
}

static void
bad_same_rel_first(lb_buf *b)
{
    rb_u8(b, 0);
    rb_u8(b, LB_BKPBLOCK_SAME_REL);
    rb_u16(b, 0);
    rb_u32(b, 4);
}

static void
bad_block_id(lb_buf *b)
{
    rb_u8(b, 40);
    rb_fill(b, 0, 20);
}

static void
bad_data_flag(lb_buf *b)
{
    rb_u8(b, 0);
    rb_u8(b, LB_BKPBLOCK_HAS_DATA);
    rb_u16(b, 0);
    rb_fill(b, 0, 16);
}

static void
bad_data_len_without_flag(lb_buf *b)
{
    rb_u8(b, 0);
    rb_u8(b, 0);
    rb_u16(b, 4);
    rb_fill(b, 0, 20);
}

static void
bad_data_too_long(lb_buf *b)
{
    rb_u8(b, 0);
    rb_u8(b, LB_BKPBLOCK_HAS_DATA);
    rb_u16(b, 60000);
    rb_fill(b, 0, 16);
    rb_fill(b, 0, 100);
}

static void
bad_main_too_long(lb_buf *b)
{
    rb_u8(b, LB_XLR_BLOCK_ID_DATA_LONG);
    rb_u32(b, 0xFFFFFFF0u);
    rb_fill(b, 1, 50);
}

static void
bad_truncated_header(lb_buf *b)
{
    rb_u8(b, 0);
    rb_u8(b, 0);
    rb_u16(b, 0);
    rb_u32(b, 1663); /* RelFileNode cut short */
}

static void
bad_image_no_hole_short(lb_buf *b)
{
    rb_u8(b, 0);
    rb_u8(b, LB_BKPBLOCK_HAS_IMAGE);
    rb_u16(b, 0);
    rb_u16(b, 100);
    rb_u16(b, 0);
    rb_u8(b, 0);
    rb_fill(b, 0, 16);
    rb_fill(b, 0, 100);
}

static void
bad_image_hole_outside(lb_buf *b)
{
    rb_u8(b, 0);
    rb_u8(b, LB_BKPBLOCK_HAS_IMAGE);
    rb_u16(b, 0);
    rb_u16(b, 8000);
    rb_u16(b, 8100); /* hole of 192 bytes at 8100 runs past the page */
    rb_u8(b, LB_BKPIMAGE_HAS_HOLE);
    rb_fill(b, 0, 16);
    rb_fill(b, 0, 8000);
}

static void
bad_image_too_long(lb_buf *b)
{
    rb_u8(b, 0);
    rb_u8(b, LB_BKPBLOCK_HAS_IMAGE);
    rb_u16(b, 0);
    rb_u16(b, 9000);
    rb_u16(b, 0);
    rb_u8(b, 0);
    rb_fill(b, 0, 16);
    rb_fill(b, 0, 9000);
}

static void
bad_fork(lb_buf *b)
{
    rb_u8(b, 0);
    rb_u8(b, 9);
    rb_u16(b, 0);
    rb_fill(b, 0, 16);
}

static void
bad_trailing_bytes(lb_buf *b)
{
    rb_u8(b, LB_XLR_BLOCK_ID_DATA_SHORT);
    rb_u8(b, 2);
    rb_fill(b, 0, 5); /* 3 more than declared */
}

static void
test_malformed_block_headers(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"out of order", "out-of-order block_id 2", bad_out_of_order},
        {"same rel first", "BKPBLOCK_SAME_REL set but no previous rel", bad_same_rel_first},
        {"block id", "invalid block_id 40", bad_block_id},
        {"data flag", "BKPBLOCK_HAS_DATA set, but no data", bad_data_flag},
        {"data len", "BKPBLOCK_HAS_DATA not set, but data length is 4", bad_data_len_without_flag},
        {"data too long", "record with invalid length", bad_data_too_long},
        {"main too long", "record with invalid length", bad_main_too_long},
        {"truncated", "record with invalid length", bad_truncated_header},
        {"image short", "BKPIMAGE_HAS_HOLE not set, but hole offset 0 length 8092",
         bad_image_no_hole_short},
        {"hole outside", "BKPIMAGE_HAS_HOLE set, but hole offset 8100", bad_image_hole_outside},
        {"image long", "block image length 9000 too large", bad_image_too_long},
        {"fork", "invalid fork number 9", bad_fork},
        {"trailing", "record with invalid length", bad_trailing_bytes},
    };
    lb_buf b = LB_BUF_INIT;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        synth s;
        synth_init(&s, 0x1000000, LB_WAL_SEG_SIZE_DEFAULT);
        synth_data_record(&s, &b, 10, 1);
        rb_start(&b);
        cases[i].build(&b);
        rb_finish(&b, s.prev, 5, 0, 10);
        lb_lsn bad = synth_put(&s, (uint8_t *)b.data, (uint32_t)b.len);
        xlist got = {0};
        lb_wal_decoder *dec;
        int rc = synth_decode(&s, &got, &dec);
        if (rc != LB_EPARSE || got.n != 1 || lb_wal_decoder_error_lsn(dec) != bad ||
            !strstr(lb_wal_decoder_errmsg(dec), cases[i].msg))
            fail_msg("case %s: rc %d records %zu msg \"%s\"", cases[i].what, rc, got.n,
                     lb_wal_decoder_errmsg(dec));
        lb_wal_decoder_free(dec);
        xlist_free(&got);
        lb_buf_free(&s.w);
    }
    lb_buf_free(&b);
}

/* Record header checks: length, rmgr id, prev-link, size limit. */
static void
test_malformed_record_headers(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    for (int c = 0; c < 5; c++) {
        synth s;
        synth_init(&s, 0x1000000, LB_WAL_SEG_SIZE_DEFAULT);
        lb_lsn first = synth_data_record(&s, &b, 10, 1);
        lb_lsn second = synth_data_record(&s, &b, 10, 2);
        assert_true(first == 0x1000028 && second == 0x1000050);
        uint8_t *p = (uint8_t *)b.data;
        const char *msg = NULL;
        int want = LB_EPARSE;
        switch (c) {
        case 0:
            put32(p, 12);
            msg = "invalid record length at 0/1000050: wanted 24, got 12";
            break;
        case 1:
            p[17] = 60;
            msg = "invalid resource manager ID 60 at 0/1000050";
            break;
        case 2:
            put64(p + 8, first + 8);
            msg = "record with incorrect prev-link 0/1000030 at 0/1000050";
            break;
        case 3:
            put32(p, 0x40000000);
            msg = "record length 1073741824 at 0/1000050 too long";
            want = LB_ETOOBIG;
            break;
        case 4:
            put32(p, 0); /* tot_len 0 but not a zeroed header */
            msg = "invalid record length at 0/1000050: wanted 24, got 0";
            break;
        }
        /* rewrite the last record in place */
        memcpy(s.w.data + (s.prev - s.start), p, LB_WAL_RECORD_HEADER_SIZE);
        xlist got = {0};
        lb_wal_decoder *dec;
        assert_int_equal(synth_decode(&s, &got, &dec), want);
        assert_int_equal(got.n, 1);
        assert_string_equal(lb_wal_decoder_errmsg(dec), msg);
        lb_wal_decoder_free(dec);
        xlist_free(&got);
        lb_buf_free(&s.w);
    }
    lb_buf_free(&b);
}

/* Record headers split across pages (records starting 16 and 8 bytes
 * before a page end), a record crossing a segment boundary, and
 * XLOG_SWITCH padding: fed whole and byte by byte. */
static void
test_page_and_segment_crossings(void **state)
{
    (void)state;
    const uint32_t seg = LB_WAL_SEG_SIZE_MIN;
    synth s;
    synth_init(&s, 5 * (lb_lsn)seg, seg);
    lb_buf b = LB_BUF_INIT;
    lb_lsn want[16];
    int n = 0;
    /* fill the first page so that the next record starts 16 bytes before its end */
    uint32_t used = LB_WAL_LONG_PHD_SIZE;
    uint32_t first_len = LB_WAL_BLCKSZ - used - 16;
    want[n++] = synth_data_record(&s, &b, first_len - 29, 3); /* 24 + 5 + data */
    assert_true(synth_pos(&s) == s.start + LB_WAL_BLCKSZ - 16);
    want[n++] = synth_data_record(&s, &b, LB_WAL_BLCKSZ - 8 - LB_WAL_SHORT_PHD_SIZE + 16 - 29, 4);
    /* ends 8 bytes before the second page end */
    assert_true(synth_pos(&s) % LB_WAL_BLCKSZ == LB_WAL_BLCKSZ - 8);
    want[n++] = synth_data_record(&s, &b, 100, 5);
    /* run up to just before the segment end, then cross it */
    while (s.start + seg - synth_pos(&s) > 3 * LB_WAL_BLCKSZ)
        synth_data_record(&s, &b, 2 * LB_WAL_BLCKSZ, 6);
    want[n++] = synth_data_record(&s, &b, 5 * LB_WAL_BLCKSZ, 7);
    assert_true(synth_pos(&s) > s.start + seg);
    /* XLOG_SWITCH, its padding, and a record in the next segment */
    rb_start(&b);
    rb_finish(&b, s.prev, 0, LB_XLOG_SWITCH, LB_RM_XLOG_ID);
    want[n++] = synth_put(&s, (uint8_t *)b.data, (uint32_t)b.len);
    lb_lsn seg_end = (synth_pos(&s) / seg + 1) * seg;
    size_t pad = seg_end - synth_pos(&s);
    uint8_t *junk = malloc(pad);
    assert_non_null(junk);
    memset(junk, 0x7F, pad); /* padding is never read */
    lb_buf_append(&s.w, junk, pad);
    free(junk);
    want[n++] = synth_data_record(&s, &b, 30, 8);
    assert_true(want[n - 1] == seg_end + LB_WAL_LONG_PHD_SIZE);

    for (int pass = 0; pass < 2; pass++) {
        xlist got = {0};
        int rc = decode_buffer((uint8_t *)s.w.data, s.w.len, s.start, seg, pass == 0 ? s.w.len : 1,
                               &got, NULL);
        assert_int_equal(rc, LB_ETRUNCATED);
        /* the records of the filler loop are in between; check the ends */
        assert_true(got.n >= (size_t)n);
        assert_true(got.r[0].lsn == want[0] && got.r[1].lsn == want[1] && got.r[2].lsn == want[2]);
        assert_true(got.r[got.n - 1].lsn == want[n - 1]);
        const xrec *sw = &got.r[got.n - 2];
        assert_true(sw->lsn == want[n - 2] && sw->end == seg_end);
        const xrec *cross = &got.r[got.n - 3];
        assert_true(cross->lsn == want[n - 3] && cross->end > s.start + seg);
        for (size_t i = 1; i < got.n; i++)
            assert_true(got.r[i].prev == got.r[i - 1].lsn);
        xlist_free(&got);
    }
    lb_buf_free(&b);
    lb_buf_free(&s.w);
}

/* A continuation overwritten by a new primary
 * (XLP_FIRST_IS_OVERWRITE_CONTRECORD): the partial record is dropped and
 * decoding goes on with the record on the overwriting page. */
static void
test_overwrite_contrecord(void **state)
{
    (void)state;
    synth s;
    synth_init(&s, 0x2000000, LB_WAL_SEG_SIZE_DEFAULT);
    lb_buf b = LB_BUF_INIT;
    lb_lsn a = synth_data_record(&s, &b, 100, 1);
    lb_lsn broken = synth_data_record(&s, &b, 3 * LB_WAL_BLCKSZ, 2);
    /* cut at the first page end, as if the primary died there */
    s.w.len = LB_WAL_BLCKSZ;
    s.prev = a;
    s.next_flags = LB_XLP_FIRST_IS_OVERWRITE_CONTRECORD;
    rb_start(&b);
    rb_u8(&b, LB_XLR_BLOCK_ID_DATA_SHORT);
    rb_u8(&b, 16);
    rb_fill(&b, 0, 8);
    rb_fill(&b, 0, 8);
    rb_finish(&b, s.prev, 0, LB_XLOG_OVERWRITE_CONTRECORD, LB_RM_XLOG_ID);
    lb_lsn ow = synth_put(&s, (uint8_t *)b.data, (uint32_t)b.len);
    lb_lsn after = synth_data_record(&s, &b, 50, 3);
    assert_true(ow == s.start + LB_WAL_BLCKSZ + LB_WAL_SHORT_PHD_SIZE);

    xlist got = {0};
    assert_int_equal(synth_decode(&s, &got, NULL), LB_ETRUNCATED);
    assert_int_equal(got.n, 3);
    assert_true(got.r[0].lsn == a && got.r[1].lsn == ow && got.r[2].lsn == after);
    assert_true(got.r[1].prev == a && broken > a);
    xlist_free(&got);

    /* Without the overwrite flag, a page that does not continue the record
     * is an error. */
    uint8_t *page1 = (uint8_t *)s.w.data + LB_WAL_BLCKSZ;
    put16(page1 + 2, 0);
    lb_wal_decoder *dec;
    assert_int_equal(synth_decode(&s, &got, &dec), LB_EPARSE);
    assert_non_null(strstr(lb_wal_decoder_errmsg(dec), "there is no contrecord flag"));
    lb_wal_decoder_free(dec);
    xlist_free(&got);

    /* A continuation with the wrong remaining length is an error. */
    put16(page1 + 2, LB_XLP_FIRST_IS_CONTRECORD);
    put32(page1 + 16, 12345);
    assert_int_equal(synth_decode(&s, &got, &dec), LB_EPARSE);
    assert_non_null(strstr(lb_wal_decoder_errmsg(dec), "invalid contrecord length 12345"));
    lb_wal_decoder_free(dec);
    xlist_free(&got);
    lb_buf_free(&b);
    lb_buf_free(&s.w);
}

/* Starting at a page that begins with the tail of an earlier record skips
 * that tail (several pages of it), as pg_waldump does. */
static void
test_start_mid_record_skips_continuation(void **state)
{
    (void)state;
    synth s;
    synth_init(&s, 0x4000000, LB_WAL_SEG_SIZE_DEFAULT);
    lb_buf b = LB_BUF_INIT;
    synth_data_record(&s, &b, 100, 1);
    lb_lsn big = synth_data_record(&s, &b, 4 * LB_WAL_BLCKSZ, 2);
    lb_lsn next = synth_data_record(&s, &b, 10, 3);
    assert_true(next > big + 4 * LB_WAL_BLCKSZ);
    lb_lsn from = s.start + 2 * LB_WAL_BLCKSZ; /* inside the big record */
    for (size_t chunk = 1; chunk <= 100001; chunk += 100000) {
        xlist got = {0};
        int rc = decode_buffer((uint8_t *)s.w.data + (from - s.start), s.w.len - (from - s.start),
                               from, s.seg_size, chunk, &got, NULL);
        assert_int_equal(rc, LB_ETRUNCATED);
        assert_int_equal(got.n, 1);
        assert_true(got.r[0].lsn == next);
        assert_true(got.r[0].prev == big); /* unknown prev: only required below */
        xlist_free(&got);
    }

    /* A tail that ends exactly at a page end: the next record is after the
     * following page's header. */
    uint32_t room = LB_WAL_BLCKSZ - (uint32_t)(LB_WAL_MAXALIGN(synth_pos(&s)) % LB_WAL_BLCKSZ);
    lb_lsn exact = synth_data_record(&s, &b, room + LB_WAL_BLCKSZ - LB_WAL_SHORT_PHD_SIZE - 29, 4);
    assert_true(synth_pos(&s) % LB_WAL_BLCKSZ == 0);
    lb_lsn after = synth_data_record(&s, &b, 10, 5);
    assert_true(after == synth_pos(&s) - 36 && after % LB_WAL_BLCKSZ == LB_WAL_SHORT_PHD_SIZE);
    from = exact / LB_WAL_BLCKSZ * LB_WAL_BLCKSZ + LB_WAL_BLCKSZ;
    xlist got = {0};
    int rc = decode_buffer((uint8_t *)s.w.data + (from - s.start), s.w.len - (from - s.start), from,
                           s.seg_size, 5, &got, NULL);
    assert_int_equal(rc, LB_ETRUNCATED);
    assert_int_equal(got.n, 1);
    assert_true(got.r[0].lsn == after && got.r[0].prev == exact);
    xlist_free(&got);
    lb_buf_free(&b);
    lb_buf_free(&s.w);
}

/* Page header context checks: missing long header, long header elsewhere,
 * another system id, timeline going backwards, a zeroed page. */
static void
test_page_header_context(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    for (int c = 0; c < 6; c++) {
        synth s;
        synth_init(&s, 0x1000000, LB_WAL_SEG_SIZE_DEFAULT);
        synth_data_record(&s, &b, LB_WAL_BLCKSZ, 1); /* crosses into page 1 */
        synth_data_record(&s, &b, 10, 2);
        uint8_t *p0 = (uint8_t *)s.w.data, *p1 = p0 + LB_WAL_BLCKSZ;
        lb_wal_decoder *dec;
        assert_int_equal(lb_wal_decoder_new(s.start, s.seg_size, &dec), 0);
        int want = LB_EPARSE;
        lb_lsn at = s.start;
        const char *msg = NULL;
        switch (c) {
        case 0:
            put16(p0 + 2, 0);
            msg = "missing long header in WAL segment at 0/1000000";
            break;
        case 1:
            put16(p1 + 2, LB_XLP_FIRST_IS_CONTRECORD | LB_XLP_LONG_HEADER);
            at += LB_WAL_BLCKSZ;
            msg = "unexpected long header in WAL page at 0/1002000";
            break;
        case 2:
            lb_wal_decoder_expect_sysid(dec, 42);
            msg = "WAL page at 0/1000000 is from a different database system";
            break;
        case 3:
            put32(p0 + 4, 3); /* page 0 on timeline 3, page 1 on 1 */
            at += LB_WAL_BLCKSZ;
            msg = "out-of-sequence timeline ID 1 (after 3) in WAL page at 0/1002000";
            break;
        case 4:
            memset(p1, 0, LB_WAL_SHORT_PHD_SIZE);
            want = LB_WAL_END;
            at = s.start + LB_WAL_LONG_PHD_SIZE;
            msg = "end of WAL at 0/1000028: record continues into zeroed page 0/1002000";
            break;
        case 5:
            put32(p0 + 36, 4096);
            msg = "WAL block size 4096 in page header at 0/1000000 is not 8192";
            break;
        }
        xlist got = {0};
        assert_int_equal(decode_chunks(dec, p0, s.w.len, 7, &got), want);
        assert_true(lb_wal_decoder_error_lsn(dec) == at);
        if (strncmp(lb_wal_decoder_errmsg(dec), msg, strlen(msg)) != 0)
            fail_msg("case %d: \"%s\"", c, lb_wal_decoder_errmsg(dec));
        assert_int_equal(got.n, 0);
        lb_wal_decoder_free(dec);
        xlist_free(&got);
        lb_buf_free(&s.w);
    }
    lb_buf_free(&b);
}

/* Random corruption of hand-built WAL never crashes or reads out of bounds
 * (run under the sanitizers): each run ends in a record prefix and an
 * error, or in a request for more input. */
static void
test_random_corruption_is_safe(void **state)
{
    (void)state;
    synth s;
    synth_init(&s, 0x1000000, LB_WAL_SEG_SIZE_MIN);
    lb_buf b = LB_BUF_INIT;
    for (int i = 0; i < 12; i++) {
        rb_start(&b);
        rb_u8(&b, 0);
        rb_u8(&b, LB_BKPBLOCK_HAS_DATA | (i % 2 ? LB_BKPBLOCK_HAS_IMAGE : 0));
        rb_u16(&b, 10);
        if (i % 2) {
            rb_u16(&b, 100);
            rb_u16(&b, 0);
            rb_u8(&b, LB_BKPIMAGE_COMPRESS_PGLZ);
        }
        rb_u32(&b, 1663);
        rb_u32(&b, 5);
        rb_u32(&b, 16384 + (uint32_t)i);
        rb_u32(&b, (uint32_t)i);
        rb_u8(&b, 1);
        rb_u8(&b, LB_BKPBLOCK_SAME_REL);
        rb_u16(&b, 0);
        rb_u32(&b, 99);
        rb_u8(&b, LB_XLR_BLOCK_ID_DATA_LONG);
        rb_u32(&b, 300 * (uint32_t)i);
        if (i % 2)
            rb_fill(&b, 0x11, 100);
        rb_fill(&b, 0x22, 10);
        rb_fill(&b, 0x33, 300 * (size_t)i);
        rb_finish(&b, s.prev, (uint32_t)i, 0, 10);
        synth_put(&s, (uint8_t *)b.data, (uint32_t)b.len);
    }
    xlist clean = {0};
    assert_int_equal(synth_decode(&s, &clean, NULL), LB_ETRUNCATED);
    assert_int_equal(clean.n, 12);
    srand(99);
    uint8_t *w = malloc(s.w.len);
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(w, s.w.data, s.w.len);
        int flips = 1 + rand() % 4;
        for (int f = 0; f < flips; f++)
            w[rand() % s.w.len] ^= (uint8_t)(1 + rand() % 255);
        xlist got = {0};
        int rc = decode_buffer(w, s.w.len, s.start, s.seg_size, iter % 3 ? 0 : s.w.len, &got, NULL);
        assert_true(rc == LB_ETRUNCATED || rc == LB_ECRC || rc == LB_EPARSE || rc == LB_WAL_END ||
                    rc == LB_ETOOBIG);
        assert_true(got.n <= clean.n);
        for (size_t i = 0; i < got.n; i++)
            assert_true(got.r[i].lsn == clean.r[i].lsn);
        xlist_free(&got);
    }
    free(w);
    xlist_free(&clean);
    lb_buf_free(&b);
    lb_buf_free(&s.w);
}

/* ---- small helpers ----------------------------------------------------------- */

static void
test_segment_names(void **state)
{
    (void)state;
    char name[LB_WAL_SEG_NAME_LEN + 1];
    uint32_t tli;
    uint64_t segno;
    assert_int_equal(lb_wal_segment_name(name, 1, 1, LB_WAL_SEG_SIZE_DEFAULT), 0);
    assert_string_equal(name, "000000010000000000000001");
    assert_int_equal(lb_wal_segment_name(name, 0x1A, 0x1FF, LB_WAL_SEG_SIZE_DEFAULT), 0);
    assert_string_equal(name, "0000001A00000001000000FF");
    assert_int_equal(lb_wal_segment_name(name, 2, 0x1FF, LB_WAL_SEG_SIZE_MIN), 0);
    assert_string_equal(name, "0000000200000000000001FF");
    assert_int_equal(lb_wal_segment_name(name, 1, 5, LB_WAL_SEG_SIZE_MAX), 0);
    assert_string_equal(name, "000000010000000100000001");
    for (uint32_t sz = LB_WAL_SEG_SIZE_MIN; sz && sz <= LB_WAL_SEG_SIZE_MAX; sz *= 2) {
        uint64_t probes[] = {
            0, 1, 255, 256, 4095, 123456, UINT64_C(0xFFFFFFFF) * (0x100000000 / sz)};
        for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
            assert_int_equal(lb_wal_segment_name(name, 7, probes[i], sz), 0);
            assert_int_equal(lb_wal_segment_parse(name, sz, &tli, &segno), 0);
            assert_int_equal(tli, 7);
            assert_true(segno == probes[i]);
        }
    }
    assert_int_equal(
        lb_wal_segment_parse("0000000100000000000000FF", LB_WAL_SEG_SIZE_DEFAULT, &tli, &segno), 0);
    assert_true(segno == 255 && lb_wal_segment_start(segno, LB_WAL_SEG_SIZE_DEFAULT) == 0xFF000000);
    assert_true(lb_wal_segno(0x16B3F10, LB_WAL_SEG_SIZE_DEFAULT) == 1);
    const char *bad[] = {"",
                         "00000001000000000000001",
                         "0000000100000000000000011",
                         "00000001000000000000000g",
                         "0000000100000000000000ff", /* lower case */
                         "000000000000000000000001", /* timeline 0 */
                         "000000010000000000000100", /* 16 MiB: only 256 segments per id */
                         "00000001000000000000000 ",
                         "000000010000000000000001.partial"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (lb_wal_segment_parse(bad[i], LB_WAL_SEG_SIZE_DEFAULT, &tli, &segno) != LB_EPARSE)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(lb_wal_segment_parse(NULL, LB_WAL_SEG_SIZE_DEFAULT, &tli, &segno), LB_EPARSE);
    assert_int_equal(lb_wal_segment_parse("000000010000000000000001", 3u << 20, &tli, &segno),
                     LB_EPARSE);
    assert_int_equal(lb_wal_segment_name(name, 1, 1, 12345), -EINVAL);
    assert_int_equal(lb_wal_segment_name(name, 1, UINT64_MAX, LB_WAL_SEG_SIZE_MIN), -EINVAL);
}

static void
test_decoder_new_refuses_bad_arguments(void **state)
{
    (void)state;
    lb_wal_decoder *dec = (lb_wal_decoder *)1;
    uint64_t sizes[] = {0, 512 * 1024, 3u << 20, 2u * LB_WAL_SEG_SIZE_MAX};
    for (size_t i = 0; i < 4; i++) {
        assert_false(lb_wal_seg_size_valid(sizes[i]));
        assert_int_equal(lb_wal_decoder_new(0x1000000, (uint32_t)sizes[i], &dec), -EINVAL);
        assert_null(dec);
    }
    assert_true(lb_wal_seg_size_valid(LB_WAL_SEG_SIZE_DEFAULT));
    /* not aligned; inside a short header; inside a long header */
    lb_lsn bad[] = {0x1000031, 0x1002010, 0x1000020};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(lb_wal_decoder_new(bad[i], LB_WAL_SEG_SIZE_DEFAULT, &dec), -EINVAL);
    lb_lsn good[] = {0x1000000, 0x1002000, 0x1000028, 0x1002018, 0x1003FF8};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(lb_wal_decoder_new(good[i], LB_WAL_SEG_SIZE_DEFAULT, &dec), 0);
        assert_true(lb_wal_decoder_valid_end(dec) == good[i]);
        assert_true(lb_wal_decoder_feed_lsn(dec) == good[i]);
        assert_string_equal(lb_wal_decoder_errmsg(dec), "");
        lb_wal_record r;
        assert_int_equal(lb_wal_decoder_next(dec, &r), LB_ETRUNCATED);
        assert_int_equal(lb_wal_decoder_feed(dec, NULL, 3), -EINVAL);
        lb_wal_decoder_free(dec);
    }
    assert_int_equal(lb_wal_decoder_new(0, LB_WAL_SEG_SIZE_DEFAULT, NULL), -EINVAL);
    lb_wal_decoder_free(NULL);
}

static void
test_page_header_parse(void **state)
{
    (void)state;
    uint8_t p[LB_WAL_LONG_PHD_SIZE] = {0};
    lb_wal_page_header h;
    assert_int_equal(lb_wal_page_header_parse(p, sizeof(p), &h), LB_WAL_END);
    put16(p, LB_WAL_PAGE_MAGIC);
    put16(p + 2, LB_XLP_LONG_HEADER);
    put32(p + 4, 2);
    put64(p + 8, 0x5000000);
    put64(p + 24, SYSID);
    put32(p + 32, LB_WAL_SEG_SIZE_DEFAULT);
    put32(p + 36, LB_WAL_BLCKSZ);
    assert_int_equal(lb_wal_page_header_parse(p, 20, &h), LB_ETRUNCATED);
    assert_int_equal(lb_wal_page_header_parse(p, 30, &h), LB_ETRUNCATED);
    assert_int_equal(lb_wal_page_header_parse(p, sizeof(p), &h), 0);
    assert_true(h.is_long && h.size == LB_WAL_LONG_PHD_SIZE && h.tli == 2);
    assert_true(h.pageaddr == 0x5000000 && h.sysid == SYSID);
    assert_int_equal(h.seg_size, LB_WAL_SEG_SIZE_DEFAULT);
    put32(p + 32, 3000);
    assert_int_equal(lb_wal_page_header_parse(p, sizeof(p), &h), LB_EPARSE);
    put16(p + 2, LB_XLP_FIRST_IS_CONTRECORD);
    put32(p + 16, 77);
    assert_int_equal(lb_wal_page_header_parse(p, LB_WAL_SHORT_PHD_SIZE, &h), 0);
    assert_true(!h.is_long && h.size == LB_WAL_SHORT_PHD_SIZE && h.rem_len == 77);
    put16(p, 0xD10D); /* PostgreSQL 14's magic */
    assert_int_equal(lb_wal_page_header_parse(p, sizeof(p), &h), LB_EPARSE);
    assert_int_equal(lb_wal_page_header_parse(NULL, 40, &h), -EINVAL);
}

static void
test_rmgr_names(void **state)
{
    (void)state;
    static const char *const names[] = {
        "XLOG",       "Transaction",   "Storage", "CLOG",     "Database",
        "Tablespace", "MultiXact",     "RelMap",  "Standby",  "Heap2",
        "Heap",       "Btree",         "Hash",    "Gin",      "Gist",
        "Sequence",   "SPGist",        "BRIN",    "CommitTs", "ReplicationOrigin",
        "Generic",    "LogicalMessage"};
    for (uint8_t i = 0; i <= LB_RM_MAX_BUILTIN_ID; i++)
        assert_string_equal(lb_wal_rmgr_name(i), names[i]);
    for (int i = LB_RM_MAX_BUILTIN_ID + 1; i < LB_RM_MIN_CUSTOM_ID; i++)
        assert_null(lb_wal_rmgr_name((uint8_t)i));
    assert_string_equal(lb_wal_rmgr_name(128), "custom128");
    assert_string_equal(lb_wal_rmgr_name(200), "custom200");
    assert_string_equal(lb_wal_rmgr_name(255), "custom255");
}

static void
test_xact_records(void **state)
{
    (void)state;
    synth s;
    synth_init(&s, 0x1000000, LB_WAL_SEG_SIZE_DEFAULT);
    lb_buf b = LB_BUF_INIT;
    const int64_t t = INT64_C(770000000123456); /* 2024-05-26 00:53:20.123456 UTC */
    const uint8_t infos[] = {0x00, 0x20, 0x30, 0x40, 0x50, 0x80};
    const lb_wal_xact_kind kinds[] = {
        LB_WAL_XACT_COMMIT,         LB_WAL_XACT_ABORT, LB_WAL_XACT_COMMIT_PREPARED,
        LB_WAL_XACT_ABORT_PREPARED, LB_WAL_XACT_NONE,  LB_WAL_XACT_COMMIT};
    for (int i = 0; i < 6; i++) {
        rb_start(&b);
        rb_u8(&b, LB_XLR_BLOCK_ID_DATA_SHORT);
        rb_u8(&b, 12);
        int64_t ti = t + i;
        lb_buf_append(&b, &ti, 8);
        rb_u32(&b, 0);
        rb_finish(&b, s.prev, 900 + (uint32_t)i, infos[i], LB_RM_XACT_ID);
        synth_put(&s, (uint8_t *)b.data, (uint32_t)b.len);
    }
    /* a commit whose main data is too short for the timestamp */
    rb_start(&b);
    rb_u8(&b, LB_XLR_BLOCK_ID_DATA_SHORT);
    rb_u8(&b, 4);
    rb_u32(&b, 0);
    rb_finish(&b, s.prev, 999, 0x00, LB_RM_XACT_ID);
    synth_put(&s, (uint8_t *)b.data, (uint32_t)b.len);

    lb_wal_decoder *dec;
    assert_int_equal(lb_wal_decoder_new(s.start, s.seg_size, &dec), 0);
    assert_int_equal(lb_wal_decoder_feed(dec, s.w.data, s.w.len), 0);
    lb_wal_record r;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(lb_wal_decoder_next(dec, &r), 0);
        lb_wal_xact_kind k = 99;
        int64_t when = 0;
        assert_int_equal(lb_wal_xact_parse(&r, &k, &when), 0);
        assert_int_equal(k, kinds[i]);
        if (k != LB_WAL_XACT_NONE)
            assert_true(when == t + i);
    }
    assert_int_equal(lb_wal_decoder_next(dec, &r), 0);
    lb_wal_xact_kind k;
    assert_int_equal(lb_wal_xact_parse(&r, &k, NULL), LB_EPARSE);
    /* not a transaction record */
    r.rmid = 10;
    assert_int_equal(lb_wal_xact_parse(&r, &k, NULL), 0);
    assert_int_equal(k, LB_WAL_XACT_NONE);
    char ts[64];
    format_pg_time(t, ts, sizeof(ts));
    assert_string_equal(ts, "2024-05-26 00:53:20.123456 UTC");
    lb_wal_decoder_free(dec);
    lb_buf_free(&b);
    lb_buf_free(&s.w);
}

/* One parser for what a restore_command asks: segments and history
 * files, nothing that merely scans as hex. */
static void
test_file_names(void **state)
{
    (void)state;
    uint32_t tli = 0;
    uint64_t segno = 0;
    const uint32_t sz = LB_WAL_SEG_SIZE_DEFAULT;
    assert_int_equal(lb_wal_file_parse("000000020000000100000003", sz, &tli, &segno),
                     LB_WAL_FILE_SEGMENT);
    assert_int_equal(tli, 2);
    assert_true(segno == 256 + 3);
    assert_int_equal(lb_wal_file_parse("0000000A.history", sz, &tli, NULL), LB_WAL_FILE_HISTORY);
    assert_int_equal(tli, 10);
    assert_int_equal(lb_wal_history_parse("00000001.history", &tli), 0);
    assert_int_equal(tli, 1);
    const char *bad[] = {"",
                         "zz",
                         "+0000001.history", /* sscanf("%8X") took it */
                         " 0000001.history",
                         "-0000001.history",
                         "0x000001.history",
                         "0000000a.history",
                         "00000000.history",
                         "1.history",
                         "00000002.histor",
                         "00000002.historyx",
                         "../00000002.history",
                         "00000002000000000000000G",
                         "0000000200000000000000003",
                         "00000002000000000000000",
                         "000000000000000000000003",
                         "0000000a0000000000000003",
                         "000000020000000000000100", /* segment part past 4 GiB / 16 MiB */
                         "+00000020000000000000003",
                         "000000020000000000000003.partial",
                         "00000002000000000000000/",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        if (lb_wal_file_parse(bad[i], sz, &tli, &segno) != LB_WAL_FILE_BAD)
            fail_msg("\"%s\" accepted", bad[i]);
    }
    assert_int_equal(lb_wal_history_parse("+0000001.history", &tli), LB_EPARSE);
    assert_int_equal(lb_wal_history_parse(NULL, &tli), LB_EPARSE);
    assert_int_equal(lb_wal_file_parse(NULL, sz, &tli, &segno), LB_WAL_FILE_BAD);
}

/* How much of a served segment is WAL: the headers parse strictly, a
 * missing header means a whole segment, and an answer cut short of what is
 * needed does not cover it unless it is final. */
static void
test_valid_bytes(void **state)
{
    (void)state;
    const uint32_t seg = 16u << 20;
    lb_wal_valid v, w;
    assert_int_equal(lb_wal_valid_parse(NULL, NULL, seg, &v), 0);
    assert_true(v.bytes == seg && v.final && lb_wal_valid_complete(&v, seg));
    assert_int_equal(lb_wal_valid_parse("4096", NULL, seg, &v), 0);
    assert_true(v.bytes == 4096 && !v.final && !lb_wal_valid_complete(&v, seg));
    assert_int_equal(lb_wal_valid_parse("4096", "true", seg, &w), 0);
    assert_true(w.final && lb_wal_valid_complete(&w, seg));
    assert_int_equal(lb_wal_valid_parse("16777216", NULL, seg, &v), 0);
    assert_true(v.final);
    const char *bad[] = {"", "-1", "+5", " 5", "5 ", "0x10", "16777217", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(lb_wal_valid_parse(bad[i], NULL, seg, &v), LB_EPROTO);

    /* Better: more WAL; as much and final. */
    lb_wal_valid a = {100, false}, b = {200, false}, c = {200, true};
    assert_true(lb_wal_valid_better(&b, &a) && !lb_wal_valid_better(&a, &b));
    assert_true(lb_wal_valid_better(&c, &b) && !lb_wal_valid_better(&b, &c));
    assert_false(lb_wal_valid_better(&b, &b));

    /* Covers: segment 3 starts at 3 * seg. */
    lb_lsn s3 = 3ull * seg;
    lb_wal_valid part = {1000, false}, cut = {1000, true}, whole = {seg, true};
    assert_true(lb_wal_valid_covers(&part, 3, seg, 0));             /* nothing needed */
    assert_true(lb_wal_valid_covers(&part, 3, seg, s3));            /* need ends before it */
    assert_true(lb_wal_valid_covers(&part, 3, seg, s3 + 1000));     /* exactly up to need */
    assert_false(lb_wal_valid_covers(&part, 3, seg, s3 + 1001));    /* one byte short */
    assert_true(lb_wal_valid_covers(&cut, 3, seg, s3 + 5000));      /* its timeline ends there */
    assert_false(lb_wal_valid_covers(&part, 3, seg, s3 + 2 * seg)); /* need is later: whole */
    assert_true(lb_wal_valid_covers(&whole, 3, seg, s3 + 2 * seg));

    char bytes[21];
    const char *final;
    lb_wal_valid_format(&part, seg, bytes, &final);
    assert_string_equal(bytes, "1000");
    assert_null(final);
    lb_wal_valid_format(&cut, seg, bytes, &final);
    assert_string_equal(final, "true");
    lb_wal_valid_format(&whole, seg, bytes, &final);
    assert_string_equal(bytes, "16777216");
    assert_null(final);
}

int
main(void)
{
    const struct CMUnitTest units[] = {
        cmocka_unit_test(test_segment_names),
        cmocka_unit_test(test_file_names),
        cmocka_unit_test(test_valid_bytes),
        cmocka_unit_test(test_decoder_new_refuses_bad_arguments),
        cmocka_unit_test(test_page_header_parse),
        cmocka_unit_test(test_rmgr_names),
        cmocka_unit_test(test_xact_records),
        cmocka_unit_test(test_block_references_decoded),
        cmocka_unit_test(test_malformed_block_headers),
        cmocka_unit_test(test_malformed_record_headers),
        cmocka_unit_test(test_page_and_segment_crossings),
        cmocka_unit_test(test_overwrite_contrecord),
        cmocka_unit_test(test_start_mid_record_skips_continuation),
        cmocka_unit_test(test_page_header_context),
        cmocka_unit_test(test_random_corruption_is_safe),
    };
    const struct CMUnitTest small[] = {
        cmocka_unit_test(test_records_match_pg_waldump),
        cmocka_unit_test(test_streaming_in_small_chunks),
        cmocka_unit_test(test_start_at_record),
        cmocka_unit_test(test_flipped_byte_is_crc_error),
        cmocka_unit_test(test_truncated_input_needs_more),
        cmocka_unit_test(test_garbage_page_header),
        cmocka_unit_test(test_zeroed_tail_is_clean_end),
    };
    const struct CMUnitTest large[] = {
        cmocka_unit_test(test_records_match_pg_waldump),
        cmocka_unit_test(test_streaming_in_small_chunks),
    };
    int failed = cmocka_run_group_tests_name("wal", units, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("wal_pg_1mib_segments", small, setup_small, teardown_fixture);
    failed +=
        cmocka_run_group_tests_name("wal_pg_16mib_segments", large, setup_large, teardown_fixture);
    return failed;
}
