/* fuzz_codec_key.c — fuzzes the memcomparable key codec (codec/key.c): decoding, comparing, round
 * trips. */
#include <string.h>

#include "codec/codec.h"
#include "tests/fuzz/fuzz.h"

/* Splits the input in two at its first byte (a length): a user key and a stored key. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Whatever decodes is canonical: encoding the result gives back the bytes read. */
    uint8_t *out = malloc(size ? size : 1);
    FUZZ_CHECK(out);
    size_t out_len = 0, consumed = 0;
    if (codec_key_decode(data, size, out, &out_len, &consumed) == CODEC_OK) {
        FUZZ_CHECK(consumed <= size && out_len <= consumed);
        FUZZ_CHECK(codec_key_len(out_len) == consumed);
        uint8_t *again = malloc(consumed);
        FUZZ_CHECK(again);
        codec_key_encode(out, out_len, again);
        FUZZ_CHECK(memcmp(again, data, consumed) == 0);
        /* The stored key compares equal to its own user key, and to nothing shorter. */
        FUZZ_CHECK(codec_key_cmp_stored(out, out_len, data, consumed) == 0);
        free(again);
    }
    int exact = codec_key_decode_exact(data, size, out, &out_len);
    FUZZ_CHECK(exact == CODEC_OK || exact == CODEC_ERR_CORRUPT);
    if (exact == CODEC_OK)
        FUZZ_CHECK(codec_key_len(out_len) == size);
    size_t user_len;
    (void)codec_user_key_of(data, size, out, &user_len);
    free(out);

    /* Any bytes encode and decode back exactly, and the order of encodings is the order of keys. */
    size_t split = size ? data[0] % (size + 1) : 0;
    const uint8_t *a = data, *b = data + split;
    size_t al = split, bl = size - split;
    size_t ael = codec_key_len(al), bel = codec_key_len(bl);
    uint8_t *ae = malloc(ael), *be = malloc(bel), *back = malloc(ael);
    FUZZ_CHECK(ae && be && back);
    codec_key_encode(a, al, ae);
    codec_key_encode(b, bl, be);
    size_t back_len;
    FUZZ_CHECK(codec_key_decode_exact(ae, ael, back, &back_len) == CODEC_OK);
    FUZZ_CHECK(back_len == al && (al == 0 || memcmp(back, a, al) == 0));
    int user_order = codec_bytes_cmp(a, al, b, bl);
    int enc_order = codec_bytes_cmp(ae, ael, be, bel);
    FUZZ_CHECK((user_order < 0) == (enc_order < 0) && (user_order == 0) == (enc_order == 0));
    int stored_order = codec_key_cmp_stored(a, al, be, bel);
    FUZZ_CHECK((stored_order < 0) == (user_order < 0) && (stored_order == 0) == (user_order == 0));
    /* A timestamp suffix round-trips. */
    if (size >= CODEC_TS_BYTES) {
        uint64_t ts = codec_ts_decode(data);
        uint8_t ts_enc[CODEC_TS_BYTES];
        codec_ts_encode(ts, ts_enc);
        FUZZ_CHECK(memcmp(ts_enc, data, CODEC_TS_BYTES) == 0);
    }
    free(ae);
    free(be);
    free(back);
    return 0;
}
