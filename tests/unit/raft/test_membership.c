/* test_membership.c — single-step membership change: add, remove, one pending change, leader
 * removal. */
#include "tests/lib/raft_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void net_up(struct rh_net *net, int n, bool pre_vote, bool check_quorum)
{
    struct rh_config cfg;
    rh_config_default(&cfg);
    cfg.n = n;
    cfg.bootstrap_snapshot = true;
    cfg.pre_vote = pre_vote;
    cfg.check_quorum = check_quorum;
    rh_net_init(net, &cfg);
}

static void assert_clean(struct rh_net *net)
{
    if (net->violation[0] != '\0')
        fail_msg("%s", net->violation);
}

static size_t members(struct rh_net *net, uint64_t leader)
{
    struct rh_node *nd = rh_node(net, leader);
    struct raft_status st;
    assert_int_equal(raft_rawnode_status(nd->rn, &st), RAFT_OK);
    size_t n = st.n_peers;
    raft_status_free(&st);
    return n;
}

/* An added node is caught up by snapshot, applies new entries, and enlarges the quorum. */
static void test_add_node(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3, false, false);
    rh_campaign(&net, 1);
    rh_node_create(&net, 4);
    rh_node_restart(&net, 4);
    assert_int_equal(rh_propose_conf(&net, 1, RAFT_CONF_ADD_NODE, 4), RAFT_OK);
    assert_int_equal(members(&net, 1), 4);
    rh_tick_all(&net, 3);
    assert_true(net.sent[1][RAFT_MSG_SNAPSHOT] >= 1);
    rh_propose(&net, 1, "hello");
    assert_true(rh_applied_data(&net, 4, "hello"));
    /* with 4 members, two down means no quorum */
    rh_node_crash(&net, 3);
    rh_node_crash(&net, 4);
    rh_propose(&net, 1, "stuck");
    assert_false(rh_applied_data(&net, 1, "stuck"));
    rh_node_restart(&net, 4);
    rh_tick_all(&net, 2);
    assert_true(rh_applied_data(&net, 1, "stuck"));
    assert_clean(&net);
    rh_net_close(&net);
}

/* Removing a node shrinks the quorum, which can commit an entry that was waiting for it. */
static void test_remove_node_commits_pending(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3, false, false);
    rh_campaign(&net, 1);
    rh_net_isolate(&net, 1);
    rh_propose(&net, 1, "waiting");
    assert_false(rh_applied_data(&net, 1, "waiting"));
    struct rh_node *nd = rh_node(&net, 1);
    struct raft_conf_change cc = {.change_type = RAFT_CONF_REMOVE_NODE, .node_id = 2};
    assert_int_equal(raft_rawnode_apply_conf_change(nd->rn, &cc, NULL), RAFT_OK);
    rh_net_flush(&net);
    assert_false(rh_applied_data(&net, 1, "waiting")); /* {1,3} still needs 3 */
    cc.node_id = 3;
    assert_int_equal(raft_rawnode_apply_conf_change(nd->rn, &cc, NULL), RAFT_OK);
    rh_net_flush(&net);
    assert_true(rh_applied_data(&net, 1, "waiting"));
    assert_int_equal(members(&net, 1), 1);
    rh_net_close(&net);
}

/* Only one conf change may be pending: a second one proposed before the first applies becomes an
 * empty entry. */
static void test_one_pending_conf_change(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3, false, false);
    rh_campaign(&net, 1);
    rh_net_isolate(&net, 1); /* nothing commits for now */
    rh_node_create(&net, 4);
    rh_node_create(&net, 5);
    rh_node_restart(&net, 4);
    rh_node_restart(&net, 5);
    assert_int_equal(rh_propose_conf(&net, 1, RAFT_CONF_ADD_NODE, 4), RAFT_OK);
    assert_int_equal(rh_propose_conf(&net, 1, RAFT_CONF_ADD_NODE, 5), RAFT_OK);
    rh_net_recover(&net);
    rh_tick_all(&net, 3);
    struct rh_node *nd = rh_node(&net, 1);
    size_t conf = 0, empty_after = 0;
    for (size_t i = 0; i < nd->n_log; i++) {
        if (nd->log[i].type == RAFT_ENTRY_CONF_CHANGE)
            conf++;
        else if (conf == 1 && nd->log[i].data_len == 0)
            empty_after++;
    }
    assert_int_equal(conf, 1);
    assert_int_equal(empty_after, 1);
    assert_int_equal(members(&net, 1), 4);
    /* once applied, the next change is accepted */
    assert_int_equal(rh_propose_conf(&net, 1, RAFT_CONF_ADD_NODE, 5), RAFT_OK);
    rh_tick_all(&net, 3);
    assert_int_equal(members(&net, 1), 5);
    assert_clean(&net);
    rh_net_close(&net);
}

/* A leader that removes itself steps down, never campaigns again, and the rest elect a new leader.
 */
static void test_remove_leader(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3, false, false);
    rh_campaign(&net, 1);
    rh_propose_conf(&net, 1, RAFT_CONF_REMOVE_NODE, 1);
    rh_tick_all(&net, 1);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_FOLLOWER);
    uint64_t lead = 0;
    for (int i = 0; i < 100 && (lead = rh_leader(&net)) == 0; i++)
        rh_tick_all(&net, 1);
    assert_true(lead == 2 || lead == 3);
    rh_propose(&net, lead, "new");
    assert_true(rh_applied_data(&net, 2, "new"));
    assert_true(rh_applied_data(&net, 3, "new"));
    rh_tick_all(&net, 100);
    assert_int_not_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    assert_int_not_equal(rh_status(&net, 1).role, RAFT_ROLE_CANDIDATE);
    assert_clean(&net);
    rh_net_close(&net);
}

/* A node removed while partitioned keeps campaigning when it returns, but the healthy group keeps
 * its leader and term. */
static void test_removed_node_does_not_disrupt(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 4, false, false);
    rh_campaign(&net, 1);
    rh_net_isolate(&net, 4);
    rh_propose_conf(&net, 1, RAFT_CONF_REMOVE_NODE, 4);
    rh_tick_all(&net, 2);
    assert_int_equal(members(&net, 1), 3);
    uint64_t term = rh_status(&net, 1).hard_state.term;
    /* node 4 times out a few times on its own, then the partition heals */
    rh_tick_all(&net, 50);
    assert_true(rh_status(&net, 4).hard_state.term > term);
    rh_net_recover(&net);
    rh_tick_all(&net, 100);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    assert_int_equal(rh_status(&net, 1).hard_state.term, term);
    assert_int_equal(rh_propose(&net, 1, "still"), RAFT_OK);
    assert_true(rh_applied_data(&net, 2, "still"));
    assert_clean(&net);
    rh_net_close(&net);
}

/* A node with a committed but unapplied conf change does not campaign until it applies it. */
static void test_no_campaign_with_unapplied_conf_change(void **state)
{
    (void)state;
    struct raft_memory_storage *ms;
    raft_memory_storage_new(&ms);
    const uint64_t peers[] = {1, 2};
    struct raft_conf_state cs = {.nodes = (uint64_t *)peers, .n_nodes = 2};
    raft_memory_storage_set_conf_state(ms, &cs);
    uint8_t cc_data[9];
    rh_conf_encode(RAFT_CONF_REMOVE_NODE, 2, cc_data);
    struct raft_entry ents[2] = {
        {.entry_type = RAFT_ENTRY_NORMAL, .term = 1, .index = 1},
        {.entry_type = RAFT_ENTRY_CONF_CHANGE,
         .term = 1,
         .index = 2,
         .data = cc_data,
         .data_len = 9},
    };
    raft_memory_storage_append(ms, ents, 2);
    struct raft_hard_state hs = {.term = 1, .commit = 2};
    raft_memory_storage_set_hard_state(ms, &hs);
    struct raft_config c = {.id = 1,
                            .election_ticks = 10,
                            .heartbeat_ticks = 1,
                            .storage = raft_memory_storage_storage(ms),
                            .applied = 1,
                            .max_inflight_msgs = 4,
                            .seed = 3};
    struct raft_rawnode *rn;
    assert_int_equal(raft_rawnode_new(&c, &rn, NULL, 0), RAFT_OK);
    raft_rawnode_campaign(rn);
    struct raft_status st;
    raft_rawnode_status(rn, &st);
    assert_int_equal(st.role, RAFT_ROLE_FOLLOWER);
    assert_int_equal(st.hard_state.term, 1);
    /* apply it: now alone in the group, the node campaigns and wins */
    struct raft_ready rd;
    raft_rawnode_ready(rn, &rd);
    assert_int_equal(rd.n_committed_entries, 1);
    struct raft_conf_change cc = {.change_type = RAFT_CONF_REMOVE_NODE, .node_id = 2};
    raft_rawnode_apply_conf_change(rn, &cc, NULL);
    raft_rawnode_advance(rn, &rd);
    raft_rawnode_campaign(rn);
    raft_rawnode_status(rn, &st);
    raft_status_free(&st);
    assert_int_equal(st.role, RAFT_ROLE_LEADER);
    raft_rawnode_free(rn);
    raft_memory_storage_free(ms);
}

/* Applying an add of an existing member or a removal of an unknown node changes nothing. */
static void test_conf_change_idempotent(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3, false, false);
    rh_campaign(&net, 1);
    struct raft_conf_change cc = {.change_type = RAFT_CONF_ADD_NODE, .node_id = 2};
    struct raft_conf_state cs;
    assert_int_equal(raft_rawnode_apply_conf_change(rh_node(&net, 1)->rn, &cc, &cs), RAFT_OK);
    assert_int_equal(cs.n_nodes, 3);
    raft_conf_state_free(&cs);
    cc.change_type = RAFT_CONF_REMOVE_NODE;
    cc.node_id = 7;
    assert_int_equal(raft_rawnode_apply_conf_change(rh_node(&net, 1)->rn, &cc, &cs), RAFT_OK);
    assert_int_equal(cs.n_nodes, 3);
    raft_conf_state_free(&cs);
    rh_net_close(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_node),
        cmocka_unit_test(test_remove_node_commits_pending),
        cmocka_unit_test(test_one_pending_conf_change),
        cmocka_unit_test(test_remove_leader),
        cmocka_unit_test(test_removed_node_does_not_disrupt),
        cmocka_unit_test(test_no_campaign_with_unapplied_conf_change),
        cmocka_unit_test(test_conf_change_idempotent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
