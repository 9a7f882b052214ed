/* codec.c — MVCC keys: enc(user key) ++ ~ts, and lock CF keys enc(user key), over codec/. */
#include <stdlib.h>
#include <string.h>

#include "mvcc/mvcc_internal.h"

int mvcc_key_encode(const void *key, size_t key_len, uint64_t ts, uint8_t **out, size_t *out_len)
{
    size_t enc_len = codec_key_len(key_len);
    uint8_t *buf = malloc(enc_len + CODEC_TS_BYTES);
    if (!buf)
        return MVCC_ERR_NOMEM;
    codec_key_encode(key, key_len, buf);
    codec_ts_encode(ts, buf + enc_len);
    *out = buf;
    *out_len = enc_len + CODEC_TS_BYTES;
    return MVCC_OK;
}

int mvcc_lock_key_encode(const void *key, size_t key_len, uint8_t **out, size_t *out_len)
{
    size_t enc_len = codec_key_len(key_len);
    uint8_t *buf = malloc(enc_len);
    if (!buf)
        return MVCC_ERR_NOMEM;
    codec_key_encode(key, key_len, buf);
    *out = buf;
    *out_len = enc_len;
    return MVCC_OK;
}

int mvcc_lock_key_decode(const void *enc, size_t enc_len, uint8_t **user, size_t *user_len)
{
    uint8_t *buf = malloc(enc_len ? enc_len : 1);
    if (!buf)
        return MVCC_ERR_NOMEM;
    if (codec_key_decode_exact(enc, enc_len, buf, user_len) != CODEC_OK) {
        free(buf);
        return MVCC_ERR_CORRUPT;
    }
    *user = buf;
    return MVCC_OK;
}

int mvcc_key_decode(const void *enc, size_t enc_len, uint8_t **user, size_t *user_len, uint64_t *ts)
{
    const uint8_t *in = enc;
    size_t n;
    uint8_t *buf;

    if (enc_len < CODEC_TS_BYTES + codec_key_len(0))
        return MVCC_ERR_CORRUPT;
    buf = malloc(enc_len);
    if (!buf)
        return MVCC_ERR_NOMEM;
    if (codec_key_decode_exact(in, enc_len - CODEC_TS_BYTES, buf, &n) != CODEC_OK) {
        free(buf);
        return MVCC_ERR_CORRUPT;
    }
    if (ts)
        *ts = codec_ts_decode(in + enc_len - CODEC_TS_BYTES);
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
    return enc_len == prefix_len + CODEC_TS_BYTES && memcmp(enc, prefix, prefix_len) == 0;
}
