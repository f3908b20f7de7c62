/*
 * test_patch.c: merge patch (RFC 7386), JSON patch (RFC 6902) and
 * strategic merge patch, including the directives kubectl's client-side
 * apply sends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "patch.h"

static json_t *
J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("bad test JSON: %s: %s", e.text, text);
    return j;
}

typedef int (*patch_fn)(const json_t *, const json_t *, json_t **, char *, size_t);

static void
expect(patch_fn fn, const char *target, const char *patch, const char *want)
{
    json_t *t = J(target), *p = J(patch), *w = J(want), *out = NULL;
    char err[256] = "";
    int rc = fn(t, p, &out, err, sizeof err);
    if (rc != 0)
        fail_msg("patch failed: %s", err);
    if (!json_equal(out, w)) {
        char *got = json_dumps(out, JSON_SORT_KEYS);
        fail_msg("got %s, want %s", got, want);
    }
    /* the target is untouched */
    json_t *t2 = J(target);
    assert_true(json_equal(t, t2));
    json_decref(t2);
    json_decref(t);
    json_decref(p);
    json_decref(w);
    json_decref(out);
}

static int
fails(patch_fn fn, const char *target, const char *patch)
{
    json_t *t = J(target), *p = J(patch), *out = NULL;
    char err[256] = "";
    int rc = fn(t, p, &out, err, sizeof err);
    assert_null(out);
    assert_true(err[0] != '\0');
    json_decref(t);
    json_decref(p);
    return rc;
}

static void
test_merge_patch(void **state)
{
    (void)state;
    expect(dc_merge_patch, "{\"a\":1,\"b\":{\"c\":2,\"d\":3},\"l\":[1,2]}",
           "{\"a\":null,\"b\":{\"c\":5},\"l\":[3],\"n\":{\"x\":null}}",
           "{\"b\":{\"c\":5,\"d\":3},\"l\":[3],\"n\":{}}");
    assert_int_equal(fails(dc_merge_patch, "{}", "[1]"), LB_EPARSE);
}

static void
test_json_patch(void **state)
{
    (void)state;
    expect(dc_json_patch, "{\"a\":{\"b\":[1,2]},\"x/y\":1,\"t\":\"v\"}",
           "[{\"op\":\"add\",\"path\":\"/a/b/1\",\"value\":9},"
           " {\"op\":\"add\",\"path\":\"/a/b/-\",\"value\":3},"
           " {\"op\":\"remove\",\"path\":\"/x~1y\"},"
           " {\"op\":\"test\",\"path\":\"/t\",\"value\":\"v\"},"
           " {\"op\":\"copy\",\"from\":\"/t\",\"path\":\"/u\"},"
           " {\"op\":\"move\",\"from\":\"/u\",\"path\":\"/w\"},"
           " {\"op\":\"replace\",\"path\":\"/t\",\"value\":0}]",
           "{\"a\":{\"b\":[1,9,2,3]},\"t\":0,\"w\":\"v\"}");
    assert_int_equal(fails(dc_json_patch, "{\"t\":1}",
                           "[{\"op\":\"test\",\"path\":\"/t\","
                           "\"value\":2}]"),
                     LB_ECONFLICT);
    assert_int_equal(fails(dc_json_patch, "{}", "[{\"op\":\"remove\",\"path\":\"/nope\"}]"),
                     LB_ECONFLICT);
    assert_int_equal(fails(dc_json_patch, "{}",
                           "[{\"op\":\"replace\",\"path\":\"/nope\","
                           "\"value\":1}]"),
                     LB_ECONFLICT);
    assert_int_equal(fails(dc_json_patch, "{}", "[{\"op\":\"jump\",\"path\":\"/a\"}]"), LB_EPARSE);
    assert_int_equal(fails(dc_json_patch, "{}", "{\"op\":\"add\"}"), LB_EPARSE);
    assert_int_equal(fails(dc_json_patch, "{\"a\":[1]}",
                           "[{\"op\":\"add\",\"path\":\"/a/5\","
                           "\"value\":1}]"),
                     LB_ECONFLICT);
}

static const char *deployment =
    "{\"metadata\":{\"finalizers\":[\"a\"]},\"spec\":{\"template\":{\"spec\":{\"containers\":["
    "{\"name\":\"web\",\"image\":\"w:1\",\"env\":[{\"name\":\"A\",\"value\":\"1\"}],"
    "\"ports\":[{\"containerPort\":80}]},"
    "{\"name\":\"side\",\"image\":\"s:1\"}]}}}}";

static void
test_strategic_merge_by_key(void **state)
{
    (void)state;
    /* a container is merged by name; its env by name; finalizers as a set */
    expect(dc_strategic_merge_patch, deployment,
           "{\"metadata\":{\"finalizers\":[\"b\",\"a\"]},\"spec\":{\"template\":{\"spec\":{"
           "\"containers\":[{\"name\":\"web\",\"image\":\"w:2\",\"env\":[{\"name\":\"B\","
           "\"value\":\"2\"}]}]}}}}",
           "{\"metadata\":{\"finalizers\":[\"a\",\"b\"]},\"spec\":{\"template\":{\"spec\":{"
           "\"containers\":[{\"name\":\"web\",\"image\":\"w:2\",\"env\":[{\"name\":\"A\","
           "\"value\":\"1\"},{\"name\":\"B\",\"value\":\"2\"}],\"ports\":[{\"containerPort\":80}]},"
           "{\"name\":\"side\",\"image\":\"s:1\"}]}}}}");
}

static void
test_strategic_merge_directives(void **state)
{
    (void)state;
    /* what kubectl apply sends when a container and an env var go away */
    expect(
        dc_strategic_merge_patch, deployment,
        "{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":[\"a\"]},"
        "\"spec\":{\"template\":{\"spec\":{"
        "\"$setElementOrder/containers\":[{\"name\":\"web\"}],"
        "\"containers\":[{\"$patch\":\"delete\",\"name\":\"side\"},"
        "{\"name\":\"web\",\"env\":[{\"$patch\":\"delete\",\"name\":\"A\"}]}]}}}}",
        "{\"metadata\":{\"finalizers\":[]},\"spec\":{\"template\":{\"spec\":{\"containers\":["
        "{\"name\":\"web\",\"image\":\"w:1\",\"env\":[],\"ports\":[{\"containerPort\":80}]}]}}}}");
    /* $patch: replace on a map, $retainKeys, null deletes, plain lists replace */
    expect(dc_strategic_merge_patch,
           "{\"a\":{\"x\":1,\"y\":2},\"s\":{\"type\":\"R\",\"rollingUpdate\":{\"m\":1}},"
           "\"args\":[\"1\",\"2\"],\"gone\":1}",
           "{\"a\":{\"$patch\":\"replace\",\"z\":3},\"s\":{\"$retainKeys\":[\"type\"],"
           "\"type\":\"Recreate\"},\"args\":[\"3\"],\"gone\":null}",
           "{\"a\":{\"z\":3},\"s\":{\"type\":\"Recreate\"},\"args\":[\"3\"]}");
    /* service ports merge by port */
    expect(dc_strategic_merge_patch, "{\"ports\":[{\"port\":80,\"name\":\"h\"},{\"port\":443}]}",
           "{\"ports\":[{\"port\":80,\"targetPort\":8080}]}",
           "{\"ports\":[{\"port\":80,\"name\":\"h\",\"targetPort\":8080},{\"port\":443}]}");
    assert_int_equal(fails(dc_strategic_merge_patch, "{}", "[]"), LB_EPARSE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_patch),
        cmocka_unit_test(test_json_patch),
        cmocka_unit_test(test_strategic_merge_by_key),
        cmocka_unit_test(test_strategic_merge_directives),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
