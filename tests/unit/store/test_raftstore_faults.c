/* test_raftstore_faults.c — concurrent clients against the replicated store under partitions,
 * crashes and a lossy network. */
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

#include "pd/pd.h"
#include "tests/lib/test_cluster.h"
#include "tests/lib/test_util.h"

/*
 * The generic scenario (TinyKV's 2B/2C style): client threads keep writing
 * keys of their own and reading back ones they wrote, while the main thread
 * injects faults for a while. Afterwards the network heals, every store runs,
 * and every acknowledged write must be readable with its value, and applied
 * on every replica. A failure prints the seed; TEST_SEED=S re-runs it.
 *
 * TinyKV 3B's GenericTest adds regions that split by themselves (a real
 * scheduler in process hands out their ids; a tiny split size makes tens of
 * regions) and membership changes of the first region while clients write;
 * "Recover" crashes every store each round, "Snapshot" compacts logs early.
 */

#define N_CLIENTS 4
#define MAX_CLIENTS 8
#define MAX_KEYS 4096

struct scenario {
    int unreliable;
    int crash;     /* a minority crashes each round */
    int crash_all; /* every store crashes at the end of each round */
    int partition;
    int split;      /* regions split by themselves (tiny split size, a scheduler in process) */
    int confchange; /* the first region gains and loses peers each round */
    int n_stores;
    int n_region_peers; /* 0: every store */
    int n_clients;      /* 0: N_CLIENTS */
    uint64_t gc_limit;
};

struct client_state {
    struct test_cluster *c;
    int id;
    volatile int *stop;
    int acked; /* keys 0..acked-1 of this client were acknowledged */
    int bad_reads;
};

static void key_of(int client, int i, char *buf, size_t len)
{
    snprintf(buf, len, "c%d-%05d", client, i);
}

static void *client_loop(void *arg)
{
    struct client_state *cs = arg;
    char key[32];
    int i = 0;
    while (!*cs->stop && i < MAX_KEYS) {
        key_of(cs->id, i, key, sizeof key);
        if (test_cluster_put(cs->c, key, key, 500) == 0) {
            cs->acked = ++i;
            /* Read back an earlier acknowledged key: it must be there. */
            if (i % 5 == 0) {
                key_of(cs->id, i / 2, key, sizeof key);
                char *v = NULL;
                int rc = test_cluster_get(cs->c, key, &v, 500);
                if (rc == 0 && strcmp(v, key) != 0)
                    cs->bad_reads++;
                if (rc == STORAGE_ERR_NOT_FOUND)
                    cs->bad_reads++;
                free(v);
            }
        } else {
            /* Unacknowledged: it may or may not have applied; retry the same key. */
        }
    }
    return NULL;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One membership change of the region holding "": add a peer on a store without one while it
 * has 3, else remove a random peer (the leader too), as TinyKV's confchanger does. */
static void change_first_region(struct test_cluster *c, int n, uint64_t *rng,
                                uint64_t *next_peer_id)
{
    uint64_t region = test_cluster_region_of_key(c, "");
    int members[TEST_CLUSTER_MAX_STORES], others[TEST_CLUSTER_MAX_STORES], nm = 0, no = 0;
    for (int s = 1; s <= n; s++) {
        struct raftstore_peer_info info;
        if (test_cluster_region_peer_info(c, s, region, &info))
            members[nm++] = s;
        else
            others[no++] = s;
    }
    if (nm <= 3 && no > 0)
        test_cluster_region_add_peer(c, region, others[rng_next(rng) % (uint64_t)no],
                                     (*next_peer_id)++, 3000);
    else if (nm > 3)
        test_cluster_region_remove_peer(c, region, members[rng_next(rng) % (uint64_t)nm], 3000);
}

static void run_scenario_seed(const struct scenario *sc, int rounds, uint64_t fixed_seed)
{
    uint64_t seed = fixed_seed            ? fixed_seed
                    : getenv("TEST_SEED") ? strtoull(getenv("TEST_SEED"), NULL, 10)
                                          : (uint64_t)test_now_ms();
    printf("seed %llu\n", (unsigned long long)seed);
    fflush(stdout);
    uint64_t rng = seed | 1;
    struct test_cluster_options o = {
        .n_stores = sc->n_stores,
        .n_region_peers = sc->n_region_peers ? sc->n_region_peers : sc->n_stores,
        .raft_log_gc_count_limit = sc->gc_limit,
        .seed = seed | 1,
        .with_scheduler = sc->split,
        .region_split_size = sc->split ? 2048 : 0,
        .region_max_size = sc->split ? 3072 : 0,
        .split_check_ticks = sc->split ? 5 : 0,
    };
    struct test_cluster *c = test_cluster_new(&o);
    assert_true(test_cluster_leader(c, 10000) > 0);
    volatile int stop = 0;
    int n_clients = sc->n_clients ? sc->n_clients : N_CLIENTS;
    struct client_state cs[MAX_CLIENTS];
    pthread_t th[MAX_CLIENTS];
    for (int i = 0; i < n_clients; i++) {
        cs[i] = (struct client_state){c, i, &stop, 0, 0};
        pthread_create(&th[i], NULL, client_loop, &cs[i]);
    }
    int n = sc->n_stores;
    uint64_t next_peer_id = 100; /* below the scheduler's ids */
    for (int r = 0; r < rounds; r++) {
        if (sc->confchange)
            change_first_region(c, n, &rng, &next_peer_id);
        if (sc->unreliable)
            test_cluster_set_unreliable(c, 100, 10);
        int crashed[TEST_CLUSTER_MAX_STORES + 1] = {0};
        if (sc->partition) {
            int a[TEST_CLUSTER_MAX_STORES], b[TEST_CLUSTER_MAX_STORES], na = 0, nb = 0;
            for (int s = 1; s <= n; s++) {
                if (rng_next(&rng) % 2)
                    a[na++] = s;
                else
                    b[nb++] = s;
            }
            test_cluster_partition(c, a, (size_t)na, b, (size_t)nb);
        }
        if (sc->crash) {
            /* Crash a minority. */
            for (int k = 0; k < (n - 1) / 2; k++) {
                int s = (int)(rng_next(&rng) % (uint64_t)n) + 1;
                if (!crashed[s]) {
                    crashed[s] = 1;
                    test_cluster_stop_store(c, s);
                }
            }
        }
        usleep(700000);
        test_cluster_heal(c);
        if (sc->crash_all)
            for (int s = 1; s <= n; s++)
                crashed[s] = 1, test_cluster_stop_store(c, s);
        for (int s = 1; s <= n; s++)
            if (crashed[s])
                test_cluster_start_store(c, s);
        usleep(300000);
    }
    stop = 1;
    for (int i = 0; i < n_clients; i++)
        pthread_join(th[i], NULL);
    test_cluster_heal(c);
    int total = 0;
    char key[32];
    for (int i = 0; i < n_clients; i++) {
        assert_int_equal(cs[i].bad_reads, 0);
        total += cs[i].acked;
        for (int k = 0; k < cs[i].acked; k++) {
            key_of(i, k, key, sizeof key);
            char *v = NULL;
            int rc = test_cluster_get(c, key, &v, 10000);
            if (rc != 0 || strcmp(v, key) != 0)
                fail_msg("seed %llu: acknowledged %s lost (rc %d)", (unsigned long long)seed, key,
                         rc);
            free(v);
        }
    }
    printf("%d acknowledged writes checked\n", total);
    assert_true(total > 0);
    if (sc->split)
        printf("%zu regions\n", test_cluster_region_count(c));
    /* Every replica applies everything in the end. */
    for (int i = 0; i < n_clients; i++) {
        if (!cs[i].acked)
            continue;
        key_of(i, cs[i].acked - 1, key, sizeof key);
        uint64_t region = test_cluster_region_of_key(c, key);
        for (int s = 1; s <= n; s++) {
            struct raftstore_peer_info info;
            if (!test_cluster_region_peer_info(c, s, region, &info))
                continue; /* not a replica of that region (membership changed) */
            uint64_t deadline = test_now_ms() + 15000;
            char *v = NULL;
            while (!(v = test_cluster_local_get(c, s, key)) && test_now_ms() < deadline)
                usleep(20000);
            if (!v)
                fail_msg("seed %llu: store %d never applied %s", (unsigned long long)seed, s, key);
            free(v);
        }
    }
    test_cluster_free(c);
}

static void run_scenario(const struct scenario *sc, int rounds)
{
    run_scenario_seed(sc, rounds, 0);
}

/* Concurrent clients on a healthy cluster: every acknowledged write is readable. */
static void test_concurrent_clients(void **state)
{
    (void)state;
    struct scenario sc = {.n_stores = 3};
    run_scenario(&sc, 2);
}

/* Concurrent clients over a network that drops 10% and delays up to 10 ms. */
static void test_concurrent_unreliable(void **state)
{
    (void)state;
    struct scenario sc = {.n_stores = 3, .unreliable = 1};
    run_scenario(&sc, 3);
}

/* Random partitions of five stores, over and over, with log compaction on. */
static void test_many_partitions(void **state)
{
    (void)state;
    struct scenario sc = {.n_stores = 5, .partition = 1, .gc_limit = 50};
    run_scenario(&sc, 4);
}

/* Minorities crash and restart while clients write; snapshots and compaction in play. */
static void test_crashes_and_restarts(void **state)
{
    (void)state;
    struct scenario sc = {.n_stores = 5, .crash = 1, .gc_limit = 50};
    run_scenario(&sc, 4);
}

/* Regression seed 3450741: a snapshot lost to a partition left a follower behind for good. */
static void test_many_partitions_seed_3450741(void **state)
{
    (void)state;
    struct scenario sc = {.n_stores = 5, .partition = 1, .gc_limit = 50};
    run_scenario_seed(&sc, 4, 3450741);
}

/* Everything at once: lossy links, partitions and crashes. */
static void test_unreliable_partitions_and_crashes(void **state)
{
    (void)state;
    struct scenario sc = {
        .n_stores = 5, .unreliable = 1, .partition = 1, .crash = 1, .gc_limit = 50};
    run_scenario(&sc, 4);
}

/* TinyKV 3B SplitRecover: regions split while clients write; every store crashes each round. */
static void test_split_recover(void **state)
{
    (void)state;
    struct scenario sc = {.n_stores = 3, .split = 1, .crash_all = 1, .n_clients = 1};
    run_scenario(&sc, 3);
}

/* TinyKV 3B SplitRecoverManyClients. */
static void test_split_recover_many_clients(void **state)
{
    (void)state;
    struct scenario sc = {.n_stores = 3, .split = 1, .crash_all = 1, .n_clients = 5};
    run_scenario(&sc, 3);
}

/* TinyKV 3B SplitUnreliable: splits over a lossy, delaying network. */
static void test_split_unreliable(void **state)
{
    (void)state;
    struct scenario sc = {.n_stores = 3, .split = 1, .unreliable = 1, .n_clients = 5};
    run_scenario(&sc, 3);
}

/* TinyKV 3B SplitUnreliableRecover. */
static void test_split_unreliable_recover(void **state)
{
    (void)state;
    struct scenario sc = {
        .n_stores = 3, .split = 1, .unreliable = 1, .crash_all = 1, .n_clients = 5};
    run_scenario(&sc, 3);
}

/* TinyKV 3B SplitConfChangeSnapshotUnreliableRecover: splits, membership changes, early log
 * compaction, a lossy network and whole-cluster crashes together. */
static void test_split_confchange_snapshot_unreliable_recover(void **state)
{
    (void)state;
    struct scenario sc = {.n_stores = 5,
                          .n_region_peers = 3,
                          .split = 1,
                          .confchange = 1,
                          .unreliable = 1,
                          .crash_all = 1,
                          .gc_limit = 20,
                          .n_clients = 5};
    run_scenario(&sc, 3);
}

/* TinyKV 3B SplitConfChangeSnapshotUnreliableRecoverConcurrentPartition. */
static void test_split_confchange_snapshot_unreliable_recover_partition(void **state)
{
    (void)state;
    struct scenario sc = {.n_stores = 5,
                          .n_region_peers = 3,
                          .split = 1,
                          .confchange = 1,
                          .unreliable = 1,
                          .crash_all = 1,
                          .partition = 1,
                          .gc_limit = 20,
                          .n_clients = 5};
    run_scenario(&sc, 3);
}

/* TinyKV 3B ConfChangeRecover: membership changes, every store crashing each round. */
static void test_confchange_recover(void **state)
{
    (void)state;
    struct scenario sc = {
        .n_stores = 5, .n_region_peers = 3, .confchange = 1, .crash_all = 1, .n_clients = 1};
    run_scenario(&sc, 3);
}

/* TinyKV 3B ConfChangeRecoverManyClients. */
static void test_confchange_recover_many_clients(void **state)
{
    (void)state;
    struct scenario sc = {
        .n_stores = 5, .n_region_peers = 3, .confchange = 1, .crash_all = 1, .n_clients = 5};
    run_scenario(&sc, 3);
}

/* TinyKV 3B ConfChangeUnreliable. */
static void test_confchange_unreliable(void **state)
{
    (void)state;
    struct scenario sc = {
        .n_stores = 5, .n_region_peers = 3, .confchange = 1, .unreliable = 1, .n_clients = 5};
    run_scenario(&sc, 3);
}

/* TinyKV 3B ConfChangeUnreliableRecover. */
static void test_confchange_unreliable_recover(void **state)
{
    (void)state;
    struct scenario sc = {.n_stores = 5,
                          .n_region_peers = 3,
                          .confchange = 1,
                          .unreliable = 1,
                          .crash_all = 1,
                          .n_clients = 5};
    run_scenario(&sc, 3);
}

/* TinyKV 3B ConfChangeSnapshotUnreliableRecover. */
static void test_confchange_snapshot_unreliable_recover(void **state)
{
    (void)state;
    struct scenario sc = {.n_stores = 5,
                          .n_region_peers = 3,
                          .confchange = 1,
                          .unreliable = 1,
                          .crash_all = 1,
                          .gc_limit = 20,
                          .n_clients = 5};
    run_scenario(&sc, 3);
}

/* TinyKV 3B ConfChangeSnapshotUnreliableRecoverConcurrentPartition. */
static void test_confchange_snapshot_unreliable_recover_partition(void **state)
{
    (void)state;
    struct scenario sc = {.n_stores = 5,
                          .n_region_peers = 3,
                          .confchange = 1,
                          .unreliable = 1,
                          .crash_all = 1,
                          .partition = 1,
                          .gc_limit = 20,
                          .n_clients = 5};
    run_scenario(&sc, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_clients),
        cmocka_unit_test(test_concurrent_unreliable),
        cmocka_unit_test(test_many_partitions),
        cmocka_unit_test(test_many_partitions_seed_3450741),
        cmocka_unit_test(test_crashes_and_restarts),
        cmocka_unit_test(test_unreliable_partitions_and_crashes),
        cmocka_unit_test(test_split_recover),
        cmocka_unit_test(test_split_recover_many_clients),
        cmocka_unit_test(test_split_unreliable),
        cmocka_unit_test(test_split_unreliable_recover),
        cmocka_unit_test(test_split_confchange_snapshot_unreliable_recover),
        cmocka_unit_test(test_split_confchange_snapshot_unreliable_recover_partition),
        cmocka_unit_test(test_confchange_recover),
        cmocka_unit_test(test_confchange_recover_many_clients),
        cmocka_unit_test(test_confchange_unreliable),
        cmocka_unit_test(test_confchange_unreliable_recover),
        cmocka_unit_test(test_confchange_snapshot_unreliable_recover),
        cmocka_unit_test(test_confchange_snapshot_unreliable_recover_partition),
    };
    return cmocka_run_group_tests_name("raftstore_faults", tests, NULL, NULL);
}
