/* test_latches.c — key latches: mutual exclusion per key, no deadlock with overlapping key sets. */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "tests/unit/mvcc/mvcc_fixture.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Slots are deterministic and in range; duplicate keys in one request take the slot once. */
static void test_slots_and_duplicates(void **state)
{
    (void)state;
    struct mvcc_latches l;
    struct mvcc_latch_guard g;
    assert_int_equal(mvcc_latches_init(&l, 16), 0);
    size_t s = mvcc_latches_slot(&l, "abc", 3);
    assert_true(s < 16);
    assert_int_equal(mvcc_latches_slot(&l, "abc", 3), s);
    struct mvcc_key_slice keys[] = {{"abc", 3}, {"xyz", 3}, {"abc", 3}};
    assert_int_equal(mvcc_latches_acquire(&l, keys, 3, &g), 0); /* would hang if taken twice */
    assert_true(g.n_slots >= 1 && g.n_slots <= 2);
    for (size_t i = 1; i < g.n_slots; i++)
        assert_true(g.slots[i - 1] < g.slots[i]);
    mvcc_latches_release(&l, &g);
    assert_int_equal(mvcc_latches_acquire(&l, keys, 1, &g), 0); /* free again */
    mvcc_latches_release(&l, &g);
    assert_int_equal(mvcc_latches_acquire(&l, NULL, 0, &g), 0);
    mvcc_latches_release(&l, &g);
    assert_int_equal(mvcc_latches_init(&(struct mvcc_latches){0}, 0), MVCC_ERR_ARG);
    mvcc_latches_close(&l);
}

struct shared {
    struct mvcc_latches l;
    long counter[4]; /* key i's counter, guarded by key i's latch only */
    int inside[4];
    int iters;
    unsigned seed;
};

struct arg {
    struct shared *s;
    int id;
};

static const char *names[4] = {"k0", "k1", "k2", "k3"};

static void *racer(void *p)
{
    struct arg *a = p;
    struct shared *s = a->s;
    unsigned seed = s->seed + (unsigned)a->id;
    for (int it = 0; it < s->iters; it++) {
        /* A random subset in a random order: overlapping sets, opposite orders. */
        struct mvcc_key_slice keys[4];
        int which[4], n = 0;
        int start = rand_r(&seed) % 4, dir = rand_r(&seed) % 2 ? 1 : 3;
        for (int j = 0; j < 4; j++) {
            int k = (start + j * dir) % 4;
            if (rand_r(&seed) % 2 || n == 0) {
                which[n] = k;
                keys[n++] = (struct mvcc_key_slice){names[k], 2};
            }
        }
        struct mvcc_latch_guard g;
        CHECK(mvcc_latches_acquire(&s->l, keys, (size_t)n, &g) == 0);
        for (int j = 0; j < n; j++) {
            CHECK(__atomic_exchange_n(&s->inside[which[j]], 1, __ATOMIC_SEQ_CST) == 0);
            s->counter[which[j]]++; /* a plain, racy increment unless the latch excludes */
        }
        for (int j = 0; j < n; j++)
            __atomic_store_n(&s->inside[which[j]], 0, __ATOMIC_SEQ_CST);
        mvcc_latches_release(&s->l, &g);
    }
    return NULL;
}

/* Threads latch random overlapping key sets in random orders, with few slots (so keys share
 * slots): nobody is ever inside a key together, no increment is lost, and all finish. */
static void test_exclusion_no_deadlock(void **state)
{
    (void)state;
    static struct shared s;
    const char *env = getenv("MVCC_SEED");
    memset(&s, 0, sizeof(s));
    s.seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    s.iters = 20000;
    printf("test_exclusion_no_deadlock: seed %u (MVCC_SEED)\n", s.seed);
    assert_int_equal(mvcc_latches_init(&s.l, 3), 0);
    pthread_t th[4];
    struct arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct arg){&s, i};
        assert_int_equal(pthread_create(&th[i], NULL, racer, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    /* Recount what each thread did with the same random choices. */
    long want[4] = {0};
    for (int t = 0; t < 4; t++) {
        unsigned seed = s.seed + (unsigned)t;
        for (int it = 0; it < s.iters; it++) {
            int n = 0, start = rand_r(&seed) % 4, dir = rand_r(&seed) % 2 ? 1 : 3;
            for (int j = 0; j < 4; j++) {
                int k = (start + j * dir) % 4;
                if (rand_r(&seed) % 2 || n == 0) {
                    want[k]++;
                    n++;
                }
            }
        }
    }
    for (int k = 0; k < 4; k++)
        assert_int_equal(s.counter[k], want[k]);
    mvcc_latches_close(&s.l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_and_duplicates),
        cmocka_unit_test(test_exclusion_no_deadlock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
