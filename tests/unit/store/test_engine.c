/* test_engine.c — the RocksDB engine through the Storage interface (standalone storage). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/engine.h"
#include "tests/lib/test_util.h"

struct fixture {
    char *dir;
    struct storage *s;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256];
    f->dir = test_tmpdir_new("tinykv-engine");
    assert_non_null(f->dir);
    assert_int_equal(standalone_storage_open(f->dir, &f->s, err, sizeof err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    storage_free(f->s);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static void put(struct storage *s, enum storage_cf cf, const char *k, const char *v)
{
    struct storage_modify m = {STORAGE_MODIFY_PUT, cf, k, strlen(k), v, strlen(v)};
    assert_int_equal(storage_write(s, NULL, &m, 1, NULL), 0);
}

/* Returns the value of k in cf as a malloc'd C string, or NULL if missing. */
static char *get(struct storage *s, enum storage_cf cf, const char *k)
{
    struct storage_reader *r;
    assert_int_equal(storage_reader(s, NULL, &r, NULL), 0);
    void *v;
    size_t len;
    int rc = storage_reader_get(r, cf, k, strlen(k), &v, &len);
    storage_reader_free(r);
    if (rc == STORAGE_ERR_NOT_FOUND)
        return NULL;
    assert_int_equal(rc, 0);
    char *out = malloc(len + 1);
    memcpy(out, v, len);
    out[len] = 0;
    free(v);
    return out;
}

/* A key written to one column family is invisible in the others. */
static void test_cf_isolation(void **state)
{
    struct fixture *f = *state;
    put(f->s, STORAGE_CF_LOCK, "k", "in-lock");
    char *v = get(f->s, STORAGE_CF_LOCK, "k");
    assert_string_equal(v, "in-lock");
    free(v);
    assert_null(get(f->s, STORAGE_CF_DEFAULT, "k"));
    assert_null(get(f->s, STORAGE_CF_WRITE, "k"));
}

/* A reader is a snapshot: writes after it was opened are not seen through it. */
static void test_reader_snapshot_ignores_later_writes(void **state)
{
    struct fixture *f = *state;
    put(f->s, STORAGE_CF_DEFAULT, "a", "1");
    struct storage_reader *r;
    assert_int_equal(storage_reader(f->s, NULL, &r, NULL), 0);
    put(f->s, STORAGE_CF_DEFAULT, "a", "2");
    put(f->s, STORAGE_CF_DEFAULT, "b", "new");
    void *v;
    size_t len;
    assert_int_equal(storage_reader_get(r, STORAGE_CF_DEFAULT, "a", 1, &v, &len), 0);
    assert_memory_equal(v, "1", 1);
    free(v);
    assert_int_equal(storage_reader_get(r, STORAGE_CF_DEFAULT, "b", 1, &v, &len),
                     STORAGE_ERR_NOT_FOUND);
    struct storage_iter *it;
    assert_int_equal(storage_reader_iter(r, STORAGE_CF_DEFAULT, &it), 0);
    int n = 0;
    for (storage_iter_seek(it, "", 0); storage_iter_valid(it); storage_iter_next(it))
        n++;
    assert_int_equal(n, 1);
    storage_iter_free(it);
    storage_reader_free(r);
}

/* Iterators start at the first key >= the seek key, go in byte order and stay in their CF. */
static void test_iterator_bounds_and_order(void **state)
{
    struct fixture *f = *state;
    put(f->s, STORAGE_CF_WRITE, "b", "2");
    put(f->s, STORAGE_CF_WRITE, "a", "1");
    put(f->s, STORAGE_CF_WRITE, "c\xff", "4");
    put(f->s, STORAGE_CF_WRITE, "c", "3");
    put(f->s, STORAGE_CF_DEFAULT, "bb", "other-cf");
    struct storage_reader *r;
    assert_int_equal(storage_reader(f->s, NULL, &r, NULL), 0);
    struct storage_iter *it;
    assert_int_equal(storage_reader_iter(r, STORAGE_CF_WRITE, &it), 0);
    const char *want[] = {"b", "c", "c\xff"};
    int n = 0;
    for (storage_iter_seek(it, "ab", 2); storage_iter_valid(it); storage_iter_next(it), n++) {
        size_t len;
        const char *k = storage_iter_key(it, &len);
        assert_true(n < 3);
        assert_int_equal(len, strlen(want[n]));
        assert_memory_equal(k, want[n], len);
    }
    assert_int_equal(n, 3);
    storage_iter_seek(it, "d", 1);
    assert_false(storage_iter_valid(it));
    storage_iter_free(it);
    storage_reader_free(r);
}

/* A batch of puts and deletes across CFs applies atomically, and an invalid one writes nothing. */
static void test_batch_across_cfs(void **state)
{
    struct fixture *f = *state;
    put(f->s, STORAGE_CF_DEFAULT, "gone", "x");
    struct storage_modify mods[] = {
        {STORAGE_MODIFY_PUT, STORAGE_CF_DEFAULT, "d", 1, "1", 1},
        {STORAGE_MODIFY_PUT, STORAGE_CF_LOCK, "l", 1, "2", 1},
        {STORAGE_MODIFY_DELETE, STORAGE_CF_DEFAULT, "gone", 4, NULL, 0},
    };
    assert_int_equal(storage_write(f->s, NULL, mods, 3, NULL), 0);
    char *v = get(f->s, STORAGE_CF_LOCK, "l");
    assert_string_equal(v, "2");
    free(v);
    assert_null(get(f->s, STORAGE_CF_DEFAULT, "gone"));

    struct storage_modify bad[] = {
        {STORAGE_MODIFY_PUT, STORAGE_CF_DEFAULT, "ok", 2, "1", 1},
        {STORAGE_MODIFY_PUT, STORAGE_CF_DEFAULT, "", 0, "1", 1},
    };
    struct storage_error err = {0};
    assert_int_equal(storage_write(f->s, NULL, bad, 2, &err), STORAGE_ERR_INVALID);
    assert_true(strlen(err.msg) > 0);
    assert_null(get(f->s, STORAGE_CF_DEFAULT, "ok"));
}

/* Data written before close is all there after reopening the same directory. */
static void test_data_survives_reopen(void **state)
{
    struct fixture *f = *state;
    put(f->s, STORAGE_CF_DEFAULT, "persist", "yes");
    put(f->s, STORAGE_CF_WRITE, "w", "also");
    storage_free(f->s);
    char err[256];
    assert_int_equal(standalone_storage_open(f->dir, &f->s, err, sizeof err), 0);
    char *v = get(f->s, STORAGE_CF_DEFAULT, "persist");
    assert_string_equal(v, "yes");
    free(v);
    v = get(f->s, STORAGE_CF_WRITE, "w");
    assert_string_equal(v, "also");
    free(v);
}

/* CF names parse both ways; the empty name means default; unknown names are rejected. */
static void test_cf_names(void **state)
{
    (void)state;
    assert_int_equal(storage_cf_parse("", 0), STORAGE_CF_DEFAULT);
    assert_int_equal(storage_cf_parse("lock", 4), STORAGE_CF_LOCK);
    assert_int_equal(storage_cf_parse("write", 5), STORAGE_CF_WRITE);
    assert_int_equal(storage_cf_parse("raft", 4), -1);
    assert_int_equal(storage_cf_parse("lockx", 5), -1);
    assert_string_equal(storage_cf_name(STORAGE_CF_WRITE), "write");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cf_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_snapshot_ignores_later_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_bounds_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_across_cfs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_survives_reopen, setup, teardown),
        cmocka_unit_test(test_cf_names),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
