/* mvcc.h — public API of mvcc/: Percolator transactions over the Storage interface. */
#ifndef TINYKV_MVCC_MVCC_H
#define TINYKV_MVCC_MVCC_H

/*
 * What it owns: the MVCC data model (how user keys, locks, values and commit
 * records are laid out in the default, lock and write CFs), the per-store
 * latches that serialize commands touching the same keys, and the seven
 * transactional commands of TinyKv's Kv* RPCs: get, scan, prewrite, commit,
 * batch rollback, check txn status and resolve lock.
 *
 * Who calls it: the gRPC TinyKv service in store/ (it converts kvrpcpb
 * requests into these plain structs and the results back), and tests.
 *
 * What it must never do: see anything of store/ beyond store/storage.h (no
 * raftstore, no RocksDB), use protobuf-c types, keep global mutable state, or
 * write a command's changes other than in one atomic storage batch.
 *
 * Data model (Percolator, as TinyKV project 4):
 *   CF lock    key = raw user key              value = lock record
 *   CF default key = enc(user key) ++ ~start_ts value = the user value
 *   CF write   key = enc(user key) ++ ~commit_ts value = write record
 * enc() is the memcomparable byte encoding: the key is cut into groups of 8
 * bytes, the last group zero-padded, and each group is followed by a marker
 * byte 0xFF - (number of pad bytes); a key whose length is a multiple of 8
 * ends with an all-pad group (marker 0xF7). ~ts is the bitwise complement of
 * the timestamp, 8 bytes big-endian, so versions of one key sort newest first
 * and different keys sort in user key order.
 *
 * Lock record (CF lock value), len(primary) + 17 bytes:
 *   primary key bytes | kind (1 byte: 1 put, 2 delete, 4 lock) |
 *   start_ts (8 bytes BE) | ttl in milliseconds (8 bytes BE)
 * The primary's length is the record length minus 17.
 *
 * Write record (CF write value), 9 bytes:
 *   kind (1 byte: 1 put, 2 delete, 3 rollback, 4 lock) | start_ts (8 bytes BE)
 * A rollback record is stored at commit_ts == start_ts of the rolled-back
 * transaction. Reads skip rollback and lock records.
 *
 * Timestamps are TSO timestamps: physical milliseconds << 18 | logical.
 *
 * Thread safety: every command may be called from any thread concurrently on
 * one engine. Writing commands (prewrite, commit, batch rollback, check txn
 * status, resolve lock) take the latches of their keys for the whole
 * read-check-write, until the storage has answered the write; prewrite and
 * commit also come in asynchronous forms that park no thread while they wait
 * (for latches, the snapshot, a commit ts or the write); reads (get, scan)
 * work on a storage snapshot without
 * latches, taken after waiting (at most MVCC_MEM_LOCK_WAIT_MS, then a
 * ServerIsBusy region error) for any one-phase commit in flight on their
 * keys that could commit at or below their version.
 *
 * Errors: commands return 0 when the command ran to its end; its outcome,
 * including per-key errors (lock conflicts, write conflicts, invalid input),
 * is in the result struct. A nonzero return (MVCC_ERR_*) means the command
 * could not run; MVCC_ERR_REGION means the storage answered with a region
 * error, detailed in the result's storage_err, which the service returns as
 * the response's region_error. Nothing is written when a command fails or
 * reports a key error.
 */

#include <stddef.h>
#include <stdint.h>

#include "store/storage.h"

#define MVCC_TS_MAX UINT64_MAX
#define MVCC_TSO_LOGICAL_BITS 18
/* Largest user key and value the commands accept. */
#define MVCC_MAX_KEY_BYTES 8192
#define MVCC_MAX_VALUE_BYTES (8u * 1024u * 1024u)
/* Longest a read waits for a one-phase commit in flight on its keys. */
#define MVCC_MEM_LOCK_WAIT_MS 3000
/* How long a one-phase commit's write waits for Raft's verdict (storage_ctx.timeout_ms). */
#define MVCC_ONE_PC_WRITE_TIMEOUT_MS 60000

/* The physical part (milliseconds) of a TSO timestamp. */
static inline uint64_t mvcc_ts_physical_ms(uint64_t ts)
{
    return ts >> MVCC_TSO_LOGICAL_BITS;
}

/* A TSO timestamp from its physical milliseconds and logical counter. */
static inline uint64_t mvcc_ts_compose(uint64_t physical_ms, uint64_t logical)
{
    return (physical_ms << MVCC_TSO_LOGICAL_BITS) |
           (logical & ((1ull << MVCC_TSO_LOGICAL_BITS) - 1));
}

/* Return codes, in this module's range. 0 is success. */
enum {
    MVCC_OK = 0,
    MVCC_ERR_NOMEM = 4000,
    MVCC_ERR_STORAGE,  /* the storage failed; detail in the result's storage_err and errmsg */
    MVCC_ERR_REGION,   /* the storage returned a region error; see the result's storage_err */
    MVCC_ERR_CORRUPT,  /* a stored lock or write record or key could not be decoded */
    MVCC_ERR_ARG,      /* a NULL engine, result or array pointer (a caller bug) */
    MVCC_ERR_TS_AHEAD, /* a read ts more than MVCC_READ_TS_AHEAD_MS past both this store's clock
                        * and the newest TSO answer it has seen: refused, nothing read
                        * (MVCC_TS_MAX, the newest versions, is always served) */
};

/* How far past max(this store's wall clock, the newest TSO answer it has seen) a read ts may
 * lie. A read raises the floor of the commit ts this store chooses (max_ts), so a bogus ts far
 * in the future would push every later one-phase commit to the TSO; one within the bound stops
 * mattering once the clock passes it. Wide enough for the clocks of the scheduler and a store to
 * disagree by minutes. */
#define MVCC_READ_TS_AHEAD_MS (10 * 60 * 1000)

/* Human-readable text for an MVCC_ERR_* code (static storage). */
const char *mvcc_strerror(int code);

/* Mutation ops, numbered as kvrpcpb.Op. */
enum mvcc_op {
    MVCC_OP_PUT = 0,
    MVCC_OP_DEL = 1,
    MVCC_OP_ROLLBACK = 2, /* not accepted by prewrite: reported as an invalid key error */
    MVCC_OP_LOCK = 3,     /* lock the key without changing it; reads ignore such locks */
};

/* Action of check txn status, numbered as kvrpcpb.Action. */
enum mvcc_action {
    MVCC_ACTION_NO_ACTION = 0,
    MVCC_ACTION_TTL_EXPIRE_ROLLBACK = 1,
    MVCC_ACTION_LOCK_NOT_EXIST_ROLLBACK = 2,
};

/* A borrowed byte string (valid for the call it is passed to). */
struct mvcc_key_slice {
    const void *data;
    size_t len;
};

/* One mutation of a prewrite. Pointers are borrowed for the call. */
struct mvcc_mutation {
    enum mvcc_op op;
    const void *key;
    size_t key_len;
    const void *value; /* PUT only */
    size_t value_len;
};

/*
 * Key error kinds, aligned with kvrpcpb.KeyError: LOCKED → locked,
 * CONFLICT → conflict, RETRYABLE → retryable (msg), ABORT → abort (msg).
 * INVALID is bad input; the service reports it as abort with msg.
 */
enum mvcc_key_error_kind {
    MVCC_KEY_ERR_NONE = 0,
    MVCC_KEY_ERR_LOCKED,
    MVCC_KEY_ERR_CONFLICT,
    MVCC_KEY_ERR_RETRYABLE,
    MVCC_KEY_ERR_ABORT,
    MVCC_KEY_ERR_INVALID,
};

/* kvrpcpb.LockInfo. Buffers are owned by the enclosing key error. */
struct mvcc_lock_info {
    void *primary;
    size_t primary_len;
    uint64_t lock_version; /* start_ts of the locking transaction */
    void *key;
    size_t key_len;
    uint64_t lock_ttl; /* milliseconds */
};

/* kvrpcpb.WriteConflict. Buffers are owned by the enclosing key error. */
struct mvcc_write_conflict {
    uint64_t start_ts;    /* the prewriting transaction */
    uint64_t conflict_ts; /* commit_ts of the newer write record */
    void *key;
    size_t key_len;
    void *primary;
    size_t primary_len;
};

/*
 * A per-key error. `locked` is filled for LOCKED, `conflict` for CONFLICT;
 * msg always says what happened in words (NUL-terminated).
 */
struct mvcc_key_error {
    enum mvcc_key_error_kind kind;
    struct mvcc_lock_info locked;
    struct mvcc_write_conflict conflict;
    char msg[256];
};

/* Frees the buffers a key error owns and resets it to kind NONE. */
void mvcc_key_error_clear(struct mvcc_key_error *e);

/*
 * Common tail of every result: storage_err is filled when a command returns
 * MVCC_ERR_STORAGE or MVCC_ERR_REGION (storage_err.code is the STORAGE_ERR_*
 * code), errmsg says in words why any nonzero return happened.
 */

struct mvcc_get_result {
    struct mvcc_key_error error;
    int not_found; /* 1 when no visible value exists at the version */
    void *value;   /* owned, malloc'd; NULL when not_found or on error */
    size_t value_len;
    uint64_t commit_ts; /* of the version read; 0 when not_found */
    struct storage_error storage_err;
    char errmsg[256];
};

/* One scan result: either a value or a key error (LOCKED). */
struct mvcc_kv_pair {
    void *key; /* owned */
    size_t key_len;
    void *value; /* owned; NULL when error.kind != NONE */
    size_t value_len;
    struct mvcc_key_error error;
};

struct mvcc_scan_result {
    struct mvcc_kv_pair *pairs; /* owned array of n_pairs, in key order */
    size_t n_pairs;
    struct mvcc_key_error error; /* INVALID input only; per-key errors are in pairs */
    struct storage_error storage_err;
    char errmsg[256];
};

struct mvcc_prewrite_result {
    struct mvcc_key_error *errors; /* owned array of n_errors; empty on success */
    size_t n_errors;
    /* Nonzero: the transaction committed at this ts in one phase (no locks left to commit);
     * 0 after a successful prewrite: the keys are locked, commit them as usual. */
    uint64_t one_pc_commit_ts;
    /* Where this call's one-phase commit ts came from (none: no commit written by this call, as
     * when a retry answers an earlier attempt's ts). */
    enum mvcc_ts_origin { MVCC_TS_NONE = 0, MVCC_TS_STORE, MVCC_TS_TSO } one_pc_ts_origin;
    struct storage_error storage_err;
    char errmsg[256];
};

/* Result of commit, batch rollback and resolve lock. */
struct mvcc_write_result {
    struct mvcc_key_error error;
    struct storage_error storage_err;
    char errmsg[256];
};

struct mvcc_check_txn_status_result {
    uint64_t lock_ttl;       /* the live lock's TTL (ms), else 0 */
    uint64_t commit_version; /* commit_ts if the transaction committed, else 0 */
    enum mvcc_action action;
    struct mvcc_key_error error; /* INVALID input only */
    struct storage_error storage_err;
    char errmsg[256];
};

/*
 * The *_result_free functions release the buffers a result owns (values,
 * keys, arrays, key error buffers) and zero it; the struct's own memory is
 * the caller's. Every command initializes its result first, so freeing is
 * correct after any return, and freeing twice is harmless.
 */
void mvcc_get_result_free(struct mvcc_get_result *r);
void mvcc_scan_result_free(struct mvcc_scan_result *r);
void mvcc_prewrite_result_free(struct mvcc_prewrite_result *r);
void mvcc_write_result_free(struct mvcc_write_result *r);
void mvcc_check_txn_status_result_free(struct mvcc_check_txn_status_result *r);

struct mvcc_engine;

/*
 * mvcc_engine_new makes an engine over `storage` (borrowed: it must outlive
 * the engine) with `latch_slots` latch hash slots (0 picks a default of
 * 2048). On success *out is owned by the caller, freed with
 * mvcc_engine_free after every command on it has returned.
 * Errors: MVCC_ERR_NOMEM, MVCC_ERR_ARG.
 */
int mvcc_engine_new(struct storage *storage, size_t latch_slots, struct mvcc_engine **out);
void mvcc_engine_free(struct mvcc_engine *e);

/* Hands out one fresh TSO timestamp in *ts; returns 0, or nonzero when none could be had. It may
 * block (a round trip to the scheduler) and is called from command threads concurrently. */
typedef int (*mvcc_ts_fn)(void *arg, uint64_t *ts);

/*
 * mvcc_engine_set_ts_source gives the engine a timestamp source (fn and arg borrowed until the
 * engine is freed), which lets prewrites that ask for it commit in one phase. Call it before the
 * first command. Without one, every prewrite locks its keys (two-phase commit). Over a
 * replicated storage most one-phase commits choose their commit ts from the reads this engine
 * has served (mvcc_internal.h, struct mvcc_mem_locks); the source syncs each leadership term.
 */
void mvcc_engine_set_ts_source(struct mvcc_engine *e, mvcc_ts_fn fn, void *arg);

/* The answer of an asynchronous ts source: rc 0 and a fresh ts, or nonzero when none could be
 * had. */
typedef void (*mvcc_ts_cb)(void *arg, int rc, uint64_t ts);
/* Asks for one fresh TSO timestamp, answered through cb exactly once, on any thread (this one
 * before the call returns, too), within the source's own deadline. It must not block. */
typedef void (*mvcc_ts_async_fn)(void *src_arg, mvcc_ts_cb cb, void *cb_arg);

/*
 * mvcc_engine_set_ts_source_async is mvcc_engine_set_ts_source for a source that answers later
 * (fn and arg borrowed until the engine is freed): a one-phase prewrite then parks no thread
 * while its commit ts is on the way. It takes precedence over a blocking source.
 */
void mvcc_engine_set_ts_source_async(struct mvcc_engine *e, mvcc_ts_async_fn fn, void *arg);

/*
 * The asynchronous forms of the writing commands below (mvcc_prewrite_async, mvcc_commit_async)
 * run the same command without parking a thread: latches are waited for in the latch table's
 * queue, the snapshot and the write go through the storage's async forms, and `done(arg, rc)`
 * runs exactly once with the command's return code (what the blocking form would return), on
 * whatever thread completed the last step: the caller's before the call returns, the storage's
 * (the store loop, its deadline timer), the ts source's, or that of a command releasing a latch.
 * Latches, and a one-phase commit's in-memory lock, are held until the write's answer is in,
 * then released before done runs. Every pointer argument (ctx and its keys, the request and
 * its keys, out) is borrowed until done has run. With a storage that answers at once the whole
 * command runs inside the call.
 */
typedef void (*mvcc_done_fn)(void *arg, int rc);

/*
 * In all commands: `ctx` (borrowed, may be NULL for standalone storage) is
 * handed to the storage; key pointers are borrowed for the call; `out` is
 * caller-allocated and initialized by the command.
 */

/*
 * mvcc_get (KvGet) returns the newest value of `key` committed at or before
 * `version`. A put/delete lock of another transaction with start_ts <=
 * version makes it a LOCKED key error; a delete hides older values; rollback
 * and lock records are skipped. Empty or oversized keys are INVALID.
 */
int mvcc_get(struct mvcc_engine *e, const struct storage_ctx *ctx, const void *key, size_t key_len,
             uint64_t version, struct mvcc_get_result *out);

/* Fields of KvScan. Pointers are borrowed for the call. */
struct mvcc_scan_req {
    const void *start_key; /* inclusive; empty means the first key */
    size_t start_key_len;
    const void *end_key; /* exclusive; end_key_len 0 means no bound */
    size_t end_key_len;
    uint32_t limit;
    uint64_t version;
    /* Stop before the pairs' keys and values would pass this many bytes
     * (there is always at least one pair); 0 means no cap. */
    size_t max_bytes;
    /* Pairs carry keys only (value NULL, length 0): values are not read. */
    int key_only;
};

/*
 * mvcc_scan (KvScan) returns up to `limit` visible pairs at `version` in key
 * order within [start_key, end_key). A key locked at or before `version`
 * comes back as a pair carrying a LOCKED error (it counts toward the limit)
 * and the scan goes on. limit 0 returns nothing. Oversized bounds are INVALID.
 */
int mvcc_scan(struct mvcc_engine *e, const struct storage_ctx *ctx, const struct mvcc_scan_req *req,
              struct mvcc_scan_result *out);

/* Fields of KvPrewrite. Pointers are borrowed for the call. */
struct mvcc_prewrite_req {
    const struct mvcc_mutation *mutations;
    size_t n_mutations;
    const void *primary;
    size_t primary_len;
    uint64_t start_ts;
    uint64_t lock_ttl_ms;
    /* Commit in one phase if the engine can (kvrpcpb try_one_pc): the caller promises these are
     * all the transaction's mutations. */
    int try_one_pc;
};

/*
 * mvcc_prewrite (KvPrewrite) locks every mutated key for the transaction and
 * stores put values at start_ts. Per key it fails with LOCKED on another
 * transaction's lock (its own lock is an idempotent retry, rewritten) and
 * with CONFLICT on any write record at or after start_ts, including its own
 * rollback record. Invalid input (empty primary with mutations, empty or
 * oversized keys, oversized values, op ROLLBACK) gives INVALID errors. If any
 * key fails, out->errors lists every failure and nothing is written. A key
 * mutated twice in one request takes the last mutation. A key that already
 * holds this transaction's own commit record (an earlier one-phase attempt
 * whose answer was lost) is left alone: it is committed.
 *
 * One-phase commit (try_one_pc, with a ts source set): after the same checks,
 * the keys go into the in-memory lock table (readers that could see the write
 * wait for it), a commit ts is taken from the source, and values and write
 * records at that ts go into one batch with no lock records;
 * out->one_pc_commit_ts says so. A retry of a transaction so committed
 * answers the same commit ts and writes nothing. When no ts can be had the
 * prewrite falls back to locking the keys (one_pc_commit_ts 0).
 */
int mvcc_prewrite(struct mvcc_engine *e, const struct storage_ctx *ctx,
                  const struct mvcc_prewrite_req *req, struct mvcc_prewrite_result *out);
void mvcc_prewrite_async(struct mvcc_engine *e, const struct storage_ctx *ctx,
                         const struct mvcc_prewrite_req *req, struct mvcc_prewrite_result *out,
                         mvcc_done_fn done, void *arg);

/*
 * mvcc_commit (KvCommit) turns the transaction's locks on `keys` into write
 * records at commit_ts. Per key: its own lock → committed; already committed
 * → nothing (idempotent); rolled back → ABORT; another transaction's lock and
 * no record of its own → RETRYABLE; neither lock nor record → nothing.
 * commit_ts <= start_ts and bad keys are INVALID. The first error stops the
 * command and nothing is written.
 */
int mvcc_commit(struct mvcc_engine *e, const struct storage_ctx *ctx,
                const struct mvcc_key_slice *keys, size_t n_keys, uint64_t start_ts,
                uint64_t commit_ts, struct mvcc_write_result *out);
void mvcc_commit_async(struct mvcc_engine *e, const struct storage_ctx *ctx,
                       const struct mvcc_key_slice *keys, size_t n_keys, uint64_t start_ts,
                       uint64_t commit_ts, struct mvcc_write_result *out, mvcc_done_fn done,
                       void *arg);

/*
 * mvcc_batch_rollback (KvBatchRollback) rolls the transaction back on `keys`:
 * removes its own lock and value and writes a rollback record; another
 * transaction's lock stays but the rollback record is still written (so a
 * late prewrite of this transaction fails); an existing rollback record is
 * left alone; a committed key is ABORT (first error stops, nothing written).
 */
int mvcc_batch_rollback(struct mvcc_engine *e, const struct storage_ctx *ctx,
                        const struct mvcc_key_slice *keys, size_t n_keys, uint64_t start_ts,
                        struct mvcc_write_result *out);

/*
 * mvcc_check_txn_status (KvCheckTxnStatus) looks at the primary key of the
 * transaction started at lock_ts: its lock whose TTL has run out by
 * current_ts's physical time (physical(lock_ts) + ttl < physical(current_ts))
 * is rolled back (TTL_EXPIRE_ROLLBACK); a live lock reports lock_ttl
 * (NO_ACTION); a commit record reports commit_version; a rollback record is
 * NO_ACTION; with neither lock nor record a rollback record is written
 * (LOCK_NOT_EXIST_ROLLBACK) so the transaction can never commit.
 */
int mvcc_check_txn_status(struct mvcc_engine *e, const struct storage_ctx *ctx, const void *primary,
                          size_t primary_len, uint64_t lock_ts, uint64_t current_ts,
                          struct mvcc_check_txn_status_result *out);

/*
 * mvcc_resolve_lock (KvResolveLock) finds every lock of the transaction
 * started at start_ts (a scan of the lock CF) and commits them at commit_ts
 * (commit_ts > 0) or rolls them back (commit_ts == 0), in one batch.
 * 0 < commit_ts <= start_ts is INVALID.
 */
int mvcc_resolve_lock(struct mvcc_engine *e, const struct storage_ctx *ctx, uint64_t start_ts,
                      uint64_t commit_ts, struct mvcc_write_result *out);

#endif
