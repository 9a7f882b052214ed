/* test_snapshot.c — log compaction, sending and installing snapshots, and the memory storage. */
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

static void compact_node(struct rh_net *net, uint64_t id)
{
    struct rh_node *nd = rh_node(net, id);
    assert_int_equal(raft_memory_storage_create_snapshot(nd->ms, nd->applied, NULL, "snap", 4),
                     RAFT_OK);
    assert_int_equal(raft_memory_storage_compact(nd->ms, nd->applied), RAFT_OK);
}

/* Leader with a cluster where node 3 was down while the others compacted past its log. */
static void lagging_setup(struct rh_net *net)
{
    net_up(net, 3);
    rh_campaign(net, 1);
    rh_node_crash(net, 3);
    char buf[16];
    for (int i = 0; i < 10; i++) {
        snprintf(buf, sizeof buf, "v%d", i);
        rh_propose(net, 1, buf);
    }
    rh_tick_all(net, 2);
    compact_node(net, 1);
    compact_node(net, 2);
    assert_int_equal(raft_memory_storage_first_index(rh_node(net, 1)->ms), 12);
}

/* A follower behind the leader's first index is sent a snapshot, installs it, then gets the rest by
 * appends. */
static void test_leader_sends_snapshot_to_lagging_follower(void **state)
{
    (void)state;
    struct rh_net net;
    lagging_setup(&net);
    rh_node_restart(&net, 3);
    rh_tick_all(&net, 3);
    assert_true(net.sent[1][RAFT_MSG_SNAPSHOT] >= 1);
    struct rh_node *n3 = rh_node(&net, 3);
    assert_int_equal(raft_memory_storage_first_index(n3->ms), 12);
    assert_int_equal(n3->applied, 11);
    assert_int_equal(rh_status(&net, 3).hard_state.commit, 11);
    rh_propose(&net, 1, "after");
    assert_true(rh_applied_data(&net, 3, "after"));
    assert_clean(&net);
    rh_net_close(&net);
}

/* While storage answers "snapshot temporarily unavailable" the leader waits, and sends it once
 * available. */
static void test_snapshot_temporarily_unavailable_retried(void **state)
{
    (void)state;
    struct rh_net net;
    lagging_setup(&net);
    raft_memory_storage_set_snapshot_unavailable(rh_node(&net, 1)->ms, 3);
    rh_node_restart(&net, 3);
    rh_tick_all(&net, 1);
    assert_int_equal(net.sent[1][RAFT_MSG_SNAPSHOT], 0);
    rh_tick_all(&net, 5);
    assert_true(net.sent[1][RAFT_MSG_SNAPSHOT] >= 1);
    assert_int_equal(rh_node(&net, 3)->applied, 11);
    assert_clean(&net);
    rh_net_close(&net);
}

/* A snapshot lost in transit is reported as failed and sent again. */
static void test_snapshot_failure_report_resends(void **state)
{
    (void)state;
    struct rh_net net;
    lagging_setup(&net);
    rh_net_ignore(&net, RAFT_MSG_SNAPSHOT); /* the harness reports these as failed */
    rh_node_restart(&net, 3);
    rh_tick_all(&net, 3);
    uint64_t tries = net.sent[1][RAFT_MSG_SNAPSHOT];
    assert_true(tries >= 2);
    assert_int_equal(rh_node(&net, 3)->applied, 1); /* only what it had before */
    rh_net_recover(&net);
    rh_tick_all(&net, 3);
    assert_int_equal(rh_node(&net, 3)->applied, 11);
    assert_clean(&net);
    rh_net_close(&net);
}

/* A snapshot no newer than the follower's commit index is ignored; one its log already covers only
 * moves the commit. */
static void test_follower_ignores_stale_snapshot(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    const uint64_t log[] = {1, 1, 1};
    rh_node_set_log(&net, 2, log, 3, 1, 0, 2);
    rh_net_isolate(&net, 2);
    uint64_t nodes[] = {1, 2, 3};
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.msg_type = RAFT_MSG_SNAPSHOT;
    m.from = 1;
    m.to = 2;
    m.term = 1;
    m.snapshot.metadata.index = 2;
    m.snapshot.metadata.term = 1;
    m.snapshot.metadata.conf_state.nodes = nodes;
    m.snapshot.metadata.conf_state.n_nodes = 3;
    rh_net_send(&net, &m);
    assert_int_equal(raft_memory_storage_first_index(rh_node(&net, 2)->ms), 1);
    /* index 3 term 1 matches the log: commit fast-forwards, nothing replaced */
    m.snapshot.metadata.index = 3;
    rh_net_send(&net, &m);
    assert_int_equal(raft_memory_storage_first_index(rh_node(&net, 2)->ms), 1);
    assert_int_equal(rh_status(&net, 2).hard_state.commit, 3);
    assert_int_equal(rh_status(&net, 2).last_index, 3);
    rh_net_close(&net);
}

/* A snapshot installs its configuration: a fresh node with no members becomes able to campaign. */
static void test_snapshot_restores_configuration(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_node_create(&net, 4);
    rh_node_restart(&net, 4);
    rh_net_isolate(&net, 4);
    rh_campaign(&net, 4);
    assert_int_equal(rh_status(&net, 4).role, RAFT_ROLE_FOLLOWER); /* not promotable */
    uint64_t nodes[] = {1, 2, 3, 4};
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.msg_type = RAFT_MSG_SNAPSHOT;
    m.from = 1;
    m.to = 4;
    m.term = 2;
    m.snapshot.metadata.index = 7;
    m.snapshot.metadata.term = 2;
    m.snapshot.metadata.conf_state.nodes = nodes;
    m.snapshot.metadata.conf_state.n_nodes = 4;
    rh_net_send(&net, &m);
    struct raft_status st = rh_status(&net, 4);
    assert_int_equal(st.hard_state.commit, 7);
    assert_int_equal(st.last_index, 7);
    assert_int_equal(rh_node(&net, 4)->applied, 7);
    rh_campaign(&net, 4);
    assert_int_equal(rh_status(&net, 4).role, RAFT_ROLE_CANDIDATE);
    assert_int_equal(rh_status(&net, 4).hard_state.term, 3);
    rh_net_close(&net);
}

/* The memory storage answers term/entries around its compaction point and refuses out-of-date
 * snapshots. */
static void test_memory_storage_compaction(void **state)
{
    (void)state;
    struct raft_memory_storage *ms;
    assert_int_equal(raft_memory_storage_new(&ms), RAFT_OK);
    struct raft_entry ents[5];
    for (int i = 0; i < 5; i++)
        ents[i] = (struct raft_entry){.term = (uint64_t)(i < 3 ? 1 : 2), .index = (uint64_t)i + 1};
    assert_int_equal(raft_memory_storage_append(ms, ents, 5), RAFT_OK);
    struct raft_storage st = raft_memory_storage_storage(ms);
    uint64_t t, idx;
    st.ops->first_index(st.ctx, &idx);
    assert_int_equal(idx, 1);
    assert_int_equal(st.ops->term(st.ctx, 4, &t), RAFT_OK);
    assert_int_equal(t, 2);
    assert_int_equal(st.ops->term(st.ctx, 6, &t), RAFT_ERR_UNAVAILABLE);
    assert_int_equal(raft_memory_storage_create_snapshot(ms, 3, NULL, "s", 1), RAFT_OK);
    assert_int_equal(raft_memory_storage_create_snapshot(ms, 2, NULL, "s", 1),
                     RAFT_ERR_SNAP_OUT_OF_DATE);
    assert_int_equal(raft_memory_storage_compact(ms, 3), RAFT_OK);
    assert_int_equal(raft_memory_storage_compact(ms, 2), RAFT_ERR_COMPACTED);
    st.ops->first_index(st.ctx, &idx);
    assert_int_equal(idx, 4);
    st.ops->last_index(st.ctx, &idx);
    assert_int_equal(idx, 5);
    assert_int_equal(st.ops->term(st.ctx, 3, &t), RAFT_OK); /* the dummy keeps its term */
    assert_int_equal(t, 1);
    assert_int_equal(st.ops->term(st.ctx, 2, &t), RAFT_ERR_COMPACTED);
    struct raft_entry *out;
    size_t n;
    assert_int_equal(st.ops->entries(st.ctx, 3, 6, UINT64_MAX, &out, &n), RAFT_ERR_COMPACTED);
    assert_int_equal(st.ops->entries(st.ctx, 4, 6, UINT64_MAX, &out, &n), RAFT_OK);
    assert_int_equal(n, 2);
    raft_entries_free(out, n);
    /* a conflicting append truncates the tail */
    struct raft_entry e = {.term = 3, .index = 5};
    assert_int_equal(raft_memory_storage_append(ms, &e, 1), RAFT_OK);
    assert_int_equal(st.ops->term(st.ctx, 5, &t), RAFT_OK);
    assert_int_equal(t, 3);
    struct raft_entry gap = {.term = 3, .index = 9};
    assert_int_equal(raft_memory_storage_append(ms, &gap, 1), RAFT_ERR_INVALID);
    struct raft_snapshot snap;
    assert_int_equal(st.ops->snapshot(st.ctx, &snap), RAFT_OK);
    assert_int_equal(snap.metadata.index, 3);
    assert_int_equal(snap.metadata.term, 1);
    assert_int_equal(raft_memory_storage_apply_snapshot(ms, &snap), RAFT_ERR_SNAP_OUT_OF_DATE);
    raft_snapshot_free(&snap);
    raft_memory_storage_set_snapshot_unavailable(ms, 1);
    assert_int_equal(st.ops->snapshot(st.ctx, &snap), RAFT_ERR_SNAP_TEMP_UNAVAILABLE);
    assert_int_equal(st.ops->snapshot(st.ctx, &snap), RAFT_OK);
    raft_snapshot_free(&snap);
    raft_memory_storage_free(ms);
}

/* A node restarted from a compacted storage (snapshot plus tail) rebuilds its log and
 * configuration. */
static void test_restart_from_snapshot(void **state)
{
    (void)state;
    struct rh_net net;
    lagging_setup(&net);
    rh_propose(&net, 1, "tail");
    rh_node_restart(&net, 2);
    struct raft_status st = rh_status(&net, 2);
    assert_int_equal(st.first_index, 12);
    assert_int_equal(st.last_index, 12);
    assert_int_equal(st.applied, 12);
    rh_campaign(&net, 2);
    assert_int_equal(rh_status(&net, 2).role, RAFT_ROLE_LEADER);
    assert_clean(&net);
    rh_net_close(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leader_sends_snapshot_to_lagging_follower),
        cmocka_unit_test(test_snapshot_temporarily_unavailable_retried),
        cmocka_unit_test(test_snapshot_failure_report_resends),
        cmocka_unit_test(test_follower_ignores_stale_snapshot),
        cmocka_unit_test(test_snapshot_restores_configuration),
        cmocka_unit_test(test_memory_storage_compaction),
        cmocka_unit_test(test_restart_from_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
