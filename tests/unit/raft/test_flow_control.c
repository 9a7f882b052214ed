/* test_flow_control.c — per-message entry and byte budgets, the in-flight window, probe pacing. */
#include "tests/lib/raft_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void net_up(struct rh_net *net, uint64_t max_bytes, uint64_t max_entries, int inflight)
{
    struct rh_config cfg;
    rh_config_default(&cfg);
    cfg.max_size_per_msg = max_bytes;
    cfg.max_entries_per_msg = max_entries;
    cfg.max_inflight_msgs = inflight;
    rh_net_init(net, &cfg);
    rh_campaign(net, 1);
}

static size_t queued_appends_to(struct rh_net *net, uint64_t to)
{
    size_t n = 0;
    for (size_t i = 0; i < net->n_q; i++)
        if (net->q[i].m.msg_type == RAFT_MSG_APPEND && net->q[i].m.to == to)
            n++;
    return n;
}

static void catch_up_lagging(struct rh_net *net, int n, const char *data)
{
    rh_node_crash(net, 3);
    for (int i = 0; i < n; i++)
        rh_propose(net, 1, data);
    net->max_append_entries = 0;
    net->max_append_bytes = 0;
    rh_node_restart(net, 3);
    rh_tick_all(net, 3);
    assert_int_equal(rh_status(net, 3).last_index, rh_status(net, 1).last_index);
}

/* An append carries at most the configured number of entries. */
static void test_max_entries_per_message(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, UINT64_MAX, 2, 64);
    catch_up_lagging(&net, 9, "abcd");
    assert_int_equal(net.max_append_entries, 2);
    rh_net_close(&net);
}

/* An append carries at most the configured bytes of entry data, but always at least one entry. */
static void test_max_bytes_per_message(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 10, 0, 64);
    catch_up_lagging(&net, 9, "abcd");
    assert_int_equal(net.max_append_entries, 2); /* 8 bytes; a third would make 12 */
    assert_true(net.max_append_bytes <= 10);
    rh_net_close(&net);
    net_up(&net, 10, 0, 64);
    catch_up_lagging(&net, 2, "0123456789abcdefghij"); /* 20 bytes: sent alone */
    assert_int_equal(net.max_append_entries, 1);
    assert_int_equal(net.max_append_bytes, 20);
    rh_net_close(&net);
}

/* A replicating follower has at most N appends in flight; acknowledgements open the window again.
 */
static void test_inflight_window(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, UINT64_MAX, 1, 3);
    rh_net_clear_queue(&net);
    for (int i = 0; i < 10; i++) {
        raft_rawnode_propose(rh_node(&net, 1)->rn, "e", 1);
        rh_net_flush(&net);
    }
    assert_int_equal(queued_appends_to(&net, 2), 3);
    assert_int_equal(queued_appends_to(&net, 3), 3);
    rh_net_drain(&net);
    assert_int_equal(rh_status(&net, 2).last_index, 11);
    assert_int_equal(rh_status(&net, 1).hard_state.commit, 11);
    rh_net_close(&net);
}

/* When a full window's appends are lost, a heartbeat response frees a slot so replication resumes.
 */
static void test_full_window_recovers_after_loss(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, UINT64_MAX, 1, 2);
    rh_net_clear_queue(&net);
    for (int i = 0; i < 6; i++) {
        raft_rawnode_propose(rh_node(&net, 1)->rn, "e", 1);
        rh_net_flush(&net);
    }
    rh_net_clear_queue(&net); /* every append lost */
    for (int i = 0; i < 10 && rh_status(&net, 2).last_index < 7; i++)
        rh_tick_all(&net, 1);
    assert_int_equal(rh_status(&net, 2).last_index, 7);
    assert_int_equal(rh_status(&net, 1).hard_state.commit, 7);
    rh_net_close(&net);
}

/* A follower in probe state gets one append at a time until it answers. */
static void test_probe_sends_one_at_a_time(void **state)
{
    (void)state;
    struct rh_net net;
    struct rh_config cfg;
    rh_config_default(&cfg);
    rh_net_init(&net, &cfg);
    rh_node_crash(&net, 3);
    rh_net_clear_queue(&net);
    raft_rawnode_campaign(rh_node(&net, 1)->rn);
    rh_net_drain(&net); /* the append to 3 (down) is lost; 3 stays in probe, paused */
    for (int i = 0; i < 5; i++) {
        raft_rawnode_propose(rh_node(&net, 1)->rn, "p", 1);
        rh_net_flush(&net);
    }
    assert_int_equal(queued_appends_to(&net, 3), 0);
    assert_int_equal(queued_appends_to(&net, 2), 5);
    struct raft_status st;
    raft_rawnode_status(rh_node(&net, 1)->rn, &st);
    assert_int_equal(st.peers[2].state, RAFT_PROGRESS_PROBE);
    raft_status_free(&st);
    rh_net_close(&net);
}

/* A follower reported unreachable drops from replicate to probe. */
static void test_report_unreachable_probes(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, UINT64_MAX, 0, 8);
    struct raft_status st;
    raft_rawnode_status(rh_node(&net, 1)->rn, &st);
    assert_int_equal(st.peers[1].state, RAFT_PROGRESS_REPLICATE);
    raft_status_free(&st);
    raft_rawnode_report_unreachable(rh_node(&net, 1)->rn, 2);
    raft_rawnode_status(rh_node(&net, 1)->rn, &st);
    assert_int_equal(st.peers[1].state, RAFT_PROGRESS_PROBE);
    raft_status_free(&st);
    rh_propose(&net, 1, "x");
    raft_rawnode_status(rh_node(&net, 1)->rn, &st);
    assert_int_equal(st.peers[1].state, RAFT_PROGRESS_REPLICATE);
    raft_status_free(&st);
    rh_net_close(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_entries_per_message),
        cmocka_unit_test(test_max_bytes_per_message),
        cmocka_unit_test(test_inflight_window),
        cmocka_unit_test(test_full_window_recovers_after_loss),
        cmocka_unit_test(test_probe_sends_one_at_a_time),
        cmocka_unit_test(test_report_unreachable_probes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
