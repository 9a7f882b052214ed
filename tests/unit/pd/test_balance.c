/* test_balance.c — the schedulers with many regions: TinyKV 3C scenarios, convergence on five
 * stores with hundreds of regions, the limits, stale operators, offline and down stores. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "pd/pd.h"
#include "proto/log.h"
#include "tests/lib/pd_mock.h"

static int setup(void **state)
{
    log_current_level = LOG_ERROR;
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

static void set_config(struct pd_mock *m, uint64_t max_replicas, uint64_t leader_limit,
                       uint64_t region_limit)
{
    struct pd_config cfg;
    pd_cluster_get_config(m->c, &cfg);
    cfg.max_replicas = max_replicas;
    cfg.leader_schedule_limit = leader_limit;
    cfg.region_schedule_limit = region_limit;
    assert_int_equal(pd_cluster_put_config(m->c, &cfg), PD_OK);
}

/* ---- TinyKV 3C balance-region scenarios (scheduler/server/schedulers/balance_test.go) ----
 *
 * TinyKV's mock gives a store "region count" N as N regions of 10 MiB; here one filler region
 * of N * 10 MiB led by the store, outside the scenario's keys, stands for them. A filler is
 * never worth moving (its size exceeds any gap), and with max-replicas above 1 it is short of
 * replicas anyway, so only the scenario's regions (1 MiB) are candidates. The limit is 1 so a
 * run makes the one operator TinyKV's Schedule returns. */

static void store_score(struct pd_mock *m, uint64_t store, uint64_t units)
{
    char start[32], end[32];
    snprintf(start, sizeof start, "z%05llu", (unsigned long long)store);
    snprintf(end, sizeof end, "z%05llu~", (unsigned long long)store);
    uint64_t stores[1] = {store};
    assert_int_equal(
        pd_mock_region_hb(m, 9000 + store, start, end, 2, 1, units * 10 + 1, store, stores, 1),
        PD_OK);
}

static void add_store(struct pd_mock *m, uint64_t store, uint64_t units)
{
    if (store != 1)
        pd_mock_add_store(m, store);
    store_score(m, store, units);
}

static uint64_t conf_ver_of(struct pd_mock *m, uint64_t id)
{
    struct pd_region r;
    pd_region_init(&r);
    uint64_t v = 1;
    if (pd_cluster_get_region_by_id(m->c, id, &r) == PD_OK)
        v = r.epoch.conf_ver;
    pd_region_clear(&r);
    return v;
}

/* leader_region puts region id (1 MiB) on stores (leader first), as TinyKV's AddLeaderRegion. */
static void leader_region(struct pd_mock *m, uint64_t id, const uint64_t *stores, size_t n)
{
    char start[16], end[16];
    snprintf(start, sizeof start, "r%03llu", (unsigned long long)id);
    snprintf(end, sizeof end, "r%03llu~", (unsigned long long)id);
    uint64_t cv = conf_ver_of(m, id) + 1;
    assert_int_equal(pd_mock_region_hb(m, id, start, end, 2, cv, 1, stores[0], stores, n), PD_OK);
}

/* expect_none: the balance-region scheduler makes nothing. */
static void expect_none(struct pd_mock *m)
{
    size_t n = 99;
    assert_int_equal(pd_cluster_run_scheduler(m->c, PD_SCHEDULER_BALANCE_REGION, &n), PD_OK);
    assert_int_equal(n, 0);
}

/* expect_move: one balance-region operator, for region, adding a peer on to and removing the one
 * on from (with a leader transfer first when from leads); removed again afterwards, since
 * TinyKV's Schedule only returns its operator. */
static void expect_move(struct pd_mock *m, uint64_t region, uint64_t from, uint64_t to)
{
    size_t n = 99;
    assert_int_equal(pd_cluster_run_scheduler(m->c, PD_SCHEDULER_BALANCE_REGION, &n), PD_OK);
    assert_int_equal(n, 1);
    struct pd_operator op;
    assert_int_equal(pd_cluster_get_operator(m->c, region, &op), PD_OK);
    assert_string_equal(op.name, "balance-region");
    assert_int_equal(op.steps[0].kind, PD_STEP_ADD_PEER);
    assert_int_equal(op.steps[0].store_id, to);
    assert_int_equal(op.steps[op.step_count - 1].kind, PD_STEP_REMOVE_PEER);
    assert_int_equal(op.steps[op.step_count - 1].store_id, from);
    assert_int_equal(pd_cluster_remove_operator(m->c, region), PD_OK);
}

/* set_down: every store but the ones in down[] heartbeats while the clock passes
 * max-store-down-time. */
static void set_down(struct pd_mock *m, const uint64_t *down, size_t nd, uint64_t last_store)
{
    m->now_ms += 31 * 60 * 1000;
    for (uint64_t s = 1; s <= last_store; s++) {
        bool is_down = false;
        for (size_t i = 0; i < nd; i++)
            is_down |= down[i] == s;
        struct pd_store_info si;
        if (!is_down && pd_cluster_get_store(m->c, s, &si) == PD_OK)
            pd_mock_heartbeat_store(m, s);
    }
}

/* TestBalance (Replicas1): with one replica the biggest store gives its region, leader and all,
 * to the smallest; an offline store is no target; max-replicas 3 leaves the region alone. */
static void test_3c_replicas1(void **state)
{
    struct pd_mock *m = *state;
    set_config(m, 1, 4, 1);
    add_store(m, 1, 6);
    add_store(m, 2, 8);
    add_store(m, 3, 8);
    add_store(m, 4, 16);
    static const uint64_t s4[] = {4};
    leader_region(m, 1, s4, 1);
    expect_move(m, 1, 4, 1);
    struct pd_operator *ops;
    assert_int_equal(pd_cluster_set_store_state(m->c, 1, PD_STORE_OFFLINE, false), PD_OK);
    store_score(m, 2, 6);
    expect_move(m, 1, 4, 2);
    set_config(m, 3, 4, 1);
    expect_none(m);
    set_config(m, 1, 4, 1);
    size_t n = 0;
    assert_int_equal(pd_cluster_run_scheduler(m->c, PD_SCHEDULER_BALANCE_REGION, &n), PD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(pd_cluster_get_operators(m->c, &ops, &n), PD_OK);
    assert_int_equal(n, 1);
    free(ops);
}

/* TestReplicas3: the biggest store's peer goes to the smallest store not holding the region;
 * down stores are never targets; with no smaller store left nothing moves. */
static void test_3c_replicas3(void **state)
{
    struct pd_mock *m = *state;
    set_config(m, 3, 4, 1);
    add_store(m, 1, 16);
    add_store(m, 2, 15);
    add_store(m, 3, 14);
    static const uint64_t r123[] = {1, 2, 3};
    leader_region(m, 1, r123, 3);
    expect_none(m); /* no store to move to */
    add_store(m, 4, 2);
    expect_move(m, 1, 1, 4);
    add_store(m, 5, 1);
    expect_move(m, 1, 1, 5);
    add_store(m, 6, 0);
    expect_move(m, 1, 1, 6);
    static const uint64_t d6[] = {6};
    set_down(m, d6, 1, 6);
    expect_move(m, 1, 1, 5);
    static const uint64_t d456[] = {4, 5, 6};
    set_down(m, d456, 3, 6);
    add_store(m, 7, 20);
    expect_none(m);
}

/* TestReplicas5: five replicas; the biggest store's peer moves to the smallest store outside the
 * region, whichever stores the region spans. */
static void test_3c_replicas5(void **state)
{
    struct pd_mock *m = *state;
    set_config(m, 5, 4, 1);
    add_store(m, 1, 4);
    add_store(m, 2, 5);
    add_store(m, 3, 6);
    add_store(m, 4, 7);
    add_store(m, 5, 28);
    static const uint64_t r12345[] = {1, 2, 3, 4, 5};
    leader_region(m, 1, r12345, 5);
    add_store(m, 6, 1);
    expect_move(m, 1, 5, 6);
    add_store(m, 7, 5);
    expect_move(m, 1, 5, 6);
    static const uint64_t r23456[] = {2, 3, 4, 5, 6};
    leader_region(m, 1, r23456, 5);
    expect_move(m, 1, 5, 1);
    add_store(m, 11, 29);
    add_store(m, 12, 8);
    add_store(m, 13, 7);
    static const uint64_t r2311[] = {2, 3, 11, 12, 13};
    leader_region(m, 1, r2311, 5);
    expect_move(m, 1, 11, 6);
}

/* TestReplacePendingRegion: of the biggest store's regions, the one whose peer there is pending
 * moves first. */
static void test_3c_replace_pending_region(void **state)
{
    struct pd_mock *m = *state;
    set_config(m, 3, 4, 1);
    add_store(m, 1, 16);
    add_store(m, 2, 7);
    add_store(m, 3, 15);
    add_store(m, 4, 10);
    static const uint64_t r123[] = {1, 2, 3}, r213[] = {2, 1, 3};
    leader_region(m, 1, r123, 3);
    leader_region(m, 2, r123, 3);
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, 3, "r003", "r003~", 2, 2, 1, 2, r213, 3);
    r.pending_peers[0] = *pd_region_store_peer(&r, 1);
    r.pending_peer_count = 1;
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, NULL, NULL), PD_OK);
    pd_region_clear(&r);
    expect_move(m, 3, 1, 4);
}

/* ---- a simulated cluster of many regions ---- */

#define SIM_MAX_REGIONS 2000

struct sim {
    struct pd_mock *m;
    size_t n;
    struct pd_region *r;   /* the stores' view of each region */
    uint64_t *pending;     /* peer id added and still catching up, 0 = none */
    int *pending_age;      /* rounds before it has caught up */
    uint64_t dead;         /* a store that stopped, 0 = none */
    size_t max_created;    /* most operators one tick created */
    size_t ops_by_kind[6]; /* peak of running operators of each kind after a tick */
    uint64_t peak_pending; /* most pending peers one store had after a round */
};

/* sim_init makes n regions on stores[0..nstores) led by the first, or, with nstores 0, spread
 * round-robin over stores 1-5. */
static void sim_init(struct sim *s, struct pd_mock *m, size_t n, const uint64_t *stores,
                     size_t nstores, unsigned seed)
{
    memset(s, 0, sizeof *s);
    s->m = m;
    s->n = n;
    s->r = calloc(n, sizeof *s->r);
    s->pending = calloc(n, sizeof *s->pending);
    s->pending_age = calloc(n, sizeof *s->pending_age);
    srand(seed);
    for (size_t i = 0; i < n; i++) {
        char start[16], end[16];
        snprintf(start, sizeof start, "k%05zu", i);
        snprintf(end, sizeof end, "k%05zu", i + 1);
        pd_region_init(&s->r[i]);
        /* sizes 0..8 MiB: an empty region counts as 1 MiB */
        uint64_t rr[3] = {1 + i % 5, 1 + (i + 1) % 5, 1 + (i + 2) % 5};
        const uint64_t *on = nstores ? stores : rr;
        size_t non = nstores ? nstores : 3;
        pd_mock_region(&s->r[i], 100 + i, i == 0 ? "" : start, i == n - 1 ? "" : end, 2, 1,
                       (uint64_t)(rand() % 9), on[0], on, non);
    }
}

static void sim_free(struct sim *s)
{
    for (size_t i = 0; i < s->n; i++)
        pd_region_clear(&s->r[i]);
    free(s->r);
    free(s->pending);
    free(s->pending_age);
}

/* sim_apply plays a store: carries out a step (an added peer catches up a round later). */
static void sim_apply(struct sim *s, size_t i, const struct pd_step *st)
{
    struct pd_region *r = &s->r[i];
    switch (st->kind) {
    case PD_STEP_ADD_PEER:
        if (pd_region_store_peer(r, st->store_id) || st->store_id == s->dead)
            return;
        assert_int_equal(pd_region_add_peer(r, st->peer_id, st->store_id), PD_OK);
        r->epoch.conf_ver++;
        r->pending_peers[0] = r->peers[r->peer_count - 1];
        r->pending_peer_count = 1;
        s->pending[i] = st->peer_id;
        s->pending_age[i] = 2; /* reported pending in the next round, caught up after it */
        return;
    case PD_STEP_REMOVE_PEER:
        assert_true(st->store_id != r->leader.store_id);
        for (size_t p = 0; p < r->peer_count; p++) {
            if (r->peers[p].store_id == st->store_id) {
                if (r->peers[p].id == s->pending[i]) {
                    s->pending[i] = 0;
                    r->pending_peer_count = 0;
                }
                r->peers[p] = r->peers[--r->peer_count];
                r->epoch.conf_ver++;
                return;
            }
        }
        return;
    case PD_STEP_TRANSFER_LEADER: {
        const struct pd_peer *p = pd_region_store_peer(r, st->store_id);
        if (p && st->store_id != s->dead && p->id != s->pending[i])
            r->leader = *p;
        return;
    }
    case PD_STEP_SPLIT:
        fail_msg("a split step nobody asked for");
    }
}

/* sim_round: every live store heartbeats, the scheduler ticks (the limits are checked right
 * after), then every region reports through its leader and obeys the answer. */
static size_t sim_round(struct sim *s, const struct pd_config *cfg)
{
    s->m->now_ms += 1000;
    struct pd_store_info *infos;
    size_t ns;
    assert_int_equal(pd_cluster_get_all_stores(s->m->c, &infos, &ns), PD_OK);
    for (size_t i = 0; i < ns; i++)
        if (infos[i].store.id != s->dead && infos[i].store.state != PD_STORE_TOMBSTONE)
            pd_mock_heartbeat_store(s->m, infos[i].store.id);
    free(infos);
    size_t created = 0;
    assert_int_equal(pd_cluster_tick(s->m->c, &created), PD_OK);
    if (created > s->max_created)
        s->max_created = created;
    struct pd_operator *ops;
    size_t nops, kinds[6] = {0};
    assert_int_equal(pd_cluster_get_operators(s->m->c, &ops, &nops), PD_OK);
    for (size_t i = 0; i < nops; i++)
        kinds[ops[i].kind]++;
    free(ops);
    assert_true(kinds[PD_OP_KIND_LEADER] <= cfg->leader_schedule_limit);
    assert_true(kinds[PD_OP_KIND_REGION] <= cfg->region_schedule_limit);
    assert_true(kinds[PD_OP_KIND_REPLICA] <= cfg->replica_schedule_limit);
    for (int k = 0; k < 6; k++)
        if (kinds[k] > s->ops_by_kind[k])
            s->ops_by_kind[k] = kinds[k];

    for (size_t i = 0; i < s->n; i++) {
        struct pd_region *r = &s->r[i];
        if (s->pending[i] && --s->pending_age[i] == 0) {
            r->pending_peer_count = 0; /* caught up */
            s->pending[i] = 0;
        }
        if (r->leader.store_id == s->dead) {
            for (size_t p = 0; p < r->peer_count; p++)
                if (r->peers[p].store_id != s->dead && r->peers[p].id != s->pending[i]) {
                    r->leader = r->peers[p]; /* an election among the live peers */
                    break;
                }
        }
        struct pd_step step;
        bool has = false;
        assert_int_equal(pd_cluster_region_heartbeat(s->m->c, r, &step, &has), PD_OK);
        if (has)
            sim_apply(s, i, &step);
    }
    /* Every peer added this round has now been reported, pending: no store is over the cap. */
    assert_int_equal(pd_cluster_get_all_stores(s->m->c, &infos, &ns), PD_OK);
    for (size_t i = 0; i < ns; i++) {
        assert_true(infos[i].pending_peer_count <= cfg->max_pending_peer_count);
        if (infos[i].pending_peer_count > s->peak_pending)
            s->peak_pending = infos[i].pending_peer_count;
    }
    free(infos);
    return nops;
}

struct spread {
    double mean_regions, mean_leaders;
    uint64_t max_regions, max_leaders, min_regions, min_leaders;
};

/* spread_of counts regions and leaders over the Up stores. */
static struct spread spread_of(struct pd_mock *m)
{
    struct pd_store_info *infos;
    size_t n, up = 0;
    struct spread sp = {0, 0, 0, 0, UINT64_MAX, UINT64_MAX};
    assert_int_equal(pd_cluster_get_all_stores(m->c, &infos, &n), PD_OK);
    for (size_t i = 0; i < n; i++) {
        if (infos[i].store.state != PD_STORE_UP)
            continue;
        up++;
        sp.mean_regions += (double)infos[i].region_count;
        sp.mean_leaders += (double)infos[i].leader_count;
#define MAXMIN(f)                                                                                  \
    do {                                                                                           \
        if (infos[i].f##_count > sp.max_##f##s)                                                    \
            sp.max_##f##s = infos[i].f##_count;                                                    \
        if (infos[i].f##_count < sp.min_##f##s)                                                    \
            sp.min_##f##s = infos[i].f##_count;                                                    \
    } while (0)
        MAXMIN(region);
        MAXMIN(leader);
#undef MAXMIN
    }
    free(infos);
    sp.mean_regions /= (double)up;
    sp.mean_leaders /= (double)up;
    return sp;
}

static bool balanced(const struct spread *sp)
{
    return (double)sp->max_regions <= 1.25 * sp->mean_regions &&
           (double)sp->max_leaders <= 1.25 * sp->mean_leaders;
}

static void enable_balancers(struct pd_mock *m)
{
    const char *names[] = {PD_SCHEDULER_BALANCE_LEADER, PD_SCHEDULER_BALANCE_REGION};
    for (int i = 0; i < 2; i++) {
        int rc = pd_cluster_add_scheduler(m->c, names[i]);
        assert_true(rc == PD_OK || rc == PD_ERR_EXISTS); /* on by default */
    }
}

static size_t run_until_quiet(struct sim *s, const struct pd_config *cfg, size_t max_rounds)
{
    size_t quiet = 0, round;
    for (round = 0; round < max_rounds && quiet < 5; round++)
        quiet = sim_round(s, cfg) == 0 ? quiet + 1 : 0;
    assert_true(quiet >= 5);
    return round;
}

/* converge: n regions all on stores 1-3 led by store 1, stores 4 and 5 empty, converge under the
 * given limits with every region at three replicas. */
static void converge(struct pd_mock *m, size_t n, uint64_t leader_limit, uint64_t region_limit,
                     uint64_t max_pending)
{
    static const uint64_t s123[] = {1, 2, 3};
    for (uint64_t id = 2; id <= 5; id++)
        pd_mock_add_store(m, id);
    set_config(m, 3, leader_limit, region_limit);
    struct pd_config cfg;
    pd_cluster_get_config(m->c, &cfg);
    cfg.max_pending_peer_count = max_pending;
    assert_int_equal(pd_cluster_put_config(m->c, &cfg), PD_OK);
    enable_balancers(m);
    struct sim s;
    sim_init(&s, m, n, s123, 3, 7);
    /* Report every region first, so the first round sees them all. */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pd_cluster_region_heartbeat(m->c, &s.r[i], NULL, NULL), PD_OK);
    /* Which regions the first round picks: random ones of the store, not the first in key
     * order. */
    assert_int_equal(pd_cluster_tick(m->c, NULL), PD_OK);
    struct pd_operator *ops;
    size_t nops, beyond = 0;
    assert_int_equal(pd_cluster_get_operators(m->c, &ops, &nops), PD_OK);
    for (size_t i = 0; i < nops; i++)
        beyond += ops[i].region_id - 100 >= n / 2;
    free(ops);
    assert_true(nops > 1);
    assert_true(beyond > 0);
    size_t rounds = run_until_quiet(&s, &cfg, 3000);
    struct spread sp = spread_of(m);
    print_message(
        "%zu regions, limits leader %llu region %llu pending %llu: quiet after %zu "
        "rounds, at most %zu operators created in a tick, peak running leader %zu "
        "region %zu, peak pending on a store %llu; regions %llu..%llu (mean %.1f), "
        "leaders %llu..%llu (mean %.1f)\n",
        n, (unsigned long long)leader_limit, (unsigned long long)region_limit,
        (unsigned long long)max_pending, rounds, s.max_created, s.ops_by_kind[PD_OP_KIND_LEADER],
        s.ops_by_kind[PD_OP_KIND_REGION], (unsigned long long)s.peak_pending,
        (unsigned long long)sp.min_regions, (unsigned long long)sp.max_regions, sp.mean_regions,
        (unsigned long long)sp.min_leaders, (unsigned long long)sp.max_leaders, sp.mean_leaders);
    assert_true(s.peak_pending <= max_pending);
    assert_true(balanced(&sp));
    assert_true(s.ops_by_kind[PD_OP_KIND_LEADER] > 1);
    assert_true(s.ops_by_kind[PD_OP_KIND_REGION] > 1);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s.r[i].peer_count, 3);
    sim_free(&s);
}

/* 300 regions on three of five stores spread until no store holds more than 1.25x the mean of
 * regions or leaders, under PD's default limits, several operators a round. */
static void test_converge_300_regions_default_limits(void **state)
{
    converge(*state, 300, 4, 2048, 64);
}

/* The same with tight limits (2 leader transfers, 8 peer moves): never more operators of a
 * kind run than its limit, and the cluster still converges. */
static void test_converge_500_regions_tight_limits(void **state)
{
    converge(*state, 500, 2, 8, 64);
}

/* A store reporting max-snapshot-count snapshots in flight (receiving here) gets no new peer:
 * the replica checker makes up the missing replica on the next best store (stores 3 and 4 tie,
 * 3 comes first), and on the busy store again once its count drops. */
static void test_busy_store_gets_no_peer(void **state)
{
    struct pd_mock *m = *state;
    static const uint64_t s12[] = {1, 2};
    for (uint64_t id = 2; id <= 4; id++)
        pd_mock_add_store(m, id);
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "b", 2, 1, 1, 1, s12, 2), PD_OK);
    struct pd_config cfg;
    pd_cluster_get_config(m->c, &cfg);
    struct pd_store_stats st = {.store_id = 3,
                                .receiving_snap_count = (uint32_t)cfg.max_snapshot_count};
    assert_int_equal(pd_cluster_store_heartbeat(m->c, &st), PD_OK);
    size_t n = 0;
    assert_int_equal(pd_cluster_run_scheduler(m->c, "replica-checker", &n), PD_OK);
    assert_int_equal(n, 1);
    struct pd_operator op;
    assert_int_equal(pd_cluster_get_operator(m->c, 10, &op), PD_OK);
    assert_int_equal(op.steps[0].kind, PD_STEP_ADD_PEER);
    assert_int_equal(op.steps[0].store_id, 4);
    assert_int_equal(pd_cluster_remove_operator(m->c, 10), PD_OK);
    st.receiving_snap_count = 0;
    assert_int_equal(pd_cluster_store_heartbeat(m->c, &st), PD_OK);
    assert_int_equal(pd_cluster_run_scheduler(m->c, "replica-checker", &n), PD_OK);
    assert_int_equal(pd_cluster_get_operator(m->c, 10, &op), PD_OK);
    assert_int_equal(op.steps[0].store_id, 3);
}

/* An operator whose region's epoch changed under it (a split, or a membership change it did not
 * make) is canceled; its own added peer, still pending, is not such a change. */
/* With max-pending-peer-count 5 no store ever has more than 5 peers catching up, however many
 * moves the region limit allows, and the cluster still converges. */
static void test_converge_pending_peer_cap(void **state)
{
    converge(*state, 300, 4, 2048, 5);
}

static void test_operator_canceled_on_epoch_change(void **state)
{
    struct pd_mock *m = *state;
    static const uint64_t s123[] = {1, 2, 3};
    for (uint64_t id = 2; id <= 4; id++)
        pd_mock_add_store(m, id);
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, 10, "a", "b", 2, 1, 1, 1, s123, 3);
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, NULL, NULL), PD_OK);
    /* The operator's own step: peer on store 4 added, pending: carries on. */
    assert_int_equal(pd_cluster_add_add_peer(m->c, 10, 4), PD_OK);
    struct pd_operator op;
    assert_int_equal(pd_cluster_get_operator(m->c, 10, &op), PD_OK);
    struct pd_region r2;
    pd_region_init(&r2);
    assert_int_equal(pd_region_copy(&r2, &r), PD_OK);
    assert_int_equal(pd_region_add_peer(&r2, op.steps[0].peer_id, 4), PD_OK);
    r2.epoch.conf_ver++;
    r2.pending_peers[0] = r2.peers[3];
    r2.pending_peer_count = 1;
    struct pd_step step;
    bool has;
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r2, &step, &has), PD_OK);
    assert_true(has);
    assert_int_equal(pd_cluster_get_operator(m->c, 10, &op), PD_OK);
    /* Someone else removes the peer on store 3 meanwhile: conf_ver moved past what the operator
     * did. */
    r2.peers[2] = r2.peers[3];
    r2.peer_count = 3;
    r2.epoch.conf_ver++;
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r2, &step, &has), PD_OK);
    assert_false(has);
    enum pd_operator_status st;
    assert_int_equal(pd_cluster_get_operator_status(m->c, 10, &op, &st), PD_OK);
    assert_int_equal(st, PD_OP_CANCEL);
    /* A transfer whose region splits (version grows) is canceled too. */
    assert_int_equal(pd_cluster_add_transfer_leader(m->c, 10, 2), PD_OK);
    static const uint64_t s124[] = {1, 2, 4};
    pd_region_clear(&r);
    pd_region_init(&r);
    pd_mock_region(&r, 10, "a", "aa", 3, r2.epoch.conf_ver, 1, 1, s124, 3);
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, &step, &has), PD_OK);
    pd_region_clear(&r);
    pd_region_clear(&r2);
    assert_false(has);
    assert_int_equal(pd_cluster_get_operator_status(m->c, 10, &op, &st), PD_OK);
    assert_int_equal(st, PD_OP_CANCEL);
}

/* A store taken offline has its replicas moved away, several regions a round within
 * replica-schedule-limit, leaders first moved off it, and becomes Tombstone once it holds
 * none; every region keeps three replicas on the other stores. */
static void test_offline_store_drains_to_tombstone(void **state)
{
    struct pd_mock *m = *state;
    enum { N = 400 };
    static const uint64_t s123[] = {1, 2, 3};
    for (uint64_t id = 2; id <= 5; id++)
        pd_mock_add_store(m, id);
    struct pd_config cfg;
    set_config(m, 3, 4, 2048);
    enable_balancers(m);
    pd_cluster_get_config(m->c, &cfg);
    struct sim s;
    sim_init(&s, m, N, s123, 3, 11);
    run_until_quiet(&s, &cfg, 3000);
    struct pd_store_info si;
    assert_int_equal(pd_cluster_get_store(m->c, 3, &si), PD_OK);
    assert_true(si.region_count > 0 && si.leader_count > 0);
    assert_int_equal(pd_cluster_set_store_state(m->c, 3, PD_STORE_OFFLINE, false), PD_OK);
    size_t rounds = run_until_quiet(&s, &cfg, 3000);
    assert_int_equal(pd_cluster_get_store(m->c, 3, &si), PD_OK);
    assert_int_equal(si.store.state, PD_STORE_TOMBSTONE);
    assert_int_equal(si.region_count, 0);
    struct spread sp = spread_of(m);
    print_message("offline store 3 (%d regions): tombstone after %zu rounds, peak %zu replica "
                  "operators; regions %llu..%llu, leaders %llu..%llu on the 4 left\n",
                  N, rounds, s.ops_by_kind[PD_OP_KIND_REPLICA], (unsigned long long)sp.min_regions,
                  (unsigned long long)sp.max_regions, (unsigned long long)sp.min_leaders,
                  (unsigned long long)sp.max_leaders);
    assert_true(s.ops_by_kind[PD_OP_KIND_REPLICA] > 1);
    assert_true(balanced(&sp));
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(s.r[i].peer_count, 3);
        assert_null(pd_region_store_peer(&s.r[i], 3));
    }
    sim_free(&s);
}

/* A store that stops: while it is only disconnected nothing is replaced; once it has been
 * silent past max-store-down-time (set to 2 minutes through the config) every peer it held is
 * replaced on the live stores. */
static void test_down_store_replicas_replaced(void **state)
{
    struct pd_mock *m = *state;
    enum { N = 300 };
    static const uint64_t s123[] = {1, 2, 3};
    for (uint64_t id = 2; id <= 5; id++)
        pd_mock_add_store(m, id);
    set_config(m, 3, 4, 2048);
    struct pd_config cfg;
    pd_cluster_get_config(m->c, &cfg);
    cfg.max_store_down_time_ms = 2 * 60 * 1000;
    assert_int_equal(pd_cluster_put_config(m->c, &cfg), PD_OK);
    enable_balancers(m);
    struct sim s;
    sim_init(&s, m, N, s123, 3, 13);
    run_until_quiet(&s, &cfg, 3000);
    s.dead = 5;
    size_t held = 0;
    for (size_t i = 0; i < N; i++)
        held += pd_region_store_peer(&s.r[i], 5) != NULL;
    assert_true(held > 0);
    for (int round = 0; round < 100; round++) /* 100 s: disconnected, not down */
        sim_round(&s, &cfg);
    size_t still = 0;
    for (size_t i = 0; i < N; i++)
        still += pd_region_store_peer(&s.r[i], 5) != NULL;
    assert_int_equal(still, held);
    for (int round = 0; round < 30; round++) /* past the two minutes: down */
        sim_round(&s, &cfg);
    size_t rounds = run_until_quiet(&s, &cfg, 3000);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(s.r[i].peer_count, 3);
        assert_null(pd_region_store_peer(&s.r[i], 5));
    }
    print_message("down store 5 held %zu regions: all replaced %zu rounds after the first 100\n",
                  held, rounds);
    sim_free(&s);
}

static double elapsed_ms(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

/* Cost with thousands of regions: 5000 regions spread round-robin over 5 stores settle, then
 * the cluster ticks and takes a heartbeat
 * of every region; prints the time of a tick and of one heartbeat (no assertion on time: the
 * figures are for the README). */
static void test_cost_with_5000_regions(void **state)
{
    struct pd_mock *m = *state;
    enum { N = 5000 };
    for (uint64_t id = 2; id <= 5; id++)
        pd_mock_add_store(m, id);
    set_config(m, 3, 4, 2048);
    enable_balancers(m);
    struct pd_config cfg;
    pd_cluster_get_config(m->c, &cfg);
    struct sim s;
    sim_init(&s, m, N, NULL, 0, 17);
    size_t rounds = run_until_quiet(&s, &cfg, 3000);
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    enum { TICKS = 20 };
    for (int k = 0; k < TICKS; k++)
        assert_int_equal(pd_cluster_tick(m->c, NULL), PD_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(pd_cluster_region_heartbeat(m->c, &s.r[i], NULL, NULL), PD_OK);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    struct spread sp = spread_of(m);
    print_message("%d regions: converged in %zu rounds (regions %llu..%llu, leaders %llu..%llu); "
                  "idle tick %.3f ms, region heartbeat %.2f us\n",
                  N, rounds, (unsigned long long)sp.min_regions, (unsigned long long)sp.max_regions,
                  (unsigned long long)sp.min_leaders, (unsigned long long)sp.max_leaders,
                  elapsed_ms(&t0, &t1) / TICKS, elapsed_ms(&t1, &t2) * 1000.0 / N);
    assert_true(balanced(&sp));
    sim_free(&s);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_3c_replicas1),
        T(test_3c_replicas3),
        T(test_3c_replicas5),
        T(test_3c_replace_pending_region),
        T(test_operator_canceled_on_epoch_change),
        T(test_converge_300_regions_default_limits),
        T(test_converge_500_regions_tight_limits),
        T(test_converge_pending_peer_cap),
        T(test_busy_store_gets_no_peer),
        T(test_offline_store_drains_to_tombstone),
        T(test_down_store_replicas_replaced),
        T(test_cost_with_5000_regions),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
