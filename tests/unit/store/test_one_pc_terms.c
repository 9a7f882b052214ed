/* test_one_pc_terms.c — one-phase commits whose commit ts a store chooses itself (mvcc/
 * mem_locks.c) over real raftstores: only in a leadership term synced by a TSO answer, never
 * below a read another leader served, and never proposed by another term. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec/codec.h"
#include "mvcc/mvcc.h"
#include "tests/lib/test_cluster.h"
#include "tests/lib/test_util.h"

/* The TSO: a counter; tso_calls counts the engines' calls, not the test's own. */
static uint64_t tso_last = 1000;
static int tso_calls;

static uint64_t fresh_ts(void)
{
    return __atomic_add_fetch(&tso_last, 1, __ATOMIC_SEQ_CST);
}

static int engine_tso(void *arg, uint64_t *ts)
{
    (void)arg;
    __atomic_add_fetch(&tso_calls, 1, __ATOMIC_SEQ_CST);
    *ts = fresh_ts();
    return 0;
}

static int calls(void)
{
    return __atomic_load_n(&tso_calls, __ATOMIC_SEQ_CST);
}

static struct storage_ctx ctx_of(struct test_cluster *c, int store)
{
    struct raftstore_peer_info info;
    assert_true(test_cluster_peer_info(c, store, &info));
    return (struct storage_ctx){
        .region_id = 1, .region_conf_ver = info.conf_ver, .region_version = info.version};
}

/* A one-phase prewrite of key = "v" on store's engine, retried while the region answers a
 * region error (a leader still settling in); returns its commit ts (0: it locked instead). */
static uint64_t one_pc(struct test_cluster *c, struct mvcc_engine *e, int store, const char *key,
                       uint64_t start_ts)
{
    struct mvcc_mutation m = {MVCC_OP_PUT, key, strlen(key), "v", 1};
    struct mvcc_prewrite_req req = {.mutations = &m,
                                    .n_mutations = 1,
                                    .primary = key,
                                    .primary_len = strlen(key),
                                    .start_ts = start_ts,
                                    .lock_ttl_ms = 3000,
                                    .try_one_pc = 1};
    uint64_t deadline = test_now_ms() + 10000;
    for (;;) {
        struct storage_ctx ctx = ctx_of(c, store);
        struct mvcc_prewrite_result out;
        int rc = mvcc_prewrite(e, &ctx, &req, &out);
        uint64_t cts = out.one_pc_commit_ts;
        size_t n_errors = out.n_errors;
        mvcc_prewrite_result_free(&out);
        if (rc == MVCC_OK) {
            assert_int_equal(n_errors, 0);
            return cts;
        }
        assert_int_equal(rc, MVCC_ERR_REGION);
        assert_true(test_now_ms() < deadline);
        usleep(5000);
    }
}

/* A transactional get of key at version on store's engine, retried the same way: 1 if found. */
static int found_at(struct test_cluster *c, struct mvcc_engine *e, int store, const char *key,
                    uint64_t version)
{
    uint64_t deadline = test_now_ms() + 10000;
    for (;;) {
        struct storage_ctx ctx = ctx_of(c, store);
        struct storage_key k = {key, strlen(key)};
        ctx.keys = &k;
        ctx.n_keys = 1;
        struct mvcc_get_result g;
        int rc = mvcc_get(e, &ctx, key, strlen(key), version, &g);
        int found = rc == MVCC_OK && !g.not_found;
        mvcc_get_result_free(&g);
        if (rc == MVCC_OK)
            return found;
        assert_int_equal(rc, MVCC_ERR_REGION);
        assert_true(test_now_ms() < deadline);
        usleep(5000);
    }
}

/*
 * Store B's leadership term is synced (its second commit takes no TSO call). The leadership
 * moves to A, which serves a read of k at r; it comes back to B, which commits k in one phase
 * with a start ts below r. B never saw that read, so its new term must not choose the commit ts
 * from what it knows: the commit lands above r, and a second read at r still finds nothing.
 */
static void test_commit_after_leader_change_stays_above_read_served_by_other_leader(void **state)
{
    (void)state;
    struct test_cluster_options opts = {.n_stores = 3, .n_region_peers = 3, .seed = 23};
    struct test_cluster *c = test_cluster_new(&opts);
    assert_non_null(c);
    struct mvcc_engine *e[4] = {0};
    for (int s = 1; s <= 3; s++) {
        assert_int_equal(mvcc_engine_new(test_cluster_storage(c, s), 0, &e[s]), MVCC_OK);
        mvcc_engine_set_ts_source(e[s], engine_tso, NULL);
    }
    int b = test_cluster_leader(c, 10000);
    assert_true(b > 0);
    int a = b % 3 + 1;

    int before = calls();
    assert_true(one_pc(c, e[b], b, "warm-1", fresh_ts()) > 0);
    assert_int_equal(calls(), before + 1);
    uint64_t start = fresh_ts();
    uint64_t warm = one_pc(c, e[b], b, "warm-2", start);
    assert_int_equal(calls(), before + 1); /* synced: chosen on the store */
    assert_true(warm > start);

    uint64_t k_start = fresh_ts();
    assert_int_equal(test_cluster_transfer_leader(c, a, 10000), 0);
    uint64_t r = fresh_ts();
    assert_false(found_at(c, e[a], a, "k", r));

    assert_int_equal(test_cluster_transfer_leader(c, b, 10000), 0);
    before = calls();
    uint64_t k_commit = one_pc(c, e[b], b, "k", k_start);
    assert_int_equal(calls(), before + 1); /* a new term: synced again by the TSO */
    assert_true(k_commit > r);
    assert_false(found_at(c, e[b], b, "k", r));
    assert_true(found_at(c, e[b], b, "k", k_commit));

    for (int s = 1; s <= 3; s++)
        mvcc_engine_free(e[s]);
    test_cluster_free(c);
}

static int put_in_term(struct test_cluster *c, int store, uint64_t term, const char *key,
                       const char *value, int *region_kind)
{
    struct storage_ctx ctx = ctx_of(c, store);
    ctx.term = term;
    size_t klen = codec_key_len(strlen(key));
    uint8_t *k = malloc(klen);
    codec_key_encode(key, strlen(key), k);
    struct storage_modify m = {STORAGE_MODIFY_PUT, STORAGE_CF_DEFAULT, k, klen, value,
                               strlen(value)};
    struct storage_error err = {0};
    int rc = storage_write(test_cluster_storage(c, store), &ctx, &m, 1, &err);
    free(k);
    *region_kind = rc ? (int)err.region_kind : 0;
    return rc;
}

/* Snapshots carry the leader's term; a write that asks for an earlier term of the same leader
 * store is answered StaleCommand and never applies (a later write applies, it does not), one
 * that asks for the current term lands. */
static void test_write_for_an_earlier_term_is_stale(void **state)
{
    (void)state;
    struct test_cluster_options opts = {.n_stores = 3, .n_region_peers = 3, .seed = 29};
    struct test_cluster *c = test_cluster_new(&opts);
    assert_non_null(c);
    int leader = test_cluster_leader(c, 10000);
    assert_true(leader > 0);
    struct raftstore_peer_info info;
    assert_true(test_cluster_peer_info(c, leader, &info));
    struct storage_ctx ctx = ctx_of(c, leader);
    struct storage_reader *rd;
    struct storage_error err;
    assert_int_equal(storage_reader(test_cluster_storage(c, leader), &ctx, &rd, &err), 0);
    uint64_t term = rd->term;
    storage_reader_free(rd);
    assert_int_equal(term, info.term);

    int kind;
    assert_int_equal(put_in_term(c, leader, term, "t", "v1", &kind), 0);
    assert_int_equal(test_cluster_transfer_leader(c, leader % 3 + 1, 10000), 0);
    assert_int_equal(test_cluster_transfer_leader(c, leader, 10000), 0);
    assert_int_equal(test_cluster_leader(c, 10000), leader);
    assert_true(test_cluster_peer_info(c, leader, &info));
    assert_true(info.term > term);
    assert_int_equal(put_in_term(c, leader, term, "t", "v2", &kind), STORAGE_ERR_REGION);
    assert_int_equal(kind, STORAGE_REGION_ERR_STALE_COMMAND);
    assert_int_equal(put_in_term(c, leader, info.term, "u", "v3", &kind), 0);
    char *v = test_cluster_local_get(c, leader, "t");
    assert_non_null(v);
    assert_string_equal(v, "v1");
    free(v);
    test_cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_after_leader_change_stays_above_read_served_by_other_leader),
        cmocka_unit_test(test_write_for_an_earlier_term_is_stale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
