/* raftstore_internal.h — the raftstore's peers, mailbox and loop state, shared by its files only.
 */
#ifndef TINYKV_STORE_RAFTSTORE_INTERNAL_H
#define TINYKV_STORE_RAFTSTORE_INTERNAL_H

#include <pthread.h>

#include "raft/raft.h"
#include "raft_cmdpb.pb-c.h"
#include "store/peer_storage.h"
#include "store/raftstore.h"
#include "store/store_meta.h"

enum mail_kind {
    MAIL_RAFT,  /* a RaftMessage from another store */
    MAIL_WRITE, /* a data command */
    MAIL_READ,  /* a linearizable read */
    MAIL_CHANGE_PEER,
    MAIL_TRANSFER_LEADER,
    MAIL_SNAP_GENERATED, /* the snapshot worker finished generating */
    MAIL_SNAP_APPLIED,   /* the snapshot worker finished writing a received snapshot's data */
    MAIL_SNAP_STATUS,
    MAIL_UNREACHABLE,
    MAIL_SPLIT,             /* split a region this store leads at split_key with the given ids */
    MAIL_SPLIT_CHECKED,     /* the split-check worker measured a region */
    MAIL_CHECK_CONSISTENCY, /* the leader proposes ComputeHash (consistency.c) */
    MAIL_HASH_COMPUTED,     /* the consistency worker hashed a region at hash_index */
};

/* One request posted to the store loop. Owned by the mailbox until handled. */
struct mail {
    enum mail_kind kind;
    struct mail *next;
    uint64_t region_id;
    struct storage_ctx ctx;
    RaftServerpb__RaftMessage *raft_msg; /* MAIL_RAFT, owned */
    RaftCmdpb__RaftCmdRequest *cmd;      /* MAIL_WRITE, owned (built by us) */
    raftstore_cb cb;
    void *cb_arg;
    struct region_peer peer;   /* MAIL_CHANGE_PEER, MAIL_SNAP_STATUS, MAIL_UNREACHABLE */
    int flag;                  /* remove / failed */
    uint64_t to_peer_id;       /* MAIL_TRANSFER_LEADER */
    struct raft_snapshot snap; /* MAIL_SNAP_GENERATED, owned */
    /* MAIL_READ: the touched keys of ctx, copied (ctx.keys points here). */
    struct storage_key *keys;
    uint8_t *keys_buf;
    /* MAIL_SPLIT_CHECKED: the region's size and keys at epoch_version, split_key if any */
    uint64_t size_bytes, n_keys;
    /* MAIL_SPLIT */
    uint64_t epoch_version;
    uint8_t *split_key;
    size_t split_key_len;
    uint64_t new_region_id;
    uint64_t *new_peer_ids;
    size_t n_new_peer_ids;
    /* MAIL_HASH_COMPUTED */
    uint64_t hash_index, hash;
};

/* A proposed command waiting for its entry to apply. */
struct proposal {
    uint64_t index;
    uint64_t term;
    raftstore_cb cb;
    void *cb_arg;
    struct proposal *next;
};

/* A read waiting for ReadIndex confirmation (index 0) and then for apply. */
struct pending_read {
    uint64_t id;      /* the ReadIndex context */
    uint64_t index;   /* 0 until confirmed */
    uint64_t version; /* the region's version when the read was accepted */
    raftstore_cb cb;
    void *cb_arg;
    struct pending_read *next;
};

/* A region with more replicas than this never hibernates. */
#define HIBERNATE_MAX_PEERS 7

struct peer {
    uint64_t peer_id;
    uint64_t region_id;
    struct raftstore *rs;
    struct peer_storage ps;
    struct raft_rawnode *rn;
    uint64_t leader_id;
    int is_leader;
    struct proposal *proposals, *proposals_tail; /* in index order; one entry may have several */
    /* Writes accepted this round, proposed together as one entry when the round's mail is done
     * (peer_flush_writes) or before any other proposal of this peer, whichever comes first:
     * one log entry, one append and one apply for all of them. batch_cmd owns their requests. */
    RaftCmdpb__RaftCmdRequest *batch_cmd;
    size_t batch_cap, batch_bytes;
    uint64_t batch_term; /* the term the batch was gathered in */
    struct batch_cb {
        raftstore_cb cb;
        void *arg;
    } * batch_cbs;
    size_t n_batch_cbs, cap_batch_cbs;
    struct pending_read *reads, *reads_tail; /* in request order */
    uint64_t batch_read_id; /* ReadIndex issued for this mailbox drain; 0 after it */
    /* Leader lease (peer.c): reads are served without a ReadIndex round until lease_until_ms
     * (monotonic), while still leader in lease_term with lease_conf_ver. It is set from the
     * probe: the newest ReadIndex issued while none was outstanding, with when it was issued. */
    uint64_t lease_until_ms, lease_term, lease_conf_ver;
    uint64_t probe_id, probe_ms, probe_term, probe_conf_ver;
    uint64_t lease_reads;       /* reads served by the lease on the loop, for introspection */
    uint64_t local_lease_reads; /* ... and off it (local_read.c), as of the last publish */
    int pending_remove;         /* removed from the region: destroy after this ready */
    int ticks_since_heartbeat;
    uint64_t last_compact_index; /* raft log deleted below this */
    uint64_t compact_proposed;   /* newest CompactLog index proposed */
    /* Senders learned from incoming messages, so a peer that does not know
     * its region yet (waiting for a snapshot) can still answer them. */
    /* Size accounting for the split check: what apply added since the last
     * scan (TiKV's size-diff hint), and that scan's figures. */
    uint64_t size_diff_hint, keys_diff_hint;
    uint64_t approx_size, approx_keys;
    int approx_known;
    int split_checking; /* a scan is queued or running */
    int split_wanted;   /* the last scan asked for a split that has not happened yet */
    int active;         /* in rs->active */
    int ticks_since_split_check;
    struct region_peer peer_cache[8];
    size_t n_peer_cache;
    /* A Ready carrying a snapshot whose data the worker is writing: held,
     * not persisted or advanced, until MAIL_SNAP_APPLIED. */
    int applying_snapshot;
    struct raft_ready held;
    struct region held_region;
    /* The latest consistency check here (consistency.c) and the leader's hash from the
     * newest VerifyHash applied, kept until this replica's own hash for that index is known. */
    struct raftstore_consistency consistency;
    uint64_t verify_index, verify_hash;
    /* Hibernation (hibernate.c; loop thread). An asleep peer is not ticked and sends nothing;
     * any mail for its region, or a Raft message that gives it work, wakes it. */
    int asleep;
    size_t awake_slot; /* its place in rs->awake while awake */
    int idle_ticks;    /* a leader's ticks in a row with nothing to do */
    /* The other stores of the region when it fell asleep: their silence wakes it. */
    uint64_t sleep_stores[HIBERNATE_MAX_PEERS];
    size_t n_sleep_stores;
    size_t info_slot; /* its entry in rs->info (refresh_info) */
    struct peer *next;
};

/* A store that peers asleep here share a region with (hibernate.c): it is told this store is
 * alive, and its own silence for an election timeout wakes them. */
struct hibernate_store {
    uint64_t store_id;
    uint64_t last_heard_ms; /* any message from it, monotonic */
    size_t n_asleep;        /* asleep peers here with a replica there */
};

struct raftstore {
    struct raftstore_config cfg;
    struct peer *peers;  /* owned by the loop thread */
    struct peer **by_id; /* the same peers sorted by region id (loop thread) */
    size_t n_by_id, cap_by_id;
    /* Peers that may have work this round (a mail, a tick, a Ready left):
     * the loop looks at these only, so an idle region costs its tick. */
    struct peer **active;
    size_t n_active, cap_active;
    int all_active; /* the list could not grow: look at every peer */
    /* Peers not hibernating (hibernate.c): only these are ticked. */
    struct peer **awake;
    size_t n_awake, cap_awake;
    struct hibernate_store *hib_stores; /* stores asleep peers share regions with */
    size_t n_hib_stores, cap_hib_stores;
    int ticks_since_alive;   /* since this store last told them it is alive */
    size_t idle_report_next; /* by_id position of the next asleep leader's scheduler report */
    int info_dirty;          /* a peer came, went or changed role: refresh `info` */
    struct store_meta meta;  /* initialized regions, for the loop and the services */
    /* Tombstoned regions: (id, conf_ver) so stale messages do not recreate them. */
    struct tombstone {
        uint64_t region_id;
        uint64_t conf_ver;
    } * tombstones;
    size_t n_tombstones;

    pthread_t loop_thread;
    pthread_mutex_t mu; /* guards the mailbox, stopping and `info` */
    pthread_cond_t cond;
    struct mail *mail_head, *mail_tail;
    int stopping;
    uint64_t next_read_id; /* loop thread only */

    /* Snapshot worker: one job at a time per request. */
    pthread_t snap_thread;
    pthread_cond_t snap_cond;
    struct snap_job *snap_jobs; /* guarded by mu */
    /* Snapshots in flight, for the store heartbeat: being sent (transport.c), received
     * (raft_service.c), waiting for or under apply (snapshot.c). Atomics, any thread. */
    _Atomic uint32_t snaps_sending, snaps_receiving, snaps_applying;

    /* Raft-log GC worker (raftlog_gc.c): deletes compacted log off the loop. */
    pthread_t gc_thread;
    pthread_cond_t gc_cond;
    struct raftlog_gc_task *gc_tasks; /* guarded by mu */

    /* Split-check worker (split_check.c). */
    pthread_t split_thread;
    pthread_cond_t split_cond;
    struct split_check_job *split_jobs; /* guarded by mu */

    /* Consistency-hash worker (consistency.c). */
    pthread_t hash_thread;
    pthread_cond_t hash_cond;
    struct consistency_job *hash_jobs; /* guarded by mu */

    /* Introspection copy refreshed by the loop after each round (guarded by mu). */
    struct raftstore_peer_info *info;
    size_t n_info;

    /* Regions readable by lease on the caller's thread (local_read.h; its own lock). */
    struct local_reader *local_reads;
};

/* A snapshot to build off the loop: the region and a RocksDB snapshot taken
 * at applied index `index` of term `term`. */
struct snap_job {
    int apply; /* 0: generate from db_snap; 1: write `snap`'s data for `region` */
    uint64_t region_id;
    uint64_t index, term;
    struct region region;
    const rocksdb_snapshot_t *db_snap; /* generate */
    const struct raft_snapshot *snap;  /* apply: borrowed from the peer's held Ready */
    struct snap_job *next;
};

/* raftstore.c */
void raftstore_post(struct raftstore *rs, struct mail *m);
struct peer *raftstore_find_peer(struct raftstore *rs, uint64_t region_id);
/* Marks p as having work this round (loop thread). */
void raftstore_touch(struct raftstore *rs, struct peer *p);
/* Adds a new peer to the loop's list and id index (and its region to the
 * meta when initialized); -1 on OOM or when its range overlaps another region. */
int raftstore_add_peer(struct raftstore *rs, struct peer *p);
void raftstore_send(struct raftstore *rs, struct peer *p, const struct raft_message *m);
/* cmd_resp.c: run a request's callback with its outcome (reader owned by it). */
void raftstore_answer(raftstore_cb cb, void *arg, int code, const struct storage_error *err,
                      struct storage_reader *reader);
void raftstore_answer_region_error(raftstore_cb cb, void *arg, enum storage_region_error_kind kind,
                                   uint64_t region_id, uint64_t leader_peer_id,
                                   uint64_t leader_store_id, const char *msg);

/* A finished command whose answer waits for the kv batch to be written. */
struct applied_cb {
    raftstore_cb cb;
    void *arg;
    int code;
    struct storage_error err;
};

/* What applying one Ready's committed entries gathers before its kv write. */
struct apply_ctx {
    rocksdb_writebatch_t *kv_wb;
    struct applied_cb *done;
    size_t n_done, cap_done;
    uint64_t compact_to;        /* delete raft log below this after the write */
    int sync;                   /* an admin command (split, conf change) applied: sync the batch */
    int region_changed;         /* membership changed: refresh the store's range index */
    struct region *new_regions; /* regions split off, to create peers for after the write */
    size_t n_new_regions;
};

void apply_add_done(struct apply_ctx *ac, raftstore_cb cb, void *arg, int code,
                    const struct storage_error *err);

/* apply.c */
/* Applies rd's committed entries (those past the applied index) in one kv
 * batch — synced when it holds an admin command — then creates split-off
 * peers, answers the proposals and deletes compacted log. */
void apply_committed(struct peer *p, const struct raft_ready *rd);

/* raftlog_gc.c */
/* Queues the deletion of region_id's log entries [from, to) (already
 * compacted: the apply state saying so is durable). */
void raftlog_gc_schedule(struct raftstore *rs, uint64_t region_id, uint64_t from, uint64_t to);
void *raftlog_gc_worker(void *arg);
void raftlog_gc_free_tasks(struct raftstore *rs);

/* split_check.c */
/* Queues a scan of the leader p's region (a RocksDB snapshot taken now). */
void split_check_schedule(struct raftstore *rs, struct peer *p);
/* Whether p's region has grown enough since its last scan to look again. */
int split_check_due(const struct peer *p);
void *split_check_worker(void *arg);
/* Frees jobs never run (shutdown). */
void split_check_free_jobs(struct raftstore *rs);

/* split.c */
/* The leader proposes a Split admin command from a MAIL_SPLIT. */
void split_propose(struct peer *p, struct mail *m);
/* Applies a committed Split into ac (region states, the new region's
 * initial apply state); fills *err and returns -1 if it is stale or bad. */
int split_apply(struct peer *p, const RaftCmdpb__RaftCmdRequest *cmd, struct apply_ctx *ac,
                struct storage_error *err);
/* After the split's batch is durable: the new regions' peers start here. */
void split_create_peers(struct peer *parent, struct apply_ctx *ac);

/* consistency.c */
/* MAIL_CHECK_CONSISTENCY: p, if it leads, proposes ComputeHash. */
void consistency_propose(struct peer *p, struct mail *m);
/* A committed ComputeHash at index: writes what ac gathered so far (the hash must see
 * exactly the entries up to index) and queues the hash of the region as of now. */
void consistency_apply_compute(struct peer *p, const RaftCmdpb__AdminRequest *req, uint64_t index,
                               struct apply_ctx *ac);
/* A committed VerifyHash: compares with this replica's hash when it is for the same index. */
void consistency_apply_verify(struct peer *p, const RaftCmdpb__AdminRequest *req);
/* MAIL_HASH_COMPUTED: records the hash; a leader proposes VerifyHash with it. */
void consistency_hash_computed(struct peer *p, const struct mail *m);
void *consistency_worker(void *arg);
/* Frees jobs never run (shutdown). */
void consistency_free_jobs(struct raftstore *rs);

/* peer.c */
/* peer_create starts a peer on ps (owned by the peer from here, closed on failure). boot_lease:
 * it grants no vote for an election timeout (raft_config.boot_lease), for a peer that may have
 * promised a leader lease before a restart; a peer a split creates has promised none of its
 * own, and it must vote for the parent leader's store at once (its new peer campaigns). */
int peer_create(struct raftstore *rs, uint64_t peer_id, struct peer_storage *ps, int boot_lease,
                struct peer **out, char *errbuf, size_t errbuf_len);
void peer_free(struct peer *p, int code);
/* Takes m's write (its command; m->cmd is NULL after) into this round's batch, or answers it. */
void peer_propose_write(struct peer *p, struct mail *m);
/* Proposes the round's batched writes as one entry (nothing if there are none). */
void peer_flush_writes(struct peer *p);
/* Writes batched into one entry at most (count, and bytes of keys and values): a larger
 * write goes in an entry of its own. */
#define PEER_BATCH_MAX_WRITES 256
#define PEER_BATCH_MAX_BYTES (256 * 1024)
/* Proposes an admin command (built by the caller, borrowed); cb answers it. */
void peer_propose_admin(struct peer *p, RaftCmdpb__RaftCmdRequest *cmd, raftstore_cb cb, void *arg);
void peer_read(struct peer *p, struct mail *m);
/* Offers p's region for lease reads off the loop (local_read.h) while its lease allows, and
 * withdraws it otherwise; the loop calls it at the end of each round p was in. */
void peer_publish_local_read(struct peer *p);
void peer_change_peer(struct peer *p, int remove, struct region_peer target);
void peer_transfer_leader(struct peer *p, uint64_t to_peer_id);
void peer_step(struct peer *p, const RaftServerpb__RaftMessage *msg);
void peer_tick(struct peer *p);
/* A split check's figures arrived (MAIL_SPLIT_CHECKED). */
void peer_split_checked(struct peer *p, struct mail *m);
/* Handles one Ready: persists into the batches (entries, hard state,
 * snapshot); the caller writes the raft batch synced, then calls
 * peer_after_persist to send, apply and advance. */
int peer_has_ready(struct peer *p);
int peer_collect_ready(struct peer *p, struct raft_ready *rd, rocksdb_writebatch_t *raft_wb);
/* The worker wrote a held snapshot's data: persist the rest of that Ready and go on. */
void peer_snapshot_applied(struct peer *p);
void peer_after_persist(struct peer *p, struct raft_ready *rd);
/* A leader's appends of `rd`, sent before its raft-DB write (marked sent in rd). */
void peer_send_before_persist(struct peer *p, struct raft_ready *rd);
/* A leader reports its region to the scheduler now. */
void peer_region_heartbeat(struct peer *p);
/* The peer's region leader peer (store id), from the region and Raft's lead. */
uint64_t peer_leader_store(const struct peer *p);

/* hibernate.c */
/* A new peer starts awake; a destroyed one leaves every list. -1 on OOM (track). */
int hibernate_track(struct raftstore *rs, struct peer *p);
void hibernate_untrack(struct raftstore *rs, struct peer *p);
/* Wakes p if it sleeps: it is ticked again from the next tick (and touched). */
void hibernate_wake(struct raftstore *rs, struct peer *p);
/* Called before p's tick: an idle leader puts its region to sleep (tells its followers,
 * stops ticking). 1 when p sleeps now. */
int hibernate_maybe_sleep(struct peer *p);
/* A Raft message from another store, before peer_step. 1 when it was a hibernation message
 * (handled here, not for Raft); 0: step it, and then call hibernate_after_step. */
int hibernate_on_message(struct raftstore *rs, struct peer *p,
                         const RaftServerpb__RaftMessage *msg);
void hibernate_after_step(struct raftstore *rs, struct peer *p);
/* Any message from store_id (its liveness); 1 when msg was only that. */
int hibernate_heard_from(struct raftstore *rs, const RaftServerpb__RaftMessage *msg);
/* Once per tick: tells the stores asleep peers share regions with that this one is alive,
 * wakes the peers whose other stores went silent, reports a few asleep leaders to the
 * scheduler (each once per idle_region_heartbeat_ticks). */
void hibernate_store_tick(struct raftstore *rs);
void hibernate_close(struct raftstore *rs);

/* snapshot.c */
void snapshot_schedule(struct raftstore *rs, struct peer *p);
/* Hands the data of the snapshot in p->held to the worker. */
void snapshot_schedule_apply(struct raftstore *rs, struct peer *p);
void *snapshot_worker(void *arg);
/* Writes the snapshot's data (RaftSnapshotData) into the kv DB for region r,
 * replacing what the range held. Returns 0 or STORAGE_ERR_*. */
int snapshot_apply_data(struct raftstore *rs, const struct region *r,
                        const struct raft_snapshot *snap);
/* Creates rs->cfg.snap_dir and removes every snapshot file left in it (raftstore_new, before
 * any thread runs). 0 or STORAGE_ERR_IO with errbuf set. */
int snapshot_dir_init(struct raftstore *rs, char *errbuf, size_t errbuf_len);
/* The size of the file a snapshot's data (its manifest) names; 0 when it names none. */
uint64_t snapshot_file_bytes(const uint8_t *data, size_t len);
/* Decodes the region carried in a snapshot's data; 0 or -1. */
int snapshot_region(const struct raft_snapshot *snap, struct region *out);
/* Deletes the data of range [start, end) in every data CF. */
void snapshot_clear_range(struct engine *kv, const struct region *r);

#endif
