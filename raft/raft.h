/* raft.h — public API of the pure Raft consensus library (RawNode/Ready contract). */
#ifndef TINYKV_RAFT_RAFT_H
#define TINYKV_RAFT_RAFT_H

/*
 * What it owns: the Raft algorithm for one group member — election (with
 * optional PreVote and CheckQuorum), log replication with flow control,
 * commitment, snapshots, single-step membership change, leadership transfer
 * and ReadIndex — plus an in-memory log storage for tests and simple
 * embedders.
 *
 * Who calls it: the raftstore (one raft_rawnode per region peer) and the
 * tests. The caller drives everything: raft_rawnode_tick() is the logical
 * clock, raft_rawnode_step() feeds messages received from peers, propose /
 * read_index / transfer_leader are requests, and raft_rawnode_ready() hands
 * back what to do. For each Ready the caller must, in this order: persist
 * the snapshot (if any), the entries and the hard state to stable storage
 * (and make them visible through the node's raft_storage), then send the
 * messages, then apply the snapshot and the committed entries to the state
 * machine, then call raft_rawnode_advance().
 *
 * What it must never do: threads, sockets, clocks, disk, stderr, global
 * mutable state, or any dependency beyond libc. Randomness comes from a
 * per-node generator seeded by the config.
 *
 * Message types mirror proto/eraftpb.proto field for field, and every enum's
 * numeric values equal the proto's, so the store converts 1:1 at the RPC
 * edge. Local-only message types (>= 100) are never sent.
 *
 * Memory: unless stated otherwise, pointer arguments are borrowed for the
 * duration of the call and anything the node keeps is copied. All heap memory
 * in these structs comes from malloc and is released with the *_free helpers.
 * An allocation failure inside a call leaves the node consistent: the call
 * returns RAFT_ERR_NOMEM, or the work is dropped the way a lost message would
 * be (Raft tolerates loss), and is retried by the protocol.
 *
 * Contract details the embedder must honour:
 * - Restart: initial_state's conf state is the member set as of the applied
 *   index (persist it atomically with the applied index and with each applied
 *   conf change); raft_config.applied must lie in [snapshot index, commit].
 * - After sending a MsgSnapshot, call raft_rawnode_report_snapshot with the
 *   outcome; until then the leader sends that follower nothing new.
 * - Followers do not forward proposals (RAFT_ERR_PROPOSAL_DROPPED): redirect
 *   the client to the leader. Transfer and ReadIndex requests are forwarded.
 * - Membership takes effect when the caller applies the committed conf change
 *   (raft_rawnode_apply_conf_change). A leader that applies its own removal
 *   steps down and, like every node outside the configuration, never
 *   campaigns; members that hear from a leader ignore outsiders' votes.
 * - Always-on panics (logged at RAFT_LOG_ERROR, then abort) guard
 *   invariants whose breach would corrupt data: committing past the log,
 *   truncating committed entries, applied moving backwards or past commit,
 *   and a storage that cannot report its first/last index.
 */

#include <stddef.h>
#include <stdint.h>

/* Error codes (this module's range is 2000-2099). 0 is success. */
enum {
    RAFT_OK = 0,
    RAFT_ERR_NOMEM = 2000,          /* an allocation failed; the node is unchanged */
    RAFT_ERR_COMPACTED,             /* storage: the index was compacted away */
    RAFT_ERR_UNAVAILABLE,           /* storage: the index is beyond the last entry */
    RAFT_ERR_SNAP_OUT_OF_DATE,      /* storage: the snapshot is older than the current one */
    RAFT_ERR_SNAP_TEMP_UNAVAILABLE, /* storage: a snapshot is being generated; try later */
    RAFT_ERR_PROPOSAL_DROPPED,      /* not leader, leadership transfer in progress, or removed */
    RAFT_ERR_INVALID,               /* bad argument or config; detail in the errmsg */
    RAFT_ERR_STEP_LOCAL_MSG,        /* raft_rawnode_step was given a local-only message */
    RAFT_ERR_STEP_PEER_NOT_FOUND,   /* a response from a peer this node does not track */
    RAFT_ERR_STORAGE,               /* the storage failed in another way */
};

/* raft_strerror returns a static description of a RAFT_* code. */
const char *raft_strerror(int code);

/* ---- eraftpb mirror types ---------------------------------------------- */

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 0,
    RAFT_ENTRY_CONF_CHANGE = 1,
};

/* eraftpb.Entry. data is malloc'd and owned by whoever owns the entry. */
struct raft_entry {
    enum raft_entry_type entry_type;
    uint64_t term;
    uint64_t index;
    uint8_t *data;
    size_t data_len;
};

/* eraftpb.ConfState: the voting members. nodes is malloc'd, owned by the holder. */
struct raft_conf_state {
    uint64_t *nodes;
    size_t n_nodes;
};

/* eraftpb.SnapshotMetadata. */
struct raft_snapshot_metadata {
    struct raft_conf_state conf_state;
    uint64_t index;
    uint64_t term;
};

/* eraftpb.Snapshot. A snapshot with metadata.index == 0 is "empty" (absent). */
struct raft_snapshot {
    uint8_t *data;
    size_t data_len;
    struct raft_snapshot_metadata metadata;
};

enum raft_msg_type {
    RAFT_MSG_HUP = 0,
    RAFT_MSG_BEAT = 1,
    RAFT_MSG_PROPOSE = 2,
    RAFT_MSG_APPEND = 3,
    RAFT_MSG_APPEND_RESPONSE = 4,
    RAFT_MSG_REQUEST_VOTE = 5,
    RAFT_MSG_REQUEST_VOTE_RESPONSE = 6,
    RAFT_MSG_SNAPSHOT = 7,
    RAFT_MSG_HEARTBEAT = 8,
    RAFT_MSG_HEARTBEAT_RESPONSE = 9,
    RAFT_MSG_TRANSFER_LEADER = 11,
    RAFT_MSG_TIMEOUT_NOW = 12,
    RAFT_MSG_READ_INDEX = 15,
    RAFT_MSG_READ_INDEX_RESPONSE = 16,
    RAFT_MSG_REQUEST_PRE_VOTE = 17,
    RAFT_MSG_REQUEST_PRE_VOTE_RESPONSE = 18,
    /* Local only: never sent, never accepted by raft_rawnode_step. */
    RAFT_MSG_CHECK_QUORUM = 100,
    RAFT_MSG_UNREACHABLE = 101,
    RAFT_MSG_SNAPSHOT_STATUS = 102,
};

/*
 * eraftpb.Message. entries, snapshot.data, snapshot.metadata.conf_state.nodes
 * and context are owned by whoever owns the message (see raft_message_copy /
 * raft_message_free). context carries a ReadIndex request's context (in
 * MsgReadIndex, MsgReadIndexResponse, MsgHeartbeat and MsgHeartbeatResponse)
 * and the "campaign transfer" marker in vote requests.
 */
struct raft_message {
    enum raft_msg_type msg_type;
    uint64_t to;
    uint64_t from;
    uint64_t term;
    uint64_t log_term;
    uint64_t index;
    struct raft_entry *entries;
    size_t n_entries;
    uint64_t commit;
    struct raft_snapshot snapshot;
    int reject;
    uint64_t reject_hint;
    uint8_t *context;
    size_t context_len;
};

/* eraftpb.HardState. */
struct raft_hard_state {
    uint64_t term;
    uint64_t vote;
    uint64_t commit;
};

enum raft_conf_change_type {
    RAFT_CONF_ADD_NODE = 0,
    RAFT_CONF_REMOVE_NODE = 1,
};

/* eraftpb.ConfChange (decoded by the caller; raft never encodes it). context is borrowed. */
struct raft_conf_change {
    enum raft_conf_change_type change_type;
    uint64_t node_id;
    const uint8_t *context;
    size_t context_len;
};

/* ---- deep-copy helpers (used by raft, storages and tests) -------------- */

/* Each *_copy makes dst a deep copy of src (dst's old contents are not freed);
 * RAFT_ERR_NOMEM leaves dst zeroed. Each *_free releases what the struct owns
 * and zeroes it (the struct itself is not freed). */
int raft_entry_copy(struct raft_entry *dst, const struct raft_entry *src);
void raft_entry_free(struct raft_entry *e);
/* raft_entries_free frees n entries' data and then the array itself. */
void raft_entries_free(struct raft_entry *ents, size_t n);
int raft_conf_state_copy(struct raft_conf_state *dst, const struct raft_conf_state *src);
void raft_conf_state_free(struct raft_conf_state *cs);
int raft_snapshot_copy(struct raft_snapshot *dst, const struct raft_snapshot *src);
void raft_snapshot_free(struct raft_snapshot *s);
int raft_message_copy(struct raft_message *dst, const struct raft_message *src);
void raft_message_free(struct raft_message *m);

/* ---- storage (pull interface) ------------------------------------------ */

/*
 * The stable log as the node reads it. The embedder writes to its own
 * storage when handling a Ready; raft only reads through these calls. ctx is
 * the implementation's. All functions return 0 or a RAFT_ERR_* code.
 *
 * initial_state: the persisted hard state and the conf state of the last
 *   snapshot/config (cs->nodes is malloc'd, owned by the caller).
 * entries: entries [lo, hi), stopping early once their total data size
 *   exceeds max_bytes (at least one entry is returned when lo < hi);
 *   *out is a malloc'd array of deep copies owned by the caller (free with
 *   raft_entries_free). RAFT_ERR_COMPACTED if lo <= the snapshot index,
 *   RAFT_ERR_UNAVAILABLE if hi > last_index + 1.
 * term: the term of entry i; i may be the snapshot index (first_index - 1).
 *   RAFT_ERR_COMPACTED below that, RAFT_ERR_UNAVAILABLE above the last index.
 * first_index: index of the first available entry (snapshot index + 1).
 * last_index: index of the last entry (the snapshot index if the log is empty).
 * snapshot: a deep copy of the latest snapshot, owned by the caller (free
 *   with raft_snapshot_free); RAFT_ERR_SNAP_TEMP_UNAVAILABLE if it is being
 *   generated — raft will retry later.
 */
struct raft_storage_ops {
    int (*initial_state)(void *ctx, struct raft_hard_state *hs, struct raft_conf_state *cs);
    int (*entries)(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes, struct raft_entry **out,
                   size_t *n_out);
    int (*term)(void *ctx, uint64_t i, uint64_t *term);
    int (*first_index)(void *ctx, uint64_t *index);
    int (*last_index)(void *ctx, uint64_t *index);
    int (*snapshot)(void *ctx, struct raft_snapshot *out);
};

/* A storage handle: ops and ctx are borrowed by the node for its whole life. */
struct raft_storage {
    const struct raft_storage_ops *ops;
    void *ctx;
};

/* ---- in-memory storage -------------------------------------------------- */

/*
 * raft_memory_storage: a complete raft_storage kept in memory, for tests and
 * simulations (it survives a simulated crash of the node that uses it).
 * It starts with a dummy entry at index 0, term 0.
 */
struct raft_memory_storage;

int raft_memory_storage_new(struct raft_memory_storage **out);
void raft_memory_storage_free(struct raft_memory_storage *ms);
/* The raft_storage view of ms, valid while ms lives. */
struct raft_storage raft_memory_storage_storage(struct raft_memory_storage *ms);
void raft_memory_storage_set_hard_state(struct raft_memory_storage *ms,
                                        const struct raft_hard_state *hs);
void raft_memory_storage_hard_state(const struct raft_memory_storage *ms,
                                    struct raft_hard_state *out);
/* Sets the conf state returned by initial_state (copied): the members as of
 * the applied index. Bootstrap with it, and update it when applying a conf
 * change (apply_snapshot sets it from the snapshot). */
int raft_memory_storage_set_conf_state(struct raft_memory_storage *ms,
                                       const struct raft_conf_state *cs);
/* Appends ents (copied), truncating any conflicting suffix; entries at or
 * below the snapshot index are ignored. RAFT_ERR_INVALID if there is a gap. */
int raft_memory_storage_append(struct raft_memory_storage *ms, const struct raft_entry *ents,
                               size_t n);
/* Replaces the whole log with snap (copied). RAFT_ERR_SNAP_OUT_OF_DATE if older. */
int raft_memory_storage_apply_snapshot(struct raft_memory_storage *ms,
                                       const struct raft_snapshot *snap);
/* Records a snapshot at index (<= last index) with the given conf state and
 * data (copied; cs NULL means the conf state set by set_conf_state). The log is not
 * compacted. RAFT_ERR_SNAP_OUT_OF_DATE if index <= the current snapshot's. */
int raft_memory_storage_create_snapshot(struct raft_memory_storage *ms, uint64_t index,
                                        const struct raft_conf_state *cs, const void *data,
                                        size_t data_len);
/* Compaction hook: discards entries up to and including index (which must not
 * exceed the last index); RAFT_ERR_COMPACTED if already compacted there. */
int raft_memory_storage_compact(struct raft_memory_storage *ms, uint64_t index);
/* The next n snapshot() calls answer RAFT_ERR_SNAP_TEMP_UNAVAILABLE. */
void raft_memory_storage_set_snapshot_unavailable(struct raft_memory_storage *ms, int n);
uint64_t raft_memory_storage_first_index(const struct raft_memory_storage *ms);
uint64_t raft_memory_storage_last_index(const struct raft_memory_storage *ms);

/* ---- configuration ------------------------------------------------------ */

enum raft_log_level { RAFT_LOG_ERROR = 0, RAFT_LOG_WARN, RAFT_LOG_INFO, RAFT_LOG_DEBUG };

/* A log sink: msg is a borrowed, NUL-terminated line without newline. */
typedef void (*raft_log_fn)(void *log_ctx, int level, const char *msg);

struct raft_config {
    uint64_t id; /* this node, non-zero */
    /* Initial members when storage has no conf state (a fresh group); copied. */
    const uint64_t *peers;
    size_t n_peers;
    int election_ticks;           /* base election timeout; the real one is random in [e, 2e) */
    int heartbeat_ticks;          /* leader heartbeat interval; must be < election_ticks */
    struct raft_storage storage;  /* borrowed for the node's life */
    uint64_t applied;             /* last index already applied by the state machine */
    uint64_t max_size_per_msg;    /* data bytes per append (0: one entry per append) */
    uint64_t max_entries_per_msg; /* entries per append (0: unlimited) */
    int max_inflight_msgs;        /* appends in flight per follower (>= 1) */
    uint64_t max_committed_size_per_ready; /* committed entry bytes per Ready (0: unlimited) */
    int check_quorum; /* leader steps down without a quorum; followers hold a lease */
    int pre_vote;     /* run a pre-election before bumping the term */
    /* Coalesce appends: a leader sends what proposals and commit advances owe its followers
     * once per Ready (when raft_rawnode_ready is called) instead of once per proposal and per
     * acknowledgement, so the proposals and responses stepped between two Readies travel in one
     * append per follower. For embedders that step several messages per Ready. */
    int batch_appends;
    /* With check_quorum: a node grants no vote or pre-vote for one election timeout after it
     * starts, as if it had just heard from a leader. A restarted node has forgotten when it
     * last heard from its leader; without this it could help elect a new leader while the old
     * one still counts on it for a leader lease. */
    int boot_lease;
    uint64_t seed;      /* seeds this node's election-timeout randomness */
    raft_log_fn log_fn; /* optional */
    void *log_ctx;
    int log_level; /* messages above this level are not formatted */
};

/* ---- the node ----------------------------------------------------------- */

enum raft_role {
    RAFT_ROLE_FOLLOWER = 0,
    RAFT_ROLE_CANDIDATE = 1,
    RAFT_ROLE_LEADER = 2,
    RAFT_ROLE_PRE_CANDIDATE = 3,
};

struct raft_soft_state {
    uint64_t lead;
    enum raft_role role;
};

/* A confirmed ReadIndex: reads at applied >= index are linearizable. */
struct raft_read_state {
    uint64_t index;
    uint8_t *context;
    size_t context_len;
};

/*
 * What the caller must handle (see the header comment for the order). Every
 * pointer in it is owned by the node and stays valid until the next
 * raft_rawnode_advance() on that node (other calls in between are allowed).
 * Apply snapshot before committed_entries when both are present.
 */
struct raft_ready {
    int has_soft_state;
    struct raft_soft_state soft_state;
    int has_hard_state; /* persist hard_state */
    struct raft_hard_state hard_state;
    int has_snapshot; /* persist and apply snapshot */
    struct raft_snapshot snapshot;
    struct raft_entry *entries; /* append to stable storage */
    size_t n_entries;
    struct raft_entry *committed_entries; /* apply in order */
    size_t n_committed_entries;
    struct raft_message *messages; /* send after persisting */
    size_t n_messages;
    struct raft_read_state *read_states;
    size_t n_read_states;
    int must_sync; /* hard state or entries changed: sync the write */
};

enum raft_progress_state {
    RAFT_PROGRESS_PROBE = 0,
    RAFT_PROGRESS_REPLICATE = 1,
    RAFT_PROGRESS_SNAPSHOT = 2,
};

struct raft_peer_status {
    uint64_t id;
    uint64_t match;
    uint64_t next;
    enum raft_progress_state state;
    uint64_t pending_snapshot;
    int recent_active;
};

/* Status snapshot. peers is malloc'd (leader only, else NULL); free with raft_status_free. */
struct raft_status {
    uint64_t id;
    struct raft_hard_state hard_state; /* term, vote, commit */
    uint64_t applied;
    uint64_t lead;
    enum raft_role role;
    uint64_t lead_transferee;
    uint64_t first_index;
    uint64_t last_index;
    struct raft_peer_status *peers;
    size_t n_peers;
};
void raft_status_free(struct raft_status *st);

struct raft_rawnode;

/* Creates a node from cfg (copied) and the state in cfg->storage.
 * RAFT_ERR_INVALID (detail in errbuf if given) or RAFT_ERR_NOMEM. */
int raft_rawnode_new(const struct raft_config *cfg, struct raft_rawnode **out, char *errbuf,
                     size_t errbuf_len);
void raft_rawnode_free(struct raft_rawnode *rn);
/* The detail of the node's last error, in a buffer owned by the node. */
const char *raft_rawnode_errmsg(const struct raft_rawnode *rn);

/* Advances the logical clock by one tick. */
void raft_rawnode_tick(struct raft_rawnode *rn);
/* Starts an election now (pre-vote first if configured). */
int raft_rawnode_campaign(struct raft_rawnode *rn);
/* Proposes a normal entry with data (copied). RAFT_ERR_PROPOSAL_DROPPED unless leader. */
int raft_rawnode_propose(struct raft_rawnode *rn, const void *data, size_t len);
/* Proposes a ConfChange entry whose data is the caller's encoding (copied).
 * If a conf change is still unapplied, the entry is replaced by an empty
 * normal entry (it still commits, but changes nothing). */
int raft_rawnode_propose_conf_change(struct raft_rawnode *rn, const void *data, size_t len);
/* Applies a committed conf change the caller decoded; fills *out (caller frees
 * with raft_conf_state_free) with the new members when out is not NULL. */
int raft_rawnode_apply_conf_change(struct raft_rawnode *rn, const struct raft_conf_change *cc,
                                   struct raft_conf_state *out);
/* Steps a message received from a peer (borrowed; what is kept is copied). */
int raft_rawnode_step(struct raft_rawnode *rn, const struct raft_message *m);
/* Asks the leader to hand leadership to transferee. */
void raft_rawnode_transfer_leader(struct raft_rawnode *rn, uint64_t transferee);
/* The last index of the node's log and its current term (cheap; no allocation). */
void raft_rawnode_last(const struct raft_rawnode *rn, uint64_t *last_index, uint64_t *term);
/* The peer a leadership transfer is under way to, or 0 (cheap; no allocation). */
uint64_t raft_rawnode_lead_transferee(const struct raft_rawnode *rn);
/* Requests a linearizable read; the answer arrives as a read state carrying ctx (copied). */
int raft_rawnode_read_index(struct raft_rawnode *rn, const void *ctx, size_t len);
/* The transport could not reach id: slow down replication to it. */
void raft_rawnode_report_unreachable(struct raft_rawnode *rn, uint64_t id);
/* Outcome of sending a snapshot to id (failed != 0 if it did not arrive). */
void raft_rawnode_report_snapshot(struct raft_rawnode *rn, uint64_t id, int failed);

/*
 * Hibernation (the raftstore stops ticking an idle region, as TiKV's hibernate regions do).
 * raft_rawnode_leader_idle: this node leads and its group has nothing left to do: no
 * leadership transfer, no conf change committed but unapplied, no ReadIndex waiting, every
 * entry applied here, and every member matched up to the last index and heard from within
 * max_inactive_ticks ticks. Cheap; no allocation.
 */
int raft_rawnode_leader_idle(const struct raft_rawnode *rn, int max_inactive_ticks);
/* raft_rawnode_follower_idle: this node follows `lead` in `term`, and its log ends at `index`,
 * committed and applied there: it agrees with a leader that is idle at that index. */
int raft_rawnode_follower_idle(const struct raft_rawnode *rn, uint64_t lead, uint64_t term,
                               uint64_t index);

/* Whether raft_rawnode_ready would return anything. */
int raft_rawnode_has_ready(const struct raft_rawnode *rn);
/* Fills *rd with the pending work; rd's contents are owned by the node until
 * raft_rawnode_advance. Only one Ready may be outstanding. RAFT_ERR_NOMEM. */
int raft_rawnode_ready(struct raft_rawnode *rn, struct raft_ready *rd);
/* Tells the node the Ready was handled; frees what it pointed to. */
void raft_rawnode_advance(struct raft_rawnode *rn, struct raft_ready *rd);
/* Fills *st; RAFT_ERR_NOMEM. */
int raft_rawnode_status(const struct raft_rawnode *rn, struct raft_status *st);

#endif
