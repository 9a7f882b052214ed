/* test_durability.c — machine crashes (every write after the last sync lost) never lose an
 * acknowledged write: log GC never outruns the durable applied index; splits survive. */
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

#define OP_TIMEOUT 10000

static struct test_cluster *crashy_cluster(void)
{
    struct test_cluster_options o = {.n_stores = 3,
                                     .n_region_peers = 3,
                                     .raft_log_gc_count_limit = 16,
                                     .seed = 3,
                                     .crash_model = 1};
    struct test_cluster *c = test_cluster_new(&o);
    assert_non_null(c);
    assert_true(test_cluster_leader(c, OP_TIMEOUT) > 0);
    return c;
}

static void put_range(struct test_cluster *c, int from, int to)
{
    for (int i = from; i < to; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "key%04d", i);
        snprintf(v, sizeof v, "val%04d", i);
        assert_int_equal(test_cluster_put(c, k, v, OP_TIMEOUT), 0);
    }
}

static void check_range(struct test_cluster *c, int from, int to)
{
    for (int i = from; i < to; i++) {
        char k[32], want[32], *v = NULL;
        snprintf(k, sizeof k, "key%04d", i);
        snprintf(want, sizeof want, "val%04d", i);
        int rc = test_cluster_get(c, k, &v, OP_TIMEOUT);
        if (rc != 0 || strcmp(v, want) != 0)
            fail_msg("acknowledged %s lost after a machine crash (rc %d)", k, rc);
        free(v);
    }
}

/* Every store loses power together after many writes and log compactions: all acknowledged
 * writes read back (apply is not synced, so the log it would replay must still be there). */
static void test_power_loss_of_every_store_after_log_gc_loses_nothing(void **state)
{
    (void)state;
    struct test_cluster *c = crashy_cluster();
    put_range(c, 0, 200);
    /* Log GC ran: the leader keeps far fewer entries than it applied. */
    int leader = test_cluster_leader(c, OP_TIMEOUT);
    uint64_t deadline = test_now_ms() + OP_TIMEOUT;
    while (test_cluster_log_entries(c, leader) > 100 && test_now_ms() < deadline)
        usleep(10000);
    assert_true(test_cluster_log_entries(c, leader) <= 100);
    for (int s = 1; s <= 3; s++)
        test_cluster_stop_store(c, s);
    for (int s = 1; s <= 3; s++)
        test_cluster_start_store(c, s);
    check_range(c, 0, 200);
    put_range(c, 200, 210);
    check_range(c, 200, 210);
    test_cluster_free(c);
}

/* Power loss right after splits: both regions come back whole, with their data. */
static void test_power_loss_right_after_split_keeps_both_regions(void **state)
{
    (void)state;
    struct test_cluster *c = crashy_cluster();
    put_range(c, 0, 40);
    assert_int_equal(test_cluster_split(c, "key0020", 2, OP_TIMEOUT), 0);
    for (int s = 1; s <= 3; s++)
        test_cluster_stop_store(c, s);
    for (int s = 1; s <= 3; s++)
        test_cluster_start_store(c, s);
    assert_true(test_cluster_region_leader(c, 2, OP_TIMEOUT) > 0);
    assert_int_equal(test_cluster_region_of_key(c, "key0030"), 2);
    assert_int_equal(test_cluster_region_of_key(c, "key0010"), 1);
    check_range(c, 0, 40);
    test_cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_power_loss_of_every_store_after_log_gc_loses_nothing),
        cmocka_unit_test(test_power_loss_right_after_split_keeps_both_regions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
