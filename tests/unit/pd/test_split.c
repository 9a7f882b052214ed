/* test_split.c — split requests: key checks, split operators, the heartbeat reports of a split. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pd/pd.h"
#include "tests/lib/pd_mock.h"

static const uint64_t S123[] = {1, 2, 3};

/* Regions [ , c) id 10, [c, m) id 11, [m, ) id 12, all at version 2, conf_ver 1, leader store 1;
 * no schedulers running. */
static int setup(void **state)
{
    struct pd_mock *m = malloc(sizeof *m);
    pd_mock_open(m);
    pd_mock_add_store(m, 2);
    pd_mock_add_store(m, 3);
    assert_int_equal(pd_mock_region_hb(m, 10, "", "c", 2, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 11, "c", "m", 2, 1, 1, 1, S123, 3), PD_OK);
    assert_int_equal(pd_mock_region_hb(m, 12, "m", "", 2, 1, 1, 1, S123, 3), PD_OK);
    /* Only split operators here: the balancers would move leaders about. */
    assert_int_equal(pd_cluster_remove_scheduler(m->c, PD_SCHEDULER_BALANCE_LEADER), PD_OK);
    assert_int_equal(pd_cluster_remove_scheduler(m->c, PD_SCHEDULER_BALANCE_REGION), PD_OK);
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    pd_mock_close(*state);
    free(*state);
    return 0;
}

static struct pd_key key_of(const char *s)
{
    return (struct pd_key){(uint8_t *)s, strlen(s)};
}

/* split asks for a split at the C-string keys; returns the result, ids and count through out. */
static int split(struct pd_mock *m, const char *const *keys, size_t n, uint64_t *ids, size_t *nids)
{
    struct pd_key k[16] = {{NULL, 0}};
    for (size_t i = 0; i < n; i++)
        k[i] = key_of(keys[i]);
    return pd_cluster_split_regions(m->c, k, n, ids, nids);
}

/* heartbeat reports a region built by pd_mock_region and returns the reply (caller clears it). */
static void heartbeat(struct pd_mock *m, uint64_t id, const char *start, const char *end,
                      uint64_t version, uint64_t conf_ver, struct pd_heartbeat_reply *out, int want)
{
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, id, start, end, version, conf_ver, 1, 1, S123, conf_ver > 1 ? 2 : 3);
    assert_int_equal(pd_cluster_region_heartbeat_reply(m->c, &r, out), want);
    pd_region_clear(&r);
}

static enum pd_operator_status status_of(struct pd_mock *m, uint64_t region_id)
{
    struct pd_operator op;
    enum pd_operator_status st;
    assert_int_equal(pd_cluster_get_operator_status(m->c, region_id, &op, &st), PD_OK);
    return st;
}

static void assert_keys(const struct pd_heartbeat_reply *r, const char *const *want, size_t n)
{
    assert_true(r->has_step);
    assert_int_equal(r->step.kind, PD_STEP_SPLIT);
    assert_int_equal(r->step.split_key_count, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r->split_keys[i].len, strlen(want[i]));
        assert_memory_equal(r->split_keys[i].data, want[i], strlen(want[i]));
    }
}

/* Keys given out of order, with duplicates, across two regions: one split-region operator per
 * region holding its keys sorted and deduplicated, the regions named in key order. */
static void test_split_groups_keys_by_region(void **state)
{
    struct pd_mock *m = *state;
    const char *keys[] = {"q", "e", "d", "e", "x"};
    uint64_t ids[PD_MAX_SPLIT_KEYS];
    size_t n = 0;
    assert_int_equal(split(m, keys, 5, ids, &n), PD_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 11);
    assert_int_equal(ids[1], 12);
    struct pd_operator op;
    assert_int_equal(pd_cluster_get_operator(m->c, 11, &op), PD_OK);
    assert_string_equal(op.name, "split-region");
    assert_int_equal(op.kind, PD_OP_KIND_SPLIT);
    assert_string_equal(pd_operator_kind_name(op.kind), "split-region");
    assert_int_equal(op.step_count, 1);
    assert_int_equal(op.steps[0].kind, PD_STEP_SPLIT);
    assert_int_equal(op.steps[0].split_key_count, 2);
    assert_int_equal(pd_cluster_get_operator(m->c, 10, &op), PD_ERR_NOT_FOUND);
    struct pd_key *got;
    size_t count;
    assert_int_equal(pd_cluster_get_split_keys(m->c, 12, &got, &count), PD_OK);
    assert_int_equal(count, 2);
    assert_memory_equal(got[0].data, "q", 1);
    assert_memory_equal(got[1].data, "x", 1);
    pd_keys_free(got, count);
    assert_int_equal(pd_cluster_get_split_keys(m->c, 10, &got, &count), PD_ERR_NOT_FOUND);

    struct pd_heartbeat_reply r;
    heartbeat(m, 11, "c", "m", 2, 1, &r, PD_OK);
    const char *want[] = {"d", "e"};
    assert_keys(&r, want, 2);
    assert_int_equal(r.step.store_id, 1); /* aimed at the leader */
    pd_heartbeat_reply_clear(&r);
    /* Every heartbeat until the split shows asks again. */
    heartbeat(m, 11, "c", "m", 2, 1, &r, PD_OK);
    assert_keys(&r, want, 2);
    pd_heartbeat_reply_clear(&r);
    /* The old call sees the split step, without keys. */
    struct pd_region reg;
    pd_region_init(&reg);
    pd_mock_region(&reg, 12, "m", "", 2, 1, 1, 1, S123, 3);
    struct pd_step step;
    bool has = false;
    assert_int_equal(pd_cluster_region_heartbeat(m->c, &reg, &step, &has), PD_OK);
    assert_true(has);
    assert_int_equal(step.kind, PD_STEP_SPLIT);
    assert_int_equal(step.split_key_count, 2);
    pd_region_clear(&reg);
}

/* Every bad request fails as a whole and creates no operator: no keys, too many keys, an empty
 * or too long key, a key that is its region's start key, a key of a region with an operator. */
static void test_split_bad_requests_change_nothing(void **state)
{
    struct pd_mock *m = *state;
    uint64_t ids[PD_MAX_SPLIT_KEYS];
    size_t n = 99;
    assert_int_equal(split(m, NULL, 0, ids, &n), PD_ERR_INVALID);
    assert_int_equal(n, 0);
    const char *with_empty[] = {"d", ""};
    assert_int_equal(split(m, with_empty, 2, ids, &n), PD_ERR_INVALID);
    const char *start[] = {"q", "c"};
    assert_int_equal(split(m, start, 2, ids, &n), PD_ERR_INVALID);
    char msg[256];
    pd_cluster_errmsg(m->c, msg, sizeof msg);
    assert_non_null(strstr(msg, "start key of region 11"));
    struct pd_key many[PD_MAX_SPLIT_KEYS + 1];
    for (size_t i = 0; i <= PD_MAX_SPLIT_KEYS; i++)
        many[i] = key_of("d");
    assert_int_equal(pd_cluster_split_regions(m->c, many, PD_MAX_SPLIT_KEYS + 1, ids, &n),
                     PD_ERR_INVALID);
    uint8_t *big = calloc(PD_MAX_KEY_BYTES + 1, 1);
    big[0] = 'd';
    struct pd_key too_long[] = {{big, PD_MAX_KEY_BYTES + 1}};
    assert_int_equal(pd_cluster_split_regions(m->c, too_long, 1, ids, &n), PD_ERR_INVALID);
    free(big);
    struct pd_operator ops_before;
    assert_int_equal(pd_cluster_add_transfer_leader(m->c, 10, 2), PD_OK);
    const char *busy[] = {"d", "b"};
    assert_int_equal(split(m, busy, 2, ids, &n), PD_ERR_EXISTS);
    assert_int_equal(pd_cluster_get_operator(m->c, 11, &ops_before), PD_ERR_NOT_FOUND);
    assert_int_equal(pd_cluster_get_operator(m->c, 10, &ops_before), PD_OK);
    assert_string_equal(ops_before.name, "admin-transfer-leader");
    /* A second split of a region already being split is refused too. */
    const char *one[] = {"x"};
    assert_int_equal(split(m, one, 1, ids, &n), PD_OK);
    assert_int_equal(split(m, one, 1, ids, &n), PD_ERR_EXISTS);
    struct pd_operator *ops;
    size_t count;
    assert_int_equal(pd_cluster_get_operators(m->c, &ops, &count), PD_OK);
    assert_int_equal(count, 2);
    free(ops);
}

/* A key no region holds (in a hole between regions) is not found, and nothing changes. */
static void test_split_key_in_hole(void **state)
{
    struct pd_mock *m = *state;
    /* Region 12 shrinks to [m, p): [p, ) is a hole. */
    assert_int_equal(pd_mock_region_hb(m, 12, "m", "p", 3, 1, 1, 1, S123, 3), PD_OK);
    const char *keys[] = {"d", "z"};
    uint64_t ids[PD_MAX_SPLIT_KEYS];
    size_t n;
    assert_int_equal(split(m, keys, 2, ids, &n), PD_ERR_NOT_FOUND);
    struct pd_operator op;
    assert_int_equal(pd_cluster_get_operator(m->c, 11, &op), PD_ERR_NOT_FOUND);
}

/* Left half first: the region's own heartbeat with a higher version and a smaller range ends the
 * operator as a success; the new right region then fills the rest; the parent's late heartbeat
 * is stale and changes nothing. */
static void test_split_left_half_first(void **state)
{
    struct pd_mock *m = *state;
    const char *keys[] = {"g"};
    uint64_t ids[PD_MAX_SPLIT_KEYS];
    size_t n;
    assert_int_equal(split(m, keys, 1, ids, &n), PD_OK);
    struct pd_heartbeat_reply r;
    heartbeat(m, 11, "c", "g", 3, 1, &r, PD_OK);
    assert_false(r.has_step);
    assert_null(r.split_keys);
    assert_int_equal(status_of(m, 11), PD_OP_SUCCESS);
    heartbeat(m, 40, "g", "m", 3, 1, &r, PD_OK);
    assert_false(r.has_step);
    heartbeat(m, 11, "c", "m", 2, 1, &r, PD_ERR_STALE);
    assert_false(r.has_step);
    struct pd_region got;
    pd_region_init(&got);
    assert_int_equal(pd_cluster_get_region(m->c, "h", 1, &got), PD_OK);
    assert_int_equal(got.id, 40);
    assert_int_equal(pd_cluster_get_region(m->c, "f", 1, &got), PD_OK);
    assert_int_equal(got.id, 11);
    assert_int_equal(got.end_key_len, 1);
    assert_memory_equal(got.end_key, "g", 1);
    pd_region_clear(&got);
    assert_int_equal(pd_cluster_region_count(m->c), 4);
}

/* Right half first: the new region replaces the parent (a hole where the left half will be) and
 * the parent's split operator counts as done; the parent's late heartbeat is stale; the left half
 * then fills the hole. */
static void test_split_right_half_first(void **state)
{
    struct pd_mock *m = *state;
    const char *keys[] = {"g"};
    uint64_t ids[PD_MAX_SPLIT_KEYS];
    size_t n;
    assert_int_equal(split(m, keys, 1, ids, &n), PD_OK);
    struct pd_heartbeat_reply r;
    heartbeat(m, 40, "g", "m", 3, 1, &r, PD_OK);
    assert_false(r.has_step);
    assert_int_equal(status_of(m, 11), PD_OP_SUCCESS);
    struct pd_region got;
    pd_region_init(&got);
    assert_int_equal(pd_cluster_get_region(m->c, "d", 1, &got), PD_ERR_NOT_FOUND);
    heartbeat(m, 11, "c", "m", 2, 1, &r, PD_ERR_STALE);
    assert_int_equal(pd_cluster_get_region(m->c, "d", 1, &got), PD_ERR_NOT_FOUND);
    heartbeat(m, 11, "c", "g", 3, 1, &r, PD_OK);
    assert_false(r.has_step);
    assert_int_equal(pd_cluster_get_region(m->c, "d", 1, &got), PD_OK);
    assert_int_equal(got.id, 11);
    assert_int_equal(got.epoch.version, 3);
    assert_int_equal(pd_cluster_get_region(m->c, "g", 1, &got), PD_OK);
    assert_int_equal(got.id, 40);
    pd_region_clear(&got);
    assert_int_equal(pd_cluster_region_count(m->c), 4);
}

/* A split operator whose region changed membership before splitting is stale and dropped. */
static void test_split_stale_after_conf_change(void **state)
{
    struct pd_mock *m = *state;
    const char *keys[] = {"g"};
    uint64_t ids[PD_MAX_SPLIT_KEYS];
    size_t n;
    assert_int_equal(split(m, keys, 1, ids, &n), PD_OK);
    struct pd_heartbeat_reply r;
    heartbeat(m, 11, "c", "m", 2, 2, &r, PD_OK);
    assert_false(r.has_step);
    assert_int_equal(status_of(m, 11), PD_OP_CANCEL);
    struct pd_key *got;
    size_t count;
    assert_int_equal(pd_cluster_get_split_keys(m->c, 11, &got, &count), PD_ERR_NOT_FOUND);
    /* The region can be split again. */
    assert_int_equal(split(m, keys, 1, ids, &n), PD_OK);
}

/* A split operator that no heartbeat confirms times out after leader-operator-timeout. */
static void test_split_times_out(void **state)
{
    struct pd_mock *m = *state;
    const char *keys[] = {"g"};
    uint64_t ids[PD_MAX_SPLIT_KEYS];
    size_t n;
    assert_int_equal(split(m, keys, 1, ids, &n), PD_OK);
    struct pd_config cfg;
    assert_int_equal(pd_cluster_get_config(m->c, &cfg), PD_OK);
    m->now_ms += cfg.leader_operator_timeout_ms - 1;
    assert_int_equal(pd_cluster_tick(m->c, NULL), PD_OK);
    assert_int_equal(status_of(m, 11), PD_OP_RUNNING);
    m->now_ms += 2;
    pd_mock_heartbeat_store(m, 1);
    assert_int_equal(pd_cluster_tick(m->c, NULL), PD_OK);
    assert_int_equal(status_of(m, 11), PD_OP_TIMEOUT);
}

/* Before bootstrap a split request is refused. */
static void test_split_not_bootstrapped(void **state)
{
    (void)state;
    struct pd_cluster *c;
    struct pd_options o = {0};
    assert_int_equal(pd_cluster_open(&o, &c, NULL, 0), PD_OK);
    struct pd_key k = key_of("a");
    uint64_t ids[PD_MAX_SPLIT_KEYS];
    size_t n;
    assert_int_equal(pd_cluster_split_regions(c, &k, 1, ids, &n), PD_ERR_NOT_BOOTSTRAPPED);
    pd_cluster_close(c);
}

/* Closing the cluster with split operators still running frees their keys (LeakSanitizer). */
static void test_split_close_with_running_operators(void **state)
{
    struct pd_mock *m = *state;
    const char *keys[] = {"a", "b", "d", "n", "o"};
    uint64_t ids[PD_MAX_SPLIT_KEYS];
    size_t n;
    assert_int_equal(split(m, keys, 5, ids, &n), PD_OK);
    assert_int_equal(n, 3);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_split_groups_keys_by_region),
        T(test_split_bad_requests_change_nothing),
        T(test_split_key_in_hole),
        T(test_split_left_half_first),
        T(test_split_right_half_first),
        T(test_split_stale_after_conf_change),
        T(test_split_times_out),
        cmocka_unit_test(test_split_not_bootstrapped),
        T(test_split_close_with_running_operators),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
