/* latency.h — what the benchmark load generators share: a monotonic clock and a growable list of
 * latencies with its percentiles. Header only: each generator is one program (Makefile). */
#ifndef TINYKV_TESTS_BENCH_LATENCY_H
#define TINYKV_TESTS_BENCH_LATENCY_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Latencies in ns; zero-initialised is empty. */
struct latencies {
    uint64_t *ns;
    size_t n, cap;
};

/* Appends one latency; 0, or -1 when out of memory (the list is unchanged). */
static inline int latencies_add(struct latencies *l, uint64_t ns)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        uint64_t *grown = realloc(l->ns, cap * sizeof *grown);
        if (!grown)
            return -1;
        l->ns = grown;
        l->cap = cap;
    }
    l->ns[l->n++] = ns;
    return 0;
}

/* Moves every latency of `from` into `to` (from is left empty); -1 when out of memory. */
static inline int latencies_take(struct latencies *to, struct latencies *from)
{
    for (size_t i = 0; i < from->n; i++)
        if (latencies_add(to, from->ns[i]) != 0)
            return -1;
    free(from->ns);
    memset(from, 0, sizeof *from);
    return 0;
}

static inline int latencies_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts the list and gives its median and 99th percentile in ms (0 when empty). */
static inline void latencies_percentiles(struct latencies *l, double *p50_ms, double *p99_ms)
{
    *p50_ms = *p99_ms = 0;
    if (!l->n)
        return;
    qsort(l->ns, l->n, sizeof *l->ns, latencies_cmp);
    *p50_ms = (double)l->ns[l->n / 2] / 1e6;
    *p99_ms = (double)l->ns[(size_t)((double)l->n * 0.99)] / 1e6;
}

static inline void latencies_free(struct latencies *l)
{
    free(l->ns);
    memset(l, 0, sizeof *l);
}

#endif
