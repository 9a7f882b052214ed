/* metrics.h — a per-process metrics registry: counters, gauges, histograms, Prometheus text. */
#ifndef TINYKV_METRICS_METRICS_H
#define TINYKV_METRICS_METRICS_H

/*
 * What it owns: metric families (name, help, type, histogram bounds) and
 * their series (one per label set), and the rendering of all of them in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * Who calls it: each daemon creates one registry (metrics_new) and hands it
 * to the parts that count things (the gRPC server, the scheduler link, the
 * transactional service, the raftstore, the scheduler's HTTP API); the status
 * endpoints render it. Tests create their own, or pass NULL.
 *
 * What it must never do: keep global state (several stores live in one test
 * process), or take a lock on the hot path. Looking a series up
 * (metrics_counter, ...) takes the registry's lock and is meant for set-up
 * time; updating one (metrics_counter_add, ...) is a relaxed atomic. Every
 * update and look-up accepts NULL (the registry or the series) and does
 * nothing, so code can count unconditionally whether or not it was given a
 * registry.
 *
 * Names follow Prometheus conventions: a `tinykv_` (or `pd_`) prefix,
 * `_total` on counters, base units in the name (`_seconds`, `_bytes`).
 * Labels are given pre-rendered, `method="RawGet",outcome="ok"`, and must
 * not carry per-key or per-region values (a series lives as long as the
 * registry).
 */

#include <stddef.h>
#include <stdint.h>

enum {
    METRICS_OK = 0,
    METRICS_ERR_NOMEM = 9000,
    METRICS_ERR_INVALID, /* bad name or labels, or a name registered with another type */
};

struct metrics;
struct metrics_counter;
struct metrics_gauge;
struct metrics_histogram;

/* metrics_new: an empty registry, or NULL when out of memory. */
struct metrics *metrics_new(void);

/* metrics_free frees the registry and every series it handed out. NULL is a no-op. */
void metrics_free(struct metrics *m);

/*
 * Look-ups: the series of family `name` with `labels` (NULL or "" for none),
 * created on first use. `name`, `help` and `labels` are copied. The first
 * call for a name fixes its help text (and, for histograms, its bucket
 * bounds); later calls must use the same type. Returns NULL when `m` is
 * NULL, out of memory, or the name is taken by another type; the returned
 * pointer is valid until metrics_free.
 */
struct metrics_counter *metrics_counter(struct metrics *m, const char *name, const char *help,
                                        const char *labels);
struct metrics_gauge *metrics_gauge(struct metrics *m, const char *name, const char *help,
                                    const char *labels);
/* `bounds` are the upper bounds of the buckets, ascending, `n` of them
 * (copied); a +Inf bucket is implied. */
struct metrics_histogram *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                            const char *labels, const double *bounds, size_t n);

/* Bucket bounds for latencies in seconds: 0.5 ms to 10 s. */
extern const double METRICS_LATENCY_BUCKETS[];
#define METRICS_LATENCY_BUCKET_COUNT 14
/* Bucket bounds for sizes in bytes: 256 B to 64 MiB, by powers of four. */
extern const double METRICS_SIZE_BUCKETS[];
#define METRICS_SIZE_BUCKET_COUNT 10

/* Updates: any thread, lock-free. */
void metrics_counter_add(struct metrics_counter *c, uint64_t n);
void metrics_counter_inc(struct metrics_counter *c);
uint64_t metrics_counter_value(const struct metrics_counter *c);

void metrics_gauge_set(struct metrics_gauge *g, int64_t v);
void metrics_gauge_add(struct metrics_gauge *g, int64_t delta);
int64_t metrics_gauge_value(const struct metrics_gauge *g);

void metrics_histogram_observe(struct metrics_histogram *h, double v);
uint64_t metrics_histogram_count(const struct metrics_histogram *h);
/* Observes the seconds elapsed since `start_ns` (metrics_now_ns). */
void metrics_histogram_since(struct metrics_histogram *h, uint64_t start_ns);

/* Nanoseconds from a monotonic clock, for timing what histograms observe. */
uint64_t metrics_now_ns(void);

/*
 * metrics_render writes every family in registration order, each with its
 * HELP and TYPE lines once and then its series, as Prometheus text. *out is
 * malloc'ed and NUL-terminated (the caller frees it), *len its length
 * without the NUL. Returns 0 or METRICS_ERR_NOMEM (then *out is NULL).
 * Safe while other threads update and register.
 */
int metrics_render(struct metrics *m, char **out, size_t *len);

const char *metrics_strerror(int code);

#endif
