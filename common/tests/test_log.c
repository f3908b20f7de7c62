/*
 * test_log.c: one event is one line with time, level, component and the
 * key=value message; levels filter; line breaks are escaped; long messages
 * are cut, not split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"

static int pipefd[2];

static int
setup(void **state)
{
    (void)state;
    if (pipe(pipefd) != 0)
        return -1;
    lb_log_set_fd(pipefd[1]);
    lb_log_init("testcomp", LB_LOG_INFO);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    lb_log_set_fd(2);
    close(pipefd[0]);
    close(pipefd[1]);
    return 0;
}

/* Everything written so far (the pipe is large enough for these tests). */
static char *
drain(void)
{
    static char buf[65536];
    lb_log_set_fd(-1);
    close(pipefd[1]);
    ssize_t n = read(pipefd[0], buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void
test_line_format(void **state)
{
    (void)state;
    lb_info("segment offloaded timeline=%s lsn=%X/%X", "abc", 0u, 0x16B3F10u);
    char *out = drain();
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                             "info testcomp: segment offloaded timeline=abc lsn=0/16B3F10\n$",
                             REG_EXTENDED),
                     0);
    assert_int_equal(regexec(&re, out, 0, NULL, 0), 0);
    regfree(&re);
}

static void
test_levels_filter(void **state)
{
    (void)state;
    lb_debug("hidden");
    lb_warn("shown warn");
    lb_log_set_level(LB_LOG_DEBUG);
    lb_debug("shown debug");
    lb_log_set_level(LB_LOG_ERROR);
    lb_warn("hidden too");
    lb_error("shown error");
    char *out = drain();
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, " warn testcomp: shown warn\n"));
    assert_non_null(strstr(out, " debug testcomp: shown debug\n"));
    assert_non_null(strstr(out, " error testcomp: shown error\n"));
}

static void
test_newlines_escaped(void **state)
{
    (void)state;
    lb_info("first\nsecond\r\nthird");
    char *out = drain();
    assert_non_null(strstr(out, "first\\nsecond\\r\\nthird\n"));
    int lines = 0;
    for (char *p = out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 1);
}

static void
test_long_message_cut_on_one_line(void **state)
{
    (void)state;
    char *big = malloc(10000);
    memset(big, 'x', 9999);
    big[9999] = '\0';
    lb_info("%s", big);
    free(big);
    char *out = drain();
    size_t n = strlen(out);
    assert_true(n < 5000);
    assert_int_equal(out[n - 1], '\n');
    assert_non_null(strstr(out, "x...\n"));
}

static void
test_level_names(void **state)
{
    (void)state;
    lb_log_level l;
    assert_int_equal(lb_log_level_parse("DEBUG", &l), 0);
    assert_int_equal(l, LB_LOG_DEBUG);
    assert_int_equal(lb_log_level_parse("warning", &l), 0);
    assert_int_equal(l, LB_LOG_WARN);
    assert_int_equal(lb_log_level_parse("verbose", &l), LB_EPARSE);
    assert_string_equal(lb_log_level_name(LB_LOG_ERROR), "error");
    drain();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newlines_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_message_cut_on_one_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
