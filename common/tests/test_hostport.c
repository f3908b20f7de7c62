/* test_hostport.c: the one "host:port" parser takes names, IPv4 and
 * bracketed IPv6 (brackets dropped for libpq), and refuses every malformed
 * address with LB_EPARSE without touching its output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "errors.h"
#include "hostport.h"

static void
test_good(void **state)
{
    (void)state;
    lb_hostport a;
    assert_int_equal(lb_hostport_parse("127.0.0.1:5432", &a), 0);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 5432);
    assert_int_equal(lb_hostport_parse("sk-0.sk.svc:0", &a), 0);
    assert_string_equal(a.host, "sk-0.sk.svc");
    assert_int_equal(a.port, 0);
    assert_int_equal(lb_hostport_parse("[fe80::1]:65535", &a), 0);
    assert_string_equal(a.host, "fe80::1"); /* no brackets: libpq wants none */
    assert_int_equal(a.port, 65535);
    assert_int_equal(lb_hostport_parse("[::1]:00080", &a), 0);
    assert_int_equal(a.port, 80);
    char out[300];
    assert_int_equal(lb_hostport_format(&a, out, sizeof(out)), 0);
    assert_string_equal(out, "[::1]:80");
    assert_int_equal(lb_hostport_parse("db:5", &a), 0);
    assert_int_equal(lb_hostport_format(&a, out, sizeof(out)), 0);
    assert_string_equal(out, "db:5");
    assert_int_equal(lb_hostport_format(&a, out, 4), -ENAMETOOLONG);
}

static void
test_bad(void **state)
{
    (void)state;
    char longhost[300];
    memset(longhost, 'a', sizeof(longhost));
    strcpy(longhost + 280, ":80");
    const char *bad[] = {"",           ":80",     "host",     "host:",       "host:x",
                         "host:65536", "host:-1", "host:+80", "host: 80",    "host:80 ",
                         "::1:80",     "[::1]80", "[::1",     "::1]:80",     "[]:80",
                         "a b:1",      "a/b:1",   "[a]b]:1",  "host:123456", "a:1:2",
                         "a'b:1",      "a\\b:1",  "user@h:1", "h\n:1",       longhost};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lb_hostport a = {.host = "unchanged", .port = 7};
        if (lb_hostport_parse(bad[i], &a) != LB_EPARSE)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_string_equal(a.host, "unchanged");
        assert_int_equal(a.port, 7);
    }
    lb_hostport a;
    assert_int_equal(lb_hostport_parse(NULL, &a), LB_EPARSE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
