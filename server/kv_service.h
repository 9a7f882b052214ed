/* kv_service.h — the store's gRPC TinyKv service: request checks and handler tables (internal to
 * server/). */
#ifndef TINYKV_STORE_KV_SERVICE_H
#define TINYKV_STORE_KV_SERVICE_H

/*
 * What it owns: the translation between kvrpcpb messages and the Storage
 * interface (raw handlers) or mvcc/ (transactional handlers).
 * Who calls it: tinykv-server's main registers kv_service_methods() on its
 * rpc_server; tests do the same in-process.
 * What it must never do: trust a request — every key, value and CF is
 * checked before anything is written — or keep protobuf-c structs past the
 * handler.
 */

#include <stddef.h>

#include "kvrpcpb.pb-c.h"
#include "proto/rpc.h"
#include "store/storage.h"

#define KV_MAX_KEY_BYTES (8 * 1024)
#define KV_MAX_VALUE_BYTES (8 * 1024 * 1024)
/* A scan's response stops growing past this many bytes of keys and values
 * (it always carries at least one pair), keeping it under the message cap. */
#define KV_MAX_SCAN_RESPONSE_BYTES (12 * 1024 * 1024)

struct mvcc_engine;
struct metrics;
struct metrics_counter;

struct raftstore;
struct disk_guard;

struct kv_service {
    struct storage *storage;  /* borrowed; outlives the service */
    struct mvcc_engine *mvcc; /* borrowed; NULL serves no Kv* methods */
    struct raftstore *rs;     /* borrowed; NULL in standalone mode (no regions to describe) */
    struct metrics *metrics;  /* borrowed; outlives the service; NULL counts nothing */
    /* Borrowed; NULL refuses nothing. RawPut, and a KvPrewrite that puts more keys than it
     * deletes, are answered DiskFull while it says the disk is short of space. */
    struct disk_guard *disk;
    /* Looked up in `metrics` by kv_service_methods (NULL without it). */
    struct metrics_counter *txn_locks_met, *txn_conflicts;
    struct metrics_counter *txn_prewrites_one_pc, *txn_prewrites_two_pc;
    struct metrics_counter *txn_one_pc_ts_store, *txn_one_pc_ts_tso;
    struct metrics_counter *txn_locks_committed, *txn_locks_rolled_back;
};

/* The most methods kv_service_methods can return. */
#define KV_SERVICE_MAX_METHODS 32

/* kv_service_methods fills `out` (room for KV_SERVICE_MAX_METHODS) with every
 * TinyKv method this store serves, bound to `svc`; returns how many. */
size_t kv_service_methods(struct kv_service *svc, struct rpc_method *out);

/* Per-file method tables, appended by kv_service_methods. */
size_t kv_raw_methods(struct kv_service *svc, struct rpc_method *out);

/* kv_ctx_from_proto converts a request Context (may be NULL) to a storage_ctx. */
void kv_ctx_from_proto(const Kvrpcpb__Context *c, struct storage_ctx *out);

/*
 * kv_region_error_new builds the errorpb.Error for a STORAGE_ERR_REGION
 * failure, or NULL if `err` is not a region error (or on allocation failure).
 * With svc->rs it describes the regions: KeyNotInRegion carries the key
 * (from ctx's touched keys) and the region's range; EpochNotMatch carries the
 * current region, the one after it and those holding the touched keys, so a
 * client learns a split without asking the scheduler.
 * Owned by the caller: protobuf_c_message_free_unpacked(..., NULL).
 */
Errorpb__Error *kv_region_error_new(const struct kv_service *svc, const struct storage_ctx *ctx,
                                    const struct storage_error *err);

/*
 * kv_disk_refusal is the DiskFull answer for a write that adds data, when svc->disk says the
 * disk is short of space and this store leads the request's region (a follower answers as it
 * always does, so the client finds the leader, whose disk decides); else NULL. Owned by the
 * caller, as kv_region_error_new's.
 */
Errorpb__Error *kv_disk_refusal(const struct kv_service *svc, const Kvrpcpb__Context *ctx);

/* kv_check_key returns NULL if `len` is a valid key length, else a reason. */
const char *kv_check_key(size_t len);

#endif
