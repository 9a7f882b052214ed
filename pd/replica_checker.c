/* replica_checker.c — keeps every region at max_replicas peers on healthy stores. */
#include "pd/pd_internal.h"

#include <stddef.h>

struct pd_store_info *pd_cluster_info_of(struct pd_store_info *stores, size_t count, uint64_t id)
{
    for (size_t i = 0; i < count; i++)
        if (stores[i].store.id == id)
            return &stores[i];
    return NULL;
}

bool pd_cluster_store_can_receive(const struct pd_store_info *s, const struct pd_config *cfg)
{
    const struct pd_store_stats *st = &s->stats;
    return pd_cluster_store_schedulable(s) && s->pending_peer_count < cfg->max_pending_peer_count &&
           st->sending_snap_count < cfg->max_snapshot_count &&
           st->receiving_snap_count < cfg->max_snapshot_count &&
           st->applying_snap_count < cfg->max_snapshot_count;
}

struct pd_store_info *pd_cluster_best_store(struct pd_store_info *stores, size_t count,
                                            const struct pd_region *r, const struct pd_config *cfg)
{
    struct pd_store_info *best = NULL;
    for (size_t i = 0; i < count; i++) {
        struct pd_store_info *s = &stores[i];
        if (!pd_cluster_store_can_receive(s, cfg) || pd_region_store_peer(r, s->store.id))
            continue;
        if (best == NULL || s->region_count < best->region_count ||
            (s->region_count == best->region_count &&
             s->region_size_bytes < best->region_size_bytes))
            best = s;
    }
    return best;
}

void pd_cluster_note_move(struct pd_store_info *stores, size_t count, const struct pd_region *r,
                          uint64_t from_store, uint64_t to_store)
{
    struct pd_store_info *from = from_store ? pd_cluster_info_of(stores, count, from_store) : NULL;
    struct pd_store_info *to = to_store ? pd_cluster_info_of(stores, count, to_store) : NULL;
    uint64_t score = pd_region_score_bytes(r);
    if (from) {
        from->region_count -= from->region_count > 0;
        from->region_size_bytes -= from->region_size_bytes >= r->approximate_size_bytes
                                       ? r->approximate_size_bytes
                                       : from->region_size_bytes;
        from->region_score_bytes -=
            from->region_score_bytes >= score ? score : from->region_score_bytes;
    }
    if (to) {
        to->pending_peer_count++; /* a new peer catches up before it counts as done */
        to->region_count++;
        to->region_size_bytes += r->approximate_size_bytes;
        to->region_score_bytes += score;
    }
}

/* peer_unhealthy: the peer's store is gone, not Up, or down past max-store-down-time. */
static bool peer_unhealthy(struct pd_store_info *stores, size_t count, const struct pd_peer *p,
                           const char **why)
{
    const struct pd_store_info *s = pd_cluster_info_of(stores, count, p->store_id);
    if (s == NULL || s->store.state != PD_STORE_UP) {
        *why = "replace-offline-replica";
        return true;
    }
    if (s->down) {
        *why = "replace-down-replica";
        return true;
    }
    return false;
}

/* worst_peer: the peer to drop from an over-replicated region: an unhealthy one, else the one on
 * the store with most regions, avoiding the leader when possible. */
static const struct pd_peer *worst_peer(const struct pd_region *r, struct pd_store_info *stores,
                                        size_t count)
{
    const struct pd_peer *worst = NULL;
    uint64_t worst_regions = 0;
    for (size_t i = 0; i < r->peer_count; i++) {
        const struct pd_peer *p = &r->peers[i];
        const char *why;
        if (peer_unhealthy(stores, count, p, &why))
            return p;
        if (p->id == r->leader.id)
            continue;
        const struct pd_store_info *s = pd_cluster_info_of(stores, count, p->store_id);
        if (worst == NULL || s->region_count > worst_regions) {
            worst = p;
            worst_regions = s->region_count;
        }
    }
    return worst ? worst : &r->peers[0];
}

int pd_replica_check_region(struct pd_cluster *c, const struct pd_region *r,
                            struct pd_store_info *stores, size_t store_count)
{
    struct pd_operator op;
    if (pd_operator_find(c, r->id) != NULL)
        return 0;
    uint64_t max = c->cfg.max_replicas;
    for (size_t i = 0; i < r->peer_count; i++) {
        const struct pd_peer *p = &r->peers[i];
        const char *why;
        if (!peer_unhealthy(stores, store_count, p, &why))
            continue;
        struct pd_store_info *target = pd_cluster_best_store(stores, store_count, r, &c->cfg);
        if (target != NULL) {
            if (pd_operator_build_move_peer(c, &op, r, why, PD_OP_KIND_REPLICA, p->store_id,
                                            target->store.id) != PD_OK ||
                pd_operator_add(c, &op) != PD_OK)
                return 0;
            pd_cluster_note_move(stores, store_count, r, p->store_id, target->store.id);
            return 1;
        }
        if (r->peer_count > max) {
            pd_operator_build_remove_peer(&op, r, "remove-extra-replica", PD_OP_KIND_REPLICA,
                                          p->store_id);
            if (pd_operator_add(c, &op) != PD_OK)
                return 0;
            pd_cluster_note_move(stores, store_count, r, p->store_id, 0);
            return 1;
        }
    }
    if (r->peer_count < max) {
        struct pd_store_info *target = pd_cluster_best_store(stores, store_count, r, &c->cfg);
        if (target == NULL)
            return 0;
        if (pd_operator_build_add_peer(c, &op, r, "make-up-replica", PD_OP_KIND_REPLICA,
                                       target->store.id) != PD_OK ||
            pd_operator_add(c, &op) != PD_OK)
            return 0;
        pd_cluster_note_move(stores, store_count, r, 0, target->store.id);
        return 1;
    }
    if (r->peer_count > max) {
        const struct pd_peer *p = worst_peer(r, stores, store_count);
        pd_operator_build_remove_peer(&op, r, "remove-extra-replica", PD_OP_KIND_REPLICA,
                                      p->store_id);
        if (pd_operator_add(c, &op) != PD_OK)
            return 0;
        pd_cluster_note_move(stores, store_count, r, p->store_id, 0);
        return 1;
    }
    return 0;
}
