/* election.c — campaigns, pre-votes, vote counting and the voting rules. */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

const char raft_campaign_transfer_ctx[] = "CampaignTransfer";

static bool has_unapplied_conf_change(struct raft *r)
{
    if (r->log.committed <= r->log.applied)
        return false;
    struct raft_entry *ents = NULL;
    size_t n = 0;
    if (raft_log_slice(&r->log, r->log.applied + 1, r->log.committed + 1, RAFT_NO_LIMIT, 0, &ents,
                       &n) != RAFT_OK)
        return true; /* cannot tell: do not risk campaigning */
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (ents[i].entry_type == RAFT_ENTRY_CONF_CHANGE)
            found = true;
    raft_entries_free(ents, n);
    return found;
}

void raft_hup(struct raft *r, enum raft_campaign_type t)
{
    if (r->state == RAFT_ROLE_LEADER)
        return;
    if (!raft_promotable(r)) {
        raft_logf(r, RAFT_LOG_WARN, "is unpromotable and can not campaign");
        return;
    }
    /* Campaigning before applying a committed conf change could elect us
     * under a stale configuration. */
    if (has_unapplied_conf_change(r)) {
        raft_logf(r, RAFT_LOG_WARN, "cannot campaign: pending configuration changes to apply");
        return;
    }
    raft_campaign(r, t);
}

/* Records id's answer once; returns the number of grants so far. */
static size_t poll(struct raft *r, uint64_t id, bool granted, size_t *rejected)
{
    bool seen = false;
    for (size_t i = 0; i < r->n_votes; i++)
        if (r->votes[i].id == id)
            seen = true;
    if (!seen) {
        struct raft_vote *p = realloc(r->votes, (r->n_votes + 1) * sizeof *p);
        if (p != NULL) { /* on OOM the vote is lost, like its message */
            r->votes = p;
            r->votes[r->n_votes++] = (struct raft_vote){.id = id, .granted = granted};
        }
    }
    size_t g = 0;
    for (size_t i = 0; i < r->n_votes; i++)
        if (r->votes[i].granted)
            g++;
    *rejected = r->n_votes - g;
    return g;
}

void raft_campaign(struct raft *r, enum raft_campaign_type t)
{
    enum raft_msg_type vote_msg;
    uint64_t term;
    if (t == RAFT_CAMPAIGN_PRE_ELECTION) {
        raft_become_pre_candidate(r);
        vote_msg = RAFT_MSG_REQUEST_PRE_VOTE;
        term = r->term + 1; /* the term we would campaign at */
    } else {
        raft_become_candidate(r);
        vote_msg = RAFT_MSG_REQUEST_VOTE;
        term = r->term;
    }
    size_t rejected;
    if (poll(r, r->id, true, &rejected) >= raft_quorum(r)) {
        /* a single-node group wins at once */
        if (t == RAFT_CAMPAIGN_PRE_ELECTION)
            raft_campaign(r, RAFT_CAMPAIGN_ELECTION);
        else
            raft_become_leader(r);
        return;
    }
    uint64_t last = raft_log_last_index(&r->log);
    uint64_t last_term = raft_log_last_term(&r->log);
    for (size_t i = 0; i < r->n_prs; i++) {
        uint64_t id = r->prs[i].id;
        if (id == r->id)
            continue;
        struct raft_message m = {
            .msg_type = vote_msg, .to = id, .term = term, .index = last, .log_term = last_term};
        if (t == RAFT_CAMPAIGN_TRANSFER) {
            m.context = malloc(RAFT_CAMPAIGN_TRANSFER_CTX_LEN);
            if (m.context != NULL) {
                memcpy(m.context, raft_campaign_transfer_ctx, RAFT_CAMPAIGN_TRANSFER_CTX_LEN);
                m.context_len = RAFT_CAMPAIGN_TRANSFER_CTX_LEN;
            }
        }
        raft_logf(r, RAFT_LOG_DEBUG, "sent %s request to %llu at term %llu",
                  vote_msg == RAFT_MSG_REQUEST_VOTE ? "vote" : "pre-vote", (unsigned long long)id,
                  (unsigned long long)term);
        raft_send(r, &m);
    }
}

void raft_resend_pre_votes(struct raft *r)
{
    uint64_t last = raft_log_last_index(&r->log);
    uint64_t last_term = raft_log_last_term(&r->log);
    for (size_t i = 0; i < r->n_prs; i++) {
        uint64_t id = r->prs[i].id;
        bool answered = id == r->id;
        for (size_t v = 0; v < r->n_votes && !answered; v++)
            answered = r->votes[v].id == id;
        if (answered)
            continue;
        struct raft_message m = {.msg_type = RAFT_MSG_REQUEST_PRE_VOTE,
                                 .to = id,
                                 .term = r->term + 1,
                                 .index = last,
                                 .log_term = last_term};
        raft_send(r, &m);
    }
}

void raft_handle_vote_request(struct raft *r, const struct raft_message *m)
{
    bool pre = m->msg_type == RAFT_MSG_REQUEST_PRE_VOTE;
    enum raft_msg_type resp_type =
        pre ? RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE : RAFT_MSG_REQUEST_VOTE_RESPONSE;
    /* We can vote again for whom we voted; for anyone if we have neither a
     * vote nor a leader this term; and a pre-vote for a future term is
     * granted on the log alone. */
    bool can_vote = r->vote == m->from || (r->vote == RAFT_NONE && r->lead == RAFT_NONE) ||
                    (pre && m->term > r->term);
    /* Two pre-candidates with equal logs that granted each other would both
     * campaign and split the vote (a whole randomized timeout lost): between
     * them only the higher id gets our pre-vote. Any other voter still
     * grants the lower one, so it is not kept from winning on its own. */
    if (can_vote && pre && r->state == RAFT_ROLE_PRE_CANDIDATE && m->from < r->id &&
        m->log_term == raft_log_last_term(&r->log) && m->index == raft_log_last_index(&r->log))
        can_vote = false;
    struct raft_message resp = {.msg_type = resp_type, .to = m->from};
    if (can_vote && raft_log_is_up_to_date(&r->log, m->index, m->log_term)) {
        /* answer with the request's term: a granted pre-vote is for that future term */
        resp.term = m->term;
        if (!pre) {
            r->election_elapsed = 0;
            r->vote = m->from;
        }
        raft_logf(r, RAFT_LOG_DEBUG, "granted %s to %llu at term %llu", pre ? "pre-vote" : "vote",
                  (unsigned long long)m->from, (unsigned long long)m->term);
    } else {
        resp.term = r->term;
        resp.reject = 1;
    }
    raft_send(r, &resp);
}

int raft_step_candidate(struct raft *r, const struct raft_message *m)
{
    enum raft_msg_type my_resp = r->state == RAFT_ROLE_PRE_CANDIDATE
                                     ? RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE
                                     : RAFT_MSG_REQUEST_VOTE_RESPONSE;
    switch (m->msg_type) {
    case RAFT_MSG_PROPOSE:
        return RAFT_ERR_PROPOSAL_DROPPED;
    case RAFT_MSG_APPEND:
        raft_become_follower(r, m->term, m->from);
        raft_handle_append_entries(r, m);
        return RAFT_OK;
    case RAFT_MSG_HEARTBEAT:
        raft_become_follower(r, m->term, m->from);
        raft_handle_heartbeat(r, m);
        return RAFT_OK;
    case RAFT_MSG_SNAPSHOT:
        raft_become_follower(r, m->term, m->from);
        raft_handle_snapshot(r, m);
        return RAFT_OK;
    case RAFT_MSG_READ_INDEX:
        return RAFT_ERR_PROPOSAL_DROPPED;
    default:
        break;
    }
    if (m->msg_type != my_resp)
        return RAFT_OK; /* stale responses, TimeoutNow, transfers: ignored */
    size_t rejected;
    size_t granted = poll(r, m->from, !m->reject, &rejected);
    size_t q = raft_quorum(r);
    if (granted >= q) {
        if (r->state == RAFT_ROLE_PRE_CANDIDATE) {
            raft_campaign(r, RAFT_CAMPAIGN_ELECTION);
        } else {
            raft_become_leader(r);
            raft_bcast_append(r);
        }
    } else if (rejected >= q) {
        /* A pre-candidate that lost falls back to follower at its own term. */
        raft_become_follower(r, r->term, RAFT_NONE);
    }
    return RAFT_OK;
}
