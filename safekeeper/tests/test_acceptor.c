/*
 * test_acceptor.c: the acceptor state survives a save/load round trip, a
 * corrupted or inconsistent state file is refused (never guessed), votes
 * are granted only for higher terms, and the history helpers find where
 * two logs diverge.
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

#include "acceptor.h"
#include "errors.h"
#include "fileio.h"
#include "testutil.h"

#define TENANT "0123456789abcdef0123456789abcdef"
#define TIMELINE "fedcba9876543210fedcba9876543210"

static void
sample(sk_acceptor_state *st)
{
    sk_acceptor_init(st, TENANT, TIMELINE, 7301234567890123456ULL, 16 * 1024 * 1024, 0x1000028, 1);
    st->term = 5;
    st->history[0] = (sk_term_entry){1, 0x1000028, 2};
    st->history[1] = (sk_term_entry){3, 0x3000100, 3};
    st->nhistory = 2;
    st->flush_lsn = 0x3001000;
    st->commit_lsn = 0x3000F00;
    st->offloaded_lsn = 0x2000000;
}

static void
test_save_load_roundtrip(void **state)
{
    (void)state;
    char *dir = tu_tempdir("acceptor");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/safekeeper.state", dir);
    sk_acceptor_state a, b;
    sample(&a);
    assert_int_equal(sk_acceptor_save(path, &a), 0);
    assert_int_equal(sk_acceptor_load(path, &b), 0);
    assert_string_equal(b.tenant_id, TENANT);
    assert_string_equal(b.timeline_id, TIMELINE);
    assert_true(b.system_id == 7301234567890123456ULL); /* above 2^53: kept exact */
    assert_int_equal(b.term, 5);
    assert_true(b.start_lsn == 0x1000028);
    assert_int_equal(b.start_tli, 1);
    assert_int_equal(b.nhistory, 2);
    assert_memory_equal(b.history, a.history, 2 * sizeof(sk_term_entry));
    assert_true(b.flush_lsn == a.flush_lsn && b.commit_lsn == a.commit_lsn &&
                b.offloaded_lsn == a.offloaded_lsn);
    tu_rmdir(dir);
}

static int
save_text(const char *path, const char *text)
{
    return lb_write_file_atomic(path, text, strlen(text));
}

static void
test_corruption_is_refused(void **state)
{
    (void)state;
    char *dir = tu_tempdir("acceptor");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/safekeeper.state", dir);
    sk_acceptor_state a, b;
    sample(&a);
    assert_int_equal(sk_acceptor_save(path, &a), 0);

    /* Flip the term from 5 to 6 without fixing the checksum. */
    lb_buf text = LB_BUF_INIT;
    assert_int_equal(lb_read_file(path, &text), 0);
    char *t = strstr(text.data, "\"term\": 5");
    assert_non_null(t);
    t[8] = '6';
    assert_int_equal(save_text(path, text.data), 0);
    assert_int_equal(sk_acceptor_load(path, &b), LB_ECRC);

    /* Truncated file (a torn write that bypassed the atomic rename). */
    text.data[text.len / 2] = '\0';
    assert_int_equal(save_text(path, text.data), 0);
    assert_int_equal(sk_acceptor_load(path, &b), LB_EPARSE);

    assert_int_equal(save_text(path, "[]"), 0);
    assert_int_equal(sk_acceptor_load(path, &b), LB_EPARSE);
    assert_int_equal(save_text(path, "{\"version\": 1}"), 0);
    assert_int_equal(sk_acceptor_load(path, &b), LB_EPARSE);

    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(sk_acceptor_load(path, &b), -ENOENT);
    lb_buf_free(&text);
    tu_rmdir(dir);
}

static void
test_inconsistent_state_is_refused(void **state)
{
    (void)state;
    char *dir = tu_tempdir("acceptor");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/safekeeper.state", dir);
    sk_acceptor_state a, b;

    /* A log term above the promised term breaks the protocol's invariant. */
    sample(&a);
    a.term = 2;
    assert_int_equal(sk_acceptor_save(path, &a), 0);
    assert_int_equal(sk_acceptor_load(path, &b), LB_EPARSE);

    /* History out of order. */
    sample(&a);
    a.history[1].term = 1;
    assert_int_equal(sk_acceptor_save(path, &a), 0);
    assert_int_equal(sk_acceptor_load(path, &b), LB_EPARSE);

    sample(&a);
    a.history[1].start_lsn = 0x100;
    assert_int_equal(sk_acceptor_save(path, &a), 0);
    assert_int_equal(sk_acceptor_load(path, &b), LB_EPARSE);

    /* History before the timeline's start. */
    sample(&a);
    a.start_lsn = 0x2000000;
    assert_int_equal(sk_acceptor_save(path, &a), 0);
    assert_int_equal(sk_acceptor_load(path, &b), LB_EPARSE);

    /* Bad ids. */
    sample(&a);
    strcpy(a.tenant_id, "not-hex");
    assert_int_equal(sk_acceptor_save(path, &a), 0);
    assert_int_equal(sk_acceptor_load(path, &b), LB_EPARSE);
    tu_rmdir(dir);
}

static void
test_vote_only_for_higher_terms(void **state)
{
    (void)state;
    sk_acceptor_state st;
    sample(&st);
    assert_false(sk_acceptor_vote(&st, 4)); /* stale */
    assert_false(sk_acceptor_vote(&st, 5)); /* same term: already promised */
    assert_int_equal(st.term, 5);
    assert_true(sk_acceptor_vote(&st, 6));
    assert_int_equal(st.term, 6);
    assert_false(sk_acceptor_vote(&st, 6));
    assert_int_equal(sk_last_log_term(&st), 3);
}

static void
test_donor_order(void **state)
{
    (void)state;
    /* A higher last log term wins even with less WAL. */
    assert_true(sk_donor_cmp(3, 0x100, 2, 0x900) > 0);
    assert_true(sk_donor_cmp(3, 0x100, 3, 0x900) < 0);
    assert_int_equal(sk_donor_cmp(3, 0x100, 3, 0x100), 0);
}

static void
test_history_common_end(void **state)
{
    (void)state;
    sk_term_entry base[] = {{1, 0x100, 2}, {3, 0x500, 3}};
    /* Same history, different flush: the shorter one. */
    assert_true(sk_history_common_end(base, 2, 0x900, base, 2, 0x700) == 0x700);
    /* Mine stopped in term 1 with a tail past term 3's start: diverges at 0x500. */
    sk_term_entry old[] = {{1, 0x100, 2}};
    assert_true(sk_history_common_end(old, 1, 0x800, base, 2, 0x900) == 0x500);
    /* Mine wrote term 2 (never elected by the others' history) from 0x400. */
    sk_term_entry forked[] = {{1, 0x100, 2}, {2, 0x400, 3}};
    assert_true(sk_history_common_end(forked, 2, 0x600, base, 2, 0x900) == 0x400);
    /* Nothing in common. */
    sk_term_entry other[] = {{4, 0x100, 2}};
    assert_true(sk_history_common_end(other, 1, 0x600, base, 2, 0x900) == 0);
    assert_true(sk_history_common_end(NULL, 0, 0, base, 2, 0x900) == 0);

    assert_int_equal(sk_history_tli_at(base, 2, 0x50), 0);
    assert_int_equal(sk_history_tli_at(base, 2, 0x100), 2);
    assert_int_equal(sk_history_tli_at(base, 2, 0x4FF), 2);
    assert_int_equal(sk_history_tli_at(base, 2, 0x500), 3);
}

static void
test_history_json_validation(void **state)
{
    (void)state;
    sk_term_entry h[4];
    size_t n;
    char msg[200];
    json_error_t e;
    json_t *ok = json_loads("[{\"term\":1,\"lsn\":\"0/100\",\"tli\":2},"
                            "{\"term\":2,\"lsn\":\"0/200\",\"tli\":3}]",
                            0, &e);
    assert_int_equal(sk_term_history_from_json(ok, h, 4, &n, msg, sizeof(msg)), 0);
    assert_int_equal(n, 2);
    assert_true(h[1].start_lsn == 0x200 && h[1].tli == 3);
    json_decref(ok);

    const char *bad[] = {
        "{}",
        "[{\"term\":1,\"lsn\":\"0/1G\",\"tli\":2}]",
        "[{\"term\":0,\"lsn\":\"0/100\",\"tli\":2}]",
        "[{\"term\":1,\"lsn\":\"0/100\"}]",
        "[{\"term\":2,\"lsn\":\"0/100\",\"tli\":2},{\"term\":1,\"lsn\":\"0/200\",\"tli\":3}]",
        "[{\"term\":1,\"lsn\":\"0/100\",\"tli\":2},{\"term\":2,\"lsn\":\"0/100\",\"tli\":3},"
        "{\"term\":3,\"lsn\":\"0/300\",\"tli\":4},{\"term\":4,\"lsn\":\"0/400\",\"tli\":5},"
        "{\"term\":5,\"lsn\":\"0/500\",\"tli\":6}]", /* more than cap */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = json_loads(bad[i], 0, &e);
        assert_non_null(j);
        msg[0] = '\0';
        assert_int_equal(sk_term_history_from_json(j, h, 4, &n, msg, sizeof(msg)), LB_EPARSE);
        assert_true(strlen(msg) > 0);
        json_decref(j);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_save_load_roundtrip),
        cmocka_unit_test(test_corruption_is_refused),
        cmocka_unit_test(test_inconsistent_state_is_refused),
        cmocka_unit_test(test_vote_only_for_higher_terms),
        cmocka_unit_test(test_donor_order),
        cmocka_unit_test(test_history_common_end),
        cmocka_unit_test(test_history_json_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
