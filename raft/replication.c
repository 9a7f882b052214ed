/* replication.c — sending appends, snapshots and heartbeats, the commit rule, and the follower's
 * handlers. */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

bool raft_maybe_commit(struct raft *r)
{
    if (r->state != RAFT_ROLE_LEADER || r->n_prs == 0)
        return false;
    uint64_t stack[16];
    uint64_t *mis = r->n_prs <= 16 ? stack : malloc(r->n_prs * sizeof *mis);
    if (mis == NULL)
        return false; /* try again on the next response */
    for (size_t i = 0; i < r->n_prs; i++)
        mis[i] = r->prs[i].match;
    qsort(mis, r->n_prs, sizeof *mis, cmp_desc);
    uint64_t mci = mis[raft_quorum(r) - 1];
    if (mis != stack)
        free(mis);
    /* Only an entry of the current term is committed by counting replicas
     * (Raft paper §5.4.2, figure 8); earlier ones commit with it. */
    return raft_log_maybe_commit(&r->log, mci, r->term);
}

bool raft_committed_entry_in_current_term(const struct raft *r)
{
    uint64_t t;
    return raft_log_term(&r->log, r->log.committed, &t) == RAFT_OK && t == r->term;
}

static void send_snapshot(struct raft *r, struct raft_progress *pr)
{
    struct raft_message m = {.msg_type = RAFT_MSG_SNAPSHOT, .to = pr->id};
    int rc = raft_log_snapshot(&r->log, &m.snapshot);
    if (rc == RAFT_ERR_SNAP_TEMP_UNAVAILABLE) {
        raft_logf(r, RAFT_LOG_DEBUG, "snapshot for %llu temporarily unavailable",
                  (unsigned long long)pr->id);
        return; /* retried on the next heartbeat response or broadcast */
    }
    if (rc != RAFT_OK)
        return;
    if (m.snapshot.metadata.index == 0) {
        raft_snapshot_free(&m.snapshot);
        return;
    }
    raft_logf(r, RAFT_LOG_INFO, "sending snapshot %llu to %llu (match %llu)",
              (unsigned long long)m.snapshot.metadata.index, (unsigned long long)pr->id,
              (unsigned long long)pr->match);
    raft_progress_become_snapshot(pr, m.snapshot.metadata.index);
    raft_send(r, &m);
}

void raft_send_append(struct raft *r, uint64_t to)
{
    struct raft_progress *pr = raft_progress_get(r, to);
    if (pr == NULL || raft_progress_is_paused(pr))
        return;
    uint64_t term;
    int rct = raft_log_term(&r->log, pr->next - 1, &term);
    struct raft_entry *ents = NULL;
    size_t n = 0;
    int rce = RAFT_OK;
    if (rct == RAFT_OK) {
        /* flow control: a byte and an entry budget per message (0 bytes: one entry) */
        uint64_t max_bytes = r->max_msg_size ? r->max_msg_size : RAFT_NO_LIMIT;
        uint64_t max_n = r->max_msg_size ? r->max_msg_entries : 1;
        rce = raft_log_slice(&r->log, pr->next, raft_log_last_index(&r->log) + 1, max_bytes, max_n,
                             &ents, &n);
    }
    if (rct == RAFT_ERR_COMPACTED || rce == RAFT_ERR_COMPACTED) {
        send_snapshot(r, pr);
        return;
    }
    if (rct != RAFT_OK || rce != RAFT_OK)
        return; /* out of memory or a storage hiccup: like a lost message */
    struct raft_message m = {.msg_type = RAFT_MSG_APPEND,
                             .to = to,
                             .index = pr->next - 1,
                             .log_term = term,
                             .entries = ents,
                             .n_entries = n,
                             .commit = r->log.committed};
    if (n > 0) {
        switch (pr->state) {
        case RAFT_PROGRESS_REPLICATE: {
            uint64_t last = ents[n - 1].index;
            pr->next = last + 1; /* optimistic: pipeline the next append */
            raft_inflights_add(&pr->ins, last);
            break;
        }
        case RAFT_PROGRESS_PROBE:
            pr->paused = true; /* one probe at a time */
            break;
        default:
            raft_panic(r, "sending append to %llu in unhandled state %d", (unsigned long long)to,
                       pr->state);
        }
    }
    raft_send(r, &m);
}

void raft_bcast_append(struct raft *r)
{
    for (size_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id != r->id)
            raft_send_append(r, r->prs[i].id);
}

void raft_bcast_append_soon(struct raft *r)
{
    if (r->batch_appends)
        r->bcast_pending = true;
    else
        raft_bcast_append(r);
}

void raft_flush_bcast(struct raft *r)
{
    bool all = r->bcast_pending;
    if (!all && !r->catchup_pending)
        return;
    r->bcast_pending = r->catchup_pending = false;
    if (r->state != RAFT_ROLE_LEADER)
        return;
    for (size_t i = 0; i < r->n_prs; i++) {
        uint64_t id = r->prs[i].id;
        if (id == r->id)
            continue;
        /* A broadcast sends one append even when there is nothing new (it carries the commit
         * index); then, with room in the window, whatever the follower still lacks. */
        if (all)
            raft_send_append(r, id);
        raft_send_remaining(r, id);
    }
}

void raft_send_remaining(struct raft *r, uint64_t to)
{
    struct raft_progress *pr = raft_progress_get(r, to);
    while (pr != NULL && pr->state == RAFT_PROGRESS_REPLICATE && !raft_progress_is_paused(pr) &&
           pr->next <= raft_log_last_index(&r->log)) {
        uint64_t before = pr->next;
        raft_send_append(r, to);
        if (pr->next == before)
            break;
    }
}

static void send_heartbeat(struct raft *r, const struct raft_progress *pr, const uint8_t *ctx,
                           size_t ctx_len)
{
    /* Never tell a follower to commit past what it is known to hold. */
    uint64_t commit = pr->match < r->log.committed ? pr->match : r->log.committed;
    struct raft_message m = {.msg_type = RAFT_MSG_HEARTBEAT, .to = pr->id, .commit = commit};
    if (ctx_len > 0) {
        m.context = malloc(ctx_len);
        if (m.context == NULL)
            return;
        memcpy(m.context, ctx, ctx_len);
        m.context_len = ctx_len;
    }
    raft_send(r, &m);
}

void raft_bcast_heartbeat(struct raft *r, const uint8_t *ctx, size_t ctx_len)
{
    for (size_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id != r->id)
            send_heartbeat(r, &r->prs[i], ctx, ctx_len);
}

void raft_send_timeout_now(struct raft *r, uint64_t to)
{
    struct raft_message m = {.msg_type = RAFT_MSG_TIMEOUT_NOW, .to = to};
    raft_send(r, &m);
}

void raft_handle_append_entries(struct raft *r, const struct raft_message *m)
{
    struct raft_message resp = {.msg_type = RAFT_MSG_APPEND_RESPONSE, .to = m->from};
    if (m->index < r->log.committed) {
        resp.index = r->log.committed;
        raft_send(r, &resp);
        return;
    }
    bool ok;
    uint64_t lastnew = 0;
    int rc = raft_log_maybe_append(&r->log, m->index, m->log_term, m->commit, m->entries,
                                   m->n_entries, &ok, &lastnew);
    if (rc != RAFT_OK)
        return; /* could not take it: the leader retries, as after a loss */
    if (ok) {
        resp.index = lastnew;
    } else {
        raft_logf(r, RAFT_LOG_DEBUG, "rejected append at index %llu term %llu from %llu",
                  (unsigned long long)m->index, (unsigned long long)m->log_term,
                  (unsigned long long)m->from);
        resp.index = m->index;
        resp.reject = 1;
        resp.reject_hint = raft_log_last_index(&r->log); /* lets the leader skip back at once */
    }
    raft_send(r, &resp);
}

void raft_handle_heartbeat(struct raft *r, const struct raft_message *m)
{
    raft_log_commit_to(&r->log, m->commit);
    struct raft_message resp = {.msg_type = RAFT_MSG_HEARTBEAT_RESPONSE, .to = m->from};
    if (m->context_len > 0) {
        resp.context = malloc(m->context_len);
        if (resp.context == NULL)
            return;
        memcpy(resp.context, m->context, m->context_len);
        resp.context_len = m->context_len;
    }
    raft_send(r, &resp);
}

/* Installs snap unless the log already covers it; true if installed. */
static bool restore(struct raft *r, const struct raft_snapshot *s)
{
    if (s->metadata.index <= r->log.committed)
        return false;
    if (raft_log_match_term(&r->log, s->metadata.index, s->metadata.term)) {
        /* we already hold this prefix: just fast-forward the commit */
        raft_log_commit_to(&r->log, s->metadata.index);
        return false;
    }
    /* Build the new member set first, so running out of memory leaves the
     * node unchanged (like a lost snapshot message). */
    const struct raft_conf_state *cs = &s->metadata.conf_state;
    uint64_t last = s->metadata.index;
    struct raft_progress *prs = calloc(cs->n_nodes ? cs->n_nodes : 1, sizeof *prs);
    size_t n = 0;
    if (prs == NULL)
        return false;
    for (size_t i = 0; i < cs->n_nodes; i++) {
        uint64_t id = cs->nodes[i];
        size_t pos = 0;
        while (pos < n && prs[pos].id < id)
            pos++;
        if (pos < n && prs[pos].id == id)
            continue; /* duplicate id */
        struct raft_progress pr;
        if (raft_progress_init(&pr, id, id == r->id ? last : 0, last + 1, r->max_inflight) !=
            RAFT_OK)
            goto fail;
        memmove(&prs[pos + 1], &prs[pos], (n - pos) * sizeof *prs);
        prs[pos] = pr;
        n++;
    }
    if (raft_log_restore(&r->log, s) != RAFT_OK)
        goto fail;
    raft_logf(r, RAFT_LOG_INFO, "restored snapshot index %llu term %llu",
              (unsigned long long)s->metadata.index, (unsigned long long)s->metadata.term);
    for (size_t i = 0; i < r->n_prs; i++)
        raft_progress_close(&r->prs[i]);
    free(r->prs);
    r->prs = prs;
    r->n_prs = n;
    return true;
fail:
    for (size_t i = 0; i < n; i++)
        raft_progress_close(&prs[i]);
    free(prs);
    return false;
}

void raft_handle_snapshot(struct raft *r, const struct raft_message *m)
{
    struct raft_message resp = {.msg_type = RAFT_MSG_APPEND_RESPONSE, .to = m->from};
    if (restore(r, &m->snapshot))
        resp.index = raft_log_last_index(&r->log);
    else
        resp.index = r->log.committed;
    raft_send(r, &resp);
}
