/*
 * test_repl_command.c: the walsender's parsing of startup options and
 * replication commands: every command a standby or pg_receivewal sends is
 * recognised with its arguments, and malformed, overlong or unknown input
 * is told apart (never half-parsed into a valid command); a peer
 * safekeeper's position messages round-trip and malformed ones are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "repl_command.h"

#define TENANT "0123456789abcdef0123456789abcdef"
#define TIMELINE "fedcba9876543210fedcba9876543210"

static sk_repl_command
parse(const char *q)
{
    sk_repl_command c;
    sk_repl_command_parse(q, &c);
    return c;
}

static void
test_options(void **state)
{
    (void)state;
    char t[SK_ID_LEN + 1], l[SK_ID_LEN + 1];
    sk_repl_options_parse("-c tenant_id=" TENANT " -c timeline_id=" TIMELINE, t, l);
    assert_string_equal(t, TENANT);
    assert_string_equal(l, TIMELINE);
    sk_repl_options_parse("--tenant_id=" TENANT " -ctimeline_id=" TIMELINE, t, l);
    assert_string_equal(t, TENANT);
    assert_string_equal(l, TIMELINE);
    sk_repl_options_parse(NULL, t, l);
    assert_string_equal(t, "");
    assert_string_equal(l, "");
    sk_repl_options_parse("-c application_name=x", t, l);
    assert_string_equal(t, "");
    /* Too long to be an id: not cut down to one that looks valid. */
    sk_repl_options_parse("-c tenant_id=" TENANT "00 -c timeline_id=" TIMELINE "x", t, l);
    assert_string_equal(t, "");
    assert_string_equal(l, "");
    /* Options longer than the parser's buffer are cut, never overrun. */
    char big[4096];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "-c tenant_id=", 13);
    sk_repl_options_parse(big, t, l);
    assert_string_equal(t, "");
}

static void
test_commands(void **state)
{
    (void)state;
    sk_repl_command c = parse("IDENTIFY_SYSTEM");
    assert_int_equal(c.kind, SK_REPL_IDENTIFY_SYSTEM);
    assert_int_equal(parse("  identify_system ;\n").kind, SK_REPL_IDENTIFY_SYSTEM);
    assert_int_equal(parse("").kind, SK_REPL_EMPTY);
    assert_int_equal(parse(" ;;\n").kind, SK_REPL_EMPTY);

    c = parse("TIMELINE_HISTORY 3");
    assert_int_equal(c.kind, SK_REPL_TIMELINE_HISTORY);
    assert_int_equal(c.tli, 3);
    c = parse("SHOW wal_segment_size;");
    assert_int_equal(c.kind, SK_REPL_SHOW);
    assert_string_equal(c.arg, "wal_segment_size");

    c = parse("START_REPLICATION 0/16B3F10");
    assert_int_equal(c.kind, SK_REPL_START_REPLICATION);
    assert_int_equal(c.start, 0x16B3F10);
    assert_int_equal(c.tli, 0);
    c = parse("START_REPLICATION SLOT s PHYSICAL 1/2 TIMELINE 7");
    assert_int_equal(c.kind, SK_REPL_START_REPLICATION);
    assert_int_equal(c.start, 0x100000002ULL);
    assert_int_equal(c.tli, 7);
    c = parse("start_replication physical A/0 timeline 4294967295");
    assert_int_equal(c.kind, SK_REPL_START_REPLICATION);
    assert_int_equal(c.tli, UINT32_MAX);

    assert_int_equal(parse("START_PEER_STREAM").kind, SK_REPL_START_PEER_STREAM);
    assert_int_equal(parse("start_peer_stream;").kind, SK_REPL_START_PEER_STREAM);
    assert_int_equal(parse("START_PEER_STREAM now").kind, SK_REPL_UNSUPPORTED);
}

static sk_peer_msg
peer_msg(void)
{
    sk_peer_msg m = {
        .term = 0x0102030405060708ULL, .last_log_term = 7, .flush_lsn = 0xFFFFFFFF00000001ULL};
    memcpy(m.tenant_id, TENANT, sizeof(TENANT));
    memcpy(m.timeline_id, TIMELINE, sizeof(TIMELINE));
    return m;
}

static void
test_peer_msg(void **state)
{
    (void)state;
    sk_peer_msg m = peer_msg(), back;
    uint8_t b[SK_PEER_MSG_LEN];
    sk_peer_msg_encode(&m, b);
    assert_int_equal(b[0], 'p');
    /* Big-endian, as every integer on the wire. */
    assert_int_equal(b[1 + 64], 0x01);
    assert_int_equal(b[1 + 64 + 7], 0x08);
    assert_int_equal(sk_peer_msg_parse(b, sizeof(b), &back), 0);
    assert_string_equal(back.tenant_id, TENANT);
    assert_string_equal(back.timeline_id, TIMELINE);
    assert_true(back.term == m.term && back.last_log_term == 7 && back.flush_lsn == m.flush_lsn);

    /* Every size but the one. */
    for (size_t n = 0; n < sizeof(b) + 2; n++)
        if (n != sizeof(b)) {
            uint8_t big[SK_PEER_MSG_LEN + 2] = {0};
            memcpy(big, b, n < sizeof(b) ? n : sizeof(b));
            assert_int_equal(sk_peer_msg_parse(big, n, &back), LB_EPARSE);
        }
    /* Wrong kind, ids that are not ids, a last log term past the term. */
    uint8_t bad[SK_PEER_MSG_LEN];
    memcpy(bad, b, sizeof(b));
    bad[0] = 'w';
    assert_int_equal(sk_peer_msg_parse(bad, sizeof(bad), &back), LB_EPARSE);
    const size_t id_bytes[] = {1, 32, 33, 64};
    const uint8_t junk[] = {'G', 'A', '\0', '/', 0xff};
    for (size_t i = 0; i < sizeof(id_bytes) / sizeof(id_bytes[0]); i++)
        for (size_t j = 0; j < sizeof(junk); j++) {
            memcpy(bad, b, sizeof(b));
            bad[id_bytes[i]] = junk[j];
            assert_int_equal(sk_peer_msg_parse(bad, sizeof(bad), &back), LB_EPARSE);
            assert_string_equal(back.tenant_id, "");
        }
    m = peer_msg();
    m.term = 6;
    sk_peer_msg_encode(&m, bad);
    assert_int_equal(sk_peer_msg_parse(bad, sizeof(bad), &back), LB_EPARSE);
    m.term = 7;
    sk_peer_msg_encode(&m, bad);
    assert_int_equal(sk_peer_msg_parse(bad, sizeof(bad), &back), 0);
}

static void
test_malformed(void **state)
{
    (void)state;
    const char *bad_timeline[] = {"TIMELINE_HISTORY 0", "TIMELINE_HISTORY x",
                                  "TIMELINE_HISTORY 4294967296", "TIMELINE_HISTORY -1",
                                  "TIMELINE_HISTORY 1x"};
    for (size_t i = 0; i < sizeof(bad_timeline) / sizeof(bad_timeline[0]); i++)
        assert_int_equal(parse(bad_timeline[i]).kind, SK_REPL_BAD_TIMELINE);

    const char *bad_start[] = {
        "START_REPLICATION",
        "START_REPLICATION PHYSICAL",
        "START_REPLICATION PHYSICAL 0/1G",
        "START_REPLICATION PHYSICAL 1/",
        "START_REPLICATION PHYSICAL 123456789/0",
        "START_REPLICATION PHYSICAL 0/1 TIMELINE",
        "START_REPLICATION PHYSICAL 0/1 TIMELINE 0",
        "START_REPLICATION PHYSICAL 0/1 TIMELINE x",
        "START_REPLICATION PHYSICAL 0/1 TIMELINE 4294967296",
        "START_REPLICATION PHYSICAL 0/1 TIMELINE 1 extra",
        "START_REPLICATION PHYSICAL 0/1 LOGICAL",
        "START_REPLICATION SLOT",
        "START_REPLICATION SLOT s",
        "START_REPLICATION SLOT s PHYSICAL 0/1 TIMELINE 1 extra",
    };
    for (size_t i = 0; i < sizeof(bad_start) / sizeof(bad_start[0]); i++)
        assert_int_equal(parse(bad_start[i]).kind, SK_REPL_BAD_SYNTAX);

    const char *unsupported[] = {"SELECT 1",         "BASE_BACKUP", "IDENTIFY_SYSTEM now",
                                 "TIMELINE_HISTORY", "SHOW",        "SHOW a b",
                                 "\x01\x02"};
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
        assert_int_equal(parse(unsupported[i]).kind, SK_REPL_UNSUPPORTED);
}

static void
test_overlong(void **state)
{
    (void)state;
    /* A query far longer than the parser's buffer is cut, and the text
     * kept for the error message stays NUL-terminated. */
    char q[10000];
    memset(q, 'x', sizeof(q) - 1);
    q[sizeof(q) - 1] = '\0';
    sk_repl_command c = parse(q);
    assert_int_equal(c.kind, SK_REPL_UNSUPPORTED);
    assert_true(strlen(c.text) < sizeof(c.text));
    /* A 70-character word is not taken for a shorter valid one. */
    snprintf(q, sizeof(q), "SHOW %070d", 0);
    assert_int_not_equal(parse(q).kind, SK_REPL_SHOW);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),   cmocka_unit_test(test_commands),
        cmocka_unit_test(test_malformed), cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_peer_msg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
