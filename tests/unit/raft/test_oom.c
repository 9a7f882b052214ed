/* test_oom.c — allocation failures inside raft calls fail cleanly, leak nothing, and the group
 * recovers. */
#include "raft/raft.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#if defined(__SANITIZE_ADDRESS__)
#define OOM_INJECTION 0 /* ASan owns malloc; the leak checks run there instead */
#else
#define OOM_INJECTION 1
#endif

#if OOM_INJECTION
/* A fault-injecting allocator interposed over libc's for this test program.
 * Test-only process state: armed around raft calls, counting live blocks. */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t sz);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static struct {
    bool armed;
    bool tracking;
    long countdown; /* fail the allocation when it reaches 0 */
    long live;
    long injected;
} fa = {.countdown = -1};

static bool should_fail(void)
{
    if (!fa.armed || fa.countdown < 0)
        return false;
    if (fa.countdown-- == 0) {
        fa.injected++;
        return true;
    }
    return false;
}

void *malloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = __libc_malloc(n);
    if (p && fa.tracking)
        fa.live++;
    return p;
}

void *calloc(size_t n, size_t sz)
{
    if (should_fail())
        return NULL;
    void *p = __libc_calloc(n, sz);
    if (p && fa.tracking)
        fa.live++;
    return p;
}

void *realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    void *q = __libc_realloc(p, n);
    if (q && p == NULL && fa.tracking)
        fa.live++;
    return q;
}

void free(void *p)
{
    if (p && fa.tracking)
        fa.live--;
    __libc_free(p);
}
#endif

#define N 3

struct cluster {
    struct raft_memory_storage *ms[N + 1];
    struct raft_rawnode *rn[N + 1];
    struct raft_message *q;
    size_t n_q;
    uint64_t applied[N + 1];
    bool saw_final[N + 1];
};

static void arm(bool on)
{
#if OOM_INJECTION
    fa.armed = on;
#else
    (void)on;
#endif
}

static void q_push(struct cluster *c, const struct raft_message *m)
{
    arm(false);
    struct raft_message *p = realloc(c->q, (c->n_q + 1) * sizeof *p);
    assert_non_null(p);
    c->q = p;
    assert_int_equal(raft_message_copy(&c->q[c->n_q], m), RAFT_OK);
    c->n_q++;
}

/* One Ready per node: persist, queue messages, apply, advance. */
static bool process(struct cluster *c)
{
    bool any = false;
    for (uint64_t id = 1; id <= N; id++) {
        arm(true);
        if (!raft_rawnode_has_ready(c->rn[id]))
            continue;
        struct raft_ready rd;
        int rc = raft_rawnode_ready(c->rn[id], &rd);
        arm(false);
        if (rc != RAFT_OK) {
            assert_int_equal(rc, RAFT_ERR_NOMEM);
            any = true;
            continue;
        }
        any = true;
        if (rd.n_entries)
            assert_int_equal(raft_memory_storage_append(c->ms[id], rd.entries, rd.n_entries),
                             RAFT_OK);
        if (rd.has_hard_state)
            raft_memory_storage_set_hard_state(c->ms[id], &rd.hard_state);
        for (size_t i = 0; i < rd.n_messages; i++)
            q_push(c, &rd.messages[i]);
        for (size_t i = 0; i < rd.n_committed_entries; i++) {
            const struct raft_entry *e = &rd.committed_entries[i];
            assert_int_equal(e->index, c->applied[id] + 1);
            c->applied[id] = e->index;
            if (e->data_len == 5 && memcmp(e->data, "final", 5) == 0)
                c->saw_final[id] = true;
        }
        raft_rawnode_advance(c->rn[id], &rd);
    }
    arm(false);
    return any;
}

static void deliver_all(struct cluster *c)
{
    for (int guard = 0; guard < 10000; guard++) {
        bool any = process(c);
        if (c->n_q == 0 && !any)
            return;
        if (c->n_q == 0)
            continue;
        struct raft_message m = c->q[0];
        memmove(c->q, c->q + 1, (c->n_q - 1) * sizeof *c->q);
        c->n_q--;
        arm(true);
        int rc = raft_rawnode_step(c->rn[m.to], &m);
        arm(false);
        assert_true(rc == RAFT_OK || rc == RAFT_ERR_NOMEM || rc == RAFT_ERR_PROPOSAL_DROPPED);
        raft_message_free(&m);
    }
}

static void tick_all(struct cluster *c, int n)
{
    for (int k = 0; k < n; k++) {
        for (uint64_t id = 1; id <= N; id++) {
            arm(true);
            raft_rawnode_tick(c->rn[id]);
            arm(false);
        }
        deliver_all(c);
    }
}

static uint64_t leader(struct cluster *c)
{
    for (uint64_t id = 1; id <= N; id++) {
        struct raft_status st;
        assert_int_equal(raft_rawnode_status(c->rn[id], &st), RAFT_OK);
        raft_status_free(&st);
        if (st.role == RAFT_ROLE_LEADER)
            return id;
    }
    return 0;
}

/* Returns whether an allocation failure was injected during the run. */
static bool run_scenario(long fail_at)
{
    struct cluster c;
    memset(&c, 0, sizeof c);
#if OOM_INJECTION
    fa.tracking = true;
    fa.live = 0;
    fa.injected = 0;
    fa.countdown = fail_at;
#else
    (void)fail_at;
#endif
    const uint64_t peers[N] = {1, 2, 3};
    struct raft_conf_state cs = {.nodes = (uint64_t *)peers, .n_nodes = N};
    for (uint64_t id = 1; id <= N; id++) {
        assert_int_equal(raft_memory_storage_new(&c.ms[id]), RAFT_OK);
        raft_memory_storage_set_conf_state(c.ms[id], &cs);
        struct raft_config cfg = {.id = id,
                                  .election_ticks = 10,
                                  .heartbeat_ticks = 1,
                                  .storage = raft_memory_storage_storage(c.ms[id]),
                                  .max_size_per_msg = UINT64_MAX,
                                  .max_inflight_msgs = 4,
                                  .check_quorum = 1,
                                  .pre_vote = 1,
                                  .seed = id};
        assert_int_equal(raft_rawnode_new(&cfg, &c.rn[id], NULL, 0), RAFT_OK);
    }
    /* the faulty phase: election, proposals, a read, heartbeats */
    arm(true);
    raft_rawnode_campaign(c.rn[1]);
    arm(false);
    deliver_all(&c);
    for (int i = 0; i < 3; i++) {
        arm(true);
        raft_rawnode_propose(c.rn[1], "data", 4);
        raft_rawnode_read_index(c.rn[1], "ctx", 3);
        arm(false);
        deliver_all(&c);
    }
    tick_all(&c, 3);
#if OOM_INJECTION
    bool injected = fa.injected > 0;
    fa.countdown = -1;
#else
    bool injected = false;
#endif
    /* healthy again: the group must elect a leader and commit */
    uint64_t lead = 0;
    for (int t = 0; t < 300 && !(c.saw_final[1] && c.saw_final[2] && c.saw_final[3]); t++) {
        tick_all(&c, 1);
        if ((lead = leader(&c)) != 0 && t % 5 == 0) {
            raft_rawnode_propose(c.rn[lead], "final", 5);
            deliver_all(&c);
        }
    }
    for (uint64_t id = 1; id <= N; id++)
        if (!c.saw_final[id])
            fail_msg("fail_at %ld: node %llu never applied the final entry", fail_at,
                     (unsigned long long)id);
    for (size_t i = 0; i < c.n_q; i++)
        raft_message_free(&c.q[i]);
    free(c.q);
    for (uint64_t id = 1; id <= N; id++) {
        raft_rawnode_free(c.rn[id]);
        raft_memory_storage_free(c.ms[id]);
    }
#if OOM_INJECTION
    fa.tracking = false;
    if (fa.live != 0)
        fail_msg("fail_at %ld: %ld blocks leaked", fail_at, fa.live);
#endif
    return injected;
}

/* Every single allocation failure during election, replication and ReadIndex is survived without
 * leaks, and the group recovers. */
static void test_each_allocation_failure_survived(void **state)
{
    (void)state;
    if (!OOM_INJECTION) {
        print_message("allocation failure injection disabled under AddressSanitizer\n");
        run_scenario(-1);
        return;
    }
    long k = 0;
    while (run_scenario(k))
        k++;
    print_message("injected failures at %ld distinct allocations\n", k);
    assert_true(k > 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_allocation_failure_survived),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
