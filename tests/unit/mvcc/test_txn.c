/* test_txn.c — MvccTxn (TinyKV 4A): buffered writes, lock/value/write reads at versions. */
#include "tests/unit/mvcc/mvcc_fixture.h"

/* Opens a txn at start_ts over a fresh snapshot; close with txn_done. */
static struct mvcc_txn txn_at(struct fx *f, uint64_t start_ts)
{
    struct storage_reader *r;
    struct mvcc_txn t;
    assert_int_equal(storage_reader(f->s, NULL, &r, NULL), 0);
    mvcc_txn_init(&t, r, start_ts);
    return t;
}

static void txn_done(struct fx *f, struct mvcc_txn *t, int write)
{
    if (write) {
        struct storage_error err;
        assert_int_equal(mvcc_txn_write(t, f->s, NULL, &err), 0);
    }
    struct storage_reader *r = t->reader;
    mvcc_txn_close(t);
    storage_reader_free(r);
}

/* put_lock buffers a lock record under the raw user key, written in one batch. */
static void test_put_lock(void **state)
{
    struct fx *f = *state;
    struct mvcc_txn t = txn_at(f, 42);
    struct mvcc_lock l = {.primary = (const uint8_t *)"\x10",
                          .primary_len = 1,
                          .start_ts = 42,
                          .ttl_ms = 7,
                          .kind = MVCC_WRITE_PUT};
    assert_int_equal(mvcc_txn_put_lock(&t, K(16), &l), 0);
    fx_assert_lens(f, 0, 0, 0); /* nothing before the write */
    txn_done(f, &t, 1);
    fx_assert_lens(f, 0, 1, 0);
    struct mvcc_lock got;
    assert_true(fx_get_lock(f, K(16), &got));
    assert_int_equal(got.start_ts, 42);
    assert_int_equal(got.ttl_ms, 7);
    assert_int_equal(got.kind, MVCC_WRITE_PUT);
    assert_memory_equal(got.primary, "\x10", 1);
    mvcc_lock_release(&got);
    assert_int_equal(mem_storage_write_count(f->s), 1);
}

/* put_write stores a write record at (key, commit_ts); put_value a value at (key, start_ts). */
static void test_put_write_and_value(void **state)
{
    struct fx *f = *state;
    struct mvcc_txn t = txn_at(f, 0);
    struct mvcc_write w = {.start_ts = 0, .kind = MVCC_WRITE_PUT}, got;
    assert_int_equal(mvcc_txn_put_write(&t, K(16, 240), 0, &w), 0);
    assert_int_equal(mvcc_txn_put_value(&t, K(16), "\x09", 1), 0);
    txn_done(f, &t, 1);
    fx_assert_lens(f, 1, 0, 1);
    assert_true(fx_get_write(f, K(16, 240), 0, &got));
    assert_int_equal(got.kind, MVCC_WRITE_PUT);
    assert_true(fx_has_value(f, K(16), 0, "\x09", 1));
}

/* get_lock finds a stored lock, and none on another key. */
static void test_get_lock(void **state)
{
    struct fx *f = *state;
    fx_put_lock(f, K(1), K(9), 5, 100, MVCC_WRITE_DELETE);
    struct mvcc_txn t = txn_at(f, 5);
    struct mvcc_lock l;
    int found;
    assert_int_equal(mvcc_txn_get_lock(&t, K(1), &l, &found), 0);
    assert_true(found);
    assert_int_equal(l.start_ts, 5);
    assert_int_equal(l.kind, MVCC_WRITE_DELETE);
    assert_int_equal(l.primary_len, 1);
    assert_int_equal(l.primary[0], 9);
    mvcc_lock_release(&l);
    assert_int_equal(mvcc_txn_get_lock(&t, K(2), &l, &found), 0);
    assert_false(found);
    txn_done(f, &t, 0);
}

/* A txn sees its own buffered lock changes: a put then a delete in one command. */
static void test_get_lock_sees_own_buffer(void **state)
{
    struct fx *f = *state;
    fx_put_lock(f, K(1), K(1), 5, 0, MVCC_WRITE_PUT);
    struct mvcc_txn t = txn_at(f, 5);
    struct mvcc_lock l, nl = {.primary = (const uint8_t *)"\x02",
                              .primary_len = 1,
                              .start_ts = 5,
                              .kind = MVCC_WRITE_LOCK};
    int found;
    assert_int_equal(mvcc_txn_delete_lock(&t, K(1)), 0);
    assert_int_equal(mvcc_txn_get_lock(&t, K(1), &l, &found), 0);
    assert_false(found);
    assert_int_equal(mvcc_txn_put_lock(&t, K(2), &nl), 0);
    assert_int_equal(mvcc_txn_get_lock(&t, K(2), &l, &found), 0);
    assert_true(found);
    assert_int_equal(l.kind, MVCC_WRITE_LOCK);
    mvcc_lock_release(&l);
    txn_done(f, &t, 1);
    fx_assert_lens(f, 0, 1, 0);
}

/* delete_lock and delete_value remove only the addressed records. */
static void test_delete_lock_and_value(void **state)
{
    struct fx *f = *state;
    fx_put_lock(f, K(1), K(1), 5, 0, MVCC_WRITE_PUT);
    fx_put_value(f, K(1), 5, "a", 1);
    fx_put_value(f, K(1), 3, "b", 1);
    struct mvcc_txn t = txn_at(f, 5);
    assert_int_equal(mvcc_txn_delete_lock(&t, K(1)), 0);
    assert_int_equal(mvcc_txn_delete_value(&t, K(1)), 0);
    txn_done(f, &t, 1);
    fx_assert_lens(f, 1, 0, 0);
    assert_true(fx_has_value(f, K(1), 3, "b", 1));
}

static int txn_value(struct fx *f, const void *key, size_t klen, uint64_t ts, uint8_t *first)
{
    struct mvcc_txn t = txn_at(f, ts);
    void *v;
    size_t vl;
    int found;
    assert_int_equal(mvcc_txn_get_value(&t, key, klen, &v, &vl, &found), 0);
    if (found) {
        assert_true(vl >= 1);
        *first = ((uint8_t *)v)[0];
        free(v);
    }
    txn_done(f, &t, 0);
    return found;
}

/* get_value at a version: too early, exact, later; missing key; overwritten and deleted versions.
 */
static void test_get_value_versions(void **state)
{
    struct fx *f = *state;
    uint8_t v = 0;
    fx_committed(f, K(16), 10, 20, "\x2a", 1);
    fx_committed(f, K(16), 30, 40, "\x2b", 1);
    fx_put_write(f, K(16), 50, MVCC_WRITE_DELETE, 45);
    fx_put_write(f, K(16), 60, MVCC_WRITE_ROLLBACK, 60);
    fx_committed(f, K(17), 10, 20, "\x01", 1);

    assert_false(txn_value(f, K(16), 19, &v)); /* too early */
    assert_true(txn_value(f, K(16), 20, &v));
    assert_int_equal(v, 0x2a);
    assert_true(txn_value(f, K(16), 39, &v)); /* not yet overwritten */
    assert_int_equal(v, 0x2a);
    assert_true(txn_value(f, K(16), 40, &v)); /* overwritten */
    assert_int_equal(v, 0x2b);
    assert_true(txn_value(f, K(16), 49, &v));
    assert_false(txn_value(f, K(16), 50, &v));          /* deleted */
    assert_false(txn_value(f, K(16), 100, &v));         /* rollback skipped, still deleted */
    assert_false(txn_value(f, K(15), MVCC_TS_MAX, &v)); /* missing key */
    assert_false(txn_value(f, K(16, 0), MVCC_TS_MAX, &v));
    assert_true(txn_value(f, K(17), MVCC_TS_MAX, &v));
    assert_int_equal(v, 1);
}

/* A rollback record between two puts is skipped: the older put stays visible. */
static void test_get_value_skips_rollback(void **state)
{
    struct fx *f = *state;
    uint8_t v = 0;
    fx_committed(f, K(5), 10, 11, "\x07", 1);
    fx_put_write(f, K(5), 20, MVCC_WRITE_ROLLBACK, 20);
    fx_put_write(f, K(5), 25, MVCC_WRITE_LOCK, 22);
    assert_true(txn_value(f, K(5), 30, &v));
    assert_int_equal(v, 7);
}

/* current_write finds the record of the txn's own start_ts, whatever its commit_ts. */
static void test_current_write(void **state)
{
    struct fx *f = *state;
    fx_put_write(f, K(1), 21, MVCC_WRITE_PUT, 20);
    fx_put_write(f, K(1), 31, MVCC_WRITE_DELETE, 30);
    fx_put_write(f, K(1), 40, MVCC_WRITE_ROLLBACK, 40);
    struct mvcc_write w;
    uint64_t cts;
    int found;
    struct mvcc_txn t = txn_at(f, 20);
    assert_int_equal(mvcc_txn_current_write(&t, K(1), &w, &cts, &found), 0);
    assert_true(found);
    assert_int_equal(cts, 21);
    assert_int_equal(w.kind, MVCC_WRITE_PUT);
    txn_done(f, &t, 0);
    t = txn_at(f, 40);
    assert_int_equal(mvcc_txn_current_write(&t, K(1), &w, &cts, &found), 0);
    assert_true(found);
    assert_int_equal(cts, 40);
    assert_int_equal(w.kind, MVCC_WRITE_ROLLBACK);
    txn_done(f, &t, 0);
    t = txn_at(f, 25);
    assert_int_equal(mvcc_txn_current_write(&t, K(1), &w, &cts, &found), 0);
    assert_false(found);
    assert_int_equal(mvcc_txn_current_write(&t, K(2), &w, &cts, &found), 0);
    assert_false(found);
    txn_done(f, &t, 0);
}

/* most_recent_write returns the newest record of any kind, regardless of the txn's ts. */
static void test_most_recent_write(void **state)
{
    struct fx *f = *state;
    fx_put_write(f, K(1), 21, MVCC_WRITE_PUT, 20);
    fx_put_write(f, K(1), 45, MVCC_WRITE_ROLLBACK, 45);
    fx_put_write(f, K(1, 0), 99, MVCC_WRITE_PUT, 98);
    struct mvcc_write w;
    uint64_t cts;
    int found;
    struct mvcc_txn t = txn_at(f, 1);
    assert_int_equal(mvcc_txn_most_recent_write(&t, K(1), &w, &cts, &found), 0);
    assert_true(found);
    assert_int_equal(cts, 45);
    assert_int_equal(w.kind, MVCC_WRITE_ROLLBACK);
    assert_int_equal(mvcc_txn_most_recent_write(&t, K(0), &w, &cts, &found), 0);
    assert_false(found);
    txn_done(f, &t, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_lock, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_put_write_and_value, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_get_lock, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_get_lock_sees_own_buffer, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_lock_and_value, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_get_value_versions, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_get_value_skips_rollback, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_current_write, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_most_recent_write, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
