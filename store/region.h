/* region.h — a region's metadata as the raftstore holds it: range, epoch, peers (internal to
 * store/). */
#ifndef TINYKV_STORE_REGION_H
#define TINYKV_STORE_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "metapb.pb-c.h"

struct region_peer {
    uint64_t id;
    uint64_t store_id;
};

/* metapb.Region. Keys and peers are malloc'd and owned by the struct. An
 * empty end key means +infinity. */
struct region {
    uint64_t id;
    uint8_t *start_key;
    size_t start_key_len;
    uint8_t *end_key;
    size_t end_key_len;
    uint64_t conf_ver;
    uint64_t version;
    struct region_peer *peers;
    size_t n_peers;
};

/* store_region_copy deep-copies src into dst (dst's old contents are not freed); -1 on OOM. */
int store_region_copy(struct region *dst, const struct region *src);
/* store_region_free releases what r owns and zeroes it. */
void store_region_free(struct region *r);

/* Conversions. region_from_proto fills dst (owned); store_region_to_proto returns a
 * Metapb__Region owned by the caller (protobuf_c_message_free_unpacked(.., NULL)). */
int store_region_from_proto(struct region *dst, const Metapb__Region *src);
Metapb__Region *store_region_to_proto(const struct region *r);

/* The peer of r on store_id / with id peer_id, or NULL. Borrowed from r. */
const struct region_peer *store_region_peer_on_store(const struct region *r, uint64_t store_id);
const struct region_peer *store_region_peer_by_id(const struct region *r, uint64_t peer_id);

/* Whether user key `key` lies in [start_key, end_key). */
int store_region_contains(const struct region *r, const void *key, size_t len);

/* Whether a stored data key (any CF; codec/codec.h) lies in the region's
 * data range [enc(start_key), enc(end_key)), i.e. its user key is in the region. */
int store_region_contains_stored(const struct region *r, const void *key, size_t len);

/*
 * store_region_data_range: the region's data range in stored keys, [*lo, *hi);
 * *lo_len 0 means from the first key, *hi_len 0 means no upper bound. Both
 * are malloc'd and owned by the caller (free(); set even when empty).
 * Returns 0 or -1 on OOM.
 */
int store_region_data_range(const struct region *r, uint8_t **lo, size_t *lo_len, uint8_t **hi,
                            size_t *hi_len);

/* store_region_add_peer / region_remove_peer edit the peer list; -1 on OOM or absent. */
int store_region_add_peer(struct region *r, struct region_peer p);
int store_region_remove_peer(struct region *r, uint64_t peer_id);

#endif
