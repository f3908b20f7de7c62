/*
 * test_timeline.c: the dirty blocks of a lake run, from a WAL block index
 * (here a fake one with the pageserver index's query contract) and the
 * pending state carried between runs. Blocks changed in [L, P) are dirty,
 * but for records that only set hint or visibility-map bits and forks
 * other than main; blocks of a transaction open at a run become dirty at
 * the run in which it (or the transaction it is a subtransaction of) ends;
 * an unreadable state starts over from the index's beginning; an index
 * error and an index that does not reach P are clear errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "testutil.h"
#include "wal.h"
#include "ltap/timeline.h"

#define SPC 1663
#define DB 5
#define REL 16384
#define PREFIX "tenant/timeline"

typedef struct fake_index {
    ps_walindex_change changes[32];
    size_t nchanges;
    ps_walindex_xact xacts[16];
    size_t nxacts;
    uint32_t subs[16][4];
    lb_lsn resume;
    int fail; /* returned by changes() when set */
    int locked;
} fake_index;

static int
fake_with(void *owner, int (*fn)(void *arg, ps_walindex *ix), void *arg)
{
    fake_index *f = owner;
    assert_int_equal(f->locked, 0);
    f->locked = 1;
    int rc = fn(arg, (ps_walindex *)f);
    f->locked = 0;
    return rc;
}

static int
fake_changes(ps_walindex *ix, lb_lsn from, lb_lsn to, ps_walindex_change_cb cb, void *arg)
{
    fake_index *f = (fake_index *)ix;
    assert_int_equal(f->locked, 1);
    if (f->fail)
        return f->fail;
    for (size_t i = 0; i < f->nchanges; i++)
        if (f->changes[i].lsn >= from && f->changes[i].lsn < to) {
            int rc = cb(arg, &f->changes[i]);
            if (rc)
                return rc;
        }
    return 0;
}

static int
fake_xacts(ps_walindex *ix, lb_lsn from, lb_lsn to, ps_walindex_xact_cb cb, void *arg)
{
    fake_index *f = (fake_index *)ix;
    assert_int_equal(f->locked, 1);
    for (size_t i = 0; i < f->nxacts; i++)
        if (f->xacts[i].lsn >= from && f->xacts[i].lsn < to) {
            int rc = cb(arg, &f->xacts[i]);
            if (rc)
                return rc;
        }
    return 0;
}

static lb_lsn
fake_resume(const ps_walindex *ix)
{
    return ((const fake_index *)ix)->resume;
}

static const char *
fake_errmsg(const ps_walindex *ix)
{
    (void)ix;
    return "corrupt WAL index file \"0000000000000001.walidx\": bad frame";
}

static ltap_index_access
access_of(fake_index *f)
{
    return (ltap_index_access){.owner = f,
                               .with_index = fake_with,
                               .changes = fake_changes,
                               .xacts = fake_xacts,
                               .resume_lsn = fake_resume,
                               .errmsg = fake_errmsg};
}

static void
change(fake_index *f, lb_lsn lsn, uint32_t xid, uint32_t top, uint8_t rmid, uint8_t info,
       uint8_t fork, uint32_t blkno)
{
    f->changes[f->nchanges++] = (ps_walindex_change){
        .lsn = lsn,
        .end_lsn = lsn + 8,
        .xid = xid,
        .toplevel_xid = top,
        .rmid = rmid,
        .info = info,
        .block = {.spc = SPC, .db = DB, .rel = REL, .fork = fork, .blkno = blkno}};
}

static void
xact(fake_index *f, ps_walindex_xact_kind kind, lb_lsn lsn, uint32_t xid, uint32_t sub)
{
    size_t i = f->nxacts++;
    f->subs[i][0] = sub;
    f->xacts[i] = (ps_walindex_xact){.kind = kind,
                                     .lsn = lsn,
                                     .end_lsn = lsn + 8,
                                     .xid = xid,
                                     .nsubxacts = sub ? 1 : 0,
                                     .subxacts = f->subs[i]};
}

static bool
dirty(ltap_dirty *d, uint32_t first, uint32_t n)
{
    return ltap_dirty_test(d, SPC, DB, REL, first, n, 0) == 1;
}

static lake_store *
store_in(const char *dir)
{
    char url[PATH_MAX + 16];
    snprintf(url, sizeof(url), "file://%s", dir);
    lake_store *st = NULL;
    lb_err err = {0};
    if (lake_store_open(url, NULL, &st, &err))
        fail_msg("store: %s", err.message);
    return st;
}

static ltap_dirty *
build(fake_index *f, lake_store *st, lb_lsn p)
{
    ltap_index_access ia = access_of(f);
    ltap_dirty *d = NULL;
    lb_err err = {0};
    int rc = ltap_dirty_build(&ia, st, PREFIX, p, 1000, &d, &err);
    if (rc)
        fail_msg("build: %s (%s)", err.message, lb_strerror(rc));
    return d;
}

static void
save(ltap_dirty *d, lake_store *st)
{
    lb_err err = {0};
    if (ltap_dirty_save(d, st, PREFIX, &err))
        fail_msg("save: %s", err.message);
    ltap_dirty_free(d);
}

static void
test_pending_carried_until_the_transaction_ends(void **state)
{
    (void)state;
    char *dir = tu_tempdir("ltap-timeline");
    lake_store *st = store_in(dir);
    fake_index f = {.resume = 1000};
    change(&f, 100, 10, 0, 10, 0x00, LB_FORK_MAIN, 3); /* xid 10, open at P1 */
    change(&f, 110, 11, 0, 10, 0x00, LB_FORK_MAIN, 7); /* xid 11, commits at 120 */
    xact(&f, PS_WALINDEX_COMMIT, 120, 11, 0);
    change(&f, 130, 0, 0, 0, 0xA0, LB_FORK_MAIN, 9);     /* hint-bit FPI */
    change(&f, 140, 0, 0, 9, 0x40, LB_FORK_MAIN, 11);    /* visibility-map bit */
    change(&f, 150, 12, 0, 10, 0x00, 1, 13);             /* FSM fork */
    change(&f, 160, 20, 21, 10, 0x00, LB_FORK_MAIN, 15); /* subxact 20 of 21, open */
    change(&f, 170, 30, 0, 10, 0x00, LB_FORK_MAIN, 17);  /* aborts at 180 */
    xact(&f, PS_WALINDEX_ABORT, 180, 30, 0);

    ltap_dirty *d = build(&f, st, 1000);
    assert_int_equal(ltap_dirty_from(d), 0);
    assert_true(dirty(d, 3, 1) && dirty(d, 7, 1) && dirty(d, 15, 1) && dirty(d, 17, 1));
    assert_false(dirty(d, 9, 1) || dirty(d, 11, 1) || dirty(d, 13, 1));
    assert_false(dirty(d, 0, 3)); /* blocks 0..2 */
    assert_true(dirty(d, 0, 4));  /* 0..3 */
    assert_false(dirty(d, 8, 2)); /* 8, 9 */
    assert_int_equal(ltap_dirty_test(d, SPC, DB, REL + 1, 0, 100, 0), 0);
    assert_int_equal(ltap_dirty_pending(d), 2); /* 10 -> 3, 21 -> 15 */
    save(d, st);

    /* Run 2: xid 10 turns out to be a subtransaction of 5, which commits;
     * 21 is still open. */
    f.resume = 2000;
    change(&f, 1100, 40, 0, 10, 0x00, LB_FORK_MAIN, 50);
    xact(&f, PS_WALINDEX_COMMIT, 1110, 40, 0);
    xact(&f, PS_WALINDEX_COMMIT, 1200, 5, 10);
    d = build(&f, st, 2000);
    assert_int_equal(ltap_dirty_from(d), 1000);
    assert_true(dirty(d, 3, 1) && dirty(d, 50, 1));
    assert_false(dirty(d, 7, 1) || dirty(d, 15, 1) || dirty(d, 17, 1));
    assert_int_equal(ltap_dirty_pending(d), 1);
    save(d, st);

    /* Run 3: 21 aborts: its block is dirty once, then nothing is pending. */
    f.resume = 3000;
    xact(&f, PS_WALINDEX_ABORT, 2500, 21, 0);
    d = build(&f, st, 3000);
    assert_true(dirty(d, 15, 1));
    assert_false(dirty(d, 3, 1) || dirty(d, 50, 1));
    assert_int_equal(ltap_dirty_pending(d), 0);
    save(d, st);

    lake_store_close(st);
    tu_rmdir(dir);
}

static void
test_unreadable_state_starts_over(void **state)
{
    (void)state;
    char *dir = tu_tempdir("ltap-timeline");
    lake_store *st = store_in(dir);
    fake_index f = {.resume = 1000};
    change(&f, 100, 10, 0, 10, 0x00, LB_FORK_MAIN, 3);
    xact(&f, PS_WALINDEX_COMMIT, 110, 10, 0);
    save(build(&f, st, 1000), st);
    const char *junk = "{\"lsn\": \"not an lsn\", \"pending\": [1, 2]}";
    assert_int_equal(lake_store_put(st, PREFIX "/lake/_ltap_pending.json", junk, strlen(junk)), 0);
    f.resume = 2000;
    ltap_dirty *d = build(&f, st, 2000);
    assert_int_equal(ltap_dirty_from(d), 0);
    assert_true(dirty(d, 3, 1)); /* from before the lost state's L */
    ltap_dirty_free(d);
    lake_store_close(st);
    tu_rmdir(dir);
}

static void
test_index_errors(void **state)
{
    (void)state;
    char *dir = tu_tempdir("ltap-timeline");
    lake_store *st = store_in(dir);
    fake_index f = {.resume = 1000, .fail = LB_ECRC};
    ltap_index_access ia = access_of(&f);
    ltap_dirty *d = NULL;
    lb_err err = {0};
    assert_int_equal(ltap_dirty_build(&ia, st, PREFIX, 1000, 1000, &d, &err), LB_ECRC);
    assert_null(d);
    assert_non_null(strstr(err.message, "WAL index: corrupt WAL index file"));

    /* An index that stays behind P: a timeout that says where it is. */
    f.fail = 0;
    f.resume = 500;
    assert_int_equal(ltap_dirty_build(&ia, st, PREFIX, 1000, 120, &d, &err), LB_ETIMEOUT);
    assert_null(d);
    assert_non_null(strstr(err.message, "not yet at the snapshot's 0/3E8"));
    lake_store_close(st);
    tu_rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pending_carried_until_the_transaction_ends),
        cmocka_unit_test(test_unreadable_state_starts_over),
        cmocka_unit_test(test_index_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
