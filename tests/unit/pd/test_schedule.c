/* test_schedule.c — operators, the replica checker and the balance schedulers on a mock cluster. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pd/pd.h"
#include "proto/log.h"
#include "tests/lib/pd_mock.h"

#define MIB PD_MOCK_MIB

static int setup(void **state)
{
    log_current_level = LOG_ERROR; /* operator chatter off; set by the test's main thread only */
    struct pd_mock *m = malloc(sizeof *m);
    pd_mock_open(m);
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    pd_mock_close(*state);
    free(*state);
    return 0;
}

/* filler adds a one-peer region led by store with the given size, beyond the test's key range. */
static void filler(struct pd_mock *m, uint64_t id, uint64_t store, uint64_t size_mib)
{
    char start[32], end[32];
    snprintf(start, sizeof start, "z%05llu", (unsigned long long)id);
    snprintf(end, sizeof end, "z%05llu~", (unsigned long long)id);
    uint64_t stores[1] = {store};
    assert_int_equal(pd_mock_region_hb(m, id, start, end, 2, 1, size_mib, store, stores, 1), PD_OK);
}

static void set_max_replicas(struct pd_mock *m, uint64_t n)
{
    struct pd_config cfg;
    pd_cluster_get_config(m->c, &cfg);
    cfg.max_replicas = n;
    assert_int_equal(pd_cluster_put_config(m->c, &cfg), PD_OK);
}

static size_t run(struct pd_mock *m, const char *name)
{
    size_t n = 99;
    assert_int_equal(pd_cluster_run_scheduler(m->c, name, &n), PD_OK);
    return n;
}

static void get_op(struct pd_mock *m, uint64_t region_id, struct pd_operator *op)
{
    assert_int_equal(pd_cluster_get_operator(m->c, region_id, op), PD_OK);
}

static void assert_step(const struct pd_step *s, enum pd_step_kind kind, uint64_t store)
{
    assert_int_equal(s->kind, kind);
    assert_int_equal(s->store_id, store);
}

/* advance moves the clock and heartbeats every store in alive[]. */
static void advance(struct pd_mock *m, uint64_t ms, const uint64_t *alive, size_t n)
{
    m->now_ms += ms;
    for (size_t i = 0; i < n; i++)
        pd_mock_heartbeat_store(m, alive[i]);
}

static const uint64_t S1[] = {1}, S123[] = {1, 2, 3}, S124[] = {1, 2, 4}, S1234[] = {1, 2, 3, 4},
                      S12345[] = {1, 2, 3, 4, 5};

/* ---- operators ---- */

/* A transfer-leader operator sends its step with every heartbeat until the heartbeat shows the
 * new leader, then finishes; a second operator for the same region is refused meanwhile. */
static void test_operator_transfer_leader_progress(void **state)
{
    struct pd_mock *m = *state;
    pd_mock_add_store(m, 2);
    pd_mock_add_store(m, 3);
    assert_int_equal(pd_mock_region_hb(m, 10, "", "", 2, 3, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_cluster_add_transfer_leader(m->c, 10, 2), PD_OK);
    assert_int_equal(pd_cluster_add_add_peer(m->c, 10, 3), PD_ERR_EXISTS);
    struct pd_operator op;
    enum pd_operator_status status;
    assert_int_equal(pd_cluster_get_operator_status(m->c, 10, &op, &status), PD_OK);
    assert_int_equal(status, PD_OP_RUNNING);
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, 10, "", "", 2, 3, 1, 1, S123, 3);
    struct pd_step step;
    bool has = false;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, &step, &has), PD_OK);
        assert_true(has);
        assert_step(&step, PD_STEP_TRANSFER_LEADER, 2);
        assert_int_equal(step.peer_id, pd_mock_peer_id(10, 2));
    }
    pd_mock_region(&r, 10, "", "", 2, 3, 1, 2, S123, 3);
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, &step, &has), PD_OK);
    assert_false(has);
    assert_int_equal(pd_cluster_get_operator(m->c, 10, &op), PD_ERR_NOT_FOUND);
    assert_int_equal(pd_cluster_get_operator_status(m->c, 10, &op, &status), PD_OK);
    assert_int_equal(status, PD_OP_SUCCESS);
    assert_string_equal(op.name, "admin-transfer-leader");
    assert_int_equal(pd_cluster_get_operator_status(m->c, 77, &op, &status), PD_ERR_NOT_FOUND);
    struct pd_metrics mt;
    pd_cluster_metrics(m->c, &mt);
    assert_int_equal(mt.operators_finished, 1);
    pd_region_clear(&r);
}

/* An add-peer step is done only when the new peer is present and no longer pending; then a
 * remove-peer operator finishes when the peer is gone. */
static void test_operator_add_and_remove_peer(void **state)
{
    struct pd_mock *m = *state;
    pd_mock_add_store(m, 2);
    assert_int_equal(pd_mock_region_hb(m, 10, "", "", 2, 1, 1, 1, S1, 1), PD_OK);
    assert_int_equal(pd_cluster_add_add_peer(m->c, 10, 1), PD_ERR_STATE); /* already there */
    assert_int_equal(pd_cluster_add_add_peer(m->c, 10, 2), PD_OK);
    struct pd_operator op;
    get_op(m, 10, &op);
    assert_int_equal(op.step_count, 1);
    assert_step(&op.steps[0], PD_STEP_ADD_PEER, 2);
    uint64_t new_peer = op.steps[0].peer_id;
    assert_true(new_peer != 0);

    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, 10, "", "", 2, 2, 1, 1, S1, 1);
    pd_region_add_peer(&r, new_peer, 2);
    r.pending_peers[0] = r.peers[1];
    r.pending_peer_count = 1;
    struct pd_step step;
    bool has;
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, &step, &has), PD_OK);
    assert_true(has); /* still catching up */
    assert_step(&step, PD_STEP_ADD_PEER, 2);
    r.pending_peer_count = 0;
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, &step, &has), PD_OK);
    assert_false(has);

    assert_int_equal(pd_cluster_add_remove_peer(m->c, 10, 2), PD_OK);
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, &step, &has), PD_OK);
    assert_true(has);
    assert_step(&step, PD_STEP_REMOVE_PEER, 2);
    assert_int_equal(step.peer_id, new_peer);
    r.peer_count = 1;
    r.epoch.conf_ver = 3;
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, &step, &has), PD_OK);
    assert_false(has);
    assert_int_equal(pd_cluster_get_operator(m->c, 10, &op), PD_ERR_NOT_FOUND);
    pd_region_clear(&r);
}

/* Removing the leader's peer first moves the leadership away, then removes it. */
static void test_operator_remove_leader_peer(void **state)
{
    struct pd_mock *m = *state;
    pd_mock_add_store(m, 2);
    pd_mock_add_store(m, 3);
    assert_int_equal(pd_mock_region_hb(m, 10, "", "", 2, 3, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_cluster_add_remove_peer(m->c, 10, 1), PD_OK);
    struct pd_operator op;
    get_op(m, 10, &op);
    assert_int_equal(op.step_count, 2);
    assert_int_equal(op.steps[0].kind, PD_STEP_TRANSFER_LEADER);
    assert_true(op.steps[0].store_id != 1);
    assert_step(&op.steps[1], PD_STEP_REMOVE_PEER, 1);
}

/* Operators that stay stuck are dropped by the tick after their timeout: 10 s for leader moves,
 * 10 min for peer moves. */
static void test_operator_timeout(void **state)
{
    struct pd_mock *m = *state;
    pd_mock_add_store(m, 2);
    pd_mock_add_store(m, 3);
    pd_cluster_remove_scheduler(m->c, PD_SCHEDULER_BALANCE_LEADER);
    pd_cluster_remove_scheduler(m->c, PD_SCHEDULER_BALANCE_REGION);
    static const uint64_t alive[] = {1, 2, 3};
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "b", 2, 3, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 11, "b", "c", 2, 3, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_cluster_add_transfer_leader(m->c, 10, 2), PD_OK);
    assert_int_equal(pd_cluster_add_remove_peer(m->c, 11, 2), PD_OK);
    advance(m, 11 * 1000, alive, 3);
    assert_int_equal(pd_cluster_tick(m->c, NULL), PD_OK);
    struct pd_operator op;
    assert_int_equal(pd_cluster_get_operator(m->c, 10, &op), PD_ERR_NOT_FOUND);
    get_op(m, 11, &op); /* a peer move has longer */
    for (int i = 0; i < 60; i++)
        advance(m, 10 * 1000, alive, 3);
    assert_int_equal(pd_cluster_tick(m->c, NULL), PD_OK);
    assert_int_equal(pd_cluster_get_operator(m->c, 11, &op), PD_ERR_NOT_FOUND);
    enum pd_operator_status status;
    assert_int_equal(pd_cluster_get_operator_status(m->c, 11, &op, &status), PD_OK);
    assert_int_equal(status, PD_OP_TIMEOUT);
    struct pd_metrics mt;
    pd_cluster_metrics(m->c, &mt);
    assert_int_equal(mt.operators_timed_out, 2);
}

/* An add-peer step whose store shows up with a different peer id can never finish: the operator
 * is canceled instead of being resent forever. */
static void test_operator_impossible_step_canceled(void **state)
{
    struct pd_mock *m = *state;
    pd_mock_add_store(m, 2);
    assert_int_equal(pd_mock_region_hb(m, 10, "", "", 2, 1, 1, 1, S1, 1), PD_OK);
    assert_int_equal(pd_cluster_add_add_peer(m->c, 10, 2), PD_OK);
    static const uint64_t s12[] = {1, 2};
    assert_int_equal(pd_mock_region_hb(m, 10, "", "", 2, 2, 1, 1, s12, 2), PD_OK);
    struct pd_operator op;
    assert_int_equal(pd_cluster_get_operator(m->c, 10, &op), PD_ERR_NOT_FOUND);
    assert_int_equal(pd_cluster_remove_operator(m->c, 10), PD_ERR_NOT_FOUND);
    enum pd_operator_status status;
    assert_int_equal(pd_cluster_get_operator_status(m->c, 10, &op, &status), PD_OK);
    assert_int_equal(status, PD_OP_CANCEL);
}

/* ---- replica checker ---- */

/* A region short of max-replicas gets a peer on the up store with the fewest regions; the next
 * one goes to the next emptiest store once the first is in place. */
static void test_replica_checker_make_up(void **state)
{
    struct pd_mock *m = *state;
    for (uint64_t s = 2; s <= 4; s++)
        pd_mock_add_store(m, s);
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "b", 2, 1, 1, 1, S1, 1), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 20, "b", "c", 2, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 21, "c", "d", 2, 1, 1, 1, S124, 3), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 22, "d", "e", 2, 1, 1, 1, S123, 3), PD_OK);
    /* region counts: s1 4, s2 3, s3 2, s4 1 */
    assert_int_equal(run(m, "replica-checker"), 1);
    struct pd_operator op;
    get_op(m, 10, &op);
    assert_string_equal(op.name, "make-up-replica");
    assert_int_equal(op.step_count, 1);
    assert_step(&op.steps[0], PD_STEP_ADD_PEER, 4);
    assert_int_equal(run(m, "replica-checker"), 0); /* one operator per region */
    /* The store applies it. */
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, 10, "a", "b", 2, 2, 1, 1, S1, 1);
    pd_region_add_peer(&r, op.steps[0].peer_id, 4);
    bool has;
    struct pd_step step;
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, &step, &has), PD_OK);
    assert_false(has);
    assert_int_equal(run(m, "replica-checker"), 1);
    get_op(m, 10, &op);
    assert_step(&op.steps[0], PD_STEP_ADD_PEER, 3);
    pd_region_clear(&r);
}

/* Peers on a store down past max-store-down-time are replaced: add on a healthy store, then
 * remove the down one. */
static void test_replica_checker_down_store(void **state)
{
    struct pd_mock *m = *state;
    for (uint64_t s = 2; s <= 4; s++)
        pd_mock_add_store(m, s);
    assert_int_equal(pd_mock_region_hb(m, 20, "b", "c", 2, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 21, "c", "d", 2, 1, 1, 1, S124, 3), PD_OK);
    assert_int_equal(run(m, "replica-checker"), 0);
    static const uint64_t alive[] = {1, 2, 4};
    advance(m, 20 * 60 * 1000, alive, 3);
    assert_int_equal(run(m, "replica-checker"), 0); /* disconnected but not yet down */
    advance(m, 11 * 60 * 1000, alive, 3);
    assert_int_equal(run(m, "replica-checker"), 1);
    struct pd_operator op;
    get_op(m, 20, &op);
    assert_string_equal(op.name, "replace-down-replica");
    assert_int_equal(op.step_count, 2);
    assert_step(&op.steps[0], PD_STEP_ADD_PEER, 4);
    assert_step(&op.steps[1], PD_STEP_REMOVE_PEER, 3);
}

/* An operator adding a peer on a store that then goes down can never finish: the next round
 * cancels it (it is not left to hold the region for the operator timeout), and the replica
 * checker replaces the region's peers on that store in the same round. */
static void test_operator_to_down_store_canceled(void **state)
{
    struct pd_mock *m = *state;
    for (uint64_t s = 2; s <= 5; s++)
        pd_mock_add_store(m, s);
    assert_int_equal(pd_mock_region_hb(m, 20, "b", "c", 2, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 21, "c", "d", 2, 1, 1, 1, S124, 3), PD_OK);
    assert_int_equal(pd_cluster_add_add_peer(m->c, 20, 4), PD_OK);
    static const uint64_t alive[] = {1, 2, 3, 5};
    advance(m, 31 * 60 * 1000, alive, 4);
    struct pd_operator op;
    assert_int_equal(run(m, "replica-checker"), 1);
    enum pd_operator_status status;
    /* Region 20 lost its add-peer on store 4 and has nothing left to fix; region 21 has its
     * peer on store 4 replaced. */
    assert_int_equal(pd_cluster_get_operator_status(m->c, 20, &op, &status), PD_OK);
    assert_int_equal(status, PD_OP_CANCEL);
    assert_string_equal(op.name, "admin-add-peer");
    get_op(m, 21, &op);
    assert_string_equal(op.name, "replace-down-replica");
    assert_step(&op.steps[0], PD_STEP_ADD_PEER, 5); /* the store holding fewest regions */
}

/* Peers on an offline store are replaced, moving the leadership first when the leader is
 * there; an offline store left without regions turns tombstone at the next tick. */
static void test_replica_checker_offline_store(void **state)
{
    struct pd_mock *m = *state;
    for (uint64_t s = 2; s <= 4; s++)
        pd_mock_add_store(m, s);
    assert_int_equal(pd_mock_region_hb(m, 20, "b", "c", 2, 1, 1, 2, S123, 3), PD_OK);
    assert_int_equal(pd_cluster_set_store_state(m->c, 2, PD_STORE_OFFLINE, false), PD_OK);
    assert_int_equal(run(m, "replica-checker"), 1);
    struct pd_operator op;
    get_op(m, 20, &op);
    assert_string_equal(op.name, "replace-offline-replica");
    assert_int_equal(op.step_count, 3);
    assert_step(&op.steps[0], PD_STEP_ADD_PEER, 4);
    assert_step(&op.steps[1], PD_STEP_TRANSFER_LEADER, 4);
    assert_step(&op.steps[2], PD_STEP_REMOVE_PEER, 2);
    /* Done: the region now lives on 1, 3, 4. */
    static const uint64_t s134[] = {1, 3, 4};
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, 20, "b", "c", 2, 3, 1, 4, s134, 3);
    r.peers[2].id = op.steps[0].peer_id;
    r.leader = r.peers[2];
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, NULL, NULL), PD_OK);
    pd_region_clear(&r);
    assert_int_equal(pd_cluster_tick(m->c, NULL), PD_OK);
    struct pd_store_info si;
    assert_int_equal(pd_cluster_get_store(m->c, 2, &si), PD_OK);
    assert_int_equal(si.store.state, PD_STORE_TOMBSTONE);
}

/* A region with more peers than max-replicas loses one follower on the busiest store. */
static void test_replica_checker_extra_peer(void **state)
{
    struct pd_mock *m = *state;
    for (uint64_t s = 2; s <= 4; s++)
        pd_mock_add_store(m, s);
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "b", 2, 1, 1, 1, S1234, 4), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 11, "b", "c", 2, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 12, "c", "d", 2, 1, 1, 1, S123, 3), PD_OK);
    static const uint64_t s13[] = {1, 3};
    assert_int_equal(pd_mock_region_hb(m, 13, "d", "e", 2, 1, 1, 1, s13, 2), PD_OK);
    set_max_replicas(m, 2);
    /* counts: s1 4 (leader everywhere), s2 3, s3 4, s4 1 -> region 10 drops s3; 11/12 too */
    assert_true(run(m, "replica-checker") >= 1);
    struct pd_operator op;
    get_op(m, 10, &op);
    assert_string_equal(op.name, "remove-extra-replica");
    assert_int_equal(op.step_count, 1);
    assert_step(&op.steps[0], PD_STEP_REMOVE_PEER, 3);
    assert_int_equal(pd_cluster_get_operator(m->c, 13, &op), PD_ERR_NOT_FOUND);
}

/* ---- balance-region (TinyKV 3C rules) ---- */

/* One replica: the store with the biggest region size gives a region (with its leader) to the
 * smallest suitable store; offline stores are skipped as targets; regions short of
 * max-replicas are left alone. */
static void test_balance_region_one_replica(void **state)
{
    struct pd_mock *m = *state;
    for (uint64_t s = 2; s <= 4; s++)
        pd_mock_add_store(m, s);
    set_max_replicas(m, 1);
    filler(m, 101, 1, 60);
    filler(m, 102, 2, 70);
    filler(m, 103, 3, 80);
    filler(m, 104, 4, 150);
    static const uint64_t s4[] = {4};
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "b", 2, 1, 10, 4, s4, 1), PD_OK);
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_REGION), 1);
    struct pd_operator *ops;
    size_t n;
    assert_int_equal(pd_cluster_get_operators(m->c, &ops, &n), PD_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ops[0].name, "balance-region");
    assert_int_equal(ops[0].step_count, 3);
    assert_step(&ops[0].steps[0], PD_STEP_ADD_PEER, 1);
    assert_step(&ops[0].steps[1], PD_STEP_TRANSFER_LEADER, 1);
    assert_step(&ops[0].steps[2], PD_STEP_REMOVE_PEER, 4);
    assert_int_equal(pd_cluster_remove_operator(m->c, ops[0].region_id), PD_OK);
    free(ops);

    assert_int_equal(pd_cluster_set_store_state(m->c, 1, PD_STORE_OFFLINE, false), PD_OK);
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_REGION), 1);
    assert_int_equal(pd_cluster_get_operators(m->c, &ops, &n), PD_OK);
    assert_int_equal(n, 1);
    assert_step(&ops[0].steps[0], PD_STEP_ADD_PEER, 2);
    assert_step(&ops[0].steps[2], PD_STEP_REMOVE_PEER, 4);
    assert_int_equal(pd_cluster_remove_operator(m->c, ops[0].region_id), PD_OK);
    free(ops);

    set_max_replicas(m, 3);
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_REGION), 0);
    set_max_replicas(m, 1);
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_REGION), 1);
}

/* Three replicas: nothing moves while every store holds the region; a new empty store takes a
 * peer from the biggest store (leader moved first); a down store is never a target. */
static void test_balance_region_three_replicas(void **state)
{
    struct pd_mock *m = *state;
    pd_mock_add_store(m, 2);
    pd_mock_add_store(m, 3);
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "b", 2, 1, 10, 1, S123, 3), PD_OK);
    filler(m, 101, 1, 150);
    filler(m, 102, 2, 140);
    filler(m, 103, 3, 130);
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_REGION), 0);
    pd_mock_add_store(m, 4);
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_REGION), 1);
    struct pd_operator op;
    get_op(m, 10, &op);
    assert_int_equal(op.step_count, 3);
    assert_step(&op.steps[0], PD_STEP_ADD_PEER, 4);
    assert_step(&op.steps[1], PD_STEP_TRANSFER_LEADER, 4);
    assert_step(&op.steps[2], PD_STEP_REMOVE_PEER, 1);
    assert_int_equal(pd_cluster_remove_operator(m->c, 10), PD_OK);

    static const uint64_t alive[] = {1, 2, 3};
    advance(m, 31 * 60 * 1000, alive, 3);
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_REGION), 0);
    pd_mock_heartbeat_store(m, 4);
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_REGION), 1);
}

/* The move happens only when the size gap exceeds twice the region's size. */
static void test_balance_region_size_gap(void **state)
{
    struct pd_mock *m = *state;
    for (uint64_t s = 2; s <= 4; s++)
        pd_mock_add_store(m, s);
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "b", 2, 1, 100, 1, S123, 3), PD_OK);
    filler(m, 101, 1, 50); /* s1 150, s2 100, s3 100, s4 0: gap 150 <= 200 */
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_REGION), 0);
    filler(m, 102, 1, 51); /* s1 201: gap 201 > 200 */
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_REGION), 1);
    struct pd_operator op;
    get_op(m, 10, &op);
    assert_step(&op.steps[op.step_count - 1], PD_STEP_REMOVE_PEER, 1);
}

/* Five replicas: a follower on the biggest store moves to the empty store without touching the
 * leader, and a region whose peer there is pending is chosen before the others (a limit of one
 * operator shows which goes first). */
static void test_balance_region_five_replicas(void **state)
{
    struct pd_mock *m = *state;
    for (uint64_t s = 2; s <= 6; s++)
        pd_mock_add_store(m, s);
    set_max_replicas(m, 5);
    struct pd_config cfg;
    pd_cluster_get_config(m->c, &cfg);
    cfg.region_schedule_limit = 1; /* one move per run, so the test sees which comes first */
    assert_int_equal(pd_cluster_put_config(m->c, &cfg), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "b", 2, 1, 10, 1, S12345, 5), PD_OK);
    filler(m, 102, 2, 100);
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_REGION), 1);
    struct pd_operator op;
    get_op(m, 10, &op);
    assert_int_equal(op.step_count, 2);
    assert_step(&op.steps[0], PD_STEP_ADD_PEER, 6);
    assert_step(&op.steps[1], PD_STEP_REMOVE_PEER, 2);
    assert_int_equal(pd_cluster_remove_operator(m->c, 10), PD_OK);

    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, 11, "b", "c", 2, 1, 10, 1, S12345, 5);
    r.pending_peers[0] = r.peers[1]; /* the peer on store 2 */
    r.pending_peer_count = 1;
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, NULL, NULL), PD_OK);
    pd_region_clear(&r);
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_REGION), 1);
    assert_int_equal(pd_cluster_get_operator(m->c, 10, &op), PD_ERR_NOT_FOUND);
    get_op(m, 11, &op);
    assert_step(&op.steps[op.step_count - 1], PD_STEP_REMOVE_PEER, 2);
}

/* ---- balance-leader ---- */

/* Leaders move from the store leading most to the follower stores leading least, several in
 * one run (counting the transfers in flight), until the counts differ by at most one;
 * disconnected stores receive none. */
static void test_balance_leader(void **state)
{
    struct pd_mock *m = *state;
    pd_mock_add_store(m, 2);
    pd_mock_add_store(m, 3);
    const char *keys[] = {"a", "b", "c", "d", ""};
    for (int i = 0; i < 4; i++)
        assert_int_equal(
            pd_mock_region_hb(m, 10 + (uint64_t)i, keys[i], keys[i + 1], 2, 1, 1, 1, S123, 3),
            PD_OK);
    /* 4/0/0 -> 2/1/1 in one run */
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_LEADER), 2);
    struct pd_operator *ops;
    size_t n;
    assert_int_equal(pd_cluster_get_operators(m->c, &ops, &n), PD_OK);
    assert_int_equal(n, 2);
    assert_string_equal(ops[0].name, "balance-leader");
    assert_int_equal(ops[0].step_count, 1);
    assert_int_equal(ops[0].steps[0].kind, PD_STEP_TRANSFER_LEADER);
    assert_int_equal(ops[0].steps[0].store_id + ops[1].steps[0].store_id, 2 + 3);
    for (size_t i = 0; i < n; i++)
        pd_cluster_remove_operator(m->c, ops[i].region_id);
    free(ops);
    /* Store 3 disconnected: only store 2 may receive: 4/0 -> 2/2. */
    static const uint64_t alive[] = {1, 2};
    advance(m, 21 * 1000, alive, 2);
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_LEADER), 2);
    assert_int_equal(run(m, PD_SCHEDULER_BALANCE_LEADER), 0);
    assert_int_equal(pd_cluster_get_operators(m->c, &ops, &n), PD_OK);
    assert_int_equal(n, 2);
    assert_step(&ops[0].steps[0], PD_STEP_TRANSFER_LEADER, 2);
    assert_step(&ops[1].steps[0], PD_STEP_TRANSFER_LEADER, 2);
    free(ops);
}

/* Scatter moves a peer from the region's busiest store to the emptiest store not holding it,
 * and does nothing when the region is already spread out. */
static void test_scatter_region(void **state)
{
    struct pd_mock *m = *state;
    for (uint64_t s = 2; s <= 4; s++)
        pd_mock_add_store(m, s);
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "b", 2, 1, 1, 2, S123, 3), PD_OK);
    filler(m, 101, 1, 1);
    filler(m, 102, 1, 1);
    assert_int_equal(pd_cluster_scatter_region(m->c, 10), PD_OK);
    struct pd_operator op;
    get_op(m, 10, &op);
    assert_string_equal(op.name, "scatter-region");
    assert_step(&op.steps[0], PD_STEP_ADD_PEER, 4);
    assert_step(&op.steps[op.step_count - 1], PD_STEP_REMOVE_PEER, 1);
    assert_int_equal(pd_cluster_scatter_region(m->c, 10), PD_ERR_EXISTS);
    assert_int_equal(pd_cluster_scatter_region(m->c, 99), PD_ERR_NOT_FOUND);
    /* Region 20 sits on stores 2, 3, 4 (1, 1, 0 regions besides) while store 1 holds 3: no move. */
    static const uint64_t s234[] = {2, 3, 4};
    assert_int_equal(pd_mock_region_hb(m, 20, "b", "c", 2, 1, 1, 2, s234, 3), PD_OK);
    assert_int_equal(pd_cluster_scatter_region(m->c, 20), PD_OK);
    assert_int_equal(pd_cluster_get_operator(m->c, 20, &op), PD_ERR_NOT_FOUND);
}

/* ---- schedulers and the tick ---- */

/* The scheduler set can be listed, shrunk and grown; unknown names and duplicates fail; a
 * removed scheduler no longer runs in the tick. */
static void test_scheduler_set(void **state)
{
    struct pd_mock *m = *state;
    char **names;
    size_t n;
    assert_int_equal(pd_cluster_list_schedulers(m->c, &names, &n), PD_OK);
    assert_int_equal(n, 2);
    pd_names_free(names, n);
    assert_int_equal(pd_cluster_remove_scheduler(m->c, PD_SCHEDULER_BALANCE_LEADER), PD_OK);
    assert_int_equal(pd_cluster_remove_scheduler(m->c, PD_SCHEDULER_BALANCE_LEADER),
                     PD_ERR_NOT_FOUND);
    assert_int_equal(pd_cluster_add_scheduler(m->c, "no-such-scheduler"), PD_ERR_NOT_FOUND);
    assert_int_equal(pd_cluster_add_scheduler(m->c, PD_SCHEDULER_BALANCE_REGION), PD_ERR_EXISTS);
    assert_int_equal(pd_cluster_list_schedulers(m->c, &names, &n), PD_OK);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], PD_SCHEDULER_BALANCE_REGION);
    pd_names_free(names, n);
    size_t made;
    assert_int_equal(pd_cluster_run_scheduler(m->c, "bogus", &made), PD_ERR_NOT_FOUND);

    pd_mock_add_store(m, 2);
    pd_mock_add_store(m, 3);
    static const uint64_t s12[] = {1, 2};
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "b", 2, 1, 1, 1, s12, 2), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 11, "b", "c", 2, 1, 1, 1, s12, 2), PD_OK);
    set_max_replicas(m, 2);
    assert_int_equal(pd_cluster_tick(m->c, &made), PD_OK);
    assert_int_equal(made, 0); /* leaders 2/0 but balance-leader is off */
    assert_int_equal(pd_cluster_add_scheduler(m->c, PD_SCHEDULER_BALANCE_LEADER), PD_OK);
    assert_int_equal(pd_cluster_tick(m->c, &made), PD_OK);
    assert_int_equal(made, 1);
}

/* apply_step plays the store's part: carries out a step on r. */
static void apply_step(struct pd_region *r, const struct pd_step *s)
{
    switch (s->kind) {
    case PD_STEP_ADD_PEER:
        pd_region_add_peer(r, s->peer_id, s->store_id);
        r->epoch.conf_ver++;
        break;
    case PD_STEP_REMOVE_PEER:
        for (size_t i = 0; i < r->peer_count; i++) {
            if (r->peers[i].store_id == s->store_id) {
                r->peers[i] = r->peers[--r->peer_count];
                break;
            }
        }
        r->epoch.conf_ver++;
        break;
    case PD_STEP_TRANSFER_LEADER:
        r->leader = *pd_region_store_peer(r, s->store_id);
        break;
    case PD_STEP_SPLIT:
        fail_msg("a split step nobody asked for");
        break;
    }
}

/* End to end: 12 regions all on stores 1-3 led by store 1, stores 4 and 5 empty; ticks plus
 * stores obeying the heartbeat responses converge to balanced leaders and sizes with every
 * region fully replicated. */
static void test_tick_converges(void **state)
{
    struct pd_mock *m = *state;
    enum { N = 12 };
    for (uint64_t s = 2; s <= 5; s++)
        pd_mock_add_store(m, s);
    struct pd_region regions[N];
    for (int i = 0; i < N; i++) {
        char start[8], end[8];
        snprintf(start, sizeof start, "k%02d", i);
        snprintf(end, sizeof end, "k%02d", i + 1);
        pd_region_init(&regions[i]);
        pd_mock_region(&regions[i], 100 + (uint64_t)i, i == 0 ? "" : start, i == N - 1 ? "" : end,
                       2, 1, 10, 1, S123, 3);
    }
    static const uint64_t alive[] = {1, 2, 3, 4, 5};
    for (int round = 0; round < 200; round++) {
        advance(m, 1000, alive, 5);
        assert_int_equal(pd_cluster_tick(m->c, NULL), PD_OK);
        for (int i = 0; i < N; i++) {
            struct pd_step step;
            bool has;
            assert_int_equal(pd_cluster_region_heartbeat(m->c, &regions[i], &step, &has), PD_OK);
            if (has)
                apply_step(&regions[i], &step);
        }
    }
    struct pd_store_info *infos;
    size_t n;
    assert_int_equal(pd_cluster_get_all_stores(m->c, &infos, &n), PD_OK);
    uint64_t minl = UINT64_MAX, maxl = 0, minr = UINT64_MAX, maxr = 0;
    for (size_t i = 0; i < n; i++) {
        print_message(
            "store %llu: %llu regions, %llu leaders\n", (unsigned long long)infos[i].store.id,
            (unsigned long long)infos[i].region_count, (unsigned long long)infos[i].leader_count);
        minl = infos[i].leader_count < minl ? infos[i].leader_count : minl;
        maxl = infos[i].leader_count > maxl ? infos[i].leader_count : maxl;
        minr = infos[i].region_count < minr ? infos[i].region_count : minr;
        maxr = infos[i].region_count > maxr ? infos[i].region_count : maxr;
    }
    free(infos);
    assert_true(maxl - minl <= 1);
    assert_true(maxr - minr <= 2); /* 36 peers over 5 stores, gap rule allows slack */
    for (int i = 0; i < N; i++) {
        assert_int_equal(regions[i].peer_count, 3);
        pd_region_clear(&regions[i]);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_operator_transfer_leader_progress),
        T(test_operator_add_and_remove_peer),
        T(test_operator_remove_leader_peer),
        T(test_operator_timeout),
        T(test_operator_impossible_step_canceled),
        T(test_replica_checker_make_up),
        T(test_replica_checker_down_store),
        T(test_operator_to_down_store_canceled),
        T(test_replica_checker_offline_store),
        T(test_replica_checker_extra_peer),
        T(test_balance_region_one_replica),
        T(test_balance_region_three_replicas),
        T(test_balance_region_size_gap),
        T(test_balance_region_five_replicas),
        T(test_balance_leader),
        T(test_scatter_region),
        T(test_scheduler_set),
        T(test_tick_converges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
