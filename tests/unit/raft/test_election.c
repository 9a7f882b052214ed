/* test_election.c — leader election and the voting rules (Raft §5.2, §5.4.1). */
#include "tests/lib/raft_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void net_up(struct rh_net *net, int n, int pre_vote)
{
    struct rh_config cfg;
    rh_config_default(&cfg);
    cfg.n = n;
    cfg.pre_vote = pre_vote;
    rh_net_init(net, &cfg);
}

static void assert_clean(struct rh_net *net)
{
    if (net->violation[0] != '\0')
        fail_msg("%s", net->violation);
}

static struct raft_message msg(enum raft_msg_type t, uint64_t from, uint64_t to, uint64_t term)
{
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.msg_type = t;
    m.from = from;
    m.to = to;
    m.term = term;
    return m;
}

static void election_with(int pre_vote)
{
    struct rh_net net;
    /* all up */
    net_up(&net, 3, pre_vote);
    rh_campaign(&net, 1);
    struct raft_status st = rh_status(&net, 1);
    assert_int_equal(st.role, RAFT_ROLE_LEADER);
    assert_int_equal(st.hard_state.term, 1);
    assert_int_equal(rh_status(&net, 2).lead, 1);
    assert_int_equal(rh_status(&net, 3).lead, 1);
    assert_clean(&net);
    rh_net_close(&net);
    /* one of three down: still a quorum */
    net_up(&net, 3, pre_vote);
    rh_node_crash(&net, 3);
    rh_campaign(&net, 1);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    rh_net_close(&net);
    /* two of three down: no quorum, stays (pre-)candidate */
    net_up(&net, 3, pre_vote);
    rh_node_crash(&net, 2);
    rh_node_crash(&net, 3);
    rh_campaign(&net, 1);
    st = rh_status(&net, 1);
    assert_int_equal(st.role, pre_vote ? RAFT_ROLE_PRE_CANDIDATE : RAFT_ROLE_CANDIDATE);
    assert_int_equal(st.hard_state.term, pre_vote ? 0 : 1);
    rh_net_close(&net);
    /* five nodes, two down */
    net_up(&net, 5, pre_vote);
    rh_node_crash(&net, 4);
    rh_node_crash(&net, 5);
    rh_campaign(&net, 1);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    rh_net_close(&net);
}

/* A candidate that reaches a quorum becomes leader; without one it does not (§5.2). */
static void test_leader_election(void **state)
{
    (void)state;
    election_with(0);
}

/* The same election outcomes hold with a pre-vote round first. */
static void test_leader_election_pre_vote(void **state)
{
    (void)state;
    election_with(1);
}

/* A single-node group elects itself on its first election timeout. */
static void test_single_node_elects_itself_on_timeout(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 1, 0);
    for (int i = 0; i < 20 && rh_status(&net, 1).role != RAFT_ROLE_LEADER; i++)
        rh_tick(&net, 1);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    rh_net_close(&net);
}

/* Each node's election timeout is random in [election, 2*election) and differs between nodes. */
static void test_election_timeout_randomized(void **state)
{
    (void)state;
    bool seen[20] = {false};
    for (uint64_t seed = 1; seed <= 60; seed++) {
        struct rh_net net;
        struct rh_config cfg;
        rh_config_default(&cfg);
        cfg.seed = seed;
        rh_net_init(&net, &cfg);
        rh_net_isolate(&net, 1);
        int ticks = 0;
        while (rh_status(&net, 1).role == RAFT_ROLE_FOLLOWER && ticks < 100) {
            rh_tick(&net, 1);
            ticks++;
        }
        assert_in_range(ticks, 10, 19);
        seen[ticks] = true;
        rh_net_close(&net);
    }
    int distinct = 0;
    for (int i = 0; i < 20; i++)
        distinct += seen[i];
    assert_true(distinct >= 5);
}

/* A follower that keeps hearing heartbeats never starts an election. */
static void test_heartbeats_suppress_elections(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3, 0);
    rh_campaign(&net, 1);
    rh_tick_all(&net, 100);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    assert_int_equal(rh_status(&net, 1).hard_state.term, 1);
    assert_int_equal(rh_status(&net, 2).hard_state.term, 1);
    assert_clean(&net);
    rh_net_close(&net);
}

/* A node grants at most one vote per term, and the vote survives a restart (§5.2). */
static void test_vote_once_per_term(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3, 0);
    rh_net_isolate(&net, 1); /* keep responses out of the way */
    struct raft_message v = msg(RAFT_MSG_REQUEST_VOTE, 2, 1, 1);
    rh_net_send(&net, &v);
    assert_int_equal(rh_status(&net, 1).hard_state.vote, 2);
    rh_node_restart(&net, 1);
    assert_int_equal(rh_status(&net, 1).hard_state.vote, 2);
    struct raft_message v3 = msg(RAFT_MSG_REQUEST_VOTE, 3, 1, 1);
    rh_net_recover(&net);
    rh_node_crash(&net, 2);
    rh_net_send(&net, &v3);
    /* node 3's request at the same term was rejected: 3 cannot have won */
    assert_int_equal(rh_status(&net, 1).hard_state.vote, 2);
    assert_int_not_equal(rh_status(&net, 3).role, RAFT_ROLE_LEADER);
    /* asking again for the same candidate is granted again (idempotent) */
    struct raft_message v2 = msg(RAFT_MSG_REQUEST_VOTE, 2, 1, 1);
    rh_net_isolate(&net, 1);
    rh_net_send(&net, &v2);
    assert_int_equal(rh_status(&net, 1).hard_state.vote, 2);
    assert_clean(&net);
    rh_net_close(&net);
}

/* A voter grants only to a candidate whose log is at least as up to date as its own (§5.4.1). */
static void test_vote_requires_up_to_date_log(void **state)
{
    (void)state;
    /* voter log: terms [1, 2, 2] (last index 3, last term 2) */
    const uint64_t terms[] = {1, 2, 2};
    struct {
        uint64_t index, log_term;
        bool granted;
    } cases[] = {
        {3, 2, true}, {4, 2, true}, {2, 2, false}, {5, 1, false}, {1, 3, true}, {3, 1, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rh_net net;
        net_up(&net, 3, 0);
        rh_node_set_log(&net, 1, terms, 3, 2, 0, 0);
        rh_net_isolate(&net, 1);
        struct raft_message v = msg(RAFT_MSG_REQUEST_VOTE, 2, 1, 3);
        v.index = cases[i].index;
        v.log_term = cases[i].log_term;
        rh_net_send(&net, &v);
        struct raft_status st = rh_status(&net, 1);
        assert_int_equal(st.hard_state.term, 3);
        assert_int_equal(st.hard_state.vote, cases[i].granted ? 2 : 0);
        rh_net_close(&net);
    }
}

/* Two candidates at the same term split the vote; the one with the longer log wins later (etcd's
 * dueling candidates). */
static void test_dueling_candidates(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3, 0);
    rh_net_cut(&net, 1, 3);
    rh_campaign(&net, 1);
    rh_campaign(&net, 3);
    /* 1 won with 2's vote; 3 could not (2 already voted in term 1) */
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    assert_int_equal(rh_status(&net, 3).role, RAFT_ROLE_CANDIDATE);
    rh_net_recover(&net);
    /* 3 campaigns at term 2 but its log is behind (no term-1 no-op): it loses */
    rh_campaign(&net, 3);
    struct raft_status s3 = rh_status(&net, 3);
    assert_int_equal(s3.role, RAFT_ROLE_FOLLOWER);
    assert_int_equal(s3.hard_state.term, 2);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_FOLLOWER);
    assert_clean(&net);
    rh_net_close(&net);
}

/* A candidate that hears from a leader of its term concedes and takes the leader's log. */
static void test_candidate_concedes_to_leader(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3, 0);
    rh_net_isolate(&net, 1);
    rh_campaign(&net, 1);
    rh_campaign(&net, 3);
    assert_int_equal(rh_status(&net, 3).role, RAFT_ROLE_LEADER);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_CANDIDATE);
    rh_net_recover(&net);
    /* the leader's heartbeat at the same term makes the candidate a follower */
    rh_tick_all(&net, 2);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_FOLLOWER);
    assert_int_equal(rh_status(&net, 1).lead, 3);
    assert_int_equal(rh_propose(&net, 3, "force"), RAFT_OK);
    assert_true(rh_applied_data(&net, 1, "force"));
    assert_clean(&net);
    rh_net_close(&net);
}

/* Any node (leader, candidate, follower) that sees a higher term becomes a follower in it (§5.1).
 */
static void test_higher_term_converts_to_follower(void **state)
{
    (void)state;
    enum raft_msg_type types[] = {RAFT_MSG_APPEND, RAFT_MSG_HEARTBEAT, RAFT_MSG_REQUEST_VOTE};
    for (int role = 0; role < 3; role++) {
        for (size_t k = 0; k < 3; k++) {
            struct rh_net net;
            net_up(&net, 3, 0);
            if (role == 1) {
                rh_net_isolate(&net, 1);
                rh_campaign(&net, 1); /* candidate */
            } else if (role == 2) {
                rh_campaign(&net, 1); /* leader */
            }
            rh_net_isolate(&net, 1);
            struct raft_message m = msg(types[k], 2, 1, 10);
            m.index = 100; /* an append that cannot match: still a follower after */
            m.log_term = 9;
            m.commit = 0;
            rh_net_send(&net, &m);
            struct raft_status st = rh_status(&net, 1);
            assert_int_equal(st.role, RAFT_ROLE_FOLLOWER);
            assert_int_equal(st.hard_state.term, 10);
            assert_int_equal(st.lead, types[k] == RAFT_MSG_REQUEST_VOTE ? 0 : 2);
            rh_net_close(&net);
        }
    }
}

/* Messages from an older term are ignored: a deposed leader's appends change nothing. */
static void test_old_messages_ignored(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3, 0);
    rh_campaign(&net, 1);
    rh_campaign(&net, 2);
    rh_campaign(&net, 1);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    assert_int_equal(rh_status(&net, 1).hard_state.term, 3);
    uint64_t last = rh_status(&net, 1).last_index;
    /* a stale append from term 2 with a conflicting entry */
    struct raft_entry e = {.term = 2, .index = 3, .data = (uint8_t *)"x", .data_len = 1};
    struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, 2);
    m.index = 2;
    m.log_term = 2;
    m.entries = &e;
    m.n_entries = 1;
    rh_net_send(&net, &m);
    assert_int_equal(rh_status(&net, 1).hard_state.term, 3);
    assert_int_equal(rh_status(&net, 1).last_index, last);
    assert_int_equal(rh_storage_term(&net, 1, 3), 3);
    assert_clean(&net);
    rh_net_close(&net);
}

/* A candidate rejected by a quorum steps back to follower instead of waiting out its timeout. */
static void test_candidate_rejected_by_quorum(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3, 0);
    const uint64_t longer[] = {1, 1};
    rh_node_set_log(&net, 2, longer, 2, 1, 0, 0);
    rh_node_set_log(&net, 3, longer, 2, 1, 0, 0);
    rh_campaign(&net, 1); /* node 1 has an empty log: both reject */
    struct raft_status st = rh_status(&net, 1);
    assert_int_equal(st.role, RAFT_ROLE_FOLLOWER);
    assert_int_equal(st.hard_state.term, 1);
    assert_int_equal(st.hard_state.vote, 1);
    rh_net_close(&net);
}

/* A leader asked to campaign again stays leader in the same term. */
static void test_campaign_while_leader(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3, 0);
    rh_campaign(&net, 1);
    rh_campaign(&net, 1);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    assert_int_equal(rh_status(&net, 1).hard_state.term, 1);
    rh_net_close(&net);
}

/* Followers of one group time out at different ticks most of the time, which avoids split votes. */
static void test_election_timeouts_rarely_collide(void **state)
{
    (void)state;
    int collisions = 0;
    for (uint64_t seed = 1; seed <= 100; seed++) {
        struct rh_net net;
        struct rh_config cfg;
        rh_config_default(&cfg);
        cfg.seed = seed;
        rh_net_init(&net, &cfg);
        rh_net_isolate(&net, 1);
        rh_net_isolate(&net, 2);
        int t1 = 0, t2 = 0;
        for (int t = 1; t <= 40 && (!t1 || !t2); t++) {
            rh_tick(&net, 1);
            rh_tick(&net, 2);
            if (!t1 && rh_status(&net, 1).role != RAFT_ROLE_FOLLOWER)
                t1 = t;
            if (!t2 && rh_status(&net, 2).role != RAFT_ROLE_FOLLOWER)
                t2 = t;
        }
        collisions += t1 == t2;
        rh_net_close(&net);
    }
    assert_true(collisions < 30);
}

/* A candidate behind in terms learns the voter's term from its refusal (Raft paper RequestVote
 * reply). */
static void test_stale_candidate_learns_term_from_rejection(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3, 0);
    rh_node_set_log(&net, 3, NULL, 0, 5, 0, 0);
    rh_net_cut(&net, 1, 2);
    rh_campaign(&net, 1); /* term 1 < 5 */
    struct raft_status st = rh_status(&net, 1);
    assert_int_equal(st.hard_state.term, 5);
    assert_int_equal(st.role, RAFT_ROLE_FOLLOWER);
    rh_campaign(&net, 1); /* now at term 6, 3 grants */
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    assert_int_equal(rh_status(&net, 1).hard_state.term, 6);
    rh_net_close(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leader_election),
        cmocka_unit_test(test_leader_election_pre_vote),
        cmocka_unit_test(test_single_node_elects_itself_on_timeout),
        cmocka_unit_test(test_election_timeout_randomized),
        cmocka_unit_test(test_heartbeats_suppress_elections),
        cmocka_unit_test(test_vote_once_per_term),
        cmocka_unit_test(test_vote_requires_up_to_date_log),
        cmocka_unit_test(test_dueling_candidates),
        cmocka_unit_test(test_candidate_concedes_to_leader),
        cmocka_unit_test(test_higher_term_converts_to_follower),
        cmocka_unit_test(test_old_messages_ignored),
        cmocka_unit_test(test_candidate_rejected_by_quorum),
        cmocka_unit_test(test_campaign_while_leader),
        cmocka_unit_test(test_election_timeouts_rarely_collide),
        cmocka_unit_test(test_stale_candidate_learns_term_from_rejection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
