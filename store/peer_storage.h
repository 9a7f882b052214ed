/* peer_storage.h — one peer's Raft log, hard state, apply state and region meta on the two RocksDB
 * instances. */
#ifndef TINYKV_STORE_PEER_STORAGE_H
#define TINYKV_STORE_PEER_STORAGE_H

/*
 * What it owns: the in-memory copy of a peer's persisted Raft state
 * (RaftLocalState in the raft DB; RaftApplyState and RegionLocalState in the
 * kv DB's meta CF) and the raft_storage view the Raft library reads through.
 * Who calls it: the store loop (one thread) only: it persists each Ready
 * through the *_to_batch functions, and peers read the state directly.
 * What it must never do: write user data (that is apply's job) or be used
 * from two threads.
 *
 * A region's log starts at STORE_INIT_LOG_INDEX: the bootstrap region and
 * every split-off region begin with a truncated state there, so a peer added
 * later always starts from a snapshot.
 */

#include <rocksdb/c.h>
#include <stdint.h>

#include "raft/raft.h"
#include "store/engine.h"
#include "store/region.h"

#define STORE_INIT_LOG_INDEX 5
#define STORE_INIT_LOG_TERM 5

enum peer_snap_state {
    PEER_SNAP_IDLE = 0,
    PEER_SNAP_GENERATING, /* a worker is writing it; raft hears "temporarily unavailable" */
    PEER_SNAP_READY,      /* `snap` holds the newest generated snapshot */
};

struct peer_storage {
    uint64_t region_id;
    uint64_t store_id;
    struct engine *kv;
    struct engine *raft;
    struct region region; /* as of the applied index */
    int tombstone;
    struct raft_hard_state hs;
    uint64_t last_index, last_term;
    uint64_t applied_index, applied_term;
    uint64_t truncated_index, truncated_term;
    enum peer_snap_state snap_state;
    int snap_requested;        /* raft asked; the store loop starts a generation */
    struct raft_snapshot snap; /* PEER_SNAP_READY: owned */
    /* The region epoch `snap` (or the generation under way) was taken at: a snapshot from
     * before a split or a membership change is never sent, it is generated again. */
    uint64_t snap_version, snap_conf_ver;
    char errmsg[256];
};

/*
 * peer_storage_load loads region_id's state (a restart). peer_storage_init_new
 * sets up a peer that has no state yet: `region` with peers for the
 * bootstrap region (log at STORE_INIT_LOG_INDEX), or a region with only an id
 * and no peers for a peer created by a message (empty log, waits for a
 * snapshot). Both return 0 or STORAGE_ERR_*.
 */
int peer_storage_load(struct peer_storage *ps, struct engine *kv, struct engine *raft,
                      uint64_t store_id, uint64_t region_id);
int peer_storage_init_new(struct peer_storage *ps, struct engine *kv, struct engine *raft,
                          uint64_t store_id, const struct region *region);
void peer_storage_close(struct peer_storage *ps);

/* Whether the peer has a region with peers (a bootstrap region, or after its first snapshot). */
int peer_storage_initialized(const struct peer_storage *ps);

/* The raft_storage view: valid while ps lives. */
struct raft_storage peer_storage_raft_storage(struct peer_storage *ps);

/* --- persisting a Ready (store loop) --- */

/* Adds entries to the raft batch, dropping any old conflicting tail. */
int peer_storage_append_to_batch(struct peer_storage *ps, const struct raft_entry *ents, size_t n,
                                 rocksdb_writebatch_t *raft_wb);
/* Adds the RaftLocalState (hard state, last index/term) to the raft batch. */
void peer_storage_raft_state_to_batch(struct peer_storage *ps, rocksdb_writebatch_t *raft_wb);
/* Adds the RaftApplyState to a kv batch. */
void peer_storage_apply_state_to_batch(struct peer_storage *ps, rocksdb_writebatch_t *kv_wb);
/* Adds a RegionLocalState for `region` (NULL: ps->region) to a kv batch. */
void peer_storage_region_state_to_batch(struct peer_storage *ps, const struct region *region,
                                        int tombstone, rocksdb_writebatch_t *kv_wb);

/*
 * peer_storage_apply_snapshot_meta resets the log to the snapshot (truncated
 * at its index), takes its region, and adds the resulting raft, apply and
 * region state to the batches; the snapshot's data is ingested separately
 * (snapshot.c). `region` is the snapshot's region (copied).
 */
int peer_storage_apply_snapshot_meta(struct peer_storage *ps, const struct raft_snapshot *snap,
                                     const struct region *region, rocksdb_writebatch_t *kv_wb,
                                     rocksdb_writebatch_t *raft_wb);

/* Removes every trace of the peer's log and raft state (raft DB) — destroy. */
void peer_storage_clear_raft(struct peer_storage *ps, rocksdb_writebatch_t *raft_wb);

#endif
