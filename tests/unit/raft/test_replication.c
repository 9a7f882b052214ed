/* test_replication.c — log replication, log matching, the commit rule and heartbeats (Raft §5.3,
 * §5.4.2). */
#include "tests/lib/raft_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Proposals at the leader are replicated, committed and applied in the same order on every node. */
static void test_log_replication(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_campaign(&net, 1);
    assert_int_equal(rh_propose(&net, 1, "a"), RAFT_OK);
    assert_int_equal(rh_propose(&net, 1, "b"), RAFT_OK);
    rh_campaign(&net, 2);
    assert_int_equal(rh_propose(&net, 2, "c"), RAFT_OK);
    rh_tick_all(&net, 2); /* heartbeats carry the final commit index */
    for (uint64_t id = 1; id <= 3; id++) {
        struct rh_node *nd = rh_node(&net, id);
        /* term-1 no-op, a, b, term-2 no-op, c */
        assert_int_equal(nd->n_log, 5);
        assert_memory_equal(nd->log[1].data, "a", 1);
        assert_memory_equal(nd->log[2].data, "b", 1);
        assert_memory_equal(nd->log[4].data, "c", 1);
        assert_int_equal(rh_status(&net, id).hard_state.commit, 5);
    }
    assert_clean(&net);
    rh_net_close(&net);
}

/* A new leader appends an empty entry of its term, which commits the log of earlier terms. */
static void test_new_leader_appends_noop(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_campaign(&net, 1);
    struct rh_node *nd = rh_node(&net, 1);
    assert_int_equal(nd->n_log, 1);
    assert_int_equal(nd->log[0].index, 1);
    assert_int_equal(nd->log[0].term, 1);
    assert_int_equal(nd->log[0].type, RAFT_ENTRY_NORMAL);
    assert_int_equal(nd->log[0].data_len, 0);
    assert_int_equal(rh_status(&net, 1).hard_state.commit, 1);
    rh_net_close(&net);
}

static void check_same_log(struct rh_net *net, uint64_t a, uint64_t b)
{
    uint64_t la = rh_status(net, a).last_index, lb = rh_status(net, b).last_index;
    assert_int_equal(la, lb);
    for (uint64_t i = 1; i <= la; i++)
        assert_int_equal(rh_storage_term(net, a, i), rh_storage_term(net, b, i));
}

/* Figure 7: whatever a follower's log (missing, extra or conflicting entries), the new leader makes
 * it equal to its own. */
static void test_figure7_leader_syncs_follower_logs(void **state)
{
    (void)state;
    const uint64_t lead[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
    const uint64_t a[] = {1, 1, 1, 4, 4, 5, 5, 6, 6};
    const uint64_t b[] = {1, 1, 1, 4};
    const uint64_t c[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6};
    const uint64_t d[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7};
    const uint64_t e[] = {1, 1, 1, 4, 4, 4, 4};
    const uint64_t f[] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3};
    struct {
        const uint64_t *terms;
        size_t n;
    } cases[] = {{a, 9}, {b, 4}, {c, 11}, {d, 12}, {e, 7}, {f, 11}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct rh_net net;
        net_up(&net, 3);
        rh_node_set_log(&net, 1, lead, 10, 7, 0, 0);
        rh_node_set_log(&net, 2, cases[k].terms, cases[k].n, 7, 0, 0);
        rh_node_set_log(&net, 3, lead, 10, 7, 0, 0);
        rh_campaign(&net, 1);
        assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
        assert_int_equal(rh_status(&net, 1).hard_state.term, 8);
        rh_tick_all(&net, 2);
        check_same_log(&net, 1, 2);
        assert_int_equal(rh_storage_term(&net, 2, 11), 8);
        assert_int_equal(rh_status(&net, 2).hard_state.commit, 11);
        assert_clean(&net);
        rh_net_close(&net);
    }
}

/* Figure 8: a leader never commits an entry of an earlier term by counting replicas, only together
 * with one of its own term. */
static void test_figure8_commit_only_current_term(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    const uint64_t two[] = {1, 2};
    const uint64_t one[] = {1};
    rh_node_set_log(&net, 1, two, 2, 2, 0, 1);
    rh_node_set_log(&net, 2, two, 2, 2, 0, 1);
    rh_node_set_log(&net, 3, one, 1, 2, 0, 1);
    rh_net_ignore(&net, RAFT_MSG_APPEND);
    rh_campaign(&net, 1);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    assert_int_equal(rh_status(&net, 1).hard_state.term, 3);
    /* node 2 holds entry 2 (term 2): a majority has it, yet it is not committed */
    struct raft_message ack = msg(RAFT_MSG_APPEND_RESPONSE, 2, 1, 3);
    ack.index = 2;
    rh_net_send(&net, &ack);
    assert_int_equal(rh_status(&net, 1).hard_state.commit, 1);
    /* once the term-3 no-op at index 3 is on a majority, both commit */
    ack.index = 3;
    rh_net_send(&net, &ack);
    assert_int_equal(rh_status(&net, 1).hard_state.commit, 3);
    rh_net_close(&net);
}

/* A heartbeat tells each follower to commit only up to min(its match, leader commit). */
static void test_heartbeat_commit_is_min_of_match_and_commit(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_campaign(&net, 1);
    rh_net_isolate(&net, 3);
    rh_propose(&net, 1, "x");
    rh_propose(&net, 1, "y");
    assert_int_equal(rh_status(&net, 1).hard_state.commit, 3);
    rh_net_clear_queue(&net);
    rh_tick(&net, 1); /* heartbeat_ticks = 1 */
    int seen = 0;
    for (size_t i = 0; i < net.n_q; i++) {
        const struct raft_message *m = &net.q[i].m;
        if (m->msg_type != RAFT_MSG_HEARTBEAT)
            continue;
        seen++;
        assert_int_equal(m->commit, m->to == 2 ? 3 : 1);
    }
    assert_int_equal(seen, 2);
    rh_net_close(&net);
}

/* A follower missing many entries rejects once with its last index as hint and the leader skips
 * straight there. */
static void test_reject_hint_fast_backoff(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    uint64_t ten[10];
    for (int i = 0; i < 10; i++)
        ten[i] = 1;
    const uint64_t two[] = {1, 1};
    rh_node_set_log(&net, 1, ten, 10, 1, 0, 0);
    rh_node_set_log(&net, 2, ten, 10, 1, 0, 0);
    rh_node_set_log(&net, 3, two, 2, 1, 0, 0);
    rh_campaign(&net, 1);
    assert_int_equal(rh_status(&net, 1).role, RAFT_ROLE_LEADER);
    assert_int_equal(net.rejects[3], 1);
    check_same_log(&net, 1, 3);
    assert_clean(&net);
    rh_net_close(&net);
}

/* A duplicated, stale append never truncates entries the follower already accepted after it. */
static void test_stale_append_does_not_truncate(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_campaign(&net, 1);
    rh_propose(&net, 1, "a");
    rh_propose(&net, 1, "b");
    uint64_t last = rh_status(&net, 2).last_index;
    assert_int_equal(last, 3);
    struct raft_entry e = {.term = 1, .index = 2, .data = (uint8_t *)"a", .data_len = 1};
    struct raft_message m = msg(RAFT_MSG_APPEND, 1, 2, 1);
    m.index = 1;
    m.log_term = 1;
    m.entries = &e;
    m.n_entries = 1;
    m.commit = 1;
    rh_net_send(&net, &m);
    assert_int_equal(rh_status(&net, 2).last_index, last);
    assert_clean(&net);
    rh_net_close(&net);
}

/* A follower refuses an append whose previous entry it does not hold (the consistency check) and
 * keeps its log. */
static void test_append_consistency_check(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    const uint64_t log[] = {1, 2};
    rh_node_set_log(&net, 2, log, 2, 2, 0, 0);
    rh_net_isolate(&net, 2);
    struct raft_entry e = {.term = 3, .index = 3};
    struct raft_message m = msg(RAFT_MSG_APPEND, 1, 2, 3);
    m.index = 2;
    m.log_term = 3; /* mismatching term at index 2 */
    m.entries = &e;
    m.n_entries = 1;
    rh_net_send(&net, &m);
    assert_int_equal(rh_status(&net, 2).last_index, 2);
    assert_int_equal(net.rejects[2], 1);
    m.log_term = 2; /* matching: accepted */
    rh_net_send(&net, &m);
    assert_int_equal(rh_status(&net, 2).last_index, 3);
    assert_int_equal(rh_storage_term(&net, 2, 3), 3);
    rh_net_close(&net);
}

/* Followers and candidates refuse proposals (the embedder redirects clients to the leader). */
static void test_proposal_dropped_unless_leader(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    assert_int_equal(rh_propose(&net, 2, "x"), RAFT_ERR_PROPOSAL_DROPPED);
    rh_net_isolate(&net, 2);
    rh_campaign(&net, 2);
    assert_int_equal(rh_status(&net, 2).role, RAFT_ROLE_CANDIDATE);
    assert_int_equal(rh_propose(&net, 2, "x"), RAFT_ERR_PROPOSAL_DROPPED);
    rh_net_recover(&net);
    rh_campaign(&net, 1);
    assert_int_equal(rh_propose(&net, 1, "x"), RAFT_OK);
    assert_true(rh_applied_data(&net, 3, "x"));
    rh_net_close(&net);
}

/* A follower that was down catches up on everything it missed once it is back. */
static void test_lagging_follower_catches_up(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_campaign(&net, 1);
    rh_node_crash(&net, 3);
    char buf[16];
    for (int i = 0; i < 30; i++) {
        snprintf(buf, sizeof buf, "v%d", i);
        rh_propose(&net, 1, buf);
    }
    rh_node_restart(&net, 3);
    rh_tick_all(&net, 3);
    assert_true(rh_applied_data(&net, 3, "v29"));
    check_same_log(&net, 1, 3);
    assert_clean(&net);
    rh_net_close(&net);
}

/* A leader sends a heartbeat to every follower each heartbeat interval, and none in between. */
static void test_leader_heartbeat_interval(void **state)
{
    (void)state;
    struct rh_net net;
    struct rh_config cfg;
    rh_config_default(&cfg);
    cfg.heartbeat_ticks = 3;
    rh_net_init(&net, &cfg);
    rh_campaign(&net, 1);
    rh_net_clear_queue(&net);
    uint64_t before = net.sent[1][RAFT_MSG_HEARTBEAT];
    rh_tick(&net, 1);
    rh_tick(&net, 1);
    assert_int_equal(net.sent[1][RAFT_MSG_HEARTBEAT], before);
    rh_tick(&net, 1);
    assert_int_equal(net.sent[1][RAFT_MSG_HEARTBEAT], before + 2);
    rh_net_close(&net);
}

/* Log matching (§5.3): after leader changes under partitions, any two logs holding an entry with
 * the same index and term agree on every entry up to it. */
static void test_log_matching_property(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 5);
    rh_campaign(&net, 1);
    rh_propose(&net, 1, "a");
    rh_net_cut(&net, 1, 3);
    rh_net_cut(&net, 1, 4);
    rh_net_cut(&net, 1, 5);
    rh_propose(&net, 1, "lost1"); /* only on 1 and 2 */
    rh_net_recover(&net);
    rh_net_isolate(&net, 1);
    rh_net_isolate(&net, 2);
    rh_campaign(&net, 3);
    rh_propose(&net, 3, "b"); /* 3, 4, 5 commit */
    rh_net_recover(&net);
    rh_net_isolate(&net, 3);
    rh_campaign(&net, 4);
    rh_propose(&net, 4, "c");
    rh_net_recover(&net);
    rh_tick_all(&net, 3);
    for (uint64_t a = 1; a <= 5; a++) {
        for (uint64_t b = a + 1; b <= 5; b++) {
            uint64_t la = rh_status(&net, a).last_index, lb = rh_status(&net, b).last_index;
            uint64_t hi = la < lb ? la : lb;
            uint64_t top = 0;
            for (uint64_t i = hi; i >= 1 && top == 0; i--)
                if (rh_storage_term(&net, a, i) == rh_storage_term(&net, b, i))
                    top = i;
            for (uint64_t i = 1; i <= top; i++)
                assert_int_equal(rh_storage_term(&net, a, i), rh_storage_term(&net, b, i));
        }
    }
    for (uint64_t id = 1; id <= 5; id++) {
        assert_false(rh_applied_data(&net, id, "lost1"));
        assert_true(rh_applied_data(&net, id, "c"));
    }
    assert_clean(&net);
    rh_net_close(&net);
}

/* Figure 8 (c): S4 and S5 are unreachable, and the term-3 entry (index 3) never reaches a follower
 * that already holds index 2; a follower lacking index 2 may still see (and refuse) the probe. */
static bool fig8_filter(void *ctx, const struct raft_message *m)
{
    struct rh_net *net = ctx;
    if (m->from >= 4 || m->to >= 4)
        return true;
    if (m->msg_type != RAFT_MSG_APPEND)
        return false;
    for (size_t i = 0; i < m->n_entries; i++)
        if (m->entries[i].index >= 3 && rh_status(net, m->to).last_index >= 2)
            return true;
    return false;
}

/* Figure 8 setup through (b): S1 (term 1) put x2 at index 2 on S1,S2; S5 won term 2 alone with its
 * own index 2..3, then crashed; S1 is back as leader of term 3. */
static void figure8_setup(struct rh_net *net)
{
    struct rh_config cfg;
    rh_config_default(&cfg);
    cfg.n = 5;
    cfg.max_entries_per_msg = 1;
    cfg.verbose = getenv("RAFT_TEST_VERBOSE") != NULL;
    rh_net_init(net, &cfg);
    rh_campaign(net, 1);
    rh_net_cut(net, 1, 3);
    rh_net_cut(net, 1, 4);
    rh_net_cut(net, 1, 5);
    rh_propose(net, 1, "x2"); /* (a) index 2, term 1 on S1 and S2 */
    rh_node_crash(net, 1);
    rh_net_recover(net);
    rh_net_ignore(net, RAFT_MSG_APPEND);
    rh_campaign(net, 5); /* (b) S5 wins term 2 with S3, S4 */
    assert_int_equal(rh_status(net, 5).role, RAFT_ROLE_LEADER);
    rh_propose(net, 5, "y3");
    rh_node_crash(net, 5);
    rh_node_restart(net, 1);
    rh_campaign(net, 1); /* term 2 is taken: refused, learns term 2 */
    rh_campaign(net, 1); /* term 3: S2, S3, S4 vote */
    assert_int_equal(rh_status(net, 1).role, RAFT_ROLE_LEADER);
    assert_int_equal(rh_status(net, 1).hard_state.term, 3);
    rh_net_recover(net);
}

/* Figure 8 (c)-(d): an old-term entry stored on a majority is not committed, and a later leader may
 * rightly overwrite it. */
static void test_figure8_old_term_entry_overwritten(void **state)
{
    (void)state;
    struct rh_net net;
    figure8_setup(&net);
    net.filter = fig8_filter;
    net.filter_ctx = &net;
    rh_tick_all(&net, 3); /* (c) x2 reaches S3: now on S1, S2, S3 */
    assert_int_equal(rh_storage_term(&net, 3, 2), 1);
    /* S2 (which holds x2 since (a)) acknowledges it: a majority stores x2 */
    struct raft_message ack = msg(RAFT_MSG_APPEND_RESPONSE, 2, 1, 3);
    ack.index = 2;
    rh_net_send(&net, &ack);
    struct raft_status st;
    raft_rawnode_status(rh_node(&net, 1)->rn, &st);
    assert_int_equal(st.peers[1].match, 2);
    assert_int_equal(st.peers[2].match, 2);
    raft_status_free(&st);
    assert_int_equal(rh_status(&net, 1).hard_state.commit, 1); /* yet not committed */
    rh_node_crash(&net, 1);
    net.filter = NULL;
    rh_node_restart(&net, 5);
    for (int i = 0; i < 3 && rh_status(&net, 5).role != RAFT_ROLE_LEADER; i++)
        rh_campaign(&net, 5); /* (d) S5's last term 2 beats their last term 1 */
    assert_int_equal(rh_status(&net, 5).role, RAFT_ROLE_LEADER);
    rh_tick_all(&net, 3);
    for (uint64_t id = 2; id <= 4; id++) {
        assert_int_equal(rh_storage_term(&net, id, 2), 2); /* x2 replaced */
        assert_false(rh_applied_data(&net, id, "x2"));
        assert_true(rh_applied_data(&net, id, "y3"));
    }
    assert_clean(&net);
    rh_net_close(&net);
}

/* Figure 8 (e): once the leader replicates an entry of its own term to a majority, the old entry is
 * committed and S5 can never win. */
static void test_figure8_current_term_entry_protects(void **state)
{
    (void)state;
    struct rh_net net;
    figure8_setup(&net);
    rh_net_isolate(&net, 4);
    rh_net_isolate(&net, 5);
    rh_tick_all(&net, 3);
    assert_int_equal(rh_status(&net, 1).hard_state.commit, 3);
    assert_true(rh_applied_data(&net, 1, "x2"));
    rh_node_crash(&net, 1);
    rh_net_recover(&net);
    rh_net_isolate(&net, 1);
    rh_node_restart(&net, 5);
    for (int i = 0; i < 5; i++) {
        rh_campaign(&net, 5);
        assert_int_not_equal(rh_status(&net, 5).role, RAFT_ROLE_LEADER);
    }
    uint64_t lead = 0;
    for (int i = 0; i < 100 && ((lead = rh_leader(&net)) == 0 || lead == 5); i++)
        rh_tick_all(&net, 1);
    assert_true(lead == 2 || lead == 3);
    rh_tick_all(&net, 3);
    for (uint64_t id = 2; id <= 5; id++)
        assert_true(rh_applied_data(&net, id, "x2"));
    assert_clean(&net);
    rh_net_close(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_replication),
        cmocka_unit_test(test_new_leader_appends_noop),
        cmocka_unit_test(test_figure7_leader_syncs_follower_logs),
        cmocka_unit_test(test_figure8_commit_only_current_term),
        cmocka_unit_test(test_heartbeat_commit_is_min_of_match_and_commit),
        cmocka_unit_test(test_reject_hint_fast_backoff),
        cmocka_unit_test(test_stale_append_does_not_truncate),
        cmocka_unit_test(test_append_consistency_check),
        cmocka_unit_test(test_proposal_dropped_unless_leader),
        cmocka_unit_test(test_lagging_follower_catches_up),
        cmocka_unit_test(test_leader_heartbeat_interval),
        cmocka_unit_test(test_log_matching_property),
        cmocka_unit_test(test_figure8_old_term_entry_overwritten),
        cmocka_unit_test(test_figure8_current_term_entry_protects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
