/* test_concurrency.c — racing transactions: no lost update, no torn read. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>

#include "tests/unit/mvcc/mvcc_fixture.h"

/*
 * A small client in the test: TSO, reads that resolve locks (check the
 * primary, then commit or roll back the transaction's locks), and two-phase
 * commit. Some transactions "crash" on purpose: after prewrite (their locks
 * must expire and be rolled back by readers) or after committing the primary
 * (readers must roll their secondaries forward).
 */

/*
 * Checks usable from worker threads (cmocka's asserts must stay on the main
 * thread): a failure prints where and aborts the test program.
 */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)
#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__,  \
                    #a, #b, a_, b_);                                                               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define N_ACCOUNTS 4
#define ACCOUNT_START 100
#define LOCK_TTL_MS 5

struct world {
    struct fx *f;
    pthread_mutex_t tso_mu;
    uint64_t last_ts; /* guarded by tso_mu */
    int ops_per_thread;
};

struct worker {
    struct world *w;
    unsigned seed;
    long increments; /* committed counter increments */
    long transfers;
    long audits;
    long aborts;
};

static uint64_t tso_next(struct world *w)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t ts = mvcc_ts_compose((uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000, 0);
    pthread_mutex_lock(&w->tso_mu);
    if (ts <= w->last_ts)
        ts = w->last_ts + 1;
    w->last_ts = ts;
    pthread_mutex_unlock(&w->tso_mu);
    return ts;
}

static const char *account_key(int i)
{
    static const char *keys[N_ACCOUNTS] = {"acct0", "acct1", "acct2", "acct3"};
    return keys[i];
}

static void encode_i64(int64_t v, uint8_t out[8])
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
}

static int64_t decode_i64(const void *p, size_t len)
{
    CHECK_EQ(len, 8);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | ((const uint8_t *)p)[i];
    return (int64_t)v;
}

/* Settles the transaction that holds a lock we ran into, or yields while it is alive. */
static void resolve(struct world *w, const struct mvcc_lock_info *li)
{
    struct mvcc_check_txn_status_result c;
    struct mvcc_write_result r;
    CHECK_EQ(mvcc_check_txn_status(w->f->e, NULL, li->primary, li->primary_len, li->lock_version,
                                   tso_next(w), &c),
             0);
    CHECK_EQ(c.error.kind, MVCC_KEY_ERR_NONE);
    if (c.commit_version) {
        CHECK_EQ(mvcc_resolve_lock(w->f->e, NULL, li->lock_version, c.commit_version, &r), 0);
    } else if (c.action != MVCC_ACTION_NO_ACTION || c.lock_ttl == 0) {
        CHECK_EQ(mvcc_resolve_lock(w->f->e, NULL, li->lock_version, 0, &r), 0);
    } else {
        sched_yield(); /* the owner is alive: let it finish */
        return;
    }
    CHECK_EQ(r.error.kind, MVCC_KEY_ERR_NONE);
}

/* Reads key at ts, resolving locks until the read is clean. Missing keys read as 0. */
static int64_t read_key(struct world *w, const char *key, uint64_t ts)
{
    for (;;) {
        struct mvcc_get_result g;
        CHECK_EQ(mvcc_get(w->f->e, NULL, key, strlen(key), ts, &g), 0);
        if (g.error.kind == MVCC_KEY_ERR_LOCKED) {
            resolve(w, &g.error.locked);
            mvcc_get_result_free(&g);
            continue;
        }
        CHECK_EQ(g.error.kind, MVCC_KEY_ERR_NONE);
        int64_t v = g.not_found ? 0 : decode_i64(g.value, g.value_len);
        mvcc_get_result_free(&g);
        return v;
    }
}

enum crash { CRASH_NONE, CRASH_AFTER_PREWRITE, CRASH_AFTER_PRIMARY };

/* Two-phase commit of puts; the first key is the primary. Returns 1 if committed. */
static int run_txn(struct world *w, const char **keys, const int64_t *vals, size_t n,
                   uint64_t start_ts, enum crash crash)
{
    struct mvcc_mutation m[N_ACCOUNTS];
    struct mvcc_key_slice ks[N_ACCOUNTS];
    uint8_t enc[N_ACCOUNTS][8];
    struct mvcc_prewrite_result p;
    struct mvcc_write_result r;

    for (size_t i = 0; i < n; i++) {
        encode_i64(vals[i], enc[i]);
        m[i] = (struct mvcc_mutation){MVCC_OP_PUT, keys[i], strlen(keys[i]), enc[i], 8};
        ks[i] = (struct mvcc_key_slice){keys[i], strlen(keys[i])};
    }
    CHECK_EQ(fx_prewrite(w->f, m, n, keys[0], strlen(keys[0]), start_ts, LOCK_TTL_MS, &p), 0);
    if (p.n_errors) {
        for (size_t i = 0; i < p.n_errors; i++) {
            CHECK(p.errors[i].kind == MVCC_KEY_ERR_LOCKED ||
                  p.errors[i].kind == MVCC_KEY_ERR_CONFLICT);
            if (p.errors[i].kind == MVCC_KEY_ERR_LOCKED)
                resolve(w, &p.errors[i].locked);
        }
        mvcc_prewrite_result_free(&p);
        CHECK_EQ(mvcc_batch_rollback(w->f->e, NULL, ks, n, start_ts, &r), 0);
        CHECK_EQ(r.error.kind, MVCC_KEY_ERR_NONE);
        return 0;
    }
    if (crash == CRASH_AFTER_PREWRITE)
        return 0;

    uint64_t commit_ts = tso_next(w);
    CHECK_EQ(mvcc_commit(w->f->e, NULL, ks, 1, start_ts, commit_ts, &r), 0);
    if (r.error.kind != MVCC_KEY_ERR_NONE) {
        /* A reader found our lock expired and rolled the primary back. */
        CHECK_EQ(r.error.kind, MVCC_KEY_ERR_ABORT);
        mvcc_write_result_free(&r);
        if (n > 1) {
            CHECK_EQ(mvcc_batch_rollback(w->f->e, NULL, ks + 1, n - 1, start_ts, &r), 0);
            CHECK_EQ(r.error.kind, MVCC_KEY_ERR_NONE);
        }
        return 0;
    }
    if (crash == CRASH_AFTER_PRIMARY || n == 1)
        return 1;
    /* The primary is committed, so the secondaries must commit (or already were, by a reader). */
    CHECK_EQ(mvcc_commit(w->f->e, NULL, ks + 1, n - 1, start_ts, commit_ts, &r), 0);
    CHECK_EQ(r.error.kind, MVCC_KEY_ERR_NONE);
    return 1;
}

/* Reads every account at one snapshot, by point gets or by a scan; the total must be exact. */
static void audit(struct world *w, int by_scan)
{
    uint64_t ts = tso_next(w);
    int64_t sum = 0;

    if (!by_scan) {
        for (int i = 0; i < N_ACCOUNTS; i++)
            sum += read_key(w, account_key(i), ts);
        CHECK_EQ(sum, N_ACCOUNTS * ACCOUNT_START);
        return;
    }
    for (;;) {
        struct mvcc_scan_result s;
        int locked = 0;
        CHECK_EQ(mvcc_scan(w->f->e, NULL,
                           &(struct mvcc_scan_req){"acct", 4, "acct~", 5, 100, ts, 0, 0}, &s),
                 0);
        sum = 0;
        for (size_t i = 0; i < s.n_pairs; i++) {
            if (s.pairs[i].error.kind == MVCC_KEY_ERR_LOCKED) {
                resolve(w, &s.pairs[i].error.locked);
                locked = 1;
            } else {
                sum += decode_i64(s.pairs[i].value, s.pairs[i].value_len);
            }
        }
        size_t n = s.n_pairs;
        mvcc_scan_result_free(&s);
        if (locked)
            continue;
        CHECK_EQ(n, N_ACCOUNTS);
        CHECK_EQ(sum, N_ACCOUNTS * ACCOUNT_START);
        return;
    }
}

static enum crash pick_crash(unsigned *seed)
{
    int r = rand_r(seed) % 100;
    return r < 3 ? CRASH_AFTER_PREWRITE : r < 6 ? CRASH_AFTER_PRIMARY : CRASH_NONE;
}

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    struct world *w = wk->w;

    for (int op = 0; op < w->ops_per_thread; op++) {
        int kind = rand_r(&wk->seed) % 10;
        if (kind < 5) {
            /* Read-modify-write of the shared counter. */
            uint64_t start = tso_next(w);
            const char *key = "counter";
            int64_t v = read_key(w, key, start) + 1;
            if (run_txn(w, &key, &v, 1, start, pick_crash(&wk->seed)))
                wk->increments++;
            else
                wk->aborts++;
        } else if (kind < 8) {
            /* Move money between two accounts: the sum must never change. */
            int a = rand_r(&wk->seed) % N_ACCOUNTS;
            int b = (a + 1 + rand_r(&wk->seed) % (N_ACCOUNTS - 1)) % N_ACCOUNTS;
            uint64_t start = tso_next(w);
            int64_t va = read_key(w, account_key(a), start);
            int64_t vb = read_key(w, account_key(b), start);
            int64_t amount = rand_r(&wk->seed) % 20 - 5;
            const char *keys[2] = {account_key(a), account_key(b)};
            int64_t vals[2] = {va - amount, vb + amount};
            if (run_txn(w, keys, vals, 2, start, pick_crash(&wk->seed)))
                wk->transfers++;
            else
                wk->aborts++;
        } else {
            audit(w, kind == 9);
            wk->audits++;
        }
    }
    return NULL;
}

/* Threads race counter increments, transfers and audits, some crashing mid-commit: the counter
 * equals the committed increments and every audit sees the exact total. */
static void test_racing_transactions(void **state)
{
    struct fx *f = *state;
    struct world w = {.f = f, .ops_per_thread = 1000};
    const char *env_seed = getenv("MVCC_SEED"), *env_ops = getenv("MVCC_CONC_OPS");
    unsigned seed = env_seed ? (unsigned)strtoul(env_seed, NULL, 10) : (unsigned)time(NULL);
    int n_threads = 4;
    if (env_ops)
        w.ops_per_thread = atoi(env_ops);
    printf("test_racing_transactions: seed %u, %d threads x %d ops (MVCC_SEED, MVCC_CONC_OPS)\n",
           seed, n_threads, w.ops_per_thread);
    pthread_mutex_init(&w.tso_mu, NULL);

    /* Initial balances and counter, committed by one transaction. */
    const char *keys[N_ACCOUNTS + 1] = {"counter", "acct0", "acct1", "acct2", "acct3"};
    int64_t vals[N_ACCOUNTS + 1] = {0, ACCOUNT_START, ACCOUNT_START, ACCOUNT_START, ACCOUNT_START};
    struct mvcc_mutation m[N_ACCOUNTS + 1];
    uint8_t enc[N_ACCOUNTS + 1][8];
    struct mvcc_key_slice ks[N_ACCOUNTS + 1];
    for (int i = 0; i <= N_ACCOUNTS; i++) {
        encode_i64(vals[i], enc[i]);
        m[i] = (struct mvcc_mutation){MVCC_OP_PUT, keys[i], strlen(keys[i]), enc[i], 8};
        ks[i] = (struct mvcc_key_slice){keys[i], strlen(keys[i])};
    }
    struct mvcc_prewrite_result p;
    struct mvcc_write_result r;
    uint64_t t0 = tso_next(&w);
    CHECK_EQ(fx_prewrite(f, m, N_ACCOUNTS + 1, "counter", 7, t0, 1000, &p), 0);
    CHECK_EQ(p.n_errors, 0);
    CHECK_EQ(mvcc_commit(f->e, NULL, ks, N_ACCOUNTS + 1, t0, tso_next(&w), &r), 0);
    CHECK_EQ(r.error.kind, MVCC_KEY_ERR_NONE);

    pthread_t th[8];
    struct worker wk[8];
    for (int i = 0; i < n_threads; i++) {
        wk[i] = (struct worker){.w = &w, .seed = seed * 31u + (unsigned)i};
        CHECK_EQ(pthread_create(&th[i], NULL, worker_main, &wk[i]), 0);
    }
    long increments = 0, transfers = 0, audits = 0, aborts = 0;
    for (int i = 0; i < n_threads; i++) {
        pthread_join(th[i], NULL);
        increments += wk[i].increments;
        transfers += wk[i].transfers;
        audits += wk[i].audits;
        aborts += wk[i].aborts;
    }
    printf("test_racing_transactions: %ld increments, %ld transfers, %ld audits, %ld aborted\n",
           increments, transfers, audits, aborts);

    /* Final state, read after every worker stopped: resolves what crashed transactions left. */
    uint64_t end = tso_next(&w);
    CHECK_EQ(read_key(&w, "counter", end), increments);
    audit(&w, 0);
    audit(&w, 1);
    /* Every lock has been resolved by those reads (abandoned ones after their TTL). */
    CHECK_EQ(mem_storage_count(f->s, STORAGE_CF_LOCK), 0);
    CHECK(increments > 0);
    CHECK(transfers > 0);
    pthread_mutex_destroy(&w.tso_mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_racing_transactions, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
