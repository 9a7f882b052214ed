/* latches.c — per-store key latches: hash slots taken in ascending order. */
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
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    return MVCC_OK;
}

void mvcc_latches_close(struct mvcc_latches *l)
{
    if (!l->busy)
        return;
    pthread_cond_destroy(&l->cv);
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

int mvcc_latches_acquire(struct mvcc_latches *l, const struct mvcc_key_slice *keys, size_t n,
                         struct mvcc_latch_guard *g)
{
    size_t m = 0;

    memset(g, 0, sizeof(*g));
    if (n == 0)
        return MVCC_OK;
    g->slots = malloc(n * sizeof(*g->slots));
    if (!g->slots)
        return MVCC_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        g->slots[i] = mvcc_latches_slot(l, keys[i].data, keys[i].len);
    qsort(g->slots, n, sizeof(*g->slots), cmp_size);
    for (size_t i = 0; i < n; i++)
        if (m == 0 || g->slots[m - 1] != g->slots[i])
            g->slots[m++] = g->slots[i];
    g->n_slots = m;

    /* Ascending order: a holder of slot s only ever waits for slots > s, so
     * no cycle of waiters can form. */
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < m; i++) {
        while (l->busy[g->slots[i]])
            pthread_cond_wait(&l->cv, &l->mu);
        l->busy[g->slots[i]] = 1;
    }
    pthread_mutex_unlock(&l->mu);
    return MVCC_OK;
}

void mvcc_latches_release(struct mvcc_latches *l, struct mvcc_latch_guard *g)
{
    if (g->n_slots) {
        pthread_mutex_lock(&l->mu);
        for (size_t i = 0; i < g->n_slots; i++)
            l->busy[g->slots[i]] = 0;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
    free(g->slots);
    memset(g, 0, sizeof(*g));
}
