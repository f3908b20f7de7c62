/* test_json.c: typed field getters name the field in every error, the error
 * is sticky, optional fields take defaults, and a handler's request error
 * goes out as 400 with a JSON body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"
#include "http_server.h"
#include "json.h"
#include "metrics.h"

static json_t *
parse_ok(const char *text)
{
    lb_json_error err = LB_JSON_ERROR_INIT;
    json_t *v = NULL;
    assert_int_equal(lb_json_parse(text, strlen(text), &v, &err), 0);
    assert_false(err.failed);
    assert_non_null(v);
    return v;
}

static void
test_parse_refuses_bad_bodies_with_reason(void **state)
{
    (void)state;
    struct {
        const char *text;
        const char *message;
    } cases[] = {
        {"", "request body is empty; expected a JSON object"},
        {"{", "malformed JSON at line 1 column 1: "},
        {"{\"a\":1}\n{\"b\":2}", "malformed JSON at line 2 column 1: end of file expected"},
        {"{\"a\":\n\n  tru}", "malformed JSON at line 3 column "},
        {"\"just a string\"", "malformed JSON at line 1 column "},
        {"[]", "request body must be a JSON object"},
        {"{\"k\": 1, \"k\": 1}", "malformed JSON at line 1 column 12: duplicate object key"},
        {"{\"k\": \"\\u0000\"}", "malformed JSON at line 1 column "},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lb_json_error err = LB_JSON_ERROR_INIT;
        json_t *v = (json_t *)0x1;
        assert_int_equal(lb_json_parse(cases[i].text, strlen(cases[i].text), &v, &err), LB_EPARSE);
        assert_true(err.failed);
        assert_int_equal(err.code, LB_EPARSE);
        assert_ptr_equal(v, (json_t *)0x1); /* untouched */
        if (strncmp(err.message, cases[i].message, strlen(cases[i].message)) != 0)
            fail_msg("case %zu: got \"%s\"", i, err.message);
    }
    /* a NUL inside the body is not the end of it */
    lb_json_error err = LB_JSON_ERROR_INIT;
    json_t *v = NULL;
    assert_int_equal(lb_json_parse("{}\0{", 4, &v, &err), LB_EPARSE);
    assert_int_equal(lb_json_parse(NULL, 0, &v, &err), LB_EPARSE);
}

static void
test_required_getters(void **state)
{
    (void)state;
    json_t *o = parse_ok("{\"name\": \"sk-1\", \"n\": -42, \"big\": 9223372036854775807,"
                         " \"on\": true, \"off\": false, \"lsn\": \"1/16B3F10\","
                         " \"id\": \"0123456789abcdef0123456789abcdef\"}");
    lb_json_error err = LB_JSON_ERROR_INIT;
    const char *name;
    int64_t n, big;
    bool on, off;
    lb_lsn lsn;
    char id[LB_ID_STRLEN];
    assert_int_equal(lb_json_req_str(o, "name", &name, &err), 0);
    assert_int_equal(lb_json_req_int64(o, "n", &n, &err), 0);
    assert_int_equal(lb_json_req_int64(o, "big", &big, &err), 0);
    assert_int_equal(lb_json_req_bool(o, "on", &on, &err), 0);
    assert_int_equal(lb_json_req_bool(o, "off", &off, &err), 0);
    assert_int_equal(lb_json_req_lsn(o, "lsn", &lsn, &err), 0);
    assert_int_equal(lb_json_req_id(o, "id", id, &err), 0);
    assert_false(err.failed);
    assert_string_equal(name, "sk-1");
    assert_true(n == -42);
    assert_true(big == INT64_MAX);
    assert_true(on);
    assert_false(off);
    assert_true(lsn == ((lb_lsn)1 << 32 | 0x16B3F10));
    assert_string_equal(id, "0123456789abcdef0123456789abcdef");
    json_decref(o);
}

static void
test_each_error_names_the_field(void **state)
{
    (void)state;
    json_t *o = parse_ok("{\"s\": 5, \"i\": \"5\", \"f\": 1.5, \"b\": 1, \"l\": \"0/1G\","
                         " \"l2\": 100, \"id1\": \"0123456789ABCDEF0123456789ABCDEF\","
                         " \"id2\": \"0123456789abcdef\", \"id3\": 7, \"nul\": null}");
    lb_json_error err;
    const char *s;
    int64_t i;
    bool b;
    lb_lsn l;
    char id[LB_ID_STRLEN];

#define EXPECT(call, want_code, want_msg)                                                          \
    do {                                                                                           \
        err = (lb_json_error)LB_JSON_ERROR_INIT;                                                   \
        assert_int_equal(call, want_code);                                                         \
        assert_true(err.failed);                                                                   \
        assert_int_equal(err.code, want_code);                                                     \
        assert_string_equal(err.message, want_msg);                                                \
    } while (0)

    EXPECT(lb_json_req_str(o, "missing", &s, &err), LB_ENOTFOUND, "missing field \"missing\"");
    EXPECT(lb_json_req_str(o, "nul", &s, &err), LB_ENOTFOUND, "missing field \"nul\"");
    EXPECT(lb_json_req_str(o, "s", &s, &err), LB_EPARSE, "field \"s\" must be a string");
    EXPECT(lb_json_req_int64(o, "i", &i, &err), LB_EPARSE, "field \"i\" must be an integer");
    EXPECT(lb_json_req_int64(o, "f", &i, &err), LB_EPARSE, "field \"f\" must be an integer");
    EXPECT(lb_json_req_int64(o, "timeline_id", &i, &err), LB_ENOTFOUND,
           "missing field \"timeline_id\"");
    EXPECT(lb_json_req_bool(o, "b", &b, &err), LB_EPARSE, "field \"b\" must be true or false");
    EXPECT(lb_json_req_lsn(o, "l", &l, &err), LB_EPARSE,
           "field \"l\" must be an LSN like \"0/16B3F10\"");
    EXPECT(lb_json_req_lsn(o, "l2", &l, &err), LB_EPARSE,
           "field \"l2\" must be an LSN like \"0/16B3F10\"");
    EXPECT(lb_json_req_id(o, "id1", id, &err), LB_EPARSE,
           "field \"id1\" must be an id of 32 lowercase hex characters");
    EXPECT(lb_json_req_id(o, "id2", id, &err), LB_EPARSE,
           "field \"id2\" must be an id of 32 lowercase hex characters");
    EXPECT(lb_json_req_id(o, "id3", id, &err), LB_EPARSE,
           "field \"id3\" must be an id of 32 lowercase hex characters");
    EXPECT(lb_json_opt_str(o, "s", "d", &s, &err), LB_EPARSE, "field \"s\" must be a string");
    EXPECT(lb_json_opt_int64(o, "i", 1, &i, &err), LB_EPARSE, "field \"i\" must be an integer");
    EXPECT(lb_json_opt_bool(o, "b", true, &b, &err), LB_EPARSE,
           "field \"b\" must be true or false");
    EXPECT(lb_json_opt_lsn(o, "l", 0, &l, &err), LB_EPARSE,
           "field \"l\" must be an LSN like \"0/16B3F10\"");
    EXPECT(lb_json_req_str(NULL, "x", &s, &err), LB_EPARSE, "request body must be a JSON object");
#undef EXPECT
    json_decref(o);
}

static void
test_optional_fields_take_defaults(void **state)
{
    (void)state;
    json_t *o = parse_ok("{\"present\": 3, \"nul\": null, \"str\": \"x\", \"lsn\": \"0/10\"}");
    lb_json_error err = LB_JSON_ERROR_INIT;
    const char *s = NULL;
    int64_t i = 0, j = 0, k = 0;
    bool b = false;
    lb_lsn l1 = 0, l2 = 0;
    assert_int_equal(lb_json_opt_int64(o, "present", 7, &i, &err), 0);
    assert_int_equal(lb_json_opt_int64(o, "absent", 7, &j, &err), 0);
    assert_int_equal(lb_json_opt_int64(o, "nul", 8, &k, &err), 0);
    assert_int_equal(lb_json_opt_str(o, "absent", "dflt", &s, &err), 0);
    assert_int_equal(lb_json_opt_bool(o, "absent", true, &b, &err), 0);
    assert_int_equal(lb_json_opt_lsn(o, "absent", 0x99, &l1, &err), 0);
    assert_int_equal(lb_json_opt_lsn(o, "lsn", 0x99, &l2, &err), 0);
    assert_false(err.failed);
    assert_true(i == 3 && j == 7 && k == 8);
    assert_string_equal(s, "dflt");
    assert_true(b);
    assert_true(l1 == 0x99 && l2 == 0x10);
    assert_int_equal(lb_json_opt_str(o, "str", NULL, &s, &err), 0);
    assert_string_equal(s, "x");
    json_decref(o);
}

static void
test_error_is_sticky(void **state)
{
    (void)state;
    json_t *o = parse_ok("{\"a\": 1, \"b\": \"two\"}");
    lb_json_error err = LB_JSON_ERROR_INIT;
    int64_t a = 0;
    const char *b = "unchanged";
    assert_int_equal(lb_json_req_int64(o, "zzz", &a, &err), LB_ENOTFOUND);
    /* later calls keep the first error and leave their outputs alone */
    assert_int_equal(lb_json_req_str(o, "b", &b, &err), LB_ENOTFOUND);
    assert_int_equal(lb_json_req_int64(o, "a", &a, &err), LB_ENOTFOUND);
    assert_int_equal(lb_json_req_int64(o, "b", &a, &err), LB_ENOTFOUND);
    assert_string_equal(b, "unchanged");
    assert_true(a == 0);
    assert_string_equal(err.message, "missing field \"zzz\"");
    /* parse after a failure does not parse either */
    json_t *v = NULL;
    assert_int_equal(lb_json_parse("{}", 2, &v, &err), LB_ENOTFOUND);
    assert_null(v);
    /* lb_json_fail keeps the first message too */
    assert_int_equal(lb_json_fail(&err, LB_EPARSE, "second"), LB_ENOTFOUND);
    assert_string_equal(err.message, "missing field \"zzz\"");
    json_decref(o);
}

static void
test_ids_and_lsn_values(void **state)
{
    (void)state;
    assert_true(lb_json_is_id("0123456789abcdef0123456789abcdef"));
    assert_true(lb_json_is_id("ffffffffffffffffffffffffffffffff"));
    assert_false(lb_json_is_id("0123456789abcdef0123456789abcde"));   /* 31 */
    assert_false(lb_json_is_id("0123456789abcdef0123456789abcdef0")); /* 33 */
    assert_false(lb_json_is_id("0123456789abcdef0123456789abcdeg"));
    assert_false(lb_json_is_id("0123456789ABCDEF0123456789abcdef"));
    assert_false(lb_json_is_id(""));
    assert_false(lb_json_is_id(NULL));
    json_t *s = lb_json_lsn(0x16B3F10);
    assert_string_equal(json_string_value(s), "0/16B3F10");
    json_decref(s);
    s = lb_json_lsn(UINT64_MAX);
    assert_string_equal(json_string_value(s), "FFFFFFFF/FFFFFFFF");
    json_decref(s);
}

/* ---- through a server: the one helper that answers 400 ---- */

static size_t
collect(char *ptr, size_t size, size_t n, void *userdata)
{
    lb_buf_append(userdata, ptr, size * n);
    return size * n;
}

static long
post(int port, const char *path, const char *body, lb_buf *out)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    return status;
}

static int
h_branch(lb_http_request *req, void *arg)
{
    (void)arg;
    lb_json_error err = LB_JSON_ERROR_INIT;
    json_t *body = NULL;
    char tenant[LB_ID_STRLEN], parent[LB_ID_STRLEN];
    lb_lsn lsn = 0;
    const char *name = NULL;
    lb_json_param_id(req, "tenant_id", tenant, &err);
    lb_json_parse_request(req, &body, &err);
    lb_json_req_id(body, "parent_timeline_id", parent, &err);
    lb_json_opt_lsn(body, "lsn", 0, &lsn, &err);
    lb_json_opt_str(body, "name", "main", &name, &err);
    if (err.failed) {
        json_decref(body);
        return lb_json_respond_bad_request(req, &err);
    }
    json_t *reply = json_pack("{s:s,s:s,s:o,s:s}", "tenant_id", tenant, "parent", parent, "lsn",
                              lb_json_lsn(lsn), "name", name);
    json_decref(body); /* name pointed into body; json_pack copied it */
    return lb_json_respond(req, 201, reply);
}

static int
h_null_body(lb_http_request *req, void *arg)
{
    (void)arg;
    return lb_json_respond(req, 200, NULL); /* -ENOMEM: the server answers 500 */
}

static void
test_bad_request_helper_over_http(void **state)
{
    (void)state;
    lb_metrics *m;
    assert_int_equal(lb_metrics_new(&m), 0);
    lb_http_server_config cfg = {.metrics = m};
    lb_http_server *s;
    assert_int_equal(lb_http_server_new(&cfg, &s), 0);
    assert_int_equal(
        lb_http_server_route(s, "POST", "/v1/tenant/{tenant_id}/branch", h_branch, NULL), 0);
    assert_int_equal(lb_http_server_route(s, "POST", "/null", h_null_body, NULL), 0);
    assert_int_equal(lb_http_server_start(s), 0);
    int port = lb_http_server_port(s);
    const char *good_path = "/v1/tenant/00000000000000000000000000000001/branch";

    struct {
        const char *path;
        const char *body;
        long status;
        const char *reply;
    } cases[] = {
        {good_path, "{\"parent_timeline_id\": \"00000000000000000000000000000002\"}", 201,
         "{\"tenant_id\":\"00000000000000000000000000000001\",\"parent\":"
         "\"00000000000000000000000000000002\",\"lsn\":\"0/0\",\"name\":\"main\"}"},
        {good_path, "{", 400,
         "{\"error\":\"malformed JSON at line 1 column 1: string or '}' expected near end of "
         "file\"}"},
        {good_path, "{}", 400, "{\"error\":\"missing field \\\"parent_timeline_id\\\"\"}"},
        {good_path,
         "{\"parent_timeline_id\": \"00000000000000000000000000000002\", \"lsn\": \"x\"}", 400,
         "{\"error\":\"field \\\"lsn\\\" must be an LSN like \\\"0/16B3F10\\\"\"}"},
        {"/v1/tenant/nope/branch", "{}", 400,
         "{\"error\":\"path parameter \\\"tenant_id\\\" must be an id of 32 lowercase hex "
         "characters\"}"},
        {"/null", "{}", 500, "{\"error\":\"Cannot allocate memory\"}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lb_buf out = LB_BUF_INIT;
        assert_int_equal(post(port, cases[i].path, cases[i].body, &out), cases[i].status);
        assert_non_null(out.data);
        assert_string_equal(out.data, cases[i].reply);
        lb_buf_free(&out);
    }
    lb_http_server_free(s);
    lb_metrics_free(m);
}

int
main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_refuses_bad_bodies_with_reason),
        cmocka_unit_test(test_required_getters),
        cmocka_unit_test(test_each_error_names_the_field),
        cmocka_unit_test(test_optional_fields_take_defaults),
        cmocka_unit_test(test_error_is_sticky),
        cmocka_unit_test(test_ids_and_lsn_values),
        cmocka_unit_test(test_bad_request_helper_over_http),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
