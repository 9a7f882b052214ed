/* balance_region.c — the balance-region scheduler (TinyKV project 3C rules). */
#include "pd/pd_internal.h"

#include <stdlib.h>

/*
 * Suitable stores are Up, heard from recently and not down. The source is
 * the suitable store with the largest region size; from it we try a region
 * with a pending peer there, else one it follows, else one it leads. The
 * target is the suitable store with the smallest region size not holding the
 * region. The move happens only when the source's region size exceeds the
 * target's by more than twice the region's size, so moving does not just
 * swap the imbalance. Regions below max_replicas are the replica checker's.
 */

#define CANDIDATES_PER_SOURCE 16

static int by_size_desc(const void *a, const void *b)
{
    const struct pd_store_info *x = *(struct pd_store_info *const *)a;
    const struct pd_store_info *y = *(struct pd_store_info *const *)b;
    if (x->region_size_bytes != y->region_size_bytes)
        return x->region_size_bytes > y->region_size_bytes ? -1 : 1;
    return x->store.id < y->store.id ? -1 : x->store.id > y->store.id;
}

enum pick { PICK_PENDING, PICK_FOLLOWER, PICK_LEADER };

static bool region_matches(const struct pd_region *r, uint64_t store_id, enum pick kind)
{
    const struct pd_peer *p = pd_region_store_peer(r, store_id);
    if (p == NULL)
        return false;
    switch (kind) {
    case PICK_PENDING:
        return pd_region_peer_is_pending(r, p->id);
    case PICK_FOLLOWER:
        return p->id != r->leader.id && !pd_region_peer_is_pending(r, p->id);
    case PICK_LEADER:
        return p->id == r->leader.id;
    }
    return false;
}

/* try_move: move r off source when a target fits the size rule; 1 if an operator was made. */
static int try_move(struct pd_cluster *c, const struct pd_region *r, struct pd_store_info *source,
                    struct pd_store_info **sorted, size_t n, struct pd_store_info *stores,
                    size_t store_count)
{
    struct pd_store_info *target = NULL;
    for (size_t i = n; i-- > 0;) {
        if (!pd_region_store_peer(r, sorted[i]->store.id)) {
            target = sorted[i];
            break;
        }
    }
    if (target == NULL || target->region_size_bytes >= source->region_size_bytes)
        return 0;
    if (source->region_size_bytes - target->region_size_bytes <= 2 * r->approximate_size_bytes)
        return 0;
    struct pd_operator op;
    if (pd_operator_build_move_peer(c, &op, r, "balance-region", PD_OP_KIND_REGION,
                                    source->store.id, target->store.id) != PD_OK ||
        pd_operator_add(c, &op) != PD_OK)
        return 0;
    pd_cluster_note_move(stores, store_count, r, source->store.id, target->store.id);
    return 1;
}

int pd_balance_region_schedule(struct pd_cluster *c, struct pd_store_info *stores,
                               size_t store_count)
{
    if (pd_operator_count_kind(c, PD_OP_KIND_REGION) >= c->cfg.region_schedule_limit)
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
    qsort(sorted, n, sizeof *sorted, by_size_desc);
    for (size_t s = 0; s < n && !created; s++) {
        struct pd_store_info *source = sorted[s];
        int tried = 0;
        for (int kind = PICK_PENDING; kind <= PICK_LEADER && !created; kind++) {
            for (size_t k = 0; k < c->tree.count && tried < CANDIDATES_PER_SOURCE; k++) {
                const struct pd_region *r = c->tree.by_key[k];
                if (!region_matches(r, source->store.id, (enum pick)kind) ||
                    pd_operator_find(c, r->id) || r->peer_count < c->cfg.max_replicas)
                    continue;
                tried++;
                if ((created = try_move(c, r, source, sorted, n, stores, store_count)) != 0)
                    break;
            }
        }
    }
cleanup:
    free(sorted);
    return created;
}
