/* metrics.c — the metrics registry: families of series updated with atomics, rendered as text. */
#include "metrics/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double METRICS_LATENCY_BUCKETS[METRICS_LATENCY_BUCKET_COUNT] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
const double METRICS_SIZE_BUCKETS[METRICS_SIZE_BUCKET_COUNT] = {
    256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864};

enum metric_type { TYPE_COUNTER, TYPE_GAUGE, TYPE_HISTOGRAM };

struct metrics_counter {
    _Atomic uint64_t v;
};

struct metrics_gauge {
    _Atomic int64_t v;
};

struct metrics_histogram {
    const double *bounds; /* the family's (n_bounds of them) */
    size_t n_bounds;
    _Atomic uint64_t *buckets; /* n_bounds + 1, not cumulative; the last is +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_bits; /* a double's bits, updated by compare-and-swap */
};

struct series {
    char *labels; /* "" for none */
    union {
        struct metrics_counter counter;
        struct metrics_gauge gauge;
        struct metrics_histogram histogram;
    } u;
    struct series *next;
};

struct family {
    char *name, *help;
    enum metric_type type;
    double *bounds;
    size_t n_bounds;
    struct series *head, *tail; /* guarded by the registry's mu */
    struct family *next;
};

struct metrics {
    pthread_mutex_t mu; /* guards the lists; never taken by updates */
    struct family *head, *tail;
};

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    struct family *f = m->head;
    while (f) {
        struct family *fnext = f->next;
        struct series *s = f->head;
        while (s) {
            struct series *snext = s->next;
            if (f->type == TYPE_HISTOGRAM)
                free(s->u.histogram.buckets);
            free(s->labels);
            free(s);
            s = snext;
        }
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
        f = fnext;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

const char *metrics_strerror(int code)
{
    switch (code) {
    case METRICS_OK:
        return "ok";
    case METRICS_ERR_NOMEM:
        return "out of memory";
    case METRICS_ERR_INVALID:
        return "invalid metric name, labels or type";
    default:
        return "unknown metrics error";
    }
}

/* A Prometheus metric name: [a-zA-Z_:][a-zA-Z0-9_:]*. */
static bool name_ok(const char *name)
{
    if (!name || !*name || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':'))
            return false;
    }
    return true;
}

/* Finds or creates the family; caller holds m->mu. */
static struct family *family_get_locked(struct metrics *m, const char *name, const char *help,
                                        enum metric_type type, const double *bounds, size_t n)
{
    for (struct family *f = m->head; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f->type == type ? f : NULL;
    struct family *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->type = type;
    if (type == TYPE_HISTOGRAM) {
        f->bounds = malloc((n ? n : 1) * sizeof *bounds);
        if (f->bounds)
            memcpy(f->bounds, bounds, n * sizeof *bounds);
        f->n_bounds = n;
    }
    if (!f->name || !f->help || (type == TYPE_HISTOGRAM && !f->bounds)) {
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
        return NULL;
    }
    if (m->tail)
        m->tail->next = f;
    else
        m->head = f;
    m->tail = f;
    return f;
}

static struct series *series_get(struct metrics *m, const char *name, const char *help,
                                 const char *labels, enum metric_type type, const double *bounds,
                                 size_t n)
{
    if (!m || !name_ok(name))
        return NULL;
    if (!labels)
        labels = "";
    if (strchr(labels, '\n') || strchr(labels, '{') || strchr(labels, '}'))
        return NULL;
    struct series *s = NULL;
    pthread_mutex_lock(&m->mu);
    struct family *f = family_get_locked(m, name, help, type, bounds, n);
    if (!f)
        goto out;
    for (s = f->head; s; s = s->next)
        if (strcmp(s->labels, labels) == 0)
            goto out;
    s = calloc(1, sizeof *s);
    if (!s)
        goto out;
    s->labels = strdup(labels);
    if (type == TYPE_HISTOGRAM) {
        s->u.histogram.bounds = f->bounds;
        s->u.histogram.n_bounds = f->n_bounds;
        s->u.histogram.buckets = calloc(f->n_bounds + 1, sizeof *s->u.histogram.buckets);
    }
    if (!s->labels || (type == TYPE_HISTOGRAM && !s->u.histogram.buckets)) {
        free(s->labels);
        free(s->u.histogram.buckets);
        free(s);
        s = NULL;
        goto out;
    }
    if (f->tail)
        f->tail->next = s;
    else
        f->head = s;
    f->tail = s;
out:
    pthread_mutex_unlock(&m->mu);
    return s;
}

struct metrics_counter *metrics_counter(struct metrics *m, const char *name, const char *help,
                                        const char *labels)
{
    struct series *s = series_get(m, name, help, labels, TYPE_COUNTER, NULL, 0);
    return s ? &s->u.counter : NULL;
}

struct metrics_gauge *metrics_gauge(struct metrics *m, const char *name, const char *help,
                                    const char *labels)
{
    struct series *s = series_get(m, name, help, labels, TYPE_GAUGE, NULL, 0);
    return s ? &s->u.gauge : NULL;
}

struct metrics_histogram *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                            const char *labels, const double *bounds, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (!(bounds[i - 1] < bounds[i]))
            return NULL;
    struct series *s = series_get(m, name, help, labels, TYPE_HISTOGRAM, bounds, n);
    return s ? &s->u.histogram : NULL;
}

void metrics_counter_add(struct metrics_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

void metrics_counter_inc(struct metrics_counter *c)
{
    metrics_counter_add(c, 1);
}

uint64_t metrics_counter_value(const struct metrics_counter *c)
{
    return c ? atomic_load_explicit(&((struct metrics_counter *)c)->v, memory_order_relaxed) : 0;
}

void metrics_gauge_set(struct metrics_gauge *g, int64_t v)
{
    if (g)
        atomic_store_explicit(&g->v, v, memory_order_relaxed);
}

void metrics_gauge_add(struct metrics_gauge *g, int64_t delta)
{
    if (g)
        atomic_fetch_add_explicit(&g->v, delta, memory_order_relaxed);
}

int64_t metrics_gauge_value(const struct metrics_gauge *g)
{
    return g ? atomic_load_explicit(&((struct metrics_gauge *)g)->v, memory_order_relaxed) : 0;
}

static uint64_t double_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static double bits_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

void metrics_histogram_observe(struct metrics_histogram *h, double v)
{
    if (!h)
        return;
    /* Few buckets: a linear search is as fast as a binary one here. */
    size_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old,
                                                  double_bits(bits_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

uint64_t metrics_histogram_count(const struct metrics_histogram *h)
{
    return h ? atomic_load_explicit(&((struct metrics_histogram *)h)->count, memory_order_relaxed)
             : 0;
}

uint64_t metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void metrics_histogram_since(struct metrics_histogram *h, uint64_t start_ns)
{
    if (!h)
        return;
    uint64_t now = metrics_now_ns();
    metrics_histogram_observe(h, now > start_ns ? (double)(now - start_ns) / 1e9 : 0.0);
}

/* ---- rendering ---- */

struct buf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void buf_add(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_add(struct buf *b, const char *fmt, ...)
{
    while (!b->oom) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* HELP text escapes backslash and newline. */
static void add_help(struct buf *b, const struct family *f)
{
    buf_add(b, "# HELP %s ", f->name);
    for (const char *p = f->help; *p; p++) {
        if (*p == '\\')
            buf_add(b, "\\\\");
        else if (*p == '\n')
            buf_add(b, "\\n");
        else
            buf_add(b, "%c", *p);
    }
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    buf_add(b, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
}

/* `{labels}` or `{labels,extra}` or nothing. */
static void add_labels(struct buf *b, const char *labels, const char *extra)
{
    if (!*labels && !extra)
        return;
    buf_add(b, "{%s%s%s}", labels, *labels && extra ? "," : "", extra ? extra : "");
}

static void add_histogram(struct buf *b, const struct family *f, struct series *s)
{
    struct metrics_histogram *h = &s->u.histogram;
    uint64_t cum = 0;
    char le[64];
    for (size_t i = 0; i <= h->n_bounds; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < h->n_bounds)
            snprintf(le, sizeof le, "le=\"%.17g\"", h->bounds[i]);
        else
            snprintf(le, sizeof le, "le=\"+Inf\"");
        buf_add(b, "%s_bucket", f->name);
        add_labels(b, s->labels, le);
        buf_add(b, " %llu\n", (unsigned long long)cum);
    }
    buf_add(b, "%s_sum", f->name);
    add_labels(b, s->labels, NULL);
    buf_add(b, " %.17g\n", bits_double(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)));
    /* The +Inf bucket (cum) is the count that matches the buckets just printed. */
    buf_add(b, "%s_count", f->name);
    add_labels(b, s->labels, NULL);
    buf_add(b, " %llu\n", (unsigned long long)cum);
}

int metrics_render(struct metrics *m, char **out, size_t *len)
{
    struct buf b = {0};
    *out = NULL;
    if (len)
        *len = 0;
    if (m) {
        pthread_mutex_lock(&m->mu);
        for (struct family *f = m->head; f; f = f->next) {
            if (!f->head)
                continue;
            add_help(&b, f);
            for (struct series *s = f->head; s; s = s->next) {
                if (f->type == TYPE_HISTOGRAM) {
                    add_histogram(&b, f, s);
                    continue;
                }
                buf_add(&b, "%s", f->name);
                add_labels(&b, s->labels, NULL);
                if (f->type == TYPE_COUNTER)
                    buf_add(&b, " %llu\n",
                            (unsigned long long)metrics_counter_value(&s->u.counter));
                else
                    buf_add(&b, " %lld\n", (long long)metrics_gauge_value(&s->u.gauge));
            }
        }
        pthread_mutex_unlock(&m->mu);
    }
    if (!b.p && !b.oom) {
        b.p = strdup("");
        b.oom = b.p == NULL;
    }
    if (b.oom) {
        free(b.p);
        return METRICS_ERR_NOMEM;
    }
    *out = b.p;
    if (len)
        *len = b.len;
    return METRICS_OK;
}
