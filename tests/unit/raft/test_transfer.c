/* test_transfer.c — leadership transfer with MsgTransferLeader / MsgTimeoutNow. */
#include "tests/lib/raft_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void net_up(struct rh_net *net, bool check_quorum, bool pre_vote)
{
    struct rh_config cfg;
    rh_config_default(&cfg);
    cfg.n = 3;
    cfg.check_quorum = check_quorum;
    cfg.pre_vote = pre_vote;
    rh_net_init(net, &cfg);
    rh_campaign(net, 1);
    assert_int_equal(rh_status(net, 1).role, RAFT_ROLE_LEADER);
}

static void assert_clean(struct rh_net *net)
{
    if (net->violation[0] != '\0')
        fail_msg("%s", net->violation);
}

static void transfer(struct rh_net *net, uint64_t at, uint64_t to)
{
    raft_rawnode_transfer_leader(rh_node(net, at)->rn, to);
    rh_net_drain(net);
}

static void check_leader(struct rh_net *net, uint64_t id, uint64_t term)
{
    struct raft_status st = rh_status(net, id);
    assert_int_equal(st.role, RAFT_ROLE_LEADER);
    assert_int_equal(st.hard_state.term, term);
    for (uint64_t o = 1; o <= 3; o++)
        if (o != id && rh_node(net, o)->up)
            assert_int_equal(rh_status(net, o).lead, id);
}

/* Transfer to an up-to-date follower: it times out at once and wins the next term. */
static void test_transfer_to_up_to_date_follower(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, false, false);
    transfer(&net, 1, 2);
    check_leader(&net, 2, 2);
    assert_int_equal(net.sent[1][RAFT_MSG_TIMEOUT_NOW], 1);
    assert_int_equal(rh_propose(&net, 2, "x"), RAFT_OK);
    assert_true(rh_applied_data(&net, 1, "x"));
    /* and back again */
    transfer(&net, 2, 1);
    check_leader(&net, 1, 3);
    assert_clean(&net);
    rh_net_close(&net);
}

/* A transfer requested at a follower is forwarded to the leader. */
static void test_transfer_requested_at_follower(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, false, false);
    transfer(&net, 2, 2);
    check_leader(&net, 2, 2);
    rh_net_close(&net);
}

/* A lagging transferee is first caught up by appends, then told to time out. */
static void test_transfer_to_lagging_follower(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, false, false);
    rh_net_isolate(&net, 3);
    for (int i = 0; i < 5; i++)
        rh_propose(&net, 1, "x");
    rh_net_recover(&net);
    uint64_t before = rh_status(&net, 3).last_index;
    transfer(&net, 1, 3);
    assert_true(before < rh_status(&net, 1).last_index);
    check_leader(&net, 3, 2);
    assert_int_equal(rh_status(&net, 3).last_index, 7); /* no-op, 5 entries, 3's no-op */
    assert_clean(&net);
    rh_net_close(&net);
}

/* While a transfer is in flight the leader refuses proposals; it resumes after the transfer aborts
 * on an election timeout. */
static void test_transfer_refuses_proposals_then_times_out(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, false, false);
    rh_net_isolate(&net, 3);
    rh_propose(&net, 1, "x");
    transfer(&net, 1, 3);
    assert_int_equal(rh_status(&net, 1).lead_transferee, 3);
    assert_int_equal(rh_propose(&net, 1, "refused"), RAFT_ERR_PROPOSAL_DROPPED);
    for (int i = 0; i < 10; i++)
        rh_tick(&net, 1);
    rh_net_drain(&net);
    assert_int_equal(rh_status(&net, 1).lead_transferee, 0);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    assert_int_equal(rh_propose(&net, 1, "accepted"), RAFT_OK);
    assert_true(rh_applied_data(&net, 2, "accepted"));
    rh_net_close(&net);
}

/* Transfers to the leader itself or to a non-member are ignored. */
static void test_transfer_to_self_or_stranger_ignored(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, false, false);
    transfer(&net, 1, 1);
    assert_int_equal(rh_status(&net, 1).lead_transferee, 0);
    transfer(&net, 1, 7);
    assert_int_equal(rh_status(&net, 1).lead_transferee, 0);
    check_leader(&net, 1, 1);
    assert_int_equal(rh_propose(&net, 1, "ok"), RAFT_OK);
    rh_net_close(&net);
}

/* A repeated transfer to the same node is ignored; a transfer to another node replaces the pending
 * one. */
static void test_transfer_repeat_and_replace(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, false, false);
    rh_net_isolate(&net, 3);
    rh_propose(&net, 1, "x");
    transfer(&net, 1, 3);
    uint64_t appends = net.sent[1][RAFT_MSG_APPEND];
    transfer(&net, 1, 3);
    assert_int_equal(net.sent[1][RAFT_MSG_APPEND], appends); /* nothing new sent */
    assert_int_equal(rh_status(&net, 1).lead_transferee, 3);
    transfer(&net, 1, 2);
    rh_net_recover(&net);
    rh_tick_all(&net, 1);
    check_leader(&net, 2, 2);
    rh_net_close(&net);
}

/* With check-quorum leases, a transferee's forced campaign still gets votes from followers in
 * lease. */
static void test_transfer_overrides_lease(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, true, true);
    rh_tick_all(&net, 2); /* everyone has heard from the leader recently */
    transfer(&net, 1, 3);
    check_leader(&net, 3, 2);
    assert_clean(&net);
    rh_net_close(&net);
}

/* Removing the transferee aborts the transfer. */
static void test_transfer_aborted_when_transferee_removed(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, false, false);
    rh_net_isolate(&net, 3);
    rh_propose(&net, 1, "x");
    transfer(&net, 1, 3);
    assert_int_equal(rh_status(&net, 1).lead_transferee, 3);
    struct raft_conf_change cc = {.change_type = RAFT_CONF_REMOVE_NODE, .node_id = 3};
    raft_rawnode_apply_conf_change(rh_node(&net, 1)->rn, &cc, NULL);
    assert_int_equal(rh_status(&net, 1).lead_transferee, 0);
    rh_net_close(&net);
}

/* Asking to transfer back to the current leader cancels a pending transfer. */
static void test_transfer_back_to_self_cancels(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, false, false);
    rh_net_isolate(&net, 3);
    rh_propose(&net, 1, "x");
    transfer(&net, 1, 3);
    assert_int_equal(rh_status(&net, 1).lead_transferee, 3);
    transfer(&net, 1, 1);
    assert_int_equal(rh_status(&net, 1).lead_transferee, 0);
    assert_int_equal(rh_propose(&net, 1, "y"), RAFT_OK);
    check_leader(&net, 1, 1);
    rh_net_close(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transfer_to_up_to_date_follower),
        cmocka_unit_test(test_transfer_requested_at_follower),
        cmocka_unit_test(test_transfer_to_lagging_follower),
        cmocka_unit_test(test_transfer_refuses_proposals_then_times_out),
        cmocka_unit_test(test_transfer_to_self_or_stranger_ignored),
        cmocka_unit_test(test_transfer_repeat_and_replace),
        cmocka_unit_test(test_transfer_overrides_lease),
        cmocka_unit_test(test_transfer_aborted_when_transferee_removed),
        cmocka_unit_test(test_transfer_back_to_self_cancels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
