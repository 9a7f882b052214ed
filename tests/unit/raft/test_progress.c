/* test_progress.c — follower progress states, back-off on rejection, and the in-flight window. */
#include "raft/raft_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* A rejection moves next back to min(rejected, hint+1) in probe; in replicate to match+1; stale
 * rejections are ignored. */
static void test_maybe_decr_to(void **state)
{
    (void)state;
    struct raft_progress pr;
    assert_int_equal(raft_progress_init(&pr, 2, 5, 10, 4), RAFT_OK);
    /* probe: stale unless it answers the probe at next-1 */
    assert_false(raft_progress_maybe_decr_to(&pr, 5, 3));
    assert_true(raft_progress_maybe_decr_to(&pr, 9, 3));
    assert_int_equal(pr.next, 4); /* the follower's last is 3: skip straight there */
    pr.next = 10;
    assert_true(raft_progress_maybe_decr_to(&pr, 9, 20));
    assert_int_equal(pr.next, 9); /* a hint beyond the probe only steps back one */
    pr.next = 1;
    assert_true(raft_progress_maybe_decr_to(&pr, 0, 0));
    assert_int_equal(pr.next, 1); /* never below 1 */
    /* replicate: anything at or below match is stale, otherwise next = match + 1 */
    pr.match = 5;
    raft_progress_become_replicate(&pr);
    pr.next = 12;
    assert_false(raft_progress_maybe_decr_to(&pr, 5, 5));
    assert_true(raft_progress_maybe_decr_to(&pr, 8, 7));
    assert_int_equal(pr.next, 6);
    raft_progress_close(&pr);
}

/* maybe_update raises match and next, unpauses a probe, and reports whether match moved. */
static void test_maybe_update(void **state)
{
    (void)state;
    struct raft_progress pr;
    raft_progress_init(&pr, 2, 3, 5, 4);
    pr.paused = true;
    assert_false(raft_progress_maybe_update(&pr, 2));
    assert_int_equal(pr.match, 3);
    assert_true(raft_progress_maybe_update(&pr, 7));
    assert_int_equal(pr.match, 7);
    assert_int_equal(pr.next, 8);
    assert_false(pr.paused);
    raft_progress_close(&pr);
}

/* Leaving snapshot state for probe resumes after the snapshot, or after match if the snapshot
 * failed. */
static void test_become_probe_after_snapshot(void **state)
{
    (void)state;
    struct raft_progress pr;
    raft_progress_init(&pr, 2, 1, 2, 4);
    raft_progress_become_snapshot(&pr, 10);
    assert_true(raft_progress_is_paused(&pr));
    assert_false(raft_progress_need_snapshot_abort(&pr));
    raft_progress_become_probe(&pr);
    assert_int_equal(pr.next, 11);
    raft_progress_become_snapshot(&pr, 10);
    pr.pending_snapshot = 0; /* reported as failed */
    raft_progress_become_probe(&pr);
    assert_int_equal(pr.next, 2);
    raft_progress_become_snapshot(&pr, 10);
    raft_progress_maybe_update(&pr, 10);
    assert_true(raft_progress_need_snapshot_abort(&pr));
    raft_progress_close(&pr);
}

/* Probe pauses after one send; replicate pauses only when the window is full. */
static void test_is_paused(void **state)
{
    (void)state;
    struct raft_progress pr;
    raft_progress_init(&pr, 2, 0, 1, 2);
    assert_false(raft_progress_is_paused(&pr));
    pr.paused = true;
    assert_true(raft_progress_is_paused(&pr));
    raft_progress_become_replicate(&pr);
    assert_false(raft_progress_is_paused(&pr));
    raft_inflights_add(&pr.ins, 3);
    assert_false(raft_progress_is_paused(&pr));
    raft_inflights_add(&pr.ins, 5);
    assert_true(raft_progress_is_paused(&pr));
    raft_progress_close(&pr);
}

/* The in-flight ring frees up to an acknowledged index, wraps around, and frees one slot on demand.
 */
static void test_inflights(void **state)
{
    (void)state;
    struct raft_progress pr;
    raft_progress_init(&pr, 2, 0, 1, 4);
    struct raft_inflights *in = &pr.ins;
    for (uint64_t i = 1; i <= 4; i++)
        raft_inflights_add(in, i * 10);
    assert_true(raft_inflights_full(in));
    raft_inflights_free_to(in, 25); /* frees 10 and 20 */
    assert_int_equal(in->count, 2);
    raft_inflights_add(in, 50);
    raft_inflights_add(in, 60); /* wraps */
    assert_true(raft_inflights_full(in));
    raft_inflights_free_to(in, 5); /* below the first: nothing */
    assert_int_equal(in->count, 4);
    raft_inflights_free_first_one(in);
    assert_int_equal(in->count, 3);
    assert_int_equal(in->buffer[in->start], 40);
    raft_inflights_free_to(in, 60);
    assert_int_equal(in->count, 0);
    raft_inflights_add(in, 70);
    assert_int_equal(in->count, 1);
    raft_progress_close(&pr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maybe_decr_to),
        cmocka_unit_test(test_maybe_update),
        cmocka_unit_test(test_become_probe_after_snapshot),
        cmocka_unit_test(test_is_paused),
        cmocka_unit_test(test_inflights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
