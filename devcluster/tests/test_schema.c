/*
 * test_schema.c: CRD structural-schema validation: each keyword refuses
 * what it must with the real API server's message and field, defaults are
 * applied, unknown fields pruned (and reported), preserved where the schema
 * says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "schema.h"

static const char *schema_text =
    "{\"type\":\"object\",\"properties\":{"
    " \"spec\":{\"type\":\"object\",\"required\":[\"size\"],\"properties\":{"
    "  \"size\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":5},"
    "  \"ratio\":{\"type\":\"number\",\"exclusiveMaximum\":true,\"maximum\":1},"
    "  \"mode\":{\"type\":\"string\",\"enum\":[\"fast\",\"slow\"],\"default\":\"fast\"},"
    "  \"name\":{\"type\":\"string\",\"pattern\":\"^[a-z]\\\\d*$\",\"maxLength\":4},"
    "  \"tags\":{\"type\":\"array\",\"maxItems\":2,\"items\":{\"type\":\"string\"}},"
    "  \"port\":{\"x-kubernetes-int-or-string\":true},"
    "  \"labels\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}},"
    "  \"free\":{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":true},"
    "  \"opt\":{\"type\":\"string\",\"nullable\":true}"
    " }}}}";

static json_t *schema;

static int
setup(void **state)
{
    (void)state;
    json_error_t e;
    schema = json_loads(schema_text, 0, &e);
    if (!schema)
        fail_msg("schema: %s", e.text);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    json_decref(schema);
    return 0;
}

/* Validate spec (JSON text); returns the causes. */
static json_t *
check(const char *spec, json_t **obj_out, json_t **unknown_out)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"apiVersion\":\"x/v1\",\"kind\":\"W\",\"metadata\":{\"name\":\"w\"},\"spec\":%s}",
             spec);
    json_error_t e;
    json_t *obj = json_loads(text, 0, &e);
    if (!obj)
        fail_msg("test JSON: %s", e.text);
    json_t *causes = json_array(), *unknown = json_array();
    dc_schema_validate(schema, obj, causes, unknown);
    if (obj_out)
        *obj_out = obj;
    else
        json_decref(obj);
    if (unknown_out)
        *unknown_out = unknown;
    else
        json_decref(unknown);
    return causes;
}

static void
expect_one(const char *spec, const char *field, const char *message)
{
    json_t *causes = check(spec, NULL, NULL);
    if (json_array_size(causes) != 1) {
        char *t = json_dumps(causes, 0);
        fail_msg("%s: want one cause, got %s", spec, t);
    }
    json_t *c = json_array_get(causes, 0);
    assert_string_equal(json_string_value(json_object_get(c, "field")), field);
    assert_string_equal(json_string_value(json_object_get(c, "message")), message);
    json_decref(causes);
}

static void
test_each_keyword_refuses_with_the_real_message(void **state)
{
    (void)state;
    expect_one("{}", "spec.size", "Required value");
    expect_one("{\"size\":\"x\"}", "spec.size",
               "Invalid value: \"string\": spec.size in body must be of type integer: \"string\"");
    expect_one("{\"size\":9}", "spec.size",
               "Invalid value: 9: spec.size in body should be less than or equal to 5");
    expect_one("{\"size\":0}", "spec.size",
               "Invalid value: 0: spec.size in body should be greater than or equal to 1");
    expect_one("{\"size\":1,\"ratio\":1}", "spec.ratio",
               "Invalid value: 1: spec.ratio in body should be less than 1");
    expect_one("{\"size\":1,\"mode\":\"x\"}", "spec.mode",
               "Unsupported value: \"x\": supported values: \"fast\", \"slow\"");
    expect_one("{\"size\":1,\"name\":\"Ab\"}", "spec.name",
               "Invalid value: \"Ab\": spec.name in body should match '^[a-z]\\d*$'");
    expect_one("{\"size\":1,\"name\":\"a1234\"}", "spec.name",
               "Too long: may not be more than 4 bytes");
    expect_one("{\"size\":1,\"tags\":[\"a\",\"b\",\"c\"]}", "spec.tags",
               "Too many: 3: must have at most 2 items");
    expect_one("{\"size\":1,\"tags\":[1]}", "spec.tags[0]",
               "Invalid value: \"integer\": spec.tags[0] in body must be of type string: "
               "\"integer\"");
    expect_one("{\"size\":1,\"port\":true}", "spec.port",
               "Invalid value: \"boolean\": spec.port in body must be of type integer,string: "
               "\"boolean\"");
    expect_one("{\"size\":1,\"labels\":{\"a\":1}}", "spec.labels.a",
               "Invalid value: \"integer\": spec.labels.a in body must be of type string: "
               "\"integer\"");
}

static void
test_valid_objects_pass_with_defaults_and_pruning(void **state)
{
    (void)state;
    json_t *obj, *unknown;
    json_t *causes = check("{\"size\":3,\"name\":\"a12\",\"port\":\"http\",\"opt\":null,"
                           "\"bogus\":1,\"free\":{\"any\":{\"thing\":[1]}}}",
                           &obj, &unknown);
    assert_int_equal(json_array_size(causes), 0);
    json_t *spec = json_object_get(obj, "spec");
    assert_string_equal(json_string_value(json_object_get(spec, "mode")), "fast");
    assert_null(json_object_get(spec, "bogus"));
    assert_int_equal(json_array_size(unknown), 1);
    assert_string_equal(json_string_value(json_array_get(unknown, 0)), "spec.bogus");
    assert_non_null(
        json_object_get(json_object_get(json_object_get(spec, "free"), "any"), "thing"));
    /* metadata, apiVersion and kind are never pruned */
    assert_non_null(json_object_get(obj, "metadata"));
    assert_non_null(json_object_get(obj, "kind"));
    json_decref(causes);
    json_decref(obj);
    json_decref(unknown);
}

static void
test_several_errors_are_all_reported(void **state)
{
    (void)state;
    json_t *causes = check("{\"size\":7,\"mode\":\"x\",\"name\":\"ZZ\"}", NULL, NULL);
    assert_int_equal(json_array_size(causes), 3);
    json_decref(causes);
}

static void
test_patterns_go_would_refuse_are_refused(void **state)
{
    (void)state;
    char why[128];
    const char *good[] = {"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                          "^\\d+(ms|s|m|h)$",
                          "^[0-9A-F]+/[0-9A-F]+$",
                          "a+?",
                          "(ab){2,5}",
                          "[+*?{]+",
                          "x{3}",
                          "^(\\+|-)?[0-9]{1,3}$",
                          ""};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (dc_schema_pattern_ok(good[i], why, sizeof why) != 0)
            fail_msg("\"%s\" refused: %s", good[i], why);
    const char *bad[] = {"a++", "a**", "x*{2}", "(a{1000}){1000}", "a{1001}", "a+??", "k++++++"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (dc_schema_pattern_ok(bad[i], why, sizeof why) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
    /* a schema carrying one gets a cause naming where */
    json_t *sch =
        json_pack("{s:{s:{s:s, s:s}}}", "properties", "name", "type", "string", "pattern", "a**");
    json_t *causes = json_array();
    assert_int_equal(
        dc_schema_check_patterns(sch, "spec.versions[0].schema.openAPIV3Schema", causes), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(causes, 0), "field")),
                        "spec.versions[0].schema.openAPIV3Schema.properties.name.pattern");
    json_decref(causes);
    json_decref(sch);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_keyword_refuses_with_the_real_message),
        cmocka_unit_test(test_valid_objects_pass_with_defaults_and_pruning),
        cmocka_unit_test(test_several_errors_are_all_reported),
        cmocka_unit_test(test_patterns_go_would_refuse_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
