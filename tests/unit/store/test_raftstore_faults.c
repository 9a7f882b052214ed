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

#include "tests/lib/test_cluster.h"
#include "tests/lib/test_util.h"

/*
 * The generic scenario (TinyKV's 2B/2C style): client threads keep writing
 * keys of their own and reading back ones they wrote, while the main thread
 * injects faults for a while. Afterwards the network heals, every store runs,
 * and every acknowledged write must be readable with its value, and applied
 * on every replica. A failure prints the seed; TEST_SEED=S re-runs it.
 */

#define N_CLIENTS 4
#define MAX_KEYS 4096

struct scenario {
    int unreliable;
    int crash;
    int partition;
    int n_stores;
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

static void run_scenario_seed(const struct scenario *sc, int rounds, uint64_t fixed_seed)
{
    uint64_t seed = fixed_seed            ? fixed_seed
                    : getenv("TEST_SEED") ? strtoull(getenv("TEST_SEED"), NULL, 10)
                                          : (uint64_t)test_now_ms();
    printf("seed %llu\n", (unsigned long long)seed);
    fflush(stdout);
    uint64_t rng = seed | 1;
    struct test_cluster_options o = {.n_stores = sc->n_stores,
                                     .n_region_peers = sc->n_stores,
                                     .raft_log_gc_count_limit = sc->gc_limit,
                                     .seed = seed | 1};
    struct test_cluster *c = test_cluster_new(&o);
    assert_true(test_cluster_leader(c, 10000) > 0);
    volatile int stop = 0;
    struct client_state cs[N_CLIENTS];
    pthread_t th[N_CLIENTS];
    for (int i = 0; i < N_CLIENTS; i++) {
        cs[i] = (struct client_state){c, i, &stop, 0, 0};
        pthread_create(&th[i], NULL, client_loop, &cs[i]);
    }
    int n = sc->n_stores;
    for (int r = 0; r < rounds; r++) {
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
        for (int s = 1; s <= n; s++)
            if (crashed[s])
                test_cluster_start_store(c, s);
        usleep(300000);
    }
    stop = 1;
    for (int i = 0; i < N_CLIENTS; i++)
        pthread_join(th[i], NULL);
    test_cluster_heal(c);
    int total = 0;
    char key[32];
    for (int i = 0; i < N_CLIENTS; i++) {
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
    /* Every replica applies everything in the end. */
    for (int i = 0; i < N_CLIENTS; i++) {
        if (!cs[i].acked)
            continue;
        key_of(i, cs[i].acked - 1, key, sizeof key);
        for (int s = 1; s <= n; s++) {
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_clients),
        cmocka_unit_test(test_concurrent_unreliable),
        cmocka_unit_test(test_many_partitions),
        cmocka_unit_test(test_many_partitions_seed_3450741),
        cmocka_unit_test(test_crashes_and_restarts),
        cmocka_unit_test(test_unreliable_partitions_and_crashes),
    };
    return cmocka_run_group_tests_name("raftstore_faults", tests, NULL, NULL);
}
