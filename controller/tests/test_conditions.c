/* test_conditions.c: conditions after the API conventions (transition time
 * kept unless status changes, observedGeneration, CamelCase reasons) and
 * RFC 3339 times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "conditions.h"
#include "errors.h"

static const char *
field(json_t *conds, const char *type, const char *name)
{
    return json_string_value(json_object_get(ctl_condition_get(conds, type), name));
}

static void
test_transition_time_changes_only_with_status(void **state)
{
    (void)state;
    json_t *c = json_array();
    assert_int_equal(ctl_condition_set(c, "Ready", "False", "Creating", "wait", 1, "T1"), 0);
    assert_string_equal(field(c, "Ready", "lastTransitionTime"), "T1");
    /* same status, new reason, message and generation: time kept */
    assert_int_equal(ctl_condition_set(c, "Ready", "False", "StillCreating", "more", 2, "T2"), 0);
    assert_string_equal(field(c, "Ready", "lastTransitionTime"), "T1");
    assert_string_equal(field(c, "Ready", "reason"), "StillCreating");
    assert_string_equal(field(c, "Ready", "message"), "more");
    assert_int_equal(
        json_integer_value(json_object_get(ctl_condition_get(c, "Ready"), "observedGeneration")),
        2);
    /* status flips: time moves */
    assert_int_equal(ctl_condition_set(c, "Ready", "True", "ClusterReady", "", 2, "T3"), 0);
    assert_string_equal(field(c, "Ready", "lastTransitionTime"), "T3");
    assert_true(ctl_condition_true(c, "Ready"));
    assert_int_equal(json_array_size(c), 1);
    json_decref(c);
}

static void
test_order_kept_and_types_independent(void **state)
{
    (void)state;
    json_t *c = json_array();
    ctl_condition_set(c, "Ready", "False", "A", "", 1, "T1");
    ctl_condition_set(c, "SafekeepersReady", "True", "B", "", 1, "T1");
    ctl_condition_set(c, "Ready", "True", "C", "", 1, "T2");
    assert_int_equal(json_array_size(c), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(c, 0), "type")), "Ready");
    assert_string_equal(field(c, "SafekeepersReady", "lastTransitionTime"), "T1");
    assert_false(ctl_condition_true(c, "ProxyReady"));
    json_decref(c);
}

static void
test_refuses_bad_reason_and_status(void **state)
{
    (void)state;
    json_t *c = json_array();
    assert_int_equal(ctl_condition_set(c, "Ready", "False", "not camel", "", 1, "T"), -EINVAL);
    assert_int_equal(ctl_condition_set(c, "Ready", "False", "lower", "", 1, "T"), -EINVAL);
    assert_int_equal(ctl_condition_set(c, "Ready", "False", "", "", 1, "T"), -EINVAL);
    assert_int_equal(ctl_condition_set(c, "Ready", "Maybe", "Ok", "", 1, "T"), -EINVAL);
    assert_int_equal(ctl_condition_set(NULL, "Ready", "True", "Ok", "", 1, "T"), -EINVAL);
    assert_int_equal(json_array_size(c), 0);
    assert_true(ctl_reason_valid("HasChildBranches"));
    assert_false(ctl_reason_valid("Has_Child"));
    json_decref(c);
}

static void
test_rfc3339(void **state)
{
    (void)state;
    int64_t s;
    assert_int_equal(ctl_rfc3339_parse("1970-01-01T00:00:10Z", &s), 0);
    assert_int_equal(s, 10);
    assert_int_equal(ctl_rfc3339_parse("2026-12-04T23:41:09.123456Z", &s), 0);
    char buf[40];
    ctl_time_rfc3339(s, buf, sizeof(buf));
    assert_string_equal(buf, "2026-12-04T23:41:09Z");
    int64_t s2;
    assert_int_equal(ctl_rfc3339_parse("2026-12-05T00:41:09+01:00", &s2), 0);
    assert_int_equal(s, s2);
    const char *bad[] = {"",
                         "2026-12-04",
                         "2026-12-04T23:41:09",
                         "2026-13-04T23:41:09Z",
                         "2026-12-04T23:41:09Zjunk",
                         "2026-12-04T23:41:09.Z",
                         "yesterday",
                         "2026-12-04T23:41:09+1:00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ctl_rfc3339_parse(bad[i], &s), LB_EPARSE);
    assert_int_equal(ctl_rfc3339_parse(NULL, &s), LB_EPARSE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transition_time_changes_only_with_status),
        cmocka_unit_test(test_order_kept_and_types_independent),
        cmocka_unit_test(test_refuses_bad_reason_and_status),
        cmocka_unit_test(test_rfc3339),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
