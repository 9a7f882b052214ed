/* codec.h — the one key space: how every stored data key of a store is built from a user key. */
#ifndef TINYKV_CODEC_CODEC_H
#define TINYKV_CODEC_CODEC_H

/*
 * What it owns: the memcomparable encoding enc() of user keys, the
 * descending timestamp suffix, and the mapping from a region's bounds (user
 * keys) to its data range (stored keys).
 *
 * enc(key) cuts the key into groups of 8 bytes; the last group is padded
 * with zeros, and every group is followed by a marker byte 0xFF minus the
 * number of pad bytes (so a full group has 0xFF and the last group 0xF7 to
 * 0xFE; a key of a multiple of 8 bytes ends with an all-pad group). enc()
 * preserves order (a < b  <=>  enc(a) < enc(b), bytewise) and is
 * prefix-free (enc(a) is never a proper prefix of enc(b)). Hence for any
 * suffix s: enc(lo) <= enc(k) ++ s < enc(hi)  <=>  lo <= k < hi.
 *
 * Every column family stores enc(user_key), followed in `default` and
 * `write` by ~ts as 8 big-endian bytes (newer versions first). The raw API
 * stores enc(key) too, so a region's data range is [enc(start), enc(end))
 * (an empty end: unbounded) in every CF.
 *
 * Who calls it: mvcc/ (transactional keys), store/ (raw API, region data
 * ranges, split keys), client/ and tests. It depends on libc only.
 *
 * What it must never do: allocate (callers size buffers with
 * codec_key_len) or accept a key that does not decode exactly.
 */

#include <stddef.h>
#include <stdint.h>

enum {
    CODEC_OK = 0,
    CODEC_ERR_CORRUPT = 6000, /* the bytes are not an enc() sequence */
};

#define CODEC_TS_BYTES 8

/* Length of enc(key) for a key of `len` bytes. */
size_t codec_key_len(size_t len);

/* Writes enc(key) to out, which holds codec_key_len(len) bytes. */
void codec_key_encode(const void *key, size_t len, uint8_t *out);

/*
 * codec_key_decode decodes the enc() sequence at the start of `in` into
 * `out` (room for in_len bytes suffices): *out_len gets the user key's
 * length, *consumed the encoded bytes read. Returns CODEC_OK or
 * CODEC_ERR_CORRUPT.
 */
int codec_key_decode(const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len,
                     size_t *consumed);

/* Decodes `in`, which must be exactly one enc() sequence; CODEC_ERR_CORRUPT otherwise. */
int codec_key_decode_exact(const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len);

/* The descending timestamp suffix: ~ts big-endian, and back. */
void codec_ts_encode(uint64_t ts, uint8_t out[CODEC_TS_BYTES]);
uint64_t codec_ts_decode(const uint8_t in[CODEC_TS_BYTES]);

/*
 * codec_user_key_of returns the user key a stored data key belongs to
 * (decoded into `out`, room for len bytes), whatever its CF: it decodes the
 * leading enc() sequence and ignores what follows. CODEC_ERR_CORRUPT if it
 * does not decode.
 */
int codec_user_key_of(const uint8_t *stored, size_t len, uint8_t *out, size_t *out_len);

/*
 * codec_key_cmp_stored compares enc(user) with a stored key, bytewise,
 * without building enc(user): <0, 0 or >0. With the order properties above,
 * a stored data key k (any CF) has user key >= u  <=>  cmp(u, k) <= 0, and
 * user key < u  <=>  cmp(u, k) > 0.
 */
int codec_key_cmp_stored(const void *user, size_t user_len, const uint8_t *stored,
                         size_t stored_len);

/* Byte order of two byte strings, as memcmp then shorter first: <0, 0, >0. */
int codec_bytes_cmp(const void *a, size_t al, const void *b, size_t bl);

#endif
