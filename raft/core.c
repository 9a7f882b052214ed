/* core.c — the Raft state machine: setup, role changes, the logical clock and message dispatch. */
#include "raft/raft_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void raft_logf(const struct raft *r, int level, const char *fmt, ...)
{
    if (r->log_fn == NULL || level > r->log_level)
        return;
    char buf[512];
    int n = snprintf(buf, sizeof buf, "raft %llu term %llu: ", (unsigned long long)r->id,
                     (unsigned long long)r->term);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof buf)
        vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    r->log_fn(r->log_ctx, level, buf);
}

void raft_panic(const struct raft *r, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (r->log_fn != NULL)
        r->log_fn(r->log_ctx, RAFT_LOG_ERROR, buf);
    abort();
}

/* xorshift64*: a per-node generator, so nodes in one process never share state. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void raft_reset_randomized_election_timeout(struct raft *r)
{
    r->randomized_election_timeout =
        r->election_timeout + (int)(rng_next(&r->rng) % (uint64_t)r->election_timeout);
}

struct raft_progress *raft_progress_get(const struct raft *r, uint64_t id)
{
    size_t lo = 0, hi = r->n_prs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->prs[mid].id == id)
            return &r->prs[mid];
        if (r->prs[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool raft_promotable(const struct raft *r)
{
    return raft_progress_get(r, r->id) != NULL;
}

size_t raft_quorum(const struct raft *r)
{
    return r->n_prs / 2 + 1;
}

static void set_errmsg(char *buf, size_t len, const char *msg)
{
    if (buf != NULL && len > 0)
        snprintf(buf, len, "%s", msg);
}

int raft_init(struct raft *r, const struct raft_config *cfg, char *errbuf, size_t errbuf_len)
{
    int rc;
    memset(r, 0, sizeof *r);
    if (cfg->id == RAFT_NONE) {
        set_errmsg(errbuf, errbuf_len, "cannot use none as id");
        return RAFT_ERR_INVALID;
    }
    if (cfg->heartbeat_ticks <= 0 || cfg->election_ticks <= cfg->heartbeat_ticks) {
        set_errmsg(errbuf, errbuf_len, "need 0 < heartbeat_ticks < election_ticks");
        return RAFT_ERR_INVALID;
    }
    if (cfg->max_inflight_msgs <= 0) {
        set_errmsg(errbuf, errbuf_len, "max_inflight_msgs must be positive");
        return RAFT_ERR_INVALID;
    }
    if (cfg->storage.ops == NULL) {
        set_errmsg(errbuf, errbuf_len, "storage is required");
        return RAFT_ERR_INVALID;
    }
    r->id = cfg->id;
    r->max_msg_size = cfg->max_size_per_msg;
    r->max_msg_entries = cfg->max_entries_per_msg;
    r->max_inflight = (size_t)cfg->max_inflight_msgs;
    r->check_quorum = cfg->check_quorum != 0;
    r->pre_vote = cfg->pre_vote != 0;
    r->batch_appends = cfg->batch_appends != 0;
    r->boot_lease = cfg->boot_lease != 0 && r->check_quorum;
    r->election_timeout = cfg->election_ticks;
    r->heartbeat_timeout = cfg->heartbeat_ticks;
    r->rng = (cfg->seed ^ (cfg->id * 0x9E3779B97F4A7C15ULL)) | 1;
    r->log_fn = cfg->log_fn;
    r->log_ctx = cfg->log_ctx;
    r->log_level = cfg->log_level;

    rc = raft_log_init(&r->log, cfg->storage, cfg->max_committed_size_per_ready);
    r->log.log_fn = cfg->log_fn;
    r->log.log_ctx = cfg->log_ctx;
    if (rc != RAFT_OK) {
        set_errmsg(errbuf, errbuf_len, "storage failed to report its indexes");
        return rc;
    }
    struct raft_hard_state hs = {0};
    struct raft_conf_state cs = {0};
    rc = cfg->storage.ops->initial_state(cfg->storage.ctx, &hs, &cs);
    if (rc != RAFT_OK) {
        set_errmsg(errbuf, errbuf_len, "storage failed to load its initial state");
        goto fail_log;
    }
    if (cs.n_nodes > 0 && cfg->n_peers > 0) {
        set_errmsg(errbuf, errbuf_len, "cannot specify both peers and a stored conf state");
        rc = RAFT_ERR_INVALID;
        goto fail_cs;
    }
    const uint64_t *peers = cs.n_nodes > 0 ? cs.nodes : cfg->peers;
    size_t n_peers = cs.n_nodes > 0 ? cs.n_nodes : cfg->n_peers;
    uint64_t last = raft_log_last_index(&r->log);
    for (size_t i = 0; i < n_peers; i++) {
        rc = raft_set_progress(r, peers[i], 0, last + 1);
        if (rc != RAFT_OK) {
            set_errmsg(errbuf, errbuf_len, "out of memory");
            goto fail_prs;
        }
    }
    if (hs.term != 0 || hs.vote != 0 || hs.commit != 0) {
        if (hs.commit < r->log.committed || hs.commit > last) {
            set_errmsg(errbuf, errbuf_len, "stored commit index is out of the log's range");
            rc = RAFT_ERR_INVALID;
            goto fail_prs;
        }
        r->log.committed = hs.commit;
        r->term = hs.term;
        r->vote = hs.vote;
    }
    if (cfg->applied > 0) {
        if (cfg->applied > r->log.committed || cfg->applied < r->log.applied) {
            set_errmsg(errbuf, errbuf_len, "applied index out of range");
            rc = RAFT_ERR_INVALID;
            goto fail_prs;
        }
        r->log.applied = cfg->applied;
    }
    raft_conf_state_free(&cs);
    raft_become_follower(r, r->term, RAFT_NONE);
    raft_logf(r, RAFT_LOG_INFO, "newraft commit=%llu applied=%llu last=%llu peers=%zu",
              (unsigned long long)r->log.committed, (unsigned long long)r->log.applied,
              (unsigned long long)last, r->n_prs);
    return RAFT_OK;
fail_prs:
    for (size_t i = 0; i < r->n_prs; i++)
        raft_progress_close(&r->prs[i]);
    free(r->prs);
fail_cs:
    raft_conf_state_free(&cs);
fail_log:
    raft_log_close(&r->log);
    return rc;
}

static void drop_pending_reads(struct raft *r)
{
    for (size_t i = 0; i < r->n_pending_reads; i++)
        raft_message_free(&r->pending_reads[i]);
    free(r->pending_reads);
    r->pending_reads = NULL;
    r->n_pending_reads = 0;
}

void raft_close(struct raft *r)
{
    for (size_t i = 0; i < r->n_prs; i++)
        raft_progress_close(&r->prs[i]);
    free(r->prs);
    free(r->votes);
    for (size_t i = 0; i < r->n_msgs; i++)
        raft_message_free(&r->msgs[i]);
    free(r->msgs);
    raft_read_only_reset(&r->read_only);
    for (size_t i = 0; i < r->n_read_states; i++)
        free(r->read_states[i].context);
    free(r->read_states);
    drop_pending_reads(r);
    raft_log_close(&r->log);
}

static bool is_vote_type(enum raft_msg_type t)
{
    return t == RAFT_MSG_REQUEST_VOTE || t == RAFT_MSG_REQUEST_VOTE_RESPONSE ||
           t == RAFT_MSG_REQUEST_PRE_VOTE || t == RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE;
}

void raft_send(struct raft *r, struct raft_message *m)
{
    m->from = r->id;
    if (is_vote_type(m->msg_type)) {
        if (m->term == 0)
            raft_panic(r, "term should be set when sending vote message type %d", m->msg_type);
    } else if (m->msg_type != RAFT_MSG_PROPOSE && m->msg_type != RAFT_MSG_READ_INDEX) {
        /* proposals and read requests are forwarded as local messages: no term */
        m->term = r->term;
    }
    if (r->n_msgs == r->cap_msgs) {
        size_t cap = r->cap_msgs ? r->cap_msgs * 2 : 16;
        struct raft_message *p = realloc(r->msgs, cap * sizeof *p);
        if (p == NULL) {
            raft_message_free(m); /* equivalent to a message lost by the network */
            return;
        }
        r->msgs = p;
        r->cap_msgs = cap;
    }
    r->msgs[r->n_msgs++] = *m;
    memset(m, 0, sizeof *m);
}

int raft_add_read_state(struct raft *r, uint64_t index, const uint8_t *ctx, size_t len)
{
    if (r->n_read_states == r->cap_read_states) {
        size_t cap = r->cap_read_states ? r->cap_read_states * 2 : 8;
        struct raft_read_state *p = realloc(r->read_states, cap * sizeof *p);
        if (p == NULL)
            return RAFT_ERR_NOMEM;
        r->read_states = p;
        r->cap_read_states = cap;
    }
    struct raft_read_state rs = {.index = index, .context_len = len};
    if (len > 0) {
        rs.context = malloc(len);
        if (rs.context == NULL)
            return RAFT_ERR_NOMEM;
        memcpy(rs.context, ctx, len);
    }
    r->read_states[r->n_read_states++] = rs;
    return RAFT_OK;
}

void raft_abort_leader_transfer(struct raft *r)
{
    r->lead_transferee = RAFT_NONE;
}

static void reset(struct raft *r, uint64_t term)
{
    if (r->term != term) {
        r->term = term;
        r->vote = RAFT_NONE;
    }
    r->lead = RAFT_NONE;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    raft_reset_randomized_election_timeout(r);
    raft_abort_leader_transfer(r);
    free(r->votes);
    r->votes = NULL;
    r->n_votes = 0;
    raft_reset_progress(r);
    r->pending_conf_index = 0;
    raft_read_only_reset(&r->read_only);
    drop_pending_reads(r);
}

void raft_become_follower(struct raft *r, uint64_t term, uint64_t lead)
{
    r->step = raft_step_follower;
    reset(r, term);
    r->lead = lead;
    r->state = RAFT_ROLE_FOLLOWER;
    raft_logf(r, RAFT_LOG_INFO, "became follower at term %llu (lead %llu)",
              (unsigned long long)term, (unsigned long long)lead);
}

void raft_become_candidate(struct raft *r)
{
    if (r->state == RAFT_ROLE_LEADER)
        raft_panic(r, "invalid transition [leader -> candidate]");
    r->step = raft_step_candidate;
    reset(r, r->term + 1);
    r->vote = r->id;
    r->state = RAFT_ROLE_CANDIDATE;
    raft_logf(r, RAFT_LOG_INFO, "became candidate at term %llu", (unsigned long long)r->term);
}

void raft_become_pre_candidate(struct raft *r)
{
    if (r->state == RAFT_ROLE_LEADER)
        raft_panic(r, "invalid transition [leader -> pre-candidate]");
    /* A pre-election changes neither the term nor the vote. */
    r->step = raft_step_candidate;
    free(r->votes);
    r->votes = NULL;
    r->n_votes = 0;
    r->lead = RAFT_NONE;
    r->state = RAFT_ROLE_PRE_CANDIDATE;
    raft_logf(r, RAFT_LOG_INFO, "became pre-candidate at term %llu", (unsigned long long)r->term);
}

void raft_become_leader(struct raft *r)
{
    if (r->state == RAFT_ROLE_FOLLOWER)
        raft_panic(r, "invalid transition [follower -> leader]");
    r->step = raft_step_leader;
    reset(r, r->term);
    r->lead = r->id;
    r->state = RAFT_ROLE_LEADER;
    struct raft_progress *self = raft_progress_get(r, r->id);
    if (self != NULL)
        self->recent_active = true;
    /* Any entry past the last index may be a conf change: be conservative. */
    r->pending_conf_index = raft_log_last_index(&r->log);
    struct raft_entry noop = {.entry_type = RAFT_ENTRY_NORMAL};
    if (raft_append_entries(r, &noop, 1) != RAFT_OK)
        raft_logf(r, RAFT_LOG_ERROR, "out of memory appending the leader's no-op entry");
    raft_logf(r, RAFT_LOG_INFO, "became leader at term %llu", (unsigned long long)r->term);
}

int raft_append_entries(struct raft *r, struct raft_entry *ents, size_t n)
{
    uint64_t li = raft_log_last_index(&r->log);
    for (size_t i = 0; i < n; i++) {
        ents[i].term = r->term;
        ents[i].index = li + 1 + i;
    }
    int rc = raft_log_append(&r->log, ents, n);
    if (rc != RAFT_OK)
        return rc;
    struct raft_progress *self = raft_progress_get(r, r->id);
    if (self != NULL)
        raft_progress_maybe_update(self, raft_log_last_index(&r->log));
    raft_maybe_commit(r);
    return RAFT_OK;
}

static void step_local(struct raft *r, enum raft_msg_type t)
{
    struct raft_message m = {.msg_type = t, .from = r->id};
    raft_step_msg(r, &m);
}

static void tick_election(struct raft *r)
{
    r->election_elapsed++;
    if (r->election_elapsed >= r->election_timeout)
        r->boot_lease = false;
    if (raft_promotable(r) && r->election_elapsed >= r->randomized_election_timeout) {
        r->election_elapsed = 0;
        step_local(r, RAFT_MSG_HUP);
    } else if (r->state == RAFT_ROLE_PRE_CANDIDATE && r->heartbeat_timeout > 0 &&
               r->election_elapsed % r->heartbeat_timeout == 0) {
        /* Voters still within their leader lease ignore a pre-vote without
         * answering; their lease ends at most an election timeout after the
         * leader went quiet, often a tick after ours did. Asking again every
         * heartbeat timeout (a pre-vote changes nobody's state) elects within
         * a tick or two of that instead of a whole randomized timeout later. */
        raft_resend_pre_votes(r);
    }
}

static void tick_heartbeat(struct raft *r)
{
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    if (r->check_quorum) {
        /* Checked every tick over a sliding window: a leader that stopped
         * hearing a quorum steps down one election timeout after it last
         * did, not up to two (as a check every election timeout would). */
        for (size_t i = 0; i < r->n_prs; i++)
            if (r->prs[i].id != r->id && r->prs[i].inactive_ticks < r->election_timeout)
                r->prs[i].inactive_ticks++;
        if (!raft_quorum_heard(r))
            step_local(r, RAFT_MSG_CHECK_QUORUM);
        if (r->state != RAFT_ROLE_LEADER)
            return;
    }
    if (r->election_elapsed >= r->election_timeout) {
        r->election_elapsed = 0;
        for (size_t i = 0; i < r->n_prs; i++)
            r->prs[i].recent_active = r->prs[i].id == r->id; /* "recent" for status reports */
        /* A transfer that did not finish within an election timeout is abandoned. */
        if (r->state == RAFT_ROLE_LEADER && r->lead_transferee != RAFT_NONE)
            raft_abort_leader_transfer(r);
    }
    if (r->state != RAFT_ROLE_LEADER)
        return;
    if (r->heartbeat_elapsed >= r->heartbeat_timeout) {
        r->heartbeat_elapsed = 0;
        step_local(r, RAFT_MSG_BEAT);
    }
}

void raft_tick(struct raft *r)
{
    if (r->state == RAFT_ROLE_LEADER)
        tick_heartbeat(r);
    else
        tick_election(r);
}

static bool ctx_is_transfer(const struct raft_message *m)
{
    return m->context_len == RAFT_CAMPAIGN_TRANSFER_CTX_LEN &&
           memcmp(m->context, raft_campaign_transfer_ctx, RAFT_CAMPAIGN_TRANSFER_CTX_LEN) == 0;
}

int raft_step_msg(struct raft *r, const struct raft_message *m)
{
    bool vote_req =
        m->msg_type == RAFT_MSG_REQUEST_VOTE || m->msg_type == RAFT_MSG_REQUEST_PRE_VOTE;
    /* A node outside our configuration (e.g. removed while partitioned) must
     * not disrupt a healthy group: while we hear from a leader, members
     * ignore its vote requests. Without a leader we listen: our own view of
     * the configuration may be the stale one (it may be a newly added node). */
    if (vote_req && raft_promotable(r) && raft_progress_get(r, m->from) == NULL &&
        r->lead != RAFT_NONE && r->election_elapsed < r->election_timeout) {
        raft_logf(r, RAFT_LOG_INFO, "ignored vote request from non-member %llu",
                  (unsigned long long)m->from);
        return RAFT_OK;
    }
    if (m->term == 0) {
        /* local message */
    } else if (m->term > r->term) {
        if (vote_req) {
            bool force = ctx_is_transfer(m);
            bool in_lease = r->check_quorum && (r->lead != RAFT_NONE || r->boot_lease) &&
                            r->election_elapsed < r->election_timeout;
            if (!force && in_lease) {
                /* A leader was heard from within the minimum election
                 * timeout: do not let a rejoining node depose it. */
                raft_logf(r, RAFT_LOG_INFO, "ignored vote from %llu at term %llu: lease",
                          (unsigned long long)m->from, (unsigned long long)m->term);
                return RAFT_OK;
            }
        }
        if (m->msg_type == RAFT_MSG_REQUEST_PRE_VOTE) {
            /* never change the term for a pre-vote request */
        } else if (m->msg_type == RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE && !m->reject) {
            /* the term is bumped once a quorum grants the pre-vote */
        } else if (m->msg_type == RAFT_MSG_APPEND || m->msg_type == RAFT_MSG_HEARTBEAT ||
                   m->msg_type == RAFT_MSG_SNAPSHOT) {
            raft_become_follower(r, m->term, m->from);
        } else {
            raft_become_follower(r, m->term, RAFT_NONE);
        }
    } else if (m->term < r->term) {
        if ((r->check_quorum || r->pre_vote) &&
            (m->msg_type == RAFT_MSG_HEARTBEAT || m->msg_type == RAFT_MSG_APPEND)) {
            /* A stale leader (or one we out-termed while partitioned) learns
             * our term and steps down; without this a node stuck at a higher
             * term could never rejoin when pre-vote keeps it from campaigning. */
            struct raft_message resp = {.msg_type = RAFT_MSG_APPEND_RESPONSE, .to = m->from};
            raft_send(r, &resp);
        } else if (m->msg_type == RAFT_MSG_REQUEST_PRE_VOTE ||
                   m->msg_type == RAFT_MSG_REQUEST_VOTE) {
            /* Refuse with our term (as in the Raft paper) so a candidate that
             * fell behind in terms catches up; otherwise a stale member that
             * only talks to others (e.g. its view of the configuration is
             * old) could keep the group without a leader forever. */
            struct raft_message resp = {.msg_type = m->msg_type == RAFT_MSG_REQUEST_VOTE
                                                        ? RAFT_MSG_REQUEST_VOTE_RESPONSE
                                                        : RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE,
                                        .to = m->from,
                                        .term = r->term,
                                        .reject = 1};
            raft_send(r, &resp);
        }
        return RAFT_OK;
    }

    switch (m->msg_type) {
    case RAFT_MSG_HUP:
        if (r->state != RAFT_ROLE_LEADER)
            raft_hup(r, r->pre_vote ? RAFT_CAMPAIGN_PRE_ELECTION : RAFT_CAMPAIGN_ELECTION);
        return RAFT_OK;
    case RAFT_MSG_REQUEST_VOTE:
    case RAFT_MSG_REQUEST_PRE_VOTE:
        raft_handle_vote_request(r, m);
        return RAFT_OK;
    default:
        return r->step(r, m);
    }
}
