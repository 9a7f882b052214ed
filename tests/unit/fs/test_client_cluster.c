/* test_client_cluster.c — the client against an in-process three-store Raft cluster. */
/*
 * Each raftstore of tests/lib/test_cluster gets the real TinyKv service (raw
 * and Kv* handlers over its cluster-mode Storage) on a loopback gRPC server;
 * the fake scheduler knows the region's peers but names a stale leader, as a
 * scheduler does between heartbeats. The client must follow NotLeader hints,
 * leader transfers and a leader crash.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/client.h"
#include "kvrpcpb.pb-c.h"
#include "mvcc/mvcc.h"
#include "proto/log.h"
#include "proto/rpc.h"
#include "server/kv_service.h"
#include "server/ts_batcher.h"
#include "tests/lib/fake_pd.h"
#include "tests/lib/test_cluster.h"
#include "tests/lib/test_util.h"

#define STORES 3

struct fixture {
    struct test_cluster *tc;
    struct fake_pd *pd;
    struct mvcc_engine *engine[STORES + 1];
    struct kv_service svc[STORES + 1];
    struct rpc_server *server[STORES + 1];
    struct client *c;
    struct client *tso; /* the stores' timestamp link, for one-phase commits (as node.c's) */
    struct ts_batcher *ts_batcher; /* over tso, the engines' async ts source (as node.c's) */
    int first_leader;
};

/* Serves store i's cluster-mode Storage over gRPC and tells the scheduler its address. */
static void serve_store(struct fixture *f, int i)
{
    assert_int_equal(mvcc_engine_new(test_cluster_storage(f->tc, i), 0, &f->engine[i]), 0);
    mvcc_engine_set_ts_source_async(f->engine[i], ts_batcher_get, f->ts_batcher);
    f->svc[i].storage = test_cluster_storage(f->tc, i);
    f->svc[i].mvcc = f->engine[i];
    f->svc[i].rs = test_cluster_store(f->tc, i);
    struct rpc_method methods[KV_SERVICE_MAX_METHODS];
    size_t n = kv_service_methods(&f->svc[i], methods);
    char err[256] = "";
    f->server[i] = rpc_server_new("127.0.0.1:0", methods, n, 2, err, sizeof err);
    assert_non_null(f->server[i]);
    assert_int_equal(rpc_server_start(f->server[i]), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", rpc_server_port(f->server[i]));
    fake_pd_set_store(f->pd, (uint64_t)i, addr);
}

/* Takes store i off the network, then crashes it. */
static void kill_store(struct fixture *f, int i)
{
    rpc_server_free(f->server[i]);
    f->server[i] = NULL;
    mvcc_engine_free(f->engine[i]);
    f->engine[i] = NULL;
    test_cluster_stop_store(f->tc, i);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    const char *env = getenv("CLIENT_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : test_now_ms();
    printf("cluster: seed %llu\n", (unsigned long long)seed);
    struct test_cluster_options o = {.n_stores = STORES, .n_region_peers = STORES, .seed = seed};
    f->tc = test_cluster_new(&o);
    assert_non_null(f->tc);
    f->first_leader = test_cluster_leader(f->tc, 20000);
    assert_true(f->first_leader > 0);
    f->pd = fake_pd_new();
    assert_non_null(f->pd);
    char terr[256] = "";
    assert_int_equal(client_new(fake_pd_addr(f->pd), NULL, &f->tso, terr, sizeof terr), 0);
    f->ts_batcher = ts_batcher_new(f->tso);
    assert_non_null(f->ts_batcher);
    struct fake_pd_region r = {.id = 1, .start = "", .end = ""};
    for (int i = 1; i <= STORES; i++) {
        struct raftstore_peer_info info;
        assert_int_equal(test_cluster_peer_info(f->tc, i, &info), 1);
        r.peers[r.n_peers].id = info.peer_id;
        r.peers[r.n_peers].store_id = (uint64_t)i;
        r.n_peers++;
        r.conf_ver = info.conf_ver;
        r.version = info.version;
        serve_store(f, i);
    }
    /* A stale scheduler: it names a follower as leader. */
    r.leader = f->first_leader % STORES; /* index of store first_leader + 1 */
    fake_pd_set_regions(f->pd, &r, 1);
    struct client_options co = {.timeout_ms = 20000, .rpc_timeout_ms = 3000};
    char err[256] = "";
    assert_int_equal(client_new(fake_pd_addr(f->pd), &co, &f->c, err, sizeof err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    client_free(f->c);
    for (int i = 1; i <= STORES; i++) {
        if (f->server[i])
            rpc_server_free(f->server[i]);
        if (f->engine[i])
            mvcc_engine_free(f->engine[i]);
    }
    test_cluster_free(f->tc);
    ts_batcher_free(f->ts_batcher);
    client_free(f->tso);
    fake_pd_free(f->pd);
    free(f);
    return 0;
}

static void txn_write(struct client *c, const char *k, const char *v)
{
    struct client_txn *t;
    assert_int_equal(client_txn_begin(c, &t), 0);
    assert_int_equal(client_txn_put(t, k, strlen(k), v, strlen(v)), 0);
    int rc = client_txn_commit(t, NULL);
    if (rc)
        fprintf(stderr, "commit %s: %s (%s)\n", k, client_strerror(rc), client_last_error(c));
    assert_int_equal(rc, 0);
    client_txn_free(t);
}

static void txn_expect(struct client *c, const char *k, const char *want)
{
    struct client_txn *t;
    assert_int_equal(client_txn_begin(c, &t), 0);
    void *v = NULL;
    size_t len = 0;
    int rc = client_txn_get(t, k, strlen(k), &v, &len);
    if (rc)
        fprintf(stderr, "get %s: %s (%s)\n", k, client_strerror(rc), client_last_error(c));
    assert_int_equal(rc, 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
    free(v);
    client_txn_free(t);
}

static uint64_t cached_leader(struct client *c)
{
    struct client_region_info info;
    assert_int_equal(client_region_of_key(c, "k", 1, &info), 0);
    uint64_t s = info.leader_store_id;
    client_region_info_clear(&info);
    return s;
}

/* Raw and transactional requests sent to the scheduler's stale leader follow the NotLeader hint to
 * the real one. */
static void test_follows_not_leader_to_raft_leader(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(client_raw_put(f->c, NULL, "raw", 3, "1", 1), 0);
    void *v;
    size_t len;
    assert_int_equal(client_raw_get(f->c, NULL, "raw", 3, &v, &len), 0);
    assert_int_equal(len, 1);
    free(v);
    txn_write(f->c, "k", "v1");
    txn_expect(f->c, "k", "v1");
    struct client_stats st;
    client_stats_get(f->c, &st);
    assert_true(st.region_errors >= 1);
    assert_int_equal(cached_leader(f->c), (uint64_t)test_cluster_leader(f->tc, 1000));
}

/* After a leader transfer the client's cached leader is stale; requests still land on the new
 * leader. */
static void test_follows_leader_transfer(void **state)
{
    struct fixture *f = *state;
    txn_write(f->c, "k", "v1");
    int to = f->first_leader % STORES + 1;
    assert_int_equal(test_cluster_transfer_leader(f->tc, to, 20000), 0);
    txn_write(f->c, "k", "v2");
    txn_expect(f->c, "k", "v2");
    assert_int_equal(cached_leader(f->c), (uint64_t)test_cluster_leader(f->tc, 1000));
}

/* The leader crashes: the client fails over to the newly elected leader and committed data
 * survives. */
static void test_survives_leader_crash(void **state)
{
    struct fixture *f = *state;
    txn_write(f->c, "k", "before");
    int leader = test_cluster_leader(f->tc, 20000);
    assert_true(leader > 0);
    assert_int_equal(cached_leader(f->c), (uint64_t)leader);
    kill_store(f, leader);
    txn_write(f->c, "k2", "after");
    txn_expect(f->c, "k", "before");
    txn_expect(f->c, "k2", "after");
    uint64_t now = cached_leader(f->c);
    assert_true(now != (uint64_t)leader && now != 0);
}

struct counter_thread {
    struct client *c;
    int increments;
    int failures;
};

static void *counter_worker(void *arg)
{
    struct counter_thread *w = arg;
    for (int done = 0; done < w->increments;) {
        struct client_txn *t;
        if (client_txn_begin(w->c, &t) != 0) {
            w->failures++;
            return NULL;
        }
        void *v = NULL;
        size_t len = 0;
        long value = 0;
        int rc = client_txn_get(t, "counter", 7, &v, &len);
        if (rc == 0) {
            char buf[32] = "";
            memcpy(buf, v, len < 31 ? len : 31);
            value = strtol(buf, NULL, 10);
            free(v);
        } else if (rc != CLIENT_ERR_NOT_FOUND) {
            fprintf(stderr, "counter get: %s (%s)\n", client_strerror(rc), client_last_error(w->c));
            w->failures++;
            client_txn_free(t);
            return NULL;
        }
        char out[32];
        int n = snprintf(out, sizeof out, "%ld", value + 1);
        client_txn_put(t, "counter", 7, out, (size_t)n);
        rc = client_txn_commit(t, NULL);
        client_txn_free(t);
        if (rc == 0) {
            done++;
        } else if (rc != CLIENT_ERR_CONFLICT) {
            fprintf(stderr, "counter commit: %s (%s)\n", client_strerror(rc),
                    client_last_error(w->c));
            w->failures++;
            return NULL;
        }
    }
    return NULL;
}

/* Concurrent increments while the Raft links drop and delay messages: the final count is exact. */
static void test_counter_over_lossy_raft(void **state)
{
    struct fixture *f = *state;
    test_cluster_set_unreliable(f->tc, 100, 20);
    enum { THREADS = 3, EACH = 5 };
    struct counter_thread w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct counter_thread){f->c, EACH, 0};
        pthread_create(&th[i], NULL, counter_worker, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    test_cluster_set_unreliable(f->tc, 0, 0);
    char want[16];
    snprintf(want, sizeof want, "%d", THREADS * EACH);
    txn_expect(f->c, "counter", want);
}

/* ---- many regions: the stores split, the (stale) scheduler still shows one region ---- */

static void split_at(struct fixture *f, const char *key, uint64_t new_id)
{
    assert_int_equal(test_cluster_split(f->tc, key, new_id, 20000), 0);
    assert_true(test_cluster_region_leader(f->tc, new_id, 20000) > 0);
}

/* A split the scheduler has not heard of: the client's requests get EpochNotMatch (or
 * KeyNotInRegion) carrying the new regions, and reads, writes and transactions spanning both
 * regions go on without asking the scheduler for regions again. */
static void test_client_learns_split_from_the_stores(void **state)
{
    struct fixture *f = *state;
    txn_write(f->c, "apple", "1");
    txn_write(f->c, "zebra", "1");
    split_at(f, "m", 2);
    struct fake_pd_counts before, after;
    fake_pd_get_counts(f->pd, &before);
    txn_expect(f->c, "zebra", "1");
    struct client_txn *t;
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    assert_int_equal(client_txn_put(t, "apple", 5, "2", 1), 0);
    assert_int_equal(client_txn_put(t, "zebra", 5, "2", 1), 0);
    assert_int_equal(client_txn_commit(t, NULL), 0);
    client_txn_free(t);
    txn_expect(f->c, "apple", "2");
    txn_expect(f->c, "zebra", "2");
    fake_pd_get_counts(f->pd, &after);
    assert_int_equal(after.get_region, before.get_region);
    struct client_region_info info;
    assert_int_equal(client_region_of_key(f->c, "zebra", 5, &info), 0);
    assert_int_equal(info.region_id, 2);
    client_region_info_clear(&info);
    assert_int_equal(client_raw_put(f->c, NULL, "raw-z", 5, "r", 1), 0);
    void *v;
    size_t len;
    assert_int_equal(client_raw_get(f->c, NULL, "raw-z", 5, &v, &len), 0);
    free(v);
}

/* Scans over three regions return every key once, in order, for the raw and the
 * transactional API. */
static void test_scans_cross_regions(void **state)
{
    struct fixture *f = *state;
    const char *keys[] = {"a1", "a2", "h1", "m0", "m1", "t0", "x1", "z9"};
    size_t n = sizeof keys / sizeof keys[0];
    for (size_t i = 0; i < n; i++) {
        txn_write(f->c, keys[i], keys[i]);
        assert_int_equal(client_raw_put(f->c, NULL, keys[i], 2, keys[i], 2), 0);
    }
    split_at(f, "m", 2);
    split_at(f, "t", 3);
    struct client_txn *t;
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    struct client_kv *kvs = NULL;
    size_t got = 0;
    assert_int_equal(client_txn_scan(t, "", 0, NULL, 0, 100, &kvs, &got), 0);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(kvs[i].key_len, 2);
        assert_memory_equal(kvs[i].key, keys[i], 2);
    }
    client_kvs_free(kvs, got);
    client_txn_free(t);
    assert_int_equal(client_raw_scan(f->c, NULL, "", 0, NULL, 0, 100, &kvs, &got), 0);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++)
        assert_memory_equal(kvs[i].key, keys[i], 2);
    client_kvs_free(kvs, got);
}

/* KvPrewrite of one key straight to the leader of its region, no commit: a lock left behind. */
static void leave_lock(struct fixture *f, struct rpc_client *rpc, const char *key,
                       const char *primary, uint64_t start_ts)
{
    uint64_t region_id = test_cluster_region_of_key(f->tc, key);
    int leader = test_cluster_region_leader(f->tc, region_id, 20000);
    struct region r;
    assert_int_equal(test_cluster_region(f->tc, leader, region_id, &r), 0);
    const struct region_peer *me = store_region_peer_on_store(&r, (uint64_t)leader);
    Metapb__RegionEpoch epoch = METAPB__REGION_EPOCH__INIT;
    epoch.conf_ver = r.conf_ver;
    epoch.version = r.version;
    Metapb__Peer peer = METAPB__PEER__INIT;
    peer.id = me->id;
    peer.store_id = me->store_id;
    Kvrpcpb__Context ctx = KVRPCPB__CONTEXT__INIT;
    ctx.region_id = region_id;
    ctx.region_epoch = &epoch;
    ctx.peer = &peer;
    Kvrpcpb__Mutation m = KVRPCPB__MUTATION__INIT;
    m.op = KVRPCPB__OP__Put;
    m.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    m.value = (ProtobufCBinaryData){6, (uint8_t *)"locked"};
    Kvrpcpb__Mutation *muts[] = {&m};
    Kvrpcpb__PrewriteRequest req = KVRPCPB__PREWRITE_REQUEST__INIT;
    req.context = &ctx;
    req.mutations = muts;
    req.n_mutations = 1;
    req.primary_lock = (ProtobufCBinaryData){strlen(primary), (uint8_t *)primary};
    req.start_version = start_ts;
    req.lock_ttl = 1;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", rpc_server_port(f->server[leader]));
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    assert_int_equal(rpc_client_unary(rpc, addr, "/tinykvpb.TinyKv/KvPrewrite", &req.base,
                                      &kvrpcpb__prewrite_response__descriptor, &resp, 5000, &err),
                     0);
    Kvrpcpb__PrewriteResponse *pr = (Kvrpcpb__PrewriteResponse *)resp;
    assert_null(pr->region_error);
    assert_int_equal(pr->n_errors, 0);
    protobuf_c_message_free_unpacked(resp, NULL);
    store_region_free(&r);
}

/* A RawGet sent straight to a store with the given region routing; the response (owned). */
static Kvrpcpb__RawGetResponse *raw_get_at(struct fixture *f, struct rpc_client *rpc, int store,
                                           uint64_t region_id, uint64_t version, const char *key)
{
    Metapb__RegionEpoch epoch = METAPB__REGION_EPOCH__INIT;
    epoch.version = version;
    Kvrpcpb__Context ctx = KVRPCPB__CONTEXT__INIT;
    ctx.region_id = region_id;
    ctx.region_epoch = &epoch;
    Kvrpcpb__RawGetRequest req = KVRPCPB__RAW_GET_REQUEST__INIT;
    req.context = &ctx;
    req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", rpc_server_port(f->server[store]));
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    assert_int_equal(rpc_client_unary(rpc, addr, "/tinykvpb.TinyKv/RawGet", &req.base,
                                      &kvrpcpb__raw_get_response__descriptor, &resp, 5000, &err),
                     0);
    return (Kvrpcpb__RawGetResponse *)resp;
}

/* The region errors a client learns from: KeyNotInRegion carries the key and the region's range;
 * EpochNotMatch for a pre-split version carries the current regions, both halves included. */
static void test_region_errors_describe_the_regions(void **state)
{
    struct fixture *f = *state;
    split_at(f, "m", 2);
    int leader = test_cluster_region_leader(f->tc, 1, 20000);
    struct region r;
    assert_int_equal(test_cluster_region(f->tc, leader, 1, &r), 0);
    uint64_t version = r.version;
    store_region_free(&r);
    struct rpc_client *rpc = rpc_client_new();

    Kvrpcpb__RawGetResponse *resp = raw_get_at(f, rpc, leader, 1, version, "zebra");
    assert_non_null(resp->region_error);
    const Errorpb__KeyNotInRegion *k = resp->region_error->key_not_in_region;
    assert_non_null(k);
    assert_int_equal(k->region_id, 1);
    assert_int_equal(k->key.len, 5);
    assert_memory_equal(k->key.data, "zebra", 5);
    assert_int_equal(k->start_key.len, 0);
    assert_int_equal(k->end_key.len, 1);
    assert_memory_equal(k->end_key.data, "m", 1);
    protobuf_c_message_free_unpacked(&resp->base, NULL);

    resp = raw_get_at(f, rpc, leader, 1, version - 1, "apple");
    assert_non_null(resp->region_error);
    const Errorpb__EpochNotMatch *e = resp->region_error->epoch_not_match;
    assert_non_null(e);
    int saw_left = 0, saw_right = 0;
    for (size_t i = 0; i < e->n_current_regions; i++) {
        const Metapb__Region *cr = e->current_regions[i];
        if (cr->id == 1 && cr->end_key.len == 1 && cr->end_key.data[0] == 'm' &&
            cr->region_epoch->version == version)
            saw_left = 1;
        if (cr->id == 2 && cr->start_key.len == 1 && cr->start_key.data[0] == 'm')
            saw_right = 1;
    }
    assert_true(saw_left && saw_right);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    rpc_client_free(rpc);
}

/* A transaction abandoned after prewriting a primary in one region and a secondary in another:
 * a reader of the secondary finds the primary expired, rolls it back and resolves the lock in
 * the secondary's own region. */
static void test_lock_spanning_two_regions_is_resolved(void **state)
{
    struct fixture *f = *state;
    split_at(f, "m", 2);
    txn_write(f->c, "zz-secondary", "old");
    struct rpc_client *rpc = rpc_client_new();
    client_ts start_ts;
    assert_int_equal(client_tso(f->c, &start_ts), 0);
    leave_lock(f, rpc, "aa-primary", "aa-primary", start_ts);
    leave_lock(f, rpc, "zz-secondary", "aa-primary", start_ts);
    txn_expect(f->c, "zz-secondary", "old");
    struct client_txn *t;
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    void *v = NULL;
    size_t len;
    assert_int_equal(client_txn_get(t, "aa-primary", 10, &v, &len), CLIENT_ERR_NOT_FOUND);
    client_txn_free(t);
    txn_write(f->c, "zz-secondary", "new");
    txn_expect(f->c, "zz-secondary", "new");
    rpc_client_free(rpc);
}

static uint64_t one_pc_commits(struct client *c)
{
    struct client_stats st;
    client_stats_get(c, &st);
    return st.one_pc_commits;
}

/* A transaction within one region commits in one phase (no locks left, one commit record);
 * one spanning two regions in two; both read back. */
static void test_one_region_commits_in_one_phase_two_regions_in_two(void **state)
{
    struct fixture *f = *state;
    uint64_t n0 = one_pc_commits(f->c);
    txn_write(f->c, "apple", "1");
    assert_int_equal(one_pc_commits(f->c), n0 + 1);
    split_at(f, "m", 2);
    struct client_txn *t;
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    assert_int_equal(client_txn_put(t, "apple", 5, "2", 1), 0);
    assert_int_equal(client_txn_put(t, "banana", 6, "2", 1), 0);
    client_ts cts = 0;
    assert_int_equal(client_txn_commit(t, &cts), 0);
    assert_true(cts > client_txn_start_ts(t));
    client_txn_free(t);
    assert_int_equal(one_pc_commits(f->c), n0 + 2);
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    assert_int_equal(client_txn_put(t, "apple", 5, "3", 1), 0);
    assert_int_equal(client_txn_put(t, "zebra", 5, "3", 1), 0);
    assert_int_equal(client_txn_commit(t, NULL), 0);
    client_txn_free(t);
    assert_int_equal(one_pc_commits(f->c), n0 + 2);
    txn_expect(f->c, "apple", "3");
    txn_expect(f->c, "banana", "2");
    txn_expect(f->c, "zebra", "3");
}

int main(void)
{
    /* The raftstores log every election at INFO; only problems matter here. */
    log_current_level = LOG_WARN;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_follows_not_leader_to_raft_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follows_leader_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_leader_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_over_lossy_raft, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_learns_split_from_the_stores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scans_cross_regions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_spanning_two_regions_is_resolved, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_region_errors_describe_the_regions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_region_commits_in_one_phase_two_regions_in_two,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("client_cluster", tests, NULL, NULL);
}
