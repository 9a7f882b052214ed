/* pd.h — public API of the scheduler (a small PD): metadata, TSO, IDs, scheduling, HTTP. */
#ifndef TINYKV_PD_PD_H
#define TINYKV_PD_PD_H

/*
 * Owns: the cluster's metadata (cluster id, bootstrap state, stores, regions,
 * config, the set of schedulers, the GC safe point), the timestamp oracle,
 * the ID allocator and the operators the schedulers create. Everything it
 * promises is persisted in RocksDB under the data directory before the call
 * returns.
 *
 * Called by: tinyscheduler-server's main (open, tick timer, HTTP API), the
 * future gRPC schedulerpb service (a thin layer converting metapb/schedulerpb
 * messages to the plain structs below), and the tests.
 *
 * Must never: hand out a timestamp or an ID twice (also across crashes and
 * clock steps back), let a stale heartbeat overwrite newer region state, keep
 * protobuf-c types in its core, or use global mutable state (several
 * clusters may live in one process).
 *
 * Thread safety: every pd_cluster_* function may be called from any thread;
 * one mutex guards the cluster state. Structs returned by value are copies
 * the caller owns (free with the matching *_clear function).
 *
 * Units: times are Unix milliseconds (_ms), sizes bytes (_bytes). Keys are
 * raw bytes; an empty end key means "to the end of the key space".
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- error codes: 0 is success, PD_ERR_* lie in 5000..5099 ---- */
enum {
    PD_OK = 0,
    PD_ERR_NOMEM = 5001,            /* allocation failed */
    PD_ERR_INVALID = 5002,          /* bad argument (detail in errmsg) */
    PD_ERR_IO = 5003,               /* RocksDB or file error (detail in errmsg) */
    PD_ERR_NOT_BOOTSTRAPPED = 5004, /* the cluster has not been bootstrapped */
    PD_ERR_ALREADY_BOOTSTRAPPED = 5005,
    PD_ERR_NOT_FOUND = 5006, /* unknown store, region, operator or scheduler */
    PD_ERR_STALE = 5007,     /* a heartbeat older than the state PD holds */
    PD_ERR_TOMBSTONE = 5008, /* the store is a tombstone */
    PD_ERR_EXISTS = 5009,    /* an operator or scheduler already exists */
    PD_ERR_CORRUPT = 5010,   /* persisted data could not be decoded */
    PD_ERR_STATE = 5011,     /* the change is not allowed in the current state */
};

/* pd_strerror returns a static description of an error code (never NULL). */
const char *pd_strerror(int err);

#define PD_MAX_PEERS 16        /* peers per region PD keeps track of */
#define PD_MAX_KEY_BYTES 8192  /* longest region boundary key accepted */
#define PD_MAX_ADDR_BYTES 256  /* longest store address accepted, including NUL */
#define PD_TSO_LOGICAL_BITS 18 /* ts = physical_ms << 18 | logical */
#define PD_TSO_MAX_COUNT ((1u << PD_TSO_LOGICAL_BITS) - 1)

/* ---- metadata (mirrors metapb) ---- */

enum pd_store_state { PD_STORE_UP = 0, PD_STORE_OFFLINE = 1, PD_STORE_TOMBSTONE = 2 };

struct pd_store {
    uint64_t id;
    char address[PD_MAX_ADDR_BYTES];
    enum pd_store_state state;
};

struct pd_peer {
    uint64_t id;
    uint64_t store_id;
};

struct pd_region_epoch {
    uint64_t conf_ver; /* bumped by every membership change */
    uint64_t version;  /* bumped by every split or merge */
};

/*
 * A region with its heartbeat information. start_key/end_key are heap
 * buffers owned by the struct: initialise with pd_region_init, copy with
 * pd_region_copy, release with pd_region_clear.
 */
struct pd_region {
    uint64_t id;
    uint8_t *start_key;
    size_t start_key_len;
    uint8_t *end_key; /* empty = unbounded */
    size_t end_key_len;
    struct pd_region_epoch epoch;
    struct pd_peer peers[PD_MAX_PEERS];
    size_t peer_count;
    /* heartbeat information (not part of metapb.Region) */
    struct pd_peer leader; /* id 0 when unknown */
    struct pd_peer pending_peers[PD_MAX_PEERS];
    size_t pending_peer_count;
    uint64_t approximate_size_bytes;
};

void pd_region_init(struct pd_region *r);
void pd_region_clear(struct pd_region *r);
/* pd_region_set_keys copies both keys into r. PD_ERR_NOMEM or PD_ERR_INVALID (too long). */
int pd_region_set_keys(struct pd_region *r, const void *start, size_t start_len, const void *end,
                       size_t end_len);
/* pd_region_copy makes dst an independent copy of src (dst must be initialised). */
int pd_region_copy(struct pd_region *dst, const struct pd_region *src);
/* pd_region_add_peer appends a peer; PD_ERR_INVALID when full. */
int pd_region_add_peer(struct pd_region *r, uint64_t peer_id, uint64_t store_id);
/* pd_region_store_peer returns the region's peer on store_id, or NULL. Borrowed from r. */
const struct pd_peer *pd_region_store_peer(const struct pd_region *r, uint64_t store_id);

/* Store statistics reported by a store heartbeat (schedulerpb.StoreStats). */
struct pd_store_stats {
    uint64_t store_id;
    uint64_t capacity_bytes;
    uint64_t available_bytes;
    uint64_t used_size_bytes;
    uint32_t region_count; /* as the store reports it */
    uint32_t sending_snap_count;
    uint32_t receiving_snap_count;
    uint32_t applying_snap_count;
    bool is_busy;
};

/* What PD knows about a store: its metadata, its last stats and figures from the region tree. */
struct pd_store_info {
    struct pd_store store;
    struct pd_store_stats stats;
    uint64_t last_heartbeat_ms;  /* 0 = never */
    uint64_t region_count;       /* regions with a peer on the store (from the region tree) */
    uint64_t leader_count;       /* regions whose leader is on the store */
    uint64_t region_size_bytes;  /* sum of approximate sizes of those regions */
    uint64_t region_score_bytes; /* the same with empty regions counted as 1 MiB (scheduling) */
    uint64_t leader_size_bytes;
    uint64_t pending_peer_count;
    bool disconnected; /* no heartbeat for PD_STORE_DISCONNECT_MS */
    bool down;         /* no heartbeat for max_store_down_time_ms */
};

#define PD_STORE_DISCONNECT_MS 20000

/* ---- config (persisted; JSON names as PD's in pd_config_to_json) ---- */
struct pd_config {
    uint64_t max_replicas;               /* "max-replicas", default 3 */
    uint64_t max_store_down_time_ms;     /* "max-store-down-time", default 30 min */
    uint64_t leader_schedule_limit;      /* "leader-schedule-limit", default 4 */
    uint64_t region_schedule_limit;      /* "region-schedule-limit", default 2048 */
    uint64_t replica_schedule_limit;     /* "replica-schedule-limit", default 64 */
    uint64_t leader_operator_timeout_ms; /* "leader-operator-timeout", default 10 s */
    uint64_t region_operator_timeout_ms; /* "region-operator-timeout", default 10 min */
    /* "max-pending-peer-count", default 64: a store with this many peers still catching up
     * (pending, or being added by an operator) receives no more peers */
    uint64_t max_pending_peer_count;
    /* "max-snapshot-count", default 64: nor does a store sending, receiving or applying this
     * many snapshots (as its heartbeat reports) */
    uint64_t max_snapshot_count;
};

void pd_config_default(struct pd_config *cfg);

/* ---- operators ---- */

enum pd_step_kind {
    PD_STEP_ADD_PEER = 1,
    PD_STEP_REMOVE_PEER = 2,
    PD_STEP_TRANSFER_LEADER = 3,
    PD_STEP_SPLIT = 4, /* split the region at the operator's keys (see pd_heartbeat_reply) */
};

struct pd_step {
    enum pd_step_kind kind;
    uint64_t store_id; /* add: target store; remove: store losing its peer; transfer: new leader's
                          store; split: the leader's store when the split was asked for */
    uint64_t peer_id;  /* add: the new peer's id; remove/transfer: the peer concerned; split: the
                          leader then */
    size_t split_key_count; /* split: how many keys (0 for the other kinds) */
};

#define PD_MAX_STEPS 4
#define PD_OPERATOR_NAME_BYTES 48

enum pd_operator_kind {
    PD_OP_KIND_LEADER = 1,  /* leader transfers only */
    PD_OP_KIND_REGION = 2,  /* moves peers to balance */
    PD_OP_KIND_REPLICA = 3, /* repairs replica counts */
    PD_OP_KIND_ADMIN = 4,   /* created through the API */
    PD_OP_KIND_SPLIT = 5,   /* splits a region at keys asked for through the API */
};

struct pd_operator {
    uint64_t region_id;
    char name[PD_OPERATOR_NAME_BYTES]; /* e.g. "balance-region", "make-up-replica" */
    enum pd_operator_kind kind;
    struct pd_region_epoch epoch; /* the region's epoch when created */
    struct pd_step steps[PD_MAX_STEPS];
    size_t step_count;
    size_t current_step; /* index of the step in progress */
    uint64_t create_ms;
};

/* ---- the cluster ---- */

struct pd_cluster;
struct metrics;

struct pd_options {
    /* RocksDB directory; created if missing. NULL = in memory only (tests). Borrowed during open.
     */
    const char *data_dir;
    /* Wall clock in Unix ms; NULL = CLOCK_REALTIME. Tests inject a fake clock. */
    uint64_t (*now_ms)(void *ctx);
    void *clock_ctx;
    /* TSO: how far ahead of the clock a persisted window ends; 0 = 3000 ms. */
    uint64_t tso_window_ms;
    /* ID allocator: how many IDs one persisted step reserves; 0 = 1000. */
    uint64_t id_batch;
    /* Where the gRPC service counts its calls and what the HTTP /metrics renders after the
     * scheduler's own counters (borrowed; must outlive the cluster). NULL = none. */
    struct metrics *metrics;
};

/*
 * pd_cluster_open opens (or creates) the cluster state. On success *out is a
 * new cluster the caller frees with pd_cluster_close. errmsg (may be NULL)
 * receives a description of a failure (errmsg_len bytes at most).
 * Errors: PD_ERR_NOMEM, PD_ERR_IO, PD_ERR_CORRUPT, PD_ERR_INVALID.
 */
int pd_cluster_open(const struct pd_options *opts, struct pd_cluster **out, char *errmsg,
                    size_t errmsg_len);
void pd_cluster_close(struct pd_cluster *c);

/* The metrics registry given in pd_options (NULL if none); borrowed. */
struct metrics *pd_cluster_registry(struct pd_cluster *c);

/* pd_cluster_errmsg copies the detail of the last error recorded on c into buf (len bytes at
 * most, NUL-terminated). */
void pd_cluster_errmsg(struct pd_cluster *c, char *buf, size_t len);

uint64_t pd_cluster_id(struct pd_cluster *c);

/* Bootstrap with the first store and region (both copied). region may be NULL (TinyKV's
 * BootstrapRequest carries only the store; the first region then arrives by heartbeat).
 * PD_ERR_ALREADY_BOOTSTRAPPED, PD_ERR_INVALID, PD_ERR_IO. */
int pd_cluster_bootstrap(struct pd_cluster *c, const struct pd_store *store,
                         const struct pd_region *region);
bool pd_cluster_is_bootstrapped(struct pd_cluster *c);

/* pd_cluster_alloc_id returns a new unique ID (never reused, also after a crash). */
int pd_cluster_alloc_id(struct pd_cluster *c, uint64_t *id);

/*
 * pd_cluster_tso reserves count (1..PD_TSO_MAX_COUNT) consecutive timestamps
 * and returns the last one in *ts; the first is *ts - count + 1. Timestamps
 * are strictly increasing across calls, restarts and crashes.
 */
int pd_cluster_tso(struct pd_cluster *c, uint32_t count, uint64_t *ts);

/* Stores. put_store adds or updates (copied); a known store keeps the state PD holds for it.
 * PD_ERR_NOT_BOOTSTRAPPED, PD_ERR_TOMBSTONE for a tombstone store, PD_ERR_EXISTS when another
 * live store has the same address. */
int pd_cluster_put_store(struct pd_cluster *c, const struct pd_store *store);
int pd_cluster_get_store(struct pd_cluster *c, uint64_t store_id, struct pd_store_info *out);
/* get_all_stores: *out is a malloc'ed array of *count entries the caller frees. */
int pd_cluster_get_all_stores(struct pd_cluster *c, struct pd_store_info **out, size_t *count);
/* set_store_state: Up <-> Offline, either -> Tombstone (only without regions unless forced). */
int pd_cluster_set_store_state(struct pd_cluster *c, uint64_t store_id, enum pd_store_state state,
                               bool force);
/* store_heartbeat records stats (copied) and the heartbeat time. PD_ERR_NOT_FOUND,
 * PD_ERR_TOMBSTONE. */
int pd_cluster_store_heartbeat(struct pd_cluster *c, const struct pd_store_stats *stats);

/*
 * pd_cluster_region_heartbeat applies a leader's report of its region
 * (copied; leader, pending peers and size are taken from region). Stale
 * reports (lower version or conf_ver than the same region or an overlapping
 * one) return PD_ERR_STALE and change nothing. Newer ones replace the regions
 * they overlap. Then the region's operator advances; when one remains,
 * *has_step is set and *step is the step to send back to the leader
 * (a PD_STEP_SPLIT step without its keys: pd_cluster_region_heartbeat_reply
 * hands them out). step/has_step may be NULL.
 */
int pd_cluster_region_heartbeat(struct pd_cluster *c, const struct pd_region *region,
                                struct pd_step *step, bool *has_step);

/* A key (a user key: region bounds and split keys). */
struct pd_key {
    uint8_t *data;
    size_t len;
};

/* What a region heartbeat answers its leader: at most one step of the region's operator. */
struct pd_heartbeat_reply {
    bool has_step;
    struct pd_step step;
    /* PD_STEP_SPLIT: step.split_key_count keys inside the region, ascending and distinct; owned
     * by the reply (pd_heartbeat_reply_clear). NULL for the other kinds. */
    struct pd_key *split_keys;
};
void pd_heartbeat_reply_clear(struct pd_heartbeat_reply *r);

/*
 * pd_cluster_region_heartbeat_reply is pd_cluster_region_heartbeat that also
 * hands out a split step's keys. out is filled (cleared first) whatever the
 * result; on an error it holds no step.
 */
int pd_cluster_region_heartbeat_reply(struct pd_cluster *c, const struct pd_region *region,
                                      struct pd_heartbeat_reply *out);

/* Region look-ups copy into out (initialised by the caller; pd_region_clear it). PD_ERR_NOT_FOUND.
 */
int pd_cluster_get_region(struct pd_cluster *c, const void *key, size_t key_len,
                          struct pd_region *out);
int pd_cluster_get_prev_region(struct pd_cluster *c, const void *key, size_t key_len,
                               struct pd_region *out);
int pd_cluster_get_region_by_id(struct pd_cluster *c, uint64_t region_id, struct pd_region *out);
/*
 * scan_regions copies up to limit (0 = all) regions from the one holding
 * start_key onwards, stopping before end_key (empty = no bound). *out is a
 * malloc'ed array; free it with pd_regions_free.
 */
int pd_cluster_scan_regions(struct pd_cluster *c, const void *start_key, size_t start_len,
                            const void *end_key, size_t end_len, size_t limit,
                            struct pd_region **out, size_t *count);
void pd_regions_free(struct pd_region *regions, size_t count);
size_t pd_cluster_region_count(struct pd_cluster *c);
/* store_regions copies every region with a peer on store_id, in key order (*out as for
 * scan_regions). PD_ERR_NOT_FOUND for an unknown store, PD_ERR_NOMEM. */
int pd_cluster_store_regions(struct pd_cluster *c, uint64_t store_id, struct pd_region **out,
                             size_t *count);

/* How many split keys one request may carry (PD has no limit; a bound keeps a request cheap). */
#define PD_MAX_SPLIT_KEYS 256

/*
 * pd_cluster_split_regions asks for the regions holding keys (count keys,
 * borrowed for the call) to be split there: each such region gets a
 * "split-region" operator (kind PD_OP_KIND_SPLIT) holding its keys sorted and
 * deduplicated, handed to the region's leader by its next heartbeat answers
 * (PD_STEP_SPLIT). The operator succeeds when a heartbeat shows the region's
 * version grew (the left half keeps the id) or a newer region replaced it,
 * is dropped as stale when the region's conf_ver changed first, and times
 * out after leader-operator-timeout (a split is one Raft proposal).
 * The split itself is asynchronous: this returns once the operators exist.
 * Every key is checked before anything changes: PD_ERR_INVALID for no keys,
 * more than PD_MAX_SPLIT_KEYS, an empty or too long key, or a key equal to
 * its region's start key; PD_ERR_NOT_FOUND when no region holds a key;
 * PD_ERR_EXISTS when a region concerned already has an operator;
 * PD_ERR_NOT_BOOTSTRAPPED. region_ids (PD_MAX_SPLIT_KEYS entries, caller's)
 * receives the regions concerned in key order, *region_count how many.
 */
int pd_cluster_split_regions(struct pd_cluster *c, const struct pd_key *keys, size_t count,
                             uint64_t *region_ids, size_t *region_count);

/* get_split_keys copies the keys of the region's running split operator into *keys (malloc'ed;
 * free with pd_keys_free). PD_ERR_NOT_FOUND when it has none. */
int pd_cluster_get_split_keys(struct pd_cluster *c, uint64_t region_id, struct pd_key **keys,
                              size_t *count);
void pd_keys_free(struct pd_key *keys, size_t count);

/* ask_split: a new region id and one new peer id per peer of region_id (peer_ids holds
 * PD_MAX_PEERS; *peer_count set). PD_ERR_NOT_FOUND for an unknown region. */
int pd_cluster_ask_split(struct pd_cluster *c, uint64_t region_id, uint64_t *new_region_id,
                         uint64_t *peer_ids, size_t *peer_count);

int pd_cluster_get_config(struct pd_cluster *c, struct pd_config *out);
/* put_config validates (max_replicas 1..PD_MAX_PEERS, others > 0) and persists. */
int pd_cluster_put_config(struct pd_cluster *c, const struct pd_config *cfg);

/* GC safe point: update only moves it forward; *new_point gets the value in force. */
int pd_cluster_get_gc_safe_point(struct pd_cluster *c, uint64_t *safe_point);
int pd_cluster_update_gc_safe_point(struct pd_cluster *c, uint64_t safe_point, uint64_t *new_point);

/* Operators. get_operator copies the region's running operator. PD_ERR_NOT_FOUND. */
int pd_cluster_get_operator(struct pd_cluster *c, uint64_t region_id, struct pd_operator *out);

/* How an operator stands (the values of schedulerpb.OperatorStatus). */
enum pd_operator_status {
    PD_OP_SUCCESS = 0,
    PD_OP_TIMEOUT = 1,
    PD_OP_CANCEL = 2,
    PD_OP_REPLACE = 3,
    PD_OP_RUNNING = 4,
};
#define PD_OPERATOR_HISTORY 1024 /* ended operators remembered for get_operator_status */

/* get_operator_status: the region's running operator (PD_OP_RUNNING), else the last of its
 * operators that ended among the PD_OPERATOR_HISTORY most recent, with how it ended.
 * PD_ERR_NOT_FOUND when neither exists. */
int pd_cluster_get_operator_status(struct pd_cluster *c, uint64_t region_id,
                                   struct pd_operator *out, enum pd_operator_status *status);
const char *pd_operator_status_name(enum pd_operator_status s);
/* *out is a malloc'ed array the caller frees. */
int pd_cluster_get_operators(struct pd_cluster *c, struct pd_operator **out, size_t *count);
/* An operator that ended, and how. */
struct pd_operator_record {
    struct pd_operator op;
    enum pd_operator_status status;
};
/* pd_cluster_get_operator_history: up to `max` of the most recently ended operators, newest
 * first; *out is a malloc'ed array the caller frees. PD_ERR_NOMEM. */
int pd_cluster_get_operator_history(struct pd_cluster *c, size_t max,
                                    struct pd_operator_record **out, size_t *count);
/* Admin operators: PD_ERR_NOT_FOUND (region/store), PD_ERR_EXISTS (one is running),
 * PD_ERR_STATE (e.g. target store not up, peer already there / not there). */
int pd_cluster_add_transfer_leader(struct pd_cluster *c, uint64_t region_id, uint64_t to_store);
int pd_cluster_add_add_peer(struct pd_cluster *c, uint64_t region_id, uint64_t store_id);
int pd_cluster_add_remove_peer(struct pd_cluster *c, uint64_t region_id, uint64_t store_id);
int pd_cluster_remove_operator(struct pd_cluster *c, uint64_t region_id);
/* scatter_region moves one peer of the region to a less loaded store when one fits. */
int pd_cluster_scatter_region(struct pd_cluster *c, uint64_t region_id);

/* Schedulers: "balance-leader-scheduler", "balance-region-scheduler" (both on by default). */
#define PD_SCHEDULER_BALANCE_LEADER "balance-leader-scheduler"
#define PD_SCHEDULER_BALANCE_REGION "balance-region-scheduler"
/* *names: malloc'ed array of malloc'ed strings; free with pd_names_free. */
int pd_cluster_list_schedulers(struct pd_cluster *c, char ***names, size_t *count);
void pd_names_free(char **names, size_t count);
int pd_cluster_add_scheduler(struct pd_cluster *c, const char *name);
int pd_cluster_remove_scheduler(struct pd_cluster *c, const char *name);

/*
 * pd_cluster_tick runs one scheduling round: extends the persisted TSO
 * window when half of it is used, times out stuck operators,
 * turns empty offline stores into tombstones, runs the replica checker over
 * every region and each scheduler once. Returns how many operators were
 * created through *created (may be NULL). Driven by the server's timer
 * thread; tests call it directly.
 */
int pd_cluster_tick(struct pd_cluster *c, size_t *created);

/*
 * pd_cluster_run_scheduler runs one checker or scheduler once, whether or not
 * it is in the running set: "replica-checker" (over every region),
 * PD_SCHEDULER_BALANCE_LEADER or PD_SCHEDULER_BALANCE_REGION. For tests and
 * debugging. PD_ERR_NOT_FOUND for an unknown name.
 */
int pd_cluster_run_scheduler(struct pd_cluster *c, const char *name, size_t *created);

/* Counters for /metrics (monotonic since open). */
struct pd_metrics {
    uint64_t region_heartbeats;
    uint64_t stale_region_heartbeats;
    uint64_t store_heartbeats;
    uint64_t operators_created;
    uint64_t operators_finished;
    uint64_t operators_timed_out;
    uint64_t operators_canceled;
    uint64_t tso_requests;
    uint64_t ids_allocated;
    uint64_t ticks;
};
void pd_cluster_metrics(struct pd_cluster *c, struct pd_metrics *out);

/* Names used in JSON and logs. */
const char *pd_store_state_name(enum pd_store_state s);
const char *pd_step_kind_name(enum pd_step_kind k);
const char *pd_operator_kind_name(enum pd_operator_kind k);

/* ---- HTTP/JSON admin API (libmicrohttpd) ---- */

/* The dashboard page served at /dashboard (HTML with its script and style inline; it reads the
 * admin API and never mutates). A static NUL-terminated string. */
const char *pd_dashboard_html(void);

struct pd_http;

/*
 * pd_http_start serves the admin API for c (borrowed: must outlive the
 * server) on host:port ("127.0.0.1:2378"; port 0 picks a free one, read it
 * back with pd_http_port). admin_token (copied; NULL = none) is required as
 * "Authorization: Bearer <token>" by every mutating call. Region keys in
 * JSON are uppercase hex. Errors: PD_ERR_INVALID (address), PD_ERR_IO.
 */
int pd_http_start(struct pd_cluster *c, const char *addr, const char *admin_token,
                  const char *grpc_addr, struct pd_http **out, char *errmsg, size_t errmsg_len);
uint16_t pd_http_port(struct pd_http *h);
void pd_http_stop(struct pd_http *h);

/* ---- the schedulerpb.Scheduler gRPC service ---- */

struct pd_grpc;

/*
 * pd_grpc_start serves the scheduler's gRPC API for c (borrowed: must
 * outlive the server) on addr (port 0 picks a free one, see pd_grpc_port).
 * Calls that need a bootstrapped cluster answer NOT_BOOTSTRAPPED in their
 * response header before; Tso and RegionHeartbeat are bidirectional streams,
 * the latter answering a leader's report with its region's operator step.
 * Errors: PD_ERR_IO (cannot listen), PD_ERR_NOMEM.
 */
int pd_grpc_start(struct pd_cluster *c, const char *addr, struct pd_grpc **out, char *errmsg,
                  size_t errmsg_len);
int pd_grpc_port(const struct pd_grpc *g);
void pd_grpc_stop(struct pd_grpc *g);

/* pd_hex_encode writes 2*len uppercase hex digits and a NUL to out (2*len+1 bytes). */
void pd_hex_encode(const uint8_t *in, size_t len, char *out);
/* pd_hex_decode decodes hex (either case) into out (len/2 bytes); -1 on bad input. */
int pd_hex_decode(const char *in, size_t len, uint8_t *out);

#endif
