/* follower.c — the follower's message handling: appends, heartbeats, snapshots, forwarding,
 * TimeoutNow. */
#include "raft/raft_int.h"

#include <stdlib.h>

static int forward_to_leader(struct raft *r, const struct raft_message *m)
{
    if (r->lead == RAFT_NONE)
        return RAFT_ERR_PROPOSAL_DROPPED;
    struct raft_message fwd;
    int rc = raft_message_copy(&fwd, m);
    if (rc != RAFT_OK)
        return rc;
    fwd.to = r->lead;
    raft_send(r, &fwd);
    return RAFT_OK;
}

int raft_step_follower(struct raft *r, const struct raft_message *m)
{
    switch (m->msg_type) {
    case RAFT_MSG_PROPOSE:
        /* no forwarding: the embedder redirects clients to the leader */
        return RAFT_ERR_PROPOSAL_DROPPED;
    case RAFT_MSG_APPEND:
        r->election_elapsed = 0;
        r->lead = m->from;
        raft_handle_append_entries(r, m);
        break;
    case RAFT_MSG_HEARTBEAT:
        r->election_elapsed = 0;
        r->lead = m->from;
        raft_handle_heartbeat(r, m);
        break;
    case RAFT_MSG_SNAPSHOT:
        r->election_elapsed = 0;
        r->lead = m->from;
        raft_handle_snapshot(r, m);
        break;
    case RAFT_MSG_TRANSFER_LEADER:
        return forward_to_leader(r, m);
    case RAFT_MSG_TIMEOUT_NOW:
        if (raft_promotable(r)) {
            raft_logf(r, RAFT_LOG_INFO, "received timeout-now from %llu: campaigning",
                      (unsigned long long)m->from);
            /* a transfer skips the pre-vote: the leader asked for this */
            raft_hup(r, RAFT_CAMPAIGN_TRANSFER);
        }
        break;
    case RAFT_MSG_READ_INDEX:
        return forward_to_leader(r, m);
    case RAFT_MSG_READ_INDEX_RESPONSE:
        return raft_add_read_state(r, m->index, m->context, m->context_len);
    default:
        break;
    }
    return RAFT_OK;
}
