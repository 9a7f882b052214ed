/* test_ts_batcher.c — the store's asynchronous timestamps: batched, unique, increasing, all
 * answered, also when freed with requests queued. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "client/client.h"
#include "server/ts_batcher.h"
#include "tests/lib/fake_pd.h"
#include "tests/lib/test_util.h"

#define THREADS 4
#define PER_THREAD 3000

struct answers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t ts[THREADS * PER_THREAD];
    size_t n;
    int failed;
};

static void on_ts(void *arg, int rc, uint64_t ts)
{
    struct answers *a = arg;
    pthread_mutex_lock(&a->mu);
    if (rc)
        a->failed++;
    else
        a->ts[a->n] = ts;
    a->n++;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

struct asker {
    struct ts_batcher *b;
    struct answers *a;
};

static void *ask(void *arg)
{
    struct asker *k = arg;
    for (int i = 0; i < PER_THREAD; i++)
        ts_batcher_get(k->b, on_ts, k->a);
    return NULL;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static struct answers *answers_new(void)
{
    struct answers *a = calloc(1, sizeof *a);
    assert_non_null(a);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    return a;
}

static void answers_free(struct answers *a)
{
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* Every answer succeeded, and no timestamp came twice. */
static void assert_all_distinct(struct answers *a)
{
    assert_int_equal(a->failed, 0);
    qsort(a->ts, a->n, sizeof a->ts[0], cmp_u64);
    for (size_t i = 1; i < a->n; i++)
        assert_true(a->ts[i] > a->ts[i - 1]);
}

/* Waits (at most 20 s) until n answers came. */
static void wait_answers(struct answers *a, size_t n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&a->mu);
    while (a->n < n && pthread_cond_timedwait(&a->cv, &a->mu, &until) == 0)
        ;
    pthread_mutex_unlock(&a->mu);
}

/* 12,000 requests from 4 threads against a slow TSO: every one is answered once with a distinct
 * timestamp, and they share far fewer round trips than requests (queue growth while a trip is
 * on the way is what the batcher must survive). */
static void test_many_requests_batched(void **state)
{
    (void)state;
    struct fake_pd *pd = fake_pd_new();
    assert_non_null(pd);
    fake_pd_set_tso_delay_ms(pd, 5);
    struct client *c;
    char err[256];
    assert_int_equal(client_new(fake_pd_addr(pd), NULL, &c, err, sizeof err), 0);
    struct ts_batcher *b = ts_batcher_new(c);
    assert_non_null(b);
    struct answers *a = answers_new();
    pthread_t th[THREADS];
    struct asker k = {b, a};
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, ask, &k), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    wait_answers(a, THREADS * PER_THREAD);
    assert_int_equal(a->n, THREADS * PER_THREAD);
    assert_all_distinct(a);
    struct fake_pd_counts counts;
    fake_pd_get_counts(pd, &counts);
    assert_true(counts.tso_requests < (uint64_t)a->n / 4);
    ts_batcher_free(b);
    client_free(c);
    fake_pd_free(pd);
    answers_free(a);
}

/* Bursts of very different sizes, each waited for before the next, against a TSO slow enough
 * that each burst is one or two trips: the queue the callers fill and the one the thread works
 * through trade places with different capacities (the case a capacity mix-up overran). */
static void test_bursts_of_changing_size(void **state)
{
    (void)state;
    struct fake_pd *pd = fake_pd_new();
    assert_non_null(pd);
    fake_pd_set_tso_delay_ms(pd, 10);
    struct client *c;
    char err[256];
    assert_int_equal(client_new(fake_pd_addr(pd), NULL, &c, err, sizeof err), 0);
    struct ts_batcher *b = ts_batcher_new(c);
    assert_non_null(b);
    struct answers *a = answers_new();
    static const size_t bursts[] = {1, 300, 3, 2, 500, 1, 40, 900, 2, 2, 700, 5};
    size_t total = 0;
    for (size_t i = 0; i < sizeof bursts / sizeof bursts[0]; i++) {
        for (size_t k = 0; k < bursts[i]; k++)
            ts_batcher_get(b, on_ts, a);
        total += bursts[i];
        wait_answers(a, total);
        assert_int_equal(a->n, total);
    }
    assert_all_distinct(a);
    ts_batcher_free(b);
    client_free(c);
    fake_pd_free(pd);
    answers_free(a);
}

/* Freed while requests wait for a scheduler that is gone: each is answered, with a failure, and
 * a request after the free began is answered at once. */
static void test_free_answers_queued(void **state)
{
    (void)state;
    struct fake_pd *pd = fake_pd_new();
    assert_non_null(pd);
    struct client_options o = {.timeout_ms = 300, .rpc_timeout_ms = 100};
    struct client *c;
    char err[256];
    assert_int_equal(client_new(fake_pd_addr(pd), &o, &c, err, sizeof err), 0);
    fake_pd_free(pd); /* no scheduler: every round trip fails after the client's deadline */
    struct ts_batcher *b = ts_batcher_new(c);
    assert_non_null(b);
    struct answers *a = answers_new();
    for (int i = 0; i < 100; i++)
        ts_batcher_get(b, on_ts, a);
    ts_batcher_free(b);
    assert_int_equal(a->n, 100);
    assert_int_equal(a->failed, 100);
    client_free(c);
    answers_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_requests_batched),
        cmocka_unit_test(test_bursts_of_changing_size),
        cmocka_unit_test(test_free_answers_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
