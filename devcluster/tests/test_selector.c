/*
 * test_selector.c: label and field selector parsing and matching, and
 * label selector objects (matchLabels, matchExpressions).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "selector.h"

static json_t *pod;

static int
setup(void **state)
{
    (void)state;
    json_error_t e;
    pod = json_loads(
        "{\"metadata\":{\"name\":\"p1\",\"namespace\":\"ns\",\"labels\":{"
        "\"app\":\"web\",\"tier\":\"front\",\"example.com/team\":\"a\"}},"
        "\"spec\":{\"nodeName\":\"n1\",\"replicas\":3},\"status\":{\"phase\":\"Running\"}}",
        0, &e);
    return pod ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    json_decref(pod);
    return 0;
}

static bool
labels(const char *text)
{
    dc_selector *s;
    char err[256];
    if (dc_selector_parse_labels(text, &s, err, sizeof err) != 0)
        fail_msg("parse \"%s\": %s", text, err);
    bool m = dc_selector_matches(s, pod);
    dc_selector_free(s);
    return m;
}

static bool
fields(const char *text)
{
    dc_selector *s;
    char err[256];
    if (dc_selector_parse_fields(text, &s, err, sizeof err) != 0)
        fail_msg("parse \"%s\": %s", text, err);
    bool m = dc_selector_matches(s, pod);
    dc_selector_free(s);
    return m;
}

static void
test_label_selectors(void **state)
{
    (void)state;
    assert_true(labels(NULL));
    assert_true(labels(""));
    assert_true(labels("app=web"));
    assert_true(labels("app==web,tier=front"));
    assert_false(labels("app=web,tier=back"));
    assert_true(labels("app!=db"));
    assert_false(labels("app!=web"));
    assert_true(labels("app in (db, web)"));
    assert_false(labels("app notin (db,web)"));
    assert_true(labels("tier"));
    assert_false(labels("!tier"));
    assert_true(labels("!missing"));
    assert_false(labels("missing"));
    assert_true(labels("missing!=x")); /* a missing label is != anything */
    assert_true(labels("example.com/team=a"));
}

static void
test_field_selectors(void **state)
{
    (void)state;
    assert_true(fields("metadata.name=p1"));
    assert_false(fields("metadata.name=p2"));
    assert_true(fields("metadata.namespace==ns,spec.nodeName=n1"));
    assert_true(fields("status.phase!=Pending"));
    assert_true(fields("spec.replicas=3"));
    assert_true(fields("spec.missing=")); /* an absent field is the empty string */
}

static void
test_malformed_selectors_are_refused(void **state)
{
    (void)state;
    const char *bad_labels[] = {"app in (a", "app in a", "=x", "a b c=1", "app=x,"};
    for (size_t i = 0; i < sizeof bad_labels / sizeof bad_labels[0]; i++) {
        dc_selector *s = NULL;
        char err[256] = "";
        assert_int_equal(dc_selector_parse_labels(bad_labels[i], &s, err, sizeof err), LB_EPARSE);
        assert_null(s);
        assert_true(err[0] != '\0');
    }
    dc_selector *s = NULL;
    char err[256];
    assert_int_equal(dc_selector_parse_fields("metadata.name", &s, err, sizeof err), LB_EPARSE);
}

static void
test_selector_objects(void **state)
{
    (void)state;
    json_t *l = json_object_get(json_object_get(pod, "metadata"), "labels");
    json_t *sel =
        json_pack("{s:{s:s}, s:[{s:s, s:s, s:[s,s]}]}", "matchLabels", "app", "web",
                  "matchExpressions", "key", "tier", "operator", "In", "values", "front", "back");
    assert_true(dc_label_selector_object_matches(sel, l));
    json_decref(sel);
    sel = json_pack("{s:[{s:s, s:s}]}", "matchExpressions", "key", "tier", "operator",
                    "DoesNotExist");
    assert_false(dc_label_selector_object_matches(sel, l));
    json_decref(sel);
    assert_false(dc_label_selector_object_matches(NULL, l));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_selectors),
        cmocka_unit_test(test_field_selectors),
        cmocka_unit_test(test_malformed_selectors_are_refused),
        cmocka_unit_test(test_selector_objects),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
