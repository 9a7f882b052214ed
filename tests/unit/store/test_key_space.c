/* test_key_space.c — one key space: stored keys of every CF lie in a region's data range exactly
 * when their user keys lie in the region; the format stamp refuses an older layout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/codec.h"
#include "store/engine.h"
#include "store/region.h"
#include "tests/lib/test_util.h"

static const uint8_t ALPHABET[] = {0x00, 0x01, 0x2F, 0x61, 0xF7, 0xFE, 0xFF};

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A random key of 1 to 18 bytes over the alphabet (lengths around multiples of 8 included). */
static size_t random_key(uint64_t *s, uint8_t *out)
{
    size_t len = 1 + rng_next(s) % 18;
    for (size_t i = 0; i < len; i++)
        out[i] = ALPHABET[rng_next(s) % sizeof ALPHABET];
    return len;
}

/* The stored form of user key u in CF cf: enc(u) in lock, enc(u) ++ ~ts in default and write. */
static size_t stored_form(const uint8_t *u, size_t len, int cf, uint64_t ts, uint8_t *out)
{
    codec_key_encode(u, len, out);
    size_t n = codec_key_len(len);
    if (cf != STORAGE_CF_LOCK) {
        codec_ts_encode(ts, out + n);
        n += CODEC_TS_BYTES;
    }
    return n;
}

static uint64_t seed_from_env(uint64_t dflt)
{
    const char *s = getenv("KEY_SPACE_SEED");
    return s ? strtoull(s, NULL, 10) : dflt;
}

/* For random regions and keys of every CF: stored key in the data range <=> user key in the region;
 * and enc() round-trips. */
static void test_stored_key_in_range_iff_user_key_in_region(void **state)
{
    (void)state;
    uint64_t seed = seed_from_env(20261202), s = seed;
    printf("seed %llu (KEY_SPACE_SEED=... to repeat)\n", (unsigned long long)seed);
    uint8_t start[32], end[32], u[32], stored[64], back[64];
    for (int iter = 0; iter < 200000; iter++) {
        struct region r = {0};
        r.start_key = start;
        r.start_key_len = rng_next(&s) % 5 == 0 ? 0 : random_key(&s, start);
        r.end_key = end;
        r.end_key_len = rng_next(&s) % 5 == 0 ? 0 : random_key(&s, end);
        size_t ulen = random_key(&s, u);
        int cf = (int)(rng_next(&s) % STORAGE_CF_COUNT);
        uint64_t ts = rng_next(&s) % 3 == 0 ? (rng_next(&s) % 2 ? 0 : UINT64_MAX) : rng_next(&s);
        size_t n = stored_form(u, ulen, cf, ts, stored);
        int want = store_region_contains(&r, u, ulen);
        int got = store_region_contains_stored(&r, stored, n);
        if (want != got)
            fail_msg("seed %llu iteration %d: cf %d key len %zu start len %zu end len %zu: user "
                     "%d stored %d",
                     (unsigned long long)seed, iter, cf, ulen, r.start_key_len, r.end_key_len, want,
                     got);
        /* The same through the encoded bounds, as RocksDB compares them. */
        uint8_t *lo, *hi;
        size_t lo_len, hi_len;
        assert_int_equal(store_region_data_range(&r, &lo, &lo_len, &hi, &hi_len), 0);
        int in = codec_bytes_cmp(stored, n, lo, lo_len) >= 0 &&
                 (hi_len == 0 || codec_bytes_cmp(stored, n, hi, hi_len) < 0);
        free(lo);
        free(hi);
        if (in != want)
            fail_msg("seed %llu iteration %d: bytewise data range disagrees",
                     (unsigned long long)seed, iter);
        size_t blen;
        assert_int_equal(codec_user_key_of(stored, n, back, &blen), CODEC_OK);
        assert_int_equal(blen, ulen);
        assert_memory_equal(back, u, ulen);
    }
}

/* A bounded reader over a region's data range yields, in every CF, exactly the region's keys. */
static void test_bounded_reader_sees_exactly_the_region(void **state)
{
    (void)state;
    char *dir = test_tmpdir_new("tinykv-keyspace");
    char err[256];
    struct engine *e;
    assert_int_equal(engine_open(dir, 0, &e, err, sizeof err), 0);
    uint64_t seed = seed_from_env(77), s = seed;
    printf("seed %llu\n", (unsigned long long)seed);
    enum { N = 600 };
    static uint8_t keys[N][32];
    static size_t lens[N];
    for (int i = 0; i < N; i++) {
        lens[i] = random_key(&s, keys[i]);
        for (int cf = 0; cf < STORAGE_CF_COUNT; cf++) {
            uint8_t st[64];
            size_t n = stored_form(keys[i], lens[i], cf, rng_next(&s), st);
            struct storage_modify m = {STORAGE_MODIFY_PUT, (enum storage_cf)cf, st, n, "v", 1};
            assert_int_equal(engine_write(e, &m, 1, err, sizeof err), 0);
        }
    }
    for (int round = 0; round < 40; round++) {
        uint8_t start[32], end[32];
        struct region r = {0};
        r.start_key = start;
        r.start_key_len = round % 7 == 0 ? 0 : random_key(&s, start);
        r.end_key = end;
        r.end_key_len = round % 5 == 0 ? 0 : random_key(&s, end);
        uint8_t *lo, *hi;
        size_t lo_len, hi_len;
        assert_int_equal(store_region_data_range(&r, &lo, &lo_len, &hi, &hi_len), 0);
        struct storage_reader *rd;
        assert_int_equal(engine_snapshot_reader_bounded(e, lo, lo_len, hi, hi_len, &rd), 0);
        for (int cf = 0; cf < STORAGE_CF_COUNT; cf++) {
            /* Distinct user keys in the region, and distinct user keys the iterator shows. */
            size_t want = 0, got = 0;
            for (int i = 0; i < N; i++) {
                int dup = 0;
                for (int j = 0; j < i && !dup; j++)
                    dup = lens[j] == lens[i] && memcmp(keys[j], keys[i], lens[i]) == 0;
                if (!dup && store_region_contains(&r, keys[i], lens[i]))
                    want++;
            }
            struct storage_iter *it;
            assert_int_equal(storage_reader_iter(rd, (enum storage_cf)cf, &it), 0);
            uint8_t prev[32];
            size_t prev_len = SIZE_MAX;
            for (storage_iter_seek(it, lo, lo_len); storage_iter_valid(it); storage_iter_next(it)) {
                size_t klen, ulen;
                const uint8_t *k = storage_iter_key(it, &klen);
                uint8_t u[64];
                assert_int_equal(codec_user_key_of(k, klen, u, &ulen), CODEC_OK);
                assert_true(store_region_contains(&r, u, ulen));
                if (prev_len != ulen || memcmp(prev, u, ulen) != 0)
                    got++;
                memcpy(prev, u, ulen);
                prev_len = ulen;
            }
            storage_iter_free(it);
            if (want != got)
                fail_msg("seed %llu round %d cf %d: %zu keys in the region, reader saw %zu",
                         (unsigned long long)seed, round, cf, want, got);
        }
        storage_reader_free(rd);
        free(lo);
        free(hi);
    }
    engine_close(e);
    test_tmpdir_remove(dir);
}

/* An empty data directory is stamped; one holding data without the stamp is refused with a
 * clear message, and stays untouched. */
static void test_format_stamp_refuses_old_layout(void **state)
{
    (void)state;
    char err[512];
    char *fresh = test_tmpdir_new("tinykv-stamp");
    struct engine *e;
    assert_int_equal(engine_open(fresh, 0, &e, err, sizeof err), 0);
    assert_int_equal(engine_format_check(e, err, sizeof err), 0);
    engine_close(e);
    assert_int_equal(engine_open(fresh, 0, &e, err, sizeof err), 0);
    assert_int_equal(engine_format_check(e, err, sizeof err), 0);
    engine_close(e);
    test_tmpdir_remove(fresh);

    char *old = test_tmpdir_new("tinykv-stamp-old");
    assert_int_equal(engine_open(old, 0, &e, err, sizeof err), 0);
    struct storage_modify m = {STORAGE_MODIFY_PUT, STORAGE_CF_LOCK, "raw-user-key", 12, "l", 1};
    assert_int_equal(engine_write(e, &m, 1, err, sizeof err), 0);
    engine_close(e);
    assert_int_equal(engine_open(old, 0, &e, err, sizeof err), 0);
    err[0] = 0;
    assert_int_equal(engine_format_check(e, err, sizeof err), STORAGE_ERR_INVALID);
    assert_non_null(strstr(err, "older TinyKV-C key layout"));
    assert_int_equal(engine_format_check(e, err, sizeof err), STORAGE_ERR_INVALID);
    engine_close(e);
    /* The standalone server refuses it the same way. */
    struct storage *st = NULL;
    assert_int_equal(standalone_storage_open(old, &st, err, sizeof err), STORAGE_ERR_INVALID);
    assert_null(st);
    test_tmpdir_remove(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stored_key_in_range_iff_user_key_in_region),
        cmocka_unit_test(test_bounded_reader_sees_exactly_the_region),
        cmocka_unit_test(test_format_stamp_refuses_old_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
