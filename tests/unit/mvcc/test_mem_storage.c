/* test_mem_storage.c — the in-memory Storage: batches, snapshots, iterators. */
#include <pthread.h>
#include <stdio.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/lib/mem_storage.h"

static int setup(void **state)
{
    struct storage *s;
    assert_int_equal(mem_storage_new(&s), 0);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    storage_free(*state);
    return 0;
}

static void put(struct storage *s, enum storage_cf cf, const char *k, const char *v)
{
    struct storage_modify m = {STORAGE_MODIFY_PUT, cf, k, strlen(k), v, strlen(v)};
    assert_int_equal(storage_write(s, NULL, &m, 1, NULL), 0);
}

static void expect(struct storage_reader *r, enum storage_cf cf, const char *k, const char *v)
{
    void *val;
    size_t len;
    int rc = storage_reader_get(r, cf, k, strlen(k), &val, &len);
    if (!v) {
        assert_int_equal(rc, STORAGE_ERR_NOT_FOUND);
        assert_null(val);
        return;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(len, strlen(v));
    assert_memory_equal(val, v, len);
    free(val);
}

/* CFs are separate maps; a put overwrites; a delete removes; a batch spans CFs. */
static void test_put_get_delete(void **state)
{
    struct storage *s = *state;
    struct storage_reader *r;
    put(s, STORAGE_CF_DEFAULT, "a", "1");
    put(s, STORAGE_CF_LOCK, "a", "L");
    put(s, STORAGE_CF_DEFAULT, "a", "2");
    struct storage_modify batch[] = {
        {STORAGE_MODIFY_DELETE, STORAGE_CF_LOCK, "a", 1, NULL, 0},
        {STORAGE_MODIFY_PUT, STORAGE_CF_WRITE, "w", 1, "", 0},
        {STORAGE_MODIFY_DELETE, STORAGE_CF_WRITE, "nope", 4, NULL, 0},
    };
    assert_int_equal(storage_write(s, NULL, batch, 3, NULL), 0);
    assert_int_equal(storage_reader(s, NULL, &r, NULL), 0);
    expect(r, STORAGE_CF_DEFAULT, "a", "2");
    expect(r, STORAGE_CF_LOCK, "a", NULL);
    expect(r, STORAGE_CF_WRITE, "w", "");
    expect(r, STORAGE_CF_WRITE, "a", NULL);
    storage_reader_free(r);
    assert_int_equal(mem_storage_count(s, STORAGE_CF_DEFAULT), 1);
    assert_int_equal(mem_storage_count(s, STORAGE_CF_LOCK), 0);
    assert_int_equal(mem_storage_write_count(s), 4);
}

/* A batch with one bad modification (empty key) is rejected whole. */
static void test_bad_batch_is_atomic(void **state)
{
    struct storage *s = *state;
    struct storage_error err;
    struct storage_modify batch[] = {
        {STORAGE_MODIFY_PUT, STORAGE_CF_DEFAULT, "a", 1, "1", 1},
        {STORAGE_MODIFY_PUT, STORAGE_CF_DEFAULT, "", 0, "1", 1},
    };
    assert_int_equal(storage_write(s, NULL, batch, 2, &err), STORAGE_ERR_INVALID);
    assert_int_equal(err.code, STORAGE_ERR_INVALID);
    assert_int_equal(mem_storage_count(s, STORAGE_CF_DEFAULT), 0);
}

/* A reader sees the state at its creation, not later writes; its iterator too. */
static void test_snapshot_isolation(void **state)
{
    struct storage *s = *state;
    struct storage_reader *old, *cur;
    struct storage_iter *it;
    put(s, STORAGE_CF_DEFAULT, "a", "1");
    assert_int_equal(storage_reader(s, NULL, &old, NULL), 0);
    put(s, STORAGE_CF_DEFAULT, "a", "2");
    put(s, STORAGE_CF_DEFAULT, "b", "3");
    struct storage_modify del = {STORAGE_MODIFY_DELETE, STORAGE_CF_DEFAULT, "a", 1, NULL, 0};
    assert_int_equal(storage_write(s, NULL, &del, 1, NULL), 0);
    expect(old, STORAGE_CF_DEFAULT, "a", "1");
    expect(old, STORAGE_CF_DEFAULT, "b", NULL);
    assert_int_equal(storage_reader_iter(old, STORAGE_CF_DEFAULT, &it), 0);
    storage_iter_seek(it, "", 0);
    assert_true(storage_iter_valid(it));
    storage_iter_next(it);
    assert_false(storage_iter_valid(it));
    storage_iter_free(it);
    assert_int_equal(storage_reader(s, NULL, &cur, NULL), 0);
    expect(cur, STORAGE_CF_DEFAULT, "a", NULL);
    expect(cur, STORAGE_CF_DEFAULT, "b", "3");
    storage_reader_free(cur);
    storage_reader_free(old);
}

/* Iterators walk keys in bytewise order (shorter prefix first) from the seek position. */
static void test_iterator_order(void **state)
{
    struct storage *s = *state;
    struct storage_reader *r;
    struct storage_iter *it;
    const char *keys[] = {"b", "a", "ab", "\xff", "a\x01", "c"};
    for (int i = 0; i < 6; i++)
        put(s, STORAGE_CF_WRITE, keys[i], keys[i]);
    assert_int_equal(storage_reader(s, NULL, &r, NULL), 0);
    assert_int_equal(storage_reader_iter(r, STORAGE_CF_WRITE, &it), 0);
    assert_false(storage_iter_valid(it)); /* unpositioned */
    const char *want[] = {"a", "a\x01", "ab", "b", "c", "\xff"};
    int n = 0;
    for (storage_iter_seek(it, "", 0); storage_iter_valid(it); storage_iter_next(it), n++) {
        size_t kl, vl;
        const void *k = storage_iter_key(it, &kl);
        const void *v = storage_iter_value(it, &vl);
        assert_int_equal(kl, strlen(want[n]));
        assert_memory_equal(k, want[n], kl);
        assert_memory_equal(v, want[n], vl);
    }
    assert_int_equal(n, 6);
    storage_iter_seek(it, "aa", 2);
    size_t kl;
    assert_memory_equal(storage_iter_key(it, &kl), "ab", 2);
    storage_iter_seek(it, "zz", 2);
    assert_true(storage_iter_valid(it)); /* "\xff" > "zz" */
    storage_iter_seek(it, "\xff\x00", 2);
    assert_false(storage_iter_valid(it));
    storage_iter_free(it);
    storage_reader_free(r);
}

/* Injected faults fail the next calls with the given code and region detail, then stop. */
static void test_injected_faults(void **state)
{
    struct storage *s = *state;
    struct storage_error err;
    struct storage_reader *r;
    struct storage_modify m = {STORAGE_MODIFY_PUT, STORAGE_CF_DEFAULT, "a", 1, "1", 1};
    mem_storage_inject_error(s, MEM_STORAGE_FAULT_WRITE, 2, STORAGE_ERR_REGION,
                             STORAGE_REGION_ERR_NOT_LEADER);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(storage_write(s, NULL, &m, 1, &err), STORAGE_ERR_REGION);
        assert_int_equal(err.region_kind, STORAGE_REGION_ERR_NOT_LEADER);
    }
    assert_int_equal(storage_write(s, NULL, &m, 1, &err), 0);
    mem_storage_inject_error(s, MEM_STORAGE_FAULT_READER, 1, STORAGE_ERR_IO, 0);
    assert_int_equal(storage_reader(s, NULL, &r, &err), STORAGE_ERR_IO);
    assert_null(r);
    assert_int_equal(storage_reader(s, NULL, &r, &err), 0);
    storage_reader_free(r);
    assert_int_equal(mem_storage_count(s, STORAGE_CF_DEFAULT), 1);
}

struct race {
    struct storage *s;
    int stop;
    long checks;
};

static void *reader_thread(void *p)
{
    struct race *rc = p;
    while (!__atomic_load_n(&rc->stop, __ATOMIC_ACQUIRE)) {
        struct storage_reader *r;
        void *x, *y;
        size_t xl, yl;
        if (storage_reader(rc->s, NULL, &r, NULL) != 0)
            abort();
        int fx = storage_reader_get(r, STORAGE_CF_DEFAULT, "x", 1, &x, &xl);
        int fy = storage_reader_get(r, STORAGE_CF_LOCK, "y", 1, &y, &yl);
        /* x and y are always written together: a snapshot has both or neither, equal. */
        if (fx != fy || (fx == 0 && (xl != yl || memcmp(x, y, xl) != 0))) {
            fprintf(stderr, "torn snapshot\n");
            abort();
        }
        if (fx == 0) {
            free(x);
            free(y);
        }
        storage_reader_free(r);
        __atomic_add_fetch(&rc->checks, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* Concurrent readers never see half of a two-CF batch. */
static void test_concurrent_batches_atomic(void **state)
{
    struct race rc = {.s = *state};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &rc), 0);
    for (int i = 0; i < 5000; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        struct storage_modify b[] = {
            {STORAGE_MODIFY_PUT, STORAGE_CF_DEFAULT, "x", 1, v, strlen(v)},
            {STORAGE_MODIFY_PUT, STORAGE_CF_LOCK, "y", 1, v, strlen(v)},
            {STORAGE_MODIFY_PUT, STORAGE_CF_WRITE, v, strlen(v), v, strlen(v)},
        };
        assert_int_equal(storage_write(rc.s, NULL, b, 3, NULL), 0);
    }
    __atomic_store_n(&rc.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(mem_storage_count(rc.s, STORAGE_CF_WRITE), 5000);
    assert_true(rc.checks > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_batch_is_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_injected_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_batches_atomic, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
