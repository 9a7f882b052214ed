/* test_split.c — many regions in one process: splitting a region, requests bounded by it, restarts.
 */
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
#include "pd/pd.h"
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

static struct test_cluster *cluster(int n_stores, int n_peers)
{
    struct test_cluster_options o = {.n_stores = n_stores, .n_region_peers = n_peers, .seed = 7};
    struct test_cluster *c = test_cluster_new(&o);
    assert_non_null(c);
    assert_true(test_cluster_leader(c, OP_TIMEOUT) > 0);
    return c;
}

/* Whether `store` holds region_id with range [start, end) (NULL end: +inf), waiting. */
static int wait_range(struct test_cluster *c, int store, uint64_t region_id, const char *start,
                      const char *end, int timeout_ms)
{
    uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;
    do {
        struct region r;
        if (test_cluster_region(c, store, region_id, &r) == 0) {
            size_t el = end ? strlen(end) : 0;
            int ok = r.start_key_len == strlen(start) &&
                     memcmp(r.start_key, start, r.start_key_len) == 0 && r.end_key_len == el &&
                     (el == 0 || memcmp(r.end_key, end, el) == 0);
            store_region_free(&r);
            if (ok)
                return 1;
        }
        usleep(10000);
    } while (test_now_ms() < deadline);
    return 0;
}

static void put_keys(struct test_cluster *c, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "%s%02d", prefix, i);
        snprintf(v, sizeof v, "v-%s%02d", prefix, i);
        put_ok(c, k, v);
    }
}

static void check_keys(struct test_cluster *c, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "%s%02d", prefix, i);
        snprintf(v, sizeof v, "v-%s%02d", prefix, i);
        get_eq(c, k, v);
    }
}

/* A split at "m" gives every store both halves; both elect leaders and serve their keys. */
static void test_split_one_region_serves_both_halves(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3);
    put_keys(c, "a", 10);
    put_keys(c, "x", 10);
    assert_int_equal(test_cluster_split(c, "m", 2, OP_TIMEOUT), 0);
    for (int s = 1; s <= 3; s++) {
        assert_true(wait_range(c, s, 1, "", "m", OP_TIMEOUT));
        assert_true(wait_range(c, s, 2, "m", NULL, OP_TIMEOUT));
    }
    assert_true(test_cluster_region_leader(c, 2, OP_TIMEOUT) > 0);
    assert_int_equal(test_cluster_region_of_key(c, "a00"), 1);
    assert_int_equal(test_cluster_region_of_key(c, "x00"), 2);
    check_keys(c, "a", 10);
    check_keys(c, "x", 10);
    put_keys(c, "b", 5);
    put_keys(c, "y", 5);
    check_keys(c, "b", 5);
    check_keys(c, "y", 5);
    test_cluster_free(c);
}

/* The parent leader's store campaigns for each new region at once and the followers' new
 * peers vote for it (a peer a split creates holds no boot lease): every new region's first
 * leader is on the parent leader's store. (In process the followers' boot lease only delayed
 * that; between processes a follower often won the region after it.) */
static void test_new_regions_lead_where_the_parent_led(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3);
    int parent_leader = test_cluster_leader(c, OP_TIMEOUT);
    const char *keys[] = {"u", "p", "k", "f", "c", "b"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        uint64_t id = 2 + i;
        assert_int_equal(test_cluster_split(c, keys[i], id, OP_TIMEOUT), 0);
        int leader = test_cluster_region_leader(c, id, OP_TIMEOUT);
        printf("region %llu split at %s: leader on store %d (parent's on %d)\n",
               (unsigned long long)id, keys[i], leader, parent_leader);
        assert_int_equal(leader, parent_leader);
    }
    put_keys(c, "d", 5);
    check_keys(c, "d", 5);
    test_cluster_free(c);
}

/* Reads for the right-hand key sent to the left region: KeyNotInRegion naming the key;
 * a request with the pre-split version: EpochNotMatch. */
static void test_requests_bounded_by_region(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3);
    put_ok(c, "zebra", "1");
    struct raftstore_peer_info before;
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    assert_true(test_cluster_region_peer_info(c, leader, 1, &before));
    assert_int_equal(test_cluster_split(c, "m", 2, OP_TIMEOUT), 0);
    leader = test_cluster_region_leader(c, 1, OP_TIMEOUT);
    assert_true(leader > 0);
    struct raftstore_peer_info now;
    assert_true(test_cluster_region_peer_info(c, leader, 1, &now));
    assert_int_equal(now.version, before.version + 1);

    struct storage_key k = {"zebra", 5};
    struct storage_ctx ctx = {.region_id = 1,
                              .region_conf_ver = now.conf_ver,
                              .region_version = now.version,
                              .keys = &k,
                              .n_keys = 1};
    struct storage_reader *r = NULL;
    struct storage_error err;
    memset(&err, 0, sizeof err);
    int rc = storage_reader(test_cluster_storage(c, leader), &ctx, &r, &err);
    assert_int_equal(rc, STORAGE_ERR_REGION);
    assert_int_equal(err.region_kind, STORAGE_REGION_ERR_KEY_NOT_IN_REGION);
    assert_int_equal(err.region_id, 1);
    assert_int_equal(err.key_pos, 1);

    ctx.region_version = before.version;
    struct storage_key a = {"apple", 5};
    ctx.keys = &a;
    memset(&err, 0, sizeof err);
    rc = storage_reader(test_cluster_storage(c, leader), &ctx, &r, &err);
    assert_int_equal(rc, STORAGE_ERR_REGION);
    assert_int_equal(err.region_kind, STORAGE_REGION_ERR_EPOCH_NOT_MATCH);

    /* A write of a right-hand key to the left region is refused too. */
    size_t klen = codec_key_len(5);
    uint8_t *enc = malloc(klen);
    codec_key_encode("zebra", 5, enc);
    struct storage_modify m = {STORAGE_MODIFY_PUT, STORAGE_CF_DEFAULT, enc, klen, "2", 1};
    ctx.region_version = now.version;
    ctx.keys = NULL;
    ctx.n_keys = 0;
    memset(&err, 0, sizeof err);
    rc = storage_write(test_cluster_storage(c, leader), &ctx, &m, 1, &err);
    free(enc);
    assert_int_equal(rc, STORAGE_ERR_REGION);
    assert_int_equal(err.region_kind, STORAGE_REGION_ERR_KEY_NOT_IN_REGION);
    get_eq(c, "zebra", "1");
    test_cluster_free(c);
}

/* TinyKV 3B OneSplit: 5 stores, one partitioned away while the region splits; the others
 * serve both halves; after the heal the isolated store catches up with both regions. */
static void test_one_split_with_a_partitioned_store(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(5, 5);
    put_keys(c, "k", 10);
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    int isolated = leader == 5 ? 4 : 5;
    int rest[4], nr = 0;
    for (int s = 1; s <= 5; s++)
        if (s != isolated)
            rest[nr++] = s;
    test_cluster_partition(c, rest, 4, &isolated, 1);
    assert_int_equal(test_cluster_split(c, "k05", 2, OP_TIMEOUT), 0);
    put_ok(c, "k02", "after");
    put_ok(c, "k07", "after");
    /* The isolated store still has the unsplit region. */
    assert_true(wait_range(c, isolated, 1, "", NULL, 100));
    test_cluster_heal(c);
    assert_true(wait_range(c, isolated, 1, "", "k05", OP_TIMEOUT));
    assert_true(wait_range(c, isolated, 2, "k05", NULL, OP_TIMEOUT));
    uint64_t deadline = test_now_ms() + OP_TIMEOUT;
    char *v = NULL;
    while (test_now_ms() < deadline) {
        free(v);
        v = test_cluster_local_get(c, isolated, "k07");
        if (v && strcmp(v, "after") == 0)
            break;
        usleep(10000);
    }
    assert_non_null(v);
    assert_string_equal(v, "after");
    free(v);
    get_eq(c, "k02", "after");
    get_eq(c, "k09", "v-k09");
    test_cluster_free(c);
}

/* Every store restarts right after a split: both regions come back with their ranges and data. */
static void test_restart_every_store_after_split(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3);
    put_keys(c, "a", 5);
    put_keys(c, "q", 5);
    assert_int_equal(test_cluster_split(c, "m", 2, OP_TIMEOUT), 0);
    assert_int_equal(test_cluster_split(c, "t", 3, OP_TIMEOUT), 0);
    for (int s = 1; s <= 3; s++)
        test_cluster_stop_store(c, s);
    for (int s = 1; s <= 3; s++)
        test_cluster_start_store(c, s);
    for (int s = 1; s <= 3; s++) {
        assert_true(wait_range(c, s, 1, "", "m", OP_TIMEOUT));
        assert_true(wait_range(c, s, 2, "m", "t", OP_TIMEOUT));
        assert_true(wait_range(c, s, 3, "t", NULL, OP_TIMEOUT));
    }
    check_keys(c, "a", 5);
    check_keys(c, "q", 5);
    put_ok(c, "zz", "1");
    get_eq(c, "zz", "1");
    test_cluster_free(c);
}

/* A slow store: the new region's leader reaches it (votes, appends) before it applies the
 * split; nothing is created early and the store ends with both regions and the data. */
static void test_new_region_message_before_split_reaches_slow_store(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3);
    put_keys(c, "k", 6);
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    int slow = leader == 3 ? 2 : 3;
    /* The slow store misses the split entry but not, after the heal, the new region's traffic. */
    int rest[2], nr = 0;
    for (int s = 1; s <= 3; s++)
        if (s != slow)
            rest[nr++] = s;
    test_cluster_partition(c, rest, 2, &slow, 1);
    assert_int_equal(test_cluster_split(c, "k03", 2, OP_TIMEOUT), 0);
    put_ok(c, "k04", "new");
    test_cluster_heal(c);
    assert_true(wait_range(c, slow, 2, "k03", NULL, OP_TIMEOUT));
    assert_true(wait_range(c, slow, 1, "", "k03", OP_TIMEOUT));
    uint64_t deadline = test_now_ms() + OP_TIMEOUT;
    char *v = NULL;
    while (test_now_ms() < deadline) {
        free(v);
        v = test_cluster_local_get(c, slow, "k04");
        if (v && strcmp(v, "new") == 0)
            break;
        usleep(10000);
    }
    assert_non_null(v);
    assert_string_equal(v, "new");
    free(v);
    test_cluster_free(c);
}

/* A store cut off while the region splits and both halves compact their logs: it can only catch
 * up by snapshots, whose ranges overlap the unsplit region it still has until the left half's
 * snapshot lands. Nothing is lost and it ends with both regions. */
static void test_split_racing_snapshots_loses_nothing(void **state)
{
    (void)state;
    struct test_cluster_options o = {
        .n_stores = 3, .n_region_peers = 3, .raft_log_gc_count_limit = 12, .seed = 11};
    struct test_cluster *c = test_cluster_new(&o);
    assert_true(test_cluster_leader(c, OP_TIMEOUT) > 0);
    put_keys(c, "a", 10);
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    int behind = leader == 3 ? 2 : 3;
    int rest[2], nr = 0;
    for (int s = 1; s <= 3; s++)
        if (s != behind)
            rest[nr++] = s;
    test_cluster_partition(c, rest, 2, &behind, 1);
    assert_int_equal(test_cluster_split(c, "m", 2, OP_TIMEOUT), 0);
    put_keys(c, "b", 30); /* left half: its log is compacted past the split */
    put_keys(c, "x", 30); /* right half: the new region's log too */
    test_cluster_heal(c);
    assert_true(wait_range(c, behind, 1, "", "m", OP_TIMEOUT));
    assert_true(wait_range(c, behind, 2, "m", NULL, OP_TIMEOUT));
    assert_true(test_cluster_wait_local(c, behind, "x29", "v-x29", OP_TIMEOUT));
    assert_true(test_cluster_wait_local(c, behind, "b29", "v-b29", OP_TIMEOUT));
    assert_true(test_cluster_wait_local(c, behind, "a09", "v-a09", OP_TIMEOUT));
    check_keys(c, "a", 10);
    check_keys(c, "b", 30);
    check_keys(c, "x", 30);
    test_cluster_free(c);
}

/* A store's peer is removed from the left half right after a split: its data of the left range
 * is cleared, the right half's data on that store stays, and re-adding it restores the left. */
static void test_peer_removal_after_split_clears_exactly_its_range(void **state)
{
    (void)state;
    struct test_cluster *c = cluster(3, 3);
    put_keys(c, "a", 5);
    put_keys(c, "x", 5);
    assert_int_equal(test_cluster_split(c, "m", 2, OP_TIMEOUT), 0);
    int leader = test_cluster_region_leader(c, 1, OP_TIMEOUT);
    int victim = leader == 3 ? 2 : 3;
    assert_true(test_cluster_wait_local(c, victim, "a04", "v-a04", OP_TIMEOUT));
    assert_int_equal(test_cluster_region_remove_peer(c, 1, victim, OP_TIMEOUT), 0);
    assert_true(test_cluster_wait_local(c, victim, "a04", NULL, OP_TIMEOUT));
    assert_int_equal(test_cluster_region_of_key(c, "x00"), 2);
    char *v = test_cluster_local_get(c, victim, "x04");
    assert_non_null(v);
    assert_string_equal(v, "v-x04");
    free(v);
    put_keys(c, "y", 3);
    assert_true(test_cluster_wait_local(c, victim, "y02", "v-y02", OP_TIMEOUT));
    assert_int_equal(test_cluster_region_add_peer(c, 1, victim, 77, OP_TIMEOUT), 0);
    assert_true(test_cluster_wait_local(c, victim, "a04", "v-a04", OP_TIMEOUT));
    check_keys(c, "a", 5);
    check_keys(c, "x", 5);
    test_cluster_free(c);
}

/* Whether the scheduler's region of `key` starts at `start` and has a leader, waiting. */
static int scheduler_knows(struct test_cluster *c, const char *key, const char *start,
                           int timeout_ms)
{
    uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;
    do {
        struct pd_region r;
        pd_region_init(&r);
        int ok = pd_cluster_get_region(test_cluster_scheduler(c), key, strlen(key), &r) == PD_OK &&
                 r.start_key_len == strlen(start) &&
                 memcmp(r.start_key, start, r.start_key_len) == 0 && r.leader.id != 0 &&
                 r.peer_count == 3;
        pd_region_clear(&r);
        if (ok)
            return 1;
        usleep(20000);
    } while (test_now_ms() < deadline);
    return 0;
}

/* With a real scheduler in process: splits asked of the scheduler reach the leaders through
 * heartbeat answers, take ids from AskSplit, and both halves report back at once. */
static void test_scheduler_splits_through_heartbeats(void **state)
{
    (void)state;
    struct test_cluster_options o = {
        .n_stores = 3, .n_region_peers = 3, .seed = 5, .with_scheduler = 1};
    struct test_cluster *c = test_cluster_new(&o);
    assert_non_null(c);
    assert_true(test_cluster_leader(c, OP_TIMEOUT) > 0);
    put_keys(c, "k", 20);
    assert_int_equal(test_cluster_scheduler_split(c, "k10", OP_TIMEOUT), 0);
    assert_int_equal(test_cluster_scheduler_split(c, "k15", OP_TIMEOUT), 0);
    uint64_t mid = test_cluster_region_of_key(c, "k12");
    uint64_t right = test_cluster_region_of_key(c, "k17");
    assert_true(mid >= TEST_CLUSTER_SCHEDULER_FIRST_ID && right >= TEST_CLUSTER_SCHEDULER_FIRST_ID);
    assert_true(mid != right);
    for (int s = 1; s <= 3; s++) {
        assert_true(wait_range(c, s, 1, "", "k10", OP_TIMEOUT));
        assert_true(wait_range(c, s, mid, "k10", "k15", OP_TIMEOUT));
        assert_true(wait_range(c, s, right, "k15", NULL, OP_TIMEOUT));
    }
    assert_true(scheduler_knows(c, "k05", "", OP_TIMEOUT));
    assert_true(scheduler_knows(c, "k12", "k10", OP_TIMEOUT));
    assert_true(scheduler_knows(c, "k17", "k15", OP_TIMEOUT));
    check_keys(c, "k", 20);
    test_cluster_free(c);
}

static struct test_cluster *auto_split_cluster(uint64_t seed)
{
    struct test_cluster_options o = {.n_stores = 3,
                                     .n_region_peers = 3,
                                     .seed = seed,
                                     .with_scheduler = 1,
                                     .region_split_size = 16 << 10,
                                     .region_max_size = 24 << 10,
                                     .split_check_ticks = 5};
    struct test_cluster *c = test_cluster_new(&o);
    assert_non_null(c);
    assert_true(test_cluster_leader(c, OP_TIMEOUT) > 0);
    return c;
}

/* A region written past its maximum size splits by itself, again and again, at user keys
 * that were written (never inside one), and every key reads back. */
static void test_region_splits_by_itself_when_it_grows(void **state)
{
    (void)state;
    struct test_cluster *c = auto_split_cluster(21);
    char value[513];
    memset(value, 'v', 512);
    value[512] = 0;
    for (int i = 0; i < 200; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%03d", i);
        put_ok(c, k, value);
    }
    /* About 100 KiB at 16 KiB per region. */
    uint64_t deadline = test_now_ms() + 30000;
    while (test_cluster_region_count(c) < 4 && test_now_ms() < deadline)
        usleep(20000);
    size_t n = test_cluster_region_count(c);
    printf("%zu regions\n", n);
    assert_true(n >= 4);
    struct pd_region *rs = NULL;
    assert_int_equal(
        pd_cluster_scan_regions(test_cluster_scheduler(c), "", 0, "", 0, 1000, &rs, &n), PD_OK);
    for (size_t i = 1; i < n; i++) {
        /* Every split key is one of the user keys written: k000..k199. */
        assert_int_equal(rs[i].start_key_len, 4);
        assert_int_equal(rs[i].start_key[0], 'k');
        assert_int_equal(rs[i - 1].end_key_len, rs[i].start_key_len);
        assert_memory_equal(rs[i - 1].end_key, rs[i].start_key, rs[i].start_key_len);
    }
    pd_regions_free(rs, n);
    for (int i = 0; i < 200; i += 7) {
        char k[16];
        snprintf(k, sizeof k, "k%03d", i);
        get_eq(c, k, value);
    }
    test_cluster_free(c);
}

/* One user key with many versions, far over the maximum size: its region never splits (all
 * versions stay together), while heartbeats report its real size before any flush. */
static void test_one_huge_key_never_splits(void **state)
{
    (void)state;
    struct test_cluster *c = auto_split_cluster(22);
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    struct raftstore_peer_info info;
    assert_true(test_cluster_region_peer_info(c, leader, 1, &info));
    static char value[1024];
    memset(value, 'x', sizeof value);
    size_t klen = codec_key_len(4) + CODEC_TS_BYTES;
    uint8_t key[64];
    for (uint64_t ts = 1; ts <= 80; ts++) {
        /* Versions of "huge" as MVCC stores them: enc(key) ++ ~ts in CF default. */
        codec_key_encode("huge", 4, key);
        codec_ts_encode(ts, key + codec_key_len(4));
        struct storage_modify m = {STORAGE_MODIFY_PUT, STORAGE_CF_DEFAULT, key, klen, value,
                                   sizeof value};
        struct storage_ctx ctx = {
            .region_id = 1, .region_conf_ver = info.conf_ver, .region_version = info.version};
        struct storage_error err;
        assert_int_equal(storage_write(test_cluster_storage(c, leader), &ctx, &m, 1, &err), 0);
    }
    /* The scheduler hears the region's real size: 80 versions of 1 KiB and their keys, more
     * than its 24 KiB maximum (RocksDB has flushed nothing: the split check's scan counts). */
    uint64_t deadline = test_now_ms() + 20000;
    uint64_t size = 0;
    while (!(size >= 80 * 1024 && size < 90 * 1024) && test_now_ms() < deadline) {
        struct pd_region r;
        pd_region_init(&r);
        if (pd_cluster_get_region_by_id(test_cluster_scheduler(c), 1, &r) == PD_OK)
            size = r.approximate_size_bytes;
        pd_region_clear(&r);
        usleep(20000);
    }
    printf("reported size %llu bytes\n", (unsigned long long)size);
    assert_true(size >= 80 * 1024 && size < 90 * 1024);
    /* Several more split checks come and go: still one region. */
    uint64_t until = test_now_ms() + 1000;
    while (test_now_ms() < until) {
        assert_int_equal(test_cluster_region_count(c), 1);
        usleep(50000);
    }
    test_cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_one_region_serves_both_halves),
        cmocka_unit_test(test_new_regions_lead_where_the_parent_led),
        cmocka_unit_test(test_requests_bounded_by_region),
        cmocka_unit_test(test_one_split_with_a_partitioned_store),
        cmocka_unit_test(test_restart_every_store_after_split),
        cmocka_unit_test(test_new_region_message_before_split_reaches_slow_store),
        cmocka_unit_test(test_split_racing_snapshots_loses_nothing),
        cmocka_unit_test(test_peer_removal_after_split_clears_exactly_its_range),
        cmocka_unit_test(test_scheduler_splits_through_heartbeats),
        cmocka_unit_test(test_region_splits_by_itself_when_it_grows),
        cmocka_unit_test(test_one_huge_key_never_splits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
