/* test_invalid_and_errors.c — bad input, storage and region errors. */
#include "tests/unit/mvcc/mvcc_fixture.h"

static uint8_t big_key[MVCC_MAX_KEY_BYTES + 1];

/* Empty and oversized keys are rejected by get; a key of exactly the limit is accepted. */
static void test_get_bad_keys(void **state)
{
    struct fx *f = *state;
    struct mvcc_get_result r;
    assert_int_equal(mvcc_get(f->e, NULL, "", 0, 10, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_INVALID);
    assert_true(strstr(r.error.msg, "empty") != NULL);
    mvcc_get_result_free(&r);
    assert_int_equal(mvcc_get(f->e, NULL, big_key, sizeof(big_key), 10, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_INVALID);
    mvcc_get_result_free(&r);
    assert_int_equal(mvcc_get(f->e, NULL, big_key, MVCC_MAX_KEY_BYTES, 10, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    assert_true(r.not_found);
}

/* Prewrite: empty primary, empty or oversized key, oversized value, op ROLLBACK — all reported,
 * nothing written. */
static void test_prewrite_bad_input(void **state)
{
    struct fx *f = *state;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation ok = {MVCC_OP_PUT, "k", 1, "v", 1};
    assert_int_equal(fx_prewrite(f, &ok, 1, "", 0, 10, 0, &r), 0);
    assert_int_equal(r.n_errors, 1);
    assert_int_equal(r.errors[0].kind, MVCC_KEY_ERR_INVALID);
    assert_true(strstr(r.errors[0].msg, "primary") != NULL);
    mvcc_prewrite_result_free(&r);

    size_t big_len = (size_t)MVCC_MAX_VALUE_BYTES + 1;
    struct mvcc_mutation bad[] = {
        {MVCC_OP_PUT, "a", 1, "v", 1},
        {MVCC_OP_PUT, "", 0, "v", 1},
        {MVCC_OP_PUT, big_key, sizeof(big_key), "v", 1},
        {MVCC_OP_PUT, "b", 1, big_key /* length is what is checked */, big_len},
        {MVCC_OP_ROLLBACK, "c", 1, NULL, 0},
        {(enum mvcc_op)9, "d", 1, NULL, 0},
    };
    assert_int_equal(fx_prewrite(f, bad, 6, "a", 1, 10, 0, &r), 0);
    assert_int_equal(r.n_errors, 5);
    for (size_t i = 0; i < r.n_errors; i++)
        assert_int_equal(r.errors[i].kind, MVCC_KEY_ERR_INVALID);
    mvcc_prewrite_result_free(&r);
    fx_assert_lens(f, 0, 0, 0);
    assert_int_equal(mem_storage_write_count(f->s), 0);
}

/* Commit: commit_ts not after start_ts, or a bad key, is INVALID and writes nothing. */
static void test_commit_bad_input(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    fx_put_value(f, "k", 1, 10, "v", 1);
    fx_put_lock(f, "k", 1, "k", 1, 10, 0, MVCC_WRITE_PUT);
    assert_int_equal(fx_commit1(f, "k", 1, 10, 10, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_INVALID);
    assert_int_equal(fx_commit1(f, "k", 1, 10, 5, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_INVALID);
    struct mvcc_key_slice keys[] = {{"k", 1}, {"", 0}};
    assert_int_equal(mvcc_commit(f->e, NULL, keys, 2, 10, 20, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_INVALID);
    mvcc_write_result_free(&r);
    fx_assert_lens(f, 1, 1, 0);
}

/* Rollback, check txn status and resolve lock reject bad keys and timestamps. */
static void test_other_commands_bad_input(void **state)
{
    struct fx *f = *state;
    struct mvcc_write_result r;
    struct mvcc_check_txn_status_result c;
    struct mvcc_scan_result s;
    struct mvcc_key_slice keys[] = {{big_key, sizeof(big_key)}};
    assert_int_equal(mvcc_batch_rollback(f->e, NULL, keys, 1, 10, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_INVALID);
    assert_int_equal(mvcc_check_txn_status(f->e, NULL, "", 0, 10, 20, &c), 0);
    assert_int_equal(c.error.kind, MVCC_KEY_ERR_INVALID);
    assert_int_equal(c.action, MVCC_ACTION_NO_ACTION);
    assert_int_equal(mvcc_resolve_lock(f->e, NULL, 10, 9, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_INVALID);
    assert_int_equal(mvcc_scan(f->e, NULL,
                               &(struct mvcc_scan_req){.start_key = big_key,
                                                       .start_key_len = sizeof(big_key),
                                                       .limit = 10,
                                                       .version = 10},
                               &s),
                     0);
    assert_int_equal(s.error.kind, MVCC_KEY_ERR_INVALID);
    fx_assert_lens(f, 0, 0, 0);
}

/* NULL engine or result pointers are MVCC_ERR_ARG, not a crash. */
static void test_null_arguments(void **state)
{
    struct fx *f = *state;
    struct mvcc_get_result g;
    struct mvcc_write_result r;
    assert_int_equal(mvcc_get(NULL, NULL, "k", 1, 1, &g), MVCC_ERR_ARG);
    assert_int_equal(mvcc_get(f->e, NULL, "k", 1, 1, NULL), MVCC_ERR_ARG);
    assert_int_equal(mvcc_commit(f->e, NULL, NULL, 2, 1, 2, &r), MVCC_ERR_ARG);
    assert_int_equal(mvcc_prewrite(f->e, NULL, NULL, NULL), MVCC_ERR_ARG);
    assert_string_equal(mvcc_strerror(MVCC_ERR_ARG), "invalid argument");
    assert_string_equal(mvcc_strerror(MVCC_ERR_REGION), "region error");
}

/* A region error from the storage's reader comes out as MVCC_ERR_REGION with its details, for every
 * command. */
static void test_region_error_on_read(void **state)
{
    struct fx *f = *state;
    struct mvcc_get_result g;
    struct mvcc_scan_result s;
    struct mvcc_prewrite_result p;
    struct mvcc_write_result w;
    struct mvcc_check_txn_status_result c;
    struct mvcc_key_slice k = {"k", 1};
    struct mvcc_mutation m = {MVCC_OP_PUT, "k", 1, "v", 1};
    fx_put_lock(f, "x", 1, "x", 1, 5, 0, MVCC_WRITE_PUT); /* so resolve lock reads */

    mem_storage_inject_error(f->s, MEM_STORAGE_FAULT_READER, 1, STORAGE_ERR_REGION,
                             STORAGE_REGION_ERR_NOT_LEADER);
    assert_int_equal(mvcc_get(f->e, NULL, "k", 1, 10, &g), MVCC_ERR_REGION);
    assert_int_equal(g.storage_err.code, STORAGE_ERR_REGION);
    assert_int_equal(g.storage_err.region_kind, STORAGE_REGION_ERR_NOT_LEADER);
    assert_int_equal(g.storage_err.region_id, 1);
    assert_true(strlen(g.errmsg) > 0);

    mem_storage_inject_error(f->s, MEM_STORAGE_FAULT_READER, 1, STORAGE_ERR_REGION,
                             STORAGE_REGION_ERR_EPOCH_NOT_MATCH);
    assert_int_equal(mvcc_scan(f->e, NULL, &(struct mvcc_scan_req){.limit = 10, .version = 10}, &s),
                     MVCC_ERR_REGION);
    assert_int_equal(s.storage_err.region_kind, STORAGE_REGION_ERR_EPOCH_NOT_MATCH);
    assert_int_equal(s.n_pairs, 0);

    mem_storage_inject_error(f->s, MEM_STORAGE_FAULT_READER, 1, STORAGE_ERR_REGION,
                             STORAGE_REGION_ERR_REGION_NOT_FOUND);
    assert_int_equal(fx_prewrite(f, &m, 1, "k", 1, 10, 0, &p), MVCC_ERR_REGION);
    assert_int_equal(p.storage_err.region_kind, STORAGE_REGION_ERR_REGION_NOT_FOUND);

    mem_storage_inject_error(f->s, MEM_STORAGE_FAULT_READER, 1, STORAGE_ERR_REGION,
                             STORAGE_REGION_ERR_NOT_LEADER);
    assert_int_equal(mvcc_commit(f->e, NULL, &k, 1, 10, 20, &w), MVCC_ERR_REGION);
    assert_int_equal(w.storage_err.code, STORAGE_ERR_REGION);

    mem_storage_inject_error(f->s, MEM_STORAGE_FAULT_READER, 1, STORAGE_ERR_REGION,
                             STORAGE_REGION_ERR_NOT_LEADER);
    assert_int_equal(mvcc_batch_rollback(f->e, NULL, &k, 1, 10, &w), MVCC_ERR_REGION);

    mem_storage_inject_error(f->s, MEM_STORAGE_FAULT_READER, 1, STORAGE_ERR_REGION,
                             STORAGE_REGION_ERR_NOT_LEADER);
    assert_int_equal(mvcc_check_txn_status(f->e, NULL, "k", 1, 10, 20, &c), MVCC_ERR_REGION);

    mem_storage_inject_error(f->s, MEM_STORAGE_FAULT_READER, 1, STORAGE_ERR_REGION,
                             STORAGE_REGION_ERR_NOT_LEADER);
    assert_int_equal(mvcc_resolve_lock(f->e, NULL, 5, 0, &w), MVCC_ERR_REGION);
    fx_assert_lens(f, 0, 1, 0);
}

/* A region error on the write batch is MVCC_ERR_REGION, and the failed command left nothing behind.
 */
static void test_region_error_on_write(void **state)
{
    struct fx *f = *state;
    struct mvcc_prewrite_result p;
    struct mvcc_write_result w;
    struct mvcc_mutation m[] = {{MVCC_OP_PUT, "a", 1, "1", 1}, {MVCC_OP_PUT, "b", 1, "2", 1}};
    mem_storage_inject_error(f->s, MEM_STORAGE_FAULT_WRITE, 1, STORAGE_ERR_REGION,
                             STORAGE_REGION_ERR_STALE_COMMAND);
    assert_int_equal(fx_prewrite(f, m, 2, "a", 1, 10, 0, &p), MVCC_ERR_REGION);
    assert_int_equal(p.storage_err.region_kind, STORAGE_REGION_ERR_STALE_COMMAND);
    assert_int_equal(p.n_errors, 0);
    fx_assert_lens(f, 0, 0, 0);
    /* The retry goes through, and a commit failing on I/O is a storage error. */
    assert_int_equal(fx_prewrite(f, m, 2, "a", 1, 10, 0, &p), 0);
    assert_int_equal(p.n_errors, 0);
    mem_storage_inject_error(f->s, MEM_STORAGE_FAULT_WRITE, 1, STORAGE_ERR_IO, 0);
    struct mvcc_key_slice keys[] = {{"a", 1}, {"b", 1}};
    assert_int_equal(mvcc_commit(f->e, NULL, keys, 2, 10, 20, &w), MVCC_ERR_STORAGE);
    assert_int_equal(w.storage_err.code, STORAGE_ERR_IO);
    assert_true(strstr(w.errmsg, "injected") != NULL);
    fx_assert_lens(f, 2, 2, 0);
}

/* A corrupt lock record is reported as MVCC_ERR_CORRUPT rather than misread. */
static void test_corrupt_record(void **state)
{
    struct fx *f = *state;
    struct mvcc_get_result g;
    fx_raw_put(f, STORAGE_CF_LOCK, "k\0\0\0\0\0\0\0\xF8", 9, "short", 5);
    assert_int_equal(mvcc_get(f->e, NULL, "k", 1, 10, &g), MVCC_ERR_CORRUPT);
    assert_string_equal(g.errmsg, "corrupt MVCC record");
    mvcc_get_result_free(&g);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    memset(big_key, 'x', sizeof(big_key));
    const struct CMUnitTest tests[] = {
        T(test_get_bad_keys),          T(test_prewrite_bad_input),
        T(test_commit_bad_input),      T(test_other_commands_bad_input),
        T(test_null_arguments),        T(test_region_error_on_read),
        T(test_region_error_on_write), T(test_corrupt_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
