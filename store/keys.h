/* keys.h — where the raftstore keeps its own state: key layout of the raft DB and the kv DB's meta
 * CF. */
#ifndef TINYKV_STORE_KEYS_H
#define TINYKV_STORE_KEYS_H

/*
 * Layout (all integers big-endian, so a region's keys sort together and log
 * entries sort by index):
 *
 *   raft DB, CF default:
 *     0x01 0x02 region_id(8) 0x01 index(8)   eraftpb.Entry           raft log
 *     0x01 0x02 region_id(8) 0x02            raft_serverpb.RaftLocalState
 *   kv DB, CF meta (written in the same batch as the data it describes):
 *     0x01 0x02 region_id(8) 0x03            raft_serverpb.RaftApplyState
 *     0x01 0x03 region_id(8) 0x01            raft_serverpb.RegionLocalState
 *     0x01 0x01                              raft_serverpb.StoreIdent
 *     0x01 0x04                              data format stamp (KEYS_FORMAT_STAMP)
 *
 * User data never shares a CF with these keys: it lives in the kv DB's
 * default, lock and write CFs, keyed as codec/codec.h says (enc(user key),
 * plus ~ts in default and write), the raw API's keys included.
 */

#include <stddef.h>
#include <stdint.h>

#define KEYS_RAFT_LOG_KEY_LEN 19
#define KEYS_REGION_KEY_LEN 11

void keys_raft_log(uint64_t region_id, uint64_t index, uint8_t out[KEYS_RAFT_LOG_KEY_LEN]);
/* The index of a raft log key, or 0 if `key` is not one of region_id's. */
uint64_t keys_raft_log_index(uint64_t region_id, const void *key, size_t len);
void keys_raft_state(uint64_t region_id, uint8_t out[KEYS_REGION_KEY_LEN]);
void keys_apply_state(uint64_t region_id, uint8_t out[KEYS_REGION_KEY_LEN]);
void keys_region_state(uint64_t region_id, uint8_t out[KEYS_REGION_KEY_LEN]);
/* Bounds of every region-state key, for scanning all regions at start-up. */
void keys_region_state_range(uint8_t start[2], uint8_t end[2]);
/* The region id of a region-state key, or 0. */
uint64_t keys_region_state_id(const void *key, size_t len);

extern const uint8_t KEYS_STORE_IDENT[2];
extern const uint8_t KEYS_FORMAT_KEY[2];
/* The value of KEYS_FORMAT_KEY for the layout above. A kv DB that holds data
 * but not this stamp was written by an older layout and is refused. */
#define KEYS_FORMAT_STAMP "tinykv-c kv format 2: enc(user key) in every CF"

void keys_put_u64(uint8_t *p, uint64_t v);
uint64_t keys_get_u64(const uint8_t *p);

#endif
