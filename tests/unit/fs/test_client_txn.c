/* test_client_txn.c — client transactions: commit, own writes, conflicts, locks, snapshots. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "client/client.h"
#include "kvrpcpb.pb-c.h"
#include "proto/rpc.h"
#include "tests/lib/fake_pd.h"
#include "tests/lib/test_store.h"
#include "tests/lib/test_util.h"

struct fixture {
    struct fake_pd *pd;
    struct test_store *store;
    struct client *c;
    struct rpc_client *rpc; /* for hand-made Kv* calls */
};

static const struct client_options opts = {
    .timeout_ms = 10000,
    .rpc_timeout_ms = 2000,
    .backoff_base_ms = 1,
    .backoff_max_ms = 20,
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->pd = fake_pd_new();
    f->store = test_store_new();
    assert_non_null(f->pd);
    assert_non_null(f->store);
    assert_int_equal(test_store_set_tso(f->store, fake_pd_addr(f->pd)), 0);
    fake_pd_set_store(f->pd, 1, test_store_addr(f->store));
    fake_pd_set_regions(f->pd, fake_pd_split_at_m, 2);
    char err[256] = "";
    assert_int_equal(client_new(fake_pd_addr(f->pd), &opts, &f->c, err, sizeof err), 0);
    f->rpc = rpc_client_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rpc_client_free(f->rpc);
    client_free(f->c);
    test_store_free(f->store);
    fake_pd_free(f->pd);
    free(f);
    return 0;
}

static void txn_put_str(struct client_txn *t, const char *k, const char *v)
{
    assert_int_equal(client_txn_put(t, k, strlen(k), v, strlen(v)), 0);
}

/* Asserts key `k` reads as `want` (NULL: not found) in `t`. */
static void txn_check(struct client *c, struct client_txn *t, const char *k, const char *want)
{
    void *v = NULL;
    size_t len = 0;
    int rc = client_txn_get(t, k, strlen(k), &v, &len);
    if (!want) {
        assert_int_equal(rc, CLIENT_ERR_NOT_FOUND);
        return;
    }
    if (rc)
        fprintf(stderr, "get %s: %s (%s)\n", k, client_strerror(rc), client_last_error(c));
    assert_int_equal(rc, 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
    free(v);
}

/* Reads `k` in a fresh transaction. */
static void fresh_check(struct client *c, const char *k, const char *want)
{
    struct client_txn *t;
    assert_int_equal(client_txn_begin(c, &t), 0);
    txn_check(c, t, k, want);
    client_txn_free(t);
}

/* A transaction writing keys in two regions commits; later transactions see it, an older one does
 * not. */
static void test_commit_then_read(void **state)
{
    struct fixture *f = *state;
    struct client_txn *old, *t;
    assert_int_equal(client_txn_begin(f->c, &old), 0);
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    assert_true(client_txn_start_ts(t) > client_txn_start_ts(old));
    txn_put_str(t, "apple", "red");
    txn_put_str(t, "zebra", "striped");
    client_ts commit_ts = 0;
    assert_int_equal(client_txn_commit(t, &commit_ts), 0);
    assert_true(commit_ts > client_txn_start_ts(t));
    client_txn_free(t);
    fresh_check(f->c, "apple", "red");
    fresh_check(f->c, "zebra", "striped");
    /* Snapshot isolation: the older transaction reads at its own start ts. */
    txn_check(f->c, old, "apple", NULL);
    txn_check(f->c, old, "zebra", NULL);
    client_txn_free(old);
}

/* Reads inside a transaction see its own buffered puts and deletes; scans merge them with committed
 * data across regions. */
static void test_read_your_own_writes(void **state)
{
    struct fixture *f = *state;
    struct client_txn *t;
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    const char *keys[] = {"b", "d", "n", "q", "x"};
    for (int i = 0; i < 5; i++)
        txn_put_str(t, keys[i], "committed");
    assert_int_equal(client_txn_commit(t, NULL), 0);
    client_txn_free(t);

    assert_int_equal(client_txn_begin(f->c, &t), 0);
    txn_put_str(t, "a", "new");
    txn_put_str(t, "n", "overwritten");
    assert_int_equal(client_txn_delete(t, "d", 1), 0);
    assert_int_equal(client_txn_delete(t, "x", 1), 0);
    txn_put_str(t, "p", "new");
    txn_check(f->c, t, "a", "new");
    txn_check(f->c, t, "n", "overwritten");
    txn_check(f->c, t, "d", NULL);
    txn_check(f->c, t, "b", "committed");

    struct client_kv *kvs;
    size_t n;
    assert_int_equal(client_txn_scan(t, "", 0, NULL, 0, 100, &kvs, &n), 0);
    const char *want_k[] = {"a", "b", "n", "p", "q"};
    const char *want_v[] = {"new", "committed", "overwritten", "new", "committed"};
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(kvs[i].key_len, 1);
        assert_memory_equal(kvs[i].key, want_k[i], 1);
        assert_int_equal(kvs[i].value_len, strlen(want_v[i]));
        assert_memory_equal(kvs[i].value, want_v[i], kvs[i].value_len);
    }
    client_kvs_free(kvs, n);
    /* A limit that ends inside the merged range, and an end bound. */
    assert_int_equal(client_txn_scan(t, "c", 1, "q", 1, 2, &kvs, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(kvs[0].key, "n", 1);
    assert_memory_equal(kvs[1].key, "p", 1);
    client_kvs_free(kvs, n);

    /* Nothing of it is visible outside before commit. */
    fresh_check(f->c, "a", NULL);
    fresh_check(f->c, "n", "committed");
    assert_int_equal(client_txn_commit(t, NULL), 0);
    client_txn_free(t);
    fresh_check(f->c, "a", "new");
    fresh_check(f->c, "d", NULL);
    fresh_check(f->c, "x", NULL);
    fresh_check(f->c, "n", "overwritten");
}

/* Two transactions write the same key: the first to commit wins, the other fails with CONFLICT and
 * leaves nothing. */
static void test_write_write_conflict(void **state)
{
    struct fixture *f = *state;
    struct client_txn *t1, *t2;
    assert_int_equal(client_txn_begin(f->c, &t1), 0);
    assert_int_equal(client_txn_begin(f->c, &t2), 0);
    txn_put_str(t1, "k", "one");
    txn_put_str(t2, "k", "two");
    txn_put_str(t2, "z-other", "two");
    assert_int_equal(client_txn_commit(t1, NULL), 0);
    assert_int_equal(client_txn_commit(t2, NULL), CLIENT_ERR_CONFLICT);
    assert_true(strlen(client_last_error(f->c)) > 0);
    /* Finished transactions refuse further use. */
    assert_int_equal(client_txn_put(t2, "k", 1, "x", 1), CLIENT_ERR_INVALID);
    client_txn_free(t1);
    client_txn_free(t2);
    fresh_check(f->c, "k", "one");
    /* t2's other key was rolled back, not left locked: a read finds nothing at once. */
    fresh_check(f->c, "z-other", NULL);
}

/* Sends a KvPrewrite for `keys` with `primary` straight to the store, as a client that then dies
 * would. */
static void raw_prewrite(struct fixture *f, const char *primary, const char **keys, size_t n,
                         client_ts start_ts, uint64_t ttl_ms)
{
    Kvrpcpb__Mutation ms[8], *ptrs[8];
    for (size_t i = 0; i < n; i++) {
        kvrpcpb__mutation__init(&ms[i]);
        ms[i].op = KVRPCPB__OP__Put;
        ms[i].key.data = (uint8_t *)keys[i];
        ms[i].key.len = strlen(keys[i]);
        ms[i].value.data = (uint8_t *)"abandoned";
        ms[i].value.len = 9;
        ptrs[i] = &ms[i];
    }
    Kvrpcpb__PrewriteRequest req = KVRPCPB__PREWRITE_REQUEST__INIT;
    req.mutations = ptrs;
    req.n_mutations = n;
    req.primary_lock.data = (uint8_t *)primary;
    req.primary_lock.len = strlen(primary);
    req.start_version = start_ts;
    req.lock_ttl = ttl_ms;
    ProtobufCMessage *m;
    assert_int_equal(rpc_client_unary(f->rpc, test_store_addr(f->store),
                                      "/tinykvpb.TinyKv/KvPrewrite", &req.base,
                                      &kvrpcpb__prewrite_response__descriptor, &m, 5000, NULL),
                     0);
    assert_int_equal(((Kvrpcpb__PrewriteResponse *)m)->n_errors, 0);
    protobuf_c_message_free_unpacked(m, NULL);
}

static void raw_commit(struct fixture *f, const char *key, client_ts start_ts, client_ts commit_ts)
{
    ProtobufCBinaryData k = {strlen(key), (uint8_t *)key};
    Kvrpcpb__CommitRequest req = KVRPCPB__COMMIT_REQUEST__INIT;
    req.keys = &k;
    req.n_keys = 1;
    req.start_version = start_ts;
    req.commit_version = commit_ts;
    ProtobufCMessage *m;
    assert_int_equal(rpc_client_unary(f->rpc, test_store_addr(f->store),
                                      "/tinykvpb.TinyKv/KvCommit", &req.base,
                                      &kvrpcpb__commit_response__descriptor, &m, 5000, NULL),
                     0);
    assert_null(((Kvrpcpb__CommitResponse *)m)->error);
    protobuf_c_message_free_unpacked(m, NULL);
}

/* A transaction prewritten and abandoned (short TTL) is rolled back by a reader once its TTL has
 * run out. */
static void test_abandoned_lock_resolved_after_ttl(void **state)
{
    struct fixture *f = *state;
    client_ts start;
    assert_int_equal(client_tso(f->c, &start), 0);
    const char *keys[] = {"p-primary", "s-secondary"};
    raw_prewrite(f, "p-primary", keys, 2, start, 150);
    uint64_t t0 = test_now_ms();
    struct client_txn *t;
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    txn_check(f->c, t, "s-secondary", NULL); /* waits the lock out, then rolls it back */
    uint64_t took = test_now_ms() - t0;
    txn_check(f->c, t, "p-primary", NULL);
    client_txn_free(t);
    /* The lock was live for its TTL (counted from its start ts), so the reader had to wait. */
    assert_true(took >= 100);
    struct client_stats st;
    client_stats_get(f->c, &st);
    assert_true(st.lock_resolves >= 1);
    /* The rolled-back transaction can no longer commit its primary... */
    client_ts late;
    assert_int_equal(client_tso(f->c, &late), 0);
    ProtobufCBinaryData k = {9, (uint8_t *)"p-primary"};
    Kvrpcpb__CommitRequest req = KVRPCPB__COMMIT_REQUEST__INIT;
    req.keys = &k;
    req.n_keys = 1;
    req.start_version = start;
    req.commit_version = late;
    ProtobufCMessage *m;
    assert_int_equal(rpc_client_unary(f->rpc, test_store_addr(f->store),
                                      "/tinykvpb.TinyKv/KvCommit", &req.base,
                                      &kvrpcpb__commit_response__descriptor, &m, 5000, NULL),
                     0);
    assert_non_null(((Kvrpcpb__CommitResponse *)m)->error);
    protobuf_c_message_free_unpacked(m, NULL);
    /* ...and new writers are not blocked by it. */
    struct client_txn *w;
    assert_int_equal(client_txn_begin(f->c, &w), 0);
    txn_put_str(w, "s-secondary", "mine");
    assert_int_equal(client_txn_commit(w, NULL), 0);
    client_txn_free(w);
    fresh_check(f->c, "s-secondary", "mine");
}

/* A transaction whose primary committed but whose secondary is still locked: a reader commits the
 * secondary and sees the value. */
static void test_lock_of_committed_txn_is_rolled_forward(void **state)
{
    struct fixture *f = *state;
    client_ts start, commit;
    assert_int_equal(client_tso(f->c, &start), 0);
    const char *keys[] = {"a-primary", "z-secondary"};
    raw_prewrite(f, "a-primary", keys, 2, start, 60000);
    assert_int_equal(client_tso(f->c, &commit), 0);
    raw_commit(f, "a-primary", start, commit);
    struct client_txn *t;
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    /* Long TTL: only the primary's commit record can settle this quickly. */
    uint64_t t0 = test_now_ms();
    txn_check(f->c, t, "z-secondary", "abandoned");
    assert_true(test_now_ms() - t0 < 5000);
    /* Scans resolve too (here nothing is left to resolve, the pair is plain). */
    struct client_kv *kvs;
    size_t n;
    assert_int_equal(client_txn_scan(t, "", 0, NULL, 0, 10, &kvs, &n), 0);
    assert_int_equal(n, 2);
    client_kvs_free(kvs, n);
    client_txn_free(t);
}

/* A scan that meets an expired lock resolves it and goes on past it. */
static void test_scan_resolves_locks(void **state)
{
    struct fixture *f = *state;
    struct client_txn *t;
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    txn_put_str(t, "c1", "v");
    txn_put_str(t, "c3", "v");
    txn_put_str(t, "n1", "v");
    assert_int_equal(client_txn_commit(t, NULL), 0);
    client_txn_free(t);
    client_ts start;
    assert_int_equal(client_tso(f->c, &start), 0);
    const char *keys[] = {"c2", "n0"};
    raw_prewrite(f, "c2", keys, 2, start, 1); /* expires at once */
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    struct client_kv *kvs;
    size_t n;
    int rc = client_txn_scan(t, "c", 1, NULL, 0, 10, &kvs, &n);
    if (rc)
        fprintf(stderr, "scan: %s (%s)\n", client_strerror(rc), client_last_error(f->c));
    assert_int_equal(rc, 0);
    assert_int_equal(n, 3);
    assert_memory_equal(kvs[0].key, "c1", 2);
    assert_memory_equal(kvs[1].key, "c3", 2);
    assert_memory_equal(kvs[2].key, "n1", 2);
    client_kvs_free(kvs, n);
    client_txn_free(t);
}

/* A read-only snapshot at a past timestamp sees the data as of then and refuses writes. */
static void test_snapshot_at_past_ts(void **state)
{
    struct fixture *f = *state;
    struct client_txn *t;
    client_ts ts1, ts2;
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    txn_put_str(t, "doc", "v1");
    assert_int_equal(client_txn_commit(t, &ts1), 0);
    client_txn_free(t);
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    txn_put_str(t, "doc", "v2");
    assert_int_equal(client_txn_commit(t, &ts2), 0);
    client_txn_free(t);
    assert_true(ts2 > ts1);
    struct client_txn *snap;
    assert_int_equal(client_txn_begin_at(f->c, ts1, &snap), 0);
    txn_check(f->c, snap, "doc", "v1");
    assert_int_equal(client_txn_put(snap, "doc", 3, "x", 1), CLIENT_ERR_INVALID);
    assert_int_equal(client_txn_commit(snap, NULL), CLIENT_ERR_INVALID);
    client_txn_free(snap);
    assert_int_equal(client_txn_begin_at(f->c, ts1 - 1, &snap), 0);
    txn_check(f->c, snap, "doc", NULL);
    client_txn_free(snap);
    /* By wall clock: the millisecond of the first commit shows v1 unless the second
     * commit came in the same millisecond. */
    assert_int_equal(
        client_txn_begin_at(f->c, client_ts_from_unix_ms(client_ts_physical_ms(ts1)), &snap), 0);
    txn_check(f->c, snap, "doc",
              client_ts_physical_ms(ts2) == client_ts_physical_ms(ts1) ? "v2" : "v1");
    client_txn_free(snap);
    fresh_check(f->c, "doc", "v2");
}

/* Rollback discards the buffer; an empty commit succeeds at the start ts. */
static void test_rollback_and_empty_commit(void **state)
{
    struct fixture *f = *state;
    struct client_txn *t;
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    txn_put_str(t, "gone", "x");
    assert_int_equal(client_txn_rollback(t), 0);
    assert_int_equal(client_txn_commit(t, NULL), CLIENT_ERR_INVALID);
    client_txn_free(t);
    fresh_check(f->c, "gone", NULL);
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    client_ts ct = 0;
    assert_int_equal(client_txn_commit(t, &ct), 0);
    assert_int_equal(ct, client_txn_start_ts(t));
    client_txn_free(t);
    /* Limits are checked when buffering. */
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    assert_int_equal(client_txn_put(t, "", 0, "v", 1), CLIENT_ERR_INVALID);
    char *big = calloc(1, CLIENT_MAX_KEY_BYTES + 1);
    assert_int_equal(client_txn_put(t, big, CLIENT_MAX_KEY_BYTES + 1, "v", 1),
                     CLIENT_ERR_TOO_LARGE);
    free(big);
    client_txn_free(t);
}

/* A region splits under a transaction: prewrite meets EpochNotMatch, regroups its keys by the new
 * regions and commits. */
static void test_commit_regroups_after_split(void **state)
{
    (void)state;
    struct fake_pd *pd = fake_pd_new();
    struct test_store *store = test_store_new();
    assert_non_null(pd);
    assert_non_null(store);
    assert_int_equal(test_store_set_tso(store, fake_pd_addr(pd)), 0);
    struct test_proxy *proxy = test_proxy_new(test_store_addr(store));
    assert_non_null(proxy);
    fake_pd_set_store(pd, 1, test_proxy_addr(proxy));
    struct fake_pd_region whole = {
        .id = 1,
        .start = "",
        .end = "",
        .conf_ver = 1,
        .version = 1,
        .n_peers = 1,
        .peers = {{11, 1}},
        .leader = 0,
    };
    fake_pd_set_regions(pd, &whole, 1);
    test_proxy_require_version(proxy, 1);
    struct client *c;
    char err[256];
    assert_int_equal(client_new(fake_pd_addr(pd), &opts, &c, err, sizeof err), 0);
    struct client_txn *t;
    assert_int_equal(client_txn_begin(c, &t), 0);
    txn_put_str(t, "apple", "1");
    txn_put_str(t, "zebra", "2");
    txn_check(c, t, "plum", NULL); /* caches the version-1 region */

    struct fake_pd_region split[] = {
        {.id = 1,
         .start = "",
         .end = "m",
         .conf_ver = 1,
         .version = 2,
         .n_peers = 1,
         .peers = {{11, 1}},
         .leader = 0},
        {.id = 3,
         .start = "m",
         .end = "",
         .conf_ver = 1,
         .version = 2,
         .n_peers = 1,
         .peers = {{31, 1}},
         .leader = 0},
    };
    fake_pd_set_regions(pd, split, 2);
    test_proxy_require_version(proxy, 2);
    client_ts commit_ts;
    int rc = client_txn_commit(t, &commit_ts);
    if (rc)
        fprintf(stderr, "commit: %s (%s)\n", client_strerror(rc), client_last_error(c));
    assert_int_equal(rc, 0);
    client_txn_free(t);
    struct test_proxy_stats st;
    test_proxy_get_stats(proxy, &st);
    assert_int_equal(st.faults, 1);
    struct client_txn *r;
    assert_int_equal(client_txn_begin(c, &r), 0);
    txn_check(c, r, "apple", "1");
    txn_check(c, r, "zebra", "2");
    test_proxy_get_stats(proxy, &st);
    assert_int_equal(st.last_region_id, 3); /* the read of "zebra" went to the new region */
    client_txn_free(r);
    client_free(c);
    test_proxy_free(proxy);
    test_store_free(store);
    fake_pd_free(pd);
}

/* A transaction bigger than one message (three 6 MiB values, thousands of keys) commits in several
 * requests per region. */
static void test_large_transaction_is_batched(void **state)
{
    struct fixture *f = *state;
    enum { SMALL = 5000, BIG = 3 };
    const size_t big_len = 6u * 1024 * 1024;
    char *big = malloc(big_len);
    struct client_txn *t;
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    for (int i = 0; i < BIG; i++) {
        char k[16];
        memset(big, 'A' + i, big_len);
        snprintf(k, sizeof k, "big%d", i);
        assert_int_equal(client_txn_put(t, k, strlen(k), big, big_len), 0);
    }
    for (int i = 0; i < SMALL; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "s%05d", i);
        snprintf(v, sizeof v, "%d", i);
        txn_put_str(t, k, v);
    }
    int rc = client_txn_commit(t, NULL);
    if (rc)
        fprintf(stderr, "commit: %s (%s)\n", client_strerror(rc), client_last_error(f->c));
    assert_int_equal(rc, 0);
    client_txn_free(t);
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    for (int i = 0; i < BIG; i++) {
        char k[16];
        snprintf(k, sizeof k, "big%d", i);
        void *v;
        size_t len;
        assert_int_equal(client_txn_get(t, k, strlen(k), &v, &len), 0);
        assert_int_equal(len, big_len);
        assert_int_equal(((char *)v)[big_len - 1], 'A' + i);
        free(v);
    }
    struct client_kv *kvs;
    size_t n;
    assert_int_equal(client_txn_scan(t, "s", 1, "t", 1, SMALL + 10, &kvs, &n), 0);
    assert_int_equal(n, SMALL);
    assert_memory_equal(kvs[SMALL - 1].key, "s04999", 6);
    client_kvs_free(kvs, n);
    client_txn_free(t);
    free(big);
}

/* A transaction kept open longer than the lock TTL prewrites with a TTL that covers its age, so
 * readers do not roll it back as expired. */
static void test_lock_ttl_covers_transaction_age(void **state)
{
    (void)state;
    struct fake_pd *pd = fake_pd_new();
    struct test_store *store = test_store_new();
    assert_non_null(pd);
    assert_non_null(store);
    assert_int_equal(test_store_set_tso(store, fake_pd_addr(pd)), 0);
    struct test_proxy *proxy = test_proxy_new(test_store_addr(store));
    assert_non_null(proxy);
    fake_pd_set_store(pd, 1, test_proxy_addr(proxy));
    fake_pd_set_regions(pd, fake_pd_split_at_m, 2);
    struct client_options o = opts;
    o.lock_ttl_ms = 100;
    struct client *c;
    char err[256];
    assert_int_equal(client_new(fake_pd_addr(pd), &o, &c, err, sizeof err), 0);
    struct client_txn *t;
    assert_int_equal(client_txn_begin(c, &t), 0);
    client_ts start = client_txn_start_ts(t), now;
    /* Age the transaction: wait until the TSO is 300 ms past its start. */
    for (;;) {
        assert_int_equal(client_tso(c, &now), 0);
        if ((now >> CLIENT_TS_LOGICAL_BITS) >= (start >> CLIENT_TS_LOGICAL_BITS) + 300)
            break;
        struct timespec poll = {0, 10 * 1000 * 1000};
        nanosleep(&poll, NULL);
    }
    txn_put_str(t, "old", "but alive");
    assert_int_equal(client_txn_commit(t, NULL), 0);
    client_txn_free(t);
    struct test_proxy_stats st;
    test_proxy_get_stats(proxy, &st);
    assert_true(st.last_lock_ttl >= 400);
    assert_true(st.last_lock_ttl < 5000);
    fresh_check(c, "old", "but alive");
    client_free(c);
    test_proxy_free(proxy);
    test_store_free(store);
    fake_pd_free(pd);
}

/* Commits whose answers are all lost: the client reports UNDETERMINED within its deadline, and the
 * transaction did commit. */
static void test_unacknowledged_commit_is_undetermined(void **state)
{
    (void)state;
    struct fake_pd *pd = fake_pd_new();
    struct test_store *store = test_store_new();
    assert_non_null(pd);
    assert_non_null(store);
    assert_int_equal(test_store_set_tso(store, fake_pd_addr(pd)), 0);
    struct test_proxy *proxy = test_proxy_new(test_store_addr(store));
    assert_non_null(proxy);
    fake_pd_set_store(pd, 1, test_proxy_addr(proxy));
    fake_pd_set_regions(pd, fake_pd_split_at_m, 2);
    struct client_options o = opts;
    o.timeout_ms = 500;
    struct client *c;
    char err[256];
    assert_int_equal(client_new(fake_pd_addr(pd), &o, &c, err, sizeof err), 0);
    struct client_txn *t;
    assert_int_equal(client_txn_begin(c, &t), 0);
    txn_put_str(t, "a", "maybe");
    txn_put_str(t, "z", "maybe");
    test_proxy_inject_method(proxy, "/tinykvpb.TinyKv/KvCommit", TEST_PROXY_LOSE_RESPONSE, -1);
    uint64_t t0 = test_now_ms();
    assert_int_equal(client_txn_commit(t, NULL), CLIENT_ERR_UNDETERMINED);
    assert_true(test_now_ms() - t0 < 3000);
    client_txn_free(t);
    test_proxy_inject(proxy, TEST_PROXY_NONE, 0, 0, 0);
    /* The store did commit the primary: readers see both keys (the secondary rolled forward). */
    fresh_check(c, "a", "maybe");
    fresh_check(c, "z", "maybe");
    client_free(c);
    test_proxy_free(proxy);
    test_store_free(store);
    fake_pd_free(pd);
}

/* Prewrite and commit answered `undetermined` are resent (both are idempotent): the commit
 * succeeds and its keys are readable. */
static void test_undetermined_txn_commands_are_retried(void **state)
{
    (void)state;
    struct fake_pd *pd = fake_pd_new();
    struct test_store *store = test_store_new();
    assert_non_null(pd);
    assert_non_null(store);
    assert_int_equal(test_store_set_tso(store, fake_pd_addr(pd)), 0);
    struct test_proxy *proxy = test_proxy_new(test_store_addr(store));
    assert_non_null(proxy);
    fake_pd_set_store(pd, 1, test_proxy_addr(proxy));
    fake_pd_set_regions(pd, fake_pd_split_at_m, 2);
    struct client *c;
    char err[256];
    assert_int_equal(client_new(fake_pd_addr(pd), &opts, &c, err, sizeof err), 0);
    const char *methods[] = {"/tinykvpb.TinyKv/KvPrewrite", "/tinykvpb.TinyKv/KvCommit"};
    for (int i = 0; i < 2; i++) {
        struct client_txn *t;
        assert_int_equal(client_txn_begin(c, &t), 0);
        txn_put_str(t, "a", methods[i]);
        txn_put_str(t, "z", methods[i]);
        test_proxy_inject_method(proxy, methods[i], TEST_PROXY_UNDETERMINED, 2);
        assert_int_equal(client_txn_commit(t, NULL), 0);
        client_txn_free(t);
        fresh_check(c, "a", methods[i]);
        fresh_check(c, "z", methods[i]);
    }
    struct test_proxy_stats st;
    test_proxy_get_stats(proxy, &st);
    assert_int_equal(st.faults, 4);
    client_free(c);
    test_proxy_free(proxy);
    test_store_free(store);
    fake_pd_free(pd);
}

/* The model of the scan test: committed value and buffered op per key. */
enum { MODEL_KEYS = 104 };
struct model_key {
    char key[4];
    char committed[16]; /* "" absent */
    int buffered;       /* 0 none, 1 put, 2 delete */
    char value[16];
};

static const char *model_visible(const struct model_key *m)
{
    if (m->buffered == 1)
        return m->value;
    if (m->buffered == 2)
        return NULL;
    return m->committed[0] ? m->committed : NULL;
}

/* One round of the scan model test with `seed`; it deletes its keys at the end. */
static void scan_model_round(struct fixture *f, unsigned seed)
{
    printf("scan model: seed %u (CLIENT_TEST_SEED=%u to repeat)\n", seed, seed);
    srand(seed);
    struct model_key m[MODEL_KEYS];
    memset(m, 0, sizeof m);
    for (int i = 0; i < MODEL_KEYS; i++)
        snprintf(m[i].key, sizeof m[i].key, "%c%d", 'a' + i / 4, i % 4);
    struct client_txn *t;
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    for (int i = 0; i < MODEL_KEYS; i++) {
        if (rand() % 2) {
            snprintf(m[i].committed, sizeof m[i].committed, "c%d", rand() % 1000);
            txn_put_str(t, m[i].key, m[i].committed);
        }
    }
    assert_int_equal(client_txn_commit(t, NULL), 0);
    client_txn_free(t);
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    for (int op = 0; op < 40; op++) {
        struct model_key *k = &m[rand() % MODEL_KEYS];
        if (rand() % 2) {
            k->buffered = 1;
            snprintf(k->value, sizeof k->value, "b%d", rand() % 1000);
            txn_put_str(t, k->key, k->value);
        } else {
            k->buffered = 2;
            assert_int_equal(client_txn_delete(t, k->key, strlen(k->key)), 0);
        }
    }
    for (int round = 0; round < 40; round++) {
        int s = rand() % (MODEL_KEYS + 1), e = rand() % (MODEL_KEYS + 2);
        const char *start = s == MODEL_KEYS ? "" : m[s].key;
        const char *end = e >= MODEL_KEYS ? NULL : m[e].key; /* NULL: unbounded */
        size_t limit = (size_t)(rand() % 60);
        struct client_kv *kvs;
        size_t n;
        int rc =
            client_txn_scan(t, start, strlen(start), end, end ? strlen(end) : 0, limit, &kvs, &n);
        assert_int_equal(rc, 0);
        size_t want = 0;
        for (int i = 0; i < MODEL_KEYS && want < limit; i++) {
            const char *v = model_visible(&m[i]);
            if (!v || strcmp(m[i].key, start) < 0 || (end && strcmp(m[i].key, end) >= 0))
                continue;
            if (want >= n)
                fail_msg("seed %u round %d: scan [%s, %s) limit %zu ended early at %zu", seed,
                         round, start, end ? end : "+inf", limit, n);
            assert_int_equal(kvs[want].key_len, strlen(m[i].key));
            assert_memory_equal(kvs[want].key, m[i].key, kvs[want].key_len);
            assert_int_equal(kvs[want].value_len, strlen(v));
            assert_memory_equal(kvs[want].value, v, strlen(v));
            want++;
        }
        assert_int_equal(n, want);
        client_kvs_free(kvs, n);
    }
    client_txn_free(t);
    /* Leave an empty keyspace for the next round. */
    assert_int_equal(client_txn_begin(f->c, &t), 0);
    for (int i = 0; i < MODEL_KEYS; i++)
        assert_int_equal(client_txn_delete(t, m[i].key, strlen(m[i].key)), 0);
    assert_int_equal(client_txn_commit(t, NULL), 0);
    client_txn_free(t);
}

/* Random committed data plus random buffered puts and deletes: every scan (random bounds and
 * limits, across the split) equals the same scan of a model. */
static void test_scan_matches_model(void **state)
{
    struct fixture *f = *state;
    const char *env = getenv("CLIENT_TEST_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)test_now_ms();
    scan_model_round(f, seed);
    /* Soak: CLIENT_SOAK_ROUNDS more rounds with the following seeds. */
    const char *soak = getenv("CLIENT_SOAK_ROUNDS");
    for (long i = 1; soak && i <= atol(soak); i++)
        scan_model_round(f, seed + (unsigned)i);
}

struct counter_thread {
    struct client *c;
    int increments;
    int conflicts;
    int failures;
};

static void *counter_worker(void *arg)
{
    struct counter_thread *w = arg;
    for (int done = 0; done < w->increments;) {
        struct client_txn *t;
        if (client_txn_begin(w->c, &t) != 0) {
            w->failures++;
            return NULL;
        }
        void *v = NULL;
        size_t len = 0;
        long value = 0;
        int rc = client_txn_get(t, "counter", 7, &v, &len);
        if (rc == 0) {
            char buf[32] = "";
            memcpy(buf, v, len < 31 ? len : 31);
            value = strtol(buf, NULL, 10);
            free(v);
        } else if (rc != CLIENT_ERR_NOT_FOUND) {
            w->failures++;
            client_txn_free(t);
            return NULL;
        }
        char out[32];
        int n = snprintf(out, sizeof out, "%ld", value + 1);
        client_txn_put(t, "counter", 7, out, (size_t)n);
        rc = client_txn_commit(t, NULL);
        client_txn_free(t);
        if (rc == 0) {
            done++;
        } else if (rc == CLIENT_ERR_CONFLICT) {
            w->conflicts++;
        } else {
            fprintf(stderr, "counter commit: %s (%s)\n", client_strerror(rc),
                    client_last_error(w->c));
            w->failures++;
            return NULL;
        }
    }
    return NULL;
}

/* N threads increment one counter in transactions, retrying on conflict; no increment is lost. */
static void test_concurrent_counter(void **state)
{
    struct fixture *f = *state;
    enum { THREADS = 4, EACH = 10 };
    struct counter_thread w[THREADS];
    pthread_t th[THREADS];
    int conflicts = 0;
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct counter_thread){f->c, EACH, 0, 0};
        pthread_create(&th[i], NULL, counter_worker, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
        conflicts += w[i].conflicts;
    }
    printf("counter: %d increments, %d conflicts retried\n", THREADS * EACH, conflicts);
    char want[16];
    snprintf(want, sizeof want, "%d", THREADS * EACH);
    fresh_check(f->c, "counter", want);
}

/* One round of the faulty counter test: its own scheduler, store and proxy. */
static void faulty_counter_round(unsigned seed)
{
    printf("faulty counter: seed %u (CLIENT_TEST_SEED=%u replays the fault draws; thread timing "
           "varies)\n",
           seed, seed);
    struct fake_pd *pd = fake_pd_new();
    struct test_store *store = test_store_new();
    assert_non_null(pd);
    assert_non_null(store);
    assert_int_equal(test_store_set_tso(store, fake_pd_addr(pd)), 0);
    struct test_proxy *proxy = test_proxy_new(test_store_addr(store));
    assert_non_null(proxy);
    fake_pd_set_store(pd, 1, test_proxy_addr(proxy));
    fake_pd_set_regions(pd, fake_pd_split_at_m, 2);
    struct client *c;
    char err[256];
    assert_int_equal(client_new(fake_pd_addr(pd), &opts, &c, err, sizeof err), 0);
    test_proxy_inject_random(proxy, 25, seed);
    enum { THREADS = 3, EACH = 5 };
    struct counter_thread w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct counter_thread){c, EACH, 0, 0};
        pthread_create(&th[i], NULL, counter_worker, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    test_proxy_inject_random(proxy, 0, 0);
    struct test_proxy_stats st;
    test_proxy_get_stats(proxy, &st);
    printf("faulty counter: %llu requests, %llu faults\n", (unsigned long long)st.calls,
           (unsigned long long)st.faults);
    assert_true(st.faults > 0);
    /* The increments went through one-phase commit: lost answers there are retried too. */
    struct client_stats cs;
    client_stats_get(c, &cs);
    assert_true(cs.one_pc_commits > 0);
    char want[16];
    snprintf(want, sizeof want, "%d", THREADS * EACH);
    fresh_check(c, "counter", want);
    client_free(c);
    test_proxy_free(proxy);
    test_store_free(store);
    fake_pd_free(pd);
}

/* Increments through a proxy that answers a quarter of all requests with a random region error,
 * UNAVAILABLE or a lost response (after the store acted): no increment is lost or doubled. */
static void test_counter_through_faults(void **state)
{
    (void)state;
    const char *env = getenv("CLIENT_TEST_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)test_now_ms();
    faulty_counter_round(seed);
    /* Soak: CLIENT_SOAK_ROUNDS more rounds with the following seeds. */
    const char *soak = getenv("CLIENT_SOAK_ROUNDS");
    for (long i = 1; soak && i <= atol(soak); i++)
        faulty_counter_round(seed + (unsigned)i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_then_read, setup, teardown),
        cmocka_unit_test(test_undetermined_txn_commands_are_retried),
        cmocka_unit_test_setup_teardown(test_read_your_own_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_write_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abandoned_lock_resolved_after_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_of_committed_txn_is_rolled_forward, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_scan_resolves_locks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_at_past_ts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_and_empty_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_matches_model, setup, teardown),
        cmocka_unit_test(test_commit_regroups_after_split),
        cmocka_unit_test(test_lock_ttl_covers_transaction_age),
        cmocka_unit_test(test_unacknowledged_commit_is_undetermined),
        cmocka_unit_test_setup_teardown(test_large_transaction_is_batched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_counter, setup, teardown),
        cmocka_unit_test(test_counter_through_faults),
    };
    return cmocka_run_group_tests_name("client_txn", tests, NULL, NULL);
}
