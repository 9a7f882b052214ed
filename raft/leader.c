/* leader.c — the leader's message handling: proposals, responses, ReadIndex, transfer,
 * check-quorum. */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

bool raft_quorum_heard(struct raft *r)
{
    size_t act = 0;
    for (size_t i = 0; i < r->n_prs; i++) {
        struct raft_progress *pr = &r->prs[i];
        if (pr->id == r->id || pr->inactive_ticks < r->election_timeout)
            act++;
    }
    return act >= raft_quorum(r);
}

/* The peer most likely to win an election at once: the best replicated one. */
static uint64_t best_follower(struct raft *r)
{
    uint64_t best = RAFT_NONE, match = 0;
    for (size_t i = 0; i < r->n_prs; i++) {
        struct raft_progress *pr = &r->prs[i];
        if (pr->id != r->id && (best == RAFT_NONE || pr->match > match)) {
            best = pr->id;
            match = pr->match;
        }
    }
    return best;
}

static void answer_read(struct raft *r, uint64_t from, uint64_t index, const uint8_t *ctx,
                        size_t ctx_len)
{
    if (from == RAFT_NONE || from == r->id) {
        if (raft_add_read_state(r, index, ctx, ctx_len) != RAFT_OK)
            raft_logf(r, RAFT_LOG_WARN, "dropped a read state: out of memory");
        return;
    }
    struct raft_message m = {.msg_type = RAFT_MSG_READ_INDEX_RESPONSE, .to = from, .index = index};
    if (ctx_len > 0) {
        m.context = malloc(ctx_len);
        if (m.context == NULL)
            return;
        memcpy(m.context, ctx, ctx_len);
        m.context_len = ctx_len;
    }
    raft_send(r, &m);
}

void raft_leader_read_index(struct raft *r, const struct raft_message *m)
{
    if (r->n_prs == 1) {
        answer_read(r, m->from, r->log.committed, m->context, m->context_len);
        return;
    }
    /* Confirm leadership with a heartbeat round carrying the request context. */
    if (raft_read_only_add(&r->read_only, r->log.committed, m->from, m->context, m->context_len,
                           r->id) != RAFT_OK)
        return;
    raft_bcast_heartbeat(r, m->context, m->context_len);
}

void raft_release_pending_reads(struct raft *r)
{
    if (r->n_pending_reads == 0 || !raft_committed_entry_in_current_term(r))
        return;
    struct raft_message *reads = r->pending_reads;
    size_t n = r->n_pending_reads;
    r->pending_reads = NULL;
    r->n_pending_reads = 0;
    for (size_t i = 0; i < n; i++) {
        raft_leader_read_index(r, &reads[i]);
        raft_message_free(&reads[i]);
    }
    free(reads);
}

static int defer_read(struct raft *r, const struct raft_message *m)
{
    struct raft_message *p = realloc(r->pending_reads, (r->n_pending_reads + 1) * sizeof *p);
    if (p == NULL)
        return RAFT_ERR_NOMEM;
    r->pending_reads = p;
    int rc = raft_message_copy(&r->pending_reads[r->n_pending_reads], m);
    if (rc != RAFT_OK)
        return rc;
    r->n_pending_reads++;
    return RAFT_OK;
}

static int propose(struct raft *r, const struct raft_message *m)
{
    if (m->n_entries == 0)
        return RAFT_ERR_INVALID;
    if (raft_progress_get(r, r->id) == NULL)
        return RAFT_ERR_PROPOSAL_DROPPED; /* we were removed from the group */
    if (r->lead_transferee != RAFT_NONE)
        return RAFT_ERR_PROPOSAL_DROPPED;
    struct raft_entry *ents = calloc(m->n_entries, sizeof *ents);
    if (ents == NULL)
        return RAFT_ERR_NOMEM;
    uint64_t last = raft_log_last_index(&r->log);
    uint64_t pending = r->pending_conf_index;
    for (size_t i = 0; i < m->n_entries; i++) {
        ents[i] = m->entries[i]; /* shallow: raft_log_append copies the data */
        if (ents[i].entry_type == RAFT_ENTRY_CONF_CHANGE) {
            if (pending > r->log.applied) {
                /* One change at a time: keep the slot but make it a no-op. */
                raft_logf(r, RAFT_LOG_INFO, "ignoring conf change: one is pending at %llu",
                          (unsigned long long)r->pending_conf_index);
                ents[i].entry_type = RAFT_ENTRY_NORMAL;
                ents[i].data = NULL;
                ents[i].data_len = 0;
            } else {
                pending = last + 1 + i;
            }
        }
    }
    int rc = raft_append_entries(r, ents, m->n_entries);
    free(ents);
    if (rc != RAFT_OK)
        return rc;
    r->pending_conf_index = pending; /* only once the entry is really in the log */
    raft_bcast_append_soon(r);
    return RAFT_OK;
}

static void handle_append_response(struct raft *r, struct raft_progress *pr,
                                   const struct raft_message *m)
{
    pr->recent_active = true;
    pr->inactive_ticks = 0;
    if (m->reject) {
        if (raft_progress_maybe_decr_to(pr, m->index, m->reject_hint)) {
            if (pr->state == RAFT_PROGRESS_REPLICATE)
                raft_progress_become_probe(pr);
            raft_send_append(r, pr->id);
        }
        return;
    }
    bool old_paused = raft_progress_is_paused(pr);
    if (!raft_progress_maybe_update(pr, m->index))
        return;
    switch (pr->state) {
    case RAFT_PROGRESS_PROBE:
        raft_progress_become_replicate(pr);
        break;
    case RAFT_PROGRESS_SNAPSHOT:
        if (raft_progress_need_snapshot_abort(pr))
            raft_progress_become_probe(pr);
        break;
    case RAFT_PROGRESS_REPLICATE:
        raft_inflights_free_to(&pr->ins, m->index);
        break;
    }
    uint64_t id = pr->id;
    if (r->batch_appends) {
        /* What the followers are owed goes out with the next Ready: the new commit index to
         * all of them, or what this one still lacks. */
        if (raft_maybe_commit(r)) {
            raft_release_pending_reads(r);
            r->bcast_pending = true;
        } else {
            r->catchup_pending = true;
        }
    } else if (raft_maybe_commit(r)) {
        raft_release_pending_reads(r);
        raft_bcast_append(r);
    } else if (old_paused) {
        raft_send_append(r, id);
    }
    /* Keep the pipe full: with room in the window, send what is left (batch_appends: at the
     * next Ready). */
    if (!r->batch_appends)
        raft_send_remaining(r, id);
    pr = raft_progress_get(r, id);
    if (id == r->lead_transferee && pr != NULL && pr->match == raft_log_last_index(&r->log)) {
        raft_logf(r, RAFT_LOG_INFO, "sent timeout-now to %llu: its log is up to date",
                  (unsigned long long)id);
        raft_send_timeout_now(r, id);
    }
}

static void handle_heartbeat_response(struct raft *r, struct raft_progress *pr,
                                      const struct raft_message *m)
{
    pr->recent_active = true;
    pr->inactive_ticks = 0;
    pr->paused = false;
    /* a full window may mean lost appends: free one slot to retry */
    if (pr->state == RAFT_PROGRESS_REPLICATE && raft_inflights_full(&pr->ins))
        raft_inflights_free_first_one(&pr->ins);
    if (pr->match < raft_log_last_index(&r->log))
        raft_send_append(r, pr->id);
    if (m->context_len == 0)
        return;
    if (raft_read_only_recv_ack(&r->read_only, m->from, m->context, m->context_len) <
        raft_quorum(r))
        return;
    struct raft_read_request *reqs;
    size_t n;
    raft_read_only_advance(&r->read_only, m->context, m->context_len, &reqs, &n);
    for (size_t i = 0; i < n; i++)
        answer_read(r, reqs[i].from, reqs[i].index, reqs[i].ctx, reqs[i].ctx_len);
    raft_read_only_free_requests(reqs, n);
}

static void handle_transfer(struct raft *r, struct raft_progress *pr)
{
    uint64_t transferee = pr->id;
    uint64_t last = r->lead_transferee;
    if (last != RAFT_NONE) {
        if (last == transferee)
            return; /* already in progress */
        raft_abort_leader_transfer(r);
    }
    if (transferee == r->id)
        return; /* already leader */
    /* the transfer must finish within one election timeout */
    r->election_elapsed = 0;
    r->lead_transferee = transferee;
    raft_logf(r, RAFT_LOG_INFO, "starting leadership transfer to %llu",
              (unsigned long long)transferee);
    if (pr->match == raft_log_last_index(&r->log))
        raft_send_timeout_now(r, transferee);
    else
        raft_send_append(r, transferee); /* catch it up first */
}

int raft_step_leader(struct raft *r, const struct raft_message *m)
{
    switch (m->msg_type) {
    case RAFT_MSG_BEAT: {
        const struct raft_read_request *last = raft_read_only_last(&r->read_only);
        raft_bcast_heartbeat(r, last ? last->ctx : NULL, last ? last->ctx_len : 0);
        return RAFT_OK;
    }
    case RAFT_MSG_CHECK_QUORUM:
        if (!raft_quorum_heard(r)) {
            /* We hear no quorum, but our messages may still get through (a
             * partition can cut one direction only): hand over to the best
             * replicated follower, which campaigns at once instead of after
             * its election timeout. If the message is lost, the followers
             * elect as usual once they stop hearing from us. */
            uint64_t to = best_follower(r);
            raft_logf(r, RAFT_LOG_WARN, "stepped down: quorum is not active (timeout-now to %llu)",
                      (unsigned long long)to);
            if (to != RAFT_NONE)
                raft_send_timeout_now(r, to);
            raft_become_follower(r, r->term, RAFT_NONE);
        }
        return RAFT_OK;
    case RAFT_MSG_PROPOSE:
        return propose(r, m);
    case RAFT_MSG_READ_INDEX:
        if (r->n_prs > 1 && !raft_committed_entry_in_current_term(r))
            return defer_read(r, m); /* our commit index may still be stale */
        raft_leader_read_index(r, m);
        return RAFT_OK;
    default:
        break;
    }
    struct raft_progress *pr = raft_progress_get(r, m->from);
    if (pr == NULL)
        return RAFT_OK;
    switch (m->msg_type) {
    case RAFT_MSG_APPEND_RESPONSE:
        handle_append_response(r, pr, m);
        break;
    case RAFT_MSG_HEARTBEAT_RESPONSE:
        handle_heartbeat_response(r, pr, m);
        break;
    case RAFT_MSG_SNAPSHOT_STATUS:
        if (pr->state != RAFT_PROGRESS_SNAPSHOT)
            break;
        if (m->reject)
            pr->pending_snapshot = 0; /* failed: probe from match again */
        raft_progress_become_probe(pr);
        /* wait for a heartbeat response before the next append */
        pr->paused = true;
        break;
    case RAFT_MSG_UNREACHABLE:
        if (pr->state == RAFT_PROGRESS_REPLICATE)
            raft_progress_become_probe(pr);
        break;
    case RAFT_MSG_TRANSFER_LEADER:
        handle_transfer(r, pr);
        break;
    default:
        break;
    }
    return RAFT_OK;
}
