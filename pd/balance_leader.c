/* balance_leader.c — the balance-leader scheduler: move leaders from the busiest store. */
#include "pd/pd_internal.h"

#include <stdlib.h>

/*
 * Among suitable stores (Up, recent heartbeat, not down), the store leading
 * the most regions gives one leader to the follower store (of that region,
 * also suitable and not pending) leading the fewest, when the two counts
 * differ by at least two — a transfer then narrows the gap instead of
 * flipping it.
 */

static int by_leaders_desc(const void *a, const void *b)
{
    const struct pd_store_info *x = *(struct pd_store_info *const *)a;
    const struct pd_store_info *y = *(struct pd_store_info *const *)b;
    if (x->leader_count != y->leader_count)
        return x->leader_count > y->leader_count ? -1 : 1;
    return x->store.id < y->store.id ? -1 : x->store.id > y->store.id;
}

int pd_balance_leader_schedule(struct pd_cluster *c, struct pd_store_info *stores,
                               size_t store_count)
{
    if (pd_operator_count_kind(c, PD_OP_KIND_LEADER) >= c->cfg.leader_schedule_limit)
        return 0;
    struct pd_store_info **sorted = malloc((store_count ? store_count : 1) * sizeof *sorted);
    if (sorted == NULL)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < store_count; i++)
        if (pd_cluster_store_schedulable(&stores[i]))
            sorted[n++] = &stores[i];
    int created = 0;
    if (n < 2)
        goto cleanup;
    qsort(sorted, n, sizeof *sorted, by_leaders_desc);
    for (size_t s = 0; s < n && !created; s++) {
        struct pd_store_info *source = sorted[s];
        for (size_t k = 0; k < c->tree.count && !created; k++) {
            const struct pd_region *r = c->tree.by_key[k];
            if (r->leader.store_id != source->store.id || pd_operator_find(c, r->id) ||
                r->pending_peer_count > 0)
                continue;
            struct pd_store_info *target = NULL;
            for (size_t p = 0; p < r->peer_count; p++) {
                struct pd_store_info *t =
                    pd_cluster_info_of(stores, store_count, r->peers[p].store_id);
                if (t == NULL || t == source || !pd_cluster_store_schedulable(t))
                    continue;
                if (target == NULL || t->leader_count < target->leader_count)
                    target = t;
            }
            if (target == NULL || source->leader_count < target->leader_count + 2)
                continue;
            struct pd_operator op;
            pd_operator_build_transfer_leader(&op, r, "balance-leader", PD_OP_KIND_LEADER,
                                              target->store.id);
            if (pd_operator_add(c, &op) != PD_OK)
                continue;
            source->leader_count--;
            target->leader_count++;
            created = 1;
        }
    }
cleanup:
    free(sorted);
    return created;
}
