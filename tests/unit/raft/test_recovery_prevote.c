/* test_recovery_prevote.c — how soon a group elects again once its leader is cut off (PreVote and
 * the follower lease). */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recovery_prevote_asked_again_when_voter_lease_ends),
        cmocka_unit_test(test_recovery_prevote_isolated_node_asks_without_raising_term),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
