/* test_async_commands.c — prewrite and commit without a thread each: writes held in flight,
 * answered late, failed, and latches queued behind them. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tests/unit/mvcc/mvcc_fixture.h"

/*
 * A storage over mem_storage whose asynchronous writes wait, deep-copied, until the test answers
 * them (as Raft answers a proposal later, from another thread): held_answer applies the oldest
 * one and calls it back with success, or calls it back with a region error without applying it.
 * Snapshots are answered at once. The blocking forms pass through, so the fixture's helpers
 * still write and read the inner storage directly.
 */
struct held_write {
    struct storage_modify *mods;
    size_t n;
    int timeout_ms;
    uint64_t term; /* the term the write asked to be proposed in (0: any) */
    storage_write_cb cb;
    void *arg;
};

struct held {
    struct storage base;
    struct storage *inner; /* borrowed */
    pthread_mutex_t mu;
    struct held_write q[512]; /* guarded by mu */
    size_t n;
    uint64_t term; /* the leadership term its snapshots carry, as a replicated storage's do */
};

static int held_write_sync(struct storage *s, const struct storage_ctx *ctx,
                           const struct storage_modify *mods, size_t n, struct storage_error *err)
{
    return storage_write(((struct held *)s)->inner, ctx, mods, n, err);
}

static int held_reader(struct storage *s, const struct storage_ctx *ctx,
                       struct storage_reader **out, struct storage_error *err)
{
    return storage_reader(((struct held *)s)->inner, ctx, out, err);
}

static void held_free(struct storage *s)
{
    struct held *h = (struct held *)s;
    assert_int_equal(h->n, 0);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static void held_write_async(struct storage *s, const struct storage_ctx *ctx,
                             const struct storage_modify *mods, size_t n, storage_write_cb cb,
                             void *arg)
{
    struct held *h = (struct held *)s;
    struct held_write w = {.n = n,
                           .cb = cb,
                           .arg = arg,
                           .timeout_ms = ctx ? ctx->timeout_ms : 0,
                           .term = ctx ? ctx->term : 0};
    w.mods = calloc(n, sizeof(*w.mods));
    assert_non_null(w.mods);
    for (size_t i = 0; i < n; i++) {
        w.mods[i] = mods[i];
        w.mods[i].key = mvcc_memdup(mods[i].key, mods[i].key_len);
        w.mods[i].value = mods[i].value ? mvcc_memdup(mods[i].value, mods[i].value_len) : NULL;
    }
    pthread_mutex_lock(&h->mu);
    assert_true(h->n < sizeof(h->q) / sizeof(h->q[0]));
    h->q[h->n++] = w;
    pthread_mutex_unlock(&h->mu);
}

static void held_reader_async(struct storage *s, const struct storage_ctx *ctx,
                              storage_reader_cb cb, void *arg)
{
    struct storage_error err = {0};
    struct storage_reader *r = NULL;
    int rc = storage_reader(((struct held *)s)->inner, ctx, &r, &err);
    if (rc == 0)
        r->term = ((struct held *)s)->term;
    cb(arg, rc, rc ? NULL : r, rc ? &err : NULL);
}

static const struct storage_ops held_ops = {
    .write = held_write_sync,
    .reader = held_reader,
    .free = held_free,
    .write_async = held_write_async,
    .reader_async = held_reader_async,
};

static size_t held_count(struct held *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = h->n;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* The term the oldest held write asked for. */
static uint64_t held_term(struct held *h)
{
    pthread_mutex_lock(&h->mu);
    assert_true(h->n > 0);
    uint64_t term = h->q[0].term;
    pthread_mutex_unlock(&h->mu);
    return term;
}

/* Answers the oldest held write: applied (kind NONE) or failed with that region error. Returns
 * the write's timeout_ms as the command asked for it. */
static int held_answer(struct held *h, enum storage_region_error_kind kind)
{
    pthread_mutex_lock(&h->mu);
    assert_true(h->n > 0);
    struct held_write w = h->q[0];
    memmove(h->q, h->q + 1, (h->n - 1) * sizeof(h->q[0]));
    h->n--;
    pthread_mutex_unlock(&h->mu);
    if (kind == STORAGE_REGION_ERR_NONE) {
        assert_int_equal(storage_write(h->inner, NULL, w.mods, w.n, NULL), 0);
        w.cb(w.arg, 0, NULL);
    } else {
        struct storage_error err = {.code = STORAGE_ERR_REGION, .region_kind = kind};
        snprintf(err.msg, sizeof err.msg, "held write failed by the test");
        w.cb(w.arg, STORAGE_ERR_REGION, &err);
    }
    for (size_t i = 0; i < w.n; i++) {
        free((void *)w.mods[i].key);
        free((void *)w.mods[i].value);
    }
    free(w.mods);
    return w.timeout_ms;
}

/* A timestamp source that answers later, when the test says: the async form of test_one_pc's. */
struct late_ts {
    mvcc_ts_cb cb[8];
    void *arg[8];
    int n;
};

static void late_ts_get(void *src, mvcc_ts_cb cb, void *arg)
{
    struct late_ts *t = src;
    assert_true(t->n < 8);
    t->cb[t->n] = cb;
    t->arg[t->n++] = arg;
}

struct afx {
    struct fx f; /* first: the fixture helpers take it; f.s is the inner mem_storage */
    struct held *h;
    struct late_ts ts;
};

static int setup(void **state)
{
    struct afx *a = calloc(1, sizeof(*a));
    assert_non_null(a);
    assert_int_equal(mem_storage_new(&a->f.s), 0);
    a->h = calloc(1, sizeof(*a->h));
    assert_non_null(a->h);
    a->h->base.ops = &held_ops;
    a->h->inner = a->f.s;
    pthread_mutex_init(&a->h->mu, NULL);
    assert_int_equal(mvcc_engine_new(&a->h->base, 0, &a->f.e), 0);
    *state = a;
    return 0;
}

static int teardown(void **state)
{
    struct afx *a = *state;
    mvcc_engine_free(a->f.e);
    storage_free(&a->h->base);
    storage_free(a->f.s);
    free(a);
    return 0;
}

/* One command's completion, as the service's pending call sees it. */
struct answer {
    int done;
    int rc;
};

static void on_done(void *arg, int rc)
{
    struct answer *an = arg;
    an->done++;
    an->rc = rc;
}

struct pw {
    char key[32];
    struct mvcc_mutation m;
    struct storage_ctx ctx;
    struct mvcc_prewrite_req req;
    struct mvcc_prewrite_result out;
    struct answer an;
};

static void pw_start(struct afx *a, struct pw *p, const char *key, uint64_t start_ts, int one_pc)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->key, sizeof p->key, "%s", key);
    p->m = (struct mvcc_mutation){MVCC_OP_PUT, p->key, strlen(p->key), "v", 1};
    p->req = (struct mvcc_prewrite_req){
        .mutations = &p->m,
        .n_mutations = 1,
        .primary = p->key,
        .primary_len = strlen(p->key),
        .start_ts = start_ts,
        .lock_ttl_ms = 3000,
        .try_one_pc = one_pc,
    };
    mvcc_prewrite_async(a->f.e, &p->ctx, &p->req, &p->out, on_done, &p->an);
}

/* 300 prewrites started from one thread are all in the storage at once (none holds a thread),
 * and all complete when their writes are answered. */
static void test_many_prewrites_in_flight(void **state)
{
    struct afx *a = *state;
    enum { N = 300 };
    struct pw *p = calloc(N, sizeof(*p));
    assert_non_null(p);
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "key-%04d", i);
        pw_start(a, &p[i], key, 100, 0);
    }
    assert_int_equal(held_count(a->h), N);
    for (int i = 0; i < N; i++)
        assert_int_equal(p[i].an.done, 0);
    for (int i = 0; i < N; i++)
        held_answer(a->h, STORAGE_REGION_ERR_NONE);
    for (int i = 0; i < N; i++) {
        assert_int_equal(p[i].an.done, 1);
        assert_int_equal(p[i].an.rc, MVCC_OK);
        assert_int_equal(p[i].out.n_errors, 0);
        mvcc_prewrite_result_free(&p[i].out);
    }
    fx_assert_lens(&a->f, N, N, 0);
    free(p);
}

/* A second prewrite of a key waits in the latch queue while the first's write is in Raft, then
 * runs its checks on what the first wrote: it finds the lock. */
static void test_latch_waits_for_write_in_flight(void **state)
{
    struct afx *a = *state;
    struct pw p1, p2;
    pw_start(a, &p1, "k", 100, 0);
    pw_start(a, &p2, "k", 110, 0);
    assert_int_equal(held_count(a->h), 1); /* p2 has not even read yet */
    assert_int_equal(p2.an.done, 0);
    held_answer(a->h, STORAGE_REGION_ERR_NONE);
    assert_int_equal(p1.an.done, 1);
    assert_int_equal(p1.an.rc, MVCC_OK);
    assert_int_equal(p2.an.done, 1);
    assert_int_equal(p2.an.rc, MVCC_OK);
    assert_int_equal(p2.out.n_errors, 1);
    assert_int_equal(p2.out.errors[0].kind, MVCC_KEY_ERR_LOCKED);
    assert_int_equal(p2.out.errors[0].locked.lock_version, 100);
    assert_int_equal(held_count(a->h), 0);
    mvcc_prewrite_result_free(&p1.out);
    mvcc_prewrite_result_free(&p2.out);
}

/* A prewrite whose write fails in Raft (the leader stepped down; the deadline passed) answers the
 * region error and releases its latches: the next command on the key runs and finds no lock. */
static void check_failed_write(struct afx *a, enum storage_region_error_kind kind)
{
    struct pw p1, p2;
    pw_start(a, &p1, "k", 100, 0);
    pw_start(a, &p2, "k", 110, 0);
    held_answer(a->h, kind);
    assert_int_equal(p1.an.done, 1);
    assert_int_equal(p1.an.rc, MVCC_ERR_REGION);
    assert_int_equal(p1.out.storage_err.region_kind, kind);
    assert_int_equal(p1.out.n_errors, 0);
    /* p2 got the latch and its write is in flight now. */
    assert_int_equal(p2.an.done, 0);
    assert_int_equal(held_count(a->h), 1);
    held_answer(a->h, STORAGE_REGION_ERR_NONE);
    assert_int_equal(p2.an.done, 1);
    assert_int_equal(p2.an.rc, MVCC_OK);
    assert_int_equal(p2.out.n_errors, 0);
    struct mvcc_lock l;
    assert_true(fx_get_lock(&a->f, "k", 1, &l));
    assert_int_equal(l.start_ts, 110);
    mvcc_lock_release(&l);
    mvcc_prewrite_result_free(&p1.out);
    mvcc_prewrite_result_free(&p2.out);
}

static void test_write_not_leader_releases_latches(void **state)
{
    check_failed_write(*state, STORAGE_REGION_ERR_NOT_LEADER);
}

static void test_write_undetermined_releases_latches(void **state)
{
    check_failed_write(*state, STORAGE_REGION_ERR_UNDETERMINED);
}

/* One-phase commit with a source that answers later: nothing is written until the ts is in, the
 * write asks for the long timeout, readers that could see it wait until it is answered, and the
 * answer carries the ts. */
static void test_one_pc_with_late_ts(void **state)
{
    struct afx *a = *state;
    mvcc_engine_set_ts_source_async(a->f.e, late_ts_get, &a->ts);
    struct pw p;
    pw_start(a, &p, "k", 100, 1);
    assert_int_equal(a->ts.n, 1);
    assert_int_equal(held_count(a->h), 0);
    assert_int_equal(p.an.done, 0);
    /* A reader at 150 must wait for the commit (its ts is unknown): it gives up busy. */
    a->f.e->mem_lock_wait_ms = 20;
    struct mvcc_get_result g;
    assert_int_equal(mvcc_get(a->f.e, NULL, "k", 1, 150, &g), MVCC_ERR_REGION);
    assert_int_equal(g.storage_err.region_kind, STORAGE_REGION_ERR_SERVER_IS_BUSY);
    mvcc_get_result_free(&g);
    a->ts.cb[0](a->ts.arg[0], 0, 120);
    assert_int_equal(held_count(a->h), 1);
    /* Below the commit ts a reader does not wait; at or above it still does. */
    assert_int_equal(mvcc_get(a->f.e, NULL, "k", 1, 119, &g), MVCC_OK);
    assert_true(g.not_found);
    mvcc_get_result_free(&g);
    assert_int_equal(mvcc_get(a->f.e, NULL, "k", 1, 120, &g), MVCC_ERR_REGION);
    mvcc_get_result_free(&g);
    assert_int_equal(held_answer(a->h, STORAGE_REGION_ERR_NONE), MVCC_ONE_PC_WRITE_TIMEOUT_MS);
    assert_int_equal(p.an.done, 1);
    assert_int_equal(p.an.rc, MVCC_OK);
    assert_int_equal(p.out.one_pc_commit_ts, 120);
    assert_int_equal(mvcc_get(a->f.e, NULL, "k", 1, 120, &g), MVCC_OK);
    assert_int_equal(g.commit_ts, 120);
    mvcc_get_result_free(&g);
    fx_assert_lens(&a->f, 0, 0, 1);
    mvcc_prewrite_result_free(&p.out);
}

/* A one-phase commit whose write fails leaves the in-memory lock table and its latches: readers
 * go on, the answer is the region error with no commit ts, and nothing was written. */
static void test_one_pc_failed_write_unlists(void **state)
{
    struct afx *a = *state;
    mvcc_engine_set_ts_source_async(a->f.e, late_ts_get, &a->ts);
    struct pw p, p2;
    pw_start(a, &p, "k", 100, 1);
    a->ts.cb[0](a->ts.arg[0], 0, 120);
    pw_start(a, &p2, "k", 130, 0); /* waits for the latch */
    held_answer(a->h, STORAGE_REGION_ERR_NOT_LEADER);
    assert_int_equal(p.an.done, 1);
    assert_int_equal(p.an.rc, MVCC_ERR_REGION);
    assert_int_equal(p.out.one_pc_commit_ts, 0);
    struct mvcc_get_result g;
    a->f.e->mem_lock_wait_ms = 20;
    assert_int_equal(mvcc_get(a->f.e, NULL, "k", 1, 125, &g), MVCC_OK);
    assert_true(g.not_found);
    mvcc_get_result_free(&g);
    assert_int_equal(held_count(a->h), 1); /* p2's write */
    held_answer(a->h, STORAGE_REGION_ERR_NONE);
    assert_int_equal(p2.an.rc, MVCC_OK);
    fx_assert_lens(&a->f, 1, 1, 0);
    mvcc_prewrite_result_free(&p.out);
    mvcc_prewrite_result_free(&p2.out);
}

/* A late source that answers with no timestamp: the prewrite locks its keys instead. */
static void test_one_pc_late_ts_failure_locks(void **state)
{
    struct afx *a = *state;
    mvcc_engine_set_ts_source_async(a->f.e, late_ts_get, &a->ts);
    struct pw p;
    pw_start(a, &p, "k", 100, 1);
    a->ts.cb[0](a->ts.arg[0], 1, 0);
    assert_int_equal(held_answer(a->h, STORAGE_REGION_ERR_NONE), 0);
    assert_int_equal(p.an.rc, MVCC_OK);
    assert_int_equal(p.out.one_pc_commit_ts, 0);
    fx_assert_lens(&a->f, 1, 1, 0);
    mvcc_prewrite_result_free(&p.out);
}

/* The commit ts is asked for after the checks: a prewrite whose checks find a conflict answers
 * it at once, asks for no timestamp and writes nothing. */
static void test_one_pc_conflict_asks_no_ts(void **state)
{
    struct afx *a = *state;
    mvcc_engine_set_ts_source_async(a->f.e, late_ts_get, &a->ts);
    fx_committed(&a->f, "k", 1, 105, 108, "old", 3);
    struct pw p;
    pw_start(a, &p, "k", 100, 1);
    assert_int_equal(a->ts.n, 0);
    assert_int_equal(p.an.done, 1);
    assert_int_equal(p.an.rc, MVCC_OK);
    assert_int_equal(p.out.n_errors, 1);
    assert_int_equal(p.out.errors[0].kind, MVCC_KEY_ERR_CONFLICT);
    assert_int_equal(p.out.one_pc_commit_ts, 0);
    assert_int_equal(held_count(a->h), 0);
    a->f.e->mem_lock_wait_ms = 20;
    struct mvcc_get_result g;
    assert_int_equal(mvcc_get(a->f.e, NULL, "k", 1, 200, &g), MVCC_OK);
    assert_int_equal(g.commit_ts, 108);
    mvcc_get_result_free(&g);
    fx_assert_lens(&a->f, 1, 0, 1);
    mvcc_prewrite_result_free(&p.out);
}

/* Starts a one-phase prewrite of key at start_ts in region 1 and answers its write; returns its
 * commit ts. *asked: whether it took a timestamp from the source (answered with tso_ts). */
static uint64_t one_pc_in_region(struct afx *a, const char *key, uint64_t start_ts, uint64_t tso_ts,
                                 int *asked, uint64_t *write_term)
{
    struct pw p;
    int before = a->ts.n;
    memset(&p, 0, sizeof(p));
    p.ctx.region_id = 1;
    snprintf(p.key, sizeof p.key, "%s", key);
    p.m = (struct mvcc_mutation){MVCC_OP_PUT, p.key, strlen(p.key), "v", 1};
    p.req = (struct mvcc_prewrite_req){.mutations = &p.m,
                                       .n_mutations = 1,
                                       .primary = p.key,
                                       .primary_len = strlen(p.key),
                                       .start_ts = start_ts,
                                       .lock_ttl_ms = 3000,
                                       .try_one_pc = 1};
    mvcc_prewrite_async(a->f.e, &p.ctx, &p.req, &p.out, on_done, &p.an);
    *asked = a->ts.n > before;
    if (*asked)
        a->ts.cb[a->ts.n - 1](a->ts.arg[a->ts.n - 1], 0, tso_ts);
    *write_term = held_term(a->h);
    held_answer(a->h, STORAGE_REGION_ERR_NONE);
    assert_int_equal(p.an.done, 1);
    assert_int_equal(p.an.rc, MVCC_OK);
    uint64_t cts = p.out.one_pc_commit_ts;
    mvcc_prewrite_result_free(&p.out);
    return cts;
}

/*
 * In a leadership term synced by one TSO answer, later one-phase commits choose their commit ts
 * here, without a source call: above every ts read on this store and above their start ts. Such
 * a write carries its term. A new term asks the source again, and so does a commit whose ts
 * would lie far beyond the newest TSO answer (a bogus read ts is not trusted).
 */
/* Term 7, synced by a one-phase commit of "a" at 100 whose commit ts the source answers (120). */
static void sync_term_7(struct afx *a)
{
    mvcc_engine_set_ts_source_async(a->f.e, late_ts_get, &a->ts);
    a->h->term = 7;
    int asked;
    uint64_t term;
    assert_int_equal(one_pc_in_region(a, "a", 100, 120, &asked, &term), 120);
    assert_true(asked);
    assert_int_equal(term, 0); /* a TSO commit ts is good in any term */
}

static void test_one_pc_synced_term_chooses_commit_ts_without_tso(void **state)
{
    struct afx *a = *state;
    sync_term_7(a);
    int asked;
    uint64_t term;

    assert_int_equal(one_pc_in_region(a, "b", 130, 0, &asked, &term), 131);
    assert_false(asked);
    assert_int_equal(term, 7);

    /* A read at 500 (of another key) raises the floor: the next commit lands above it, so a
     * second read at 500 sees what the first saw. */
    struct mvcc_get_result g;
    assert_int_equal(mvcc_get(a->f.e, NULL, "c", 1, 500, &g), MVCC_OK);
    assert_true(g.not_found);
    mvcc_get_result_free(&g);
    assert_int_equal(one_pc_in_region(a, "c", 140, 0, &asked, &term), 501);
    assert_false(asked);
    assert_int_equal(mvcc_get(a->f.e, NULL, "c", 1, 500, &g), MVCC_OK);
    assert_true(g.not_found);
    mvcc_get_result_free(&g);

    /* Another term: its first commit asks the source. */
    a->h->term = 8;
    assert_int_equal(one_pc_in_region(a, "d", 600, 700, &asked, &term), 700);
    assert_true(asked);
    assert_int_equal(one_pc_in_region(a, "e", 710, 0, &asked, &term), 711);
    assert_false(asked);
    assert_int_equal(term, 8);

    /* A read ts more than the slack past the newest TSO answer: the next commit asks. */
    uint64_t far = 700 + ((uint64_t)2000 << 18);
    assert_int_equal(mvcc_get(a->f.e, NULL, "f", 1, far, &g), MVCC_OK);
    mvcc_get_result_free(&g);
    assert_int_equal(one_pc_in_region(a, "f", 720, far + 5, &asked, &term), far + 5);
    assert_true(asked);
    assert_int_equal(one_pc_in_region(a, "g", 730, 0, &asked, &term), far + 6);
    assert_false(asked);
}

static uint64_t wall_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

/*
 * A read ts more than MVCC_READ_TS_AHEAD_MS past both the wall clock and the newest TSO answer
 * is refused, get and scan alike, and leaves max_ts where it was: the next one-phase commit still
 * chooses its ts here, as after a read of the newest versions (MVCC_TS_MAX). One within the bound
 * is served and raises max_ts as any read does.
 */
static void test_read_far_past_clock_and_tso_is_refused(void **state)
{
    struct afx *a = *state;
    sync_term_7(a);
    int asked;
    uint64_t term;

    uint64_t far = mvcc_ts_compose(wall_ms() + MVCC_READ_TS_AHEAD_MS + 60 * 1000, 0);
    struct mvcc_get_result g;
    assert_int_equal(mvcc_get(a->f.e, NULL, "b", 1, far, &g), MVCC_ERR_TS_AHEAD);
    assert_non_null(strstr(g.errmsg, "10 minutes"));
    mvcc_get_result_free(&g);
    struct mvcc_scan_req sreq = {.limit = 10, .version = far};
    struct mvcc_scan_result sr;
    assert_int_equal(mvcc_scan(a->f.e, NULL, &sreq, &sr), MVCC_ERR_TS_AHEAD);
    mvcc_scan_result_free(&sr);
    /* The newest versions (MVCC_TS_MAX) are served and leave max_ts as it is. */
    assert_int_equal(mvcc_get(a->f.e, NULL, "b", 1, MVCC_TS_MAX, &g), MVCC_OK);
    mvcc_get_result_free(&g);
    assert_int_equal(one_pc_in_region(a, "b", 130, 0, &asked, &term), 131);
    assert_false(asked);

    uint64_t near = mvcc_ts_compose(wall_ms() + 60 * 1000, 0);
    assert_int_equal(mvcc_get(a->f.e, NULL, "c", 1, near, &g), MVCC_OK);
    assert_true(g.not_found);
    mvcc_get_result_free(&g);
    assert_int_equal(one_pc_in_region(a, "c", 140, near + 5, &asked, &term), near + 5);
    assert_true(asked); /* past the 1 s slack over the newest TSO answer: the TSO decides */
}

/* A storage without leadership terms (snapshots with term 0) never chooses a commit ts here. */
static void test_one_pc_without_term_always_asks_tso(void **state)
{
    struct afx *a = *state;
    mvcc_engine_set_ts_source_async(a->f.e, late_ts_get, &a->ts);
    int asked;
    uint64_t term;
    assert_int_equal(one_pc_in_region(a, "a", 100, 120, &asked, &term), 120);
    assert_true(asked);
    assert_int_equal(one_pc_in_region(a, "b", 130, 140, &asked, &term), 140);
    assert_true(asked);
}

/* Commit answers from its write's completion; a failed commit write keeps the lock and lets the
 * next commit of the key run. */
static void test_commit_async(void **state)
{
    struct afx *a = *state;
    fx_put_value(&a->f, "k", 1, 100, "v", 1);
    fx_put_lock(&a->f, "k", 1, "k", 1, 100, 3000, MVCC_WRITE_PUT);
    struct mvcc_key_slice key = {"k", 1};
    struct mvcc_write_result r1, r2;
    struct answer an1 = {0}, an2 = {0};
    mvcc_commit_async(a->f.e, NULL, &key, 1, 100, 110, &r1, on_done, &an1);
    mvcc_commit_async(a->f.e, NULL, &key, 1, 100, 110, &r2, on_done, &an2);
    assert_int_equal(held_count(a->h), 1);
    held_answer(a->h, STORAGE_REGION_ERR_STALE_COMMAND);
    assert_int_equal(an1.done, 1);
    assert_int_equal(an1.rc, MVCC_ERR_REGION);
    assert_int_equal(r1.storage_err.region_kind, STORAGE_REGION_ERR_STALE_COMMAND);
    assert_int_equal(an2.done, 0);
    held_answer(a->h, STORAGE_REGION_ERR_NONE);
    assert_int_equal(an2.done, 1);
    assert_int_equal(an2.rc, MVCC_OK);
    assert_int_equal(r2.error.kind, MVCC_KEY_ERR_NONE);
    struct mvcc_write w;
    assert_true(fx_get_write(&a->f, "k", 1, 110, &w));
    fx_assert_lens(&a->f, 1, 0, 1);
    mvcc_write_result_free(&r1);
    mvcc_write_result_free(&r2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_many_prewrites_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latch_waits_for_write_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_not_leader_releases_latches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_undetermined_releases_latches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_pc_with_late_ts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_pc_failed_write_unlists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_pc_late_ts_failure_locks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_pc_conflict_asks_no_ts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_pc_synced_term_chooses_commit_ts_without_tso,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_far_past_clock_and_tso_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_one_pc_without_term_always_asks_tso, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_async, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
