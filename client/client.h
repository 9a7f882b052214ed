/* client.h — public API of client/: routing, TSO, raw KV and Percolator transactions. */
#ifndef TINYKV_CLIENT_CLIENT_H
#define TINYKV_CLIENT_CLIENT_H

/*
 * What it owns: one connection set to a cluster — the scheduler (members,
 * region and store metadata, the TSO stream), a region cache by key, a store
 * address cache, gRPC channels to the stores — and the transactions begun
 * on it (their start ts and local mutation buffer).
 *
 * Who calls it: tinykv-fuse, tinykv-ctl, benchmarks and tests. A
 * `struct client` is shared by many threads; a `struct client_txn` is used
 * by one thread at a time.
 *
 * What it must never do: hang. Every operation has a deadline (the client's
 * timeout, see client_options) and returns CLIENT_ERR_TIMEOUT or
 * CLIENT_ERR_UNAVAILABLE when it passes. It never lets protobuf-c structs
 * out through this header, and never reports a commit as failed when the
 * primary key may have committed (that is CLIENT_ERR_UNDETERMINED).
 *
 * Retries: region errors (NotLeader — its leader hint updates the cache —,
 * EpochNotMatch — its current regions replace the stale one —,
 * RegionNotFound, KeyNotInRegion, StoreNotMatch, StaleCommand) and transport
 * errors (the next peer is tried, then the scheduler asked again) are
 * retried with exponential backoff until the deadline. client/README.md has
 * the details.
 */

#include <stddef.h>
#include <stdint.h>

/* Error codes (0 is success), in this module's range. */
enum {
    CLIENT_OK = 0,
    CLIENT_ERR_NOT_FOUND = 7000, /* the key has no value */
    CLIENT_ERR_CONFLICT,         /* write conflict or the transaction was aborted; retry it */
    CLIENT_ERR_TIMEOUT,          /* the operation's deadline passed */
    CLIENT_ERR_UNAVAILABLE,      /* the cluster (scheduler or store) could not be reached */
    CLIENT_ERR_TOO_LARGE,        /* a key or value is over the size limit */
    CLIENT_ERR_INVALID,          /* bad argument or call out of order */
    CLIENT_ERR_NOMEM,
    CLIENT_ERR_SERVER,       /* a server answered with an error the client cannot retry */
    CLIENT_ERR_UNDETERMINED, /* outcome unknown: a raw write or the primary's commit may or
                              * may not have applied */
    CLIENT_ERR_NO_SPACE,     /* a store short of disk space refused a write that adds data
                              * (nothing of it applied); deletes still go through */
};

/* Size limits, as the stores enforce them. */
#define CLIENT_MAX_KEY_BYTES (8 * 1024)
#define CLIENT_MAX_VALUE_BYTES (8 * 1024 * 1024)

/* Timestamps: physical milliseconds << 18 | logical. */
#define CLIENT_TS_LOGICAL_BITS 18
typedef uint64_t client_ts;

/* The wall-clock milliseconds (Unix epoch) a timestamp was issued at. */
static inline uint64_t client_ts_physical_ms(client_ts ts)
{
    return ts >> CLIENT_TS_LOGICAL_BITS;
}

/* The last timestamp of a Unix millisecond: a snapshot at it (client_txn_begin_at)
 * sees every commit of that millisecond and before. Only past milliseconds give
 * stable reads: commits may still arrive below a timestamp the TSO has not issued. */
static inline client_ts client_ts_from_unix_ms(uint64_t ms)
{
    return (ms << CLIENT_TS_LOGICAL_BITS) | ((1u << CLIENT_TS_LOGICAL_BITS) - 1);
}

/* Tunables; zero fields take the defaults in brackets. */
struct client_options {
    int timeout_ms;       /* deadline of one operation, retries included [10000] */
    int rpc_timeout_ms;   /* deadline of one RPC attempt [3000] */
    int backoff_base_ms;  /* first retry delay [2] */
    int backoff_max_ms;   /* largest retry delay [500] */
    uint64_t lock_ttl_ms; /* TTL of a transaction's locks [3000] */
    int tso_max_batch;    /* most timestamps asked in one TSO round trip [4096; at most 65536] */
    int two_phase_only;   /* never ask the stores for one-phase commit [0: ask when it fits] */
};

struct client;
struct client_txn;

/* Human-readable text for a CLIENT_ERR_* code. */
const char *client_strerror(int code);

/*
 * client_new connects to the scheduler at `pd_addrs` ("HOST:PORT", or
 * several separated by commas; borrowed, copied), asks it for its members
 * and cluster id, and returns the client in *out (owned by the caller,
 * client_free). `opts` may be NULL (defaults; copied). On failure returns
 * CLIENT_ERR_* with a reason in err (may be NULL).
 */
int client_new(const char *pd_addrs, const struct client_options *opts, struct client **out,
               char *err, size_t err_len);

/* client_free closes every connection. Transactions must be freed first. */
void client_free(struct client *c);

/*
 * client_last_error: detail of the calling thread's last failed operation on
 * this client, in a buffer owned by the client (valid until the same thread's
 * next call). "" if none.
 */
const char *client_last_error(struct client *c);

/* client_tso fetches one fresh timestamp. Concurrent callers share one
 * stream round trip (a TsoRequest with count = the number waiting). */
int client_tso(struct client *c, client_ts *ts);

/* client_tso_batch fetches `count` (1 .. the tso_max_batch option) consecutive fresh timestamps
 * in one share of a round trip: *first and the count - 1 after it are this caller's. For a
 * caller that batches requests of its own (the store's one-phase commits). */
int client_tso_batch(struct client *c, uint32_t count, client_ts *first);

/* ------------------------------------------------------------ region info */

/* Where a key lives. Keys are owned by the struct: release with
 * client_region_info_clear. end_key_len 0 means +inf. */
struct client_region_info {
    uint64_t region_id;
    uint64_t conf_ver;
    uint64_t version;
    uint8_t *start_key;
    size_t start_key_len;
    uint8_t *end_key;
    size_t end_key_len;
    uint64_t leader_peer_id;
    uint64_t leader_store_id;
    char leader_addr[256]; /* "" if the store's address is unknown */
};

/* client_region_of_key fills *info for the region holding `key` (from the
 * cache, or the scheduler on a miss). */
int client_region_of_key(struct client *c, const void *key, size_t key_len,
                         struct client_region_info *info);
void client_region_info_clear(struct client_region_info *info);

/* ------------------------------------------------------------------- raw KV */

/* One key-value pair of a scan; both buffers are malloc'd and owned by the
 * array (client_kvs_free). */
struct client_kv {
    uint8_t *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
};

void client_kvs_free(struct client_kv *kvs, size_t n);

/*
 * Raw (non-transactional, single-version) operations. `cf` is a column
 * family name ("default", "lock", "write"), NULL or "" for default. Keys
 * and values are borrowed for the call.
 *
 * client_raw_get: *value is malloc'd (caller frees; never NULL on success,
 * even for an empty value); CLIENT_ERR_NOT_FOUND if absent.
 */
int client_raw_get(struct client *c, const char *cf, const void *key, size_t key_len, void **value,
                   size_t *value_len);
/* client_raw_put / client_raw_delete: CLIENT_ERR_UNDETERMINED when the store
 * proposed the write but could not tell whether it applied (it may yet), or
 * when the call reached a store and its answer was lost (deadline passed,
 * connection broke): a raw write is never resent after it may have arrived.
 * A failure code means it did not apply. */
int client_raw_put(struct client *c, const char *cf, const void *key, size_t key_len,
                   const void *value, size_t value_len);
int client_raw_delete(struct client *c, const char *cf, const void *key, size_t key_len);

/*
 * client_raw_scan returns up to `limit` pairs with start <= key < end in key
 * order, continuing across regions. `end` NULL (or end_len 0) means +inf.
 * *kvs (caller frees with client_kvs_free) and *n are set on success.
 */
int client_raw_scan(struct client *c, const char *cf, const void *start, size_t start_len,
                    const void *end, size_t end_len, size_t limit, struct client_kv **kvs,
                    size_t *n);

/* ------------------------------------------------------------- transactions */

/*
 * client_txn_begin starts a read-write transaction at a fresh start ts from
 * the TSO. *txn is owned by the caller (client_txn_free).
 */
int client_txn_begin(struct client *c, struct client_txn **txn);

/* client_txn_begin_at starts a read-only snapshot at `ts` (for instance a
 * past timestamp); put, delete and commit return CLIENT_ERR_INVALID. */
int client_txn_begin_at(struct client *c, client_ts ts, struct client_txn **txn);

/* The transaction's start (read) timestamp. */
client_ts client_txn_start_ts(const struct client_txn *txn);

/*
 * client_txn_get reads `key` at the start ts, seeing the transaction's own
 * buffered writes first. Locks met on the way are resolved (the lock's
 * primary is checked with KvCheckTxnStatus; expired or finished
 * transactions are resolved with KvResolveLock; live ones are waited out
 * with backoff). *value is malloc'd (caller frees); CLIENT_ERR_NOT_FOUND if
 * absent.
 */
int client_txn_get(struct client_txn *txn, const void *key, size_t key_len, void **value,
                   size_t *value_len);

/* client_txn_get_version is client_txn_get that also gives the commit ts
 * of the version read (0 for the transaction's own buffered write). */
int client_txn_get_version(struct client_txn *txn, const void *key, size_t key_len, void **value,
                           size_t *value_len, client_ts *commit_ts);

/* client_txn_scan: up to `limit` pairs with start <= key < end (end NULL or
 * end_len 0: +inf) at the start ts, merged with the buffered writes.
 * *kvs is owned by the caller (client_kvs_free). */
int client_txn_scan(struct client_txn *txn, const void *start, size_t start_len, const void *end,
                    size_t end_len, size_t limit, struct client_kv **kvs, size_t *n);

/* client_txn_scan_keys is client_txn_scan for keys only: the stores leave the
 * committed values out (value_len 0), so listing keys beside large values
 * moves only the keys. Buffered puts may still carry their values. */
int client_txn_scan_keys(struct client_txn *txn, const void *start, size_t start_len,
                         const void *end, size_t end_len, size_t limit, struct client_kv **kvs,
                         size_t *n);

/* Buffer a put or delete (key and value copied). Nothing reaches the stores
 * before commit. */
int client_txn_put(struct client_txn *txn, const void *key, size_t key_len, const void *value,
                   size_t value_len);
int client_txn_delete(struct client_txn *txn, const void *key, size_t key_len);

/*
 * client_txn_commit commits in one phase when every mutation fits one
 * prewrite request to one region: the store takes the commit ts and writes
 * the transaction at once (one Raft round, no locks), unless it answers that
 * it locked the keys instead. Otherwise it runs two-phase commit: prewrite
 * every mutation, grouped by region, with the smallest key as primary (the
 * primary's region first); take a commit ts from the TSO; commit the primary
 * together with the secondaries of its region (one request: all or none),
 * then the others.
 * On a conflict the prewritten locks are rolled back and it returns
 * CLIENT_ERR_CONFLICT. *commit_ts (may be NULL) gets the commit ts (the
 * start ts for a transaction without writes). After it returns, only
 * client_txn_free is allowed. CLIENT_ERR_UNDETERMINED: the primary commit
 * (or a one-phase prewrite) was sent but not acknowledged; the transaction
 * may or may not be visible.
 */
int client_txn_commit(struct client_txn *txn, client_ts *commit_ts);

/* client_txn_rollback drops the buffer (nothing was written yet, so nothing
 * is sent). After it, only client_txn_free is allowed. */
int client_txn_rollback(struct client_txn *txn);

void client_txn_free(struct client_txn *txn);

/* ---------------------------------------------------------------- counters */

/* Cumulative counts, for tests and benchmarks. */
struct client_stats {
    uint64_t tso_round_trips;   /* TsoRequests sent */
    uint64_t tso_timestamps;    /* timestamps handed out */
    uint64_t pd_region_lookups; /* GetRegion calls to the scheduler */
    uint64_t region_errors;     /* region errors met (and retried) */
    uint64_t lock_resolves;     /* locks resolved (KvResolveLock sent) */
    uint64_t one_pc_commits;    /* transactions a store committed in one phase */
};

void client_stats_get(struct client *c, struct client_stats *out);

/* ------------------------------------------------------------------- space */

/* The cluster's space as its stores last reported it to the scheduler. */
struct client_space {
    uint64_t capacity_bytes;  /* summed over the reporting stores */
    uint64_t available_bytes; /* summed over the reporting stores */
    uint32_t n_stores;        /* stores that are not tombstones */
    uint32_t n_reporting;     /* of them, those whose heartbeat carried a capacity */
};

/* client_cluster_space asks the scheduler for every store (GetAllStores) and
 * each one's last heartbeat figures (GetStore), and sums them into *out.
 * Several scheduler round trips: callers cache the answer. */
int client_cluster_space(struct client *c, struct client_space *out);

#endif
