/* raft_kv.h — the Storage interface in cluster mode: writes and reads go through the raftstore
 * (internal to store/). */
#ifndef TINYKV_STORE_RAFT_KV_H
#define TINYKV_STORE_RAFT_KV_H

#include "store/raftstore.h"
#include "store/storage.h"

/*
 * raft_kv_new wraps `rs` (borrowed; outlives the storage) as a Storage:
 * storage_write proposes and waits for the command to apply; storage_reader
 * waits for a ReadIndex-confirmed snapshot. Each waits at most `timeout_ms`,
 * then fails with a retryable region error (StaleCommand) — the command may
 * still apply later, which the callers' idempotent commands tolerate.
 */
struct storage *raft_kv_new(struct raftstore *rs, int timeout_ms);

#endif
