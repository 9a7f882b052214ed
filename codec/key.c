/* key.c — memcomparable encoding of user keys and the descending timestamp suffix. */
#include <string.h>

#include "codec/codec.h"

#define GROUP_BYTES 8
#define MARKER_FULL 0xFF

size_t codec_key_len(size_t len)
{
    return (len / GROUP_BYTES + 1) * (GROUP_BYTES + 1);
}

void codec_key_encode(const void *key, size_t len, uint8_t *out)
{
    const uint8_t *p = key;
    size_t done = 0;
    /* Always at least one group: the last one carries the pad count, so a
     * key that is a prefix of another sorts first. */
    for (;;) {
        size_t take = len - done < GROUP_BYTES ? len - done : GROUP_BYTES;
        if (take)
            memcpy(out, p + done, take);
        memset(out + take, 0, GROUP_BYTES - take);
        out[GROUP_BYTES] = (uint8_t)(MARKER_FULL - (GROUP_BYTES - take));
        out += GROUP_BYTES + 1;
        done += take;
        if (take < GROUP_BYTES)
            break;
    }
}

int codec_key_decode(const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len,
                     size_t *consumed)
{
    size_t pos = 0, n = 0;
    for (;;) {
        if (in_len - pos < GROUP_BYTES + 1)
            return CODEC_ERR_CORRUPT;
        size_t pad = MARKER_FULL - in[pos + GROUP_BYTES];
        if (pad > GROUP_BYTES)
            return CODEC_ERR_CORRUPT;
        size_t real = GROUP_BYTES - pad;
        for (size_t i = real; i < GROUP_BYTES; i++)
            if (in[pos + i] != 0)
                return CODEC_ERR_CORRUPT;
        memcpy(out + n, in + pos, real);
        n += real;
        pos += GROUP_BYTES + 1;
        if (pad)
            break;
    }
    *out_len = n;
    *consumed = pos;
    return CODEC_OK;
}

int codec_key_decode_exact(const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len)
{
    size_t consumed;
    int rc = codec_key_decode(in, in_len, out, out_len, &consumed);
    if (rc == CODEC_OK && consumed != in_len)
        rc = CODEC_ERR_CORRUPT;
    return rc;
}

int codec_user_key_of(const uint8_t *stored, size_t len, uint8_t *out, size_t *out_len)
{
    size_t consumed;
    return codec_key_decode(stored, len, out, out_len, &consumed);
}

void codec_ts_encode(uint64_t ts, uint8_t out[CODEC_TS_BYTES])
{
    uint64_t inv = ~ts;
    for (int i = 0; i < CODEC_TS_BYTES; i++)
        out[i] = (uint8_t)(inv >> (56 - 8 * i));
}

uint64_t codec_ts_decode(const uint8_t in[CODEC_TS_BYTES])
{
    uint64_t inv = 0;
    for (int i = 0; i < CODEC_TS_BYTES; i++)
        inv = inv << 8 | in[i];
    return ~inv;
}

int codec_key_cmp_stored(const void *user, size_t user_len, const uint8_t *stored,
                         size_t stored_len)
{
    const uint8_t *p = user;
    size_t done = 0, pos = 0;
    uint8_t group[GROUP_BYTES + 1];
    for (;;) {
        size_t take = user_len - done < GROUP_BYTES ? user_len - done : GROUP_BYTES;
        if (take)
            memcpy(group, p + done, take);
        memset(group + take, 0, GROUP_BYTES - take);
        group[GROUP_BYTES] = (uint8_t)(MARKER_FULL - (GROUP_BYTES - take));
        size_t avail = stored_len - pos < sizeof group ? stored_len - pos : sizeof group;
        int c = avail ? memcmp(group, stored + pos, avail) : 0;
        if (c)
            return c;
        if (avail < sizeof group)
            return 1; /* stored is a proper prefix of enc(user) */
        pos += sizeof group;
        done += take;
        if (take < GROUP_BYTES)
            return pos < stored_len ? -1 : 0;
    }
}

int codec_bytes_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}
