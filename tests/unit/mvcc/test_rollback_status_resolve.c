/* test_rollback_status_resolve.c — KvBatchRollback, KvCheckTxnStatus, KvResolveLock. */
#include "tests/unit/mvcc/mvcc_fixture.h"

static void assert_rollback_record(struct fx *f, const void *key, size_t klen, uint64_t ts)
{
    struct mvcc_write w;
    assert_true(fx_get_write(f, key, klen, ts, &w));
    assert_int_equal(w.kind, MVCC_WRITE_ROLLBACK);
    assert_int_equal(w.start_ts, ts);
}

/* A rollback with no keys succeeds and writes nothing. */
static void test_empty_rollback(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    assert_int_equal(mvcc_batch_rollback(f->e, NULL, NULL, 0, 100, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 0, 0, 0);
}

/* Rolling back a prewritten key removes lock and value and leaves a rollback record. */
static void test_rollback(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_put_value(f, K(3), 100, "\x2a", 1);
    fx_put_lock(f, K(3), K(3), 100, 0, MVCC_WRITE_PUT);
    assert_int_equal(fx_rollback1(f, K(3), 100, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 0, 0, 1);
    assert_rollback_record(f, K(3), 100);
}

/* Rolling back several keys, one listed twice, rolls each back once. */
static void test_rollback_duplicate_keys(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_put_value(f, K(3), 100, "\x2a", 1);
    fx_put_lock(f, K(3), K(3), 100, 0, MVCC_WRITE_PUT);
    fx_put_value(f, K(15), 100, "\x00", 1);
    fx_put_lock(f, K(15), K(3), 100, 0, MVCC_WRITE_PUT);
    struct mvcc_key_slice keys[] = {{"\x03", 1}, {"\x0f", 1}, {"\x03", 1}};
    assert_int_equal(mvcc_batch_rollback(f->e, NULL, keys, 3, 100, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 0, 0, 2);
    assert_rollback_record(f, K(3), 100);
    assert_rollback_record(f, K(15), 100);
}

/* Another transaction committed the key at exactly the rolled-back one's start ts (a one-phase
 * commit ts a store chose can equal a TSO start ts): its commit record stays, readers still see
 * its value, and the rolled-back transaction still cannot prewrite the key. The same holds when
 * the rollback comes from a status check of that transaction. */
static void test_rollback_keeps_other_commit_at_start_ts(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_committed(f, K(3), 90, 100, "\x2a", 1);
    assert_int_equal(fx_rollback1(f, K(3), 100, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    struct mvcc_write w;
    assert_true(fx_get_write(f, K(3), 100, &w));
    assert_int_equal(w.kind, MVCC_WRITE_PUT);
    assert_int_equal(w.start_ts, 90);
    assert_true(fx_get_ok(f, K(3), 100, "\x2a", 1));
    struct mvcc_prewrite_result pr;
    struct mvcc_mutation m[] = {{MVCC_OP_PUT, "\x03", 1, "x", 1}};
    assert_int_equal(fx_prewrite(f, m, 1, K(3), 100, 3000, &pr), 0);
    assert_int_equal(pr.n_errors, 1);
    assert_int_equal(pr.errors[0].kind, MVCC_KEY_ERR_CONFLICT);
    mvcc_prewrite_result_free(&pr);

    struct mvcc_check_txn_status_result st;
    fx_committed(f, K(4), 95, 110, "\x2b", 1);
    assert_int_equal(mvcc_check_txn_status(f->e, NULL, "\x04", 1, 110, 1000, &st), 0);
    mvcc_check_txn_status_result_free(&st);
    assert_true(fx_get_write(f, K(4), 110, &w));
    assert_int_equal(w.kind, MVCC_WRITE_PUT);
    assert_int_equal(w.start_ts, 95);
    fx_assert_lens(f, 2, 0, 2);
}

/* Rolling back a key that was never prewritten still writes the rollback record. */
static void test_rollback_missing_prewrite(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    assert_int_equal(fx_rollback1(f, K(3), 100, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 0, 0, 1);
    assert_rollback_record(f, K(3), 100);
}

/* Rolling back a committed transaction answers ABORT and changes nothing. */
static void test_rollback_committed(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_committed(f, K(3), 100, 110, "\x2a", 1);
    assert_int_equal(fx_rollback1(f, K(3), 100, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_ABORT);
    assert_true(strlen(r.error.msg) > 0);
    mvcc_write_result_free(&r);
    fx_assert_lens(f, 1, 0, 1);
    assert_true(fx_get_ok(f, K(3), 110, "\x2a", 1));
}

/* A repeated rollback succeeds and changes nothing. */
static void test_rollback_duplicate(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_put_value(f, K(3), 100, "\x2a", 1);
    fx_put_lock(f, K(3), K(3), 100, 0, MVCC_WRITE_PUT);
    assert_int_equal(fx_rollback1(f, K(3), 100, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    size_t writes = mem_storage_write_count(f->s);
    assert_int_equal(fx_rollback1(f, K(3), 100, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 0, 0, 1);
    assert_int_equal(mem_storage_write_count(f->s), writes);
}

/* Rolling back where another transaction holds the lock keeps that lock but writes our record. */
static void test_rollback_other_txn(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_put_value(f, K(3), 80, "\x2a", 1);
    fx_put_lock(f, K(3), K(3), 80, 0, MVCC_WRITE_PUT);
    assert_int_equal(fx_rollback1(f, K(3), 100, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 1, 1, 1);
    assert_rollback_record(f, K(3), 100);
    struct mvcc_lock l;
    assert_true(fx_get_lock(f, K(3), &l));
    assert_int_equal(l.start_ts, 80);
    mvcc_lock_release(&l);
    assert_true(fx_has_value(f, K(3), 80, "\x2a", 1));
}

/* Rolling back a delete lock removes the lock; there is no value to remove. */
static void test_rollback_delete_lock(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_committed(f, K(3), 50, 60, "\x01", 1);
    fx_put_lock(f, K(3), K(3), 100, 0, MVCC_WRITE_DELETE);
    assert_int_equal(fx_rollback1(f, K(3), 100, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 1, 0, 2);
    assert_true(fx_get_ok(f, K(3), 200, "\x01", 1));
}

/* A rollback of several keys that hits a committed one writes nothing at all. */
static void test_rollback_partial_failure_writes_nothing(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_put_value(f, "a", 1, 100, "1", 1);
    fx_put_lock(f, "a", 1, "a", 1, 100, 0, MVCC_WRITE_PUT);
    fx_committed(f, "b", 1, 100, 110, "2", 1);
    struct mvcc_key_slice keys[] = {{"a", 1}, {"b", 1}};
    assert_int_equal(mvcc_batch_rollback(f->e, NULL, keys, 2, 100, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_ABORT);
    mvcc_write_result_free(&r);
    fx_assert_lens(f, 2, 1, 1);
}

#define TS(ms, logical) mvcc_ts_compose((ms), (logical))

static void check(struct fx *f, const void *pk, size_t plen, uint64_t lock_ts, uint64_t now,
                  struct mvcc_check_txn_status_result *r)
{
    assert_int_equal(mvcc_check_txn_status(f->e, NULL, pk, plen, lock_ts, now, r), 0);
    assert_int_equal(r->error.kind, MVCC_KEY_ERR_NONE);
}

/* A lock whose TTL has run out by current_ts's physical time is rolled back. */
static void test_check_txn_status_ttl_expired(void **state)
{
    struct fx *f = *state;
    struct mvcc_check_txn_status_result r;
    uint64_t lock_ts = TS(1000, 5);
    fx_put_value(f, K(3), lock_ts, "\x2a", 1);
    fx_put_lock(f, K(3), K(3), lock_ts, 8, MVCC_WRITE_PUT);
    check(f, K(3), lock_ts, TS(1009, 0), &r);
    assert_int_equal(r.action, MVCC_ACTION_TTL_EXPIRE_ROLLBACK);
    assert_int_equal(r.commit_version, 0);
    fx_assert_lens(f, 0, 0, 1);
    assert_rollback_record(f, K(3), lock_ts);
}

/* A lock still within its TTL is reported with its TTL and left alone. */
static void test_check_txn_status_ttl_not_expired(void **state)
{
    struct fx *f = *state;
    struct mvcc_check_txn_status_result r;
    uint64_t lock_ts = TS(1000, 5);
    fx_put_value(f, K(3), lock_ts, "\x2a", 1);
    fx_put_lock(f, K(3), K(3), lock_ts, 8, MVCC_WRITE_PUT);
    check(f, K(3), lock_ts, TS(1008, 200), &r); /* exactly ttl ms later: not yet passed */
    assert_int_equal(r.action, MVCC_ACTION_NO_ACTION);
    assert_int_equal(r.lock_ttl, 8);
    assert_int_equal(r.commit_version, 0);
    check(f, K(3), lock_ts, TS(900, 0), &r); /* a current_ts before the lock */
    assert_int_equal(r.action, MVCC_ACTION_NO_ACTION);
    fx_assert_lens(f, 1, 1, 0);
}

/* A rolled-back transaction reports no action and no commit version. */
static void test_check_txn_status_rolled_back(void **state)
{
    struct fx *f = *state;
    struct mvcc_check_txn_status_result r;
    uint64_t lock_ts = TS(1000, 5);
    fx_put_write(f, K(3), lock_ts, MVCC_WRITE_ROLLBACK, lock_ts);
    fx_put_lock(f, K(3), K(3), TS(1001, 0), 8, MVCC_WRITE_PUT); /* a later txn's lock */
    check(f, K(3), lock_ts, TS(5000, 0), &r);
    assert_int_equal(r.action, MVCC_ACTION_NO_ACTION);
    assert_int_equal(r.commit_version, 0);
    assert_int_equal(r.lock_ttl, 0);
    fx_assert_lens(f, 0, 1, 1);
}

/* A committed transaction reports its commit version. */
static void test_check_txn_status_committed(void **state)
{
    struct fx *f = *state;
    struct mvcc_check_txn_status_result r;
    uint64_t lock_ts = TS(1000, 5), commit_ts = TS(1002, 1);
    fx_committed(f, K(3), lock_ts, commit_ts, "\x2a", 1);
    check(f, K(3), lock_ts, TS(5000, 0), &r);
    assert_int_equal(r.action, MVCC_ACTION_NO_ACTION);
    assert_int_equal(r.commit_version, commit_ts);
    fx_assert_lens(f, 1, 0, 1);
}

/* With neither lock nor record, a rollback record fences the transaction, and its late prewrite
 * fails. */
static void test_check_txn_status_no_lock_no_write(void **state)
{
    struct fx *f = *state;
    struct mvcc_check_txn_status_result r;
    struct mvcc_prewrite_result pr;
    uint64_t lock_ts = TS(1000, 5);
    check(f, K(3), lock_ts, TS(1001, 0), &r);
    assert_int_equal(r.action, MVCC_ACTION_LOCK_NOT_EXIST_ROLLBACK);
    fx_assert_lens(f, 0, 0, 1);
    assert_rollback_record(f, K(3), lock_ts);

    struct mvcc_mutation m[] = {PUT("\x03", "\x01")};
    assert_int_equal(fx_prewrite(f, m, 1, "\x03", 1, lock_ts, 10, &pr), 0);
    assert_int_equal(pr.n_errors, 1);
    assert_int_equal(pr.errors[0].kind, MVCC_KEY_ERR_CONFLICT);
    mvcc_prewrite_result_free(&pr);
    /* A second check now sees the rollback record: no action. */
    check(f, K(3), lock_ts, TS(1001, 0), &r);
    assert_int_equal(r.action, MVCC_ACTION_NO_ACTION);
}

/* Expiry rolls back through the whole protocol: the expired txn's commit then aborts. */
static void test_check_txn_status_then_commit_aborts(void **state)
{
    struct fx *f = *state;
    struct mvcc_check_txn_status_result r;
    struct mvcc_prewrite_result pr;
    struct mvcc_write_result wr;
    uint64_t start = TS(1000, 0);
    struct mvcc_mutation m[] = {PUT("p", "1"), PUT("s", "2")};
    assert_int_equal(fx_prewrite(f, m, 2, "p", 1, start, 5, &pr), 0);
    assert_int_equal(pr.n_errors, 0);
    check(f, "p", 1, start, TS(2000, 0), &r);
    assert_int_equal(r.action, MVCC_ACTION_TTL_EXPIRE_ROLLBACK);
    assert_int_equal(fx_commit1(f, "p", 1, start, TS(2001, 0), &wr), 0);
    assert_int_equal(wr.error.kind, MVCC_KEY_ERR_ABORT);
    mvcc_write_result_free(&wr);
    /* The secondary is cleaned up by resolving the rolled-back txn. */
    assert_int_equal(mvcc_resolve_lock(f->e, NULL, start, 0, &wr), 0);
    assert_int_equal(wr.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 0, 0, 2);
    assert_false(fx_get_ok(f, "s", 1, TS(3000, 0), NULL, 0));
}

/* A resolve with nothing to resolve succeeds and writes nothing. */
static void test_empty_resolve(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    assert_int_equal(mvcc_resolve_lock(f->e, NULL, 100, 0, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 0, 0, 0);
    assert_int_equal(mem_storage_write_count(f->s), 0);
}

/* A resolve of start version 0 (an empty request) is invalid input, and writes nothing. */
static void test_resolve_start_zero_is_invalid(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    assert_int_equal(mvcc_resolve_lock(f->e, NULL, 0, 0, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_INVALID);
    mvcc_write_result_free(&r);
    assert_int_equal(mem_storage_write_count(f->s), 0);
}

static void resolve_setup(struct fx *f)
{
    fx_put_value(f, K(3), 100, "\x2a", 1);
    fx_put_lock(f, K(3), K(3), 100, 0, MVCC_WRITE_PUT);
    fx_put_value(f, K(7), 100, "\x2b", 1);
    fx_put_lock(f, K(7), K(3), 100, 0, MVCC_WRITE_PUT);
    fx_put_value(f, K(200), 110, "\x2c", 1);
    fx_put_lock(f, K(200), K(200), 110, 0, MVCC_WRITE_PUT);
}

/* Resolve with a commit version commits every lock of the transaction, and only those. */
static void test_resolve_commit(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    struct mvcc_write w;
    struct mvcc_lock l;
    resolve_setup(f);
    assert_int_equal(mvcc_resolve_lock(f->e, NULL, 100, 120, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 3, 1, 2);
    assert_true(fx_get_write(f, K(3), 120, &w));
    assert_int_equal(w.kind, MVCC_WRITE_PUT);
    assert_int_equal(w.start_ts, 100);
    assert_true(fx_get_write(f, K(7), 120, &w));
    assert_true(fx_get_lock(f, K(200), &l));
    assert_int_equal(l.start_ts, 110);
    mvcc_lock_release(&l);
    assert_true(fx_get_ok(f, K(7), 120, "\x2b", 1));
}

/* Resolve without a commit version rolls back every lock of the transaction, and only those. */
static void test_resolve_rollback(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    resolve_setup(f);
    assert_int_equal(mvcc_resolve_lock(f->e, NULL, 100, 0, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    fx_assert_lens(f, 1, 1, 2);
    assert_rollback_record(f, K(3), 100);
    assert_rollback_record(f, K(7), 100);
    assert_true(fx_has_value(f, K(200), 110, "\x2c", 1));
}

/* When the transaction's keys are already committed or rolled back, resolve changes nothing. */
static void test_resolve_written(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    for (int commit = 0; commit < 2; commit++) {
        fx_put_value(f, K(3), 100, "\x2a", 1);
        fx_put_write(f, K(201), 120, MVCC_WRITE_PUT, 100);
        fx_put_value(f, K(7), 100, "\x2b", 1);
        fx_put_write(f, K(201), 100, MVCC_WRITE_ROLLBACK, 100);
        fx_put_value(f, K(200), 110, "\x2c", 1);
        fx_put_lock(f, K(200), K(200), 110, 0, MVCC_WRITE_PUT);
        size_t writes = mem_storage_write_count(f->s);
        assert_int_equal(mvcc_resolve_lock(f->e, NULL, 100, commit ? 120 : 0, &r), 0);
        assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
        fx_assert_lens(f, 3, 1, 2);
        assert_int_equal(mem_storage_write_count(f->s), writes);
    }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_empty_rollback),
        T(test_rollback),
        T(test_rollback_duplicate_keys),
        T(test_rollback_keeps_other_commit_at_start_ts),
        T(test_rollback_missing_prewrite),
        T(test_rollback_committed),
        T(test_rollback_duplicate),
        T(test_rollback_other_txn),
        T(test_rollback_delete_lock),
        T(test_rollback_partial_failure_writes_nothing),
        T(test_check_txn_status_ttl_expired),
        T(test_check_txn_status_ttl_not_expired),
        T(test_check_txn_status_rolled_back),
        T(test_check_txn_status_committed),
        T(test_check_txn_status_no_lock_no_write),
        T(test_check_txn_status_then_commit_aborts),
        T(test_empty_resolve),
        T(test_resolve_start_zero_is_invalid),
        T(test_resolve_commit),
        T(test_resolve_rollback),
        T(test_resolve_written),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
