/* test_simulation.c — randomized Raft simulation: lossy, reordering, partitioned network with
 * crashes. */
#include "tests/lib/raft_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define SIM_STEPS 20000
#define HEAL_BOUND_TICKS 400

struct sim_opts {
    bool membership; /* random single-step conf changes */
    bool transfers;  /* random leadership transfers */
};

static uint64_t pick_up_node(struct rh_net *net)
{
    uint64_t ids[RH_MAX_NODES];
    size_t n = 0;
    for (uint64_t id = 1; id < RH_MAX_NODES; id++)
        if (net->nodes[id].up)
            ids[n++] = id;
    return n ? ids[rh_rand(net) % n] : 0;
}

static uint64_t pick_down_node(struct rh_net *net)
{
    uint64_t ids[RH_MAX_NODES];
    size_t n = 0;
    for (uint64_t id = 1; id < RH_MAX_NODES; id++)
        if (net->nodes[id].exists && !net->nodes[id].up)
            ids[n++] = id;
    return n ? ids[rh_rand(net) % n] : 0;
}

static void compact(struct rh_net *net, uint64_t id)
{
    struct rh_node *nd = rh_node(net, id);
    uint64_t first = raft_memory_storage_first_index(nd->ms);
    if (nd->applied < first + 4)
        return;
    uint64_t data = nd->applied;
    if (raft_memory_storage_create_snapshot(nd->ms, nd->applied, NULL, &data, sizeof data) !=
        RAFT_OK)
        return;
    uint64_t upto = nd->applied - rh_rand(net) % 3;
    if (upto >= first)
        raft_memory_storage_compact(nd->ms, upto);
}

static void conf_change(struct rh_net *net, uint64_t leader, uint64_t *next_spare)
{
    struct rh_node *nd = rh_node(net, leader);
    struct raft_status st;
    if (raft_rawnode_status(nd->rn, &st) != RAFT_OK || st.role != RAFT_ROLE_LEADER) {
        raft_status_free(&st);
        return;
    }
    size_t members = st.n_peers;
    bool add = (rh_rand(net) % 2 == 0 && members < 5 && *next_spare < RH_MAX_NODES) || members <= 2;
    uint8_t buf[9];
    if (add && *next_spare < RH_MAX_NODES) {
        uint64_t id = (*next_spare)++;
        rh_node_create(net, id);
        rh_node_restart(net, id);
        rh_conf_encode(RAFT_CONF_ADD_NODE, id, buf);
    } else if (members > 2) {
        uint64_t id = st.peers[rh_rand(net) % members].id;
        rh_conf_encode(RAFT_CONF_REMOVE_NODE, id, buf);
    } else {
        raft_status_free(&st);
        return;
    }
    raft_status_free(&st);
    raft_rawnode_propose_conf_change(nd->rn, buf, sizeof buf);
}

static void transfer(struct rh_net *net, uint64_t leader)
{
    struct rh_node *nd = rh_node(net, leader);
    struct raft_status st;
    if (raft_rawnode_status(nd->rn, &st) != RAFT_OK || st.n_peers == 0) {
        raft_status_free(&st);
        return;
    }
    uint64_t to = st.peers[rh_rand(net) % st.n_peers].id;
    raft_status_free(&st);
    raft_rawnode_transfer_leader(nd->rn, to);
}

static void partition(struct rh_net *net)
{
    switch (rh_rand(net) % 3) {
    case 0:
        rh_net_isolate(net, 1 + rh_rand(net) % (RH_MAX_NODES - 1));
        break;
    case 1: {
        /* split the nodes into two random halves */
        bool side[RH_MAX_NODES];
        for (int i = 1; i < RH_MAX_NODES; i++)
            side[i] = rh_rand(net) % 2;
        for (int i = 1; i < RH_MAX_NODES; i++)
            for (int j = 1; j < RH_MAX_NODES; j++)
                if (side[i] != side[j])
                    net->cut[i][j] = true;
        break;
    }
    default:
        rh_net_cut(net, 1 + rh_rand(net) % (RH_MAX_NODES - 1),
                   1 + rh_rand(net) % (RH_MAX_NODES - 1));
    }
}

static void set_loss(struct rh_net *net, double rate)
{
    for (int i = 1; i < RH_MAX_NODES; i++)
        for (int j = 1; j < RH_MAX_NODES; j++)
            net->drop[i][j] = rate;
}

/* Runs one seed; returns an empty string on success or the failure. */
static void run_seed(uint64_t seed, const struct sim_opts *opts, bool verbose, char *fail,
                     size_t fail_len)
{
    struct rh_net net;
    struct rh_config cfg;
    rh_config_default(&cfg);
    uint64_t r = seed * 0x9E3779B97F4A7C15ULL + 1;
    cfg.seed = seed;
    cfg.n = (r >> 7) % 2 ? 5 : 3;
    cfg.pre_vote = (int)((r >> 9) % 2);
    cfg.check_quorum = (int)((r >> 10) % 2);
    cfg.election_ticks = 5 + (int)((r >> 20) % 11);
    cfg.heartbeat_ticks = 1 + (int)((r >> 24) % 3);
    cfg.max_size_per_msg = (r >> 11) % 2 ? 64 : UINT64_MAX;
    cfg.max_entries_per_msg = (r >> 12) % 4;
    cfg.max_inflight_msgs = 1 + (int)((r >> 14) % 8);
    cfg.bootstrap_snapshot = true;
    cfg.verbose = verbose;
    rh_net_init(&net, &cfg);
    double loss = (double)((r >> 28) % 4) * 0.07; /* 0%, 7%, 14% or 21% */
    net.dup_rate = 0.03;
    net.crash_after_persist = 0.002;
    set_loss(&net, loss);
    uint64_t next_spare = (uint64_t)cfg.n + 1;
    int proposals = 0;
    fail[0] = '\0';

    for (int step = 0; step < SIM_STEPS && net.violation[0] == '\0'; step++) {
        unsigned a = (unsigned)(rh_rand(&net) % 1000);
        uint64_t id;
        char data[64];
        if (a < 330) {
            if ((id = pick_up_node(&net)))
                rh_tick(&net, id);
        } else if (a < 800) {
            rh_net_deliver_one(&net);
        } else if (a < 830) {
            if ((id = pick_up_node(&net)))
                rh_read_index(&net, id);
        } else if (a < 880) {
            if ((id = pick_up_node(&net))) {
                snprintf(data, sizeof data, "s%llu-p%d", (unsigned long long)seed, proposals++);
                raft_rawnode_propose(rh_node(&net, id)->rn, data, strlen(data));
            }
        } else if (a < 895) {
            if ((id = pick_up_node(&net)))
                rh_node_crash(&net, id);
        } else if (a < 925) {
            if ((id = pick_down_node(&net)))
                rh_node_restart(&net, id);
        } else if (a < 937) {
            partition(&net);
        } else if (a < 955) {
            rh_net_recover(&net);
            set_loss(&net, loss);
        } else if (a < 975) {
            if ((id = pick_up_node(&net)))
                compact(&net, id);
        } else if (a < 985) {
            if (opts->membership && (id = rh_leader(&net)))
                conf_change(&net, id, &next_spare);
        } else if (a < 995) {
            if (opts->transfers && (id = rh_leader(&net)))
                transfer(&net, id);
        } else {
            if ((id = pick_up_node(&net)))
                raft_memory_storage_set_snapshot_unavailable(rh_node(&net, id)->ms, 2);
        }
        rh_net_flush(&net);
        if (net.n_q > 2000) {
            rh_net_deliver_one(&net);
        }
    }
    if (net.violation[0] != '\0') {
        snprintf(fail, fail_len, "%s", net.violation);
        rh_net_close(&net);
        return;
    }

    /* Heal: everyone up, no loss, no partitions; a new proposal must commit. */
    rh_net_recover(&net);
    net.dup_rate = 0;
    net.crash_after_persist = 0;
    for (uint64_t id = 1; id < RH_MAX_NODES; id++)
        if (net.nodes[id].exists && !net.nodes[id].up)
            rh_node_restart(&net, id);
    char final[64];
    snprintf(final, sizeof final, "final-%llu", (unsigned long long)seed);
    bool done = false;
    int t;
    for (t = 0; t < HEAL_BOUND_TICKS && !done && net.violation[0] == '\0'; t++) {
        rh_tick_all(&net, 1);
        if (t % 5 == 0) {
            for (uint64_t id = 1; id < RH_MAX_NODES; id++) {
                struct rh_node *nd = rh_node(&net, id);
                if (nd->up && nd->last_role == RAFT_ROLE_LEADER)
                    raft_rawnode_propose(nd->rn, final, strlen(final));
            }
            rh_net_drain(&net);
        }
        for (uint64_t id = 1; id < RH_MAX_NODES; id++)
            if (net.nodes[id].exists && rh_applied_data(&net, id, final))
                done = true;
    }
    /* Then every member of the leader's configuration catches up to it. */
    bool converged = false;
    uint64_t final_index = 0;
    for (uint64_t id = 1; id < RH_MAX_NODES && done; id++) {
        struct rh_node *nd = rh_node(&net, id);
        for (size_t i = 0; i < nd->n_log; i++)
            if (nd->log[i].data_len == strlen(final) &&
                memcmp(nd->log[i].data, final, strlen(final)) == 0)
                final_index = nd->log[i].index;
    }
    for (int k = 0; done && !converged && k < HEAL_BOUND_TICKS && net.violation[0] == '\0'; k++) {
        uint64_t lead = rh_leader(&net);
        if (lead != 0) {
            struct raft_status st;
            if (raft_rawnode_status(rh_node(&net, lead)->rn, &st) != RAFT_OK)
                abort();
            converged = true;
            for (size_t i = 0; i < st.n_peers; i++)
                if (rh_node(&net, st.peers[i].id)->applied < final_index)
                    converged = false;
            raft_status_free(&st);
        }
        if (!converged)
            rh_tick_all(&net, 1);
    }
    if (verbose) {
        for (uint64_t id = 1; id < RH_MAX_NODES; id++) {
            struct rh_node *nd = rh_node(&net, id);
            if (!nd->up)
                continue;
            struct raft_status st;
            raft_rawnode_status(nd->rn, &st);
            fprintf(stderr,
                    "node %llu: role %d term %llu lead %llu commit %llu applied %llu last %llu\n",
                    (unsigned long long)id, st.role, (unsigned long long)st.hard_state.term,
                    (unsigned long long)st.lead, (unsigned long long)st.hard_state.commit,
                    (unsigned long long)st.applied, (unsigned long long)st.last_index);
            for (size_t i = 0; i < st.n_peers; i++)
                fprintf(stderr, "  peer %llu match %llu next %llu state %d pending %llu\n",
                        (unsigned long long)st.peers[i].id, (unsigned long long)st.peers[i].match,
                        (unsigned long long)st.peers[i].next, st.peers[i].state,
                        (unsigned long long)st.peers[i].pending_snapshot);
            raft_status_free(&st);
        }
        size_t leaders = 0;
        for (size_t i = 0; i < net.n_leader_of_term; i++)
            leaders += net.leader_of_term[i] != 0;
        fprintf(stderr,
                "seed %llu: committed up to %llu, %zu leaders, %llu messages, %llu reads, heal %d "
                "ticks\n",
                (unsigned long long)seed, (unsigned long long)net.max_committed, leaders,
                (unsigned long long)net.msgs_delivered, (unsigned long long)net.reads_done, t);
    }
    if (net.violation[0] != '\0')
        snprintf(fail, fail_len, "%s", net.violation);
    else if (!done)
        snprintf(fail, fail_len, "no progress within %d ticks after healing", HEAL_BOUND_TICKS);
    else if (!converged)
        snprintf(fail, fail_len, "members did not all reach index %llu after healing",
                 (unsigned long long)final_index);
    rh_net_close(&net);
}

static void run_many(const struct sim_opts *opts, uint64_t base, uint64_t default_seeds)
{
    const char *one = getenv("RAFT_SEED");
    const char *soak = getenv("RAFT_SOAK_SEEDS");
    uint64_t first = base, count = default_seeds;
    bool verbose = getenv("RAFT_SIM_VERBOSE") != NULL;
    if (one != NULL) {
        first = strtoull(one, NULL, 10);
        count = 1;
    } else if (soak != NULL) {
        count = strtoull(soak, NULL, 10);
    }
    char fail[600];
    clock_t start = clock();
    for (uint64_t s = first; s < first + count; s++) {
        run_seed(s, opts, verbose, fail, sizeof fail);
        if (fail[0] != '\0') {
            print_message("simulation FAILED at seed %llu (re-run with RAFT_SEED=%llu): %s\n",
                          (unsigned long long)s, (unsigned long long)s, fail);
            fail_msg("seed %llu: %s", (unsigned long long)s, fail);
        }
    }
    print_message("simulation: seeds %llu..%llu passed in %.1fs\n", (unsigned long long)first,
                  (unsigned long long)(first + count - 1),
                  (double)(clock() - start) / CLOCKS_PER_SEC);
}

/* 3- and 5-node clusters under loss, duplication, reordering, partitions, crashes and compaction
 * keep every safety property and make progress once healed. */
static void test_sim_faults(void **state)
{
    (void)state;
    struct sim_opts o = {0};
    run_many(&o, 1, 1000);
}

/* As above, with random single-step membership changes and leadership transfers mixed in. */
static void test_sim_membership_transfer(void **state)
{
    (void)state;
    struct sim_opts o = {.membership = true, .transfers = true};
    run_many(&o, 1000001, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_faults),
        cmocka_unit_test(test_sim_membership_transfer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
