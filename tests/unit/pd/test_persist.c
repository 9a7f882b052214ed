/* test_persist.c — RocksDB persistence, TSO and ID allocation across close and reopen. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "pd/pd.h"
#include "pd/pd_internal.h"
#include "proto/log.h"
#include "tests/lib/pd_mock.h"

struct fixture {
    char dir[64];
    uint64_t now_ms;
    struct pd_cluster *c;
};

static uint64_t fake_clock(void *ctx)
{
    return ((struct fixture *)ctx)->now_ms;
}

static void reopen(struct fixture *f)
{
    if (f->c)
        pd_cluster_close(f->c);
    struct pd_options o = {0};
    o.data_dir = f->dir;
    o.now_ms = fake_clock;
    o.clock_ctx = f;
    o.id_batch = 10; /* small batches so reopen crosses batch boundaries */
    char err[256];
    int rc = pd_cluster_open(&o, &f->c, err, sizeof err);
    if (rc != PD_OK)
        fail_msg("open: %s", err);
}

static int setup(void **state)
{
    log_current_level = LOG_ERROR;
    struct fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/pd_persist_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->now_ms = 1700000000000ull;
    reopen(f);
    *state = f;
    return 0;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    pd_cluster_close(f->c);
    nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void put_store(struct pd_cluster *c, uint64_t id)
{
    struct pd_store s = {.id = id, .state = PD_STORE_UP};
    snprintf(s.address, sizeof s.address, "10.0.0.%llu:20160", (unsigned long long)id);
    assert_int_equal(pd_cluster_put_store(c, &s), PD_OK);
}

static void hb(struct pd_cluster *c, uint64_t id, const char *start, const char *end,
               uint64_t version)
{
    static const uint64_t stores[] = {1, 2, 3};
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, id, start, end, version, 1, 1, 1, stores, 3);
    assert_int_equal(pd_cluster_region_heartbeat(c, &r, NULL, NULL), PD_OK);
    pd_region_clear(&r);
}

/* Everything the cluster promised — id, bootstrap, stores and their states, regions after
 * splits, config, schedulers, GC safe point — is there after close and reopen. */
static void test_state_survives_reopen(void **state)
{
    struct fixture *f = *state;
    uint64_t cluster_id = pd_cluster_id(f->c);
    assert_false(pd_cluster_is_bootstrapped(f->c));
    struct pd_store s = {.id = 1, .state = PD_STORE_UP};
    strcpy(s.address, "10.0.0.1:20160");
    struct pd_region r;
    pd_region_init(&r);
    r.id = 2;
    r.epoch.version = 1;
    r.epoch.conf_ver = 1;
    pd_region_add_peer(&r, 3, 1);
    assert_int_equal(pd_cluster_bootstrap(f->c, &s, &r), PD_OK);
    pd_region_clear(&r);
    put_store(f->c, 2);
    put_store(f->c, 3);
    assert_int_equal(pd_cluster_set_store_state(f->c, 3, PD_STORE_OFFLINE, false), PD_OK);
    hb(f->c, 2, "", "m", 2);   /* left half of a split */
    hb(f->c, 20, "m", "", 2);  /* right half */
    hb(f->c, 20, "m", "t", 3); /* split again, out of order */
    hb(f->c, 21, "t", "", 3);
    struct pd_config cfg;
    pd_cluster_get_config(f->c, &cfg);
    cfg.max_replicas = 5;
    cfg.max_store_down_time_ms = 3600 * 1000;
    assert_int_equal(pd_cluster_put_config(f->c, &cfg), PD_OK);
    assert_int_equal(pd_cluster_remove_scheduler(f->c, PD_SCHEDULER_BALANCE_LEADER), PD_OK);
    uint64_t sp;
    assert_int_equal(pd_cluster_update_gc_safe_point(f->c, 4242, &sp), PD_OK);

    reopen(f);
    assert_int_equal(pd_cluster_id(f->c), cluster_id);
    assert_true(pd_cluster_is_bootstrapped(f->c));
    struct pd_store_info *infos;
    size_t n;
    assert_int_equal(pd_cluster_get_all_stores(f->c, &infos, &n), PD_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        char addr[64];
        snprintf(addr, sizeof addr, "10.0.0.%llu:20160", (unsigned long long)infos[i].store.id);
        assert_string_equal(infos[i].store.address, addr);
        assert_int_equal(infos[i].store.state,
                         infos[i].store.id == 3 ? PD_STORE_OFFLINE : PD_STORE_UP);
    }
    free(infos);
    assert_int_equal(pd_cluster_region_count(f->c), 3);
    pd_region_init(&r);
    assert_int_equal(pd_cluster_get_region(f->c, "p", 1, &r), PD_OK);
    assert_int_equal(r.id, 20);
    assert_int_equal(r.epoch.version, 3);
    assert_int_equal(r.end_key_len, 1);
    assert_memory_equal(r.end_key, "t", 1);
    assert_int_equal(r.peer_count, 3);
    assert_int_equal(r.peers[2].store_id, 3);
    assert_int_equal(pd_cluster_get_region(f->c, "a", 1, &r), PD_OK);
    assert_int_equal(r.id, 2);
    assert_int_equal(pd_cluster_get_region(f->c, "z", 1, &r), PD_OK);
    assert_int_equal(r.id, 21);
    pd_region_clear(&r);
    pd_cluster_get_config(f->c, &cfg);
    assert_int_equal(cfg.max_replicas, 5);
    assert_int_equal(cfg.max_store_down_time_ms, 3600 * 1000);
    char **names;
    assert_int_equal(pd_cluster_list_schedulers(f->c, &names, &n), PD_OK);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], PD_SCHEDULER_BALANCE_REGION);
    pd_names_free(names, n);
    assert_int_equal(pd_cluster_get_gc_safe_point(f->c, &sp), PD_OK);
    assert_int_equal(sp, 4242);
    /* A stale heartbeat is still stale after the restart. */
    static const uint64_t stores[] = {1, 2, 3};
    pd_region_init(&r);
    pd_mock_region(&r, 20, "m", "", 2, 1, 1, 1, stores, 3);
    assert_int_equal(pd_cluster_region_heartbeat(f->c, &r, NULL, NULL), PD_ERR_STALE);
    pd_region_clear(&r);
}

/* IDs never repeat across reopens, also when each run hands out a few IDs of a batch. */
static void test_ids_unique_across_reopen(void **state)
{
    struct fixture *f = *state;
    uint64_t last = 0;
    for (int run = 0; run < 5; run++) {
        for (int i = 0; i < 7 + run * 5; i++) {
            uint64_t id;
            assert_int_equal(pd_cluster_alloc_id(f->c, &id), PD_OK);
            assert_true(id > last);
            last = id;
        }
        reopen(f);
    }
}

/* Timestamps after a reopen exceed every earlier one, even when the clock went back an hour and
 * the saved window lies ahead of it. */
static void test_tso_after_reopen_with_clock_back(void **state)
{
    struct fixture *f = *state;
    uint64_t ts = 0, prev = 0;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(pd_cluster_tso(f->c, 3, &ts), PD_OK);
        assert_true(ts > prev);
        prev = ts;
        f->now_ms += 50; /* 5 s in all: crosses the 3 s window */
    }
    reopen(f);
    assert_int_equal(pd_cluster_tso(f->c, 1, &ts), PD_OK);
    assert_true(ts > prev);
    prev = ts;
    f->now_ms -= 3600 * 1000;
    reopen(f);
    assert_int_equal(pd_cluster_tso(f->c, 1, &ts), PD_OK);
    assert_true(ts > prev);
    /* And while running with the clock behind, it keeps increasing. */
    for (int i = 0; i < 1000; i++) {
        prev = ts;
        assert_int_equal(pd_cluster_tso(f->c, 100, &ts), PD_OK);
        assert_true(ts > prev);
    }
}

/* Batches use logical ids (last returned, first = last - count + 1); a full logical space moves
 * to the next millisecond; bad counts are refused. */
static void test_tso_batches_and_overflow(void **state)
{
    struct fixture *f = *state;
    uint64_t a, b;
    assert_int_equal(pd_cluster_tso(f->c, 10, &a), PD_OK);
    assert_int_equal(pd_cluster_tso(f->c, 10, &b), PD_OK);
    assert_int_equal(b - a, 10); /* same millisecond: consecutive ranges */
    assert_true((a >> PD_TSO_LOGICAL_BITS) >= f->now_ms);
    assert_int_equal(pd_cluster_tso(f->c, PD_TSO_MAX_COUNT, &b), PD_OK);
    assert_true((b >> PD_TSO_LOGICAL_BITS) > (a >> PD_TSO_LOGICAL_BITS));
    assert_int_equal(b & PD_TSO_MAX_COUNT, PD_TSO_MAX_COUNT);
    assert_int_equal(pd_cluster_tso(f->c, 0, &b), PD_ERR_INVALID);
    assert_int_equal(pd_cluster_tso(f->c, PD_TSO_MAX_COUNT + 1, &b), PD_ERR_INVALID);
}

/* The tick pushes the persisted TSO window ahead before it runs out: a restart at the same clock
 * then resumes at the extended window's end. */
static void test_tick_extends_tso_window(void **state)
{
    struct fixture *f = *state;
    uint64_t t0 = f->now_ms, ts;
    assert_int_equal(pd_cluster_tso(f->c, 1, &ts), PD_OK);
    f->now_ms = t0 + 1000;
    assert_int_equal(pd_cluster_tick(f->c, NULL), PD_OK); /* 2 s of 3 left: no write */
    reopen(f);
    assert_int_equal(pd_cluster_tso(f->c, 1, &ts), PD_OK);
    assert_int_equal(ts >> PD_TSO_LOGICAL_BITS, t0 + 3000); /* window saved at open: t0 + 3 s */
    /* That reopen saved [t0+3000, t0+6000); at t0+5000 less than half is left. */
    f->now_ms = t0 + 5000;
    assert_int_equal(pd_cluster_tick(f->c, NULL), PD_OK);
    reopen(f);
    assert_int_equal(pd_cluster_tso(f->c, 1, &ts), PD_OK);
    assert_int_equal(ts >> PD_TSO_LOGICAL_BITS, t0 + 8000);
}

struct tso_worker {
    struct pd_cluster *c;
    uint64_t ts[5000];
    int bad;
};

static void *tso_worker_run(void *arg)
{
    struct tso_worker *w = arg;
    for (int i = 0; i < 5000; i++) {
        if (pd_cluster_tso(w->c, 1, &w->ts[i]) != PD_OK || (i > 0 && w->ts[i] <= w->ts[i - 1]))
            w->bad = 1;
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Four threads asking for timestamps at once each see increasing values and no value twice. */
static void test_tso_concurrent_unique(void **state)
{
    struct fixture *f = *state;
    struct pd_options o = {0};
    o.data_dir = NULL; /* real clock, in memory: the point is the locking */
    pd_cluster_close(f->c);
    assert_int_equal(pd_cluster_open(&o, &f->c, NULL, 0), PD_OK);
    static struct tso_worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i].c = f->c;
        w[i].bad = 0;
        pthread_create(&th[i], NULL, tso_worker_run, &w[i]);
    }
    uint64_t *all = malloc(sizeof(uint64_t) * 4 * 5000);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].bad, 0);
        memcpy(all + i * 5000, w[i].ts, sizeof w[i].ts);
    }
    qsort(all, 4 * 5000, sizeof *all, cmp_u64);
    for (int i = 1; i < 4 * 5000; i++)
        assert_true(all[i] > all[i - 1]);
    free(all);
}

/* Encoded stores and regions decode to the same values; truncated or unknown-version records
 * are reported corrupt. */
static void test_codec_round_trip(void **state)
{
    (void)state;
    struct pd_store s = {.id = 77, .state = PD_STORE_OFFLINE}, s2;
    strcpy(s.address, "host:1");
    char *buf;
    size_t len;
    assert_int_equal(pd_codec_encode_store(&s, &buf, &len), PD_OK);
    assert_int_equal(pd_codec_decode_store(buf, len, &s2), PD_OK);
    assert_int_equal(s2.id, 77);
    assert_int_equal(s2.state, PD_STORE_OFFLINE);
    assert_string_equal(s2.address, "host:1");
    assert_int_equal(pd_codec_decode_store(buf, len - 1, &s2), PD_ERR_CORRUPT);
    buf[0] = 9;
    assert_int_equal(pd_codec_decode_store(buf, len, &s2), PD_ERR_CORRUPT);
    free(buf);

    static const uint64_t stores[] = {4, 5};
    struct pd_region r, r2;
    pd_region_init(&r);
    pd_region_init(&r2);
    pd_mock_region(&r, 9, "a\0b", "zz", 7, 8, 1, 4, stores, 2);
    assert_int_equal(pd_region_set_keys(&r, "a\0b", 3, "zz", 2), PD_OK);
    assert_int_equal(pd_codec_encode_region(&r, &buf, &len), PD_OK);
    assert_int_equal(pd_codec_decode_region(buf, len, &r2), PD_OK);
    assert_int_equal(r2.id, 9);
    assert_int_equal(r2.start_key_len, 3);
    assert_memory_equal(r2.start_key, "a\0b", 3);
    assert_int_equal(r2.epoch.version, 7);
    assert_int_equal(r2.epoch.conf_ver, 8);
    assert_int_equal(r2.peer_count, 2);
    assert_int_equal(r2.peers[1].id, pd_mock_peer_id(9, 5));
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(pd_codec_decode_region(buf, cut, &r2), PD_ERR_CORRUPT);
    free(buf);
    pd_region_clear(&r);
    pd_region_clear(&r2);
}

/* A corrupt record makes open fail cleanly with PD_ERR_CORRUPT instead of loading garbage. */
static void test_corrupt_record_fails_open(void **state)
{
    struct fixture *f = *state;
    pd_cluster_close(f->c);
    f->c = NULL;
    struct pd_meta_store *m;
    assert_int_equal(pd_meta_store_open(f->dir, &m, NULL, 0), PD_OK);
    char key[PD_META_KEY_BYTES];
    pd_meta_key_region(key, 5);
    assert_int_equal(pd_meta_store_put(m, key, "\x01garbage", 8, true, NULL, 0), PD_OK);
    pd_meta_store_close(m);
    struct pd_options o = {0};
    o.data_dir = f->dir;
    char err[256];
    assert_int_equal(pd_cluster_open(&o, &f->c, err, sizeof err), PD_ERR_CORRUPT);
    assert_null(f->c);
    assert_non_null(strstr(err, "region"));
    /* setup's teardown closes f->c: give it a fresh in-memory one. */
    o.data_dir = NULL;
    assert_int_equal(pd_cluster_open(&o, &f->c, NULL, 0), PD_OK);
}

/* Config JSON: PD's field names and Go durations are accepted; unknown fields and bad values are
 * refused without changing anything. */
static void test_config_json(void **state)
{
    (void)state;
    struct pd_config cfg;
    pd_config_default(&cfg);
    char err[128];
    const char *ok = "{\"max-replicas\": 5, \"max-store-down-time\": \"1h30m\","
                     " \"leader-operator-timeout\": \"500ms\", \"region-schedule-limit\": 8}";
    assert_int_equal(pd_config_apply_json(&cfg, ok, strlen(ok), err, sizeof err), PD_OK);
    assert_int_equal(cfg.max_replicas, 5);
    assert_int_equal(cfg.max_store_down_time_ms, 90 * 60 * 1000);
    assert_int_equal(cfg.leader_operator_timeout_ms, 500);
    assert_int_equal(cfg.region_schedule_limit, 8);
    const char *alias = "{\"max_peer_count\": 1, \"max-store-down-time\": 60}";
    assert_int_equal(pd_config_apply_json(&cfg, alias, strlen(alias), err, sizeof err), PD_OK);
    assert_int_equal(cfg.max_replicas, 1);
    assert_int_equal(cfg.max_store_down_time_ms, 60 * 1000);
    const char *bad[] = {"{\"max-replicas\": 0}",
                         "{\"max-replicas\": 17}",
                         "{\"max-replicas\": \"three\"}",
                         "{\"bogus\": 1}",
                         "{\"max-store-down-time\": \"5x\"}",
                         "[1,2]",
                         "{",
                         "{\"max-store-down-time\": -4}",
                         "{\"max-store-down-time\": \"19s\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pd_config before = cfg;
        assert_int_equal(pd_config_apply_json(&cfg, bad[i], strlen(bad[i]), err, sizeof err),
                         PD_ERR_INVALID);
        assert_memory_equal(&before, &cfg, sizeof cfg);
    }
    const char *short_down = "{\"max-store-down-time\": \"3s\"}";
    assert_int_equal(pd_config_apply_json(&cfg, short_down, strlen(short_down), err, sizeof err),
                     PD_ERR_INVALID);
    assert_non_null(strstr(err, "at least 20s"));
    char *text = pd_config_to_json(&cfg);
    assert_non_null(strstr(text, "\"max-store-down-time\": \"1m0s\""));
    struct pd_config back;
    pd_config_default(&back);
    assert_int_equal(pd_config_apply_json(&back, text, strlen(text), err, sizeof err), PD_OK);
    assert_memory_equal(&back, &cfg, sizeof cfg);
    free(text);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_state_survives_reopen),
        T(test_ids_unique_across_reopen),
        T(test_tso_after_reopen_with_clock_back),
        T(test_tso_batches_and_overflow),
        T(test_tick_extends_tso_window),
        T(test_tso_concurrent_unique),
        T(test_codec_round_trip),
        T(test_corrupt_record_fails_open),
        T(test_config_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
