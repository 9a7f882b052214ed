/* raftstore.c — the store loop: mailbox, ticks, batched persistence of every ready peer, start-up
 * and shutdown. */
#include "store/raftstore_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/codec.h"
#include "proto/log.h"
#include "store/keys.h"
#include "store/local_read.h"
#include "store/raft_codec.h"
#include "store/raftstore_metrics.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void raftstore_post(struct raftstore *rs, struct mail *m)
{
    m->next = NULL;
    pthread_mutex_lock(&rs->mu);
    if (rs->stopping) {
        pthread_mutex_unlock(&rs->mu);
        if (m->cb)
            raftstore_answer(m->cb, m->cb_arg, STORAGE_ERR_CLOSED, NULL, NULL);
        if (m->raft_msg)
            protobuf_c_message_free_unpacked(&m->raft_msg->base, NULL);
        if (m->cmd)
            protobuf_c_message_free_unpacked(&m->cmd->base, NULL);
        raft_snapshot_free(&m->snap);
        free(m);
        return;
    }
    if (rs->mail_tail)
        rs->mail_tail->next = m;
    else
        rs->mail_head = m;
    rs->mail_tail = m;
    pthread_cond_signal(&rs->cond);
    pthread_mutex_unlock(&rs->mu);
}

/* Position of region_id in rs->by_id, or where it would go; *found set. */
static size_t peer_slot(const struct raftstore *rs, uint64_t region_id, int *found)
{
    size_t lo = 0, hi = rs->n_by_id;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rs->by_id[mid]->region_id < region_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < rs->n_by_id && rs->by_id[lo]->region_id == region_id;
    return lo;
}

struct peer *raftstore_find_peer(struct raftstore *rs, uint64_t region_id)
{
    int found;
    size_t i = peer_slot(rs, region_id, &found);
    return found ? rs->by_id[i] : NULL;
}

int raftstore_add_peer(struct raftstore *rs, struct peer *p)
{
    int found;
    size_t i = peer_slot(rs, p->region_id, &found);
    if (found)
        return -1;
    if (rs->n_by_id == rs->cap_by_id) {
        size_t cap = rs->cap_by_id ? rs->cap_by_id * 2 : 16;
        struct peer **grown = realloc(rs->by_id, cap * sizeof *grown);
        if (!grown)
            return -1;
        rs->by_id = grown;
        rs->cap_by_id = cap;
    }
    if (hibernate_track(rs, p) != 0)
        return -1;
    if (peer_storage_initialized(&p->ps) && store_meta_put(&rs->meta, &p->ps.region) != 0) {
        hibernate_untrack(rs, p);
        return -1;
    }
    memmove(&rs->by_id[i + 1], &rs->by_id[i], (rs->n_by_id - i) * sizeof *rs->by_id);
    rs->by_id[i] = p;
    rs->n_by_id++;
    p->next = rs->peers;
    rs->peers = p;
    rs->info_dirty = 1;
    raftstore_touch(rs, p);
    return 0;
}

void raftstore_touch(struct raftstore *rs, struct peer *p)
{
    if (p->active)
        return;
    if (rs->n_active == rs->cap_active) {
        size_t cap = rs->cap_active ? rs->cap_active * 2 : 64;
        struct peer **grown = realloc(rs->active, cap * sizeof *grown);
        if (!grown) {
            rs->all_active = 1;
            return;
        }
        rs->active = grown;
        rs->cap_active = cap;
    }
    rs->active[rs->n_active++] = p;
    p->active = 1;
}

/* Drops a peer from the active list (it is being destroyed). */
static void untouch(struct raftstore *rs, struct peer *p)
{
    for (size_t i = 0; p->active && i < rs->n_active; i++) {
        if (rs->active[i] == p) {
            rs->active[i] = rs->active[--rs->n_active];
            p->active = 0;
        }
    }
}

/* Drops a peer from the id index (the caller unlinks it from the list). */
static void remove_peer_index(struct raftstore *rs, struct peer *p)
{
    int found;
    size_t i = peer_slot(rs, p->region_id, &found);
    if (!found || rs->by_id[i] != p)
        return;
    memmove(&rs->by_id[i], &rs->by_id[i + 1], (rs->n_by_id - i - 1) * sizeof *rs->by_id);
    rs->n_by_id--;
}

void raftstore_send(struct raftstore *rs, struct peer *p, const struct raft_message *m)
{
    const struct region *r = &p->ps.region;
    const struct region_peer *to = store_region_peer_by_id(r, m->to);
    const struct region_peer *from = store_region_peer_by_id(r, m->from);
    for (size_t i = 0; !to && i < p->n_peer_cache; i++)
        if (p->peer_cache[i].id == m->to)
            to = &p->peer_cache[i];
    if (!to) {
        LOG(LOG_DEBUG, "region=%llu peer=%llu: no store known for peer %llu, message dropped",
            (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
            (unsigned long long)m->to);
        return;
    }
    Metapb__Peer from_peer = METAPB__PEER__INIT, to_peer = METAPB__PEER__INIT;
    from_peer.id = m->from;
    from_peer.store_id = from ? from->store_id : rs->cfg.store_id;
    to_peer.id = to->id;
    to_peer.store_id = to->store_id;
    Metapb__RegionEpoch epoch = METAPB__REGION_EPOCH__INIT;
    epoch.conf_ver = r->conf_ver;
    epoch.version = r->version;
    RaftServerpb__RaftMessage msg = RAFT_SERVERPB__RAFT_MESSAGE__INIT;
    msg.region_id = p->region_id;
    msg.from_peer = &from_peer;
    msg.to_peer = &to_peer;
    msg.region_epoch = &epoch;
    msg.start_key.data = r->start_key;
    msg.start_key.len = r->start_key_len;
    msg.end_key.data = r->end_key;
    msg.end_key.len = r->end_key_len;
    msg.message = raft_codec_message_to_proto(m);
    if (!msg.message)
        return;
    if (m->msg_type == RAFT_MSG_SNAPSHOT) {
        metrics_counter_inc(RAFTSTORE_METRIC(rs, snapshots_sent));
        metrics_counter_add(RAFTSTORE_METRIC(rs, snapshot_bytes_sent),
                            snapshot_file_bytes(m->snapshot.data, m->snapshot.data_len));
    }
    rs->cfg.transport.send(rs->cfg.transport_ctx, to->store_id, &msg);
    raft_codec_message_proto_free(msg.message);
}

/* ---- mail handling (loop thread) ---- */

static int is_tombstoned(struct raftstore *rs, uint64_t region_id, uint64_t conf_ver)
{
    for (size_t i = 0; i < rs->n_tombstones; i++)
        if (rs->tombstones[i].region_id == region_id && conf_ver <= rs->tombstones[i].conf_ver)
            return 1;
    return 0;
}

/* Messages that may create a peer here: a leader (or candidate) reaching a new member. */
static int may_create_peer(const RaftServerpb__RaftMessage *msg)
{
    if (!msg->message || msg->is_tombstone)
        return 0;
    switch ((int)msg->message->msg_type) {
    case RAFT_MSG_APPEND:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_SNAPSHOT:
    case RAFT_MSG_REQUEST_VOTE:
    case RAFT_MSG_REQUEST_PRE_VOTE:
        return 1;
    default:
        return 0;
    }
}

static struct peer *create_peer_from_message(struct raftstore *rs,
                                             const RaftServerpb__RaftMessage *msg)
{
    uint64_t conf_ver = msg->region_epoch ? msg->region_epoch->conf_ver : 0;
    if (is_tombstoned(rs, msg->region_id, conf_ver))
        return NULL;
    /* A region we do not have whose range overlaps one we do: it was split
     * off a region this store has not split yet (the split will create the
     * peer), or it is stale. Creating a peer now could vote or take a
     * snapshot over data this store still serves. */
    uint64_t other = store_meta_overlap(&rs->meta, msg->start_key.data, msg->start_key.len,
                                        msg->end_key.data, msg->end_key.len, msg->region_id);
    if (other) {
        LOG(LOG_DEBUG, "region=%llu: message dropped: its range overlaps region %llu here",
            (unsigned long long)msg->region_id, (unsigned long long)other);
        return NULL;
    }
    struct region r;
    memset(&r, 0, sizeof r);
    r.id = msg->region_id;
    struct peer_storage ps;
    if (peer_storage_init_new(&ps, rs->cfg.kv, rs->cfg.raft, rs->cfg.store_id, &r) != 0) {
        peer_storage_close(&ps);
        return NULL;
    }
    struct peer *p;
    char err[256];
    if (peer_create(rs, msg->to_peer->id, &ps, 1, &p, err, sizeof err) != 0) {
        LOG(LOG_WARN, "region=%llu: cannot create peer: %s", (unsigned long long)msg->region_id,
            err);
        return NULL;
    }
    if (raftstore_add_peer(rs, p) != 0) {
        peer_free(p, STORAGE_ERR_CLOSED);
        return NULL;
    }
    LOG(LOG_INFO, "region=%llu peer=%llu: created by a message from peer %llu",
        (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
        (unsigned long long)(msg->from_peer ? msg->from_peer->id : 0));
    return p;
}

/* A snapshot message whose region overlaps another region of this store
 * (or one whose snapshot is being applied) must not be stepped. */
static int snapshot_overlaps(struct raftstore *rs, const RaftServerpb__RaftMessage *msg)
{
    const Eraftpb__Message *m = msg->message;
    if (!m || (int)m->msg_type != RAFT_MSG_SNAPSHOT || !m->snapshot)
        return 0;
    RaftServerpb__RaftSnapshotData *sd = raft_serverpb__raft_snapshot_data__unpack(
        NULL, m->snapshot->data.len, m->snapshot->data.data);
    if (!sd || !sd->region) {
        if (sd)
            raft_serverpb__raft_snapshot_data__free_unpacked(sd, NULL);
        return 1; /* not a snapshot we could apply */
    }
    const Metapb__Region *r = sd->region;
    uint64_t other = store_meta_overlap(&rs->meta, r->start_key.data, r->start_key.len,
                                        r->end_key.data, r->end_key.len, msg->region_id);
    raft_serverpb__raft_snapshot_data__free_unpacked(sd, NULL);
    if (other)
        LOG(LOG_INFO, "region=%llu: snapshot dropped: its range overlaps region %llu here",
            (unsigned long long)msg->region_id, (unsigned long long)other);
    return other != 0;
}

static void handle_raft_mail(struct raftstore *rs, struct mail *m)
{
    RaftServerpb__RaftMessage *msg = m->raft_msg;
    if (!msg->to_peer || !msg->from_peer || msg->to_peer->store_id != rs->cfg.store_id)
        return;
    if (hibernate_heard_from(rs, msg))
        return;
    struct peer *p = raftstore_find_peer(rs, msg->region_id);
    if (!p) {
        if (!may_create_peer(msg))
            return;
        p = create_peer_from_message(rs, msg);
        if (!p)
            return;
    }
    if (p->peer_id != msg->to_peer->id)
        return; /* meant for an older or newer incarnation of the peer */
    if (msg->message && msg->message->msg_type == ERAFTPB__MESSAGE_TYPE__MsgSnapshot &&
        msg->message->snapshot) {
        metrics_counter_inc(RAFTSTORE_METRIC(rs, snapshots_received));
        metrics_counter_add(RAFTSTORE_METRIC(rs, snapshot_bytes_received),
                            snapshot_file_bytes(msg->message->snapshot->data.data,
                                                msg->message->snapshot->data.len));
    }
    if (snapshot_overlaps(rs, msg))
        return;
    if (hibernate_on_message(rs, p, msg))
        return;
    raftstore_touch(rs, p);
    peer_step(p, msg);
    hibernate_after_step(rs, p);
}

/* Region routing for requests: by id, else by the first key through the range index. */
static struct peer *route(struct raftstore *rs, const struct mail *m)
{
    const struct storage_ctx *ctx = &m->ctx;
    if (ctx->region_id)
        return raftstore_find_peer(rs, ctx->region_id);
    struct region r;
    int rc = -1;
    if (m->kind == MAIL_READ && ctx->n_keys) {
        rc = store_meta_find(&rs->meta, ctx->keys[0].data, ctx->keys[0].len, &r);
    } else if (m->kind == MAIL_WRITE && m->cmd->n_requests) {
        const RaftCmdpb__Request *q = m->cmd->requests[0];
        const ProtobufCBinaryData *k = q->put ? &q->put->key : q->delete_ ? &q->delete_->key : NULL;
        uint8_t *user = k ? malloc(k->len ? k->len : 1) : NULL;
        size_t user_len;
        if (user && codec_user_key_of(k->data, k->len, user, &user_len) == CODEC_OK)
            rc = store_meta_find(&rs->meta, user, user_len, &r);
        free(user);
    }
    if (rc != 0)
        return NULL;
    uint64_t id = r.id;
    store_region_free(&r);
    return raftstore_find_peer(rs, id);
}

static void handle_mail(struct raftstore *rs, struct mail *m)
{
    /* Whatever the mail, its region's peer may have work now. */
    struct peer *target = m->kind == MAIL_RAFT || m->kind == MAIL_WRITE || m->kind == MAIL_READ
                              ? NULL
                              : raftstore_find_peer(rs, m->region_id);
    if (target) {
        hibernate_wake(rs, target);
        raftstore_touch(rs, target);
    }
    struct peer *p;
    switch (m->kind) {
    case MAIL_RAFT:
        handle_raft_mail(rs, m);
        break;
    case MAIL_WRITE:
    case MAIL_READ:
        p = route(rs, m);
        if (!p || p->pending_remove) {
            raftstore_answer_region_error(m->cb, m->cb_arg, STORAGE_REGION_ERR_REGION_NOT_FOUND,
                                          m->ctx.region_id, 0, 0, "region not found on this store");
            m->cb = NULL;
            break;
        }
        hibernate_wake(rs, p);
        raftstore_touch(rs, p);
        if (m->kind == MAIL_WRITE)
            peer_propose_write(p, m);
        else
            peer_read(p, m);
        m->cb = NULL; /* the peer answers */
        break;
    case MAIL_CHANGE_PEER:
        if ((p = raftstore_find_peer(rs, m->region_id)))
            peer_change_peer(p, m->flag, m->peer);
        break;
    case MAIL_TRANSFER_LEADER:
        if ((p = raftstore_find_peer(rs, m->region_id)))
            peer_transfer_leader(p, m->to_peer_id);
        break;
    case MAIL_SNAP_GENERATED:
        if ((p = raftstore_find_peer(rs, m->region_id)) && !m->snap.data) {
            p->ps.snap_state = PEER_SNAP_IDLE; /* the generation failed: Raft asks again */
        } else if (p) {
            raft_snapshot_free(&p->ps.snap);
            p->ps.snap = m->snap;
            memset(&m->snap, 0, sizeof m->snap);
            p->ps.snap_state = PEER_SNAP_READY;
        }
        break;
    case MAIL_SNAP_APPLIED:
        if ((p = raftstore_find_peer(rs, m->region_id)) && p->applying_snapshot)
            peer_snapshot_applied(p);
        break;
    case MAIL_SNAP_STATUS:
        if ((p = raftstore_find_peer(rs, m->region_id)))
            raft_rawnode_report_snapshot(p->rn, m->peer.id, m->flag);
        break;
    case MAIL_UNREACHABLE:
        if ((p = raftstore_find_peer(rs, m->region_id)))
            raft_rawnode_report_unreachable(p->rn, m->peer.id);
        break;
    case MAIL_SPLIT_CHECKED:
        if ((p = raftstore_find_peer(rs, m->region_id)))
            peer_split_checked(p, m);
        break;
    case MAIL_CHECK_CONSISTENCY:
        consistency_propose(raftstore_find_peer(rs, m->region_id), m);
        m->cb = NULL; /* answered by now, or when its entry applies */
        break;
    case MAIL_HASH_COMPUTED:
        if ((p = raftstore_find_peer(rs, m->region_id)))
            consistency_hash_computed(p, m);
        break;
    case MAIL_SPLIT:
        if ((p = raftstore_find_peer(rs, m->region_id)) && !p->pending_remove)
            split_propose(p, m);
        else if (m->cb)
            raftstore_answer_region_error(m->cb, m->cb_arg, STORAGE_REGION_ERR_REGION_NOT_FOUND,
                                          m->region_id, 0, 0, "region not found on this store");
        m->cb = NULL;
        break;
    }
}

static void free_mail(struct mail *m)
{
    if (m->cb)
        raftstore_answer(m->cb, m->cb_arg, STORAGE_ERR_CLOSED, NULL, NULL);
    if (m->raft_msg)
        protobuf_c_message_free_unpacked(&m->raft_msg->base, NULL);
    if (m->cmd)
        protobuf_c_message_free_unpacked(&m->cmd->base, NULL);
    raft_snapshot_free(&m->snap);
    free(m->keys);
    free(m->keys_buf);
    free(m->split_key);
    free(m->new_peer_ids);
    free(m);
}

/* Destroys a peer that left its region: tombstone state, log and data gone. */
static void destroy_peer(struct raftstore *rs, struct peer *p)
{
    for (struct peer **pp = &rs->peers; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    untouch(rs, p);
    hibernate_untrack(rs, p);
    local_read_withdraw(rs->local_reads, p->region_id);
    rs->info_dirty = 1;
    {
        rocksdb_writebatch_t *kv_wb = rocksdb_writebatch_create();
        rocksdb_writebatch_t *raft_wb = rocksdb_writebatch_create();
        peer_storage_region_state_to_batch(&p->ps, NULL, 1, kv_wb);
        peer_storage_clear_raft(&p->ps, raft_wb);
        char err[256];
        if (engine_write_batch(rs->cfg.kv, kv_wb, 1, err, sizeof err) ||
            engine_write_batch(rs->cfg.raft, raft_wb, 1, err, sizeof err))
            LOG(LOG_ERROR, "region=%llu: destroying peer: %s", (unsigned long long)p->region_id,
                err);
        rocksdb_writebatch_destroy(kv_wb);
        rocksdb_writebatch_destroy(raft_wb);
        /* Clear exactly its range, and only then let another region take it. */
        if (peer_storage_initialized(&p->ps))
            snapshot_clear_range(rs->cfg.kv, &p->ps.region);
        store_meta_remove(&rs->meta, p->region_id);
        remove_peer_index(rs, p);
        struct tombstone *grown =
            realloc(rs->tombstones, (rs->n_tombstones + 1) * sizeof *rs->tombstones);
        if (grown) {
            rs->tombstones = grown;
            rs->tombstones[rs->n_tombstones++] =
                (struct tombstone){p->region_id, p->ps.region.conf_ver};
        }
        LOG(LOG_INFO, "region=%llu peer=%llu: destroyed", (unsigned long long)p->region_id,
            (unsigned long long)p->peer_id);
        if (rs->cfg.pd.peer_destroyed)
            rs->cfg.pd.peer_destroyed(rs->cfg.pd_ctx, p->region_id, p->peer_id);
        peer_free(p, STORAGE_ERR_REGION);
    }
}

/* Writes a round's raft DB batch (synced when it holds entries, a term or a vote). */
static void write_raft_batch(struct raftstore *rs, rocksdb_writebatch_t *raft_wb, int sync)
{
    if (rocksdb_writebatch_count(raft_wb) == 0)
        return;
    size_t batch_bytes = 0;
    rocksdb_writebatch_data(raft_wb, &batch_bytes);
    char err[256];
    uint64_t sync_start_ns = metrics_now_ns();
    if (engine_write_batch(rs->cfg.raft, raft_wb, sync, err, sizeof err) != 0) {
        /* Without a durable log the replica cannot go on safely. */
        LOG(LOG_ERROR, "raft DB write failed: %s", err);
        abort();
    }
    metrics_histogram_since(RAFTSTORE_METRIC(rs, raftdb_sync_seconds), sync_start_ns);
    metrics_histogram_observe(RAFTSTORE_METRIC(rs, raftdb_write_batch_bytes), (double)batch_bytes);
}

/* Persists the entries and hard state of every ready peer of this round in
 * one write (synced when any needs it), and lets each send, apply and advance. */
static void handle_readies(struct raftstore *rs, struct peer **round, size_t n_round)
{
    size_t n = 0, cap = 0;
    struct ready_slot {
        struct peer *p;
        struct raft_ready rd;
    } *slots = NULL;
    rocksdb_writebatch_t *raft_wb = rocksdb_writebatch_create();
    for (size_t r = 0; r < n_round; r++) {
        struct peer *p = round[r];
        if (!peer_has_ready(p))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            struct ready_slot *grown = realloc(slots, cap * sizeof *slots);
            if (!grown)
                break;
            slots = grown;
        }
        slots[n].p = p;
        if (peer_collect_ready(p, &slots[n].rd, raft_wb) == 0)
            n++;
    }
    if (n) {
        /* A leader's appends go out before its own write, which then runs beside the
         * followers' (Raft lets a leader persist in parallel with replicating). Nothing can
         * commit on entries the leader has not persisted: their acknowledgements are stepped
         * on this thread in a later round, after this write. In a round that needs the fsync
         * everything else waits for the write. Only new entries, term or vote need the fsync; a
         * commit index alone may be lost, and is learnt again from the leader (peer_storage.c
         * raises it to the applied index on load). */
        int sync = 0;
        for (size_t i = 0; i < n; i++) {
            peer_send_before_persist(slots[i].p, &slots[i].rd);
            sync |= slots[i].rd.must_sync;
        }
        /* A round that changes no entry, term or vote (commit indexes only) is applied first
         * and written after: its committed entries are on disk from earlier rounds, and the
         * write keeps its place before any peer of the round is destroyed. */
        if (sync)
            write_raft_batch(rs, raft_wb, 1);
        for (size_t i = 0; i < n; i++) {
            metrics_counter_add(RAFTSTORE_METRIC(rs, entries_appended), slots[i].rd.n_entries);
            metrics_counter_add(RAFTSTORE_METRIC(rs, entries_committed),
                                slots[i].rd.n_committed_entries);
        }
        for (size_t i = 0; i < n; i++)
            peer_after_persist(slots[i].p, &slots[i].rd);
        if (!sync)
            write_raft_batch(rs, raft_wb, 0);
    }
    rocksdb_writebatch_destroy(raft_wb);
    free(slots);
    /* Peers removed this round go now; others with a Ready left stay active. */
    for (size_t r = 0; r < n_round; r++) {
        struct peer *p = round[r];
        if (p->pending_remove && !p->applying_snapshot)
            destroy_peer(rs, p);
        else if (peer_has_ready(p))
            raftstore_touch(rs, p);
    }
}

static void fill_info(struct raftstore_peer_info *info, const struct peer *p)
{
    info->region_id = p->region_id;
    info->peer_id = p->peer_id;
    info->leader_peer_id = p->leader_id;
    info->is_leader = p->is_leader;
    info->term = p->ps.hs.term;
    info->applied_index = p->ps.applied_index;
    info->first_index = p->ps.truncated_index + 1;
    info->last_index = p->ps.last_index;
    info->conf_ver = p->ps.region.conf_ver;
    info->version = p->ps.region.version;
    info->n_peers = p->ps.region.n_peers;
    info->approximate_known = p->approx_known;
    info->approximate_size_bytes = p->approx_size + p->size_diff_hint;
    info->approximate_keys = p->approx_keys + p->keys_diff_hint;
    info->lease_reads = p->lease_reads + p->local_lease_reads;
    info->hibernated = p->asleep;
    info->consistency = p->consistency;
}

/* The gauges that only awake peers change (an asleep one has no reads waiting). */
static void set_gauges(struct raftstore *rs)
{
    int64_t pending_reads = 0;
    for (size_t i = 0; i < rs->n_awake; i++)
        for (struct pending_read *r = rs->awake[i]->reads; r; r = r->next)
            pending_reads++;
    metrics_gauge_set(RAFTSTORE_METRIC(rs, pending_reads), pending_reads);
    metrics_gauge_set(RAFTSTORE_METRIC(rs, hibernated_peers), (int64_t)(rs->n_by_id - rs->n_awake));
}

/* Rebuilds the introspection copy from every peer (one came, went or changed role). */
static void refresh_info(struct raftstore *rs)
{
    size_t n = 0;
    for (struct peer *p = rs->peers; p; p = p->next)
        n++;
    struct raftstore_peer_info *info = calloc(n ? n : 1, sizeof *info);
    if (!info)
        return;
    size_t i = 0;
    for (struct peer *p = rs->peers; p; p = p->next, i++) {
        peer_publish_local_read(p);
        fill_info(&info[i], p);
        p->info_slot = i;
    }
    set_gauges(rs);
    pthread_mutex_lock(&rs->mu);
    free(rs->info);
    rs->info = info;
    rs->n_info = n;
    pthread_mutex_unlock(&rs->mu);
}

/* Updates the entries of this round's peers only: the others have not changed. */
static void refresh_round_info(struct raftstore *rs, struct peer **round, size_t n_round)
{
    for (size_t i = 0; i < n_round; i++)
        peer_publish_local_read(round[i]);
    set_gauges(rs);
    pthread_mutex_lock(&rs->mu);
    for (size_t i = 0; i < n_round; i++) {
        struct peer *p = round[i];
        if (p->info_slot < rs->n_info && rs->info[p->info_slot].region_id == p->region_id)
            fill_info(&rs->info[p->info_slot], p);
    }
    pthread_mutex_unlock(&rs->mu);
}

static void *store_loop(void *arg)
{
    pthread_setname_np(pthread_self(), "store-loop");
    struct raftstore *rs = arg;
    uint64_t next_tick = now_ms() + (uint64_t)rs->cfg.tick_ms;
    for (;;) {
        pthread_mutex_lock(&rs->mu);
        while (!rs->mail_head && !rs->stopping && now_ms() < next_tick && !rs->n_active &&
               !rs->all_active) {
            uint64_t wait = next_tick - now_ms();
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += (time_t)(wait / 1000);
            until.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&rs->cond, &rs->mu, &until);
        }
        struct mail *mails = rs->mail_head;
        rs->mail_head = rs->mail_tail = NULL;
        int stopping = rs->stopping;
        pthread_mutex_unlock(&rs->mu);
        if (stopping) {
            while (mails) {
                struct mail *next = mails->next;
                free_mail(mails);
                mails = next;
            }
            break;
        }
        while (mails) {
            struct mail *next = mails->next;
            handle_mail(rs, mails);
            free_mail(mails);
            mails = next;
        }
        /* The writes this mail brought, one entry per region (a peer with a write is active). */
        for (size_t i = 0; i < rs->n_active; i++)
            peer_flush_writes(rs->active[i]);
        if (rs->all_active) /* the active list could not grow */
            for (struct peer *p = rs->peers; p; p = p->next)
                peer_flush_writes(p);
        uint64_t now = now_ms();
        int ticked = now >= next_tick;
        if (ticked) {
            /* Awake peers only; backwards, since one that falls asleep leaves the list (its
             * place taken by the last, already ticked). */
            for (size_t i = rs->n_awake; i-- > 0;) {
                struct peer *p = rs->awake[i];
                if (hibernate_maybe_sleep(p))
                    continue;
                peer_tick(p);
                raftstore_touch(rs, p);
            }
            hibernate_store_tick(rs);
            next_tick += (uint64_t)rs->cfg.tick_ms;
            if (next_tick <= now)
                next_tick = now + (uint64_t)rs->cfg.tick_ms;
        }
        if (rs->all_active) {
            rs->all_active = 0;
            for (struct peer *p = rs->peers; p; p = p->next)
                raftstore_touch(rs, p);
        }
        /* This round's peers; those touched while handling it go next round. */
        struct peer **round = rs->active;
        size_t n_round = rs->n_active;
        rs->active = NULL;
        rs->n_active = rs->cap_active = 0;
        for (size_t i = 0; i < n_round; i++) {
            round[i]->active = 0;
            /* Reads that arrive from now on need a ReadIndex of their own. */
            round[i]->batch_read_id = 0;
        }
        handle_readies(rs, round, n_round);
        if (rs->info_dirty) {
            rs->info_dirty = 0;
            refresh_info(rs);
        } else if (n_round) {
            refresh_round_info(rs, round, n_round);
        }
        free(round);
    }
    return NULL;
}

/* ---- lifecycle ---- */

static int load_regions(struct raftstore *rs, char *errbuf, size_t errbuf_len)
{
    uint8_t start[2], end[2];
    keys_region_state_range(start, end);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(engine_db(rs->cfg.kv), ro,
                                                        engine_cf(rs->cfg.kv, ENGINE_CF_META));
    int rc = 0;
    for (rocksdb_iter_seek(it, (const char *)start, 2); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (memcmp(k, end, 2) >= 0)
            break;
        uint64_t region_id = keys_region_state_id(k, klen);
        if (!region_id)
            continue;
        struct peer_storage ps;
        rc = peer_storage_load(&ps, rs->cfg.kv, rs->cfg.raft, rs->cfg.store_id, region_id);
        if (rc) {
            snprintf(errbuf, errbuf_len, "loading region %llu: %s", (unsigned long long)region_id,
                     ps.errmsg[0] ? ps.errmsg : storage_strerror(rc));
            peer_storage_close(&ps);
            break;
        }
        if (ps.tombstone) {
            struct tombstone *grown =
                realloc(rs->tombstones, (rs->n_tombstones + 1) * sizeof *rs->tombstones);
            if (grown) {
                rs->tombstones = grown;
                rs->tombstones[rs->n_tombstones++] =
                    (struct tombstone){region_id, ps.region.conf_ver};
            }
            peer_storage_close(&ps);
            continue;
        }
        const struct region_peer *me = store_region_peer_on_store(&ps.region, rs->cfg.store_id);
        if (!me) {
            peer_storage_close(&ps);
            continue;
        }
        struct peer *p;
        rc = peer_create(rs, me->id, &ps, 1, &p, errbuf, errbuf_len);
        if (rc)
            break;
        if (raftstore_add_peer(rs, p) != 0) {
            snprintf(errbuf, errbuf_len, "region %llu overlaps another region of this store",
                     (unsigned long long)region_id);
            peer_free(p, STORAGE_ERR_CLOSED);
            rc = STORAGE_ERR_IO;
            break;
        }
        LOG(LOG_INFO, "region=%llu peer=%llu: loaded (applied %llu, last %llu)",
            (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
            (unsigned long long)p->ps.applied_index, (unsigned long long)p->ps.last_index);
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

int raftstore_region_count(struct engine *kv)
{
    uint8_t start[2], end[2];
    keys_region_state_range(start, end);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(engine_db(kv), ro, engine_cf(kv, ENGINE_CF_META));
    int n = 0;
    for (rocksdb_iter_seek(it, (const char *)start, 2); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (memcmp(k, end, 2) >= 0)
            break;
        n += keys_region_state_id(k, klen) != 0;
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return n;
}

int raftstore_bootstrap_region(struct engine *kv, struct engine *raft, uint64_t store_id,
                               const struct region *region, char *errbuf, size_t errbuf_len)
{
    struct peer_storage ps;
    int rc = peer_storage_init_new(&ps, kv, raft, store_id, region);
    if (rc)
        snprintf(errbuf, errbuf_len, "bootstrap: %s", ps.errmsg[0] ? ps.errmsg : "failed");
    peer_storage_close(&ps);
    return rc;
}

int raftstore_new(const struct raftstore_config *cfg, struct raftstore **out, char *errbuf,
                  size_t errbuf_len)
{
    struct raftstore *rs = calloc(1, sizeof *rs);
    if (!rs)
        return STORAGE_ERR_NOMEM;
    rs->cfg = *cfg;
    if (rs->cfg.tick_ms <= 0)
        rs->cfg.tick_ms = 100;
    if (rs->cfg.election_ticks <= 0)
        rs->cfg.election_ticks = 10;
    if (rs->cfg.heartbeat_ticks <= 0)
        rs->cfg.heartbeat_ticks = 2;
    if (rs->cfg.region_heartbeat_ticks <= 0)
        rs->cfg.region_heartbeat_ticks = 10;
    if (!rs->cfg.raft_log_gc_count_limit)
        rs->cfg.raft_log_gc_count_limit = 1000;
    if (!rs->cfg.max_entries_per_msg)
        rs->cfg.max_entries_per_msg = 64;
    if (!rs->cfg.max_size_per_msg)
        rs->cfg.max_size_per_msg = 1 << 20;
    if (rs->cfg.max_inflight_msgs <= 0)
        rs->cfg.max_inflight_msgs = 64;
    if (!rs->cfg.region_max_size)
        rs->cfg.region_max_size = 144ULL << 20;
    if (!rs->cfg.region_split_size)
        rs->cfg.region_split_size = 96ULL << 20;
    if (!rs->cfg.region_max_keys)
        rs->cfg.region_max_keys = 1440000;
    if (!rs->cfg.region_split_keys)
        rs->cfg.region_split_keys = 960000;
    if (rs->cfg.split_check_ticks <= 0)
        rs->cfg.split_check_ticks = 100;
    if (rs->cfg.hibernate_ticks == 0)
        rs->cfg.hibernate_ticks = rs->cfg.election_ticks;
    if (rs->cfg.idle_region_heartbeat_ticks <= 0)
        rs->cfg.idle_region_heartbeat_ticks = 100;
    if (rs->cfg.hibernate_ticks > 0)
        LOG(LOG_INFO,
            "hibernation: an idle region sleeps after %d ticks; asleep leaders report every %d "
            "ticks",
            rs->cfg.hibernate_ticks, rs->cfg.idle_region_heartbeat_ticks);
    else
        LOG(LOG_INFO, "hibernation: off");
    pthread_mutex_init(&rs->mu, NULL);
    pthread_cond_init(&rs->cond, NULL);
    rs->local_reads = local_read_new();
    if (!rs->local_reads) {
        pthread_mutex_destroy(&rs->mu);
        pthread_cond_destroy(&rs->cond);
        free(rs);
        return STORAGE_ERR_NOMEM;
    }
    store_meta_init(&rs->meta);
    pthread_cond_init(&rs->snap_cond, NULL);
    pthread_cond_init(&rs->split_cond, NULL);
    pthread_cond_init(&rs->gc_cond, NULL);
    pthread_cond_init(&rs->hash_cond, NULL);
    int rc = snapshot_dir_init(rs, errbuf, errbuf_len);
    if (!rc)
        rc = load_regions(rs, errbuf, errbuf_len);
    if (rc) {
        while (rs->peers) {
            struct peer *next = rs->peers->next;
            peer_free(rs->peers, STORAGE_ERR_CLOSED);
            rs->peers = next;
        }
        free(rs->tombstones);
        free(rs->by_id);
        hibernate_close(rs);
        store_meta_close(&rs->meta);
        local_read_free(rs->local_reads);
        free(rs);
        return rc;
    }
    refresh_info(rs);
    if (pthread_create(&rs->loop_thread, NULL, store_loop, rs) != 0 ||
        pthread_create(&rs->snap_thread, NULL, snapshot_worker, rs) != 0 ||
        pthread_create(&rs->split_thread, NULL, split_check_worker, rs) != 0 ||
        pthread_create(&rs->gc_thread, NULL, raftlog_gc_worker, rs) != 0 ||
        pthread_create(&rs->hash_thread, NULL, consistency_worker, rs) != 0) {
        snprintf(errbuf, errbuf_len, "cannot start threads: %s", strerror(errno));
        abort();
    }
    *out = rs;
    return 0;
}

void raftstore_free(struct raftstore *rs)
{
    if (!rs)
        return;
    pthread_mutex_lock(&rs->mu);
    rs->stopping = 1;
    pthread_cond_broadcast(&rs->cond);
    pthread_cond_broadcast(&rs->snap_cond);
    pthread_cond_broadcast(&rs->split_cond);
    pthread_cond_broadcast(&rs->gc_cond);
    pthread_cond_broadcast(&rs->hash_cond);
    pthread_mutex_unlock(&rs->mu);
    pthread_join(rs->loop_thread, NULL);
    pthread_join(rs->snap_thread, NULL);
    pthread_join(rs->split_thread, NULL);
    pthread_join(rs->gc_thread, NULL);
    pthread_join(rs->hash_thread, NULL);
    split_check_free_jobs(rs);
    consistency_free_jobs(rs);
    raftlog_gc_free_tasks(rs);
    while (rs->peers) {
        struct peer *next = rs->peers->next;
        peer_free(rs->peers, STORAGE_ERR_CLOSED);
        rs->peers = next;
    }
    while (rs->snap_jobs) {
        struct snap_job *next = rs->snap_jobs->next;
        if (rs->snap_jobs->db_snap)
            rocksdb_release_snapshot(engine_db(rs->cfg.kv), rs->snap_jobs->db_snap);
        store_region_free(&rs->snap_jobs->region);
        free(rs->snap_jobs);
        rs->snap_jobs = next;
    }
    free(rs->tombstones);
    free(rs->by_id);
    hibernate_close(rs);
    store_meta_close(&rs->meta);
    free(rs->info);
    local_read_free(rs->local_reads);
    pthread_mutex_destroy(&rs->mu);
    pthread_cond_destroy(&rs->cond);
    pthread_cond_destroy(&rs->snap_cond);
    pthread_cond_destroy(&rs->split_cond);
    pthread_cond_destroy(&rs->gc_cond);
    pthread_cond_destroy(&rs->hash_cond);
    free(rs);
}

/* ---- requests ---- */

static struct mail *mail_new(enum mail_kind kind)
{
    struct mail *m = calloc(1, sizeof *m);
    if (m)
        m->kind = kind;
    return m;
}

static RaftCmdpb__RaftCmdRequest *build_write_cmd(const struct storage_modify *mods, size_t n)
{
    RaftCmdpb__RaftCmdRequest *cmd = malloc(sizeof *cmd);
    if (!cmd)
        return NULL;
    raft_cmdpb__raft_cmd_request__init(cmd);
    cmd->requests = calloc(n ? n : 1, sizeof *cmd->requests);
    if (!cmd->requests)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        RaftCmdpb__Request *r = malloc(sizeof *r);
        if (!r)
            goto fail;
        raft_cmdpb__request__init(r);
        cmd->requests[i] = r;
        cmd->n_requests = i + 1;
        const struct storage_modify *m = &mods[i];
        uint8_t *key = malloc(m->key_len ? m->key_len : 1);
        char *cf = strdup(storage_cf_name(m->cf));
        if (!key || !cf) {
            free(key);
            free(cf);
            goto fail;
        }
        memcpy(key, m->key, m->key_len);
        if (m->kind == STORAGE_MODIFY_PUT) {
            r->cmd_type = RAFT_CMDPB__CMD_TYPE__Put;
            r->put = malloc(sizeof *r->put);
            uint8_t *value = malloc(m->value_len ? m->value_len : 1);
            if (!r->put || !value) {
                free(r->put);
                r->put = NULL;
                free(value);
                free(key);
                free(cf);
                goto fail;
            }
            raft_cmdpb__put_request__init(r->put);
            if (m->value_len)
                memcpy(value, m->value, m->value_len);
            r->put->cf = cf;
            r->put->key = (ProtobufCBinaryData){m->key_len, key};
            r->put->value = (ProtobufCBinaryData){m->value_len, value};
        } else {
            r->cmd_type = RAFT_CMDPB__CMD_TYPE__Delete;
            r->delete_ = malloc(sizeof *r->delete_);
            if (!r->delete_) {
                free(key);
                free(cf);
                goto fail;
            }
            raft_cmdpb__delete_request__init(r->delete_);
            r->delete_->cf = cf;
            r->delete_->key = (ProtobufCBinaryData){m->key_len, key};
        }
    }
    return cmd;
fail:
    protobuf_c_message_free_unpacked(&cmd->base, NULL);
    return NULL;
}

void raftstore_write(struct raftstore *rs, const struct storage_ctx *ctx,
                     const struct storage_modify *mods, size_t n, raftstore_cb cb, void *arg)
{
    struct mail *m = mail_new(MAIL_WRITE);
    RaftCmdpb__RaftCmdRequest *cmd = m ? build_write_cmd(mods, n) : NULL;
    if (!cmd) {
        free(m);
        raftstore_answer(cb, arg, STORAGE_ERR_NOMEM, NULL, NULL);
        return;
    }
    m->ctx = *ctx;
    m->ctx.keys = NULL; /* borrowed for the call only; writes route by their commands' keys */
    m->ctx.n_keys = 0;
    m->cmd = cmd;
    m->cb = cb;
    m->cb_arg = arg;
    raftstore_post(rs, m);
}

/* Copies ctx's touched keys into the mail, which owns them; -1 on OOM. */
static int copy_keys(struct mail *m, const struct storage_ctx *ctx)
{
    size_t total = 0;
    for (size_t i = 0; i < ctx->n_keys; i++)
        total += ctx->keys[i].len;
    m->keys = calloc(ctx->n_keys ? ctx->n_keys : 1, sizeof *m->keys);
    m->keys_buf = malloc(total ? total : 1);
    if (!m->keys || !m->keys_buf)
        return -1;
    size_t off = 0;
    for (size_t i = 0; i < ctx->n_keys; i++) {
        if (ctx->keys[i].len)
            memcpy(m->keys_buf + off, ctx->keys[i].data, ctx->keys[i].len);
        m->keys[i] = (struct storage_key){m->keys_buf + off, ctx->keys[i].len};
        off += ctx->keys[i].len;
    }
    m->ctx.keys = m->keys;
    m->ctx.n_keys = ctx->n_keys;
    return 0;
}

int raftstore_read_local(struct raftstore *rs, const struct storage_ctx *ctx, raftstore_cb cb,
                         void *arg)
{
    if (!local_read_try(rs->local_reads, rs->cfg.kv, rs->cfg.store_id, ctx, cb, arg))
        return 0;
    metrics_counter_inc(RAFTSTORE_METRIC(rs, reads_lease));
    return 1;
}

void raftstore_read(struct raftstore *rs, const struct storage_ctx *ctx, raftstore_cb cb, void *arg)
{
    struct mail *m = mail_new(MAIL_READ);
    if (m) {
        m->ctx = *ctx;
        if (copy_keys(m, ctx) != 0) {
            free_mail(m);
            m = NULL;
        }
    }
    if (!m) {
        raftstore_answer(cb, arg, STORAGE_ERR_NOMEM, NULL, NULL);
        return;
    }
    m->cb = cb;
    m->cb_arg = arg;
    raftstore_post(rs, m);
}

void raftstore_step(struct raftstore *rs, const RaftServerpb__RaftMessage *msg)
{
    struct mail *m = mail_new(MAIL_RAFT);
    if (!m)
        return;
    /* A deep copy through the wire format, so the mailbox owns it. */
    size_t len = raft_serverpb__raft_message__get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        free(m);
        return;
    }
    raft_serverpb__raft_message__pack(msg, buf);
    m->raft_msg = raft_serverpb__raft_message__unpack(NULL, len, buf);
    free(buf);
    if (!m->raft_msg) {
        free(m);
        return;
    }
    m->region_id = msg->region_id;
    raftstore_post(rs, m);
}

void raftstore_change_peer(struct raftstore *rs, uint64_t region_id, int remove,
                           struct region_peer peer)
{
    struct mail *m = mail_new(MAIL_CHANGE_PEER);
    if (!m)
        return;
    m->region_id = region_id;
    m->flag = remove;
    m->peer = peer;
    raftstore_post(rs, m);
}

void raftstore_transfer_leader(struct raftstore *rs, uint64_t region_id, uint64_t to_peer_id)
{
    struct mail *m = mail_new(MAIL_TRANSFER_LEADER);
    if (!m)
        return;
    m->region_id = region_id;
    m->to_peer_id = to_peer_id;
    raftstore_post(rs, m);
}

void raftstore_report_snapshot(struct raftstore *rs, uint64_t region_id, uint64_t to_peer_id,
                               int failed)
{
    struct mail *m = mail_new(MAIL_SNAP_STATUS);
    if (!m)
        return;
    m->region_id = region_id;
    m->peer.id = to_peer_id;
    m->flag = failed;
    raftstore_post(rs, m);
}

void raftstore_split(struct raftstore *rs, uint64_t region_id, uint64_t epoch_version,
                     const void *split_key, size_t split_key_len, uint64_t new_region_id,
                     const uint64_t *new_peer_ids, size_t n_new_peer_ids, raftstore_cb cb,
                     void *arg)
{
    struct mail *m = mail_new(MAIL_SPLIT);
    if (m) {
        m->split_key = malloc(split_key_len ? split_key_len : 1);
        m->new_peer_ids = malloc((n_new_peer_ids ? n_new_peer_ids : 1) * sizeof(uint64_t));
        if (!m->split_key || !m->new_peer_ids) {
            free_mail(m);
            m = NULL;
        }
    }
    if (!m) {
        if (cb)
            raftstore_answer(cb, arg, STORAGE_ERR_NOMEM, NULL, NULL);
        return;
    }
    m->region_id = region_id;
    m->epoch_version = epoch_version;
    if (split_key_len)
        memcpy(m->split_key, split_key, split_key_len);
    m->split_key_len = split_key_len;
    m->new_region_id = new_region_id;
    if (n_new_peer_ids)
        memcpy(m->new_peer_ids, new_peer_ids, n_new_peer_ids * sizeof(uint64_t));
    m->n_new_peer_ids = n_new_peer_ids;
    m->cb = cb;
    m->cb_arg = arg;
    raftstore_post(rs, m);
}

int raftstore_region(struct raftstore *rs, uint64_t region_id, struct region *out)
{
    return store_meta_get(&rs->meta, region_id, out);
}

int raftstore_region_of_key(struct raftstore *rs, const void *key, size_t len, struct region *out)
{
    return store_meta_find(&rs->meta, key, len, out);
}

int raftstore_region_next(struct raftstore *rs, uint64_t region_id, struct region *out)
{
    return store_meta_next(&rs->meta, region_id, out);
}

void raftstore_report_unreachable(struct raftstore *rs, uint64_t region_id, uint64_t to_peer_id)
{
    struct mail *m = mail_new(MAIL_UNREACHABLE);
    if (!m)
        return;
    m->region_id = region_id;
    m->peer.id = to_peer_id;
    raftstore_post(rs, m);
}

size_t raftstore_peers(struct raftstore *rs, struct raftstore_peer_info *out, size_t cap)
{
    pthread_mutex_lock(&rs->mu);
    size_t n = rs->n_info;
    memcpy(out, rs->info, (n < cap ? n : cap) * sizeof *out);
    pthread_mutex_unlock(&rs->mu);
    return n;
}

uint64_t raftstore_store_id(const struct raftstore *rs)
{
    return rs->cfg.store_id;
}
