/* client_internal.h — structures and helpers shared by the client's files (internal to client/). */
#ifndef TINYKV_CLIENT_CLIENT_INTERNAL_H
#define TINYKV_CLIENT_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "client/client.h"
#include "errorpb.pb-c.h"
#include "kvrpcpb.pb-c.h"
#include "metapb.pb-c.h"
#include "proto/rpc.h"
#include "schedulerpb.pb-c.h"

#define CLIENT_ERRMSG_BYTES 256
#define CLIENT_ADDR_BYTES 256

/* ---------------------------------------------------------------- backoff */

/* A retry schedule bounded by an absolute deadline (rpc_now_ms clock). */
struct backoff {
    uint64_t deadline_ms;
    int base_ms;
    int max_ms;
    int attempt;
    uint32_t rand_state;
};

void client_backoff_init(struct backoff *b, const struct client *c);
/* Back to the first (shortest) delay, after a retry made progress; the deadline stays. */
void client_backoff_reset(struct backoff *b);
/* Milliseconds left before the deadline (0 once passed). */
int client_backoff_remaining_ms(const struct backoff *b);
/* The timeout for one RPC attempt: the client's rpc timeout, capped by what is left. */
int client_backoff_rpc_timeout_ms(const struct backoff *b, const struct client *c);
/* Sleeps the next delay (capped by the deadline). Returns 0, or -1 when the
 * deadline has passed (then the caller gives up). */
int client_backoff_sleep(struct backoff *b);

/* ------------------------------------------------------------ region cache */

/* A cached region: immutable once published (replaced, never edited). */
struct region_entry {
    uint64_t id;
    uint64_t conf_ver;
    uint64_t version;
    uint8_t *start_key;
    size_t start_len;
    uint8_t *end_key; /* end_len 0: +inf */
    size_t end_len;
    uint64_t leader_peer_id;
    uint64_t leader_store_id;
    size_t n_peers;
    uint64_t *peer_ids;
    uint64_t *peer_store_ids;
    size_t send_failures; /* transport failures since loaded; guarded by the cache's mu */
};

/* A routing decision: a copy of the region plus its leader's address. Owned
 * by whoever filled it (client_region_loc_clear). */
struct region_loc {
    struct region_entry r;
    char addr[CLIENT_ADDR_BYTES];
};

void client_region_loc_clear(struct region_loc *loc);
/* 1 if `key` lies in the region. */
int client_region_contains(const struct region_entry *r, const void *key, size_t key_len);

struct region_cache {
    pthread_mutex_t mu;
    struct region_entry **entries; /* guarded by mu; sorted by start_key, non-overlapping */
    size_t n, cap;
};

void client_region_cache_init(struct region_cache *rc);
void client_region_cache_close(struct region_cache *rc);

/*
 * client_region_locate fills *loc for `key`: from the cache, else from the
 * scheduler (GetRegion), then the leader's store address (GetStore, cached).
 * Returns 0 or CLIENT_ERR_*; retries the scheduler within `b`.
 */
int client_region_locate(struct client *c, const void *key, size_t key_len, struct backoff *b,
                         struct region_loc *loc);
/* Drops a region from the cache (by id, if the epoch still matches or any). */
void client_region_cache_invalidate(struct region_cache *rc, uint64_t region_id);
/* Caches the regions an EpochNotMatch carried (replacing what they
 * overlap), led by their peer on `store_id` when they have one. */
void client_region_cache_learn(struct region_cache *rc, const Metapb__Region *const *regions,
                               size_t n, uint64_t store_id);
/* Drops every cached region. */
void client_region_cache_clear(struct region_cache *rc);
/* Records a new leader for a region (a NotLeader hint). */
void client_region_cache_set_leader(struct region_cache *rc, uint64_t region_id, uint64_t peer_id,
                                    uint64_t store_id);
/* After a transport failure to the region's leader on `store_id`: try the
 * next peer (the scheduler's leader may lag an election), or drop the
 * region once every peer has failed. */
void client_region_cache_on_send_failure(struct region_cache *rc, uint64_t region_id,
                                         uint64_t store_id);
/* Forgets a store's address (after a transport failure). */
void client_store_cache_invalidate(struct client *c, uint64_t store_id);

/* ------------------------------------------------------------- store calls */

/* What a store call's failure means for the caller. */
enum {
    /* Internal: the region moved or changed; relocate the keys and resend.
     * The cache has been updated and the backoff slept. */
    CLIENT_RETRY_REGION = 7900,
    /* Internal: the scheduler answered NOT_BOOTSTRAPPED or REGION_NOT_FOUND;
     * client_pd_call's callers wait and ask again or report UNAVAILABLE. */
    CLIENT_PD_NOT_READY = 7901,
};

/*
 * client_store_call sends `req` (a kvrpcpb request with a `context` field) to
 * loc's leader with the routing context set, and on success leaves the
 * response in *resp (owned by the caller, protobuf_c_message_free_unpacked).
 * Region errors and transport failures update the cache, sleep the backoff
 * and return CLIENT_RETRY_REGION (or TIMEOUT/UNAVAILABLE once the deadline
 * passes). A response with a region error never reaches the caller.
 */
int client_store_call(struct client *c, const struct region_loc *loc, const char *method,
                      ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                      ProtobufCMessage **resp, struct backoff *b);

/* client_store_call_key: locate the region of `key` and client_store_call, relocating on
 * CLIENT_RETRY_REGION until success or the deadline. *loc_out (may be
 * NULL) receives the region it was served from (caller clears it). */
int client_store_call_key(struct client *c, const void *key, size_t key_len, const char *method,
                          ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                          ProtobufCMessage **resp, struct backoff *b, struct region_loc *loc_out);

/* ---------------------------------------------------------------- scheduler */

/* A TSO request waiting for the shared round trip. Heap-allocated: a waiter
 * that times out while its batch is in flight leaves it for the sender to free. */
struct tso_waiter {
    struct tso_waiter *next;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; signalled when it is served, or may send the next trip */
    int state;         /* 0 pending, 1 in flight, 2 done; guarded by tso_mu */
    int abandoned;
    int rc;
    uint32_t count; /* timestamps asked, consecutive */
    client_ts ts;   /* the first of them */
};

/* client_pd_call: a unary call to the scheduler leader with the request header
 * set, retried (re-discovering the leader) within `b`. */
int client_pd_call(struct client *c, const char *method, ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                   struct backoff *b);
int client_pd_connect(struct client *c, struct backoff *b);
void client_pd_tso_close(struct client *c);

/* ---------------------------------------------------------------- the client */

struct store_addr {
    uint64_t store_id;
    char addr[CLIENT_ADDR_BYTES];
};

struct client {
    struct client_options opts; /* immutable after client_new */
    struct rpc_client *rpc;     /* thread-safe */
    pthread_key_t errkey;       /* per-thread last-error buffer */

    char **pd_addrs; /* immutable */
    size_t n_pd_addrs;
    pthread_mutex_t pd_mu;
    char pd_leader[CLIENT_ADDR_BYTES]; /* guarded by pd_mu */
    uint64_t cluster_id;               /* guarded by pd_mu */

    pthread_mutex_t tso_mu;
    struct tso_waiter *tso_pending; /* guarded by tso_mu; FIFO via tso_pending_tail */
    struct tso_waiter **tso_pending_tail;
    int tso_in_flight;             /* guarded by tso_mu: a round trip is running */
    struct rpc_stream *tso_stream; /* used only by the thread with tso_in_flight */
    client_ts tso_last;            /* guarded by tso_mu: last handed out */

    struct region_cache regions;
    pthread_mutex_t store_mu;
    struct store_addr *stores; /* guarded by store_mu */
    size_t n_stores, cap_stores;

    _Atomic uint64_t stat_tso_round_trips;
    _Atomic uint64_t stat_tso_timestamps;
    _Atomic uint64_t stat_pd_region_lookups;
    _Atomic uint64_t stat_region_errors;
    _Atomic uint64_t stat_lock_resolves;
    _Atomic uint64_t stat_one_pc_commits;
};

/* client_seterr records the calling thread's detail for client_last_error
 * and returns `code`. */
int client_seterr(struct client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Maps a failed rpc call to CLIENT_ERR_*. */
int client_rpc_error(int rc, const struct rpc_error *err);

/* ------------------------------------------------------------ lock resolver */

/*
 * client_lock_resolve handles a lock met by a read or a prewrite: checks the
 * lock's primary (KvCheckTxnStatus at a fresh ts) and resolves the lock's
 * transaction in the locked key's region (KvResolveLock) when it has
 * committed or been rolled back. Returns 0 when the lock is gone (retry at
 * once), CLIENT_RETRY_REGION when it is still alive (the backoff was slept;
 * retry), or an error.
 */
int client_lock_resolve(struct client *c, const Kvrpcpb__LockInfo *lock, struct backoff *b);

/* The slot of singular message field `name` in `m` (requests keep their
 * routing `context`/`header` and responses their `region_error`/`header`
 * under the same names in every message), or NULL if it has none. */
void **client_message_field(ProtobufCMessage *m, const char *name);

/* A growing array of scan results. */
struct kv_array {
    struct client_kv *kvs;
    size_t n, cap;
};
/* Appends copies of key and value; 0 or CLIENT_ERR_NOMEM. */
int client_kv_array_push(struct kv_array *a, const void *key, size_t key_len, const void *value,
                         size_t value_len);

/* Where a scan resumes: a key buffer owned by the scan. */
struct scan_cursor {
    uint8_t *key;
    size_t len, cap;
};
/* Sets the cursor to `key` (or to its successor key+"\0" when `successor`);
 * `key` may point into the cursor itself. 0 or CLIENT_ERR_NOMEM. */
int client_scan_cursor_set(struct scan_cursor *cur, const void *key, size_t key_len, int successor);
/* 1 if key < end, where end_len 0 means +inf. */
int client_key_before_end(const void *key, size_t key_len, const void *end, size_t end_len);

/* Validation shared by raw and txn calls. */
int client_check_key(struct client *c, size_t key_len);
int client_check_value(struct client *c, size_t value_len);

#endif
