/* test_http.c — the admin HTTP API through libcurl against an in-process server on a free port. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pd/pd.h"
#include "proto/log.h"
#include "tests/lib/pd_mock.h"

#define TOKEN "s3cret-token"

struct fixture {
    struct pd_mock m;
    struct pd_http *h;
    char base[64];
};

struct resp {
    long status;
    char *body;
    size_t len;
    char allow[64];
    char ctype[128];
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    struct resp *r = ctx;
    char *b = realloc(r->body, r->len + size * n + 1);
    assert_non_null(b);
    memcpy(b + r->len, p, size * n);
    r->body = b;
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    struct resp *r = ctx;
    size_t len = size * n;
    if (len > 7 && strncasecmp(p, "Allow: ", 7) == 0)
        snprintf(r->allow, sizeof r->allow, "%.*s", (int)(len - 9), p + 7);
    if (len > 14 && strncasecmp(p, "Content-Type: ", 14) == 0)
        snprintf(r->ctype, sizeof r->ctype, "%.*s", (int)(len - 16), p + 14);
    return len;
}

/* req performs method on base+path with an optional body (len bytes) and bearer token. */
static void req_len(struct fixture *f, const char *method, const char *path, const char *body,
                    size_t len, const char *token, struct resp *r)
{
    memset(r, 0, sizeof *r);
    CURL *cu = curl_easy_init();
    assert_non_null(cu);
    char url[1024];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    struct curl_slist *hdrs = NULL;
    char auth[256];
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: %s", token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(cu, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT, 10L);
    if (body) {
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    CURLcode rc = curl_easy_perform(cu);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(cu);
    if (r->body == NULL)
        r->body = calloc(1, 1);
}

static void req(struct fixture *f, const char *method, const char *path, const char *body,
                const char *token, struct resp *r)
{
    req_len(f, method, path, body, body ? strlen(body) : 0, token, r);
}

/* get_json: GET path, expect status, return the parsed body (caller decrefs). */
static json_t *call_json(struct fixture *f, const char *method, const char *path, const char *body,
                         long status)
{
    struct resp r;
    req(f, method, path, body, "Bearer " TOKEN, &r);
    if (r.status != status)
        fail_msg("%s %s: status %ld, want %ld: %s", method, path, r.status, status, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    if (j == NULL)
        fail_msg("%s %s: body is not JSON: %s", method, path, r.body);
    if (status >= 400) {
        /* Every error has the {"error": "..."} shape. */
        assert_true(json_is_string(json_object_get(j, "error")));
        assert_string_equal(r.ctype, "application/json");
    }
    free(r.body);
    return j;
}

static long status_of(struct fixture *f, const char *method, const char *path, const char *body,
                      const char *token)
{
    struct resp r;
    req(f, method, path, body, token, &r);
    if (r.status >= 400) {
        json_t *j = json_loads(r.body, 0, NULL);
        if (j == NULL || !json_is_string(json_object_get(j, "error")))
            fail_msg("%s %s: error body not {\"error\"}: %s", method, path, r.body);
        json_decref(j);
    }
    free(r.body);
    return r.status;
}

static json_int_t jint(json_t *o, const char *path)
{
    /* path like "a.b.c" through objects */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = o;
    for (char *save, *tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, tok);
    if (!json_is_integer(cur))
        fail_msg("%s is not an integer", path);
    return json_integer_value(cur);
}

static const char *jstr(json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));
    if (s == NULL)
        fail_msg("%s is not a string", name);
    return s;
}

static const uint64_t S123[] = {1, 2, 3};

static int setup(void **state)
{
    log_current_level = LOG_ERROR;
    struct fixture *f = calloc(1, sizeof *f);
    pd_mock_open(&f->m);
    pd_mock_add_store(&f->m, 2);
    pd_mock_add_store(&f->m, 3);
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, 10, "", "", 2, 1, 96, 1, S123, 3);
    assert_int_equal(pd_region_set_keys(&r, "", 0, "\x01\xab", 2), PD_OK);
    assert_int_equal(pd_cluster_region_heartbeat(f->m.c, &r, NULL, NULL), PD_OK);
    pd_mock_region(&r, 11, "", "", 2, 1, 1, 2, S123, 3);
    assert_int_equal(pd_region_set_keys(&r, "\x01\xab", 2, "", 0), PD_OK);
    assert_int_equal(pd_cluster_region_heartbeat(f->m.c, &r, NULL, NULL), PD_OK);
    pd_region_clear(&r);
    char err[256];
    if (pd_http_start(f->m.c, "127.0.0.1:0", TOKEN, "127.0.0.1:2379", &f->h, err, sizeof err) !=
        PD_OK)
        fail_msg("http start: %s", err);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u", (unsigned)pd_http_port(f->h));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    pd_http_stop(f->h);
    pd_mock_close(&f->m);
    free(f);
    return 0;
}

/* The read-only paths answer 200 with PD's shapes: health, members, cluster, config, stores,
 * store, regions (hex keys), region by id and key, schedulers, tso, gc safe point. */
static void test_read_paths(void **state)
{
    struct fixture *f = *state;
    json_t *j = call_json(f, "GET", "/pd/api/v1/health", NULL, 200);
    assert_true(json_is_true(json_object_get(json_array_get(j, 0), "health")));
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/members", NULL, 200);
    assert_int_equal(jint(j, "header.cluster_id"), (json_int_t)pd_cluster_id(f->m.c));
    assert_int_equal(json_array_size(json_object_get(j, "members")), 1);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/cluster", NULL, 200);
    assert_int_equal(jint(j, "id"), (json_int_t)pd_cluster_id(f->m.c));
    assert_int_equal(jint(j, "max_peer_count"), 3);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/config", NULL, 200);
    assert_int_equal(jint(j, "max-replicas"), 3);
    assert_string_equal(jstr(j, "max-store-down-time"), "30m0s");
    /* PD's defaults for the limits and caps */
    assert_int_equal(jint(j, "leader-schedule-limit"), 4);
    assert_int_equal(jint(j, "region-schedule-limit"), 2048);
    assert_int_equal(jint(j, "replica-schedule-limit"), 64);
    assert_int_equal(jint(j, "max-pending-peer-count"), 64);
    assert_int_equal(jint(j, "max-snapshot-count"), 64);
    json_decref(j);

    j = call_json(f, "GET", "/pd/api/v1/stores", NULL, 200);
    assert_int_equal(jint(j, "count"), 3);
    json_t *s0 = json_array_get(json_object_get(j, "stores"), 0);
    assert_int_equal(jint(s0, "store.id"), 1);
    assert_string_equal(jstr(json_object_get(s0, "store"), "address"), "127.0.0.1:20001");
    assert_string_equal(jstr(json_object_get(s0, "store"), "state_name"), "Up");
    assert_int_equal(jint(s0, "status.region_count"), 2);
    assert_int_equal(jint(s0, "status.leader_count"), 1);
    assert_int_equal(jint(s0, "status.region_size"), 97);
    assert_true(strlen(jstr(json_object_get(s0, "status"), "last_heartbeat_ts")) > 10);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/store/2", NULL, 200);
    assert_int_equal(jint(j, "store.id"), 2);
    assert_int_equal(jint(j, "status.leader_count"), 1);
    json_decref(j);

    j = call_json(f, "GET", "/pd/api/v1/regions", NULL, 200);
    assert_int_equal(jint(j, "count"), 2);
    json_t *r0 = json_array_get(json_object_get(j, "regions"), 0);
    assert_int_equal(jint(r0, "id"), 10);
    assert_string_equal(jstr(r0, "start_key"), "");
    assert_string_equal(jstr(r0, "end_key"), "01AB");
    assert_int_equal(jint(r0, "epoch.version"), 2);
    assert_int_equal(jint(r0, "epoch.conf_ver"), 1);
    assert_int_equal(json_array_size(json_object_get(r0, "peers")), 3);
    assert_int_equal(jint(r0, "leader.store_id"), 1);
    assert_int_equal(jint(r0, "approximate_size"), 96);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/region/id/11", NULL, 200);
    assert_string_equal(jstr(j, "start_key"), "01AB");
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/region/key/01ac?format=hex", NULL, 200);
    assert_int_equal(jint(j, "id"), 11);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/region/key/%01", NULL, 200); /* raw key 0x01 */
    assert_int_equal(jint(j, "id"), 10);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/region/key/zz%2Fwith%2Fslashes", NULL, 200);
    assert_int_equal(jint(j, "id"), 11);
    json_decref(j);

    j = call_json(f, "GET", "/pd/api/v1/schedulers", NULL, 200);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 2);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/tso", NULL, 200);
    json_int_t t1 = jint(j, "ts");
    assert_int_equal(jint(j, "physical"), t1 >> 18);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/tso", NULL, 200);
    assert_true(jint(j, "ts") > t1);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/gc/safepoint", NULL, 200);
    assert_int_equal(jint(j, "safe_point"), 0);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/operators", NULL, 200);
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
}

/* /metrics (and its /pd/api/v1 alias) serve Prometheus text with counters and per-store
 * gauges. */
static void test_metrics(void **state)
{
    struct fixture *f = *state;
    struct resp r;
    req(f, "GET", "/metrics", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "text/plain"));
    assert_non_null(strstr(r.body, "# TYPE pd_region_heartbeats_total counter\n"
                                   "pd_region_heartbeats_total 2\n"));
    assert_non_null(strstr(r.body, "pd_store_regions{store=\"2\",state=\"Up\"} 2\n"));
    assert_non_null(strstr(r.body, "pd_regions 2\n"));
    free(r.body);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/metrics", NULL, NULL), 200);
}

/* Config, schedulers, operators and store states change through POST/DELETE, and the change
 * shows on the next GET. */
static void test_mutations(void **state)
{
    struct fixture *f = *state;
    json_t *j = call_json(f, "POST", "/pd/api/v1/config",
                          "{\"max-replicas\": 5, \"max-store-down-time\": \"1h\"}", 200);
    assert_int_equal(jint(j, "max-replicas"), 5);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/config", NULL, 200);
    assert_string_equal(jstr(j, "max-store-down-time"), "1h0m0s");
    json_decref(j);
    j = call_json(f, "POST", "/pd/api/v1/config", "{\"max_peer_count\": 3}", 200);
    json_decref(j);
    j = call_json(f, "POST", "/pd/api/v1/config",
                  "{\"region-schedule-limit\": 16, \"leader-schedule-limit\": 2, "
                  "\"max-pending-peer-count\": 8, \"max-snapshot-count\": 3}",
                  200);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/config", NULL, 200);
    assert_int_equal(jint(j, "region-schedule-limit"), 16);
    assert_int_equal(jint(j, "leader-schedule-limit"), 2);
    assert_int_equal(jint(j, "max-pending-peer-count"), 8);
    assert_int_equal(jint(j, "max-snapshot-count"), 3);
    json_decref(j);

    json_decref(
        call_json(f, "DELETE", "/pd/api/v1/schedulers/balance-leader-scheduler", NULL, 200));
    j = call_json(f, "GET", "/pd/api/v1/schedulers", NULL, 200);
    assert_int_equal(json_array_size(j), 1);
    assert_string_equal(json_string_value(json_array_get(j, 0)), "balance-region-scheduler");
    json_decref(j);
    json_decref(
        call_json(f, "DELETE", "/pd/api/v1/schedulers/balance-leader-scheduler", NULL, 404));
    json_decref(call_json(f, "POST", "/pd/api/v1/schedulers",
                          "{\"name\": \"balance-leader-scheduler\"}", 200));
    json_decref(call_json(f, "POST", "/pd/api/v1/schedulers",
                          "{\"name\": \"balance-leader-scheduler\"}", 409));
    json_decref(call_json(f, "POST", "/pd/api/v1/schedulers", "{\"name\": \"nope\"}", 400));

    json_decref(call_json(f, "POST", "/pd/api/v1/operators",
                          "{\"name\": \"transfer-leader\", \"region_id\": 10, \"to_store_id\": 2}",
                          200));
    j = call_json(f, "GET", "/pd/api/v1/operators/10", NULL, 200);
    assert_string_equal(jstr(j, "desc"), "admin-transfer-leader");
    assert_string_equal(jstr(j, "status"), "RUNNING");
    json_t *st = json_array_get(json_object_get(j, "steps"), 0);
    assert_string_equal(jstr(st, "type"), "transfer-leader");
    assert_int_equal(jint(st, "store_id"), 2);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/operators", NULL, 200);
    assert_int_equal(json_array_size(j), 1);
    json_decref(j);
    json_decref(call_json(f, "POST", "/pd/api/v1/operators",
                          "{\"name\": \"remove-peer\", \"region_id\": 10, \"store_id\": 3}", 409));
    json_decref(call_json(f, "DELETE", "/pd/api/v1/operators/10", NULL, 200));
    json_decref(call_json(f, "DELETE", "/pd/api/v1/operators/10", NULL, 404));
    j = call_json(f, "GET", "/pd/api/v1/operators/10", NULL, 200); /* ended: on record */
    assert_string_equal(jstr(j, "status"), "CANCEL");
    json_decref(j);
    json_decref(call_json(f, "POST", "/pd/api/v1/operators",
                          "{\"name\": \"remove-peer\", \"region_id\": 10, \"store_id\": 3}", 200));
    json_decref(call_json(f, "DELETE", "/pd/api/v1/operators/10", NULL, 200));
    pd_mock_add_store(&f->m, 4);
    json_decref(call_json(f, "POST", "/pd/api/v1/operators",
                          "{\"name\": \"add-peer\", \"region_id\": 10, \"to_store_id\": 4}", 200));
    json_decref(call_json(f, "POST", "/pd/api/v1/operators",
                          "{\"name\": \"add-peer\", \"region_id\": 11, \"to_store_id\": 99}", 404));
    json_decref(call_json(f, "POST", "/pd/api/v1/operators",
                          "{\"name\": \"add-peer\", \"region_id\": 99, \"to_store_id\": 4}", 404));

    json_decref(call_json(f, "POST", "/pd/api/v1/store/3/state?state=Offline", NULL, 200));
    j = call_json(f, "GET", "/pd/api/v1/store/3", NULL, 200);
    assert_string_equal(jstr(json_object_get(j, "store"), "state_name"), "Offline");
    json_decref(j);
    json_decref(call_json(f, "POST", "/pd/api/v1/store/3/state?state=Up", NULL, 200));
    json_decref(call_json(f, "POST", "/pd/api/v1/store/3/state?state=Tombstone", NULL, 409));
    json_decref(call_json(f, "POST", "/pd/api/v1/store/3/state?state=Sideways", NULL, 400));
    json_decref(call_json(f, "DELETE", "/pd/api/v1/store/2", NULL, 200));
    j = call_json(f, "GET", "/pd/api/v1/store/2", NULL, 200);
    assert_string_equal(jstr(json_object_get(j, "store"), "state_name"), "Offline");
    json_decref(j);
}

/* Every error status: 404 unknown paths and objects, 400 bad ids, bad JSON, unknown fields, bad
 * values and oversized bodies, 405 wrong methods (with Allow). */
static void test_error_statuses(void **state)
{
    struct fixture *f = *state;
    const char *tok = "Bearer " TOKEN;
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/nope", NULL, NULL), 404);
    assert_int_equal(status_of(f, "GET", "/pd/api/v2/stores", NULL, NULL), 404);
    assert_int_equal(status_of(f, "GET", "/", NULL, NULL), 404);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/store/", NULL, NULL), 404);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/store/1/extra/bits", NULL, NULL), 404);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/store/77", NULL, NULL), 404);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/region/id/77", NULL, NULL), 404);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/operators/10", NULL, NULL), 404);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/store/abc", NULL, NULL), 400);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/store/-1", NULL, NULL), 400);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/store/0", NULL, NULL), 400);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/store/99999999999999999999999", NULL, NULL),
                     400);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/region/id/1x", NULL, NULL), 400);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/region/key/XYZ?format=hex", NULL, NULL), 400);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/region/key/ABC?format=hex", NULL, NULL), 400);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/region/key/a?format=base64", NULL, NULL), 400);
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/config", "{not json", tok), 400);
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/config", "", tok), 400);
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/config", "[1]", tok), 400);
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/config", "{\"colour\": \"red\"}", tok), 400);
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/config", "{\"max-replicas\": -3}", tok), 400);
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/config", "{\"max-replicas\": 1e99}", tok),
                     400);
    assert_int_equal(
        status_of(f, "POST", "/pd/api/v1/config", "{\"max-store-down-time\": \"soon\"}", tok), 400);
    /* Shorter than two store heartbeats: live stores would look down between two. */
    assert_int_equal(
        status_of(f, "POST", "/pd/api/v1/config", "{\"max-store-down-time\": \"10s\"}", tok), 400);
    assert_int_equal(
        status_of(f, "POST", "/pd/api/v1/config", "{\"max-pending-peer-count\": 0}", tok), 400);
    assert_int_equal(
        status_of(f, "POST", "/pd/api/v1/config", "{\"max-snapshot-count\": \"many\"}", tok), 400);
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/operators",
                               "{\"name\": \"dance\", "
                               "\"region_id\": 10}",
                               tok),
                     400);
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/operators",
                               "{\"name\": \"add-peer\", \"region_id\": \"ten\"}", tok),
                     400);
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/operators",
                               "{\"name\": \"add-peer\", \"region_id\": 10}", tok),
                     400);
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/schedulers", "{\"name\": 7}", tok), 400);
    size_t big = 70 * 1024;
    char *body = malloc(big);
    memset(body, ' ', big);
    body[0] = '{';
    body[big - 1] = '}';
    struct resp r;
    req_len(f, "POST", "/pd/api/v1/config", body, big, tok, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "larger"));
    free(r.body);
    free(body);

    req(f, "PUT", "/pd/api/v1/config", "{}", tok, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, POST");
    free(r.body);
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/stores", "{}", tok), 405);
    assert_int_equal(status_of(f, "DELETE", "/pd/api/v1/regions", NULL, tok), 405);
    assert_int_equal(
        status_of(f, "GET", "/pd/api/v1/schedulers/balance-leader-scheduler", NULL, tok), 405);
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/tso", NULL, tok), 405);
    assert_int_equal(status_of(f, "PATCH", "/pd/api/v1/store/1", NULL, tok), 405);
    /* nothing above changed anything */
    json_t *j = call_json(f, "GET", "/pd/api/v1/config", NULL, 200);
    assert_int_equal(jint(j, "max-replicas"), 3);
    json_decref(j);
}

/* With an admin token, mutating calls without "Authorization: Bearer <token>" get 401 and change
 * nothing; reads need no token. */
static void test_admin_token(void **state)
{
    struct fixture *f = *state;
    const char *bad[] = {
        NULL,           "Bearer wrong", "Bearer " TOKEN "x", "Bearer s3cret", TOKEN,
        "Basic " TOKEN, "Bearer "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(status_of(f, "POST", "/pd/api/v1/config", "{\"max-replicas\": 1}", bad[i]),
                         401);
        assert_int_equal(
            status_of(f, "DELETE", "/pd/api/v1/schedulers/balance-leader-scheduler", NULL, bad[i]),
            401);
        assert_int_equal(status_of(f, "DELETE", "/pd/api/v1/store/2", NULL, bad[i]), 401);
        assert_int_equal(
            status_of(f, "POST", "/pd/api/v1/store/2/state?state=Offline", NULL, bad[i]), 401);
    }
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/stores", NULL, NULL), 200);
    json_t *j = call_json(f, "GET", "/pd/api/v1/config", NULL, 200);
    assert_int_equal(jint(j, "max-replicas"), 3);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/store/2", NULL, 200);
    assert_string_equal(jstr(json_object_get(j, "store"), "state_name"), "Up");
    json_decref(j);
    assert_int_equal(
        status_of(f, "POST", "/pd/api/v1/config", "{\"max-replicas\": 1}", "Bearer " TOKEN), 200);
}

/* Without a token configured, mutating calls are open (loopback deployments). */
static void test_no_token_configured(void **state)
{
    struct fixture *f = *state;
    pd_http_stop(f->h);
    char err[128];
    assert_int_equal(pd_http_start(f->m.c, "127.0.0.1:0", NULL, NULL, &f->h, err, sizeof err),
                     PD_OK);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u", (unsigned)pd_http_port(f->h));
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/config", "{\"max-replicas\": 2}", NULL), 200);
    assert_int_equal(pd_http_start(f->m.c, "nonsense", NULL, NULL, &f->h, err, sizeof err),
                     PD_ERR_INVALID);
    assert_int_equal(pd_http_start(f->m.c, "127.0.0.1:99999", NULL, NULL, &f->h, err, sizeof err),
                     PD_ERR_INVALID);
}

/* split_body builds {"split_keys": [...]} from C-string JSON values (already quoted). */
static char *split_body(const char *const *vals, size_t n)
{
    size_t len = 32;
    for (size_t i = 0; i < n; i++)
        len += strlen(vals[i]) + 2;
    char *b = malloc(len);
    assert_non_null(b);
    strcpy(b, "{\"split_keys\": [");
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(b, ", ");
        strcat(b, vals[i]);
    }
    strcat(b, "]}");
    return b;
}

static size_t operator_count(struct fixture *f)
{
    json_t *j = call_json(f, "GET", "/pd/api/v1/operators", NULL, 200);
    size_t n = json_array_size(j);
    json_decref(j);
    return n;
}

/* POST /regions/split with good hex keys (out of order, duplicated, lower and upper case) queues
 * one split-region operator per region, shown in /operators with its keys, and answers PD's
 * shape; asking again for a region being split is 409. */
static void test_regions_split(void **state)
{
    struct fixture *f = *state;
    json_t *j = call_json(f, "POST", "/pd/api/v1/regions/split",
                          "{\"split_keys\": [\"03\", \"0100\", \"02\", \"0100\", \"0a\"]}", 200);
    assert_int_equal(jint(j, "processed-percentage"), 100);
    json_t *ids = json_object_get(j, "regions-id");
    assert_int_equal(json_array_size(ids), 2);
    assert_int_equal(json_integer_value(json_array_get(ids, 0)), 10);
    assert_int_equal(json_integer_value(json_array_get(ids, 1)), 11);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/operators/11", NULL, 200);
    assert_string_equal(jstr(j, "desc"), "split-region");
    assert_string_equal(jstr(j, "kind"), "split-region");
    assert_string_equal(jstr(j, "status"), "RUNNING");
    json_t *st = json_array_get(json_object_get(j, "steps"), 0);
    assert_string_equal(jstr(st, "type"), "split-region");
    assert_int_equal(jint(st, "key_count"), 3);
    json_t *keys = json_object_get(st, "keys");
    assert_int_equal(json_array_size(keys), 3);
    assert_string_equal(json_string_value(json_array_get(keys, 0)), "02");
    assert_string_equal(json_string_value(json_array_get(keys, 1)), "03");
    assert_string_equal(json_string_value(json_array_get(keys, 2)), "0A");
    json_decref(j);
    assert_int_equal(operator_count(f), 2);
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/regions/split", "{\"split_keys\": [\"05\"]}",
                               "Bearer " TOKEN),
                     409);
    /* The operator ends once the region reports a higher version. */
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, 10, "", "", 3, 1, 1, 1, S123, 3);
    assert_int_equal(pd_region_set_keys(&r, "", 0, "\x01\x00", 2), PD_OK);
    assert_int_equal(pd_cluster_region_heartbeat(f->m.c, &r, NULL, NULL), PD_OK);
    pd_region_clear(&r);
    j = call_json(f, "GET", "/pd/api/v1/operators/10", NULL, 200);
    assert_string_equal(jstr(j, "status"), "SUCCESS");
    json_decref(j);
    assert_int_equal(operator_count(f), 1);
}

/* Every bad split request is a 4xx with a JSON message and queues nothing: no token, not JSON,
 * no or an empty key list, a list that is not one, a key that is not a hex string, an empty key,
 * a region's own start key (also next to good keys), too many or too long keys, a key no region
 * holds, and the wrong method. */
static void test_regions_split_bad_input(void **state)
{
    struct fixture *f = *state;
    const char *tok = "Bearer " TOKEN, *path = "/pd/api/v1/regions/split";
    const char *good = "{\"split_keys\": [\"02\"]}";
    assert_int_equal(status_of(f, "POST", path, good, NULL), 401);
    assert_int_equal(status_of(f, "POST", path, good, "Bearer nope"), 401);
    const char *bad[] = {
        "{not json",
        "",
        "[\"02\"]",
        "{}",
        "{\"split_keys\": []}",
        "{\"split_keys\": \"02\"}",
        "{\"split_keys\": null}",
        "{\"split_keys\": [2]}",
        "{\"split_keys\": [null]}",
        "{\"split_keys\": [\"0\"]}",
        "{\"split_keys\": [\"zz\"]}",
        "{\"split_keys\": [\"0x02\"]}",
        "{\"split_keys\": [\"02 \"]}",
        "{\"split_keys\": [\"\"]}",
        "{\"split_keys\": [\"02\", \"\"]}",
        "{\"split_keys\": [\"01AB\"]}",
        "{\"split_keys\": [\"02\", \"01ab\", \"0100\"]}",
        "{\"split_keys\": [\"02\", \"0\\u00002\"]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long st = status_of(f, "POST", path, bad[i], tok);
        if (st != 400)
            fail_msg("body %s: status %ld, want 400", bad[i], st);
    }
    /* The start key's message names the region. */
    struct resp r;
    req(f, "POST", path, "{\"split_keys\": [\"01AB\"]}", tok, &r);
    assert_non_null(strstr(r.body, "start key of region 11"));
    free(r.body);
    /* More keys than PD_MAX_SPLIT_KEYS. */
    const char *many[PD_MAX_SPLIT_KEYS + 1];
    for (size_t i = 0; i <= PD_MAX_SPLIT_KEYS; i++)
        many[i] = "\"02\"";
    char *body = split_body(many, PD_MAX_SPLIT_KEYS + 1);
    assert_int_equal(status_of(f, "POST", path, body, tok), 400);
    free(body);
    /* A key longer than PD_MAX_KEY_BYTES. */
    size_t hex_len = 2 * (PD_MAX_KEY_BYTES + 1);
    char *longkey = malloc(hex_len + 3);
    longkey[0] = '"';
    memset(longkey + 1, 'A', hex_len);
    longkey[hex_len + 1] = '"';
    longkey[hex_len + 2] = '\0';
    const char *one[] = {longkey};
    body = split_body(one, 1);
    assert_int_equal(status_of(f, "POST", path, body, tok), 400);
    free(body);
    free(longkey);
    struct resp m;
    req(f, "GET", path, NULL, NULL, &m);
    assert_int_equal(m.status, 405);
    assert_string_equal(m.allow, "POST");
    free(m.body);
    assert_int_equal(operator_count(f), 0);
    /* A key in a hole: region 11 shrinks to [01AB, 05), nothing holds 07. */
    struct pd_region reg;
    pd_region_init(&reg);
    pd_mock_region(&reg, 11, "", "", 3, 1, 1, 2, S123, 3);
    assert_int_equal(pd_region_set_keys(&reg, "\x01\xab", 2, "\x05", 1), PD_OK);
    assert_int_equal(pd_cluster_region_heartbeat(f->m.c, &reg, NULL, NULL), PD_OK);
    pd_region_clear(&reg);
    assert_int_equal(status_of(f, "POST", path, "{\"split_keys\": [\"02\", \"07\"]}", tok), 404);
    assert_int_equal(operator_count(f), 0);
    /* The same keys without the one in the hole are fine. */
    assert_int_equal(status_of(f, "POST", path, good, tok), 200);
    assert_int_equal(operator_count(f), 1);
}

/* Random garbage bodies and paths never crash the server and always get a JSON error or a
 * success. Seed: PD_TEST_SEED. */
static void test_garbage_input(void **state)
{
    struct fixture *f = *state;
    unsigned seed = getenv("PD_TEST_SEED") ? (unsigned)atoi(getenv("PD_TEST_SEED")) : 777u;
    print_message("seed %u (PD_TEST_SEED)\n", seed);
    srand(seed);
    const char *paths[] = {"/pd/api/v1/config", "/pd/api/v1/operators", "/pd/api/v1/schedulers",
                           "/pd/api/v1/store/1/state", "/pd/api/v1/regions/split"};
    const char *pieces[] = {"{",
                            "}",
                            "\"name\"",
                            ":",
                            ",",
                            "\"region_id\"",
                            "10",
                            "-1",
                            "\"add-peer\"",
                            "[",
                            "]",
                            "null",
                            "\"max-replicas\"",
                            "\\u0000",
                            "1e400",
                            "\"to_store_id\"",
                            "true",
                            "\"split_keys\"",
                            "\"0A\"",
                            "\"\""};
    for (int i = 0; i < 200; i++) {
        char body[512] = "";
        int n = rand() % 12;
        for (int k = 0; k < n; k++)
            strncat(body, pieces[rand() % (int)(sizeof pieces / sizeof pieces[0])],
                    sizeof body - strlen(body) - 1);
        long st = status_of(f, "POST", paths[rand() % 5], body, "Bearer " TOKEN);
        assert_true(st == 200 || st == 400 || st == 404 || st == 409);
    }
    for (int i = 0; i < 100; i++) {
        char path[128] = "/pd/api/v1/";
        for (int k = 0; k < 12; k++) {
            char ch = "ab/%09Zx.?="[rand() % 11];
            size_t l = strlen(path);
            path[l] = ch;
            path[l + 1] = '\0';
        }
        struct resp r;
        req(f, "GET", path, NULL, NULL, &r);
        assert_true(r.status == 400 || r.status == 404);
        free(r.body);
    }
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/health", NULL, NULL), 200);
}

/* Operators that ended are listed newest first with how they ended; the limit is checked. */
static void test_operator_records(void **state)
{
    struct fixture *f = *state;
    json_t *j = call_json(f, "GET", "/pd/api/v1/operators/records", NULL, 200);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
    json_decref(call_json(f, "POST", "/pd/api/v1/operators",
                          "{\"name\": \"transfer-leader\", \"region_id\": 10, \"to_store_id\": 2}",
                          200));
    json_decref(call_json(f, "DELETE", "/pd/api/v1/operators/10", NULL, 200));
    json_decref(call_json(f, "POST", "/pd/api/v1/operators",
                          "{\"name\": \"transfer-leader\", \"region_id\": 11, \"to_store_id\": 3}",
                          200));
    json_decref(call_json(f, "DELETE", "/pd/api/v1/operators/11", NULL, 200));
    j = call_json(f, "GET", "/pd/api/v1/operators/records", NULL, 200);
    assert_int_equal(json_array_size(j), 2);
    assert_int_equal(jint(json_array_get(j, 0), "region_id"), 11); /* newest first */
    assert_int_equal(jint(json_array_get(j, 1), "region_id"), 10);
    assert_string_equal(jstr(json_array_get(j, 0), "status"), "CANCEL");
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/operators/records?limit=1", NULL, 200);
    assert_int_equal(json_array_size(j), 1);
    json_decref(j);
    json_decref(call_json(f, "GET", "/pd/api/v1/operators/records?limit=0", NULL, 400));
    json_decref(call_json(f, "GET", "/pd/api/v1/operators/records?limit=x", NULL, 400));
}

/* /dashboard serves the page without a token, self-contained (nothing loaded from elsewhere),
 * reading the admin API with GETs only; other methods are refused. */
static void test_dashboard_page(void **state)
{
    struct fixture *f = *state;
    struct resp r;
    req(f, "GET", "/dashboard", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "text/html"));
    assert_non_null(strstr(r.body, "<title>TinyKV cluster</title>"));
    assert_non_null(strstr(r.body, "/pd/api/v1"));
    assert_null(strstr(r.body, "src=\"http"));
    assert_null(strstr(r.body, "<link"));
    assert_null(strstr(r.body, "@import"));
    assert_null(strstr(r.body, "method:")); /* fetch with its default method, GET */
    free(r.body);
    assert_int_equal(status_of(f, "GET", "/dashboard/", NULL, NULL), 200);
    assert_int_equal(status_of(f, "POST", "/dashboard", "", "Bearer " TOKEN), 405);
}

/* many_regions replaces the fixture's two regions by 50 (ids 100.., keys "k00".."k49", the
 * first from "" and the last to ""), region i led by store 1 + i % 3 and on stores 1-2 only
 * when i is even. */
static void many_regions(struct fixture *f)
{
    static const uint64_t s12[] = {1, 2};
    for (int i = 0; i < 50; i++) {
        char start[8], end[8];
        snprintf(start, sizeof start, "k%02d", i);
        snprintf(end, sizeof end, "k%02d", i + 1);
        struct pd_region r;
        pd_region_init(&r);
        bool two = i % 2 == 0;
        pd_mock_region(&r, 100 + (uint64_t)i, i == 0 ? "" : start, i == 49 ? "" : end, 3, 1, 1,
                       two ? 1 + (uint64_t)(i % 4 == 0) : 1 + (uint64_t)(i % 3), two ? s12 : S123,
                       two ? 2 : 3);
        assert_int_equal(pd_cluster_region_heartbeat(f->m.c, &r, NULL, NULL), PD_OK);
        pd_region_clear(&r);
    }
}

static json_int_t region_id_at(json_t *j, size_t i)
{
    return jint(json_array_get(json_object_get(j, "regions"), i), "id");
}

/* With 50 regions the region paths page as PD's do: /regions?limit=N&key=HEX from the region
 * holding the key, next page at the last end_key until the end; /regions/key scans between
 * raw (or hex) keys with a default limit of 16; /regions/count; /regions/store/{id}. */
static void test_regions_paging(void **state)
{
    struct fixture *f = *state;
    many_regions(f);
    json_t *j = call_json(f, "GET", "/pd/api/v1/regions/count", NULL, 200);
    assert_int_equal(jint(j, "count"), 50);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/regions", NULL, 200);
    assert_int_equal(jint(j, "count"), 50);
    json_decref(j);
    /* Walk every page of 7. */
    char path[160], key[64] = "";
    size_t seen = 0, pages = 0;
    for (;;) {
        snprintf(path, sizeof path, "/pd/api/v1/regions?limit=7&key=%s", key);
        j = call_json(f, "GET", path, NULL, 200);
        size_t n = (size_t)jint(j, "count");
        assert_true(n <= 7);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(region_id_at(j, i), 100 + (json_int_t)(seen + i));
        seen += n;
        pages++;
        const char *end = jstr(json_array_get(json_object_get(j, "regions"), n - 1), "end_key");
        snprintf(key, sizeof key, "%s", end);
        json_decref(j);
        if (key[0] == '\0')
            break;
    }
    assert_int_equal(seen, 50);
    assert_int_equal(pages, 8);
    /* A key inside a region starts the page at that region: "k105" hex is 6B313035. */
    j = call_json(f, "GET", "/pd/api/v1/regions?limit=2&key=6B313035", NULL, 200);
    assert_int_equal(jint(j, "count"), 2);
    assert_int_equal(region_id_at(j, 0), 110);
    json_decref(j);

    j = call_json(f, "GET", "/pd/api/v1/regions/key?key=k20", NULL, 200);
    assert_int_equal(jint(j, "count"), 16);
    assert_int_equal(region_id_at(j, 0), 120);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/regions/key?key=k20&end_key=k23&limit=100", NULL, 200);
    assert_int_equal(jint(j, "count"), 3);
    assert_int_equal(region_id_at(j, 2), 122);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/regions/key?key=6B3438&format=hex&limit=99999", NULL, 200);
    assert_int_equal(jint(j, "count"), 2);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/regions/key", NULL, 200); /* from the start */
    assert_int_equal(region_id_at(j, 0), 100);
    json_decref(j);

    j = call_json(f, "GET", "/pd/api/v1/regions/store/3", NULL, 200);
    assert_int_equal(jint(j, "count"), 25); /* the odd ones */
    assert_int_equal(region_id_at(j, 0), 101);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/regions/store/1", NULL, 200);
    assert_int_equal(jint(j, "count"), 50);
    json_decref(j);
    j = call_json(f, "GET", "/pd/api/v1/region/key/k333", NULL, 200);
    assert_int_equal(jint(j, "id"), 133);
    json_decref(j);
}

/* Bad paging input is a 4xx with a JSON message: a limit that is not a positive integer, bad
 * hex, an end key not after the start key, a bad format, a bad or unknown store id. */
static void test_regions_paging_bad_input(void **state)
{
    struct fixture *f = *state;
    static const char *const bad400[] = {
        "/pd/api/v1/regions?limit=0",
        "/pd/api/v1/regions?limit=-3",
        "/pd/api/v1/regions?limit=ten",
        "/pd/api/v1/regions?key=6",
        "/pd/api/v1/regions?key=zz",
        "/pd/api/v1/regions/key?key=b&end_key=a",
        "/pd/api/v1/regions/key?key=b&end_key=b",
        "/pd/api/v1/regions/key?key=0g&format=hex",
        "/pd/api/v1/regions/key?format=base64",
        "/pd/api/v1/regions/key?limit=1x",
        "/pd/api/v1/regions/store/abc",
        "/pd/api/v1/regions/store/0",
    };
    for (size_t i = 0; i < sizeof bad400 / sizeof bad400[0]; i++)
        if (status_of(f, "GET", bad400[i], NULL, NULL) != 400)
            fail_msg("%s: want 400", bad400[i]);
    assert_int_equal(status_of(f, "GET", "/pd/api/v1/regions/store/99", NULL, NULL), 404);
    assert_int_equal(status_of(f, "POST", "/pd/api/v1/regions/count", "{}", "Bearer " TOKEN), 405);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_read_paths),
        T(test_metrics),
        T(test_mutations),
        T(test_error_statuses),
        T(test_admin_token),
        T(test_no_token_configured),
        T(test_garbage_input),
        T(test_regions_split),
        T(test_regions_split_bad_input),
        T(test_operator_records),
        T(test_dashboard_page),
        T(test_regions_paging),
        T(test_regions_paging_bad_input),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
