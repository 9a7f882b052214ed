/* codec.c — memcomparable encoding of user keys, with inverted big-endian timestamps. */
#include <stdlib.h>
#include <string.h>

#include "mvcc/mvcc_internal.h"

#define GROUP_BYTES 8
#define MARKER_FULL 0xFF

size_t mvcc_codec_encoded_len(size_t key_len)
{
    return (key_len / GROUP_BYTES + 1) * (GROUP_BYTES + 1);
}

void mvcc_codec_encode_bytes(const void *key, size_t len, uint8_t *out)
{
    const uint8_t *p = key;
    size_t done = 0;

    /* Always at least one group: the final one carries the pad count, so a
     * key that is a prefix of another sorts first. */
    for (;;) {
        size_t left = len - done;
        size_t take = left < GROUP_BYTES ? left : GROUP_BYTES;
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

int mvcc_codec_decode_bytes(const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len,
                            size_t *consumed)
{
    size_t pos = 0, n = 0;

    for (;;) {
        if (in_len - pos < GROUP_BYTES + 1)
            return MVCC_ERR_CORRUPT;
        uint8_t marker = in[pos + GROUP_BYTES];
        size_t pad = MARKER_FULL - marker;
        if (pad > GROUP_BYTES)
            return MVCC_ERR_CORRUPT;
        size_t real = GROUP_BYTES - pad;
        for (size_t i = real; i < GROUP_BYTES; i++)
            if (in[pos + i] != 0)
                return MVCC_ERR_CORRUPT;
        memcpy(out + n, in + pos, real);
        n += real;
        pos += GROUP_BYTES + 1;
        if (pad)
            break;
    }
    *out_len = n;
    *consumed = pos;
    return MVCC_OK;
}

int mvcc_key_encode(const void *key, size_t key_len, uint64_t ts, uint8_t **out, size_t *out_len)
{
    size_t enc_len = mvcc_codec_encoded_len(key_len);
    uint8_t *buf = malloc(enc_len + 8);
    if (!buf)
        return MVCC_ERR_NOMEM;
    mvcc_codec_encode_bytes(key, key_len, buf);
    uint64_t inv = ~ts;
    for (int i = 0; i < 8; i++)
        buf[enc_len + i] = (uint8_t)(inv >> (56 - 8 * i));
    *out = buf;
    *out_len = enc_len + 8;
    return MVCC_OK;
}

int mvcc_key_decode(const void *enc, size_t enc_len, uint8_t **user, size_t *user_len, uint64_t *ts)
{
    const uint8_t *in = enc;
    size_t n, consumed;
    uint8_t *buf;
    int rc;

    if (enc_len < 8 + GROUP_BYTES + 1)
        return MVCC_ERR_CORRUPT;
    buf = malloc(enc_len);
    if (!buf)
        return MVCC_ERR_NOMEM;
    rc = mvcc_codec_decode_bytes(in, enc_len - 8, buf, &n, &consumed);
    if (rc != MVCC_OK || consumed != enc_len - 8) {
        free(buf);
        return MVCC_ERR_CORRUPT;
    }
    uint64_t inv = 0;
    for (int i = 0; i < 8; i++)
        inv = (inv << 8) | in[consumed + i];
    if (ts)
        *ts = ~inv;
    if (user_len)
        *user_len = n;
    if (user)
        *user = buf;
    else
        free(buf);
    return MVCC_OK;
}

int mvcc_key_has_prefix(const void *enc, size_t enc_len, const uint8_t *prefix, size_t prefix_len)
{
    /* enc() is prefix-free, so sharing enc(key) exactly means same user key
     * as long as only the 8-byte ts follows. */
    return enc_len == prefix_len + 8 && memcmp(enc, prefix, prefix_len) == 0;
}
