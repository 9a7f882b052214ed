/* pd_internal.h — structures and helpers shared by the files of pd/ (never included elsewhere). */
#ifndef TINYKV_PD_INTERNAL_H
#define TINYKV_PD_INTERNAL_H

#include "pd/pd.h"

#include <pthread.h>

/* ---- keys (region.c) ---- */

/* key_cmp orders raw keys bytewise, shorter first on a common prefix. */
int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
/* end_key_cmp compares end keys where empty means +infinity. */
int end_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
/* region_contains_key: start <= key < end (empty end unbounded). */
bool region_contains_key(const struct pd_region *r, const uint8_t *key, size_t len);
/* regions_overlap: the two key ranges share at least one key. */
bool regions_overlap(const struct pd_region *a, const struct pd_region *b);
/* region_meta_equal: same keys, epoch and peer list (heartbeat-only fields ignored). */
bool region_meta_equal(const struct pd_region *a, const struct pd_region *b);
bool region_peer_is_pending(const struct pd_region *r, uint64_t peer_id);
/* region_new_copy returns a heap copy of src, or NULL when out of memory. */
struct pd_region *region_new_copy(const struct pd_region *src);
void region_free(struct pd_region *r);

/* ---- region tree (region_tree.c): regions ordered by start key, plus an id index ---- */

struct region_tree {
    struct pd_region **by_key; /* sorted by start key; owns the regions */
    struct pd_region **by_id;  /* the same pointers sorted by id */
    size_t count;
    size_t cap;
};

void region_tree_init(struct region_tree *t);
/* region_tree_close frees every region in the tree. */
void region_tree_close(struct region_tree *t);
struct pd_region *region_tree_find_by_id(const struct region_tree *t, uint64_t id);
/* find_by_key: the region containing key, or NULL (a hole). */
struct pd_region *region_tree_find_by_key(const struct region_tree *t, const uint8_t *key,
                                          size_t len);
/* index_at_or_before: index of the last region whose start key <= key; count if none. */
size_t region_tree_index_at_or_before(const struct region_tree *t, const uint8_t *key, size_t len);
/* first_overlap: index of the first region overlapping [r.start, r.end), count if none;
 * the overlapping ones are consecutive from there. */
size_t region_tree_first_overlap(const struct region_tree *t, const struct pd_region *r);
/* reserve makes room for one more region, so the next insert cannot fail. PD_ERR_NOMEM. */
int region_tree_reserve(struct region_tree *t);
/* insert takes ownership of r (heap, from region_new_copy); the caller has removed overlaps
 * and the id is not present. PD_ERR_NOMEM leaves r owned by the caller. */
int region_tree_insert(struct region_tree *t, struct pd_region *r);
/* remove unlinks r (does not free it). */
void region_tree_remove(struct region_tree *t, struct pd_region *r);

/* ---- persistence (meta_store.c): RocksDB, or nothing when opened without a directory ---- */

struct meta_store;
struct meta_batch;

int meta_store_open(const char *dir, struct meta_store **out, char *errmsg, size_t errmsg_len);
void meta_store_close(struct meta_store *m);
/* get: *val is malloc'ed (caller frees). PD_ERR_NOT_FOUND when absent. */
int meta_store_get(struct meta_store *m, const char *key, char **val, size_t *len, char *errmsg,
                   size_t errmsg_len);
int meta_store_put(struct meta_store *m, const char *key, const void *val, size_t len, bool sync,
                   char *errmsg, size_t errmsg_len);
/* scan calls fn for every key starting with prefix, in key order; fn's non-zero stops and is
 * returned. Pointers passed to fn are valid during the call only. */
int meta_store_scan(struct meta_store *m, const char *prefix,
                    int (*fn)(void *ctx, const char *key, size_t klen, const char *val,
                              size_t vlen),
                    void *ctx, char *errmsg, size_t errmsg_len);
/* meta_batch_new: a write batch for m (empty and inert when m is NULL); NULL if out of memory. */
struct meta_batch *meta_batch_new(struct meta_store *m);
void meta_batch_free(struct meta_batch *b);
void meta_batch_put(struct meta_batch *b, const char *key, const void *val, size_t len);
void meta_batch_delete(struct meta_batch *b, const char *key);
int meta_batch_write(struct meta_store *m, struct meta_batch *b, bool sync, char *errmsg,
                     size_t errmsg_len);

/* Keys in the meta store. */
#define META_KEY_CLUSTER_ID "pd/cluster_id"
#define META_KEY_BOOTSTRAPPED "pd/bootstrapped"
#define META_KEY_ALLOC_ID "pd/alloc_id"
#define META_KEY_TSO "pd/tso_window"
#define META_KEY_CONFIG "pd/config"
#define META_KEY_SCHEDULERS "pd/schedulers"
#define META_KEY_GC_SAFE_POINT "pd/gc_safe_point"
#define META_PREFIX_STORE "pd/store/"
#define META_PREFIX_REGION "pd/region/"
#define META_KEY_BYTES 64
void meta_key_store(char *out, uint64_t id);
void meta_key_region(char *out, uint64_t id);

/* ---- binary codec (codec.c): see the format comment there ---- */

/* Encoders return a malloc'ed buffer in *out (*len bytes), PD_ERR_NOMEM. */
int codec_encode_u64(uint64_t v, char **out, size_t *len);
int codec_decode_u64(const char *buf, size_t len, uint64_t *v);
int codec_encode_store(const struct pd_store *s, char **out, size_t *len);
int codec_decode_store(const char *buf, size_t len, struct pd_store *s);
int codec_encode_region(const struct pd_region *r, char **out, size_t *len);
/* decode_region fills an initialised r. PD_ERR_CORRUPT, PD_ERR_NOMEM. */
int codec_decode_region(const char *buf, size_t len, struct pd_region *r);

/* ---- TSO (tso.c) and ID allocator (id_alloc.c); both guarded by the cluster mutex ---- */

struct tso_state {
    uint64_t physical_ms;   /* physical part of the last timestamp handed out */
    uint64_t logical;       /* logical part of the last timestamp handed out */
    uint64_t window_end_ms; /* persisted: no timestamp at or above this physical time issued */
    uint64_t window_ms;
};

int tso_load(struct tso_state *t, struct meta_store *m, uint64_t window_ms, uint64_t now_ms,
             char *errmsg, size_t errmsg_len);
int tso_next(struct tso_state *t, struct meta_store *m, uint64_t now_ms, uint32_t count,
             uint64_t *ts, char *errmsg, size_t errmsg_len);
/* tso_refresh pushes the persisted window ahead when less than half of it is left. */
int tso_refresh(struct tso_state *t, struct meta_store *m, uint64_t now_ms, char *errmsg,
                size_t errmsg_len);

struct id_alloc {
    uint64_t next; /* the next id to hand out */
    uint64_t end;  /* persisted: ids below end may have been handed out */
    uint64_t batch;
};

int id_alloc_load(struct id_alloc *a, struct meta_store *m, uint64_t batch, char *errmsg,
                  size_t errmsg_len);
int id_alloc_next(struct id_alloc *a, struct meta_store *m, uint64_t *id, char *errmsg,
                  size_t errmsg_len);

/* ---- config (config.c) ---- */

int config_validate(const struct pd_config *cfg, char *errmsg, size_t errmsg_len);
/* to_json: malloc'ed NUL-terminated JSON object text. */
char *config_to_json(const struct pd_config *cfg);
/* apply_json: updates cfg with the fields present in the JSON object text; unknown fields and
 * bad values are PD_ERR_INVALID (cfg unchanged). */
int config_apply_json(struct pd_config *cfg, const char *json, size_t len, char *errmsg,
                      size_t errmsg_len);

/* ---- the cluster (cluster.c) ---- */

struct store_entry {
    struct pd_store store;
    struct pd_store_stats stats;
    uint64_t last_heartbeat_ms;
    uint64_t since_ms; /* when PD learnt of the store (added or loaded): down time counts from here
                          until the first heartbeat */
};

struct pd_cluster {
    pthread_mutex_t mu; /* guards every field below */
    struct meta_store *meta;
    uint64_t (*now_ms)(void *ctx);
    void *clock_ctx;
    uint64_t cluster_id;
    bool bootstrapped;
    struct store_entry *stores;
    size_t store_count;
    size_t store_cap;
    struct region_tree tree;
    struct pd_operator *ops;
    size_t op_count;
    size_t op_cap;
    struct op_record {
        struct pd_operator op;
        enum pd_operator_status status;
    } * op_history; /* ring of PD_OPERATOR_HISTORY ended operators, allocated at open */
    size_t op_history_next;
    size_t op_history_count;
    bool sched_balance_leader;
    bool sched_balance_region;
    struct pd_config cfg;
    struct tso_state tso;
    struct id_alloc ids;
    uint64_t gc_safe_point;
    struct pd_metrics metrics;
    struct metrics *registry; /* borrowed from pd_options; set at open, then read-only */
    char errmsg[256];
};

/* Helpers for the scheduling files; all expect c->mu held. */
uint64_t cluster_now_ms(struct pd_cluster *c);
struct store_entry *cluster_find_store(struct pd_cluster *c, uint64_t id);
/* cluster_store_infos fills a malloc'ed array with every store's info (figures from the tree). */
int cluster_store_infos(struct pd_cluster *c, struct pd_store_info **out, size_t *count);
/* cluster_store_schedulable: Up, heartbeat recent and not down — may receive peers/leaders. */
bool cluster_store_schedulable(const struct pd_store_info *s);
int cluster_set_err(struct pd_cluster *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cluster_alloc_id_locked(struct pd_cluster *c, uint64_t *id);
int cluster_save_schedulers(struct pd_cluster *c);
int cluster_check_region(struct pd_cluster *c, const struct pd_region *r);
bool cluster_store_has_regions(struct pd_cluster *c, uint64_t store_id);
int cluster_set_store_state_locked(struct pd_cluster *c, uint64_t store_id,
                                   enum pd_store_state state, bool force);
/* cluster_best_store: the schedulable store not holding r with the fewest regions, then the
 * least region size; NULL if none. */
struct pd_store_info *cluster_best_store(struct pd_store_info *stores, size_t count,
                                         const struct pd_region *r);
struct pd_store_info *cluster_info_of(struct pd_store_info *stores, size_t count, uint64_t id);
/* cluster_note_move keeps a tick's store figures current after an operator moves a peer. */
void cluster_note_move(struct pd_store_info *stores, size_t count, const struct pd_region *r,
                       uint64_t from_store, uint64_t to_store);

/* ---- operators (operator.c); c->mu held ---- */

struct pd_operator *operator_find(struct pd_cluster *c, uint64_t region_id);
/* operator_add copies op in and stamps its creation time. PD_ERR_EXISTS, PD_ERR_NOMEM. */
int operator_add(struct pd_cluster *c, const struct pd_operator *op);
/* operator_remove ends the region's operator (if any), remembering how it ended. */
void operator_remove(struct pd_cluster *c, uint64_t region_id, enum pd_operator_status status);
size_t operator_count_kind(struct pd_cluster *c, enum pd_operator_kind kind);
/* operator_on_heartbeat advances region's operator; sets *step and *has_step to what to send. */
void operator_on_heartbeat(struct pd_cluster *c, const struct pd_region *region,
                           struct pd_step *step, bool *has_step);
/* operator_check_timeouts drops operators older than their kind's timeout. */
void operator_check_timeouts(struct pd_cluster *c);
/* Builders: fill op for region (no allocation from the cluster except add-peer's new id). */
void operator_build_transfer_leader(struct pd_operator *op, const struct pd_region *r,
                                    const char *name, enum pd_operator_kind kind,
                                    uint64_t to_store);
int operator_build_add_peer(struct pd_cluster *c, struct pd_operator *op, const struct pd_region *r,
                            const char *name, enum pd_operator_kind kind, uint64_t store_id);
void operator_build_remove_peer(struct pd_operator *op, const struct pd_region *r, const char *name,
                                enum pd_operator_kind kind, uint64_t store_id);
/* move_peer: add on to_store, transfer the leader away from from_store if it leads, remove. */
int operator_build_move_peer(struct pd_cluster *c, struct pd_operator *op,
                             const struct pd_region *r, const char *name,
                             enum pd_operator_kind kind, uint64_t from_store, uint64_t to_store);

/* ---- checkers and schedulers; c->mu held; each returns how many operators it created (0/1);
 * stores is the tick's snapshot of store figures, updated as operators are created ---- */

/* replica_check_region creates at most one operator fixing r's replicas; 1 if created. */
int replica_check_region(struct pd_cluster *c, const struct pd_region *r,
                         struct pd_store_info *stores, size_t store_count);
int balance_leader_schedule(struct pd_cluster *c, struct pd_store_info *stores, size_t store_count);
int balance_region_schedule(struct pd_cluster *c, struct pd_store_info *stores, size_t store_count);

#endif
