/* pd_internal.h — structures and helpers shared by the files of pd/ (never included elsewhere). */
#ifndef TINYKV_PD_INTERNAL_H
#define TINYKV_PD_INTERNAL_H

#include "pd/pd.h"

#include <pthread.h>

/* ---- keys (region.c) ---- */

/* pd_key_cmp orders raw keys bytewise, shorter first on a common prefix. */
int pd_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
/* pd_end_key_cmp compares end keys where empty means +infinity. */
int pd_end_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
/* pd_region_contains_key: start <= key < end (empty end unbounded). */
bool pd_region_contains_key(const struct pd_region *r, const uint8_t *key, size_t len);
/* pd_regions_overlap: the two key ranges share at least one key. */
bool pd_regions_overlap(const struct pd_region *a, const struct pd_region *b);
/* pd_region_meta_equal: same keys, epoch and peer list (heartbeat-only fields ignored). */
bool pd_region_meta_equal(const struct pd_region *a, const struct pd_region *b);
bool pd_region_peer_is_pending(const struct pd_region *r, uint64_t peer_id);
/* pd_region_new_copy returns a heap copy of src, or NULL when out of memory. */
struct pd_region *pd_region_new_copy(const struct pd_region *src);
void pd_region_free(struct pd_region *r);

/* ---- region tree (region_tree.c): regions ordered by start key, plus an id index ---- */

struct pd_region_tree {
    struct pd_region **by_key; /* sorted by start key; owns the regions */
    struct pd_region **by_id;  /* the same pointers sorted by id */
    size_t count;
    size_t cap;
};

void pd_region_tree_init(struct pd_region_tree *t);
/* pd_region_tree_close frees every region in the tree. */
void pd_region_tree_close(struct pd_region_tree *t);
struct pd_region *pd_region_tree_find_by_id(const struct pd_region_tree *t, uint64_t id);
/* find_by_key: the region containing key, or NULL (a hole). */
struct pd_region *pd_region_tree_find_by_key(const struct pd_region_tree *t, const uint8_t *key,
                                             size_t len);
/* index_at_or_before: index of the last region whose start key <= key; count if none. */
size_t pd_region_tree_index_at_or_before(const struct pd_region_tree *t, const uint8_t *key,
                                         size_t len);
/* first_overlap: index of the first region overlapping [r.start, r.end), count if none;
 * the overlapping ones are consecutive from there. */
size_t pd_region_tree_first_overlap(const struct pd_region_tree *t, const struct pd_region *r);
/* reserve makes room for one more region, so the next insert cannot fail. PD_ERR_NOMEM. */
int pd_region_tree_reserve(struct pd_region_tree *t);
/* insert takes ownership of r (heap, from pd_region_new_copy); the caller has removed overlaps
 * and the id is not present. PD_ERR_NOMEM leaves r owned by the caller. */
int pd_region_tree_insert(struct pd_region_tree *t, struct pd_region *r);
/* remove unlinks r (does not free it). */
void pd_region_tree_remove(struct pd_region_tree *t, struct pd_region *r);
/* replace puts by (same id and start key as old, heap, owned by the tree from now on) where old
 * is, in both orders, without moving the others; old is unlinked, not freed. */
void pd_region_tree_replace(struct pd_region_tree *t, struct pd_region *old, struct pd_region *by);

/* ---- persistence (meta_store.c): RocksDB, or nothing when opened without a directory ---- */

struct pd_meta_store;
struct pd_meta_batch;

int pd_meta_store_open(const char *dir, struct pd_meta_store **out, char *errmsg,
                       size_t errmsg_len);
void pd_meta_store_close(struct pd_meta_store *m);
/* get: *val is malloc'ed (caller frees). PD_ERR_NOT_FOUND when absent. */
int pd_meta_store_get(struct pd_meta_store *m, const char *key, char **val, size_t *len,
                      char *errmsg, size_t errmsg_len);
int pd_meta_store_put(struct pd_meta_store *m, const char *key, const void *val, size_t len,
                      bool sync, char *errmsg, size_t errmsg_len);
/* scan calls fn for every key starting with prefix, in key order; fn's non-zero stops and is
 * returned. Pointers passed to fn are valid during the call only. */
int pd_meta_store_scan(struct pd_meta_store *m, const char *prefix,
                       int (*fn)(void *ctx, const char *key, size_t klen, const char *val,
                                 size_t vlen),
                       void *ctx, char *errmsg, size_t errmsg_len);
/* pd_meta_batch_new: a write batch for m (empty and inert when m is NULL); NULL if out of memory.
 */
struct pd_meta_batch *pd_meta_batch_new(struct pd_meta_store *m);
void pd_meta_batch_free(struct pd_meta_batch *b);
void pd_meta_batch_put(struct pd_meta_batch *b, const char *key, const void *val, size_t len);
void pd_meta_batch_delete(struct pd_meta_batch *b, const char *key);
int pd_meta_batch_write(struct pd_meta_store *m, struct pd_meta_batch *b, bool sync, char *errmsg,
                        size_t errmsg_len);

/* Keys in the meta store. */
#define PD_META_KEY_CLUSTER_ID "pd/cluster_id"
#define PD_META_KEY_BOOTSTRAPPED "pd/bootstrapped"
#define PD_META_KEY_ALLOC_ID "pd/alloc_id"
#define PD_META_KEY_TSO "pd/tso_window"
#define PD_META_KEY_CONFIG "pd/config"
#define PD_META_KEY_SCHEDULERS "pd/schedulers"
#define PD_META_KEY_GC_SAFE_POINT "pd/gc_safe_point"
#define PD_META_PREFIX_STORE "pd/store/"
#define PD_META_PREFIX_REGION "pd/region/"
#define PD_META_KEY_BYTES 64
void pd_meta_key_store(char *out, uint64_t id);
void pd_meta_key_region(char *out, uint64_t id);

/* ---- binary codec (codec.c): see the format comment there ---- */

/* Encoders return a malloc'ed buffer in *out (*len bytes), PD_ERR_NOMEM. */
int pd_codec_encode_u64(uint64_t v, char **out, size_t *len);
int pd_codec_decode_u64(const char *buf, size_t len, uint64_t *v);
int pd_codec_encode_store(const struct pd_store *s, char **out, size_t *len);
int pd_codec_decode_store(const char *buf, size_t len, struct pd_store *s);
int pd_codec_encode_region(const struct pd_region *r, char **out, size_t *len);
/* decode_region fills an initialised r. PD_ERR_CORRUPT, PD_ERR_NOMEM. */
int pd_codec_decode_region(const char *buf, size_t len, struct pd_region *r);

/* ---- TSO (tso.c) and ID allocator (id_alloc.c); both guarded by the cluster mutex ---- */

struct pd_tso_state {
    uint64_t physical_ms;   /* physical part of the last timestamp handed out */
    uint64_t logical;       /* logical part of the last timestamp handed out */
    uint64_t window_end_ms; /* persisted: no timestamp at or above this physical time issued */
    uint64_t window_ms;
};

int pd_tso_load(struct pd_tso_state *t, struct pd_meta_store *m, uint64_t window_ms,
                uint64_t now_ms, char *errmsg, size_t errmsg_len);
int pd_tso_next(struct pd_tso_state *t, struct pd_meta_store *m, uint64_t now_ms, uint32_t count,
                uint64_t *ts, char *errmsg, size_t errmsg_len);
/* pd_tso_refresh pushes the persisted window ahead when less than half of it is left. */
int pd_tso_refresh(struct pd_tso_state *t, struct pd_meta_store *m, uint64_t now_ms, char *errmsg,
                   size_t errmsg_len);

struct pd_id_alloc {
    uint64_t next; /* the next id to hand out */
    uint64_t end;  /* persisted: ids below end may have been handed out */
    uint64_t batch;
};

int pd_id_alloc_load(struct pd_id_alloc *a, struct pd_meta_store *m, uint64_t batch, char *errmsg,
                     size_t errmsg_len);
int pd_id_alloc_next(struct pd_id_alloc *a, struct pd_meta_store *m, uint64_t *id, char *errmsg,
                     size_t errmsg_len);

/* ---- config (config.c) ---- */

int pd_config_validate(const struct pd_config *cfg, char *errmsg, size_t errmsg_len);
/* to_json: malloc'ed NUL-terminated JSON object text. */
char *pd_config_to_json(const struct pd_config *cfg);
/* apply_json: updates cfg with the fields present in the JSON object text; unknown fields and
 * bad values are PD_ERR_INVALID (cfg unchanged). */
int pd_config_apply_json(struct pd_config *cfg, const char *json, size_t len, char *errmsg,
                         size_t errmsg_len);

/* ---- the cluster (cluster.c) ---- */

struct pd_store_entry {
    struct pd_store store;
    struct pd_store_stats stats;
    uint64_t last_heartbeat_ms;
    uint64_t since_ms; /* when PD learnt of the store (added or loaded): down time counts from here
                          until the first heartbeat */
};

struct pd_cluster {
    pthread_mutex_t mu; /* guards every field below */
    struct pd_meta_store *meta;
    uint64_t (*now_ms)(void *ctx);
    void *clock_ctx;
    uint64_t cluster_id;
    bool bootstrapped;
    struct pd_store_entry *stores;
    size_t store_count;
    size_t store_cap;
    struct pd_region_tree tree;
    struct pd_operator *ops; /* unordered; ops[op_index[k].at] */
    size_t op_count;
    size_t op_cap;
    /* op_index: (region id, slot in ops) sorted by region id, op_count entries, op_cap room;
     * so finding a region's operator costs a binary search, not a scan. */
    struct pd_op_slot {
        uint64_t region_id;
        size_t at;
    } * op_index;
    size_t op_kind_count[PD_OP_KIND_SPLIT + 1]; /* running operators of each kind */
    uint64_t rng; /* xorshift state for random candidate picks; seeded at open */
    struct pd_op_record {
        struct pd_operator op;
        enum pd_operator_status status;
    } * op_history; /* ring of PD_OPERATOR_HISTORY ended operators, allocated at open */
    size_t op_history_next;
    size_t op_history_count;
    /* The keys of running split operators, one entry per such operator (freed with it). */
    struct pd_split_job {
        uint64_t region_id;
        struct pd_key *keys; /* ascending, distinct, each inside the region when asked */
        size_t count;
    } * splits;
    size_t split_count;
    size_t split_cap;
    bool sched_balance_leader;
    bool sched_balance_region;
    struct pd_config cfg;
    struct pd_tso_state tso;
    struct pd_id_alloc ids;
    uint64_t gc_safe_point;
    struct pd_metrics metrics;
    struct metrics *registry; /* borrowed from pd_options; set at open, then read-only */
    char errmsg[256];
};

/* Helpers for the scheduling files; all expect c->mu held. */
uint64_t pd_cluster_now_ms(struct pd_cluster *c);
/* pd_cluster_rand: the next pseudo-random number of the cluster's own generator. */
uint64_t pd_cluster_rand(struct pd_cluster *c);
/* pd_region_score_bytes: the size scheduling counts for r; a region under 1 MiB counts as 1 MiB, as
 * PD's EmptyRegionApproximateSize, so regions reporting no or tiny sizes weigh alike and spread. */
uint64_t pd_region_score_bytes(const struct pd_region *r);
struct pd_store_entry *pd_cluster_find_store(struct pd_cluster *c, uint64_t id);
/* pd_cluster_store_infos fills a malloc'ed array with every store's info (figures from the tree).
 */
int pd_cluster_store_infos(struct pd_cluster *c, struct pd_store_info **out, size_t *count);
/* pd_cluster_store_schedulable: Up, heartbeat recent and not down — may receive peers/leaders. */
bool pd_cluster_store_schedulable(const struct pd_store_info *s);
int pd_cluster_set_err(struct pd_cluster *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int pd_cluster_alloc_id_locked(struct pd_cluster *c, uint64_t *id);
int pd_cluster_save_schedulers(struct pd_cluster *c);
int pd_cluster_check_region(struct pd_cluster *c, const struct pd_region *r);
bool pd_cluster_store_has_regions(struct pd_cluster *c, uint64_t store_id);
int pd_cluster_set_store_state_locked(struct pd_cluster *c, uint64_t store_id,
                                      enum pd_store_state state, bool force);
/* pd_cluster_store_can_receive: schedulable, and below max-pending-peer-count peers catching up
 * and max-snapshot-count snapshots in each direction (PD's pending-peer and snapshot filters). */
bool pd_cluster_store_can_receive(const struct pd_store_info *s, const struct pd_config *cfg);
/* pd_cluster_best_store: the store able to receive (above) not holding r with the fewest
 * regions, then the least region size; NULL if none. */
struct pd_store_info *pd_cluster_best_store(struct pd_store_info *stores, size_t count,
                                            const struct pd_region *r, const struct pd_config *cfg);
struct pd_store_info *pd_cluster_info_of(struct pd_store_info *stores, size_t count, uint64_t id);
/* pd_cluster_note_move keeps a tick's store figures current after an operator moves a peer. */
void pd_cluster_note_move(struct pd_store_info *stores, size_t count, const struct pd_region *r,
                          uint64_t from_store, uint64_t to_store);

/* ---- operators (operator.c); c->mu held ---- */

struct pd_operator *pd_operator_find(struct pd_cluster *c, uint64_t region_id);
/* pd_operator_add copies op in and stamps its creation time. PD_ERR_EXISTS, PD_ERR_NOMEM. */
int pd_operator_add(struct pd_cluster *c, const struct pd_operator *op);
/* pd_operator_reserve makes room for n more operators and split jobs, so that the next n
 * pd_operator_add / pd_split_job_add calls cannot fail for memory. PD_ERR_NOMEM. */
int pd_operator_reserve(struct pd_cluster *c, size_t n);
/* pd_operator_remove ends the region's operator (if any), remembering how it ended; a split
 * operator's keys are freed. */
void pd_operator_remove(struct pd_cluster *c, uint64_t region_id, enum pd_operator_status status);
/* pd_operator_on_replaced ends the operator of old, which a heartbeat of the overlapping region
 * by replaces in the tree: a split operator whose region by's version has passed succeeded (the
 * split's other half reported first), any other is canceled. */
void pd_operator_on_replaced(struct pd_cluster *c, const struct pd_region *old,
                             const struct pd_region *by);
/* pd_split_job_add hands keys (count, owned by the cluster on success) to region_id's split
 * operator. PD_ERR_NOMEM leaves them with the caller. */
int pd_split_job_add(struct pd_cluster *c, uint64_t region_id, struct pd_key *keys, size_t count);
struct pd_split_job *pd_split_job_find(struct pd_cluster *c, uint64_t region_id);
/* pd_keys_copy makes *out a malloc'ed deep copy of keys (free with pd_keys_free). PD_ERR_NOMEM. */
int pd_keys_copy(const struct pd_key *keys, size_t count, struct pd_key **out);
/* pd_split_jobs_free frees every split job (at close). */
void pd_split_jobs_free(struct pd_cluster *c);
size_t pd_operator_count_kind(struct pd_cluster *c, enum pd_operator_kind kind);
/* pd_operator_on_heartbeat advances region's operator; sets *step and *has_step to what to send. */
void pd_operator_on_heartbeat(struct pd_cluster *c, const struct pd_region *region,
                              struct pd_step *step, bool *has_step);
/* pd_operator_check_timeouts drops operators older than their kind's timeout. */
void pd_operator_check_timeouts(struct pd_cluster *c);

/* pd_operator_cancel_unreachable cancels every operator with a step still to come that adds a
 * peer on, or hands leadership to, a store that is not Up or is down past max-store-down-time
 * (stores, the round's figures): such a step can never finish, and the operator would keep its
 * region from the replica checker until it timed out. Returns how many it canceled. */
size_t pd_operator_cancel_unreachable(struct pd_cluster *c, const struct pd_store_info *stores,
                                      size_t count);
/* Builders: fill op for region (no allocation from the cluster except add-peer's new id). */
void pd_operator_build_transfer_leader(struct pd_operator *op, const struct pd_region *r,
                                       const char *name, enum pd_operator_kind kind,
                                       uint64_t to_store);
int pd_operator_build_add_peer(struct pd_cluster *c, struct pd_operator *op,
                               const struct pd_region *r, const char *name,
                               enum pd_operator_kind kind, uint64_t store_id);
void pd_operator_build_remove_peer(struct pd_operator *op, const struct pd_region *r,
                                   const char *name, enum pd_operator_kind kind, uint64_t store_id);
/* build_split: one PD_STEP_SPLIT step at key_count keys, aimed at r's current leader. */
void pd_operator_build_split(struct pd_operator *op, const struct pd_region *r, size_t key_count);
/* move_peer: add on to_store, transfer the leader away from from_store if it leads, remove. */
int pd_operator_build_move_peer(struct pd_cluster *c, struct pd_operator *op,
                                const struct pd_region *r, const char *name,
                                enum pd_operator_kind kind, uint64_t from_store, uint64_t to_store);

/* ---- a scheduling round (schedule.c) ---- */

enum pd_role { PD_ROLE_LEADER, PD_ROLE_FOLLOWER, PD_ROLE_PENDING, PD_ROLE_COUNT };

/* What one round of scheduling sees, built under c->mu and valid until it is released: the
 * store figures (with what running operators will still do counted in), and every store's
 * regions by the role of its peer there, so a scheduler picks from one store's regions without
 * scanning the tree. Schedulers update the figures as they create operators. */
struct pd_round {
    struct pd_store_info *stores;
    size_t store_count;
    struct pd_region_list {
        struct pd_region **at; /* borrowed from the tree */
        size_t count;
    } * lists;               /* lists[i * PD_ROLE_COUNT + role] for stores[i] */
    struct pd_region **pool; /* the storage lists point into */
};

/* pd_round_list: the regions of stores[i] (an index into round->stores) in role. */
const struct pd_region_list *pd_round_list(const struct pd_round *round, size_t i,
                                           enum pd_role role);

/* ---- checkers and schedulers; c->mu held; stores is the round's snapshot of store figures,
 * updated as operators are created ---- */

/* pd_replica_check_region creates at most one operator fixing r's replicas; 1 if created. */
int pd_replica_check_region(struct pd_cluster *c, const struct pd_region *r,
                            struct pd_store_info *stores, size_t store_count);
/* The balance schedulers create operators until their kind's limit is reached or nothing more
 * narrows a gap; each returns how many it created. */
int pd_balance_leader_schedule(struct pd_cluster *c, struct pd_round *round);
int pd_balance_region_schedule(struct pd_cluster *c, struct pd_round *round);

#endif
