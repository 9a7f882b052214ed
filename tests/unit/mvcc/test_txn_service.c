/* test_txn_service.c — end to end: the Kv* handlers over gRPC on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "errorpb.pb-c.h"
#include "kvrpcpb.pb-c.h"
#include "mvcc/mvcc.h"
#include "proto/rpc.h"
#include "store/engine.h"
#include "server/kv_service.h"
#include "server/txn_service.h"
#include "tests/lib/mem_storage.h"
#include "tests/lib/test_util.h"

struct fixture {
    char *dir; /* NULL when over mem_storage */
    struct storage *storage;
    struct mvcc_engine *engine;
    struct kv_service svc;
    struct rpc_server *server;
    struct rpc_client *client;
    char addr[64];
};

static int start(void **state, int on_rocksdb)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256] = "";
    assert_non_null(f);
    if (on_rocksdb) {
        f->dir = test_tmpdir_new("tinykv-txn");
        assert_non_null(f->dir);
        assert_int_equal(standalone_storage_open(f->dir, &f->storage, err, sizeof err), 0);
    } else {
        assert_int_equal(mem_storage_new(&f->storage), 0);
    }
    assert_int_equal(mvcc_engine_new(f->storage, 0, &f->engine), 0);
    f->svc.storage = f->storage;
    f->svc.mvcc = f->engine;
    struct rpc_method methods[KV_SERVICE_MAX_METHODS];
    size_t n = kv_service_methods(&f->svc, methods);
    f->server = rpc_server_new("127.0.0.1:0", methods, n, 2, err, sizeof err);
    assert_non_null(f->server);
    assert_int_equal(rpc_server_start(f->server), 0);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", rpc_server_port(f->server));
    f->client = rpc_client_new();
    *state = f;
    return 0;
}

static int setup_rocksdb(void **state)
{
    return start(state, 1);
}

static int setup_mem(void **state)
{
    return start(state, 0);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rpc_client_free(f->client);
    rpc_server_free(f->server);
    mvcc_engine_free(f->engine);
    storage_free(f->storage);
    if (f->dir)
        test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* One unary call that must succeed at the gRPC level; the response is owned by the caller. */
static void *call(struct fixture *f, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    int rc = rpc_client_unary(f->client, f->addr, method, req, desc, &resp, 5000, &err);
    if (rc)
        fprintf(stderr, "%s: %s (status %d: %s)\n", method, rpc_strerror(rc), err.status, err.msg);
    assert_int_equal(rc, 0);
    return resp;
}

static void drop(void *resp)
{
    protobuf_c_message_free_unpacked(resp, NULL);
}

static ProtobufCBinaryData bin(const char *s)
{
    return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

static int bin_eq(ProtobufCBinaryData b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.data, s, b.len) == 0;
}

static Kvrpcpb__PrewriteResponse *prewrite(struct fixture *f, const char **keys, const char **vals,
                                           size_t n, uint64_t start_ts, uint64_t ttl)
{
    Kvrpcpb__PrewriteRequest req = KVRPCPB__PREWRITE_REQUEST__INIT;
    Kvrpcpb__Mutation m[4], *mp[4];
    for (size_t i = 0; i < n; i++) {
        kvrpcpb__mutation__init(&m[i]);
        m[i].op = vals[i] ? KVRPCPB__OP__Put : KVRPCPB__OP__Del;
        m[i].key = bin(keys[i]);
        if (vals[i])
            m[i].value = bin(vals[i]);
        mp[i] = &m[i];
    }
    req.mutations = mp;
    req.n_mutations = n;
    req.primary_lock = bin(keys[0]);
    req.start_version = start_ts;
    req.lock_ttl = ttl;
    return call(f, "/tinykvpb.TinyKv/KvPrewrite", &req.base,
                &kvrpcpb__prewrite_response__descriptor);
}

static Kvrpcpb__CommitResponse *commit(struct fixture *f, const char **keys, size_t n,
                                       uint64_t start_ts, uint64_t commit_ts)
{
    Kvrpcpb__CommitRequest req = KVRPCPB__COMMIT_REQUEST__INIT;
    ProtobufCBinaryData k[4];
    for (size_t i = 0; i < n; i++)
        k[i] = bin(keys[i]);
    req.keys = k;
    req.n_keys = n;
    req.start_version = start_ts;
    req.commit_version = commit_ts;
    return call(f, "/tinykvpb.TinyKv/KvCommit", &req.base, &kvrpcpb__commit_response__descriptor);
}

static Kvrpcpb__GetResponse *get(struct fixture *f, const char *key, uint64_t version)
{
    Kvrpcpb__GetRequest req = KVRPCPB__GET_REQUEST__INIT;
    req.key = bin(key);
    req.version = version;
    return call(f, "/tinykvpb.TinyKv/KvGet", &req.base, &kvrpcpb__get_response__descriptor);
}

static Kvrpcpb__CheckTxnStatusResponse *check(struct fixture *f, const char *primary,
                                              uint64_t lock_ts, uint64_t current_ts)
{
    Kvrpcpb__CheckTxnStatusRequest req = KVRPCPB__CHECK_TXN_STATUS_REQUEST__INIT;
    req.primary_key = bin(primary);
    req.lock_ts = lock_ts;
    req.current_ts = current_ts;
    return call(f, "/tinykvpb.TinyKv/KvCheckTxnStatus", &req.base,
                &kvrpcpb__check_txn_status_response__descriptor);
}

static Kvrpcpb__ResolveLockResponse *resolve(struct fixture *f, uint64_t start_ts,
                                             uint64_t commit_ts)
{
    Kvrpcpb__ResolveLockRequest req = KVRPCPB__RESOLVE_LOCK_REQUEST__INIT;
    req.start_version = start_ts;
    req.commit_version = commit_ts;
    return call(f, "/tinykvpb.TinyKv/KvResolveLock", &req.base,
                &kvrpcpb__resolve_lock_response__descriptor);
}

/* Prewrite locks (reads see LockInfo, scans a per-pair error), commit publishes at commit_version.
 */
static void test_prewrite_get_scan_commit(void **state)
{
    struct fixture *f = *state;
    const char *keys[] = {"k1", "k2"}, *vals[] = {"v1", "v2"};
    Kvrpcpb__PrewriteResponse *p = prewrite(f, keys, vals, 2, 100, 3000);
    assert_null(p->region_error);
    assert_int_equal(p->n_errors, 0);
    drop(p);

    Kvrpcpb__GetResponse *g = get(f, "k2", 200);
    assert_null(g->region_error);
    assert_non_null(g->error);
    assert_non_null(g->error->locked);
    assert_true(bin_eq(g->error->locked->primary_lock, "k1"));
    assert_true(bin_eq(g->error->locked->key, "k2"));
    assert_int_equal(g->error->locked->lock_version, 100);
    assert_int_equal(g->error->locked->lock_ttl, 3000);
    drop(g);

    Kvrpcpb__ScanRequest sreq = KVRPCPB__SCAN_REQUEST__INIT;
    sreq.limit = 10;
    sreq.version = 200;
    Kvrpcpb__ScanResponse *s =
        call(f, "/tinykvpb.TinyKv/KvScan", &sreq.base, &kvrpcpb__scan_response__descriptor);
    assert_int_equal(s->n_pairs, 2);
    assert_non_null(s->pairs[0]->error);
    assert_non_null(s->pairs[0]->error->locked);
    assert_true(bin_eq(s->pairs[1]->key, "k2"));
    drop(s);

    Kvrpcpb__CommitResponse *c = commit(f, keys, 2, 100, 110);
    assert_null(c->region_error);
    assert_null(c->error);
    drop(c);

    g = get(f, "k1", 110);
    assert_null(g->error);
    assert_false(g->not_found);
    assert_true(bin_eq(g->value, "v1"));
    drop(g);
    g = get(f, "k1", 109);
    assert_null(g->error);
    assert_true(g->not_found);
    drop(g);

    s = call(f, "/tinykvpb.TinyKv/KvScan", &sreq.base, &kvrpcpb__scan_response__descriptor);
    assert_int_equal(s->n_pairs, 2);
    assert_null(s->pairs[0]->error);
    assert_true(bin_eq(s->pairs[0]->key, "k1"));
    assert_true(bin_eq(s->pairs[1]->value, "v2"));
    drop(s);
}

/* Write conflicts carry their timestamps; another txn's lock is retryable; a rolled-back txn's
 * commit aborts. */
static void test_conflict_retryable_abort(void **state)
{
    struct fixture *f = *state;
    const char *k[] = {"a"}, *v[] = {"1"};
    drop(prewrite(f, k, v, 1, 100, 10));
    drop(commit(f, k, 1, 100, 110));

    Kvrpcpb__PrewriteResponse *p = prewrite(f, k, v, 1, 105, 10);
    assert_int_equal(p->n_errors, 1);
    assert_non_null(p->errors[0]->conflict);
    assert_int_equal(p->errors[0]->conflict->start_ts, 105);
    assert_int_equal(p->errors[0]->conflict->conflict_ts, 110);
    assert_true(bin_eq(p->errors[0]->conflict->key, "a"));
    assert_true(bin_eq(p->errors[0]->conflict->primary, "a"));
    drop(p);

    p = prewrite(f, k, v, 1, 120, 10);
    drop(p);
    Kvrpcpb__CommitResponse *c = commit(f, k, 1, 115, 130);
    assert_non_null(c->error);
    assert_true(c->error->retryable && c->error->retryable[0]);
    drop(c);

    Kvrpcpb__BatchRollbackRequest rb = KVRPCPB__BATCH_ROLLBACK_REQUEST__INIT;
    ProtobufCBinaryData keys[] = {bin("a")};
    rb.keys = keys;
    rb.n_keys = 1;
    rb.start_version = 120;
    Kvrpcpb__BatchRollbackResponse *r = call(f, "/tinykvpb.TinyKv/KvBatchRollback", &rb.base,
                                             &kvrpcpb__batch_rollback_response__descriptor);
    assert_null(r->error);
    drop(r);
    c = commit(f, k, 1, 120, 130);
    assert_non_null(c->error);
    assert_true(c->error->abort && c->error->abort[0]);
    drop(c);
    /* Rolling back a committed txn aborts too. */
    rb.start_version = 100;
    r = call(f, "/tinykvpb.TinyKv/KvBatchRollback", &rb.base,
             &kvrpcpb__batch_rollback_response__descriptor);
    assert_non_null(r->error);
    assert_true(r->error->abort && r->error->abort[0]);
    drop(r);
}

/* Check txn status rolls back expired locks and reports live/committed ones; resolve lock finishes
 * the job. */
static void test_check_status_and_resolve(void **state)
{
    struct fixture *f = *state;
    const char *k[] = {"p", "s"}, *v[] = {"1", "2"};
    uint64_t t1 = mvcc_ts_compose(1000, 0);
    drop(prewrite(f, k, v, 2, t1, 5));
    Kvrpcpb__CheckTxnStatusResponse *c = check(f, "p", t1, mvcc_ts_compose(1003, 0));
    assert_int_equal(c->action, KVRPCPB__ACTION__NoAction);
    assert_int_equal(c->lock_ttl, 5);
    drop(c);
    c = check(f, "p", t1, mvcc_ts_compose(2000, 0));
    assert_int_equal(c->action, KVRPCPB__ACTION__TTLExpireRollback);
    assert_int_equal(c->commit_version, 0);
    drop(c);
    Kvrpcpb__ResolveLockResponse *r = resolve(f, t1, 0);
    assert_null(r->error);
    drop(r);
    Kvrpcpb__GetResponse *g = get(f, "s", mvcc_ts_compose(3000, 0));
    assert_null(g->error);
    assert_true(g->not_found);
    drop(g);

    uint64_t t2 = mvcc_ts_compose(4000, 0), c2 = mvcc_ts_compose(4001, 0);
    drop(prewrite(f, k, v, 2, t2, 5));
    drop(commit(f, k, 1, t2, c2)); /* primary only */
    c = check(f, "p", t2, mvcc_ts_compose(9000, 0));
    assert_int_equal(c->commit_version, c2);
    drop(c);
    r = resolve(f, t2, c2);
    assert_null(r->error);
    drop(r);
    g = get(f, "s", c2);
    assert_null(g->error);
    assert_true(bin_eq(g->value, "2"));
    drop(g);

    c = check(f, "never", 77, 78);
    assert_int_equal(c->action, KVRPCPB__ACTION__LockNotExistRollback);
    drop(c);
}

/* Bad input answers with a clear error: abort in a KeyError, or INVALID_ARGUMENT where there is
 * none. */
static void test_invalid_input(void **state)
{
    struct fixture *f = *state;
    Kvrpcpb__GetResponse *g = get(f, "", 10);
    assert_non_null(g->error);
    assert_non_null(g->error->abort);
    assert_non_null(strstr(g->error->abort, "empty"));
    drop(g);
    const char *k[] = {"a"};
    Kvrpcpb__CommitResponse *c = commit(f, k, 1, 10, 10);
    assert_non_null(c->error);
    assert_non_null(c->error->abort);
    drop(c);
    Kvrpcpb__CheckTxnStatusRequest req = KVRPCPB__CHECK_TXN_STATUS_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    assert_int_equal(rpc_client_unary(f->client, f->addr, "/tinykvpb.TinyKv/KvCheckTxnStatus",
                                      &req.base, &kvrpcpb__check_txn_status_response__descriptor,
                                      &resp, 5000, &err),
                     RPC_ERR_STATUS);
    assert_int_equal(err.status, RPC_INVALID_ARGUMENT);
    assert_null(resp);
}

/* A region error from the storage reaches the response's region_error, not a KeyError. */
static void test_region_error(void **state)
{
    struct fixture *f = *state;
    mem_storage_inject_error(f->storage, MEM_STORAGE_FAULT_READER, 1, STORAGE_ERR_REGION,
                             STORAGE_REGION_ERR_NOT_LEADER);
    Kvrpcpb__GetResponse *g = get(f, "k", 10);
    assert_non_null(g->region_error);
    assert_non_null(g->region_error->not_leader);
    assert_int_equal(g->region_error->not_leader->region_id, 1);
    assert_null(g->error);
    drop(g);
    mem_storage_inject_error(f->storage, MEM_STORAGE_FAULT_WRITE, 1, STORAGE_ERR_REGION,
                             STORAGE_REGION_ERR_EPOCH_NOT_MATCH);
    const char *k[] = {"k"}, *v[] = {"v"};
    Kvrpcpb__PrewriteResponse *p = prewrite(f, k, v, 1, 10, 10);
    assert_non_null(p->region_error);
    assert_non_null(p->region_error->epoch_not_match);
    assert_int_equal(p->n_errors, 0);
    drop(p);
    p = prewrite(f, k, v, 1, 10, 10); /* the retry gets through */
    assert_null(p->region_error);
    assert_int_equal(p->n_errors, 0);
    drop(p);
    /* A storage I/O failure is a gRPC INTERNAL status with the reason. */
    mem_storage_inject_error(f->storage, MEM_STORAGE_FAULT_WRITE, 1, STORAGE_ERR_IO, 0);
    Kvrpcpb__ResolveLockRequest req = KVRPCPB__RESOLVE_LOCK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    req.start_version = 10;
    req.commit_version = 20;
    assert_int_equal(rpc_client_unary(f->client, f->addr, "/tinykvpb.TinyKv/KvResolveLock",
                                      &req.base, &kvrpcpb__resolve_lock_response__descriptor, &resp,
                                      5000, &err),
                     RPC_ERR_STATUS);
    assert_int_equal(err.status, RPC_INTERNAL);
    assert_non_null(strstr(err.msg, "injected"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prewrite_get_scan_commit, setup_rocksdb, teardown),
        cmocka_unit_test_setup_teardown(test_conflict_retryable_abort, setup_rocksdb, teardown),
        cmocka_unit_test_setup_teardown(test_check_status_and_resolve, setup_rocksdb, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_input, setup_rocksdb, teardown),
        cmocka_unit_test_setup_teardown(test_region_error, setup_mem, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
