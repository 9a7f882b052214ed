/* test_one_pc.c — one-phase commit: checks, records, retries, fallback and waiting readers. */
#include <pthread.h>
#include <unistd.h>

#include "tests/unit/mvcc/mvcc_fixture.h"

/*
 * A timestamp source the test drives: it hands out next_ts (then next_ts + 1, ...), or fails
 * when fail is set; with hold set, a caller waits inside it until the test clears hold.
 */
struct ts_src {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t next_ts;
    int fail;
    int hold;
    int inside; /* callers waiting in the source now */
    int calls;
};

static int ts_next(void *arg, uint64_t *ts)
{
    struct ts_src *s = arg;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->inside++;
    pthread_cond_broadcast(&s->cv);
    while (s->hold)
        pthread_cond_wait(&s->cv, &s->mu);
    s->inside--;
    int rc = s->fail;
    *ts = s->next_ts++;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

struct ofx {
    struct fx f; /* first: the fixture helpers take it */
    struct ts_src src;
};

static int setup(void **state)
{
    struct ofx *o = calloc(1, sizeof(*o));
    assert_non_null(o);
    assert_int_equal(mem_storage_new(&o->f.s), 0);
    assert_int_equal(mvcc_engine_new(o->f.s, 0, &o->f.e), 0);
    pthread_mutex_init(&o->src.mu, NULL);
    pthread_cond_init(&o->src.cv, NULL);
    o->src.next_ts = 200;
    mvcc_engine_set_ts_source(o->f.e, ts_next, &o->src);
    *state = o;
    return 0;
}

static int teardown(void **state)
{
    struct ofx *o = *state;
    mvcc_engine_free(o->f.e);
    storage_free(o->f.s);
    pthread_cond_destroy(&o->src.cv);
    pthread_mutex_destroy(&o->src.mu);
    free(o);
    return 0;
}

static int prewrite_1pc(struct fx *f, const struct mvcc_mutation *m, size_t n, uint64_t start_ts,
                        struct mvcc_prewrite_result *out)
{
    struct mvcc_prewrite_req req = {
        .mutations = m,
        .n_mutations = n,
        .primary = m[0].key,
        .primary_len = m[0].key_len,
        .start_ts = start_ts,
        .lock_ttl_ms = 3000,
        .try_one_pc = 1,
    };
    return mvcc_prewrite(f->e, NULL, &req, out);
}

/* One key: a put record at the source's ts holding the (short) value, no lock, nothing in CF
 * default; reads agree. */
static void test_one_key_commits_without_lock(void **state)
{
    struct ofx *o = *state;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("a", "v1")};
    assert_int_equal(prewrite_1pc(&o->f, m, 1, 100, &r), 0);
    assert_int_equal(r.n_errors, 0);
    assert_int_equal(r.one_pc_commit_ts, 200);
    mvcc_prewrite_result_free(&r);
    fx_assert_lens(&o->f, 0, 0, 1);
    struct mvcc_write w;
    assert_true(fx_get_write(&o->f, "a", 1, 200, &w));
    assert_int_equal(w.kind, MVCC_WRITE_PUT);
    assert_int_equal(w.start_ts, 100);
    assert_true(w.has_short);
    assert_int_equal(w.short_len, 2);
    assert_true(fx_get_ok(&o->f, "a", 1, 200, "v1", 2));
    assert_false(fx_get_ok(&o->f, "a", 1, 199, NULL, 0));
}

/* Puts and a delete in one request all get records at one commit ts. */
static void test_many_keys_share_one_commit_ts(void **state)
{
    struct ofx *o = *state;
    fx_committed(&o->f, "c", 1, 10, 20, "old", 3);
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("a", "1"), PUT("b", "2"), DEL("c")};
    assert_int_equal(prewrite_1pc(&o->f, m, 3, 100, &r), 0);
    assert_int_equal(r.one_pc_commit_ts, 200);
    mvcc_prewrite_result_free(&r);
    assert_true(fx_get_ok(&o->f, "a", 1, 300, "1", 1));
    assert_true(fx_get_ok(&o->f, "b", 1, 300, "2", 1));
    assert_false(fx_get_ok(&o->f, "c", 1, 300, NULL, 0));
    assert_true(fx_get_ok(&o->f, "c", 1, 199, "old", 3));
    assert_int_equal(mem_storage_count(o->f.s, STORAGE_CF_LOCK), 0);
}

/* A value of up to 255 bytes lives in its commit record, a longer one in CF default; a get and a
 * scan read both kinds, beside a two-phase commit's value. */
static void test_short_and_long_values_read_back(void **state)
{
    struct ofx *o = *state;
    static char big[301];
    memset(big, 'x', 300);
    static char edge[256];
    memset(edge, 'e', 255);
    fx_committed(&o->f, "c", 1, 10, 20, "two-phase", 9);
    struct mvcc_mutation m[] = {{MVCC_OP_PUT, "a", 1, edge, 255}, {MVCC_OP_PUT, "b", 1, big, 300}};
    struct mvcc_prewrite_result r;
    assert_int_equal(prewrite_1pc(&o->f, m, 2, 100, &r), 0);
    assert_int_equal(r.one_pc_commit_ts, 200);
    mvcc_prewrite_result_free(&r);
    fx_assert_lens(&o->f, 2, 0, 3); /* "b" and "c" in CF default */
    struct mvcc_write w;
    assert_true(fx_get_write(&o->f, "a", 1, 200, &w));
    assert_true(w.has_short);
    assert_true(fx_get_write(&o->f, "b", 1, 200, &w));
    assert_false(w.has_short);
    assert_true(fx_get_ok(&o->f, "a", 1, 300, edge, 255));
    assert_true(fx_get_ok(&o->f, "b", 1, 300, big, 300));

    struct mvcc_scan_result sr;
    struct mvcc_scan_req req = {.start_key = "a", .start_key_len = 1, .limit = 10, .version = 300};
    assert_int_equal(mvcc_scan(o->f.e, NULL, &req, &sr), 0);
    assert_int_equal(sr.n_pairs, 3);
    assert_int_equal(sr.pairs[0].value_len, 255);
    assert_memory_equal(sr.pairs[0].value, edge, 255);
    assert_int_equal(sr.pairs[1].value_len, 300);
    assert_memory_equal(sr.pairs[1].value, big, 300);
    assert_int_equal(sr.pairs[2].value_len, 9);
    assert_memory_equal(sr.pairs[2].value, "two-phase", 9);
    mvcc_scan_result_free(&sr);
}

/* A newer commit or another transaction's lock fails the prewrite; nothing is written and no
 * timestamp is taken. */
static void test_conflict_and_lock_write_nothing(void **state)
{
    struct ofx *o = *state;
    fx_committed(&o->f, "a", 1, 90, 110, "x", 1);
    fx_put_lock(&o->f, "b", 1, "b", 1, 95, 3000, MVCC_WRITE_PUT);
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("a", "1")};
    assert_int_equal(prewrite_1pc(&o->f, m, 1, 100, &r), 0);
    assert_int_equal(r.n_errors, 1);
    assert_int_equal(r.errors[0].kind, MVCC_KEY_ERR_CONFLICT);
    assert_int_equal(r.one_pc_commit_ts, 0);
    mvcc_prewrite_result_free(&r);
    struct mvcc_mutation m2[] = {PUT("b", "1")};
    assert_int_equal(prewrite_1pc(&o->f, m2, 1, 100, &r), 0);
    assert_int_equal(r.n_errors, 1);
    assert_int_equal(r.errors[0].kind, MVCC_KEY_ERR_LOCKED);
    mvcc_prewrite_result_free(&r);
    fx_assert_lens(&o->f, 1, 1, 1);
    assert_int_equal(o->src.calls, 0);
}

/* A retried one-phase prewrite (its answer was lost) answers the first commit ts and writes
 * nothing more, even after another transaction wrote the key since; a two-phase retry of the
 * same transaction succeeds without locking. */
static void test_retry_after_commit_answers_first_ts(void **state)
{
    struct ofx *o = *state;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("a", "v1")};
    assert_int_equal(prewrite_1pc(&o->f, m, 1, 100, &r), 0);
    assert_int_equal(r.one_pc_commit_ts, 200);
    mvcc_prewrite_result_free(&r);
    fx_committed(&o->f, "a", 1, 250, 260, "v2", 2);

    assert_int_equal(prewrite_1pc(&o->f, m, 1, 100, &r), 0);
    assert_int_equal(r.n_errors, 0);
    assert_int_equal(r.one_pc_commit_ts, 200);
    mvcc_prewrite_result_free(&r);
    assert_int_equal(fx_prewrite(&o->f, m, 1, "a", 1, 100, 3000, &r), 0);
    assert_int_equal(r.n_errors, 0);
    assert_int_equal(r.one_pc_commit_ts, 0);
    mvcc_prewrite_result_free(&r);
    fx_assert_lens(&o->f, 1, 0, 2); /* v1 in its commit record, v2 in CF default */
    assert_int_equal(o->src.calls, 1);
}

/* A rolled-back transaction stays rolled back: its one-phase retry is a conflict. */
static void test_rolled_back_transaction_conflicts(void **state)
{
    struct ofx *o = *state;
    struct mvcc_write_result wr;
    assert_int_equal(fx_rollback1(&o->f, "a", 1, 100, &wr), 0);
    mvcc_write_result_free(&wr);
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("a", "v1")};
    assert_int_equal(prewrite_1pc(&o->f, m, 1, 100, &r), 0);
    assert_int_equal(r.n_errors, 1);
    assert_int_equal(r.errors[0].kind, MVCC_KEY_ERR_CONFLICT);
    mvcc_prewrite_result_free(&r);
    assert_false(fx_get_ok(&o->f, "a", 1, 1000, NULL, 0));
}

/* No timestamp to be had: the prewrite locks the keys instead, and a later one-phase retry
 * commits them and removes the locks. */
static void test_ts_failure_falls_back_to_locks(void **state)
{
    struct ofx *o = *state;
    o->src.fail = 1;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("a", "1"), PUT("b", "2")};
    assert_int_equal(prewrite_1pc(&o->f, m, 2, 100, &r), 0);
    assert_int_equal(r.n_errors, 0);
    assert_int_equal(r.one_pc_commit_ts, 0);
    mvcc_prewrite_result_free(&r);
    fx_assert_lens(&o->f, 2, 2, 0);
    struct mvcc_lock l;
    assert_true(fx_get_lock(&o->f, "b", 1, &l));
    assert_int_equal(l.start_ts, 100);
    assert_int_equal(l.primary_len, 1);
    assert_memory_equal(l.primary, "a", 1);
    mvcc_lock_release(&l);

    o->src.fail = 0;
    assert_int_equal(prewrite_1pc(&o->f, m, 2, 100, &r), 0);
    assert_int_equal(r.n_errors, 0);
    assert_true(r.one_pc_commit_ts > 100);
    uint64_t cts = r.one_pc_commit_ts;
    mvcc_prewrite_result_free(&r);
    fx_assert_lens(&o->f, 2, 0, 2);
    assert_true(fx_get_ok(&o->f, "b", 1, cts, "2", 1));
}

/* A timestamp not above start ts (a broken source) is never used as a commit ts. */
static void test_stale_ts_falls_back_to_locks(void **state)
{
    struct ofx *o = *state;
    o->src.next_ts = 100;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("a", "1")};
    assert_int_equal(prewrite_1pc(&o->f, m, 1, 100, &r), 0);
    assert_int_equal(r.one_pc_commit_ts, 0);
    mvcc_prewrite_result_free(&r);
    fx_assert_lens(&o->f, 1, 1, 0);
}

/* Without try_one_pc, or without a ts source, prewrite locks as before. */
static void test_two_phase_when_not_asked(void **state)
{
    struct ofx *o = *state;
    struct mvcc_prewrite_result r;
    struct mvcc_mutation m[] = {PUT("a", "1")};
    assert_int_equal(fx_prewrite(&o->f, m, 1, "a", 1, 100, 3000, &r), 0);
    assert_int_equal(r.one_pc_commit_ts, 0);
    mvcc_prewrite_result_free(&r);
    mvcc_engine_set_ts_source(o->f.e, NULL, NULL);
    struct mvcc_mutation m2[] = {PUT("b", "1")};
    assert_int_equal(prewrite_1pc(&o->f, m2, 1, 100, &r), 0);
    assert_int_equal(r.one_pc_commit_ts, 0);
    mvcc_prewrite_result_free(&r);
    fx_assert_lens(&o->f, 2, 2, 0);
    assert_int_equal(o->src.calls, 0);
}

struct prewrite_thread {
    struct fx *f;
    struct mvcc_mutation m;
    uint64_t start_ts;
    struct mvcc_prewrite_result r;
    int rc;
};

static void *prewrite_main(void *arg)
{
    struct prewrite_thread *p = arg;
    p->rc = prewrite_1pc(p->f, &p->m, 1, p->start_ts, &p->r);
    return NULL;
}

struct read_thread {
    struct fx *f;
    const char *key; /* point get, or scan from key when scan is set */
    int scan;
    uint64_t version;
    int rc;
    int found;
    int busy; /* answered ServerIsBusy */
};

static void *read_main(void *arg)
{
    struct read_thread *t = arg;
    if (t->scan) {
        struct mvcc_scan_result sr;
        struct mvcc_scan_req req = {.start_key = t->key,
                                    .start_key_len = strlen(t->key),
                                    .limit = 10,
                                    .version = t->version};
        t->rc = mvcc_scan(t->f->e, NULL, &req, &sr);
        t->found = t->rc == 0 && sr.n_pairs == 1;
        t->busy = t->rc == MVCC_ERR_REGION &&
                  sr.storage_err.region_kind == STORAGE_REGION_ERR_SERVER_IS_BUSY;
        mvcc_scan_result_free(&sr);
    } else {
        struct mvcc_get_result gr;
        t->rc = mvcc_get(t->f->e, NULL, t->key, strlen(t->key), t->version, &gr);
        t->found = t->rc == 0 && !gr.not_found;
        t->busy = t->rc == MVCC_ERR_REGION &&
                  gr.storage_err.region_kind == STORAGE_REGION_ERR_SERVER_IS_BUSY;
        mvcc_get_result_free(&gr);
    }
    return NULL;
}

static void wait_inside_source(struct ts_src *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->inside == 0)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

/* Fails the test if n readers are not waiting on the in-memory locks within 10 s. */
static void wait_readers_waiting(struct mvcc_engine *e, int n)
{
    for (long spins = 0;; spins++) {
        pthread_mutex_lock(&e->mem_locks.mu);
        int w = e->mem_locks.waiters;
        pthread_mutex_unlock(&e->mem_locks.mu);
        if (w >= n)
            return;
        if (spins > 10000)
            fail_msg("%d of %d readers wait for the one-phase commit in flight", w, n);
        usleep(1000);
    }
}

static void release_source(struct ts_src *s)
{
    pthread_mutex_lock(&s->mu);
    s->hold = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/*
 * A get and a scan at a version above the commit ts that come while the commit ts is being
 * taken wait for the write and see it (without the wait they would read a snapshot without it,
 * then see it on a second look). A read of another key does not wait.
 */
static void test_readers_wait_for_commit_in_flight(void **state)
{
    struct ofx *o = *state;
    o->src.hold = 1;
    struct prewrite_thread p = {.f = &o->f, .m = PUT("k", "v"), .start_ts = 100};
    pthread_t pt, gt, st;
    assert_int_equal(pthread_create(&pt, NULL, prewrite_main, &p), 0);
    wait_inside_source(&o->src);

    assert_false(fx_get_ok(&o->f, "other", 5, 1000, NULL, 0));
    struct read_thread g = {.f = &o->f, .key = "k", .version = 1000};
    struct read_thread sc = {.f = &o->f, .key = "j", .scan = 1, .version = 1000};
    assert_int_equal(pthread_create(&gt, NULL, read_main, &g), 0);
    assert_int_equal(pthread_create(&st, NULL, read_main, &sc), 0);
    wait_readers_waiting(o->f.e, 2);
    release_source(&o->src);
    pthread_join(pt, NULL);
    pthread_join(gt, NULL);
    pthread_join(st, NULL);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.r.one_pc_commit_ts, 200);
    mvcc_prewrite_result_free(&p.r);
    assert_int_equal(g.rc, 0);
    assert_true(g.found);
    assert_int_equal(sc.rc, 0);
    assert_true(sc.found);
}

/* A reader that waits past its deadline answers ServerIsBusy; the commit still lands. */
static void test_reader_gives_up_busy(void **state)
{
    struct ofx *o = *state;
    o->f.e->mem_lock_wait_ms = 50;
    o->src.hold = 1;
    struct prewrite_thread p = {.f = &o->f, .m = PUT("k", "v"), .start_ts = 100};
    pthread_t pt;
    assert_int_equal(pthread_create(&pt, NULL, prewrite_main, &p), 0);
    wait_inside_source(&o->src);
    struct read_thread g = {.f = &o->f, .key = "k", .version = 1000};
    read_main(&g);
    assert_int_equal(g.rc, MVCC_ERR_REGION);
    assert_true(g.busy);
    release_source(&o->src);
    pthread_join(pt, NULL);
    assert_int_equal(p.r.one_pc_commit_ts, 200);
    mvcc_prewrite_result_free(&p.r);
    assert_true(fx_get_ok(&o->f, "k", 1, 1000, "v", 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_key_commits_without_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_keys_share_one_commit_ts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_and_long_values_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflict_and_lock_write_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_commit_answers_first_ts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rolled_back_transaction_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ts_failure_falls_back_to_locks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_ts_falls_back_to_locks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_phase_when_not_asked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readers_wait_for_commit_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_gives_up_busy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
