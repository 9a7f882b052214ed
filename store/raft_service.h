/* raft_service.h — the TinyKv.Raft and TinyKv.Snapshot streams a store receives (internal to
 * store/). */
#ifndef TINYKV_STORE_RAFT_SERVICE_H
#define TINYKV_STORE_RAFT_SERVICE_H

#include <stddef.h>

#include "proto/rpc.h"
#include "store/raftstore.h"

/* Snapshot streams a store takes at once; one more is answered UNAVAILABLE without keeping its
 * data (the sender reports the snapshot failed and Raft sends it again later). */
#define RAFT_SERVICE_MAX_RECEIVING 3

/* Largest snapshot a store accepts over the Snapshot stream. */
#define RAFT_SERVICE_MAX_SNAPSHOT_BYTES (1024ull * 1024 * 1024)

/* Fills `out` (room for 2) with the Raft and Snapshot methods delivering to rs; returns 2.
 * rs may be NULL (a harness without a raftstore, such as the fuzz targets): Raft messages still
 * go to raftstore_step, and every snapshot stream is refused as malformed. */
size_t raft_service_methods(struct raftstore *rs, struct rpc_method *out);

#endif
