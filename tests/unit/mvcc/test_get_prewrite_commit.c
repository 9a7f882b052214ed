/* test_get_prewrite_commit.c — KvGet, KvPrewrite and KvCommit scenarios (TinyKV 4B and more). */
#include "tests/unit/mvcc/mvcc_fixture.h"

/* A committed value is returned at the latest version. */
static void test_get_value(void **state)
{
    struct fx *f = *state;
    fx_committed(f, K(99), 50, 54, "\x2a", 1);
    assert_true(fx_get_ok(f, K(99), MVCC_TS_MAX, "\x2a", 1));
}

/* Repeated gets at the same version give the same value. */
static void test_get_value_repeated(void **state)
{
    struct fx *f = *state;
    fx_committed(f, K(99), 50, 54, "\x2a", 1);
    for (int i = 0; i < 3; i++)
        assert_true(fx_get_ok(f, K(99), 100, "\x2a", 1));
}

/* A get on an empty store, and on a key between two stored keys, is not found. */
static void test_get_empty_and_none(void **state)
{
    struct fx *f = *state;
    assert_false(fx_get_ok(f, K(100), MVCC_TS_MAX, NULL, 0));
    fx_committed(f, K(99), 50, 54, "\x2a", 1);
    fx_committed(f, K(101), 50, 54, "\x2a", 1);
    assert_false(fx_get_ok(f, K(100), MVCC_TS_MAX, NULL, 0));
}

/* With several versions, a get sees the newest commit at or before its version. */
static void test_get_versions(void **state)
{
    struct fx *f = *state;
    fx_committed(f, K(99), 50, 54, "\x2a", 1);
    fx_committed(f, K(99), 60, 66, "\x2b", 1);
    fx_committed(f, K(99), 120, 122, "\x2c", 1);
    assert_false(fx_get_ok(f, K(99), 40, NULL, 0));
    assert_true(fx_get_ok(f, K(99), 56, "\x2a", 1));
    assert_true(fx_get_ok(f, K(99), 60, "\x2a", 1));
    assert_true(fx_get_ok(f, K(99), 65, "\x2a", 1));
    assert_true(fx_get_ok(f, K(99), 66, "\x2b", 1));
    assert_true(fx_get_ok(f, K(99), 100, "\x2b", 1));
    assert_true(fx_get_ok(f, K(99), 122, "\x2c", 1));
}

/* A committed delete hides older values until a newer put. */
static void test_get_deleted(void **state)
{
    struct fx *f = *state;
    fx_committed(f, K(99), 50, 54, "\x2a", 1);
    fx_put_write(f, K(99), 66, MVCC_WRITE_DELETE, 60);
    fx_committed(f, K(99), 120, 122, "\x2c", 1);
    assert_true(fx_get_ok(f, K(99), 54, "\x2a", 1));
    assert_true(fx_get_ok(f, K(99), 65, "\x2a", 1));
    assert_false(fx_get_ok(f, K(99), 66, NULL, 0));
    assert_false(fx_get_ok(f, K(99), 67, NULL, 0));
    assert_true(fx_get_ok(f, K(99), 122, "\x2c", 1));
}

/* A lock blocks gets at or after its start ts (LOCKED with its details) but not earlier ones. */
static void test_get_locked(void **state)
{
    struct fx *f = *state;
    struct mvcc_get_result r;
    fx_committed(f, K(99), 50, 54, "\x2a", 1);
    fx_put_lock(f, K(99), K(99), 200, 3000, MVCC_WRITE_PUT);
    assert_true(fx_get_ok(f, K(99), 55, "\x2a", 1));
    assert_true(fx_get_ok(f, K(99), 199, "\x2a", 1));
    for (uint64_t v = 200; v <= 300; v += 100) {
        assert_int_equal(mvcc_get(f->e, NULL, K(99), v, &r), 0);
        assert_int_equal(r.error.kind, MVCC_KEY_ERR_LOCKED);
        assert_int_equal(r.error.locked.key_len, 1);
        assert_int_equal(((uint8_t *)r.error.locked.key)[0], 99);
        assert_int_equal(r.error.locked.primary_len, 1);
        assert_int_equal(((uint8_t *)r.error.locked.primary)[0], 99);
        assert_int_equal(r.error.locked.lock_version, 200);
        assert_int_equal(r.error.locked.lock_ttl, 3000);
        assert_null(r.value);
        mvcc_get_result_free(&r);
    }
}

/* A lock-only lock (op LOCK) does not block reads. */
static void test_get_ignores_lock_only_lock(void **state)
{
    struct fx *f = *state;
    fx_committed(f, K(7), 50, 54, "\x01", 1);
    fx_put_lock(f, K(7), K(7), 60, 10, MVCC_WRITE_LOCK);
    assert_true(fx_get_ok(f, K(7), 100, "\x01", 1));
}

/* A prewrite with no mutations succeeds and writes nothing. */
static void test_empty_prewrite(void **state)
{
    struct fx *f = *state;
    struct mvcc_prewrite_result r;
    assert_int_equal(fx_prewrite(f, NULL, 0, NULL, 0, 100, 0, &r), 0);
    assert_int_equal(r.n_errors, 0);
    fx_assert_lens(f, 0, 0, 0);
    mvcc_prewrite_result_free(&r);
}

/* A single prewrite stores the value at start ts and a lock with primary, ts, ttl and kind. */
static void test_single_prewrite(void **state)
{
    struct fx *f = *state;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("\x03", "\x2a")};
    assert_int_equal(fx_prewrite(f, m, 1, "\x01", 1, 100, 1000, &r), 0);
    assert_int_equal(r.n_errors, 0);
    assert_null(r.errors);
    fx_assert_lens(f, 1, 1, 0);
    assert_true(fx_has_value(f, K(3), 100, "\x2a", 1));
    void *raw;
    size_t rl;
    /* The lock CF is keyed by enc(key): one group, pad 7, marker 0xF8. */
    const uint8_t lock_key[] = {3, 0, 0, 0, 0, 0, 0, 0, 0xF8};
    assert_true(fx_raw_get(f, STORAGE_CF_LOCK, lock_key, sizeof lock_key, &raw, &rl));
    const uint8_t want[] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 3, 232};
    assert_int_equal(rl, sizeof(want));
    assert_memory_equal(raw, want, sizeof(want));
    free(raw);
    mvcc_prewrite_result_free(&r);
}

/* Two transactions prewriting one key: the second gets LOCKED and writes nothing. */
static void test_prewrite_locked(void **state)
{
    struct fx *f = *state;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m1[] = {PUT("\x03", "\x2a")}, m2[] = {PUT("\x03", "\x35")};
    assert_int_equal(fx_prewrite(f, m1, 1, "\x03", 1, 100, 0, &r), 0);
    assert_int_equal(r.n_errors, 0);
    assert_int_equal(fx_prewrite(f, m2, 1, "\x03", 1, 101, 0, &r), 0);
    assert_int_equal(r.n_errors, 1);
    assert_int_equal(r.errors[0].kind, MVCC_KEY_ERR_LOCKED);
    assert_int_equal(r.errors[0].locked.lock_version, 100);
    mvcc_prewrite_result_free(&r);
    fx_assert_lens(f, 1, 1, 0);
    assert_true(fx_has_value(f, K(3), 100, "\x2a", 1));
    struct mvcc_lock l;
    assert_true(fx_get_lock(f, K(3), &l));
    assert_int_equal(l.start_ts, 100);
    mvcc_lock_release(&l);
}

/* A write committed after the prewrite's start ts is a write conflict with its details. */
static void test_prewrite_written(void **state)
{
    struct fx *f = *state;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("\x03", "\x2a")};
    fx_committed(f, K(3), 80, 101, "\x05", 1);
    assert_int_equal(fx_prewrite(f, m, 1, "\x03", 1, 100, 0, &r), 0);
    assert_int_equal(r.n_errors, 1);
    assert_int_equal(r.errors[0].kind, MVCC_KEY_ERR_CONFLICT);
    assert_int_equal(r.errors[0].conflict.start_ts, 100);
    assert_int_equal(r.errors[0].conflict.conflict_ts, 101);
    assert_int_equal(r.errors[0].conflict.key_len, 1);
    assert_int_equal(((uint8_t *)r.errors[0].conflict.key)[0], 3);
    assert_int_equal(((uint8_t *)r.errors[0].conflict.primary)[0], 3);
    mvcc_prewrite_result_free(&r);
    fx_assert_lens(f, 1, 0, 1);
}

/* A write committed before the start ts is no conflict. */
static void test_prewrite_written_no_conflict(void **state)
{
    struct fx *f = *state;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("\x03", "\x2a")};
    fx_committed(f, K(3), 80, 90, "\x05", 1);
    assert_int_equal(fx_prewrite(f, m, 1, "\x03", 1, 100, 0, &r), 0);
    assert_int_equal(r.n_errors, 0);
    fx_assert_lens(f, 2, 1, 1);
    assert_true(fx_has_value(f, K(3), 80, "\x05", 1));
    assert_true(fx_has_value(f, K(3), 100, "\x2a", 1));
    mvcc_prewrite_result_free(&r);
}

/* Prewrites of different transactions on different keys both succeed. */
static void test_multiple_prewrites(void **state)
{
    struct fx *f = *state;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m1[] = {PUT("\x03", "\x2a")}, m2[] = {PUT("\x04", "\x35")};
    assert_int_equal(fx_prewrite(f, m1, 1, "\x03", 1, 100, 0, &r), 0);
    assert_int_equal(r.n_errors, 0);
    assert_int_equal(fx_prewrite(f, m2, 1, "\x04", 1, 101, 0, &r), 0);
    assert_int_equal(r.n_errors, 0);
    fx_assert_lens(f, 2, 2, 0);
    assert_true(fx_has_value(f, K(3), 100, "\x2a", 1));
    assert_true(fx_has_value(f, K(4), 101, "\x35", 1));
}

/* Two mutations of one key in one prewrite: the second wins. */
static void test_prewrite_overwrite(void **state)
{
    struct fx *f = *state;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("\x03", "\x2a"), PUT("\x03", "\x2d")};
    assert_int_equal(fx_prewrite(f, m, 2, "\x03", 1, 100, 0, &r), 0);
    assert_int_equal(r.n_errors, 0);
    fx_assert_lens(f, 1, 1, 0);
    assert_true(fx_has_value(f, K(3), 100, "\x2d", 1));
}

/* A prewrite of several keys (with a put, delete, put on one key) locks each key once. */
static void test_prewrite_multiple(void **state)
{
    struct fx *f = *state;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("\x03", "\x2a"),         PUT("\x04", "\x2b"),
                                PUT("\x05", "\x2c"),         DEL("\x04"),
                                PUT("\x04", "\x01\x03\x05"), PUT("\xff", "\x2d")};
    assert_int_equal(fx_prewrite(f, m, 6, "\x03", 1, 100, 0, &r), 0);
    assert_int_equal(r.n_errors, 0);
    fx_assert_lens(f, 4, 4, 0);
    assert_true(fx_has_value(f, K(4), 100, "\x01\x03\x05", 3));
    struct mvcc_lock l;
    assert_true(fx_get_lock(f, K(4), &l));
    assert_int_equal(l.kind, MVCC_WRITE_PUT);
    mvcc_lock_release(&l);
}

/* A repeated prewrite of the same transaction (its own lock present) succeeds idempotently. */
static void test_prewrite_idempotent_retry(void **state)
{
    struct fx *f = *state;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("a", "1"), PUT("b", "2")};
    assert_int_equal(fx_prewrite(f, m, 2, "a", 1, 100, 50, &r), 0);
    assert_int_equal(r.n_errors, 0);
    assert_int_equal(fx_prewrite(f, m, 2, "a", 1, 100, 50, &r), 0);
    assert_int_equal(r.n_errors, 0);
    fx_assert_lens(f, 2, 2, 0);
}

/* If one key fails, none of the other keys is locked or written. */
static void test_prewrite_partial_failure_writes_nothing(void **state)
{
    struct fx *f = *state;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("a", "1"), PUT("b", "2"), PUT("c", "3")};
    fx_put_lock(f, "b", 1, "z", 1, 90, 10, MVCC_WRITE_PUT);
    fx_committed(f, "c", 1, 95, 105, "x", 1);
    assert_int_equal(fx_prewrite(f, m, 3, "a", 1, 100, 0, &r), 0);
    assert_int_equal(r.n_errors, 2);
    assert_int_equal(r.errors[0].kind, MVCC_KEY_ERR_LOCKED);
    assert_int_equal(r.errors[1].kind, MVCC_KEY_ERR_CONFLICT);
    mvcc_prewrite_result_free(&r);
    fx_assert_lens(f, 1, 1, 1);
    struct mvcc_lock l;
    assert_false(fx_get_lock(f, "a", 1, &l));
    assert_false(fx_has_value(f, "a", 1, 100, NULL, 0));
}

/* A prewrite arriving after its own transaction was rolled back fails with a conflict. */
static void test_prewrite_after_rollback(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result wr;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("k", "v")};
    assert_int_equal(fx_rollback1(f, "k", 1, 100, &wr), 0);
    assert_int_equal(wr.error.kind, MVCC_KEY_ERR_NONE);
    assert_int_equal(fx_prewrite(f, m, 1, "k", 1, 100, 0, &r), 0);
    assert_int_equal(r.n_errors, 1);
    assert_int_equal(r.errors[0].kind, MVCC_KEY_ERR_CONFLICT);
    assert_int_equal(r.errors[0].conflict.conflict_ts, 100);
    mvcc_prewrite_result_free(&r);
    fx_assert_lens(f, 0, 0, 1);
}

/* A put then a delete of one key (in one prewrite, or by a retry) leaves no orphan value behind. */
static void test_prewrite_put_then_delete_leaves_no_value(void **state)
{
    struct fx *f = *state;
    struct mvcc_prewrite_result r;
    struct mvcc_write_result wr;
    struct mvcc_mutation m[] = {PUT("k", "v"), DEL("k")};
    assert_int_equal(fx_prewrite(f, m, 2, "k", 1, 100, 0, &r), 0);
    assert_int_equal(r.n_errors, 0);
    fx_assert_lens(f, 0, 1, 0);
    struct mvcc_lock l;
    assert_true(fx_get_lock(f, "k", 1, &l));
    assert_int_equal(l.kind, MVCC_WRITE_DELETE);
    mvcc_lock_release(&l);
    assert_int_equal(fx_rollback1(f, "k", 1, 100, &wr), 0);
    fx_assert_lens(f, 0, 0, 1);

    assert_int_equal(fx_prewrite(f, m, 1, "j", 1, 200, 0, &r), 0);
    assert_int_equal(fx_prewrite(f, m + 1, 1, "j", 1, 200, 0, &r), 0); /* retry as a delete */
    assert_int_equal(r.n_errors, 0);
    fx_assert_lens(f, 0, 1, 1);
}

/* A commit with no keys succeeds and writes nothing. */
static void test_empty_commit(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    assert_int_equal(mvcc_commit(f->e, NULL, NULL, 0, 100, 110, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 0, 0, 0);
}

/* Committing a prewritten key removes the lock and writes a put record pointing at start ts. */
static void test_single_commit(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    struct mvcc_write w;
    fx_put_value(f, K(3), 100, "\x2a", 1);
    fx_put_lock(f, K(3), K(3), 100, 0, MVCC_WRITE_PUT);
    assert_int_equal(fx_commit1(f, K(3), 100, 110, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 1, 0, 1);
    assert_true(fx_get_write(f, K(3), 110, &w));
    assert_int_equal(w.kind, MVCC_WRITE_PUT);
    assert_int_equal(w.start_ts, 100);
    assert_true(fx_get_ok(f, K(3), 110, "\x2a", 1));
    assert_false(fx_get_ok(f, K(3), 109, NULL, 0));
}

/* Committing over an older committed version keeps both versions. */
static void test_commit_overwrite(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_committed(f, K(3), 80, 84, "\x0f", 1);
    fx_put_value(f, K(3), 100, "\x2a", 1);
    fx_put_lock(f, K(3), K(1), 100, 0, MVCC_WRITE_PUT);
    assert_int_equal(fx_commit1(f, K(3), 100, 110, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 2, 0, 2);
    assert_true(fx_get_ok(f, K(3), 100, "\x0f", 1));
    assert_true(fx_get_ok(f, K(3), 110, "\x2a", 1));
}

/* Committing several keys leaves other committed data and other transactions' locks alone. */
static void test_commit_multiple_keys(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    const uint8_t k3[] = {3}, k1240[] = {12, 4, 0}, k15[] = {15};
    fx_put_value(f, k3, 1, 100, "\x2a", 1);
    fx_put_lock(f, k3, 1, K(1), 100, 0, MVCC_WRITE_PUT);
    fx_put_value(f, k1240, 3, 100, "\x01", 1);
    fx_put_lock(f, k1240, 3, K(1), 100, 0, MVCC_WRITE_PUT);
    fx_put_value(f, k15, 1, 100, "\x00", 1);
    fx_put_lock(f, k15, 1, K(1), 100, 0, MVCC_WRITE_PUT);
    fx_committed(f, K(4), 80, 84, "\x0f", 1);
    fx_committed(f, K(3, 0), 80, 84, "\x96", 1);
    fx_put_value(f, K(2), 99, "\x08", 1);
    fx_put_lock(f, K(2), K(2), 99, 0, MVCC_WRITE_PUT);
    fx_put_value(f, K(43, 6), 99, "\x01", 1);
    fx_put_lock(f, K(43, 6), K(2), 99, 0, MVCC_WRITE_PUT);

    struct mvcc_key_slice keys[] = {{k3, 1}, {k1240, 3}, {k15, 1}};
    assert_int_equal(mvcc_commit(f->e, NULL, keys, 3, 100, 110, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 7, 2, 5);
    struct mvcc_write w;
    for (int i = 0; i < 3; i++) {
        assert_true(fx_get_write(f, keys[i].data, keys[i].len, 110, &w));
        assert_int_equal(w.start_ts, 100);
    }
    struct mvcc_lock l;
    assert_true(fx_get_lock(f, K(2), &l));
    mvcc_lock_release(&l);
    assert_true(fx_get_lock(f, K(43, 6), &l));
    mvcc_lock_release(&l);
    assert_true(fx_get_ok(f, K(4), 200, "\x0f", 1));
}

/* One key listed twice in a commit is committed once. */
static void test_recommit_key(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_put_value(f, K(3), 100, "\x2a", 1);
    fx_put_lock(f, K(3), K(3), 100, 0, MVCC_WRITE_PUT);
    struct mvcc_key_slice keys[] = {{"\x03", 1}, {"\x03", 1}};
    assert_int_equal(mvcc_commit(f->e, NULL, keys, 2, 100, 110, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 1, 0, 1);
}

/* Committing a rolled-back transaction fails with ABORT and changes nothing. */
static void test_commit_after_rollback(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_put_write(f, K(3), 100, MVCC_WRITE_ROLLBACK, 100);
    assert_int_equal(fx_commit1(f, K(3), 100, 110, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_ABORT);
    assert_true(strlen(r.error.msg) > 0);
    mvcc_write_result_free(&r);
    fx_assert_lens(f, 0, 0, 1);
    struct mvcc_write w;
    assert_false(fx_get_write(f, K(3), 110, &w));
}

/* Another transaction's lock on the key makes commit fail retryable, leaving that lock. */
static void test_commit_conflict_race(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_put_value(f, K(3), 90, "\x6e", 1);
    fx_put_lock(f, K(3), K(3), 90, 0, MVCC_WRITE_PUT);
    assert_int_equal(fx_commit1(f, K(3), 100, 110, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_RETRYABLE);
    mvcc_write_result_free(&r);
    fx_assert_lens(f, 1, 1, 0);
}

/* A repeated commit of an already committed transaction succeeds and changes nothing. */
static void test_commit_repeat(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_committed(f, K(3), 100, 110, "\x2a", 1);
    assert_int_equal(fx_commit1(f, K(3), 100, 110, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 1, 0, 1);
    /* Even when another transaction has locked the key since. */
    fx_put_lock(f, K(3), K(3), 120, 0, MVCC_WRITE_PUT);
    assert_int_equal(fx_commit1(f, K(3), 100, 110, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 1, 1, 1);
}

/* Committing a key that was never prewritten is a no-op. */
static void test_commit_missing_prewrite(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_committed(f, K(4), 80, 84, "\x0f", 1);
    fx_committed(f, K(3, 0), 80, 84, "\x96", 1);
    assert_int_equal(fx_commit1(f, K(3), 100, 110, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 2, 0, 2);
    assert_int_equal(mem_storage_write_count(f->s), 4);
}

/* If one key of a commit fails, the other keys stay uncommitted. */
static void test_commit_partial_failure_writes_nothing(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_put_value(f, "a", 1, 100, "1", 1);
    fx_put_lock(f, "a", 1, "a", 1, 100, 0, MVCC_WRITE_PUT);
    fx_put_lock(f, "b", 1, "z", 1, 90, 0, MVCC_WRITE_PUT);
    struct mvcc_key_slice keys[] = {{"a", 1}, {"b", 1}};
    assert_int_equal(mvcc_commit(f->e, NULL, keys, 2, 100, 110, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_RETRYABLE);
    mvcc_write_result_free(&r);
    fx_assert_lens(f, 1, 2, 0);
}

/* Full cycle: prewritten keys block readers, then commit makes put and delete visible at commit ts.
 */
static void test_prewrite_commit_cycle(void **state)
{
    struct fx *f = *state;
    struct mvcc_prewrite_result pr;
    struct mvcc_write_result r;
    struct mvcc_get_result g;
    fx_committed(f, "d", 1, 10, 11, "old", 3);
    struct mvcc_mutation m[] = {PUT("p", "new"), DEL("d"), {MVCC_OP_LOCK, "l", 1, NULL, 0}};
    assert_int_equal(fx_prewrite(f, m, 3, "p", 1, 20, 100, &pr), 0);
    assert_int_equal(pr.n_errors, 0);
    assert_int_equal(mvcc_get(f->e, NULL, "d", 1, 25, &g), 0);
    assert_int_equal(g.error.kind, MVCC_KEY_ERR_LOCKED);
    assert_int_equal(g.error.locked.primary_len, 1);
    assert_memory_equal(g.error.locked.primary, "p", 1);
    mvcc_get_result_free(&g);
    assert_true(fx_get_ok(f, "d", 1, 19, "old", 3));

    struct mvcc_key_slice keys[] = {{"p", 1}, {"d", 1}, {"l", 1}};
    assert_int_equal(mvcc_commit(f->e, NULL, keys, 3, 20, 30, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 2, 0, 4);
    assert_true(fx_get_ok(f, "p", 1, 30, "new", 3));
    assert_false(fx_get_ok(f, "p", 1, 29, NULL, 0));
    assert_false(fx_get_ok(f, "d", 1, 30, NULL, 0));
    assert_true(fx_get_ok(f, "d", 1, 29, "old", 3));
    assert_false(fx_get_ok(f, "l", 1, 30, NULL, 0));
    struct mvcc_write w;
    assert_true(fx_get_write(f, "l", 1, 30, &w));
    assert_int_equal(w.kind, MVCC_WRITE_LOCK);
    assert_true(fx_get_write(f, "d", 1, 30, &w));
    assert_int_equal(w.kind, MVCC_WRITE_DELETE);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_get_value),
        T(test_get_value_repeated),
        T(test_get_empty_and_none),
        T(test_get_versions),
        T(test_get_deleted),
        T(test_get_locked),
        T(test_get_ignores_lock_only_lock),
        T(test_empty_prewrite),
        T(test_single_prewrite),
        T(test_prewrite_locked),
        T(test_prewrite_written),
        T(test_prewrite_written_no_conflict),
        T(test_multiple_prewrites),
        T(test_prewrite_overwrite),
        T(test_prewrite_multiple),
        T(test_prewrite_idempotent_retry),
        T(test_prewrite_partial_failure_writes_nothing),
        T(test_prewrite_after_rollback),
        T(test_prewrite_put_then_delete_leaves_no_value),
        T(test_empty_commit),
        T(test_single_commit),
        T(test_commit_overwrite),
        T(test_commit_multiple_keys),
        T(test_recommit_key),
        T(test_commit_after_rollback),
        T(test_commit_conflict_race),
        T(test_commit_repeat),
        T(test_commit_missing_prewrite),
        T(test_commit_partial_failure_writes_nothing),
        T(test_prewrite_commit_cycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
