/* test_raftstore_stepdown.c — what a write is answered when its leader steps down before the
 * write's entry commits: never "not done" for an entry a later leader commits (issue 14). */
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

/*
 * The worst moment for a leader to lose its quorum: a write's entry is in the
 * leader's log, not yet committed. Here both followers crash, so the entry
 * stays in the leader's log alone; check_quorum makes the leader step down.
 * The entry is not lost: a follower restarting cannot win without the old
 * leader's vote, the old leader (longer log) wins, and commits the entry. So
 * the write's answer must be success or "undetermined", never NotLeader or
 * StaleCommand, which a client reads as "not done, retry elsewhere".
 */

struct pending_write {
    struct storage *s;
    struct storage_ctx ctx;
    const char *key, *value;
    int rc;
    struct storage_error err;
    volatile int done;
};

static void *write_thread(void *arg)
{
    struct pending_write *w = arg;
    /* Stored as the raw API stores it, so the harness's reads find it. */
    size_t klen = codec_key_len(strlen(w->key));
    uint8_t *k = malloc(klen);
    codec_key_encode(w->key, strlen(w->key), k);
    struct storage_modify m = {STORAGE_MODIFY_PUT, STORAGE_CF_DEFAULT, k, klen,
                               w->value,           strlen(w->value)};
    w->rc = storage_write(w->s, &w->ctx, &m, 1, &w->err);
    free(k);
    w->done = 1;
    return NULL;
}

/* True if the answer means the write certainly did not and will not apply. */
static int answer_is_not_done(const struct pending_write *w)
{
    return w->rc == STORAGE_ERR_REGION && w->err.region_kind != STORAGE_REGION_ERR_UNDETERMINED;
}

static int wait_not_leader(struct test_cluster *c, int store, int timeout_ms)
{
    uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;
    struct raftstore_peer_info info;
    while (test_now_ms() < deadline) {
        if (test_cluster_peer_info(c, store, &info) && !info.is_leader)
            return 1;
        usleep(10000);
    }
    return 0;
}

static int other(int leader, int k)
{
    int n = 0;
    for (int s = 1; s <= 3; s++)
        if (s != leader && n++ == k)
            return s;
    return 0;
}

/* Starts a write on `leader` after crashing both followers; returns once the leader stepped down.
 */
static void start_orphaned_write(struct test_cluster *c, int leader, struct pending_write *w,
                                 pthread_t *th)
{
    struct raftstore_peer_info info;
    assert_true(test_cluster_peer_info(c, leader, &info));
    test_cluster_stop_store(c, other(leader, 0));
    test_cluster_stop_store(c, other(leader, 1));
    w->s = test_cluster_storage(c, leader);
    w->ctx = (struct storage_ctx){.region_id = 1,
                                  .region_conf_ver = info.conf_ver,
                                  .region_version = info.version,
                                  .timeout_ms = w->ctx.timeout_ms};
    assert_int_equal(pthread_create(th, NULL, write_thread, w), 0);
    /* check_quorum: alone, the leader steps down within an election timeout or two. */
    assert_true(wait_not_leader(c, leader, 10000));
}

static void wait_done(struct pending_write *w, pthread_t th)
{
    uint64_t deadline = test_now_ms() + 15000;
    while (!w->done && test_now_ms() < deadline)
        usleep(10000);
    assert_true(w->done);
    pthread_join(th, NULL);
}

/* Leader loses both followers with a write in its log, one follower returns: the old leader
 * commits the write, which therefore must not have been answered NotLeader or StaleCommand. */
static void test_write_committed_by_reelected_leader_is_never_answered_not_done(void **state)
{
    (void)state;
    struct test_cluster_options o = {.n_stores = 3, .n_region_peers = 3, .seed = 14};
    struct test_cluster *c = test_cluster_new(&o);
    assert_int_equal(test_cluster_put(c, "warm", "up", 10000), 0);
    int leader = test_cluster_leader(c, 10000);
    assert_true(leader > 0);

    struct pending_write w = {.key = "orphan", .value = "committed-later"};
    pthread_t th;
    start_orphaned_write(c, leader, &w, &th);
    test_cluster_start_store(c, other(leader, 0));
    wait_done(&w, th);

    char *v = NULL;
    assert_int_equal(test_cluster_get(c, "orphan", &v, 15000), 0);
    assert_string_equal(v, "committed-later");
    free(v);
    if (answer_is_not_done(&w))
        fail_msg("the write applied but was answered region error %d: %s", w.err.region_kind,
                 w.err.msg);
    printf("answer: %s\n", w.rc == 0 ? "success" : w.err.msg);
    test_cluster_start_store(c, other(leader, 1));
    test_cluster_free(c);
}

/* Leader loses both followers with a write in its log, then is cut off while they elect a new
 * leader and write at the same index: the old entry never applies, and is never answered success.
 */
static void test_write_superseded_by_new_leader_is_never_answered_success(void **state)
{
    (void)state;
    struct test_cluster_options o = {.n_stores = 3, .n_region_peers = 3, .seed = 15};
    struct test_cluster *c = test_cluster_new(&o);
    assert_int_equal(test_cluster_put(c, "warm", "up", 10000), 0);
    int leader = test_cluster_leader(c, 10000);
    assert_true(leader > 0);

    struct pending_write w = {.key = "orphan", .value = "superseded"};
    pthread_t th;
    start_orphaned_write(c, leader, &w, &th);
    int a[1] = {leader}, b[2] = {other(leader, 0), other(leader, 1)};
    test_cluster_partition(c, a, 1, b, 2);
    test_cluster_start_store(c, b[0]);
    test_cluster_start_store(c, b[1]);
    int new_leader = 0;
    uint64_t deadline = test_now_ms() + 15000;
    while (new_leader != b[0] && new_leader != b[1] && test_now_ms() < deadline)
        new_leader = test_cluster_leader(c, 100);
    assert_true(new_leader == b[0] || new_leader == b[1]);
    assert_int_equal(test_cluster_put(c, "after", "new-leader", 10000), 0);
    test_cluster_heal(c);
    wait_done(&w, th);

    /* The old leader catches up to the new log, which never had the write. */
    char *v = NULL;
    deadline = test_now_ms() + 15000;
    while (!(v = test_cluster_local_get(c, leader, "after")) && test_now_ms() < deadline)
        usleep(20000);
    assert_non_null(v);
    free(v);
    assert_int_equal(test_cluster_get(c, "orphan", &v, 10000), STORAGE_ERR_NOT_FOUND);
    assert_null(test_cluster_local_get(c, leader, "orphan"));
    if (w.rc == 0)
        fail_msg("a superseded write was answered success");
    printf("answer: %s\n", w.err.msg);
    test_cluster_free(c);
}

/* A write that asks for a longer timeout (a one-phase commit's, storage_ctx.timeout_ms) is not
 * answered undetermined at the storage's own deadline (1 s here): it waits for Raft's verdict,
 * which comes when the old leader is re-elected and commits it. */
static void test_write_with_long_timeout_waits_for_its_verdict(void **state)
{
    (void)state;
    struct test_cluster_options o = {.n_stores = 3, .n_region_peers = 3, .seed = 16};
    struct test_cluster *c = test_cluster_new(&o);
    assert_int_equal(test_cluster_put(c, "warm", "up", 10000), 0);
    int leader = test_cluster_leader(c, 10000);
    assert_true(leader > 0);

    struct pending_write w = {.key = "orphan", .value = "verdict"};
    w.ctx.timeout_ms = 30000;
    pthread_t th;
    start_orphaned_write(c, leader, &w, &th);
    /* Three times the storage's own timeout: a default write would have its answer by now. */
    uint64_t until = test_now_ms() + 3000;
    while (!w.done && test_now_ms() < until)
        usleep(10000);
    if (w.done)
        fail_msg("answered before its verdict: rc %d (%s)", w.rc, w.err.msg);
    test_cluster_start_store(c, other(leader, 0));
    wait_done(&w, th);
    assert_int_equal(w.rc, 0);
    test_cluster_start_store(c, other(leader, 1));
    test_cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_committed_by_reelected_leader_is_never_answered_not_done),
        cmocka_unit_test(test_write_superseded_by_new_leader_is_never_answered_success),
        cmocka_unit_test(test_write_with_long_timeout_waits_for_its_verdict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
