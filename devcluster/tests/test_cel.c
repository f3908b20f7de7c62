/*
 * test_cel.c: the CEL subset of CRD validation rules (cel.c) and how the
 * schema walker runs them (dc_schema_validate_rules): values and operators
 * as CEL defines them, CEL's errors (no such key, overloads) and their
 * absorption by && and ||, rules outside the subset refused at parse time,
 * transition rules only with an old value, and causes in the real server's
 * words.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cel.h"
#include "schema.h"

static json_t *
js(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    if (!v)
        fail_msg("test JSON %s: %s", text, e.text);
    return v;
}

/* Evaluate rule on self (and oldSelf, JSON text or NULL); the rc. */
static int
run(const char *rule, const char *self, const char *old, bool *result, char *err, size_t cap)
{
    json_t *s = self ? js(self) : NULL, *o = old ? js(old) : NULL;
    int rc = dc_cel_check(rule, s, o, result, err, cap);
    json_decref(s);
    json_decref(o);
    return rc;
}

static void
expect(const char *rule, const char *self, const char *old, bool want)
{
    bool got = !want;
    char err[300];
    int rc = run(rule, self, old, &got, err, sizeof err);
    if (rc != 0)
        fail_msg("%s on %s: rc %d: %s", rule, self, rc, err);
    if (got != want)
        fail_msg("%s on %s: got %s, want %s", rule, self, got ? "true" : "false",
                 want ? "true" : "false");
}

static void
expect_error(const char *rule, const char *self, const char *msg)
{
    bool got;
    char err[300];
    int rc = run(rule, self, NULL, &got, err, sizeof err);
    assert_int_equal(rc, DC_CEL_EVAL_ERROR);
    if (!strstr(err, msg))
        fail_msg("%s: error \"%s\" lacks \"%s\"", rule, err, msg);
}

static void
expect_unsupported(const char *rule)
{
    dc_cel_rule *r = NULL;
    char err[300];
    int rc = dc_cel_parse(rule, &r, err, sizeof err);
    if (rc != DC_CEL_UNSUPPORTED)
        fail_msg("%s: parsed (rc %d), should be outside the subset", rule, rc);
    assert_null(r);
    assert_true(err[0] != '\0');
}

static void
test_operators_and_values(void **state)
{
    (void)state;
    const char *o = "{\"a\":3,\"b\":\"xy\",\"l\":[1,2,3],\"m\":{\"k\":\"v\"},\"f\":1.5,"
                    "\"t\":true,\"n\":null}";
    expect("self.a == 3", o, NULL, true);
    expect("self.a != 3", o, NULL, false);
    expect("self.a < 4 && self.a <= 3 && self.a > 2 && self.a >= 3", o, NULL, true);
    expect("self.a + 2 * 3 == 9 && (self.a + 2) * 3 == 15", o, NULL, true);
    expect("self.a / 2 == 1 && self.a % 2 == 1 && -self.a == 0 - 3", o, NULL, true);
    expect("self.f > 1.0 && self.f < 2 && self.f == 1.5", o, NULL, true);
    expect("self.a == 3.0", o, NULL, true);
    expect("self.b == 'xy' && self.b == \"xy\" && self.b + 'z' == 'xyz'", o, NULL, true);
    expect("'abc' < 'abd' && !('b' < 'a')", o, NULL, true);
    expect("self.t && !false", o, NULL, true);
    expect("self.n == null", o, NULL, true);
    expect("2 in self.l && !(7 in self.l) && 'k' in self.m", o, NULL, true);
    expect("self.l[0] == 1 && self.m['k'] == 'v' && self.l + [4] == [1, 2, 3, 4]", o, NULL, true);
    expect("self.a > 2 ? self.b == 'xy' : false", o, NULL, true);
    expect("self.a == 3 || self.a == 4 && false", o, NULL, true); /* && binds tighter */
    expect("self.a == 1 ? true : self.a == 3 ? true : false", o, NULL, true);
    expect("0x10 == 16 && 7u == 7", o, NULL, true);
    expect("'a\\'b' == \"a'b\"", o, NULL, true);
}

static void
test_has_size_and_functions(void **state)
{
    (void)state;
    const char *o = "{\"x\":\"héllo\",\"l\":[1,2],\"m\":{},\"s\":\"\"}";
    expect("has(self.x) && !has(self.y)", o, NULL, true);
    expect("has(self.x) != has(self.y)", o, NULL, true);
    expect("!has(self.x) || !has(self.y)", o, NULL, true);
    expect("size(self.x) == 5 && self.x.size() == 5", o, NULL, true); /* code points */
    expect("size(self.l) == 2 && size(self.m) == 0 && size(self.s) == 0", o, NULL, true);
    expect("self.x.startsWith('hé') && self.x.endsWith('llo') && self.x.contains('ll')", o, NULL,
           true);
    expect("self.x.matches('^h.*o$') && !self.x.matches('^x')", o, NULL, true);
    expect("'FsYnc'.lowerAscii() == 'fsync' && 'ab'.upperAscii() == 'AB'", o, NULL, true);
    expect("!self.exists(k, k.lowerAscii() in ['fsync', 'port'])", "{\"shared_buffers\":\"1\"}",
           NULL, true);
    expect("!self.exists(k, k.lowerAscii() in ['fsync', 'port'])", "{\"FSync\":\"off\"}", NULL,
           false);
    expect("int('42') == 42 && string(7) == '7' && int(2.9) == 2 && double(1) == 1.0", o, NULL,
           true);
    expect("self.l.all(e, e > 0) && self.l.exists(e, e == 2) && self.l.exists_one(e, e > 1)", o,
           NULL, true);
    expect("self.l.all(e, e > 1)", o, NULL, false);
    expect("self.m.all(k, false) && !self.m.exists(k, true)", o, NULL, true);
}

static void
test_errors_follow_cel(void **state)
{
    (void)state;
    const char *o = "{\"a\":1,\"s\":\"x\",\"l\":[1]}";
    expect_error("self.missing == 1", o, "no such key: missing");
    expect_error("self.a.b == 1", o, "no such overload");
    expect_error("self.a + 's' == 1", o, "no such overload");
    expect_error("self.a / 0 == 1", o, "division by zero");
    expect_error("self.l[3] == 1", o, "index out of range");
    expect_error("size(self.a) == 1", o, "no such overload: size(int)");
    expect_error("int('x') == 1", o, "string is not an int");
    expect_error("self.s < 1", o, "no such overload");
    expect_error("9223372036854775807 + 1 > 0", o, "integer overflow");
    /* && and || absorb an error when the other side decides, in either order */
    expect("self.missing == 1 || true", o, NULL, true);
    expect("true || self.missing == 1", o, NULL, true);
    expect("self.missing == 1 && false", o, NULL, false);
    expect("false && self.missing == 1", o, NULL, false);
    expect_error("self.missing == 1 && true", o, "no such key");
    expect("[1, 0].exists(e, 1 / e == 1)", o, NULL, true);
    /* not a boolean */
    bool r;
    char err[200];
    assert_int_equal(run("self.a + 1", o, NULL, &r, err, sizeof err), -EINVAL);
}

static void
test_rules_outside_the_subset_do_not_parse(void **state)
{
    (void)state;
    expect_unsupported("self.t > timestamp('2026-01-01T00:00:00Z')");
    expect_unsupported("duration(self.d) < duration('1h')");
    expect_unsupported("quantity(self.q).isLessThan(quantity('1Gi'))");
    expect_unsupported("self.m == {'a': 1}");
    expect_unsupported("type(self) == string");
    expect_unsupported("self.l.map(x, x * 2) == [2]");
    expect_unsupported("self.?x.orValue(1) == 1");
    expect_unsupported("self.a ==");
    expect_unsupported("self.a == 1)");
    expect_unsupported("'unterminated");
    expect_unsupported("has(self)");
    expect_unsupported("'''triple'''");
    dc_cel_rule *r;
    char err[100];
    assert_int_equal(dc_cel_parse("self == oldSelf", &r, err, sizeof err), 0);
    assert_true(dc_cel_uses_old_self(r));
    dc_cel_free(r);
    assert_int_equal(dc_cel_parse("self.x == 1", &r, err, sizeof err), 0);
    assert_false(dc_cel_uses_old_self(r));
    dc_cel_free(r);
}

/* The schema walker: rules at their nodes, the real server's causes. */
static const char *crd_schema =
    "{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":\"object\","
    " \"x-kubernetes-validations\":["
    "  {\"rule\":\"!has(self.lsn) || !has(self.timestamp)\","
    "   \"message\":\"at most one of lsn and timestamp may be set\"},"
    "  {\"rule\":\"self.size <= 5\",\"fieldPath\":\".size\",\"reason\":\"FieldValueForbidden\","
    "   \"message\":\"size must be at most 5\"},"
    "  {\"rule\":\"self.t > timestamp('2026-01-01T00:00:00Z')\"}],"
    " \"properties\":{"
    "  \"ref\":{\"type\":\"object\",\"x-kubernetes-validations\":["
    "    {\"rule\":\"self == oldSelf\",\"message\":\"ref is immutable\"}],"
    "   \"properties\":{\"name\":{\"type\":\"string\"}}},"
    "  \"lsn\":{\"type\":\"string\",\"x-kubernetes-validations\":[{\"rule\":\"self == oldSelf\"}]},"
    "  \"timestamp\":{\"type\":\"string\"},"
    "  \"size\":{\"type\":\"integer\"},"
    "  \"items\":{\"type\":\"array\",\"x-kubernetes-list-type\":\"map\","
    "   \"x-kubernetes-list-map-keys\":[\"name\"],\"items\":{\"type\":\"object\","
    "    \"x-kubernetes-validations\":[{\"rule\":\"self.v == oldSelf.v\",\"message\":\"v is "
    "fixed\"}],"
    "    \"properties\":{\"name\":{\"type\":\"string\"},\"v\":{\"type\":\"integer\"}}}}"
    " }}}}";

static json_t *
rules(const char *spec, const char *old_spec)
{
    json_t *schema = js(crd_schema);
    char a[1024], b[1024];
    snprintf(a, sizeof a, "{\"spec\":%s}", spec);
    json_t *obj = js(a), *old = NULL;
    if (old_spec) {
        snprintf(b, sizeof b, "{\"spec\":%s}", old_spec);
        old = js(b);
    }
    json_t *causes = json_array();
    dc_schema_validate_rules(schema, obj, old, causes);
    json_decref(schema);
    json_decref(obj);
    json_decref(old);
    return causes;
}

static void
expect_causes(const char *spec, const char *old, const char *want)
{
    json_t *causes = rules(spec, old);
    char got[2048] = "";
    size_t i;
    json_t *c;
    json_array_foreach(causes, i, c)
    {
        char line[600];
        snprintf(line, sizeof line, "%s%s: %s", i ? "\n" : "",
                 json_string_value(json_object_get(c, "field")),
                 json_string_value(json_object_get(c, "message")));
        strncat(got, line, sizeof got - strlen(got) - 1);
    }
    json_decref(causes);
    if (strcmp(got, want) != 0)
        fail_msg("spec %s (old %s):\n got: %s\nwant: %s", spec, old ? old : "none", got, want);
}

static void
test_schema_rules_with_real_messages(void **state)
{
    (void)state;
    /* create: transition rules do not run; the others do */
    expect_causes("{\"ref\":{\"name\":\"a\"},\"size\":1}", NULL, "");
    expect_causes("{\"lsn\":\"0/1\",\"timestamp\":\"x\",\"size\":1}", NULL,
                  "spec: Invalid value: \"object\": at most one of lsn and timestamp may be set");
    expect_causes("{\"size\":6}", NULL, "spec.size: Forbidden: size must be at most 5");
    /* an absent field the rule reads is CEL's error, reported as such */
    expect_causes("{}", NULL,
                  "spec: Invalid value: \"object\": no such key: size evaluating rule: "
                  "self.size <= 5");
    /* update: immutable fields */
    expect_causes("{\"ref\":{\"name\":\"b\"},\"size\":1}", "{\"ref\":{\"name\":\"a\"},\"size\":1}",
                  "spec.ref: Invalid value: \"object\": ref is immutable");
    expect_causes("{\"ref\":{\"name\":\"a\"},\"size\":1}", "{\"ref\":{\"name\":\"a\"},\"size\":2}",
                  "");
    expect_causes("{\"lsn\":\"0/2\",\"size\":1}", "{\"lsn\":\"0/1\",\"size\":1}",
                  "spec.lsn: Invalid value: \"string\": failed rule: self == oldSelf");
    /* a field that had no old value is not a transition */
    expect_causes("{\"lsn\":\"0/2\",\"size\":1}", "{\"size\":1}", "");
    /* list-type=map items correlate by key, whatever their order */
    expect_causes("{\"size\":1,\"items\":[{\"name\":\"b\",\"v\":2},{\"name\":\"a\",\"v\":1}]}",
                  "{\"size\":1,\"items\":[{\"name\":\"a\",\"v\":1},{\"name\":\"b\",\"v\":2}]}", "");
    expect_causes("{\"size\":1,\"items\":[{\"name\":\"b\",\"v\":3},{\"name\":\"c\",\"v\":1}]}",
                  "{\"size\":1,\"items\":[{\"name\":\"a\",\"v\":1},{\"name\":\"b\",\"v\":2}]}",
                  "spec.items[0]: Invalid value: \"object\": v is fixed");
}

static void
test_unsupported_rules_are_counted_not_enforced(void **state)
{
    (void)state;
    json_t *schema = js(crd_schema);
    assert_int_equal(dc_schema_report_unsupported_rules(schema, "widgets.example.com"), 1);
    json_decref(schema);
    /* the timestamp rule would fail on this object; it is not run */
    expect_causes("{\"size\":1,\"t\":\"2020-01-01T00:00:00Z\"}", NULL, "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operators_and_values),
        cmocka_unit_test(test_has_size_and_functions),
        cmocka_unit_test(test_errors_follow_cel),
        cmocka_unit_test(test_rules_outside_the_subset_do_not_parse),
        cmocka_unit_test(test_schema_rules_with_real_messages),
        cmocka_unit_test(test_unsupported_rules_are_counted_not_enforced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
