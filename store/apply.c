/* apply.c — applying a Ready's committed entries: data, membership, log compaction, splits and
 * consistency checks, in one kv write batch whose answers go out after it is written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/log.h"
#include "store/local_read.h"
#include "store/raftstore_internal.h"
#include "store/raftstore_metrics.h"

void apply_add_done(struct apply_ctx *ac, raftstore_cb cb, void *arg, int code,
                    const struct storage_error *err)
{
    if (ac->n_done == ac->cap_done) {
        size_t cap = ac->cap_done ? ac->cap_done * 2 : 16;
        struct applied_cb *grown = realloc(ac->done, cap * sizeof *grown);
        if (!grown) {
            raftstore_answer(cb, arg, STORAGE_ERR_NOMEM, NULL, NULL);
            return;
        }
        ac->done = grown;
        ac->cap_done = cap;
    }
    struct applied_cb *d = &ac->done[ac->n_done++];
    memset(d, 0, sizeof *d);
    d->cb = cb;
    d->arg = arg;
    d->code = code;
    if (err)
        d->err = *err;
}

/* Pops the proposals up to entry (index, term) and returns those that entry is (same index and
 * term: one entry carries a round's batched writes), chained in proposal order, or NULL.
 * Another term at the index means the proposal was superseded: it never applies
 * (StaleCommand). A proposal whose index was passed without being seen (a snapshot covered it)
 * is undetermined. */
static struct proposal *take_proposal(struct peer *p, uint64_t index, uint64_t term,
                                      struct apply_ctx *ac)
{
    struct proposal *match = NULL, **match_tail = &match;
    while (p->proposals && p->proposals->index <= index) {
        struct proposal *pr = p->proposals;
        p->proposals = pr->next;
        if (!p->proposals)
            p->proposals_tail = NULL;
        if (pr->index == index && pr->term == term) {
            pr->next = NULL;
            *match_tail = pr;
            match_tail = &pr->next;
            continue;
        }
        struct storage_error err;
        memset(&err, 0, sizeof err);
        err.code = STORAGE_ERR_REGION;
        err.region_id = p->region_id;
        if (pr->index == index) {
            err.region_kind = STORAGE_REGION_ERR_STALE_COMMAND;
            snprintf(err.msg, sizeof err.msg, "command was superseded by a new leader's log");
        } else {
            err.region_kind = STORAGE_REGION_ERR_UNDETERMINED;
            snprintf(err.msg, sizeof err.msg,
                     "command's entry was applied from a snapshot or not at all");
        }
        apply_add_done(ac, pr->cb, pr->cb_arg, STORAGE_ERR_REGION, &err);
        free(pr);
    }
    return match;
}

/* Answers every proposal of the chain with one outcome and frees them. */
static void answer_proposals(struct apply_ctx *ac, struct proposal *pr, int code,
                             const struct storage_error *err)
{
    while (pr) {
        struct proposal *next = pr->next;
        apply_add_done(ac, pr->cb, pr->cb_arg, code, err);
        free(pr);
        pr = next;
    }
}

static int cf_of(const char *name)
{
    return storage_cf_parse(name ? name : "", name ? strlen(name) : 0);
}

/* Applies a data command into the batch; returns 0 or fills *err. */
static int apply_data(struct peer *p, const RaftCmdpb__RaftCmdRequest *cmd, struct apply_ctx *ac,
                      struct storage_error *err)
{
    const struct region *r = &p->ps.region;
    if (!cmd->header || !cmd->header->region_epoch ||
        cmd->header->region_epoch->version != r->version) {
        err->region_kind = STORAGE_REGION_ERR_EPOCH_NOT_MATCH;
        snprintf(err->msg, sizeof err->msg, "region changed before the command applied");
        return -1;
    }
    for (size_t i = 0; i < cmd->n_requests; i++) {
        const RaftCmdpb__Request *q = cmd->requests[i];
        const ProtobufCBinaryData *key = q->put       ? &q->put->key
                                         : q->delete_ ? &q->delete_->key
                                                      : NULL;
        if (!key || !store_region_contains_stored(r, key->data, key->len)) {
            err->region_kind = STORAGE_REGION_ERR_KEY_NOT_IN_REGION;
            snprintf(err->msg, sizeof err->msg, "key is not in region");
            return -1;
        }
    }
    for (size_t i = 0; i < cmd->n_requests; i++) {
        const RaftCmdpb__Request *q = cmd->requests[i];
        if (q->cmd_type == RAFT_CMDPB__CMD_TYPE__Put && q->put) {
            int cf = cf_of(q->put->cf);
            if (cf < 0)
                continue;
            rocksdb_writebatch_put_cf(ac->kv_wb, engine_cf(p->rs->cfg.kv, cf),
                                      (const char *)q->put->key.data, q->put->key.len,
                                      (const char *)q->put->value.data, q->put->value.len);
            /* The split check's size-diff hint. A user key shows up as a
             * commit record (write CF) or a raw key (whole enc groups). */
            p->size_diff_hint += q->put->key.len + q->put->value.len;
            if (cf == STORAGE_CF_WRITE || (cf == STORAGE_CF_DEFAULT && q->put->key.len % 9 == 0))
                p->keys_diff_hint++;
        } else if (q->cmd_type == RAFT_CMDPB__CMD_TYPE__Delete && q->delete_) {
            int cf = cf_of(q->delete_->cf);
            if (cf < 0)
                continue;
            rocksdb_writebatch_delete_cf(ac->kv_wb, engine_cf(p->rs->cfg.kv, cf),
                                         (const char *)q->delete_->key.data, q->delete_->key.len);
        }
    }
    return 0;
}

static void apply_compact_log(struct peer *p, const RaftCmdpb__CompactLogRequest *req,
                              struct apply_ctx *ac)
{
    struct peer_storage *ps = &p->ps;
    if (!req || req->compact_index <= ps->truncated_index || req->compact_index > ps->applied_index)
        return;
    ps->truncated_index = req->compact_index;
    ps->truncated_term = req->compact_term;
    ac->compact_to = req->compact_index + 1;
    /* The log below compact_index is deleted after this batch: the applied
     * state it replaces must be on disk first. */
    ac->sync = 1;
}

static void apply_conf_change(struct peer *p, const struct raft_entry *e, struct apply_ctx *ac,
                              struct proposal *pr)
{
    Eraftpb__ConfChange *cc = eraftpb__conf_change__unpack(NULL, e->data_len, e->data);
    if (!cc) {
        LOG(LOG_ERROR, "region=%llu: conf change entry %llu does not decode",
            (unsigned long long)p->region_id, (unsigned long long)e->index);
        abort();
    }
    RaftCmdpb__RaftCmdRequest *cmd =
        raft_cmdpb__raft_cmd_request__unpack(NULL, cc->context.len, cc->context.data);
    struct region *r = &p->ps.region;
    const RaftCmdpb__ChangePeerRequest *cp =
        cmd && cmd->admin_request ? cmd->admin_request->change_peer : NULL;
    int remove = cc->change_type == ERAFTPB__CONF_CHANGE_TYPE__RemoveNode;
    int stale = !cp || !cp->peer || !cmd->header || !cmd->header->region_epoch ||
                cmd->header->region_epoch->conf_ver != r->conf_ver;
    int noop = !stale && (remove ? !store_region_peer_by_id(r, cc->node_id)
                                 : store_region_peer_by_id(r, cc->node_id) != NULL);
    if (stale || noop) {
        struct storage_error err;
        memset(&err, 0, sizeof err);
        err.code = STORAGE_ERR_REGION;
        err.region_kind = STORAGE_REGION_ERR_EPOCH_NOT_MATCH;
        snprintf(err.msg, sizeof err.msg, "stale membership change");
        answer_proposals(ac, pr, STORAGE_ERR_REGION, &err);
    } else {
        /* Another membership: another quorum, whose lease none of its members has promised. */
        local_read_withdraw(p->rs->local_reads, p->region_id);
        if (remove)
            store_region_remove_peer(r, cc->node_id);
        else
            store_region_add_peer(r, (struct region_peer){cp->peer->id, cp->peer->store_id});
        r->conf_ver++;
        peer_storage_region_state_to_batch(&p->ps, NULL, 0, ac->kv_wb);
        ac->sync = 1;
        ac->region_changed = 1;
        struct raft_conf_change rcc = {remove ? RAFT_CONF_REMOVE_NODE : RAFT_CONF_ADD_NODE,
                                       cc->node_id, NULL, 0};
        raft_rawnode_apply_conf_change(p->rn, &rcc, NULL);
        LOG(LOG_INFO, "region=%llu peer=%llu: %s peer %llu, conf_ver %llu, %zu peers",
            (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
            remove ? "removed" : "added", (unsigned long long)cc->node_id,
            (unsigned long long)r->conf_ver, r->n_peers);
        if (remove && cc->node_id == p->peer_id)
            p->pending_remove = 1;
        answer_proposals(ac, pr, 0, NULL);
    }
    if (cmd)
        raft_cmdpb__raft_cmd_request__free_unpacked(cmd, NULL);
    eraftpb__conf_change__free_unpacked(cc, NULL);
}

static void apply_entry(struct peer *p, const struct raft_entry *e, struct apply_ctx *ac)
{
    struct proposal *pr = take_proposal(p, e->index, e->term, ac);
    p->ps.applied_index = e->index;
    p->ps.applied_term = e->term;
    if (e->entry_type == RAFT_ENTRY_CONF_CHANGE) {
        apply_conf_change(p, e, ac, pr);
        return;
    }
    if (e->data_len == 0) { /* a new leader's empty entry */
        answer_proposals(ac, pr, 0, NULL);
        return;
    }
    RaftCmdpb__RaftCmdRequest *cmd =
        raft_cmdpb__raft_cmd_request__unpack(NULL, e->data_len, e->data);
    if (!cmd) {
        LOG(LOG_ERROR, "region=%llu: entry %llu does not decode", (unsigned long long)p->region_id,
            (unsigned long long)e->index);
        abort();
    }
    struct storage_error err;
    memset(&err, 0, sizeof err);
    int failed = 0;
    if (cmd->admin_request) {
        switch (cmd->admin_request->cmd_type) {
        case RAFT_CMDPB__ADMIN_CMD_TYPE__CompactLog:
            apply_compact_log(p, cmd->admin_request->compact_log, ac);
            break;
        case RAFT_CMDPB__ADMIN_CMD_TYPE__Split:
            failed = split_apply(p, cmd, ac, &err) != 0;
            break;
        case RAFT_CMDPB__ADMIN_CMD_TYPE__ComputeHash:
            consistency_apply_compute(p, cmd->admin_request, e->index, ac);
            break;
        case RAFT_CMDPB__ADMIN_CMD_TYPE__VerifyHash:
            consistency_apply_verify(p, cmd->admin_request);
            break;
        default:
            /* Never acknowledged: an entry this version cannot apply. */
            err.region_kind = STORAGE_REGION_ERR_STALE_COMMAND;
            snprintf(err.msg, sizeof err.msg, "unknown admin command %d",
                     (int)cmd->admin_request->cmd_type);
            failed = 1;
            break;
        }
    } else {
        failed = apply_data(p, cmd, ac, &err) != 0;
    }
    if (failed) {
        err.code = STORAGE_ERR_REGION;
        err.region_id = p->region_id;
        answer_proposals(ac, pr, STORAGE_ERR_REGION, &err);
    } else {
        answer_proposals(ac, pr, 0, NULL);
    }
    raft_cmdpb__raft_cmd_request__free_unpacked(cmd, NULL);
}

void apply_committed(struct peer *p, const struct raft_ready *rd)
{
    struct raftstore *rs = p->rs;
    uint64_t apply_start_ns = metrics_now_ns();
    struct apply_ctx ac;
    memset(&ac, 0, sizeof ac);
    ac.kv_wb = rocksdb_writebatch_create();
    for (size_t i = 0; i < rd->n_committed_entries; i++) {
        if (rd->committed_entries[i].index <= p->ps.applied_index)
            continue; /* already applied before a restart */
        apply_entry(p, &rd->committed_entries[i], &ac);
        metrics_counter_inc(RAFTSTORE_METRIC(rs, entries_applied));
    }
    peer_storage_apply_state_to_batch(&p->ps, ac.kv_wb);
    char err[256];
    if (engine_write_batch(rs->cfg.kv, ac.kv_wb, ac.sync, err, sizeof err) != 0) {
        LOG(LOG_ERROR, "region=%llu: kv write failed: %s", (unsigned long long)p->region_id, err);
        abort();
    }
    rocksdb_writebatch_destroy(ac.kv_wb);
    metrics_histogram_since(RAFTSTORE_METRIC(rs, apply_seconds), apply_start_ns);
    if (ac.n_new_regions) {
        split_create_peers(p, &ac);
        for (size_t i = 0; i < ac.n_new_regions; i++)
            store_region_free(&ac.new_regions[i]);
        free(ac.new_regions);
        if (p->is_leader)
            peer_region_heartbeat(p);
    } else if (ac.region_changed && store_meta_put(&rs->meta, &p->ps.region) != 0) {
        abort();
    }
    for (size_t i = 0; i < ac.n_done; i++)
        raftstore_answer(ac.done[i].cb, ac.done[i].arg, ac.done[i].code, &ac.done[i].err, NULL);
    free(ac.done);
    if (ac.compact_to > p->last_compact_index) {
        raftlog_gc_schedule(rs, p->region_id, p->last_compact_index, ac.compact_to);
        p->last_compact_index = ac.compact_to;
    }
}
