/* test_lease.c — the leader lease (store/peer.c): reads skip the ReadIndex round while it holds,
 * and a leader cut off from its followers never serves a value a new leader has overwritten. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec/codec.h"
#include "tests/lib/test_cluster.h"
#include "tests/lib/test_util.h"

/* The harness's stores tick every 20 ms with 10-tick election timeouts: the lease is the
 * election timeout less two ticks (store/peer.c). */
#define LEASE_SPAN_MS ((10 - 2) * 20)

static uint8_t *stored(const char *key, size_t *len)
{
    *len = codec_key_len(strlen(key));
    uint8_t *k = malloc(*len);
    codec_key_encode(key, strlen(key), k);
    return k;
}

static struct storage_ctx ctx_of(struct test_cluster *c, int store)
{
    struct raftstore_peer_info info;
    assert_true(test_cluster_peer_info(c, store, &info));
    return (struct storage_ctx){
        .region_id = 1, .region_conf_ver = info.conf_ver, .region_version = info.version};
}

/* One linearizable read of `key` at `store`: 1 and *value (malloc'd) when it answered. */
static int read_at(struct test_cluster *c, int store, const char *key, char **value)
{
    struct storage_ctx ctx = ctx_of(c, store);
    struct storage_reader *r;
    struct storage_error err;
    *value = NULL;
    if (storage_reader(test_cluster_storage(c, store), &ctx, &r, &err) != 0)
        return 0;
    size_t klen, vlen;
    uint8_t *k = stored(key, &klen);
    void *v = NULL;
    int rc = storage_reader_get(r, STORAGE_CF_DEFAULT, k, klen, &v, &vlen);
    storage_reader_free(r);
    free(k);
    if (rc == 0) {
        *value = malloc(vlen + 1);
        memcpy(*value, v, vlen);
        (*value)[vlen] = 0;
        free(v);
    }
    return 1;
}

static int write_at(struct test_cluster *c, int store, const char *key, const char *value)
{
    struct storage_ctx ctx = ctx_of(c, store);
    size_t klen;
    uint8_t *k = stored(key, &klen);
    struct storage_modify m = {STORAGE_MODIFY_PUT, STORAGE_CF_DEFAULT, k, klen, value,
                               strlen(value)};
    struct storage_error err;
    int rc = storage_write(test_cluster_storage(c, store), &ctx, &m, 1, &err);
    free(k);
    return rc;
}

/* Reads the key at the old leader over and over until told to stop, remembering the start time
 * of every read that answered with the old value. */
struct reader {
    struct test_cluster *c;
    int store;
    volatile int stop;
    uint64_t old_value_latest_start; /* start of the latest read that saw "v1" */
    uint64_t latest_answered_start;  /* start of the latest read that answered at all */
    int answered;
};

static void *reader_thread(void *arg)
{
    struct reader *rd = arg;
    while (!rd->stop) {
        uint64_t start = test_now_ms();
        char *v;
        if (read_at(rd->c, rd->store, "k", &v)) {
            rd->answered++;
            rd->latest_answered_start = start;
            if (v && strcmp(v, "v1") == 0)
                rd->old_value_latest_start = start;
        }
        free(v);
        usleep(2000);
    }
    return NULL;
}

static uint64_t lease_reads(struct test_cluster *c, int store)
{
    struct raftstore_peer_info info;
    assert_true(test_cluster_peer_info(c, store, &info));
    return info.lease_reads;
}

/* Whether region 1's peers on all three stores sleep (store/hibernate.c), waiting. */
static int wait_asleep(struct test_cluster *c, int timeout_ms)
{
    uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;
    while (test_now_ms() < deadline) {
        int n = 0;
        for (int s = 1; s <= 3; s++) {
            struct raftstore_peer_info info;
            n += test_cluster_peer_info(c, s, &info) && info.hibernated;
        }
        if (n == 3)
            return 1;
        usleep(5000);
    }
    return 0;
}

/* The partition scenario below; `asleep`: the region hibernates before the partition, and the
 * reads at the old leader begin after it. */
static void partitioned_leader(int asleep)
{
    struct test_cluster_options opts = {.n_stores = 3, .n_region_peers = 3, .seed = 7};
    struct test_cluster *c = test_cluster_new(&opts);
    assert_non_null(c);
    int leader = test_cluster_leader(c, 10000);
    assert_true(leader > 0);
    assert_int_equal(write_at(c, leader, "k", "v1"), 0);

    /* A few reads in a row: after the first ReadIndex confirms, the lease serves them. */
    uint64_t before = lease_reads(c, leader);
    for (int i = 0; i < 20; i++) {
        char *v;
        assert_true(read_at(c, leader, "k", &v));
        assert_non_null(v);
        assert_string_equal(v, "v1");
        free(v);
    }
    /* (the store refreshes what it reports every tick) */
    uint64_t until = test_now_ms() + 2000;
    while (lease_reads(c, leader) <= before && test_now_ms() < until)
        usleep(5000);
    assert_true(lease_reads(c, leader) > before);

    /* Asleep, the leader sends nothing: its followers learn of the partition only from the
     * silence of its store. */
    if (asleep)
        assert_true(wait_asleep(c, 10000));
    struct reader rd = {.c = c, .store = leader};
    pthread_t th;
    if (!asleep)
        assert_int_equal(pthread_create(&th, NULL, reader_thread, &rd), 0);
    int others[2], n = 0;
    for (int s = 1; s <= 3; s++)
        if (s != leader)
            others[n++] = s;
    test_cluster_partition(c, &leader, 1, others, 2);
    uint64_t partitioned = test_now_ms();
    if (asleep)
        assert_int_equal(pthread_create(&th, NULL, reader_thread, &rd), 0);

    /* The majority elects a leader of its own and commits a new value. */
    int new_leader = 0;
    uint64_t deadline = test_now_ms() + 15000;
    while (!new_leader && test_now_ms() < deadline) {
        for (int i = 0; i < 2; i++) {
            struct raftstore_peer_info info;
            if (test_cluster_peer_info(c, others[i], &info) && info.is_leader)
                new_leader = others[i];
        }
        usleep(5000);
    }
    assert_true(new_leader > 0);
    int rc = -1;
    while (rc != 0 && test_now_ms() < deadline)
        rc = write_at(c, new_leader, "k", "v2");
    assert_int_equal(rc, 0);
    uint64_t acked = test_now_ms();

    /* Keep reading at the old leader past any lease it could still believe in. */
    usleep(2000 * 1000);
    rd.stop = 1;
    pthread_join(th, NULL);
    printf("old leader answered %d reads after the partition, the last one started %lld ms after "
           "it (lease %d ms); the new leader's write was acknowledged %lld ms after it\n",
           rd.answered,
           rd.answered ? (long long)rd.latest_answered_start - (long long)partitioned : 0LL,
           LEASE_SPAN_MS, (long long)(acked - partitioned));
    assert_true(rd.old_value_latest_start < acked);
    /* Its lease came from a ReadIndex issued before the partition: nothing it answered after
     * can have started a lease span past it. */
    assert_true(rd.latest_answered_start < partitioned + LEASE_SPAN_MS);
    /* Its lease ended while it slept (it sleeps only after an election timeout of idleness):
     * woken by the reads, it has no lease and cannot confirm one. */
    if (asleep)
        assert_int_equal(rd.answered, 0);

    test_cluster_heal(c);
    char *v = NULL;
    deadline = test_now_ms() + 10000;
    while (test_now_ms() < deadline) {
        free(v);
        v = NULL;
        if (test_cluster_get(c, "k", &v, 2000) == 0 && v && strcmp(v, "v2") == 0)
            break;
        usleep(10000);
    }
    assert_non_null(v);
    assert_string_equal(v, "v2");
    free(v);
    test_cluster_free(c);
}

/* A leader serves reads by its lease; partitioned from its followers, it goes on serving until
 * the lease ends, and a new leader commits only after that: no read at the old leader that
 * started after the new leader acknowledged a write sees the old value. */
static void test_partitioned_leader_never_serves_value_overwritten_by_new_leader(void **state)
{
    (void)state;
    partitioned_leader(0);
}

/* The same with the region hibernating when the partition comes: the followers wake on the
 * silence of the leader's store and elect a leader of their own, and the old leader, woken by
 * reads, serves none of them (its lease ended while it slept). */
static void test_hibernated_partitioned_leader_serves_no_read_without_a_live_lease(void **state)
{
    (void)state;
    partitioned_leader(1);
}

/* An answer of storage_reader_async, and the thread that gave it. */
struct async_read {
    int answered;
    pthread_t by;
    int rc;
    int region_kind;
    struct storage_reader *reader;
};

static void on_async_read(void *arg, int rc, struct storage_reader *r,
                          const struct storage_error *err)
{
    struct async_read *a = arg;
    a->rc = rc;
    a->region_kind = rc && err ? (int)err->region_kind : 0;
    a->reader = r;
    a->by = pthread_self();
    __atomic_store_n(&a->answered, 1, __ATOMIC_SEQ_CST);
}

/* One read of region 1 at `store` with the given epoch version: *sync set when it was answered
 * on this thread (not the store loop's); waits for the answer. Returns its code. */
static int read_version(struct test_cluster *c, int store, uint64_t version, int *sync,
                        int *region_kind)
{
    struct storage_ctx ctx = ctx_of(c, store);
    ctx.region_version = version;
    struct async_read a = {0};
    storage_reader_async(test_cluster_storage(c, store), &ctx, on_async_read, &a);
    uint64_t deadline = test_now_ms() + 10000;
    while (!__atomic_load_n(&a.answered, __ATOMIC_SEQ_CST) && test_now_ms() < deadline)
        usleep(1000);
    assert_true(a.answered);
    *sync = pthread_equal(a.by, pthread_self());
    storage_reader_free(a.reader);
    *region_kind = a.region_kind;
    return a.rc;
}

/* Under its lease, a leader answers reads on the caller's thread (store/local_read.c), without
 * its loop; after a split the old epoch is refused (the moved keys are another region's), and
 * after a leadership transfer the old leader answers no read at all. */
static void test_lease_reads_answer_on_callers_thread_until_split_or_transfer(void **state)
{
    (void)state;
    struct test_cluster_options opts = {.n_stores = 3, .n_region_peers = 3, .seed = 11};
    struct test_cluster *c = test_cluster_new(&opts);
    assert_non_null(c);
    int leader = test_cluster_leader(c, 10000);
    assert_true(leader > 0);
    assert_int_equal(write_at(c, leader, "k", "v1"), 0);

    struct raftstore_peer_info info;
    assert_true(test_cluster_peer_info(c, leader, &info));
    uint64_t version = info.version;
    int sync = 0, kind, served_here = 0;
    uint64_t deadline = test_now_ms() + 5000;
    while (!served_here && test_now_ms() < deadline) {
        assert_int_equal(read_version(c, leader, version, &sync, &kind), 0);
        served_here = sync;
        usleep(2000);
    }
    assert_true(served_here);

    assert_int_equal(test_cluster_split(c, "m", 2, 10000), 0);
    assert_int_equal(read_version(c, leader, version, &sync, &kind), STORAGE_ERR_REGION);
    assert_int_equal(kind, STORAGE_REGION_ERR_EPOCH_NOT_MATCH);

    int to = leader % 3 + 1;
    assert_int_equal(test_cluster_transfer_leader(c, to, 10000), 0);
    assert_true(test_cluster_peer_info(c, leader, &info));
    assert_int_equal(read_version(c, leader, info.version, &sync, &kind), STORAGE_ERR_REGION);
    assert_int_equal(kind, STORAGE_REGION_ERR_NOT_LEADER);
    test_cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partitioned_leader_never_serves_value_overwritten_by_new_leader),
        cmocka_unit_test(test_hibernated_partitioned_leader_serves_no_read_without_a_live_lease),
        cmocka_unit_test(test_lease_reads_answer_on_callers_thread_until_split_or_transfer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
