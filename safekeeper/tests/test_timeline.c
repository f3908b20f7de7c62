/*
 * test_timeline.c: a safekeeper timeline fed real PostgreSQL 15 WAL.
 *
 * A throwaway PostgreSQL (1 MiB segments) produces WAL; the test feeds its
 * segment files to a timeline as the compute would stream them, and checks
 * the properties the protocol relies on: end_lsn is always a record
 * boundary within flush_lsn; a torn tail is cut back to the last whole
 * record on reopen; votes are durable and fence older terms; accepting a
 * proposer's history truncates a divergent tail and fetches missing WAL;
 * commit_lsn follows a majority; reads never return bytes past the limit;
 * an fsync failure stops all progress.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "fileio.h"
#include "testutil.h"
#include "timeline.h"
#include "wal.h"

#define SEG (1024 * 1024)
#define TENANT "0123456789abcdef0123456789abcdef"
#define TLID "00000000000000000000000000000001"

/* WAL produced once for all tests: bytes [wal_start, wal_start + wal_len). */
static char *wal;
static size_t wal_len;
static lb_lsn wal_start;
static uint64_t sysid;
static char *pgdir;

static int
make_wal(void **state)
{
    (void)state;
    tu_pg pg;
    pgdir = tu_tempdir("tl-pg");
    /* wal_keep_size: no segment of the range we read may be recycled. */
    if (!pgdir || tu_pg_init(&pg, pgdir, "--wal-segsize=1") != 0 ||
        tu_pg_conf(&pg, "wal_keep_size = '1GB'") != 0 || tu_pg_start(&pg) != 0)
        return -1;
    lb_buf out = LB_BUF_INIT;
    tu_pg_sql(&pg, "select pg_switch_wal(); select pg_current_wal_insert_lsn()", &out);
    char *nl = strrchr(out.data, '\n');
    if (nl)
        *nl = '\0';
    nl = strrchr(out.data, '\n');
    lb_lsn cur;
    if (lb_lsn_parse(nl ? nl + 1 : out.data, &cur) != 0)
        return -1;
    wal_start = cur - cur % SEG;
    lb_buf_reset(&out);
    /* About 3 MiB of WAL: inserts, an index, updates and big records. */
    tu_pg_sql(&pg,
              "create table t (id int primary key, v text);"
              "insert into t select g, repeat('x', 200) from generate_series(1, 8000) g;"
              "update t set v = 'y' where id % 3 = 0;"
              "select pg_logical_emit_message(false, 'p', repeat('z', 300000));"
              "checkpoint;"
              "insert into t select g, md5(g::text) from generate_series(8001, 12000) g;"
              "select pg_current_wal_insert_lsn();",
              &out);
    nl = strrchr(out.data, '\n');
    if (nl)
        *nl = '\0';
    nl = strrchr(out.data, '\n');
    lb_lsn end;
    if (lb_lsn_parse(nl ? nl + 1 : out.data, &end) != 0)
        return -1;
    lb_buf_free(&out);
    tu_pg_stop(&pg, false);

    wal_len = (size_t)(end - wal_start);
    wal = malloc(wal_len);
    for (lb_lsn pos = wal_start; pos < end; pos += SEG) {
        char name[LB_WAL_SEG_NAME_LEN + 1], path[PATH_MAX + 64];
        lb_wal_segment_name(name, 1, lb_wal_segno(pos, SEG), SEG);
        snprintf(path, sizeof(path), "%s/pg_wal/%s", pg.datadir, name);
        lb_buf seg = LB_BUF_INIT;
        if (lb_read_file(path, &seg) != 0 || seg.len != SEG) {
            fprintf(stderr, "cannot read segment \"%s\"\n", path);
            return -1;
        }
        size_t n = end - pos < SEG ? (size_t)(end - pos) : SEG;
        memcpy(wal + (pos - wal_start), seg.data, n);
        if (pos == wal_start)
            memcpy(&sysid, seg.data + 24, 8); /* xlp_sysid of the long header */
        lb_buf_free(&seg);
    }
    return 0;
}

static int
drop_wal(void **state)
{
    (void)state;
    free(wal);
    tu_rmdir(pgdir);
    return 0;
}

static sk_timeline *
new_timeline(const char *root, lb_lsn start)
{
    sk_timeline_params p = {TENANT, TLID, sysid, SEG, start, 1};
    sk_timeline *tl;
    assert_int_equal(sk_timeline_create(root, &p, &tl), 0);
    return tl;
}

/* Vote for term, accept [(1, start, 1)] ... ending in (term, start), elect. */
static void
elect_first_term(sk_timeline *tl, lb_lsn start)
{
    bool granted;
    assert_int_equal(sk_timeline_vote(tl, 1, &granted), 0);
    assert_true(granted);
    sk_term_entry h[] = {{1, start, 1}};
    assert_int_equal(sk_timeline_accept(tl, 1, h, 1, start, NULL, NULL), 0);
    assert_int_equal(sk_timeline_elected(tl, 1, "host=127.0.0.1 port=1"), 0);
}

static void
feed(sk_timeline *tl, uint64_t term, lb_lsn from, lb_lsn to, size_t chunk)
{
    for (lb_lsn pos = from; pos < to;) {
        size_t n = to - pos < chunk ? (size_t)(to - pos) : chunk;
        assert_int_equal(sk_timeline_append(tl, term, pos, wal + (pos - wal_start), n), 0);
        pos += n;
    }
}

/* A new timeline at wal_start, its first term elected, fed the test WAL
 * up to end in chunk-sized appends, and synced: the starting point of
 * most tests below. */
static sk_timeline *
written_timeline(const char *root, lb_lsn end, size_t chunk)
{
    sk_timeline *tl = new_timeline(root, wal_start);
    elect_first_term(tl, wal_start);
    feed(tl, 1, wal_start, end, chunk);
    assert_int_equal(sk_timeline_sync(tl), 0);
    return tl;
}

static void
test_end_is_a_record_boundary_and_survives_reopen(void **state)
{
    (void)state;
    char *root = tu_tempdir("tl");
    sk_timeline *tl = new_timeline(root, wal_start);
    elect_first_term(tl, wal_start);

    /* Stream 2.5 MiB in odd-sized chunks, group-committing now and then. */
    lb_lsn cut = wal_start + 2 * SEG + SEG / 2 + 123;
    for (lb_lsn pos = wal_start; pos < cut;) {
        lb_lsn to = pos + 70001 < cut ? pos + 70001 : cut;
        feed(tl, 1, pos, to, 9999);
        assert_int_equal(sk_timeline_sync(tl), 0);
        assert_true(sk_timeline_flush_lsn(tl) == to);
        assert_true(sk_timeline_end_lsn(tl) <= to);
        pos = to;
    }
    lb_lsn end = sk_timeline_end_lsn(tl);
    assert_true(end > cut - 20000 && end < cut); /* cut lands inside a record */

    /* end_lsn is where a record starts: a decoder started there finds one. */
    lb_wal_decoder *dec;
    lb_wal_record rec;
    assert_int_equal(lb_wal_decoder_new(end, SEG, &dec), 0);
    assert_int_equal(lb_wal_decoder_feed(dec, wal + (end - wal_start), wal_len - (end - wal_start)),
                     0);
    assert_int_equal(lb_wal_decoder_next(dec, &rec), 0);
    assert_true(rec.lsn == end || rec.lsn == LB_WAL_MAXALIGN(end) ||
                rec.lsn == end + LB_WAL_SHORT_PHD_SIZE);
    lb_wal_decoder_free(dec);

    /* Crash and reopen: the half record after end is gone, end is kept. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", sk_timeline_dir(tl));
    sk_timeline_close(tl);
    assert_int_equal(sk_timeline_open(dir, &tl), 0);
    assert_true(sk_timeline_end_lsn(tl) == end);
    assert_true(sk_timeline_write_lsn(tl) == end);
    assert_int_equal(sk_timeline_state(tl)->term, 1);
    char tail[256];
    assert_int_equal(sk_timeline_read(tl, end, tail, sizeof(tail), UINT64_MAX), 0);
    for (size_t i = 0; i < sizeof(tail); i++)
        assert_int_equal(tail[i], 0); /* zeroed, never served as WAL */

    /* The compute resends from end: streaming goes on to the end of WAL. */
    lb_lsn s;
    uint32_t tli;
    sk_timeline_stream_start(tl, &s, &tli);
    assert_true(s == end);
    assert_int_equal(tli, 1);
    feed(tl, 1, end, wal_start + wal_len, 65536);
    assert_int_equal(sk_timeline_sync(tl), 0);
    assert_true(sk_timeline_end_lsn(tl) > end);

    /* What we hold reads back byte for byte. */
    size_t n = (size_t)(sk_timeline_end_lsn(tl) - wal_start);
    char *back = malloc(n);
    assert_int_equal(sk_timeline_read(tl, wal_start, back, n, UINT64_MAX), 0);
    assert_memory_equal(back, wal, n);
    free(back);
    sk_timeline_close(tl);
    tu_rmdir(root);
}

static void
test_votes_are_durable_and_fence_older_terms(void **state)
{
    (void)state;
    char *root = tu_tempdir("tl");
    sk_timeline *tl = written_timeline(root, wal_start + 200000, 50000);

    bool granted;
    assert_int_equal(sk_timeline_vote(tl, 1, &granted), 0);
    assert_false(granted); /* same term */
    assert_int_equal(sk_timeline_vote(tl, 3, &granted), 0);
    assert_true(granted);
    /* The old compute is cut off: no stream target, appends refused. */
    assert_null(sk_timeline_compute(tl));
    assert_int_equal(sk_timeline_append(tl, 1, wal_start + 200000, wal + 200000, 100),
                     LB_ESTALETERM);
    assert_int_equal(sk_timeline_elected(tl, 1, "x"), LB_ESTALETERM);
    assert_int_equal(sk_timeline_vote(tl, 2, &granted), 0);
    assert_false(granted);

    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", sk_timeline_dir(tl));
    sk_timeline_close(tl);
    assert_int_equal(sk_timeline_open(dir, &tl), 0);
    assert_int_equal(sk_timeline_state(tl)->term, 3); /* the promise survived */
    assert_int_equal(sk_timeline_vote(tl, 3, &granted), 0);
    assert_false(granted);
    sk_timeline_close(tl);
    tu_rmdir(root);
}

static int
fetch_from_wal(void *arg, lb_lsn from, lb_lsn to, uint32_t tli, void *buf)
{
    int *calls = arg;
    (*calls)++;
    assert_int_equal(tli, 1);
    memcpy(buf, wal + (from - wal_start), (size_t)(to - from));
    return 0;
}

static void
test_accept_truncates_divergent_tail_and_fetches_missing(void **state)
{
    (void)state;
    char *root = tu_tempdir("tl");
    char root_b[PATH_MAX];
    snprintf(root_b, sizeof(root_b), "%s/b", root);

    /* A holds 1.5 MiB of term-1 WAL; find a record boundary E2 inside it. */
    sk_timeline *a = written_timeline(root, wal_start + SEG / 2, 40000);
    lb_lsn e2 = sk_timeline_end_lsn(a);
    feed(a, 1, wal_start + SEG / 2, wal_start + SEG + SEG / 2, 40000);
    assert_int_equal(sk_timeline_sync(a), 0);
    assert_true(sk_timeline_end_lsn(a) > e2);

    /* A proposer for term 2 took a donor that ended at e2: A must cut
     * everything after e2, and its new term starts there. */
    bool granted;
    assert_int_equal(sk_timeline_vote(a, 2, &granted), 0);
    sk_term_entry h[] = {{1, wal_start, 1}, {2, e2, 2}};
    assert_int_equal(sk_timeline_accept(a, 2, h, 2, e2, NULL, NULL), 0);
    assert_true(sk_timeline_end_lsn(a) == e2);
    assert_int_equal(sk_timeline_state(a)->nhistory, 2);
    /* The term-1 segment holding e2 is zero from e2 on; later ones are gone;
     * and the new term's timeline has no WAL yet. */
    char name[LB_WAL_SEG_NAME_LEN + 1], path[PATH_MAX + 64];
    lb_wal_segment_name(name, 1, lb_wal_segno(e2, SEG), SEG);
    snprintf(path, sizeof(path), "%s/%s", sk_timeline_dir(a), name);
    lb_buf seg = LB_BUF_INIT;
    assert_int_equal(lb_read_file(path, &seg), 0);
    assert_int_equal(seg.len, SEG);
    size_t off = (size_t)(e2 % SEG);
    assert_memory_equal(seg.data, wal + (e2 - off - wal_start), off);
    for (size_t i = off; i < SEG; i++)
        if (seg.data[i] != 0)
            fail_msg("byte %zu after the truncation point is not zero", i);
    lb_buf_free(&seg);
    lb_wal_segment_name(name, 1, lb_wal_segno(e2, SEG) + 1, SEG);
    snprintf(path, sizeof(path), "%s/%s", sk_timeline_dir(a), name);
    assert_int_equal(access(path, F_OK), -1);
    char z[16];
    assert_int_equal(sk_timeline_read(a, e2, z, sizeof(z), UINT64_MAX), -ENOENT);
    /* Stale proposers are refused. */
    assert_int_equal(sk_timeline_accept(a, 1, h, 1, wal_start, NULL, NULL), LB_ESTALETERM);

    /* B is empty: it fetches [start, e2) from the donor. */
    sk_timeline *b = new_timeline(root_b, wal_start);
    int calls = 0;
    assert_int_equal(sk_timeline_accept(b, 2, h, 2, e2, fetch_from_wal, &calls), 0);
    assert_true(calls > 0);
    assert_true(sk_timeline_end_lsn(b) == e2);
    assert_int_equal(sk_timeline_state(b)->term, 2);
    size_t n = (size_t)(e2 - wal_start);
    char *back = malloc(n);
    assert_int_equal(sk_timeline_read(b, wal_start, back, n, UINT64_MAX), 0);
    assert_memory_equal(back, wal, n);
    free(back);

    /* Without a donor the accept fails and nothing claims WAL it lacks. */
    char root_c[PATH_MAX];
    snprintf(root_c, sizeof(root_c), "%s/c", root);
    sk_timeline *c = new_timeline(root_c, wal_start);
    assert_int_equal(sk_timeline_accept(c, 2, h, 2, e2, NULL, NULL), LB_ENOTFOUND);
    assert_true(sk_timeline_end_lsn(c) == wal_start);
    sk_timeline_close(a);
    sk_timeline_close(b);
    sk_timeline_close(c);
    tu_rmdir(root);
}

static void
test_commit_follows_majority_and_limits_reads(void **state)
{
    (void)state;
    char *root = tu_tempdir("tl");
    sk_timeline *tl = new_timeline(root, wal_start);
    sk_timeline_set_quorum(tl, 3);
    elect_first_term(tl, wal_start);
    assert_true(sk_timeline_commit_lsn(tl) == wal_start);
    feed(tl, 1, wal_start, wal_start + 300000, 30000);
    assert_int_equal(sk_timeline_sync(tl), 0);
    /* Only we have it: not committed. */
    assert_true(sk_timeline_commit_lsn(tl) == wal_start);
    /* A peer in an older term does not count. */
    sk_timeline_peer_flush(tl, 0, 0, 0, wal_start + 300000);
    assert_true(sk_timeline_commit_lsn(tl) == wal_start);
    /* A peer of this term with less WAL: commit is what both have. */
    sk_timeline_peer_flush(tl, 1, 1, 1, wal_start + 100000);
    assert_true(sk_timeline_commit_lsn(tl) == wal_start + 100000);
    sk_timeline_peer_flush(tl, 1, 1, 1, wal_start + 250000);
    assert_true(sk_timeline_commit_lsn(tl) == wal_start + 250000);
    /* Commit never goes backwards. */
    sk_timeline_peer_flush(tl, 1, 1, 1, wal_start + 1000);
    assert_true(sk_timeline_commit_lsn(tl) == wal_start + 250000);
    assert_true(sk_timeline_serve_lsn(tl) == wal_start + 250000);

    /* Two peers ahead of us: the quorum committed WAL we do not hold yet.
     * What we serve stops at our own flush position. */
    sk_timeline_peer_flush(tl, 0, 1, 1, wal_start + 400000);
    sk_timeline_peer_flush(tl, 1, 1, 1, wal_start + 400000);
    assert_true(sk_timeline_commit_lsn(tl) == wal_start + 400000);
    assert_true(sk_timeline_serve_lsn(tl) == wal_start + 300000);

    /* Reads limited to what may be served: bytes past it are zeros. */
    char buf[1000];
    lb_lsn c = sk_timeline_serve_lsn(tl);
    assert_int_equal(sk_timeline_read(tl, c - 500, buf, sizeof(buf), c), 0);
    assert_memory_equal(buf, wal + (c - 500 - wal_start), 500);
    for (size_t i = 500; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0);
    sk_timeline_close(tl);
    tu_rmdir(root);
}

/* The WAL's fsync fails once (a write-back error); later ones, like the
 * state file's, succeed. */
static int fsync_failures_left;

static int
fail_fsync(int fd)
{
    if (fsync_failures_left > 0) {
        fsync_failures_left--;
        errno = EIO;
        return -1;
    }
    return fsync(fd);
}

static void
test_fsync_failure_breaks_the_timeline(void **state)
{
    (void)state;
    char *root = tu_tempdir("tl");
    sk_timeline *tl = written_timeline(root, wal_start + 100000, 30000);
    lb_lsn flushed = sk_timeline_flush_lsn(tl);
    feed(tl, 1, wal_start + 100000, wal_start + 200000, 30000);
    lb_io_ops bad = lb_io_default;
    bad.fsync = fail_fsync;
    fsync_failures_left = 1;
    lb_io = &bad;
    assert_int_equal(sk_timeline_sync(tl), LB_EFSYNC);
    lb_io = &lb_io_default;
    assert_true(sk_timeline_broken(tl));
    assert_true(sk_timeline_flush_lsn(tl) == flushed); /* never reported */
    assert_int_equal(sk_timeline_sync(tl), LB_EFSYNC); /* never retried */
    bool granted;
    assert_int_equal(sk_timeline_vote(tl, 5, &granted), LB_EFSYNC);
    assert_int_equal(sk_timeline_append(tl, 1, wal_start + 200000, wal, 10), LB_EFSYNC);

    /* Reopened, the WAL written after the last good fsync is not trusted
     * even though the page cache still has it: it is cut back. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", sk_timeline_dir(tl));
    sk_timeline_close(tl);
    assert_int_equal(sk_timeline_open(dir, &tl), 0);
    assert_false(sk_timeline_broken(tl));
    assert_true(sk_timeline_end_lsn(tl) <= flushed);
    assert_true(sk_timeline_end_lsn(tl) > flushed - 20000);
    assert_true(sk_timeline_state(tl)->fsync_failed_lsn == 0);
    sk_timeline_close(tl);
    tu_rmdir(root);
}

static void
test_create_validates_and_is_idempotent(void **state)
{
    (void)state;
    char *root = tu_tempdir("tl");
    sk_timeline *tl;
    sk_timeline_params bad = {"nothex", TLID, sysid, SEG, wal_start, 1};
    assert_int_equal(sk_timeline_create(root, &bad, &tl), -EINVAL);
    sk_timeline_params badseg = {TENANT, TLID, sysid, 3000, wal_start, 1};
    assert_int_equal(sk_timeline_create(root, &badseg, &tl), -EINVAL);
    tl = new_timeline(root, wal_start);
    sk_timeline_close(tl);
    tl = new_timeline(root, wal_start); /* same again: fine */
    sk_timeline_close(tl);
    sk_timeline_params other = {TENANT, TLID, sysid + 1, SEG, wal_start, 1};
    assert_int_equal(sk_timeline_create(root, &other, &tl), LB_EEXIST);
    tu_rmdir(root);
}

static void
test_state_that_fails_to_load_is_never_reinitialized(void **state)
{
    (void)state;
    char *root = tu_tempdir("tl");
    sk_timeline *tl = written_timeline(root, wal_start + 200000, 50000);
    char dir[PATH_MAX], state_path[PATH_MAX + 32], seg[PATH_MAX + 64];
    snprintf(dir, sizeof(dir), "%s", sk_timeline_dir(tl));
    sk_timeline_close(tl);
    snprintf(state_path, sizeof(state_path), "%s/safekeeper.state", dir);
    char name[LB_WAL_SEG_NAME_LEN + 1];
    lb_wal_segment_name(name, 1, lb_wal_segno(wal_start, SEG), SEG);
    snprintf(seg, sizeof(seg), "%s/%s", dir, name);
    lb_buf before = LB_BUF_INIT, after = LB_BUF_INIT, st = LB_BUF_INIT;
    assert_int_equal(lb_read_file(seg, &before), 0);
    assert_int_equal(lb_read_file(state_path, &st), 0);

    /* A state file that does not load (a flipped byte: CRC, or garbage):
     * create refuses, and neither the state file nor the WAL changes. */
    st.data[st.len / 2] ^= 0x20;
    assert_int_equal(lb_write_file_atomic(state_path, st.data, st.len), 0);
    sk_timeline_params p = {TENANT, TLID, sysid, SEG, wal_start, 1};
    tl = NULL;
    assert_int_equal(sk_timeline_create(root, &p, &tl), LB_ECONFLICT);
    assert_null(tl);
    lb_buf now = LB_BUF_INIT;
    assert_int_equal(lb_read_file(state_path, &now), 0);
    assert_int_equal(now.len, st.len);
    assert_memory_equal(now.data, st.data, st.len);
    lb_buf_free(&now);
    assert_int_equal(lb_read_file(seg, &after), 0);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, before.len);
    lb_buf_reset(&after);

    /* No state file at all, but WAL: refused too. */
    assert_int_equal(unlink(state_path), 0);
    assert_int_equal(sk_timeline_create(root, &p, &tl), LB_ECONFLICT);
    assert_int_equal(access(state_path, F_OK), -1);
    assert_int_equal(lb_read_file(seg, &after), 0);
    assert_memory_equal(after.data, before.data, before.len);

    /* An empty directory (made, never used) is a timeline that never was. */
    assert_int_equal(lb_rm_rf(dir), 0);
    assert_int_equal(lb_mkdir_p(dir, 0700), 0);
    tl = new_timeline(root, wal_start);
    sk_timeline_close(tl);
    lb_buf_free(&before);
    lb_buf_free(&after);
    lb_buf_free(&st);
    tu_rmdir(root);
}

static void
test_vote_for_int64_max_does_not_lock_the_timeline(void **state)
{
    (void)state;
    char *root = tu_tempdir("tl");
    sk_timeline *tl = new_timeline(root, wal_start);
    elect_first_term(tl, wal_start);
    bool granted = true;
    /* A term no proposer could ever go above: refused, nothing promised. */
    assert_int_equal(sk_timeline_vote(tl, INT64_MAX, &granted), -ERANGE);
    assert_false(granted);
    assert_int_equal(sk_timeline_vote(tl, UINT64_MAX, &granted), -ERANGE);
    assert_int_equal(sk_timeline_vote(tl, 1 + SK_TERM_MAX_STEP + 1, &granted), -ERANGE);
    assert_int_equal(sk_timeline_state(tl)->term, 1);
    sk_term_entry h[] = {{1, wal_start, 1}, {(uint64_t)INT64_MAX, wal_start, 2}};
    assert_int_equal(sk_timeline_accept(tl, INT64_MAX, h, 2, wal_start, NULL, NULL), -ERANGE);
    assert_int_equal(sk_timeline_state(tl)->term, 1);
    /* The next proposer goes on as usual, and far but reachable terms too. */
    assert_int_equal(sk_timeline_vote(tl, 2, &granted), 0);
    assert_true(granted);
    assert_int_equal(sk_timeline_vote(tl, 2 + SK_TERM_MAX_STEP, &granted), 0);
    assert_true(granted);
    assert_int_equal(sk_timeline_vote(tl, 3 + SK_TERM_MAX_STEP, &granted), 0);
    assert_true(granted);
    sk_timeline_close(tl);
    tu_rmdir(root);
}

/* Crash injection for accept: the Nth fsync or rename never happens, the
 * process dies there. */
static int crash_at, durable_ops;

static void
maybe_crash(void)
{
    if (++durable_ops == crash_at)
        _exit(0);
}

static int
crashing_fsync(int fd)
{
    maybe_crash();
    return fsync(fd);
}

static int
crashing_rename(const char *from, const char *to)
{
    maybe_crash();
    return rename(from, to);
}

static void
test_crash_at_any_step_of_accept_never_claims_zeroed_wal(void **state)
{
    (void)state;
    char *root = tu_tempdir("tl");
    char tmpl[PATH_MAX], work[PATH_MAX], cmd[4 * PATH_MAX];
    snprintf(tmpl, sizeof(tmpl), "%s/tmpl", root);
    snprintf(work, sizeof(work), "%s/work", root);
    /* The template: 1.5 MiB of term-1 WAL, its state's end hint at the end
     * (a clean close writes it), a vote for term 2. */
    sk_timeline *a = new_timeline(tmpl, wal_start);
    elect_first_term(a, wal_start);
    feed(a, 1, wal_start, wal_start + SEG / 2, 40000);
    assert_int_equal(sk_timeline_sync(a), 0);
    lb_lsn e2 = sk_timeline_end_lsn(a);
    feed(a, 1, wal_start + SEG / 2, wal_start + SEG + SEG / 2, 40000);
    assert_int_equal(sk_timeline_sync(a), 0);
    lb_lsn full = sk_timeline_end_lsn(a);
    assert_true(full > e2 + SEG / 2);
    bool granted;
    assert_int_equal(sk_timeline_vote(a, 2, &granted), 0);
    sk_timeline_close(a);
    char dir[PATH_MAX + 100];
    snprintf(dir, sizeof(dir), "%s/%s/%s", work, TENANT, TLID);
    sk_term_entry h[] = {{1, wal_start, 1}, {2, e2, 2}};

    int crashes = 0;
    for (int k = 1;; k++) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", work, tmpl, work);
        assert_int_equal(tu_run(cmd, NULL), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            sk_timeline *c;
            if (sk_timeline_open(dir, &c) != 0)
                _exit(2);
            lb_io_ops io = lb_io_default;
            io.fsync = crashing_fsync;
            io.rename = crashing_rename;
            crash_at = k;
            durable_ops = 0;
            lb_io = &io;
            int rc = sk_timeline_accept(c, 2, h, 2, e2, NULL, NULL);
            _exit(rc == 0 ? 1 : 3); /* no crash: every step has been tried */
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        int code = WEXITSTATUS(status);
        assert_true(code == 0 || code == 1);
        /* Whatever step it died at, the reopened timeline claims only WAL
         * it holds: every byte up to its end is the real WAL (the old log
         * before the truncation took effect, the agreed prefix after),
         * never zeros or a missing segment. */
        sk_timeline *r;
        assert_int_equal(sk_timeline_open(dir, &r), 0);
        lb_lsn end = sk_timeline_end_lsn(r);
        assert_true(end >= e2 && end <= full);
        size_t n = (size_t)(end - wal_start);
        char *back = malloc(n);
        int rrc = sk_timeline_read(r, wal_start, back, n, UINT64_MAX);
        if (rrc != 0 || memcmp(back, wal, n) != 0)
            fail_msg("crash at durable step %d: the timeline claims WAL up to %X/%X that it "
                     "does not hold (truncated at %X/%X): %s",
                     k, LB_LSN_ARGS(end), LB_LSN_ARGS(e2), rrc ? lb_strerror(rrc) : "bytes differ");
        free(back);
        /* and a retried accept finishes the job */
        assert_int_equal(sk_timeline_accept(r, 2, h, 2, e2, NULL, NULL), 0);
        assert_true(sk_timeline_end_lsn(r) == e2);
        sk_timeline_close(r);
        if (code == 1)
            break;
        crashes++;
    }
    assert_true(crashes >= 3); /* state, truncation and the final state at least */
    tu_rmdir(root);
}

/* A donor whose bytes do not decode (a flipped byte: the CRC) is not adopted. */
static int
fetch_corrupt(void *arg, lb_lsn from, lb_lsn to, uint32_t tli, void *buf)
{
    (void)arg;
    (void)tli;
    memcpy(buf, wal + (from - wal_start), (size_t)(to - from));
    if (to - from > 5000)
        ((char *)buf)[(to - from) / 2] ^= 0x01;
    return 0;
}

static void
test_accept_checks_donor_bytes_before_adopting_them(void **state)
{
    (void)state;
    char *root = tu_tempdir("tl");
    lb_lsn e2 = wal_start + 400000;
    /* a record boundary near e2: where a timeline fed that far ends */
    sk_timeline *a = written_timeline(root, e2, 40000);
    e2 = sk_timeline_end_lsn(a);
    sk_timeline_close(a);
    tu_rmdir(root);
    root = tu_tempdir("tl");
    sk_timeline *b = new_timeline(root, wal_start);
    sk_term_entry h[] = {{1, wal_start, 1}, {2, e2, 2}};
    assert_int_equal(sk_timeline_accept(b, 2, h, 2, e2, fetch_corrupt, NULL), LB_EPROTO);
    assert_true(sk_timeline_end_lsn(b) == wal_start);
    assert_int_equal(sk_timeline_state(b)->nhistory, 1); /* the new term not adopted */
    /* a donor cut inside a record: refused too */
    sk_term_entry h2[] = {{1, wal_start, 1}, {2, e2 - 8, 2}};
    int calls = 0;
    assert_int_equal(sk_timeline_accept(b, 2, h2, 2, e2 - 8, fetch_from_wal, &calls), LB_EPROTO);
    assert_true(sk_timeline_end_lsn(b) == wal_start);
    /* the true donor: adopted */
    assert_int_equal(sk_timeline_accept(b, 2, h, 2, e2, fetch_from_wal, &calls), 0);
    assert_true(sk_timeline_end_lsn(b) == e2);
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", sk_timeline_dir(b));
    sk_timeline_close(b);
    assert_int_equal(sk_timeline_open(dir, &b), 0);
    assert_true(sk_timeline_end_lsn(b) == e2);
    sk_timeline_close(b);
    tu_rmdir(root);
}

/* Directories fsynced while a timeline is created. */
static char synced_dirs[16][PATH_MAX];
static int nsynced;

static int
recording_fsync(int fd)
{
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n > 0 && nsynced < 16) {
        target[n] = '\0';
        snprintf(synced_dirs[nsynced++], PATH_MAX, "%s", target);
    }
    return fsync(fd);
}

static bool
was_synced(const char *path)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        return false;
    for (int i = 0; i < nsynced; i++)
        if (strcmp(synced_dirs[i], real) == 0)
            return true;
    return false;
}

static void
test_create_fsyncs_new_directories_into_their_parents(void **state)
{
    (void)state;
    char *root = tu_tempdir("tl");
    lb_io_ops io = lb_io_default;
    io.fsync = recording_fsync;
    nsynced = 0;
    lb_io = &io;
    sk_timeline *tl = new_timeline(root, wal_start);
    lb_io = &lb_io_default;
    char tenant_dir[PATH_MAX + 40];
    snprintf(tenant_dir, sizeof(tenant_dir), "%s/%s", root, TENANT);
    /* the tenant's directory entry in the data directory, and the
     * timeline's in the tenant's, are durable before the create answers */
    assert_true(was_synced(root));
    assert_true(was_synced(tenant_dir));
    assert_true(was_synced(sk_timeline_dir(tl)));
    sk_timeline_close(tl);
    tu_rmdir(root);
}

static void
test_consumers_that_stop_reporting_expire(void **state)
{
    (void)state;
    char *root = tu_tempdir("tl");
    sk_timeline *tl = new_timeline(root, wal_start);
    elect_first_term(tl, wal_start);
    /* every slot taken by consumers that then go away */
    for (int i = 0; i < SK_MAX_CONSUMERS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "gone-%d", i);
        assert_int_equal(sk_timeline_consumer(tl, name, wal_start), 0);
    }
    assert_int_equal(sk_timeline_consumer(tl, "new", wal_start), LB_ETOOBIG);
    assert_true(sk_timeline_removal_horizon(tl) <= wal_start);
    /* past their ttl they hold nothing back and their slots are free */
    sk_timeline_set_consumer_ttl(tl, 1);
    struct timespec nap = {0, 20 * 1000 * 1000};
    nanosleep(&nap, NULL);
    assert_true(sk_timeline_removal_horizon(tl) == sk_timeline_state(tl)->offloaded_lsn);
    assert_int_equal(sk_timeline_consumer(tl, "new", wal_start + 8), 0);
    assert_int_equal(sk_timeline_state(tl)->nconsumers, 1);
    assert_string_equal(sk_timeline_state(tl)->consumers[0].name, "new");
    sk_timeline_close(tl);
    tu_rmdir(root);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_end_is_a_record_boundary_and_survives_reopen),
        cmocka_unit_test(test_votes_are_durable_and_fence_older_terms),
        cmocka_unit_test(test_accept_truncates_divergent_tail_and_fetches_missing),
        cmocka_unit_test(test_commit_follows_majority_and_limits_reads),
        cmocka_unit_test(test_fsync_failure_breaks_the_timeline),
        cmocka_unit_test(test_create_validates_and_is_idempotent),
        cmocka_unit_test(test_state_that_fails_to_load_is_never_reinitialized),
        cmocka_unit_test(test_vote_for_int64_max_does_not_lock_the_timeline),
        cmocka_unit_test(test_crash_at_any_step_of_accept_never_claims_zeroed_wal),
        cmocka_unit_test(test_accept_checks_donor_bytes_before_adopting_them),
        cmocka_unit_test(test_create_fsyncs_new_directories_into_their_parents),
        cmocka_unit_test(test_consumers_that_stop_reporting_expire),
    };
    return cmocka_run_group_tests(tests, make_wal, drop_wal);
}
