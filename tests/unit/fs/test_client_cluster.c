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
#include "mvcc/mvcc.h"
#include "proto/log.h"
#include "proto/rpc.h"
#include "store/kv_service.h"
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
    int first_leader;
};

/* Serves store i's cluster-mode Storage over gRPC and tells the scheduler its address. */
static void serve_store(struct fixture *f, int i)
{
    assert_int_equal(mvcc_engine_new(test_cluster_storage(f->tc, i), 0, &f->engine[i]), 0);
    f->svc[i].storage = test_cluster_storage(f->tc, i);
    f->svc[i].mvcc = f->engine[i];
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

int main(void)
{
    /* The raftstores log every election at INFO; only problems matter here. */
    log_current_level = LOG_WARN;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_follows_not_leader_to_raft_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follows_leader_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_leader_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_over_lossy_raft, setup, teardown),
    };
    return cmocka_run_group_tests_name("client_cluster", tests, NULL, NULL);
}
