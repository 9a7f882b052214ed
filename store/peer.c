/* peer.c — one region's peer on this store: proposals, reads, Ready handling and applying committed
 * entries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/log.h"
#include "proto/rpc.h"
#include "store/local_read.h"
#include "store/raft_codec.h"
#include "store/raftstore_internal.h"
#include "store/raftstore_metrics.h"

static void raft_log_sink(void *ctx, int level, const char *msg)
{
    struct peer *p = ctx;
    int lv = level <= RAFT_LOG_ERROR  ? LOG_ERROR
             : level == RAFT_LOG_WARN ? LOG_WARN
             : level == RAFT_LOG_INFO ? LOG_INFO
                                      : LOG_DEBUG;
    LOG(lv, "region=%llu peer=%llu raft: %s", (unsigned long long)p->region_id,
        (unsigned long long)p->peer_id, msg);
}

int peer_create(struct raftstore *rs, uint64_t peer_id, struct peer_storage *ps, int boot_lease,
                struct peer **out, char *errbuf, size_t errbuf_len)
{
    struct peer *p = calloc(1, sizeof *p);
    if (!p) {
        peer_storage_close(ps);
        snprintf(errbuf, errbuf_len, "out of memory");
        return STORAGE_ERR_NOMEM;
    }
    p->rs = rs;
    p->peer_id = peer_id;
    p->region_id = ps->region_id;
    p->ps = *ps; /* the peer owns it from here; its address is now stable */
    p->last_compact_index = p->ps.truncated_index + 1;
    /* Staggered: a store's thousand regions do not all report, or measure
     * themselves, on the same tick. */
    p->ticks_since_heartbeat = (int)(peer_id % (uint64_t)rs->cfg.region_heartbeat_ticks);
    p->ticks_since_split_check = (int)(peer_id % (uint64_t)rs->cfg.split_check_ticks);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct raft_config cfg = {
        .id = peer_id,
        .election_ticks = rs->cfg.election_ticks,
        .heartbeat_ticks = rs->cfg.heartbeat_ticks,
        .storage = peer_storage_raft_storage(&p->ps),
        .applied = p->ps.applied_index,
        .max_size_per_msg = rs->cfg.max_size_per_msg,
        .max_entries_per_msg = rs->cfg.max_entries_per_msg,
        .max_inflight_msgs = rs->cfg.max_inflight_msgs,
        .check_quorum = 1,
        .pre_vote = 1,
        .batch_appends = 1,       /* the store loop steps a whole mailbox per Ready */
        .boot_lease = boot_lease, /* other stores' leader leases may count on this peer */
        .seed = peer_id * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tv_nsec,
        .log_fn = raft_log_sink,
        .log_ctx = p,
        .log_level = log_current_level >= LOG_DEBUG ? RAFT_LOG_DEBUG : RAFT_LOG_INFO,
    };
    int rc = raft_rawnode_new(&cfg, &p->rn, errbuf, errbuf_len);
    if (rc) {
        peer_storage_close(&p->ps);
        free(p);
        return STORAGE_ERR_INVALID;
    }
    /* A region whose only member is this peer elects itself at once. */
    if (p->ps.region.n_peers == 1 && p->ps.region.peers[0].id == peer_id)
        raft_rawnode_campaign(p->rn);
    *out = p;
    return 0;
}

uint64_t peer_leader_store(const struct peer *p)
{
    const struct region_peer *l = store_region_peer_by_id(&p->ps.region, p->leader_id);
    return l ? l->store_id : 0;
}

static void answer_not_leader(struct peer *p, raftstore_cb cb, void *arg)
{
    char msg[128];
    snprintf(msg, sizeof msg, "peer %llu of region %llu is not leader",
             (unsigned long long)p->peer_id, (unsigned long long)p->region_id);
    raftstore_answer_region_error(cb, arg, STORAGE_REGION_ERR_NOT_LEADER, p->region_id,
                                  p->leader_id, peer_leader_store(p), msg);
}

/* A proposal's entry may still commit (it is in some log, a later leader may
 * take it): the caller must not read this as "not done". */
static void answer_undetermined(struct peer *p, raftstore_cb cb, void *arg, const char *why)
{
    struct storage_error err;
    memset(&err, 0, sizeof err);
    err.code = STORAGE_ERR_REGION;
    err.region_kind = STORAGE_REGION_ERR_UNDETERMINED;
    err.region_id = p->region_id;
    snprintf(err.msg, sizeof err.msg, "%s", why);
    raftstore_answer(cb, arg, STORAGE_ERR_REGION, &err, NULL);
}

/* Fails every pending read with NotLeader (code STORAGE_ERR_REGION) or `code`:
 * a read has no effect, so it is safe to retry elsewhere. Proposals are left
 * alone: their entries may still commit under a later leader. */
static void fail_reads(struct peer *p, int code)
{
    while (p->reads) {
        struct pending_read *rd = p->reads;
        p->reads = rd->next;
        if (code == STORAGE_ERR_REGION)
            answer_not_leader(p, rd->cb, rd->cb_arg);
        else
            raftstore_answer(rd->cb, rd->cb_arg, code, NULL, NULL);
        free(rd);
    }
    p->reads_tail = NULL;
}

/* Answers the batched writes that were never proposed (the peer goes): they had no effect. */
static void fail_batched_writes(struct peer *p, int code)
{
    for (size_t i = 0; i < p->n_batch_cbs; i++) {
        if (code == STORAGE_ERR_REGION)
            answer_not_leader(p, p->batch_cbs[i].cb, p->batch_cbs[i].arg);
        else
            raftstore_answer(p->batch_cbs[i].cb, p->batch_cbs[i].arg, code, NULL, NULL);
    }
    p->n_batch_cbs = 0;
    if (p->batch_cmd)
        protobuf_c_message_free_unpacked(&p->batch_cmd->base, NULL);
    p->batch_cmd = NULL;
    p->batch_cap = p->batch_bytes = 0;
}

void peer_free(struct peer *p, int code)
{
    /* The peer goes (removed, or the store stops) before its proposals' fate is known. */
    while (p->proposals) {
        struct proposal *pr = p->proposals;
        p->proposals = pr->next;
        answer_undetermined(p, pr->cb, pr->cb_arg,
                            "peer closed before the command's fate was known");
        free(pr);
    }
    p->proposals_tail = NULL;
    fail_batched_writes(p, code);
    free(p->batch_cbs);
    fail_reads(p, code);
    raft_rawnode_free(p->rn);
    peer_storage_close(&p->ps);
    free(p);
}

static void answer_key_not_in_region(struct peer *p, raftstore_cb cb, void *arg, size_t key_pos)
{
    struct storage_error err;
    memset(&err, 0, sizeof err);
    err.code = STORAGE_ERR_REGION;
    err.region_kind = STORAGE_REGION_ERR_KEY_NOT_IN_REGION;
    err.region_id = p->region_id;
    err.key_pos = key_pos;
    snprintf(err.msg, sizeof err.msg, "key is not in region %llu",
             (unsigned long long)p->region_id);
    raftstore_answer(cb, arg, STORAGE_ERR_REGION, &err, NULL);
}

/* Checks a request's routing against this peer; answers and returns -1 if it fails. */
static int check_request(struct peer *p, const struct storage_ctx *ctx, raftstore_cb cb, void *arg)
{
    if (!p->is_leader) {
        answer_not_leader(p, cb, arg);
        return -1;
    }
    if (ctx->peer_store_id && ctx->peer_store_id != p->rs->cfg.store_id) {
        raftstore_answer_region_error(cb, arg, STORAGE_REGION_ERR_STORE_NOT_MATCH, p->region_id, 0,
                                      0, "request meant for another store");
        return -1;
    }
    /* Data requests care about the range (version), not the membership. */
    if (ctx->region_id && ctx->region_version != p->ps.region.version) {
        raftstore_answer_region_error(cb, arg, STORAGE_REGION_ERR_EPOCH_NOT_MATCH, p->region_id, 0,
                                      0, "region epoch does not match");
        return -1;
    }
    for (size_t i = 0; i < ctx->n_keys; i++) {
        if (!store_region_contains(&p->ps.region, ctx->keys[i].data, ctx->keys[i].len)) {
            answer_key_not_in_region(p, cb, arg, i + 1);
            return -1;
        }
    }
    return 0;
}

/* Index and term of the last entry of the log: a proposal just accepted is there. */
static int last_entry(struct peer *p, uint64_t *index, uint64_t *term)
{
    raft_rawnode_last(p->rn, index, term);
    return 0;
}

/* Keeps p->proposals in index order: after a step-down and a new term, a new
 * proposal may take a lower index than one still waiting from the old term. */
static void insert_proposal(struct peer *p, struct proposal *pr)
{
    if (!p->proposals_tail || p->proposals_tail->index <= pr->index) {
        if (p->proposals_tail)
            p->proposals_tail->next = pr;
        else
            p->proposals = pr;
        p->proposals_tail = pr;
        return;
    }
    struct proposal **at = &p->proposals;
    while ((*at)->index <= pr->index)
        at = &(*at)->next;
    pr->next = *at;
    *at = pr;
}

/* Proposes cmd as one entry whose outcome answers each of the n callbacks (none: nobody waits);
 * every callback is answered now on failure. */
static int propose_entry(struct peer *p, RaftCmdpb__RaftCmdRequest *cmd, int conf_change,
                         const struct raft_conf_change *cc, const struct batch_cb *cbs, size_t n)
{
    Metapb__RegionEpoch epoch = METAPB__REGION_EPOCH__INIT;
    epoch.conf_ver = p->ps.region.conf_ver;
    epoch.version = p->ps.region.version;
    RaftCmdpb__RaftRequestHeader header = RAFT_CMDPB__RAFT_REQUEST_HEADER__INIT;
    header.region_id = p->region_id;
    header.region_epoch = &epoch;
    header.term = p->ps.hs.term;
    RaftCmdpb__RaftRequestHeader *saved = cmd->header;
    cmd->header = &header;
    size_t len = raft_cmdpb__raft_cmd_request__get_packed_size(cmd);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        cmd->header = saved;
        for (size_t i = 0; i < n; i++)
            raftstore_answer(cbs[i].cb, cbs[i].arg, STORAGE_ERR_NOMEM, NULL, NULL);
        return -1;
    }
    raft_cmdpb__raft_cmd_request__pack(cmd, buf);
    cmd->header = saved;
    metrics_counter_add(RAFTSTORE_METRIC(p->rs, proposals), n ? n : 1);
    int rc;
    if (conf_change) {
        Eraftpb__ConfChange pcc = ERAFTPB__CONF_CHANGE__INIT;
        pcc.change_type = (Eraftpb__ConfChangeType)cc->change_type;
        pcc.node_id = cc->node_id;
        pcc.context.data = buf;
        pcc.context.len = len;
        size_t cclen = eraftpb__conf_change__get_packed_size(&pcc);
        uint8_t *ccbuf = malloc(cclen ? cclen : 1);
        if (!ccbuf) {
            free(buf);
            for (size_t i = 0; i < n; i++)
                raftstore_answer(cbs[i].cb, cbs[i].arg, STORAGE_ERR_NOMEM, NULL, NULL);
            return -1;
        }
        eraftpb__conf_change__pack(&pcc, ccbuf);
        rc = raft_rawnode_propose_conf_change(p->rn, ccbuf, cclen);
        free(ccbuf);
    } else {
        rc = raft_rawnode_propose(p->rn, buf, len);
    }
    free(buf);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            answer_not_leader(p, cbs[i].cb, cbs[i].arg);
        return -1;
    }
    uint64_t index, term;
    last_entry(p, &index, &term);
    for (size_t i = 0; i < n; i++) {
        struct proposal *pr = malloc(sizeof *pr);
        if (!pr) {
            answer_undetermined(p, cbs[i].cb, cbs[i].arg, "proposed, but out of memory to wait");
            continue;
        }
        *pr = (struct proposal){index, term, cbs[i].cb, cbs[i].arg, NULL};
        insert_proposal(p, pr);
    }
    return 0;
}

/* Any other proposal: the round's batched writes go first, keeping the order they came in. */
static int propose_cmd(struct peer *p, RaftCmdpb__RaftCmdRequest *cmd, int conf_change,
                       const struct raft_conf_change *cc, raftstore_cb cb, void *arg)
{
    peer_flush_writes(p);
    struct batch_cb one = {cb, arg};
    return propose_entry(p, cmd, conf_change, cc, &one, cb ? 1 : 0);
}

static size_t write_bytes(const RaftCmdpb__RaftCmdRequest *cmd)
{
    size_t bytes = 0;
    for (size_t i = 0; i < cmd->n_requests; i++) {
        const RaftCmdpb__Request *r = cmd->requests[i];
        bytes += r->put       ? r->put->key.len + r->put->value.len
                 : r->delete_ ? r->delete_->key.len
                              : 0;
    }
    return bytes;
}

/* Adds m's write to the round's batch (taking its command); a write that would overflow the
 * batch flushes it first. */
static void batch_write(struct peer *p, struct mail *m)
{
    RaftCmdpb__RaftCmdRequest *cmd = m->cmd;
    size_t bytes = write_bytes(cmd);
    if (p->batch_cmd &&
        (p->n_batch_cbs == PEER_BATCH_MAX_WRITES || p->batch_bytes + bytes > PEER_BATCH_MAX_BYTES))
        peer_flush_writes(p);
    if (p->n_batch_cbs == p->cap_batch_cbs) {
        size_t cap = p->cap_batch_cbs ? p->cap_batch_cbs * 2 : 16;
        struct batch_cb *grown = realloc(p->batch_cbs, cap * sizeof *grown);
        if (!grown) {
            raftstore_answer(m->cb, m->cb_arg, STORAGE_ERR_NOMEM, NULL, NULL);
            return;
        }
        p->batch_cbs = grown;
        p->cap_batch_cbs = cap;
    }
    if (!p->batch_cmd) {
        /* The first write's command becomes the batch's. */
        p->batch_cmd = cmd;
        p->batch_term = p->ps.hs.term;
        p->batch_cap = cmd->n_requests;
        m->cmd = NULL;
    } else {
        RaftCmdpb__RaftCmdRequest *b = p->batch_cmd;
        if (b->n_requests + cmd->n_requests > p->batch_cap) {
            size_t cap = p->batch_cap * 2 > b->n_requests + cmd->n_requests
                             ? p->batch_cap * 2
                             : b->n_requests + cmd->n_requests;
            RaftCmdpb__Request **grown = realloc(b->requests, cap * sizeof *grown);
            if (!grown) {
                raftstore_answer(m->cb, m->cb_arg, STORAGE_ERR_NOMEM, NULL, NULL);
                return;
            }
            b->requests = grown;
            p->batch_cap = cap;
        }
        /* Its requests move over; the mail frees the empty shell. */
        memcpy(b->requests + b->n_requests, cmd->requests, cmd->n_requests * sizeof *cmd->requests);
        b->n_requests += cmd->n_requests;
        cmd->n_requests = 0;
    }
    p->batch_bytes += bytes;
    p->batch_cbs[p->n_batch_cbs++] = (struct batch_cb){m->cb, m->cb_arg};
}

void peer_propose_write(struct peer *p, struct mail *m)
{
    if (check_request(p, &m->ctx, m->cb, m->cb_arg))
        return;
    if (m->ctx.term && m->ctx.term != p->ps.hs.term) {
        /* Its content was decided in another leadership term (a one-phase commit ts chosen
         * from what this store had read then): only that term may propose it. */
        raftstore_answer_region_error(m->cb, m->cb_arg, STORAGE_REGION_ERR_STALE_COMMAND,
                                      p->region_id, 0, 0, "write meant for another leader term");
        return;
    }
    for (size_t i = 0; i < m->cmd->n_requests; i++) {
        const RaftCmdpb__Request *r = m->cmd->requests[i];
        const ProtobufCBinaryData *key = r->put ? &r->put->key : &r->delete_->key;
        if (!store_region_contains_stored(&p->ps.region, key->data, key->len)) {
            answer_key_not_in_region(p, m->cb, m->cb_arg, 0);
            return;
        }
    }
    batch_write(p, m);
}

void peer_flush_writes(struct peer *p)
{
    RaftCmdpb__RaftCmdRequest *cmd = p->batch_cmd;
    if (!cmd)
        return;
    if (p->batch_term != p->ps.hs.term) {
        /* Leadership changed hands since they were accepted: none was proposed. */
        fail_batched_writes(p, STORAGE_ERR_REGION);
        return;
    }
    p->batch_cmd = NULL;
    p->batch_cap = p->batch_bytes = 0;
    size_t n = p->n_batch_cbs;
    p->n_batch_cbs = 0;
    propose_entry(p, cmd, 0, NULL, p->batch_cbs, n);
    protobuf_c_message_free_unpacked(&cmd->base, NULL);
}

void peer_propose_admin(struct peer *p, RaftCmdpb__RaftCmdRequest *cmd, raftstore_cb cb, void *arg)
{
    propose_cmd(p, cmd, 0, NULL, cb, arg);
}

/*
 * The leader lease, as TiKV's. A ReadIndex confirmed by a quorum proves this peer was leader
 * when it issued it: every peer of that quorum heard from it afterwards, and with check_quorum
 * such a peer grants no vote (nor pre-vote) for an election timeout after it last heard from
 * its leader. So no other leader can exist until the issue time plus an election timeout as the
 * followers count it (ticks: at least election_ticks - 1 whole ticks after they heard, and a
 * busy loop only makes their ticks later). The lease is that span less one more tick as a
 * margin for clock-rate drift, on this store's monotonic clock. It is dropped on any doubt:
 * stepping down, another term, a membership change, a leadership transfer under way (the
 * transferee campaigns at once, lease or not).
 */
static uint64_t lease_span_ms(const struct raftstore *rs)
{
    int ticks = rs->cfg.election_ticks - 2;
    return ticks > 0 ? (uint64_t)ticks * (uint64_t)rs->cfg.tick_ms : 0;
}

static int lease_valid(const struct peer *p, uint64_t now)
{
    return p->is_leader && now < p->lease_until_ms && p->lease_term == p->ps.hs.term &&
           p->lease_conf_ver == p->ps.region.conf_ver && raft_rawnode_lead_transferee(p->rn) == 0;
}

static void drop_lease(struct peer *p)
{
    p->lease_until_ms = 0;
    p->probe_id = 0;
    local_read_withdraw(p->rs->local_reads, p->region_id);
}

void peer_publish_local_read(struct peer *p)
{
    /* Reads off the loop see the kv engine as it stands: everything this leader has answered is
     * applied there, and once it has applied an entry of its own term, so is everything earlier
     * leaders committed. They stop half a lease early so the loop renews it meanwhile. */
    uint64_t now = rpc_now_ms();
    uint64_t until = p->lease_until_ms - lease_span_ms(p->rs) / 2;
    if (lease_valid(p, now) && now < until && p->ps.applied_term == p->ps.hs.term &&
        !p->pending_remove && !p->applying_snapshot &&
        local_read_publish(p->rs->local_reads, &p->ps.region, p->ps.hs.term, until,
                           &p->local_lease_reads) == 0)
        return;
    p->local_lease_reads = local_read_withdraw(p->rs->local_reads, p->region_id);
}

/* A ReadIndex with context id was just issued: it becomes the probe if none is outstanding (a
 * probe whose answer did not come within a lease span is given up: the ReadIndex was lost). */
static void maybe_probe(struct peer *p, uint64_t id, uint64_t now)
{
    if (p->probe_id && now - p->probe_ms < lease_span_ms(p->rs))
        return;
    p->probe_id = id;
    p->probe_ms = now;
    p->probe_term = p->ps.hs.term;
    p->probe_conf_ver = p->ps.region.conf_ver;
}

/* A confirmed ReadIndex: if it is the probe, the lease runs from the probe's issue time. */
static void probe_confirmed(struct peer *p, uint64_t id)
{
    if (!id || id != p->probe_id)
        return;
    p->probe_id = 0;
    if (p->is_leader && p->probe_term == p->ps.hs.term &&
        p->probe_conf_ver == p->ps.region.conf_ver) {
        p->lease_until_ms = p->probe_ms + lease_span_ms(p->rs);
        p->lease_term = p->probe_term;
        p->lease_conf_ver = p->probe_conf_ver;
    }
}

/* Issues a ReadIndex with a fresh context; 0 or -1 when not leader. */
static int issue_read_index(struct peer *p, uint64_t *id_out)
{
    uint64_t id = ++p->rs->next_read_id;
    uint8_t ctx[8];
    for (int i = 0; i < 8; i++)
        ctx[i] = (uint8_t)(id >> (56 - 8 * i));
    if (raft_rawnode_read_index(p->rn, ctx, sizeof ctx) != 0)
        return -1;
    maybe_probe(p, id, rpc_now_ms());
    *id_out = id;
    return 0;
}

static void append_read(struct peer *p, struct pending_read *rd)
{
    if (p->reads_tail)
        p->reads_tail->next = rd;
    else
        p->reads = rd;
    p->reads_tail = rd;
}

static void serve_reads(struct peer *p);

void peer_read(struct peer *p, struct mail *m)
{
    if (check_request(p, &m->ctx, m->cb, m->cb_arg))
        return;
    struct pending_read *rd = malloc(sizeof *rd);
    if (!rd) {
        raftstore_answer(m->cb, m->cb_arg, STORAGE_ERR_NOMEM, NULL, NULL);
        return;
    }
    uint64_t now = rpc_now_ms();
    if (lease_valid(p, now)) {
        /* No other leader can have committed anything: what this one has committed is all
         * there is. Renew the lease in the background once half of it has gone. */
        uint64_t renew_id;
        if (p->lease_until_ms - now < lease_span_ms(p->rs) / 2 && !p->probe_id)
            issue_read_index(p, &renew_id);
        p->lease_reads++;
        metrics_counter_inc(RAFTSTORE_METRIC(p->rs, reads_lease));
        *rd =
            (struct pending_read){0, p->ps.hs.commit, p->ps.region.version, m->cb, m->cb_arg, NULL};
        append_read(p, rd);
        serve_reads(p);
        return;
    }
    metrics_counter_inc(RAFTSTORE_METRIC(p->rs, reads_read_index));
    /* Reads drained from the mailbox together share one ReadIndex: all of them
     * arrived before it is issued, so its confirmation covers each. */
    uint64_t id = p->batch_read_id;
    if (!id) {
        if (issue_read_index(p, &id) != 0) {
            free(rd);
            answer_not_leader(p, m->cb, m->cb_arg);
            return;
        }
        p->batch_read_id = id;
    }
    *rd = (struct pending_read){id, 0, p->ps.region.version, m->cb, m->cb_arg, NULL};
    append_read(p, rd);
}

void peer_change_peer(struct peer *p, int remove, struct region_peer target)
{
    if (!p->is_leader)
        return;
    int present = store_region_peer_by_id(&p->ps.region, target.id) != NULL;
    if (remove != present)
        return; /* already done: a repeated operator step */
    RaftCmdpb__RaftCmdRequest cmd = RAFT_CMDPB__RAFT_CMD_REQUEST__INIT;
    RaftCmdpb__AdminRequest admin = RAFT_CMDPB__ADMIN_REQUEST__INIT;
    RaftCmdpb__ChangePeerRequest cp = RAFT_CMDPB__CHANGE_PEER_REQUEST__INIT;
    Metapb__Peer peer = METAPB__PEER__INIT;
    peer.id = target.id;
    peer.store_id = target.store_id;
    cp.change_type =
        remove ? ERAFTPB__CONF_CHANGE_TYPE__RemoveNode : ERAFTPB__CONF_CHANGE_TYPE__AddNode;
    cp.peer = &peer;
    admin.cmd_type = RAFT_CMDPB__ADMIN_CMD_TYPE__ChangePeer;
    admin.change_peer = &cp;
    cmd.admin_request = &admin;
    struct raft_conf_change cc = {remove ? RAFT_CONF_REMOVE_NODE : RAFT_CONF_ADD_NODE, target.id,
                                  NULL, 0};
    LOG(LOG_INFO, "region=%llu peer=%llu: proposing %s peer %llu on store %llu",
        (unsigned long long)p->region_id, (unsigned long long)p->peer_id, remove ? "remove" : "add",
        (unsigned long long)target.id, (unsigned long long)target.store_id);
    propose_cmd(p, &cmd, 1, &cc, NULL, NULL);
}

void peer_transfer_leader(struct peer *p, uint64_t to_peer_id)
{
    if (p->is_leader && to_peer_id != p->peer_id &&
        store_region_peer_by_id(&p->ps.region, to_peer_id)) {
        peer_flush_writes(p); /* proposed here, before the leadership moves */
        drop_lease(p);        /* the transferee will campaign without waiting for any lease */
        raft_rawnode_transfer_leader(p->rn, to_peer_id);
    }
}

/* A leader hears from a peer that is no longer a member: tell it to go. */
static void send_tombstone(struct peer *p, const RaftServerpb__RaftMessage *in)
{
    Metapb__RegionEpoch epoch = METAPB__REGION_EPOCH__INIT;
    epoch.conf_ver = p->ps.region.conf_ver;
    epoch.version = p->ps.region.version;
    Metapb__Peer from = METAPB__PEER__INIT;
    from.id = p->peer_id;
    from.store_id = p->rs->cfg.store_id;
    RaftServerpb__RaftMessage msg = RAFT_SERVERPB__RAFT_MESSAGE__INIT;
    msg.region_id = p->region_id;
    msg.from_peer = &from;
    msg.to_peer = in->from_peer;
    msg.region_epoch = &epoch;
    msg.is_tombstone = 1;
    p->rs->cfg.transport.send(p->rs->cfg.transport_ctx, in->from_peer->store_id, &msg);
}

void peer_step(struct peer *p, const RaftServerpb__RaftMessage *msg)
{
    const Metapb__RegionEpoch *ep = msg->region_epoch;
    if (msg->is_tombstone) {
        /* Only a newer configuration may tell us we were removed. */
        if (ep && ep->conf_ver > p->ps.region.conf_ver &&
            !store_region_peer_by_id(&p->ps.region, p->peer_id))
            p->pending_remove = 1;
        else if (ep && ep->conf_ver > p->ps.region.conf_ver && !peer_storage_initialized(&p->ps))
            p->pending_remove = 1;
        return;
    }
    if (!msg->message)
        return;
    if (peer_storage_initialized(&p->ps) && msg->from_peer &&
        !store_region_peer_by_id(&p->ps.region, msg->from_peer->id)) {
        if (ep && ep->conf_ver < p->ps.region.conf_ver)
            send_tombstone(p, msg);
        return;
    }
    if (msg->from_peer && !store_region_peer_by_id(&p->ps.region, msg->from_peer->id)) {
        /* A sender we cannot yet address: learn its store from the message. */
        size_t i;
        for (i = 0; i < p->n_peer_cache; i++)
            if (p->peer_cache[i].id == msg->from_peer->id)
                break;
        if (i == p->n_peer_cache) {
            i = p->n_peer_cache < 8 ? p->n_peer_cache++ : msg->from_peer->id % 8;
            p->peer_cache[i] = (struct region_peer){msg->from_peer->id, msg->from_peer->store_id};
        }
    }
    struct raft_message m;
    if (raft_codec_message_from_proto(msg->message, &m) != 0)
        return;
    int rc = raft_rawnode_step(p->rn, &m);
    if (raft_rawnode_lead_transferee(p->rn))
        drop_lease(p); /* a transfer asked for by a message: the transferee will not wait */
    if (rc && rc != RAFT_ERR_STEP_PEER_NOT_FOUND)
        LOG(LOG_DEBUG, "region=%llu peer=%llu: step: %s", (unsigned long long)p->region_id,
            (unsigned long long)p->peer_id, raft_strerror(rc));
    raft_message_free(&m);
}

void peer_region_heartbeat(struct peer *p)
{
    if (!p->rs->cfg.pd.region_heartbeat)
        return;
    struct raft_status st;
    uint64_t pending[16];
    size_t n_pending = 0;
    if (raft_rawnode_status(p->rn, &st) == 0) {
        for (size_t i = 0; i < st.n_peers && n_pending < 16; i++)
            if (st.peers[i].id != p->peer_id && st.peers[i].match < p->ps.truncated_index)
                pending[n_pending++] = st.peers[i].id;
        raft_status_free(&st);
    }
    const struct region *r = &p->ps.region;
    /* The last split check's scan (it sees memtables) plus what apply has
     * added since; until the first scan, RocksDB's estimate from its files. */
    uint64_t size = p->approx_size + p->size_diff_hint;
    uint64_t keys = p->approx_keys + p->keys_diff_hint;
    if (!p->approx_known) {
        uint8_t *lo, *hi;
        size_t lo_len, hi_len;
        if (store_region_data_range(r, &lo, &lo_len, &hi, &hi_len) != 0)
            return;
        size = engine_approximate_size(p->rs->cfg.kv, lo, lo_len, hi, hi_len);
        free(lo);
        free(hi);
    }
    struct raftstore_region_report rep = {
        .region = r,
        .leader_peer_id = p->peer_id,
        .pending_peer_ids = pending,
        .n_pending_peer_ids = n_pending,
        .approximate_size_bytes = size,
        .approximate_keys = keys,
    };
    p->rs->cfg.pd.region_heartbeat(p->rs->cfg.pd_ctx, &rep);
}

void peer_split_checked(struct peer *p, struct mail *m)
{
    p->split_checking = 0;
    if (m->flag || m->epoch_version != p->ps.region.version)
        return; /* failed, or the region changed under the scan: look again later */
    p->approx_size = m->size_bytes;
    p->approx_keys = m->n_keys;
    p->approx_known = 1;
    p->size_diff_hint = p->keys_diff_hint = 0;
    p->split_wanted = m->split_key != NULL;
    if (m->split_key && p->is_leader && p->rs->cfg.pd.ask_split) {
        LOG(LOG_INFO, "region=%llu peer=%llu: %llu bytes, %llu keys: asking to split",
            (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
            (unsigned long long)m->size_bytes, (unsigned long long)m->n_keys);
        p->rs->cfg.pd.ask_split(p->rs->cfg.pd_ctx, p->region_id, m->epoch_version, m->split_key,
                                m->split_key_len);
    }
}

void peer_tick(struct peer *p)
{
    raft_rawnode_tick(p->rn);
    if (p->is_leader && ++p->ticks_since_split_check >= p->rs->cfg.split_check_ticks) {
        p->ticks_since_split_check = 0;
        if (split_check_due(p))
            split_check_schedule(p->rs, p);
    }
    if (p->is_leader && ++p->ticks_since_heartbeat >= p->rs->cfg.region_heartbeat_ticks) {
        p->ticks_since_heartbeat = 0;
        peer_region_heartbeat(p);
    }
}

int peer_has_ready(struct peer *p)
{
    if (p->applying_snapshot)
        return 0;
    return raft_rawnode_has_ready(p->rn) || p->ps.snap_requested;
}

void peer_snapshot_applied(struct peer *p)
{
    struct peer_storage *ps = &p->ps;
    struct raft_ready *rd = &p->held;
    rocksdb_writebatch_t *kv_wb = rocksdb_writebatch_create();
    rocksdb_writebatch_t *raft_wb = rocksdb_writebatch_create();
    peer_storage_apply_snapshot_meta(ps, &rd->snapshot, &p->held_region, kv_wb, raft_wb);
    char err[256];
    if (engine_write_batch(p->rs->cfg.kv, kv_wb, 1, err, sizeof err) != 0)
        abort();
    if (peer_storage_append_to_batch(ps, rd->entries, rd->n_entries, raft_wb) != 0)
        abort();
    if (rd->has_hard_state)
        ps->hs = rd->hard_state;
    peer_storage_raft_state_to_batch(ps, raft_wb);
    if (engine_write_batch(p->rs->cfg.raft, raft_wb, 1, err, sizeof err) != 0)
        abort();
    rocksdb_writebatch_destroy(kv_wb);
    rocksdb_writebatch_destroy(raft_wb);
    store_region_free(&p->held_region);
    p->last_compact_index = ps->truncated_index + 1;
    p->applying_snapshot = 0;
    LOG(LOG_INFO, "region=%llu peer=%llu: applied snapshot at index %llu (%zu peers)",
        (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
        (unsigned long long)ps->truncated_index, ps->region.n_peers);
    struct raft_ready done = *rd;
    memset(&p->held, 0, sizeof p->held);
    peer_after_persist(p, &done);
}

int peer_collect_ready(struct peer *p, struct raft_ready *rd, rocksdb_writebatch_t *raft_wb)
{
    if (p->ps.snap_requested) {
        p->ps.snap_requested = 0;
        snapshot_schedule(p->rs, p);
    }
    if (!raft_rawnode_has_ready(p->rn))
        return -1;
    if (raft_rawnode_ready(p->rn, rd) != 0)
        return -1;
    struct peer_storage *ps = &p->ps;
    if (rd->has_snapshot) {
        /* The data goes to the worker; this Ready waits for it, off the loop. */
        if (snapshot_region(&rd->snapshot, &p->held_region) != 0) {
            LOG(LOG_ERROR, "region=%llu peer=%llu: snapshot does not decode",
                (unsigned long long)p->region_id, (unsigned long long)p->peer_id);
            abort();
        }
        /* Its range is taken from now on: no other region may be created
         * or snapshot over it while the worker writes. */
        if (store_meta_put(&p->rs->meta, &p->held_region) != 0)
            LOG(LOG_ERROR, "region=%llu peer=%llu: snapshot's range overlaps another region",
                (unsigned long long)p->region_id, (unsigned long long)p->peer_id);
        p->held = *rd;
        p->applying_snapshot = 1;
        snapshot_schedule_apply(p->rs, p);
        return -1;
    }
    if (peer_storage_append_to_batch(ps, rd->entries, rd->n_entries, raft_wb) != 0)
        abort();
    if (rd->has_hard_state)
        ps->hs = rd->hard_state;
    if (rd->has_hard_state || rd->n_entries || rd->has_snapshot)
        peer_storage_raft_state_to_batch(ps, raft_wb);
    return 0;
}

static void serve_reads(struct peer *p)
{
    while (p->reads && p->reads->index && p->reads->index <= p->ps.applied_index) {
        struct pending_read *rd = p->reads;
        p->reads = rd->next;
        if (!p->reads)
            p->reads_tail = NULL;
        if (rd->version != p->ps.region.version) {
            /* A split applied while it waited: its keys were checked against
             * a range the region no longer has. */
            raftstore_answer_region_error(rd->cb, rd->cb_arg, STORAGE_REGION_ERR_EPOCH_NOT_MATCH,
                                          p->region_id, 0, 0, "region changed during the read");
            free(rd);
            continue;
        }
        struct storage_reader *reader = NULL;
        uint8_t *lo, *hi;
        size_t lo_len, hi_len;
        int rc = STORAGE_ERR_NOMEM;
        if (store_region_data_range(&p->ps.region, &lo, &lo_len, &hi, &hi_len) == 0) {
            rc = engine_snapshot_reader_bounded(p->rs->cfg.kv, lo, lo_len, hi, hi_len, &reader);
            free(lo);
            free(hi);
        }
        if (rc == 0)
            reader->term = p->ps.hs.term;
        raftstore_answer(rd->cb, rd->cb_arg, rc, NULL, rc ? NULL : reader);
        free(rd);
    }
}

static void maybe_compact_log(struct peer *p)
{
    struct peer_storage *ps = &p->ps;
    if (!p->is_leader ||
        ps->applied_index - ps->truncated_index < p->rs->cfg.raft_log_gc_count_limit)
        return;
    /* Keep the newest entries so slightly lagging followers need no snapshot. */
    uint64_t limit = p->rs->cfg.raft_log_gc_count_limit;
    uint64_t idx = ps->applied_index - limit / 4;
    /* Spare a live follower that is behind that, unless the log has grown to
     * twice the limit: then it takes a snapshot rather than holding the log. */
    struct raft_status st;
    if (ps->applied_index - ps->truncated_index < 2 * limit &&
        raft_rawnode_status(p->rn, &st) == 0) {
        for (size_t i = 0; i < st.n_peers; i++)
            if (st.peers[i].id != p->peer_id && st.peers[i].recent_active &&
                st.peers[i].match > ps->truncated_index && st.peers[i].match < idx)
                idx = st.peers[i].match;
        raft_status_free(&st);
    }
    if (idx <= p->compact_proposed || idx <= ps->truncated_index)
        return; /* one compaction in flight at a time */
    uint64_t term;
    struct raft_storage s = peer_storage_raft_storage(ps);
    if (s.ops->term(s.ctx, idx, &term) != 0)
        return;
    RaftCmdpb__RaftCmdRequest cmd = RAFT_CMDPB__RAFT_CMD_REQUEST__INIT;
    RaftCmdpb__AdminRequest admin = RAFT_CMDPB__ADMIN_REQUEST__INIT;
    RaftCmdpb__CompactLogRequest cl = RAFT_CMDPB__COMPACT_LOG_REQUEST__INIT;
    cl.compact_index = idx;
    cl.compact_term = term;
    admin.cmd_type = RAFT_CMDPB__ADMIN_CMD_TYPE__CompactLog;
    admin.compact_log = &cl;
    cmd.admin_request = &admin;
    if (propose_cmd(p, &cmd, 0, NULL, NULL, NULL) == 0)
        p->compact_proposed = idx;
}

void peer_send_before_persist(struct peer *p, struct raft_ready *rd)
{
    /* Only new entries gain from going first; a commit-only round sends its messages in
     * peer_after_persist. */
    if (!p->is_leader || !rd->must_sync)
        return;
    for (size_t i = 0; i < rd->n_messages; i++) {
        struct raft_message *m = &rd->messages[i];
        if (m->msg_type != RAFT_MSG_APPEND)
            continue;
        raftstore_send(p->rs, p, m);
        m->to = 0; /* sent (no peer has id 0): peer_after_persist passes it by */
    }
}

/* Whether a leader's Ready may apply before it sends: a commit-only round whose entries change
 * no membership (a removed peer must still be sent the commit that removes it). */
static int apply_before_sending(const struct peer *p, const struct raft_ready *rd)
{
    if (!p->is_leader || rd->must_sync)
        return 0;
    for (size_t i = 0; i < rd->n_committed_entries; i++)
        if (rd->committed_entries[i].entry_type != RAFT_ENTRY_NORMAL)
            return 0;
    return 1;
}

static void send_the_rest(struct peer *p, struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_messages; i++)
        if (rd->messages[i].to != 0)
            raftstore_send(p->rs, p, &rd->messages[i]);
}

void peer_after_persist(struct peer *p, struct raft_ready *rd)
{
    /* A follower's acknowledgements go before it applies: the leader waits for them. A
     * leader's commit-only round applies first, so its clients' answers do not wait behind
     * the commit index going to the followers. */
    int apply_first = apply_before_sending(p, rd);
    if (!apply_first)
        send_the_rest(p, rd);
    if (rd->has_soft_state) {
        int was_leader = p->is_leader;
        p->rs->info_dirty = 1;
        p->leader_id = rd->soft_state.lead;
        p->is_leader = rd->soft_state.role == RAFT_ROLE_LEADER;
        if (p->is_leader != was_leader)
            LOG(LOG_INFO, "region=%llu peer=%llu: %s (term %llu)", (unsigned long long)p->region_id,
                (unsigned long long)p->peer_id, p->is_leader ? "became leader" : "stepped down",
                (unsigned long long)p->ps.hs.term);
        /* Proposals stay: each is answered when its index commits (with its
         * term: done; another: StaleCommand) or the request's deadline passes. */
        if (was_leader && !p->is_leader) {
            drop_lease(p);
            fail_reads(p, STORAGE_ERR_REGION);
        }
        if (p->is_leader && !was_leader) {
            p->ticks_since_heartbeat = 0;
            peer_region_heartbeat(p);
        }
    }
    for (size_t i = 0; i < rd->n_read_states; i++) {
        const struct raft_read_state *s = &rd->read_states[i];
        if (s->context_len != 8)
            continue;
        uint64_t id = 0;
        for (int k = 0; k < 8; k++)
            id = id << 8 | s->context[k];
        for (struct pending_read *r = p->reads; r; r = r->next)
            if (r->id == id)
                r->index = s->index;
        probe_confirmed(p, id);
    }
    if (rd->n_committed_entries)
        apply_committed(p, rd);
    if (apply_first)
        send_the_rest(p, rd);
    serve_reads(p);
    raft_rawnode_advance(p->rn, rd);
    maybe_compact_log(p);
}
