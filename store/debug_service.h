/* debug_service.h — the debugpb.Debug methods a store serves: the region consistency check
 * (internal to store/; node.c registers them). */
#ifndef TINYKV_STORE_DEBUG_SERVICE_H
#define TINYKV_STORE_DEBUG_SERVICE_H

/*
 * Owns: nothing but the translation between the Debug RPCs and the
 * raftstore's consistency check (store/consistency.c).
 * Called by: the gRPC server (server/node.c registers the methods).
 * Must never: wait without a deadline, or answer a check as started before
 * its ComputeHash entry applied.
 */

#include <stddef.h>

#include "proto/rpc.h"
#include "store/raftstore.h"

#define DEBUG_SERVICE_METHODS 2
/* How long CheckRegionConsistency waits for its ComputeHash entry to apply. */
#define DEBUG_SERVICE_CHECK_TIMEOUT_MS 5000

/* Fills `out` (room for DEBUG_SERVICE_METHODS) with the Debug methods over rs (borrowed: it
 * outlives the server); returns how many. */
size_t debug_service_methods(struct raftstore *rs, struct rpc_method *out);

#endif
