/* test_raw_service.c — the raw KV handlers and the gRPC glue, in-process over loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/rpc.h"
#include "store/engine.h"
#include "server/kv_service.h"
#include "tests/lib/test_util.h"

struct fixture {
    char *dir;
    struct storage *storage;
    struct kv_service svc;
    struct rpc_server *server;
    struct rpc_client *client;
    char addr[64];
};

/* A bidi echo: answers every RawGetRequest with a RawGetResponse whose value is its key. */
static void echo_message(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    (void)arg;
    const Kvrpcpb__RawGetRequest *req = (const Kvrpcpb__RawGetRequest *)msg;
    Kvrpcpb__RawGetResponse resp = KVRPCPB__RAW_GET_RESPONSE__INIT;
    resp.value = req->key;
    rpc_call_send(call, &resp.base);
}

static void echo_end(struct rpc_call *call, int ok, void *arg)
{
    (void)arg;
    rpc_call_finish(call, ok ? RPC_OK : RPC_CANCELLED, NULL);
}

/* A client stream: counts requests, answers once with the count in `value`. */
static void count_message(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    (void)msg;
    (void)arg;
    rpc_call_set_user(call, (void *)((uintptr_t)rpc_call_user(call) + 1));
}

static void count_end(struct rpc_call *call, int ok, void *arg)
{
    (void)arg;
    if (!ok) {
        rpc_call_finish(call, RPC_CANCELLED, NULL);
        return;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lu", (unsigned long)(uintptr_t)rpc_call_user(call));
    Kvrpcpb__RawGetResponse resp = KVRPCPB__RAW_GET_RESPONSE__INIT;
    resp.value.data = (uint8_t *)buf;
    resp.value.len = (size_t)n;
    rpc_call_reply(call, &resp.base);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256] = "";
    f->dir = test_tmpdir_new("tinykv-raw");
    assert_int_equal(standalone_storage_open(f->dir, &f->storage, err, sizeof err), 0);
    f->svc.storage = f->storage;
    struct rpc_method methods[KV_SERVICE_MAX_METHODS + 2];
    size_t n = kv_service_methods(&f->svc, methods);
    methods[n++] = (struct rpc_method){.name = "/test.Echo/Bidi",
                                       .kind = RPC_BIDI_STREAM,
                                       .request = &kvrpcpb__raw_get_request__descriptor,
                                       .on_message = echo_message,
                                       .on_end = echo_end};
    methods[n++] = (struct rpc_method){.name = "/test.Echo/Count",
                                       .kind = RPC_CLIENT_STREAM,
                                       .request = &kvrpcpb__raw_get_request__descriptor,
                                       .on_message = count_message,
                                       .on_end = count_end};
    f->server = rpc_server_new("127.0.0.1:0", methods, n, 2, err, sizeof err);
    assert_non_null(f->server);
    assert_int_equal(rpc_server_start(f->server), 0);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", rpc_server_port(f->server));
    f->client = rpc_client_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rpc_client_free(f->client);
    rpc_server_free(f->server);
    storage_free(f->storage);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static ProtobufCBinaryData bin(const char *s, size_t len)
{
    return (ProtobufCBinaryData){len, (uint8_t *)s};
}

static Kvrpcpb__RawPutResponse *put(struct fixture *f, const char *cf, ProtobufCBinaryData key,
                                    ProtobufCBinaryData value)
{
    Kvrpcpb__RawPutRequest req = KVRPCPB__RAW_PUT_REQUEST__INIT;
    req.cf = (char *)cf;
    req.key = key;
    req.value = value;
    ProtobufCMessage *resp;
    struct rpc_error err;
    assert_int_equal(rpc_client_unary(f->client, f->addr, "/tinykvpb.TinyKv/RawPut", &req.base,
                                      &kvrpcpb__raw_put_response__descriptor, &resp, 5000, &err),
                     0);
    return (Kvrpcpb__RawPutResponse *)resp;
}

static Kvrpcpb__RawGetResponse *get(struct fixture *f, const char *cf, ProtobufCBinaryData key)
{
    Kvrpcpb__RawGetRequest req = KVRPCPB__RAW_GET_REQUEST__INIT;
    req.cf = (char *)cf;
    req.key = key;
    ProtobufCMessage *resp;
    struct rpc_error err;
    assert_int_equal(rpc_client_unary(f->client, f->addr, "/tinykvpb.TinyKv/RawGet", &req.base,
                                      &kvrpcpb__raw_get_response__descriptor, &resp, 5000, &err),
                     0);
    return (Kvrpcpb__RawGetResponse *)resp;
}

static void put_ok(struct fixture *f, const char *cf, const char *k, const char *v)
{
    Kvrpcpb__RawPutResponse *r = put(f, cf, bin(k, strlen(k)), bin(v, strlen(v)));
    assert_true(r->error == NULL || r->error[0] == 0);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* Put then get returns the value, in every CF, with "" meaning default. */
static void test_put_get_every_cf(void **state)
{
    struct fixture *f = *state;
    const char *cfs[] = {"", "default", "lock", "write"};
    for (int i = 0; i < 4; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        put_ok(f, cfs[i], "key", v);
        Kvrpcpb__RawGetResponse *g = get(f, cfs[i], bin("key", 3));
        assert_false(g->not_found);
        assert_int_equal(g->value.len, strlen(v));
        assert_memory_equal(g->value.data, v, strlen(v));
        protobuf_c_message_free_unpacked(&g->base, NULL);
    }
}

/* A missing key answers not_found, without an error. */
static void test_get_missing_is_not_found(void **state)
{
    struct fixture *f = *state;
    Kvrpcpb__RawGetResponse *g = get(f, "", bin("absent", 6));
    assert_true(g->not_found);
    assert_true(g->error == NULL || g->error[0] == 0);
    protobuf_c_message_free_unpacked(&g->base, NULL);
}

/* Binary keys and values (zero bytes, 0xff) round-trip unchanged. */
static void test_binary_keys_and_values(void **state)
{
    struct fixture *f = *state;
    const char key[] = {0, 1, (char)0xff, 0};
    const char val[] = {(char)0xff, 0, 0, 7};
    Kvrpcpb__RawPutResponse *p = put(f, "write", bin(key, 4), bin(val, 4));
    protobuf_c_message_free_unpacked(&p->base, NULL);
    Kvrpcpb__RawGetResponse *g = get(f, "write", bin(key, 4));
    assert_int_equal(g->value.len, 4);
    assert_memory_equal(g->value.data, val, 4);
    protobuf_c_message_free_unpacked(&g->base, NULL);
}

/* Bad input gets the response's error string and changes nothing. */
static void test_bad_input_rejected_without_writing(void **state)
{
    struct fixture *f = *state;
    Kvrpcpb__RawPutResponse *p = put(f, "nope", bin("k", 1), bin("v", 1));
    assert_non_null(p->error);
    assert_non_null(strstr(p->error, "column family"));
    protobuf_c_message_free_unpacked(&p->base, NULL);

    p = put(f, "", bin("", 0), bin("v", 1));
    assert_non_null(strstr(p->error, "empty"));
    protobuf_c_message_free_unpacked(&p->base, NULL);

    char *big_key = calloc(1, KV_MAX_KEY_BYTES + 1);
    memset(big_key, 'k', KV_MAX_KEY_BYTES + 1);
    p = put(f, "", bin(big_key, KV_MAX_KEY_BYTES + 1), bin("v", 1));
    assert_non_null(strstr(p->error, "8 KiB"));
    protobuf_c_message_free_unpacked(&p->base, NULL);
    Kvrpcpb__RawGetResponse *g = get(f, "", bin(big_key, KV_MAX_KEY_BYTES));
    assert_true(g->not_found);
    protobuf_c_message_free_unpacked(&g->base, NULL);
    free(big_key);

    char *big_value = calloc(1, KV_MAX_VALUE_BYTES + 1);
    p = put(f, "", bin("big", 3), bin(big_value, KV_MAX_VALUE_BYTES + 1));
    assert_non_null(strstr(p->error, "8 MiB"));
    protobuf_c_message_free_unpacked(&p->base, NULL);
    g = get(f, "", bin("big", 3));
    assert_true(g->not_found);
    protobuf_c_message_free_unpacked(&g->base, NULL);

    /* A value of exactly the limit is accepted. */
    p = put(f, "", bin("big", 3), bin(big_value, KV_MAX_VALUE_BYTES));
    assert_true(p->error == NULL || p->error[0] == 0);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    free(big_value);
}

/* Delete removes the key; deleting a missing key is fine. */
static void test_delete(void **state)
{
    struct fixture *f = *state;
    put_ok(f, "lock", "d", "1");
    Kvrpcpb__RawDeleteRequest req = KVRPCPB__RAW_DELETE_REQUEST__INIT;
    req.cf = "lock";
    req.key = bin("d", 1);
    ProtobufCMessage *resp;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rpc_client_unary(f->client, f->addr, "/tinykvpb.TinyKv/RawDelete",
                                          &req.base, &kvrpcpb__raw_delete_response__descriptor,
                                          &resp, 5000, NULL),
                         0);
        const char *e = ((Kvrpcpb__RawDeleteResponse *)resp)->error;
        assert_true(e == NULL || e[0] == 0);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    Kvrpcpb__RawGetResponse *g = get(f, "lock", bin("d", 1));
    assert_true(g->not_found);
    protobuf_c_message_free_unpacked(&g->base, NULL);
}

static Kvrpcpb__RawScanResponse *scan(struct fixture *f, const char *cf, const char *start,
                                      uint32_t limit)
{
    Kvrpcpb__RawScanRequest req = KVRPCPB__RAW_SCAN_REQUEST__INIT;
    req.cf = (char *)cf;
    req.start_key = bin(start, strlen(start));
    req.limit = limit;
    ProtobufCMessage *resp;
    assert_int_equal(rpc_client_unary(f->client, f->addr, "/tinykvpb.TinyKv/RawScan", &req.base,
                                      &kvrpcpb__raw_scan_response__descriptor, &resp, 5000, NULL),
                     0);
    return (Kvrpcpb__RawScanResponse *)resp;
}

/* Scan starts at start_key inclusive, returns keys in order, stops at limit, stays in its CF. */
static void test_scan_order_start_and_limit(void **state)
{
    struct fixture *f = *state;
    put_ok(f, "", "k3", "3");
    put_ok(f, "", "k1", "1");
    put_ok(f, "", "k2", "2");
    put_ok(f, "", "j", "before");
    put_ok(f, "write", "k15", "other cf");
    Kvrpcpb__RawScanResponse *s = scan(f, "", "k1", 10);
    assert_int_equal(s->n_kvs, 3);
    const char *want[] = {"k1", "k2", "k3"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s->kvs[i]->key.len, 2);
        assert_memory_equal(s->kvs[i]->key.data, want[i], 2);
        assert_int_equal(s->kvs[i]->value.data[0], want[i][1]);
    }
    protobuf_c_message_free_unpacked(&s->base, NULL);
    s = scan(f, "", "k", 2);
    assert_int_equal(s->n_kvs, 2);
    protobuf_c_message_free_unpacked(&s->base, NULL);
    s = scan(f, "", "", 0);
    assert_int_equal(s->n_kvs, 0);
    protobuf_c_message_free_unpacked(&s->base, NULL);
    s = scan(f, "bogus", "", 10);
    assert_non_null(s->error);
    assert_int_equal(s->n_kvs, 0);
    protobuf_c_message_free_unpacked(&s->base, NULL);
}

/* A scan stops before its end key, and key_only answers keys without values. */
static void test_scan_end_key_and_key_only(void **state)
{
    struct fixture *f = *state;
    put_ok(f, "", "a", "1");
    put_ok(f, "", "b", "2");
    put_ok(f, "", "c", "3");
    Kvrpcpb__RawScanRequest req = KVRPCPB__RAW_SCAN_REQUEST__INIT;
    req.start_key = bin("a", 1);
    req.end_key = bin("c", 1);
    req.limit = 10;
    req.key_only = 1;
    ProtobufCMessage *resp;
    assert_int_equal(rpc_client_unary(f->client, f->addr, "/tinykvpb.TinyKv/RawScan", &req.base,
                                      &kvrpcpb__raw_scan_response__descriptor, &resp, 5000, NULL),
                     0);
    Kvrpcpb__RawScanResponse *s = (Kvrpcpb__RawScanResponse *)resp;
    assert_int_equal(s->n_kvs, 2);
    assert_memory_equal(s->kvs[1]->key.data, "b", 1);
    assert_int_equal(s->kvs[0]->value.len, 0);
    assert_int_equal(s->kvs[1]->value.len, 0);
    protobuf_c_message_free_unpacked(resp, NULL);
}

/* An unknown method answers UNIMPLEMENTED; bytes that do not decode answer INVALID_ARGUMENT. */
static void test_unknown_method_and_garbage(void **state)
{
    struct fixture *f = *state;
    void *out;
    size_t out_len;
    struct rpc_error err;
    assert_int_equal(rpc_client_unary_raw(f->client, f->addr, "/tinykvpb.TinyKv/NoSuchMethod", "",
                                          0, &out, &out_len, 5000, &err),
                     RPC_ERR_STATUS);
    assert_int_equal(err.status, RPC_UNIMPLEMENTED);
    const unsigned char garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0a};
    assert_int_equal(rpc_client_unary_raw(f->client, f->addr, "/tinykvpb.TinyKv/RawGet", garbage,
                                          sizeof garbage, &out, &out_len, 5000, &err),
                     RPC_ERR_STATUS);
    assert_int_equal(err.status, RPC_INVALID_ARGUMENT);
    /* The server still serves afterwards. */
    put_ok(f, "", "alive", "yes");
}

/* A bidirectional stream answers each message in order, and ends with OK when the client closes. */
static void test_bidi_stream_echo(void **state)
{
    struct fixture *f = *state;
    struct rpc_error err;
    struct rpc_stream *st = rpc_stream_open(f->client, f->addr, "/test.Echo/Bidi",
                                            &kvrpcpb__raw_get_response__descriptor, 10000, &err);
    assert_non_null(st);
    for (int i = 0; i < 20; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "m%d", i);
        Kvrpcpb__RawGetRequest req = KVRPCPB__RAW_GET_REQUEST__INIT;
        req.key = bin(key, (size_t)n);
        assert_int_equal(rpc_stream_send(st, &req.base, 5000, &err), 0);
        ProtobufCMessage *m;
        assert_int_equal(rpc_stream_recv(st, &m, 5000, &err), 0);
        Kvrpcpb__RawGetResponse *r = (Kvrpcpb__RawGetResponse *)m;
        assert_int_equal(r->value.len, (size_t)n);
        assert_memory_equal(r->value.data, key, (size_t)n);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    assert_int_equal(rpc_stream_close_send(st, NULL, 5000, &err), 0);
    rpc_stream_free(st);
}

/* A client stream receives every message and answers once after the client half-closes. */
static void test_client_stream_count(void **state)
{
    struct fixture *f = *state;
    struct rpc_error err;
    struct rpc_stream *st = rpc_stream_open(f->client, f->addr, "/test.Echo/Count",
                                            &kvrpcpb__raw_get_response__descriptor, 10000, &err);
    assert_non_null(st);
    Kvrpcpb__RawGetRequest req = KVRPCPB__RAW_GET_REQUEST__INIT;
    for (int i = 0; i < 50; i++)
        assert_int_equal(rpc_stream_send(st, &req.base, 5000, &err), 0);
    ProtobufCMessage *m;
    assert_int_equal(rpc_stream_close_send(st, &m, 5000, &err), 0);
    assert_non_null(m);
    Kvrpcpb__RawGetResponse *r = (Kvrpcpb__RawGetResponse *)m;
    assert_int_equal(r->value.len, 2);
    assert_memory_equal(r->value.data, "50", 2);
    protobuf_c_message_free_unpacked(m, NULL);
    rpc_stream_free(st);
}

/* A call to an address nobody listens on fails within its deadline instead of hanging. */
static void test_unreachable_store_fails_within_deadline(void **state)
{
    struct fixture *f = *state;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", test_free_port());
    Kvrpcpb__RawGetRequest req = KVRPCPB__RAW_GET_REQUEST__INIT;
    req.key = bin("k", 1);
    ProtobufCMessage *resp;
    struct rpc_error err;
    uint64_t t0 = test_now_ms();
    assert_int_equal(rpc_client_unary(f->client, addr, "/tinykvpb.TinyKv/RawGet", &req.base,
                                      &kvrpcpb__raw_get_response__descriptor, &resp, 300, &err),
                     RPC_ERR_STATUS);
    assert_true(err.status == RPC_UNAVAILABLE || err.status == RPC_DEADLINE_EXCEEDED);
    /* Generous bound: the point is that it returns, not how fast. */
    assert_true(test_now_ms() - t0 < 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_every_cf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_missing_is_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_keys_and_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_rejected_without_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_order_start_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_end_key_and_key_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_method_and_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bidi_stream_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_stream_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_store_fails_within_deadline, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("raw_service", tests, NULL, NULL);
}
