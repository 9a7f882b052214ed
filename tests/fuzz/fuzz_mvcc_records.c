/* fuzz_mvcc_records.c — fuzzes the MVCC key codec (mvcc/codec.c) and the lock and write records
 * (mvcc/records.c) with the bytes a corrupt or hostile store could hold. */
#include <string.h>

#include "mvcc/mvcc_internal.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A data-CF key: enc(user) ++ ~ts. What decodes re-encodes to the same bytes. */
    uint8_t *user = NULL;
    size_t user_len = 0;
    uint64_t ts = 0;
    int rc = mvcc_key_decode(data, size, &user, &user_len, &ts);
    FUZZ_CHECK(rc == MVCC_OK || rc == MVCC_ERR_CORRUPT);
    if (rc == MVCC_OK) {
        uint8_t *enc;
        size_t enc_len;
        FUZZ_CHECK(mvcc_key_encode(user, user_len, ts, &enc, &enc_len) == MVCC_OK);
        FUZZ_CHECK(enc_len == size && memcmp(enc, data, size) == 0);
        uint8_t *prefix;
        size_t prefix_len;
        FUZZ_CHECK(mvcc_lock_key_encode(user, user_len, &prefix, &prefix_len) == MVCC_OK);
        FUZZ_CHECK(mvcc_key_has_prefix(data, size, prefix, prefix_len) == 1);
        free(prefix);
        free(enc);
        free(user);
    }
    uint64_t ts_only;
    rc = mvcc_key_decode(data, size, NULL, NULL, &ts_only);
    FUZZ_CHECK(rc == MVCC_OK || rc == MVCC_ERR_CORRUPT);

    /* A lock-CF key: enc(user) exactly. */
    rc = mvcc_lock_key_decode(data, size, &user, &user_len);
    FUZZ_CHECK(rc == MVCC_OK || rc == MVCC_ERR_CORRUPT);
    if (rc == MVCC_OK) {
        uint8_t *enc;
        size_t enc_len;
        FUZZ_CHECK(mvcc_lock_key_encode(user, user_len, &enc, &enc_len) == MVCC_OK);
        FUZZ_CHECK(enc_len == size && memcmp(enc, data, size) == 0);
        free(enc);
        free(user);
    }

    /* A lock record: what decodes encodes back to the same bytes. */
    struct mvcc_lock lock;
    if (mvcc_lock_decode(data, size, &lock) == MVCC_OK) {
        FUZZ_CHECK(lock.primary_len + MVCC_LOCK_FIXED_BYTES == size);
        size_t len = mvcc_lock_encoded_len(&lock);
        FUZZ_CHECK(len == size);
        uint8_t *enc = malloc(len);
        FUZZ_CHECK(enc);
        mvcc_lock_encode(&lock, enc);
        FUZZ_CHECK(memcmp(enc, data, size) == 0);
        free(enc);
        mvcc_lock_release(&lock);
    }

    /* A write record. */
    struct mvcc_write w;
    if (mvcc_write_decode(data, size, &w) == MVCC_OK) {
        uint8_t enc[MVCC_WRITE_RECORD_MAX];
        size_t len = mvcc_write_encode(&w, enc);
        FUZZ_CHECK(len == size && memcmp(enc, data, size) == 0);
    }
    return 0;
}
