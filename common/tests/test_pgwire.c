/*
 * test_pgwire.c: protocol framing round-trips, and hostile input (short,
 * oversized, unterminated, random) is refused without reading out of bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "pgwire.h"

static void
test_message_roundtrip(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    assert_int_equal(lb_pq_put_command_complete(&b, "SELECT 1"), 0);
    assert_int_equal(lb_pq_put_ready(&b, 'I'), 0);
    /* 'C' + len(4+9) + "SELECT 1\0", then 'Z' + len 5 + 'I' */
    assert_int_equal(b.len, 1 + 4 + 9 + 1 + 4 + 1);
    assert_int_equal((unsigned char)b.data[4], 13);

    lb_pq_msg m;
    size_t used;
    assert_int_equal(lb_pq_parse_msg(b.data, b.len, 0, &m, &used), 0);
    assert_int_equal(m.type, 'C');
    assert_int_equal(m.len, 9);
    assert_string_equal((const char *)m.body, "SELECT 1");
    assert_int_equal(lb_pq_parse_msg(b.data + used, b.len - used, 0, &m, &used), 0);
    assert_int_equal(m.type, 'Z');
    assert_int_equal(m.body[0], 'I');
    lb_buf_free(&b);
}

static void
test_message_needs_more_and_refuses_bad_lengths(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    lb_pq_put_command_complete(&b, "INSERT 0 1");
    lb_pq_msg m;
    size_t used;
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(lb_pq_parse_msg(b.data, n, 0, &m, &used), LB_ETRUNCATED);

    uint8_t bad_len[5] = {'d', 0, 0, 0, 3}; /* length below 4 */
    assert_int_equal(lb_pq_parse_msg(bad_len, 5, 0, &m, &used), LB_EPROTO);
    uint8_t huge[5] = {'d', 0x7f, 0xff, 0xff, 0xff};
    assert_int_equal(lb_pq_parse_msg(huge, 5, 0, &m, &used), LB_EPROTO);
    uint8_t over_limit[5] = {'d', 0, 0, 1, 4}; /* 256-byte body, limit 100 */
    assert_int_equal(lb_pq_parse_msg(over_limit, 5, 100, &m, &used), LB_EPROTO);
    lb_buf_free(&b);
}

static void
test_startup_roundtrip(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    const char *params[] = {"user", "alice", "database", "db1", "options", "endpoint=br-1", NULL};
    assert_int_equal(lb_pq_put_startup(&b, params), 0);
    lb_pq_startup st;
    size_t used;
    assert_int_equal(lb_pq_parse_startup(b.data, b.len, &st, &used), 0);
    assert_int_equal(used, b.len);
    assert_int_equal(st.kind, LB_PQ_STARTUP);
    assert_int_equal(st.protocol, LB_PQ_PROTOCOL_3_0);
    assert_int_equal(st.nparams, 3);
    assert_string_equal(lb_pq_startup_param(&st, "database"), "db1");
    assert_string_equal(lb_pq_startup_param(&st, "options"), "endpoint=br-1");
    assert_null(lb_pq_startup_param(&st, "replication"));
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(lb_pq_parse_startup(b.data, n, &st, &used), LB_ETRUNCATED);
    lb_buf_free(&b);
}

static void
put_raw_startup(lb_buf *b, int32_t code, const void *rest, size_t n)
{
    size_t start = b->len;
    lb_pq_put_i32(b, 0);
    lb_pq_put_i32(b, code);
    lb_pq_put_bytes(b, rest, n);
    lb_pq_end(b, start);
}

static void
test_startup_special_requests(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    lb_pq_startup st;
    size_t used;

    put_raw_startup(&b, LB_PQ_SSL_REQUEST, NULL, 0);
    assert_int_equal(lb_pq_parse_startup(b.data, b.len, &st, &used), 0);
    assert_int_equal(st.kind, LB_PQ_SSL);

    lb_buf_reset(&b);
    put_raw_startup(&b, LB_PQ_GSSENC_REQUEST, NULL, 0);
    assert_int_equal(lb_pq_parse_startup(b.data, b.len, &st, &used), 0);
    assert_int_equal(st.kind, LB_PQ_GSSENC);

    lb_buf_reset(&b);
    uint8_t cancel[8] = {0, 0, 0x30, 0x39, 0, 0, 0, 7}; /* pid 12345, key 7 */
    put_raw_startup(&b, LB_PQ_CANCEL_REQUEST, cancel, sizeof(cancel));
    assert_int_equal(lb_pq_parse_startup(b.data, b.len, &st, &used), 0);
    assert_int_equal(st.kind, LB_PQ_CANCEL);
    assert_int_equal(st.cancel_pid, 12345);
    assert_int_equal(st.cancel_key, 7);
    lb_buf_free(&b);
}

static void
test_startup_refuses_malformed(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    lb_pq_startup st;
    size_t used;

    put_raw_startup(&b, 2 << 16, "\0", 1); /* protocol 2.0 */
    assert_int_equal(lb_pq_parse_startup(b.data, b.len, &st, &used), LB_EPROTO);

    lb_buf_reset(&b);
    put_raw_startup(&b, LB_PQ_PROTOCOL_3_0, "user\0bob", 8); /* no terminators */
    assert_int_equal(lb_pq_parse_startup(b.data, b.len, &st, &used), LB_EPROTO);

    lb_buf_reset(&b);
    put_raw_startup(&b, LB_PQ_PROTOCOL_3_0, "user\0a\0user\0b\0\0", 15); /* duplicate */
    assert_int_equal(lb_pq_parse_startup(b.data, b.len, &st, &used), LB_EPROTO);

    lb_buf_reset(&b);
    put_raw_startup(&b, LB_PQ_PROTOCOL_3_0, "user\0a\0\0junk", 12); /* trailing bytes */
    assert_int_equal(lb_pq_parse_startup(b.data, b.len, &st, &used), LB_EPROTO);

    lb_buf_reset(&b);
    put_raw_startup(&b, LB_PQ_SSL_REQUEST, "xxxx", 4); /* SSLRequest of wrong length */
    assert_int_equal(lb_pq_parse_startup(b.data, b.len, &st, &used), LB_EPROTO);

    uint8_t too_long[8] = {0, 0, 0x30, 0, 0, 3, 0, 0}; /* 12288 > MAX_STARTUP */
    assert_int_equal(lb_pq_parse_startup(too_long, 8, &st, &used), LB_EPROTO);
    uint8_t too_short[8] = {0, 0, 0, 4, 0, 3, 0, 0};
    assert_int_equal(lb_pq_parse_startup(too_short, 8, &st, &used), LB_EPROTO);
    lb_buf_free(&b);
}

static void
test_error_response_roundtrip(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    assert_int_equal(
        lb_pq_put_error(&b, "FATAL", "57P01", "terminating connection", "The term is stale."), 0);
    lb_pq_msg m;
    size_t used;
    lb_pq_error e;
    assert_int_equal(lb_pq_parse_msg(b.data, b.len, 0, &m, &used), 0);
    assert_int_equal(lb_pq_parse_error(&m, &e), 0);
    assert_string_equal(e.severity, "FATAL");
    assert_string_equal(e.sqlstate, "57P01");
    assert_string_equal(e.message, "terminating connection");
    assert_string_equal(e.detail, "The term is stale.");

    /* Missing final terminator: refused. */
    lb_pq_msg cut = m;
    cut.len -= 1;
    assert_int_equal(lb_pq_parse_error(&cut, &e), LB_EPROTO);
    lb_buf_free(&b);
}

static void
test_replication_messages_roundtrip(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    const char wal[] = "0123456789abcdef";
    lb_pq_msg m;
    size_t used;
    lb_pq_repl r;

    assert_int_equal(lb_pq_put_xlogdata(&b, 0x1000028, 0x2000000, 777, wal, 16), 0);
    assert_int_equal(lb_pq_parse_msg(b.data, b.len, 0, &m, &used), 0);
    assert_int_equal(m.type, 'd');
    assert_int_equal(m.len, LB_PQ_XLOGDATA_HDR + 16);
    assert_int_equal(lb_pq_parse_repl(m.body, m.len, &r), 0);
    assert_int_equal(r.kind, 'w');
    assert_true(r.wal_start == 0x1000028 && r.wal_end == 0x2000000 && r.send_time == 777);
    assert_int_equal(r.wal_len, 16);
    assert_memory_equal(r.wal, wal, 16);

    lb_buf_reset(&b);
    assert_int_equal(lb_pq_put_keepalive(&b, 0xABCDEF, 5, true), 0);
    assert_int_equal(lb_pq_parse_msg(b.data, b.len, 0, &m, &used), 0);
    assert_int_equal(lb_pq_parse_repl(m.body, m.len, &r), 0);
    assert_int_equal(r.kind, 'k');
    assert_true(r.wal_end == 0xABCDEF && r.reply_requested);

    lb_buf_reset(&b);
    assert_int_equal(lb_pq_put_standby_status(&b, 30, 20, 10, 9, false), 0);
    assert_int_equal(lb_pq_parse_msg(b.data, b.len, 0, &m, &used), 0);
    assert_int_equal(lb_pq_parse_repl(m.body, m.len, &r), 0);
    assert_int_equal(r.kind, 'r');
    assert_true(r.write_lsn == 30 && r.flush_lsn == 20 && r.apply_lsn == 10);
    assert_false(r.reply_requested);
    /* A status update one byte short is refused, as is one byte long. */
    assert_int_equal(lb_pq_parse_repl(m.body, m.len - 1, &r), LB_EPROTO);
    lb_buf_free(&b);

    assert_int_equal(lb_pq_parse_repl("w", 1, &r), LB_EPROTO);
    assert_int_equal(lb_pq_parse_repl("?xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 40, &r),
                     LB_EPROTO);
    assert_int_equal(lb_pq_parse_repl("", 0, &r), LB_EPROTO);
}

static void
test_row_messages(void **state)
{
    (void)state;
    lb_buf b = LB_BUF_INIT;
    const char *names[] = {"systemid", "timeline", "xlogpos", "dbname"};
    const uint32_t oids[] = {25, 23, 25, 25};
    const char *values[] = {"7301", "1", "0/16B3F10", NULL};
    assert_int_equal(lb_pq_put_row_description(&b, 4, names, oids), 0);
    assert_int_equal(lb_pq_put_data_row(&b, 4, values), 0);
    lb_pq_msg m;
    size_t used;
    assert_int_equal(lb_pq_parse_msg(b.data, b.len, 0, &m, &used), 0);
    assert_int_equal(m.type, 'T');
    size_t off = used;
    assert_int_equal(lb_pq_parse_msg(b.data + off, b.len - off, 0, &m, &used), 0);
    assert_int_equal(m.type, 'D');
    lb_pq_reader r;
    lb_pq_reader_init(&r, m.body, m.len);
    int16_t ncols;
    int32_t len;
    const uint8_t *v;
    assert_int_equal(lb_pq_get_i16(&r, &ncols), 0);
    assert_int_equal(ncols, 4);
    assert_int_equal(lb_pq_get_i32(&r, &len), 0);
    assert_int_equal(len, 4);
    assert_int_equal(lb_pq_get_bytes(&r, 4, &v), 0);
    assert_memory_equal(v, "7301", 4);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(lb_pq_get_i32(&r, &len), 0);
        assert_int_equal(lb_pq_get_bytes(&r, (size_t)len, &v), 0);
    }
    assert_int_equal(lb_pq_get_i32(&r, &len), 0);
    assert_int_equal(len, -1); /* NULL dbname */
    assert_int_equal(r.left, 0);
    assert_int_equal(lb_pq_get_i32(&r, &len), LB_EPROTO);
    lb_buf_free(&b);
}

/* Random bytes through every parser: no crash, no read past the input (the
 * sanitizer build checks the latter), and consumed never exceeds n. */
static void
test_random_input_never_crashes(void **state)
{
    (void)state;
    srand(12345);
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(rand() % 64);
        uint8_t *p = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++)
            p[i] = (uint8_t)rand();
        if (n >= 5 && iter % 2) { /* make the length field plausible half the time */
            uint32_t len = (uint32_t)(rand() % (int)n);
            p[1] = 0, p[2] = 0, p[3] = (uint8_t)(len >> 8), p[4] = (uint8_t)len;
        }
        lb_pq_msg m;
        lb_pq_startup st;
        lb_pq_repl r;
        lb_pq_error e;
        size_t used = 0;
        if (lb_pq_parse_msg(p, n, 0, &m, &used) == 0) {
            assert_true(used <= n);
            lb_pq_parse_repl(m.body, m.len, &r);
            m.type = 'E';
            lb_pq_parse_error(&m, &e);
        }
        if (lb_pq_parse_startup(p, n, &st, &used) == 0)
            assert_true(used <= n);
        free(p);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_roundtrip),
        cmocka_unit_test(test_message_needs_more_and_refuses_bad_lengths),
        cmocka_unit_test(test_startup_roundtrip),
        cmocka_unit_test(test_startup_special_requests),
        cmocka_unit_test(test_startup_refuses_malformed),
        cmocka_unit_test(test_error_response_roundtrip),
        cmocka_unit_test(test_replication_messages_roundtrip),
        cmocka_unit_test(test_row_messages),
        cmocka_unit_test(test_random_input_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
