/* test_persistence.c — term, vote, commit and log survive restarts from stable storage. */
#include "tests/lib/raft_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void net_up(struct rh_net *net, int n)
{
    struct rh_config cfg;
    rh_config_default(&cfg);
    cfg.n = n;
    rh_net_init(net, &cfg);
}

static void assert_clean(struct rh_net *net)
{
    if (net->violation[0] != '\0')
        fail_msg("%s", net->violation);
}

/* A restarted node comes back with the term, vote, commit index and log it persisted. */
static void test_restart_preserves_hard_state_and_log(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_campaign(&net, 2);
    rh_propose(&net, 2, "a");
    rh_propose(&net, 2, "b");
    rh_tick_all(&net, 2);
    for (uint64_t id = 1; id <= 3; id++) {
        struct raft_status before = rh_status(&net, id);
        rh_node_crash(&net, id);
        rh_node_restart(&net, id);
        struct raft_status after = rh_status(&net, id);
        assert_int_equal(after.hard_state.term, before.hard_state.term);
        assert_int_equal(after.hard_state.vote, before.hard_state.vote);
        assert_int_equal(after.hard_state.commit, before.hard_state.commit);
        assert_int_equal(after.last_index, before.last_index);
        assert_int_equal(after.applied, before.applied);
        assert_int_equal(after.role, RAFT_ROLE_FOLLOWER);
    }
    assert_int_equal(rh_status(&net, 1).hard_state.vote, 2);
    assert_int_equal(rh_status(&net, 1).hard_state.commit, 3);
    rh_net_close(&net);
}

/* After the whole cluster crashes and restarts, committed entries stay and new ones commit on top.
 */
static void test_full_cluster_restart(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 5);
    rh_campaign(&net, 1);
    rh_propose(&net, 1, "before");
    for (uint64_t id = 1; id <= 5; id++)
        rh_node_crash(&net, id);
    for (uint64_t id = 1; id <= 5; id++)
        rh_node_restart(&net, id);
    uint64_t lead = 0;
    for (int i = 0; i < 100 && (lead = rh_leader(&net)) == 0; i++)
        rh_tick_all(&net, 1);
    assert_int_not_equal(lead, 0);
    assert_true(rh_status(&net, lead).hard_state.term >= 2);
    assert_int_equal(rh_propose(&net, lead, "after"), RAFT_OK);
    rh_tick_all(&net, 2);
    for (uint64_t id = 1; id <= 5; id++) {
        assert_true(rh_applied_data(&net, id, "before"));
        assert_true(rh_applied_data(&net, id, "after"));
    }
    assert_clean(&net);
    rh_net_close(&net);
}

/* A node restarted with applied == commit is not handed already-applied entries again. */
static void test_restart_does_not_reapply(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_campaign(&net, 1);
    rh_propose(&net, 1, "once");
    rh_tick_all(&net, 2);
    size_t n = rh_node(&net, 2)->n_log;
    rh_node_restart(&net, 2);
    rh_tick_all(&net, 2);
    assert_int_equal(rh_node(&net, 2)->n_log, n);
    assert_clean(&net);
    rh_net_close(&net);
}

/* A node whose state machine is behind its commit index gets the entries after its applied index on
 * restart. */
static void test_restart_reapplies_after_applied_index(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_campaign(&net, 1);
    rh_propose(&net, 1, "x");
    rh_propose(&net, 1, "y");
    rh_tick_all(&net, 2);
    struct rh_node *nd = rh_node(&net, 3);
    assert_int_equal(nd->applied, 3);
    rh_node_crash(&net, 3);
    nd->applied = 1; /* the state machine lost entries 2 and 3 */
    rh_node_restart(&net, 3);
    assert_int_equal(rh_status(&net, 3).applied, 1);
    rh_net_flush(&net);
    assert_int_equal(nd->applied, 3);
    assert_int_equal(nd->n_log, 5); /* 1..3, then 2..3 again */
    assert_memory_equal(nd->log[4].data, "y", 1);
    assert_clean(&net);
    rh_net_close(&net);
}

/* A node restarted in the middle of an election keeps its vote and cannot vote for a second
 * candidate. */
static void test_vote_persisted_across_restart(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_net_cut(&net, 1, 3);
    rh_campaign(&net, 1); /* 2 votes for 1 in term 1 */
    rh_node_restart(&net, 2);
    rh_net_recover(&net);
    rh_net_cut(&net, 1, 2);
    rh_net_cut(&net, 1, 3);
    rh_node_crash(&net, 1);
    /* 3 campaigns in term 1 too (it was cut off), asks 2 */
    struct raft_status s3 = rh_status(&net, 3);
    assert_int_equal(s3.hard_state.term, 0);
    rh_campaign(&net, 3);
    assert_int_not_equal(rh_status(&net, 3).role, RAFT_ROLE_LEADER);
    assert_int_equal(rh_status(&net, 2).hard_state.vote, 1);
    assert_clean(&net);
    rh_net_close(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_preserves_hard_state_and_log),
        cmocka_unit_test(test_full_cluster_restart),
        cmocka_unit_test(test_restart_does_not_reapply),
        cmocka_unit_test(test_restart_reapplies_after_applied_index),
        cmocka_unit_test(test_vote_persisted_across_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
