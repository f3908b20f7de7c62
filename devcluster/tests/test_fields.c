/*
 * test_fields.c: unknown-field detection for built-in kinds: typos found
 * with their paths (through lists, maps and inlined structs), known fields
 * (including Go's inlined ones) never reported, unknown kinds not checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "fields.h"

static json_t *
J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

static void
test_table_is_sorted(void **state)
{
    (void)state;
    for (size_t i = 1; i < dc_nfields; i++) {
        int c = strcmp(dc_fields[i - 1].message, dc_fields[i].message);
        if (c == 0)
            c = strcmp(dc_fields[i - 1].name, dc_fields[i].name);
        assert_true(c < 0);
    }
}

static void
test_typos_are_found_with_their_paths(void **state)
{
    (void)state;
    json_t *d =
        J("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"x\","
          "\"lables\":{}},\"spec\":{\"replica\":1,\"template\":{\"spec\":{\"containers\":"
          "[{\"name\":\"a\",\"image\":\"i\",\"resources\":{\"limits\":{\"cpu\":\"1\"}}},"
          "{\"name\":\"b\",\"imagee\":\"i\"}]}}},\"status\":{\"anything\":1}}");
    json_t *unknown = json_array();
    assert_int_equal(dc_fields_check("Deployment", d, unknown), 3);
    assert_string_equal(json_string_value(json_array_get(unknown, 0)), "metadata.lables");
    assert_string_equal(json_string_value(json_array_get(unknown, 1)), "spec.replica");
    assert_string_equal(json_string_value(json_array_get(unknown, 2)),
                        "spec.template.spec.containers[1].imagee");
    json_decref(unknown);
    json_decref(d);
}

static void
test_inlined_and_mapped_fields_are_known(void **state)
{
    (void)state;
    /* probe handlers, volume sources and key selectors are Go-inlined */
    json_t *p = J("{\"spec\":{\"containers\":[{\"name\":\"a\",\"readinessProbe\":{\"httpGet\":"
                  "{\"port\":80},\"periodSeconds\":1},\"env\":[{\"name\":\"E\",\"valueFrom\":"
                  "{\"secretKeyRef\":{\"name\":\"s\",\"key\":\"k\"}}}]}],\"volumes\":[{\"name\":"
                  "\"v\",\"configMap\":{\"name\":\"c\"}},{\"name\":\"w\",\"emptyDir\":{}}],"
                  "\"nodeSelector\":{\"any-key\":\"v\"}}}");
    json_t *unknown = json_array();
    assert_int_equal(dc_fields_check("Pod", p, unknown), 0);
    /* a kind not in the table is not checked */
    assert_int_equal(dc_fields_check("Widget", p, unknown), 0);
    /* a map of messages checks each value */
    json_t *pv = J("{\"spec\":{\"containers\":[{\"name\":\"a\",\"resources\":{\"limits\":{\"cpu\":"
                   "\"1\"}},\"ports\":[{\"containerPort\":1,\"hostport\":2}]}]}}");
    assert_int_equal(dc_fields_check("Pod", pv, unknown), 1);
    assert_string_equal(json_string_value(json_array_get(unknown, 0)),
                        "spec.containers[0].ports[0].hostport");
    json_decref(pv);
    json_decref(unknown);
    json_decref(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_sorted),
        cmocka_unit_test(test_typos_are_found_with_their_paths),
        cmocka_unit_test(test_inlined_and_mapped_fields_are_known),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
