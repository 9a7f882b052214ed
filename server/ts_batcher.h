/* ts_batcher.h — timestamps for one-phase commits, asked without parking the asking thread. */
#ifndef TINYKV_SERVER_TS_BATCHER_H
#define TINYKV_SERVER_TS_BATCHER_H

/*
 * What it owns: one thread and the queue of timestamp requests waiting for it. The thread takes
 * every request queued since its last round trip and asks the scheduler's TSO for that many
 * consecutive timestamps at once (client_tso_batch), then answers each request in arrival order.
 *
 * Who calls it: node.c (and tests that wire an in-process store) give ts_batcher_get to the MVCC
 * engine as its asynchronous ts source (mvcc_engine_set_ts_source_async); the engine's one-phase
 * prewrites call it from the store loop or gRPC threads, which must not wait on the network.
 *
 * What it must never do: block its caller, answer a request twice or never (every request is
 * answered within the client's deadline, or with a failure when the batcher is freed), or hand
 * out a timestamp the TSO did not grant.
 */

#include "client/client.h"
#include "mvcc/mvcc.h"

struct ts_batcher;

/* ts_batcher_new starts the thread over `c` (borrowed: it must outlive the batcher). NULL on
 * failure. */
struct ts_batcher *ts_batcher_new(struct client *c);

/* ts_batcher_free answers what is still queued with a failure, stops the thread and frees. */
void ts_batcher_free(struct ts_batcher *b);

/* ts_batcher_get is an mvcc_ts_async_fn: `batcher` is a struct ts_batcher. cb runs on the
 * batcher's thread, or on this one (with a failure) when the batcher is stopping or out of
 * memory. */
void ts_batcher_get(void *batcher, mvcc_ts_cb cb, void *arg);

#endif
