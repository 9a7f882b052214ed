/* test_hibernate.c — idle regions stop ticking (store/hibernate.c): they fall asleep, a request
 * wakes one without a leader change, and a dead leader store still gets every region a new
 * leader. */
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
#include "proto/log.h"

#define OP_TIMEOUT 10000
#define N_REGIONS 12 /* region 1 and 11 split off it */

static void key_of(int i, char *buf, size_t len)
{
    snprintf(buf, len, "k%02d", i); /* region i holds k<i> (region 0 is region 1, below "k01") */
}

/* Three stores, region 1 split at k01..k11 (new regions 2..12), one key written to each. */
static struct test_cluster *many_regions(void)
{
    struct test_cluster_options o = {.n_stores = 3, .n_region_peers = 3, .seed = 11};
    struct test_cluster *c = test_cluster_new(&o);
    assert_non_null(c);
    assert_true(test_cluster_leader(c, OP_TIMEOUT) > 0);
    char key[16];
    for (int i = 1; i < N_REGIONS; i++) {
        key_of(i, key, sizeof key);
        assert_int_equal(test_cluster_split(c, key, (uint64_t)i + 1, OP_TIMEOUT), 0);
    }
    for (int i = 0; i < N_REGIONS; i++) {
        key_of(i, key, sizeof key);
        assert_int_equal(test_cluster_put(c, key, "v0", OP_TIMEOUT), 0);
    }
    return c;
}

/* Whether every peer of every region on the running stores in `stores` sleeps. */
static int all_asleep(struct test_cluster *c, const int *stores, size_t n_stores)
{
    for (size_t s = 0; s < n_stores; s++)
        for (uint64_t r = 1; r <= N_REGIONS; r++) {
            struct raftstore_peer_info info;
            if (!test_cluster_region_peer_info(c, stores[s], r, &info) || !info.hibernated)
                return 0;
        }
    return 1;
}

static int wait_all_asleep(struct test_cluster *c, const int *stores, size_t n_stores,
                           int timeout_ms)
{
    uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;
    while (!all_asleep(c, stores, n_stores)) {
        if (test_now_ms() > deadline)
            return 0;
        usleep(10000);
    }
    return 1;
}

/* Every region's term on every store, as a fingerprint of leader changes. */
static void terms(struct test_cluster *c, uint64_t out[4][N_REGIONS + 1])
{
    for (int s = 1; s <= 3; s++)
        for (uint64_t r = 1; r <= N_REGIONS; r++) {
            struct raftstore_peer_info info;
            out[s][r] = test_cluster_region_peer_info(c, s, r, &info) ? info.term : 0;
        }
}

/* Idle regions fall asleep on every store; a write wakes its region, commits without any
 * region changing term, and the region falls asleep again. */
static void test_idle_regions_sleep_and_a_write_wakes_one_without_leader_change(void **state)
{
    (void)state;
    struct test_cluster *c = many_regions();
    const int stores[] = {1, 2, 3};
    assert_true(wait_all_asleep(c, stores, 3, OP_TIMEOUT));
    uint64_t before[4][N_REGIONS + 1], after[4][N_REGIONS + 1];
    terms(c, before);

    /* Asleep for a while: many election timeouts (200 ms here) pass without a campaign. */
    usleep(1500 * 1000);
    assert_true(all_asleep(c, stores, 3));
    char key[16];
    key_of(5, key, sizeof key);
    assert_int_equal(test_cluster_put(c, key, "v1", OP_TIMEOUT), 0);
    char *v = NULL;
    assert_int_equal(test_cluster_get(c, key, &v, OP_TIMEOUT), 0);
    assert_string_equal(v, "v1");
    free(v);
    assert_true(wait_all_asleep(c, stores, 3, OP_TIMEOUT));
    terms(c, after);
    for (int s = 1; s <= 3; s++)
        for (int r = 1; r <= N_REGIONS; r++)
            assert_int_equal(after[s][r], before[s][r]);
    /* Every follower's copy has the write. */
    for (int s = 1; s <= 3; s++)
        assert_true(test_cluster_wait_local(c, s, key, "v1", OP_TIMEOUT));
    test_cluster_free(c);
}

/* All regions asleep, led by one store that then stops: every region elects a leader on the
 * other two within a bounded wait and serves a write and a read there. */
static void test_dead_leader_store_every_hibernated_region_elects_a_new_leader(void **state)
{
    (void)state;
    struct test_cluster *c = many_regions();
    const int stores[] = {1, 2, 3};
    assert_true(wait_all_asleep(c, stores, 3, OP_TIMEOUT));
    /* The splits leave every region led where region 1 was led. */
    int dead = test_cluster_region_leader(c, 1, OP_TIMEOUT);
    assert_true(dead > 0);
    size_t led = 0;
    for (uint64_t r = 1; r <= N_REGIONS; r++)
        led += test_cluster_region_leader(c, r, OP_TIMEOUT) == dead;
    printf("store %d leads %zu of %d asleep regions; stopping it\n", dead, led, N_REGIONS);
    test_cluster_stop_store(c, dead);
    uint64_t stopped = test_now_ms();

    int alive[2], n = 0;
    for (int s = 1; s <= 3; s++)
        if (s != dead)
            alive[n++] = s;
    uint64_t deadline = stopped + 15000;
    for (uint64_t r = 1; r <= N_REGIONS; r++) {
        int found = 0;
        while (!found && test_now_ms() < deadline) {
            for (int i = 0; i < 2; i++) {
                struct raftstore_peer_info info;
                if (test_cluster_region_peer_info(c, alive[i], r, &info) && info.is_leader)
                    found = 1;
            }
            if (!found)
                usleep(10000);
        }
        assert_true(found);
    }
    printf("every region has a leader on the live stores %llu ms after the stop\n",
           (unsigned long long)(test_now_ms() - stopped));
    char key[16];
    for (int i = 0; i < N_REGIONS; i++) {
        key_of(i, key, sizeof key);
        assert_int_equal(test_cluster_put(c, key, "v2", OP_TIMEOUT), 0);
        char *v = NULL;
        assert_int_equal(test_cluster_get(c, key, &v, OP_TIMEOUT), 0);
        assert_string_equal(v, "v2");
        free(v);
    }
    /* The survivors keep ticking (a member is silent) rather than sleeping with a dead one;
     * back, the store catches up and the regions sleep again on all three. */
    test_cluster_start_store(c, dead);
    for (int s = 1; s <= 3; s++) {
        key_of(N_REGIONS - 1, key, sizeof key);
        assert_true(test_cluster_wait_local(c, s, key, "v2", OP_TIMEOUT));
    }
    assert_true(wait_all_asleep(c, stores, 3, 3 * OP_TIMEOUT));
    test_cluster_free(c);
}

int main(void)
{
    if (getenv("HIB_DEBUG"))
        log_current_level = LOG_DEBUG;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_regions_sleep_and_a_write_wakes_one_without_leader_change),
        cmocka_unit_test(test_dead_leader_store_every_hibernated_region_elects_a_new_leader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
