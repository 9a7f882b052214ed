/* balance_region.c — the balance-region scheduler (TinyKV project 3C rules, PD's picking). */
#include "pd/pd_internal.h"

#include <stdlib.h>

/*
 * Suitable stores are Up, heard from recently and not down. Sources are
 * tried from the largest region score down (the sum of region sizes, a
 * region under 1 MiB counting 1 MiB); from a source we try random regions with a
 * pending peer there, then random ones it follows, then random ones it leads
 * (PD's RandPendingRegion / RandFollowerRegion / RandLeaderRegion), each kind
 * at most BALANCE_TRIES times. The target is the suitable store with the
 * smallest score not holding the region and not busy (below
 * max-pending-peer-count peers catching up and max-snapshot-count snapshots). The move happens only
 * when the source's score exceeds the target's by more than twice the region's size, so moving does
 * not just swap the imbalance. Regions short of max_replicas are the replica checker's. One call
 * creates operators until region-schedule-limit operators of its kind run or nothing more narrows a
 * gap; every operator updates the round's figures before the next pick.
 */

#define BALANCE_TRIES 10 /* PD's balanceRegionRetryLimit */
#define BALANCE_SCAN 64  /* list entries looked at per kind, skipped ones included */

static int by_score_desc(const void *a, const void *b)
{
    const struct pd_store_info *x = *(struct pd_store_info *const *)a;
    const struct pd_store_info *y = *(struct pd_store_info *const *)b;
    if (x->region_score_bytes != y->region_score_bytes)
        return x->region_score_bytes > y->region_score_bytes ? -1 : 1;
    return x->store.id < y->store.id ? -1 : x->store.id > y->store.id;
}

/* try_move: move r off source when a target fits the size rule; 1 if an operator was made. */
static int try_move(struct pd_cluster *c, struct pd_round *round, const struct pd_region *r,
                    struct pd_store_info *source, struct pd_store_info **sorted, size_t n)
{
    struct pd_store_info *target = NULL;
    for (size_t i = n; i-- > 0;) {
        if (!pd_region_store_peer(r, sorted[i]->store.id) &&
            pd_cluster_store_can_receive(sorted[i], &c->cfg)) {
            target = sorted[i];
            break;
        }
    }
    if (target == NULL || target->region_score_bytes >= source->region_score_bytes)
        return 0;
    if (source->region_score_bytes - target->region_score_bytes <= 2 * pd_region_score_bytes(r))
        return 0;
    struct pd_operator op;
    if (pd_operator_build_move_peer(c, &op, r, "balance-region", PD_OP_KIND_REGION,
                                    source->store.id, target->store.id) != PD_OK ||
        pd_operator_add(c, &op) != PD_OK)
        return 0;
    pd_cluster_note_move(round->stores, round->store_count, r, source->store.id, target->store.id);
    return 1;
}

/* from_list tries random regions of one of source's lists; 1 if an operator was made. */
static int from_list(struct pd_cluster *c, struct pd_round *round, const struct pd_region_list *l,
                     struct pd_store_info *source, struct pd_store_info **sorted, size_t n)
{
    if (l->count == 0)
        return 0;
    size_t start = (size_t)(pd_cluster_rand(c) % l->count);
    int tries = 0;
    for (size_t j = 0; j < l->count && j < BALANCE_SCAN && tries < BALANCE_TRIES; j++) {
        const struct pd_region *r = l->at[(start + j) % l->count];
        if (pd_operator_find(c, r->id) || r->peer_count < c->cfg.max_replicas)
            continue;
        tries++;
        if (try_move(c, round, r, source, sorted, n))
            return 1;
    }
    return 0;
}

/* one_move creates at most one operator, trying sources from the largest score down. */
static int one_move(struct pd_cluster *c, struct pd_round *round, struct pd_store_info **sorted,
                    size_t n)
{
    static const enum pd_role order[] = {PD_ROLE_PENDING, PD_ROLE_FOLLOWER, PD_ROLE_LEADER};
    qsort(sorted, n, sizeof *sorted, by_score_desc);
    for (size_t s = 0; s + 1 < n; s++) {
        struct pd_store_info *source = sorted[s];
        size_t at = (size_t)(source - round->stores);
        for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
            if (from_list(c, round, pd_round_list(round, at, order[k]), source, sorted, n))
                return 1;
    }
    return 0;
}

int pd_balance_region_schedule(struct pd_cluster *c, struct pd_round *round)
{
    size_t running = pd_operator_count_kind(c, PD_OP_KIND_REGION);
    if (running >= c->cfg.region_schedule_limit)
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
    while (n >= 2 && running + (size_t)created < c->cfg.region_schedule_limit &&
           one_move(c, round, sorted, n))
        created++;
    free(sorted);
    return created;
}
