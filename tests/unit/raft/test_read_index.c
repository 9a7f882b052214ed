/* test_read_index.c — ReadIndex: linearizable reads confirmed by a heartbeat quorum, without log
 * writes. */
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

static void read_at(struct rh_net *net, uint64_t id, const char *ctx, int expect)
{
    assert_int_equal(raft_rawnode_read_index(rh_node(net, id)->rn, ctx, strlen(ctx)), expect);
    rh_net_drain(net);
}

static void assert_read(struct rh_net *net, uint64_t id, size_t k, const char *ctx, uint64_t index)
{
    struct rh_node *nd = rh_node(net, id);
    assert_true(nd->n_reads > k);
    assert_int_equal(nd->reads[k].context_len, strlen(ctx));
    assert_memory_equal(nd->reads[k].context, ctx, strlen(ctx));
    assert_int_equal(nd->reads[k].index, index);
}

/* A read at the leader comes back as a read state at the commit index after a heartbeat round, and
 * writes nothing to the log. */
static void test_read_index_at_leader(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_campaign(&net, 1);
    rh_propose(&net, 1, "a");
    uint64_t last = rh_status(&net, 1).last_index;
    uint64_t hb = net.sent[1][RAFT_MSG_HEARTBEAT];
    read_at(&net, 1, "r1", RAFT_OK);
    assert_int_equal(net.sent[1][RAFT_MSG_HEARTBEAT], hb + 2);
    assert_int_equal(rh_node(&net, 1)->n_reads, 1);
    assert_read(&net, 1, 0, "r1", 2);
    assert_int_equal(rh_status(&net, 1).last_index, last);
    rh_net_close(&net);
}

/* Without a quorum of heartbeat acks no read state appears; it is released once the quorum answers
 * again. */
static void test_read_index_needs_quorum(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_campaign(&net, 1);
    rh_net_isolate(&net, 1);
    read_at(&net, 1, "r1", RAFT_OK);
    rh_tick_all(&net, 3);
    assert_int_equal(rh_node(&net, 1)->n_reads, 0);
    rh_net_recover(&net);
    rh_tick_all(&net, 1); /* the next heartbeat carries the pending context */
    assert_int_equal(rh_node(&net, 1)->n_reads, 1);
    assert_read(&net, 1, 0, "r1", 1);
    rh_net_close(&net);
}

/* A read at a follower is forwarded to the leader and answered with the leader's commit index. */
static void test_read_index_from_follower(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_campaign(&net, 1);
    rh_propose(&net, 1, "a");
    rh_propose(&net, 1, "b");
    read_at(&net, 2, "f1", RAFT_OK);
    assert_int_equal(rh_node(&net, 2)->n_reads, 1);
    assert_read(&net, 2, 0, "f1", 3);
    assert_int_equal(rh_node(&net, 1)->n_reads, 0);
    assert_int_equal(net.sent[1][RAFT_MSG_READ_INDEX_RESPONSE], 1);
    rh_net_close(&net);
}

/* A new leader defers reads until an entry of its own term is committed, then answers at least at
 * that index. */
static void test_read_index_deferred_until_term_commit(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_campaign(&net, 1);
    rh_propose(&net, 1, "a");
    rh_net_ignore(&net, RAFT_MSG_APPEND);
    rh_campaign(&net, 2); /* 2 wins term 2; its no-op cannot replicate yet */
    assert_int_equal(rh_status(&net, 2).role, RAFT_ROLE_LEADER);
    read_at(&net, 2, "d1", RAFT_OK);
    rh_tick_all(&net, 2);
    assert_int_equal(rh_node(&net, 2)->n_reads, 0);
    rh_net_recover(&net);
    rh_tick_all(&net, 2);
    assert_int_equal(rh_node(&net, 2)->n_reads, 1);
    assert_read(&net, 2, 0, "d1", 3); /* the term-2 no-op at index 3 */
    rh_net_close(&net);
}

/* A single-node leader answers a read at once. */
static void test_read_index_single_node(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 1);
    rh_campaign(&net, 1);
    read_at(&net, 1, "s", RAFT_OK);
    assert_read(&net, 1, 0, "s", 1);
    rh_net_close(&net);
}

/* A follower that knows no leader refuses the read. */
static void test_read_index_without_leader(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    read_at(&net, 2, "x", RAFT_ERR_PROPOSAL_DROPPED);
    rh_net_close(&net);
}

/* Several pending reads are released together, in order, by one acknowledged heartbeat round. */
static void test_read_index_batched(void **state)
{
    (void)state;
    struct rh_net net;
    net_up(&net, 3);
    rh_campaign(&net, 1);
    rh_net_isolate(&net, 1);
    read_at(&net, 1, "q1", RAFT_OK);
    rh_net_recover(&net);
    rh_propose(&net, 1, "w");
    rh_net_isolate(&net, 1);
    read_at(&net, 1, "q2", RAFT_OK);
    rh_net_recover(&net);
    rh_tick_all(&net, 1);
    assert_int_equal(rh_node(&net, 1)->n_reads, 2);
    assert_read(&net, 1, 0, "q1", 1);
    assert_read(&net, 1, 1, "q2", 2);
    rh_net_close(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_index_at_leader),
        cmocka_unit_test(test_read_index_needs_quorum),
        cmocka_unit_test(test_read_index_from_follower),
        cmocka_unit_test(test_read_index_deferred_until_term_commit),
        cmocka_unit_test(test_read_index_single_node),
        cmocka_unit_test(test_read_index_without_leader),
        cmocka_unit_test(test_read_index_batched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
