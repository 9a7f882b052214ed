/* test_consistency.c — the region consistency check (ComputeHash / VerifyHash) on an in-process
 * cluster: replicas that agree, a replica corrupted behind Raft's back, late and caught-up ones. */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec/codec.h"
#include "store/raftstore_internal.h"
#include "tests/lib/test_cluster.h"
#include "tests/lib/test_util.h"

#define OP_TIMEOUT 10000

/* The answer to one raftstore_check_consistency (written on the store loop). */
struct check_answer {
    pthread_mutex_t mu;
    int done, code;
    uint64_t index;
};

static void on_checked(void *arg, const struct raftstore_result *res, uint64_t index)
{
    struct check_answer *a = arg;
    pthread_mutex_lock(&a->mu);
    a->code = res->code;
    a->index = index;
    a->done = 1;
    pthread_mutex_unlock(&a->mu);
}

/* Asks `store` to start a check of region_id; returns the ComputeHash index, or 0 with *code
 * set when the store refused (code may be NULL). */
static uint64_t start_check(struct test_cluster *c, int store, uint64_t region_id, int *code)
{
    struct check_answer a = {.mu = PTHREAD_MUTEX_INITIALIZER};
    raftstore_check_consistency(test_cluster_store(c, store), region_id, on_checked, &a);
    uint64_t deadline = test_now_ms() + OP_TIMEOUT;
    for (;;) {
        pthread_mutex_lock(&a.mu);
        int done = a.done;
        pthread_mutex_unlock(&a.mu);
        if (done)
            break;
        assert_true(test_now_ms() < deadline); /* the callback always comes */
        usleep(2000);
    }
    if (code)
        *code = a.code;
    return a.code == 0 ? a.index : 0;
}

/* The leader of region_id starts a check; its index (retrying over leader changes). */
static uint64_t check_at_leader(struct test_cluster *c, uint64_t region_id)
{
    uint64_t deadline = test_now_ms() + OP_TIMEOUT;
    while (test_now_ms() < deadline) {
        int leader = test_cluster_region_leader(c, region_id, OP_TIMEOUT);
        assert_true(leader > 0);
        uint64_t index = start_check(c, leader, region_id, NULL);
        if (index)
            return index;
        usleep(10000);
    }
    fail_msg("no leader of region %llu started a check", (unsigned long long)region_id);
    return 0;
}

/* Waits until store's replica of region_id reached a verdict for `index`; returns it. */
static struct raftstore_consistency wait_verdict(struct test_cluster *c, int store,
                                                 uint64_t region_id, uint64_t index)
{
    uint64_t deadline = test_now_ms() + OP_TIMEOUT;
    struct raftstore_peer_info info;
    for (;;) {
        memset(&info, 0, sizeof info);
        if (test_cluster_region_peer_info(c, store, region_id, &info) &&
            info.consistency.index == index &&
            info.consistency.state >= RAFTSTORE_CONSISTENCY_CONSISTENT)
            return info.consistency;
        if (test_now_ms() >= deadline)
            fail_msg("store %d region %llu: no verdict for index %llu (index %llu, state %d)",
                     store, (unsigned long long)region_id, (unsigned long long)index,
                     (unsigned long long)info.consistency.index, (int)info.consistency.state);
        usleep(5000);
    }
}

static struct test_cluster *cluster(int n, uint64_t gc_limit)
{
    struct test_cluster_options o = {
        .n_stores = n, .n_region_peers = n, .seed = 11, .raft_log_gc_count_limit = gc_limit};
    struct test_cluster *c = test_cluster_new(&o);
    assert_non_null(c);
    assert_true(test_cluster_leader(c, OP_TIMEOUT) > 0);
    return c;
}

static void put_keys(struct test_cluster *c, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "%s%03d", prefix, i);
        snprintf(v, sizeof v, "value-%d", i);
        assert_int_equal(test_cluster_put(c, k, v, OP_TIMEOUT), 0);
    }
}

/* Every replica of region_id reaches "consistent" at index, all with the same hash. */
static void assert_all_consistent(struct test_cluster *c, int n, uint64_t region_id, uint64_t index)
{
    uint64_t hash = 0;
    for (int s = 1; s <= n; s++) {
        struct raftstore_consistency v = wait_verdict(c, s, region_id, index);
        assert_int_equal(v.state, RAFTSTORE_CONSISTENCY_CONSISTENT);
        assert_true(v.hash == v.leader_hash);
        if (s == 1)
            hash = v.hash;
        assert_true(v.hash == hash);
        assert_int_equal(v.mismatches, 0);
    }
}

/* Writes key=value into a store's kv DB directly (CF cf), bypassing Raft: a corrupted replica. */
static void corrupt(struct test_cluster *c, int store, int cf, const char *key, const char *value)
{
    struct raftstore *rs = test_cluster_store(c, store);
    size_t n = codec_key_len(strlen(key));
    uint8_t *enc = malloc(n);
    assert_non_null(enc);
    codec_key_encode(key, strlen(key), enc);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *err = NULL;
    rocksdb_put_cf(engine_db(rs->cfg.kv), wo, engine_cf(rs->cfg.kv, cf), (const char *)enc, n,
                   value, strlen(value), &err);
    assert_null(err);
    rocksdb_writeoptions_destroy(wo);
    free(enc);
}

/* Three replicas with the same writes hash the same, each says "consistent", and a second
 * check starts at a later index with the same verdict. */
static void test_replicas_agree(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 0);
    put_keys(c, "k", 30);
    uint64_t i1 = check_at_leader(c, 1);
    assert_true(i1 > 0);
    assert_all_consistent(c, 3, 1, i1);
    put_keys(c, "m", 5);
    uint64_t i2 = check_at_leader(c, 1);
    assert_true(i2 > i1);
    assert_all_consistent(c, 3, 1, i2);
    test_cluster_free(c);
}

struct writer {
    struct test_cluster *c;
    atomic_int stop;
    int n;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    while (!atomic_load(&w->stop)) {
        char k[32];
        snprintf(k, sizeof k, "w%05d", w->n++);
        test_cluster_put(w->c, k, "racing", OP_TIMEOUT);
    }
    return NULL;
}

/* Writes racing the check do not matter: each replica hashes exactly the entries up to the
 * ComputeHash index, however its apply batches them (a delaying network makes followers
 * apply several entries per Ready, ComputeHash among them). */
static void test_writes_during_the_check_agree(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 0);
    put_keys(c, "a", 10);
    test_cluster_set_unreliable(c, 0, 20);
    struct writer w = {.c = c};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    for (int round = 0; round < 5; round++)
        assert_all_consistent(c, 3, 1, check_at_leader(c, 1));
    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    assert_true(w.n > 0);
    test_cluster_free(c);
}

/* A stray key written into one follower's kv DB (default CF, then the lock CF) makes that
 * follower report a mismatch at the check's index; the others stay consistent. */
static void test_corrupted_replica_reports_mismatch(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 0);
    put_keys(c, "k", 20);
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    int bad = leader == 3 ? 2 : 3;
    assert_true(test_cluster_wait_local(c, bad, "k019", "value-19", OP_TIMEOUT));
    corrupt(c, bad, STORAGE_CF_DEFAULT, "k0105", "stray");
    uint64_t index = check_at_leader(c, 1);
    for (int s = 1; s <= 3; s++) {
        struct raftstore_consistency v = wait_verdict(c, s, 1, index);
        if (s == bad) {
            assert_int_equal(v.state, RAFTSTORE_CONSISTENCY_MISMATCH);
            assert_true(v.hash != v.leader_hash);
            assert_int_equal(v.mismatch_index, index);
            assert_int_equal(v.mismatches, 1);
        } else {
            assert_int_equal(v.state, RAFTSTORE_CONSISTENCY_CONSISTENT);
        }
    }
    /* The store keeps serving, and keeps the record across a later check. */
    put_keys(c, "z", 2);
    corrupt(c, bad, STORAGE_CF_LOCK, "k0000", "lock");
    uint64_t again = check_at_leader(c, 1);
    struct raftstore_consistency v = wait_verdict(c, bad, 1, again);
    assert_int_equal(v.state, RAFTSTORE_CONSISTENCY_MISMATCH);
    assert_int_equal(v.mismatch_index, again);
    assert_int_equal(v.mismatches, 2);
    test_cluster_free(c);
}

/* A follower refuses to start a check (NotLeader); a store without the region says so. */
static void test_only_the_leader_starts_a_check(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 0);
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    int follower = leader == 1 ? 2 : 1;
    int code = 0;
    assert_int_equal(start_check(c, follower, 1, &code), 0);
    assert_int_equal(code, STORAGE_ERR_REGION);
    assert_int_equal(start_check(c, leader, 99, &code), 0);
    assert_int_equal(code, STORAGE_ERR_REGION);
    test_cluster_free(c);
}

/* A follower down during the check hashes when it replays ComputeHash from the log and then
 * compares with the replayed VerifyHash; one caught up by a snapshot past the check never
 * hashed, so it ignores the VerifyHash and shows no verdict. */
static void test_late_and_snapshotted_replicas(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 0);
    put_keys(c, "k", 10);
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    int late = leader == 3 ? 2 : 3;
    test_cluster_stop_store(c, late);
    uint64_t index = check_at_leader(c, 1);
    for (int s = 1; s <= 3; s++)
        if (s != late)
            assert_int_equal(wait_verdict(c, s, 1, index).state, RAFTSTORE_CONSISTENCY_CONSISTENT);
    test_cluster_start_store(c, late);
    assert_int_equal(wait_verdict(c, late, 1, index).state, RAFTSTORE_CONSISTENCY_CONSISTENT);
    test_cluster_free(c);

    /* A short log: the leader compacts past the check, the returning follower gets a snapshot. */
    c = cluster(3, 5);
    put_keys(c, "k", 5);
    leader = test_cluster_leader(c, OP_TIMEOUT);
    late = leader == 3 ? 2 : 3;
    test_cluster_stop_store(c, late);
    index = check_at_leader(c, 1);
    put_keys(c, "m", 40);
    uint64_t deadline = test_now_ms() + OP_TIMEOUT;
    struct raftstore_peer_info info;
    while (test_cluster_peer_info(c, leader, &info) && info.first_index <= index) {
        assert_true(test_now_ms() < deadline);
        put_keys(c, "n", 1);
    }
    test_cluster_start_store(c, late);
    assert_true(test_cluster_wait_local(c, late, "m039", "value-39", OP_TIMEOUT));
    /* Every entry it applied after the snapshot is past the check: no hash, no verdict (the
     * info it shows is refreshed each tick). */
    deadline = test_now_ms() + OP_TIMEOUT;
    while (!test_cluster_peer_info(c, late, &info) || info.applied_index <= index) {
        assert_true(test_now_ms() < deadline);
        usleep(5000);
    }
    assert_int_equal(info.consistency.index, 0);
    assert_int_equal(info.consistency.state, RAFTSTORE_CONSISTENCY_NONE);
    /* And a new check reaches it. */
    uint64_t again = check_at_leader(c, 1);
    assert_int_equal(wait_verdict(c, late, 1, again).state, RAFTSTORE_CONSISTENCY_CONSISTENT);
    test_cluster_free(c);
}

/* A split right behind the ComputeHash (before or after the VerifyHash): every replica hashed the
 * range the region had at the check's index, so they still agree; both halves check after. */
static void test_split_during_a_check(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 0);
    put_keys(c, "k", 20);
    uint64_t index = check_at_leader(c, 1);
    assert_int_equal(test_cluster_split(c, "k010", 2, OP_TIMEOUT), 0);
    assert_all_consistent(c, 3, 1, index);
    assert_all_consistent(c, 3, 1, check_at_leader(c, 1));
    assert_all_consistent(c, 3, 2, check_at_leader(c, 2));
    test_cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replicas_agree),
        cmocka_unit_test(test_writes_during_the_check_agree),
        cmocka_unit_test(test_corrupted_replica_reports_mismatch),
        cmocka_unit_test(test_only_the_leader_starts_a_check),
        cmocka_unit_test(test_late_and_snapshotted_replicas),
        cmocka_unit_test(test_split_during_a_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
