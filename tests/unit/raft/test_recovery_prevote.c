/* test_recovery_prevote.c — how soon a group elects again once its leader is cut off (PreVote,
 * the follower lease, CheckQuorum). */
#include "tests/lib/raft_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define ELECTION_TICKS 10
#define HEARTBEAT_TICKS 2

static void net_up(struct rh_net *net, uint64_t seed)
{
    struct rh_config cfg;
    rh_config_default(&cfg);
    cfg.n = 3;
    cfg.pre_vote = 1;
    cfg.check_quorum = 1;
    cfg.election_ticks = ELECTION_TICKS;
    cfg.heartbeat_ticks = HEARTBEAT_TICKS;
    cfg.seed = seed;
    rh_net_init(net, &cfg);
    rh_campaign(net, 1);
    assert_int_equal(rh_status(net, 1).role, RAFT_ROLE_LEADER);
}

static enum raft_role role(struct rh_net *net, uint64_t id)
{
    return rh_status(net, id).role;
}

/* The leader is cut off while node 3 heard from it later than node 2 did: node 2's first pre-vote
 * finds 3 still in its lease (ignored, no answer), and node 2 asks again while it waits, so it is
 * elected within a heartbeat timeout of 3's lease ending, not a whole randomized election timeout
 * later. Over 50 seeds (the randomized timeouts); a seed where node 3 campaigns too (the vote may
 * split) only has to elect someone. */
static void test_recovery_prevote_asked_again_when_voter_lease_ends(void **state)
{
    (void)state;
    int worst = 0, asked_again_and_won = 0;
    for (uint64_t seed = 1; seed <= 50; seed++) {
        struct rh_net net;
        net_up(&net, seed);
        rh_net_isolate(&net, 1);
        /* Only node 2's clock runs until it campaigns: node 3 is a whole lease behind. */
        int n = 0;
        while (role(&net, 2) != RAFT_ROLE_PRE_CANDIDATE) {
            assert_true(++n <= 3 * ELECTION_TICKS);
            rh_tick(&net, 2);
            rh_net_drain(&net);
        }
        uint64_t first_pre_votes = net.sent[2][RAFT_MSG_REQUEST_PRE_VOTE];
        int ticks = 0, node3_campaigned = 0;
        while (role(&net, 2) != RAFT_ROLE_LEADER && role(&net, 3) != RAFT_ROLE_LEADER) {
            assert_true(++ticks <= 4 * ELECTION_TICKS);
            rh_tick(&net, 2);
            rh_tick(&net, 3);
            rh_net_drain(&net);
            node3_campaigned |= net.sent[3][RAFT_MSG_REQUEST_PRE_VOTE] > 0;
        }
        if (!node3_campaigned) {
            /* Node 3's lease lasts ELECTION_TICKS of its own ticks. */
            if (ticks > ELECTION_TICKS + HEARTBEAT_TICKS)
                fail_msg("seed %llu: a leader after %d ticks", (unsigned long long)seed, ticks);
            assert_true(net.sent[2][RAFT_MSG_REQUEST_PRE_VOTE] > first_pre_votes);
            asked_again_and_won++;
            if (ticks > worst)
                worst = ticks;
        }
        if (net.violation[0] != '\0')
            fail_msg("seed %llu: %s", (unsigned long long)seed, net.violation);
        rh_net_close(&net);
    }
    printf("%d of 50 seeds: node 2 asked again and won, at most %d ticks after its campaign "
           "(the voter's lease: %d ticks)\n",
           asked_again_and_won, worst, ELECTION_TICKS);
    assert_true(asked_again_and_won > 0);
}

/* A pre-candidate cut off from everyone keeps asking (every heartbeat timeout) without raising its
 * term, and rejoins under the existing leader once the partition heals. */
static void test_recovery_prevote_isolated_node_asks_without_raising_term(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 7);
    rh_net_isolate(&net, 3);
    rh_tick_all(&net, 4 * ELECTION_TICKS);
    assert_int_equal(rh_status(&net, 3).hard_state.term, 1);
    /* After its first (randomized) timeout, two pre-votes every heartbeat timeout; no real vote. */
    assert_true(net.sent[3][RAFT_MSG_REQUEST_PRE_VOTE] >= 20);
    assert_int_equal(net.sent[3][RAFT_MSG_REQUEST_VOTE], 0);
    rh_net_recover(&net);
    rh_tick_all(&net, HEARTBEAT_TICKS + 1);
    assert_int_equal(role(&net, 1), RAFT_ROLE_LEADER);
    assert_int_equal(rh_status(&net, 1).hard_state.term, 1);
    assert_int_equal(rh_status(&net, 3).lead, 1);
    if (net.violation[0] != '\0')
        fail_msg("%s", net.violation);
    rh_net_close(&net);
}

/* Only what the followers send to the leader is lost (a one-way partition): the leader steps down
 * one election timeout after it last heard them, handing over to a follower, which is elected at
 * once although both followers still hear the old leader (their lease would otherwise hold them
 * another election timeout). */
static void test_recovery_leader_deaf_hands_over_within_an_election_timeout(void **state)
{
    (void)state;
    int worst_down = 0, worst_new = 0;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        struct rh_net net;
        net_up(&net, seed);
        rh_tick_all(&net, 3); /* heartbeats answered: the leader heard both just now */
        net.cut[2][1] = true;
        net.cut[3][1] = true;
        int ticks = 0, down = 0;
        while (role(&net, 2) != RAFT_ROLE_LEADER && role(&net, 3) != RAFT_ROLE_LEADER) {
            assert_true(++ticks <= 4 * ELECTION_TICKS);
            rh_tick_all(&net, 1);
            if (!down && role(&net, 1) != RAFT_ROLE_LEADER)
                down = ticks;
        }
        assert_true(down > 0);
        if (down > ELECTION_TICKS + 1)
            fail_msg("seed %llu: stepped down after %d ticks", (unsigned long long)seed, down);
        if (ticks > ELECTION_TICKS + HEARTBEAT_TICKS)
            fail_msg("seed %llu: a new leader after %d ticks", (unsigned long long)seed, ticks);
        if (down > worst_down)
            worst_down = down;
        if (ticks > worst_new)
            worst_new = ticks;
        if (net.violation[0] != '\0')
            fail_msg("seed %llu: %s", (unsigned long long)seed, net.violation);
        rh_net_close(&net);
    }
    printf("deaf leader: stepped down after at most %d ticks, a new leader after at most %d "
           "(election timeout %d ticks)\n",
           worst_down, worst_new, ELECTION_TICKS);
}

/* Both followers pre-campaign at the same moment once the leader is gone: only the higher id gets
 * the other's pre-vote, so exactly one campaigns and wins at the next term (no split vote). */
static void test_recovery_simultaneous_pre_candidates_do_not_split(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_net_isolate(&net, 1);
    rh_net_cut(&net, 2, 3);
    rh_campaign(&net, 2);
    rh_campaign(&net, 3);
    assert_int_equal(role(&net, 2), RAFT_ROLE_PRE_CANDIDATE);
    assert_int_equal(role(&net, 3), RAFT_ROLE_PRE_CANDIDATE);
    net.cut[2][3] = net.cut[3][2] = false;
    int ticks = 0;
    while (role(&net, 2) != RAFT_ROLE_LEADER && role(&net, 3) != RAFT_ROLE_LEADER) {
        assert_true(++ticks <= 4 * ELECTION_TICKS);
        rh_tick(&net, 2);
        rh_tick(&net, 3);
        rh_net_drain(&net);
    }
    assert_int_equal(role(&net, 3), RAFT_ROLE_LEADER);
    assert_true(ticks <= HEARTBEAT_TICKS);
    assert_int_equal(rh_status(&net, 3).hard_state.term, 2);
    if (net.violation[0] != '\0')
        fail_msg("%s", net.violation);
    rh_net_close(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recovery_prevote_asked_again_when_voter_lease_ends),
        cmocka_unit_test(test_recovery_prevote_isolated_node_asks_without_raising_term),
        cmocka_unit_test(test_recovery_leader_deaf_hands_over_within_an_election_timeout),
        cmocka_unit_test(test_recovery_simultaneous_pre_candidates_do_not_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
