/* store_meta.h — the regions of one store: an id map and a sorted range index (internal to store/).
 */
#ifndef TINYKV_STORE_STORE_META_H
#define TINYKV_STORE_STORE_META_H

/*
 * What it owns: a copy of every initialized region this store has a peer
 * of, indexed by id and by start key (ranges never overlap), under its own
 * mutex.
 *
 * Who calls it: the store loop is the only writer — it updates a region when
 * a split, a membership change or a snapshot changes it, adds a region when
 * it creates an initialized peer, and removes it after the peer's data is
 * cleared. The gRPC services read it from any thread to describe regions in
 * KeyNotInRegion and EpochNotMatch errors; the loop reads it to refuse
 * messages and snapshots whose range overlaps a region it has.
 *
 * What it must never do: hold its mutex across anything but its own
 * memory work, or hold two entries whose ranges overlap.
 */

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "store/region.h"

struct store_meta {
    pthread_mutex_t mu;
    struct region *by_key; /* sorted by start key; owned copies */
    size_t n, cap;
    uint64_t *ids_sorted; /* region ids, ascending; ids_pos[i] indexes by_key */
    size_t *ids_pos;
};

void store_meta_init(struct store_meta *m);
void store_meta_close(struct store_meta *m);

/*
 * store_meta_put adds region r (copied), or replaces the entry with its id.
 * Returns 0, -1 on OOM, or -2 when r's range overlaps another region's
 * (nothing changes then).
 */
int store_meta_put(struct store_meta *m, const struct region *r);

/* store_meta_remove drops region `id` (no-op if absent). */
void store_meta_remove(struct store_meta *m, uint64_t id);

/*
 * store_meta_overlap returns the id of a region other than `except_id`
 * whose range overlaps [start, end) (end_len 0: +inf), or 0.
 */
uint64_t store_meta_overlap(struct store_meta *m, const void *start, size_t start_len,
                            const void *end, size_t end_len, uint64_t except_id);

/* store_meta_get copies region `id` into *out (owned: region_free); 0, or -1 if absent or OOM. */
int store_meta_get(struct store_meta *m, uint64_t id, struct region *out);

/* store_meta_find copies the region holding user key `key` into *out; 0 or -1. */
int store_meta_find(struct store_meta *m, const void *key, size_t len, struct region *out);

/* store_meta_next copies the region that starts where region `id` ends; 0 or -1. */
int store_meta_next(struct store_meta *m, uint64_t id, struct region *out);

size_t store_meta_count(struct store_meta *m);

#endif
