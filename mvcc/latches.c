/* latches.c — per-store key latches: hash slots taken in ascending order, waited for without a
 * thread. */
#include <stdlib.h>
#include <string.h>

#include "mvcc/mvcc_internal.h"

int mvcc_latches_init(struct mvcc_latches *l, size_t n_slots)
{
    memset(l, 0, sizeof(*l));
    if (n_slots == 0)
        return MVCC_ERR_ARG;
    l->busy = calloc(n_slots, 1);
    if (!l->busy)
        return MVCC_ERR_NOMEM;
    l->n_slots = n_slots;
    l->waiters_tail = &l->waiters;
    pthread_mutex_init(&l->mu, NULL);
    return MVCC_OK;
}

void mvcc_latches_close(struct mvcc_latches *l)
{
    if (!l->busy)
        return;
    pthread_mutex_destroy(&l->mu);
    free(l->busy);
    l->busy = NULL;
}

size_t mvcc_latches_slot(const struct mvcc_latches *l, const void *key, size_t key_len)
{
    /* FNV-1a, 64 bit. */
    const uint8_t *p = key;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < key_len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return (size_t)(h % l->n_slots);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Takes g's next free slots in order; returns 1 when g holds them all. Caller holds l->mu. */
static int take_slots(struct mvcc_latches *l, struct mvcc_latch_guard *g)
{
    while (g->n_held < g->n_slots && !l->busy[g->slots[g->n_held]])
        l->busy[g->slots[g->n_held++]] = 1;
    return g->n_held == g->n_slots;
}

int mvcc_latches_acquire_async(struct mvcc_latches *l, const struct mvcc_key_slice *keys, size_t n,
                               struct mvcc_latch_guard *g, mvcc_latch_granted_fn granted, void *arg)
{
    size_t m = 0;

    memset(g, 0, sizeof(*g));
    if (n == 0)
        return 1;
    g->slots = malloc(n * sizeof(*g->slots));
    if (!g->slots)
        return -MVCC_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        g->slots[i] = mvcc_latches_slot(l, keys[i].data, keys[i].len);
    qsort(g->slots, n, sizeof(*g->slots), cmp_size);
    for (size_t i = 0; i < n; i++)
        if (m == 0 || g->slots[m - 1] != g->slots[i])
            g->slots[m++] = g->slots[i];
    g->n_slots = m;
    g->granted = granted;
    g->granted_arg = arg;

    /* Ascending order: a holder of slot s only ever waits for slots > s, so no cycle of waiters
     * can form. A newcomer takes free slots even when earlier waiters want them too: they wait
     * for busy slots only, so it never waits behind a waiter that waits for it. */
    pthread_mutex_lock(&l->mu);
    int all = take_slots(l, g);
    if (!all) {
        *l->waiters_tail = g;
        l->waiters_tail = &g->next_waiter;
    }
    pthread_mutex_unlock(&l->mu);
    return all;
}

/* The blocking form waits here for its own grant. */
struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int granted;
};

static void sync_granted(void *arg)
{
    struct sync_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->granted = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int mvcc_latches_acquire(struct mvcc_latches *l, const struct mvcc_key_slice *keys, size_t n,
                         struct mvcc_latch_guard *g)
{
    struct sync_wait w = {.granted = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    int rc = mvcc_latches_acquire_async(l, keys, n, g, sync_granted, &w);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.granted)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc < 0 ? -rc : MVCC_OK;
}

void mvcc_latches_release(struct mvcc_latches *l, struct mvcc_latch_guard *g)
{
    struct mvcc_latch_guard *done = NULL, **done_tail = &done;
    if (g->n_slots) {
        pthread_mutex_lock(&l->mu);
        for (size_t i = 0; i < g->n_held; i++)
            l->busy[g->slots[i]] = 0;
        /* Hand the freed slots on in arrival order; a waiter that completes leaves the list. */
        for (struct mvcc_latch_guard **pp = &l->waiters; *pp;) {
            struct mvcc_latch_guard *w = *pp;
            if (!take_slots(l, w)) {
                pp = &w->next_waiter;
                continue;
            }
            *pp = w->next_waiter;
            if (l->waiters_tail == &w->next_waiter)
                l->waiters_tail = pp;
            w->next_waiter = NULL;
            *done_tail = w;
            done_tail = &w->next_waiter;
        }
        pthread_mutex_unlock(&l->mu);
    }
    free(g->slots);
    memset(g, 0, sizeof(*g));
    /* Outside the mutex: a grant may run a whole command (its storage answers at once). */
    for (struct mvcc_latch_guard *w = done, *nx; w; w = nx) {
        nx = w->next_waiter;
        w->next_waiter = NULL;
        w->granted(w->granted_arg);
    }
}
