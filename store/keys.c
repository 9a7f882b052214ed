/* keys.c — encoding of the raftstore's meta keys (layout in keys.h). */
#include "store/keys.h"

#include <string.h>

const uint8_t KEYS_STORE_IDENT[2] = {0x01, 0x01};
const uint8_t KEYS_FORMAT_KEY[2] = {0x01, 0x04};

void keys_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t keys_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void region_key(uint8_t prefix, uint64_t region_id, uint8_t suffix, uint8_t *out)
{
    out[0] = 0x01;
    out[1] = prefix;
    keys_put_u64(out + 2, region_id);
    out[10] = suffix;
}

void keys_raft_log(uint64_t region_id, uint64_t index, uint8_t out[KEYS_RAFT_LOG_KEY_LEN])
{
    region_key(0x02, region_id, 0x01, out);
    keys_put_u64(out + 11, index);
}

uint64_t keys_raft_log_index(uint64_t region_id, const void *key, size_t len)
{
    uint8_t prefix[KEYS_REGION_KEY_LEN];
    region_key(0x02, region_id, 0x01, prefix);
    if (len != KEYS_RAFT_LOG_KEY_LEN || memcmp(key, prefix, sizeof prefix) != 0)
        return 0;
    return keys_get_u64((const uint8_t *)key + 11);
}

void keys_raft_state(uint64_t region_id, uint8_t out[KEYS_REGION_KEY_LEN])
{
    region_key(0x02, region_id, 0x02, out);
}

void keys_apply_state(uint64_t region_id, uint8_t out[KEYS_REGION_KEY_LEN])
{
    region_key(0x02, region_id, 0x03, out);
}

void keys_region_state(uint64_t region_id, uint8_t out[KEYS_REGION_KEY_LEN])
{
    region_key(0x03, region_id, 0x01, out);
}

void keys_region_state_range(uint8_t start[2], uint8_t end[2])
{
    start[0] = 0x01;
    start[1] = 0x03;
    end[0] = 0x01;
    end[1] = 0x04;
}

uint64_t keys_region_state_id(const void *key, size_t len)
{
    const uint8_t *k = key;
    if (len != KEYS_REGION_KEY_LEN || k[0] != 0x01 || k[1] != 0x03 || k[10] != 0x01)
        return 0;
    return keys_get_u64(k + 2);
}
