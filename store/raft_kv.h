/* raft_kv.h — the Storage interface in cluster mode: writes and reads go through the raftstore
 * (internal to store/). */
#ifndef TINYKV_STORE_RAFT_KV_H
#define TINYKV_STORE_RAFT_KV_H

#include "store/raftstore.h"
#include "store/storage.h"

/*
 * raft_kv_new wraps `rs` (borrowed; outlives the storage, and must be freed before it) as a
 * Storage with both forms: storage_write_async proposes and answers when the command applies;
 * storage_reader_async answers with a ReadIndex-confirmed snapshot. The blocking forms wait for
 * the same answers. Every request is answered within `timeout_ms`: past it a write fails as
 * undetermined (it was proposed and may still apply) and a read with a retryable region error
 * (StaleCommand). A timer thread of the storage keeps that promise, so no caller needs its own.
 */
struct storage *raft_kv_new(struct raftstore *rs, int timeout_ms);

#endif
