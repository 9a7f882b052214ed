/* test_cluster.c — region tree, heartbeat staleness, splits, pending peers, store states. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pd/pd.h"
#include "tests/lib/pd_mock.h"

static const uint64_t S1[] = {1};
static const uint64_t S123[] = {1, 2, 3};

static int setup(void **state)
{
    struct pd_mock *m = malloc(sizeof *m);
    pd_mock_open(m);
    pd_mock_add_store(m, 2);
    pd_mock_add_store(m, 3);
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    pd_mock_close(*state);
    free(*state);
    return 0;
}

static uint64_t region_at(struct pd_mock *m, const char *key)
{
    struct pd_region r;
    pd_region_init(&r);
    int err = pd_cluster_get_region(m->c, key, strlen(key), &r);
    uint64_t id = err == PD_OK ? r.id : 0;
    pd_region_clear(&r);
    return id;
}

static uint64_t version_of(struct pd_mock *m, uint64_t id)
{
    struct pd_region r;
    pd_region_init(&r);
    assert_int_equal(pd_cluster_get_region_by_id(m->c, id, &r), PD_OK);
    uint64_t v = r.epoch.version;
    pd_region_clear(&r);
    return v;
}

/* Regions a|b|c|d with a hole between c and d: look-ups by key, id, previous region and scans
 * follow start-key order. */
static void test_region_tree_lookups(void **state)
{
    struct pd_mock *m = *state;
    assert_int_equal(pd_mock_region_hb(m, 10, "", "b", 2, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 11, "b", "d", 2, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 12, "d", "f", 2, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 13, "h", "", 2, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_cluster_region_count(m->c), 4); /* bootstrap region 1 replaced */
    assert_int_equal(region_at(m, ""), 10);
    assert_int_equal(region_at(m, "a"), 10);
    assert_int_equal(region_at(m, "b"), 11);
    assert_int_equal(region_at(m, "cz"), 11);
    assert_int_equal(region_at(m, "e"), 12);
    assert_int_equal(region_at(m, "g"), 0); /* the hole [f, h) */
    assert_int_equal(region_at(m, "zzz"), 13);

    struct pd_region r;
    pd_region_init(&r);
    assert_int_equal(pd_cluster_get_prev_region(m->c, "c", 1, &r), PD_OK);
    assert_int_equal(r.id, 10);
    assert_int_equal(pd_cluster_get_prev_region(m->c, "a", 1, &r), PD_ERR_NOT_FOUND);
    assert_int_equal(pd_cluster_get_prev_region(m->c, "g", 1, &r), PD_OK); /* in the hole */
    assert_int_equal(r.id, 12);
    assert_int_equal(pd_cluster_get_prev_region(m->c, "zzz", 3, &r), PD_OK);
    assert_int_equal(r.id, 12);
    assert_int_equal(pd_cluster_get_region_by_id(m->c, 12, &r), PD_OK);
    assert_int_equal(r.start_key_len, 1);
    assert_memory_equal(r.start_key, "d", 1);
    assert_int_equal(r.peer_count, 3);
    assert_int_equal(r.leader.store_id, 1);
    assert_int_equal(pd_cluster_get_region_by_id(m->c, 99, &r), PD_ERR_NOT_FOUND);
    pd_region_clear(&r);

    struct pd_region *rs;
    size_t n;
    assert_int_equal(pd_cluster_scan_regions(m->c, "c", 1, "", 0, 2, &rs, &n), PD_OK);
    assert_int_equal(n, 2);
    assert_int_equal(rs[0].id, 11);
    assert_int_equal(rs[1].id, 12);
    pd_regions_free(rs, n);
    assert_int_equal(pd_cluster_scan_regions(m->c, "", 0, "e", 1, 0, &rs, &n), PD_OK);
    assert_int_equal(n, 3);
    pd_regions_free(rs, n);
    assert_int_equal(pd_cluster_scan_regions(m->c, "g", 1, "", 0, 0, &rs, &n), PD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(rs[0].id, 13);
    pd_regions_free(rs, n);
}

/* A heartbeat with a lower version or a lower conf_ver than PD holds for the same region is
 * rejected as stale and changes nothing; an equal or newer one is applied. */
static void test_stale_same_region(void **state)
{
    struct pd_mock *m = *state;
    assert_int_equal(pd_mock_region_hb(m, 10, "", "", 5, 5, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 10, "", "", 4, 9, 1, 2, S123, 3), PD_ERR_STALE);
    assert_int_equal(pd_mock_region_hb(m, 10, "", "", 9, 4, 1, 2, S123, 3), PD_ERR_STALE);
    struct pd_region r;
    pd_region_init(&r);
    assert_int_equal(pd_cluster_get_region_by_id(m->c, 10, &r), PD_OK);
    assert_int_equal(r.epoch.version, 5);
    assert_int_equal(r.epoch.conf_ver, 5);
    assert_int_equal(r.leader.store_id, 1);
    /* Same epoch with a new leader: applied. */
    assert_int_equal(pd_mock_region_hb(m, 10, "", "", 5, 5, 1, 2, S123, 3), PD_OK);
    assert_int_equal(pd_cluster_get_region_by_id(m->c, 10, &r), PD_OK);
    assert_int_equal(r.leader.store_id, 2);
    /* Membership change: conf_ver up, peer on store 3 gone. */
    assert_int_equal(pd_mock_region_hb(m, 10, "", "", 5, 6, 1, 2, S123, 2), PD_OK);
    assert_int_equal(pd_cluster_get_region_by_id(m->c, 10, &r), PD_OK);
    assert_int_equal(r.peer_count, 2);
    pd_region_clear(&r);
}

/* A split's right half reported before its left half replaces the parent (leaving a hole that
 * the left half fills later), and the parent's late heartbeat is then stale. */
static void test_split_out_of_order(void **state)
{
    struct pd_mock *m = *state;
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "z", 2, 1, 1, 1, S123, 3), PD_OK);
    /* right half first */
    assert_int_equal(pd_mock_region_hb(m, 20, "m", "z", 3, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(region_at(m, "n"), 20);
    assert_int_equal(region_at(m, "b"), 0);
    /* the old parent again: overlaps a newer region */
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "z", 2, 1, 1, 1, S123, 3), PD_ERR_STALE);
    assert_int_equal(region_at(m, "b"), 0);
    /* left half */
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "m", 3, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(region_at(m, "b"), 10);
    assert_int_equal(region_at(m, "m"), 20);
    assert_int_equal(pd_cluster_region_count(m->c), 2);
}

/* A split's left half reported first updates the parent in place; the right half then fills
 * the rest, and the parent's late report is stale. */
static void test_split_in_order(void **state)
{
    struct pd_mock *m = *state;
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "z", 2, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "m", 3, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(region_at(m, "n"), 0);
    assert_int_equal(pd_mock_region_hb(m, 20, "m", "z", 3, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(region_at(m, "n"), 20);
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "z", 2, 1, 1, 1, S123, 3), PD_ERR_STALE);
    assert_int_equal(version_of(m, 10), 3);
    /* A newer region covering both (e.g. a merge) replaces them. */
    assert_int_equal(pd_mock_region_hb(m, 30, "a", "z", 5, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_cluster_region_count(m->c), 1);
    assert_int_equal(region_at(m, "n"), 30);
}

/* A newer region that overlaps one with a higher conf_ver is stale too (version, then conf_ver). */
static void test_stale_overlap_conf_ver(void **state)
{
    struct pd_mock *m = *state;
    assert_int_equal(pd_mock_region_hb(m, 10, "a", "z", 3, 7, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 20, "m", "z", 3, 2, 1, 1, S123, 3), PD_ERR_STALE);
    assert_int_equal(region_at(m, "n"), 10);
}

/* Pending peers reported by the leader show in the region and in the store's figures, and clear
 * when a later heartbeat no longer reports them. */
static void test_pending_peers(void **state)
{
    struct pd_mock *m = *state;
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, 10, "", "", 2, 1, 7, 1, S123, 3);
    r.pending_peers[0] = r.peers[2];
    r.pending_peer_count = 1;
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, NULL, NULL), PD_OK);
    struct pd_store_info si;
    assert_int_equal(pd_cluster_get_store(m->c, 3, &si), PD_OK);
    assert_int_equal(si.pending_peer_count, 1);
    assert_int_equal(si.region_count, 1);
    assert_int_equal(si.leader_count, 0);
    assert_int_equal(si.region_size_bytes, 7 * PD_MOCK_MIB);
    assert_int_equal(pd_cluster_get_store(m->c, 1, &si), PD_OK);
    assert_int_equal(si.leader_count, 1);
    assert_int_equal(si.pending_peer_count, 0);
    r.pending_peer_count = 0;
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, NULL, NULL), PD_OK);
    assert_int_equal(pd_cluster_get_store(m->c, 3, &si), PD_OK);
    assert_int_equal(si.pending_peer_count, 0);
    pd_region_clear(&r);
}

/* Malformed heartbeats (leader not a peer, duplicate stores, no peers, start >= end, overlong
 * keys) are rejected as invalid. */
static void test_invalid_heartbeats(void **state)
{
    struct pd_mock *m = *state;
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, 10, "", "", 2, 1, 1, 1, S123, 3);
    r.leader.id = 999;
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, NULL, NULL), PD_ERR_INVALID);
    pd_mock_region(&r, 10, "", "", 2, 1, 1, 1, S123, 3);
    r.peers[1].store_id = 1;
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, NULL, NULL), PD_ERR_INVALID);
    pd_mock_region(&r, 10, "", "", 2, 1, 1, 1, S123, 0);
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, NULL, NULL), PD_ERR_INVALID);
    pd_mock_region(&r, 10, "x", "b", 2, 1, 1, 1, S123, 3);
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, NULL, NULL), PD_ERR_INVALID);
    /* A boundary key over PD_MAX_KEY_BYTES (built by hand: set_keys refuses it too). */
    pd_mock_region(&r, 10, "", "", 2, 1, 1, 1, S123, 3);
    uint8_t *huge = calloc(1, PD_MAX_KEY_BYTES + 1);
    assert_int_equal(pd_region_set_keys(&r, huge, PD_MAX_KEY_BYTES + 1, "", 0), PD_ERR_INVALID);
    r.end_key = huge;
    r.end_key_len = PD_MAX_KEY_BYTES + 1;
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, NULL, NULL), PD_ERR_INVALID);
    pd_region_clear(&r);
    assert_int_equal(region_at(m, "a"), 1); /* the bootstrap region is still there */
}

/* Store liveness: disconnected after 20 s without a heartbeat, down after max-store-down-time;
 * a heartbeat brings it back. */
static void test_store_liveness(void **state)
{
    struct pd_mock *m = *state;
    struct pd_store_info si;
    assert_int_equal(pd_cluster_get_store(m->c, 2, &si), PD_OK);
    assert_false(si.disconnected);
    assert_false(si.down);
    assert_int_equal(si.last_heartbeat_ms, m->now_ms);
    m->now_ms += PD_STORE_DISCONNECT_MS + 1;
    assert_int_equal(pd_cluster_get_store(m->c, 2, &si), PD_OK);
    assert_true(si.disconnected);
    assert_false(si.down);
    m->now_ms += 30 * 60 * 1000;
    assert_int_equal(pd_cluster_get_store(m->c, 2, &si), PD_OK);
    assert_true(si.down);
    /* A shorter configured down time applies at once. */
    pd_mock_heartbeat_store(m, 2);
    struct pd_config cfg;
    pd_cluster_get_config(m->c, &cfg);
    cfg.max_store_down_time_ms = 60 * 1000;
    assert_int_equal(pd_cluster_put_config(m->c, &cfg), PD_OK);
    m->now_ms += 61 * 1000;
    assert_int_equal(pd_cluster_get_store(m->c, 2, &si), PD_OK);
    assert_true(si.down);
    pd_mock_heartbeat_store(m, 2);
    assert_int_equal(pd_cluster_get_store(m->c, 2, &si), PD_OK);
    assert_false(si.down);
    assert_false(si.disconnected);
}

/* Store registration rules: duplicate or unprintable addresses are refused, tombstones refuse
 * heartbeats and re-registration, and only an empty store becomes a tombstone without force. */
static void test_store_states(void **state)
{
    struct pd_mock *m = *state;
    struct pd_store s = {.id = 9, .state = PD_STORE_UP};
    strcpy(s.address, "127.0.0.1:20002"); /* store 2's address */
    assert_int_equal(pd_cluster_put_store(m->c, &s), PD_ERR_EXISTS);
    strcpy(s.address, "bad address");
    assert_int_equal(pd_cluster_put_store(m->c, &s), PD_ERR_INVALID);
    strcpy(s.address, "h\xff:1");
    assert_int_equal(pd_cluster_put_store(m->c, &s), PD_ERR_INVALID);
    s.address[0] = '\0';
    assert_int_equal(pd_cluster_put_store(m->c, &s), PD_ERR_INVALID);
    assert_int_equal(pd_mock_region_hb(m, 10, "", "", 2, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_cluster_set_store_state(m->c, 3, PD_STORE_TOMBSTONE, false), PD_ERR_STATE);
    assert_int_equal(pd_cluster_set_store_state(m->c, 3, PD_STORE_OFFLINE, false), PD_OK);
    /* Re-registering keeps Offline. */
    strcpy(s.address, "127.0.0.1:20003");
    s.id = 3;
    assert_int_equal(pd_cluster_put_store(m->c, &s), PD_OK);
    struct pd_store_info si;
    assert_int_equal(pd_cluster_get_store(m->c, 3, &si), PD_OK);
    assert_int_equal(si.store.state, PD_STORE_OFFLINE);
    assert_int_equal(pd_cluster_set_store_state(m->c, 3, PD_STORE_UP, false), PD_OK);
    assert_int_equal(pd_cluster_set_store_state(m->c, 3, PD_STORE_TOMBSTONE, true), PD_OK);
    struct pd_store_stats st = {.store_id = 3};
    assert_int_equal(pd_cluster_store_heartbeat(m->c, &st), PD_ERR_TOMBSTONE);
    assert_int_equal(pd_cluster_put_store(m->c, &s), PD_ERR_TOMBSTONE);
    assert_int_equal(pd_cluster_set_store_state(m->c, 3, PD_STORE_UP, false), PD_ERR_TOMBSTONE);
    /* A tombstone's address may be reused by a new store. */
    s.id = 4;
    assert_int_equal(pd_cluster_put_store(m->c, &s), PD_OK);
    st.store_id = 77;
    assert_int_equal(pd_cluster_store_heartbeat(m->c, &st), PD_ERR_NOT_FOUND);
}

/* Bootstrapping twice fails; ask_split hands out one fresh id per peer plus the region's. */
static void test_bootstrap_and_ask_split(void **state)
{
    struct pd_mock *m = *state;
    assert_true(pd_cluster_is_bootstrapped(m->c));
    struct pd_store s = {.id = 1, .state = PD_STORE_UP};
    strcpy(s.address, "127.0.0.1:20001");
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, 1, "", "", 1, 1, 1, 1, S1, 1);
    assert_int_equal(pd_cluster_bootstrap(m->c, &s, &r), PD_ERR_ALREADY_BOOTSTRAPPED);
    pd_region_clear(&r);
    assert_int_equal(pd_mock_region_hb(m, 10, "", "", 2, 1, 1, 1, S123, 3), PD_OK);
    uint64_t rid, peers[PD_MAX_PEERS], before;
    size_t n;
    assert_int_equal(pd_cluster_alloc_id(m->c, &before), PD_OK);
    assert_int_equal(pd_cluster_ask_split(m->c, 10, &rid, peers, &n), PD_OK);
    assert_int_equal(n, 3);
    assert_true(rid > before);
    assert_true(peers[0] > rid && peers[1] > peers[0] && peers[2] > peers[1]);
    assert_int_equal(pd_cluster_ask_split(m->c, 99, &rid, peers, &n), PD_ERR_NOT_FOUND);
}

/* An unbootstrapped cluster refuses region heartbeats and stores but allocates IDs. */
static void test_not_bootstrapped(void **state)
{
    (void)state;
    struct pd_options opts = {0};
    struct pd_cluster *c;
    assert_int_equal(pd_cluster_open(&opts, &c, NULL, 0), PD_OK);
    assert_false(pd_cluster_is_bootstrapped(c));
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, 10, "", "", 2, 1, 1, 1, S1, 1);
    assert_int_equal(pd_cluster_region_heartbeat(c, &r, NULL, NULL), PD_ERR_NOT_BOOTSTRAPPED);
    pd_region_clear(&r);
    struct pd_store s = {.id = 2, .state = PD_STORE_UP};
    strcpy(s.address, "127.0.0.1:1");
    assert_int_equal(pd_cluster_put_store(c, &s), PD_ERR_NOT_BOOTSTRAPPED);
    uint64_t id;
    assert_int_equal(pd_cluster_alloc_id(c, &id), PD_OK); /* needed to bootstrap */
    pd_cluster_close(c);
}

/* Bootstrapping with the store alone (TinyKV's BootstrapRequest) leaves the region tree empty
 * until the first region heartbeat. */
static void test_bootstrap_store_only(void **state)
{
    (void)state;
    struct pd_options opts = {0};
    struct pd_cluster *c;
    assert_int_equal(pd_cluster_open(&opts, &c, NULL, 0), PD_OK);
    struct pd_store s = {.id = 1, .state = PD_STORE_UP};
    strcpy(s.address, "127.0.0.1:20160");
    assert_int_equal(pd_cluster_bootstrap(c, &s, NULL), PD_OK);
    assert_true(pd_cluster_is_bootstrapped(c));
    assert_int_equal(pd_cluster_region_count(c), 0);
    struct pd_store_info si;
    assert_int_equal(pd_cluster_get_store(c, 1, &si), PD_OK);
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, 2, "", "", 1, 1, 1, 1, S1, 1);
    assert_int_equal(pd_cluster_region_heartbeat(c, &r, NULL, NULL), PD_OK);
    assert_int_equal(pd_cluster_region_count(c), 1);
    pd_region_clear(&r);
    pd_cluster_close(c);
}

/* GC safe point only moves forward. */
static void test_gc_safe_point(void **state)
{
    struct pd_mock *m = *state;
    uint64_t sp;
    assert_int_equal(pd_cluster_update_gc_safe_point(m->c, 100, &sp), PD_OK);
    assert_int_equal(sp, 100);
    assert_int_equal(pd_cluster_update_gc_safe_point(m->c, 50, &sp), PD_OK);
    assert_int_equal(sp, 100);
    assert_int_equal(pd_cluster_get_gc_safe_point(m->c, &sp), PD_OK);
    assert_int_equal(sp, 100);
}

/* Many random splits applied in a random order (each heartbeat sent twice, once late) always
 * leave the tree equal to the final layout. Seed: PD_TEST_SEED. */
static void test_random_split_order(void **state)
{
    struct pd_mock *m = *state;
    unsigned seed = getenv("PD_TEST_SEED") ? (unsigned)atoi(getenv("PD_TEST_SEED")) : 12345u;
    print_message("seed %u (PD_TEST_SEED)\n", seed);
    srand(seed);
    /* Final layout: 26 regions [a..b), [b..c), ...; region i has version 2 + i. */
    enum { N = 26 };
    char keys[N + 1][2];
    for (int i = 0; i <= N; i++) {
        keys[i][0] = (char)('a' + i);
        keys[i][1] = '\0';
    }
    int order[N];
    for (int i = 0; i < N; i++)
        order[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int k = 0; k < N; k++) {
        int i = order[k];
        int err = pd_mock_region_hb(m, 100 + (uint64_t)i, keys[i], i == N - 1 ? "" : keys[i + 1],
                                    100, 1, 1, 1, S123, 3);
        assert_int_equal(err, PD_OK);
        /* A stale wide region (older version) arriving late is refused. */
        err = pd_mock_region_hb(m, 100 + (uint64_t)i, keys[0], "", 50, 1, 1, 1, S123, 3);
        assert_int_equal(err, PD_ERR_STALE);
    }
    assert_int_equal(pd_cluster_region_count(m->c), N);
    for (int i = 0; i < N; i++)
        assert_int_equal(region_at(m, keys[i]), 100 + i);
}

/* A layout region: one-byte boundaries, 0 = unbounded start, 256 = unbounded end. */
struct span {
    uint64_t id;
    int start, end;
    uint64_t version;
};

static void span_hb(struct pd_mock *m, const struct span *sp)
{
    char start[2] = {(char)sp->start, 0}, end[2] = {(char)(sp->end & 0xff), 0};
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, sp->id, "", "", sp->version, 1, 1, 1, S123, 3);
    assert_int_equal(pd_region_set_keys(&r, start, sp->start ? 1 : 0, end, sp->end < 256 ? 1 : 0),
                     PD_OK);
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &r, NULL, NULL), PD_OK);
    pd_region_clear(&r);
}

static void span_check(struct pd_mock *m, const struct span *sp, size_t n)
{
    assert_int_equal(pd_cluster_region_count(m->c), n);
    for (size_t i = 0; i < n; i++) {
        uint8_t first = (uint8_t)sp[i].start, last = (uint8_t)(sp[i].end - 1);
        struct pd_region r;
        pd_region_init(&r);
        assert_int_equal(pd_cluster_get_region(m->c, &first, sp[i].start ? 1 : 0, &r), PD_OK);
        assert_int_equal(r.id, sp[i].id);
        assert_int_equal(pd_cluster_get_region(m->c, &last, 1, &r), PD_OK);
        assert_int_equal(r.id, sp[i].id);
        assert_int_equal(pd_cluster_get_region_by_id(m->c, sp[i].id, &r), PD_OK);
        assert_int_equal(r.epoch.version, sp[i].version);
        pd_region_clear(&r);
    }
}

/* Rounds of splits (every region in two) and merges (neighbours in pairs), each reported by
 * heartbeats in order, always leave a tree that finds every region by id, first and last key. */
static void test_split_and_merge_rounds(void **state)
{
    struct pd_mock *m = *state;
    static struct span sp[128], next[128];
    size_t n = 1;
    uint64_t next_id = 100;
    sp[0] = (struct span){next_id++, 0, 256, 2};
    span_hb(m, &sp[0]);
    span_check(m, sp, n);
    /* split x7, merge x7, then split twice and merge once, four times over */
    const char *plan = "SSSSSSSMMMMMMMSSMSSMSSMSSM";
    for (const char *op = plan; *op; op++) {
        size_t k = 0;
        if (*op == 'S') {
            for (size_t i = 0; i < n; i++) {
                int mid = (sp[i].start + sp[i].end) / 2;
                next[k++] = (struct span){sp[i].id, sp[i].start, mid, sp[i].version + 1};
                next[k++] = (struct span){next_id++, mid, sp[i].end, sp[i].version + 1};
            }
        } else {
            for (size_t i = 0; i + 1 < n; i += 2) {
                uint64_t v = sp[i].version > sp[i + 1].version ? sp[i].version : sp[i + 1].version;
                next[k++] = (struct span){sp[i].id, sp[i].start, sp[i + 1].end, v + 1};
            }
            if (n % 2)
                next[k++] = sp[n - 1];
        }
        memcpy(sp, next, k * sizeof *sp);
        n = k;
        for (size_t i = 0; i < n; i++)
            span_hb(m, &sp[i]);
        span_check(m, sp, n);
    }
}

struct hb_worker {
    struct pd_mock *m;
    int base;
    int failures;
};

static void *hb_worker_run(void *arg)
{
    struct hb_worker *w = arg;
    for (int i = w->base; i < w->base + 250; i++) {
        char start[16], end[16];
        snprintf(start, sizeof start, "k%05d", i);
        snprintf(end, sizeof end, "k%05d", i + 1);
        struct pd_region r;
        pd_region_init(&r);
        pd_mock_region(&r, 1000 + (uint64_t)i, start, end, 2, 1, 1, 1, S123, 3);
        if (pd_cluster_region_heartbeat(w->m->c, &r, NULL, NULL) != PD_OK)
            w->failures++;
        pd_region_clear(&r);
    }
    return NULL;
}

/* Four threads reporting 1000 disjoint regions at once all get through, and every region can be
 * found afterwards. */
static void test_concurrent_heartbeats(void **state)
{
    struct pd_mock *m = *state;
    struct hb_worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct hb_worker){m, i * 250, 0};
        pthread_create(&th[i], NULL, hb_worker_run, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    assert_int_equal(pd_cluster_region_count(m->c), 1000);
    for (int i = 0; i < 1000; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%05d", i);
        assert_int_equal(region_at(m, key), 1000 + i);
    }
    struct pd_store_info si;
    assert_int_equal(pd_cluster_get_store(m->c, 2, &si), PD_OK);
    assert_int_equal(si.region_count, 1000);
    assert_int_equal(si.leader_count, 0);
    assert_int_equal(si.region_size_bytes, 1000 * PD_MOCK_MIB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_region_tree_lookups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_same_region, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_overlap_conf_ver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_peers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_heartbeats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_liveness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bootstrap_and_ask_split, setup, teardown),
        cmocka_unit_test(test_not_bootstrapped),
        cmocka_unit_test(test_bootstrap_store_only),
        cmocka_unit_test_setup_teardown(test_gc_safe_point, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_split_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_and_merge_rounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_heartbeats, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
