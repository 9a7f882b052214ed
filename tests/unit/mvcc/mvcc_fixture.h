/* mvcc_fixture.h — mvcc test helpers: engine over mem_storage, raw records. */
#ifndef TINYKV_TESTS_UNIT_MVCC_FIXTURE_H
#define TINYKV_TESTS_UNIT_MVCC_FIXTURE_H

/*
 * Header-only (each test_*.c is its own program). Helpers write and read the
 * CFs directly, so tests can set up states and check exactly what a command
 * wrote, independently of the command code.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mvcc/mvcc_internal.h"
#include "tests/lib/mem_storage.h"

struct fx {
    struct storage *s;
    struct mvcc_engine *e;
};

static inline int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(mem_storage_new(&f->s), 0);
    assert_int_equal(mvcc_engine_new(f->s, 0, &f->e), 0);
    *state = f;
    return 0;
}

static inline int fx_teardown(void **state)
{
    struct fx *f = *state;
    mvcc_engine_free(f->e);
    storage_free(f->s);
    free(f);
    return 0;
}

/* Mutations of string-literal keys and values. */
#define PUT(k, v)                                                                                  \
    {                                                                                              \
        MVCC_OP_PUT, (k), sizeof(k) - 1, (v), sizeof(v) - 1                                        \
    }
#define DEL(k)                                                                                     \
    {                                                                                              \
        MVCC_OP_DEL, (k), sizeof(k) - 1, NULL, 0                                                   \
    }

#define K(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static inline void fx_raw_put(struct fx *f, enum storage_cf cf, const void *key, size_t klen,
                              const void *val, size_t vlen)
{
    struct storage_modify m = {STORAGE_MODIFY_PUT, cf, key, klen, val, vlen};
    assert_int_equal(storage_write(f->s, NULL, &m, 1, NULL), 0);
}

/* A value of key written by the transaction started at start_ts. */
static inline void fx_put_value(struct fx *f, const void *key, size_t klen, uint64_t start_ts,
                                const void *val, size_t vlen)
{
    uint8_t *k;
    size_t kl;
    assert_int_equal(mvcc_key_encode(key, klen, start_ts, &k, &kl), 0);
    fx_raw_put(f, STORAGE_CF_DEFAULT, k, kl, val, vlen);
    free(k);
}

static inline void fx_put_write(struct fx *f, const void *key, size_t klen, uint64_t commit_ts,
                                enum mvcc_write_kind kind, uint64_t start_ts)
{
    uint8_t *k, v[MVCC_WRITE_RECORD_MAX];
    size_t kl;
    struct mvcc_write w = {.start_ts = start_ts, .kind = kind};
    size_t vl = mvcc_write_encode(&w, v);
    assert_int_equal(mvcc_key_encode(key, klen, commit_ts, &k, &kl), 0);
    fx_raw_put(f, STORAGE_CF_WRITE, k, kl, v, vl);
    free(k);
}

static inline void fx_put_lock(struct fx *f, const void *key, size_t klen, const void *primary,
                               size_t plen, uint64_t start_ts, uint64_t ttl,
                               enum mvcc_write_kind kind)
{
    struct mvcc_lock l = {
        .primary = primary, .primary_len = plen, .start_ts = start_ts, .ttl_ms = ttl, .kind = kind};
    uint8_t *v = malloc(mvcc_lock_encoded_len(&l));
    assert_non_null(v);
    mvcc_lock_encode(&l, v);
    uint8_t *lk;
    size_t lk_len;
    assert_int_equal(mvcc_lock_key_encode(key, klen, &lk, &lk_len), MVCC_OK);
    fx_raw_put(f, STORAGE_CF_LOCK, lk, lk_len, v, mvcc_lock_encoded_len(&l));
    free(lk);
    free(v);
}

/* A committed put: value at start_ts, write record at commit_ts. */
static inline void fx_committed(struct fx *f, const void *key, size_t klen, uint64_t start_ts,
                                uint64_t commit_ts, const void *val, size_t vlen)
{
    fx_put_value(f, key, klen, start_ts, val, vlen);
    fx_put_write(f, key, klen, commit_ts, MVCC_WRITE_PUT, start_ts);
}

/* Raw lookup in a CF; returns 1 and a malloc'd value when present. */
static inline int fx_raw_get(struct fx *f, enum storage_cf cf, const void *key, size_t klen,
                             void **val, size_t *vlen)
{
    struct storage_reader *r;
    void *v = NULL;
    size_t vl = 0;
    assert_int_equal(storage_reader(f->s, NULL, &r, NULL), 0);
    int rc = storage_reader_get(r, cf, key, klen, &v, &vl);
    storage_reader_free(r);
    assert_true(rc == 0 || rc == STORAGE_ERR_NOT_FOUND);
    if (val)
        *val = v;
    else
        free(v);
    if (vlen)
        *vlen = vl;
    return rc == 0;
}

/* Is there a value of key at start_ts? If expect is non-NULL it must equal it. */
static inline int fx_has_value(struct fx *f, const void *key, size_t klen, uint64_t start_ts,
                               const void *expect, size_t elen)
{
    uint8_t *k;
    size_t kl, vl;
    void *v;
    assert_int_equal(mvcc_key_encode(key, klen, start_ts, &k, &kl), 0);
    int found = fx_raw_get(f, STORAGE_CF_DEFAULT, k, kl, &v, &vl);
    free(k);
    if (found && expect) {
        assert_int_equal(vl, elen);
        assert_memory_equal(v, expect, elen);
    }
    free(v);
    return found;
}

/* The write record of key at commit_ts: returns 1 and fills *w when present (a short value's
 * bytes are gone with the record: w->short_value is NULL, has_short and short_len stay). */
static inline int fx_get_write(struct fx *f, const void *key, size_t klen, uint64_t commit_ts,
                               struct mvcc_write *w)
{
    uint8_t *k;
    size_t kl, vl;
    void *v;
    assert_int_equal(mvcc_key_encode(key, klen, commit_ts, &k, &kl), 0);
    int found = fx_raw_get(f, STORAGE_CF_WRITE, k, kl, &v, &vl);
    free(k);
    if (found)
        assert_int_equal(mvcc_write_decode(v, vl, w), 0);
    free(v);
    if (found)
        w->short_value = NULL;
    return found;
}

/* The lock on key: returns 1 and fills *l (owned: mvcc_lock_release) when present. */
static inline int fx_get_lock(struct fx *f, const void *key, size_t klen, struct mvcc_lock *l)
{
    void *v;
    size_t vl;
    uint8_t *lk;
    size_t lk_len;
    memset(l, 0, sizeof(*l));
    assert_int_equal(mvcc_lock_key_encode(key, klen, &lk, &lk_len), MVCC_OK);
    int found = fx_raw_get(f, STORAGE_CF_LOCK, lk, lk_len, &v, &vl);
    free(lk);
    if (!found)
        return 0;
    assert_int_equal(mvcc_lock_decode(v, vl, l), 0);
    l->buf = v;
    return 1;
}

static inline void fx_assert_lens(struct fx *f, size_t ndefault, size_t nlock, size_t nwrite)
{
    assert_int_equal(mem_storage_count(f->s, STORAGE_CF_DEFAULT), ndefault);
    assert_int_equal(mem_storage_count(f->s, STORAGE_CF_LOCK), nlock);
    assert_int_equal(mem_storage_count(f->s, STORAGE_CF_WRITE), nwrite);
}

/* Prewrite of one mutation list with primary. */
static inline int fx_prewrite(struct fx *f, const struct mvcc_mutation *m, size_t n,
                              const void *primary, size_t plen, uint64_t start_ts, uint64_t ttl,
                              struct mvcc_prewrite_result *out)
{
    struct mvcc_prewrite_req req = {
        .mutations = m,
        .n_mutations = n,
        .primary = primary,
        .primary_len = plen,
        .start_ts = start_ts,
        .lock_ttl_ms = ttl,
    };
    return mvcc_prewrite(f->e, NULL, &req, out);
}

static inline int fx_commit1(struct fx *f, const void *key, size_t klen, uint64_t start_ts,
                             uint64_t commit_ts, struct mvcc_write_result *out)
{
    struct mvcc_key_slice k = {key, klen};
    return mvcc_commit(f->e, NULL, &k, 1, start_ts, commit_ts, out);
}

static inline int fx_rollback1(struct fx *f, const void *key, size_t klen, uint64_t start_ts,
                               struct mvcc_write_result *out)
{
    struct mvcc_key_slice k = {key, klen};
    return mvcc_batch_rollback(f->e, NULL, &k, 1, start_ts, out);
}

/* Get that must succeed without key error; returns 1 with value checked, 0 if not found. */
static inline int fx_get_ok(struct fx *f, const void *key, size_t klen, uint64_t version,
                            const void *expect, size_t elen)
{
    struct mvcc_get_result r;
    assert_int_equal(mvcc_get(f->e, NULL, key, klen, version, &r), 0);
    assert_int_equal(r.error.kind, MVCC_KEY_ERR_NONE);
    int found = !r.not_found;
    if (found && expect) {
        assert_int_equal(r.value_len, elen);
        assert_memory_equal(r.value, expect, elen);
    }
    mvcc_get_result_free(&r);
    return found;
}

#endif
