/* test_codec.c — key encoding with timestamps, lock and write record layouts. */
#include <stdio.h>
#include <time.h>

#include "tests/unit/mvcc/mvcc_fixture.h"

static int cmp_bytes(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return al < bl ? -1 : al > bl;
}

/* Known encodings: groups of 8 bytes, zero padding, marker 0xFF minus the pad count. */
static void test_encode_vectors(void **state)
{
    (void)state;
    uint8_t out[27];
    const uint8_t empty[] = {0, 0, 0, 0, 0, 0, 0, 0, 0xF7};
    codec_key_encode("", 0, out);
    assert_int_equal(codec_key_len(0), 9);
    assert_memory_equal(out, empty, 9);

    const uint8_t abc[] = {'a', 'b', 'c', 0, 0, 0, 0, 0, 0xFA};
    codec_key_encode("abc", 3, out);
    assert_memory_equal(out, abc, 9);

    const uint8_t eight[] = {1, 2, 3, 4, 5, 6, 7, 8, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0xF7};
    codec_key_encode((const uint8_t[]){1, 2, 3, 4, 5, 6, 7, 8}, 8, out);
    assert_int_equal(codec_key_len(8), 18);
    assert_memory_equal(out, eight, 18);

    const uint8_t nine[] = {1, 2, 3, 4, 5, 6, 7, 8, 0xFF, 9, 0, 0, 0, 0, 0, 0, 0, 0xF8};
    codec_key_encode((const uint8_t[]){1, 2, 3, 4, 5, 6, 7, 8, 9}, 9, out);
    assert_memory_equal(out, nine, 18);
}

/* The timestamp suffix is the complemented big-endian ts, and decode inverts encode. */
static void test_key_with_ts_roundtrip(void **state)
{
    (void)state;
    uint8_t *enc, *user;
    size_t len, ulen;
    uint64_t ts;
    assert_int_equal(mvcc_key_encode("key", 3, 0x0102030405060708ull, &enc, &len), 0);
    assert_int_equal(len, 17);
    const uint8_t suffix[] = {0xFE, 0xFD, 0xFC, 0xFB, 0xFA, 0xF9, 0xF8, 0xF7};
    assert_memory_equal(enc + 9, suffix, 8);
    assert_int_equal(mvcc_key_decode(enc, len, &user, &ulen, &ts), 0);
    assert_int_equal(ulen, 3);
    assert_memory_equal(user, "key", 3);
    assert_int_equal(ts, 0x0102030405060708ull);
    free(user);
    free(enc);
}

/* Random keys: encoding keeps user key order, and versions of one key sort newest first. */
static void test_order_random(void **state)
{
    (void)state;
    unsigned seed = getenv("MVCC_SEED") ? (unsigned)strtoul(getenv("MVCC_SEED"), NULL, 10)
                                        : (unsigned)time(NULL);
    printf("test_order_random: seed %u (MVCC_SEED to rerun)\n", seed);
    srand(seed);
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t a[20], b[20];
        size_t al = (size_t)rand() % 20, bl = (size_t)rand() % 20;
        /* Small alphabet so prefixes and zero bytes are common. */
        for (size_t i = 0; i < al; i++)
            a[i] = (uint8_t)(rand() % 3);
        for (size_t i = 0; i < bl; i++)
            b[i] = (uint8_t)(rand() % 3);
        uint64_t ta = (uint64_t)rand(), tb = (uint64_t)rand();
        uint8_t *ea, *eb;
        size_t eal, ebl;
        assert_int_equal(mvcc_key_encode(a, al, ta, &ea, &eal), 0);
        assert_int_equal(mvcc_key_encode(b, bl, tb, &eb, &ebl), 0);
        int want = cmp_bytes(a, al, b, bl);
        if (want == 0)
            want = ta > tb ? -1 : ta < tb; /* newer first */
        assert_int_equal(cmp_bytes(ea, eal, eb, ebl), want);

        uint8_t *user;
        size_t ulen;
        uint64_t ts;
        assert_int_equal(mvcc_key_decode(ea, eal, &user, &ulen, &ts), 0);
        assert_int_equal(ulen, al);
        if (al)
            assert_memory_equal(user, a, al);
        assert_int_equal(ts, ta);
        free(user);
        free(ea);
        free(eb);
    }
}

/* Malformed encoded keys are rejected as corrupt rather than misread. */
static void test_decode_corrupt(void **state)
{
    (void)state;
    uint8_t *enc;
    size_t len;
    assert_int_equal(mvcc_key_encode("abc", 3, 7, &enc, &len), 0);
    assert_int_equal(mvcc_key_decode(enc, len - 1, NULL, NULL, NULL), MVCC_ERR_CORRUPT);
    enc[8] = 0xF0; /* pad count 15 */
    assert_int_equal(mvcc_key_decode(enc, len, NULL, NULL, NULL), MVCC_ERR_CORRUPT);
    enc[8] = 0xFA;
    enc[5] = 1; /* non-zero pad byte */
    assert_int_equal(mvcc_key_decode(enc, len, NULL, NULL, NULL), MVCC_ERR_CORRUPT);
    free(enc);
}

/* A lock record is primary | kind | start_ts BE | ttl BE, and decodes back. */
static void test_lock_record_layout(void **state)
{
    (void)state;
    struct mvcc_lock l = {.primary = (const uint8_t *)"pk",
                          .primary_len = 2,
                          .start_ts = 0x1122334455667788ull,
                          .ttl_ms = 1000,
                          .kind = MVCC_WRITE_PUT};
    uint8_t buf[19];
    assert_int_equal(mvcc_lock_encoded_len(&l), 19);
    mvcc_lock_encode(&l, buf);
    const uint8_t want[] = {'p',  'k', 1, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                            0x88, 0,   0, 0,    0,    0,    0,    3,    232};
    assert_memory_equal(buf, want, 19);
    struct mvcc_lock d;
    assert_int_equal(mvcc_lock_decode(buf, 19, &d), 0);
    assert_int_equal(d.primary_len, 2);
    assert_memory_equal(d.primary, "pk", 2);
    assert_int_equal(d.start_ts, l.start_ts);
    assert_int_equal(d.ttl_ms, 1000);
    assert_int_equal(d.kind, MVCC_WRITE_PUT);
    /* Too short, or an unknown kind, is corrupt. */
    assert_int_equal(mvcc_lock_decode(buf, 16, &d), MVCC_ERR_CORRUPT);
    buf[2] = 3; /* rollback is not a lock kind */
    assert_int_equal(mvcc_lock_decode(buf, 19, &d), MVCC_ERR_CORRUPT);
}

/* A write record is kind | start_ts BE, 9 bytes. */
static void test_write_record_layout(void **state)
{
    (void)state;
    struct mvcc_write w = {.start_ts = 50, .kind = MVCC_WRITE_DELETE}, d;
    uint8_t buf[MVCC_WRITE_RECORD_MAX];
    assert_int_equal(mvcc_write_encode(&w, buf), 9);
    const uint8_t want[] = {2, 0, 0, 0, 0, 0, 0, 0, 50};
    assert_memory_equal(buf, want, 9);
    assert_int_equal(mvcc_write_decode(buf, 9, &d), 0);
    assert_int_equal(d.kind, MVCC_WRITE_DELETE);
    assert_int_equal(d.start_ts, 50);
    assert_int_equal(mvcc_write_decode(buf, 8, &d), MVCC_ERR_CORRUPT);
    buf[0] = 9;
    assert_int_equal(mvcc_write_decode(buf, 9, &d), MVCC_ERR_CORRUPT);
}

/* A put may carry its value (up to 255 bytes) after the 9 bytes as 'v', length, bytes; a record
 * whose length byte disagrees with its size, or a short value on another kind, is corrupt. */
static void test_write_record_short_value(void **state)
{
    (void)state;
    uint8_t buf[MVCC_WRITE_RECORD_MAX];
    struct mvcc_write w = {.start_ts = 50,
                           .kind = MVCC_WRITE_PUT,
                           .has_short = 1,
                           .short_value = (const uint8_t *)"hey",
                           .short_len = 3},
                      d;
    assert_int_equal(mvcc_write_encode(&w, buf), 14);
    const uint8_t want[] = {1, 0, 0, 0, 0, 0, 0, 0, 50, 'v', 3, 'h', 'e', 'y'};
    assert_memory_equal(buf, want, 14);
    assert_int_equal(mvcc_write_decode(buf, 14, &d), 0);
    assert_true(d.has_short);
    assert_int_equal(d.short_len, 3);
    assert_memory_equal(d.short_value, "hey", 3);
    assert_int_equal(mvcc_write_decode(buf, 13, &d), MVCC_ERR_CORRUPT);
    assert_int_equal(mvcc_write_decode(buf, 10, &d), MVCC_ERR_CORRUPT);
    buf[0] = MVCC_WRITE_DELETE;
    assert_int_equal(mvcc_write_decode(buf, 14, &d), MVCC_ERR_CORRUPT);
    buf[0] = MVCC_WRITE_PUT;
    buf[9] = 'x';
    assert_int_equal(mvcc_write_decode(buf, 14, &d), MVCC_ERR_CORRUPT);
    /* Too long for a record, or on another kind: the value is not kept there. */
    w.short_len = 256;
    assert_int_equal(mvcc_write_encode(&w, buf), 9);
    w.short_len = 3;
    w.kind = MVCC_WRITE_DELETE;
    assert_int_equal(mvcc_write_encode(&w, buf), 9);
}

/* TSO helpers split physical milliseconds and logical counter at bit 18. */
static void test_tso_parts(void **state)
{
    (void)state;
    uint64_t ts = mvcc_ts_compose(1234567, 42);
    assert_int_equal(ts, (1234567ull << 18) | 42);
    assert_int_equal(mvcc_ts_physical_ms(ts), 1234567);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_vectors),     cmocka_unit_test(test_key_with_ts_roundtrip),
        cmocka_unit_test(test_order_random),       cmocka_unit_test(test_decode_corrupt),
        cmocka_unit_test(test_lock_record_layout), cmocka_unit_test(test_write_record_layout),
        cmocka_unit_test(test_lock_record_layout), cmocka_unit_test(test_write_record_short_value),
        cmocka_unit_test(test_tso_parts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
