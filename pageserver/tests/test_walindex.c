/*
 * test_walindex.c: the WAL block index against real PostgreSQL 15 WAL.
 *
 * One throwaway cluster with 1 MiB segments runs commits spaced in time
 * (each with enough rows to spread them over several segments), an aborted
 * transaction, an update of a known block, a subtransaction, a prepared
 * transaction committed and one rolled back, and pg_switch_wal(). Its WAL is
 * fed to indexes in uneven chunks (single bytes, odd sizes, whole segments)
 * and the index must agree with pg_waldump: every block reference, every
 * commit and abort (LSN, xid, timestamp) and where each one ends. PITR
 * answers are checked against a direct reading of pg_waldump's list. Then
 * the failure paths: reopening, a tail cut by a crash, flipped bytes in
 * index files, bad WAL, installing sealed files into an empty index.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "fileio.h"
#include "lsn.h"
#include "testutil.h"
#include "wal.h"
#include "walindex.h"

/* ---- pg_waldump's view ------------------------------------------------------ */

typedef struct wd_rec {
    lb_lsn lsn;
    uint32_t tot, xid;
    char rmgr[24];
    char desc[160];
} wd_rec;

typedef struct wd_blk {
    lb_lsn lsn;
    uint32_t spc, db, rel, blk;
    uint8_t fork;
    bool img;
} wd_blk;

typedef struct wd_xact {
    ps_walindex_xact_kind kind;
    lb_lsn lsn;
    uint32_t xid;
    int64_t t; /* Unix microseconds */
} wd_xact;

/* ---- the fixture -------------------------------------------------------------- */

#define NTIMED 6

static struct {
    char *dir;
    tu_pg pg;
    uint32_t seg_size;
    lb_lsn start;
    uint8_t *wal; /* consecutive segment files from start */
    size_t wal_len;

    wd_rec *recs;
    size_t nrecs;
    wd_blk *blks;
    size_t nblks;
    wd_xact *xacts;
    size_t nxacts;

    uint32_t timed_xid[NTIMED];
    lb_lsn timed_after[NTIMED]; /* insert LSN right after each commit */
    uint32_t abort_xid, update_xid, sub_xid, prep_commit_xid, prep_abort_xid;
    lb_lsn update_before, update_after;
    ps_blockref update_old, update_new;
} fx;

static int
sql_lines(const char *sql, char lines[][64], int max)
{
    lb_buf out = LB_BUF_INIT;
    int rc = tu_pg_sql(&fx.pg, sql, &out);
    int n = 0;
    if (rc == 0 && out.data) {
        char *save = NULL;
        for (char *l = strtok_r(out.data, "\n", &save); l && n < max;
             l = strtok_r(NULL, "\n", &save))
            snprintf(lines[n++], 64, "%s", l);
    }
    lb_buf_free(&out);
    if (rc != 0) {
        fprintf(stderr, "psql failed (%d) on: %s\n", rc, sql);
        return -1;
    }
    if (getenv("LB_TEST_VERBOSE"))
        fprintf(stderr, "%d lines from: %s\n", n, sql);
    return n;
}

static int
parse_lsn_line(const char *s, lb_lsn *lsn)
{
    return lb_lsn_parse(s, lsn);
}

static int
parse_ctid(const char *s, uint32_t *blk)
{
    unsigned b, o;
    if (sscanf(s, "(%u,%u)", &b, &o) != 2)
        return -1;
    *blk = b;
    return 0;
}

/* "2026-11-24 09:48:51.6038 UTC" (pg_waldump trims trailing zeros). */
static int
parse_pg_time(const char *s, int64_t *t)
{
    struct tm tm = {0};
    int n = 0;
    if (sscanf(s, "%d-%d-%d %d:%d:%d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t us = 0;
    s += n;
    if (*s == '.') {
        int digits = 0;
        for (s++; *s >= '0' && *s <= '9'; s++, digits++)
            us = us * 10 + (*s - '0');
        for (; digits < 6; digits++)
            us *= 10;
    }
    if (strncmp(s, " UTC", 4) != 0)
        return -1;
    *t = (int64_t)timegm(&tm) * 1000000 + us;
    return 0;
}

static int
fork_number(const char *name)
{
    static const char *const names[] = {"main", "fsm", "vm", "init"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

static int
parse_waldump(char *text)
{
    size_t rcap = 0, bcap = 0, xcap = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, "rmgr: ", 6) == 0) {
            if (fx.nrecs == rcap) {
                rcap = rcap ? 2 * rcap : 4096;
                fx.recs = realloc(fx.recs, rcap * sizeof(*fx.recs));
            }
            wd_rec *r = &fx.recs[fx.nrecs++];
            unsigned rec_len, lh, ll, ph, pl;
            int at = -1;
            if (sscanf(l,
                       "rmgr: %23s len (rec/tot): %u/%u, tx: %u, lsn: %X/%X, prev %X/%X, desc: %n",
                       r->rmgr, &rec_len, &r->tot, &r->xid, &lh, &ll, &ph, &pl, &at) != 8 ||
                at < 0) {
                fprintf(stderr, "cannot parse pg_waldump line: %s\n", l);
                return -1;
            }
            r->lsn = ((lb_lsn)lh << 32) | ll;
            snprintf(r->desc, sizeof(r->desc), "%s", l + at);
            if (strcmp(r->rmgr, "Transaction") != 0)
                continue;
            static const struct {
                const char *prefix;
                ps_walindex_xact_kind kind;
                bool prepared;
            } kinds[] = {{"COMMIT ", PS_WALINDEX_COMMIT, false},
                         {"ABORT ", PS_WALINDEX_ABORT, false},
                         {"COMMIT_PREPARED ", PS_WALINDEX_COMMIT_PREPARED, true},
                         {"ABORT_PREPARED ", PS_WALINDEX_ABORT_PREPARED, true}};
            for (size_t k = 0; k < 4; k++) {
                size_t plen = strlen(kinds[k].prefix);
                if (strncmp(r->desc, kinds[k].prefix, plen) != 0)
                    continue;
                if (fx.nxacts == xcap) {
                    xcap = xcap ? 2 * xcap : 256;
                    fx.xacts = realloc(fx.xacts, xcap * sizeof(*fx.xacts));
                }
                wd_xact *x = &fx.xacts[fx.nxacts++];
                x->kind = kinds[k].kind;
                x->lsn = r->lsn;
                x->xid = r->xid;
                const char *ts = r->desc + plen;
                if (kinds[k].prepared) {
                    unsigned pxid;
                    int m = 0;
                    if (sscanf(ts, "%u: %n", &pxid, &m) != 1 || m == 0)
                        return -1;
                    x->xid = pxid;
                    ts += m;
                }
                if (parse_pg_time(ts, &x->t) != 0) {
                    fprintf(stderr, "cannot parse time in: %s\n", r->desc);
                    return -1;
                }
            }
        } else if (strncmp(l, "\tblkref #", 9) == 0) {
            if (fx.nrecs == 0)
                return -1;
            if (fx.nblks == bcap) {
                bcap = bcap ? 2 * bcap : 4096;
                fx.blks = realloc(fx.blks, bcap * sizeof(*fx.blks));
            }
            wd_blk *b = &fx.blks[fx.nblks++];
            unsigned id;
            char fork[16];
            if (sscanf(l, "\tblkref #%u: rel %u/%u/%u fork %15s blk %u", &id, &b->spc, &b->db,
                       &b->rel, fork, &b->blk) != 6 ||
                fork_number(fork) < 0) {
                fprintf(stderr, "cannot parse pg_waldump block line: %s\n", l);
                return -1;
            }
            b->fork = (uint8_t)fork_number(fork);
            b->lsn = fx.recs[fx.nrecs - 1].lsn;
            b->img = strstr(l, " (FPW") != NULL;
        }
    }
    return 0;
}

static int
run_workload(void)
{
    char l[8][64];
    if (sql_lines("CREATE TABLE k (id int PRIMARY KEY, v text) WITH (fillfactor = 50);\n"
                  "INSERT INTO k SELECT g, 'v' || g FROM generate_series(1, 200) g;\n"
                  "CREATE TABLE bulk (id int, pad text);\n"
                  "CREATE TABLE dropped_in_p1 (a int);\n",
                  l, 8) < 0)
        return -1;
    for (int i = 0; i < NTIMED; i++) {
        if (i == NTIMED / 2) {
            /* the aborted transaction, a subtransaction, a switch */
            if (sql_lines("BEGIN;\nINSERT INTO bulk SELECT g, 'a' FROM generate_series(1, 500) g;\n"
                          "SELECT pg_current_xact_id();\nROLLBACK;\n",
                          l, 8) != 1)
                return -1;
            fx.abort_xid = (uint32_t)strtoul(l[0], NULL, 10);
            if (sql_lines("BEGIN;\nINSERT INTO bulk VALUES (1, 's');\nSAVEPOINT s1;\n"
                          "INSERT INTO bulk VALUES (2, 's');\nRELEASE s1;\n"
                          "SELECT pg_current_xact_id();\nCOMMIT;\n",
                          l, 8) != 1)
                return -1;
            fx.sub_xid = (uint32_t)strtoul(l[0], NULL, 10);
            if (sql_lines("SELECT pg_switch_wal();\n", l, 8) != 1)
                return -1;
        }
        if (sql_lines(
                "DO $$ BEGIN PERFORM pg_sleep(0.03); END $$;\nBEGIN;\n"
                "INSERT INTO bulk SELECT g, repeat('x', 200) FROM generate_series(1, 4000) g;\n"
                "SELECT pg_current_xact_id();\nCOMMIT;\nSELECT pg_current_wal_insert_lsn();\n",
                l, 8) != 2)
            return -1;
        fx.timed_xid[i] = (uint32_t)strtoul(l[0], NULL, 10);
        if (parse_lsn_line(l[1], &fx.timed_after[i]) != 0)
            return -1;
    }
    /* the update of a known block */
    if (sql_lines("SELECT ctid FROM k WHERE id = 42;\n"
                  "SELECT pg_relation_filenode('k'), d.oid, d.dattablespace FROM pg_database d "
                  "WHERE d.datname = current_database();\n"
                  "SELECT pg_current_wal_insert_lsn();\n",
                  l, 8) != 3)
        return -1;
    unsigned rel, db, spc;
    if (parse_ctid(l[0], &fx.update_old.blkno) != 0 ||
        sscanf(l[1], "%u|%u|%u", &rel, &db, &spc) != 3 ||
        parse_lsn_line(l[2], &fx.update_before) != 0)
        return -1;
    fx.update_old.spc = spc;
    fx.update_old.db = db;
    fx.update_old.rel = rel;
    fx.update_old.fork = LB_FORK_MAIN;
    fx.update_new = fx.update_old;
    if (sql_lines("BEGIN;\nSELECT pg_current_xact_id();\n"
                  "UPDATE k SET v = 'changed' WHERE id = 42 RETURNING ctid;\nCOMMIT;\n"
                  "SELECT pg_current_wal_insert_lsn();\n",
                  l, 8) != 3)
        return -1;
    fx.update_xid = (uint32_t)strtoul(l[0], NULL, 10);
    if (parse_ctid(l[1], &fx.update_new.blkno) != 0 || parse_lsn_line(l[2], &fx.update_after) != 0)
        return -1;
    /* two-phase commit, both ways, with relations created and dropped so
     * that the records carry relfilenodes, dropped stats and invalidations
     * before the prepared xid */
    if (sql_lines("BEGIN;\nCREATE TABLE p1t (a int);\nDROP TABLE dropped_in_p1;\n"
                  "INSERT INTO k VALUES (1001, 'p');\nSELECT pg_current_xact_id();\n"
                  "PREPARE TRANSACTION 'p1';\nDO $$ BEGIN PERFORM pg_sleep(0.02); END $$;\nCOMMIT "
                  "PREPARED 'p1';\n",
                  l, 8) < 1)
        return -1;
    fx.prep_commit_xid = (uint32_t)strtoul(l[0], NULL, 10);
    if (sql_lines("BEGIN;\nCREATE TABLE p2t (a int);\nINSERT INTO p2t VALUES (1);\n"
                  "INSERT INTO k VALUES (1002, 'p');\nSELECT pg_current_xact_id();\n"
                  "PREPARE TRANSACTION 'p2';\nDO $$ BEGIN PERFORM pg_sleep(0.02); END "
                  "$$;\nROLLBACK PREPARED 'p2';\n",
                  l, 8) < 1)
        return -1;
    fx.prep_abort_xid = (uint32_t)strtoul(l[0], NULL, 10);
    if (sql_lines(
            "DO $$ BEGIN PERFORM pg_sleep(0.02); END $$;\nINSERT INTO k VALUES (2000, 'last');\n",
            l, 8) < 0)
        return -1;
    return 0;
}

static int
read_wal(void)
{
    char waldir[4200];
    snprintf(waldir, sizeof(waldir), "%s/pg_wal", fx.pg.datadir);
    DIR *d = opendir(waldir);
    if (!d)
        return -1;
    uint64_t first = UINT64_MAX;
    uint32_t tli = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint32_t t;
        uint64_t segno;
        if (lb_wal_segment_parse(de->d_name, fx.seg_size, &t, &segno) == 0 && segno < first) {
            first = segno;
            tli = t;
        }
    }
    closedir(d);
    if (first == UINT64_MAX)
        return -1;
    fx.start = lb_wal_segment_start(first, fx.seg_size);
    lb_buf wal = LB_BUF_INIT;
    for (uint64_t segno = first;; segno++) {
        char name[LB_WAL_SEG_NAME_LEN + 1], path[4300];
        lb_wal_segment_name(name, tli, segno, fx.seg_size);
        snprintf(path, sizeof(path), "%s/%s", waldir, name);
        size_t before = wal.len;
        if (lb_read_file(path, &wal) != 0)
            break;
        if (wal.len - before != fx.seg_size)
            return -1;
    }
    fx.wal = (uint8_t *)lb_buf_steal(&wal, &fx.wal_len);

    lb_buf cmd = LB_BUF_INIT, out = LB_BUF_INIT;
    char lsn[LB_LSN_STRLEN];
    lb_buf_printf(&cmd, "TZ=UTC '%s/pg_waldump' --bkp-details -p '%s' -s %s 2>'%s/waldump.err'",
                  tu_pg_bindir(), waldir, lb_lsn_format(fx.start, lsn), fx.dir);
    tu_run(cmd.data, &out); /* exits 1 at the end of WAL */
    lb_buf_free(&cmd);
    int rc = out.data ? parse_waldump(out.data) : -1;
    lb_buf_free(&out);
    return rc;
}

static void
fixture_free(void)
{
    if (fx.dir) {
        if (fx.pg.datadir[0])
            tu_pg_stop(&fx.pg, true);
        tu_rmdir(fx.dir);
    }
    free(fx.wal);
    free(fx.recs);
    free(fx.blks);
    free(fx.xacts);
    memset(&fx, 0, sizeof(fx));
}

static int
setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    fx.seg_size = LB_WAL_SEG_SIZE_MIN;
    fx.dir = tu_tempdir("walindex");
    int ok = fx.dir && tu_pg_init(&fx.pg, fx.dir, "--wal-segsize=1") == 0;
    static const char *const settings[] = {
        "wal_level = replica", "wal_keep_size = 1024",          "fsync = off",
        "autovacuum = off",    "max_prepared_transactions = 4", NULL};
    for (const char *const *s = settings; ok && *s; s++)
        ok = tu_pg_conf(&fx.pg, *s) == 0;
    ok = ok && tu_pg_start(&fx.pg) == 0;
    ok = ok && run_workload() == 0;
    ok = ok && tu_pg_stop(&fx.pg, false) == 0;
    ok = ok && read_wal() == 0;
    if (!ok) {
        fprintf(stderr, "walindex fixture failed\n");
        if (fx.dir) {
            lb_buf cmd = LB_BUF_INIT;
            lb_buf_printf(&cmd, "tail -n 20 '%s'/pgrun/*.log >&2", fx.dir);
            tu_run(cmd.data, NULL);
            lb_buf_free(&cmd);
        }
        fixture_free();
        return -1;
    }
    fprintf(stderr,
            "fixture: %zu bytes of WAL from %X/%X, %zu records, %zu block refs, %zu xacts\n",
            fx.wal_len, LB_LSN_ARGS(fx.start), fx.nrecs, fx.nblks, fx.nxacts);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    fixture_free();
    return 0;
}

/* ---- feeding ---------------------------------------------------------------------- */

/* Feed WAL [from, to) in uneven chunks: single bytes first, then odd sizes,
 * then whole segments. Stops at the first nonzero return, which it returns. */
static int
feed_range(ps_walindex *ix, lb_lsn from, lb_lsn to)
{
    assert_true(from >= fx.start && to <= fx.start + fx.wal_len && from <= to);
    static const size_t odd[] = {7, 4093, 13, 8192, 65541, 3, 100000};
    size_t off = (size_t)(from - fx.start), end = (size_t)(to - fx.start);
    size_t k = 0, fed = 0;
    while (off < end) {
        size_t n;
        if (fed < 3000)
            n = 1;
        else if (fed < 2 * (size_t)fx.seg_size)
            n = odd[k++ % (sizeof(odd) / sizeof(odd[0]))];
        else
            n = fx.seg_size;
        if (n > end - off)
            n = end - off;
        int rc = ps_walindex_feed(ix, fx.wal + off, n);
        if (rc)
            return rc;
        off += n;
        fed += n;
    }
    return 0;
}

static ps_walindex *
open_index(const char *dir)
{
    ps_walindex *ix = NULL;
    char msg[512];
    int rc = ps_walindex_open(dir, fx.start, fx.seg_size, &ix, msg, sizeof(msg));
    if (rc)
        fail_msg("open \"%s\": %s (%s)", dir, msg, lb_err_name(rc));
    return ix;
}

/* A fresh index in a new directory, fed all the WAL. */
static ps_walindex *
build_full(char **dir)
{
    *dir = tu_tempdir("wix");
    assert_non_null(*dir);
    ps_walindex *ix = open_index(*dir);
    assert_true(ps_walindex_resume_lsn(ix) == fx.start);
    int rc = feed_range(ix, fx.start, fx.start + fx.wal_len);
    if (rc != LB_WAL_END)
        fail_msg("feed: %s: %s", lb_err_name(rc), ps_walindex_errmsg(ix));
    assert_int_equal(ps_walindex_sync(ix), 0);
    return ix;
}

/* ---- answers, in comparable text ----------------------------------------------------- */

static int
dump_change(void *arg, const ps_walindex_change *c)
{
    return lb_buf_printf(arg, "C %" PRIX64 " %" PRIX64 " %u %u %u %u %u %u/%u/%u %u %u\n", c->lsn,
                         c->end_lsn, c->xid, c->toplevel_xid, c->rmid, c->info, c->flags,
                         c->block.spc, c->block.db, c->block.rel, c->block.fork, c->block.blkno);
}

static int
dump_xact(void *arg, const ps_walindex_xact *x)
{
    int rc = lb_buf_printf(arg, "X %d %" PRIX64 " %" PRIX64 " %u %" PRId64 " [", x->kind, x->lsn,
                           x->end_lsn, x->xid, x->time_unix_us);
    for (uint32_t i = 0; i < x->nsubxacts && !rc; i++)
        rc = lb_buf_printf(arg, " %u", x->subxacts[i]);
    return rc ? rc : lb_buf_printf(arg, " ]\n");
}

/* Everything the index answers, as text: every change, every xact, and
 * PITR at each xact's time and around it. */
static void
dump_answers(ps_walindex *ix, lb_buf *out)
{
    lb_buf_reset(out);
    assert_int_equal(ps_walindex_changes(ix, 0, UINT64_MAX, dump_change, out), 0);
    assert_int_equal(ps_walindex_xacts(ix, 0, UINT64_MAX, dump_xact, out), 0);
    for (size_t i = 0; i < fx.nxacts; i++) {
        for (int64_t d = -1; d <= 1; d++) {
            lb_lsn end = 0;
            int64_t t = 0;
            uint32_t xid = 0;
            int rc = ps_walindex_last_commit_before(ix, fx.xacts[i].t + d, &end, &t, &xid);
            lb_buf_printf(out, "P %d %" PRIX64 " %" PRId64 " %u\n", rc, end, t, xid);
        }
    }
    lb_buf_printf(out, "R %" PRIX64 "\n", ps_walindex_resume_lsn(ix));
}

static void
assert_same_answers(ps_walindex *ix, const lb_buf *want)
{
    lb_buf got = LB_BUF_INIT;
    dump_answers(ix, &got);
    if (got.len != want->len || memcmp(got.data, want->data, got.len) != 0) {
        size_t i = 0;
        while (i < got.len && i < want->len && got.data[i] == want->data[i])
            i++;
        size_t from = i > 200 ? i - 200 : 0;
        fail_msg("answers differ at byte %zu:\nwant ...%.300s\ngot  ...%.300s", i,
                 want->data + from, got.data + from);
    }
    lb_buf_free(&got);
}

/* ---- tests -------------------------------------------------------------------------------- */

typedef struct change_list {
    ps_walindex_change *c;
    size_t n, cap;
} change_list;

static int
collect_change(void *arg, const ps_walindex_change *c)
{
    change_list *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4096;
        l->c = realloc(l->c, l->cap * sizeof(*l->c));
        assert_non_null(l->c);
    }
    l->c[l->n++] = *c;
    return 0;
}

typedef struct xact_list {
    ps_walindex_xact *x;
    size_t n, cap;
} xact_list;

static int
collect_xact(void *arg, const ps_walindex_xact *x)
{
    xact_list *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->x = realloc(l->x, l->cap * sizeof(*l->x));
        assert_non_null(l->x);
    }
    l->x[l->n] = *x;
    l->x[l->n].subxacts = NULL; /* valid during the callback only */
    l->n++;
    return 0;
}

typedef struct sub_check {
    uint32_t xid, nsub, sub0;
    int seen;
} sub_check;

static int
check_subxacts(void *arg, const ps_walindex_xact *x)
{
    sub_check *c = arg;
    if (x->xid != c->xid)
        return 0;
    c->seen++;
    c->nsub = x->nsubxacts;
    c->sub0 = x->nsubxacts ? x->subxacts[0] : 0;
    return 0;
}

static const wd_rec *
wd_find(lb_lsn lsn)
{
    size_t lo = 0, hi = fx.nrecs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (fx.recs[mid].lsn < lsn)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < fx.nrecs && fx.recs[lo].lsn == lsn ? &fx.recs[lo] : NULL;
}

/* Every block reference and every commit and abort equals pg_waldump's, and
 * each xact's end is where the next record starts (modulo a page header). */
static void
test_index_matches_waldump(void **state)
{
    (void)state;
    char *dir;
    ps_walindex *ix = build_full(&dir);

    change_list ch = {0};
    assert_int_equal(ps_walindex_changes(ix, 0, UINT64_MAX, collect_change, &ch), 0);
    assert_int_equal(ch.n, fx.nblks);
    size_t images = 0;
    for (size_t i = 0; i < ch.n; i++) {
        const ps_walindex_change *c = &ch.c[i];
        const wd_blk *w = &fx.blks[i];
        if (c->lsn != w->lsn || c->block.spc != w->spc || c->block.db != w->db ||
            c->block.rel != w->rel || c->block.fork != w->fork || c->block.blkno != w->blk ||
            ((c->flags & PS_WALINDEX_HAS_IMAGE) != 0) != w->img)
            fail_msg("block reference %zu differs: pg_waldump %X/%X %u/%u/%u fork %u blk %u img %d;"
                     " index %X/%X %u/%u/%u fork %u blk %u flags %u",
                     i, LB_LSN_ARGS(w->lsn), w->spc, w->db, w->rel, w->fork, w->blk, w->img,
                     LB_LSN_ARGS(c->lsn), c->block.spc, c->block.db, c->block.rel, c->block.fork,
                     c->block.blkno, c->flags);
        const wd_rec *r = wd_find(c->lsn);
        assert_non_null(r);
        assert_int_equal(c->xid, r->xid);
        assert_true(c->end_lsn >= c->lsn + r->tot);
        images += (c->flags & PS_WALINDEX_HAS_IMAGE) != 0;
    }
    assert_true(images > 0);

    xact_list xs = {0};
    assert_int_equal(ps_walindex_xacts(ix, 0, UINT64_MAX, collect_xact, &xs), 0);
    assert_int_equal(xs.n, fx.nxacts);
    int kinds[5] = {0};
    for (size_t i = 0; i < xs.n; i++) {
        const ps_walindex_xact *x = &xs.x[i];
        const wd_xact *w = &fx.xacts[i];
        if (x->lsn != w->lsn || x->kind != w->kind || x->xid != w->xid || x->time_unix_us != w->t)
            fail_msg("xact %zu differs: pg_waldump %X/%X kind %d xid %u t %" PRId64
                     "; index %X/%X kind %d xid %u t %" PRId64,
                     i, LB_LSN_ARGS(w->lsn), w->kind, w->xid, w->t, LB_LSN_ARGS(x->lsn), x->kind,
                     x->xid, x->time_unix_us);
        kinds[x->kind]++;
        /* the end: the next record starts there, or after a page header */
        const wd_rec *r = wd_find(x->lsn);
        assert_non_null(r);
        assert_true(r + 1 < fx.recs + fx.nrecs);
        lb_lsn next = (r + 1)->lsn;
        assert_true(x->end_lsn >= x->lsn + r->tot && x->end_lsn <= next);
        assert_true(next == x->end_lsn || next == x->end_lsn + LB_WAL_SHORT_PHD_SIZE ||
                    next == x->end_lsn + LB_WAL_LONG_PHD_SIZE);
    }
    assert_true(kinds[PS_WALINDEX_COMMIT] >= NTIMED + 3 && kinds[PS_WALINDEX_ABORT] >= 1 &&
                kinds[PS_WALINDEX_COMMIT_PREPARED] == 1 && kinds[PS_WALINDEX_ABORT_PREPARED] == 1);

    /* The workload's transactions are there as what they were. */
    for (int i = 0; i < NTIMED; i++) {
        bool seen = false;
        for (size_t j = 0; j < xs.n; j++)
            if (xs.x[j].xid == fx.timed_xid[i]) {
                assert_int_equal(xs.x[j].kind, PS_WALINDEX_COMMIT);
                assert_true(xs.x[j].end_lsn <= fx.timed_after[i]);
                seen = true;
            }
        assert_true(seen);
    }
    for (size_t j = 0; j < xs.n; j++) {
        if (xs.x[j].xid == fx.abort_xid)
            assert_int_equal(xs.x[j].kind, PS_WALINDEX_ABORT);
        if (xs.x[j].xid == fx.prep_commit_xid)
            assert_int_equal(xs.x[j].kind, PS_WALINDEX_COMMIT_PREPARED);
        if (xs.x[j].xid == fx.prep_abort_xid)
            assert_int_equal(xs.x[j].kind, PS_WALINDEX_ABORT_PREPARED);
    }

    /* The committed subtransaction is listed in its top-level commit. */
    sub_check sc = {.xid = fx.sub_xid};
    assert_int_equal(ps_walindex_xacts(ix, 0, UINT64_MAX, check_subxacts, &sc), 0);
    assert_int_equal(sc.seen, 1);
    assert_int_equal(sc.nsub, 1);
    assert_true(sc.sub0 > fx.sub_xid);

    free(ch.c);
    free(xs.x);
    ps_walindex_close(ix);
    tu_rmdir(dir);
}

/* PITR as pg_waldump's list says: for t at, between, before and after the
 * commits, the answer is the last commit before the first commit or abort
 * later than t; aborts never answer. */
static void
test_last_commit_before(void **state)
{
    (void)state;
    char *dir;
    ps_walindex *ix = build_full(&dir);
    xact_list xs = {0};
    assert_int_equal(ps_walindex_xacts(ix, 0, UINT64_MAX, collect_xact, &xs), 0);
    assert_int_equal(xs.n, fx.nxacts);

    /* probe times: every xact's time, one either side, midpoints, far out */
    size_t nprobe = 0;
    int64_t *probe = calloc(4 * fx.nxacts + 2, sizeof(*probe));
    for (size_t i = 0; i < fx.nxacts; i++) {
        probe[nprobe++] = fx.xacts[i].t;
        probe[nprobe++] = fx.xacts[i].t - 1;
        probe[nprobe++] = fx.xacts[i].t + 1;
        if (i + 1 < fx.nxacts)
            probe[nprobe++] = (fx.xacts[i].t + fx.xacts[i + 1].t) / 2;
    }
    probe[nprobe++] = 0;
    probe[nprobe++] = INT64_MAX;
    size_t notfound = 0, answers = 0;
    for (size_t p = 0; p < nprobe; p++) {
        int64_t t = probe[p];
        /* straight from pg_waldump's list */
        const wd_xact *want = NULL;
        size_t want_i = 0;
        for (size_t i = 0; i < fx.nxacts; i++) {
            if (fx.xacts[i].t > t)
                break;
            if (fx.xacts[i].kind == PS_WALINDEX_COMMIT ||
                fx.xacts[i].kind == PS_WALINDEX_COMMIT_PREPARED) {
                want = &fx.xacts[i];
                want_i = i;
            }
        }
        lb_lsn end = 0;
        int64_t when = 0;
        uint32_t xid = 0;
        int rc = ps_walindex_last_commit_before(ix, t, &end, &when, &xid);
        if (!want) {
            assert_int_equal(rc, LB_ENOTFOUND);
            assert_non_null(strstr(ps_walindex_errmsg(ix), "no commit"));
            notfound++;
            continue;
        }
        if (rc != 0)
            fail_msg("t=%" PRId64 ": %s", t, ps_walindex_errmsg(ix));
        assert_true(end == xs.x[want_i].end_lsn);
        assert_true(when == want->t && when <= t);
        assert_int_equal(xid, want->xid);
        answers++;
    }
    assert_true(notfound >= 2 && answers > fx.nxacts);

    /* The timed commits, named by the xids the sessions saw. */
    for (int i = 0; i < NTIMED; i++) {
        size_t j = 0;
        while (j < xs.n && xs.x[j].xid != fx.timed_xid[i])
            j++;
        assert_true(j < xs.n);
        lb_lsn end;
        uint32_t xid;
        assert_int_equal(ps_walindex_last_commit_before(ix, xs.x[j].time_unix_us, &end, NULL, &xid),
                         0);
        assert_true(end == xs.x[j].end_lsn && xid == fx.timed_xid[i]);
        if (j + 1 < xs.n && xs.x[j + 1].time_unix_us > xs.x[j].time_unix_us + 1) {
            assert_int_equal(
                ps_walindex_last_commit_before(ix, xs.x[j].time_unix_us + 1, &end, NULL, &xid), 0);
            assert_true(end == xs.x[j].end_lsn && xid == fx.timed_xid[i]);
        }
    }
    /* At the abort's time the answer is the commit before it. */
    for (size_t j = 0; j < xs.n; j++) {
        if (xs.x[j].xid != fx.abort_xid)
            continue;
        lb_lsn end;
        uint32_t xid;
        assert_int_equal(ps_walindex_last_commit_before(ix, xs.x[j].time_unix_us, &end, NULL, &xid),
                         0);
        assert_true(end != xs.x[j].end_lsn && xid != fx.abort_xid);
        size_t k = j;
        while (k > 0 && xs.x[k].kind != PS_WALINDEX_COMMIT &&
               xs.x[k].kind != PS_WALINDEX_COMMIT_PREPARED)
            k--;
        assert_true(end == xs.x[k].end_lsn);
    }
    /* Before the first xact: nothing. */
    assert_int_equal(ps_walindex_last_commit_before(ix, fx.xacts[0].t - 1, NULL, NULL, NULL),
                     LB_ENOTFOUND);
    free(probe);
    free(xs.x);
    ps_walindex_close(ix);
    tu_rmdir(dir);
}

typedef struct match {
    uint32_t xid;
    lb_lsn lsn;
    size_t n;
} match;

static int
count_xid(void *arg, const ps_walindex_change *c)
{
    match *m = arg;
    if (c->xid == m->xid) {
        m->n++;
        m->lsn = c->lsn;
    }
    return 0;
}

static int
find_block(void *arg, const ps_walindex_change *c)
{
    const ps_blockref *b = arg;
    return c->block.spc == b->spc && c->block.db == b->db && c->block.rel == b->rel &&
                   c->block.fork == b->fork && c->block.blkno == b->blkno
               ? 7
               : 0;
}

static int
stop_at_first(void *arg, const ps_walindex_change *c)
{
    (void)c;
    (*(int *)arg)++;
    return 42;
}

/* The update of a known block: the block shows up at its LSN with the
 * update's xid, and xid_blocks lists it. */
static void
test_known_block_update(void **state)
{
    (void)state;
    char *dir;
    ps_walindex *ix = build_full(&dir);
    ps_blockref blocks[2] = {fx.update_old, fx.update_new};
    for (int i = 0; i < 2; i++) {
        match m = {.xid = fx.update_xid};
        assert_int_equal(ps_walindex_block_changes(ix, &blocks[i], fx.update_before,
                                                   fx.update_after, count_xid, &m),
                         0);
        assert_true(m.n >= 1);
        assert_true(m.lsn >= fx.update_before && m.lsn < fx.update_after);
        /* pg_waldump has that record, with this block and xid */
        const wd_rec *r = wd_find(m.lsn);
        assert_non_null(r);
        assert_int_equal(r->xid, fx.update_xid);
        assert_true(strcmp(r->rmgr, "Heap") == 0 || strcmp(r->rmgr, "Heap2") == 0);
        bool in_waldump = false;
        for (size_t j = 0; j < fx.nblks; j++)
            in_waldump |= fx.blks[j].lsn == m.lsn && fx.blks[j].rel == blocks[i].rel &&
                          fx.blks[j].blk == blocks[i].blkno;
        assert_true(in_waldump);
        /* the xid's blocks include it */
        assert_int_equal(
            ps_walindex_xid_blocks(ix, fx.update_xid, 0, UINT64_MAX, find_block, &blocks[i]), 7);
        /* and the range is half-open: nothing from its own end on */
        match after = {.xid = fx.update_xid};
        assert_int_equal(
            ps_walindex_block_changes(ix, &blocks[i], m.lsn + 1, UINT64_MAX, count_xid, &after), 0);
        assert_int_equal(after.n, 0);
        match at = {.xid = fx.update_xid};
        assert_int_equal(
            ps_walindex_block_changes(ix, &blocks[i], m.lsn, m.lsn + 1, count_xid, &at), 0);
        assert_true(at.n >= 1);
    }
    /* Another block of the table was not touched by that xid. */
    ps_blockref other = fx.update_old;
    other.blkno += 1000;
    assert_int_equal(ps_walindex_xid_blocks(ix, fx.update_xid, 0, UINT64_MAX, find_block, &other),
                     0);
    /* A callback's nonzero return stops the query and is returned. */
    int calls = 0;
    assert_int_equal(ps_walindex_changes(ix, 0, UINT64_MAX, stop_at_first, &calls), 42);
    assert_int_equal(calls, 1);
    ps_walindex_close(ix);
    tu_rmdir(dir);
}

/* Close and reopen: the same resume LSN and the same answers; feeding the
 * end of WAL again changes nothing. Memory stays small whatever the WAL. */
static void
test_reopen_resumes(void **state)
{
    (void)state;
    char *dir;
    ps_walindex *ix = build_full(&dir);
    lb_lsn resume = ps_walindex_resume_lsn(ix);
    assert_true(resume > fx.start + 4 * fx.seg_size);
    const wd_rec *last = &fx.recs[fx.nrecs - 1];
    assert_true(resume >= last->lsn + last->tot && resume <= last->lsn + last->tot + 64);
    lb_buf want = LB_BUF_INIT;
    dump_answers(ix, &want);
    ps_walindex_close(ix);

    ix = open_index(dir);
    assert_true(ps_walindex_resume_lsn(ix) == resume);
    assert_same_answers(ix, &want);
    int rc = feed_range(ix, resume, fx.start + fx.wal_len);
    assert_int_equal(rc, LB_WAL_END);
    assert_true(ps_walindex_resume_lsn(ix) == resume);
    assert_same_answers(ix, &want);

    /* Memory: a few hundred bytes per file on top of fixed buffers. */
    size_t files = 0;
    DIR *d = opendir(dir);
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        files += strstr(de->d_name, ".walidx") != NULL;
    closedir(d);
    assert_true(files >= 5);
    size_t mem = ps_walindex_memory(ix);
    fprintf(stderr, "index: %zu files for %zu bytes of WAL, %zu bytes of memory\n", files,
            fx.wal_len, mem);
    assert_true(mem < 512 * 1024);
    ps_walindex_close(ix);

    /* Reopened afresh (no query run yet), only the summaries are held. */
    ix = open_index(dir);
    size_t fresh = ps_walindex_memory(ix);
    fprintf(stderr, "reopened: %zu bytes of memory\n", fresh);
    assert_true(fresh < 4096 + files * 256);
    ps_walindex_close(ix);
    lb_buf_free(&want);
    tu_rmdir(dir);
}

/* The newest file in dir (by name). */
static void
newest_file(const char *dir, char *path, size_t len)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char best[256] = "";
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (strstr(de->d_name, ".walidx") && strcmp(de->d_name, best) > 0)
            snprintf(best, sizeof(best), "%s", de->d_name);
    closedir(d);
    assert_true(best[0] != '\0');
    snprintf(path, len, "%s/%s", dir, best);
}

static off_t
file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* A crash cuts the tail of the file being written: reopening truncates it
 * to its last complete frame, resume_lsn goes back, and feeding from there
 * gives the same answers as an index that never crashed. Zeros the file
 * system left past the end are dropped the same way. */
static void
test_cut_tail_resumes(void **state)
{
    (void)state;
    char *full_dir;
    ps_walindex *full = build_full(&full_dir);
    lb_buf want = LB_BUF_INIT;
    dump_answers(full, &want);
    ps_walindex_close(full);
    tu_rmdir(full_dir);

    /* Stop in the middle of a segment, well after its start. */
    lb_lsn stop = 0;
    for (size_t i = fx.nxacts / 2; i < fx.nxacts && !stop; i++)
        if (fx.xacts[i].lsn % fx.seg_size > fx.seg_size / 4)
            stop = fx.xacts[i].lsn + 10;
    assert_true(stop != 0);
    char *dir = tu_tempdir("wix");
    ps_walindex *ix = open_index(dir);
    assert_int_equal(feed_range(ix, fx.start, stop), 0);
    lb_lsn resume = ps_walindex_resume_lsn(ix);
    assert_true(resume < stop &&
                lb_wal_segno(resume, fx.seg_size) == lb_wal_segno(stop, fx.seg_size));
    ps_walindex_close(ix);

    char path[4096];
    newest_file(dir, path, sizeof(path));
    /* zeros past the end: nothing lost */
    int fd = open(path, O_WRONLY | O_APPEND);
    static const uint8_t zeros[100];
    assert_int_equal(write(fd, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
    close(fd);
    off_t size = file_size(path);
    ix = open_index(dir);
    assert_true(ps_walindex_resume_lsn(ix) == resume);
    assert_true(file_size(path) == size - (off_t)sizeof(zeros));
    ps_walindex_close(ix);

    /* a cut last frame */
    assert_int_equal(truncate(path, size - (off_t)sizeof(zeros) - 3), 0);
    ix = open_index(dir);
    lb_lsn back = ps_walindex_resume_lsn(ix);
    assert_true(back < resume && back > fx.start);
    int rc = feed_range(ix, back, fx.start + fx.wal_len);
    if (rc != LB_WAL_END)
        fail_msg("feed after cut: %s", ps_walindex_errmsg(ix));
    assert_same_answers(ix, &want);
    ps_walindex_close(ix);
    lb_buf_free(&want);
    tu_rmdir(dir);
}

/* Copy every file of one directory into another (fresh) one. */
static char *
copy_dir(const char *from)
{
    char *to = tu_tempdir("wixcopy");
    lb_buf cmd = LB_BUF_INIT;
    lb_buf_printf(&cmd, "cp -a '%s'/. '%s'/", from, to);
    assert_int_equal(tu_run(cmd.data, NULL), 0);
    lb_buf_free(&cmd);
    return to;
}

static void
flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x5A;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

typedef struct sealed_list {
    char names[256][64];
    char paths[256][4096];
    lb_lsn base[256], end[256];
    size_t n;
} sealed_list;

static int
collect_sealed(void *arg, const ps_walindex_file *f)
{
    sealed_list *l = arg;
    assert_true(l->n < 256);
    snprintf(l->names[l->n], 64, "%s", f->name);
    snprintf(l->paths[l->n], 4096, "%s", f->path);
    l->base[l->n] = f->base_lsn;
    l->end[l->n] = f->end_lsn;
    assert_int_equal(file_size(f->path), (off_t)f->size);
    l->n++;
    return 0;
}

/* A flipped byte in an index file is a checksum error naming the file,
 * never an answer: in a sealed file's data (on the query reading it), in
 * its summary (on open), in the file being written (on open). */
static void
test_flipped_byte_is_corruption(void **state)
{
    (void)state;
    char *dir;
    ps_walindex *ix = build_full(&dir);
    static sealed_list sl;
    memset(&sl, 0, sizeof(sl));
    assert_int_equal(ps_walindex_sealed_files(ix, collect_sealed, &sl), 0);
    assert_true(sl.n >= 4);
    /* the sealed file holding the timed commit in the middle */
    xact_list xs = {0};
    assert_int_equal(ps_walindex_xacts(ix, 0, UINT64_MAX, collect_xact, &xs), 0);
    /* a commit, not the first, in a sealed file other than the first */
    size_t j = 0, f = sl.n;
    for (size_t k = 1; k < xs.n && f == sl.n; k++) {
        for (size_t i = 1; i < sl.n; i++)
            if (xs.x[k].kind == PS_WALINDEX_COMMIT && xs.x[k].lsn >= sl.base[i] &&
                xs.x[k].lsn < sl.end[i]) {
                j = k;
                f = i;
            }
    }
    assert_true(f < sl.n);
    int64_t t = xs.x[j].time_unix_us - 1; /* the lookup must read that file */
    lb_lsn good_end;
    assert_int_equal(ps_walindex_last_commit_before(ix, t, &good_end, NULL, NULL), 0);
    ps_walindex_close(ix);

    /* a data frame */
    char *bad = copy_dir(dir);
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", bad, sl.names[f]);
    flip_byte(path, 64 + 20);
    ix = open_index(bad);
    lb_lsn end = 0;
    assert_int_equal(ps_walindex_last_commit_before(ix, t, &end, NULL, NULL), LB_ECRC);
    assert_true(end == 0);
    assert_non_null(strstr(ps_walindex_errmsg(ix), sl.names[f]));
    assert_int_equal(ps_walindex_xacts(ix, 0, UINT64_MAX, collect_xact, &xs), LB_ECRC);
    assert_non_null(strstr(ps_walindex_errmsg(ix), "checksum"));
    ps_walindex_close(ix);
    tu_rmdir(bad);

    /* its summary, just before the trailer */
    bad = copy_dir(dir);
    snprintf(path, sizeof(path), "%s/%s", bad, sl.names[f]);
    flip_byte(path, file_size(path) - 24 - 3);
    char msg[512];
    assert_int_equal(ps_walindex_open(bad, fx.start, fx.seg_size, &ix, msg, sizeof(msg)), LB_ECRC);
    assert_null(ix);
    assert_non_null(strstr(msg, sl.names[f]));
    tu_rmdir(bad);

    /* its header */
    bad = copy_dir(dir);
    snprintf(path, sizeof(path), "%s/%s", bad, sl.names[f]);
    flip_byte(path, 20);
    assert_int_equal(ps_walindex_open(bad, fx.start, fx.seg_size, &ix, msg, sizeof(msg)), LB_ECRC);
    assert_non_null(strstr(msg, sl.names[f]));
    tu_rmdir(bad);

    /* a missing file in the middle: the files do not join */
    bad = copy_dir(dir);
    snprintf(path, sizeof(path), "%s/%s", bad, sl.names[sl.n / 2]);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(ps_walindex_open(bad, fx.start, fx.seg_size, &ix, msg, sizeof(msg)),
                     LB_EPARSE);
    assert_non_null(strstr(msg, "do not join"));
    tu_rmdir(bad);

    /* the file being written: cut WAL feeding into a fresh index */
    char *wdir = tu_tempdir("wix");
    ix = open_index(wdir);
    lb_lsn stop = fx.xacts[fx.nxacts / 2].lsn + 10;
    assert_int_equal(feed_range(ix, fx.start, stop), 0);
    ps_walindex_close(ix);
    newest_file(wdir, path, sizeof(path));
    assert_true(file_size(path) > 200);
    flip_byte(path, file_size(path) - 30);
    assert_int_equal(ps_walindex_open(wdir, fx.start, fx.seg_size, &ix, msg, sizeof(msg)), LB_ECRC);
    assert_non_null(strstr(msg, strrchr(path, '/') + 1));
    tu_rmdir(wdir);

    free(xs.x);
    tu_rmdir(dir);
}

/* Sealed files, installed newest first into an empty index in another
 * directory, give the same answers once the rest of the WAL is fed from
 * its resume LSN. Bad or unjoinable files are refused. */
static void
test_install_sealed_files(void **state)
{
    (void)state;
    char *dir;
    ps_walindex *ix = build_full(&dir);
    lb_buf want = LB_BUF_INIT;
    dump_answers(ix, &want);
    static sealed_list sl;
    memset(&sl, 0, sizeof(sl));
    assert_int_equal(ps_walindex_sealed_files(ix, collect_sealed, &sl), 0);
    assert_true(sl.n >= 4);
    for (size_t i = 1; i < sl.n; i++)
        assert_true(sl.base[i] == sl.end[i - 1]);

    char *dir2 = tu_tempdir("wix2");
    ps_walindex *ix2 = open_index(dir2);
    lb_buf bytes = LB_BUF_INIT;
    /* a corrupt one first: refused, nothing installed */
    assert_int_equal(lb_read_file(sl.paths[sl.n - 1], &bytes), 0);
    bytes.data[bytes.len / 2] ^= 1;
    int rc = ps_walindex_install(ix2, sl.names[sl.n - 1], bytes.data, bytes.len);
    assert_true(rc == LB_ECRC || rc == LB_EPARSE);
    assert_true(ps_walindex_resume_lsn(ix2) == fx.start);
    /* under another segment's name */
    bytes.data[bytes.len / 2] ^= 1;
    assert_int_equal(ps_walindex_install(ix2, sl.names[0], bytes.data, bytes.len), LB_EPARSE);
    lb_buf_reset(&bytes);
    for (size_t i = sl.n; i-- > 0;) {
        lb_buf_reset(&bytes);
        assert_int_equal(lb_read_file(sl.paths[i], &bytes), 0);
        rc = ps_walindex_install(ix2, sl.names[i], bytes.data, bytes.len);
        if (rc)
            fail_msg("install %s: %s", sl.names[i], ps_walindex_errmsg(ix2));
        assert_true(ps_walindex_resume_lsn(ix2) == sl.end[sl.n - 1]);
        /* again: the same file is fine */
        assert_int_equal(ps_walindex_install(ix2, sl.names[i], bytes.data, bytes.len), 0);
    }
    lb_lsn resume = ps_walindex_resume_lsn(ix2);
    rc = feed_range(ix2, resume, fx.start + fx.wal_len);
    if (rc != LB_WAL_END)
        fail_msg("feed after install: %s", ps_walindex_errmsg(ix2));
    assert_same_answers(ix2, &want);
    ps_walindex_close(ix2);
    /* and after reopening */
    ix2 = open_index(dir2);
    assert_same_answers(ix2, &want);
    ps_walindex_close(ix2);

    /* An index with only the newest files cannot take an older file that
     * leaves a gap. */
    char *dir3 = tu_tempdir("wix3");
    ps_walindex *ix3 = open_index(dir3);
    lb_buf_reset(&bytes);
    assert_int_equal(lb_read_file(sl.paths[sl.n - 1], &bytes), 0);
    assert_int_equal(ps_walindex_install(ix3, sl.names[sl.n - 1], bytes.data, bytes.len), 0);
    lb_buf_reset(&bytes);
    assert_int_equal(lb_read_file(sl.paths[0], &bytes), 0);
    assert_int_equal(ps_walindex_install(ix3, sl.names[0], bytes.data, bytes.len), LB_ECONFLICT);
    assert_non_null(strstr(ps_walindex_errmsg(ix3), "does not join"));
    lb_lsn resume3 = ps_walindex_resume_lsn(ix3);
    assert_true(resume3 == sl.end[sl.n - 1]);
    ps_walindex_close(ix3);
    /* A crash right after creating the next file, inside its header: the
     * file held nothing and goes away on open. */
    uint64_t segno = strtoull(sl.names[sl.n - 1], NULL, 16) + 1;
    char cut[4200];
    snprintf(cut, sizeof(cut), "%s/%016" PRIX64 ".walidx", dir3, segno);
    lb_buf_reset(&bytes);
    assert_int_equal(lb_read_file(sl.paths[sl.n - 1], &bytes), 0);
    assert_int_equal(lb_write_file_atomic(cut, bytes.data, 10), 0);
    ix3 = open_index(dir3);
    assert_true(ps_walindex_resume_lsn(ix3) == resume3);
    assert_int_equal(access(cut, F_OK), -1);
    ps_walindex_close(ix3);
    tu_rmdir(dir3);

    lb_buf_free(&bytes);
    lb_buf_free(&want);
    ps_walindex_close(ix);
    tu_rmdir(dir2);
    tu_rmdir(dir);
}

/* WAL with a bad record: the error comes back with the decoder's message,
 * the index keeps every record before it, and feeding the good WAL from
 * resume_lsn gives the full answers. */
static void
test_bad_wal_keeps_index(void **state)
{
    (void)state;
    char *full_dir;
    ps_walindex *full = build_full(&full_dir);
    lb_buf want = LB_BUF_INIT;
    dump_answers(full, &want);
    ps_walindex_close(full);
    tu_rmdir(full_dir);

    /* corrupt the record of the middle timed commit */
    const wd_xact *x = NULL;
    for (size_t i = 0; i < fx.nxacts; i++)
        if (fx.xacts[i].xid == fx.timed_xid[NTIMED / 2 + 1])
            x = &fx.xacts[i];
    assert_non_null(x);
    size_t at = (size_t)(x->lsn - fx.start) + 10; /* inside its header, before the CRC */
    fx.wal[at] ^= 0x01;
    char *dir = tu_tempdir("wix");
    ps_walindex *ix = open_index(dir);
    int rc = feed_range(ix, fx.start, fx.start + fx.wal_len);
    fx.wal[at] ^= 0x01;
    assert_true(rc == LB_ECRC || rc == LB_EPARSE);
    assert_true(ps_walindex_errmsg(ix)[0] != '\0');
    lb_lsn resume = ps_walindex_resume_lsn(ix);
    assert_true(resume <= x->lsn && resume + 64 > x->lsn);
    /* that commit is not indexed: at its time, an earlier commit answers */
    lb_lsn end;
    uint32_t xid;
    assert_int_equal(ps_walindex_last_commit_before(ix, x->t, &end, NULL, &xid), 0);
    assert_true(xid != x->xid && end <= x->lsn);
    rc = feed_range(ix, resume, fx.start + fx.wal_len);
    if (rc != LB_WAL_END)
        fail_msg("feed after bad WAL: %s", ps_walindex_errmsg(ix));
    assert_same_answers(ix, &want);
    ps_walindex_close(ix);
    lb_buf_free(&want);
    tu_rmdir(dir);
}

/* ---- injected I/O failures ---- */

static int writes_left, fsyncs_left;

/* After writes_left writes, write half of what is asked and fail, as a
 * full disk does. */
static ssize_t
failing_write(int fd, const void *bytes, size_t n)
{
    if (writes_left-- > 0)
        return write(fd, bytes, n);
    if (n / 2 > 0 && write(fd, bytes, n / 2) < 0)
        return -1;
    errno = ENOSPC;
    return -1;
}

static int
failing_fsync(int fd)
{
    if (fsyncs_left-- > 0)
        return fsync(fd);
    errno = EIO;
    return -1;
}

/* A failed write or fsync (while appending, or while sealing a file) fails
 * the handle for good; reopened, the index resumes from what its files hold
 * and ends up with the same answers. */
static void
test_io_failure_then_reopen(void **state)
{
    (void)state;
    char *full_dir;
    ps_walindex *full = build_full(&full_dir);
    lb_buf want = LB_BUF_INIT;
    dump_answers(full, &want);
    ps_walindex_close(full);
    tu_rmdir(full_dir);

    lb_io_ops ops = lb_io_default;
    ops.write = failing_write;
    ops.fsync = failing_fsync;
    /* count the writes and fsyncs of a whole run */
    char *count_dir = tu_tempdir("wix");
    ps_walindex *counted = open_index(count_dir);
    writes_left = fsyncs_left = 1 << 30;
    lb_io = &ops;
    assert_int_equal(feed_range(counted, fx.start, fx.start + fx.wal_len), LB_WAL_END);
    assert_int_equal(ps_walindex_sync(counted), 0);
    lb_io = &lb_io_default;
    int writes = (1 << 30) - writes_left, fsyncs = (1 << 30) - fsyncs_left;
    ps_walindex_close(counted);
    tu_rmdir(count_dir);
    assert_true(writes > 10 && fsyncs >= 4);
    const int cases[][2] = {{2, fsyncs},          {writes / 3, fsyncs}, {writes - 2, fsyncs},
                            {writes - 1, fsyncs}, {writes, 1},          {writes, fsyncs / 2},
                            {writes, fsyncs - 1}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char *dir = tu_tempdir("wix");
        ps_walindex *ix = open_index(dir);
        writes_left = cases[c][0];
        fsyncs_left = cases[c][1];
        lb_io = &ops;
        int rc = feed_range(ix, fx.start, fx.start + fx.wal_len);
        if (rc == LB_WAL_END)
            rc = ps_walindex_sync(ix); /* the fsync cases may only fail here */
        lb_io = &lb_io_default;
        if (rc != -ENOSPC && rc != -EIO)
            fail_msg("case %zu: %s (%s)", c, lb_err_name(rc), ps_walindex_errmsg(ix));
        if (!strstr(ps_walindex_errmsg(ix), "could not"))
            fail_msg("case %zu: %s: \"%s\"", c, lb_err_name(rc), ps_walindex_errmsg(ix));
        /* the handle stays failed */
        assert_int_equal(ps_walindex_feed(ix, fx.wal, 1), rc);
        assert_int_equal(ps_walindex_last_commit_before(ix, INT64_MAX, NULL, NULL, NULL), rc);
        ps_walindex_close(ix);

        ix = open_index(dir);
        lb_lsn resume = ps_walindex_resume_lsn(ix);
        rc = feed_range(ix, resume, fx.start + fx.wal_len);
        if (rc != LB_WAL_END)
            fail_msg("case %zu, after reopening at %X/%X: %s", c, LB_LSN_ARGS(resume),
                     ps_walindex_errmsg(ix));
        assert_same_answers(ix, &want);
        ps_walindex_close(ix);
        tu_rmdir(dir);
    }
    lb_buf_free(&want);
}

/* After pg_switch_wal() the rest of the segment is padding: the file of
 * that segment ends at the next segment's start and is sealed, and the next
 * file starts there. */
static void
test_switch_ends_segment(void **state)
{
    (void)state;
    const wd_rec *sw = NULL;
    for (size_t i = 0; i < fx.nrecs && !sw; i++)
        if (strcmp(fx.recs[i].rmgr, "XLOG") == 0 && strncmp(fx.recs[i].desc, "SWITCH", 6) == 0)
            sw = &fx.recs[i];
    assert_non_null(sw);
    lb_lsn next_seg = lb_wal_segment_start(lb_wal_segno(sw->lsn, fx.seg_size) + 1, fx.seg_size);
    assert_true(sw->lsn + sw->tot < next_seg - 4096); /* the switch came well before the end */
    assert_true((sw + 1)->lsn == next_seg + LB_WAL_LONG_PHD_SIZE);

    char *dir;
    ps_walindex *ix = build_full(&dir);
    static sealed_list sl;
    memset(&sl, 0, sizeof(sl));
    assert_int_equal(ps_walindex_sealed_files(ix, collect_sealed, &sl), 0);
    bool ends = false, starts = false;
    for (size_t i = 0; i < sl.n; i++) {
        ends |= sl.end[i] == next_seg && sl.base[i] <= sw->lsn;
        starts |= sl.base[i] == next_seg;
    }
    assert_true(ends && starts);
    ps_walindex_close(ix);
    tu_rmdir(dir);
}

/* ---- without PostgreSQL ---------------------------------------------------------------- */

static void
test_open_refuses_bad_arguments(void **state)
{
    (void)state;
    char *dir = tu_tempdir("wix");
    ps_walindex *ix = (ps_walindex *)1;
    char msg[128];
    assert_int_equal(ps_walindex_open(dir, 0x1000000, 12345, &ix, msg, sizeof(msg)), -EINVAL);
    assert_null(ix);
    assert_non_null(strstr(msg, "segment size"));
    /* a file of another segment size */
    assert_int_equal(
        ps_walindex_open(dir, 0x1000000, LB_WAL_SEG_SIZE_DEFAULT, &ix, msg, sizeof(msg)), 0);
    assert_true(ps_walindex_resume_lsn(ix) == 0x1000000);
    assert_int_equal(ps_walindex_last_commit_before(ix, INT64_MAX, NULL, NULL, NULL), LB_ENOTFOUND);
    assert_int_equal(ps_walindex_feed(ix, "", 0), 0);
    assert_int_equal(ps_walindex_sync(ix), 0);
    ps_walindex_close(ix);
    ps_walindex_close(NULL);
    /* a file that is not an index, under an index name */
    char path[4200];
    snprintf(path, sizeof(path), "%s/0000000000000001.walidx", dir);
    uint8_t junk[200];
    memset(junk, 0x33, sizeof(junk));
    assert_int_equal(lb_write_file_atomic(path, junk, sizeof(junk)), 0);
    assert_int_equal(
        ps_walindex_open(dir, 0x1000000, LB_WAL_SEG_SIZE_DEFAULT, &ix, msg, sizeof(msg)), LB_ECRC);
    assert_non_null(strstr(msg, "0000000000000001.walidx"));
    tu_rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest units[] = {
        cmocka_unit_test(test_open_refuses_bad_arguments),
    };
    const struct CMUnitTest pg[] = {
        cmocka_unit_test(test_index_matches_waldump),
        cmocka_unit_test(test_last_commit_before),
        cmocka_unit_test(test_known_block_update),
        cmocka_unit_test(test_reopen_resumes),
        cmocka_unit_test(test_cut_tail_resumes),
        cmocka_unit_test(test_flipped_byte_is_corruption),
        cmocka_unit_test(test_install_sealed_files),
        cmocka_unit_test(test_bad_wal_keeps_index),
        cmocka_unit_test(test_io_failure_then_reopen),
        cmocka_unit_test(test_switch_ends_segment),
    };
    int failed = cmocka_run_group_tests_name("walindex", units, NULL, NULL);
    failed += cmocka_run_group_tests_name("walindex_pg_1mib_segments", pg, setup, teardown);
    return failed;
}
