/* local_read.h — leader-lease reads answered on the caller's thread, without the store loop
 * (internal to store/; TiKV's LocalReader). */
#ifndef TINYKV_STORE_LOCAL_READ_H
#define TINYKV_STORE_LOCAL_READ_H

/*
 * What it owns: one entry per region this store leads under a live lease: the region's range and
 * version and the monotonic time until which a read may be served from the kv engine as it
 * stands. A table under its own lock, written by the loop thread, read by any thread.
 *
 * Who calls it: raftstore_read tries local_read_try first and posts the read to the loop only
 * when it declines. The loop publishes a peer's entry at the end of every round the peer was in
 * (peer_publish_local_read, peer.c, which decides whether the lease allows it) and withdraws it
 * at once, before acting on it, on anything that ends a lease early or changes what the entry
 * says: a leadership transfer, a membership change, a split, the peer's removal.
 *
 * What it must never do: serve a read the loop would not serve by its lease at that instant, or
 * decide anything itself. It declines whenever in doubt (no entry, past its time, another
 * version, a key outside the range, a request for another store): the loop then answers, with
 * the proper error if there is one. An entry's time stops half a lease before the lease itself,
 * so the loop still sees reads, and renews the lease, before it runs out.
 */

#include <stddef.h>
#include <stdint.h>

#include "store/raftstore.h"

struct local_reader;
struct region;

struct local_reader *local_read_new(void);
void local_read_free(struct local_reader *lr);

/* Loop thread: region r (its id, range and version) may be read locally until until_ms
 * (rpc_now_ms clock) by its leader of `term`, which the readers carry. Returns -1 on OOM, leaving
 * no entry. *served (may be NULL): the reads of the region served here so far, for
 * introspection. */
int local_read_publish(struct local_reader *lr, const struct region *r, uint64_t term,
                       uint64_t until_ms, uint64_t *served);
/* Loop thread: no local reads of region_id from now on (a read already past its check finishes
 * on the state it checked, which the caller has not changed yet). Returns the reads of the
 * region served here so far. */
uint64_t local_read_withdraw(struct local_reader *lr, uint64_t region_id);

/* Any thread: 1 when the read was answered here (cb called, with a reader bounded to the
 * region), 0 when the caller must post it to the loop. */
int local_read_try(struct local_reader *lr, struct engine *kv, uint64_t store_id,
                   const struct storage_ctx *ctx, raftstore_cb cb, void *arg);

#endif
