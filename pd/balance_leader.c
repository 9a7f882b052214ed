/* balance_leader.c — the balance-leader scheduler: move leaders from the busiest stores. */
#include "pd/pd_internal.h"

#include <stdlib.h>

/*
 * Among suitable stores (Up, recent heartbeat, not down), a store leading
 * many regions gives a leader to the follower store (of that region, also
 * suitable and not pending) leading the fewest, when the two counts differ by
 * at least two, so a transfer narrows the gap instead of flipping it. As PD
 * does, the regions tried are random ones of the source (RandLeaderRegion);
 * when no source can give, the store leading least takes a leader of a
 * random region it follows (RandFollowerRegion). One call creates operators
 * until leader-schedule-limit transfers run or no pair is two apart.
 */

#define BALANCE_TRIES 10
#define BALANCE_SCAN 64

static int by_leaders_desc(const void *a, const void *b)
{
    const struct pd_store_info *x = *(struct pd_store_info *const *)a;
    const struct pd_store_info *y = *(struct pd_store_info *const *)b;
    if (x->leader_count != y->leader_count)
        return x->leader_count > y->leader_count ? -1 : 1;
    return x->store.id < y->store.id ? -1 : x->store.id > y->store.id;
}

static int transfer(struct pd_cluster *c, const struct pd_region *r, struct pd_store_info *from,
                    struct pd_store_info *to)
{
    struct pd_operator op;
    pd_operator_build_transfer_leader(&op, r, "balance-leader", PD_OP_KIND_LEADER, to->store.id);
    if (pd_operator_add(c, &op) != PD_OK)
        return 0;
    from->leader_count--;
    to->leader_count++;
    return 1;
}

static bool movable(struct pd_cluster *c, const struct pd_region *r)
{
    return pd_operator_find(c, r->id) == NULL && r->pending_peer_count == 0;
}

/* out_of: give one of source's leaders (a random one) to its least-leading follower store. */
static int out_of(struct pd_cluster *c, struct pd_round *round, struct pd_store_info *source)
{
    const struct pd_region_list *l =
        pd_round_list(round, (size_t)(source - round->stores), PD_ROLE_LEADER);
    if (l->count == 0)
        return 0;
    size_t start = (size_t)(pd_cluster_rand(c) % l->count);
    int tries = 0;
    for (size_t j = 0; j < l->count && j < BALANCE_SCAN && tries < BALANCE_TRIES; j++) {
        const struct pd_region *r = l->at[(start + j) % l->count];
        if (!movable(c, r))
            continue;
        tries++;
        struct pd_store_info *target = NULL;
        for (size_t p = 0; p < r->peer_count; p++) {
            struct pd_store_info *t =
                pd_cluster_info_of(round->stores, round->store_count, r->peers[p].store_id);
            if (t == NULL || t == source || !pd_cluster_store_schedulable(t))
                continue;
            if (target == NULL || t->leader_count < target->leader_count)
                target = t;
        }
        if (target && source->leader_count >= target->leader_count + 2)
            return transfer(c, r, source, target);
    }
    return 0;
}

/* into: the target takes the leadership of a random region it follows, from a store leading at
 * least two more. */
static int into(struct pd_cluster *c, struct pd_round *round, struct pd_store_info *target)
{
    const struct pd_region_list *l =
        pd_round_list(round, (size_t)(target - round->stores), PD_ROLE_FOLLOWER);
    if (l->count == 0)
        return 0;
    size_t start = (size_t)(pd_cluster_rand(c) % l->count);
    int tries = 0;
    for (size_t j = 0; j < l->count && j < BALANCE_SCAN && tries < BALANCE_TRIES; j++) {
        const struct pd_region *r = l->at[(start + j) % l->count];
        if (!movable(c, r))
            continue;
        tries++;
        struct pd_store_info *source =
            pd_cluster_info_of(round->stores, round->store_count, r->leader.store_id);
        /* A silent store's leaders are elected away by Raft, not transferred. */
        if (source && !source->disconnected && !source->down &&
            source->leader_count >= target->leader_count + 2)
            return transfer(c, r, source, target);
    }
    return 0;
}

static int one_transfer(struct pd_cluster *c, struct pd_round *round, struct pd_store_info **sorted,
                        size_t n)
{
    qsort(sorted, n, sizeof *sorted, by_leaders_desc);
    uint64_t least = sorted[n - 1]->leader_count;
    for (size_t s = 0; s + 1 < n && sorted[s]->leader_count >= least + 2; s++)
        if (out_of(c, round, sorted[s]))
            return 1;
    for (size_t s = n; s-- > 1 && sorted[s]->leader_count + 2 <= sorted[0]->leader_count;)
        if (into(c, round, sorted[s]))
            return 1;
    return 0;
}

int pd_balance_leader_schedule(struct pd_cluster *c, struct pd_round *round)
{
    size_t running = pd_operator_count_kind(c, PD_OP_KIND_LEADER);
    if (running >= c->cfg.leader_schedule_limit)
        return 0;
    struct pd_store_info **sorted =
        malloc((round->store_count ? round->store_count : 1) * sizeof *sorted);
    if (sorted == NULL)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < round->store_count; i++)
        if (pd_cluster_store_schedulable(&round->stores[i]))
            sorted[n++] = &round->stores[i];
    int created = 0;
    while (n >= 2 && running + (size_t)created < c->cfg.leader_schedule_limit &&
           one_transfer(c, round, sorted, n))
        created++;
    free(sorted);
    return created;
}
