/* test_scan.c — KvScan: versions, deletes, limits, bounds and locks. */
#include "tests/unit/mvcc/mvcc_fixture.h"

/* The data set of TinyKV's scan tests: commits before, after and around ts 100. */
static int scan_setup(void **state)
{
    fx_setup(state);
    struct fx *f = *state;
    const uint8_t before[][2] = {{1},     {1, 23}, {3}, {3, 45}, {3, 46},
                                 {3, 47}, {3, 48}, {4}, {120},   {199}};
    const size_t before_len[] = {1, 2, 1, 2, 2, 2, 2, 1, 1, 1};
    const uint8_t before_val[] = {50, 55, 51, 56, 57, 58, 59, 52, 53, 54};
    for (int i = 0; i < 10; i++)
        fx_committed(f, before[i], before_len[i], 80, 99, &before_val[i], 1);
    const uint8_t after_val[] = {58, 57, 58, 59};
    for (uint8_t i = 0; i < 4; i++) {
        const uint8_t k[] = {4, (uint8_t)(45 + i)};
        fx_committed(f, k, 2, 110, 116, &after_val[i], 1);
    }
    for (uint8_t i = 0; i < 4; i++) {
        const uint8_t k[] = {5, (uint8_t)(45 + i)}, v = (uint8_t)(60 + i);
        fx_committed(f, k, 2, 97, 101, &v, 1);
    }
    /* Key 150: put, deleted at 101, put again at 116. */
    fx_committed(f, K(150), 80, 99, "\x2a", 1);
    fx_put_write(f, K(150), 101, MVCC_WRITE_DELETE, 97);
    fx_committed(f, K(150), 110, 116, "\x40", 1);
    return 0;
}

static void scan(struct fx *f, const void *start, size_t slen, const void *end, size_t elen,
                 uint32_t limit, uint64_t version, struct mvcc_scan_result *r)
{
    assert_int_equal(
        mvcc_scan(f->e, NULL, &(struct mvcc_scan_req){start, slen, end, elen, limit, version, 0, 0},
                  r),
        0);
    assert_int_equal(r->error.kind, MVCC_KEY_ERR_NONE);
}

static void assert_pair(const struct mvcc_scan_result *r, size_t i, const void *key, size_t klen,
                        uint8_t value)
{
    assert_true(i < r->n_pairs);
    assert_int_equal(r->pairs[i].error.kind, MVCC_KEY_ERR_NONE);
    assert_int_equal(r->pairs[i].key_len, klen);
    assert_memory_equal(r->pairs[i].key, key, klen);
    assert_int_equal(r->pairs[i].value_len, 1);
    assert_int_equal(((uint8_t *)r->pairs[i].value)[0], value);
}

/* A scan starting after the last key returns nothing. */
static void test_scan_empty(void **state)
{
    struct fx *f = *state;
    struct mvcc_scan_result r;
    scan(f, K(200), NULL, 0, 10000, 100, &r);
    assert_int_equal(r.n_pairs, 0);
    mvcc_scan_result_free(&r);
}

/* limit 0 returns nothing. */
static void test_scan_limit_zero(void **state)
{
    struct fx *f = *state;
    struct mvcc_scan_result r;
    scan(f, K(3), NULL, 0, 0, 100, &r);
    assert_int_equal(r.n_pairs, 0);
    assert_null(r.pairs);
}

/* A scan from the start sees exactly the values committed by its version, in key order. */
static void test_scan_all(void **state)
{
    struct fx *f = *state;
    struct mvcc_scan_result r;
    scan(f, K(0), NULL, 0, 10000, 100, &r);
    assert_int_equal(r.n_pairs, 11);
    assert_pair(&r, 0, K(1), 50);
    assert_pair(&r, 1, K(1, 23), 55);
    assert_pair(&r, 7, K(4), 52);
    assert_pair(&r, 8, K(120), 53);
    assert_pair(&r, 9, K(150), 42);
    assert_pair(&r, 10, K(199), 54);
    mvcc_scan_result_free(&r);
    /* An empty start key means the beginning too. */
    scan(f, NULL, 0, NULL, 0, 10000, 100, &r);
    assert_int_equal(r.n_pairs, 11);
    mvcc_scan_result_free(&r);
}

/* key_only returns the same visible keys as a full scan, without values. */
static void test_scan_key_only(void **state)
{
    struct fx *f = *state;
    struct mvcc_scan_result full, keys;
    scan(f, NULL, 0, NULL, 0, 10000, 100, &full);
    struct mvcc_scan_req req = {.limit = 10000, .version = 100, .key_only = 1};
    assert_int_equal(mvcc_scan(f->e, NULL, &req, &keys), 0);
    assert_int_equal(keys.n_pairs, full.n_pairs);
    for (size_t i = 0; i < keys.n_pairs; i++) {
        assert_int_equal(keys.pairs[i].key_len, full.pairs[i].key_len);
        assert_memory_equal(keys.pairs[i].key, full.pairs[i].key, keys.pairs[i].key_len);
        assert_int_equal(keys.pairs[i].value_len, 0);
    }
    mvcc_scan_result_free(&full);
    mvcc_scan_result_free(&keys);
}

/* The limit caps the number of pairs; the scan starts at the start key. */
static void test_scan_limit(void **state)
{
    struct fx *f = *state;
    struct mvcc_scan_result r;
    scan(f, K(2), NULL, 0, 6, 100, &r);
    assert_int_equal(r.n_pairs, 6);
    assert_pair(&r, 0, K(3), 51);
    assert_pair(&r, 1, K(3, 45), 56);
    assert_pair(&r, 5, K(4), 52);
    mvcc_scan_result_free(&r);
}

/* A deleted key disappears from the scan between its delete and its next put. */
static void test_scan_deleted(void **state)
{
    struct fx *f = *state;
    struct mvcc_scan_result r;
    scan(f, K(100), NULL, 0, 10000, 100, &r);
    assert_int_equal(r.n_pairs, 3);
    assert_pair(&r, 1, K(150), 42);
    mvcc_scan_result_free(&r);
    scan(f, K(100), NULL, 0, 10000, 105, &r);
    assert_int_equal(r.n_pairs, 2);
    assert_pair(&r, 0, K(120), 53);
    assert_pair(&r, 1, K(199), 54);
    mvcc_scan_result_free(&r);
    scan(f, K(100), NULL, 0, 10000, 120, &r);
    assert_int_equal(r.n_pairs, 3);
    assert_pair(&r, 1, K(150), 64);
    mvcc_scan_result_free(&r);
}

/* Commits after the version are invisible; at a later version all 19 keys show. */
static void test_scan_versions(void **state)
{
    struct fx *f = *state;
    struct mvcc_scan_result r;
    scan(f, K(4), K(6), 10000, 101, &r);
    assert_int_equal(r.n_pairs, 5); /* {4} and the four {5,x} committed at 101 */
    assert_pair(&r, 0, K(4), 52);
    assert_pair(&r, 1, K(5, 45), 60);
    mvcc_scan_result_free(&r);
    scan(f, NULL, 0, NULL, 0, 10000, MVCC_TS_MAX, &r);
    assert_int_equal(r.n_pairs, 19);
    mvcc_scan_result_free(&r);
}

/* A key with more versions than the scan steps over before it seeks (a rollback among them):
 * at every version the scan answers the one visible then, and goes on to the next key. */
static void test_scan_many_versions(void **state)
{
    struct fx *f = *state;
    for (uint8_t i = 0; i < 12; i++) {
        uint8_t v = (uint8_t)(70 + i);
        fx_committed(f, K(2), 200 + 10 * i, 205 + 10 * i, &v, 1);
    }
    fx_put_write(f, K(2), 400, MVCC_WRITE_ROLLBACK, 400);
    struct mvcc_scan_result r;
    for (uint8_t i = 0; i < 12; i++) {
        scan(f, K(2), K(3, 1), 10, 205 + 10 * i, &r);
        assert_int_equal(r.n_pairs, 2);
        assert_pair(&r, 0, K(2), 70 + i);
        assert_pair(&r, 1, K(3), 51);
        mvcc_scan_result_free(&r);
    }
    scan(f, K(2), K(3, 1), 10, 204, &r); /* below every version of {2} */
    assert_int_equal(r.n_pairs, 1);
    assert_pair(&r, 0, K(3), 51);
    mvcc_scan_result_free(&r);
    scan(f, K(2), K(3, 1), 10, 1000, &r);
    assert_int_equal(r.n_pairs, 2);
    assert_pair(&r, 0, K(2), 81);
    mvcc_scan_result_free(&r);
}

/* The end key bounds the scan, exclusively. */
static void test_scan_end_key(void **state)
{
    struct fx *f = *state;
    struct mvcc_scan_result r;
    scan(f, K(3), K(3, 47), 10000, 100, &r);
    assert_int_equal(r.n_pairs, 3);
    assert_pair(&r, 2, K(3, 46), 57);
    mvcc_scan_result_free(&r);
}

/* Locked keys (with or without older versions) come back as per-key errors and the scan goes on. */
static void test_scan_locks(void **state)
{
    struct fx *f = *state;
    struct mvcc_scan_result r;
    fx_put_lock(f, K(3), K(3), 90, 10, MVCC_WRITE_PUT);       /* locked key with a value */
    fx_put_lock(f, K(3, 0), K(3), 90, 10, MVCC_WRITE_DELETE); /* lock-only key */
    fx_put_lock(f, K(3, 45), K(3), 150, 10, MVCC_WRITE_PUT);  /* lock after the version */
    fx_put_lock(f, K(3, 46), K(3), 90, 10, MVCC_WRITE_LOCK);  /* lock-only kind: not blocking */
    fx_put_lock(f, K(3, 50), K(3), 150, 10, MVCC_WRITE_PUT);  /* later lock, no value */
    scan(f, K(3), K(4), 10000, 100, &r);
    assert_int_equal(r.n_pairs, 6);
    assert_int_equal(r.pairs[0].error.kind, MVCC_KEY_ERR_LOCKED);
    assert_int_equal(r.pairs[0].key_len, 1);
    assert_null(r.pairs[0].value);
    assert_int_equal(r.pairs[0].error.locked.lock_version, 90);
    assert_int_equal(r.pairs[1].error.kind, MVCC_KEY_ERR_LOCKED);
    assert_int_equal(r.pairs[1].key_len, 2);
    assert_int_equal(r.pairs[1].error.locked.key_len, 2);
    assert_pair(&r, 2, K(3, 45), 56);
    assert_pair(&r, 3, K(3, 46), 57);
    assert_pair(&r, 4, K(3, 47), 58);
    assert_pair(&r, 5, K(3, 48), 59);
    mvcc_scan_result_free(&r);
    /* Locked pairs count toward the limit. */
    scan(f, K(3), K(4), 2, 100, &r);
    assert_int_equal(r.n_pairs, 2);
    assert_int_equal(r.pairs[1].error.kind, MVCC_KEY_ERR_LOCKED);
    mvcc_scan_result_free(&r);
}

/* Keys of more than 8 bytes (several codec groups) and keys that prefix each other scan in order.
 */
static void test_scan_long_keys(void **state)
{
    struct fx *f = *state;
    struct mvcc_scan_result r;
    const char *keys[] = {"aaaaaaaa", "aaaaaaaa\x00", "aaaaaaaab", "aaaaaaaabbbbbbbbc", "aaab"};
    const size_t lens[] = {8, 9, 9, 17, 4};
    for (int i = 4; i >= 0; i--) {
        uint8_t v = (uint8_t)i;
        fx_committed(f, keys[i], lens[i], 300, 301, &v, 1);
    }
    scan(f, "a", 1, "b", 1, 100, 400, &r);
    assert_int_equal(r.n_pairs, 5);
    for (int i = 0; i < 5; i++)
        assert_pair(&r, (size_t)i, keys[i], lens[i], (uint8_t)i);
    mvcc_scan_result_free(&r);
}

/* max_bytes stops the scan before the pairs' keys and values pass it, but always returns one pair.
 */
static void test_scan_max_bytes(void **state)
{
    struct fx *f = *state;
    struct mvcc_scan_result r;
    /* {1}:1+1, {1,23}:2+1, {3}:1+1 → 7 bytes for three pairs. */
    struct mvcc_scan_req req = {.limit = 100, .version = 100, .max_bytes = 6};
    assert_int_equal(mvcc_scan(f->e, NULL, &req, &r), 0);
    assert_int_equal(r.n_pairs, 2);
    assert_pair(&r, 1, K(1, 23), 55);
    mvcc_scan_result_free(&r);
    req.max_bytes = 7;
    assert_int_equal(mvcc_scan(f->e, NULL, &req, &r), 0);
    assert_int_equal(r.n_pairs, 3);
    mvcc_scan_result_free(&r);
    req.max_bytes = 1;
    assert_int_equal(mvcc_scan(f->e, NULL, &req, &r), 0);
    assert_int_equal(r.n_pairs, 1);
    mvcc_scan_result_free(&r);
    /* A locked pair counts its key's bytes. */
    fx_put_lock(f, K(1), K(1), 90, 10, MVCC_WRITE_PUT);
    req.max_bytes = 4;
    assert_int_equal(mvcc_scan(f->e, NULL, &req, &r), 0);
    assert_int_equal(r.n_pairs, 2);
    assert_int_equal(r.pairs[0].error.kind, MVCC_KEY_ERR_LOCKED);
    assert_pair(&r, 1, K(1, 23), 55);
    mvcc_scan_result_free(&r);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, scan_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_scan_empty),     T(test_scan_limit_zero), T(test_scan_all),
        T(test_scan_limit),     T(test_scan_deleted),    T(test_scan_versions),
        T(test_scan_end_key),   T(test_scan_locks),      T(test_scan_long_keys),
        T(test_scan_max_bytes), T(test_scan_key_only),   T(test_scan_many_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
