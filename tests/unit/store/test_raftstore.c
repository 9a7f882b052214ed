/* test_raftstore.c — the replicated store in-process: several raftstores over a faulty in-memory
 * network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "codec/codec.h"
#include "eraftpb.pb-c.h"
#include "raft_serverpb.pb-c.h"
#include "tests/lib/test_cluster.h"
#include "tests/lib/test_util.h"

#define OP_TIMEOUT 10000

static void put_ok(struct test_cluster *c, const char *k, const char *v)
{
    assert_int_equal(test_cluster_put(c, k, v, OP_TIMEOUT), 0);
}

static void get_eq(struct test_cluster *c, const char *k, const char *want)
{
    char *v = NULL;
    int rc = test_cluster_get(c, k, &v, OP_TIMEOUT);
    if (!want) {
        assert_int_equal(rc, STORAGE_ERR_NOT_FOUND);
        return;
    }
    assert_int_equal(rc, 0);
    assert_string_equal(v, want);
    free(v);
}

static struct test_cluster *cluster(int n_stores, int n_peers, uint64_t gc_limit)
{
    struct test_cluster_options o = {.n_stores = n_stores,
                                     .n_region_peers = n_peers,
                                     .raft_log_gc_count_limit = gc_limit,
                                     .seed = 42};
    struct test_cluster *c = test_cluster_new(&o);
    assert_non_null(c);
    assert_true(test_cluster_leader(c, OP_TIMEOUT) > 0);
    return c;
}

/* Three replicas elect a leader, acknowledged writes read back, and every replica applies them. */
static void test_basic_replication(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3, 0);
    char k[32], v[32];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "key%03d", i);
        snprintf(v, sizeof v, "value%d", i);
        put_ok(c, k, v);
    }
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "key%03d", i);
        snprintf(v, sizeof v, "value%d", i);
        get_eq(c, k, v);
    }
    assert_int_equal(test_cluster_delete(c, "key000", OP_TIMEOUT), 0);
    get_eq(c, "key000", NULL);
    for (int s = 1; s <= 3; s++) {
        assert_true(test_cluster_wait_local(c, s, "key049", "value49", 5000));
        assert_true(test_cluster_wait_local(c, s, "key000", NULL, 5000));
    }
    test_cluster_free(c);
}

/* Killing the leader: a new leader takes writes, and the old one catches up after restarting. */
static void test_leader_crash_and_catch_up(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3, 0);
    put_ok(c, "before", "1");
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    test_cluster_stop_store(c, leader);
    put_ok(c, "during", "2");
    int second = test_cluster_leader(c, OP_TIMEOUT);
    assert_true(second && second != leader);
    test_cluster_start_store(c, leader);
    assert_true(test_cluster_wait_local(c, leader, "during", "2", 10000));
    /* The restarted store takes part in a quorum again: stop another one and write. */
    test_cluster_stop_store(c, second);
    put_ok(c, "after", "3");
    get_eq(c, "before", "1");
    test_cluster_free(c);
}

/* A leader cut off in the minority cannot commit or serve reads; the majority goes on; healing
 * converges. */
static void test_partition_leader_in_minority(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(5, 5, 0);
    put_ok(c, "k", "v1");
    int old = test_cluster_leader(c, OP_TIMEOUT);
    int minority[2] = {old, 0}, majority[4];
    int nm = 0;
    for (int s = 1; s <= 5; s++)
        if (s != old) {
            if (!minority[1])
                minority[1] = s;
            else
                majority[nm++] = s;
        }
    test_cluster_partition(c, minority, 2, majority, 3);
    /* The old leader's storage may not answer a read it cannot confirm. */
    struct storage_ctx ctx = {.region_id = 1};
    struct raftstore_peer_info info;
    assert_true(test_cluster_peer_info(c, old, &info));
    ctx.region_conf_ver = info.conf_ver;
    ctx.region_version = info.version;
    put_ok(c, "k", "v2"); /* through the majority's new leader */
    int now = test_cluster_leader(c, OP_TIMEOUT);
    assert_true(now != old && now != minority[1]);
    /* The old leader cannot confirm a read, so it never answers with its stale v1. */
    struct storage_reader *r = NULL;
    struct storage_error err;
    int rc = storage_reader(test_cluster_storage(c, old), &ctx, &r, &err);
    assert_int_equal(rc, STORAGE_ERR_REGION);
    assert_null(r);
    for (int i = 0; i < 10; i++) {
        char k[16];
        snprintf(k, sizeof k, "m%d", i);
        put_ok(c, k, "x");
    }
    test_cluster_heal(c);
    assert_true(test_cluster_wait_local(c, old, "k", "v2", 10000));
    assert_true(test_cluster_wait_local(c, minority[1], "m9", "x", 10000));
    get_eq(c, "k", "v2");
    test_cluster_free(c);
}

/* Under drops and delays, every acknowledged write is there afterwards. */
static void test_unreliable_network(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3, 0);
    test_cluster_set_unreliable(c, 100, 20);
    char k[32], v[32];
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof k, "u%03d", i);
        snprintf(v, sizeof v, "%d", i * 7);
        put_ok(c, k, v);
    }
    test_cluster_heal(c);
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof k, "u%03d", i);
        snprintf(v, sizeof v, "%d", i * 7);
        get_eq(c, k, v);
    }
    test_cluster_free(c);
}

/* Every store crashes and restarts: nothing acknowledged is lost. */
static void test_full_restart_keeps_acknowledged_writes(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3, 0);
    char k[32];
    for (int i = 0; i < 30; i++) {
        snprintf(k, sizeof k, "p%03d", i);
        put_ok(c, k, k);
    }
    for (int s = 1; s <= 3; s++)
        test_cluster_stop_store(c, s);
    for (int s = 1; s <= 3; s++)
        test_cluster_start_store(c, s);
    assert_true(test_cluster_leader(c, OP_TIMEOUT) > 0);
    for (int i = 0; i < 30; i++) {
        snprintf(k, sizeof k, "p%03d", i);
        get_eq(c, k, k);
    }
    put_ok(c, "new", "after-restart");
    test_cluster_free(c);
}

/* The log stays bounded by compaction, and a store that missed the compacted part catches up by
 * snapshot. */
static void test_snapshot_after_log_compaction(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3, 20);
    put_ok(c, "first", "1");
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    int lagger = leader == 3 ? 2 : 3;
    test_cluster_stop_store(c, lagger);
    char k[32];
    for (int i = 0; i < 120; i++) {
        snprintf(k, sizeof k, "s%03d", i);
        put_ok(c, k, k);
    }
    leader = test_cluster_leader(c, OP_TIMEOUT);
    uint64_t deadline = test_now_ms() + 5000;
    while (test_cluster_log_entries(c, leader) > 40 && test_now_ms() < deadline)
        usleep(10000);
    assert_true(test_cluster_log_entries(c, leader) <= 40);
    struct raftstore_peer_info info;
    assert_true(test_cluster_peer_info(c, leader, &info));
    assert_true(info.first_index > 10); /* the early log is gone */
    test_cluster_start_store(c, lagger);
    assert_true(test_cluster_wait_local(c, lagger, "s119", "s119", 15000));
    assert_true(test_cluster_wait_local(c, lagger, "first", "1", 1000));
    test_cluster_free(c);
}

/* A region on one store grows to three by adding peers (snapshots), then loses its leader by
 * removal. */
static void test_add_and_remove_peers_including_leader(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 1, 0);
    put_ok(c, "a", "1");
    assert_int_equal(test_cluster_add_peer(c, 2, 102, OP_TIMEOUT), 0);
    assert_int_equal(test_cluster_add_peer(c, 3, 103, OP_TIMEOUT), 0);
    assert_true(test_cluster_wait_local(c, 2, "a", "1", 10000));
    assert_true(test_cluster_wait_local(c, 3, "a", "1", 10000));
    put_ok(c, "b", "2");
    assert_true(test_cluster_wait_local(c, 3, "b", "2", 10000));
    /* Remove the leader (store 1's peer): the others go on without it. */
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    assert_int_equal(test_cluster_remove_peer(c, leader, OP_TIMEOUT), 0);
    put_ok(c, "c", "3");
    int now = test_cluster_leader(c, OP_TIMEOUT);
    assert_true(now != leader);
    /* The removed store destroyed its replica: its data for the region is gone. */
    assert_true(test_cluster_wait_local(c, leader, "a", NULL, 10000));
    struct raftstore_peer_info info;
    assert_false(test_cluster_peer_info(c, leader, &info));
    get_eq(c, "c", "3");
    test_cluster_free(c);
}

/* Sends store `to` a heartbeat for region 1 from peer 1 as of an old membership (conf_ver). */
static void send_stale_heartbeat(struct test_cluster *c, int to, uint64_t to_peer,
                                 uint64_t conf_ver)
{
    Metapb__Peer from = METAPB__PEER__INIT, dst = METAPB__PEER__INIT;
    from.id = 1;
    from.store_id = 1;
    dst.id = to_peer;
    dst.store_id = (uint64_t)to;
    Metapb__RegionEpoch epoch = METAPB__REGION_EPOCH__INIT;
    epoch.conf_ver = conf_ver;
    epoch.version = 1;
    Eraftpb__Message m = ERAFTPB__MESSAGE__INIT;
    m.msg_type = ERAFTPB__MESSAGE_TYPE__MsgHeartbeat;
    m.from = 1;
    m.to = to_peer;
    m.term = 6;
    RaftServerpb__RaftMessage msg = RAFT_SERVERPB__RAFT_MESSAGE__INIT;
    msg.region_id = 1;
    msg.from_peer = &from;
    msg.to_peer = &dst;
    msg.region_epoch = &epoch;
    msg.message = &m;
    raftstore_step(test_cluster_store(c, to), &msg);
}

/* A removed peer is destroyed for good: a stale message from the old configuration does not
 * bring it back, also after its store restarts, and adding the same peer id again is ignored. */
static void test_removed_peer_not_resurrected_by_stale_messages(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3, 0);
    put_ok(c, "k", "v");
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    int victim = leader % 3 + 1;
    assert_int_equal(test_cluster_remove_peer(c, victim, OP_TIMEOUT), 0);
    assert_true(test_cluster_wait_local(c, victim, "k", NULL, 10000));
    send_stale_heartbeat(c, victim, (uint64_t)victim, 1);
    usleep(300000);
    struct raftstore_peer_info info;
    assert_false(test_cluster_peer_info(c, victim, &info));
    test_cluster_stop_store(c, victim);
    test_cluster_start_store(c, victim);
    send_stale_heartbeat(c, victim, (uint64_t)victim, 1);
    usleep(300000);
    assert_false(test_cluster_peer_info(c, victim, &info));
    /* The rest of the region goes on. */
    put_ok(c, "k2", "v2");
    get_eq(c, "k", "v");
    test_cluster_free(c);
}

/* A repeated membership change (the same add twice) changes the configuration once. */
static void test_duplicate_change_peer_is_ignored(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 2, 0);
    put_ok(c, "k", "v");
    assert_int_equal(test_cluster_add_peer(c, 3, 103, OP_TIMEOUT), 0);
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    struct raftstore_peer_info before, after;
    assert_true(test_cluster_peer_info(c, leader, &before));
    raftstore_change_peer(test_cluster_store(c, leader), 1, 0, (struct region_peer){103, 3});
    raftstore_change_peer(test_cluster_store(c, leader), 1, 0, (struct region_peer){103, 3});
    put_ok(c, "k2", "v2"); /* a round trip through the log after the duplicates */
    assert_true(test_cluster_peer_info(c, leader, &after));
    assert_int_equal(after.conf_ver, before.conf_ver);
    assert_int_equal(after.n_peers, 3);
    test_cluster_free(c);
}

/* A lost snapshot is reported as failed, so the leader sends another and a follower left
 * behind by a partition catches up (found by test_raftstore_faults, seed 3450741). */
static void test_snapshot_lost_in_partition_is_resent(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3, 20);
    put_ok(c, "first", "1");
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    int cut = leader % 3 + 1;
    int rest[2], nr = 0;
    for (int s = 1; s <= 3; s++)
        if (s != cut)
            rest[nr++] = s;
    test_cluster_partition(c, &cut, 1, rest, 2);
    char k[32];
    for (int i = 0; i < 150; i++) {
        snprintf(k, sizeof k, "p%03d", i);
        put_ok(c, k, k);
    }
    /* Heal, but lose every snapshot for a while: the leader must hear of the loss and resend. */
    test_cluster_drop_snapshots(c, 1);
    test_cluster_heal(c);
    usleep(1000000);
    test_cluster_drop_snapshots(c, 0);
    assert_true(test_cluster_wait_local(c, cut, "p149", "p149", 15000));
    test_cluster_free(c);
}

/* Leadership moves to the requested store and writes keep working. */
static void test_transfer_leader(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3, 0);
    put_ok(c, "x", "1");
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    int target = leader % 3 + 1;
    assert_int_equal(test_cluster_transfer_leader(c, target, OP_TIMEOUT), 0);
    assert_int_equal(test_cluster_leader(c, OP_TIMEOUT), target);
    put_ok(c, "y", "2");
    get_eq(c, "x", "1");
    test_cluster_free(c);
}

/* Many writes posted to one store at once, each answered by its own callback. */
#define BURST 64
struct burst {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int answered[BURST]; /* times each write was answered */
    int rc[BURST];
    int n_answered;
};

struct burst_slot {
    struct burst *b;
    int i;
};

static void burst_done(void *arg, int rc, const struct storage_error *err)
{
    (void)err;
    struct burst_slot *slot = arg;
    struct burst *b = slot->b;
    pthread_mutex_lock(&b->mu);
    b->answered[slot->i]++;
    b->rc[slot->i] = rc;
    b->n_answered++;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
}

/* Posts BURST puts (key "<prefix>NN" = "vNN") to `store` without waiting, then waits up to
 * timeout_ms for every answer; returns how many came. */
static int post_burst(struct test_cluster *c, int store, const char *prefix, struct burst *b,
                      struct burst_slot *slots, int timeout_ms)
{
    struct raftstore_peer_info info;
    assert_true(test_cluster_peer_info(c, store, &info));
    struct storage_ctx ctx = {
        .region_id = 1, .region_conf_ver = info.conf_ver, .region_version = info.version};
    struct storage *s = test_cluster_storage(c, store);
    assert_non_null(s);
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cond, NULL);
    for (int i = 0; i < BURST; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "%s%02d", prefix, i);
        snprintf(v, sizeof v, "v%02d", i);
        uint8_t key[64];
        size_t klen = codec_key_len(strlen(k));
        codec_key_encode(k, strlen(k), key);
        struct storage_modify m = {STORAGE_MODIFY_PUT, STORAGE_CF_DEFAULT, key, klen, v, strlen(v)};
        slots[i] = (struct burst_slot){b, i};
        storage_write_async(s, &ctx, &m, 1, burst_done, &slots[i]);
    }
    uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;
    pthread_mutex_lock(&b->mu);
    while (b->n_answered < BURST && test_now_ms() < deadline) {
        pthread_mutex_unlock(&b->mu);
        usleep(10000);
        pthread_mutex_lock(&b->mu);
    }
    int n = b->n_answered;
    pthread_mutex_unlock(&b->mu);
    return n;
}

/* Writes that reach the leader together go into the log as a few shared entries, and every one
 * of them is answered once, applied on every replica. */
static void test_writes_arriving_together_share_entries_each_answered(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3, 0);
    put_ok(c, "warm", "up");
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    uint64_t before = test_cluster_log_entries(c, leader);
    static struct burst b;
    static struct burst_slot slots[BURST];
    assert_int_equal(post_burst(c, leader, "b", &b, slots, OP_TIMEOUT), BURST);
    for (int i = 0; i < BURST; i++) {
        assert_int_equal(b.answered[i], 1);
        assert_int_equal(b.rc[i], 0);
    }
    /* Posted within microseconds, while a loop round takes a disk sync: far fewer entries. */
    uint64_t added = test_cluster_log_entries(c, leader) - before;
    assert_true(added < BURST / 2);
    char k[32], v[32];
    for (int i = 0; i < BURST; i++) {
        snprintf(k, sizeof k, "b%02d", i);
        snprintf(v, sizeof v, "v%02d", i);
        get_eq(c, k, v);
        for (int st = 1; st <= 3; st++)
            assert_true(test_cluster_wait_local(c, st, k, v, 5000));
    }
    test_cluster_free(c);
}

/* A burst batched on a leader cut off from the others: every write is answered once (none
 * succeeds, none hangs past the storage's deadline), and after the heal every replica holds the
 * same thing for each key. */
static void test_burst_on_a_partitioned_leader_all_answered(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3, 0);
    put_ok(c, "warm", "up");
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    int alone[] = {leader}, rest[2], n_rest = 0;
    for (int st = 1; st <= 3; st++)
        if (st != leader)
            rest[n_rest++] = st;
    test_cluster_partition(c, alone, 1, rest, 2);
    static struct burst b;
    static struct burst_slot slots[BURST];
    assert_int_equal(post_burst(c, leader, "p", &b, slots, OP_TIMEOUT), BURST);
    for (int i = 0; i < BURST; i++) {
        assert_int_equal(b.answered[i], 1);
        assert_int_not_equal(b.rc[i], 0);
    }
    test_cluster_heal(c);
    put_ok(c, "after", "heal");
    for (int st = 1; st <= 3; st++)
        assert_true(test_cluster_wait_local(c, st, "after", "heal", 10000));
    char k[32];
    for (int i = 0; i < BURST; i++) {
        snprintf(k, sizeof k, "p%02d", i);
        char *first = test_cluster_local_get(c, 1, k);
        for (int st = 2; st <= 3; st++) {
            char *other = test_cluster_local_get(c, st, k);
            assert_true((!first && !other) || (first && other && strcmp(first, other) == 0));
            free(other);
        }
        free(first);
    }
    test_cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_replication),
        cmocka_unit_test(test_leader_crash_and_catch_up),
        cmocka_unit_test(test_partition_leader_in_minority),
        cmocka_unit_test(test_unreliable_network),
        cmocka_unit_test(test_full_restart_keeps_acknowledged_writes),
        cmocka_unit_test(test_snapshot_after_log_compaction),
        cmocka_unit_test(test_add_and_remove_peers_including_leader),
        cmocka_unit_test(test_transfer_leader),
        cmocka_unit_test(test_removed_peer_not_resurrected_by_stale_messages),
        cmocka_unit_test(test_duplicate_change_peer_is_ignored),
        cmocka_unit_test(test_snapshot_lost_in_partition_is_resent),
        cmocka_unit_test(test_writes_arriving_together_share_entries_each_answered),
        cmocka_unit_test(test_burst_on_a_partitioned_leader_all_answered),
    };
    return cmocka_run_group_tests_name("raftstore", tests, NULL, NULL);
}
