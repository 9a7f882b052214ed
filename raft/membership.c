/* membership.c — the member set: progress bookkeeping and single-step add/remove of a node. */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

int raft_set_progress(struct raft *r, uint64_t id, uint64_t match, uint64_t next)
{
    struct raft_progress *pr = raft_progress_get(r, id);
    if (pr != NULL) {
        pr->match = match;
        pr->next = next;
        return RAFT_OK;
    }
    struct raft_progress fresh;
    int rc = raft_progress_init(&fresh, id, match, next, r->max_inflight);
    if (rc != RAFT_OK)
        return rc;
    struct raft_progress *p = realloc(r->prs, (r->n_prs + 1) * sizeof *p);
    if (p == NULL) {
        raft_progress_close(&fresh);
        return RAFT_ERR_NOMEM;
    }
    r->prs = p;
    size_t pos = 0;
    while (pos < r->n_prs && r->prs[pos].id < id)
        pos++;
    memmove(&r->prs[pos + 1], &r->prs[pos], (r->n_prs - pos) * sizeof *p);
    r->prs[pos] = fresh;
    r->n_prs++;
    return RAFT_OK;
}

void raft_reset_progress(struct raft *r)
{
    uint64_t last = raft_log_last_index(&r->log);
    for (size_t i = 0; i < r->n_prs; i++) {
        struct raft_progress *pr = &r->prs[i];
        pr->match = pr->id == r->id ? last : 0;
        pr->next = last + 1;
        pr->state = RAFT_PROGRESS_PROBE;
        pr->paused = false;
        pr->pending_snapshot = 0;
        pr->recent_active = false;
        pr->inactive_ticks = 0;
        raft_inflights_reset(&pr->ins);
    }
}

int raft_add_node(struct raft *r, uint64_t id)
{
    if (raft_progress_get(r, id) != NULL)
        return RAFT_OK; /* applying the same change twice is harmless */
    int rc = raft_set_progress(r, id, 0, raft_log_last_index(&r->log) + 1);
    if (rc != RAFT_OK)
        return rc;
    /* A new member counts as active, or check-quorum could depose us before
     * it ever had a chance to answer. */
    raft_progress_get(r, id)->recent_active = true;
    raft_progress_get(r, id)->inactive_ticks = 0;
    raft_logf(r, RAFT_LOG_INFO, "added node %llu", (unsigned long long)id);
    return RAFT_OK;
}

void raft_remove_node(struct raft *r, uint64_t id)
{
    struct raft_progress *pr = raft_progress_get(r, id);
    if (pr == NULL)
        return;
    size_t pos = (size_t)(pr - r->prs);
    raft_progress_close(pr);
    memmove(&r->prs[pos], &r->prs[pos + 1], (r->n_prs - pos - 1) * sizeof *pr);
    r->n_prs--;
    raft_logf(r, RAFT_LOG_INFO, "removed node %llu", (unsigned long long)id);
    if (r->n_prs == 0)
        return;
    if (r->state != RAFT_ROLE_LEADER)
        return;
    if (id == r->id) {
        /* A removed leader hands over by stepping down; it can no longer
         * campaign (it is not promotable), so the rest elect a new one. */
        raft_become_follower(r, r->term, RAFT_NONE);
        return;
    }
    /* The quorum shrank: entries may now be committed. */
    if (raft_maybe_commit(r)) {
        raft_release_pending_reads(r);
        raft_bcast_append(r);
    }
    if (r->lead_transferee == id)
        raft_abort_leader_transfer(r);
}
