/* test_client_raw.c — client TSO, routing, region cache, raw KV, retries and deadlines. */
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
#include "tests/lib/fake_pd.h"
#include "tests/lib/test_store.h"
#include "tests/lib/test_util.h"

struct fixture {
    struct fake_pd *pd;
    struct test_store *store;
    struct client *c;
};

/* One region ["", "") with one peer (id 11) on store 1. */
static const struct fake_pd_region one_region = {
    .id = 1,
    .start = "",
    .end = "",
    .conf_ver = 1,
    .version = 1,
    .n_peers = 1,
    .peers = {{11, 1}},
    .leader = 0,
};

static const struct client_options fast_opts = {
    .timeout_ms = 5000,
    .rpc_timeout_ms = 1000,
    .backoff_base_ms = 1,
    .backoff_max_ms = 50,
};

static int setup_common(void **state, const struct fake_pd_region *regions, size_t n)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->pd = fake_pd_new();
    assert_non_null(f->pd);
    f->store = test_store_new();
    assert_non_null(f->store);
    fake_pd_set_store(f->pd, 1, test_store_addr(f->store));
    fake_pd_set_regions(f->pd, regions, n);
    char err[256] = "";
    int rc = client_new(fake_pd_addr(f->pd), &fast_opts, &f->c, err, sizeof err);
    if (rc)
        fprintf(stderr, "client_new: %s: %s\n", client_strerror(rc), err);
    assert_int_equal(rc, 0);
    *state = f;
    return 0;
}

static int setup_one(void **state)
{
    return setup_common(state, &one_region, 1);
}

static int setup_two(void **state)
{
    return setup_common(state, fake_pd_split_at_m, 2);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    client_free(f->c);
    test_store_free(f->store);
    fake_pd_free(f->pd);
    free(f);
    return 0;
}

static void put_str(struct client *c, const char *k, const char *v)
{
    int rc = client_raw_put(c, NULL, k, strlen(k), v, strlen(v));
    if (rc)
        fprintf(stderr, "put %s: %s (%s)\n", k, client_strerror(rc), client_last_error(c));
    assert_int_equal(rc, 0);
}

static void check_value(struct client *c, const char *k, const char *want)
{
    void *v = NULL;
    size_t len = 0;
    int rc = client_raw_get(c, NULL, k, strlen(k), &v, &len);
    if (!want) {
        assert_int_equal(rc, CLIENT_ERR_NOT_FOUND);
        assert_null(v);
        return;
    }
    if (rc)
        fprintf(stderr, "get %s: %s (%s)\n", k, client_strerror(rc), client_last_error(c));
    assert_int_equal(rc, 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
    free(v);
}

/* The client learns the cluster id and leader from GetMembers at start. */
static void test_connect_asks_members(void **state)
{
    struct fixture *f = *state;
    struct fake_pd_counts n;
    fake_pd_get_counts(f->pd, &n);
    assert_true(n.get_members >= 1);
}

/* Put, get, overwrite, delete and get-missing work through the region cache on one region. */
static void test_raw_put_get_delete(void **state)
{
    struct fixture *f = *state;
    put_str(f->c, "alpha", "1");
    check_value(f->c, "alpha", "1");
    put_str(f->c, "alpha", "2");
    check_value(f->c, "alpha", "2");
    assert_int_equal(client_raw_delete(f->c, NULL, "alpha", 5), 0);
    check_value(f->c, "alpha", NULL);
    check_value(f->c, "never", NULL);
    /* An empty value is a value, not absence. */
    assert_int_equal(client_raw_put(f->c, NULL, "empty", 5, "", 0), 0);
    void *v = NULL;
    size_t len = 9;
    assert_int_equal(client_raw_get(f->c, NULL, "empty", 5, &v, &len), 0);
    assert_non_null(v);
    assert_int_equal(len, 0);
    free(v);
    /* Column families are kept apart. */
    assert_int_equal(client_raw_put(f->c, "lock", "alpha", 5, "L", 1), 0);
    check_value(f->c, "alpha", NULL);
    /* One region, one store: the scheduler was asked once for each. */
    struct fake_pd_counts n;
    fake_pd_get_counts(f->pd, &n);
    assert_int_equal(n.get_region, 1);
    assert_int_equal(n.get_store, 1);
}

/* Bad keys, values and column families fail locally with INVALID or TOO_LARGE. */
static void test_raw_argument_checks(void **state)
{
    struct fixture *f = *state;
    void *v;
    size_t len;
    assert_int_equal(client_raw_get(f->c, NULL, "", 0, &v, &len), CLIENT_ERR_INVALID);
    assert_int_equal(client_raw_put(f->c, "bogus", "k", 1, "v", 1), CLIENT_ERR_INVALID);
    char *big = calloc(1, CLIENT_MAX_VALUE_BYTES + 1);
    assert_int_equal(client_raw_put(f->c, NULL, big, CLIENT_MAX_KEY_BYTES + 1, "v", 1),
                     CLIENT_ERR_TOO_LARGE);
    assert_int_equal(client_raw_put(f->c, NULL, "k", 1, big, CLIENT_MAX_VALUE_BYTES + 1),
                     CLIENT_ERR_TOO_LARGE);
    assert_true(strlen(client_last_error(f->c)) > 0);
    /* A value of exactly the limit goes through. */
    assert_int_equal(client_raw_put(f->c, NULL, "big", 3, big, CLIENT_MAX_VALUE_BYTES), 0);
    assert_int_equal(client_raw_get(f->c, NULL, "big", 3, &v, &len), 0);
    assert_int_equal(len, CLIENT_MAX_VALUE_BYTES);
    free(v);
    free(big);
}

/* Keys on both sides of a split go to their own region, and each request carries that region's
 * context. */
static void test_raw_routing_two_regions(void **state)
{
    struct fixture *f = *state;
    put_str(f->c, "apple", "a");
    put_str(f->c, "zebra", "z");
    check_value(f->c, "apple", "a");
    check_value(f->c, "zebra", "z");
    struct client_region_info info;
    assert_int_equal(client_region_of_key(f->c, "apple", 5, &info), 0);
    assert_int_equal(info.region_id, 1);
    assert_int_equal(info.end_key_len, 1);
    assert_memory_equal(info.end_key, "m", 1);
    assert_int_equal(info.leader_store_id, 1);
    assert_string_equal(info.leader_addr, test_store_addr(f->store));
    client_region_info_clear(&info);
    assert_int_equal(client_region_of_key(f->c, "m", 1, &info), 0);
    assert_int_equal(info.region_id, 2);
    assert_int_equal(info.leader_peer_id, 21);
    assert_int_equal(info.version, 2);
    client_region_info_clear(&info);
    struct fake_pd_counts n;
    fake_pd_get_counts(f->pd, &n);
    assert_int_equal(n.get_region, 2);
}

/* A scan starting in the first region continues into the second, in order, up to the limit and the
 * end key. */
static void test_raw_scan_across_regions(void **state)
{
    struct fixture *f = *state;
    for (char ch = 'a'; ch <= 'z'; ch++) {
        char k[2] = {ch, 0}, v[3] = {'v', ch, 0};
        put_str(f->c, k, v);
    }
    struct client_kv *kvs;
    size_t n;
    assert_int_equal(client_raw_scan(f->c, NULL, "", 0, NULL, 0, 100, &kvs, &n), 0);
    assert_int_equal(n, 26);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(kvs[i].key_len, 1);
        assert_int_equal(kvs[i].key[0], 'a' + (int)i);
        assert_int_equal(kvs[i].value_len, 2);
        assert_int_equal(kvs[i].value[1], 'a' + (int)i);
    }
    client_kvs_free(kvs, n);

    /* Limit crossing the split: "k".."q". */
    assert_int_equal(client_raw_scan(f->c, NULL, "k", 1, NULL, 0, 7, &kvs, &n), 0);
    assert_int_equal(n, 7);
    assert_int_equal(kvs[0].key[0], 'k');
    assert_int_equal(kvs[6].key[0], 'q');
    client_kvs_free(kvs, n);

    /* End key is exclusive and may lie in the second region. */
    assert_int_equal(client_raw_scan(f->c, NULL, "x", 1, "p", 1, 100, &kvs, &n), 0);
    assert_int_equal(n, 0);
    client_kvs_free(kvs, n);
    assert_int_equal(client_raw_scan(f->c, NULL, "j", 1, "p", 1, 100, &kvs, &n), 0);
    assert_int_equal(n, 6);
    assert_int_equal(kvs[5].key[0], 'o');
    client_kvs_free(kvs, n);

    /* Limit 0 returns nothing. */
    assert_int_equal(client_raw_scan(f->c, NULL, "", 0, NULL, 0, 0, &kvs, &n), 0);
    assert_int_equal(n, 0);
    client_kvs_free(kvs, n);
}

/* A scan whose region holds nothing from the cursor on moves on to the next region. */
static void test_raw_scan_skips_empty_region(void **state)
{
    struct fixture *f = *state;
    put_str(f->c, "n1", "x");
    put_str(f->c, "n2", "y");
    struct client_kv *kvs;
    size_t n;
    assert_int_equal(client_raw_scan(f->c, NULL, "a", 1, NULL, 0, 10, &kvs, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(kvs[0].key, "n1", 2);
    client_kvs_free(kvs, n);
}

struct tso_thread {
    struct client *c;
    int n;
    client_ts *out;
    int failures;
};

static void *tso_worker(void *arg)
{
    struct tso_thread *t = arg;
    for (int i = 0; i < t->n; i++)
        if (client_tso(t->c, &t->out[i]) != 0)
            t->failures++;
    return NULL;
}

static int cmp_ts(const void *a, const void *b)
{
    client_ts x = *(const client_ts *)a, y = *(const client_ts *)b;
    return x < y ? -1 : x > y;
}

/* Runs THREADS x PER client_tso calls and checks uniqueness and per-thread order; returns
 * the scheduler's counts over the run. */
static void tso_hammer(struct fake_pd *pd, struct client *c, struct fake_pd_counts *delta)
{
    enum { THREADS = 8, PER = 100 };
    struct tso_thread t[THREADS];
    pthread_t th[THREADS];
    client_ts *all = calloc(THREADS * PER, sizeof *all);
    struct fake_pd_counts before, after;
    fake_pd_get_counts(pd, &before);
    for (int i = 0; i < THREADS; i++) {
        t[i] = (struct tso_thread){c, PER, all + i * PER, 0};
        pthread_create(&th[i], NULL, tso_worker, &t[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].failures, 0);
        for (int j = 1; j < PER; j++)
            assert_true(t[i].out[j] > t[i].out[j - 1]);
    }
    fake_pd_get_counts(pd, &after);
    delta->tso_requests = after.tso_requests - before.tso_requests;
    delta->tso_timestamps = after.tso_timestamps - before.tso_timestamps;
    delta->tso_max_count = after.tso_max_count;
    printf("tso: %d timestamps in %llu round trips, at most %llu at once\n", THREADS * PER,
           (unsigned long long)delta->tso_requests, (unsigned long long)after.tso_max_count);
    assert_int_equal(delta->tso_timestamps, THREADS * PER);
    qsort(all, THREADS * PER, sizeof *all, cmp_ts);
    for (int i = 1; i < THREADS * PER; i++)
        assert_true(all[i] > all[i - 1]);
    /* Physical part is wall-clock milliseconds (after 2020). */
    assert_true((all[0] >> CLIENT_TS_LOGICAL_BITS) > 1577836800000ull);
    free(all);
}

/* Timestamps from many threads are unique, increase within each thread, and share stream round
 * trips. */
static void test_tso_monotonic_and_batched(void **state)
{
    struct fixture *f = *state;
    fake_pd_set_tso_delay_ms(f->pd, 1);
    struct fake_pd_counts d;
    tso_hammer(f->pd, f->c, &d);
    assert_true(d.tso_requests < 800);
    assert_true(d.tso_max_count > 1);
    struct client_stats st;
    client_stats_get(f->c, &st);
    assert_int_equal(st.tso_timestamps, 800);
}

/* With tso_max_batch 3 no round trip asks for more than 3 timestamps, yet all callers are served.
 */
static void test_tso_batch_cap(void **state)
{
    struct fixture *f = *state;
    fake_pd_set_tso_delay_ms(f->pd, 1);
    struct client_options o = fast_opts;
    o.tso_max_batch = 3;
    struct client *c;
    char err[256];
    assert_int_equal(client_new(fake_pd_addr(f->pd), &o, &c, err, sizeof err), 0);
    struct fake_pd_counts d;
    tso_hammer(f->pd, c, &d);
    assert_int_equal(d.tso_max_count, 3);
    assert_true(d.tso_requests >= 800 / 3);
    client_free(c);
}

/* A client_tso after another is strictly larger (single caller, no batching). */
static void test_tso_sequential(void **state)
{
    struct fixture *f = *state;
    client_ts prev = 0;
    for (int i = 0; i < 50; i++) {
        client_ts ts;
        assert_int_equal(client_tso(f->c, &ts), 0);
        assert_true(ts > prev);
        prev = ts;
    }
}

struct raw_thread {
    struct client *c;
    int id;
    int failures;
};

static void *raw_worker(void *arg)
{
    struct raw_thread *t = arg;
    for (int i = 0; i < 50; i++) {
        char k[32], v[32];
        /* Half the keys land left of "m", half right. */
        snprintf(k, sizeof k, "%c-%d-%d", i % 2 ? 'b' : 'x', t->id, i);
        snprintf(v, sizeof v, "v%d", i);
        void *got = NULL;
        size_t len = 0;
        if (client_raw_put(t->c, NULL, k, strlen(k), v, strlen(v)) != 0 ||
            client_raw_get(t->c, NULL, k, strlen(k), &got, &len) != 0 || len != strlen(v) ||
            memcmp(got, v, len) != 0)
            t->failures++;
        free(got);
    }
    return NULL;
}

/* One client shared by several threads puts and reads back its own keys in both regions. */
static void test_raw_concurrent_threads(void **state)
{
    struct fixture *f = *state;
    enum { THREADS = 6 };
    struct raw_thread t[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        t[i] = (struct raw_thread){f->c, i, 0};
        pthread_create(&th[i], NULL, raw_worker, &t[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].failures, 0);
    }
    struct client_kv *kvs;
    size_t n;
    assert_int_equal(client_raw_scan(f->c, NULL, "", 0, NULL, 0, 1000, &kvs, &n), 0);
    assert_int_equal(n, THREADS * 50);
    client_kvs_free(kvs, n);
}

/* ------------------------------------------------------- region errors */

struct proxy_fixture {
    struct fake_pd *pd;
    struct test_store *store;
    struct test_proxy *proxy;
    struct client *c;
};

/* Region 1 ["", "") with peer 11 on store 1 (the proxy) and peer 12 on store 2 (the real store). */
static int setup_proxy(void **state)
{
    struct proxy_fixture *f = calloc(1, sizeof *f);
    f->pd = fake_pd_new();
    f->store = test_store_new();
    assert_non_null(f->pd);
    assert_non_null(f->store);
    f->proxy = test_proxy_new(test_store_addr(f->store));
    assert_non_null(f->proxy);
    fake_pd_set_store(f->pd, 1, test_proxy_addr(f->proxy));
    fake_pd_set_store(f->pd, 2, test_store_addr(f->store));
    struct fake_pd_region r = {
        .id = 1,
        .start = "",
        .end = "",
        .conf_ver = 1,
        .version = 1,
        .n_peers = 2,
        .peers = {{11, 1}, {12, 2}},
        .leader = 0,
    };
    fake_pd_set_regions(f->pd, &r, 1);
    char err[256] = "";
    assert_int_equal(client_new(fake_pd_addr(f->pd), &fast_opts, &f->c, err, sizeof err), 0);
    *state = f;
    return 0;
}

static int teardown_proxy(void **state)
{
    struct proxy_fixture *f = *state;
    client_free(f->c);
    test_proxy_free(f->proxy);
    test_store_free(f->store);
    fake_pd_free(f->pd);
    free(f);
    return 0;
}

/* Every request carries the region id, epoch and leader peer from the cache. */
static void test_context_carried(void **state)
{
    struct proxy_fixture *f = *state;
    put_str(f->c, "k", "v");
    struct test_proxy_stats st;
    test_proxy_get_stats(f->proxy, &st);
    assert_int_equal(st.forwarded, 1);
    assert_int_equal(st.last_region_id, 1);
    assert_int_equal(st.last_conf_ver, 1);
    assert_int_equal(st.last_version, 1);
    assert_int_equal(st.last_peer_id, 11);
    assert_int_equal(st.last_peer_store_id, 1);
}

/* NotLeader with a hint moves the cached leader to the hinted peer without asking the scheduler. */
static void test_not_leader_hint_updates_cache(void **state)
{
    struct proxy_fixture *f = *state;
    put_str(f->c, "k", "v1"); /* warms the cache, through the proxy */
    struct fake_pd_counts before, after;
    fake_pd_get_counts(f->pd, &before);
    test_proxy_inject(f->proxy, TEST_PROXY_NOT_LEADER, -1, 12, 2);
    put_str(f->c, "k", "v2");
    check_value(f->c, "k", "v2");
    struct test_proxy_stats st;
    test_proxy_get_stats(f->proxy, &st);
    assert_int_equal(st.faults, 1); /* later calls went straight to store 2 */
    fake_pd_get_counts(f->pd, &after);
    assert_int_equal(after.get_region, before.get_region);
    struct client_region_info info;
    assert_int_equal(client_region_of_key(f->c, "k", 1, &info), 0);
    assert_int_equal(info.leader_store_id, 2);
    assert_int_equal(info.leader_peer_id, 12);
    assert_string_equal(info.leader_addr, test_store_addr(f->store));
    client_region_info_clear(&info);
    struct client_stats cs;
    client_stats_get(f->c, &cs);
    assert_int_equal(cs.region_errors, 1);
}

/* NotLeader without a hint drops the region and asks the scheduler again. */
static void test_not_leader_without_hint_refreshes(void **state)
{
    struct proxy_fixture *f = *state;
    put_str(f->c, "k", "v1");
    struct fake_pd_counts before, after;
    fake_pd_get_counts(f->pd, &before);
    test_proxy_inject(f->proxy, TEST_PROXY_NOT_LEADER, 2, 0, 0);
    put_str(f->c, "k", "v2");
    fake_pd_get_counts(f->pd, &after);
    assert_int_equal(after.get_region - before.get_region, 2);
    check_value(f->c, "k", "v2");
}

/* After a split the store answers EpochNotMatch to the stale epoch; the client refreshes and lands
 * in the new region. */
static void test_epoch_not_match_refreshes(void **state)
{
    struct proxy_fixture *f = *state;
    test_proxy_require_version(f->proxy, 1);
    put_str(f->c, "a", "1");
    put_str(f->c, "x", "1");
    /* Split at "m": version 2, both halves led by the proxy's store. */
    struct fake_pd_region split[] = {
        {.id = 1,
         .start = "",
         .end = "m",
         .conf_ver = 1,
         .version = 2,
         .n_peers = 2,
         .peers = {{11, 1}, {12, 2}},
         .leader = 0},
        {.id = 3,
         .start = "m",
         .end = "",
         .conf_ver = 1,
         .version = 2,
         .n_peers = 2,
         .peers = {{31, 1}, {32, 2}},
         .leader = 0},
    };
    fake_pd_set_regions(f->pd, split, 2);
    test_proxy_require_version(f->proxy, 2);
    put_str(f->c, "x", "2");
    struct test_proxy_stats st;
    test_proxy_get_stats(f->proxy, &st);
    assert_int_equal(st.faults, 1);
    assert_int_equal(st.last_region_id, 3);
    assert_int_equal(st.last_version, 2);
    assert_int_equal(st.last_peer_id, 31);
    check_value(f->c, "x", "2");
    check_value(f->c, "a", "1");
}

/* EpochNotMatch carrying the current regions updates the cache without asking the scheduler. */
static void test_epoch_not_match_with_current_regions(void **state)
{
    struct proxy_fixture *f = *state;
    test_proxy_require_version(f->proxy, 1);
    put_str(f->c, "x", "1");
    struct fake_pd_region split[] = {
        {.id = 1,
         .start = "",
         .end = "m",
         .conf_ver = 1,
         .version = 2,
         .n_peers = 2,
         .peers = {{11, 1}, {12, 2}},
         .leader = 0},
        {.id = 3,
         .start = "m",
         .end = "",
         .conf_ver = 1,
         .version = 2,
         .n_peers = 2,
         .peers = {{31, 1}, {32, 2}},
         .leader = 0},
    };
    /* The scheduler has not heard of the split yet; only the store knows. */
    test_proxy_set_current_regions(f->proxy, split, 2);
    test_proxy_require_version(f->proxy, 2);
    struct fake_pd_counts before, after;
    fake_pd_get_counts(f->pd, &before);
    put_str(f->c, "x", "2");
    put_str(f->c, "a", "2");
    fake_pd_get_counts(f->pd, &after);
    assert_int_equal(after.get_region, before.get_region);
    struct test_proxy_stats st;
    test_proxy_get_stats(f->proxy, &st);
    assert_int_equal(st.faults, 1);
    assert_int_equal(st.last_region_id, 1);
    assert_int_equal(st.last_version, 2);
    check_value(f->c, "x", "2");
    test_proxy_get_stats(f->proxy, &st);
    assert_int_equal(st.last_region_id, 3);
    assert_int_equal(st.last_peer_id, 31); /* led by the peer on the store that answered */
}

/* RegionNotFound and StaleCommand are retried until they stop. */
static void test_other_errors_retried(void **state)
{
    struct proxy_fixture *f = *state;
    const enum test_proxy_fault faults[] = {TEST_PROXY_REGION_NOT_FOUND, TEST_PROXY_STALE_COMMAND};
    for (int i = 0; i < 2; i++) {
        test_proxy_inject(f->proxy, faults[i], 3, 0, 0);
        char v[8];
        snprintf(v, sizeof v, "v%d", i);
        put_str(f->c, "k", v);
        check_value(f->c, "k", v);
    }
    struct test_proxy_stats st;
    test_proxy_get_stats(f->proxy, &st);
    assert_int_equal(st.faults, 6);
}

/* A raw write answered `undetermined` ends UNDETERMINED at once, without a resend (a resend could
 * apply it twice around another client's write); a read is unaffected. */
static void test_undetermined_raw_write_is_not_resent(void **state)
{
    struct proxy_fixture *f = *state;
    test_proxy_inject(f->proxy, TEST_PROXY_UNDETERMINED, 1, 0, 0);
    assert_int_equal(client_raw_put(f->c, NULL, "k", 1, "v", 1), CLIENT_ERR_UNDETERMINED);
    struct test_proxy_stats st;
    test_proxy_get_stats(f->proxy, &st);
    assert_int_equal(st.calls, 1);
    assert_int_equal(st.forwarded, 0);
    put_str(f->c, "k", "after");
    check_value(f->c, "k", "after");
}

/* A raw put whose answer is lost after the store applied it: UNDETERMINED, never resent (a resend
 * could apply it again after another client's write). */
static void test_raw_write_with_lost_answer_is_undetermined(void **state)
{
    struct proxy_fixture *f = *state;
    test_proxy_inject(f->proxy, TEST_PROXY_LOSE_RESPONSE, 1, 0, 0);
    assert_int_equal(client_raw_put(f->c, NULL, "k", 1, "v", 1), CLIENT_ERR_UNDETERMINED);
    struct test_proxy_stats st;
    test_proxy_get_stats(f->proxy, &st);
    assert_int_equal(st.calls, 1); /* not resent */
    check_value(f->c, "k", "v");   /* it did apply */
}

/* A leader that cannot be reached makes the client try the region's next peer (the scheduler may
 * lag an election). */
static void test_unreachable_leader_tries_next_peer(void **state)
{
    struct proxy_fixture *f = *state;
    put_str(f->c, "k", "v1");
    test_proxy_inject(f->proxy, TEST_PROXY_UNAVAILABLE, -1, 0, 0);
    put_str(f->c, "k", "v2");
    check_value(f->c, "k", "v2");
    struct test_proxy_stats st;
    test_proxy_get_stats(f->proxy, &st);
    assert_int_equal(st.faults, 1);
    struct client_region_info info;
    assert_int_equal(client_region_of_key(f->c, "k", 1, &info), 0);
    assert_int_equal(info.leader_store_id, 2);
    client_region_info_clear(&info);
}

/* A store that keeps answering region errors makes the call fail with TIMEOUT at its deadline. */
static void test_endless_region_errors_time_out(void **state)
{
    struct proxy_fixture *f = *state;
    struct client *c;
    struct client_options o = fast_opts;
    o.timeout_ms = 400;
    char err[256];
    assert_int_equal(client_new(fake_pd_addr(f->pd), &o, &c, err, sizeof err), 0);
    test_proxy_inject(f->proxy, TEST_PROXY_STALE_COMMAND, -1, 0, 0);
    uint64_t t0 = test_now_ms();
    assert_int_equal(client_raw_put(c, NULL, "k", 1, "v", 1), CLIENT_ERR_TIMEOUT);
    uint64_t took = test_now_ms() - t0;
    assert_true(took >= 350 && took < 3000);
    client_free(c);
}

struct put_thread {
    struct client *c;
    int rc;
};

static void *put_worker(void *arg)
{
    struct put_thread *t = arg;
    t->rc = client_raw_put(t->c, NULL, "early", 5, "bird", 4);
    return NULL;
}

/* A request made before the scheduler knows any region waits for the region to appear, then
 * succeeds. */
static void test_waits_for_region_to_appear(void **state)
{
    (void)state;
    struct fake_pd *pd = fake_pd_new();
    struct test_store *store = test_store_new();
    fake_pd_set_store(pd, 1, test_store_addr(store));
    struct client *c;
    char err[256];
    assert_int_equal(client_new(fake_pd_addr(pd), &fast_opts, &c, err, sizeof err), 0);
    struct put_thread t = {c, -1};
    pthread_t th;
    pthread_create(&th, NULL, put_worker, &t);
    /* Wait (bounded) until the client has asked at least twice, then bootstrap. */
    struct fake_pd_counts n;
    uint64_t t0 = test_now_ms();
    do {
        fake_pd_get_counts(pd, &n);
        struct timespec poll = {0, 2 * 1000 * 1000};
        nanosleep(&poll, NULL);
    } while (n.get_region < 2 && test_now_ms() - t0 < 4000);
    assert_true(n.get_region >= 2);
    fake_pd_set_regions(pd, &one_region, 1);
    pthread_join(th, NULL);
    assert_int_equal(t.rc, 0);
    check_value(c, "early", "bird");
    client_free(c);
    test_store_free(store);
    fake_pd_free(pd);
}

/* ----------------------------------------------------------- deadlines */

/* A store nobody listens on gives UNAVAILABLE (or TIMEOUT) within the deadline, never a hang. */
static void test_dead_store_fails_within_deadline(void **state)
{
    (void)state;
    struct fake_pd *pd = fake_pd_new();
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", test_free_port());
    fake_pd_set_store(pd, 1, dead);
    fake_pd_set_regions(pd, &one_region, 1);
    struct client_options o = fast_opts;
    o.timeout_ms = 600;
    o.rpc_timeout_ms = 200;
    struct client *c;
    char err[256];
    assert_int_equal(client_new(fake_pd_addr(pd), &o, &c, err, sizeof err), 0);
    uint64_t t0 = test_now_ms();
    void *v;
    size_t len;
    int rc = client_raw_get(c, NULL, "k", 1, &v, &len);
    uint64_t took = test_now_ms() - t0;
    assert_true(rc == CLIENT_ERR_UNAVAILABLE || rc == CLIENT_ERR_TIMEOUT);
    assert_true(took < 3000);
    assert_true(strlen(client_last_error(c)) > 0);
    client_free(c);
    fake_pd_free(pd);
}

/* A scheduler nobody listens on makes client_new fail with UNAVAILABLE within the deadline. */
static void test_dead_scheduler_fails_within_deadline(void **state)
{
    (void)state;
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", test_free_port());
    struct client_options o = fast_opts;
    o.timeout_ms = 500;
    o.rpc_timeout_ms = 200;
    struct client *c = NULL;
    char err[256] = "";
    uint64_t t0 = test_now_ms();
    assert_int_equal(client_new(dead, &o, &c, err, sizeof err), CLIENT_ERR_UNAVAILABLE);
    assert_null(c);
    assert_true(test_now_ms() - t0 < 3000);
    assert_true(strlen(err) > 0);
}

/* The scheduler restarts: TSO fails within the deadline while it is down, then the same client
 * reconnects its stream and timestamps keep increasing. */
static void test_tso_survives_scheduler_restart(void **state)
{
    (void)state;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", test_free_port());
    struct fake_pd *pd = fake_pd_new_at(addr);
    assert_non_null(pd);
    struct client_options o = fast_opts;
    o.timeout_ms = 2500;
    o.rpc_timeout_ms = 300;
    struct client *c;
    char err[256];
    assert_int_equal(client_new(addr, &o, &c, err, sizeof err), 0);
    client_ts before, after;
    assert_int_equal(client_tso(c, &before), 0);
    fake_pd_free(pd);
    uint64_t t0 = test_now_ms();
    int rc = client_tso(c, &after);
    assert_true(rc == CLIENT_ERR_UNAVAILABLE || rc == CLIENT_ERR_TIMEOUT);
    assert_true(test_now_ms() - t0 < 6000);
    pd = fake_pd_new_at(addr);
    assert_non_null(pd);
    rc = client_tso(c, &after);
    if (rc)
        fprintf(stderr, "tso after restart: %s (%s)\n", client_strerror(rc), client_last_error(c));
    assert_int_equal(rc, 0);
    assert_true(after > before);
    client_free(c);
    fake_pd_free(pd);
}

/* With several scheduler addresses the client skips the dead one. */
static void test_scheduler_address_list(void **state)
{
    (void)state;
    struct fake_pd *pd = fake_pd_new();
    char addrs[160];
    snprintf(addrs, sizeof addrs, "127.0.0.1:%d,%s", test_free_port(), fake_pd_addr(pd));
    struct client *c;
    char err[256];
    assert_int_equal(client_new(addrs, &fast_opts, &c, err, sizeof err), 0);
    client_ts ts;
    assert_int_equal(client_tso(c, &ts), 0);
    client_free(c);
    fake_pd_free(pd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_asks_members, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_raw_put_get_delete, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_raw_argument_checks, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_raw_routing_two_regions, setup_two, teardown),
        cmocka_unit_test_setup_teardown(test_raw_scan_across_regions, setup_two, teardown),
        cmocka_unit_test_setup_teardown(test_raw_scan_skips_empty_region, setup_two, teardown),
        cmocka_unit_test_setup_teardown(test_tso_monotonic_and_batched, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_tso_batch_cap, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_tso_sequential, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_raw_concurrent_threads, setup_two, teardown),
        cmocka_unit_test_setup_teardown(test_context_carried, setup_proxy, teardown_proxy),
        cmocka_unit_test_setup_teardown(test_not_leader_hint_updates_cache, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_not_leader_without_hint_refreshes, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_epoch_not_match_refreshes, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_epoch_not_match_with_current_regions, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_other_errors_retried, setup_proxy, teardown_proxy),
        cmocka_unit_test_setup_teardown(test_undetermined_raw_write_is_not_resent, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_unreachable_leader_tries_next_peer, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test_setup_teardown(test_raw_write_with_lost_answer_is_undetermined,
                                        setup_proxy, teardown_proxy),
        cmocka_unit_test_setup_teardown(test_endless_region_errors_time_out, setup_proxy,
                                        teardown_proxy),
        cmocka_unit_test(test_waits_for_region_to_appear),
        cmocka_unit_test(test_dead_store_fails_within_deadline),
        cmocka_unit_test(test_dead_scheduler_fails_within_deadline),
        cmocka_unit_test(test_scheduler_address_list),
        cmocka_unit_test(test_tso_survives_scheduler_restart),
    };
    return cmocka_run_group_tests_name("client_raw", tests, NULL, NULL);
}
