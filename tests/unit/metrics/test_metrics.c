/* test_metrics.c — the metrics registry: series, types, rendering, threads, NULL safety. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics/metrics.h"

static char *render(struct metrics *m)
{
    char *text;
    size_t len;
    assert_int_equal(metrics_render(m, &text, &len), METRICS_OK);
    assert_int_equal(strlen(text), len);
    return text;
}

/* A counter and a gauge render with HELP, TYPE and their values; a second look-up returns the
 * same series. */
static void test_counter_and_gauge_render(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metrics_counter *c = metrics_counter(m, "tinykv_x_total", "Things done.", NULL);
    assert_non_null(c);
    assert_ptr_equal(metrics_counter(m, "tinykv_x_total", "ignored", ""), c);
    metrics_counter_add(c, 41);
    metrics_counter_inc(c);
    struct metrics_gauge *g = metrics_gauge(m, "tinykv_regions", "Regions.", NULL);
    metrics_gauge_set(g, 7);
    metrics_gauge_add(g, -10);
    char *text = render(m);
    assert_string_equal(text, "# HELP tinykv_x_total Things done.\n"
                              "# TYPE tinykv_x_total counter\n"
                              "tinykv_x_total 42\n"
                              "# HELP tinykv_regions Regions.\n"
                              "# TYPE tinykv_regions gauge\n"
                              "tinykv_regions -3\n");
    free(text);
    metrics_free(m);
}

/* Two label sets of one family share one HELP/TYPE header and render in registration order. */
static void test_labels_share_a_family(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    metrics_counter_add(metrics_counter(m, "tinykv_req_total", "Requests.", "outcome=\"ok\""), 2);
    metrics_counter_add(metrics_counter(m, "tinykv_req_total", "Requests.", "outcome=\"error\""),
                        1);
    char *text = render(m);
    assert_string_equal(text, "# HELP tinykv_req_total Requests.\n"
                              "# TYPE tinykv_req_total counter\n"
                              "tinykv_req_total{outcome=\"ok\"} 2\n"
                              "tinykv_req_total{outcome=\"error\"} 1\n");
    free(text);
    metrics_free(m);
}

/* A histogram renders cumulative buckets, +Inf, sum and count; a value equal to a bound falls in
 * that bound's bucket. */
static void test_histogram_buckets(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    const double bounds[] = {1, 5};
    struct metrics_histogram *h =
        metrics_histogram(m, "tinykv_size_bytes", "Sizes.", "kind=\"a\"", bounds, 2);
    assert_non_null(h);
    metrics_histogram_observe(h, 0.5);
    metrics_histogram_observe(h, 1);
    metrics_histogram_observe(h, 3);
    metrics_histogram_observe(h, 100);
    assert_int_equal(metrics_histogram_count(h), 4);
    char *text = render(m);
    assert_string_equal(text, "# HELP tinykv_size_bytes Sizes.\n"
                              "# TYPE tinykv_size_bytes histogram\n"
                              "tinykv_size_bytes_bucket{kind=\"a\",le=\"1\"} 2\n"
                              "tinykv_size_bytes_bucket{kind=\"a\",le=\"5\"} 3\n"
                              "tinykv_size_bytes_bucket{kind=\"a\",le=\"+Inf\"} 4\n"
                              "tinykv_size_bytes_sum{kind=\"a\"} 104.5\n"
                              "tinykv_size_bytes_count{kind=\"a\"} 4\n");
    free(text);
    metrics_free(m);
}

/* A name taken by another type, a bad name, bad labels or unsorted bounds give NULL, and every
 * update accepts NULL. */
static void test_invalid_and_null(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    assert_non_null(metrics_counter(m, "tinykv_a_total", "A.", NULL));
    assert_null(metrics_gauge(m, "tinykv_a_total", "A.", NULL));
    assert_null(metrics_counter(m, "9bad", "", NULL));
    assert_null(metrics_counter(m, "has space", "", NULL));
    assert_null(metrics_counter(m, "tinykv_b_total", "", "x=\"1\"}\n"));
    const double unsorted[] = {5, 1};
    assert_null(metrics_histogram(m, "tinykv_h", "", NULL, unsorted, 2));
    assert_null(metrics_counter(NULL, "tinykv_a_total", "A.", NULL));
    metrics_counter_inc(NULL);
    metrics_gauge_set(NULL, 1);
    metrics_gauge_add(NULL, 1);
    metrics_histogram_observe(NULL, 1);
    metrics_histogram_since(NULL, 0);
    assert_int_equal(metrics_counter_value(NULL), 0);
    char *text;
    assert_int_equal(metrics_render(NULL, &text, NULL), METRICS_OK);
    assert_string_equal(text, "");
    free(text);
    metrics_free(m);
    metrics_free(NULL);
}

struct hammer {
    struct metrics *m;
    int iters;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    struct metrics_counter *c = metrics_counter(h->m, "tinykv_ops_total", "Ops.", NULL);
    struct metrics_histogram *hist =
        metrics_histogram(h->m, "tinykv_op_seconds", "Op latency.", NULL, METRICS_LATENCY_BUCKETS,
                          METRICS_LATENCY_BUCKET_COUNT);
    for (int i = 0; i < h->iters; i++) {
        metrics_counter_inc(c);
        metrics_histogram_observe(hist, 0.001);
    }
    return NULL;
}

/* Four threads registering and updating the same series concurrently lose no update. */
static void test_concurrent_updates(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct hammer h = {m, 50000};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer_run, &h);
    for (int i = 0; i < 4; i++) {
        char *text = render(m); /* rendering while others update */
        free(text);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(metrics_counter_value(metrics_counter(m, "tinykv_ops_total", "Ops.", NULL)),
                     200000);
    char *text = render(m);
    assert_non_null(strstr(text, "tinykv_op_seconds_count 200000\n"));
    assert_non_null(strstr(text, "tinykv_op_seconds_bucket{le=\"0.001\"} 200000\n"));
    free(text);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge_render),
        cmocka_unit_test(test_labels_share_a_family),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_invalid_and_null),
        cmocka_unit_test(test_concurrent_updates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
