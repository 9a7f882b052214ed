/* schedule.c — the scheduling tick, the scheduler set, admin operators and scatter. */
#include "pd/pd_internal.h"

#include <stdlib.h>
#include <string.h>

#include "proto/log.h"

/* tombstone_empty_offline_stores: an Offline store whose regions have all moved is done; infos
 * (the round's figures, counted from the tree) say which hold none. */
static void tombstone_empty_offline_stores(struct pd_cluster *c, struct pd_store_info *infos,
                                           size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (infos[i].store.state != PD_STORE_OFFLINE || infos[i].region_count > 0)
            continue;
        if (pd_cluster_set_store_state_locked(c, infos[i].store.id, PD_STORE_TOMBSTONE, false) ==
            PD_OK) {
            infos[i].store.state = PD_STORE_TOMBSTONE;
            LOG(LOG_INFO, "store %llu is empty: now tombstone",
                (unsigned long long)infos[i].store.id);
        }
    }
}

/* apply_influence makes the round's store figures count what running operators will still do,
 * so one round does not pile every new operator onto the same store. */
static void apply_influence(struct pd_cluster *c, struct pd_store_info *infos, size_t n)
{
    for (size_t i = 0; i < c->op_count; i++) {
        const struct pd_operator *op = &c->ops[i];
        const struct pd_region *r = pd_region_tree_find_by_id(&c->tree, op->region_id);
        if (r == NULL)
            continue;
        for (size_t k = op->current_step; k < op->step_count; k++) {
            const struct pd_step *s = &op->steps[k];
            struct pd_store_info *to = pd_cluster_info_of(infos, n, s->store_id);
            struct pd_store_info *from = pd_cluster_info_of(infos, n, r->leader.store_id);
            switch (s->kind) {
            case PD_STEP_ADD_PEER:
                if (pd_region_store_peer(r, s->store_id) == NULL) /* not yet counted */
                    pd_cluster_note_move(infos, n, r, 0, s->store_id);
                break;
            case PD_STEP_REMOVE_PEER:
                pd_cluster_note_move(infos, n, r, s->store_id, 0);
                break;
            case PD_STEP_TRANSFER_LEADER:
                if (to && from && to != from && from->leader_count > 0) {
                    from->leader_count--;
                    to->leader_count++;
                }
                break;
            case PD_STEP_SPLIT:
                break; /* moves nothing between stores */
            }
        }
    }
}

static size_t store_index(const struct pd_store_info *infos, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (infos[i].store.id == id)
            return i;
    return n;
}

static enum pd_role peer_role(const struct pd_region *r, const struct pd_peer *p)
{
    if (p->id == r->leader.id)
        return PD_ROLE_LEADER;
    return pd_region_peer_is_pending(r, p->id) ? PD_ROLE_PENDING : PD_ROLE_FOLLOWER;
}

const struct pd_region_list *pd_round_list(const struct pd_round *round, size_t i,
                                           enum pd_role role)
{
    return &round->lists[i * PD_ROLE_COUNT + role];
}

static void round_free(struct pd_round *round)
{
    free(round->stores);
    free(round->lists);
    free(round->pool);
    memset(round, 0, sizeof *round);
}

/* round_open builds the round's view in two walks over the regions' peers (count, then fill):
 * linear in the regions, whatever the schedulers then pick from it. */
static int round_open(struct pd_cluster *c, struct pd_round *round)
{
    memset(round, 0, sizeof *round);
    int err = pd_cluster_store_infos(c, &round->stores, &round->store_count);
    if (err != PD_OK)
        return err;
    tombstone_empty_offline_stores(c, round->stores, round->store_count);
    pd_operator_cancel_unreachable(c, round->stores, round->store_count);
    size_t n = round->store_count, peers = 0;
    round->lists = calloc((n ? n : 1) * PD_ROLE_COUNT, sizeof *round->lists);
    for (size_t k = 0; k < c->tree.count; k++)
        peers += c->tree.by_key[k]->peer_count;
    round->pool = malloc((peers ? peers : 1) * sizeof *round->pool);
    if (round->lists == NULL || round->pool == NULL) {
        round_free(round);
        return PD_ERR_NOMEM;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < c->tree.count; k++) {
            struct pd_region *r = c->tree.by_key[k];
            for (size_t p = 0; p < r->peer_count; p++) {
                size_t i = store_index(round->stores, n, r->peers[p].store_id);
                if (i == n)
                    continue;
                struct pd_region_list *l =
                    &round->lists[i * PD_ROLE_COUNT + peer_role(r, &r->peers[p])];
                if (pass == 1)
                    l->at[l->count] = r;
                l->count++;
            }
        }
        if (pass == 1)
            break;
        /* Carve the pool into the lists, then count again while filling. */
        size_t used = 0;
        for (size_t j = 0; j < n * PD_ROLE_COUNT; j++) {
            round->lists[j].at = round->pool + used;
            used += round->lists[j].count;
            round->lists[j].count = 0;
        }
    }
    apply_influence(c, round->stores, n);
    return PD_OK;
}

static size_t replica_check_all(struct pd_cluster *c, struct pd_round *round, bool limited)
{
    size_t made = 0;
    for (size_t k = 0; k < c->tree.count; k++) {
        if (limited &&
            pd_operator_count_kind(c, PD_OP_KIND_REPLICA) >= c->cfg.replica_schedule_limit)
            break;
        made += (size_t)pd_replica_check_region(c, c->tree.by_key[k], round->stores,
                                                round->store_count);
    }
    return made;
}

int pd_cluster_run_scheduler(struct pd_cluster *c, const char *name, size_t *created)
{
    struct pd_round round;
    size_t made = 0;
    pthread_mutex_lock(&c->mu);
    int err = round_open(c, &round);
    if (err != PD_OK)
        goto cleanup;
    if (strcmp(name, "replica-checker") == 0)
        made = replica_check_all(c, &round, false);
    else if (strcmp(name, PD_SCHEDULER_BALANCE_LEADER) == 0)
        made = (size_t)pd_balance_leader_schedule(c, &round);
    else if (strcmp(name, PD_SCHEDULER_BALANCE_REGION) == 0)
        made = (size_t)pd_balance_region_schedule(c, &round);
    else
        err = pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "unknown scheduler \"%.64s\"", name);
    round_free(&round);
cleanup:
    pthread_mutex_unlock(&c->mu);
    if (created)
        *created = made;
    return err;
}

int pd_cluster_tick(struct pd_cluster *c, size_t *created)
{
    struct pd_round round;
    size_t made = 0;
    pthread_mutex_lock(&c->mu);
    c->metrics.ticks++;
    if (pd_tso_refresh(&c->tso, c->meta, pd_cluster_now_ms(c), c->errmsg, sizeof c->errmsg) !=
        PD_OK)
        LOG(LOG_WARN, "cannot extend the TSO window: %s", c->errmsg);
    pd_operator_check_timeouts(c);
    int err = round_open(c, &round);
    if (err != PD_OK)
        goto cleanup;
    made += replica_check_all(c, &round, true);
    if (c->sched_balance_leader)
        made += (size_t)pd_balance_leader_schedule(c, &round);
    if (c->sched_balance_region)
        made += (size_t)pd_balance_region_schedule(c, &round);
    round_free(&round);
cleanup:
    pthread_mutex_unlock(&c->mu);
    if (created)
        *created = made;
    return err;
}

int pd_cluster_list_schedulers(struct pd_cluster *c, char ***names, size_t *count)
{
    char **out = calloc(2, sizeof *out);
    size_t n = 0;
    if (out == NULL)
        return PD_ERR_NOMEM;
    pthread_mutex_lock(&c->mu);
    bool on[2] = {c->sched_balance_leader, c->sched_balance_region};
    pthread_mutex_unlock(&c->mu);
    const char *all[2] = {PD_SCHEDULER_BALANCE_LEADER, PD_SCHEDULER_BALANCE_REGION};
    for (int i = 0; i < 2; i++) {
        if (!on[i])
            continue;
        out[n] = strdup(all[i]);
        if (out[n] == NULL) {
            pd_names_free(out, n);
            return PD_ERR_NOMEM;
        }
        n++;
    }
    *names = out;
    *count = n;
    return PD_OK;
}

void pd_names_free(char **names, size_t count)
{
    if (names == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

static bool *scheduler_flag(struct pd_cluster *c, const char *name)
{
    if (strcmp(name, PD_SCHEDULER_BALANCE_LEADER) == 0)
        return &c->sched_balance_leader;
    if (strcmp(name, PD_SCHEDULER_BALANCE_REGION) == 0)
        return &c->sched_balance_region;
    return NULL;
}

static int set_scheduler(struct pd_cluster *c, const char *name, bool on)
{
    pthread_mutex_lock(&c->mu);
    int err = PD_OK;
    bool *flag = scheduler_flag(c, name);
    if (flag == NULL) {
        err = pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "unknown scheduler \"%.64s\"", name);
    } else if (*flag == on) {
        err = on ? pd_cluster_set_err(c, PD_ERR_EXISTS, "scheduler %s already exists", name)
                 : pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "scheduler %s is not running", name);
    } else {
        *flag = on;
        err = pd_cluster_save_schedulers(c);
        if (err != PD_OK)
            *flag = !on;
    }
    pthread_mutex_unlock(&c->mu);
    return err;
}

int pd_cluster_add_scheduler(struct pd_cluster *c, const char *name)
{
    return set_scheduler(c, name, true);
}

int pd_cluster_remove_scheduler(struct pd_cluster *c, const char *name)
{
    return set_scheduler(c, name, false);
}

int pd_cluster_get_operator(struct pd_cluster *c, uint64_t region_id, struct pd_operator *out)
{
    pthread_mutex_lock(&c->mu);
    int err = PD_OK;
    const struct pd_operator *op = pd_operator_find(c, region_id);
    if (op)
        *out = *op;
    else
        err = pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "region %llu has no operator",
                                 (unsigned long long)region_id);
    pthread_mutex_unlock(&c->mu);
    return err;
}

int pd_cluster_get_operators(struct pd_cluster *c, struct pd_operator **out, size_t *count)
{
    pthread_mutex_lock(&c->mu);
    int err = PD_OK;
    *count = c->op_count;
    *out = malloc((c->op_count ? c->op_count : 1) * sizeof **out);
    if (*out == NULL)
        err = PD_ERR_NOMEM;
    else if (c->op_count)
        memcpy(*out, c->ops, c->op_count * sizeof **out);
    pthread_mutex_unlock(&c->mu);
    return err;
}

int pd_cluster_get_operator_history(struct pd_cluster *c, size_t max,
                                    struct pd_operator_record **out, size_t *count)
{
    pthread_mutex_lock(&c->mu);
    int err = PD_OK;
    size_t n = c->op_history_count < max ? c->op_history_count : max;
    *count = n;
    *out = malloc((n ? n : 1) * sizeof **out);
    if (*out == NULL) {
        err = PD_ERR_NOMEM;
        *count = 0;
    }
    for (size_t i = 0; *out && i < n; i++) {
        /* op_history_next is where the next record goes: step back from it. */
        size_t at = (c->op_history_next + PD_OPERATOR_HISTORY - 1 - i) % PD_OPERATOR_HISTORY;
        (*out)[i].op = c->op_history[at].op;
        (*out)[i].status = c->op_history[at].status;
    }
    pthread_mutex_unlock(&c->mu);
    return err;
}

int pd_cluster_remove_operator(struct pd_cluster *c, uint64_t region_id)
{
    pthread_mutex_lock(&c->mu);
    int err = PD_OK;
    if (pd_operator_find(c, region_id)) {
        pd_operator_remove(c, region_id, PD_OP_CANCEL);
        c->metrics.operators_canceled++;
    } else {
        err = pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "region %llu has no operator",
                                 (unsigned long long)region_id);
    }
    pthread_mutex_unlock(&c->mu);
    return err;
}

enum admin_kind { ADMIN_TRANSFER, ADMIN_ADD, ADMIN_REMOVE };

static int admin_operator(struct pd_cluster *c, uint64_t region_id, uint64_t store_id,
                          enum admin_kind kind)
{
    struct pd_operator op;
    int err = PD_OK;
    pthread_mutex_lock(&c->mu);
    const struct pd_region *r = pd_region_tree_find_by_id(&c->tree, region_id);
    const struct pd_store_entry *s = pd_cluster_find_store(c, store_id);
    if (r == NULL) {
        err = pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "region %llu not found",
                                 (unsigned long long)region_id);
        goto cleanup;
    }
    if (s == NULL) {
        err = pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "store %llu not found",
                                 (unsigned long long)store_id);
        goto cleanup;
    }
    if (pd_operator_find(c, region_id)) {
        err = pd_cluster_set_err(c, PD_ERR_EXISTS, "region %llu already has an operator",
                                 (unsigned long long)region_id);
        goto cleanup;
    }
    bool has = pd_region_store_peer(r, store_id) != NULL;
    switch (kind) {
    case ADMIN_TRANSFER:
        if (!has || s->store.state != PD_STORE_UP) {
            err = pd_cluster_set_err(c, PD_ERR_STATE, "store %llu has no live peer of region %llu",
                                     (unsigned long long)store_id, (unsigned long long)region_id);
            goto cleanup;
        }
        pd_operator_build_transfer_leader(&op, r, "admin-transfer-leader", PD_OP_KIND_ADMIN,
                                          store_id);
        break;
    case ADMIN_ADD:
        if (has || s->store.state != PD_STORE_UP || r->peer_count >= PD_MAX_PEERS) {
            err = pd_cluster_set_err(c, PD_ERR_STATE,
                                     "cannot add a peer of region %llu on store %llu",
                                     (unsigned long long)region_id, (unsigned long long)store_id);
            goto cleanup;
        }
        err = pd_operator_build_add_peer(c, &op, r, "admin-add-peer", PD_OP_KIND_ADMIN, store_id);
        if (err != PD_OK)
            goto cleanup;
        break;
    case ADMIN_REMOVE:
        if (!has || r->peer_count < 2) {
            err = pd_cluster_set_err(c, PD_ERR_STATE,
                                     "cannot remove a peer of region %llu on store %llu",
                                     (unsigned long long)region_id, (unsigned long long)store_id);
            goto cleanup;
        }
        pd_operator_build_remove_peer(&op, r, "admin-remove-peer", PD_OP_KIND_ADMIN, store_id);
        break;
    }
    err = pd_operator_add(c, &op);
cleanup:
    pthread_mutex_unlock(&c->mu);
    return err;
}

int pd_cluster_add_transfer_leader(struct pd_cluster *c, uint64_t region_id, uint64_t to_store)
{
    return admin_operator(c, region_id, to_store, ADMIN_TRANSFER);
}

int pd_cluster_add_add_peer(struct pd_cluster *c, uint64_t region_id, uint64_t store_id)
{
    return admin_operator(c, region_id, store_id, ADMIN_ADD);
}

int pd_cluster_add_remove_peer(struct pd_cluster *c, uint64_t region_id, uint64_t store_id)
{
    return admin_operator(c, region_id, store_id, ADMIN_REMOVE);
}

int pd_cluster_scatter_region(struct pd_cluster *c, uint64_t region_id)
{
    struct pd_store_info *infos = NULL;
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    int err = pd_cluster_store_infos(c, &infos, &n);
    if (err != PD_OK)
        goto cleanup;
    const struct pd_region *r = pd_region_tree_find_by_id(&c->tree, region_id);
    if (r == NULL) {
        err = pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "region %llu not found",
                                 (unsigned long long)region_id);
        goto cleanup;
    }
    if (pd_operator_find(c, region_id)) {
        err = pd_cluster_set_err(c, PD_ERR_EXISTS, "region %llu already has an operator",
                                 (unsigned long long)region_id);
        goto cleanup;
    }
    /* Move the peer on the most loaded store to the least loaded store, if that spreads out. */
    struct pd_store_info *target = pd_cluster_best_store(infos, n, r, &c->cfg);
    const struct pd_peer *from = NULL;
    uint64_t from_regions = 0;
    for (size_t i = 0; i < r->peer_count; i++) {
        struct pd_store_info *s = pd_cluster_info_of(infos, n, r->peers[i].store_id);
        uint64_t rc = s ? s->region_count : UINT64_MAX;
        if (from == NULL || rc > from_regions) {
            from = &r->peers[i];
            from_regions = rc;
        }
    }
    if (target == NULL || from == NULL || target->region_count + 1 >= from_regions)
        goto cleanup; /* already as spread as it gets: nothing to do */
    struct pd_operator op;
    err = pd_operator_build_move_peer(c, &op, r, "scatter-region", PD_OP_KIND_ADMIN, from->store_id,
                                      target->store.id);
    if (err == PD_OK)
        err = pd_operator_add(c, &op);
cleanup:
    pthread_mutex_unlock(&c->mu);
    free(infos);
    return err;
}
