/* operator.c — operators: at most one per region, steps that advance with region heartbeats. */
#include "pd/pd_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/log.h"

/* index_lower_bound: the first op_index entry whose region id is >= region_id. */
static size_t index_lower_bound(const struct pd_cluster *c, uint64_t region_id)
{
    size_t lo = 0, hi = c->op_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->op_index[mid].region_id < region_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct pd_operator *pd_operator_find(struct pd_cluster *c, uint64_t region_id)
{
    size_t k = index_lower_bound(c, region_id);
    if (k < c->op_count && c->op_index[k].region_id == region_id)
        return &c->ops[c->op_index[k].at];
    return NULL;
}

int pd_operator_add(struct pd_cluster *c, const struct pd_operator *op)
{
    if (pd_operator_find(c, op->region_id))
        return pd_cluster_set_err(c, PD_ERR_EXISTS, "region %llu already has an operator",
                                  (unsigned long long)op->region_id);
    if (pd_operator_reserve(c, 1) != PD_OK)
        return PD_ERR_NOMEM;
    size_t at = c->op_count;
    c->ops[at] = *op;
    c->ops[at].create_ms = pd_cluster_now_ms(c);
    c->ops[at].current_step = 0;
    size_t k = index_lower_bound(c, op->region_id);
    memmove(&c->op_index[k + 1], &c->op_index[k], (c->op_count - k) * sizeof *c->op_index);
    c->op_index[k] = (struct pd_op_slot){op->region_id, at};
    c->op_count++;
    if ((size_t)op->kind < sizeof c->op_kind_count / sizeof c->op_kind_count[0])
        c->op_kind_count[op->kind]++;
    c->metrics.operators_created++;
    LOG(LOG_INFO, "operator %s created for region=%llu (%zu steps)", op->name,
        (unsigned long long)op->region_id, op->step_count);
    return PD_OK;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return PD_OK;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (p == NULL)
        return PD_ERR_NOMEM;
    *arr = p;
    *cap = n;
    return PD_OK;
}

int pd_operator_reserve(struct pd_cluster *c, size_t n)
{
    size_t index_cap = c->op_cap;
    if (grow((void **)&c->op_index, &index_cap, c->op_count + n, sizeof *c->op_index) != PD_OK ||
        grow((void **)&c->ops, &c->op_cap, index_cap, sizeof *c->ops) != PD_OK ||
        grow((void **)&c->splits, &c->split_cap, c->split_count + n, sizeof *c->splits) != PD_OK)
        return PD_ERR_NOMEM;
    return PD_OK;
}

struct pd_split_job *pd_split_job_find(struct pd_cluster *c, uint64_t region_id)
{
    for (size_t i = 0; i < c->split_count; i++)
        if (c->splits[i].region_id == region_id)
            return &c->splits[i];
    return NULL;
}

int pd_split_job_add(struct pd_cluster *c, uint64_t region_id, struct pd_key *keys, size_t count)
{
    if (grow((void **)&c->splits, &c->split_cap, c->split_count + 1, sizeof *c->splits) != PD_OK)
        return PD_ERR_NOMEM;
    c->splits[c->split_count++] = (struct pd_split_job){region_id, keys, count};
    return PD_OK;
}

static void split_job_drop(struct pd_cluster *c, uint64_t region_id)
{
    struct pd_split_job *j = pd_split_job_find(c, region_id);
    if (j == NULL)
        return;
    pd_keys_free(j->keys, j->count);
    *j = c->splits[--c->split_count];
}

void pd_split_jobs_free(struct pd_cluster *c)
{
    for (size_t i = 0; i < c->split_count; i++)
        pd_keys_free(c->splits[i].keys, c->splits[i].count);
    free(c->splits);
    c->splits = NULL;
    c->split_count = c->split_cap = 0;
}

void pd_keys_free(struct pd_key *keys, size_t count)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        free(keys[i].data);
    free(keys);
}

void pd_operator_remove(struct pd_cluster *c, uint64_t region_id, enum pd_operator_status status)
{
    size_t k = index_lower_bound(c, region_id);
    if (k >= c->op_count || c->op_index[k].region_id != region_id)
        return;
    size_t i = c->op_index[k].at;
    struct pd_op_record *rec = &c->op_history[c->op_history_next];
    rec->op = c->ops[i];
    rec->status = status;
    c->op_history_next = (c->op_history_next + 1) % PD_OPERATOR_HISTORY;
    if (c->op_history_count < PD_OPERATOR_HISTORY)
        c->op_history_count++;
    if ((size_t)c->ops[i].kind < sizeof c->op_kind_count / sizeof c->op_kind_count[0])
        c->op_kind_count[c->ops[i].kind]--;
    memmove(&c->op_index[k], &c->op_index[k + 1], (c->op_count - k - 1) * sizeof *c->op_index);
    c->op_count--;
    if (i != c->op_count) {
        /* The last operator fills the hole: point its index entry at the new slot. */
        c->ops[i] = c->ops[c->op_count];
        c->op_index[index_lower_bound(c, c->ops[i].region_id)].at = i;
    }
    split_job_drop(c, region_id);
}

void pd_operator_on_replaced(struct pd_cluster *c, const struct pd_region *old,
                             const struct pd_region *by)
{
    const struct pd_operator *op = pd_operator_find(c, old->id);
    if (op == NULL)
        return;
    if (op->kind == PD_OP_KIND_SPLIT && by->epoch.version > op->epoch.version) {
        LOG(LOG_INFO, "operator %s finished for region=%llu: region %llu reported past the split",
            op->name, (unsigned long long)old->id, (unsigned long long)by->id);
        c->metrics.operators_finished++;
        pd_operator_remove(c, old->id, PD_OP_SUCCESS);
        return;
    }
    pd_operator_remove(c, old->id, PD_OP_CANCEL);
}

size_t pd_operator_count_kind(struct pd_cluster *c, enum pd_operator_kind kind)
{
    if ((size_t)kind >= sizeof c->op_kind_count / sizeof c->op_kind_count[0])
        return 0;
    return c->op_kind_count[kind];
}

/* step_done: whether the heartbeat shows the step's effect. */
static bool step_done(const struct pd_step *s, const struct pd_region *r)
{
    const struct pd_peer *p = pd_region_store_peer(r, s->store_id);
    switch (s->kind) {
    case PD_STEP_ADD_PEER:
        /* Present and caught up (no longer pending). */
        return p != NULL && p->id == s->peer_id && !pd_region_peer_is_pending(r, p->id);
    case PD_STEP_REMOVE_PEER:
        return p == NULL;
    case PD_STEP_TRANSFER_LEADER:
        return r->leader.store_id == s->store_id;
    case PD_STEP_SPLIT:
        return false; /* judged by the epoch in split_on_heartbeat */
    }
    return false;
}

/* step_impossible: the region shows the step can never finish as built. */
static bool step_impossible(const struct pd_step *s, const struct pd_region *r)
{
    const struct pd_peer *p = pd_region_store_peer(r, s->store_id);
    switch (s->kind) {
    case PD_STEP_ADD_PEER:
        return p != NULL && p->id != s->peer_id;
    case PD_STEP_REMOVE_PEER:
        return false;
    case PD_STEP_TRANSFER_LEADER:
        return p == NULL;
    case PD_STEP_SPLIT:
        return false;
    }
    return true;
}

/* epoch_moved_under: the region changed in a way the operator did not do, as PD's stale check:
 * its version moved (a split or merge), or its conf_ver grew by more than the membership
 * changes the operator has made so far (someone else changed the peers). The steps were built
 * for the old region, so carrying on could act on the wrong range or peers. */
static bool epoch_moved_under(const struct pd_operator *op, const struct pd_region *r)
{
    if (r->epoch.version != op->epoch.version)
        return true;
    uint64_t made = 0;
    for (size_t i = 0; i < op->step_count && i <= op->current_step; i++) {
        const struct pd_step *s = &op->steps[i];
        if (s->kind != PD_STEP_ADD_PEER && s->kind != PD_STEP_REMOVE_PEER)
            continue;
        const struct pd_peer *p = pd_region_store_peer(r, s->store_id);
        if (i < op->current_step)
            made++;
        else if (s->kind == PD_STEP_ADD_PEER && p != NULL && p->id == s->peer_id)
            made++; /* added, still catching up */
    }
    return r->epoch.conf_ver > op->epoch.conf_ver + made;
}

/* split_on_heartbeat: a split is done once the region's version grew (the left half keeps the
 * id); a membership change first makes the operator stale; else the leader gets the step. */
static void split_on_heartbeat(struct pd_cluster *c, struct pd_operator *op,
                               const struct pd_region *region, struct pd_step *step, bool *has_step)
{
    if (region->epoch.version > op->epoch.version) {
        LOG(LOG_INFO, "operator %s finished for region=%llu (version %llu -> %llu)", op->name,
            (unsigned long long)region->id, (unsigned long long)op->epoch.version,
            (unsigned long long)region->epoch.version);
        c->metrics.operators_finished++;
        pd_operator_remove(c, region->id, PD_OP_SUCCESS);
        return;
    }
    if (region->epoch.conf_ver != op->epoch.conf_ver) {
        LOG(LOG_WARN, "operator %s canceled for region=%llu: stale (conf_ver %llu -> %llu)",
            op->name, (unsigned long long)region->id, (unsigned long long)op->epoch.conf_ver,
            (unsigned long long)region->epoch.conf_ver);
        c->metrics.operators_canceled++;
        pd_operator_remove(c, region->id, PD_OP_CANCEL);
        return;
    }
    *step = op->steps[0];
    step->store_id = region->leader.store_id;
    step->peer_id = region->leader.id;
    *has_step = true;
}

void pd_operator_on_heartbeat(struct pd_cluster *c, const struct pd_region *region,
                              struct pd_step *step, bool *has_step)
{
    *has_step = false;
    struct pd_operator *op = pd_operator_find(c, region->id);
    if (op == NULL)
        return;
    if (op->kind == PD_OP_KIND_SPLIT) {
        split_on_heartbeat(c, op, region, step, has_step);
        return;
    }
    while (op->current_step < op->step_count && step_done(&op->steps[op->current_step], region))
        op->current_step++;
    if (op->current_step == op->step_count) {
        LOG(LOG_INFO, "operator %s finished for region=%llu", op->name,
            (unsigned long long)region->id);
        c->metrics.operators_finished++;
        pd_operator_remove(c, region->id, PD_OP_SUCCESS);
        return;
    }
    if (epoch_moved_under(op, region)) {
        LOG(LOG_WARN,
            "operator %s canceled for region=%llu: stale (epoch %llu/%llu when built, now "
            "%llu/%llu)",
            op->name, (unsigned long long)region->id, (unsigned long long)op->epoch.conf_ver,
            (unsigned long long)op->epoch.version, (unsigned long long)region->epoch.conf_ver,
            (unsigned long long)region->epoch.version);
        c->metrics.operators_canceled++;
        pd_operator_remove(c, region->id, PD_OP_CANCEL);
        return;
    }
    if (step_impossible(&op->steps[op->current_step], region)) {
        LOG(LOG_WARN, "operator %s canceled for region=%llu: step cannot finish", op->name,
            (unsigned long long)region->id);
        c->metrics.operators_canceled++;
        pd_operator_remove(c, region->id, PD_OP_CANCEL);
        return;
    }
    *step = op->steps[op->current_step];
    *has_step = true;
}

static uint64_t op_timeout_ms(const struct pd_cluster *c, const struct pd_operator *op)
{
    if (op->kind == PD_OP_KIND_SPLIT)
        return c->cfg.leader_operator_timeout_ms; /* one Raft proposal, like a leader transfer */
    for (size_t i = 0; i < op->step_count; i++)
        if (op->steps[i].kind != PD_STEP_TRANSFER_LEADER)
            return c->cfg.region_operator_timeout_ms;
    return c->cfg.leader_operator_timeout_ms;
}

void pd_operator_check_timeouts(struct pd_cluster *c)
{
    uint64_t now = pd_cluster_now_ms(c);
    for (size_t i = 0; i < c->op_count;) {
        struct pd_operator *op = &c->ops[i];
        if (now > op->create_ms + op_timeout_ms(c, op)) {
            LOG(LOG_WARN, "operator %s timed out for region=%llu at step %zu", op->name,
                (unsigned long long)op->region_id, op->current_step);
            c->metrics.operators_timed_out++;
            pd_operator_remove(c, op->region_id, PD_OP_TIMEOUT);
            continue; /* the last one moved into slot i */
        }
        i++;
    }
}

/* step_target_gone: the step needs a store that will not answer: not Up, or down. */
static bool step_target_gone(const struct pd_step *s, const struct pd_store_info *stores,
                             size_t count)
{
    if (s->kind != PD_STEP_ADD_PEER && s->kind != PD_STEP_TRANSFER_LEADER)
        return false;
    for (size_t i = 0; i < count; i++)
        if (stores[i].store.id == s->store_id)
            return stores[i].store.state != PD_STORE_UP || stores[i].down;
    return true;
}

size_t pd_operator_cancel_unreachable(struct pd_cluster *c, const struct pd_store_info *stores,
                                      size_t count)
{
    size_t canceled = 0;
    for (size_t i = 0; i < c->op_count;) {
        const struct pd_operator *op = &c->ops[i];
        const struct pd_step *gone = NULL;
        for (size_t k = op->current_step; op->kind != PD_OP_KIND_SPLIT && k < op->step_count; k++)
            if (step_target_gone(&op->steps[k], stores, count)) {
                gone = &op->steps[k];
                break;
            }
        if (gone == NULL) {
            i++;
            continue;
        }
        LOG(LOG_WARN, "operator %s canceled for region=%llu: store %llu is down or not Up",
            op->name, (unsigned long long)op->region_id, (unsigned long long)gone->store_id);
        c->metrics.operators_canceled++;
        pd_operator_remove(c, op->region_id, PD_OP_CANCEL);
        canceled++; /* the last one moved into slot i */
    }
    return canceled;
}

static void op_init(struct pd_operator *op, const struct pd_region *r, const char *name,
                    enum pd_operator_kind kind)
{
    memset(op, 0, sizeof *op);
    op->region_id = r->id;
    snprintf(op->name, sizeof op->name, "%s", name);
    op->kind = kind;
    op->epoch = r->epoch;
}

static void op_push(struct pd_operator *op, enum pd_step_kind kind, uint64_t store_id,
                    uint64_t peer_id)
{
    if (op->step_count >= PD_MAX_STEPS)
        return;
    struct pd_step *s = &op->steps[op->step_count++];
    s->kind = kind;
    s->store_id = store_id;
    s->peer_id = peer_id;
}

void pd_operator_build_transfer_leader(struct pd_operator *op, const struct pd_region *r,
                                       const char *name, enum pd_operator_kind kind,
                                       uint64_t to_store)
{
    op_init(op, r, name, kind);
    const struct pd_peer *p = pd_region_store_peer(r, to_store);
    op_push(op, PD_STEP_TRANSFER_LEADER, to_store, p ? p->id : 0);
}

int pd_operator_build_add_peer(struct pd_cluster *c, struct pd_operator *op,
                               const struct pd_region *r, const char *name,
                               enum pd_operator_kind kind, uint64_t store_id)
{
    uint64_t peer_id;
    int err = pd_cluster_alloc_id_locked(c, &peer_id);
    if (err != PD_OK)
        return err;
    op_init(op, r, name, kind);
    op_push(op, PD_STEP_ADD_PEER, store_id, peer_id);
    return PD_OK;
}

/* leader_away_steps: when the leader sits on store_id, hand leadership to another peer first
 * (prefer prefer_store, else a peer that is not pending). */
static void leader_away_steps(struct pd_operator *op, const struct pd_region *r, uint64_t store_id,
                              uint64_t prefer_store, uint64_t prefer_peer)
{
    if (r->leader.store_id != store_id)
        return;
    if (prefer_store) {
        op_push(op, PD_STEP_TRANSFER_LEADER, prefer_store, prefer_peer);
        return;
    }
    for (size_t i = 0; i < r->peer_count; i++) {
        const struct pd_peer *p = &r->peers[i];
        if (p->store_id != store_id && !pd_region_peer_is_pending(r, p->id)) {
            op_push(op, PD_STEP_TRANSFER_LEADER, p->store_id, p->id);
            return;
        }
    }
}

void pd_operator_build_remove_peer(struct pd_operator *op, const struct pd_region *r,
                                   const char *name, enum pd_operator_kind kind, uint64_t store_id)
{
    op_init(op, r, name, kind);
    const struct pd_peer *p = pd_region_store_peer(r, store_id);
    leader_away_steps(op, r, store_id, 0, 0);
    op_push(op, PD_STEP_REMOVE_PEER, store_id, p ? p->id : 0);
}

void pd_operator_build_split(struct pd_operator *op, const struct pd_region *r, size_t key_count)
{
    op_init(op, r, "split-region", PD_OP_KIND_SPLIT);
    op_push(op, PD_STEP_SPLIT, r->leader.store_id, r->leader.id);
    op->steps[0].split_key_count = key_count;
}

int pd_operator_build_move_peer(struct pd_cluster *c, struct pd_operator *op,
                                const struct pd_region *r, const char *name,
                                enum pd_operator_kind kind, uint64_t from_store, uint64_t to_store)
{
    int err = pd_operator_build_add_peer(c, op, r, name, kind, to_store);
    if (err != PD_OK)
        return err;
    uint64_t new_peer = op->steps[0].peer_id;
    const struct pd_peer *p = pd_region_store_peer(r, from_store);
    leader_away_steps(op, r, from_store, to_store, new_peer);
    op_push(op, PD_STEP_REMOVE_PEER, from_store, p ? p->id : 0);
    return PD_OK;
}

int pd_cluster_get_operator_status(struct pd_cluster *c, uint64_t region_id,
                                   struct pd_operator *out, enum pd_operator_status *status)
{
    int err = PD_OK;
    pthread_mutex_lock(&c->mu);
    const struct pd_operator *op = pd_operator_find(c, region_id);
    if (op) {
        *out = *op;
        *status = PD_OP_RUNNING;
        goto cleanup;
    }
    for (size_t n = 0; n < c->op_history_count; n++) {
        size_t i = (c->op_history_next + PD_OPERATOR_HISTORY - 1 - n) % PD_OPERATOR_HISTORY;
        if (c->op_history[i].op.region_id == region_id) {
            *out = c->op_history[i].op;
            *status = c->op_history[i].status;
            goto cleanup;
        }
    }
    err = pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "region %llu has no operator on record",
                             (unsigned long long)region_id);
cleanup:
    pthread_mutex_unlock(&c->mu);
    return err;
}

const char *pd_operator_status_name(enum pd_operator_status s)
{
    switch (s) {
    case PD_OP_SUCCESS:
        return "SUCCESS";
    case PD_OP_TIMEOUT:
        return "TIMEOUT";
    case PD_OP_CANCEL:
        return "CANCEL";
    case PD_OP_REPLACE:
        return "REPLACE";
    case PD_OP_RUNNING:
        return "RUNNING";
    }
    return "UNKNOWN";
}
