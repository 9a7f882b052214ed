/* raftstore.h — the multi-Raft store: one Raft group per region, driven by one store loop thread.
 */
#ifndef TINYKV_STORE_RAFTSTORE_H
#define TINYKV_STORE_RAFTSTORE_H

/*
 * What it owns: every peer of this store (its Raft node, peer storage,
 * pending proposals and reads), the store's regions by id and by range
 * (store_meta.c), the store loop thread that drives them, and four workers
 * fed by queues: snapshots (snapshot.c), split checks (split_check.c),
 * raft-log GC (raftlog_gc.c) and consistency hashes (consistency.c). The
 * files follow the seams: raftstore.c (the mailbox, the router and the loop),
 * peer.c (one region's Raft node and its Ready), apply.c (committed entries),
 * split.c (the Split admin command), consistency.c (the ComputeHash and
 * VerifyHash admin commands), cmd_resp.c (answers).
 *
 * Who calls it: raft_kv.c (the Storage interface in cluster mode) posts
 * commands and reads; the Raft gRPC service posts messages from other
 * stores; the scheduler worker posts operators. Everything arrives through a
 * mailbox and is handled on the store loop thread, which also ticks, persists
 * every ready peer's log and hard state in one synced raft-DB write, sends
 * messages, applies committed entries and answers callbacks.
 *
 * What it must never do: call back into its callers while holding the
 * mailbox lock; interpret user keys or values (they are bytes in
 * RaftCmdRequests); answer a read that is not confirmed by ReadIndex or the
 * leader lease on the leader; let two threads touch a peer (the lease-read table, local_read.c,
 * holds copies, under its own lock).
 *
 * Outbound messages and scheduler reports go through the two vtables below,
 * so tests can run several stores in one process over a filterable
 * in-memory transport and a mock scheduler.
 */

#include <stddef.h>
#include <stdint.h>

#include "raft_serverpb.pb-c.h"
#include "store/engine.h"
#include "store/region.h"
#include "store/storage.h"

struct raftstore;
struct raftstore_metrics;

/* Sends Raft messages to other stores. Called on the store loop thread; must
 * not block (queue and return). `msg` is borrowed for the call. */
struct raftstore_transport_ops {
    void (*send)(void *ctx, uint64_t to_store_id, const RaftServerpb__RaftMessage *msg);
};

/* What a leader reports to the scheduler (called on the store loop thread; must not block). */
struct raftstore_region_report {
    const struct region *region; /* borrowed */
    uint64_t leader_peer_id;
    const uint64_t *pending_peer_ids; /* peers known to lag (need a snapshot); borrowed */
    size_t n_pending_peer_ids;
    uint64_t approximate_size_bytes;
    uint64_t approximate_keys;
};

struct raftstore_pd_ops {
    void (*region_heartbeat)(void *ctx, const struct raftstore_region_report *report);
    /* A peer of this store was destroyed (removed from its region). */
    void (*peer_destroyed)(void *ctx, uint64_t region_id, uint64_t peer_id);
    /* The split check found that the region (at `version`) should split at
     * user key `key` (borrowed for the call): ask the scheduler for ids and
     * call raftstore_split. May be NULL (no automatic splits). */
    void (*ask_split)(void *ctx, uint64_t region_id, uint64_t version, const void *key,
                      size_t key_len);
};

struct raftstore_config {
    uint64_t store_id;
    struct engine *kv;          /* borrowed: data CFs + meta CF */
    struct engine *raft;        /* borrowed: raft log and raft state */
    int tick_ms;                /* base tick (default 100) */
    int election_ticks;         /* default 10 */
    int heartbeat_ticks;        /* default 2 */
    int region_heartbeat_ticks; /* leaders report every N ticks (default 10) */
    uint64_t
        raft_log_gc_count_limit; /* compact the log past this many applied entries (default 1000) */
    uint64_t max_entries_per_msg; /* default 64 */
    uint64_t max_size_per_msg;    /* default 1 MiB */
    int max_inflight_msgs;        /* default 64 */
    /* Split check, with TiKV's meanings: a region over max_size bytes (or
     * max_keys user keys) splits at the first user-key boundary past
     * split_size (split_keys). Defaults 144 MiB, 96 MiB, 1,440,000 and
     * 960,000. A leader looks every split_check_ticks ticks (default 100)
     * when its region grew by 1/16 of split_size (split_keys) since the last
     * scan. */
    uint64_t region_max_size, region_split_size;
    uint64_t region_max_keys, region_split_keys;
    int split_check_ticks;
    /* Hibernation, as TiKV's hibernate regions: a leader whose region had nothing to do for
     * hibernate_ticks ticks in a row (default election_ticks; negative: never) tells its
     * followers and stops ticking, and so do they; any request or message wakes the region.
     * An asleep leader reports to the scheduler every idle_region_heartbeat_ticks (default 100),
     * staggered over the store's regions. */
    int hibernate_ticks;
    int idle_region_heartbeat_ticks;
    struct raftstore_transport_ops transport;
    void *transport_ctx;
    struct raftstore_pd_ops pd; /* may be all NULL */
    void *pd_ctx;
    struct raftstore_metrics *metrics; /* borrowed, outlives the raftstore; NULL counts nothing */
    /* Where snapshot files live (created if missing; every snapshot file in it is removed at
     * start). Required. */
    char snap_dir[512];
};

/*
 * raftstore_new loads every region of this store from the kv DB (peers of
 * tombstoned regions are remembered, not started) and starts the store loop
 * and snapshot worker. Returns 0 or STORAGE_ERR_*, with detail in errbuf.
 */
int raftstore_new(const struct raftstore_config *cfg, struct raftstore **out, char *errbuf,
                  size_t errbuf_len);

/* raftstore_free stops the threads, fails everything pending with
 * STORAGE_ERR_CLOSED, and frees every peer. */
void raftstore_free(struct raftstore *rs);

/*
 * raftstore_bootstrap_region creates the first region of a new cluster on
 * this store (must be called before raftstore_new on an empty store):
 * writes its region state with one peer and the initial log position.
 */
int raftstore_bootstrap_region(struct engine *kv, struct engine *raft, uint64_t store_id,
                               const struct region *region, char *errbuf, size_t errbuf_len);

/* raftstore_region_count: how many regions the kv DB holds state for (0 on a fresh store). */
int raftstore_region_count(struct engine *kv);

/* ---- requests (any thread) ---- */

/* Outcome of a command or read. reader is set for successful reads and then
 * owned by the callback (storage_reader_free). */
struct raftstore_result {
    int code; /* 0, STORAGE_ERR_REGION (see err), STORAGE_ERR_CLOSED, ... */
    struct storage_error err;
    struct storage_reader *reader;
};
typedef void (*raftstore_cb)(void *arg, struct raftstore_result *res);

/*
 * raftstore_write proposes `mods` as one Raft command of the region named by
 * ctx (0 region id: the region containing the first key). cb runs once, on
 * the store loop thread, after the command applies or fails. The
 * modifications are copied.
 */
void raftstore_write(struct raftstore *rs, const struct storage_ctx *ctx,
                     const struct storage_modify *mods, size_t n, raftstore_cb cb, void *arg);

/* raftstore_read confirms leadership through the leader lease or ReadIndex on the store loop
 * thread, waits for the apply to catch up, and hands cb a reader over the region's data there.
 * Callers try raftstore_read_local first. */
void raftstore_read(struct raftstore *rs, const struct storage_ctx *ctx, raftstore_cb cb,
                    void *arg);

/* raftstore_read_local answers a read at once, on the caller's thread, when this store leads the
 * region under a lease with time to spare (local_read.h) and the request matches its epoch and
 * range: 1 then (cb has run), else 0 (the caller goes on with raftstore_read, which does not try
 * again). */
int raftstore_read_local(struct raftstore *rs, const struct storage_ctx *ctx, raftstore_cb cb,
                         void *arg);

/*
 * raftstore_split asks the leader of region_id to split it at user key
 * split_key (copied): the region keeps [start, split_key) and the new region
 * new_region_id gets [split_key, end) with one new peer id per peer of the
 * region, in the region's peer order (from the scheduler's AskSplit). The
 * request is refused (EpochNotMatch) when the region's version is no longer
 * epoch_version (0: not checked), and KeyNotInRegion when the key is not
 * strictly inside it. cb (may be NULL) runs on the store loop once the split
 * applied or failed.
 */
void raftstore_split(struct raftstore *rs, uint64_t region_id, uint64_t epoch_version,
                     const void *split_key, size_t split_key_len, uint64_t new_region_id,
                     const uint64_t *new_peer_ids, size_t n_new_peer_ids, raftstore_cb cb,
                     void *arg);

/*
 * Region look-ups from any thread, over the store's range index: a copy into
 * *out (owned: region_free). raftstore_region by id; raftstore_region_of_key
 * the region holding a user key; raftstore_region_next the region starting
 * where region_id ends. 0, or -1 when there is none (or on OOM).
 */
int raftstore_region(struct raftstore *rs, uint64_t region_id, struct region *out);
int raftstore_region_of_key(struct raftstore *rs, const void *key, size_t len, struct region *out);
int raftstore_region_next(struct raftstore *rs, uint64_t region_id, struct region *out);

/* raftstore_step delivers a message from another store (copied). */
void raftstore_step(struct raftstore *rs, const RaftServerpb__RaftMessage *msg);

/* Scheduler operators for a region this store leads. */
void raftstore_change_peer(struct raftstore *rs, uint64_t region_id, int remove,
                           struct region_peer peer);
void raftstore_transfer_leader(struct raftstore *rs, uint64_t region_id, uint64_t to_peer_id);

/* The snapshots in flight on this store (StoreStats' sending_snap_count, receiving_snap_count,
 * applying_snap_count); any thread. raftstore_snapshot_count_add moves one of them by delta
 * (which: 0 sending, 1 receiving); the transport and the Snapshot service call it. */
void raftstore_snapshot_counts(struct raftstore *rs, uint32_t *sending, uint32_t *receiving,
                               uint32_t *applying);
void raftstore_snapshot_count_add(struct raftstore *rs, int which, int delta);

/* A snapshot for (region_id, to store) could not be delivered. */
void raftstore_report_snapshot(struct raftstore *rs, uint64_t region_id, uint64_t to_peer_id,
                               int failed);
void raftstore_report_unreachable(struct raftstore *rs, uint64_t region_id, uint64_t to_peer_id);

/* ---- consistency check (consistency.c) ---- */

/*
 * raftstore_check_consistency asks this store's peer of region_id, which must
 * lead it, to propose ComputeHash (TiKV's consistency check): where that entry
 * applies, every replica hashes the region's data in every CF off the store
 * loop, and the leader then proposes VerifyHash with its hash so that each
 * replica compares. cb runs once on the store loop thread: res->code 0 once
 * the entry applied here (index: its log index), else a region error
 * (NotLeader, RegionNotFound, Undetermined) or STORAGE_ERR_CLOSED, index 0.
 * What each replica found shows in raftstore_peer_info.consistency.
 */
typedef void (*raftstore_check_cb)(void *arg, const struct raftstore_result *res, uint64_t index);
void raftstore_check_consistency(struct raftstore *rs, uint64_t region_id, raftstore_check_cb cb,
                                 void *arg);

enum raftstore_consistency_state {
    RAFTSTORE_CONSISTENCY_NONE = 0,   /* no check seen since start (or since a snapshot) */
    RAFTSTORE_CONSISTENCY_COMPUTING,  /* ComputeHash applied at index; the worker hashes */
    RAFTSTORE_CONSISTENCY_COMPUTED,   /* hash is this replica's at index; not compared yet */
    RAFTSTORE_CONSISTENCY_CONSISTENT, /* the leader's hash for index equals it */
    RAFTSTORE_CONSISTENCY_MISMATCH,   /* it differs: logged, counted, kept in mismatch_index */
};

/* One replica's latest consistency check. */
struct raftstore_consistency {
    uint64_t index; /* the ComputeHash entry's index (0: none) */
    enum raftstore_consistency_state state;
    uint64_t hash;           /* this replica's hash at index (from COMPUTED on) */
    uint64_t leader_hash;    /* the leader's, once compared */
    uint64_t mismatch_index; /* newest index found inconsistent since start (0: never) */
    uint64_t mismatches;     /* checks that found it inconsistent since start */
};

/* ---- introspection (any thread; a consistent copy) ---- */

struct raftstore_peer_info {
    uint64_t region_id;
    uint64_t peer_id;
    uint64_t leader_peer_id;
    int is_leader;
    uint64_t term;
    uint64_t applied_index;
    uint64_t first_index; /* truncated index + 1 */
    uint64_t last_index;
    uint64_t conf_ver, version;
    size_t n_peers;
    /* The region's size and user keys as its last split check measured them
     * plus what apply added since; known says whether it has been measured
     * here (leaders measure). */
    int approximate_known;
    uint64_t approximate_size_bytes, approximate_keys;
    uint64_t lease_reads; /* reads this peer served by its leader lease, since it started */
    int hibernated;       /* asleep: not ticked (hibernate.c) */
    struct raftstore_consistency consistency;
};

/* raftstore_peers fills up to `cap` infos; returns how many regions there are. */
size_t raftstore_peers(struct raftstore *rs, struct raftstore_peer_info *out, size_t cap);
/* raftstore_peer_info_of copies the info of this store's peer of region_id; 0, or -1 if it has
 * none (as of the loop's last refresh, at most a tick old). */
int raftstore_peer_info_of(struct raftstore *rs, uint64_t region_id,
                           struct raftstore_peer_info *out);

uint64_t raftstore_store_id(const struct raftstore *rs);

#endif
