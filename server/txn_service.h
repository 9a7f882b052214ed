/* txn_service.h — the transactional Kv* handlers of the TinyKv service (internal to server/). */
#ifndef TINYKV_STORE_TXN_SERVICE_H
#define TINYKV_STORE_TXN_SERVICE_H

/*
 * What it owns: the conversion between kvrpcpb's KvGet, KvScan, KvPrewrite,
 * KvCommit, KvBatchRollback, KvCheckTxnStatus and KvResolveLock messages and
 * mvcc/'s plain-struct commands.
 * Who calls it: kv_service_methods (and tests), to register the methods.
 * What it must never do: interpret MVCC records itself, or keep protobuf-c
 * structs past a handler.
 *
 * Errors travel as kvrpcpb expects: key errors in the response's error(s)
 * (mvcc's INVALID becomes abort with the reason), a storage region error in
 * region_error; any other failure (out of memory, storage I/O, a corrupt
 * record) ends the call with gRPC status INTERNAL (UNAVAILABLE while the
 * storage shuts down) and the reason.
 */

#include <stddef.h>

#include "mvcc/mvcc.h"
#include "proto/rpc.h"

/* How many methods kv_txn_methods fills. */
#define KV_TXN_METHODS 7

/*
 * kv_txn_methods fills `out` (room for KV_TXN_METHODS) with the seven Kv*
 * methods bound to `svc` (borrowed: it and its mvcc engine must outlive the
 * server); returns how many. The handlers are blocking (they run on the
 * server's workers). Key errors answered and locks resolved are counted in
 * svc->metrics when it is set (the series are looked up here).
 */
struct kv_service;
size_t kv_txn_methods(struct kv_service *svc, struct rpc_method *out);

#endif
