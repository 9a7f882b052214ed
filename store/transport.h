/* transport.h — Raft messages between stores over gRPC: the TinyKv.Raft and TinyKv.Snapshot client
 * streams (internal to store/). */
#ifndef TINYKV_STORE_TRANSPORT_H
#define TINYKV_STORE_TRANSPORT_H

/*
 * What it owns: one sender thread, queue and stream per destination store,
 * and the rpc_client they share.
 * Who calls it: the raftstore (through raftstore_transport_ops, on its loop
 * thread) and the server main. transport_send writes a message itself when
 * its store's stream is connected and idle with nothing queued (a write that
 * does not wait: what the connection cannot take at once the sender thread
 * sees through), and queues it for the sender thread otherwise. Store addresses
 * come from a resolver callback (the scheduler, cached).
 * What it must never do: block the caller of transport_send; keep a message
 * the network could not take (Raft retransmits) — a full queue drops, and a
 * failed send drops what queued behind it; wait long on a dead link — a send
 * is given up after 1 s, and the next try to that store (after 20-300 ms)
 * opens a new connection.
 *
 * Snapshot messages go over TinyKv.Snapshot: a first chunk carrying the
 * RaftMessage without the snapshot's data, then the data in 1 MiB chunks;
 * the receiver reassembles them (raft_service.c). They have their own queue
 * and 3 sender threads for the whole transport, apart from the per-store
 * Raft streams, so a large snapshot never delays another region's Raft
 * messages to the same store, and at most 3 are sent at once.
 */

#include <stddef.h>
#include <stdint.h>

#include "proto/rpc.h"
#include "raft_serverpb.pb-c.h"

struct transport;
struct raftstore;

/* Fills addr with the gRPC address of store_id; 0 or -1 if unknown. */
typedef int (*transport_resolve_fn)(void *ctx, uint64_t store_id, char *addr, size_t len);

struct transport *transport_new(struct rpc_client *rpc, transport_resolve_fn resolve,
                                void *resolve_ctx);
/* Reports unreachable peers and snapshot outcomes to rs (set before traffic;
 * set NULL before freeing rs: no report reaches it after this returns). */
void transport_set_raftstore(struct transport *t, struct raftstore *rs);
void transport_free(struct transport *t);

/* The raftstore_transport_ops.send implementation (ctx is the transport). */
void transport_send(void *ctx, uint64_t to_store_id, const RaftServerpb__RaftMessage *msg);

/* Chunk size of streamed snapshots. */
#define TRANSPORT_SNAPSHOT_CHUNK_BYTES (1024 * 1024)

#endif
