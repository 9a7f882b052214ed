/* raft_int.h — internal structures and functions shared by the raft/ source files. */
#ifndef TINYKV_RAFT_RAFT_INT_H
#define TINYKV_RAFT_RAFT_INT_H

#include "raft/raft.h"

#include <stdbool.h>

#define RAFT_NONE 0
#define RAFT_NO_LIMIT UINT64_MAX

/* ---- log (log.c) ---- */

/* Entries not yet persisted, and a snapshot not yet installed in storage. */
struct raft_unstable {
    struct raft_snapshot snapshot; /* owned; metadata.index == 0 if none */
    bool has_snapshot;
    struct raft_entry *ents; /* owned deep copies */
    size_t n_ents;
    size_t cap_ents;
    uint64_t offset; /* index of ents[0] */
};

struct raft_log {
    struct raft_storage storage;
    struct raft_unstable unstable;
    uint64_t committed;
    uint64_t applied;
    uint64_t max_apply_bytes;
    raft_log_fn log_fn; /* where a panic is reported before abort */
    void *log_ctx;
};

int raft_log_init(struct raft_log *l, struct raft_storage storage, uint64_t max_apply_bytes);
void raft_log_close(struct raft_log *l);
uint64_t raft_log_first_index(const struct raft_log *l);
uint64_t raft_log_last_index(const struct raft_log *l);
uint64_t raft_log_last_term(const struct raft_log *l);
/* term of entry i: 0 on success, RAFT_ERR_COMPACTED / RAFT_ERR_UNAVAILABLE otherwise. */
int raft_log_term(const struct raft_log *l, uint64_t i, uint64_t *term);
bool raft_log_match_term(const struct raft_log *l, uint64_t i, uint64_t term);
bool raft_log_is_up_to_date(const struct raft_log *l, uint64_t lasti, uint64_t term);
/* Deep copies of entries [lo, hi) limited by max_bytes and max_n (0 = no limit). */
int raft_log_slice(const struct raft_log *l, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                   uint64_t max_n, struct raft_entry **out, size_t *n);
/* Appends ents (copied) after truncating conflicting unstable entries; returns 0 or NOMEM. */
int raft_log_append(struct raft_log *l, const struct raft_entry *ents, size_t n);
/* The follower's append rule; *ok false if the previous entry does not match. */
int raft_log_maybe_append(struct raft_log *l, uint64_t index, uint64_t log_term, uint64_t commit,
                          const struct raft_entry *ents, size_t n, bool *ok, uint64_t *lastnew);
void raft_log_commit_to(struct raft_log *l, uint64_t tocommit);
bool raft_log_maybe_commit(struct raft_log *l, uint64_t max_index, uint64_t term);
void raft_log_applied_to(struct raft_log *l, uint64_t i);
void raft_log_stable_to(struct raft_log *l, uint64_t i, uint64_t t);
void raft_log_stable_snap_to(struct raft_log *l, uint64_t i);
/* Replaces the log by snap (copied). */
int raft_log_restore(struct raft_log *l, const struct raft_snapshot *snap);
bool raft_log_has_next_ents(const struct raft_log *l);
int raft_log_next_ents(const struct raft_log *l, struct raft_entry **out, size_t *n);
/* A deep copy of the latest snapshot (unstable first, then storage). */
int raft_log_snapshot(const struct raft_log *l, struct raft_snapshot *out);

/* ---- progress (progress.c) ---- */

struct raft_inflights {
    size_t start;
    size_t count;
    size_t size;
    uint64_t *buffer; /* ring of the last index of each in-flight append */
};

struct raft_progress {
    uint64_t id;
    uint64_t match;
    uint64_t next;
    enum raft_progress_state state;
    bool paused;
    uint64_t pending_snapshot;
    bool recent_active;
    int inactive_ticks; /* leader: ticks since this peer last answered (check-quorum) */
    struct raft_inflights ins;
};

int raft_progress_init(struct raft_progress *pr, uint64_t id, uint64_t match, uint64_t next,
                       size_t max_inflight);
void raft_progress_close(struct raft_progress *pr);
void raft_progress_become_probe(struct raft_progress *pr);
void raft_progress_become_replicate(struct raft_progress *pr);
void raft_progress_become_snapshot(struct raft_progress *pr, uint64_t snapi);
bool raft_progress_maybe_update(struct raft_progress *pr, uint64_t n);
bool raft_progress_maybe_decr_to(struct raft_progress *pr, uint64_t rejected, uint64_t last);
bool raft_progress_is_paused(const struct raft_progress *pr);
bool raft_progress_need_snapshot_abort(const struct raft_progress *pr);
void raft_inflights_add(struct raft_inflights *in, uint64_t last);
void raft_inflights_free_to(struct raft_inflights *in, uint64_t to);
void raft_inflights_free_first_one(struct raft_inflights *in);
bool raft_inflights_full(const struct raft_inflights *in);
void raft_inflights_reset(struct raft_inflights *in);

/* ---- read-only queue (read_only.c) ---- */

struct raft_read_request {
    uint8_t *ctx; /* owned */
    size_t ctx_len;
    uint64_t index;
    uint64_t from; /* who asked: RAFT_NONE or self means local */
    uint64_t *acks;
    size_t n_acks;
};

struct raft_read_only {
    struct raft_read_request *reqs; /* FIFO queue */
    size_t n;
    size_t cap;
};

void raft_read_only_reset(struct raft_read_only *ro);
int raft_read_only_add(struct raft_read_only *ro, uint64_t index, uint64_t from, const uint8_t *ctx,
                       size_t ctx_len, uint64_t self);
/* Records id's ack of ctx; returns the ack count of that request (0 if unknown). */
size_t raft_read_only_recv_ack(struct raft_read_only *ro, uint64_t id, const uint8_t *ctx,
                               size_t ctx_len);
/* Pops every request up to and including ctx into *out (caller frees via
 * raft_read_only_free_requests); *n = 0 if ctx is unknown. */
void raft_read_only_advance(struct raft_read_only *ro, const uint8_t *ctx, size_t ctx_len,
                            struct raft_read_request **out, size_t *n);
void raft_read_only_free_requests(struct raft_read_request *reqs, size_t n);
const struct raft_read_request *raft_read_only_last(const struct raft_read_only *ro);

/* ---- the state machine (core.c, election.c, replication.c, ...) ---- */

struct raft_vote {
    uint64_t id;
    bool granted;
};

struct raft;
typedef int (*raft_step_fn)(struct raft *r, const struct raft_message *m);

struct raft {
    uint64_t id;
    uint64_t term;
    uint64_t vote;
    struct raft_log log;

    uint64_t max_msg_size;
    uint64_t max_msg_entries;
    size_t max_inflight;

    struct raft_progress *prs; /* sorted by id */
    size_t n_prs;

    enum raft_role state;
    struct raft_vote *votes;
    size_t n_votes;

    struct raft_message *msgs; /* outbox, owned */
    size_t n_msgs;
    size_t cap_msgs;

    uint64_t lead;
    uint64_t lead_transferee;
    uint64_t pending_conf_index;

    struct raft_read_only read_only;
    struct raft_read_state *read_states; /* owned */
    size_t n_read_states;
    size_t cap_read_states;
    struct raft_message *pending_reads; /* deferred until an entry of this term commits */
    size_t n_pending_reads;

    bool check_quorum;
    bool pre_vote;
    bool batch_appends;
    bool boot_lease; /* still within the first election timeout after start (config.boot_lease) */
    /* batch_appends: owed at the next Ready, an append to every follower (new entries or a new
     * commit index), or only what followers lack (entries past what they were sent). */
    bool bcast_pending, catchup_pending;

    int election_elapsed;
    int heartbeat_elapsed;
    int heartbeat_timeout;
    int election_timeout;
    int randomized_election_timeout;
    uint64_t rng;

    raft_step_fn step;
    raft_log_fn log_fn;
    void *log_ctx;
    int log_level;
    char errmsg[256];
};

void raft_logf(const struct raft *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Always-on panic for invariants whose breach would corrupt data. */
void raft_panic(const struct raft *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

int raft_init(struct raft *r, const struct raft_config *cfg, char *errbuf, size_t errbuf_len);
void raft_close(struct raft *r);
/* Queues m (ownership of its heap fields passes to r; on NOMEM they are freed
 * and the message is dropped, like a network loss). */
void raft_send(struct raft *r, struct raft_message *m);
int raft_step_msg(struct raft *r, const struct raft_message *m);
void raft_tick(struct raft *r);
void raft_become_follower(struct raft *r, uint64_t term, uint64_t lead);
void raft_become_candidate(struct raft *r);
void raft_become_pre_candidate(struct raft *r);
void raft_become_leader(struct raft *r);
size_t raft_quorum(const struct raft *r);
struct raft_progress *raft_progress_get(const struct raft *r, uint64_t id);
bool raft_promotable(const struct raft *r);
void raft_reset_randomized_election_timeout(struct raft *r);
void raft_abort_leader_transfer(struct raft *r);
int raft_append_entries(struct raft *r, struct raft_entry *ents, size_t n);
int raft_add_read_state(struct raft *r, uint64_t index, const uint8_t *ctx, size_t len);

/* election.c */
enum raft_campaign_type {
    RAFT_CAMPAIGN_PRE_ELECTION,
    RAFT_CAMPAIGN_ELECTION,
    RAFT_CAMPAIGN_TRANSFER
};
void raft_campaign(struct raft *r, enum raft_campaign_type t);
void raft_hup(struct raft *r, enum raft_campaign_type t);
/* A pre-candidate asks the voters that have not answered once more. */
void raft_resend_pre_votes(struct raft *r);
void raft_handle_vote_request(struct raft *r, const struct raft_message *m);
int raft_step_candidate(struct raft *r, const struct raft_message *m);
extern const char raft_campaign_transfer_ctx[];
#define RAFT_CAMPAIGN_TRANSFER_CTX_LEN 16

/* replication.c */
void raft_send_append(struct raft *r, uint64_t to);
void raft_bcast_append(struct raft *r);
/* raft_bcast_append now, or at the next Ready with batch_appends. */
void raft_bcast_append_soon(struct raft *r);
/* Sends `to` what it lacks while its window has room (replicating followers only). */
void raft_send_remaining(struct raft *r, uint64_t to);
/* Sends an append broadcast owed by raft_bcast_append_soon, if any (and still leader). */
void raft_flush_bcast(struct raft *r);
void raft_bcast_heartbeat(struct raft *r, const uint8_t *ctx, size_t ctx_len);
bool raft_maybe_commit(struct raft *r);
void raft_handle_append_entries(struct raft *r, const struct raft_message *m);
void raft_handle_heartbeat(struct raft *r, const struct raft_message *m);
void raft_handle_snapshot(struct raft *r, const struct raft_message *m);
void raft_send_timeout_now(struct raft *r, uint64_t to);
bool raft_committed_entry_in_current_term(const struct raft *r);

/* leader.c / follower.c */
int raft_step_leader(struct raft *r, const struct raft_message *m);
int raft_step_follower(struct raft *r, const struct raft_message *m);
void raft_release_pending_reads(struct raft *r);
void raft_leader_read_index(struct raft *r, const struct raft_message *m);

/* membership.c */
int raft_add_node(struct raft *r, uint64_t id);
void raft_remove_node(struct raft *r, uint64_t id);
int raft_set_progress(struct raft *r, uint64_t id, uint64_t match, uint64_t next);
void raft_reset_progress(struct raft *r);
/* Leader: whether a quorum (ourselves included) answered within the last
 * election timeout (check-quorum). */
bool raft_quorum_heard(struct raft *r);

#endif
