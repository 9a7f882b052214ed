/* rawnode.c — the embedder's API: requests, the Ready/advance cycle and status. */
#include "raft/raft_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct raft_rawnode {
    struct raft r;
    struct raft_soft_state prev_soft;
    struct raft_hard_state prev_hard;
    bool ready_out; /* a Ready is outstanding; its buffers below are ours */
    struct raft_ready rd;
};

static struct raft_soft_state soft_state(const struct raft *r)
{
    return (struct raft_soft_state){.lead = r->lead, .role = r->state};
}

static struct raft_hard_state hard_state(const struct raft *r)
{
    return (struct raft_hard_state){.term = r->term, .vote = r->vote, .commit = r->log.committed};
}

int raft_rawnode_new(const struct raft_config *cfg, struct raft_rawnode **out, char *errbuf,
                     size_t errbuf_len)
{
    *out = NULL;
    struct raft_rawnode *rn = calloc(1, sizeof *rn);
    if (rn == NULL)
        return RAFT_ERR_NOMEM;
    int rc = raft_init(&rn->r, cfg, errbuf, errbuf_len);
    if (rc != RAFT_OK) {
        free(rn);
        return rc;
    }
    rn->prev_soft = soft_state(&rn->r);
    rn->prev_hard = hard_state(&rn->r);
    *out = rn;
    return RAFT_OK;
}

static void free_ready(struct raft_ready *rd)
{
    raft_entries_free(rd->entries, rd->n_entries);
    raft_entries_free(rd->committed_entries, rd->n_committed_entries);
    for (size_t i = 0; i < rd->n_messages; i++)
        raft_message_free(&rd->messages[i]);
    free(rd->messages);
    for (size_t i = 0; i < rd->n_read_states; i++)
        free(rd->read_states[i].context);
    free(rd->read_states);
    raft_snapshot_free(&rd->snapshot);
    memset(rd, 0, sizeof *rd);
}

void raft_rawnode_free(struct raft_rawnode *rn)
{
    if (rn == NULL)
        return;
    free_ready(&rn->rd);
    raft_close(&rn->r);
    free(rn);
}

const char *raft_rawnode_errmsg(const struct raft_rawnode *rn)
{
    return rn->r.errmsg;
}

static int fail(struct raft_rawnode *rn, int rc, const char *what)
{
    if (rc != RAFT_OK)
        snprintf(rn->r.errmsg, sizeof rn->r.errmsg, "%s: %s", what, raft_strerror(rc));
    return rc;
}

void raft_rawnode_tick(struct raft_rawnode *rn)
{
    raft_tick(&rn->r);
}

int raft_rawnode_campaign(struct raft_rawnode *rn)
{
    struct raft_message m = {.msg_type = RAFT_MSG_HUP};
    return fail(rn, raft_step_msg(&rn->r, &m), "campaign");
}

static int propose_entry(struct raft_rawnode *rn, enum raft_entry_type type, const void *data,
                         size_t len)
{
    struct raft_entry e = {.entry_type = type, .data = (uint8_t *)data, .data_len = len};
    struct raft_message m = {
        .msg_type = RAFT_MSG_PROPOSE, .from = rn->r.id, .entries = &e, .n_entries = 1};
    return fail(rn, raft_step_msg(&rn->r, &m), "propose");
}

int raft_rawnode_propose(struct raft_rawnode *rn, const void *data, size_t len)
{
    return propose_entry(rn, RAFT_ENTRY_NORMAL, data, len);
}

int raft_rawnode_propose_conf_change(struct raft_rawnode *rn, const void *data, size_t len)
{
    return propose_entry(rn, RAFT_ENTRY_CONF_CHANGE, data, len);
}

int raft_rawnode_apply_conf_change(struct raft_rawnode *rn, const struct raft_conf_change *cc,
                                   struct raft_conf_state *out)
{
    struct raft *r = &rn->r;
    int rc = RAFT_OK;
    if (cc->node_id != RAFT_NONE) {
        switch (cc->change_type) {
        case RAFT_CONF_ADD_NODE:
            rc = raft_add_node(r, cc->node_id);
            break;
        case RAFT_CONF_REMOVE_NODE:
            raft_remove_node(r, cc->node_id);
            break;
        default:
            rc = RAFT_ERR_INVALID;
        }
        if (rc != RAFT_OK)
            return fail(rn, rc, "apply conf change");
    }
    if (out == NULL)
        return RAFT_OK;
    out->n_nodes = 0;
    out->nodes = NULL;
    if (r->n_prs == 0)
        return RAFT_OK;
    out->nodes = malloc(r->n_prs * sizeof *out->nodes);
    if (out->nodes == NULL)
        return fail(rn, RAFT_ERR_NOMEM, "apply conf change");
    for (size_t i = 0; i < r->n_prs; i++)
        out->nodes[i] = r->prs[i].id;
    out->n_nodes = r->n_prs;
    return RAFT_OK;
}

static bool is_local_msg(enum raft_msg_type t)
{
    return t == RAFT_MSG_HUP || t == RAFT_MSG_BEAT || t == RAFT_MSG_CHECK_QUORUM ||
           t == RAFT_MSG_UNREACHABLE || t == RAFT_MSG_SNAPSHOT_STATUS;
}

static bool is_response_msg(enum raft_msg_type t)
{
    return t == RAFT_MSG_APPEND_RESPONSE || t == RAFT_MSG_REQUEST_VOTE_RESPONSE ||
           t == RAFT_MSG_HEARTBEAT_RESPONSE || t == RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE;
}

int raft_rawnode_step(struct raft_rawnode *rn, const struct raft_message *m)
{
    if (is_local_msg(m->msg_type))
        return fail(rn, RAFT_ERR_STEP_LOCAL_MSG, "step");
    if (is_response_msg(m->msg_type) && raft_progress_get(&rn->r, m->from) == NULL)
        return fail(rn, RAFT_ERR_STEP_PEER_NOT_FOUND, "step");
    return fail(rn, raft_step_msg(&rn->r, m), "step");
}

void raft_rawnode_transfer_leader(struct raft_rawnode *rn, uint64_t transferee)
{
    struct raft_message m = {.msg_type = RAFT_MSG_TRANSFER_LEADER, .from = transferee};
    raft_step_msg(&rn->r, &m);
}

int raft_rawnode_read_index(struct raft_rawnode *rn, const void *ctx, size_t len)
{
    struct raft_message m = {
        .msg_type = RAFT_MSG_READ_INDEX, .context = (uint8_t *)ctx, .context_len = len};
    return fail(rn, raft_step_msg(&rn->r, &m), "read index");
}

void raft_rawnode_report_unreachable(struct raft_rawnode *rn, uint64_t id)
{
    struct raft_message m = {.msg_type = RAFT_MSG_UNREACHABLE, .from = id};
    raft_step_msg(&rn->r, &m);
}

void raft_rawnode_report_snapshot(struct raft_rawnode *rn, uint64_t id, int failed)
{
    struct raft_message m = {.msg_type = RAFT_MSG_SNAPSHOT_STATUS, .from = id, .reject = failed};
    raft_step_msg(&rn->r, &m);
}

static bool soft_eq(struct raft_soft_state a, struct raft_soft_state b)
{
    return a.lead == b.lead && a.role == b.role;
}

static bool hard_eq(struct raft_hard_state a, struct raft_hard_state b)
{
    return a.term == b.term && a.vote == b.vote && a.commit == b.commit;
}

int raft_rawnode_has_ready(const struct raft_rawnode *rn)
{
    const struct raft *r = &rn->r;
    struct raft_hard_state hs = hard_state(r);
    return !soft_eq(soft_state(r), rn->prev_soft) ||
           (!hard_eq(hs, rn->prev_hard) && (hs.term || hs.vote || hs.commit)) ||
           r->log.unstable.has_snapshot || r->log.unstable.n_ents > 0 ||
           raft_log_has_next_ents(&r->log) || r->n_msgs > 0 || r->n_read_states > 0 ||
           r->bcast_pending || r->catchup_pending;
}

int raft_rawnode_ready(struct raft_rawnode *rn, struct raft_ready *rd)
{
    struct raft *r = &rn->r;
    struct raft_ready out = {0};
    int rc;
    if (rn->ready_out)
        return fail(rn, RAFT_ERR_INVALID, "ready: the previous Ready was not advanced");
    raft_flush_bcast(r);
    const struct raft_unstable *u = &r->log.unstable;
    if (u->n_ents > 0) {
        out.entries = calloc(u->n_ents, sizeof *out.entries);
        if (out.entries == NULL) {
            rc = RAFT_ERR_NOMEM;
            goto cleanup;
        }
        for (size_t i = 0; i < u->n_ents; i++) {
            rc = raft_entry_copy(&out.entries[i], &u->ents[i]);
            if (rc != RAFT_OK)
                goto cleanup;
            out.n_entries = i + 1;
        }
    }
    rc = raft_log_next_ents(&r->log, &out.committed_entries, &out.n_committed_entries);
    if (rc != RAFT_OK)
        goto cleanup;
    if (u->has_snapshot) {
        rc = raft_snapshot_copy(&out.snapshot, &u->snapshot);
        if (rc != RAFT_OK)
            goto cleanup;
        out.has_snapshot = 1;
    }
    struct raft_soft_state ss = soft_state(r);
    if (!soft_eq(ss, rn->prev_soft)) {
        out.has_soft_state = 1;
        out.soft_state = ss;
    }
    struct raft_hard_state hs = hard_state(r);
    if (!hard_eq(hs, rn->prev_hard)) {
        out.has_hard_state = 1;
        out.hard_state = hs;
    }
    out.must_sync =
        out.n_entries > 0 || hs.term != rn->prev_hard.term || hs.vote != rn->prev_hard.vote;
    /* Nothing can fail from here on: take over the outbox and read states. */
    out.messages = r->msgs;
    out.n_messages = r->n_msgs;
    r->msgs = NULL;
    r->n_msgs = r->cap_msgs = 0;
    out.read_states = r->read_states;
    out.n_read_states = r->n_read_states;
    r->read_states = NULL;
    r->n_read_states = r->cap_read_states = 0;
    rn->prev_soft = ss;
    rn->prev_hard = hs;
    rn->rd = out;
    rn->ready_out = true;
    *rd = out;
    return RAFT_OK;
cleanup:
    free_ready(&out);
    return fail(rn, rc, "ready");
}

void raft_rawnode_advance(struct raft_rawnode *rn, struct raft_ready *rd)
{
    struct raft *r = &rn->r;
    (void)rd; /* the node kept its own copy of what it handed out */
    if (!rn->ready_out)
        return;
    struct raft_ready *own = &rn->rd;
    if (own->has_snapshot) {
        raft_log_stable_snap_to(&r->log, own->snapshot.metadata.index);
        if (own->snapshot.metadata.index > r->log.applied)
            raft_log_applied_to(&r->log, own->snapshot.metadata.index);
    }
    if (own->n_entries > 0) {
        const struct raft_entry *last = &own->entries[own->n_entries - 1];
        raft_log_stable_to(&r->log, last->index, last->term);
    }
    if (own->n_committed_entries > 0) {
        uint64_t idx = own->committed_entries[own->n_committed_entries - 1].index;
        if (idx > r->log.applied)
            raft_log_applied_to(&r->log, idx);
    }
    free_ready(own);
    rn->ready_out = false;
    memset(rd, 0, sizeof *rd);
}

void raft_rawnode_last(const struct raft_rawnode *rn, uint64_t *last_index, uint64_t *term)
{
    *last_index = raft_log_last_index(&rn->r.log);
    *term = rn->r.term;
}

uint64_t raft_rawnode_lead_transferee(const struct raft_rawnode *rn)
{
    return rn->r.state == RAFT_ROLE_LEADER ? rn->r.lead_transferee : RAFT_NONE;
}

int raft_rawnode_leader_idle(const struct raft_rawnode *rn, int max_inactive_ticks)
{
    const struct raft *r = &rn->r;
    uint64_t last = raft_log_last_index(&r->log);
    if (r->state != RAFT_ROLE_LEADER || r->lead_transferee != RAFT_NONE ||
        r->pending_conf_index > r->log.applied || r->read_only.n || r->n_pending_reads ||
        r->log.committed != last || r->log.applied != last || r->n_msgs)
        return 0;
    for (size_t i = 0; i < r->n_prs; i++) {
        const struct raft_progress *pr = &r->prs[i];
        if (pr->id != r->id &&
            (pr->match != last || pr->pending_snapshot || pr->inactive_ticks > max_inactive_ticks))
            return 0;
    }
    return 1;
}

int raft_rawnode_follower_idle(const struct raft_rawnode *rn, uint64_t lead, uint64_t term,
                               uint64_t index)
{
    const struct raft *r = &rn->r;
    return r->state == RAFT_ROLE_FOLLOWER && r->lead == lead && lead != RAFT_NONE &&
           r->term == term && raft_log_last_index(&r->log) == index && r->log.committed == index &&
           r->log.applied == index && r->n_msgs == 0;
}

int raft_rawnode_status(const struct raft_rawnode *rn, struct raft_status *st)
{
    const struct raft *r = &rn->r;
    memset(st, 0, sizeof *st);
    st->id = r->id;
    st->hard_state = hard_state(r);
    st->applied = r->log.applied;
    st->lead = r->lead;
    st->role = r->state;
    st->lead_transferee = r->lead_transferee;
    st->first_index = raft_log_first_index(&r->log);
    st->last_index = raft_log_last_index(&r->log);
    if (r->state != RAFT_ROLE_LEADER || r->n_prs == 0)
        return RAFT_OK;
    st->peers = calloc(r->n_prs, sizeof *st->peers);
    if (st->peers == NULL)
        return RAFT_ERR_NOMEM;
    for (size_t i = 0; i < r->n_prs; i++) {
        const struct raft_progress *pr = &r->prs[i];
        st->peers[i] = (struct raft_peer_status){.id = pr->id,
                                                 .match = pr->match,
                                                 .next = pr->next,
                                                 .state = pr->state,
                                                 .pending_snapshot = pr->pending_snapshot,
                                                 .recent_active = pr->recent_active};
    }
    st->n_peers = r->n_prs;
    return RAFT_OK;
}
