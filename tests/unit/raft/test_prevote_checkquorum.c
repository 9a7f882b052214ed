/* test_prevote_checkquorum.c — PreVote, CheckQuorum and the follower lease. */
#include "tests/lib/raft_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void net_up(struct rh_net *net, bool pre_vote, bool check_quorum)
{
    struct rh_config cfg;
    rh_config_default(&cfg);
    cfg.n = 3;
    cfg.pre_vote = pre_vote;
    cfg.check_quorum = check_quorum;
    rh_net_init(net, &cfg);
    rh_campaign(net, 1);
    assert_int_equal(rh_status(net, 1).role, RAFT_ROLE_LEADER);
}

static void assert_clean(struct rh_net *net)
{
    if (net->violation[0] != '\0')
        fail_msg("%s", net->violation);
}

/* With PreVote, a node rejoining from a partition does not raise the term or depose the healthy
 * leader. */
static void test_prevote_rejoin_does_not_disrupt(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, true, false);
    rh_net_isolate(&net, 3);
    rh_tick_all(&net, 60);
    assert_int_equal(rh_status(&net, 3).hard_state.term, 1);
    assert_true(net.sent[3][RAFT_MSG_REQUEST_PRE_VOTE] > 0);
    assert_int_equal(net.sent[3][RAFT_MSG_REQUEST_VOTE], 0);
    rh_net_recover(&net);
    rh_tick_all(&net, 30);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    assert_int_equal(rh_status(&net, 1).hard_state.term, 1);
    assert_int_equal(rh_status(&net, 3).lead, 1);
    assert_clean(&net);
    rh_net_close(&net);
}

/* Without PreVote the same rejoin bumps the term and deposes the leader (the behaviour PreVote
 * prevents). */
static void test_without_prevote_rejoin_disrupts(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, false, false);
    rh_net_isolate(&net, 3);
    rh_tick_all(&net, 60);
    uint64_t t3 = rh_status(&net, 3).hard_state.term;
    assert_true(t3 > 1);
    rh_net_recover(&net);
    rh_tick_all(&net, 20); /* 3 times out again, now reaching the others */
    assert_true(rh_status(&net, 1).hard_state.term > t3 - 1);
    assert_true(rh_status(&net, 2).hard_state.term > 1);
    rh_net_close(&net);
}

/* A pre-vote grant changes neither the voter's term nor its vote. */
static void test_prevote_grant_keeps_voter_state(void **state)
{
    (void)state;
    struct rh_net net;
    struct rh_config cfg;
    rh_config_default(&cfg);
    cfg.pre_vote = 1;
    rh_net_init(&net, &cfg);
    rh_net_isolate(&net, 2);
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.msg_type = RAFT_MSG_REQUEST_PRE_VOTE;
    m.from = 3;
    m.to = 2;
    m.term = 1;
    rh_net_send(&net, &m);
    struct raft_status st = rh_status(&net, 2);
    assert_int_equal(st.hard_state.term, 0);
    assert_int_equal(st.hard_state.vote, 0);
    assert_int_equal(net.sent[2][RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE], 1);
    assert_int_equal(net.q[0].m.reject, 0);
    assert_int_equal(net.q[0].m.term, 1); /* answered in the proposed term */
    rh_net_close(&net);
}

/* A pre-candidate with a stale log is refused and the term stays; an up-to-date node wins. */
static void test_prevote_with_stale_log_fails(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, true, false);
    rh_net_isolate(&net, 3);
    rh_propose(&net, 1, "a");
    rh_node_crash(&net, 1);
    rh_net_recover(&net);
    rh_campaign(&net, 3);
    struct raft_status s3 = rh_status(&net, 3);
    assert_int_equal(s3.role, RAFT_ROLE_PRE_CANDIDATE); /* refused by 2, 1 is down */
    assert_int_equal(s3.hard_state.term, 1);
    assert_int_equal(rh_status(&net, 2).hard_state.term, 1);
    rh_campaign(&net, 2);
    assert_int_equal(rh_status(&net, 2).role, RAFT_ROLE_LEADER);
    assert_int_equal(rh_status(&net, 2).hard_state.term, 2);
    rh_tick_all(&net, 2);
    assert_true(rh_applied_data(&net, 3, "a"));
    assert_clean(&net);
    rh_net_close(&net);
}

/* With CheckQuorum, a leader cut off from its quorum steps down after an election timeout. */
static void test_check_quorum_leader_steps_down(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, false, true);
    rh_tick_all(&net, 12); /* healthy: stays leader */
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    rh_net_isolate(&net, 1);
    for (int i = 0; i < 21; i++)
        rh_tick(&net, 1);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_FOLLOWER);
    assert_int_equal(rh_status(&net, 1).hard_state.term, 1);
    rh_net_close(&net);
}

/* Without CheckQuorum, the same isolated leader keeps believing it leads. */
static void test_without_check_quorum_leader_stays(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, false, false);
    rh_net_isolate(&net, 1);
    for (int i = 0; i < 50; i++)
        rh_tick(&net, 1);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    rh_net_close(&net);
}

/* A follower that heard from its leader within the election timeout ignores vote requests with a
 * higher term. */
static void test_lease_ignores_higher_term_votes(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, false, true);
    rh_tick_all(&net, 1);
    rh_net_isolate(&net, 2);
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.msg_type = RAFT_MSG_REQUEST_VOTE;
    m.from = 3;
    m.to = 2;
    m.term = 5;
    m.index = 100;
    m.log_term = 5;
    rh_net_send(&net, &m);
    assert_int_equal(rh_status(&net, 2).hard_state.term, 1);
    assert_int_equal(rh_status(&net, 2).hard_state.vote, 1);
    /* past the lease, the same request is honoured */
    for (int i = 0; i < 10; i++)
        rh_tick(&net, 2);
    rh_net_send(&net, &m);
    assert_int_equal(rh_status(&net, 2).hard_state.term, 5);
    assert_int_equal(rh_status(&net, 2).hard_state.vote, 3);
    rh_net_close(&net);
}

/* A minority-partitioned leader steps down while the majority elects a new one; after healing all
 * follow it. */
static void test_partitioned_leader_replaced(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, true, true);
    rh_net_isolate(&net, 1);
    uint64_t lead = 0;
    for (int i = 0; i < 60; i++) {
        rh_tick_all(&net, 1);
        if (rh_status(&net, 2).role == RAFT_ROLE_LEADER)
            lead = 2;
        if (rh_status(&net, 3).role == RAFT_ROLE_LEADER)
            lead = 3;
    }
    assert_int_not_equal(lead, 0);
    assert_int_not_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    assert_int_equal(rh_status(&net, 1).hard_state.term, 1); /* pre-vote kept it */
    rh_net_recover(&net);
    rh_tick_all(&net, 5);
    assert_int_equal(rh_status(&net, 1).lead, lead);
    rh_propose(&net, lead, "healed");
    assert_true(rh_applied_data(&net, 1, "healed"));
    assert_clean(&net);
    rh_net_close(&net);
}

/* With CheckQuorum but no PreVote, a candidate stuck at a higher term is freed: the leader learns
 * its term and the group re-forms. */
static void test_stuck_candidate_freed_with_check_quorum(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, false, true);
    rh_net_isolate(&net, 3);
    rh_tick_all(&net, 60);
    uint64_t t3 = rh_status(&net, 3).hard_state.term;
    assert_true(t3 > 1);
    rh_net_recover(&net);
    uint64_t lead = 0;
    for (int i = 0; i < 100 && lead == 0; i++) {
        rh_tick_all(&net, 1);
        lead = rh_leader(&net);
        if (lead && rh_status(&net, lead).hard_state.term < t3)
            lead = 0;
    }
    assert_int_not_equal(lead, 0);
    rh_propose(&net, lead, "back");
    rh_tick_all(&net, 2);
    assert_true(rh_applied_data(&net, 3, "back"));
    assert_clean(&net);
    rh_net_close(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prevote_rejoin_does_not_disrupt),
        cmocka_unit_test(test_without_prevote_rejoin_disrupts),
        cmocka_unit_test(test_prevote_grant_keeps_voter_state),
        cmocka_unit_test(test_prevote_with_stale_log_fails),
        cmocka_unit_test(test_check_quorum_leader_steps_down),
        cmocka_unit_test(test_without_check_quorum_leader_stays),
        cmocka_unit_test(test_lease_ignores_higher_term_votes),
        cmocka_unit_test(test_partitioned_leader_replaced),
        cmocka_unit_test(test_stuck_candidate_freed_with_check_quorum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
