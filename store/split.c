/* split.c — splitting a region: the leader's Split proposal, its atomic apply, and the new peers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "proto/log.h"
#include "store/local_read.h"
#include "store/raftstore_internal.h"

/*
 * A split at user key K of region R = [S, E) (TinyKV's SplitRequest): R keeps
 * [S, K) and its id; the new region N = [K, E) takes new_region_id and, for
 * the i-th peer of R, a new peer new_peer_ids[i] on the same store. Both get
 * version R.version + 1 and R's conf_ver. Applying writes, in the one synced
 * kv batch of that Ready: R's shrunk RegionLocalState, N's RegionLocalState
 * and N's initial RaftApplyState (applied and truncated at
 * STORE_INIT_LOG_INDEX). N's RaftLocalState is derived from that at load, so
 * a crash before or after the batch leaves either no split or a whole one.
 * Data keys do not move: they already lie in N's data range.
 */

static void answer_error(struct peer *p, raftstore_cb cb, void *arg,
                         enum storage_region_error_kind kind, const char *msg)
{
    if (cb)
        raftstore_answer_region_error(cb, arg, kind, p->region_id, 0, 0, msg);
}

/* Whether key K can split region r: S < K < E (strictly inside, not empty). */
static int splittable(const struct region *r, const void *key, size_t len)
{
    return len > 0 && store_region_contains(r, key, len) &&
           codec_bytes_cmp(key, len, r->start_key, r->start_key_len) != 0;
}

void split_propose(struct peer *p, struct mail *m)
{
    const struct region *r = &p->ps.region;
    if (!p->is_leader) {
        answer_error(p, m->cb, m->cb_arg, STORAGE_REGION_ERR_NOT_LEADER, "not leader");
        return;
    }
    if (m->epoch_version && m->epoch_version != r->version) {
        answer_error(p, m->cb, m->cb_arg, STORAGE_REGION_ERR_EPOCH_NOT_MATCH,
                     "region changed since the split was asked for");
        return;
    }
    if (!splittable(r, m->split_key, m->split_key_len)) {
        answer_error(p, m->cb, m->cb_arg, STORAGE_REGION_ERR_KEY_NOT_IN_REGION,
                     "split key is not strictly inside the region");
        return;
    }
    if (m->n_new_peer_ids != r->n_peers || !m->new_region_id) {
        if (m->cb)
            raftstore_answer(m->cb, m->cb_arg, STORAGE_ERR_INVALID, NULL, NULL);
        return;
    }
    RaftCmdpb__RaftCmdRequest cmd = RAFT_CMDPB__RAFT_CMD_REQUEST__INIT;
    RaftCmdpb__AdminRequest admin = RAFT_CMDPB__ADMIN_REQUEST__INIT;
    RaftCmdpb__SplitRequest split = RAFT_CMDPB__SPLIT_REQUEST__INIT;
    split.split_key = (ProtobufCBinaryData){m->split_key_len, m->split_key};
    split.new_region_id = m->new_region_id;
    split.new_peer_ids = m->new_peer_ids;
    split.n_new_peer_ids = m->n_new_peer_ids;
    admin.cmd_type = RAFT_CMDPB__ADMIN_CMD_TYPE__Split;
    admin.split = &split;
    cmd.admin_request = &admin;
    LOG(LOG_INFO, "region=%llu peer=%llu: proposing split into region %llu",
        (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
        (unsigned long long)m->new_region_id);
    peer_propose_admin(p, &cmd, m->cb, m->cb_arg);
}

int split_apply(struct peer *p, const RaftCmdpb__RaftCmdRequest *cmd, struct apply_ctx *ac,
                struct storage_error *err)
{
    const RaftCmdpb__SplitRequest *req = cmd->admin_request->split;
    struct region *r = &p->ps.region;
    if (!cmd->header || !cmd->header->region_epoch ||
        cmd->header->region_epoch->version != r->version) {
        err->region_kind = STORAGE_REGION_ERR_EPOCH_NOT_MATCH;
        snprintf(err->msg, sizeof err->msg, "region changed before the split applied");
        return -1;
    }
    if (!req || !splittable(r, req->split_key.data, req->split_key.len)) {
        err->region_kind = STORAGE_REGION_ERR_KEY_NOT_IN_REGION;
        snprintf(err->msg, sizeof err->msg, "split key is not strictly inside the region");
        return -1;
    }
    if (req->n_new_peer_ids != r->n_peers || !req->new_region_id ||
        raftstore_find_peer(p->rs, req->new_region_id)) {
        err->region_kind = STORAGE_REGION_ERR_EPOCH_NOT_MATCH;
        snprintf(err->msg, sizeof err->msg, "split ids do not fit the region");
        return -1;
    }
    struct region *grown = realloc(ac->new_regions, (ac->n_new_regions + 1) * sizeof *grown);
    if (!grown)
        abort(); /* a committed entry must apply the same on every replica */
    ac->new_regions = grown;
    struct region *n = &ac->new_regions[ac->n_new_regions];
    memset(n, 0, sizeof *n);
    n->id = req->new_region_id;
    n->start_key = malloc(req->split_key.len);
    n->start_key_len = req->split_key.len;
    n->end_key = malloc(r->end_key_len ? r->end_key_len : 1);
    n->end_key_len = r->end_key_len;
    n->peers = malloc(r->n_peers * sizeof *n->peers);
    uint8_t *left_end = malloc(req->split_key.len);
    if (!n->start_key || !n->end_key || !n->peers || !left_end)
        abort();
    memcpy(n->start_key, req->split_key.data, req->split_key.len);
    if (r->end_key_len)
        memcpy(n->end_key, r->end_key, r->end_key_len);
    for (size_t i = 0; i < r->n_peers; i++)
        n->peers[i] = (struct region_peer){req->new_peer_ids[i], r->peers[i].store_id};
    n->n_peers = r->n_peers;
    n->conf_ver = r->conf_ver;
    n->version = r->version + 1;
    ac->n_new_regions++;

    memcpy(left_end, req->split_key.data, req->split_key.len);
    free(r->end_key);
    r->end_key = left_end;
    r->end_key_len = req->split_key.len;
    r->version++;
    /* The keys from split_key on are the new region's from here: no local read of them here. */
    local_read_withdraw(p->rs->local_reads, p->region_id);

    struct peer_storage fresh = {
        .region_id = n->id,
        .kv = p->ps.kv,
        .raft = p->ps.raft,
        .applied_index = STORE_INIT_LOG_INDEX,
        .truncated_index = STORE_INIT_LOG_INDEX,
        .truncated_term = STORE_INIT_LOG_TERM,
    };
    peer_storage_region_state_to_batch(&p->ps, NULL, 0, ac->kv_wb);
    peer_storage_region_state_to_batch(&p->ps, n, 0, ac->kv_wb);
    peer_storage_apply_state_to_batch(&fresh, ac->kv_wb);
    ac->sync = 1;
    LOG(LOG_INFO, "region=%llu peer=%llu: split, new region %llu, version %llu",
        (unsigned long long)p->region_id, (unsigned long long)p->peer_id, (unsigned long long)n->id,
        (unsigned long long)r->version);
    return 0;
}

void split_create_peers(struct peer *parent, struct apply_ctx *ac)
{
    struct raftstore *rs = parent->rs;
    /* The parent shrinks in the index first, so the new ranges are free. */
    if (store_meta_put(&rs->meta, &parent->ps.region) != 0)
        abort();
    /* Both halves are measured afresh (the new peers start unmeasured). */
    parent->approx_known = 0;
    for (size_t i = 0; i < ac->n_new_regions; i++) {
        const struct region *n = &ac->new_regions[i];
        const struct region_peer *me = store_region_peer_on_store(n, rs->cfg.store_id);
        if (!me)
            continue;
        struct peer_storage ps;
        char err[256];
        int rc = peer_storage_load(&ps, rs->cfg.kv, rs->cfg.raft, rs->cfg.store_id, n->id);
        struct peer *p = NULL;
        if (!rc)
            rc = peer_create(rs, me->id, &ps, 0, &p, err, sizeof err);
        else
            peer_storage_close(&ps);
        if (rc || raftstore_add_peer(rs, p) != 0) {
            LOG(LOG_ERROR, "region=%llu: cannot start the peer of a split: %s",
                (unsigned long long)n->id, rc ? err : "index");
            abort();
        }
        /* The parent's leader campaigns at once, so the new region has a
         * leader promptly; the others wait for its votes (not an election
         * timeout each). */
        if (parent->is_leader)
            raft_rawnode_campaign(p->rn);
        LOG(LOG_INFO, "region=%llu peer=%llu: created by a split of region %llu",
            (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
            (unsigned long long)parent->region_id);
    }
}
